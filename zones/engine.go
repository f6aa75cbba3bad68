package zones

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/failoverdns/failoverdns/health"
)

// Decision is the active node of one (service, location) and why.
type Decision struct {
	Active   string // node answered; "" with Servfail
	Servfail bool
	Reason   string
}

// decide picks the active node for one ordered list. It is a pure function
// of the order, the current active node, node health and the time, so every
// rule of DESIGN.md "Active node" can be tested without a clock or sockets.
// next is when the answer may change with no health change (a failback
// hold-down ending); zero when nothing is pending.
func decide(order []string, cur Decision, h map[string]health.State, now time.Time, failback string, after time.Duration, allDown string) (d Decision, next time.Time) {
	up := func(n string) bool { s, ok := h[n]; return ok && s.Checked && s.Up }
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
					return Decision{Active: n, Reason: fmt.Sprintf("failback: %s has been up since %s (failback_after %s)", n, h[n].Since.UTC().Format(time.RFC3339), after)}, time.Time{}
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
		return Decision{Servfail: true, Reason: "all nodes down: when_all_down = servfail"}, time.Time{}
	case allDown == AllDownKeep && active != "":
		return Decision{Active: active, Reason: "all nodes down: keeping the last active node (when_all_down = keep)"}, time.Time{}
	default:
		return Decision{Active: order[0], Reason: "all nodes down: answering the first node in order (when_all_down = " + allDown + ")"}, time.Time{}
	}
}

// Engine recomputes active nodes when health changes or a hold-down ends,
// and publishes a new snapshot with the answers precomputed. It is the only
// writer; queries only ever read what it published.
type Engine struct {
	// Health returns node states; set before the first Recompute.
	Health func() map[string]health.State

	log     *slog.Logger
	publish func(*Snapshot)
	kick    chan struct{}

	mu      sync.Mutex
	base    *Snapshot
	current map[decisionKey]Decision
	next    time.Time
}

type decisionKey struct {
	service  string
	location int
}

// NewEngine returns an engine over base (a snapshot from Load) that hands
// each new snapshot to publish.
func NewEngine(base *Snapshot, logger *slog.Logger, publish func(*Snapshot)) *Engine {
	return &Engine{
		log:     logger,
		publish: publish,
		kick:    make(chan struct{}, 1),
		base:    base,
		current: map[decisionKey]Decision{},
	}
}

// Kick asks for a recompute soon. It never blocks, so the prober can call it
// from its own goroutine; bursts collapse into one recompute.
func (e *Engine) Kick() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// SetBase replaces the static part (config and zones) after a reload.
// Decisions for services and locations that still exist carry over.
func (e *Engine) SetBase(base *Snapshot) {
	e.mu.Lock()
	e.base = base
	e.mu.Unlock()
	e.Recompute()
}

// Recompute decides every (service, location) now and publishes the result.
func (e *Engine) Recompute() *Snapshot {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	var h map[string]health.State
	if e.Health != nil {
		h = e.Health()
	}
	next := time.Time{}
	decided := make(map[decisionKey]Decision, len(e.current))
	for _, svc := range e.base.Services {
		for loc, order := range svc.Orders {
			if order == nil {
				continue
			}
			k := decisionKey{svc.Name, loc}
			prev, had := e.current[k]
			d, n := decide(order, prev, h, now, svc.Config.Failback, svc.Config.FailbackAfter.Duration, svc.Config.WhenAllDown)
			decided[k] = d
			if !n.IsZero() && (next.IsZero() || n.Before(next)) {
				next = n
			}
			if !had || prev.Active != d.Active || prev.Servfail != d.Servfail {
				e.logChange(svc, loc, prev, d, had)
			}
		}
	}
	e.current = decided
	e.next = next
	snap := e.base.withDecisions(decided, h)
	e.publish(snap)
	return snap
}

func (e *Engine) logChange(svc *Service, loc int, old, d Decision, had bool) {
	name := func(x Decision) string {
		if x.Servfail {
			return "SERVFAIL"
		}
		return x.Active
	}
	attrs := []any{"service", svc.Name, "location", e.base.LocationName(loc), "new", name(d), "reason", d.Reason}
	if had {
		attrs = append(attrs, "old", name(old))
		e.log.Warn("active node changed", attrs...)
		return
	}
	e.log.Info("active node", attrs...)
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
		case <-e.kick:
		case <-timer.C:
		}
		e.Recompute()
	}
}

// Decisions returns the decisions in force, for status output.
func (e *Engine) Decisions() map[string][]Decision {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string][]Decision{}
	for k, d := range e.current {
		s := out[k.service]
		for len(s) <= k.location {
			s = append(s, Decision{})
		}
		s[k.location] = d
		out[k.service] = s
	}
	return out
}
