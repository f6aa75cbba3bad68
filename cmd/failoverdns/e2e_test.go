package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/dnsserver/testenv"
)

// End-to-end tests: the real binary, driven by the real dig.

const (
	e2eVersion  = "v1.2.3-e2e"
	e2eRevision = "0123456789abcdef0123456789abcdef01234567"
)

var (
	buildOnce sync.Once
	buildDir  string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// binary builds the command once per test run, with a known version.
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "failoverdns-e2e-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "failoverdns")
		// -tags cluster: the tests run cluster mode too (cluster.go);
		// TestDefaultBuildLeavesClusterOut builds the default binary.
		cmd := exec.Command("go", "build", "-tags", "cluster", "-ldflags", "-X main.version="+e2eVersion+" -X main.revision="+e2eRevision, "-o", binPath, ".")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is one running failoverdns.
type proc struct{ *testenv.Proc }

func startProc(t testing.TB, args ...string) *proc {
	t.Helper()
	return &proc{testenv.StartProc(t, exec.Command(binary(t), args...))}
}

var errExited = errors.New("the process exited")

// waitReady polls addr with an SOA query for zone until it is answered.
func (p *proc) waitReady(addr, zone string) error {
	c := &dns.Client{Net: "udp", Timeout: 250 * time.Millisecond}
	q := new(dns.Msg).SetQuestion(zone, dns.TypeSOA)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if p.Exited() {
			return errExited
		}
		if r, _, err := c.Exchange(q, addr); err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1 {
			return nil
		}
		time.Sleep(25 * time.Millisecond) // poll interval
	}
	return fmt.Errorf("%s did not answer %s SOA within 20s", addr, zone)
}

// conformanceConfig serves testdata/conformance.test.zone.
func conformanceConfig(t testing.TB) testenv.Config {
	t.Helper()
	return testenv.Config{Zones: []testenv.Zone{{Origin: "conformance.test.", File: testenv.Testdata(t, 2, "conformance.test.zone")}}}
}

// startServerProc runs the binary on a free port with the conformance zone.
func startServerProc(t *testing.T) (*proc, int) {
	t.Helper()
	s := startBinary(t, conformanceConfig(t), binOpts{})
	return s.p, s.port
}

// digBinary returns the path of dig, or skips (fails in CI) without it.
func digBinary(t *testing.T) string { return testenv.Tool(t, "bind9-dnsutils", "dig") }

// runDig runs dig against 127.0.0.1:port with args. HOME points at an empty
// folder so that no ~/.digrc changes the output.
func runDig(t *testing.T, port int, args ...string) string {
	t.Helper()
	dig := digBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	full := append([]string{"@127.0.0.1", "-p", strconv.Itoa(port), "+time=2", "+tries=2"}, args...)
	cmd := exec.CommandContext(ctx, dig, full...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dig %s: %v\n%s", strings.Join(full, " "), err, out)
	}
	return string(out)
}

// digReply is the last reply in dig's output (after a TCP retry, the TCP one).
type digReply struct {
	status   string
	flags    []string // sorted
	records  []string // every record line, fields joined by one space
	question []string // question lines as printed, without the leading ";"
	edns     string   // "version: 0, flags:; udp: 1232", "" without OPT
	via      string   // "UDP" or "TCP" (needs +stats)
	replies  int      // how many replies dig printed
	raw      string
}

var (
	statusRE = regexp.MustCompile(`^;; ->>HEADER<<- opcode: \S+, status: (\S+),`)
	flagsRE  = regexp.MustCompile(`^;; flags:([a-z ]*);`)
	ednsRE   = regexp.MustCompile(`^; EDNS: (.*)$`)
	serverRE = regexp.MustCompile(`^;; SERVER: .*\((UDP|TCP)\)$`)
)

func parseDig(out string) digReply {
	d := digReply{raw: out}
	var inQuestion bool
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimRight(line, "\r")
		if line == ";; Got answer:" {
			// A new reply: forget the previous one.
			d = digReply{raw: out, replies: d.replies + 1}
			continue
		}
		if m := statusRE.FindStringSubmatch(line); m != nil {
			d.status = m[1]
		}
		if m := flagsRE.FindStringSubmatch(line); m != nil {
			d.flags = strings.Fields(m[1])
			slices.Sort(d.flags)
		}
		if m := ednsRE.FindStringSubmatch(line); m != nil {
			d.edns = m[1]
		}
		if m := serverRE.FindStringSubmatch(line); m != nil {
			d.via = m[1]
		}
		switch {
		case line == ";; QUESTION SECTION:":
			inQuestion = true
		case inQuestion && strings.HasPrefix(line, ";") && !strings.HasPrefix(line, ";;"):
			d.question = append(d.question, strings.Join(strings.Fields(line[1:]), " "))
		case line == "":
			inQuestion = false
		case !strings.HasPrefix(line, ";"):
			d.records = append(d.records, strings.Join(strings.Fields(line), " "))
		}
	}
	return d
}

func sameSet(got, want []string) bool {
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(binary(t), "version").CombinedOutput()
	if err != nil {
		t.Fatalf("failoverdns version: %v\n%s", err, out)
	}
	if got, want := string(out), "failoverdns "+e2eVersion+" (revision "+e2eRevision+"; go"; !strings.HasPrefix(got, want) {
		t.Errorf("failoverdns version printed %q, want it to start with %q", got, want)
	}
}

// TestDig drives the real dig against the real binary.
func TestDig(t *testing.T) {
	digBinary(t)
	_, port := startServerProc(t)
	const (
		wwwA    = "www.conformance.test. 300 IN A 192.0.2.80"
		wwwAAAA = "www.conformance.test. 300 IN AAAA 2001:db8::80"
		negSOA  = "conformance.test. 300 IN SOA ns1.conformance.test. hostmaster.conformance.test. 2026010101 7200 3600 1209600 300"
	)
	big := testenv.ConformanceBigTXT()

	for _, tc := range []struct {
		name       string
		args       []string
		status     string
		flags      string // space separated, any order
		records    []string
		subsetOf   []string // instead of records: each record in this set, fewer than all
		edns       string
		via        string
		replies    int
		question   string
		retryNotes bool // dig said it retries over TCP
	}{
		{name: "+norec: aa, no rd, no ra",
			args:   []string{"+norec", "+noall", "+answer", "+comments", "+stats", "www.conformance.test", "A"},
			status: "NOERROR", flags: "qr aa", records: []string{wwwA}, edns: "version: 0, flags:; udp: 1232", via: "UDP", replies: 1},
		{name: "rd copied, never ra",
			args:   []string{"+noall", "+answer", "+comments", "www.conformance.test", "A"},
			status: "NOERROR", flags: "qr aa rd", records: []string{wwwA}, replies: 1},
		{name: "question echoed with its case",
			args:   []string{"+norec", "+noall", "+question", "+comments", "WwW.CoNfOrMaNcE.TeSt", "A"},
			status: "NOERROR", flags: "qr aa", question: "WwW.CoNfOrMaNcE.TeSt. IN A", replies: 1},
		{name: "+tcp",
			args:   []string{"+tcp", "+norec", "+noall", "+answer", "+comments", "+stats", "www.conformance.test", "AAAA"},
			status: "NOERROR", flags: "qr aa", records: []string{wwwAAAA}, via: "TCP", replies: 1},
		{name: "NXDOMAIN with the negative SOA",
			args:   []string{"+norec", "+noall", "+answer", "+authority", "+comments", "nope.conformance.test", "A"},
			status: "NXDOMAIN", flags: "qr aa", records: []string{negSOA}, replies: 1},
		{name: "+bufsize=512 +ignore: truncated",
			args:   []string{"+bufsize=512", "+ignore", "+norec", "+noall", "+answer", "+comments", "+stats", "big.conformance.test", "TXT"},
			status: "NOERROR", flags: "qr aa tc", subsetOf: big, edns: "version: 0, flags:; udp: 1232", via: "UDP", replies: 1},
		{name: "+noedns +ignore: truncated",
			args:   []string{"+noedns", "+ignore", "+norec", "+noall", "+answer", "+comments", "+stats", "big.conformance.test", "TXT"},
			status: "NOERROR", flags: "qr aa tc", subsetOf: big, via: "UDP", replies: 1},
		{name: "+bufsize=512: dig retries over TCP and gets it all",
			args:   []string{"+bufsize=512", "+norec", "+noall", "+answer", "+comments", "+stats", "big.conformance.test", "TXT"},
			status: "NOERROR", flags: "qr aa", records: big, edns: "version: 0, flags:; udp: 1232", via: "TCP", replies: 1, retryNotes: true},
		{name: "ANY gives one RRset",
			args:   []string{"+norec", "+noall", "+answer", "+comments", "www.conformance.test", "ANY"},
			status: "NOERROR", flags: "qr aa", records: []string{wwwA}, replies: 1},
		{name: "another zone is REFUSED",
			args:   []string{"+norec", "+noall", "+answer", "+authority", "+comments", "www.example.org", "A"},
			status: "REFUSED", flags: "qr", records: nil, replies: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := runDig(t, port, tc.args...)
			d := parseDig(out)
			if d.replies != tc.replies {
				t.Errorf("dig printed %d replies, want %d", d.replies, tc.replies)
			}
			if d.status != tc.status {
				t.Errorf("status %q, want %q", d.status, tc.status)
			}
			wantFlags := strings.Fields(tc.flags)
			slices.Sort(wantFlags)
			if !slices.Equal(d.flags, wantFlags) {
				t.Errorf("flags %q, want %q", d.flags, wantFlags)
			}
			if tc.subsetOf != nil {
				if len(d.records) >= len(tc.subsetOf) {
					t.Errorf("truncated reply holds %d records, want fewer than %d", len(d.records), len(tc.subsetOf))
				}
				for _, r := range d.records {
					if !slices.Contains(tc.subsetOf, r) {
						t.Errorf("record not in the RRset: %s", r)
					}
				}
			} else if tc.question == "" && !sameSet(d.records, tc.records) {
				t.Errorf("records:\n\t%s\nwant:\n\t%s", strings.Join(d.records, "\n\t"), strings.Join(tc.records, "\n\t"))
			}
			if tc.question != "" && (len(d.question) != 1 || d.question[0] != tc.question) {
				t.Errorf("question %q, want exactly [%q]", d.question, tc.question)
			}
			if tc.edns != "" && d.edns != tc.edns {
				t.Errorf("EDNS %q, want %q", d.edns, tc.edns)
			}
			if tc.via != "" && d.via != tc.via {
				t.Errorf("answered over %q, want %q", d.via, tc.via)
			}
			if got := strings.Contains(out, "Truncated, retrying in TCP mode."); got != tc.retryNotes {
				t.Errorf("dig retried over TCP: %v, want %v", got, tc.retryNotes)
			}
			if t.Failed() {
				t.Logf("dig output:\n%s", out)
			}
		})
	}

	t.Run("+short", func(t *testing.T) {
		out := runDig(t, port, "+short", "www.conformance.test", "TXT")
		if out != "\"hello world\"\n" {
			t.Errorf("dig +short printed %q, want %q", out, "\"hello world\"\n")
		}
	})
}

// TestSIGTERM: the server stops on SIGTERM with exit status 0.
func TestSIGTERM(t *testing.T) {
	p, port := startServerProc(t)
	if code := p.Terminate(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0; wait: %v\nstderr:\n%s", code, p.Err(), p.Stderr.String())
	}
	// The port is released: a new listener can take it.
	pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Errorf("UDP port still held after exit: %v", err)
	} else {
		pc.Close()
	}
}

// TestSIGTERMDuringStart: a SIGTERM at any moment of the start (loading,
// probing, binding, or just after the first answer) ends the process with
// status 0, never by the signal's default action. "Any moment" starts with
// the start log line, which is written once the handlers are in place.
func TestSIGTERMDuringStart(t *testing.T) {
	starting := func(s *server) error {
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(s.p.Stderr.String(), "msg=starting") {
			if s.p.Exited() || time.Now().After(deadline) {
				return fmt.Errorf("no start line within 20s (exited: %v)", s.p.Exited())
			}
			time.Sleep(200 * time.Microsecond) // poll interval
		}
		return nil
	}
	for range 5 {
		p := startBinary(t, conformanceConfig(t), binOpts{ready: starting}).p
		// Loading, binding and the first answers take about 10ms here.
		time.Sleep(time.Duration(rand.Int64N(int64(20 * time.Millisecond))))
		code := p.Terminate(t)
		if code == 1 && strings.Contains(p.Stderr.String(), "address already in use") {
			continue // someone took the port in between: try another
		}
		if !strings.Contains(p.Stderr.String(), "version="+e2eVersion) {
			t.Errorf("the start line does not carry the version:\n%s", p.Stderr.String())
		}
		if code != 0 {
			t.Fatalf("exit code %d (wait: %v) after a SIGTERM during start, want 0\nstderr:\n%s", code, p.Err(), p.Stderr.String())
		}
		return
	}
	t.Fatal("server could not bind a free port in 5 tries")
}

// startDemo starts the embedded demo (no arguments) and waits until it
// answers, or skips the test when its fixed addresses are taken:
// 127.0.0.1:5353 (DNS) and 127.0.0.1:5380 (the status page).
func startDemo(t *testing.T) *proc {
	t.Helper()
	for _, a := range []struct{ network, addr string }{{"udp", "127.0.0.1:5353"}, {"tcp", "127.0.0.1:5353"}, {"tcp", "127.0.0.1:5380"}} {
		var c interface{ Close() error }
		var err error
		if a.network == "udp" {
			c, err = net.ListenPacket("udp", a.addr)
		} else {
			c, err = net.Listen("tcp", a.addr)
		}
		if err != nil {
			t.Skipf("%s/%s is busy (%v): the demo needs it", a.addr, a.network, err)
		}
		c.Close()
	}
	p := startProc(t)
	if err := p.waitReady("127.0.0.1:5353", "demo.test."); err != nil {
		if errors.Is(err, errExited) && strings.Contains(p.Stderr.String(), "address already in use") {
			t.Skipf("the demo could not bind its addresses:\n%s", p.Stderr.String())
		}
		t.Fatalf("demo: %v\nstderr:\n%s", err, p.Stderr.String())
	}
	// The banner is printed once the demo serves, so it may come a moment
	// after the first answer: its last line says it is all out.
	if !testenv.Eventually(10*time.Second, 10*time.Millisecond, func() bool { return strings.Contains(p.Stdout.String(), "What changed:") }) {
		t.Fatalf("demo: no complete banner on stdout 10s after it answered:\n%s", p.Stdout.String())
	}
	return p
}

// TestDemo: with no arguments the embedded demo serves demo.test on
// 127.0.0.1:5353.
func TestDemo(t *testing.T) {
	digBinary(t)
	p := startDemo(t)
	if !strings.Contains(p.Stdout.String(), "failoverdns demo") {
		t.Errorf("demo banner missing from stdout:\n%s", p.Stdout.String())
	}

	out := runDig(t, 5353, "+noall", "+answer", "+comments", "demo.test", "SOA")
	d := parseDig(out)
	if d.status != "NOERROR" || !slices.Contains(d.flags, "aa") || slices.Contains(d.flags, "ra") {
		t.Errorf("demo.test SOA: status %s flags %v, want NOERROR with aa and without ra\n%s", d.status, d.flags, out)
	}
	if len(d.records) != 1 || !strings.HasPrefix(d.records[0], "demo.test. ") || !strings.Contains(d.records[0], " IN SOA ") {
		t.Errorf("demo.test SOA records: %q, want one SOA at demo.test.", d.records)
	}

	if code := p.Terminate(t); code != 0 {
		t.Errorf("demo exit code %d after SIGTERM, want 0\nstderr:\n%s", code, p.Stderr.String())
	}
}

// TestSIGTERMDuringReload: a SIGTERM while a SIGHUP's reload is stuck (a
// new node's first probe hangs on a server that never answers, timeout
// 30 s) stops the process at once, with status 0: shutdown cancels the
// reload instead of waiting for it.
func TestSIGTERMDuringReload(t *testing.T) {
	port, asked := testenv.HangingHTTP(t, "127.0.0.1")

	p, _ := startServerProc(t)
	cfg := p.Cmd.Args[len(p.Cmd.Args)-1]
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hang := fmt.Sprintf("\n[[node]]\nname = \"slow\"\naddress = \"192.0.2.9\"\n[node.check]\ntype = \"http\"\nport = %d\ntarget = \"127.0.0.1\"\ninterval = \"1s\"\ntimeout = \"30s\"\n", port)
	if err := os.WriteFile(cfg, append(b, hang...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-asked:
	case <-time.After(20 * time.Second):
		t.Fatalf("the reload never probed the new node\nstderr:\n%s", p.Stderr.String())
	}
	start := time.Now()
	if code := p.Terminate(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM during a reload, want 0\nstderr:\n%s", code, p.Stderr.String())
	}
	if !strings.Contains(p.Stderr.String(), "reload failed") {
		t.Errorf("the canceled reload is not logged as failed\nstderr:\n%s", p.Stderr.String())
	}
	t.Logf("stopped %s after SIGTERM", time.Since(start))
}
