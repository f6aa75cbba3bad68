// Package dnsserver serves the snapshot built by package zones over UDP and
// TCP: listeners, the query path, admin records and UPDATE.
package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/health"
	"github.com/failoverdns/failoverdns/zones"
	"github.com/failoverdns/failoverdns/zones/events"
)

var _ dns.Handler = (*Server)(nil)

// Server answers DNS queries from the snapshot it holds. The snapshot is
// swapped with Store; a query loads it exactly once and never locks.
type Server struct {
	pub     atomic.Pointer[published]
	log     *slog.Logger
	version string

	storeMu   sync.Mutex // serialises Store (the engine, reloads)
	static    *fastStatic
	updateSem chan struct{}
	replay    replayGuard // signed UPDATEs already accepted
	refusals  logLimiter  // one UPDATE refusal logged per source per interval
	udp       []*udpListener

	// From ServerOptions: the engine that owns pins (UPDATE), and the
	// prober's live view for _status.
	engine     *zones.Engine
	liveHealth func() map[string]health.State
	history    *events.Log // last change of each view, for _status
	runtime    Runtime     // what the binary decided about the Go runtime
	metrics    *Metrics
	logSeq     atomic.Uint64 // query log sampling

	mu      sync.Mutex
	servers []*dns.Server
	addrs   []string // bound host:port, UDP and TCP share each
}

// ServerOptions are a Server's collaborators; an Instance passes them all,
// a bare Server (New) answers queries with none but Logger and Version.
type ServerOptions struct {
	Logger  *slog.Logger
	Version string
	// Metrics it counts into; a fresh, unregistered set when nil.
	Metrics *Metrics
	// Engine owns pins; without one, pin UPDATEs are REFUSED.
	Engine *zones.Engine
	// LiveHealth is the prober's current view, fresher than the
	// snapshot's for _status and /status (nodeStates).
	LiveHealth func() map[string]health.State
	// History names each view's last change in _status.
	History *events.Log
	// Runtime is what the binary decided about the Go runtime (readers
	// per address, the reload GC percent).
	Runtime Runtime
}

// New returns a server that will answer from snap.
func New(snap *zones.Snapshot, logger *slog.Logger, version string) *Server {
	return NewWith(snap, ServerOptions{Logger: logger, Version: version})
}

// NewWith returns a server that will answer from snap, with o's
// collaborators.
func NewWith(snap *zones.Snapshot, o ServerOptions) *Server {
	s := &Server{log: o.Logger, version: o.Version, updateSem: make(chan struct{}, updateSlots),
		metrics: o.Metrics, engine: o.Engine, liveHealth: o.LiveHealth, history: o.History, runtime: o.Runtime}
	if s.metrics == nil {
		s.metrics = NewMetrics()
	}
	s.refusals.every = refusalLogEvery
	s.Store(snap)
	return s
}

// Store publishes a new snapshot and the fast path's table for it, as one
// pointer; queries already running finish with the old one. The answers
// that depend only on config and zones are precomputed once per load.
func (s *Server) Store(snap *zones.Snapshot) {
	s.storeMu.Lock()
	defer s.storeMu.Unlock()
	if s.static == nil || s.static.cfg != snap.Config {
		s.static = s.buildStatic(snap)
	}
	s.pub.Store(&published{snap: snap, fast: s.static.build(snap, s.pub.Load())})
}

// Snapshot returns the snapshot in force.
func (s *Server) Snapshot() *zones.Snapshot { return s.pub.Load().snap }

// Addrs returns the bound addresses (with real ports when port 0 was asked).
func (s *Server) Addrs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.addrs...)
}

// Start binds UDP and TCP on every listen address of the snapshot's config
// and serves until Shutdown. It returns once every socket is bound, or the
// first bind error (having closed what it opened).
func (s *Server) Start() error {
	cfg := s.Snapshot().Config
	var addrs []string
	for _, l := range cfg.Server.Listen {
		r, err := zones.ResolveListen(l)
		if err != nil {
			return err
		}
		addrs = append(addrs, r...)
	}
	for _, a := range addrs {
		socks, ln, err := bindPair(a, s.runtime.udpReaders())
		if err != nil {
			s.Shutdown(context.Background())
			return BindHint(a, err)
		}
		bound := socks[0].localAddr().String()
		ul := &udpListener{socks: socks}
		tcp := s.newDNSServer()
		tcp.Listener = newCapListener(ln, func() int { return s.Snapshot().Config.Server.TCPMaxConns })
		tcp.IdleTimeout = func() time.Duration { return s.Snapshot().Config.Server.TCPIdleTimeout.Duration }
		// miekg/dns applies ReadTimeout to a connection's first query and
		// IdleTimeout after: a client that connects and says nothing must
		// not outlast the idle timeout either.
		tcp.ReadTimeout = min(tcp.ReadTimeout, cfg.Server.TCPIdleTimeout.Duration)
		started := make(chan struct{})
		tcp.NotifyStartedFunc = func() { close(started) }
		s.mu.Lock()
		s.addrs = append(s.addrs, bound)
		s.udp = append(s.udp, ul)
		s.servers = append(s.servers, tcp)
		s.mu.Unlock()
		ul.serve(s)
		go func() {
			if err := tcp.ActivateAndServe(); err != nil {
				s.log.Error("listener stopped", "addr", bound, "err", err)
			}
		}()
		<-started
		s.log.Info("listening", "addr", bound, "transports", "udp+tcp", "udp_sockets", len(socks))
	}
	return nil
}

func (s *Server) newDNSServer() *dns.Server {
	return &dns.Server{
		Handler:       s,
		MsgAcceptFunc: accept,
		TsigProvider:  tsigProvider{s},
		// The read buffer, not the answer size: big enough for any query,
		// including a TSIG-signed UPDATE.
		UDPSize:      4096,
		ReadTimeout:  5 * time.Second,
		WriteTimeout: 5 * time.Second,
		// No per-connection query limit (miekg/dns closes a connection
		// after 128 by default, which nobody chose): RFC 7766 asks
		// servers to let clients pipeline, and closing mid-stream makes
		// a resolver reconnect and resend what was in flight. A
		// connection costs one goroutine answering one query at a time,
		// in order, whatever it carries; what bounds TCP is
		// tcp_max_conns (oldest closed first), tcp_idle_timeout, and the
		// 5 s allowed to write an answer to a client that does not read.
		MaxTCPQueries: -1,
		// Our MsgInvalidFunc default logs nothing: a flood of garbage must
		// not become a flood of log lines.
		MsgInvalidFunc: func([]byte, error) {},
	}
}

// BindHint adds the fix to a bind error an operator meets on day one:
// ports below 1024 need a capability when not running as root.
func BindHint(addr string, err error) error {
	_, port, _ := net.SplitHostPort(addr)
	if p, perr := strconv.Atoi(port); perr == nil && p > 0 && p < 1024 && (errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM)) {
		return fmt.Errorf("%w: ports below 1024 need the capability CAP_NET_BIND_SERVICE: run under deploy/failoverdns.service (AmbientCapabilities=CAP_NET_BIND_SERVICE), or `setcap cap_net_bind_service=+ep` the binary, or listen on a port above 1023", err)
	}
	return err
}

// bindPair binds the UDP sockets and TCP on the same address. With port 0
// the kernel picks the UDP port and TCP must get the same one, which another
// process may hold: try a few times.
func bindPair(addr string, udpN int) ([]udpSock, net.Listener, error) {
	var lastErr error
	for range 20 {
		socks, err := listenUDP(addr, udpN)
		if err != nil {
			return nil, nil, err
		}
		ln, err := net.Listen("tcp"+zones.ListenFamily(addr), socks[0].localAddr().String())
		if err == nil {
			return socks, ln, nil
		}
		for _, c := range socks {
			c.shutdown()
		}
		lastErr = err
		_, port, _ := net.SplitHostPort(addr)
		if port != "0" || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	return nil, nil, lastErr
}

// Shutdown stops every listener and waits for queries in progress.
func (s *Server) Shutdown(ctx context.Context) {
	s.mu.Lock()
	servers, udp := s.servers, s.udp
	s.servers, s.udp = nil, nil
	s.mu.Unlock()
	for _, l := range udp {
		l.close()
	}
	for _, srv := range servers {
		_ = srv.ShutdownContext(ctx)
	}
}

// accept runs on the bare header, before the message is unpacked.
func accept(dh dns.Header) dns.MsgAcceptAction {
	const qr = 1 << 15
	if dh.Bits&qr != 0 {
		// Never answer a response: that is how reflection loops start.
		return dns.MsgIgnore
	}
	switch int(dh.Bits>>11) & 0xF {
	case dns.OpcodeQuery, dns.OpcodeUpdate:
		// UPDATE's zone section sits where the question does: one entry.
		if dh.Qdcount != 1 {
			return dns.MsgReject
		}
	}
	// Other opcodes are read too and answered NOTIMP by answer, with QR
	// the only flag: miekg/dns's own rejection would echo RD.
	return dns.MsgAccept
}

// ServeDNS is the miekg/dns entry point: a thin wrapper around answer.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	snap := s.Snapshot()
	req := Request{Msg: r, Client: addrOf(w.RemoteAddr())}
	if _, ok := w.LocalAddr().(*net.TCPAddr); ok {
		req.Transport = TCP
	}
	if r.Opcode == dns.OpcodeUpdate && !r.Response {
		s.serveUpdate(w, r, req.Client, req.Transport)
		return
	}
	start := time.Now()
	if t := r.IsTsig(); t != nil && r.Opcode == dns.OpcodeQuery {
		s.serveSigned(w, r, t, snap, &req, start)
		return
	}
	m := s.answer(snap, &req)
	if m == nil {
		return
	}
	limit := dns.MaxMsgSize
	if req.Transport == UDP {
		limit = req.q.udpLimit(snap)
	}
	buf := packBufs.Get().(*[]byte)
	if b, err := packAnswer(m, limit, *buf); err == nil {
		// Sent, or copied, before Write returns; a large TCP answer's
		// buffer is not kept.
		_, _ = w.Write(b)
		if cap(b) <= 4096 {
			*buf = b[:0]
		}
	}
	packBufs.Put(buf)
	s.account(snap, &req, m, start)
}

// packBufs hold the general path's packed answers between packing and the
// write, so an answer costs no output allocation.
var packBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1232); return &b }}

// serveSigned answers a TSIG-signed query (RFC 8945 5.2): with a key,
// signature or time that fails, NOTAUTH and the TSIG error, unsigned; else
// the answer, signed with the same key.
func (s *Server) serveSigned(w dns.ResponseWriter, r *dns.Msg, t *dns.TSIG, snap *zones.Snapshot, req *Request, start time.Time) {
	code := tsigError(w.TsigStatus())
	var m *dns.Msg
	if code != 0 {
		m = new(dns.Msg)
		m.SetReply(r)
		m.Rcode = dns.RcodeNotAuth
	} else if m = s.answer(snap, req); m == nil {
		return
	}
	m.Compress = true
	signReply(m, t, code)
	_ = w.WriteMsg(m)
	s.account(snap, req, m, start)
}

// packAnswer packs m the way every answer goes out: name compression, and
// truncated to limit (miekg/dns drops whole RRsets and sets TC). The
// question's name is compressed against in lower case, and the name as
// the client wrote it put back into the packed question after: same
// labels, same length, so every pointer stays valid and names that point
// into the question read in the client's letter case (0x20 resolvers
// compare only the question). So the compressed bytes are the same for
// every spelling of a name, which lets the fast path precompute them.
func packAnswer(m *dns.Msg, limit int, buf []byte) ([]byte, error) {
	var asSent string
	if len(m.Question) == 1 {
		q := m.Question[0]
		if lower := strings.ToLower(q.Name); lower != q.Name {
			asSent, q.Name = q.Name, lower
			m.Question = []dns.Question{q} // a copy: the request's stays as sent
		}
	}
	m.Truncate(limit)
	m.Compress = true // Truncate turns it off when the answer fits uncompressed
	b, err := m.PackBuffer(buf[:cap(buf)])
	if asSent != "" {
		m.Question[0].Name = asSent
		if err == nil {
			_, err = dns.PackDomainName(asSent, b, 12, nil, false)
		}
	}
	return b, err
}

// account counts a query and, when the query log is on, logs a sample.
func (s *Server) account(snap *zones.Snapshot, req *Request, m *dns.Msg, start time.Time) {
	var qtype uint16
	if len(m.Question) > 0 {
		qtype = m.Question[0].Qtype
	}
	s.metrics.countQuery(snap, qtype, uint16(m.Rcode), req.Transport, req.loc)
	s.metrics.observe(time.Since(start))
	every := snap.Config.Server.QueryLogEvery()
	if every > 0 && s.logSeq.Add(1)%every == 0 {
		s.logQuery(m, req.Client, req.Transport, snap.LocationName(req.loc), every)
	}
}

func (s *Server) logQuery(m *dns.Msg, client netip.Addr, t Transport, loc string, every uint64) {
	var qname, qtype, ans string
	if len(m.Question) > 0 {
		qname, qtype = m.Question[0].Name, dns.TypeToString[m.Question[0].Qtype]
	}
	if len(m.Answer) > 0 {
		ans = m.Answer[len(m.Answer)-1].String()
	}
	s.log.Info("query", "client", client.String(), "transport", t.String(), "qname", qname,
		"qtype", qtype, "rcode", dns.RcodeToString[m.Rcode], "location", loc, "answer", ans, "sampled_1_in", every)
}

func addrOf(a net.Addr) netip.Addr {
	switch v := a.(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(v.IP)
		return ip.Unmap()
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(v.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}
