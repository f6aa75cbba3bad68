package testenv

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Proc is an outside program a test runs (the failoverdns binary, unbound),
// its output kept.
type Proc struct {
	Cmd            *exec.Cmd
	Stdout, Stderr Logs
	done           chan struct{}
	err            error // Wait's, once done
}

// StartProc starts cmd, its output into p.Stdout and p.Stderr. It is
// terminated when the test ends, if still running.
func StartProc(tb testing.TB, cmd *exec.Cmd) *Proc {
	tb.Helper()
	p := &Proc{Cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.Stdout, &p.Stderr
	if err := p.start(); err != nil {
		tb.Fatalf("starting %s: %v", cmd.Path, err)
	}
	tb.Cleanup(func() {
		if !p.Exited() {
			p.Terminate(tb)
		}
	})
	return p
}

// Spawn starts cmd with its output where cmd sends it (Stdout and Stderr
// of the Proc stay empty), for a caller that stops it itself: a test
// cluster's members, which restart and log to files.
func Spawn(cmd *exec.Cmd) (*Proc, error) {
	p := &Proc{Cmd: cmd, done: make(chan struct{})}
	return p, p.start()
}

func (p *Proc) start() error {
	if err := p.Cmd.Start(); err != nil {
		return err
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	return nil
}

// Done is closed when the program has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the program has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL and waits for the program to end.
func (p *Proc) Kill(tb testing.TB) {
	tb.Helper()
	if err := p.Cmd.Process.Signal(syscall.SIGKILL); err != nil && !p.Exited() {
		tb.Fatal(err)
	}
	<-p.done
}

// Terminate sends SIGTERM and waits for the program to end (it is killed
// after 10 s). It returns the exit code.
func (p *Proc) Terminate(tb testing.TB) int {
	tb.Helper()
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil && !p.Exited() {
		tb.Errorf("SIGTERM: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.Cmd.Process.Kill()
		<-p.done
		tb.Errorf("still running 10s after SIGTERM; killed\nstderr:\n%s", p.Stderr.String())
	}
	return p.Cmd.ProcessState.ExitCode()
}

// Err is what waiting for the program returned (nil before it exited).
func (p *Proc) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}
