package dnsserver

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/zones"
	"github.com/failoverdns/failoverdns/zones/events"
)

// The status page at / (admin_nets only): every service view with its
// active node, reason and age; every node with its health and a sparkline
// of its recent probes; the event timeline; the cluster when there is one.
//
// It is rendered on the server, so it reads without JavaScript; a small
// script then fetches the live part again every second (?part=live, the
// same renderer) and swaps it in, so one template serves both and the page
// never reloads. Polling /status instead would move megabytes a second with
// 10,000 services; the live part is one page of each table, tens of KB.
// Everything is in the binary and inline: the page asks nothing of any
// other host, and its Content-Security-Policy forbids it to.

//go:embed page
var pageFS embed.FS

// Rows per page of each table: the first response stays far under 1 MB
// however large the config.
const (
	pageRows   = 100 // service views
	pageNodes  = 50
	pageEvents = 50
)

var (
	pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
		"ago":   ago,
		"clock": clock,
		"query": pageLink,
		"inc":   func(n int) int { return n + 1 },
	}).ParseFS(pageFS, "page/*.html"))
	pageCSS = mustRead("page/style.css")
	pageJS  = mustRead("page/live.js")
	// pageCSP allows the inline style and script by their hashes and
	// nothing else: no other host, no inline handler, no frame.
	pageCSP = fmt.Sprintf("default-src 'none'; style-src '%s'; script-src '%s'; img-src data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
		cspHash(pageCSS), cspHash(pageJS))
)

func mustRead(name string) string {
	b, err := pageFS.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func cspHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha256-" + base64.StdEncoding.EncodeToString(h[:])
}

// pageQuery is what the page shows: its URL parameters.
type pageQuery struct {
	Q       string // services (and nodes) whose name contains it
	Service string // the timeline of this service only
	Page    int    // of services, from 1
	NPage   int    // of nodes, from 1
}

func parsePageQuery(v url.Values) pageQuery {
	num := func(k string) int {
		n, err := strconv.Atoi(v.Get(k))
		if err != nil || n < 1 {
			return 1
		}
		return n
	}
	q := pageQuery{Q: strings.ToLower(strings.TrimSpace(v.Get("q"))), Page: num("page"), NPage: num("npage")}
	if s := strings.TrimSpace(v.Get("service")); s != "" {
		q.Service = strings.ToLower(s)
	}
	return q
}

// pageLink is the URL of the page with one parameter changed ("page", 3).
func pageLink(q pageQuery, key string, val any) template.URL {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" && s != "1" {
			v.Set(k, s)
		}
	}
	set("q", q.Q)
	set("service", q.Service)
	set("page", strconv.Itoa(q.Page))
	set("npage", strconv.Itoa(q.NPage))
	v.Del(key)
	set(key, fmt.Sprint(val))
	if key == "q" || key == "service" {
		v.Del("page") // a new filter starts on its first page
		v.Del("npage")
	}
	if len(v) == 0 {
		return "?"
	}
	return template.URL("?" + v.Encode())
}

type pageData struct {
	Now      time.Time
	Identity string
	Config   string
	Ready    bool
	Query    pageQuery
	CSS      template.CSS
	JS       template.JS
	Sum      pageSummary
	Services []pageService
	Matched  int // services the filter keeps
	SvcPager pager
	Nodes    []pageNode
	NodePgr  pager
	Events   []pageEvent
	EvMore   bool // older events exist beyond the timeline shown
	Cluster  *ClusterStatus
}

type pageSummary struct {
	Services, Views, Moved, AllDown, Pinned, Local int
	NodesUp, NodesDown, NodesUnknown               int
}

// pager is one table's paging: which rows this page shows, and links to
// its neighbours.
type pager struct {
	Page, Pages, Total, From, To int
	Noun                         string // what the rows are
	key                          string // "page" or "npage"
	q                            pageQuery
}

func newPager(q pageQuery, key, noun string, page, per, total int) pager {
	p := pager{key: key, Noun: noun, q: q, Total: total, Pages: max(1, (total+per-1)/per)}
	p.Page = min(max(page, 1), p.Pages)
	p.From = min((p.Page-1)*per, total)
	p.To = min(p.From+per, total)
	return p
}

// Prev and Next link to the neighbouring pages ("" at either end).
func (p pager) Prev() template.URL {
	if p.Page <= 1 {
		return ""
	}
	return pageLink(p.q, p.key, p.Page-1)
}

func (p pager) Next() template.URL {
	if p.Page >= p.Pages {
		return ""
	}
	return pageLink(p.q, p.key, p.Page+1)
}

type pageService struct {
	Name  string
	Views []pageView
}

type pageView struct {
	ViewStatus
	First   bool      // answering the first node of its order
	AllDown bool      // no node of the order is up
	Since   time.Time // when the view came to its answer (zero: unknown)
	Was     string    // what it answered before ("" for a first decision)
}

type pageNode struct {
	Name, Address, Check, State, Error string
	Since                              time.Time
	RTT                                string
	Spark                              template.HTML
	Cluster                            string // "up 3/3" in cluster mode
	ClusterDown                        bool
}

type pageEvent struct {
	events.Event
	Class, Text string
}

// handlePage serves the status page, to admin_nets only.
func (in *Instance) handlePage(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", in.adminOnly("the status page", in.servePage))
}

func (in *Instance) servePage(w http.ResponseWriter, r *http.Request) {
	d := in.pageData(parsePageQuery(r.URL.Query()))
	name := "index.html"
	if r.URL.Query().Get("part") == "live" {
		name = "live"
	}
	var buf bytes.Buffer
	if err := pageTmpl.ExecuteTemplate(&buf, name, d); err != nil {
		in.log.Error("rendering the status page", "err", err)
		http.Error(w, "rendering the status page failed: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	_, _ = w.Write(buf.Bytes())
}

func (in *Instance) pageData(q pageQuery) pageData {
	snap := in.Server.Snapshot()
	now := time.Now()
	d := pageData{Now: now, Identity: snap.Config.Server.Identity, Config: snap.Config.File, Ready: in.ready.Load(), Query: q,
		CSS: template.CSS(pageCSS), JS: template.JS(pageJS), Cluster: in.clusterStatusOf(snap)}

	// Services: filter, count, order by severity then name; one page of
	// view rows (a service with thousands of locations spans pages, so a
	// page stays small whatever the config).
	type ranked struct {
		svc   *zones.Service
		sev   int // what an operator must look at first: see below
		views int // decided views: the rows it takes
	}
	var matched []ranked
	rows := 0
	shownNodes := map[string]bool{}
	for _, svc := range snap.Services {
		// 0: a view answers SERVFAIL or has every node down; 1: one is
		// off its first node, or pinned; 2: quiet.
		r := ranked{svc: svc, sev: 2}
		for loc := range svc.Orders {
			dec, ok := snap.Decision(svc.Name, loc)
			if !ok {
				continue
			}
			r.views++
			order := svc.OrderOf(loc)
			switch {
			case dec.Servfail || dec.AllDown:
				d.Sum.AllDown++
				r.sev = 0
			case len(order) > 0 && dec.Active != order[0]:
				d.Sum.Moved++
				r.sev = min(r.sev, 1)
			}
			if dec.Pinned {
				d.Sum.Pinned++
				r.sev = min(r.sev, 1)
			}
			if dec.Local {
				d.Sum.Local++
			}
		}
		d.Sum.Views += r.views
		if q.Q != "" && !strings.Contains(svc.Name, q.Q) {
			continue
		}
		matched = append(matched, r)
		rows += r.views
		if q.Q != "" {
			for _, n := range svc.Config.Nodes {
				shownNodes[n] = true
			}
		}
	}
	d.Sum.Services = len(snap.Services)
	d.Matched = len(matched)
	slices.SortFunc(matched, func(a, b ranked) int {
		if a.sev != b.sev {
			return a.sev - b.sev
		}
		return strings.Compare(a.svc.Name, b.svc.Name)
	})
	d.SvcPager = newPager(q, "page", "views", q.Page, pageRows, rows)
	at := 0 // rows before m
	for _, m := range matched {
		if at >= d.SvcPager.To {
			break
		}
		if at+m.views > d.SvcPager.From {
			ps := in.pageService(snap, m.svc)
			lo, hi := max(d.SvcPager.From-at, 0), min(d.SvcPager.To-at, len(ps.Views))
			ps.Views = ps.Views[min(lo, hi):hi]
			d.Services = append(d.Services, ps)
		}
		at += m.views
	}

	// Nodes: down first, then unknown, then up; one page. Up and since
	// come from the snapshot (the engine publishes every change), the
	// last probe from the page's own ring: no copy of every node's state
	// per request.
	states := snap.HealthState()
	type rankedNode struct {
		n    *zones.NodeConfig
		rank int // 0 down, 1 unknown, 2 up
	}
	var nodes []rankedNode
	for i := range snap.Config.Nodes {
		n := &snap.Config.Nodes[i]
		h := states[n.Name]
		r := rankedNode{n, 2}
		switch {
		case !h.Checked:
			r.rank = 1
			d.Sum.NodesUnknown++
		case h.Up:
			d.Sum.NodesUp++
		default:
			r.rank = 0
			d.Sum.NodesDown++
		}
		if q.Q == "" || shownNodes[n.Name] || strings.Contains(strings.ToLower(n.Name), q.Q) {
			nodes = append(nodes, r)
		}
	}
	slices.SortFunc(nodes, func(a, b rankedNode) int {
		if a.rank != b.rank {
			return a.rank - b.rank
		}
		return strings.Compare(a.n.Name, b.n.Name)
	})
	d.NodePgr = newPager(q, "npage", "nodes", q.NPage, pageNodes, len(nodes))
	agreed := snap.Cluster()
	for _, r := range nodes[d.NodePgr.From:d.NodePgr.To] {
		n, h := r.n, states[r.n.Name]
		pn := pageNode{Name: n.Name, Address: n.Address.String(), Check: string(n.Check.Type), State: [...]string{"down", "unknown", "up"}[r.rank], Since: h.Since}
		if a6 := n.Address6.String(); a6 != "" {
			pn.Address += " " + a6
		}
		samples, last := in.probes.recent(n.Name)
		if last.At.IsZero() {
			last = h.Last
		}
		pn.Error = last.Err
		if h.Checked {
			pn.RTT = fmt.Sprintf("%.2f ms", float64(last.Latency)/1e6)
		}
		pn.Spark = sparkline(samples)
		if agreed != nil {
			if ah, ok := agreed.Health[n.Name]; ok {
				pn.Cluster, pn.ClusterDown = upDown(ah.Up)+" "+ah.Votes, !ah.Up
			} else {
				pn.Cluster = "no votes"
			}
		}
		d.Nodes = append(d.Nodes, pn)
	}

	// The timeline, newest first.
	eq := events.Query{Limit: pageEvents}
	if q.Service != "" {
		eq.Service = dns.CanonicalName(q.Service)
		if svc := snap.Service(eq.Service); svc != nil {
			eq.Nodes = svc.Config.Nodes
		}
	}
	evs, more := in.Events.Select(eq)
	d.EvMore = more
	for i := len(evs) - 1; i >= 0; i-- {
		d.Events = append(d.Events, describeEvent(evs[i]))
	}
	return d
}

func (in *Instance) pageService(snap *zones.Snapshot, svc *zones.Service) pageService {
	ss := serviceStatus(snap, svc)
	ps := pageService{Name: ss.Name}
	for _, v := range ss.Views {
		pv := pageView{ViewStatus: v, First: len(v.Order) > 0 && v.Active == v.Order[0]}
		if dec, ok := snap.Decision(svc.Name, snap.LocationIndex(v.Location)); ok {
			pv.AllDown = dec.AllDown
		}
		answer := v.Active
		if v.Servfail {
			answer = "SERVFAIL"
		}
		if ev, ok := in.Events.LastChange(svc.Name, v.Location); ok && ev.New == answer {
			pv.Since, pv.Was = ev.Time, ev.Old
		}
		ps.Views = append(ps.Views, pv)
	}
	return ps
}

// sparkline draws a node's recent probe latencies as an inline SVG: a
// line scaled to the largest in view, failed probes as red marks below it.
func sparkline(s []probeSample) template.HTML {
	const w, h = 120.0, 24.0
	if len(s) == 0 {
		return template.HTML(`<svg class="spark" viewBox="0 0 120 24" width="120" height="24" role="img" aria-label="no probes yet"></svg>`)
	}
	peak, sum, fails := 1.0, 0.0, 0
	for _, p := range s {
		ms := float64(p.us) / 1000
		peak = math.Max(peak, ms)
		sum += ms
		if !p.ok {
			fails++
		}
	}
	step := w / float64(probeKeep-1)
	x0 := w - step*float64(len(s)-1) // newest at the right edge
	var pts, marks strings.Builder
	for i, p := range s {
		x := x0 + step*float64(i)
		y := (h - 4) - (float64(p.us)/1000)/peak*(h-6)
		fmt.Fprintf(&pts, "%.1f,%.1f ", x, y)
		if !p.ok {
			fmt.Fprintf(&marks, `<rect x="%.1f" y="%.1f" width="2" height="4" class="fail"/>`, x-1, h-4)
		}
	}
	label := fmt.Sprintf("last %d probes: average %.2f ms, peak %.2f ms, %d failed", len(s), sum/float64(len(s)), peak, fails)
	return template.HTML(fmt.Sprintf(`<svg class="spark" viewBox="0 0 120 24" width="120" height="24" role="img" aria-label="%s"><title>%s</title><polyline points="%s"/>%s</svg>`,
		label, label, strings.TrimSpace(pts.String()), marks.String()))
}

// describeEvent is an event's line in the timeline.
func describeEvent(ev events.Event) pageEvent {
	pe := pageEvent{Event: ev, Class: string(ev.Kind)}
	view := ev.Service
	if ev.Location != "" && ev.Location != "default" {
		view += " @" + ev.Location
	}
	switch ev.Kind {
	case events.KindNode:
		pe.Text = fmt.Sprintf("node %s %s → %s", ev.Node, ev.Old, ev.New)
		if ev.Error != "" {
			pe.Text += ": " + ev.Error
		}
		if ev.New == "down" {
			pe.Class += " bad"
		}
	case events.KindActive:
		pe.Text = fmt.Sprintf("%s: %s → %s: %s", view, ev.Old, ev.New, ev.Reason)
		pe.Class += " warn"
	case events.KindPin:
		switch ev.Action {
		case events.ActionSet:
			pe.Text = fmt.Sprintf("%s: pinned to %s", view, ev.New)
			if ev.Old != "" {
				pe.Text += " (was " + ev.Old + ")"
			}
		default:
			pe.Text = fmt.Sprintf("%s: pin %s %s", view, ev.Old, ev.Action)
		}
		if ev.Key != "" {
			pe.Text += " by " + ev.Key + " from " + ev.From
		}
		if ev.Reason != "" {
			pe.Text += " (" + ev.Reason + ")"
		}
	case events.KindReload:
		pe.Text = "reload " + string(ev.Action)
		if ev.Reason != "" {
			pe.Text += ": " + ev.Reason
		}
		if ev.Error != "" {
			pe.Text += ": " + ev.Error
			pe.Class += " bad"
		}
	case events.KindAllDown:
		what := "every node"
		if ev.Service != "" {
			what = view + ": all nodes"
		}
		if ev.Action == events.ActionStart {
			pe.Text = what + " down: " + ev.Reason
			pe.Class += " bad"
		} else {
			pe.Text = what + " back: " + ev.Reason
		}
	case events.KindIsolated:
		pe.Text = "prober isolated: " + ev.Reason
		if ev.Error != "" {
			pe.Text += ": " + ev.Error
		}
		if ev.Action == events.ActionStart {
			pe.Class += " bad"
		} else {
			pe.Text = "prober no longer isolated: " + ev.Reason
		}
	default:
		pe.Text = string(ev.Kind)
	}
	return pe
}

// ago is a short age: "4s", "3m12s", "2h5m", "3d4h".
func ago(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := max(now.Sub(t), 0).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

// clock is a time as UTC, with the date only when it is not today's.
func clock(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	t = t.UTC()
	if y, m, d := t.Date(); now.UTC().Year() == y && now.UTC().Month() == m && now.UTC().Day() == d {
		return t.Format("15:04:05Z")
	}
	return t.Format("2006-01-02 15:04:05Z")
}
