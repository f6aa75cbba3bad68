package dnsserver

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/failoverdns/failoverdns/health"
	"github.com/failoverdns/failoverdns/zones"
)

// Metrics are one instance's Prometheus collectors, in a registry of its own
// so several instances (tests) never share counters. Every label is bounded:
// qtype and rcode by fixed lists, location/service/node by the config.
type Metrics struct {
	Registry *prometheus.Registry

	queries        *prometheus.CounterVec
	queryDuration  prometheus.Histogram
	nodeUp         *prometheus.GaugeVec
	probeDuration  *prometheus.HistogramVec
	probeFailures  *prometheus.CounterVec
	activeChanges  *prometheus.CounterVec
	activeNode     *prometheus.GaugeVec
	pins           *prometheus.GaugeVec
	pinChanges     *prometheus.CounterVec
	reloads        *prometheus.CounterVec
	updates        *prometheus.CounterVec
	lastReloadOK   prometheus.Gauge
	rrlDropped     prometheus.Counter
	rrlSlipped     prometheus.Counter
	configLoadedAt prometheus.Gauge

	// Resolved query counters for the config in force, read without a
	// lock: a miss (first query of a label set) copies the map under mu,
	// which happens a bounded number of times per config.
	qcache atomic.Pointer[queryCache]
	mu     sync.Mutex
}

// queryCache maps small integer keys to counters for one config: the
// location is an index into that config's locations, so the key hashes as
// a few bytes instead of a string.
type queryCache struct {
	cfg      *zones.Config
	counters map[queryKey]prometheus.Counter
}

type queryKey struct {
	qtype, rcode uint16
	transport    Transport
	loc          uint16
}

// NewMetrics registers every collector in a fresh registry.
func NewMetrics() *Metrics {
	const ns = "failoverdns"
	m := &Metrics{Registry: prometheus.NewRegistry()}
	m.queries = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "queries_total",
		Help: "DNS queries answered, by query type, response code, transport and client location."},
		[]string{"qtype", "rcode", "transport", "location"})
	m.queryDuration = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "query_duration_seconds",
		Help:    "Time from a parsed query to its answer being written.",
		Buckets: []float64{5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 5e-3, 25e-3}})
	m.nodeUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "node_up",
		Help: "1 when the node passes its health check (after rise/fall), else 0."}, []string{"node"})
	m.probeDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "probe_duration_seconds",
		Help:    "Health check latency, by check type.",
		Buckets: []float64{100e-6, 500e-6, 1e-3, 5e-3, 10e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5}}, []string{"check"})
	m.probeFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "probe_failures_total",
		Help: "Failed health checks, by node and reason class."}, []string{"node", "reason"})
	m.activeChanges = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "active_changes_total",
		Help: "Changes of the active node, by service and location."}, []string{"service", "location"})
	m.activeNode = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "active_node",
		Help: "1 for the node a service answers in a location."}, []string{"service", "location", "node"})
	m.pins = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "pins",
		Help: "Pins in force, by kind (dynamic, static)."}, []string{"kind"})
	m.pinChanges = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "pin_changes_total",
		Help: "Pins set or removed, by action (set, removed, lapsed)."}, []string{"action"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "reloads_total",
		Help: "Configuration reloads, by outcome."}, []string{"outcome"})
	m.updates = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "updates_total",
		Help: "RFC 2136 UPDATE messages, by response code."}, []string{"rcode"})
	m.lastReloadOK = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "config_last_reload_successful",
		Help: "1 if the last reload succeeded (or none was tried), 0 if it failed and the old config is still served."})
	m.configLoadedAt = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "config_last_reload_success_timestamp_seconds",
		Help: "When the configuration in force was loaded."})
	m.rrlDropped = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "rrl_dropped_total",
		Help: "UDP responses dropped by response rate limiting."})
	m.rrlSlipped = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "rrl_slipped_total",
		Help: "UDP responses sent truncated (TC) by response rate limiting, so real clients retry over TCP."})
	m.Registry.MustRegister(m.rrlDropped, m.rrlSlipped, m.queries, m.queryDuration, m.nodeUp, m.probeDuration, m.probeFailures,
		m.activeChanges, m.activeNode, m.pins, m.pinChanges, m.reloads, m.updates, m.lastReloadOK, m.configLoadedAt,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.lastReloadOK.Set(1)
	m.configLoadedAt.SetToCurrentTime()
	m.qcache.Store(&queryCache{})
	return m
}

// countQuery is on the query path: one map read, one atomic add. snap
// names the location index.
func (m *Metrics) countQuery(snap *zones.Snapshot, qtype, rcode uint16, t Transport, loc int) {
	k := queryKey{qtype: qtypeBucket(qtype), rcode: rcode, transport: t, loc: uint16(loc)}
	qc := m.qcache.Load()
	c, ok := qc.counters[k]
	if !ok || qc.cfg != snap.Config {
		c = m.addCounter(snap, k)
	}
	c.Inc()
}

// observe records how long answers took; the batch reader passes n answers
// sent together.
func (m *Metrics) observe(d time.Duration, n int) {
	sec := d.Seconds()
	for range n {
		m.queryDuration.Observe(sec)
	}
}

func (m *Metrics) addCounter(snap *zones.Snapshot, k queryKey) prometheus.Counter {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.qcache.Load()
	if cur.cfg == snap.Config {
		if c, ok := cur.counters[k]; ok {
			return c
		}
	}
	qt := dns.TypeToString[k.qtype]
	if k.qtype == 0 {
		qt = "other"
	}
	rc := dns.RcodeToString[int(k.rcode)]
	if rc == "" {
		rc = "other"
	}
	c := m.queries.WithLabelValues(qt, rc, k.transport.String(), snap.LocationName(int(k.loc)))
	next := &queryCache{cfg: snap.Config, counters: map[queryKey]prometheus.Counter{}}
	if cur.cfg == snap.Config {
		for kk, v := range cur.counters {
			next.counters[kk] = v
		}
	}
	next.counters[k] = c
	m.qcache.Store(next)
	return c
}

// qtypeBucket keeps the qtype label bounded: common types by name, every
// other type as "other" (0).
func qtypeBucket(t uint16) uint16 {
	switch t {
	case dns.TypeA, dns.TypeAAAA, dns.TypeNS, dns.TypeSOA, dns.TypeCNAME, dns.TypeMX, dns.TypeTXT,
		dns.TypeSRV, dns.TypePTR, dns.TypeCAA, dns.TypeDS, dns.TypeDNSKEY, dns.TypeHTTPS, dns.TypeSVCB,
		dns.TypeANY, dns.TypeAXFR, dns.TypeIXFR:
		return t
	}
	return 0
}

// observeProbe records one health check result.
func (m *Metrics) observeProbe(node, check string, r health.Result) {
	m.probeDuration.WithLabelValues(check).Observe(r.Latency.Seconds())
	if !r.OK {
		m.probeFailures.WithLabelValues(node, failureClass(r.Err)).Inc()
	}
}

// failureClass maps a free-text check error to a bounded label.
func failureClass(err string) string {
	e := strings.ToLower(err)
	switch {
	case strings.Contains(e, "timeout") || strings.Contains(e, "deadline"):
		return "timeout"
	case strings.Contains(e, "refused"):
		return "refused"
	case strings.Contains(e, "status"):
		return "status"
	case strings.Contains(e, "certificate") || strings.Contains(e, "tls") || strings.Contains(e, "x509"):
		return "tls"
	case strings.Contains(e, "body"):
		return "body"
	case strings.Contains(e, "unreachable") || strings.Contains(e, "no route"):
		return "unreachable"
	}
	return "other"
}
