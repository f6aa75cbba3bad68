package events

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/failoverdns/failoverdns/dnsserver/testenv"
)

// Tests of the ring, the queries and the file, without a server: the
// events an instance produces are tested in dnsserver/history_test.go.

// evNode is a node event numbered i (for telling events apart).
func evNode(i int) Event {
	return Event{Kind: KindNode, Node: fmt.Sprintf("n%d", i), Old: "up", New: "down", Error: "connect: connection refused"}
}

// seqs lists the events' numbers.
func seqs(evs []Event) []uint64 {
	var out []uint64
	for _, ev := range evs {
		out = append(out, ev.Seq)
	}
	return out
}

// span is first..last, the numbers a contiguous history holds.
func span(first, last uint64) []uint64 {
	var out []uint64
	for s := first; s <= last; s++ {
		out = append(out, s)
	}
	return out
}

// TestRingBound: the ring never holds more than Limit events; the newest
// stay, numbered on.
func TestRingBound(t *testing.T) {
	l := Open(Options{Limit: 5})
	defer l.Close()
	for i := 1; i <= 12; i++ {
		l.Add(evNode(i))
		if n := l.Len(); n > 5 {
			t.Fatalf("after %d events the ring holds %d, limit 5", i, n)
		}
	}
	all, truncated := l.Select(Query{})
	if got, want := seqs(all), span(8, 12); !slices.Equal(got, want) || truncated {
		t.Errorf("ring holds %v (truncated %v), want %v", got, truncated, want)
	}
	if all[0].Node != "n8" || all[4].Node != "n12" {
		t.Errorf("ring holds nodes %s..%s, want n8..n12", all[0].Node, all[4].Node)
	}
	if got := l.LastSeq(); got != 12 {
		t.Errorf("LastSeq = %d, want 12", got)
	}
}

// TestSelect: since= an event number or a time, service= (its own events
// and its nodes' health), limit= the newest.
func TestSelect(t *testing.T) {
	l := Open(Options{})
	defer l.Close()
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	add := func(min int, ev Event) {
		ev.Time = t0.Add(time.Duration(min) * time.Minute)
		l.Add(ev)
	}
	add(0, Event{Kind: KindNode, Node: "sems1", Old: "up", New: "down"})                                         // 1
	add(1, Event{Kind: KindActive, Service: "keys.demo.test.", Location: "default", Old: "sems1", New: "sems2"}) // 2
	add(2, Event{Kind: KindActive, Service: "mail.demo.test.", Location: "default", Old: "mx1", New: "mx2"})     // 3
	add(3, Event{Kind: KindNode, Node: "mx1", Old: "up", New: "down"})                                           // 4
	add(4, Event{Kind: KindPin, Action: ActionSet, Service: "keys.demo.test.", Location: "emea", New: "sems3"})  // 5
	add(5, Event{Kind: KindReload, Action: ActionOK})                                                            // 6

	for _, tc := range []struct {
		name string
		q    Query
		want []uint64
		trnc bool
	}{
		{"all", Query{}, span(1, 6), false},
		{"after seq 4", Query{AfterSeq: 4}, span(5, 6), false},
		{"since 10:03", Query{Since: t0.Add(3 * time.Minute)}, span(4, 6), false},
		{"service with its nodes", Query{Service: "keys.demo.test.", Nodes: []string{"sems1", "sems2"}}, []uint64{1, 2, 5}, false},
		{"service, any case", Query{Service: "KEYS.demo.test."}, []uint64{2, 5}, false},
		{"other service", Query{Service: "mail.demo.test.", Nodes: []string{"mx1"}}, []uint64{3, 4}, false},
		{"no such service", Query{Service: "none.demo.test."}, nil, false},
		{"limit keeps the newest", Query{Limit: 2}, span(5, 6), true},
		{"after seq and service", Query{AfterSeq: 2, Service: "keys.demo.test.", Nodes: []string{"sems1"}}, []uint64{5}, false},
	} {
		got, trnc := l.Select(tc.q)
		if !slices.Equal(seqs(got), tc.want) || trnc != tc.trnc {
			t.Errorf("%s: events %v truncated %v, want %v truncated %v", tc.name, seqs(got), trnc, tc.want, tc.trnc)
		}
	}
}

// TestLastChange: a view's first decision is its "since" but not an event;
// a change replaces it; a later first decision of the same answer (a
// restart) keeps the change that explains it.
func TestLastChange(t *testing.T) {
	dir := t.TempDir()
	l := Open(Options{Dir: dir})
	first := Event{Kind: KindActive, Service: "keys.demo.test.", Location: "default", New: "sems1", Reason: "first node up in order"}
	l.Add(first)
	if n := l.Len(); n != 0 {
		t.Errorf("a first decision went into the ring: %d events", n)
	}
	ev, ok := l.LastChange("keys.demo.test.", "default")
	if !ok || ev.New != "sems1" || ev.Old != "" || ev.Time.IsZero() {
		t.Errorf("LastChange after the first decision = %+v, %v; want sems1, no old, a time", ev, ok)
	}
	l.Add(Event{Kind: KindActive, Service: "keys.demo.test.", Location: "default", Old: "sems1", New: "sems2", Reason: "sems1 is down: connection refused"})
	ev, _ = l.LastChange("keys.demo.test.", "default")
	if ev.Old != "sems1" || ev.New != "sems2" || ev.Seq != 1 {
		t.Errorf("LastChange after a failover = %+v, want sems1 -> sems2, event 1", ev)
	}
	l.Close()

	// Restart: the history brings the change back, and the new process's
	// first decision (sems2 again) does not hide it.
	l = Open(Options{Dir: dir})
	defer l.Close()
	l.Add(Event{Kind: KindActive, Service: "keys.demo.test.", Location: "default", New: "sems2", Reason: "first node up in order"})
	ev, _ = l.LastChange("keys.demo.test.", "default")
	if ev.Old != "sems1" || ev.Seq != 1 {
		t.Errorf("LastChange after a restart answering the same = %+v, want the sems1 -> sems2 change", ev)
	}
	// ... but one answering something else replaces it.
	l.Add(Event{Kind: KindActive, Service: "keys.demo.test.", Location: "default", New: "sems1", Reason: "first node up in order"})
	if ev, _ = l.LastChange("keys.demo.test.", "default"); ev.New != "sems1" || ev.Old != "" {
		t.Errorf("LastChange after a first decision of another node = %+v, want the first decision", ev)
	}
	l.Retain(func(string) bool { return false })
	if _, ok := l.LastChange("keys.demo.test.", "default"); ok {
		t.Error("Retain kept the last change of a service it was told is gone")
	}
}

// TestRestartKeepsHistory: Close writes what is pending; Open reads it
// back, and numbering goes on from there.
func TestRestartKeepsHistory(t *testing.T) {
	dir := t.TempDir()
	l := Open(Options{Dir: dir, Flush: time.Hour}) // only Close writes
	for i := 1; i <= 3; i++ {
		l.Add(evNode(i))
	}
	l.Add(Event{Kind: KindReload, Action: ActionFailed, Error: "a.toml:3: bad\nb.zone:9: worse"})
	l.Close()
	l = Open(Options{Dir: dir})
	defer l.Close()
	got, _ := l.Select(Query{})
	if !slices.Equal(seqs(got), span(1, 4)) {
		t.Fatalf("after a restart the history holds %v, want 1..4", seqs(got))
	}
	if got[3].Kind != KindReload || got[3].Action != ActionFailed || got[3].Error != "a.toml:3: bad\nb.zone:9: worse" || got[0].Node != "n1" {
		t.Errorf("events read back differ: %+v", got)
	}
	l.Add(evNode(5))
	if got, _ := l.Select(Query{AfterSeq: 4}); len(got) != 1 || got[0].Seq != 5 {
		t.Errorf("the first event after a restart is %v, want number 5", seqs(got))
	}
}

// fileEvents decodes dir's file as a restart would, failing on anything a
// restart would have to drop beyond one torn last line.
func fileEvents(t *testing.T, dir string) (evs []Event, dropped int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return decode(b)
}

// waitFlushed polls until the file holds event seq.
func waitFlushed(t *testing.T, dir string, seq uint64) []Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs, _ := fileEvents(t, dir)
		if len(evs) > 0 && evs[len(evs)-1].Seq >= seq {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("event %d not in the file after 10s: %d events there", seq, len(evs))
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
}

// TestFileBounded: however many events arrive, the file never passes
// MaxBytes; it holds the newest, contiguous, and a restart reads them.
func TestFileBounded(t *testing.T) {
	dir := t.TempDir()
	const maxBytes = 4096
	var sizes []int64
	var mu sync.Mutex
	l := Open(Options{Dir: dir, MaxBytes: maxBytes, Limit: 100, Flush: time.Millisecond, hook: func(step string, seq uint64) {
		if step == "sync" || step == "compacted" {
			st, err := os.Stat(filepath.Join(dir, FileName))
			if err == nil {
				mu.Lock()
				sizes = append(sizes, st.Size())
				mu.Unlock()
			}
		}
	}})
	for i := 1; i <= 500; i++ {
		l.Add(evNode(i))
		if i%7 == 0 {
			waitFlushed(t, dir, uint64(i)) // many small appends, not one
		}
	}
	l.Close()
	mu.Lock()
	defer mu.Unlock()
	compactions := 0
	for i, s := range sizes {
		if s > maxBytes {
			t.Fatalf("write %d left the file at %d bytes, limit %d", i, s, maxBytes)
		}
		if i > 0 && s < sizes[i-1] {
			compactions++
		}
	}
	if compactions == 0 {
		t.Errorf("500 events in a 4 KB file never compacted it: sizes %v", sizes)
	}
	evs, dropped := fileEvents(t, dir)
	if dropped != 0 || len(evs) == 0 || evs[len(evs)-1].Seq != 500 || !slices.Equal(seqs(evs), span(evs[0].Seq, 500)) {
		t.Fatalf("file holds %v (dropped %d), want a contiguous run ending at 500", seqs(evs), dropped)
	}
	t.Logf("%d writes, %d compactions, the file keeps events %d..500", len(sizes), compactions, evs[0].Seq)
	l = Open(Options{Dir: dir, MaxBytes: maxBytes, Limit: 100})
	defer l.Close()
	if got, _ := l.Select(Query{}); !slices.Equal(seqs(got), seqs(evs)) {
		t.Errorf("a restart reads %v, want the file's %v", seqs(got), seqs(evs))
	}
}

// TestTornTail: a last line cut short (a crash mid-append) and a corrupt
// line are dropped, the rest is read, the file is rewritten clean, and
// appends after it are read back whole.
func TestTornTail(t *testing.T) {
	dir := t.TempDir()
	l := Open(Options{Dir: dir})
	for i := 1; i <= 4; i++ {
		l.Add(evNode(i))
	}
	l.Close()
	path := filepath.Join(dir, FileName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	// Line 2 gets a flipped byte; a fifth line is cut in half.
	lines[1] = strings.Replace(lines[1], "n2", "n7", 1)
	torn := string(encode(nil, Event{Seq: 5, Kind: KindNode, Node: "n5", Time: time.Now().UTC()}))
	b = []byte(strings.Join(lines, "") + torn[:len(torn)/2])
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}

	var logs testenv.Logs
	l = Open(Options{Dir: dir, Logger: logs.Logger(nil)})
	got, _ := l.Select(Query{})
	if want := []uint64{1, 3, 4}; !slices.Equal(seqs(got), want) {
		t.Errorf("after a torn tail and a corrupt line the history holds %v, want %v", seqs(got), want)
	}
	if !strings.Contains(logs.String(), "dropped=2") {
		t.Errorf("the start does not say 2 lines were dropped:\n%s", logs.String())
	}
	if _, dropped := fileEvents(t, dir); dropped != 0 {
		t.Errorf("the file still has %d bad lines after Open rewrote it", dropped)
	}
	l.Add(evNode(6))
	l.Close()
	evs, dropped := fileEvents(t, dir)
	if want := []uint64{1, 3, 4, 5}; dropped != 0 || !slices.Equal(seqs(evs), want) {
		t.Errorf("after appending to the repaired file it holds %v (dropped %d), want %v", seqs(evs), dropped, want)
	}
}

// TestFieldsClipped: a huge error (a reload's every problem) is cut, so
// the ring's bound in events bounds it in bytes too.
func TestFieldsClipped(t *testing.T) {
	l := Open(Options{})
	defer l.Close()
	l.Add(Event{Kind: KindReload, Action: ActionFailed, Error: strings.Repeat("é", 5000)})
	got, _ := l.Select(Query{})
	if len(got) != 1 || len(got[0].Error) > maxField || !strings.HasSuffix(got[0].Error, "...") {
		t.Fatalf("a 10,000-byte error is stored as %d bytes", len(got[0].Error))
	}
	if !strings.HasPrefix(got[0].Error, "é") || strings.ContainsRune(got[0].Error, '\uFFFD') {
		t.Error("clipping cut a character in half")
	}
}
