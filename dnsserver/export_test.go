package dnsserver

import (
	"net/netip"
	"testing"

	"github.com/failoverdns/failoverdns/zones"
)

// Hooks for the external test package (dnsserver_test), whose query corpora
// (conformance, hostile, fuzz seeds) the fast path is checked against.

// FastServer is the fast-path tests' server on testdata/fast (see
// fastServerWith), extra added to [server].
func FastServer(tb testing.TB, extra string) *Server { return fastServer(tb, extra) }

// NewAllUpServer is a server on snap, without sockets, with every node up
// and the engine's decisions in force.
func NewAllUpServer(tb testing.TB, snap *zones.Snapshot) *Server { return allUpServer(tb, snap) }

// FastAndGeneral answers pkt from client on both UDP paths: what the fast
// path sends (ok false: it declines) and what the general path sends (nil:
// nothing).
func (s *Server) FastAndGeneral(pkt []byte, client netip.AddrPort) (fast []byte, ok bool, general []byte) {
	fast, ok = s.fastBytes(pkt, client)
	return fast, ok, s.generalBytes(pkt, client)
}
