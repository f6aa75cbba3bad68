package dnsserver_test

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/dnsserver"
	"github.com/failoverdns/failoverdns/dnsserver/testenv"
	"github.com/failoverdns/failoverdns/zones"
	"github.com/failoverdns/failoverdns/zones/fuzzseed"
)

// Fuzz targets for the query and UPDATE paths, through real sockets so they
// stay valid whatever listener serves them. Seed corpora live in the
// top-level testdata/fuzz/<FuzzName>/ (see zones/fuzzseed), not in
// dnsserver/testdata. The fixture (fzStart, fzQuery, ...) is shared with
// hostile_test.go; its names start with fz.

const (
	fzZone     = "fuzz.test."
	fzService  = "keys.fuzz.test."
	fzPinName  = "_pin.keys.fuzz.test."
	fzLabPin   = "_pin.lab._loc.keys.fuzz.test."
	fzKey      = "fuzzkey."
	fzTimeout  = 5 * time.Second // generous bound for an answer that must come
	fzQuiet    = 200 * time.Millisecond
	fzVersion  = "v0.0.0-fuzz"
	fzMaxInput = 4096 // the server's read buffer for UDP
)

// fzSecret is the [[tsig]] secret, base64 as in the config.
var fzSecret = base64.StdEncoding.EncodeToString([]byte("failoverdns-fuzz-test-secret-32b"))

// fzNodes are the service's nodes and the addresses answered for them.
var fzNodes = map[string][2]string{
	"n1": {"192.0.2.1", "2001:db8::1"},
	"n2": {"192.0.2.2", "2001:db8::2"},
}

// fzZoneText is the zone every fuzz and hostile test serves: static data of
// each kind the lookup handles (CNAME to the service, a CNAME loop, a
// wildcard, a delegation with glue).
var fzZoneText = testenv.ZoneHead("fuzz.test.", 2026112101, "127.0.0.1") + `www      IN A     192.0.2.80
www      IN TXT   "hello"
www      IN MX    10 www.fuzz.test.
alias    IN CNAME keys.fuzz.test.
loop1    IN CNAME loop2.fuzz.test.
loop2    IN CNAME loop1.fuzz.test.
*.wild   IN TXT   "wild"
sub      IN NS    ns.sub.fuzz.test.
ns.sub   IN A     192.0.2.53
`

// fzConfig is the config: the service over two nodes with check type none,
// one location with its own order, a TSIG key, CHAOS on; serverExtra is
// added to [server].
func fzConfig(serverExtra string) testenv.Config {
	c := testenv.Config{
		Server:    "chaos = true\nidentity = \"fuzz\"\n" + serverExtra + "\n",
		TSIG:      []testenv.TSIG{{Name: fzKey, Secret: fzSecret}},
		Zones:     []testenv.Zone{{Origin: fzZone, File: "fuzz.test.zone", Text: fzZoneText}},
		Locations: []testenv.Location{{Name: "lab", Subnets: []string{"10.0.0.0/8", "2001:db8:ff::/48"}}},
		Services: []testenv.Service{{Name: fzService, TTL: 5, Policy: "failover", Nodes: []string{"n1", "n2"}, WhenAllDown: "keep",
			Orders: []testenv.Order{{Location: "lab", Nodes: []string{"n2", "n1"}}}}},
	}
	for _, n := range []string{"n1", "n2"} {
		c.Nodes = append(c.Nodes, testenv.Node{Name: n, Address: fzNodes[n][0], Address6: fzNodes[n][1], Check: "type = \"none\"\n"})
	}
	return c
}

// fzStart starts an instance on fzConfig(serverExtra), closed when tb
// ends; it logs nothing (a fuzz run sends millions of packets).
func fzStart(tb testing.TB, serverExtra string) *env {
	tb.Helper()
	return start(tb, fzConfig(serverExtra), dnsserver.Options{Logger: testenv.Discard(), Version: fzVersion})
}

// fzLoad writes fzConfig(serverExtra) into a temporary folder and loads it.
func fzLoad(tb testing.TB, serverExtra string) (*zones.Snapshot, string) {
	tb.Helper()
	path := fzConfig(serverExtra).Write(tb, tb.TempDir())
	return load(tb, path), path
}

// fzExchange sends q over network and returns the reply. When signed, q
// carries a TSIG record and the client signs it with fzSecret and verifies
// the reply.
func fzExchange(network, addr string, q *dns.Msg, signed bool) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: fzTimeout, UDPSize: dns.MaxMsgSize}
	if signed {
		c.TsigSecret = map[string]string{fzKey: fzSecret}
	}
	r, _, err := c.Exchange(q, addr)
	return r, err
}

// fzQuery asks name/qtype over network and fails tb when no reply comes.
func fzQuery(tb testing.TB, network, addr, name string, qtype uint16, opts ...dns.EDNS0) *dns.Msg {
	tb.Helper()
	q := new(dns.Msg).SetQuestion(name, qtype)
	if len(opts) > 0 {
		q.SetEdns0(1232, false)
		o := q.IsEdns0()
		o.Option = append(o.Option, opts...)
	}
	r, err := fzExchange(network, addr, q, false)
	if err != nil {
		tb.Fatalf("%s %s over %s: %v", name, dns.TypeToString[qtype], network, err)
	}
	if r.Id != q.Id {
		tb.Fatalf("%s %s over %s: reply ID %d, want %d", name, dns.TypeToString[qtype], network, r.Id, q.Id)
	}
	return r
}

// fzCheckAlive asks the service's A and AAAA over UDP and TCP and fails tb
// unless each is NOERROR with exactly one record naming one of the nodes.
func fzCheckAlive(tb testing.TB, addr string) {
	tb.Helper()
	for _, network := range []string{"udp", "tcp"} {
		for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
			r := fzQuery(tb, network, addr, fzService, qtype)
			if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 {
				tb.Fatalf("the server no longer answers %s %s over %s correctly:\n%v", fzService, dns.TypeToString[qtype], network, r)
			}
			if _, err := fzAnswerNode(r.Answer[0]); err != nil {
				tb.Fatalf("%s over %s: %v", fzService, network, err)
			}
		}
	}
}

// fzAnswerNode returns the node whose address rr carries.
func fzAnswerNode(rr dns.RR) (string, error) {
	ip, ok := zones.AddrOf(rr)
	if !ok {
		return "", fmt.Errorf("answer %v is not an address", rr)
	}
	for name, a := range fzNodes {
		if ip.Unmap() == netip.MustParseAddr(a[0]) || ip == netip.MustParseAddr(a[1]) {
			return name, nil
		}
	}
	return "", fmt.Errorf("answer %v names none of the service's nodes", rr)
}

// fzCheckServiceRRs fails when r carries more than one A or more than one
// AAAA record for the service name, or an address that is not a node's.
func fzCheckServiceRRs(t *testing.T, r *dns.Msg) {
	t.Helper()
	counts := map[uint16]int{}
	for _, sec := range [][]dns.RR{r.Answer, r.Ns, r.Extra} {
		for _, rr := range sec {
			h := rr.Header()
			if !strings.EqualFold(h.Name, fzService) || (h.Rrtype != dns.TypeA && h.Rrtype != dns.TypeAAAA) {
				continue
			}
			counts[h.Rrtype]++
			if _, err := fzAnswerNode(rr); err != nil {
				t.Errorf("%v\n%v", err, r)
			}
		}
	}
	if counts[dns.TypeA] > 1 || counts[dns.TypeAAAA] > 1 {
		t.Errorf("the service is answered with %d A and %d AAAA records; at most one of each:\n%v", counts[dns.TypeA], counts[dns.TypeAAAA], r)
	}
}

// fzSentinel is the ordinary query sent after each hostile packet, with an
// ID other than avoid.
func fzSentinel(tb testing.TB, avoid uint16) (*dns.Msg, []byte) {
	tb.Helper()
	q := new(dns.Msg).SetQuestion(fzService, dns.TypeA)
	q.RecursionDesired = false
	q.Id = avoid ^ 0x5a5a
	p, err := q.Pack()
	if err != nil {
		tb.Fatal(err)
	}
	return q, p
}

// fzIsSentinelReply reports whether r answers the sentinel q correctly.
func fzIsSentinelReply(r, q *dns.Msg) error {
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 || len(r.Question) != 1 || r.Question[0] != q.Question[0] {
		return fmt.Errorf("wrong answer to the ordinary query after the packet:\n%v", r)
	}
	_, err := fzAnswerNode(r.Answer[0])
	return err
}

// fzUDPResult is what the server sent back for one raw UDP packet.
type fzUDPResult struct {
	raw   []byte // the reply to the packet, nil when none came
	extra [][]byte
}

// fzSendUDP sends pkt from a fresh socket, then an ordinary query, and
// reads until the ordinary query is answered. When expectReply, it keeps
// waiting (up to fzTimeout) for the packet's own reply; else it listens a
// further quiet period for one. Replies with any other ID are returned in
// extra. A missing answer to the ordinary query fails tb: the server must
// keep serving.
func fzSendUDP(tb testing.TB, addr string, pkt []byte, expectReply bool, quiet time.Duration) fzUDPResult {
	tb.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	var pid uint16
	if len(pkt) >= 2 {
		pid = binary.BigEndian.Uint16(pkt)
	}
	sq, sp := fzSentinel(tb, pid)
	if len(pkt) > 0 {
		if _, err := conn.Write(pkt); err != nil {
			tb.Fatalf("write: %v", err)
		}
	}
	if _, err := conn.Write(sp); err != nil {
		tb.Fatalf("write: %v", err)
	}
	var res fzUDPResult
	buf := make([]byte, dns.MaxMsgSize)
	deadline := time.Now().Add(fzTimeout)
	gotSentinel := false
	for {
		switch {
		case !gotSentinel, expectReply && res.raw == nil:
			conn.SetReadDeadline(deadline)
		default:
			if quiet <= 0 || res.raw != nil {
				return res
			}
			conn.SetReadDeadline(time.Now().Add(quiet))
			quiet = 0
		}
		n, err := conn.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if !gotSentinel {
					tb.Fatalf("no answer to an ordinary query within %v after the packet %x", fzTimeout, pkt)
				}
				if expectReply && res.raw == nil {
					tb.Fatalf("no reply within %v to a packet whose header is readable: %x", fzTimeout, pkt)
				}
				return res
			}
			tb.Fatalf("read: %v", err)
		}
		raw := slices.Clone(buf[:n])
		r := new(dns.Msg)
		if r.Unpack(raw) == nil && r.Id == sq.Id && len(r.Question) == 1 && r.Question[0] == sq.Question[0] && !gotSentinel {
			if err := fzIsSentinelReply(r, sq); err != nil {
				tb.Fatal(err)
			}
			gotSentinel = true
			continue
		}
		if len(pkt) >= 2 && n >= 2 && binary.BigEndian.Uint16(raw) == pid && res.raw == nil {
			res.raw = raw
			continue
		}
		res.extra = append(res.extra, raw)
	}
}

// FuzzQuery sends each input as one UDP datagram to a running server and
// checks the reply, then that an ordinary query is still answered.
func FuzzQuery(f *testing.F) {
	fuzzseed.Add(f, "FuzzQuery")
	for _, q := range []*dns.Msg{
		new(dns.Msg).SetQuestion(fzService, dns.TypeA),
		new(dns.Msg).SetQuestion("alias.fuzz.test.", dns.TypeAAAA),
		new(dns.Msg).SetQuestion("x.sub.fuzz.test.", dns.TypeA),
		new(dns.Msg).SetEdns0(4096, true).SetQuestion(fzService, dns.TypeANY),
	} {
		p, err := q.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(p)
	}
	f.Add([]byte{0xbe, 0xef, 0x01})
	e := fzStart(f, "")
	f.Fuzz(func(t *testing.T, pkt []byte) {
		if len(pkt) > 65000 {
			return // not one datagram
		}
		readable := len(pkt) >= 12
		isResponse := readable && pkt[2]&0x80 != 0
		res := fzSendUDP(t, e.Addr, pkt, readable && !isResponse, 0)
		for _, x := range res.extra {
			t.Errorf("a reply with an unexpected ID: %x", x)
		}
		if !readable || isResponse {
			if res.raw != nil {
				t.Fatalf("reply to a packet that must be ignored (%d bytes, QR=%v): %x", len(pkt), isResponse, res.raw)
			}
			return
		}
		fzCheckQueryReply(t, pkt, res.raw)
	})
}

// fzCheckQueryReply checks the reply to a raw query packet whose header is
// readable and whose QR bit is clear.
func fzCheckQueryReply(t *testing.T, pkt, raw []byte) {
	t.Helper()
	r := new(dns.Msg)
	if err := r.Unpack(raw); err != nil {
		t.Fatalf("the reply does not parse: %v\nquery %x\nreply %x", err, pkt, raw)
	}
	id := binary.BigEndian.Uint16(pkt)
	if r.Id != id || !r.Response || r.RecursionAvailable {
		t.Fatalf("reply ID %d QR=%v RA=%v, want ID %d QR=true RA=false:\n%v", r.Id, r.Response, r.RecursionAvailable, id, r)
	}
	opcode := int(pkt[2]>>3) & 0xF
	q := new(dns.Msg)
	qerr := q.Unpack(pkt)
	// The server reads at most fzMaxInput bytes of a datagram; past that
	// its view of the packet is not ours.
	whole := len(pkt) <= fzMaxInput
	qdcount := binary.BigEndian.Uint16(pkt[4:])
	var allowed []int
	switch {
	case opcode != dns.OpcodeQuery && opcode != dns.OpcodeUpdate:
		allowed = []int{dns.RcodeNotImplemented}
	case qdcount != 1:
		allowed = []int{dns.RcodeFormatError}
	case qerr != nil && whole:
		allowed = []int{dns.RcodeFormatError}
	case opcode == dns.OpcodeUpdate:
		allowed = []int{dns.RcodeSuccess, dns.RcodeFormatError, dns.RcodeServerFailure, dns.RcodeNameError,
			dns.RcodeRefused, dns.RcodeYXDomain, dns.RcodeYXRrset, dns.RcodeNXRrset, dns.RcodeNotAuth,
			dns.RcodeNotZone, dns.RcodeBadVers}
	default:
		allowed = []int{dns.RcodeSuccess, dns.RcodeFormatError, dns.RcodeServerFailure, dns.RcodeNameError,
			dns.RcodeNotImplemented, dns.RcodeRefused, dns.RcodeBadVers, dns.RcodeNotAuth}
	}
	if !slices.Contains(allowed, r.Rcode) {
		want := make([]string, len(allowed))
		for i, a := range allowed {
			want[i] = dns.RcodeToString[a]
		}
		t.Fatalf("rcode %s (%d), want one of %v (opcode %d, QDCOUNT %d, query unpacks: %v)\nquery %x\n%v",
			dns.RcodeToString[r.Rcode], r.Rcode, want, opcode, qdcount, qerr, pkt, r)
	}
	if r.Rcode == dns.RcodeBadVers {
		if o := r.IsEdns0(); o == nil || o.Version() != 0 {
			t.Fatalf("BADVERS without an OPT of version 0:\n%v", r)
		}
	}
	fzCheckServiceRRs(t, r)
	if qerr != nil || !whole || opcode != dns.OpcodeQuery {
		return
	}
	limit := dns.MinMsgSize
	if o := q.IsEdns0(); o != nil {
		limit = min(max(int(o.UDPSize()), dns.MinMsgSize), zones.DefaultUDPSize)
	}
	if len(raw) > limit {
		t.Fatalf("a %d-byte UDP reply, over the %d the client can take:\n%v", len(raw), limit, r)
	}
	if r.Rcode != dns.RcodeFormatError && r.Rcode != dns.RcodeNotImplemented && (len(r.Question) != 1 || len(q.Question) < 1 || r.Question[0] != q.Question[0]) {
		t.Fatalf("the question is not echoed as asked: %v, want %v", r.Question, q.Question)
	}
}

// fzUpdateRcodes are the RCODEs an UPDATE may get.
var fzUpdateRcodes = []int{dns.RcodeSuccess, dns.RcodeFormatError, dns.RcodeServerFailure, dns.RcodeNameError,
	dns.RcodeNotImplemented, dns.RcodeRefused, dns.RcodeYXDomain, dns.RcodeYXRrset, dns.RcodeNXRrset,
	dns.RcodeNotAuth, dns.RcodeNotZone}

// fzUnpackRRs reads up to 8 wire-format records from b.
func fzUnpackRRs(b []byte) []dns.RR {
	var out []dns.RR
	for off := 0; off < len(b) && len(out) < 8; {
		rr, next, err := dns.UnpackRR(b, off)
		if err != nil || next <= off {
			break
		}
		if rr != nil {
			out = append(out, rr)
		}
		off = next
	}
	return out
}

// fzBuildUpdate builds an UPDATE for zone: prerequisites from prereq
// (wire format), updates from update (wire format), then one record per line
// of text in master-file syntax (class ANY or NONE allowed); a line starting
// "P " is a prerequisite.
func fzBuildUpdate(zone string, prereq, update []byte, text string) *dns.Msg {
	m := new(dns.Msg)
	m.Opcode = dns.OpcodeUpdate
	m.Id = dns.Id()
	m.Question = []dns.Question{{Name: zone, Qtype: dns.TypeSOA, Qclass: dns.ClassINET}}
	m.Answer = fzUnpackRRs(prereq)
	m.Ns = fzUnpackRRs(update)
	for i, line := range strings.Split(text, "\n") {
		if i >= 8 {
			break
		}
		sec := &m.Ns
		if rest, ok := strings.CutPrefix(line, "P "); ok {
			line, sec = rest, &m.Answer
		}
		// The master-file syntax has no classes ANY and NONE, which
		// UPDATE uses to delete: write them, and they are set after.
		class := uint16(0)
		for _, c := range []uint16{dns.ClassANY, dns.ClassNONE} {
			tok := " " + dns.ClassToString[c] + " "
			if strings.Contains(line, tok) {
				line, class = strings.Replace(line, tok, " IN ", 1), c
				break
			}
		}
		rr, err := dns.NewRR(line)
		if err != nil || rr == nil {
			continue
		}
		if class != 0 {
			rr.Header().Class = class
		}
		*sec = append(*sec, rr)
	}
	return m
}

// fzCheckPins fails unless every pin the server shows, and every answer for
// the service, names one of the service's nodes.
func fzCheckPins(t *testing.T, addr string) {
	t.Helper()
	for _, name := range []string{fzPinName, fzLabPin} {
		r := fzQuery(t, "udp", addr, name, dns.TypeTXT)
		switch r.Rcode {
		case dns.RcodeNameError:
		case dns.RcodeSuccess:
			if len(r.Answer) != 1 {
				t.Fatalf("%s: %d answers, want one pin:\n%v", name, len(r.Answer), r)
			}
			txt, ok := r.Answer[0].(*dns.TXT)
			if !ok || len(txt.Txt) == 0 {
				t.Fatalf("%s: not a TXT pin:\n%v", name, r)
			}
			words := strings.Fields(strings.Join(txt.Txt, " "))
			if len(words) == 0 {
				t.Fatalf("%s: an empty pin:\n%v", name, r)
			}
			if _, ok := fzNodes[words[0]]; !ok {
				t.Fatalf("%s names %q, which is not one of the service's nodes:\n%v", name, words[0], r)
			}
		default:
			t.Fatalf("%s from 127.0.0.1: %s, want the pin or NXDOMAIN:\n%v", name, dns.RcodeToString[r.Rcode], r)
		}
	}
	lab := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.ParseIP("10.1.2.0").To4()}
	for _, opts := range [][]dns.EDNS0{nil, {lab}} {
		for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
			r := fzQuery(t, "udp", addr, fzService, qtype, opts...)
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
				t.Fatalf("%s %s (ECS %v): want one record:\n%v", fzService, dns.TypeToString[qtype], opts, r)
			}
			if _, err := fzAnswerNode(r.Answer[0]); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// FuzzUpdate sends TSIG-signed UPDATEs built from fuzzed parts, signed
// skew seconds away from now with the given fudge, and checks that the
// reply verifies, that a signature more than the server's 300 s (or the
// request's smaller fudge) away is BADTIME, that the same bytes sent again
// (replay) after a request passed the signature checks are REFUSED and
// change no pin, that pins only ever name the service's nodes, and that the
// server keeps answering.
func FuzzUpdate(f *testing.F) {
	fuzzseed.Add(f, "FuzzUpdate")
	f.Add(fzZone, []byte(nil), []byte(nil), fzPinName+` 300 IN TXT "n2"`, false, 0, uint16(300), false)
	f.Add(fzZone, []byte(nil), []byte(nil), fzPinName+` 0 ANY TXT`, true, 0, uint16(300), false)
	f.Add(fzZone, []byte(nil), []byte(nil), fzPinName+` 300 IN TXT "n2"`, false, 0, uint16(300), true)
	f.Add(fzZone, []byte(nil), []byte(nil), fzPinName+` 300 IN TXT "n1"`, false, -3600, uint16(65535), true)
	e := fzStart(f, "")
	f.Fuzz(func(t *testing.T, zone string, prereq, update []byte, text string, tcp bool, skew int, fudge uint16, replay bool) {
		skew = max(min(skew, 1<<20), -1<<20)
		if fudge == 0 {
			fudge = 300 // what miekg/dns signs with (and so sends) for 0
		}
		m := fzBuildUpdate(zone, prereq, update, text)
		m.SetTsig(fzKey, dns.HmacSHA256, fudge, time.Now().Unix()+int64(skew))
		p, mac, err := dns.TsigGenerate(m, fzSecret, "", false)
		if err != nil {
			return // not a message: nothing to send
		}
		network := "udp"
		if tcp || len(p) > 1200 {
			network = "tcp"
		}
		r := fzCheckUpdateReply(t, e.Addr, network, m, p, mac)
		// One second either side of a limit is the clock's to decide.
		limit := min(int(fudge), 300)
		skew = max(skew, -skew)
		badTime := r.IsTsig() != nil && r.IsTsig().Error == dns.RcodeBadTime
		// A message the server cannot unpack is FORMERR, unsigned: its
		// signature is never read.
		unread := r.Rcode == dns.RcodeFormatError && r.IsTsig() == nil
		if skew > limit+1 && !badTime && !unread {
			t.Fatalf("signed %d s away with fudge %d: %s, TSIG %v; want NOTAUTH/BADTIME (the server accepts at most %d s)\n%v", skew, fudge, dns.RcodeToString[r.Rcode], r.IsTsig(), limit, m)
		}
		if skew < limit-1 && badTime {
			t.Fatalf("signed %d s away with fudge %d: BADTIME, want it accepted\n%v", skew, fudge, m)
		}
		if replay {
			passed := r.IsTsig() != nil && r.IsTsig().Error == dns.RcodeSuccess
			before := e.in.Engine.Pins()
			other := map[string]string{"udp": "tcp", "tcp": "udp"}[network]
			if len(p) > 1200 {
				other = "tcp"
			}
			again := fzCheckUpdateReply(t, e.Addr, other, m, p, mac)
			if passed && again.Rcode != dns.RcodeRefused {
				t.Fatalf("the same signed UPDATE sent again over %s: %s, want REFUSED (a replay)\n%v\nreply:\n%v", other, dns.RcodeToString[again.Rcode], m, again)
			}
			if after := e.in.Engine.Pins(); !maps.Equal(before, after) {
				t.Fatalf("a replayed UPDATE changed the pins from %v to %v\n%v", before, after, m)
			}
		}
		fzCheckPins(t, e.Addr)
	})
}

// fzCheckUpdateReply sends the packed UPDATE p (m signed, with MAC mac)
// over network and checks the reply: it verifies, answers m and has an
// RCODE an UPDATE may get.
func fzCheckUpdateReply(t *testing.T, addr, network string, m *dns.Msg, p []byte, mac string) *dns.Msg {
	t.Helper()
	conn, err := (&dns.Client{Net: network, Timeout: fzTimeout}).Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.UDPSize = dns.MaxMsgSize
	_ = conn.SetDeadline(time.Now().Add(fzTimeout))
	if _, err := conn.Write(p); err != nil {
		t.Fatalf("UPDATE over %s: %v", network, err)
	}
	raw, err := conn.ReadMsgHeader(nil)
	if err != nil {
		t.Fatalf("UPDATE over %s: no reply: %v\n%v", network, err, m)
	}
	r := new(dns.Msg)
	if err := r.Unpack(raw); err != nil {
		t.Fatalf("UPDATE over %s: the reply does not unpack: %v\n%x", network, err, raw)
	}
	// A NOTAUTH answer (TSIG failures) is not verified: with BADKEY and
	// BADSIG it is unsigned (RFC 8945 5.3.2), with BADTIME signed at the
	// server's time.
	if r.Rcode != dns.RcodeNotAuth && r.IsTsig() != nil {
		if err := dns.TsigVerify(raw, fzSecret, mac, false); err != nil {
			t.Fatalf("UPDATE over %s: the reply does not verify: %v\n%v\nreply:\n%v", network, err, m, r)
		}
	}
	// miekg/dns answers a message it cannot unpack FORMERR with opcode
	// QUERY; every other answer keeps the opcode.
	if r.Id != m.Id || !r.Response || (r.Opcode != dns.OpcodeUpdate && r.Rcode != dns.RcodeFormatError) {
		t.Fatalf("reply ID %d QR=%v opcode %d, want ID %d QR=true opcode UPDATE:\n%v", r.Id, r.Response, r.Opcode, m.Id, r)
	}
	if !slices.Contains(fzUpdateRcodes, r.Rcode) {
		t.Fatalf("UPDATE answered %s:\n%v\nreply:\n%v", dns.RcodeToString[r.Rcode], m, r)
	}
	return r
}
