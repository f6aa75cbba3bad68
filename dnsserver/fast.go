package dnsserver

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/zones"
)

// The UDP fast path answers the common queries (service A/AAAA, static data,
// NODATA, NXDOMAIN, REFUSED; with or without EDNS and ECS) by copying bytes
// precomputed when the snapshot changed. Each template is the general path's
// own answer, packed the way ServeDNS sends it when it fits (packAnswer:
// name-compressed, against the question in lower case), minus the question,
// which the fast path copies from the query; a static RRset is compressed
// while it is copied, as packAnswer would (compressRRset). So the two paths
// cannot disagree: the fast path either produces the general path's bytes
// or declines and lets the general path answer.

// tmpl is an answer without ID, question and OPT record.
type tmpl struct {
	flags      uint16 // QR, opcode, AA, RCODE; RD and CD come from the query
	an, ns, ar uint16
	rest       []byte // answer, authority, additional sections, compressed
	rcode      uint16
	// qlen is the wire length of the question name rest was packed after,
	// and ptrs the offsets in rest of its compression pointers. A template
	// of one name is only sent for that name (the same length in any
	// letter case: nothing moves). One shared by every name of a zone
	// (NXDOMAIN, NODATA) is packed after the apex, so its pointers all
	// point at or after the apex's start: for a name k bytes longer, each
	// moves by k (see relocate).
	qlen int
	ptrs []uint16
	// rrset: rest is instead one RRset of the question's name and type as
	// a zone keeps it (uncompressed), compressed while it is copied.
	rrset bool
	qtype uint16
}

// fastName is what the fast path knows about an owner name whose answers
// are not its zone's packed records as they are: a service, or a CNAME
// (chased). Every other name is answered from the zone's own packed form
// (fastZone.z), so a million static names cost the fast path nothing.
type fastName struct {
	types   map[uint16]*tmpl // answers by qtype; nil entry: not fast
	nodata  *tmpl            // for any other data type; nil: fall back
	service int              // > 0: A/AAAA come from fastTable.services[service-1]
}

// set adds the answer to qtype. A service has no types of its own (its
// A and AAAA come from its view), so its map is never made.
func (fn *fastName) set(qtype uint16, t *tmpl) {
	if fn.types == nil {
		fn.types = map[uint16]*tmpl{}
	}
	fn.types[qtype] = t
}

// fastZone is per zone: its NXDOMAIN and NODATA answers and its data.
type fastZone struct {
	nxdomain *tmpl
	nodata   *tmpl
	z        *zones.Zone
	// okFlags: the header flags of an authoritative answer (QR, AA).
	okFlags uint16
	// clash holds the labels right below the apex that the names of the
	// negative answers use (the SOA's MNAME and RNAME): a query name with
	// one of those there shares more than the apex with them, which the
	// general path's compression uses, so the shared templates would not
	// be its bytes.
	clash []string // two at most: compared, not hashed
}

// negative returns t (fz's NXDOMAIN or NODATA) for a query name whose label
// right below the apex is label, or nil when the name clashes (see clash).
func (fz *fastZone) negative(t *tmpl, label []byte) *tmpl {
	if len(fz.clash) > 0 && fz.clashes(label) {
		return nil
	}
	return t
}

func (fz *fastZone) clashes(label []byte) bool {
	for _, c := range fz.clash {
		if string(label) == c {
			return true
		}
	}
	return false
}

// fastService holds, per view, the A and AAAA answer of a service.
type fastService struct {
	localized bool
	a, aaaa   []*tmpl
}

// fastTable is everything the fast path reads; one per published snapshot.
type fastTable struct {
	static   *fastStatic // what names, zones and the templates come from
	names    map[string]*fastName
	zones    map[string]*fastZone // by origin
	services []*fastService       // in snapshot.Services order, which a config fixes
	refused  *tmpl
	rrl      *rrl
}

// fastStatic is the part of a fastTable that depends only on config and
// zones; it is built once per load and shared by every snapshot of it.
type fastStatic struct {
	cfg   *zones.Config
	names map[string]*fastName
	zones map[string]*fastZone // by origin
	// answer templates for service records, by the record's identity: a
	// health change only picks among them. Templates with the same bytes
	// are one (same): the owner is a pointer to the question, so every
	// service of a node and TTL whose name has the same length answers
	// with the same template.
	mu      sync.Mutex
	byRR    map[dns.RR]*tmpl
	same    map[string]*tmpl
	byAddr  map[addrKey]*tmpl // services' one-address answers (answerKey)
	lastKey addrKey           // the byAddr entry used last
	lastT   *tmpl
	lastOK  bool
	// oneView holds the tables of one-view services (no locations) by
	// what they are made of: the services of a node whose names have the
	// same length answer the same templates, and share one table (a
	// failover of 100,000 services picks among a few instead of
	// allocating 100,000). lastOne is the entry used last.
	oneView map[oneViewKey]*fastService
	lastOne oneViewKey
	lastFS  *fastService
	scratch []byte // same's keys are built here
	nodata  map[*zones.Zone]*tmpl
	refused *tmpl
	sfail   *tmpl
	rrl     *rrl // nil without [server.rrl]
	// opt is the head of the general path's OPT record (responseOPT),
	// without DO and with it: everything before RDLENGTH.
	opt [2][9]byte
}

// published pairs a snapshot with its fast table, swapped as one.
type published struct {
	snap *zones.Snapshot
	fast *fastTable
}

// fastTypes are the types precomputed for every name that has them.
func isFastQtype(t uint16) bool {
	return t != 0 && t < 128 && t != dns.TypeOPT && t != dns.TypeMAILA && t != dns.TypeMAILB
}

// makeTmpl packs m as the answer to qname the way packAnswer sends a
// fitting one, and keeps what follows the question.
func makeTmpl(m *dns.Msg, qname string) *tmpl {
	m.Question = []dns.Question{{Name: qname, Qtype: dns.TypeA, Qclass: dns.ClassINET}}
	m.Compress = true
	b, err := m.Pack()
	if err != nil {
		return nil
	}
	qlen := 0
	for b[12+qlen] != 0 { // the first name of a message is never a pointer
		qlen += 1 + int(b[12+qlen])
	}
	qlen++
	t := &tmpl{
		flags: binary.BigEndian.Uint16(b[2:]) &^ (1<<8 | 1<<4), // minus RD, CD
		an:    binary.BigEndian.Uint16(b[6:]),
		ns:    binary.BigEndian.Uint16(b[8:]),
		ar:    binary.BigEndian.Uint16(b[10:]),
		rest:  append([]byte(nil), b[12+qlen+4:]...),
		rcode: uint16(m.Rcode),
		qlen:  qlen,
	}
	var ok bool
	if t.ptrs, ok = pointers(t.rest, int(t.an)+int(t.ns)+int(t.ar)); !ok {
		return nil
	}
	return t
}

// pointers returns the offsets in rest (packed RRs, n of them) of the
// compression pointers, in owner names and in the RDATA of the types
// miekg/dns compresses there; false for anything it cannot walk.
func pointers(rest []byte, n int) ([]uint16, bool) {
	var ptrs []uint16
	off := 0
	name := func() bool {
		for off < len(rest) {
			switch l := int(rest[off]); {
			case l == 0:
				off++
				return true
			case l&0xC0 == 0xC0:
				ptrs = append(ptrs, uint16(off))
				off += 2
				return off <= len(rest)
			case l < 64:
				off += 1 + l
			default:
				return false
			}
		}
		return false
	}
	for range n {
		if !name() || off+10 > len(rest) {
			return nil, false
		}
		typ := binary.BigEndian.Uint16(rest[off:])
		end := off + 10 + int(binary.BigEndian.Uint16(rest[off+8:]))
		off += 10
		if end > len(rest) {
			return nil, false
		}
		names := 0
		switch typ {
		case dns.TypeNS, dns.TypeCNAME, dns.TypePTR, dns.TypeMB, dns.TypeMD, dns.TypeMF, dns.TypeMG, dns.TypeMR:
			names = 1
		case dns.TypeMX:
			off += 2
			names = 1
		case dns.TypeSOA, dns.TypeMINFO:
			names = 2
		}
		for range names {
			if !name() || off > end {
				return nil, false
			}
		}
		off = end
	}
	return ptrs, off == len(rest)
}

// relocate moves the pointers of t, copied to b, by delta bytes: the
// question name is delta bytes longer than the one t was packed after.
func relocate(t *tmpl, b []byte, delta int) {
	for _, p := range t.ptrs {
		v := int(binary.BigEndian.Uint16(b[p:])&0x3FFF) + delta
		binary.BigEndian.PutUint16(b[p:], 0xC000|uint16(v))
	}
}

// apexChild returns the label of name right below the zone origin (both
// canonical, name in the zone), "" when name is the origin. ok is false for
// a name with an escape, whose labels this does not split.
func apexChild(name, origin string) (label string, ok bool) {
	if strings.IndexByte(name, '\\') >= 0 {
		return "", false
	}
	if len(name) <= len(origin) {
		return "", true
	}
	above := name[:len(name)-1] // the labels above the origin: "x.www"
	if origin != "." {
		above = name[:len(name)-len(origin)-1]
	}
	return above[strings.LastIndexByte(above, '.')+1:], true
}

// buildStatic precomputes the answers of services and CNAMEs by asking the
// general path, with a plain query from no particular client; the zones'
// other names are answered from their packed records (staticAnswer).
func (s *Server) buildStatic(snap *zones.Snapshot) *fastStatic {
	st := &fastStatic{cfg: snap.Config, names: map[string]*fastName{}, zones: map[string]*fastZone{},
		byRR: map[dns.RR]*tmpl{}, same: map[string]*tmpl{}, byAddr: map[addrKey]*tmpl{}, nodata: map[*zones.Zone]*tmpl{}, oneView: map[oneViewKey]*fastService{}}
	ask := func(name string, qtype uint16) *dns.Msg {
		q := new(dns.Msg)
		q.SetQuestion(name, qtype)
		q.RecursionDesired = false
		req := &Request{Msg: q, Transport: UDP}
		if m := s.answer(snap, req); m != nil && req.service == "" && !req.admin {
			return m
		}
		return nil
	}
	general := func(name string, qtype uint16) (*tmpl, bool) {
		m := ask(name, qtype)
		if m == nil {
			return nil, false
		}
		return makeTmpl(m, name), true
	}
	svcIndex := make(map[string]int, len(snap.Services))
	for i, svc := range snap.Services {
		svcIndex[svc.Name] = i + 1
	}
	ok := &dns.Msg{}
	ok.Response, ok.Authoritative = true, true
	okFlags := makeTmpl(ok, ".").flags
	for _, z := range snap.Zones {
		fz := &fastZone{z: z, okFlags: okFlags}
		escaped := false
		for _, n := range []string{z.NegSOA.Hdr.Name, z.NegSOA.Ns, z.NegSOA.Mbox} {
			n = strings.ToLower(n)
			if !dns.IsSubDomain(z.Origin, n) {
				continue
			}
			if l, ok := apexChild(n, z.Origin); !ok {
				escaped = true // cannot tell what it shares with a query name
			} else if l != "" {
				fz.clash = append(fz.clash, l)
			}
		}
		if !escaped {
			// The general path's own NODATA (at the apex, for a type it
			// does not hold) and NXDOMAIN (for a name the zone does not
			// hold), shared by every name of the zone (see relocate).
			fz.nodata = negativeTmpl(ask(z.Origin, nodataProbeType), z.Origin, dns.RcodeSuccess, z)
			nx := fz.nxdomainProbe()
			fz.nxdomain = negativeTmpl(ask(nx, dns.TypeA), nx, dns.RcodeNameError, z)
		}
		st.nodata[z] = fz.nodata
		st.zones[z.Origin] = fz
		for name, n := range z.Nodes() {
			svc := svcIndex[name]
			if svc == 0 && !n.Has(dns.TypeCNAME) {
				continue // answered from the zone's packed records
			}
			if snap.FindZone(name) != z || zones.IsAdminName(name) || n.Below() {
				continue // another zone answers it, admin names, referrals: slow path
			}
			fn := &fastName{service: svc}
			st.names[name] = fn
			for _, qt := range n.Types() {
				if tp, ok := general(name, qt); ok {
					fn.set(qt, tp)
				}
			}
			if n.Has(dns.TypeCNAME) {
				// A CNAME answers every type by chasing: only the types
				// precomputed above (CNAME itself) are fast, plus A/AAAA.
				for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
					if tp, ok := general(name, t); ok {
						fn.set(t, tp)
					}
				}
				continue
			}
			fn.nodata = st.zoneNodata(z, name)
		}
	}
	st.rrl = newRRL(snap.Config.Server.RRL)
	for do := range st.opt {
		req := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		if do == 1 {
			req.SetDo()
		}
		var b [11]byte
		if _, err := dns.PackRR(responseOPT(snap, req), b[:], 0, nil, false); err != nil {
			panic("dnsserver: packing an OPT record: " + err.Error()) // 11 bytes, no options
		}
		st.opt[do] = [9]byte(b[:9])
	}
	// No records: nothing to relocate, whatever the name. REFUSED is the
	// general path's answer to a name in none of our zones (there is none
	// with a root zone: nil, never used).
	if m := ask(refusedProbe, dns.TypeA); m != nil && m.Rcode == dns.RcodeRefused {
		st.refused = makeTmpl(m, refusedProbe)
	}
	// SERVFAIL (a service whose answer failed) has no state to ask the
	// general path in: its header, as answer writes it.
	sf := &dns.Msg{}
	sf.Response, sf.Rcode = true, dns.RcodeServerFailure
	st.sfail = makeTmpl(sf, ".")
	return st
}

// nodataProbeType is a type of the private range (RFC 6895) that the
// NODATA template is asked for at the apex; refusedProbe a name in no zone
// but a root zone (RFC 6761 reserves "invalid.").
const (
	nodataProbeType = 65280
	refusedProbe    = "invalid."
)

// nxdomainProbe is a name right below the apex that the zone does not hold
// and whose label no SOA name uses, for asking the general path for the
// zone's NXDOMAIN answer.
func (fz *fastZone) nxdomainProbe() string {
	for i := 0; ; i++ {
		l := "nx" + strconv.Itoa(i)
		name := l + "." + fz.z.Origin
		if fz.z.Origin == "." {
			name = l + "."
		}
		if fz.z.NodeOf([]byte(name)) == nil && !fz.clashes([]byte(l)) {
			return name
		}
	}
}

// negativeTmpl is m, the general path's answer to name, as the template of
// z's NXDOMAIN or NODATA answers, or nil when m is not that answer (a
// wildcard, a service at the apex, ...): rcode, no records but z's SOA in
// the authority section.
func negativeTmpl(m *dns.Msg, name string, rcode int, z *zones.Zone) *tmpl {
	if m == nil || m.Rcode != rcode || !m.Authoritative || len(m.Answer) != 0 || len(m.Extra) != 0 || len(m.Ns) != 1 || m.Ns[0] != dns.RR(z.NegSOA) {
		return nil
	}
	return makeTmpl(m, name)
}

// zoneNodata is z's NODATA template for name, or nil when name's label
// below the apex is one the SOA's names use (see fastZone.clash).
func (st *fastStatic) zoneNodata(z *zones.Zone, name string) *tmpl {
	fz := st.zones[z.Origin]
	if l, ok := apexChild(name, z.Origin); !ok || fz.nodata == nil || fz.clashes([]byte(l)) {
		return nil
	}
	return fz.nodata
}

// build returns the fast table for a snapshot, reusing st's static part.
// When prev is the table of the snapshot snap was derived from, only the
// services snap changed are built again; the others are shared, so a
// failover costs what it touches, not the size of the config.
func (st *fastStatic) build(snap *zones.Snapshot, prev *published) *fastTable {
	st.mu.Lock()
	defer st.mu.Unlock()
	if parent, changed, ok := snap.Derived(); ok && prev != nil && prev.fast != nil && prev.fast.static == st && prev.snap.Gen() == parent {
		ft := *prev.fast
		ft.services = slices.Clone(prev.fast.services)
		for _, i := range changed {
			ft.services[i] = st.service(snap, snap.Services[i])
		}
		return &ft
	}
	ft := &fastTable{static: st, names: st.names, zones: st.zones, refused: st.refused, rrl: st.rrl, services: make([]*fastService, len(snap.Services))}
	for i, svc := range snap.Services {
		ft.services[i] = st.service(snap, svc)
	}
	return ft
}

// oneViewKey is what a one-view service's fastService is made of.
type oneViewKey struct {
	a, aaaa   *tmpl
	localized bool
}

// service builds one service's templates (st.mu held).
func (st *fastStatic) service(snap *zones.Snapshot, svc *zones.Service) *fastService {
	nloc := snap.LocationCount()
	if nloc == 1 {
		k := oneViewKey{st.svcTmpl(snap, 0, svc, dns.TypeA), st.svcTmpl(snap, 0, svc, dns.TypeAAAA), svc.Localized()}
		if st.lastFS != nil && st.lastOne == k {
			return st.lastFS // the service before is made of the same
		}
		fs := st.oneView[k]
		if fs == nil {
			// One allocation, shared by every service made of k.
			b := &struct {
				fastService
				t [2]*tmpl
			}{}
			b.a, b.aaaa = b.t[0:1:1], b.t[1:2:2]
			fs = &b.fastService
			fs.localized, fs.a[0], fs.aaaa[0] = k.localized, k.a, k.aaaa
			st.oneView[k] = fs
		}
		st.lastOne, st.lastFS = k, fs
		return fs
	}
	fs := &fastService{a: make([]*tmpl, nloc), aaaa: make([]*tmpl, nloc)}
	fs.localized = svc.Localized()
	for loc := range nloc {
		fs.a[loc] = st.svcTmpl(snap, loc, svc, dns.TypeA)
		fs.aaaa[loc] = st.svcTmpl(snap, loc, svc, dns.TypeAAAA)
	}
	return fs
}

func (st *fastStatic) svcTmpl(snap *zones.Snapshot, loc int, svc *zones.Service, qtype uint16) *tmpl {
	rrs, fail := snap.ServiceRRset(svc, loc, qtype)
	switch {
	case fail:
		return st.sfail
	case len(rrs) == 0:
		return st.zoneNodata(svc.Zone, svc.Name)
	}
	if k, ok := answerKey(svc.Name, rrs); ok {
		if st.lastOK && st.lastKey == k {
			return st.lastT // the service before had the same answer
		}
		t, ok := st.byAddr[k]
		if !ok {
			t = packAnswerTmpl(svc.Name, rrs)
			st.byAddr[k] = t
		}
		st.lastKey, st.lastT, st.lastOK = k, t, true
		return t
	}
	if t, ok := st.byRR[rrs[0]]; ok {
		return t
	}
	t := packAnswerTmpl(svc.Name, rrs)
	if t != nil {
		k := t.key(st.scratch[:0])
		st.scratch = k
		if s, ok := st.same[string(k)]; ok {
			t = s
		} else {
			st.same[string(k)] = t
		}
	}
	st.byRR[rrs[0]] = t
	return t
}

// packAnswerTmpl is the template of the answer rrs to name.
func packAnswerTmpl(name string, rrs []dns.RR) *tmpl {
	m := &dns.Msg{}
	m.Response, m.Authoritative = true, true
	m.Answer = rrs
	return makeTmpl(m, name)
}

// addrKey is what a service's answer of one address is made of but its
// owner, which is packed as a pointer to the question: every service whose
// name has the same wire length answers the same bytes for the same
// address and TTL, and the fast path's rebuild finds that template
// without packing or hashing the record.
type addrKey struct {
	qlen   int
	rrtype uint16
	ttl    uint32
	iplen  int
	ip     [16]byte
}

// answerKey is the addrKey of rrs as the answer to name; false when rrs
// is not one A or AAAA record owned by name, or name's wire length is not
// its text's plus one (an escape, the root).
func answerKey(name string, rrs []dns.RR) (addrKey, bool) {
	if len(rrs) != 1 || name == "." || strings.IndexByte(name, '\\') >= 0 {
		return addrKey{}, false
	}
	h := rrs[0].Header()
	if h.Name != name || h.Class != dns.ClassINET {
		return addrKey{}, false
	}
	k := addrKey{qlen: len(name) + 1, rrtype: h.Rrtype, ttl: h.Ttl}
	var ip net.IP
	switch rr := rrs[0].(type) {
	case *dns.A:
		ip = rr.A
	case *dns.AAAA:
		ip = rr.AAAA
	default:
		return addrKey{}, false
	}
	if len(ip) > len(k.ip) {
		return addrKey{}, false
	}
	k.iplen = copy(k.ip[:], ip)
	return k, true
}

// key is what makes two templates the same (ptrs follow from rest),
// appended to b.
func (t *tmpl) key(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, t.flags)
	b = binary.BigEndian.AppendUint16(b, t.an)
	b = binary.BigEndian.AppendUint16(b, t.ns)
	b = binary.BigEndian.AppendUint16(b, t.ar)
	b = binary.BigEndian.AppendUint16(b, t.rcode)
	b = binary.BigEndian.AppendUint16(b, t.qtype)
	b = binary.BigEndian.AppendUint32(b, uint32(t.qlen))
	if t.rrset {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	return append(b, t.rest...)
}

// plan is how the fast path answers a query: from which view, with which
// ECS scope and UDP size limit, with which answer template. A nil template
// sends the query to the general path.
type plan struct {
	t      *tmpl
	loc    int
	limit  int
	useECS bool // the ECS option is echoed, with scope
	scope  uint8
}

// plan decides the answer to q from client, by the rules of the general
// path (query's methods); a template from a zone's packed records is
// written into packed.
func (ft *fastTable) plan(snap *zones.Snapshot, q *query, client netip.Addr, packed *tmpl) (pl plan) {
	name := q.name[:q.nameLen]
	loc, bits := q.view(snap, client)
	pl.loc, pl.limit, pl.useECS = loc, q.udpLimit(snap), q.useECS(snap)
	if fn := ft.names[string(name)]; fn != nil {
		if fn.service > 0 && (q.qtype == dns.TypeA || q.qtype == dns.TypeAAAA) {
			fs := ft.services[fn.service-1]
			if q.qtype == dns.TypeA {
				pl.t = fs.a[loc]
			} else {
				pl.t = fs.aaaa[loc]
			}
			pl.scope = q.scope(snap, bits, fs.localized)
		} else if pl.t = fn.types[q.qtype]; pl.t == nil {
			pl.t = fn.nodata
		}
	} else {
		pl.t = ft.staticAnswer(name, q.qtype, packed)
	}
	return pl
}

// fastAnswer appends the answer to q to out. ok is false when the general
// path must answer instead. loc is the view used, for metrics.
func (s *Server) fastAnswer(p *published, q *query, client netip.Addr, out []byte) (resp []byte, rcode uint16, loc int, ok bool) {
	snap, ft := p.snap, p.fast
	var packed tmpl // an answer from a zone's packed records, on the stack
	pl := ft.plan(snap, q, client, &packed)
	t, limit := pl.t, pl.limit
	if t == nil {
		return nil, 0, 0, false
	}
	useECS := pl.useECS
	optLen := 0
	if q.edns {
		optLen = 11
		if useECS {
			optLen += 4 + 4 + q.ecs.n
		}
	}
	// A zone's RRset is stored uncompressed: if it fits so, it fits.
	if 12+len(q.qname)+len(t.rest)+optLen > limit && !t.rrset {
		return nil, 0, 0, false
	}
	ar := t.ar
	if q.edns {
		ar++
	}
	out = binary.BigEndian.AppendUint16(out, q.id)
	out = binary.BigEndian.AppendUint16(out, t.flags|q.rdcd)
	out = binary.BigEndian.AppendUint16(out, 1)
	out = binary.BigEndian.AppendUint16(out, t.an)
	out = binary.BigEndian.AppendUint16(out, t.ns)
	out = binary.BigEndian.AppendUint16(out, ar)
	out = append(out, q.qname...)
	if t.rrset {
		if out, ok = compressRRset(out, t.rest, q); !ok || len(out)+optLen > limit {
			return nil, 0, 0, false
		}
	} else {
		out = append(out, t.rest...)
		if delta := len(q.qname) - 4 - t.qlen; delta != 0 && len(t.ptrs) > 0 {
			relocate(t, out[len(out)-len(t.rest):], delta)
		}
	}
	if q.edns {
		do := 0
		if q.do {
			do = 1
		}
		out = append(out, ft.static.opt[do][:]...)
		if useECS {
			out = binary.BigEndian.AppendUint16(out, uint16(8+q.ecs.n))
			out = binary.BigEndian.AppendUint16(out, dns.EDNS0SUBNET)
			out = binary.BigEndian.AppendUint16(out, uint16(4+q.ecs.n))
			out = q.ecs.appendEcho(out, pl.scope)
		} else {
			out = append(out, 0, 0)
		}
	}
	return out, t.rcode, pl.loc, true
}

// staticAnswer answers a name of no service and no CNAME from its zone's
// packed records: the records of qtype (written into packed), NODATA, or
// NXDOMAIN; REFUSED when no zone holds the name. It returns nil, for the
// general path, for what that path does more than copy records: names at or
// below a delegation (referrals), a missing name whose closest encloser has
// a wildcard child (synthesis), and admin names.
func (ft *fastTable) staticAnswer(name []byte, qtype uint16, packed *tmpl) *tmpl {
	if zones.IsAdminName(name) {
		return nil
	}
	fz, at, ok := zones.ZoneOf(ft.zones, name)
	if !ok {
		return ft.refused
	}
	if n := fz.z.NodeOf(name); n != nil {
		if n.Below() {
			return nil
		}
		if wire, count := n.Packed(qtype); wire != nil {
			*packed = tmpl{flags: fz.okFlags, an: count, rest: wire, rrset: true, qtype: qtype}
			return packed
		}
		if n.Has(dns.TypeCNAME) {
			return nil // chased by the general path
		}
		return fz.negative(fz.nodata, belowApex(name, at, fz))
	}
	// The closest encloser: the first existing name above, the apex at
	// the latest.
	for i := 0; i < at; {
		for i < at && name[i] != '.' {
			i++
		}
		i++
		suffix := name[min(i, len(name)-1):] // past the last label: the root
		if e := fz.z.NodeOf(suffix); e != nil {
			if e.Below() || e.WildChild() {
				return nil
			}
			break
		}
	}
	return fz.negative(fz.nxdomain, belowApex(name, at, fz))
}

// belowApex is the label of name right below the origin of fz, which
// starts at name[at:]; nil for the origin itself.
func belowApex(name []byte, at int, fz *fastZone) []byte {
	if at == 0 {
		return nil
	}
	above := name[:at-1] // without the dot before the origin
	if fz.z.Origin == "." {
		above = name[:at]
	}
	return above[bytes.LastIndexByte(above, '.')+1:]
}

// compressRRset appends wire, one RRset of the question's name as a zone
// keeps it (uncompressed, owner names in full), compressed the way
// packAnswer's miekg/dns packing compresses that answer after the question
// in lower case: every owner is then the question (a pointer to 12), and
// the names in the RDATA of the types miekg/dns compresses (NS, MX, SOA,
// PTR, ...) are compressed by rdataNames. false: an owner that is not the
// question in lower case byte for byte (a zone written in upper case), or
// more names than rdataNames keeps track of; the general path answers
// those.
func compressRRset(out, wire []byte, q *query) ([]byte, bool) {
	qn := q.qname[:len(q.qname)-4] // the name as sent, in wire form
	for off := 0; off < len(wire); {
		if len(wire)-off < len(qn) {
			return out, false
		}
		for i, b := range qn {
			if b >= 'A' && b <= 'Z' {
				b += 'a' - 'A' // length octets are below 64: never changed
			}
			if wire[off+i] != b {
				return out, false
			}
		}
		off += len(qn)
		if len(qn) == 1 {
			out = append(out, 0) // the root is never compressed
		} else {
			out = append(out, 0xC0, 12)
		}
		typ := binary.BigEndian.Uint16(wire[off:])
		end := off + 10 + int(binary.BigEndian.Uint16(wire[off+8:]))
		switch typ {
		case dns.TypeNS, dns.TypeCNAME, dns.TypePTR, dns.TypeMB, dns.TypeMD, dns.TypeMF, dns.TypeMG, dns.TypeMR,
			dns.TypeMX, dns.TypeSOA, dns.TypeMINFO:
			return compressNames(out, wire, off, q)
		}
		out = append(out, wire[off:end]...) // type, class, TTL, RDLENGTH, RDATA
		off = end
	}
	return out, true
}

// compressNames is compressRRset for an RRset of a type whose RDATA names
// miekg/dns compresses, from its first record's type field at wire[off:].
func compressNames(out, wire []byte, off int, q *query) ([]byte, bool) {
	var c rdataNames
	qn := q.qname[:len(q.qname)-4]
	c.qlen = len(qn)
	for i, b := range qn {
		if b >= 'A' && b <= 'Z' {
			b += 'a' - 'A'
		}
		c.lwire[i] = b
	}
	for {
		typ := binary.BigEndian.Uint16(wire[off:])
		end := off + 10 + int(binary.BigEndian.Uint16(wire[off+8:]))
		names, skip := 1, 0
		switch typ {
		case dns.TypeMX:
			skip = 2
		case dns.TypeSOA, dns.TypeMINFO:
			names = 2
		}
		out = append(out, wire[off:off+8]...) // type, class, TTL
		lenAt := len(out)
		out = append(out, 0, 0)
		off += 10
		out = append(out, wire[off:off+skip]...)
		off += skip
		for range names {
			var ok bool
			if out, off, ok = c.name(out, wire, off); !ok {
				return out, false
			}
		}
		out = append(out, wire[off:end]...)
		off = end
		binary.BigEndian.PutUint16(out[lenAt:], uint16(len(out)-lenAt-2))
		if off == len(wire) {
			return out, true
		}
		// The next record's owner: the question, as for the first.
		if len(wire)-off < c.qlen || string(wire[off:off+c.qlen]) != string(c.lwire[:c.qlen]) {
			return out, false
		}
		off += c.qlen
		if c.qlen == 1 {
			out = append(out, 0)
		} else {
			out = append(out, 0xC0, 12)
		}
	}
}

// rdataNames compresses RDATA names as miekg/dns does: its compression map
// holds every suffix of the question (lower case) and of the names written
// out before, at their first offset; a name points at its longest suffix
// found there.
type rdataNames struct {
	lwire [256]byte // the question in lower case
	qlen  int
	kept  [32]uint16 // where RDATA names' suffixes not found were written
	nkept int
}

// at reads the message as packAnswer packed it: the question in lower
// case, then what was written.
func (c *rdataNames) at(out []byte, o int) byte {
	if o >= 12 && o < 12+c.qlen {
		return c.lwire[o-12]
	}
	return out[o]
}

// same reports whether the message's name at o equals the uncompressed name
// n, letter case included (as miekg/dns's compression map compares).
func (c *rdataNames) same(out []byte, o int, n []byte) bool {
	for i := 0; ; {
		l := int(c.at(out, o))
		for l&0xC0 == 0xC0 {
			o = (l&0x3F)<<8 | int(c.at(out, o+1))
			l = int(c.at(out, o))
		}
		if l != int(n[i]) {
			return false
		}
		if l == 0 {
			return true
		}
		for k := 1; k <= l; k++ {
			if c.at(out, o+k) != n[i+k] {
				return false
			}
		}
		o, i = o+1+l, i+1+l
	}
}

func (c *rdataNames) find(out, n []byte) (int, bool) {
	for o := 12; o < 12+c.qlen-1; o += 1 + int(c.lwire[o-12]) {
		if c.same(out, o, n) {
			return o, true
		}
	}
	for _, o := range c.kept[:c.nkept] {
		if c.same(out, int(o), n) {
			return int(o), true
		}
	}
	return 0, false
}

// name appends the uncompressed name at wire[off:], compressed, and returns
// the offset past it in wire.
func (c *rdataNames) name(out, wire []byte, off int) ([]byte, int, bool) {
	for {
		l := int(wire[off])
		if l == 0 {
			return append(out, 0), off + 1, true // the root is never compressed
		}
		if p, ok := c.find(out, wire[off:]); ok {
			out = append(out, 0xC0|byte(p>>8), byte(p))
			for wire[off] != 0 {
				off += 1 + int(wire[off])
			}
			return out, off + 1, true
		}
		if len(out) < 1<<14 { // miekg/dns's maxCompressionOffset
			if c.nkept == len(c.kept) {
				return out, off, false
			}
			c.kept[c.nkept] = uint16(len(out))
			c.nkept++
		}
		out = append(out, wire[off:off+1+l]...)
		off += 1 + l
	}
}
