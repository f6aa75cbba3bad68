package zones

import (
	"fmt"
	"net/netip"
	"regexp"

	"github.com/gaissmai/bart"
)

// LocationConfig is one [[location]]: a named set of client subnets.
type LocationConfig struct {
	Name    string   `toml:"name"`
	Subnets []string `toml:"subnets"`

	prefixes []netip.Prefix
}

// locMatch is what the prefix table holds: the location's view index and
// the matched prefix length, which becomes the ECS scope of the answer.
type locMatch struct {
	loc  int
	bits int
	// nested: a more specific location prefix lies inside this one, so the
	// answer does not hold for the whole prefix (see Scope).
	nested bool
}

// A location name becomes a DNS label in _pin.<location>._loc.<service>.
var labelRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$`)

func (c *Config) validateLocations(file string, errs *ErrorList) {
	names := map[string]int{}
	owner := map[netip.Prefix]string{}
	for i := range c.Locations {
		l := &c.Locations[i]
		at := fmt.Sprintf("location[%d]", i)
		if l.Name == "default" {
			errs.add(file, c.line(at+".name"), "location name \"default\" is reserved for clients in no location; choose another name")
			continue
		}
		if !labelRE.MatchString(l.Name) {
			errs.add(file, c.line(at+".name"), "location name %q: use one DNS label (letters, digits, '-', '_'): it is used in _pin.<location>._loc.<service>", l.Name)
			continue
		}
		if prev, ok := names[l.Name]; ok {
			errs.add(file, c.line(at+".name"), "location %q is defined twice (first as location %d)", l.Name, prev+1)
			continue
		}
		names[l.Name] = i
		if len(l.Subnets) == 0 {
			errs.add(file, c.line(at), "location %q has no subnets: add subnets = [\"10.20.0.0/16\", ...]", l.Name)
		}
		for _, s := range l.Subnets {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				errs.add(file, c.line(at+".subnets"), "location %q: %q is not a CIDR prefix; write it like \"10.20.0.0/16\" or \"2001:db8:20::/48\"", l.Name, s)
				continue
			}
			if p.Masked() != p {
				errs.add(file, c.line(at+".subnets"), "location %q: %q has host bits set; did you mean %q?", l.Name, s, p.Masked())
				continue
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapBits(p))
			if other, ok := owner[p]; ok {
				if other == l.Name {
					errs.add(file, c.line(at+".subnets"), "location %q lists %s twice", l.Name, p)
				} else {
					errs.add(file, c.line(at+".subnets"), "subnet %s is in both location %q and location %q: a client must belong to one; remove it from one of them", p, other, l.Name)
				}
				continue
			}
			owner[p] = l.Name
			l.prefixes = append(l.prefixes, p)
		}
	}
	svcNodes := func(s *ServiceConfig) map[string]bool {
		m := map[string]bool{}
		for _, n := range s.Nodes {
			m[n] = true
		}
		return m
	}
	for i := range c.Services {
		s := &c.Services[i]
		if len(s.Locations) == 0 {
			continue
		}
		at := elemPath("service", i) + ".locations"
		for loc, order := range s.Locations {
			if _, ok := names[loc]; !ok {
				errs.add(file, c.line(at+"."+loc), "service %s: [service.locations] names %q, which is not a [[location]]", s.Name, loc)
				continue
			}
			if len(order) == 0 {
				errs.add(file, c.line(at+"."+loc), "service %s: location %q has an empty order: list its nodes in priority order, or remove the line to use the default order", s.Name, loc)
				continue
			}
			c.validateOrder(file, errs, at+"."+loc, s.Name, "location "+loc, order, svcNodes(s))
		}
	}
}

// IPv4-mapped IPv6 prefixes are folded to IPv4 so one table serves both.
func unmapBits(p netip.Prefix) int {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return 96
	}
	return 0
}

func buildLocTable(locs []LocationConfig) (t *bart.Table[locMatch], maxBits4, maxBits6 int) {
	t = new(bart.Table[locMatch])
	for i, l := range locs {
		for _, p := range l.prefixes {
			t.Insert(p, locMatch{loc: i + 1, bits: p.Bits()})
			if p.Addr().Is4() {
				maxBits4 = max(maxBits4, p.Bits())
			} else {
				maxBits6 = max(maxBits6, p.Bits())
			}
		}
	}
	var nested []netip.Prefix
	for p := range t.All() {
		for q := range t.Subnets(p) {
			if q != p {
				nested = append(nested, p)
				break
			}
		}
	}
	for _, p := range nested {
		m, _ := t.Get(p)
		m.nested = true
		t.Insert(p, m)
	}
	return t, maxBits4, maxBits6
}

// Scope returns the ECS SCOPE PREFIX-LENGTH for an answer chosen for client
// subnet p by a LocatePrefix match of bits (-1: no location). RFC 7871 7.2.1:
// the scope must cover only addresses that get the same answer. That is the
// matched prefix, unless a more specific location sits inside it: then only
// the client's own subnet is safe, and if a location sits inside the client
// subnet itself, the answer holds for less than the subnet (scope > source).
func (s *Snapshot) Scope(p netip.Prefix, bits int) int {
	if v4, ok := unmapPrefix(p); ok {
		// LocatePrefix judged the IPv4 subnet; the scope is said in the
		// query's own family.
		return 96 + s.Scope(v4, bits)
	}
	src := p.Bits()
	if s.locTable == nil {
		return src
	}
	maxBits := s.locMaxBits6
	if p.Addr().Is4() {
		maxBits = s.locMaxBits4
	}
	if maxBits > src {
		// Rare (location prefixes longer than the client's subnet), so
		// the walk is not on the common path.
		inner := 0
		for q := range s.locTable.Subnets(p) {
			if q.Bits() > src {
				inner = max(inner, q.Bits())
			}
		}
		if inner > 0 {
			return inner
		}
	}
	if bits < 0 {
		return src
	}
	if m, ok := s.locTable.Get(netip.PrefixFrom(p.Addr(), bits).Masked()); ok && m.nested {
		return src
	}
	return min(bits, src)
}

// Locate returns the view index for a client address (0 when it is in no
// location) and the length of the prefix that matched (-1 when none).
func (s *Snapshot) Locate(addr netip.Addr) (loc, bits int) {
	if s.locTable == nil || !addr.IsValid() {
		return 0, -1
	}
	m, ok := s.locTable.Lookup(addr.Unmap())
	if !ok {
		return 0, -1
	}
	return m.loc, m.bits
}

// LocateMemo keeps Locate's last answer for a caller that asks about the
// same clients again and again: a UDP reader, whose queries come mostly
// from a few resolvers. It is keyed by the location table, which only a
// reload replaces, so it holds across the snapshots of health changes.
type LocateMemo struct {
	table     *bart.Table[locMatch]
	addr      netip.Addr
	loc, bits int
}

// LocateWith is Locate, answered from m when m holds addr's answer for
// this snapshot's locations; m then holds addr's.
func (s *Snapshot) LocateWith(m *LocateMemo, addr netip.Addr) (loc, bits int) {
	if s.locTable == nil {
		return 0, -1
	}
	if m.table == s.locTable && m.addr == addr {
		return m.loc, m.bits
	}
	loc, bits = s.Locate(addr)
	*m = LocateMemo{table: s.locTable, addr: addr, loc: loc, bits: bits}
	return loc, bits
}

// LocatePrefix is Locate for an EDNS Client Subnet: only locations that
// contain the whole client subnet match, so the answer holds for every
// client the resolver will give it to.
func (s *Snapshot) LocatePrefix(p netip.Prefix) (loc, bits int) {
	if s.locTable == nil {
		return 0, -1
	}
	p, _ = unmapPrefix(p)
	_, m, ok := s.locTable.LookupPrefixLPM(p)
	if !ok {
		return 0, -1
	}
	return m.loc, m.bits
}

// unmapPrefix returns the IPv4 subnet that an IPv4-mapped IPv6 subnet
// (::ffff:a.b.c.d/96+n) names, a.b.c.d/n, and true; any other prefix comes
// back unchanged. Locate already unmaps a packet's source, and a resolver
// may send its client's IPv4 subnet in this form: both must place the
// client in the same location (an IPv4 one), on every path, since every
// path asks LocatePrefix and Scope.
func unmapPrefix(p netip.Prefix) (netip.Prefix, bool) {
	if p.Bits() >= 96 && p.Addr().Is4In6() {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96), true
	}
	return p, false
}
