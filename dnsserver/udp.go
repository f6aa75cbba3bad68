package dnsserver

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// udpSock is one bound UDP socket; udp_linux.go and udp_other.go provide
// it and the loop that reads it (readSock).
type udpSock interface {
	localAddr() netip.AddrPort
	send(b []byte, to netip.AddrPort) error
	shutdown()
}

// udpListener is one UDP address served by several sockets (SO_REUSEPORT:
// the kernel spreads clients across them), each read by one loop with its
// own buffers. There is no goroutine per packet: a flood costs CPU, not
// memory.
type udpListener struct {
	socks []udpSock
	wg    sync.WaitGroup
}

func (l *udpListener) serve(s *Server) {
	addReaderProcs(len(l.socks))
	for _, sock := range l.socks {
		l.wg.Add(1)
		go s.readSock(sock, &l.wg)
	}
}

func (l *udpListener) close() {
	for _, sock := range l.socks {
		sock.shutdown()
	}
	l.wg.Wait()
	addReaderProcs(-len(l.socks))
}

// updateSlots bounds the UPDATEs doing durable work (an fsync each) at
// once; see serveUpdate.
const updateSlots = 16

// mayAnswer reports whether pkt may get any reply at all: it has a header
// and is not a response. A reply to a response is how two servers are made
// to bounce packets at each other (and how a spoofed source gets traffic),
// so responses are dropped before rate limiting: they get no slip and do
// not spend the sender's budget.
func mayAnswer(pkt []byte) bool { return len(pkt) >= 12 && pkt[2]&0x80 == 0 }

// slowUDP hands a packet the fast path declined to the general path, on the
// reader's goroutine; an UPDATE that passes its checks does its durable
// work on its own (serveUpdate).
func (s *Server) slowUDP(pkt []byte, from netip.AddrPort, sock udpSock, local *net.UDPAddr) {
	s.serveRaw(pkt, &udpWriter{local: local, remote: from, sock: sock})
}

// reader is what one socket's read loop keeps between packets, the same on
// every OS: udp_linux.go and udp_other.go only receive and send.
type reader struct {
	s       *Server
	sock    udpSock
	local   *net.UDPAddr
	q       query
	stats   *readerStats
	batches uint
}

func (s *Server) newReader(sock udpSock, local *net.UDPAddr) *reader {
	return &reader{s: s, sock: sock, local: local, stats: s.metrics.newReaderStats()}
}

// batch starts a batch of packets received together: the snapshot they are
// answered from, and the clock, read only when something needs it: rate
// limiting (per second) and one batch in latencySample for the latency
// histogram. Two clock reads per batch were 1-2% of the CPU.
func (r *reader) batch() (p *published, start time.Duration, timed bool) {
	p = r.s.pub.Load()
	r.batches++
	timed = r.batches%latencySample == 0
	if timed || p.fast.rrl != nil {
		start = monoNow()
	}
	return p, start, timed
}

// packet answers one packet of a batch: the answer for the reader to send
// (the fast path's, or rate limiting's truncated slip), written into out;
// nil when nothing is to be sent or the general path answered on its own.
func (r *reader) packet(p *published, pkt []byte, from netip.AddrPort, start time.Duration, out []byte) []byte {
	client := from.Addr().Unmap()
	if !mayAnswer(pkt) {
		return nil
	}
	switch r.s.admit(p, client, start) {
	case rrlDrop:
		return nil
	case rrlSlip:
		return truncated(pkt, out)
	}
	if resp, ok := r.s.serveFast(p, pkt, client, &r.q, out, r.stats); ok {
		return resp
	}
	r.s.slowUDP(pkt, from, r.sock, r.local)
	return nil
}

// done ends a batch in which the reader sent n answers.
func (r *reader) done(start time.Duration, timed bool, n int) {
	if timed && n > 0 {
		r.stats.observe(monoNow()-start, n)
	}
}

// serveFast answers pkt on the fast path into out and counts it; false
// means the general path must answer it.
func (s *Server) serveFast(p *published, pkt []byte, client netip.Addr, q *query, out []byte, rs *readerStats) ([]byte, bool) {
	if !parseQuery(pkt, q) {
		return nil, false
	}
	resp, rcode, loc, ok := s.fastAnswer(p, q, client, out)
	if !ok {
		return nil, false
	}
	rs.count(p.snap, q.qtype, rcode, loc)
	every := p.snap.Config.Server.QueryLogEvery()
	if every > 0 && s.logSeq.Add(1)%every == 0 {
		s.logFast(p, resp, client, loc, every)
	}
	return resp, true
}

// logFast logs a sampled fast-path answer like the general path does,
// decoding only the sampled ones.
func (s *Server) logFast(p *published, resp []byte, client netip.Addr, loc int, every uint64) {
	m := new(dns.Msg)
	if m.Unpack(resp) != nil {
		return
	}
	s.logQuery(m, client, UDP, p.snap.LocationName(loc), every)
}

// latencySample: UDP readers time one batch of answers in this many for
// failoverdns_query_duration_seconds; every answer is still counted in
// failoverdns_queries_total.
const latencySample = 16

// epoch anchors monoNow: the fast path reads only the monotonic clock, one
// clock call where time.Now makes two.
var epoch = time.Now()

func monoNow() time.Duration { return time.Since(epoch) }

// serveRaw is the general path for one raw message, as miekg/dns's server
// would run it: header checks, the accept function, unpacking (FORMERR when
// the header is readable but the rest is not), TSIG, then ServeDNS.
func (s *Server) serveRaw(pkt []byte, w *udpWriter) {
	if len(pkt) < 12 {
		return // no header: any reply could be used to amplify
	}
	var dh dns.Header
	dh.Id = binary.BigEndian.Uint16(pkt)
	dh.Bits = binary.BigEndian.Uint16(pkt[2:])
	dh.Qdcount = binary.BigEndian.Uint16(pkt[4:])
	dh.Ancount = binary.BigEndian.Uint16(pkt[6:])
	dh.Nscount = binary.BigEndian.Uint16(pkt[8:])
	dh.Arcount = binary.BigEndian.Uint16(pkt[10:])
	action := accept(dh)
	req := new(dns.Msg)
	if action == dns.MsgAccept {
		if err := req.Unpack(pkt); err != nil {
			action = dns.MsgReject
		}
	}
	switch action {
	case dns.MsgIgnore:
		return
	case dns.MsgReject:
		_ = w.WriteMsg(headerReply(dh))
		return
	}
	if t := req.IsTsig(); t != nil {
		w.tsigStatus = dns.TsigVerifyWithProvider(pkt, tsigProvider{s}, "", false)
		w.tsigRequestMAC = t.MAC
		w.provider = tsigProvider{s}
	}
	s.ServeDNS(w, req)
}

// headerReply is the answer to a message whose body was not, or could not
// be, read: the ID and opcode echoed, no sections; FORMERR with RD echoed,
// or for an opcode we do not implement NOTIMP with QR alone, as answer
// gives when the body can be read.
func headerReply(dh dns.Header) *dns.Msg {
	m := new(dns.Msg)
	m.Id = dh.Id
	m.Response = true
	m.Opcode = int(dh.Bits>>11) & 0xF
	switch m.Opcode {
	case dns.OpcodeQuery, dns.OpcodeUpdate:
		m.RecursionDesired = dh.Bits&(1<<8) != 0
		m.Rcode = dns.RcodeFormatError
	default:
		m.Rcode = dns.RcodeNotImplemented
	}
	return m
}

// udpWriter is the dns.ResponseWriter of the general path on our sockets.
type udpWriter struct {
	sock           udpSock
	local          *net.UDPAddr
	remote         netip.AddrPort
	provider       dns.TsigProvider
	tsigStatus     error
	tsigRequestMAC string
	sink           *[]byte // tests: capture instead of sending
}

var _ dns.ResponseWriter = (*udpWriter)(nil)

func (w *udpWriter) LocalAddr() net.Addr  { return w.local }
func (w *udpWriter) RemoteAddr() net.Addr { return net.UDPAddrFromAddrPort(w.remote) }

func (w *udpWriter) WriteMsg(m *dns.Msg) error {
	var b []byte
	var err error
	if w.provider != nil && m.IsTsig() != nil {
		b, _, err = dns.TsigGenerateWithProvider(m, w.provider, w.tsigRequestMAC, false)
	} else {
		b, err = m.Pack()
	}
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func (w *udpWriter) Write(b []byte) (int, error) {
	if w.sink != nil {
		*w.sink = append((*w.sink)[:0], b...)
		return len(b), nil
	}
	return len(b), w.sock.send(b, w.remote)
}
func (w *udpWriter) Close() error        { return nil }
func (w *udpWriter) TsigStatus() error   { return w.tsigStatus }
func (w *udpWriter) TsigTimersOnly(bool) {}
func (w *udpWriter) Hijack()             {}
