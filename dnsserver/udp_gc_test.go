package dnsserver

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

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
// 127.0.0.1:0 with extra lines in [server], and stops it with the test.
func startZoneServer(t *testing.T, extra string) *Server {
	t.Helper()
	dir := t.TempDir()
	zone, _ := filepath.Abs("../testdata/fast/fast.test.zone")
	cfg := "[server]\nlisten = [\"127.0.0.1:0\"]\nhttp = \"\"\nstate_dir = \"" + dir + "\"\n" + extra +
		"[[zone]]\norigin = \"fast.test.\"\nfile = \"" + zone + "\"\n"
	path := filepath.Join(dir, "c.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	snap, err := zones.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s := New(snap, slog.New(slog.NewTextHandler(io.Discard, nil)), "test")
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s
}
