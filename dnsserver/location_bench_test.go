package dnsserver_test

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/dnsserver"
	"github.com/failoverdns/failoverdns/dnsserver/testenv"
	"github.com/failoverdns/failoverdns/zones"
)

// locBenchLocations is how many [[location]]s the subnets are spread over.
const locBenchLocations = 8

// locBenchSnapshot loads a config with n distinct /24s (10.x.y.0/24) over
// locBenchLocations locations, each with its own order for keys, and
// returns the snapshot and the subnets.
func locBenchSnapshot(b *testing.B, n int) (*zones.Snapshot, []netip.Prefix) {
	b.Helper()
	zone, err := filepath.Abs("../testdata/location/example.test.zone")
	if err != nil {
		b.Fatal(err)
	}
	subnets := make([]netip.Prefix, n)
	for i := range subnets {
		subnets[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "[server]\nlisten = [\"127.0.0.1:0\"]\nhttp = \"\"\n\n[[zone]]\norigin = \"example.test.\"\nfile = %q\n", zone)
	cfg.WriteString(locNodesNone)
	for l := range locBenchLocations {
		fmt.Fprintf(&cfg, "\n[[location]]\nname = \"loc%d\"\nsubnets = [", l)
		for i := l; i < n; i += locBenchLocations {
			fmt.Fprintf(&cfg, "%q,", subnets[i].String())
		}
		cfg.WriteString("]\n")
	}
	cfg.WriteString("\n[[service]]\nname = \"keys.example.test.\"\nttl = 30\nnodes = [\"sems1\", \"sems2\", \"sems3\"]\n[service.locations]\n")
	orders := []string{`["sems2", "sems1"]`, `["sems3", "sems2"]`, `["sems1", "sems3"]`}
	for l := range locBenchLocations {
		fmt.Fprintf(&cfg, "loc%d = %s\n", l, orders[l%len(orders)])
	}
	path := filepath.Join(b.TempDir(), "bench.toml")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	snap, err := zones.Load(path)
	if err != nil {
		b.Fatalf("zones.Load:\n%v", errors.Join(zones.Errors(err)...))
	}
	if got := snap.LocationCount(); got != 1+locBenchLocations {
		b.Fatalf("LocationCount() = %d, want %d", got, 1+locBenchLocations)
	}
	return snap, subnets
}

// locBenchClients returns a fixed pseudo-random mix of client addresses:
// three in four inside one of the subnets, the rest in none.
func locBenchClients(subnets []netip.Prefix) []netip.Addr {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([]netip.Addr, 4096)
	for i := range out {
		if i%4 == 3 {
			out[i] = netip.AddrFrom4([4]byte{192, 168, byte(r.IntN(256)), byte(r.IntN(256))})
			continue
		}
		a := subnets[r.IntN(len(subnets))].Addr().As4()
		a[3] = byte(1 + r.IntN(254))
		out[i] = netip.AddrFrom4(a)
	}
	return out
}

// locBenchWriter is a dns.ResponseWriter that only counts replies.
type locBenchWriter struct {
	remote  net.Addr
	local   net.Addr
	replies int
	last    *dns.Msg
}

func (w *locBenchWriter) LocalAddr() net.Addr         { return w.local }
func (w *locBenchWriter) RemoteAddr() net.Addr        { return w.remote }
func (w *locBenchWriter) WriteMsg(m *dns.Msg) error   { w.replies++; w.last = m; return nil }
func (w *locBenchWriter) Write(p []byte) (int, error) { w.replies++; return len(p), nil }
func (w *locBenchWriter) Close() error                { return nil }
func (w *locBenchWriter) TsigStatus() error           { return nil }
func (w *locBenchWriter) TsigTimersOnly(bool)         {}
func (w *locBenchWriter) Hijack()                     {}

var locBenchSink int

// BenchmarkLocate measures the per-query location lookup with 10 and with
// 10,000 subnets: the LPM table makes both cost the same. Locate is the
// packet-source lookup, LocatePrefix the ECS one, and ServeDNS the whole
// answer path (ECS /24 from the client's subnet, through a fake writer).
func BenchmarkLocate(b *testing.B) {
	for _, n := range []int{10, 10000} {
		b.Run(fmt.Sprintf("subnets=%d", n), func(b *testing.B) {
			snap, subnets := locBenchSnapshot(b, n)
			clients := locBenchClients(subnets)
			prefixes := make([]netip.Prefix, len(clients))
			for i, a := range clients {
				prefixes[i] = netip.PrefixFrom(a, 24).Masked()
			}
			// Sanity: the clients really are spread over the locations.
			seen := map[int]bool{}
			for _, a := range clients {
				loc, _ := snap.Locate(a)
				seen[loc] = true
			}
			if want := min(n, locBenchLocations) + 1; len(seen) != want {
				b.Fatalf("clients fall in %d views, want %d", len(seen), want)
			}

			b.Run("Locate", func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					loc, bits := snap.Locate(clients[i&(len(clients)-1)])
					locBenchSink += loc + bits
					i++
				}
			})
			b.Run("LocatePrefix", func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					loc, bits := snap.LocatePrefix(prefixes[i&(len(prefixes)-1)])
					locBenchSink += loc + bits
					i++
				}
			})
			b.Run("ServeDNS", func(b *testing.B) {
				srv := dnsserver.New(snap, slog.New(slog.NewTextHandler(io.Discard, nil)), "bench")
				queries := make([]*dns.Msg, 256)
				for i := range queries {
					p := prefixes[i]
					queries[i] = testenv.Query("keys.example.test.", dns.TypeA, &dns.EDNS0_SUBNET{
						Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: p.Addr().AsSlice(),
					})
				}
				w := &locBenchWriter{
					remote: &net.UDPAddr{IP: net.ParseIP("127.0.1.5"), Port: 5300},
					local:  &net.UDPAddr{IP: net.ParseIP("127.0.0.1"), Port: 53},
				}
				// One checked answer before timing.
				srv.ServeDNS(w, queries[0])
				if w.replies != 1 || w.last.Rcode != dns.RcodeSuccess || len(w.last.Answer) != 1 {
					b.Fatalf("ServeDNS: %d replies, last %v", w.replies, w.last)
				}
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					srv.ServeDNS(w, queries[i&(len(queries)-1)])
					i++
				}
				locBenchSink += w.replies
			})
		})
	}
}
