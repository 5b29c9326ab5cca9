package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"

	"github.com/cafeq/cafeq/runtime"
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
	MinP        float32
	Seed        uint64
	HasSeed     bool
	Stop        []string

	RepeatPenalty, PresencePenalty, FrequencyPenalty float32
	LogitBias                                        map[int]float32

	Logprobs    bool // report each token's log-probability
	TopLogprobs int  // and this many alternatives
	JSONSchema  *runtime.JSONSchema
}

// Limits on the log-probability fields, as OpenAI has them.
const (
	maxTopLogprobsChat       = 20
	maxTopLogprobsCompletion = 5
)

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
	Temperature         *float64           `json:"temperature"`
	TopP                *float64           `json:"top_p"`
	TopK                *int               `json:"top_k"`
	MaxTokens           *int               `json:"max_tokens"`
	MaxCompletionTokens *int               `json:"max_completion_tokens"`
	Stop                stopField          `json:"stop"`
	Seed                *int64             `json:"seed"`
	N                   *int               `json:"n"`
	MinP                *float64           `json:"min_p"`
	RepeatPenalty       *float64           `json:"repeat_penalty"`
	PresencePenalty     *float64           `json:"presence_penalty"`
	FrequencyPenalty    *float64           `json:"frequency_penalty"`
	LogitBias           map[string]float64 `json:"logit_bias"`
	ResponseFormat      *struct {
		Type       string `json:"type"`
		JSONSchema *struct {
			Name   string          `json:"name"`
			Schema json.RawMessage `json:"schema"`
		} `json:"json_schema"`
		Schema json.RawMessage `json:"schema"` // llama-server's json_object with a schema
	} `json:"response_format"`
	// Fields that are refused rather than ignored.
	Tools      json.RawMessage `json:"tools"`
	Functions  json.RawMessage `json:"functions"`
	ToolChoice json.RawMessage `json:"tool_choice"`
}

type wireChat struct {
	Messages    *[]wireMessage `json:"messages"`
	Logprobs    *bool          `json:"logprobs"`
	TopLogprobs *int           `json:"top_logprobs"`
	wireSampling
}

type wireMessage struct {
	Role    string       `json:"role"`
	Content contentField `json:"content"`
}

type wireCompletion struct {
	Prompt   promptField `json:"prompt"`
	Logprobs *int        `json:"logprobs"` // top alternatives to report, 0 to 5
	Echo     bool        `json:"echo"`
	Suffix   *string     `json:"suffix"`
	BestOf   *int        `json:"best_of"`
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
	for i, p := range parts {
		switch {
		case p.Type != "text":
			return &fieldError{"content", fmt.Sprintf("part %d: type %q is not supported (only text)", i, clip(p.Type, maxEcho))}
		case p.Text == nil:
			return &fieldError{"content", fmt.Sprintf("part %d: a text part needs a \"text\" string", i)}
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
		return invalid(te.Field, "%s: expected %s, got JSON %s", clip(te.Field, maxEcho), jsonKind(te.Type), clip(te.Value, maxEcho))
	case errors.As(err, &se):
		return invalid("", "malformed JSON at byte %d: %v", se.Offset, se)
	default:
		return invalid("", "malformed JSON: %v", err)
	}
}

// jsonKind names what a Go type accepts in JSON terms: clients know JSON,
// not the server's Go types ("[]server.wireMessage").
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer in range"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "another type"
}

// requestLimits are what validation checks against: the context bounds
// max_tokens, the vocabulary logit_bias's ids.
type requestLimits struct {
	maxCtx, vocab int
}

// isSet tells a JSON field that was given (not absent and not null).
func isSet(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 0 && !bytes.Equal(t, []byte("null"))
}

// optionalFloat checks an optional number against [lo, hi].
func optionalFloat(v *float64, name string, lo, hi float64, dst *float32) *apiError {
	if v == nil {
		return nil
	}
	if math.IsNaN(*v) || *v < lo || *v > hi {
		return invalid(name, "%s must be between %g and %g (got %g)", name, lo, hi, *v)
	}
	*dst = float32(*v)
	return nil
}

// validate checks ranges.
func (w *wireSampling) validate(lim requestLimits) (sampling, *apiError) {
	maxCtx := lim.maxCtx
	s := sampling{Temperature: 1, TopP: 1}
	switch {
	case isSet(w.Tools) && !bytes.Equal(bytes.TrimSpace(w.Tools), []byte("[]")):
		return s, invalid("tools", "tools (function calling) are not supported by this server")
	case isSet(w.Functions) && !bytes.Equal(bytes.TrimSpace(w.Functions), []byte("[]")):
		return s, invalid("functions", "functions (function calling) are not supported by this server")
	case isSet(w.ToolChoice) && !bytes.Equal(bytes.TrimSpace(w.ToolChoice), []byte(`"none"`)):
		return s, invalid("tool_choice", "tool_choice is not supported by this server (only \"none\")")
	}
	for _, e := range []*apiError{
		optionalFloat(w.MinP, "min_p", 0, 1, &s.MinP),
		optionalFloat(w.PresencePenalty, "presence_penalty", -2, 2, &s.PresencePenalty),
		optionalFloat(w.FrequencyPenalty, "frequency_penalty", -2, 2, &s.FrequencyPenalty),
		optionalFloat(w.RepeatPenalty, "repeat_penalty", 0, 10, &s.RepeatPenalty),
	} {
		if e != nil {
			return s, e
		}
	}
	if len(w.LogitBias) > 0 {
		s.LogitBias = make(map[int]float32, len(w.LogitBias))
		for k, v := range w.LogitBias {
			id, err := strconv.Atoi(k)
			if err != nil || id < 0 || id >= lim.vocab {
				return s, invalid("logit_bias", "logit_bias key %q is not a token id (0 to %d)", clip(k, maxEcho), lim.vocab-1)
			}
			if math.IsNaN(v) || v < -100 || v > 100 {
				return s, invalid("logit_bias", "logit_bias values must be between -100 and 100 (got %g for %s)", v, clip(k, maxEcho))
			}
			s.LogitBias[id] = float32(v)
		}
	}
	if rf := w.ResponseFormat; rf != nil {
		switch rf.Type {
		case "", "text":
		case "json_object":
			s.JSONSchema = runtime.JSONObjectSchema
			if isSet(rf.Schema) {
				schema, err := runtime.CompileJSONSchema(rf.Schema)
				if err != nil {
					return s, invalid("response_format.schema", "response_format.%v", err)
				}
				s.JSONSchema = schema
			}
		case "json_schema":
			if rf.JSONSchema == nil || !isSet(rf.JSONSchema.Schema) {
				return s, invalid("response_format.json_schema.schema", "response_format.json_schema.schema is required")
			}
			schema, err := runtime.CompileJSONSchema(rf.JSONSchema.Schema)
			if err != nil {
				return s, invalid("response_format.json_schema.schema", "response_format.json_%v", err)
			}
			s.JSONSchema = schema
		default:
			return s, invalid("response_format.type", "response_format.type %q is not supported (text, json_object or json_schema)", clip(rf.Type, maxEcho))
		}
	}
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
func decodeChatRequest(body []byte, lim requestLimits) (*chatRequest, *apiError) {
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
			return nil, invalid(fmt.Sprintf("messages[%d].role", i), "messages[%d].role %q is not supported (want system, user or assistant)", i, clip(m.Role, maxEcho))
		}
		if !m.Content.set {
			return nil, invalid(fmt.Sprintf("messages[%d].content", i), "messages[%d].content is required", i)
		}
		req.Messages = append(req.Messages, Message{Role: m.Role, Content: m.Content.text})
	}
	s, e := w.validate(lim)
	if e != nil {
		return nil, e
	}
	if w.Logprobs != nil && *w.Logprobs {
		s.Logprobs = true
	}
	if w.TopLogprobs != nil {
		switch n := *w.TopLogprobs; {
		case n < 0 || n > maxTopLogprobsChat:
			return nil, invalid("top_logprobs", "top_logprobs must be between 0 and %d (got %d)", maxTopLogprobsChat, n)
		case !s.Logprobs:
			return nil, invalid("top_logprobs", "top_logprobs needs logprobs: true")
		default:
			s.TopLogprobs = n
		}
	}
	req.sampling = s
	return req, nil
}

// decodeCompletionRequest parses and validates a text completion request
// body.
func decodeCompletionRequest(body []byte, lim requestLimits) (*completionRequest, *apiError) {
	var w wireCompletion
	if e := decodeJSON(body, &w); e != nil {
		return nil, e
	}
	if !w.Prompt.set {
		return nil, invalid("prompt", "prompt is required")
	}
	switch {
	case w.Echo:
		return nil, invalid("echo", "echo is not supported by this server")
	case w.Suffix != nil && *w.Suffix != "":
		return nil, invalid("suffix", "suffix is not supported by this server")
	case w.BestOf != nil && *w.BestOf != 1:
		return nil, invalid("best_of", "best_of must be 1 (got %d)", *w.BestOf)
	}
	s, e := w.validate(lim)
	if e != nil {
		return nil, e
	}
	if w.Logprobs != nil {
		if n := *w.Logprobs; n < 0 || n > maxTopLogprobsCompletion {
			return nil, invalid("logprobs", "logprobs must be between 0 and %d (got %d)", maxTopLogprobsCompletion, n)
		}
		s.Logprobs, s.TopLogprobs = true, *w.Logprobs
	}
	return &completionRequest{Prompt: w.Prompt.text, Stream: w.Stream, IncludeUsage: w.includeUsage(), sampling: s}, nil
}
