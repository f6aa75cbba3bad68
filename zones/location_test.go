package zones_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/health"
	"github.com/failoverdns/failoverdns/zones"
)

// The configs are in testdata/location; their line numbers are asserted here.
const locDir = "../testdata/location"

// TestLocationConfigErrors loads each bad config and wants exactly one
// error, at the right file and line, saying what is wrong.
func TestLocationConfigErrors(t *testing.T) {
	cases := []struct {
		file string
		line int
		want []string // substrings of the message
		not  []string // must not appear: a wrong or misleading claim
	}{
		{
			file: "unknown-location.toml", line: 38,
			want: []string{"keys.example.test.", `"apac"`, "not a [[location]]"},
		},
		{
			file: "same-prefix-two-locations.toml", line: 35,
			want: []string{"10.20.0.0/16", `"emea"`, `"lab"`, "both"},
		},
		{
			// ::ffff:10.20.0.0/112 is 10.20.0.0/16 written IPv4-mapped.
			file: "duplicate-prefix.toml", line: 35,
			want: []string{"10.20.0.0/16", `"emea"`, `"lab"`, "both"},
		},
		{
			file: "empty-order.toml", line: 37,
			want: []string{"keys.example.test.", `"emea"`, "empty order"},
		},
		{
			file: "node-twice.toml", line: 37,
			want: []string{"keys.example.test.", "emea", `"sems2"`, "twice"},
		},
		{
			// sems3 is a [[node]], just not one of this service's nodes:
			// the message must say so, not claim sems3 does not exist.
			file: "node-not-in-service.toml", line: 37,
			want: []string{"keys.example.test.", "emea", `"sems3"`, "sems1", "sems2"},
			not:  []string{"not a [[node]]"},
		},
		{
			file: "unknown-node.toml", line: 37,
			want: []string{"keys.example.test.", "emea", `"sems9"`, "not a [[node]]"},
		},
		{
			file: "host-bits.toml", line: 31,
			want: []string{`"emea"`, `"10.21.3.1/24"`, "host bits", `"10.21.3.0/24"`},
		},
		{
			file: "host-bits-v6.toml", line: 31,
			want: []string{`"emea"`, `"2001:db8:20::1/48"`, "host bits", `"2001:db8:20::/48"`},
		},
		{
			file: "no-subnets.toml", line: 29,
			want: []string{`"emea"`, "no subnets"},
		},
	}
	for _, c := range cases {
		t.Run(strings.TrimSuffix(c.file, ".toml"), func(t *testing.T) {
			path := filepath.Join(locDir, c.file)
			snap, err := zones.Load(path)
			if err == nil {
				t.Fatalf("Load(%s) accepted the config (snapshot with %d services)", path, len(snap.Services))
			}
			errs := zones.Errors(err)
			if len(errs) != 1 {
				t.Fatalf("Load(%s): want exactly 1 error, got %d:\n%v", path, len(errs), errors.Join(errs...))
			}
			var ze *zones.Error
			if !errors.As(errs[0], &ze) {
				t.Fatalf("error is %T, want *zones.Error: %v", errs[0], errs[0])
			}
			var problems []string
			if ze.File != path || ze.Line != c.line {
				problems = append(problems, fmt.Sprintf("error at %s:%d, want %s:%d", ze.File, ze.Line, path, c.line))
			}
			msg := errs[0].Error()
			if prefix := fmt.Sprintf("%s:%d: ", path, c.line); !strings.HasPrefix(msg, prefix) {
				problems = append(problems, fmt.Sprintf("message does not start with %q", prefix))
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					problems = append(problems, "message does not mention "+w)
				}
			}
			for _, n := range c.not {
				if strings.Contains(msg, n) {
					problems = append(problems, fmt.Sprintf("message says %q, which is wrong here", n))
				}
			}
			if len(problems) == 0 {
				return
			}
			report := strings.Join(problems, "\n") + "\nmessage: " + msg
			t.Error(report)
		})
	}
}

// TestLocationNameErrors: "default" is the name of the default view, and a
// location name must be a DNS label (it is used in _pin.<location>._loc).
func TestLocationNameErrors(t *testing.T) {
	path := filepath.Join(locDir, "bad-location-name.toml")
	_, err := zones.Load(path)
	errs := zones.Errors(err)
	if len(errs) != 2 {
		t.Fatalf("want 2 errors, got %d:\n%v", len(errs), errors.Join(errs...))
	}
	for i, want := range []struct {
		line int
		name string
		fix  string
	}{{30, `"default"`, "reserved"}, {34, `"two words"`, "label"}} {
		msg := errs[i].Error()
		if !strings.HasPrefix(msg, fmt.Sprintf("%s:%d: ", path, want.line)) || !strings.Contains(msg, want.name) || !strings.Contains(msg, want.fix) {
			t.Errorf("error %d = %q, want %s:%d naming %s and saying %q", i, msg, path, want.line, want.name, want.fix)
		}
	}
}

func loadValid(t testing.TB) *zones.Snapshot {
	t.Helper()
	snap, err := zones.Load(filepath.Join(locDir, "valid.toml"))
	if err != nil {
		t.Fatalf("Load valid.toml:\n%v", errors.Join(zones.Errors(err)...))
	}
	return snap
}

func TestLocationNames(t *testing.T) {
	snap := loadValid(t)
	if n := snap.LocationCount(); n != 4 {
		t.Fatalf("LocationCount() = %d, want 4 (default, emea, lab, apac)", n)
	}
	for loc, want := range []string{"default", "emea", "lab", "apac"} {
		if got := snap.LocationName(loc); got != want {
			t.Errorf("LocationName(%d) = %q, want %q", loc, got, want)
		}
	}
	if got := snap.LocationName(4); got != "default" {
		t.Errorf("LocationName(4) = %q, want \"default\" for an index out of range", got)
	}
	for name, want := range map[string]bool{"keys.example.test.": true, "subset.example.test.": true, "plain.example.test.": false} {
		svc := snap.Service(name)
		if svc == nil {
			t.Fatalf("Service(%q) = nil", name)
		}
		if svc.Localized() != want {
			t.Errorf("%s: Localized() = %v, want %v", name, svc.Localized(), want)
		}
	}
}

// Location indexes in valid.toml.
const (
	locDefault = 0
	locEMEA    = 1
	locLab     = 2
	locAPAC    = 3
)

// locateCases are valid.toml's answers to Locate.
var locateCases = []struct {
	addr      string
	loc, bits int
}{
	{"127.0.99.5", locEMEA, 24},
	{"127.0.1.5", locDefault, -1},
	{"127.0.0.1", locDefault, -1},
	{"10.20.4.7", locEMEA, 16},
	{"10.20.3.7", locLab, 24}, // the /24 inside emea's /16 wins
	{"10.20.2.255", locEMEA, 16},
	{"10.21.0.1", locDefault, -1},
	{"::ffff:10.20.3.7", locLab, 24}, // an IPv4-mapped client is its IPv4 address
	{"::ffff:127.0.99.5", locEMEA, 24},
	{"10.30.200.1", locAPAC, 16}, // location written as ::ffff:10.30.0.0/112
	{"2001:db8:20::1", locEMEA, 48},
	{"2001:db8:20:ffff::1", locEMEA, 48},
	{"2001:db8:20:3::1", locLab, 64},
	{"2001:db8:21::1", locDefault, -1},
	{"::1", locDefault, -1},
}

func TestLocate(t *testing.T) {
	snap := loadValid(t)
	for _, c := range locateCases {
		loc, bits := snap.Locate(netip.MustParseAddr(c.addr))
		if loc != c.loc || bits != c.bits {
			t.Errorf("Locate(%s) = (%s, %d), want (%s, %d)", c.addr, snap.LocationName(loc), bits, snap.LocationName(c.loc), c.bits)
		}
	}
	if loc, bits := snap.Locate(netip.Addr{}); loc != 0 || bits != -1 {
		t.Errorf("Locate(invalid) = (%d, %d), want (0, -1)", loc, bits)
	}
}

// LocateWith answers as Locate whatever the memo last held: the same
// client again, another client, and another snapshot's locations (a
// reload), where the memo's answer for that same client no longer holds.
func TestLocateWith(t *testing.T) {
	snap := loadValid(t)
	var m zones.LocateMemo
	for _, c := range locateCases {
		for range 2 {
			loc, bits := snap.LocateWith(&m, netip.MustParseAddr(c.addr))
			if loc != c.loc || bits != c.bits {
				t.Errorf("LocateWith(%s) = (%s, %d), want (%s, %d)", c.addr, snap.LocationName(loc), bits, snap.LocationName(c.loc), c.bits)
			}
		}
	}
	lab := netip.MustParseAddr("10.20.3.7")
	if loc, _ := snap.LocateWith(&m, lab); loc != locLab {
		t.Fatalf("LocateWith(%s) = %s, want lab", lab, snap.LocationName(loc))
	}
	if loc, bits := noLocations(t, "").LocateWith(&m, lab); loc != 0 || bits != -1 {
		t.Errorf("LocateWith(%s) after a reload without locations = (%d, %d), want (0, -1)", lab, loc, bits)
	}
	other := noLocations(t, "[[location]]\nname = \"other\"\nsubnets = [\"10.20.0.0/16\"]\n")
	if loc, bits := other.LocateWith(&m, lab); loc != 1 || bits != 16 {
		t.Errorf("LocateWith(%s) after a reload to other locations = (%d, %d), want (1, 16)", lab, loc, bits)
	}
}

// LocatePrefix matches only locations that contain the whole client subnet.
func TestLocatePrefix(t *testing.T) {
	snap := loadValid(t)
	cases := []struct {
		prefix    string
		loc, bits int
	}{
		{"10.20.3.0/24", locLab, 24},
		{"10.20.3.128/25", locLab, 24},
		{"10.20.3.7/32", locLab, 24},
		{"10.20.4.0/24", locEMEA, 16},
		{"10.20.0.0/16", locEMEA, 16},
		{"10.20.0.0/15", locDefault, -1}, // wider than every location
		{"10.0.0.0/8", locDefault, -1},
		{"0.0.0.0/0", locDefault, -1},
		{"127.0.99.0/24", locEMEA, 24},
		{"127.0.99.0/23", locDefault, -1},
		{"10.30.7.0/24", locAPAC, 16},
		{"2001:db8:20::/56", locEMEA, 48},
		{"2001:db8:20::/48", locEMEA, 48},
		{"2001:db8:20:3::/64", locLab, 64},
		{"2001:db8:20:3:8000::/65", locLab, 64},
		{"2001:db8:20::/47", locDefault, -1},
		{"2001:db8:99::/56", locDefault, -1},
		{"::/0", locDefault, -1},
	}
	for _, c := range cases {
		loc, bits := snap.LocatePrefix(netip.MustParsePrefix(c.prefix))
		if loc != c.loc || bits != c.bits {
			t.Errorf("LocatePrefix(%s) = (%s, %d), want (%s, %d)", c.prefix, snap.LocationName(loc), bits, snap.LocationName(c.loc), c.bits)
		}
	}
}

// noLocations loads a config of valid.toml's zone and no [[location]]
// but those in extra (TOML).
func noLocations(t *testing.T, extra string) *zones.Snapshot {
	t.Helper()
	zone, err := filepath.Abs(filepath.Join(locDir, "example.test.zone"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "noloc.toml")
	cfg := fmt.Sprintf("[server]\nlisten = [\"127.0.0.1:0\"]\nhttp = \"\"\n\n[[zone]]\norigin = \"example.test.\"\nfile = %q\n%s", zone, extra)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	snap, err := zones.Load(path)
	if err != nil {
		t.Fatalf("Load:\n%v", errors.Join(zones.Errors(err)...))
	}
	return snap
}

// A snapshot with no [[location]] places everyone in the default view.
func TestLocateWithoutLocations(t *testing.T) {
	snap := noLocations(t, "")
	if loc, bits := snap.Locate(netip.MustParseAddr("10.20.3.7")); loc != 0 || bits != -1 {
		t.Errorf("Locate = (%d, %d), want (0, -1)", loc, bits)
	}
	if loc, bits := snap.LocatePrefix(netip.MustParsePrefix("10.20.3.0/24")); loc != 0 || bits != -1 {
		t.Errorf("LocatePrefix = (%d, %d), want (0, -1)", loc, bits)
	}
	if n := snap.LocationCount(); n != 1 {
		t.Errorf("LocationCount() = %d, want 1", n)
	}
}

// decideWith runs the engine once over valid.toml with the given nodes up
// (all others checked and down) and returns the published snapshot.
func decideWith(t *testing.T, up ...string) *zones.Snapshot {
	t.Helper()
	base := loadValid(t)
	since := time.Now().Add(-time.Hour) // long past any failback hold-down
	h := map[string]health.State{}
	for _, n := range []string{"sems1", "sems2", "sems3"} {
		h[n] = health.State{Checked: true, Since: since}
	}
	for _, n := range up {
		h[n] = health.State{Up: true, Checked: true, Since: since}
	}
	var published *zones.Snapshot
	e := zones.NewEngineWith(base, zones.EngineOptions{Publish: func(s *zones.Snapshot) { published = s }, Health: func() map[string]health.State { return h }})
	got := e.Recompute()
	if got != published {
		t.Fatal("Recompute returned a different snapshot than it published")
	}
	return got
}

// answerOf names the node a view answers for a service ("SERVFAIL" when it
// must fail), checking the A and AAAA records agree.
func answerOf(t *testing.T, snap *zones.Snapshot, service string, loc int) string {
	t.Helper()
	o := snap.Overlay(loc)
	a, dyn, fail := o.RRset(service, dns.TypeA)
	if !dyn {
		t.Fatalf("%s is not dynamic in view %s", service, snap.LocationName(loc))
	}
	if fail {
		return "SERVFAIL"
	}
	aaaa, _, _ := o.RRset(service, dns.TypeAAAA)
	if len(a) != 1 || len(aaaa) != 1 {
		t.Fatalf("%s in view %s: %d A and %d AAAA records, want one of each", service, snap.LocationName(loc), len(a), len(aaaa))
	}
	ip4 := a[0].(*dns.A).A.String()
	ip6 := aaaa[0].(*dns.AAAA).AAAA.String()
	byAddr := map[string]string{"192.0.2.11": "sems1", "192.0.2.12": "sems2", "192.0.2.13": "sems3"}
	byAddr6 := map[string]string{"2001:db8::11": "sems1", "2001:db8::12": "sems2", "2001:db8::13": "sems3"}
	if byAddr[ip4] == "" || byAddr[ip4] != byAddr6[ip6] {
		t.Fatalf("%s in view %s: A %s and AAAA %s are not the same node", service, snap.LocationName(loc), ip4, ip6)
	}
	if a[0].Header().Name != service || a[0].Header().Ttl != 30 {
		t.Errorf("%s in view %s: record %v, want owner %s and TTL 30", service, snap.LocationName(loc), a[0], service)
	}
	return byAddr[ip4]
}

// TestLocationDecisions: each (service, location) has its own active node;
// a location without its own order follows the default; a location whose
// order is a subset of the service's nodes never answers the others.
func TestLocationDecisions(t *testing.T) {
	type views map[string][4]string // service -> answer per view (default, emea, lab, apac)
	cases := []struct {
		name string
		up   []string
		want views
	}{
		{"all up", []string{"sems1", "sems2", "sems3"}, views{
			"keys.example.test.":   {"sems1", "sems2", "sems3", "sems1"},
			"subset.example.test.": {"sems1", "sems3", "sems1", "sems1"},
			"plain.example.test.":  {"sems1", "sems1", "sems1", "sems1"},
		}},
		{"sems2 down", []string{"sems1", "sems3"}, views{
			"keys.example.test.":   {"sems1", "sems1", "sems3", "sems1"},
			"subset.example.test.": {"sems1", "sems3", "sems1", "sems1"},
			"plain.example.test.":  {"sems1", "sems1", "sems1", "sems1"},
		}},
		{"sems1 down", []string{"sems2", "sems3"}, views{
			"keys.example.test.":   {"sems2", "sems2", "sems3", "sems2"},
			"subset.example.test.": {"sems2", "sems3", "sems2", "sems2"},
			"plain.example.test.":  {"sems2", "sems2", "sems2", "sems2"},
		}},
		// lab's order is [sems3, sems2]: with both down it fails
		// (when_all_down = servfail) even though sems1 is up. emea's subset
		// order [sems3] keeps sems3 (keep has nothing to keep on a first
		// decision, so it answers the first in order).
		{"only sems1 up", []string{"sems1"}, views{
			"keys.example.test.":   {"sems1", "sems1", "SERVFAIL", "sems1"},
			"subset.example.test.": {"sems1", "sems3", "sems1", "sems1"},
			"plain.example.test.":  {"sems1", "sems1", "sems1", "sems1"},
		}},
		{"all down", nil, views{
			"keys.example.test.":   {"SERVFAIL", "SERVFAIL", "SERVFAIL", "SERVFAIL"},
			"subset.example.test.": {"sems1", "sems3", "sems1", "sems1"},
			"plain.example.test.":  {"sems1", "sems1", "sems1", "sems1"},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			snap := decideWith(t, c.up...)
			for svc, want := range c.want {
				for loc, w := range want {
					if got := answerOf(t, snap, svc, loc); got != w {
						t.Errorf("%s in view %s: answers %s, want %s", svc, snap.LocationName(loc), got, w)
					}
				}
			}
			// Views without their own order have no decision of their own.
			if _, ok := snap.Decision("keys.example.test.", locAPAC); ok {
				t.Error("keys has a decision for apac, which has no order for it")
			}
			if d, ok := snap.Decision("keys.example.test.", locLab); !ok || d.Reason == "" {
				t.Errorf("keys/lab decision = %+v, %v: want one with a reason", d, ok)
			}
		})
	}
}
