package health

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/failoverdns/failoverdns/dnsserver/testenv"
)

// specFor points a spec of the given type at a listener's address.
func specFor(t testing.TB, typ CheckType, addr net.Addr) Spec {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		t.Fatal(err)
	}
	if !ap.Addr().IsLoopback() {
		t.Fatalf("test target %s is not loopback", ap)
	}
	return Spec{
		Type:        typ,
		Addr:        ap.Addr(),
		Port:        ap.Port(),
		Host:        serviceName,
		MinValidity: 72 * time.Hour,
		Interval:    time.Second,
		// Generous: the first use of the system roots parses them all,
		// which under -race on a loaded 2-core machine takes seconds.
		Timeout: 30 * time.Second,
		Rise:    1,
		Fall:    1,
	}
}

// listen opens a TCP listener on a loopback address and closes it with the
// test. Every accepted connection is handled by serve (nil: close at once).
func listen(t *testing.T, addr string, serve func(net.Conn)) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		// Handlers end when the client closes its side, so this also
		// catches a check that leaves connections behind.
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("a checked connection was left open")
		}
	})
	var handle func(net.Conn)
	if serve != nil {
		handle = func(c net.Conn) { wg.Go(func() { serve(c) }) }
	}
	accepting := testenv.Serve(ln, handle)
	wg.Go(func() { <-accepting })
	return ln
}

// closedAddr returns a loopback address where nothing listens.
func closedAddr(t *testing.T) net.Addr {
	t.Helper()
	return &net.TCPAddr{IP: net.IPv4(127, 0, 10, 3), Port: testenv.ClosedPort(t, "127.0.10.3")}
}

func httpServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func tlsServer(t *testing.T, cert tls.Certificate) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	// Handshake failures are the point of several tests; keep them out of
	// the test log.
	s.Config.ErrorLog = discardLogger()
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func wantResult(t *testing.T, r Result, ok bool, errSub string) {
	t.Helper()
	if r.OK != ok {
		t.Fatalf("OK = %v, want %v (Err %q)", r.OK, ok, r.Err)
	}
	if ok && r.Err != "" {
		t.Errorf("Err = %q on success", r.Err)
	}
	if !strings.Contains(r.Err, errSub) {
		t.Errorf("Err = %q, want it to contain %q", r.Err, errSub)
	}
	if r.At.IsZero() {
		t.Error("At not set")
	}
	if r.Latency < 0 {
		t.Errorf("Latency = %v", r.Latency)
	}
}

func TestCheckTCP(t *testing.T) {
	up := listen(t, "127.0.10.2:0", nil)
	t.Run("up", func(t *testing.T) {
		wantResult(t, Check(context.Background(), specFor(t, TypeTCP, up.Addr())), true, "")
	})
	t.Run("refused", func(t *testing.T) {
		r := Check(context.Background(), specFor(t, TypeTCP, closedAddr(t)))
		wantResult(t, r, false, "connect: connection refused")
	})
}

func TestCheckNone(t *testing.T) {
	// Port 9 on a closed address: a none check must not even try.
	r := Check(context.Background(), Spec{Type: TypeNone, Addr: netip.MustParseAddr("127.0.10.9"), Port: 9})
	wantResult(t, r, true, "")
	if r.Latency != 0 {
		t.Errorf("Latency = %v, want 0", r.Latency)
	}
}

func TestCheckUnknownType(t *testing.T) {
	r := Check(context.Background(), Spec{Type: "icmp", Addr: netip.MustParseAddr("127.0.0.1"), Timeout: time.Second})
	wantResult(t, r, false, `unknown check type "icmp"`)
}

func TestCheckHTTP(t *testing.T) {
	var (
		mu       sync.Mutex
		lastHost string
		lastPath string
	)
	s := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		lastHost, lastPath = r.Host, r.URL.Path
		mu.Unlock()
		switch r.URL.Path {
		case "/ok":
			io.WriteString(w, "status: all good")
		case "/503":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/redirect":
			http.Redirect(w, r, "/ok", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	})
	addr := s.Listener.Addr()

	tests := []struct {
		name   string
		path   string
		expect []int
		body   string
		ok     bool
		errSub string
	}{
		{name: "200", path: "/ok", ok: true},
		{name: "503", path: "/503", errSub: "status 503, want [200]"},
		{name: "204 expected", path: "/204", expect: []int{200, 204}, ok: true},
		{name: "404 not expected", path: "/missing", expect: []int{200, 204}, errSub: "status 404"},
		{name: "body match", path: "/ok", body: "all good", ok: true},
		{name: "body mismatch", path: "/ok", body: "degraded", errSub: `body does not contain "degraded"`},
		{name: "redirect not followed", path: "/redirect", errSub: "status 302"},
		{name: "redirect expected", path: "/redirect", expect: []int{302}, ok: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := specFor(t, TypeHTTP, addr)
			spec.Path, spec.Expect, spec.Body = tc.path, tc.expect, tc.body
			wantResult(t, Check(context.Background(), spec), tc.ok, tc.errSub)
		})
	}

	t.Run("host header", func(t *testing.T) {
		spec := specFor(t, TypeHTTP, addr)
		spec.Path = "/ok"
		wantResult(t, Check(context.Background(), spec), true, "")
		mu.Lock()
		defer mu.Unlock()
		if lastHost != serviceName || lastPath != "/ok" {
			t.Errorf("server saw Host %q path %q, want %q %q", lastHost, lastPath, serviceName, "/ok")
		}
	})
	t.Run("default path", func(t *testing.T) {
		spec := specFor(t, TypeHTTP, addr)
		Check(context.Background(), spec)
		mu.Lock()
		defer mu.Unlock()
		if lastPath != "/" {
			t.Errorf("path %q, want /", lastPath)
		}
	})
	t.Run("refused", func(t *testing.T) {
		wantResult(t, Check(context.Background(), specFor(t, TypeHTTP, closedAddr(t))), false, "connection refused")
	})
}

func TestCheckHTTPSAndTLS(t *testing.T) {
	p := certs(t)
	good := tlsServer(t, p.Good).Listener.Addr()
	wrong := tlsServer(t, p.WrongName).Listener.Addr()
	expired := tlsServer(t, p.Expired).Listener.Addr()
	short := tlsServer(t, p.ShortLife).Listener.Addr()

	tests := []struct {
		name     string
		typ      CheckType
		addr     net.Addr
		caFile   string
		insecure bool
		ok       bool
		errSub   string
	}{
		{name: "https valid", typ: TypeHTTPS, addr: good, caFile: p.CAFile, ok: true},
		{name: "https wrong name", typ: TypeHTTPS, addr: wrong, caFile: p.CAFile, errSub: "tls: certificate valid for other.test, not keys.example.com"},
		{name: "https expired", typ: TypeHTTPS, addr: expired, caFile: p.CAFile, errSub: "tls: certificate expired"},
		{name: "https wrong name insecure", typ: TypeHTTPS, addr: wrong, caFile: p.CAFile, insecure: true, ok: true},
		{name: "https expired insecure", typ: TypeHTTPS, addr: expired, insecure: true, ok: true},
		{name: "https system roots", typ: TypeHTTPS, addr: good, errSub: "unknown authority"},
		{name: "https missing ca file", typ: TypeHTTPS, addr: good, caFile: filepath.Join(t.TempDir(), "nope.pem"), errSub: "ca_file"},
		{name: "https missing ca file insecure", typ: TypeHTTPS, addr: good, caFile: filepath.Join(t.TempDir(), "nope.pem"), insecure: true, ok: true},
		{name: "tls valid", typ: TypeTLS, addr: good, caFile: p.CAFile, ok: true},
		{name: "tls wrong name", typ: TypeTLS, addr: wrong, caFile: p.CAFile, errSub: "not keys.example.com"},
		{name: "tls wrong name ignores insecure", typ: TypeTLS, addr: wrong, caFile: p.CAFile, insecure: true, errSub: "not keys.example.com"},
		{name: "tls expired", typ: TypeTLS, addr: expired, caFile: p.CAFile, errSub: "tls: certificate expired"},
		{name: "tls within min_validity", typ: TypeTLS, addr: short, caFile: p.CAFile, errSub: "within min_validity 72h0m0s"},
		{name: "tls missing ca file", typ: TypeTLS, addr: good, caFile: filepath.Join(t.TempDir(), "nope.pem"), errSub: "ca_file"},
		{name: "tls against plain http", typ: TypeTLS, addr: httpServer(t, http.NotFound).Listener.Addr(), caFile: p.CAFile, errSub: "tls"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := specFor(t, tc.typ, tc.addr)
			spec.CAFile, spec.Insecure = tc.caFile, tc.insecure
			wantResult(t, Check(context.Background(), spec), tc.ok, tc.errSub)
		})
	}

	t.Run("short life passes with small min_validity", func(t *testing.T) {
		spec := specFor(t, TypeTLS, short)
		spec.CAFile, spec.MinValidity = p.CAFile, time.Minute
		wantResult(t, Check(context.Background(), spec), true, "")
	})
}

// TestCheckerCachesCA shows the CA file is read once per checker: deleting it
// after the first probe does not break later ones.
func TestCheckerCachesCA(t *testing.T) {
	p := certs(t)
	spec := specFor(t, TypeHTTPS, tlsServer(t, p.Good).Listener.Addr())
	spec.CAFile = p.CAFile
	c := newChecker(spec)
	wantResult(t, c.check(context.Background()), true, "")
	if err := removeFile(p.CAFile); err != nil {
		t.Fatal(err)
	}
	wantResult(t, c.check(context.Background()), true, "")
	wantResult(t, Check(context.Background(), spec), false, "ca_file")
}

// silent accepts connections and never writes, like a wedged backend.
func silent(c net.Conn) {
	defer c.Close()
	io.Copy(io.Discard, c)
}

// TestCheckHungBackend: a backend that accepts and never answers must fail
// at Timeout, not hang the prober's worker.
func TestCheckHungBackend(t *testing.T) {
	ln := listen(t, "127.0.10.4:0", silent)
	p := certs(t)
	for _, typ := range []CheckType{TypeHTTP, TypeHTTPS, TypeTLS} {
		t.Run(string(typ), func(t *testing.T) {
			spec := specFor(t, typ, ln.Addr())
			spec.CAFile = p.CAFile
			spec.Timeout = 200 * time.Millisecond
			r := checkWithin(t, spec, 5*time.Second)
			wantResult(t, r, false, "timeout after 200ms")
		})
	}
}

// checkWithin runs Check and fails the test if it does not return within
// limit; the limit is a hang detector, not a timing claim.
func checkWithin(t *testing.T, spec Spec, limit time.Duration) Result {
	t.Helper()
	done := make(chan Result, 1)
	go func() { done <- Check(context.Background(), spec) }()
	select {
	case r := <-done:
		return r
	case <-time.After(limit):
		t.Fatalf("%s check still running after %v", spec.Type, limit)
		return Result{}
	}
}

func TestCheckCanceled(t *testing.T) {
	ln := listen(t, "127.0.10.4:0", silent)
	ctx, cancel := context.WithCancel(context.Background())
	spec := specFor(t, TypeHTTP, ln.Addr())
	done := make(chan Result, 1)
	go func() { done <- Check(ctx, spec) }()
	cancel()
	select {
	case r := <-done:
		wantResult(t, r, false, "canceled")
	case <-time.After(5 * time.Second):
		t.Fatal("check ignored cancellation")
	}
}

func ExampleCheck() {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer s.Close()
	ap := netip.MustParseAddrPort(s.Listener.Addr().String())
	r := Check(context.Background(), Spec{
		Type:    TypeHTTP,
		Addr:    ap.Addr(),
		Port:    ap.Port(),
		Host:    "keys.example.com",
		Timeout: time.Second,
	})
	fmt.Println(r.OK, r.Err)
	// Output: false status 503, want [200]
}

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }

func removeFile(name string) error { return os.Remove(name) }
