package zones

import (
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"
)

// ClusterConfig is the [cluster] table (README "Running several
// nameservers"): with it, several instances decide through one etcd
// cluster and give one answer; without it, one instance decides alone.
type ClusterConfig struct {
	Name     string   `toml:"name"`
	Instance string   `toml:"instance"`
	Etcd     []string `toml:"etcd"`
	CAFile   string   `toml:"ca_file"`
	CertFile string   `toml:"cert_file"`
	KeyFile  string   `toml:"key_file"`
	// SessionTTL is the lease of this instance's membership, observations
	// and leadership: a dead instance stops counting after it.
	SessionTTL Duration `toml:"session_ttl"`
	// LocalFailoverAfter is how long a cut-off instance's own prober must
	// see the agreed active node down before it decides alone; nil means
	// the default, 0 never.
	LocalFailoverAfter *Duration `toml:"local_failover_after"`
	// Prefix is where the cluster's keys live; default
	// /failoverdns/<name>/v1/.
	Prefix string `toml:"prefix"`
	// Source is the local address etcd connections are made from, so a
	// firewall rule (or a fault test) can tell the instances apart.
	Source string `toml:"source"`
	// RequestTimeout bounds every etcd call, so a stalled etcd never
	// stalls an UPDATE answer or the leader.
	RequestTimeout Duration `toml:"request_timeout"`

	source netip.Addr
}

// Defaults of [cluster].
const (
	DefaultSessionTTL         = 3 * time.Second
	DefaultLocalFailoverAfter = 30 * time.Second
	DefaultRequestTimeout     = 2 * time.Second
)

// LocalFailover returns local_failover_after; 0 means never.
func (c *ClusterConfig) LocalFailover() time.Duration {
	if c.LocalFailoverAfter == nil {
		return DefaultLocalFailoverAfter
	}
	return c.LocalFailoverAfter.Duration
}

// SourceAddr is the parsed source address, invalid when unset.
func (c *ClusterConfig) SourceAddr() netip.Addr { return c.source }

// TLS reports whether etcd is reached over TLS.
func (c *ClusterConfig) TLS() bool {
	return c.CAFile != "" || c.CertFile != "" || strings.HasPrefix(strings.ToLower(firstOr(c.Etcd, "")), "https://")
}

func firstOr(s []string, d string) string {
	if len(s) == 0 {
		return d
	}
	return s[0]
}

func (c *Config) validateCluster(file string, errs *ErrorList) {
	cl := c.Cluster
	if cl == nil {
		return
	}
	line := func(key string) int {
		if key == "" {
			return c.line("cluster")
		}
		return c.line("cluster." + key)
	}
	switch {
	case cl.Name == "":
		errs.add(file, line(""), `cluster.name is missing: name the cluster, the same on every instance (e.g. name = "prod")`)
	case strings.ContainsAny(cl.Name, "/ \t"):
		errs.add(file, line("name"), "cluster.name %q: it is part of the etcd key prefix; use letters, digits, '-' and '.' only", cl.Name)
	}
	if cl.Instance == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			errs.add(file, line(""), "cluster.instance is missing and the host name cannot be read (%v): set instance = \"ns1\", unique per instance", err)
		}
		cl.Instance = h
	}
	if strings.ContainsAny(cl.Instance, "/ \t") {
		errs.add(file, line("instance"), "cluster.instance %q: it is part of etcd keys; use letters, digits, '-' and '.' only", cl.Instance)
	}
	if len(cl.Etcd) == 0 {
		errs.add(file, line(""), `cluster.etcd is missing: list the etcd members' client URLs, e.g. etcd = ["https://10.0.0.5:2379", "https://10.0.0.6:2379", "https://10.0.0.7:2379"]`)
	}
	scheme := ""
	for i, e := range cl.Etcd {
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			errs.add(file, line("etcd"), "cluster.etcd[%d] %q: want a client URL such as \"https://10.0.0.5:2379\"", i, e)
			continue
		}
		if scheme != "" && u.Scheme != scheme {
			errs.add(file, line("etcd"), "cluster.etcd[%d] %q: every member must use the same scheme (http or https)", i, e)
		}
		scheme = u.Scheme
	}
	for _, f := range []struct {
		key  string
		path *string
	}{{"ca_file", &cl.CAFile}, {"cert_file", &cl.CertFile}, {"key_file", &cl.KeyFile}} {
		if *f.path == "" {
			continue
		}
		*f.path = c.relPath(*f.path)
		if _, err := os.Stat(*f.path); err != nil {
			errs.add(file, line(f.key), "cluster.%s %s: %v", f.key, *f.path, unwrapPath(err))
		}
	}
	if (cl.CertFile == "") != (cl.KeyFile == "") {
		errs.add(file, line(""), "cluster: cert_file and key_file go together (client certificate and its key); set both or neither")
	}
	if scheme == "http" && (cl.CAFile != "" || cl.CertFile != "") {
		errs.add(file, line("etcd"), "cluster: ca_file/cert_file are set but the etcd URLs are http://; use https:// URLs")
	}
	switch d := cl.SessionTTL.Duration; {
	case d == 0:
		cl.SessionTTL.Duration = DefaultSessionTTL
	case d < 2*time.Second || d%time.Second != 0:
		errs.add(file, line("session_ttl"), "cluster.session_ttl %s: etcd leases are whole seconds and at least 2s; use e.g. \"3s\"", d)
	}
	if cl.RequestTimeout.Duration == 0 {
		cl.RequestTimeout.Duration = DefaultRequestTimeout
	}
	if cl.Prefix == "" {
		cl.Prefix = "/failoverdns/" + cl.Name + "/v1/"
	} else if !strings.HasSuffix(cl.Prefix, "/") {
		cl.Prefix += "/"
	}
	if cl.Source != "" {
		a, err := netip.ParseAddr(cl.Source)
		if err != nil {
			errs.add(file, line("source"), "cluster.source %q: want this host's address to connect to etcd from, e.g. \"10.0.0.21\"", cl.Source)
		}
		cl.source = a
	}
}

func unwrapPath(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return fmt.Sprint(err)
}
