package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newTestServer(t *testing.T, f *fakeBackend, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	s, err := New(f, opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

func post(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, decodeObject(t, resp.Body)
}

func decodeObject(t *testing.T, r io.Reader) map[string]any {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %q", err, b)
	}
	return m
}

// path walks a decoded JSON value: path(m, "choices", 0, "message").
func path(v any, keys ...any) any {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			a, ok := v.([]any)
			if !ok || k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

// streamResult is a parsed server-sent event stream.
type streamResult struct {
	chunks []map[string]any
	text   string // concatenated delta.content (chat) or text (completion)
	finish string
	done   bool // saw data: [DONE]
	role   string
	usage  map[string]any
}

func readStream(t *testing.T, r io.Reader) streamResult {
	t.Helper()
	var res streamResult
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("unexpected SSE line %q", line)
		}
		if res.done {
			t.Fatalf("data after [DONE]: %q", line)
		}
		if data == "[DONE]" {
			res.done = true
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(data), &m); err != nil {
			t.Fatalf("bad chunk %q: %v", data, err)
		}
		if m["error"] != nil {
			t.Fatalf("error event: %q", data)
		}
		res.chunks = append(res.chunks, m)
		if u, ok := m["usage"].(map[string]any); ok {
			res.usage = u
		}
		choices, _ := m["choices"].([]any)
		if len(choices) == 0 {
			continue
		}
		if res.finish != "" {
			t.Fatalf("chunk after finish_reason: %q", data)
		}
		if c, ok := path(choices[0], "delta", "content").(string); ok {
			res.text += c
		}
		if c, ok := path(choices[0], "text").(string); ok {
			res.text += c
		}
		if r, ok := path(choices[0], "delta", "role").(string); ok {
			if len(res.chunks) != 1 {
				t.Fatalf("role in chunk %d, want only the first", len(res.chunks))
			}
			res.role = r
		}
		if f, ok := path(choices[0], "finish_reason").(string); ok {
			res.finish = f
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return res
}

func postStream(t *testing.T, url, body string) streamResult {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	return readStream(t, resp.Body)
}

// chatPromptText is what the fake's reply is computed from.
func chatPromptText(t *testing.T, f *fakeBackend, msgs ...Message) string {
	ids, err := f.ChatPrompt(msgs)
	if err != nil {
		t.Fatal(err)
	}
	return decodeBytes(ids)
}

func TestChatCompletion(t *testing.T) {
	f := newFake()
	_, ts := newTestServer(t, f, Options{ModelName: "tiny"})
	status, m := post(t, ts.URL+"/v1/chat/completions",
		`{"model":"whatever","messages":[{"role":"system","content":"Be nice."},{"role":"user","content":"Hi there"}],"temperature":0}`)
	if status != 200 {
		t.Fatalf("status %d: %v", status, m)
	}
	prompt := chatPromptText(t, f, Message{"system", "Be nice."}, Message{"user", "Hi there"})
	want := fakeReply(prompt, GenerateOptions{})
	if id, _ := m["id"].(string); !strings.HasPrefix(id, "chatcmpl-") {
		t.Errorf("id %q", id)
	}
	if m["object"] != "chat.completion" || m["model"] != "tiny" {
		t.Errorf("object %v model %v", m["object"], m["model"])
	}
	if c, ok := m["created"].(float64); !ok || c < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("created %v", m["created"])
	}
	if got := path(m, "choices", 0, "message", "content"); got != want {
		t.Errorf("content %q, want %q", got, want)
	}
	if path(m, "choices", 0, "message", "role") != "assistant" || path(m, "choices", 0, "index") != 0.0 ||
		path(m, "choices", 0, "finish_reason") != "stop" {
		t.Errorf("choice %v", path(m, "choices", 0))
	}
	pt := float64(len(prompt) + 1) // BOS
	ct := float64(len(want))
	if path(m, "usage", "prompt_tokens") != pt || path(m, "usage", "completion_tokens") != ct ||
		path(m, "usage", "total_tokens") != pt+ct {
		t.Errorf("usage %v, want prompt %v completion %v", m["usage"], pt, ct)
	}
}

func TestChatContentParts(t *testing.T) {
	f := newFake()
	_, ts := newTestServer(t, f, Options{})
	status, m := post(t, ts.URL+"/v1/chat/completions",
		`{"messages":[{"role":"user","content":[{"type":"text","text":"Hi "},{"type":"text","text":"there"}]}],"temperature":0}`)
	if status != 200 {
		t.Fatalf("status %d: %v", status, m)
	}
	want := fakeReply(chatPromptText(t, f, Message{"user", "Hi there"}), GenerateOptions{})
	if got := path(m, "choices", 0, "message", "content"); got != want {
		t.Errorf("content %q, want %q", got, want)
	}
}

func TestChatStreamMatchesPlain(t *testing.T) {
	for _, emitStop := range []bool{false, true} {
		f := newFake()
		f.emitStop = emitStop
		_, ts := newTestServer(t, f, Options{})
		for _, body := range []string{
			`{"messages":[{"role":"user","content":"Tell me"}],"temperature":0}`,
			`{"messages":[{"role":"user","content":"Tell me"}],"temperature":0.8,"seed":42}`,
			`{"messages":[{"role":"user","content":"Tell me"}],"temperature":0.8,"seed":42,"stop":["reply"]}`,
			`{"messages":[{"role":"user","content":"Tell me"}],"max_tokens":9}`,
		} {
			status, plain := post(t, ts.URL+"/v1/chat/completions", body)
			if status != 200 {
				t.Fatalf("status %d: %v", status, plain)
			}
			st := postStream(t, ts.URL+"/v1/chat/completions", strings.Replace(body, "{", `{"stream":true,"stream_options":{"include_usage":true},`, 1))
			if !st.done || st.role != "assistant" {
				t.Errorf("%s: stream done=%v role=%q", body, st.done, st.role)
			}
			if want := path(plain, "choices", 0, "message", "content"); st.text != want {
				t.Errorf("%s: streamed %q, plain %q", body, st.text, want)
			}
			if want := path(plain, "choices", 0, "finish_reason"); st.finish != want {
				t.Errorf("%s: streamed finish %q, plain %q", body, st.finish, want)
			}
			if st.usage == nil || st.usage["completion_tokens"] != path(plain, "usage", "completion_tokens") ||
				st.usage["prompt_tokens"] != path(plain, "usage", "prompt_tokens") {
				t.Errorf("%s: stream usage %v, plain %v", body, st.usage, plain["usage"])
			}
			for _, c := range st.chunks {
				if c["object"] != "chat.completion.chunk" || c["id"] != st.chunks[0]["id"] {
					t.Errorf("chunk %v", c)
				}
			}
		}
	}
}

func TestSeedDeterminism(t *testing.T) {
	f := newFake()
	_, ts := newTestServer(t, f, Options{})
	body := `{"messages":[{"role":"user","content":"x"}],"temperature":1,"seed":%d}`
	_, a := post(t, ts.URL+"/v1/chat/completions", fmt.Sprintf(body, 7))
	_, b := post(t, ts.URL+"/v1/chat/completions", fmt.Sprintf(body, 7))
	_, c := post(t, ts.URL+"/v1/chat/completions", fmt.Sprintf(body, 8))
	ca, cb, cc := path(a, "choices", 0, "message", "content"), path(b, "choices", 0, "message", "content"), path(c, "choices", 0, "message", "content")
	if ca != cb || ca == cc {
		t.Errorf("seed 7: %q and %q; seed 8: %q", ca, cb, cc)
	}
}

func TestCompletion(t *testing.T) {
	f := newFake()
	_, ts := newTestServer(t, f, Options{})
	want := fakeReply("Once upon", GenerateOptions{})
	for _, prompt := range []string{`"Once upon"`, `["Once upon"]`} {
		status, m := post(t, ts.URL+"/v1/completions", `{"prompt":`+prompt+`,"temperature":0}`)
		if status != 200 {
			t.Fatalf("status %d: %v", status, m)
		}
		if id, _ := m["id"].(string); !strings.HasPrefix(id, "cmpl-") || m["object"] != "text_completion" {
			t.Errorf("id %v object %v", m["id"], m["object"])
		}
		if got := path(m, "choices", 0, "text"); got != want {
			t.Errorf("text %q, want %q", got, want)
		}
		if path(m, "choices", 0, "finish_reason") != "stop" || path(m, "usage", "prompt_tokens") != float64(len("Once upon")+1) {
			t.Errorf("response %v", m)
		}
	}
	st := postStream(t, ts.URL+"/v1/completions", `{"prompt":"Once upon","temperature":0,"stream":true}`)
	if st.text != want || st.finish != "stop" || !st.done {
		t.Errorf("stream: %q finish %q done %v", st.text, st.finish, st.done)
	}
	for _, c := range st.chunks {
		if c["object"] != "text_completion" {
			t.Errorf("chunk object %v", c["object"])
		}
	}
}

func TestLengthLimits(t *testing.T) {
	f := newFake()
	f.ctxLen = 64
	_, ts := newTestServer(t, f, Options{})
	prompt := "abc"
	reply := fakeReply(prompt, GenerateOptions{})

	status, m := post(t, ts.URL+"/v1/completions", `{"prompt":"abc","temperature":0,"max_tokens":5}`)
	if status != 200 || path(m, "choices", 0, "text") != reply[:5] || path(m, "choices", 0, "finish_reason") != "length" ||
		path(m, "usage", "completion_tokens") != 5.0 {
		t.Errorf("max_tokens 5: %d %v", status, m)
	}

	// The reply is longer than what the context leaves: it stops at the
	// context with reason "length".
	long := strings.Repeat("p", 40)
	status, m = post(t, ts.URL+"/v1/completions", `{"prompt":"`+long+`","temperature":0}`)
	room := 64 - 41
	if status != 200 || path(m, "choices", 0, "finish_reason") != "length" || path(m, "usage", "total_tokens") != 64.0 ||
		path(m, "choices", 0, "text") != fakeReply(long, GenerateOptions{})[:room] {
		t.Errorf("context limit: %d %v", status, m)
	}

	// A max_tokens within the context but beyond what the prompt leaves is
	// clamped, not refused.
	status, m = post(t, ts.URL+"/v1/completions", `{"prompt":"`+long+`","temperature":0,"max_tokens":60}`)
	if status != 200 || path(m, "usage", "total_tokens") != 64.0 {
		t.Errorf("clamped max_tokens: %d %v", status, m)
	}

	// 63 prompt tokens + BOS fill the context: refused.
	status, m = post(t, ts.URL+"/v1/completions", `{"prompt":"`+strings.Repeat("p", 63)+`"}`)
	if status != 400 || path(m, "error", "code") != "context_length_exceeded" || path(m, "error", "param") != "prompt" {
		t.Errorf("prompt too long: %d %v", status, m)
	}
}

func TestStopStrings(t *testing.T) {
	f := newFake()
	f.reply = func(string, GenerateOptions) string { return "Hello wor world, said the fox. The end" }
	_, ts := newTestServer(t, f, Options{})
	cases := []struct {
		stop, want, finish string
	}{
		{`", said"`, "Hello wor world", "stop"},
		{`["world"]`, "Hello wor ", "stop"},
		{`["zzz", "fox."]`, "Hello wor world, said the ", "stop"},
		{`["xyz"]`, "Hello wor world, said the fox. The end", "stop"},
		{`["end!"]`, "Hello wor world, said the fox. The end", "stop"}, // held prefix flushed at the end
		{`["H"]`, "", "stop"},
		{`[""]`, "Hello wor world, said the fox. The end", "stop"},
		{`null`, "Hello wor world, said the fox. The end", "stop"},
	}
	for _, c := range cases {
		for _, ep := range []string{"chat", "text"} {
			var url, body string
			if ep == "chat" {
				url, body = ts.URL+"/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"stop":`+c.stop
			} else {
				url, body = ts.URL+"/v1/completions", `{"prompt":"x","stop":`+c.stop
			}
			status, m := post(t, url, body+"}")
			got := path(m, "choices", 0, "message", "content")
			if ep == "text" {
				got = path(m, "choices", 0, "text")
			}
			if status != 200 || got != c.want || path(m, "choices", 0, "finish_reason") != c.finish {
				t.Errorf("%s stop %s: %d %q (want %q) %v", ep, c.stop, status, got, c.want, m)
			}
			st := postStream(t, url, body+`,"stream":true}`)
			if st.text != c.want || st.finish != c.finish || !st.done {
				t.Errorf("%s stream stop %s: %q finish %q", ep, c.stop, st.text, st.finish)
			}
		}
	}
}

func TestMaxTokensCutsStopPrefix(t *testing.T) {
	// The reply ends (by max_tokens) inside a would-be stop string: the held
	// text is still delivered, and the reason is "length".
	f := newFake()
	f.reply = func(string, GenerateOptions) string { return "abcdef" }
	_, ts := newTestServer(t, f, Options{})
	status, m := post(t, ts.URL+"/v1/completions", `{"prompt":"x","stop":"cdX","max_tokens":4}`)
	if status != 200 || path(m, "choices", 0, "text") != "abcd" || path(m, "choices", 0, "finish_reason") != "length" {
		t.Errorf("%d %v", status, m)
	}
}

func TestErrorsAndRouting(t *testing.T) {
	f := newFake()
	f.ctxLen = 128
	_, ts := newTestServer(t, f, Options{MaxBodyBytes: 4096})
	chat := ts.URL + "/v1/chat/completions"
	comp := ts.URL + "/v1/completions"
	user := `"messages":[{"role":"user","content":"hi"}]`
	cases := []struct {
		name, method, url, body string
		status                  int
		param                   string
	}{
		{"malformed json", "POST", chat, `{"messages":[`, 400, ""},
		{"not an object", "POST", chat, `[1,2]`, 400, ""},
		{"empty body", "POST", chat, ``, 400, ""},
		{"trailing garbage", "POST", chat, `{` + user + `} x`, 400, ""},
		{"no messages", "POST", chat, `{}`, 400, "messages"},
		{"empty messages", "POST", chat, `{"messages":[]}`, 400, "messages"},
		{"messages wrong type", "POST", chat, `{"messages":"hi"}`, 400, "messages"},
		{"unknown role", "POST", chat, `{"messages":[{"role":"tool","content":"x"}]}`, 400, "messages[0].role"},
		{"missing role", "POST", chat, `{"messages":[{"content":"x"}]}`, 400, "messages[0].role"},
		{"missing content", "POST", chat, `{"messages":[{"role":"user"}]}`, 400, "messages[0].content"},
		{"content wrong type", "POST", chat, `{"messages":[{"role":"user","content":5}]}`, 400, "content"},
		{"image part", "POST", chat, `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`, 400, "content"},
		{"temperature type", "POST", chat, `{` + user + `,"temperature":"hot"}`, 400, "temperature"},
		{"temperature high", "POST", chat, `{` + user + `,"temperature":2.5}`, 400, "temperature"},
		{"temperature negative", "POST", chat, `{` + user + `,"temperature":-0.1}`, 400, "temperature"},
		{"top_p zero", "POST", chat, `{` + user + `,"top_p":0}`, 400, "top_p"},
		{"top_p high", "POST", chat, `{` + user + `,"top_p":1.5}`, 400, "top_p"},
		{"top_k negative", "POST", chat, `{` + user + `,"top_k":-1}`, 400, "top_k"},
		{"max_tokens negative", "POST", chat, `{` + user + `,"max_tokens":-5}`, 400, "max_tokens"},
		{"max_tokens zero", "POST", chat, `{` + user + `,"max_tokens":0}`, 400, "max_tokens"},
		{"max_tokens absurd", "POST", chat, `{` + user + `,"max_tokens":1000000000}`, 400, "max_tokens"},
		{"max_tokens float", "POST", chat, `{` + user + `,"max_tokens":1.5}`, 400, "max_tokens"},
		{"max_completion_tokens absurd", "POST", chat, `{` + user + `,"max_completion_tokens":129}`, 400, "max_completion_tokens"},
		{"n 2", "POST", chat, `{` + user + `,"n":2}`, 400, "n"},
		{"stop type", "POST", chat, `{` + user + `,"stop":5}`, 400, "stop"},
		{"too many stops", "POST", chat, `{` + user + `,"stop":["a","b","c","d","e"]}`, 400, "stop"},
		{"seed type", "POST", chat, `{` + user + `,"seed":"x"}`, 400, "seed"},
		{"stream type", "POST", chat, `{` + user + `,"stream":"yes"}`, 400, "stream"},
		{"prompt too long", "POST", chat, `{"messages":[{"role":"user","content":"` + strings.Repeat("a", 200) + `"}]}`, 400, "messages"},
		{"body too large", "POST", chat, `{"messages":[{"role":"user","content":"` + strings.Repeat("a", 5000) + `"}]}`, 413, ""},
		{"no prompt", "POST", comp, `{}`, 400, "prompt"},
		{"prompt two strings", "POST", comp, `{"prompt":["a","b"]}`, 400, "prompt"},
		{"prompt tokens", "POST", comp, `{"prompt":[1,2,3]}`, 400, "prompt"},
		{"wrong method chat", "GET", chat, ``, 405, ""},
		{"wrong method models", "POST", ts.URL + "/v1/models", `{}`, 405, ""},
		{"wrong method health", "DELETE", ts.URL + "/health", ``, 405, ""},
		{"unknown path", "GET", ts.URL + "/v1/embeddings", ``, 404, ""},
		{"root", "GET", ts.URL + "/", ``, 404, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest(c.method, c.url, strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			m := decodeObject(t, resp.Body)
			if resp.StatusCode != c.status {
				t.Errorf("status %d, want %d: %v", resp.StatusCode, c.status, m)
			}
			msg, _ := path(m, "error", "message").(string)
			if msg == "" || path(m, "error", "type") != "invalid_request_error" {
				t.Errorf("error body %v", m)
			}
			errObj, _ := m["error"].(map[string]any)
			for _, k := range []string{"param", "code"} {
				if _, ok := errObj[k]; !ok {
					t.Errorf("error body lacks %q: %v", k, m)
				}
			}
			if got, _ := path(m, "error", "param").(string); got != c.param {
				t.Errorf("param %q, want %q", got, c.param)
			}
			if c.status == 405 && resp.Header.Get("Allow") == "" {
				t.Error("405 without Allow header")
			}
		})
	}
	if f.started.Load() != 0 {
		t.Errorf("%d generations started by invalid requests", f.started.Load())
	}
}

func TestHealthAndModels(t *testing.T) {
	_, ts := newTestServer(t, newFake(), Options{ModelName: "shakespeare", Parallel: 3})
	resp, err := http.Get(ts.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	m := decodeObject(t, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || m["status"] != "ok" || m["parallel"] != 3.0 {
		t.Errorf("health %d %v", resp.StatusCode, m)
	}
	resp, err = http.Get(ts.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	m = decodeObject(t, resp.Body)
	resp.Body.Close()
	if m["object"] != "list" || path(m, "data", 0, "id") != "shakespeare" || path(m, "data", 0, "object") != "model" {
		t.Errorf("models %v", m)
	}
	resp, err = http.Get(ts.URL + "/v1/models/shakespeare")
	if err != nil {
		t.Fatal(err)
	}
	m = decodeObject(t, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || m["id"] != "shakespeare" || m["object"] != "model" {
		t.Errorf("model %d %v", resp.StatusCode, m)
	}
	resp, err = http.Get(ts.URL + "/v1/models/gpt-4")
	if err != nil {
		t.Fatal(err)
	}
	m = decodeObject(t, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || path(m, "error", "code") != "model_not_found" {
		t.Errorf("unknown model %d %v", resp.StatusCode, m)
	}
}

func TestNewOptions(t *testing.T) {
	f := newFake()
	if _, err := New(nil, Options{}); err == nil {
		t.Error("nil backend accepted")
	}
	if _, err := New(f, Options{MaxCtx: 1024}); err == nil {
		t.Error("context beyond the model's accepted")
	}
	if _, err := New(f, Options{Parallel: -1}); err == nil {
		t.Error("negative parallel accepted")
	}
	s, err := New(f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	o := s.Options()
	if o.Parallel != 1 || o.QueueSize != DefaultQueueSize || o.MaxCtx != 512 || o.MaxBodyBytes != DefaultMaxBodyBytes || o.ModelName != DefaultModelName {
		t.Errorf("defaults %+v", o)
	}
	if f.created.Load() != 0 {
		t.Error("New allocated a session")
	}
}

// slowFake generates a long reply slowly, so requests stay in flight.
func slowFake() *fakeBackend {
	f := newFake()
	f.delay = 2 * time.Millisecond
	f.reply = func(string, GenerateOptions) string { return strings.Repeat("z", 400) }
	return f
}

// startStream opens a streaming chat request and reads its first chunk, so
// the generation is known to hold a slot. cancel aborts it.
func startStream(t *testing.T, url string) (stop func(), body *bufio.Reader) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/chat/completions",
		strings.NewReader(`{"messages":[{"role":"user","content":"go"}],"stream":true}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		cancel()
		t.Fatalf("status %d", resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		cancel()
		t.Fatal(err)
	}
	return func() { cancel(); resp.Body.Close() }, br
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestQueueFull(t *testing.T) {
	f := slowFake()
	s, ts := newTestServer(t, f, Options{Parallel: 1, QueueSize: 1})
	stop1, _ := startStream(t, ts.URL)
	defer stop1()
	// The second request waits in the queue.
	done2 := make(chan int, 1)
	go func() {
		resp, err := http.Post(ts.URL+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"q","max_tokens":3}`))
		if err != nil {
			done2 <- -1
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		done2 <- resp.StatusCode
	}()
	waitFor(t, "a queued request", func() bool { _, w := s.slots.busy(); return w == 1 })
	// The third is refused at once.
	start := time.Now()
	status, m := post(t, ts.URL+"/v1/completions", `{"prompt":"q"}`)
	if status != 429 || path(m, "error", "code") != "queue_full" {
		t.Errorf("full queue: %d %v", status, m)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("429 took %v", d)
	}
	stop1()
	select {
	case st := <-done2:
		if st != 200 {
			t.Errorf("queued request got %d", st)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("queued request never served")
	}
}

func TestParallelSessions(t *testing.T) {
	f := newFake()
	f.delay = time.Millisecond
	_, ts := newTestServer(t, f, Options{Parallel: 2, QueueSize: 10})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			status, m := post(t, ts.URL+"/v1/completions", fmt.Sprintf(`{"prompt":"n%d","temperature":0}`, i))
			if status != 200 || path(m, "choices", 0, "text") != fakeReply(fmt.Sprintf("n%d", i), GenerateOptions{}) {
				t.Errorf("request %d: %d %v", i, status, m)
			}
		})
	}
	wg.Wait()
	if got := f.maxActive.Load(); got != 2 {
		t.Errorf("max concurrent generations %d, want 2", got)
	}
	if got := f.created.Load(); got != 2 {
		t.Errorf("%d sessions created, want 2 (reused)", got)
	}
}

func TestClientDisconnectFreesSlot(t *testing.T) {
	for _, how := range []string{"cancel", "tcp close", "plain request"} {
		t.Run(how, func(t *testing.T) {
			f := slowFake()
			s, ts := newTestServer(t, f, Options{Parallel: 1, QueueSize: -1})
			switch how {
			case "plain request":
				ctx, cancel := context.WithCancel(context.Background())
				go func() {
					waitFor(t, "the generation to start", func() bool { return f.started.Load() == 1 })
					cancel()
				}()
				req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/completions", strings.NewReader(`{"prompt":"go"}`))
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
					t.Fatalf("request finished with %d, want it cancelled", resp.StatusCode)
				}
			case "cancel":
				stop, br := startStream(t, ts.URL)
				if _, err := br.ReadString('\n'); err != nil {
					t.Fatal(err)
				}
				stop()
			default:
				conn, err := net.Dial("tcp", ts.Listener.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				body := `{"prompt":"go","stream":true}`
				fmt.Fprintf(conn, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
				br := bufio.NewReader(conn)
				for { // read until the first data line
					line, err := br.ReadString('\n')
					if err != nil {
						t.Fatal(err)
					}
					if strings.HasPrefix(line, "data: ") {
						break
					}
				}
				conn.Close()
			}
			waitFor(t, "the generation to be cancelled", func() bool { return f.cancelled.Load() == 1 })
			waitFor(t, "the slot to be freed", func() bool { r, _ := s.slots.busy(); return r == 0 })
			status, m := post(t, ts.URL+"/v1/completions", `{"prompt":"next","max_tokens":2}`)
			if status != 200 {
				t.Errorf("next request: %d %v", status, m)
			}
		})
	}
}

func TestPanicAndFailure(t *testing.T) {
	var logBuf syncBuffer
	f := newFake()
	_, ts := newTestServer(t, f, Options{Parallel: 1, QueueSize: -1, Logger: slog.New(slog.NewTextHandler(&logBuf, nil))})
	status, m := post(t, ts.URL+"/v1/completions", `{"prompt":"PANIC now"}`)
	if status != 500 || path(m, "error", "type") != "server_error" {
		t.Errorf("panic: %d %v", status, m)
	}
	if !strings.Contains(logBuf.String(), "panic in handler") {
		t.Errorf("panic not logged:\n%s", logBuf.String())
	}
	status, m = post(t, ts.URL+"/v1/completions", `{"prompt":"FAIL now"}`)
	if status != 500 || !strings.Contains(path(m, "error", "message").(string), errFakeFail.Error()) {
		t.Errorf("failure: %d %v", status, m)
	}
	// A stream that fails after its header reports an error event.
	resp, err := http.Post(ts.URL+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"FAIL","stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(b, []byte(`"type":"server_error"`)) || bytes.Contains(b, []byte("[DONE]")) {
		t.Errorf("failed stream: %q", b)
	}
	// The slot (parallel 1, no queue) is free again after all that.
	status, m = post(t, ts.URL+"/v1/completions", `{"prompt":"fine","max_tokens":3}`)
	if status != 200 {
		t.Errorf("after panic: %d %v", status, m)
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAccessLog(t *testing.T) {
	var logBuf syncBuffer
	_, ts := newTestServer(t, newFake(), Options{Logger: slog.New(slog.NewTextHandler(&logBuf, nil))})
	post(t, ts.URL+"/v1/completions", `{"prompt":"abc","max_tokens":4}`)
	post(t, ts.URL+"/nope", `{}`)
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(logBuf.String()), "\n") {
		if strings.Contains(l, "msg=request") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("want 2 access lines, got:\n%s", logBuf.String())
	}
	for _, want := range []string{"method=POST", "path=/v1/completions", "status=200", "duration=", "prompt_tokens=4", "completion_tokens=4"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("access line %q lacks %q", lines[0], want)
		}
	}
	if !strings.Contains(lines[1], "status=404") {
		t.Errorf("access line %q lacks status=404", lines[1])
	}
}

func TestStopMatcher(t *testing.T) {
	text := "the quick brown fox jumps over the lazy dog; the end"
	stopSets := [][]string{nil, {"fox"}, {"lazy", "quick"}, {"dog;", "og; t"}, {"the end!"}, {"e"}, {"zz", "brown fox jumps"}}
	for _, stops := range stopSets {
		want, wantHit := text, false
		cut := -1
		for _, s := range stops {
			if i := strings.Index(text, s); i >= 0 && (cut < 0 || i < cut) {
				cut = i
			}
		}
		if cut >= 0 {
			want, wantHit = text[:cut], true
		}
		// Every way of splitting into pieces of 1..5 bytes gives the same.
		for step := 1; step <= 5; step++ {
			m := stopMatcher{stops: stops}
			var got strings.Builder
			hit := false
			for i := 0; i < len(text) && !hit; i += step {
				out, h := m.push(text[i:min(i+step, len(text))])
				got.WriteString(out)
				// Never emit anything that is the start of a stop string
				// running past what has been seen.
				hit = h
			}
			if !hit {
				got.WriteString(m.flush())
			}
			if got.String() != want || hit != wantHit {
				t.Errorf("stops %q step %d: got %q hit %v, want %q hit %v", stops, step, got.String(), hit, want, wantHit)
			}
		}
	}
}

// TestSlotAffinity checks that a follow-up chat turn runs on the session
// that ran the conversation so far, where the runtime can reuse its cache.
func TestSlotAffinity(t *testing.T) {
	f := newFake()
	f.barrier.Store(2) // the two first turns run at once, on two sessions
	s, ts := newTestServer(t, f, Options{Parallel: 2})
	turn1 := map[string]string{"A": "Tell me of kings", "B": "Sing of the sea"}
	replies := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, text := range turn1 {
		wg.Go(func() {
			status, m := post(t, ts.URL+"/v1/chat/completions",
				fmt.Sprintf(`{"messages":[{"role":"user","content":%q}],"temperature":0}`, text))
			if status != 200 {
				t.Errorf("turn 1 %s: %d %v", name, status, m)
				return
			}
			mu.Lock()
			replies[name] = path(m, "choices", 0, "message", "content").(string)
			mu.Unlock()
		})
	}
	wg.Wait()
	f.barrier.Store(0)
	if f.created.Load() != 2 {
		t.Fatalf("%d sessions after two concurrent requests, want 2", f.created.Load())
	}
	for _, name := range []string{"B", "A", "A", "B"} {
		status, m := post(t, ts.URL+"/v1/chat/completions", fmt.Sprintf(
			`{"messages":[{"role":"user","content":%q},{"role":"assistant","content":%q},{"role":"user","content":"More."}],"temperature":0}`,
			turn1[name], replies[name]))
		if status != 200 {
			t.Fatalf("turn 2 %s: %d %v", name, status, m)
		}
	}
	if r, w := s.slots.busy(); r != 0 || w != 0 {
		t.Errorf("busy %d %d after all requests", r, w)
	}
	for _, sess := range f.sessions {
		conv := ""
		for _, p := range sess.prompts {
			for name, text := range turn1 {
				if strings.Contains(p, text) {
					if conv != "" && conv != name {
						t.Errorf("one session ran conversations %s and %s: %q", conv, name, sess.prompts)
					}
					conv = name
				}
			}
		}
		if len(sess.prompts) != 3 {
			t.Errorf("session ran %d prompts, want 3 (one conversation's turns)", len(sess.prompts))
		}
	}
}

// TestSlotsWaiterCancel races cancelled waiters against releases: the slot
// count must come back exactly.
func TestSlotsWaiterCancel(t *testing.T) {
	var made atomic.Int64
	sl := newSlots(2, 100, func() (Session, error) { made.Add(1); return &fakeSession{f: newFake(), maxCtx: 8}, nil })
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%7)*50*time.Microsecond)
			defer cancel()
			got, err := sl.acquire(ctx, []int{i % 3})
			if err != nil {
				return
			}
			time.Sleep(20 * time.Microsecond)
			sl.release(got)
		})
	}
	wg.Wait()
	if r, w := sl.busy(); r != 0 || w != 0 || len(sl.idle) != 2 {
		t.Errorf("after the race: running %d waiting %d idle %d", r, w, len(sl.idle))
	}
	if made.Load() > 2 {
		t.Errorf("%d sessions made for 2 slots", made.Load())
	}
}
