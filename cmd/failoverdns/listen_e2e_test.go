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

// startListenProc runs the binary listening on listen ("%d" stands for the
// port) with the conformance zone: ready once the start has logged a
// listener for each address.
func startListenProc(t *testing.T, listen ...string) (p *proc, port int) {
	t.Helper()
	listening := func(s *server) error {
		deadline := time.Now().Add(20 * time.Second)
		for strings.Count(s.p.Stderr.String(), "msg=listening") < len(listen) {
			if s.p.Exited() {
				return fmt.Errorf("listen = %v: %w", s.Config.Listen, errExited)
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("listen = %v: not listening within 20s", s.Config.Listen)
			}
			time.Sleep(10 * time.Millisecond) // poll interval
		}
		return nil
	}
	s := startBinary(t, conformanceConfig(t), binOpts{listen: listen, ready: listening})
	return s.p, s.port
}

// TestListenBothFamilies: the README's listen line, ["0.0.0.0:53", "[::]:53"]
// on a high port, starts and answers over IPv4 and IPv6, UDP and TCP; so
// does ":53" (one socket for both). "[::]" alone is IPv6 only.
func TestListenBothFamilies(t *testing.T) {
	needIPv6Loopback(t)
	for _, listen := range [][]string{{"0.0.0.0:%d", "[::]:%d"}, {":%d"}} {
		t.Run("["+testenv.Quoted(listen)+"]", func(t *testing.T) {
			p, port := startListenProc(t, listen...)
			for _, host := range []string{"127.0.0.1", "::1"} {
				for _, network := range []string{"udp", "tcp"} {
					addr := net.JoinHostPort(host, strconv.Itoa(port))
					r, err := testenv.Ask(network, "", addr, "conformance.test.", dns.TypeSOA)
					if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || !r.Authoritative {
						t.Errorf("SOA over %s to %s: %v %v, want one authoritative NOERROR answer", network, addr, err, r)
					}
				}
			}
			if code := p.Terminate(t); code != 0 {
				t.Errorf("exit %d after SIGTERM, want 0\nstderr:\n%s", code, p.Stderr.String())
			}
		})
	}
	t.Run("[::] is IPv6 only", func(t *testing.T) {
		p, port := startListenProc(t, "[::]:%d")
		if r, err := testenv.Ask("tcp", "", net.JoinHostPort("::1", strconv.Itoa(port)), "conformance.test.", dns.TypeSOA); err != nil || r.Rcode != dns.RcodeSuccess {
			t.Errorf("over ::1: %v %v, want NOERROR", err, r)
		}
		_, err := testenv.Ask("tcp", "", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), "conformance.test.", dns.TypeSOA)
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("TCP to 127.0.0.1 with listen [::] only: %v, want connection refused (IPV6_V6ONLY)", err)
		}
		p.Terminate(t)
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
