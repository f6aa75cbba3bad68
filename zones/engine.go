package zones

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/failoverdns/failoverdns/health"
	"github.com/failoverdns/failoverdns/zones/events"
)

// Decision is the active node of one (service, location) and why.
type Decision struct {
	Active   string // node answered; "" with Servfail
	Servfail bool
	Pinned   bool
	AllDown  bool // no node of the order is up: when_all_down decided
	// Local marks, in cluster mode, a decision this instance made alone
	// (cut off from etcd, or before the cluster decided the view).
	Local  bool
	Reason string
	// TTL, when not 0, replaces the service's TTL in answers: it counts
	// down to a scheduled switch (a pin's at= or until=), so resolvers'
	// caches have expired when it happens.
	TTL uint32
}

// decide picks the active node for one ordered list. It is a pure function
// of the order, the current active node, node health and the time, so every
// rule of README "Configuration" and "Failure behaviour" can be tested without a clock or sockets.
// next is when the answer may change with no health change (a failback
// hold-down ending); zero when nothing is pending.
func decide(order []string, cur Decision, h map[string]health.State, now time.Time, failback Failback, after time.Duration, allDown AllDown) (d Decision, next time.Time) {
	up := func(n string) bool { return nodeUp(h, n) }
	active := cur.Active
	if active != "" && !slices.Contains(order, active) {
		active = "" // the node left the order (reload): decide afresh
	}
	if active != "" && up(active) {
		if failback == FailbackAuto {
			for _, n := range order {
				if n == active {
					break
				}
				if !up(n) {
					continue
				}
				ready := h[n].Since.Add(after)
				if !now.Before(ready) {
					return Decision{Active: n, Reason: fmt.Sprintf("failback: %s has been up since %s (failback_after %s)", n, h[n].Since.UTC().Format(time.RFC3339), after)}, next
				}
				if next.IsZero() || ready.Before(next) {
					next = ready
				}
			}
		}
		reason := cur.Reason
		if cur.Active != active || reason == "" {
			reason = active + " is up"
		}
		return Decision{Active: active, Reason: reason}, next
	}
	for _, n := range order {
		if up(n) {
			switch {
			case active == "" && cur.Servfail:
				return Decision{Active: n, Reason: n + " is up after all nodes were down"}, time.Time{}
			case active == "":
				return Decision{Active: n, Reason: "first node up in order"}, time.Time{}
			default:
				return Decision{Active: n, Reason: fmt.Sprintf("%s is down: %s", active, h[active].Last.Err)}, time.Time{}
			}
		}
	}
	switch {
	case allDown == AllDownServfail:
		return Decision{Servfail: true, AllDown: true, Reason: "all nodes down: when_all_down = servfail"}, time.Time{}
	case allDown == AllDownKeep && active != "":
		return Decision{Active: active, AllDown: true, Reason: "all nodes down: keeping the last active node (when_all_down = keep)"}, time.Time{}
	default:
		return Decision{Active: order[0], AllDown: true, Reason: "all nodes down: answering the first node in order (when_all_down = " + string(allDown) + ")"}, time.Time{}
	}
}

// Engine recomputes active nodes when health changes or a hold-down ends,
// and publishes a new snapshot with the answers precomputed. It is the only
// writer; queries only ever read what it published.
type Engine struct {
	// The collaborators of EngineOptions, fixed at construction.
	health         func() map[string]health.State
	onActiveChange func(service, location string)
	onPinChange    func(action string)
	onEvent        func(events.Event)
	onRecompute    func(took time.Duration)
	holdGC         func(services int) (release func())

	log     *slog.Logger
	publish func(*Snapshot)
	kick    chan struct{} // health changed: recompute
	wake    chan struct{} // a deadline changed: only re-arm the timer

	mu   sync.Mutex
	base *Snapshot
	// cur is every service's views as last decided, by Service.index:
	// the states the last snapshot shares (a nil entry: not decided).
	cur  []*svcState
	next time.Time
	// Incremental recomputes (recompute): the last published snapshot,
	// the health it was decided from, each service's next deadline and
	// the services each node's health feeds.
	last    *Snapshot
	lastH   map[string]health.State
	due     deadlines
	byNode  map[string][]int
	pins    map[PinKey]Pin        // dynamic pins (UPDATE), as saved in store
	active  map[PinKey]Pin        // those that apply to the config in force
	dormant map[PinKey]DormantPin // the others: kept until deleted
	store   PinSaver
	// agreed is, in cluster mode, what the cluster decided (nil: this
	// engine decides alone). writePins then commits pin changes to the
	// cluster instead of store.
	agreed    *Agreed
	writePins func(change func(cur map[PinKey]Pin) (map[PinKey]Pin, error)) error

	// changes are the views whose answer the recompute changed, logged
	// and counted once the snapshot is out; deciders decide the services.
	changes  []viewChange
	deciders []*decider
	workers  int // deciders at most (EngineOptions.DecideWorkers)
	ran      int // deciders the last decideAll ran
	// parallelMin is parallelMin but in tests, which lower it to run
	// small configs on several deciders.
	parallelMin int
	marked      []bool // by service index: scratch of recompute
	todo        []int  // the services a recompute decides: its list, reused

	allDown, allDownSeen bool        // every node down (logged once per episode)
	isolated             bool        // the anchors' verdict on the prober (logged once per episode)
	logged               int         // view changes logged in this recompute
	holding              atomic.Bool // node falls held for an anchor's answer
}

// EngineOptions are an Engine's collaborators, passed at construction
// (NewEngineWith). The hooks run under the engine's lock: they must be
// cheap, must not block and must not call back into the engine.
type EngineOptions struct {
	Logger  *slog.Logger    // nil: logs are discarded
	Publish func(*Snapshot) // each new snapshot goes here
	// Health returns node states: what every recompute decides from.
	Health func() map[string]health.State
	// OnActiveChange and OnPinChange are told of every change (for
	// metrics).
	OnActiveChange func(service, location string)
	OnPinChange    func(action string)
	// OnEvent is told of every change the logs report, as a typed event
	// (the event history).
	OnEvent func(events.Event)
	// OnRecompute is told how long each recompute took, publish included
	// (for metrics).
	OnRecompute func(took time.Duration)
	// HoldGC, when it returns a release, holds the collector off while
	// a recompute deciding services services makes and publishes its
	// snapshot (dnsserver's Runtime.PublishGCOff); nil: never.
	HoldGC func(services int) (release func())
	// DecideWorkers is how many deciders a recompute of parallelMin
	// services or more runs side by side (the CPUs the process may
	// use); 0 or 1: one.
	DecideWorkers int
}

// NewEngineWith returns an engine over base (a snapshot from Load) with
// o's collaborators.
func NewEngineWith(base *Snapshot, o EngineOptions) *Engine {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		health:         o.Health,
		onActiveChange: o.OnActiveChange,
		onPinChange:    o.OnPinChange,
		onEvent:        o.OnEvent,
		onRecompute:    o.OnRecompute,
		holdGC:         o.HoldGC,
		workers:        o.DecideWorkers,
		parallelMin:    parallelMin,
		log:            o.Logger,
		publish:        o.Publish,
		kick:           make(chan struct{}, 1),
		wake:           make(chan struct{}, 1),
		base:           base.built(),
		cur:            make([]*svcState, len(base.Services)),
		pins:           map[PinKey]Pin{},
		active:         map[PinKey]Pin{},
	}
	e.indexNodes()
	return e
}

// PinSaver keeps dynamic pins durable: *PinStore in state_dir, or, for a
// cluster leader, etcd.
type PinSaver interface {
	Save(pins map[PinKey]Pin) error
}

// SetPins installs the pin store and the dynamic pins loaded from it.
func (e *Engine) SetPins(store PinSaver, pins map[PinKey]Pin) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.store = store
	e.pins = maps.Clone(pins)
	if e.pins == nil {
		e.pins = map[PinKey]Pin{}
	}
	e.refreshActive(true)
}

// refreshActive recomputes which dynamic pins apply to the config in force.
// A pin whose service, location or node the config no longer has is kept,
// dormant, in memory and on disk: restart and reload then agree, and the
// pin applies again if the config brings its node back. Only an UPDATE
// deleting it, or its until=, removes it.
func (e *Engine) refreshActive(logDormant bool) {
	e.active = make(map[PinKey]Pin, len(e.pins))
	e.dormant = map[PinKey]DormantPin{}
	for k, p := range e.pins {
		err := e.pinApplies(k, p)
		if err == nil {
			e.active[k] = p
			continue
		}
		e.dormant[k] = DormantPin{Pin: p, Why: err.Error()}
		if logDormant {
			e.log.Warn("pin kept but not applied: the config no longer matches it", "pin", k.Name(), "node", p.Node, "key", p.Key, "from", p.From, "err", err)
		}
	}
}

func (e *Engine) pinApplies(k PinKey, p Pin) error {
	if _, ok := e.base.PinKeyOf(k.Name()); !ok {
		return errors.New("no such service or location in the config")
	}
	return e.base.CheckPin(k, p)
}

// Pins returns a copy of the dynamic pins.
func (e *Engine) Pins() map[PinKey]Pin {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.pins)
}

// UpdatePins changes the dynamic pins atomically: change gets a copy of the
// current pins and returns the new set. The new set is saved durably before
// it takes effect; if saving fails nothing changes and the error is
// returned. Every change is logged.
func (e *Engine) UpdatePins(change func(cur map[PinKey]Pin) (map[PinKey]Pin, error)) error {
	return e.UpdatePinsAs("", "", change)
}

// UpdatePinsAs is UpdatePins for a change made with TSIG key from source
// from, which the log lines of pins it removes name (a pin set carries its
// own).
func (e *Engine) UpdatePinsAs(key, from string, change func(cur map[PinKey]Pin) (map[PinKey]Pin, error)) error {
	if e.writePins != nil {
		// Cluster mode: the change is committed to the cluster and comes
		// back through SetAgreed like every other instance's; nothing is
		// applied here first.
		return e.writePins(change)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	cur := maps.Clone(e.pins)
	if cur == nil {
		cur = map[PinKey]Pin{}
	}
	next, err := change(cur)
	if err != nil {
		return err
	}
	if e.store == nil {
		return errors.New("no state_dir: dynamic pins are disabled")
	}
	if err := e.store.Save(next); err != nil {
		return err
	}
	e.logPinChangesBy(e.pins, next, "update", key, from)
	dirty := map[int]bool{}
	e.markPinChanges(dirty, e.pins, next)
	e.pins = next
	e.refreshActive(false)
	e.recompute(dirty, false)
	e.rearm() // Run sleeps until the old deadline: make it see a new until=
	return nil
}

func (e *Engine) logPinChanges(old, next map[PinKey]Pin, why string) {
	e.logPinChangesBy(old, next, why, "", "")
}

// logPinChangesBy logs every pin set or removed with the TSIG key and the
// source address behind it: a set names the pin's own; a removal names
// key and from when given (an UPDATE's), else the removed pin's (an until=
// it carried, or a change committed by another cluster member).
func (e *Engine) logPinChangesBy(old, next map[PinKey]Pin, why, key, from string) {
	count := func(action string) {
		if e.onPinChange != nil {
			e.onPinChange(action)
		}
	}
	for k, p := range next {
		if o, ok := old[k]; !ok || o != p {
			count("set")
			attrs := []any{"pin", k.Name(), "new", p.Text(), "key", p.Key, "from", p.From, "reason", why}
			if ok {
				attrs = append(attrs, "old", o.Text())
			}
			e.log.Warn("pin set", attrs...)
			e.pinEvent(k, events.ActionSet, o.Text(), p, why)
		}
	}
	for k, o := range old {
		if _, ok := next[k]; !ok {
			action := events.ActionRemoved
			if why == "until passed" {
				action = events.ActionLapsed
			}
			count(string(action))
			k2, f2 := key, from
			if k2 == "" && f2 == "" {
				k2, f2 = o.Key, o.From
			}
			e.log.Warn("pin removed", "pin", k.Name(), "old", o.Text(), "key", k2, "from", f2, "reason", why)
			e.pinEvent(k, action, o.Text(), Pin{Key: k2, From: f2}, why)
		}
	}
}

// ramp is the TTL a view answers with ahead of a scheduled switch (a pin
// that takes effect at at=, or lapses at until=), and when to look again:
// from ttl seconds before the switch, TTL = seconds left (at least 1), so
// no cache holds the old answer past the switch (issue "Planned changes").
// 0 means the service's own TTL.
func (e *Engine) ramp(svc *Service, loc int, now time.Time) (uint32, time.Time) {
	var at time.Time
	consider := func(p Pin, ok bool) {
		if !ok {
			return
		}
		for _, t := range []time.Time{p.Start, p.Until} {
			if t.After(now) && (at.IsZero() || t.Before(at)) {
				at = t
			}
		}
	}
	keys := []PinKey{{Service: svc.Name}}
	if loc > 0 {
		keys = append(keys, PinKey{svc.Name, e.base.LocationName(loc)})
	}
	for _, k := range keys {
		p, ok := e.active[k]
		consider(p, ok)
		p, ok = e.base.staticPins[k]
		consider(p, ok)
	}
	if at.IsZero() {
		return 0, time.Time{}
	}
	ttl := time.Duration(*svc.Config.TTL) * time.Second
	left := at.Sub(now)
	if left > ttl {
		return 0, at.Add(-ttl) // the ramp starts then
	}
	// Whole seconds left, rounded down: a recompute that runs late (a
	// loaded machine) then serves a TTL that still ends by the switch
	// or overshoots it by only the delay, where rounding up would add a
	// second. The last second answers 1 (a TTL is never 0).
	secs := uint32(left / time.Second)
	if secs == 0 {
		return 1, now.Add(left) // until the switch itself
	}
	// Look again when the count drops by one.
	return secs, now.Add(left - time.Duration(secs)*time.Second)
}

// pinFor returns the pin in force for a service's view (PinOf).
func (e *Engine) pinFor(svc string, loc int, now time.Time) (Pin, bool) {
	location := ""
	if loc > 0 {
		location = e.base.LocationName(loc)
	}
	p, _, _, ok := PinOf(e.active, e.base.staticPins, svc, location, now)
	return p, ok
}

// lapsePins drops dynamic pins whose until has passed, saving the result so
// the state file never brings a lapsed pin back.
func (e *Engine) lapsePins(now time.Time) []PinKey {
	var lapsed []PinKey
	for k, p := range e.pins {
		if p.Lapsed(now) {
			lapsed = append(lapsed, k)
		}
	}
	if len(lapsed) == 0 {
		return nil
	}
	next := maps.Clone(e.pins)
	for _, k := range lapsed {
		delete(next, k)
	}
	if e.store != nil {
		if err := e.store.Save(next); err != nil {
			// The pin is out of force either way (Active checks the time);
			// the next save retries.
			e.log.Error("saving pins after a pin lapsed", "err", err)
		}
	}
	e.logPinChanges(e.pins, next, "until passed")
	e.pins = next
	e.refreshActive(false)
	return lapsed
}

// Kick asks for a recompute soon. It never blocks, so the prober can call it
// from its own goroutine; bursts collapse into one recompute.
func (e *Engine) Kick() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// rearm tells Run the next deadline may have moved; it recomputes nothing.
func (e *Engine) rearm() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// SetBase replaces the static part (config and zones) after a reload.
// Decisions for services and locations that still exist carry over.
func (e *Engine) SetBase(base *Snapshot) *Snapshot { return e.Handover(base, nil) }

// Handover is SetBase for a reload that also changes the node set: install
// (which swaps what Health returns, e.g. Prober.Install) runs under the
// engine's lock, right before base is swapped in. No decision is ever made
// from one config's node names and the other's health: a recompute (a
// prober kick, an UPDATE, a hold-down) sees both old or both new.
func (e *Engine) Handover(base *Snapshot, install func()) *Snapshot {
	e.mu.Lock()
	defer e.mu.Unlock()
	if install != nil {
		install()
	}
	// Location indexes may move when locations are added or reordered:
	// carry decisions over by name.
	carried := make(map[PinKey]Decision, len(e.cur))
	for _, svc := range e.base.Services {
		if st := e.cur[svc.index]; st != nil {
			for loc, d := range st.decided {
				if st.has[loc] {
					carried[e.base.viewKey(svc, loc)] = d
				}
			}
		}
	}
	e.base = base.built()
	e.cur = make([]*svcState, len(base.Services))
	e.seed(carried)
	e.indexNodes()
	e.refreshActive(true)
	snap := e.recomputeLocked()
	e.rearm()
	return snap
}

// Recompute decides every (service, location) now and publishes the result.
func (e *Engine) Recompute() *Snapshot {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.recomputeLocked()
}

func (e *Engine) recomputeLocked() *Snapshot { return e.recompute(nil, true) }

// recompute decides the services marked in dirty (every service with all),
// plus those using a node whose health changed since the last recompute and
// those whose deadline (a hold-down, a pin's at= or until=, a TTL
// countdown, a local failover) has come, and publishes a snapshot that
// shares every other service's answers with the last one: a change costs
// what it touches, not the size of the config.
func (e *Engine) recompute(dirty map[int]bool, all bool) *Snapshot {
	now := time.Now()
	if dirty == nil {
		dirty = map[int]bool{}
	}
	if e.agreed == nil {
		// In cluster mode the leader lapses pins, in etcd; pinFor
		// already ignores a lapsed one until its deletion arrives.
		for _, k := range e.lapsePins(now) {
			e.markPin(dirty, k)
		}
	}
	h, iso := e.guarded()
	e.noteIsolation(iso)
	all = all || e.last == nil
	var todo []int
	if all {
		todo = make([]int, len(e.base.Services))
		for i := range todo {
			todo[i] = i
		}
		e.due.reset(len(e.base.Services))
	} else {
		// A set of service indexes as a slice and marks: a node
		// shared by 100,000 services adds them without a map.
		if len(e.marked) != len(e.base.Services) {
			e.marked = make([]bool, len(e.base.Services))
		}
		// The list too is the last recompute's, reused: grown from
		// nothing it was 2 MB of garbage a failover of 100,000.
		todo = e.todo[:0]
		add := func(i int) {
			if !e.marked[i] {
				e.marked[i] = true
				todo = append(todo, i)
			}
		}
		for i := range dirty {
			add(i)
		}
		for n := range changedNodes(e.lastH, h) {
			for _, i := range e.byNode[n] {
				add(i)
			}
		}
		e.due.due(now, add)
		for _, i := range todo {
			e.marked[i] = false
		}
		slices.Sort(todo)
		e.todo = todo
	}
	releaseGC := func() {}
	if e.holdGC != nil {
		if r := e.holdGC(len(todo)); r != nil {
			releaseGC = r
			defer r() // also when deciding panics (r runs once)
		}
	}
	changed := e.decideAll(todo, h, now, all)
	decided := len(todo)
	todo = changed
	e.lastH = h
	// One event for the case that usually means the prober itself is cut
	// off (its network, a firewall), rather than one per service.
	allDown := len(h) > 0
	for _, st := range h {
		if st.Checked && st.Up || !st.Checked {
			allDown = false
			break
		}
	}
	if allDown != e.allDown {
		if allDown {
			e.log.Error("every node fails its checks: if they cannot all be down at once, the prober may be cut off from them; answers follow each service's when_all_down", "nodes", len(h))
			e.emit(events.Event{Kind: events.KindAllDown, Action: events.ActionStart, Reason: fmt.Sprintf("every node (%d) fails its checks: the prober may be cut off from them", len(h))})
		} else if e.allDownSeen {
			e.log.Warn("nodes pass their checks again", "nodes", len(h))
			e.emit(events.Event{Kind: events.KindAllDown, Action: events.ActionEnd, Reason: "nodes pass their checks again"})
		}
		e.allDown = allDown
		e.allDownSeen = e.allDownSeen || allDown
	}
	e.next = e.due.first()
	prev := e.last
	if all {
		prev, todo = nil, nil
	}
	snap := e.base.derive(prev, todo, e.cur, h)
	snap.dynPins = maps.Clone(e.active)
	snap.dormantPins = maps.Clone(e.dormant)
	snap.cluster = e.agreed
	snap.isolation = iso
	e.last = snap
	e.publish(snap)
	releaseGC()
	published := time.Since(now)
	// The log lines, events and counters of the views that changed
	// follow the snapshot, so queries get the new answers first.
	e.gatherChanges()
	e.logged = 0
	for _, c := range e.changes {
		var old Decision
		if c.had {
			old = c.old.decided[c.loc]
		}
		e.logChange(c.svc, c.loc, old, c.cur.decided[c.loc], c.had, now)
	}
	if e.logged > maxChangeLines {
		e.log.Warn("and more views changed in the same recompute (not logged one by one; see /events and active_changes_total)", "views", e.logged-maxChangeLines)
	}
	took := time.Since(now)
	if len(e.changes) > 0 {
		// One line per recompute that changed answers: what a failover
		// cost the server, until queries got the new answers
		// (published_seconds) and in all (bench/scale.sh reads both).
		e.log.Info("recomputed", "services", decided, "views_changed", len(e.changes), "published_seconds", published.Seconds(), "seconds", took.Seconds())
	}
	clear(e.changes)
	e.changes = e.changes[:0]
	if cap(e.changes) > maxChangeLines {
		// A failover of 100,000 views grew it to 14 MB: kept, it would
		// weigh on every GC until the next one.
		e.changes = nil
	}
	if e.onRecompute != nil {
		e.onRecompute(took)
	}
	return snap
}

// decideService decides every view of one service into e.cur and records
// the service's next deadline in e.due. It reports whether the service's
// state changed: when no view's decision did, the old state (answers
// included) stays, except in a full recompute (all), which fills every
// state afresh. Deciders run side by side on services of their own
// (decideAll): what they share of the engine they only read, but for
// their own services' entries of e.cur and e.due.
func (dc *decider) decideService(svc *Service, h map[string]health.State, now time.Time, all bool) bool {
	e := dc.e
	var next time.Time
	old := e.cur[svc.index]
	// Decided into scratch first: most services of a recompute keep
	// their state, and those that do not get theirs from a slab.
	st := dc.scratchState(len(svc.Orders))
	nch := len(dc.changes)
	// Without pins (the common case) no view is pinned or ramps a TTL:
	// skip looking.
	pins := len(e.active) > 0 || len(e.base.staticPins) > 0
	for loc, order := range svc.Orders {
		var prev Decision
		had := false
		if old != nil {
			prev, had = old.decided[loc], old.has[loc]
		}
		var pin Pin
		pinned := false
		if pins {
			pin, pinned = e.pinFor(svc.Name, loc, now)
		}
		var d Decision
		var n time.Time
		agreed, isAgreed := e.agreedView(svc.Name, loc)
		switch {
		case isAgreed:
			d, n = e.clusterView(svc, agreed, prev, svc.OrderOf(loc), pin, pinned, h, now)
		case order == nil && (!pinned || loc == 0):
			continue // this location follows the default view
		default:
			if pinned {
				d, n = decideView(svc, svc.OrderOf(loc), prev, pin, pinned, h, now)
			} else {
				d, n = dc.decideMemo(svc, svc.OrderOf(loc), prev, h, now)
			}
			if e.agreed != nil {
				d.Local = true
				d.Reason = "local decision (no cluster decision for this view yet): " + d.Reason
			}
		}
		var rn time.Time
		if pins {
			d.TTL, rn = e.ramp(svc, loc, now)
		}
		st.decided[loc], st.has[loc] = d, true
		for _, n := range []time.Time{n, rn} {
			if !n.IsZero() && (next.IsZero() || n.Before(next)) {
				next = n
			}
		}
		if !had || prev.Active != d.Active || prev.Servfail != d.Servfail {
			if dc.changes == nil {
				// Sized once for the usual view per service, rather
				// than grown by copies.
				dc.changes = make([]viewChange, 0, dc.hint)
			}
			dc.changes = append(dc.changes, viewChange{svc: svc, old: old, loc: loc, had: had}) // cur: below
		}
		if had && prev.AllDown != d.AllDown {
			dc.allDown = append(dc.allDown, allDownChange{svc, loc, d})
		}
	}
	dc.dueDelta += e.due.put(svc.index, next)
	if !all && old != nil && slices.Equal(old.decided, st.decided) && slices.Equal(old.has, st.has) {
		dc.changes = dc.changes[:nch] // none: equal decisions
		return false                  // the same answers: the snapshot keeps sharing them
	}
	kept := dc.slab.state(len(st.decided))
	copy(kept.decided, st.decided)
	copy(kept.has, st.has)
	svc.fillAnswers(kept)
	e.cur[svc.index] = kept
	for i := nch; i < len(dc.changes); i++ {
		dc.changes[i].cur = kept
	}
	return true
}

// scratchState returns the decider's scratch state, cleared, for nloc
// views.
func (dc *decider) scratchState(nloc int) *svcState {
	if dc.scratch == nil || len(dc.scratch.decided) != nloc {
		dc.scratch = newSvcState(nloc)
	}
	clear(dc.scratch.decided)
	clear(dc.scratch.has)
	clear(dc.scratch.sets)
	return dc.scratch
}

// stateSlab hands out the states of services without locations from
// chunks: a failover of 100,000 services makes 100,000 states, and one
// allocation each was a third of the time to publish it. A chunk lives
// while any of its states does; services that change together (one
// node's) are mostly replaced together, so few chunks linger.
type stateSlab struct{ chunk []oneViewState }

type oneViewState struct {
	svcState
	d [1]Decision
	h [1]bool
	s [1]answerSet
}

const slabChunk = 32

func (sl *stateSlab) state(nloc int) *svcState {
	if nloc != 1 {
		return newSvcState(nloc)
	}
	if len(sl.chunk) == 0 {
		sl.chunk = make([]oneViewState, slabChunk)
	}
	b := &sl.chunk[0]
	sl.chunk = sl.chunk[1:]
	b.decided, b.has, b.sets = b.d[:], b.h[:], b.s[:]
	return &b.svcState
}

// viewChange is a view whose answer a recompute changed (logChange's
// arguments): the service's states before and after, which are never
// changed once made, rather than copies of two decisions (a failover of
// 100,000 views lists them all).
type viewChange struct {
	svc      *Service
	old, cur *svcState
	loc      int
	had      bool
}

// memoKey is everything decide reads of an unpinned view but health and
// the time, which one recompute shares: views with equal keys (tenants of
// one cluster, with the same order and policy and the same history) get
// the same decision. Orders with the same nodes share one slice
// (bindServices), so the first element's address names the order.
type memoKey struct {
	order    *string
	n        int
	prev     Decision
	failback string
	after    time.Duration
	allDown  string
}

type memoVal struct {
	d    Decision
	next time.Time
}

type memoEntry struct {
	k memoKey
	v memoVal
}

// decideMemo is decideView for an unpinned view, decided once per
// recompute for all views with the same inputs: a node shared by 100,000
// services makes one decision, not 100,000.
func (dc *decider) decideMemo(svc *Service, order []string, prev Decision, h map[string]health.State, now time.Time) (Decision, time.Time) {
	if len(order) == 0 {
		return decideView(svc, order, prev, Pin{}, false, h, now)
	}
	c := svc.Config
	k := memoKey{&order[0], len(order), prev, string(c.Failback), c.FailbackAfter.Duration, string(c.WhenAllDown)}
	// Consecutive services nearly always share their inputs: comparing
	// with the last key (equal strings share their bytes) is cheaper
	// than hashing the key, reason included.
	if dc.memoHas && dc.memoLast.k == k {
		return dc.memoLast.v.d, dc.memoLast.v.next
	}
	v, ok := dc.memo[k]
	if !ok {
		d, n := decideView(svc, order, prev, Pin{}, false, h, now)
		v = memoVal{d, n}
		dc.memo[k] = v
	}
	dc.memoLast, dc.memoHas = memoEntry{k, v}, true
	return v.d, v.next
}

// seed installs decisions to start from (carried over a reload, or a new
// cluster leader's adopted ones); the next recompute decides from them.
func (e *Engine) seed(ds map[PinKey]Decision) {
	for k, d := range ds {
		svc := e.base.byService[k.Service]
		if svc == nil {
			continue
		}
		loc := 0
		if k.Location != "" {
			if loc = e.base.LocationIndex(k.Location); loc < 1 {
				continue
			}
		}
		st := newSvcState(e.base.LocationCount())
		if old := e.cur[svc.index]; old != nil {
			// A published state is never changed: copy it.
			copy(st.decided, old.decided)
			copy(st.has, old.has)
		}
		st.decided[loc], st.has[loc] = d, true
		svc.fillAnswers(st) // a state is always complete: recompute may keep it
		e.cur[svc.index] = st
	}
}

// changedNodes are the nodes whose state differs between two health maps
// in what decisions read (up, checked, since), or that one of them lacks.
func changedNodes(old, cur map[string]health.State) map[string]bool {
	out := map[string]bool{}
	for n, s := range cur {
		if o, ok := old[n]; !ok || o.Up != s.Up || o.Checked != s.Checked || !o.Since.Equal(s.Since) {
			out[n] = true
		}
	}
	for n := range old {
		if _, ok := cur[n]; !ok {
			out[n] = true
		}
	}
	return out
}

// markPin marks the service a pin key names.
func (e *Engine) markPin(dirty map[int]bool, k PinKey) {
	if svc := e.base.byService[k.Service]; svc != nil {
		dirty[svc.index] = true
	}
}

// markPinChanges marks the services whose pins differ between two sets.
func (e *Engine) markPinChanges(dirty map[int]bool, old, cur map[PinKey]Pin) {
	for k, p := range cur {
		if o, ok := old[k]; !ok || o != p {
			e.markPin(dirty, k)
		}
	}
	for k := range old {
		if _, ok := cur[k]; !ok {
			e.markPin(dirty, k)
		}
	}
}

// indexNodes maps each node to the services that use it, so a health
// change recomputes only those.
func (e *Engine) indexNodes() {
	e.byNode = map[string][]int{}
	for _, svc := range e.base.Services {
		for _, n := range svc.Config.Nodes {
			e.byNode[n] = append(e.byNode[n], svc.index)
		}
	}
}

// decideView is the decision of one view from health alone, pins
// included: the one rule every engine (alone, cluster leader, cut-off
// member) runs. prev is the view's decision so far.
func decideView(svc *Service, order []string, prev Decision, pin Pin, pinned bool, h map[string]health.State, now time.Time) (Decision, time.Time) {
	var d Decision
	var n time.Time
	if pinned && (pin.Force || nodeUp(h, pin.Node)) {
		d = Decision{Active: pin.Node, Pinned: true, Reason: pinReason(pin)}
	} else {
		from := prev
		if prev.Pinned && !pinned {
			// The operator unpinned: answer what health alone gives
			// now, not the node the pin left behind.
			from = Decision{}
		}
		d, n = decide(order, from, h, now, svc.Config.Failback, svc.Config.FailbackAfter.Duration, svc.Config.WhenAllDown)
		if pinned {
			d.Reason = fmt.Sprintf("pinned node %s is down; %s", pin.Node, d.Reason)
		}
	}
	if pinned && !pin.Until.IsZero() && (n.IsZero() || pin.Until.Before(n)) {
		n = pin.Until
	}
	return d, n
}

// guarded is the node health the engine decides from: the prober's, with
// node falls held while the anchors say the prober itself is cut off.
func (e *Engine) guarded() (map[string]health.State, health.Isolation) {
	if e.health == nil {
		return nil, health.Isolation{}
	}
	return guard(e.health())
}

// Guarded is guarded for others (a cluster member publishing what this
// prober sees): the same states the engine decides from.
func (e *Engine) Guarded() (map[string]health.State, health.Isolation) { return e.guarded() }

// noteIsolation logs the start and end of a prober isolation, once each.
func (e *Engine) noteIsolation(iso health.Isolation) {
	if iso.Isolated != e.isolated {
		if iso.Isolated {
			e.log.Error("prober isolated: every anchor fails as well as the nodes; node falls since an anchor last answered are held, and no answer changes until one answers again",
				"anchor_ok", iso.AnchorOK.UTC().Format(time.RFC3339), "err", iso.Err, "held", iso.Held)
			e.emit(events.Event{Kind: events.KindIsolated, Action: events.ActionStart, Error: iso.Err, Reason: "every anchor fails as well as the nodes: node falls are held, no answer changes"})
		} else {
			e.log.Warn("prober no longer isolated: an anchor answers; node states are judged as probed again")
			e.emit(events.Event{Kind: events.KindIsolated, Action: events.ActionEnd, Reason: "an anchor answers again"})
		}
		e.isolated = iso.Isolated
	}
	e.holding.Store(len(iso.Held) > 0)
}

// Holding reports whether node falls are held waiting for an anchor to
// answer: the caller kicks the engine when one does (an anchor's success
// that changes no state is no prober event).
func (e *Engine) Holding() bool { return e.holding.Load() }

func answerName(x Decision) string {
	if x.Servfail {
		return "SERVFAIL"
	}
	return x.Active
}

// logChange records one view's change, decided at the recompute's time
// at: every view one recompute changes has the same time, and the history
// keeps a start's 100,000 first decisions as one (events.Log.Add).
func (e *Engine) logChange(svc *Service, loc int, old, d Decision, had bool, at time.Time) {
	name := answerName
	ev := events.Event{Kind: events.KindActive, Service: svc.Name, Location: e.base.LocationName(loc), New: name(d), Reason: d.Reason, Time: at}
	if had {
		ev.Old = name(old)
	}
	e.emit(ev) // Old "": the view's first decision
	e.logged++
	if had {
		if e.onActiveChange != nil {
			e.onActiveChange(svc.Name, e.base.LocationName(loc))
		}
	}
	if e.logged > maxChangeLines {
		return // summarised at the end of the recompute
	}
	attrs := []any{"service", svc.Name, "location", e.base.LocationName(loc), "new", name(d), "reason", d.Reason}
	if had {
		attrs = append(attrs, "old", name(old))
		e.log.Warn("active node changed", attrs...)
		return
	}
	e.log.Info("active node", attrs...)
}

// maxChangeLines bounds the per-view log lines of one recompute: a node
// shared by 100,000 services must not write 100,000 lines (30 MB) per
// failover. The rest are counted in one line, and each is still counted
// in active_changes_total and recorded in the event history.
const maxChangeLines = 100

func nodeUp(h map[string]health.State, n string) bool {
	s, ok := h[n]
	return ok && s.Checked && s.Up
}

func pinReason(p Pin) string {
	r := "pinned to " + p.Text()
	switch {
	case p.Static:
		r += " (zone file)"
	case p.Key != "":
		r += " by key " + p.Key + " from " + p.From
	}
	return r
}

// Run recomputes on every Kick and when a failback hold-down ends, until ctx
// is done.
func (e *Engine) Run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		e.mu.Lock()
		next := e.next
		e.mu.Unlock()
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
			continue // the deadline moved: re-arm the timer
		case <-e.kick:
		case <-timer.C:
		}
		e.mu.Lock()
		e.recompute(nil, false)
		e.mu.Unlock()
	}
}
