package dnsserver_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/failoverdns/failoverdns/dnsserver"
	"github.com/failoverdns/failoverdns/dnsserver/testenv"
	"github.com/failoverdns/failoverdns/zones"
)

// env is an instance that start runs on a config testenv wrote: the
// folder, the config, the log (testenv.Env) and the instance.
type env struct {
	*testenv.Env
	in   *dnsserver.Instance // the last one started
	opts dnsserver.Options   // what the next Launch starts with
}

// start is the one way this package's tests start a server: it writes c
// into a temporary folder and starts a full instance on it (prober, engine,
// UDP and TCP listeners on c's one listen address, HTTP where c.HTTP says),
// closed when the test ends. Zero fields of o are filled in: the logger
// writes e.Logs (Info and up), the version is testVersion, ConfigPath is
// the config (so Reload reads it again). The log is printed if the test
// fails.
func start(tb testing.TB, c testenv.Config, o dnsserver.Options) *env {
	tb.Helper()
	e := prepare(tb, c, o)
	e.Launch(tb)
	return e
}

// prepare is start without the starting: e.Launch starts the instance.
func prepare(tb testing.TB, c testenv.Config, o dnsserver.Options) *env {
	tb.Helper()
	e := &env{opts: o}
	e.Env = testenv.New(tb, c, func(tb testing.TB, te *testenv.Env) testenv.Server {
		tb.Helper()
		o := e.opts
		if o.Logger == nil {
			o.Logger = te.Logs.Logger(nil)
		}
		if o.Version == "" {
			o.Version = testVersion
		}
		if o.ConfigPath == "" {
			o.ConfigPath = te.ConfigPath
		}
		in, err := dnsserver.StartWith(load(tb, te.ConfigPath), o)
		if err != nil {
			tb.Fatalf("StartWith: %v", err)
		}
		stop := func() {
			ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
			defer cancel()
			in.Close(ctx)
		}
		addrs := in.Server.Addrs()
		if len(addrs) != 1 || strings.HasSuffix(addrs[0], ":0") {
			stop()
			tb.Fatalf("Addrs() = %v, want one address with the bound port", addrs)
		}
		e.in = in
		return testenv.Server{Addr: addrs[0], HTTP: in.HTTPAddr, Stop: stop}
	})
	return e
}

// launch starts the instance (again, after Stop: a restart) with o.
func (e *env) launch(tb testing.TB, o dnsserver.Options) {
	tb.Helper()
	e.opts = o
	e.Launch(tb)
}

// load loads the config at path, failing tb with every problem.
func load(tb testing.TB, path string) *zones.Snapshot {
	tb.Helper()
	snap, err := zones.Load(path)
	if err != nil {
		tb.Fatalf("zones.Load:\n%v", errors.Join(zones.Errors(err)...))
	}
	return snap
}

// loadConfig writes c into a temporary folder and loads it.
func loadConfig(tb testing.TB, c testenv.Config) *zones.Snapshot {
	tb.Helper()
	return load(tb, c.Write(tb, tb.TempDir()))
}
