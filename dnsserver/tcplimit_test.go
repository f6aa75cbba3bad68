package dnsserver

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestTCPConnectionCapEvictsOldest: with tcp_max_conns = 5, a sixth
// connection closes the oldest idle one; the newcomer and UDP are served.
func TestTCPConnectionCapEvictsOldest(t *testing.T) {
	s := startZoneServer(t, "tcp_max_conns = 5\ntcp_idle_timeout = \"60s\"\n")
	addr := s.Addrs()[0]

	var idle []net.Conn
	for range 5 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		idle = append(idle, c)
	}
	// The listener counts a connection once it is accepted; make sure the
	// five are (a query on the newest proves the accept loop got there).
	query := func(netw string) (*dns.Msg, error) {
		m := new(dns.Msg)
		m.SetQuestion("www.fast.test.", dns.TypeA)
		c := &dns.Client{Net: netw, Timeout: 5 * time.Second}
		r, _, err := c.Exchange(m, addr)
		return r, err
	}
	waitAccepted := func(n int) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			s.mu.Lock()
			got := 0
			for _, srv := range s.servers {
				if cl, ok := srv.Listener.(*capListener); ok {
					cl.mu.Lock()
					got += cl.conns.Len()
					cl.mu.Unlock()
				}
			}
			s.mu.Unlock()
			if got >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("only %d TCP connections accepted, want %d", got, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitAccepted(5)

	r, err := query("tcp")
	if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("a new TCP client over the cap was not served: %v %v", r, err)
	}
	_ = idle[0].SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := idle[0].Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("the oldest idle connection was not closed: read err = %v", err)
	}
	_ = idle[4].SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := idle[4].Read(make([]byte, 1)); !isTimeout(err) {
		t.Fatalf("a newer idle connection was closed too: read err = %v", err)
	}
	if r, err := query("udp"); err != nil || r.Rcode != dns.RcodeSuccess {
		t.Fatalf("UDP affected by the TCP cap: %v %v", r, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isReset(err error) bool { return err != nil && !isTimeout(err) }
