package dnsserver

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/failoverdns/failoverdns/dnsserver/testenv"
	"github.com/failoverdns/failoverdns/zones"
)

// writeScaleZone writes bench/zone_scale.sh's config and zone (n A records)
// into dir and returns the config's path.
func writeScaleZone(tb testing.TB, dir string, n int) string {
	tb.Helper()
	b := []byte("$ORIGIN zs.test.\n$TTL 3600\n@ IN SOA ns1.zs.test. hostmaster.zs.test. 1 7200 3600 1209600 300\n@ IN NS ns1.zs.test.\nns1 IN A 192.0.2.1\n")
	for i := range n {
		b = fmt.Appendf(b, "h%07d IN A 10.%d.%d.%d\n", i, i/65536%256, i/256%256, i%256)
	}
	if err := os.WriteFile(filepath.Join(dir, "zs.test.zone"), b, 0o644); err != nil {
		tb.Fatal(err)
	}
	cfg := fmt.Sprintf("[server]\nlisten = [\"127.0.0.1:0\"]\nhttp = \"\"\nstate_dir = %q\n\n[[zone]]\norigin = \"zs.test.\"\nfile = \"zs.test.zone\"\n", filepath.Join(dir, "state"))
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// BenchmarkLoadServe100k: what a server with a zone of 100,000 A records
// costs, from the config on disk to the fast path's table: ns/op for the
// load, and B/record for what stays alive (zone and table).
func BenchmarkLoadServe100k(b *testing.B) {
	const n = 100000
	path := writeScaleZone(b, b.TempDir(), n)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	b.ReportAllocs()
	var live uint64
	for b.Loop() {
		before := testenv.LiveHeap()
		snap, err := zones.Load(path)
		if err != nil {
			b.Fatal(err)
		}
		s := New(snap, logger, "bench")
		live = testenv.LiveHeap() - before
		runtime.KeepAlive(s)
	}
	b.ReportMetric(float64(live)/n, "B/record")
}
