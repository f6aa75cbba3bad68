package zones

import (
	"maps"
	"slices"
	"time"

	"github.com/failoverdns/failoverdns/health"
)

// Agreed is what a cluster of instances agreed on (README "Running several
// nameservers"), as this
// instance last received it: the seam where cluster mode plugs into the
// engine. The engine answers from it instead of deciding alone, except
// where the failure contract lets it decide locally. It is immutable once
// handed to SetAgreed.
type Agreed struct {
	// Decisions per view (Location "" is the default view), with the
	// etcd revision that wrote each (its generation).
	Decisions map[PinKey]AgreedDecision
	// Health is the node health the leader derived from every live
	// instance's observations, with the votes behind it.
	Health map[string]AgreedHealth
	// Pins are the dynamic pins in etcd; they replace state_dir's.
	Pins map[PinKey]Pin
	// Revision is the etcd revision applied; Leader the leader's
	// instance name ("" while there is none).
	Revision int64
	Leader   string
	// Connected is true while this instance holds a live etcd session.
	// CutOffSince is when it lost it (or started without one).
	Connected   bool
	CutOffSince time.Time
	// LastBeat reads when this instance last received the leader's beat
	// (live: beats arrive every second and republish nothing).
	LastBeat func() time.Time
	// Problems are cluster-wide troubles worth an operator's look
	// (config mismatch between members, suspect observers), for _status.
	Problems []string
	// Cached is true when the state came from state_dir, not from etcd.
	Cached bool
}

// AgreedDecision is a decision with the etcd revision that wrote it.
type AgreedDecision struct {
	Decision
	Generation int64
	By         string    // the leader that wrote it
	At         time.Time // when
}

// AgreedHealth is a node's health as the cluster sees it.
type AgreedHealth struct {
	Up    bool
	Since time.Time
	Err   string
	Votes string // "2/3": observers that see it up / observers
}

// SetAgreed switches the engine to cluster mode (or feeds it the next
// agreed state) and republishes. Pins come from the cluster from now on.
func (e *Engine) SetAgreed(a *Agreed) {
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.agreed
	e.agreed = a
	dirty := map[int]bool{}
	all := old == nil || old.Connected != a.Connected || !old.CutOffSince.Equal(a.CutOffSince)
	if !all {
		for k, d := range a.Decisions {
			if od, ok := old.Decisions[k]; !ok || od != d {
				e.markPin(dirty, k)
			}
		}
		for k := range old.Decisions {
			if _, ok := a.Decisions[k]; !ok {
				e.markPin(dirty, k)
			}
		}
	}
	if !maps.Equal(e.pins, a.Pins) {
		e.logPinChanges(e.pins, a.Pins, "cluster")
		e.markPinChanges(dirty, e.pins, a.Pins)
		e.pins = maps.Clone(a.Pins)
		if e.pins == nil {
			e.pins = map[PinKey]Pin{}
		}
		e.refreshActive(false)
	}
	e.recompute(dirty, all)
	e.rearm()
}

// SetPinWriter routes UpdatePins to a cluster: w must commit the change
// (or fail) and never apply it locally. Set it before the engine runs.
func (e *Engine) SetPinWriter(w func(change func(cur map[PinKey]Pin) (map[PinKey]Pin, error)) error) {
	e.writePins = w
}

// Adopt seeds the decisions the engine starts from (a new cluster leader
// takes over its predecessor's), so the first recompute changes only what
// health and hold-downs say must change.
func (e *Engine) Adopt(ds map[PinKey]Decision) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seed(ds)
}

func (e *Engine) agreedView(svc string, loc int) (AgreedDecision, bool) {
	if e.agreed == nil {
		return AgreedDecision{}, false
	}
	k := PinKey{Service: svc}
	if loc > 0 {
		k.Location = e.base.LocationName(loc)
	}
	d, ok := e.agreed.Decisions[k]
	return d, ok
}

// clusterView is the answer of one view in cluster mode: the agreed
// decision, unless this instance is cut off from the cluster and its own
// prober has seen the agreed node down for local_failover_after
// (README "Running several nameservers": an instance is cut off): a dead node cannot hold
// sessions, so answering it to everyone would be worse than a split. The
// wait counts from the later of the node's fall and the cut-off, so a node
// the majority still saw up is not abandoned the instant the link drops.
func (e *Engine) clusterView(svc *Service, ad AgreedDecision, prev Decision, order []string, pin Pin, pinned bool, h map[string]health.State, now time.Time) (Decision, time.Time) {
	after := time.Duration(0)
	if cl := e.base.Config.Cluster; cl != nil {
		after = cl.LocalFailover()
	}
	if ad.Active != "" && !slices.Contains(svc.Config.Nodes, ad.Active) {
		// The leader's config differs from ours (a reload not yet
		// everywhere): answering a node this config does not give the
		// service would answer nothing. Decide alone, and say why.
		d, n := decideView(svc, order, prev, pin, pinned, h, now)
		d.Local = true
		d.Reason = "local decision (the cluster's decision names " + ad.Active + ", which this config does not give the service): " + d.Reason
		return d, n
	}
	if e.agreed.Connected || after == 0 {
		return ad.Decision, time.Time{}
	}
	local := func(from Decision) (Decision, time.Time) {
		d, n := decideView(svc, order, from, pin, pinned, h, now)
		d.Local = true
		d.Reason = "local decision (cluster unreachable since " + e.agreed.CutOffSince.UTC().Format(time.RFC3339) + "): " + d.Reason
		return d, n
	}
	if prev.Local {
		return local(prev) // already on our own: keep deciding until the cluster is back
	}
	if ad.Active == "" {
		return ad.Decision, time.Time{}
	}
	st, ok := h[ad.Active]
	if !ok || !st.Checked || st.Up {
		return ad.Decision, time.Time{}
	}
	ready := st.Since
	if e.agreed.CutOffSince.After(ready) {
		ready = e.agreed.CutOffSince
	}
	ready = ready.Add(after)
	if now.Before(ready) {
		return ad.Decision, ready
	}
	return local(ad.Decision)
}

// Decisions returns every decided view of the snapshot by name.
func (s *Snapshot) Decisions() map[PinKey]Decision {
	out := make(map[PinKey]Decision, len(s.Services))
	for _, svc := range s.Services {
		s.ViewDecisions(svc, func(k PinKey, d Decision) { out[k] = d })
	}
	return out
}

// ViewDecisions calls f with each decided view of one service.
func (s *Snapshot) ViewDecisions(svc *Service, f func(PinKey, Decision)) {
	st := s.states[svc.index]
	for loc, d := range st.decided {
		if !st.has[loc] {
			continue
		}
		k := PinKey{Service: svc.Name}
		if loc > 0 {
			k.Location = s.LocationName(loc)
		}
		f(k, d)
	}
}

// Cluster returns the agreed state the snapshot was computed from, nil
// outside cluster mode.
func (s *Snapshot) Cluster() *Agreed { return s.cluster }

// ReplacePins installs a new set of dynamic pins (a cluster leader's, from
// etcd) and recomputes; changes are not logged here, since every instance
// logs them as it applies them.
func (e *Engine) ReplacePins(pins map[PinKey]Pin) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if maps.Equal(e.pins, pins) {
		return
	}
	dirty := map[int]bool{}
	e.markPinChanges(dirty, e.pins, pins)
	e.pins = maps.Clone(pins)
	if e.pins == nil {
		e.pins = map[PinKey]Pin{}
	}
	e.refreshActive(false)
	e.recompute(dirty, false)
	e.rearm()
}
