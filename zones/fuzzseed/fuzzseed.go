// Package fuzzseed loads the seed corpora of the project's fuzz targets,
// which live in the top-level testdata/fuzz/<FuzzName>/ rather than in each
// package's testdata, so one folder holds every seed and crasher.
package fuzzseed

import (
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Add adds every file under ../testdata/fuzz/<name>/ to f's corpus.
// A file in Go's corpus format ("go test fuzz v1", as go test -fuzz writes
// crashers) gives all of the target's arguments; any other file is the raw
// bytes of a single []byte argument.
func Add(f *testing.F, name string) {
	f.Helper()
	dir := filepath.Join("..", "testdata", "fuzz", name)
	ents, err := os.ReadDir(dir)
	if err != nil {
		f.Fatalf("seed corpus: %v", err)
	}
	n := 0
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		args, err := decodeCorpus(b)
		if err != nil {
			f.Fatalf("seed %s/%s: %v", dir, e.Name(), err)
		}
		f.Add(args...)
		n++
	}
	if n == 0 {
		f.Fatalf("seed corpus %s is empty", dir)
	}
}

// decodeCorpus decodes one seed file: Go's "go test fuzz v1" format (one
// typed literal per line, e.g. []byte("..."), string("..."), bool(true)),
// else the raw bytes as one []byte.
func decodeCorpus(b []byte) ([]any, error) {
	const head = "go test fuzz v1\n"
	if !bytes.HasPrefix(b, []byte(head)) {
		return []any{b}, nil
	}
	var args []any
	for _, line := range strings.Split(string(b[len(head):]), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		v, err := decodeValue(line)
		if err != nil {
			return nil, fmt.Errorf("%q: %v", line, err)
		}
		args = append(args, v)
	}
	return args, nil
}

func decodeValue(line string) (any, error) {
	e, err := parser.ParseExpr(line)
	if err != nil {
		return nil, err
	}
	call, ok := e.(*ast.CallExpr)
	if !ok || len(call.Args) != 1 {
		return nil, errors.New("want type(value)")
	}
	var typ string
	switch fn := call.Fun.(type) {
	case *ast.Ident:
		typ = fn.Name
	case *ast.ArrayType:
		if id, ok := fn.Elt.(*ast.Ident); ok && fn.Len == nil && id.Name == "byte" {
			typ = "[]byte"
		}
	}
	arg := call.Args[0]
	if id, ok := arg.(*ast.Ident); ok && typ == "bool" {
		return strconv.ParseBool(id.Name)
	}
	neg := false
	if u, ok := arg.(*ast.UnaryExpr); ok && u.Op == token.SUB {
		neg, arg = true, u.X
	}
	lit, ok := arg.(*ast.BasicLit)
	if !ok {
		return nil, errors.New("want a literal")
	}
	text := lit.Value
	if neg {
		text = "-" + text
	}
	switch typ {
	case "[]byte", "string":
		s, err := strconv.Unquote(lit.Value)
		if err != nil {
			return nil, err
		}
		if typ == "string" {
			return s, nil
		}
		return []byte(s), nil
	case "int", "int64":
		v, err := strconv.ParseInt(text, 0, 64)
		if typ == "int" {
			return int(v), err
		}
		return v, err
	case "uint8", "byte", "uint16", "uint32", "uint64", "uint":
		if lit.Kind == token.CHAR {
			r, _, _, err := strconv.UnquoteChar(strings.Trim(text, "'"), '\'')
			return byte(r), err
		}
		v, err := strconv.ParseUint(text, 0, 64)
		switch typ {
		case "uint8", "byte":
			return uint8(v), err
		case "uint16":
			return uint16(v), err
		case "uint32":
			return uint32(v), err
		case "uint":
			return uint(v), err
		}
		return v, err
	}
	return nil, fmt.Errorf("type %q is not supported", typ)
}
