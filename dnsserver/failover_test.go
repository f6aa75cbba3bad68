package dnsserver_test

// Acceptance tests of failover services: a real failoverdns instance (UDP
// and TCP listeners, prober, engine) in front of real local backends on
// loopback addresses 127.0.10.x, queried over the wire. Nothing here is sent
// to a non-loopback address: answered addresses in 192.0.2.0/24 are only
// ever answered, the checks probe their loopback target.

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/dnsserver"
	"github.com/failoverdns/failoverdns/dnsserver/testenv"
	"github.com/failoverdns/failoverdns/health"
	"github.com/failoverdns/failoverdns/zones"
)

const (
	foService = "keys.failover.test." // the service every test serves
	foHost    = "keys.failover.test"  // the name its certificates are for
	foTTL     = 7                     // distinct from the zone's 300 and the default 30
	// foDeadline bounds every wait for something that should happen
	// within a few probe intervals: generous, for noisy 2-core CI.
	foDeadline = 10 * time.Second
	// foPoll is the interval between DNS queries while waiting.
	foPoll = 50 * time.Millisecond
)

// foTiming is the check schedule of most tests: 50ms probes, two results to
// change state. The timeout is generous so a busy machine under -race does
// not time out a healthy probe (the initial round has no rise/fall).
const foTiming = "interval = \"50ms\"\ntimeout = \"1s\"\nrise = 2\nfall = 2\n"

// ---------------------------------------------------------------------------
// Backends

// Listener modes.
const (
	foServe     = iota // hand connections to the server
	foHang             // accept and hold: the TCP handshake succeeds, nothing ever answers
	foBlackHole        // stop accepting, queue full: SYNs are dropped
)

// foListener is a TCP listener whose behaviour can be switched without
// closing the socket (so no probe ever sees "connection refused" while the
// test switches it).
type foListener struct {
	*net.TCPListener
	mode      atomic.Int32
	accepting atomic.Int32 // Accept calls in the kernel now

	mu     sync.Mutex
	held   []net.Conn
	closed chan struct{}
	once   sync.Once
}

func (l *foListener) Accept() (net.Conn, error) {
	for {
		if l.mode.Load() == foBlackHole {
			<-l.closed
			return nil, net.ErrClosed
		}
		l.accepting.Add(1)
		c, err := l.TCPListener.Accept()
		l.accepting.Add(-1)
		if err != nil {
			if l.mode.Load() == foBlackHole && errors.Is(err, os.ErrDeadlineExceeded) {
				continue // blackHole stopped this Accept
			}
			return nil, err
		}
		if l.mode.Load() == foServe {
			return c, nil
		}
		l.mu.Lock()
		l.held = append(l.held, c)
		l.mu.Unlock()
	}
}

func (l *foListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	l.mu.Lock()
	for _, c := range l.held {
		c.Close()
	}
	l.held = nil
	l.mu.Unlock()
	return l.TCPListener.Close()
}

// foBackend is one node's service on a loopback address: a TCP acceptor, or
// an HTTP or HTTPS server answering with the status the test sets.
type foBackend struct {
	t      testing.TB
	kind   string // "tcp", "http" or "https" ("tls" checks use "https")
	ip     string // 127.0.10.x
	cert   tls.Certificate
	status atomic.Int32 // HTTP status to answer
	hits   atomic.Int64 // requests (HTTP) or connections (TCP) served
	// handler, when set before start, replaces the status handler.
	handler http.HandlerFunc

	mu      sync.Mutex
	port    int
	ln      *foListener
	srv     *http.Server
	done    <-chan struct{} // closed when the serving goroutine returned
	fillers []net.Conn
}

// foNewBackend starts a backend on ip (port chosen by the kernel) and stops
// it when the test ends.
func foNewBackend(t testing.TB, kind, ip string, cert tls.Certificate) *foBackend {
	t.Helper()
	b := &foBackend{t: t, kind: kind, ip: ip, cert: cert}
	b.status.Store(http.StatusOK)
	b.start()
	t.Cleanup(b.stop)
	return b
}

// start listens (again) on the backend's address and serves.
func (b *foBackend) start() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ln != nil {
		b.t.Fatalf("backend %s already running", b.addr())
	}
	var ln net.Listener
	var err error
	for end := time.Now().Add(foDeadline); ; {
		ln, err = net.Listen("tcp", net.JoinHostPort(b.ip, fmt.Sprint(b.port)))
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(end) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		b.t.Fatalf("backend listen: %v", err)
	}
	b.port = ln.Addr().(*net.TCPAddr).Port
	fl := &foListener{TCPListener: ln.(*net.TCPListener), closed: make(chan struct{})}
	b.ln = fl
	if b.kind == "tcp" {
		b.done = testenv.Serve(fl, func(c net.Conn) { b.hits.Add(1); c.Close() })
		return
	}
	done := make(chan struct{})
	b.done = done
	h := b.handler
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			b.hits.Add(1)
			w.WriteHeader(int(b.status.Load()))
		}
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0), // TLS handshake failures are the point of some tests
	}
	b.srv = srv
	go func() {
		defer close(done)
		if b.kind == "https" {
			srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{b.cert}}
			_ = srv.ServeTLS(fl, "", "")
			return
		}
		_ = srv.Serve(fl)
	}()
}

// addr is the backend's ip:port, as a check targets it.
func (b *foBackend) addr() string { return net.JoinHostPort(b.ip, fmt.Sprint(b.port)) }

// stop closes the listener (new connections are refused) and every open
// connection, and waits for the server goroutine.
func (b *foBackend) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ln == nil {
		return
	}
	if b.srv != nil {
		b.srv.Close()
		b.srv = nil
	}
	b.ln.Close()
	<-b.done
	for _, c := range b.fillers {
		c.Close()
	}
	b.fillers, b.ln = nil, nil
}

// hang makes the backend accept connections and never answer on them.
func (b *foBackend) hang() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ln.mode.Store(foHang)
}

// blackHole stops accepting and fills the accept queue, so that the kernel
// drops further SYNs: connecting hangs until the prober's timeout, as with
// a host that silently eats packets. Linux lets listen(2) be called again to
// shrink the backlog of a live socket (see health/backlog_linux_test.go);
// /proc/net/tcp tells when the queue is full, so a dial that merely timed
// out on a busy machine is never taken for a full queue.
func (b *foBackend) blackHole() {
	b.t.Helper()
	if runtime.GOOS != "linux" {
		b.t.Skip("a black hole needs Linux: listen(2) on a live socket, /proc/net/tcp")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.ln
	l.mode.Store(foBlackHole)
	// End the Accept that may be pending: from now on no connection
	// leaves the queue. The deadline in the past stays in force.
	if err := l.SetDeadline(time.Unix(1, 0)); err != nil {
		b.t.Fatal(err)
	}
	end := time.Now().Add(foDeadline)
	for l.accepting.Load() != 0 {
		if time.Now().After(end) {
			b.t.Fatalf("black hole %s: Accept did not return", b.addr())
		}
		time.Sleep(time.Millisecond)
	}
	rc, err := l.SyscallConn()
	if err != nil {
		b.t.Fatal(err)
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) { lerr = syscall.Listen(int(fd), 0) }); err != nil {
		b.t.Fatal(err)
	}
	if lerr != nil {
		b.t.Fatal(lerr)
	}
	// A backlog of 0 queues one connection; then the queue is full.
	for {
		n, limit, err := foAcceptQueue(l.Addr().(*net.TCPAddr))
		if err != nil {
			b.t.Fatalf("black hole %s: %v", b.addr(), err)
		}
		if n > limit {
			return
		}
		if time.Now().After(end) {
			b.t.Fatalf("black hole %s: the accept queue holds %d (limit %d) after %s", b.addr(), n, limit, foDeadline)
		}
		// A probe may take the last place first: then this dial hangs,
		// and the queue is checked again.
		if c, err := net.DialTimeout("tcp", b.addr(), 500*time.Millisecond); err == nil {
			b.fillers = append(b.fillers, c)
		}
	}
}

// foAcceptQueue returns how many connections wait in the accept queue of
// the IPv4 listener at a, and its limit, from /proc/net/tcp (for a listening
// socket, rx_queue is the queue length and tx_queue the backlog).
func foAcceptQueue(a *net.TCPAddr) (n, limit int, err error) {
	raw, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return 0, 0, err
	}
	ip := a.IP.To4()
	if ip == nil {
		return 0, 0, fmt.Errorf("%s is not IPv4", a)
	}
	local := fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], a.Port)
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[1] != local || f[3] != "0A" { // 0A: LISTEN
			continue
		}
		var tx, rx int
		if _, err := fmt.Sscanf(f[4], "%x:%x", &tx, &rx); err != nil {
			return 0, 0, fmt.Errorf("/proc/net/tcp: %q: %v", f[4], err)
		}
		return rx, tx, nil
	}
	return 0, 0, fmt.Errorf("no listening socket %s in /proc/net/tcp", local)
}

// ---------------------------------------------------------------------------
// Certificates, made in the test so none can expire under us.

// foCerts returns the PKI shared by the tests of this package.
func foCerts(t testing.TB) testenv.PKI { t.Helper(); return testenv.SharedPKI(t, foHost) }

// ---------------------------------------------------------------------------
// Config and instance

// foNode is one [[node]] of a test config.
type foNode = testenv.Node

// foSvc is the [[service]] of a test config.
type foSvc struct {
	nodes    []string
	failback string // default auto
	after    string // default 1s
	allDown  string // default keep
}

// foCheck is a [node.check] body probing backend b with check type typ
// (which may differ from the backend's kind: "tls" against "https").
func foCheck(typ string, b *foBackend, extra string) string {
	return fmt.Sprintf("type = %q\nport = %d\ntarget = %q\n%s", typ, b.port, b.ip, extra)
}

// foNodeFor is node i (1-based) answered at 192.0.2.1i, probed at b.
func foNodeFor(i int, typ string, b *foBackend, extra string) foNode {
	return foNode{
		Name:        fmt.Sprintf("n%d", i),
		Address:     fmt.Sprintf("192.0.2.1%d", i),
		Replication: fmt.Sprintf("10.99.0.1%d", i),
		Check:       foCheck(typ, b, extra),
	}
}

// foConfig serves the failover zone with nodes and the service svc.
func foConfig(t testing.TB, nodes []foNode, svc foSvc) testenv.Config {
	t.Helper()
	s := testenv.Service{Name: foService, TTL: foTTL, Policy: "failover", Nodes: svc.nodes,
		Failback: cmp.Or(svc.failback, "auto"), FailbackAfter: cmp.Or(svc.after, "1s"), WhenAllDown: cmp.Or(svc.allDown, "keep")}
	if s.Nodes == nil {
		for _, n := range nodes {
			s.Nodes = append(s.Nodes, n.Name)
		}
	}
	return testenv.Config{
		Zones:    []testenv.Zone{{Origin: "failover.test.", File: testenv.Testdata(t, 1, "failover", "failover.test.zone")}},
		Nodes:    nodes,
		Services: []testenv.Service{s},
	}
}

// foStart starts an instance on foConfig(nodes, svc) on 127.0.0.1:0; it is
// closed when the test ends. It returns the instance and its DNS address.
func foStart(t testing.TB, nodes []foNode, svc foSvc) (*dnsserver.Instance, string) {
	t.Helper()
	e := start(t, foConfig(t, nodes, svc), dnsserver.Options{Version: "v0.0.0-failover-test"})
	return e.in, e.Addr
}

// ---------------------------------------------------------------------------
// Queries

// foQuery sends one query for the service over network ("udp" or "tcp").
func foQuery(network, addr string, qtype uint16) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	q := new(dns.Msg)
	q.SetQuestion(foService, qtype)
	q.RecursionDesired = false
	r, _, err := c.Exchange(q, addr)
	if err != nil {
		return nil, err
	}
	if r.Id != q.Id {
		return nil, fmt.Errorf("reply id %d, query id %d", r.Id, q.Id)
	}
	return r, nil
}

// foRead checks a reply for the service strictly: NOERROR, AA, exactly one
// record of the asked type at the service name with the service's TTL. It
// returns that record's address, or "SERVFAIL" for a bare SERVFAIL.
func foRead(r *dns.Msg, qtype uint16) (string, error) {
	if r.Rcode == dns.RcodeServerFailure {
		if len(r.Answer) != 0 {
			return "", fmt.Errorf("SERVFAIL with %d answer records", len(r.Answer))
		}
		return "SERVFAIL", nil
	}
	if r.Rcode != dns.RcodeSuccess {
		return "", fmt.Errorf("rcode %s, want NOERROR", dns.RcodeToString[r.Rcode])
	}
	if !r.Authoritative {
		return "", errors.New("AA is not set")
	}
	if len(r.Answer) != 1 {
		return "", fmt.Errorf("%d answer records, want exactly one:\n%s", len(r.Answer), foRRs(r.Answer))
	}
	rr := r.Answer[0]
	h := rr.Header()
	if !strings.EqualFold(h.Name, foService) || h.Class != dns.ClassINET || h.Rrtype != qtype {
		return "", fmt.Errorf("answer %s, want %s IN %s", rr, foService, dns.TypeToString[qtype])
	}
	if h.Ttl != foTTL {
		return "", fmt.Errorf("answer %s: TTL %d, want the service ttl %d", rr, h.Ttl, foTTL)
	}
	if a, ok := zones.AddrOf(rr); ok {
		return a.String(), nil
	}
	return "", fmt.Errorf("answer %s is not an address", rr)
}

func foRRs(rrs []dns.RR) string {
	var b strings.Builder
	for _, rr := range rrs {
		b.WriteString("\t" + rr.String() + "\n")
	}
	return b.String()
}

// foAsk queries A over UDP and returns the answered address or "SERVFAIL";
// anything else fails the test.
func foAsk(t testing.TB, addr string) string {
	t.Helper()
	r, err := foQuery("udp", addr, dns.TypeA)
	if err != nil {
		t.Fatalf("query %s: %v", foService, err)
	}
	a, err := foRead(r, dns.TypeA)
	if err != nil {
		t.Fatalf("query %s: %v", foService, err)
	}
	return a
}

// foWait polls the A answer every foPoll until it is want and returns when
// that answer was received. Any answer that is neither want nor in allowed
// fails the test at once, as does the deadline.
func foWait(t testing.TB, addr, want string, within time.Duration, allowed ...string) time.Time {
	t.Helper()
	var seen []string
	deadline := time.Now().Add(within)
	for {
		a := foAsk(t, addr)
		at := time.Now()
		if len(seen) == 0 || seen[len(seen)-1] != a {
			seen = append(seen, a)
		}
		if a == want {
			return at
		}
		if !slices.Contains(allowed, a) {
			t.Fatalf("answer %s while waiting for %s (allowed meanwhile: %v); answers seen: %v", a, want, allowed, seen)
		}
		if at.After(deadline) {
			t.Fatalf("answer still not %s after %s; answers seen: %v", want, within, seen)
		}
		time.Sleep(foPoll)
	}
}

// foWaitHealth waits until the prober reports node as up (or down) and
// returns its state.
func foWaitHealth(t testing.TB, in *dnsserver.Instance, node string, up bool, within time.Duration) health.State {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		s, ok := in.Prober.Snapshot()[node]
		if ok && s.Checked && s.Up == up {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s: prober state %+v after %s, want Up=%v", node, s, within, up)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// foWaitDecision waits until the published snapshot's decision for the
// service has a reason containing substr.
func foWaitDecision(t testing.TB, in *dnsserver.Instance, substr string) zones.Decision {
	t.Helper()
	deadline := time.Now().Add(foDeadline)
	for {
		d, _ := in.Server.Snapshot().Decision(foService, 0)
		if strings.Contains(d.Reason, substr) {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("decision %+v after %s, want a reason with %q", d, foDeadline, substr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// 1. Failover and failback, per check type.

func TestFailoverFailback(t *testing.T) {
	pki := foCerts(t)
	for _, typ := range []string{"tcp", "http", "https"} {
		for _, failback := range []string{"auto", "manual"} {
			t.Run(typ+"/"+failback, func(t *testing.T) {
				testFailoverFailback(t, pki, typ, failback)
			})
		}
	}
}

func testFailoverFailback(t *testing.T, pki testenv.PKI, typ, failback string) {
	const after = time.Second
	extra := foTiming
	if typ == "https" {
		extra += fmt.Sprintf("ca_file = %q\n", pki.CAFile)
	}
	var nodes []foNode
	var backends []*foBackend
	for i := 1; i <= 3; i++ {
		b := foNewBackend(t, typ, fmt.Sprintf("127.0.10.%d", i), pki.Good)
		backends = append(backends, b)
		nodes = append(nodes, foNodeFor(i, typ, b, extra))
	}
	if typ == "tcp" {
		// The default probe target: the answered address itself, when
		// it is loopback.
		for i := range nodes {
			nodes[i].Address = backends[i].ip
			nodes[i].Check = fmt.Sprintf("type = \"tcp\"\nport = %d\n%s", backends[i].port, extra)
		}
	}
	n1, n2 := nodes[0].Address, nodes[1].Address
	in, addr := foStart(t, nodes, foSvc{failback: failback, after: after.String()})

	// The initial probe round already ran: the first answer is node 1.
	if a := foAsk(t, addr); a != n1 {
		t.Fatalf("first answer %s, want node 1 %s", a, n1)
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		if s := in.Prober.Snapshot()[n]; !s.Checked || !s.Up {
			t.Fatalf("after Start, node %s is %+v, want checked and up", n, s)
		}
	}

	// Node 1 goes away: the answer moves to node 2, never to node 3.
	backends[0].stop()
	foWait(t, addr, n2, foDeadline, n1)
	if s := in.Prober.Snapshot()["n1"]; s.Up {
		t.Errorf("answer moved to node 2 while the prober says n1 is up: %+v", s)
	}

	// Node 1 comes back on the same address and port.
	backends[0].start()
	st := foWaitHealth(t, in, "n1", true, foDeadline)
	ready := st.Since.Add(after)

	if failback == "manual" {
		// It never returns by itself: watch for twice failback_after.
		seen := 0
		for end := time.Now().Add(2 * after); time.Now().Before(end); time.Sleep(foPoll) {
			if a := foAsk(t, addr); a != n2 {
				t.Fatalf("failback = manual: answer %s %s after node 1 came back, want node 2 %s",
					a, time.Since(st.Since).Round(time.Millisecond), n2)
			}
			seen++
		}
		if s := in.Prober.Snapshot()["n1"]; !s.Up || !s.Since.Equal(st.Since) {
			t.Fatalf("node 1 did not stay up during the observation: %+v", s)
		}
		if d, _ := in.Server.Snapshot().Decision(foService, 0); d.Active != "n2" {
			t.Errorf("decision %+v, want n2", d)
		}
		t.Logf("manual: %d answers over %s after node 1 came back, all node 2", seen, 2*after)
		return
	}

	// failback = auto: still node 2 until node 1 has been up for
	// failback_after, then node 1.
	early := 0
	deadline := time.Now().Add(foDeadline)
	for {
		a := foAsk(t, addr)
		at := time.Now()
		if a == n1 {
			if at.Before(ready) {
				t.Fatalf("failback to node 1 %s after it came back, before failback_after %s",
					at.Sub(st.Since).Round(time.Millisecond), after)
			}
			t.Logf("auto: failback %s after node 1 came back (failback_after %s); %d answers of node 2 before",
				at.Sub(st.Since).Round(time.Millisecond), after, early)
			break
		}
		if a != n2 {
			t.Fatalf("answer %s during the failback hold-down, want node 2 %s", a, n2)
		}
		if at.Before(ready) {
			early++
		}
		if at.After(deadline) {
			t.Fatalf("no failback to node 1 %s after it came back (failback_after %s)", at.Sub(st.Since), after)
		}
		time.Sleep(foPoll)
	}
	if early == 0 {
		// Only possible when this test was starved for a whole second.
		t.Errorf("no answer was observed during the hold-down: cannot tell that the failback waited")
	}
	if s := in.Prober.Snapshot()["n1"]; !s.Since.Equal(st.Since) {
		t.Fatalf("node 1 flapped during the hold-down (%+v): the test proves nothing", s)
	}
}

// Two higher-priority nodes come back one after the other, the second
// within the first's hold-down: the answer must go to node 2 when its
// hold-down ends and on to node 1 when node 1's ends, with no other health
// change to wake the engine.
func TestFailbackSecondNodeThenFirst(t *testing.T) {
	const after = time.Second
	var nodes []foNode
	var backends []*foBackend
	for i := 1; i <= 3; i++ {
		b := foNewBackend(t, "tcp", fmt.Sprintf("127.0.10.%d", i), tls.Certificate{})
		backends = append(backends, b)
		nodes = append(nodes, foNodeFor(i, "tcp", b, foTiming))
	}
	n1, n2, n3 := nodes[0].Address, nodes[1].Address, nodes[2].Address
	in, addr := foStart(t, nodes, foSvc{after: after.String()})
	if a := foAsk(t, addr); a != n1 {
		t.Fatalf("first answer %s, want node 1 %s", a, n1)
	}
	backends[0].stop()
	backends[1].stop()
	foWait(t, addr, n3, foDeadline, n1, n2)

	backends[1].start()
	s2 := foWaitHealth(t, in, "n2", true, foDeadline)
	backends[0].start()
	s1 := foWaitHealth(t, in, "n1", true, foDeadline)
	if !s1.Since.Before(s2.Since.Add(after)) {
		t.Skipf("machine too slow: node 1 came back %s after node 2, past node 2's hold-down", s1.Since.Sub(s2.Since))
	}
	at2 := foWait(t, addr, n2, foDeadline, n3)
	if at2.Before(s2.Since.Add(after)) {
		t.Errorf("failback to node 2 %s after it came back, before failback_after", at2.Sub(s2.Since))
	}
	at1 := foWait(t, addr, n1, foDeadline, n2)
	if at1.Before(s1.Since.Add(after)) {
		t.Errorf("failback to node 1 %s after it came back, before failback_after", at1.Sub(s1.Since))
	}
	for _, n := range []string{"n1", "n2"} {
		if s := in.Prober.Snapshot()[n]; !s.Up {
			t.Errorf("node %s went down during the test: %+v", n, s)
		}
	}
}

// ---------------------------------------------------------------------------
// 2. Rise/fall: a node failing every other probe never moves the answer.

func TestFailoverNoFlap(t *testing.T) {
	const probes = 30
	b1 := &foBackend{}
	b1.handler = func(w http.ResponseWriter, r *http.Request) {
		// Probe 1 (the initial round) succeeds, then fail, succeed, ...:
		// never two failures in a row, let alone fall = 3.
		if b1.hits.Add(1)%2 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}
	b1.t, b1.kind, b1.ip = t, "http", "127.0.10.1"
	b1.status.Store(http.StatusOK)
	b1.start()
	t.Cleanup(b1.stop)
	b2 := foNewBackend(t, "http", "127.0.10.2", tls.Certificate{})
	timing := "interval = \"50ms\"\ntimeout = \"1s\"\nrise = 2\nfall = 3\n"
	nodes := []foNode{foNodeFor(1, "http", b1, timing), foNodeFor(2, "http", b2, timing)}
	n1 := nodes[0].Address
	in, addr := foStart(t, nodes, foSvc{})
	since := foWaitHealth(t, in, "n1", true, time.Second).Since

	answers := 0
	deadline := time.Now().Add(4 * foDeadline)
	for b1.hits.Load() <= probes {
		if a := foAsk(t, addr); a != n1 {
			t.Fatalf("answer %s after %d probes of a node failing every other probe (fall = 3), want node 1 %s",
				a, b1.hits.Load(), n1)
		}
		answers++
		if s := in.Prober.Snapshot()["n1"]; !s.Up || !s.Since.Equal(since) {
			t.Fatalf("prober state of n1 changed after %d probes: %+v", b1.hits.Load(), s)
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d probes in %s", b1.hits.Load(), 4*foDeadline)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The backend really did fail: the prober saw failures.
	fails := 0
	for range 100 {
		if !in.Prober.Snapshot()["n1"].Last.OK {
			fails++
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if fails == 0 {
		t.Errorf("the prober never saw a failed probe of n1: the backend did not flap")
	}
	t.Logf("%d probes, %d answers, all node 1", b1.hits.Load(), answers)
}

// ---------------------------------------------------------------------------
// 3. A node that hangs or black-holes is down after its timeout.

func TestFailoverTimeouts(t *testing.T) {
	const timing = "interval = \"50ms\"\ntimeout = \"300ms\"\nrise = 2\nfall = 2\n"
	for _, tc := range []struct {
		name, typ string
		breakIt   func(*foBackend)
	}{
		{"hung http", "http", (*foBackend).hang},
		{"hung https", "https", (*foBackend).hang},
		{"black-holed tcp", "tcp", (*foBackend).blackHole},
		{"black-holed http", "http", (*foBackend).blackHole},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pki := foCerts(t)
			extra := timing
			if tc.typ == "https" {
				extra += fmt.Sprintf("ca_file = %q\n", pki.CAFile)
			}
			b1 := foNewBackend(t, tc.typ, "127.0.10.1", pki.Good)
			b2 := foNewBackend(t, tc.typ, "127.0.10.2", pki.Good)
			nodes := []foNode{foNodeFor(1, tc.typ, b1, extra), foNodeFor(2, tc.typ, b2, extra)}
			n1, n2 := nodes[0].Address, nodes[1].Address
			in, addr := foStart(t, nodes, foSvc{})
			if a := foAsk(t, addr); a != n1 {
				t.Fatalf("first answer %s, want node 1 %s", a, n1)
			}
			// The socket stays open throughout: no probe is refused, so
			// only the timeout can take node 1 down.
			tc.breakIt(b1)
			foWait(t, addr, n2, foDeadline, n1)
			s := in.Prober.Snapshot()["n1"]
			if s.Up || s.Last.Err != "timeout after 300ms" {
				t.Errorf("n1 state %+v, want down with \"timeout after 300ms\"", s)
			}
			if d, _ := in.Server.Snapshot().Decision(foService, 0); !strings.Contains(d.Reason, "n1 is down: timeout after 300ms") {
				t.Errorf("decision reason %q, want it to say n1 timed out", d.Reason)
			}
		})
	}

	t.Run("black-holed at boot", func(t *testing.T) {
		b1 := foNewBackend(t, "tcp", "127.0.10.1", tls.Certificate{})
		b2 := foNewBackend(t, "tcp", "127.0.10.2", tls.Certificate{})
		b1.blackHole()
		nodes := []foNode{foNodeFor(1, "tcp", b1, timing), foNodeFor(2, "tcp", b2, timing)}
		start := time.Now()
		in, addr := foStart(t, nodes, foSvc{})
		if took := time.Since(start); took < 300*time.Millisecond {
			t.Errorf("Start took %s: the initial probe of a black hole returned before its 300ms timeout", took)
		}
		if a := foAsk(t, addr); a != nodes[1].Address {
			t.Fatalf("first answer %s, want node 2 %s (node 1 is black-holed)", a, nodes[1].Address)
		}
		if s := in.Prober.Snapshot()["n1"]; !s.Checked || s.Up || s.Last.Err != "timeout after 300ms" {
			t.Errorf("n1 state %+v, want checked, down, \"timeout after 300ms\"", s)
		}
	})
}

// ---------------------------------------------------------------------------
// 4. Certificates: the wrong name or an expired certificate is a down node.

func TestFailoverCertificates(t *testing.T) {
	pki := foCerts(t)
	for _, tc := range []struct {
		name    string
		typ     string // check type; the backend is always HTTPS
		cert    tls.Certificate
		extra   string
		wantN1  bool   // node 1 up and answered
		wantErr string // substring of node 1's last error
	}{
		{"https good", "https", pki.Good, "", true, ""},
		{"https wrong name", "https", pki.WrongName, "", false, "tls: certificate valid for other.test, not keys.failover.test"},
		{"https expired", "https", pki.Expired, "", false, "tls: certificate expired"},
		{"https wrong name insecure", "https", pki.WrongName, "insecure = true\n", true, ""},
		{"https expired insecure", "https", pki.Expired, "insecure = true\n", true, ""},
		{"tls good", "tls", pki.Good, "", true, ""},
		{"tls wrong name", "tls", pki.WrongName, "", false, "tls: certificate valid for other.test, not keys.failover.test"},
		{"tls expired", "tls", pki.Expired, "", false, "tls: certificate expired"},
		{"tls expires within min_validity", "tls", pki.ShortLife, "", false, "within min_validity 72h0m0s"},
		{"tls expires after min_validity", "tls", pki.ShortLife, "min_validity = \"30m\"\n", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b1 := foNewBackend(t, "https", "127.0.10.1", tc.cert)
			b2 := foNewBackend(t, "https", "127.0.10.2", pki.Good)
			ca := fmt.Sprintf("ca_file = %q\n", pki.CAFile)
			nodes := []foNode{
				foNodeFor(1, tc.typ, b1, foTiming+ca+tc.extra),
				foNodeFor(2, tc.typ, b2, foTiming+ca),
			}
			want := nodes[1].Address
			if tc.wantN1 {
				want = nodes[0].Address
			}
			in, addr := foStart(t, nodes, foSvc{})
			// From the start: the initial round decided.
			if a := foAsk(t, addr); a != want {
				t.Fatalf("first answer %s, want %s (n1: %+v)", a, want, in.Prober.Snapshot()["n1"])
			}
			s := in.Prober.Snapshot()["n1"]
			if !s.Checked || s.Up != tc.wantN1 || !strings.Contains(s.Last.Err, tc.wantErr) {
				t.Errorf("n1 state %+v, want Up=%v with error containing %q", s, tc.wantN1, tc.wantErr)
			}
			if s2 := in.Prober.Snapshot()["n2"]; !s2.Up {
				t.Errorf("n2 (good certificate) is down: %+v", s2)
			}
			// And it stays so over a few probes.
			for range 5 {
				time.Sleep(foPoll)
				if a := foAsk(t, addr); a != want {
					t.Fatalf("answer %s, want %s (n1: %+v)", a, want, in.Prober.Snapshot()["n1"])
				}
			}
		})
	}
}

// ---------------------------------------------------------------------------
// 5. All nodes down, and a node dead at boot.

func TestFailoverAllDown(t *testing.T) {
	for _, allDown := range []string{"keep", "first", "servfail"} {
		t.Run(allDown, func(t *testing.T) {
			b1 := foNewBackend(t, "tcp", "127.0.10.1", tls.Certificate{})
			b2 := foNewBackend(t, "tcp", "127.0.10.2", tls.Certificate{})
			nodes := []foNode{foNodeFor(1, "tcp", b1, foTiming), foNodeFor(2, "tcp", b2, foTiming)}
			n1, n2 := nodes[0].Address, nodes[1].Address
			in, addr := foStart(t, nodes, foSvc{allDown: allDown})
			if a := foAsk(t, addr); a != n1 {
				t.Fatalf("first answer %s, want node 1 %s", a, n1)
			}
			b1.stop()
			foWait(t, addr, n2, foDeadline, n1)
			b2.stop()
			switch allDown {
			case "keep":
				foWaitDecision(t, in, "all nodes down")
				// The last active node, not the first.
				for range 5 {
					if a := foAsk(t, addr); a != n2 {
						t.Fatalf("when_all_down = keep: answer %s, want the last active node 2 %s", a, n2)
					}
					time.Sleep(foPoll)
				}
			case "first":
				foWait(t, addr, n1, foDeadline, n2)
				foWaitDecision(t, in, "all nodes down")
			case "servfail":
				foWait(t, addr, "SERVFAIL", foDeadline, n2)
				d := foWaitDecision(t, in, "all nodes down")
				if !d.Servfail {
					t.Errorf("decision %+v, want Servfail", d)
				}
				// SERVFAIL over TCP and for AAAA too.
				for _, q := range []struct {
					net   string
					qtype uint16
				}{{"tcp", dns.TypeA}, {"udp", dns.TypeAAAA}} {
					r, err := foQuery(q.net, addr, q.qtype)
					if err != nil {
						t.Fatal(err)
					}
					if r.Rcode != dns.RcodeServerFailure || len(r.Answer) != 0 {
						t.Errorf("%s %s: rcode %s with %d answers, want SERVFAIL and none",
							q.net, dns.TypeToString[q.qtype], dns.RcodeToString[r.Rcode], len(r.Answer))
					}
				}
				// Node 2 comes back: answered again.
				b2.start()
				foWait(t, addr, n2, foDeadline, "SERVFAIL")
			}
		})
	}

	t.Run("dead at boot", func(t *testing.T) {
		port := testenv.ClosedPort(t, "127.0.10.1")
		b2 := foNewBackend(t, "tcp", "127.0.10.2", tls.Certificate{})
		nodes := []foNode{
			{Name: "n1", Address: "192.0.2.11", Replication: "10.99.0.11", Check: fmt.Sprintf("type = \"tcp\"\nport = %d\ntarget = \"127.0.10.1\"\n%s", port, foTiming)},
			foNodeFor(2, "tcp", b2, foTiming),
		}
		in, addr := foStart(t, nodes, foSvc{})
		if a := foAsk(t, addr); a != nodes[1].Address {
			t.Fatalf("first answer after Start %s, want node 2 %s: node 1's port is closed", a, nodes[1].Address)
		}
		if s := in.Prober.Snapshot()["n1"]; !s.Checked || s.Up {
			t.Errorf("n1 state %+v, want checked and down", s)
		}
		for range 5 {
			time.Sleep(foPoll)
			if a := foAsk(t, addr); a != nodes[1].Address {
				t.Fatalf("answer %s, want node 2 %s", a, nodes[1].Address)
			}
		}
	})
}

// ---------------------------------------------------------------------------
// 7. Concurrent queries while nodes flap.

func TestFailoverUnderLoad(t *testing.T) {
	const (
		duration = 2 * time.Second
		workers  = 8
	)
	timing := "interval = \"50ms\"\ntimeout = \"1s\"\nrise = 1\nfall = 1\n"
	var backends []*foBackend
	var nodes []foNode
	answerable := map[uint16][]string{}
	var replication []string
	for i := 1; i <= 3; i++ {
		b := foNewBackend(t, "http", fmt.Sprintf("127.0.10.%d", i), tls.Certificate{})
		backends = append(backends, b)
		n := foNodeFor(i, "http", b, timing)
		n.Address6 = fmt.Sprintf("2001:db8::1%d", i)
		nodes = append(nodes, n)
		answerable[dns.TypeA] = append(answerable[dns.TypeA], n.Address)
		answerable[dns.TypeAAAA] = append(answerable[dns.TypeAAAA], n.Address6)
		replication = append(replication, n.Replication)
	}
	_, addr := foStart(t, nodes, foSvc{after: "100ms"})

	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var wg sync.WaitGroup
	// Node 1 flips every 100ms, node 2 every 150ms; node 3 stays up, so
	// there is always a node to answer.
	for i, every := range []time.Duration{100 * time.Millisecond, 150 * time.Millisecond} {
		b := backends[i]
		wg.Go(func() {
			testenv.Every(ctx, every, func() {
				if b.status.Load() == http.StatusOK {
					b.status.Store(http.StatusServiceUnavailable)
				} else {
					b.status.Store(http.StatusOK)
				}
			})
		})
	}
	var (
		mu      sync.Mutex
		seen    = map[string]int{}
		queries atomic.Int64
	)
	for w := range workers {
		network := "udp"
		if w%4 == 3 {
			network = "tcp"
		}
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				qtype := dns.TypeA
				if i%3 == 2 {
					qtype = dns.TypeAAAA
				}
				r, err := foQuery(network, addr, qtype)
				if err != nil {
					t.Errorf("worker %d %s %s: %v", w, network, dns.TypeToString[qtype], err)
					return
				}
				a, err := foRead(r, qtype)
				if err != nil {
					t.Errorf("worker %d %s %s: %v", w, network, dns.TypeToString[qtype], err)
					return
				}
				if slices.Contains(replication, a) {
					t.Errorf("worker %d: answered the replication address %s (Interface 1)", w, a)
					return
				}
				if !slices.Contains(answerable[qtype], a) {
					t.Errorf("worker %d %s: answer %s is not a node address %v", w, dns.TypeToString[qtype], a, answerable[qtype])
					return
				}
				queries.Add(1)
				mu.Lock()
				seen[a]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("%d queries in %s; answers: %v", queries.Load(), duration, seen)
	if queries.Load() < 100 {
		t.Errorf("only %d queries answered in %s", queries.Load(), duration)
	}
	distinct := 0
	for _, a := range answerable[dns.TypeA] {
		if seen[a] > 0 {
			distinct++
		}
	}
	if distinct < 2 {
		t.Errorf("only %d distinct A answers (%v): the nodes' flapping never reached the answers", distinct, seen)
	}
}
