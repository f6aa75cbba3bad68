package dnsserver

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// benchFast measures the fast path's work per query as a reader does it for
// batches of one: the clock when due, rate limiting, parse, answer into a reused
// buffer, count and time it. The socket read and write are the kernel's.
func benchFast(b *testing.B, s *Server, pkt []byte, client netip.Addr) {
	var q query
	out := make([]byte, 0, 4096)
	stats := s.metrics.newReaderStats()
	p := s.pub.Load()
	if _, ok := s.serveFast(p, pkt, client, &q, out[:0], stats); !ok {
		b.Fatal("the fast path declined")
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p := s.pub.Load()
		timed := i%latencySample == 0
		var start time.Duration
		if timed || p.fast.rrl != nil {
			start = monoNow()
		}
		if s.admit(p, client, start) != rrlAllow {
			b.Fatal("rate limited")
		}
		resp, _ := s.serveFast(p, pkt, client, &q, out[:0], stats)
		if timed {
			stats.observe(monoNow()-start, 1)
		}
		out = resp[:0]
	}
}

func BenchmarkServeService(b *testing.B) {
	s := fastServer(b, "")
	benchFast(b, s, packQ("keys.fast.test.", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(1232, false) }), netip.MustParseAddr("127.0.99.5"))
}

func BenchmarkServeStatic(b *testing.B) {
	s := fastServer(b, "")
	benchFast(b, s, packQ("www.fast.test.", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(1232, false) }), netip.MustParseAddr("127.0.0.1"))
}

func BenchmarkServeNXDOMAIN(b *testing.B) {
	s := fastServer(b, "")
	benchFast(b, s, packQ("no-such-name.fast.test.", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(1232, false) }), netip.MustParseAddr("127.0.0.1"))
}

// BenchmarkServeECS10kSubnets: a service localized over 10,000 location
// subnets, queried with ECS; the prefix table keeps this flat.
func BenchmarkServeECS10kSubnets(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("[[location]]\nname = \"many\"\nsubnets = [")
	for i := range 10000 {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "\"100.%d.%d.0/24\"", 64+i/256, i%256)
	}
	sb.WriteString("]\n")
	s := fastServerWith(b, "", sb.String(), "many = [\"sems3\", \"sems2\"]\n")
	benchFast(b, s, packQ("keys.fast.test.", dns.TypeA, ecs("100.70.33.0", 24)), netip.MustParseAddr("127.0.0.1"))
}
