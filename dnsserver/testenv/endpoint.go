package testenv

import (
	"context"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Serve accepts connections on ln and hands each to handle (nil: close it
// at once) until ln is closed; done is closed when the accept loop has
// returned.
func Serve(ln net.Listener, handle func(net.Conn)) (done <-chan struct{}) {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if handle == nil {
				c.Close()
				continue
			}
			handle(c)
		}
	}()
	return ch
}

// Endpoint is a node's TCP health endpoint: a listener that accepts and
// closes every connection, which a test stops (connections are refused:
// the node is down) and starts again on the same address and port.
type Endpoint struct {
	IP   string
	Port int

	mu   sync.Mutex
	ln   net.Listener
	done <-chan struct{}
}

// NewEndpoint listens on ip:port (port 0: one the kernel chooses); with up
// false it is stopped again at once, its port known. It is stopped when
// the test ends.
func NewEndpoint(tb testing.TB, ip string, port int, up bool) *Endpoint {
	tb.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		tb.Fatalf("endpoint on %s: %v", ip, err)
	}
	n := &Endpoint{IP: ip, Port: ln.Addr().(*net.TCPAddr).Port, ln: ln, done: Serve(ln, nil)}
	if !up {
		n.Stop()
	}
	tb.Cleanup(n.Stop)
	return n
}

// Addr is ip:port.
func (n *Endpoint) Addr() string { return net.JoinHostPort(n.IP, strconv.Itoa(n.Port)) }

// Stop closes the listener: connects are refused from now on.
func (n *Endpoint) Stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ln != nil {
		n.ln.Close()
		<-n.done
		n.ln = nil
	}
}

// Start listens on the endpoint's port again (retrying for a while: the
// port may linger).
func (n *Endpoint) Start(tb testing.TB) {
	tb.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ln != nil {
		return
	}
	deadline := time.Now().Add(Timeout)
	for {
		ln, err := net.Listen("tcp", n.Addr())
		if err == nil {
			n.ln, n.done = ln, Serve(ln, nil)
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("endpoint %s: listening again: %v", n.Addr(), err)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// Every calls f every d until ctx is done (the first call after d).
func Every(ctx context.Context, d time.Duration, f func()) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		f()
	}
}

// Eventually polls cond every poll until it holds, for at most within, and
// reports whether it did.
func Eventually(within, poll time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(within); ; time.Sleep(poll) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}
