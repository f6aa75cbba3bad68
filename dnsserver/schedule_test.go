package dnsserver_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/dnsserver"
	"github.com/failoverdns/failoverdns/dnsserver/testenv"
	"github.com/failoverdns/failoverdns/zones"
)

// Planned changes: a pin scheduled with at= switches then and not before,
// and the answers' TTL counts down to the switch (and to an until= lapse),
// so resolvers' caches expire by then. admin_test.go's fixture: ttl 5.

// answerTTL asks for the service and returns the node and the A record's TTL.
func (e *admEnv) answerTTL(t *testing.T) (string, uint32, time.Time) {
	t.Helper()
	r := testenv.MustAsk(t, "udp", "127.0.0.1", e.Addr, admService, dns.TypeA)
	at := time.Now()
	if len(r.Answer) != 1 {
		t.Fatalf("answer %v, want one A", r.Answer)
	}
	return admNodeOf(r), r.Answer[0].Header().Ttl, at
}

// ceilSecs is the TTL a countdown to at gives at now.
func ceilSecs(at, now time.Time) uint32 {
	d := at.Sub(now)
	return uint32((d + time.Second - 1) / time.Second)
}

func TestScheduledPinSwitchesAtAt(t *testing.T) {
	e := admStart(t, admConf{})
	at := time.Now().Add(3 * time.Second).Truncate(time.Second).Add(time.Second) // 3–4 s ahead, whole second (RFC 3339)
	pin := fmt.Sprintf("sems2 at=%s reason=\"patching sems1\"", at.UTC().Format(time.RFC3339))
	e.mustUpdate(t, admPinMsg(admPinName, pin))
	if lines := unescapeTXT(strings.Join(e.status(t, ""), "\n")); !strings.Contains(lines, "pin pending: sems2 at=") || !strings.Contains(lines, `reason="patching sems1"`) || !strings.Contains(lines, "switch in") {
		t.Errorf("_status does not show the pending switch with its reason:\n%s", lines)
	}
	// Before at: the old node, with a TTL that never outlives the switch.
	sawRamp := false
	for {
		before := time.Now()
		node, ttl, got := e.answerTTL(t)
		if got.Before(at) {
			if node != "sems1" {
				t.Fatalf("%s answered %s before at=%s", got.Format(time.RFC3339Nano), node, at.Format(time.RFC3339))
			}
			// Cached for ttl seconds from the answer: never past at
			// (one second of rounding: TTLs are whole seconds).
			if ttl < 1 || ttl > 5 || ttl > ceilSecs(at, before) {
				t.Fatalf("TTL %d at %s, want 1..%d (seconds left until the switch)", ttl, before.Format(time.RFC3339Nano), ceilSecs(at, before))
			}
			sawRamp = sawRamp || ttl < 5
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if node == "sems2" {
			if ttl != 5 {
				t.Fatalf("after the switch TTL %d, want the service's 5", ttl)
			}
			break
		}
		if got.After(at.Add(admWithin)) {
			t.Fatalf("still %s %s after at=%s", node, admWithin, at.Format(time.RFC3339))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !sawRamp {
		t.Error("the TTL never counted down before the switch")
	}
	if got := unescapeTXT(e.pinTXT(t, admPinName)); !strings.HasPrefix(got, "sems2 at=") || !strings.HasSuffix(got, `reason="patching sems1"`) {
		t.Errorf("_pin = %s, want the pin with at= and its reason", got)
	}
	// The reason is saved and survives a restart.
	e.close()
	e.launch(t, dnsserver.Options{})
	if p := e.savedPins(t)[zones.PinKey{Service: admService}]; p.Reason != "patching sems1" || !p.Start.Equal(at) {
		t.Errorf("saved pin %+v, want reason and start kept", p)
	}
	if lines := unescapeTXT(strings.Join(e.status(t, ""), "\n")); !strings.Contains(lines, `reason="patching sems1"`) {
		t.Errorf("_status after restart lacks the reason:\n%s", lines)
	}
}

func TestScheduledPinCancelled(t *testing.T) {
	e := admStart(t, admConf{})
	at := time.Now().Add(4 * time.Second).Truncate(time.Second).Add(time.Second)
	e.mustUpdate(t, admPinMsg(admPinName, "sems2 at="+at.UTC().Format(time.RFC3339)))
	if _, ttl, _ := e.answerTTL(t); ttl == 5 {
		// 4–5 s ahead with ttl 5: the countdown may not have begun;
		// wait until it has.
		deadline := time.Now().Add(admWithin)
		for ttl == 5 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			_, ttl, _ = e.answerTTL(t)
		}
	}
	e.mustUpdate(t, admUnpinMsg(admPinName))
	if node, ttl, _ := e.answerTTL(t); node != "sems1" || ttl != 5 {
		t.Fatalf("after cancelling: %s TTL %d, want sems1 with the service's TTL 5 at once", node, ttl)
	}
	for time.Now().Before(at.Add(time.Second)) {
		if node, _, _ := e.answerTTL(t); node != "sems1" {
			t.Fatalf("a cancelled pin switched to %s", node)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestPinUntilRamps(t *testing.T) {
	e := admStart(t, admConf{})
	until := time.Now().Add(3 * time.Second).Truncate(time.Second).Add(time.Second)
	e.mustUpdate(t, admPinMsg(admPinName, "sems2 until="+until.UTC().Format(time.RFC3339)))
	for {
		before := time.Now()
		node, ttl, got := e.answerTTL(t)
		if got.Before(until) {
			if node != "sems2" || ttl < 1 || ttl > ceilSecs(until, before) {
				t.Fatalf("before until: %s TTL %d, want sems2 with TTL 1..%d", node, ttl, ceilSecs(until, before))
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if node == "sems1" {
			if ttl != 5 {
				t.Fatalf("after the lapse TTL %d, want 5", ttl)
			}
			return
		}
		if got.After(until.Add(admWithin)) {
			t.Fatalf("still %s long after until", node)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPinReasonRequired(t *testing.T) {
	e := admStart(t, admConf{})
	b, err := os.ReadFile(e.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(b), "[server]\n", "[server]\nrequire_pin_reason = true\n", 1)
	if err := os.WriteFile(e.ConfigPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	e.close()
	e.launch(t, dnsserver.Options{})
	m := admPinMsg(admPinName, "sems2")
	m.SetEdns0(1232, false)
	r, verr := admSend(t, e.Addr, m, admSign{})
	if verr != nil || r.Rcode != dns.RcodeRefused {
		t.Fatalf("pin without reason: %s (TSIG %v), want REFUSED", dns.RcodeToString[r.Rcode], verr)
	}
	var ede *dns.EDNS0_EDE
	if o := r.IsEdns0(); o != nil {
		for _, opt := range o.Option {
			if x, ok := opt.(*dns.EDNS0_EDE); ok {
				ede = x
			}
		}
	}
	if ede == nil || !strings.Contains(ede.ExtraText, "requires a reason") {
		t.Fatalf("EDE %+v, want one that says a reason is required", ede)
	}
	e.mustUpdate(t, admPinMsg(admPinName, `sems2 reason="maintenance window 42"`))
	e.wantActive(t, "127.0.0.1", "sems2")
}

// unescapeTXT undoes miekg/dns's presentation escape of quotes in TXT data.
func unescapeTXT(s string) string { return strings.ReplaceAll(s, `\"`, `"`) }

// TestScheduledPinThroughResolver: through a real unbound that caches the
// answers, no client is handed the old node more than a second after at=.
func TestScheduledPinThroughResolver(t *testing.T) {
	e := admStart(t, admConf{})
	u := opsStartUnbound(t, admZone, e.Addr)
	c := testenv.Client("udp", "", 2*time.Second)
	ask := func() (string, time.Time) {
		q := new(dns.Msg).SetQuestion(admService, dns.TypeA)
		r, _, err := c.Exchange(q, u.addr)
		if err != nil {
			t.Fatalf("query through unbound: %v", err)
		}
		return admNodeOf(r), time.Now()
	}
	if node, _ := ask(); node != "sems1" { // cached now, TTL 5
		t.Fatalf("through unbound: %s, want sems1", node)
	}
	at := time.Now().Add(4 * time.Second).Truncate(time.Second).Add(time.Second)
	e.mustUpdate(t, admPinMsg(admPinName, "sems2 at="+at.UTC().Format(time.RFC3339)))
	var lastOld time.Time
	for {
		node, got := ask()
		switch node {
		case "sems1":
			lastOld = got
		case "sems2":
			if got.Before(at) {
				t.Fatalf("unbound handed out sems2 at %s, before at=%s", got.Format(time.RFC3339Nano), at.Format(time.RFC3339))
			}
		default:
			t.Fatalf("through unbound: %s", node)
		}
		if got.After(at.Add(3 * time.Second)) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	late := lastOld.Sub(at)
	t.Logf("last sems1 through unbound %v after at=", late)
	// TTLs are whole seconds and the last one is 1 (never 0): a resolver
	// that cached the answer just before the switch may hand it out for
	// up to a second after it. Loosely: not a whole TTL (5 s) late.
	if late > 1500*time.Millisecond {
		t.Fatalf("unbound still handed out sems1 %v after the switch, want at most about 1s", late)
	}
}
