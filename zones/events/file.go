package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/failoverdns/failoverdns/zones/atomicfile"
)

// The file is append-only text, one event per line:
//
//	<crc32 of the JSON, 8 hex digits> <the event as JSON>\n
//
// so `cut -d' ' -f2- events.log | jq` reads it. A crash can only leave the
// last line torn (appends are the only writes besides whole-file rewrites
// by atomicfile.Write); a line without its newline or whose checksum does
// not match is dropped on read, and the file is then rewritten clean, so a
// crash never leaves a file a restart cannot read, and the history before
// the torn line survives.

// file appends batches to Dir/events.log; only the writer goroutine uses it.
type file struct {
	dir, path string
	maxBytes  int64
	hook      func(step string, seq uint64)
	failing   string // the last write error logged, so a failing disk logs once
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// encode appends ev's line to buf.
func encode(buf []byte, ev Event) []byte {
	j, err := json.Marshal(ev)
	if err != nil {
		// An Event has only strings, numbers and a time: Marshal cannot
		// fail on it. Keep the file well-formed regardless.
		return buf
	}
	buf = fmt.Appendf(buf, "%08x ", crc32.Checksum(j, crcTable))
	buf = append(buf, j...)
	return append(buf, '\n')
}

// decode reads a file's content: the good events in order, and how many
// lines were dropped (torn or corrupt).
func decode(b []byte) (evs []Event, dropped int) {
	var last uint64
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			dropped++ // the torn tail of an append a crash interrupted
			break
		}
		line := b[:i]
		b = b[i+1:]
		ev, ok := decodeLine(line)
		if !ok || ev.Seq <= last {
			dropped++
			continue
		}
		last = ev.Seq
		evs = append(evs, ev)
	}
	return evs, dropped
}

func decodeLine(line []byte) (Event, bool) {
	var ev Event
	if len(line) < 10 || line[8] != ' ' {
		return ev, false
	}
	sum, err := strconv.ParseUint(string(line[:8]), 16, 32)
	if err != nil || uint32(sum) != crc32.Checksum(line[9:], crcTable) {
		return ev, false
	}
	if json.Unmarshal(line[9:], &ev) != nil || ev.Seq == 0 || ev.Kind == "" {
		return ev, false
	}
	return ev, true
}

// openFile reads what the folder's history holds (the newest o.Limit
// events) and prepares appends to it. Problems are logged, never fatal: the
// history is an aid, and the server must start without it.
func openFile(o Options, log *slog.Logger) (*file, []Event) {
	f := &file{dir: o.Dir, path: filepath.Join(o.Dir, FileName), maxBytes: o.MaxBytes, hook: o.hook}
	if f.hook == nil {
		f.hook = func(string, uint64) {}
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		log.Warn("event history: cannot create state_dir; events are kept in memory until it can be written", "state_dir", o.Dir, "err", err)
		return f, nil
	}
	// A compaction a crash interrupted leaves its temporary file (and
	// maybe WriteAtomic's link to the previous file): the file itself is
	// whole either way, so they are only litter.
	if tmps, _ := filepath.Glob(f.path + ".tmp-*"); len(tmps) > 0 {
		for _, t := range tmps {
			os.Remove(t)
		}
	}
	b, err := os.ReadFile(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		log.Warn("event history: cannot read the file; starting with an empty history (check the file's owner and mode)", "file", f.path, "err", err)
		return f, nil
	}
	evs, dropped := decode(b)
	if len(evs) > o.Limit {
		evs = evs[len(evs)-o.Limit:]
	}
	if dropped > 0 {
		log.Warn("event history: dropped lines a crash tore or the disk corrupted; the rest is kept", "file", f.path, "dropped", dropped, "kept", len(evs))
		// Rewrite it clean, so the next append does not run on from a
		// torn line.
		if err := f.rewrite(evs); err != nil {
			log.Warn("event history: rewriting the file without its torn lines", "file", f.path, "err", err)
		}
	}
	return f, evs
}

// append adds batch to the file. full reports that it would pass maxBytes:
// the caller then rewrites the file instead (compact).
func (f *file) append(batch []Event) (full bool, err error) {
	var buf []byte
	for _, ev := range batch {
		buf = encode(buf, ev)
	}
	// No O_CREATE of the folder: if an operator removed or replaced
	// state_dir, appends fail (and are logged) rather than recreate it
	// behind their back.
	h, err := os.OpenFile(f.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return false, err
	}
	defer h.Close()
	st, err := h.Stat()
	if err != nil {
		return false, err
	}
	if st.Size()+int64(len(buf)) > f.maxBytes {
		return true, nil
	}
	if _, err := h.Write(buf); err != nil {
		// A short write (a full disk) would leave a torn line that the
		// next append runs on from: cut it off.
		_ = h.Truncate(st.Size())
		return false, err
	}
	seq := batch[len(batch)-1].Seq
	f.hook("append", seq)
	if err := h.Sync(); err != nil {
		return false, err
	}
	if st.Size() == 0 {
		// A new file: its name must be durable too.
		if d, err := os.Open(f.dir); err == nil {
			_ = d.Sync()
			d.Close()
		}
	}
	f.hook("sync", seq)
	return false, nil
}

// rewrite replaces the file with the newest of evs that fit in half of
// maxBytes, atomically (atomicfile.Write: temp file, fsync, rename).
func (f *file) rewrite(evs []Event) error {
	budget := f.maxBytes / 2
	var lines [][]byte
	var size int64
	for i := len(evs) - 1; i >= 0; i-- {
		line := encode(nil, evs[i])
		if size+int64(len(line)) > budget {
			break
		}
		size += int64(len(line))
		lines = append(lines, line)
	}
	buf := make([]byte, 0, size)
	for i := len(lines) - 1; i >= 0; i-- {
		buf = append(buf, lines[i]...)
	}
	var seq uint64
	if len(evs) > 0 {
		seq = evs[len(evs)-1].Seq
	}
	if err := atomicfile.Write(f.dir, FileName, buf, func(step string) { f.hook("compact-"+step, seq) }); err != nil {
		return err
	}
	f.hook("compacted", seq)
	return nil
}

// writer appends what Add recorded, a flush interval after the first
// event of a batch, until Close; then it writes what is left. Waiting
// first turns a burst (10,000 views failing over at once) into one append,
// and keeps the disk out of the moment of the change itself.
func (l *Log) writer() {
	defer l.wg.Done()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		select {
		case <-l.done:
			l.flush()
			return
		case <-l.kick:
		case <-retry.C:
		}
		select {
		case <-l.done:
			l.flush()
			return
		case <-time.After(l.o.Flush):
		}
		if !l.flush() {
			retry.Reset(l.o.Flush)
		}
	}
}

// flush writes the pending events; false means they stay pending (a
// failing disk) and must be retried.
func (l *Log) flush() bool {
	if l.file == nil {
		return true
	}
	l.mu.Lock()
	batch := l.pending
	l.pending = nil
	l.mu.Unlock()
	if len(batch) == 0 {
		return true
	}
	full, err := l.file.append(batch)
	if full {
		// Rewrite from the ring, which holds the batch and anything
		// recorded since: those are written now, so none stay pending.
		l.mu.Lock()
		all := make([]Event, 0, len(l.ring))
		l.each(func(ev Event) { all = append(all, ev) })
		l.pending = nil
		l.mu.Unlock()
		err = l.file.rewrite(all)
		if err != nil {
			batch = all
		}
	}
	if err != nil {
		l.mu.Lock()
		l.pending = append(batch, l.pending...)
		if len(l.pending) > l.o.Limit {
			l.pending = l.pending[len(l.pending)-l.o.Limit:]
		}
		l.mu.Unlock()
		if msg := err.Error(); msg != l.file.failing {
			l.file.failing = msg
			l.log.Error("event history: cannot write the file; events are kept in memory and written once it can be (check free space and the permissions of state_dir)", "file", l.file.path, "err", err)
		}
		return false
	}
	if l.file.failing != "" {
		l.file.failing = ""
		l.log.Info("event history: writing the file again", "file", l.file.path)
	}
	return true
}
