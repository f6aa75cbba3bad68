package testenv

import (
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// Crash is what a crash test tells the child process it re-executes this
// test binary as: a mode, the step to die at, the folder to work in.
type Crash struct{ Mode, Step, Dir string }

const (
	crashMode = "FAILOVERDNS_CRASH_MODE"
	crashStep = "FAILOVERDNS_CRASH_STEP"
	crashDir  = "FAILOVERDNS_CRASH_DIR"
)

// Child is the command that re-executes this test binary running only the
// test named test (a helper test that calls CrashChild), told c.
func Child(test string, c Crash) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1", "-test.v=false")
	cmd.Env = append(os.Environ(), crashMode+"="+c.Mode, crashStep+"="+c.Step, crashDir+"="+c.Dir)
	return cmd
}

// CrashChild is what the parent told this process, in a helper test; when
// the test binary was not re-executed by Child, it skips tb: the helper is
// not a test of its own, but the child of the tests named by what.
func CrashChild(tb testing.TB, what string) Crash {
	c := Crash{Mode: os.Getenv(crashMode), Step: os.Getenv(crashStep), Dir: os.Getenv(crashDir)}
	if c.Mode == "" {
		tb.Skip("helper process for " + what + "; runs only when re-executed by it")
	}
	return c
}

// Killed reports whether a child's Wait error says it ended by SIGKILL.
func Killed(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// DirNames lists the names in dir.
func DirNames(tb testing.TB, dir string) []string {
	tb.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// LiveHeap is the heap in use after a full collection, in bytes.
func LiveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// StartChild starts Child(test, c) and returns it with its stdout, to read
// as it runs, and its stderr.
func StartChild(tb testing.TB, test string, c Crash) (cmd *exec.Cmd, stdout io.Reader, stderr *Logs) {
	tb.Helper()
	cmd = Child(test, c)
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stderr = &Logs{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	return cmd, out, stderr
}

// ReadFile is os.ReadFile failing the test on error.
func ReadFile(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// Rand is a random source for a randomized test, seeded from the clock;
// the seed is logged, so a failure can be replayed with it.
func Rand(tb testing.TB, stream uint64) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	tb.Logf("seed %d", seed)
	return rand.New(rand.NewPCG(seed, stream))
}

// Runs is how many times a randomized test repeats: n, or short under
// go test -short.
func Runs(n, short int) int {
	if testing.Short() {
		return short
	}
	return n
}
