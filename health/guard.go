package health

import (
	"slices"
	"time"
)

// Isolation is what a prober's reference targets (anchors) say about the
// prober itself. When every anchor fails too, the usual cause is the
// prober's own network, not the nodes.
type Isolation struct {
	// Isolated: every anchor is down.
	Isolated bool
	// AnchorOK is when an anchor last answered.
	AnchorOK time.Time
	// Err is one anchor's last error, for the log and _status.
	Err string
	// Held names the nodes whose fall is held: it came after the last
	// time an anchor answered, so it is not yet known to be the node's.
	Held []string
}

// Guard returns the node states to decide from, given the anchors'. With
// no anchors, nodes are as probed. Otherwise a node's fall counts only once
// an anchor has answered after it: a fall seen while no anchor answers may
// be the prober's own network failing (cut off from everything, or from
// the part of the network the nodes and anchors are in), and must not move
// traffic. Until then the node is reported up, as it was. The cost is one
// anchor probe interval of delay on a real fall.
func Guard(nodes, anchors map[string]State) (map[string]State, Isolation) {
	var iso Isolation
	if len(anchors) == 0 {
		return nodes, iso
	}
	names := make([]string, 0, len(anchors))
	for name := range anchors {
		names = append(names, name)
	}
	slices.Sort(names)
	down := 0
	for _, name := range names {
		a := anchors[name]
		if a.LastOK.After(iso.AnchorOK) {
			iso.AnchorOK = a.LastOK
		}
		if a.Checked && !a.Up {
			down++
			if iso.Err == "" {
				iso.Err = name + ": " + a.Last.Err
			}
		}
	}
	iso.Isolated = down == len(anchors)
	var out map[string]State
	for name, st := range nodes {
		if st.Checked && !st.Up && !st.Since.Before(iso.AnchorOK) {
			if out == nil {
				out = make(map[string]State, len(nodes))
				for n, s := range nodes {
					out[n] = s
				}
			}
			st.Up = true
			st.Since = iso.AnchorOK
			out[name] = st
			iso.Held = append(iso.Held, name)
		}
	}
	if out == nil {
		return nodes, iso
	}
	slices.Sort(iso.Held)
	return out, iso
}
