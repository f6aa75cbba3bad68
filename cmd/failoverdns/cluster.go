//go:build cluster

package main

// Cluster mode ([cluster], README "Running several nameservers") is linked
// only into `go build -tags cluster` binaries: the etcd client brings gRPC
// and protobuf, whose package init would otherwise slow every start of
// every single-server instance (bench/start.sh).
import _ "github.com/failoverdns/failoverdns/zones/cluster"
