package health

import (
	"container/heap"
	"context"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"sync"
	"time"
)

// State is one node's health as seen by the prober.
type State struct {
	Up      bool
	Since   time.Time // when Up last changed (or first set)
	Last    Result
	Checked bool // false until the first probe result is known
}

// maxInFlight caps concurrent probes. Ten thousand nodes at 1s intervals
// with millisecond probes need only a handful; the cap matters when many
// nodes hang until their timeout, where unbounded concurrency would turn an
// outage into a goroutine and socket blow-up.
const maxInFlight = 512

// Prober runs every node's check on its own schedule and keeps its state.
//
// One scheduler goroutine owns a min-heap of next-due times and starts probes
// under a semaphore; a node is rescheduled only after its probe finished, so
// no node ever has two probes in flight and a slow node cannot pile up work.
type Prober struct {
	// OnResult, if set before Run, is called after every probe (for
	// metrics) and must be cheap: it runs on a probe worker. Calls for one
	// node never overlap, and Snapshot called from it already reflects r.
	OnResult func(node string, r Result)

	logger   *slog.Logger
	onChange func()
	sem      chan struct{}
	// wake nudges the scheduler: a node became due earlier than it
	// planned, or a state changed and onChange should fire. Buffered by one
	// so bursts coalesce into a single wake-up.
	wake chan struct{}

	mu    sync.Mutex
	nodes map[string]*node
	queue nodeHeap
	dirty bool // an Up/Checked changed since onChange last fired
}

type node struct {
	name  string
	spec  Spec
	chk   *checker
	state State
	succ  int // consecutive successes
	fail  int // consecutive failures
	next  time.Time
	index int // position in the heap; -1 while a probe runs or once removed
}

// NewProber returns a prober with no nodes. onChange (may be nil) is called
// whenever some node's Up or Checked changed; logger may be nil.
func NewProber(logger *slog.Logger, onChange func()) *Prober {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Prober{
		logger:   logger,
		onChange: onChange,
		sem:      make(chan struct{}, maxInFlight),
		wake:     make(chan struct{}, 1),
		nodes:    make(map[string]*node),
	}
}

// Set replaces the set of probed nodes (key = node name). Nodes whose Spec is
// unchanged keep their state and schedule, so a config reload does not reset
// health; changed ones keep their state and are probed promptly with the new
// check, under rise/fall; new ones start unchecked (never answered before
// their first probe); removed ones stop being probed. Safe to call while Run
// is active.
func (p *Prober) Set(specs map[string]Spec) {
	now := time.Now()
	p.mu.Lock()
	// A node whose check changed keeps its state: the new check is judged
	// by rise/fall from there, so editing a check (a new path, a longer
	// timeout) on reload cannot by itself move traffic.
	carried := map[string]State{}
	for name, old := range p.nodes {
		spec, ok := specs[name]
		if ok && reflect.DeepEqual(old.spec, spec) {
			continue
		}
		if ok {
			carried[name] = old.state
		}
		p.drop(old)
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
			next:  now.Add(firstJitter(spec.Interval)),
			index: -1,
			state: carried[name],
		}
		p.nodes[name] = n
		heap.Push(&p.queue, n)
	}
	p.mu.Unlock()
	p.nudge()
}

// drop forgets a node; a probe still in flight for it is discarded when it
// finishes because p.nodes no longer points at it.
func (p *Prober) drop(n *node) {
	if n.index >= 0 {
		heap.Remove(&p.queue, n.index)
	}
	if p.nodes[n.name] == n {
		delete(p.nodes, n.name)
	}
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

// InitialRound probes every node that is not yet Checked once, concurrently,
// and sets its state directly from that one result (ignoring rise/fall), so
// that at startup a dead node is never handed out and a live one is not held
// back for Rise intervals. It returns when all are done or ctx ends; each
// probe is bounded by its Timeout (with more than 512 nodes, probes queue for
// a worker). onChange is called once at the end if anything changed.
func (p *Prober) InitialRound(ctx context.Context) {
	p.mu.Lock()
	var todo []*node
	for _, n := range p.nodes {
		if !n.state.Checked && n.index >= 0 {
			heap.Remove(&p.queue, n.index)
			todo = append(todo, n)
		}
	}
	p.mu.Unlock()

	var wg sync.WaitGroup
	var changedMu sync.Mutex
	changed := false
	for i, n := range todo {
		select {
		case p.sem <- struct{}{}:
		case <-ctx.Done():
			p.requeue(todo[i:])
			wg.Wait()
			p.finishRound(changed)
			return
		}
		wg.Go(func() {
			if p.probe(ctx, n, true) {
				changedMu.Lock()
				changed = true
				changedMu.Unlock()
			}
		})
	}
	wg.Wait()
	p.finishRound(changed)
}

func (p *Prober) finishRound(changed bool) {
	if changed && p.onChange != nil {
		p.onChange()
	}
}

// requeue puts nodes whose probe did not happen back into the schedule,
// due at once.
func (p *Prober) requeue(ns []*node) {
	p.mu.Lock()
	now := time.Now()
	for _, n := range ns {
		if p.nodes[n.name] == n && n.index < 0 {
			n.next = now
			heap.Push(&p.queue, n)
		}
	}
	p.mu.Unlock()
	p.nudge()
}

// Run schedules probes until ctx is cancelled and returns after all in-flight
// probes finished. Only one Run may be active at a time.
func (p *Prober) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()

	for {
		p.fireChange()

		p.mu.Lock()
		now := time.Now()
		var n *node
		wait := time.Hour
		if len(p.queue) > 0 {
			if d := p.queue[0].next.Sub(now); d <= 0 {
				n = heap.Pop(&p.queue).(*node)
			} else {
				wait = d
			}
		}
		p.mu.Unlock()

		if n == nil {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			case <-p.wake:
			}
			continue
		}

		if !p.acquire(ctx) {
			p.requeue([]*node{n})
			return
		}
		wg.Go(func() {
			if p.probe(ctx, n, false) {
				p.mu.Lock()
				p.dirty = true
				p.mu.Unlock()
				p.nudge()
			}
		})
	}
}

// acquire waits for a worker slot. While all slots are busy (many nodes
// hanging until their timeout) it keeps delivering onChange, so state
// changes are not held back by an overloaded schedule.
func (p *Prober) acquire(ctx context.Context) bool {
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

// probe checks n in the slot its caller acquired and applies the result,
// reporting whether n's state changed. The slot covers apply and OnResult
// too, so the number of probe goroutines alive never exceeds maxInFlight. A
// cancelled probe says "canceled", nothing about the node: n is requeued.
func (p *Prober) probe(ctx context.Context, n *node, direct bool) bool {
	defer func() { <-p.sem }()
	r := n.chk.check(ctx)
	if ctx.Err() != nil {
		p.requeue([]*node{n})
		return false
	}
	return p.apply(n, r, direct)
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

// apply records r for n, calls OnResult, and schedules n's next probe. It
// reports whether Up or Checked changed. direct bypasses rise/fall (used by
// InitialRound).
func (p *Prober) apply(n *node, r Result, direct bool) bool {
	p.mu.Lock()
	if p.nodes[n.name] != n {
		// Removed or replaced by Set while the probe ran.
		p.mu.Unlock()
		return false
	}
	old := n.state
	st := &n.state
	st.Last = r
	if r.OK {
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
	now := *st
	p.mu.Unlock()

	if changed {
		p.logChange(n, old, now, r)
	}
	// Called before rescheduling so that calls for one node never overlap
	// and a Snapshot taken inside sees exactly this result applied.
	if p.OnResult != nil {
		p.OnResult(n.name, r)
	}

	p.mu.Lock()
	if p.nodes[n.name] == n && n.index < 0 {
		n.next = time.Now().Add(jitter(n.spec.Interval))
		heap.Push(&p.queue, n)
		if n.index == 0 {
			p.mu.Unlock()
			p.nudge()
			return changed
		}
	}
	p.mu.Unlock()
	return changed
}

func (p *Prober) logChange(n *node, old, now State, r Result) {
	from := "unknown"
	if old.Checked {
		from = upDown(old.Up)
	}
	to := upDown(now.Up)
	reason := r.Err
	if r.OK {
		reason = "ok"
	}
	level := slog.LevelInfo
	if !now.Up {
		level = slog.LevelWarn
	}
	p.logger.Log(context.Background(), level, "health state changed",
		"node", n.name, "old", from, "new", to, "reason", reason,
		"check", n.spec.Type, "latency", r.Latency)
}

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

// jitter spreads probes by ±10% so nodes added together do not stay in
// lockstep and hit shared backends in bursts.
func jitter(interval time.Duration) time.Duration {
	if interval <= 0 {
		interval = time.Second
	}
	spread := int64(interval) / 5
	if spread <= 0 {
		return interval
	}
	return interval - time.Duration(spread/2) + time.Duration(rand.Int64N(spread+1))
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

// nodeHeap orders nodes by next-due time.
type nodeHeap []*node

func (h nodeHeap) Len() int           { return len(h) }
func (h nodeHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h nodeHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h *nodeHeap) Push(x any) {
	n := x.(*node)
	n.index = len(*h)
	*h = append(*h, n)
}

func (h *nodeHeap) Pop() any {
	old := *h
	n := old[len(old)-1]
	old[len(old)-1] = nil
	n.index = -1
	*h = old[:len(old)-1]
	return n
}
