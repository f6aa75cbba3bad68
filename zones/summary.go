package zones

import (
	"fmt"
	"strings"
)

// Summary describes a loaded snapshot for `failoverdns check`.
func Summary(s *Snapshot) string {
	var b strings.Builder
	c := s.Config
	fmt.Fprintf(&b, "config %s: OK\n", c.File)
	var listen []string
	for _, l := range c.Server.Listen {
		addrs, _ := ResolveListen(l) // validated
		for _, a := range addrs {
			listen = append(listen, fmt.Sprintf("%s (%s)", a, familyName(a)))
		}
	}
	fmt.Fprintf(&b, "listen: %s, udp+tcp, EDNS payload %d\n", strings.Join(listen, ", "), c.Server.UDPSize)
	fmt.Fprintf(&b, "zones: %d\n", len(s.Zones))
	for _, z := range s.Zones {
		fmt.Fprintf(&b, "  %s  %s  serial %d, %d records, %d names\n", z.Origin, z.File, z.SOA.Serial, z.RecordsLen, len(z.nodes))
	}
	if src := c.Server.probeSource; src.IsValid() {
		fmt.Fprintf(&b, "nodes: %d, probed from %s\n", len(c.Nodes), src)
	} else {
		fmt.Fprintf(&b, "nodes: %d\n", len(c.Nodes))
	}
	for _, n := range c.Nodes {
		addrs := []string{}
		for _, a := range []singleAddr{n.Address, n.Address6} {
			if a.set {
				addrs = append(addrs, a.s)
			}
		}
		fmt.Fprintf(&b, "  %s  %s  check %s\n", n.Name, strings.Join(addrs, " "), n.Check.Type)
	}
	fmt.Fprintf(&b, "locations: %d\n", len(c.Locations))
	for _, l := range c.Locations {
		fmt.Fprintf(&b, "  %s  %d subnets\n", l.Name, len(l.prefixes))
	}
	fmt.Fprintf(&b, "services: %d\n", len(s.Services))
	for _, svc := range s.Services {
		sc := svc.Config
		fmt.Fprintf(&b, "  %s  ttl %d  %s [%s]  failback %s after %s  when_all_down %s\n",
			svc.Name, *sc.TTL, sc.Policy, strings.Join(sc.Nodes, " "), sc.Failback, sc.FailbackAfter.Duration, sc.WhenAllDown)
		for _, l := range c.Locations {
			if order, ok := sc.Locations[l.Name]; ok {
				fmt.Fprintf(&b, "    location %s: [%s]\n", l.Name, strings.Join(order, " "))
			}
		}
	}
	if n := len(s.staticPins); n > 0 {
		fmt.Fprintf(&b, "static pins: %d\n", n)
	}
	httpNets := "(admin_nets)"
	if c.Server.HTTPNets != nil {
		httpNets = strings.Join(c.Server.HTTPNets, " ")
	}
	fmt.Fprintf(&b, "tsig keys: %d; state_dir %s; admin_nets %s; http_nets %s\n", len(c.TSIG), c.Server.StateDir, strings.Join(c.Server.AdminNets, " "), httpNets)
	return b.String()
}
