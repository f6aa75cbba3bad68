package dnsserver

import (
	"runtime"
	"runtime/debug"
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
	// ReloadGCPercent is the GC percent while a reload decodes the config
	// (mostly short-lived garbage); 0 leaves the GC alone.
	ReloadGCPercent int
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

// reloadGC applies ReloadGCPercent for a reload's decoding and returns what
// puts the GC back.
func (r Runtime) reloadGC() (restore func()) {
	if r.ReloadGCPercent == 0 {
		return func() {}
	}
	old := debug.SetGCPercent(r.ReloadGCPercent)
	return func() { debug.SetGCPercent(old) }
}
