package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Tests of what `check` finds beyond syntax: what would otherwise fail only
// once the server runs (listen collisions, ca_file, state_dir, zone files),
// and risky values it warns about. Each config is written to a temporary
// folder; the line a finding must name carries the marker "# <-".

// checkWrite writes body to dir/name and returns the path.
func checkWrite(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkMarked returns the 1-based line of body holding "# <-".
func checkMarked(t *testing.T, body string) int {
	t.Helper()
	for i, l := range strings.Split(body, "\n") {
		if strings.Contains(l, "# <-") {
			return i + 1
		}
	}
	t.Fatalf("no line is marked # <- in:\n%s", body)
	return 0
}

const checkZone = `$ORIGIN check.test.
$TTL 3600
@    IN SOA ns1.check.test. hostmaster.check.test. 1 7200 3600 1209600 300
@    IN NS  ns1.check.test.
ns1  IN A   192.0.2.1
`

// checkConfig is a valid config with server lines and tables added: DNS on
// listen, pins under dir/state, the zone check.test. in dir.
func checkConfig(listen, serverExtra, tables string) string {
	return fmt.Sprintf(`[server]
listen = %s
http = ""
state_dir = "state"
%s
[[zone]]
origin = "check.test."
file = "check.test.zone"
%s`, listen, serverExtra, tables)
}

// checkIn runs check on body (written with the zone into a fresh folder).
func checkIn(t *testing.T, body string) (cfg string, code int, stdout, stderr string) {
	t.Helper()
	dir := t.TempDir()
	checkWrite(t, dir, "check.test.zone", checkZone)
	cfg = checkWrite(t, dir, "c.toml", body)
	var out, errb bytes.Buffer
	code = run([]string{"check", "-config", cfg}, &out, &errb)
	return cfg, code, out.String(), errb.String()
}

// wantFinding asserts one stderr line starting with prefix+"cfg:line: " and
// holding every one of says.
func wantFinding(t *testing.T, stderr, prefix, cfg string, line int, says ...string) {
	t.Helper()
	loc := fmt.Sprintf("%s%s:%d: ", prefix, cfg, line)
	for _, l := range strings.Split(stderr, "\n") {
		if !strings.HasPrefix(l, loc) {
			continue
		}
		ok := true
		for _, s := range says {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			return
		}
	}
	t.Errorf("no line %q...%q in:\n%s", loc, says, stderr)
}

// TestCheckListen: the README's listen line passes and is described by
// family; sets whose second bind would fail are errors at the listen line.
func TestCheckListen(t *testing.T) {
	body := checkConfig(`["0.0.0.0:53", "[::]:53"]`, "", "")
	_, code, stdout, stderr := checkIn(t, body)
	if code != 0 {
		t.Fatalf(`listen = ["0.0.0.0:53", "[::]:53"]: exit %d, want 0; stderr:\n%s`, code, stderr)
	}
	if !strings.Contains(stdout, "listen: 0.0.0.0:53 (IPv4), [::]:53 (IPv6 only), udp+tcp") {
		t.Errorf("the summary does not describe each address's family:\n%s", stdout)
	}
	for _, tc := range []struct {
		listen string
		says   []string
	}{
		{`["0.0.0.0:53", ":53"]`, []string{`":53" serves IPv4 and IPv6 on port 53, so "0.0.0.0:53" cannot bind too`, `["0.0.0.0:53", "[::]:53"]`}},
		{`["127.0.0.1:53", "0.0.0.0:53"]`, []string{`"0.0.0.0:53" already takes every IPv4 address on port 53, so "127.0.0.1:53" cannot bind too`}},
		{`["[::]:53", "[::1]:53"]`, []string{`"[::]:53" already takes every IPv6 address on port 53`}},
		{`["[::1]:53", "[::1]:53"]`, []string{`"[::1]:53" is listed twice`}},
	} {
		body := checkConfig(tc.listen+" # <-", "", "")
		cfg, code, _, stderr := checkIn(t, body)
		if code != 1 {
			t.Errorf("listen = %s: exit %d, want 1", tc.listen, code)
		}
		wantFinding(t, stderr, "", cfg, checkMarked(t, body), append([]string{"server.listen: "}, tc.says...)...)
	}
	// Different ports, or the two families, never collide.
	for _, l := range []string{`["127.0.0.1:53", "127.0.0.1:5353"]`, `[":53", "127.0.0.1:54"]`, `["127.0.0.1:0", "0.0.0.0:0"]`} {
		if _, code, _, stderr := checkIn(t, checkConfig(l, "", "")); code != 0 {
			t.Errorf("listen = %s: exit %d, want 0; stderr:\n%s", l, code, stderr)
		}
	}
}

const checkHTTPSNode = `
[[node]]
name = "sems1"
address = "192.0.2.11"
[node.check]
type = "https"
ca_file = %q # <-
`

// TestCheckCAFile: a ca_file that is missing or holds no certificate is an
// error at its line, with the path as written and as resolved.
func TestCheckCAFile(t *testing.T) {
	body := checkConfig(`["127.0.0.1:5399"]`, "", fmt.Sprintf(checkHTTPSNode, "certs/ca.pem"))
	cfg, code, _, stderr := checkIn(t, body)
	if code != 1 {
		t.Errorf("missing ca_file: exit %d, want 1", code)
	}
	wantFinding(t, stderr, "", cfg, checkMarked(t, body), `node "sems1" check: ca_file "certs/ca.pem" (resolved to `+filepath.Join(filepath.Dir(cfg), "certs", "ca.pem")+`): no such file or directory`, "system roots")

	dir := t.TempDir()
	notPEM := checkWrite(t, dir, "ca.pem", "not a certificate\n")
	body = checkConfig(`["127.0.0.1:5399"]`, "", fmt.Sprintf(checkHTTPSNode, notPEM))
	cfg, code, _, stderr = checkIn(t, body)
	if code != 1 {
		t.Errorf("ca_file without PEM: exit %d, want 1", code)
	}
	wantFinding(t, stderr, "", cfg, checkMarked(t, body), `ca_file "`+notPEM+`"`, "holds no PEM certificate")
}

// TestCheckStateDir: a state_dir the server could not save pins in is an
// error at its line, and check leaves nothing behind.
func TestCheckStateDir(t *testing.T) {
	dir := t.TempDir()
	file := checkWrite(t, dir, "plain-file", "x")
	cases := []struct {
		stateDir string
		says     string
	}{
		{file, "it is not a folder"},
		{filepath.Join(file, "state"), "it cannot be created: a part of the path is a file"},
	}
	if os.Geteuid() != 0 { // root writes anywhere
		ro := filepath.Join(dir, "read-only")
		if err := os.Mkdir(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, struct{ stateDir, says string }{ro, "not writable"})
	}
	for _, tc := range cases {
		body := strings.Replace(checkConfig(`["127.0.0.1:5399"]`, "", ""), `state_dir = "state"`, fmt.Sprintf("state_dir = %q # <-", tc.stateDir), 1)
		cfg, code, _, stderr := checkIn(t, body)
		if code != 1 {
			t.Errorf("state_dir %s: exit %d, want 1", tc.stateDir, code)
		}
		wantFinding(t, stderr, "", cfg, checkMarked(t, body), "server.state_dir "+tc.stateDir+": "+tc.says, "answered SERVFAIL", "StateDirectory=")
	}
	// Missing but creatable is fine, and is not created by check.
	body := checkConfig(`["127.0.0.1:5399"]`, "", "")
	cfg, code, _, stderr := checkIn(t, body)
	if code != 0 {
		t.Errorf("state_dir to be created: exit %d, want 0; stderr:\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(cfg), "state")); !os.IsNotExist(err) {
		t.Errorf("check created state_dir (stat: %v)", err)
	}
}

// TestCheckZoneFileMissing: the config line naming the zone file, the path
// as written and as resolved.
func TestCheckZoneFileMissing(t *testing.T) {
	body := strings.Replace(checkConfig(`["127.0.0.1:5399"]`, "", ""), `file = "check.test.zone"`, `file = "zones/check.test.zone" # <-`, 1)
	cfg, code, _, stderr := checkIn(t, body)
	if code != 1 {
		t.Errorf("missing zone file: exit %d, want 1", code)
	}
	wantFinding(t, stderr, "", cfg, checkMarked(t, body), `zone check.test.: cannot read file "zones/check.test.zone" (resolved to `+filepath.Join(filepath.Dir(cfg), "zones", "check.test.zone")+`): no such file or directory`)
}

// TestCheckWarnings: valid but risky values pass with a warning at their
// line: a large service TTL, a check timeout not shorter than its interval,
// admin_nets that cover every address.
func TestCheckWarnings(t *testing.T) {
	const node = `
[[node]]
name = "sems1"
address = "192.0.2.11"
[node.check]
type = "tcp"
port = 443
interval = "1s"
`
	const service = `
[[service]]
name = "keys.check.test."
nodes = ["sems1"]
`
	for _, tc := range []struct {
		name, server, tables string
		says                 []string
	}{
		{"ttl", "", node + service + "ttl = 3600 # <-\n", []string{"service keys.check.test.: ttl 3600 is large", "up to 3600 s after it fails", "use 30"}},
		{"timeout equal to interval", "", node + "timeout = \"1s\" # <-\n" + service, []string{`node "sems1" check: timeout 1s is not shorter than interval 1s`}},
		{"timeout above interval", "", node + "timeout = \"3s\" # <-\n" + service, []string{`timeout 3s is not shorter than interval 1s`}},
		{"admin_nets IPv4", `admin_nets = ["127.0.0.0/8", "0.0.0.0/0"] # <-`, "", []string{`server.admin_nets: "0.0.0.0/0" is every IPv4 address`, "list the operators' networks"}},
		{"admin_nets IPv6", `admin_nets = ["::/0"] # <-`, "", []string{`server.admin_nets: "::/0" is every IPv6 address`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := checkConfig(`["127.0.0.1:5399"]`, tc.server, tc.tables)
			cfg, code, stdout, stderr := checkIn(t, body)
			if code != 0 || !strings.Contains(stdout, ": OK") {
				t.Errorf("exit %d, want 0 with the summary; stderr:\n%s", code, stderr)
			}
			wantFinding(t, stderr, "warning: ", cfg, checkMarked(t, body), tc.says...)
		})
	}
	// The defaults warn about nothing.
	if _, _, _, stderr := checkIn(t, checkConfig(`["127.0.0.1:5399"]`, "", node+service)); stderr != "" {
		t.Errorf("defaults: stderr %q, want nothing", stderr)
	}
}
