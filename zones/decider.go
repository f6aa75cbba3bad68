package zones

import (
	"sync"
	"time"

	"github.com/failoverdns/failoverdns/health"
)

// decider is the scratch of deciding a run of services (decideService):
// its own memo, change list, scratch state and slab, so that deciders can
// run side by side on their own services.
type decider struct {
	e *Engine
	// memo holds, during one recompute, the decision of every unpinned
	// view's inputs decided so far (decideMemo).
	memo     map[memoKey]memoVal
	memoLast memoEntry // the entry of memo used last, if memoHas
	memoHas  bool
	changes  []viewChange    // the views whose answer changed, in order
	hint     int             // the services it decides: changes' first size
	allDown  []allDownChange // views entering or leaving all-down, in order
	dueDelta int             // deadlines set minus cleared (deadlines.n)
	scratch  *svcState       // decideService's
	slab     stateSlab       // where decideService's kept states come from
	changed  []int           // the services whose state changed, in order
}

// allDownChange is a view that entered or left all-down, logged and
// emitted once the deciders are done, in the order of the services.
type allDownChange struct {
	svc *Service
	loc int
	d   Decision
}

// parallelMin is the fewest services a recompute decides on more than one
// decider: below it the goroutines cost more than they save. A failover
// of 100,000 services is memory-bound (each service's config, state and
// records are a few cache misses): two CPUs decide it in a little more
// than half the time, and its answers are out that much sooner.
const parallelMin = 16384

// decideAll decides the services todo (sorted), on up to e.workers
// deciders each taking a contiguous run, and returns those whose state
// changed, sorted. What the deciders report is gathered in the services'
// order, so the logs and events of a recompute read the same however it
// ran: all-down transitions and deadline counts here, the changed views
// after the publish (gatherChanges: 100,000 of them are megabytes to
// copy).
func (e *Engine) decideAll(todo []int, h map[string]health.State, now time.Time, all bool) []int {
	w := 1
	if lo := e.parallelMin; len(todo) >= lo && e.workers > 1 {
		// Each decider takes at least half of parallelMin services.
		w = min(e.workers, len(todo)/max(1, lo/2))
	}
	for len(e.deciders) < w {
		e.deciders = append(e.deciders, &decider{e: e, memo: map[memoKey]memoVal{}})
	}
	runs := e.deciders[:w]
	per := (len(todo) + w - 1) / w
	run := func(dc *decider, part []int) {
		clear(dc.memo)
		dc.memoHas = false
		dc.hint = len(part)
		dc.changed = make([]int, 0, len(part))
		for _, i := range part {
			if dc.decideService(e.base.Services[i], h, now, all) {
				dc.changed = append(dc.changed, i)
			}
		}
	}
	if w == 1 {
		run(runs[0], todo)
	} else {
		var wg sync.WaitGroup
		for k, dc := range runs {
			part := todo[min(k*per, len(todo)):min((k+1)*per, len(todo))]
			wg.Go(func() { run(dc, part) })
		}
		wg.Wait()
	}
	e.ran = w
	changed := runs[0].changed
	for k, dc := range runs {
		if k > 0 {
			changed = append(changed, dc.changed...)
		}
		dc.changed = nil
		e.due.n += dc.dueDelta
		dc.dueDelta = 0
		for _, c := range dc.allDown {
			loc := e.base.LocationName(c.loc)
			if c.d.AllDown {
				e.log.Error("all nodes of a service are down", "service", c.svc.Name, "location", loc, "answer", answerName(c.d), "reason", c.d.Reason)
			} else {
				e.log.Warn("a node of the service is up again", "service", c.svc.Name, "location", loc, "answer", answerName(c.d))
			}
			e.allDownEvent(c.svc.Name, loc, c.d)
		}
		clear(dc.allDown)
		dc.allDown = dc.allDown[:0]
	}
	return changed
}

// gatherChanges moves the views the last decideAll's deciders changed into
// e.changes, in the services' order.
func (e *Engine) gatherChanges() {
	for _, dc := range e.deciders[:e.ran] {
		if e.changes == nil && len(dc.changes) > 0 && e.ran == 1 {
			e.changes, dc.changes = dc.changes, nil // the one run's list, not a copy
		} else {
			e.changes = append(e.changes, dc.changes...)
			clear(dc.changes)
			dc.changes = dc.changes[:0]
		}
		if cap(dc.changes) > maxChangeLines {
			dc.changes = nil // see recompute: a failover's list is not kept
		}
	}
}
