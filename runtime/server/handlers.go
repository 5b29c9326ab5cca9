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
	Logprobs     *chatLogprobs  `json:"logprobs"`
	FinishReason string         `json:"finish_reason"`
}

// chatLogprobs is OpenAI's choices[].logprobs for chat: one entry per token.
type chatLogprobs struct {
	Content []chatLogprob `json:"content"`
	Refusal *string       `json:"refusal"`
}

type tokenLogprob struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

type chatLogprob struct {
	tokenLogprob
	TopLogprobs []tokenLogprob `json:"top_logprobs"`
}

// textLogprobs is the legacy completions shape: parallel arrays.
type textLogprobs struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []float64            `json:"token_logprobs"`
	TopLogprobs   []map[string]float64 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
}

func (s *Server) wireToken(id int, lp float32) tokenLogprob {
	b := s.backend.TokenBytes(id)
	ints := make([]int, len(b))
	for i, c := range b {
		ints[i] = int(c)
	}
	return tokenLogprob{Token: string(b), Logprob: float64(lp), Bytes: ints}
}

func (s *Server) chatLogprobs(lps []tokenLP) *chatLogprobs {
	out := &chatLogprobs{Content: []chatLogprob{}}
	for _, t := range lps {
		e := chatLogprob{tokenLogprob: s.wireToken(t.id, t.lp), TopLogprobs: []tokenLogprob{}}
		for _, alt := range t.top {
			e.TopLogprobs = append(e.TopLogprobs, s.wireToken(alt.ID, alt.Logprob))
		}
		out.Content = append(out.Content, e)
	}
	return out
}

// textLogprobs converts lps; offset is where their text starts in the reply
// and is advanced past it.
func (s *Server) textLogprobs(lps []tokenLP, offset *int) *textLogprobs {
	out := &textLogprobs{Tokens: []string{}, TokenLogprobs: []float64{}, TopLogprobs: []map[string]float64{}, TextOffset: []int{}}
	for _, t := range lps {
		b := s.backend.TokenBytes(t.id)
		out.Tokens = append(out.Tokens, string(b))
		out.TokenLogprobs = append(out.TokenLogprobs, float64(t.lp))
		top := map[string]float64{}
		for _, alt := range t.top {
			top[string(s.backend.TokenBytes(alt.ID))] = float64(alt.Logprob)
		}
		out.TopLogprobs = append(out.TopLogprobs, top)
		out.TextOffset = append(out.TextOffset, *offset)
		*offset += len(b)
	}
	return out
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
	Index        int           `json:"index"`
	Delta        chatDelta     `json:"delta"`
	Logprobs     *chatLogprobs `json:"logprobs"`
	FinishReason *string       `json:"finish_reason"`
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
	Text         string        `json:"text"`
	Index        int           `json:"index"`
	Logprobs     *textLogprobs `json:"logprobs"`
	FinishReason *string       `json:"finish_reason"`
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
	tokenize     func() ([]int, error) // the prompt's ids; run calls it once admitted
	promptBytes  int                   // the prompt's text, for the bound checked before tokenizing
	prompt       []int                 // set by run
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
	req, e := decodeChatRequest(body, s.limits())
	if e != nil {
		return e
	}
	n := 0
	for _, m := range req.Messages {
		n += len(m.Content)
	}
	return s.run(w, r, job{chat: true, tokenize: func() ([]int, error) { return s.backend.ChatPrompt(req.Messages) },
		promptBytes: n, params: req.sampling, stream: req.Stream, includeUsage: req.IncludeUsage, promptParam: "messages"})
}

func (s *Server) handleCompletion(w http.ResponseWriter, r *http.Request) *apiError {
	body, e := s.readBody(w, r)
	if e != nil {
		return e
	}
	req, e := decodeCompletionRequest(body, s.limits())
	if e != nil {
		return e
	}
	return s.run(w, r, job{tokenize: func() ([]int, error) { return s.backend.TextPrompt(req.Prompt) },
		promptBytes: len(req.Prompt), params: req.sampling, stream: req.Stream, includeUsage: req.IncludeUsage, promptParam: "prompt"})
}

// tooLong is the 400 for a prompt that cannot fit the context.
func (s *Server) tooLong(j job, what string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: typeInvalidRequest, Param: j.promptParam, Code: "context_length_exceeded",
		Message: fmt.Sprintf("the prompt is %s; the context holds %d tokens, including at least one reply token", what, s.opts.MaxCtx)}
}

// prepare admits a request and runs its costly preparation (tokenizing) in
// a tokenizer turn. Cheap refusals come first: a prompt with more bytes than
// the context can hold in tokens, a full queue (429), a server shutting down
// (503). On success the caller must call s.slots.leave.
func (s *Server) prepare(r *http.Request, bytes int, param string, work func()) *apiError {
	if s.maxPromptBytes > 0 && bytes > s.maxPromptBytes {
		return &apiError{Status: http.StatusBadRequest, Type: typeInvalidRequest, Param: param, Code: "context_length_exceeded",
			Message: fmt.Sprintf("the prompt is %d bytes; the context holds %d tokens of at most %d bytes each", bytes, s.opts.MaxCtx, s.maxTokenBytes)}
	}
	if err := s.slots.admit(); err != nil {
		return err.(*apiError)
	}
	if err := s.slots.prepareTurn(r.Context(), work); err != nil {
		s.slots.leave()
		return s.waitError(r, err)
	}
	return nil
}

// waitError answers a request that stopped waiting (for a tokenizer turn or
// a slot).
func (s *Server) waitError(r *http.Request, err error) *apiError {
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

func (s *Server) limits() requestLimits {
	return requestLimits{maxCtx: s.opts.MaxCtx, vocab: s.backend.VocabSize()}
}

// statusClientClosed is logged (nginx's convention) when the client went away
// before the reply was written.
const statusClientClosed = 499

// run waits for a slot, generates and writes the reply.
func (s *Server) run(w http.ResponseWriter, r *http.Request, j job) *apiError {
	var err error
	if e := s.prepare(r, j.promptBytes, j.promptParam, func() { j.prompt, err = j.tokenize() }); e != nil {
		return e
	}
	defer s.slots.leave()
	if err != nil {
		return invalid(j.promptParam, "%v", err)
	}
	ri := info(r)
	ri.promptTokens = len(j.prompt)
	if len(j.prompt) >= s.opts.MaxCtx {
		return s.tooLong(j, fmt.Sprintf("%d tokens", len(j.prompt)))
	}
	sl, err := s.slots.acquire(r.Context(), j.prompt)
	if err != nil {
		return s.waitError(r, err)
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
	var lps []tokenLP
	res, err := s.generate(ctx, sl, j.prompt, j.params, func(t string, l []tokenLP) error {
		text.WriteString(t)
		lps = append(lps, l...)
		return nil
	})
	lps = append(lps, res.Logprobs...)
	ri.completionTokens = res.CompletionTokens
	if err != nil {
		return s.genError(r, err)
	}
	u := usage{PromptTokens: len(j.prompt), CompletionTokens: res.CompletionTokens, TotalTokens: len(j.prompt) + res.CompletionTokens}
	if j.chat {
		c := chatChoice{Message: chatMessageOut{Role: "assistant", Content: text.String()}, FinishReason: res.Finish}
		if j.params.Logprobs {
			c.Logprobs = s.chatLogprobs(lps)
		}
		writeJSON(w, http.StatusOK, chatCompletion{ID: id, Object: "chat.completion", Created: created, Model: s.opts.ModelName,
			Choices: []chatChoice{c}, Usage: u})
	} else {
		c := textChoice{Text: text.String(), FinishReason: &res.Finish}
		if j.params.Logprobs {
			offset := 0
			c.Logprobs = s.textLogprobs(lps, &offset)
		}
		writeJSON(w, http.StatusOK, textCompletion{ID: id, Object: "text_completion", Created: created, Model: s.opts.ModelName,
			Choices: []textChoice{c}, Usage: &u})
	}
	return nil
}

// genError maps a failed generation to the answer, if one can still be
// written.
func (s *Server) genError(r *http.Request, err error) *apiError {
	if r.Context().Err() != nil {
		if s.draining.Load() {
			// Cut at the end of the shutdown grace period (or the client
			// left meanwhile, and will not read this).
			return &apiError{Status: http.StatusServiceUnavailable, Type: typeServer, Code: "shutting_down",
				Message: "server is shutting down: the reply was cut off before it finished"}
		}
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
		_ = rc.SetWriteDeadline(time.Now().Add(writeStallTimeout))
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return errors.Join(errEmit, err)
		}
		if err := rc.Flush(); err != nil {
			return errors.Join(errEmit, err)
		}
		return nil
	}
	textOffset := 0
	chunk := func(content *string, role string, finish *string, lps []tokenLP) any {
		if j.chat {
			c := chunkChoice{Delta: chatDelta{Role: role, Content: content}, FinishReason: finish}
			if j.params.Logprobs && role == "" {
				c.Logprobs = s.chatLogprobs(lps)
			}
			return chatChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: s.opts.ModelName,
				Choices: []chunkChoice{c}}
		}
		text := ""
		if content != nil {
			text = *content
		}
		c := textChoice{Text: text, FinishReason: finish}
		if j.params.Logprobs {
			c.Logprobs = s.textLogprobs(lps, &textOffset)
		}
		return textCompletion{ID: id, Object: "text_completion", Created: created, Model: s.opts.ModelName,
			Choices: []textChoice{c}}
	}

	if j.chat {
		empty := ""
		if err := send(chunk(&empty, "assistant", nil, nil)); err != nil {
			return nil // the client is gone; nothing more to write
		}
	}
	res, err := s.generate(ctx, sl, j.prompt, j.params, func(t string, lps []tokenLP) error {
		return send(chunk(&t, "", nil, lps))
	})
	ri := info(r)
	ri.completionTokens = res.CompletionTokens
	if err != nil {
		sw, _ := w.(*statusWriter)
		if errors.Is(err, errEmit) || (r.Context().Err() != nil && !s.draining.Load()) {
			if sw != nil {
				sw.status = statusClientClosed
			}
			return nil
		}
		// An error event, and no finish_reason or [DONE]: a client must not
		// take a cut reply for a complete one.
		e := s.genError(r, err)
		send(e.body())
		if sw != nil {
			sw.status = e.Status // for the access log
		}
		return nil
	}
	if err := send(chunk(nil, "", &res.Finish, res.Logprobs)); err != nil {
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
