package dnsserver_test

import (
	"crypto/tls"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/dnsserver"
)

// BenchmarkFailoverDetection measures, end to end, how long a client waits
// for the new answer when the active node dies: from closing node 1's
// listener to the first DNS answer naming node 2, polling the server every
// 5ms. Each sample is a fresh instance with TCP checks on loopback
// (interval 200ms, timeout 150ms, fall 2), and node 1 is killed at a
// random moment of its probe cycle. Run it with bench/failover.sh, or:
//
//	go test -run '^$' -bench BenchmarkFailoverDetection -benchtime 1x ./dnsserver
//
// With interval 200ms and fall 2 the expected median is about 0.3s: up to
// one interval until the first failed probe, one more for the second.
func BenchmarkFailoverDetection(b *testing.B) {
	const (
		samples  = 20
		interval = 200 * time.Millisecond
		poll     = 5 * time.Millisecond
		timing   = "interval = \"200ms\"\ntimeout = \"150ms\"\nrise = 2\nfall = 2\n"
	)
	var all []time.Duration
	for range b.N {
		for range samples {
			all = append(all, failoverOnce(b, timing, interval, poll))
		}
	}
	slices.Sort(all)
	median := (all[len(all)/2] + all[(len(all)-1)/2]) / 2
	// Nearest rank: the smallest sample with at least 95% at or below it.
	p95 := all[(len(all)*95+99)/100-1]
	b.ReportMetric(0, "ns/op") // the sum of 20 start-ups says nothing
	b.ReportMetric(median.Seconds(), "median-s")
	b.ReportMetric(p95.Seconds(), "p95-s")
	b.ReportMetric(all[0].Seconds(), "min-s")
	b.ReportMetric(all[len(all)-1].Seconds(), "max-s")
	b.Logf("failover detection: median %.3f s, p95 %.3f s (%d samples, min %.3f s, max %.3f s; interval %s, fall 2, timeout 150ms, TCP checks, polled every %s)",
		median.Seconds(), p95.Seconds(), len(all), all[0].Seconds(), all[len(all)-1].Seconds(), interval, poll)
}

// failoverOnce starts two TCP backends and an instance, kills node 1 and
// returns the time until the server answers node 2.
func failoverOnce(b *testing.B, timing string, interval, poll time.Duration) time.Duration {
	b.Helper()
	b1 := foNewBackend(b, "tcp", "127.0.10.1", tls.Certificate{})
	b2 := foNewBackend(b, "tcp", "127.0.10.2", tls.Certificate{})
	defer b1.stop()
	defer b2.stop()
	nodes := []foNode{foNodeFor(1, "tcp", b1, timing), foNodeFor(2, "tcp", b2, timing)}
	e := start(b, foConfig(b, nodes, foSvc{}), dnsserver.Options{Version: "v0.0.0-failover-test"})
	defer e.Stop()
	in, addr := e.in, e.Addr
	if a := foAsk(b, addr); a != nodes[0].Address {
		b.Fatalf("first answer %s, want node 1 %s", a, nodes[0].Address)
	}
	// A random phase of the probe cycle, as an outage would have.
	time.Sleep(interval + rand.N(interval))
	if s := in.Prober.Snapshot()["n1"]; !s.Up {
		b.Fatalf("node 1 down before the kill: %+v", s)
	}

	killed := time.Now()
	b1.stop()
	deadline := killed.Add(foDeadline)
	for {
		r, err := foQuery("udp", addr, dns.TypeA)
		if err != nil {
			b.Fatal(err)
		}
		a, err := foRead(r, dns.TypeA)
		if err != nil {
			b.Fatal(err)
		}
		switch a {
		case nodes[1].Address:
			return time.Since(killed)
		case nodes[0].Address:
		default:
			b.Fatalf("answer %s, want node 1 or 2", a)
		}
		if time.Now().After(deadline) {
			b.Fatalf("no failover %s after the kill", foDeadline)
		}
		time.Sleep(poll)
	}
}
