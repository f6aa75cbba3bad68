package dnsserver

import (
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
	queryDuration  *latencyHist
	state          *stateMetrics // node_up and the per-service series (gauges.go)
	probeDuration  *prometheus.HistogramVec
	nodeProbe      *prometheus.SummaryVec
	probeFailures  *prometheus.CounterVec
	recompute      prometheus.Histogram
	pins           *prometheus.GaugeVec
	pinChanges     *prometheus.CounterVec
	reloads        *prometheus.CounterVec
	updates        *prometheus.CounterVec
	lastReloadOK   prometheus.Gauge
	rrlDropped     prometheus.Counter
	rrlSlipped     prometheus.Counter
	configLoadedAt prometheus.Gauge
	buildInfo      *prometheus.GaugeVec

	// Cluster mode only (registerCluster).
	clusterLocal     prometheus.Counter
	clusterObservers *prometheus.GaugeVec

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
	m.queryDuration = newLatencyHist(prometheus.BuildFQName(ns, "", "query_duration_seconds"),
		"Time from a received query to its answer being written. UDP readers time one batch of answers in 16 (a sample; queries_total counts every answer).")
	m.state = newStateMetrics(ns)
	m.probeDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "probe_duration_seconds",
		Help:    "Health check latency, by check type.",
		Buckets: []float64{100e-6, 500e-6, 1e-3, 5e-3, 10e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5}}, []string{"check"})
	m.nodeProbe = prometheus.NewSummaryVec(prometheus.SummaryOpts{Namespace: ns, Name: "node_probe_duration_seconds",
		Help: "Health check latency per node: rate(_sum)/rate(_count) is a node's mean (probe_duration_seconds has the distribution by check type)."}, []string{"node"})
	m.probeFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "probe_failures_total",
		Help: "Failed health checks, by node and reason class."}, []string{"node", "reason"})
	m.recompute = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "recompute_duration_seconds",
		Help:    "Time to decide the services a health change, pin, deadline or reload touches and publish the new snapshot (fast table and gauges included).",
		Buckets: []float64{100e-6, 1e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5}})
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
	m.buildInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "build_info",
		Help: "Always 1: the version, VCS revision and Go version of the running binary."}, []string{"version", "revision", "goversion"})
	m.Registry.MustRegister(m.nodeProbe, m.state, m.buildInfo, m.rrlDropped, m.rrlSlipped, m.queries, m.queryDuration, m.probeDuration, m.probeFailures,
		m.recompute, m.pins, m.pinChanges, m.reloads, m.updates, m.lastReloadOK, m.configLoadedAt,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.lastReloadOK.Set(1)
	m.configLoadedAt.SetToCurrentTime()
	// Every label value these counters can take, at 0 from the start: an
	// increase() alert on the first failed reload or refused UPDATE must
	// see the series go from 0, not appear at 1.
	for _, o := range []string{"success", "failure"} {
		m.reloads.WithLabelValues(o)
	}
	for _, a := range []string{"set", "removed", "lapsed"} {
		m.pinChanges.WithLabelValues(a)
	}
	for _, rc := range updateRcodes {
		m.updates.WithLabelValues(dns.RcodeToString[rc])
	}
	m.qcache.Store(&queryCache{})
	return m
}

// countQuery is on the general path: one map read, one atomic add. snap
// names the location index.
func (m *Metrics) countQuery(snap *zones.Snapshot, qtype, rcode uint16, t Transport, loc int) {
	m.counter(snap, queryKey{qtype: qtypeBucket(qtype), rcode: rcode, transport: t, loc: uint16(loc)}).Inc()
}

func (m *Metrics) counter(snap *zones.Snapshot, k queryKey) prometheus.Counter {
	qc := m.qcache.Load()
	c, ok := qc.counters[k]
	if !ok || qc.cfg != snap.Config {
		c = m.addCounter(snap, k)
	}
	return c
}

// observe records how long one answer of the general path took.
func (m *Metrics) observe(d time.Duration) {
	m.queryDuration.observe(m.queryDuration.shared, d, 1)
}

// readerStats is one UDP reader's share of the query metrics, so the fast
// path neither hashes a map key nor writes a cache line another reader
// writes too.
type readerStats struct {
	m       *Metrics
	latency *latencyShard
	// The last few counters this reader incremented: consecutive queries
	// nearly always share their labels.
	qc   *queryCache
	keys [4]queryKey
	ctrs [4]prometheus.Counter
	n    int
	next int
}

func (m *Metrics) newReaderStats() *readerStats {
	return &readerStats{m: m, latency: m.queryDuration.newShard()}
}

// count is countQuery for one reader.
func (rs *readerStats) count(snap *zones.Snapshot, qtype, rcode uint16, loc int) {
	k := queryKey{qtype: qtypeBucket(qtype), rcode: rcode, transport: UDP, loc: uint16(loc)}
	if qc := rs.m.qcache.Load(); rs.qc != qc || qc.cfg != snap.Config {
		rs.qc, rs.n, rs.next = qc, 0, 0
	}
	for i := range rs.n {
		if rs.keys[i] == k {
			rs.ctrs[i].Inc()
			return
		}
	}
	c := rs.m.counter(snap, k)
	c.Inc()
	if rs.qc != rs.m.qcache.Load() {
		return // the counter was new: the next query starts a fresh memo
	}
	i := rs.next
	rs.keys[i], rs.ctrs[i] = k, c
	rs.next = (i + 1) % len(rs.keys)
	rs.n = max(rs.n, i+1)
}

// observe records that n answers sent together took d.
func (rs *readerStats) observe(d time.Duration, n int) {
	rs.m.queryDuration.observe(rs.latency, d, n)
}

// latencyHist is query_duration_seconds: a Prometheus histogram kept in
// shards of plain atomic counters, one per UDP reader (plus one shared by
// the general path), summed when scraped. client_golang's Histogram takes
// one observation at a time into words every reader shares; a batch of n
// answers here is one bucket search and two uncontended adds.
type latencyHist struct {
	desc   *prometheus.Desc
	shared *latencyShard
	mu     sync.Mutex
	shards []*latencyShard
}

// latencyBuckets are the upper bounds, in nanoseconds.
var latencyBuckets = [...]time.Duration{5e3, 10e3, 25e3, 50e3, 100e3, 250e3, 500e3, 1e6, 5e6, 25e6}

type latencyShard struct {
	counts [len(latencyBuckets) + 1]atomic.Uint64 // the last: above every bound
	sumNs  atomic.Uint64
	_      [64]byte // shards are allocated apart; this keeps them off one cache line
}

func newLatencyHist(name, help string) *latencyHist {
	h := &latencyHist{desc: prometheus.NewDesc(name, help, nil, nil)}
	h.shared = h.newShard()
	return h
}

func (h *latencyHist) newShard() *latencyShard {
	s := new(latencyShard)
	h.mu.Lock()
	h.shards = append(h.shards, s)
	h.mu.Unlock()
	return s
}

func (h *latencyHist) observe(s *latencyShard, d time.Duration, n int) {
	i := 0
	for i < len(latencyBuckets) && d > latencyBuckets[i] {
		i++
	}
	s.counts[i].Add(uint64(n))
	s.sumNs.Add(uint64(max(d, 0)) * uint64(n))
}

func (h *latencyHist) Describe(ch chan<- *prometheus.Desc) { ch <- h.desc }

func (h *latencyHist) Collect(ch chan<- prometheus.Metric) {
	var counts [len(latencyBuckets) + 1]uint64
	var sumNs uint64
	h.mu.Lock()
	for _, s := range h.shards {
		for i := range counts {
			counts[i] += s.counts[i].Load()
		}
		sumNs += s.sumNs.Load()
	}
	h.mu.Unlock()
	buckets := make(map[float64]uint64, len(latencyBuckets))
	var total uint64
	for i, le := range latencyBuckets {
		total += counts[i]
		buckets[le.Seconds()] = total
	}
	total += counts[len(latencyBuckets)]
	ch <- prometheus.MustNewConstHistogram(h.desc, total, float64(sumNs)/1e9, buckets)
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

// updateRcodes are the answers an UPDATE can get (update.go).
var updateRcodes = []int{dns.RcodeSuccess, dns.RcodeFormatError, dns.RcodeServerFailure, dns.RcodeNameError,
	dns.RcodeRefused, dns.RcodeYXDomain, dns.RcodeYXRrset, dns.RcodeNXRrset, dns.RcodeNotAuth, dns.RcodeNotZone}

// observeProbe records one health check result.
func (m *Metrics) observeProbe(node, check string, r health.Result) {
	m.probeDuration.WithLabelValues(check).Observe(r.Latency.Seconds())
	m.nodeProbe.WithLabelValues(node).Observe(r.Latency.Seconds())
	if !r.OK {
		reason := r.Reason
		if reason == health.ReasonNone {
			reason = health.ReasonOther // a failed result built without a check
		}
		m.probeFailures.WithLabelValues(node, reason.String()).Inc()
	}
}
