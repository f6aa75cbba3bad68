package dnsserver

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// TestFastPathZeroAllocsLongNames: names longer than the compiler's 32-byte
// stack buffer for string conversions cost no allocation either (zone
// search and admin-name detection take the name as bytes).
func TestFastPathZeroAllocsLongNames(t *testing.T) {
	s := fastServer(t, "")
	client := netip.MustParseAddr("127.0.99.5")
	for _, name := range []string{
		"a-rather-long-label-to-pass-32-bytes.b.c.nope.fast.test.", // NXDOMAIN
		"a-rather-long-label-to-pass-32-bytes.example.com.",        // REFUSED
	} {
		pkt := packQ(name, dns.TypeA, nil)
		var q query
		out := make([]byte, 0, 4096)
		p := s.pub.Load()
		if !parseQuery(pkt, &q) {
			t.Fatalf("%s: not parsed", name)
		}
		if _, _, _, ok := s.fastAnswer(p, &q, client, out[:0]); !ok {
			t.Fatalf("%s: the fast path declined", name)
		}
		allocs := testing.AllocsPerRun(1000, func() {
			parseQuery(pkt, &q)
			s.fastAnswer(p, &q, client, out[:0])
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per query, want 0", name, allocs)
		}
	}
}

// TestReaderPacketZeroAllocs: the read loops' shared body (batch, packet,
// done) allocates nothing for a query the fast path answers.
func TestReaderPacketZeroAllocs(t *testing.T) {
	s := fastServer(t, "")
	r := s.newReader(nil, nil)
	from := netip.MustParseAddrPort("127.0.99.5:5300")
	out := make([]byte, 0, 4096)
	for _, pkt := range [][]byte{
		packQ("keys.fast.test.", dns.TypeA, ecs("10.20.3.0", 24)),
		packQ("www.fast.test.", dns.TypeA, nil),
		packQ("nope.fast.test.", dns.TypeA, nil),
	} {
		p, start, timed := r.batch()
		if r.packet(p, pkt, from, start, out[:0]) == nil {
			t.Fatalf("%x: no answer", pkt)
		}
		allocs := testing.AllocsPerRun(1000, func() {
			p, start, timed = r.batch()
			r.packet(p, pkt, from, start, out[:0])
			r.done(start, timed, 1)
		})
		if allocs != 0 {
			t.Errorf("%x: %v allocations per query, want 0", pkt, allocs)
		}
	}
}
