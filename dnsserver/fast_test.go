package dnsserver

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/health"
	"github.com/failoverdns/failoverdns/zones"
)

// fastServer builds a server on testdata/fast with every node up and the
// engine's decisions in force (views differ per location), no sockets.
func fastServer(t testing.TB, extra string) *Server {
	t.Helper()
	return fastServerWith(t, extra, "", "")
}

// fastServerWith adds TOML: extra to [server], locations before the
// services, and a line to keys.fast.test's [service.locations].
func fastServerWith(t testing.TB, extra, locations, keysLocation string) *Server {
	t.Helper()
	snap := fastSnapshot(t, func(cfg string) string {
		cfg = strings.Replace(cfg, "[server]\n", "[server]\n"+extra, 1)
		cfg = strings.Replace(cfg, "[[service]]\n", locations+"\n[[service]]\n", 1)
		return strings.Replace(cfg, "lab = [\"sems3\", \"sems1\"]\n", "lab = [\"sems3\", \"sems1\"]\n"+keysLocation, 1)
	})
	return allUpServer(t, snap)
}

// allUpServer is a server on snap with every node up and the engine's
// decisions in force, no sockets.
func allUpServer(t testing.TB, snap *zones.Snapshot) *Server {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := New(snap, logger, "test")
	s.metrics = NewMetrics()
	now := time.Now().Add(-time.Hour)
	e := zones.NewEngineWith(snap, zones.EngineOptions{Logger: logger, Publish: s.Store, Health: func() map[string]health.State {
		h := map[string]health.State{}
		for _, n := range snap.Config.Nodes {
			h[n.Name] = health.State{Up: true, Checked: true, Since: now}
		}
		return h
	}})
	e.Recompute()
	return s
}

// fastSnapshot loads testdata/fast/fast.toml, with its zone files found
// where they are and a state_dir of the test's own, after edit.
func fastSnapshot(t testing.TB, edit func(cfg string) string) *zones.Snapshot {
	t.Helper()
	dir := t.TempDir()
	src, err := os.ReadFile("../testdata/fast/fast.toml")
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("../testdata/fast")
	cfg := strings.ReplaceAll(string(src), `file = "`, `file = "`+abs+`/`)
	cfg = strings.Replace(cfg, "[server]\n", "[server]\nstate_dir = \""+dir+"/state\"\n", 1)
	path := filepath.Join(dir, "fast.toml")
	if err := os.WriteFile(path, []byte(edit(cfg)), 0o644); err != nil {
		t.Fatal(err)
	}
	snap, err := zones.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// general runs the general path on raw bytes, as the UDP reader does when
// the fast path declines, and returns what it would send (nil: nothing).
func (s *Server) generalBytes(pkt []byte, client netip.AddrPort) []byte {
	var out []byte
	w := &udpWriter{local: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}, remote: client, sink: &out}
	s.serveRaw(pkt, w)
	return out
}

func (s *Server) fastBytes(pkt []byte, client netip.AddrPort) ([]byte, bool) {
	var q query
	if !parseQuery(pkt, &q) {
		return nil, false
	}
	resp, _, _, ok := s.fastAnswer(s.pub.Load(), &q, client.Addr(), nil)
	return resp, ok
}

type rawCase struct {
	name   string
	pkt    []byte
	client netip.AddrPort
}

func packQ(name string, qtype uint16, edit func(*dns.Msg)) []byte {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = 0xBEEF
	if edit != nil {
		edit(m)
	}
	b, err := m.Pack()
	if err != nil {
		panic(err)
	}
	return b
}

func ecs(addr string, src uint8) func(*dns.Msg) {
	return func(m *dns.Msg) {
		m.SetEdns0(1232, false)
		p := netip.MustParsePrefix(fmt.Sprintf("%s/%d", addr, src)).Masked()
		e := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, SourceNetmask: src, Address: p.Addr().AsSlice()}
		e.Family = 1
		if p.Addr().Is6() {
			e.Family = 2
		}
		m.IsEdns0().Option = append(m.IsEdns0().Option, e)
	}
}

// identityCases is the conformance and hostile-input query set: every name
// and type the zones hold, case variants, EDNS sizes, DO, ECS of both
// families, clients in and out of locations, and malformed packets.
func identityCases(s *Server) []rawCase {
	clients := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:5300"), netip.MustParseAddrPort("127.0.99.5:5300"), netip.MustParseAddrPort("[::1]:5300")}
	var names []string
	for _, z := range s.Snapshot().Zones {
		for n := range z.Nodes() {
			names = append(names, n)
		}
	}
	names = append(names, "nope.fast.test.", "x.y.wild.fast.test.", "deep.below.sub.fast.test.", "example.com.", "KEYS.Fast.TEST.",
		"_pin.keys.fast.test.", "_status.keys.fast.test.", "a-b_c.fast.test.", "www.conformance.test.", ".",
		// Compression: names of other lengths and letter cases than the
		// templates', and names sharing more than the apex with the SOA's
		// MNAME (ns1) and RNAME (hostmaster).
		"x.ns1.fast.test.", "x.hostmaster.fast.test.", "hostmaster.fast.test.", "a.b.c.d.e.nope.fast.test.",
		"NoPe.FAST.test.", "WWW.fast.test.", "A.B.Ent.Fast.Test.", "b.ent.fast.test.", "Ns1.Fast.Test.", "x.Ns1.fast.test.", "upper.fast.test.", "MX2.fast.test.", "x.mx2.fast.test.")
	qtypes := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeTXT, dns.TypeMX, dns.TypeSOA, dns.TypeNS, dns.TypeCNAME,
		dns.TypeDS, dns.TypeANY, dns.TypeAXFR, dns.TypeSRV, dns.TypeCAA, 99, 65000}
	edns := []func(*dns.Msg){
		nil,
		func(m *dns.Msg) { m.SetEdns0(1232, false) },
		func(m *dns.Msg) { m.SetEdns0(4096, true) },
		func(m *dns.Msg) { m.SetEdns0(100, false) },
		func(m *dns.Msg) { m.SetEdns0(512, false); m.CheckingDisabled = true; m.RecursionDesired = false },
		ecs("10.20.3.0", 24), ecs("10.20.4.0", 24), ecs("10.20.0.0", 16), ecs("10.0.0.0", 8), ecs("0.0.0.0", 0),
		ecs("198.51.100.0", 24), ecs("2001:db8:20::", 56), ecs("2001:db8::", 32), ecs("::ffff:10.20.3.0", 120), ecs("::ffff:198.51.100.0", 120), ecs("::ffff:0.0.0.0", 96),
		func(m *dns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) },
		func(m *dns.Msg) {
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
		},
	}
	var cs []rawCase
	for _, n := range names {
		for _, qt := range qtypes {
			for i, e := range edns {
				for _, c := range clients {
					cs = append(cs, rawCase{fmt.Sprintf("%s/%s/edns%d/%s", n, dns.TypeToString[qt], i, c.Addr()), packQ(n, qt, e), c})
				}
			}
		}
	}
	c := clients[0]
	mixed := packQ("WwW.FaSt.TeSt.", dns.TypeA, nil)
	ok := packQ("keys.fast.test.", dns.TypeA, nil)
	hostile := map[string][]byte{
		"mixed case":         mixed,
		"short header":       ok[:11],
		"header only":        ok[:12],
		"truncated question": ok[:len(ok)-3],
		"qdcount 0":          setU16(ok, 4, 0),
		"qdcount 2":          setU16(ok, 4, 2),
		"ancount 1":          setU16(ok, 6, 1),
		"arcount 1 no OPT":   setU16(ok, 10, 1),
		"QR set":             setBits(ok, 2, 0x80),
		"opcode status":      setBits(ok, 2, 2<<3),
		"opcode notify":      setBits(ok, 2, 4<<3),
		"opcode update":      setBits(ok, 2, 5<<3),
		"TC set":             setBits(ok, 2, 0x02),
		"AA set":             setBits(ok, 2, 0x04),
		"Z set":              setBits(ok, 3, 0x40),
		"AD set":             setBits(ok, 3, 0x20),
		"rcode set":          setBits(ok, 3, 0x03),
		"trailing garbage":   append(append([]byte(nil), ok...), 1, 2, 3),
		"compression loop":   append(append([]byte(nil), ok[:12]...), 0xC0, 12, 0, 1, 0, 1),
		"label 64":           append(append(append([]byte(nil), ok[:12]...), 64), append(bytes.Repeat([]byte{'a'}, 64), 0, 0, 1, 0, 1)...),
		"class CH":           packQ("version.bind.", dns.TypeTXT, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }),
		"class 1234":         packQ("www.fast.test.", dns.TypeA, func(m *dns.Msg) { m.Question[0].Qclass = 1234 }),
		"two OPT":            packQ("www.fast.test.", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(1232, false); m.Extra = append(m.Extra, m.Extra[0]) }),
		"OPT in answer":      packQ("www.fast.test.", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(1232, false); m.Answer, m.Extra = m.Extra, nil }),
		"ECS scope set":      packQ("keys.fast.test.", dns.TypeA, func(m *dns.Msg) { ecs("10.20.3.0", 24)(m); m.IsEdns0().Option[0].(*dns.EDNS0_SUBNET).SourceScope = 8 }),
		"ECS host bits": packQ("keys.fast.test.", dns.TypeA, func(m *dns.Msg) {
			ecs("10.20.3.0", 24)(m)
			m.IsEdns0().Option[0].(*dns.EDNS0_SUBNET).Address = net.IPv4(10, 20, 3, 1)
		}),
		"ECS too long v4":      rawECS(ok, 1, 33, []byte{10, 20, 3, 0, 1}),
		"ECS wrong addr bytes": rawECS(ok, 1, 24, []byte{10, 20, 3, 0}),
		"ECS family 3":         rawECS(ok, 3, 8, []byte{10}),
		"ECS family 0":         rawECS(ok, 0, 0, nil),
	}
	for name, pkt := range hostile {
		cs = append(cs, rawCase{"hostile/" + name, pkt, c})
	}
	return cs
}

func setU16(b []byte, off int, v uint16) []byte {
	c := append([]byte(nil), b...)
	binary.BigEndian.PutUint16(c[off:], v)
	return c
}

func setBits(b []byte, off int, bits byte) []byte {
	c := append([]byte(nil), b...)
	c[off] |= bits
	return c
}

// rawECS appends an OPT with a hand-made ECS option (miekg/dns would refuse
// to pack a malformed one).
func rawECS(q []byte, family uint16, src uint8, addr []byte) []byte {
	c := setU16(q, 10, 1)
	opt := []byte{0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0}
	data := binary.BigEndian.AppendUint16(nil, dns.EDNS0SUBNET)
	data = binary.BigEndian.AppendUint16(data, uint16(4+len(addr)))
	data = binary.BigEndian.AppendUint16(data, family)
	data = append(data, src, 0)
	data = append(data, addr...)
	opt = binary.BigEndian.AppendUint16(opt, uint16(len(data)))
	return append(append(c, opt...), data...)
}

// TestFastPathByteIdentity: wherever the fast path answers, its bytes are
// exactly the general path's; and it does answer the queries that matter.
func TestFastPathByteIdentity(t *testing.T) {
	for _, ecsOn := range []bool{true, false} {
		t.Run(fmt.Sprintf("ecs=%v", ecsOn), func(t *testing.T) {
			extra := ""
			if !ecsOn {
				extra = "ecs = false\n"
			}
			s := fastServer(t, extra)
			handled := map[string]int{}
			for _, c := range identityCases(s) {
				want := s.generalBytes(c.pkt, c.client)
				got, ok := s.fastBytes(c.pkt, c.client)
				if !ok {
					continue
				}
				if !bytes.Equal(got, want) {
					g, w := new(dns.Msg), new(dns.Msg)
					_ = g.Unpack(got)
					_ = w.Unpack(want)
					t.Errorf("%s: fast path differs from the general path\nfast:    %x\ngeneral: %x\nfast msg:\n%v\ngeneral msg:\n%v", c.name, got, want, g, w)
					continue
				}
				r := new(dns.Msg)
				if err := r.Unpack(got); err != nil {
					t.Errorf("%s: fast answer does not parse: %v", c.name, err)
					continue
				}
				kind := dns.RcodeToString[r.Rcode]
				if r.Rcode == dns.RcodeSuccess && len(r.Answer) == 0 {
					kind = "NODATA"
				}
				if strings.HasPrefix(c.name, "keys.fast.test./A/") {
					kind = "service A"
					if o := r.IsEdns0(); o != nil && len(o.Option) > 0 {
						kind = "service A with ECS"
					}
				}
				handled[kind]++
			}
			t.Logf("fast path answered: %v", handled)
			want := []string{"service A", "NOERROR", "NXDOMAIN", "NODATA", "REFUSED"}
			if ecsOn {
				want = append(want, "service A with ECS")
			}
			for _, k := range want {
				if handled[k] == 0 {
					t.Errorf("the fast path answered no %q query", k)
				}
			}
		})
	}
}

// TestFastPathZeroAllocs: the fast path allocates nothing per query.
func TestFastPathZeroAllocs(t *testing.T) {
	s := fastServer(t, "")
	client := netip.MustParseAddr("127.0.99.5")
	for _, tc := range []struct {
		name string
		pkt  []byte
	}{
		{"service A", packQ("keys.fast.test.", dns.TypeA, nil)},
		{"service A ECS", packQ("keys.fast.test.", dns.TypeA, ecs("10.20.3.0", 24))},
		{"service AAAA ECS6", packQ("keys.fast.test.", dns.TypeAAAA, ecs("2001:db8:20::", 56))},
		{"static", packQ("www.fast.test.", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(1232, false) })},
		{"static SOA, compressed while copied", packQ("fast.test.", dns.TypeSOA, nil)},
		{"static MX", packQ("MX.fast.test.", dns.TypeMX, nil)},
		{"nxdomain", packQ("nope.fast.test.", dns.TypeA, nil)},
		{"nxdomain relocated", packQ("a.b.nope.fast.test.", dns.TypeA, nil)},
		{"nodata", packQ("www.fast.test.", dns.TypeSRV, nil)},
		{"refused", packQ("example.com.", dns.TypeA, nil)},
	} {
		var q query
		out := make([]byte, 0, 4096)
		stats := s.metrics.newReaderStats()
		p := s.pub.Load()
		if _, ok := s.serveFast(p, tc.pkt, client, &q, out[:0], stats); !ok {
			t.Fatalf("%s: the fast path declined", tc.name)
		}
		allocs := testing.AllocsPerRun(1000, func() {
			start := monoNow()
			p := s.pub.Load()
			s.admit(p, client, start)
			s.serveFast(p, tc.pkt, client, &q, out[:0], stats)
			stats.observe(monoNow()-start, 1)
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per query, want 0", tc.name, allocs)
		}
	}
}

// tcpSink is a dns.ResponseWriter that looks like a TCP connection and
// keeps what is written.
type tcpSink struct{ out []byte }

func (w *tcpSink) LocalAddr() net.Addr  { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (w *tcpSink) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5300} }
func (w *tcpSink) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	w.out = b
	return err
}
func (w *tcpSink) Write(b []byte) (int, error) { w.out = append([]byte(nil), b...); return len(b), nil }
func (w *tcpSink) Close() error                { return nil }
func (w *tcpSink) TsigStatus() error           { return nil }
func (w *tcpSink) TsigTimersOnly(bool)         {}
func (w *tcpSink) Hijack()                     {}

// TestCompressedSizes: answers are name-compressed on the UDP fast path, the
// general path and TCP alike, to the sizes worked out by hand below
// (testdata/fast/fast.test.zone, no EDNS). A name is its labels, each a
// length octet and its bytes, then a zero octet (fast.test. = 1+4+1+4+1 =
// 11); a compression pointer is 2; an RR is owner + 10 (type, class, TTL,
// RDLENGTH) + RDATA; the header is 12, the question name + 4.
func TestCompressedSizes(t *testing.T) {
	s := fastServer(t, "")
	client := netip.MustParseAddrPort("127.0.0.1:5300")
	// SOA RDATA: MNAME ns1+pointer (4+2) + RNAME hostmaster+pointer (11+2)
	// + five 32-bit numbers (20) = 39; the RR with its owner a pointer: 51.
	const soaRR = 2 + 10 + 39
	for _, c := range []struct {
		name  string
		qtype uint16
		want  int
	}{
		// 12 + question 11+4 + the SOA RR (owner: pointer to the question).
		{"fast.test.", dns.TypeSOA, 12 + 15 + soaRR}, // 78 (uncompressed: 109)
		// 12 + www.fast.test. 15+4 + A RR: pointer, 10, 4 octets.
		{"www.fast.test.", dns.TypeA, 12 + 19 + 2 + 10 + 4}, // 47 (uncompressed: 62)
		// The service answer: keys.fast.test. 16+4, one A.
		{"keys.fast.test.", dns.TypeA, 12 + 20 + 2 + 10 + 4}, // 48
		// The same in the letter case of a 0x20 resolver.
		{"KeYs.FaSt.TeSt.", dns.TypeA, 12 + 20 + 2 + 10 + 4},
		// NXDOMAIN: the SOA in authority, its owner a pointer into the
		// question's fast.test.
		{"nope.fast.test.", dns.TypeA, 12 + 20 + soaRR},       // 83
		{"a.b.c.nope.fast.test.", dns.TypeA, 12 + 26 + soaRR}, // 89: the shared template relocated
		{"NoPe.FAST.test.", dns.TypeA, 12 + 20 + soaRR},
		// NODATA: the same SOA.
		{"www.fast.test.", dns.TypeMX, 12 + 19 + soaRR}, // 82
		// MX RDATA: preference 2 + www+pointer (4+2) = 8.
		{"mx.fast.test.", dns.TypeMX, 12 + 18 + 2 + 10 + 8}, // 50
		// NS RDATA: ns1+pointer = 6.
		{"fast.test.", dns.TypeNS, 12 + 15 + 2 + 10 + 6}, // 45
		// An NXDOMAIN whose name shares ns1.fast.test. with the SOA's
		// MNAME: the MNAME is one pointer into the question (2), 4 less.
		{"x.ns1.fast.test.", dns.TypeA, 12 + 21 + soaRR - 4}, // 80
	} {
		pkt := packQ(c.name, c.qtype, nil)
		general := s.generalBytes(pkt, client)
		var tcp tcpSink
		q := new(dns.Msg)
		if err := q.Unpack(pkt); err != nil {
			t.Fatal(err)
		}
		s.ServeDNS(&tcp, q)
		fast, ok := s.fastBytes(pkt, client)
		if len(general) != c.want || len(tcp.out) != c.want {
			t.Errorf("%s %s: %d bytes over UDP, %d over TCP (general path), want %d", c.name, dns.TypeToString[c.qtype], len(general), len(tcp.out), c.want)
		}
		if ok && !bytes.Equal(fast, general) {
			t.Errorf("%s %s: the fast path's %d bytes differ from the general path's", c.name, dns.TypeToString[c.qtype], len(fast))
		}
		if !ok && c.name != "x.ns1.fast.test." {
			t.Errorf("%s %s: the fast path declined", c.name, dns.TypeToString[c.qtype])
		}
		r := new(dns.Msg)
		if err := r.Unpack(general); err != nil || r.Question[0].Name != c.name {
			t.Errorf("%s %s: the answer does not parse (%v) or its question is not the name as sent: %v", c.name, dns.TypeToString[c.qtype], err, r.Question)
		}
	}
}
