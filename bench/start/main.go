// Command start measures how long failoverdns binaries take from exec to
// their first answer, for bench/start.sh: each round runs every binary once,
// in a rotating order so that none always runs first on a warm page cache,
// and polls one name every millisecond until it is answered NOERROR with one
// record.
//
// Usage: go run ./bench/start -rounds 30 -addr 127.0.0.1:5353 -name keys.demo.test. LABEL=BINARY [ARG...] ...
// Each LABEL=BINARY runs with the arguments that follow it up to the next
// LABEL=BINARY.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

type target struct {
	label string
	argv  []string
	runs  []time.Duration
}

func main() {
	rounds := flag.Int("rounds", 30, "runs of each binary")
	addr := flag.String("addr", "127.0.0.1:5353", "where the binaries answer")
	name := flag.String("name", "keys.demo.test.", "the name to ask (type A)")
	flag.Parse()
	var ts []*target
	for _, a := range flag.Args() {
		if label, bin, ok := strings.Cut(a, "="); ok && !strings.HasPrefix(a, "-") {
			ts = append(ts, &target{label: label, argv: []string{bin}})
			continue
		}
		if len(ts) == 0 {
			fail("argument %q before the first LABEL=BINARY", a)
		}
		ts[len(ts)-1].argv = append(ts[len(ts)-1].argv, a)
	}
	if len(ts) == 0 {
		fail("no LABEL=BINARY given")
	}
	for i := range *rounds {
		for j := range ts {
			t := ts[(i+j)%len(ts)]
			t.runs = append(t.runs, once(t.argv, *addr, dns.Fqdn(*name)))
		}
	}
	for _, t := range ts {
		r := t.runs
		slices.Sort(r)
		ms := func(q int) string { return fmt.Sprintf("%.1f", float64(r[q*(len(r)-1)/4].Microseconds())/1000) }
		fmt.Printf("%-12s runs %d  min %s  p25 %s  median %s  p75 %s ms\n", t.label, len(r), ms(0), ms(1), ms(2), ms(3))
	}
}

// once starts argv and returns the time until it answers; it stops the
// process with SIGTERM and waits for it before returning.
func once(argv []string, addr, name string) time.Duration {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = nil, nil
	c := &dns.Client{Timeout: 2 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		fail("%v", err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	for {
		r, _, err := c.Exchange(m, addr)
		if err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1 {
			return time.Since(t0)
		}
		if time.Since(t0) > 10*time.Second {
			fail("%s: no answer for %s at %s within 10s (last: %v)", argv[0], name, addr, err)
		}
		time.Sleep(time.Millisecond)
	}
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "start: "+format+"\n", a...)
	os.Exit(2)
}
