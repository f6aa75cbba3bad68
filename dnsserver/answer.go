package dnsserver

import (
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/zones"
)

// Transport says how a query arrived; it decides the size limit and, later,
// which answers may be sent to an unverified source.
type Transport uint8

const (
	UDP Transport = iota
	TCP
)

func (t Transport) String() string {
	if t == TCP {
		return "tcp"
	}
	return "udp"
}

// Request is a parsed query and where it came from.
type Request struct {
	Msg       *dns.Msg
	Client    netip.Addr
	Transport Transport

	q       query  // set by answer: the query's EDNS part
	loc     int    // set by answer: the client's view, for metrics and logs
	service string // set by answer: the service answered, "" for static data
	admin   bool   // set by answer: an admin name (_pin, _status)
}

// answer computes the reply to one query from one snapshot. It returns nil
// when nothing must be sent. It never blocks and never takes a lock, so it
// can be tested without sockets and called from any listener.
func (s *Server) answer(snap *zones.Snapshot, req *Request) *dns.Msg {
	version := s.version
	q := req.Msg
	if q.Response {
		return nil
	}
	m := new(dns.Msg)
	m.Id = q.Id
	m.Response = true
	m.Opcode = q.Opcode
	opt, optErr := requestOPT(q)
	var ecsBad bool
	req.q, ecsBad = queryOf(q, opt)
	if q.Opcode != dns.OpcodeQuery {
		// An opcode we do not implement: NOTIMP and the header alone,
		// with QR the only flag (RD is not echoed: nothing was done with
		// it), as ISC's compliance tests expect of an ideal server.
		m.Rcode = dns.RcodeNotImplemented
		return m
	}
	m.RecursionDesired = q.RecursionDesired
	m.CheckingDisabled = q.CheckingDisabled
	m.Compress = true
	if len(q.Question) > 0 {
		// The question is echoed exactly as the client wrote it: 0x20
		// case randomisation in resolvers depends on it.
		m.Question = q.Question[:1]
	}

	if optErr {
		m.Rcode = dns.RcodeFormatError
		return m
	}
	var ro *dns.OPT
	if opt != nil {
		ro = responseOPT(snap, opt)
		m.Extra = append(m.Extra, ro)
		if opt.Version() != 0 {
			// RFC 6891 6.1.3: answer BADVERS with the highest version we
			// support and nothing else.
			m.Rcode = dns.RcodeBadVers
			return m
		}
	}

	if len(q.Question) != 1 || len(q.Answer) > 0 {
		m.Rcode = dns.RcodeFormatError
		return m
	}
	qs := q.Question[0]
	switch qs.Qclass {
	case dns.ClassINET:
	case dns.ClassCHAOS:
		chaos(snap, m, qs, version)
		return m
	default:
		m.Rcode = dns.RcodeRefused
		return m
	}
	switch qs.Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		m.Rcode = dns.RcodeRefused
		return m
	case dns.TypeMAILA, dns.TypeMAILB:
		m.Rcode = dns.RcodeNotImplemented
		return m
	case dns.TypeOPT:
		m.Rcode = dns.RcodeFormatError
		return m
	}

	var echo *dns.EDNS0_LOCAL // the ECS option echoed; SCOPE set below
	if req.q.useECS(snap) {
		if ecsBad {
			m.Rcode = dns.RcodeFormatError
			return m
		}
		echo = &dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: req.q.ecs.appendEcho(nil, 0)}
		ro.Option = append(ro.Option, echo)
	}
	loc, bits := req.q.view(snap, req.Client)
	req.loc = loc

	name := strings.ToLower(qs.Name)
	z := snap.FindZone(name)
	if z == nil {
		m.Rcode = dns.RcodeRefused
		return m
	}
	if zones.IsAdminName(qs.Name) {
		req.admin = true
		if !snap.Config.Server.IsAdmin(req.Client) {
			// Pins and status say which nodes exist and which are down:
			// operators only. An EDNS client is told why (RFC 8914).
			m.Rcode = dns.RcodeRefused
			if ro != nil {
				ro.Option = append(ro.Option, adminRefusedEDE)
			}
			return m
		}
		if s.adminAnswer(snap, m, z, qs) {
			return m
		}
	}
	res := z.Lookup(qs.Name, qs.Qtype, snap.Overlay(loc))
	req.service = res.Service
	if echo != nil && res.Service != "" {
		if svc := snap.Service(res.Service); svc != nil {
			echo.Data = req.q.ecs.appendEcho(echo.Data[:0], req.q.scope(snap, bits, svc.Localized()))
		}
	}
	if res.Kind == zones.ServFail {
		m.Rcode = dns.RcodeServerFailure
		return m
	}
	m.Answer = res.Answer
	m.Ns = res.Ns
	m.Extra = append(res.Extra, m.Extra...)
	m.Authoritative = res.Authoritative
	if res.Kind == zones.NXDomain {
		m.Rcode = dns.RcodeNameError
	}
	return m
}

// adminRefusedEDE says why an admin name is refused: the same words for
// everyone, so it tells an outsider nothing about the config.
var adminRefusedEDE = &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeProhibited,
	ExtraText: "_pin and _status names are answered to server.admin_nets only"}

// requestOPT returns the query's OPT record. bad is true when the EDNS part is
// malformed: more than one OPT, or an OPT outside the additional section
// (RFC 6891 6.1.1).
func requestOPT(q *dns.Msg) (opt *dns.OPT, bad bool) {
	for _, rr := range q.Answer {
		if rr.Header().Rrtype == dns.TypeOPT {
			return nil, true
		}
	}
	for _, rr := range q.Ns {
		if rr.Header().Rrtype == dns.TypeOPT {
			return nil, true
		}
	}
	for _, rr := range q.Extra {
		if o, ok := rr.(*dns.OPT); ok {
			if opt != nil {
				return nil, true
			}
			if o.Hdr.Name != "." {
				return nil, true
			}
			opt = o
		}
	}
	return opt, false
}

func responseOPT(snap *zones.Snapshot, req *dns.OPT) *dns.OPT {
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(uint16(snap.Config.Server.UDPSize))
	// RFC 3225: the DO bit is copied into the response.
	if req.Do() {
		o.SetDo()
	}
	return o
}

// chaos answers the two conventional CHAOS TXT names when the operator
// enabled them; everything else in class CH is refused.
func chaos(snap *zones.Snapshot, m *dns.Msg, qs dns.Question, version string) {
	s := &snap.Config.Server
	name := strings.ToLower(qs.Name)
	if !s.Chaos || (qs.Qtype != dns.TypeTXT && qs.Qtype != dns.TypeANY) {
		m.Rcode = dns.RcodeRefused
		return
	}
	var txt string
	switch name {
	case "version.bind.", "version.server.":
		txt = "failoverdns " + version
	case "id.server.", "hostname.bind.":
		txt = s.Identity
		if txt == "" {
			m.Rcode = dns.RcodeRefused
			return
		}
	default:
		m.Rcode = dns.RcodeRefused
		return
	}
	m.Authoritative = true
	m.Answer = []dns.RR{&dns.TXT{
		Hdr: dns.RR_Header{Name: qs.Name, Rrtype: dns.TypeTXT, Class: dns.ClassCHAOS},
		Txt: []string{txt},
	}}
}
