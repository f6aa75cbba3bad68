package dnsserver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/failoverdns/failoverdns/dnsserver/testenv"
	"github.com/failoverdns/failoverdns/zones"
)

// BenchmarkInstanceHeap is the live heap of a started instance per service
// (issue 16: RSS at most 1.5 KB per service above the empty server), with
// the configs of bench/scale.sh: n services over the same three nodes, TCP
// checks against loopback listeners, failback after 1s. It reports the
// heap after a full collection above that of the same instance with no
// services, per service; RSS adds the runtime's slack on top (GOGC), which
// bench/scale.sh measures on the binary. FAILOVERDNS_HEAPPROFILE=FILE
// writes the largest instance's heap profile (go tool pprof
// -inuse_space dnsserver.test FILE).
//
//	go test -run '^$' -bench BenchmarkInstanceHeap -benchtime 1x ./dnsserver
func BenchmarkInstanceHeap(b *testing.B) {
	empty := instanceHeap(b, 0, "")
	for _, n := range []int{1000, 100000} {
		b.Run(fmt.Sprintf("%d-services", n), func(b *testing.B) {
			var heap uint64
			for range b.N {
				heap = instanceHeap(b, n, os.Getenv("FAILOVERDNS_HEAPPROFILE"))
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(heap)/(1<<20), "heap-MB")
			b.ReportMetric((float64(heap)-float64(empty))/float64(n), "heap-B/service")
		})
	}
}

// instanceHeap starts an instance with n services and returns the live
// heap while it runs, with its first decisions published.
func instanceHeap(tb testing.TB, n int, profile string) uint64 {
	tb.Helper()
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			_ = l.Close()
		}
	}()
	c := testenv.Config{Zones: []testenv.Zone{{Origin: "scale.test.", File: "scale.test.zone",
		Text: "$ORIGIN scale.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 192.0.2.53\n"}}}
	for i := range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		lns = append(lns, l)
		go func() {
			for {
				conn, err := l.Accept()
				if err != nil {
					return
				}
				_ = conn.Close()
			}
		}()
		port := l.Addr().(*net.TCPAddr).Port
		c.Nodes = append(c.Nodes, testenv.Node{Name: fmt.Sprintf("n%d", i), Address: fmt.Sprintf("127.0.40.%d", i+1),
			Check: "type = \"tcp\"\ntarget = \"127.0.0.1\"\nport = " + strconv.Itoa(port) + "\ninterval = \"200ms\"\ntimeout = \"150ms\"\nrise = 2\nfall = 2\n"})
	}
	for i := range n {
		c.Services = append(c.Services, testenv.Service{Name: fmt.Sprintf("s%d.scale.test.", i), TTL: 30,
			Nodes: []string{"n0", "n1", "n2"}, Failback: "auto", FailbackAfter: "1s"})
	}
	path := c.Write(tb, tb.TempDir())
	c = testenv.Config{} // the test's own copy of the config is not the server's
	snap, err := zones.Load(path)
	if err != nil {
		tb.Fatal(err)
	}
	in, err := StartWith(snap, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "test", ConfigPath: path})
	if err != nil {
		tb.Fatal(err)
	}
	snap = nil
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		in.Close(ctx)
	}()
	time.Sleep(time.Second) // a few probe rounds: every node up and decided
	heap := testenv.LiveHeap()
	if profile != "" && n > 0 {
		f, err := os.Create(profile)
		if err != nil {
			tb.Fatal(err)
		}
		defer f.Close()
		if err := pprof.WriteHeapProfile(f); err != nil {
			tb.Fatal(err)
		}
	}
	return heap
}
