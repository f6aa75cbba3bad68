package dnsserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/failoverdns/failoverdns/zones"
)

// startHTTP serves /metrics, /healthz, /readyz, /status, POST /reload, and
// the event history and status page (history.go, page.go) on server.http. It returns the bound address ("" when disabled).
func (in *Instance) startHTTP(addr string) (string, error) {
	if addr == "" {
		return "", nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", in.readersOnly(promhttp.HandlerFor(in.Metrics.Registry, promhttp.HandlerOpts{})))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !in.ready.Load() {
			http.Error(w, "not ready: first probe round or listeners pending", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /status", in.readersOnly(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(in.Status())
	})))
	mux.HandleFunc("POST /reload", func(w http.ResponseWriter, r *http.Request) {
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil || !in.Server.Snapshot().Config.Server.IsAdmin(ap.Addr()) {
			http.Error(w, "reload is allowed from admin_nets only", http.StatusForbidden)
			return
		}
		if err := in.Reload(); err != nil {
			http.Error(w, "reload failed, still serving the previous configuration:\n"+err.Error(), http.StatusUnprocessableEntity)
			return
		}
		fmt.Fprintln(w, "reloaded")
	})
	in.handleHistory(mux)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("server.http: %w", err)
	}
	in.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 60 * time.Second}
	go func() {
		if err := in.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			in.log.Error("http listener stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	in.log.Info("http listening", "addr", ln.Addr().String(), "paths", "/ /events /metrics /healthz /readyz /status POST /reload")
	return ln.Addr().String(), nil
}

// readersOnly serves h to server.http_nets (by default admin_nets) only:
// /status and /metrics say which nodes exist and which are down, as
// _status does.
func (in *Instance) readersOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil || !in.Server.Snapshot().Config.Server.MayReadHTTP(ap.Addr()) {
			http.Error(w, r.URL.Path+" is served to server.http_nets only (by default admin_nets)", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (in *Instance) stopHTTP(ctx context.Context) {
	if in.httpSrv != nil {
		_ = in.httpSrv.Shutdown(ctx)
	}
}

// Status is the JSON document at /status.
type Status struct {
	Ready     bool                  `json:"ready"`
	Config    string                `json:"config"`
	Services  []ServiceStatus       `json:"services"`
	Nodes     map[string]NodeStatus `json:"nodes"`
	Locations []string              `json:"locations"`
	Cluster   *ClusterStatus        `json:"cluster,omitempty"`
	// DormantPins are dynamic pins kept but not applied: the config lacks
	// their service, location or node. UPDATE deletes one at its name.
	DormantPins []DormantPinJSON `json:"dormant_pins,omitempty"`
}

// DormantPinJSON is one dormant pin in /status.
type DormantPinJSON struct {
	Name string `json:"name"`
	zones.DormantPin
}

// ClusterStatus is /status's cluster part (README "Running several
// nameservers", "What dig shows").
type ClusterStatus struct {
	Leader      string    `json:"leader"`
	IsLeader    bool      `json:"is_leader"`
	Connected   bool      `json:"connected"`
	CutOffSince time.Time `json:"cut_off_since,omitzero"`
	Cached      bool      `json:"cached,omitempty"`
	Revision    int64     `json:"revision"`
	BeatAgeSec  float64   `json:"beat_age_seconds"`
	// Votes per node: "2/3" instances see it up; Up is the agreed state.
	Nodes    map[string]zones.AgreedHealth `json:"nodes"`
	Problems []string                      `json:"problems,omitempty"`
}

type ServiceStatus struct {
	Name  string       `json:"name"`
	Views []ViewStatus `json:"views"`
}

type ViewStatus struct {
	Location string   `json:"location"`
	Order    []string `json:"order"`
	Active   string   `json:"active"`
	Servfail bool     `json:"servfail,omitempty"`
	Reason   string   `json:"reason"`
	Pin      *PinJSON `json:"pin,omitempty"`
	// Cluster mode: the etcd revision that wrote the decision, or Local
	// when this instance decided alone.
	Generation int64 `json:"generation,omitempty"`
	Local      bool  `json:"local,omitempty"`
}

type PinJSON struct {
	zones.Pin
	Source string `json:"source"` // "dynamic" or "zone"
	// ServiceWide marks, on a location's view, the service's pin that
	// applies because the location has none of its own.
	ServiceWide bool `json:"service_wide,omitempty"`
}

type NodeStatus struct {
	Up        bool      `json:"up"`
	Checked   bool      `json:"checked"`
	Since     time.Time `json:"since,omitzero"`
	LatencyMS float64   `json:"latency_ms"`
	LastError string    `json:"last_error,omitempty"`
	Address   string    `json:"address,omitempty"`
	Address6  string    `json:"address6,omitempty"`
}

// Status describes services, views, nodes and pins as they are now.
func (in *Instance) Status() Status {
	snap := in.Server.Snapshot()
	st := Status{Ready: in.ready.Load(), Config: snap.Config.File, Nodes: map[string]NodeStatus{}}
	for i := 1; i < snap.LocationCount(); i++ {
		st.Locations = append(st.Locations, snap.LocationName(i))
	}
	live := in.Server.nodeStates(snap)
	for _, n := range snap.Config.Nodes {
		h := live[n.Name]
		ns := NodeStatus{Up: h.Up, Checked: h.Checked, Since: h.Since, LatencyMS: float64(h.Last.Latency) / 1e6, LastError: h.Last.Err}
		ns.Address, ns.Address6 = n.Address.String(), n.Address6.String()
		st.Nodes[n.Name] = ns
	}
	st.Cluster = in.clusterStatusOf(snap)
	for _, svc := range snap.Services {
		st.Services = append(st.Services, serviceStatus(snap, svc))
	}
	sort.Slice(st.Services, func(i, j int) bool { return st.Services[i].Name < st.Services[j].Name })
	for k, p := range snap.DormantPins() {
		st.DormantPins = append(st.DormantPins, DormantPinJSON{k.Name(), p})
	}
	sort.Slice(st.DormantPins, func(i, j int) bool { return st.DormantPins[i].Name < st.DormantPins[j].Name })
	return st
}

// clusterStatusOf is /status's cluster part, nil outside cluster mode.
func (in *Instance) clusterStatusOf(snap *zones.Snapshot) *ClusterStatus {
	agreed := snap.Cluster()
	if agreed == nil {
		return nil
	}
	cs := &ClusterStatus{Leader: agreed.Leader, Connected: agreed.Connected, Cached: agreed.Cached, Revision: agreed.Revision, Nodes: agreed.Health, Problems: agreed.Problems, BeatAgeSec: -1}
	if !agreed.Connected {
		cs.CutOffSince = agreed.CutOffSince
	}
	if t := agreed.LastBeat(); !t.IsZero() {
		cs.BeatAgeSec = time.Since(t).Seconds()
	}
	if m := in.memberOf(); m != nil {
		cs.IsLeader = m.IsLeader()
	}
	return cs
}

// serviceStatus describes one service's decided views (/status, and the
// status page for the services it shows).
func serviceStatus(snap *zones.Snapshot, svc *zones.Service) ServiceStatus {
	agreed := snap.Cluster()
	ss := ServiceStatus{Name: svc.Name}
	now := time.Now()
	for loc := range svc.Orders {
		if _, ok := snap.Decision(svc.Name, loc); !ok {
			continue // the location follows the default view
		}
		vw, _ := snap.ViewOf(svc.Name, loc, now)
		d := vw.Decision
		v := ViewStatus{Location: vw.Location, Order: vw.Order, Active: d.Active, Servfail: d.Servfail, Reason: d.Reason, Local: d.Local}
		k := zones.PinKey{Service: svc.Name}
		if loc > 0 {
			k.Location = vw.Location
		}
		if agreed != nil && !d.Local {
			if ad, ok := agreed.Decisions[k]; ok {
				v.Generation = ad.Generation
			}
		}
		if vw.Pinned {
			v.Pin = &PinJSON{vw.Pin, vw.PinSource, vw.PinKey != k}
		}
		ss.Views = append(ss.Views, v)
	}
	return ss
}
