// Command failoverdns is an authoritative DNS server that answers each
// service name with the one address of the active node of a cluster.
//
//	failoverdns                      the embedded demo on 127.0.0.1:5353
//	failoverdns -config FILE         serve
//	failoverdns check -config FILE   validate and summarise
//	failoverdns healthcheck [-addr host:port | -config FILE]
//	failoverdns version
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
	"runtime/debug"
	"syscall"
	"time"

	"github.com/failoverdns/failoverdns/dnsserver"
	"github.com/failoverdns/failoverdns/zones"
)

// version is set at build time with -ldflags "-X main.version=..."; otherwise
// it comes from the module build info.
var version = ""

//go:embed demo
var demoFS embed.FS

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
		case "version":
			fmt.Fprintln(stdout, "failoverdns", getVersion())
			return 0
		}
	}
	return cmdServe(args, stdout, stderr)
}

func getVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

func newLogger(format string, w io.Writer) (*slog.Logger, error) {
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, fmt.Errorf("-log-format %q: want text or json", format)
}

func cmdServe(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("failoverdns", flag.ContinueOnError)
	fl.SetOutput(stderr)
	configPath := fl.String("config", "", "config file (TOML); without it, the embedded demo runs")
	logFormat := fl.String("log-format", "text", "log format: text or json")
	ignoreState := fl.Bool("ignore-state", false, "start even if the saved pin state in state_dir is corrupt, without those pins")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(stderr, "failoverdns: unexpected argument %q; subcommands are check and version\n", fl.Arg(0))
		return 2
	}
	logger, err := newLogger(*logFormat, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "failoverdns:", err)
		return 2
	}
	// SIGHUP's default action ends the process: catch it before anything
	// else, so a reload sent while probing at startup is a reload (done
	// once serving), not a crash.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

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

	snap, err := zones.Load(*configPath)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	var nodes *demoNodes
	if demo {
		if nodes, err = startDemoNodes(snap); err != nil {
			fmt.Fprintln(stderr, "failoverdns: demo:", err)
			return 1
		}
		defer nodes.Close()
	}
	in, err := dnsserver.StartWith(snap, dnsserver.Options{Logger: logger, Version: getVersion(), IgnoreState: *ignoreState, ConfigPath: *configPath})
	if err != nil {
		fmt.Fprintln(stderr, "failoverdns:", err)
		return 1
	}
	if demo {
		fmt.Fprintf(stdout, demoBanner, in.Server.Addrs(), os.Getpid())
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if demo {
		go nodes.toggleOnSignal(ctx, logger)
	}
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-hup:
			logger.Info("SIGHUP: reloading", "config", *configPath)
			_ = in.Reload() // on error the old config stays; Reload logs why
		}
	}
	logger.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
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
	snap, err := zones.Load(*configPath)
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

// cmdHealthcheck asks a running server's /healthz, for container health
// checks that must not depend on curl: exit 0 when healthy, 1 otherwise.
func cmdHealthcheck(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("failoverdns healthcheck", flag.ContinueOnError)
	fl.SetOutput(stderr)
	addr := fl.String("addr", zones.DefaultHTTP, "the server's http address (server.http)")
	configPath := fl.String("config", "", "read the http address from this config instead of -addr")
	timeout := fl.Duration("timeout", 3*time.Second, "give up after this long")
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
	resp, err := client.Get("http://" + *addr + "/healthz")
	if err != nil {
		fmt.Fprintln(stderr, "healthcheck:", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(stderr, "healthcheck: /healthz answered", resp.Status)
		return 1
	}
	fmt.Fprintln(stdout, "healthy")
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
