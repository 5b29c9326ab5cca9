package server

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serveTest starts Serve on a loopback port and returns its URL, a cancel
// function that begins the shutdown, and a channel with Serve's result.
func serveTest(t *testing.T, s *Server, grace time.Duration) (string, context.CancelFunc, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, s, grace) }()
	t.Cleanup(cancel)
	return "http://" + ln.Addr().String(), cancel, done
}

// openStream starts a streaming completion and returns its body after the
// first event.
func openStream(t *testing.T, url string) io.ReadCloser {
	t.Helper()
	resp, err := http.Post(url+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"go","stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	return resp.Body
}

func TestShutdownFinishesInFlight(t *testing.T) {
	f := newFake()
	f.delay = 2 * time.Millisecond
	f.reply = func(string, GenerateOptions) string { return strings.Repeat("w", 100) }
	s, err := New(f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	url, cancel, done := serveTest(t, s, 10*time.Second)
	body := openStream(t, url)
	defer body.Close()
	br := bufio.NewReader(body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	cancel()
	st := readStream(t, br)
	if !st.done || st.finish != "stop" || len(st.text) != 99 { // the first event held one "w"
		t.Errorf("in-flight stream after shutdown: done %v finish %q %d bytes", st.done, st.finish, len(st.text))
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if !s.draining.Load() {
		t.Error("server not marked draining")
	}
	if _, err := http.Get(url + "/health"); err == nil {
		t.Error("server still accepts connections after shutdown")
	}
}

func TestShutdownCancelsAfterGrace(t *testing.T) {
	f := slowFake()
	f.delay = 5 * time.Millisecond // 400 tokens: at least 2 s, far beyond the grace period
	s, err := New(f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	url, cancel, done := serveTest(t, s, 50*time.Millisecond)
	body := openStream(t, url)
	defer body.Close()
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("shutdown took %v with a 50ms grace", d)
	}
	b, _ := io.ReadAll(body)
	if strings.Contains(string(b), "[DONE]") {
		t.Error("cancelled stream ended with [DONE]")
	}
	waitFor(t, "the generation to be cancelled", func() bool { return f.cancelled.Load() == 1 })
}

func TestListenAndServeBadAddr(t *testing.T) {
	s, err := New(newFake(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ListenAndServe(context.Background(), "256.0.0.1:bad", s); err == nil || !strings.HasPrefix(err.Error(), "server: ") {
		t.Errorf("ListenAndServe(bad addr) = %v", err)
	}
}
