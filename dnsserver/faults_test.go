package dnsserver_test

// Fault injection: the prober cut off from every node at once, a node whose
// health endpoint loses 30% of probes, and a full disk under state_dir.
// Everything runs on loopback: nodes on 127.0.10.x, the server on
// 127.0.0.1.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/dnsserver"
	"github.com/failoverdns/failoverdns/dnsserver/testenv"
	"github.com/failoverdns/failoverdns/health"
	"github.com/failoverdns/failoverdns/zones"
	"github.com/failoverdns/failoverdns/zones/events"
)

// ftLog is a slog destination (testenv's locked buffer) whose JSON records
// can be counted by message.
type ftLog struct{ testenv.Logs }

func (l *ftLog) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// count returns how many records have a message starting with msg and, when
// service is not "", that service attribute.
func (l *ftLog) count(t testing.TB, msg, service string) int {
	t.Helper()
	n := 0
	for _, line := range strings.Split(l.String(), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %v: %q", err, line)
		}
		m, _ := rec["msg"].(string)
		if !strings.HasPrefix(m, msg) {
			continue
		}
		if service != "" && rec["service"] != service {
			continue
		}
		n++
	}
	return n
}

// waitCount is count once it reaches want or within has passed: the engine
// logs a change on its own goroutine, after the state the test polls.
func (l *ftLog) waitCount(t testing.TB, msg, service string, want int, within time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		n := l.count(t, msg, service)
		if n >= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
}

// ---------------------------------------------------------------------------
// 1. The prober is cut off from every node at once.

const (
	ftEveryDown = "every node fails its checks"
	ftSvcDown   = "all nodes of a service are down"
	ftEveryUp   = "nodes pass their checks again"
	ftSvcUp     = "a node of the service is up again"
	ftChanged   = "active node changed"
)

// TestFaultProberIsolated: three nodes whose listeners all close at once,
// as when the prober's own network is cut. With when_all_down = "keep" the
// answer stays on the last active node for as long as it lasts, and the log
// says so once (one "every node fails" event, one "all nodes of a service
// are down" event), not once per query or per probe. When the nodes return,
// one event each says so.
func TestFaultProberIsolated(t *testing.T) {
	var backs []*foBackend
	var nodes []foNode
	for i := 1; i <= 3; i++ {
		b := foNewBackend(t, "tcp", fmt.Sprintf("127.0.10.%d", i), tls.Certificate{})
		backs = append(backs, b)
		nodes = append(nodes, foNodeFor(i, "tcp", b, foTiming))
	}
	logs := &ftLog{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", logs)
		}
	})
	e := start(t, foConfig(t, nodes, foSvc{allDown: "keep"}), dnsserver.Options{Logger: logs.logger(), Version: "v0.0.0-faults"})
	in, addr := e.in, e.Addr
	addrOf := map[string]string{}
	for _, n := range nodes {
		addrOf[n.Name] = n.Address
	}
	if a := foAsk(t, addr); a != addrOf["n1"] {
		t.Fatalf("first answer %s, want n1 %s", a, addrOf["n1"])
	}

	// Every listener closes at the same moment.
	var wg sync.WaitGroup
	for _, b := range backs {
		wg.Go(b.stop)
	}
	wg.Wait()

	// The prober sees all three down ...
	deadline := time.Now().Add(foDeadline)
	for {
		down := 0
		for _, st := range in.Prober.Snapshot() {
			if st.Checked && !st.Up {
				down++
			}
		}
		if down == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the prober does not see all nodes down %s after their listeners closed: %+v", foDeadline, in.Prober.Snapshot())
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
	// ... and the engine has decided on it.
	d := foWaitDecision(t, in, "all nodes down")
	if !d.AllDown || d.Servfail || d.Active == "" {
		t.Fatalf("decision with every node down: %+v, want the last active node kept", d)
	}
	kept := addrOf[d.Active]
	if a := foAsk(t, addr); a != kept {
		t.Fatalf("answer %s right after all nodes went down, want the kept node %s (%s)", a, d.Active, kept)
	}

	events := func() [3]int {
		return [3]int{logs.count(t, ftEveryDown, ""), logs.count(t, ftSvcDown, foService), logs.count(t, ftChanged, foService)}
	}
	before := events()
	if before[0] != 1 || before[1] != 1 {
		t.Errorf("after all nodes went down the log has %d %q and %d %q events for %s, want exactly one each",
			before[0], ftEveryDown, before[1], ftSvcDown, foService)
	}

	// Queries for a few seconds while every probe keeps failing: the
	// answer does not move, and the log does not grow with them.
	probedBefore := in.Prober.Snapshot()
	const minQueries, minFor = 250, 3 * time.Second
	start := time.Now()
	queries := 0
	for queries < minQueries || time.Since(start) < minFor {
		if a := foAsk(t, addr); a != kept {
			t.Fatalf("query %d with every node down: answer %s, want the kept node %s", queries, a, kept)
		}
		queries++
		time.Sleep(5 * time.Millisecond) // pacing, so the queries span the probes
	}
	for name, st := range in.Prober.Snapshot() {
		if !st.Last.At.After(probedBefore[name].Last.At) || st.Up {
			t.Errorf("node %s was not probed (or is up) while the queries ran: before %+v, after %+v", name, probedBefore[name], st)
		}
	}
	if after := events(); after != before {
		t.Errorf("after %d more queries (and probes) the log counts (every-node-down, service-down, active-changed) went from %v to %v: they must not grow with queries or probes", queries, before, after)
	}
	if d2, _ := in.Server.Snapshot().Decision(foService, 0); d2.Active != d.Active || !d2.AllDown {
		t.Errorf("decision after the queries %+v, want still %s kept", d2, d.Active)
	}
	t.Logf("kept %s for %d queries over %s; log events: every-node-down=%d service-down=%d active-changed=%d",
		d.Active, queries, time.Since(start).Round(time.Millisecond), before[0], before[1], before[2])

	// The nodes come back: one event each says so, and the answer returns
	// to the first node.
	for _, b := range backs {
		b.start()
	}
	foWait(t, addr, addrOf["n1"], foDeadline, addrOf["n1"], addrOf["n2"], addrOf["n3"])
	foWaitHealth(t, in, "n3", true, foDeadline)
	if n := logs.waitCount(t, ftEveryUp, "", 1, foDeadline); n != 1 {
		t.Errorf("%d %q events after the nodes returned, want 1", n, ftEveryUp)
	}
	if n := logs.waitCount(t, ftSvcUp, foService, 1, foDeadline); n != 1 {
		t.Errorf("%d %q events after the nodes returned, want 1", n, ftSvcUp)
	}
	if got := [2]int{logs.count(t, ftEveryDown, ""), logs.count(t, ftSvcDown, foService)}; got != [2]int{1, 1} {
		t.Errorf("down events after recovery: %v, want still one each", got)
	}
}

// ---------------------------------------------------------------------------
// 2. Flapping: a health endpoint that fails 30% of probes.

// ftObs is one probe of a node as the prober applied it.
type ftObs struct {
	ok bool
	up bool // the node's state right after this result
}

// ftSimulate replays probe outcomes through rise/fall as README "Configuration"
// states them: the first result sets the state; then fall consecutive failures
// while up take the node down and rise consecutive successes while down
// bring it up. It returns the state after each probe and the number of
// transitions after the first result.
func ftSimulate(oks []bool, rise, fall int) (ups []bool, flips int) {
	succ, fails := 0, 0
	up := false
	for i, ok := range oks {
		if ok {
			succ, fails = succ+1, 0
		} else {
			succ, fails = 0, fails+1
		}
		switch {
		case i == 0:
			up = ok
		case up && fails >= fall:
			up = false
			flips++
		case !up && succ >= rise:
			up = true
			flips++
		}
		ups = append(ups, up)
	}
	return ups, flips
}

func TestFtSimulate(t *testing.T) {
	F, T := false, true
	for _, c := range []struct {
		oks   []bool
		ups   []bool
		flips int
	}{
		{[]bool{T, F, F, T, F, F, F, T, T}, []bool{T, T, T, T, T, T, F, F, T}, 2},
		{[]bool{F, T, F, T, T, T}, []bool{F, F, F, F, T, T}, 1},
		{[]bool{T, F, F, F, F, F, T, F, T}, []bool{T, T, T, F, F, F, F, F, F}, 1},
	} {
		ups, flips := ftSimulate(c.oks, 2, 3)
		if fmt.Sprint(ups) != fmt.Sprint(c.ups) || flips != c.flips {
			t.Errorf("ftSimulate(%v) = %v, %d; want %v, %d", c.oks, ups, flips, c.ups, c.flips)
		}
	}
}

// TestFaultFlapping: node n1's HTTP endpoint fails a fixed pseudo-random 30%
// of its probes (rise 2, fall 3, every 20ms); n2 is always up; failback is
// immediate, so every n1 transition may move the answer. Over at least 200
// probes: the prober's up/down state after each probe is exactly what
// rise/fall give for the outcomes it saw, and the answer changed no more
// often than those transitions allow, both as the engine counts it and as
// a client polling the server sees it.
//
// The prober, engine and server are wired here as Instance wires them, so
// that the prober gets its OnResult when it is made, as Instance gives it
// its metrics hook.
func TestFaultFlapping(t *testing.T) {
	const (
		rise, fall = 2, 3
		minProbes  = 200
		lossRate   = 0.30
	)
	timing := fmt.Sprintf("interval = \"20ms\"\ntimeout = \"1s\"\nrise = %d\nfall = %d\n", rise, fall)

	var served atomic.Int64
	var rngMu sync.Mutex
	rng := rand.New(rand.NewPCG(2026, 30))
	flaky := &foBackend{t: t, kind: "http", ip: "127.0.10.1"}
	flaky.handler = func(w http.ResponseWriter, r *http.Request) {
		rngMu.Lock()
		fail := rng.Float64() < lossRate
		rngMu.Unlock()
		served.Add(1)
		if fail {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}
	flaky.start()
	t.Cleanup(flaky.stop)
	steady := foNewBackend(t, "tcp", "127.0.10.2", tls.Certificate{})
	nodes := []foNode{foNodeFor(1, "http", flaky, timing), foNodeFor(2, "tcp", steady, timing)}
	snap := loadConfig(t, foConfig(t, nodes, foSvc{after: "0s"}))
	logs := &ftLog{}
	logger := logs.logger()
	defer func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs)
		}
	}()

	srv := dnsserver.New(snap, logger, "v0.0.0-flap")
	var activeChanges atomic.Int64
	var prober *health.Prober
	engine := zones.NewEngineWith(snap, zones.EngineOptions{
		Logger:         logger,
		Publish:        srv.Store,
		Health:         func() map[string]health.State { return prober.Snapshot() },
		OnActiveChange: func(service, location string) { activeChanges.Add(1) },
	})
	var obsMu sync.Mutex
	obs := map[string][]ftObs{}
	probes := func(node string) []ftObs {
		obsMu.Lock()
		defer obsMu.Unlock()
		return append([]ftObs(nil), obs[node]...)
	}
	prober = health.NewProberWith(health.ProberOptions{Logger: logger, OnChange: engine.Kick, OnResult: func(node string, r health.Result) {
		st := prober.Snapshot()[node] // reflects r (see ProberOptions.OnResult)
		obsMu.Lock()
		obs[node] = append(obs[node], ftObs{ok: r.OK, up: st.Up})
		obsMu.Unlock()
	}})
	prober.Set(snap.Config.HealthSpecs())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	prober.InitialRound(ctx)
	engine.Recompute()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		srv.Shutdown(sctx)
	}()
	addr := srv.Addrs()[0]

	proberCtx, stopProber := context.WithCancel(ctx)
	engineCtx, stopEngine := context.WithCancel(ctx)
	var proberDone, engineDone sync.WaitGroup
	proberDone.Go(func() { prober.Run(proberCtx) })
	engineDone.Go(func() { engine.Run(engineCtx) })
	defer func() { stopProber(); stopEngine(); proberDone.Wait(); engineDone.Wait() }()

	// A client polls the answer all along and counts its changes.
	var (
		pollMu    sync.Mutex
		answers   []string // distinct consecutive answers
		polled    int
		pollErr   error
		stopPoll  = make(chan struct{})
		pollerEnd sync.WaitGroup
	)
	pollerEnd.Go(func() {
		for {
			select {
			case <-stopPoll:
				return
			default:
			}
			r, err := foQuery("udp", addr, dns.TypeA)
			var a string
			if err == nil {
				a, err = foRead(r, dns.TypeA)
			}
			pollMu.Lock()
			if err != nil {
				if pollErr == nil {
					pollErr = err
				}
			} else {
				polled++
				if len(answers) == 0 || answers[len(answers)-1] != a {
					answers = append(answers, a)
				}
			}
			pollMu.Unlock()
			time.Sleep(2 * time.Millisecond) // pacing
		}
	})

	// Run until n1 had at least minProbes probes and went down and up
	// again at least once (with this seed it does so several times).
	deadline := time.Now().Add(90 * time.Second)
	for {
		got := probes("n1")
		oks := make([]bool, len(got))
		for i, o := range got {
			oks[i] = o.ok
		}
		_, flips := ftSimulate(oks, rise, fall)
		if len(got) >= minProbes && flips >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %d probes of n1 and %d state changes; want at least %d probes and 2 changes (the 30%% loss should flap it)", 90*time.Second, len(got), flips, minProbes)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
	// Stop probing, then let the engine settle on the final health.
	stopProber()
	proberDone.Wait()
	final := engine.Recompute()
	close(stopPoll)
	pollerEnd.Wait()
	stopEngine()
	engineDone.Wait()

	total := 0
	finalUp := map[string]bool{}
	for _, node := range []string{"n1", "n2"} {
		got := probes(node)
		oks := make([]bool, len(got))
		failed := 0
		for i, o := range got {
			oks[i] = o.ok
			if !o.ok {
				failed++
			}
		}
		want, flips := ftSimulate(oks, rise, fall)
		for i := range got {
			if got[i].up != want[i] {
				t.Errorf("%s probe %d: the prober has the node up=%v, rise/fall over its outcomes give up=%v\noutcomes so far: %v", node, i, got[i].up, want[i], oks[:i+1])
				break
			}
		}
		observed := 0
		for i := 1; i < len(got); i++ {
			if got[i].up != got[i-1].up {
				observed++
			}
		}
		if observed != flips {
			t.Errorf("%s: %d up/down transitions seen by the prober, rise/fall allow exactly %d", node, observed, flips)
		}
		total += flips
		if len(got) > 0 {
			finalUp[node] = got[len(got)-1].up
		}
		t.Logf("%s: %d probes, %d failed (%.0f%%), %d transitions", node, len(got), failed, 100*float64(failed)/float64(max(len(got), 1)), flips)
		if node == "n1" && (failed*100 < len(got)*15 || failed*100 > len(got)*45) {
			t.Errorf("n1 failed %d of %d probes; the backend fails 30%%", failed, len(got))
		}
	}

	changes := int(activeChanges.Load())
	pollMu.Lock()
	clientFlips := len(answers) - 1
	pollMu.Unlock()
	t.Logf("answer changes: engine %d, client %d (over %d polls); node transitions %d; backend served %d requests",
		changes, clientFlips, polled, total, served.Load())
	if pollErr != nil {
		t.Errorf("a poll of the service failed: %v", pollErr)
	}
	if changes > total {
		t.Errorf("the engine changed the answer %d times; the nodes' rise/fall transitions allow at most %d", changes, total)
	}
	if clientFlips > total {
		t.Errorf("a client saw the answer change %d times; the nodes' rise/fall transitions allow at most %d", clientFlips, total)
	}
	if changes == 0 {
		t.Errorf("n1 went down and up %d times but the answer never moved", total)
	}
	wantActive := "n2"
	if finalUp["n1"] {
		wantActive = "n1"
	}
	if d, _ := final.Decision(foService, 0); d.Active != wantActive {
		t.Errorf("final decision %+v with n1 up=%v; want %s", d, finalUp["n1"], wantActive)
	}
}

// ---------------------------------------------------------------------------
// 3. The disk under state_dir fills up.

// ftMountTmpfs mounts a 64 KiB tmpfs on a fresh folder, or skips when this
// process may not mount. It is unmounted when the test ends (after anything
// registered later, such as the instance, is closed).
func ftMountTmpfs(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("disk full: mounting a small tmpfs needs root")
	}
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("disk full: mount -t tmpfs is not permitted here (%v: %s)", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
			exec.Command("umount", "-l", dir).Run()
		}
	})
	return dir
}

// ftFill writes path until the file system is full.
func ftFill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := bytes.Repeat([]byte("x"), 4096)
	for range 1 << 16 {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v, want ENOSPC", err)
			}
			// Fill the last partial page too.
			for {
				if _, err := f.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}
	t.Fatal("the small tmpfs never filled up")
}

// TestFaultDiskFull: with the disk under state_dir full, a pin UPDATE is
// answered SERVFAIL, the answer and the pin in force stay as they were,
// pins.json is untouched, queries keep being answered; once there is room
// again, UPDATEs work.
func TestFaultDiskFull(t *testing.T) {
	mnt := ftMountTmpfs(t)
	e := admStart(t, admConf{stateDir: filepath.Join(mnt, "state")})
	e.mustUpdate(t, admPinMsg(admPinName, "sems2"))
	e.wantActive(t, "127.0.0.1", "sems2")
	saved := e.stateFile(t)
	if len(saved) == 0 {
		t.Fatal("no pins.json after the first pin")
	}

	filler := filepath.Join(mnt, "filler")
	ftFill(t, filler)
	if err := os.WriteFile(filepath.Join(mnt, "probe"), []byte("x"), 0o644); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("the disk is not full: writing a byte gives %v", err)
	}
	os.Remove(filepath.Join(mnt, "probe"))

	for _, m := range []*dns.Msg{admPinMsg(admPinName, "sems3"), admUnpinMsg(admPinName), admPinMsg(admEMEAPin, "sems3")} {
		r, verr := admSend(t, e.Addr, m, admSign{})
		if r.Rcode != dns.RcodeServerFailure {
			t.Errorf("UPDATE with a full disk: %s, want SERVFAIL\n%v", dns.RcodeToString[r.Rcode], m)
		}
		if verr != nil {
			t.Errorf("the SERVFAIL answer's TSIG: %v", verr)
		}
		if got := e.pinTXT(t, admPinName); got != "sems2" {
			t.Errorf("_pin = %s after a failed save, want sems2", got)
		}
		if got := e.pinTXT(t, admEMEAPin); got != "NXDOMAIN" {
			t.Errorf("emea _pin = %s after a failed save, want NXDOMAIN", got)
		}
	}
	if !strings.Contains(e.Logs.String(), "no space left on device") {
		t.Errorf("the log does not say why the pin was not saved (no space left on device):\n%s", e.Logs)
	}
	// Queries are answered all along, unchanged.
	for i := range 200 {
		from := "127.0.0.1"
		if i%2 == 1 {
			from = admEMEAIP
		}
		if got := e.admActive(t, from); got != "sems2" {
			t.Fatalf("query %d from %s with a full disk: %s, want sems2", i, from, got)
		}
	}
	if got := e.stateFile(t); !bytes.Equal(got, saved) {
		t.Errorf("pins.json changed while the disk was full:\nbefore:\n%s\nafter:\n%s", saved, got)
	}
	ents, err := os.ReadDir(e.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		if ent.Name() != "pins.json" && ent.Name() != events.FileName {
			t.Errorf("a failed save left %s in state_dir", ent.Name())
		}
	}

	// Room again: the next UPDATE is saved and in force.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	e.mustUpdate(t, admPinMsg(admPinName, "sems3"))
	e.wantActive(t, "127.0.0.1", "sems3")
	if p := e.savedPins(t)[zones.PinKey{Service: admService}]; p.Node != "sems3" {
		t.Errorf("saved pin %+v after the disk had room again, want sems3", p)
	}
}
