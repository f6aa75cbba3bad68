package dnsserver_test

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/dnsserver"
	"github.com/failoverdns/failoverdns/dnsserver/testenv"
	"github.com/failoverdns/failoverdns/zones"
	"github.com/failoverdns/failoverdns/zones/events"
)

// RFC 2136 UPDATE of _pin TXT records, signed with TSIG, with real sockets.
// The fixture (admStart, admSend, ...) is in admin_test.go.

// TestUpdatePinUnpin: a signed UPDATE pins, and the very next query answers
// the pinned node; deleting the pin returns to the health-driven node. The
// pin is saved in state_dir before the answer.
func TestUpdatePinUnpin(t *testing.T) {
	e := admStart(t, admConf{})
	e.wantActive(t, "127.0.0.1", "sems1")
	if b := e.stateFile(t); b != nil {
		t.Fatalf("a fresh state_dir already holds pins.json:\n%s", b)
	}

	e.mustUpdate(t, admPinMsg(admPinName, "sems2"))
	e.wantActive(t, "127.0.0.1", "sems2") // no waiting: the very next query
	if got := e.pinTXT(t, admPinName); got != "sems2" {
		t.Errorf("_pin = %s, want sems2", got)
	}
	pins := e.savedPins(t)
	p, ok := pins[zones.PinKey{Service: admService}]
	if len(pins) != 1 || !ok || p.Node != "sems2" || p.Force || !p.Until.IsZero() {
		t.Fatalf("saved pins %+v, want keys.demo.test. -> sems2", pins)
	}
	if p.Key != admKey || p.From != "127.0.0.1" || time.Since(p.At) > time.Minute {
		t.Errorf("saved pin %+v: want key admin., from 127.0.0.1, at about now", p)
	}

	// Over TCP, and adding to a pin name replaces the pin (one record).
	m := admPinMsg(admPinName, "sems3")
	r, verr := admSend(t, e.Addr, m, admSign{network: "tcp"})
	if r.Rcode != dns.RcodeSuccess || verr != nil {
		t.Fatalf("UPDATE over TCP: %s, TSIG %v", dns.RcodeToString[r.Rcode], verr)
	}
	e.wantActive(t, "127.0.0.1", "sems3")
	if got := e.pinTXT(t, admPinName); got != "sems3" {
		t.Errorf("_pin = %s, want sems3 (replacing sems2)", got)
	}

	// Deleting one record by value: a different value deletes nothing ...
	m = new(dns.Msg).SetUpdate(admZone)
	m.Remove([]dns.RR{admTXT(admPinName, 0, "sems2")})
	e.mustUpdate(t, m)
	e.wantActive(t, "127.0.0.1", "sems3")
	// ... the pin's own value deletes it.
	m = new(dns.Msg).SetUpdate(admZone)
	m.Remove([]dns.RR{admTXT(admPinName, 0, "sems3")})
	e.mustUpdate(t, m)
	e.wantActive(t, "127.0.0.1", "sems1")

	// Delete the RRset (nsupdate: update delete NAME TXT), in any case.
	e.mustUpdate(t, admPinMsg("_PIN.Keys.Demo.Test.", "sems2"))
	e.wantActive(t, "127.0.0.1", "sems2")
	e.mustUpdate(t, admUnpinMsg(admPinName))
	e.wantActive(t, "127.0.0.1", "sems1")
	if got := e.pinTXT(t, admPinName); got != "NXDOMAIN" {
		t.Errorf("_pin after delete = %s, want NXDOMAIN", got)
	}
	if pins := e.savedPins(t); len(pins) != 0 {
		t.Errorf("saved pins after delete: %+v, want none", pins)
	}

	// Delete the name (nsupdate: update delete NAME).
	e.mustUpdate(t, admPinMsg(admPinName, "sems3 force"))
	e.wantActive(t, "127.0.0.1", "sems3")
	m = new(dns.Msg).SetUpdate(admZone)
	m.RemoveName([]dns.RR{admTXT(admPinName, 0, "")})
	e.mustUpdate(t, m)
	e.wantActive(t, "127.0.0.1", "sems1")

	// Deleting a pin that is not there is a no-op, answered NOERROR.
	e.mustUpdate(t, admUnpinMsg(admPinName))
	e.wantActive(t, "127.0.0.1", "sems1")
}

// TestUpdatePinnedNodeDown: a pin holds only while its node is up; "force"
// holds it while the node is down.
func TestUpdatePinnedNodeDown(t *testing.T) {
	e := admStart(t, admConf{tcp: true})
	e.wantActive(t, "127.0.0.1", "sems1")
	sems2 := e.nodes["sems2"]

	e.mustUpdate(t, admPinMsg(admPinName, "sems2"))
	e.wantActive(t, "127.0.0.1", "sems2")

	sems2.stop()
	e.waitActive(t, "127.0.0.1", "sems1") // the first node in order that is up
	if got := e.pinTXT(t, admPinName); got != "sems2" {
		t.Errorf("_pin while its node is down = %s, want sems2 (the pin stays set)", got)
	}
	if lines := e.status(t, ""); !containsSubstr(lines, "pinned node sems2 is down") {
		t.Errorf("_status does not say the pinned node is down: %q", lines)
	}

	sems2.start(t)
	e.waitActive(t, "127.0.0.1", "sems2")

	// With force the answer stays on sems2 while it is down.
	e.mustUpdate(t, admPinMsg(admPinName, "sems2 force"))
	sems2.stop()
	e.waitHealth(t, "sems2", "down")
	for range 5 {
		e.wantActive(t, "127.0.0.1", "sems2")
	}
	if lines := e.status(t, ""); !containsPrefix(lines, "sems2 down active") {
		t.Errorf("_status does not show sems2 down and active: %q", lines)
	}
	sems2.start(t)
	e.waitHealth(t, "sems2", "up")
	e.wantActive(t, "127.0.0.1", "sems2")

	// Unpinned, health decides again.
	e.mustUpdate(t, admUnpinMsg(admPinName))
	e.wantActive(t, "127.0.0.1", "sems1")
}

// TestUpdateRefused: every UPDATE that must not change anything is refused
// with the right RCODE (and TSIG error), and the answer and the state file
// are exactly as before.
func TestUpdateRefused(t *testing.T) {
	e := admStart(t, admConf{adminNets: `["127.0.0.1/32"]`})
	e.mustUpdate(t, admPinMsg(admPinName, "sems2"))
	e.wantActive(t, "127.0.0.1", "sems2")
	before := e.stateFile(t)
	if before == nil {
		t.Fatal("no pins.json after a pin")
	}

	wrongSecret := "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZw=="
	pin3 := func() *dns.Msg { return admPinMsg(admPinName, "sems3") }
	cases := []struct {
		name    string
		msg     func() *dns.Msg
		sign    admSign
		rcode   int
		tsigErr int // -1: the answer carries no TSIG
		sig     int // what signature the answer must carry
	}{
		{"unsigned", pin3, admSign{unsigned: true}, dns.RcodeRefused, -1, sigNone},
		{"unsigned delete", func() *dns.Msg { return admUnpinMsg(admPinName) }, admSign{unsigned: true}, dns.RcodeRefused, -1, sigNone},
		{"unknown key name", pin3, admSign{key: "other."}, dns.RcodeNotAuth, dns.RcodeBadKey, sigNone},
		{"wrong algorithm", pin3, admSign{alg: dns.HmacSHA512}, dns.RcodeNotAuth, dns.RcodeBadKey, sigNone},
		{"wrong secret", pin3, admSign{secret: wrongSecret}, dns.RcodeNotAuth, dns.RcodeBadSig, sigNone},
		{"signed an hour ago", pin3, admSign{at: time.Now().Add(-time.Hour)}, dns.RcodeNotAuth, dns.RcodeBadTime, sigMAC},
		{"signed an hour ahead", pin3, admSign{at: time.Now().Add(time.Hour)}, dns.RcodeNotAuth, dns.RcodeBadTime, sigMAC},
		// The client's fudge is not trusted beyond the server's own 300 s.
		{"signed an hour ago with fudge 65535", pin3, admSign{at: time.Now().Add(-time.Hour), fudge: 65535}, dns.RcodeNotAuth, dns.RcodeBadTime, sigMAC},
		{"signed 330 s ahead with fudge 600", pin3, admSign{at: time.Now().Add(330 * time.Second), fudge: 600}, dns.RcodeNotAuth, dns.RcodeBadTime, sigMAC},
		{"outside admin_nets", pin3, admSign{from: admOutside}, dns.RcodeRefused, dns.RcodeSuccess, sigValid},
		{"outside admin_nets over TCP", pin3, admSign{from: admOutside, network: "tcp"}, dns.RcodeRefused, dns.RcodeSuccess, sigValid},
		{"not a _pin name", func() *dns.Msg {
			m := new(dns.Msg).SetUpdate(admZone)
			m.Insert([]dns.RR{mustRR(t, "www.demo.test. 300 IN A 192.0.2.99")})
			return m
		}, admSign{}, dns.RcodeRefused, dns.RcodeSuccess, sigValid},
		{"TXT at a non-pin name", func() *dns.Msg { return admPinMsg("www.demo.test.", "sems3") }, admSign{}, dns.RcodeRefused, dns.RcodeSuccess, sigValid},
		{"the service's A record", func() *dns.Msg {
			m := new(dns.Msg).SetUpdate(admZone)
			m.Insert([]dns.RR{mustRR(t, "keys.demo.test. 300 IN A 127.0.10.3")})
			return m
		}, admSign{}, dns.RcodeRefused, dns.RcodeSuccess, sigValid},
		{"_status", func() *dns.Msg { return admPinMsg("_status."+admService, "sems3") }, admSign{}, dns.RcodeRefused, dns.RcodeSuccess, sigValid},
		{"an A record at the _pin name", func() *dns.Msg {
			m := new(dns.Msg).SetUpdate(admZone)
			m.Insert([]dns.RR{mustRR(t, admPinName+" 0 IN A 192.0.2.1")})
			return m
		}, admSign{}, dns.RcodeRefused, dns.RcodeSuccess, sigValid},
		{"delete the A RRset at the _pin name", func() *dns.Msg {
			m := new(dns.Msg).SetUpdate(admZone)
			m.RemoveRRset([]dns.RR{mustRR(t, admPinName+" 0 IN A 192.0.2.1")})
			return m
		}, admSign{}, dns.RcodeRefused, dns.RcodeSuccess, sigValid},
		{"unknown node", func() *dns.Msg { return admPinMsg(admPinName, "sems9") }, admSign{}, dns.RcodeRefused, dns.RcodeSuccess, sigValid},
		{"bad pin text", func() *dns.Msg { return admPinMsg(admPinName, "sems3 always") }, admSign{}, dns.RcodeRefused, dns.RcodeSuccess, sigValid},
		{"until in the past", func() *dns.Msg {
			return admPinMsg(admPinName, "sems3 until="+time.Now().Add(-time.Minute).UTC().Format(time.RFC3339))
		}, admSign{}, dns.RcodeRefused, dns.RcodeSuccess, sigValid},
		{"pin of an unknown service", func() *dns.Msg { return admPinMsg("_pin.nothere.demo.test.", "sems3") }, admSign{}, dns.RcodeRefused, dns.RcodeSuccess, sigValid},
		{"pin of an unknown location", func() *dns.Msg { return admPinMsg("_pin.apac._loc."+admService, "sems3") }, admSign{}, dns.RcodeRefused, dns.RcodeSuccess, sigValid},
		{"a good pin and a bad record together", func() *dns.Msg {
			m := admPinMsg(admPinName, "sems3")
			m.Insert([]dns.RR{mustRR(t, "www.demo.test. 300 IN A 192.0.2.99")})
			return m
		}, admSign{}, dns.RcodeRefused, dns.RcodeSuccess, sigValid},
		{"a zone not ours", func() *dns.Msg {
			m := new(dns.Msg).SetUpdate("other.test.")
			m.Insert([]dns.RR{admTXT("_pin.keys.other.test.", 0, "sems3")})
			return m
		}, admSign{}, dns.RcodeNotAuth, dns.RcodeSuccess, sigMAC},
		{"a name below our zone as the zone", func() *dns.Msg {
			m := new(dns.Msg).SetUpdate(admService)
			m.Insert([]dns.RR{admTXT(admPinName, 0, "sems3")})
			return m
		}, admSign{}, dns.RcodeNotAuth, dns.RcodeSuccess, sigMAC},
		{"a record outside the zone", func() *dns.Msg {
			m := new(dns.Msg).SetUpdate(admZone)
			m.Insert([]dns.RR{admTXT("_pin.keys.other.test.", 0, "sems3")})
			return m
		}, admSign{}, dns.RcodeNotZone, dns.RcodeSuccess, sigValid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, verr := admSend(t, e.Addr, c.msg(), c.sign)
			if r.Rcode != c.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[c.rcode])
			}
			if got := tsigError(r); got != c.tsigErr {
				t.Errorf("TSIG error %d (%s), want %d (%s)", got, dns.RcodeToString[got], c.tsigErr, dns.RcodeToString[c.tsigErr])
			}
			switch c.sig {
			case sigValid:
				if verr != nil {
					t.Errorf("the answer's TSIG does not verify: %v", verr)
				}
			case sigMAC:
				// miekg/dns refuses to verify any NOTAUTH message
				// (ErrAuth), so only check that the answer is signed.
				if ts := r.IsTsig(); ts == nil || ts.MAC == "" {
					t.Errorf("the answer is not signed: %v", r.IsTsig())
				}
			}
			if c.tsigErr == -1 && !errors.Is(verr, errNoTSIG) {
				t.Errorf("an answer to an unsigned UPDATE carries a TSIG")
			}
			if c.tsigErr == dns.RcodeBadKey || c.tsigErr == dns.RcodeBadSig {
				if mac := r.IsTsig().MAC; mac != "" {
					t.Errorf("a %s answer carries a MAC (%s); RFC 8945 5.3.2: it is unsigned", dns.RcodeToString[c.tsigErr], mac)
				}
			}
			if got := e.admActive(t, "127.0.0.1"); got != "sems2" {
				t.Errorf("the answer changed to %s", got)
			}
			if got := e.pinTXT(t, admPinName); got != "sems2" {
				t.Errorf("_pin changed to %s", got)
			}
			if after := e.stateFile(t); !bytes.Equal(after, before) {
				t.Errorf("the state file changed:\n%s\n---\n%s", before, after)
			}
		})
	}
	if t.Failed() {
		t.Logf("log:\n%s", e.Logs)
	}
}

// TestUpdateReplayRefused: a captured signed UPDATE sent again, within the
// time its signature is valid, is refused and changes nothing, over UDP and
// TCP, and says why in an Extended DNS Error when the request carries EDNS;
// a client fudge larger than the server's is accepted within the server's.
func TestUpdateReplayRefused(t *testing.T) {
	e := admStart(t, admConf{})
	// Signed 100 s ago with a fudge of 65535: inside the server's 300 s.
	m := admPinMsg(admPinName, "sems2")
	m.SetEdns0(1232, false)
	captured, mac := admPack(t, m, admSign{at: time.Now().Add(-100 * time.Second), fudge: 65535})
	if r, verr := admSendRaw(t, e.Addr, captured, mac, admSign{}); r.Rcode != dns.RcodeSuccess || verr != nil {
		t.Fatalf("the first UPDATE: %s, TSIG %v, want NOERROR\n%s", dns.RcodeToString[r.Rcode], verr, e.Logs)
	}
	e.wantActive(t, "127.0.0.1", "sems2")
	e.mustUpdate(t, admPinMsg(admPinName, "sems3"))
	e.wantActive(t, "127.0.0.1", "sems3")
	before := e.stateFile(t)

	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			r, verr := admSendRaw(t, e.Addr, captured, mac, admSign{network: network})
			if r.Rcode != dns.RcodeRefused || tsigError(r) != dns.RcodeSuccess || verr != nil {
				t.Errorf("the replayed UPDATE: %s, TSIG error %d, signature %v; want REFUSED, TSIG error 0, a valid signature", dns.RcodeToString[r.Rcode], tsigError(r), verr)
			}
			var ede *dns.EDNS0_EDE
			if o := r.IsEdns0(); o != nil {
				for _, opt := range o.Option {
					if x, ok := opt.(*dns.EDNS0_EDE); ok {
						ede = x
					}
				}
			}
			if ede == nil || ede.InfoCode != dns.ExtendedErrorCodeProhibited || !strings.Contains(ede.ExtraText, "replay") {
				t.Errorf("the replayed UPDATE's answer: EDE %v, want Prohibited saying it is a replay\n%v", ede, r)
			}
			if got := e.admActive(t, "127.0.0.1"); got != "sems3" {
				t.Errorf("after the replay the answer is %s, want sems3", got)
			}
			if after := e.stateFile(t); !bytes.Equal(after, before) {
				t.Errorf("the replay changed the state file:\n%s\n---\n%s", before, after)
			}
		})
	}
}

// What signature an answer must carry.
const (
	sigNone  = iota // none, or an empty MAC (BADKEY, BADSIG: RFC 8945 5.3.2)
	sigValid        // one that verifies with the request's key
	sigMAC          // a MAC (NOTAUTH answers incl. BADTIME, which miekg/dns will not verify)
)

func mustRR(t testing.TB, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

// TestUpdatePrerequisites: RFC 2136 section 3.2 prerequisites are checked
// against what the server holds (pins at _pin names, zone data elsewhere);
// when one fails the RCODE says which and nothing changes.
func TestUpdatePrerequisites(t *testing.T) {
	e := admStart(t, admConf{})
	pinRR := func(text string) []dns.RR { return []dns.RR{admTXT(admPinName, 0, text)} }
	emeaRR := []dns.RR{admTXT(admEMEAPin, 0, "")}
	type tc struct {
		name   string
		prereq func(m *dns.Msg)
		rcode  int
	}
	failing := []tc{
		{"RRsetNotUsed on the pin", func(m *dns.Msg) { m.RRsetNotUsed(pinRR("")) }, dns.RcodeYXRrset},
		{"NameNotUsed on the pin", func(m *dns.Msg) { m.NameNotUsed(pinRR("")) }, dns.RcodeYXDomain},
		{"Used with another value", func(m *dns.Msg) { m.Used(pinRR("sems1")) }, dns.RcodeNXRrset},
		{"Used with the value plus another", func(m *dns.Msg) { m.Used(append(pinRR("sems2"), pinRR("sems1")...)) }, dns.RcodeNXRrset},
		{"RRsetUsed on an unset location pin", func(m *dns.Msg) { m.RRsetUsed(emeaRR) }, dns.RcodeNXRrset},
		{"NameUsed on an unset location pin", func(m *dns.Msg) { m.NameUsed(emeaRR) }, dns.RcodeNameError},
		{"RRsetUsed TXT where there is only A", func(m *dns.Msg) { m.RRsetUsed([]dns.RR{admTXT("www.demo.test.", 0, "")}) }, dns.RcodeNXRrset},
		{"RRsetNotUsed A where there is A", func(m *dns.Msg) { m.RRsetNotUsed([]dns.RR{mustRR(t, "www.demo.test. 0 IN A 192.0.2.80")}) }, dns.RcodeYXRrset},
		{"NameUsed on an absent name", func(m *dns.Msg) { m.NameUsed([]dns.RR{admTXT("nothere.demo.test.", 0, "")}) }, dns.RcodeNameError},
		{"NameNotUsed on the service name", func(m *dns.Msg) { m.NameNotUsed([]dns.RR{admTXT(admService, 0, "")}) }, dns.RcodeYXDomain},
		{"Used with the service's old address", func(m *dns.Msg) { m.Used([]dns.RR{mustRR(t, "keys.demo.test. 0 IN A 127.0.10.1")}) }, dns.RcodeNXRrset},
		{"one true and one false", func(m *dns.Msg) {
			m.Used(pinRR("sems2"))
			m.NameUsed([]dns.RR{admTXT("nothere.demo.test.", 0, "")})
		}, dns.RcodeNameError},
	}
	for _, c := range failing {
		t.Run("fails/"+c.name, func(t *testing.T) {
			e.mustUpdate(t, admPinMsg(admPinName, "sems2"))
			before := e.stateFile(t)
			m := new(dns.Msg).SetUpdate(admZone)
			c.prereq(m)
			m.Insert([]dns.RR{admTXT(admPinName, 0, "sems3")})
			m.Insert([]dns.RR{admTXT(admEMEAPin, 0, "sems3")})
			r, verr := admSend(t, e.Addr, m, admSign{})
			if r.Rcode != c.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[c.rcode])
			}
			if verr != nil || tsigError(r) != dns.RcodeSuccess {
				t.Errorf("answer TSIG: error %d, verify %v; want a valid signature", tsigError(r), verr)
			}
			if got := e.admActive(t, "127.0.0.1"); got != "sems2" {
				t.Errorf("the answer changed to %s", got)
			}
			if got := e.admActive(t, admEMEAIP); got != "sems2" {
				t.Errorf("emea's answer changed to %s", got)
			}
			if after := e.stateFile(t); !bytes.Equal(after, before) {
				t.Errorf("the state file changed:\n%s\n---\n%s", before, after)
			}
		})
	}

	passing := []tc{
		{"Used with the pin's value", func(m *dns.Msg) { m.Used(pinRR("sems2")) }, 0},
		{"Used with the pin's value, other spacing and case of name", func(m *dns.Msg) {
			m.Used([]dns.RR{admTXT("_PIN.keys.DEMO.test.", 0, "sems2")})
		}, 0},
		{"RRsetUsed on the pin", func(m *dns.Msg) { m.RRsetUsed(pinRR("")) }, 0},
		{"NameUsed on the pin", func(m *dns.Msg) { m.NameUsed(pinRR("")) }, 0},
		{"RRsetNotUsed on an unset location pin", func(m *dns.Msg) { m.RRsetNotUsed(emeaRR) }, 0},
		{"NameNotUsed on an unset location pin", func(m *dns.Msg) { m.NameNotUsed(emeaRR) }, 0},
		{"NameNotUsed on an absent name", func(m *dns.Msg) { m.NameNotUsed([]dns.RR{admTXT("nothere.demo.test.", 0, "")}) }, 0},
		{"NameUsed on a zone name", func(m *dns.Msg) { m.NameUsed([]dns.RR{admTXT("www.demo.test.", 0, "")}) }, 0},
		{"Used with a zone record", func(m *dns.Msg) { m.Used([]dns.RR{mustRR(t, "www.demo.test. 0 IN A 192.0.2.80")}) }, 0},
		{"RRsetUsed on the service's A", func(m *dns.Msg) { m.RRsetUsed([]dns.RR{mustRR(t, "keys.demo.test. 0 IN A 127.0.10.2")}) }, 0},
		{"Used with the service's current address", func(m *dns.Msg) { m.Used([]dns.RR{mustRR(t, "keys.demo.test. 0 IN A 127.0.10.2")}) }, 0},
		{"RRsetNotUsed AAAA at the service", func(m *dns.Msg) { m.RRsetNotUsed([]dns.RR{mustRR(t, "keys.demo.test. 0 IN AAAA ::1")}) }, 0},
	}
	for _, c := range passing {
		t.Run("holds/"+c.name, func(t *testing.T) {
			e.mustUpdate(t, admUnpinMsg(admEMEAPin))
			e.mustUpdate(t, admPinMsg(admPinName, "sems2"))
			m := new(dns.Msg).SetUpdate(admZone)
			c.prereq(m)
			m.Insert([]dns.RR{admTXT(admPinName, 0, "sems3")})
			e.mustUpdate(t, m)
			e.wantActive(t, "127.0.0.1", "sems3")
		})
	}

	// Prerequisites alone: NOERROR, nothing changes.
	e.mustUpdate(t, admPinMsg(admPinName, "sems2"))
	before := e.stateFile(t)
	m := new(dns.Msg).SetUpdate(admZone)
	m.Used(pinRR("sems2"))
	e.mustUpdate(t, m)
	e.wantActive(t, "127.0.0.1", "sems2")
	if after := e.stateFile(t); !bytes.Equal(after, before) {
		t.Errorf("a prerequisite-only UPDATE changed the state file")
	}

	// Compare-and-swap: the second of two identical conditional UPDATEs
	// finds the pin changed and fails.
	cas := func() *dns.Msg {
		m := new(dns.Msg).SetUpdate(admZone)
		m.Used(pinRR("sems2"))
		m.Insert([]dns.RR{admTXT(admPinName, 0, "sems3")})
		return m
	}
	e.mustUpdate(t, cas())
	r, _ := admSend(t, e.Addr, cas(), admSign{})
	if r.Rcode != dns.RcodeNXRrset {
		t.Errorf("the second compare-and-swap: %s, want NXRRSET", dns.RcodeToString[r.Rcode])
	}
}

// TestUpdatePinUntilLapses: a pin with until= lapses by itself: the answer
// returns to the health-driven node at that time, not before, and the
// state file no longer holds it.
func TestUpdatePinUntilLapses(t *testing.T) {
	e := admStart(t, admConf{})
	until := time.Now().Add(3 * time.Second).UTC().Truncate(time.Second) // 2-3 s ahead
	text := "sems2 until=" + until.Format(time.RFC3339)
	e.mustUpdate(t, admPinMsg(admPinName, text))
	e.wantActive(t, "127.0.0.1", "sems2")
	if got := e.pinTXT(t, admPinName); got != text {
		t.Errorf("_pin = %q, want %q", got, text)
	}
	if p := e.savedPins(t)[zones.PinKey{Service: admService}]; !p.Until.Equal(until) {
		t.Errorf("saved pin %+v, want until %s", p, until)
	}

	e.waitActive(t, "127.0.0.1", "sems1")
	if now := time.Now(); now.Before(until) {
		t.Errorf("the pin lapsed at %s, before its until %s", now.Format(time.RFC3339Nano), until.Format(time.RFC3339))
	}
	if got := e.pinTXT(t, admPinName); got != "NXDOMAIN" {
		t.Errorf("_pin after until = %s, want NXDOMAIN", got)
	}
	deadline := time.Now().Add(admWithin)
	for {
		b := e.stateFile(t)
		if !bytes.Contains(b, []byte("sems2")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lapsed pin is still in the state file:\n%s", b)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
	if pins := e.savedPins(t); len(pins) != 0 {
		t.Errorf("saved pins after until: %+v, want none", pins)
	}
}

// TestUpdateLocationPin: _pin.<location>._loc.<service> changes only that
// location's clients; it beats the service-wide pin there.
func TestUpdateLocationPin(t *testing.T) {
	e := admStart(t, admConf{})
	e.wantActive(t, admEMEAIP, "sems1")

	e.mustUpdate(t, admPinMsg(admEMEAPin, "sems3"))
	e.wantActive(t, admEMEAIP, "sems3")
	e.wantActive(t, "127.0.0.1", "sems1")
	e.wantActive(t, "127.0.98.5", "sems1")

	// A service-wide pin moves everyone else; emea keeps its own pin.
	e.mustUpdate(t, admPinMsg(admPinName, "sems2"))
	e.wantActive(t, "127.0.0.1", "sems2")
	e.wantActive(t, admEMEAIP, "sems3")

	// Without its own pin, emea follows the service-wide one.
	e.mustUpdate(t, admUnpinMsg(admEMEAPin))
	e.wantActive(t, admEMEAIP, "sems2")
	e.wantActive(t, "127.0.0.1", "sems2")

	e.mustUpdate(t, admUnpinMsg(admPinName))
	e.wantActive(t, admEMEAIP, "sems1")
	e.wantActive(t, "127.0.0.1", "sems1")

	// Both pins in one UPDATE, saved together.
	m := admPinMsg(admEMEAPin, "sems2")
	m.Insert([]dns.RR{admTXT(admPinName, 0, "sems3")})
	e.mustUpdate(t, m)
	e.wantActive(t, admEMEAIP, "sems2")
	e.wantActive(t, "127.0.0.1", "sems3")
	if pins := e.savedPins(t); len(pins) != 2 || pins[zones.PinKey{Service: admService, Location: "emea"}].Node != "sems2" {
		t.Errorf("saved pins %+v, want emea -> sems2 and the service -> sems3", pins)
	}
}

// TestUpdatePinsSurviveRestart: pins come back from state_dir after a
// restart (a clean one here; cmd's end-to-end test does kill -9).
func TestUpdatePinsSurviveRestart(t *testing.T) {
	e := admStart(t, admConf{})
	e.mustUpdate(t, admPinMsg(admPinName, "sems3"))
	e.mustUpdate(t, admPinMsg(admEMEAPin, "sems2 force"))
	e.close()
	e.launch(t, dnsserver.Options{})
	e.wantActive(t, "127.0.0.1", "sems3")
	e.wantActive(t, admEMEAIP, "sems2")
	if got := e.pinTXT(t, admEMEAPin); got != "sems2 force" {
		t.Errorf("%s after restart = %q, want \"sems2 force\"", admEMEAPin, got)
	}
	if lines := e.status(t, ""); !containsPrefix(lines, "pin sems3 set-by=admin. from=127.0.0.1 at=") {
		t.Errorf("_status after restart does not say who set the pin: %q", lines)
	}
}

// TestSavedPinsNoLongerValid: saved pins whose service, location or node is
// gone from the config are dropped at start (with a warning), the others
// are kept.
func TestSavedPinsNoLongerValid(t *testing.T) {
	e := admPrepare(t, admConf{}, nil)
	st := zones.NewPinStore(e.stateDir)
	err := st.Save(map[zones.PinKey]zones.Pin{
		{Service: admService}:                       {Node: "sems3"},
		{Service: admService, Location: "emea"}:     {Node: "sems9"},
		{Service: admService, Location: "apac"}:     {Node: "sems1"},
		{Service: "gone.demo.test."}:                {Node: "sems1"},
		{Service: admService, Location: "emea-old"}: {Node: "sems2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.launch(t, dnsserver.Options{})
	e.wantActive(t, "127.0.0.1", "sems3")
	e.wantActive(t, admEMEAIP, "sems3")
	if got := e.pinTXT(t, admEMEAPin); got != "NXDOMAIN" {
		t.Errorf("the saved emea pin naming sems9 is in force: %s", got)
	}
	for _, w := range []string{"sems9", "apac", "gone.demo.test."} {
		if !strings.Contains(e.Logs.String(), w) {
			t.Errorf("no warning about the dropped pin %s:\n%s", w, e.Logs)
		}
	}
}

// TestUpdateConcurrent: UPDATEs racing each other are applied one at a
// time: at the end the answer, _pin and the state file agree.
func TestUpdateConcurrent(t *testing.T) {
	e := admStart(t, admConf{})
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			node := []string{"sems1", "sems2", "sems3"}[i%3]
			r, verr := admSend(t, e.Addr, admPinMsg(admPinName, node), admSign{})
			if r.Rcode != dns.RcodeSuccess || verr != nil {
				t.Errorf("UPDATE %d: %s, TSIG %v", i, dns.RcodeToString[r.Rcode], verr)
			}
		})
	}
	wg.Wait()
	pin := e.pinTXT(t, admPinName)
	if got := e.admActive(t, "127.0.0.1"); got != pin {
		t.Errorf("the answer is %s but _pin is %s", got, pin)
	}
	if saved := e.savedPins(t)[zones.PinKey{Service: admService}].Node; saved != pin {
		t.Errorf("the state file holds %s but _pin is %s", saved, pin)
	}
	for _, name := range testenv.DirNames(t, e.stateDir) {
		if name != "pins.json" && name != events.FileName {
			t.Errorf("state_dir holds %s besides pins.json and the event history", name)
		}
	}
}

// TestUpdateStateDirUnwritable: when the pin cannot be saved, the UPDATE is
// answered SERVFAIL and nothing changes.
func TestUpdateStateDirUnwritable(t *testing.T) {
	// Tests run as root in CI, where a chmod does not stop writes: a path
	// under a regular file cannot be written by anyone.
	t.Run("under a regular file from the start", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, []byte("a file, not a folder\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		e := admStart(t, admConf{stateDir: filepath.Join(file, "sub")})
		if !strings.Contains(e.Logs.String(), "not writable") {
			t.Errorf("no warning at start that state_dir is not writable:\n%s", e.Logs)
		}
		r, verr := admSend(t, e.Addr, admPinMsg(admPinName, "sems2"), admSign{})
		if r.Rcode != dns.RcodeServerFailure {
			t.Errorf("UPDATE with an unwritable state_dir: %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
		}
		if verr != nil {
			t.Errorf("answer TSIG: %v", verr)
		}
		e.wantActive(t, "127.0.0.1", "sems1")
		if got := e.pinTXT(t, admPinName); got != "NXDOMAIN" {
			t.Errorf("_pin = %s after a failed save, want NXDOMAIN", got)
		}
	})

	t.Run("becomes unwritable", func(t *testing.T) {
		e := admStart(t, admConf{})
		e.mustUpdate(t, admPinMsg(admPinName, "sems2"))
		// Replace the folder by a regular file.
		if err := os.RemoveAll(e.stateDir); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(e.stateDir, []byte("a file, not a folder\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, m := range []*dns.Msg{admPinMsg(admPinName, "sems3"), admUnpinMsg(admPinName), admPinMsg(admEMEAPin, "sems3")} {
			r, _ := admSend(t, e.Addr, m, admSign{})
			if r.Rcode != dns.RcodeServerFailure {
				t.Errorf("UPDATE with an unwritable state_dir: %s, want SERVFAIL\n%v", dns.RcodeToString[r.Rcode], m)
			}
			e.wantActive(t, "127.0.0.1", "sems2")
			e.wantActive(t, admEMEAIP, "sems2")
			if got := e.pinTXT(t, admPinName); got != "sems2" {
				t.Errorf("_pin = %s after a failed save, want sems2", got)
			}
		}
		// Writable again: UPDATEs work again.
		if err := os.Remove(e.stateDir); err != nil {
			t.Fatal(err)
		}
		e.mustUpdate(t, admPinMsg(admPinName, "sems3"))
		e.wantActive(t, "127.0.0.1", "sems3")
		if p := e.savedPins(t)[zones.PinKey{Service: admService}]; p.Node != "sems3" {
			t.Errorf("saved pin %+v, want sems3", p)
		}
	})
}

// TestStartCorruptState: a corrupt pins.json stops StartWith with an error
// naming the file; IgnoreState starts without those pins and leaves the file
// alone until the next pin change.
func TestStartCorruptState(t *testing.T) {
	e := admPrepare(t, admConf{}, nil)
	cfgPath, stateDir := e.ConfigPath, e.stateDir
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(stateDir, "pins.json")
	garbage := []byte(`{"version": 1, "pins": [{"service": "keys.demo.test.", "node": "sems2"`)
	if err := os.WriteFile(path, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	var logs testenv.Logs
	o := dnsserver.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Version: "v0"}
	in, err := dnsserver.StartWith(load(t, cfgPath), o)
	if err == nil {
		in.Close(t.Context())
		t.Fatal("StartWith started with a corrupt pins.json")
	}
	if !errors.Is(err, zones.ErrCorruptState) {
		t.Errorf("error is not ErrCorruptState: %v", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}

	e.launch(t, dnsserver.Options{IgnoreState: true})
	e.wantActive(t, "127.0.0.1", "sems1")
	if got := e.pinTXT(t, admPinName); got != "NXDOMAIN" {
		t.Errorf("_pin = %s with -ignore-state, want NXDOMAIN", got)
	}
	if !strings.Contains(e.Logs.String(), path) {
		t.Errorf("the warning does not name %s:\n%s", path, e.Logs)
	}
	if b := e.stateFile(t); !bytes.Equal(b, garbage) {
		t.Errorf("starting with IgnoreState changed the corrupt file:\n%s", b)
	}
	e.mustUpdate(t, admPinMsg(admPinName, "sems3"))
	e.wantActive(t, "127.0.0.1", "sems3")
	if p := e.savedPins(t)[zones.PinKey{Service: admService}]; p.Node != "sems3" {
		t.Errorf("after a pin the state file holds %+v, want sems3", p)
	}
}

// TestUpdateNoKeys: with no [[tsig]] key, every UPDATE is refused.
func TestUpdateNoKeys(t *testing.T) {
	e := admStart(t, admConf{noSecret: true})
	r, _ := admSend(t, e.Addr, admPinMsg(admPinName, "sems2"), admSign{})
	if r.Rcode != dns.RcodeNotAuth || tsigError(r) != dns.RcodeBadKey {
		t.Errorf("UPDATE with no keys configured: %s, TSIG error %d; want NOTAUTH/BADKEY", dns.RcodeToString[r.Rcode], tsigError(r))
	}
	r, _ = admSend(t, e.Addr, admPinMsg(admPinName, "sems2"), admSign{unsigned: true})
	if r.Rcode != dns.RcodeRefused {
		t.Errorf("unsigned UPDATE: %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
	e.wantActive(t, "127.0.0.1", "sems1")
	if b := e.stateFile(t); b != nil {
		t.Errorf("state file written:\n%s", b)
	}
}

// TestUpdateFloodUnsigned: while clients flood the server with unsigned
// UPDATEs, every signed UPDATE is still answered NOERROR at its first try.
func TestUpdateFloodUnsigned(t *testing.T) {
	e := admStart(t, admConf{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	for range 8 {
		wg.Go(func() {
			c := testenv.Client("udp", "127.0.0.2", admTimeout)
			c.Timeout = time.Second
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, _, _ = c.Exchange(admPinMsg(admPinName, "sems3"), e.Addr)
			}
		})
	}
	for i := range 20 {
		node := []string{"sems1", "sems2"}[i%2]
		r, verr := admSend(t, e.Addr, admPinMsg(admPinName, node), admSign{})
		if r.Rcode != dns.RcodeSuccess || verr != nil {
			t.Fatalf("signed UPDATE %d during the flood: %s, TSIG %v", i, dns.RcodeToString[r.Rcode], verr)
		}
		e.wantActive(t, "127.0.0.1", node)
	}
}

// TestUpdateRefusalLogRateLimited: a flood of refused UPDATEs from one
// source, over UDP and pipelined over one TCP connection, writes one log
// line per source per interval (10 s), while failoverdns_updates_total
// still counts every one.
func TestUpdateRefusalLogRateLimited(t *testing.T) {
	e := admStart(t, admConf{})
	start := time.Now()
	const n = 200
	c := testenv.Client("udp", "127.0.0.2", admTimeout)
	for i := range n {
		if r, _, err := c.Exchange(admPinMsg(admPinName, "sems3"), e.Addr); err != nil || r.Rcode != dns.RcodeRefused {
			t.Fatalf("unsigned UPDATE %d: %v %v, want REFUSED", i, r, err)
		}
	}
	conn, err := testenv.Client("tcp", "127.0.0.2", admTimeout).Dial(e.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(admTimeout))
	for range 50 {
		if err := conn.WriteMsg(admPinMsg(admPinName, "sems3")); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 {
		if r, err := conn.ReadMsg(); err != nil || r.Rcode != dns.RcodeRefused {
			t.Fatalf("pipelined unsigned UPDATE %d: %v %v, want REFUSED", i, r, err)
		}
	}
	if r, _, err := testenv.Client("udp", "127.0.0.3", admTimeout).Exchange(admPinMsg(admPinName, "sems3"), e.Addr); err != nil || r.Rcode != dns.RcodeRefused {
		t.Fatalf("unsigned UPDATE from another source: %v %v, want REFUSED", r, err)
	}
	elapsed := time.Since(start)

	lines := map[string]int{}
	for _, l := range strings.Split(e.Logs.String(), "\n") {
		if strings.Contains(l, "UPDATE refused") {
			for _, src := range []string{"127.0.0.2", "127.0.0.3"} {
				if strings.Contains(l, "from="+src+" ") {
					lines[src]++
				}
			}
		}
	}
	// One line per 10 s interval started, for a test that takes longer on
	// a loaded machine.
	most := 1 + int(elapsed/(10*time.Second))
	if lines["127.0.0.2"] < 1 || lines["127.0.0.2"] > most {
		t.Errorf("%d log lines for %d refusals from 127.0.0.2 in %s, want 1..%d", lines["127.0.0.2"], n+50, elapsed, most)
	}
	if lines["127.0.0.3"] != 1 {
		t.Errorf("%d log lines for the refusal from 127.0.0.3, want 1 (its own)", lines["127.0.0.3"])
	}
	var refused float64
	mfs, err := e.in.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "failoverdns_updates_total" {
			refused = opsSum(mf, "rcode", "REFUSED")
		}
	}
	if refused != n+51 {
		t.Errorf("failoverdns_updates_total{rcode=REFUSED} = %v, want %d (every refusal counted)", refused, n+51)
	}
}

// TestUpdateDormantPinDeletable: a location pin whose location left the
// config is kept, dormant; _status and /status list it as dormant, an
// UPDATE may delete it at the name it was set on (but not set it again),
// and once deleted it does not come back with the location.
func TestUpdateDormantPinDeletable(t *testing.T) {
	e := admStart(t, admConf{})
	e.mustUpdate(t, admPinMsg(admEMEAPin, "sems2"))
	e.wantActive(t, admEMEAIP, "sems2")
	cfg, err := os.ReadFile(e.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	const emea = "\n[[location]]\nname = \"emea\"\nsubnets = [\"127.0.99.0/24\"]\n"
	if !bytes.Contains(cfg, []byte(emea)) {
		t.Fatalf("the fixture's config has no emea location:\n%s", cfg)
	}
	writeCfg := func(b []byte) {
		if err := os.WriteFile(e.ConfigPath, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg(bytes.Replace(cfg, []byte(emea), nil, 1))
	e.close()
	e.launch(t, dnsserver.Options{ConfigPath: e.ConfigPath})
	e.wantActive(t, admEMEAIP, "sems1")

	if lines := e.status(t, ""); !containsPrefix(lines, "dormant pin "+admEMEAPin+" sems2 ") {
		t.Errorf("_status does not list the dormant pin: %q", lines)
	}
	st := e.in.Status()
	if len(st.DormantPins) != 1 || st.DormantPins[0].Name != admEMEAPin || st.DormantPins[0].Node != "sems2" || st.DormantPins[0].Why == "" {
		t.Errorf("/status dormant pins: %+v, want %s -> sems2 with why", st.DormantPins, admEMEAPin)
	}

	r, verr := admSend(t, e.Addr, admPinMsg(admEMEAPin, "sems3"), admSign{})
	if r.Rcode != dns.RcodeRefused || verr != nil {
		t.Errorf("setting a dormant pin again: %s (TSIG %v), want REFUSED", dns.RcodeToString[r.Rcode], verr)
	}
	e.mustUpdate(t, admUnpinMsg(admEMEAPin))
	if pins := e.savedPins(t); len(pins) != 0 {
		t.Errorf("saved pins after deleting the dormant one: %+v, want none", pins)
	}
	if st := e.in.Status(); len(st.DormantPins) != 0 {
		t.Errorf("/status still lists dormant pins: %+v", st.DormantPins)
	}

	// The location returns: the deleted pin does not.
	writeCfg(cfg)
	if err := e.in.Reload(); err != nil {
		t.Fatal(err)
	}
	e.wantActive(t, admEMEAIP, "sems1")
}
