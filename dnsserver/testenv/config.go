package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Config is a failoverdns config, written as TOML by Text in the order a
// person would: [server], [[tsig]], [[zone]], [[node]], [[location]],
// [[service]], then Extra. Strings are quoted with strconv.Quote, which TOML
// reads back the same for everything a test writes.
type Config struct {
	// Comment is a TOML comment on the first line: a change that changes
	// nothing.
	Comment string
	// Listen is [server] listen; nil: ["127.0.0.1:0"].
	Listen []string
	// HTTP is [server] http; "" writes http = "" (no HTTP server).
	HTTP string
	// StateDir is [server] state_dir; "": <folder>/state.
	StateDir string
	// Server is written as lines inside [server] after the keys above
	// ("chaos = true\n"); each line ends in a newline.
	Server string
	TSIG   []TSIG
	Zones  []Zone
	Nodes  []Node
	// Locations are the [[location]] tables.
	Locations []Location
	Services  []Service
	// Extra is raw TOML written at the end ("[cluster]\n...").
	Extra string
}

// TSIG is a [[tsig]] key, hmac-sha256 unless Algorithm says otherwise.
type TSIG struct{ Name, Algorithm, Secret string }

// Zone is a [[zone]]. With Text, Write writes Text to File (relative to the
// config's folder); else File is a path to an existing zone file.
type Zone struct{ Origin, File, Text string }

// Node is a [[node]]. Check is the body of [node.check], lines ending in a
// newline ("type = \"none\"\n").
type Node struct {
	Name, Address, Address6, Replication string
	Check                                string
}

// Location is a [[location]].
type Location struct {
	Name    string
	Subnets []string
}

// Service is a [[service]]; zero fields are not written (the config's
// defaults apply).
type Service struct {
	Name          string
	TTL           int
	Policy        string
	Nodes         []string
	Failback      string
	FailbackAfter string
	WhenAllDown   string
	// Orders are [service.locations] lines, in order.
	Orders []Order
}

// Order is one location's own order of a service.
type Order struct {
	Location string
	Nodes    []string
}

// Quoted writes ss as the items of a TOML array: "a", "b".
func Quoted(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// Text is c as TOML, with state_dir defaulting to dir/state.
func (c Config) Text(dir string) string {
	var b strings.Builder
	if c.Comment != "" {
		fmt.Fprintf(&b, "# %s\n", c.Comment)
	}
	listen := c.Listen
	if listen == nil {
		listen = []string{"127.0.0.1:0"}
	}
	state := c.StateDir
	if state == "" {
		state = filepath.Join(dir, "state")
	}
	fmt.Fprintf(&b, "[server]\nlisten = [%s]\nhttp = %q\nstate_dir = %q\n%s", Quoted(listen), c.HTTP, state, c.Server)
	for _, k := range c.TSIG {
		alg := k.Algorithm
		if alg == "" {
			alg = "hmac-sha256"
		}
		fmt.Fprintf(&b, "\n[[tsig]]\nname = %q\nalgorithm = %q\nsecret = %q\n", k.Name, alg, k.Secret)
	}
	for _, z := range c.Zones {
		fmt.Fprintf(&b, "\n[[zone]]\norigin = %q\nfile = %q\n", z.Origin, z.File)
	}
	for _, n := range c.Nodes {
		fmt.Fprintf(&b, "\n[[node]]\nname = %q\naddress = %q\n", n.Name, n.Address)
		if n.Address6 != "" {
			fmt.Fprintf(&b, "address6 = %q\n", n.Address6)
		}
		if n.Replication != "" {
			fmt.Fprintf(&b, "replication = %q\n", n.Replication)
		}
		fmt.Fprintf(&b, "[node.check]\n%s", n.Check)
	}
	for _, l := range c.Locations {
		fmt.Fprintf(&b, "\n[[location]]\nname = %q\nsubnets = [%s]\n", l.Name, Quoted(l.Subnets))
	}
	for _, s := range c.Services {
		fmt.Fprintf(&b, "\n[[service]]\nname = %q\n", s.Name)
		if s.TTL != 0 {
			fmt.Fprintf(&b, "ttl = %d\n", s.TTL)
		}
		if s.Policy != "" {
			fmt.Fprintf(&b, "policy = %q\n", s.Policy)
		}
		fmt.Fprintf(&b, "nodes = [%s]\n", Quoted(s.Nodes))
		for _, kv := range [][2]string{{"failback", s.Failback}, {"failback_after", s.FailbackAfter}, {"when_all_down", s.WhenAllDown}} {
			if kv[1] != "" {
				fmt.Fprintf(&b, "%s = %q\n", kv[0], kv[1])
			}
		}
		if len(s.Orders) > 0 {
			b.WriteString("[service.locations]\n")
			for _, o := range s.Orders {
				fmt.Fprintf(&b, "%s = [%s]\n", o.Location, Quoted(o.Nodes))
			}
		}
	}
	if c.Extra != "" {
		b.WriteString("\n" + c.Extra)
	}
	return b.String()
}

// Write writes c into dir as failoverdns.toml, and every zone with Text,
// each file replaced atomically (a reload never reads half a file). It
// returns the config's path.
func (c Config) Write(tb testing.TB, dir string) string {
	tb.Helper()
	for _, z := range c.Zones {
		if z.Text != "" {
			WriteFile(tb, filepath.Join(dir, z.File), z.Text)
		}
	}
	path := filepath.Join(dir, "failoverdns.toml")
	WriteFile(tb, path, c.Text(dir))
	return path
}

// WriteFile replaces path with body atomically (a temporary file renamed
// over it).
func WriteFile(tb testing.TB, path, body string) {
	tb.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatal(err)
	}
}

// Testdata is the absolute path of a file under the repository's testdata
// folder, from a package folder depth levels below the root (dnsserver: 1,
// cmd/failoverdns: 2).
func Testdata(tb testing.TB, depth int, elem ...string) string {
	tb.Helper()
	parts := []string{}
	for range depth {
		parts = append(parts, "..")
	}
	p, err := filepath.Abs(filepath.Join(append(append(parts, "testdata"), elem...)...))
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// ConformanceBigTXT is the big.conformance.test. TXT RRset of
// testdata/conformance.test.zone, written out: 28 records of 100 bytes,
// more than a UDP reply holds.
func ConformanceBigTXT() []string {
	var out []string
	for i := range 28 {
		s := fmt.Sprintf("big-txt-record-%02d-", i)
		s += strings.Repeat("x", 100-len(s))
		out = append(out, fmt.Sprintf("big.conformance.test. 3600 IN TXT %q", s))
	}
	return out
}

// ZoneHead is the first five lines of a test zone file for origin: $ORIGIN,
// $TTL 300, the SOA (serial, refresh 3600, retry 600, expire 1209600,
// negative TTL 60), NS ns1.<origin> and ns1's A record nsIP.
func ZoneHead(origin string, serial uint32, nsIP string) string {
	return fmt.Sprintf("$ORIGIN %[1]s\n$TTL 300\n@ IN SOA ns1.%[1]s hostmaster.%[1]s %[2]d 3600 600 1209600 60\n  IN NS ns1.%[1]s\nns1 IN A %[3]s\n",
		origin, serial, nsIP)
}
