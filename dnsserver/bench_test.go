package dnsserver_test

import (
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/dnsserver"
	"github.com/failoverdns/failoverdns/dnsserver/testenv"
)

// benchWriter is the least a dns.ResponseWriter can be: a UDP client on
// 127.0.0.1, and WriteMsg packing into one reused buffer.
type benchWriter struct {
	local, remote net.Addr
	buf           []byte
	n             int
}

func newBenchWriter() *benchWriter {
	return &benchWriter{
		local:  &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53},
		remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000},
		buf:    make([]byte, dns.MaxMsgSize),
	}
}

func (w *benchWriter) LocalAddr() net.Addr  { return w.local }
func (w *benchWriter) RemoteAddr() net.Addr { return w.remote }
func (w *benchWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.PackBuffer(w.buf)
	if err != nil {
		return err
	}
	w.n = len(b)
	return nil
}
func (w *benchWriter) Write(p []byte) (int, error) { w.n = copy(w.buf, p); return len(p), nil }
func (w *benchWriter) Close() error                { return nil }
func (w *benchWriter) TsigStatus() error           { return nil }
func (w *benchWriter) TsigTimersOnly(bool)         {}
func (w *benchWriter) Hijack()                     {}

var _ dns.ResponseWriter = (*benchWriter)(nil)

// BenchmarkServeDNSGeneral measures the general (miekg/dns) path for a static A record from a
// zone file, with EDNS as resolvers send it, without sockets.
func BenchmarkServeDNSGeneral(b *testing.B) {
	snap := loadConfig(b, testenv.Config{Zones: []testenv.Zone{conformanceZone(b)}})
	srv := dnsserver.New(snap, slog.New(slog.NewTextHandler(io.Discard, nil)), testVersion)
	q := new(dns.Msg)
	q.SetQuestion("www.conformance.test.", dns.TypeA)
	q.RecursionDesired = false
	q.SetEdns0(1232, false)
	w := newBenchWriter()

	// The benchmark measures the right thing only if the answer is right.
	srv.ServeDNS(w, q)
	r := new(dns.Msg)
	if err := r.Unpack(w.buf[:w.n]); err != nil {
		b.Fatalf("reply does not parse: %v", err)
	}
	want, _ := dns.NewRR(wwwA)
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 || !sameRR(r.Answer[0], want) {
		b.Fatalf("unexpected reply:\n%v", r)
	}

	b.ReportAllocs()
	for b.Loop() {
		w.n = 0
		srv.ServeDNS(w, q)
		if w.n == 0 {
			b.Fatal("no reply written")
		}
	}
}
