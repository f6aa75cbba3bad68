// Package events keeps the history an operator reads during an incident:
// node state changes, active-node changes, pins set, removed or lapsed,
// reloads and all-down episodes, newest last, in a bounded ring in memory
// and, when a folder is given, in an append-only file there that survives
// restarts (file.go).
//
// Recording is cheap and never blocks on I/O: Add appends to the ring under
// a short lock and nudges a writer goroutine, which appends what arrived at
// most once per flush interval. The engine calls Add under its own lock, so
// nothing here may wait for the disk or call back into the engine.
package events

import (
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// Kind is what an event is about.
type Kind string

const (
	// KindNode: a node's health changed (Old and New are "up", "down" or
	// "unknown"; Error is the failing check's reason).
	KindNode Kind = "node"
	// KindActive: the node a view answers changed (Old and New name the
	// nodes, or SERVFAIL; Reason says why). With Old "" it is a view's
	// first decision, kept only as the view's last change, never in the
	// ring: a start of 10,000 services is not 10,000 events.
	KindActive Kind = "active"
	// KindPin: a dynamic pin was set, removed or lapsed (Action).
	KindPin Kind = "pin"
	// KindReload: a reload succeeded or failed (Action; Error).
	KindReload Kind = "reload"
	// KindAllDown: an all-down episode started or ended (Action), for
	// one view (Service set) or for every node at once (Service "").
	KindAllDown Kind = "all_down"
	// KindIsolated: the prober was cut off (every anchor failed too) or
	// is no longer (Action start, end).
	KindIsolated Kind = "isolated"
)

func (k Kind) String() string { return string(k) }

// Action refines a kind.
type Action string

const (
	ActionSet     Action = "set"     // pin
	ActionRemoved Action = "removed" // pin deleted by UPDATE (or by the cluster)
	ActionLapsed  Action = "lapsed"  // pin whose until= passed
	ActionOK      Action = "ok"      // reload
	ActionFailed  Action = "failed"  // reload
	ActionStart   Action = "start"   // all-down episode, isolation
	ActionEnd     Action = "end"     // all-down episode, isolation
)

func (a Action) String() string { return string(a) }

// Event is one thing that happened. Which fields are set depends on Kind.
type Event struct {
	Seq      uint64    `json:"seq"` // increasing, kept across restarts
	Time     time.Time `json:"time"`
	Kind     Kind      `json:"kind"`
	Action   Action    `json:"action,omitempty"`
	Service  string    `json:"service,omitempty"`
	Location string    `json:"location,omitempty"` // "default" for a service's default view
	Node     string    `json:"node,omitempty"`
	Check    string    `json:"check,omitempty"` // node: the check type
	Old      string    `json:"old,omitempty"`
	New      string    `json:"new,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Error    string    `json:"error,omitempty"`
	Key      string    `json:"key,omitempty"`  // pin: the TSIG key that set it
	From     string    `json:"from,omitempty"` // pin: the address it came from
}

// maxField bounds every string of an event (a reload's errors can run to
// pages), so the ring's size in events bounds its size in bytes, and a
// record in the file stays a few kilobytes at most.
const maxField = 1024

func clipField(s string) string {
	if len(s) <= maxField {
		return s
	}
	// Cut on a rune boundary so the JSON stays valid UTF-8.
	cut := maxField - 3
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "..."
}

func (ev *Event) clip() {
	for _, p := range []*string{&ev.Service, &ev.Location, &ev.Node, &ev.Check, &ev.Old, &ev.New, &ev.Reason, &ev.Error, &ev.Key, &ev.From} {
		*p = clipField(*p)
	}
}

// Defaults for Options.
const (
	DefaultLimit    = 10000
	DefaultMaxBytes = 8 << 20
	DefaultFlush    = time.Second
	FileName        = "events.log"
)

// Options tune Open.
type Options struct {
	// Dir is the folder of the history file (state_dir); "" keeps the
	// history in memory only.
	Dir string
	// Limit is how many events the ring holds (DefaultLimit).
	Limit int
	// MaxBytes bounds the file (DefaultMaxBytes): when an append would
	// pass it, the file is rewritten with the newest events that fill
	// half of it.
	MaxBytes int64
	// Flush is the longest an event waits in memory before it is
	// appended (DefaultFlush): a crash loses at most that much.
	Flush  time.Duration
	Logger *slog.Logger
	// hook, in tests, runs between the steps of a write with the newest
	// event number the file holds once the write completes.
	hook func(step string, seq uint64)
}

// Log is the event history. Its methods are safe for concurrent use.
type Log struct {
	o   Options
	log *slog.Logger

	mu   sync.Mutex
	ring []Event // circular once full
	head int     // index of the oldest event when full
	seq  uint64
	last map[viewKey]*lastChange // the last active-node change of each view
	// first is the first decision recorded last: the next one with the
	// same time, answer and reason (a start deciding 100,000 views in one
	// recompute) shares it.
	first   *lastChange
	pending []Event // recorded, not yet in the file

	kick chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
	file *file // nil: memory only
}

type viewKey struct{ service, location string }

// lastChange is an active-node event as the last change of its view,
// without what the view's key says and the fields such events leave empty:
// a third of an Event, and there is one per view (100,000 services: 27 MB
// as whole events). An event with more set is kept whole in full.
type lastChange struct {
	seq              uint64
	time             time.Time
	old, new, reason string
	full             *Event
}

func toLast(ev Event) *lastChange {
	if ev.Action != "" || ev.Node != "" || ev.Check != "" || ev.Error != "" || ev.Key != "" || ev.From != "" {
		return &lastChange{full: &ev, new: ev.New}
	}
	return &lastChange{seq: ev.Seq, time: ev.Time, old: ev.Old, new: ev.New, reason: ev.Reason}
}

func (c *lastChange) event(k viewKey) Event {
	if c.full != nil {
		return *c.full
	}
	return Event{Seq: c.seq, Time: c.time, Kind: KindActive, Service: k.service, Location: k.location, Old: c.old, New: c.new, Reason: c.reason}
}

// Open returns a history holding what o.Dir's file kept (if any) and
// starts its writer. It never fails: a file that cannot be read or written
// is logged, with what to do, and the history runs in memory.
func Open(o Options) *Log {
	if o.Limit <= 0 {
		o.Limit = DefaultLimit
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.Flush <= 0 {
		o.Flush = DefaultFlush
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Log{
		o:    o,
		log:  o.Logger,
		ring: make([]Event, 0, min(o.Limit, 1024)),
		last: map[viewKey]*lastChange{},
		kick: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	if o.Dir != "" {
		f, loaded := openFile(o, l.log)
		l.file = f
		for _, ev := range loaded {
			l.push(ev)
		}
	}
	l.wg.Add(1)
	go l.writer()
	return l
}

// Close writes what is pending and stops the writer.
func (l *Log) Close() {
	select {
	case <-l.done:
		return
	default:
	}
	close(l.done)
	l.wg.Wait()
}

// Add records ev, stamping its sequence number (and its time when zero).
// It never blocks on I/O.
func (l *Log) Add(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev.Time = ev.Time.UTC()
	ev.clip()
	l.mu.Lock()
	if ev.Kind == KindActive && ev.Old == "" {
		// A view's first decision: its "since", not news. A restart
		// deciding what the view answered before keeps the older
		// change, which says why it answers that.
		k := viewKey{ev.Service, ev.Location}
		if prev, ok := l.last[k]; !ok || prev.new != ev.New {
			c := l.first
			if c == nil || c.full != nil || !c.time.Equal(ev.Time) || c.time.Location() != ev.Time.Location() || c.new != ev.New || c.reason != ev.Reason || c.old != ev.Old || c.seq != ev.Seq {
				c = toLast(ev)
				l.first = c
			}
			l.last[k] = c // never changed in place: replaced
		}
		l.mu.Unlock()
		return
	}
	l.seq++
	ev.Seq = l.seq
	l.push(ev)
	if l.file != nil {
		l.pending = append(l.pending, ev)
		if len(l.pending) >= 2*l.o.Limit {
			// The disk is failing and the writer retries, or one
			// recompute changed more views than the ring holds: keep
			// the newest, as the ring does. Trimmed by half the
			// buffer at once, so a burst of 100,000 changes costs one
			// copy per Limit events, not one per event.
			n := copy(l.pending, l.pending[len(l.pending)-l.o.Limit:])
			clear(l.pending[n:])
			l.pending = l.pending[:n]
		}
	}
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// push appends ev to the ring (l.mu held, or before the writer starts).
func (l *Log) push(ev Event) {
	l.seq = max(l.seq, ev.Seq)
	if ev.Kind == KindActive {
		l.last[viewKey{ev.Service, ev.Location}] = toLast(ev)
	}
	if len(l.ring) < l.o.Limit {
		l.ring = append(l.ring, ev)
		return
	}
	l.ring[l.head] = ev
	l.head = (l.head + 1) % len(l.ring)
}

// each calls fn on the events oldest first (l.mu held).
func (l *Log) each(fn func(Event)) {
	n := len(l.ring)
	for i := range n {
		fn(l.ring[(l.head+i)%n])
	}
}

// Len is the number of events in the ring.
func (l *Log) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ring)
}

// LastSeq is the sequence number of the newest event (0: none yet).
func (l *Log) LastSeq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq
}

// LastChange returns the newest active-node event of a view (location
// "default" for the default view): when it changed, from what and why.
// A view not changed since it was first decided returns that decision,
// with Old "".
func (l *Log) LastChange(service, location string) (Event, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := viewKey{service, location}
	c, ok := l.last[k]
	if !ok {
		return Event{}, false
	}
	return c.event(k), true
}

// Retain forgets the last changes of views whose service keep says no
// longer exists (after a reload), so that map follows the config.
func (l *Log) Retain(keep func(service string) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.last {
		if !keep(k.service) {
			delete(l.last, k)
		}
	}
}

// Query selects events.
type Query struct {
	AfterSeq uint64    // only events with a larger Seq
	Since    time.Time // only events at or after it
	// Service keeps the events of this service and those of its Nodes
	// (their health), "" keeps all.
	Service string
	Nodes   []string
	// Limit is the most events returned, the newest ones; 0 = all.
	Limit int
}

func (q Query) match(ev Event) bool {
	if ev.Seq <= q.AfterSeq || (!q.Since.IsZero() && ev.Time.Before(q.Since)) {
		return false
	}
	if q.Service == "" {
		return true
	}
	if strings.EqualFold(ev.Service, q.Service) {
		return true
	}
	return ev.Kind == KindNode && slices.Contains(q.Nodes, ev.Node)
}

// Select returns the events q matches, oldest first, and whether older
// matching events were left out by q.Limit.
func (l *Log) Select(q Query) (out []Event, truncated bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.each(func(ev Event) {
		if q.match(ev) {
			out = append(out, ev)
		}
	})
	if q.Limit > 0 && len(out) > q.Limit {
		out = slices.Clone(out[len(out)-q.Limit:])
		truncated = true
	}
	return out, truncated
}
