//go:build linux

package health

import (
	"errors"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// rawTCP is true where tcpConnect replaces net.Dialer for tcp checks.
const rawTCP = true

// tcpConnect is a tcp check as the kernel sees it: one blocking connect(2)
// bounded by SO_SNDTIMEO, then a reset. It costs a few system calls and no
// allocation, where net.Dialer adds a netpoller registration, a context, a
// timer and garbage per probe; at 10,000 nodes a second that difference is
// most of the prober's CPU. The worker blocks in the kernel for at most the
// timeout (the pool bounds how many do).
func tcpConnect(addr netip.AddrPort, timeout time.Duration) (err error, timedOut bool) {
	fam, sa := unix.AF_INET6, unix.Sockaddr(nil)
	if a := addr.Addr().Unmap(); a.Is4() {
		fam, sa = unix.AF_INET, &unix.SockaddrInet4{Port: int(addr.Port()), Addr: a.As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: int(addr.Port()), Addr: a.As16(), ZoneId: 0}
	}
	fd, err := unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return err, false
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		return err, false
	}
	// Reset instead of a graceful close: thousands of probes a second
	// would otherwise leave as many sockets in TIME_WAIT on our side.
	if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}); err != nil {
		return err, false
	}
	for {
		err = unix.Connect(fd, sa)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	switch {
	case err == nil:
		return nil, false
	case errors.Is(err, unix.EINPROGRESS), errors.Is(err, unix.EAGAIN), errors.Is(err, unix.ETIMEDOUT):
		// EINPROGRESS: SO_SNDTIMEO ran out before the handshake ended.
		return err, true
	}
	return err, false
}
