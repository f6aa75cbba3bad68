// Package atomicfile replaces a file so that a crash at any moment leaves
// either the old content or the new, whole. It is a leaf package so that
// zones (pins) and zones/events (the event history) share one
// implementation without importing each other.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write replaces dir/name with b durably: temp file, fsync, rename,
// fsync of the folder. After it returns nil the content survives a crash;
// if it fails, the file still holds what it held before. hook (tests
// only, may be nil) runs between the steps ("write", "fsync", "rename").
func Write(dir, name string, b []byte, hook func(step string)) error {
	if hook == nil {
		hook = func(string) {}
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	// The folder is opened first: after the rename nothing may need a new
	// descriptor, or a failure there would leave the new file in place
	// while the caller is told the save failed.
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	tmp, err := os.CreateTemp(dir, name+".tmp-*")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	fail := func(err error) error {
		tmp.Close()
		os.Remove(tmpName)
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		return fail(err)
	}
	hook("write")
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	hook("fsync")
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	// Keep the previous file reachable under another name, so a failed
	// fsync after the rename can put it back (renames need no descriptor).
	path, prev := filepath.Join(dir, name), filepath.Join(dir, name+".tmp-prev")
	os.Remove(prev)
	hadPrev := os.Link(path, prev) == nil
	if err := os.Rename(tmpName, path); err != nil {
		os.Remove(tmpName)
		return err
	}
	hook("rename")
	if err := d.Sync(); err != nil {
		if hadPrev {
			_ = os.Rename(prev, path)
		} else {
			_ = os.Remove(path)
		}
		_ = d.Sync()
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	if hadPrev {
		os.Remove(prev)
	}
	return nil
}
