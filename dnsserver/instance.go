package dnsserver

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/failoverdns/failoverdns/health"
	"github.com/failoverdns/failoverdns/zones"
)

// Instance is a running failoverdns: listeners, the prober and the engine
// that turns health into answers. cmd/failoverdns and the tests start it the
// same way.
type Instance struct {
	Server *Server
	Prober *health.Prober
	Engine *zones.Engine

	log    *slog.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Options tune Start.
type Options struct {
	Logger  *slog.Logger
	Version string
	// IgnoreState starts without the pins saved in state_dir when that
	// file is corrupt (the file is left alone until the next pin change).
	IgnoreState bool
}

// Start probes every node once (so a node already dead is never answered),
// decides every service, binds the listeners and then keeps probing in the
// background until Close.
func Start(snap *zones.Snapshot, logger *slog.Logger, version string) (*Instance, error) {
	return StartWith(snap, Options{Logger: logger, Version: version})
}

// StartWith is Start with options.
func StartWith(snap *zones.Snapshot, o Options) (*Instance, error) {
	logger := o.Logger
	store, pins, err := zones.OpenPinStore(snap.Config.Server.StateDir)
	if err != nil {
		if !o.IgnoreState || !isCorrupt(err) {
			return nil, err
		}
		logger.Warn("ignoring saved pins (-ignore-state)", "err", err)
		store, pins = zones.NewPinStore(snap.Config.Server.StateDir), nil
	}
	if err := store.Writable(); err != nil {
		logger.Warn("state_dir is not writable: pin UPDATEs will be answered SERVFAIL until it is", "state_dir", snap.Config.Server.StateDir, "err", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &Instance{log: logger, cancel: cancel}
	in.Server = New(snap, logger, o.Version)
	in.Engine = zones.NewEngine(snap, logger, in.Server.Store)
	in.Engine.SetPins(store, pins)
	in.Prober = health.NewProber(logger, in.Engine.Kick)
	in.Engine.Health = in.Prober.Snapshot
	in.Server.engine = in.Engine
	in.Server.liveHealth = in.Prober.Snapshot
	in.Prober.Set(snap.Config.HealthSpecs())

	// InitialRound is bounded by the largest check timeout; the extra
	// deadline only guards against a bug there.
	roundCtx, roundCancel := context.WithTimeout(ctx, maxTimeout(snap)+5*time.Second)
	in.Prober.InitialRound(roundCtx)
	roundCancel()
	in.Engine.Recompute()

	if err := in.Server.Start(); err != nil {
		cancel()
		return nil, err
	}
	in.wg.Add(2)
	go func() { defer in.wg.Done(); in.Prober.Run(ctx) }()
	go func() { defer in.wg.Done(); in.Engine.Run(ctx) }()
	return in, nil
}

func isCorrupt(err error) bool { return errors.Is(err, zones.ErrCorruptState) }

func maxTimeout(snap *zones.Snapshot) time.Duration {
	var m time.Duration
	for _, s := range snap.Config.HealthSpecs() {
		m = max(m, s.Timeout)
	}
	return m
}

// Close stops the listeners, then probing, and waits for both.
func (in *Instance) Close(ctx context.Context) {
	in.Server.Shutdown(ctx)
	in.cancel()
	in.wg.Wait()
}
