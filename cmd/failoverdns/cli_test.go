package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// TestHelp: -h, --help and help print the usage on stdout, exit 0, and name
// every subcommand.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-help"}, {"help"}, {"-config", "x.toml", "-h"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 {
			t.Errorf("failoverdns %s: exit %d, want 0; stderr %q", strings.Join(args, " "), code, errb.String())
		}
		for _, sub := range []string{"failoverdns check", "failoverdns healthcheck", "failoverdns version", "failoverdns help", "-config FILE", "-log-level"} {
			if !strings.Contains(out.String(), sub) {
				t.Errorf("failoverdns %s: the usage does not mention %q:\n%s", strings.Join(args, " "), sub, out.String())
			}
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"chek"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "healthcheck") {
		t.Errorf("failoverdns chek: exit %d, stderr %q; want 2 and the list of subcommands", code, errb.String())
	}
}

// TestVersionSpellings: version, -version and --version print the same line.
func TestVersionSpellings(t *testing.T) {
	want := readBuildInfo().String() + "\n"
	for _, arg := range []string{"version", "-version", "--version"} {
		var out, errb bytes.Buffer
		if code := run([]string{arg}, &out, &errb); code != 0 || out.String() != want {
			t.Errorf("failoverdns %s: exit %d, printed %q; want 0 and %q", arg, code, out.String(), want)
		}
	}
}

// TestBuildInfoFrom: the VCS revision Go records is reported, marked when
// the tree was modified; -ldflags values win.
func TestBuildInfoFrom(t *testing.T) {
	bi := &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}, Settings: []debug.BuildSetting{
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
		{Key: "vcs.time", Value: "2026-11-21T10:00:00Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	b := buildInfoFrom(bi, "", "")
	if b.Version != "v1.4.0" || b.RevisionLabel() != "0123456789abcdef0123456789abcdef01234567-modified" {
		t.Errorf("from build info: version %q revision %q", b.Version, b.RevisionLabel())
	}
	if s := b.String(); !strings.HasPrefix(s, "failoverdns v1.4.0 (revision 0123456789abcdef0123456789abcdef01234567-modified, 2026-11-21T10:00:00Z; go") {
		t.Errorf("version line %q", s)
	}
	b = buildInfoFrom(bi, "v2.0.0", "feedface")
	if b.Version != "v2.0.0" || b.RevisionLabel() != "feedface-modified" {
		t.Errorf("-ldflags values: version %q revision %q, want v2.0.0 and feedface-modified", b.Version, b.RevisionLabel())
	}
	b = buildInfoFrom(nil, "", "")
	if b.Version != "(devel)" || b.RevisionLabel() != "unknown" {
		t.Errorf("without build info: version %q revision %q", b.Version, b.RevisionLabel())
	}
}

// TestLoggerSecondsAndLevel: durations are logged as seconds in both formats,
// and -log-level drops what is below it.
func TestLoggerSecondsAndLevel(t *testing.T) {
	var buf bytes.Buffer
	l, err := newLogger("json", "warn", &buf)
	if err != nil {
		t.Fatal(err)
	}
	l.Info("dropped", "latency", time.Second)
	l.Warn("kept", "latency", 1500*time.Millisecond, slog.Group("g", "took", 250*time.Microsecond))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("-log-level warn wrote %d lines, want 1:\n%s", len(lines), buf.String())
	}
	var rec struct {
		Latency float64 `json:"latency"`
		G       struct {
			Took float64 `json:"took"`
		} `json:"g"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("%v: %s", err, lines[0])
	}
	if rec.Latency != 1.5 || rec.G.Took != 0.00025 {
		t.Errorf("JSON durations %v and %v, want 1.5 and 0.00025 (seconds): %s", rec.Latency, rec.G.Took, lines[0])
	}
	buf.Reset()
	if l, err = newLogger("text", "debug", &buf); err != nil {
		t.Fatal(err)
	}
	l.Debug("shown", "latency", 20*time.Millisecond)
	if !strings.Contains(buf.String(), " latency=0.02") {
		t.Errorf("text: %q, want latency=0.02", buf.String())
	}
	if _, err := newLogger("text", "loud", &buf); err == nil || !strings.Contains(err.Error(), "-log-level") {
		t.Errorf("-log-level loud: %v, want an error naming -log-level", err)
	}
}
