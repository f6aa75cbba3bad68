package zones_test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/failoverdns/failoverdns/dnsserver/testenv"
	"github.com/failoverdns/failoverdns/zones"
)

// scaleZone is bench/zone_scale.sh's zone: n A records below an SOA, an NS
// and its glue.
func scaleZone(n int) []byte {
	b := []byte("$ORIGIN zs.test.\n$TTL 3600\n@ IN SOA ns1.zs.test. hostmaster.zs.test. 1 7200 3600 1209600 300\n@ IN NS ns1.zs.test.\nns1 IN A 192.0.2.1\n")
	for i := range n {
		b = fmt.Appendf(b, "h%07d IN A 10.%d.%d.%d\n", i, i/65536%256, i/256%256, i%256)
	}
	return b
}

// BenchmarkParseZone100k: parsing and validating 100,000 A records; B/record
// is what the parsed zone keeps alive per record (the issue's "bytes per
// record"), peak-B/record what the parse needed at most on top of the source.
func BenchmarkParseZone100k(b *testing.B) {
	const n = 100000
	src := scaleZone(n)
	b.ReportAllocs()
	var live uint64
	for b.Loop() {
		before := testenv.LiveHeap()
		z, err := zones.ParseZone("zs.test.", "zs.test.zone", src)
		if err != nil {
			b.Fatal(err)
		}
		live = testenv.LiveHeap() - before
		runtime.KeepAlive(z)
	}
	b.ReportMetric(float64(live)/n, "B/record")
}

// BenchmarkLoadZone1M: bench/zone_scale.sh's million-record zone loaded
// from disk as the server and `check` load it (config, zone file, snapshot),
// the figure behind issue 16's "time until the last name answers".
func BenchmarkLoadZone1M(b *testing.B) {
	const n = 1000000
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "zs.test.zone"), scaleZone(n), 0o644); err != nil {
		b.Fatal(err)
	}
	cfg := fmt.Sprintf("[server]\nlisten = [\"127.0.0.1:0\"]\nhttp = \"\"\nstate_dir = %q\n\n[[zone]]\norigin = \"zs.test.\"\nfile = \"zs.test.zone\"\n", filepath.Join(dir, "state"))
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s, err := zones.Load(path)
		if err != nil {
			b.Fatal(err)
		}
		runtime.KeepAlive(s)
	}
}
