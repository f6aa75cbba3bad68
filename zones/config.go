package zones

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	sockaddrtemplate "github.com/hashicorp/go-sockaddr/template"
	toml "github.com/pelletier/go-toml/v2"
)

// Config is the TOML file as written by the operator, after defaults. Field
// names follow the contract in README "Configuration"; they are never renamed.
type Config struct {
	Server    ServerConfig     `toml:"server"`
	TSIG      []TSIGKey        `toml:"tsig"`
	Zones     []ZoneConfig     `toml:"zone"`
	Nodes     []NodeConfig     `toml:"node"`
	Locations []LocationConfig `toml:"location"`
	Services  []ServiceConfig  `toml:"service"`
	Cluster   *ClusterConfig   `toml:"cluster"`

	// File is the absolute path the config was read from; relative paths in
	// it (zone files) are resolved against its folder.
	File string `toml:"-"`
	// src is kept until validation ends so lines can be indexed lazily:
	// only an error needs a line number, and a big config's index is
	// a fifth of its load time.
	src   []byte
	lines *tomlLines
	// srcHash identifies the bytes the config was decoded from, so a
	// reload of an unchanged file can skip decoding (LoadReusing).
	srcHash [sha256.Size]byte
	// warnings are valid but risky values, each with file:line, for
	// `check` and the start log.
	warnings ErrorList
}

// ServerConfig is the [server] table.
type ServerConfig struct {
	Listen    []string `toml:"listen"`
	HTTP      *string  `toml:"http"`
	StateDir  string   `toml:"state_dir"`
	AdminNets []string `toml:"admin_nets"`
	// HTTPNets may GET /status and /metrics; absent, admin_nets may.
	// /healthz and /readyz answer everyone (load balancers, orchestrators).
	HTTPNets []string `toml:"http_nets"`

	// UDPSize is the EDNS payload size we advertise and the most we send
	// over UDP. 1232 is the DNS Flag Day 2020 figure: no IP fragmentation on
	// any common path.
	UDPSize int `toml:"udp_size"`
	// TCPIdleTimeout closes TCP connections that sit idle, so a client that
	// opens many and says nothing cannot hold sockets for ever.
	TCPIdleTimeout Duration `toml:"tcp_idle_timeout"`
	// TCPMaxConns bounds open TCP connections per listen address; when
	// full, the oldest is closed to make room.
	TCPMaxConns int `toml:"tcp_max_conns"`
	// Chaos answers CHAOS TXT version.bind/id.server. Off by default: it tells
	// an attacker which software and version to aim at.
	Chaos    bool   `toml:"chaos"`
	Identity string `toml:"identity"`
	// ECS uses the EDNS Client Subnet option (RFC 7871) to place clients
	// behind a resolver; off, the packet's source address decides and no
	// ECS option is echoed.
	ECS *bool `toml:"ecs"`
	// QueryLog is the fraction of queries logged (0 = off, 1 = all); a
	// sample, so logging can stay on under load.
	QueryLog float64 `toml:"query_log"`
	// RRL, when present, rate-limits UDP responses per client prefix.
	RRL *RRLConfig `toml:"rrl"`
	// RequirePinReason refuses a dynamic pin without reason="…": the
	// next on-call engineer must be able to tell why it is there.
	RequirePinReason bool `toml:"require_pin_reason"`
	// Anchors are host:port targets probed like nodes; when they fail
	// together with the nodes, the prober is cut off and holds node states.
	Anchors []string `toml:"anchors"`
	anchors []netip.AddrPort
	// ProbeSource is the local address health checks leave from ("" = the
	// kernel's choice). Several instances on one host are told apart by
	// it, and a multi-homed host probes from the interface it names.
	ProbeSource string `toml:"probe_source"`

	adminPrefixes []netip.Prefix
	httpPrefixes  []netip.Prefix
	probeSource   netip.Addr
}

// RRLConfig is [server.rrl]: response rate limiting for UDP, per client
// prefix, so spoofed queries cannot turn the server into an amplifier.
// admin_nets are exempt.
type RRLConfig struct {
	ResponsesPerSecond int `toml:"responses_per_second"`
	// Slip: every slip-th response over the limit is sent truncated (TC),
	// so a real client retries over TCP; 0 drops them all.
	Slip       *int `toml:"slip"`
	IPv4Prefix int  `toml:"ipv4_prefix"`
	IPv6Prefix int  `toml:"ipv6_prefix"`
}

// ZoneConfig is one [[zone]] table.
type ZoneConfig struct {
	Origin string `toml:"origin"`
	File   string `toml:"file"`
}

// Duration is a time.Duration written as "1s", "800ms" in TOML.
type Duration struct{ time.Duration }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return durationError{string(b), fmt.Sprintf("%q is not a duration; write it like \"800ms\", \"1s\" or \"2m\"", string(b))}
	}
	if v < 0 {
		return durationError{string(b), fmt.Sprintf("%q is negative", string(b))}
	}
	d.Duration = v
	return nil
}

// durationError is a value Duration refused, as written.
type durationError struct{ text, msg string }

func (e durationError) Error() string { return e.msg }

func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Defaults used when a key is absent.
const (
	DefaultUDPSize        = 1232
	DefaultHTTP           = "127.0.0.1:8053"
	DefaultStateDir       = "/var/lib/failoverdns"
	DefaultTCPIdleTimeout = 10 * time.Second
	DefaultTCPMaxConns    = 1024
)

// HTTPAddr returns the HTTP listen address, "" when disabled.
func (s *ServerConfig) HTTPAddr() string {
	if s.HTTP == nil {
		return DefaultHTTP
	}
	return *s.HTTP
}

// QueryLogEvery returns N to log one query in N, or 0 when the log is off.
func (s *ServerConfig) QueryLogEvery() uint64 {
	if s.QueryLog <= 0 {
		return 0
	}
	return uint64(math.Round(1 / s.QueryLog))
}

// UseECS reports whether EDNS Client Subnet decides the client's location.
func (s *ServerConfig) UseECS() bool { return s.ECS == nil || *s.ECS }

// IsAdmin reports whether addr may read and write admin records.
func (s *ServerConfig) IsAdmin(addr netip.Addr) bool { return prefixesContain(s.adminPrefixes, addr) }

// parseNets parses the CIDR prefixes of server.<key>, each problem an error
// at its line.
func (c *Config) parseNets(file string, errs *ErrorList, key string, nets []string) []netip.Prefix {
	var out []netip.Prefix
	for _, n := range nets {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			errs.add(file, c.line("server."+key), "server.%s: %q is not a CIDR prefix; write it like \"10.0.0.0/8\" or \"2001:db8::/32\"", key, n)
			continue
		}
		if p.Masked() != p {
			errs.add(file, c.line("server."+key), "server.%s: %q has host bits set; did you mean %q?", key, n, p.Masked())
			continue
		}
		out = append(out, p)
	}
	return out
}

// MayReadHTTP reports whether addr may GET /status and /metrics:
// server.http_nets, by default admin_nets.
func (s *ServerConfig) MayReadHTTP(addr netip.Addr) bool {
	return prefixesContain(s.httpPrefixes, addr)
}

func prefixesContain(ps []netip.Prefix, addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range ps {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// ParseConfig decodes and validates the config at path (without loading the
// zone files: see Load). Every problem is reported, each with file:line.
func ParseConfig(path string) (*Config, error) { return parseConfig(context.Background(), path) }

func parseConfig(ctx context.Context, path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, &Error{File: path, Msg: err.Error()}
	}
	src, err := readFile(ctx, abs)
	if err != nil {
		return nil, &Error{File: path, Msg: fmt.Sprintf("cannot read config: %v", unwrapPathErr(err))}
	}
	return parseConfigBytes(path, abs, src)
}

func parseConfigBytes(display, abs string, src []byte) (*Config, error) {
	// The fast decode first: node addresses as plain text, no unmarshaler
	// interface (asking every value of a 100,000-service config whether
	// it implements one is a quarter of go-toml's time). Any problem at
	// all and the config is decoded again the exact way, whose messages
	// tell a list or a number written as an address from a bad string.
	// A valid config decodes the same either way: a value that is not a
	// string never parses as an IP address, and a list is a type error.
	if cfg, err := decodeConfig(display, abs, src, false); err == nil {
		return cfg, nil
	}
	return decodeConfig(display, abs, src, true)
}

func decodeConfig(display, abs string, src []byte, exact bool) (*Config, error) {
	cfg := &Config{File: abs, src: src, srcHash: sha256.Sum256(src)}
	// go-toml/v2 rather than BurntSushi/toml: it decodes a 100,000-service
	// config several times faster (issue 16: start at 100,000 services),
	// and reports unknown keys with their path as BurntSushi's Undecoded
	// did; the lines of those, as of every validation message, still come
	// from tomllines.go.
	// Room for every [[service]] and [[node]] up front: the decoder
	// appends one element at a time, and a 100,000-element slice grown
	// by doubling is copied some twenty times.
	var err error
	cut := false
	if !exact {
		cut, err = decodeSplit(src, cfg)
	}
	if !cut {
		*cfg = Config{File: abs, src: src, srcHash: cfg.srcHash}
		cfg.Services = make([]ServiceConfig, 0, bytes.Count(src, serviceHeader))
		cfg.Nodes = make([]NodeConfig, 0, bytes.Count(src, []byte("[[node]]")))
		dec := toml.NewDecoder(bytes.NewReader(src)).DisallowUnknownFields()
		if exact {
			dec.EnableUnmarshalerInterface()
		}
		err = dec.Decode(cfg)
	}
	if len(cfg.Services) == 0 {
		cfg.Services = nil // as decoded without the room
	}
	if len(cfg.Nodes) == 0 {
		cfg.Nodes = nil
	}
	var strict *toml.StrictMissingError
	if err != nil && !errors.As(err, &strict) {
		return nil, decodeError(display, src, err)
	}
	var errs ErrorList
	if strict != nil {
		var reported []string
		for i := range strict.Errors {
			k := tomlKey(strict.Errors[i].Key())
			if slices.ContainsFunc(reported, func(p string) bool { return strings.HasPrefix(k, p+".") }) || slices.Contains(reported, k) {
				continue // inside an unknown table already reported
			}
			reported = append(reported, k)
			errs.add(display, cfg.index().looseLine(k),
				"unknown key %q: it is not part of the config (check its spelling and the table it is in)", k)
		}
	}
	cfg.validate(display, &errs)
	return cfg, errs.err()
}

// decodeError is a TOML syntax or type error at its line.
func decodeError(display string, src []byte, err error) error {
	var de *toml.DecodeError
	if !errors.As(err, &de) {
		var dur durationError
		if errors.As(err, &dur) {
			// A number (or a boolean) where a duration belongs: the
			// decoder hands the text to UnmarshalText without a
			// position, so find the key it was written at.
			return &Error{File: display, Line: durationLine(src, dur.text), Msg: dur.msg}
		}
		return &Error{File: display, Msg: err.Error()}
	}
	line, _ := de.Position()
	msg := strings.TrimPrefix(de.Error(), "toml: ")
	if m := typeMismatch.FindStringSubmatch(msg); m != nil {
		msg = fmt.Sprintf("incompatible types: TOML value has type %s; destination has type %s", tomlTypeName(m[1]), goTypeName(m[2]))
	}
	// Name the key, unless the message is UnmarshalText's own (a
	// duration's, which quotes the value and is worded as it always was).
	if k := de.Key(); len(k) > 0 && !strings.HasPrefix(msg, `"`) && !strings.Contains(msg, tomlKey(k)) {
		msg = tomlKey(k) + ": " + msg
	}
	return &Error{File: display, Line: line, Msg: msg}
}

// typeMismatch matches go-toml's type error, which names Go types:
// "cannot decode TOML string into struct field zones.ServiceConfig.TTL of
// type int"; the message names TOML's and the config's kinds instead, as
// BurntSushi/toml's did.
var typeMismatch = regexp.MustCompile(`^cannot decode TOML (.+?) into (?:struct field \S+ of type )?(\S+)$`)

func tomlTypeName(t string) string {
	switch t {
	case "integer":
		return "int64"
	case "float":
		return "float64"
	case "boolean":
		return "bool"
	case "string":
		return "string"
	case "array":
		return "array"
	case "table", "inline table":
		return "table"
	}
	return "time.Time" // the date and time kinds
}

func goTypeName(t string) string {
	t = strings.TrimLeft(t, "*")
	switch {
	case strings.HasPrefix(t, "[]"):
		return "slice"
	case strings.HasPrefix(t, "map["):
		return "table"
	case t == "int" || t == "int64":
		return "integer"
	case t == "float64":
		return "float"
	case t == "bool":
		return "boolean"
	case t == "string" || t == "health.CheckType" || t == "zones.Failback" || t == "zones.AllDown":
		return "string"
	}
	return "table"
}

// durationLine is the line of the first key = value whose value, as
// written, is text (unquoted), or 0.
func durationLine(src []byte, text string) int {
	for n, l := range bytes.Split(src, []byte("\n")) {
		_, v, ok := bytes.Cut(l, []byte("="))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(stripCommentBytes(v))
		if string(v) == text {
			return n + 1
		}
	}
	return 0
}

func stripCommentBytes(b []byte) []byte {
	if i := bytes.IndexByte(b, '#'); i >= 0 {
		return b[:i]
	}
	return b
}

// tomlKey writes a key path as the config has it: parts joined by dots,
// quoted where a bare key could not be (as BurntSushi/toml's Key.String,
// which earlier messages used).
func tomlKey(k toml.Key) string {
	var b strings.Builder
	for i, p := range k {
		if i > 0 {
			b.WriteByte('.')
		}
		if bareKey(p) {
			b.WriteString(p)
		} else {
			b.WriteString(strconv.Quote(p))
		}
	}
	return b.String()
}

func bareKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func (c *Config) line(path string) int { return c.index().line(path) }

func (c *Config) index() *tomlLines {
	if c.lines == nil {
		tl := scanTOMLLines(c.src)
		c.lines = &tl
	}
	return c.lines
}

func (c *Config) validate(file string, errs *ErrorList) {
	s := &c.Server
	if len(s.Listen) == 0 {
		errs.add(file, c.line("server"), `server.listen is missing: add listen = ["0.0.0.0:53", "[::]:53"] (or the addresses to serve on)`)
	}
	var bound []string // resolved, in order
	for i, l := range s.Listen {
		addrs, err := ResolveListen(l)
		if err != nil {
			errs.add(file, c.line("server.listen"), "server.listen[%d]: %v", i, err)
			continue
		}
		for _, a := range addrs {
			for _, b := range bound {
				if msg := listenCollision(b, a); msg != "" {
					errs.add(file, c.line("server.listen"), "server.listen: %s", msg)
				}
			}
			bound = append(bound, a)
		}
	}
	if s.HTTP != nil && *s.HTTP != "" {
		if _, _, err := net.SplitHostPort(*s.HTTP); err != nil {
			errs.add(file, c.line("server.http"), "server.http %q: want host:port, or \"\" to disable", *s.HTTP)
		}
	}
	if s.StateDir == "" {
		s.StateDir = DefaultStateDir
	} else if !filepath.IsAbs(s.StateDir) {
		s.StateDir = filepath.Join(filepath.Dir(c.File), s.StateDir)
	}
	if s.AdminNets == nil {
		s.AdminNets = []string{"127.0.0.0/8", "::1/128"}
	}
	s.adminPrefixes = c.parseNets(file, errs, "admin_nets", s.AdminNets)
	for _, p := range s.adminPrefixes {
		if p.Bits() == 0 {
			c.warnings.add(file, c.line("server.admin_nets"), "server.admin_nets: %q is every %s address: anyone who reaches the server may read _pin and _status, POST /reload and (unless http_nets says otherwise) read /status and /metrics, and UPDATEs are held back by TSIG alone; list the operators' networks instead", p.String(), map[bool]string{true: "IPv4", false: "IPv6"}[p.Addr().Is4()])
		}
	}
	// /status and /metrics say which nodes exist and which are down, as
	// _status does: operators only, unless the config names the
	// monitoring networks.
	if s.HTTPNets == nil {
		s.httpPrefixes = s.adminPrefixes
	} else {
		s.httpPrefixes = c.parseNets(file, errs, "http_nets", s.HTTPNets)
	}
	switch {
	case s.UDPSize == 0:
		s.UDPSize = DefaultUDPSize
	case s.UDPSize < 512 || s.UDPSize > 4096:
		errs.add(file, c.line("server.udp_size"), "server.udp_size %d: must be between 512 and 4096 (1232 avoids IP fragmentation)", s.UDPSize)
	}
	if r := s.RRL; r != nil {
		if r.ResponsesPerSecond < 1 || r.ResponsesPerSecond > 65000 {
			errs.add(file, c.line("server.rrl.responses_per_second"), "server.rrl.responses_per_second %d: set 1 to 65000 responses per second per client prefix (or remove [server.rrl])", r.ResponsesPerSecond)
		}
		if r.Slip == nil {
			two := 2
			r.Slip = &two
		} else if *r.Slip < 0 || *r.Slip > 10 {
			errs.add(file, c.line("server.rrl.slip"), "server.rrl.slip %d: 0 (drop all) to 10", *r.Slip)
		}
		if r.IPv4Prefix == 0 {
			r.IPv4Prefix = 24
		}
		if r.IPv6Prefix == 0 {
			r.IPv6Prefix = 56
		}
		if r.IPv4Prefix < 8 || r.IPv4Prefix > 32 || r.IPv6Prefix < 16 || r.IPv6Prefix > 128 {
			errs.add(file, c.line("server.rrl"), "server.rrl: ipv4_prefix must be 8..32 and ipv6_prefix 16..128")
		}
	}
	if s.QueryLog < 0 || s.QueryLog > 1 {
		errs.add(file, c.line("server.query_log"), "server.query_log %v: the fraction of queries to log, from 0 (off) to 1 (all)", s.QueryLog)
	}
	switch {
	case s.TCPMaxConns == 0:
		s.TCPMaxConns = DefaultTCPMaxConns
	case s.TCPMaxConns < 1:
		errs.add(file, c.line("server.tcp_max_conns"), "server.tcp_max_conns %d: must be at least 1", s.TCPMaxConns)
	}
	if s.TCPIdleTimeout.Duration == 0 {
		s.TCPIdleTimeout.Duration = DefaultTCPIdleTimeout
	}
	if s.ProbeSource != "" {
		a, err := netip.ParseAddr(s.ProbeSource)
		switch {
		case err != nil || a.Zone() != "":
			errs.add(file, c.line("server.probe_source"), "server.probe_source %q is not an IP address: set the local address health checks are sent from, like probe_source = \"10.0.0.5\", or remove it to let the kernel choose", s.ProbeSource)
		case a.IsUnspecified() || a.IsMulticast():
			errs.add(file, c.line("server.probe_source"), "server.probe_source %s is not a unicast address: set one of this host's addresses, or remove probe_source to let the kernel choose", a)
		default:
			s.probeSource = a.Unmap()
		}
	}

	if len(c.Zones) == 0 {
		errs.add(file, 0, "no [[zone]]: add at least one with origin and file")
	}
	seen := map[string]int{}
	for i := range c.Zones {
		z := &c.Zones[i]
		at := elemPath("zone", i)
		if !c.uniqueName(file, errs, "zone", i, "origin", "example.com.", &z.Origin, seen) {
			continue
		}
		if z.File == "" {
			errs.add(file, c.line(at), "zone %q: file is missing (the RFC 1035 master file, relative to this config)", z.Origin)
		}
	}
	c.validateNodes(file, errs)
	c.validateProbeSource(file, errs)
	c.validateServices(file, errs)
	c.validateLocations(file, errs)
	c.validateTSIG(file, errs)
	c.validateCluster(file, errs)
	c.validateAnchors(file, errs)
}

// uniqueName checks the domain name in key of [[table]] number i: present,
// valid and not repeated; it is made canonical in place. false means the
// rest of that table cannot be checked.
func (c *Config) uniqueName(file string, errs *ErrorList, table string, i int, key, example string, name *string, seen map[string]int) bool {
	at := elemPath(table, i) // only for messages; a cheap concatenation
	if *name == "" {
		errs.add(file, c.line(at), "%s %d: %s is missing (e.g. %s = %q)", table, i+1, key, key, example)
		return false
	}
	if _, ok := dnsIsDomainName(*name); !ok {
		errs.add(file, c.line(at+"."+key), "%s %s %q is not a valid domain name", table, key, *name)
		return false
	}
	*name = canonical(*name)
	if prev, ok := seen[*name]; ok {
		errs.add(file, c.line(at+"."+key), "%s %q is defined twice (first as %s %d)", table, *name, table, prev+1)
	}
	seen[*name] = i
	return true
}

// elemPath is the path of [[table]] number i for tomlLines: "service[3]".
// Validation makes one per element of a 100,000-service config, so not
// with fmt.
func elemPath(table string, i int) string {
	return table + "[" + strconv.Itoa(i) + "]"
}

// relPath resolves a path in the config against the config's folder.
func (c *Config) relPath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(c.File), p)
}

// ZonePath resolves a zone's file against the config's folder.
func (c *Config) ZonePath(z ZoneConfig) string {
	return c.relPath(z.File)
}

// ResolveListen turns one listen entry into concrete host:port addresses. The
// host may be a go-sockaddr template ("{{ GetPrivateIP }}:53"), resolved
// once here, never per query.
func ResolveListen(s string) ([]string, error) {
	host, port, err := splitTemplateHostPort(s)
	if err != nil {
		return nil, err
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return nil, fmt.Errorf("%q: port %q is not a number from 0 to 65535", s, port)
	}
	if strings.Contains(host, "{{") {
		out, err := sockaddrtemplate.Parse(host)
		if err != nil {
			return nil, fmt.Errorf("%q: template: %v", s, err)
		}
		fields := strings.Fields(out)
		if len(fields) == 0 {
			return nil, fmt.Errorf("%q: the template resolved to no address on this machine", s)
		}
		var addrs []string
		for _, f := range fields {
			if _, err := netip.ParseAddr(f); err != nil {
				return nil, fmt.Errorf("%q: the template gave %q, not an IP address", s, f)
			}
			addrs = append(addrs, net.JoinHostPort(f, port))
		}
		return addrs, nil
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return nil, fmt.Errorf("%q: %q is not an IP address (use an address or a go-sockaddr template, not a host name)", s, host)
		}
	}
	return []string{net.JoinHostPort(host, port)}, nil
}

// ListenFamily says which address family a resolved listen address serves,
// as the suffix of a Go network name ("udp"+f, "tcp"+f): an IPv4 address
// (0.0.0.0 too) serves IPv4 only ("4"); an IPv6 address ([::] too) serves
// IPv6 only ("6": IPV6_V6ONLY is set); an empty host (":53") is one IPv6
// socket that takes IPv4 as well (""). So ["0.0.0.0:53", "[::]:53"] binds
// two sockets that do not collide, as BIND and Knot do; Go's default would
// make a TCP listener on 0.0.0.0 or [::] dual-stack and the second bind
// fail.
func ListenFamily(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return ""
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Unmap().Is4() {
		return "4"
	}
	return "6"
}

// familyName describes ListenFamily's answer for messages.
func familyName(addr string) string {
	switch ListenFamily(addr) {
	case "4":
		return "IPv4"
	case "6":
		return "IPv6 only"
	}
	return "IPv4 and IPv6"
}

// listenCollision says why two resolved listen addresses would take the same
// socket (the second bind would fail with "address already in use"), or "".
func listenCollision(a, b string) string {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	if pa != pb || pa == "0" {
		return ""
	}
	if a == b {
		return fmt.Sprintf("%q is listed twice: remove one", a)
	}
	if ha == "" || hb == "" {
		dual, other := a, b
		if hb == "" {
			dual, other = b, a
		}
		return fmt.Sprintf("%q serves IPv4 and IPv6 on port %s, so %q cannot bind too: write [\"0.0.0.0:%s\", \"[::]:%s\"] for both families, or %q alone", dual, pa, other, pa, pa, dual)
	}
	ia, _ := netip.ParseAddr(ha)
	ib, _ := netip.ParseAddr(hb)
	ia, ib = ia.Unmap(), ib.Unmap()
	if ia.Is4() != ib.Is4() || !(ia == ib || ia.IsUnspecified() || ib.IsUnspecified()) {
		return ""
	}
	wild, other := a, b
	if ib.IsUnspecified() {
		wild, other = b, a
	}
	fam := "IPv4"
	if !ia.Is4() {
		fam = "IPv6"
	}
	return fmt.Sprintf("%q already takes every %s address on port %s, so %q cannot bind too: remove one", wild, fam, pa, other)
}

func splitTemplateHostPort(s string) (host, port string, err error) {
	if i := strings.LastIndex(s, "}}"); i >= 0 {
		rest := s[i+2:]
		if !strings.HasPrefix(rest, ":") {
			return "", "", fmt.Errorf("%q: want \"{{ template }}:port\"", s)
		}
		return s[:i+2], rest[1:], nil
	}
	host, port, err = net.SplitHostPort(s)
	if err != nil {
		return "", "", fmt.Errorf("%q: want host:port, e.g. \"127.0.0.1:53\" or \"[::1]:53\"", s)
	}
	return host, port, nil
}
