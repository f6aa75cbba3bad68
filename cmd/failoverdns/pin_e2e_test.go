package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/dnsserver/testenv"
)

// Admin records end to end: the built binary, pinned with the real nsupdate
// and read with the real dig. Binary, process and dig helpers are shared
// with e2e_test.go; the names here start with pe.

const (
	peKeyName = "admin."
	peService = "keys.demo.test"
	peOutside = "127.0.0.2"  // outside admin_nets = ["127.0.0.1/32"]
	peEMEAIP  = "127.0.99.5" // inside emea's 127.0.99.0/24
)

var peSecret = base64.StdEncoding.EncodeToString([]byte("failoverdns-e2e-admin-secret-32b"))

var peNodeIPs = map[string]string{"sems1": "127.0.10.1", "sems2": "127.0.10.2", "sems3": "127.0.10.3"}

// peNodeOf names the node of an answered address.
func peNodeOf(ip string) string { return testenv.NameOf(peNodeIPs, ip) }

// nsupdateBinary returns the path of nsupdate, or skips (fails in CI).
func nsupdateBinary(t *testing.T) string { return testenv.Tool(t, "bind9-dnsutils", "nsupdate") }

// peListen is node's TCP health endpoint on its loopback address.
func peListen(t *testing.T, node string) *testenv.Endpoint {
	t.Helper()
	return testenv.NewEndpoint(t, peNodeIPs[node], 0, true)
}

// peConf varies the config.
type peConf struct {
	checkPorts map[string]int // tcp check port per node; a node not here has type none
	adminNets  string         // TOML value; "" = default
	zoneExtra  string
}

// peServer is one failoverdns process and its files.
type peServer struct {
	*server
	stateDir string
	keyFile  string
}

// pePrepare writes config, zone and a BIND key file into a fresh folder,
// with listen on a free port; s.Launch starts the binary on them with args.
func pePrepare(t *testing.T, c peConf, args ...string) *peServer {
	t.Helper()
	zone := testenv.ZoneHead("demo.test.", 2026112101, "127.0.0.1") + c.zoneExtra
	cfg := testenv.Config{
		TSIG:      []testenv.TSIG{{Name: peKeyName, Secret: peSecret}},
		Zones:     []testenv.Zone{{Origin: "demo.test.", File: "demo.test.zone", Text: zone}},
		Locations: []testenv.Location{{Name: "emea", Subnets: []string{"127.0.99.0/24"}}},
		Services: []testenv.Service{{Name: "keys.demo.test.", TTL: 5, Policy: "failover", Nodes: []string{"sems1", "sems2", "sems3"},
			Failback: "auto", FailbackAfter: "1s", WhenAllDown: "keep"}},
	}
	if c.adminNets != "" {
		cfg.Server = "admin_nets = " + c.adminNets + "\n"
	}
	for _, n := range []string{"sems1", "sems2", "sems3"} {
		check := "type = \"none\"\n"
		if p, ok := c.checkPorts[n]; ok {
			check = fmt.Sprintf("type = \"tcp\"\nport = %d\ninterval = \"200ms\"\ntimeout = \"500ms\"\nrise = 1\nfall = 1\n", p)
		}
		cfg.Nodes = append(cfg.Nodes, testenv.Node{Name: n, Address: peNodeIPs[n], Check: check})
	}
	s := &peServer{server: prepareBinary(t, cfg, binOpts{args: args})}
	s.stateDir, s.keyFile = filepath.Join(s.Dir, "state"), filepath.Join(s.Dir, "admin.key")
	key := fmt.Sprintf("key \"%s\" {\n\talgorithm hmac-sha256;\n\tsecret \"%s\";\n};\n", peKeyName, peSecret)
	if err := os.WriteFile(s.keyFile, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// peStart writes a config on a free port and starts the binary on it.
func peStart(t *testing.T, c peConf, args ...string) *peServer {
	t.Helper()
	s := pePrepare(t, c, args...)
	s.Launch(t)
	return s
}

// nsupdate runs the real nsupdate with script (server and zone lines are
// added) and returns its combined output and error.
func (s *peServer) nsupdate(t *testing.T, auth []string, script string) (string, error) {
	t.Helper()
	bin := nsupdateBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	full := fmt.Sprintf("server 127.0.0.1 %d\nzone demo.test\n%s\nsend\n", s.port, strings.TrimSpace(script))
	cmd := exec.CommandContext(ctx, bin, append(auth, "-t", "5")...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	cmd.Stdin = strings.NewReader(full)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (s *peServer) keyArgs() []string { return []string{"-k", s.keyFile} }

func (s *peServer) mustNsupdate(t *testing.T, auth []string, script string) {
	t.Helper()
	if out, err := s.nsupdate(t, auth, script); err != nil {
		t.Fatalf("nsupdate %v:\n%s\nfailed: %v\n%s\nserver stderr:\n%s", auth, script, err, out, s.p.Stderr.String())
	}
}

// dig runs the real dig and parses its last reply.
func (s *peServer) dig(t *testing.T, args ...string) digReply {
	t.Helper()
	return parseDig(runDig(t, s.port, append([]string{"+norec", "+noall", "+answer", "+comments"}, args...)...))
}

// active digs the service from source address from ("" = default) and
// names the answered node, or the status when it is not NOERROR.
func (s *peServer) active(t *testing.T, from string) string {
	t.Helper()
	args := []string{peService, "A"}
	if from != "" {
		args = append([]string{"-b", from}, args...)
	}
	d := s.dig(t, args...)
	if d.status != "NOERROR" {
		return d.status
	}
	if len(d.records) != 1 {
		return fmt.Sprintf("%d records: %q", len(d.records), d.records)
	}
	f := strings.Fields(d.records[0])
	return peNodeOf(f[len(f)-1])
}

func (s *peServer) wantActive(t *testing.T, from, want string) {
	t.Helper()
	if got := s.active(t, from); got != want {
		t.Fatalf("dig %s (from %q) answers %s, want %s\nserver stderr:\n%s", peService, from, got, want, s.p.Stderr.String())
	}
}

var peTXTStringRE = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)

// txt digs TXT name from from and returns the status and the strings.
func (s *peServer) txt(t *testing.T, from, name string) (string, []string) {
	t.Helper()
	args := []string{name, "TXT"}
	if from != "" {
		args = append([]string{"-b", from}, args...)
	}
	d := s.dig(t, args...)
	var out []string
	for _, r := range d.records {
		if !strings.Contains(r, " IN TXT ") {
			continue
		}
		for _, m := range peTXTStringRE.FindAllStringSubmatch(r, -1) {
			out = append(out, m[1])
		}
	}
	return d.status, out
}

// TestPinNsupdateDig: nsupdate -k pins, the very next dig answers the
// pinned node; nsupdate -y unpins; dig reads _pin and _status from
// admin_nets and is REFUSED outside.
func TestPinNsupdateDig(t *testing.T) {
	digBinary(t)
	nsupdateBinary(t)
	sems1, sems2 := peListen(t, "sems1"), peListen(t, "sems2")
	s := peStart(t, peConf{
		checkPorts: map[string]int{"sems1": sems1.Port, "sems2": sems2.Port, "sems3": testenv.ClosedPort(t, peNodeIPs["sems3"])},
		adminNets:  `["127.0.0.1/32"]`,
	})
	s.wantActive(t, "", "sems1")
	if st, txt := s.txt(t, "", "_pin."+peService); st != "NXDOMAIN" || len(txt) != 0 {
		t.Errorf("_pin before any pin: %s %q, want NXDOMAIN", st, txt)
	}

	s.mustNsupdate(t, s.keyArgs(), `update add _pin.keys.demo.test 0 TXT "sems2"`)
	s.wantActive(t, "", "sems2")
	if st, txt := s.txt(t, "", "_pin."+peService); st != "NOERROR" || strings.Join(txt, "|") != "sems2" {
		t.Errorf("dig TXT _pin: %s %q, want NOERROR \"sems2\"", st, txt)
	}

	// _status: one string per node, then the pin.
	st, lines := s.txt(t, "", "_status."+peService)
	if st != "NOERROR" {
		t.Fatalf("dig TXT _status: %s", st)
	}
	nodeRE := regexp.MustCompile(`^(sems[123]) (up|down)( active)? rtt=\d+\.\d+ms since=(\S+)`)
	want := map[string]string{"sems1": "up", "sems2": "up active", "sems3": "down"}
	seen := map[string]bool{}
	var pinLines []string
	for _, l := range lines {
		if m := nodeRE.FindStringSubmatch(l); m != nil {
			seen[m[1]] = true
			if got := m[2] + m[3]; got != want[m[1]] {
				t.Errorf("_status: %s is %q, want %q: %q", m[1], got, want[m[1]], l)
			}
			if _, err := time.Parse(time.RFC3339, m[4]); err != nil {
				t.Errorf("_status: since=%s is not RFC 3339", m[4])
			}
		}
		if strings.HasPrefix(l, "pin ") {
			pinLines = append(pinLines, l)
		}
	}
	if len(seen) != 3 {
		t.Errorf("_status has node lines for %v, want sems1, sems2, sems3: %q", seen, lines)
	}
	if len(pinLines) != 1 || !strings.HasPrefix(pinLines[0], "pin sems2 set-by=admin. from=127.0.0.1") {
		t.Errorf("_status pin line %q, want \"pin sems2 set-by=admin. from=127.0.0.1 ...\": %q", pinLines, lines)
	}

	// From outside admin_nets: admin names REFUSED, the service answered.
	for _, name := range []string{"_status." + peService, "_pin." + peService} {
		if st, txt := s.txt(t, peOutside, name); st != "REFUSED" || len(txt) != 0 {
			t.Errorf("dig -b %s TXT %s: %s %q, want REFUSED", peOutside, name, st, txt)
		}
	}
	s.wantActive(t, peOutside, "sems2")

	// nsupdate -y works as well; deleting the pin returns to health.
	s.mustNsupdate(t, []string{"-y", "hmac-sha256:" + peKeyName + ":" + peSecret}, `update delete _pin.keys.demo.test TXT`)
	s.wantActive(t, "", "sems1")
	if st, _ := s.txt(t, "", "_pin."+peService); st != "NXDOMAIN" {
		t.Errorf("_pin after delete: %s, want NXDOMAIN", st)
	}

	// What nsupdate sees when refused; nothing changes.
	before, _ := os.ReadFile(filepath.Join(s.stateDir, "pins.json"))
	wrong := base64.StdEncoding.EncodeToString([]byte("not-the-secret-not-the-secret-xx"))
	for _, c := range []struct {
		name   string
		auth   []string
		script string
		want   string // in nsupdate's output
	}{
		{"wrong secret", []string{"-y", "hmac-sha256:" + peKeyName + ":" + wrong}, `update add _pin.keys.demo.test 0 TXT "sems3"`, "BADSIG"},
		{"unknown key", []string{"-y", "hmac-sha256:other.:" + peSecret}, `update add _pin.keys.demo.test 0 TXT "sems3"`, "BADKEY"},
		{"unsigned", nil, `update add _pin.keys.demo.test 0 TXT "sems3"`, "REFUSED"},
		{"outside admin_nets", s.keyArgs(), "local " + peOutside + "\n" + `update add _pin.keys.demo.test 0 TXT "sems3"`, "REFUSED"},
		{"not a pin", s.keyArgs(), `update add www.demo.test 300 A 192.0.2.1`, "REFUSED"},
		{"unknown node", s.keyArgs(), `update add _pin.keys.demo.test 0 TXT "sems9"`, "REFUSED"},
		{"prerequisite fails", s.keyArgs(), "prereq yxrrset _pin.keys.demo.test TXT\n" + `update add _pin.keys.demo.test 0 TXT "sems3"`, "NXRRSET"},
	} {
		out, err := s.nsupdate(t, c.auth, c.script)
		if err == nil {
			t.Errorf("%s: nsupdate succeeded:\n%s", c.name, out)
		}
		if !strings.Contains(out, c.want) {
			t.Errorf("%s: nsupdate output does not say %s:\n%s", c.name, c.want, out)
		}
		if got := s.active(t, ""); got != "sems1" {
			t.Errorf("%s: the answer changed to %s", c.name, got)
		}
		if after, _ := os.ReadFile(filepath.Join(s.stateDir, "pins.json")); string(after) != string(before) {
			t.Errorf("%s: the state file changed", c.name)
		}
	}
}

// TestPinLocationDig: a location's pin changes only that location's
// clients; _status of the location shows it.
func TestPinLocationDig(t *testing.T) {
	digBinary(t)
	nsupdateBinary(t)
	s := peStart(t, peConf{})
	s.mustNsupdate(t, s.keyArgs(), `update add _pin.emea._loc.keys.demo.test 0 TXT "sems3"`)
	s.wantActive(t, peEMEAIP, "sems3")
	s.wantActive(t, "", "sems1")
	st, lines := s.txt(t, "", "_status.emea._loc."+peService)
	if st != "NOERROR" {
		t.Fatalf("dig TXT _status.emea._loc: %s", st)
	}
	var active []string
	hasPin := false
	for _, l := range lines {
		if f := strings.Fields(l); len(f) > 2 && f[2] == "active" {
			active = append(active, f[0])
		}
		hasPin = hasPin || strings.HasPrefix(l, "pin sems3 ")
	}
	if strings.Join(active, ",") != "sems3" || !hasPin {
		t.Errorf("_status.emea._loc: active %v, pin line %v; want sems3 active and pinned: %q", active, hasPin, lines)
	}
	if st, txt := s.txt(t, "", "_pin.emea._loc."+peService); st != "NOERROR" || strings.Join(txt, "|") != "sems3" {
		t.Errorf("dig TXT _pin.emea._loc: %s %q, want \"sems3\"", st, txt)
	}
	s.mustNsupdate(t, s.keyArgs(), `update delete _pin.emea._loc.keys.demo.test TXT`)
	s.wantActive(t, peEMEAIP, "sems1")
}

// TestPinStaticAndDynamic: a zone-file pin is in force at start, a dynamic
// pin wins over it, and deleting the dynamic pin returns to it.
func TestPinStaticAndDynamic(t *testing.T) {
	digBinary(t)
	nsupdateBinary(t)
	s := peStart(t, peConf{zoneExtra: "_pin.keys IN TXT \"sems2\"\n"})
	s.wantActive(t, "", "sems2")
	s.mustNsupdate(t, s.keyArgs(), `update add _pin.keys.demo.test 0 TXT "sems3"`)
	s.wantActive(t, "", "sems3")
	s.mustNsupdate(t, s.keyArgs(), `update delete _pin.keys.demo.test TXT`)
	s.wantActive(t, "", "sems2")
}

// TestPinSurvivesKill9: the pin is on disk when the UPDATE is answered:
// kill -9 at that moment, restart, and it is in force.
func TestPinSurvivesKill9(t *testing.T) {
	digBinary(t)
	s := peStart(t, peConf{})
	s.wantActive(t, "", "sems1")

	update := func(m *dns.Msg) {
		t.Helper()
		m.SetTsig(peKeyName, dns.HmacSHA256, 300, time.Now().Unix())
		c := &dns.Client{Net: "udp", Timeout: 5 * time.Second, TsigSecret: map[string]string{peKeyName: peSecret}}
		r, _, err := c.Exchange(m, s.addr())
		if err != nil {
			t.Fatalf("UPDATE: %v", err)
		}
		if r.Rcode != dns.RcodeSuccess {
			t.Fatalf("UPDATE: %s\nstderr:\n%s", dns.RcodeToString[r.Rcode], s.p.Stderr.String())
		}
		// The moment NOERROR is in: SIGKILL, no chance to flush anything.
		if err := s.p.Cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-s.p.Done()
	}
	restart := func() {
		t.Helper()
		s.Launch(t) // after kill -9
	}

	pin := new(dns.Msg).SetUpdate("demo.test.")
	pin.Insert([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: "_pin.keys.demo.test.", Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: []string{"sems2"}}})
	update(pin)
	restart()
	s.wantActive(t, "", "sems2")
	if st, txt := s.txt(t, "", "_pin."+peService); st != "NOERROR" || strings.Join(txt, "|") != "sems2" {
		t.Errorf("_pin after kill -9 and restart: %s %q, want \"sems2\"", st, txt)
	}

	unpin := new(dns.Msg).SetUpdate("demo.test.")
	unpin.RemoveRRset([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: "_pin.keys.demo.test.", Rrtype: dns.TypeTXT, Class: dns.ClassINET}}})
	update(unpin)
	restart()
	s.wantActive(t, "", "sems1")
	if st, _ := s.txt(t, "", "_pin."+peService); st != "NXDOMAIN" {
		t.Errorf("_pin after unpin, kill -9 and restart: %s, want NXDOMAIN", st)
	}
}

// TestPinCorruptState: a corrupt pins.json stops the server with a message
// naming the file; -ignore-state starts it without those pins.
func TestPinCorruptState(t *testing.T) {
	digBinary(t)
	s := pePrepare(t, peConf{})
	if err := os.MkdirAll(s.stateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(s.stateDir, "pins.json")
	if err := os.WriteFile(path, []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "-config", s.ConfigPath)
	select {
	case <-p.Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("still running 20s after start with a corrupt state file\nstderr:\n%s", p.Stderr.String())
	}
	if code := p.Cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("exit code %d with a corrupt state file, want 1", code)
	}
	if msg := p.Stderr.String(); !strings.Contains(msg, path) || !strings.Contains(msg, "-ignore-state") {
		t.Errorf("stderr does not name %s and -ignore-state:\n%s", path, msg)
	}

	s.o.args = []string{"-ignore-state"}
	s.Launch(t)
	s.wantActive(t, "", "sems1")
	if b, _ := os.ReadFile(path); string(b) != "{garbage" {
		t.Errorf("-ignore-state rewrote the state file before any pin change: %q", b)
	}
}

// TestPinZoneFileUnknownNode: a zone-file pin naming an unknown node stops
// the server with file:line.
func TestPinZoneFileUnknownNode(t *testing.T) {
	s := pePrepare(t, peConf{zoneExtra: "_pin.keys IN TXT \"sems9\"\n"})
	out, err := exec.Command(binary(t), "-config", s.ConfigPath).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1\n%s", err, out)
	}
	// The zone head is 5 lines: the pin is line 6.
	if !strings.Contains(string(out), "demo.test.zone:6: ") || !strings.Contains(string(out), "sems9") {
		t.Errorf("output does not say demo.test.zone:6: ... sems9:\n%s", out)
	}
}
