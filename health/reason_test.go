package health

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"
)

// TestResultReason: every failed probe carries the reason class its check
// found, the label of failoverdns_health_check_failures_total{reason},
// over real listeners of each kind.
func TestResultReason(t *testing.T) {
	p := certs(t)
	web := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/503" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "all good")
	}).Listener.Addr()
	good := tlsServer(t, p.Good).Listener.Addr()
	expired := tlsServer(t, p.Expired).Listener.Addr()
	hung := listen(t, "127.0.10.4:0", silent).Addr()
	for _, tc := range []struct {
		name   string
		typ    CheckType
		addr   net.Addr
		path   string
		body   string
		caFile string
		want   Reason
	}{
		{name: "ok", typ: TypeHTTP, addr: web, want: ReasonNone},
		{name: "tcp refused", typ: TypeTCP, addr: closedAddr(t), want: ReasonRefused},
		{name: "http refused", typ: TypeHTTP, addr: closedAddr(t), want: ReasonRefused},
		{name: "status", typ: TypeHTTP, addr: web, path: "/503", want: ReasonStatus},
		{name: "body", typ: TypeHTTP, addr: web, body: "degraded", want: ReasonBody},
		{name: "timeout", typ: TypeHTTP, addr: hung, want: ReasonTimeout},
		{name: "unknown authority", typ: TypeHTTPS, addr: good, want: ReasonTLS},
		{name: "expired", typ: TypeTLS, addr: expired, caFile: p.CAFile, want: ReasonTLS},
		{name: "missing ca_file", typ: TypeTLS, addr: good, caFile: filepath.Join(t.TempDir(), "nope.pem"), want: ReasonTLS},
		{name: "tls against plain http", typ: TypeTLS, addr: web, caFile: p.CAFile, want: ReasonTLS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := specFor(t, tc.typ, tc.addr)
			spec.Path, spec.Body, spec.CAFile = tc.path, tc.body, tc.caFile
			spec.Timeout = 300 * time.Millisecond
			r := Check(context.Background(), spec)
			if r.Reason != tc.want || r.OK != (tc.want == ReasonNone) {
				t.Errorf("OK %v, reason %q (err %q), want reason %q", r.OK, r.Reason, r.Err, tc.want)
			}
		})
	}
}
