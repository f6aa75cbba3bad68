package dnsserver_test

// Acceptance tests of the event history (README "Event history and status
// page"): every kind of event produced by a real failover, pin, lapse,
// reload and all-down episode of a running instance, read over HTTP at
// /events; the last change in _status; the history across a restart; 403
// outside admin_nets. The fixture is reload_test.go's (names start with hi
// here).

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/dnsserver"
	"github.com/failoverdns/failoverdns/dnsserver/testenv"
	"github.com/failoverdns/failoverdns/zones/events"
)

// hiEvents GETs /events?query from 127.0.0.1.
func hiEvents(t testing.TB, e *opsEnv, query string) dnsserver.EventsReply {
	t.Helper()
	code, body := testenv.HTTPDo(t, "127.0.0.1", http.MethodGet, e.HTTP, "/events?"+query)
	if code != http.StatusOK {
		t.Fatalf("/events?%s: %d %s", query, code, body)
	}
	var r dnsserver.EventsReply
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("/events?%s is not JSON: %v\n%s", query, err, body)
	}
	return r
}

// hiWait polls /events until an event after seq matches want, and returns
// it.
func hiWait(t testing.TB, e *opsEnv, after uint64, what string, want func(events.Event) bool) events.Event {
	t.Helper()
	deadline := time.Now().Add(opsWithin)
	var seen []events.Event
	for time.Now().Before(deadline) {
		seen = hiEvents(t, e, fmt.Sprintf("since=%d", after)).Events
		for _, ev := range seen {
			if want(ev) {
				return ev
			}
		}
		time.Sleep(opsPoll) // poll interval
	}
	t.Fatalf("no %s event after %s; events after %d:\n%s\nlog:\n%s", what, opsWithin, after, hiDump(seen), e.Logs)
	return events.Event{}
}

func hiDump(evs []events.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		j, _ := json.Marshal(ev)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

// hiView matches an event of the service's default view.
func hiView(e *opsEnv, kind events.Kind, ev events.Event) bool {
	return ev.Kind == kind && ev.Service == e.c.service() && ev.Location == "default"
}

// hiStatus reads _status of the service over TCP (it outgrows 512 bytes).
func hiStatus(t testing.TB, e *opsEnv) []string {
	t.Helper()
	r, err := testenv.Ask("tcp", "127.0.0.1", e.Addr, "_status."+e.c.service(), dns.TypeTXT)
	if err != nil {
		t.Fatal(err)
	}
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("_status: %s, %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	return r.Answer[0].(*dns.TXT).Txt
}

// TestEventHistory: each event kind, produced by the real thing, with the
// fields an operator reads; then filtering, the last change in _status,
// and a restart that keeps it all.
func TestEventHistory(t *testing.T) {
	nodes := opsNodes(t, "sems1", "sems2")
	e := opsStart(t, opsConf{order: []string{"sems1", "sems2"}, http: true, adminNets: `["127.0.0.1/32"]`}, nodes)
	svc := e.c.service()
	e.wantActive(t, "sems1", "start")
	if evs := hiEvents(t, e, "").Events; len(evs) != 0 {
		t.Fatalf("a fresh instance with every node up has events:\n%s", hiDump(evs))
	}
	// A view never changed has no change to tell.
	if lines := hiStatus(t, e); !containsPrefix(lines, "view default: answer sems1: ") {
		t.Errorf("_status of a view that never changed: %q, want \"view default: answer sems1: <reason>\"", lines)
	}

	// A failover: the node's health, then the view's answer.
	nodes["sems1"].stop()
	down := hiWait(t, e, 0, "sems1 down", func(ev events.Event) bool { return ev.Kind == events.KindNode && ev.Node == "sems1" })
	if down.Old != "up" || down.New != "down" || down.Check != "tcp" || !strings.Contains(down.Error, "refused") {
		t.Errorf("node event %+v, want sems1 up -> down, check tcp, the connect error", down)
	}
	moved := hiWait(t, e, 0, "failover", func(ev events.Event) bool { return hiView(e, events.KindActive, ev) })
	if moved.Old != "sems1" || moved.New != "sems2" || !strings.HasPrefix(moved.Reason, "sems1 is down: ") || moved.Seq <= down.Seq {
		t.Errorf("failover event %+v, want sems1 -> sems2 because sems1 is down, after the node event %d", moved, down.Seq)
	}
	// _status: since when, from what, why.
	wantLine := regexp.MustCompile(`^view default: answer sems2: sems1 is down: .*refused; since (\S+), was sems1$`)
	var since string
	for _, l := range hiStatus(t, e) {
		if m := wantLine.FindStringSubmatch(l); m != nil {
			since = m[1]
		}
	}
	if since != moved.Time.Format("15:04:05Z") {
		t.Errorf("_status has no line %q at the failover's time %s: %q", wantLine, moved.Time.Format("15:04:05Z"), hiStatus(t, e))
	}

	// A pin set by UPDATE, then removed.
	last := moved.Seq
	opsPin(t, e, "sems1 force")
	set := hiWait(t, e, last, "pin set", func(ev events.Event) bool { return hiView(e, events.KindPin, ev) })
	if set.Action != events.ActionSet || set.New != "sems1 force" || set.Old != "" || set.Key != opsKey || set.From != "127.0.0.1" || set.Reason != "update" {
		t.Errorf("pin event %+v, want set sems1 force by %s from 127.0.0.1 (update)", set, opsKey)
	}
	pinned := hiWait(t, e, set.Seq, "answer moved by the pin", func(ev events.Event) bool { return hiView(e, events.KindActive, ev) })
	if pinned.Old != "sems2" || pinned.New != "sems1" || !strings.HasPrefix(pinned.Reason, "pinned to sems1 force by key "+opsKey) {
		t.Errorf("event %+v, want sems2 -> sems1, pinned", pinned)
	}
	opsUnpin(t, e)
	removed := hiWait(t, e, pinned.Seq, "pin removed", func(ev events.Event) bool { return hiView(e, events.KindPin, ev) })
	if removed.Action != events.ActionRemoved || removed.Old != "sems1 force" || removed.New != "" || removed.Reason != "update" || removed.Key != opsKey || removed.From != "127.0.0.1" {
		t.Errorf("pin event %+v, want removed sems1 force by %s from 127.0.0.1 (update)", removed, opsKey)
	}

	// A pin that lapses by its until=.
	until := time.Now().Add(2 * time.Second).Truncate(time.Second).UTC()
	opsPin(t, e, "sems1 force until="+until.Format(time.RFC3339))
	lapsed := hiWait(t, e, removed.Seq, "pin lapsed", func(ev events.Event) bool {
		return hiView(e, events.KindPin, ev) && ev.Action == events.ActionLapsed
	})
	if lapsed.Old != "sems1 force until="+until.Format(time.RFC3339) || lapsed.Reason != "until passed" || lapsed.Time.Before(until) {
		t.Errorf("lapse event %+v, want sems1's pin lapsed at %s (until passed)", lapsed, until)
	}

	// Every node down: the view's episode, and the one for every node.
	nodes["sems2"].stop()
	start := hiWait(t, e, lapsed.Seq, "all down", func(ev events.Event) bool { return hiView(e, events.KindAllDown, ev) })
	if start.Action != events.ActionStart || start.New != "sems2" || !strings.Contains(start.Reason, "when_all_down = keep") {
		t.Errorf("all-down event %+v, want start, keeping sems2", start)
	}
	every := hiWait(t, e, lapsed.Seq, "every node down", func(ev events.Event) bool { return ev.Kind == events.KindAllDown && ev.Service == "" })
	if every.Action != events.ActionStart || !strings.Contains(every.Reason, "every node (2)") {
		t.Errorf("event %+v, want every node (2) down", every)
	}
	nodes["sems1"].start(t)
	end := hiWait(t, e, start.Seq, "all down ended", func(ev events.Event) bool {
		return hiView(e, events.KindAllDown, ev) && ev.Action == events.ActionEnd
	})
	if end.New != "sems1" {
		t.Errorf("end of all-down %+v, want answering sems1", end)
	}
	hiWait(t, e, start.Seq, "every node down ended", func(ev events.Event) bool {
		return ev.Kind == events.KindAllDown && ev.Service == "" && ev.Action == events.ActionEnd
	})
	nodes["sems2"].start(t)
	hiWait(t, e, end.Seq, "sems2 up", func(ev events.Event) bool { return ev.Kind == events.KindNode && ev.Node == "sems2" && ev.New == "up" })

	// Reloads: one that works, one that fails with the file:line.
	e.reload(t)
	ok := hiWait(t, e, end.Seq, "reload", func(ev events.Event) bool { return ev.Kind == events.KindReload })
	if ok.Action != events.ActionOK || ok.Error != "" {
		t.Errorf("reload event %+v, want ok", ok)
	}
	testenv.WriteFile(t, e.ConfigPath, e.configText(e.c)+"\n[server.bogus]\n")
	if err := e.in.Reload(); err == nil {
		t.Fatal("a reload of a broken config succeeded")
	}
	failed := hiWait(t, e, ok.Seq, "failed reload", func(ev events.Event) bool { return ev.Kind == events.KindReload })
	if failed.Action != events.ActionFailed || !strings.Contains(failed.Error, e.ConfigPath+":") || !strings.Contains(failed.Error, "bogus") {
		t.Errorf("reload event %+v, want failed with %s:<line> naming bogus", failed, e.ConfigPath)
	}
	e.write(t, e.c)

	// Filters: service= keeps the service's events and its nodes',
	// with or without the final dot; since= a number or a time.
	all := hiEvents(t, e, "")
	for _, q := range []string{"service=" + svc, "service=" + strings.TrimSuffix(svc, ".")} {
		for _, ev := range hiEvents(t, e, q).Events {
			if ev.Service != svc && ev.Kind != events.KindNode {
				t.Errorf("/events?%s returned %+v", q, ev)
			}
		}
	}
	if got := hiEvents(t, e, "service=other.ops.test").Events; len(got) != 0 {
		t.Errorf("/events?service=other.ops.test returned %d events", len(got))
	}
	if got := hiEvents(t, e, fmt.Sprintf("since=%d", failed.Seq-1)).Events; len(got) != 1 || got[0].Seq != failed.Seq {
		t.Errorf("/events?since=%d = %s, want only event %d", failed.Seq-1, hiDump(got), failed.Seq)
	}
	at := url.QueryEscape(lapsed.Time.Truncate(time.Second).Format(time.RFC3339))
	for _, ev := range hiEvents(t, e, "since="+at).Events {
		if ev.Time.Before(lapsed.Time.Truncate(time.Second)) {
			t.Errorf("/events?since=%s returned an earlier event %+v", at, ev)
		}
	}
	if got := hiEvents(t, e, "limit=2"); len(got.Events) != 2 || !got.Truncated || got.Events[1].Seq != all.LastSeq {
		t.Errorf("/events?limit=2 = %d events truncated %v, want the newest 2, truncated", len(got.Events), got.Truncated)
	}
	for _, q := range []string{"since=yesterday", "limit=0", "limit=x"} {
		if code, body := testenv.HTTPDo(t, "127.0.0.1", http.MethodGet, e.HTTP, "/events?"+q); code != http.StatusBadRequest || !strings.Contains(body, "want") {
			t.Errorf("/events?%s: %d %q, want 400 saying what is wanted", q, code, body)
		}
	}

	// A restart keeps the history and numbers on from it.
	e.closeIn()
	e.launch(t)
	after := hiEvents(t, e, "")
	var before []events.Event
	for _, ev := range after.Events {
		if ev.Seq <= all.LastSeq {
			before = append(before, ev)
		}
	}
	if !slices.EqualFunc(before, all.Events, func(a, b events.Event) bool {
		return a.Seq == b.Seq && a.Kind == b.Kind && a.Time.Equal(b.Time) && a.Reason == b.Reason
	}) {
		t.Errorf("after a restart the history holds\n%s\nwant\n%s", hiDump(before), hiDump(all.Events))
	}
	e.wantActive(t, "sems1", "after the restart")
	nodes["sems1"].stop()
	again := hiWait(t, e, all.LastSeq, "failover after the restart", func(ev events.Event) bool { return hiView(e, events.KindActive, ev) })
	if again.Old != "sems1" || again.New != "sems2" || again.Seq <= all.LastSeq {
		t.Errorf("failover after the restart %+v, want sems1 -> sems2 numbered after %d", again, all.LastSeq)
	}
}

// TestEventsAdminNets: /events is for admin_nets only, like POST /reload.
func TestEventsAdminNets(t *testing.T) {
	e := opsStart(t, opsConf{order: []string{"sems1"}, http: true, adminNets: `["127.0.0.1/32"]`}, opsNodes(t, "sems1"))
	for _, path := range []string{"/events", "/events?service=keys.ops.test."} {
		code, body := testenv.HTTPDo(t, "127.0.0.2", http.MethodGet, e.HTTP, path)
		if code != http.StatusForbidden || !strings.Contains(body, "admin_nets") {
			t.Errorf("GET %s from 127.0.0.2 (outside admin_nets): %d %q, want 403 naming admin_nets", path, code, body)
		}
		if code, _ := testenv.HTTPDo(t, "127.0.0.1", http.MethodGet, e.HTTP, path); code != http.StatusOK {
			t.Errorf("GET %s from 127.0.0.1: %d, want 200", path, code)
		}
	}
}

// TestEventsProberIsolated: a prober cut off from its anchors and nodes is
// an episode in the history, start and end (isolation_test.go's fixture).
func TestEventsProberIsolated(t *testing.T) {
	e, anchor := isoStart(t)
	find := func(action events.Action) (events.Event, bool) {
		evs, _ := e.in.Events.Select(events.Query{})
		for _, ev := range evs {
			if ev.Kind == events.KindIsolated && ev.Action == action {
				return ev, true
			}
		}
		return events.Event{}, false
	}
	wait := func(action events.Action) events.Event {
		t.Helper()
		deadline := time.Now().Add(admWithin)
		for {
			if ev, ok := find(action); ok {
				return ev
			}
			if time.Now().After(deadline) {
				evs, _ := e.in.Events.Select(events.Query{})
				t.Fatalf("no isolation %s event after %s:\n%s", action, admWithin, hiDump(evs))
			}
			time.Sleep(20 * time.Millisecond) // poll interval
		}
	}
	e.nodes["sems1"].stop()
	anchor.stop()
	start := wait(events.ActionStart)
	if !strings.Contains(start.Reason, "every anchor fails") || start.Error == "" {
		t.Errorf("isolation event %+v, want why and the anchor's error", start)
	}
	if _, ok := find(events.ActionEnd); ok {
		t.Error("the isolation ended while the anchor was still down")
	}
	anchor.start(t)
	if end := wait(events.ActionEnd); end.Seq <= start.Seq {
		t.Errorf("isolation ended at event %d, before it started (%d)", end.Seq, start.Seq)
	}
}
