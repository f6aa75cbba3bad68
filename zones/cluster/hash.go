package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"hash/fnv"
	"io"
	"slices"

	"github.com/failoverdns/failoverdns/zones"
)

// shards splits services for the config comparison: members publish one
// hash per shard, so a leader that finds a member with another config
// freezes only the shards that differ, not every service.
const shards = 64

func shardOf(service string) int {
	h := fnv.New32a()
	io.WriteString(h, service)
	return int(h.Sum32() % shards)
}

// configHash identifies everything a decision depends on: each service's
// order, locations, failback and all-down rules, and its nodes' addresses
// and checks. Zone data, listen addresses and the like may differ between
// members without harm.
func configHash(s *zones.Snapshot) (all string, perShard []string) {
	hs := make([]hash.Hash, shards)
	for i := range hs {
		hs[i] = sha256.New()
	}
	for _, svc := range s.Services {
		c := svc.Config
		w := hs[shardOf(svc.Name)]
		fmt.Fprintf(w, "service %s ttl=%v policy=%s nodes=%q failback=%s after=%v alldown=%s\n",
			svc.Name, deref(c.TTL), c.Policy, c.Nodes, c.Failback, durOf(c.FailbackAfter), c.WhenAllDown)
		locs := make([]string, 0, len(c.Locations))
		for l := range c.Locations {
			locs = append(locs, l)
		}
		slices.Sort(locs)
		for _, l := range locs {
			fmt.Fprintf(w, " loc %s=%q\n", l, c.Locations[l])
		}
		for _, n := range c.Nodes {
			nc := s.Node(n)
			if nc == nil {
				continue
			}
			fmt.Fprintf(w, " node %s a=%s a6=%s check=%+v\n", n, nc.Address.String(), nc.Address6.String(), nc.Check)
		}
	}
	for i := 1; i < s.LocationCount(); i++ {
		// A location without an order of its own follows the default
		// view: which locations exist changes which views are decided.
		for j := range hs {
			fmt.Fprintf(hs[j], "location %s\n", s.LocationName(i))
		}
	}
	total := sha256.New()
	perShard = make([]string, shards)
	for i, h := range hs {
		sum := h.Sum(nil)
		perShard[i] = hex.EncodeToString(sum[:4])
		total.Write(sum)
	}
	return hex.EncodeToString(total.Sum(nil)[:8]), perShard
}

func deref(p *int) int {
	if p == nil {
		return -1
	}
	return *p
}

func durOf(d *zones.Duration) string {
	if d == nil {
		return "-"
	}
	return d.String()
}
