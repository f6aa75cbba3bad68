package dnsserver_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/dnsserver"
	"github.com/failoverdns/failoverdns/dnsserver/testenv"
)

// The conformance zone is testdata/conformance.test.zone; every expected
// record below is written out in full, TTL included.
const (
	testVersion = "v0.0.0-conformance"
	ourUDPSize  = 1232 // the default udp_size
	ioTimeout   = 5 * time.Second

	negSOA = "conformance.test. 300 IN SOA ns1.conformance.test. hostmaster.conformance.test. 2026010101 7200 3600 1209600 300"
	apexNS = "conformance.test. 3600 IN NS ns1.conformance.test."
	wwwA   = "www.conformance.test. 300 IN A 192.0.2.80"
	wwwTXT = `www.conformance.test. 600 IN TXT "hello world"`

	subNS   = "sub.conformance.test. 86400 IN NS ns.sub.conformance.test."
	subGlue = "ns.sub.conformance.test. 86400 IN A 192.0.2.53"
)

func conformanceZone(t testing.TB) testenv.Zone {
	t.Helper()
	return testenv.Zone{Origin: "conformance.test.", File: testenv.Testdata(t, 1, "conformance.test.zone")}
}

// startServer starts a server on 127.0.0.1:0 serving zs (default: the
// conformance zone) with serverExtra in [server], and returns its address
// (UDP and TCP share the port).
func startServer(t testing.TB, serverExtra string, zs ...testenv.Zone) string {
	t.Helper()
	if len(zs) == 0 {
		zs = []testenv.Zone{conformanceZone(t)}
	}
	addr := start(t, testenv.Config{Server: serverExtra, Zones: zs}, dnsserver.Options{}).Addr
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("Addrs() = %v, want 127.0.0.1 with the bound port", addr)
	}
	return addr
}

// exchange sends q over network ("udp" or "tcp") with a miekg/dns client
// connection and returns the reply and its size on the wire. The read buffer
// is 64 KiB whatever q says, so an oversized UDP reply is seen, not cut.
func exchange(t testing.TB, network, addr string, q *dns.Msg) (*dns.Msg, int) {
	t.Helper()
	buf, err := q.Pack()
	if err != nil {
		t.Fatalf("pack %v: %v", q.Question, err)
	}
	raw, r := exchangeWire(t, network, addr, buf)
	return r, len(raw)
}

// exchangeWire sends the packed query buf over network and returns the
// reply, raw and parsed (read with a 64 KiB buffer, as exchange says).
func exchangeWire(t testing.TB, network, addr string, buf []byte) ([]byte, *dns.Msg) {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: ioTimeout}
	conn, err := c.Dial(addr)
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, addr, err)
	}
	defer conn.Close()
	conn.UDPSize = dns.MaxMsgSize
	if err := conn.SetDeadline(time.Now().Add(ioTimeout)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(buf); err != nil {
		t.Fatalf("write %s: %v", network, err)
	}
	raw, err := conn.ReadMsgHeader(nil)
	if err != nil {
		t.Fatalf("read %s: %v (no reply?)", network, err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(raw); err != nil {
		t.Fatalf("unpack reply over %s: %v\n%x", network, err, raw)
	}
	return raw, r
}

func mustRRs(t testing.TB, ss []string) []dns.RR {
	t.Helper()
	out := make([]dns.RR, 0, len(ss))
	for _, s := range ss {
		rr, err := dns.NewRR(s)
		if err != nil || rr == nil {
			t.Fatalf("bad expected RR %q: %v", s, err)
		}
		out = append(out, rr)
	}
	return out
}

// sameRR is dns.IsDuplicate (names compared without case) plus the TTL.
func sameRR(a, b dns.RR) bool {
	return dns.IsDuplicate(a, b) && a.Header().Ttl == b.Header().Ttl
}

func rrList(rrs []dns.RR) string {
	if len(rrs) == 0 {
		return "\t(none)\n"
	}
	var b strings.Builder
	for _, rr := range rrs {
		b.WriteString("\t" + rr.String() + "\n")
	}
	return b.String()
}

// matchSection reports whether got holds exactly want: in order when ordered,
// else as a multiset.
func matchSection(got, want []dns.RR, ordered bool) bool {
	if len(got) != len(want) {
		return false
	}
	if ordered {
		for i := range got {
			if !sameRR(got[i], want[i]) {
				return false
			}
		}
		return true
	}
	used := make([]bool, len(got))
next:
	for _, w := range want {
		for i, g := range got {
			if !used[i] && sameRR(g, w) {
				used[i] = true
				continue next
			}
		}
		return false
	}
	return true
}

// subsetOf reports whether every record of got is in want, each at most once.
func subsetOf(got, want []dns.RR) bool {
	used := make([]bool, len(want))
next:
	for _, g := range got {
		for i, w := range want {
			if !used[i] && sameRR(g, w) {
				used[i] = true
				continue next
			}
		}
		return false
	}
	return true
}

func withoutOPT(rrs []dns.RR) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		if rr.Header().Rrtype != dns.TypeOPT {
			out = append(out, rr)
		}
	}
	return out
}

func countOPT(rrs []dns.RR) int {
	n := 0
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			n++
		}
	}
	return n
}

type conformanceCase struct {
	name   string
	qname  string
	qtype  uint16
	qclass uint16 // 0: IN
	opcode int
	rd     bool

	edns        bool
	bufsize     uint16
	do          bool
	ednsVersion uint8
	ednsOption  bool           // add an option code nobody knows
	mutate      func(*dns.Msg) // last touch to the query, for odd messages

	net   string // "udp" or "tcp" only; "" runs both
	chaos bool   // ask the server started with chaos = true

	wantRcode int
	orRcode   []int // other acceptable rcodes, where the contract allows two
	wantAA    bool
	anyAA     bool // AA not asserted (BADVERS)
	wantTC    bool
	// wantAnswer, wantNs, wantExtra are RR strings. With wantTC the answer
	// must be a subset of wantAnswer and the other sections are not checked.
	wantAnswer []string
	wantNs     []string
	wantExtra  []string // OPT excluded: checked on its own
	ordered    bool     // wantAnswer order matters (CNAME chains)
	anyExtra   bool     // additional-section processing is optional here
	maxLen     int      // reply size limit on the wire, 0: none
	// headerOnly: the server rejected the message on its header, so the
	// reply may omit the question and the OPT.
	headerOnly   bool
	ownerIsQname bool // every answer owner is the query name, byte for byte
}

func (c conformanceCase) query() *dns.Msg {
	q := new(dns.Msg)
	q.Id = dns.Id()
	q.Opcode = c.opcode
	q.RecursionDesired = c.rd
	class := c.qclass
	if class == 0 {
		class = dns.ClassINET
	}
	// Not SetQuestion: the name goes out exactly as written.
	q.Question = []dns.Question{{Name: c.qname, Qtype: c.qtype, Qclass: class}}
	if c.edns {
		size := c.bufsize
		if size == 0 {
			size = 1232
		}
		q.SetEdns0(size, c.do)
		opt := q.IsEdns0()
		opt.SetVersion(c.ednsVersion)
		if c.ednsOption {
			opt.Option = append(opt.Option, &dns.EDNS0_LOCAL{Code: 65001, Data: []byte("ignore me")})
		}
	}
	if c.mutate != nil {
		c.mutate(q)
	}
	return q
}

func conformanceCases() []conformanceCase {
	big := testenv.ConformanceBigTXT()
	loopCNAMEs := []string{
		"loop1.conformance.test. 60 IN CNAME loop2.conformance.test.",
		"loop2.conformance.test. 60 IN CNAME loop1.conformance.test.",
	}
	chain := []string{
		"alias.conformance.test. 120 IN CNAME alias2.conformance.test.",
		"alias2.conformance.test. 120 IN CNAME www.conformance.test.",
	}
	return []conformanceCase{
		// Positive answers.
		{name: "A", qname: "www.conformance.test.", qtype: dns.TypeA,
			wantAA: true, wantAnswer: []string{wwwA}},
		{name: "question case echoed", qname: "WwW.CoNfOrMaNcE.TeSt.", qtype: dns.TypeA,
			wantAA: true, wantAnswer: []string{wwwA}},
		{name: "RD copied, RA never set", qname: "www.conformance.test.", qtype: dns.TypeA, rd: true,
			wantAA: true, wantAnswer: []string{wwwA}},
		{name: "AAAA", qname: "www.conformance.test.", qtype: dns.TypeAAAA,
			wantAA: true, wantAnswer: []string{"www.conformance.test. 300 IN AAAA 2001:db8::80"}},
		{name: "TXT", qname: "www.conformance.test.", qtype: dns.TypeTXT,
			wantAA: true, wantAnswer: []string{wwwTXT}},
		{name: "SOA at apex", qname: "conformance.test.", qtype: dns.TypeSOA,
			wantAA: true, wantAnswer: []string{"conformance.test. 3600 IN SOA ns1.conformance.test. hostmaster.conformance.test. 2026010101 7200 3600 1209600 300"}},
		{name: "NS at apex", qname: "conformance.test.", qtype: dns.TypeNS,
			wantAA: true, wantAnswer: []string{apexNS}, anyExtra: true},
		{name: "MX at apex", qname: "conformance.test.", qtype: dns.TypeMX,
			wantAA: true, wantAnswer: []string{"conformance.test. 3600 IN MX 10 mail.conformance.test."}, anyExtra: true},
		{name: "name server address", qname: "ns1.conformance.test.", qtype: dns.TypeAAAA,
			wantAA: true, wantAnswer: []string{"ns1.conformance.test. 3600 IN AAAA 2001:db8::1"}},

		// Negative answers: SOA TTL = min(3600, minimum 300) = 300.
		{name: "NODATA", qname: "www.conformance.test.", qtype: dns.TypeMX,
			wantAA: true, wantNs: []string{negSOA}},
		{name: "NXDOMAIN", qname: "nope.conformance.test.", qtype: dns.TypeA,
			wantRcode: dns.RcodeNameError, wantAA: true, wantNs: []string{negSOA}},
		{name: "NXDOMAIN below a leaf", qname: "deeper.www.conformance.test.", qtype: dns.TypeA,
			wantRcode: dns.RcodeNameError, wantAA: true, wantNs: []string{negSOA}},
		{name: "empty non-terminal is NODATA", qname: "b.conformance.test.", qtype: dns.TypeA,
			wantAA: true, wantNs: []string{negSOA}},
		{name: "name below the empty non-terminal", qname: "a.b.conformance.test.", qtype: dns.TypeA,
			wantAA: true, wantAnswer: []string{"a.b.conformance.test. 3600 IN A 192.0.2.10"}},

		// CNAME.
		{name: "CNAME chain chased", qname: "alias.conformance.test.", qtype: dns.TypeA,
			wantAA: true, ordered: true, wantAnswer: append(append([]string{}, chain...), wwwA)},
		{name: "CNAME chain, other type", qname: "alias.conformance.test.", qtype: dns.TypeTXT,
			wantAA: true, ordered: true, wantAnswer: append(append([]string{}, chain...), wwwTXT)},
		{name: "CNAME chain ending in NODATA", qname: "alias.conformance.test.", qtype: dns.TypeMX,
			wantAA: true, ordered: true, wantAnswer: chain, wantNs: []string{negSOA}},
		{name: "CNAME asked for itself", qname: "alias.conformance.test.", qtype: dns.TypeCNAME,
			wantAA: true, wantAnswer: chain[:1]},
		{name: "CNAME to a missing in-zone name", qname: "dangling.conformance.test.", qtype: dns.TypeA,
			wantRcode: dns.RcodeNameError, wantAA: true,
			wantAnswer: []string{"dangling.conformance.test. 120 IN CNAME missing.conformance.test."},
			wantNs:     []string{negSOA}},
		{name: "CNAME out of zone", qname: "external.conformance.test.", qtype: dns.TypeA,
			wantAA: true, wantAnswer: []string{"external.conformance.test. 120 IN CNAME target.example.org."}},
		// A loop ends, and each CNAME of it appears once (RFC 2181 5: no
		// duplicate records in a response).
		{name: "CNAME loop terminates", qname: "loop1.conformance.test.", qtype: dns.TypeA,
			wantAA: true, ordered: true, wantAnswer: loopCNAMEs},

		// Delegation to sub.conformance.test.: a referral, AA clear.
		{name: "referral below the cut", qname: "host.sub.conformance.test.", qtype: dns.TypeA,
			wantAA: false, wantNs: []string{subNS}, wantExtra: []string{subGlue}},
		{name: "referral at the cut", qname: "sub.conformance.test.", qtype: dns.TypeA,
			wantAA: false, wantNs: []string{subNS}, wantExtra: []string{subGlue}},
		{name: "referral for NS at the cut", qname: "sub.conformance.test.", qtype: dns.TypeNS,
			wantAA: false, wantNs: []string{subNS}, wantExtra: []string{subGlue}},
		{name: "referral for the glue name", qname: "ns.sub.conformance.test.", qtype: dns.TypeA,
			wantAA: false, wantNs: []string{subNS}, wantExtra: []string{subGlue}},
		{name: "DS at the cut from the parent side", qname: "sub.conformance.test.", qtype: dns.TypeDS,
			wantAA: true, wantNs: []string{negSOA}},

		// Wildcards.
		{name: "wildcard synthesized with the query name", qname: "Foo.WILD.conformance.test.", qtype: dns.TypeA,
			wantAA: true, ownerIsQname: true, wantAnswer: []string{"foo.wild.conformance.test. 3600 IN A 192.0.2.99"}},
		{name: "wildcard two labels down", qname: "a.b.wild.conformance.test.", qtype: dns.TypeTXT,
			wantAA: true, ownerIsQname: true, wantAnswer: []string{`a.b.wild.conformance.test. 3600 IN TXT "wildcard"`}},
		{name: "wildcard NODATA", qname: "foo.wild.conformance.test.", qtype: dns.TypeMX,
			wantAA: true, wantNs: []string{negSOA}},
		{name: "existing name under the wildcard", qname: "real.wild.conformance.test.", qtype: dns.TypeA,
			wantAA: true, wantAnswer: []string{"real.wild.conformance.test. 3600 IN A 192.0.2.98"}},
		{name: "existing name under the wildcard is not synthesized", qname: "real.wild.conformance.test.", qtype: dns.TypeTXT,
			wantAA: true, wantNs: []string{negSOA}},
		{name: "wildcard parent is an empty non-terminal", qname: "wild.conformance.test.", qtype: dns.TypeA,
			wantAA: true, wantNs: []string{negSOA}},

		// Outside every zone.
		{name: "REFUSED outside every zone", qname: "www.example.org.", qtype: dns.TypeA,
			wantRcode: dns.RcodeRefused},
		{name: "REFUSED for the parent of a zone", qname: "test.", qtype: dns.TypeSOA,
			wantRcode: dns.RcodeRefused},
		{name: "REFUSED with EDNS", qname: "www.example.org.", qtype: dns.TypeA, edns: true,
			wantRcode: dns.RcodeRefused},

		// Opcodes and header errors: rejected before the question is read.
		{name: "opcode STATUS", qname: "www.conformance.test.", qtype: dns.TypeA, opcode: dns.OpcodeStatus,
			wantRcode: dns.RcodeNotImplemented, headerOnly: true},
		{name: "opcode NOTIFY", qname: "conformance.test.", qtype: dns.TypeSOA, opcode: dns.OpcodeNotify,
			wantRcode: dns.RcodeNotImplemented, headerOnly: true},
		// An unsigned UPDATE: NOTIMP while UPDATE is not implemented,
		// REFUSED once it is (unsigned, and no key configured here).
		{name: "opcode UPDATE unsigned", qname: "conformance.test.", qtype: dns.TypeSOA, opcode: dns.OpcodeUpdate,
			wantRcode: dns.RcodeRefused, orRcode: []int{dns.RcodeNotImplemented}, anyAA: true, headerOnly: true},
		{name: "QDCOUNT 2", qname: "www.conformance.test.", qtype: dns.TypeA,
			mutate: func(q *dns.Msg) {
				q.Question = append(q.Question, dns.Question{Name: "ns1.conformance.test.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
			},
			wantRcode: dns.RcodeFormatError, headerOnly: true},
		{name: "QDCOUNT 0", qname: "www.conformance.test.", qtype: dns.TypeA,
			mutate:    func(q *dns.Msg) { q.Question = nil },
			wantRcode: dns.RcodeFormatError, headerOnly: true},

		// QTYPE ANY (RFC 8482): one RRset, the lowest type at the name.
		{name: "ANY gives one RRset", qname: "www.conformance.test.", qtype: dns.TypeANY,
			wantAA: true, wantAnswer: []string{wwwA}},
		{name: "ANY at the apex gives the NS RRset", qname: "conformance.test.", qtype: dns.TypeANY,
			wantAA: true, wantAnswer: []string{apexNS}, anyExtra: true},

		// EDNS.
		{name: "EDNS reply carries OPT", qname: "www.conformance.test.", qtype: dns.TypeA, edns: true,
			wantAA: true, wantAnswer: []string{wwwA}},
		{name: "EDNS DO bit copied", qname: "www.conformance.test.", qtype: dns.TypeA, edns: true, do: true,
			wantAA: true, wantAnswer: []string{wwwA}},
		{name: "EDNS unknown option ignored", qname: "www.conformance.test.", qtype: dns.TypeA, edns: true, ednsOption: true,
			wantAA: true, wantAnswer: []string{wwwA}},
		{name: "EDNS negative answer", qname: "nope.conformance.test.", qtype: dns.TypeA, edns: true, do: true,
			wantRcode: dns.RcodeNameError, wantAA: true, wantNs: []string{negSOA}},
		{name: "EDNS version 1 gets BADVERS", qname: "www.conformance.test.", qtype: dns.TypeA, edns: true, ednsVersion: 1,
			wantRcode: dns.RcodeBadVers, anyAA: true},
		{name: "two OPT records", qname: "www.conformance.test.", qtype: dns.TypeA, edns: true,
			mutate: func(q *dns.Msg) {
				o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
				o.SetUDPSize(1232)
				q.Extra = append(q.Extra, o)
			},
			// RFC 6891 6.1.1 says FORMERR; whether an OPT comes back is not
			// specified.
			wantRcode: dns.RcodeFormatError, headerOnly: true},

		// Truncation of a 3 KB RRset.
		{name: "big TXT, UDP without EDNS", net: "udp", qname: "big.conformance.test.", qtype: dns.TypeTXT,
			wantAA: true, wantTC: true, wantAnswer: big, maxLen: 512},
		{name: "big TXT, UDP EDNS 1232", net: "udp", qname: "big.conformance.test.", qtype: dns.TypeTXT, edns: true, bufsize: 1232,
			wantAA: true, wantTC: true, wantAnswer: big, maxLen: 1232},
		{name: "big TXT, UDP EDNS 4096 capped at ours", net: "udp", qname: "big.conformance.test.", qtype: dns.TypeTXT, edns: true, bufsize: 4096,
			wantAA: true, wantTC: true, wantAnswer: big, maxLen: ourUDPSize},
		{name: "big TXT, UDP EDNS below 512 counts as 512", net: "udp", qname: "big.conformance.test.", qtype: dns.TypeTXT, edns: true, bufsize: 256,
			wantAA: true, wantTC: true, wantAnswer: big, maxLen: 512},
		{name: "big TXT, TCP", net: "tcp", qname: "big.conformance.test.", qtype: dns.TypeTXT,
			wantAA: true, wantAnswer: big},
		{name: "big TXT, TCP with EDNS 512", net: "tcp", qname: "big.conformance.test.", qtype: dns.TypeTXT, edns: true, bufsize: 512,
			wantAA: true, wantAnswer: big},

		// Zone transfers are not offered.
		{name: "AXFR", net: "tcp", qname: "conformance.test.", qtype: dns.TypeAXFR,
			wantRcode: dns.RcodeRefused},
		{name: "IXFR", net: "tcp", qname: "conformance.test.", qtype: dns.TypeIXFR,
			mutate: func(q *dns.Msg) {
				q.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: "conformance.test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET},
					Ns: "ns1.conformance.test.", Mbox: "hostmaster.conformance.test.", Serial: 2026010100}}
			},
			wantRcode: dns.RcodeRefused},

		// CHAOS: off by default.
		{name: "CHAOS version.bind refused by default", qname: "version.bind.", qtype: dns.TypeTXT, qclass: dns.ClassCHAOS,
			wantRcode: dns.RcodeRefused},
		{name: "CHAOS id.server refused by default", qname: "id.server.", qtype: dns.TypeTXT, qclass: dns.ClassCHAOS,
			wantRcode: dns.RcodeRefused},
		{name: "CHAOS version.bind enabled", chaos: true, qname: "version.bind.", qtype: dns.TypeTXT, qclass: dns.ClassCHAOS,
			wantAA: true, wantAnswer: []string{`version.bind. 0 CH TXT "failoverdns ` + testVersion + `"`}},
		{name: "CHAOS VERSION.BIND enabled, case kept", chaos: true, qname: "VERSION.Bind.", qtype: dns.TypeTXT, qclass: dns.ClassCHAOS,
			wantAA: true, ownerIsQname: true, wantAnswer: []string{`version.bind. 0 CH TXT "failoverdns ` + testVersion + `"`}},
		{name: "CHAOS id.server enabled", chaos: true, qname: "id.server.", qtype: dns.TypeTXT, qclass: dns.ClassCHAOS,
			wantAA: true, wantAnswer: []string{`id.server. 0 CH TXT "ns-test"`}},
		{name: "chaos server still answers IN", chaos: true, qname: "www.conformance.test.", qtype: dns.TypeA,
			wantAA: true, wantAnswer: []string{wwwA}},
	}
}

// TestConformance runs every case over a real UDP socket and a real TCP
// connection.
func TestConformance(t *testing.T) {
	addr := startServer(t, "")
	chaosAddr := startServer(t, "chaos = true\nidentity = \"ns-test\"")
	for _, c := range conformanceCases() {
		for _, network := range []string{"udp", "tcp"} {
			if c.net != "" && c.net != network {
				continue
			}
			t.Run(network+"/"+c.name, func(t *testing.T) {
				a := addr
				if c.chaos {
					a = chaosAddr
				}
				q := c.query()
				r, size := exchange(t, network, a, q)
				checkReply(t, c, q, r, size)
			})
		}
	}
}

func checkReply(t *testing.T, c conformanceCase, q, r *dns.Msg, size int) {
	t.Helper()
	if r.Id != q.Id {
		t.Errorf("ID = %d, want %d", r.Id, q.Id)
	}
	if !r.Response {
		t.Errorf("QR = 0 in the reply")
	}
	if r.RecursionAvailable {
		t.Errorf("RA = 1: recursion is never offered")
	}
	if r.Opcode != q.Opcode {
		t.Errorf("opcode = %d, want %d (copied from the query)", r.Opcode, q.Opcode)
	}
	if r.RecursionDesired != q.RecursionDesired {
		t.Errorf("RD = %v, want %v (copied from the query)", r.RecursionDesired, q.RecursionDesired)
	}
	if r.Rcode != c.wantRcode && !slices.Contains(c.orRcode, r.Rcode) {
		t.Errorf("rcode = %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[c.wantRcode])
	}
	if !c.anyAA && r.Authoritative != c.wantAA {
		t.Errorf("AA = %v, want %v", r.Authoritative, c.wantAA)
	}
	if r.Truncated != c.wantTC {
		t.Errorf("TC = %v, want %v", r.Truncated, c.wantTC)
	}
	if c.maxLen > 0 && size > c.maxLen {
		t.Errorf("reply is %d bytes, want at most %d", size, c.maxLen)
	}

	// The question, exactly as sent.
	switch {
	case c.headerOnly && len(r.Question) == 0:
	case len(r.Question) != 1 || len(q.Question) == 0:
		t.Errorf("question section = %v, want %v", r.Question, q.Question[:min(1, len(q.Question))])
	case r.Question[0] != q.Question[0]:
		t.Errorf("question = %+v, want %+v exactly (letter case included)", r.Question[0], q.Question[0])
	}

	// OPT: present with our size when the query had one, absent otherwise.
	if n := countOPT(r.Extra); n > 1 {
		t.Errorf("reply has %d OPT records", n)
	}
	reqOPT, respOPT := q.IsEdns0(), r.IsEdns0()
	switch {
	case c.headerOnly:
		if respOPT != nil && reqOPT == nil {
			t.Errorf("OPT in the reply to a query without EDNS")
		}
	case reqOPT == nil && respOPT != nil:
		t.Errorf("OPT in the reply to a query without EDNS: %v", respOPT)
	case reqOPT != nil && respOPT == nil:
		t.Errorf("no OPT in the reply to an EDNS query")
	case reqOPT != nil:
		if respOPT.UDPSize() != ourUDPSize {
			t.Errorf("OPT UDP size = %d, want %d", respOPT.UDPSize(), ourUDPSize)
		}
		if respOPT.Version() != 0 {
			t.Errorf("OPT version = %d, want 0", respOPT.Version())
		}
		if respOPT.Do() != reqOPT.Do() {
			t.Errorf("OPT DO = %v, want %v (copied from the query)", respOPT.Do(), reqOPT.Do())
		}
		if len(respOPT.Option) != 0 {
			t.Errorf("OPT options in the reply: %v", respOPT.Option)
		}
	}

	wantAnswer := mustRRs(t, c.wantAnswer)
	extra := withoutOPT(r.Extra)
	if c.wantTC {
		if !subsetOf(r.Answer, wantAnswer) {
			t.Errorf("truncated answer holds records that are not in the RRset:\n%s", rrList(r.Answer))
		}
	} else {
		if !matchSection(r.Answer, wantAnswer, c.ordered) {
			t.Errorf("answer section:\n got:\n%s want:\n%s", rrList(r.Answer), rrList(wantAnswer))
		}
		if want := mustRRs(t, c.wantNs); !matchSection(r.Ns, want, false) {
			t.Errorf("authority section:\n got:\n%s want:\n%s", rrList(r.Ns), rrList(want))
		}
		if want := mustRRs(t, c.wantExtra); !c.anyExtra && !matchSection(extra, want, false) {
			t.Errorf("additional section (OPT aside):\n got:\n%s want:\n%s", rrList(extra), rrList(want))
		}
	}
	if c.ownerIsQname {
		for _, rr := range r.Answer {
			if rr.Header().Name != q.Question[0].Name {
				t.Errorf("answer owner %q, want the query name %q byte for byte", rr.Header().Name, q.Question[0].Name)
			}
		}
	}
}

// TestTCPLargeAnswer checks that a TCP answer of nearly 64 KiB is sent whole.
func TestTCPLargeAnswer(t *testing.T) {
	const n = 220 // 220 TXT records of 250 bytes: about 58 KB on the wire
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("$ORIGIN large.test.\n$TTL 3600\n")
	b.WriteString("@ IN SOA ns1.large.test. hostmaster.large.test. 1 7200 3600 1209600 300\n")
	b.WriteString("@ IN NS ns1.large.test.\nns1 IN A 192.0.2.1\n")
	var want []string
	for i := range n {
		s := fmt.Sprintf("record-%03d-", i)
		s += strings.Repeat("y", 250-len(s))
		fmt.Fprintf(&b, "huge IN TXT %q\n", s)
		want = append(want, fmt.Sprintf("huge.large.test. 3600 IN TXT %q", s))
	}
	zf := filepath.Join(dir, "large.test.zone")
	if err := os.WriteFile(zf, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, "", testenv.Zone{Origin: "large.test.", File: zf})

	q := new(dns.Msg)
	q.SetQuestion("huge.large.test.", dns.TypeTXT)
	r, size := exchange(t, "tcp", addr, q)
	if r.Rcode != dns.RcodeSuccess || r.Truncated || !r.Authoritative || r.RecursionAvailable {
		t.Errorf("rcode %s TC=%v AA=%v RA=%v, want NOERROR TC=false AA=true RA=false",
			dns.RcodeToString[r.Rcode], r.Truncated, r.Authoritative, r.RecursionAvailable)
	}
	if !matchSection(r.Answer, mustRRs(t, want), false) {
		t.Errorf("answer has %d records, want all %d", len(r.Answer), n)
	}
	if size < 55000 || size > dns.MaxMsgSize {
		t.Errorf("reply is %d bytes, want 55000..65535", size)
	}

	// The same over UDP, even with a big EDNS size, is cut to ours.
	q.SetEdns0(4096, false)
	r, size = exchange(t, "udp", addr, q)
	if !r.Truncated || size > ourUDPSize {
		t.Errorf("UDP: TC=%v, %d bytes; want TC=true and at most %d bytes", r.Truncated, size, ourUDPSize)
	}
}

func probeQuery(t testing.TB, avoid uint16) (*dns.Msg, []byte) {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion("www.conformance.test.", dns.TypeA)
	q.RecursionDesired = false
	for q.Id == avoid {
		q.Id = dns.Id()
	}
	p, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return q, p
}

func isProbeAnswer(raw []byte, q *dns.Msg) bool {
	r := new(dns.Msg)
	if r.Unpack(raw) != nil {
		return false
	}
	return r.Id == q.Id && r.Response && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1 &&
		len(r.Question) == 1 && r.Question[0] == q.Question[0]
}

// badPackets are well-formed enough to have a header the server can read
// (formerr) or not (silent).
var (
	// A header that says one question, then a label cut short.
	garbageAfterHeader = append(testenv.Header(0xBEEF, 0, 1, 0, 0, 0), 0x05, 'a', 'b')
	// A header that says one question, and nothing after it.
	bareHeader = testenv.Header(0xBEF0, 0, 1, 0, 0, 0)
)

func silentPackets(t testing.TB) map[string][]byte {
	resp := new(dns.Msg)
	resp.SetQuestion("www.conformance.test.", dns.TypeA)
	resp.Id = 0xBEEF
	resp.Response = true
	resp.Authoritative = true
	resp.Answer = mustRRs(t, []string{wwwA})
	packedResp, err := resp.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		"empty":              {},
		"one byte":           {0x42},
		"11 bytes":           testenv.Header(0xBEEF, 0, 1, 0, 0, 0)[:11],
		"QR=1 response":      packedResp,
		"QR=1 bare header":   testenv.Header(0xBEEF, 1<<15, 0, 0, 0, 0),
		"QR=1 with garbage":  append(testenv.Header(0xBEEF, 1<<15, 1, 0, 0, 0), 0xff, 0xff),
		"QR=1 opcode NOTIFY": testenv.Header(0xBEEF, 1<<15|dns.OpcodeNotify<<11, 1, 0, 0, 0),
	}
}

// TestMalformedFORMERR sends messages whose header is readable but whose
// body is not: the reply is FORMERR with the same ID.
func TestMalformedFORMERR(t *testing.T) {
	addr := startServer(t, "")
	for name, pkt := range map[string][]byte{"garbage after header": garbageAfterHeader, "bare header": bareHeader} {
		id := binary.BigEndian.Uint16(pkt)
		for _, network := range []string{"udp", "tcp"} {
			t.Run(network+"/"+name, func(t *testing.T) {
				conn, err := net.Dial(network, addr)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(ioTimeout))
				var raw []byte
				if network == "udp" {
					if _, err := conn.Write(pkt); err != nil {
						t.Fatal(err)
					}
					buf := make([]byte, dns.MaxMsgSize)
					n, err := conn.Read(buf)
					if err != nil {
						t.Fatalf("no reply: %v", err)
					}
					raw = buf[:n]
				} else {
					if _, err := conn.Write(testenv.Frame(pkt)); err != nil {
						t.Fatal(err)
					}
					if raw, err = testenv.ReadFrame(conn); err != nil {
						t.Fatalf("no reply: %v", err)
					}
				}
				r := new(dns.Msg)
				if err := r.Unpack(raw); err != nil {
					t.Fatalf("reply does not parse: %v\n%x", err, raw)
				}
				if r.Id != id || !r.Response || r.Rcode != dns.RcodeFormatError || r.RecursionAvailable || r.Authoritative || r.Opcode != dns.OpcodeQuery {
					t.Errorf("reply: ID %#x QR=%v rcode=%s RA=%v AA=%v opcode=%d; want ID %#x QR=true FORMERR RA=false AA=false opcode=0",
						r.Id, r.Response, dns.RcodeToString[r.Rcode], r.RecursionAvailable, r.Authoritative, r.Opcode, id)
				}
				if len(r.Answer)+len(r.Ns)+len(r.Extra) != 0 {
					t.Errorf("FORMERR carries records:\n%v", r)
				}
			})
		}
	}
}

// TestNoReplyUDP sends packets that must get no reply at all (shorter than a
// header, or a response), each followed by two ordinary queries on the same
// socket: only those two may be answered.
func TestNoReplyUDP(t *testing.T) {
	addr := startServer(t, "")
	for name, pkt := range silentPackets(t) {
		t.Run(name, func(t *testing.T) {
			conn, err := net.Dial("udp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write(pkt); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, dns.MaxMsgSize)
			for range 2 {
				q, p := probeQuery(t, 0xBEEF)
				if _, err := conn.Write(p); err != nil {
					t.Fatal(err)
				}
				conn.SetReadDeadline(time.Now().Add(ioTimeout))
				n, err := conn.Read(buf)
				if err != nil {
					t.Fatalf("no answer to the ordinary query after the bad packet: %v", err)
				}
				if !isProbeAnswer(buf[:n], q) {
					t.Fatalf("the server replied to a packet it must ignore:\n%x", buf[:n])
				}
			}
		})
	}
}

// TestNoReplyTCP is TestNoReplyUDP over one TCP connection: the first frame
// back must answer the ordinary query (or the server may hang up).
func TestNoReplyTCP(t *testing.T) {
	addr := startServer(t, "")
	for name, pkt := range silentPackets(t) {
		if len(pkt) == 0 {
			continue // a zero-length frame is not a message on TCP
		}
		t.Run(name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(ioTimeout))
			q, p := probeQuery(t, 0xBEEF)
			if _, err := conn.Write(append(testenv.Frame(pkt), testenv.Frame(p)...)); err != nil {
				t.Fatal(err)
			}
			raw, err := testenv.ReadFrame(conn)
			if err == nil && !isProbeAnswer(raw, q) {
				t.Fatalf("the server replied to a packet it must ignore:\n%x", raw)
			}
			if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("no answer and no hang-up: %v", err)
				}
			}
			// Whatever happened on that connection, the server still serves.
			r, _ := exchange(t, "tcp", addr, q)
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
				t.Fatalf("server stopped answering after the bad packet:\n%v", r)
			}
		})
	}
}

// TestTCPPipelining writes three queries on one connection before reading,
// then reads three answers and matches them by ID.
func TestTCPPipelining(t *testing.T) {
	addr := startServer(t, "")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(ioTimeout))

	type pending struct {
		q     *dns.Msg
		rcode int
		want  string // answer, "" for none
	}
	byID := map[uint16]pending{}
	var out bytes.Buffer
	for _, p := range []pending{
		{q: new(dns.Msg).SetQuestion("www.conformance.test.", dns.TypeA), want: wwwA},
		{q: new(dns.Msg).SetQuestion("www.conformance.test.", dns.TypeTXT), want: wwwTXT},
		{q: new(dns.Msg).SetQuestion("nope.conformance.test.", dns.TypeA), rcode: dns.RcodeNameError},
	} {
		for {
			if _, dup := byID[p.q.Id]; !dup {
				break
			}
			p.q.Id = dns.Id()
		}
		byID[p.q.Id] = p
		b, err := p.q.Pack()
		if err != nil {
			t.Fatal(err)
		}
		out.Write(testenv.Frame(b))
	}
	if _, err := conn.Write(out.Bytes()); err != nil { // all three at once
		t.Fatal(err)
	}
	for i := range 3 {
		raw, err := testenv.ReadFrame(conn)
		if err != nil {
			t.Fatalf("answer %d of 3: %v", i+1, err)
		}
		r := new(dns.Msg)
		if err := r.Unpack(raw); err != nil {
			t.Fatal(err)
		}
		p, ok := byID[r.Id]
		if !ok {
			t.Fatalf("answer with unknown or repeated ID %d", r.Id)
		}
		delete(byID, r.Id)
		if r.Rcode != p.rcode || r.RecursionAvailable || !r.Authoritative || r.Question[0] != p.q.Question[0] {
			t.Errorf("ID %d: %v", r.Id, r)
		}
		var want []string
		if p.want != "" {
			want = []string{p.want}
		}
		if !matchSection(r.Answer, mustRRs(t, want), false) {
			t.Errorf("ID %d answer:\n%s want:\n%s", r.Id, rrList(r.Answer), rrList(mustRRs(t, want)))
		}
	}
}

// TestTCPIdleTimeout: with tcp_idle_timeout = "300ms" the server closes an
// idle connection by itself. The bound is generous (13 times the timeout) but
// below the 5 s read timeout, so only the idle timeout can meet it.
func TestTCPIdleTimeout(t *testing.T) {
	addr := startServer(t, `tcp_idle_timeout = "300ms"`)
	const bound = 4 * time.Second
	for _, tc := range []struct {
		name      string
		queryHead bool
	}{{"silent connection", false}, {"idle after a query", true}} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if tc.queryHead {
				conn.SetDeadline(time.Now().Add(ioTimeout))
				q, p := probeQuery(t, 0)
				if _, err := conn.Write(testenv.Frame(p)); err != nil {
					t.Fatal(err)
				}
				raw, err := testenv.ReadFrame(conn)
				if err != nil || !isProbeAnswer(raw, q) {
					t.Fatalf("query before idling: %v %x", err, raw)
				}
			}
			start := time.Now()
			conn.SetReadDeadline(start.Add(bound))
			var one [1]byte
			n, err := conn.Read(one[:])
			var ne net.Error
			switch {
			case err == nil:
				t.Fatalf("read %d unexpected bytes from an idle connection", n)
			case errors.As(err, &ne) && ne.Timeout():
				t.Fatalf("the server kept an idle TCP connection open for %v with tcp_idle_timeout = 300ms", bound)
			}
			t.Logf("closed by the server after %v: %v", time.Since(start).Round(time.Millisecond), err)
		})
	}
}

// TestTCPPipeliningNoQueryLimit: one TCP connection carries any number of queries,
// pipelined (all sent before any answer is read) and answered in order,
// with no per-connection query limit closing it (miekg/dns's default closes
// after 128); the connection stays usable after them.
func TestTCPPipeliningNoQueryLimit(t *testing.T) {
	addr := startServer(t, "")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(4 * ioTimeout))
	const n = 500
	var qs []*dns.Msg
	var out []byte
	for i := range n {
		q, p := probeQuery(t, 0)
		q.Id = uint16(i + 1)
		binary.BigEndian.PutUint16(p, q.Id)
		qs = append(qs, q)
		out = append(out, testenv.Frame(p)...)
	}
	go func() { _, _ = conn.Write(out) }()
	for i, q := range qs {
		raw, err := testenv.ReadFrame(conn)
		if err != nil {
			t.Fatalf("answer %d of %d pipelined queries: %v (the server closed the connection?)", i+1, n, err)
		}
		if !isProbeAnswer(raw, q) {
			t.Fatalf("answer %d is not the answer to query %d (id %d): %x", i+1, i+1, q.Id, raw)
		}
	}
}
