//go:build !unix

package main

import (
	"context"
	"log/slog"
)

// toggleOnSignal: there is no SIGUSR1 here; the demo nodes stay up.
func (d *demoNodes) toggleOnSignal(ctx context.Context, logger *slog.Logger) {
	logger.Info("demo: SIGUSR1 is not available on this system; the demo nodes stay up")
	<-ctx.Done()
}
