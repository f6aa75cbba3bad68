package main

// End-to-end tests of the operations features with the built binary: the
// healthcheck subcommand (for container health checks) and SIGHUP reload,
// including a bad edit that must leave the running zone in place. The
// binary and proc helpers are e2e_test.go's.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/dnsserver/testenv"
)

const (
	opeZone   = "e2e.test."
	opeWithin = 15 * time.Second // generous: a loaded CI machine
)

// opeServer is one running binary and the files it reads.
type opeServer struct {
	*server
	zonePath string
}

// opeConfig is the config: DNS on dnsPort, http on httpPort (0 = ""),
// testdata/ops/e2e.test.zone as e2e.test.zone in the config's folder.
func opeConfig(t *testing.T, dnsPort, httpPort int, serverExtra string) testenv.Config {
	t.Helper()
	c := testenv.Config{
		Listen: []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(dnsPort))},
		Server: serverExtra,
		Zones:  []testenv.Zone{{Origin: opeZone, File: "e2e.test.zone", Text: opeRead(t, "e2e.test.zone")}},
	}
	if httpPort != 0 {
		c.HTTP = net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort))
	}
	return c
}

// opeRead reads testdata/ops/name.
func opeRead(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(testenv.Testdata(t, 2, "ops", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// opeCopy copies testdata/ops/name to dst, atomically.
func opeCopy(t *testing.T, name, dst string) {
	t.Helper()
	testenv.WriteFile(t, dst, opeRead(t, name))
}

// opeStart runs the binary on free ports with testdata/ops/e2e.test.zone,
// with http on a port of its own when withHTTP.
func opeStart(t *testing.T, withHTTP bool) *opeServer {
	t.Helper()
	return opeLaunch(t, opeConfig(t, 0, 0, ""), binOpts{http: withHTTP})
}

// opeLaunch starts the binary on c (listen and http on free ports).
func opeLaunch(t *testing.T, c testenv.Config, o binOpts) *opeServer {
	t.Helper()
	s := &opeServer{server: prepareBinary(t, c, o)}
	s.zonePath = filepath.Join(s.Dir, "e2e.test.zone")
	s.Launch(t)
	return s
}

// opeRun runs the binary with args and returns its exit code and output.
func opeRun(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	var out, errb testenv.Logs
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("failoverdns %s: %v", strings.Join(args, " "), err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// lookupA asks name A over UDP: the address, or the rcode.
func (s *opeServer) lookupA(name string) (string, error) {
	q := new(dns.Msg).SetQuestion(name, dns.TypeA)
	r, _, err := testenv.Client("udp", "", 2*time.Second).Exchange(q, s.Addr)
	if err != nil {
		return "", err
	}
	return testenv.AnswerOf(r), nil
}

func (s *opeServer) wantA(t *testing.T, name, want, why string) {
	t.Helper()
	got, err := s.lookupA(name)
	if err != nil || got != want {
		t.Fatalf("%s: %s A = %q (err %v), want %s\nstderr:\n%s", why, name, got, err, want, s.p.Stderr.String())
	}
}

// waitA polls until name A answers want.
func (s *opeServer) waitA(t *testing.T, name, want, why string) {
	t.Helper()
	var got string
	var err error
	if testenv.Eventually(opeWithin, 50*time.Millisecond, func() bool {
		got, err = s.lookupA(name)
		return err == nil && got == want || s.p.Exited()
	}) && !s.p.Exited() {
		return
	}
	if s.p.Exited() {
		t.Fatalf("%s: the server exited\nstderr:\n%s", why, s.p.Stderr.String())
	}
	t.Fatalf("%s: %s A = %q (err %v) after %s, want %s\nstderr:\n%s", why, name, got, err, opeWithin, want, s.p.Stderr.String())
}

// hup sends SIGHUP and returns how much stderr there was before it, so
// the caller reads only what the reload logged.
func (s *opeServer) hup(t *testing.T) int {
	t.Helper()
	n := len(s.p.Stderr.String())
	if err := s.p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatalf("SIGHUP: %v", err)
	}
	return n
}

// waitLog polls stderr after offset from until a line matches re, and
// returns that line.
func (s *opeServer) waitLog(t *testing.T, from int, re *regexp.Regexp, why string) string {
	t.Helper()
	deadline := time.Now().Add(opeWithin)
	for time.Now().Before(deadline) {
		for _, l := range strings.Split(s.p.Stderr.String()[from:], "\n") {
			if re.MatchString(l) {
				return l
			}
		}
		if s.p.Exited() {
			t.Fatalf("%s: the server exited\nstderr:\n%s", why, s.p.Stderr.String())
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	t.Fatalf("%s: no log line matching %s after %s\nstderr:\n%s", why, re, opeWithin, s.p.Stderr.String())
	return ""
}

// TestOpsHealthcheck: `failoverdns healthcheck` exits 0 against a running
// server (by -addr and by -config), and 1 with a reason when nothing
// answers or http is disabled.
func TestOpsHealthcheck(t *testing.T) {
	s := opeStart(t, true)

	code, stdout, stderr := opeRun(t, "healthcheck", "-addr", s.HTTP)
	if code != 0 || !strings.Contains(stdout, "healthy") {
		t.Errorf("healthcheck -addr %s against the running server: exit %d, stdout %q, stderr %q; want 0 and \"healthy\"", s.HTTP, code, stdout, stderr)
	}
	code, stdout, stderr = opeRun(t, "healthcheck", "-config", s.ConfigPath)
	if code != 0 || !strings.Contains(stdout, "healthy") {
		t.Errorf("healthcheck -config (server.http = %s): exit %d, stdout %q, stderr %q; want 0 and \"healthy\"", s.HTTP, code, stdout, stderr)
	}

	// Nothing listens there.
	closed := net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
	code, stdout, stderr = opeRun(t, "healthcheck", "-addr", closed, "-timeout", "2s")
	if code != 1 {
		t.Errorf("healthcheck -addr %s (nothing listening): exit %d, want 1", closed, code)
	}
	if !strings.Contains(stderr, "healthcheck:") || !strings.Contains(stderr, "refused") {
		t.Errorf("healthcheck -addr %s (nothing listening): stderr %q, want the reason (connection refused)", closed, stderr)
	}
	if strings.Contains(stdout, "healthy") {
		t.Errorf("healthcheck against nothing printed %q", stdout)
	}

	// A config whose http points where nothing listens.
	dir := t.TempDir()
	_, port, _ := net.SplitHostPort(closed)
	p, _ := strconv.Atoi(port)
	other := filepath.Join(dir, "other.toml")
	testenv.WriteFile(t, other, opeConfig(t, testenv.FreePort(t), p, "").Text(dir))
	if code, _, stderr := opeRun(t, "healthcheck", "-config", other, "-timeout", "2s"); code != 1 || !strings.Contains(stderr, "refused") {
		t.Errorf("healthcheck -config with server.http = %s (nothing listening): exit %d, stderr %q; want 1, connection refused", closed, code, stderr)
	}

	// http disabled in the config: nothing to ask.
	noHTTP := filepath.Join(dir, "nohttp.toml")
	testenv.WriteFile(t, noHTTP, opeConfig(t, testenv.FreePort(t), 0, "").Text(dir))
	if code, _, stderr := opeRun(t, "healthcheck", "-config", noHTTP); code != 1 || !strings.Contains(stderr, "disabled") {
		t.Errorf("healthcheck -config with http = \"\": exit %d, stderr %q; want 1 saying http is disabled", code, stderr)
	}

	// The server stopped: unhealthy.
	if code := s.p.Terminate(t); code != 0 {
		t.Errorf("SIGTERM: exit %d, want 0", code)
	}
	if code, _, stderr := opeRun(t, "healthcheck", "-config", s.ConfigPath, "-timeout", "2s"); code != 1 || stderr == "" {
		t.Errorf("healthcheck -config after the server stopped: exit %d, stderr %q; want 1 with a reason", code, stderr)
	}
}

// TestOpsSIGHUP: SIGHUP reloads the zone; a bad zone or config on SIGHUP
// keeps the old answers and logs the error with file:line; a good one after
// that is loaded again.
func TestOpsSIGHUP(t *testing.T) {
	s := opeStart(t, false)
	s.wantA(t, "www."+opeZone, "192.0.2.80", "at start")
	s.wantA(t, "new."+opeZone, "NXDOMAIN", "at start")

	// A good edit.
	opeCopy(t, "e2e.test.zone.v2", s.zonePath)
	s.hup(t)
	s.waitA(t, "new."+opeZone, "192.0.2.99", "after the edit and SIGHUP")

	// A broken zone: line 10 of e2e.test.zone.broken.
	opeCopy(t, "e2e.test.zone.broken", s.zonePath)
	from := s.hup(t)
	line := s.waitLog(t, from, regexp.MustCompile(`(^|[/"= ])e2e\.test\.zone:10: `), "after a broken zone and SIGHUP")
	if !strings.Contains(line, "192.0.2.300") || !strings.Contains(line, "reload failed") {
		t.Errorf("the reload error %q does not say that the reload failed and what is wrong (192.0.2.300)", line)
	}
	s.wantA(t, "new."+opeZone, "192.0.2.99", "after the failed reload")
	s.wantA(t, "bad."+opeZone, "NXDOMAIN", "after the failed reload")

	// A bad config: an unknown key in [server].
	opeCopy(t, "e2e.test.zone.v2", s.zonePath)
	cfg := opeConfig(t, s.port, 0, "listn = [\"127.0.0.1:53\"]\n").Text(s.Dir)
	good := opeConfig(t, s.port, 0, "").Text(s.Dir)
	n := 0
	for i, l := range strings.Split(cfg, "\n") {
		if strings.HasPrefix(l, "listn") {
			n = i + 1
		}
	}
	testenv.WriteFile(t, s.ConfigPath, cfg)
	from = s.hup(t)
	line = s.waitLog(t, from, regexp.MustCompile(`(^|[/"= ])failoverdns\.toml:`+strconv.Itoa(n)+`: `), "after a bad config and SIGHUP")
	if !strings.Contains(line, "listn") {
		t.Errorf("the reload error %q does not name the unknown key listn", line)
	}
	s.wantA(t, "new."+opeZone, "192.0.2.99", "after the failed config reload")

	// Good again: the original zone, new.e2e.test. gone.
	testenv.WriteFile(t, s.ConfigPath, good)
	opeCopy(t, "e2e.test.zone", s.zonePath)
	s.hup(t)
	s.waitA(t, "new."+opeZone, "NXDOMAIN", "after the files were fixed and SIGHUP")
	s.wantA(t, "www."+opeZone, "192.0.2.80", "after the files were fixed and SIGHUP")
	if code := s.p.Terminate(t); code != 0 {
		t.Errorf("SIGTERM after the reloads: exit %d, want 0\nstderr:\n%s", code, s.p.Stderr.String())
	}
}

// TestOpsStartupSIGHUPAndReadyz: while the first probe round runs (here a
// health check that takes 1.5s to answer), /healthz is 200, /readyz is 503
// and `healthcheck` (liveness) passes; a SIGHUP sent then (a reload by
// systemd or config management racing the start) must not kill the server:
// once started it serves, and /readyz turns 200.
func TestOpsStartupSIGHUPAndReadyz(t *testing.T) {
	const slow = 1500 * time.Millisecond
	checkPort := testenv.SlowHTTP(t, "127.0.10.1", slow)

	c := opeConfig(t, 0, 0, "")
	c.Nodes = []testenv.Node{{Name: "sems1", Address: "127.0.10.1", Check: fmt.Sprintf("type = \"http\"\nport = %d\ninterval = \"1s\"\ntimeout = \"5s\"\n", checkPort)}}
	c.Services = []testenv.Service{{Name: "keys.e2e.test.", Nodes: []string{"sems1"}}}
	duringStart := func(srv *server) error {
		s := &opeServer{server: srv}
		// The HTTP endpoints are up before the first probe round.
		s.waitLog(t, 0, regexp.MustCompile(`msg="http listening"`), "starting")
		if strings.Contains(s.p.Stderr.String(), "msg=listening") {
			t.Fatalf("the DNS listeners were up before the slow first probe (%s) finished:\n%s", slow, s.p.Stderr.String())
		}
		code, body := testenv.HTTPGet(t, s.Config.HTTP, "/readyz")
		if code != http.StatusServiceUnavailable {
			t.Errorf("/readyz during the first probe round: %d %q, want 503", code, body)
		}
		if code, body := testenv.HTTPGet(t, s.Config.HTTP, "/healthz"); code != http.StatusOK {
			t.Errorf("/healthz during the first probe round: %d %q, want 200", code, body)
		}
		if code, stdout, stderr := opeRun(t, "healthcheck", "-addr", s.Config.HTTP); code != 0 {
			t.Errorf("healthcheck during the first probe round: exit %d, stdout %q, stderr %q; want 0 (alive, if not ready)", code, stdout, stderr)
		}
		if err := s.p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatalf("SIGHUP: %v", err)
		}
		// After a SIGHUP during startup the server must serve.
		return s.p.waitReady(s.addr(), opeZone)
	}
	s := opeLaunch(t, c, binOpts{http: true, ready: duringStart})
	s.wantA(t, "keys."+opeZone, "127.0.10.1", "after startup")
	if code, body := testenv.HTTPGet(t, s.HTTP, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz once serving: %d %q, want 200", code, body)
	}
	if code := s.p.Terminate(t); code != 0 {
		t.Errorf("SIGTERM: exit %d, want 0\nstderr:\n%s", code, s.p.Stderr.String())
	}
}
