// Package cluster makes several failoverdns instances give one answer by
// deciding through etcd (README "Running several nameservers").
package cluster
