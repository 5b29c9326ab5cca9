package server

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestErrorMessagesStaySmall: error messages used to echo request input in
// full (a 1 MB number in max_tokens gave a 1 MB 400 body), name Go types
// ("[]server.wireMessage") and call a text part without text an
// "unsupported content part type \"text\"".
func TestErrorMessagesStaySmall(t *testing.T) {
	_, ts := newTestServer(t, newFake(), Options{MaxBodyBytes: 4 << 20})
	chat := ts.URL + "/v1/chat/completions"
	user := `"messages":[{"role":"user","content":"hi"}]`
	huge := strings.Repeat("9", 1<<20)
	for _, c := range []struct {
		name, url, body string
		want, reject    string // the message must contain want and not reject
	}{
		{"huge number", chat, `{` + user + `,"max_tokens":` + huge + `}`, "max_tokens", huge[:100]},
		{"huge role", chat, `{"messages":[{"role":"` + huge + `","content":"x"}]}`, "role", huge[:100]},
		{"huge part type", chat, `{"messages":[{"role":"user","content":[{"type":"` + huge + `"}]}]}`, "not supported", huge[:100]},
		{"huge path", ts.URL + "/" + strings.Repeat("p", 100000), ``, "unknown path", strings.Repeat("p", 100)},
		{"huge model id", ts.URL + "/v1/models/" + strings.Repeat("m", 100000), ``, "does not exist", strings.Repeat("m", 100)},
		{"messages type", chat, `{"messages":"hi"}`, "expected an array", "server."},
		{"temperature type", chat, `{` + user + `,"temperature":"hot"}`, "expected a number", "float64"},
		{"text part without text", chat, `{"messages":[{"role":"user","content":[{"type":"text"}]}]}`, `needs a "text" string`, "unsupported"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var status int
			var m map[string]any
			if c.body == "" {
				status, m = get(t, c.url)
			} else {
				status, m = post(t, c.url, c.body)
			}
			msg, _ := path(m, "error", "message").(string)
			if status < 400 || status >= 500 || !strings.Contains(msg, c.want) || strings.Contains(msg, c.reject) || len(msg) > maxErrorMessage {
				t.Errorf("status %d, message of %d bytes: %.200q", status, len(msg), msg)
			}
		})
	}
}

func get(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, decodeObject(t, resp.Body)
}

// TestAdmissionBeforeTokenizing: prompts were tokenized before queue
// admission (a 1 MB prompt cost 3.5 s of CPU before its 400, 16 at once
// 1.2 GB). A prompt with more bytes than the context can hold is refused
// unread, and a request that finds the queue full is refused before its
// prompt is tokenized.
func TestAdmissionBeforeTokenizing(t *testing.T) {
	f := slowFake()
	f.ctxLen = 256
	_, ts := newTestServer(t, f, Options{Parallel: 1, QueueSize: -1})
	status, m := post(t, ts.URL+"/v1/completions", `{"prompt":"`+strings.Repeat("a", 300)+`"}`)
	if status != 400 || path(m, "error", "code") != "context_length_exceeded" || f.tokenized.Load() != 0 {
		t.Errorf("prompt longer than the context in bytes: status %d %v, tokenized %d times", status, m, f.tokenized.Load())
	}
	stop, _ := startStream(t, ts.URL) // holds the only slot; no queue
	defer stop()
	before := f.tokenized.Load()
	for _, c := range []struct{ url, body string }{
		{"/v1/completions", `{"prompt":"hello"}`},
		{"/v1/chat/completions", `{"messages":[{"role":"user","content":"hello"}]}`},
		{"/tokenize", `{"content":"hello"}`},
	} {
		if status, m := post(t, ts.URL+c.url, c.body); status != 429 {
			t.Errorf("%s with the queue full: status %d %v, want 429", c.url, status, m)
		}
	}
	if n := f.tokenized.Load() - before; n != 0 {
		t.Errorf("refused requests were tokenized %d times", n)
	}
}

// TestShutdownAnswersQueuedAtOnce: requests waiting in the queue were held
// for the whole grace period and then answered 499; they get 503 at once,
// while the running generation finishes.
func TestShutdownAnswersQueuedAtOnce(t *testing.T) {
	f := slowFake()
	s, err := New(f, Options{Parallel: 1, QueueSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	url, cancel, done := serveTest(t, s, 10*time.Second)
	body := openStream(t, url)
	defer body.Close()
	type answer struct {
		status int
		code   any
	}
	queued := make(chan answer, 2)
	for range 2 {
		go func() {
			resp, err := http.Post(url+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"wait"}`))
			if err != nil {
				queued <- answer{status: -1}
				return
			}
			defer resp.Body.Close()
			m := decodeObject(t, resp.Body)
			queued <- answer{resp.StatusCode, path(m, "error", "code")}
		}()
	}
	waitFor(t, "two queued requests", func() bool { _, waiting := s.slots.busy(); return waiting == 2 })
	start := time.Now()
	cancel()
	for range 2 {
		select {
		case a := <-queued:
			if a.status != 503 || a.code != "shutting_down" {
				t.Errorf("queued request: status %d code %v, want 503 shutting_down", a.status, a.code)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("a queued request was not answered at once")
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("queued requests answered after %v", d)
	}
	st := readStream(t, body)
	if !st.done || st.finish != "stop" {
		t.Errorf("running stream: done %v finish %q", st.done, st.finish)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

// TestShutdownCutStreamEndsWithError: a stream cut at the end of the grace
// period ended without finish_reason, error or [DONE], so a lenient client
// took the truncated reply for a complete one. It ends with an error event.
func TestShutdownCutStreamEndsWithError(t *testing.T) {
	f := slowFake()
	f.delay = 5 * time.Millisecond
	s, err := New(f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	url, cancel, done := serveTest(t, s, 50*time.Millisecond)
	body := openStream(t, url)
	defer body.Close()
	cancel()
	b, _ := io.ReadAll(body)
	<-done
	events := strings.Split(strings.TrimSpace(string(b)), "\n\n")
	last := events[len(events)-1]
	if !strings.Contains(last, `"error"`) || !strings.Contains(last, "shutting_down") || strings.Contains(string(b), "[DONE]") || strings.Contains(string(b), `"finish_reason":"`) {
		t.Errorf("cut stream ends with %q", last)
	}
}

// TestSlowBodyTimedOut: a request body trickling in was never timed out, so
// slow clients could hold connections forever. A stream that outlasts the
// body timeout must still run to its end.
func TestSlowBodyTimedOut(t *testing.T) {
	f := slowFake() // 400 tokens, 2 ms each: about 0.8 s
	s, err := New(f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.bodyTimeout = 200 * time.Millisecond
	url, _, _ := serveTest(t, s, time.Second)
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"prompt\":")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	b, _ := io.ReadAll(conn) // the server answers, or closes, once the body is late
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("slow body held the connection for %v (got %q)", d, b)
	}
	st := readStream(t, openStream(t, url))
	if !st.done || len(st.text) != 400 {
		t.Errorf("a stream longer than the body timeout: done %v, %d bytes", st.done, len(st.text))
	}
}

// TestConnectionLimit: connections were not capped. Beyond MaxConns, new
// clients wait until one closes.
func TestConnectionLimit(t *testing.T) {
	s, err := New(newFake(), Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	url, _, _ := serveTest(t, s, time.Second)
	addr := strings.TrimPrefix(url, "http://")
	var idle []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	time.Sleep(50 * time.Millisecond) // let the server accept both
	client := &http.Client{Timeout: 300 * time.Millisecond}
	if resp, err := client.Get(url + "/health"); err == nil {
		resp.Body.Close()
		t.Fatalf("a third connection was served beyond MaxConns 2 (status %d)", resp.StatusCode)
	}
	idle[0].Close()
	client.Timeout = 3 * time.Second
	resp, err := client.Get(url + "/health")
	if err != nil {
		t.Fatalf("after a connection closed: %v", err)
	}
	resp.Body.Close()
}
