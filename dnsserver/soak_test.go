package dnsserver_test

// The answer checker of bench/soak.sh. It is not part of the normal test
// run: it does nothing unless FAILOVERDNS_SOAK is set, and then queries a
// running failoverdns for SOAK_DURATION from each source address and
// validates every answer.
//
//	FAILOVERDNS_SOAK=1             enable
//	SOAK_ADDR=127.0.0.1:5353       the server
//	SOAK_NAME=keys.soak.test.      the service
//	SOAK_DURATION=60s              how long to query
//	SOAK_NODES=ip,ip,ip            every node's address
//	SOAK_SOURCES=127.0.0.1=ip,ip,ip;127.0.99.5=ip,ip
//	                               source address = the answers allowed to it
//	SOAK_INTERVAL=2ms              pause between queries, per source
//
// TestSoakBackend is the script's node backend: with SOAK_BACKEND=ip:port
// it accepts TCP connections there and closes them, until killed.

import (
	"fmt"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

type soakSource struct {
	from    string
	allowed []string
}

// soakResult counts one source's queries and failures by kind.
type soakResult struct {
	from     string
	checked  int
	failures map[string]int
	examples []string
	answers  map[string]int
}

func (r *soakResult) fail(kind, detail string) {
	r.failures[kind]++
	if len(r.examples) < 10 {
		r.examples = append(r.examples, time.Now().UTC().Format("15:04:05.000")+" "+kind+": "+detail)
	}
}

func soakEnv(t *testing.T, name, def string) string {
	t.Helper()
	if v := os.Getenv(name); v != "" {
		return v
	}
	if def == "" {
		t.Fatalf("%s is not set", name)
	}
	return def
}

func TestSoakChecker(t *testing.T) {
	if os.Getenv("FAILOVERDNS_SOAK") == "" {
		t.Skip("the answer checker of bench/soak.sh; set FAILOVERDNS_SOAK=1 (and SOAK_*) to run it")
	}
	addr := soakEnv(t, "SOAK_ADDR", "")
	name := dns.Fqdn(soakEnv(t, "SOAK_NAME", "keys.soak.test."))
	dur, err := time.ParseDuration(soakEnv(t, "SOAK_DURATION", "60s"))
	if err != nil {
		t.Fatal(err)
	}
	pause, err := time.ParseDuration(soakEnv(t, "SOAK_INTERVAL", "2ms"))
	if err != nil {
		t.Fatal(err)
	}
	nodes := strings.Split(soakEnv(t, "SOAK_NODES", ""), ",")
	var sources []soakSource
	for _, s := range strings.Split(soakEnv(t, "SOAK_SOURCES", ""), ";") {
		from, allowed, ok := strings.Cut(s, "=")
		if !ok {
			t.Fatalf("SOAK_SOURCES entry %q: want from=ip,ip", s)
		}
		sources = append(sources, soakSource{from: from, allowed: strings.Split(allowed, ",")})
	}

	end := time.Now().Add(dur)
	results := make([]*soakResult, len(sources))
	var wg sync.WaitGroup
	for i, src := range sources {
		res := &soakResult{from: src.from, failures: map[string]int{}, answers: map[string]int{}}
		results[i] = res
		wg.Go(func() {
			c := &dns.Client{Net: "udp", Timeout: 2 * time.Second,
				Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(src.from)}}}
			for time.Now().Before(end) {
				q := new(dns.Msg).SetQuestion(name, dns.TypeA)
				q.RecursionDesired = false
				r, _, err := c.Exchange(q, addr)
				res.checked++
				switch {
				case err != nil:
					res.fail("no-answer", err.Error())
				case r.Rcode != dns.RcodeSuccess:
					res.fail("rcode-"+dns.RcodeToString[r.Rcode], fmt.Sprintf("%d answers", len(r.Answer)))
				case !r.Authoritative:
					res.fail("not-authoritative", "AA is not set")
				case len(r.Answer) != 1:
					res.fail("answer-count", fmt.Sprintf("%d answers: %v", len(r.Answer), r.Answer))
				default:
					a, ok := r.Answer[0].(*dns.A)
					switch {
					case !ok:
						res.fail("not-A", r.Answer[0].String())
					case !strings.EqualFold(a.Hdr.Name, name):
						res.fail("wrong-name", a.String())
					case !slices.Contains(nodes, a.A.String()):
						res.fail("not-a-node", a.A.String())
					case !slices.Contains(src.allowed, a.A.String()):
						res.fail("outside-order", a.A.String())
					default:
						res.answers[a.A.String()]++
					}
				}
				time.Sleep(pause) // pacing
			}
		})
	}
	wg.Wait()

	total, failed := 0, 0
	for _, r := range results {
		total += r.checked
		n := 0
		var kinds []string
		for k, v := range r.failures {
			n += v
			kinds = append(kinds, fmt.Sprintf("%s=%d", k, v))
		}
		sort.Strings(kinds)
		failed += n
		var answers []string
		for a, v := range r.answers {
			answers = append(answers, fmt.Sprintf("%s=%d", a, v))
		}
		sort.Strings(answers)
		fmt.Printf("soak-checker: from %s: checked %d, failures %d [%s], answers [%s]\n", r.from, r.checked, n, strings.Join(kinds, " "), strings.Join(answers, " "))
		for _, e := range r.examples {
			fmt.Printf("soak-checker:   %s\n", e)
		}
	}
	fmt.Printf("soak-checker: total checked %d failures %d\n", total, failed)
	if failed > 0 {
		t.Errorf("%d of %d answers failed validation", failed, total)
	}
}

func TestSoakBackend(t *testing.T) {
	addr := os.Getenv("SOAK_BACKEND")
	if os.Getenv("FAILOVERDNS_SOAK") == "" || addr == "" {
		t.Skip("a node backend of bench/soak.sh; set FAILOVERDNS_SOAK=1 and SOAK_BACKEND=ip:port to run it")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
}
