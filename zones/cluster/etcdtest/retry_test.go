package etcdtest

import (
	"net"
	"strconv"
	"testing"
)

// TestPortTaken: when a port chosen for a member is taken before etcd
// binds it (another process won the race), Start tries again with fresh
// ports and the cluster comes up. The one member then survives a Stop and
// a Launch on its own data.
func TestPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port
	calls := 0
	pickPort = func(t testing.TB, addr string, used map[string]bool) int {
		calls++
		if calls == 1 {
			return takenPort // the first member's client port, first attempt
		}
		return freePort(t, addr, used)
	}
	defer func() { pickPort = freePort }()

	c := Start(t, Options{Members: 1})
	m := c.Member(0)
	if m.clientPort == takenPort {
		t.Fatalf("the member serves on the taken port %d", takenPort)
	}
	if calls != 4 {
		t.Errorf("%d ports picked, want 4 (two attempts of two ports)", calls)
	}
	if got, want := c.Endpoints()[0], "http://127.0.0.1:"+strconv.Itoa(m.clientPort); got != want {
		t.Errorf("endpoint %s, want %s", got, want)
	}

	m.Stop()
	if m.Running() {
		t.Fatal("the member runs after Stop")
	}
	m.Launch()
	c.WaitReady()
	if !m.Running() {
		t.Fatal("the member does not run after Launch")
	}
}
