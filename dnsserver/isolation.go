package dnsserver

import "github.com/prometheus/client_golang/prometheus"

// registerIsolation exports the anchors' verdict on the prober ([server]
// anchors): 1 while it is isolated and node states are held.
func (in *Instance) registerIsolation() {
	in.Metrics.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "failoverdns", Name: "prober_isolated",
		Help: "1 while every anchor fails along with the nodes: the prober is taken to be cut off and node states are held (server.anchors)."},
		func() float64 {
			if in.Server.Snapshot().Isolation().Isolated {
				return 1
			}
			return 0
		}))
}
