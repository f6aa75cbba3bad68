package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/failoverdns/failoverdns/zones"
)

// demoBanner takes the DNS addresses, the pid and the status page's
// address.
const demoBanner = `failoverdns demo: serving demo.test on %[1]v
  dig @127.0.0.1 -p 5353 demo.test SOA
  dig @127.0.0.1 -p 5353 keys.demo.test          (the active node: sems1, 127.0.10.1)
Status page:   http://%[3]s/   (live: open it, then make a failover)
To see a failover: kill -USR1 %[2]d   (sems1's health endpoint starts failing;
  keys.demo.test moves to sems2 within about a second, and the page shows it;
  send USR1 again to bring sems1 back, and traffic returns after
  failback_after = 10s)
To pin sems2:  printf 'server 127.0.0.1 5353\nzone demo.test\nupdate add _pin.keys.demo.test 0 TXT "sems2"\nsend\n' \
                 | nsupdate -y hmac-sha256:demo-admin.:ZGVtby1vbmx5LWtleS1kby1ub3QtdXNlLWluLXByb2Q=
To see why:    dig @127.0.0.1 -p 5353 TXT _status.keys.demo.test +short
What changed:  curl -s http://%[3]s/events
`

// demoNodes are the HTTP health endpoints of the demo's nodes, served by the
// demo itself on their loopback addresses so that every check is real.
type demoNodes struct {
	servers []*http.Server
	first   atomic.Bool // true while the first node reports failure
}

func startDemoNodes(snap *zones.Snapshot) (*demoNodes, error) {
	d := &demoNodes{}
	for i, spec := range snap.Config.Nodes {
		hs := snap.Config.HealthSpecs()[spec.Name]
		addr := net.JoinHostPort(hs.Addr.String(), strconv.Itoa(int(hs.Port)))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("node %s health endpoint: %w", spec.Name, err)
		}
		fail := func() bool { return false }
		if i == 0 {
			fail = d.first.Load
		}
		srv := &http.Server{
			ReadHeaderTimeout: 5 * time.Second,
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if fail() {
					http.Error(w, "demo: node switched off with SIGUSR1", http.StatusServiceUnavailable)
					return
				}
				fmt.Fprintln(w, "ok")
			}),
		}
		d.servers = append(d.servers, srv)
		go srv.Serve(ln)
	}
	return d, nil
}

// toggle switches the first node's health endpoint between ok and failing.
func (d *demoNodes) toggle(logger *slog.Logger) {
	failing := !d.first.Load()
	d.first.Store(failing)
	logger.Info("demo: first node's health endpoint switched", "failing", failing)
}

func (d *demoNodes) Close() {
	for _, s := range d.servers {
		s.Close()
	}
}
