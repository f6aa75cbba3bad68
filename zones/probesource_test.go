package zones_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/failoverdns/failoverdns/zones"
)

// TestProbeSource: server.probe_source reaches every node's health spec,
// check's summary names it, and check's preflight refuses a source that is
// no address of this host (loading does not: the address may be added
// after the config is written).
func TestProbeSource(t *testing.T) {
	for _, tc := range []struct {
		file      string
		want      netip.Addr
		preflight string
	}{
		{"valid.toml", netip.Addr{}, ""},
		{"probe-source.toml", netip.MustParseAddr("127.0.0.11"), ""},
		{"probe-source-foreign.toml", netip.MustParseAddr("192.0.2.99"), "server.probe_source 192.0.2.99 is not an address of this host (bind: cannot assign requested address): every health check would fail"},
	} {
		t.Run(strings.TrimSuffix(tc.file, ".toml"), func(t *testing.T) {
			path := filepath.Join(svcDataDir, tc.file)
			snap, err := zones.Load(path)
			if err != nil {
				t.Fatalf("zones.Load(%s):\n%v", path, errors.Join(zones.Errors(err)...))
			}
			specs := snap.Config.HealthSpecs()
			if len(specs) != 2 {
				t.Fatalf("%d health specs, want 2", len(specs))
			}
			for name, s := range specs {
				if s.Source != tc.want {
					t.Errorf("%s probes from %v, want %v", name, s.Source, tc.want)
				}
			}
			summary := zones.Summary(snap)
			wantLine := "nodes: 2\n"
			if tc.want.IsValid() {
				wantLine = fmt.Sprintf("nodes: 2, probed from %s\n", tc.want)
			}
			if !strings.Contains(summary, wantLine) {
				t.Errorf("summary lacks %q:\n%s", wantLine, summary)
			}
			if w := snap.Warnings(); len(w) != 0 {
				t.Errorf("Warnings() = %q, want none", w)
			}
			err = zones.Preflight(snap.Config)
			if tc.preflight == "" {
				if err != nil {
					t.Errorf("Preflight: %v", err)
				}
				return
			}
			errs := zones.Errors(err)
			if len(errs) != 1 {
				t.Fatalf("Preflight gave %d errors, want 1: %v", len(errs), err)
			}
			if want := fmt.Sprintf("%s:%d: %s", snap.Config.File, lineOf(t, path, "probe_source"), tc.preflight); !strings.HasPrefix(errs[0].Error(), want) {
				t.Errorf("Preflight:\n%s\nwant it to start\n%s", errs[0], want)
			}
		})
	}
}

// TestProbeSourceRefused: a probe_source that is no unicast IP address, or
// that no node's check could leave from, is refused at its line with the
// fix.
func TestProbeSourceRefused(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string
	}{
		{"probe-source-bad.toml", []string{
			`server.probe_source "127.0.0.300" is not an IP address`,
			`probe_source = "10.0.0.5"`,
			"remove it to let the kernel choose",
		}},
		{"probe-source-unspecified.toml", []string{
			"server.probe_source 0.0.0.0 is not a unicast address",
		}},
		{"anchor-bad.toml", []string{
			`server.anchors[0] "192.0.2.53": want an IP address and a TCP port`,
			`"192.0.2.53:53"`,
		}},
		{"probe-source-family.toml", []string{
			"server.probe_source ::1 is IPv6, but nodes are checked at IPv4 addresses (sems1 at 127.0.10.1, sems2 at 127.0.10.2)",
			"set probe_source to an IPv4 address",
		}},
	} {
		t.Run(strings.TrimSuffix(tc.file, ".toml"), func(t *testing.T) {
			path := filepath.Join(svcDataDir, tc.file)
			line := svcMarkedLine(t, path)
			_, err := zones.Load(path)
			errs := zones.Errors(err)
			if len(errs) != 1 {
				t.Fatalf("zones.Load(%s) gave %d errors, want exactly 1:\n%v", path, len(errs), errors.Join(errs...))
			}
			msg := errs[0].Error()
			if prefix := fmt.Sprintf("%s:%d: ", path, line); !strings.HasPrefix(msg, prefix) {
				t.Errorf("error does not start with %q (the line marked # ERROR):\n%s", prefix, msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not say %q:\n%s", w, msg)
				}
			}
		})
	}
}

// lineOf is the 1-based line of path that starts with prefix.
func lineOf(t *testing.T, path, prefix string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, prefix) {
			return i + 1
		}
	}
	t.Fatalf("%s: no line starts with %q", path, prefix)
	return 0
}
