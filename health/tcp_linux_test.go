//go:build linux

package health

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSpareSockets: a socket lent back by a probe is reset like one closed
// with linger 0 (the peer reads a reset), connects again to any address of
// its family, and a refused connect is reported and its socket not kept.
func TestSpareSockets(t *testing.T) {
	reads := make(chan error, 1)
	serve := func(c net.Conn) {
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := c.Read(make([]byte, 1))
		reads <- err
	}
	targets := []net.Addr{
		listen(t, "127.0.10.8:0", serve).Addr(),
		listen(t, "127.0.10.9:0", serve).Addr(),
	}
	if ln, err := net.Listen("tcp", "[::1]:0"); err == nil {
		ln.Close()
		targets = append(targets, listen(t, "[::1]:0", serve).Addr())
	} else {
		t.Logf("no IPv6 loopback, IPv4 only: %v", err)
	}
	// A port that was just free: nothing listens there any more.
	closedLn, err := net.Listen("tcp", "127.0.10.8:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := closedLn.Addr()
	closedLn.Close()

	var spare sockets
	defer spare.close()
	lent := 0
	probe := func(a net.Addr) error {
		t.Helper()
		ap := netip.MustParseAddrPort(a.String())
		fam := 0
		if !ap.Addr().Is4() {
			fam = 1
		}
		if spare.has[fam] {
			lent++
		}
		fd, sa, done, err := tcpStart(ap, netip.Addr{}, &spare)
		if !done {
			// Rare on loopback (the listener held its socket's lock),
			// but allowed.
			err, _ = tcpWait(t.Context(), fd, sa, time.Now().Add(10*time.Second))
		}
		return err
	}
	for range 3 {
		for _, a := range targets {
			if err := probe(a); err != nil {
				t.Fatalf("probe %s: %v", a, err)
			}
			if err := <-reads; !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("%s: the peer read %v, want a reset", a, err)
			}
		}
	}
	if lent == 0 {
		t.Error("no probe reused a spare socket")
	}
	if err := probe(closed); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("probe of a closed port: %v, want connection refused", err)
	}
	if spare.has[0] {
		t.Error("the socket of a refused connect was kept")
	}
	if err := probe(targets[0]); err != nil {
		t.Fatalf("probe after a refusal: %v", err)
	}
	<-reads
}

// TestQuickTCPProbeAllocs: the tcp probe the scheduler runs inline makes no
// garbage, which at 10,000 probes a second would keep the GC busy.
func TestQuickTCPProbeAllocs(t *testing.T) {
	c := newChecker(specFor(t, TypeTCP, idleListener(t).Addr()))
	var spare sockets
	defer spare.close()
	allocs := testing.AllocsPerRun(200, func() {
		r, p, ok := c.begin(&spare)
		if !ok {
			p.close() // the listener held its lock: rare, and not this test's subject
			return
		}
		if !r.OK {
			t.Fatalf("probe failed: %s", r.Err)
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per probe, want 0", allocs)
	}
}

// TestSourceRaw: the inline tcp probe leaves from Spec.Source; the spare
// socket it returns keeps that source across the connect(AF_UNSPEC) that
// dissolves its connection, so a reused socket leaves from it too; a probe
// from another source (here the kernel's choice) does not take it, and
// the source of a socket in the slot follows the probes.
func TestSourceRaw(t *testing.T) {
	addr, seen := recordingListener(t)
	bound := specFor(t, TypeTCP, addr)
	bound.Source = probeSource
	unbound := specFor(t, TypeTCP, addr)
	var spare sockets
	defer spare.close()
	probe := func(spec Spec, want netip.Addr) {
		t.Helper()
		r, p, ok := newChecker(spec).begin(&spare)
		if !ok {
			// The listener held its socket's lock: rare, allowed.
			r = newChecker(spec).finish(t.Context(), p)
		}
		if !r.OK {
			t.Fatalf("probe from %v: %s", spec.Source, r.Err)
		}
		wantPeer(t, seen, want)
	}
	kernel := netip.MustParseAddr("127.0.0.1")
	reused := 0
	for _, step := range []struct {
		spec Spec
		want netip.Addr
	}{
		{bound, probeSource}, {bound, probeSource}, {bound, probeSource},
		{unbound, kernel}, {unbound, kernel}, {bound, probeSource}, {bound, probeSource},
	} {
		if spare.has[0] && spare.src[0] == step.spec.Source {
			reused++
		}
		probe(step.spec, step.want)
		if !spare.has[0] || spare.src[0] != step.spec.Source {
			t.Fatalf("after a probe from %v the spare socket is %v from %v", step.spec.Source, spare.has[0], spare.src[0])
		}
	}
	if reused != 4 {
		t.Errorf("%d probes reused the spare socket, want 4", reused)
	}

	// A source of the other family cannot reach the target.
	six := bound
	six.Source = netip.MustParseAddr("::1")
	r := Check(t.Context(), six)
	if r.OK || !strings.HasPrefix(r.Err, "bind: ") {
		t.Errorf("IPv4 target from ::1: OK %v, Err %q; want a bind error", r.OK, r.Err)
	}
}

// TestQuickTCPProbeAllocsSource: binding a source costs no allocation
// either, for a new socket or a reused one.
func TestQuickTCPProbeAllocsSource(t *testing.T) {
	spec := specFor(t, TypeTCP, idleListener(t).Addr())
	spec.Source = probeSource
	c := newChecker(spec)
	for _, spare := range []*sockets{nil, {}} {
		allocs := testing.AllocsPerRun(200, func() {
			r, p, ok := c.begin(spare)
			if !ok {
				p.close()
				return
			}
			if !r.OK {
				t.Fatalf("probe failed: %s", r.Err)
			}
		})
		if allocs != 0 {
			t.Errorf("spare %v: %.1f allocations per probe, want 0", spare != nil, allocs)
		}
		if spare != nil {
			spare.close()
		}
	}
}

// idleListener listens on loopback and never accepts: the kernel completes
// the handshakes (the queued connections are reset by the probes). An
// accepting goroutine would allocate while AllocsPerRun counts the whole
// process's allocations, and fail the allocation tests at random.
func idleListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.10.8:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}
