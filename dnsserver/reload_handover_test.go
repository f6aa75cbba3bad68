package dnsserver_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/failoverdns/failoverdns/dnsserver/testenv"
)

// TestReloadChangedNodeProbedFirst: a node whose address, check target or
// port changes in a reload is a new node to the prober: its state starts
// over and it is probed before it can be answered, like a node the reload
// adds. Its old "up" never vouches for what it now stands for, even with
// a check interval far longer than the test.
func TestReloadChangedNodeProbedFirst(t *testing.T) {
	const slow = "interval = \"1h\"\ntimeout = \"1s\"\nrise = 2\nfall = 2\n"
	for _, tc := range []struct {
		name  string
		start func(c *opsConf, sems1 *opsNode) // the config before; nil = the default
		edit  func(c *opsConf, sems1 *opsNode)
		want  string // the answer right after the reload
	}{
		{"address moves to a dead one", nil, func(c *opsConf, n *opsNode) {
			c.addrs = map[string]string{"sems1": "127.0.10.77"}
			c.checks = map[string]string{"sems1": fmt.Sprintf("type = \"tcp\"\nport = %d\n%s", n.port, slow)}
		}, "sems2"},
		{"check port moves to a closed one", nil, func(c *opsConf, n *opsNode) {
			c.checks = map[string]string{"sems1": fmt.Sprintf("type = \"tcp\"\nport = %d\n%s", testenv.ClosedPort(t, n.ip), slow)}
		}, "sems2"},
		{"check target moves to a dead one", nil, func(c *opsConf, n *opsNode) {
			c.checks = map[string]string{"sems1": fmt.Sprintf("type = \"tcp\"\nport = %d\ntarget = \"127.0.10.77\"\n%s", n.port, slow)}
		}, "sems2"},
		{"address moves, the check and its target stay", func(c *opsConf, n *opsNode) {
			c.checks = map[string]string{"sems1": fmt.Sprintf("type = \"tcp\"\nport = %d\ntarget = %q\n%s", n.port, n.ip, slow)}
		}, func(c *opsConf, n *opsNode) {
			c.addrs = map[string]string{"sems1": "127.0.10.77"}
		}, "127.0.10.77"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodes := opsNodes(t, "sems1", "sems2")
			c := opsConf{order: []string{"sems1", "sems2"}}
			if tc.start != nil {
				tc.start(&c, nodes["sems1"])
			}
			e := opsStart(t, c, nodes)
			e.wantActive(t, "sems1", "at start")
			tc.edit(&c, nodes["sems1"])
			e.write(t, c)
			start := time.Now()
			e.reload(t)
			e.wantActive(t, tc.want, "right after the reload")
			st := e.in.Prober.Snapshot()["sems1"]
			if !st.Checked || st.Last.At.Before(start) {
				t.Errorf("sems1 after the reload: checked=%v, last probe at %s (reload at %s): want its state from a probe of the new node", st.Checked, st.Last.At, start)
			}
		})
	}
}

// TestReloadRenameNoFlap: reloads that only rename nodes (same addresses,
// same checks) never publish a decision made from one config's node names
// and another's health: no SERVFAIL, no "all nodes down", no answer other
// than the first node's address, across many reloads.
func TestReloadRenameNoFlap(t *testing.T) {
	nodes := opsNodes(t, "sems1", "sems2", "sems3")
	names := func(p string) opsConf {
		order := []string{p + "1", p + "2", p + "3"}
		return opsConf{order: order, whenAllDown: "servfail", alias: map[string]string{order[0]: "sems1", order[1]: "sems2", order[2]: "sems3"}}
	}
	c := names("a")
	e := opsStart(t, c, nodes)
	e.wantActive(t, "sems1", "at start")

	halt := e.watchActive(t, "sems1", 1, 0)
	for i := range 20 {
		c = names(string(rune('a' + i%2 + 1)))
		e.write(t, c)
		e.reload(t)
	}
	if v, asked := halt(); v != nil {
		t.Errorf("while nodes were renamed, a query was answered %v, want sems1's address every time (%d queries)", v, asked)
	}
	logs := e.Logs.String()
	for _, s := range []string{"new=SERVFAIL", "all nodes of a service are down", "every node fails its checks", "is down:"} {
		if strings.Contains(logs, s) {
			t.Errorf("a rename-only reload published a decision saying %q\nlog:\n%s", s, logs)
			break
		}
	}
}

// TestReloadCanceledByClose: a reload stuck on a new node's first probe
// (an HTTP check whose server never answers, timeout 30 s) does not hold
// up shutdown: Close cancels it, the reload fails, and the config in force
// stays the old one.
func TestReloadCanceledByClose(t *testing.T) {
	nodes := opsNodes(t, "sems1", "sems2", "sems3")
	port, asked := testenv.HangingHTTP(t, opsIPs["sems3"])

	c := opsConf{order: []string{"sems1", "sems2"}}
	e := opsStart(t, c, nodes)
	c.order = []string{"sems1", "sems2", "sems3"}
	c.checks = map[string]string{"sems3": fmt.Sprintf("type = \"http\"\nport = %d\ninterval = \"1s\"\ntimeout = \"30s\"\n", port)}
	e.write(t, c)
	reloaded := make(chan error, 1)
	go func() { reloaded <- e.in.Reload() }()
	select {
	case <-asked:
	case err := <-reloaded:
		t.Fatalf("the reload returned (%v) before probing sems3", err)
	case <-time.After(opsWithin):
		t.Fatal("sems3's check never reached its server")
	}

	closed := make(chan struct{})
	go func() { e.closeIn(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(opsWithin):
		t.Fatal("Close did not return while a reload was probing")
	}
	select {
	case err := <-reloaded:
		if err == nil || !strings.Contains(err.Error(), "cancel") {
			t.Errorf("the canceled reload returned %v, want an error saying it was canceled", err)
		}
	case <-time.After(opsWithin):
		t.Fatal("the reload did not return after Close")
	}
	if n := len(e.in.Server.Snapshot().Config.Nodes); n != 2 {
		t.Errorf("after the canceled reload the config in force has %d nodes, want the old 2", n)
	}
	if _, ok := e.in.Prober.Snapshot()["sems3"]; ok {
		t.Errorf("the canceled reload's node sems3 is in the prober")
	}
}
