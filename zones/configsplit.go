package zones

import (
	"bytes"
	"reflect"
	"runtime"
	"sync"

	toml "github.com/pelletier/go-toml/v2"
)

// decodeSplit is the fast decode of a large config (parseConfigBytes) on
// every CPU: a config of 100,000 services is nearly all [[service]]
// tables, and go-toml decodes one piece of a document at a time, so the
// run of them is cut at [[service]] headers into pieces decoded side by
// side, their services appended in file order. It gives up (cut is false)
// unless every piece after the first holds only [[service]] tables and
// their [service.…] sub-tables, written plainly (no multi-line strings in
// the file, headers at the start of their lines): then the pieces mean
// what the whole does, element by element. Any error of any piece is
// returned, and the caller decodes the whole again the exact way.
func decodeSplit(src []byte, cfg *Config) (cut bool, err error) {
	pieces := splitServices(src, runtime.GOMAXPROCS(0))
	if len(pieces) < 2 {
		return false, nil
	}
	rest := make([]Config, len(pieces)-1)
	errs := make([]error, len(pieces))
	var wg sync.WaitGroup
	for i := 1; i < len(pieces); i++ {
		wg.Go(func() {
			c := &rest[i-1]
			c.Services = make([]ServiceConfig, 0, bytes.Count(pieces[i], serviceHeader))
			errs[i] = toml.NewDecoder(bytes.NewReader(pieces[i])).DisallowUnknownFields().Decode(c)
		})
	}
	cfg.Services = make([]ServiceConfig, 0, bytes.Count(src, serviceHeader))
	cfg.Nodes = make([]NodeConfig, 0, bytes.Count(pieces[0], []byte("[[node]]")))
	errs[0] = toml.NewDecoder(bytes.NewReader(pieces[0])).DisallowUnknownFields().Decode(cfg)
	wg.Wait()
	for i := range errs {
		if errs[i] != nil {
			return true, errs[i]
		}
	}
	for i := range rest {
		svcs := rest[i].Services
		rest[i].Services = nil
		if !reflect.ValueOf(rest[i]).IsZero() {
			return false, nil // a piece held more than services after all
		}
		cfg.Services = append(cfg.Services, svcs...)
	}
	return true, nil
}

var serviceHeader = []byte("[[service]]")

// splitMin is the size from which a config is decoded in pieces: below
// it, the goroutines cost more than they save.
const splitMin = 1 << 20

// splitServices cuts src into at most n pieces at lines that are exactly
// [[service]], each piece after the first holding only [[service]] tables
// (see decodeSplit), or returns nil.
func splitServices(src []byte, n int) [][]byte {
	n = min(n, 8)
	if n < 2 || len(src) < splitMin || bytes.Contains(src, []byte(`"""`)) || bytes.Contains(src, []byte(`'''`)) {
		return nil
	}
	var cuts []int
	for k := 1; k < n; k++ {
		from := len(src) * k / n
		if len(cuts) > 0 {
			from = max(from, cuts[len(cuts)-1]+1)
		}
		at := nextServiceLine(src, from)
		if at < 0 {
			break
		}
		cuts = append(cuts, at)
	}
	if len(cuts) == 0 {
		return nil
	}
	pieces := make([][]byte, 0, len(cuts)+1)
	prev := 0
	for _, c := range cuts {
		pieces = append(pieces, src[prev:c])
		prev = c
	}
	pieces = append(pieces, src[prev:])
	for _, p := range pieces[1:] {
		if !onlyServices(p) {
			return nil
		}
	}
	return pieces
}

// nextServiceLine is the offset of the first line at or after from that
// is exactly [[service]], or -1.
func nextServiceLine(src []byte, from int) int {
	for from < len(src) {
		i := bytes.Index(src[from:], []byte("\n[[service]]"))
		if i < 0 {
			return -1
		}
		at := from + i + 1
		end := at + len(serviceHeader)
		if end == len(src) || src[end] == '\n' || src[end] == '\r' && end+1 < len(src) && src[end+1] == '\n' {
			return at
		}
		from = end
	}
	return -1
}

// onlyServices reports whether every line of p that starts (after blanks)
// with '[' is [[service]] or a [service.…] sub-table header.
func onlyServices(p []byte) bool {
	for start := 0; start < len(p); {
		end := bytes.IndexByte(p[start:], '\n')
		if end < 0 {
			end = len(p)
		} else {
			end += start
		}
		// Most lines start with a key: only a '[' or a blank needs a look.
		if c := p[start]; c == '[' || c == ' ' || c == '\t' {
			line := bytes.TrimRight(bytes.TrimLeft(p[start:end], " \t"), " \t\r")
			if len(line) > 0 && line[0] == '[' && !bytes.Equal(line, serviceHeader) && !(bytes.HasPrefix(line, []byte("[service.")) && !bytes.ContainsAny(line[1:], "[")) {
				return false
			}
		}
		start = end + 1
	}
	return true
}
