package dnsserver_test

// Acceptance tests of Reload (README "Reload": SIGHUP reloads config
// and zones atomically; on any error the old configuration keeps serving;
// health of unchanged nodes carries over). A real instance with real TCP
// health endpoints on 127.0.10.x, its config and zone rewritten in a temp
// folder between reloads, queried over the wire.
//
// The fixture here (names start with ops) is shared with metrics_test.go and
// delegation_test.go.

import (
	"cmp"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	dto "github.com/prometheus/client_model/go"

	"github.com/failoverdns/failoverdns/dnsserver"
	"github.com/failoverdns/failoverdns/dnsserver/testenv"
	"github.com/failoverdns/failoverdns/zones"
)

const (
	opsOrigin  = "ops.test."
	opsKey     = "ops-admin."
	opsEMEAIP  = "127.0.99.5" // inside emea's 127.0.99.0/24
	opsTimeout = 5 * time.Second
	// opsWithin bounds every wait for something that should happen within
	// a few probe intervals: generous for a loaded CI machine with -race.
	opsWithin = 10 * time.Second
	opsPoll   = 20 * time.Millisecond
)

var opsSecret = base64.StdEncoding.EncodeToString([]byte("failoverdns-ops-test-secret-0032"))

// opsIPs are the nodes' client-facing addresses; each node's TCP health
// endpoint listens on the same address.
var opsIPs = admNodeIPs

// opsNode is a node's TCP health endpoint, stopped and restarted by tests:
// the same as admin_test.go's.
type opsNode = admNode

// opsNewNode listens on the node's address (a port chosen by the kernel).
// With up false the port is closed again at once: probes are refused.
func opsNewNode(t testing.TB, name string, up bool) *opsNode { return admNewNode(t, name, up) }

// opsNodes starts the named nodes, all up.
func opsNodes(t testing.TB, names ...string) map[string]*opsNode {
	t.Helper()
	m := map[string]*opsNode{}
	for _, n := range names {
		m[n] = opsNewNode(t, n, true)
	}
	return m
}

// opsConf is what a test varies in the config and zone.
type opsConf struct {
	origin    string   // zone; "" = ops.test.; the service is keys.<origin>
	nodes     []string // [[node]]s defined; nil = order
	order     []string // the service's node order
	emea      []string // emea's own order; nil = none (the location still exists)
	ttl       int      // service TTL; 0 = 5
	rise      int      // 0 = 2
	interval  string   // "" = 100ms
	http      bool     // http = "127.0.0.1:0", else ""
	adminNets string   // TOML value of admin_nets; "" = the default
	httpNets  string   // TOML value of http_nets; "" = none (admin_nets)
	zoneExtra string   // lines appended to the zone file
	// comment is written as a TOML comment at the top: a change that
	// changes nothing.
	comment string
	// serverExtra is written as lines inside [server] (e.g. a bad key).
	serverExtra string
	// checks replaces a node's [node.check] lines (default: tcp on its
	// endpoint).
	checks map[string]string
	// failbackAfter is the service's failback_after; "" = "0s".
	failbackAfter string
	// whenAllDown is the service's when_all_down; "" = "keep".
	whenAllDown string
	// addrs replaces a node's address (its check, unless checks says
	// otherwise, probes the fixture node's port there).
	addrs map[string]string
	// alias maps a node name written in the config to the fixture node
	// whose address and endpoint it has (a renamed node).
	alias map[string]string
}

func (c opsConf) zone() string {
	if c.origin == "" {
		return opsOrigin
	}
	return c.origin
}

func (c opsConf) service() string { return "keys." + c.zone() }

// opsZoneText is the zone file: SOA, NS with glue, a static record.
func opsZoneText(c opsConf) string {
	o := c.zone()
	return fmt.Sprintf(`$ORIGIN %[1]s
$TTL 300
@    IN SOA ns1.%[1]s hostmaster.%[1]s 2026010101 7200 3600 1209600 300
@    IN NS  ns1.%[1]s
ns1  IN A   127.0.0.1
www  IN A   192.0.2.80
`, o) + c.zoneExtra
}

// opsEnv is one running instance and the files it was started from.
type opsEnv struct {
	*env
	c     opsConf // as started; write does not change it
	nodes map[string]*opsNode
}

// config is c as the instance's config, its nodes' checks on e's
// endpoints.
func (e *opsEnv) config(c opsConf) testenv.Config {
	cfg := testenv.Config{
		Comment:   c.comment,
		Server:    c.serverExtra,
		TSIG:      []testenv.TSIG{{Name: opsKey, Secret: opsSecret}},
		Zones:     []testenv.Zone{{Origin: c.zone(), File: strings.TrimSuffix(c.zone(), ".") + ".zone", Text: opsZoneText(c)}},
		Locations: []testenv.Location{{Name: "emea", Subnets: []string{"127.0.99.0/24"}}},
	}
	if c.http {
		cfg.HTTP = "127.0.0.1:0"
	}
	if c.httpNets != "" {
		cfg.Server = "http_nets = " + c.httpNets + "\n" + cfg.Server
	}
	if c.adminNets != "" {
		cfg.Server = "admin_nets = " + c.adminNets + "\n" + cfg.Server
	}
	nodes := c.nodes
	if nodes == nil {
		nodes = c.order
	}
	for _, name := range nodes {
		fixture := name
		if a, ok := c.alias[name]; ok {
			fixture = a
		}
		n := e.nodes[fixture]
		if n == nil {
			panic("opsConf names node " + name + " that the test did not create")
		}
		ip := n.ip
		if a, ok := c.addrs[name]; ok {
			ip = a
		}
		chk, ok := c.checks[name]
		if !ok {
			chk = fmt.Sprintf("type = \"tcp\"\nport = %d\ninterval = %q\ntimeout = \"1s\"\nrise = %d\nfall = 2\n",
				n.port, cmp.Or(c.interval, "100ms"), cmp.Or(c.rise, 2))
		}
		cfg.Nodes = append(cfg.Nodes, testenv.Node{Name: name, Address: ip, Check: chk})
	}
	svc := testenv.Service{Name: c.service(), TTL: cmp.Or(c.ttl, 5), Policy: "failover", Nodes: c.order, Failback: "auto",
		FailbackAfter: cmp.Or(c.failbackAfter, "0s"), WhenAllDown: cmp.Or(c.whenAllDown, "keep")}
	if c.emea != nil {
		svc.Orders = []testenv.Order{{Location: "emea", Nodes: c.emea}}
	}
	cfg.Services = []testenv.Service{svc}
	return cfg
}

// configText renders c as the TOML config.
func (e *opsEnv) configText(c opsConf) string { return e.config(c).Text(e.Dir) }

// write replaces the config and zone file with c's and returns their text.
func (e *opsEnv) write(t testing.TB, c opsConf) (cfg, zone string) {
	t.Helper()
	e.Write(t, e.config(c))
	return e.configText(c), opsZoneText(c)
}

// opsStart writes c and starts an instance on it with the given nodes'
// endpoints.
func opsStart(t testing.TB, c opsConf, nodes map[string]*opsNode) *opsEnv {
	t.Helper()
	e := &opsEnv{c: c, nodes: nodes}
	e.env = prepare(t, e.config(c), dnsserver.Options{Version: "v0.0.0-ops"})
	e.launch(t)
	return e
}

// launch starts an instance on e's files (again, after closeIn, for a
// restart) and closes it when the test ends.
func (e *opsEnv) launch(t testing.TB) { t.Helper(); e.Launch(t) }

// closeIn stops the instance (once).
func (e *opsEnv) closeIn() { e.Stop() }

// tryActive is the node the service answers to a client at from over UDP.
func (e *opsEnv) tryActive(from string) (string, error) {
	r, err := testenv.Ask("udp", from, e.Addr, e.c.service(), dns.TypeA)
	if err != nil {
		return "", err
	}
	return admNodeOf(r), nil
}

// active asks once, from 127.0.0.1.
func (e *opsEnv) active(t testing.TB) string {
	t.Helper()
	got, err := e.tryActive("")
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// wantActive asserts the answer now, without waiting.
func (e *opsEnv) wantActive(t testing.TB, want, why string) {
	t.Helper()
	if got := e.active(t); got != want {
		t.Fatalf("%s: %s answers %s, want %s\nhealth: %v\nlog:\n%s", why, e.c.service(), got, want, e.health(), e.Logs)
	}
}

// waitActive polls until the service answers want to a client at from.
func (e *opsEnv) waitActive(t testing.TB, from, want string) {
	t.Helper()
	var got string
	var err error
	if testenv.Eventually(opsWithin, opsPoll, func() bool { got, err = e.tryActive(from); return err == nil && got == want }) {
		return
	}
	t.Fatalf("%s from %q answers %s (err %v) after %s, want %s\nhealth: %v\nlog:\n%s", e.c.service(), from, got, err, opsWithin, want, e.health(), e.Logs)
}

// holdActive asserts that every answer for d is want (an observation
// window for "nothing changes", not a wait for something to happen).
func (e *opsEnv) holdActive(t testing.TB, want string, d time.Duration, why string) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); {
		if got := e.active(t); got != want {
			t.Fatalf("%s: %s answers %s, want %s all along\nhealth: %v\nlog:\n%s", why, e.c.service(), got, want, e.health(), e.Logs)
		}
		time.Sleep(opsPoll) // query interval
	}
}

// watchActive queries the service from 127.0.0.1 on workers goroutines
// (pausing pause between queries) until the returned halt is called; halt
// returns the first answer other than want (nil when every one was want)
// and how many queries were asked. It is safe to call more than once.
func (e *opsEnv) watchActive(t testing.TB, want string, workers int, pause time.Duration) (halt func() (bad any, asked int64)) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var once sync.Once
	var first atomic.Value
	var n atomic.Int64
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := e.tryActive("")
				n.Add(1)
				if err == nil && got != want {
					first.CompareAndSwap(nil, got)
				}
				time.Sleep(pause) // query interval
			}
		})
	}
	halt = func() (any, int64) {
		once.Do(func() { close(stop); wg.Wait() })
		return first.Load(), n.Load()
	}
	t.Cleanup(func() { halt() })
	return halt
}

// health describes the prober's view of every node, for failure messages.
func (e *opsEnv) health() string {
	var parts []string
	for name, s := range e.in.Prober.Snapshot() {
		parts = append(parts, fmt.Sprintf("%s{checked=%v up=%v err=%q}", name, s.Checked, s.Up, s.Last.Err))
	}
	return strings.Join(parts, " ")
}

// waitDown polls the prober until node is checked and down.
func (e *opsEnv) waitDown(t testing.TB, node string) {
	t.Helper()
	deadline := time.Now().Add(opsWithin)
	for time.Now().Before(deadline) {
		if s, ok := e.in.Prober.Snapshot()[node]; ok && s.Checked && !s.Up {
			return
		}
		time.Sleep(opsPoll) // poll interval
	}
	t.Fatalf("%s is not down after %s: %s", node, opsWithin, e.health())
}

// reload calls Reload and wants it to succeed.
func (e *opsEnv) reload(t testing.TB) {
	t.Helper()
	if err := e.in.Reload(); err != nil {
		t.Fatalf("Reload: %v\nlog:\n%s", err, e.Logs)
	}
}

// gathered reads a metric straight from the instance's registry (the HTTP
// scrape is tested in metrics_test.go): the sum over every series whose
// labels include labels (name, value pairs); 0 when there is none.
func (e *opsEnv) gathered(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	return gathered(t, e.in, name, labels...)
}

// gathered is opsEnv.gathered for any instance.
func gathered(t testing.TB, in *dnsserver.Instance, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := in.Metrics.Registry.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return opsSum(mf, labels...)
		}
	}
	return 0
}

// opsSum adds up the series of mf whose labels include labels.
func opsSum(mf *dto.MetricFamily, labels ...string) float64 {
	if len(labels)%2 != 0 {
		panic("labels must be name, value pairs")
	}
	var sum float64
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		match := true
		for i := 0; i < len(labels); i += 2 {
			if v, ok := have[labels[i]]; !ok || v != labels[i+1] {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Untyped != nil:
			sum += m.GetUntyped().GetValue()
		}
	}
	return sum
}

// opsUpdate sends m signed with the ops key from 127.0.0.1 and returns the
// reply (whose TSIG the client verifies).
func opsUpdate(t testing.TB, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := testenv.Client("udp", "127.0.0.1", opsTimeout)
	c.TsigSecret = map[string]string{opsKey: opsSecret}
	m.SetTsig(opsKey, dns.HmacSHA256, 300, time.Now().Unix())
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("UPDATE: %v", err)
	}
	return r
}

// opsPin pins service (in zone) to text ("sems2", "sems2 force").
func opsPin(t testing.TB, e *opsEnv, text string) {
	t.Helper()
	m := new(dns.Msg).SetUpdate(e.c.zone())
	m.Insert([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: "_pin." + e.c.service(), Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: []string{text}}})
	if r := opsUpdate(t, e.Addr, m); r.Rcode != dns.RcodeSuccess {
		t.Fatalf("pin UPDATE answered %s, want NOERROR\nlog:\n%s", dns.RcodeToString[r.Rcode], e.Logs)
	}
}

// opsUnpin deletes the service's pin.
func opsUnpin(t testing.TB, e *opsEnv) {
	t.Helper()
	m := new(dns.Msg).SetUpdate(e.c.zone())
	m.RemoveRRset([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: "_pin." + e.c.service(), Rrtype: dns.TypeTXT, Class: dns.ClassINET}}})
	if r := opsUpdate(t, e.Addr, m); r.Rcode != dns.RcodeSuccess {
		t.Fatalf("unpin UPDATE answered %s, want NOERROR\nlog:\n%s", dns.RcodeToString[r.Rcode], e.Logs)
	}
}

// opsLineOf returns the 1-based line of text that contains substr.
func opsLineOf(t testing.TB, text, substr string) int {
	t.Helper()
	for i, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			return i + 1
		}
	}
	t.Fatalf("%q is not in\n%s", substr, text)
	return 0
}

// opsRecord asks name/qtype from 127.0.0.1 and returns the answer section
// as text, or the rcode.
func (e *opsEnv) record(t testing.TB, name string, qtype uint16) string {
	t.Helper()
	r, err := testenv.Ask("udp", "", e.Addr, name, qtype)
	if err != nil {
		t.Fatal(err)
	}
	if r.Rcode != dns.RcodeSuccess {
		return dns.RcodeToString[r.Rcode]
	}
	var parts []string
	for _, rr := range r.Answer {
		switch v := rr.(type) {
		case *dns.A:
			parts = append(parts, v.A.String())
		case *dns.TXT:
			parts = append(parts, strings.Join(v.Txt, " "))
		default:
			parts = append(parts, rr.String())
		}
	}
	if len(parts) == 0 {
		return "NODATA"
	}
	return strings.Join(parts, ",")
}

// ---------------------------------------------------------------------------
// Tests

// TestReloadValidChange: a new node put first in the order becomes the
// answer once probed, a changed order changes the answer, and a zone edit is
// served; each reload is counted as a success.
func TestReloadValidChange(t *testing.T) {
	nodes := opsNodes(t, "sems1", "sems2", "sems3")
	c := opsConf{order: []string{"sems1", "sems2"}}
	e := opsStart(t, c, nodes)
	e.wantActive(t, "sems1", "at start")
	if got := e.record(t, "new."+opsOrigin, dns.TypeA); got != "NXDOMAIN" {
		t.Fatalf("new.%s before the zone edit: %s, want NXDOMAIN", opsOrigin, got)
	}

	// A new node, first in the order.
	c.order = []string{"sems3", "sems1", "sems2"}
	e.write(t, c)
	e.reload(t)
	e.waitActive(t, "", "sems3")
	if s := e.in.Prober.Snapshot()["sems3"]; !s.Checked || !s.Up {
		t.Errorf("sems3 after the reload: checked=%v up=%v, want a probed, up node", s.Checked, s.Up)
	}

	// A changed order.
	c.order = []string{"sems2", "sems3", "sems1"}
	e.write(t, c)
	e.reload(t)
	e.waitActive(t, "", "sems2")

	// A zone edit.
	c.zoneExtra = "new  IN A   192.0.2.77\n"
	e.write(t, c)
	e.reload(t)
	if got := e.record(t, "new."+opsOrigin, dns.TypeA); got != "192.0.2.77" {
		t.Errorf("new.%s after the zone edit: %s, want 192.0.2.77", opsOrigin, got)
	}
	e.wantActive(t, "sems2", "after a zone-only edit")

	if got := e.gathered(t, "failoverdns_reloads_total", "outcome", "success"); got != 3 {
		t.Errorf(`failoverdns_reloads_total{outcome="success"} = %v, want 3`, got)
	}
	if got := e.gathered(t, "failoverdns_reloads_total", "outcome", "failure"); got != 0 {
		t.Errorf(`failoverdns_reloads_total{outcome="failure"} = %v, want 0`, got)
	}
	if got := e.gathered(t, "failoverdns_config_last_reload_successful"); got != 1 {
		t.Errorf("failoverdns_config_last_reload_successful = %v, want 1", got)
	}
}

// TestReloadNewNodeProbedFirst: a node added first in the order whose port
// is closed is never answered, not even while the reload is in progress.
func TestReloadNewNodeProbedFirst(t *testing.T) {
	nodes := opsNodes(t, "sems1", "sems2")
	nodes["sems3"] = opsNewNode(t, "sems3", false) // closed port
	c := opsConf{order: []string{"sems1", "sems2"}}
	e := opsStart(t, c, nodes)
	e.wantActive(t, "sems1", "at start")

	// Query without pause while the reload runs.
	halt := e.watchActive(t, "sems1", 2, 0)
	c.order = []string{"sems3", "sems1", "sems2"}
	e.write(t, c)
	e.reload(t)
	e.wantActive(t, "sems1", "right after the reload that added sems3 with a closed port")
	// Several probe intervals (100ms, rise 2) to see that sems3 never
	// comes up.
	e.holdActive(t, "sems1", time.Second, "sems3's port is closed")
	if v, asked := halt(); v != nil {
		t.Errorf("during or after the reload a query answered %v, want sems1 every time (%d queries)", v, asked)
	}
	s, ok := e.in.Prober.Snapshot()["sems3"]
	if !ok || !s.Checked || s.Up {
		t.Errorf("sems3 after the reload: known=%v checked=%v up=%v, want probed and down", ok, s.Checked, s.Up)
	}

	// Once sems3 listens, it does become the answer (so the test above
	// could have failed).
	nodes["sems3"].start(t)
	e.waitActive(t, "", "sems3")
}

// TestReloadInvalid: a config or zone error makes Reload fail with the
// file:line, the old answers keep being served, readiness is unaffected and
// the failure is counted; a later valid reload works.
func TestReloadInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		bad  func(c *opsConf)
		file string // base name the error must name
		line string // a substring of the line it must name
		says string
	}{
		{
			name: "zone syntax error",
			bad:  func(c *opsConf) { c.zoneExtra = "new  IN A   192.0.2.77\nbad  IN A   192.0.2.300\n" },
			file: "ops.test.zone", line: "192.0.2.300", says: "192.0.2.300",
		},
		{
			name: "unknown config key",
			bad:  func(c *opsConf) { c.serverExtra = "listn = [\"127.0.0.1:53\"]\n" },
			file: "failoverdns.toml", line: "listn", says: "listn",
		},
		{
			name: "CNAME beside A",
			bad:  func(c *opsConf) { c.zoneExtra = "new  IN A   192.0.2.77\nwww  IN CNAME web.example.org.\n" },
			file: "ops.test.zone", line: "CNAME", says: "CNAME",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodes := opsNodes(t, "sems1", "sems2")
			c := opsConf{order: []string{"sems1", "sems2"}, http: true}
			e := opsStart(t, c, nodes)
			e.wantActive(t, "sems1", "at start")

			bad := c
			bad.order = []string{"sems2", "sems1"} // would change the answer
			tc.bad(&bad)
			cfg, zone := e.write(t, bad)
			text := zone
			if tc.file == "failoverdns.toml" {
				text = cfg
			}
			want := fmt.Sprintf("%s:%d:", tc.file, opsLineOf(t, text, tc.line))

			re := regexp.MustCompile(`(^|/)` + regexp.QuoteMeta(want) + ` \S`)
			err := e.in.Reload()
			if err == nil {
				t.Fatalf("Reload of a bad %s returned nil", tc.file)
			}
			found := false
			for _, x := range zones.Errors(err) {
				// The file as a whole path element, then the line.
				if re.MatchString(x.Error()) && strings.Contains(x.Error(), tc.says) {
					found = true
				}
			}
			if !found {
				t.Errorf("Reload error does not name %s (mentioning %q):\n%v", want, tc.says, err)
			}
			if !strings.Contains(e.Logs.String(), want) {
				t.Errorf("the log does not name %s:\n%s", want, e.Logs)
			}

			// The old configuration keeps serving.
			e.wantActive(t, "sems1", "after the failed reload")
			if got := e.record(t, "www."+opsOrigin, dns.TypeA); got != "192.0.2.80" {
				t.Errorf("www after the failed reload: %s, want 192.0.2.80", got)
			}
			if got := e.record(t, "new."+opsOrigin, dns.TypeA); got != "NXDOMAIN" {
				t.Errorf("new.%s after the failed reload: %s, want NXDOMAIN (nothing of the bad files is served)", opsOrigin, got)
			}
			if code, body := testenv.HTTPGet(t, e.HTTP, "/readyz"); code != 200 {
				t.Errorf("/readyz after the failed reload: %d %s, want 200", code, body)
			}
			if got := e.gathered(t, "failoverdns_reloads_total", "outcome", "failure"); got != 1 {
				t.Errorf(`failoverdns_reloads_total{outcome="failure"} = %v, want 1`, got)
			}
			if got := e.gathered(t, "failoverdns_config_last_reload_successful"); got != 0 {
				t.Errorf("failoverdns_config_last_reload_successful = %v, want 0", got)
			}

			// Fixed: the next reload takes effect.
			fixed := c
			fixed.order = []string{"sems2", "sems1"}
			e.write(t, fixed)
			e.reload(t)
			e.waitActive(t, "", "sems2")
			if got := e.gathered(t, "failoverdns_reloads_total", "outcome", "success"); got != 1 {
				t.Errorf(`failoverdns_reloads_total{outcome="success"} = %v, want 1`, got)
			}
			if got := e.gathered(t, "failoverdns_config_last_reload_successful"); got != 1 {
				t.Errorf("failoverdns_config_last_reload_successful after the fix = %v, want 1", got)
			}
		})
	}
}

// TestReloadKeepsDynamicPin: a pin set by UPDATE is still in force after a
// reload that changes the config.
func TestReloadKeepsDynamicPin(t *testing.T) {
	nodes := opsNodes(t, "sems1", "sems2", "sems3")
	c := opsConf{order: []string{"sems1", "sems2"}}
	e := opsStart(t, c, nodes)
	e.wantActive(t, "sems1", "at start")
	opsPin(t, e, "sems2")
	e.wantActive(t, "sems2", "right after the pin UPDATE")

	c.comment = "reloaded with a pin set"
	c.zoneExtra = "info IN TXT \"v2\"\n"
	c.nodes = []string{"sems1", "sems2", "sems3"}
	c.order = []string{"sems3", "sems1", "sems2"} // sems3 would win without the pin
	e.write(t, c)
	e.reload(t)
	e.wantActive(t, "sems2", "right after the reload")
	e.holdActive(t, "sems2", 500*time.Millisecond, "pinned to sems2 across the reload")
	if got := e.record(t, "_pin."+c.service(), dns.TypeTXT); got != "sems2" {
		t.Errorf("_pin TXT after the reload: %q, want \"sems2\"", got)
	}
	if _, ok := e.in.Engine.Pins()[zones.PinKey{Service: c.service()}]; !ok {
		t.Errorf("the engine lost the dynamic pin: %v", e.in.Engine.Pins())
	}

	// Unpinned, the new order decides (so the pin was what held sems2).
	opsUnpin(t, e)
	e.waitActive(t, "", "sems3")
}

// TestReloadKeepsHealth: a node that is down stays down across a reload even
// though its endpoint came back (rise not reached yet): its state is carried
// over, not probed afresh, and no answer flaps.
func TestReloadKeepsHealth(t *testing.T) {
	nodes := opsNodes(t, "sems1", "sems2")
	// rise 100 at 100ms: a node that went down needs 10s of good probes.
	c := opsConf{order: []string{"sems1", "sems2"}, rise: 100}
	e := opsStart(t, c, nodes)
	e.wantActive(t, "sems1", "at start")

	nodes["sems1"].stop()
	e.waitDown(t, "sems1")
	e.waitActive(t, "", "sems2")
	changes := e.gathered(t, "failoverdns_active_changes_total")
	nodes["sems1"].start(t) // back, but rise holds it down for 10s

	c.comment = "an unrelated change"
	c.zoneExtra = "info IN TXT \"v2\"\n"
	e.write(t, c)
	e.reload(t)
	if s := e.in.Prober.Snapshot()["sems1"]; !s.Checked || s.Up {
		t.Fatalf("sems1 right after the reload: checked=%v up=%v, want still down (its state carried over)", s.Checked, s.Up)
	}
	if s := e.in.Prober.Snapshot()["sems2"]; !s.Checked || !s.Up {
		t.Fatalf("sems2 right after the reload: checked=%v up=%v, want still up", s.Checked, s.Up)
	}
	e.wantActive(t, "sems2", "right after the reload")
	e.holdActive(t, "sems2", time.Second, "sems1 is held down by rise")
	if got := e.gathered(t, "failoverdns_active_changes_total"); got != changes {
		t.Errorf("failoverdns_active_changes_total moved from %v to %v across the reload: the answer flapped", changes, got)
	}
}

// TestReloadUnderLoad: 1,000 UDP queries from 4 goroutines while 20 reloads
// alternate between two configs that both answer sems1: every query gets
// NOERROR with exactly one A, sems1's address, and none times out.
func TestReloadUnderLoad(t *testing.T) {
	const (
		queries  = 1000
		workers  = 4
		reloads  = 20
		perBatch = queries / (reloads + 5) // queries between reloads
	)
	nodes := opsNodes(t, "sems1", "sems2")
	a := opsConf{order: []string{"sems1", "sems2"}, comment: "config A"}
	b := a
	b.comment = "config B"
	b.zoneExtra = "info IN TXT \"config B\"\n"
	e := opsStart(t, a, nodes)
	e.wantActive(t, "sems1", "at start")

	var (
		issued, done, failed atomic.Int64
		reloaded             atomic.Int64
		mu                   sync.Mutex
		failures             []string
	)
	fail := func(s string) {
		failed.Add(1)
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 10 {
			failures = append(failures, s)
		}
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			c := testenv.Client("udp", "", 2*time.Second)
			for {
				n := issued.Add(1)
				if n > queries {
					return
				}
				// Keep pace with the reloads: a query of batch k waits
				// for reload k-1, so the two really interleave.
				for int64(n)/perBatch-1 > reloaded.Load() && reloaded.Load() < reloads {
					time.Sleep(time.Millisecond) // pacing, not correctness
				}
				q := new(dns.Msg).SetQuestion(e.c.service(), dns.TypeA)
				q.RecursionDesired = false
				r, _, err := c.Exchange(q, e.Addr)
				done.Add(1)
				switch {
				case err != nil:
					fail(err.Error())
				case r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1:
					fail(fmt.Sprintf("rcode %s, answers %v", dns.RcodeToString[r.Rcode], r.Answer))
				default:
					if got, ok := r.Answer[0].(*dns.A); !ok || got.A.String() != opsIPs["sems1"] {
						fail(fmt.Sprintf("answer %v, want %s", r.Answer[0], opsIPs["sems1"]))
					}
				}
			}
		})
	}
	// Should the reload loop stop early, the workers must not wait for it.
	defer reloaded.Store(reloads)
	var reloadErr error
	for i := range reloads {
		for done.Load() < int64(i*perBatch) {
			time.Sleep(time.Millisecond) // pacing, not correctness
		}
		c := a
		if i%2 == 0 {
			c = b
		}
		e.write(t, c)
		if err := e.in.Reload(); err != nil && reloadErr == nil {
			reloadErr = err
		}
		reloaded.Add(1)
	}
	wg.Wait()
	if reloadErr != nil {
		t.Errorf("a reload failed: %v", reloadErr)
	}
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d queries failed during %d reloads; first: %q", n, done.Load(), reloads, failures)
	}
	if n := done.Load(); n != queries {
		t.Errorf("%d queries answered or failed, want %d", n, queries)
	}
	if got := e.gathered(t, "failoverdns_reloads_total", "outcome", "success"); got != reloads {
		t.Errorf(`failoverdns_reloads_total{outcome="success"} = %v, want %d`, got, reloads)
	}
	// The last config written was A: no TXT at info.
	if got := e.record(t, "info."+opsOrigin, dns.TypeTXT); got != "NXDOMAIN" {
		t.Errorf("info TXT after the last reload (config A): %s, want NXDOMAIN", got)
	}
}

// TestReloadChangedCheckNoFlap: a reload that changes the active node's
// check (here from tcp to an http check whose first answer takes a while)
// must not move the answer while the new check's first probe runs, even when
// something else (another node going down) makes the engine decide again in
// that time. With failback_after 30s, such a flap would hold the answer on
// the wrong node for 30s.
func TestReloadChangedCheckNoFlap(t *testing.T) {
	const slow = 1500 * time.Millisecond
	nodes := opsNodes(t, "sems1", "sems2", "sems3")
	// sems1's new health endpoint: HTTP 200, after a delay.
	port := testenv.SlowHTTP(t, opsIPs["sems1"], slow)

	c := opsConf{order: []string{"sems1", "sems2", "sems3"}, failbackAfter: "30s"}
	e := opsStart(t, c, nodes)
	e.wantActive(t, "sems1", "at start")
	changes := e.gathered(t, "failoverdns_active_changes_total")
	halt := e.watchActive(t, "sems1", 1, 5*time.Millisecond)

	c.checks = map[string]string{"sems1": fmt.Sprintf("type = \"http\"\nport = %d\npath = \"/\"\ninterval = \"100ms\"\ntimeout = \"5s\"\nrise = 2\nfall = 2\n",
		port)}
	e.write(t, c)
	// Something else changes while sems1's new check runs its first probe.
	nodes["sems3"].stop()
	start := time.Now()
	e.reload(t)
	took := time.Since(start)
	e.waitDown(t, "sems3")
	if v, _ := halt(); v != nil {
		t.Errorf("while sems1's changed check ran its first probe, a query was answered %v, want sems1 all along\nlog:\n%s", v, e.Logs)
	}
	if got := e.gathered(t, "failoverdns_active_changes_total"); got != changes {
		t.Errorf("failoverdns_active_changes_total moved from %v to %v across the reload: the answer flapped", changes, got)
	}
	if took < slow/2 {
		t.Logf("the reload took %s: it did not wait for sems1's new check (%s)", took, slow)
	}
	e.holdActive(t, "sems1", 300*time.Millisecond, "after the reload")
}

// TestReloadDroppedPinAgreesWithRestart: a reload that removes a pinned node
// makes the pin void. Whatever the server then does with the pin (forget
// it for good, or keep it until the node returns), a restart must agree with
// the running server: after the node is back in the config, the reloaded
// server and a freshly started one on the same files answer the same and
// hold the same pins.
func TestReloadDroppedPinAgreesWithRestart(t *testing.T) {
	nodes := opsNodes(t, "sems1", "sems2", "sems3")
	c1 := opsConf{order: []string{"sems1", "sems2", "sems3"}}
	e := opsStart(t, c1, nodes)
	opsPin(t, e, "sems2")
	e.wantActive(t, "sems2", "pinned")

	c2 := c1
	c2.order = []string{"sems1", "sems3"} // sems2 is gone
	e.write(t, c2)
	e.reload(t)
	e.wantActive(t, "sems1", "sems2 left the config")

	e.write(t, c1) // sems2 is back
	e.reload(t)
	running, runningPins := e.active(t), e.in.Engine.Pins()

	e.closeIn()
	e.launch(t)
	restarted, restartedPins := e.active(t), e.in.Engine.Pins()
	if running != restarted || len(runningPins) != len(restartedPins) {
		t.Errorf("after the pinned node left the config and came back, the running server answers %s with pins %v, but a restart on the same files answers %s with pins %v\nlog:\n%s",
			running, runningPins, restarted, restartedPins, e.Logs)
	}
}
