package dnsserver

import (
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
	dto "github.com/prometheus/client_model/go"
)

// TestRRL: a client prefix over responses_per_second gets at most that many
// answers per second, with every slip-th excess answer truncated (TC) and
// the rest dropped; another prefix is unaffected, and admin_nets exempt.
func TestRRL(t *testing.T) {
	s := startZoneServer(t, "admin_nets = [\"127.0.0.1/32\"]\n[server.rrl]\nresponses_per_second = 5\nslip = 2\n")
	server, _ := net.ResolveUDPAddr("udp", s.Addrs()[0])

	// burst sends n queries from src within one second and counts replies.
	burst := func(src string, n int) (answered, tc int, elapsed time.Duration) {
		conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)}, server)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		for i := range n {
			m := new(dns.Msg)
			m.SetQuestion("www.fast.test.", dns.TypeA)
			m.Id = uint16(i + 1)
			b, _ := m.Pack()
			if _, err := conn.Write(b); err != nil {
				t.Fatal(err)
			}
		}
		elapsed = time.Since(start)
		buf := make([]byte, 2048)
		for {
			_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			r := new(dns.Msg)
			if r.Unpack(buf[:k]) != nil {
				t.Fatalf("unparseable reply")
			}
			if r.Truncated {
				if len(r.Answer) != 0 {
					t.Fatalf("a slipped reply carries data: %v", r)
				}
				tc++
			} else {
				answered++
			}
		}
	}
	const n = 40
	answered, tc, elapsed := burst("127.0.0.2", n)
	seconds := int(elapsed/time.Second) + 2 // the burst may straddle second boundaries
	if answered == 0 || answered > 5*seconds {
		t.Errorf("limited prefix: %d answers to %d queries in %v, want 1..%d", answered, n, elapsed, 5*seconds)
	}
	if tc == 0 || answered+tc >= n {
		t.Errorf("limited prefix: %d truncated, %d answered of %d: want some slipped and some dropped", tc, answered, n)
	}
	// 127.0.3.x is another /24: its own budget.
	if a, _, _ := burst("127.0.3.9", 3); a != 3 {
		t.Errorf("another prefix got %d of 3 answers", a)
	}
	// admin_nets are exempt.
	if a, _, _ := burst("127.0.0.1", 20); a != 20 {
		t.Errorf("an admin client got %d of 20 answers", a)
	}
}

// TestRRLNeverAnswersResponses: a message with QR=1 is never answered, not
// even by the slip of a client over its rate limit (a reply to a response
// is how two servers are made to bounce packets at each other, and how a
// spoofed source gets traffic). Responses do not spend the client's budget
// either: the query sent after them is answered in full.
func TestRRLNeverAnswersResponses(t *testing.T) {
	s := startZoneServer(t, "admin_nets = [\"127.0.0.1/32\"]\n[server.rrl]\nresponses_per_second = 1\nslip = 1\n")
	server, _ := net.ResolveUDPAddr("udp", s.Addrs()[0])
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.2")}, server)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	resp := new(dns.Msg)
	resp.SetQuestion("www.fast.test.", dns.TypeA)
	resp.Response = true
	var packets [][]byte
	for i := range 50 {
		resp.Id = uint16(1000 + i)
		resp.Opcode = []int{dns.OpcodeQuery, dns.OpcodeNotify, dns.OpcodeUpdate, 15}[i%4]
		b, err := resp.Pack()
		if err != nil {
			t.Fatal(err)
		}
		packets = append(packets, b)
	}
	for _, b := range packets {
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	// One socket of the server reads this client's packets in order and
	// answers in order: the probe's answer comes after any reply to the
	// responses sent before it.
	probe := new(dns.Msg)
	probe.SetQuestion("www.fast.test.", dns.TypeA)
	probe.Id = 7
	b, _ := probe.Pack()
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no answer to the query sent after the responses: %v", err)
		}
		r := new(dns.Msg)
		if err := r.Unpack(buf[:k]); err != nil {
			t.Fatalf("unparseable reply: %v", err)
		}
		if r.Id != probe.Id {
			t.Fatalf("a response (id %d, opcode %s) was answered: TC=%v rcode %s", r.Id, dns.OpcodeToString[r.Opcode], r.Truncated, dns.RcodeToString[r.Rcode])
		}
		if r.Truncated || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			t.Fatalf("the query after the responses: TC=%v rcode %s, %d answers; want a full NOERROR answer (responses must not spend the budget)", r.Truncated, dns.RcodeToString[r.Rcode], len(r.Answer))
		}
		break
	}
	var m dto.Metric
	if err := s.metrics.rrlSlipped.Write(&m); err != nil {
		t.Fatal(err)
	}
	if got := m.GetCounter().GetValue(); got != 0 {
		t.Errorf("failoverdns_rrl_slipped_total = %v, want 0", got)
	}
}
