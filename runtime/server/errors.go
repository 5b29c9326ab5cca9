package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"
)

// apiError is an error answered to the client in OpenAI's shape:
//
//	{"error": {"message": "...", "type": "invalid_request_error", "param": "messages", "code": null}}
type apiError struct {
	Status  int
	Message string
	Type    string
	Param   string // the offending request field, "" when none
	Code    string // a machine-readable reason, "" when none
}

func (e *apiError) Error() string {
	if e.Param != "" {
		return fmt.Sprintf("server: %d %s (param %s)", e.Status, e.Message, e.Param)
	}
	return fmt.Sprintf("server: %d %s", e.Status, e.Message)
}

// Error types, as OpenAI names them.
const (
	typeInvalidRequest = "invalid_request_error"
	typeServer         = "server_error"
	typeRateLimit      = "rate_limit_error"
)

// invalid is a 400 about one request field.
func invalid(param, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: typeInvalidRequest, Param: param, Message: fmt.Sprintf(format, args...)}
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// maxErrorMessage bounds an error message: whatever a message quotes from
// the request, the answer stays small.
const maxErrorMessage = 512

func (e *apiError) body() errorBody {
	return errorBody{Error: errorDetail{Message: clip(e.Message, maxErrorMessage), Type: e.Type,
		Param: nullable(clip(e.Param, maxEcho)), Code: nullable(e.Code)}}
}

// maxEcho bounds each piece of request input an error message quotes.
const maxEcho = 64

// clip shortens s to at most n bytes, cut at a UTF-8 boundary and marked
// with "…", so that error messages never echo a large input in full.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// writeError answers e as JSON. It must be called before anything else is
// written to w.
func writeError(w http.ResponseWriter, e *apiError) {
	if e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, e.Status, e.body())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own response types reach here; they always marshal.
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"message":"server: cannot encode response","type":"server_error","param":null,"code":null}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(writeStallTimeout))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
