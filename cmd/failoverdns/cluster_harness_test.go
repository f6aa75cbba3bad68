package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/failoverdns/failoverdns/dnsserver"
	"github.com/failoverdns/failoverdns/dnsserver/testenv"
	"github.com/failoverdns/failoverdns/zones/cluster/etcdtest"
	"github.com/failoverdns/failoverdns/zones/cluster/netns"
)

// The harness of the cluster fault tests and of bench/cluster.sh (README
// "Running several nameservers", "What each failure does"): inside a network namespace of its own,
// three real etcd members on 127.0.0.1-3, three failoverdns processes ns1-3
// on 127.0.0.11-13 (DNS, HTTP, etcd connections and health probes all leave
// from the instance's own address, so one iptables rule on an address cuts
// exactly one instance off), and nodes sems1-3 as TCP listeners on
// 127.0.10.1-3 the test opens and closes. Every instance is queried with
// real DNS queries in a loop from the start of the fault to the end, and
// etcd's decision and beat keys are watched, so a scenario can say what
// every instance answered at every moment and what etcd committed.
//
// Queries, UPDATEs and /status leave from cfClient, an address no fault
// names: a cut-off instance is cut from etcd, not from its clients.

const (
	cfClient    = "127.0.0.100"
	cfEMEA      = "127.0.99.5" // a client in location emea
	cfAPAC      = "127.0.98.5" // a client in location apac
	cfService   = "keys.demo.test."
	cfZone      = "demo.test."
	cfCluster   = "faults"
	cfPrefix    = "/failoverdns/" + cfCluster + "/v1/"
	cfDNSPort   = 53   // the namespace is ours: fixed ports cannot clash
	cfHTTPPort  = 8053 //
	cfNodePort  = 7000 //
	cfTTL       = 2 * time.Second
	cfWithin    = 30 * time.Second // generous: elections, leases, hold-downs under -race
	cfBinaryEnv = "FAILOVERDNS_FAULT_BINARY"
)

var cfInstanceIPs = []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"}

// cfOptions shape one environment.
type cfOptions struct {
	// ns is the test netns.Run runs in: iptables rules are refused to any
	// other, subtests included (see cfEnv.drop).
	ns            *testing.T
	etcd          string        // etcd binary; "" = the one on PATH
	every         time.Duration // query interval per instance; default 20ms
	localFailover time.Duration // local_failover_after; default 3s
}

// cfEnv is one etcd cluster, three instances and three nodes.
type cfEnv struct {
	o     cfOptions
	etcd  *etcdtest.Cluster
	cli   *clientv3.Client
	nodes map[string]*testenv.Endpoint
	ins   []*cfInstance
	rec   *cfRecorder
}

// cfInstance is one failoverdns process and its files.
type cfInstance struct {
	name, ip string
	*server
}

func (in *cfInstance) dnsAddr() string  { return net.JoinHostPort(in.ip, fmt.Sprint(cfDNSPort)) }
func (in *cfInstance) httpAddr() string { return net.JoinHostPort(in.ip, fmt.Sprint(cfHTTPPort)) }

// cfPrepare runs before netns.Run, in the parent and again in the child:
// the parent builds the binary once per test binary and hands its path to
// the child, which must not build it again (a build per scenario costs
// seconds of the two shared cores).
func cfPrepare(t *testing.T) {
	t.Helper()
	if netns.Inside(t) {
		if p := os.Getenv(cfBinaryEnv); p != "" {
			buildOnce.Do(func() { binPath = p })
		}
		return
	}
	etcdtest.Binary(t) // skips (fails under CI=true) without etcd
	t.Setenv(cfBinaryEnv, binary(t))
}

// cfStart starts etcd, the nodes and ns1-ns3, and waits until all three
// answer sems1 from a decision the cluster committed.
func cfStart(t *testing.T, o cfOptions) *cfEnv {
	t.Helper()
	if o.every == 0 {
		o.every = 20 * time.Millisecond
	}
	if o.localFailover == 0 {
		o.localFailover = 3 * time.Second
	}
	e := &cfEnv{o: o, nodes: map[string]*testenv.Endpoint{}}
	e.etcd = etcdtest.Start(t, etcdtest.Options{Binary: o.etcd})
	e.cli = e.etcd.Client(t)
	for _, name := range []string{"sems1", "sems2", "sems3"} {
		e.nodes[name] = testenv.NewEndpoint(t, peNodeIPs[name], cfNodePort, true)
	}
	for i, ip := range cfInstanceIPs {
		in := &cfInstance{name: fmt.Sprintf("ns%d", i+1), ip: ip}
		in.server = prepareBinary(t, e.config(in), binOpts{listen: []string{in.dnsAddr()}})
		e.ins = append(e.ins, in)
	}
	for _, in := range e.ins {
		in.Launch(t)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, in := range e.ins {
				t.Logf("%s stderr (last 60 lines):\n%s", in.name, cfTail(in.p.Stderr.String(), 60))
			}
		}
	})
	e.waitAnswer(t, e.all(), "", "sems1")
	e.waitLeader(t, e.all())
	e.rec = e.record(t)
	return e
}

func cfTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

var cfZoneText = testenv.ZoneHead("demo.test.", 2026120201, "127.0.0.11")

// config is in's config: every address is the instance's own; nodes are
// checked by TCP every 200ms (fall 2, rise 2); the service fails back
// after 3s.
func (e *cfEnv) config(in *cfInstance) testenv.Config {
	c := testenv.Config{
		HTTP:      in.httpAddr(),
		Server:    fmt.Sprintf("probe_source = %q\n", in.ip),
		TSIG:      []testenv.TSIG{{Name: peKeyName, Secret: peSecret}},
		Zones:     []testenv.Zone{{Origin: "demo.test.", File: "demo.test.zone", Text: cfZoneText}},
		Locations: []testenv.Location{{Name: "emea", Subnets: []string{"127.0.99.0/24"}}, {Name: "apac", Subnets: []string{"127.0.98.0/24"}}},
		Services: []testenv.Service{{Name: cfService, TTL: 5, Policy: "failover", Nodes: []string{"sems1", "sems2", "sems3"},
			Failback: "auto", FailbackAfter: "3s", WhenAllDown: "keep"}},
		Extra: fmt.Sprintf("[cluster]\nname = %q\ninstance = %q\netcd = [%s]\nsession_ttl = %q\nlocal_failover_after = %q\nrequest_timeout = \"1s\"\nsource = %q\n",
			cfCluster, in.name, testenv.Quoted(e.etcd.Endpoints()), cfTTL, e.o.localFailover, in.ip),
	}
	for _, n := range []string{"sems1", "sems2", "sems3"} {
		c.Nodes = append(c.Nodes, testenv.Node{Name: n, Address: peNodeIPs[n],
			Check: fmt.Sprintf("type = \"tcp\"\nport = %d\ninterval = \"200ms\"\ntimeout = \"150ms\"\nrise = 2\nfall = 2\n", cfNodePort)})
	}
	return c
}

// kill is kill -9 of an instance; it returns once the process is gone.
func (in *cfInstance) kill(t *testing.T) {
	t.Helper()
	in.p.Kill(t)
}

func (e *cfEnv) all() []int { return []int{0, 1, 2} }

// others are the instances but i.
func (e *cfEnv) others(i int) []int {
	var out []int
	for _, j := range e.all() {
		if j != i {
			out = append(out, j)
		}
	}
	return out
}

// drop adds an iptables rule in the namespace, removed when t ends at the
// latest, so a failed run leaves no partition to the next. netns accepts
// rules only from the test it runs in (o.ns), not from a subtest's t: on
// an iptables error it fails o.ns, which cannot happen to a healthy run.
func (e *cfEnv) drop(t *testing.T, r netns.Rule) (undo func()) {
	undo = netns.Drop(e.o.ns, r)
	t.Cleanup(undo)
	return undo
}

// cutOff partitions instance i from every etcd member, both ways (as
// drop, removed when t ends at the latest).
func (e *cfEnv) cutOff(t *testing.T, i int) (heal func()) {
	heal = netns.CutOff(e.o.ns, e.ins[i].ip, e.etcdAddrs()...)
	t.Cleanup(heal)
	return heal
}

// etcdAddrs are the etcd members' addresses, for cutOff.
func (e *cfEnv) etcdAddrs() []string {
	var out []string
	for i := range e.etcd.Members() {
		out = append(out, e.etcd.Member(i).Addr())
	}
	return out
}

// --- asking an instance ---------------------------------------------------

// answer asks instance i for the service from the client address from
// (cfClient: the default view) and names the answered node, or the rcode.
func (e *cfEnv) answer(i int, from string) (string, error) {
	q := new(dns.Msg).SetQuestion(cfService, dns.TypeA)
	q.RecursionDesired = false
	r, _, err := testenv.Client("udp", from, time.Second).Exchange(q, e.ins[i].dnsAddr())
	if err != nil {
		return "", err
	}
	return peNodeOf(testenv.AnswerOf(r)), nil
}

// waitAnswer waits until every instance of which answers want to clients
// at from ("" = cfClient) from a decision the cluster committed (its
// /status view is not local and carries a generation).
func (e *cfEnv) waitAnswer(t *testing.T, which []int, from, want string) {
	t.Helper()
	if from == "" {
		from = cfClient
	}
	loc := cfLocationOf(from)
	deadline := time.Now().Add(cfWithin)
	for {
		var got []string
		ok := true
		for _, i := range which {
			a, err := e.answer(i, from)
			v, _ := e.view(t, i, loc)
			got = append(got, fmt.Sprintf("%s=%s(err %v, local %v, generation %d)", e.ins[i].name, a, err, v.Local, v.Generation))
			if a != want || v.Local || v.Generation == 0 {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s the instances answer %s clients %v; want %s from a cluster decision everywhere", cfWithin, loc, got, want)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

func cfLocationOf(from string) string {
	switch from {
	case cfEMEA:
		return "emea"
	case cfAPAC:
		return "apac"
	}
	return ""
}

var cfHTTP = &http.Client{
	Timeout: 2 * time.Second,
	Transport: &http.Transport{
		DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(cfClient)}}).DialContext,
		DisableKeepAlives: true,
	},
}

// status reads instance i's /status.
func (e *cfEnv) status(i int) (dnsserver.Status, error) {
	var st dnsserver.Status
	resp, err := cfHTTP.Get("http://" + e.ins[i].httpAddr() + "/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("/status: %s", resp.Status)
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	if err == nil && st.Cluster == nil {
		err = fmt.Errorf("/status of %s has no cluster part", e.ins[i].name)
	}
	return st, err
}

// view is the service's view loc ("" = default) in instance i's /status.
func (e *cfEnv) view(t *testing.T, i int, loc string) (dnsserver.ViewStatus, dnsserver.Status) {
	st, err := e.status(i)
	if err != nil {
		return dnsserver.ViewStatus{}, st
	}
	for _, s := range st.Services {
		if s.Name != cfService {
			continue
		}
		for _, v := range s.Views {
			if v.Location == loc || (loc == "" && v.Location == "default") {
				return v, st
			}
		}
	}
	return dnsserver.ViewStatus{}, st
}

// waitStatus polls instance i's /status until ok says yes.
func (e *cfEnv) waitStatus(t *testing.T, i int, what string, ok func(dnsserver.Status) bool) dnsserver.Status {
	t.Helper()
	deadline := time.Now().Add(cfWithin)
	for {
		st, err := e.status(i)
		if err == nil && ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			b, _ := json.Marshal(st.Cluster)
			t.Fatalf("%s: not %s after %s (err %v); cluster status %s", e.ins[i].name, what, cfWithin, err, b)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

func (e *cfEnv) waitConnected(t *testing.T, i int, connected bool) {
	t.Helper()
	e.waitStatus(t, i, fmt.Sprintf("connected=%v", connected), func(st dnsserver.Status) bool { return st.Cluster.Connected == connected })
}

// waitLeader waits until exactly one instance of which leads and every one
// of them names it, and returns it.
func (e *cfEnv) waitLeader(t *testing.T, which []int) int {
	t.Helper()
	deadline := time.Now().Add(cfWithin)
	for {
		leader, leaders, named := -1, 0, map[string]bool{}
		for _, i := range which {
			st, err := e.status(i)
			if err != nil {
				named["?"] = true
				continue
			}
			named[st.Cluster.Leader] = true
			if st.Cluster.IsLeader {
				leader, leaders = i, leaders+1
			}
		}
		if leaders == 1 && len(named) == 1 && named[e.ins[leader].name] {
			return leader
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %d leaders among %v, leaders named %v; want one that all name", cfWithin, leaders, which, named)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// statusTXT reads _status.<service> from instance i.
func (e *cfEnv) statusTXT(t *testing.T, i int) []string {
	t.Helper()
	q := new(dns.Msg).SetQuestion("_status."+cfService, dns.TypeTXT)
	r, _, err := testenv.Client("tcp", cfClient, 2*time.Second).Exchange(q, e.ins[i].dnsAddr())
	if err != nil {
		return []string{err.Error()}
	}
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		return []string{fmt.Sprintf("rcode %s, %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))}
	}
	return r.Answer[0].(*dns.TXT).Txt
}

// pin is a signed UPDATE that pins location loc's view to node.
func cfPinMsg(loc, node string) *dns.Msg {
	m := new(dns.Msg).SetUpdate(cfZone)
	m.Insert([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: "_pin." + loc + "._loc." + cfService, Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: []string{node}}})
	return m
}

// update sends m, signed, to instance i over TCP and returns the rcode.
// The timeout is well above what the instance may take (two etcd request
// timeouts), so an unanswered UPDATE is a failure, not a SERVFAIL.
func (e *cfEnv) update(t *testing.T, i int, m *dns.Msg) int {
	t.Helper()
	m.SetTsig(peKeyName, dns.HmacSHA256, 300, time.Now().Unix())
	c := testenv.Client("tcp", cfClient, 10*time.Second)
	c.TsigSecret = map[string]string{peKeyName: peSecret}
	r, _, err := c.Exchange(m, e.ins[i].dnsAddr())
	if err != nil {
		t.Fatalf("UPDATE to %s: %v", e.ins[i].name, err)
	}
	return r.Rcode
}

// pinInEtcd reads the pin of location loc from etcd (a linearizable read):
// its node, "" when there is none.
func (e *cfEnv) pinInEtcd(t *testing.T, loc string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := e.cli.Get(ctx, cfPrefix+"pin/"+strings.TrimSuffix(cfService, ".")+"/"+loc)
	if err != nil {
		t.Fatalf("reading the pin from etcd: %v", err)
	}
	if len(r.Kvs) == 0 {
		// The key may name the service with its final dot.
		r, err = e.cli.Get(ctx, cfPrefix+"pin/"+cfService+"/"+loc)
		if err != nil {
			t.Fatalf("reading the pin from etcd: %v", err)
		}
	}
	if len(r.Kvs) == 0 {
		return ""
	}
	var v struct {
		Node string `json:"node"`
	}
	if err := json.Unmarshal(r.Kvs[0].Value, &v); err != nil {
		t.Fatalf("pin in etcd: %v: %s", err, r.Kvs[0].Value)
	}
	return v.Node
}

// --- the recorder -----------------------------------------------------------

// cfAnswer is a change of what one instance answers the default view.
type cfAnswer struct {
	at     time.Time
	answer string
}

// cfEvent is a key change seen by the test's own etcd watch.
type cfEvent struct {
	at    time.Time
	key   string // below the prefix
	value string // "" for a delete
}

// cfRecorder queries every instance every o.every and keeps the changes of
// its answer; it watches the decision and beat keys in etcd; and it keeps
// when each instance was left out of "connected" by a fault.
type cfRecorder struct {
	start time.Time
	mu    sync.Mutex
	ans   [][]cfAnswer
	local [][]cfSpan // when /status flagged the default view local
	out   [][]cfSpan // when the test counted an instance out (faulted)
	etcd  []cfEvent
	stop  func()
	// stopped is when the recording ended.
	stopped time.Time
}

type cfSpan struct{ from, to time.Time } // to zero: still open

func (e *cfEnv) record(t *testing.T) *cfRecorder {
	r := &cfRecorder{start: time.Now(), ans: make([][]cfAnswer, len(e.ins)), local: make([][]cfSpan, len(e.ins)), out: make([][]cfSpan, len(e.ins))}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	// The committed state at the start, then every change.
	get, err := e.cli.Get(ctx, cfPrefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("reading etcd: %v", err)
	}
	for _, kv := range get.Kvs {
		r.etcd = append(r.etcd, cfEvent{r.start, strings.TrimPrefix(string(kv.Key), cfPrefix), string(kv.Value)})
	}
	wch := e.cli.Watch(ctx, cfPrefix, clientv3.WithPrefix(), clientv3.WithRev(get.Header.Revision+1))
	wg.Add(1)
	go func() {
		defer wg.Done()
		for wr := range wch {
			now := time.Now()
			r.mu.Lock()
			for _, ev := range wr.Events {
				v := string(ev.Kv.Value)
				if ev.Type == clientv3.EventTypeDelete {
					v = ""
				}
				r.etcd = append(r.etcd, cfEvent{now, strings.TrimPrefix(string(ev.Kv.Key), cfPrefix), v})
			}
			r.mu.Unlock()
		}
	}()
	for i := range e.ins {
		wg.Add(2)
		go func() {
			defer wg.Done()
			testenv.Every(ctx, e.o.every, func() {
				a, err := e.answer(i, cfClient)
				if err != nil {
					return // a killed instance, or a lost datagram: no sample
				}
				now := time.Now()
				r.mu.Lock()
				if n := len(r.ans[i]); n == 0 || r.ans[i][n-1].answer != a {
					r.ans[i] = append(r.ans[i], cfAnswer{now, a})
				}
				r.mu.Unlock()
			})
		}()
		go func() {
			defer wg.Done()
			testenv.Every(ctx, 100*time.Millisecond, func() {
				v, _ := e.view(t, i, "")
				now := time.Now()
				r.mu.Lock()
				spans := r.local[i]
				open := len(spans) > 0 && spans[len(spans)-1].to.IsZero()
				switch {
				case v.Local && !open:
					r.local[i] = append(spans, cfSpan{from: now})
				case !v.Local && open:
					spans[len(spans)-1].to = now
				}
				r.mu.Unlock()
			})
		}()
	}
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			r.mu.Lock()
			r.stopped = time.Now()
			r.mu.Unlock()
		})
	}
	t.Cleanup(r.stop)
	// Every instance's answer is on record before any fault.
	deadline := time.Now().Add(cfWithin)
	for i := range e.ins {
		for len(r.answers(i, r.start)) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s answered no query of the recorder within %s", e.ins[i].name, cfWithin)
			}
			time.Sleep(e.o.every)
		}
	}
	return r
}

// countOut marks instance i as faulted from now: it is left out of the
// comparison of connected instances until countIn.
func (r *cfRecorder) countOut(i int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.out[i] = append(r.out[i], cfSpan{from: time.Now()})
}

func (r *cfRecorder) countIn(i int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.out[i]); n > 0 && r.out[i][n-1].to.IsZero() {
		r.out[i][n-1].to = time.Now()
	}
}

// answers returns instance i's answer changes since since (with the answer
// in force at since first).
func (r *cfRecorder) answers(i int, since time.Time) []cfAnswer {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []cfAnswer
	for _, a := range r.ans[i] {
		if a.at.Before(since) {
			out = []cfAnswer{a}
			continue
		}
		out = append(out, a)
	}
	return out
}

// wantOnly fails t unless every instance of which answered only want from
// since on (and answered at all).
func (r *cfRecorder) wantOnly(t *testing.T, e *cfEnv, which []int, since time.Time, want string) {
	t.Helper()
	for _, i := range which {
		as := r.answers(i, since)
		if len(as) == 0 {
			t.Errorf("%s answered nothing since the fault", e.ins[i].name)
		}
		for _, a := range as {
			if a.answer != want {
				t.Errorf("%s answered %s at +%.2fs (fault at +%.2fs): every answer should be %s; answers since: %s",
					e.ins[i].name, a.answer, a.at.Sub(r.start).Seconds(), since.Sub(r.start).Seconds(), want, r.describe(as))
				break
			}
		}
	}
}

// firstAt is when instance i first answered want after since (zero: never).
func (r *cfRecorder) firstAt(i int, since time.Time, want string) time.Time {
	for _, a := range r.answers(i, since) {
		if a.answer == want && !a.at.Before(since) {
			return a.at
		}
	}
	return time.Time{}
}

func (r *cfRecorder) describe(as []cfAnswer) string {
	var b []string
	for _, a := range as {
		b = append(b, fmt.Sprintf("+%.2fs %s", a.at.Sub(r.start).Seconds(), a.answer))
	}
	return strings.Join(b, ", ")
}

// beatBy is when the test's watch first saw a beat written by another
// leader than old after since (zero: not yet).
func (r *cfRecorder) beatBy(old string, since time.Time) (time.Time, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.etcd {
		if ev.key != "beat" || ev.at.Before(since) || ev.value == "" {
			continue
		}
		var b struct {
			Leader string `json:"leader"`
		}
		if json.Unmarshal([]byte(ev.value), &b) == nil && b.Leader != old {
			return ev.at, b.Leader
		}
	}
	return time.Time{}, ""
}

// waitNewLeader waits for the first beat by another leader than old and
// returns when it came and who wrote it.
func (e *cfEnv) waitNewLeader(t *testing.T, old string, since time.Time) (time.Time, string) {
	t.Helper()
	deadline := time.Now().Add(cfWithin)
	for {
		if at, who := e.rec.beatBy(old, since); !at.IsZero() {
			return at, who
		}
		if time.Now().After(deadline) {
			t.Fatalf("no beat by a leader other than %s within %s", old, cfWithin)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

func cfIndex(name string) int {
	var i int
	fmt.Sscanf(name, "ns%d", &i)
	return i - 1
}

func cfHas(lines []string, s string) bool {
	return slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, s) })
}
