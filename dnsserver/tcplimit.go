package dnsserver

import (
	"container/list"
	"net"
	"sync"
	"sync/atomic"
)

// capListener bounds open TCP connections. When full, accepting a new
// connection closes the oldest one: a client that opens connections and sits
// on them (slowloris) cannot lock out newcomers, and every connection still
// gets at least as long as the ones opened after it.
type capListener struct {
	net.Listener
	max     func() int
	mu      sync.Mutex
	conns   *list.List // of *capConn, oldest first
	evicted atomic.Uint64
}

func newCapListener(ln net.Listener, max func() int) *capListener {
	return &capListener{Listener: ln, max: max, conns: list.New()}
}

type capConn struct {
	net.Conn
	l    *capListener
	elem *list.Element
	once sync.Once
}

func (l *capListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cc := &capConn{Conn: c, l: l}
	var oldest *capConn
	l.mu.Lock()
	if l.conns.Len() >= max(1, l.max()) {
		oldest = l.conns.Front().Value.(*capConn)
	}
	cc.elem = l.conns.PushBack(cc)
	l.mu.Unlock()
	if oldest != nil {
		l.evicted.Add(1)
		oldest.Close()
	}
	return cc, nil
}

func (c *capConn) Close() error {
	var err error
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.conns.Remove(c.elem)
		c.l.mu.Unlock()
		err = c.Conn.Close()
	})
	return err
}
