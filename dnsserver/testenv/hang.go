package testenv

import (
	"net"
	"net/http"
	"testing"
	"time"
)

// HangingHTTP serves HTTP on ip (a loopback address) and never answers
// until the test ends: a health endpoint that hangs, for tests of what a
// probe stuck until its timeout holds up. It returns the port and a
// channel that receives when the first request arrives (a probe is in
// progress).
func HangingHTTP(tb testing.TB, ip string) (port int, asked <-chan struct{}) {
	tb.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		tb.Fatal(err)
	}
	first := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case first <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})}
	go srv.Serve(ln)
	tb.Cleanup(func() { close(release); srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port, first
}

// SlowHTTP serves HTTP on ip (a loopback address) and answers 200 to every
// request after delay: a health endpoint whose check takes a while. It
// returns the port.
func SlowHTTP(tb testing.TB, ip string, delay time.Duration) (port int) {
	tb.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
	})}
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}
