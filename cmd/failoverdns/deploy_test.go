package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
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

// Tests of deploy/: the systemd unit, sd_notify readiness and the example
// config.

const deployDir = "../../deploy"

// copyTree copies the regular files and folders under src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(out, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, out)
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			return os.WriteFile(out, b, info.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDeploySystemdUnit: `systemd-analyze verify` finds nothing to say about
// deploy/failoverdns.service, run against a root holding the binary where
// the unit expects it, and the unit has what the issue asks: readiness by
// sd_notify, port 53 by capability, its own user, a state folder, reload
// by SIGHUP.
func TestDeploySystemdUnit(t *testing.T) {
	unitText, err := os.ReadFile(filepath.Join(deployDir, "failoverdns.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Type=notify",
		"ExecStart=/usr/local/bin/failoverdns -config /etc/failoverdns/failoverdns.toml",
		"ExecReload=/bin/kill -HUP $MAINPID",
		"AmbientCapabilities=CAP_NET_BIND_SERVICE",
		"User=failoverdns",
		"StateDirectory=failoverdns",
	} {
		if !bytes.Contains(unitText, []byte("\n"+want+"\n")) {
			t.Errorf("deploy/failoverdns.service has no line %q", want)
		}
	}
	analyze := testenv.Tool(t, "systemd", "systemd-analyze")
	root := t.TempDir()
	var units string
	for _, d := range []string{"/usr/lib/systemd/system", "/lib/systemd/system"} {
		if _, err := os.Stat(filepath.Join(d, "sysinit.target")); err == nil {
			units = d
			break
		}
	}
	if units == "" {
		t.Fatal("systemd-analyze is installed but no sysinit.target was found in /usr/lib/systemd/system or /lib/systemd/system")
	}
	copyTree(t, units, filepath.Join(root, "usr/lib/systemd/system"))
	kill, err := exec.LookPath("kill")
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(binary(t))
	if err != nil {
		t.Fatal(err)
	}
	killBin, err := os.ReadFile(kill)
	if err != nil {
		t.Fatal(err)
	}
	for p, b := range map[string][]byte{
		"usr/local/bin/failoverdns":              bin,
		"bin/kill":                               killBin,
		"etc/systemd/system/failoverdns.service": unitText,
		"usr/lib/sysusers.d/failoverdns.conf":    testenv.ReadFile(t, filepath.Join(deployDir, "failoverdns.sysusers")),
		"etc/failoverdns/failoverdns.toml":       testenv.ReadFile(t, filepath.Join(deployDir, "failoverdns.toml")),
		"etc/failoverdns/example.com.zone":       testenv.ReadFile(t, filepath.Join(deployDir, "example.com.zone")),
	} {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.Contains(p, "bin/") {
			mode = 0o755
		}
		if err := os.WriteFile(full, b, mode); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(analyze, "verify", "--root="+root, "failoverdns.service")
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("systemd-analyze verify deploy/failoverdns.service: %v\n%s", err, out)
	}
}

// TestDeployExampleConfig: the example config passes check without a
// warning (with its state_dir moved somewhere writable).
func TestDeployExampleConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := string(testenv.ReadFile(t, filepath.Join(deployDir, "failoverdns.toml")))
	if !strings.Contains(cfg, `state_dir = "/var/lib/failoverdns"`) || !strings.Contains(cfg, `listen = ["0.0.0.0:53", "[::]:53"]`) {
		t.Fatalf("deploy/failoverdns.toml: no state_dir or listen line as the README has them")
	}
	cfg = strings.Replace(cfg, `state_dir = "/var/lib/failoverdns"`, fmt.Sprintf("state_dir = %q", filepath.Join(dir, "state")), 1)
	path := checkWrite(t, dir, "failoverdns.toml", cfg)
	checkWrite(t, dir, "example.com.zone", string(testenv.ReadFile(t, filepath.Join(deployDir, "example.com.zone"))))
	var out, errb bytes.Buffer
	if code := run([]string{"check", "-config", path}, &out, &errb); code != 0 || errb.Len() != 0 {
		t.Errorf("check deploy/failoverdns.toml: exit %d, stderr:\n%s", code, errb.String())
	}
}

// TestSDNotify: under a service manager (NOTIFY_SOCKET) the server sends
// READY=1 once it answers, and STOPPING=1 on SIGTERM; the socket may be in
// the abstract namespace, as systemd's is.
func TestSDNotify(t *testing.T) {
	for _, abstract := range []bool{false, true} {
		name := filepath.Join(t.TempDir(), "notify")
		if abstract {
			name = "@failoverdns-test-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		}
		sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		defer sock.Close()
		t.Setenv("NOTIFY_SOCKET", name)
		var p *proc
		read := func(want string) {
			t.Helper()
			buf := make([]byte, 4096)
			_ = sock.SetReadDeadline(time.Now().Add(20 * time.Second))
			n, err := sock.Read(buf)
			if err != nil {
				t.Fatalf("abstract=%v: no %s from the server: %v\nstderr:\n%s", abstract, want, err, p.Stderr.String())
			}
			if got := string(buf[:n]); !strings.Contains("\n"+got+"\n", "\n"+want+"\n") {
				t.Fatalf("abstract=%v: got %q, want a message with the line %s", abstract, got, want)
			}
		}
		notified := func(s *server) error { p = s.p; read("READY=1"); return nil }
		port := startBinary(t, conformanceConfig(t), binOpts{ready: notified}).port
		// Ready means answering: no polling here.
		c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
		r, _, err := c.Exchange(new(dns.Msg).SetQuestion("conformance.test.", dns.TypeSOA), net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil || r.Rcode != dns.RcodeSuccess {
			var ne net.Error
			if errors.As(err, &ne) || strings.Contains(p.Stderr.String(), "address already in use") {
				t.Logf("stderr:\n%s", p.Stderr.String())
			}
			t.Fatalf("abstract=%v: SOA right after READY=1: %v %v, want NOERROR", abstract, err, r)
		}
		if err := p.Cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		read("STOPPING=1")
		<-p.Done()
		if code := p.Cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("exit %d after SIGINT, want 0", code)
		}
	}
}

// TestDeployAlertRules: the shipped alert rules load, and their unit tests
// (deploy/failoverdns.rules.test.yml) pass: a first failed reload, a
// service all down, a node down, two nameservers answering different nodes.
func TestDeployAlertRules(t *testing.T) {
	promtool := testenv.Tool(t, "prometheus", "promtool")
	for _, args := range [][]string{
		{"check", "rules", "failoverdns.rules.yml"},
		{"test", "rules", "failoverdns.rules.test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = deployDir
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "SUCCESS") {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestPromtoolCheckMetrics: a scrape of the running binary passes
// `promtool check metrics` (names, units, help, types).
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool := testenv.Tool(t, "prometheus", "promtool")
	s := opeStart(t, true)
	// An answer, so queries_total has a series too.
	if _, err := s.lookupA("www." + opeZone); err != nil {
		t.Fatal(err)
	}
	code, body := testenv.HTTPGet(t, s.HTTP, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}
	for _, want := range []string{"failoverdns_build_info{", "failoverdns_reloads_total{outcome=\"failure\"} 0", "failoverdns_queries_total{"} {
		if !strings.Contains(body, want) {
			t.Errorf("the scrape has no %q", want)
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestDockerfile: image names are fully qualified (podman and buildah
// refuse short names), and the health check asks for readiness.
func TestDockerfile(t *testing.T) {
	df := string(testenv.ReadFile(t, "../../Dockerfile"))
	for _, line := range strings.Split(df, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || !strings.EqualFold(f[0], "FROM") {
			continue
		}
		img := f[1]
		host, _, ok := strings.Cut(img, "/")
		if img != "scratch" && (!ok || !strings.ContainsAny(host, ".:")) {
			t.Errorf("Dockerfile: %q: not a fully qualified image name (write docker.io/library/...)", line)
		}
	}
	if !strings.Contains(df, `CMD ["/usr/local/bin/failoverdns", "healthcheck", "-ready",`) {
		t.Errorf("Dockerfile: the HEALTHCHECK does not ask for readiness (healthcheck -ready)")
	}
	if !strings.Contains(df, `-X main.revision=${REVISION}`) {
		t.Errorf("Dockerfile: the build does not stamp the revision")
	}
}

// TestBuildImageScript: deploy/build-image.sh says why it skips where no
// engine works, and builds with the first one that does, in the docker
// format (podman, buildah) with the version and revision. Stub engines
// stand in for real ones, which this machine need not have.
func TestBuildImageScript(t *testing.T) {
	stubs := t.TempDir()
	calls := filepath.Join(stubs, "calls")
	stub := func(name, script string) {
		body := "#!/bin/sh\necho \"" + name + " $*\" >> " + calls + "\n" + script + "\n"
		if err := os.WriteFile(filepath.Join(stubs, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	stub("docker", `[ "$1" = info ] && { echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2; exit 1; }; exit 0`)
	stub("podman", `exit 0`)
	run := func(env ...string) (int, string) {
		t.Helper()
		os.Remove(calls)
		cmd := exec.Command("sh", filepath.Join(deployDir, "build-image.sh"))
		cmd.Env = append(os.Environ(), append([]string{"PATH=" + stubs + string(os.PathListSeparator) + os.Getenv("PATH"), "TAG=failoverdns:test", "VERSION=v9.9.9"}, env...)...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), string(out)
	}

	code, out := run("ENGINES=docker")
	if code != 0 || !strings.Contains(out, "skipping the image build: no container engine works here") ||
		!strings.Contains(out, "docker: installed, but 'docker info' fails: Cannot connect to the Docker daemon") {
		t.Errorf("no working engine: exit %d, output:\n%s\nwant 0 and the reason", code, out)
	}
	if code, out := run("ENGINES=docker buildah-missing", "REQUIRE_ENGINE=1"); code != 1 || !strings.Contains(out, "buildah-missing: not installed") {
		t.Errorf("REQUIRE_ENGINE=1 without an engine: exit %d, output:\n%s\nwant 1", code, out)
	}

	code, out = run("ENGINES=docker podman", "REVISION=0123abc")
	got, _ := os.ReadFile(calls)
	want := "podman build --format docker --build-arg VERSION=v9.9.9 --build-arg REVISION=0123abc"
	if code != 0 || !strings.Contains(string(got), want) || !strings.Contains(string(got), "-t failoverdns:test -f Dockerfile .") ||
		!strings.Contains(string(got), "podman run --rm failoverdns:test version") {
		t.Errorf("podman: exit %d, output:\n%s\nengine calls:\n%s\nwant %q, the tag, and a run of the image", code, out, got, want)
	}
}
