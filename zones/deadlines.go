package zones

import "time"

// deadlines is each service's next deadline (a hold-down, a pin's at= or
// until=, a TTL countdown), by Service.index. A dense slice rather than a
// map: a fail-back of 100,000 services sets 100,000 deadlines and the
// failover after it clears them, and the map's inserts and deletes were a
// fifth of that failover's time to publish. Deadlines are kept as
// monotonic offsets from epoch (8 bytes a service), so a wall-clock step
// moves none of them.
type deadlines struct {
	epoch time.Time
	at    []time.Duration // offset from epoch + 1; 0: none
	n     int             // entries set
}

// reset sizes d for n services, none with a deadline.
func (d *deadlines) reset(n int) {
	if d.epoch.IsZero() {
		d.epoch = time.Now()
	}
	if len(d.at) == n {
		clear(d.at)
	} else {
		d.at = make([]time.Duration, n)
	}
	d.n = 0
}

// put records service i's next deadline (a zero t clears it) and returns
// by how much the count of deadlines set changed, for the caller to add to
// n: deciders running side by side each put their own services'.
func (d *deadlines) put(i int, t time.Time) (delta int) {
	was := d.at[i] != 0
	if t.IsZero() {
		d.at[i] = 0
	} else {
		// A deadline before the epoch (a pin's past at=) is due at
		// once, as the epoch is.
		d.at[i] = max(t.Sub(d.epoch), 0) + 1
	}
	switch now := d.at[i] != 0; {
	case now && !was:
		return 1
	case !now && was:
		return -1
	}
	return 0
}

// due calls f for every service whose deadline is not after now.
func (d *deadlines) due(now time.Time, f func(i int)) {
	if d.n == 0 {
		return
	}
	off := now.Sub(d.epoch) + 1
	for i, at := range d.at {
		if at != 0 && at <= off {
			f(i)
		}
	}
}

// first is the earliest deadline, zero when there is none.
func (d *deadlines) first() time.Time {
	if d.n == 0 {
		return time.Time{}
	}
	var m time.Duration
	for _, at := range d.at {
		if at != 0 && (m == 0 || at < m) {
			m = at
		}
	}
	return d.epoch.Add(m - 1)
}
