package dnsserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/health"
	"github.com/failoverdns/failoverdns/zones"
	"github.com/failoverdns/failoverdns/zones/events"
)

// The event history (zones/events) wired into an instance: the engine's and
// the prober's changes and every reload go in; /events, _status and the
// status page read it. Each instance records what it answers, so in cluster
// mode a follower records the agreed changes as it applies them.

// startHistory opens the history in state_dir; the prober and the engine
// made after it feed it (recordStateChange, EngineOptions.OnEvent). It
// runs before the first probe round and the first decision, so nodes found
// dead at start and the "since" of every first decision are recorded.
func (in *Instance) startHistory(snap *zones.Snapshot) {
	in.Events = events.Open(events.Options{Dir: snap.Config.Server.StateDir, Logger: in.log})
	in.probes = newProbeHistory()
	// Closed after a final write once the instance stops (or fails to
	// start: cancel runs on every error path of StartWith).
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		<-in.ctx.Done()
		in.Events.Close()
	}()
}

// recordStateChange is the prober's OnStateChange: a node that went down
// or came back is an event.
func (in *Instance) recordStateChange(node string, old, now health.State, r health.Result) {
	if !old.Checked && now.Up {
		return // a node found up at start (or once added) is no news
	}
	ev := events.Event{Kind: events.KindNode, Node: node, Check: in.checkType(node), Old: "unknown", New: "down", Error: r.Err, Time: r.At}
	if old.Checked {
		ev.Old = upDown(old.Up)
	}
	if now.Up {
		ev.New = "up"
	}
	in.Events.Add(ev)
}

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

// recordReload adds a reload's outcome to the history and, after a
// success, forgets what belonged to services and nodes the config dropped.
func (in *Instance) recordReload(err error) {
	if err != nil {
		var msgs []string
		for _, e := range zones.Errors(err) {
			msgs = append(msgs, e.Error())
		}
		in.Events.Add(events.Event{Kind: events.KindReload, Action: events.ActionFailed, Error: strings.Join(msgs, "\n"), Reason: "still serving the previous configuration"})
		return
	}
	snap := in.Server.Snapshot()
	in.Events.Add(events.Event{Kind: events.KindReload, Action: events.ActionOK, Reason: fmt.Sprintf("%d services, %d nodes", len(snap.Services), len(snap.Config.Nodes))})
	in.Events.Retain(func(service string) bool { return snap.Service(service) != nil })
	in.probes.retain(func(node string) bool { return snap.Node(node) != nil })
}

// probeKeep is how many recent probe results the page's sparkline shows
// per node: a minute at the default 1 s interval, 10,000 nodes in about
// 300 KB.
const probeKeep = 60

// probeSample is one probe: latency in microseconds, and whether it passed.
type probeSample struct {
	us uint32
	ok bool
}

// probeHistory keeps each node's recent probes for the status page. add
// runs on the prober's goroutines after every probe: two short locks and
// no allocation once the node's ring exists.
type probeHistory struct {
	mu    sync.RWMutex
	nodes map[string]*probeRing
}

type probeRing struct {
	mu   sync.Mutex
	n    int // probes recorded; the newest is at (n-1) % probeKeep
	ring [probeKeep]probeSample
	last health.Result // the newest, whole (its error)
}

func newProbeHistory() *probeHistory {
	return &probeHistory{nodes: map[string]*probeRing{}}
}

func (p *probeHistory) add(node string, r health.Result) {
	p.mu.RLock()
	ring := p.nodes[node]
	p.mu.RUnlock()
	if ring == nil {
		p.mu.Lock()
		if ring = p.nodes[node]; ring == nil {
			ring = &probeRing{}
			p.nodes[node] = ring
		}
		p.mu.Unlock()
	}
	us := r.Latency.Microseconds()
	us = max(0, min(us, 1<<32-1))
	ring.mu.Lock()
	ring.ring[ring.n%probeKeep] = probeSample{us: uint32(us), ok: r.OK}
	ring.n++
	ring.last = r
	ring.mu.Unlock()
}

// recent returns a node's recent probes, oldest first, and the newest
// result whole.
func (p *probeHistory) recent(node string) ([]probeSample, health.Result) {
	p.mu.RLock()
	ring := p.nodes[node]
	p.mu.RUnlock()
	if ring == nil {
		return nil, health.Result{}
	}
	ring.mu.Lock()
	defer ring.mu.Unlock()
	k := min(ring.n, probeKeep)
	out := make([]probeSample, 0, k)
	for i := ring.n - k; i < ring.n; i++ {
		out = append(out, ring.ring[i%probeKeep])
	}
	return out, ring.last
}

func (p *probeHistory) retain(keep func(node string) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for n := range p.nodes {
		if !keep(n) {
			delete(p.nodes, n)
		}
	}
}

// handleHistory serves the history at /events and the status page at /
// (page.go), to admin_nets only.
func (in *Instance) handleHistory(mux *http.ServeMux) {
	mux.HandleFunc("GET /events", in.adminOnly("/events", in.serveEvents))
	in.handlePage(mux)
}

// fromAdmin reports whether an HTTP request comes from admin_nets.
func (in *Instance) fromAdmin(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && in.Server.Snapshot().Config.Server.IsAdmin(ap.Addr())
}

// adminOnly answers 403 to clients outside admin_nets: the history and the
// page show node addresses, errors and who pinned what.
func (in *Instance) adminOnly(what string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !in.fromAdmin(r) {
			http.Error(w, what+" is served to admin_nets only; add the client's address to [server] admin_nets to allow it", http.StatusForbidden)
			return
		}
		h(w, r)
	}
}

// EventsReply is the JSON document at /events.
type EventsReply struct {
	Events []events.Event `json:"events"` // oldest first
	// LastSeq is the newest event's number: pass it back as since= to
	// get only what happened after.
	LastSeq uint64 `json:"last_seq"`
	// Truncated: more events matched than limit; the newest are returned.
	Truncated bool `json:"truncated,omitempty"`
}

// maxEventsReply caps /events' limit= (and is its default): a few hundred
// KB of JSON.
const maxEventsReply = 1000

// eventsQuery reads /events' (and the page's) parameters: since= an RFC
// 3339 time or an event number, service= a service name, limit=.
func (in *Instance) eventsQuery(v map[string][]string) (events.Query, error) {
	get := func(k string) string {
		if s := v[k]; len(s) > 0 {
			return strings.TrimSpace(s[0])
		}
		return ""
	}
	q := events.Query{Limit: maxEventsReply}
	if s := get("since"); s != "" {
		if n, err := strconv.ParseUint(s, 10, 64); err == nil {
			q.AfterSeq = n
		} else if t, err := time.Parse(time.RFC3339, s); err == nil {
			q.Since = t
		} else {
			return q, fmt.Errorf("since=%q: want an RFC 3339 time (2026-11-21T10:00:00Z) or an event number (last_seq of an earlier reply)", s)
		}
	}
	if s := get("service"); s != "" {
		q.Service = dns.CanonicalName(s)
		if svc := in.Server.Snapshot().Service(q.Service); svc != nil {
			q.Nodes = svc.Config.Nodes
		}
	}
	if s := get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxEventsReply {
			return q, fmt.Errorf("limit=%q: want a number from 1 to %d", s, maxEventsReply)
		}
		q.Limit = n
	}
	return q, nil
}

func (in *Instance) serveEvents(w http.ResponseWriter, r *http.Request) {
	q, err := in.eventsQuery(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	evs, truncated := in.Events.Select(q)
	if evs == nil {
		evs = []events.Event{}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(EventsReply{Events: evs, LastSeq: in.Events.LastSeq(), Truncated: truncated})
}

// changeNote is what _status adds to a view's line about its last change:
// "; since 10:02:11Z, was sems1", so the line reads "view default: answer
// sems2: sems1 is down: connect: connection refused; since 10:02:11Z, was
// sems1". decidedBy names the view whose decision applies (a location
// without its own order follows the default view). Empty when the view has
// not changed since it was first decided, or the history does not know:
// the note is kept short because _status must fit a 512-byte UDP answer
// where it can.
func (s *Server) changeNote(service, decidedBy, answer string, now time.Time) string {
	if s.history == nil {
		return ""
	}
	ev, ok := s.history.LastChange(service, decidedBy)
	if !ok || ev.Old == "" || ev.New != answer {
		return ""
	}
	at := ev.Time.UTC().Format(time.RFC3339)
	if now.Sub(ev.Time) < 20*time.Hour {
		at = ev.Time.UTC().Format("15:04:05Z") // today's: the date is noise
	}
	return "; since " + at + ", was " + ev.Old
}

// viewLine is a _status view line, head + reason + tail, within a TXT
// string's 255 octets: a long reason is cut rather than the tail (the
// generation and the last change), which is shorter and says more.
func viewLine(head, reason, tail string) string {
	if room := 255 - len(head) - len(tail); len(reason) > room && room > 3 {
		reason = clip(reason[:room-3] + "...")
	}
	return clip(head + reason + tail)
}
