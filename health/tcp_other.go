//go:build !linux

package health

import (
	"context"
	"net/netip"
	"time"
)

const rawTCP = false

type rawSockaddr struct{}

type sockets struct{}

func (*sockets) close() {}

func tcpStart(netip.AddrPort, netip.Addr, *sockets) (int, rawSockaddr, bool, error) {
	panic("tcpStart is Linux only")
}

func tcpWait(context.Context, int, rawSockaddr, time.Time) (error, bool) {
	panic("tcpWait is Linux only")
}

func tcpAbort(int) { panic("tcpAbort is Linux only") }
