package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/failoverdns/failoverdns/dnsserver/testenv"
)

// TestDemoStatusPage: the demo serves the status page and prints its
// address; kill -USR1 makes a failover that the page and /events show
// (README "Quick start").
func TestDemoStatusPage(t *testing.T) {
	p := startDemo(t)
	const page = "127.0.0.1:5380"
	if !strings.Contains(p.Stdout.String(), "Status page:   http://"+page+"/") {
		t.Errorf("the demo banner does not give the status page's address http://%s/:\n%s", page, p.Stdout.String())
	}
	row := func(body string) string {
		i := strings.Index(body, `data-service="keys.demo.test."`)
		if i < 0 {
			return ""
		}
		return body[i : i+strings.Index(body[i:], "</tr>")]
	}
	code, body := testenv.HTTPGet(t, page, "/")
	if code != http.StatusOK || !strings.Contains(row(body), "<b>sems1</b>") {
		t.Fatalf("GET http://%s/: %d; the row of keys.demo.test. reads %q, want sems1 active", page, code, row(body))
	}

	if err := p.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	// The failover, in the history and on the page.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, js := testenv.HTTPGet(t, page, "/events?service=keys.demo.test")
		var r struct {
			Events []struct{ Kind, Old, New string }
		}
		if err := json.Unmarshal([]byte(js), &r); err != nil {
			t.Fatalf("/events is not JSON: %v\n%s", err, js)
		}
		moved := false
		for _, ev := range r.Events {
			moved = moved || ev.Kind == "active" && ev.Old == "sems1" && ev.New == "sems2"
		}
		if moved {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failover sems1 -> sems2 in /events 20s after kill -USR1: %s\nstderr:\n%s", js, p.Stderr.String())
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	_, body = testenv.HTTPGet(t, page, "/")
	if r := row(body); !strings.Contains(r, "<b>sems2</b>") || !strings.Contains(r, "was sems1") {
		t.Errorf("after kill -USR1 the row of keys.demo.test. reads %q, want sems2, was sems1", r)
	}
	if i := strings.Index(body, `<ol class="timeline"`); i < 0 || !strings.Contains(body[i:i+strings.Index(body[i:], "</li>")], "keys.demo.test.: sems1 → sems2") {
		t.Errorf("the timeline does not start with the failover")
	}
	if code := p.Terminate(t); code != 0 {
		t.Errorf("demo exit code %d after SIGTERM, want 0\nstderr:\n%s", code, p.Stderr.String())
	}
}
