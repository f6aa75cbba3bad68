package dnsserver

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/failoverdns/failoverdns/zones"
)

// rrl is response rate limiting for UDP: each client prefix (/24, /56 by
// default) gets rate responses per second; beyond that responses are
// dropped, except every slip-th, which is sent truncated so a real client
// behind a spoofed flood can still retry over TCP. UDP sources are
// unverified, so this is what keeps the server from being an amplifier.
//
// The table is a fixed array of atomic words, one per hash slot: no lock,
// no allocation, bounded memory. A slot packs the second (32 bits), a tag
// of the prefix (16) and the count (16); two prefixes that collide in a slot
// in the same second reset each other, which can only let responses through,
// never block a client that is under its rate.
type rrl struct {
	cfg   zones.RRLConfig
	slip  uint64
	seed  maphash.Seed
	slots [1 << 16]atomic.Uint64
}

func newRRL(cfg *zones.RRLConfig) *rrl {
	if cfg == nil {
		return nil
	}
	return &rrl{cfg: *cfg, slip: uint64(*cfg.Slip), seed: maphash.MakeSeed()}
}

type rrlVerdict uint8

const (
	rrlAllow rrlVerdict = iota
	rrlDrop
	rrlSlip
)

func (r *rrl) check(addr netip.Addr, sec uint32) rrlVerdict {
	var key [17]byte
	if addr.Is4() {
		p, _ := addr.Prefix(r.cfg.IPv4Prefix)
		a := p.Addr().As4()
		copy(key[:], a[:])
		key[16] = 4
	} else {
		p, _ := addr.Prefix(r.cfg.IPv6Prefix)
		key = [17]byte(append(p.Addr().AsSlice(), 6))
	}
	h := maphash.Bytes(r.seed, key[:])
	slot := &r.slots[h&(1<<16-1)]
	tag := uint64(h>>48) & 0xFFFF
	for {
		old := slot.Load()
		var count uint64
		if old>>32 == uint64(sec) && (old>>16)&0xFFFF == tag {
			count = old & 0xFFFF
		}
		if count < 0xFFFF {
			count++
		}
		if slot.CompareAndSwap(old, uint64(sec)<<32|tag<<16|count) {
			if count <= uint64(r.cfg.ResponsesPerSecond) {
				return rrlAllow
			}
			if r.slip > 0 && (count-uint64(r.cfg.ResponsesPerSecond))%r.slip == 0 {
				return rrlSlip
			}
			return rrlDrop
		}
	}
}

// truncated is the slip answer: the query's header and question with QR and
// TC set and nothing else, which tells a real client to retry over TCP.
func truncated(pkt []byte, out []byte) []byte {
	// Never to a response; find the end of the question; without one, say
	// nothing.
	if !mayAnswer(pkt) || binary.BigEndian.Uint16(pkt[4:]) != 1 {
		return nil
	}
	off := 12
	for off < len(pkt) {
		l := int(pkt[off])
		if l == 0 {
			off++
			break
		}
		if l > 63 {
			return nil
		}
		off += 1 + l
	}
	if off+4 > len(pkt) {
		return nil
	}
	out = append(out, pkt[:2]...)
	out = append(out, 0x80|0x02|(pkt[2]&0x79), 0) // QR, TC; opcode and RD kept
	out = append(out, 0, 1, 0, 0, 0, 0, 0, 0)
	return append(out, pkt[12:off+4]...)
}

// admit applies response rate limiting to one UDP packet from client,
// counting what it holds back. admin_nets are never limited. now is
// monoNow(): only which second it falls in matters.
func (s *Server) admit(p *published, client netip.Addr, now time.Duration) rrlVerdict {
	rl := p.fast.rrl
	if rl == nil || p.snap.Config.Server.IsAdmin(client) {
		return rrlAllow
	}
	v := rl.check(client, uint32(now/time.Second))
	switch v {
	case rrlDrop:
		s.metrics.rrlDropped.Inc()
	case rrlSlip:
		s.metrics.rrlSlipped.Inc()
	}
	return v
}
