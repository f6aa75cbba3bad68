package zones

import (
	"strings"
	"testing"
	"time"

	"github.com/failoverdns/failoverdns/health"
)

// TestDecide covers every rule of README "Configuration" and "Failure
// behaviour" for the active node on the pure
// decision function: no clock, no sockets.
func TestDecide(t *testing.T) {
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	const after = 10 * time.Second
	order := []string{"a", "b", "c"}

	up := func(ago time.Duration) health.State {
		return health.State{Up: true, Checked: true, Since: now.Add(-ago), Last: health.Result{OK: true, At: now}}
	}
	down := func(err string) health.State {
		return health.State{Up: false, Checked: true, Since: now.Add(-time.Minute), Last: health.Result{Err: err, At: now}}
	}
	long := time.Hour
	// A node that answered its probes but whose first result is not in
	// yet (Checked false) must not be handed out, whatever Up says.
	unchecked := health.State{Up: true, Since: now.Add(-long)}

	type want struct {
		active   string
		servfail bool
		next     time.Time
		reason   []string // substrings
	}
	for _, tc := range []struct {
		name     string
		order    []string
		cur      Decision
		h        map[string]health.State
		failback Failback
		allDown  AllDown
		want     want
	}{
		{
			name: "first up: all up, nothing decided yet",
			cur:  Decision{},
			h:    map[string]health.State{"a": up(long), "b": up(long), "c": up(long)},
			want: want{active: "a", reason: []string{"first node up in order"}},
		},
		{
			name: "first up: the first is down at boot",
			h:    map[string]health.State{"a": down("connection refused"), "b": up(long), "c": up(long)},
			want: want{active: "b", reason: []string{"first node up in order"}},
		},
		{
			name: "first up: a node just up at boot is not held down",
			h:    map[string]health.State{"a": up(0), "b": up(long), "c": up(long)},
			want: want{active: "a"},
		},
		{
			name: "failover: active down, next in order up",
			cur:  Decision{Active: "a", Reason: "first node up in order"},
			h:    map[string]health.State{"a": down("connection refused"), "b": up(long), "c": up(long)},
			want: want{active: "b", reason: []string{"a is down: connection refused"}},
		},
		{
			name: "failover skips a down node",
			cur:  Decision{Active: "a"},
			h:    map[string]health.State{"a": down("timeout after 800ms"), "b": down("status 503, want [200]"), "c": up(long)},
			want: want{active: "c", reason: []string{"a is down: timeout after 800ms"}},
		},
		{
			name: "failover from the last node wraps to the first up",
			cur:  Decision{Active: "c"},
			h:    map[string]health.State{"a": up(long), "b": up(long), "c": down("connection refused")},
			want: want{active: "a", reason: []string{"c is down"}},
		},
		{
			name: "stay: active up, higher nodes down",
			cur:  Decision{Active: "b", Reason: "a is down: connection refused"},
			h:    map[string]health.State{"a": down("connection refused"), "b": up(long), "c": up(long)},
			want: want{active: "b", reason: []string{"a is down: connection refused"}},
		},
		{
			name: "stay: a lower node's state does not matter",
			cur:  Decision{Active: "a"},
			h:    map[string]health.State{"a": up(long), "b": down("x"), "c": unchecked},
			want: want{active: "a", reason: []string{"a is up"}},
		},
		{
			name:     "failback held down: the higher node came back 3s ago",
			cur:      Decision{Active: "b"},
			h:        map[string]health.State{"a": up(3 * time.Second), "b": up(long), "c": up(long)},
			failback: FailbackAuto,
			want:     want{active: "b", next: now.Add(after - 3*time.Second)},
		},
		{
			name:     "failback held down: next is the earliest pending hold-down end",
			cur:      Decision{Active: "c"},
			h:        map[string]health.State{"a": up(3 * time.Second), "b": up(5 * time.Second), "c": up(long)},
			failback: FailbackAuto,
			want:     want{active: "c", next: now.Add(after - 5*time.Second)},
		},
		{
			name:     "failback exactly at the end of the hold-down",
			cur:      Decision{Active: "b"},
			h:        map[string]health.State{"a": up(after), "b": up(long), "c": up(long)},
			failback: FailbackAuto,
			want:     want{active: "a", reason: []string{"failback", "a has been up since 2026-11-21T09:59:50Z", "failback_after 10s"}},
		},
		{
			name:     "failback 1ns before the end of the hold-down is not yet",
			cur:      Decision{Active: "b"},
			h:        map[string]health.State{"a": up(after - time.Nanosecond), "b": up(long), "c": up(long)},
			failback: FailbackAuto,
			want:     want{active: "b", next: now.Add(time.Nanosecond)},
		},
		{
			name:     "failback long after",
			cur:      Decision{Active: "c"},
			h:        map[string]health.State{"a": up(long), "b": up(long), "c": up(long)},
			failback: FailbackAuto,
			want:     want{active: "a", reason: []string{"failback"}},
		},
		{
			// b is past its hold-down and takes over from c, but a is
			// still held down and must fail back when its own hold-down
			// ends: next must be a's deadline, or nothing wakes the
			// engine for it.
			name:     "failback to the second node keeps the first node's deadline",
			cur:      Decision{Active: "c"},
			h:        map[string]health.State{"a": up(3 * time.Second), "b": up(long), "c": up(long)},
			failback: FailbackAuto,
			want:     want{active: "b", next: now.Add(after - 3*time.Second), reason: []string{"failback"}},
		},
		{
			name:     "manual: never returns by itself",
			cur:      Decision{Active: "b"},
			h:        map[string]health.State{"a": up(long), "b": up(long), "c": up(long)},
			failback: FailbackManual,
			want:     want{active: "b"},
		},
		{
			name:     "manual: still fails over",
			cur:      Decision{Active: "b"},
			h:        map[string]health.State{"a": up(long), "b": down("connection refused"), "c": up(long)},
			failback: FailbackManual,
			want:     want{active: "a", reason: []string{"b is down"}},
		},
		{
			name: "not yet Checked counts as down at boot",
			h:    map[string]health.State{"a": unchecked, "b": up(long), "c": up(long)},
			want: want{active: "b"},
		},
		{
			name: "not yet Checked counts as down for the active node",
			cur:  Decision{Active: "a"},
			h:    map[string]health.State{"a": unchecked, "b": up(long), "c": up(long)},
			want: want{active: "b"},
		},
		{
			name:     "not yet Checked is not a failback target",
			cur:      Decision{Active: "b"},
			h:        map[string]health.State{"a": unchecked, "b": up(long), "c": up(long)},
			failback: FailbackAuto,
			want:     want{active: "b"},
		},
		{
			name: "a node missing from the health map counts as down",
			h:    map[string]health.State{"b": down("x"), "c": up(long)},
			want: want{active: "c"},
		},
		{
			name: "nil health map: all down, keep with nothing decided answers the first",
			h:    nil,
			want: want{active: "a", reason: []string{"all nodes down"}},
		},
		{
			name:    "all down, keep: the last active node",
			cur:     Decision{Active: "b"},
			h:       map[string]health.State{"a": down("x"), "b": down("y"), "c": down("z")},
			allDown: AllDownKeep,
			want:    want{active: "b", reason: []string{"all nodes down", "keep"}},
		},
		{
			name:    "all down, keep, nothing decided before: the first node",
			h:       map[string]health.State{"a": down("x"), "b": down("y"), "c": down("z")},
			allDown: AllDownKeep,
			want:    want{active: "a", reason: []string{"all nodes down"}},
		},
		{
			name:    "all down, first: the first node in order",
			cur:     Decision{Active: "b"},
			h:       map[string]health.State{"a": down("x"), "b": down("y"), "c": down("z")},
			allDown: AllDownFirst,
			want:    want{active: "a", reason: []string{"all nodes down", "first"}},
		},
		{
			name:    "all down, servfail",
			cur:     Decision{Active: "b"},
			h:       map[string]health.State{"a": down("x"), "b": down("y"), "c": down("z")},
			allDown: AllDownServfail,
			want:    want{servfail: true, reason: []string{"all nodes down", "servfail"}},
		},
		{
			name:    "all down, servfail, stays servfail",
			cur:     Decision{Servfail: true, Reason: "all nodes down: when_all_down = servfail"},
			h:       map[string]health.State{"a": down("x"), "b": down("y"), "c": unchecked},
			allDown: AllDownServfail,
			want:    want{servfail: true},
		},
		{
			name:    "after servfail, the first node up again",
			cur:     Decision{Servfail: true},
			h:       map[string]health.State{"a": down("x"), "b": up(0), "c": down("z")},
			allDown: AllDownServfail,
			want:    want{active: "b", reason: []string{"b is up after all nodes were down"}},
		},
		{
			name:     "after servfail, no hold-down applies",
			cur:      Decision{Servfail: true},
			h:        map[string]health.State{"a": up(time.Second), "b": up(0), "c": down("z")},
			failback: FailbackAuto,
			allDown:  AllDownServfail,
			want:     want{active: "a"},
		},
		{
			name:     "cur removed from order (reload): decided afresh",
			cur:      Decision{Active: "old", Reason: "first node up in order"},
			h:        map[string]health.State{"old": up(long), "a": up(time.Second), "b": up(long), "c": up(long)},
			failback: FailbackAuto,
			want:     want{active: "a", reason: []string{"first node up in order"}},
		},
		{
			name:    "cur removed from order, all down, keep: not the removed node",
			cur:     Decision{Active: "old"},
			h:       map[string]health.State{"old": up(long), "a": down("x"), "b": down("y"), "c": down("z")},
			allDown: AllDownKeep,
			want:    want{active: "a", reason: []string{"all nodes down"}},
		},
		{
			name:  "a one-node order",
			order: []string{"c"},
			cur:   Decision{Active: "a"},
			h:     map[string]health.State{"a": up(long), "c": up(long)},
			want:  want{active: "c"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.order
			if o == nil {
				o = order
			}
			failback := tc.failback
			if failback == "" {
				failback = FailbackAuto
			}
			allDown := tc.allDown
			if allDown == "" {
				allDown = AllDownKeep
			}
			d, next := decide(o, tc.cur, tc.h, now, failback, after, allDown)
			if d.Active != tc.want.active || d.Servfail != tc.want.servfail {
				t.Errorf("decision = {Active: %q, Servfail: %v} (%s), want {Active: %q, Servfail: %v}",
					d.Active, d.Servfail, d.Reason, tc.want.active, tc.want.servfail)
			}
			if !next.Equal(tc.want.next) {
				t.Errorf("next = %v, want %v", fmtTime(next), fmtTime(tc.want.next))
			}
			if d.Reason == "" {
				t.Errorf("empty reason: _status would not say why")
			}
			for _, w := range tc.want.reason {
				if !strings.Contains(d.Reason, w) {
					t.Errorf("reason %q does not say %q", d.Reason, w)
				}
			}
		})
	}
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "zero (nothing pending)"
	}
	return t.Format(time.RFC3339Nano)
}

// TestDecideDeterministic: the same inputs give the same decision, and the
// input order slice is not modified.
func TestDecideDeterministic(t *testing.T) {
	now := time.Now()
	order := []string{"a", "b"}
	h := map[string]health.State{
		"a": {Up: true, Checked: true, Since: now.Add(-time.Second)},
		"b": {Up: true, Checked: true, Since: now.Add(-time.Hour)},
	}
	cur := Decision{Active: "b", Reason: "a is down: connection refused"}
	d1, n1 := decide(order, cur, h, now, FailbackAuto, 5*time.Second, AllDownKeep)
	d2, n2 := decide(order, cur, h, now, FailbackAuto, 5*time.Second, AllDownKeep)
	if d1 != d2 || !n1.Equal(n2) {
		t.Errorf("decide is not deterministic: %+v %v vs %+v %v", d1, n1, d2, n2)
	}
	if order[0] != "a" || order[1] != "b" {
		t.Errorf("decide modified order: %v", order)
	}
	if !n1.Equal(now.Add(4 * time.Second)) {
		t.Errorf("next = %v, want now+4s", n1.Sub(now))
	}
}
