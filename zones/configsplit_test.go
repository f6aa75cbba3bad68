package zones

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// TestDecodeSplitSameAsWhole: a config large enough to be decoded in
// pieces (decodeSplit) gives exactly the config the whole document does,
// and one whose later pieces hold anything but services is decoded whole.
func TestDecodeSplitSameAsWhole(t *testing.T) {
	big := func(tail string) []byte {
		var b strings.Builder
		b.WriteString("[server]\nlisten = [\"127.0.0.1:0\"]\n\n[[zone]]\norigin = \"split.test.\"\nfile = \"split.zone\"\n\n")
		b.WriteString("[[location]]\nname = \"east\"\nsubnets = [\"10.1.0.0/16\"]\n\n")
		for i := range 3 {
			fmt.Fprintf(&b, "[[node]]\nname = \"n%d\"\naddress = \"192.0.2.%d\"\n[node.check]\ntype = \"none\"\n\n", i, i+1)
		}
		for i := 0; b.Len() < 3*splitMin; i++ {
			fmt.Fprintf(&b, "[[service]]\nname = \"s%d.split.test.\"\nttl = %d\nnodes = [\"n0\", \"n1\", \"n2\"]\n", i, i%300)
			if i%7 == 0 {
				b.WriteString("[service.locations]\neast = [\"n1\", \"n0\"]\n")
			}
			b.WriteString("\n")
		}
		b.WriteString(tail)
		return []byte(b.String())
	}
	for _, tc := range []struct {
		name, tail string
		cut        bool
	}{
		{"services only", "", true},
		{"a node after the services", "[[node]]\nname = \"late\"\naddress = \"192.0.2.9\"\n[node.check]\ntype = \"none\"\n", false},
		{"an indented table after the services", "  [server.rrl]\n  responses_per_second = 5\n", false},
		{"a multi-line array starting a line with [", "[[service]]\nname = \"x.split.test.\"\nnodes = [\n[\"n0\"][0],\n]\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := big(tc.tail)
			var split Config
			cut, err := decodeSplit(src, &split)
			if cut != tc.cut {
				t.Fatalf("decodeSplit cut = %v (err %v), want %v", cut, err, tc.cut)
			}
			whole, wholeErr := decodeConfig("split.toml", "/split.toml", src, true)
			if !cut {
				return
			}
			if err != nil {
				t.Fatalf("decodeSplit: %v", err)
			}
			if wholeErr != nil {
				t.Fatalf("whole: %v", wholeErr)
			}
			fast, err := decodeConfig("split.toml", "/split.toml", src, false)
			if err != nil {
				t.Fatalf("fast: %v", err)
			}
			if len(fast.Services) < 10000 || !reflect.DeepEqual(fast, whole) {
				t.Errorf("the config decoded in pieces (%d services) differs from the whole's (%d)", len(fast.Services), len(whole.Services))
			}
		})
	}
}

// TestDecodeSplitErrorsAsWhole: a problem in a later piece is reported as
// the whole document's decode reports it, at its line.
func TestDecodeSplitErrorsAsWhole(t *testing.T) {
	var b strings.Builder
	b.WriteString("[server]\nlisten = [\"127.0.0.1:0\"]\n\n[[zone]]\norigin = \"split.test.\"\nfile = \"split.zone\"\n\n[[node]]\nname = \"n0\"\naddress = \"192.0.2.1\"\n[node.check]\ntype = \"none\"\n\n")
	for i := 0; b.Len() < 3*splitMin; i++ {
		fmt.Fprintf(&b, "[[service]]\nname = \"s%d.split.test.\"\nnodes = [\"n0\"]\n\n", i)
	}
	line := strings.Count(b.String(), "\n") + 2
	b.WriteString("[[service]]\nbogus = 1\nname = \"last.split.test.\"\nnodes = [\"n0\"]\n")
	_, err := parseConfigBytes("split.toml", "/split.toml", []byte(b.String()))
	want := fmt.Sprintf("split.toml:%d: unknown key \"service.bogus\"", line)
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err = %v, want %s…", err, want)
	}
}
