package zones

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/failoverdns/failoverdns/zones/atomicfile"
)

// PinKey names what a pin applies to: a whole service (Location "") or one
// location of it.
type PinKey struct {
	Service  string `json:"service"`
	Location string `json:"location,omitempty"`
}

// Name is the admin record name of the pin: _pin.<service> or
// _pin.<location>._loc.<service>.
func (k PinKey) Name() string {
	if k.Location == "" {
		return "_pin." + k.Service
	}
	return "_pin." + k.Location + "._loc." + k.Service
}

// Pin holds a service (or one location of it) on one node.
type Pin struct {
	Node  string    `json:"node"`
	Force bool      `json:"force,omitempty"` // answer the node even while its checks fail
	Start time.Time `json:"start,omitzero"`  // at=: the pin takes effect then (planned maintenance)
	Until time.Time `json:"until,omitzero"`  // the pin lapses by itself then
	// Reason is the operator's why, for _status, the logs and the next
	// on-call engineer deciding whether removing the pin is safe.
	Reason string `json:"reason,omitempty"`
	// Who set it, for _status and the logs.
	Key    string    `json:"key,omitempty"`
	From   string    `json:"from,omitempty"`
	At     time.Time `json:"at,omitzero"`
	Static bool      `json:"-"` // from the zone file
}

// DormantPin is a dynamic pin kept but not applied, and why.
type DormantPin struct {
	Pin
	Why string `json:"why"`
}

// MaxPinReason bounds a pin's reason: it travels in TXT strings (255
// octets each) and in every _status answer.
const MaxPinReason = 200

// Text is the pin as its TXT record:
// "<node>[ force][ at=<RFC 3339>][ until=<RFC 3339>][ reason="…"]".
func (p Pin) Text() string {
	s := p.Node
	if p.Force {
		s += " force"
	}
	if !p.Start.IsZero() {
		s += " at=" + p.Start.UTC().Format(time.RFC3339)
	}
	if !p.Until.IsZero() {
		s += " until=" + p.Until.UTC().Format(time.RFC3339)
	}
	if p.Reason != "" {
		s += ` reason="` + p.Reason + `"`
	}
	return s
}

// Active reports whether the pin is in force at now: after its start (if
// scheduled) and before its until (if any).
func (p Pin) Active(now time.Time) bool {
	return (p.Start.IsZero() || !now.Before(p.Start)) && (p.Until.IsZero() || now.Before(p.Until))
}

// Lapsed reports whether the pin's until has passed at now: it is gone
// for good (a pin scheduled for later is not lapsed).
func (p Pin) Lapsed(now time.Time) bool { return !p.Until.IsZero() && !now.Before(p.Until) }

// Pending reports whether the pin is scheduled to take effect after now.
func (p Pin) Pending(now time.Time) bool { return !p.Start.IsZero() && now.Before(p.Start) }

// ParsePin reads a pin's TXT strings. The words are the node name, then
// optionally "force", "at=<RFC 3339 time>", "until=<RFC 3339 time>" and
// reason="<text>" (quoted when it has spaces), in any order.
func ParsePin(txt []string) (Pin, error) {
	words, err := pinWords(strings.Join(txt, " "))
	if err != nil {
		return Pin{}, err
	}
	if len(words) == 0 {
		return Pin{}, errors.New(`empty pin: write the node name, e.g. "sems2" or "sems2 force until=2026-11-21T18:00:00Z reason=\"patching sems1\""`)
	}
	whole := strings.Join(txt, " ")
	p := Pin{Node: words[0]}
	for _, w := range words[1:] {
		k, v, _ := strings.Cut(w, "=")
		switch {
		case w == "force":
			p.Force = true
		case k == "at" || k == "until":
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return Pin{}, fmt.Errorf("pin %q: %q is not an RFC 3339 time (e.g. %s=2026-11-21T18:00:00Z)", whole, w, k)
			}
			if k == "at" {
				p.Start = t
			} else {
				p.Until = t
			}
		case k == "reason":
			if v == "" || len(v) > MaxPinReason {
				return Pin{}, fmt.Errorf("pin %q: the reason must be 1 to %d characters", whole, MaxPinReason)
			}
			p.Reason = v
		default:
			return Pin{}, fmt.Errorf("pin %q: unknown word %q: a pin is \"<node>\", optionally followed by \"force\", \"at=<RFC 3339 time>\", \"until=<RFC 3339 time>\" and reason=\"<text>\"", whole, w)
		}
	}
	if !p.Start.IsZero() && !p.Until.IsZero() && !p.Start.Before(p.Until) {
		return Pin{}, fmt.Errorf("pin %q: at= must come before until=", whole)
	}
	return p, nil
}

// pinWords splits on spaces, keeping a double-quoted value whole
// (reason="patch sems1") and dropping its quotes. TXT data arrives in
// presentation form (miekg/dns escapes a quote on the wire as \", and a
// zone file writes it so), so \" is a quote too, and \X is X.
func pinWords(s string) ([]string, error) {
	var out []string
	var b strings.Builder
	quoted, in, escaped := false, false, false
	for _, r := range s {
		switch {
		case escaped:
			escaped = false
			if r == '"' {
				quoted = !quoted
			} else {
				b.WriteRune(r)
			}
			in = true
		case r == '\\':
			escaped = true
		case r == '"':
			quoted = !quoted
			in = true
		case (r == ' ' || r == '\t') && !quoted:
			if in {
				out = append(out, b.String())
				b.Reset()
				in = false
			}
		default:
			b.WriteRune(r)
			in = true
		}
	}
	if quoted {
		return nil, fmt.Errorf("pin %q: a quote is not closed (write reason=\"patching sems1\")", s)
	}
	if in {
		out = append(out, b.String())
	}
	return out, nil
}

// PinKeyOf parses an admin name relative to a snapshot: _pin.<service> or
// _pin.<location>._loc.<service>. ok is false when name is not the pin name
// of a configured service (and location).
func (s *Snapshot) PinKeyOf(name string) (PinKey, bool) {
	return s.adminKey(name, "_pin.")
}

// StatusKeyOf is PinKeyOf for _status names.
func (s *Snapshot) StatusKeyOf(name string) (PinKey, bool) {
	return s.adminKey(name, "_status.")
}

func (s *Snapshot) adminKey(name, prefix string) (PinKey, bool) {
	name = strings.ToLower(name)
	if !strings.HasPrefix(name, prefix) {
		return PinKey{}, false
	}
	rest := name[len(prefix):]
	if svc := s.byService[rest]; svc != nil {
		return PinKey{Service: rest}, true
	}
	loc, svcName, ok := strings.Cut(rest, "._loc.")
	if !ok || s.byService[svcName] == nil || s.LocationIndex(loc) < 1 {
		return PinKey{}, false
	}
	return PinKey{Service: svcName, Location: loc}, true
}

// IsAdminName reports whether name is an admin record name (_pin or _status,
// configured or not): such names are answered to admin_nets only.
func IsAdminName[T ~string | ~[]byte](name T) bool {
	// Most names asked do not start with '_': one comparison for them on
	// the fast path, which asks this for every name of no service.
	if len(name) == 0 || name[0] != '_' {
		return false
	}
	return hasPrefixFold(name, "_pin.") || hasPrefixFold(name, "_status.")
}

// hasPrefixFold reports whether s starts with prefix, lower-case ASCII,
// in any letter case.
func hasPrefixFold[T ~string | ~[]byte](s T, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := range len(prefix) {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// CheckPin validates a pin for key against this snapshot: the node must be
// one of the service's nodes.
func (s *Snapshot) CheckPin(k PinKey, p Pin) error {
	svc := s.byService[k.Service]
	if svc == nil {
		return fmt.Errorf("%s: no such service", k.Name())
	}
	for _, n := range svc.Config.Nodes {
		if n == p.Node {
			return nil
		}
	}
	return fmt.Errorf("%s: node %q is not one of the service's nodes (%s)", k.Name(), p.Node, strings.Join(svc.Config.Nodes, ", "))
}

// StaticPins returns the pins set in zone files.
func (s *Snapshot) StaticPins() map[PinKey]Pin { return s.staticPins }

// bindStaticPins reads _pin TXT records from the zones. A _pin name that
// names no service, or a pin naming an unknown node, is a load error: a pin
// that silently does nothing is worse than none.
func (s *Snapshot) bindStaticPins(errs *ErrorList) {
	s.staticPins = map[PinKey]Pin{}
	for _, z := range s.Zones {
		for _, n := range z.admin {
			name := n.Name
			if len(n.sets) == 0 {
				continue
			}
			line := int(n.sets[0].line)
			if hasPrefixFold(name, "_status.") {
				errs.add(z.File, line, "%s: _status records are generated by the server; remove it from the zone file", name)
				continue
			}
			k, ok := s.PinKeyOf(name)
			if !ok {
				errs.add(z.File, line, "%s: not the pin of a configured service: write _pin.<service> or _pin.<location>._loc.<service>", name)
				continue
			}
			txt := n.RRs(dnsTypeTXT)
			if len(txt) != 1 || len(n.sets) != 1 {
				errs.add(z.File, line, "%s: a pin is exactly one TXT record and nothing else", name)
				continue
			}
			p, err := ParsePin(txtStrings(txt[0]))
			if err == nil {
				err = s.CheckPin(k, p)
			}
			if err != nil {
				errs.add(z.File, n.line(dnsTypeTXT), "%v", err)
				continue
			}
			p.Static = true
			s.staticPins[k] = p
		}
	}
}

// PinStore keeps dynamic pins durable in state_dir: a pin acknowledged to
// nsupdate must survive a crash the next instant.
type PinStore struct {
	dir string
	// Hook, when set (tests only), runs between the steps of a save
	// ("write", "fsync", "rename") so a crash at each point can be tested.
	Hook func(step string)
	// Swept names the temporary files of saves a crash interrupted, which
	// OpenPinStore removed (for the caller to log).
	Swept []string
}

const pinFile = "pins.json"

// ErrCorruptState marks a pin state file that cannot be read back.
var ErrCorruptState = errors.New("corrupt pin state")

// NewPinStore returns a store for dir without reading it (-ignore-state).
func NewPinStore(dir string) *PinStore { return &PinStore{dir: dir} }

type pinFileFormat struct {
	Version int          `json:"version"`
	Pins    []pinFileRow `json:"pins"`
}

type pinFileRow struct {
	PinKey
	Pin
}

// OpenPinStore opens (creating if needed) the state folder and reads the
// pins saved there. A file that cannot be parsed is an error: starting
// without the pins the operator set would silently change answers.
func OpenPinStore(dir string) (*PinStore, map[PinKey]Pin, error) {
	st := &PinStore{dir: dir}
	path := filepath.Join(dir, pinFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		// Nothing was ever saved here (ENOTDIR: a path component is a
		// file, so no pin can have been saved either). Whether saving
		// works is the Writable check's concern.
		st.sweep()
		return st, map[PinKey]Pin{}, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	var f pinFileFormat
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, nil, fmt.Errorf("%s: %w (%v): fix or remove the file, or start with -ignore-state to drop the saved pins", path, ErrCorruptState, err)
	}
	if f.Version != 1 {
		return nil, nil, fmt.Errorf("%s: %w: version %d is not supported (want 1): fix or remove the file, or start with -ignore-state to drop the saved pins", path, ErrCorruptState, f.Version)
	}
	pins := make(map[PinKey]Pin, len(f.Pins))
	for _, r := range f.Pins {
		if r.Service == "" || r.Node == "" {
			return nil, nil, fmt.Errorf("%s: %w: a pin without service or node; fix or remove the file, or start with -ignore-state", path, ErrCorruptState)
		}
		pins[r.PinKey] = r.Pin
	}
	st.sweep()
	return st, pins, nil
}

// sweep removes what saves interrupted by a crash left: their temporary
// files and the link to the previous pins. pins.json is always whole (it is
// only ever replaced by a rename), so none of them holds anything it lacks.
// Only OpenPinStore calls it, before any save of this process can run.
func (st *PinStore) sweep() {
	left, _ := filepath.Glob(filepath.Join(st.dir, pinFile+".tmp-*"))
	for _, name := range left {
		if os.Remove(name) == nil {
			st.Swept = append(st.Swept, filepath.Base(name))
		}
	}
}

// Save writes pins durably: temp file, fsync, rename, fsync of the folder.
// After it returns nil the pins survive a crash; if it fails, the file on
// disk still holds the previous pins.
func (st *PinStore) Save(pins map[PinKey]Pin) error {
	f := pinFileFormat{Version: 1, Pins: make([]pinFileRow, 0, len(pins))}
	for k, p := range pins {
		f.Pins = append(f.Pins, pinFileRow{k, p})
	}
	sort.Slice(f.Pins, func(i, j int) bool {
		a, b := f.Pins[i].PinKey, f.Pins[j].PinKey
		return a.Service < b.Service || (a.Service == b.Service && a.Location < b.Location)
	})
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if err := WriteAtomic(st.dir, pinFile, b, st.hook); err != nil {
		return fmt.Errorf("saving pins: %w", err)
	}
	return nil
}

// WriteAtomic replaces dir/name with b durably (atomicfile.Write: temp
// file, fsync, rename, fsync of the folder). After it returns nil the
// content survives a crash; if it fails, the file still holds what it held
// before. hook (tests only, may be nil) runs between the steps ("write",
// "fsync", "rename").
func WriteAtomic(dir, name string, b []byte, hook func(step string)) error {
	return atomicfile.Write(dir, name, b, hook)
}

// Writable reports whether a pin could be saved now, for a warning at start.
func (st *PinStore) Writable() error {
	if err := os.MkdirAll(st.dir, 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(st.dir, ".probe-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

func (st *PinStore) hook(step string) {
	if st.Hook != nil {
		st.Hook(step)
	}
}
