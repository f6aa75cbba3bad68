package dnsserver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"testing"
	"time"

	"github.com/failoverdns/failoverdns/dnsserver/testenv"
	"github.com/failoverdns/failoverdns/health"
	"github.com/failoverdns/failoverdns/zones"
)

// BenchmarkPublishHealthChange is one health change's recompute and
// publish as the server does it (issue 16, acceptance 3): the engine
// decides, the query path's fast table is rebuilt for what changed and the
// metrics follow (the per-service series are read at scrape time), with n
// services over the same three nodes, so the first node's fall moves every
// one of them (failback is manual: its rise moves none). The engine alone
// is zones' BenchmarkHealthChange.
func BenchmarkPublishHealthChange(b *testing.B) {
	for _, n := range []int{1, 100000} {
		b.Run(fmt.Sprintf("%d-services", n), func(b *testing.B) {
			c := testenv.Config{
				Zones: []testenv.Zone{{Origin: "pub.test.", File: "pub.test.zone",
					Text: "$ORIGIN pub.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 192.0.2.53\n"}},
			}
			for i := range 3 {
				c.Nodes = append(c.Nodes, testenv.Node{Name: fmt.Sprintf("n%d", i), Address: fmt.Sprintf("100.64.0.%d", i+1), Check: "type = \"none\"\n"})
			}
			for i := range n {
				c.Services = append(c.Services, testenv.Service{Name: fmt.Sprintf("s%d.pub.test.", i), TTL: 30, Nodes: []string{"n0", "n1", "n2"}, Failback: "manual"})
			}
			snap, err := zones.Load(c.Write(b, b.TempDir()))
			if err != nil {
				b.Fatal(err)
			}
			logger := slog.New(slog.NewTextHandler(io.Discard, nil))
			s := New(snap, logger, "test")
			m := NewMetrics()
			var g configNodes
			done := make(chan struct{}, 1)
			since := time.Now().Add(-time.Hour)
			h := map[string]health.State{}
			for i := range 3 {
				h[fmt.Sprintf("n%d", i)] = health.State{Up: true, Checked: true, Since: since}
			}
			e := zones.NewEngineWith(snap, zones.EngineOptions{
				Logger: logger,
				Publish: func(snap *zones.Snapshot) {
					s.Store(snap)
					m.state.follow(snap)
					g.follow(m, snap.Config)
					select {
					case done <- struct{}{}:
					default:
					}
				},
				Health:         func() map[string]health.State { return maps.Clone(h) },
				OnActiveChange: m.state.activeChanged,
				DecideWorkers:  startProcs, // as StartWith
			})
			e.Recompute()
			<-done
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go e.Run(ctx)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				h["n0"] = health.State{Up: i%2 == 1, Checked: true, Since: time.Now()}
				e.Kick() // as the prober does on a state change
				<-done
			}
		})
	}
}
