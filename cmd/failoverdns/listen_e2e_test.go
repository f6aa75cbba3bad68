package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/dnsserver/testenv"
)

// needIPv6Loopback skips (fails under CI=true) where ::1 cannot be used.
func needIPv6Loopback(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		testenv.Unavailable(t, fmt.Sprintf("::1 is not usable here (%v): the test needs IPv6 on loopback", err))
		return
	}
	ln.Close()
}

// startListenProc runs the binary with the given listen line (a format with
// one %d per port) and the conformance zone; ok is false when the port was
// taken in between.
func startListenProc(t *testing.T, listen string) (p *proc, port int, ok bool) {
	t.Helper()
	zone, err := filepath.Abs(filepath.Join("..", "..", "testdata", "conformance.test.zone"))
	if err != nil {
		t.Fatal(err)
	}
	port = testenv.FreePortAll(t)
	line := strings.ReplaceAll(listen, "%d", strconv.Itoa(port))
	dir := t.TempDir()
	cfg := filepath.Join(dir, "failoverdns.toml")
	body := fmt.Sprintf("[server]\nlisten = %s\nhttp = \"\"\nstate_dir = %q\n\n[[zone]]\norigin = \"conformance.test.\"\nfile = %q\n", line, filepath.Join(dir, "state"), zone)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	p = startProc(t, "-config", cfg)
	// Ready once the start has logged a listener for each address.
	want := strings.Count(line, ":"+strconv.Itoa(port))
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(p.stderr.String(), "msg=listening") < want {
		if p.exited() {
			if strings.Contains(p.stderr.String(), "address already in use") {
				return p, port, false
			}
			t.Fatalf("listen = %s: exited\nstderr:\n%s", line, p.stderr.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("listen = %s: not listening within 20s\nstderr:\n%s", line, p.stderr.String())
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	return p, port, true
}

// soaOver asks conformance.test. SOA at addr over network.
func soaOver(network, addr string) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(new(dns.Msg).SetQuestion("conformance.test.", dns.TypeSOA), addr)
	return r, err
}

// TestListenBothFamilies: the README's listen line, ["0.0.0.0:53", "[::]:53"]
// on a high port, starts and answers over IPv4 and IPv6, UDP and TCP; so
// does ":53" (one socket for both). "[::]" alone is IPv6 only.
func TestListenBothFamilies(t *testing.T) {
	needIPv6Loopback(t)
	for _, listen := range []string{`["0.0.0.0:%d", "[::]:%d"]`, `[":%d"]`} {
		t.Run(listen, func(t *testing.T) {
			for range 5 {
				p, port, ok := startListenProc(t, listen)
				if !ok {
					continue // the port was taken in between: try another
				}
				for _, host := range []string{"127.0.0.1", "::1"} {
					for _, network := range []string{"udp", "tcp"} {
						addr := net.JoinHostPort(host, strconv.Itoa(port))
						r, err := soaOver(network, addr)
						if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || !r.Authoritative {
							t.Errorf("SOA over %s to %s: %v %v, want one authoritative NOERROR answer", network, addr, err, r)
						}
					}
				}
				if code := p.terminate(t); code != 0 {
					t.Errorf("exit %d after SIGTERM, want 0\nstderr:\n%s", code, p.stderr.String())
				}
				return
			}
			t.Fatal("no free port in 5 tries")
		})
	}
	t.Run("[::] is IPv6 only", func(t *testing.T) {
		for range 5 {
			p, port, ok := startListenProc(t, `["[::]:%d"]`)
			if !ok {
				continue
			}
			if r, err := soaOver("tcp", net.JoinHostPort("::1", strconv.Itoa(port))); err != nil || r.Rcode != dns.RcodeSuccess {
				t.Errorf("over ::1: %v %v, want NOERROR", err, r)
			}
			_, err := soaOver("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("TCP to 127.0.0.1 with listen [::] only: %v, want connection refused (IPV6_V6ONLY)", err)
			}
			p.terminate(t)
			return
		}
		t.Fatal("no free port in 5 tries")
	})
}

// TestBindPermissionHint: an unprivileged start on port 53 fails with the
// address and the capability that fixes it. As root the binary is run as
// nobody; only loopback is bound.
func TestBindPermissionHint(t *testing.T) {
	dir, err := os.MkdirTemp("", "failoverdns-bind-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "failoverdns")
	src, err := os.ReadFile(binary(t))
	if err != nil {
		t.Fatal(err)
	}
	zone, err := os.ReadFile(filepath.Join("..", "..", "testdata", "conformance.test.zone"))
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"failoverdns": src, "conformance.test.zone": zone,
		"c.toml": []byte("[server]\nlisten = [\"127.0.0.1:53\"]\nhttp = \"\"\nstate_dir = \"/nonexistent/state\"\n\n[[zone]]\norigin = \"conformance.test.\"\nfile = \"conformance.test.zone\"\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-config", filepath.Join(dir, "c.toml"))
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	out, err := cmd.CombinedOutput()
	if err == nil || strings.Contains(string(out), "msg=listening") {
		t.Skipf("port 53 could be bound without privileges here (net.ipv4.ip_unprivileged_port_start?):\n%s", out)
	}
	for _, want := range []string{"listen udp 127.0.0.1:53", "permission denied", "CAP_NET_BIND_SERVICE", "deploy/failoverdns.service", "setcap cap_net_bind_service=+ep"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the bind error does not say %q:\n%s", want, out)
		}
	}
}
