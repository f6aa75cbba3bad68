package zones

import (
	"errors"
	"fmt"
	"strings"
)

// Error is one problem in a config or zone file. It always names the file,
// and the line whenever the line can be known, so an operator can jump to it.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	switch {
	case e.File == "":
		return e.Msg
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	default:
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
}

// ErrorList collects every problem found in one load, so `check` reports them
// all at once instead of making the operator fix them one run at a time.
type ErrorList []*Error

func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

func (l *ErrorList) add(file string, line int, format string, args ...any) {
	*l = append(*l, &Error{File: file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (l ErrorList) err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

// Errors flattens err into its individual problems, for callers that print
// one per line.
func Errors(err error) []error {
	var l ErrorList
	if errors.As(err, &l) {
		out := make([]error, len(l))
		for i, e := range l {
			out[i] = e
		}
		return out
	}
	if err == nil {
		return nil
	}
	return []error{err}
}
