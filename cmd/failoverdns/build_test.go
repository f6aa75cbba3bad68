package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDefaultBuildLeavesClusterOut: the default build links no etcd, gRPC
// or protobuf-for-etcd (their package init would slow every start:
// bench/start.sh), and it refuses [cluster] at the table's line with the
// build command that fixes it, in `check` and at start alike, before
// binding anything. This test binary is a default build too (cluster.go is
// tagged), so run() is the default binary's code.
func TestDefaultBuildLeavesClusterOut(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "failoverdns")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	mods, err := exec.Command("go", "version", "-m", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v\n%s", err, mods)
	}
	for _, mod := range []string{"go.etcd.io/", "google.golang.org/grpc"} {
		if bytes.Contains(mods, []byte(mod)) {
			t.Errorf("the default build links %s:\n%s", mod, mods)
		}
	}

	cfg, err := filepath.Abs("../../testdata/cluster/valid.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := cfg + ":40: [cluster]: this failoverdns was built without cluster support (the etcd client is linked only with -tags cluster); build it with: go build -tags cluster ./cmd/failoverdns\n"
	for _, args := range [][]string{{"check", "-config", cfg}, {"-config", cfg}} {
		var stdout, stderr strings.Builder
		code := run(args, &stdout, &stderr)
		if code != 1 || !strings.Contains(stderr.String(), want) {
			t.Errorf("failoverdns %s: exit %d, stderr:\n%s\nwant exit 1 and the line\n%s", strings.Join(args, " "), code, stderr.String(), want)
		}
	}
	// The tagged build (the e2e binary) accepts the same file.
	out, err := exec.Command(binary(t), "check", "-config", cfg).CombinedOutput()
	if err != nil {
		t.Errorf("the -tags cluster build: check -config %s: %v\n%s", cfg, err, out)
	}
}
