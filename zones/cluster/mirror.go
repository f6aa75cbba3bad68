package cluster

import (
	"encoding/json"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/failoverdns/failoverdns/zones"
)

// mirror is this instance's copy of the cluster's keys, fed by one Get and
// then the watch. Only the member's own goroutines touch it, under
// Member.mu; the query path never does.
type mirror struct {
	prefix    string
	rev       int64
	leaders   map[string]leaderEntry // leader/<lease> → who, since when
	members   map[string]memberValue
	obs       map[string]map[string]obsValue // node → instance → observation
	health    map[string]healthValue
	decisions map[zones.PinKey]decisionEntry
	pins      map[zones.PinKey]zones.Pin
	pinRev    int64 // ModRevision of pinrev: pin transactions compare it
	imported  map[string]bool
	beat      beatValue
	// beatSeen is when the beat last arrived, by the local clock (ages
	// need no clock agreement); atomic, since _status reads it live.
	beatSeen atomic.Int64
	bad      int // values that did not decode since Member.reportBad last logged them
}

type leaderEntry struct {
	name      string
	createRev int64
}

type decisionEntry struct {
	v   decisionValue
	rev int64
}

// what a change touched, so the leader and the engine redo only their part.
type touched struct {
	votes     bool // members or observations: the leader recounts
	pins      bool
	agreed    bool // decisions, health, leader, beat: the answer side
	decisions bool
}

func newMirror(prefix string) *mirror {
	m := &mirror{prefix: prefix}
	m.clear()
	return m
}

func (m *mirror) clear() {
	m.leaders = map[string]leaderEntry{}
	m.members = map[string]memberValue{}
	m.obs = map[string]map[string]obsValue{}
	m.health = map[string]healthValue{}
	m.decisions = map[zones.PinKey]decisionEntry{}
	m.pins = map[zones.PinKey]zones.Pin{}
	m.imported = map[string]bool{}
	m.pinRev = 0
}

// reset replaces everything with a full read at rev.
func (m *mirror) reset(kvs []*mvccpb.KeyValue, rev int64) {
	m.clear()
	for _, kv := range kvs {
		m.put(kv)
	}
	m.rev = rev
}

// put applies one key's new value; del (nil value) its deletion.
func (m *mirror) put(kv *mvccpb.KeyValue) touched { return m.set(kv, false) }
func (m *mirror) del(kv *mvccpb.KeyValue) touched { return m.set(kv, true) }

// keep puts v under k when the key holds a value (present), and forgets k
// when it was deleted or does not decode.
func keep[K comparable, V any](m map[K]V, k K, v V, present bool) {
	if present {
		m[k] = v
		return
	}
	delete(m, k)
}

// setView applies a decision or pin key, rest being what follows its
// kind's prefix, keeping entry(value) under the view; false for a key that
// names no view.
func setView[V, E any](m map[zones.PinKey]E, rest string, decode func(any) bool, entry func(V) E) bool {
	k, ok := parseView(rest)
	if !ok {
		return false
	}
	var v V
	ok = decode(&v)
	keep(m, k, entry(v), ok)
	return true
}

func (m *mirror) set(kv *mvccpb.KeyValue, deleted bool) touched {
	key, ok := strings.CutPrefix(string(kv.Key), m.prefix)
	if !ok {
		return touched{}
	}
	decode := func(v any) bool {
		if deleted {
			return false
		}
		if err := json.Unmarshal(kv.Value, v); err != nil {
			m.bad++
			return false
		}
		return true
	}
	switch {
	case strings.HasPrefix(key, kLeader):
		if deleted {
			delete(m.leaders, key)
		} else {
			m.leaders[key] = leaderEntry{name: string(kv.Value), createRev: kv.CreateRevision}
		}
		return touched{agreed: true}
	case strings.HasPrefix(key, kMember):
		name := key[len(kMember):]
		var v memberValue
		if decode(&v) {
			old, had := m.members[name]
			m.members[name] = v
			// The applied revision changes every second; only who is a
			// member and with which config matters to the vote.
			return touched{votes: !had || old.Config != v.Config, agreed: !had || old.Config != v.Config}
		}
		delete(m.members, name)
		return touched{votes: true, agreed: true}
	case strings.HasPrefix(key, kObs):
		node, inst, ok := strings.Cut(key[len(kObs):], "/")
		if !ok {
			return touched{}
		}
		var v obsValue
		if decode(&v) {
			if m.obs[node] == nil {
				m.obs[node] = map[string]obsValue{}
			}
			m.obs[node][inst] = v
		} else if o := m.obs[node]; o != nil {
			delete(o, inst)
			if len(o) == 0 {
				delete(m.obs, node)
			}
		}
		return touched{votes: true}
	case strings.HasPrefix(key, kHealth):
		var v healthValue
		ok := decode(&v)
		keep(m.health, key[len(kHealth):], v, ok)
		return touched{agreed: true}
	case strings.HasPrefix(key, kDecision):
		entry := func(v decisionValue) decisionEntry { return decisionEntry{v: v, rev: kv.ModRevision} }
		if !setView(m.decisions, key[len(kDecision):], decode, entry) {
			return touched{}
		}
		return touched{agreed: true, decisions: true}
	case strings.HasPrefix(key, kPin):
		if !setView(m.pins, key[len(kPin):], decode, pinValue.pin) {
			return touched{}
		}
		return touched{pins: true, agreed: true}
	case key == kPinRev:
		m.pinRev = kv.ModRevision
		if deleted {
			m.pinRev = 0
		}
		return touched{}
	case key == kBeat:
		var v beatValue
		if decode(&v) {
			m.beat = v
			m.beatSeen.Store(time.Now().UnixNano())
		}
		return touched{}
	case strings.HasPrefix(key, kImport):
		m.imported[key[len(kImport):]] = !deleted
		return touched{}
	}
	return touched{}
}

// leader is the instance holding the election: the lowest create revision
// under leader/, as concurrency.Election decides it.
func (m *mirror) leader() string {
	var best leaderEntry
	for _, e := range m.leaders {
		if best.name == "" || e.createRev < best.createRev {
			best = e
		}
	}
	return best.name
}

func (t touched) or(u touched) touched {
	return touched{votes: t.votes || u.votes, pins: t.pins || u.pins, agreed: t.agreed || u.agreed, decisions: t.decisions || u.decisions}
}
