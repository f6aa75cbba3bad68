package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// version and revision are set at build time with
// -ldflags "-X main.version=... -X main.revision=..." (the container build
// does, since it has no .git); otherwise both come from the build info Go
// records: the module version and the VCS revision of the source tree.
var (
	version  = ""
	revision = ""
)

// buildInfo says exactly which code runs: `version` prints it, the start
// log line and failoverdns_build_info carry it.
type buildInfo struct {
	Version  string
	Revision string // VCS commit, "" when unknown
	Time     string // commit time, RFC 3339
	Modified bool   // built from a tree with uncommitted changes
	Go       string
}

func readBuildInfo() buildInfo {
	bi, _ := debug.ReadBuildInfo()
	return buildInfoFrom(bi, version, revision)
}

// buildInfoFrom combines Go's build info (nil when absent) with the values
// set by -ldflags, which win.
func buildInfoFrom(bi *debug.BuildInfo, version, revision string) buildInfo {
	b := buildInfo{Version: version, Revision: revision, Go: runtime.Version()}
	if bi != nil {
		if b.Version == "" && bi.Main.Version != "" {
			b.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if b.Revision == "" {
					b.Revision = s.Value
				}
			case "vcs.time":
				b.Time = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	if b.Version == "" {
		b.Version = "(devel)"
	}
	return b
}

// RevisionLabel is the revision as one word: "unknown", or the commit with
// "-modified" when the tree had uncommitted changes.
func (b buildInfo) RevisionLabel() string {
	switch {
	case b.Revision == "":
		return "unknown"
	case b.Modified:
		return b.Revision + "-modified"
	}
	return b.Revision
}

// String is the `version` line: failoverdns v1.2.3 (revision 0123abc…, 2026-11-21T10:00:00Z; go1.26.8 linux/amd64)
func (b buildInfo) String() string {
	var d []string
	d = append(d, "revision "+b.RevisionLabel())
	if b.Time != "" {
		d[0] += ", " + b.Time
	}
	d = append(d, b.Go+" "+runtime.GOOS+"/"+runtime.GOARCH)
	return fmt.Sprintf("failoverdns %s (%s)", b.Version, strings.Join(d, "; "))
}
