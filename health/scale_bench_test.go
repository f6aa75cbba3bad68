//go:build linux

package health

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The prober at scale, in the steady state an operator would see: 10,000
// nodes with tcp checks every second against loopback listeners for 60s,
// measuring what the prober costs (CPU seconds, peak RSS, goroutines) and
// whether every probe passes. bench/probers.sh runs it and records the
// output; it only runs when FAILOVERDNS_SCALE=1 because it takes a minute
// and keeps both cores of a small machine busy.
//
// The listeners run in a child process (this test binary again, in
// TestProberScale10kListeners), so that the CPU and memory measured here are
// the prober's, not the accepting side's. They are spread over
// FAILOVERDNS_SCALE_PORTS ports on four addresses 127.0.30.1-4, so no single
// address:port pair takes more than nodes/ports connections a second.
//
// Environment: FAILOVERDNS_SCALE=1 to run; FAILOVERDNS_SCALE_NODES (10000),
// FAILOVERDNS_SCALE_SECONDS (60), FAILOVERDNS_SCALE_PORTS (100),
// FAILOVERDNS_SCALE_INTERVAL (1s).

const (
	scaleCPUBudget = 15.0  // CPU seconds per 60s of probing
	scaleRSSBudget = 150.0 // MB, peak resident set
)

var scaleAddrs = []string{"127.0.30.1", "127.0.30.2", "127.0.30.3", "127.0.30.4"}

func scaleEnvInt(t *testing.T, key string, def int) int {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", key, v)
	}
	return n
}

func TestProberScale10k(t *testing.T) {
	if os.Getenv("FAILOVERDNS_SCALE") != "1" {
		t.Skip("set FAILOVERDNS_SCALE=1 to run (bench/probers.sh does)")
	}
	nodes := scaleEnvInt(t, "FAILOVERDNS_SCALE_NODES", 10000)
	seconds := scaleEnvInt(t, "FAILOVERDNS_SCALE_SECONDS", 60)
	ports := scaleEnvInt(t, "FAILOVERDNS_SCALE_PORTS", 100)
	interval := time.Second
	if v := os.Getenv("FAILOVERDNS_SCALE_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("FAILOVERDNS_SCALE_INTERVAL=%q: want a duration", v)
		}
		interval = d
	}
	duration := time.Duration(seconds) * time.Second

	targets := scaleStartListeners(t, ports, duration+2*time.Minute)
	report := func(format string, args ...any) { fmt.Printf(format+"\n", args...) }
	report("prober scale: %d tcp nodes, interval %s, timeout 800ms, %d listener ports on %s (listeners in a child process), %s",
		nodes, interval, len(targets), strings.Join(scaleAddrs, " "), duration)
	report("machine: %d CPUs (GOMAXPROCS %d), %s; net.ipv4.tcp_tw_reuse=%s, ip_local_port_range=%s",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(),
		scaleSysctl("net/ipv4/tcp_tw_reuse"), scaleSysctl("net/ipv4/ip_local_port_range"))

	specs := make(map[string]Spec, nodes)
	for i := range nodes {
		ap := targets[i%len(targets)]
		specs[fmt.Sprintf("node%05d", i)] = Spec{
			Type: TypeTCP, Addr: ap.Addr(), Port: ap.Port(),
			Interval: interval, Timeout: 800 * time.Millisecond, Rise: 2, Fall: 3,
		}
	}

	var probes, failed, changes atomic.Int64
	var errMu sync.Mutex
	errs := map[string]int{}
	p := NewProberWith(ProberOptions{OnChange: func() { changes.Add(1) }, OnResult: func(_ string, r Result) {
		probes.Add(1)
		if !r.OK {
			failed.Add(1)
			errMu.Lock()
			errs[r.Err]++
			errMu.Unlock()
		}
	}})
	rssBefore := scaleStatusMB("VmRSS")
	p.Set(specs)

	// The first round, as the server does at start: every node once.
	cpu0 := scaleCPU()
	t0 := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	roundCtx, roundCancel := context.WithTimeout(ctx, time.Minute)
	p.InitialRound(roundCtx)
	roundCancel()
	report("initial round: %d nodes in %s, %.2f CPU s, %d failed", nodes, time.Since(t0).Round(time.Millisecond), scaleCPU()-cpu0, failed.Load())
	up := 0
	for _, st := range p.Snapshot() {
		if st.Up {
			up++
		}
	}
	if up != nodes {
		t.Errorf("after the initial round %d of %d nodes are up", up, nodes)
	}
	probes.Store(0)
	failed.Store(0)

	// Samplers: goroutines every 50ms (cheap), RSS and sockets every 5s.
	var peakG, peakRSS atomic.Int64
	var peakTW, peakSockets atomic.Int64
	stopSampling := make(chan struct{})
	var sampling sync.WaitGroup
	sampling.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			peakG.Store(max(peakG.Load(), int64(runtime.NumGoroutine())))
			if n%100 == 0 {
				peakRSS.Store(max(peakRSS.Load(), int64(scaleStatusMB("VmRSS")*1024)))
				tw, all := scaleSockets(targets)
				peakTW.Store(max(peakTW.Load(), int64(tw)))
				peakSockets.Store(max(peakSockets.Load(), int64(all)))
			}
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
		}
	})

	user1, sys1 := scaleCPUSplit()
	cpu1 := user1 + sys1
	start := time.Now()
	done := make(chan struct{})
	go func() {
		p.Run(ctx)
		close(done)
	}()
	// Progress every 10s, bounded by the duration. The steady-state rate
	// is taken over the second half, after the first round's bunching.
	var halfProbes int64
	var halfAt time.Time
	for elapsed := time.Duration(0); elapsed < duration; {
		step := min(10*time.Second, duration-elapsed)
		if elapsed < duration/2 && elapsed+step >= duration/2 {
			step = duration/2 - elapsed
		}
		time.Sleep(step)
		elapsed += step
		if elapsed == duration/2 {
			halfProbes, halfAt = probes.Load(), time.Now()
		}
		tw, all := scaleSockets(targets)
		report("  t=%3.0fs probes %7d failed %d goroutines %d cpu %.2fs rss %.1f MB sockets to listeners %d (TIME_WAIT %d)",
			time.Since(start).Seconds(), probes.Load(), failed.Load(), runtime.NumGoroutine(),
			scaleCPU()-cpu1, scaleStatusMB("VmRSS"), all, tw)
	}
	user2, sys2 := scaleCPUSplit()
	cpu := user2 + sys2 - cpu1
	wall := time.Since(start)
	n, f := probes.Load(), failed.Load()
	steadyRate := float64(n-halfProbes) / time.Since(halfAt).Seconds()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("Run did not return within 5s of its cancellation")
	}
	close(stopSampling)
	sampling.Wait()

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	hwm := scaleStatusMB("VmHWM")
	perMin := cpu * 60 / wall.Seconds()
	want := float64(nodes) / interval.Seconds() // probes per second on schedule
	report("")
	report("probing for %s: %d probes (%.0f/s overall; %.0f/s in the second half = %.1f%% of %d nodes / %s), %d failed, %d state-change callbacks",
		wall.Round(time.Millisecond), n, float64(n)/wall.Seconds(), steadyRate, 100*steadyRate/want, nodes, interval, f, changes.Load())
	report("CPU: %.2f s (user %.2f, system %.2f) in %s = %.2f s per 60s (%.1f%% of one core, %.1f µs per probe)",
		cpu, user2-user1, sys2-sys1, wall.Round(time.Millisecond), perMin, 100*cpu/wall.Seconds(), cpu*1e6/float64(max(n, 1)))
	report("  (on loopback the kernel runs both ends of each handshake in the connecting process's context, so system time includes the listener side's TCP work)")
	report("memory: peak RSS (VmHWM) %.1f MB (VmRSS %.1f MB before the nodes were added; sampled peak %.1f MB), Go heap in use %.1f MB, %d GCs",
		hwm, rssBefore, float64(peakRSS.Load())/1024, float64(ms.HeapInuse)/(1<<20), ms.NumGC)
	report("goroutines: peak %d, after Run returned %d (prober cap %d probes in flight)", peakG.Load(), runtime.NumGoroutine(), maxInFlight)
	report("sockets between the prober and the listeners: peak %d, peak in TIME_WAIT %d (sampled every 5s)", peakSockets.Load(), peakTW.Load())
	errMu.Lock()
	if len(errs) > 0 {
		keys := make([]string, 0, len(errs))
		for k := range errs {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b string) int { return errs[b] - errs[a] })
		for _, k := range keys[:min(len(keys), 5)] {
			report("  failure %q: %d", k, errs[k])
		}
	}
	errMu.Unlock()
	// For scale: what one connect and reset costs outside the prober,
	// back to back on one goroutine, through the raw syscalls and through
	// net.Dialer, against the same listeners.
	raw, dialer := scaleBaseline(t, targets, 20000)
	report("baseline, 20000 connects back to back without the prober: %.1f µs CPU each with blocking syscalls, %.1f µs with net.Dialer + SetLinger(0) + Close; the prober spent %.1f µs per probe; the budget at %.0f probes/s is %.1f µs per probe",
		raw, dialer, cpu*1e6/float64(max(n, 1)), want, scaleCPUBudget/60*1e6/want)
	verdict := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "FAIL"
	}
	report("%s  CPU %.2f s per 60s (want <= %.0f)", verdict(perMin <= scaleCPUBudget), perMin, scaleCPUBudget)
	report("%s  peak RSS %.1f MB (want <= %.0f)", verdict(hwm <= scaleRSSBudget), hwm, scaleRSSBudget)
	report("%s  failed probes %d of %d (want 0)", verdict(f == 0), f, n)
	report("%s  steady-state probe rate %.1f%% of the schedule (want >= 95%%)", verdict(steadyRate >= 0.95*want), 100*steadyRate/want)
	if perMin > scaleCPUBudget {
		t.Errorf("CPU %.2f s per 60s, want <= %.0f", perMin, scaleCPUBudget)
	}
	if hwm > scaleRSSBudget {
		t.Errorf("peak RSS %.1f MB, want <= %.0f", hwm, scaleRSSBudget)
	}
	if f > 0 {
		t.Errorf("%d of %d probes failed", f, n)
	}
	if steadyRate < 0.95*want {
		t.Errorf("steady-state %.0f probes/s, want at least 95%% of %.0f", steadyRate, want)
	}
}

// TestProberScale10kListeners is the child process of TestProberScale10k:
// it listens on FAILOVERDNS_SCALE_LISTENER ports spread over scaleAddrs,
// accepts and closes every connection, prints each bound address and then
// "READY", and exits when its standard input closes (the parent is gone) or
// after FAILOVERDNS_SCALE_LIFETIME.
func TestProberScale10kListeners(t *testing.T) {
	count, _ := strconv.Atoi(os.Getenv("FAILOVERDNS_SCALE_LISTENER"))
	if count <= 0 {
		t.Skip("the listener side of TestProberScale10k; not a test by itself")
	}
	lifetime, err := time.ParseDuration(os.Getenv("FAILOVERDNS_SCALE_LIFETIME"))
	if err != nil || lifetime <= 0 {
		lifetime = 5 * time.Minute
	}
	var lns []net.Listener
	for i := range count {
		ln, err := net.Listen("tcp", net.JoinHostPort(scaleAddrs[i%len(scaleAddrs)], "0"))
		if err != nil {
			fmt.Println("ERROR", err)
			os.Exit(1)
		}
		lns = append(lns, ln)
		fmt.Println("LISTEN", ln.Addr())
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						continue
					}
					return
				}
				// A plain close: the prober resets its side (linger
				// 0), so no TIME_WAIT is left on either side.
				c.Close()
			}
		}()
	}
	fmt.Println("READY")
	stdinClosed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stdinClosed)
	}()
	select {
	case <-stdinClosed:
	case <-time.After(lifetime):
	}
	for _, ln := range lns {
		ln.Close()
	}
	os.Exit(0) // skip the test framework's summary: the parent reads stdout
}

// scaleStartListeners starts the listener child and returns its addresses.
func scaleStartListeners(t *testing.T, ports int, lifetime time.Duration) []netip.AddrPort {
	cmd := exec.Command(os.Args[0], "-test.run=^TestProberScale10kListeners$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		"FAILOVERDNS_SCALE=0",
		"FAILOVERDNS_SCALE_LISTENER="+strconv.Itoa(ports),
		"FAILOVERDNS_SCALE_LIFETIME="+lifetime.String())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_ = cmd.Wait()
		close(exited)
	}()
	var addrs []netip.AddrPort
	deadline := time.After(30 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("the listener process exited before it was ready")
			}
			switch {
			case strings.HasPrefix(line, "LISTEN "):
				ap, err := netip.ParseAddrPort(strings.TrimPrefix(line, "LISTEN "))
				if err != nil {
					t.Fatal(err)
				}
				addrs = append(addrs, ap)
			case line == "READY":
				go func() { // drain anything else it prints
					for range lines {
					}
				}()
				return addrs
			default:
				t.Fatalf("listener process: %s", line)
			}
		case <-deadline:
			t.Fatal("the listener process did not become ready within 30s")
		}
	}
}

// scaleBaseline returns the CPU microseconds per connect+reset+close, with
// blocking syscalls and with net.Dialer, for n connects spread over targets.
func scaleBaseline(t *testing.T, targets []netip.AddrPort, n int) (raw, dialer float64) {
	c0 := scaleCPU()
	for i := range n {
		ap := targets[i%len(targets)]
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		// a blocking connect honours SO_SNDTIMEO: bounded
		_ = syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_SNDTIMEO, &syscall.Timeval{Sec: 1})
		err = syscall.Connect(fd, &syscall.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())})
		// EINTR (a profiling or preemption signal) leaves the connect
		// going on in the kernel: it costs the same, so it counts.
		if err == nil || err == syscall.EINTR {
			_ = syscall.SetsockoptLinger(fd, syscall.SOL_SOCKET, syscall.SO_LINGER, &syscall.Linger{Onoff: 1, Linger: 0})
		} else {
			t.Logf("baseline connect %s: %v", ap, err)
		}
		syscall.Close(fd)
	}
	c1 := scaleCPU()
	d := &net.Dialer{KeepAlive: -1, Timeout: time.Second}
	for i := range n {
		c, err := d.Dial("tcp", targets[i%len(targets)].String())
		if err != nil {
			t.Logf("baseline dial: %v", err)
			continue
		}
		_ = c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}
	c2 := scaleCPU()
	return (c1 - c0) * 1e6 / float64(n), (c2 - c1) * 1e6 / float64(n)
}

// scaleCPU is this process's user+system CPU time in seconds.
func scaleCPU() float64 {
	u, s := scaleCPUSplit()
	return u + s
}

// scaleCPUSplit is this process's user and system CPU time in seconds.
func scaleCPUSplit() (user, sys float64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return float64(ru.Utime.Sec) + float64(ru.Utime.Usec)/1e6, float64(ru.Stime.Sec) + float64(ru.Stime.Usec)/1e6
}

// scaleStatusMB reads a kB field such as VmRSS or VmHWM of /proc/self/status.
func scaleStatusMB(field string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

func scaleSysctl(name string) string {
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b)), "-")
}

// scaleSockets counts the TCP sockets in /proc/net/tcp with one end on a
// listener address:port (other than the listening sockets themselves), and
// how many of them are in TIME_WAIT.
func scaleSockets(targets []netip.AddrPort) (timeWait, all int) {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	want := make(map[netip.AddrPort]bool, len(targets))
	for _, ap := range targets {
		want[ap] = true
	}
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 4 || fs[3] == "0A" { // 0A: LISTEN
			continue
		}
		if want[scaleProcAddr(fs[1])] || want[scaleProcAddr(fs[2])] {
			all++
			if fs[3] == "06" {
				timeWait++
			}
		}
	}
	return timeWait, all
}

// scaleProcAddr parses "0100007F:1F90" (IPv4 in host byte order on a
// little-endian machine, port in hex) from /proc/net/tcp.
func scaleProcAddr(s string) netip.AddrPort {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}
	}
	v, err1 := strconv.ParseUint(h, 16, 32)
	port, err2 := strconv.ParseUint(p, 16, 16)
	if err1 != nil || err2 != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}), uint16(port))
}
