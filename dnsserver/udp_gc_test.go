package dnsserver

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/failoverdns/failoverdns/dnsserver/testenv"
	"github.com/failoverdns/failoverdns/zones"
)

// TestUDPReadersLetTheWorldStop: UDP readers wait in the kernel holding a P
// (udp_linux.go); a reader with no traffic must still let a stop-the-world
// (GC, GOMAXPROCS) complete, or the whole server hangs at the next GC.
func TestUDPReadersLetTheWorldStop(t *testing.T) {
	startZoneServer(t, "")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 50 {
			runtime.GC()
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		buf := make([]byte, 1<<20)
		t.Fatalf("50 GCs did not complete in 30s with idle UDP readers: the world cannot stop\n%s", buf[:runtime.Stack(buf, true)])
	}
}

// startZoneServer serves testdata/fast/fast.test.zone (no services) on
// 127.0.0.1:0 with extra lines in [server], and stops it with the test: a
// bare Server (no prober, no engine), for tests of its insides.
func startZoneServer(t *testing.T, extra string) *Server {
	t.Helper()
	var s *Server
	c := testenv.Config{Server: extra, Zones: []testenv.Zone{{Origin: "fast.test.", File: testenv.Testdata(t, 1, "fast", "fast.test.zone")}}}
	testenv.Start(t, c, func(tb testing.TB, e *testenv.Env) testenv.Server {
		snap, err := zones.Load(e.ConfigPath)
		if err != nil {
			tb.Fatal(err)
		}
		s = New(snap, e.Logs.Logger(nil), "test")
		if err := s.Start(); err != nil {
			tb.Fatal(err)
		}
		return testenv.Server{Addr: s.Addrs()[0], Stop: func() { s.Shutdown(context.Background()) }}
	})
	return s
}
