package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/dnsserver/testenv"
)

// kill -9 in the middle of a burst of pin UPDATEs, again and again: an
// UPDATE answered NOERROR is on disk (README "Pinning with nsupdate": a pin
// is written to state_dir, fsynced, before the UPDATE is answered), so after a restart
// the pin in force is the last acknowledged one, or the one sent after it
// whose answer the kill swallowed; never an older one, and the restart
// always succeeds (no torn state file). Names here start with kc.

// kcIterations is the number of kill/restart rounds; FAILOVERDNS_CRASH_ITERATIONS
// overrides it.
const kcIterations = 100

var kcValues = []string{"sems1", "sems2", "sems3"}

// kcValue is the pin text of the idx-th UPDATE of the whole test: the values
// rotate, so any two consecutive UPDATEs differ and an older pin is never
// mistaken for a newer one.
func kcValue(idx int) string { return kcValues[idx%len(kcValues)] }

// kcBurst is what one burst of UPDATEs got to before the kill.
type kcBurst struct {
	sent     int // UPDATEs sent (indexes first .. first+sent-1)
	lastAck  int // index of the last UPDATE answered NOERROR; -1 for none
	lastSent int // index of the last UPDATE sent; -1 for none
	err      error
	badRcode string // a non-NOERROR answer, which must not happen
}

// kcSendBurst sends signed UPDATEs setting _pin.keys.demo.test one after the
// other (first, first+1, ...), until one gets no answer (the kill) or stop
// is closed. Sequential sending means at most one UPDATE is unanswered when
// the process dies. Closing stop (after the process is reaped) ends a wait
// for an answer that will never come, shortly, so that an answer already
// on its way is still read.
func kcSendBurst(addr string, first int, stop <-chan struct{}) kcBurst {
	b := kcBurst{lastAck: -1, lastSent: -1}
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second, TsigSecret: map[string]string{peKeyName: peSecret}}
	type reply struct {
		r   *dns.Msg
		err error
	}
	for idx := first; ; idx++ {
		select {
		case <-stop:
			return b
		default:
		}
		m := new(dns.Msg).SetUpdate("demo.test.")
		m.Insert([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: "_pin.keys.demo.test.", Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: []string{kcValue(idx)}}})
		m.SetTsig(peKeyName, dns.HmacSHA256, 300, time.Now().Unix())
		// A connection per UPDATE: a dns.Conn chains the TSIG MAC of
		// one exchange into the next (as for zone transfers).
		conn, err := c.Dial(addr)
		if err != nil {
			b.err = err
			return b
		}
		b.sent++
		b.lastSent = idx
		done := make(chan reply, 1)
		go func() {
			r, _, err := c.ExchangeWithConn(m, conn)
			done <- reply{r, err}
		}()
		var got reply
		select {
		case got = <-done:
		case <-stop:
			conn.SetDeadline(time.Now().Add(50 * time.Millisecond))
			got = <-done
		}
		conn.Close()
		if got.err != nil {
			b.err = got.err
			return b
		}
		if got.r.Rcode != dns.RcodeSuccess {
			b.badRcode = fmt.Sprintf("UPDATE %d (%s) answered %s", idx, kcValue(idx), dns.RcodeToString[got.r.Rcode])
			return b
		}
		b.lastAck = idx
	}
}

// kcPin reads the pin in force and the service's answer from 127.0.0.1.
func kcPin(addr string) (pin, answer string, err error) {
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second, Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}}}
	q := new(dns.Msg).SetQuestion("_pin.keys.demo.test.", dns.TypeTXT)
	r, _, err := c.Exchange(q, addr)
	if err != nil {
		return "", "", fmt.Errorf("_pin query: %w", err)
	}
	switch {
	case r.Rcode == dns.RcodeNameError:
		pin = ""
	case r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1:
		txt, ok := r.Answer[0].(*dns.TXT)
		if !ok {
			return "", "", fmt.Errorf("_pin answer %s", r.Answer[0])
		}
		pin = strings.Join(txt.Txt, " ")
	default:
		return "", "", fmt.Errorf("_pin: %s with %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	q = new(dns.Msg).SetQuestion("keys.demo.test.", dns.TypeA)
	r, _, err = c.Exchange(q, addr)
	if err != nil {
		return "", "", fmt.Errorf("service query: %w", err)
	}
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		return "", "", fmt.Errorf("service: %s with %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	a, ok := r.Answer[0].(*dns.A)
	if !ok {
		return "", "", fmt.Errorf("service answer %s", r.Answer[0])
	}
	return pin, peNodeOf(a.A.String()), nil
}

func TestKill9DuringUpdateBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("kill -9 during UPDATE bursts: 100 restarts of the binary; skipped with -short")
	}
	iterations := kcIterations
	if v := os.Getenv("FAILOVERDNS_CRASH_ITERATIONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("FAILOVERDNS_CRASH_ITERATIONS=%q: want a positive number", v)
		}
		iterations = n
	}
	rng := testenv.Rand(t, 9)

	s := pePrepare(t, peConf{})
	start := func(what string) {
		t.Helper()
		s.Launch(t) // the port is the same on every restart: what says which start this is when it fails
		_ = what
	}
	start("first start")

	var (
		current            = "" // the pin in force: none at first
		next               = 0  // index of the next UPDATE of the whole test
		acked, inFlightWon int  // totals for the summary
		inFlight           int
		began              = time.Now()
	)
	for it := range iterations {
		stop := make(chan struct{})
		res := make(chan kcBurst, 1)
		first := next
		go func() { res <- kcSendBurst(s.addr(), first, stop) }()
		delay := time.Duration(rng.Int64N(int64(30*time.Millisecond) + 1))
		time.Sleep(delay) // the random moment of the kill
		if err := s.p.Cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-s.p.Done()
		close(stop)
		b := <-res
		if b.badRcode != "" {
			t.Fatalf("iteration %d: %s\nstderr:\n%s", it, b.badRcode, s.p.Stderr.String())
		}
		next += b.sent

		start(fmt.Sprintf("iteration %d: restart after kill -9 (%s into a burst of %d UPDATEs)", it, delay, b.sent))
		pin, answer, err := kcPin(s.addr())
		if err != nil {
			t.Fatalf("iteration %d: after the restart: %v\nstderr:\n%s", it, err, s.p.Stderr.String())
		}

		ackedValue := current // nothing acknowledged in this burst: the pin from before
		if b.lastAck >= 0 {
			ackedValue = kcValue(b.lastAck)
			acked += b.lastAck - first + 1
		}
		allowed := []string{ackedValue}
		if b.lastSent > b.lastAck {
			inFlight++
			allowed = append(allowed, kcValue(b.lastSent))
		}
		switch {
		case pin == ackedValue:
		case b.lastSent > b.lastAck && pin == kcValue(b.lastSent):
			inFlightWon++
		default:
			older := "an older pin"
			if pin == "" {
				older = "no pin"
			}
			t.Fatalf("iteration %d: after kill -9 %s into a burst (UPDATEs %d..%d sent, last acknowledged %d = %q), the restarted server has %s %q; want one of %q\nstderr:\n%s",
				it, delay, first, b.lastSent, b.lastAck, ackedValue, older, pin, allowed, s.p.Stderr.String())
		}
		wantAnswer := pin
		if wantAnswer == "" {
			wantAnswer = "sems1"
		}
		if answer != wantAnswer {
			t.Fatalf("iteration %d: pin %q in force but the service answers %s", it, pin, answer)
		}
		current = pin
	}
	s.p.Terminate(t)

	var tmps int
	ents, _ := os.ReadDir(s.stateDir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "pins.json.tmp-") {
			tmps++
		}
	}
	t.Logf("%d kill -9 rounds in %s: %d UPDATEs sent, %d acknowledged; %d kills left one unanswered, whose pin was in force after the restart %d times; %d temporary files left in %s",
		iterations, time.Since(began).Round(time.Millisecond), next, acked, inFlight, inFlightWon, tmps, filepath.Base(s.stateDir))
}
