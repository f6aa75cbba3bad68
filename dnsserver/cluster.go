package dnsserver

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/failoverdns/failoverdns/zones"
)

// startCluster joins the cluster of [cluster] (README "Running several
// nameservers"). From here on
// the engine answers what the cluster agreed; the query path is unchanged.
func (in *Instance) startCluster(snap *zones.Snapshot, version string, pins map[zones.PinKey]zones.Pin) error {
	dnsAddr := ""
	if len(snap.Config.Server.Listen) > 0 {
		dnsAddr = snap.Config.Server.Listen[0]
	}
	m, err := zones.JoinCluster(zones.MemberOptions{
		Engine:     in.Engine,
		Base:       snap,
		Logger:     in.log,
		StateDir:   snap.Config.Server.StateDir,
		Version:    version,
		DNSAddr:    dnsAddr,
		ImportPins: pins,
	})
	if err != nil {
		return err
	}
	in.member.Store(&m)
	in.Metrics.registerCluster(in)
	return nil
}

// clusterChanged says why a reload cannot apply a [cluster] change: which
// cluster an instance is in, and as whom, is fixed for its lifetime.
func clusterChanged(old, cur *zones.ClusterConfig) error {
	switch {
	case old == nil && cur == nil:
		return nil
	case old == nil:
		return fmt.Errorf("reload: [cluster] was added; restart to join the cluster")
	case cur == nil:
		return fmt.Errorf("reload: [cluster] was removed; restart to leave the cluster")
	}
	a, b := *old, *cur
	a.LocalFailoverAfter, b.LocalFailoverAfter = nil, nil
	if !reflect.DeepEqual(a, b) {
		return fmt.Errorf("reload: [cluster] changed; only local_failover_after applies on reload, restart for the rest")
	}
	return nil
}

// clusterMetrics are the gauges of README "Running several nameservers"
// ("What dig shows"), read from
// the snapshot in force at scrape time.
func (m *Metrics) registerCluster(in *Instance) {
	const ns = "failoverdns"
	agreed := func() *zones.Agreed { return in.Server.Snapshot().Cluster() }
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "cluster_leader",
			Help: "1 while this instance leads the cluster."}, func() float64 {
			if mem := in.memberOf(); mem != nil && mem.IsLeader() {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "cluster_connected",
			Help: "1 while this instance holds a live etcd session; 0 when cut off (answering the last agreed decisions)."}, func() float64 {
			if a := agreed(); a != nil && a.Connected {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "cluster_applied_revision",
			Help: "The etcd revision this instance answers from."}, func() float64 {
			if a := agreed(); a != nil {
				return float64(a.Revision)
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "cluster_beat_age_seconds",
			Help: "Seconds since this instance last received the leader's beat (written every second)."}, func() float64 {
			if a := agreed(); a != nil {
				if t := a.LastBeat(); !t.IsZero() {
					return time.Since(t).Seconds()
				}
			}
			return -1
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "cluster_config_mismatch",
			Help: "Members whose config differs from this instance's (their services' decisions are frozen)."}, func() float64 {
			n := 0
			if a := agreed(); a != nil {
				for _, p := range a.Problems {
					if strings.HasPrefix(p, "config mismatch") {
						n++
					}
				}
			}
			return float64(n)
		}),
	)
	m.clusterLocal = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "cluster_local_decisions_total",
		Help: "Views this instance started deciding alone (cut off from the cluster, or before the cluster decided them)."})
	m.clusterObservers = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "cluster_observers",
		Help: "Live instances that see a node up or down, as the cluster's vote counted them."}, []string{"node", "state"})
	m.Registry.MustRegister(m.clusterLocal, m.clusterObservers)
}

// publishCluster updates the cluster series from a published snapshot.
// Called under gaugeMu.
func (in *Instance) publishCluster(snap *zones.Snapshot) {
	a := snap.Cluster()
	m := in.Metrics
	if a == nil || m.clusterLocal == nil {
		return
	}
	services := snap.Services
	if parent, changed, ok := snap.Derived(); ok && parent == in.localGen && in.gaugeLocal != nil {
		services = make([]*zones.Service, len(changed))
		for j, i := range changed {
			services[j] = snap.Services[i]
		}
	} else {
		in.gaugeLocal = map[zones.PinKey]bool{}
	}
	in.localGen = snap.Gen()
	for _, svc := range services {
		for loc := range snap.LocationCount() {
			k := zones.PinKey{Service: svc.Name}
			if loc > 0 {
				k.Location = snap.LocationName(loc)
			}
			d, ok := snap.Decision(svc.Name, loc)
			if ok && d.Local {
				if !in.gaugeLocal[k] {
					m.clusterLocal.Inc()
				}
				in.gaugeLocal[k] = true
			} else {
				delete(in.gaugeLocal, k)
			}
		}
	}
	for node, h := range a.Health {
		up, total, ok := parseVotes(h.Votes)
		if !ok {
			continue
		}
		m.clusterObservers.WithLabelValues(node, "up").Set(float64(up))
		m.clusterObservers.WithLabelValues(node, "down").Set(float64(total - up))
	}
}

func parseVotes(v string) (up, total int, ok bool) {
	a, b, found := strings.Cut(v, "/")
	if !found {
		return 0, 0, false
	}
	up, err1 := strconv.Atoi(a)
	total, err2 := strconv.Atoi(b)
	return up, total, err1 == nil && err2 == nil
}

// clusterStatus is the cluster part of _status: who leads, what this
// instance applied and how fresh it is, and anything an operator must see.
func clusterStatus(a *zones.Agreed, now time.Time) []string {
	if a == nil {
		return nil
	}
	var line string
	switch {
	case a.Connected:
		beat := "no beat yet"
		if t := a.LastBeat(); !t.IsZero() {
			beat = fmt.Sprintf("beat %.1fs ago", now.Sub(t).Seconds())
		}
		leader := a.Leader
		if leader == "" {
			leader = "none"
		}
		line = fmt.Sprintf("cluster: leader %s, revision %d, %s", leader, a.Revision, beat)
	case a.Cached:
		line = fmt.Sprintf("cluster: unreachable for %s; answering the cached decisions of revision %d", now.Sub(a.CutOffSince).Round(time.Second), a.Revision)
	default:
		line = fmt.Sprintf("cluster: unreachable for %s; answering the last agreed decisions (revision %d)", now.Sub(a.CutOffSince).Round(time.Second), a.Revision)
	}
	out := []string{line}
	for _, p := range a.Problems {
		out = append(out, clip(p))
	}
	return out
}
