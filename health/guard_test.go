package health

import (
	"slices"
	"testing"
	"time"
)

func TestGuard(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	anchor := func(lastOK time.Time, up bool) State {
		st := State{Up: up, Checked: true, LastOK: lastOK, Last: Result{OK: up, At: lastOK}}
		if !up {
			st.Last = Result{Err: "connect: connection refused", At: lastOK.Add(time.Second)}
		}
		return st
	}
	nodeDown := func(since time.Time) State {
		return State{Checked: true, Since: since, Last: Result{Err: "connect: connection refused"}}
	}
	up := State{Up: true, Checked: true, Since: t0.Add(-time.Hour)}
	nodes := map[string]State{"sems1": nodeDown(t0.Add(2 * time.Second)), "sems2": nodeDown(t0.Add(-time.Minute)), "sems3": up}
	cases := []struct {
		name     string
		anchors  map[string]State
		isolated bool
		held     []string
	}{
		{name: "no anchors: as probed"},
		{name: "an anchor answered after the fall: a real fall", anchors: map[string]State{"a": anchor(t0.Add(3*time.Second), true), "b": anchor(t0, false)}},
		{name: "no anchor answered since the fall yet: held until one does", anchors: map[string]State{"a": anchor(t0, true), "b": anchor(t0.Add(-time.Second), true)},
			held: []string{"sems1"}},
		{name: "every anchor down: isolated, falls since held", anchors: map[string]State{"a": anchor(t0, false), "b": anchor(t0, false)},
			isolated: true, held: []string{"sems1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, iso := Guard(nodes, c.anchors)
			if iso.Isolated != c.isolated || !slices.Equal(iso.Held, c.held) {
				t.Fatalf("isolation %+v; want isolated=%v held=%v", iso, c.isolated, c.held)
			}
			for name, st := range nodes {
				want := st.Up || slices.Contains(c.held, name)
				if got[name].Up != want {
					t.Errorf("%s up=%v, want %v", name, got[name].Up, want)
				}
			}
			// sems2 fell while the anchors answered: a real failure.
			if got["sems2"].Up {
				t.Error("sems2 fell while the anchors answered; it must stay down")
			}
		})
	}
}
