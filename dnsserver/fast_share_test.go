package dnsserver

import (
	"bytes"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/dnsserver/testenv"
	"github.com/failoverdns/failoverdns/health"
	"github.com/failoverdns/failoverdns/zones"
)

// TestOneViewServicesShareTables: services without locations whose answers
// are the same templates (one node, names of one length) share one
// fastService, others do not; across a failover that moves them all, the
// fast path still answers every service's A and AAAA byte for byte as the
// general path does.
func TestOneViewServicesShareTables(t *testing.T) {
	c := testenv.Config{
		Zones: []testenv.Zone{{Origin: "share.test.", File: "share.test.zone",
			Text: "$ORIGIN share.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 192.0.2.53\n"}},
		Nodes: []testenv.Node{
			{Name: "n0", Address: "100.64.0.1", Address6: "2001:db8::1", Check: "type = \"none\"\n"},
			{Name: "n1", Address: "100.64.0.2", Check: "type = \"none\"\n"},
		},
	}
	names := []string{"s1.share.test.", "s2.share.test.", "s10.share.test.", "ab.share.test."}
	for _, n := range names {
		c.Services = append(c.Services, testenv.Service{Name: n, TTL: 30, Nodes: []string{"n0", "n1"}, Failback: "manual"})
	}
	snap, err := zones.Load(c.Write(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := New(snap, logger, "test")
	s.metrics = NewMetrics()
	since := time.Now().Add(-time.Hour)
	h := map[string]health.State{"n0": {Up: true, Checked: true, Since: since}, "n1": {Up: true, Checked: true, Since: since}}
	e := zones.NewEngineWith(snap, zones.EngineOptions{Logger: logger, Publish: s.Store, Health: func() map[string]health.State { return maps.Clone(h) }})
	client := netip.MustParseAddrPort("192.0.2.1:5353")
	check := func(when string) {
		t.Helper()
		ft := s.pub.Load().fast
		fs := func(name string) *fastService {
			for i, svc := range s.Snapshot().Services {
				if svc.Name == name {
					return ft.services[i]
				}
			}
			t.Fatalf("no service %s", name)
			return nil
		}
		if fs("s1.share.test.") != fs("s2.share.test.") || fs("s1.share.test.") != fs("ab.share.test.") {
			t.Errorf("%s: services of one node and name length do not share their table", when)
		}
		if fs("s1.share.test.") == fs("s10.share.test.") {
			t.Errorf("%s: s10 (a longer name) shares s1's table", when)
		}
		for _, name := range names {
			for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
				m := new(dns.Msg)
				m.SetQuestion(name, qt)
				pkt, _ := m.Pack()
				got, ok := s.fastBytes(pkt, client)
				if !ok {
					t.Errorf("%s: %s %s: not answered by the fast path", when, name, dns.TypeToString[qt])
					continue
				}
				if want := s.generalBytes(pkt, client); !bytes.Equal(got, want) {
					t.Errorf("%s: %s %s: fast %x, general %x", when, name, dns.TypeToString[qt], got, want)
				}
			}
		}
	}
	e.Recompute()
	check("n0 up")
	h["n0"] = health.State{Checked: true, Since: time.Now()}
	e.Recompute()
	if d, _ := s.Snapshot().Decision("s10.share.test.", 0); d.Active != "n1" {
		t.Fatalf("after n0's fall s10 answers %q, want n1", d.Active)
	}
	check("n0 down")
}
