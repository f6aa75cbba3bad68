package zones

import (
	"log/slog"
	"os"
)

// Member is an instance's part in a cluster (README "Running several
// nameservers"): it feeds the engine what the cluster agreed and commits
// pins. zones/cluster implements it over etcd.
type Member interface {
	Observe()          // the prober's view changed: publish it
	SetBase(*Snapshot) // a reload installed a new config
	IsLeader() bool    // this instance writes the cluster's decisions
	Close()            // leave the cluster; the lease lapses with it
}

// MemberOptions are what a Member needs from the instance it belongs to.
type MemberOptions struct {
	Engine   *Engine   // answers from what the member agrees
	Base     *Snapshot // the config in force; SetBase on reload
	Logger   *slog.Logger
	StateDir string
	Version  string
	DNSAddr  string
	// ImportPins are the pins of state_dir from before cluster mode,
	// written to etcd once (per instance) where etcd has none for the view.
	ImportPins map[PinKey]Pin
}

// joinCluster is set by zones/cluster when a binary links it: a build
// without the etcd client (no -tags cluster) pays none of etcd's, gRPC's
// and protobuf's package init at every start, and refuses [cluster] with
// ClusterSupport's error instead.
var joinCluster func(MemberOptions) (Member, error)

// RegisterCluster installs the implementation of [cluster]; zones/cluster
// calls it from its init.
func RegisterCluster(join func(MemberOptions) (Member, error)) { joinCluster = join }

// JoinCluster starts this instance's Member for o.Base's [cluster].
func JoinCluster(o MemberOptions) (Member, error) {
	if err := ClusterSupport(o.Base.Config); err != nil {
		return nil, err
	}
	return joinCluster(o)
}

// ClusterSupport says, at the [cluster] line, when cfg asks for a cluster
// and this binary cannot join one; nil otherwise. `check` and the server
// both call it, so neither finds out only when the other runs.
func ClusterSupport(cfg *Config) error {
	if cfg.Cluster == nil || joinCluster != nil {
		return nil
	}
	// The source is gone after Load; read it again only to name the line.
	line := 0
	if src, err := os.ReadFile(cfg.File); err == nil {
		line = scanTOMLLines(src).line("cluster")
	}
	var errs ErrorList
	errs.add(cfg.File, line, "[cluster]: this failoverdns was built without cluster support (the etcd client is linked only with -tags cluster); build it with: go build -tags cluster ./cmd/failoverdns")
	return errs
}
