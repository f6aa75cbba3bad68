package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/failoverdns/failoverdns/zones"
)

// cacheFile is the last applied cluster state, kept in state_dir so an
// instance that restarts while etcd is unreachable answers what the
// cluster last agreed rather than deciding alone (README "Running several
// nameservers", "What each failure does").
const cacheFile = "cluster.json"

type cacheFormat struct {
	Version   int                    `json:"version"`
	Cluster   string                 `json:"cluster"`
	Revision  int64                  `json:"revision"`
	Leader    string                 `json:"leader,omitempty"`
	Saved     time.Time              `json:"saved"`
	Decisions []cachedDecision       `json:"decisions"`
	Health    map[string]healthValue `json:"health"`
	Pins      []cachedPin            `json:"pins"`
}

type cachedDecision struct {
	Service    string        `json:"service"`
	Location   string        `json:"location,omitempty"`
	Decision   decisionValue `json:"decision"`
	Generation int64         `json:"generation"`
}

type cachedPin struct {
	Service  string   `json:"service"`
	Location string   `json:"location,omitempty"`
	Pin      pinValue `json:"pin"`
}

// saveCache writes the mirror's answer side durably.
func saveCache(dir, cluster string, m *mirror) error {
	f := cacheFormat{Version: 1, Cluster: cluster, Revision: m.rev, Leader: m.leader(), Saved: time.Now().UTC(), Health: m.health}
	for k, d := range m.decisions {
		f.Decisions = append(f.Decisions, cachedDecision{k.Service, k.Location, d.v, d.rev})
	}
	for k, p := range m.pins {
		f.Pins = append(f.Pins, cachedPin{k.Service, k.Location, pinValueOf(p)})
	}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return zones.WriteAtomic(dir, cacheFile, b, nil)
}

// loadCache fills m from the cache; ok is false when there is none. A
// cache of another cluster name is ignored: its decisions are not ours.
func loadCache(dir, cluster string, m *mirror) (ok bool, err error) {
	path := filepath.Join(dir, cacheFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var f cacheFormat
	if err := json.Unmarshal(b, &f); err != nil || f.Version != 1 {
		return false, fmt.Errorf("%s: unreadable cluster cache (%v); it is rewritten at the next change from etcd", path, err)
	}
	if f.Cluster != cluster {
		return false, nil
	}
	m.clear()
	m.rev = f.Revision
	if f.Leader != "" {
		m.leaders["cached"] = leaderEntry{name: f.Leader}
	}
	for _, d := range f.Decisions {
		m.decisions[zones.PinKey{Service: d.Service, Location: d.Location}] = decisionEntry{v: d.Decision, rev: d.Generation}
	}
	for n, h := range f.Health {
		m.health[n] = h
	}
	for _, p := range f.Pins {
		m.pins[zones.PinKey{Service: p.Service, Location: p.Location}] = p.Pin.pin()
	}
	return true, nil
}
