//go:build linux

package health

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"time"

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
// garbage to every probe.
func tcpStart(addr netip.AddrPort) (fd int, sa rawSockaddr, done bool, err error) {
	fam := unix.AF_INET6
	if a := addr.Addr().Unmap(); a.Is4() {
		fam, sa = unix.AF_INET, &unix.SockaddrInet4{Port: int(addr.Port()), Addr: a.As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: int(addr.Port()), Addr: a.As16()}
	}
	fd, err = unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_TCP)
	if err != nil {
		return -1, nil, true, err
	}
	if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &linger0); err != nil {
		unix.Close(fd)
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
	unix.Close(fd)
	return -1, nil, true, err
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
