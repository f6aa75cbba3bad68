//go:build !linux

package dnsserver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/failoverdns/failoverdns/zones"
)

// Elsewhere than Linux, sockets are plain net.UDPConns read through Go's
// netpoller: correct everywhere, fastest on Linux (udp_linux.go).

type connSock struct{ c *net.UDPConn }

func (c connSock) localAddr() netip.AddrPort { return c.c.LocalAddr().(*net.UDPAddr).AddrPort() }
func (c connSock) send(b []byte, to netip.AddrPort) error {
	_, err := c.c.WriteToUDPAddrPort(b, to)
	return err
}
func (c connSock) shutdown() { c.c.Close() }

func listenUDP(addr string, n int) ([]udpSock, error) {
	lc := net.ListenConfig{Control: func(network, address string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = setReusePort(fd) })
		if err != nil {
			return err
		}
		return serr
	}}
	var socks []udpSock
	for i := range n {
		a := addr
		if i > 0 {
			a = socks[0].localAddr().String()
		}
		pc, err := lc.ListenPacket(context.Background(), "udp"+zones.ListenFamily(addr), a)
		if err != nil {
			for _, s := range socks {
				s.shutdown()
			}
			return nil, err
		}
		socks = append(socks, connSock{pc.(*net.UDPConn)})
	}
	return socks, nil
}

func (s *Server) readSock(sock udpSock, wg *sync.WaitGroup) {
	defer wg.Done()
	c := sock.(connSock).c
	buf := make([]byte, 65535)
	out := make([]byte, 0, 4096)
	var q query
	stats := s.metrics.newReaderStats()
	var batches uint
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
		p := s.pub.Load()
		batches++
		timed := batches%latencySample == 0
		var start time.Duration
		if timed || p.fast.rrl != nil {
			start = monoNow()
		}
		client := from.Addr().Unmap()
		if !mayAnswer(pkt) {
			continue
		}
		switch s.admit(p, client, start) {
		case rrlDrop:
			continue
		case rrlSlip:
			if tc := truncated(pkt, out[:0]); tc != nil {
				_, _ = c.WriteToUDPAddrPort(tc, from)
			}
			continue
		}
		if resp, ok := s.serveFast(p, pkt, client, &q, out[:0], stats); ok {
			_, _ = c.WriteToUDPAddrPort(resp, from)
			if timed {
				stats.observe(monoNow()-start, 1)
			}
			continue
		}
		s.slowUDP(pkt, from, sock, local)
	}
}

// Readers here wait in the netpoller, holding no P.
func addReaderProcs(int) {}
