package testenv

import (
	"net"
	"strconv"
	"testing"
)

// FreePort returns a port that was free for both UDP and TCP on 127.0.0.1
// a moment ago, for a program that must be told its port. Another process
// may take it in between: a caller that starts a server on it retries on
// "address already in use".
func FreePort(tb testing.TB) int {
	tb.Helper()
	return freePort(tb, "127.0.0.1")
}

// FreePortAll is FreePort for every address of both families (the
// wildcard listen addresses).
func FreePortAll(tb testing.TB) int {
	tb.Helper()
	return freePort(tb, "")
}

func freePort(tb testing.TB, host string) int {
	tb.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
		if err != nil {
			tb.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		pc.Close()
		if err == nil {
			ln.Close()
			return port
		}
	}
	tb.Fatalf("no port free for both UDP and TCP on %q", host)
	return 0
}

// ClosedPort returns a TCP port on ip where nothing listens (a moment ago):
// a health check against it is refused.
func ClosedPort(tb testing.TB, ip string) int {
	tb.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		tb.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}
