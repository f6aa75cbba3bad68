package health

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
)

// State is one node's health as seen by the prober.
type State struct {
	Up      bool
	Since   time.Time // when Up last changed (or first set)
	Last    Result
	Checked bool      // false until the first probe result is known
	LastOK  time.Time // when a probe last succeeded
}

// maxInFlight caps the probes that wait on a worker: checks that block by
// nature (http, https, tls) and tcp connects the peer did not settle at
// once. Ten thousand nodes at 1s intervals with millisecond probes need
// only a handful; the cap matters when many nodes hang until their timeout,
// where unbounded concurrency would turn an outage into a goroutine and
// socket blow-up.
const maxInFlight = 512

// batchSlack is how early a node may be probed so that it shares a wake-up
// with the nodes due just after it. Every wake-up costs thread hand-offs in
// the runtime and the kernel: at 10,000 probes a second, 20ms windows cost
// about a seventh less CPU than 5ms ones, and 20ms is little next to an
// interval's ±10% jitter. A node never runs more than a twentieth of its
// interval early.
const batchSlack = 20 * time.Millisecond

// maxBatch bounds how many due nodes one wake-up takes, so that the
// scheduler still delivers onChange and notices cancellation promptly when
// thousands are due at once (after a Set, or a stalled clock).
const maxBatch = 256

// Prober runs every node's check on its own schedule and keeps its state.
//
// One scheduler goroutine owns a min-heap of due times. Each wake-up takes
// every node due within batchSlack and runs the quick part of their probes
// itself, back to back: a none check, and a tcp connect that the peer
// settles within the system call (loopback always, a refusal at once).
// Only probes that must wait go to a worker goroutine, under a cap of
// maxInFlight, so a hung or black-holed node holds a worker, never the
// scheduler. A node is rescheduled only after its probe finished, so no node
// ever has two probes in flight and a slow node cannot pile up work.
type Prober struct {
	onResult      func(node string, r Result)
	onStateChange func(node string, old, now State, r Result)

	logger   *slog.Logger
	onChange func()
	sem      chan struct{}
	// wake nudges the scheduler: a node became due earlier than it
	// planned, or a state changed and onChange should fire. Buffered by one
	// so bursts coalesce into a single wake-up.
	wake chan struct{}
	// epoch anchors due times, kept as monotonic nanoseconds so the heap
	// compares integers stored in place rather than following pointers.
	epoch time.Time

	mu    sync.Mutex
	nodes map[string]*node
	queue dueHeap
	dirty bool // an Up/Checked changed since onChange last fired
}

type node struct {
	name    string
	spec    Spec
	chk     *checker
	slack   int64 // ns a probe may run early; see batchSlack
	state   State
	succ    int  // consecutive successes
	fail    int  // consecutive failures
	index   int  // position in the heap; -1 while a probe runs or once removed
	removed bool // dropped by Set: a probe in flight is discarded
}

// ProberOptions are what a Prober calls, fixed when it is made. Every
// hook may be nil.
type ProberOptions struct {
	Logger *slog.Logger // nil: logs are discarded
	// OnChange is called whenever some node's Up or Checked changed.
	OnChange func()
	// OnResult is called after every probe (for metrics) and must be
	// cheap: it runs on the scheduler or a probe worker. Calls for one
	// node never overlap, and Snapshot called from it already reflects r.
	OnResult func(node string, r Result)
	// OnStateChange is called when a node's Up or Checked changed (what
	// the "health state changed" log line reports), with its state before
	// and after and the result that decided it. The same rules as
	// OnResult apply.
	OnStateChange func(node string, old, now State, r Result)
}

// NewProber returns a prober with no nodes that calls onChange (may be
// nil) whenever some node's Up or Checked changed; logger may be nil.
func NewProber(logger *slog.Logger, onChange func()) *Prober {
	return NewProberWith(ProberOptions{Logger: logger, OnChange: onChange})
}

// NewProberWith returns a prober with no nodes and o's hooks.
func NewProberWith(o ProberOptions) *Prober {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Prober{
		logger:        logger,
		onChange:      o.OnChange,
		onResult:      o.OnResult,
		onStateChange: o.OnStateChange,
		sem:           make(chan struct{}, maxInFlight),
		wake:          make(chan struct{}, 1),
		epoch:         time.Now(),
		nodes:         make(map[string]*node),
	}
}

// now is the current time on the heap's clock.
func (p *Prober) now() int64 { return int64(time.Since(p.epoch)) }

// Set replaces the set of probed nodes (key = node name): Install with no
// fresh states.
func (p *Prober) Set(specs map[string]Spec) { p.Install(specs, nil) }

// Install replaces the set of probed nodes (key = node name). Only a node
// whose Spec is unchanged keeps its state and schedule, so a config reload
// does not reset health. Any other node, new or changed (an address, a
// port, a check: a Spec is everything a result vouches for), takes its
// state from fresh (what Probe found) or else starts unchecked, never
// answered before its first probe: an "up" judged for the old Spec says
// nothing about the new one. Removed nodes stop being probed. Safe to call
// while Run is active.
func (p *Prober) Install(specs map[string]Spec, fresh map[string]State) {
	p.mu.Lock()
	now := p.now()
	for name, old := range p.nodes {
		if spec, ok := specs[name]; !ok || !reflect.DeepEqual(old.spec, spec) {
			p.drop(old)
		}
	}
	for name, spec := range specs {
		if _, ok := p.nodes[name]; ok {
			continue
		}
		// newChecker does no I/O (the CA file is read on first probe),
		// so building it under the lock is cheap.
		n := &node{
			name:  name,
			spec:  spec,
			chk:   newChecker(spec),
			slack: int64(min(batchSlack, interval(spec.Interval)/20)),
			index: -1,
		}
		due := now + int64(firstJitter(spec.Interval))
		if st, ok := fresh[name]; ok && st.Checked {
			// Probed just now: the next probe is a full interval away.
			n.state = st
			due = now + int64(jitter(spec.Interval))
		}
		p.nodes[name] = n
		p.queue.push(n, due)
	}
	p.mu.Unlock()
	p.nudge()
}

// Changed returns the specs Install would not keep as they run now: new
// nodes and nodes whose Spec differs.
func (p *Prober) Changed(specs map[string]Spec) map[string]Spec {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]Spec{}
	for name, spec := range specs {
		if n, ok := p.nodes[name]; !ok || !reflect.DeepEqual(n.spec, spec) {
			out[name] = spec
		}
	}
	return out
}

// Probe checks each of specs once, as InitialRound does (one result sets
// the state), without adding them to p: a reload probes its new and changed
// nodes while the old ones keep serving, then installs the results with
// Install. The probes share p's worker cap and its OnResult hook. It returns when all
// are done or ctx ends; a node whose probe did not finish is not Checked.
func (p *Prober) Probe(ctx context.Context, specs map[string]Spec) map[string]State {
	if len(specs) == 0 {
		return nil
	}
	scratch := &Prober{
		onResult: p.onResult,
		logger:   p.logger,
		sem:      p.sem,
		wake:     make(chan struct{}, 1),
		epoch:    p.epoch,
		nodes:    make(map[string]*node, len(specs)),
	}
	scratch.Set(specs)
	scratch.InitialRound(ctx)
	return scratch.Snapshot()
}

// drop forgets a node; a probe still in flight for it is discarded when it
// finishes.
func (p *Prober) drop(n *node) {
	if n.index >= 0 {
		p.queue.remove(n.index)
	}
	n.removed = true
	delete(p.nodes, n.name)
}

// Snapshot returns a copy of every node's state.
func (p *Prober) Snapshot() map[string]State {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]State, len(p.nodes))
	for name, n := range p.nodes {
		out[name] = n.state
	}
	return out
}

// round is one caller's way of probing batches: Run's, under rise/fall with
// changes delivered by the scheduler, or InitialRound's, direct, with one
// onChange at its end.
type round struct {
	direct  bool
	changed atomic.Bool // InitialRound only
	wg      sync.WaitGroup
	done    []outcome // probes settled inline, not yet applied; reused
	spare   sockets   // for the inline tcp connects
}

// outcome is one probe's result on its way into the node's state.
type outcome struct {
	n       *node
	r       Result
	live    bool // n was not removed while probing
	changed bool
	old     State // before r, and
	now     State // after, if changed
}

// InitialRound probes every node that is not yet Checked once and sets its
// state directly from that one result (ignoring rise/fall), so that at
// startup a dead node is never handed out and a live one is not held back
// for Rise intervals. It returns when all are done or ctx ends; each probe is
// bounded by its Timeout (with more than 512 nodes whose probes must wait,
// they queue for a worker). onChange is called once at the end if anything
// changed.
func (p *Prober) InitialRound(ctx context.Context) {
	p.mu.Lock()
	var todo []*node
	for _, n := range p.nodes {
		if !n.state.Checked && n.index >= 0 {
			p.queue.remove(n.index)
			todo = append(todo, n)
		}
	}
	p.mu.Unlock()

	rd := &round{direct: true}
	p.runBatch(ctx, rd, todo)
	rd.spare.close()
	rd.wg.Wait()
	if rd.changed.Load() && p.onChange != nil {
		p.onChange()
	}
}

// requeue puts nodes whose probe did not happen back into the schedule,
// due at once.
func (p *Prober) requeue(ns []*node) {
	p.mu.Lock()
	now := p.now()
	for _, n := range ns {
		if !n.removed && n.index < 0 {
			p.queue.push(n, now)
		}
	}
	p.mu.Unlock()
	p.nudge()
}

// Run schedules probes until ctx is cancelled and returns after all in-flight
// probes finished. Only one Run may be active at a time.
func (p *Prober) Run(ctx context.Context) {
	rd := &round{}
	defer rd.wg.Wait()
	defer rd.spare.close()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()

	var batch []*node
	for {
		p.fireChange()
		if ctx.Err() != nil {
			return
		}

		p.mu.Lock()
		var wait time.Duration
		batch, wait = p.queue.popDue(p.now(), batch[:0], maxBatch)
		p.mu.Unlock()

		if len(batch) == 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			case <-p.wake:
			}
			continue
		}
		if !p.runBatch(ctx, rd, batch) {
			return
		}
		clear(batch) // let removed nodes go
	}
}

// runBatch probes batch: the quick part inline, the rest on workers of rd.
// It reports false if ctx ended first; the nodes not started are requeued.
func (p *Prober) runBatch(ctx context.Context, rd *round, batch []*node) bool {
	for i, n := range batch {
		if ctx.Err() != nil {
			p.flush(rd)
			p.requeue(batch[i:])
			return false
		}
		pend := pending{fd: -1}
		if n.chk.quick() {
			r, pd, ok := n.chk.begin(&rd.spare)
			if ok {
				// InitialRound hands over every node at once; its
				// results still reach the state a batch at a time.
				if rd.done = append(rd.done, outcome{n: n, r: r}); len(rd.done) >= maxBatch {
					p.flush(rd)
				}
				continue
			}
			pend = pd
		}
		// Waiting for a worker slot can take up to a timeout: what is
		// already known must not wait with it.
		select {
		case p.sem <- struct{}{}:
		default:
			p.flush(rd)
			if !p.acquire(ctx, rd) {
				pend.close()
				p.requeue(batch[i:])
				return false
			}
		}
		rd.wg.Go(func() { p.probe(ctx, rd, n, pend) })
	}
	p.flush(rd)
	return true
}

// flush settles the probes runBatch finished inline.
func (p *Prober) flush(rd *round) {
	p.settle(rd, rd.done)
	rd.done = rd.done[:0]
}

// acquire waits for a worker slot. While all slots are busy (many nodes
// hanging until their timeout) the scheduler keeps delivering onChange, so
// state changes are not held back by an overloaded schedule. InitialRound
// leaves the scheduler's wake-ups alone.
func (p *Prober) acquire(ctx context.Context, rd *round) bool {
	if rd.direct {
		select {
		case p.sem <- struct{}{}:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		select {
		case p.sem <- struct{}{}:
			return true
		case <-ctx.Done():
			return false
		case <-p.wake:
			p.fireChange()
		}
	}
}

// probe finishes n's probe on a worker, in the slot its caller acquired, and
// applies the result. pend is what begin left, or fd -1 for a check that
// runs here whole. The slot covers settle and OnResult too, so the number of
// probe goroutines alive never exceeds maxInFlight. A cancelled probe says
// "canceled", nothing about the node: n is requeued.
func (p *Prober) probe(ctx context.Context, rd *round, n *node, pend pending) {
	defer func() { <-p.sem }()
	var r Result
	if pend.fd >= 0 {
		r = n.chk.finish(ctx, pend)
	} else {
		r = n.chk.check(ctx)
	}
	if ctx.Err() != nil {
		p.requeue([]*node{n})
		return
	}
	one := [1]outcome{{n: n, r: r}}
	p.settle(rd, one[:])
}

// settle applies finished probes: state under one lock, then logs,
// OnStateChange, the change signal and OnResult, then rescheduling under one
// more. Rescheduling comes
// last so that calls for one node never overlap and a Snapshot taken inside
// OnResult sees exactly its result applied.
func (p *Prober) settle(rd *round, outs []outcome) {
	if len(outs) == 0 {
		return
	}
	changed := false
	p.mu.Lock()
	for i := range outs {
		o := &outs[i]
		if o.live = !o.n.removed; o.live {
			o.old = o.n.state
			if o.changed = p.record(o.n, o.r, rd.direct); o.changed {
				o.now = o.n.state
				changed = true
			}
		}
	}
	p.mu.Unlock()

	// A change is reported (its log line, OnStateChange) before onChange
	// may fire for it, so that it comes before what it causes: the
	// engine's "active node changed", in the log and the event history.
	for i := range outs {
		if o := &outs[i]; o.changed {
			p.logChange(o.n, o.old, o.now, o.r)
			if p.onStateChange != nil {
				p.onStateChange(o.n.name, o.old, o.now, o.r)
			}
		}
	}
	if changed {
		if rd.direct {
			rd.changed.Store(true)
		} else {
			p.mu.Lock()
			p.dirty = true
			p.mu.Unlock()
			p.nudge()
		}
	}
	if p.onResult != nil {
		for i := range outs {
			if o := &outs[i]; o.live {
				p.onResult(o.n.name, o.r)
			}
		}
	}

	top := false
	p.mu.Lock()
	now := p.now()
	for i := range outs {
		n := outs[i].n
		if !n.removed && n.index < 0 {
			p.queue.push(n, now+int64(jitter(n.spec.Interval)))
			top = top || n.index == 0
		}
		outs[i] = outcome{}
	}
	p.mu.Unlock()
	if top {
		p.nudge()
	}
}

// record applies r to n's state (p.mu held) and reports whether Up or
// Checked changed. direct bypasses rise/fall (InitialRound).
func (p *Prober) record(n *node, r Result, direct bool) bool {
	st := &n.state
	old := *st
	st.Last = r
	if r.OK {
		st.LastOK = r.At
		n.succ++
		n.fail = 0
	} else {
		n.fail++
		n.succ = 0
	}
	switch {
	case direct || !st.Checked:
		// The first result is all we know; rise/fall only guards
		// transitions away from a known state.
		st.Up = r.OK
		st.Checked = true
	case st.Up && n.fail >= max(n.spec.Fall, 1):
		st.Up = false
	case !st.Up && n.succ >= max(n.spec.Rise, 1):
		st.Up = true
	}
	changed := st.Up != old.Up || st.Checked != old.Checked
	if changed {
		st.Since = r.At
	}
	return changed
}

func (p *Prober) fireChange() {
	p.mu.Lock()
	dirty := p.dirty
	p.dirty = false
	p.mu.Unlock()
	if dirty && p.onChange != nil {
		p.onChange()
	}
}

func (p *Prober) nudge() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *Prober) logChange(n *node, old, now State, r Result) {
	from := "unknown"
	if old.Checked {
		from = upDown(old.Up)
	}
	up := now.Up
	reason := r.Err
	if r.OK {
		reason = "ok"
	}
	level := slog.LevelInfo
	if !up {
		level = slog.LevelWarn
	}
	p.logger.Log(context.Background(), level, "health state changed",
		"node", n.name, "old", from, "new", upDown(up), "reason", reason,
		"check", n.spec.Type, "latency", r.Latency)
}

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

func interval(d time.Duration) time.Duration {
	if d <= 0 {
		return time.Second
	}
	return d
}

// jitter spreads probes by ±10% so nodes added together do not stay in
// lockstep and hit shared backends in bursts.
func jitter(d time.Duration) time.Duration {
	d = interval(d)
	spread := int64(d) / 5
	if spread <= 0 {
		return d
	}
	return d - time.Duration(spread/2) + time.Duration(rand.Int64N(spread+1))
}

// firstJitter delays a new node's first probe by at most 10% of its interval
// (and at most 100ms): prompt, but 10,000 nodes loaded at once still do not
// all fire in the same instant.
func firstJitter(interval time.Duration) time.Duration {
	limit := min(interval/10, 100*time.Millisecond)
	if limit <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(limit)))
}

// dueHeap is a binary min-heap of nodes by the earliest time each may be
// probed (its due time less its slack), on the Prober's clock.
type dueHeap []dueEntry

type dueEntry struct {
	at int64
	n  *node
}

func (h *dueHeap) push(n *node, due int64) {
	*h = append(*h, dueEntry{at: due - n.slack, n: n})
	h.up(len(*h) - 1)
}

// popDue appends to out the nodes that may be probed at now, up to limit
// in all, and says how long to sleep before the next batch (0 if limit was
// hit). The sleep lasts until the next node is due, not merely allowed:
// waking as soon as it is allowed would take the nodes one or two at a time,
// right behind the batch just taken.
func (h *dueHeap) popDue(now int64, out []*node, limit int) ([]*node, time.Duration) {
	for len(*h) > 0 {
		if len(out) >= limit {
			return out, 0
		}
		if top := (*h)[0]; top.at > now {
			return out, time.Duration(top.at + top.n.slack - now)
		}
		out = append(out, (*h)[0].n)
		h.remove(0)
	}
	return out, time.Hour
}

func (h *dueHeap) remove(i int) {
	s := *h
	last := len(s) - 1
	s[i].n.index = -1
	if i != last {
		s.set(i, s[last])
	}
	s[last] = dueEntry{}
	*h = s[:last]
	if i != last {
		h.down(i)
		h.up(i)
	}
}

// set puts e at i, and tells its node where it is.
func (h dueHeap) set(i int, e dueEntry) {
	h[i] = e
	e.n.index = i
}

func (h dueHeap) up(i int) {
	e := h[i]
	for i > 0 {
		parent := (i - 1) / 2
		if h[parent].at <= e.at {
			break
		}
		h.set(i, h[parent])
		i = parent
	}
	h.set(i, e)
}

func (h dueHeap) down(i int) {
	e := h[i]
	for {
		child := 2*i + 1
		if child >= len(h) {
			break
		}
		if r := child + 1; r < len(h) && h[r].at < h[child].at {
			child = r
		}
		if e.at <= h[child].at {
			break
		}
		h.set(i, h[child])
		i = child
	}
	h.set(i, e)
}
