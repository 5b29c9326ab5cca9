// Package server is cafeq's OpenAI-compatible HTTP server: chat and text
// completions (plain and streamed as server-sent events), model listing and a
// health check, on top of any Backend. Generations run on a bounded number of
// sessions that share the loaded weights; further requests wait in a bounded
// queue and are refused with 429 when it is full.
package server

import (
	"context"

	"github.com/cafeq/cafeq/runtime"
)

// Message is one chat turn as the API receives it. Role is "system", "user"
// or "assistant".
type Message struct {
	Role    string
	Content string
}

// GenerateOptions controls one generation. The field names follow
// runtime.GenerateOptions so the adapter is a plain copy.
type GenerateOptions struct {
	MaxTokens   int     // at most this many new tokens
	Temperature float32 // 0 means greedy
	TopP        float32 // nucleus sampling threshold in (0, 1]
	TopK        int     // 0 disables top-k
	MinP        float32 // 0 disables min-p
	Seed        uint64
	StopTokens  []int // generation ends, with reason "stop", after one of these

	// Logit adjustments, as runtime.SampleOptions documents them.
	RepeatPenalty, PresencePenalty, FrequencyPenalty float32
	LogitBias                                        map[int]float32

	// JSONSchema, if set, constrains the reply to a JSON value it accepts.
	JSONSchema *runtime.JSONSchema
	// OnLogprobs, if set, is called before onToken with the token's
	// log-probability and the TopLogprobs most likely alternatives.
	OnLogprobs  func(chosen TokenLogprob, top []TokenLogprob)
	TopLogprobs int
}

// TokenLogprob is one token's log-probability.
type TokenLogprob = runtime.TokenLogprob

// Finish reasons a Session reports.
const (
	FinishStop   = "stop"   // a stop token (or, in the server, a stop string)
	FinishLength = "length" // MaxTokens or the context was exhausted
)

// Backend is what the server needs from a loaded model. Its methods must be
// safe for concurrent use; a Session is used by one request at a time.
type Backend interface {
	// ChatPrompt renders a conversation with the model's chat template into
	// prompt token ids (BOS included). An invalid conversation (unknown
	// role) is an error.
	ChatPrompt(msgs []Message) ([]int, error)
	// TextPrompt encodes a plain completion prompt, BOS included.
	TextPrompt(text string) ([]int, error)
	// StopTokens are the ids that end a reply (EOS, end of turn).
	StopTokens() []int
	// NewDecoder returns a streaming detokenizer: Add returns the text that
	// is complete after one more id, Flush whatever is still held back.
	NewDecoder() Decoder
	// ContextLength is the model's maximum context in tokens.
	ContextLength() int
	// VocabSize is the number of token ids.
	VocabSize() int
	// MaxTokenBytes is the most bytes of text one token can stand for
	// (0: unknown), which bounds a prompt's token count from below.
	MaxTokenBytes() int
	// TokenBytes is what one token decodes to on its own.
	TokenBytes(id int) []byte
	// Tokenize encodes text, with BOS first when bos is set.
	Tokenize(text string, bos bool) []int
	// Detokenize decodes ids into text.
	Detokenize(ids []int) string
	// NewSession allocates a session (a KV cache) for up to maxCtx tokens.
	// The server keeps at most Options.Parallel of them and reuses them.
	NewSession(maxCtx int) (Session, error)
}

// Decoder turns generated ids back into text incrementally, holding back
// incomplete UTF-8 sequences.
type Decoder interface {
	Add(id int) string
	Flush() string
}

// Session runs generations. Each Generate starts from an empty context.
type Session interface {
	// Generate feeds prompt, then samples up to opts.MaxTokens tokens,
	// calling onToken for each one; onToken returning false ends the
	// generation early. It returns FinishStop or FinishLength (anything
	// else is treated as FinishStop) and stops with ctx's error when ctx is
	// cancelled.
	Generate(ctx context.Context, prompt []int, opts GenerateOptions, onToken func(id int) bool) (finishReason string, err error)
}
