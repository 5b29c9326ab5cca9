package server

import (
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cafeq/cafeq/runtime"
)

// loadEngine loads the trained Shakespeare model from testdata.
func loadEngine(t testing.TB) *runtime.Engine {
	t.Helper()
	dir := filepath.Join("..", "..", "testdata", "shakespeare-gemma2")
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err != nil {
		if os.Getenv("CAFEQ_REQUIRE_FIXTURES") == "1" {
			t.Fatal(err)
		}
		t.Skip("fixture missing:", err)
	}
	e, err := runtime.Load(dir, runtime.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestLoadEngine runs the load test against the real model: every streamed
// greedy reply must equal the non-streamed reply to the same prompt, although
// sessions are reused (and their caches partly kept) across requests.
func TestLoadEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("load test with the real model in -short mode")
	}
	e := loadEngine(t)
	defer e.Close()
	// The engine allocates its decode-batching buffers once, at the first
	// step; do that before the baseline so only growth counts.
	if s, err := e.NewSession(256); err == nil {
		s.Forward([]int{e.Tokenizer.BOS()}, nil)
		s.Step(e.Tokenizer.BOS())
	}
	base := takeBaseline()
	func() {
		s, err := New(NewEngineBackend(e), Options{Parallel: 2, QueueSize: loadClients, MaxCtx: 256, ModelName: "shakespeare"})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(s)
		defer ts.Close()
		prompts := []string{"ROMEO:\n", "JULIET:\nO Romeo", "KING RICHARD III:\nNow is", "First Citizen:\n"}
		const maxTokens = 12
		want := map[string]string{}
		finish := map[string]string{}
		for _, p := range prompts {
			status, m := post(t, ts.URL+"/v1/completions", fmt.Sprintf(`{"prompt":%q,"temperature":0,"max_tokens":%d}`, p, maxTokens))
			text, _ := path(m, "choices", 0, "text").(string)
			if status != 200 || text == "" {
				t.Fatalf("reference for %q: %d %v", p, status, m)
			}
			want[p], finish[p] = text, path(m, "choices", 0, "finish_reason").(string)
		}
		runLoad(t, ts.URL+"/v1/completions", prompts,
			func(p string) string {
				return fmt.Sprintf(`{"prompt":%q,"temperature":0,"max_tokens":%d,"stream":true}`, p, maxTokens)
			},
			func(p string) (string, string) { return want[p], finish[p] })
	}()
	base.check(t, 1<<20)
}

// TestEngineChat checks chat against the real model: plain and streamed
// greedy replies agree, stop strings cut the reply, usage adds up.
func TestEngineChat(t *testing.T) {
	e := loadEngine(t)
	defer e.Close()
	s, err := New(NewEngineBackend(e), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	body := `{"messages":[{"role":"system","content":"Speak."},{"role":"user","content":"Who art thou?"}],"temperature":0,"max_tokens":24,"seed":1}`
	status, m := post(t, ts.URL+"/v1/chat/completions", body)
	if status != 200 {
		t.Fatalf("%d %v", status, m)
	}
	text, _ := path(m, "choices", 0, "message", "content").(string)
	if text == "" {
		t.Fatalf("empty reply: %v", m)
	}
	u := m["usage"].(map[string]any)
	if u["prompt_tokens"].(float64) < 10 || u["total_tokens"] != u["prompt_tokens"].(float64)+u["completion_tokens"].(float64) {
		t.Errorf("usage %v", u)
	}
	st := postStream(t, ts.URL+"/v1/chat/completions", strings.Replace(body, "{", `{"stream":true,`, 1))
	if st.text != text || st.finish != path(m, "choices", 0, "finish_reason") {
		t.Errorf("streamed %q (%s), plain %q (%v)", st.text, st.finish, text, path(m, "choices", 0, "finish_reason"))
	}
	// A stop string taken from the middle of the reply cuts it there.
	if len(text) > 6 {
		stop := text[len(text)/2 : len(text)/2+3]
		cut := text[:strings.Index(text, stop)]
		sb := strings.Replace(body, "{", fmt.Sprintf(`{"stop":%q,`, stop), 1)
		status, m = post(t, ts.URL+"/v1/chat/completions", sb)
		if got := path(m, "choices", 0, "message", "content"); status != 200 || got != cut || path(m, "choices", 0, "finish_reason") != "stop" {
			t.Errorf("stop %q: got %q, want %q (%v)", stop, got, cut, m)
		}
		st = postStream(t, ts.URL+"/v1/chat/completions", strings.Replace(sb, "{", `{"stream":true,`, 1))
		if st.text != cut {
			t.Errorf("stream stop %q: got %q, want %q", stop, st.text, cut)
		}
	}
}
