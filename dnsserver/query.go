package dnsserver

import (
	"encoding/binary"
	"net"
	"net/netip"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/zones"
)

// One query plan. Both paths read a query into one struct, query: the UDP
// fast path from the wire (parseQuery), the general path from the message
// miekg/dns unpacked (queryOf). Each rule that depends on the query exists
// once, as a method both paths call: ECS validation (ecsOption.valid), the
// view (query.view), the ECS scope (query.scope), the UDP size limit
// (query.udpLimit) and the ECS echo (ecsOption.appendEcho). The zone search
// and admin-name detection are zones' (Snapshot.FindZone, IsAdminName),
// asked by both paths with the name in either form. plan (fast.go) gives
// the fast path the view, scope, limit and answer template, or sends the
// query to the general path.

// query is what an answer depends on in a query.
type query struct {
	name    [256]byte // canonical presentation name, for map lookups (fast path)
	id      uint16
	rdcd    uint16 // the query's RD and CD bits
	qname   []byte // the question as sent: name, type, class (fast path)
	qtype   uint16
	edns    bool
	udpSize uint16
	do      bool
	ecs     ecsOption
	nameLen int
	// loc is the last client placed (view): a reader's queries come
	// mostly from a few resolvers, and its query is reused between them.
	loc zones.LocateMemo
}

// ecsOption is the query's EDNS Client Subnet option (RFC 7871) as sent.
type ecsOption struct {
	present bool
	fam     uint16
	src     uint8 // SOURCE PREFIX-LENGTH
	scope   uint8 // SCOPE PREFIX-LENGTH: must be 0 in a query
	addr    [16]byte
	n       int // ADDRESS octets sent
}

// valid is RFC 7871 6's test of a query's option: family 1 or 2 (or 0, as
// dig sends it, with SOURCE 0), SCOPE 0, exactly ceil(SOURCE/8) address
// octets, no address bits past SOURCE. The answer to anything else is
// FORMERR.
func (e *ecsOption) valid() bool {
	max := 0
	switch e.fam {
	case 0:
	case 1:
		max = 32
	case 2:
		max = 128
	default:
		return false
	}
	if e.scope != 0 || int(e.src) > max {
		return false
	}
	nb := (int(e.src) + 7) / 8
	if e.n != nb {
		return false
	}
	// Only the n octets sent are in addr: the rest are zero.
	return e.src%8 == 0 || e.addr[nb-1]&(0xFF>>(e.src%8)) == 0
}

// prefix is the client subnet a valid option names; not valid for family 0.
func (e *ecsOption) prefix() netip.Prefix {
	switch e.fam {
	case 1:
		return netip.PrefixFrom(netip.AddrFrom4([4]byte(e.addr[:4])), int(e.src))
	case 2:
		return netip.PrefixFrom(netip.AddrFrom16(e.addr), int(e.src))
	}
	return netip.Prefix{}
}

// appendEcho appends the option data an answer echoes (RFC 7871 7.2.1):
// the query's FAMILY, SOURCE PREFIX-LENGTH and ADDRESS, with our SCOPE.
func (e *ecsOption) appendEcho(out []byte, scope uint8) []byte {
	out = binary.BigEndian.AppendUint16(out, e.fam)
	out = append(out, e.src, scope)
	return append(out, e.addr[:e.n]...)
}

// useECS reports whether the query's ECS option counts: it has one and the
// server uses ECS. Only then is it judged, echoed and used for the view.
func (q *query) useECS(snap *zones.Snapshot) bool {
	return q.ecs.present && snap.Config.Server.UseECS()
}

// view is the client's view (location index) and the bits of the location
// subnet that matched (-1: none): the ECS subnet when there is one, else
// the packet's source; SOURCE 0 means "use my address".
func (q *query) view(snap *zones.Snapshot, client netip.Addr) (loc, bits int) {
	if q.ecs.src > 0 && q.useECS(snap) {
		return snap.LocatePrefix(q.ecs.prefix())
	}
	return snap.LocateWith(&q.loc, client)
}

// scope is the ECS SCOPE PREFIX-LENGTH of an answer, bits coming from view:
// the subnet length that decided it for a service answered per location,
// else 0 (the answer is the same for everyone).
func (q *query) scope(snap *zones.Snapshot, bits int, localized bool) uint8 {
	if !localized || q.ecs.src == 0 || !q.useECS(snap) {
		return 0
	}
	return uint8(snap.Scope(q.ecs.prefix(), bits))
}

// udpLimit is the most a UDP answer may carry: 512 without EDNS, else the
// client's size (never below 512) capped at ours.
func (q *query) udpLimit(snap *zones.Snapshot) int {
	if !q.edns {
		return dns.MinMsgSize
	}
	return min(max(int(q.udpSize), dns.MinMsgSize), snap.Config.Server.UDPSize)
}

// queryOf reads the EDNS part of a message miekg/dns unpacked, opt being
// its OPT record (requestOPT). ecsBad is true for an ECS option valid says
// no to, or two of them.
func queryOf(m *dns.Msg, opt *dns.OPT) (q query, ecsBad bool) {
	q.id = m.Id
	if len(m.Question) > 0 {
		q.qtype = m.Question[0].Qtype
	}
	if opt == nil {
		return q, false
	}
	q.edns, q.udpSize, q.do = true, opt.UDPSize(), opt.Do()
	var e *dns.EDNS0_SUBNET
	for _, o := range opt.Option {
		if s, ok := o.(*dns.EDNS0_SUBNET); ok {
			if e != nil {
				q.ecs.present = true
				return q, true // twice
			}
			e = s
		}
	}
	if e == nil {
		return q, false
	}
	q.ecs = ecsOption{present: true, fam: e.Family, src: e.SourceNetmask, scope: e.SourceScope}
	// miekg/dns keeps no option's own length, but the OPT's RDLENGTH is
	// the sum of them: the address octets sent are those it packs back
	// plus the difference.
	q.ecs.n = (int(e.SourceNetmask)+7)/8 + int(opt.Hdr.Rdlength) - (dns.Len(opt) - 11)
	var addr net.IP
	switch e.Family {
	case 1:
		if addr = e.Address.To4(); addr == nil {
			return q, true
		}
	case 2:
		if addr = e.Address.To16(); addr == nil {
			return q, true
		}
	}
	// The octets sent: miekg/dns zero-fills the rest of its address.
	copy(q.ecs.addr[:max(0, min(q.ecs.n, len(addr)))], addr)
	return q, !q.ecs.valid()
}

// parseQuery reads a query the fast path can answer, or reports false for
// anything unusual, which the general path then handles (and judges).
func parseQuery(pkt []byte, q *query) bool {
	if len(pkt) < 12+5 {
		return false
	}
	// QR, opcode, AA, TC must be 0 (RD free); RA, Z, RCODE 0 (AD, CD free).
	if pkt[2]&0xFE != 0 || pkt[3]&0xCF != 0 {
		return false
	}
	if binary.BigEndian.Uint16(pkt[4:]) != 1 || binary.BigEndian.Uint16(pkt[6:]) != 0 || binary.BigEndian.Uint16(pkt[8:]) != 0 {
		return false
	}
	ar := binary.BigEndian.Uint16(pkt[10:])
	if ar > 1 {
		return false
	}
	q.id = binary.BigEndian.Uint16(pkt)
	q.rdcd = binary.BigEndian.Uint16(pkt[2:]) & (1<<8 | 1<<4)
	off := 12
	n := 0
	for {
		if off >= len(pkt) {
			return false
		}
		l := int(pkt[off])
		off++
		if l == 0 {
			break
		}
		if l > 63 || off+l > len(pkt) || n+l+1 > 254 {
			return false // pointers, long labels and names: slow path
		}
		for _, c := range pkt[off : off+l] {
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '*':
			case c >= 'A' && c <= 'Z':
				c += 'a' - 'A'
			default:
				return false
			}
			q.name[n] = c
			n++
		}
		q.name[n] = '.'
		n++
		off += l
	}
	if n == 0 || off+4 > len(pkt) {
		return false
	}
	q.nameLen = n
	q.qtype = binary.BigEndian.Uint16(pkt[off:])
	if binary.BigEndian.Uint16(pkt[off+2:]) != dns.ClassINET || !isFastQtype(q.qtype) {
		return false
	}
	q.qname = pkt[12 : off+4]
	off += 4
	q.edns, q.ecs.present = false, false
	if ar == 0 {
		return off == len(pkt)
	}
	// OPT: root name, type 41, class = payload size, TTL = ext-rcode,
	// version, flags.
	if off+11 > len(pkt) || pkt[off] != 0 || binary.BigEndian.Uint16(pkt[off+1:]) != dns.TypeOPT {
		return false
	}
	q.edns = true
	q.udpSize = binary.BigEndian.Uint16(pkt[off+3:])
	if pkt[off+5] != 0 || pkt[off+6] != 0 {
		return false // extended RCODE or version: BADVERS on the slow path
	}
	q.do = pkt[off+7]&0x80 != 0
	rdlen := int(binary.BigEndian.Uint16(pkt[off+9:]))
	off += 11
	if off+rdlen != len(pkt) {
		return false
	}
	for end := off + rdlen; off < end; {
		if off+4 > end {
			return false
		}
		code := binary.BigEndian.Uint16(pkt[off:])
		olen := int(binary.BigEndian.Uint16(pkt[off+2:]))
		off += 4
		if off+olen > end {
			return false
		}
		if code == dns.EDNS0SUBNET {
			if q.ecs.present || !readECS(pkt[off:off+olen], &q.ecs) {
				return false
			}
		}
		off += olen
	}
	return true
}

// readECS reads an ECS option's data from the wire; false when it is not
// valid.
func readECS(b []byte, e *ecsOption) bool {
	if len(b) < 4 || len(b) > 4+16 {
		return false
	}
	*e = ecsOption{present: true, fam: binary.BigEndian.Uint16(b), src: b[2], scope: b[3], n: len(b) - 4}
	copy(e.addr[:], b[4:])
	return e.valid()
}
