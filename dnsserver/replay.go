package dnsserver

import (
	"encoding/hex"
	"strings"
	"sync"
)

// fudgeLimit is the most clock skew, in seconds, a signed request may have,
// whatever fudge it names: the request's fudge is the sender's to choose,
// and one of 65535 would keep a captured UPDATE valid for 18 hours. 300 s is
// RFC 8945's recommendation and the fudge this server signs with.
const fudgeLimit = 300

// replayMax bounds the MACs remembered per key. Each stays for at most
// 2×fudgeLimit (a request may be signed up to fudgeLimit ahead of our
// clock), so this allows a key about 16 UPDATEs a second, sustained, which
// no operator reaches; a runaway script that does is refused until the
// oldest expire, rather than the guard forgetting MACs that could still be
// replayed.
const replayMax = 10000

// replayGuard refuses a signed request seen before. A captured UPDATE
// replays as the same bytes, so the same MAC (the signature covers the
// original ID and the time signed); once its time signed is more than
// fudgeLimit away from our clock it is refused as BADTIME, so a MAC needs
// remembering only until then. Only requests whose signature verified are
// remembered: only a key holder can add to the state, which is bounded per
// key by replayMax.
type replayGuard struct {
	mu   sync.Mutex
	max  int                            // 0 = replayMax
	keys map[string]map[[16]byte]uint64 // key name → MAC prefix → expiry (unix s)
}

// replayVerdict is what first says about a request.
type replayVerdict uint8

const (
	replayFirst replayVerdict = iota // never seen: remembered now
	replaySeen                       // the same MAC was accepted before
	replayFull                       // too many MACs of this key are still valid
)

// macKey is a MAC's first 16 bytes: a replay carries the same MAC, and two
// different requests sharing 128 bits of an HMAC does not happen.
func macKey(mac string) [16]byte {
	var k [16]byte
	b, err := hex.DecodeString(mac)
	if err != nil {
		b = []byte(strings.ToLower(mac))
	}
	copy(k[:], b)
	return k
}

// first records the request signed with key at signed (unix s) with mac, as
// of now, and reports whether it was new.
func (g *replayGuard) first(key, mac string, signed, now uint64) replayVerdict {
	g.mu.Lock()
	defer g.mu.Unlock()
	key = strings.ToLower(key)
	if g.keys == nil {
		g.keys = map[string]map[[16]byte]uint64{}
	}
	seen := g.keys[key]
	if seen == nil {
		seen = map[[16]byte]uint64{}
		g.keys[key] = seen
	}
	k := macKey(mac)
	if exp, ok := seen[k]; ok && exp >= now {
		return replaySeen
	}
	limit := g.max
	if limit <= 0 {
		limit = replayMax
	}
	if len(seen) >= limit {
		for m, exp := range seen {
			if exp < now {
				delete(seen, m)
			}
		}
		if len(seen) >= limit {
			return replayFull
		}
	}
	seen[k] = signed + fudgeLimit
	return replayFirst
}

// forget drops a MAC first remembered for a request that was then not
// processed (no UPDATE slot free): the client's retransmission of the same
// bytes is not a replay.
func (g *replayGuard) forget(key, mac string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.keys[strings.ToLower(key)], macKey(mac))
}
