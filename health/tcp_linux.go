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

type rawSockaddr = unix.Sockaddr

// linger0 makes close send a reset: thousands of probes a second would
// otherwise leave as many sockets in TIME_WAIT on our side. The kernel only
// reads it, so one copy serves every probe.
var linger0 = unix.Linger{Onoff: 1, Linger: 0}

// tcpStart is a tcp check as the kernel sees it: a non-blocking connect(2),
// then a second connect(2) to read the outcome. When the peer answers within
// the first call, as loopback always does (the kernel runs both ends of the
// handshake before connect returns), or when the connect fails at once, the
// result is known with no wait and no allocation beyond the address: done
// is true and err is the outcome. Otherwise fd is still connecting and
// tcpWait finishes the check. That keeps the common case as cheap as a
// blocking connect while never blocking a thread on a slow or silent peer;
// net.Dialer would add a netpoller registration, a context, a timer and
// garbage to every probe. spare (may be nil) lends and takes back the
// socket.
func tcpStart(addr netip.AddrPort, spare *sockets) (fd int, sa rawSockaddr, done bool, err error) {
	fam := 1
	if a := addr.Addr().Unmap(); a.Is4() {
		fam, sa = 0, &unix.SockaddrInet4{Port: int(addr.Port()), Addr: a.As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: int(addr.Port()), Addr: a.As16()}
	}
	if fd, err = spare.get(fam); err != nil {
		return -1, nil, true, err
	}
	err = unix.Connect(fd, sa)
	switch err {
	case nil:
	case unix.EINPROGRESS, unix.EINTR:
		// EINTR: the connect goes on in the background, as for
		// EINPROGRESS.
		if done, err = connected(fd, sa); !done {
			return fd, sa, false, nil
		}
	}
	if err == nil && spare != nil {
		spare.put(fam, fd)
	} else {
		unix.Close(fd)
	}
	return -1, nil, true, err
}

// sockets keeps an idle socket per address family for a goroutine that
// probes back to back, such as the scheduler. connect(2) with AF_UNSPEC
// dissolves a TCP connection, resetting it just as a close with linger 0
// would, and leaves a socket that can connect again; reusing it saves a
// socket(2), a setsockopt(2) and a close(2) per probe, about a fifth of a
// loopback probe's CPU. Only sockets whose connect succeeded come back: a
// failed one is in a state not worth reasoning about, and failures are rare.
// The zero value is empty; the owner must call close.
type sockets struct {
	fd  [2]int // AF_INET, AF_INET6
	has [2]bool
}

var unspec = unix.RawSockaddr{Family: unix.AF_UNSPEC}

// get returns the idle socket of family fam (0 = IPv4, 1 = IPv6), or a new
// one. s may be nil.
func (s *sockets) get(fam int) (int, error) {
	if s != nil && s.has[fam] {
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
	return fd, nil
}

// put resets fd's connection and keeps fd for the next probe.
func (s *sockets) put(fam, fd int) {
	_, _, e := unix.Syscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&unspec)), unsafe.Sizeof(unspec))
	if e != 0 || s.has[fam] {
		unix.Close(fd)
		return
	}
	s.fd[fam], s.has[fam] = fd, true
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
func connected(fd int, sa rawSockaddr) (done bool, err error) {
	switch err = unix.Connect(fd, sa); err {
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
		done, cerr = connected(fd, sa)
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
