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
	cfg     *zones.Config
	nodes   map[string]bool    // node_up as last set, by node
	views   map[[2]string]bool // service_all_down as last set, by service and location
	active  map[[3]string]bool // active_node series at 1
	cfgNode map[string]bool    // nodes of cfg
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

	views := make(map[[2]string]bool, len(g.views))
	active := make(map[[3]string]bool, len(g.active))
	for _, svc := range snap.Services {
		for loc, order := range svc.Orders {
			d, ok := snap.Decision(svc.Name, loc)
			if !ok {
				continue // the location follows the default view
			}
			v := [2]string{svc.Name, snap.LocationName(loc)}
			if was, ok := g.views[v]; !ok || was != d.AllDown {
				m.allDown.WithLabelValues(v[:]...).Set(b2f(d.AllDown))
			}
			if _, ok := g.views[v]; !ok && order == nil {
				// A view that exists only while a location pin holds it.
				m.activeChanges.WithLabelValues(v[:]...)
			}
			views[v] = d.AllDown
			if d.Active != "" {
				k := [3]string{v[0], v[1], d.Active}
				if !g.active[k] {
					m.activeNode.WithLabelValues(k[:]...).Set(1)
				}
				active[k] = true
			}
		}
	}
	for v := range g.views {
		if _, ok := views[v]; !ok {
			m.allDown.DeleteLabelValues(v[:]...)
			m.activeChanges.DeleteLabelValues(v[:]...)
		}
	}
	for k := range g.active {
		if !active[k] {
			m.activeNode.DeleteLabelValues(k[:]...)
		}
	}
	g.views, g.active = views, active
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
