// Package health probes nodes and keeps a per-node up/down state with
// rise/fall thresholds, so that one lost packet never moves a service and a
// node that came back must prove itself before it gets traffic again.
//
// It deliberately knows nothing about DNS or zones: it reports state changes
// through a callback, and the caller builds whatever immutable snapshot the
// query path needs.
package health

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Spec is one node's check, already validated and defaulted by the caller.
type Spec struct {
	Type        CheckType
	Addr        netip.Addr // target address
	Port        uint16
	Path        string        // http/https: request path, default "/"
	Host        string        // http/https: Host header and SNI; https/tls: the name the certificate must be valid for
	Expect      []int         // http/https: acceptable status codes; empty means [200]
	Body        string        // http/https: optional substring the body must contain (read at most 64 KiB)
	CAFile      string        // https/tls: PEM roots instead of system roots ("" = system roots)
	Insecure    bool          // https only: skip certificate verification
	MinValidity time.Duration // tls: certificate must not expire within this
	Interval    time.Duration
	Timeout     time.Duration // whole check (dial + handshake + request + body) bounded by this
	Rise, Fall  int           // consecutive successes to go up / failures to go down
	// Answers are the addresses handed out on this node's behalf while it
	// is up. No check uses them; they are part of the Spec because a
	// result vouches for them: when they change (a new address probed at
	// an unchanged check target), the node is a changed node, and its
	// state starts over (Install).
	Answers []netip.Addr
	// Source is the local address probes leave from; the zero Addr lets
	// the kernel choose. It lets one instance's probes be told apart (and
	// filtered, as the cluster fault tests do) from another's on the same
	// host, and pins probes to one interface on a multi-homed host.
	Source netip.Addr
}

// Result is the outcome of one probe.
type Result struct {
	OK      bool
	Latency time.Duration
	Err     string // "" when OK; a short human reason otherwise
	Reason  Reason // ReasonNone when OK; the class of Err otherwise
	At      time.Time
}

// CheckType is what a probe checks: [node.check] type.
type CheckType string

// Check types.
const (
	TypeTCP   CheckType = "tcp"
	TypeHTTP  CheckType = "http"
	TypeHTTPS CheckType = "https"
	TypeTLS   CheckType = "tls"
	TypeNone  CheckType = "none"
)

// maxBody bounds how much of a response we read: a health endpoint that
// streams forever must not pin a worker or memory.
const maxBody = 64 << 10

// defaultTimeout only guards against a caller that forgot to default Timeout;
// an unbounded probe would hold a worker slot forever.
const defaultTimeout = 5 * time.Second

// Check runs one probe now, bounded by spec.Timeout. It builds a fresh
// checker, so a CAFile is read on every call; the Prober caches checkers.
func Check(ctx context.Context, spec Spec) Result {
	return newChecker(spec).check(ctx)
}

// checker holds what can be prepared once per Spec: the HTTP client and the
// CA pool, so steady-state probes do no file I/O.
type checker struct {
	spec   Spec
	client *http.Client // http/https only
	local  *net.TCPAddr // Source for net.Dialer; nil: the kernel's choice

	mu   sync.Mutex
	pool *x509.CertPool // loaded CAFile; nil until loaded or when CAFile == ""
}

func newChecker(spec Spec) *checker {
	c := &checker{spec: spec}
	if spec.Source.IsValid() {
		c.local = &net.TCPAddr{IP: spec.Source.Unmap().AsSlice()}
	}
	if spec.Type == TypeHTTP || spec.Type == TypeHTTPS {
		tr := &http.Transport{
			// A health check must reach the node itself, never a proxy
			// named by the environment.
			Proxy: nil,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return c.dialer().DialContext(probeContext(ctx), network, addr)
			},
			// A reused connection could hide a node that stopped
			// accepting new ones.
			DisableKeepAlives: true,
			// Ask for the identity encoding so Body is matched against
			// the bytes the node sent, without a decompressor in between.
			DisableCompression: true,
			// The TLS config is filled per probe (see tlsConfig), because
			// the CA pool is loaded lazily.
			DialTLSContext:         c.dialTLS,
			MaxResponseHeaderBytes: maxBody,
		}
		c.client = &http.Client{
			Transport: tr,
			// A redirect is an answer from this node; following it would
			// test some other server.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return c
}

func (c *checker) dialer() *net.Dialer {
	// Probes are short-lived; TCP keep-alive probes would only add noise.
	d := &net.Dialer{KeepAlive: -1}
	if c.local != nil {
		d.LocalAddr = c.local
	}
	return d
}

func (c *checker) check(ctx context.Context) Result {
	r, p, ok := c.begin(nil)
	if ok {
		return r
	}
	return c.finish(ctx, p)
}

// quick reports whether begin usually settles this check without waiting,
// so that the prober can run it inline instead of on a worker.
func (c *checker) quick() bool {
	return c.spec.Type == TypeNone || (c.spec.Type == TypeTCP && rawTCP)
}

// pending is a probe that begin started but could not settle.
type pending struct {
	start time.Time
	fd    int // a tcp connect in progress, or -1: the whole check is still to run
	sa    rawSockaddr
}

// close gives up a probe that will not be finished.
func (p pending) close() {
	if p.fd >= 0 {
		tcpAbort(p.fd)
	}
}

// begin does the part of a probe that never waits: all of a none check, and
// a raw tcp connect up to the point where the peer would have to answer. ok
// reports that r is the result; otherwise finish(ctx, p) completes the probe
// and may wait up to the timeout. spare (may be nil) is the caller's idle
// sockets, for a caller that probes back to back.
func (c *checker) begin(spare *sockets) (r Result, p pending, ok bool) {
	start := time.Now()
	if c.spec.Type == TypeNone {
		return Result{OK: true, At: start}, pending{}, true
	}
	p = pending{start: start, fd: -1}
	if c.spec.Type != TypeTCP || !rawTCP {
		return Result{}, p, false
	}
	fd, sa, done, err := tcpStart(netip.AddrPortFrom(c.spec.Addr, c.spec.Port), c.spec.Source, spare)
	if !done {
		p.fd, p.sa = fd, sa
		return Result{}, p, false
	}
	return c.tcpResult(context.Background(), start, err, false), pending{}, true
}

func (c *checker) timeout() time.Duration {
	if c.spec.Timeout <= 0 {
		return defaultTimeout
	}
	return c.spec.Timeout
}

func (c *checker) tcpResult(ctx context.Context, start time.Time, err error, timedOut bool) Result {
	end := time.Now()
	r := Result{OK: err == nil, Latency: end.Sub(start), At: end}
	switch {
	case err == nil:
	case ctx.Err() != nil:
		r.Err, r.Reason = "canceled", ReasonOther
	case timedOut:
		r.Err, r.Reason = "timeout after "+c.timeout().String(), ReasonTimeout
	case isBindError(err):
		// Not the target's fault: the source address cannot be used.
		// Worded as net.Dialer words it on the portable path.
		r.Err, r.Reason = err.Error(), ReasonOther
	default:
		r.Err, r.Reason = "connect: "+err.Error(), reasonOf(err, false, false)
	}
	return r
}

func isBindError(err error) bool {
	var se *os.SyscallError
	return errors.As(err, &se) && se.Syscall == "bind"
}

// finish completes a probe that begin left pending, bounded by the timeout
// counted from begin.
func (c *checker) finish(ctx context.Context, p pending) Result {
	start, timeout := p.start, c.timeout()
	if p.fd >= 0 {
		err, timedOut := tcpWait(ctx, p.fd, p.sa, start.Add(timeout))
		return c.tcpResult(ctx, start, err, timedOut)
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var err error
	switch c.spec.Type {
	case TypeTCP:
		err = c.checkTCP(cctx)
	case TypeHTTP, TypeHTTPS:
		err = c.checkHTTP(cctx)
	case TypeTLS:
		err = c.checkTLS(cctx)
	default:
		err = fmt.Errorf("unknown check type %q", c.spec.Type)
	}
	end := time.Now()
	r := Result{OK: err == nil, Latency: end.Sub(start), At: end}
	if err != nil {
		r.Err = describe(cctx, ctx, err, timeout)
		r.Reason = reasonOf(err, timedOut(cctx, err), errors.Is(ctx.Err(), context.Canceled))
	}
	return r
}

func (c *checker) target() string {
	return netip.AddrPortFrom(c.spec.Addr, c.spec.Port).String()
}

func (c *checker) checkTCP(ctx context.Context) error {
	conn, err := c.dialer().DialContext(ctx, "tcp", c.target())
	if err != nil {
		return err
	}
	// Reset instead of a graceful close: thousands of probes a second
	// would otherwise leave as many sockets in TIME_WAIT on our side.
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	return conn.Close()
}

func (c *checker) checkHTTP(ctx context.Context) error {
	scheme := "http"
	if c.spec.Type == TypeHTTPS {
		scheme = "https"
	}
	path := c.spec.Path
	if path == "" {
		path = "/"
	} else if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	ctx = context.WithValue(ctx, probeCtxKey{}, ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+c.target()+path, nil)
	if err != nil {
		return err
	}
	if c.spec.Host != "" {
		req.Host = c.spec.Host
	}
	req.Header.Set("User-Agent", "failoverdns-health")
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()

	expect := c.spec.Expect
	if len(expect) == 0 {
		expect = []int{http.StatusOK}
	}
	if !slices.Contains(expect, resp.StatusCode) {
		return because(ReasonStatus, fmt.Errorf("status %d, want %v", resp.StatusCode, expect))
	}
	if c.spec.Body == "" {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return because(ReasonBody, fmt.Errorf("read body: %w", err))
	}
	if !strings.Contains(string(body), c.spec.Body) {
		return because(ReasonBody, fmt.Errorf("body does not contain %q", c.spec.Body))
	}
	return nil
}

// dialTLS does the TLS handshake itself (rather than leaving it to
// http.Transport) so that the handshake honours the probe's deadline and the
// CA pool is resolved at probe time.
func (c *checker) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	cfg, err := c.tlsConfig(c.spec.Insecure)
	if err != nil {
		return nil, err
	}
	d := &tls.Dialer{NetDialer: c.dialer(), Config: cfg}
	return d.DialContext(probeContext(ctx), network, addr)
}

// probeCtxKey carries the probe's own context into the transport's dial
// functions. http.Transport detaches dials from the request's cancellation
// (hoping to reuse the connection later), which for a probe means a silent
// backend would keep a dial or handshake running long after the probe
// timed out; with keep-alives off there is nothing to reuse.
type probeCtxKey struct{}

func probeContext(ctx context.Context) context.Context {
	if pc, ok := ctx.Value(probeCtxKey{}).(context.Context); ok {
		return pc
	}
	return ctx
}

func (c *checker) checkTLS(ctx context.Context) error {
	// Insecure is ignored: the whole point of a tls check is the certificate.
	cfg, err := c.tlsConfig(false)
	if err != nil {
		return err
	}
	d := &tls.Dialer{NetDialer: c.dialer(), Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", c.target())
	if err != nil {
		return err
	}
	defer conn.Close()
	// Bound the close_notify write too: a peer that stopped reading must
	// not hold the probe past its deadline.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return because(ReasonTLS, errors.New("tls: no peer certificate"))
	}
	notAfter := certs[0].NotAfter
	if !notAfter.After(time.Now().Add(c.spec.MinValidity)) {
		return because(ReasonTLS, fmt.Errorf("certificate expires %s, within min_validity %s",
			notAfter.UTC().Format(time.RFC3339), c.spec.MinValidity))
	}
	return nil
}

func (c *checker) tlsConfig(insecure bool) (*tls.Config, error) {
	var pool *x509.CertPool
	if !insecure {
		// Roots are irrelevant when nothing is verified, so an unreadable
		// CAFile must not fail an insecure check.
		var err error
		if pool, err = c.roots(); err != nil {
			return nil, err
		}
	}
	host := c.spec.Host
	if host == "" {
		// Without a name, verify against the address itself rather than
		// silently skipping the name check.
		host = c.spec.Addr.String()
	}
	return &tls.Config{
		ServerName:         host,
		RootCAs:            pool,
		InsecureSkipVerify: insecure,
		MinVersion:         tls.VersionTLS12,
		NextProtos:         []string{"http/1.1"},
	}, nil
}

// roots returns the CA pool for the spec, reading CAFile on first use only.
// A failed read is not cached, so a file that appears later (or is fixed)
// is picked up without a reload.
func (c *checker) roots() (*x509.CertPool, error) {
	if c.spec.CAFile == "" {
		return nil, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pool != nil {
		return c.pool, nil
	}
	pem, err := os.ReadFile(c.spec.CAFile)
	if err != nil {
		return nil, &caError{fmt.Errorf("ca_file: %w", err)}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, &caError{fmt.Errorf("ca_file %s: no PEM certificates", c.spec.CAFile)}
	}
	c.pool = pool
	return pool, nil
}

// caError marks a local configuration problem, so describe reports it as is
// instead of as a network error.
type caError struct{ err error }

func (e *caError) Error() string { return e.err.Error() }
func (e *caError) Unwrap() error { return e.err }

// timedOut reports whether a check's error is its own deadline passing.
func timedOut(cctx context.Context, err error) bool {
	return errors.Is(cctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded)
}

// describe turns an error into the short reason shown by `dig _status` and in
// logs. Wrapping layers (url.Error, net.OpError, tls.CertificateVerificationError)
// repeat the target address, which the reader already knows.
func describe(cctx, parent context.Context, err error, timeout time.Duration) string {
	var ce *caError
	if errors.As(err, &ce) {
		return ce.Error()
	}
	if errors.Is(parent.Err(), context.Canceled) {
		return "canceled"
	}
	if timedOut(cctx, err) {
		return "timeout after " + timeout.String()
	}

	var he x509.HostnameError
	if errors.As(err, &he) {
		var names []string
		if he.Certificate != nil {
			names = append(names, he.Certificate.DNSNames...)
			for _, ip := range he.Certificate.IPAddresses {
				names = append(names, ip.String())
			}
		}
		if len(names) == 0 {
			return "tls: certificate has no names, not valid for " + he.Host
		}
		return fmt.Sprintf("tls: certificate valid for %s, not %s", strings.Join(names, ", "), he.Host)
	}
	var cie x509.CertificateInvalidError
	if errors.As(err, &cie) {
		if cie.Reason == x509.Expired && cie.Cert != nil {
			if time.Now().Before(cie.Cert.NotBefore) {
				return "tls: certificate not valid before " + cie.Cert.NotBefore.UTC().Format(time.RFC3339)
			}
			return "tls: certificate expired " + cie.Cert.NotAfter.UTC().Format(time.RFC3339)
		}
		return "tls: " + strings.TrimPrefix(cie.Error(), "x509: ")
	}
	var uae x509.UnknownAuthorityError
	if errors.As(err, &uae) {
		return "tls: certificate signed by unknown authority"
	}
	var rerr tls.RecordHeaderError
	if errors.As(err, &rerr) {
		return "tls: server did not answer with TLS"
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "connection closed by peer"
	}
	if errors.Is(err, syscall.ECONNRESET) {
		return "connection reset by peer"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		if oe.Op == "dial" {
			// "connect: connection refused" without "dial tcp 127.0.0.1:80:".
			return oe.Err.Error()
		}
		return oe.Op + ": " + oe.Err.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}
