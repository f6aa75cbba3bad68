package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// checkRun runs `failoverdns check -config testdata/check/<name>` in process.
func checkRun(t *testing.T, name string) (code int, stdout, stderr string) {
	t.Helper()
	path := filepath.Join("..", "..", "testdata", "check", name)
	var out, errb bytes.Buffer
	code = run([]string{"check", "-config", path}, &out, &errb)
	return code, out.String(), errb.String()
}

// TestCheckRejects: every bad input makes check exit 1 with a message that
// starts with file:line: and says what is wrong.
func TestCheckRejects(t *testing.T) {
	type want struct {
		loc  string // "file:line:" at the start of a message line
		says string // and that line mentions this
	}
	for _, tc := range []struct {
		config string
		want   []want
	}{
		// No SOA: the zone file starts on line 1, where the SOA belongs.
		{"nosoa.toml", []want{{"nosoa.zone:1:", "SOA"}}},
		{"unknown-server-key.toml", []want{{"unknown-server-key.toml:3:", `"server.listn"`}}},
		{"unknown-zone-key.toml", []want{{"unknown-zone-key.toml:12:", "fiel"}}},
		{"cname-and-a.toml", []want{{"cname-and-a.zone:7:", "CNAME"}}},
		{"out-of-zone.toml", []want{{"out-of-zone.zone:6:", "www.example.org."}}},
		// Each NS without glue is reported on its own line, not on the
		// line of the first NS record of the RRset.
		{"missing-glue.toml", []want{
			{"missing-glue.zone:5:", "ns2.glue.test."},
			{"missing-glue.zone:7:", "ns.sub.glue.test."},
		}},
		{"syntax-error.toml", []want{{"syntax-error.zone:6:", "192.0.2.300"}}},
		{"bad-toml.toml", []want{{"bad-toml.toml:4:", ""}}},
	} {
		t.Run(strings.TrimSuffix(tc.config, ".toml"), func(t *testing.T) {
			code, stdout, stderr := checkRun(t, tc.config)
			if code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if strings.Contains(stdout, "OK") {
				t.Errorf("a rejected config printed a summary:\n%s", stdout)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			for _, w := range tc.want {
				// The file name as a whole path element, then the line.
				re := regexp.MustCompile(`(^|/)` + regexp.QuoteMeta(w.loc) + ` \S`)
				found := false
				for _, l := range lines {
					if re.MatchString(l) && strings.Contains(l, w.says) {
						found = true
						break
					}
				}
				if !found {
					t.Errorf("no message %q...%q in:\n%s", w.loc, w.says, stderr)
				}
			}
			// Every message names a file and a line.
			lineRE := regexp.MustCompile(`^\S+\.(toml|zone):\d+: \S`)
			for _, l := range lines {
				if !lineRE.MatchString(l) {
					t.Errorf("message without file:line: %q", l)
				}
			}
		})
	}
}

func TestCheckValid(t *testing.T) {
	// A copy, with a state_dir that `check` can find writable whoever runs
	// the tests (the default, /var/lib/failoverdns, needs root).
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join("..", "..", "testdata", "check", "valid.toml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := checkWrite(t, dir, "valid.toml", strings.Replace(string(src), "[server]\n", "[server]\nstate_dir = \"state\"\n", 1))
	zone, err := os.ReadFile(filepath.Join("..", "..", "testdata", "check", "valid.zone"))
	if err != nil {
		t.Fatal(err)
	}
	checkWrite(t, dir, "valid.zone", string(zone))
	var out, errb bytes.Buffer
	code := run([]string{"check", "-config", cfg}, &out, &errb)
	stdout, stderr := out.String(), errb.String()
	if code != 0 {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", code, stderr)
	}
	if stderr != "" {
		t.Errorf("stderr not empty:\n%s", stderr)
	}
	// The summary's layout may grow; these facts must be in it.
	for _, re := range []string{
		`(?m)^config ` + regexp.QuoteMeta(cfg) + `: OK$`,
		`(?m)^zones: 1$`,
		// Zone files are shown by their resolved path.
		`(?m)^\s+check\.test\.\s+` + regexp.QuoteMeta(filepath.Join(dir, "valid.zone")) + `\s+serial 1\b`,
		`(?m)^listen: 127\.0\.0\.1:5399 \(IPv4\), udp\+tcp`,
	} {
		if !regexp.MustCompile(re).MatchString(stdout) {
			t.Errorf("summary does not match %s:\n%s", re, stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); !os.IsNotExist(err) {
		t.Errorf("check left state_dir behind (stat: %v): it must not change the disk", err)
	}
}

func TestCheckUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"check"}, &out, &errb); code != 2 {
		t.Errorf("check without -config: exit %d, want 2", code)
	}
	if !strings.Contains(errb.String(), "-config") {
		t.Errorf("check without -config says %q, want a hint about -config", errb.String())
	}
}
