package zones_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/failoverdns/failoverdns/zones"
)

// The refusal cases are files in testdata/failover, each the valid config
// with one line changed; that line carries the marker "# ERROR", so the
// expected line number is read from the file rather than kept in sync by
// hand.
const svcDataDir = "../testdata/failover"

// svcMarkedLine returns the 1-based line of path holding "# ERROR".
func svcMarkedLine(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	line := 0
	for i, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "# ERROR") {
			if line != 0 {
				t.Fatalf("%s: two lines are marked # ERROR (%d and %d)", path, line, i+1)
			}
			line = i + 1
		}
	}
	if line == 0 {
		t.Fatalf("%s: no line is marked # ERROR", path)
	}
	return line
}

func TestServiceConfigValid(t *testing.T) {
	path := filepath.Join(svcDataDir, "valid.toml")
	snap, err := zones.Load(path)
	if err != nil {
		t.Fatalf("zones.Load(%s):\n%v", path, errors.Join(zones.Errors(err)...))
	}
	if w := snap.Warnings(); len(w) != 0 {
		t.Errorf("Warnings() = %q, want none", w)
	}
	svc := snap.Service("keys.failover.test.")
	if svc == nil {
		t.Fatal(`Service("keys.failover.test.") = nil`)
	}
	c := svc.Config
	if *c.TTL != 30 || c.Policy != "failover" || c.Failback != zones.FailbackAuto || c.WhenAllDown != zones.AllDownKeep || c.FailbackAfter.Duration.String() != "30s" {
		t.Errorf("service config = ttl %d policy %q failback %q after %s when_all_down %q; want 30 failover auto 30s keep",
			*c.TTL, c.Policy, c.Failback, c.FailbackAfter.Duration, c.WhenAllDown)
	}
	if got := fmt.Sprint(svc.Orders[0]); got != "[sems1 sems2]" {
		t.Errorf("default order = %s, want [sems1 sems2]", got)
	}
	// The probe goes to the check's target (loopback), never to the
	// answered address.
	specs := snap.Config.HealthSpecs()
	if got := specs["sems1"].Addr.String(); got != "127.0.10.1" {
		t.Errorf("sems1 is probed at %s, want the check target 127.0.10.1", got)
	}
	if got := specs["sems1"].Host; got != "keys.failover.test" {
		t.Errorf("sems1 check host = %q, want the service name keys.failover.test", got)
	}
}

func TestServiceConfigRefused(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string // substrings of the message
	}{
		{"policy-round-robin.toml", []string{
			`service keys.failover.test.: policy "round-robin" is refused`,
			"session-bound",
			"spreads them",
			`Use policy = "failover"`,
		}},
		{"policy-unknown.toml", []string{
			`unknown policy "nearest"`,
			`the only policy is "failover"`,
			"session-bound",
		}},
		{"unknown-node.toml", []string{
			`service keys.failover.test.: nodes lists "sems3", which is not a [[node]] (known: sems1, sems2)`,
		}},
		{"replication-is-address.toml", []string{
			`node "sems1": replication (Interface 1`,
			"equals its client-facing address 192.0.2.11 (Interface 2)",
			"clients must never be sent to the replication interface",
		}},
		{"service-outside-zone.toml", []string{
			"service keys.elsewhere.test. is outside every configured zone (failover.test.)",
		}},
		{"static-a.toml", []string{
			"service keys.failover.test. also has a static A record in /",
			"/testdata/failover/static-a.zone: the service answers A/AAAA itself",
			"remove the static record",
		}},
		{"several-addresses.toml", []string{
			"a list of 2 addresses",
			"round robin",
			"session-bound",
		}},
	} {
		t.Run(strings.TrimSuffix(tc.file, ".toml"), func(t *testing.T) {
			path := filepath.Join(svcDataDir, tc.file)
			line := svcMarkedLine(t, path)
			snap, err := zones.Load(path)
			if err == nil {
				t.Fatalf("zones.Load(%s) succeeded (snapshot with %d services), want it refused", path, len(snap.Services))
			}
			errs := zones.Errors(err)
			if len(errs) != 1 {
				t.Fatalf("zones.Load(%s) gave %d errors, want exactly 1:\n%v", path, len(errs), errors.Join(errs...))
			}
			msg := errs[0].Error()
			prefix := fmt.Sprintf("%s:%d: ", path, line)
			if !strings.HasPrefix(msg, prefix) {
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

// A static name with several A records is not refused (it is not a
// service), but check points out that it is round robin.
func TestServiceConfigZoneRoundRobinWarns(t *testing.T) {
	path := filepath.Join(svcDataDir, "round-robin-zone.toml")
	snap, err := zones.Load(path)
	if err != nil {
		t.Fatalf("zones.Load(%s):\n%v", path, errors.Join(zones.Errors(err)...))
	}
	w := snap.Warnings()
	if len(w) != 1 {
		t.Fatalf("Warnings() = %q, want exactly one", w)
	}
	for _, want := range []string{"round-robin.zone", "www.failover.test.", "2 A records", "round robin", "[[service]]"} {
		if !strings.Contains(w[0], want) {
			t.Errorf("warning does not say %q: %s", want, w[0])
		}
	}
}

// TestServiceConfigZoneAnswersReplication: the Interface 1 rule applies to
// the whole zone: a static A or AAAA record (a wildcard included) whose
// address is any node's replication address is refused, each with the zone
// file's line and the fix.
func TestServiceConfigZoneAnswersReplication(t *testing.T) {
	path := filepath.Join(svcDataDir, "replication-in-zone.toml")
	zonePath, err := filepath.Abs(filepath.Join(svcDataDir, "replication-in-zone.zone"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(zonePath)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "; ERROR") {
			want = append(want, fmt.Sprintf("%s:%d: ", zonePath, i+1))
		}
	}
	_, err = zones.Load(path)
	errs := zones.Errors(err)
	if len(errs) != len(want) {
		t.Fatalf("zones.Load(%s) gave %d errors, want %d (one per record marked ERROR):\n%v", path, len(errs), len(want), errors.Join(errs...))
	}
	for i, e := range errs {
		msg := e.Error()
		if !strings.HasPrefix(msg, want[i]) {
			t.Errorf("error %d does not start with %q:\n%s", i+1, want[i], msg)
		}
		for _, w := range []string{"address (Interface 1)", "clients must never be sent to a replication interface", "remove the record"} {
			if !strings.Contains(msg, w) {
				t.Errorf("error %d does not say %q:\n%s", i+1, w, msg)
			}
		}
	}
	if len(errs) == 3 {
		for i, w := range []string{`node "sems1"'s replication address (Interface 1)`, `node "sems2"'s replication6 address`, `*.w.failover.test. A 10.0.0.12`} {
			if !strings.Contains(errs[i].Error(), w) {
				t.Errorf("error %d does not say %q:\n%s", i+1, w, errs[i])
			}
		}
	}
}
