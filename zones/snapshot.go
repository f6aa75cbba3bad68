package zones

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/gaissmai/bart"
	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/health"
)

// Snapshot is everything the query path needs, validated and immutable. A
// new one is built for every change (reload, health, pin) and published
// through an atomic pointer; a query reads exactly one.
type Snapshot struct {
	Config   *Config
	Zones    []*Zone    // sorted by origin, for stable summaries
	Services []*Service // sorted by name

	byOrigin  map[string]*Zone
	byService map[string]*Service
	nodes     map[string]*NodeConfig
	locTable  *bart.Table[locMatch]
	// The longest location prefix per family: an ECS subnet at least this
	// long cannot contain a location, which keeps Scope cheap.
	locMaxBits4, locMaxBits6 int

	// Filled by the engine: one answer set per (service, location), and
	// one overlay per location so a query picks its view with an index.
	staticPins map[PinKey]Pin
	dynPins    map[PinKey]Pin
	// dormantPins are the dynamic pins the config no longer matches.
	dormantPins map[PinKey]DormantPin

	states   []*svcState // by Service.index
	overlays []*overlay
	health   map[string]health.State
	// base is the snapshot from Build this one was derived from; gen,
	// parent and changed are described at Gen.
	base        *Snapshot
	gen, parent uint64
	changed     []int
	cluster     *Agreed
	// isolation is the anchors' verdict on the prober when decided.
	isolation health.Isolation
}

// Service is a configured service bound to its zone, with its node orders
// resolved: Orders[0] is the default order, Orders[i] the order for
// location i (nil when the service has none for it).
type Service struct {
	Name   string // canonical
	Config *ServiceConfig
	Zone   *Zone
	Orders [][]string

	localized bool // some location has its own order
	index     int  // in Snapshot.Services

	// recs holds, for each node of Config.Nodes (same index), the A and
	// AAAA records this service answers for it, made the first time a
	// decision picks the node and kept: decisions only pick among them,
	// and the fast path keys its templates by their identity. Most
	// services only ever answer one or two of their nodes; every node's
	// records made at load were a sixth of the memory of 100,000
	// services. addrs is the snapshot's (nil for a node the config lacks,
	// which validation reports), shared by every service.
	recs  []atomic.Pointer[nodeRRs]
	addrs map[string]*nodeAddrs
	// ramped holds the same records with the TTLs of a countdown to a
	// scheduled switch (rampKey → nodeRRs), made once each: at most
	// ttl of them per node, and the fast path keys its templates by them.
	// Made with the first countdown: few services ever have one.
	ramped atomic.Pointer[sync.Map]
}

// nodeAddrs are a node's addresses as the records carry them, made once
// per snapshot and shared by the records of every service.
type nodeAddrs struct{ a, aaaa net.IP }

type rampKey struct {
	node string
	ttl  uint32
}

// records are the node's A and AAAA records with TTL ttl (0: the service's),
// nil when the service has no such node.
func (svc *Service) records(node string, ttl uint32) *nodeRRs {
	i := slices.Index(svc.Config.Nodes, node)
	if i < 0 || i >= len(svc.recs) {
		return nil
	}
	full := ttl == 0 || ttl >= uint32(*svc.Config.TTL)
	if full {
		if r := svc.recs[i].Load(); r != nil {
			return r
		}
	}
	ad := svc.addrs[node]
	if ad == nil {
		return nil
	}
	if full {
		r := nodeRecords(svc.Name, uint32(*svc.Config.TTL), ad)
		if !svc.recs[i].CompareAndSwap(nil, r) {
			return svc.recs[i].Load() // made meanwhile: one identity
		}
		return r
	}
	m := svc.ramped.Load()
	if m == nil {
		svc.ramped.CompareAndSwap(nil, new(sync.Map))
		m = svc.ramped.Load()
	}
	k := rampKey{node, ttl}
	if r, ok := m.Load(k); ok {
		return r.(*nodeRRs)
	}
	r, _ := m.LoadOrStore(k, nodeRecords(svc.Name, ttl, ad))
	return r.(*nodeRRs)
}

type nodeRRs struct{ a, aaaa []dns.RR }

// answerSet is a view's answer: the records of its node (nil: none), or
// SERVFAIL.
type answerSet struct {
	rrs      *nodeRRs
	servfail bool
}

// Load reads the config at path and every zone it names, validates them all,
// and returns the snapshot or every problem found.
func Load(path string) (*Snapshot, error) { return LoadContext(context.Background(), path) }

// LoadContext is Load that gives up when ctx ends (a reload that shutdown
// cancels). Every file is read as readFile says: regular, bounded in size
// and time.
func LoadContext(ctx context.Context, path string) (*Snapshot, error) {
	cfg, err := parseConfig(ctx, path)
	if err != nil {
		return nil, err
	}
	return build(ctx, cfg, path)
}

// LoadReusing is Load for a reload: when the config file holds exactly the
// bytes prev was decoded from, decoding and validating it again would give
// the same result, so only the zone files are read and checked again (the
// common reload: a zone edited, its serial bumped). The new snapshot gets
// its own copy of the config, so nothing keyed on the config's identity
// (precomputed answers) is reused by mistake.
func LoadReusing(path string, prev *Config) (*Snapshot, error) {
	return LoadReusingContext(context.Background(), path, prev)
}

// LoadReusingContext is LoadReusing that gives up when ctx ends.
func LoadReusingContext(ctx context.Context, path string, prev *Config) (*Snapshot, error) {
	if prev == nil {
		return LoadContext(ctx, path)
	}
	abs, err := filepath.Abs(path)
	if err != nil || abs != prev.File {
		return LoadContext(ctx, path)
	}
	src, err := readFile(ctx, abs)
	if err != nil || sha256.Sum256(src) != prev.srcHash {
		return LoadContext(ctx, path)
	}
	cfg := *prev
	cfg.src, cfg.lines = src, nil
	return build(ctx, &cfg, path)
}

// Build loads the zones of an already parsed config. display is the config
// path as the operator wrote it, used in messages.
func Build(cfg *Config, display string) (*Snapshot, error) {
	return build(context.Background(), cfg, display)
}

func build(ctx context.Context, cfg *Config, display string) (*Snapshot, error) {
	defer func() { cfg.src = nil }() // the last use of line numbers
	var errs ErrorList
	s := &Snapshot{Config: cfg, byOrigin: map[string]*Zone{}}
	for i, zc := range cfg.Zones {
		// Zone files are named by their resolved path in every message, so
		// the operator sees which file was read whatever the working folder.
		path := cfg.ZonePath(zc)
		z, rerr, err := readParseZone(ctx, zc.Origin, path)
		if rerr != nil {
			errs.add(display, cfg.line(fmt.Sprintf("zone[%d].file", i)), "zone %s: cannot read file %q (resolved to %s): %v; fix the path (relative paths are relative to this config's folder)",
				zc.Origin, zc.File, path, unwrapPathErr(rerr))
			continue
		}
		if err != nil {
			var l ErrorList
			var e *Error
			switch {
			case errors.As(err, &l):
				errs = append(errs, l...)
			case errors.As(err, &e):
				errs = append(errs, e)
			default:
				errs = append(errs, &Error{File: path, Msg: err.Error()})
			}
			continue
		}
		s.Zones = append(s.Zones, z)
		s.byOrigin[z.Origin] = z
	}
	if len(errs) > 0 {
		return nil, errs
	}
	sort.Slice(s.Zones, func(i, j int) bool { return s.Zones[i].Origin < s.Zones[j].Origin })
	s.checkReplicationAnswers(&errs)
	s.bindServices(display, &errs)
	if len(errs) == 0 {
		s.bindStaticPins(&errs)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return s.withDecisions(), nil
}

// AddrOf is the address an A or AAAA record carries; false for any other
// record.
func AddrOf(rr dns.RR) (a netip.Addr, ok bool) {
	switch v := rr.(type) {
	case *dns.A:
		a, ok = netip.AddrFromSlice(v.A.To4())
	case *dns.AAAA:
		a, ok = netip.AddrFromSlice(v.AAAA.To16())
	}
	return a, ok
}

// checkReplicationAnswers applies the Interface 1 rule to every zone: no
// static A or AAAA record, glue and wildcards included, may answer a node's
// replication address, or the zone would send clients onto the replication
// network that services never hand out.
func (s *Snapshot) checkReplicationAnswers(errs *ErrorList) {
	repl := s.Config.replicationOwners()
	if len(repl) == 0 {
		return
	}
	for _, z := range s.Zones {
		var found ErrorList
		for name, n := range z.nodes {
			for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
				for _, rr := range n.RRs(t) {
					a, _ := AddrOf(rr)
					owner, ok := repl[a.Unmap()]
					if !ok {
						continue
					}
					fix, mine := "", owner.addr
					if t == dns.TypeAAAA {
						mine = owner.addr6
					}
					if mine.IsValid() {
						fix = fmt.Sprintf(" (node %q's is %s)", owner.node, mine)
					}
					found.add(z.File, n.line(t), "%s %s %s is node %q's %s address (Interface 1): clients must never be sent to a replication interface; remove the record, or give it a client-facing (Interface 2) address%s",
						name, dns.TypeToString[t], a.Unmap(), owner.node, owner.key, fix)
				}
			}
		}
		sort.SliceStable(found, func(i, j int) bool { return found[i].Line < found[j].Line })
		*errs = append(*errs, found...)
	}
}

// bindServices attaches each service to its zone and precomputes its records.
func (s *Snapshot) bindServices(file string, errs *ErrorList) {
	cfg := s.Config
	s.byService = make(map[string]*Service, len(cfg.Services))
	s.nodes = make(map[string]*NodeConfig, len(cfg.Nodes))
	addrs := make(map[string]*nodeAddrs, len(cfg.Nodes))
	for i := range cfg.Nodes {
		n := &cfg.Nodes[i]
		s.nodes[n.Name] = n
		ad := &nodeAddrs{}
		if n.addr.IsValid() {
			ad.a = n.addr.AsSlice()
		}
		if n.addr6.IsValid() {
			ad.aaaa = n.addr6.AsSlice()
		}
		addrs[n.Name] = ad
	}
	// Without locations, services with the same order share Orders too.
	defaultOnly := map[*string][][]string{}
	// Services with the same order share one slice: the engine decides
	// such views once per recompute (decider.decideMemo).
	orders := map[string][]string{}
	var last []string // the order interned last: consecutive services often share it
	intern := func(o []string) []string {
		if last != nil && slices.Equal(o, last) {
			return last
		}
		k := strings.Join(o, "\x00")
		if c, ok := orders[k]; ok {
			last = c
			return c
		}
		orders[k] = o
		last = o
		return o
	}
	for i := range cfg.Services {
		sc := &cfg.Services[i]
		at := func() string { return elemPath("service", i) + ".name" } // for messages only
		z := s.FindZone(sc.Name)
		if z == nil {
			errs.add(file, cfg.line(at()), "service %s is outside every configured zone (%s): add its zone as a [[zone]] or fix the name", sc.Name, strings.Join(s.origins(), ", "))
			continue
		}
		if z.insideCut(sc.Name) {
			errs.add(file, cfg.line(at()), "service %s is at or below a delegation in zone %s: the child zone's servers answer it, not this one", sc.Name, z.Origin)
			continue
		}
		if n := z.nodes[sc.Name]; n != nil {
			for _, t := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeCNAME} {
				if n.Has(t) {
					errs.add(file, cfg.line(at()), "service %s also has a static %s record in %s: the service answers A/AAAA itself; remove the static record from the zone file", sc.Name, dns.TypeToString[t], z.File)
				}
			}
		}
		z.node(sc.Name) // the name exists, and so do its empty non-terminals
		svc := &Service{Name: sc.Name, Config: sc, Zone: z, recs: make([]atomic.Pointer[nodeRRs], len(sc.Nodes)), addrs: addrs}
		def := intern(sc.Nodes)
		if shared := defaultOnly[unsafe.SliceData(def)]; shared != nil && len(cfg.Locations) == 0 {
			svc.Orders = shared // read only, as every order
		} else {
			svc.Orders = make([][]string, 1+len(cfg.Locations))
			svc.Orders[0] = def
			if len(cfg.Locations) == 0 && len(def) > 0 {
				defaultOnly[unsafe.SliceData(def)] = svc.Orders
			}
		}
		for li, l := range cfg.Locations {
			if order, ok := sc.Locations[l.Name]; ok {
				svc.Orders[li+1] = intern(order)
				svc.localized = true
			}
		}
		s.Services = append(s.Services, svc)
		s.byService[sc.Name] = svc
	}
	// Sorted by name through a slice of the names beside the services:
	// comparing pointed-to services misses the cache at every step.
	byName := make([]namedService, len(s.Services))
	for i, svc := range s.Services {
		byName[i] = namedService{svc.Name, svc}
	}
	slices.SortFunc(byName, func(a, b namedService) int { return strings.Compare(a.name, b.name) })
	for i := range byName {
		s.Services[i] = byName[i].svc
	}
	for i, svc := range s.Services {
		svc.index = i
	}
	if len(cfg.Locations) > 0 {
		s.locTable, s.locMaxBits4, s.locMaxBits6 = buildLocTable(cfg.Locations)
	}
}

type namedService struct {
	name string
	svc  *Service
}

// Localized reports whether the answer depends on the client's location.
func (svc *Service) Localized() bool { return svc.localized }

func nodeRecords(name string, ttl uint32, ad *nodeAddrs) *nodeRRs {
	r := &nodeRRs{}
	if ad.a != nil {
		r.a = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: ad.a}}
	}
	if ad.aaaa != nil {
		r.aaaa = []dns.RR{&dns.AAAA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: ttl}, AAAA: ad.aaaa}}
	}
	return r
}

func (s *Snapshot) origins() []string {
	out := make([]string, len(s.Zones))
	for i, z := range s.Zones {
		out[i] = z.Origin
	}
	return out
}

// svcState is one service's decided views and the answers they give. A
// snapshot shares the states of the services a change did not touch with
// the snapshot it was derived from, so a health change costs what it
// changes, not the size of the config.
type svcState struct {
	decided []Decision // per location
	has     []bool     // decided[loc] was decided (else it follows the default view)
	sets    []answerSet
}

// gens numbers snapshots, so a consumer that keeps derived state (the fast
// path's table, metrics) can tell whether a snapshot follows the one it
// built from and rebuild only what changed.
var gens atomic.Uint64

// withDecisions returns a copy of s before any decision: every service
// answers its first node (a snapshot from Build, for check and the first
// moments of a start).
func (s *Snapshot) withDecisions() *Snapshot {
	cur := make([]*svcState, len(s.Services))
	for i, svc := range s.Services {
		st := newSvcState(s.LocationCount())
		svc.fillAnswers(st)
		cur[i] = st
	}
	return s.derive(nil, nil, cur, nil)
}

// derive returns a copy of base (a snapshot from Build) answering per cur,
// the engine's states by service index (a nil entry: not decided). With
// prev (the snapshot the engine published last), dirty lists the services
// whose states differ from it, for consumers that rebuild only those.
func (s *Snapshot) derive(prev *Snapshot, dirty []int, cur []*svcState, h map[string]health.State) *Snapshot {
	cp := *s
	cp.health = h
	cp.gen = gens.Add(1)
	nloc := s.LocationCount()
	cp.states = make([]*svcState, len(s.Services))
	for i, st := range cur {
		if st == nil {
			st = newSvcState(nloc)
			s.Services[i].fillAnswers(st)
		}
		cp.states[i] = st
	}
	if prev != nil && prev.base == s && len(prev.states) == len(s.Services) {
		cp.parent, cp.changed = prev.gen, dirty
	} else {
		cp.parent, cp.changed = 0, nil
	}
	cp.base = s
	cp.overlays = make([]*overlay, nloc)
	for i := range cp.overlays {
		cp.overlays[i] = &overlay{snap: &cp, loc: i}
	}
	return &cp
}

func newSvcState(nloc int) *svcState {
	if nloc == 1 {
		// One allocation for the common case (no locations).
		b := &struct {
			svcState
			d [1]Decision
			h [1]bool
			s [1]answerSet
		}{}
		b.decided, b.has, b.sets = b.d[:], b.h[:], b.s[:]
		return &b.svcState
	}
	return &svcState{decided: make([]Decision, nloc), has: make([]bool, nloc), sets: make([]answerSet, nloc)}
}

// fillAnswers sets st's answers from its decisions: a location without a
// decision of its own follows the default view.
func (svc *Service) fillAnswers(st *svcState) {
	for loc := range st.sets {
		d := st.decided[loc]
		if !st.has[loc] && loc > 0 {
			d = st.decided[0]
		}
		switch {
		case d.Servfail:
			st.sets[loc] = answerSet{servfail: true}
		case d.Active != "":
			st.sets[loc] = answerSet{rrs: svc.records(d.Active, d.TTL)}
		default:
			// Not decided yet (before the engine ran): the first node,
			// as when_all_down = first would.
			st.sets[loc] = answerSet{rrs: svc.records(svc.Config.Nodes[0], 0)}
		}
	}
}

// viewKey names view loc of svc.
func (s *Snapshot) viewKey(svc *Service, loc int) PinKey {
	k := PinKey{Service: svc.Name}
	if loc > 0 {
		k.Location = s.LocationName(loc)
	}
	return k
}

// built returns the snapshot from Build that s was derived from (s when
// it is one). The engine keeps that as its base, not the snapshot Load
// returned: the latter's first-node answers (one state per service) would
// otherwise stay alive as long as the config.
func (s *Snapshot) built() *Snapshot {
	if s.base != nil {
		return s.base
	}
	return s
}

// Gen numbers the snapshot; Derived reports the snapshot it was derived
// from and the indexes (into Services) of the services whose views differ
// from it. ok is false when it was built afresh (every service counts as
// changed).
func (s *Snapshot) Gen() uint64 { return s.gen }

// Derived is described at Gen.
func (s *Snapshot) Derived() (parent uint64, changed []int, ok bool) {
	return s.parent, s.changed, s.parent != 0
}

// Overlay returns the dynamic view for a location index (0: default).
func (s *Snapshot) Overlay(loc int) Overlay { return s.overlays[loc] }

// Service returns the service with canonical name, or nil.
func (s *Snapshot) Service(name string) *Service { return s.byService[name] }

// Node returns the node config by name, or nil.
func (s *Snapshot) Node(name string) *NodeConfig { return s.nodes[name] }

// DynamicPins returns the pins set by UPDATE that this snapshot answers with.
func (s *Snapshot) DynamicPins() map[PinKey]Pin { return s.dynPins }

// Isolation returns the anchors' verdict on the prober when the snapshot
// was decided.
func (s *Snapshot) Isolation() health.Isolation { return s.isolation }

// DormantPins returns the dynamic pins kept but not applied, because the
// config in force lacks their service, location or node. An UPDATE may
// delete one at its name (PinKey.Name); it applies again if the config
// matches it again.
func (s *Snapshot) DormantPins() map[PinKey]DormantPin { return s.dormantPins }

// DormantPinNamed returns the dormant pin whose _pin name is name.
func (s *Snapshot) DormantPinNamed(name string) (PinKey, DormantPin, bool) {
	for k, p := range s.dormantPins {
		if strings.EqualFold(k.Name(), dns.Fqdn(name)) {
			return k, p, true
		}
	}
	return PinKey{}, DormantPin{}, false
}

// HealthState returns the node states the answers were computed from.
func (s *Snapshot) HealthState() map[string]health.State { return s.health }

// Decision returns the decision for a service and location in this snapshot.
func (s *Snapshot) Decision(service string, loc int) (Decision, bool) {
	svc := s.byService[service]
	if svc == nil || loc < 0 || loc >= len(s.states[svc.index].has) {
		return Decision{}, false
	}
	st := s.states[svc.index]
	return st.decided[loc], st.has[loc]
}

type overlay struct {
	snap *Snapshot
	loc  int
}

func (o *overlay) RRset(name string, qtype uint16) ([]dns.RR, bool, bool) {
	svc, ok := o.snap.byService[name]
	if !ok {
		return nil, false, false
	}
	rrs, fail := o.snap.ServiceRRset(svc, o.loc, qtype)
	return rrs, true, fail
}

// ServiceRRset is Overlay(loc).RRset(svc.Name, qtype) for a service of s
// (one of s.Services), without looking its name up: the fast path's
// rebuild asks it for every service a failover moves.
func (s *Snapshot) ServiceRRset(svc *Service, loc int, qtype uint16) (rrs []dns.RR, servfail bool) {
	set := &s.states[svc.index].sets[loc]
	switch {
	case set.servfail:
		return nil, true
	case set.rrs == nil:
		return nil, false
	case qtype == dns.TypeAAAA:
		return set.rrs.aaaa, false
	}
	return set.rrs.a, false
}

// FindZone returns the most specific zone containing name (canonical form),
// or nil when the name is in none of ours.
func (s *Snapshot) FindZone(name string) *Zone {
	z, _, _ := ZoneOf(s.byOrigin, name)
	return z
}

// ZoneOf is the zone search: what m holds for the longest origin that ends
// name (canonical) at a label boundary, the root "." last, and where that
// origin starts in name. FindZone searches the snapshot's zones with it;
// the UDP fast path its own per-zone tables, with the name in bytes.
func ZoneOf[V any, T ~string | ~[]byte](m map[string]V, name T) (v V, at int, ok bool) {
	for i := 0; i < len(name); i++ {
		if v, ok := m[string(name[i:])]; ok {
			return v, i, true
		}
		for ; i < len(name) && name[i] != '.'; i++ {
			if name[i] == '\\' {
				i++ // an escaped character: "\." is not a label's end
			}
		}
	}
	v, ok = m["."]
	return v, max(len(name)-1, 0), ok
}

// Warnings returns what `check` (and the start log) should point out
// without refusing: risky config values, then zone findings.
func (s *Snapshot) Warnings() []string {
	var w []string
	for _, e := range s.Config.warnings {
		w = append(w, e.Error())
	}
	for _, z := range s.Zones {
		for _, m := range z.Warnings {
			w = append(w, z.File+": "+m)
		}
	}
	return w
}

// LocationCount is the number of views: the default plus one per location.
func (s *Snapshot) LocationCount() int { return 1 + len(s.Config.Locations) }

// LocationName names a view index for logs and status.
func (s *Snapshot) LocationName(loc int) string {
	if loc <= 0 || loc > len(s.Config.Locations) {
		return "default"
	}
	return s.Config.Locations[loc-1].Name
}
