package dnsserver

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/failoverdns/failoverdns/zones"
)

// gauges keeps the series that follow the published state. Every label set
// the config makes known (its nodes, and each service's views: the default
// and every location with its own order) exists from the first publish of
// that config, at 0: a rate() or increase() alert sees its first event, and
// a dashboard shows a node before it was ever probed. Series are updated in
// place, only when they change, and vanished ones deleted: a scrape between
// a reset and a refill would see a node or service missing, and 40,000
// series rewritten per change would slow every failover of a large config.
// The caller serialises follow (Instance.gaugeMu).
type gauges struct {
	cfg      *zones.Config
	gen      uint64                // the snapshot followed last
	nodes    map[string]bool       // node_up as last set, by node
	services map[string]*svcGauges // by service
	cfgNode  map[string]bool       // nodes of cfg
}

// svcGauges are one service's series as last set.
type svcGauges struct {
	views  map[string]bool    // service_all_down, by location
	active map[[2]string]bool // active_node series at 1: location, node
}

func (g *gauges) follow(m *Metrics, snap *zones.Snapshot) {
	if snap.Config != g.cfg {
		g.configChanged(m, snap.Config)
	}
	health := snap.HealthState()
	nodes := make(map[string]bool, len(snap.Config.Nodes))
	for _, n := range snap.Config.Nodes {
		st := health[n.Name]
		up := st.Checked && st.Up
		if was, ok := g.nodes[n.Name]; !ok || was != up {
			m.nodeUp.WithLabelValues(n.Name).Set(b2f(up))
		}
		nodes[n.Name] = up
	}
	for name := range g.nodes {
		if _, ok := nodes[name]; !ok {
			m.nodeUp.DeleteLabelValues(name)
		}
	}
	g.nodes = nodes

	// A snapshot derived from the one followed last differs only in the
	// services it names: a failover rewrites their series, not 40,000.
	if parent, changed, ok := snap.Derived(); ok && parent == g.gen && g.services != nil {
		for _, i := range changed {
			g.followService(m, snap, snap.Services[i])
		}
	} else {
		if g.services == nil {
			g.services = map[string]*svcGauges{}
		}
		for _, svc := range snap.Services {
			g.followService(m, snap, svc)
		}
		for name, sg := range g.services {
			if snap.Service(name) == nil {
				g.drop(m, name, sg, nil)
				delete(g.services, name)
			}
		}
	}
	g.gen = snap.Gen()
}

// followService sets one service's series from the snapshot.
func (g *gauges) followService(m *Metrics, snap *zones.Snapshot, svc *zones.Service) {
	old := g.services[svc.Name]
	if old == nil {
		old = &svcGauges{}
	}
	cur := &svcGauges{views: map[string]bool{}, active: map[[2]string]bool{}}
	for loc, order := range svc.Orders {
		d, ok := snap.Decision(svc.Name, loc)
		if !ok {
			continue // the location follows the default view
		}
		ln := snap.LocationName(loc)
		if was, ok := old.views[ln]; !ok || was != d.AllDown {
			m.allDown.WithLabelValues(svc.Name, ln).Set(b2f(d.AllDown))
		}
		if _, ok := old.views[ln]; !ok && order == nil {
			// A view that exists only while a location pin holds it.
			m.activeChanges.WithLabelValues(svc.Name, ln)
		}
		cur.views[ln] = d.AllDown
		if d.Active != "" {
			k := [2]string{ln, d.Active}
			if !old.active[k] {
				m.activeNode.WithLabelValues(svc.Name, ln, d.Active).Set(1)
			}
			cur.active[k] = true
		}
	}
	g.drop(m, svc.Name, old, cur)
	g.services[svc.Name] = cur
}

// drop deletes the series of old that cur (nil: none) no longer has.
func (g *gauges) drop(m *Metrics, service string, old, cur *svcGauges) {
	if cur == nil {
		cur = &svcGauges{}
	}
	for ln := range old.views {
		if _, ok := cur.views[ln]; !ok {
			m.allDown.DeleteLabelValues(service, ln)
			m.activeChanges.DeleteLabelValues(service, ln)
		}
	}
	for k := range old.active {
		if !cur.active[k] {
			m.activeNode.DeleteLabelValues(service, k[0], k[1])
		}
	}
}

// configChanged creates the per-node and per-view counters of a new config
// at 0 and drops those of nodes it no longer has.
func (g *gauges) configChanged(m *Metrics, cfg *zones.Config) {
	nodes := make(map[string]bool, len(cfg.Nodes))
	for _, n := range cfg.Nodes {
		nodes[n.Name] = true
		m.nodeProbe.WithLabelValues(n.Name)
	}
	for name := range g.cfgNode {
		if !nodes[name] {
			m.nodeProbe.DeleteLabelValues(name)
			m.probeFailures.DeletePartialMatch(prometheus.Labels{"node": name})
		}
	}
	g.cfg, g.cfgNode = cfg, nodes
	for i := range cfg.Services {
		s := &cfg.Services[i]
		m.activeChanges.WithLabelValues(s.Name, "default")
		for loc := range s.Locations {
			m.activeChanges.WithLabelValues(s.Name, loc)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
