package testenv

import (
	"sync"
	"testing"
)

// Server is what a Launcher started.
type Server struct {
	Addr string // DNS, UDP and TCP on one port
	HTTP string // "" without an HTTP server
	// Stop stops it and waits until it has; Env calls it once.
	Stop func()
}

// Launcher starts a server on e.ConfigPath writing its log to e.Logs, or
// fails tb. dnsserver's tests start an in-process instance, cmd's the built
// binary.
type Launcher func(tb testing.TB, e *Env) Server

// Env is a folder with a config, and the server started on it.
type Env struct {
	Dir        string
	ConfigPath string
	Config     Config // as last written
	Logs       *Logs  // the server's log, across restarts
	Server

	launch Launcher
	stop   func()
}

// New writes c into a new temporary folder without starting anything.
func New(tb testing.TB, c Config, launch Launcher) *Env {
	tb.Helper()
	e := &Env{Dir: tb.TempDir(), Logs: &Logs{}, launch: launch}
	tb.Cleanup(func() { // after every Stop: cleanups run last in, first out
		if tb.Failed() && e.Logs.String() != "" {
			tb.Logf("server log:\n%s", e.Logs.String())
		}
	})
	e.Write(tb, c)
	return e
}

// Start writes c into a new temporary folder and starts a server on it,
// stopped when the test ends.
func Start(tb testing.TB, c Config, launch Launcher) *Env {
	tb.Helper()
	e := New(tb, c, launch)
	e.Launch(tb)
	return e
}

// Write replaces the config (and its zone files) with c's.
func (e *Env) Write(tb testing.TB, c Config) {
	tb.Helper()
	e.Config = c
	e.ConfigPath = c.Write(tb, e.Dir)
}

// Launch starts a server on the folder's config (again, after Stop, for a
// restart). It is stopped when the test ends; if the test failed, the
// server's log is printed after.
func (e *Env) Launch(tb testing.TB) {
	tb.Helper()
	e.Server = e.launch(tb, e)
	var once sync.Once
	stop := e.Server.Stop
	e.stop = func() { once.Do(stop) }
	tb.Cleanup(e.stop)
}

// Stop stops the running server; later calls, and the one at the test's
// end, do nothing.
func (e *Env) Stop() {
	if e.stop != nil {
		e.stop()
	}
}
