package zones_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/failoverdns/failoverdns/health"
	"github.com/failoverdns/failoverdns/zones"
)

// TestClusterView runs the engine in cluster mode over one table: what an
// instance answers from the agreed state and its own prober (README
// "Running several nameservers", "What each failure does"), with no etcd and no sockets.
func TestClusterView(t *testing.T) {
	now := time.Now()
	hourAgo, tenAgo := now.Add(-time.Hour), now.Add(-10*time.Second)
	const keys, plain = "keys.example.test.", "plain.example.test."
	agreed := func(svc, node string) map[zones.PinKey]zones.AgreedDecision {
		return map[zones.PinKey]zones.AgreedDecision{{Service: svc}: {Decision: zones.Decision{Active: node, Reason: node + " is up"}, Generation: 42, By: "ns2"}}
	}
	up := func(since time.Time) health.State { return health.State{Up: true, Checked: true, Since: since} }
	down := func(since time.Time) health.State {
		return health.State{Checked: true, Since: since, Last: health.Result{Err: "connect: connection refused"}}
	}
	cases := []struct {
		name      string
		service   string
		agreed    map[zones.PinKey]zones.AgreedDecision
		connected bool
		cutOff    time.Time
		never     bool // local_failover_after = "0s"
		health    map[string]health.State
		want      string
		local     bool
		reason    string
	}{
		{name: "connected: the agreed node, whatever this prober sees", service: keys, agreed: agreed(keys, "sems2"), connected: true,
			health: map[string]health.State{"sems1": up(hourAgo), "sems2": down(hourAgo)}, want: "sems2"},
		{name: "connected, the view not decided yet: local, flagged", service: keys, connected: true,
			health: map[string]health.State{"sems1": up(hourAgo), "sems2": up(hourAgo)}, want: "sems1", local: true, reason: "no cluster decision"},
		{name: "cut off, agreed node up here: kept", service: keys, agreed: agreed(keys, "sems2"), cutOff: hourAgo,
			health: map[string]health.State{"sems1": up(hourAgo), "sems2": up(hourAgo)}, want: "sems2"},
		{name: "cut off long, agreed node down long: local failover", service: keys, agreed: agreed(keys, "sems2"), cutOff: hourAgo,
			health: map[string]health.State{"sems1": up(hourAgo), "sems2": down(hourAgo)}, want: "sems1", local: true, reason: "cluster unreachable since"},
		{name: "cut off 10s ago, node down long: wait for local_failover_after from the cut", service: keys, agreed: agreed(keys, "sems2"), cutOff: tenAgo,
			health: map[string]health.State{"sems1": up(hourAgo), "sems2": down(hourAgo)}, want: "sems2"},
		{name: "cut off long, node down 10s: wait for local_failover_after from the fall", service: keys, agreed: agreed(keys, "sems2"), cutOff: hourAgo,
			health: map[string]health.State{"sems1": up(hourAgo), "sems2": down(tenAgo)}, want: "sems2"},
		{name: "cut off, local_failover_after 0s: never decide alone", service: keys, agreed: agreed(keys, "sems2"), cutOff: hourAgo, never: true,
			health: map[string]health.State{"sems1": up(hourAgo), "sems2": down(hourAgo)}, want: "sems2"},
		{name: "cut off, agreed SERVFAIL: kept", service: keys, cutOff: hourAgo,
			agreed: map[zones.PinKey]zones.AgreedDecision{{Service: keys}: {Decision: zones.Decision{Servfail: true, AllDown: true}}},
			health: map[string]health.State{"sems1": up(hourAgo)}, want: "SERVFAIL"},
		{name: "the cluster names a node this config does not give the service: local", service: plain, agreed: agreed(plain, "sems3"), connected: true,
			health: map[string]health.State{"sems1": up(hourAgo), "sems2": up(hourAgo)}, want: "sems1", local: true, reason: "which this config does not give the service"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base, err := zones.Load("../testdata/cluster/valid.toml")
			if err != nil {
				t.Fatalf("Load:\n%v", errors.Join(zones.Errors(err)...))
			}
			if c.never {
				base.Config.Cluster.LocalFailoverAfter = &zones.Duration{}
			}
			e := zones.NewEngineWith(base, zones.EngineOptions{Publish: func(*zones.Snapshot) {}, Health: func() map[string]health.State { return c.health }})
			e.SetAgreed(&zones.Agreed{Decisions: c.agreed, Connected: c.connected, CutOffSince: c.cutOff, LastBeat: func() time.Time { return time.Time{} }})
			d, ok := e.Recompute().Decision(c.service, 0)
			if !ok {
				t.Fatal("no decision")
			}
			got := d.Active
			if d.Servfail {
				got = "SERVFAIL"
			}
			if got != c.want || d.Local != c.local || !strings.Contains(d.Reason, c.reason) {
				t.Fatalf("decision %+v; want %s, local=%v, reason containing %q", d, c.want, c.local, c.reason)
			}
		})
	}
}
