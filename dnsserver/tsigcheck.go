package dnsserver

import (
	"errors"
	"time"

	"github.com/miekg/dns"
)

// tsigError is the TSIG error (RFC 8945 5.2) of the answer to a signed
// request whose verification gave st: BADKEY for a key or algorithm we do
// not have, BADTIME for a time outside the request's fudge, BADSIG for the
// rest; 0 for a good signature.
func tsigError(st error) uint16 {
	switch {
	case st == nil:
		return 0
	case errors.Is(st, dns.ErrSecret), errors.Is(st, dns.ErrKeyAlg):
		return dns.RcodeBadKey
	case errors.Is(st, dns.ErrTime):
		return dns.RcodeBadTime
	}
	return dns.RcodeBadSig
}

// signReply signs m with the request's key (RFC 8945) and the TSIG error
// tsigErr. With BADKEY or BADSIG the MAC is empty, which miekg/dns does from
// the error; with BADTIME the time signed is ours, so the client sees the
// skew. Fqdn: a TSIG with no algorithm name is echoed as the root, since
// miekg/dns packs an empty name malformed.
func signReply(m *dns.Msg, t *dns.TSIG, tsigErr uint16) {
	m.SetTsig(t.Hdr.Name, dns.Fqdn(t.Algorithm), fudgeLimit, time.Now().Unix())
	rt := m.Extra[len(m.Extra)-1].(*dns.TSIG)
	rt.Error = tsigErr
	if tsigErr == dns.RcodeBadTime {
		rt.TimeSigned = uint64(time.Now().Unix())
	}
}
