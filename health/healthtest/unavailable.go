package healthtest

import (
	"os"
	"testing"
)

// Unavailable skips a test whose outside program or privilege is missing,
// saying how to get it, except under CI=true, where it fails the test: CI
// installs what the tests need and must not pass by skipping.
func Unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(why + " (CI=true: required)")
	}
	t.Skip(why)
}
