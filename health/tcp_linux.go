//go:build linux

package health

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawTCP is true where tcpStart and tcpWait replace net.Dialer for tcp
// checks.
const rawTCP = true

// rawSockaddr is a socket address in the kernel's layout. Built in place,
// it spares every probe the allocation of a unix.Sockaddr.
type rawSockaddr struct {
	v4  unix.RawSockaddrInet4
	v6  unix.RawSockaddrInet6
	is6 bool
}

func makeSockaddr(ap netip.AddrPort) (sa rawSockaddr) {
	var port *uint16
	if a := ap.Addr().Unmap(); a.Is4() {
		sa.v4.Family, sa.v4.Addr, port = unix.AF_INET, a.As4(), &sa.v4.Port
	} else {
		sa.is6 = true
		sa.v6.Family, sa.v6.Addr, port = unix.AF_INET6, a.As16(), &sa.v6.Port
	}
	b := (*[2]byte)(unsafe.Pointer(port)) // network byte order
	b[0], b[1] = byte(ap.Port()>>8), byte(ap.Port())
	return sa
}

// bind is bind(2) to sa.
func (sa *rawSockaddr) bind(fd int) error { return sa.call(unix.SYS_BIND, fd) }

// connect is connect(2) to sa.
func (sa *rawSockaddr) connect(fd int) error { return sa.call(unix.SYS_CONNECT, fd) }

// call is a system call that takes (fd, sockaddr, length) for sa.
func (sa *rawSockaddr) call(trap uintptr, fd int) error {
	var e unix.Errno
	if sa.is6 {
		_, _, e = unix.Syscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&sa.v6)), unsafe.Sizeof(sa.v6))
	} else {
		_, _, e = unix.Syscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&sa.v4)), unsafe.Sizeof(sa.v4))
	}
	if e != 0 {
		return e
	}
	return nil
}

// linger0 makes close send a reset: thousands of probes a second would
// otherwise leave as many sockets in TIME_WAIT on our side. The kernel only
// reads it, so one copy serves every probe.
var linger0 = unix.Linger{Onoff: 1, Linger: 0}

// tcpStart is a tcp check as the kernel sees it: a non-blocking connect(2),
// then a second connect(2) to read the outcome. When the peer answers within
// the first call, as loopback always does (the kernel runs both ends of the
// handshake before connect returns), or when the connect fails at once, the
// result is known with no wait and no allocation: done is true and err is the outcome. Otherwise fd is still connecting and
// tcpWait finishes the check. That keeps the common case as cheap as a
// blocking connect while never blocking a thread on a slow or silent peer;
// net.Dialer would add a netpoller registration, a context, a timer and
// garbage to every probe. src, when valid, is the local address the probe
// leaves from (bound before the connect); its family must be addr's. spare
// (may be nil) lends and takes back the socket.
func tcpStart(addr netip.AddrPort, src netip.Addr, spare *sockets) (fd int, sa rawSockaddr, done bool, err error) {
	sa = makeSockaddr(addr)
	fam := 0
	if sa.is6 {
		fam = 1
	}
	if fd, err = spare.get(fam, src); err != nil {
		return -1, sa, true, err
	}
	err = sa.connect(fd)
	switch err {
	case nil:
	case unix.EINPROGRESS, unix.EINTR:
		// EINTR: the connect goes on in the background, as for
		// EINPROGRESS.
		if done, err = connected(fd, &sa); !done {
			return fd, sa, false, nil
		}
	}
	if err == nil && spare != nil {
		spare.put(fam, src, fd)
	} else {
		unix.Close(fd)
	}
	return -1, sa, true, err
}

// sockets keeps an idle socket per address family for a goroutine that
// probes back to back, such as the scheduler. connect(2) with AF_UNSPEC
// dissolves a TCP connection, resetting it just as a close with linger 0
// would, and leaves a socket that can connect again; reusing it saves a
// socket(2), a setsockopt(2) and a close(2) per probe, about a fifth of a
// loopback probe's CPU. Only sockets whose connect succeeded come back: a
// failed one is in a state not worth reasoning about, and failures are rare.
//
// A socket bound to a source address keeps that address across the
// dissolve (the kernel resets the local address only when bind did not
// lock it) while its port goes back to the pool, so a kept socket also
// remembers its source, and only a probe from the same source reuses it.
// The zero value is empty; the owner must call close.
type sockets struct {
	fd  [2]int        // AF_INET, AF_INET6
	src [2]netip.Addr // the address fd is bound to; zero: unbound
	has [2]bool
}

var unspec = unix.RawSockaddr{Family: unix.AF_UNSPEC}

// get returns the idle socket of family fam (0 = IPv4, 1 = IPv6) bound to
// src (zero: unbound), or a new one. s may be nil.
func (s *sockets) get(fam int, src netip.Addr) (int, error) {
	if s != nil && s.has[fam] && s.src[fam] == src {
		s.has[fam] = false
		return s.fd[fam], nil
	}
	domain := unix.AF_INET
	if fam == 1 {
		domain = unix.AF_INET6
	}
	fd, err := unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_TCP)
	if err != nil {
		return -1, err
	}
	if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &linger0); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if src.IsValid() {
		if err := bindSource(fd, fam, src); err != nil {
			unix.Close(fd)
			return -1, err
		}
	}
	return fd, nil
}

// bindSource binds fd to src with no port. IP_BIND_ADDRESS_NO_PORT defers
// the port to connect(2), which picks one unique for the 4-tuple only;
// a plain bind(2) to port 0 would reserve a port for the address alone and
// run the ephemeral range dry at a fraction of the probes in flight.
func bindSource(fd, fam int, src netip.Addr) error {
	src = src.Unmap()
	if src.Is4() != (fam == 0) {
		return os.NewSyscallError("bind", errors.New("source "+src.String()+" is not of the target's address family"))
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1); err != nil {
		return err
	}
	sa := makeSockaddr(netip.AddrPortFrom(src, 0))
	if err := sa.bind(fd); err != nil {
		return os.NewSyscallError("bind", err)
	}
	return nil
}

// put resets fd's connection and keeps fd, bound to src, for the next
// probe. The newest socket wins the slot, so when the sources of a
// goroutine's probes change, reuse follows the new source.
func (s *sockets) put(fam int, src netip.Addr, fd int) {
	_, _, e := unix.Syscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&unspec)), unsafe.Sizeof(unspec))
	if e != 0 {
		unix.Close(fd)
		return
	}
	if s.has[fam] {
		unix.Close(s.fd[fam])
	}
	s.fd[fam], s.src[fam], s.has[fam] = fd, src, true
}

func (s *sockets) close() {
	for fam := range s.fd {
		if s.has[fam] {
			unix.Close(s.fd[fam])
			s.has[fam] = false
		}
	}
}

// connected asks a connecting socket how it went: connect(2) again returns
// 0 once the handshake is done, the error that ended it, or EALREADY while
// it is still going.
func connected(fd int, sa *rawSockaddr) (done bool, err error) {
	switch err = sa.connect(fd); err {
	case unix.EALREADY, unix.EINPROGRESS, unix.EINTR:
		return false, nil
	case unix.EISCONN:
		return true, nil
	}
	return true, err
}

// tcpWait finishes a connect that tcpStart left in progress and closes fd.
// It waits in the netpoller, so a silent peer holds a goroutine but no
// thread, and it gives up at deadline (timedOut) or when ctx ends.
func tcpWait(ctx context.Context, fd int, sa rawSockaddr, deadline time.Time) (err error, timedOut bool) {
	f := os.NewFile(uintptr(fd), "tcp probe")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return err, false
	}
	if err := f.SetWriteDeadline(deadline); err != nil {
		return err, false
	}
	stop := context.AfterFunc(ctx, func() { _ = f.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	var cerr error
	werr := rc.Write(func(uintptr) bool {
		var done bool
		done, cerr = connected(fd, &sa)
		return done
	})
	switch {
	case werr == nil:
		return cerr, false
	case errors.Is(werr, os.ErrDeadlineExceeded):
		return werr, true
	}
	return werr, false
}

// tcpAbort closes a socket that tcpStart left connecting.
func tcpAbort(fd int) { unix.Close(fd) }
