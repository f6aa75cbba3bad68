//go:build unix

package zones_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/failoverdns/failoverdns/zones"
)

// loadWithin runs load and fails t when it has not returned after a
// generous bound: a read that blocks (a FIFO no one writes) must not hang
// a reload, and the test must say so rather than hang itself.
func loadWithin(t *testing.T, load func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- load() }()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("loading did not return: a read blocked")
		return nil
	}
}

// TestLoadRefusesNonRegularFiles: a config or zone file that is a FIFO, a
// device that never ends (/dev/zero) or larger than the bound is refused
// before it is read, with the file and the fix, and nothing blocks or
// grows without bound.
func TestLoadRefusesNonRegularFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	big := filepath.Join(dir, "big.zone")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: no disk is used for the size.
	if err := f.Truncate(zones.MaxFileSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	config := func(zoneFile string) string {
		p := filepath.Join(t.TempDir(), "c.toml")
		body := "[server]\nlisten = [\"127.0.0.1:0\"]\nhttp = \"\"\nstate_dir = \"" + filepath.Join(dir, "state") + "\"\n\n[[zone]]\norigin = \"example.test.\"\nfile = \"" + zoneFile + "\"\n"
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, config, file string
		says               []string
	}{
		{"zone file is a FIFO", config(fifo), fifo, []string{"named pipe", "not a regular file"}},
		{"zone file is /dev/zero", config("/dev/zero"), "/dev/zero", []string{"device", "not a regular file"}},
		{"zone file is over the bound", config(big), big, []string{"bytes", "more than"}},
		{"config is a FIFO", fifo, fifo, []string{"named pipe", "not a regular file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := loadWithin(t, func() error { _, err := zones.Load(tc.config); return err })
			if err == nil {
				t.Fatal("loaded, want it refused")
			}
			msg := errors.Join(zones.Errors(err)...).Error()
			if !strings.Contains(msg, tc.file) {
				t.Errorf("the error does not name %s:\n%s", tc.file, msg)
			}
			for _, w := range tc.says {
				if !strings.Contains(msg, w) {
					t.Errorf("the error does not say %q:\n%s", w, msg)
				}
			}
		})
	}
}

// TestLoadContextCanceled: a load whose context has ended (a reload that
// shutdown canceled) fails with that reason instead of reading on.
func TestLoadContextCanceled(t *testing.T) {
	dir := t.TempDir()
	zone := filepath.Join(dir, "z.zone")
	if err := os.WriteFile(zone, []byte("$ORIGIN example.test.\n@ 300 IN SOA ns1 h 1 2 3 4 5\n@ 300 IN NS ns1\nns1 300 IN A 192.0.2.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "c.toml")
	if err := os.WriteFile(cfg, []byte("[server]\nlisten = [\"127.0.0.1:0\"]\nhttp = \"\"\nstate_dir = \""+filepath.Join(dir, "state")+"\"\n\n[[zone]]\norigin = \"example.test.\"\nfile = \"z.zone\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := zones.LoadContext(context.Background(), cfg); err != nil {
		t.Fatalf("a regular config: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := loadWithin(t, func() error { _, err := zones.LoadContext(ctx, cfg); return err })
	if err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Errorf("a canceled load: %v, want an error saying it was canceled", err)
	}
}
