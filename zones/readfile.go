package zones

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// MaxFileSize bounds a config or zone file. A zone of a million records is
// about 40 MiB; the bound is there so that a file that grows without end
// (a log written to the wrong path, a device) fails the load with a reason
// instead of the process running out of memory.
const MaxFileSize = 64 << 20

// readTimeout bounds reading one file: a file system that hangs (a dead
// NFS server) must not hold a reload, and shutdown, for ever.
const readTimeout = 30 * time.Second

// readFile reads a config or zone file: a regular file of at most
// MaxFileSize bytes, within ctx and readTimeout. Anything else (a FIFO,
// which blocks until someone writes and may never end; a device such as
// /dev/zero; a socket; a folder) is refused before a byte is read. The
// errors read as the reason after "cannot read file X: ".
//
// The read runs on its own goroutine: when ctx ends or the time is up,
// readFile returns at once and the goroutine finishes (and closes the
// file) whenever the system call does.
func readFile(ctx context.Context, path string) ([]byte, error) {
	return readWithin(ctx, func() ([]byte, error) { return readRegular(path) }, nil)
}

// readMapped is readFile for a zone file: a large one is read outside the
// Go heap (mapped), for the parse to give back as it reads. free it.
func readMapped(ctx context.Context, path string) (*mapped, error) {
	return readWithin(ctx, func() (*mapped, error) { return readRegularMapped(path) }, (*mapped).free)
}

// readWithin runs read on its own goroutine, within ctx and readTimeout;
// what a read that finishes too late returns goes to discard (when set).
func readWithin[T any](ctx context.Context, read func() (T, error), discard func(T)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	type result struct {
		b   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := read()
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		return r.b, r.err
	case <-ctx.Done():
		if discard != nil {
			go func() {
				if r := <-done; r.err == nil {
					discard(r.b)
				}
			}()
		}
		var zero T
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return zero, fmt.Errorf("reading it took longer than %s (a file system that does not answer?)", readTimeout)
		}
		return zero, fmt.Errorf("reading it was canceled: %w", context.Cause(ctx))
	}
}

func readRegular(path string) ([]byte, error) {
	f, st, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readOpen(f, st)
}

// mapFrom is the size from which a zone file is read outside the heap.
const mapFrom = 1 << 20

func readRegularMapped(path string) (*mapped, error) {
	f, st, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st.Size() >= mapFrom {
		m, ok, err := mapFile(f, st.Size())
		if err != nil || ok {
			return m, err
		}
		// The file changed size while read: read it again, the usual way.
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
	}
	b, err := readOpen(f, st)
	if err != nil {
		return nil, err
	}
	return &mapped{b: b}, nil
}

// openRegular opens path for reading if it is a regular file of at most
// MaxFileSize bytes.
func openRegular(path string) (*os.File, fs.FileInfo, error) {
	// Non-blocking, so that opening a FIFO does not wait for a writer;
	// on a regular file the flag changes nothing.
	f, err := os.OpenFile(path, os.O_RDONLY|openNonblock, 0)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	switch {
	case err != nil:
	case !st.Mode().IsRegular():
		err = fmt.Errorf("it is %s, not a regular file: a config or zone file must be a regular file (a FIFO or a device blocks or never ends)", kindOf(st.Mode()))
	case st.Size() > MaxFileSize:
		err = fmt.Errorf("it is %d bytes, more than the %d MiB a config or zone file may be", st.Size(), MaxFileSize>>20)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, st, nil
}

func readOpen(f *os.File, st fs.FileInfo) ([]byte, error) {
	// The file may grow while it is read: read one byte past the bound to
	// notice. The buffer starts at the file's size, as os.ReadFile's does:
	// io.ReadAll grows from 512 bytes by a quarter at a time, which leaves
	// about four times a large zone file in garbage, and a reload makes it
	// while the previous zone is still served.
	buf := bytes.NewBuffer(make([]byte, 0, st.Size()+bytes.MinRead))
	if _, err := buf.ReadFrom(io.LimitReader(f, MaxFileSize+1)); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("it grew past the %d MiB a config or zone file may be while it was read", MaxFileSize>>20)
	}
	return b, nil
}

func kindOf(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a folder"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "of type " + m.Type().String()
}
