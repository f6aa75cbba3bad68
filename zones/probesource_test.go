package zones_test

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/failoverdns/failoverdns/zones"
)

// TestProbeSource: server.probe_source reaches every node's health spec,
// check's summary names it, and a source that is no address of this host
// is a warning (check may run elsewhere), not an error.
func TestProbeSource(t *testing.T) {
	for _, tc := range []struct {
		file string
		want netip.Addr
		warn string
	}{
		{"valid.toml", netip.Addr{}, ""},
		{"probe-source.toml", netip.MustParseAddr("127.0.0.11"), ""},
		{"probe-source-foreign.toml", netip.MustParseAddr("192.0.2.99"), "server.probe_source 192.0.2.99 is not an address of this host"},
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
			w := snap.Warnings()
			switch {
			case tc.warn == "" && len(w) != 0:
				t.Errorf("Warnings() = %q, want none", w)
			case tc.warn != "" && (len(w) != 1 || !strings.HasPrefix(w[0], tc.warn)):
				t.Errorf("Warnings() = %q, want one starting %q", w, tc.warn)
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
