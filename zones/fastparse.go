package zones

import (
	"bytes"
	"net/netip"
	"strconv"

	"github.com/miekg/dns"
)

// parseFast reads the records of a master file into z, the common lines
// itself and the rest with miekg's parser. miekg's parser makes a dns.RR and
// several strings per record and is most of the time of loading a
// million-record zone; the lines of large zones are nearly all of one form:
//
//	owner [ttl] [IN] A|AAAA address [; comment]
//
// with the owner written out or left blank (the previous one), after $TTL
// (and maybe $ORIGIN) directives. parseFast packs those straight into wire
// form, exactly as miekg would parse and pack them, and hands every other
// record, in order and in runs, to miekg's parser started in the same state
// (origin, $TTL, previous owner). ok is false when the file needs miekg's
// parser as a whole: a syntax error (so that its message and line are
// miekg's own), other directives, a record before any $TTL. The results are
// identical either way (TestParseFastIdentical).
//
// Reading and storing run on two goroutines: the lines are read and packed
// in batches (read, on its own goroutine) while the caller's goroutine
// stores the previous batch in the zone, in file order (store): for a
// million names the map's cache misses are most of the storing and the
// reading is most of the rest, and a server has more than one core.
func (z *Zone) parseFast(src []byte, errs *ErrorList, release func(int)) (count int, ok bool) {
	p := fastParser{z: z, errs: errs, origin: z.Origin, release: release}
	return p.run(src)
}

// fastBatch is records read, for the store to add in order: owner (as
// written, absolute), its canonical form and the packed record, one after
// the other in buf, for a common line; the dns.RR for a record miekg's
// parser read.
type fastBatch struct {
	buf   []byte
	items []fastItem
}

type fastItem struct {
	idx int
	rr  dns.RR // nil for a common line
	// a common line: buf[off:off+nameLen] the owner, then its canonical
	// form (as long), then the record (recLen)
	off, nameLen, recLen int32
	t                    uint16
}

// batchRecords: records a batch holds; batchesInFlight: batches between
// the reader and the store (the memory of the pipeline: a few hundred KB).
const (
	batchRecords    = 2048
	batchesInFlight = 4
)

// run reads src: the reading on a new goroutine, the storing on this one.
func (p *fastParser) run(src []byte) (count int, ok bool) {
	full := make(chan *fastBatch, batchesInFlight)
	p.free = make(chan *fastBatch, batchesInFlight)
	for range batchesInFlight {
		p.free <- &fastBatch{items: make([]fastItem, 0, batchRecords)}
	}
	p.full, p.done, p.file = full, make(chan struct{}), p.z.File
	// The reader stops when the store does (a panic while storing).
	defer close(p.done)
	var crash any
	go func() {
		defer close(full)
		defer func() {
			if r := recover(); r != nil {
				crash, ok = r, false
			}
		}()
		count, ok = p.read(src)
		if ok {
			ok = p.send()
		}
	}()
	for b := range full {
		p.store(b)
		b.buf, b.items = b.buf[:0], b.items[:0]
		p.free <- b
	}
	// full is closed: read has returned, count, ok and crash are set.
	if crash != nil {
		panic(crash)
	}
	return count, ok
}

// send hands the batch being filled to the store; false when it stopped.
func (p *fastParser) send() bool {
	if p.batch == nil || len(p.batch.items) == 0 {
		return true
	}
	select {
	case p.full <- p.batch:
		p.batch = nil
		return true
	case <-p.done:
		return false
	}
}

// item returns a new item in the batch being filled, sending the batch
// when full; nil when the store stopped.
func (p *fastParser) item() *fastItem {
	if p.batch != nil && len(p.batch.items) == cap(p.batch.items) && !p.send() {
		return nil
	}
	if p.batch == nil {
		select {
		case p.batch = <-p.free:
		case <-p.done:
			return nil
		}
	}
	b := p.batch
	b.items = b.items[:len(b.items)+1]
	it := &b.items[len(b.items)-1]
	*it = fastItem{}
	return it
}

// store adds a batch's records to the zone, as add does for each.
func (p *fastParser) store(b *fastBatch) {
	z := p.z
	for i := range b.items {
		it := &b.items[i]
		if it.rr != nil {
			z.add(it.rr, it.idx, p.errs)
			continue
		}
		owner := b.buf[it.off : it.off+it.nameLen]
		lower := b.buf[it.off+it.nameLen : it.off+2*it.nameLen]
		rec := b.buf[it.off+2*it.nameLen : it.off+2*it.nameLen+it.recLen]
		if !inZone(lower, z.Origin) {
			p.errs.add(z.File, it.idx+1, "%s %s is outside the zone %s: records must be at or below the origin", owner, dns.TypeToString[it.t], z.Origin)
			continue
		}
		n := z.nodes[string(lower)]
		if n == nil {
			n = z.addNode(z.build.internBytes(lower))
		}
		z.put(n, it.t, rec, it.idx, "")
	}
}

// releaseEvery: how often read tells release how far it has read; what
// is not yet given back when the parse ends is held next to the old zone
// and the new one during a reload.
const releaseEvery = 1 << 20

// read reads src, the records into batches for store; it touches nothing
// of the zone (z is the store's).
func (p *fastParser) read(src []byte) (count int, ok bool) {
	depth := 0 // open parentheses of a record handed to miekg
	total, told := len(src), 0
	for len(src) > 0 {
		// Nothing before this line is read again (what a run for
		// miekg's parser needs is copied into p.other).
		if read := total - len(src); p.release != nil && read-told >= releaseEvery {
			p.release(read)
			told = read
		}
		var line []byte
		// nl is the line's end as the file has it: miekg's lexer reads a
		// last line without one differently.
		nl := []byte{'\n'}
		if i := bytes.IndexByte(src, '\n'); i >= 0 {
			line, src = src[:i], src[i+1:]
		} else {
			line, src, nl = src, nil, nil
		}
		if len(line) >= longLine && bytes.IndexByte(line, ';') >= 0 {
			// miekg's lexer grows its comment buffer 512 bytes at a
			// time and, at some boundaries, fails a long comment with
			// "comment length insufficient for parsing": mimicking
			// that is not worth it; such a file is read by miekg whole.
			return 0, false
		}
		if depth > 0 {
			p.other = append(append(p.other, line...), nl...)
			depth = parenDepth(line, depth)
			continue
		}
		if len(p.other) > 0 {
			// A run for miekg's parser takes the file as written (blank
			// lines and directives too: its lexer is not indifferent to
			// them after an incomplete record) up to and including the
			// next common line, a whole record after which it is back
			// where it starts.
			p.other = append(append(p.other, line...), nl...)
			switch {
			case blankLine(line):
			case line[0] == '$':
				if !p.directive(line) {
					return 0, false
				}
			default:
				if _, ok := p.parseSimple(line); ok {
					if !p.flush() {
						return 0, false
					}
					continue
				}
				depth = parenDepth(line, 0)
			}
			continue
		}
		switch {
		case blankLine(line):
			continue
		case line[0] == '$':
			if !p.directive(line) {
				return 0, false
			}
			continue
		}
		if r, ok := p.parseSimple(line); ok && p.commit(r) {
			if p.stopped {
				return 0, false
			}
			continue
		}
		// A run for miekg's parser starts, in the state here.
		p.runOrigin, p.runTTL, p.runHaveTTL = p.origin, p.ttl, p.haveTTL
		if line[0] == ' ' || line[0] == '\t' {
			// Without its owner: miekg gets the previous one written out.
			if len(p.prevOwner) == 0 {
				return 0, false
			}
			p.other = append(p.other, p.prevOwner...)
		}
		p.other = append(append(p.other, line...), nl...)
		depth = parenDepth(line, 0)
	}
	if !p.flush() {
		return 0, false
	}
	return p.count, true
}

// longLine is the length from which a line with a comment goes to miekg.
const longLine = 256

type fastParser struct {
	// z and errs are the store's (run's goroutine); the rest is read's.
	z       *Zone
	errs    *ErrorList
	count   int
	origin  string // as $ORIGIN set it (case kept, as miekg keeps it)
	ttl     uint32 // $TTL
	haveTTL bool
	// runOrigin, runTTL: origin and $TTL where the run in other starts
	runOrigin  string
	runTTL     uint32
	runHaveTTL bool
	prevOwner  []byte // the last record's owner, absolute, as written
	other      []byte // records for miekg's parser, in file order
	owner      []byte // scratch: the absolute owner
	rec        []byte // scratch: the packed record
	rdata      []byte // scratch
	f          [][]byte
	// simpleRecords counts the records read here, not by miekg (tests).
	simpleRecords int
	// release, when set, is told how much of src has been read.
	release func(int)
	batch   *fastBatch      // being filled
	full    chan *fastBatch // to the store
	free    chan *fastBatch // back from the store
	done    chan struct{}   // closed when run returns
	stopped bool            // the store stopped: read returns
	file    string          // z.File, for miekg's parser
}

// flush parses the records gathered for miekg's parser.
func (p *fastParser) flush() bool {
	if len(p.other) == 0 {
		return true
	}
	if !p.runHaveTTL {
		return false // miekg's rules for a TTL-less start: leave them to it
	}
	text := append([]byte("$TTL "+strconv.FormatUint(uint64(p.runTTL), 10)+"\n"), p.other...)
	zp := dns.NewZoneParser(bytes.NewReader(text), p.runOrigin, p.file)
	zp.SetIncludeAllowed(false)
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		it := p.item()
		if it == nil {
			return false
		}
		it.idx, it.rr = p.count, rr
		p.count++
		p.prevOwner = append(p.prevOwner[:0], rr.Header().Name...)
	}
	p.other = p.other[:0]
	return zp.Err() == nil
}

// directive applies "$TTL <seconds>" or "$ORIGIN <name>"; anything else is
// miekg's.
func (p *fastParser) directive(line []byte) bool {
	f := fields(nil, line)
	if len(f) != 2 {
		return false
	}
	switch string(f[0]) {
	case "$TTL":
		ttl, ok := digits(f[1])
		if !ok {
			return false
		}
		p.ttl, p.haveTTL = ttl, true
		return true
	case "$ORIGIN":
		if !plainName(f[1]) {
			return false
		}
		o := p.absolute(f[1])
		if o == nil || !bytes.HasSuffix(o, []byte(".")) {
			return false
		}
		p.origin = string(o)
		return true
	}
	return false
}

// simpleRecord is a line of the common form, parsed.
type simpleRecord struct {
	owner []byte // nil: the previous record's
	t     uint16
	ttl   uint32
	rdata []byte
}

// parseSimple parses a line of the common form, without side effects.
func (p *fastParser) parseSimple(line []byte) (r simpleRecord, ok bool) {
	if !p.haveTTL {
		return r, false
	}
	f := fields(p.f[:0], line)
	p.f = f
	if f == nil {
		return r, false
	}
	if line[0] != ' ' && line[0] != '\t' {
		if !plainName(f[0]) || isKeyword(f[0]) {
			return r, false
		}
		r.owner = f[0]
		f = f[1:]
	}
	r.ttl = p.ttl
	haveTTL, haveClass := false, false
	for len(f) > 0 {
		if v, ok := digits(f[0]); ok && !haveTTL {
			r.ttl, haveTTL = v, true
		} else if equalFold(f[0], "IN") && !haveClass {
			haveClass = true
		} else {
			break
		}
		f = f[1:]
	}
	if len(f) != 2 {
		return r, false
	}
	switch {
	case equalFold(f[0], "A"):
		a, ok := ipv4(f[1])
		if !ok {
			return r, false
		}
		r.t, r.rdata = dns.TypeA, append(p.rdata[:0], a[:]...)
	case equalFold(f[0], "AAAA"):
		a, err := netip.ParseAddr(string(f[1]))
		if err != nil || !a.Is6() || a.Is4In6() || a.Zone() != "" || bytes.IndexByte(f[1], ':') < 0 {
			return r, false
		}
		a16 := a.As16()
		r.t, r.rdata = dns.TypeAAAA, append(p.rdata[:0], a16[:]...)
	default:
		return r, false
	}
	p.rdata = r.rdata
	return r, true
}

// commit packs and stores r, as add does for a parsed record; false when
// miekg must read the line after all (no previous owner, a name too long).
func (p *fastParser) commit(r simpleRecord) bool {
	var owner []byte
	if r.owner == nil {
		if len(p.prevOwner) == 0 {
			return false
		}
		owner = append(p.owner[:0], p.prevOwner...)
	} else {
		owner = p.absolute(r.owner)
	}
	rec, ok := appendWireName(p.rec[:0], owner)
	if !ok {
		return false
	}
	rec = append(rec, byte(r.t>>8), byte(r.t), 0, byte(dns.ClassINET), byte(r.ttl>>24), byte(r.ttl>>16), byte(r.ttl>>8), byte(r.ttl), 0, byte(len(r.rdata)))
	rec = append(rec, r.rdata...)
	p.rec, p.owner = rec, owner

	it := p.item()
	if it == nil {
		p.stopped = true
		return true
	}
	it.idx, it.t = p.count, r.t
	p.count++
	p.simpleRecords++
	if r.owner != nil {
		p.prevOwner = append(p.prevOwner[:0], owner...)
	}
	b := p.batch
	it.off, it.nameLen, it.recLen = int32(len(b.buf)), int32(len(owner)), int32(len(rec))
	b.buf = append(b.buf, owner...)
	for _, c := range owner {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.buf = append(b.buf, c)
	}
	b.buf = append(b.buf, rec...)
	return true
}

// absolute is miekg's toAbsoluteName for a plain name, into p.owner.
func (p *fastParser) absolute(name []byte) []byte {
	switch {
	case len(name) == 1 && name[0] == '@':
		return append(p.owner[:0], p.origin...)
	case name[len(name)-1] == '.':
		return append(p.owner[:0], name...)
	case p.origin == ".":
		return append(append(p.owner[:0], name...), '.')
	}
	return append(append(append(p.owner[:0], name...), '.'), p.origin...)
}

// plainName: letters, digits, '-', '_', '*', '.' and nothing that needs
// escaping, with no empty label (or the lone "@"); miekg's checks of the
// rest (lengths) are made when packing.
func plainName(b []byte) bool {
	if len(b) == 1 && (b[0] == '@' || b[0] == '.') {
		return true
	}
	prev := byte('.')
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '*':
		case c == '.':
			if prev == '.' {
				return false
			}
		default:
			return false
		}
		prev = c
	}
	return len(b) > 0 && b[0] != '.'
}

// isKeyword: an owner that reads as a class or type is left to miekg.
func isKeyword(b []byte) bool {
	if len(b) > 4 && (equalFold(b[:4], "TYPE") || len(b) > 5 && equalFold(b[:5], "CLASS")) {
		return true
	}
	var buf [16]byte
	if len(b) > len(buf) {
		return false // longer than any type or class name
	}
	u := buf[:len(b)]
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		u[i] = c
	}
	if _, ok := dns.StringToType[string(u)]; ok {
		return true
	}
	_, ok := dns.StringToClass[string(u)]
	return ok
}

// appendWireName packs an absolute plain name; false when a label or the
// name is too long (miekg's parser reports those).
func appendWireName(dst, name []byte) ([]byte, bool) {
	start := len(dst)
	if len(name) == 1 && name[0] == '.' {
		return append(dst, 0), true
	}
	for len(name) > 0 {
		i := bytes.IndexByte(name, '.')
		if i <= 0 || i > 63 {
			return dst, false
		}
		dst = append(append(dst, byte(i)), name[:i]...)
		name = name[i+1:]
	}
	dst = append(dst, 0)
	return dst, len(dst)-start <= 255
}

func inZone(name []byte, origin string) bool {
	if origin == "." {
		return true
	}
	if !bytes.HasSuffix(name, []byte(origin)) {
		return false
	}
	k := len(name) - len(origin)
	return k == 0 || name[k-1] == '.'
}

// digits parses a plain decimal TTL of at most 9 digits (no units).
func digits(b []byte) (uint32, bool) {
	if len(b) == 0 || len(b) > 9 {
		return 0, false
	}
	v := uint32(0)
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint32(c-'0')
	}
	return v, true
}

// ipv4 parses a dotted quad without leading zeros, as net.ParseIP accepts it.
func ipv4(b []byte) ([4]byte, bool) {
	var a [4]byte
	for i := range 4 {
		j := 0
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if j == 0 || j > 3 || j > 1 && b[0] == '0' {
			return a, false
		}
		v := 0
		for _, c := range b[:j] {
			v = v*10 + int(c-'0')
		}
		if v > 255 {
			return a, false
		}
		a[i] = byte(v)
		b = b[j:]
		if i < 3 {
			if len(b) == 0 || b[0] != '.' {
				return a, false
			}
			b = b[1:]
		}
	}
	return a, len(b) == 0
}

func equalFold(b []byte, s string) bool { return len(b) == len(s) && bytes.EqualFold(b, []byte(s)) }

// fields splits a line on blanks up to a comment; nil when the line holds
// anything miekg's lexer treats specially (quotes, parentheses, escapes,
// control characters).
func fields(f [][]byte, line []byte) [][]byte {
	start := -1
	for i, c := range line {
		switch {
		case c == ';':
			if start >= 0 {
				f = append(f, line[start:i])
			}
			return f
		case c == ' ' || c == '\t':
			if start >= 0 {
				f = append(f, line[start:i])
				start = -1
			}
		case c < ' ' || c > '~' || c == '"' || c == '(' || c == ')' || c == '\\':
			return nil
		default:
			if start < 0 {
				start = i
			}
		}
	}
	if start >= 0 {
		f = append(f, line[start:])
	}
	return f
}

func blankLine(line []byte) bool {
	for _, c := range line {
		switch c {
		case ' ', '\t', '\r':
		case ';':
			return true
		default:
			return false
		}
	}
	return true
}

// parenDepth is the open parentheses after line, as recordLines counts them.
func parenDepth(line []byte, depth int) int {
	d, _ := scanLine(line, depth)
	return d
}
