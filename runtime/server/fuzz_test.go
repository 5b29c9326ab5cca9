package server

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
)

// FuzzDecodeChatRequest checks that the request decoders never panic, that
// they either accept or return a 400 with a message, and that whatever they
// accept is within the documented ranges. Seeds: testdata/fuzz.
func FuzzDecodeChatRequest(f *testing.F) {
	const maxCtx = 512
	f.Fuzz(func(t *testing.T, body []byte) {
		req, e := decodeChatRequest(body, requestLimits{maxCtx: maxCtx, vocab: 300})
		if (req == nil) == (e == nil) {
			t.Fatalf("request %v and error %v", req, e)
		}
		if e != nil {
			if e.Status != http.StatusBadRequest || e.Message == "" || e.Type != typeInvalidRequest {
				t.Fatalf("bad error %+v", e)
			}
			if _, err := json.Marshal(e.body()); err != nil {
				t.Fatal(err)
			}
		} else {
			if len(req.Messages) == 0 {
				t.Fatal("accepted no messages")
			}
			for _, m := range req.Messages {
				if m.Role != "system" && m.Role != "user" && m.Role != "assistant" {
					t.Fatalf("accepted role %q", m.Role)
				}
			}
			checkSampling(t, req.sampling, maxCtx)
		}
		creq, ce := decodeCompletionRequest(body, requestLimits{maxCtx: maxCtx, vocab: 300})
		if (creq == nil) == (ce == nil) {
			t.Fatalf("completion request %v and error %v", creq, ce)
		}
		if creq != nil {
			checkSampling(t, creq.sampling, maxCtx)
		}
	})
}

func checkSampling(t *testing.T, s sampling, maxCtx int) {
	t.Helper()
	if !(s.Temperature >= 0 && s.Temperature <= 2) || !(s.TopP > 0 && s.TopP <= 1) || s.TopK < 0 ||
		s.MaxTokens < 0 || s.MaxTokens > maxCtx || len(s.Stop) > maxStops {
		t.Fatalf("accepted out-of-range parameters %+v", s)
	}
	for _, st := range s.Stop {
		if st == "" || len(st) > maxStopLength {
			t.Fatalf("accepted stop %q", st)
		}
	}
}

// malformedBodies returns n request bodies that are each invalid: truncated
// JSON, non-objects, wrong field types, out-of-range values, bad roles.
func malformedBodies(n int) []string {
	valid := `{"messages":[{"role":"system","content":"S"},{"role":"user","content":"Hello there"}],"temperature":0.5,"max_tokens":8,"stop":["x"]}`
	user := `"messages":[{"role":"user","content":"hi"}]`
	fixed := []string{
		``, `null`, `0`, `"str"`, `[]`, `[{}]`, `{`, `}`, `{}`, `{"messages":null}`, `{"messages":{}}`,
		`{"messages":[]}`, `{"messages":[null]}`, `{"messages":[1]}`, `{"messages":[{"role":"bot","content":"x"}]}`,
		`{"messages":[{"role":"user"}]}`, `{"messages":[{"role":"user","content":null}]}`,
		`{"messages":[{"role":"user","content":[{"type":"audio"}]}]}`,
		`{` + user + `,"temperature":3}`, `{` + user + `,"temperature":"0"}`, `{` + user + `,"top_p":-1}`,
		`{` + user + `,"top_p":0}`, `{` + user + `,"max_tokens":-1}`, `{` + user + `,"max_tokens":99999999}`,
		`{` + user + `,"max_tokens":"8"}`, `{` + user + `,"n":3}`, `{` + user + `,"stop":{}}`, `{` + user + `,"stop":[1]}`,
		`{` + user + `,"seed":1.5}`, `{` + user + `,"stream":1}`, `{` + user + `,"top_k":-4}`,
		`{` + user + `,"stream_options":[]}`, `{` + user + `}}`, `{` + user + `,}`,
	}
	rng := rand.New(rand.NewPCG(7, 7))
	out := make([]string, 0, n)
	for i := 0; len(out) < n; i++ {
		switch i % 3 {
		case 0:
			out = append(out, fixed[(i/3)%len(fixed)])
		case 1: // a strict prefix of a valid object is never valid JSON
			out = append(out, valid[:rng.IntN(len(valid))])
		case 2: // random bytes that do not start an object
			b := make([]byte, 1+rng.IntN(64))
			for j := range b {
				b[j] = byte(rng.IntN(256))
			}
			if b[0] == '{' || b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r' {
				b[0] = 'x'
			}
			out = append(out, string(b))
		}
	}
	return out
}

// TestMalformedRequests sends 200 malformed requests to both endpoints: each
// gets a 4xx with an OpenAI error body, nothing is generated, and the server
// stays healthy.
func TestMalformedRequests(t *testing.T) {
	f := newFake()
	_, ts := newTestServer(t, f, Options{})
	for i, body := range malformedBodies(200) {
		url := ts.URL + "/v1/chat/completions"
		if i%2 == 1 && !strings.Contains(body, "messages") {
			url = ts.URL + "/v1/completions" // no prompt field: also a 400
		}
		resp, err := http.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var eb errorBody
		if resp.StatusCode < 400 || resp.StatusCode > 499 || json.Unmarshal(b, &eb) != nil || eb.Error.Message == "" {
			t.Errorf("body %q: status %d, response %q", body, resp.StatusCode, b)
		}
	}
	if f.started.Load() != 0 {
		t.Errorf("%d generations started", f.started.Load())
	}
	resp, err := http.Get(ts.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("health %d after malformed requests", resp.StatusCode)
	}
	status, m := post(t, ts.URL+"/v1/completions", `{"prompt":"ok","max_tokens":2}`)
	if status != 200 {
		t.Errorf("valid request after malformed ones: %d %v", status, m)
	}
}
