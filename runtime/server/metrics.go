package server

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are what GET /metrics exports in Prometheus's text format. Each
// Server has its own registry, so several can live in one process (tests).
type metrics struct {
	reg              *prometheus.Registry
	requests         *prometheus.CounterVec
	promptTokens     prometheus.Counter
	completionTokens prometheus.Counter
	timeToFirstToken prometheus.Histogram
	decodeRate       prometheus.Histogram
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cafeq_requests_total", Help: "HTTP requests answered, by path and status code.",
		}, []string{"path", "code"}),
		promptTokens: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cafeq_prompt_tokens_total", Help: "Prompt tokens of generation requests (BOS and chat markup included).",
		}),
		completionTokens: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cafeq_completion_tokens_total", Help: "Tokens generated.",
		}),
		timeToFirstToken: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cafeq_time_to_first_token_seconds", Help: "From a generation request's arrival to its first reply token (queueing and prefill).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14), // 10 ms .. 82 s
		}),
		decodeRate: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cafeq_decode_tokens_per_second", Help: "Decode speed of each generation, after its first token.",
			Buckets: prometheus.ExponentialBuckets(0.5, 2, 14), // 0.5 .. 4096 tok/s
		}),
	}
	m.reg.MustRegister(m.requests, m.promptTokens, m.completionTokens, m.timeToFirstToken, m.decodeRate,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cafeq_queue_depth", Help: "Generation requests waiting for a slot.",
		}, func() float64 { _, waiting := s.slots.busy(); return float64(waiting) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cafeq_requests_running", Help: "Generations running now.",
		}, func() float64 { running, _ := s.slots.busy(); return float64(running) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cafeq_slots", Help: "Generations that may run at once (-parallel).",
		}, func() float64 { return float64(s.opts.Parallel) }),
	)
	return m
}

// observe records one answered request.
func (m *metrics) observe(s *Server, r *http.Request, status int, ri *reqInfo) {
	path := r.URL.Path
	switch {
	case strings.HasPrefix(path, "/v1/models/"):
		path = "/v1/models/{id}"
	case s.routes[path].handler == nil:
		path = "other" // unbounded label values would grow the registry forever
	}
	m.requests.WithLabelValues(path, strconv.Itoa(status)).Inc()
	m.promptTokens.Add(float64(ri.promptTokens))
	m.completionTokens.Add(float64(ri.completionTokens))
	if !ri.firstToken.IsZero() {
		m.timeToFirstToken.Observe(ri.firstToken.Sub(ri.start).Seconds())
		if n := ri.completionTokens - 1; n > 0 {
			if d := ri.lastToken.Sub(ri.firstToken).Seconds(); d > 0 {
				m.decodeRate.Observe(float64(n) / d)
			}
		}
	}
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) *apiError {
	promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	return nil
}

// tokenTimes records a reply token's arrival for the metrics.
func (ri *reqInfo) tokenTimes(now time.Time) {
	if ri.firstToken.IsZero() {
		ri.firstToken = now
	}
	ri.lastToken = now
}
