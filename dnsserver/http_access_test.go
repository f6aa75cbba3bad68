package dnsserver_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/failoverdns/failoverdns/dnsserver/testenv"
)

// TestHTTPReadersOnly: /status and /metrics answer admin_nets only by
// default, like _status, and server.http_nets when set; /healthz and
// /readyz answer everyone; POST /reload stays with admin_nets.
func TestHTTPReadersOnly(t *testing.T) {
	const admin, monitor, other = "127.0.0.1", "127.0.0.3", "127.0.0.2"
	for _, tc := range []struct {
		name     string
		httpNets string
		may      map[string]bool // source: may read /status and /metrics
	}{
		{"default: admin_nets", "", map[string]bool{admin: true, monitor: false, other: false}},
		{"http_nets set", `["127.0.0.3/32"]`, map[string]bool{admin: false, monitor: true, other: false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodes := opsNodes(t, "sems1")
			e := opsStart(t, opsConf{order: []string{"sems1"}, http: true, adminNets: `["127.0.0.1/32"]`, httpNets: tc.httpNets}, nodes)
			for from, may := range tc.may {
				for _, path := range []string{"/status", "/metrics"} {
					code, body := testenv.HTTPDo(t, from, http.MethodGet, e.HTTP, path)
					switch {
					case may && code != http.StatusOK:
						t.Errorf("GET %s from %s: %d %q, want 200", path, from, code, body)
					case !may && (code != http.StatusForbidden || !strings.Contains(body, "server.http_nets")):
						t.Errorf("GET %s from %s: %d %q, want 403 naming server.http_nets", path, from, code, body)
					}
				}
				for _, path := range []string{"/healthz", "/readyz"} {
					if code, body := testenv.HTTPDo(t, from, http.MethodGet, e.HTTP, path); code != http.StatusOK {
						t.Errorf("GET %s from %s: %d %q, want 200 (open to everyone)", path, from, code, body)
					}
				}
			}
			if code, _ := testenv.HTTPDo(t, monitor, http.MethodPost, e.HTTP, "/reload"); code != http.StatusForbidden {
				t.Errorf("POST /reload from %s (not in admin_nets): %d, want 403", monitor, code)
			}
		})
	}
}
