package dnsserver_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/failoverdns/failoverdns/dnsserver"
)

// The prober-isolation guard ([server] anchors): when the anchor fails
// with the nodes, the prober is taken to be cut off and no answer moves;
// when only nodes fail, failover is as usual. admin_test.go's fixture:
// tcp checks every 100ms, fall 1; the anchor is a listener like a node's.

func isoStart(t *testing.T) (*admEnv, *admNode) {
	t.Helper()
	nodes := map[string]*admNode{}
	for _, name := range []string{"sems1", "sems2", "sems3"} {
		nodes[name] = admNewNode(t, name, true)
	}
	anchor := admNewNode(t, "anchor", true)
	e := admPrepare(t, admConf{server: fmt.Sprintf("anchors = [\"127.0.10.9:%d\"]\n", anchor.port)}, nodes)
	e.launch(t, dnsserver.Options{})
	e.wantActive(t, "127.0.0.1", "sems1")
	return e, anchor
}

func TestProberIsolatedHoldsAnswers(t *testing.T) {
	e, anchor := isoStart(t)
	// The prober's network fails: the node and the anchor at once.
	e.nodes["sems1"].stop()
	anchor.stop()
	deadline := time.Now().Add(admWithin)
	for !e.in.Server.Snapshot().Isolation().Isolated {
		if time.Now().After(deadline) {
			t.Fatalf("not isolated after %s: %+v", admWithin, e.in.Server.Snapshot().Isolation())
		}
		e.wantActive(t, "127.0.0.1", "sems1")
		time.Sleep(20 * time.Millisecond)
	}
	// Many probe rounds (100ms each, fall 1): still no answer change.
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); {
		e.wantActive(t, "127.0.0.1", "sems1")
		time.Sleep(50 * time.Millisecond)
	}
	if n := strings.Count(e.Logs.String(), "prober isolated:"); n != 1 {
		t.Errorf("%d \"prober isolated\" log lines, want exactly 1", n)
	}
	if got := gathered(t, e.in, "failoverdns_prober_isolated"); got != 1 {
		t.Errorf("failoverdns_prober_isolated = %v, want 1", got)
	}
	st := unescapeTXT(strings.Join(e.status(t, ""), "\n"))
	if !strings.Contains(st, "prober isolated: every anchor fails") || !strings.Contains(st, "held as up: sems1") {
		t.Errorf("_status does not report the isolation:\n%s", st)
	}
	// The anchor answers again: the prober's view counts, and sems1 is
	// really down.
	anchor.start(t)
	e.waitActive(t, "127.0.0.1", "sems2")
	if got := gathered(t, e.in, "failoverdns_prober_isolated"); got != 0 {
		t.Errorf("failoverdns_prober_isolated = %v after the anchor answered, want 0", got)
	}
}

func TestProberAnchorFineFailsOver(t *testing.T) {
	e, _ := isoStart(t)
	e.nodes["sems1"].stop()
	e.waitActive(t, "127.0.0.1", "sems2")
	if strings.Contains(e.Logs.String(), "prober isolated") {
		t.Error("isolation declared although the anchor answers")
	}
}
