package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
)

// Limits on request fields. maxStops matches OpenAI's; the stop string
// length bounds the text the streamer holds back.
const (
	maxStops      = 4
	maxStopLength = 256
)

// sampling holds validated generation parameters shared by both endpoints.
type sampling struct {
	MaxTokens   int // 0 means "until the context is full"
	Temperature float32
	TopP        float32
	TopK        int
	Seed        uint64
	HasSeed     bool
	Stop        []string
}

// chatRequest is a validated POST /v1/chat/completions body.
type chatRequest struct {
	Messages     []Message
	Stream       bool
	IncludeUsage bool
	sampling
}

// completionRequest is a validated POST /v1/completions body.
type completionRequest struct {
	Prompt       string
	Stream       bool
	IncludeUsage bool
	sampling
}

// wireSampling are the JSON fields common to both endpoints. Pointers tell
// an absent field from a zero one. Unknown fields are ignored, as OpenAI's
// clients send many we do not implement.
type wireSampling struct {
	Stream        bool `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Temperature         *float64  `json:"temperature"`
	TopP                *float64  `json:"top_p"`
	TopK                *int      `json:"top_k"`
	MaxTokens           *int      `json:"max_tokens"`
	MaxCompletionTokens *int      `json:"max_completion_tokens"`
	Stop                stopField `json:"stop"`
	Seed                *int64    `json:"seed"`
	N                   *int      `json:"n"`
}

type wireChat struct {
	Messages *[]wireMessage `json:"messages"`
	wireSampling
}

type wireMessage struct {
	Role    string       `json:"role"`
	Content contentField `json:"content"`
}

type wireCompletion struct {
	Prompt promptField `json:"prompt"`
	wireSampling
}

// fieldError is returned by the custom unmarshalers so the API error can
// name the field.
type fieldError struct {
	param, msg string
}

func (e *fieldError) Error() string { return e.param + ": " + e.msg }

// stopField accepts a string or an array of strings.
type stopField struct {
	set  bool
	list []string
}

func (s *stopField) UnmarshalJSON(b []byte) error {
	s.set = true
	s.list = nil
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		s.list = []string{one}
		return nil
	}
	if err := json.Unmarshal(b, &s.list); err != nil {
		return &fieldError{"stop", "must be a string or an array of strings"}
	}
	return nil
}

// contentField accepts a string, or OpenAI's array of content parts of which
// only {"type": "text", "text": ...} is supported; parts are concatenated.
type contentField struct {
	set  bool
	text string
}

func (c *contentField) UnmarshalJSON(b []byte) error {
	c.set = false
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if err := json.Unmarshal(b, &c.text); err == nil {
		c.set = true
		return nil
	}
	var parts []struct {
		Type string  `json:"type"`
		Text *string `json:"text"`
	}
	if err := json.Unmarshal(b, &parts); err != nil {
		return &fieldError{"content", "must be a string or an array of text parts"}
	}
	var sb strings.Builder
	for _, p := range parts {
		if p.Type != "text" || p.Text == nil {
			return &fieldError{"content", fmt.Sprintf("unsupported content part type %q (only text)", p.Type)}
		}
		sb.WriteString(*p.Text)
	}
	c.set, c.text = true, sb.String()
	return nil
}

// promptField accepts a string or an array of exactly one string.
type promptField struct {
	set  bool
	text string
}

func (p *promptField) UnmarshalJSON(b []byte) error {
	p.set = false
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if err := json.Unmarshal(b, &p.text); err == nil {
		p.set = true
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil || len(list) != 1 {
		return &fieldError{"prompt", "must be a string or an array of one string"}
	}
	p.set, p.text = true, list[0]
	return nil
}

// decodeJSON unmarshals body into v and turns decoding failures into 400s
// that name the field.
func decodeJSON(body []byte, v any) *apiError {
	err := json.Unmarshal(body, v)
	if err == nil {
		return nil
	}
	var fe *fieldError
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &fe):
		return invalid(fe.param, "%s %s", fe.param, fe.msg)
	case errors.As(err, &te):
		if te.Field == "" {
			return invalid("", "request body must be a JSON object")
		}
		// The embedded struct's name is part of the path; clients know the
		// field by its JSON name alone.
		te.Field = strings.TrimPrefix(te.Field, "wireSampling.")
		return invalid(te.Field, "%s: expected %s, got JSON %s", te.Field, te.Type, te.Value)
	case errors.As(err, &se):
		return invalid("", "malformed JSON at byte %d: %v", se.Offset, se)
	default:
		return invalid("", "malformed JSON: %v", err)
	}
}

// validate checks ranges. maxCtx bounds max_tokens.
func (w *wireSampling) validate(maxCtx int) (sampling, *apiError) {
	s := sampling{Temperature: 1, TopP: 1}
	if w.N != nil && *w.N != 1 {
		return s, invalid("n", "n must be 1 (got %d)", *w.N)
	}
	if w.Temperature != nil {
		t := *w.Temperature
		if math.IsNaN(t) || t < 0 || t > 2 {
			return s, invalid("temperature", "temperature must be between 0 and 2 (got %g)", t)
		}
		s.Temperature = float32(t)
	}
	if w.TopP != nil {
		p := *w.TopP
		if math.IsNaN(p) || p <= 0 || p > 1 {
			return s, invalid("top_p", "top_p must be in (0, 1] (got %g)", p)
		}
		s.TopP = float32(p)
	}
	if w.TopK != nil {
		if *w.TopK < 0 {
			return s, invalid("top_k", "top_k must be >= 0 (got %d)", *w.TopK)
		}
		s.TopK = *w.TopK
	}
	maxTok, param := w.MaxTokens, "max_tokens"
	if w.MaxCompletionTokens != nil {
		maxTok, param = w.MaxCompletionTokens, "max_completion_tokens"
	}
	if maxTok != nil {
		if *maxTok < 1 || *maxTok > maxCtx {
			return s, invalid(param, "%s must be between 1 and the context length %d (got %d)", param, maxCtx, *maxTok)
		}
		s.MaxTokens = *maxTok
	}
	if w.Seed != nil {
		s.Seed, s.HasSeed = uint64(*w.Seed), true
	}
	if len(w.Stop.list) > maxStops {
		return s, invalid("stop", "at most %d stop sequences (got %d)", maxStops, len(w.Stop.list))
	}
	for _, st := range w.Stop.list {
		if len(st) > maxStopLength {
			return s, invalid("stop", "stop sequences must be at most %d bytes", maxStopLength)
		}
		if st != "" { // an empty stop would end every reply at once; ignore it
			s.Stop = append(s.Stop, st)
		}
	}
	return s, nil
}

func (w *wireSampling) includeUsage() bool {
	return w.StreamOptions != nil && w.StreamOptions.IncludeUsage
}

// decodeChatRequest parses and validates a chat completion request body.
func decodeChatRequest(body []byte, maxCtx int) (*chatRequest, *apiError) {
	var w wireChat
	if e := decodeJSON(body, &w); e != nil {
		return nil, e
	}
	if w.Messages == nil {
		return nil, invalid("messages", "messages is required")
	}
	if len(*w.Messages) == 0 {
		return nil, invalid("messages", "messages must not be empty")
	}
	req := &chatRequest{Stream: w.Stream, IncludeUsage: w.includeUsage()}
	for i, m := range *w.Messages {
		switch m.Role {
		case "system", "user", "assistant":
		case "":
			return nil, invalid(fmt.Sprintf("messages[%d].role", i), "messages[%d].role is required", i)
		default:
			return nil, invalid(fmt.Sprintf("messages[%d].role", i), "messages[%d].role %q is not supported (want system, user or assistant)", i, m.Role)
		}
		if !m.Content.set {
			return nil, invalid(fmt.Sprintf("messages[%d].content", i), "messages[%d].content is required", i)
		}
		req.Messages = append(req.Messages, Message{Role: m.Role, Content: m.Content.text})
	}
	s, e := w.validate(maxCtx)
	if e != nil {
		return nil, e
	}
	req.sampling = s
	return req, nil
}

// decodeCompletionRequest parses and validates a text completion request
// body.
func decodeCompletionRequest(body []byte, maxCtx int) (*completionRequest, *apiError) {
	var w wireCompletion
	if e := decodeJSON(body, &w); e != nil {
		return nil, e
	}
	if !w.Prompt.set {
		return nil, invalid("prompt", "prompt is required")
	}
	s, e := w.validate(maxCtx)
	if e != nil {
		return nil, e
	}
	return &completionRequest{Prompt: w.Prompt.text, Stream: w.Stream, IncludeUsage: w.includeUsage(), sampling: s}, nil
}
