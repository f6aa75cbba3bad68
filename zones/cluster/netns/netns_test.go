package netns_test

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/failoverdns/failoverdns/dnsserver/testenv"
	"github.com/failoverdns/failoverdns/zones/cluster/netns"
)

// Deadlines. What must get through gets a generous one, so load cannot
// fail it. What a cut must stop gets a short one: loopback answers in
// microseconds, and its expiry only ends the wait (a slow machine could
// at worst make it pass without the drop, never fail with it).
const (
	mustPass = 30 * time.Second
	mustStop = 1500 * time.Millisecond
)

func dialFrom(src, addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)},
		Timeout:   timeout,
	}
	return d.Dial("tcp", addr)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestCutOff: inside its own namespace (only lo), a listener on 127.0.0.1
// is reached from 127.0.0.11; after CutOff(127.0.0.11, 127.0.0.1) a dial
// from .11 times out (dropped, not refused), an established connection
// from .11 stops delivering, and .12 is untouched; after undo, .11 dials
// again.
func TestCutOff(t *testing.T) {
	netns.Run(t, func(t *testing.T) {
		ifs, err := net.Interfaces()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, i := range ifs {
			names = append(names, i.Name)
		}
		if !slices.Equal(names, []string{"lo"}) {
			t.Fatalf("interfaces %v, want only lo: not a new network namespace", names)
		}

		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		testenv.Serve(ln, func(c net.Conn) {
			go func() { // echo
				defer c.Close()
				buf := make([]byte, 64)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		})
		addr := ln.Addr().String()
		echo := func(c net.Conn, timeout time.Duration) error {
			_ = c.SetDeadline(time.Now().Add(timeout))
			if _, err := c.Write([]byte("ping")); err != nil {
				return err
			}
			buf := make([]byte, 4)
			_, err := c.Read(buf)
			return err
		}

		est, err := dialFrom("127.0.0.11", addr, mustPass)
		if err != nil {
			t.Fatalf("dial from .11 before the cut: %v", err)
		}
		defer est.Close()
		if err := echo(est, mustPass); err != nil {
			t.Fatalf("echo from .11 before the cut: %v", err)
		}

		undo := netns.CutOff(t, "127.0.0.11", "127.0.0.1")
		if c, err := dialFrom("127.0.0.11", addr, mustStop); err == nil {
			c.Close()
			t.Fatal("dial from .11 through the cut succeeded")
		} else if !isTimeout(err) {
			t.Fatalf("dial from .11 through the cut: %v, want a timeout (dropped, not refused)", err)
		}
		if err := echo(est, mustStop); !isTimeout(err) {
			t.Fatalf("echo on the established connection through the cut: %v, want a timeout", err)
		}
		c, err := dialFrom("127.0.0.12", addr, mustPass)
		if err != nil {
			t.Fatalf("dial from .12 during the cut of .11: %v", err)
		}
		if err := echo(c, mustPass); err != nil {
			t.Fatalf("echo from .12 during the cut of .11: %v", err)
		}
		c.Close()

		undo()
		undo() // a second undo does nothing
		c, err = dialFrom("127.0.0.11", addr, mustPass)
		if err != nil {
			t.Fatalf("dial from .11 after undo: %v", err)
		}
		c.Close()
		out, err := exec.Command("iptables", "-S", "OUTPUT").CombinedOutput()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), "DROP") {
			t.Errorf("rules left after undo:\n%s", out)
		}
	})
}

// TestDropPort: a Rule with a port drops that port only.
func TestDropPort(t *testing.T) {
	netns.Run(t, func(t *testing.T) {
		a, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		b, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		netns.Drop(t, netns.Rule{Src: "127.0.0.11", Dst: "127.0.0.1", Proto: "tcp", DstPort: a.Addr().(*net.TCPAddr).Port})
		if c, err := dialFrom("127.0.0.11", a.Addr().String(), mustStop); !isTimeout(err) {
			if c != nil {
				c.Close()
			}
			t.Fatalf("dial to the dropped port: %v, want a timeout", err)
		}
		c, err := dialFrom("127.0.0.11", b.Addr().String(), mustPass)
		if err != nil {
			t.Fatalf("dial to another port: %v", err)
		}
		c.Close()
	})
}

// The outcome of a test in the namespace is its outcome in the parent:
// these run the test binary on the helper tests below and read the
// verdicts go test would print.

func TestFailureReported(t *testing.T) {
	out, err := runHelper(t, "TestHelperFails")
	if err == nil || !strings.Contains(out, "--- FAIL: TestHelperFails ") || !strings.Contains(out, "the failure inside") {
		t.Fatalf("a test failing in its namespace: err %v, output:\n%s", err, out)
	}
}

func TestSkipReported(t *testing.T) {
	out, err := runHelper(t, "TestHelperSkips")
	if err != nil || !strings.Contains(out, "--- SKIP: TestHelperSkips ") || !strings.Contains(out, "skipped in its network namespace: ") || !strings.Contains(out, "the reason inside") {
		t.Fatalf("a test skipping in its namespace: err %v, output:\n%s", err, out)
	}
}

func TestDropOutside(t *testing.T) {
	out, err := runHelper(t, "TestHelperDropsOutside")
	if err == nil || !strings.Contains(out, "netns.Drop outside a network namespace") {
		t.Fatalf("Drop outside a namespace: err %v, output:\n%s", err, out)
	}
}

const helperEnv = "NETNS_TEST_HELPER"

func runHelper(t *testing.T, name string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil || os.Geteuid() != 0 {
		if os.Getenv("CI") != "true" {
			t.Skip("needs root and unshare")
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^"+name+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func helper(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("run by the test above it")
	}
}

func TestHelperFails(t *testing.T) {
	helper(t)
	netns.Run(t, func(t *testing.T) { t.Fatal("the failure inside") })
}

func TestHelperSkips(t *testing.T) {
	helper(t)
	netns.Run(t, func(t *testing.T) { t.Skip("the reason inside") })
}

func TestHelperDropsOutside(t *testing.T) {
	helper(t)
	netns.Drop(t, netns.Rule{Src: "127.0.0.11"})
}
