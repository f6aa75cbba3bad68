package dnsserver_test

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/failoverdns/failoverdns/dnsserver"
	"github.com/failoverdns/failoverdns/dnsserver/testenv"
	"github.com/failoverdns/failoverdns/zones"
	_ "github.com/failoverdns/failoverdns/zones/cluster" // links cluster mode (zones.JoinCluster)
	"github.com/failoverdns/failoverdns/zones/cluster/etcdtest"
)

// Cluster mode (README "Running several nameservers") with real etcd: three etcd members and three
// failoverdns instances on loopback, every answer read with real DNS
// queries. The instances share admin_test.go's fixture (nodes sems1..3 on
// tcp listeners the test stops and starts, the admin. TSIG key).

const clWithin = 20 * time.Second // generous: elections, leases, hold-downs

// clEnv is an etcd cluster and the failoverdns instances on it.
type clEnv struct {
	etcd  *etcdtest.Cluster
	nodes map[string]*admNode
	ins   []*admEnv
}

// clStart starts etcd and n instances named ns1..nsN, each with its own
// config and state_dir, and waits until all answer the same node from a
// decision the cluster committed.
func clStart(t *testing.T, n int, extra string) *clEnv {
	t.Helper()
	c := &clEnv{etcd: etcdtest.Start(t, etcdtest.Options{}), nodes: map[string]*admNode{}}
	for _, name := range []string{"sems1", "sems2", "sems3"} {
		c.nodes[name] = admNewNode(t, name, true)
	}
	for i := range n {
		cl := fmt.Sprintf("[cluster]\nname = %q\ninstance = \"ns%d\"\netcd = [%s]\nsession_ttl = \"2s\"\nlocal_failover_after = \"3s\"\nrequest_timeout = \"1s\"\n%s",
			strings.ReplaceAll(t.Name(), "/", "-"), i+1, testenv.Quoted(c.etcd.Endpoints()), extra)
		e := admPrepare(t, admConf{http: true, extra: cl}, c.nodes)
		e.launch(t, dnsserver.Options{})
		c.ins = append(c.ins, e)
	}
	c.waitAgreed(t, "sems1")
	return c
}

// waitAgreed waits until every running instance answers want from a
// decision the cluster committed (not a local one).
func (c *clEnv) waitAgreed(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(clWithin)
	for {
		var got []string
		ok := true
		for i, e := range c.ins {
			if e.in == nil {
				continue
			}
			a := e.admActive(t, "127.0.0.1")
			d, _ := e.in.Server.Snapshot().Decision(admService, 0)
			got = append(got, fmt.Sprintf("ns%d=%s(local=%v)", i+1, a, d.Local))
			if a != want || d.Local {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s the instances answer %v; want all %s from a cluster decision", clWithin, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// update sends a signed UPDATE to instance i and returns its RCODE.
func (c *clEnv) update(t *testing.T, i int, m *dns.Msg) int {
	t.Helper()
	r, verr := admSend(t, c.ins[i].Addr, m, admSign{})
	if verr != nil {
		t.Fatalf("UPDATE to ns%d: answer TSIG: %v", i+1, verr)
	}
	return r.Rcode
}

// TestClusterOneAnswer is cluster mode's promise (README "Running several
// nameservers"): a node failure, a
// failback, a pin sent to one instance and an unpin are answered alike by
// all three, and pins survive a restart of every instance.
func TestClusterOneAnswer(t *testing.T) {
	c := clStart(t, 3, "")

	// /status: one leader, every node voted up by all three.
	deadline := time.Now().Add(clWithin)
	for {
		leaders, votes := 0, 0
		for _, e := range c.ins {
			st := e.in.Status().Cluster
			if st == nil {
				t.Fatal("/status has no cluster part in cluster mode")
			}
			if st.IsLeader {
				leaders++
			}
			if st.Nodes["sems1"].Votes == "3/3" && st.Nodes["sems1"].Up {
				votes++
			}
		}
		if leaders == 1 && votes == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/status: %d leaders and %d instances with sems1 up 3/3, want 1 and 3", leaders, votes)
		}
		time.Sleep(20 * time.Millisecond)
	}

	c.nodes["sems1"].stop()
	c.waitAgreed(t, "sems2")
	c.nodes["sems1"].start(t)
	c.waitAgreed(t, "sems1") // failback_after 1s

	if rc := c.update(t, 1, admPinMsg(admPinName, "sems3")); rc != dns.RcodeSuccess {
		t.Fatalf("pin via ns2: %s, want NOERROR", dns.RcodeToString[rc])
	}
	// Committed before NOERROR, and applied by ns2 before it answered.
	if got := c.ins[1].pinTXT(t, admPinName); got != "sems3" {
		t.Errorf("_pin on ns2 right after NOERROR = %s, want sems3", got)
	}
	c.waitAgreed(t, "sems3")
	for i, e := range c.ins {
		if got := e.pinTXT(t, admPinName); got != "sems3" {
			t.Errorf("_pin on ns%d = %s, want sems3", i+1, got)
		}
	}

	// Every instance restarts; the pin lives in etcd.
	for _, e := range c.ins {
		e.close()
	}
	for _, e := range c.ins {
		e.launch(t, dnsserver.Options{ConfigPath: e.ConfigPath})
	}
	c.waitAgreed(t, "sems3")

	if rc := c.update(t, 2, admUnpinMsg(admPinName)); rc != dns.RcodeSuccess {
		t.Fatalf("unpin via ns3: %s, want NOERROR", dns.RcodeToString[rc])
	}
	c.waitAgreed(t, "sems1")
	for i, e := range c.ins {
		if got := e.pinTXT(t, admPinName); got != "NXDOMAIN" {
			t.Errorf("_pin on ns%d after unpin = %s, want NXDOMAIN", i+1, got)
		}
	}
}

// TestClusterQuorumLost: with two of three etcd members killed, every
// instance keeps answering the last agreed node, pin UPDATEs answer
// SERVFAIL (nothing acknowledged that etcd did not commit), and after the
// members return, UPDATEs commit and every instance follows again.
func TestClusterQuorumLost(t *testing.T) {
	c := clStart(t, 3, "")
	killed := time.Now()
	c.etcd.Member(1).Kill()
	c.etcd.Member(2).Kill()
	// Until every instance has noticed (its lease lapses), answers stay.
	deadline := time.Now().Add(clWithin)
	for {
		cut := 0
		for i, e := range c.ins {
			if got := e.admActive(t, "127.0.0.1"); got != "sems1" {
				t.Fatalf("ns%d answers %s with etcd's quorum lost, want the last agreed sems1", i+1, got)
			}
			if a := e.in.Server.Snapshot().Cluster(); a != nil && !a.Connected {
				cut++
			}
		}
		if cut == len(c.ins) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s only %d of %d instances noticed the lost quorum", clWithin, cut, len(c.ins))
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i := range c.ins {
		if rc := c.update(t, i, admPinMsg(admPinName, "sems2")); rc != dns.RcodeServerFailure {
			t.Fatalf("pin via ns%d without quorum: %s, want SERVFAIL", i+1, dns.RcodeToString[rc])
		}
	}
	for i, e := range c.ins {
		if got := e.admActive(t, "127.0.0.1"); got != "sems1" {
			t.Fatalf("ns%d answers %s after a refused pin, want sems1", i+1, got)
		}
		st := strings.Join(e.status(t, ""), "\n")
		if !strings.Contains(st, "cluster: unreachable for") {
			t.Errorf("ns%d _status does not say the cluster is unreachable:\n%s", i+1, st)
		}
		// Noticed when the lease lapses, but cut off from the last time
		// etcd answered (it answers every instance every second): what
		// local_failover_after counts from. Generous bounds: not timing.
		cs := e.in.Status().Cluster
		if cs == nil || cs.CutOffSince.Before(killed.Add(-5*time.Second)) || cs.CutOffSince.After(killed.Add(2*time.Second)) {
			t.Errorf("ns%d /status cluster %+v: cut_off_since should be etcd's last answer, within [-5s, +2s] of the kill at %s", i+1, cs, killed.Format(time.RFC3339Nano))
		}
	}

	c.etcd.Member(1).Restart()
	c.etcd.Member(2).Restart()
	deadline = time.Now().Add(clWithin)
	for {
		rc := c.update(t, 0, admPinMsg(admPinName, "sems2"))
		if rc == dns.RcodeSuccess {
			break
		}
		if rc != dns.RcodeServerFailure || time.Now().After(deadline) {
			t.Fatalf("pin after the quorum returned: %s", dns.RcodeToString[rc])
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.waitAgreed(t, "sems2")
}

// TestClusterCacheAcrossRestart: an instance restarted while etcd is gone
// answers the decisions it last applied (cached in state_dir), not its own;
// one with no cache decides locally and says so.
func TestClusterCacheAcrossRestart(t *testing.T) {
	c := clStart(t, 2, "")
	c.nodes["sems1"].stop()
	c.waitAgreed(t, "sems2")
	for i := range c.etcd.Members() {
		c.etcd.Member(i).Kill()
	}
	e := c.ins[0]
	e.close()
	e.launch(t, dnsserver.Options{ConfigPath: e.ConfigPath})
	d, _ := e.in.Server.Snapshot().Decision(admService, 0)
	if d.Local || d.Active != "sems2" {
		t.Fatalf("restarted without etcd: decision %+v, want the cached sems2, not a local one", d)
	}
	if st := strings.Join(e.status(t, ""), "\n"); !strings.Contains(st, "answering the cached decisions") {
		t.Errorf("_status does not say it answers cached decisions:\n%s", st)
	}

	// No cache: a fresh state_dir decides locally, flagged.
	if err := os.RemoveAll(c.ins[1].stateDir); err != nil {
		t.Fatal(err)
	}
	c.ins[1].close()
	c.ins[1].launch(t, dnsserver.Options{ConfigPath: c.ins[1].ConfigPath})
	d, _ = c.ins[1].in.Server.Snapshot().Decision(admService, 0)
	if !d.Local || d.Active != "sems2" || !strings.Contains(d.Reason, "local decision") {
		t.Fatalf("restarted without etcd or cache: decision %+v, want a local decision for sems2", d)
	}
}

// TestClusterConfigMismatch: a member with another definition of the
// service is reported on every instance, and the leader leaves that
// service's decision as it is until the configs agree.
func TestClusterConfigMismatch(t *testing.T) {
	c := clStart(t, 2, "")
	// ns2 changes failback for the service and reloads.
	cfg := c.ins[1].ConfigPath
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(b), `failback = "auto"`, `failback = "manual"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.ins[1].in.Reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	deadline := time.Now().Add(clWithin)
	for {
		st0 := strings.Join(c.ins[0].status(t, ""), "\n")
		st1 := strings.Join(c.ins[1].status(t, ""), "\n")
		if strings.Contains(st0, "config mismatch: ns2") && strings.Contains(st1, "config mismatch: ns1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no config mismatch in _status after %s:\nns1:\n%s\nns2:\n%s", clWithin, st0, st1)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.nodes["sems1"].stop()
	// The cluster agrees sems1 is down, yet the decision stays: frozen.
	deadline = time.Now().Add(clWithin)
	for !strings.Contains(strings.Join(c.ins[0].status(t, ""), "\n"), "cluster=down 0/2") {
		if time.Now().After(deadline) {
			t.Fatalf("the cluster never agreed sems1 is down: %q", c.ins[0].status(t, ""))
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second) // the leader writes decisions right after health: give it the chance to err
	for i, e := range c.ins {
		if got := e.admActive(t, "127.0.0.1"); got != "sems1" {
			t.Fatalf("ns%d answers %s while the members' configs disagree, want the frozen sems1", i+1, got)
		}
	}
	// The configs agree again: the service is decided again.
	if err := os.WriteFile(cfg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.ins[1].in.Reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	c.waitAgreed(t, "sems2")
}

// TestClusterImportAndLapse: pins an instance kept in state_dir before
// cluster mode are imported into etcd once; a pin's until= is lapsed by the
// leader, in etcd, for every instance.
func TestClusterImportAndLapse(t *testing.T) {
	c := clStart(t, 2, "")
	e := c.ins[0]
	e.close()
	old := map[zones.PinKey]zones.Pin{{Service: admService}: {Node: "sems3", Key: admKey, From: "127.0.0.1", At: time.Now().UTC().Truncate(time.Second)}}
	if err := zones.NewPinStore(e.stateDir).Save(old); err != nil {
		t.Fatal(err)
	}
	e.launch(t, dnsserver.Options{ConfigPath: e.ConfigPath})
	c.waitAgreed(t, "sems3")

	// Imported once: unpinned in the cluster, a restart does not bring
	// state_dir's pin back.
	if rc := c.update(t, 1, admUnpinMsg(admPinName)); rc != dns.RcodeSuccess {
		t.Fatalf("unpin: %s", dns.RcodeToString[rc])
	}
	c.waitAgreed(t, "sems1")
	e.close()
	e.launch(t, dnsserver.Options{ConfigPath: e.ConfigPath})
	c.waitAgreed(t, "sems1")

	until := time.Now().Add(3 * time.Second).UTC().Format(time.RFC3339)
	if rc := c.update(t, 0, admPinMsg(admPinName, "sems2 until="+until)); rc != dns.RcodeSuccess {
		t.Fatalf("pin with until: %s", dns.RcodeToString[rc])
	}
	c.waitAgreed(t, "sems2")
	c.waitAgreed(t, "sems1")
	deadline := time.Now().Add(clWithin)
	for i := 0; i < len(c.ins); {
		if got := c.ins[i].pinTXT(t, admPinName); got == "NXDOMAIN" {
			i++
			continue
		} else if time.Now().After(deadline) {
			t.Fatalf("_pin on ns%d = %s after until passed, want NXDOMAIN (deleted by the leader)", i+1, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cli := c.etcd.Client(t)
	resp, err := cli.Get(t.Context(), "/failoverdns/"+t.Name()+"/v1/pin/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 0 {
		t.Errorf("etcd still holds %d pin keys after until passed: %s", len(resp.Kvs), resp.Kvs[0].Key)
	}
}

// TestClusterScheduledPin: a pin with at= sent to one instance switches
// every instance at at=, not before.
func TestClusterScheduledPin(t *testing.T) {
	c := clStart(t, 3, "")
	at := time.Now().Add(3 * time.Second).Truncate(time.Second).Add(time.Second)
	if rc := c.update(t, 2, admPinMsg(admPinName, "sems3 at="+at.UTC().Format(time.RFC3339))); rc != dns.RcodeSuccess {
		t.Fatalf("scheduled pin via ns3: %s", dns.RcodeToString[rc])
	}
	for time.Now().Before(at) {
		for i, e := range c.ins {
			got := e.admActive(t, "127.0.0.1")
			if got != "sems1" && time.Now().Before(at) {
				t.Fatalf("ns%d answered %s before at=%s", i+1, got, at.Format(time.RFC3339))
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.waitAgreed(t, "sems3")
}

// TestClusterIsolatedObserverWithdrawn: an instance whose anchors all fail
// withdraws its observations, so the vote counts the others only.
func TestClusterIsolatedObserverWithdrawn(t *testing.T) {
	c := clStart(t, 3, "")
	anchor := admNewNode(t, "anchor", true)
	e := c.ins[2]
	b, err := os.ReadFile(e.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(b), "[server]\n", fmt.Sprintf("[server]\nanchors = [\"127.0.10.9:%d\"]\n", anchor.port), 1)
	if err := os.WriteFile(e.ConfigPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.in.Reload(); err != nil {
		t.Fatalf("reload with anchors: %v", err)
	}
	c.waitVotes(t, "sems1", "3/3")
	anchor.stop()
	c.waitVotes(t, "sems1", "2/2")
	anchor.start(t)
	c.waitVotes(t, "sems1", "3/3")
}

// waitVotes waits until every instance's /status shows node with votes.
func (c *clEnv) waitVotes(t *testing.T, node, votes string) {
	t.Helper()
	deadline := time.Now().Add(clWithin)
	for {
		var got []string
		for _, e := range c.ins {
			got = append(got, e.in.Status().Cluster.Nodes[node].Votes)
		}
		if slices.Equal(got, []string{votes, votes, votes}[:len(got)]) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("votes for %s %v after %s, want %s everywhere", node, got, clWithin, votes)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestClusterRenameNoFlap: every instance reloads a config that renames
// the active node (same address, same check). The leader must not decide
// from the new name before any instance has observed it: the answer never
// moves.
func TestClusterRenameNoFlap(t *testing.T) {
	c := clStart(t, 2, "")
	for _, e := range c.ins {
		b, err := os.ReadFile(e.ConfigPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(e.ConfigPath, []byte(strings.ReplaceAll(string(b), `"sems1"`, `"alpha1"`)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, len(c.ins))
	for _, e := range c.ins {
		go func() { done <- e.in.Reload() }()
	}
	for range c.ins {
		if err := <-done; err != nil {
			t.Fatalf("reload: %v", err)
		}
	}
	// The node keeps its address: admNodeOf still calls 127.0.10.1 sems1.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		for i, e := range c.ins {
			if got := e.admActive(t, "127.0.0.1"); got != "sems1" {
				t.Fatalf("ns%d answers %s during a rename-only reload, want 127.0.10.1 throughout", i+1, got)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.waitAgreed(t, "sems1")
}
