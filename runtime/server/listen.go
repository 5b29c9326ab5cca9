package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// DefaultAddr is loopback only: the server has no authentication.
const DefaultAddr = "127.0.0.1:8080"

// DefaultShutdownGrace is how long ListenAndServe lets in-flight requests
// finish after its context is cancelled before it cancels them.
const DefaultShutdownGrace = 10 * time.Second

// ListenAndServe serves h on addr until ctx is cancelled, then shuts down
// gracefully (see Serve).
func ListenAndServe(ctx context.Context, addr string, h http.Handler) error {
	if addr == "" {
		addr = DefaultAddr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	return Serve(ctx, ln, h, DefaultShutdownGrace)
}

// Serve serves h on ln until ctx is cancelled. Then it stops accepting
// connections, answers /health with 503 and new generations with 503 (when h
// is a *Server), and waits up to grace for in-flight requests to finish;
// requests still running after that have their contexts cancelled, which
// stops their generations, and their connections closed. It returns nil
// after a clean shutdown.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, grace time.Duration) error {
	base, cancelAll := context.WithCancel(context.Background())
	defer cancelAll()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	maxConns := DefaultMaxConns
	s, isServer := h.(*Server)
	if isServer {
		maxConns = s.opts.MaxConns
	}
	ln = newLimitListener(ln, maxConns)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		return fmt.Errorf("server: %w", err)
	case <-ctx.Done():
	}
	if isServer {
		s.drain()
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		// Grace is over: cancel the generations still running, give their
		// handlers a moment to return, then drop the connections.
		cancelAll()
		wctx, wcancel := context.WithTimeout(context.Background(), time.Second)
		defer wcancel()
		if srv.Shutdown(wctx) != nil {
			srv.Close()
		}
		err = nil
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("server: %w", serr)
	}
	if err != nil {
		return fmt.Errorf("server: shutdown: %w", err)
	}
	return nil
}

// limitListener accepts at most max connections at once; further clients
// wait in the kernel's backlog until one closes.
type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{} // closed by Close, which ends a waiting Accept
	closeOnce sync.Once
}

func newLimitListener(ln net.Listener, max int) *limitListener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, max), done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: sync.OnceFunc(func() { <-l.sem })}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn gives its place back when closed (once, however often Close is called).
type limitConn struct {
	net.Conn
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}
