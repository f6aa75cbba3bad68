package dnsserver_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/dnsserver/testenv"
)

// Hostile input through real sockets (README "Failure behaviour", bad input): each
// case asserts the exact RCODE, or silence, and then that the server still
// answers an ordinary query over UDP and TCP. The fixture is fzStart in
// fuzz_test.go.

const (
	// hostileSilent is the "rcode" of a packet that must get no reply.
	hostileSilent = -1
	// hostileIdleConns is how many idle TCP connections TestHostileIdleTCP
	// opens at once.
	hostileIdleConns = 2000
	// hostileIdleTimeout is the tcp_idle_timeout of TestHostile's server.
	hostileIdleTimeout = 500 * time.Millisecond
	// hostileCloseBound is how long a stalled TCP client may wait for the
	// server to hang up: far above the 500ms timeout, below the 5s read
	// timeout miekg/dns would otherwise apply.
	hostileCloseBound = 4 * time.Second
)

// hostileCase is one packet and the reply it must get.
type hostileCase struct {
	name    string
	pkt     []byte
	rcode   int  // hostileSilent: no reply at all
	udpOnly bool // meaningless as a TCP frame
}

// hostileQuery is the packed query for the service, ID 0x4242, with arcount
// additional records still to append.
func hostileQuery(t *testing.T, qtype uint16) []byte {
	t.Helper()
	q := new(dns.Msg).SetQuestion(fzService, qtype)
	q.Id = 0x4242
	p, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// hostileWithRRs appends raw records to a packed message, counting them in
// section 0 (answer), 1 (authority) or 2 (additional).
func hostileWithRRs(p []byte, section int, rrs ...[]byte) []byte {
	out := append([]byte(nil), p...)
	off := 6 + 2*section
	binary.BigEndian.PutUint16(out[off:], binary.BigEndian.Uint16(out[off:])+uint16(len(rrs)))
	for _, rr := range rrs {
		out = append(out, rr...)
	}
	return out
}

// hostileOPT is a raw OPT record: payload size 1232, the given TTL field
// (extended RCODE, version, flags) and options.
func hostileOPT(ttl uint32, opts ...[]byte) []byte {
	var rdata []byte
	for _, o := range opts {
		rdata = append(rdata, o...)
	}
	b := []byte{0} // owner: the root
	b = binary.BigEndian.AppendUint16(b, dns.TypeOPT)
	b = binary.BigEndian.AppendUint16(b, 1232)
	b = binary.BigEndian.AppendUint32(b, ttl)
	b = binary.BigEndian.AppendUint16(b, uint16(len(rdata)))
	return append(b, rdata...)
}

// hostileECS is a raw EDNS Client Subnet option (RFC 7871).
func hostileECS(family uint16, source, scope uint8, addr []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, dns.EDNS0SUBNET)
	b = binary.BigEndian.AppendUint16(b, uint16(4+len(addr)))
	b = binary.BigEndian.AppendUint16(b, family)
	b = append(b, source, scope)
	return append(b, addr...)
}

func hostileCases(t *testing.T) []hostileCase {
	q := hostileQuery(t, dns.TypeA)
	withFlags := func(flags uint16) []byte {
		p := append([]byte(nil), q...)
		binary.BigEndian.PutUint16(p[2:], flags)
		return p
	}
	twoQ := new(dns.Msg).SetQuestion(fzService, dns.TypeA)
	twoQ.Id = 0x4242
	twoQ.Question = append(twoQ.Question, dns.Question{Name: "www.fuzz.test.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	twoQP, err := twoQ.Pack()
	if err != nil {
		t.Fatal(err)
	}
	// A question whose name is one label of 64 octets: the length byte
	// 0x40 is not a plain label.
	label64 := append(testenv.Header(0x4242, 0, 1, 0, 0, 0), 64)
	label64 = append(label64, strings.Repeat("a", 64)...)
	label64 = append(label64, 0, 0, 1, 0, 1)
	// Five labels of 63 octets: 321 octets, over the 255 a name may have.
	long := testenv.Header(0x4242, 0, 1, 0, 0, 0)
	for range 5 {
		long = append(long, 63)
		long = append(long, strings.Repeat("b", 63)...)
	}
	long = append(long, 0, 0, 1, 0, 1)
	class1234 := append([]byte(nil), q...)
	binary.BigEndian.PutUint16(class1234[len(class1234)-2:], 1234)
	opcode := func(op int) []byte { return withFlags(uint16(op) << 11) }
	v4 := []byte{10, 1, 2, 3, 0}
	v6 := net.ParseIP("2001:db8:ff::1").To16()

	return []hostileCase{
		{name: "empty datagram", pkt: []byte{}, rcode: hostileSilent, udpOnly: true},
		{name: "1-byte header", pkt: []byte{0x42}, rcode: hostileSilent},
		{name: "11-byte header", pkt: q[:11], rcode: hostileSilent},
		{name: "QR set on a query", pkt: withFlags(0x8000), rcode: hostileSilent},
		{name: "QR set on a bare header", pkt: testenv.Header(0x4242, 0x8000, 0, 0, 0, 0), rcode: hostileSilent},
		{name: "QDCOUNT 0", pkt: testenv.Header(0x4242, 0, 0, 0, 0, 0), rcode: dns.RcodeFormatError},
		{name: "QDCOUNT 2", pkt: twoQP, rcode: dns.RcodeFormatError},
		{name: "QDCOUNT 1 and nothing after the header", pkt: testenv.Header(0x4242, 0, 1, 0, 0, 0), rcode: dns.RcodeFormatError},
		{name: "compression pointer to itself", pkt: append(testenv.Header(0x4242, 0, 1, 0, 0, 0), 0xc0, 12, 0, 1, 0, 1), rcode: dns.RcodeFormatError},
		{name: "compression loop through a label", pkt: append(testenv.Header(0x4242, 0, 1, 0, 0, 0), 1, 'a', 0xc0, 12, 0, 1, 0, 1), rcode: dns.RcodeFormatError},
		{name: "compression pointer past the end", pkt: append(testenv.Header(0x4242, 0, 1, 0, 0, 0), 0xc0, 0xff, 0, 1, 0, 1), rcode: dns.RcodeFormatError},
		{name: "label over 63 octets", pkt: label64, rcode: dns.RcodeFormatError},
		{name: "name over 255 octets", pkt: long, rcode: dns.RcodeFormatError},
		{name: "OPT in the answer section", pkt: hostileWithRRs(q, 0, hostileOPT(0)), rcode: dns.RcodeFormatError},
		{name: "OPT in the authority section", pkt: hostileWithRRs(q, 1, hostileOPT(0)), rcode: dns.RcodeFormatError},
		{name: "two OPT records", pkt: hostileWithRRs(q, 2, hostileOPT(0), hostileOPT(0)), rcode: dns.RcodeFormatError},
		{name: "OPT owner not the root", pkt: hostileWithRRs(q, 2, append([]byte{1, 'x'}, hostileOPT(0)...)), rcode: dns.RcodeFormatError},
		{name: "EDNS version 1", pkt: hostileWithRRs(q, 2, hostileOPT(1<<16)), rcode: dns.RcodeBadVers},
		{name: "ECS IPv4 /33", pkt: hostileWithRRs(q, 2, hostileOPT(0, hostileECS(1, 33, 0, v4))), rcode: dns.RcodeFormatError},
		{name: "ECS IPv6 /129", pkt: hostileWithRRs(q, 2, hostileOPT(0, hostileECS(2, 129, 0, append(v6, 0)))), rcode: dns.RcodeFormatError},
		{name: "ECS scope set in a query", pkt: hostileWithRRs(q, 2, hostileOPT(0, hostileECS(1, 24, 8, v4[:3]))), rcode: dns.RcodeFormatError},
		{name: "ECS address bits beyond source", pkt: hostileWithRRs(q, 2, hostileOPT(0, hostileECS(1, 16, 0, v4[:3]))), rcode: dns.RcodeFormatError},
		{name: "ECS unknown family", pkt: hostileWithRRs(q, 2, hostileOPT(0, hostileECS(3, 8, 0, []byte{1}))), rcode: dns.RcodeFormatError},
		{name: "two ECS options", pkt: hostileWithRRs(q, 2, hostileOPT(0, hostileECS(1, 8, 0, v4[:1]), hostileECS(1, 8, 0, v4[:1]))), rcode: dns.RcodeFormatError},
		{name: "class 1234", pkt: class1234, rcode: dns.RcodeRefused},
		{name: "opcode NOTIFY", pkt: opcode(dns.OpcodeNotify), rcode: dns.RcodeNotImplemented},
		{name: "opcode 15", pkt: opcode(15), rcode: dns.RcodeNotImplemented},
		{name: "qtype OPT", pkt: hostileQuery(t, dns.TypeOPT), rcode: dns.RcodeFormatError},
	}
}

// hostileCheckReply checks a reply to pkt: it parses, echoes the ID, is a
// response without RA, has the wanted RCODE and nothing in the answer.
func hostileCheckReply(t *testing.T, pkt, raw []byte, want int) {
	t.Helper()
	r := new(dns.Msg)
	if err := r.Unpack(raw); err != nil {
		t.Fatalf("the reply does not parse: %v\n%x", err, raw)
	}
	id := binary.BigEndian.Uint16(pkt)
	if r.Rcode != want || r.Id != id || !r.Response || r.RecursionAvailable || len(r.Answer) != 0 {
		t.Fatalf("reply %s ID %#x QR=%v RA=%v, %d answers; want %s ID %#x QR=true RA=false, no answer:\n%v",
			dns.RcodeToString[r.Rcode], r.Id, r.Response, r.RecursionAvailable, len(r.Answer), dns.RcodeToString[want], id, r)
	}
	if want == dns.RcodeBadVers {
		o := r.IsEdns0()
		if o == nil || o.Version() != 0 {
			t.Fatalf("BADVERS must carry an OPT record of version 0 (RFC 6891 6.1.3):\n%v", r)
		}
	}
}

// hostileSendTCP writes pkt and then an ordinary query as two frames on one
// connection and returns the reply to pkt (nil when none came before the
// ordinary query's answer, or the server hung up).
func hostileSendTCP(t *testing.T, addr string, pkt []byte) []byte {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(fzTimeout))
	var pid uint16
	if len(pkt) >= 2 {
		pid = binary.BigEndian.Uint16(pkt)
	}
	sq, sp := fzSentinel(t, pid)
	if _, err := conn.Write(append(testenv.Frame(pkt), testenv.Frame(sp)...)); err != nil {
		t.Fatal(err)
	}
	var reply []byte
	for {
		raw, err := testenv.ReadFrame(conn)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("neither an answer nor a hang-up within %v", fzTimeout)
			}
			return reply // the server hung up: allowed after a bad frame
		}
		r := new(dns.Msg)
		if r.Unpack(raw) == nil && r.Id == sq.Id && len(r.Question) == 1 && r.Question[0] == sq.Question[0] {
			if err := fzIsSentinelReply(r, sq); err != nil {
				t.Fatal(err)
			}
			return reply
		}
		if reply != nil || len(raw) < 2 || binary.BigEndian.Uint16(raw) != pid {
			t.Fatalf("an unexpected frame: %x", raw)
		}
		reply = raw
	}
}

// TestHostile sends each hostile packet over UDP and over TCP, checks the
// exact answer (or silence), then that the server still serves.
func TestHostile(t *testing.T) {
	e := fzStart(t, `tcp_idle_timeout = "500ms"`)
	for _, c := range hostileCases(t) {
		t.Run("udp/"+c.name, func(t *testing.T) {
			res := fzSendUDP(t, e.Addr, c.pkt, c.rcode != hostileSilent, fzQuiet)
			for _, x := range res.extra {
				t.Errorf("a reply with an unexpected ID: %x", x)
			}
			if c.rcode == hostileSilent {
				if res.raw != nil {
					t.Fatalf("a reply to a packet that must be ignored: %x", res.raw)
				}
			} else {
				hostileCheckReply(t, c.pkt, res.raw, c.rcode)
			}
			fzCheckAlive(t, e.Addr)
		})
		if c.udpOnly {
			continue
		}
		t.Run("tcp/"+c.name, func(t *testing.T) {
			raw := hostileSendTCP(t, e.Addr, c.pkt)
			switch {
			case c.rcode == hostileSilent && raw != nil:
				t.Fatalf("a reply to a packet that must be ignored: %x", raw)
			case c.rcode != hostileSilent && raw == nil:
				t.Fatalf("no %s reply (the server hung up or skipped the packet)", dns.RcodeToString[c.rcode])
			case c.rcode != hostileSilent:
				hostileCheckReply(t, c.pkt, raw, c.rcode)
			}
			fzCheckAlive(t, e.Addr)
		})
	}

	// A client that starts a message and stalls: the server must hang up
	// by itself while it keeps serving everyone else.
	for _, c := range []struct {
		name string
		head []byte
	}{
		{"tcp/length prefix 65535 then 20 bytes", append([]byte{0xff, 0xff}, make([]byte, 20)...)},
		{"tcp/slowloris one byte", []byte{0x00}},
		{"tcp/slowloris silent", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", e.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			start := time.Now()
			if len(c.head) > 0 {
				if _, err := conn.Write(c.head); err != nil {
					t.Fatal(err)
				}
			}
			closed := hostileAwaitClose(conn, start.Add(hostileCloseBound))
			fzCheckAlive(t, e.Addr) // meanwhile, UDP and TCP clients are served
			r := <-closed
			if r.err != nil {
				t.Fatal(r.err)
			}
			t.Logf("the server hung up after %v (tcp_idle_timeout %v)", r.after.Round(time.Millisecond), hostileIdleTimeout)
			fzCheckAlive(t, e.Addr)
		})
	}

	// A slow drip: one byte of a valid query every 100ms. A deadline per
	// read would let it hold the connection for the whole message; the
	// server must hang up before the message is complete.
	t.Run("tcp/slow drip", func(t *testing.T) {
		conn, err := net.Dial("tcp", e.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, sp := fzSentinel(t, 0)
		frame := testenv.Frame(sp)
		const every = 100 * time.Millisecond
		if time.Duration(len(frame))*every < 4*hostileIdleTimeout {
			t.Fatalf("frame of %d bytes is too short to outlast the timeout", len(frame))
		}
		start := time.Now()
		closed := hostileAwaitClose(conn, start.Add(time.Duration(len(frame)+10)*every))
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case r := <-closed:
				if r.err != nil {
					t.Fatalf("%v (after %d of %d bytes)", r.err, i, len(frame))
				}
				if i >= len(frame) {
					t.Fatalf("the server hung up only after the whole %d-byte frame had dripped in", len(frame))
				}
				t.Logf("the server hung up after %v, %d of %d bytes in", r.after.Round(time.Millisecond), i, len(frame))
				fzCheckAlive(t, e.Addr)
				return
			case <-tick.C:
				if i < len(frame) {
					conn.Write(frame[i : i+1]) // fails once the server hung up: then closed says so
				}
			}
		}
	})
}

// hostileStillOpen returns the connections the server has not hung up on,
// reading each with a short deadline (a timeout: still open).
func hostileStillOpen(conns []net.Conn) []net.Conn {
	open := make([]bool, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			var b [1]byte
			_, err := c.Read(b[:])
			var ne net.Error
			open[i] = errors.As(err, &ne) && ne.Timeout()
		}()
	}
	wg.Wait()
	var out []net.Conn
	for i, c := range conns {
		if open[i] {
			out = append(out, c)
		}
	}
	return out
}

type hostileClosed struct {
	after time.Duration
	err   error // nil: the server hung up in time without sending anything
}

// hostileAwaitClose reads conn until the server hangs up or deadline
// passes, and reports which on the channel.
func hostileAwaitClose(conn net.Conn, deadline time.Time) <-chan hostileClosed {
	start := time.Now()
	ch := make(chan hostileClosed, 1)
	go func() {
		conn.SetReadDeadline(deadline)
		buf := make([]byte, 512)
		n, err := conn.Read(buf)
		var ne net.Error
		switch {
		case err == nil:
			ch <- hostileClosed{err: fmt.Errorf("the server sent data to a client that never completed a message: %x", buf[:n])}
		case errors.As(err, &ne) && ne.Timeout():
			ch <- hostileClosed{err: fmt.Errorf("the server kept a stalled TCP connection open for %v", time.Since(start).Round(time.Millisecond))}
		default:
			ch <- hostileClosed{after: time.Since(start)} // EOF or reset: hung up
		}
	}()
	return ch
}

// TestHostileIdleTCP opens hostileIdleConns idle TCP connections at once:
// UDP must keep being answered and a new TCP client must still be served.
// Whether the server caps connections, and what memory it spends when each
// idle client announces a 65535-byte message, is logged. The server must
// then hang up on all of them.
func TestHostileIdleTCP(t *testing.T) {
	if testing.Short() {
		t.Skip("opens thousands of connections")
	}
	e := fzStart(t, `tcp_idle_timeout = "30s"`)
	fzCheckAlive(t, e.Addr)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	start := time.Now()
	var dialErr error
	for range hostileIdleConns {
		c, err := net.DialTimeout("tcp", e.Addr, 2*time.Second)
		if err != nil {
			dialErr = err
			break
		}
		conns = append(conns, c)
	}
	t.Logf("opened %d idle TCP connections in %v (dial error: %v)", len(conns), time.Since(start).Round(time.Millisecond), dialErr)

	// UDP is unaffected.
	for range 20 {
		r := fzQuery(t, "udp", e.Addr, fzService, dns.TypeA)
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			t.Fatalf("UDP with %d idle TCP connections open:\n%v", len(conns), r)
		}
	}

	// Did the server hang up on some of them (a connection cap)?
	stillOpen := hostileStillOpen(conns)
	closedNow := len(conns) - len(stillOpen)
	if closedNow == 0 {
		t.Logf("FINDING: no TCP connection cap: all %d idle connections are still open", len(conns))
	} else {
		t.Logf("the server closed %d of %d idle connections at once (a cap of about %d connections)", closedNow, len(conns), len(conns)-closedNow)
	}

	// A new TCP client is served: idle clients must not lock it out.
	c := &dns.Client{Net: "tcp", Timeout: fzTimeout}
	r, _, err := c.Exchange(new(dns.Msg).SetQuestion(fzService, dns.TypeA), e.Addr)
	if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("a new TCP client with %d idle connections open: reply %v, error %v", len(conns), r, err)
	}
	t.Logf("a new TCP client is answered with %d idle connections opened before it", len(conns))

	// Each idle client announces a 65535-byte message and sends nothing
	// more: the server reads the two bytes and waits for the rest.
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	sent := 0
	for _, c := range stillOpen {
		if _, err := c.Write([]byte{0xff, 0xff}); err == nil {
			sent++
		}
	}
	var peak uint64
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		peak = max(peak, m.HeapAlloc)
		time.Sleep(50 * time.Millisecond) // sampling, not synchronisation
	}
	if peak > before.HeapAlloc {
		t.Logf("after %d clients each sent a 65535 length prefix, the heap grew by %d KiB (%d bytes per connection)",
			sent, (peak-before.HeapAlloc)/1024, (peak-before.HeapAlloc)/uint64(max(sent, 1)))
	}

	// UDP still answered; then the server hangs up on every one of them.
	fzQuery(t, "udp", e.Addr, fzService, dns.TypeA)
	var wg sync.WaitGroup
	var open atomic.Int32
	hangStart := time.Now()
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := <-hostileAwaitClose(c, hangStart.Add(20*time.Second)); r.err != nil {
				open.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := open.Load(); n > 0 {
		t.Fatalf("%d of %d stalled connections still open 20s later", n, len(conns))
	}
	t.Logf("the server hung up on all %d stalled connections within %v", len(conns), time.Since(hangStart).Round(time.Millisecond))
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	fzCheckAlive(t, e.Addr)
}

// TestHostileUpdateTSIGWithoutAlgorithm: an UPDATE whose TSIG record has
// RDLENGTH 0 (so no algorithm name) must get a NOTAUTH/BADKEY reply that
// parses. Found by FuzzQuery (testdata/fuzz/FuzzQuery/crash-52956780cf28adcc-*).
func TestHostileUpdateTSIGWithoutAlgorithm(t *testing.T) {
	e := fzStart(t, "")
	for _, owner := range []string{fzKey, "."} {
		m := new(dns.Msg).SetUpdate(fzZone)
		m.Id = 0x4243
		p, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		// A TSIG record without RDATA: owner, TYPE 250, CLASS ANY, TTL 0,
		// RDLENGTH 0.
		rr := make([]byte, 256)
		n, err := dns.PackDomainName(owner, rr, 0, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		rr = rr[:n]
		rr = binary.BigEndian.AppendUint16(rr, dns.TypeTSIG)
		rr = binary.BigEndian.AppendUint16(rr, dns.ClassANY)
		rr = append(rr, 0, 0, 0, 0, 0, 0)
		pkt := hostileWithRRs(p, 2, rr)
		for _, network := range []string{"udp", "tcp"} {
			t.Run(network+"/"+owner, func(t *testing.T) {
				var raw []byte
				if network == "udp" {
					raw = fzSendUDP(t, e.Addr, pkt, true, 0).raw
				} else if raw = hostileSendTCP(t, e.Addr, pkt); raw == nil {
					t.Fatal("no reply over TCP")
				}
				r := new(dns.Msg)
				if err := r.Unpack(raw); err != nil {
					t.Fatalf("the reply does not parse: %v\n%x", err, raw)
				}
				ts := r.IsTsig()
				if r.Id != m.Id || r.Rcode != dns.RcodeNotAuth || ts == nil || ts.Error != dns.RcodeBadKey {
					t.Fatalf("want NOTAUTH with TSIG error BADKEY:\n%v", r)
				}
				fzCheckAlive(t, e.Addr)
			})
		}
	}
}
