package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Unavailable skips a test whose outside program or privilege is missing,
// saying how to get it, except under CI=true, where it fails the test: CI
// installs what the tests need and must not pass by skipping.
func Unavailable(tb testing.TB, why string) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatal(why + " (CI=true: required)")
	}
	tb.Skip(why)
}

// sbin are the folders searched after PATH: an ordinary user's PATH often
// lacks them, and daemons (unbound) live there.
var sbin = []string{"/usr/sbin", "/usr/local/sbin", "/sbin"}

// Find returns the path of the first of names found on PATH or in the sbin
// folders, or "".
func Find(names ...string) string {
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	for _, name := range names {
		for _, dir := range sbin {
			p := filepath.Join(dir, name)
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
				return p
			}
		}
	}
	return ""
}

// Tool returns the path of an outside program a test drives, the first of
// names found (see Find). Without it the test is skipped with the command
// that installs the Debian package pkg, or fails under CI=true
// (Unavailable).
func Tool(tb testing.TB, pkg string, names ...string) string {
	tb.Helper()
	p := Find(names...)
	if p == "" {
		Unavailable(tb, names[0]+" is not installed (not on PATH nor in /usr/sbin): apt-get install "+pkg)
	}
	return p
}
