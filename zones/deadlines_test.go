package zones

import (
	"testing"
	"time"
)

func TestDeadlines(t *testing.T) {
	var d deadlines
	set := func(i int, t time.Time) { d.n += d.put(i, t) }
	d.reset(4)
	now := d.epoch.Add(time.Minute)
	if !d.first().IsZero() {
		t.Fatalf("first of none = %v, want zero", d.first())
	}
	set(0, now.Add(time.Second))
	set(2, now)
	set(3, d.epoch.Add(-time.Hour)) // before the epoch: due at once
	set(1, now.Add(time.Second))
	set(1, time.Time{}) // cleared
	var got []int
	d.due(now, func(i int) { got = append(got, i) })
	if len(got) != 2 || got[0] != 2 || got[1] != 3 {
		t.Errorf("due at now = %v, want [2 3]", got)
	}
	if f := d.first(); !f.Equal(d.epoch) {
		t.Errorf("first = %v, want the epoch %v", f, d.epoch)
	}
	set(3, time.Time{})
	if f := d.first(); !f.Equal(now) {
		t.Errorf("first = %v, want %v", f, now)
	}
	if d.n != 2 {
		t.Errorf("n = %d, want 2", d.n)
	}
	d.reset(4)
	got = nil
	d.due(now.Add(time.Hour), func(i int) { got = append(got, i) })
	if len(got) != 0 || d.n != 0 || !d.first().IsZero() {
		t.Errorf("after reset: due %v, n %d, first %v; want none", got, d.n, d.first())
	}
}
