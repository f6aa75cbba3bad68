package testenv

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// Logs is a buffer safe for a concurrent writer (a slog handler, a child
// process's stdout) and reader (the test).
type Logs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

var _ io.Writer = (*Logs)(nil)

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything written so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Lines is String split into lines, without the empty last one.
func (l *Logs) Lines() []string {
	s := strings.TrimSuffix(l.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// Logger is a text slog.Logger writing to l at level (nil: slog's default,
// Info).
func (l *Logs) Logger(level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: level}))
}

// Discard is a logger that writes nothing.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
