package dnsserver

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/failoverdns/failoverdns/zones"
)

// stateMetrics are the series that follow the published state: node_up,
// service_all_down, active_node and active_changes_total. They are read
// from the snapshot in force when scraped, not kept as one client_golang
// series per service: those took about 2 KB per service (100,000 services:
// 200 MB), and a failover of 100,000 services rewrote 200,000 of them
// after every publish. Every label set the config makes known (its nodes,
// and each service's views: the default and every location with its own
// order, or one a location pin holds) is exported from the first publish
// of that config, the counters at 0, so a rate() or increase() alert sees
// its first event and a dashboard shows a node before it was ever probed;
// a scrape never sees a series missing between two publishes.
type stateMetrics struct {
	nodeUp, allDown, activeNode, activeChanges *prometheus.Desc

	// snap is the snapshot published last (follow).
	snap atomic.Pointer[zones.Snapshot]

	// changes counts each view's active-node changes; a view without an
	// entry has had none. mu guards it and gen, the snapshot changes
	// was last pruned for.
	mu      sync.Mutex
	changes map[viewName]uint64
	gen     uint64
}

// viewName is a view as the metrics label it: service, location name
// ("default" for the default view).
type viewName struct{ service, location string }

func newStateMetrics(ns string) *stateMetrics {
	return &stateMetrics{
		nodeUp: prometheus.NewDesc(prometheus.BuildFQName(ns, "", "node_up"),
			"1 when the node passes its health check (after rise/fall), else 0.", []string{"node"}, nil),
		allDown: prometheus.NewDesc(prometheus.BuildFQName(ns, "", "service_all_down"),
			"1 while no node of a service's view (default or a location's order) is up, so when_all_down decides the answer (SERVFAIL with \"servfail\").", []string{"service", "location"}, nil),
		activeNode: prometheus.NewDesc(prometheus.BuildFQName(ns, "", "active_node"),
			"1 for the node a service answers in a location.", []string{"service", "location", "node"}, nil),
		activeChanges: prometheus.NewDesc(prometheus.BuildFQName(ns, "", "active_changes_total"),
			"Changes of the active node, by service and location.", []string{"service", "location"}, nil),
		changes: map[viewName]uint64{},
	}
}

// activeChanged counts one change of a view's active node (the engine's
// OnActiveChange: after the snapshot with the change is published).
func (sm *stateMetrics) activeChanged(service, location string) {
	sm.mu.Lock()
	sm.changes[viewName{service, location}]++
	sm.mu.Unlock()
}

// follow makes snap the state scraped, and forgets the change counts of
// views it no longer has (a service or location order a reload removed, a
// location pin lifted): a view that comes back counts from 0, as a series
// deleted and created again would. A snapshot derived from the one
// followed last differs only in the services it names.
func (sm *stateMetrics) follow(snap *zones.Snapshot) {
	sm.snap.Store(snap)
	sm.mu.Lock()
	defer sm.mu.Unlock()
	parent, changed, derived := snap.Derived()
	switch {
	case len(sm.changes) == 0:
	case derived && parent == sm.gen:
		if snap.LocationCount() == 1 {
			break // the default view is always there
		}
		for _, i := range changed {
			svc := snap.Services[i]
			for loc := 1; loc < len(svc.Orders); loc++ {
				if !hasView(snap, svc, loc) {
					delete(sm.changes, viewName{svc.Name, snap.LocationName(loc)})
				}
			}
		}
	default:
		for v := range sm.changes {
			svc := snap.Service(v.service)
			loc := 0
			if v.location != "default" {
				loc = snap.LocationIndex(v.location)
			}
			if svc == nil || (v.location != "default" && loc == 0) || !hasView(snap, svc, loc) {
				delete(sm.changes, v)
			}
		}
	}
	sm.gen = snap.Gen()
}

// hasView reports whether view loc of svc is exported: the default view,
// a location with its own order, or one decided apart (a location pin).
func hasView(snap *zones.Snapshot, svc *zones.Service, loc int) bool {
	if loc == 0 || (loc < len(svc.Orders) && svc.Orders[loc] != nil) {
		return true
	}
	_, ok := snap.Decision(svc.Name, loc)
	return ok
}

// count is a view's changes so far. The lock is taken per view, not for
// the whole scrape, which takes seconds at 100,000 services while the
// engine counts changes under its own lock.
func (sm *stateMetrics) count(v viewName) float64 {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	return float64(sm.changes[v])
}

func (sm *stateMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- sm.nodeUp
	ch <- sm.allDown
	ch <- sm.activeNode
	ch <- sm.activeChanges
}

func (sm *stateMetrics) Collect(ch chan<- prometheus.Metric) {
	snap := sm.snap.Load()
	if snap == nil {
		return // nothing published yet
	}
	health := snap.HealthState()
	for _, n := range snap.Config.Nodes {
		st := health[n.Name]
		ch <- prometheus.MustNewConstMetric(sm.nodeUp, prometheus.GaugeValue, b2f(st.Checked && st.Up), n.Name)
	}
	for _, svc := range snap.Services {
		for loc := range svc.Orders {
			d, decided := snap.Decision(svc.Name, loc)
			if !decided && (loc > 0 && svc.Orders[loc] == nil) {
				continue // the location follows the default view
			}
			ln := snap.LocationName(loc)
			ch <- prometheus.MustNewConstMetric(sm.activeChanges, prometheus.CounterValue, sm.count(viewName{svc.Name, ln}), svc.Name, ln)
			if !decided {
				continue
			}
			ch <- prometheus.MustNewConstMetric(sm.allDown, prometheus.GaugeValue, b2f(d.AllDown), svc.Name, ln)
			if d.Active != "" {
				ch <- prometheus.MustNewConstMetric(sm.activeNode, prometheus.GaugeValue, 1, svc.Name, ln, d.Active)
			}
		}
	}
}

// configNodes keeps the per-node series that are counted, not read from
// the snapshot: each node of a new config exists at 0 from its first
// publish, and the series of nodes it no longer has are deleted. The
// caller serialises it (Instance.gaugeMu).
type configNodes struct {
	cfg   *zones.Config
	nodes map[string]bool
}

func (g *configNodes) follow(m *Metrics, cfg *zones.Config) {
	if cfg == g.cfg {
		return
	}
	nodes := make(map[string]bool, len(cfg.Nodes))
	for _, n := range cfg.Nodes {
		nodes[n.Name] = true
		m.nodeProbe.WithLabelValues(n.Name)
	}
	for name := range g.nodes {
		if !nodes[name] {
			m.nodeProbe.DeleteLabelValues(name)
			m.probeFailures.DeletePartialMatch(prometheus.Labels{"node": name})
		}
	}
	g.cfg, g.nodes = cfg, nodes
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
