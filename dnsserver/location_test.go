package dnsserver_test

// Acceptance tests for location-aware views (README "Configuration":
// locations and the active node): real servers on 127.0.0.1, clients bound to other loopback
// addresses (Linux routes all of 127/8 to lo), EDNS Client Subnet (RFC 7871)
// and per-location failover with real TCP health checks on 127.0.10.x.

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/dnsserver"
	"github.com/failoverdns/failoverdns/dnsserver/testenv"
	"github.com/failoverdns/failoverdns/zones"
)

const (
	locDeadline = 10 * time.Second // for anything that waits on health checks

	// Client source addresses. The server listens on 127.0.0.1.
	locEMEAClient  = "127.0.99.5" // in emea's 127.0.99.0/24
	locOtherClient = "127.0.1.5"  // in no location

	// Answered addresses (Interface 2) of the three nodes.
	locA1, locA2, locA3          = "192.0.2.11", "192.0.2.12", "192.0.2.13"
	locAAAA1, locAAAA2, locAAAA3 = "2001:db8::11", "2001:db8::12", "2001:db8::13"
)

// locNodesNone are three nodes whose check is "none": always up, nothing is
// ever probed.
const locNodesNone = `
[[node]]
name = "sems1"
address = "192.0.2.11"
address6 = "2001:db8::11"
[node.check]
type = "none"

[[node]]
name = "sems2"
address = "192.0.2.12"
address6 = "2001:db8::12"
[node.check]
type = "none"

[[node]]
name = "sems3"
address = "192.0.2.13"
address6 = "2001:db8::13"
[node.check]
type = "none"
`

// locBase: emea has its own primary for keys, a one-node subset for
// subset, and nothing for plain.
const locBase = locNodesNone + `
[[location]]
name = "emea"
subnets = ["127.0.99.0/24", "10.20.0.0/16", "2001:db8:20::/48"]

[[service]]
name = "keys.example.test."
ttl = 30
nodes = ["sems1", "sems2", "sems3"]
[service.locations]
emea = ["sems2", "sems1", "sems3"]

[[service]]
name = "subset.example.test."
ttl = 30
nodes = ["sems1", "sems2", "sems3"]
[service.locations]
emea = ["sems3"]

[[service]]
name = "plain.example.test."
ttl = 30
nodes = ["sems1", "sems2"]
`

// locNested: a /24 location inside a /16 one, for addresses and for ECS.
const locNested = locNodesNone + `
[[location]]
name = "emea"
subnets = ["10.20.0.0/16", "127.0.0.0/16"]

[[location]]
name = "lab"
subnets = ["10.20.3.0/24", "127.0.98.0/24"]

[[service]]
name = "keys.example.test."
ttl = 30
nodes = ["sems1", "sems2", "sems3"]
[service.locations]
emea = ["sems2", "sems1", "sems3"]
lab = ["sems3", "sems1"]
`

// locStart starts a full instance (prober, engine, UDP and TCP listeners on
// 127.0.0.1:0) serving the location zone with body (nodes, locations,
// services) and returns its address.
func locStart(t testing.TB, serverExtra, body string) string {
	t.Helper()
	return locStartConfig(t, testenv.Config{Server: serverExtra, Extra: body})
}

// locStartConfig is locStart with the config's tables given as c.
func locStartConfig(t testing.TB, c testenv.Config) string {
	t.Helper()
	c.Zones = []testenv.Zone{{Origin: "example.test.", File: testenv.Testdata(t, 1, "location", "example.test.zone")}}
	return start(t, c, dnsserver.Options{Version: "v0.0.0-location"}).Addr
}

// locECS is a well-formed ECS option for a prefix ("10.20.3.0/24").
func locECS(prefix string) *dns.EDNS0_SUBNET {
	p := netip.MustParsePrefix(prefix)
	e := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()}
	e.Family = 1
	if p.Addr().Is6() {
		e.Family = 2
	}
	return e
}

// locRawECS is an ECS option with exactly these bytes on the wire, to send
// what dns.EDNS0_SUBNET would refuse or repair when packing.
func locRawECS(family uint16, source, scope uint8, addr ...byte) *dns.EDNS0_LOCAL {
	b := binary.BigEndian.AppendUint16(nil, family)
	b = append(b, source, scope)
	b = append(b, addr...)
	return &dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: b}
}

// locAddress checks r is an authoritative NOERROR answer to name/qtype with
// exactly one address record after any CNAMEs, and returns that address.
// Services have ttl = 30; the zone's static www has TTL 300.
func locAddress(t testing.TB, r *dns.Msg, name string, qtype uint16) string {
	t.Helper()
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative {
		t.Fatalf("reply for %s: rcode %s, AA %v, want NOERROR and AA:\n%v", name, dns.RcodeToString[r.Rcode], r.Authoritative, r)
	}
	var addrs []dns.RR
	for _, rr := range r.Answer {
		if rr.Header().Rrtype == qtype {
			addrs = append(addrs, rr)
		} else if rr.Header().Rrtype != dns.TypeCNAME {
			t.Fatalf("reply for %s: unexpected %v", name, rr)
		}
	}
	if len(addrs) != 1 {
		t.Fatalf("reply for %s/%s: %d address records, want exactly one:\n%v", name, dns.TypeToString[qtype], len(addrs), r)
	}
	h := addrs[0].Header()
	ttl := uint32(30)
	if strings.HasPrefix(strings.ToLower(name), "www.") {
		ttl = 300
	}
	if h.Ttl != ttl || h.Class != dns.ClassINET {
		t.Errorf("reply for %s: %v, want TTL %d class IN", name, addrs[0], ttl)
	}
	if a, ok := zones.AddrOf(addrs[0]); ok {
		return a.String()
	}
	t.Fatalf("reply for %s: %v is not an address", name, addrs[0])
	return ""
}

// locReplyECS returns the reply's ECS option (nil when there is none). A
// reply with more than one is an error.
func locReplyECS(t testing.TB, r *dns.Msg) *dns.EDNS0_SUBNET {
	t.Helper()
	opt := r.IsEdns0()
	if opt == nil {
		return nil
	}
	var found *dns.EDNS0_SUBNET
	for _, o := range opt.Option {
		if e, ok := o.(*dns.EDNS0_SUBNET); ok {
			if found != nil {
				t.Fatalf("reply has two ECS options: %v", opt)
			}
			found = e
		}
	}
	return found
}

// locCheckECS checks the reply echoes the query's FAMILY, SOURCE and
// ADDRESS and carries the wanted SCOPE.
func locCheckECS(t testing.TB, r *dns.Msg, sent *dns.EDNS0_SUBNET, scope int) {
	t.Helper()
	e := locReplyECS(t, r)
	if e == nil {
		t.Fatalf("reply has no ECS option (query had %v):\n%v", sent, r)
	}
	if e.Family != sent.Family || e.SourceNetmask != sent.SourceNetmask || !e.Address.Equal(sent.Address) {
		t.Errorf("ECS echo FAMILY %d SOURCE %d ADDRESS %v, want %d %d %v", e.Family, e.SourceNetmask, e.Address, sent.Family, sent.SourceNetmask, sent.Address)
	}
	if int(e.SourceScope) != scope {
		t.Errorf("ECS SCOPE = %d, want %d (query %v)", e.SourceScope, scope, sent)
	}
}

// 1. Two clients, one in emea and one in no location, get different nodes
// for the same name at the same moment, over UDP and TCP.
func TestLocationBySourceAddress(t *testing.T) {
	srv := locStart(t, "", locBase)
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			for range 3 { // interleaved: both views are live at once
				for _, c := range []struct {
					local, name string
					qtype       uint16
					want        string
				}{
					{locEMEAClient, "keys.example.test.", dns.TypeA, locA2},
					{locOtherClient, "keys.example.test.", dns.TypeA, locA1},
					{locEMEAClient, "keys.example.test.", dns.TypeAAAA, locAAAA2},
					{locOtherClient, "keys.example.test.", dns.TypeAAAA, locAAAA1},
					{locEMEAClient, "KeYs.ExAmPlE.tEsT.", dns.TypeA, locA2}, // 0x20
					{locEMEAClient, "alias.example.test.", dns.TypeA, locA2},
					{locOtherClient, "alias.example.test.", dns.TypeA, locA1},
					{locEMEAClient, "subset.example.test.", dns.TypeA, locA3},
					{locOtherClient, "subset.example.test.", dns.TypeA, locA1},
					{locEMEAClient, "plain.example.test.", dns.TypeA, locA1},
					{"127.0.0.1", "keys.example.test.", dns.TypeA, locA1},
				} {
					r := testenv.MustExchange(t, network, c.local, srv, testenv.Query(c.name, c.qtype))
					if got := locAddress(t, r, c.name, c.qtype); got != c.want {
						t.Errorf("%s %s from %s: got %s, want %s", c.name, dns.TypeToString[c.qtype], c.local, got, c.want)
					}
					if r.IsEdns0() != nil {
						t.Errorf("reply to a query without EDNS has an OPT record")
					}
				}
			}
		})
	}
	// The same with both clients asking concurrently.
	var wg sync.WaitGroup
	for i := range 20 {
		local, want := locEMEAClient, locA2
		if i%2 == 1 {
			local, want = locOtherClient, locA1
		}
		wg.Go(func() {
			r, err := testenv.Exchange("udp", local, srv, testenv.Query("keys.example.test.", dns.TypeA))
			if err != nil {
				t.Error(err)
				return
			}
			if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != want {
				t.Errorf("concurrent query from %s: %v, want %s", local, r.Answer, want)
			}
		})
	}
	wg.Wait()
}

// 1 with the real dig: -b binds the client address.
func TestLocationDig(t *testing.T) {
	dig := testenv.Tool(t, "bind9-dnsutils", "dig")
	srv := locStart(t, "", locBase)
	host, port, _ := net.SplitHostPort(srv)
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		args = append([]string{"@" + host, "-p", port, "+time=5", "+tries=1"}, args...)
		cmd := exec.CommandContext(ctx, dig, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("dig %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.Bytes())
		}
		return string(out)
	}
	for _, c := range []struct {
		local, want string
	}{{locEMEAClient, locA2}, {locOtherClient, locA1}} {
		for _, tcp := range []string{"+notcp", "+tcp"} {
			out := run("-b", c.local, "keys.example.test", tcp, "+short")
			if strings.TrimSpace(out) != c.want {
				t.Errorf("dig -b %s keys.example.test %s +short = %q, want %q", c.local, tcp, out, c.want)
			}
		}
	}
	// dig +subnet: the location comes from ECS, and dig shows the scope
	// ("CLIENT-SUBNET: address/source/scope").
	out := run("-b", locOtherClient, "+norecurse", "+subnet=10.20.3.0/24", "keys.example.test", "A")
	if !regexp.MustCompile(`(?m)^keys\.example\.test\.\s+30\s+IN\s+A\s+192\.0\.2\.12$`).MatchString(out) {
		t.Errorf("dig +subnet=10.20.3.0/24: no answer 192.0.2.12:\n%s", out)
	}
	if !strings.Contains(out, "CLIENT-SUBNET: 10.20.3.0/24/16") {
		t.Errorf("dig +subnet=10.20.3.0/24: want CLIENT-SUBNET: 10.20.3.0/24/16 in:\n%s", out)
	}
	if !regexp.MustCompile(`flags: qr aa;`).MatchString(out) || !strings.Contains(out, "status: NOERROR") {
		t.Errorf("dig +subnet: want flags qr aa (no rd/ra) and NOERROR:\n%s", out)
	}
}

// locECSCase is one ECS query and what its reply must be.
type locECSCase struct {
	name    string
	network string // "" = udp
	local   string // "" = 127.0.0.1
	qname   string
	qtype   uint16
	ecs     *dns.EDNS0_SUBNET
	want    string // the address answered; "" for a non-address query
	scope   int    // the SCOPE wanted in the echo; -1: no ECS option in the reply
}

func (c locECSCase) run(t *testing.T, srv string) *dns.Msg {
	t.Helper()
	network, local := c.network, c.local
	if network == "" {
		network = "udp"
	}
	if local == "" {
		local = "127.0.0.1"
	}
	r := testenv.MustExchange(t, network, local, srv, testenv.Query(c.qname, c.qtype, c.ecs))
	if c.want != "" {
		if got := locAddress(t, r, c.qname, c.qtype); got != c.want {
			t.Errorf("%s %s from %s with ECS %v: got %s, want %s", c.qname, dns.TypeToString[c.qtype], local, c.ecs, got, c.want)
		}
	} else if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) == 0 {
		t.Errorf("%s %s: want an authoritative answer, got:\n%v", c.qname, dns.TypeToString[c.qtype], r)
	}
	if r.IsEdns0() == nil {
		t.Fatalf("reply to an EDNS query has no OPT record:\n%v", r)
	}
	if c.scope < 0 {
		if e := locReplyECS(t, r); e != nil {
			t.Errorf("reply has an ECS option %v, want none", e)
		}
	} else {
		locCheckECS(t, r, c.ecs, c.scope)
	}
	return r
}

// 2, 6. ECS decides over the packet source; the echo carries the scope of
// the location that matched.
func TestLocationECS(t *testing.T) {
	srv := locStart(t, "", locBase)
	cases := []locECSCase{
		{name: "emea subnet from 127.0.0.1", qname: "keys.example.test.", qtype: dns.TypeA, ecs: locECS("10.20.3.0/24"), want: locA2, scope: 16},
		{name: "emea subnet over tcp", network: "tcp", qname: "keys.example.test.", qtype: dns.TypeA, ecs: locECS("10.20.3.0/24"), want: locA2, scope: 16},
		{name: "emea subnet from a client in no location", local: locOtherClient, qname: "keys.example.test.", qtype: dns.TypeA, ecs: locECS("10.20.3.0/24"), want: locA2, scope: 16},
		{name: "emea /16 exactly", qname: "keys.example.test.", qtype: dns.TypeA, ecs: locECS("10.20.0.0/16"), want: locA2, scope: 16},
		{name: "emea /32", qname: "keys.example.test.", qtype: dns.TypeA, ecs: locECS("10.20.3.7/32"), want: locA2, scope: 16},
		{name: "emea 127.0.99.0/24 as ECS", qname: "keys.example.test.", qtype: dns.TypeA, ecs: locECS("127.0.99.0/24"), want: locA2, scope: 24},
		{name: "emea AAAA by IPv4 subnet", qname: "keys.example.test.", qtype: dns.TypeAAAA, ecs: locECS("10.20.3.0/24"), want: locAAAA2, scope: 16},
		// ECS wins over the source address, both ways.
		{name: "unmatched subnet from an emea client", local: locEMEAClient, qname: "keys.example.test.", qtype: dns.TypeA, ecs: locECS("192.0.2.0/24"), want: locA1, scope: 24},
		{name: "unmatched /20", qname: "keys.example.test.", qtype: dns.TypeA, ecs: locECS("198.51.96.0/20"), want: locA1, scope: 20},
		{name: "next to emea", qname: "keys.example.test.", qtype: dns.TypeA, ecs: locECS("10.21.0.0/24"), want: locA1, scope: 24},
		// A CNAME to a service is answered per location, with its scope.
		{name: "alias to keys", qname: "alias.example.test.", qtype: dns.TypeA, ecs: locECS("10.20.3.0/24"), want: locA2, scope: 16},
		// A location can list a subset of the service's nodes.
		{name: "subset service", qname: "subset.example.test.", qtype: dns.TypeA, ecs: locECS("10.20.3.0/24"), want: locA3, scope: 16},
		{name: "subset service unmatched", qname: "subset.example.test.", qtype: dns.TypeA, ecs: locECS("192.0.2.0/24"), want: locA1, scope: 24},
		// Answers that do not depend on the location: SCOPE 0.
		{name: "service without locations", qname: "plain.example.test.", qtype: dns.TypeA, ecs: locECS("10.20.3.0/24"), want: locA1, scope: 0},
		{name: "SOA", qname: "example.test.", qtype: dns.TypeSOA, ecs: locECS("10.20.3.0/24"), scope: 0},
		{name: "static A", qname: "www.example.test.", qtype: dns.TypeA, ecs: locECS("10.20.3.0/24"), want: "192.0.2.80", scope: 0},
		// SOURCE PREFIX-LENGTH 0: "use my address"; the packet source decides.
		{name: "source 0 from an emea client", local: locEMEAClient, qname: "keys.example.test.", qtype: dns.TypeA, ecs: locECS("0.0.0.0/0"), want: locA2, scope: 0},
		{name: "source 0 from a client in no location", local: locOtherClient, qname: "keys.example.test.", qtype: dns.TypeA, ecs: locECS("0.0.0.0/0"), want: locA1, scope: 0},
		{name: "source 0 over tcp", network: "tcp", local: locEMEAClient, qname: "keys.example.test.", qtype: dns.TypeA, ecs: locECS("0.0.0.0/0"), want: locA2, scope: 0},
		{name: "IPv6 source 0 from an emea client", local: locEMEAClient, qname: "keys.example.test.", qtype: dns.TypeA, ecs: locECS("::/0"), want: locA2, scope: 0},
		// An IPv4-mapped IPv6 subnet (::ffff:a.b.c.d/96+n) is the IPv4
		// subnet a.b.c.d/n, on the fast path (UDP) and the general one
		// (TCP); the SCOPE stays in the query's family: 96 + the IPv4 one.
		{name: "emea as IPv4-mapped", qname: "keys.example.test.", qtype: dns.TypeA, ecs: locECS("::ffff:10.20.3.0/120"), want: locA2, scope: 112},
		{name: "emea as IPv4-mapped over tcp", network: "tcp", local: locOtherClient, qname: "keys.example.test.", qtype: dns.TypeA, ecs: locECS("::ffff:10.20.3.0/120"), want: locA2, scope: 112},
		{name: "emea as IPv4-mapped, AAAA", qname: "keys.example.test.", qtype: dns.TypeAAAA, ecs: locECS("::ffff:10.20.3.7/128"), want: locAAAA2, scope: 112},
		{name: "unmatched IPv4-mapped from an emea client", local: locEMEAClient, qname: "keys.example.test.", qtype: dns.TypeA, ecs: locECS("::ffff:192.0.2.0/120"), want: locA1, scope: 120},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, srv) })
	}

	// The static answer's SOA query carries the SOA itself.
	r := testenv.MustExchange(t, "udp", "127.0.0.1", srv, testenv.Query("example.test.", dns.TypeSOA, locECS("10.20.3.0/24")))
	if len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeSOA {
		t.Errorf("SOA with ECS: answer %v, want the SOA", r.Answer)
	}
	// A name outside every zone is refused, ECS or not.
	r = testenv.MustExchange(t, "udp", "127.0.0.1", srv, testenv.Query("keys.example.org.", dns.TypeA, locECS("10.20.3.0/24")))
	if r.Rcode != dns.RcodeRefused || len(r.Answer) != 0 {
		t.Errorf("out-of-zone with ECS: rcode %s answer %v, want REFUSED and nothing", dns.RcodeToString[r.Rcode], r.Answer)
	}
}

// 2. With ecs = false the packet source decides and no ECS option is echoed.
func TestLocationECSDisabled(t *testing.T) {
	srv := locStart(t, "ecs = false", locBase)
	cases := []locECSCase{
		{name: "emea subnet from a client in no location", local: locOtherClient, qname: "keys.example.test.", qtype: dns.TypeA, ecs: locECS("10.20.3.0/24"), want: locA1, scope: -1},
		{name: "unmatched subnet from an emea client", local: locEMEAClient, qname: "keys.example.test.", qtype: dns.TypeA, ecs: locECS("192.0.2.0/24"), want: locA2, scope: -1},
		{name: "emea subnet from an emea client over tcp", network: "tcp", local: locEMEAClient, qname: "keys.example.test.", qtype: dns.TypeA, ecs: locECS("10.20.3.0/24"), want: locA2, scope: -1},
		{name: "IPv6 subnet", local: locOtherClient, qname: "keys.example.test.", qtype: dns.TypeAAAA, ecs: locECS("2001:db8:20::/56"), want: locAAAA1, scope: -1},
		{name: "source 0", local: locEMEAClient, qname: "keys.example.test.", qtype: dns.TypeA, ecs: locECS("0.0.0.0/0"), want: locA2, scope: -1},
		{name: "service without locations", local: locEMEAClient, qname: "plain.example.test.", qtype: dns.TypeA, ecs: locECS("10.20.3.0/24"), want: locA1, scope: -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, srv) })
	}
}

// 3. IPv6 client subnets.
func TestLocationECSIPv6(t *testing.T) {
	srv := locStart(t, "", locBase)
	cases := []locECSCase{
		{name: "AAAA /56 inside the /48", qname: "keys.example.test.", qtype: dns.TypeAAAA, ecs: locECS("2001:db8:20::/56"), want: locAAAA2, scope: 48},
		{name: "A /56 inside the /48", qname: "keys.example.test.", qtype: dns.TypeA, ecs: locECS("2001:db8:20::/56"), want: locA2, scope: 48},
		{name: "AAAA /56 over tcp", network: "tcp", local: locOtherClient, qname: "keys.example.test.", qtype: dns.TypeAAAA, ecs: locECS("2001:db8:20:ff00::/56"), want: locAAAA2, scope: 48},
		{name: "AAAA the /48 itself", qname: "keys.example.test.", qtype: dns.TypeAAAA, ecs: locECS("2001:db8:20::/48"), want: locAAAA2, scope: 48},
		{name: "AAAA /128", qname: "keys.example.test.", qtype: dns.TypeAAAA, ecs: locECS("2001:db8:20:1:2:3:4:5/128"), want: locAAAA2, scope: 48},
		{name: "AAAA unmatched /56 from an emea client", local: locEMEAClient, qname: "keys.example.test.", qtype: dns.TypeAAAA, ecs: locECS("2001:db8:99::/56"), want: locAAAA1, scope: 56},
		{name: "AAAA next to the /48", qname: "keys.example.test.", qtype: dns.TypeAAAA, ecs: locECS("2001:db8:21::/56"), want: locAAAA1, scope: 56},
		{name: "AAAA subset", qname: "subset.example.test.", qtype: dns.TypeAAAA, ecs: locECS("2001:db8:20::/56"), want: locAAAA3, scope: 48},
		{name: "AAAA without locations", qname: "plain.example.test.", qtype: dns.TypeAAAA, ecs: locECS("2001:db8:20::/56"), want: locAAAA1, scope: 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, srv) })
	}
}

// 6. A malformed ECS option is answered FORMERR (RFC 7871 section 6), over
// UDP and TCP, and the server keeps serving.
func TestLocationECSMalformed(t *testing.T) {
	srv := locStart(t, "", locBase)
	cases := []struct {
		name string
		opts []dns.EDNS0
	}{
		{name: "non-zero SCOPE in a query", opts: []dns.EDNS0{locRawECS(1, 24, 8, 10, 20, 3)}},
		{name: "SCOPE 24 in a query", opts: []dns.EDNS0{locRawECS(1, 24, 24, 10, 20, 3)}},
		{name: "host bits beyond SOURCE (10.20.3.1/24)", opts: []dns.EDNS0{locRawECS(1, 24, 0, 10, 20, 3, 1)}},
		{name: "host bits beyond SOURCE (10.20.3.0/23)", opts: []dns.EDNS0{locRawECS(1, 23, 0, 10, 20, 3)}},
		{name: "IPv6 host bits beyond SOURCE", opts: []dns.EDNS0{locRawECS(2, 48, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 0x20, 0, 1)}},
		{name: "IPv4 SOURCE 33", opts: []dns.EDNS0{locRawECS(1, 33, 0, 10, 20, 3, 0, 0)}},
		{name: "IPv6 SOURCE 129", opts: []dns.EDNS0{locRawECS(2, 129, 0, 0x20, 0x01)}},
		{name: "unknown FAMILY 3", opts: []dns.EDNS0{locRawECS(3, 24, 0, 10, 20, 3)}},
		{name: "FAMILY 0 with a SOURCE", opts: []dns.EDNS0{locRawECS(0, 8, 0, 10)}},
		{name: "two ECS options", opts: []dns.EDNS0{locECS("10.20.3.0/24"), locECS("10.20.4.0/24")}},
		{name: "truncated option", opts: []dns.EDNS0{&dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: []byte{0, 1, 24}}}},
		// RFC 7871 section 6: "too few or too many ADDRESS octets ...
		// SHOULD return FORMERR".
		{name: "too many ADDRESS octets", opts: []dns.EDNS0{locRawECS(1, 24, 0, 10, 20, 3, 0)}},
		{name: "too few ADDRESS octets", opts: []dns.EDNS0{locRawECS(1, 24, 0, 10, 20)}},
	}
	for _, c := range cases {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(c.name+"/"+network, func(t *testing.T) {
				q := testenv.Query("keys.example.test.", dns.TypeA, c.opts...)
				r := testenv.MustExchange(t, network, locOtherClient, srv, q)
				if r.Rcode != dns.RcodeFormatError || len(r.Answer) != 0 {
					msg := fmt.Sprintf("rcode %s with %d answers, want FORMERR and no answer:\n%v", dns.RcodeToString[r.Rcode], len(r.Answer), r)
					t.Error(msg)
				}
				if r.Id != q.Id || !r.Response {
					t.Errorf("reply id %d response %v, want id %d and QR", r.Id, r.Response, q.Id)
				}
			})
		}
	}
	// Still serving, with ECS.
	locECSCase{qname: "keys.example.test.", qtype: dns.TypeA, ecs: locECS("10.20.3.0/24"), want: locA2, scope: 16}.run(t, srv)
}

// 5. The longest prefix wins: lab's /24 inside emea's /16, for ECS and for
// the packet's source address.
func TestLocationLongestPrefix(t *testing.T) {
	srv := locStart(t, "", locNested)
	cases := []locECSCase{
		{name: "lab /24", qname: "keys.example.test.", qtype: dns.TypeA, ecs: locECS("10.20.3.0/24"), want: locA3, scope: 24},
		{name: "lab /25", qname: "keys.example.test.", qtype: dns.TypeA, ecs: locECS("10.20.3.128/25"), want: locA3, scope: 24},
		{name: "lab /32", qname: "keys.example.test.", qtype: dns.TypeA, ecs: locECS("10.20.3.9/32"), want: locA3, scope: 24},
		{name: "lab AAAA", qname: "keys.example.test.", qtype: dns.TypeAAAA, ecs: locECS("10.20.3.0/24"), want: locAAAA3, scope: 24},
		{name: "lab from an emea source", local: "127.0.97.7", qname: "keys.example.test.", qtype: dns.TypeA, ecs: locECS("10.20.3.0/24"), want: locA3, scope: 24},
		{name: "unmatched from a lab source", local: "127.0.98.7", qname: "keys.example.test.", qtype: dns.TypeA, ecs: locECS("192.0.2.0/24"), want: locA1, scope: 24},
		// The scope of emea's answers next to lab is TestLocationScopeNested's.
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, srv) })
	}
	for _, c := range []struct{ ecs, want string }{
		{"10.20.4.0/24", locA2},
		{"10.20.2.0/24", locA2},
		{"10.20.0.0/16", locA2},
		{"10.20.0.0/23", locA2},
	} {
		r := testenv.MustExchange(t, "udp", "127.0.0.1", srv, testenv.Query("keys.example.test.", dns.TypeA, locECS(c.ecs)))
		if got := locAddress(t, r, "keys.example.test.", dns.TypeA); got != c.want {
			t.Errorf("ECS %s: got %s, want emea's %s", c.ecs, got, c.want)
		}
	}

	// By source address: 127.0.98.0/24 (lab) inside 127.0.0.0/16 (emea).
	for _, network := range []string{"udp", "tcp"} {
		for _, c := range []struct{ local, want string }{
			{"127.0.98.7", locA3},   // lab
			{"127.0.98.254", locA3}, // lab
			{"127.0.97.7", locA2},   // emea
			{"127.0.99.7", locA2},   // emea
			{"127.1.0.5", locA1},    // outside 127.0.0.0/16: default
		} {
			r := testenv.MustExchange(t, network, c.local, srv, testenv.Query("keys.example.test.", dns.TypeA))
			if got := locAddress(t, r, "keys.example.test.", dns.TypeA); got != c.want {
				t.Errorf("%s from %s: got %s, want %s", network, c.local, got, c.want)
			}
		}
	}
}

// RFC 7871 section 7.3.1: a resolver caches an answer for ADDRESS/SCOPE and
// hands it to every client inside. So SCOPE must never cover a client that
// would get another answer: next to a more specific location it must be
// longer, and longer than SOURCE when SOURCE itself is too short to decide
// (section 7.2.1).
func TestLocationScopeNested(t *testing.T) {
	cases := []struct {
		body, ecs, want string
		minScope        int // SCOPE must be at least this
		maxScope        int // and at most this (0: no upper bound)
		why             string
	}{
		{locNested, "10.20.4.0/24", locA2, 17, 24,
			"emea's answer for 10.20.4.0/24 with SCOPE 16 would be cached for all of 10.20.0.0/16, lab's 10.20.3.0/24 included"},
		{locNested, "10.20.0.0/16", locA2, 24, 0,
			"10.20.0.0/16 contains lab's 10.20.3.0/24: SOURCE 16 cannot decide, so SCOPE must be longer than SOURCE"},
		{locBase, "10.0.0.0/8", locA1, 16, 0,
			"10.0.0.0/8 contains emea's 10.20.0.0/16: the default answer must not be cached for emea's clients"},
		{locBase, "2001:db8::/32", locA1, 48, 0,
			"2001:db8::/32 contains emea's 2001:db8:20::/48"},
	}
	servers := map[string]string{locNested: locStart(t, "", locNested), locBase: locStart(t, "", locBase)}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.ecs, "/", "_"), func(t *testing.T) {
			srv := servers[c.body]
			e := locECS(c.ecs)
			r := testenv.MustExchange(t, "udp", "127.0.0.1", srv, testenv.Query("keys.example.test.", dns.TypeA, e))
			if got := locAddress(t, r, "keys.example.test.", dns.TypeA); got != c.want {
				t.Errorf("ECS %s: got %s, want %s", c.ecs, got, c.want)
			}
			echo := locReplyECS(t, r)
			if echo == nil {
				t.Fatalf("no ECS option in the reply")
			}
			s := int(echo.SourceScope)
			if s < c.minScope || (c.maxScope > 0 && s > c.maxScope) {
				t.Errorf("ECS SCOPE wrong next to a more specific location: ECS %s answered with SCOPE %d, want %d..%s: %s",
					c.ecs, s, c.minScope, map[bool]string{true: fmt.Sprint(c.maxScope), false: "128"}[c.maxScope > 0], c.why)
			}
		})
	}
}

// locNode is a TCP listener standing in for a node's health endpoint.
type locNode = testenv.Endpoint

func locListen(t testing.TB, ip string) *locNode {
	t.Helper()
	return testenv.NewEndpoint(t, ip, 0, true)
}

// locFailoverConfig: three nodes answered as 192.0.2.1x and probed by TCP on
// their 127.0.10.x listeners.
func locFailoverConfig(nodes [3]*locNode) testenv.Config {
	var c testenv.Config
	for i, n := range nodes {
		c.Nodes = append(c.Nodes, testenv.Node{
			Name:    fmt.Sprintf("sems%d", i+1),
			Address: fmt.Sprintf("192.0.2.1%d", i+1),
			Check:   fmt.Sprintf("type = \"tcp\"\ntarget = %q\nport = %d\ninterval = \"50ms\"\ntimeout = \"1s\"\nrise = 2\nfall = 2\n", n.IP, n.Port),
		})
	}
	c.Locations = []testenv.Location{{Name: "emea", Subnets: []string{"127.0.99.0/24"}}}
	c.Services = []testenv.Service{{
		Name: "keys.example.test.", TTL: 30, Nodes: []string{"sems1", "sems2", "sems3"},
		Failback: "auto", FailbackAfter: "200ms",
		Orders: []testenv.Order{{Location: "emea", Nodes: []string{"sems2", "sems1", "sems3"}}},
	}}
	return c
}

// locAnswerFrom asks for keys.example.test A from local and returns the
// address, or "" with an error.
func locAnswerFrom(t testing.TB, srv, local string) (string, error) {
	r, err := testenv.Exchange("udp", local, srv, testenv.Query("keys.example.test.", dns.TypeA))
	if err != nil {
		return "", err
	}
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		return "", fmt.Errorf("from %s: rcode %s, answer %v", local, dns.RcodeToString[r.Rcode], r.Answer)
	}
	a, ok := r.Answer[0].(*dns.A)
	if !ok {
		return "", fmt.Errorf("from %s: answer %v is not an A record", local, r.Answer[0])
	}
	return a.A.String(), nil
}

// locWaitFor polls until local is answered want, checking on every round
// that each client in steady is still answered its address: a failover in
// one location must never move another.
func locWaitFor(t *testing.T, srv, what, local, want string, steady map[string]string) {
	t.Helper()
	deadline := time.Now().Add(locDeadline)
	last := ""
	for {
		for sl, sw := range steady {
			got, err := locAnswerFrom(t, srv, sl)
			if err != nil {
				t.Fatal(err)
			}
			if got != sw {
				t.Fatalf("%s: a client at %s was moved to %s, want it to stay on %s", what, sl, got, sw)
			}
		}
		got, err := locAnswerFrom(t, srv, local)
		if err != nil {
			t.Fatal(err)
		}
		if got == want {
			return
		}
		last = got
		if time.Now().After(deadline) {
			t.Fatalf("%s: a client at %s is still answered %s after %s, want %s", what, local, last, locDeadline, want)
		}
		time.Sleep(20 * time.Millisecond) // poll interval, not a correctness wait
	}
}

// 4. Failover per location, driven by real TCP health checks.
func TestLocationFailover(t *testing.T) {
	start := func(t *testing.T) (string, [3]*locNode) {
		var nodes [3]*locNode
		for i := range nodes {
			nodes[i] = locListen(t, fmt.Sprintf("127.0.10.%d", i+1))
		}
		srv := locStartConfig(t, locFailoverConfig(nodes))
		// Start probes every node once before it answers: no waiting.
		for local, want := range map[string]string{locEMEAClient: locA2, locOtherClient: locA1} {
			got, err := locAnswerFrom(t, srv, local)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("at start a client at %s gets %s, want %s", local, got, want)
			}
		}
		return srv, nodes
	}

	t.Run("emea primary down", func(t *testing.T) {
		t.Parallel()
		srv, nodes := start(t)
		nodes[1].Stop() // sems2
		locWaitFor(t, srv, "sems2 stopped", locEMEAClient, locA1, map[string]string{locOtherClient: locA1})
		// It stays there, and the default view never moved.
		for range 5 {
			for local, want := range map[string]string{locEMEAClient: locA1, locOtherClient: locA1} {
				if got, err := locAnswerFrom(t, srv, local); err != nil || got != want {
					t.Fatalf("after failover, %s gets %s (%v), want %s", local, got, err, want)
				}
			}
		}
		// sems2 comes back: emea returns to it after rise and failback_after.
		nodes[1].Start(t)
		locWaitFor(t, srv, "sems2 restarted", locEMEAClient, locA2, map[string]string{locOtherClient: locA1})
	})

	t.Run("default primary down", func(t *testing.T) {
		t.Parallel()
		srv, nodes := start(t)
		nodes[0].Stop() // sems1
		locWaitFor(t, srv, "sems1 stopped", locOtherClient, locA2, map[string]string{locEMEAClient: locA2})
		// Then sems2 too: everyone on sems3.
		nodes[1].Stop()
		locWaitFor(t, srv, "sems1 and sems2 stopped", locOtherClient, locA3, nil)
		locWaitFor(t, srv, "sems1 and sems2 stopped", locEMEAClient, locA3, map[string]string{locOtherClient: locA3})
	})
}
