package server

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestRefusedFields: a field the server cannot honour is a 400 that names
// it, never a 200 that ignores it.
func TestRefusedFields(t *testing.T) {
	_, ts := newTestServer(t, newFake(), Options{})
	chat := func(extra string) string {
		return `{"messages":[{"role":"user","content":"hi"}],` + extra + `}`
	}
	cases := []struct {
		path, body, param string
	}{
		{"/v1/chat/completions", chat(`"tools":[{"type":"function","function":{"name":"f"}}]`), "tools"},
		{"/v1/chat/completions", chat(`"functions":[{"name":"f"}]`), "functions"},
		{"/v1/chat/completions", chat(`"tool_choice":"auto"`), "tool_choice"},
		{"/v1/chat/completions", chat(`"n":2`), "n"},
		{"/v1/chat/completions", chat(`"response_format":{"type":"xml"}`), "response_format.type"},
		{"/v1/chat/completions", chat(`"response_format":{"type":"json_schema","json_schema":{"name":"x"}}`), "response_format.json_schema.schema"},
		{"/v1/chat/completions", chat(`"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"anyOf":[]}}}`), "response_format.json_schema.schema"},
		{"/v1/chat/completions", chat(`"logit_bias":{"abc":1}`), "logit_bias"},
		{"/v1/chat/completions", chat(`"logit_bias":{"100000":1}`), "logit_bias"},
		{"/v1/chat/completions", chat(`"logit_bias":{"20":101}`), "logit_bias"},
		{"/v1/chat/completions", chat(`"presence_penalty":2.5`), "presence_penalty"},
		{"/v1/chat/completions", chat(`"frequency_penalty":-3`), "frequency_penalty"},
		{"/v1/chat/completions", chat(`"min_p":1.5`), "min_p"},
		{"/v1/chat/completions", chat(`"repeat_penalty":-1`), "repeat_penalty"},
		{"/v1/chat/completions", chat(`"logprobs":true,"top_logprobs":21`), "top_logprobs"},
		{"/v1/chat/completions", chat(`"top_logprobs":2`), "top_logprobs"},
		{"/v1/completions", `{"prompt":"a","logprobs":6}`, "logprobs"},
		{"/v1/completions", `{"prompt":"a","echo":true}`, "echo"},
		{"/v1/completions", `{"prompt":"a","suffix":"z"}`, "suffix"},
		{"/v1/completions", `{"prompt":"a","best_of":3}`, "best_of"},
	}
	for _, c := range cases {
		code, body := post(t, ts.URL+c.path, c.body)
		if code != 400 || path(body, "error", "param") != c.param || !strings.Contains(fmt.Sprint(path(body, "error", "message")), strings.SplitN(c.param, ".", 2)[0]) {
			t.Errorf("%s %s: %d %v, want 400 naming %s", c.path, c.body, code, body, c.param)
		}
	}
}

// TestFieldsReachTheSampler: accepted fields arrive in GenerateOptions.
func TestFieldsReachTheSampler(t *testing.T) {
	f := newFake()
	var mu sync.Mutex
	var got GenerateOptions
	f.reply = func(prompt string, o GenerateOptions) string {
		mu.Lock()
		got = o
		mu.Unlock()
		return "ok"
	}
	_, ts := newTestServer(t, f, Options{})
	code, body := post(t, ts.URL+"/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],
		"min_p":0.1,"repeat_penalty":1.1,"presence_penalty":0.5,"frequency_penalty":-0.5,"logit_bias":{"42":-100},
		"response_format":{"type":"json_object"},"tools":[],"tool_choice":"none"}`)
	if code != 200 {
		t.Fatalf("%d %v", code, body)
	}
	mu.Lock()
	defer mu.Unlock()
	if got.MinP != 0.1 || got.RepeatPenalty != 1.1 || got.PresencePenalty != 0.5 || got.FrequencyPenalty != -0.5 ||
		got.LogitBias[42] != -100 || got.JSONSchema == nil {
		t.Errorf("options %+v", got)
	}
}

// TestLogprobsShapes checks OpenAI's shapes: chat's logprobs.content with
// one entry per token (streamed or not), completions' parallel arrays.
func TestLogprobsShapes(t *testing.T) {
	f := newFake()
	_, ts := newTestServer(t, f, Options{})
	const chat = `{"messages":[{"role":"user","content":"hi"}],"temperature":0,"logprobs":true,"top_logprobs":2`
	code, body := post(t, ts.URL+"/v1/chat/completions", chat+`}`)
	if code != 200 {
		t.Fatalf("%d %v", code, body)
	}
	content, _ := path(body, "choices", 0, "logprobs", "content").([]any)
	text := path(body, "choices", 0, "message", "content").(string)
	if n := int(path(body, "usage", "completion_tokens").(float64)); len(content) != n {
		t.Fatalf("%d logprob entries for %d tokens", len(content), n)
	}
	var joined []byte
	for _, e := range content {
		for _, b := range path(e, "bytes").([]any) {
			joined = append(joined, byte(b.(float64)))
		}
		if lp := path(e, "logprob").(float64); lp != -0.25 {
			t.Fatalf("logprob %v", lp)
		}
		if top, _ := path(e, "top_logprobs").([]any); len(top) != 2 || path(top[1], "logprob").(float64) != -1.5 {
			t.Fatalf("top_logprobs %v", top)
		}
	}
	if string(joined) != text {
		t.Errorf("logprob tokens spell %q, reply %q", joined, text)
	}
	if code, body := post(t, ts.URL+"/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}]}`); code != 200 || path(body, "choices", 0, "logprobs") != nil {
		t.Errorf("logprobs present without being asked: %v", body)
	}

	st := postStream(t, ts.URL+"/v1/chat/completions", chat+`,"stream":true}`)
	var streamed []byte
	for _, c := range st.chunks {
		entries, _ := path(c, "choices", 0, "logprobs", "content").([]any)
		for _, e := range entries {
			for _, b := range path(e, "bytes").([]any) {
				streamed = append(streamed, byte(b.(float64)))
			}
		}
	}
	if st.text != text || string(streamed) != text {
		t.Errorf("streamed logprob tokens %q for the reply %q (stream %q)", streamed, text, st.text)
	}

	code, body = post(t, ts.URL+"/v1/completions", `{"prompt":"hi","temperature":0,"logprobs":1}`)
	if code != 200 {
		t.Fatalf("%d %v", code, body)
	}
	lp := path(body, "choices", 0, "logprobs").(map[string]any)
	tokens, offsets := lp["tokens"].([]any), lp["text_offset"].([]any)
	if len(tokens) == 0 || len(tokens) != len(lp["token_logprobs"].([]any)) || len(tokens) != len(lp["top_logprobs"].([]any)) || len(tokens) != len(offsets) {
		t.Fatalf("completions logprobs arrays differ in length: %v", lp)
	}
	if last := len(tokens) - 1; int(offsets[last].(float64)) != len(path(body, "choices", 0, "text").(string))-len(tokens[last].(string)) {
		t.Errorf("text_offset %v for %q", offsets, path(body, "choices", 0, "text"))
	}
}

// TestJSONResponseFormat: with the real model, replies under json_object and
// json_schema parse and match the schema, sampled or greedy.
func TestJSONResponseFormat(t *testing.T) {
	e := loadEngine(t)
	defer e.Close()
	s, err := New(NewEngineBackend(e), Options{MaxCtx: 256})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	const schema = `{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},
		"mood":{"enum":["merry","sad"]}},"required":["name","age","mood"]}`
	// The model was trained on plays, not JSON, and left alone writes prose
	// inside the first string until max_tokens. A logit_bias towards the
	// characters that close values and towards the stop tokens makes replies
	// end; the constraint alone must keep them valid.
	bias := map[string]float64{}
	for _, text := range []string{`"`, `}`} {
		for _, id := range e.Tokenizer.Encode(text) {
			bias[fmt.Sprint(id)] = 6
		}
	}
	for _, id := range e.StopTokens() {
		bias[fmt.Sprint(id)] = 6
	}
	biasJSON, _ := json.Marshal(bias)
	for i, rf := range []string{`{"type":"json_object"}`, `{"type":"json_schema","json_schema":{"name":"p","schema":` + schema + `}}`} {
		stopped := 0
		for seed, temp := range []string{"0", "0.8", "0.8", "0.8", "0.8", "0.8"} {
			code, body := post(t, ts.URL+"/v1/chat/completions", fmt.Sprintf(`{"messages":[{"role":"user","content":"Who art thou?"}],
				"max_tokens":200,"seed":%d,"temperature":%s,"response_format":%s,"logit_bias":%s}`, seed, temp, rf, biasJSON))
			if code != 200 {
				t.Fatalf("%d %v", code, body)
			}
			content := path(body, "choices", 0, "message", "content").(string)
			if path(body, "choices", 0, "finish_reason") != "stop" {
				t.Logf("temp %s: cut at max_tokens: %q", temp, content)
				continue
			}
			stopped++
			var v map[string]any
			if err := json.Unmarshal([]byte(content), &v); err != nil {
				t.Fatalf("%s temp %s: reply %q does not parse: %v", rf, temp, content, err)
			}
			if i == 1 {
				age, ok := v["age"].(float64)
				if _, okName := v["name"].(string); !okName || !ok || age != math.Trunc(age) || (v["mood"] != "merry" && v["mood"] != "sad") || len(v) != 3 {
					t.Fatalf("temp %s: %q does not match the schema", temp, content)
				}
			}
			t.Logf("%s temp %s: %s", rf, temp, content)
		}
		if stopped < 3 {
			t.Errorf("%s: only %d of 6 replies ended with a stop token", rf, stopped)
		}
	}
}

// TestTokenize: /tokenize and /detokenize round-trip, as llama-server's do.
func TestTokenize(t *testing.T) {
	_, ts := newTestServer(t, newFake(), Options{})
	code, body := post(t, ts.URL+"/tokenize", `{"content":"hé","add_special":true}`)
	ids, _ := body["tokens"].([]any)
	if code != 200 || len(ids) != 4 || ids[0].(float64) != fakeBOS {
		t.Fatalf("tokenize: %d %v", code, body)
	}
	js, _ := json.Marshal(ids[1:])
	if code, body := post(t, ts.URL+"/detokenize", `{"tokens":`+string(js)+`}`); code != 200 || body["content"] != "hé" {
		t.Errorf("detokenize: %d %v", code, body)
	}
	for path, bad := range map[string]string{"/tokenize": `{}`, "/detokenize": `{"tokens":[-1]}`} {
		if code, _ := post(t, ts.URL+path, bad); code != 400 {
			t.Errorf("%s %s: %d, want 400", path, bad, code)
		}
	}
}
