package health

import (
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

// blackHole returns a listener that never accepts and whose accept queue is
// already full, so the kernel drops further SYNs: on loopback this is the
// closest thing to a host that silently eats packets. Linux lets listen(2)
// be called again to shrink the backlog of a live socket.
func blackHole(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.10.5:0")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) { lerr = syscall.Listen(int(fd), 0) }); err != nil {
		t.Fatal(err)
	}
	if lerr != nil {
		t.Fatal(lerr)
	}

	// Fill the queue. Dials that find it full hang until their own short
	// timeout; that is expected and ignored.
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	for range 4 {
		wg.Go(func() {
			d := net.Dialer{Timeout: 300 * time.Millisecond}
			if c, err := d.Dial("tcp", ln.Addr().String()); err == nil {
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
		ln.Close()
	})
	return ln
}

func TestCheckBlackHole(t *testing.T) {
	ln := blackHole(t)
	for _, typ := range []string{TypeTCP, TypeHTTP, TypeTLS} {
		t.Run(typ, func(t *testing.T) {
			spec := specFor(t, typ, ln.Addr())
			spec.Timeout = 200 * time.Millisecond
			r := checkWithin(t, spec, 5*time.Second)
			wantResult(t, r, false, "timeout after 200ms")
		})
	}
}
