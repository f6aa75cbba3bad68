package zones

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	toml "github.com/pelletier/go-toml/v2"

	"github.com/failoverdns/failoverdns/health"
)

// NodeConfig is one [[node]]: a server of the cluster.
type NodeConfig struct {
	Name string `toml:"name"`
	// Address is Interface 2, the client-facing address: the only one ever
	// answered. One address per type, by design.
	Address  singleAddr `toml:"address"`
	Address6 singleAddr `toml:"address6"`
	// Replication is Interface 1, where the cluster replicates. Never
	// answered; kept so validation can catch the classic mistake of
	// publishing it.
	Replication  singleAddr  `toml:"replication"`
	Replication6 singleAddr  `toml:"replication6"`
	Check        CheckConfig `toml:"check"`

	addr, addr6 netip.Addr
}

// CheckConfig is a node's [node.check] table.
type CheckConfig struct {
	Type        health.CheckType `toml:"type"`
	Port        int              `toml:"port"`
	Path        string           `toml:"path"`
	Expect      []int            `toml:"expect"`
	Body        string           `toml:"body"`
	Host        string           `toml:"host"`
	CAFile      string           `toml:"ca_file"`
	Insecure    bool             `toml:"insecure"`
	MinValidity Duration         `toml:"min_validity"`
	Target      string           `toml:"target"`
	Interval    Duration         `toml:"interval"`
	Timeout     Duration         `toml:"timeout"`
	Rise        int              `toml:"rise"`
	Fall        int              `toml:"fall"`
}

// ServiceConfig is one [[service]].
type ServiceConfig struct {
	Name          string              `toml:"name"`
	TTL           *int                `toml:"ttl"`
	Policy        string              `toml:"policy"`
	Nodes         []string            `toml:"nodes"`
	Failback      Failback            `toml:"failback"`
	FailbackAfter *Duration           `toml:"failback_after"`
	WhenAllDown   AllDown             `toml:"when_all_down"`
	Locations     map[string][]string `toml:"locations"`
}

// singleAddr is an address field that explains, rather than just rejects, a
// list of addresses: several addresses for one node is round robin.
type singleAddr struct {
	s    string
	set  bool
	list int // > 0: the operator wrote a list; validation explains why not
	// bad is why the value is not an address at all (a number, a
	// table): validation reports it at the key's line, which the decoder
	// does not give an unmarshaler's error.
	bad string
}

// UnmarshalTOML accepts a list only so validation can refuse it with the
// node's own line and a reason (the decoder's position for a failing key in
// an array of tables is not the element's). data is the value as written
// (go-toml's unstable.Unmarshaler): nearly always a plain quoted address,
// taken as it is; anything else is decoded as a TOML value.
func (a *singleAddr) UnmarshalTOML(data []byte) error {
	if n := len(data); n >= 2 && data[0] == '"' && data[n-1] == '"' && bytes.IndexAny(data[1:n-1], "\\\"") < 0 {
		a.s, a.set = string(data[1:n-1]), true
		return nil
	}
	var v struct {
		V any `toml:"v"`
	}
	a.set = true
	if err := toml.Unmarshal(append([]byte("v = "), data...), &v); err != nil {
		a.bad = fmt.Sprintf("want an IP address in quotes, got %s", data)
		return nil
	}
	switch x := v.V.(type) {
	case string:
		a.s = x
	case []any:
		a.list = max(len(x), 1)
	default:
		a.bad = fmt.Sprintf("want an IP address in quotes, got %v", v.V)
	}
	return nil
}

// UnmarshalText is the fast decode's (parseConfigBytes): the value as
// text. A number or a boolean arrives as its digits or word, fails
// validation as an address, and sends the config to the exact decode,
// which uses UnmarshalTOML.
func (a *singleAddr) UnmarshalText(b []byte) error {
	a.s, a.set = string(b), true
	return nil
}

func (a singleAddr) String() string { return a.s }

// Service defaults.
const (
	DefaultServiceTTL    = 30
	DefaultFailbackAfter = 30 * time.Second
	DefaultInterval      = time.Second
	DefaultTimeout       = 800 * time.Millisecond
	DefaultRise          = 2
	DefaultFall          = 3
	DefaultMinValidity   = 72 * time.Hour
	// MaxQuietTTL: a service ttl above this gets a warning, since it is
	// how long a failed node can still be handed out by resolvers.
	MaxQuietTTL = 300
)

// Failback is a service's failback mode: whether it returns to a
// recovered higher node by itself.
type Failback string

// Failback modes.
const (
	FailbackAuto   Failback = "auto"
	FailbackManual Failback = "manual"
)

// AllDown is a service's when_all_down policy.
type AllDown string

// All-down policies.
const (
	AllDownKeep     AllDown = "keep"
	AllDownFirst    AllDown = "first"
	AllDownServfail AllDown = "servfail"
)

const roundRobinWhy = "failoverdns answers exactly one node at a time on purpose: clustered, session-bound servers (a client's session lives on the one node it talks to) break when clients are spread across nodes, and a resolver that caches several addresses spreads them. Use policy = \"failover\" (the first healthy node in the order of nodes), and [service.locations] to give each site its own primary"

func (c *Config) validateNodes(file string, errs *ErrorList) {
	seen := map[string]int{}
	defer c.checkInterfaceOverlap(file, errs)
	for i := range c.Nodes {
		n := &c.Nodes[i]
		at := elemPath("node", i)
		if n.Name == "" {
			errs.add(file, c.line(at), "node %d: name is missing", i+1)
			continue
		}
		if strings.ContainsAny(n.Name, " \t\"\\") {
			errs.add(file, c.line(at+".name"), "node name %q: use letters, digits, '-' and '_' only", n.Name)
		}
		if prev, ok := seen[n.Name]; ok {
			errs.add(file, c.line(at+".name"), "node %q is defined twice (first as node %d): node names must be unique", n.Name, prev+1)
		}
		seen[n.Name] = i
		n.addr = c.parseNodeAddr(file, errs, at+".address", n.Name, "address", n.Address, false)
		n.addr6 = c.parseNodeAddr(file, errs, at+".address6", n.Name, "address6", n.Address6, true)
		if !n.Address.set && !n.Address6.set {
			errs.add(file, c.line(at), "node %q has no address: set address (IPv4, answered as A) and/or address6 (IPv6, answered as AAAA), its client-facing Interface 2", n.Name)
		}
		for _, r := range []struct {
			key string
			v   singleAddr
		}{{"replication", n.Replication}, {"replication6", n.Replication6}} {
			if !r.v.set {
				continue
			}
			if r.v.bad != "" {
				errs.add(file, c.line(at+"."+r.key), "%s", r.v.bad)
				continue
			}
			if r.v.list > 0 {
				errs.add(file, c.line(at+"."+r.key), "node %q: %s must be one address, not a list", n.Name, r.key)
				continue
			}
			ra, err := netip.ParseAddr(r.v.s)
			ra = ra.Unmap()
			if err != nil {
				errs.add(file, c.line(at+"."+r.key), "node %q: %s %q is not an IP address", n.Name, r.key, r.v.s)
				continue
			}
			if ra == n.addr || ra == n.addr6 {
				errs.add(file, c.line(at+"."+r.key), "node %q: %s (Interface 1, the cluster's replication network) equals its client-facing address %s (Interface 2): clients must never be sent to the replication interface; set address to the Interface 2 address", n.Name, r.key, ra)
			}
		}
		c.validateCheck(file, errs, at, n)
	}
}

// replicationOwner names the node, and its key, a replication (Interface 1)
// address belongs to, and the node's client-facing addresses.
type replicationOwner struct {
	node, key   string
	addr, addr6 netip.Addr
}

// replicationOwners maps every node's replication addresses to their owner.
func (c *Config) replicationOwners() map[netip.Addr]replicationOwner {
	repl := map[netip.Addr]replicationOwner{}
	for _, n := range c.Nodes {
		for _, r := range []struct {
			key string
			v   singleAddr
		}{{"replication", n.Replication}, {"replication6", n.Replication6}} {
			if a, err := netip.ParseAddr(r.v.s); err == nil && r.v.list == 0 {
				repl[a.Unmap()] = replicationOwner{n.Name, r.key, n.addr, n.addr6}
			}
		}
	}
	return repl
}

// checkInterfaceOverlap refuses a client-facing address that is another
// node's replication (Interface 1) address: answering it would send clients
// onto the replication network.
func (c *Config) checkInterfaceOverlap(file string, errs *ErrorList) {
	repl := c.replicationOwners()
	for i, n := range c.Nodes {
		for _, k := range [...]struct {
			key string
			a   netip.Addr
		}{{"address", n.addr}, {"address6", n.addr6}} {
			if other, ok := repl[k.a]; ok && k.a.IsValid() && other.node != n.Name {
				errs.add(file, c.line(fmt.Sprintf("node[%d].%s", i, k.key)), "node %q: %s %s is node %q's replication address (Interface 1): clients must never be sent to a replication interface", n.Name, k.key, k.a, other.node)
			}
		}
	}
}

func (c *Config) parseNodeAddr(file string, errs *ErrorList, path, node, key string, v singleAddr, six bool) netip.Addr {
	if !v.set {
		return netip.Addr{}
	}
	if v.bad != "" {
		errs.add(file, c.line(path), "%s", v.bad)
		return netip.Addr{}
	}
	if v.list > 0 {
		errs.add(file, c.line(path), "node %q: %s is a list of %d addresses: a node has exactly one client-facing address per type, because answering several is round robin, which breaks session-bound clusters; make each address its own [[node]] and list them in the service's nodes, in priority order", node, key, v.list)
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(v.s)
	if err != nil || a.Zone() != "" {
		errs.add(file, c.line(path), "node %q: %s %q is not an IP address", node, key, v.s)
		return netip.Addr{}
	}
	a = a.Unmap()
	if six && !a.Is6() {
		errs.add(file, c.line(path), "node %q: address6 %q is IPv4; put it in address", node, v.s)
		return netip.Addr{}
	}
	if !six && !a.Is4() {
		errs.add(file, c.line(path), "node %q: address %q is IPv6; put it in address6", node, v.s)
		return netip.Addr{}
	}
	return a
}

func (c *Config) validateCheck(file string, errs *ErrorList, at string, n *NodeConfig) {
	ch := &n.Check
	cat := at + ".check"
	bad := func(key, format string, args ...any) {
		errs.add(file, c.line(cat+"."+key), "node %q check: "+format, append([]any{n.Name}, args...)...)
	}
	switch ch.Type {
	case "":
		errs.add(file, c.line(at), "node %q has no [node.check] type: add type = \"tcp\" (with port), \"http\", \"https\", \"tls\", or \"none\" for manual control only", n.Name)
		return
	case "tcp":
		if ch.Port == 0 {
			bad("port", "type tcp needs a port")
		}
	case "http":
		if ch.Port == 0 {
			ch.Port = 80
		}
	case "https", "tls":
		if ch.Port == 0 {
			ch.Port = 443
		}
	case "none":
	default:
		bad("type", "unknown type %q: want tcp, http, https, tls or none", ch.Type)
		return
	}
	if ch.Port < 0 || ch.Port > 65535 {
		bad("port", "port %d is out of range", ch.Port)
	}
	if ch.Type == "http" || ch.Type == "https" {
		if ch.Path == "" {
			ch.Path = "/"
		}
		if !strings.HasPrefix(ch.Path, "/") {
			bad("path", "path %q must start with /", ch.Path)
		}
		if len(ch.Expect) == 0 {
			ch.Expect = []int{200}
		}
		for _, s := range ch.Expect {
			if s < 100 || s > 599 {
				bad("expect", "status %d is not an HTTP status code", s)
			}
		}
	} else {
		for _, k := range [...]struct {
			key string
			set bool
		}{{"path", ch.Path != ""}, {"expect", len(ch.Expect) > 0}, {"body", ch.Body != ""}} {
			if k.set {
				bad(k.key, "%s applies to http and https checks only, not %s", k.key, ch.Type)
			}
		}
	}
	if ch.Insecure && ch.Type != "https" {
		bad("insecure", "insecure applies to https checks only; a tls check exists to verify the certificate")
	}
	if ch.CAFile != "" && ch.Type != "https" && ch.Type != "tls" {
		bad("ca_file", "ca_file applies to https and tls checks only")
	} else if ch.CAFile != "" {
		// Read now: a file that cannot be used would otherwise show up
		// only as this node failing every check.
		if err := checkCAFile(c.relPath(ch.CAFile)); err != nil {
			bad("ca_file", "ca_file %q (resolved to %s): %v; point it at a PEM file of the CA certificates that sign the node's certificate, or remove ca_file to use the system roots", ch.CAFile, c.relPath(ch.CAFile), err)
		}
	}
	if ch.Target != "" {
		if _, err := netip.ParseAddr(ch.Target); err != nil {
			bad("target", "target %q is not an IP address", ch.Target)
		}
	}
	if ch.Interval.Duration == 0 {
		ch.Interval.Duration = DefaultInterval
	}
	if ch.Timeout.Duration == 0 {
		ch.Timeout.Duration = min(DefaultTimeout, ch.Interval.Duration)
	} else if ch.Timeout.Duration >= ch.Interval.Duration {
		// One probe per node runs at a time: a probe that hangs for the
		// whole timeout delays the next, so detection takes longer than
		// fall x interval.
		c.warnings.add(file, c.line(cat+".timeout"), "node %q check: timeout %s is not shorter than interval %s: a node that stops answering is probed only once per timeout, so it is marked down after fall x timeout, later than fall x interval; set timeout below interval (e.g. 80%% of it)", n.Name, ch.Timeout.Duration, ch.Interval.Duration)
	}
	if ch.Interval.Duration < 10*time.Millisecond {
		bad("interval", "interval %s is too short (at least 10ms)", ch.Interval.Duration)
	}
	if ch.Rise == 0 {
		ch.Rise = DefaultRise
	}
	if ch.Fall == 0 {
		ch.Fall = DefaultFall
	}
	if ch.Rise < 1 || ch.Fall < 1 {
		bad("rise", "rise and fall must be at least 1")
	}
	if ch.MinValidity.Duration == 0 {
		ch.MinValidity.Duration = DefaultMinValidity
	}
}

func (c *Config) validateServices(file string, errs *ErrorList) {
	nodes := map[string]bool{}
	for _, n := range c.Nodes {
		nodes[n.Name] = true
	}
	seen := make(map[string]int, len(c.Services))
	for i := range c.Services {
		s := &c.Services[i]
		at := elemPath("service", i)
		if !c.uniqueName(file, errs, "service", i, "name", "keys.example.com.", &s.Name, seen) {
			continue
		}
		switch strings.ToLower(s.Policy) {
		case "", "failover", "ordered", "first-alive":
			s.Policy = "failover"
		case "round-robin", "roundrobin", "rr", "random", "weighted", "ratio", "all", "multi":
			errs.add(file, c.line(at+".policy"), "service %s: policy %q is refused: %s", s.Name, s.Policy, roundRobinWhy)
		default:
			errs.add(file, c.line(at+".policy"), "service %s: unknown policy %q: the only policy is \"failover\" (aliases \"ordered\", \"first-alive\"). %s", s.Name, s.Policy, roundRobinWhy)
		}
		if s.TTL == nil {
			ttl := DefaultServiceTTL
			s.TTL = &ttl
		} else if *s.TTL < 0 || *s.TTL > 86400 {
			errs.add(file, c.line(at+".ttl"), "service %s: ttl %d must be 0 to 86400 seconds (short TTLs make failover reach clients sooner)", s.Name, *s.TTL)
		} else if *s.TTL > MaxQuietTTL {
			c.warnings.add(file, c.line(at+".ttl"), "service %s: ttl %d is large: resolvers keep handing out a node for up to %d s after it fails, so a failover reaches clients that late; use %d (the default) or less", s.Name, *s.TTL, *s.TTL, DefaultServiceTTL)
		}
		if len(s.Nodes) == 0 {
			errs.add(file, c.line(at), "service %s: nodes is empty: list the [[node]] names in priority order", s.Name)
		}
		c.validateOrder(file, errs, at+".nodes", s.Name, "nodes", s.Nodes, nodes)
		switch s.Failback {
		case "":
			s.Failback = FailbackAuto
		case FailbackAuto, FailbackManual:
		default:
			errs.add(file, c.line(at+".failback"), "service %s: failback %q: want \"auto\" (return to a recovered higher-priority node after failback_after) or \"manual\"", s.Name, s.Failback)
		}
		if s.FailbackAfter == nil {
			s.FailbackAfter = &Duration{DefaultFailbackAfter}
		}
		switch s.WhenAllDown {
		case "":
			s.WhenAllDown = AllDownKeep
		case AllDownKeep, AllDownFirst, AllDownServfail:
		default:
			errs.add(file, c.line(at+".when_all_down"), "service %s: when_all_down %q: want \"keep\" (the last active node), \"first\" (the first in order) or \"servfail\"", s.Name, s.WhenAllDown)
		}
	}
}

// validateOrder checks one ordered node list: known names, no repeats.
func (c *Config) validateOrder(file string, errs *ErrorList, path, service, what string, order []string, nodes map[string]bool) {
	for j, name := range order {
		if !nodes[name] {
			if what == "nodes" || !slices.ContainsFunc(c.Nodes, func(n NodeConfig) bool { return n.Name == name }) {
				errs.add(file, c.line(path), "service %s: %s lists %q, which is not a [[node]] (known: %s)", service, what, name, strings.Join(sortedKeys(nodes), ", "))
			} else {
				errs.add(file, c.line(path), "service %s: %s lists %q, which is not one of this service's nodes (%s): a location order may only reorder or subset the service's nodes", service, what, name, strings.Join(sortedKeys(nodes), ", "))
			}
		}
		if slices.Index(order, name) != j {
			errs.add(file, c.line(path), "service %s: %s lists %q twice: each node appears once, in priority order", service, what, name)
		}
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// HealthSpecs turns every node's check into a prober spec. The name a
// certificate must be valid for (and the HTTP Host) is the check's host, else
// the first service that lists the node.
func (c *Config) HealthSpecs() map[string]health.Spec {
	hostOf := map[string]string{}
	for _, s := range c.Services {
		for _, n := range s.Nodes {
			if _, ok := hostOf[n]; !ok {
				hostOf[n] = strings.TrimSuffix(s.Name, ".")
			}
		}
	}
	out := make(map[string]health.Spec, len(c.Nodes))
	for _, n := range c.Nodes {
		ch := n.Check
		target := n.probeTarget()
		host := ch.Host
		if host == "" {
			host = hostOf[n.Name]
		}
		var answers []netip.Addr
		for _, a := range []netip.Addr{n.addr, n.addr6} {
			if a.IsValid() {
				answers = append(answers, a)
			}
		}
		out[n.Name] = health.Spec{
			Answers:     answers,
			Type:        ch.Type,
			Addr:        target,
			Port:        uint16(ch.Port),
			Path:        ch.Path,
			Host:        host,
			Expect:      ch.Expect,
			Body:        ch.Body,
			CAFile:      c.relPath(ch.CAFile),
			Insecure:    ch.Insecure,
			MinValidity: ch.MinValidity.Duration,
			Interval:    ch.Interval.Duration,
			Timeout:     ch.Timeout.Duration,
			Rise:        ch.Rise,
			Fall:        ch.Fall,
			Source:      c.Server.probeSource,
		}
	}
	c.anchorSpecs(out)
	return out
}

// probeTarget is the address n's check connects to: check.target, else the
// IPv4 address, else the IPv6 one.
func (n *NodeConfig) probeTarget() netip.Addr {
	if n.Check.Target != "" {
		a, _ := netip.ParseAddr(n.Check.Target)
		return a.Unmap()
	}
	if n.addr.IsValid() {
		return n.addr
	}
	return n.addr6
}

// validateProbeSource refuses a probe_source that some node's check could
// not leave from: a socket of one address family cannot reach the other,
// and every probe of that node would fail.
func (c *Config) validateProbeSource(file string, errs *ErrorList) {
	src := c.Server.probeSource
	if !src.IsValid() {
		return
	}
	var across []string
	for _, n := range c.Nodes {
		t := n.probeTarget()
		if n.Check.Type == "none" || n.Check.Type == "" || !t.IsValid() || t.Is4() == src.Is4() {
			continue
		}
		across = append(across, fmt.Sprintf("%s at %s", n.Name, t))
	}
	if len(across) == 0 {
		return
	}
	fam, other := "IPv4", "IPv6"
	if src.Is6() {
		fam, other = other, fam
	}
	errs.add(file, c.line("server.probe_source"), "server.probe_source %s is %s, but nodes are checked at %s addresses (%s): a probe cannot cross address families; set probe_source to an %s address, or give those nodes a check.target of %s, or remove probe_source",
		src, fam, other, strings.Join(across, ", "), other, fam)
}
