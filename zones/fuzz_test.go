package zones_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/failoverdns/failoverdns/dnsserver/testenv"
	"github.com/failoverdns/failoverdns/zones"
	"github.com/failoverdns/failoverdns/zones/fuzzseed"
)

// Fuzz targets for what an operator writes: the TOML config and the zone
// files. Seed corpora live in the top-level testdata/fuzz/<FuzzName>/ (see
// zones/fuzzseed), not in zones/testdata.

// fzZoneText is the valid zone file next to every fuzzed config, as
// "fuzz.zone", for origin fuzz.test.
var fzZoneText = testenv.ZoneHead("fuzz.test.", 2026112101, "127.0.0.1") + `www      IN A     192.0.2.80
alias    IN CNAME keys.fuzz.test.
sub      IN NS    ns.sub.fuzz.test.
ns.sub   IN A     192.0.2.53
`

// FuzzConfig loads arbitrary TOML as a config (with a valid zone file next
// to it): it never panics, every error is a *zones.Error naming a file (and
// a line that exists), and a config that loads answers every service with at
// most one address per type.
func FuzzConfig(f *testing.F) {
	fuzzseed.Add(f, "FuzzConfig")
	f.Add([]byte("[server]\nlisten = [\"127.0.0.1:0\"]\n\n[[zone]]\norigin = \"fuzz.test.\"\nfile = \"fuzz.zone\"\n"))
	dir := f.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "fuzz.zone"), []byte(fzZoneText), 0o644); err != nil {
		f.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "failoverdns.toml")
	f.Fuzz(func(t *testing.T, src []byte) {
		if err := os.WriteFile(cfgPath, src, 0o644); err != nil {
			t.Fatal(err)
		}
		// A zone file outside the folder could be /dev/zero or a FIFO: the
		// fuzzer must not read the machine's files.
		if cfg, err := zones.ParseConfig(cfgPath); err == nil {
			for _, z := range cfg.Zones {
				rel, err := filepath.Rel(dir, cfg.ZonePath(z))
				if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
					return
				}
			}
		}
		snap, err := zones.Load(cfgPath)
		if err != nil {
			if snap != nil {
				t.Errorf("Load returned a snapshot and an error")
			}
			lines := bytes.Count(src, []byte("\n")) + 1
			for _, e := range zones.Errors(err) {
				fzCheckError(t, e, cfgPath, lines)
			}
			return
		}
		if snap == nil {
			t.Fatal("Load returned neither a snapshot nor an error")
		}
		fzCheckSnapshot(t, snap)
	})
}

// TestConfigZoneReadErrorNamesFileOnce: a missing zone file is reported at
// the config line naming it, with the path as written and as resolved, and
// the system's reason once. Found by FuzzConfig's seed missing-zone-file.
func TestConfigZoneReadErrorNamesFileOnce(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.toml")
	src := "[server]\nlisten = [\"127.0.0.1:0\"]\n\n[[zone]]\norigin = \"fuzz.test.\"\nfile = \"nope.zone\"\n"
	if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := zones.Load(cfg)
	errs := zones.Errors(err)
	want := cfg + ":6: zone fuzz.test.: cannot read file \"nope.zone\" (resolved to " + filepath.Join(dir, "nope.zone") + "): no such file or directory;"
	if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), want) || strings.Count(errs[0].Error(), "no such file") != 1 {
		t.Fatalf("errors %q, want one starting %q", errs, want)
	}
}

// fzCheckError checks one load error: a *zones.Error with a file, a
// message, and for the config itself a line inside it.
func fzCheckError(t *testing.T, e error, cfgPath string, lines int) {
	t.Helper()
	var ze *zones.Error
	if !errors.As(e, &ze) {
		t.Fatalf("error %q (%T) is not a *zones.Error", e, e)
	}
	if ze.File == "" || strings.TrimSpace(ze.Msg) == "" || ze.Line < 0 {
		t.Fatalf("error %#v: want a file, a message and a line >= 0", ze)
	}
	want := ze.File + ": "
	if ze.Line > 0 {
		want = fmt.Sprintf("%s:%d: ", ze.File, ze.Line)
	}
	if !strings.HasPrefix(e.Error(), want) {
		t.Fatalf("error %q does not start with %q", e.Error(), want)
	}
	if strings.HasPrefix(ze.Msg, ze.File+":") {
		t.Fatalf("error %q names its file twice", e.Error())
	}
	if ze.File == cfgPath && ze.Line > lines {
		t.Fatalf("error %q names line %d of a %d-line file", e.Error(), ze.Line, lines)
	}
}

// fzCheckSnapshot checks the invariants of a loaded snapshot: every service
// has a zone and answers at most one A and one AAAA in every view.
func fzCheckSnapshot(t *testing.T, snap *zones.Snapshot) {
	t.Helper()
	for _, svc := range snap.Services {
		if svc.Zone == nil || len(svc.Config.Nodes) == 0 {
			t.Fatalf("service %s: zone %v, nodes %v", svc.Name, svc.Zone, svc.Config.Nodes)
		}
		for loc := range snap.LocationCount() {
			for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
				rrs, dyn, _ := snap.Overlay(loc).RRset(svc.Name, qtype)
				if !dyn {
					t.Fatalf("service %s is not a dynamic name in view %d", svc.Name, loc)
				}
				if len(rrs) > 1 {
					t.Fatalf("service %s answers %d %s records in view %s; never more than one", svc.Name, len(rrs), dns.TypeToString[qtype], snap.LocationName(loc))
				}
			}
		}
		res := svc.Zone.Lookup(svc.Name, dns.TypeA, snap.Overlay(0))
		if n := len(res.Answer); n > 1 {
			t.Fatalf("lookup of service %s: %d records", svc.Name, n)
		}
	}
}

// FuzzZone parses arbitrary master files: ParseZone never panics, a zone it
// returns has its SOA, every error names the file, and lookups in a parsed
// zone never panic either.
func FuzzZone(f *testing.F) {
	fuzzseed.Add(f, "FuzzZone")
	f.Add([]byte(fzZoneText))
	f.Fuzz(func(t *testing.T, src []byte) {
		// Each $GENERATE line may expand to 65,536 records; loading is
		// linear (~7 µs a record), but a handful of them per input turns
		// fuzzing into minutes per input. Two still cover the directive.
		if bytes.Count(bytes.ToUpper(src), []byte("$GENERATE")) > 2 {
			t.Skip("more than two $GENERATE lines: slow, not interesting")
		}
		z, err := zones.ParseZone("fuzz.test.", "fuzz.zone", src)
		if err != nil {
			if z != nil {
				t.Errorf("ParseZone returned a zone and an error")
			}
			for _, e := range zones.Errors(err) {
				var ze *zones.Error
				if !errors.As(e, &ze) || ze.File != "fuzz.zone" || ze.Msg == "" {
					t.Fatalf("error %q (%T): want a *zones.Error for fuzz.zone", e, e)
				}
			}
			return
		}
		if z == nil || z.SOA == nil || z.NegSOA == nil {
			t.Fatalf("ParseZone succeeded without an SOA: %+v", z)
		}
		if z.Origin != "fuzz.test." || !strings.EqualFold(z.SOA.Hdr.Name, "fuzz.test.") {
			t.Fatalf("origin %q, SOA owner %q", z.Origin, z.SOA.Hdr.Name)
		}
		if z.NegSOA.Hdr.Ttl > z.SOA.Hdr.Ttl || z.NegSOA.Hdr.Ttl > z.SOA.Minttl {
			t.Fatalf("negative TTL %d above min(SOA TTL %d, MINIMUM %d)", z.NegSOA.Hdr.Ttl, z.SOA.Hdr.Ttl, z.SOA.Minttl)
		}
		res := z.Lookup("FUZZ.test.", dns.TypeSOA, nil)
		if res.Kind != zones.Success || len(res.Answer) != 1 {
			t.Fatalf("SOA lookup: %v %v", res.Kind, res.Answer)
		}
		for _, name := range []string{"www.fuzz.test.", "a.b.c.fuzz.test.", "*.fuzz.test.", "_pin.keys.fuzz.test."} {
			for _, qtype := range []uint16{dns.TypeA, dns.TypeANY, dns.TypeCNAME, dns.TypeDS, dns.TypeTXT} {
				z.Lookup(name, qtype, nil)
			}
		}
	})
}

// TestZoneLargeRRsetLoadTime: one RRset of 40,000 records (a one-line
// $GENERATE) must load in seconds. ParseZone checks each new record against
// every record already in its RRset (zonefile.go, dns.IsDuplicate in a
// loop), which is quadratic: about 1.2s for 8,000 records, 30s for 40,000,
// minutes for the 65,536 one $GENERATE line may produce. Found by FuzzZone
// (its workers stalled on such inputs).
func TestZoneLargeRRsetLoadTime(t *testing.T) {
	const n = 40000
	src := fmt.Sprintf("@ 3600 IN SOA ns1 hostmaster 1 7200 3600 1209600 300\n@ IN NS ns1\nns1 IN A 192.0.2.1\n$GENERATE 1-%d x TXT \"$\"\n", n)
	start := time.Now()
	z, err := zones.ParseZone("fuzz.test.", "fuzz.zone", []byte(src))
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if z.RecordsLen != n+3 {
		t.Fatalf("%d records, want %d", z.RecordsLen, n+3)
	}
	if took > 10*time.Second {
		t.Fatalf("a zone with one RRset of %d records took %v to load", n, took)
	}
	t.Logf("%d records in one RRset loaded in %v", n, took)
}
