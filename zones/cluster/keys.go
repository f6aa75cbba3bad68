package cluster

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/failoverdns/failoverdns/zones"
)

// Key layout under the prefix. Location "" (the
// default view) is written "default", a name no [[location]] may take.
const (
	kLeader   = "leader/"
	kMember   = "member/"
	kObs      = "obs/"
	kHealth   = "health/"
	kDecision = "decision/"
	kPin      = "pin/"
	kPinRev   = "pinrev"
	kBeat     = "beat"
	kImport   = "import/"
)

const defaultView = "default"

func viewPath(k zones.PinKey) string {
	loc := k.Location
	if loc == "" {
		loc = defaultView
	}
	return k.Service + "/" + loc
}

func parseView(rest string) (zones.PinKey, bool) {
	svc, loc, ok := strings.Cut(rest, "/")
	if !ok || svc == "" || loc == "" {
		return zones.PinKey{}, false
	}
	if loc == defaultView {
		loc = ""
	}
	return zones.PinKey{Service: svc, Location: loc}, true
}

// memberValue is member/<instance>.
type memberValue struct {
	Version string `json:"version"`
	// Config identifies the failover part of the config (nodes, services,
	// locations); Shards the same per 1/64th of the services, so a leader
	// freezes only the services the members disagree on.
	Config  string    `json:"config"`
	Shards  []string  `json:"shards"`
	DNS     string    `json:"dns,omitempty"`
	Applied int64     `json:"applied"`
	Started time.Time `json:"started"`
}

// obsValue is obs/<node>/<instance>: one instance's view of one node.
type obsValue struct {
	Up    bool      `json:"up"`
	Since time.Time `json:"since"`
	Err   string    `json:"error,omitempty"`
}

// healthValue is health/<node>, written by the leader.
type healthValue struct {
	Up    bool      `json:"up"`
	Since time.Time `json:"since"`
	Err   string    `json:"error,omitempty"`
	Votes string    `json:"votes"`
}

// decisionValue is decision/<service>/<location>, written by the leader.
type decisionValue struct {
	Node     string    `json:"node,omitempty"`
	Servfail bool      `json:"servfail,omitempty"`
	Pinned   bool      `json:"pinned,omitempty"`
	AllDown  bool      `json:"all_down,omitempty"`
	Reason   string    `json:"reason"`
	By       string    `json:"by"`
	At       time.Time `json:"at"`
}

func (v decisionValue) decision() zones.Decision {
	return zones.Decision{Active: v.Node, Servfail: v.Servfail, Pinned: v.Pinned, AllDown: v.AllDown, Reason: v.Reason}
}

// pinValue is pin/<service>/<location>.
type pinValue struct {
	Node   string    `json:"node"`
	Force  bool      `json:"force,omitempty"`
	Start  time.Time `json:"start,omitzero"`
	Until  time.Time `json:"until,omitzero"`
	Key    string    `json:"key,omitempty"`
	From   string    `json:"from,omitempty"`
	At     time.Time `json:"at,omitzero"`
	Reason string    `json:"reason,omitempty"`
}

func (v pinValue) pin() zones.Pin {
	return zones.Pin{Node: v.Node, Force: v.Force, Start: v.Start, Until: v.Until, Reason: v.Reason, Key: v.Key, From: v.From, At: v.At}
}

func pinValueOf(p zones.Pin) pinValue {
	return pinValue{Node: p.Node, Force: p.Force, Start: p.Start, Until: p.Until, Reason: p.Reason, Key: p.Key, From: p.From, At: p.At}
}

// beatValue is beat, written by the leader every second.
type beatValue struct {
	Leader string    `json:"leader"`
	At     time.Time `json:"at"`
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own plain structs are encoded
	}
	return string(b)
}

func slicesSort(s []string) { slices.Sort(s) }
