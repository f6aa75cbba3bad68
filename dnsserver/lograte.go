package dnsserver

import (
	"net/netip"
	"sync"
	"time"
)

// refusalLogEvery is how often a refusal is logged per source: a flood of
// refused messages (20,000 unsigned UPDATEs a second, or one pipelined TCP
// connection) must not turn into a flood of log lines, while the first
// refusal from a source is logged at once. Metrics count every refusal.
const refusalLogEvery = 10 * time.Second

// logSources bounds the sources a logLimiter remembers. Spoofed UDP sources
// are free: past this, sources share one "other" entry until the interval
// expires theirs, so memory and log lines stay bounded either way.
const logSources = 4096

// logLimiter lets one log line through per source per interval and counts
// what it held back, for the next line to report.
type logLimiter struct {
	every time.Duration

	mu      sync.Mutex
	sources map[netip.Addr]*logEntry
}

type logEntry struct {
	last       time.Time
	suppressed int
}

// allow reports whether a line about src may be written at now, and how
// many lines about src were held back since the last one written.
func (l *logLimiter) allow(src netip.Addr, now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sources == nil {
		l.sources = map[netip.Addr]*logEntry{}
	}
	e := l.sources[src]
	if e == nil {
		if len(l.sources) >= logSources {
			// A source quiet for an interval starts afresh; the count it
			// held back goes unreported (the metrics have it).
			for a, old := range l.sources {
				if now.Sub(old.last) >= l.every {
					delete(l.sources, a)
				}
			}
		}
		if len(l.sources) >= logSources {
			src = netip.Addr{} // "other sources"
			e = l.sources[src]
		}
		if e == nil {
			e = &logEntry{}
			l.sources[src] = e
			e.last = now
			return true, 0
		}
	}
	if now.Sub(e.last) < l.every {
		e.suppressed++
		return false, 0
	}
	e.last, suppressed, e.suppressed = now, e.suppressed, 0
	return true, suppressed
}
