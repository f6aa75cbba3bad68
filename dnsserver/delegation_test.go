package dnsserver_test

// Delegation end to end (README "Delegating a
// subdomain"): a real recursive resolver, unbound, with svc.test. delegated to a
// failoverdns instance by a stub zone, answers clients with the active node,
// and follows a failover within the service's TTL. Everything stays on
// loopback: unbound's root hints name 127.0.0.255 (where nothing listens) so
// it never reaches for the internet, and the only zone it can resolve is the
// stub.

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/dnsserver/testenv"
)

// opsUnboundBinary returns unbound's path (and unbound-checkconf's, "" when
// absent), or skips the test without it (fails when CI=true).
func opsUnboundBinary(t *testing.T) (unbound, checkconf string) {
	t.Helper()
	return testenv.Tool(t, "unbound", "unbound"), testenv.Find("unbound-checkconf")
}

// opsUnbound is a running unbound.
type opsUnbound struct {
	*testenv.Proc
	addr string
	conf string
}

// log is what unbound wrote.
func (u *opsUnbound) log() string { return u.Stdout.String() + u.Stderr.String() }

// opsUnboundConf is unbound's config: a resolver on 127.0.0.1:port with no
// way out but the stub zone svc.test. at stub.
func opsUnboundConf(dir string, port int, zone, stub string) string {
	return fmt.Sprintf(`server:
	verbosity: 1
	interface: 127.0.0.1
	port: %[1]d
	outgoing-interface: 127.0.0.1
	do-ip4: yes
	do-ip6: no
	do-udp: yes
	do-tcp: yes
	do-daemonize: no
	username: ""
	chroot: ""
	directory: %[2]q
	pidfile: %[3]q
	use-syslog: no
	logfile: ""
	num-threads: 1
	so-reuseport: no
	access-control: 127.0.0.0/8 allow
	do-not-query-localhost: no
	module-config: "iterator"
	qname-minimisation: no
	harden-referral-path: no
	target-fetch-policy: "0 0 0 0 0"
	prefetch: no
	root-hints: %[4]q
	domain-insecure: %[5]q
	local-zone: "test." nodefault

stub-zone:
	name: %[5]q
	stub-addr: %[6]s

remote-control:
	control-enable: no
`, port, dir, filepath.Join(dir, "unbound.pid"), filepath.Join(dir, "root.hints"), zone, stub)
}

// opsStartUnbound runs unbound in the foreground with svc.test. stubbed to
// failoverdns at dnsAddr, and kills it when the test ends.
func opsStartUnbound(t *testing.T, zone, dnsAddr string) *opsUnbound {
	t.Helper()
	bin, checkconf := opsUnboundBinary(t)
	host, port, err := net.SplitHostPort(dnsAddr)
	if err != nil {
		t.Fatal(err)
	}
	stub := host + "@" + port
	dir := t.TempDir()
	// Root hints that lead nowhere: a root server on a loopback address
	// where nothing listens.
	hints := ".                 3600000 NS a.root.invalid.\na.root.invalid.   3600000 A  127.0.0.255\n"
	if err := os.WriteFile(filepath.Join(dir, "root.hints"), []byte(hints), 0o644); err != nil {
		t.Fatal(err)
	}
	var lastLog string
	for range 5 {
		up := testenv.FreePort(t)
		u := &opsUnbound{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(up)), conf: filepath.Join(dir, "unbound.conf")}
		if err := os.WriteFile(u.conf, []byte(opsUnboundConf(dir, up, zone, stub)), 0o644); err != nil {
			t.Fatal(err)
		}
		if checkconf != "" {
			out, err := exec.Command(checkconf, u.conf).CombinedOutput()
			if err != nil {
				t.Fatalf("unbound-checkconf rejects the test's config: %v\n%s", err, out)
			}
		}
		cmd := exec.Command(bin, "-d", "-c", u.conf)
		cmd.Dir = dir
		u.Proc = testenv.StartProc(t, cmd)
		if err := u.waitListening(); err == nil {
			return u
		}
		lastLog = u.log()
		if !u.Exited() || !strings.Contains(lastLog, "in use") {
			t.Fatalf("unbound did not start listening on %s:\n%s", u.addr, lastLog)
		}
		// Someone took the port in between: another one.
	}
	t.Fatalf("unbound could not bind a free port in 5 tries:\n%s", lastLog)
	return nil
}

// waitListening polls unbound with a query for a name it answers itself
// (localhost, from its default local zones) until it does.
func (u *opsUnbound) waitListening() error {
	c := testenv.Client("udp", "", 250*time.Millisecond)
	q := new(dns.Msg).SetQuestion("localhost.", dns.TypeA)
	deadline := time.Now().Add(opsWithin)
	for time.Now().Before(deadline) {
		if u.Exited() {
			return errors.New("unbound exited")
		}
		if r, _, err := c.Exchange(q, u.addr); err == nil && r.Rcode == dns.RcodeSuccess {
			return nil
		}
		time.Sleep(opsPoll) // poll interval
	}
	return fmt.Errorf("unbound does not answer on %s after %s", u.addr, opsWithin)
}

// resolve asks unbound (RD set, as a stub resolver does) for name A.
func (u *opsUnbound) resolve(name string) (*dns.Msg, error) {
	q := new(dns.Msg).SetQuestion(name, dns.TypeA)
	q.RecursionDesired = true
	r, _, err := testenv.Client("udp", "", 2*time.Second).Exchange(q, u.addr)
	return r, err
}

// waitResolve polls unbound every 100ms until it answers want (a node
// name); any answer not in allowed fails at once.
func (u *opsUnbound) waitResolve(t *testing.T, e *opsEnv, name, want string, allowed ...string) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(15 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		r, err := u.resolve(name)
		if err != nil {
			last = err.Error()
		} else {
			last = admNodeOf(r)
			if last == want {
				if r.Answer[0].Header().Ttl > uint32(e.c.ttl) {
					t.Errorf("unbound gave TTL %d, more than the service's %d", r.Answer[0].Header().Ttl, e.c.ttl)
				}
				return time.Since(start)
			}
			ok := false
			for _, a := range allowed {
				ok = ok || last == a
			}
			if !ok {
				t.Fatalf("unbound answered %s for %s, want %s (or %v on the way)\nfailoverdns health: %s\nunbound log:\n%s\nfailoverdns log:\n%s",
					last, name, want, allowed, e.health(), u.log(), e.Logs)
			}
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
	t.Fatalf("unbound still answers %s for %s after 15s, want %s\nfailoverdns answers directly: %s\nunbound log:\n%s\nfailoverdns log:\n%s",
		last, name, want, e.active(t), u.log(), e.Logs)
	return 0
}

// TestDelegationUnbound: svc.test. delegated to failoverdns (a stub zone in
// unbound); clients of unbound get the active node, then the next one after
// the active node fails, then the first again after it recovers.
func TestDelegationUnbound(t *testing.T) {
	opsUnboundBinary(t) // skip before starting anything
	nodes := opsNodes(t, "sems1", "sems2")
	e := opsStart(t, opsConf{origin: "svc.test.", order: []string{"sems1", "sems2"}, ttl: 1}, nodes)
	svc := e.c.service() // keys.svc.test.
	e.wantActive(t, "sems1", "failoverdns at start")

	u := opsStartUnbound(t, e.c.zone(), e.Addr)
	u.waitResolve(t, e, svc, "sems1")
	r, err := u.resolve(svc)
	if err != nil {
		t.Fatal(err)
	}
	if !r.RecursionAvailable || r.Authoritative {
		t.Errorf("the answer is not unbound's (RA=%v AA=%v): the test would not be testing delegation", r.RecursionAvailable, r.Authoritative)
	}
	// A name unbound can only learn from the stub.
	if r, err := u.resolve("www." + e.c.zone()); err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.80" {
		t.Errorf("www.%s through unbound: %v %v, want 192.0.2.80", e.c.zone(), r, err)
	}

	nodes["sems1"].stop()
	took := u.waitResolve(t, e, svc, "sems2", "sems1")
	t.Logf("unbound answered sems2 %s after sems1 stopped (TTL 1s, 100ms probes, fall 2)", took.Round(10*time.Millisecond))

	nodes["sems1"].start(t)
	took = u.waitResolve(t, e, svc, "sems1", "sems2")
	t.Logf("unbound answered sems1 again %s after it came back (rise 2, failback_after 0s)", took.Round(10*time.Millisecond))
	if u.Exited() {
		t.Errorf("unbound exited during the test:\n%s", u.log())
	}
}
