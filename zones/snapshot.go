package zones

import (
	"sort"

	"github.com/miekg/dns"
)

// Snapshot is everything the query path needs, validated and immutable. A
// new one is built for every change (reload, health, pin) and published
// through an atomic pointer; a query reads exactly one.
type Snapshot struct {
	Config *Config
	Zones  []*Zone // sorted by origin, for stable summaries

	byOrigin map[string]*Zone
}

// Load reads the config at path and every zone it names, validates them all,
// and returns the snapshot or every problem found.
func Load(path string) (*Snapshot, error) {
	cfg, err := ParseConfig(path)
	if err != nil {
		return nil, err
	}
	return Build(cfg, path)
}

// Build loads the zones of an already parsed config. display is the config
// path as the operator wrote it, used in messages.
func Build(cfg *Config, display string) (*Snapshot, error) {
	var errs ErrorList
	s := &Snapshot{Config: cfg, byOrigin: map[string]*Zone{}}
	for _, zc := range cfg.Zones {
		z, err := LoadZone(zc.Origin, cfg.ZonePath(zc), zc.File)
		if err != nil {
			if l, ok := err.(ErrorList); ok {
				errs = append(errs, l...)
			} else {
				errs = append(errs, &Error{File: zc.File, Msg: err.Error()})
			}
			continue
		}
		s.Zones = append(s.Zones, z)
		s.byOrigin[z.Origin] = z
	}
	if len(errs) > 0 {
		return nil, errs
	}
	sort.Slice(s.Zones, func(i, j int) bool { return s.Zones[i].Origin < s.Zones[j].Origin })
	return s, nil
}

// FindZone returns the most specific zone containing name (canonical form),
// or nil when the name is in none of ours.
func (s *Snapshot) FindZone(name string) *Zone {
	for p := name; ; {
		if z, ok := s.byOrigin[p]; ok {
			return z
		}
		i, end := dns.NextLabel(p, 0)
		if end {
			if z, ok := s.byOrigin["."]; ok {
				return z
			}
			return nil
		}
		p = p[i:]
	}
}

// Warnings returns what `check` should point out without refusing.
func (s *Snapshot) Warnings() []string {
	var w []string
	for _, z := range s.Zones {
		for _, m := range z.Warnings {
			w = append(w, z.File+": "+m)
		}
	}
	return w
}
