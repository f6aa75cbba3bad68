//go:build linux

package dnsserver

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// On Linux each UDP socket is read by its own OS thread blocked in
// recvmmsg(2), the way gdnsd does it: the kernel wakes exactly that thread
// when packets arrive, a burst is taken in one call, and the fast path's
// answers go back in one sendmmsg(2). Go's netpoller would instead park and
// wake a goroutine per packet, which costs several times the answer itself.

// readTimeout: see readSock.
var readTimeout = unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())

const (
	batchSize = 32
	slotSize  = 8192 // a query larger than this is cut (MSG_TRUNC) and refused
)

// rawSock is one bound socket.
type rawSock struct {
	fd     int
	local  netip.AddrPort
	closed atomic.Bool
}

func (r *rawSock) localAddr() netip.AddrPort { return r.local }

func (r *rawSock) send(b []byte, to netip.AddrPort) error {
	var sa unix.Sockaddr
	if a := to.Addr(); a.Is4() && r.local.Addr().Is4() {
		sa = &unix.SockaddrInet4{Port: int(to.Port()), Addr: a.As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: int(to.Port()), Addr: to.Addr().As16()}
	}
	return unix.Sendto(r.fd, b, 0, sa)
}

// shutdown wakes the reader (Linux wakes a blocked receiver on shutdown even
// for an unconnected UDP socket) and makes it exit.
func (r *rawSock) shutdown() {
	r.closed.Store(true)
	_ = unix.Shutdown(r.fd, unix.SHUT_RDWR)
}

// listenUDP binds n SO_REUSEPORT sockets on addr. With port 0 the first
// socket's port is used for the rest.
func listenUDP(addr string, n int) ([]udpSock, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("listen udp %s: bad port", addr)
	}
	var ip netip.Addr
	dual := false
	switch host {
	case "":
		// No host: one IPv6 socket that takes IPv4 too (see listenFamily).
		ip, dual = netip.IPv6Unspecified(), true
	default:
		if ip, err = netip.ParseAddr(host); err != nil {
			return nil, fmt.Errorf("listen udp %s: %v", addr, err)
		}
		ip = ip.Unmap()
	}
	var socks []udpSock
	fail := func(err error) ([]udpSock, error) {
		for _, s := range socks {
			unix.Close(s.(*rawSock).fd)
		}
		return nil, fmt.Errorf("listen udp %s: %w", addr, err)
	}
	for range n {
		fam := unix.AF_INET6
		if ip.Is4() {
			fam = unix.AF_INET
		}
		fd, err := unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
		if err != nil {
			return fail(err)
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
		if fam == unix.AF_INET6 {
			v6only := 1
			if dual {
				v6only = 0
			}
			_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v6only)
		}
		// A timeout bounds how long a reader can miss the shutdown wake-up
		// or a stop-the-world (see readSock), and it is what makes a
		// signal interrupt the receive instead of restarting it.
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &readTimeout)
		var sa unix.Sockaddr
		if fam == unix.AF_INET {
			sa = &unix.SockaddrInet4{Port: port, Addr: ip.As4()}
		} else {
			sa = &unix.SockaddrInet6{Port: port, Addr: ip.As16()}
		}
		if err := unix.Bind(fd, sa); err != nil {
			unix.Close(fd)
			return fail(err)
		}
		bound, err := unix.Getsockname(fd)
		if err != nil {
			unix.Close(fd)
			return fail(err)
		}
		var local netip.AddrPort
		switch b := bound.(type) {
		case *unix.SockaddrInet4:
			local = netip.AddrPortFrom(netip.AddrFrom4(b.Addr), uint16(b.Port))
		case *unix.SockaddrInet6:
			local = netip.AddrPortFrom(netip.AddrFrom16(b.Addr), uint16(b.Port))
		}
		port = int(local.Port())
		socks = append(socks, &rawSock{fd: fd, local: local})
	}
	return socks, nil
}

// batchReader holds one socket's buffers, allocated once.
type batchReader struct {
	sock  *rawSock
	bufs  [batchSize][slotSize]byte
	names [batchSize]unix.RawSockaddrInet6
	iovs  [batchSize]unix.Iovec
	msgs  [batchSize]unix.Mmsghdr

	out     [batchSize][]byte
	outIov  [batchSize]unix.Iovec
	outMsgs [batchSize]unix.Mmsghdr
}

func (s *Server) readSock(sock udpSock, wg *sync.WaitGroup) {
	defer wg.Done()
	rs := sock.(*rawSock)
	defer unix.Close(rs.fd)
	// The thread blocks in the kernel; keep it to this reader.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	br := &batchReader{sock: rs}
	for i := range batchSize {
		br.iovs[i].Base = &br.bufs[i][0]
		br.iovs[i].SetLen(slotSize)
		br.msgs[i].Hdr.Iov = &br.iovs[i]
		br.msgs[i].Hdr.SetIovlen(1)
		br.out[i] = make([]byte, 0, 4096)
	}
	r := s.newReader(rs, &net.UDPAddr{IP: rs.local.Addr().AsSlice(), Port: int(rs.local.Port())})
	for i := range batchSize {
		br.msgs[i].Hdr.Name = (*byte)(unsafe.Pointer(&br.names[i]))
		br.msgs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
	}
	for !rs.closed.Load() {
		// RawSyscall: the runtime does not see this thread enter a system
		// call, so sysmon does not retake its P every 20µs and hand it
		// back on every packet (which cost more than the answer). The P
		// stays with the reader while it waits in the kernel; Start adds
		// one P per reader so the rest of the server keeps its share.
		// Preemption and the GC still reach it: SO_RCVTIMEO makes the
		// receive return EINTR on the runtime's signal (and at least every
		// readTimeout), and the loop passes a safe point.
		n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(rs.fd), uintptr(unsafe.Pointer(&br.msgs[0])), batchSize, unix.MSG_WAITFORONE, 0, 0)
		if errno != 0 || n == 0 {
			// Timeout (EAGAIN), EINTR or shutdown. The runtime's
			// preemption signal is what caused an EINTR, and the loop back
			// to the receive passes no safe point: yield here, or a
			// stop-the-world (GC) waits for a packet that may never come
			// (TestUDPReadersLetTheWorldStop).
			runtime.Gosched()
			continue
		}
		p, start, timed := r.batch()
		nout := 0
		for i := range int(n) {
			from := sockaddrToAddrPort(&br.names[i])
			if br.msgs[i].Hdr.Flags&unix.MSG_TRUNC != 0 || !from.IsValid() {
				continue
			}
			if resp := r.packet(p, br.bufs[i][:br.msgs[i].Len], from, start, br.out[nout][:0]); resp != nil {
				br.queue(nout, resp, i)
				nout++
			}
		}
		br.flush(nout)
		r.done(start, timed, nout)
		// The kernel rewrote the name length and flags of the messages it
		// filled; the rest are as set.
		for i := range int(n) {
			br.msgs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
			br.msgs[i].Hdr.Flags = 0
		}
	}
}

// queue sets answer j to go to the sender of packet i.
func (br *batchReader) queue(j int, resp []byte, i int) {
	br.out[j] = resp
	br.outIov[j].Base = &resp[0]
	br.outIov[j].SetLen(len(resp))
	h := &br.outMsgs[j].Hdr
	h.Iov = &br.outIov[j]
	h.SetIovlen(1)
	h.Name = (*byte)(unsafe.Pointer(&br.names[i]))
	h.Namelen = br.msgs[i].Hdr.Namelen
}

// flush sends the queued answers, in as few sendmmsg calls as it takes.
func (br *batchReader) flush(n int) {
	for sent := 0; sent < n; {
		k, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(br.sock.fd), uintptr(unsafe.Pointer(&br.outMsgs[sent])), uintptr(n-sent), unix.MSG_DONTWAIT, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 || k == 0 {
			// A datagram the kernel refused (e.g. no route back): skip it.
			sent++
			continue
		}
		sent += int(k)
	}
}

func sockaddrToAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET:
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&s4.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(s4.Addr), port)
	case unix.AF_INET6:
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port)
	}
	return netip.AddrPort{}
}

// readerProcs counts UDP readers across servers: each holds a P while it
// waits in the kernel, so GOMAXPROCS is raised by that many for as long as
// they run, leaving the CPU count of Ps to everything else.
var (
	readerMu    sync.Mutex
	readerProcs int
)

func addReaderProcs(n int) {
	readerMu.Lock()
	defer readerMu.Unlock()
	readerProcs += n
	runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + n)
}
