package main

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/failoverdns/failoverdns/dnsserver/testenv"
)

// binOpts shape how startBinary runs the binary.
type binOpts struct {
	// listen are the listen addresses, "%d" standing for the DNS port
	// (free on every address when a host is a wildcard); nil:
	// "127.0.0.1:%d".
	listen []string
	http   bool     // http on a free port of 127.0.0.1 of its own
	args   []string // after -config
	// ready says whether the server started: nil waits until the
	// config's first zone's SOA is answered on 127.0.0.1:port.
	ready func(s *server) error
}

// server is the binary running on a config testenv wrote.
type server struct {
	*testenv.Env
	p    *proc
	port int // the DNS port
	o    binOpts
}

// startBinary is the one way this package's tests start failoverdns: it
// writes c into a temporary folder, with listen (and http) on free ports,
// runs the binary on it and waits until it is ready. A port taken in
// between is retried with others; a restart (s.Launch after s.Stop or a
// kill) keeps the ports.
func startBinary(t testing.TB, c testenv.Config, o binOpts) *server {
	t.Helper()
	s := prepareBinary(t, c, o)
	s.Launch(t)
	return s
}

// prepareBinary is startBinary without the start: its ports are chosen and
// the config written; s.Launch starts it.
func prepareBinary(t testing.TB, c testenv.Config, o binOpts) *server {
	t.Helper()
	if o.listen == nil {
		o.listen = []string{"127.0.0.1:%d"}
	}
	s := &server{o: o}
	s.Env = testenv.New(t, c, s.launch)
	s.pickPorts(t)
	return s
}

// pickPorts writes the config again with new free ports (listen
// addresses without "%d" are kept as they are).
func (s *server) pickPorts(t testing.TB) {
	t.Helper()
	wild, free := false, false
	for _, l := range s.o.listen {
		h, _, _ := net.SplitHostPort(l)
		wild = wild || h == "" || h == "0.0.0.0" || h == "::"
		free = free || strings.Contains(l, "%d")
	}
	switch {
	case !free:
		_, p, _ := net.SplitHostPort(s.o.listen[0])
		s.port, _ = strconv.Atoi(p)
	case wild:
		s.port = testenv.FreePortAll(t)
	default:
		s.port = testenv.FreePort(t)
	}
	c := s.Config
	c.Listen = nil
	for _, l := range s.o.listen {
		c.Listen = append(c.Listen, strings.ReplaceAll(l, "%d", strconv.Itoa(s.port)))
	}
	if s.o.http {
		hp := s.port
		for hp == s.port {
			hp = testenv.FreePort(t)
		}
		c.HTTP = net.JoinHostPort("127.0.0.1", strconv.Itoa(hp))
	}
	s.Write(t, c)
}

// addr is the DNS address: the first listen address, 127.0.0.1 for a
// wildcard.
func (s *server) addr() string {
	h, _, _ := net.SplitHostPort(s.Config.Listen[0])
	if h == "" || h == "0.0.0.0" || h == "::" {
		h = "127.0.0.1"
	}
	return net.JoinHostPort(h, strconv.Itoa(s.port))
}

func (s *server) launch(t testing.TB, e *testenv.Env) testenv.Server {
	t.Helper()
	restart := s.p != nil
	for try := 0; ; try++ {
		s.p = startProc(t, append([]string{"-config", e.ConfigPath}, s.o.args...)...)
		var err error
		if s.o.ready != nil {
			err = s.o.ready(s)
		} else {
			err = s.p.waitReady(s.addr(), e.Config.Zones[0].Origin)
		}
		if err == nil {
			p := s.p
			return testenv.Server{Addr: s.addr(), HTTP: e.Config.HTTP, Stop: func() {
				if !p.Exited() {
					p.Terminate(t)
				}
			}}
		}
		if try < 4 && errors.Is(err, errExited) && strings.Contains(s.p.Stderr.String(), "address already in use") {
			if restart {
				// A killed process's sockets are gone once it is
				// reaped; allow a moment.
				time.Sleep(50 * time.Millisecond)
			} else {
				s.pickPorts(t) // someone took a port in between: try others
			}
			continue
		}
		t.Fatalf("failoverdns did not start: %v\nstderr:\n%s", err, s.p.Stderr.String())
	}
}
