package dnsserver

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// udpListener is one UDP address served by one socket per CPU (SO_REUSEPORT:
// the kernel spreads clients across them), each read by one goroutine with
// its own buffers. There is no goroutine per packet: a flood costs CPU, not
// memory.
type udpListener struct {
	conns []*net.UDPConn
	wg    sync.WaitGroup
}

func reusePort(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// listenUDP binds n sockets on addr (n >= 1). With port 0 the first socket's
// port is used for the rest.
func listenUDP(addr string, n int) ([]*net.UDPConn, error) {
	lc := net.ListenConfig{Control: reusePort}
	var conns []*net.UDPConn
	for i := range n {
		a := addr
		if i > 0 {
			a = conns[0].LocalAddr().String()
		}
		pc, err := lc.ListenPacket(context.Background(), "udp", a)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, err
		}
		conns = append(conns, pc.(*net.UDPConn))
	}
	return conns, nil
}

func udpSockets() int { return max(1, runtime.GOMAXPROCS(0)) }

func (l *udpListener) serve(s *Server) {
	for _, c := range l.conns {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			s.readUDP(c)
		}()
	}
}

func (l *udpListener) close() {
	for _, c := range l.conns {
		c.Close()
	}
	l.wg.Wait()
}

// updateSlots bounds UPDATEs in flight: each may wait for an fsync, so they
// run beside the reader instead of stalling it, but never unboundedly.
const updateSlots = 16

// readUDP is one socket's loop: fast path first, general path otherwise.
func (s *Server) readUDP(c *net.UDPConn) {
	buf := make([]byte, 65535)
	out := make([]byte, 0, 4096)
	var q fastQuery
	local := c.LocalAddr().(*net.UDPAddr)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		pkt := buf[:n]
		start := time.Now()
		client := from.Addr().Unmap()
		p := s.pub.Load()
		if rl := p.fast.rrl; rl != nil && !p.snap.Config.Server.IsAdmin(client) {
			switch rl.check(client, start) {
			case rrlDrop:
				s.metrics.rrlDropped.Inc()
				continue
			case rrlSlip:
				s.metrics.rrlSlipped.Inc()
				if tc := truncated(pkt, out[:0]); tc != nil {
					_, _ = c.WriteToUDPAddrPort(tc, from)
				}
				continue
			}
		}
		if parseFast(pkt, &q) {
			if resp, rcode, loc, ok := s.fastAnswer(p, &q, client, out[:0]); ok {
				_, _ = c.WriteToUDPAddrPort(resp, from)
				s.accountFast(p, &q, client, resp, rcode, loc, start)
				continue
			}
		}
		if len(pkt) >= 12 && int(binary.BigEndian.Uint16(pkt[2:])>>11)&0xF == dns.OpcodeUpdate {
			select {
			case s.updateSem <- struct{}{}:
				pkt := append([]byte(nil), pkt...)
				go func() {
					defer func() { <-s.updateSem }()
					s.serveRaw(pkt, &udpWriter{conn: c, local: local, remote: from})
				}()
			default:
				// Too many UPDATEs at once: drop; nsupdate retries.
			}
			continue
		}
		s.serveRaw(pkt, &udpWriter{conn: c, local: local, remote: from})
	}
}

// accountFast counts a fast-path answer and, when the query log samples it,
// logs it like the general path does (decoding only the sampled ones).
func (s *Server) accountFast(p *published, q *fastQuery, client netip.Addr, resp []byte, rcode uint16, loc int, start time.Time) {
	locName := p.snap.LocationName(loc)
	s.metrics.countQuery(queryKey{qtype: q.qtype, rcode: rcode, transport: UDP, location: locName}, start)
	every := p.snap.Config.Server.QueryLogEvery()
	if every == 0 || s.logSeq.Add(1)%every != 0 {
		return
	}
	m := new(dns.Msg)
	if m.Unpack(resp) != nil {
		return
	}
	s.logQuery(m, client, UDP, locName, every)
}

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
	case dns.MsgReject, dns.MsgRejectNotImplemented:
		_ = w.WriteMsg(headerReply(dh, action))
		return
	}
	if t := req.IsTsig(); t != nil {
		w.tsigStatus = dns.TsigVerifyWithProvider(pkt, tsigProvider{s}, "", false)
		w.tsigRequestMAC = t.MAC
		w.provider = tsigProvider{s}
	}
	s.ServeDNS(w, req)
}

// headerReply is the answer to a message rejected on its header: the ID,
// opcode and RD echoed, no sections (the body was not, or could not be, read).
func headerReply(dh dns.Header, action dns.MsgAcceptAction) *dns.Msg {
	m := new(dns.Msg)
	m.Id = dh.Id
	m.Response = true
	m.Opcode = int(dh.Bits>>11) & 0xF
	m.RecursionDesired = dh.Bits&(1<<8) != 0
	m.Rcode = dns.RcodeFormatError
	if action == dns.MsgRejectNotImplemented {
		m.Rcode = dns.RcodeNotImplemented
	}
	return m
}

// udpWriter is the dns.ResponseWriter of the general path on our sockets.
type udpWriter struct {
	conn           *net.UDPConn
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
	return w.conn.WriteToUDPAddrPort(b, w.remote)
}
func (w *udpWriter) Close() error        { return nil }
func (w *udpWriter) TsigStatus() error   { return w.tsigStatus }
func (w *udpWriter) TsigTimersOnly(bool) {}
func (w *udpWriter) Hijack()             {}
