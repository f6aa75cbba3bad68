package zones

import (
	"fmt"
	"strings"
)

// Summary describes a loaded snapshot for `failoverdns check`.
func Summary(s *Snapshot) string {
	var b strings.Builder
	c := s.Config
	fmt.Fprintf(&b, "config %s: OK\n", c.File)
	fmt.Fprintf(&b, "listen: %s (udp+tcp), EDNS payload %d\n", strings.Join(c.Server.Listen, ", "), c.Server.UDPSize)
	fmt.Fprintf(&b, "zones: %d\n", len(s.Zones))
	for _, z := range s.Zones {
		fmt.Fprintf(&b, "  %s  %s  serial %d, %d records, %d names\n", z.Origin, z.File, z.SOA.Serial, z.RecordsLen, len(z.nodes))
	}
	return b.String()
}
