package server

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type chatMessageOut struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatChoice struct {
	Index        int            `json:"index"`
	Message      chatMessageOut `json:"message"`
	Logprobs     *struct{}      `json:"logprobs"`
	FinishReason string         `json:"finish_reason"`
}

type chatCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   usage        `json:"usage"`
}

type chatDelta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

type chunkChoice struct {
	Index        int       `json:"index"`
	Delta        chatDelta `json:"delta"`
	Logprobs     *struct{} `json:"logprobs"`
	FinishReason *string   `json:"finish_reason"`
}

type chatChunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []chunkChoice `json:"choices"`
	Usage   *usage        `json:"usage,omitempty"`
}

type textChoice struct {
	Text         string    `json:"text"`
	Index        int       `json:"index"`
	Logprobs     *struct{} `json:"logprobs"`
	FinishReason *string   `json:"finish_reason"`
}

type textCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []textChoice `json:"choices"`
	Usage   *usage       `json:"usage,omitempty"`
}

// job is one validated generation request, for either endpoint.
type job struct {
	chat         bool
	prompt       []int
	params       sampling
	stream       bool
	includeUsage bool
	promptParam  string // the field blamed when the prompt is too long
}

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) *apiError {
	body, e := s.readBody(w, r)
	if e != nil {
		return e
	}
	req, e := decodeChatRequest(body, s.opts.MaxCtx)
	if e != nil {
		return e
	}
	prompt, err := s.backend.ChatPrompt(req.Messages)
	if err != nil {
		return invalid("messages", "%v", err)
	}
	return s.run(w, r, job{chat: true, prompt: prompt, params: req.sampling, stream: req.Stream,
		includeUsage: req.IncludeUsage, promptParam: "messages"})
}

func (s *Server) handleCompletion(w http.ResponseWriter, r *http.Request) *apiError {
	body, e := s.readBody(w, r)
	if e != nil {
		return e
	}
	req, e := decodeCompletionRequest(body, s.opts.MaxCtx)
	if e != nil {
		return e
	}
	prompt, err := s.backend.TextPrompt(req.Prompt)
	if err != nil {
		return invalid("prompt", "%v", err)
	}
	return s.run(w, r, job{prompt: prompt, params: req.sampling, stream: req.Stream,
		includeUsage: req.IncludeUsage, promptParam: "prompt"})
}

// statusClientClosed is logged (nginx's convention) when the client went away
// before the reply was written.
const statusClientClosed = 499

// run waits for a slot, generates and writes the reply.
func (s *Server) run(w http.ResponseWriter, r *http.Request, j job) *apiError {
	ri := info(r)
	ri.promptTokens = len(j.prompt)
	if len(j.prompt) >= s.opts.MaxCtx {
		return &apiError{Status: http.StatusBadRequest, Type: typeInvalidRequest, Param: j.promptParam, Code: "context_length_exceeded",
			Message: fmt.Sprintf("the prompt is %d tokens; the context holds %d, including at least one reply token", len(j.prompt), s.opts.MaxCtx)}
	}
	if s.draining.Load() {
		return &apiError{Status: http.StatusServiceUnavailable, Type: typeServer, Code: "shutting_down", Message: "server is shutting down"}
	}
	sl, err := s.slots.acquire(r.Context(), j.prompt)
	if err != nil {
		var ae *apiError
		switch {
		case errors.As(err, &ae):
			return ae
		case r.Context().Err() != nil:
			return &apiError{Status: statusClientClosed, Type: typeInvalidRequest, Message: "client closed the request"}
		default:
			s.log.Error("server: cannot start session", "err", err)
			return &apiError{Status: http.StatusInternalServerError, Type: typeServer, Message: err.Error()}
		}
	}
	defer s.slots.release(sl)
	if !j.params.HasSeed {
		var b [8]byte
		rand.Read(b[:])
		j.params.Seed = binary.LittleEndian.Uint64(b[:])
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	id := newID(j.chat)
	created := time.Now().Unix()
	if j.stream {
		return s.stream(ctx, w, r, sl, j, id, created)
	}

	var text strings.Builder
	res, err := s.generate(ctx, sl, j.prompt, j.params, func(t string) error {
		text.WriteString(t)
		return nil
	})
	ri.completionTokens = res.CompletionTokens
	if err != nil {
		return s.genError(r, err)
	}
	u := usage{PromptTokens: len(j.prompt), CompletionTokens: res.CompletionTokens, TotalTokens: len(j.prompt) + res.CompletionTokens}
	if j.chat {
		writeJSON(w, http.StatusOK, chatCompletion{ID: id, Object: "chat.completion", Created: created, Model: s.opts.ModelName,
			Choices: []chatChoice{{Message: chatMessageOut{Role: "assistant", Content: text.String()}, FinishReason: res.Finish}},
			Usage:   u})
	} else {
		writeJSON(w, http.StatusOK, textCompletion{ID: id, Object: "text_completion", Created: created, Model: s.opts.ModelName,
			Choices: []textChoice{{Text: text.String(), FinishReason: &res.Finish}},
			Usage:   &u})
	}
	return nil
}

// genError maps a failed generation to the answer, if one can still be
// written.
func (s *Server) genError(r *http.Request, err error) *apiError {
	if r.Context().Err() != nil {
		return &apiError{Status: statusClientClosed, Type: typeInvalidRequest, Message: "client closed the request"}
	}
	s.log.Error("server: generation failed", "path", r.URL.Path, "err", err)
	return &apiError{Status: http.StatusInternalServerError, Type: typeServer, Message: "generation failed: " + err.Error()}
}

// stream writes the reply as server-sent events: chunks as text becomes
// final, a last chunk with finish_reason, optionally a usage chunk, then
// "data: [DONE]".
func (s *Server) stream(ctx context.Context, w http.ResponseWriter, r *http.Request, sl *slot, j job, id string, created int64) *apiError {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	send := func(v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return errors.Join(errEmit, err)
		}
		if err := rc.Flush(); err != nil {
			return errors.Join(errEmit, err)
		}
		return nil
	}
	chunk := func(content *string, role string, finish *string) any {
		if j.chat {
			return chatChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: s.opts.ModelName,
				Choices: []chunkChoice{{Delta: chatDelta{Role: role, Content: content}, FinishReason: finish}}}
		}
		text := ""
		if content != nil {
			text = *content
		}
		return textCompletion{ID: id, Object: "text_completion", Created: created, Model: s.opts.ModelName,
			Choices: []textChoice{{Text: text, FinishReason: finish}}}
	}

	if j.chat {
		empty := ""
		if err := send(chunk(&empty, "assistant", nil)); err != nil {
			return nil // the client is gone; nothing more to write
		}
	}
	res, err := s.generate(ctx, sl, j.prompt, j.params, func(t string) error {
		return send(chunk(&t, "", nil))
	})
	ri := info(r)
	ri.completionTokens = res.CompletionTokens
	if err != nil {
		if errors.Is(err, errEmit) || r.Context().Err() != nil {
			if sw, ok := w.(*statusWriter); ok {
				sw.status = statusClientClosed
			}
			return nil
		}
		e := s.genError(r, err)
		send(e.body())
		return nil
	}
	if err := send(chunk(nil, "", &res.Finish)); err != nil {
		return nil
	}
	if j.includeUsage {
		u := &usage{PromptTokens: len(j.prompt), CompletionTokens: res.CompletionTokens, TotalTokens: len(j.prompt) + res.CompletionTokens}
		var v any
		if j.chat {
			v = chatChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: s.opts.ModelName, Choices: []chunkChoice{}, Usage: u}
		} else {
			v = textCompletion{ID: id, Object: "text_completion", Created: created, Model: s.opts.ModelName, Choices: []textChoice{}, Usage: u}
		}
		if err := send(v); err != nil {
			return nil
		}
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	rc.Flush()
	return nil
}

func newID(chat bool) string {
	if chat {
		return "chatcmpl-" + rand.Text()
	}
	return "cmpl-" + rand.Text()
}
