package cluster

import (
	"testing"
	"time"
)

func TestVote(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	now := t0.Add(time.Minute)
	up := obsValue{Up: true}
	down := obsValue{Err: "connect: connection refused"}
	live3 := map[string]bool{"ns1": true, "ns2": true, "ns3": true}
	cases := []struct {
		name   string
		prev   *healthValue
		obs    map[string]obsValue
		live   map[string]bool
		want   healthValue
		wantOK bool
	}{
		{"all up, first time", nil, map[string]obsValue{"ns1": up, "ns2": up, "ns3": up}, live3,
			healthValue{Up: true, Since: now, Votes: "3/3"}, true},
		{"one prober cut off is outvoted", &healthValue{Up: true, Since: t0, Votes: "3/3"}, map[string]obsValue{"ns1": up, "ns2": up, "ns3": down}, live3,
			healthValue{Up: true, Since: t0, Votes: "2/3"}, true},
		{"majority down", &healthValue{Up: true, Since: t0, Votes: "3/3"}, map[string]obsValue{"ns1": down, "ns2": down, "ns3": up}, live3,
			healthValue{Up: false, Since: now, Votes: "1/3", Err: "connect: connection refused (seen by ns1)"}, true},
		{"tie keeps the previous state", &healthValue{Up: true, Since: t0, Votes: "2/2"}, map[string]obsValue{"ns1": up, "ns2": down}, map[string]bool{"ns1": true, "ns2": true},
			healthValue{Up: true, Since: t0, Votes: "1/2"}, true},
		{"tie with nothing before is unknown", nil, map[string]obsValue{"ns1": up, "ns2": down}, map[string]bool{"ns1": true, "ns2": true},
			healthValue{Votes: "1/2"}, false},
		{"a dead instance's observation does not count", &healthValue{Up: true, Since: t0, Votes: "3/3"}, map[string]obsValue{"ns1": up, "ns2": down, "ns3": down}, map[string]bool{"ns1": true, "ns2": true},
			healthValue{Up: true, Since: t0, Votes: "1/2"}, true},
		{"no observer keeps the previous state", &healthValue{Up: false, Since: t0, Err: "x", Votes: "0/3"}, nil, live3,
			healthValue{Up: false, Since: t0, Err: "x", Votes: "0/0"}, true},
		{"back up restarts since", &healthValue{Up: false, Since: t0, Votes: "0/3"}, map[string]obsValue{"ns1": up, "ns2": up, "ns3": down}, live3,
			healthValue{Up: true, Since: now, Votes: "2/3"}, true},
		{"back up: since is when a majority saw it up, by the observers' clocks", &healthValue{Up: false, Since: t0, Votes: "0/3"},
			map[string]obsValue{"ns1": {Up: true, Since: t0.Add(10 * time.Second)}, "ns2": {Up: true, Since: t0.Add(12 * time.Second)}, "ns3": {Up: true, Since: t0.Add(30 * time.Second)}}, live3,
			healthValue{Up: true, Since: t0.Add(12 * time.Second), Votes: "3/3"}, true},
		{"a majority time ahead of the leader's clock is clamped", &healthValue{Up: false, Since: t0, Votes: "0/3"},
			map[string]obsValue{"ns1": {Up: true, Since: now.Add(time.Minute)}, "ns2": {Up: true, Since: now.Add(time.Minute)}, "ns3": down}, live3,
			healthValue{Up: true, Since: now, Votes: "2/3"}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var prev healthValue
			if c.prev != nil {
				prev = *c.prev
			}
			got, ok := vote(prev, c.prev != nil, c.obs, c.live, now)
			if ok != c.wantOK || got != c.want {
				t.Fatalf("vote = %+v, %v; want %+v, %v", got, ok, c.want, c.wantOK)
			}
		})
	}
}
