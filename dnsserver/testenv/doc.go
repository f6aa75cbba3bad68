// Package testenv is the one test environment of failoverdns: every
// package's tests start what they test, talk to it and read its log through
// it.
//
//   - Config builds a failoverdns TOML config (and its zone files) from
//     fields, never by string concatenation in a test; Env writes it into a
//     temporary folder, starts a server on it through a Launcher (an
//     in-process instance in dnsserver's tests, the built binary in cmd's)
//     and stops it when the test ends.
//   - Exchange, Ask, Client: one query over UDP or TCP from a chosen
//     loopback source address (miekg/dns); Header, Frame, ReadFrame: raw
//     packets and TCP frames.
//   - Logs: a locked buffer a slog handler writes and a test reads.
//   - Tool, Unavailable: the outside programs tests drive (dig, nsupdate,
//     unbound, etcd, promtool, systemd-analyze, chromium); without one the
//     test is skipped with the Debian command that installs it, except under
//     CI=true, where it fails: CI installs them and must not pass by
//     skipping.
//   - FreePort, FreePortAll, ClosedPort: loopback ports.
//   - NewPKI, SharedPKI: a throwaway CA and certificates; HangingHTTP: a
//     health endpoint that never answers.
//
// It imports no failoverdns package, so the tests inside every package
// (dnsserver's own included) can use it without an import cycle; what it
// starts is given to it as a Launcher.
package testenv
