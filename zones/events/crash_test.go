package events

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/failoverdns/failoverdns/dnsserver/testenv"
)

// Crash tests of the history file with a real SIGKILL, in the manner of
// zones/crash_test.go: the test binary re-executes itself as a child that
// records events as fast as it can and is killed, by itself at one step of
// a write or by the parent at a random moment. The child prints, on
// stdout, "durable <n>" each time a write has put event n on disk. After
// the kill the folder must open as a restart opens it, hold a contiguous
// run of events, and hold every event the child reported durable.

const (
	// ecMaxBytes is small, so that the child compacts every few writes.
	ecMaxBytes = 8192
)

// TestHelperEventsCrash is not a test: it is the child process of the
// tests below (testenv.Child), and does nothing otherwise.
func TestHelperEventsCrash(t *testing.T) {
	child := testenv.CrashChild(t, "TestEventsKilled*")
	die := child.Step
	out := bufio.NewWriter(os.Stdout)
	hook := func(step string, seq uint64) {
		if step == die {
			fmt.Fprintf(out, "dying %d\n", seq)
			out.Flush()
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Minute) // not reached: a signal to oneself is delivered before kill(2) returns
		}
		if step == "sync" || step == "compacted" {
			// Written with write(2) at once: what the parent reads
			// before the kill is what the child knew was on disk.
			fmt.Fprintf(out, "durable %d\n", seq)
			out.Flush()
		}
	}
	l := Open(Options{Dir: child.Dir, MaxBytes: ecMaxBytes, Limit: 100, Flush: time.Millisecond, hook: hook})
	for i := 1; ; i++ {
		l.Add(evNode(i))
		if i%10 == 0 {
			time.Sleep(100 * time.Microsecond) // let the writer take batches of a few events
		}
	}
}

// ecReport reads the child's stdout: the last event it reported durable,
// and the event number it gave when it killed itself (0: none).
func ecReport(out []byte) (durable, dying uint64) {
	for _, line := range strings.Split(string(out), "\n") {
		word, n, ok := strings.Cut(line, " ")
		v, err := strconv.ParseUint(n, 10, 64)
		if !ok || err != nil {
			continue
		}
		switch word {
		case "durable":
			durable = max(durable, v)
		case "dying":
			dying = v
		}
	}
	return durable, dying
}

// ecCheck opens dir as a restart does and checks what it holds: never more
// than a torn last line to drop, a contiguous run, every durable event.
// It returns the newest event read.
func ecCheck(t *testing.T, dir string, durable uint64) uint64 {
	t.Helper()
	raw, _ := os.ReadFile(filepath.Join(dir, FileName))
	if _, dropped := decode(raw); dropped > 1 {
		t.Errorf("the killed child left %d bad lines; only a torn last line may be dropped", dropped)
	}
	if bytes.Count(raw, []byte("\n")) > 0 && len(raw) > ecMaxBytes {
		t.Errorf("the file is %d bytes, limit %d", len(raw), ecMaxBytes)
	}
	var logs testenv.Logs
	l := Open(Options{Dir: dir, MaxBytes: ecMaxBytes, Limit: 100, Logger: logs.Logger(nil)})
	defer l.Close()
	got, _ := l.Select(Query{})
	if durable > 0 && len(got) == 0 {
		t.Fatalf("a restart reads no events, but event %d was reported durable\nlog:\n%s", durable, logs.String())
	}
	if len(got) == 0 {
		return 0
	}
	last := got[len(got)-1].Seq
	if !slices.Equal(seqs(got), span(got[0].Seq, last)) {
		t.Errorf("a restart reads events %v: not a contiguous run", seqs(got))
	}
	if last < durable {
		t.Errorf("a restart reads events up to %d, but %d was reported durable", last, durable)
	}
	for i, ev := range got {
		if ev.Kind != KindNode || ev.Node != fmt.Sprintf("n%d", ev.Seq) {
			t.Fatalf("event %d read back as %+v", i, ev)
		}
	}
	// Open swept what a killed compaction left.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() != FileName {
			t.Errorf("%s is still in the folder after a restart opened it", e.Name())
		}
	}
	return last
}

// TestEventsKilledAtEachStep: SIGKILL at each step of an append and of a
// compaction. Whatever the step, a restart reads a contiguous history with
// every event reported durable; once an append is written (even before its
// fsync: the kernel has it) or a compaction renamed, those events too.
func TestEventsKilledAtEachStep(t *testing.T) {
	for _, tc := range []struct {
		step    string
		hasDead bool // the events of the write being killed must be read
	}{
		{"append", true},
		{"sync", true},
		{"compact-write", false},
		{"compact-fsync", false},
		{"compact-rename", true},
	} {
		t.Run(tc.step, func(t *testing.T) {
			dir := t.TempDir()
			cmd := testenv.Child("TestHelperEventsCrash", testenv.Crash{Mode: "step", Step: tc.step, Dir: dir})
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if !testenv.Killed(err) {
				t.Fatalf("the child was not killed at %q: %v\nstderr:\n%s", tc.step, err, stderr.String())
			}
			durable, dying := ecReport(out)
			if dying == 0 {
				t.Fatalf("the child died without saying at which event: %q", out)
			}
			if tc.step == "compact-write" || tc.step == "compact-fsync" {
				// Before the rename the killed compaction leaves its
				// temporary file: proof the kill happened mid-write.
				if tmps, _ := filepath.Glob(filepath.Join(dir, FileName+".tmp-*")); len(tmps) == 0 {
					t.Errorf("killed at %s: no temporary file left", tc.step)
				}
			}
			want := durable
			if tc.hasDead {
				want = max(want, dying)
			}
			last := ecCheck(t, dir, want)
			t.Logf("killed at %s with event %d; durable before: %d; a restart reads up to %d", tc.step, dying, durable, last)
		})
	}
}

// TestEventsKilledDuringWrites: kill -9 at a random moment of a stream of
// events, again and again; every time the file reads back whole.
func TestEventsKilledDuringWrites(t *testing.T) {
	runs := testenv.Runs(20, 3)
	rng := testenv.Rand(t, 0xe7e7)
	for i := range runs {
		dir := t.TempDir()
		cmd, stdout, stderr := testenv.StartChild(t, "TestHelperEventsCrash", testenv.Crash{Mode: "loop", Dir: dir})
		// Wait for the first durable write, then kill at a random
		// moment of what follows.
		rd := bufio.NewReader(stdout)
		first, rerr := rd.ReadString('\n')
		if rerr != nil || !strings.HasPrefix(first, "durable ") {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("run %d: the child wrote nothing: %q %v\nstderr:\n%s", i, first, rerr, stderr.String())
		}
		time.Sleep(time.Duration(rng.Int64N(int64(50 * time.Millisecond)))) // the random moment of the kill
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		rest, _ := readAll(rd)
		err := cmd.Wait()
		if !testenv.Killed(err) {
			t.Fatalf("run %d: the child ended before the kill: %v\nstderr:\n%s", i, err, stderr.String())
		}
		durable, _ := ecReport(append([]byte(first), rest...))
		last := ecCheck(t, dir, durable)
		if i == 0 || i == runs-1 {
			t.Logf("run %d: durable %d, a restart reads up to %d", i, durable, last)
		}
	}
}

func readAll(rd *bufio.Reader) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(rd)
	return b.Bytes(), err
}
