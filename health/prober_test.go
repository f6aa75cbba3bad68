package health

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/failoverdns/failoverdns/dnsserver/testenv"
)

// waitFor polls cond every 10ms for up to 10s. The bound only turns a hang
// into a failure; tests never depend on how fast things happen.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !testenv.Eventually(10*time.Second, 10*time.Millisecond, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// startRun runs p until the test ends and checks that Run returns.
func startRun(t *testing.T, p *Prober) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		p.Run(ctx)
		close(done)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

type observation struct {
	ok bool
	up bool // state right after this result was applied
}

// recorder collects every result of one node together with the state it
// produced; the Prober guarantees OnResult sees its own result applied.
type recorder struct {
	mu  sync.Mutex
	obs []observation
}

func (r *recorder) add(o observation) {
	r.mu.Lock()
	r.obs = append(r.obs, o)
	r.mu.Unlock()
}

func (r *recorder) snapshot() []observation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]observation(nil), r.obs...)
}

// simulate replays results through the rise/fall rules: the first result
// sets the state directly, later ones move it only after rise successes or
// fall failures in a row.
func simulate(obs []observation, rise, fall int) []bool {
	var ups []bool
	var up bool
	succ, fail := 0, 0
	for i, o := range obs {
		if o.ok {
			succ, fail = succ+1, 0
		} else {
			succ, fail = 0, fail+1
		}
		switch {
		case i == 0:
			up = o.ok
		case up && fail >= fall:
			up = false
		case !up && succ >= rise:
			up = true
		}
		ups = append(ups, up)
	}
	return ups
}

func TestProberRiseFall(t *testing.T) {
	const (
		modeOK = iota
		modeFail
		modeAlternate
	)
	var mode, requests atomic.Int32
	s := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		n := requests.Add(1)
		switch mode.Load() {
		case modeFail:
			w.WriteHeader(http.StatusServiceUnavailable)
		case modeAlternate:
			if n%2 == 0 {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		}
	})
	spec := specFor(t, TypeHTTP, s.Listener.Addr())
	spec.Interval, spec.Rise, spec.Fall = 20*time.Millisecond, 2, 3

	var logs testenv.Logs
	var changes atomic.Int32
	rec := &recorder{}
	var p *Prober
	p = NewProberWith(ProberOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil)), OnChange: func() { changes.Add(1) }, OnResult: func(node string, r Result) {
		if node != "web" {
			t.Errorf("OnResult for unknown node %q", node)
		}
		rec.add(observation{ok: r.OK, up: p.Snapshot()[node].Up})
	}})
	p.Set(map[string]Spec{"web": spec})
	p.InitialRound(context.Background())
	if st := p.Snapshot()["web"]; !st.Up || !st.Checked {
		t.Fatalf("after InitialRound: %+v, want up", st)
	}
	if changes.Load() != 1 {
		t.Errorf("onChange called %d times by InitialRound, want 1", changes.Load())
	}

	stop := startRun(t, p)
	up := func() bool { return p.Snapshot()["web"].Up }

	mode.Store(modeFail)
	waitFor(t, "node to go down", func() bool { return !up() })
	if st := p.Snapshot()["web"]; !strings.Contains(st.Last.Err, "status 503") {
		t.Errorf("Last.Err = %q, want the status", st.Last.Err)
	}
	mode.Store(modeOK)
	waitFor(t, "node to come back", up)

	mode.Store(modeAlternate)
	start := len(rec.snapshot())
	waitFor(t, "30 alternating probes", func() bool { return len(rec.snapshot()) >= start+30 })
	stop()

	obs := rec.snapshot()
	want := simulate(obs, spec.Rise, spec.Fall)
	transitions := 0
	for i, o := range obs {
		if o.up != want[i] {
			t.Fatalf("probe %d (ok=%v): up=%v, rise/fall says %v; history %v", i, o.ok, o.up, want[i], obs[:i+1])
		}
		if i > 0 && obs[i-1].up != o.up {
			transitions++
		}
	}
	for i, o := range obs[start:] {
		if !o.up {
			t.Fatalf("alternating backend went down at probe %d", start+i)
		}
	}
	if transitions != 2 {
		t.Errorf("%d transitions, want 2 (down, up)", transitions)
	}
	waitFor(t, "onChange for both transitions", func() bool { return changes.Load() >= 3 })

	// One line per change, InitialRound's unknown->up included, and none
	// for the many probes that changed nothing.
	lines := strings.Count(logs.String(), "health state changed")
	if lines != transitions+1 {
		t.Errorf("%d state-change log lines, want %d:\n%s", lines, transitions+1, logs.String())
	}
	if !strings.Contains(logs.String(), "node=web old=up new=down") {
		t.Errorf("log lacks the down transition:\n%s", logs.String())
	}
}

func TestInitialRound(t *testing.T) {
	live := httpServer(t, func(http.ResponseWriter, *http.Request) {})
	var changes atomic.Int32
	var results atomic.Int32
	p := NewProberWith(ProberOptions{OnChange: func() { changes.Add(1) }, OnResult: func(string, Result) { results.Add(1) }})
	dead := specFor(t, TypeTCP, closedAddr(t))
	p.Set(map[string]Spec{
		"live": specFor(t, TypeHTTP, live.Listener.Addr()),
		"dead": dead,
		"none": {Type: TypeNone, Interval: time.Second},
	})
	for name, st := range p.Snapshot() {
		if st.Checked {
			t.Errorf("%s checked before any probe", name)
		}
	}

	p.InitialRound(context.Background())
	snap := p.Snapshot()
	if st := snap["dead"]; st.Up || !st.Checked || !strings.Contains(st.Last.Err, "connection refused") || st.Since.IsZero() {
		t.Errorf("dead: %+v, want checked, down, refused", st)
	}
	for _, name := range []string{"live", "none"} {
		if st := snap[name]; !st.Up || !st.Checked || st.Since.IsZero() {
			t.Errorf("%s: %+v, want checked and up", name, st)
		}
	}
	if changes.Load() != 1 || results.Load() != 3 {
		t.Errorf("onChange %d times, OnResult %d times; want 1 and 3", changes.Load(), results.Load())
	}

	// Everything is checked now: a second round probes nothing.
	p.InitialRound(context.Background())
	if changes.Load() != 1 || results.Load() != 3 {
		t.Errorf("second round: onChange %d, OnResult %d; want 1 and 3", changes.Load(), results.Load())
	}
}

func TestInitialRoundCanceled(t *testing.T) {
	hung := listen(t, "127.0.10.6:0", silent)
	spec := specFor(t, TypeHTTP, hung.Addr())
	spec.Timeout = time.Minute
	var changes atomic.Int32
	p := NewProber(nil, func() { changes.Add(1) })
	p.Set(map[string]Spec{"hung": spec})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		p.InitialRound(ctx)
		close(done)
	}()
	time.AfterFunc(50*time.Millisecond, cancel)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("InitialRound ignored cancellation")
	}
	// A canceled probe says nothing about the node.
	if st := p.Snapshot()["hung"]; st.Checked || changes.Load() != 0 {
		t.Errorf("state %+v, onChange %d after a canceled round; want unchecked, 0", st, changes.Load())
	}
}

// counter counts OnResult calls per node.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) inc(node string, _ Result) {
	c.mu.Lock()
	c.n[node]++
	c.mu.Unlock()
}

func (c *counter) get(node string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[node]
}

func TestProberSet(t *testing.T) {
	none := Spec{Type: TypeNone, Interval: 20 * time.Millisecond, Rise: 2, Fall: 3}
	c := &counter{n: map[string]int{}}
	p := NewProberWith(ProberOptions{OnResult: c.inc})
	p.Set(map[string]Spec{"a": none, "b": none})
	startRun(t, p)
	waitFor(t, "a and b probed", func() bool {
		s := p.Snapshot()
		return s["a"].Checked && s["b"].Checked
	})
	before := p.Snapshot()["a"]

	// Equal but not identical: a fresh map and a fresh Expect slice.
	same := none
	same.Expect = nil
	p.Set(map[string]Spec{"a": same, "c": none})
	bAtSet, aAtSet := c.get("b"), c.get("a")

	snap := p.Snapshot()
	if st := snap["a"]; !st.Checked || !st.Since.Equal(before.Since) || !st.Up {
		t.Errorf("unchanged node lost its state: before %+v, after %+v", before, st)
	}
	if _, ok := snap["b"]; ok {
		t.Error("removed node still in Snapshot")
	}
	waitFor(t, "new node probed and a probed 10 more times", func() bool {
		return c.get("c") > 0 && c.get("a") >= aAtSet+10
	})
	if !p.Snapshot()["c"].Checked {
		t.Error("new node not checked after its probe")
	}
	// A probe already in flight when Set ran may still report once.
	if got := c.get("b"); got > bAtSet+1 {
		t.Errorf("removed node probed %d more times", got-bAtSet)
	}
}

// TestInstallChangedSpecStartsOver: only an unchanged Spec keeps its state.
// A changed one (here the check moves to a closed port) starts unchecked,
// or from the fresh state Probe found for it, never from the old "up".
func TestInstallChangedSpecStartsOver(t *testing.T) {
	p := NewProber(nil, nil)
	spec := Spec{Type: TypeNone, Interval: time.Hour, Rise: 1, Fall: 2}
	p.Set(map[string]Spec{"a": spec})
	p.InitialRound(context.Background())
	before := p.Snapshot()["a"]
	if !before.Checked || !before.Up {
		t.Fatalf("a after InitialRound = %+v, want checked and up", before)
	}
	p.Set(map[string]Spec{"a": spec})
	if got := p.Snapshot()["a"]; got != before {
		t.Errorf("identical Set changed the state: %+v, want %+v", got, before)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	changed := Spec{Type: TypeTCP, Addr: netip.MustParseAddr("127.0.0.1"), Port: port, Interval: time.Hour, Timeout: time.Second, Rise: 1, Fall: 2}
	specs := map[string]Spec{"a": changed}
	if got := p.Changed(specs); len(got) != 1 {
		t.Errorf("Changed = %v, want a", got)
	}
	if got := p.Changed(map[string]Spec{"a": spec}); len(got) != 0 {
		t.Errorf("Changed for the spec in force = %v, want none", got)
	}

	p.Set(specs)
	if got := p.Snapshot()["a"]; got.Checked || got.Up {
		t.Fatalf("changed spec kept the old state: %+v, want unchecked", got)
	}

	// Probe judges the new spec aside, without touching what p runs ...
	p.Set(map[string]Spec{"a": spec})
	p.InitialRound(context.Background())
	fresh := p.Probe(context.Background(), specs)
	if got := p.Snapshot()["a"]; !got.Up {
		t.Errorf("Probe changed p's own state: %+v", got)
	}
	if st := fresh["a"]; !st.Checked || st.Up || st.Last.Err == "" {
		t.Fatalf("Probe of the closed port: %+v, want checked, down, with an error", st)
	}
	// ... and Install takes its result.
	p.Install(specs, fresh)
	if got := p.Snapshot()["a"]; got != fresh["a"] {
		t.Errorf("after Install: %+v, want the probed state %+v", got, fresh["a"])
	}
}

// TestRunCancelsInFlight: Run's return must not wait out a hung probe's
// whole timeout, and a canceled probe is not reported as a failure.
func TestRunCancelsInFlight(t *testing.T) {
	accepted := make(chan struct{}, 1)
	hung := listen(t, "127.0.10.7:0", func(c net.Conn) {
		select {
		case accepted <- struct{}{}:
		default:
		}
		silent(c)
	})
	spec := specFor(t, TypeHTTP, hung.Addr())
	spec.Timeout = time.Minute
	c := &counter{n: map[string]int{}}
	p := NewProberWith(ProberOptions{OnResult: c.inc})
	p.Set(map[string]Spec{"hung": spec})
	stop := startRun(t, p)
	select {
	case <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("no probe reached the backend")
	}
	stop()
	if n := c.get("hung"); n != 0 {
		t.Errorf("OnResult fired %d times for a canceled probe", n)
	}
	if st := p.Snapshot()["hung"]; st.Checked {
		t.Errorf("canceled probe changed state: %+v", st)
	}
}

// TestProberScale: thousands of nodes cost one scheduler and a bounded pool,
// not a goroutine each.
func TestProberScale(t *testing.T) {
	const nodes = 2000
	var targets []net.Addr
	for i := range 4 {
		targets = append(targets, listen(t, fmt.Sprintf("127.0.10.%d:0", 10+i), nil).Addr())
	}
	specs := make(map[string]Spec, nodes)
	index := make(map[string]int, nodes)
	for i := range nodes {
		name := fmt.Sprintf("n%04d", i)
		spec := Spec{Type: TypeNone, Interval: 100 * time.Millisecond, Rise: 2, Fall: 3}
		if i%4 == 0 {
			spec = specFor(t, TypeTCP, targets[i%len(targets)])
			spec.Interval, spec.Timeout = 100*time.Millisecond, 2*time.Second
		}
		specs[name] = spec
		index[name] = i
	}
	counts := make([]atomic.Int32, nodes)
	var changes atomic.Int32
	p := NewProberWith(ProberOptions{OnChange: func() { changes.Add(1) }, OnResult: func(node string, _ Result) { counts[index[node]].Add(1) }})
	p.Set(specs)

	base := runtime.NumGoroutine()
	var peak atomic.Int64
	sampleDone := make(chan struct{})
	sampling := make(chan struct{})
	go func() {
		defer close(sampleDone)
		for {
			peak.Store(max(peak.Load(), int64(runtime.NumGoroutine())))
			select {
			case <-sampling:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()

	start := time.Now()
	stop := startRun(t, p)
	waitFor(t, "every node probed", func() bool {
		for i := range counts {
			if counts[i].Load() == 0 {
				return false
			}
		}
		return time.Since(start) >= time.Second
	})
	close(sampling)
	<-sampleDone
	stop()

	if got := peak.Load(); got >= 700 {
		t.Errorf("peak %d goroutines (base %d) for %d nodes", got, base, nodes)
	}
	for name, st := range p.Snapshot() {
		if !st.Up || !st.Checked {
			t.Fatalf("%s: %+v, want up", name, st)
		}
	}
	if changes.Load() == 0 {
		t.Error("onChange never fired")
	}
	var total int64
	for i := range counts {
		total += int64(counts[i].Load())
	}
	t.Logf("%d probes, peak %d goroutines", total, peak.Load())
}
