package main

import (
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// edeExchange sends m from the loopback address from, with EDNS, signed with
// the test key when sign, and returns the reply.
func edeExchange(t *testing.T, s *peServer, from string, m *dns.Msg, sign bool) *dns.Msg {
	t.Helper()
	m.SetEdns0(1232, false)
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second,
		Dialer: &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.UDPAddr{IP: net.ParseIP(from)}}}
	if sign {
		c.TsigSecret = map[string]string{peKeyName: peSecret}
		m.SetTsig(peKeyName, dns.HmacSHA256, 300, time.Now().Unix())
	}
	r, _, err := c.Exchange(m, s.addr())
	if err != nil {
		t.Fatalf("exchange from %s: %v\nserver stderr:\n%s", from, err, s.p.Stderr.String())
	}
	return r
}

// edeOf returns the reply's Extended DNS Error, or nil.
func edeOf(r *dns.Msg) *dns.EDNS0_EDE {
	if o := r.IsEdns0(); o != nil {
		for _, e := range o.Option {
			if ede, ok := e.(*dns.EDNS0_EDE); ok {
				return ede
			}
		}
	}
	return nil
}

// TestEDERefusals: a refused UPDATE and a refused admin query carry the
// reason as an Extended DNS Error (RFC 8914), the text the log has: for an
// unknown node, a name that is not a pin, a source outside admin_nets. The
// pin log lines name the key and source.
func TestEDERefusals(t *testing.T) {
	s := peStart(t, peConf{adminNets: `["127.0.0.1/32"]`})
	update := func(rrs ...string) *dns.Msg {
		m := new(dns.Msg).SetUpdate("demo.test.")
		for _, text := range rrs {
			rr, err := dns.NewRR(text)
			if err != nil {
				t.Fatal(err)
			}
			m.Insert([]dns.RR{rr})
		}
		return m
	}
	for _, tc := range []struct {
		name, from string
		m          *dns.Msg
		sign       bool
		rcode      int
		code       uint16
		text       string
	}{
		{"unknown node", "127.0.0.1", update(`_pin.keys.demo.test. 0 IN TXT "nosuch"`), true,
			dns.RcodeRefused, dns.ExtendedErrorCodeProhibited, `"nosuch"`},
		{"not a pin name", "127.0.0.1", update(`www.demo.test. 0 IN A 192.0.2.1`), true,
			dns.RcodeRefused, dns.ExtendedErrorCodeProhibited, "only TXT records at _pin.<service> or _pin.<location>._loc.<service> of a configured service may be changed"},
		{"outside admin_nets", "127.0.0.2", update(`_pin.keys.demo.test. 0 IN TXT "sems2"`), true,
			dns.RcodeRefused, dns.ExtendedErrorCodeProhibited, "source 127.0.0.2 is not in admin_nets"},
		{"unsigned", "127.0.0.1", update(`_pin.keys.demo.test. 0 IN TXT "sems2"`), false,
			dns.RcodeRefused, dns.ExtendedErrorCodeProhibited, "unsigned: UPDATE needs a TSIG signature"},
		{"admin query outside admin_nets", "127.0.0.2", new(dns.Msg).SetQuestion("_status.keys.demo.test.", dns.TypeTXT), false,
			dns.RcodeRefused, dns.ExtendedErrorCodeProhibited, "_pin and _status names are answered to server.admin_nets only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := edeExchange(t, s, tc.from, tc.m, tc.sign)
			ede := edeOf(r)
			if r.Rcode != tc.rcode || ede == nil || ede.InfoCode != tc.code || !strings.Contains(ede.ExtraText, tc.text) {
				t.Errorf("rcode %s, EDE %v; want %s with EDE %d containing %q", dns.RcodeToString[r.Rcode], ede, dns.RcodeToString[tc.rcode], tc.code, tc.text)
			}
		})
	}
	// An accepted UPDATE with EDNS gets an OPT and no EDE; set, then
	// remove: both log lines name the key and the source.
	for _, op := range []string{"add", "delete"} {
		m := update()
		rr, _ := dns.NewRR(`_pin.keys.demo.test. 0 IN TXT "sems2"`)
		if op == "add" {
			m.Insert([]dns.RR{rr})
		} else {
			m.RemoveRRset([]dns.RR{rr})
		}
		r := edeExchange(t, s, "127.0.0.1", m, true)
		if r.Rcode != dns.RcodeSuccess || r.IsEdns0() == nil || edeOf(r) != nil {
			t.Errorf("%s pin: rcode %s, OPT %v, EDE %v; want NOERROR with an OPT and no EDE", op, dns.RcodeToString[r.Rcode], r.IsEdns0() != nil, edeOf(r))
		}
	}
	for _, msg := range []string{`"pin set"`, `"pin removed"`} {
		re := regexp.MustCompile(`msg=` + msg + `.* key=` + regexp.QuoteMeta(peKeyName) + ` from=127\.0\.0\.1 `)
		deadline := time.Now().Add(10 * time.Second)
		for !re.MatchString(s.p.Stderr.String()) {
			if time.Now().After(deadline) {
				t.Fatalf("no log line %s in:\n%s", re, s.p.Stderr.String())
			}
			time.Sleep(20 * time.Millisecond) // poll interval
		}
	}
	// dig shows it too.
	t.Run("dig", func(t *testing.T) {
		out := runDig(t, s.port, "-b", "127.0.0.2", "+norec", "TXT", "_status.keys.demo.test")
		if !strings.Contains(out, "; EDE: 18 (Prohibited): (_pin and _status names are answered to server.admin_nets only)") {
			t.Errorf("dig does not show the EDE:\n%s", out)
		}
	})
}
