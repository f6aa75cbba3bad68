package cluster

import (
	"fmt"
	"slices"
	"time"
)

// vote derives a node's agreed health from the observations of the live
// instances (CLUSTER.md "Model"): up when a strict majority of those that
// observe it see it up, down on a strict majority the other way; a tie keeps
// the previous state, so one instance more or less never flips a node by
// itself. since is kept while the state holds, across leader changes, so
// failback_after counts from the real recovery. ok is false when nothing is
// known about the node yet (no observer and no previous state).
func vote(prev healthValue, hadPrev bool, obs map[string]obsValue, live map[string]bool, now time.Time) (v healthValue, ok bool) {
	var up, total int
	var downBy []string
	for inst, o := range obs {
		if !live[inst] {
			continue
		}
		total++
		if o.Up {
			up++
		} else {
			downBy = append(downBy, inst)
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
	if hadPrev && prev.Up == isUp {
		v.Since = prev.Since
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
