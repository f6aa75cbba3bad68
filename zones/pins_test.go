package zones_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/failoverdns/failoverdns/dnsserver/testenv"
	"github.com/failoverdns/failoverdns/zones"
)

// TestParsePin reads pins as the TXT strings an operator writes, and writes
// them back (Text) in the canonical form.
func TestParsePin(t *testing.T) {
	until := time.Date(2026, 11, 21, 18, 0, 0, 0, time.UTC)
	cases := []struct {
		txt  []string
		want zones.Pin
		text string
		err  string // substring of the error; "" = valid
	}{
		{txt: []string{"sems2"}, want: zones.Pin{Node: "sems2"}, text: "sems2"},
		{txt: []string{"  sems2  "}, want: zones.Pin{Node: "sems2"}, text: "sems2"},
		{txt: []string{"sems2 force"}, want: zones.Pin{Node: "sems2", Force: true}, text: "sems2 force"},
		{txt: []string{"sems2", "force"}, want: zones.Pin{Node: "sems2", Force: true}, text: "sems2 force"},
		{txt: []string{"sems2 until=2026-11-21T18:00:00Z"}, want: zones.Pin{Node: "sems2", Until: until}, text: "sems2 until=2026-11-21T18:00:00Z"},
		{txt: []string{"sems2 until=2026-11-21T19:00:00+01:00 force"}, want: zones.Pin{Node: "sems2", Force: true, Until: until}, text: "sems2 force until=2026-11-21T18:00:00Z"},
		{txt: []string{""}, err: "empty pin"},
		{txt: nil, err: "empty pin"},
		{txt: []string{"sems2 forever"}, err: `unknown word "forever"`},
		{txt: []string{"sems2 until=tomorrow"}, err: "not an RFC 3339 time"},
		{txt: []string{"sems2 until=2026-11-21 18:00"}, err: "not an RFC 3339 time"},
		{txt: []string{"sems2 at=2026-11-21T17:00:00Z until=2026-11-21T18:00:00Z"}, want: zones.Pin{Node: "sems2", Start: until.Add(-time.Hour), Until: until}, text: "sems2 at=2026-11-21T17:00:00Z until=2026-11-21T18:00:00Z"},
		{txt: []string{"sems2 at=2026-11-21T18:00:00Z until=2026-11-21T18:00:00Z"}, err: "at= must come before until="},
		{txt: []string{`sems2 reason="patching sems1" force`}, want: zones.Pin{Node: "sems2", Force: true, Reason: "patching sems1"}, text: `sems2 force reason="patching sems1"`},
		{txt: []string{`sems2 reason=\"patching sems1\"`}, want: zones.Pin{Node: "sems2", Reason: "patching sems1"}, text: `sems2 reason="patching sems1"`}, // as miekg/dns unpacks a quote
		{txt: []string{"sems2", "reason=ticket-42"}, want: zones.Pin{Node: "sems2", Reason: "ticket-42"}, text: `sems2 reason="ticket-42"`},
		{txt: []string{`sems2 reason="open`}, err: "quote is not closed"},
		{txt: []string{`sems2 reason=""`}, err: "reason must be 1 to 200"},
		{txt: []string{"sems2 reason=" + strings.Repeat("x", 201)}, err: "reason must be 1 to 200"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.txt, "|"), func(t *testing.T) {
			p, err := zones.ParsePin(c.txt)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("ParsePin(%q) = %+v, %v; want an error containing %q", c.txt, p, err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePin(%q): %v", c.txt, err)
			}
			if p.Node != c.want.Node || p.Force != c.want.Force || !p.Until.Equal(c.want.Until) {
				t.Errorf("ParsePin(%q) = %+v, want %+v", c.txt, p, c.want)
			}
			if got := p.Text(); got != c.text {
				t.Errorf("Text() = %q, want %q", got, c.text)
			}
			// The text reads back to the same pin.
			q, err := zones.ParsePin([]string{p.Text()})
			if err != nil || q.Node != p.Node || q.Force != p.Force || !q.Until.Equal(p.Until) {
				t.Errorf("ParsePin(Text()) = %+v, %v; want %+v", q, err, p)
			}
		})
	}
}

func TestPinActive(t *testing.T) {
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	if !(zones.Pin{Node: "a"}).Active(now) {
		t.Error("a pin without until is not active")
	}
	if !(zones.Pin{Node: "a", Until: now.Add(time.Second)}).Active(now) {
		t.Error("a pin until a second from now is not active")
	}
	if (zones.Pin{Node: "a", Until: now}).Active(now) {
		t.Error("a pin is still active at its until")
	}
	if (zones.Pin{Node: "a", Until: now.Add(-time.Second)}).Active(now) {
		t.Error("a pin is active after its until")
	}
}

func TestPinKeyName(t *testing.T) {
	if got := (zones.PinKey{Service: "keys.demo.test."}).Name(); got != "_pin.keys.demo.test." {
		t.Errorf("Name() = %q", got)
	}
	if got := (zones.PinKey{Service: "keys.demo.test.", Location: "emea"}).Name(); got != "_pin.emea._loc.keys.demo.test." {
		t.Errorf("Name() = %q", got)
	}
}

func samplePins() map[zones.PinKey]zones.Pin {
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	return map[zones.PinKey]zones.Pin{
		{Service: "keys.demo.test."}:                   {Node: "sems2", Key: "admin.", From: "127.0.0.1", At: at},
		{Service: "keys.demo.test.", Location: "emea"}: {Node: "sems3", Force: true, Until: at.Add(time.Hour), Key: "admin.", From: "::1", At: at},
		{Service: "other.demo.test."}:                  {Node: "sems1"},
	}
}

// samePins compares pins by value, times with Equal.
func samePins(a, b map[zones.PinKey]zones.Pin) bool {
	if len(a) != len(b) {
		return false
	}
	for k, p := range a {
		q, ok := b[k]
		if !ok || p.Node != q.Node || p.Force != q.Force || !p.Until.Equal(q.Until) ||
			p.Key != q.Key || p.From != q.From || !p.At.Equal(q.At) || p.Static != q.Static {
			return false
		}
	}
	return true
}

func TestPinStoreRoundTrip(t *testing.T) {
	// The folder does not exist yet: opening is fine (no pins), and the
	// first save creates it.
	dir := filepath.Join(t.TempDir(), "state", "sub")
	st, pins, err := zones.OpenPinStore(dir)
	if err != nil {
		t.Fatalf("OpenPinStore on a missing folder: %v", err)
	}
	if len(pins) != 0 {
		t.Fatalf("OpenPinStore on a missing folder: %d pins, want 0", len(pins))
	}
	want := samplePins()
	if err := st.Save(want); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if got := testenv.DirNames(t, dir); !slices.Equal(got, []string{"pins.json"}) {
		t.Errorf("after Save the folder holds %v, want only pins.json (no temporary file left)", got)
	}
	_, got, err := zones.OpenPinStore(dir)
	if err != nil {
		t.Fatalf("OpenPinStore after Save: %v", err)
	}
	if !samePins(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}

	// Saving is deterministic: the same pins give the same bytes.
	b1, err := os.ReadFile(filepath.Join(dir, "pins.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Save(samplePins()); err != nil {
		t.Fatal(err)
	}
	b2, _ := os.ReadFile(filepath.Join(dir, "pins.json"))
	if !bytes.Equal(b1, b2) {
		t.Errorf("two saves of the same pins differ:\n%s\n---\n%s", b1, b2)
	}

	// An empty set saves and reads back as empty.
	if err := st.Save(map[zones.PinKey]zones.Pin{}); err != nil {
		t.Fatal(err)
	}
	_, got, err = zones.OpenPinStore(dir)
	if err != nil || len(got) != 0 {
		t.Errorf("after saving no pins: OpenPinStore = %v, %v; want no pins", got, err)
	}
}

func TestPinStoreCorrupt(t *testing.T) {
	cases := map[string]string{
		"garbage":          "{this is not json",
		"empty file":       "",
		"torn":             "{\n  \"version\": 1,\n  \"pins\": [\n    {\n      \"service\": \"keys.demo.test.\",\n      \"node\": \"se",
		"wrong version":    `{"version": 2, "pins": []}`,
		"no version":       `{"pins": []}`,
		"pin without node": `{"version": 1, "pins": [{"service": "keys.demo.test."}]}`,
		"unknown field":    `{"version": 1, "pins": [], "extra": true}`,
		"not an object":    `[1, 2, 3]`,
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "pins.json")
			if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			st, pins, err := zones.OpenPinStore(dir)
			if err == nil {
				t.Fatalf("OpenPinStore accepted %q: %v pins", body, pins)
			}
			if !errors.Is(err, zones.ErrCorruptState) {
				t.Errorf("error is not ErrCorruptState: %v", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error does not name the file %s: %v", path, err)
			}
			if !strings.Contains(err.Error(), "-ignore-state") {
				t.Errorf("error does not say how to start anyway (-ignore-state): %v", err)
			}
			if st != nil || pins != nil {
				t.Errorf("OpenPinStore returned a store or pins with its error")
			}
			// The file is left as it was for the operator to inspect.
			if b, _ := os.ReadFile(path); string(b) != body {
				t.Errorf("OpenPinStore changed the corrupt file")
			}
		})
	}
}

// crash is what the hook panics with to stop a save at one step, as a
// crash of the process would.
type crash struct{ step string }

// TestPinStoreCrashAtEachStep stops a save at each step (by panicking from
// the Hook) and checks what a restart would read: pins.json is always the
// complete old or the complete new content, never torn, and OpenPinStore
// reads it back without error.
func TestPinStoreCrashAtEachStep(t *testing.T) {
	oldPins := map[zones.PinKey]zones.Pin{{Service: "keys.demo.test."}: {Node: "sems1", Key: "admin.", From: "127.0.0.1", At: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}}
	newPins := samplePins()

	// The steps, in order, of an uninterrupted save.
	var steps []string
	st := zones.NewPinStore(t.TempDir())
	st.Hook = func(s string) { steps = append(steps, s) }
	if err := st.Save(newPins); err != nil {
		t.Fatal(err)
	}
	if want := []string{"write", "fsync", "rename"}; !slices.Equal(steps, want) {
		t.Fatalf("hook steps = %v, want %v", steps, want)
	}

	for _, tc := range []struct {
		step    string
		wantNew bool // after this step the new content is in place
	}{
		{"write", false},
		{"fsync", false},
		{"rename", true},
	} {
		t.Run(tc.step, func(t *testing.T) {
			dir := t.TempDir()
			st, _, err := zones.OpenPinStore(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Save(oldPins); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "pins.json")
			oldBytes, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}

			st.Hook = func(s string) {
				if s == tc.step {
					panic(crash{s})
				}
			}
			crashed := func() (c bool) {
				defer func() {
					if r := recover(); r != nil {
						if _, ok := r.(crash); !ok {
							panic(r)
						}
						c = true
					}
				}()
				_ = st.Save(newPins)
				return false
			}()
			if !crashed {
				t.Fatalf("the hook was not called at step %q", tc.step)
			}

			// What a restart sees.
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("after a crash at %q pins.json is gone: %v", tc.step, err)
			}
			_, pins, err := zones.OpenPinStore(dir)
			if err != nil {
				t.Fatalf("after a crash at %q OpenPinStore fails: %v\n%s", tc.step, err, got)
			}
			switch {
			case bytes.Equal(got, oldBytes):
				if tc.wantNew {
					t.Errorf("crash after %q: pins.json still holds the old pins; the rename has happened, so the new pins must be in place", tc.step)
				}
				if !samePins(pins, oldPins) {
					t.Errorf("old content reads back as %+v", pins)
				}
			case samePins(pins, newPins):
				if !tc.wantNew {
					t.Errorf("crash after %q: pins.json already holds the new pins before the rename", tc.step)
				}
			default:
				t.Errorf("crash after %q: pins.json is neither the old nor the new content:\n%s", tc.step, got)
			}
			for _, name := range testenv.DirNames(t, dir) {
				if name != "pins.json" && !strings.HasPrefix(name, "pins.json.tmp-") {
					t.Errorf("unexpected file %s in the state folder", name)
				}
			}

			// A temporary file left by the crash does not stop the next
			// save, which completes normally.
			st.Hook = nil
			if err := st.Save(newPins); err != nil {
				t.Fatalf("Save after the crash: %v", err)
			}
			if _, pins, err := zones.OpenPinStore(dir); err != nil || !samePins(pins, newPins) {
				t.Errorf("after a clean save: %+v, %v", pins, err)
			}
		})
	}
}

// TestPinStoreSaveFails: when the folder cannot be written, Save says so and
// the pins on disk stay the previous ones.
func TestPinStoreSaveFails(t *testing.T) {
	// A path whose parent is a regular file: no folder can be made there,
	// even by root.
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, []byte("not a folder\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	st := zones.NewPinStore(filepath.Join(file, "sub"))
	if err := st.Save(samplePins()); err == nil {
		t.Error("Save under a regular file succeeded")
	}
	if err := st.Writable(); err == nil {
		t.Error("Writable under a regular file reports no error")
	}

	// A save whose rename fails (pins.json has become a non-empty folder)
	// reports the error and removes its temporary file.
	dir := filepath.Join(base, "state")
	st2 := zones.NewPinStore(dir)
	if err := st2.Writable(); err != nil {
		t.Fatalf("Writable on a fresh folder: %v", err)
	}
	if err := st2.Save(samplePins()); err != nil {
		t.Fatal(err)
	}
	// Make pins.json's rename target a non-empty folder: rename fails.
	if err := os.Remove(filepath.Join(dir, "pins.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "pins.json", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := st2.Save(map[zones.PinKey]zones.Pin{}); err == nil {
		t.Error("Save succeeded although pins.json is a non-empty folder")
	}
	for _, name := range testenv.DirNames(t, dir) {
		if strings.HasPrefix(name, "pins.json.tmp-") {
			t.Errorf("a failed Save left its temporary file %s", name)
		}
	}
}

// TestStaticPins loads _pin TXT records from a zone file: valid ones are in
// StaticPins; bad ones are load errors at the record's line.
func TestStaticPins(t *testing.T) {
	const cfg = `[server]
listen = ["127.0.0.1:0"]
http = ""
state_dir = %q

[[zone]]
origin = "demo.test."
file = "demo.test.zone"

[[node]]
name = "sems1"
address = "127.0.10.1"
[node.check]
type = "none"

[[node]]
name = "sems2"
address = "127.0.10.2"
[node.check]
type = "none"

[[node]]
name = "sems3"
address = "127.0.10.3"
[node.check]
type = "none"

[[location]]
name = "emea"
subnets = ["127.0.99.0/24"]

[[service]]
name = "keys.demo.test."
nodes = ["sems1", "sems2"]
`
	const head = `$ORIGIN demo.test.
$TTL 300
@ IN SOA ns1.demo.test. hostmaster.demo.test. 1 3600 600 1209600 60
  IN NS ns1.demo.test.
ns1 IN A 127.0.0.1
`
	load := func(t *testing.T, extra string) (*zones.Snapshot, error) {
		t.Helper()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "demo.test.zone"), []byte(head+extra), 0o644); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "failoverdns.toml")
		if err := os.WriteFile(path, []byte(fmt.Sprintf(cfg, filepath.Join(dir, "state"))), 0o644); err != nil {
			t.Fatal(err)
		}
		return zones.Load(path)
	}

	t.Run("valid", func(t *testing.T) {
		snap, err := load(t, "_pin.keys.demo.test. IN TXT \"sems2 force\"\n_pin.emea._loc.keys IN TXT \"sems1\"\n")
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		want := map[zones.PinKey]zones.Pin{
			{Service: "keys.demo.test."}:                   {Node: "sems2", Force: true, Static: true},
			{Service: "keys.demo.test.", Location: "emea"}: {Node: "sems1", Static: true},
		}
		if got := snap.StaticPins(); !reflect.DeepEqual(got, want) {
			t.Errorf("StaticPins() = %+v, want %+v", got, want)
		}
	})

	// Line 6 is the first line after head.
	for _, c := range []struct {
		name, extra string
		line        int
		want        []string
	}{
		{"unknown node", "www IN A 192.0.2.80\n_pin.keys IN TXT \"sems9\"\n", 7, []string{`"sems9"`, "sems1, sems2"}},
		{"node not in the service", "_pin.keys IN TXT \"sems3\"\n", 6, []string{`"sems3"`, "not one of the service's nodes"}},
		{"bad pin text", "_pin.keys IN TXT \"sems2 always\"\n", 6, []string{`"always"`}},
		{"no such service", "_pin.nothere IN TXT \"sems2\"\n", 6, []string{"_pin.nothere.demo.test.", "not the pin of a configured service"}},
		{"no such location", "_pin.apac._loc.keys IN TXT \"sems2\"\n", 6, []string{"_pin.apac._loc.keys.demo.test."}},
		{"status in the zone", "_status.keys IN TXT \"sems1 up\"\n", 6, []string{"_status"}},
		{"two TXT records", "_pin.keys IN TXT \"sems1\"\n_pin.keys IN TXT \"sems2\"\n", 6, []string{"exactly one TXT"}},
		{"an A record", "_pin.keys IN A 192.0.2.1\n", 6, []string{"exactly one TXT"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := load(t, c.extra)
			if err == nil {
				t.Fatal("Load accepted the zone")
			}
			errs := zones.Errors(err)
			if len(errs) != 1 {
				t.Fatalf("want exactly one error, got %d:\n%v", len(errs), err)
			}
			var ze *zones.Error
			if !errors.As(errs[0], &ze) {
				t.Fatalf("error is %T, want *zones.Error: %v", errs[0], errs[0])
			}
			if filepath.Base(ze.File) != "demo.test.zone" || ze.Line != c.line {
				t.Errorf("error at %s:%d, want demo.test.zone:%d: %v", ze.File, ze.Line, c.line, ze)
			}
			msg := ze.Error()
			if !strings.Contains(msg, fmt.Sprintf("demo.test.zone:%d: ", c.line)) {
				t.Errorf("message does not start with file:line: %q", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not contain %q", msg, w)
				}
			}
		})
	}
}
