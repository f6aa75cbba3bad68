package dnsserver_test

import (
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/dnsserver"
	"github.com/failoverdns/failoverdns/dnsserver/testenv"
	"github.com/failoverdns/failoverdns/zones"
)

// Admin records (README "Inspecting with dig" and "Pinning with
// nsupdate"): _pin and _status read with
// real sockets from inside and outside admin_nets. The fixture below is
// shared with update_test.go; its names start with adm.

const (
	admKey     = "admin."
	admZone    = "demo.test."
	admService = "keys.demo.test."
	admPinName = "_pin.keys.demo.test."
	admEMEAPin = "_pin.emea._loc.keys.demo.test."
	admEMEAIP  = "127.0.99.5" // inside emea's 127.0.99.0/24
	admOutside = "127.0.0.2"  // outside admin_nets = ["127.0.0.1/32"]
	admTimeout = 5 * time.Second
	admWithin  = 10 * time.Second // generous deadline for health changes
)

// admSecret is the [[tsig]] secret, base64 as in the config.
var admSecret = base64.StdEncoding.EncodeToString([]byte("failoverdns-admin-test-secret-32"))

// admNodeIPs are the client-facing addresses answered for each node; with
// tcp checks the node's listener is on the same address.
// "anchor" is isolation_test.go's reference target, not a node.
var admNodeIPs = map[string]string{"sems1": "127.0.10.1", "sems2": "127.0.10.2", "sems3": "127.0.10.3", "anchor": "127.0.10.9"}

// admNode is a node's TCP health endpoint, which a test stops and restarts.
type admNode struct {
	*testenv.Endpoint
	name, ip string
	port     int
}

func admNewNode(t testing.TB, name string, up bool) *admNode {
	t.Helper()
	ep := testenv.NewEndpoint(t, admNodeIPs[name], 0, up)
	return &admNode{Endpoint: ep, name: name, ip: ep.IP, port: ep.Port}
}

// stop closes the listener: connects are refused from now on.
func (n *admNode) stop() { n.Stop() }

// start listens on the node's port again.
func (n *admNode) start(t testing.TB) { t.Helper(); n.Start(t) }

// admConf varies the fixture's config.
type admConf struct {
	tcp       bool     // tcp checks against listeners the test controls; else type none
	down      []string // with tcp: nodes whose listener is not running at start
	adminNets string   // TOML value of admin_nets; "" = the default
	stateDir  string   // "" = <tmp>/state
	zoneExtra string   // lines appended to the zone file
	noSecret  bool     // no [[tsig]] key
	http      bool     // server.http on 127.0.0.1:0 (else none)
	server    string   // lines added to [server]
	extra     string   // raw TOML at the end ([cluster])
}

// admEnv is one instance and its nodes.
type admEnv struct {
	*env
	stateDir string
	nodes    map[string]*admNode
}

var admZoneHead = testenv.ZoneHead(admZone, 2026112101, "127.0.0.1") + "www     IN A   192.0.2.80\n"

// admConfig is c's config, with tcp checks on nodes' endpoints (a node not
// in nodes has check type none).
func admConfig(c admConf, nodes map[string]*admNode) testenv.Config {
	cfg := testenv.Config{
		StateDir:  c.stateDir,
		Zones:     []testenv.Zone{{Origin: admZone, File: "demo.test.zone", Text: admZoneHead + c.zoneExtra}},
		Locations: []testenv.Location{{Name: "emea", Subnets: []string{"127.0.99.0/24"}}},
		Services: []testenv.Service{{Name: admService, TTL: 5, Policy: "failover", Nodes: []string{"sems1", "sems2", "sems3"},
			Failback: "auto", FailbackAfter: "1s", WhenAllDown: "keep"}},
	}
	if c.http {
		cfg.HTTP = "127.0.0.1:0"
	}
	if c.adminNets != "" {
		cfg.Server = "admin_nets = " + c.adminNets + "\n"
	}
	cfg.Server += c.server
	cfg.Extra = c.extra
	if !c.noSecret {
		cfg.TSIG = []testenv.TSIG{{Name: admKey, Secret: admSecret}}
	}
	for _, name := range []string{"sems1", "sems2", "sems3"} {
		check := "type = \"none\"\n"
		if n := nodes[name]; n != nil {
			check = fmt.Sprintf("type = \"tcp\"\nport = %d\ninterval = \"100ms\"\ntimeout = \"500ms\"\nrise = 1\nfall = 1\n", n.port)
		}
		cfg.Nodes = append(cfg.Nodes, testenv.Node{Name: name, Address: admNodeIPs[name], Check: check})
	}
	return cfg
}

// admPrepare writes c's config into a temporary folder; e.launch starts
// the instance.
func admPrepare(t testing.TB, c admConf, nodes map[string]*admNode) *admEnv {
	t.Helper()
	e := &admEnv{env: prepare(t, admConfig(c, nodes), dnsserver.Options{}), nodes: nodes}
	e.stateDir = cmp.Or(c.stateDir, filepath.Join(e.Dir, "state"))
	return e
}

// admStart writes a config and starts an instance on it.
func admStart(t testing.TB, c admConf) *admEnv {
	t.Helper()
	nodes := map[string]*admNode{}
	if c.tcp {
		for _, name := range []string{"sems1", "sems2", "sems3"} {
			nodes[name] = admNewNode(t, name, !slices.Contains(c.down, name))
		}
	}
	e := admPrepare(t, c, nodes)
	e.launch(t, dnsserver.Options{})
	return e
}

// launch starts (or restarts) the instance on e's config.
func (e *admEnv) launch(t testing.TB, o dnsserver.Options) {
	t.Helper()
	o.Version = "v0.0.0-admin"
	e.env.launch(t, o)
}

func (e *admEnv) close() { e.Stop() }

// admNodeOf names the node an answer gives, or describes what else it is.
func admNodeOf(r *dns.Msg) string { return testenv.NameOf(admNodeIPs, testenv.AnswerOf(r)) }

// admActive is the node the service answers to a client at from.
func (e *admEnv) admActive(t testing.TB, from string) string {
	t.Helper()
	return admNodeOf(testenv.MustAsk(t, "udp", from, e.Addr, admService, dns.TypeA))
}

// wantActive asserts the answer now, with no waiting.
func (e *admEnv) wantActive(t testing.TB, from, want string) {
	t.Helper()
	if got := e.admActive(t, from); got != want {
		t.Fatalf("%s from %q answers %s, want %s\nstatus: %q", admService, from, got, want, e.status(t, ""))
	}
}

// waitActive polls until the service answers want to from.
func (e *admEnv) waitActive(t testing.TB, from, want string) {
	t.Helper()
	got := ""
	if testenv.Eventually(admWithin, 20*time.Millisecond, func() bool {
		r, err := testenv.Ask("udp", from, e.Addr, admService, dns.TypeA)
		if err == nil {
			got = admNodeOf(r)
		}
		return got == want
	}) {
		return
	}
	t.Fatalf("%s from %q still answers %s after %s, want %s\nstatus: %q", admService, from, got, admWithin, want, e.status(t, ""))
}

// status reads _status (for location "" the service-wide view) from
// 127.0.0.1.
func (e *admEnv) status(t testing.TB, location string) []string {
	t.Helper()
	name := "_status." + admService
	if location != "" {
		name = "_status." + location + "._loc." + admService
	}
	r, err := testenv.Ask("udp", "127.0.0.1", e.Addr, name, dns.TypeTXT)
	if err == nil && r.Truncated {
		// As dig does: a status too large for 512 bytes comes over TCP.
		q := new(dns.Msg).SetQuestion(name, dns.TypeTXT)
		r, _, err = testenv.Client("tcp", "127.0.0.1", admTimeout).Exchange(q, e.Addr)
	}
	if err != nil {
		return []string{err.Error()}
	}
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		return []string{fmt.Sprintf("%s: rcode %s, %d answers", name, dns.RcodeToString[r.Rcode], len(r.Answer))}
	}
	return r.Answer[0].(*dns.TXT).Txt
}

// pinTXT reads a _pin name from 127.0.0.1: its TXT text, or the rcode.
func (e *admEnv) pinTXT(t testing.TB, name string) string {
	t.Helper()
	r := testenv.MustAsk(t, "udp", "127.0.0.1", e.Addr, name, dns.TypeTXT)
	if r.Rcode != dns.RcodeSuccess {
		return dns.RcodeToString[r.Rcode]
	}
	if len(r.Answer) != 1 {
		return fmt.Sprintf("%d answers", len(r.Answer))
	}
	txt, ok := r.Answer[0].(*dns.TXT)
	if !ok {
		return r.Answer[0].String()
	}
	return strings.Join(txt.Txt, " ")
}

// stateFile returns pins.json's content, nil when absent.
func (e *admEnv) stateFile(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.stateDir, "pins.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// savedPins reads the state folder as a restart would.
func (e *admEnv) savedPins(t testing.TB) map[zones.PinKey]zones.Pin {
	t.Helper()
	_, pins, err := zones.OpenPinStore(e.stateDir)
	if err != nil {
		t.Fatalf("OpenPinStore: %v", err)
	}
	return pins
}

// waitHealth polls _status until node's line says state ("up" or "down").
func (e *admEnv) waitHealth(t testing.TB, node, state string) {
	t.Helper()
	deadline := time.Now().Add(admWithin)
	var lines []string
	for time.Now().Before(deadline) {
		lines = e.status(t, "")
		for _, l := range lines {
			if strings.HasPrefix(l, node+" "+state+" ") || l == node+" "+state {
				return
			}
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
	t.Fatalf("%s is not %s after %s: %q", node, state, admWithin, lines)
}

// --- UPDATE messages -------------------------------------------------------

// admSign says how an UPDATE is signed and sent.
type admSign struct {
	unsigned bool
	key      string    // "" = admin.
	secret   string    // "" = the configured secret
	at       time.Time // zero = now
	fudge    uint16    // 0 = 300
	from     string    // source address; "" = 127.0.0.1
	network  string    // "" = udp
	alg      string    // "" = hmac-sha256
}

// admPack signs m per s and returns the wire bytes and the request MAC
// ("" when unsigned).
func admPack(t testing.TB, m *dns.Msg, s admSign) (buf []byte, mac string) {
	t.Helper()
	key, secret, at, fudge := s.key, s.secret, s.at, s.fudge
	if key == "" {
		key = admKey
	}
	if secret == "" {
		secret = admSecret
	}
	if at.IsZero() {
		at = time.Now()
	}
	if fudge == 0 {
		fudge = 300
	}
	var err error
	if s.unsigned {
		buf, err = m.Pack()
	} else {
		alg := s.alg
		if alg == "" {
			alg = dns.HmacSHA256
		}
		m.SetTsig(key, alg, fudge, at.Unix())
		buf, mac, err = dns.TsigGenerate(m, secret, "", false)
	}
	if err != nil {
		t.Fatalf("packing the UPDATE: %v", err)
	}
	return buf, mac
}

// admSend signs m per s, sends it and returns the reply and the result of
// verifying the reply's TSIG with the key the request was signed with
// (errNoTSIG when the reply has none).
func admSend(t testing.TB, addr string, m *dns.Msg, s admSign) (*dns.Msg, error) {
	t.Helper()
	buf, mac := admPack(t, m, s)
	return admSendRaw(t, addr, buf, mac, s)
}

// admSendRaw sends the packed UPDATE buf (signed with MAC mac, "" when
// unsigned) from s.from over s.network, as admSend does.
func admSendRaw(t testing.TB, addr string, buf []byte, mac string, s admSign) (*dns.Msg, error) {
	t.Helper()
	secret, from, network := s.secret, s.from, s.network
	if secret == "" {
		secret = admSecret
	}
	if from == "" {
		from = "127.0.0.1"
	}
	if network == "" {
		network = "udp"
	}
	conn, err := testenv.Client(network, from, admTimeout).Dial(addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, from, err)
	}
	defer conn.Close()
	conn.UDPSize = dns.MaxMsgSize
	if err := conn.SetDeadline(time.Now().Add(admTimeout)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(buf); err != nil {
		t.Fatalf("sending the UPDATE: %v", err)
	}
	raw, err := conn.ReadMsgHeader(nil)
	if err != nil {
		t.Fatalf("no answer to the UPDATE: %v", err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(raw); err != nil {
		t.Fatalf("unpacking the UPDATE answer: %v", err)
	}
	id := binary.BigEndian.Uint16(buf)
	if r.Id != id || !r.Response || r.Opcode != dns.OpcodeUpdate {
		t.Fatalf("the answer is not a response to the UPDATE: id %d (want %d), QR %v, opcode %s", r.Id, id, r.Response, dns.OpcodeToString[r.Opcode])
	}
	if r.IsTsig() == nil {
		return r, errNoTSIG
	}
	if mac == "" {
		return r, errors.New("a signed answer to an unsigned request")
	}
	return r, dns.TsigVerify(raw, secret, mac, false)
}

var errNoTSIG = errors.New("the answer carries no TSIG")

// admPinMsg is an UPDATE of zone demo.test. that adds a pin at name.
func admPinMsg(name, text string) *dns.Msg {
	m := new(dns.Msg).SetUpdate(admZone)
	m.Insert([]dns.RR{admTXT(name, 0, text)})
	return m
}

// admUnpinMsg deletes the TXT RRset at name.
func admUnpinMsg(name string) *dns.Msg {
	m := new(dns.Msg).SetUpdate(admZone)
	m.RemoveRRset([]dns.RR{admTXT(name, 0, "")})
	return m
}

func admTXT(name string, ttl uint32, text string) *dns.TXT {
	return &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ttl}, Txt: []string{text}}
}

// tsigError returns the TSIG error of a reply, -1 without TSIG.
func tsigError(r *dns.Msg) int {
	if t := r.IsTsig(); t != nil {
		return int(t.Error)
	}
	return -1
}

// mustUpdate sends a correctly signed m and wants NOERROR with a valid
// signature on the answer.
func (e *admEnv) mustUpdate(t testing.TB, m *dns.Msg) {
	t.Helper()
	r, verr := admSend(t, e.Addr, m, admSign{})
	if r.Rcode != dns.RcodeSuccess {
		t.Fatalf("UPDATE answered %s, want NOERROR\n%v\nlog:\n%s", dns.RcodeToString[r.Rcode], m, e.Logs)
	}
	if verr != nil {
		t.Fatalf("UPDATE answer's TSIG does not verify: %v", verr)
	}
	if te := tsigError(r); te != dns.RcodeSuccess {
		t.Fatalf("UPDATE answer TSIG error %d, want 0", te)
	}
}

// --- tests -----------------------------------------------------------------

var (
	admStatusNodeRE = regexp.MustCompile(`^(sems[123]) (up|down|unknown)( active)?(?: rtt=(\d+\.\d+)ms since=(\S+))?(?: err=\S.*)?$`)
)

// statusNode is one parsed node line of _status.
type statusNode struct {
	name, state string
	active      bool
	rtt         string
	since       time.Time
}

func parseStatusNodes(t *testing.T, lines []string) (nodes []statusNode, rest []string) {
	t.Helper()
	for _, l := range lines {
		m := admStatusNodeRE.FindStringSubmatch(l)
		if m == nil {
			rest = append(rest, l)
			continue
		}
		n := statusNode{name: m[1], state: m[2], active: m[3] != "", rtt: m[4]}
		if m[5] != "" {
			since, err := time.Parse(time.RFC3339, m[5])
			if err != nil {
				t.Errorf("_status line %q: since=%q is not RFC 3339", l, m[5])
			}
			n.since = since
		}
		nodes = append(nodes, n)
	}
	return nodes, rest
}

// TestAdminStatus: `dig TXT _status.<service>` shows one string per node
// (up/down, active, rtt=, since=), the pin, and why the answer is what it is.
func TestAdminStatus(t *testing.T) {
	start := time.Now().Add(-time.Second).Truncate(time.Second)
	e := admStart(t, admConf{tcp: true, down: []string{"sems3"}, adminNets: `["127.0.0.1/32"]`})
	e.wantActive(t, "127.0.0.1", "sems1")

	check := func(active string, pinLine string) {
		t.Helper()
		r := testenv.MustAsk(t, "udp", "127.0.0.1", e.Addr, "_status."+admService, dns.TypeTXT)
		if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 {
			t.Fatalf("_status: rcode %s AA %v answers %d, want NOERROR, AA, one TXT", dns.RcodeToString[r.Rcode], r.Authoritative, len(r.Answer))
		}
		txt, ok := r.Answer[0].(*dns.TXT)
		if !ok {
			t.Fatalf("_status answer is %s, want TXT", r.Answer[0])
		}
		if txt.Hdr.Ttl != 0 {
			t.Errorf("_status TTL %d, want 0 (never cached)", txt.Hdr.Ttl)
		}
		nodes, rest := parseStatusNodes(t, txt.Txt)
		var names []string
		for _, n := range nodes {
			names = append(names, n.name)
			if n.rtt == "" || n.since.IsZero() {
				t.Errorf("%s: no rtt= and since= in %q", n.name, txt.Txt)
			}
			if n.since.Before(start) || n.since.After(time.Now().Add(time.Second)) {
				t.Errorf("%s: since=%s is not when the instance started (%s)", n.name, n.since.Format(time.RFC3339), start.Format(time.RFC3339))
			}
			want := map[string]string{"sems1": "up", "sems2": "up", "sems3": "down"}[n.name]
			if n.state != want {
				t.Errorf("%s is %s in _status, want %s: %q", n.name, n.state, want, txt.Txt)
			}
			if n.active != (n.name == active) {
				t.Errorf("%s active=%v in _status, want active on %s only: %q", n.name, n.active, active, txt.Txt)
			}
		}
		if strings.Join(names, ",") != "sems1,sems2,sems3" {
			t.Errorf("_status node lines %v, want one per node in order sems1,sems2,sems3: %q", names, txt.Txt)
		}
		var pins []string
		hasView := false
		for _, l := range rest {
			if strings.HasPrefix(l, "pin ") {
				pins = append(pins, l)
			}
			if strings.Contains(l, "answer "+active) {
				hasView = true
			}
		}
		if len(pins) != 1 || !strings.HasPrefix(pins[0], pinLine) {
			t.Errorf("_status pin lines %q, want one starting %q: %q", pins, pinLine, txt.Txt)
		}
		if !hasView {
			t.Errorf("_status has no line saying the answer is %s: %q", active, txt.Txt)
		}
		for _, l := range txt.Txt {
			if strings.Contains(l, "sems3 down") && !strings.Contains(l, "err=") {
				t.Errorf("the down node's line does not say why: %q", l)
			}
		}
	}
	check("sems1", "pin none")

	e.mustUpdate(t, admPinMsg(admPinName, "sems2"))
	check("sems2", "pin sems2 set-by=admin. from=127.0.0.1 at=")

	// From outside admin_nets: REFUSED, for _status and _pin alike, and
	// for admin names of no service (no probing for which exist).
	for _, name := range []string{"_status." + admService, admPinName, "_status.emea._loc." + admService, "_pin.nothere.demo.test.", "_status.nothere.demo.test."} {
		for _, qt := range []uint16{dns.TypeTXT, dns.TypeA} {
			r := testenv.MustAsk(t, "udp", admOutside, e.Addr, name, qt)
			if r.Rcode != dns.RcodeRefused || len(r.Answer) != 0 {
				t.Errorf("%s %s from %s: rcode %s with %d answers, want REFUSED and nothing", name, dns.TypeToString[qt], admOutside, dns.RcodeToString[r.Rcode], len(r.Answer))
			}
		}
	}
	// ... while the service itself is answered there.
	if got := e.admActive(t, admOutside); got != "sems2" {
		t.Errorf("%s from %s answers %s, want sems2 (only admin names are refused)", admService, admOutside, got)
	}
}

// TestAdminStatusTCP reads _status over TCP too.
func TestAdminStatusTCP(t *testing.T) {
	e := admStart(t, admConf{})
	q := new(dns.Msg).SetQuestion("_status."+admService, dns.TypeTXT)
	r, _, err := testenv.Client("tcp", "", admTimeout).Exchange(q, e.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("_status over TCP: %s, %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	if nodes, _ := parseStatusNodes(t, r.Answer[0].(*dns.TXT).Txt); len(nodes) != 3 {
		t.Errorf("_status over TCP has %d node lines, want 3: %v", len(nodes), r.Answer[0])
	}
}

// TestAdminPinRead: _pin names read as TXT from admin_nets, NXDOMAIN when
// no pin is set, NODATA for other types, REFUSED outside.
func TestAdminPinRead(t *testing.T) {
	e := admStart(t, admConf{adminNets: `["127.0.0.1/32"]`})
	if got := e.pinTXT(t, admPinName); got != "NXDOMAIN" {
		t.Errorf("_pin with no pin: %s, want NXDOMAIN", got)
	}
	e.mustUpdate(t, admPinMsg(admPinName, "sems2"))
	r := testenv.MustAsk(t, "udp", "127.0.0.1", e.Addr, admPinName, dns.TypeTXT)
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 {
		t.Fatalf("_pin: %s AA %v, %d answers", dns.RcodeToString[r.Rcode], r.Authoritative, len(r.Answer))
	}
	want := `_pin.keys.demo.test.	0	IN	TXT	"sems2"`
	if got := r.Answer[0].String(); got != want {
		t.Errorf("_pin answer %q, want %q", got, want)
	}
	// Names are case-insensitive; the question is echoed as asked.
	r = testenv.MustAsk(t, "udp", "127.0.0.1", e.Addr, "_PIN.Keys.Demo.TEST.", dns.TypeTXT)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || strings.Join(r.Answer[0].(*dns.TXT).Txt, " ") != "sems2" {
		t.Errorf("_PIN.Keys.Demo.TEST.: %s %v, want TXT sems2", dns.RcodeToString[r.Rcode], r.Answer)
	}
	// Another type at the pin name: NODATA with the SOA.
	r = testenv.MustAsk(t, "udp", "127.0.0.1", e.Addr, admPinName, dns.TypeA)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA {
		t.Errorf("_pin A: %s, answer %v, authority %v; want NODATA with the SOA", dns.RcodeToString[r.Rcode], r.Answer, r.Ns)
	}
	if r := testenv.MustAsk(t, "udp", admOutside, e.Addr, admPinName, dns.TypeTXT); r.Rcode != dns.RcodeRefused || len(r.Answer) != 0 {
		t.Errorf("_pin from %s: %s with %d answers, want REFUSED", admOutside, dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	// A pin with force and until reads back in the canonical form.
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	e.mustUpdate(t, admPinMsg(admPinName, "sems3  until="+until.Format(time.RFC3339)+" force"))
	if got, want := e.pinTXT(t, admPinName), "sems3 force until="+until.Format(time.RFC3339); got != want {
		t.Errorf("_pin = %q, want %q", got, want)
	}
}

// TestAdminLocationStatus: _status and _pin of one location.
func TestAdminLocationStatus(t *testing.T) {
	e := admStart(t, admConf{})
	lines := e.status(t, "emea")
	nodes, rest := parseStatusNodes(t, lines)
	if len(nodes) != 3 {
		t.Fatalf("_status.emea._loc: %d node lines, want 3: %q", len(nodes), lines)
	}
	if !nodes[0].active || nodes[0].name != "sems1" {
		t.Errorf("_status.emea._loc: want sems1 active: %q", lines)
	}
	if !containsPrefix(rest, "pin none") {
		t.Errorf("_status.emea._loc: no \"pin none\": %q", lines)
	}
	if !containsSubstr(rest, "emea") {
		t.Errorf("_status.emea._loc does not name the view emea: %q", lines)
	}

	e.mustUpdate(t, admPinMsg(admEMEAPin, "sems3"))
	if got := e.pinTXT(t, admEMEAPin); got != "sems3" {
		t.Errorf("%s = %s, want sems3", admEMEAPin, got)
	}
	if got := e.pinTXT(t, admPinName); got != "NXDOMAIN" {
		t.Errorf("the service-wide pin is %s after pinning emea only, want NXDOMAIN", got)
	}
	lines = e.status(t, "emea")
	nodes, rest = parseStatusNodes(t, lines)
	for _, n := range nodes {
		if n.active != (n.name == "sems3") {
			t.Errorf("_status.emea._loc: %s active=%v, want sems3 active: %q", n.name, n.active, lines)
		}
	}
	if !containsPrefix(rest, "pin sems3 ") {
		t.Errorf("_status.emea._loc: no pin line for sems3: %q", lines)
	}
	// The service-wide status is still sems1 for the default view, and
	// reports the emea view's answer too.
	lines = e.status(t, "")
	nodes, rest = parseStatusNodes(t, lines)
	for _, n := range nodes {
		if n.active != (n.name == "sems1") {
			t.Errorf("_status: %s active=%v, want sems1 active in the default view: %q", n.name, n.active, lines)
		}
	}
	if !containsPrefix(rest, "pin none") {
		t.Errorf("_status: the service-wide pin line is not \"pin none\": %q", lines)
	}
	if !containsSubstr(rest, "emea: answer sems3") {
		t.Errorf("_status does not report the emea view answering sems3: %q", lines)
	}
	// A service-wide pin shows in the location's status as such.
	e.mustUpdate(t, admUnpinMsg(admEMEAPin))
	e.mustUpdate(t, admPinMsg(admPinName, "sems2"))
	if lines := e.status(t, "emea"); !containsPrefix(lines, "pin (service-wide) sems2 ") {
		t.Errorf("_status.emea._loc does not show the service-wide pin: %q", lines)
	}
	// Unknown location: not an admin name of ours, answered from the zone.
	r := testenv.MustAsk(t, "udp", "127.0.0.1", e.Addr, "_status.apac._loc."+admService, dns.TypeTXT)
	if r.Rcode != dns.RcodeNameError {
		t.Errorf("_status of an unknown location: %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
}

func containsPrefix(lines []string, p string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	return false
}

func containsSubstr(lines []string, s string) bool {
	for _, l := range lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// TestAdminStaticPin: a pin in the zone file is in force from the start; a
// dynamic pin wins over it; deleting the dynamic pin returns to it.
func TestAdminStaticPin(t *testing.T) {
	e := admStart(t, admConf{zoneExtra: "_pin.keys IN TXT \"sems2\"\n"})
	e.wantActive(t, "127.0.0.1", "sems2")
	if got := e.pinTXT(t, admPinName); got != "sems2" {
		t.Errorf("_pin = %s, want the zone file's sems2", got)
	}
	if lines := e.status(t, ""); !containsPrefix(lines, "pin sems2 set-by=zone-file") {
		t.Errorf("_status does not show the zone-file pin: %q", lines)
	}

	e.mustUpdate(t, admPinMsg(admPinName, "sems3"))
	e.wantActive(t, "127.0.0.1", "sems3")
	if got := e.pinTXT(t, admPinName); got != "sems3" {
		t.Errorf("_pin = %s, want the dynamic sems3", got)
	}

	e.mustUpdate(t, admUnpinMsg(admPinName))
	e.wantActive(t, "127.0.0.1", "sems2")
	if got := e.pinTXT(t, admPinName); got != "sems2" {
		t.Errorf("_pin after deleting the dynamic pin = %s, want the zone file's sems2", got)
	}
	if pins := e.savedPins(t); len(pins) != 0 {
		t.Errorf("state file holds %v, want no pins (the static one is not saved)", pins)
	}
}

// TestAdminStaticPinUnknownNode: a zone-file pin naming an unknown node is a
// load error at the record's file:line.
func TestAdminStaticPinUnknownNode(t *testing.T) {
	cfg := admPrepare(t, admConf{zoneExtra: "; a comment\n_pin.keys IN TXT \"sems9\"\n"}, nil).ConfigPath
	_, err := zones.Load(cfg)
	if err == nil {
		t.Fatal("a zone-file pin naming sems9 loaded")
	}
	zonePath := filepath.Join(filepath.Dir(cfg), "demo.test.zone")
	// admZoneHead is 6 lines, then the comment: the pin is on line 8.
	want := zonePath + ":8: "
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "sems9") {
		t.Errorf("error %q does not say %s... sems9", err, want)
	}
}

// TestStatusTooLargeSummarised: _status of a service with 10,000 locations
// (a line per view) is more than a 64 KiB message can hold: over TCP it is
// answered NOERROR, not truncated, with every node line, the asked view,
// and a last line that counts what was left out and says how to ask for
// one location; over UDP it is truncated, so the client retries over TCP.
func TestStatusTooLargeSummarised(t *testing.T) {
	const locations = 10000
	c := testenv.Config{
		Zones:    []testenv.Zone{{Origin: admZone, File: "demo.test.zone", Text: admZoneHead}},
		Services: []testenv.Service{{Name: admService, Nodes: []string{"sems1", "sems2"}}},
	}
	for _, n := range []string{"sems1", "sems2"} {
		c.Nodes = append(c.Nodes, testenv.Node{Name: n, Address: admNodeIPs[n], Check: "type = \"none\"\n"})
	}
	for i := range locations {
		l := fmt.Sprintf("l%d", i)
		c.Locations = append(c.Locations, testenv.Location{Name: l, Subnets: []string{fmt.Sprintf("10.%d.%d.0/24", i>>8, i&0xff)}})
		c.Services[0].Orders = append(c.Services[0].Orders, testenv.Order{Location: l, Nodes: []string{fmt.Sprintf("sems%d", 1+i%2)}})
	}
	e := &admEnv{env: start(t, c, dnsserver.Options{Version: "v0.0.0-admin"})}

	q := new(dns.Msg).SetQuestion("_status."+admService, dns.TypeTXT)
	r, _, err := testenv.Client("tcp", "127.0.0.1", admTimeout).Exchange(q, e.Addr)
	if err != nil {
		t.Fatalf("_status over TCP: %v", err)
	}
	if r.Rcode != dns.RcodeSuccess || r.Truncated || len(r.Answer) != 1 {
		t.Fatalf("_status over TCP: rcode %s TC=%v, %d answers; want NOERROR, not truncated, one TXT", dns.RcodeToString[r.Rcode], r.Truncated, len(r.Answer))
	}
	lines := r.Answer[0].(*dns.TXT).Txt
	for _, want := range []string{"sems1 up", "sems2 up", "view default: answer sems1"} {
		if !containsPrefix(lines, want) {
			t.Errorf("_status lacks a line starting %q", want)
		}
	}
	last := lines[len(lines)-1]
	for _, want := range []string{"not shown", "_status.<location>._loc." + admService} {
		if !strings.Contains(last, want) {
			t.Errorf("the last line does not say %q: %q", want, last)
		}
	}
	shown := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "view l") {
			shown++
		}
	}
	if m := regexp.MustCompile(`(\d+) more lines? not shown`).FindStringSubmatch(last); m == nil || shown+atoiT(t, m[1]) != locations {
		t.Errorf("%d view lines shown and the summary %q: want them to add up to %d", shown, last, locations)
	}

	r, _, err = testenv.Client("udp", "127.0.0.1", admTimeout).Exchange(q, e.Addr)
	if err != nil || !r.Truncated {
		t.Errorf("_status over UDP: %v, TC=%v; want truncated", err, r != nil && r.Truncated)
	}
}

func atoiT(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
