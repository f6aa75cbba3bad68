// Command failoverdns is an authoritative DNS server that answers each
// service name with the one address of the active node of a cluster. See
// usage below for the subcommands, and deploy/ for the systemd unit, an
// example config and the Prometheus alert rules.
package main

import (
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/failoverdns/failoverdns/dnsserver"
	"github.com/failoverdns/failoverdns/zones"
)

//go:embed demo
var demoFS embed.FS

const usageText = `failoverdns: an authoritative DNS server that answers each service name with
the one address of the healthy active node of a cluster.

Usage:
  failoverdns [-config FILE] [-log-format text|json] [-log-level info] [-ignore-state]
        serve; without -config, the embedded demo on 127.0.0.1:5353
  failoverdns check -config FILE
        validate the config and every file it names, print a summary and
        warnings; exit 1 with file:line: messages on any error
  failoverdns healthcheck [-addr host:port | -config FILE] [-ready] [-timeout 3s]
        ask a running server's /healthz (with -ready: /readyz); exit 0 or 1
  failoverdns version           (also -version, --version)
        print the version and the VCS revision it was built from
  failoverdns help              (also -h, --help)
        print this text

Signals: SIGHUP reloads the config and zones, SIGTERM and SIGINT stop.
Deployment files (systemd unit, example config, alert rules): deploy/.
`

func usage(w io.Writer) { fmt.Fprint(w, usageText) }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "check":
			return cmdCheck(args[1:], stdout, stderr)
		case "healthcheck":
			return cmdHealthcheck(args[1:], stdout, stderr)
		case "version", "-version", "--version":
			fmt.Fprintln(stdout, readBuildInfo())
			return 0
		case "help", "-h", "-help", "--help":
			usage(stdout)
			return 0
		}
	}
	return cmdServe(args, stdout, stderr)
}

// newLogger builds the process logger. Durations are written as seconds
// (a float), in text and JSON alike: slog's defaults are "1.5ms" in text
// and integer nanoseconds in JSON, neither of which a log query can compare
// with a number of seconds.
func newLogger(format, level string, w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: want debug, info, warn or error", level)
	}
	o := &slog.HandlerOptions{Level: lv, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Value.Kind() == slog.KindDuration {
			a.Value = slog.Float64Value(a.Value.Duration().Seconds())
		}
		return a
	}}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	}
	return nil, fmt.Errorf("-log-format %q: want text or json", format)
}

func cmdServe(args []string, stdout, stderr io.Writer) int {
	knobs := runtimeKnobs() // before any listener raises GOMAXPROCS
	// Catch the stop and reload signals before anything else: their
	// default action ends the process, and the listeners answer before
	// StartWith returns, so a SIGTERM sent by a supervisor as soon as the
	// port answers (or while probing) must already be ours. A stop that
	// arrives during start is acted on as soon as StartWith returns; a
	// SIGHUP then is a reload (done once serving), not a crash.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(stop)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	fl := flag.NewFlagSet("failoverdns", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() {
		usage(stderr)
		fmt.Fprintln(stderr, "\nServe flags:")
		fl.PrintDefaults()
	}
	configPath := fl.String("config", "", "config file (TOML); without it, the embedded demo runs")
	logFormat := fl.String("log-format", "text", "log format: text or json")
	logLevel := fl.String("log-level", "info", "least severe log level written: debug, info, warn or error")
	ignoreState := fl.Bool("ignore-state", false, "start even if the saved pin state in state_dir is corrupt, without those pins")
	showVersion := fl.Bool("version", false, "print the version and exit")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fl.SetOutput(stdout)
			usage(stdout)
			fmt.Fprintln(stdout, "\nServe flags:")
			fl.PrintDefaults()
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, readBuildInfo())
		return 0
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(stderr, "failoverdns: unexpected argument %q; the subcommands are check, healthcheck, version and help\n", fl.Arg(0))
		return 2
	}
	logger, err := newLogger(*logFormat, *logLevel, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "failoverdns:", err)
		return 2
	}
	bi := readBuildInfo()
	// The first log line: which code runs, and (for tests and
	// supervisors) the signal handlers are in place from here on.
	logger.Info("starting", "version", bi.Version, "revision", bi.RevisionLabel(), "go", bi.Go, "pid", os.Getpid(), "config", *configPath)
	demo := *configPath == ""
	if demo {
		dir, err := unpackDemo()
		if err != nil {
			fmt.Fprintln(stderr, "failoverdns: demo:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		*configPath = filepath.Join(dir, "demo.toml")
	}

	// Held until the server answers: the first decisions and the fast
	// path's table are nearly all live too (a 100,000-service start).
	restoreGC := knobs.LoadGC()
	defer restoreGC()
	snap, err := zones.Load(*configPath)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	for _, w := range snap.Warnings() {
		logger.Warn("config", "warning", w)
	}
	var nodes *demoNodes
	if demo {
		if nodes, err = startDemoNodes(snap); err != nil {
			fmt.Fprintln(stderr, "failoverdns: demo:", err)
			return 1
		}
		defer nodes.Close()
	}
	select {
	case sig := <-stop:
		logger.Info("stopping before serving", "signal", sig.String())
		return 0
	default:
	}
	in, err := dnsserver.StartWith(snap, dnsserver.Options{Logger: logger, Version: bi.Version, Revision: bi.RevisionLabel(), IgnoreState: *ignoreState, ConfigPath: *configPath, Runtime: knobs})
	restoreGC()
	if err != nil {
		fmt.Fprintln(stderr, "failoverdns:", err)
		return 1
	}
	// Ready: the first probe round is done and every listener is bound.
	if err := sdNotify("READY=1\nSTATUS=serving"); err != nil {
		logger.Warn("telling systemd we are ready (NOTIFY_SOCKET)", "err", err)
	}
	if demo {
		fmt.Fprintf(stdout, demoBanner, in.Server.Addrs(), os.Getpid(), in.HTTPAddr)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if demo {
		go nodes.toggleOnSignal(ctx, logger)
	}
	for done := false; !done; {
		select {
		case sig := <-stop:
			logger.Info("stopping", "signal", sig.String())
			done = true
		case <-hup:
			logger.Info("SIGHUP: reloading", "config", *configPath)
			// Off the signal loop, so that a SIGTERM during a reload (a
			// slow file system, a new node's first probe) is acted on at
			// once: Close cancels the reload, which keeps the old config.
			// Reloads run one at a time (Instance serialises them).
			go func() {
				status := "STATUS=serving; last reload succeeded"
				if err := in.Reload(); err != nil { // the old config stays; Reload logs why
					status = "STATUS=serving the previous configuration: the last reload failed"
				}
				if ctx.Err() == nil { // not a reload Close canceled
					_ = sdNotify(status)
				}
			}()
		}
	}
	cancel()
	_ = sdNotify("STOPPING=1")
	logger.Info("shutting down")
	shutCtx, shutCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer shutCancel()
	in.Close(shutCtx)
	return 0
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("failoverdns check", flag.ContinueOnError)
	fl.SetOutput(stderr)
	configPath := fl.String("config", "", "config file (TOML) to validate")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if *configPath == "" {
		fmt.Fprintln(stderr, "failoverdns check: -config FILE is required")
		return 2
	}
	restoreGC := runtimeKnobs().LoadGC()
	snap, err := zones.Load(*configPath)
	restoreGC()
	if err == nil {
		err = zones.ClusterSupport(snap.Config)
	}
	if err == nil {
		err = zones.Preflight(snap.Config)
	}
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	for _, w := range snap.Warnings() {
		fmt.Fprintln(stderr, "warning:", w)
	}
	fmt.Fprint(stdout, zones.Summary(snap))
	return 0
}

// cmdHealthcheck asks a running server's /healthz (alive), or with -ready
// its /readyz (probed once and listening: what a container health check
// wants), without depending on curl: exit 0 when healthy, 1 otherwise.
func cmdHealthcheck(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("failoverdns healthcheck", flag.ContinueOnError)
	fl.SetOutput(stderr)
	addr := fl.String("addr", zones.DefaultHTTP, "the server's http address (server.http)")
	configPath := fl.String("config", "", "read the http address from this config instead of -addr")
	timeout := fl.Duration("timeout", 3*time.Second, "give up after this long")
	ready := fl.Bool("ready", false, "ask /readyz (first probe round done, listeners bound) instead of /healthz (the process answers)")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if *configPath != "" {
		cfg, err := zones.ParseConfig(*configPath)
		if err != nil {
			printErrors(stderr, err)
			return 1
		}
		*addr = cfg.Server.HTTPAddr()
		if *addr == "" {
			fmt.Fprintln(stderr, "healthcheck: server.http is disabled in", *configPath)
			return 1
		}
	}
	client := &http.Client{Timeout: *timeout, Transport: &http.Transport{Proxy: nil}}
	path, word := "/healthz", "healthy"
	if *ready {
		path, word = "/readyz", "ready"
	}
	resp, err := client.Get("http://" + *addr + path)
	if err != nil {
		fmt.Fprintln(stderr, "healthcheck:", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(stderr, "healthcheck:", path, "answered", resp.Status)
		return 1
	}
	fmt.Fprintln(stdout, word)
	return 0
}

func printErrors(w io.Writer, err error) {
	for _, e := range zones.Errors(err) {
		fmt.Fprintln(w, e)
	}
}

// unpackDemo writes the embedded demo config and zone to a fresh folder, so
// the demo is loaded by exactly the code that loads an operator's files.
func unpackDemo() (string, error) {
	dir, err := os.MkdirTemp("", "failoverdns-demo-")
	if err != nil {
		return "", err
	}
	err = fs.WalkDir(demoFS, "demo", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := demoFS.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, filepath.Base(p)), b, 0o644)
	})
	if err != nil {
		os.RemoveAll(dir)
		return "", errors.Join(errors.New("unpacking the embedded demo"), err)
	}
	return dir, nil
}
