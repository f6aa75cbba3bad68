package health

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/failoverdns/failoverdns/dnsserver/testenv"
)

// BenchmarkProber10kTCP probes 10,000 tcp nodes at 1s intervals against a
// few loopback listeners; ns/op is the wall time per completed probe, which
// at this load is the interval divided by the node count if the scheduler
// keeps up.
func BenchmarkProber10kTCP(b *testing.B) {
	const nodes = 10000
	var targets []net.Addr
	for i := range 8 {
		// Each connection is closed plainly: the prober answers our FIN
		// with a reset, so no TIME_WAIT piles up on either side. Resetting
		// here instead could race the dialer's connect and fail it.
		ep := testenv.NewEndpoint(b, fmt.Sprintf("127.0.10.%d", 20+i), 0, true)
		targets = append(targets, &net.TCPAddr{IP: net.ParseIP(ep.IP), Port: ep.Port})
	}
	specs := make(map[string]Spec, nodes)
	for i := range nodes {
		spec := specFor(b, TypeTCP, targets[i%len(targets)])
		spec.Interval, spec.Timeout = time.Second, 800*time.Millisecond
		specs[fmt.Sprintf("n%05d", i)] = spec
	}
	var probes, failed atomic.Int64
	p := NewProberWith(ProberOptions{OnResult: func(_ string, r Result) {
		probes.Add(1)
		if !r.OK {
			failed.Add(1)
		}
	}})
	p.Set(specs)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	b.ResetTimer()
	go func() {
		p.Run(ctx)
		close(done)
	}()
	peak := 0
	for probes.Load() < int64(b.N) {
		peak = max(peak, runtime.NumGoroutine())
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	cancel()
	<-done
	b.ReportMetric(float64(peak), "peak-goroutines")
	if f := failed.Load(); f > 0 {
		b.Logf("%d of %d probes failed", f, probes.Load())
	}
}
