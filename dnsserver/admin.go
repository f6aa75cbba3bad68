package dnsserver

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/health"
	"github.com/failoverdns/failoverdns/zones"
)

// adminAnswer answers _pin and _status names, which only admin_nets may
// read. It reports false when qname is not a configured admin name, so the
// zone answers it (NXDOMAIN for a typo, a static record otherwise).
func (s *Server) adminAnswer(snap *zones.Snapshot, m *dns.Msg, z *zones.Zone, qs dns.Question) bool {
	var txt []string
	if k, ok := snap.PinKeyOf(qs.Name); ok {
		p, _, ok := zones.PinAt(snap.DynamicPins(), snap.StaticPins(), k, time.Now())
		if !ok {
			m.Authoritative = true
			m.Rcode = dns.RcodeNameError
			m.Ns = []dns.RR{z.NegSOA}
			return true
		}
		txt = []string{p.Text()}
	} else if k, ok := snap.StatusKeyOf(qs.Name); ok {
		txt = fitStatus(s.statusLines(snap, k), k.Service)
	} else {
		return false
	}
	m.Authoritative = true
	if qs.Qtype != dns.TypeTXT && qs.Qtype != dns.TypeANY {
		m.Ns = []dns.RR{z.NegSOA}
		return true
	}
	m.Answer = []dns.RR{&dns.TXT{
		// TTL 0: state must never be cached and shown stale.
		Hdr: dns.RR_Header{Name: qs.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 0},
		Txt: txt,
	}}
	return true
}

// nodeStates is the node health _status and /status show: the prober's
// live view, fresher than the snapshot's (which holds states as of the last
// change) for latency and the last error; the snapshot's where no prober
// runs. Decisions, gauges and the status page read the snapshot's, the
// states the decisions were made from.
func (s *Server) nodeStates(snap *zones.Snapshot) map[string]health.State {
	if s.liveHealth != nil {
		return s.liveHealth()
	}
	return snap.HealthState()
}

// statusLines describes one service view: a string per node, then the pin
// and the reason for the answer, so `dig TXT _status.<service>` explains
// itself.
func (s *Server) statusLines(snap *zones.Snapshot, k zones.PinKey) []string {
	now := time.Now()
	loc := snap.LocationIndex(k.Location)
	v, _ := snap.ViewOf(k.Service, loc, now)
	svc, order, d, decidedBy := v.Service, v.Order, v.Decision, v.DecidedBy
	states := s.nodeStates(snap)
	agreed := snap.Cluster()
	out := clusterStatus(agreed, time.Now())
	if iso := snap.Isolation(); iso.Isolated || len(iso.Held) > 0 {
		what := "prober holding node falls"
		if iso.Isolated {
			what = "prober isolated"
		}
		out = append(out, clip(fmt.Sprintf("%s: every anchor fails (%s), last answered %s; held as up: %s", what, iso.Err, iso.AnchorOK.UTC().Format(time.RFC3339), strings.Join(iso.Held, ", "))))
	}
	for _, n := range order {
		out = append(out, nodeStatus(n, states[n], d.Active == n)+clusterVotes(agreed, n))
	}
	for _, n := range svc.Config.Nodes {
		if !contains(order, n) {
			out = append(out, nodeStatus(n, states[n], d.Active == n)+clusterVotes(agreed, n)+" not-in-order")
		}
	}
	switch {
	case !v.Pinned:
		out = append(out, "pin none")
	case v.PinKey.Location == "" && k.Location != "":
		out = append(out, clip("pin (service-wide) "+pinStatus(v.Pin)))
	default:
		out = append(out, clip("pin "+pinStatus(v.Pin)))
	}
	for _, pk := range []zones.PinKey{k, {Service: k.Service}} {
		for _, p := range []zones.Pin{snap.DynamicPins()[pk], snap.StaticPins()[pk]} {
			if p.Pending(now) {
				out = append(out, clip(fmt.Sprintf("pin pending: %s (switch in %s)", pinStatus(p), p.Start.Sub(now).Round(time.Second))))
			}
		}
		if pk.Location == "" {
			break
		}
	}
	out = append(out, dormantLines(snap, k.Service)...)
	answer := d.Active
	if d.Servfail {
		answer = "SERVFAIL"
	}
	note := s.changeNote(svc.Name, snap.LocationName(decidedBy), answer, now)
	if d.TTL != 0 {
		answer += fmt.Sprintf(" ttl=%d (counting down to a scheduled switch)", d.TTL)
	}
	out = append(out, viewLine(fmt.Sprintf("view %s: answer %s: ", snap.LocationName(loc), answer), d.Reason, generation(agreed, d, k.Service, snap.LocationName(loc))+note))
	if k.Location == "" {
		for i := 1; i < snap.LocationCount(); i++ {
			if od, ok := snap.Decision(svc.Name, i); ok {
				a := od.Active
				if od.Servfail {
					a = "SERVFAIL"
				}
				note := s.changeNote(svc.Name, snap.LocationName(i), a, now)
				out = append(out, viewLine(fmt.Sprintf("view %s: answer %s: ", snap.LocationName(i), a), od.Reason, generation(agreed, od, svc.Name, snap.LocationName(i))+note))
			}
		}
	}
	return out
}

// statusBudget bounds the TXT strings of one _status answer (a string
// costs its length plus one octet): with the header, the question, the
// record's own header and EDNS around it, the message stays under the
// 65,535 octets a TCP answer can carry. Over UDP a larger answer is
// truncated (TC) as any other, and the client asks again over TCP.
const statusBudget = 60000

// fitStatus keeps lines within statusBudget. A service with thousands of
// locations has a view line for each, more than any DNS message holds;
// rather than an empty truncated answer, the first lines (nodes, pin, the
// asked view first) are kept and one last line counts what was left out,
// per answer for the views, and says how to ask for one location.
func fitStatus(lines []string, service string) []string {
	size := 0
	for i, l := range lines {
		if size+len(l)+1 <= statusBudget-256 { // room for the summary line
			size += len(l) + 1
			continue
		}
		rest := lines[i:]
		byAnswer := map[string]int{}
		for _, r := range rest {
			if _, after, ok := strings.Cut(r, ": answer "); ok && strings.HasPrefix(r, "view ") {
				a, _, _ := strings.Cut(after, ":")
				a, _, _ = strings.Cut(a, " ")
				byAnswer[a]++
			}
		}
		var tally []string
		for a, n := range byAnswer {
			tally = append(tally, fmt.Sprintf("%s %d", a, n))
		}
		slices.Sort(tally)
		// The advice before the tally: clip keeps the start of a line.
		return append(lines[:i:i], clip(fmt.Sprintf("%d more lines not shown (the answer would not fit in a DNS message); ask _status.<location>._loc.%s for one location; views by answer: %s",
			len(rest), service, strings.Join(tally, ", "))))
	}
	return lines
}

// dormantLines lists the service's dynamic pins that do not apply to the
// config in force (see zones.Snapshot.DormantPins), sorted by name.
func dormantLines(snap *zones.Snapshot, service string) []string {
	var out []string
	for k, p := range snap.DormantPins() {
		if k.Service == service {
			out = append(out, clip(fmt.Sprintf("dormant pin %s %s: %s; delete it with an UPDATE at that name", k.Name(), pinStatus(p.Pin), p.Why)))
		}
	}
	slices.Sort(out)
	return out
}

func nodeStatus(name string, st health.State, active bool) string {
	var b strings.Builder
	b.WriteString(name)
	switch {
	case !st.Checked:
		b.WriteString(" unknown")
	case st.Up:
		b.WriteString(" up")
	default:
		b.WriteString(" down")
	}
	if active {
		b.WriteString(" active")
	}
	if st.Checked {
		fmt.Fprintf(&b, " rtt=%.2fms since=%s", float64(st.Last.Latency)/float64(time.Millisecond), st.Since.UTC().Format(time.RFC3339))
		if st.Last.Err != "" {
			fmt.Fprintf(&b, " err=%q", st.Last.Err)
		}
	}
	return clip(b.String())
}

func pinStatus(p zones.Pin) string {
	s := p.Text()
	switch {
	case p.Static:
		s += " set-by=zone-file"
	default:
		s += fmt.Sprintf(" set-by=%s from=%s at=%s", p.Key, p.From, p.At.UTC().Format(time.RFC3339))
	}
	return s
}

// clip keeps a TXT string within its 255-octet limit.
func clip(s string) string {
	if len(s) > 255 {
		return s[:252] + "..."
	}
	return s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// clusterVotes is a node's agreed state in cluster mode: " cluster=up 3/3"
// beside this instance's own view of it.
func clusterVotes(a *zones.Agreed, node string) string {
	if a == nil {
		return ""
	}
	h, ok := a.Health[node]
	if !ok {
		return " cluster=unknown"
	}
	state := "down"
	if h.Up {
		state = "up"
	}
	return " cluster=" + state + " " + h.Votes
}

// generation names the etcd revision that wrote a view's decision.
func generation(a *zones.Agreed, d zones.Decision, service, location string) string {
	if a == nil || d.Local {
		return ""
	}
	k := zones.PinKey{Service: service}
	if location != "default" {
		k.Location = location
	}
	if d, ok := a.Decisions[k]; ok {
		return fmt.Sprintf(" (generation %d by %s)", d.Generation, d.By)
	}
	return ""
}
