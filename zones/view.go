package zones

import "time"

// One owner for each question a reader asks about a service view: which
// location a name is, which order applies, whose decision is answered,
// which pin is in force. The engine, _status, /status and the status page
// all call these; none restates them.

// LocationIndex is the view index of a [[location]] by name: 1 for the
// first, 0 for "" or "default" (the default view) and for a name the
// config lacks.
func (s *Snapshot) LocationIndex(name string) int {
	for i, l := range s.Config.Locations {
		if l.Name == name {
			return i + 1
		}
	}
	return 0
}

// OrderOf is the order of view loc of svc: the location's own, or the
// default order where the location does not reorder the service.
func (svc *Service) OrderOf(loc int) []string {
	if loc > 0 && loc < len(svc.Orders) && svc.Orders[loc] != nil {
		return svc.Orders[loc]
	}
	return svc.Orders[0]
}

// PinAt is the pin in force at exactly k: a dynamic pin (dyn: the
// engine's, a snapshot's, or the pins an UPDATE's transaction reads)
// before the zone file's, and only while it is active (started, not
// lapsed). source is "dynamic" or "zone".
func PinAt(dyn, static map[PinKey]Pin, k PinKey, now time.Time) (p Pin, source string, ok bool) {
	if p, ok := dyn[k]; ok && p.Active(now) {
		return p, "dynamic", true
	}
	if p, ok := static[k]; ok && p.Active(now) {
		return p, "zone", true
	}
	return Pin{}, "", false
}

// PinOf is the pin in force for view loc of service: the location's own
// pin beats the service-wide one (at, the key it was found at, says which).
func PinOf(dyn, static map[PinKey]Pin, service, location string, now time.Time) (p Pin, at PinKey, source string, ok bool) {
	if location != "" {
		k := PinKey{Service: service, Location: location}
		if p, src, ok := PinAt(dyn, static, k, now); ok {
			return p, k, src, true
		}
	}
	k := PinKey{Service: service}
	p, source, ok = PinAt(dyn, static, k, now)
	return p, k, source, ok
}

// View is what a snapshot answers for one service view, with why.
type View struct {
	Service  *Service
	Loc      int    // the view asked for
	Location string // its name; "default" for the default view
	// DecidedBy is the view whose decision is answered: Loc, or 0 when
	// the location follows the default view (it neither reorders nor
	// pins the service).
	DecidedBy int
	Decision  Decision
	Order     []string // the order in force
	// Pin is the pin in force, PinKey where it was found (the view's own
	// or the service-wide one) and PinSource "dynamic" or "zone".
	Pin       Pin
	Pinned    bool
	PinKey    PinKey
	PinSource string
}

// ViewOf describes view loc of service as this snapshot answers it; ok is
// false for an unknown service.
func (s *Snapshot) ViewOf(service string, loc int, now time.Time) (View, bool) {
	svc := s.byService[service]
	if svc == nil {
		return View{}, false
	}
	if loc < 0 || loc >= len(svc.Orders) {
		loc = 0
	}
	v := View{Service: svc, Loc: loc, Location: s.LocationName(loc), DecidedBy: loc, Order: svc.OrderOf(loc)}
	d, ok := s.Decision(service, loc)
	if !ok {
		d, _ = s.Decision(service, 0)
		v.DecidedBy = 0
	}
	v.Decision = d
	loc0 := ""
	if loc > 0 {
		loc0 = v.Location
	}
	v.Pin, v.PinKey, v.PinSource, v.Pinned = PinOf(s.dynPins, s.staticPins, service, loc0, now)
	return v, true
}
