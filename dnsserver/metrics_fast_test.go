package dnsserver

import (
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/zones"
)

// TestLatencyHistogramSumsShards: the query_duration_seconds histogram is
// the sum of every reader's shard and the general path's, in cumulative
// buckets, with each of n answers of a batch counted.
func TestLatencyHistogramSumsShards(t *testing.T) {
	m := NewMetrics()
	r1, r2 := m.newReaderStats(), m.newReaderStats()
	r1.observe(7*time.Microsecond, 3)
	r2.observe(time.Second, 1)
	m.observe(2 * time.Microsecond)
	r2.observe(30*time.Millisecond, 2)

	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, mf := range mfs {
		if mf.GetName() != "failoverdns_query_duration_seconds" {
			continue
		}
		found = true
		h := mf.GetMetric()[0].GetHistogram()
		if got := h.GetSampleCount(); got != 7 {
			t.Errorf("count %d, want 7", got)
		}
		wantSum := (21*time.Microsecond + time.Second + 2*time.Microsecond + 60*time.Millisecond).Seconds()
		if got := h.GetSampleSum(); got < wantSum-1e-9 || got > wantSum+1e-9 {
			t.Errorf("sum %v, want %v", got, wantSum)
		}
		want := map[float64]uint64{5e-6: 1, 10e-6: 4, 25e-6: 4, 50e-6: 4, 100e-6: 4, 250e-6: 4, 500e-6: 4, 1e-3: 4, 5e-3: 4, 25e-3: 4}
		if len(h.GetBucket()) != len(want) {
			t.Errorf("%d buckets, want %d", len(h.GetBucket()), len(want))
		}
		for _, b := range h.GetBucket() {
			if w, ok := want[b.GetUpperBound()]; !ok || b.GetCumulativeCount() != w {
				t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), w)
			}
		}
	}
	if !found {
		t.Fatal("no failoverdns_query_duration_seconds")
	}
}

// TestReaderStatsFollowConfig: a reader's memo of counters belongs to one
// config. After a reload that renumbers the locations, the same location
// index counts under the new config's name, not the old one's.
func TestReaderStatsFollowConfig(t *testing.T) {
	a := fastServer(t, "").pub.Load().snap
	b := swappedLocations(t)
	if a.LocationName(1) != "emea" || b.LocationName(1) != "lab" {
		t.Fatalf("location 1 is %q then %q, want emea then lab", a.LocationName(1), b.LocationName(1))
	}
	m := NewMetrics()
	rs := m.newReaderStats()
	for range 3 {
		rs.count(a, dns.TypeA, dns.RcodeSuccess, 1)
	}
	for range 2 {
		rs.count(b, dns.TypeA, dns.RcodeSuccess, 1)
	}
	rs.count(a, dns.TypeA, dns.RcodeSuccess, 1)
	m.countQuery(b, dns.TypeA, dns.RcodeSuccess, UDP, 1)

	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "failoverdns_queries_total" {
			continue
		}
		for _, s := range mf.GetMetric() {
			var loc string
			for _, l := range s.GetLabel() {
				if l.GetName() == "location" {
					loc = l.GetValue()
				}
			}
			got[loc] += s.GetCounter().GetValue()
		}
	}
	if got["emea"] != 4 || got["lab"] != 3 || len(got) != 2 {
		t.Errorf("queries by location %v, want emea 4 and lab 3", got)
	}
}

// swappedLocations is the fast-path test config with its two locations'
// names swapped, so each index names the other location.
func swappedLocations(t *testing.T) *zones.Snapshot {
	t.Helper()
	return fastSnapshot(t, strings.NewReplacer(`"emea"`, `"lab"`, "emea =", "lab =", `"lab"`, `"emea"`, "lab =", "emea =").Replace)
}
