//go:build windows

package dnsserver

// Windows has no SO_REUSEPORT; one socket serves each address there.
func setReusePort(uintptr) error { return nil }
