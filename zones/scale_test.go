package zones

import (
	"bufio"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/health"
)

// Incremental decisions and publish (issue "Cost that does not grow with
// the config"): a health change recomputes the services that use the node
// and shares every other service's answers with the previous snapshot.

// writeScaleConfig writes a config of n services in one zone. With
// shared, every service uses the same three nodes (as many tenants of one
// cluster); else each has three of its own. Every fifth service has its own
// order in location "east". Checks are "none": nothing is probed.
func writeScaleConfig(tb testing.TB, dir string, n int, shared bool) string {
	tb.Helper()
	zone := "$ORIGIN scale.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 192.0.2.53\n"
	if err := os.WriteFile(filepath.Join(dir, "scale.test.zone"), []byte(zone), 0o644); err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(dir, "config.toml")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<16)
	fmt.Fprintf(w, "[server]\nlisten = [\"127.0.0.1:0\"]\nhttp = \"\"\n\n[[zone]]\norigin = \"scale.test.\"\nfile = \"scale.test.zone\"\n\n")
	fmt.Fprintf(w, "[[location]]\nname = \"east\"\nsubnets = [\"10.1.0.0/16\"]\n\n")
	nodes := 3
	if !shared {
		nodes = 3 * n
	}
	for i := range nodes {
		fmt.Fprintf(w, "[[node]]\nname = \"n%d\"\naddress = \"100.%d.%d.%d\"\n[node.check]\ntype = \"none\"\n\n", i, 64+i>>16, i>>8&255, i&255)
	}
	for s := range n {
		a, b, c := 0, 1, 2
		if !shared {
			a, b, c = 3*s, 3*s+1, 3*s+2
		}
		fmt.Fprintf(w, "[[service]]\nname = \"s%d.scale.test.\"\nttl = 30\nnodes = [\"n%d\", \"n%d\", \"n%d\"]\nfailback = \"manual\"\nwhen_all_down = \"keep\"\n", s, a, b, c)
		if s%5 == 0 {
			fmt.Fprintf(w, "[service.locations]\neast = [\"n%d\", \"n%d\"]\n", b, a)
		}
		fmt.Fprintln(w)
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	return path
}

// scaleEngine loads path and returns an engine deciding from h (a map the
// caller changes between recomputes).
func scaleEngine(tb testing.TB, path string, h map[string]health.State) (*Engine, *Snapshot) {
	tb.Helper()
	base, err := Load(path)
	if err != nil {
		tb.Fatalf("Load: %v", err)
	}
	e := NewEngineWith(base, EngineOptions{Publish: func(*Snapshot) {}, Health: func() map[string]health.State { return maps.Clone(h) }})
	e.SetPins(nopSaver{}, nil)
	return e, e.Recompute()
}

type nopSaver struct{}

func (nopSaver) Save(map[PinKey]Pin) error { return nil }

// TestHealthChangeTouchesDependents: one node's fall recomputes only the
// services that use it; every other service's answers are shared with
// the previous snapshot (the same state, not a copy).
func TestHealthChangeTouchesDependents(t *testing.T) {
	path := writeScaleConfig(t, t.TempDir(), 50, false)
	h := map[string]health.State{}
	since := time.Now().Add(-time.Hour)
	for i := range 150 {
		h[fmt.Sprintf("n%d", i)] = health.State{Up: true, Checked: true, Since: since}
	}
	e, before := scaleEngine(t, path, h)
	h["n30"] = health.State{Checked: true, Since: time.Now()} // s10's first node
	e.mu.Lock()
	after := e.recompute(nil, false)
	e.mu.Unlock()
	parent, changed, ok := after.Derived()
	if !ok || parent != before.Gen() || !slices.Equal(changed, []int{before.Service("s10.scale.test.").index}) {
		t.Fatalf("Derived() = %d, %v, %v; want %d and only s10's index", parent, changed, ok, before.Gen())
	}
	for i, svc := range after.Services {
		same := after.states[i] == before.states[i]
		if svc.Name == "s10.scale.test." {
			if same {
				t.Fatal("s10's state was not rebuilt")
			}
			if d, _ := after.Decision(svc.Name, 0); d.Active != "n31" {
				t.Fatalf("s10 answers %s, want n31", d.Active)
			}
			continue
		}
		if !same {
			t.Fatalf("%s's state was rebuilt although none of its nodes changed", svc.Name)
		}
	}
}

// TestIncrementalMatchesFull: random sequences of health changes, pins and
// reloads, decided incrementally by one engine and from scratch by another
// after every step, give the same answer for every view. Seeded, so a
// failure repeats.
func TestIncrementalMatchesFull(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4, 5} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 42))
			dir := t.TempDir()
			path := writeScaleConfig(t, dir, 40, false)
			nodes := 120
			h := map[string]health.State{}
			t0 := time.Now().Add(-time.Hour)
			for i := range nodes {
				h[fmt.Sprintf("n%d", i)] = health.State{Up: true, Checked: true, Since: t0}
			}
			inc, _ := scaleEngine(t, path, h)
			full, _ := scaleEngine(t, path, h)
			// The incremental engine decides on three deciders side by
			// side (any recompute of two services or more), the full
			// one on one: the property covers decideAll's split too.
			inc.workers, inc.parallelMin = 3, 2
			for step := range 300 {
				switch r := rng.IntN(10); {
				case r < 7: // a node rises or falls
					n := fmt.Sprintf("n%d", rng.IntN(nodes))
					st := h[n]
					h[n] = health.State{Up: !st.Up, Checked: true, Since: time.Now(), Last: health.Result{Err: "step"}}
					inc.mu.Lock()
					inc.recompute(nil, false)
					inc.mu.Unlock()
				case r < 9: // a pin is set or removed
					s := rng.IntN(40)
					k := PinKey{Service: fmt.Sprintf("s%d.scale.test.", s)}
					if rng.IntN(2) == 0 && s%5 == 0 {
						k.Location = "east"
					}
					node := fmt.Sprintf("n%d", 3*s+rng.IntN(3))
					force := rng.IntN(2) == 0
					change := func(cur map[PinKey]Pin) (map[PinKey]Pin, error) {
						if _, ok := cur[k]; ok && rng.IntN(2) == 0 {
							delete(cur, k)
						} else {
							cur[k] = Pin{Node: node, Force: force}
						}
						return cur, nil
					}
					pins := inc.Pins()
					next, _ := change(maps.Clone(pins))
					set := func(map[PinKey]Pin) (map[PinKey]Pin, error) { return maps.Clone(next), nil }
					if err := inc.UpdatePins(set); err != nil {
						t.Fatal(err)
					}
					if err := full.UpdatePins(set); err != nil {
						t.Fatal(err)
					}
				default: // a reload of the same config
					base, err := Load(path)
					if err != nil {
						t.Fatal(err)
					}
					inc.SetBase(base)
					full.SetBase(base)
				}
				a := inc.last
				b := full.Recompute()
				for _, svc := range b.Services {
					for loc := range b.LocationCount() {
						da, oka := a.Decision(svc.Name, loc)
						db, okb := b.Decision(svc.Name, loc)
						if oka != okb || da.Active != db.Active || da.Servfail != db.Servfail || da.Pinned != db.Pinned {
							t.Fatalf("step %d: %s view %d: incremental %+v (%v), full %+v (%v)", step, svc.Name, loc, da, oka, db, okb)
						}
						ra, _, fa := a.Overlay(loc).RRset(svc.Name, dns.TypeA)
						rb, _, fb := b.Overlay(loc).RRset(svc.Name, dns.TypeA)
						if fa != fb || len(ra) != len(rb) || (len(ra) == 1 && ra[0].String() != rb[0].String()) {
							t.Fatalf("step %d: %s view %d answers %v (servfail %v), full %v (%v)", step, svc.Name, loc, ra, fa, rb, fb)
						}
					}
				}
			}
		})
	}
}

// BenchmarkHealthChange is one node's fall and rise, decided and published
// (snapshot and answers; the query path's fast table and the gauges are
// dnsserver's: BenchmarkPublishHealthChange there measures it all).
func BenchmarkHealthChange(b *testing.B) {
	for _, c := range []struct {
		name     string
		services int
		shared   bool
	}{
		{"100000-services-one-of-them-changes", 100000, false},
		{"100000-services-all-change", 100000, true},
		{"1-service", 1, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			path := writeScaleConfig(b, b.TempDir(), c.services, c.shared)
			h := map[string]health.State{}
			nodes := 3
			if !c.shared {
				nodes = 3 * c.services
			}
			for i := range nodes {
				h[fmt.Sprintf("n%d", i)] = health.State{Up: true, Checked: true, Since: time.Now().Add(-time.Hour)}
			}
			e, _ := scaleEngine(b, path, h)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				h["n0"] = health.State{Up: i%2 == 1, Checked: true, Since: time.Now()}
				e.mu.Lock()
				e.recompute(nil, false)
				e.mu.Unlock()
			}
		})
	}
}

// TestChangeLogBounded: a node shared by many services fails; at most
// maxChangeLines views are logged one by one, the rest in one line.
func TestChangeLogBounded(t *testing.T) {
	path := writeScaleConfig(t, t.TempDir(), 150, true)
	h := map[string]health.State{}
	for i := range 3 {
		h[fmt.Sprintf("n%d", i)] = health.State{Up: true, Checked: true, Since: time.Now().Add(-time.Hour)}
	}
	e, _ := scaleEngine(t, path, h)
	var buf strings.Builder
	e.log = slog.New(slog.NewTextHandler(&buf, nil))
	h["n0"] = health.State{Checked: true, Since: time.Now()}
	e.mu.Lock()
	e.recompute(nil, false)
	e.mu.Unlock()
	// The 150 default views change (east views answer n1 already).
	if n := strings.Count(buf.String(), `msg="active node changed"`); n != maxChangeLines {
		t.Errorf("%d change lines, want %d", n, maxChangeLines)
	}
	if !strings.Contains(buf.String(), "views=50") {
		t.Errorf("no summary of the 50 views not logged one by one:\n%s", buf.String())
	}
}

// TestReadParseZoneRereads: a zone file large enough that the fast parse
// gives read bytes back, with a directive near its end that only miekg's
// parser reads ($GENERATE), is read again and parsed whole; the result is
// ParseZone's on the same bytes.
func TestReadParseZoneRereads(t *testing.T) {
	var b strings.Builder
	b.WriteString("$ORIGIN big.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 192.0.2.53\n")
	for i := 0; b.Len() < 2*releaseEvery; i++ {
		fmt.Fprintf(&b, "h%07d IN A 10.%d.%d.%d\n", i, i>>16&255, i>>8&255, i&255)
	}
	b.WriteString("$GENERATE 1-3 g$ A 10.255.255.$\n")
	path := filepath.Join(t.TempDir(), "big.test.zone")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	got, rerr, err := readParseZone(t.Context(), "big.test.", path)
	if rerr != nil || err != nil {
		t.Fatalf("readParseZone: %v, %v", rerr, err)
	}
	want, err := ParseZone("big.test.", path, []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.nodes) != len(want.nodes) {
		t.Fatalf("%d names, want %d", len(got.nodes), len(want.nodes))
	}
	for _, name := range []string{"h0000000.big.test.", "g2.big.test.", fmt.Sprintf("h%07d.big.test.", len(want.nodes)-8)} {
		g, w := got.nodes[name], want.nodes[name]
		if g == nil || w == nil || fmt.Sprint(g.RRs(dns.TypeA)) != fmt.Sprint(w.RRs(dns.TypeA)) {
			t.Errorf("%s: %v, want %v", name, g, w)
		}
	}
}
