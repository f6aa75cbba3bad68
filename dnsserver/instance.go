package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/failoverdns/failoverdns/health"
	"github.com/failoverdns/failoverdns/zones"
	"github.com/failoverdns/failoverdns/zones/events"
)

// Instance is a running failoverdns: listeners, the prober, the engine that
// turns health into answers, and the HTTP endpoints. cmd/failoverdns and the
// tests start it the same way.
type Instance struct {
	Server  *Server
	Prober  *health.Prober
	Engine  *zones.Engine
	Metrics *Metrics
	// HTTPAddr is the bound HTTP address, "" when server.http is "".
	HTTPAddr string

	log        *slog.Logger
	configPath string
	cancel     context.CancelFunc
	ctx        context.Context
	wg         sync.WaitGroup
	ready      atomic.Bool
	httpSrv    *http.Server
	reloadMu   sync.Mutex
	// reloads is canceled first by Close: a reload in progress (reading a
	// file, probing a new node) gives up, keeping the old config, so it
	// never holds up shutdown; closed (under reloadMu) refuses later ones.
	reloads     context.Context
	stopReloads context.CancelCauseFunc
	closed      bool

	gaugeMu    sync.Mutex
	gauges     configNodes
	gaugeLocal map[zones.PinKey]bool
	localGen   uint64 // the snapshot gaugeLocal follows

	// member is this instance's part in a cluster ([cluster]); nil alone.
	member atomic.Pointer[zones.Member]

	// Events is the event history (history.go); probes the recent probe
	// results of each node, for the status page.
	Events *events.Log
	probes *probeHistory
}

// Options tune Start.
type Options struct {
	Logger  *slog.Logger
	Version string
	// Revision is the VCS commit the binary was built from, for
	// failoverdns_build_info.
	Revision string
	// ConfigPath is what Reload reads again; without it reloads fail.
	ConfigPath string
	// IgnoreState starts without the pins saved in state_dir when that
	// file is corrupt (the file is left alone until the next pin change).
	IgnoreState bool
	// Runtime is what the binary decided about the Go runtime.
	Runtime Runtime
}

// Start probes every node once (so a node already dead is never answered),
// decides every service, binds the listeners and then keeps probing in the
// background until Close.
func Start(snap *zones.Snapshot, logger *slog.Logger, version string) (*Instance, error) {
	return StartWith(snap, Options{Logger: logger, Version: version})
}

// StartWith is Start with options.
func StartWith(snap *zones.Snapshot, o Options) (*Instance, error) {
	if err := zones.ClusterSupport(snap.Config); err != nil {
		return nil, err
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	store, pins, err := zones.OpenPinStore(snap.Config.Server.StateDir)
	if err != nil {
		if !o.IgnoreState || !errors.Is(err, zones.ErrCorruptState) {
			return nil, err
		}
		logger.Warn("ignoring saved pins (-ignore-state)", "err", err)
		store, pins = zones.NewPinStore(snap.Config.Server.StateDir), nil
	}
	if len(store.Swept) > 0 {
		logger.Info("removed the temporary files of pin saves a crash interrupted", "state_dir", snap.Config.Server.StateDir, "files", store.Swept)
	}
	if err := store.Writable(); err != nil {
		logger.Warn("state_dir is not writable: pin UPDATEs will be answered SERVFAIL until it is", "state_dir", snap.Config.Server.StateDir, "err", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &Instance{log: logger, cancel: cancel, ctx: ctx, configPath: o.ConfigPath, Metrics: NewMetrics()}
	in.reloads, in.stopReloads = context.WithCancelCause(ctx)
	in.Metrics.buildInfo.WithLabelValues(o.Version, o.Revision, runtime.Version()).Set(1)
	// Collaborators first, each handed to what uses it when it is made:
	// the prober and the history feed the engine, all three the server.
	in.startHistory(snap)
	in.Prober = health.NewProberWith(health.ProberOptions{
		Logger: logger,
		OnChange: func() {
			in.Engine.Kick()
			if m := in.memberOf(); m != nil {
				m.Observe()
			}
		},
		OnResult: func(node string, r health.Result) {
			if r.OK && zones.IsAnchor(node) && in.Engine.Holding() {
				in.Engine.Kick() // an anchor answered: held falls are real
			}
			in.Metrics.observeProbe(node, in.checkType(node), r)
			in.probes.add(node, r)
		},
		OnStateChange: in.recordStateChange,
	})
	in.Engine = zones.NewEngineWith(snap, zones.EngineOptions{
		Logger:         logger,
		Publish:        in.publish,
		Health:         in.Prober.Snapshot,
		OnActiveChange: in.Metrics.state.activeChanged,
		OnPinChange:    func(action string) { in.Metrics.pinChanges.WithLabelValues(action).Inc() },
		OnRecompute:    func(took time.Duration) { in.Metrics.recompute.Observe(took.Seconds()) },
		OnEvent:        in.Events.Add,
		HoldGC:         o.Runtime.holdGCForPublish,
		DecideWorkers:  startProcs,
	})
	if snap.Config.Cluster == nil {
		in.Engine.SetPins(store, pins)
	}
	in.Server = NewWith(snap, ServerOptions{Logger: logger, Version: o.Version, Metrics: in.Metrics,
		Engine: in.Engine, LiveHealth: in.Prober.Snapshot, History: in.Events, Runtime: o.Runtime})
	in.registerIsolation()
	specs := snap.Config.HealthSpecs()
	in.Prober.Set(specs)

	in.HTTPAddr, err = in.startHTTP(snap.Config.Server.HTTPAddr())
	if err != nil {
		cancel()
		return nil, err
	}
	in.initialRound(specs)
	if snap.Config.Cluster != nil {
		if err := in.startCluster(snap, o.Version, pins); err != nil {
			in.stopHTTP(context.Background())
			cancel()
			return nil, err
		}
	}
	in.Engine.Recompute()

	if err := in.Server.Start(); err != nil {
		in.stopHTTP(context.Background())
		cancel()
		return nil, err
	}
	in.wg.Add(2)
	go func() { defer in.wg.Done(); in.Prober.Run(ctx) }()
	go func() { defer in.wg.Done(); in.Engine.Run(ctx) }()
	in.ready.Store(true)
	// Loading leaves the zone files' bytes and the parse's scratch as
	// garbage (tens of MB for a million records): hand it back now, so RSS
	// follows what is served, not what was read.
	go debug.FreeOSMemory()
	return in, nil
}

// checkType names a node's check for the probe metrics.
func (in *Instance) checkType(node string) string {
	if n := in.Server.Snapshot().Node(node); n != nil {
		return string(n.Check.Type)
	}
	return "unknown"
}

// initialRound probes every node not yet checked, bounded by the largest
// check timeout (plus a guard against a bug there).
func (in *Instance) initialRound(specs map[string]health.Spec) {
	ctx, cancel := context.WithTimeout(in.ctx, probeBound(specs))
	defer cancel()
	in.Prober.InitialRound(ctx)
}

// probeBound is how long one probe of every node in specs may take: the
// largest check timeout, plus a guard against a bug there.
func probeBound(specs map[string]health.Spec) time.Duration {
	var m time.Duration
	for _, s := range specs {
		m = max(m, s.Timeout)
	}
	return m + 5*time.Second
}

// publish is the engine's output: the snapshot goes to the query path, and
// the gauges follow the state it was computed from (the per-service ones
// are read from it when scraped: no work here per service).
func (in *Instance) publish(snap *zones.Snapshot) {
	in.Server.Store(snap)
	m := in.Metrics
	in.gaugeMu.Lock()
	defer in.gaugeMu.Unlock()
	m.state.follow(snap)
	in.gauges.follow(m, snap.Config)
	in.publishCluster(snap)
	m.pins.WithLabelValues("dynamic").Set(float64(len(snap.DynamicPins())))
	m.pins.WithLabelValues("static").Set(float64(len(snap.StaticPins())))
}

// Reload reads the config and zones again and swaps them in atomically. On
// any error the running configuration stays, the error is logged with its
// file:line and counted, and readiness is unaffected. Health of nodes that
// still exist and pins of services that still exist carry over; new nodes
// are probed once before they can be answered.
func (in *Instance) Reload() error { return in.ReloadContext(context.Background()) }

// ReloadContext is Reload that gives up, keeping the old configuration,
// when ctx ends (cmd cancels it on SIGTERM) or the instance closes.
func (in *Instance) ReloadContext(ctx context.Context) error {
	in.reloadMu.Lock()
	defer in.reloadMu.Unlock()
	if in.closed {
		return errors.New("reload: the server is shutting down")
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(in.reloads, func() { cancel(context.Cause(in.reloads)) })
	defer stop()
	err := in.reload(ctx)
	in.recordReload(err)
	if err != nil {
		in.Metrics.reloads.WithLabelValues("failure").Inc()
		in.Metrics.lastReloadOK.Set(0)
		for _, e := range zones.Errors(err) {
			in.log.Error("reload failed; still serving the previous configuration", "err", e.Error())
		}
		return err
	}
	in.Metrics.reloads.WithLabelValues("success").Inc()
	in.Metrics.lastReloadOK.Set(1)
	in.Metrics.configLoadedAt.SetToCurrentTime()
	// Decoding a large config leaves several times its live size in
	// garbage; hand it back now rather than whenever the scavenger gets
	// to it, so RSS follows the config, not the last reload.
	go debug.FreeOSMemory()
	return nil
}

func (in *Instance) reload(ctx context.Context) error {
	if in.configPath == "" {
		return errors.New("reload: this instance was started without a config path")
	}
	old := in.Server.Snapshot().Config
	// Decoding a large config is mostly short-lived garbage: let the heap
	// grow for it instead of collecting several times mid-load (a fifth of
	// a 10,000-service reload), then collect once, after the swap.
	restoreGC := in.Server.runtime.LoadGC()
	snap, err := zones.LoadReusingContext(ctx, in.configPath, old)
	restoreGC()
	if err != nil {
		return err
	}
	if !slices.Equal(old.Server.Listen, snap.Config.Server.Listen) || old.Server.HTTPAddr() != snap.Config.Server.HTTPAddr() {
		in.log.Warn("reload: listen and http addresses change only on restart; keeping the bound ones",
			"listen", old.Server.Listen, "http", old.Server.HTTPAddr())
	}
	if err := clusterChanged(old.Cluster, snap.Config.Cluster); err != nil {
		return err
	}
	if old.Server.StateDir != snap.Config.Server.StateDir {
		return fmt.Errorf("reload: state_dir changed from %s to %s; restart to move the pin state", old.Server.StateDir, snap.Config.Server.StateDir)
	}
	// One ordered hand-over. The nodes this config adds or changes (an
	// address, a target, a port, a check) are probed first, aside, while
	// the old config keeps serving on the old states; then the prober's
	// node set and the engine's config are swapped under the engine's
	// lock, so no decision is made from one config's node names and the
	// other's health, and no state judged for an old address vouches for
	// a new one.
	specs := snap.Config.HealthSpecs()
	changed := in.Prober.Changed(specs)
	pctx, cancel := context.WithTimeout(ctx, probeBound(changed))
	fresh := in.Prober.Probe(pctx, changed)
	cancel()
	if ctx.Err() != nil {
		return fmt.Errorf("reload canceled while probing new and changed nodes (%v); keeping the previous configuration", context.Cause(ctx))
	}
	in.Engine.Handover(snap, func() { in.Prober.Install(specs, fresh) })
	if m := in.memberOf(); m != nil {
		m.SetBase(snap)
	}
	in.log.Info("reloaded", "config", snap.Config.File, "zones", len(snap.Zones), "services", len(snap.Services), "nodes", len(snap.Config.Nodes))
	return nil
}

// memberOf returns this instance's cluster member, nil when it runs alone.
func (in *Instance) memberOf() zones.Member {
	if p := in.member.Load(); p != nil {
		return *p
	}
	return nil
}

// Close stops the listeners, then probing, and waits for both.
func (in *Instance) Close(ctx context.Context) {
	in.ready.Store(false)
	// A reload in progress gives up first (it keeps the old config), and
	// none starts after.
	in.stopReloads(errors.New("the server is shutting down"))
	in.reloadMu.Lock()
	in.closed = true
	in.reloadMu.Unlock()
	in.Server.Shutdown(ctx)
	in.stopHTTP(ctx)
	if m := in.memberOf(); m != nil {
		m.Close()
	}
	in.cancel()
	in.wg.Wait()
}
