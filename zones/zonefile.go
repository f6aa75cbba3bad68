package zones

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unsafe"

	"github.com/miekg/dns"
)

// Zone is one authoritative zone, immutable once built.
type Zone struct {
	Origin string // canonical: lower case, fully qualified
	File   string // as given in the config, for messages
	SOA    *dns.SOA
	// NegSOA is the SOA to put in the authority section of negative answers:
	// TTL = min(SOA TTL, SOA MINIMUM) per RFC 2308 section 5.
	NegSOA *dns.SOA

	nodes      map[string]*Node // canonical owner name → node; empty non-terminals included
	labels     int              // label count of Origin
	Warnings   []string
	RecordsLen int
	build      *zoneBuilder // while parsing only: where nodes and names are allocated
	// admin: the nodes named _pin.* or _status.*, for bindStaticPins,
	// which would otherwise walk every name of the zone.
	admin []*Node
}

// Node is every RRset at one owner name.
//
// The records are kept packed, as they go on the wire, not as dns.RR values:
// a million-name zone of dns.RR values (a struct, its header strings, its
// address slice, a map per name) costs about 600 bytes a record, the packed
// form its own bytes (about 33 for an A record), and the fast path copies it
// into answers, compressing names as it goes (dnsserver compressRRset). The
// general path gets dns.RR values unpacked on demand.
type Node struct {
	Name string  // canonical
	sets []rrset // sorted by type; none for an empty non-terminal
	// Cut marks a delegation: NS records at a name below the apex.
	Cut bool
	// below: at or below a zone cut (its own or an ancestor's).
	below bool
	// wildChild: "*.<Name>" is a node, so a missing name right below this
	// one is synthesized (RFC 4592).
	wildChild bool
	// low has bit t set when the node has an RRset of type t < 32 (A, NS,
	// CNAME, SOA, MX, TXT, AAAA...): asking for a type the node lacks, or
	// whether it has one, reads the node alone, not sets too, a second
	// cache miss per name when every name is visited (it fits the
	// padding after the bools: Node stays 48 bytes).
	low uint32
}

// lowTypes: the types below it have a bit in Node.low.
const lowTypes = 32

// rrset is one RRset of a node.
type rrset struct {
	t uint16
	// n counts the records, saturating: more than 65,535 records never
	// fit a message, and unpacking walks wire, not n.
	n uint16
	// line of the first record, 0 when unknown (while parsing: the
	// record's index + 1).
	line uint32
	// wire is the records in file order, uncompressed wire format, owner
	// name included: the answer section the general path sends for them,
	// before name compression.
	wire []byte
}

func (n *Node) set(t uint16) *rrset {
	if t < lowTypes && n.low&(1<<t) == 0 {
		return nil
	}
	for i := range n.sets {
		if n.sets[i].t == t {
			return &n.sets[i]
		}
	}
	return nil
}

// Has reports whether the node has records of type t.
func (n *Node) Has(t uint16) bool {
	if t < lowTypes {
		return n.low&(1<<t) != 0
	}
	return n.set(t) != nil
}

// Types lists the types present, sorted (a fresh slice).
func (n *Node) Types() []uint16 {
	out := make([]uint16, len(n.sets))
	for i, s := range n.sets {
		out[i] = s.t
	}
	return out
}

// RRs returns the records of type t, unpacked (fresh values, the caller's
// to keep or change).
func (n *Node) RRs(t uint16) []dns.RR {
	if s := n.set(t); s != nil {
		return s.records()
	}
	return nil
}

// Packed returns the records of type t as the answer section carries them
// before name compression, and their count; nil when there are none. The
// bytes are shared: never modify them.
func (n *Node) Packed(t uint16) (wire []byte, count uint16) {
	if s := n.set(t); s != nil {
		return s.wire, s.n
	}
	return nil, 0
}

// Below reports whether the node is at or below a zone cut.
func (n *Node) Below() bool { return n.below }

// WildChild reports whether "*.<Name>" exists.
func (n *Node) WildChild() bool { return n.wildChild }

// line is the line of the first record of type t, 0 when unknown.
func (n *Node) line(t uint16) int {
	if s := n.set(t); s != nil {
		return int(s.line)
	}
	return 0
}

// count is n, exact past 65,535 too (for messages).
func (s *rrset) count() int {
	if s.n < 0xFFFF {
		return int(s.n)
	}
	c := 0
	for off := 0; off < len(s.wire); c++ {
		_, off = rdataAt(s.wire, off)
	}
	return c
}

func (s *rrset) records() []dns.RR {
	out := make([]dns.RR, 0, s.n)
	for off := 0; off < len(s.wire); {
		rr, next, err := dns.UnpackRR(s.wire, off)
		if err != nil {
			break // cannot happen: the bytes were packed from a record
		}
		out = append(out, rr)
		off = next
	}
	return out
}

// rdataAt returns the record starting at off in wire: its rdata and the
// offset of the next record.
func rdataAt(wire []byte, off int) (rdata []byte, next int) {
	for wire[off] != 0 {
		off += int(wire[off]) + 1
	}
	off++ // root label
	rdlen := int(wire[off+8])<<8 | int(wire[off+9])
	off += 10
	return wire[off : off+rdlen], off + rdlen
}

func dnsIsDomainName(s string) (int, bool) { return dns.IsDomainName(s) }

// canonical returns the lower-case, fully qualified form used as a map key.
func canonical(name string) string { return strings.ToLower(dns.Fqdn(name)) }

var parseLineRE = regexp.MustCompile(`^(?:.*?: )?dns: (.*) at line: (\d+):\d+$`)

// LoadZone parses and validates one RFC 1035 master file. $INCLUDE is refused:
// it can read any file the process can, and a zone is one file here.
func LoadZone(origin, path, display string) (*Zone, error) {
	src, err := readFile(context.Background(), path)
	if err != nil {
		return nil, &Error{File: display, Msg: fmt.Sprintf("cannot read zone file for %s: %v", origin, unwrapPathErr(err))}
	}
	return ParseZone(origin, display, src)
}

// zoneBuilder holds what only parsing needs; the records go straight into
// their packed form, so a parse never holds the whole zone as dns.RR values.
type zoneBuilder struct {
	arena []byte // names and single records are carved from it
	nodes []Node // nodes are carved from it
	sets  []rrset
	pack  []byte // one record packed, before it is copied
	// big: the rdata of RRsets past dupScan records, so that one RRset of
	// 65,536 records ($GENERATE) does not make loading quadratic.
	big map[rrsetKey]map[string]struct{}
	ns  []nsRecord
	// lines: the line of each record, by index in the file (recordLines).
	// A record's line is set when it is stored; if the records do not
	// match the count ($GENERATE, an odd layout), every line is cleared
	// after the parse (lines unknown).
	lines []int32
	// What validate checks, gathered while records are stored: it would
	// otherwise visit every node of the map in hash order, a cache miss or
	// two per name (a third of loading a million-name zone).
	wild   []*Node // nodes named "*.<parent>"
	cname  []*Node // nodes with a CNAME RRset
	multiA []*Node // nodes whose A RRset got a second record
}

// line is the line of the record with index idx, 0 when unknown.
func (b *zoneBuilder) line(idx int) uint32 {
	if idx < 0 || idx >= len(b.lines) {
		return 0
	}
	return uint32(b.lines[idx])
}

// dupScan: RRsets up to this size are searched for duplicates directly.
const dupScan = 16

type rrsetKey struct {
	name string
	t    uint16
}

// nsRecord is one NS record, for the glue check after the whole zone is read.
type nsRecord struct {
	owner, target string
	idx           int
}

// bytes returns k fresh bytes carved from a shared chunk: a million small
// allocations would cost a size-class rounding and a GC object each.
func (b *zoneBuilder) bytes(k int) []byte {
	if k > 1024 {
		return make([]byte, k)
	}
	if cap(b.arena)-len(b.arena) < k {
		b.arena = make([]byte, 0, 256<<10)
	}
	s := b.arena[len(b.arena) : len(b.arena)+k : len(b.arena)+k]
	b.arena = b.arena[:len(b.arena)+k]
	return s
}

func (b *zoneBuilder) intern(s string) string {
	if s == "" {
		return s
	}
	buf := b.bytes(len(s))
	copy(buf, s)
	// The bytes are never written again: the string is immutable.
	return unsafe.String(&buf[0], len(buf))
}

func (b *zoneBuilder) internBytes(s []byte) string {
	if len(s) == 0 {
		return ""
	}
	buf := b.bytes(len(s))
	copy(buf, s)
	// The bytes are never written again: the string is immutable.
	return unsafe.String(&buf[0], len(buf))
}

func (b *zoneBuilder) newNode(name string) *Node {
	if len(b.nodes) == 0 {
		b.nodes = make([]Node, 1024)
	}
	n := &b.nodes[0]
	b.nodes = b.nodes[1:]
	n.Name = name
	return n
}

// addSet inserts an empty RRset of type t into n, keeping types sorted.
func (b *zoneBuilder) addSet(n *Node, t uint16) *rrset {
	if t < lowTypes {
		n.low |= 1 << t
	}
	i := 0
	for i < len(n.sets) && n.sets[i].t < t {
		i++
	}
	if len(n.sets) == 0 {
		if len(b.sets) == 0 {
			b.sets = make([]rrset, 1024)
		}
		n.sets = b.sets[:1:1]
		b.sets = b.sets[1:]
		n.sets[0] = rrset{t: t}
		return &n.sets[0]
	}
	n.sets = slices.Insert(n.sets, i, rrset{t: t})
	return &n.sets[i]
}

// isDup reports whether s already holds a record with this rdata (owner
// name case and TTL aside, as dns.IsDuplicate compares them).
func (b *zoneBuilder) isDup(name string, s *rrset, rdata []byte) bool {
	if s.n < dupScan {
		for off := 0; off < len(s.wire); {
			var rd []byte
			rd, off = rdataAt(s.wire, off)
			if bytes.Equal(rd, rdata) {
				return true
			}
		}
		return false
	}
	k := rrsetKey{name, s.t}
	m := b.big[k]
	if m == nil {
		if b.big == nil {
			b.big = map[rrsetKey]map[string]struct{}{}
		}
		m = map[string]struct{}{}
		for off := 0; off < len(s.wire); {
			var rd []byte
			rd, off = rdataAt(s.wire, off)
			m[string(rd)] = struct{}{}
		}
		b.big[k] = m
	}
	if _, ok := m[string(rdata)]; ok {
		return true
	}
	m[string(rdata)] = struct{}{}
	return false
}

// ParseZone is LoadZone on bytes already read.
func ParseZone(origin, display string, src []byte) (*Zone, error) {
	return parseZone(origin, display, src, true)
}

// parseZone is ParseZone; fast false reads every record with miekg's parser.
func parseZone(origin, display string, src []byte, fast bool) (*Zone, error) {
	return parseZoneWith(origin, display, src, fast, nil)
}

// errReread: the fast parse gave bytes of the file back (release), then
// found it needs miekg's parser on the whole file: read it again.
var errReread = errors.New("the zone file must be read again")

// readParseZone reads and parses the zone file at path. The file's bytes
// are kept outside the Go heap and given back as the parse goes, so a
// reload holds the old zone and the new one, not the file besides. readErr
// is set when the file cannot be read.
func readParseZone(ctx context.Context, origin, path string) (z *Zone, readErr, err error) {
	m, err := readMapped(ctx, path)
	if err != nil {
		return nil, err, nil
	}
	z, err = parseZoneWith(origin, path, m.b, true, m.release)
	m.free()
	if errors.Is(err, errReread) {
		src, rerr := readFile(ctx, path)
		if rerr != nil {
			return nil, rerr, nil
		}
		z, err = parseZone(origin, path, src, false)
	}
	return z, nil, err
}

// parseZoneWith is parseZone; release, when set, is told how much of src
// the fast parse has read, which it will not read again.
func parseZoneWith(origin, display string, src []byte, fast bool, release func(int)) (*Zone, error) {
	origin = canonical(origin)
	lines := recordLines(src)
	// Errors found record by record carry the record's index + 1 as their
	// line until the records have been counted (below).
	var errs ErrorList
	z := newZone(origin, display, lines)
	count, ok := 0, false
	released := false
	if fast {
		tell := release
		if release != nil {
			tell = func(n int) { released = true; release(n) }
		}
		count, ok = z.parseFast(src, &errs, tell)
	}
	if !ok && released {
		return nil, errReread // the start of src is gone
	}
	if !ok {
		// Something the fast reader leaves to miekg's parser as a whole
		// (a syntax error, $GENERATE, $INCLUDE...): start again with it.
		errs = nil
		z = newZone(origin, display, lines)
		var perr *Error
		if count, perr = z.parseAll(src, &errs); perr != nil {
			return nil, ErrorList{perr}
		}
	}
	defer func() { z.build = nil }()
	if len(lines) != count {
		lines = nil // $GENERATE or an odd layout: report names instead of lines
		// put set each RRset's line from the count it expected.
		for _, n := range z.nodes {
			for i := range n.sets {
				n.sets[i].line = 0
			}
		}
	}
	lineOf := func(idx int) int {
		if lines == nil || idx < 0 {
			return 0
		}
		return int(lines[idx])
	}
	for _, e := range errs {
		e.Line = lineOf(e.Line - 1)
	}
	z.validate(&errs, lineOf, firstRecordLine(lines))
	if len(errs) > 0 {
		return nil, errs
	}
	if z.SOA != nil {
		neg := dns.Copy(z.SOA).(*dns.SOA)
		neg.Hdr.Ttl = min(z.SOA.Hdr.Ttl, z.SOA.Minttl)
		z.NegSOA = neg
	}
	return z, nil
}

// newZone starts a zone; lines is recordLines of its file.
func newZone(origin, display string, lines []int32) *Zone {
	z := &Zone{Origin: origin, File: display, nodes: make(map[string]*Node, len(lines)+1), labels: dns.CountLabel(origin)}
	z.build = &zoneBuilder{pack: make([]byte, dns.MaxMsgSize), lines: lines}
	return z
}

// parseAll reads every record with miekg's parser. perr is a syntax error,
// which ends the load.
func (z *Zone) parseAll(src []byte, errs *ErrorList) (count int, perr *Error) {
	zp := dns.NewZoneParser(bytes.NewReader(src), z.Origin, z.File)
	zp.SetIncludeAllowed(false)
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		z.add(rr, count, errs)
		count++
	}
	if err := zp.Err(); err != nil {
		line, msg := 0, err.Error()
		if m := parseLineRE.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[2])
			msg = m[1]
		}
		if strings.Contains(msg, "$INCLUDE directive not allowed") {
			msg = "$INCLUDE is not supported: put the records in this file (an include could read any file the server can)"
		}
		return count, &Error{File: z.File, Line: line, Msg: msg}
	}
	return count, nil
}

// add checks one record and stores it packed. idx is its index in the file.
func (z *Zone) add(rr dns.RR, idx int, errs *ErrorList) {
	b := z.build
	h := rr.Header()
	name := canonical(h.Name)
	line := idx + 1 // an index until the records are counted
	if !dns.IsSubDomain(z.Origin, name) {
		errs.add(z.File, line, "%s %s is outside the zone %s: records must be at or below the origin", h.Name, dns.TypeToString[h.Rrtype], z.Origin)
		return
	}
	if h.Class != dns.ClassINET {
		errs.add(z.File, line, "%s: class %s is not served; only IN", h.Name, dns.ClassToString[h.Class])
		return
	}
	if h.Rrtype == dns.TypeSOA {
		if name != z.Origin {
			errs.add(z.File, line, "SOA at %s: the only SOA must be at the apex %s", h.Name, z.Origin)
			return
		}
		if z.SOA != nil {
			errs.add(z.File, line, "a second SOA at the apex: a zone has exactly one")
			return
		}
		z.SOA = rr.(*dns.SOA)
	}
	end, err := dns.PackRR(rr, b.pack, 0, nil, false)
	if err != nil {
		errs.add(z.File, line, "%s %s: %v", h.Name, dns.TypeToString[h.Rrtype], err)
		return
	}
	n := z.nodes[name]
	if n == nil {
		n = z.addNode(b.intern(name))
	}
	target := ""
	if h.Rrtype == dns.TypeNS {
		target = canonical(rr.(*dns.NS).Ns)
	}
	z.put(n, h.Rrtype, b.pack[:end], idx, target)
}

// put stores one packed record rec of type t at n, unless n has it already.
// target is an NS record's name server, for the glue check.
func (z *Zone) put(n *Node, t uint16, rec []byte, idx int, target string) {
	b := z.build
	rdata, _ := rdataAt(rec, 0)
	s := n.set(t)
	if s == nil {
		s = b.addSet(n, t)
		s.line = b.line(idx)
		if t == dns.TypeCNAME {
			b.cname = append(b.cname, n)
		}
	} else if b.isDup(n.Name, s, rdata) {
		return
	}
	if len(s.wire) == 0 {
		s.wire = b.bytes(len(rec))
		copy(s.wire, rec)
	} else {
		s.wire = append(s.wire, rec...)
	}
	if s.n < 0xFFFF {
		s.n++
	}
	if s.n == 2 && t == dns.TypeA {
		b.multiA = append(b.multiA, n)
	}
	z.RecordsLen++
	if t == dns.TypeNS {
		b.ns = append(b.ns, nsRecord{owner: n.Name, target: target, idx: idx})
	}
}

// node returns the node for name, creating it and every empty non-terminal
// between it and the apex, so that "exists but has no data" is a map hit.
func (z *Zone) node(name string) *Node {
	if n, ok := z.nodes[name]; ok {
		return n
	}
	return z.addNode(name)
}

// addNode is node for a name that has none.
func (z *Zone) addNode(name string) *Node {
	n := z.newNode(name)
	for p := name; p != z.Origin; {
		i, end := dns.NextLabel(p, 0)
		if end {
			break
		}
		p = p[i:]
		if _, ok := z.nodes[p]; ok {
			break
		}
		z.newNode(p)
	}
	return n
}

// newNode adds a node for name, which has none.
func (z *Zone) newNode(name string) *Node {
	var n *Node
	if z.build != nil {
		n = z.build.newNode(name)
		if len(name) > 2 && name[0] == '*' && name[1] == '.' {
			z.build.wild = append(z.build.wild, n)
		}
	} else {
		n = &Node{Name: name}
	}
	z.nodes[name] = n
	if IsAdminName(name) {
		z.admin = append(z.admin, n)
	}
	return n
}

func firstRecordLine(lines []int32) int {
	if len(lines) == 0 {
		return 1
	}
	return int(lines[0])
}

// byName is a problem found at a name, to be reported in name order
// whatever order the names were visited in: sorting a million names to
// visit them in order would cost more than the rest of the check.
type byName struct {
	name string
	err  *Error
	msg  string
}

func sortByName(l []byName) {
	sort.SliceStable(l, func(i, j int) bool { return l[i].name < l[j].name })
}

// validate checks the zone as a whole. Problems of the whole zone (no SOA,
// no NS) are reported at the first record: an editor still jumps there.
func (z *Zone) validate(errs *ErrorList, lineOf func(int) int, first int) {
	if z.SOA == nil {
		errs.add(z.File, first, "zone %s has no SOA record: add one at the apex, e.g. \"@ 3600 IN SOA ns1.%s hostmaster.%s 1 7200 3600 1209600 300\"", z.Origin, z.Origin, z.Origin)
	}
	apex := z.nodes[z.Origin]
	if apex == nil || !apex.Has(dns.TypeNS) {
		errs.add(z.File, first, "zone %s has no NS record at the apex: add at least one, e.g. \"@ IN NS ns1.%s\" with its A record", z.Origin, z.Origin)
	}
	var found []byName
	b := z.build
	cuts := false
	for _, r := range b.ns {
		if r.owner != z.Origin {
			z.nodes[r.owner].Cut = true
			cuts = true
		}
	}
	for _, n := range b.wild {
		if p := z.nodes[n.Name[2:]]; p != nil {
			p.wildChild = true
		}
	}
	for _, n := range b.cname {
		name := n.Name
		if cn := n.set(dns.TypeCNAME); cn != nil {
			line := int(cn.line)
			if cn.n > 1 {
				found = append(found, byName{name, &Error{File: z.File, Line: line, Msg: fmt.Sprintf("%s has %d CNAME records: a name may have only one", name, cn.count())}, ""})
			}
			for _, s := range n.sets {
				if s.t == dns.TypeCNAME || s.t == dns.TypeRRSIG || s.t == dns.TypeNSEC {
					continue
				}
				found = append(found, byName{name, &Error{File: z.File, Line: max(line, int(s.line)),
					Msg: fmt.Sprintf("%s has a CNAME and also %s data: a CNAME must be the only record at its name (RFC 1034 section 3.6.2); remove one of them",
						name, dns.TypeToString[s.t])}, ""})
				break
			}
		}
	}
	sortByName(found)
	for _, f := range found {
		*errs = append(*errs, f.err)
	}
	// Glue: a name server inside this zone must be reachable without
	// asking this zone first, so its address must be here.
	ns := z.build.ns
	sort.SliceStable(ns, func(i, j int) bool { return ns[i].owner < ns[j].owner })
	for _, r := range ns {
		if !dns.IsSubDomain(z.Origin, r.target) {
			continue
		}
		if t := z.nodes[r.target]; t == nil || (!t.Has(dns.TypeA) && !t.Has(dns.TypeAAAA)) {
			errs.add(z.File, lineOf(r.idx), "NS %s at %s is inside the zone but has no A or AAAA record (glue): add \"%s IN A <address>\"", r.target, r.owner, r.target)
		}
	}
	var warn []byName
	if cuts {
		for name, n := range z.nodes {
			n.below = z.insideCut(name)
		}
	}
	for _, n := range b.multiA {
		if a := n.set(dns.TypeA); a != nil && a.n > 1 && !n.below {
			warn = append(warn, byName{n.Name, nil, fmt.Sprintf("%s has %d A records: resolvers will spread clients across them (round robin); for a cluster use a [[service]] instead", n.Name, a.count())})
		}
	}
	sortByName(warn)
	for _, w := range warn {
		z.Warnings = append(z.Warnings, w.msg)
	}
}

// insideCut reports whether name is at or below a delegation (glue or
// occluded data), where round-robin warnings make no sense.
func (z *Zone) insideCut(name string) bool {
	for p := name; p != z.Origin; {
		if n := z.nodes[p]; n != nil && n.Cut {
			return true
		}
		i, end := dns.NextLabel(p, 0)
		if end {
			return false
		}
		p = p[i:]
	}
	return false
}

// recordLines returns the line on which each resource record starts, in
// file order, by reading the master file the way its grammar splits it:
// directives, comments, quoted strings and ( ) continuations.
//
// Most lines of a large zone hold none of the characters that grammar
// cares about (quotes, parentheses, a comment): the next of each is found
// for the whole file at once (bytes.IndexByte), and a line before all of
// them only needs its first character looked at. The others are read by
// scanLine. The result is recordLinesScanner's (TestRecordLinesIdentical);
// a file with a line near its 1 MiB limit is read by it.
//
// The lines are int32 (a zone file is at most MaxFileSize bytes): the
// slice lives through the parse, next to the old zone during a reload.
func recordLines(src []byte) []int32 {
	// At most one record a line: one allocation, not a doubling chain of
	// garbage for a million-line zone.
	out := make([]int32, 0, bytes.Count(src, []byte{'\n'})+1)
	var next [4]int // the offset of the next '"', '(', ')', ';' from off
	for i := range next {
		next[i] = -1
	}
	const specials = "\"();"
	depth, off := 0, 0
	for n := 1; off < len(src); n++ {
		end := len(src)
		if i := bytes.IndexByte(src[off:], '\n'); i >= 0 {
			end = off + i
		}
		line := src[off:end]
		if len(line) >= maxScannedLine {
			return recordLinesScanner(src)
		}
		special := false
		for i := range next {
			if next[i] < off {
				if j := bytes.IndexByte(src[off:], specials[i]); j >= 0 {
					next[i] = off + j
				} else {
					next[i] = len(src)
				}
			}
			special = special || next[i] < end
		}
		starts := depth == 0
		var hasToken bool
		if special {
			depth, hasToken = scanLine(line, depth)
		} else {
			for _, c := range line {
				if c != ' ' && c != '\t' && c != '\r' {
					hasToken = true
					break
				}
			}
		}
		if starts && hasToken && line[0] != '$' {
			out = append(out, int32(n))
		}
		off = end + 1
	}
	return out
}

// maxScannedLine: from this length on, a line is near the most
// recordLinesScanner's scanner reads (1 MiB), where it stops.
const maxScannedLine = 1<<20 - 2

// recordLinesScanner is recordLines line by line with a bufio.Scanner.
func recordLinesScanner(src []byte) []int32 {
	out := make([]int32, 0, bytes.Count(src, []byte{'\n'})+1)
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	depth := 0
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		starts := depth == 0
		var hasToken bool
		depth, hasToken = scanLine(line, depth)
		if starts && hasToken && !bytes.HasPrefix(line, []byte("$")) {
			out = append(out, int32(n))
		}
	}
	return out
}

// scanLine reads one master-file line the way its grammar splits it
// (quoted strings with escapes, a comment to the end of the line, ( )
// continuations): the open parentheses after it, given depth before it, and
// whether it holds a token other than a closing parenthesis.
func scanLine(line []byte, depth int) (after int, hasToken bool) {
	inQuote := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case inQuote:
			if c == '\\' {
				i++
			} else if c == '"' {
				inQuote = false
			}
		case c == '"':
			inQuote = true
			hasToken = true
		case c == ';':
			return depth, hasToken
		case c == '(':
			depth++
			hasToken = true
		case c == ')':
			depth--
		case c != ' ' && c != '\t' && c != '\r':
			hasToken = true
		}
	}
	return depth, hasToken
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

const dnsTypeTXT = dns.TypeTXT

func txtStrings(rr dns.RR) []string {
	if t, ok := rr.(*dns.TXT); ok {
		return t.Txt
	}
	return nil
}
