package zones

import (
	"net/netip"
	"strings"
	"time"

	"github.com/failoverdns/failoverdns/health"
)

// Anchors ([server] anchors) are reference targets the prober checks like
// nodes: when they fail together with the nodes, the prober itself is cut
// off, and node states are held (health.Guard). Their probe names start
// with a space-containing prefix no node name can have.
const anchorPrefix = "anchor "

// AnchorName is the probe name of the anchor at addr.
func AnchorName(addr netip.AddrPort) string { return anchorPrefix + addr.String() }

// IsAnchor reports whether a probe name is an anchor's.
func IsAnchor(name string) bool { return strings.HasPrefix(name, anchorPrefix) }

func (c *Config) validateAnchors(file string, errs *ErrorList) {
	for i, a := range c.Server.Anchors {
		ap, err := netip.ParseAddrPort(a)
		if err != nil || ap.Port() == 0 {
			errs.add(file, c.line("server.anchors"), "server.anchors[%d] %q: want an IP address and a TCP port that answers when this prober's network works, e.g. \"192.0.2.53:53\" (your resolver or router) or \"[2001:db8::53]:53\"", i, a)
			continue
		}
		c.Server.anchors = append(c.Server.anchors, ap)
	}
}

// anchorSpecs probes each anchor with a tcp connect, as often as the most
// frequently probed node, judged on every probe (rise 1, fall 1): each
// anchor result that flips is a state change the engine hears of, so a
// hold starts and ends with the anchors' own probes, and the prober knows
// it is cut off before it could judge a node down.
func (c *Config) anchorSpecs(out map[string]health.Spec) {
	if len(c.Server.anchors) == 0 {
		return
	}
	interval, timeout := DefaultInterval, DefaultTimeout
	for i, n := range c.Nodes {
		ch := n.Check
		if i == 0 || ch.Interval.Duration < interval {
			interval = ch.Interval.Duration
		}
		if i == 0 || ch.Timeout.Duration < timeout {
			timeout = ch.Timeout.Duration
		}
	}
	interval, timeout = max(interval, 10*time.Millisecond), max(timeout, time.Millisecond)
	for _, a := range c.Server.anchors {
		out[AnchorName(a)] = health.Spec{Type: health.TypeTCP, Addr: a.Addr(), Port: a.Port(), Interval: interval, Timeout: timeout, Rise: 1, Fall: 1, Source: c.Server.probeSource}
	}
}

// guard splits the anchors from the probed states and applies health.Guard.
func guard(all map[string]health.State) (map[string]health.State, health.Isolation) {
	var nodes, anchors map[string]health.State
	for name, st := range all {
		if IsAnchor(name) {
			if anchors == nil {
				anchors = map[string]health.State{}
				nodes = make(map[string]health.State, len(all))
				for n, s := range all {
					if !IsAnchor(n) {
						nodes[n] = s
					}
				}
			}
			anchors[name] = st
		}
	}
	if anchors == nil {
		return all, health.Isolation{}
	}
	return health.Guard(nodes, anchors)
}
