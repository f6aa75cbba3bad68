package zones_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/zones"
)

// TestLoadReusing: an unchanged config is not decoded again, but its zones
// are read again, the snapshot gets its own config, and a changed config is
// decoded (and validated) in full.
func TestLoadReusing(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.toml")
	zonePath := filepath.Join(dir, "z.zone")
	write := func(path, s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const cfg = "[server]\nlisten = [\"127.0.0.1:0\"]\nudp_size = 1400\n[[zone]]\norigin = \"r.test.\"\nfile = \"z.zone\"\n"
	zone := func(addr string) string {
		return "$TTL 60\n@ SOA ns1 h 1 2 3 4 5\n@ NS ns1\nns1 A 127.0.0.1\nwww A " + addr + "\n"
	}
	write(cfgPath, cfg)
	write(zonePath, zone("192.0.2.1"))
	first, err := zones.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	www := func(s *zones.Snapshot) string {
		r := s.FindZone("www.r.test.").Lookup("www.r.test.", dns.TypeA, nil)
		if len(r.Answer) != 1 {
			t.Fatalf("www: %v", r.Answer)
		}
		return r.Answer[0].(*dns.A).A.String()
	}

	write(zonePath, zone("192.0.2.2"))
	second, err := zones.LoadReusing(cfgPath, first.Config)
	if err != nil {
		t.Fatal(err)
	}
	if got := www(second); got != "192.0.2.2" {
		t.Errorf("zone edit with an unchanged config: www = %s, want the new 192.0.2.2", got)
	}
	if second.Config == first.Config {
		t.Error("the reloaded snapshot shares the previous config pointer")
	}
	if second.Config.Server.UDPSize != 1400 {
		t.Errorf("reused config lost its values: udp_size %d", second.Config.Server.UDPSize)
	}

	// A broken zone is still caught with an unchanged config.
	write(zonePath, "$TTL 60\n@ NS ns1\n")
	if _, err := zones.LoadReusing(cfgPath, second.Config); err == nil || !strings.Contains(err.Error(), "no SOA") {
		t.Errorf("a zone without SOA reloaded with an unchanged config: err = %v", err)
	}

	// A changed config is decoded and validated again.
	write(zonePath, zone("192.0.2.3"))
	write(cfgPath, strings.Replace(cfg, "udp_size = 1400", "udp_size = 9", 1))
	if _, err := zones.LoadReusing(cfgPath, second.Config); err == nil || !strings.Contains(err.Error(), "udp_size") {
		t.Errorf("a changed, invalid config was not validated again: err = %v", err)
	}
	write(cfgPath, strings.Replace(cfg, "udp_size = 1400", "udp_size = 1300", 1))
	third, err := zones.LoadReusing(cfgPath, second.Config)
	if err != nil {
		t.Fatal(err)
	}
	if third.Config.Server.UDPSize != 1300 || www(third) != "192.0.2.3" {
		t.Errorf("changed config: udp_size %d, www %s; want 1300 and 192.0.2.3", third.Config.Server.UDPSize, www(third))
	}
}
