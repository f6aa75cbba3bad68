package dnsserver

import (
	"encoding/base64"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestUpdateCheapChecksBeforeSlot: with every UPDATE slot held by durable
// work, UPDATEs that fail the checks needing no I/O (unsigned, forged,
// stale, from outside admin_nets) are still answered at once: they never
// wait for, or take, a slot a signed UPDATE needs.
func TestUpdateCheapChecksBeforeSlot(t *testing.T) {
	secret := base64.StdEncoding.EncodeToString([]byte("failoverdns-slot-test-secret-032"))
	wrong := base64.StdEncoding.EncodeToString([]byte("failoverdns-slot-test-wrong-0032"))
	s := startZoneServer(t, "admin_nets = [\"127.0.0.1/32\"]\n[[tsig]]\nname = \"k.\"\nalgorithm = \"hmac-sha256\"\nsecret = \""+secret+"\"\n")
	addr := s.Addrs()[0]
	for range updateSlots {
		s.updateSem <- struct{}{}
	}
	release := func() {
		for len(s.updateSem) > 0 {
			<-s.updateSem
		}
	}
	defer release()

	send := func(from, sec string, at time.Time) (*dns.Msg, error) {
		m := new(dns.Msg).SetUpdate("fast.test.")
		m.Insert([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: "_pin.x.fast.test.", Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: []string{"n1"}}})
		c := &dns.Client{Net: "udp", Timeout: 5 * time.Second, Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(from)}}}
		if sec != "" {
			m.SetTsig("k.", dns.HmacSHA256, 300, at.Unix())
			c.TsigSecret = map[string]string{"k.": sec}
		}
		r, _, err := c.Exchange(m, addr)
		if r == nil {
			return nil, err
		}
		return r, nil
	}
	for _, c := range []struct {
		name    string
		from    string
		secret  string
		at      time.Time
		rcode   int
		tsigErr int
	}{
		{"unsigned", "127.0.0.1", "", time.Now(), dns.RcodeRefused, -1},
		{"wrong secret", "127.0.0.1", wrong, time.Now(), dns.RcodeNotAuth, dns.RcodeBadSig},
		{"signed an hour ago", "127.0.0.1", secret, time.Now().Add(-time.Hour), dns.RcodeNotAuth, dns.RcodeBadTime},
		{"outside admin_nets", "127.0.0.2", secret, time.Now(), dns.RcodeRefused, dns.RcodeSuccess},
	} {
		r, err := send(c.from, c.secret, c.at)
		if err != nil {
			t.Errorf("%s: no answer while every UPDATE slot is busy: %v", c.name, err)
			continue
		}
		te := -1
		if ts := r.IsTsig(); ts != nil {
			te = int(ts.Error)
		}
		if r.Rcode != c.rcode || te != c.tsigErr {
			t.Errorf("%s: %s with TSIG error %d, want %s with %d", c.name, dns.RcodeToString[r.Rcode], te, dns.RcodeToString[c.rcode], c.tsigErr)
		}
	}
	if n := len(s.updateSem); n != updateSlots {
		t.Errorf("%d slots held after the refusals, want the %d the test holds", n, updateSlots)
	}

	// Released, a signed UPDATE gets to the durable part (this bare server
	// has no pin engine, which it says).
	release()
	r, err := send("127.0.0.1", secret, time.Now())
	if err != nil || r.Rcode != dns.RcodeRefused || r.IsTsig() == nil || r.IsTsig().Error != dns.RcodeSuccess {
		t.Fatalf("a signed UPDATE with the slots free: %v %v, want REFUSED (no pin engine), signed", r, err)
	}
}

// TestReplayGuardBounded: the replay state holds at most max MACs per key;
// full, it refuses rather than forgets, and MACs past their validity make
// room again.
func TestReplayGuardBounded(t *testing.T) {
	g := replayGuard{max: 3}
	const now = 1_000_000
	mac := func(i int) string { return string(rune('a'+i)) + "0123456789abcdef" }
	for i := range 3 {
		if v := g.first("K.", mac(i), now, now); v != replayFirst {
			t.Fatalf("MAC %d: verdict %d, want first", i, v)
		}
	}
	if v := g.first("k.", mac(1), now, now+10); v != replaySeen {
		t.Errorf("the same MAC again (key in another case): verdict %d, want seen", v)
	}
	if v := g.first("k.", mac(3), now, now); v != replayFull {
		t.Errorf("a fourth MAC within the window: verdict %d, want full", v)
	}
	if v := g.first("other.", mac(3), now, now); v != replayFirst {
		t.Errorf("another key's first MAC: verdict %d, want first (the bound is per key)", v)
	}
	later := uint64(now + fudgeLimit + 1)
	if v := g.first("k.", mac(3), later, later); v != replayFirst {
		t.Errorf("a new MAC once the old ones expired: verdict %d, want first", v)
	}
	if n := len(g.keys["k."]); n != 1 {
		t.Errorf("%d MACs kept for k. after the sweep, want 1", n)
	}
	g.forget("k.", mac(3))
	if v := g.first("k.", mac(3), later, later); v != replayFirst {
		t.Errorf("a forgotten MAC: verdict %d, want first", v)
	}
}
