//go:build !linux

package dnsserver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"

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
	r := s.newReader(sock, c.LocalAddr().(*net.UDPAddr))
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p, start, timed := r.batch()
		if resp := r.packet(p, buf[:n], from, start, out[:0]); resp != nil {
			_, _ = c.WriteToUDPAddrPort(resp, from)
			r.done(start, timed, 1)
		}
	}
}

// Readers here wait in the netpoller, holding no P.
func addReaderProcs(int) {}
