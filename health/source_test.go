package health

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"
)

// probeSource is where the source tests' probes leave from: a loopback
// address no other test uses, so the listener cannot mistake anything else
// for a probe.
var probeSource = netip.MustParseAddr("127.0.0.13")

// needLoopbackRange skips where 127.0.0.13 is not a local address: Linux
// routes all of 127/8 to lo, other systems only 127.0.0.1.
func needLoopbackRange(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("only Linux routes all of 127.0.0.0/8 to lo")
	}
}

// peers returns a channel that receives the remote address of every
// connection a server of s accepts.
func peers(s *http.Server) <-chan netip.Addr {
	ch := make(chan netip.Addr, 16)
	s.ConnState = func(c net.Conn, st http.ConnState) {
		if st == http.StateNew {
			ch <- netip.MustParseAddrPort(c.RemoteAddr().String()).Addr()
		}
	}
	return ch
}

// recordingListener is a TCP listener on 127.0.0.1 that sends the source
// address of every connection it accepts.
func recordingListener(t *testing.T) (net.Addr, <-chan netip.Addr) {
	t.Helper()
	ch := make(chan netip.Addr, 16)
	ln := listen(t, "127.0.0.1:0", func(c net.Conn) {
		ch <- netip.MustParseAddrPort(c.RemoteAddr().String()).Addr()
		// Wait for the probe's reset or close, so the listener's cleanup
		// sees no connection left open.
		_, _ = io.Copy(io.Discard, c)
		c.Close()
	})
	return ln.Addr(), ch
}

// wantPeer waits for the server side of a probe that succeeded: accepting
// it may lag the probe's end.
func wantPeer(t *testing.T, ch <-chan netip.Addr, want netip.Addr) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Errorf("the listener saw the probe from %s, want %s", got, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the listener saw no connection")
	}
}

// TestSourcePortable: the net.Dialer tcp check (every platform but Linux)
// leaves from Spec.Source, and from the kernel's choice without one.
func TestSourcePortable(t *testing.T) {
	needLoopbackRange(t)
	addr, seen := recordingListener(t)
	spec := specFor(t, TypeTCP, addr)
	for _, src := range []netip.Addr{probeSource, {}} {
		spec.Source = src
		if err := newChecker(spec).checkTCP(t.Context()); err != nil {
			t.Fatalf("source %v: %v", src, err)
		}
		want := src
		if !src.IsValid() {
			want = netip.MustParseAddr("127.0.0.1")
		}
		wantPeer(t, seen, want)
	}
}

// TestSourceHTTP: http, https and tls checks leave from Spec.Source.
func TestSourceHTTP(t *testing.T) {
	needLoopbackRange(t)
	pki := certs(t)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })

	plain := httptest.NewUnstartedServer(ok)
	plainSeen := peers(plain.Config)
	plain.Start()
	t.Cleanup(plain.Close)

	secure := httptest.NewUnstartedServer(ok)
	secure.TLS = &tls.Config{Certificates: []tls.Certificate{pki.Good}}
	secureSeen := peers(secure.Config)
	secure.StartTLS()
	t.Cleanup(secure.Close)

	for _, tc := range []struct {
		typ  CheckType
		addr net.Addr
		seen <-chan netip.Addr
	}{
		{TypeHTTP, plain.Listener.Addr(), plainSeen},
		{TypeHTTPS, secure.Listener.Addr(), secureSeen},
		{TypeTLS, secure.Listener.Addr(), secureSeen},
	} {
		t.Run(string(tc.typ), func(t *testing.T) {
			spec := specFor(t, tc.typ, tc.addr)
			spec.CAFile = pki.CAFile
			spec.Source = probeSource
			wantResult(t, Check(context.Background(), spec), true, "")
			wantPeer(t, tc.seen, probeSource)
		})
	}
}

// TestSourceNotLocal: a source that is no local address fails the probe
// with the reason, for every kind of check, instead of leaving from some
// other address.
func TestSourceNotLocal(t *testing.T) {
	addr, _ := recordingListener(t)
	s := httpServer(t, func(w http.ResponseWriter, r *http.Request) {})
	for _, tc := range []struct {
		typ  CheckType
		addr net.Addr
	}{{TypeTCP, addr}, {TypeHTTP, s.Listener.Addr()}} {
		spec := specFor(t, tc.typ, tc.addr)
		spec.Source = netip.MustParseAddr("192.0.2.1") // TEST-NET-1: never local
		r := Check(context.Background(), spec)
		if r.OK || !strings.HasPrefix(r.Err, "bind: ") {
			t.Errorf("%s from 192.0.2.1: OK %v, Err %q; want a bind error", tc.typ, r.OK, r.Err)
		}
	}
}
