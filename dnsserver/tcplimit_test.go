package dnsserver

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/zones"
)

// TestTCPConnectionCapEvictsOldest: with tcp_max_conns = 5, a sixth
// connection closes the oldest idle one; the newcomer and UDP are served.
func TestTCPConnectionCapEvictsOldest(t *testing.T) {
	dir := t.TempDir()
	zone, _ := filepath.Abs("../testdata/fast/fast.test.zone")
	cfg := `[server]
listen = ["127.0.0.1:0"]
http = ""
state_dir = "` + dir + `"
tcp_max_conns = 5
tcp_idle_timeout = "60s"
[[zone]]
origin = "fast.test."
file = "` + zone + `"
`
	path := filepath.Join(dir, "c.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	snap, err := zones.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s := New(snap, slog.New(slog.NewTextHandler(io.Discard, nil)), "test")
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(t.Context()) })
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
