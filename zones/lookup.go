package zones

import (
	"github.com/miekg/dns"
)

// Kind is the outcome of a lookup; the server maps it to an RCODE and flags.
type Kind int

const (
	Success    Kind = iota // data in Answer
	NoData                 // the name exists, not this type: NOERROR, SOA in Ns
	NXDomain               // the name does not exist: SOA in Ns
	Delegation             // below a zone cut: referral, NS in Ns, glue in Extra
	ServFail               // a service whose nodes are all down, when_all_down = servfail
)

func (k Kind) String() string {
	switch k {
	case Success:
		return "success"
	case NoData:
		return "nodata"
	case NXDomain:
		return "nxdomain"
	case Delegation:
		return "delegation"
	case ServFail:
		return "servfail"
	}
	return "unknown"
}

// Result is an answer ready to copy into a reply. Its slices are fresh, but
// the records in them are shared with the zone: never modify a record.
type Result struct {
	Kind   Kind
	Answer []dns.RR
	Ns     []dns.RR
	Extra  []dns.RR
	// Authoritative is false only for a pure referral.
	Authoritative bool
	// Service is the canonical name of the service whose dynamic answer is
	// in Answer (the query name or a CNAME target), "" for static data.
	Service string
}

// maxChase bounds CNAME chains inside a zone; longer chains are answered with
// what was found so far, which is what a loop would give too.
const maxChase = 8

// Lookup answers qname (as the client wrote it) and qtype from this zone.
// Overlay, when not nil, supplies the A/AAAA RRsets of dynamic names
// (services), which win over the zone file.
func (z *Zone) Lookup(qname string, qtype uint16, overlay Overlay) Result {
	var res Result
	res.Authoritative = true
	name := canonical(qname)
	var visited [maxChase + 1]string
	visited[0] = name
	for hops := 1; ; hops++ {
		next := z.lookupOne(&res, name, qname, qtype, overlay)
		if next == "" || !dns.IsSubDomain(z.Origin, next) || hops > maxChase {
			// Done, or the target is elsewhere: the resolver follows it.
			return res
		}
		for _, v := range visited[:hops] {
			if v == next {
				return res // a loop: each CNAME once, then stop
			}
		}
		visited[hops] = next
		name, qname = next, next
	}
}

// Overlay gives dynamic RRsets (service answers) for a canonical name.
type Overlay interface {
	// RRset returns the records for name and qtype (A or AAAA), whether
	// name is a dynamic name at all, and whether it must be answered
	// SERVFAIL.
	RRset(name string, qtype uint16) (rrs []dns.RR, isDynamic, servfail bool)
}

// lookupOne resolves one name. It returns the CNAME target to chase next, or
// "" when the answer is complete.
func (z *Zone) lookupOne(res *Result, name, qname string, qtype uint16, overlay Overlay) string {
	if cut := z.findCut(name, qtype); cut != nil {
		res.Kind = Delegation
		ns := cut.RRs(dns.TypeNS)
		res.Ns = append(res.Ns, ns...)
		res.Extra = append(res.Extra, z.glue(ns)...)
		// A referral after a CNAME keeps AA: the CNAME itself is ours.
		res.Authoritative = len(res.Answer) > 0
		return ""
	}

	n := z.nodes[name]
	synth := false
	if n == nil {
		// Dynamic names always have a node (the snapshot adds one), so a
		// wildcard can never shadow a service.
		n = z.wildcard(name)
		if n == nil {
			res.Kind = NXDomain
			res.Ns = append(res.Ns, z.NegSOA)
			return ""
		}
		synth = true
	}

	if overlay != nil && (qtype == dns.TypeA || qtype == dns.TypeAAAA || qtype == dns.TypeANY) {
		t := qtype
		if t == dns.TypeANY {
			// One RRset for ANY (RFC 8482): the address, A if there is one.
			t = dns.TypeA
			if rrs, _, _ := overlay.RRset(name, t); len(rrs) == 0 {
				t = dns.TypeAAAA
			}
		}
		if rrs, dyn, fail := overlay.RRset(name, t); dyn {
			res.Service = name
			if fail {
				res.Kind = ServFail
				return ""
			}
			if len(rrs) > 0 {
				res.Kind = Success
				res.Answer = append(res.Answer, rrs...)
				return ""
			}
			if qtype != dns.TypeANY {
				// Fall through to the zone's other data only for ANY; a
				// dynamic name without an address of this type is NODATA.
				res.Kind = NoData
				res.Ns = append(res.Ns, z.NegSOA)
				return ""
			}
		}
	}

	var rrs []dns.RR
	switch {
	case qtype == dns.TypeANY:
		// RFC 8482: one RRset, never the whole node. The lowest type is a
		// stable, useful choice (A before anything else).
		if len(n.sets) > 0 {
			rrs = n.sets[0].records()
		}
	default:
		rrs = n.RRs(qtype)
	}
	if len(rrs) > 0 {
		res.Kind = Success
		res.Answer = appendOwned(res.Answer, rrs, qname, synth)
		return ""
	}
	if cn := n.RRs(dns.TypeCNAME); len(cn) > 0 && qtype != dns.TypeCNAME {
		res.Answer = appendOwned(res.Answer, cn, qname, synth)
		res.Kind = Success
		return canonical(cn[0].(*dns.CNAME).Target)
	}
	if len(res.Answer) > 0 {
		// A chain that ends in a name without this type: the chain is the
		// answer, with the SOA to say the end has no data (RFC 2308 2.2).
		res.Kind = Success
	} else {
		res.Kind = NoData
	}
	res.Ns = append(res.Ns, z.NegSOA)
	return ""
}

// findCut returns the delegation that covers name, if any: the zone cut
// closest to the apex wins, since everything below it belongs to the child.
// DS at the cut itself is the parent's data and is answered here.
func (z *Zone) findCut(name string, qtype uint16) *Node {
	var cut *Node
	for p := name; len(p) > len(z.Origin); {
		if n := z.nodes[p]; n != nil && n.Cut && !(p == name && qtype == dns.TypeDS) {
			cut = n
		}
		i, end := dns.NextLabel(p, 0)
		if end {
			break
		}
		p = p[i:]
	}
	return cut
}

// wildcard finds the source of wildcard synthesis for a name that does not
// exist (RFC 4592): "*." plus the closest existing ancestor.
func (z *Zone) wildcard(name string) *Node {
	for p := name; len(p) > len(z.Origin); {
		i, end := dns.NextLabel(p, 0)
		if end {
			return nil
		}
		p = p[i:]
		if _, ok := z.nodes[p]; ok || p == z.Origin {
			return z.nodes["*."+p]
		}
	}
	return nil
}

func (z *Zone) glue(ns []dns.RR) []dns.RR {
	var out []dns.RR
	for _, rr := range ns {
		target := canonical(rr.(*dns.NS).Ns)
		if !dns.IsSubDomain(z.Origin, target) {
			continue
		}
		if t := z.nodes[target]; t != nil {
			out = append(out, t.RRs(dns.TypeA)...)
			out = append(out, t.RRs(dns.TypeAAAA)...)
		}
	}
	return out
}

// appendOwned appends rrs, renamed to qname when they come from a wildcard.
// rrs are fresh values unpacked for this query, so renaming them in place
// changes nothing shared.
func appendOwned(dst, rrs []dns.RR, qname string, synth bool) []dns.RR {
	if synth {
		for _, rr := range rrs {
			rr.Header().Name = qname
		}
	}
	return append(dst, rrs...)
}

// RRset returns the zone file's records for a canonical name and type.
func (z *Zone) RRset(name string, t uint16) []dns.RR {
	if n := z.nodes[name]; n != nil {
		return n.RRs(t)
	}
	return nil
}

// HasData reports whether a canonical name owns any record in the zone file
// (an empty non-terminal does not).
func (z *Zone) HasData(name string) bool {
	n := z.nodes[name]
	return n != nil && len(n.sets) > 0
}

// NodeOf is z.Nodes()[name] for the fast path, without making a string.
func (z *Zone) NodeOf(name []byte) *Node { return z.nodes[string(name)] }

// Nodes returns every owner name of the zone (empty non-terminals included)
// with its data. The map and nodes are shared and must not be modified.
func (z *Zone) Nodes() map[string]*Node { return z.nodes }

// InsideCut reports whether a canonical name is at or below a delegation.
func (z *Zone) InsideCut(name string) bool { return z.insideCut(name) }
