package zones

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestParseFastIdentical: the fast reader of common lines (parseFast) gives
// exactly what miekg's parser gives for every record: the same names, the
// same packed records in the same order, lines, flags, warnings, and the
// same errors word for word. Over the repository's zone files, the fuzz
// seeds, the bench's generated zone, and lines written to sit on each edge
// of what the fast reader takes.
func TestParseFastIdentical(t *testing.T) {
	type input struct {
		name, origin string
		src          []byte
	}
	var inputs []input
	for _, dir := range []string{"../testdata", "../testdata/fuzz/FuzzZone"} {
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && path != dir && strings.HasSuffix(dir, "testdata") && strings.HasPrefix(d.Name(), "fuzz") {
				return filepath.SkipDir
			}
			if d.IsDir() || !(strings.HasSuffix(path, ".zone") || strings.Contains(path, "FuzzZone")) {
				return nil
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			origin := strings.TrimSuffix(filepath.Base(path), ".zone") + "."
			for _, o := range []string{origin, "fuzz.test.", "check.test.", "."} {
				inputs = append(inputs, input{path + " at " + o, o, src})
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(inputs) < 40 {
		t.Fatalf("only %d inputs: the zone files moved?", len(inputs))
	}

	var scale bytes.Buffer
	scale.WriteString("$ORIGIN zs.test.\n$TTL 3600\n@ IN SOA ns1.zs.test. hostmaster.zs.test. 1 7200 3600 1209600 300\n@ IN NS ns1.zs.test.\nns1 IN A 192.0.2.1\n")
	for i := range 5000 {
		fmt.Fprintf(&scale, "h%07d IN A 10.%d.%d.%d\n", i, i/65536%256, i/256%256, i%256)
	}
	inputs = append(inputs, input{"generated", "zs.test.", scale.Bytes()})

	// Records for miekg's parser, blank owners and errors on both sides
	// of the reader's batch boundaries (batchRecords), stored in order.
	var mixed, mixedErrs bytes.Buffer
	mixed.WriteString("$TTL 300\n@ IN SOA ns1 hostmaster ( 1 7200 3600\n  1209600 300 )\n@ NS ns1\nns1 A 192.0.2.1\n")
	mixedErrs.WriteString(mixed.String())
	for i := range 3 * batchRecords {
		switch {
		case i%997 == 0:
			fmt.Fprintf(&mixed, "t%d TXT \"x\"\n A 192.0.2.%d\n", i, i%200)
		case i%331 == 0:
			fmt.Fprintf(&mixed, "\tAAAA 2001:db8::%x\n", i)
		default:
			fmt.Fprintf(&mixed, "h%d 60 A 10.0.%d.%d\n", i, i/256%256, i%256)
		}
		if i%1500 == 0 {
			fmt.Fprintf(&mixedErrs, "h%d.other.test. A 192.0.2.9\n", i)
		} else {
			fmt.Fprintf(&mixedErrs, "h%d A 192.0.2.9\n", i)
		}
	}
	inputs = append(inputs, input{"generated, mixed", "fuzz.test.", mixed.Bytes()}, input{"generated, errors", "fuzz.test.", mixedErrs.Bytes()})

	const head = "$TTL 300\n@ IN SOA ns1 hostmaster ( 1 7200 3600\n  1209600 300 ) ; multi-line\n@ NS ns1\nns1 A 192.0.2.1\n"
	edges := []string{
		"www A 192.0.2.2\n\tA 192.0.2.3\n  IN A 192.0.2.4 ; comment\n",
		"WWW 60 IN A 192.0.2.2\nwww IN 60 A 192.0.2.3\nwww 60 a 192.0.2.2\nWwW in aaaa 2001:DB8::1\n",
		"x AAAA ::ffff:192.0.2.1\nx AAAA ::1\nx AAAA 2001:db8:0:0:0:0:0:1\ny AAAA 192.0.2.1\n",
		"x A 192.0.2.01\n",
		"x A 192.0.2.256\n",
		"x A 1.2.3\n",
		"x A 2001:db8::1\n",
		"x AAAA 2001:db8::1%eth0\n",
		"3600 A 192.0.2.9\nin A 192.0.2.9\na A 192.0.2.9\ntype1 A 192.0.2.9\n",
		"x 1h A 192.0.2.9\ny 4294967295 A 192.0.2.9\nz 4294967296 A 192.0.2.9\nw 0999 A 192.0.2.9\n",
		"x CH A 192.0.2.9\n",
		"x.other.test. A 192.0.2.9\nother.test. A 192.0.2.9\n",
		"$ORIGIN sub.@\n",
		"$ORIGIN sub\nx A 192.0.2.9\n$ORIGIN Other.Fuzz.Test.\ny A 192.0.2.9\n  TXT \"a;b\" ; c\nz CNAME y\n",
		"x TXT \"one\" \"two\"\n A 192.0.2.9\n\tMX 10 ns1\nx A 192.0.2.9\n",
		"x CNAME y\nx A 192.0.2.9\n*.w A 192.0.2.9\nw.x A 192.0.2.9\n",
		"sub NS ns.sub\nns.sub A 192.0.2.9\nbelow.sub A 192.0.2.9\n",
		"x A 192.0.2.9\r\ny A 192.0.2.9\r\n",
		"x A 192.0.2.9\nX A 192.0.2.9\nx 99 A 192.0.2.9\nrr A 192.0.2.1\nrr A 192.0.2.2\n",
		"x A 192.0.2.9 extra\n",
		"x A\n",
		"x IN IN A 192.0.2.9\n",
		"$GENERATE 1-3 g$ A 192.0.2.$\nx A 192.0.2.9\n",
		"$INCLUDE /etc/passwd\n",
		"$TTL 1h\nx A 192.0.2.9\n",
		"$ttl 60\nx A 192.0.2.9\n",
		"$TTL 60 ; c\n$ORIGIN fuzz.test. ; c\nx A 192.0.2.9\n",
		strings.Repeat("l", 64) + " A 192.0.2.9\n",
		strings.Repeat("abcdefghi.", 26) + " A 192.0.2.9\n",
		"x..y A 192.0.2.9\n",
		"x\\.y A 192.0.2.9\n",
		"x A 192.0.2.9 (\n)\n",
		"x TXT ( \"a\"\n \"b\" )\n A 192.0.2.9\n",
		". A 192.0.2.9\n@ A 192.0.2.9\n",
		"x A 192.0.2.9\n\n   \n; only a comment\n\t; indented comment\ny A 192.0.2.9",
	}
	for i, e := range edges {
		inputs = append(inputs, input{fmt.Sprintf("edge %d: %q", i, e), "fuzz.test.", []byte(head + e)})
		inputs = append(inputs, input{fmt.Sprintf("edge %d without $TTL: %q", i, e), "fuzz.test.", []byte(strings.TrimPrefix(head, "$TTL 300\n") + e)})
		inputs = append(inputs, input{fmt.Sprintf("edge %d at the root: %q", i, e), ".", []byte(head + e)})
	}

	for _, in := range inputs {
		if d := parseDiff(in.origin, in.src); d != "" {
			t.Errorf("%s: %s", in.name, d)
		}
	}
}

// FuzzParseFast: whatever the file, the fast reader and miekg's parser give
// the same zone or the same errors.
func FuzzParseFast(f *testing.F) {
	f.Add([]byte("$TTL 300\n@ SOA ns1 h 1 2 3 4 5\n@ NS ns1\nns1 A 192.0.2.1\nx 60 IN A 192.0.2.2\n\tAAAA 2001:db8::1\ny TXT \"a\"\n"))
	f.Add([]byte("$ORIGIN sub\n$TTL 1\n@ SOA ns1 h ( 1 2\n 3 4 5 )\n@ NS ns1\nns1 IN 5 A 192.0.2.1\n A 192.0.2.2 ; c\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		if d := parseDiff("fuzz.test.", src); d != "" {
			t.Fatal(d)
		}
	})
}

// parseDiff parses src both ways and describes the first difference.
func parseDiff(origin string, src []byte) string {
	fast, ferr := parseZone(origin, "z.zone", src, true)
	slow, serr := parseZone(origin, "z.zone", src, false)
	if fmt.Sprint(ferr) != fmt.Sprint(serr) {
		return fmt.Sprintf("errors differ\nfast: %v\nmiekg: %v", ferr, serr)
	}
	if ferr != nil {
		return ""
	}
	return zoneDiff(fast, slow)
}

// zoneDiff describes the first difference between two parsed zones.
func zoneDiff(a, b *Zone) string {
	switch {
	case a.RecordsLen != b.RecordsLen:
		return fmt.Sprintf("%d records, miekg %d", a.RecordsLen, b.RecordsLen)
	case len(a.nodes) != len(b.nodes):
		return fmt.Sprintf("%d names, miekg %d", len(a.nodes), len(b.nodes))
	case fmt.Sprint(a.Warnings) != fmt.Sprint(b.Warnings):
		return fmt.Sprintf("warnings %q, miekg %q", a.Warnings, b.Warnings)
	case a.SOA.String() != b.SOA.String() || a.NegSOA.String() != b.NegSOA.String():
		return fmt.Sprintf("SOA %v, miekg %v", a.SOA, b.SOA)
	}
	for name, x := range a.nodes {
		y := b.nodes[name]
		if y == nil {
			return fmt.Sprintf("%s only in fast", name)
		}
		if x.Name != y.Name || x.Cut != y.Cut || x.below != y.below || x.wildChild != y.wildChild || x.low != y.low || len(x.sets) != len(y.sets) {
			return fmt.Sprintf("%s: %+v, miekg %+v", name, *x, *y)
		}
		for i := range x.sets {
			s, u := x.sets[i], y.sets[i]
			if s.t != u.t || s.n != u.n || s.line != u.line || !bytes.Equal(s.wire, u.wire) {
				return fmt.Sprintf("%s: RRset %+v, miekg %+v", name, s, u)
			}
		}
	}
	return ""
}

// TestParseFastTakesCommonLines: common lines are read by the fast reader
// itself; the SOA and NS go to miekg's parser, with the common line that
// ends their run.
func TestParseFastTakesCommonLines(t *testing.T) {
	src := "$ORIGIN zs.test.\n$TTL 3600\n@ IN SOA ns1.zs.test. hostmaster.zs.test. 1 7200 3600 1209600 300\n@ IN NS ns1.zs.test.\nns1 IN A 192.0.2.1\nx 60 IN A 192.0.2.2\n\tAAAA 2001:db8::1\n"
	z := newZone("zs.test.", "z.zone", recordLines([]byte(src)))
	var errs ErrorList
	p := fastParser{z: z, errs: &errs, origin: z.Origin}
	count, ok := p.run([]byte(src))
	if !ok || count != 5 || len(errs) != 0 {
		t.Fatalf("parseFast: ok %v, %d records, errors %v; want true, 5, none", ok, count, errs)
	}
	if p.simpleRecords != 2 {
		t.Errorf("%d records read by the fast reader, want 2 (the SOA, NS and ns1 are miekg's)", p.simpleRecords)
	}
}
