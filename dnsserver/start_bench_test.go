//go:build unix

package dnsserver_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/dnsserver"
	"github.com/failoverdns/failoverdns/dnsserver/testenv"
	"github.com/failoverdns/failoverdns/zones"
)

// BenchmarkStart100kServices is the start of bench/scale.sh's 100,000
// services row (issue 16, acceptance 1: start <= 1.5 s), in process: the
// config bench/lib/scale_row.py writes (100,000 services over the same
// three nodes, TCP checks against loopback listeners), loaded (decode,
// validate, zone) and started (first probe round, first decisions, the fast
// table, the gauges, the listeners) until the last service answers its
// first node. The scale row adds exec, the runtime's start and logging the
// 100,000 first decisions to a file.
//
//	go test -run '^$' -bench Start100k -benchtime 3x ./dnsserver
func BenchmarkStart100kServices(b *testing.B) {
	dir := writeScaleRow(b, 100000)
	path := filepath.Join(dir, "config.toml")
	logger := slog.New(slog.DiscardHandler)
	b.ReportAllocs()
	var cpu time.Duration
	b.ResetTimer()
	for range b.N {
		c0 := cpuTime()
		snap, err := zones.Load(path)
		if err != nil {
			b.Fatal(err)
		}
		in, err := dnsserver.StartWith(snap, dnsserver.Options{Logger: logger, ConfigPath: path})
		if err != nil {
			b.Fatal(err)
		}
		r, err := testenv.Ask("udp", "", in.Server.Addrs()[0], "s99999.scale.test.", dns.TypeA)
		if err != nil {
			b.Fatal(err)
		}
		if got := testenv.AnswerOf(r); got != "127.0.40.1" {
			b.Fatalf("s99999 answers %s, want 127.0.40.1", got)
		}
		cpu += cpuTime() - c0
		b.StopTimer()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		in.Close(ctx)
		cancel()
		snap, in = nil, nil
		runtime.GC()
		b.StartTimer()
	}
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
}

// BenchmarkLoad100kServices is zones.Load alone (read, decode, validate
// the config, load the zone) of the same config: the part of the start
// before probing.
func BenchmarkLoad100kServices(b *testing.B) {
	path := filepath.Join(writeScaleRow(b, 100000), "config.toml")
	b.ReportAllocs()
	c0 := cpuTime()
	b.ResetTimer()
	for range b.N {
		if _, err := zones.Load(path); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric((cpuTime()-c0).Seconds()/float64(b.N), "cpu-s/op")
}

// cpuTime is the CPU time (user and system) the process has used: on the
// shared 2-core machine the benchmarks run on, a figure that other load
// moves far less than the wall clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// writeScaleRow writes the config of bench/scale.sh's row of n services
// over three shared nodes with bench/lib/scale_row.py (so the benchmark
// loads exactly what the scale bench does), with the DNS and HTTP ports 0,
// and starts the three nodes' TCP health endpoints.
func writeScaleRow(b *testing.B, n int) string {
	b.Helper()
	py := testenv.Tool(b, "python3", "python3")
	dir := b.TempDir()
	// The nodes listen on 127.0.40.1-3 at one port: the first one's,
	// chosen by the kernel.
	first := testenv.NewEndpoint(b, "127.0.40.1", 0, true)
	testenv.NewEndpoint(b, "127.0.40.2", first.Port, true)
	testenv.NewEndpoint(b, "127.0.40.3", first.Port, true)
	row, err := json.Marshal(map[string]any{"dir": dir, "services": n, "own": false,
		"dns_port": 0, "http_port": 0, "check_port": first.Port, "other_interval": "5s", "rounds": 0})
	if err != nil {
		b.Fatal(err)
	}
	rowPath := filepath.Join(dir, "row.json")
	testenv.WriteFile(b, rowPath, string(row))
	gen, err := filepath.Abs(filepath.Join("..", "bench", "lib", "scale_row.py"))
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(py, gen, "config", rowPath)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("scale_row.py config: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "config.toml")); err != nil {
		b.Fatal(err)
	}
	return dir
}
