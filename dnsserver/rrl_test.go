package dnsserver

import (
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
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
