package dnsserver

import (
	"math"
	"runtime"
	"runtime/debug"
	"sync"
)

// Runtime is what the binary decides about the Go runtime for a server
// (cmd/failoverdns/runtime.go); the library only applies it. A zero field
// is the default a test or another caller gets.
type Runtime struct {
	// UDPReaders is the number of sockets, each read by its own thread,
	// per UDP address; 0: startProcs. On Linux each reader holds a P
	// while it waits in the kernel, and GOMAXPROCS is raised by one per
	// running reader (addReaderProcs) so the rest keeps its share.
	UDPReaders int
	// ReloadGCPercent is the GC percent while a load or a reload decodes
	// the config (mostly short-lived garbage); 0 leaves the GC alone.
	ReloadGCPercent int
	// PublishGCOff turns the collector off while a recompute that
	// decides at least this many services makes and publishes its
	// snapshot; 0: never. See holdGCForPublish.
	PublishGCOff int
}

// startProcs is GOMAXPROCS as the program started, before any reader
// raised it: the CPUs Go found the process may use, its container's CPU
// quota included.
var startProcs = runtime.GOMAXPROCS(0)

// udpReaders is the number of sockets per UDP address.
func (r Runtime) udpReaders() int {
	if r.UDPReaders > 0 {
		return r.UDPReaders
	}
	return max(1, startProcs)
}

// LoadGC applies ReloadGCPercent while a load (serve's first, check's, a
// reload's) decodes the config, and returns what puts the GC back.
func (r Runtime) LoadGC() (release func()) {
	if r.ReloadGCPercent == 0 {
		return func() {}
	}
	return gcPercent.hold(r.ReloadGCPercent)
}

// holdGCForPublish is the engine's hook (zones.EngineOptions.HoldGC)
// for a recompute that decides n services: the collector is off from its
// first decision to its publish. A failover of 100,000 services allocates
// some 25 MB before its answers are out, which often crossed the heap
// goal that the last recompute's logs and events had brought near; the
// collection it started then ran beside the recompute, on a 2-CPU host
// doubling its time to publish (50 to 120 ms). Held, the collection starts
// right after the publish, while the changes are logged.
func (r Runtime) holdGCForPublish(n int) (release func()) {
	if r.PublishGCOff == 0 || n < r.PublishGCOff {
		return nil
	}
	return gcPercent.hold(-1)
}

// gcPercent owns the process's GC percent, one setting for the whole
// process that loads and publishes may each hold at once: whatever
// releases last puts back what the process had before.
var gcPercent gcHolds

type gcHolds struct {
	mu    sync.Mutex
	base  int         // the percent before the first hold
	holds map[int]int // percent held -> how many hold it
	set   int         // the percent in force while holds is not empty
}

// hold sets the GC percent to pct (-1: off) until release; of several
// holds, off wins, then the largest percent.
func (g *gcHolds) hold(pct int) (release func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.holds) == 0 {
		g.holds = map[int]int{}
		g.base = debug.SetGCPercent(pct)
		g.set = pct
	}
	g.holds[pct]++
	g.apply()
	return sync.OnceFunc(func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.holds[pct]--; g.holds[pct] == 0 {
			delete(g.holds, pct)
		}
		if len(g.holds) == 0 {
			debug.SetGCPercent(g.base)
			return
		}
		g.apply()
	})
}

// apply puts in force the percent the holds call for (g.mu held).
func (g *gcHolds) apply() {
	want := math.MinInt
	for pct := range g.holds {
		if pct == -1 {
			want = -1
			break
		}
		want = max(want, pct)
	}
	if want != g.set {
		debug.SetGCPercent(want)
		g.set = want
	}
}
