package dnsserver_test

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// What ISC's DNS compliance tests (genreport) ask of an ideal server, each
// over UDP and TCP: a query signed with a key the server does not have
// gets NOTAUTH with TSIG error BADKEY (dnswkk=notauth,badkey; RFC 8945
// 5.2), and opcode 15 gets NOTIMP with QR the only flag (opcodeflg=ok).

const confKey = "conf-key."

var confSecret = base64.StdEncoding.EncodeToString([]byte("conformance-tsig-secret-32-bytes"))

// signedExchange sends q signed with key and secret and returns the
// request's MAC and the reply, raw, and parsed without checking its
// signature.
func signedExchange(t *testing.T, network, addr string, q *dns.Msg, key, secret string) (string, []byte, *dns.Msg) {
	t.Helper()
	q.SetTsig(key, dns.HmacSHA256, 300, time.Now().Unix())
	buf, mac, err := dns.TsigGenerate(q, secret, "", false)
	if err != nil {
		t.Fatal(err)
	}
	raw, r := exchangeWire(t, network, addr, buf)
	return mac, raw, r
}

func TestConformanceTSIGQuery(t *testing.T) {
	addr := startServer(t, "\n[[tsig]]\nname = \""+confKey+"\"\nalgorithm = \"hmac-sha256\"\nsecret = \""+confSecret+"\"\n")
	other := base64.StdEncoding.EncodeToString([]byte("some-other-secret-of-thirty-two!"))
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range []struct {
			name, key, secret string
			rcode             int
			tsigErr           uint16
		}{
			{"unknown key", "nokey.", confSecret, dns.RcodeNotAuth, dns.RcodeBadKey},
			{"wrong secret", confKey, other, dns.RcodeNotAuth, dns.RcodeBadSig},
			{"good signature", confKey, confSecret, dns.RcodeSuccess, 0},
		} {
			t.Run(network+"/"+tc.name, func(t *testing.T) {
				q := new(dns.Msg).SetQuestion("www.conformance.test.", dns.TypeA)
				q.RecursionDesired = false
				mac, raw, r := signedExchange(t, network, addr, q, tc.key, tc.secret)
				ts := r.IsTsig()
				if r.Rcode != tc.rcode || ts == nil || ts.Error != tc.tsigErr {
					t.Fatalf("rcode %s, TSIG %v; want %s with TSIG error %s\n%v", dns.RcodeToString[r.Rcode], ts, dns.RcodeToString[tc.rcode], dns.RcodeToString[int(tc.tsigErr)], r)
				}
				if tc.tsigErr != 0 {
					// RFC 8945 5.3.2: no MAC on a BADKEY or BADSIG answer;
					// the question echoed, nothing else.
					if ts.MACSize != 0 || ts.MAC != "" || len(r.Answer) != 0 || len(r.Question) != 1 {
						t.Errorf("MAC %q (size %d), %d answers, question %v; want an empty MAC, no answer, the question", ts.MAC, ts.MACSize, len(r.Answer), r.Question)
					}
					return
				}
				// A good signature: the answer, signed with the same key.
				if len(r.Answer) != 1 || !r.Authoritative {
					t.Errorf("answer %v, AA %v; want www's A, authoritative", r.Answer, r.Authoritative)
				}
				if err := dns.TsigVerify(raw, confSecret, mac, false); err != nil {
					t.Errorf("the answer's signature does not verify: %v", err)
				}
			})
		}
		t.Run(network+"/opcode 15", func(t *testing.T) {
			q := new(dns.Msg).SetQuestion("www.conformance.test.", dns.TypeA)
			q.Opcode = 15
			q.RecursionDesired = true
			q.CheckingDisabled = true
			r, _ := exchange(t, network, addr, q)
			if r.Rcode != dns.RcodeNotImplemented || r.Opcode != 15 || r.Id != q.Id {
				t.Errorf("rcode %s opcode %d id %d; want NOTIMP, opcode 15, id %d", dns.RcodeToString[r.Rcode], r.Opcode, r.Id, q.Id)
			}
			if !r.Response || r.RecursionDesired || r.Authoritative || r.Truncated || r.RecursionAvailable || r.Zero || r.AuthenticatedData || r.CheckingDisabled {
				t.Errorf("flags %+v; want QR alone (genreport opcodeflg)", r.MsgHdr)
			}
			if len(r.Question)+len(r.Answer)+len(r.Ns)+len(r.Extra) != 0 {
				t.Errorf("sections %v; want the header alone", r)
			}
		})
	}
}
