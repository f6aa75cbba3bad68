package main

import (
	"runtime"

	"github.com/failoverdns/failoverdns/dnsserver"
)

// runtimeKnobs decides how the server uses the Go runtime. It must run
// before the listeners start, which raise GOMAXPROCS by one per UDP reader.
//
// UDP readers: one per two Ps per address (at least one), GOMAXPROCS being
// what Go sized from the CPUs this process may use (since Go 1.25 its
// cgroup CPU quota included), not runtime.NumCPU, which counts the
// machine's CPUs whatever the container may use. Each query costs the
// kernel about as much CPU as the reader that answers it (the loopback
// send, the softirq, the wake-up), so a reader per CPU leaves the kernel's
// share nowhere to run but between the readers' wakes; and fewer readers
// each wake for more queries. On 2 CPUs, one reader spent 14.1-15.1 us of
// CPU a query at 20,000 q/s against 16.0-18.4 us with two, in 6 of 6
// interleaved rounds (the demo, dnsperf -c 8, placement left to the
// scheduler); bench/peers.sh has the comparison with gdnsd and the floor.
//
// Reload GC percent: decoding a large config is mostly short-lived garbage;
// letting the heap grow for it instead of collecting several times mid-load
// saves a fifth of a 10,000-service reload, and the instance hands the
// memory back once the new snapshot is in force. Serve's first load and
// check's hold it too: nearly all a zone load allocates stays live (a
// million records: ~190 MB of ~196 MB), so collecting as the heap doubles
// only marks the same growing zone over and over (a sixth of the CPU of
// loading a million records) and frees almost nothing.
//
// Publish GC off: a recompute deciding 1,000 services or more holds the
// collector off until its answers are out (dnsserver's holdGCForPublish);
// below that it allocates too little to start a collection.
func runtimeKnobs() dnsserver.Runtime {
	return dnsserver.Runtime{UDPReaders: max(1, runtime.GOMAXPROCS(0)/2), ReloadGCPercent: 400, PublishGCOff: 1000}
}
