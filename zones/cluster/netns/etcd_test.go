package netns_test

import (
	"context"
	"net"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/failoverdns/failoverdns/zones/cluster/etcdtest"
	"github.com/failoverdns/failoverdns/zones/cluster/netns"
)

// TestEtcdCutOff is the cluster fault tests' pattern end to end: inside a
// namespace, a real three-member etcd; a client that dials from its own
// source address (as a failoverdns instance does with [cluster] source)
// writes; cut off from every member, its writes fail; healed, they work
// again on the same client, while another source was never affected.
func TestEtcdCutOff(t *testing.T) {
	netns.Run(t, func(t *testing.T) {
		c := etcdtest.Start(t, etcdtest.Options{})
		client := func(src string) *clientv3.Client {
			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
			cli, err := clientv3.New(clientv3.Config{
				Endpoints:   c.Endpoints(),
				DialTimeout: 5 * time.Second,
				Logger:      zap.NewNop(),
				DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
					return d.DialContext(ctx, "tcp", addr)
				})},
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cli.Close() })
			return cli
		}
		put := func(cli *clientv3.Client, timeout time.Duration) error {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			_, err := cli.Put(ctx, "/k", "v")
			return err
		}
		cut, other := client("127.0.0.11"), client("127.0.0.12")
		for _, cli := range []*clientv3.Client{cut, other} {
			if err := put(cli, 30*time.Second); err != nil {
				t.Fatalf("put before the cut: %v", err)
			}
		}

		var addrs []string
		for i := range c.Members() {
			addrs = append(addrs, c.Member(i).Addr())
		}
		undo := netns.CutOff(t, "127.0.0.11", addrs...)
		if err := put(cut, 2*time.Second); err == nil {
			t.Fatal("a put from the cut-off source succeeded")
		}
		if err := put(other, 30*time.Second); err != nil {
			t.Fatalf("put from another source during the cut: %v", err)
		}

		undo()
		// The client reconnects on its own schedule (TCP retransmission,
		// gRPC backoff): poll until it writes again.
		deadline := time.Now().Add(60 * time.Second)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			err := put(cut, 5*time.Second)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the healed client still cannot write: %v", err)
			}
			<-tick.C
		}
	})
}
