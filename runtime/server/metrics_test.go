package server

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return string(b)
}

// metricValue reads one sample, by its full name with labels, from the text
// format.
func metricValue(t *testing.T, text, sample string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no %s in:\n%s", sample, text)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMetrics(t *testing.T) {
	f := slowFake()
	s, ts := newTestServer(t, f, Options{Parallel: 1, QueueSize: 2})
	code, body := post(t, ts.URL+"/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"max_tokens":20}`)
	if code != 200 {
		t.Fatal(body)
	}
	post(t, ts.URL+"/v1/chat/completions", `{"messages":[]}`) // a 400
	post(t, ts.URL+"/nowhere", `{}`)                          // a 404, counted as "other"
	text := scrape(t, ts.URL)
	checks := map[string]float64{
		`cafeq_requests_total{code="200",path="/v1/chat/completions"}`: 1,
		`cafeq_requests_total{code="400",path="/v1/chat/completions"}`: 1,
		`cafeq_requests_total{code="404",path="other"}`:                1,
		`cafeq_prompt_tokens_total`:                                    path(body, "usage", "prompt_tokens").(float64),
		`cafeq_completion_tokens_total`:                                20,
		`cafeq_time_to_first_token_seconds_count`:                      1,
		`cafeq_decode_tokens_per_second_count`:                         1,
		`cafeq_queue_depth`:                                            0,
		`cafeq_slots`:                                                  1,
	}
	for sample, want := range checks {
		if got := metricValue(t, text, sample); got != want {
			t.Errorf("%s = %g, want %g", sample, got, want)
		}
	}
	// 19 tokens after the first at about 2 ms each (the fake's delay).
	rate := metricValue(t, text, "cafeq_decode_tokens_per_second_sum")
	if rate <= 0 || rate > 1000 {
		t.Errorf("decode rate %g tok/s with a 2 ms per token fake", rate)
	}

	// One generation holds the only slot and one waits: queue depth 1.
	stop, _ := startStream(t, ts.URL)
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Post(ts.URL+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"q","max_tokens":2}`))
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	waitFor(t, "a queued request", func() bool { _, w := s.slots.busy(); return w == 1 })
	text = scrape(t, ts.URL)
	if q, r := metricValue(t, text, "cafeq_queue_depth"), metricValue(t, text, "cafeq_requests_running"); q != 1 || r != 1 {
		t.Errorf("queue depth %g, running %g; want 1 and 1", q, r)
	}
	stop()
	<-done
}
