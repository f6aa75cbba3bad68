package dnsserver_test

// Tests of the status page at / as served (HTML, no browser): what it
// shows without JavaScript, its filters and paging, who may read it, and
// its size with 10,000 services. The browser's view is in
// page_browser_test.go. The small fixture is reload_test.go's; the large
// one is pgLarge below.

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/failoverdns/failoverdns/dnsserver"
	"github.com/failoverdns/failoverdns/dnsserver/testenv"
	"github.com/failoverdns/failoverdns/zones/events"
)

// pgAge matches the page's relative ages (ago): 7s, 3m05s, 2h10m, 4d01h.
var pgAge = regexp.MustCompile(`\b\d+(s|m\d\ds|h\d\dm|d\d\dh)\b`)

// pgRow returns the <tr> of a service view or a node (attr: data-service
// or data-node), "" when the page has none.
func pgRow(page, attr, name string) string {
	i := strings.Index(page, attr+`="`+name+`"`)
	if i < 0 {
		return ""
	}
	start := strings.LastIndex(page[:i], "<tr")
	end := strings.Index(page[i:], "</tr>")
	if start < 0 || end < 0 {
		return ""
	}
	return page[start : i+end]
}

// pgText strips tags, so assertions read what a person reads.
var pgTags = regexp.MustCompile(`<[^>]*>`)

func pgText(html string) string {
	return strings.Join(strings.Fields(pgTags.ReplaceAllString(html, " ")), " ")
}

// pgTimeline returns the timeline's entries as text, newest first.
func pgTimeline(page string) []string {
	i := strings.Index(page, `<ol class="timeline"`)
	if i < 0 {
		return nil
	}
	j := strings.Index(page[i:], "</ol>")
	var out []string
	for _, li := range strings.Split(page[i:i+j], "<li")[1:] {
		out = append(out, pgText("<li"+li))
	}
	return out
}

// TestPageShowsFailover: the page as first served (what a browser without
// JavaScript shows): the view's answer, since when, what it was and why;
// the node that failed with its error and probes; the timeline newest
// first; filters and the live part.
func TestPageShowsFailover(t *testing.T) {
	nodes := opsNodes(t, "sems1", "sems2")
	e := opsStart(t, opsConf{order: []string{"sems1", "sems2"}, http: true}, nodes)
	svc := e.c.service()
	code, page := testenv.HTTPGet(t, e.HTTP, "/")
	if code != http.StatusOK {
		t.Fatalf("/: %d %s", code, page)
	}
	if row := pgText(pgRow(page, "data-service", svc)); !strings.Contains(row, "default sems1 ") || !strings.Contains(row, "first node up in order") {
		t.Errorf("the page's row for %s reads %q, want the default view answering sems1, first node up in order", svc, row)
	}

	nodes["sems1"].stop()
	e.waitActive(t, "", "sems2")
	hiWait(t, e, 0, "failover", func(ev events.Event) bool { return hiView(e, events.KindActive, ev) })
	_, page = testenv.HTTPGet(t, e.HTTP, "/")
	row := pgText(pgRow(page, "data-service", svc))
	for _, want := range []string{svc + " default sems2 ", "was sems1", "sems1 › sems2", "sems1 is down: connect: connection refused"} {
		if !strings.Contains(row, want) {
			t.Errorf("after the failover the row for %s reads %q, want %q in it", svc, row, want)
		}
	}
	if !strings.Contains(pgRow(page, "data-service", svc), `class="warn"`) {
		t.Errorf("a view off its first node is not marked: %s", pgRow(page, "data-service", svc))
	}
	node := pgRow(page, "data-node", "sems1")
	if txt := pgText(node); !strings.Contains(txt, "sems1 down tcp") || !strings.Contains(txt, "connect: connection refused") || !strings.Contains(node, "<svg") || !strings.Contains(node, "failed") {
		t.Errorf("the row for sems1 reads %q, want down, tcp, the error and a sparkline with failed probes:\n%s", txt, node)
	}
	tl := pgTimeline(page)
	if len(tl) < 2 || !strings.Contains(tl[0], svc+": sems1 → sems2") || !strings.Contains(tl[1], "node sems1 up → down") {
		t.Errorf("timeline %q, want the failover first, then sems1 going down", tl)
	}

	// Filters work without JavaScript: a form GET.
	if _, p := testenv.HTTPGet(t, e.HTTP, "/?q=nothing"); pgRow(p, "data-service", svc) != "" || !strings.Contains(p, "No service matches.") {
		t.Errorf("?q=nothing still lists %s", svc)
	}
	if _, p := testenv.HTTPGet(t, e.HTTP, "/?q=KEYS"); pgRow(p, "data-service", svc) == "" {
		t.Errorf("?q=KEYS does not list %s", svc)
	}
	if _, p := testenv.HTTPGet(t, e.HTTP, "/?service=other.ops.test"); len(pgTimeline(p)) != 1 || !strings.Contains(pgTimeline(p)[0], "No events for this service yet.") {
		t.Errorf("the timeline of another service: %q, want none", pgTimeline(p))
	}
	if _, p := testenv.HTTPGet(t, e.HTTP, "/?service="+strings.TrimSuffix(svc, ".")); len(pgTimeline(p)) != 2 {
		t.Errorf("the timeline of %s: %q, want its failover and its node's fall", svc, pgTimeline(p))
	}

	// The live part the script fetches is the same rendering, without
	// the document around it. The age in "Since" ("1s") moves on between
	// the two requests, so it is left out of the comparison.
	_, live := testenv.HTTPGet(t, e.HTTP, "/?part=live")
	if strings.Contains(live, "<html") || strings.Contains(live, "<script") || pgAge.ReplaceAllString(pgText(pgRow(live, "data-service", svc)), "") != pgAge.ReplaceAllString(row, "") {
		t.Errorf("?part=live is not the page's live part:\n%s", live)
	}
}

// TestPageAdminNets: / is for admin_nets only, and sends a policy that
// keeps the browser from asking any other host.
func TestPageAdminNets(t *testing.T) {
	e := opsStart(t, opsConf{order: []string{"sems1"}, http: true, adminNets: `["127.0.0.1/32"]`}, opsNodes(t, "sems1"))
	for _, path := range []string{"/", "/?part=live", "/?q=keys"} {
		code, body := testenv.HTTPDo(t, "127.0.0.2", http.MethodGet, e.HTTP, path)
		if code != http.StatusForbidden || !strings.Contains(body, "admin_nets") || strings.Contains(body, "sems1") {
			t.Errorf("GET %s from 127.0.0.2 (outside admin_nets): %d %q, want 403 naming admin_nets and nothing of the state", path, code, body)
		}
	}
	resp, err := testenv.HTTPClient("127.0.0.1").Get("http://" + e.HTTP + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(csp, "default-src 'none';") || !strings.Contains(csp, "connect-src 'self'") || strings.Contains(csp, "http") {
		t.Errorf("GET / from 127.0.0.1: %d, CSP %q; want 200 and a policy allowing only this server", resp.StatusCode, csp)
	}
	if code, _ := testenv.HTTPDo(t, "127.0.0.1", http.MethodGet, e.HTTP, "/nothing-here"); code != http.StatusNotFound {
		t.Errorf("GET /nothing-here: %d, want 404", code)
	}
}

// pgLarge is an instance with n services in one zone, two nodes each with
// checks of type "none" (nothing is probed), every tenth service with its
// own order in location "east": the shape of zones/reload_bench_test.go's
// large config, served over HTTP.
type pgLarge struct {
	in   *dnsserver.Instance
	http string
}

func pgStartLarge(t testing.TB, n int) *pgLarge {
	t.Helper()
	c := testenv.Config{
		HTTP:      "127.0.0.1:0",
		Zones:     []testenv.Zone{{Origin: "big.test.", File: "big.test.zone", Text: "$ORIGIN big.test.\n$TTL 3600\n@ IN SOA ns1 hostmaster 1 3600 600 1209600 30\n  IN NS ns1\nns1 IN A 127.0.0.53\n"}},
		Locations: []testenv.Location{{Name: "east", Subnets: []string{"10.1.0.0/16"}}},
	}
	for i := range 2 * n {
		c.Nodes = append(c.Nodes, testenv.Node{Name: fmt.Sprintf("n%05d", i), Address: fmt.Sprintf("100.%d.%d.%d", 64+i>>16, i>>8&255, i&255),
			Check: "type = \"none\"\ninterval = \"60s\"\n"})
	}
	for s := range n {
		a, b := fmt.Sprintf("n%05d", 2*s), fmt.Sprintf("n%05d", 2*s+1)
		svc := testenv.Service{Name: fmt.Sprintf("s%05d.big.test.", s), TTL: 30, Policy: "failover", Nodes: []string{a, b}}
		if s%10 == 0 {
			svc.Orders = []testenv.Order{{Location: "east", Nodes: []string{b, a}}}
		}
		c.Services = append(c.Services, svc)
	}
	e := start(t, c, dnsserver.Options{Logger: testenv.Discard(), Version: "v0.0.0-page"})
	return &pgLarge{in: e.in, http: e.HTTP}
}

// TestPageLarge: with 10,000 services (20,000 nodes) the first response
// is one page of each table, far under 1 MB; the rest is a search or a
// page away.
func TestPageLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 10,000 services")
	}
	l := pgStartLarge(t, 10000)
	t0 := time.Now()
	code, page := testenv.HTTPGet(t, l.http, "/")
	took := time.Since(t0)
	if code != http.StatusOK {
		t.Fatalf("/: %d", code)
	}
	t.Logf("10,000 services: the first response is %d bytes, served in %s", len(page), took.Round(time.Millisecond))
	if len(page) >= 1<<20 {
		t.Errorf("the first response is %d bytes, want under 1 MB", len(page))
	}
	if rows := strings.Count(page, "data-service="); rows != 100 {
		t.Errorf("the first page has %d view rows, want 100", rows)
	}
	// Every tenth service has its own order in east: 11,000 views.
	if !strings.Contains(page, "views 1–100 of 11000") || !strings.Contains(page, "nodes 1–50 of 20000") {
		t.Errorf("the page does not say which 100 of 11000 views and 50 of 20000 nodes it shows")
	}
	for _, tc := range []struct{ query, want string }{
		{"/?q=s09999", `data-service="s09999.big.test."`},
		{"/?page=110", `data-service="s09999.big.test."`},
		{"/?page=999", `data-service="s09999.big.test."`}, // past the end: the last page
		{"/?npage=400", `data-node="n19999"`},
		{"/?q=s00010", `data-node="n00021"`}, // its nodes come with it
	} {
		if _, p := testenv.HTTPGet(t, l.http, tc.query); !strings.Contains(p, tc.want) {
			t.Errorf("GET %s: no %s in the page", tc.query, tc.want)
		}
	}
	// Ten services are eleven rows: page 1 ends with s00090's default
	// view, page 2 starts with its east view.
	if _, p := testenv.HTTPGet(t, l.http, "/?page=2"); strings.Contains(p, `data-service="s00090.big.test." data-view="default"`) || !strings.Contains(p, `data-service="s00090.big.test." data-view="east"`) {
		t.Errorf("page 2 does not start at the 101st view row")
	}
}

// TestPageCluster: in cluster mode the page shows the leader, the revision,
// the connection, each node's votes and each view's generation, on every
// member; each member's timeline has the agreed failover it applied.
func TestPageCluster(t *testing.T) {
	c := clStart(t, 2, "")
	c.nodes["sems1"].stop()
	c.waitAgreed(t, "sems2")
	for i, e := range c.ins {
		deadline := time.Now().Add(clWithin)
		var page string
		for {
			_, page = testenv.HTTPGet(t, e.in.HTTPAddr, "/")
			// Votes follow the observations; wait for both members'.
			if strings.Contains(pgText(pgRow(page, "data-node", "sems1")), "down 0/2") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("ns%d: sems1's row never showed down 0/2: %q", i+1, pgText(pgRow(page, "data-node", "sems1")))
			}
			time.Sleep(opsPoll) // poll interval
		}
		st := e.in.Status().Cluster
		if st == nil {
			t.Fatalf("ns%d: /status has no cluster part", i+1)
		}
		sec := page[strings.Index(page, `<section class="cluster"`):]
		sec = pgText(sec[:strings.Index(sec, "</section>")])
		for _, want := range []string{"leader " + st.Leader, "connected", "revision "} {
			if !strings.Contains(sec, want) {
				t.Errorf("ns%d: the cluster section reads %q, want %q in it", i+1, sec, want)
			}
		}
		if txt := pgText(pgRow(page, "data-node", "sems2")); !strings.Contains(txt, "up 2/2") {
			t.Errorf("ns%d: sems2's row reads %q, want the votes up 2/2", i+1, txt)
		}
		if row := pgText(pgRow(page, "data-service", admService)); !strings.Contains(row, "sems2 gen ") {
			t.Errorf("ns%d: the view reads %q, want sems2 with its generation", i+1, row)
		}
		if tl := pgTimeline(page); !slices.ContainsFunc(tl, func(s string) bool { return strings.Contains(s, admService+": sems1 → sems2") }) {
			t.Errorf("ns%d: the timeline %q has no failover sems1 → sems2", i+1, tl)
		}
	}
}
