package zones

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

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
	lines      rrsetLines       // line of each RRset's first record, for later checks (pins)
	labels     int              // label count of Origin
	Warnings   []string
	RecordsLen int
}

// Node is every RRset at one owner name.
type Node struct {
	Name   string              // canonical
	RRsets map[uint16][]dns.RR // empty for an empty non-terminal
	// Cut marks a delegation: NS records at a name below the apex.
	Cut bool
	// Types lists the types present, sorted, so ANY can pick one RRset the
	// same way every time.
	Types []uint16
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

// ParseZone is LoadZone on bytes already read.
func ParseZone(origin, display string, src []byte) (*Zone, error) {
	origin = canonical(origin)
	var errs ErrorList
	zp := dns.NewZoneParser(bytes.NewReader(src), origin, display)
	zp.SetIncludeAllowed(false)
	var rrs []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rrs = append(rrs, rr)
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
		errs.add(display, line, "%s", msg)
		return nil, errs
	}
	lines := recordLines(src)
	if len(lines) != len(rrs) {
		lines = nil // $GENERATE or an odd layout: report names instead of lines
	}
	lineOf := func(i int) int {
		if lines == nil {
			return 0
		}
		return lines[i]
	}

	z := &Zone{Origin: origin, File: display, nodes: map[string]*Node{}, labels: dns.CountLabel(origin)}
	rl := rrsetLines{}
	seen := map[string]struct{}{}
	nsLines := map[dns.RR]int{} // each NS record's own line, for glue errors
	for i, rr := range rrs {
		h := rr.Header()
		name := canonical(h.Name)
		if !dns.IsSubDomain(origin, name) {
			errs.add(display, lineOf(i), "%s %s is outside the zone %s: records must be at or below the origin", h.Name, dns.TypeToString[h.Rrtype], origin)
			continue
		}
		if h.Class != dns.ClassINET {
			errs.add(display, lineOf(i), "%s: class %s is not served; only IN", h.Name, dns.ClassToString[h.Class])
			continue
		}
		if h.Rrtype == dns.TypeSOA {
			if name != origin {
				errs.add(display, lineOf(i), "SOA at %s: the only SOA must be at the apex %s", h.Name, origin)
				continue
			}
			if z.SOA != nil {
				errs.add(display, lineOf(i), "a second SOA at the apex: a zone has exactly one")
				continue
			}
			z.SOA = rr.(*dns.SOA)
		}
		n := z.node(name)
		// A map, not pairwise IsDuplicate: one RRset of 65,536 records
		// ($GENERATE) must not make loading quadratic.
		if _, dup := seen[dupKey(rr)]; dup {
			continue
		}
		seen[dupKey(rr)] = struct{}{}
		n.RRsets[h.Rrtype] = append(n.RRsets[h.Rrtype], rr)
		z.RecordsLen++
		k := rrsetKey{name, h.Rrtype}
		if _, ok := rl[k]; !ok {
			rl[k] = lineOf(i)
		}
		if h.Rrtype == dns.TypeNS {
			nsLines[rr] = lineOf(i)
		}
	}
	z.validate(&errs, rl, nsLines, firstRecordLine(lines))
	z.lines = rl
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

// node returns the node for name, creating it and every empty non-terminal
// between it and the apex, so that "exists but has no data" is a map hit.
func (z *Zone) node(name string) *Node {
	if n, ok := z.nodes[name]; ok {
		return n
	}
	n := &Node{Name: name, RRsets: map[uint16][]dns.RR{}}
	z.nodes[name] = n
	for p := name; p != z.Origin; {
		i, end := dns.NextLabel(p, 0)
		if end {
			break
		}
		p = p[i:]
		if _, ok := z.nodes[p]; ok {
			break
		}
		z.nodes[p] = &Node{Name: p, RRsets: map[uint16][]dns.RR{}}
	}
	return n
}

// rrsetLines keeps the line of each RRset's first record, for messages.
type rrsetLines map[rrsetKey]int

type rrsetKey struct {
	name string
	t    uint16
}

func firstRecordLine(lines []int) int {
	if len(lines) == 0 {
		return 1
	}
	return lines[0]
}

// validate checks the zone as a whole. Problems of the whole zone (no SOA,
// no NS) are reported at the first record: an editor still jumps there.
func (z *Zone) validate(errs *ErrorList, rl rrsetLines, nsLines map[dns.RR]int, first int) {
	if z.SOA == nil {
		errs.add(z.File, first, "zone %s has no SOA record: add one at the apex, e.g. \"@ 3600 IN SOA ns1.%s hostmaster.%s 1 7200 3600 1209600 300\"", z.Origin, z.Origin, z.Origin)
	}
	apex := z.nodes[z.Origin]
	if apex == nil || len(apex.RRsets[dns.TypeNS]) == 0 {
		errs.add(z.File, first, "zone %s has no NS record at the apex: add at least one, e.g. \"@ IN NS ns1.%s\" with its A record", z.Origin, z.Origin)
	}
	names := make([]string, 0, len(z.nodes))
	for name := range z.nodes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		n := z.nodes[name]
		for t := range n.RRsets {
			n.Types = append(n.Types, t)
		}
		sort.Slice(n.Types, func(i, j int) bool { return n.Types[i] < n.Types[j] })
		if name != z.Origin && len(n.RRsets[dns.TypeNS]) > 0 {
			n.Cut = true
		}
		if cn, ok := n.RRsets[dns.TypeCNAME]; ok {
			line := rl[rrsetKey{name, dns.TypeCNAME}]
			if len(cn) > 1 {
				errs.add(z.File, line, "%s has %d CNAME records: a name may have only one", name, len(cn))
			}
			for _, t := range n.Types {
				if t == dns.TypeCNAME || t == dns.TypeRRSIG || t == dns.TypeNSEC {
					continue
				}
				other := rl[rrsetKey{name, t}]
				errs.add(z.File, max(line, other), "%s has a CNAME and also %s data: a CNAME must be the only record at its name (RFC 1034 section 3.6.2); remove one of them",
					name, dns.TypeToString[t])
				break
			}
		}
	}
	// Glue: a name server inside this zone must be reachable without
	// asking this zone first, so its address must be here.
	for _, name := range names {
		n := z.nodes[name]
		for _, rr := range n.RRsets[dns.TypeNS] {
			target := canonical(rr.(*dns.NS).Ns)
			if !dns.IsSubDomain(z.Origin, target) {
				continue
			}
			if t := z.nodes[target]; t == nil || (len(t.RRsets[dns.TypeA]) == 0 && len(t.RRsets[dns.TypeAAAA]) == 0) {
				line := nsLines[rr]
				errs.add(z.File, line, "NS %s at %s is inside the zone but has no A or AAAA record (glue): add \"%s IN A <address>\"", target, name, target)
			}
		}
	}
	for _, name := range names {
		n := z.nodes[name]
		for _, t := range n.Types {
			if t == dns.TypeA {
				if len(n.RRsets[t]) > 1 && !z.insideCut(name) {
					z.Warnings = append(z.Warnings, fmt.Sprintf("%s has %d A records: resolvers will spread clients across them (round robin); for a cluster use a [[service]] instead", name, len(n.RRsets[t])))
				}
			}
		}
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
func recordLines(src []byte) []int {
	var out []int
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	depth := 0
	for n := 1; sc.Scan(); n++ {
		text := sc.Text()
		starts := depth == 0
		hasToken := false
		inQuote := false
	scan:
		for i := 0; i < len(text); i++ {
			c := text[i]
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
				break scan
			case c == '(':
				depth++
				hasToken = true
			case c == ')':
				depth--
			case c != ' ' && c != '\t' && c != '\r':
				hasToken = true
			}
		}
		if starts && hasToken && !strings.HasPrefix(text, "$") {
			out = append(out, n)
		}
	}
	return out
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

// dupKey identifies a record by owner, class, type and data (not TTL), as
// dns.IsDuplicate compares them.
func dupKey(rr dns.RR) string {
	c := dns.Copy(rr)
	c.Header().Ttl = 0
	c.Header().Name = strings.ToLower(c.Header().Name)
	return c.String()
}
