package server

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// benchRequests posts body b.N times and reports requests and generated
// tokens per second.
func benchRequests(b *testing.B, url, body string) {
	b.Helper()
	client := &http.Client{}
	defer client.CloseIdleConnections()
	tokens := 0
	b.ResetTimer()
	for range b.N {
		resp, err := client.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("status %d: %v %s", resp.StatusCode, err, data)
		}
		if strings.Contains(body, `"stream":true`) {
			tokens += strings.Count(string(data), "data: ") - 3 // role, finish and [DONE] carry no text
		} else {
			var n int
			i := strings.Index(string(data), `"completion_tokens":`)
			fmt.Sscanf(string(data[i+len(`"completion_tokens":`):]), "%d", &n)
			tokens += n
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tok/s")
}

// BenchmarkServerFake measures the server's own overhead: the fake backend
// generates its 40-odd tokens without delay.
func BenchmarkServerFake(b *testing.B) {
	s, err := New(newFake(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	body := `{"messages":[{"role":"user","content":"Benchmark"}],"temperature":0%s}`
	b.Run("plain", func(b *testing.B) { benchRequests(b, ts.URL+"/v1/chat/completions", fmt.Sprintf(body, "")) })
	b.Run("stream", func(b *testing.B) {
		benchRequests(b, ts.URL+"/v1/chat/completions", fmt.Sprintf(body, `,"stream":true`))
	})
}

// BenchmarkServerEngine measures end-to-end greedy completions of 32 tokens
// on the Shakespeare model through HTTP.
func BenchmarkServerEngine(b *testing.B) {
	e := loadEngine(b)
	defer e.Close()
	s, err := New(NewEngineBackend(e), Options{})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	body := `{"prompt":"ROMEO:\n","temperature":0,"max_tokens":32%s}`
	b.Run("plain", func(b *testing.B) { benchRequests(b, ts.URL+"/v1/completions", fmt.Sprintf(body, "")) })
	b.Run("stream", func(b *testing.B) { benchRequests(b, ts.URL+"/v1/completions", fmt.Sprintf(body, `,"stream":true`)) })
}
