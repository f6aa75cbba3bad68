package dnsserver

import (
	"runtime/debug"
	"testing"
)

// gcNow reads the GC percent in force (SetGCPercent is the only reader).
func gcNow() int {
	v := debug.SetGCPercent(100)
	debug.SetGCPercent(v)
	return v
}

// TestGCHolds: loads and publishes hold the one GC percent at once; off
// wins while held, and whichever releases last puts back what was there.
func TestGCHolds(t *testing.T) {
	base := debug.SetGCPercent(150)
	defer debug.SetGCPercent(base)
	var g gcHolds
	load := g.hold(400)
	if got := gcNow(); got != 400 {
		t.Fatalf("a load held: GC percent %d, want 400", got)
	}
	pub := g.hold(-1)
	if got := gcNow(); got != -1 {
		t.Fatalf("a load and a publish held: GC percent %d, want -1 (off)", got)
	}
	load()
	load() // a release runs once
	if got := gcNow(); got != -1 {
		t.Fatalf("the load released, the publish held: GC percent %d, want -1", got)
	}
	load2 := g.hold(400)
	pub()
	if got := gcNow(); got != 400 {
		t.Fatalf("the publish released, a load held: GC percent %d, want 400", got)
	}
	load2()
	if got := gcNow(); got != 150 {
		t.Fatalf("all released: GC percent %d, want 150 as before", got)
	}
}

// TestHoldGCForPublish: only a recompute of PublishGCOff services or
// more turns the collector off.
func TestHoldGCForPublish(t *testing.T) {
	r := Runtime{PublishGCOff: 1000}
	if rel := r.holdGCForPublish(999); rel != nil {
		rel()
		t.Errorf("999 services: held, want not")
	}
	rel := r.holdGCForPublish(1000)
	if rel == nil {
		t.Fatal("1000 services: not held")
	}
	if got := gcNow(); got != -1 {
		t.Errorf("held: GC percent %d, want -1", got)
	}
	rel()
	if rel := (Runtime{}).holdGCForPublish(100000); rel != nil {
		rel()
		t.Errorf("PublishGCOff 0: held, want never")
	}
}
