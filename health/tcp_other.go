//go:build !linux

package health

import (
	"net/netip"
	"time"
)

const rawTCP = false

func tcpConnect(netip.AddrPort, time.Duration) (error, bool) { panic("tcpConnect is Linux only") }
