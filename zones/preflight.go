package zones

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
)

// checkCAFile reads a ca_file the way the health checker will, so a missing
// or empty file is a config error instead of a node that never comes up.
func checkCAFile(path string) error {
	pem, err := os.ReadFile(path)
	if err != nil {
		return unwrapPathErr(err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		return errors.New("it holds no PEM certificate")
	}
	return nil
}

// Preflight checks, for `check`, what only fails once the server runs and
// that the server itself starts without: the state_dir where pins are saved
// must be writable (else every pin UPDATE is answered SERVFAIL), and
// server.probe_source must be an address of this host (else every node is
// down). It changes
// nothing on disk that it does not remove again. The config file is read
// again only to name the line of a finding.
func Preflight(cfg *Config) error {
	var errs ErrorList
	if err := stateDirWritable(cfg.Server.StateDir); err != nil {
		line := 0
		if src, rerr := os.ReadFile(cfg.File); rerr == nil {
			line = scanTOMLLines(src).line("server.state_dir")
		}
		errs.add(cfg.File, line, "server.state_dir %s: %v: pins set by UPDATE would be answered SERVFAIL; create the folder and give it to the user failoverdns runs as (systemd's StateDirectory= does), or run check as that user (uid %d now)",
			cfg.Server.StateDir, err, os.Geteuid())
	}
	if err := probeSourceLocal(cfg.Server.probeSource); err != nil {
		line := 0
		if src, rerr := os.ReadFile(cfg.File); rerr == nil {
			line = scanTOMLLines(src).line("server.probe_source")
		}
		errs.add(cfg.File, line, "server.probe_source %s is not an address of this host (%v): every health check would fail and every node be down; set one of this host's addresses, or remove probe_source to let the kernel choose",
			cfg.Server.probeSource, err)
	}
	return errs.err()
}

// probeSourceLocal reports whether probes could leave from src (zero:
// the kernel's choice, always). Binding a UDP socket asks the kernel the
// same question a probe's bind(2) will, and sends nothing.
func probeSourceLocal(src netip.Addr) error {
	if !src.IsValid() {
		return nil
	}
	c, err := net.ListenPacket("udp", netip.AddrPortFrom(src, 0).String())
	if err != nil {
		var se *os.SyscallError
		if errors.As(err, &se) {
			return se
		}
		return err
	}
	return c.Close()
}

// stateDirWritable reports whether a file could be created in dir, or, if
// dir does not exist yet, whether it could be created (the server makes it
// with MkdirAll on the first pin).
func stateDirWritable(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return errors.New("it is not a folder")
	case err == nil:
		f, err := os.CreateTemp(dir, ".check-*")
		if err != nil {
			return fmt.Errorf("not writable: %v", unwrapPathErr(err))
		}
		f.Close()
		return os.Remove(f.Name())
	case errors.Is(err, syscall.ENOTDIR):
		return errors.New("it cannot be created: a part of the path is a file, not a folder")
	case !errors.Is(err, os.ErrNotExist):
		return unwrapPathErr(err)
	}
	// The nearest existing parent must take a new folder.
	parent := filepath.Dir(dir)
	for parent != filepath.Dir(parent) {
		if _, err := os.Stat(parent); err == nil {
			break
		}
		parent = filepath.Dir(parent)
	}
	probe, err := os.MkdirTemp(parent, ".check-*")
	if err != nil {
		return fmt.Errorf("it does not exist and cannot be created in %s: %v", parent, unwrapPathErr(err))
	}
	return os.Remove(probe)
}
