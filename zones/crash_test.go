package zones_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/failoverdns/failoverdns/dnsserver/testenv"
	"github.com/failoverdns/failoverdns/zones"
)

// Crash tests of the pin state file with a real SIGKILL: the test binary
// re-executes itself as a child that saves pins and is killed (by itself,
// from PinStore.Hook, at one step of the save; or by the parent at a random
// moment of a save loop). The parent then reads the folder as a restart
// would. Unlike TestPinStoreCrashAtEachStep (a panic in the same process),
// nothing of the child runs after the kill: no deferred close, no remove of
// the temporary file, no buffered write.

const (
	// kcNoHook is the exit code of a child whose save finished without
	// the hook ever naming its step.
	kcNoHook = 3
	// kcLoopReady is printed by the loop child once it is saving.
	kcLoopReady = "saving\n"
)

// kcOld and kcNew are the pins before and after the save being crashed:
// every pin differs, so any mix of the two is visible.
func kcOld() map[zones.PinKey]zones.Pin {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return map[zones.PinKey]zones.Pin{
		{Service: "keys.demo.test."}:                   {Node: "sems1", Key: "admin.", From: "127.0.0.1", At: at},
		{Service: "keys.demo.test.", Location: "emea"}: {Node: "sems2", Key: "admin.", From: "127.0.0.1", At: at},
	}
}

func kcNew() map[zones.PinKey]zones.Pin {
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	return map[zones.PinKey]zones.Pin{
		{Service: "keys.demo.test."}:                   {Node: "sems3", Force: true, Until: at.Add(time.Hour), Key: "other.", From: "::1", At: at},
		{Service: "keys.demo.test.", Location: "apac"}: {Node: "sems1", Key: "admin.", From: "127.0.0.2", At: at},
		{Service: "other.demo.test."}:                  {Node: "sems2"},
	}
}

func kcSame(a, b map[zones.PinKey]zones.Pin) bool {
	if len(a) != len(b) {
		return false
	}
	for k, p := range a {
		q, ok := b[k]
		if !ok || p.Node != q.Node || p.Force != q.Force || !p.Until.Equal(q.Until) ||
			p.Key != q.Key || p.From != q.From || !p.At.Equal(q.At) {
			return false
		}
	}
	return true
}

// TestHelperCrashDuringSave is not a test: it is the child process of the
// tests below (testenv.Child), and does nothing otherwise.
func TestHelperCrashDuringSave(t *testing.T) {
	child := testenv.CrashChild(t, "TestPinStoreKilled*")
	mode, dir := child.Mode, child.Dir
	st, _, err := zones.OpenPinStore(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: OpenPinStore:", err)
		os.Exit(2)
	}
	switch mode {
	case "step":
		want := child.Step
		st.Hook = func(step string) {
			if step == want {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				time.Sleep(time.Minute) // not reached: a signal to oneself is delivered before kill(2) returns
			}
		}
		if err := st.Save(kcNew()); err != nil {
			fmt.Fprintln(os.Stderr, "child: Save:", err)
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "child: Save returned without the hook being called at %q\n", want)
		os.Exit(kcNoHook)
	case "emfile":
		// Right after the rename, the process runs out of file
		// descriptors (a connection flood, say): the folder cannot be
		// opened for its fsync, and Save fails.
		st.Hook = func(step string) {
			if step == "rename" {
				lim := syscall.Rlimit{Cur: 0, Max: 0}
				if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
					fmt.Fprintln(os.Stderr, "child: getrlimit:", err)
					os.Exit(2)
				}
				lim.Cur = 3
				if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
					fmt.Fprintln(os.Stderr, "child: setrlimit:", err)
					os.Exit(2)
				}
			}
		}
		if err := st.Save(kcNew()); err != nil {
			fmt.Fprintln(os.Stdout, "save failed:", err)
			os.Exit(0)
		}
		fmt.Fprintln(os.Stdout, "save succeeded")
		os.Exit(0)
	case "loop":
		// Alternate old and new as fast as saves go, until killed.
		sets := []map[zones.PinKey]zones.Pin{kcNew(), kcOld()}
		os.Stdout.WriteString(kcLoopReady)
		for i := 0; ; i++ {
			if err := st.Save(sets[i%2]); err != nil {
				fmt.Fprintln(os.Stderr, "child: Save:", err)
				os.Exit(2)
			}
		}
	}
	os.Exit(2)
}

// kcOpen reads dir as a restart does and says which of old and new it holds;
// anything else (an error, a mix, nothing) fails the test.
func kcOpen(t *testing.T, dir string) string {
	t.Helper()
	raw, _ := os.ReadFile(filepath.Join(dir, "pins.json"))
	_, pins, err := zones.OpenPinStore(dir)
	if err != nil {
		t.Fatalf("OpenPinStore after the kill: %v\npins.json:\n%s", err, raw)
	}
	switch {
	case kcSame(pins, kcOld()):
		return "old"
	case kcSame(pins, kcNew()):
		return "new"
	}
	t.Fatalf("after the kill the state is neither exactly the old nor exactly the new pins: %+v\npins.json:\n%s", pins, raw)
	return ""
}

// TestPinStoreKilledAtEachStep: SIGKILL at each step of a save (after the
// temp file is written, after its fsync, after the rename). A restart must
// read exactly the old pins (before the rename) or exactly the new ones
// (after it), never an error, never a mix.
func TestPinStoreKilledAtEachStep(t *testing.T) {
	for _, tc := range []struct {
		step string
		want string // what a restart must read
	}{
		{"write", "old"},
		{"fsync", "old"},
		{"rename", "new"},
	} {
		t.Run(tc.step, func(t *testing.T) {
			dir := t.TempDir()
			st, _, err := zones.OpenPinStore(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Save(kcOld()); err != nil {
				t.Fatal(err)
			}
			oldBytes, err := os.ReadFile(filepath.Join(dir, "pins.json"))
			if err != nil {
				t.Fatal(err)
			}

			cmd := testenv.Child("TestHelperCrashDuringSave", testenv.Crash{Mode: "step", Step: tc.step, Dir: dir})
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err = cmd.Run()
			if !testenv.Killed(err) {
				t.Fatalf("the child was not killed by SIGKILL at %q: %v\nstderr:\n%s", tc.step, err, stderr.String())
			}

			var tmps []string
			ents, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				switch {
				case e.Name() == "pins.json":
				case strings.HasPrefix(e.Name(), "pins.json.tmp-"):
					tmps = append(tmps, e.Name())
				default:
					t.Errorf("unexpected file %s in the state folder", e.Name())
				}
			}
			// Before the rename the killed save leaves its temporary file:
			// proof that the kill happened mid-save, not before it.
			if tc.want == "old" && len(tmps) != 1 {
				t.Errorf("killed after %q: %d temporary files %v, want the one the save was writing", tc.step, len(tmps), tmps)
			}

			got := kcOpen(t, dir)
			if got != tc.want {
				t.Errorf("killed after %q: a restart reads the %s pins, want the %s ones", tc.step, got, tc.want)
			}
			if got == "old" {
				if b, _ := os.ReadFile(filepath.Join(dir, "pins.json")); !bytes.Equal(b, oldBytes) {
					t.Errorf("pins.json changed although the old pins read back:\nbefore:\n%s\nafter:\n%s", oldBytes, b)
				}
			}
			// The restart removed what the killed save left.
			for _, name := range testenv.DirNames(t, dir) {
				if name != "pins.json" {
					t.Errorf("killed after %q: %s is still in the state folder after a restart opened it", tc.step, name)
				}
			}

			// A fresh process saves over whatever the crash left.
			st2, _, err := zones.OpenPinStore(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := st2.Save(kcOld()); err != nil {
				t.Fatalf("Save after the kill: %v", err)
			}
			if got := kcOpen(t, dir); got != "old" {
				t.Errorf("after a clean save: %s pins, want old", got)
			}
		})
	}
}

// TestPinStoreKilledDuringSaveLoop: a child saves old and new pins
// alternately as fast as it can; SIGKILL at a random moment. Whatever the
// moment, a restart reads exactly one of the two.
func TestPinStoreKilledDuringSaveLoop(t *testing.T) {
	runs := testenv.Runs(20, 3)
	rng := testenv.Rand(t, 0x5eed)
	seen := map[string]int{}
	for i := range runs {
		dir := t.TempDir()
		st, _, err := zones.OpenPinStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Save(kcOld()); err != nil {
			t.Fatal(err)
		}
		cmd, out, stderr := testenv.StartChild(t, "TestHelperCrashDuringSave", testenv.Crash{Mode: "loop", Dir: dir})
		// Wait until the child is in its save loop (its first line).
		buf := make([]byte, len(kcLoopReady))
		n, rerr := out.Read(buf)
		if rerr != nil || string(buf[:n]) != kcLoopReady {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("run %d: the child did not start saving: %q %v\nstderr:\n%s", i, buf[:n], rerr, stderr.String())
		}
		time.Sleep(time.Duration(rng.Int64N(int64(20 * time.Millisecond)))) // the random moment of the kill
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		err = cmd.Wait()
		if !testenv.Killed(err) {
			t.Fatalf("run %d: the child ended before the kill: %v\nstderr:\n%s", i, err, stderr.String())
		}
		seen[kcOpen(t, dir)]++
	}
	t.Logf("after %d kills a restart read: %v", runs, seen)
}

// TestPinStoreSaveFailsAfterRename: Save promises "if it fails, the file on
// disk still holds the previous pins", and UpdatePins relies on it (a failed
// save leaves the pins in memory unchanged and the UPDATE is answered
// SERVFAIL). Here the process runs out of file descriptors right after the
// rename (a child process, so the test binary keeps its own descriptors):
// whatever Save then answers, what a restart reads must agree with it, the
// old pins after an error and the new ones after success. (Before b76f3cf
// Save opened the folder for its fsync after the rename, failed, and left
// the new pins in place.)
func TestPinStoreSaveFailsAfterRename(t *testing.T) {
	dir := t.TempDir()
	st, _, err := zones.OpenPinStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Save(kcOld()); err != nil {
		t.Fatal(err)
	}
	cmd := testenv.Child("TestHelperCrashDuringSave", testenv.Crash{Mode: "emfile", Dir: dir})
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\nstderr:\n%s", err, stderr.String())
	}
	said := strings.TrimSpace(string(out))
	got := kcOpen(t, dir)
	switch {
	case strings.HasPrefix(said, "save failed:") && got != "old":
		t.Errorf("Save returned an error (%s), yet a restart reads the %s pins: a failed save must leave the previous pins on disk", strings.TrimSpace(strings.TrimPrefix(said, "save failed:")), got)
	case said == "save succeeded" && got != "new":
		t.Errorf("Save succeeded, yet a restart reads the %s pins", got)
	case said != "save succeeded" && !strings.HasPrefix(said, "save failed:"):
		t.Fatalf("child said %q", said)
	}
	t.Logf("out of descriptors after the rename: %s; a restart reads the %s pins", said, got)
}
