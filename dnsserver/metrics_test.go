package dnsserver_test

// Acceptance tests of the HTTP endpoints: /metrics scraped over HTTP and
// parsed with the Prometheus text parser (so the exposition format itself is
// tested, not only the collectors), /healthz, /readyz, /status and POST
// /reload with its admin_nets gate. The fixture is in reload_test.go.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/failoverdns/failoverdns/dnsserver"
	"github.com/failoverdns/failoverdns/dnsserver/testenv"
)

// opsScrape GETs /metrics and parses it as the Prometheus text format.
func opsScrape(t testing.TB, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := testenv.HTTPGet(t, addr, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}
	// A zero TextParser panics in prometheus/common v0.66 (no name
	// validation scheme): name one.
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse as the Prometheus text format: %v\n%s", err, body)
	}
	return mfs
}

// opsMetric is one value from a scrape: the sum of the series of name whose
// labels include labels (name, value pairs); 0 when there is none.
func opsMetric(mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	mf, ok := mfs[name]
	if !ok {
		return 0
	}
	return opsSum(mf, labels...)
}

// opsSeries is one series named by its metric and labels, written
// "name=value,name=value" ("" = every series of the metric).
type opsSeries struct {
	name   string
	labels string
}

func (s opsSeries) pairs() []string {
	if s.labels == "" {
		return nil
	}
	var out []string
	for _, kv := range strings.Split(s.labels, ",") {
		k, v, _ := strings.Cut(kv, "=")
		out = append(out, k, v)
	}
	return out
}

func (s opsSeries) String() string { return s.name + "{" + s.labels + "}" }

// waitMetrics scrapes until every series has its wanted value (counters
// are incremented after the answer is written, so a scrape right after a
// reply may not show it yet) and returns the last scrape.
func (e *opsEnv) waitMetrics(t testing.TB, want map[opsSeries]float64) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(opsWithin)
	for {
		mfs := opsScrape(t, e.HTTP)
		var wrong []string
		for s, v := range want {
			if got := opsMetric(mfs, s.name, s.pairs()...); got != v {
				wrong = append(wrong, s.String()+" = "+opsFtoa(got)+", want "+opsFtoa(v))
			}
		}
		if len(wrong) == 0 {
			return mfs
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s:\n%s\nlog:\n%s", opsWithin, strings.Join(wrong, "\n"), e.Logs)
		}
		time.Sleep(opsPoll) // poll interval
	}
}

func opsFtoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func opsQueries(qtype, rcode, transport, location string) opsSeries {
	return opsSeries{"failoverdns_queries_total", "qtype=" + qtype + ",rcode=" + rcode + ",transport=" + transport + ",location=" + location}
}

// opsAsk sends one query and wants an answer (any rcode).
func opsAsk(t testing.TB, e *opsEnv, network, from, name string, qtype uint16) *dns.Msg {
	t.Helper()
	r, err := testenv.Ask(network, from, e.Addr, name, qtype)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestMetricsQueries: failoverdns_queries_total moves by exactly the queries
// sent, under the right qtype, rcode, transport and location.
func TestMetricsQueries(t *testing.T) {
	nodes := opsNodes(t, "sems1", "sems2")
	e := opsStart(t, opsConf{order: []string{"sems1", "sems2"}, emea: []string{"sems2", "sems1"}, http: true}, nodes)
	svc := e.c.service()

	udpA := opsQueries("A", "NOERROR", "udp", "default")
	tcpA := opsQueries("A", "NOERROR", "tcp", "default")
	refused := opsQueries("A", "REFUSED", "udp", "default")
	emeaA := opsQueries("A", "NOERROR", "udp", "emea")
	txt := opsQueries("TXT", "NOERROR", "udp", "default")
	base := opsScrape(t, e.HTTP)
	if _, ok := base["failoverdns_queries_total"]; ok {
		for _, s := range []opsSeries{udpA, tcpA, refused, emeaA} {
			if v := opsMetric(base, s.name, s.pairs()...); v != 0 {
				t.Fatalf("%s = %v before any query", s, v)
			}
		}
	}

	for range 5 {
		if got := admNodeOf(opsAsk(t, e, "udp", "", svc, dns.TypeA)); got != "sems1" {
			t.Fatalf("%s A answers %s, want sems1", svc, got)
		}
	}
	e.waitMetrics(t, map[opsSeries]float64{udpA: 5, tcpA: 0, refused: 0, emeaA: 0})

	if r := opsAsk(t, e, "udp", "", "www.example.org.", dns.TypeA); r.Rcode != dns.RcodeRefused {
		t.Fatalf("a name outside every zone: %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
	e.waitMetrics(t, map[opsSeries]float64{udpA: 5, tcpA: 0, refused: 1, emeaA: 0})

	if got := admNodeOf(opsAsk(t, e, "tcp", "", svc, dns.TypeA)); got != "sems1" {
		t.Fatalf("%s A over TCP answers %s, want sems1", svc, got)
	}
	e.waitMetrics(t, map[opsSeries]float64{udpA: 5, tcpA: 1, refused: 1, emeaA: 0})

	if got := admNodeOf(opsAsk(t, e, "udp", opsEMEAIP, svc, dns.TypeA)); got != "sems2" {
		t.Fatalf("%s A from emea (%s) answers %s, want sems2", svc, opsEMEAIP, got)
	}
	e.waitMetrics(t, map[opsSeries]float64{udpA: 5, tcpA: 1, refused: 1, emeaA: 1})

	if r := opsAsk(t, e, "udp", "", "www."+opsOrigin, dns.TypeTXT); r.Rcode != dns.RcodeSuccess {
		t.Fatalf("www TXT: %s, want NOERROR (NODATA)", dns.RcodeToString[r.Rcode])
	}
	mfs := e.waitMetrics(t, map[opsSeries]float64{udpA: 5, tcpA: 1, refused: 1, emeaA: 1, txt: 1})
	if got := opsMetric(mfs, "failoverdns_queries_total"); got != 9 {
		t.Errorf("failoverdns_queries_total summed over every label = %v, want 9 (the queries sent)", got)
	}
	// Every series carries exactly the four documented labels.
	for _, m := range mfs["failoverdns_queries_total"].GetMetric() {
		var names []string
		for _, lp := range m.GetLabel() {
			names = append(names, lp.GetName())
		}
		if strings.Join(names, ",") != "location,qtype,rcode,transport" {
			t.Errorf("failoverdns_queries_total series with labels %v, want location, qtype, rcode, transport", names)
		}
	}
	// The latency histogram times every TCP answer and one UDP batch in
	// latencySample per reader: after 40 UDP answers over two readers at
	// least one UDP batch is in it, besides the TCP answer.
	for range 40 - 8 {
		opsAsk(t, e, "udp", "", svc, dns.TypeA)
	}
	mfs = e.waitMetrics(t, map[opsSeries]float64{udpA: 37, tcpA: 1, refused: 1, emeaA: 1, txt: 1})
	if mf := mfs["failoverdns_query_duration_seconds"]; mf == nil || len(mf.GetMetric()) != 1 {
		t.Errorf("failoverdns_query_duration_seconds: %v, want one histogram", mf)
	} else if h := mf.GetMetric()[0].GetHistogram(); h.GetSampleCount() < 2 || h.GetSampleCount() > 41 || h.GetSampleSum() <= 0 {
		t.Errorf("failoverdns_query_duration_seconds: %d observations summing to %vs, want 2 to 41 and a positive sum", h.GetSampleCount(), h.GetSampleSum())
	}
}

// TestMetricsFailover: node_up goes 1→0 when a node's endpoint stops, the
// failover is counted in active_changes_total and active_node follows.
func TestMetricsFailover(t *testing.T) {
	nodes := opsNodes(t, "sems1", "sems2")
	e := opsStart(t, opsConf{order: []string{"sems1", "sems2"}, http: true}, nodes)
	svc := e.c.service()
	up1 := opsSeries{"failoverdns_node_up", "node=sems1"}
	up2 := opsSeries{"failoverdns_node_up", "node=sems2"}
	changes := opsSeries{"failoverdns_active_changes_total", "service=" + svc + ",location=default"}
	active1 := opsSeries{"failoverdns_active_node", "service=" + svc + ",location=default,node=sems1"}
	active2 := opsSeries{"failoverdns_active_node", "service=" + svc + ",location=default,node=sems2"}
	e.waitMetrics(t, map[opsSeries]float64{up1: 1, up2: 1, changes: 0, active1: 1, active2: 0})

	nodes["sems1"].stop()
	e.waitActive(t, "", "sems2")
	mfs := e.waitMetrics(t, map[opsSeries]float64{up1: 0, up2: 1, changes: 1, active1: 0, active2: 1})
	if mf := mfs["failoverdns_node_up"]; mf.GetType() != dto.MetricType_GAUGE {
		t.Errorf("failoverdns_node_up is a %v, want a gauge", mf.GetType())
	}
	if mf := mfs["failoverdns_active_changes_total"]; mf.GetType() != dto.MetricType_COUNTER {
		t.Errorf("failoverdns_active_changes_total is a %v, want a counter", mf.GetType())
	}
	if got := opsMetric(mfs, "failoverdns_probe_failures_total", "node", "sems1"); got < 2 {
		t.Errorf("failoverdns_probe_failures_total{node=\"sems1\"} = %v, want at least fall (2)", got)
	}
	if got := opsMetric(mfs, "failoverdns_probe_failures_total", "node", "sems1", "reason", "refused"); got < 2 {
		t.Errorf("failoverdns_probe_failures_total{node=\"sems1\",reason=\"refused\"} = %v, want at least 2 (the port is closed)", got)
	}

	// Back: node_up returns to 1 and failback is one more change.
	nodes["sems1"].start(t)
	e.waitActive(t, "", "sems1")
	e.waitMetrics(t, map[opsSeries]float64{up1: 1, up2: 1, changes: 2, active1: 1, active2: 0})
}

// TestMetricsPins: a pin set and removed by UPDATE moves pin_changes_total
// and the dynamic pins gauge.
func TestMetricsPins(t *testing.T) {
	nodes := opsNodes(t, "sems1", "sems2")
	e := opsStart(t, opsConf{order: []string{"sems1", "sems2"}, http: true}, nodes)
	set := opsSeries{"failoverdns_pin_changes_total", "action=set"}
	removed := opsSeries{"failoverdns_pin_changes_total", "action=removed"}
	dynamic := opsSeries{"failoverdns_pins", "kind=dynamic"}
	static := opsSeries{"failoverdns_pins", "kind=static"}
	e.waitMetrics(t, map[opsSeries]float64{set: 0, removed: 0, dynamic: 0, static: 0})

	opsPin(t, e, "sems2")
	e.wantActive(t, "sems2", "pinned")
	e.waitMetrics(t, map[opsSeries]float64{set: 1, removed: 0, dynamic: 1, static: 0})

	opsUnpin(t, e)
	e.wantActive(t, "sems1", "unpinned")
	e.waitMetrics(t, map[opsSeries]float64{set: 1, removed: 1, dynamic: 0, static: 0})
}

// TestMetricsUpdates: failoverdns_updates_total counts UPDATE messages by
// the response code they got.
func TestMetricsUpdates(t *testing.T) {
	nodes := opsNodes(t, "sems1", "sems2")
	e := opsStart(t, opsConf{order: []string{"sems1", "sems2"}, http: true}, nodes)
	opsPin(t, e, "sems2")

	// Unsigned: REFUSED.
	m := new(dns.Msg).SetUpdate(e.c.zone())
	m.Insert([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: "_pin." + e.c.service(), Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: []string{"sems1"}}})
	r, _, err := testenv.Client("udp", "127.0.0.1", opsTimeout).Exchange(m, e.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if r.Rcode != dns.RcodeRefused {
		t.Fatalf("unsigned UPDATE: %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
	e.waitMetrics(t, map[opsSeries]float64{
		{"failoverdns_updates_total", "rcode=NOERROR"}: 1,
		{"failoverdns_updates_total", "rcode=REFUSED"}: 1,
	})
}

// TestHTTPEndpoints: /healthz, /readyz, /status and POST /reload.
func TestHTTPEndpoints(t *testing.T) {
	nodes := opsNodes(t, "sems1", "sems2")
	c := opsConf{order: []string{"sems1", "sems2"}, emea: []string{"sems2", "sems1"}, http: true}
	e := opsStart(t, c, nodes)
	svc := e.c.service()

	if code, body := testenv.HTTPGet(t, e.HTTP, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d %s, want 200", code, body)
	}
	if code, body := testenv.HTTPGet(t, e.HTTP, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz: %d %s, want 200", code, body)
	}

	st := opsStatus(t, e)
	if !st.Ready {
		t.Errorf("/status ready = false on a running instance")
	}
	opsWantView(t, st, svc, "default", "sems1", []string{"sems1", "sems2"})
	opsWantView(t, st, svc, "emea", "sems2", []string{"sems2", "sems1"})
	for name, ip := range map[string]string{"sems1": opsIPs["sems1"], "sems2": opsIPs["sems2"]} {
		n, ok := st.Nodes[name]
		if !ok {
			t.Errorf("/status has no node %s: %+v", name, st.Nodes)
			continue
		}
		if !n.Up || !n.Checked || n.Address != ip {
			t.Errorf("/status node %s = %+v, want up, checked, address %s", name, n, ip)
		}
	}

	// A node goes down: /status says so and names the new active node.
	nodes["sems1"].stop()
	e.waitActive(t, "", "sems2")
	st = opsStatus(t, e)
	if n := st.Nodes["sems1"]; n.Up || !n.Checked || n.LastError == "" {
		t.Errorf("/status node sems1 after its endpoint stopped = %+v, want checked, down, with the last error", n)
	}
	opsWantView(t, st, svc, "default", "sems2", []string{"sems1", "sems2"})
	nodes["sems1"].start(t)
	e.waitActive(t, "", "sems1")

	// POST /reload from 127.0.0.1 (in the default admin_nets).
	c.order = []string{"sems2", "sems1"}
	e.write(t, c)
	if code, body := testenv.HTTPDo(t, "127.0.0.1", http.MethodPost, e.HTTP, "/reload"); code != http.StatusOK {
		t.Fatalf("POST /reload: %d %s, want 200", code, body)
	}
	e.waitActive(t, "", "sems2")
	opsWantView(t, opsStatus(t, e), svc, "default", "sems2", []string{"sems2", "sems1"})

	// A bad config: 422 naming file:line, the old config stays.
	bad := c
	bad.order = []string{"sems1", "sems2"}
	bad.zoneExtra = "bad  IN A   192.0.2.300\n"
	_, zone := e.write(t, bad)
	want := "ops.test.zone:" + strconv.Itoa(opsLineOf(t, zone, "192.0.2.300")) + ":"
	code, body := testenv.HTTPDo(t, "127.0.0.1", http.MethodPost, e.HTTP, "/reload")
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, want) {
		t.Errorf("POST /reload of a bad zone: %d %q, want 422 naming %s", code, body, want)
	}
	e.wantActive(t, "sems2", "after a failed POST /reload")
	if code, body := testenv.HTTPGet(t, e.HTTP, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after a failed reload: %d %s, want 200", code, body)
	}
	e.waitMetrics(t, map[opsSeries]float64{
		{"failoverdns_reloads_total", "outcome=success"}:  1,
		{"failoverdns_reloads_total", "outcome=failure"}:  1,
		{"failoverdns_config_last_reload_successful", ""}: 0,
	})
}

// TestHTTPReloadAdminNets: POST /reload from outside admin_nets is 403 and
// reloads nothing; from inside it is 200.
func TestHTTPReloadAdminNets(t *testing.T) {
	nodes := opsNodes(t, "sems1", "sems2")
	c := opsConf{order: []string{"sems1", "sems2"}, http: true, adminNets: `["127.0.0.1/32"]`}
	e := opsStart(t, c, nodes)
	c.order = []string{"sems2", "sems1"}
	e.write(t, c)

	code, body := testenv.HTTPDo(t, "127.0.0.2", http.MethodPost, e.HTTP, "/reload")
	if code != http.StatusForbidden {
		t.Errorf("POST /reload from 127.0.0.2 (outside admin_nets): %d %s, want 403", code, body)
	}
	e.wantActive(t, "sems1", "after a refused POST /reload")
	mfs := opsScrape(t, e.HTTP)
	if got := opsMetric(mfs, "failoverdns_reloads_total"); got != 0 {
		t.Errorf("failoverdns_reloads_total = %v after a refused POST /reload, want 0 (no reload tried)", got)
	}
	// Reading is open to everyone.
	if code, _ := testenv.HTTPDo(t, "127.0.0.2", http.MethodGet, e.HTTP, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz from 127.0.0.2: %d, want 200", code)
	}

	if code, body := testenv.HTTPDo(t, "127.0.0.1", http.MethodPost, e.HTTP, "/reload"); code != http.StatusOK {
		t.Fatalf("POST /reload from 127.0.0.1: %d %s, want 200", code, body)
	}
	e.waitActive(t, "", "sems2")
}

func opsStatus(t testing.TB, e *opsEnv) dnsserver.Status {
	t.Helper()
	code, body := testenv.HTTPGet(t, e.HTTP, "/status")
	if code != http.StatusOK {
		t.Fatalf("/status: %d %s", code, body)
	}
	var st dnsserver.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/status is not JSON: %v\n%s", err, body)
	}
	return st
}

// wantView asserts one service view of /status.
func opsWantView(t testing.TB, st dnsserver.Status, svc, loc, active string, order []string) {
	t.Helper()
	for _, s := range st.Services {
		if s.Name != svc {
			continue
		}
		for _, v := range s.Views {
			if v.Location != loc {
				continue
			}
			if v.Active != active || strings.Join(v.Order, ",") != strings.Join(order, ",") || v.Reason == "" {
				t.Errorf("/status %s view %s = %+v, want active %s, order %v, a reason", svc, loc, v, active, order)
			}
			return
		}
		t.Errorf("/status %s has no view %q: %+v", svc, loc, s.Views)
		return
	}
	t.Errorf("/status has no service %s: %+v", svc, st.Services)
}

// TestMetricsGaugesNoGap: every scrape shows node_up for every node and the
// active node of every view, even one taken while the engine publishes a
// new decision (each health change, pin and reload does): a series that
// vanishes for one scrape fires absent() alerts and makes "sum of
// active_node == 0" look like an outage.
func TestMetricsGaugesNoGap(t *testing.T) {
	nodes := opsNodes(t, "sems1", "sems2")
	e := opsStart(t, opsConf{order: []string{"sems1", "sems2"}, http: true}, nodes)
	svc := e.c.service()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			e.in.Engine.Recompute() // what every health change does
		}
	}()
	defer func() { close(stop); <-done }()

	// Up to 50 scrapes (stopping at the first gap), bounded in time for a
	// loaded machine.
	const scrapes = 50
	var gaps []string
	n := 0
	for end := time.Now().Add(5 * time.Second); n < scrapes && len(gaps) == 0 && time.Now().Before(end); n++ {
		mfs := opsScrape(t, e.HTTP)
		up1 := opsMetric(mfs, "failoverdns_node_up", "node", "sems1")
		up2 := opsMetric(mfs, "failoverdns_node_up", "node", "sems2")
		var upSeries, activeSeries int
		if mf := mfs["failoverdns_node_up"]; mf != nil {
			upSeries = len(mf.GetMetric())
		}
		active := opsMetric(mfs, "failoverdns_active_node", "service", svc, "location", "default", "node", "sems1")
		if mf := mfs["failoverdns_active_node"]; mf != nil {
			activeSeries = len(mf.GetMetric())
		}
		if upSeries != 2 || up1 != 1 || up2 != 1 || activeSeries != 1 || active != 1 {
			gaps = append(gaps, fmt.Sprintf("node_up: %d series (sems1 %v, sems2 %v); active_node: %d series (sems1 %v)", upSeries, up1, up2, activeSeries, active))
		}
	}
	if len(gaps) > 0 {
		t.Errorf("scrape %d taken while decisions were published misses series that never changed: %s", n, gaps[0])
	}
	if n < 10 {
		t.Logf("only %d scrapes in 5s: a loaded machine", n)
	}
}
