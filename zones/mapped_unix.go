//go:build unix

package zones

import (
	"os"
	"syscall"
)

// mapped is a file's bytes in an anonymous mapping, outside the Go heap, so
// that a parse can give back what it has read as it goes (release) and all
// of it at once when done (free): a reload then never holds the whole file
// next to the old zone and the new one (issue 16: the reload peak of a
// million-record zone).
type mapped struct {
	b        []byte // the file's bytes
	mem      []byte // the whole mapping
	released int    // bytes from the start given back
}

// mapFile reads f, of size bytes as stat saw it, into a new mapping. ok is
// false when the file is not the size stat said (it grew or shrank while
// read): the caller reads it the ordinary way.
func mapFile(f *os.File, size int64) (m *mapped, ok bool, err error) {
	mem, err := syscall.Mmap(-1, 0, int(size)+1, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return nil, false, err
	}
	n := 0
	for n < len(mem) {
		k, err := f.Read(mem[n:])
		n += k
		if err != nil || k == 0 {
			break
		}
	}
	if int64(n) != size {
		syscall.Munmap(mem)
		return nil, false, nil
	}
	return &mapped{b: mem[:n], mem: mem}, true, nil
}

// release gives back the pages wholly before offset upTo of b; those bytes
// read as zeros from now on.
func (m *mapped) release(upTo int) {
	page := os.Getpagesize()
	upTo -= upTo % page
	if m.mem == nil || upTo <= m.released {
		return
	}
	syscall.Madvise(m.mem[m.released:upTo], syscall.MADV_DONTNEED)
	m.released = upTo
}

// free unmaps it all; b must not be used after.
func (m *mapped) free() {
	if m.mem != nil {
		syscall.Munmap(m.mem)
		m.mem, m.b = nil, nil
	}
}
