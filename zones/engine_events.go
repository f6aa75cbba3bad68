package zones

import "github.com/failoverdns/failoverdns/zones/events"

// The engine's typed events (OnEvent), beside its log lines: built here so
// engine.go keeps one line per log point.

func (e *Engine) emit(ev events.Event) {
	if e.onEvent != nil {
		e.onEvent(ev)
	}
}

// pinEvent reports a pin change at k: old is the pin text it replaces ("" for
// a new pin), p the pin now in force (when removed: only the key and
// address that removed it), why the cause ("update", "until passed",
// "cluster").
func (e *Engine) pinEvent(k PinKey, action events.Action, old string, p Pin, why string) {
	ev := events.Event{Kind: events.KindPin, Action: action, Service: k.Service, Location: k.Location, Old: old, New: p.Text(), Key: p.Key, From: p.From, Reason: why}
	if ev.Location == "" {
		ev.Location = e.base.LocationName(0)
	}
	e.emit(ev)
}

// allDownEvent reports a view entering (d.AllDown) or leaving an all-down
// episode.
func (e *Engine) allDownEvent(service, location string, d Decision) {
	ev := events.Event{Kind: events.KindAllDown, Action: events.ActionEnd, Service: service, Location: location, New: answerName(d), Reason: d.Reason}
	if d.AllDown {
		ev.Action = events.ActionStart
	}
	e.emit(ev)
}
