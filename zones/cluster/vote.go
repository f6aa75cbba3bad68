package cluster

import (
	"fmt"
	"slices"
	"time"
)

// vote derives a node's agreed health from the observations of the live
// instances (README "Running several nameservers", "How it works"): up when a strict majority of those that
// observe it see it up, down on a strict majority the other way; a tie keeps
// the previous state, so one instance more or less never flips a node by
// itself. since is kept while the state holds, across leader changes, so
// failback_after counts from the real recovery. ok is false when nothing is
// known about the node yet (no observer and no previous state).
func vote(prev healthValue, hadPrev bool, obs map[string]obsValue, live map[string]bool, now time.Time) (v healthValue, ok bool) {
	var up, total int
	var downBy []string
	var upSince, downSince []time.Time
	for inst, o := range obs {
		if !live[inst] {
			continue
		}
		total++
		if o.Up {
			up++
			upSince = append(upSince, o.Since)
		} else {
			downBy = append(downBy, inst)
			downSince = append(downSince, o.Since)
		}
	}
	votes := fmt.Sprintf("%d/%d", up, total)
	var isUp bool
	switch {
	case 2*up > total:
		isUp = true
	case 2*(total-up) > total:
		isUp = false
	case hadPrev:
		isUp = prev.Up // a tie (or no observer): keep what was agreed
	default:
		return healthValue{Votes: votes}, false
	}
	v = healthValue{Up: isUp, Since: now, Votes: votes}
	switch {
	case hadPrev && prev.Up == isUp:
		v.Since = prev.Since
	case isUp:
		v.Since = majoritySince(upSince, total, now)
	default:
		v.Since = majoritySince(downSince, total, now)
	}
	if !isUp {
		slices.Sort(downBy)
		if len(downBy) > 0 {
			v.Err = fmt.Sprintf("%s (seen by %s)", obs[downBy[0]].Err, downBy[0])
		} else {
			v.Err = prev.Err
		}
	}
	return v, true
}

// majoritySince is when the agreed state began: the moment the observers
// that agree reached a strict majority of total, by their own clocks (each
// observation says since when). So failback_after counts from the node's
// real recovery even when the leader that counts it was elected later.
// Unknown times, or a time ahead of the leader's clock, give now.
func majoritySince(since []time.Time, total int, now time.Time) time.Time {
	k := total/2 + 1
	known := make([]time.Time, 0, len(since))
	for _, t := range since {
		if !t.IsZero() {
			known = append(known, t)
		}
	}
	if len(known) < k {
		return now
	}
	slices.SortFunc(known, time.Time.Compare)
	if t := known[k-1]; t.Before(now) {
		return t
	}
	return now
}
