// Package etcdtest runs real etcd clusters on loopback for tests: every
// member a real etcd process with its own data folder, ports and log, so
// that a test can kill, stop and restart members and see what a production
// cluster would do. It is test support; only tests import it.
package etcdtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/failoverdns/failoverdns/dnsserver/testenv"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Deadlines. They are generous on purpose: they bound a broken run, and a
// healthy one ends as soon as the cluster serves, so they never set the
// pace. A loaded two-core machine under -race starts three members in a
// few seconds.
const (
	// ReadyTimeout bounds Start and Restart: from launch to serving.
	ReadyTimeout = 60 * time.Second
	// stopTimeout is how long Stop waits for SIGTERM before SIGKILL.
	stopTimeout = 20 * time.Second
	// callTimeout bounds one Put or Get of the readiness probe, so a
	// member that hangs is retried rather than waited on for the whole
	// ReadyTimeout.
	callTimeout = 3 * time.Second
	// pollEvery paces the readiness polls that fail at once (nothing
	// listening yet), so they do not spin.
	pollEvery = 50 * time.Millisecond
	// portAttempts is how many times Start picks fresh ports when a
	// member could not bind the ones it was given.
	portAttempts = 5
	// logTail is how many lines of each member's log a failed test shows.
	logTail = 50
)

// Binary returns the path of the etcd server on PATH. Without one the test
// is skipped with the command that installs it, except under CI=true,
// where a missing etcd fails the test: CI must not pass by skipping.
func Binary(t testing.TB) string {
	t.Helper()
	return testenv.Tool(t, "etcd-server", "etcd")
}

// Options shape a cluster. The zero value is three members on 127.0.0.1,
// 127.0.0.2 and 127.0.0.3.
type Options struct {
	// Members is the number of members; default len(Addrs), else 3.
	Members int
	// Addrs are the loopback addresses the members listen on, one per
	// member; default 127.0.0.1, 127.0.0.2, ... . Distinct addresses let
	// a fault test tell members apart by address.
	Addrs []string
	// Binary is the etcd server to run; default Binary(t).
	Binary string
	// ExtraArgs are appended to every member's command line, for
	// instance "--heartbeat-interval=50".
	ExtraArgs []string
}

// Cluster is a running etcd cluster. Its members are killed when the test
// ends.
type Cluster struct {
	t       testing.TB
	binary  string
	extra   []string
	token   string
	members []*Member
}

// Member is one etcd process of a Cluster. Its methods are meant for the
// test's goroutine: they fail the test with t.Fatal.
type Member struct {
	c          *Cluster
	index      int
	name       string
	addr       string
	clientPort int
	peerPort   int
	dir        string // data folder
	logPath    string

	mu   sync.Mutex
	proc *testenv.Proc // the running process; nil when none was started
}

// Start runs a new etcd cluster for t and waits until every member serves
// a linearizable Put and Get. Members that cannot bind their ports (taken
// by something else between choosing and binding) make Start try again
// with fresh ports, a few times. The members are killed when t ends; a
// failed test shows the end of every member's log.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Binary == "" {
		opts.Binary = Binary(t)
	}
	n := opts.Members
	if n == 0 {
		n = max(len(opts.Addrs), 3)
	}
	addrs := opts.Addrs
	if len(addrs) == 0 {
		for i := range n {
			addrs = append(addrs, fmt.Sprintf("127.0.0.%d", i+1))
		}
	}
	if len(addrs) != n {
		t.Fatalf("etcdtest: %d members but %d addresses", n, len(addrs))
	}
	for _, a := range addrs {
		if ip := net.ParseIP(a); ip == nil || !ip.IsLoopback() {
			t.Fatalf("etcdtest: member address %q is not a loopback address", a)
		}
	}
	root := t.TempDir()
	c := &Cluster{t: t, binary: opts.Binary, extra: opts.ExtraArgs}
	// Registered before any launch, so it runs after every cleanup a
	// test registers later (a client closes before its cluster dies).
	t.Cleanup(c.cleanup)

	for attempt := 1; ; attempt++ {
		c.token = fmt.Sprintf("etcdtest-%d-%d", os.Getpid(), rand.Int64())
		c.members = c.members[:0]
		used := map[string]bool{}
		for i, a := range addrs {
			dir := filepath.Join(root, fmt.Sprintf("attempt%d", attempt), fmt.Sprintf("m%d", i))
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			m := &Member{
				c: c, index: i, name: fmt.Sprintf("m%d", i), addr: a,
				clientPort: pickPort(t, a, used), peerPort: pickPort(t, a, used),
				dir: filepath.Join(dir, "data"), logPath: filepath.Join(dir, "etcd.log"),
			}
			c.members = append(c.members, m)
		}
		for _, m := range c.members {
			m.launch(true)
		}
		err := c.waitAll()
		if err == nil {
			return c
		}
		if !errors.Is(err, errPortTaken) || attempt == portAttempts {
			t.Fatalf("etcdtest: the cluster did not start: %v", err)
		}
		t.Logf("etcdtest: attempt %d: %v; trying again with other ports", attempt, err)
		c.killAll()
	}
}

// pickPort is freePort; a test replaces it to make a port race happen.
var pickPort = freePort

// errPortTaken marks a member that exited because its port was taken.
var errPortTaken = errors.New("port taken")

// freePort picks a port on addr that nothing listens on now. It picks
// below the kernel's ephemeral range, so no outgoing connection and no
// listener on port 0 can take it while the member is down between a Kill
// and a Restart; only another test picking ports the same way could, and
// Start retries for that case.
func freePort(t testing.TB, addr string, used map[string]bool) int {
	t.Helper()
	lo, hi := 10000, ephemeralLow()
	for range 1000 {
		p := lo + rand.IntN(hi-lo)
		key := net.JoinHostPort(addr, strconv.Itoa(p))
		if used[key] {
			continue
		}
		ln, err := net.Listen("tcp", key)
		if err != nil {
			continue
		}
		ln.Close()
		used[key] = true
		return p
	}
	t.Fatalf("etcdtest: no free port on %s", addr)
	return 0
}

// ephemeralLow is the first port the kernel hands out on its own.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if p, err := strconv.Atoi(f[0]); err == nil && p > 11000 {
				return p
			}
		}
	}
	return 32768 // Linux's default
}

// Endpoints returns the members' client URLs, "http://127.0.0.1:PORT".
func (c *Cluster) Endpoints() []string {
	out := make([]string, len(c.members))
	for i, m := range c.members {
		out[i] = m.ClientURL()
	}
	return out
}

// Members returns the number of members.
func (c *Cluster) Members() int { return len(c.members) }

// Member returns member i (0-based).
func (c *Cluster) Member(i int) *Member { return c.members[i] }

// Client returns a client of the whole cluster, closed when t ends.
func (c *Cluster) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := newClient(c.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func newClient(endpoints []string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: callTimeout,
		// The client's own chatter (endpoint switches while a member is
		// down) is expected in these tests and would drown the test log.
		Logger: zap.NewNop(),
	})
}

// ClientURL is the member's client URL, "http://ADDR:PORT".
func (m *Member) ClientURL() string {
	return "http://" + net.JoinHostPort(m.addr, strconv.Itoa(m.clientPort))
}

// PeerURL is the member's peer URL, "http://ADDR:PORT".
func (m *Member) PeerURL() string {
	return "http://" + net.JoinHostPort(m.addr, strconv.Itoa(m.peerPort))
}

// Addr is the loopback address the member listens on.
func (m *Member) Addr() string { return m.addr }

// Name is the member's etcd name ("m0", "m1", ...).
func (m *Member) Name() string { return m.name }

// Running reports whether the member's process is running.
func (m *Member) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.proc != nil && !m.proc.Exited()
}

// Kill ends the member at once with SIGKILL, as a crash or kill -9 would,
// and returns after it has exited.
func (m *Member) Kill() {
	m.c.t.Helper()
	m.signal(syscall.SIGKILL, 0)
}

// Stop ends the member with SIGTERM, the way a service manager stops it,
// and returns after it has exited (SIGKILL after a generous wait).
func (m *Member) Stop() {
	m.c.t.Helper()
	m.signal(syscall.SIGTERM, stopTimeout)
}

func (m *Member) signal(sig syscall.Signal, grace time.Duration) {
	m.mu.Lock()
	p := m.proc
	m.mu.Unlock()
	if p == nil || p.Exited() {
		return
	}
	_ = p.Cmd.Process.Signal(sig)
	if grace > 0 {
		select {
		case <-p.Done():
			return
		case <-time.After(grace):
			m.c.t.Logf("etcdtest: %s did not stop within %s of %s: killing it", m.name, grace, sig)
			_ = p.Cmd.Process.Kill()
		}
	}
	<-p.Done()
}

// Restart starts a stopped or killed member again, with its data folder
// and ports, and waits until it has rejoined and serves a linearizable Put
// and Get (which needs a quorum: with most members down, start them all
// with Launch first, then wait with Cluster.WaitReady). A running member
// is killed first.
func (m *Member) Restart() {
	t := m.c.t
	t.Helper()
	m.Launch()
	if err := m.wait(time.Now().Add(ReadyTimeout)); err != nil {
		t.Fatalf("etcdtest: %s did not serve again after a restart: %v", m.name, err)
	}
}

// Launch starts a stopped or killed member again, with its data folder and
// ports, without waiting for it to serve. A running member is killed
// first.
func (m *Member) Launch() {
	m.c.t.Helper()
	m.Kill()
	m.launch(false)
}

// WaitReady waits until every running member serves a linearizable Put
// and Get.
func (c *Cluster) WaitReady() {
	c.t.Helper()
	if err := c.waitAll(); err != nil {
		c.t.Fatalf("etcdtest: %v", err)
	}
}

// launch starts the member's process; first says it is the cluster's
// first start, which creates the data folder.
func (m *Member) launch(first bool) {
	t := m.c.t
	t.Helper()
	var peers []string
	for _, o := range m.c.members {
		peers = append(peers, o.name+"="+o.PeerURL())
	}
	args := []string{
		"--name=" + m.name,
		"--data-dir=" + m.dir,
		"--listen-client-urls=" + m.ClientURL(),
		"--advertise-client-urls=" + m.ClientURL(),
		"--listen-peer-urls=" + m.PeerURL(),
		"--initial-advertise-peer-urls=" + m.PeerURL(),
		"--initial-cluster=" + strings.Join(peers, ","),
		// "new" also on a restart: etcd ignores the initial-cluster
		// flags once the data folder holds a member.
		"--initial-cluster-state=new",
		"--initial-cluster-token=" + m.c.token,
	}
	args = append(args, m.c.extra...)

	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child has its own copy
	fmt.Fprintf(logf, "=== etcdtest %s: %s %s\n", time.Now().Format(time.RFC3339Nano), m.c.binary, strings.Join(args, " "))

	cmd := exec.Command(m.c.binary, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = memberEnv()
	cmd.SysProcAttr = sysProcAttr()
	p, err := testenv.Spawn(cmd)
	if err != nil {
		t.Fatalf("etcdtest: start %s: %v", m.name, err)
	}
	m.mu.Lock()
	m.proc = p
	m.mu.Unlock()
}

// memberEnv is the test's environment without ETCD_* variables: etcd reads
// its flags from those too, and one set on the machine would change every
// member (or make etcd refuse a flag it shadows).
func memberEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			env = append(env, kv)
		}
	}
	if runtime.GOARCH != "amd64" {
		// etcd 3.4 refuses to start on architectures it calls
		// unsupported (arm64 among them) unless told so.
		env = append(env, "ETCD_UNSUPPORTED_ARCH="+runtime.GOARCH)
	}
	return env
}

// waitAll waits until every running member serves, all in parallel.
func (c *Cluster) waitAll() error {
	deadline := time.Now().Add(ReadyTimeout)
	errs := make([]error, len(c.members))
	var wg sync.WaitGroup
	for i, m := range c.members {
		if !m.Running() {
			continue
		}
		wg.Go(func() { errs[i] = m.wait(deadline) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// wait polls until the member serves a linearizable Put and Get, its
// process exits, or deadline passes.
func (m *Member) wait(deadline time.Time) error {
	m.mu.Lock()
	p := m.proc
	m.mu.Unlock()
	if p == nil {
		return fmt.Errorf("%s was never started", m.name)
	}
	exited := func() error {
		err := fmt.Errorf("%s exited (%v) before serving", m.name, p.Err())
		if strings.Contains(m.logTail(logTail), "address already in use") {
			return fmt.Errorf("%w: %w", err, errPortTaken)
		}
		return err
	}
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	go func() {
		// A member that dies while we wait ends the wait at once.
		select {
		case <-p.Done():
			cancel()
		case <-ctx.Done():
		}
	}()

	// First the port: a gRPC client made before anything listens backs off
	// for seconds after its first refused connection.
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(m.addr, strconv.Itoa(m.clientPort)))
		if err == nil {
			conn.Close()
			break
		}
		if err := m.waitTick(ctx, p, tick, exited); err != nil {
			return err
		}
	}
	cli, err := newClient([]string{m.ClientURL()})
	if err != nil {
		return err
	}
	defer cli.Close()
	key := "/etcdtest/ready/" + m.name
	var last error
	for {
		last = m.putGet(ctx, cli, key)
		if last == nil {
			return nil
		}
		if err := m.waitTick(ctx, p, tick, exited); err != nil {
			if p.Exited() {
				return err
			}
			return fmt.Errorf("%w (last try: %v)", err, last)
		}
	}
}

func (m *Member) waitTick(ctx context.Context, p *testenv.Proc, tick *time.Ticker, exited func() error) error {
	select {
	case <-tick.C:
	case <-ctx.Done():
	}
	if p.Exited() {
		return exited()
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s did not serve within %s", m.name, ReadyTimeout)
	}
	return nil
}

// putGet writes key through the member and reads it back linearizably,
// which only a member in contact with a quorum can do.
func (m *Member) putGet(ctx context.Context, cli *clientv3.Client, key string) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	val := strconv.FormatInt(rand.Int64(), 36)
	if _, err := cli.Put(ctx, key, val); err != nil {
		return err
	}
	resp, err := cli.Get(ctx, key)
	if err != nil {
		return err
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != val {
		return fmt.Errorf("read back %v, want %q", resp.Kvs, val)
	}
	return nil
}

// logTail returns the last n lines of the member's log.
func (m *Member) logTail(n int) string {
	f, err := os.Open(m.logPath)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// LogPath is the file the member's stdout and stderr go to, across
// restarts.
func (m *Member) LogPath() string { return m.logPath }

func (c *Cluster) killAll() {
	for _, m := range c.members {
		m.mu.Lock()
		p := m.proc
		m.mu.Unlock()
		if p != nil && !p.Exited() {
			_ = p.Cmd.Process.Kill()
			<-p.Done()
		}
	}
}

func (c *Cluster) cleanup() {
	if c.t.Failed() {
		for _, m := range c.members {
			c.t.Logf("etcdtest: last %d lines of %s's log (%s):\n%s", logTail, m.name, m.logPath, m.logTail(logTail))
		}
	}
	c.killAll()
}
