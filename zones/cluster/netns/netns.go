// Package netns runs a test inside a network namespace of its own, where
// iptables rules, killed processes' sockets and every port are private to
// that test: a partition it makes cannot touch anything else on the
// machine. It is test support for the cluster fault tests; only tests
// import it.
//
// The shape is Run(t, func(t *testing.T) { ... }): outside a namespace,
// Run starts the test binary again under `unshare -n` with only this test
// selected and reports its outcome; inside, it brings lo up and calls the
// function. The test's own code before Run executes in both processes, so
// keep it to what is cheap and harmless (or nothing).
package netns

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"github.com/failoverdns/failoverdns/dnsserver/testenv"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// envMarker names the test a re-executed binary runs inside its
// namespace. It holds the test's full name, so a test that runs other
// tests' binaries, or a subtest other than the one that asked, never takes
// itself for being inside.
const envMarker = "FAILOVERDNS_NETNS_TEST"

// Inside reports whether the calling test runs inside the namespace Run
// made for it.
func Inside(t testing.TB) bool {
	return os.Getenv(envMarker) == t.Name()
}

// Run runs f inside a new network namespace, with lo up and nothing else.
//
// Outside, it re-executes the test binary as
//
//	unshare -n -- <binary> -test.run '^<name>$' -test.v -test.count=1 -test.timeout <rest>
//
// streams the child's output into t.Log, and reports the child's outcome
// as t's: a failure fails t, a skip skips t (with the child's reason), a
// pass passes. Inside (the child), it brings lo up and calls f(t).
//
// Run needs root and unshare(1) and ip(8) (iproute2); where they are
// missing the test is skipped with the reason, except under CI=true, where
// it fails.
//
// Subtests: tests inside f may use t.Run freely; they all run in the
// child. Run may also be called from a subtest: the child then runs the
// enclosing test's body again up to that subtest (its setup happens in
// both processes), and only that subtest. Calling Run first thing in a
// top-level test is the simple case.
func Run(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	if Inside(t) {
		if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			t.Fatalf("netns: ip link set lo up: %v: %s", err, out)
		}
		f(t)
		return
	}
	args := namespaceArgs(t)
	cmd := exec.Command(args[0], append(args[1:], "--", os.Args[0],
		"-test.run", runPattern(t.Name()), "-test.v", "-test.count=1", "-test.timeout", childTimeout(t).String())...)
	cmd.Env = append(withoutMarker(os.Environ()), envMarker+"="+t.Name())
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		w.Close()
		r.Close()
		t.Fatalf("netns: %s: %v", strings.Join(args, " "), err)
	}
	w.Close()
	res := stream(t, r)
	r.Close()
	werr := cmd.Wait()

	switch {
	case res.failed || werr != nil && !res.passed && !res.skipped:
		t.Fatalf("netns: %s failed in its network namespace (%v); its output is above", t.Name(), exitOf(werr))
	case werr != nil:
		// The test passed or skipped, yet the binary failed: a leak or
		// a panic after the test, still a failure.
		t.Fatalf("netns: the test binary run for %s in its network namespace failed after the test: %v", t.Name(), werr)
	case res.skipped:
		t.Skipf("netns: skipped in its network namespace: %s", res.skipReason)
	case !res.passed:
		t.Fatalf("netns: the test binary ran no test named %s in the namespace (pattern %s)", t.Name(), runPattern(t.Name()))
	}
}

func exitOf(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// result is what the child's -test.v output says about the test.
type result struct {
	passed, failed, skipped bool
	skipReason              string
}

// stream copies the child's output into t.Log line by line and reads the
// verdict of t's test from it.
func stream(t *testing.T, r *os.File) result {
	var res result
	pass := "--- PASS: " + t.Name() + " "
	fail := "--- FAIL: " + t.Name() + " "
	skip := "--- SKIP: " + t.Name() + " "
	var last string // the last log line, the reason of a skip
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		t.Log("│ " + line)
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, pass):
			res.passed = true
		case strings.HasPrefix(trimmed, fail):
			res.failed = true
		case strings.HasPrefix(trimmed, skip):
			res.skipped, res.skipReason = true, last
		case strings.HasPrefix(trimmed, "=== "), strings.HasPrefix(trimmed, "--- "):
		default:
			last = trimmed
		}
	}
	return res
}

// runPattern selects exactly the test named name (subtests included, each
// level anchored), for -test.run.
func runPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

// childTimeout leaves the child a little less than the parent's remaining
// time, so a hung child panics with its own stacks before the parent does.
func childTimeout(t *testing.T) time.Duration {
	dl, ok := t.Deadline()
	if !ok {
		return 0 // no limit
	}
	left := time.Until(dl)
	return max(left-left/10, time.Second)
}

func withoutMarker(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, envMarker+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// namespaceArgs is the unshare command that makes a network namespace,
// after checking that it works here; it skips or fails t when not.
func namespaceArgs(t *testing.T) []string {
	t.Helper()
	for _, tool := range []struct{ bin, pkg string }{{"unshare", "util-linux"}, {"ip", "iproute2"}} {
		if _, err := exec.LookPath(tool.bin); err != nil {
			unavailable(t, fmt.Sprintf("netns: %s not installed: apt-get install %s", tool.bin, tool.pkg))
		}
	}
	args := []string{"unshare", "-n"}
	if os.Geteuid() != 0 {
		// Without root, a user namespace of our own may still grant
		// the network namespace (where the kernel allows it).
		args = []string{"unshare", "-r", "-n"}
	}
	probeOnce.Do(func() {
		out, err := exec.Command(args[0], append(args[1:], "--", "ip", "link", "set", "lo", "up")...).CombinedOutput()
		if err != nil {
			probeErr = fmt.Errorf("%s -- ip link set lo up: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
	})
	if probeErr != nil {
		unavailable(t, fmt.Sprintf("netns: cannot make a network namespace (run as root): %v", probeErr))
	}
	return args
}

var (
	probeOnce sync.Once
	probeErr  error
)

// unavailable is testenv.Unavailable: skip, or fail under CI=true.
var unavailable = testenv.Unavailable

// Rule is one iptables rule that drops packets. Empty fields match
// anything. Ports need Proto.
type Rule struct {
	Src, Dst         string // addresses (or prefixes)
	Proto            string // "tcp", "udp", ...
	SrcPort, DstPort int
}

// args is the rule's match and target, for iptables -A or -D.
func (r Rule) args() ([]string, error) {
	var a []string
	if r.Src != "" {
		a = append(a, "-s", r.Src)
	}
	if r.Dst != "" {
		a = append(a, "-d", r.Dst)
	}
	if r.Proto != "" {
		a = append(a, "-p", r.Proto)
	} else if r.SrcPort != 0 || r.DstPort != 0 {
		return nil, errors.New("a port needs Proto")
	}
	if r.SrcPort != 0 {
		a = append(a, "--sport", fmt.Sprint(r.SrcPort))
	}
	if r.DstPort != 0 {
		a = append(a, "--dport", fmt.Sprint(r.DstPort))
	}
	// DROP, not REJECT: a real partition answers nothing, so peers learn
	// of it only by their own timeouts. Every packet is matched, not only
	// SYNs, so established connections stall too.
	return append(a, "-j", "DROP"), nil
}

func (r Rule) String() string {
	a, _ := r.args()
	return strings.Join(a, " ")
}

// Drop adds r to the namespace's OUTPUT chain: every packet that matches
// is dropped as it leaves, which on loopback is before anyone can receive
// it. undo removes the rule (once; later calls do nothing). Drop works
// only inside Run's namespace: outside, it would change the machine's
// firewall, so it fails the test instead. iptables must be installed.
func Drop(t *testing.T, r Rule) (undo func()) {
	t.Helper()
	if !Inside(t) {
		t.Fatal("netns.Drop outside a network namespace: call it inside netns.Run")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		unavailable(t, "netns: iptables not installed: apt-get install iptables")
	}
	a, err := r.args()
	if err != nil {
		t.Fatalf("netns.Drop(%+v): %v", r, err)
	}
	iptables(t, append([]string{"-A", "OUTPUT"}, a...))
	var once sync.Once
	return func() {
		t.Helper()
		once.Do(func() { iptables(t, append([]string{"-D", "OUTPUT"}, a...)) })
	}
}

func iptables(t *testing.T, args []string) {
	t.Helper()
	// -w: wait for the xtables lock, which is a file shared with every
	// other namespace on the machine.
	out, err := exec.Command("iptables", append([]string{"-w"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("netns: iptables %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
}

// CutOff drops all traffic between src and each of dsts, both ways and
// every protocol, as a network partition would. undo heals it.
func CutOff(t *testing.T, src string, dsts ...string) (undo func()) {
	t.Helper()
	var undos []func()
	for _, d := range dsts {
		undos = append(undos,
			Drop(t, Rule{Src: src, Dst: d}),
			Drop(t, Rule{Src: d, Dst: src}))
	}
	return func() {
		t.Helper()
		for _, u := range undos {
			u()
		}
	}
}
