package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/failoverdns/failoverdns/zones"
)

// Options are what a Member needs from the instance it belongs to.
type Options = zones.MemberOptions

// A binary that links this package can run in a cluster (zones.JoinCluster).
func init() {
	zones.RegisterCluster(func(o zones.MemberOptions) (zones.Member, error) {
		m, err := Start(o)
		if err != nil {
			return nil, err // not a nil *Member in a non-nil interface
		}
		return m, nil
	})
}

// Member is one instance's part in a cluster: it publishes what its prober
// sees, feeds its engine what the cluster decided, commits pins, and runs
// the leader when elected.
type Member struct {
	o      Options
	cfg    *zones.ClusterConfig
	cli    *clientv3.Client
	log    *slog.Logger
	prefix string

	mu          sync.Mutex
	mir         *mirror
	base        *zones.Snapshot
	connected   bool
	cutOffSince time.Time
	// lastContact is when etcd last answered this instance (a watch
	// response or a write): a loss is noticed only when the lease lapses,
	// up to session_ttl later, but the instance was cut off from here.
	lastContact time.Time
	published   map[string]obsValue // own observations in etcd now
	dirty       bool                // the cache lags the mirror
	applied     int64               // revision in member/ now
	fromCache   bool                // answering state_dir's cache, not yet etcd's
	engineRev   int64               // the revision the engine has been handed

	obsKick    chan struct{}
	leaderKick chan struct{}
	baseKick   chan struct{}
	applyWait  chan struct{} // closed and replaced at every applied batch

	leadMu         sync.Mutex
	isLeader       atomic.Bool
	localDecisions atomic.Int64

	cancel context.CancelFunc
	done   chan struct{}
}

// Start connects to etcd (waiting at most one request timeout, so a start
// while etcd is down is not held up) and keeps the instance in the cluster
// until Close. Before the first connection it answers the cached decisions
// of state_dir, or, with none, decides locally and says so.
func Start(o Options) (*Member, error) {
	cfg := o.Base.Config.Cluster
	if cfg == nil {
		return nil, errors.New("cluster: no [cluster] table in the config")
	}
	log := o.Logger.With("cluster", cfg.Name, "instance", cfg.Instance)
	cli, err := Dial(cfg, o.Logger)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	m := &Member{
		o: o, cfg: cfg, cli: cli, log: log, prefix: cfg.Prefix,
		mir: newMirror(cfg.Prefix), base: o.Base, cutOffSince: time.Now(),
		obsKick: make(chan struct{}, 1), leaderKick: make(chan struct{}, 1), baseKick: make(chan struct{}, 1),
		applyWait: make(chan struct{}), done: make(chan struct{}),
	}
	if ok, err := loadCache(o.StateDir, cfg.Name, m.mir); err != nil {
		log.Warn("cluster cache not used", "err", err)
	} else if ok {
		m.fromCache = true
		log.Info("answering the cached cluster decisions until etcd is reached", "revision", m.mir.rev, "decisions", len(m.mir.decisions))
	}
	o.Engine.SetPinWriter(m.UpdatePins)
	m.applyAgreed()
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	first := make(chan struct{})
	go m.run(ctx, first)
	select {
	case <-first:
	case <-time.After(cfg.RequestTimeout.Duration):
		log.Warn("etcd not reached at start: answering cached or local decisions until it is", "etcd", cfg.Etcd)
	}
	return m, nil
}

// Close leaves the cluster: resigns leadership and revokes the session, so
// the others stop counting this instance at once rather than after its TTL.
func (m *Member) Close() {
	m.cancel()
	<-m.done
	m.mu.Lock()
	if m.dirty {
		m.saveCacheLocked()
	}
	m.mu.Unlock()
	m.cli.Close()
}

// Observe tells the member the prober's view changed. It never blocks.
func (m *Member) Observe() { kick(m.obsKick) }

// SetBase installs a reloaded config.
func (m *Member) SetBase(s *zones.Snapshot) {
	m.mu.Lock()
	m.base = s
	m.mu.Unlock()
	kick(m.baseKick)
	kick(m.leaderKick)
	kick(m.obsKick)
}

// IsLeader reports whether this instance leads the cluster now.
func (m *Member) IsLeader() bool { return m.isLeader.Load() }

func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (m *Member) ttl() time.Duration { return m.cfg.SessionTTL.Duration }

func (m *Member) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, m.cfg.RequestTimeout.Duration)
}

// run keeps a session with etcd, reconnecting after every loss.
func (m *Member) run(ctx context.Context, first chan struct{}) {
	defer close(m.done)
	var once sync.Once
	for ctx.Err() == nil {
		err := m.session(ctx, func() { once.Do(func() { close(first) }) })
		if ctx.Err() != nil {
			return
		}
		m.mu.Lock()
		was := m.connected
		if was {
			m.connected = false
			m.cutOffSince = time.Now()
			if !m.lastContact.IsZero() {
				m.cutOffSince = m.lastContact
			}
		}
		m.mu.Unlock()
		if was {
			m.log.Error("cut off from the cluster: answering the last agreed decisions; pin UPDATEs are refused (SERVFAIL) until etcd is back", "err", err)
			m.applyAgreed()
		} else {
			m.log.Debug("etcd not reachable", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// session is one connected period: from a granted lease to its loss.
func (m *Member) session(ctx context.Context, connected func()) error {
	cctx, cancel := m.timeout(ctx)
	lease, err := m.cli.Grant(cctx, int64(m.ttl()/time.Second))
	cancel()
	if err != nil {
		return fmt.Errorf("lease: %w", err)
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	s, err := concurrency.NewSession(m.cli, concurrency.WithLease(lease.ID), concurrency.WithContext(sctx))
	if err != nil {
		return fmt.Errorf("session: %w", err)
	}
	defer func() {
		// Revoke so the others stop counting us now, not after the TTL;
		// bounded, since etcd may be what failed.
		rctx, c := m.timeout(context.Background())
		m.cli.Revoke(rctx, lease.ID)
		c()
	}()

	gctx, c := m.timeout(sctx)
	resp, err := m.cli.Get(gctx, m.prefix, clientv3.WithPrefix())
	c()
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	m.mu.Lock()
	m.mir.reset(resp.Kvs, resp.Header.Revision)
	m.published = map[string]obsValue{}
	m.mu.Unlock()
	m.reportBad()
	if err := m.putMember(sctx, lease.ID, true); err != nil {
		return err
	}
	if err := m.publishObs(sctx, lease.ID); err != nil {
		return err
	}
	m.importPins(sctx)
	m.mu.Lock()
	m.connected = true
	m.fromCache = false
	m.lastContact = time.Now()
	m.mu.Unlock()
	m.log.Info("joined the cluster", "revision", resp.Header.Revision, "leader", m.mir.leader(), "members", len(m.mir.members))
	m.applyAgreed()
	m.signalApplied()
	connected()

	// WithRequireLeader: an etcd member that loses its quorum ends the
	// watch instead of going quiet, so a minority partition is noticed.
	wch := m.cli.Watch(clientv3.WithRequireLeader(sctx), m.prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	// Not waited for: when etcd is gone, concurrency.Election's own
	// resign on cancel blocks until etcd is back or the client closes.
	// lead() is serialised by leadMu, so a stale campaign never leads
	// beside a new one.
	go m.campaign(sctx, s)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-s.Done():
			return errors.New("session lease lost (etcd unreachable for longer than session_ttl)")
		case wr, ok := <-wch:
			if !ok {
				return errors.New("watch ended")
			}
			if err := wr.Err(); err != nil {
				return fmt.Errorf("watch: %w", err)
			}
			var t touched
			m.mu.Lock()
			m.lastContact = time.Now()
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					t = t.or(m.mir.del(ev.Kv))
				} else {
					t = t.or(m.mir.put(ev.Kv))
				}
			}
			if wr.Header.Revision > m.mir.rev {
				m.mir.rev = wr.Header.Revision
			}
			m.dirty = m.dirty || t.agreed || t.pins
			m.mu.Unlock()
			m.reportBad()
			if t.votes || t.pins {
				kick(m.leaderKick)
			}
			if t.agreed || t.pins {
				m.applyAgreed()
			}
			m.signalApplied()
		case <-m.obsKick:
			if err := m.publishObs(sctx, lease.ID); err != nil {
				return err
			}
		case <-m.baseKick:
			if err := m.putMember(sctx, lease.ID, true); err != nil {
				return err
			}
			kick(m.leaderKick)
			m.applyAgreed()
		case <-tick.C:
			m.mu.Lock()
			if m.dirty {
				m.saveCacheLocked()
			}
			m.mu.Unlock()
			if err := m.putMember(sctx, lease.ID, false); err != nil {
				return err
			}
		}
	}
}

func (m *Member) saveCacheLocked() {
	if err := saveCache(m.o.StateDir, m.cfg.Name, m.mir); err != nil {
		m.log.Warn("saving the cluster cache to state_dir", "err", err)
		return
	}
	m.dirty = false
}

func (m *Member) signalApplied() {
	m.mu.Lock()
	m.engineRev = m.mir.rev
	close(m.applyWait)
	m.applyWait = make(chan struct{})
	m.mu.Unlock()
}

// putMember writes member/<instance>; unless force, only when the applied
// revision moved by more than a few beats (it is for operators, and
// writing it every second would wake every watcher every second).
func (m *Member) putMember(ctx context.Context, lease clientv3.LeaseID, force bool) error {
	m.mu.Lock()
	rev := m.mir.rev
	if !force && rev-m.applied < 5 {
		m.mu.Unlock()
		return nil
	}
	all, perShard := configHash(m.base)
	v := memberValue{Version: m.o.Version, Config: all, Shards: perShard, DNS: m.o.DNSAddr, Applied: rev, Started: time.Now().UTC()}
	m.mu.Unlock()
	cctx, c := m.timeout(ctx)
	defer c()
	if _, err := m.cli.Put(cctx, m.prefix+kMember+m.cfg.Instance, mustJSON(v), clientv3.WithLease(lease)); err != nil {
		return fmt.Errorf("member key: %w", err)
	}
	m.mu.Lock()
	m.applied = rev
	m.lastContact = time.Now()
	m.mu.Unlock()
	return nil
}

// maxOps stays under etcd's default limit of 128 operations per txn.
const maxOps = 120

// publishObs writes this instance's observations that changed (rise/fall
// only: latency and error text do not count) and deletes those of nodes
// the config no longer has.
func (m *Member) publishObs(ctx context.Context, lease clientv3.LeaseID) error {
	// What the engine decides from: with anchors, node falls are held
	// while the prober may be the one cut off, and an isolated prober's
	// observations are withdrawn from the vote altogether.
	h, iso := m.o.Engine.Guarded()
	m.mu.Lock()
	base := m.base
	pub := maps.Clone(m.published)
	m.mu.Unlock()
	var ops []clientv3.Op
	next := map[string]obsValue{}
	if iso.Isolated {
		h = nil
		for n := range pub {
			ops = append(ops, clientv3.OpDelete(m.obsKey(n)))
		}
		pub = nil
	}
	for _, n := range base.Config.Nodes {
		st, ok := h[n.Name]
		if !ok || !st.Checked {
			continue
		}
		v := obsValue{Up: st.Up, Since: st.Since.UTC()}
		if !st.Up {
			v.Err = st.Last.Err
		}
		next[n.Name] = v
		if p, ok := pub[n.Name]; ok && p.Up == v.Up {
			next[n.Name] = p
			continue
		}
		ops = append(ops, clientv3.OpPut(m.obsKey(n.Name), mustJSON(v), clientv3.WithLease(lease)))
	}
	for n := range pub {
		if _, ok := next[n]; !ok && base.Node(n) == nil {
			ops = append(ops, clientv3.OpDelete(m.obsKey(n)))
		}
	}
	for len(ops) > 0 {
		batch := ops[:min(len(ops), maxOps)]
		ops = ops[len(batch):]
		cctx, c := m.timeout(ctx)
		_, err := m.cli.Txn(cctx).Then(batch...).Commit()
		c()
		if err != nil {
			return fmt.Errorf("publishing observations: %w", err)
		}
	}
	m.mu.Lock()
	m.published = next
	m.mu.Unlock()
	return nil
}

func (m *Member) obsKey(node string) string {
	return m.prefix + kObs + node + "/" + m.cfg.Instance
}

// applyAgreed hands the engine the agreed state as the mirror holds it.
func (m *Member) applyAgreed() {
	m.mu.Lock()
	a := m.agreedLocked()
	m.mu.Unlock()
	m.o.Engine.SetAgreed(a)
}

func (m *Member) agreedLocked() *zones.Agreed {
	mir := m.mir
	a := &zones.Agreed{
		Decisions:   make(map[zones.PinKey]zones.AgreedDecision, len(mir.decisions)),
		Health:      make(map[string]zones.AgreedHealth, len(mir.health)),
		Pins:        maps.Clone(mir.pins),
		Revision:    mir.rev,
		Leader:      mir.leader(),
		Connected:   m.connected,
		CutOffSince: m.cutOffSince,
		LastBeat:    m.lastBeat,
		Cached:      m.fromCache,
	}
	for k, d := range mir.decisions {
		a.Decisions[k] = zones.AgreedDecision{Decision: d.v.decision(), Generation: d.rev, By: d.v.By, At: d.v.At}
	}
	for n, h := range mir.health {
		a.Health[n] = zones.AgreedHealth{Up: h.Up, Since: h.Since, Err: h.Err, Votes: h.Votes}
	}
	a.Problems = m.problemsLocked()
	return a
}

// problemsLocked lists what an operator should look at: members whose
// config differs from ours, and observers outvoted on a node (a prober cut
// off from it, or the node failing for one site only).
func (m *Member) problemsLocked() []string {
	var out []string
	if !m.connected {
		return nil
	}
	own, _ := configHash(m.base)
	for name, mv := range m.mir.members {
		if mv.Config != own {
			out = append(out, fmt.Sprintf("config mismatch: %s has config %s, this instance %s (services whose definition differs are not decided until they agree)", name, mv.Config, own))
		}
	}
	for node, obs := range m.mir.obs {
		h, ok := m.mir.health[node]
		if !ok {
			continue
		}
		for inst, o := range obs {
			if o.Up != h.Up {
				state := "down"
				if o.Up {
					state = "up"
				}
				out = append(out, fmt.Sprintf("suspect observer: %s sees %s %s, outvoted (%s up)", inst, node, state, h.Votes))
			}
		}
	}
	slicesSort(out)
	return out
}

// UpdatePins commits a pin change to etcd in one transaction: the current
// pins are read, change (which also checks the UPDATE's prerequisites) runs
// on them, and the result is written only if no pin changed meanwhile
// (pinrev's revision is the compare). nil means committed; the pins reach
// every instance, this one included, through the watch.
func (m *Member) UpdatePins(change func(cur map[zones.PinKey]zones.Pin) (map[zones.PinKey]zones.Pin, error)) error {
	m.mu.Lock()
	ok := m.connected
	m.mu.Unlock()
	if !ok {
		return errors.New("cluster unreachable: pins are committed to etcd, which cannot be reached now; nothing was changed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*m.cfg.RequestTimeout.Duration)
	defer cancel()
	rev, err := m.pinTxn(ctx, change, nil, nil)
	if err != nil {
		return err
	}
	m.waitApplied(ctx, rev)
	return nil
}

// waitApplied waits (bounded by ctx) until the watch delivered rev, so an
// operator who pins and then asks this instance sees the pin.
func (m *Member) waitApplied(ctx context.Context, rev int64) {
	for {
		m.mu.Lock()
		done, ch := m.engineRev >= rev, m.applyWait
		m.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}

var errPinRace = errors.New("pins changed concurrently on every try; send the UPDATE again")

// pinTxn runs change against the pins in etcd and commits the difference.
// extraIf and extraThen join the same transaction (the import marker).
func (m *Member) pinTxn(ctx context.Context, change func(map[zones.PinKey]zones.Pin) (map[zones.PinKey]zones.Pin, error), extraIf []clientv3.Cmp, extraThen []clientv3.Op) (int64, error) {
	for range 5 {
		resp, err := m.cli.Txn(ctx).Then(clientv3.OpGet(m.prefix+kPin, clientv3.WithPrefix()), clientv3.OpGet(m.prefix+kPinRev)).Commit()
		if err != nil {
			return 0, fmt.Errorf("etcd did not answer the pin read: %w", err)
		}
		cur := map[zones.PinKey]zones.Pin{}
		mir := newMirror(m.prefix)
		for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
			mir.put(kv)
		}
		maps.Copy(cur, mir.pins)
		var pinRev int64
		if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
			pinRev = kvs[0].ModRevision
		}
		next, err := change(maps.Clone(cur))
		if err != nil {
			return 0, err
		}
		ops := append([]clientv3.Op(nil), extraThen...)
		for k, p := range next {
			if o, ok := cur[k]; !ok || o != p {
				ops = append(ops, clientv3.OpPut(m.prefix+kPin+viewPath(k), mustJSON(pinValueOf(p))))
			}
		}
		for k := range cur {
			if _, ok := next[k]; !ok {
				ops = append(ops, clientv3.OpDelete(m.prefix+kPin+viewPath(k)))
			}
		}
		if len(ops) == len(extraThen) {
			return resp.Header.Revision, nil // nothing to change
		}
		if len(ops) >= maxOps {
			return 0, fmt.Errorf("one UPDATE may change at most %d pins in cluster mode", maxOps-1)
		}
		ops = append(ops, clientv3.OpPut(m.prefix+kPinRev, ""))
		cmps := append([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(m.prefix+kPinRev), "=", pinRev)}, extraIf...)
		t, err := m.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return 0, fmt.Errorf("etcd did not confirm the pin: %w", err)
		}
		if t.Succeeded {
			return t.Header.Revision, nil
		}
	}
	return 0, errPinRace
}

// importPins writes the pins state_dir held before cluster mode, once per
// instance, where etcd has no pin for the same view: an operator's pins
// survive the move to cluster mode, and never override the cluster's.
func (m *Member) importPins(ctx context.Context) {
	m.mu.Lock()
	done := m.mir.imported[m.cfg.Instance]
	m.mu.Unlock()
	if done || len(m.o.ImportPins) == 0 {
		return
	}
	marker := m.prefix + kImport + m.cfg.Instance
	var added []string
	change := func(cur map[zones.PinKey]zones.Pin) (map[zones.PinKey]zones.Pin, error) {
		added = added[:0]
		for k, p := range m.o.ImportPins {
			if _, ok := cur[k]; !ok && !p.Lapsed(time.Now()) {
				cur[k] = p
				added = append(added, k.Name())
			}
		}
		return cur, nil
	}
	cctx, c := context.WithTimeout(ctx, 2*m.cfg.RequestTimeout.Duration)
	defer c()
	_, err := m.pinTxn(cctx, change, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(marker), "=", 0)}, []clientv3.Op{clientv3.OpPut(marker, time.Now().UTC().Format(time.RFC3339))})
	if err != nil {
		m.log.Warn("importing state_dir's pins into the cluster failed; retried at the next connection", "err", err)
		return
	}
	if len(added) > 0 {
		m.log.Warn("imported the pins of state_dir into the cluster (once)", "pins", added)
	}
}

func (m *Member) lastBeat() time.Time {
	ns := m.mir.beatSeen.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// reportBad logs the cluster values that did not decode since the last
// call (an instance of another version, or a hand-edited key): they are
// ignored, and an operator must know.
func (m *Member) reportBad() {
	m.mu.Lock()
	n := m.mir.bad
	m.mir.bad = 0
	m.mu.Unlock()
	if n > 0 {
		m.log.Error("ignoring cluster values that do not decode: check that every instance runs the same failoverdns version and that nothing else writes under the prefix", "values", n, "prefix", m.prefix)
	}
}
