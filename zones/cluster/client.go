package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/failoverdns/failoverdns/zones"
)

// Dial returns an etcd client for cfg. It does not wait for etcd: an
// instance that starts while etcd is down serves from its cache and
// connects when etcd comes back.
func Dial(cfg *zones.ClusterConfig, log *slog.Logger) (*clientv3.Client, error) {
	c := clientv3.Config{
		Endpoints:   cfg.Etcd,
		DialTimeout: cfg.RequestTimeout.Duration,
		// Keep-alives find a dead connection within a few seconds even
		// when no call is in flight, so a watch on a cut-off member
		// moves to another one instead of waiting for TCP to give up.
		DialKeepAliveTime:    cfg.SessionTTL.Duration,
		DialKeepAliveTimeout: cfg.RequestTimeout.Duration,
		Logger:               zapToSlog(log),
		// Debian ships etcd 3.4, which this client talks to for
		// everything we use (KV, Txn, Lease, Watch, election).
		RejectOldCluster:    false,
		PermitWithoutStream: true,
	}
	if src := cfg.SourceAddr(); src.IsValid() {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
		c.DialOptions = append(c.DialOptions, grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", stripScheme(addr))
		}))
	}
	if cfg.TLS() {
		t, err := tlsConfig(cfg)
		if err != nil {
			return nil, err
		}
		c.TLS = t
	}
	return clientv3.New(c)
}

// stripScheme drops what grpc's passthrough resolver may leave of the
// endpoint URL before the dialer sees it.
func stripScheme(addr string) string {
	for _, p := range []string{"unix://", "http://", "https://"} {
		addr = strings.TrimPrefix(addr, p)
	}
	return addr
}

func tlsConfig(cfg *zones.ClusterConfig) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cluster.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cluster.ca_file %s: no PEM certificate in it", cfg.CAFile)
		}
		t.RootCAs = pool
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cluster.cert_file/key_file: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}
