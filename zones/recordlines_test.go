package zones

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// recordLinesEdges: what the grammar treats specially, on and off the
// lines recordLines reads by their first character.
var recordLinesEdges = []string{
	"",
	"\n",
	"\n\n",
	"x A 192.0.2.1",
	"x A 192.0.2.1\n",
	"$TTL 60\n$ORIGIN a.\nx A 192.0.2.1\n",
	"@ SOA ns1 h ( 1 2\n 3 4\n 5 )\nx A 192.0.2.1\n\tA 192.0.2.2\n",
	"; comment\n   ; indented\n \t\r\nx A 192.0.2.1 ; (\ny A 192.0.2.2\n",
	"x TXT \"a ( b\" \"c ; d\"\ny TXT \"e \\\" (\"\nz A 192.0.2.3\n",
	"x TXT \"open\n (\" )\nstill A 192.0.2.1\n\"\nz A 192.0.2.1\n",
	"x TXT ( \"a\"\n )\n)\n)\ny A 192.0.2.1\n(\nz A 192.0.2.2\n",
	"x A 192.0.2.1\r\ny A 192.0.2.2\r\n\r\n",
	"x TXT \"a\\\r\ny A 192.0.2.2\n",
	"$\n$x\n  $TTL 5\n",
	"x A 192.0.2.1\n" + strings.Repeat("y", maxScannedLine) + "\nz A 192.0.2.1\n",
	"x A 192.0.2.1\n" + strings.Repeat("y", 1<<20+5) + "\nz A 192.0.2.1\n",
	"x A 192.0.2.1\n" + strings.Repeat("y", maxScannedLine-1) + "\nz A 192.0.2.1\n",
}

// TestRecordLinesIdentical: recordLines gives what the line-by-line
// scanner gives, over the repository's zone files and the edges above.
func TestRecordLinesIdentical(t *testing.T) {
	inputs := map[string][]byte{}
	for i, e := range recordLinesEdges {
		inputs["edge "+string(rune('a'+i))] = []byte(e)
	}
	err := filepath.WalkDir("../testdata", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".zone") {
			return err
		}
		src, err := os.ReadFile(path)
		inputs[path] = src
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range inputs {
		if got, want := recordLines(src), recordLinesScanner(src); !slices.Equal(got, want) {
			t.Errorf("%s: %v, the scanner %v", name, got, want)
		}
	}
}

func FuzzRecordLines(f *testing.F) {
	for _, e := range recordLinesEdges[:len(recordLinesEdges)-3] {
		f.Add([]byte(e))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		if got, want := recordLines(src), recordLinesScanner(src); !slices.Equal(got, want) {
			t.Fatalf("%v, the scanner %v", got, want)
		}
	})
}
