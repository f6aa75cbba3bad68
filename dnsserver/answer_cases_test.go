package dnsserver

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// Case tables in the manner of CoreDNS's plugin/file/lookup_test.go: a
// query (name, type, client, client subnet) and the exact answer (rcode,
// AA, records with their TTLs, ECS scope), run through answer without
// sockets, on testdata/fast with every node up. Where the UDP fast path
// answers the same query, its bytes must be the general path's.

type answerCase struct {
	qname  string
	qtype  uint16
	client string // the packet's source; "": 127.0.0.1
	subnet string // an ECS option's subnet; "": no ECS (and no EDNS)
	rcode  int
	aa     bool
	answer []string // in order
	ns     []string
	scope  int // the echoed ECS SCOPE; -1: no ECS option in the answer
}

var answerCases = []answerCase{
	// Static data, NODATA, NXDOMAIN, REFUSED.
	{qname: "www.fast.test.", qtype: dns.TypeA, rcode: dns.RcodeSuccess, aa: true, answer: []string{"www.fast.test. 300 IN A 192.0.2.80"}, scope: -1},
	{qname: "WwW.FaSt.TeSt.", qtype: dns.TypeAAAA, rcode: dns.RcodeSuccess, aa: true, answer: []string{"WwW.FaSt.TeSt. 300 IN AAAA 2001:db8::80"}, scope: -1},
	{qname: "www.fast.test.", qtype: dns.TypeMX, rcode: dns.RcodeSuccess, aa: true, ns: []string{fastSOA}, scope: -1},
	{qname: "nope.fast.test.", qtype: dns.TypeA, rcode: dns.RcodeNameError, aa: true, ns: []string{fastSOA}, scope: -1},
	{qname: "b.ent.fast.test.", qtype: dns.TypeA, rcode: dns.RcodeSuccess, aa: true, ns: []string{fastSOA}, scope: -1},
	{qname: "example.com.", qtype: dns.TypeA, rcode: dns.RcodeRefused, scope: -1},
	{qname: "mx.fast.test.", qtype: dns.TypeMX, rcode: dns.RcodeSuccess, aa: true, answer: []string{"mx.fast.test. 300 IN MX 10 www.fast.test."}, scope: -1},
	// A CNAME chased in the zone; a wildcard synthesized; a referral.
	{qname: "alias.fast.test.", qtype: dns.TypeA, rcode: dns.RcodeSuccess, aa: true, answer: []string{"alias.fast.test. 300 IN CNAME www.fast.test.", "www.fast.test. 300 IN A 192.0.2.80"}, scope: -1},
	{qname: "x.wild.fast.test.", qtype: dns.TypeA, rcode: dns.RcodeSuccess, aa: true, answer: []string{"x.wild.fast.test. 300 IN A 192.0.2.99"}, scope: -1},
	{qname: "deep.sub.fast.test.", qtype: dns.TypeA, rcode: dns.RcodeSuccess, ns: []string{"sub.fast.test. 300 IN NS ns.sub.fast.test."}, scope: -1},
	// The conformance zone, served alongside: a CNAME chain, a dangling
	// CNAME, a CNAME out of our zones, an empty non-terminal.
	{qname: "alias.conformance.test.", qtype: dns.TypeA, rcode: dns.RcodeSuccess, aa: true, answer: []string{
		"alias.conformance.test. 120 IN CNAME alias2.conformance.test.", "alias2.conformance.test. 120 IN CNAME www.conformance.test.", "www.conformance.test. 300 IN A 192.0.2.80"}, scope: -1},
	{qname: "dangling.conformance.test.", qtype: dns.TypeA, rcode: dns.RcodeNameError, aa: true, answer: []string{"dangling.conformance.test. 120 IN CNAME missing.conformance.test."}, ns: []string{conformanceSOA}, scope: -1},
	{qname: "external.conformance.test.", qtype: dns.TypeA, rcode: dns.RcodeSuccess, aa: true, answer: []string{"external.conformance.test. 120 IN CNAME target.example.org."}, scope: -1},
	{qname: "b.conformance.test.", qtype: dns.TypeA, rcode: dns.RcodeSuccess, aa: true, ns: []string{conformanceSOA}, scope: -1},
	// The service: its view comes from the packet's source, or from the
	// client subnet when there is one (SOURCE 0: from the source).
	{qname: "keys.fast.test.", qtype: dns.TypeA, rcode: dns.RcodeSuccess, aa: true, answer: []string{keysA("192.0.2.11")}, scope: -1},
	{qname: "keys.fast.test.", qtype: dns.TypeA, client: "127.0.99.5", rcode: dns.RcodeSuccess, aa: true, answer: []string{keysA("192.0.2.12")}, scope: -1},
	{qname: "keys.fast.test.", qtype: dns.TypeA, subnet: "10.20.3.0/24", rcode: dns.RcodeSuccess, aa: true, answer: []string{keysA("192.0.2.13")}, scope: 24},
	{qname: "keys.fast.test.", qtype: dns.TypeA, subnet: "10.20.4.0/24", rcode: dns.RcodeSuccess, aa: true, answer: []string{keysA("192.0.2.12")}, scope: 24},
	{qname: "keys.fast.test.", qtype: dns.TypeA, subnet: "10.20.0.0/16", rcode: dns.RcodeSuccess, aa: true, answer: []string{keysA("192.0.2.12")}, scope: 24},
	{qname: "keys.fast.test.", qtype: dns.TypeA, subnet: "198.51.100.0/24", rcode: dns.RcodeSuccess, aa: true, answer: []string{keysA("192.0.2.11")}, scope: 24},
	{qname: "keys.fast.test.", qtype: dns.TypeA, client: "127.0.99.5", subnet: "0.0.0.0/0", rcode: dns.RcodeSuccess, aa: true, answer: []string{keysA("192.0.2.12")}, scope: 0},
	{qname: "keys.fast.test.", qtype: dns.TypeAAAA, subnet: "2001:db8::/32", rcode: dns.RcodeSuccess, aa: true, answer: []string{"keys.fast.test. 30 IN AAAA 2001:db8::11"}, scope: 48},
	// emea's first node, sems2, has no IPv6 address: NODATA.
	{qname: "keys.fast.test.", qtype: dns.TypeAAAA, subnet: "2001:db8:20::/56", rcode: dns.RcodeSuccess, aa: true, ns: []string{fastSOA}, scope: 48},
	// A name of no service: the scope is 0, the answer the same for all.
	{qname: "www.fast.test.", qtype: dns.TypeA, subnet: "10.20.3.0/24", rcode: dns.RcodeSuccess, aa: true, answer: []string{"www.fast.test. 300 IN A 192.0.2.80"}, scope: 0},
	// Admin names are answered to admin_nets only (127.0.0.0/8 by default).
	{qname: "_pin.keys.fast.test.", qtype: dns.TypeTXT, client: "192.0.2.200", rcode: dns.RcodeRefused, scope: -1},
}

const fastSOA = "fast.test. 60 IN SOA ns1.fast.test. hostmaster.fast.test. 2026112101 3600 600 1209600 60"

const conformanceSOA = "conformance.test. 300 IN SOA ns1.conformance.test. hostmaster.conformance.test. 2026010101 7200 3600 1209600 300"

func keysA(ip string) string { return "keys.fast.test. 30 IN A " + ip }

func TestAnswerCases(t *testing.T) {
	s := fastServer(t, "")
	for _, c := range answerCases {
		name := c.qname + "/" + dns.TypeToString[c.qtype] + "/" + c.client + "/" + c.subnet
		q := new(dns.Msg)
		q.Question = []dns.Question{{Name: c.qname, Qtype: c.qtype, Qclass: dns.ClassINET}}
		if c.subnet != "" {
			q.SetEdns0(1232, false)
			p, err := netip.ParsePrefix(c.subnet)
			if err != nil {
				t.Fatal(err)
			}
			e := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()}
			if p.Addr().Is6() {
				e.Family = 2
			}
			q.IsEdns0().Option = append(q.IsEdns0().Option, e)
		}
		client := netip.MustParseAddr("127.0.0.1")
		if c.client != "" {
			client = netip.MustParseAddr(c.client)
		}
		// As it arrives: packed and unpacked (miekg/dns sets the OPT's
		// RDLENGTH only then).
		pkt, err := q.Pack()
		if err != nil {
			t.Fatal(err)
		}
		q = new(dns.Msg)
		if err := q.Unpack(pkt); err != nil {
			t.Fatal(err)
		}
		req := &Request{Msg: q, Client: client, Transport: UDP}
		m := s.answer(s.Snapshot(), req)
		if m == nil {
			t.Errorf("%s: no answer", name)
			continue
		}
		wire, err := packAnswer(m, req.q.udpLimit(s.Snapshot()), nil)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		r := new(dns.Msg)
		if err := r.Unpack(wire); err != nil {
			t.Errorf("%s: the answer does not parse: %v", name, err)
			continue
		}
		checkAnswerCase(t, name, c, r)
		from := netip.AddrPortFrom(client, 5300)
		if fast, ok := s.fastBytes(pkt, from); ok && !bytes.Equal(fast, s.generalBytes(pkt, from)) {
			t.Errorf("%s: the fast path's bytes differ from the general path's", name)
		}
	}
}

func checkAnswerCase(t *testing.T, name string, c answerCase, r *dns.Msg) {
	t.Helper()
	if r.Rcode != c.rcode || r.Authoritative != c.aa || !r.Response || r.Truncated {
		t.Errorf("%s: rcode %s AA %v QR %v TC %v, want %s AA %v QR true TC false", name,
			dns.RcodeToString[r.Rcode], r.Authoritative, r.Response, r.Truncated, dns.RcodeToString[c.rcode], c.aa)
	}
	if got := rrStrings(r.Answer); !slices.Equal(got, c.answer) {
		t.Errorf("%s: answer\n%s\nwant\n%s", name, strings.Join(got, "\n"), strings.Join(c.answer, "\n"))
	}
	if got := rrStrings(r.Ns); !slices.Equal(got, c.ns) {
		t.Errorf("%s: authority\n%s\nwant\n%s", name, strings.Join(got, "\n"), strings.Join(c.ns, "\n"))
	}
	scope := -1
	if o := r.IsEdns0(); o != nil {
		for _, e := range o.Option {
			if sn, ok := e.(*dns.EDNS0_SUBNET); ok {
				scope = int(sn.SourceScope)
			}
		}
	}
	if scope != c.scope {
		t.Errorf("%s: ECS scope %d, want %d (-1: no ECS option)", name, scope, c.scope)
	}
}

// rrStrings is rrs in presentation form, tabs as spaces.
func rrStrings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		out = append(out, strings.Join(strings.Fields(rr.String()), " "))
	}
	return out
}
