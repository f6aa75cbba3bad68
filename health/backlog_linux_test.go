package health

import (
	"fmt"
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
	for _, typ := range []CheckType{TypeTCP, TypeHTTP, TypeTLS} {
		t.Run(string(typ), func(t *testing.T) {
			spec := specFor(t, typ, ln.Addr())
			spec.Timeout = 200 * time.Millisecond
			r := checkWithin(t, spec, 5*time.Second)
			wantResult(t, r, false, "timeout after 200ms")
		})
	}
}

// TestProberBlackHoleTCP: a tcp probe that gets no answer waits on a worker,
// not in the scheduler, so live nodes keep being probed meanwhile; and Run's
// return does not wait out its timeout, nor is the canceled probe reported.
func TestProberBlackHoleTCP(t *testing.T) {
	hole := blackHole(t)
	live := listen(t, "127.0.10.6:0", nil)
	specs := map[string]Spec{}
	for i := range 4 {
		s := specFor(t, TypeTCP, hole.Addr())
		s.Interval, s.Timeout = 20*time.Millisecond, time.Minute
		specs[fmt.Sprintf("hole%d", i)] = s
		s = specFor(t, TypeTCP, live.Addr())
		s.Interval = 20 * time.Millisecond
		specs[fmt.Sprintf("live%d", i)] = s
	}
	c := &counter{n: map[string]int{}}
	p := NewProberWith(ProberOptions{OnResult: c.inc})
	p.Set(specs)
	stop := startRun(t, p)
	waitFor(t, "every live node probed 5 times", func() bool {
		for i := range 4 {
			if c.get(fmt.Sprintf("live%d", i)) < 5 {
				return false
			}
		}
		return true
	})
	stop()
	snap := p.Snapshot()
	for i := range 4 {
		name := fmt.Sprintf("hole%d", i)
		if n := c.get(name); n != 0 {
			t.Errorf("%s: OnResult fired %d times before its timeout", name, n)
		}
		if st := snap[name]; st.Checked {
			t.Errorf("%s: state changed by a canceled probe: %+v", name, st)
		}
	}
}
