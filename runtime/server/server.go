package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"
)

// Defaults for zero Options fields.
const (
	DefaultQueueSize    = 16
	DefaultMaxBodyBytes = 1 << 20
	DefaultModelName    = "cafeq"
	DefaultMaxConns     = 128
)

// Timeouts that fit streaming: a request's body must arrive within
// bodyReadTimeout (a slow sender cannot hold a connection), after which the
// connection has no read deadline, so that a generation may stream for as
// long as it takes; each write must complete within writeStallTimeout (a
// client that stops reading is cut off, and its slot freed).
const (
	bodyReadTimeout   = 30 * time.Second
	writeStallTimeout = 30 * time.Second
)

// Options configure a Server.
type Options struct {
	Parallel     int          // generations at once, each with its own KV cache; 0 means 1
	QueueSize    int          // requests that may wait for a slot; 0 means DefaultQueueSize, negative means none
	MaxCtx       int          // tokens per session (prompt + reply); 0 means the model's context length
	MaxBodyBytes int64        // request body limit; 0 means DefaultMaxBodyBytes
	ModelName    string       // the id reported in responses and /v1/models; "" means DefaultModelName
	MaxConns     int          // open connections at most (Serve); 0 means DefaultMaxConns
	Logger       *slog.Logger // access log and errors; nil discards
}

// Server is the HTTP handler. Create it with New.
type Server struct {
	backend  Backend
	opts     Options
	log      *slog.Logger
	slots    *slots
	created  int64 // unix time reported for the model
	draining atomic.Bool
	routes   map[string]route
	metrics  *metrics

	// A prompt of more than maxPromptBytes = MaxCtx × maxTokenBytes bytes
	// cannot fit the context, so it is refused without being tokenized.
	maxTokenBytes, maxPromptBytes int

	bodyTimeout time.Duration // bodyReadTimeout; shorter in tests
}

type route struct {
	method  string
	handler func(http.ResponseWriter, *http.Request) *apiError
}

// New returns a Server for b. It allocates no session yet: sessions are made
// on first use, up to Parallel of them.
func New(b Backend, opts Options) (*Server, error) {
	if b == nil {
		return nil, errors.New("server: nil backend")
	}
	if opts.Parallel < 0 {
		return nil, fmt.Errorf("server: parallel %d < 0", opts.Parallel)
	}
	if opts.Parallel == 0 {
		opts.Parallel = 1
	}
	switch {
	case opts.QueueSize == 0:
		opts.QueueSize = DefaultQueueSize
	case opts.QueueSize < 0:
		opts.QueueSize = 0
	}
	modelCtx := b.ContextLength()
	switch {
	case opts.MaxCtx < 0:
		return nil, fmt.Errorf("server: context %d < 0", opts.MaxCtx)
	case opts.MaxCtx == 0:
		opts.MaxCtx = modelCtx
	case modelCtx > 0 && opts.MaxCtx > modelCtx:
		return nil, fmt.Errorf("server: context %d exceeds the model's %d tokens", opts.MaxCtx, modelCtx)
	}
	if opts.MaxCtx < 2 {
		return nil, fmt.Errorf("server: context %d is too small", opts.MaxCtx)
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = DefaultMaxConns
	}
	if opts.ModelName == "" {
		opts.ModelName = DefaultModelName
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{backend: b, opts: opts, log: opts.Logger, created: time.Now().Unix(), bodyTimeout: bodyReadTimeout}
	if n := b.MaxTokenBytes(); n > 0 {
		s.maxTokenBytes, s.maxPromptBytes = n, n*opts.MaxCtx
	}
	maxCtx := opts.MaxCtx
	s.slots = newSlots(opts.Parallel, opts.QueueSize, func() (Session, error) { return b.NewSession(maxCtx) })
	s.routes = map[string]route{
		"/v1/chat/completions": {http.MethodPost, s.handleChat},
		"/v1/completions":      {http.MethodPost, s.handleCompletion},
		"/v1/models":           {http.MethodGet, s.handleModels},
		"/v1/models/{id}":      {http.MethodGet, s.handleModel},
		"/health":              {http.MethodGet, s.handleHealth},
		"/tokenize":            {http.MethodPost, s.handleTokenize},
		"/detokenize":          {http.MethodPost, s.handleDetokenize},
		"/metrics":             {http.MethodGet, s.handleMetrics},
	}
	s.metrics = newMetrics(s)
	return s, nil
}

// drain starts a shutdown: /health and new requests get 503, and requests
// waiting in the queue get 503 at once; running generations go on.
func (s *Server) drain() {
	s.draining.Store(true)
	s.slots.drain()
}

// Options returns the options in effect, defaults filled in.
func (s *Server) Options() Options { return s.opts }

// reqInfo collects what the access log and the metrics report about a
// request.
type reqInfo struct {
	promptTokens, completionTokens int
	start, firstToken, lastToken   time.Time
}

type infoKey struct{}

func info(r *http.Request) *reqInfo {
	if ri, ok := r.Context().Value(infoKey{}).(*reqInfo); ok {
		return ri
	}
	return &reqInfo{}
}

// statusWriter records the status code for the access log and whether the
// header went out, so a panic can still be answered with a 500.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush on the real writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ServeHTTP routes the request, recovers panics into 500s and writes one
// access-log line.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ri := &reqInfo{start: start}
	r = r.WithContext(context.WithValue(r.Context(), infoKey{}, ri))
	sw := &statusWriter{ResponseWriter: w}
	// The body must arrive in time; readBody lifts the deadline once it has.
	_ = http.NewResponseController(sw).SetReadDeadline(time.Now().Add(s.bodyTimeout))
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("server: panic in handler", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if sw.status == 0 {
				writeError(sw, &apiError{Status: http.StatusInternalServerError, Type: typeServer, Message: "internal server error"})
			} else {
				// The response is already under way; its status stays, but
				// log what really happened.
				sw.status = http.StatusInternalServerError
			}
		}
		s.metrics.observe(s, r, sw.status, ri)
		s.log.Info("request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
			"duration", time.Since(start).Round(time.Microsecond),
			"prompt_tokens", ri.promptTokens, "completion_tokens", ri.completionTokens)
	}()
	if e := s.route(sw, r); e != nil {
		writeError(sw, e)
	}
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) *apiError {
	p := r.URL.Path
	if strings.HasPrefix(p, "/v1/models/") {
		p = "/v1/models/{id}"
	}
	rt, ok := s.routes[p]
	if !ok {
		return &apiError{Status: http.StatusNotFound, Type: typeInvalidRequest, Code: "not_found",
			Message: fmt.Sprintf("unknown path %s", clip(r.URL.Path, maxEcho))}
	}
	if r.Method != rt.method && !(rt.method == http.MethodGet && r.Method == http.MethodHead) {
		w.Header().Set("Allow", rt.method)
		return &apiError{Status: http.StatusMethodNotAllowed, Type: typeInvalidRequest, Code: "method_not_allowed",
			Message: fmt.Sprintf("%s %s is not allowed; use %s", clip(r.Method, maxEcho), clip(r.URL.Path, maxEcho), rt.method)}
	}
	return rt.handler(w, r)
}

// readBody reads at most MaxBodyBytes of the request body.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *apiError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &apiError{Status: http.StatusRequestEntityTooLarge, Type: typeInvalidRequest, Code: "request_too_large",
				Message: fmt.Sprintf("request body exceeds %d bytes", mbe.Limit)}
		}
		return nil, invalid("", "cannot read request body: %v", err)
	}
	// Nothing more is read from the client: no deadline while the reply
	// streams (Go's server would otherwise cancel the request when it passes).
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	return body, nil
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) *apiError {
	running, waiting := s.slots.busy()
	status, code := "ok", http.StatusOK
	if s.draining.Load() {
		status, code = "shutting down", http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{
		"status":   status,
		"model":    s.opts.ModelName,
		"parallel": s.opts.Parallel,
		"running":  running,
		"waiting":  waiting,
	})
	return nil
}

type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func (s *Server) model() modelObject {
	return modelObject{ID: s.opts.ModelName, Object: "model", Created: s.created, OwnedBy: "cafeq"}
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) *apiError {
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []modelObject{s.model()}})
	return nil
}

// handleModel answers GET /v1/models/{id} for the one loaded model.
func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) *apiError {
	if id := strings.TrimPrefix(r.URL.Path, "/v1/models/"); id != s.opts.ModelName {
		return &apiError{Status: http.StatusNotFound, Type: typeInvalidRequest, Param: "model", Code: "model_not_found",
			Message: fmt.Sprintf("model %q does not exist; this server has %q", clip(id, maxEcho), s.opts.ModelName)}
	}
	writeJSON(w, http.StatusOK, s.model())
	return nil
}
