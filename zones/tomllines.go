package zones

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// tomlLines maps key paths to the line that defines them. The TOML decoder
// keeps positions private, and validation errors are far more useful with a
// line, so this re-scans the source with a deliberately simple reader: table
// headers and `key =` lines. Paths look like "server.listen",
// "service[2].policy" or "node[0].check.type".
type tomlLines struct {
	exact map[string]int // with array indexes
	loose map[string]int // indexes removed: for unknown keys, whose paths carry none
}

func scanTOMLLines(src []byte) tomlLines {
	tl := tomlLines{exact: map[string]int{}, loose: map[string]int{}}
	counts := map[string]int{}
	table := "" // current table path, with indexes
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	inMultiline := false
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if inMultiline {
			if strings.Count(line, `"""`)%2 == 1 || strings.Count(line, `'''`)%2 == 1 {
				inMultiline = false
			}
			continue
		}
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case strings.HasPrefix(line, "[["):
			name := strings.TrimSpace(strings.Trim(stripComment(line), "[] "))
			idx := counts[name]
			counts[name]++
			table = fmt.Sprintf("%s[%d]", name, idx)
			tl.record(table, n)
			continue
		case strings.HasPrefix(line, "["):
			name := strings.TrimSpace(strings.Trim(stripComment(line), "[] "))
			table = indexTable(name, counts)
			tl.record(table, n)
			continue
		}
		eq := strings.IndexByte(line, '=')
		if eq <= 0 {
			continue
		}
		key := strings.Trim(strings.TrimSpace(line[:eq]), `"'`)
		path := key
		if table != "" {
			path = table + "." + key
		}
		tl.record(path, n)
		rest := line[eq+1:]
		if strings.Count(rest, `"""`)%2 == 1 || strings.Count(rest, `'''`)%2 == 1 {
			inMultiline = true
		}
	}
	return tl
}

// indexTable turns "node.check" into "node[3].check" when [[node]] number 3
// is the latest one seen: a sub-table belongs to the last array element.
func indexTable(name string, counts map[string]int) string {
	parts := strings.Split(name, ".")
	out := make([]string, 0, len(parts))
	for i := range parts {
		prefix := strings.Join(parts[:i+1], ".")
		if c, ok := counts[prefix]; ok && i < len(parts)-1 {
			out = append(out, fmt.Sprintf("%s[%d]", parts[i], c-1))
			continue
		}
		out = append(out, parts[i])
	}
	return strings.Join(out, ".")
}

func (tl tomlLines) record(path string, line int) {
	if _, ok := tl.exact[path]; !ok {
		tl.exact[path] = line
	}
	lp := stripIndexes(path)
	if _, ok := tl.loose[lp]; !ok {
		tl.loose[lp] = line
	}
}

// line returns the line of path, or of its closest enclosing table, or 0.
func (tl tomlLines) line(path string) int { return closest(tl.exact, path) }

// looseLine is line for a path without array indexes.
func (tl tomlLines) looseLine(path string) int { return closest(tl.loose, path) }

func closest(lines map[string]int, path string) int {
	for p := path; p != ""; {
		if n, ok := lines[p]; ok {
			return n
		}
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

func stripIndexes(p string) string {
	var b strings.Builder
	depth := 0
	for _, r := range p {
		switch {
		case r == '[':
			depth++
		case r == ']':
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func stripComment(s string) string {
	if i := strings.IndexByte(s, '#'); i >= 0 {
		return s[:i]
	}
	return s
}
