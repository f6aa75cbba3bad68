package dnsserver_test

import (
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// opsHas reports whether a scrape holds a series of name with labels (name,
// value pairs), whatever its value.
func opsHas(mfs map[string]*dto.MetricFamily, name string, labels ...string) bool {
	mf, ok := mfs[name]
	if !ok {
		return false
	}
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		match := true
		for i := 0; i < len(labels); i += 2 {
			match = match && have[labels[i]] == labels[i+1]
		}
		if match {
			return true
		}
	}
	return false
}

// TestMetricsKnownFromConfig: every label set the config makes known is
// exported from the start (counters at 0), so increase() and rate() alerts
// see the first event; service_all_down follows the nodes; a reload drops
// the series of a node it removes.
func TestMetricsKnownFromConfig(t *testing.T) {
	nodes := opsNodes(t, "sems1", "sems2")
	c := opsConf{order: []string{"sems1", "sems2"}, emea: []string{"sems2", "sems1"}, http: true}
	e := opsStart(t, c, nodes)
	svc := e.c.service()
	mfs := opsScrape(t, e.HTTP)
	zero := []opsSeries{
		{"failoverdns_reloads_total", "outcome=success"},
		{"failoverdns_reloads_total", "outcome=failure"},
		{"failoverdns_pin_changes_total", "action=set"},
		{"failoverdns_pin_changes_total", "action=removed"},
		{"failoverdns_pin_changes_total", "action=lapsed"},
		{"failoverdns_service_all_down", "service=" + svc + ",location=default"},
		{"failoverdns_service_all_down", "service=" + svc + ",location=emea"},
	}
	for _, rc := range []string{"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE"} {
		zero = append(zero, opsSeries{"failoverdns_updates_total", "rcode=" + rc})
	}
	for _, s := range zero {
		if !opsHas(mfs, s.name, s.pairs()...) {
			t.Errorf("%s is not exported before its first event", s)
		} else if v := opsMetric(mfs, s.name, s.pairs()...); v != 0 {
			t.Errorf("%s = %v at start, want 0", s, v)
		}
	}
	present := []opsSeries{
		{"failoverdns_active_changes_total", "service=" + svc + ",location=default"},
		{"failoverdns_active_changes_total", "service=" + svc + ",location=emea"},
		{"failoverdns_node_up", "node=sems1"},
		{"failoverdns_node_up", "node=sems2"},
		{"failoverdns_node_probe_duration_seconds", "node=sems1"},
		{"failoverdns_node_probe_duration_seconds", "node=sems2"},
		{"failoverdns_build_info", "version=v0.0.0-ops"},
	}
	for _, s := range present {
		if !opsHas(mfs, s.name, s.pairs()...) {
			t.Errorf("%s is not exported at start", s)
		}
	}
	if n := mfs["failoverdns_node_probe_duration_seconds"]; n != nil {
		for _, m := range n.GetMetric() {
			if m.GetSummary().GetSampleCount() < 1 {
				t.Errorf("node_probe_duration_seconds %v: no probe counted, but the first probe round is done", m.GetLabel())
			}
		}
	}

	// Every node down: both views are all-down.
	for _, n := range nodes {
		n.stop()
	}
	e.waitMetrics(t, map[opsSeries]float64{
		{"failoverdns_service_all_down", "service=" + svc + ",location=default"}: 1,
		{"failoverdns_service_all_down", "service=" + svc + ",location=emea"}:    1,
		{"failoverdns_node_up", ""}: 0,
	})
	nodes["sems1"].start(t)
	e.waitMetrics(t, map[opsSeries]float64{
		{"failoverdns_service_all_down", "service=" + svc + ",location=default"}: 0,
		{"failoverdns_service_all_down", "service=" + svc + ",location=emea"}:    0,
	})

	// A reload without sems2 (and without emea's order) drops their series.
	c.nodes, c.order, c.emea = []string{"sems1"}, []string{"sems1"}, nil
	e.write(t, c)
	e.reload(t)
	mfs = opsScrape(t, e.HTTP)
	for _, s := range []opsSeries{
		{"failoverdns_node_up", "node=sems2"},
		{"failoverdns_node_probe_duration_seconds", "node=sems2"},
		{"failoverdns_probe_failures_total", "node=sems2"},
		{"failoverdns_service_all_down", "service=" + svc + ",location=emea"},
		{"failoverdns_active_changes_total", "service=" + svc + ",location=emea"},
	} {
		if opsHas(mfs, s.name, s.pairs()...) {
			t.Errorf("%s is still exported after a reload removed it", s)
		}
	}
	if !opsHas(mfs, "failoverdns_node_up", "node", "sems1") || opsMetric(mfs, "failoverdns_reloads_total", "outcome", "success") != 1 {
		t.Errorf("after the reload: node_up{sems1} present %v, reloads_total{success} = %v, want present and 1",
			opsHas(mfs, "failoverdns_node_up", "node", "sems1"), opsMetric(mfs, "failoverdns_reloads_total", "outcome", "success"))
	}
	var names []string
	for n := range mfs {
		if strings.HasPrefix(n, "failoverdns_") {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	t.Logf("failoverdns series: %s", strings.Join(names, " "))
}
