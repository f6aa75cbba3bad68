package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/failoverdns/failoverdns/health"
	"github.com/failoverdns/failoverdns/zones"
)

// errDeposed ends a leader whose fenced write failed: another instance
// holds the election now.
var errDeposed = errors.New("no longer the leader: a fenced write was refused")

// campaign runs for leader for as long as the session lives, and leads
// when elected.
func (m *Member) campaign(ctx context.Context, s *concurrency.Session) {
	el := concurrency.NewElection(s, m.prefix+kLeader)
	if err := el.Campaign(ctx, m.cfg.Instance); err != nil {
		return
	}
	err := m.lead(ctx, el)
	if ctx.Err() == nil {
		m.log.Error("stopped leading the cluster", "err", err)
	}
	rctx, c := m.timeout(context.Background())
	_ = el.Resign(rctx)
	c()
}

// leader is the state of one term: the decisions it wrote, the health it
// derived, and a private engine that runs the same decision rules as a
// single instance does, over the cluster's votes and pins.
type leader struct {
	m     *Member
	fence clientv3.Cmp
	eng   *zones.Engine

	mu      sync.Mutex
	health  map[string]healthValue // what this term agreed, by node
	written map[zones.PinKey]decisionValue
	frozen  map[string]bool // services the members' configs disagree on
	base    *zones.Snapshot // the config health was last counted for
	latest  atomic.Pointer[zones.Snapshot]
	pub     chan struct{}
	// What write must send: the services changed since the last write
	// (or all), and the snapshot generation publish saw last.
	pending map[int]bool
	pendAll bool
	pubGen  uint64
}

// lead is one term. It beats at once and then every second; it changes
// nothing during the first session TTL (README "Running several nameservers", the leader dies: the
// dead leader's observations expire meanwhile and every live one is in),
// then adopts health and decisions as they are and decides from there.
func (m *Member) lead(ctx context.Context, el *concurrency.Election) error {
	m.leadMu.Lock()
	defer m.leadMu.Unlock()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	m.isLeader.Store(true)
	defer m.isLeader.Store(false)
	l := &leader{
		m:       m,
		fence:   clientv3.Compare(clientv3.CreateRevision(el.Key()), "=", el.Rev()),
		pub:     make(chan struct{}, 1),
		pending: map[int]bool{},
		pendAll: true,
	}
	m.log.Warn("elected cluster leader", "term", el.Rev())
	beat := time.NewTicker(time.Second)
	defer beat.Stop()
	if err := l.beat(ctx); err != nil {
		return err
	}
	settle := time.NewTimer(m.ttl())
	defer settle.Stop()
	for settling := true; settling; {
		var err error
		select {
		case <-settle.C:
			settling = false
		case <-beat.C:
			err = l.beat(ctx)
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			return err
		}
	}

	m.mu.Lock()
	base := m.base
	l.health = maps.Clone(m.mir.health)
	l.written = map[zones.PinKey]decisionValue{}
	adopt := map[zones.PinKey]zones.Decision{}
	for k, d := range m.mir.decisions {
		l.written[k] = d.v
		adopt[k] = d.v.decision()
	}
	pins := maps.Clone(m.mir.pins)
	m.mu.Unlock()

	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	l.eng = zones.NewEngineWith(base, zones.EngineOptions{Logger: m.log.With("role", "leader"), Publish: l.publish, Health: l.healthStates})
	l.eng.SetPins(l, pins)
	l.eng.Adopt(adopt)
	if err := l.recount(lctx); err != nil {
		return err
	}
	l.eng.Recompute()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); l.eng.Run(lctx) }()
	defer wg.Wait()
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-beat.C:
			if err := l.beat(lctx); err != nil {
				return err
			}
		case <-m.leaderKick:
			m.mu.Lock()
			pins := maps.Clone(m.mir.pins)
			newBase := m.base != base
			base = m.base
			m.mu.Unlock()
			if newBase {
				// The health counted for the new node names and the new
				// config go in together, under the engine's lock: no
				// decision from one config's names and the other's health.
				var ops []clientv3.Op
				l.eng.Handover(base, func() { ops = l.count() })
				if err := l.commit(lctx, ops); err != nil {
					return err
				}
			}
			l.eng.ReplacePins(pins)
			if err := l.recount(lctx); err != nil {
				return err
			}
			l.eng.Kick()
		case <-l.pub:
			if err := l.write(lctx); err != nil {
				if errors.Is(err, errDeposed) {
					return err
				}
				m.log.Warn("writing decisions to etcd failed; retried at the next change or beat", "err", err)
				kick(l.pub)
			}
		}
	}
}

// beat writes the leader's heartbeat, fenced; its age tells every instance
// how current its decisions are.
func (l *leader) beat(ctx context.Context) error {
	return l.commit(ctx, []clientv3.Op{clientv3.OpPut(l.m.prefix+kBeat, mustJSON(beatValue{Leader: l.m.cfg.Instance, At: time.Now().UTC()}))})
}

// commit writes ops in fenced transactions of at most maxOps each.
func (l *leader) commit(ctx context.Context, ops []clientv3.Op) error {
	for len(ops) > 0 {
		batch := ops[:min(len(ops), maxOps)]
		ops = ops[len(batch):]
		cctx, c := l.m.timeout(ctx)
		t, err := l.m.cli.Txn(cctx).If(l.fence).Then(batch...).Commit()
		c()
		if err != nil {
			return err
		}
		if !t.Succeeded {
			return errDeposed
		}
	}
	return nil
}

// recount derives every node's health from the live members' votes,
// writes what changed, and works out which services the members' configs
// disagree on.
func (l *leader) recount(ctx context.Context) error {
	return l.commit(ctx, l.count())
}

// count is recount without the write: it derives health and the frozen
// services and returns the health keys to write.
func (l *leader) count() []clientv3.Op {
	m := l.m
	now := time.Now().UTC()
	m.mu.Lock()
	base := m.base
	live := make(map[string]bool, len(m.mir.members))
	for name := range m.mir.members {
		live[name] = true
	}
	_, own := configHash(base)
	frozen := map[string]bool{}
	differ := make([]bool, shards)
	for _, mv := range m.mir.members {
		for i, h := range mv.Shards {
			if i < shards && h != own[i] {
				differ[i] = true
			}
		}
	}
	for _, svc := range base.Services {
		if differ[shardOf(svc.Name)] {
			frozen[svc.Name] = true
		}
	}
	l.mu.Lock()
	var ops []clientv3.Op
	next := make(map[string]healthValue, len(base.Config.Nodes))
	unknown := map[string]bool{}
	renamed := l.renames(base)
	for _, n := range base.Config.Nodes {
		prev, had := l.health[n.Name]
		if !had {
			// A node renamed by a reload (same address, same check)
			// keeps the health agreed under its old name until it is
			// observed under the new one.
			if old, ok := renamed[n.Name]; ok {
				prev, had = l.health[old]
			}
		}
		v, ok := vote(prev, had, m.mir.obs[n.Name], live, now)
		if !ok {
			unknown[n.Name] = true
			continue
		}
		next[n.Name] = v
		if !had || prev.Up != v.Up || prev.Votes != v.Votes || !prev.Since.Equal(v.Since) {
			ops = append(ops, clientv3.OpPut(m.prefix+kHealth+n.Name, mustJSON(v)))
		}
	}
	for n := range m.mir.health {
		if base.Node(n) == nil {
			ops = append(ops, clientv3.OpDelete(m.prefix+kHealth+n))
		}
	}
	// A service with a node no instance has observed yet (a node just
	// added or renamed by a reload) is not decided: an unknown node is
	// not a down one, and deciding from one config's node names and
	// another's observations would move answers for nothing.
	for _, svc := range base.Services {
		for _, n := range svc.Config.Nodes {
			if unknown[n] {
				frozen[svc.Name] = true
				break
			}
		}
	}
	changedFrozen := !maps.Equal(frozen, l.frozen)
	l.health = next
	l.base = base
	l.frozen = frozen
	if changedFrozen {
		l.pendAll = true // thawed services get their decisions written
	}
	l.mu.Unlock()
	m.mu.Unlock()
	if changedFrozen && len(frozen) > 0 {
		m.log.Error("some services are not decided for now: the members disagree on their config, or no instance has observed one of their nodes yet; their decisions stay as they are until every live member loads the same config and the nodes are probed", "services", len(frozen), "unobserved_nodes", len(unknown))
	}
	return ops
}

// renames maps each node of base that the previous base had under another
// name with the very same probe (address, port, check) to that old name.
// Called with m.mu held.
func (l *leader) renames(base *zones.Snapshot) map[string]string {
	if l.base == nil || l.base == base {
		return nil
	}
	oldBy := map[string]string{}
	for name, spec := range l.base.Config.HealthSpecs() {
		oldBy[fmt.Sprintf("%+v", spec)] = name
	}
	out := map[string]string{}
	for name, spec := range base.Config.HealthSpecs() {
		if old, ok := oldBy[fmt.Sprintf("%+v", spec)]; ok && old != name && base.Node(old) == nil {
			out[name] = old
		}
	}
	return out
}

// healthStates is the leader engine's view of node health: the votes.
func (l *leader) healthStates() map[string]health.State {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]health.State, len(l.health))
	for n, h := range l.health {
		out[n] = health.State{Up: h.Up, Since: h.Since, Checked: true, Last: health.Result{OK: h.Up, Err: h.Err}}
	}
	return out
}

// publish receives the leader engine's snapshots; write sends them. It
// collects which services changed since the last write, so a write costs
// what changed, not the size of the config.
func (l *leader) publish(s *zones.Snapshot) {
	l.mu.Lock()
	if parent, changed, ok := s.Derived(); ok && parent == l.pubGen && !l.pendAll {
		for _, i := range changed {
			l.pending[i] = true
		}
	} else {
		l.pendAll = true
	}
	l.pubGen = s.Gen()
	l.latest.Store(s)
	l.mu.Unlock()
	kick(l.pub)
}

// write sends the decisions that changed since the last write, fenced.
func (l *leader) write(ctx context.Context) error {
	s := l.latest.Load()
	if s == nil {
		return nil
	}
	l.mu.Lock()
	all, pending := l.pendAll, l.pending
	l.pendAll, l.pending = false, map[int]bool{}
	var services []*zones.Service
	if all {
		services = s.Services
	} else {
		for i := range pending {
			services = append(services, s.Services[i])
		}
	}
	var ops []clientv3.Op
	next := maps.Clone(l.written)
	now := time.Now().UTC()
	for _, svc := range services {
		if l.frozen[svc.Name] {
			continue
		}
		seen := map[zones.PinKey]bool{}
		s.ViewDecisions(svc, func(k zones.PinKey, d zones.Decision) {
			seen[k] = true
			v := decisionValue{Node: d.Active, Servfail: d.Servfail, Pinned: d.Pinned, AllDown: d.AllDown, Reason: d.Reason, By: l.m.cfg.Instance, At: now}
			if w, ok := l.written[k]; ok && w.decision() == v.decision() {
				return
			}
			ops = append(ops, clientv3.OpPut(l.m.prefix+kDecision+viewPath(k), mustJSON(v)))
			next[k] = v
		})
		for loc := range s.LocationCount() {
			k := zones.PinKey{Service: svc.Name}
			if loc > 0 {
				k.Location = s.LocationName(loc)
			}
			if _, ok := l.written[k]; ok && !seen[k] {
				ops = append(ops, clientv3.OpDelete(l.m.prefix+kDecision+viewPath(k)))
				delete(next, k)
			}
		}
	}
	if all {
		// Views of services the config no longer has.
		for k := range l.written {
			if s.Service(k.Service) == nil {
				ops = append(ops, clientv3.OpDelete(l.m.prefix+kDecision+viewPath(k)))
				delete(next, k)
			}
		}
	}
	l.mu.Unlock()
	if err := l.commit(ctx, ops); err != nil {
		l.mu.Lock()
		l.pendAll = l.pendAll || all
		for i := range pending {
			l.pending[i] = true
		}
		l.mu.Unlock()
		return err
	}
	l.mu.Lock()
	l.written = next
	l.mu.Unlock()
	return nil
}

// Save is the leader engine's pin store: it only ever drops pins whose
// until= passed (UPDATEs go through Member.UpdatePins), fenced, so a
// deposed leader cannot delete a pin.
func (l *leader) Save(pins map[zones.PinKey]zones.Pin) error {
	m := l.m
	m.mu.Lock()
	var ops []clientv3.Op
	for k := range m.mir.pins {
		if _, ok := pins[k]; !ok {
			ops = append(ops, clientv3.OpDelete(m.prefix+kPin+viewPath(k)))
		}
	}
	m.mu.Unlock()
	if len(ops) == 0 {
		return nil
	}
	ops = append(ops, clientv3.OpPut(m.prefix+kPinRev, ""))
	ctx, c := m.timeout(context.Background())
	defer c()
	return l.commit(ctx, ops)
}
