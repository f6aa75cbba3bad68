package dnsserver

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/zones"
)

// tsigProvider verifies and signs with the keys of the snapshot in force, so
// a reload that changes keys applies to the next message.
type tsigProvider struct{ s *Server }

func (p tsigProvider) Generate(msg []byte, t *dns.TSIG) ([]byte, error) {
	k := p.s.Snapshot().Config.TSIGKey(t.Hdr.Name)
	if k == nil {
		return nil, dns.ErrSecret
	}
	var h hash.Hash
	switch strings.ToLower(t.Algorithm) {
	case k.Algorithm:
	default:
		return nil, dns.ErrKeyAlg
	}
	switch k.Algorithm {
	case dns.HmacSHA256:
		h = hmac.New(sha256.New, k.SecretBytes())
	case dns.HmacSHA512:
		h = hmac.New(sha512.New, k.SecretBytes())
	default:
		return nil, dns.ErrKeyAlg
	}
	h.Write(msg)
	return h.Sum(nil), nil
}

func (p tsigProvider) Verify(msg []byte, t *dns.TSIG) error {
	want, err := p.Generate(msg, t)
	if err != nil {
		return err
	}
	got, err := hex.DecodeString(t.MAC)
	if err != nil || !hmac.Equal(got, want) {
		return dns.ErrSig
	}
	return nil
}

// updateError is a refusal with the RCODE to answer and the reason to log.
type updateError struct {
	rcode   int
	tsigErr uint16         // the TSIG error of the answer
	ede     *dns.EDNS0_EDE // said to a client that sent EDNS; nil = none
	why     string
}

func (e *updateError) Error() string { return e.why }

// extendedError is the Extended DNS Error (RFC 8914) for the refusal: its
// own when it has one, else the reason the log has, as Prohibited for a
// policy refusal (REFUSED), Not Authoritative for a zone not ours, Other
// for the rest (a TSIG failure, a malformed or failed request).
func (e *updateError) extendedError() *dns.EDNS0_EDE {
	if e.ede != nil {
		return e.ede
	}
	code := dns.ExtendedErrorCodeOther
	switch {
	case e.rcode == dns.RcodeRefused:
		code = dns.ExtendedErrorCodeProhibited
	case e.rcode == dns.RcodeNotAuth && e.tsigErr == 0:
		code = dns.ExtendedErrorCodeNotAuthoritative
	}
	return &dns.EDNS0_EDE{InfoCode: code, ExtraText: clip(e.why)}
}

func refuse(rcode int, format string, args ...any) *updateError {
	return &updateError{rcode: rcode, why: fmt.Sprintf(format, args...)}
}

// serveUpdate handles an RFC 2136 UPDATE. Only pins can change, only with a
// valid TSIG signature, only from admin_nets; anything else is refused and
// nothing changes. A pin is saved to disk before NOERROR is sent.
//
// Everything that costs no I/O (signature, time, source, replay) is checked
// first, by the caller's goroutine; only an UPDATE that passes takes one of
// the updateSlots, which bound the durable work (an fsync each). So a flood
// of unsigned or forged UPDATEs is refused at the cost of a query and never
// holds a slot a signed UPDATE needs. Over UDP the durable work runs on its
// own goroutine (the reader must not wait for a disk), and with every slot
// busy the UPDATE is dropped (nsupdate retries); over TCP the connection's
// goroutine waits for a slot.
func (s *Server) serveUpdate(w dns.ResponseWriter, r *dns.Msg, client netip.Addr, tr Transport) {
	t := r.IsTsig()
	if uerr := s.checkUpdate(w, r, t, client, time.Now()); uerr != nil {
		s.answerUpdate(w, r, t, client, uerr)
		return
	}
	if tr == TCP {
		s.updateSem <- struct{}{}
	} else {
		select {
		case s.updateSem <- struct{}{}:
		default:
			s.replay.forget(t.Hdr.Name, t.MAC)
			return
		}
	}
	work := func() {
		defer func() { <-s.updateSem }()
		s.answerUpdate(w, r, t, client, s.applyUpdate(r, t.Hdr.Name, client))
	}
	if tr == TCP {
		work()
	} else {
		go work()
	}
}

// checkUpdate is the part of an UPDATE's checks that needs no slot: it
// returns the refusal, or nil when the UPDATE may go on to applyUpdate (its
// MAC is then remembered as used).
func (s *Server) checkUpdate(w dns.ResponseWriter, r *dns.Msg, t *dns.TSIG, client netip.Addr, now time.Time) *updateError {
	if t == nil {
		return refuse(dns.RcodeRefused, "unsigned: UPDATE needs a TSIG signature")
	}
	if st := w.TsigStatus(); st != nil {
		e := refuse(dns.RcodeNotAuth, "TSIG with key %s: %v", t.Hdr.Name, st)
		e.tsigErr = tsigError(st)
		return e
	}
	unix := uint64(now.Unix())
	if skew := max(unix, t.TimeSigned) - min(unix, t.TimeSigned); skew > fudgeLimit {
		e := refuse(dns.RcodeNotAuth, "TSIG with key %s: signed %d s away from the server's clock; at most %d s is accepted, whatever fudge the request names (%d)", t.Hdr.Name, skew, fudgeLimit, t.Fudge)
		e.tsigErr = dns.RcodeBadTime
		return e
	}
	if !s.Snapshot().Config.Server.IsAdmin(client) {
		return refuse(dns.RcodeRefused, "source %s is not in admin_nets", client)
	}
	switch s.replay.first(t.Hdr.Name, t.MAC, t.TimeSigned, unix) {
	case replaySeen:
		e := refuse(dns.RcodeRefused, "replayed request: an UPDATE with this TSIG MAC (key %s) was already accepted; sign a new one", t.Hdr.Name)
		e.ede = &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeProhibited, ExtraText: "replayed request: this signed UPDATE was already accepted"}
		return e
	case replayFull:
		e := refuse(dns.RcodeRefused, "key %s signed more than %d UPDATEs within %d s; refused until older ones expire", t.Hdr.Name, replayMax, 2*fudgeLimit)
		e.ede = &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeOther, ExtraText: "too many UPDATEs with this key: try again later"}
		return e
	}
	return nil
}

// answerUpdate sends the answer: NOERROR when uerr is nil, else its RCODE,
// TSIG error and Extended DNS Error; signed whenever the request was.
func (s *Server) answerUpdate(w dns.ResponseWriter, r *dns.Msg, t *dns.TSIG, client netip.Addr, uerr *updateError) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Question = r.Question
	tsigErr := uint16(dns.RcodeSuccess)
	if uerr != nil {
		m.Rcode = uerr.rcode
		tsigErr = uerr.tsigErr
		if ok, held := s.refusals.allow(client, time.Now()); ok {
			attrs := []any{"from", client.String(), "rcode", dns.RcodeToString[uerr.rcode], "reason", uerr.why}
			if held > 0 {
				attrs = append(attrs, "suppressed", held)
			}
			s.log.Warn("UPDATE refused", attrs...)
		}
	}
	// RFC 6891: an OPT answers an OPT, and only an OPT. The refusal's
	// reason goes in it (RFC 8914), so a client sees why without the
	// server log. (nsupdate sends UPDATEs without EDNS, so it cannot be
	// told: the log remains its only source.)
	if opt := r.IsEdns0(); opt != nil {
		o := responseOPT(s.Snapshot(), opt)
		if uerr != nil {
			o.Option = append(o.Option, uerr.extendedError())
		}
		m.Extra = append(m.Extra, o)
	}
	if s.metrics != nil {
		s.metrics.updates.WithLabelValues(dns.RcodeToString[m.Rcode]).Inc()
	}
	if t != nil {
		signReply(m, t, tsigErr)
	}
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("writing UPDATE answer", "err", err)
	}
}

// applyUpdate checks the zone, prerequisites and updates, then changes the
// pins in one step. It returns nil after the pins are saved and in force.
func (s *Server) applyUpdate(r *dns.Msg, keyName string, client netip.Addr) *updateError {
	snap := s.Snapshot()
	if len(r.Question) != 1 {
		return refuse(dns.RcodeFormatError, "zone section has %d entries, want 1", len(r.Question))
	}
	zq := r.Question[0]
	if zq.Qtype != dns.TypeSOA || zq.Qclass != dns.ClassINET {
		return refuse(dns.RcodeFormatError, "zone section must be <zone> IN SOA")
	}
	z := snap.FindZone(strings.ToLower(zq.Name))
	if z == nil || z.Origin != strings.ToLower(dns.Fqdn(zq.Name)) {
		return refuse(dns.RcodeNotAuth, "not authoritative for zone %s", zq.Name)
	}
	if s.engine == nil {
		return refuse(dns.RcodeRefused, "dynamic pins are not enabled on this server")
	}
	if e := s.checkPrereqs(snap, snap.DynamicPins(), z, r.Answer); e != nil {
		return e
	}

	type op struct {
		key   zones.PinKey
		add   *zones.Pin
		match string // delete only a pin with this text ("" = any)
	}
	var ops []op
	now := time.Now()
	for _, rr := range r.Ns {
		h := rr.Header()
		name := strings.ToLower(h.Name)
		if !dns.IsSubDomain(z.Origin, name) {
			return refuse(dns.RcodeNotZone, "%s is outside zone %s", h.Name, z.Origin)
		}
		switch h.Class {
		case dns.ClassINET:
			if isMetaType(h.Rrtype) {
				return refuse(dns.RcodeFormatError, "cannot add type %s", dns.TypeToString[h.Rrtype])
			}
		case dns.ClassANY:
			if h.Ttl != 0 || h.Rdlength != 0 || (isMetaType(h.Rrtype) && h.Rrtype != dns.TypeANY) {
				return refuse(dns.RcodeFormatError, "malformed delete of %s", h.Name)
			}
		case dns.ClassNONE:
			if h.Ttl != 0 || isMetaType(h.Rrtype) {
				return refuse(dns.RcodeFormatError, "malformed delete of a record at %s", h.Name)
			}
		default:
			return refuse(dns.RcodeFormatError, "class %s in the update section", dns.ClassToString[h.Class])
		}
		k, ok := snap.PinKeyOf(name)
		dormant := false
		if !ok {
			// A pin whose service or location left the config can still
			// be deleted where it was set, or it would stay in state_dir
			// and come back unasked with its location.
			k, _, dormant = snap.DormantPinNamed(name)
			if !dormant {
				return refuse(dns.RcodeRefused, "%s %s: only TXT records at _pin.<service> or _pin.<location>._loc.<service> of a configured service may be changed", h.Name, dns.TypeToString[h.Rrtype])
			}
		}
		switch {
		case dormant && h.Class == dns.ClassINET:
			return refuse(dns.RcodeRefused, "%s is a dormant pin (its service or location is not in the config): it can only be deleted", h.Name)
		case h.Class == dns.ClassINET && h.Rrtype == dns.TypeTXT:
			p, err := zones.ParsePin(rr.(*dns.TXT).Txt)
			if err == nil {
				err = snap.CheckPin(k, p)
			}
			if err == nil && !p.Until.IsZero() && !p.Until.After(now) {
				err = fmt.Errorf("%s: until=%s has already passed", k.Name(), p.Until.Format(time.RFC3339))
			}
			if err != nil {
				return refuse(dns.RcodeRefused, "%v", err)
			}
			if p.Reason == "" && snap.Config.Server.RequirePinReason {
				e := refuse(dns.RcodeRefused, "%s: this server requires a reason for every pin (server.require_pin_reason): add one to the TXT, e.g. %q", k.Name(), p.Node+` reason="patching sems1"`)
				e.ede = &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeProhibited, ExtraText: e.why}
				return e
			}
			p.Key = strings.ToLower(keyName)
			p.From = client.String()
			p.At = now.UTC().Truncate(time.Second)
			ops = append(ops, op{key: k, add: &p})
		case h.Class == dns.ClassANY && (h.Rrtype == dns.TypeTXT || h.Rrtype == dns.TypeANY):
			ops = append(ops, op{key: k})
		case h.Class == dns.ClassNONE && h.Rrtype == dns.TypeTXT:
			ops = append(ops, op{key: k, match: strings.Join(strings.Fields(strings.Join(rr.(*dns.TXT).Txt, " ")), " ")})
		default:
			return refuse(dns.RcodeRefused, "%s: only TXT records may be changed at a pin name, not %s", h.Name, dns.TypeToString[h.Rrtype])
		}
	}
	if len(ops) == 0 {
		return nil // prerequisites only: answered NOERROR, nothing to change
	}
	err := s.engine.UpdatePinsAs(strings.ToLower(keyName), client.String(), func(pins map[zones.PinKey]zones.Pin) (map[zones.PinKey]zones.Pin, error) {
		// Again, against the pins this change applies to: in cluster mode
		// they are read in the same etcd transaction that commits the
		// change, so the prerequisites hold at the commit (RFC 2136 3.2).
		if e := s.checkPrereqs(snap, pins, z, r.Answer); e != nil {
			return nil, e
		}
		for _, o := range ops {
			switch {
			case o.add != nil:
				// A pin name holds one record: adding replaces.
				pins[o.key] = *o.add
			case o.match == "":
				delete(pins, o.key)
			default:
				if p, ok := pins[o.key]; ok && p.Text() == o.match {
					delete(pins, o.key)
				}
			}
		}
		return pins, nil
	})
	var prereq *updateError
	switch {
	case errors.As(err, &prereq):
		return prereq
	case err != nil:
		s.log.Error("UPDATE not applied: the pin could not be saved", "err", err)
		return refuse(dns.RcodeServerFailure, "saving the pin: %v", err)
	}
	return nil
}

// checkPrereqs evaluates the prerequisite section (RFC 2136 section 3.2)
// against what the server answers now: zone data, plus pins at _pin names.
func (s *Server) checkPrereqs(snap *zones.Snapshot, dyn map[zones.PinKey]zones.Pin, z *zones.Zone, prereqs []dns.RR) *updateError {
	type rrsetKey struct {
		name string
		t    uint16
	}
	want := map[rrsetKey][]dns.RR{}
	for _, rr := range prereqs {
		h := rr.Header()
		name := strings.ToLower(h.Name)
		if h.Ttl != 0 {
			return refuse(dns.RcodeFormatError, "prerequisite %s has TTL %d, want 0", h.Name, h.Ttl)
		}
		if !dns.IsSubDomain(z.Origin, name) {
			return refuse(dns.RcodeNotZone, "prerequisite %s is outside zone %s", h.Name, z.Origin)
		}
		switch h.Class {
		case dns.ClassANY:
			if h.Rdlength != 0 {
				return refuse(dns.RcodeFormatError, "prerequisite %s: class ANY with data", h.Name)
			}
			if h.Rrtype == dns.TypeANY {
				if !nameInUse(snap, dyn, z, name) {
					return refuse(dns.RcodeNameError, "prerequisite: %s is not in use", h.Name)
				}
			} else if len(currentRRset(snap, dyn, z, name, h.Rrtype)) == 0 {
				return refuse(dns.RcodeNXRrset, "prerequisite: no %s RRset at %s", dns.TypeToString[h.Rrtype], h.Name)
			}
		case dns.ClassNONE:
			if h.Rdlength != 0 {
				return refuse(dns.RcodeFormatError, "prerequisite %s: class NONE with data", h.Name)
			}
			if h.Rrtype == dns.TypeANY {
				if nameInUse(snap, dyn, z, name) {
					return refuse(dns.RcodeYXDomain, "prerequisite: %s is in use", h.Name)
				}
			} else if len(currentRRset(snap, dyn, z, name, h.Rrtype)) > 0 {
				return refuse(dns.RcodeYXRrset, "prerequisite: a %s RRset exists at %s", dns.TypeToString[h.Rrtype], h.Name)
			}
		case dns.ClassINET:
			k := rrsetKey{name, h.Rrtype}
			want[k] = append(want[k], rr)
		default:
			return refuse(dns.RcodeFormatError, "prerequisite %s: class %s", h.Name, dns.ClassToString[h.Class])
		}
	}
	for k, rrs := range want {
		have := currentRRset(snap, dyn, z, k.name, k.t)
		if !sameRRset(have, rrs) {
			return refuse(dns.RcodeNXRrset, "prerequisite: the %s RRset at %s differs", dns.TypeToString[k.t], k.name)
		}
	}
	return nil
}

// currentRRset is the RRset the server holds now for name and type.
func currentRRset(snap *zones.Snapshot, dyn map[zones.PinKey]zones.Pin, z *zones.Zone, name string, t uint16) []dns.RR {
	if k, ok := snap.PinKeyOf(name); ok {
		if t != dns.TypeTXT {
			return nil
		}
		p, _, ok := zones.PinAt(dyn, snap.StaticPins(), k, time.Now())
		if !ok {
			return nil
		}
		return []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: []string{p.Text()}}}
	}
	if (t == dns.TypeA || t == dns.TypeAAAA) && snap.Service(name) != nil {
		rrs, _, _ := snap.Overlay(0).RRset(name, t)
		return rrs
	}
	return z.RRset(name, t)
}

func nameInUse(snap *zones.Snapshot, dyn map[zones.PinKey]zones.Pin, z *zones.Zone, name string) bool {
	if k, ok := snap.PinKeyOf(name); ok {
		_, _, ok := zones.PinAt(dyn, snap.StaticPins(), k, time.Now())
		return ok
	}
	return snap.Service(name) != nil || z.HasData(name)
}

// sameRRset compares RRsets as sets of rdata, ignoring TTL and order.
func sameRRset(have, want []dns.RR) bool {
	key := func(rr dns.RR) string {
		c := dns.Copy(rr)
		c.Header().Ttl = 0
		c.Header().Name = strings.ToLower(c.Header().Name)
		if txt, ok := c.(*dns.TXT); ok {
			txt.Txt = []string{strings.Join(strings.Fields(strings.Join(txt.Txt, " ")), " ")}
		}
		return c.String()
	}
	var a, b []string
	for _, rr := range have {
		a = append(a, key(rr))
	}
	for _, rr := range want {
		b = append(b, key(rr))
	}
	slices.Sort(a)
	a = slices.Compact(a)
	slices.Sort(b)
	b = slices.Compact(b)
	return slices.Equal(a, b)
}

func isMetaType(t uint16) bool {
	switch t {
	case dns.TypeANY, dns.TypeAXFR, dns.TypeIXFR, dns.TypeMAILA, dns.TypeMAILB, dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY:
		return true
	}
	return false
}
