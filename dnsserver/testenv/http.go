package testenv

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
)

// HTTPClient sends from the source address from ("" = any), never through
// a proxy, without keep-alives.
func HTTPClient(from string) *http.Client {
	d := &net.Dialer{Timeout: Timeout}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	return &http.Client{Timeout: Timeout, Transport: &http.Transport{Proxy: nil, DialContext: d.DialContext, DisableKeepAlives: true}}
}

// HTTPDo sends method path to addr from the source address from and
// returns the status code and body.
func HTTPDo(tb testing.TB, from, method, addr, path string) (int, string) {
	tb.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, "http://"+addr+path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := HTTPClient(from).Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp.StatusCode, string(body)
}

// HTTPGet GETs path from addr.
func HTTPGet(tb testing.TB, addr, path string) (int, string) {
	tb.Helper()
	return HTTPDo(tb, "", http.MethodGet, addr, path)
}
