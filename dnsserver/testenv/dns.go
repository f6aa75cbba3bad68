package testenv

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Timeout bounds one exchange: generous for a loaded 2-core machine under
// -race.
const Timeout = 5 * time.Second

// Client is a miekg/dns client over network ("udp" or "tcp") whose source
// address is from ("" = the kernel's choice), reading replies of up to 64
// KiB whatever the query says, so an oversized UDP reply is seen, not cut.
func Client(network, from string, timeout time.Duration) *dns.Client {
	d := &net.Dialer{Timeout: timeout}
	if from != "" {
		ip := net.ParseIP(from)
		if network == "tcp" {
			d.LocalAddr = &net.TCPAddr{IP: ip}
		} else {
			d.LocalAddr = &net.UDPAddr{IP: ip}
		}
	}
	return &dns.Client{Net: network, Timeout: timeout, Dialer: d, UDPSize: dns.MaxMsgSize}
}

// Exchange sends q to addr over network from the source address from and
// returns the reply; an error names the question, network and source.
func Exchange(network, from, addr string, q *dns.Msg) (*dns.Msg, error) {
	r, _, err := Client(network, from, Timeout).Exchange(q, addr)
	if err != nil {
		what := "query"
		if len(q.Question) == 1 {
			what = q.Question[0].Name + " " + dns.TypeToString[q.Question[0].Qtype]
		}
		return nil, fmt.Errorf("%s over %s from %q: %w", what, network, from, err)
	}
	return r, nil
}

// MustExchange is Exchange failing the test on error.
func MustExchange(tb testing.TB, network, from, addr string, q *dns.Msg) *dns.Msg {
	tb.Helper()
	r, err := Exchange(network, from, addr, q)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// Query is a query for name/qtype without RD (an authoritative server is
// asked); with opts it carries an OPT record holding them.
func Query(name string, qtype uint16, opts ...dns.EDNS0) *dns.Msg {
	q := new(dns.Msg).SetQuestion(name, qtype)
	q.RecursionDesired = false
	if len(opts) > 0 {
		q.SetEdns0(1232, false)
		o := q.IsEdns0()
		o.Option = append(o.Option, opts...)
	}
	return q
}

// Ask sends Query(name, qtype) to addr over network from from.
func Ask(network, from, addr, name string, qtype uint16) (*dns.Msg, error) {
	return Exchange(network, from, addr, Query(name, qtype))
}

// Header builds a 12-byte DNS header.
func Header(id, flags, qd, an, ns, ar uint16) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint16(b[0:], id)
	binary.BigEndian.PutUint16(b[2:], flags)
	binary.BigEndian.PutUint16(b[4:], qd)
	binary.BigEndian.PutUint16(b[6:], an)
	binary.BigEndian.PutUint16(b[8:], ns)
	binary.BigEndian.PutUint16(b[10:], ar)
	return b
}

// Frame prefixes p with its length, as DNS over TCP sends it.
func Frame(p []byte) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(p))), p...)
}

// ReadFrame reads one length-prefixed DNS message from a TCP connection.
func ReadFrame(conn net.Conn) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(conn, l[:]); err != nil {
		return nil, err
	}
	p := make([]byte, binary.BigEndian.Uint16(l[:]))
	_, err := io.ReadFull(conn, p)
	return p, err
}

// MustAsk is Ask failing the test on error.
func MustAsk(tb testing.TB, network, from, addr, name string, qtype uint16) *dns.Msg {
	tb.Helper()
	return MustExchange(tb, network, from, addr, Query(name, qtype))
}

// AnswerOf describes a reply to an A query in one word: the address of its
// one A record; else the rcode's name (not NOERROR), the answers (not
// exactly one) or the record (not an A).
func AnswerOf(r *dns.Msg) string {
	if r.Rcode != dns.RcodeSuccess {
		return dns.RcodeToString[r.Rcode]
	}
	if len(r.Answer) != 1 {
		return fmt.Sprintf("%d answers: %v", len(r.Answer), r.Answer)
	}
	a, ok := r.Answer[0].(*dns.A)
	if !ok {
		return r.Answer[0].String()
	}
	return a.A.String()
}

// NameOf is the key of names whose value is v, or v.
func NameOf(names map[string]string, v string) string {
	for n, x := range names {
		if x == v {
			return n
		}
	}
	return v
}
