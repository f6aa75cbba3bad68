package dnsserver_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/dnsserver"
	"github.com/failoverdns/failoverdns/zones/fuzzseed"
)

// The byte-identity check of the fast path (TestFastPathByteIdentity runs
// it over its own query set) over every query of the conformance, hostile
// and fuzz seed corpora: wherever the fast path answers, its bytes are the
// general path's. Run them all with -run FastPathByteIdentity.

// identityServer is one server the corpora are answered by.
type identityServer struct {
	name string
	s    *dnsserver.Server
}

// identityServers: the fast-path tests' config (which serves the
// conformance zone too) and the fuzz and hostile tests' config, each with
// ECS on and off.
func identityServers(tb testing.TB) []identityServer {
	var out []identityServer
	for _, ecsOn := range []bool{true, false} {
		extra := ""
		if !ecsOn {
			extra = "ecs = false\n"
		}
		snap, _ := fzLoad(tb, extra)
		out = append(out,
			identityServer{fmt.Sprintf("fast/ecs=%v", ecsOn), dnsserver.FastServer(tb, extra)},
			identityServer{fmt.Sprintf("fuzz/ecs=%v", ecsOn), dnsserver.NewAllUpServer(tb, snap)})
	}
	return out
}

// identityClients: outside every location, in the fast config's emea, in
// the fuzz config's lab, over IPv6.
var identityClients = []netip.AddrPort{
	netip.MustParseAddrPort("127.0.0.1:5300"), netip.MustParseAddrPort("127.0.99.5:5300"),
	netip.MustParseAddrPort("10.1.2.3:5300"), netip.MustParseAddrPort("[::1]:5300"),
	netip.MustParseAddrPort("[2001:db8:ff::1]:5300"),
}

// checkIdentity answers pkt on every server from every client and fails
// where the fast path's bytes are not the general path's. It returns how
// many of those answers the fast path gave.
func checkIdentity(t *testing.T, servers []identityServer, name string, pkt []byte) (fast int) {
	t.Helper()
	for _, srv := range servers {
		for _, c := range identityClients {
			got, ok, want := srv.s.FastAndGeneral(pkt, c)
			if !ok {
				continue
			}
			fast++
			if !bytes.Equal(got, want) {
				g, w := new(dns.Msg), new(dns.Msg)
				_ = g.Unpack(got)
				_ = w.Unpack(want)
				t.Errorf("%s on %s from %s: fast path differs from the general path\nquery:   %x\nfast:    %x\ngeneral: %x\nfast msg:\n%v\ngeneral msg:\n%v",
					name, srv.name, c.Addr(), pkt, got, want, g, w)
			}
		}
	}
	return fast
}

// TestFastPathByteIdentityCorpora: the conformance queries (every case of
// conformanceCases, and the packets that get no reply) and the hostile ones.
func TestFastPathByteIdentityCorpora(t *testing.T) {
	servers := identityServers(t)
	corpora := map[string]map[string][]byte{"conformance": {}, "hostile": {}}
	for _, c := range conformanceCases() {
		p, err := c.query().Pack()
		if err != nil {
			t.Fatalf("conformance %s: %v", c.name, err)
		}
		corpora["conformance"][c.name] = p
	}
	for name, p := range silentPackets(t) {
		corpora["conformance"]["silent/"+name] = p
	}
	for _, c := range hostileCases(t) {
		corpora["hostile"][c.name] = c.pkt
	}
	for corpus, pkts := range corpora {
		fast := 0
		for name, p := range pkts {
			fast += checkIdentity(t, servers, corpus+"/"+name, p)
		}
		t.Logf("%s: %d queries, %d fast-path answers over %d servers and %d clients", corpus, len(pkts), fast, len(servers), len(identityClients))
		if corpus == "conformance" && fast == 0 {
			t.Errorf("%s: the fast path answered none of it", corpus)
		}
	}
}

// FuzzFastPathByteIdentity runs the check over the FuzzQuery seed corpus
// (go test runs each seed); with -fuzz it looks for more.
func FuzzFastPathByteIdentity(f *testing.F) {
	fuzzseed.Add(f, "FuzzQuery")
	servers := identityServers(f)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		checkIdentity(t, servers, "seed", pkt)
	})
}
