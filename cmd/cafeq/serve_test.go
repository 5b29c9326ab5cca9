package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cafeq/cafeq/runtime"
	"github.com/cafeq/cafeq/runtime/server"
)

// TestGreedyRunEqualsServer: greedy output for a prompt is the same through
// `cafeq run` and through the server's completions endpoint.
func TestGreedyRunEqualsServer(t *testing.T) {
	const prompt, n = "ROMEO:", 40
	code, out, stderr := run(t, "run", "-m", shakespeare, "-p", prompt, "-n", "40", "-temp", "0")
	if code != 0 {
		t.Fatal(stderr)
	}
	cliText := strings.TrimSuffix(out, "\n")

	e, err := runtime.Load(shakespeare, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	srv, err := server.New(server.NewEngineBackend(e), server.Options{Parallel: 2, MaxCtx: 256})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	body, _ := json.Marshal(map[string]any{"prompt": prompt, "max_tokens": n, "temperature": 0})
	resp, err := http.Post(ts.URL+"/v1/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Choices []struct {
			Text string `json:"text"`
		} `json:"choices"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || len(got.Choices) != 1 {
		t.Fatalf("decode: %v %+v", err, got)
	}
	if got.Choices[0].Text != cliText {
		t.Fatalf("server %q\ncli    %q", got.Choices[0].Text, cliText)
	}
	if len(cliText) < 20 {
		t.Fatalf("suspiciously short output %q", cliText)
	}
}
