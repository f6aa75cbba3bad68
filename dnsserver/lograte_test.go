package dnsserver

import (
	"net/netip"
	"testing"
	"time"
)

// TestLogLimiter: one line per source per interval, the next one saying how
// many were held back; past logSources sources, the rest share one entry.
func TestLogLimiter(t *testing.T) {
	l := logLimiter{every: 10 * time.Second}
	t0 := time.Unix(1_000_000, 0)
	a := netip.MustParseAddr("192.0.2.1")
	if ok, n := l.allow(a, t0); !ok || n != 0 {
		t.Fatalf("first line: %v %d, want allowed, 0 held back", ok, n)
	}
	for i := range 5 {
		if ok, _ := l.allow(a, t0.Add(time.Duration(i)*time.Second)); ok {
			t.Fatalf("line %d within the interval allowed", i+2)
		}
	}
	if ok, _ := l.allow(netip.MustParseAddr("192.0.2.2"), t0); !ok {
		t.Errorf("another source's first line held back")
	}
	if ok, n := l.allow(a, t0.Add(10*time.Second)); !ok || n != 5 {
		t.Errorf("after the interval: %v %d, want allowed, 5 held back", ok, n)
	}

	l = logLimiter{every: 10 * time.Second}
	for i := range logSources {
		l.allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), t0)
	}
	extra := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{172, 16, byte(i >> 8), byte(i)}) }
	if ok, _ := l.allow(extra(0), t0); !ok {
		t.Errorf("the first source past the bound: held back, want one line for the other sources")
	}
	if ok, _ := l.allow(extra(1), t0); ok {
		t.Errorf("a second source past the bound got its own line")
	}
	if len(l.sources) != logSources+1 {
		t.Errorf("%d entries, want the bound %d plus one shared", len(l.sources), logSources)
	}
	if ok, _ := l.allow(extra(2), t0.Add(10*time.Second)); !ok {
		t.Errorf("once the interval passed, a new source held back")
	}
	if len(l.sources) > logSources+1 {
		t.Errorf("%d entries after the sweep", len(l.sources))
	}
}
