package server

import (
	"context"

	"github.com/cafeq/cafeq/runtime"
)

// EngineBackend serves a loaded runtime.Engine: Gemma's chat template, the
// engine's tokenizer and one runtime.Session per slot. All sessions share the
// engine's weights and worker pool.
type EngineBackend struct {
	E *runtime.Engine
}

// NewEngineBackend wraps e.
func NewEngineBackend(e *runtime.Engine) *EngineBackend { return &EngineBackend{E: e} }

// ChatPrompt renders msgs with runtime.ChatPrompt.
func (b *EngineBackend) ChatPrompt(msgs []Message) ([]int, error) {
	cm := make([]runtime.ChatMessage, len(msgs))
	for i, m := range msgs {
		cm[i] = runtime.ChatMessage{Role: m.Role, Content: m.Content}
	}
	return runtime.ChatPrompt(b.E.Tokenizer, cm)
}

// TextPrompt is BOS followed by the encoded text.
func (b *EngineBackend) TextPrompt(text string) ([]int, error) {
	var ids []int
	if bos := b.E.Tokenizer.BOS(); bos >= 0 {
		ids = append(ids, bos)
	}
	return append(ids, b.E.Tokenizer.Encode(text)...), nil
}

// StopTokens are EOS and <end_of_turn>.
func (b *EngineBackend) StopTokens() []int { return b.E.StopTokens() }

// NewDecoder returns the tokenizer's stream decoder.
func (b *EngineBackend) NewDecoder() Decoder { return b.E.Tokenizer.NewStreamDecoder() }

// ContextLength is the model's max_position_embeddings.
func (b *EngineBackend) ContextLength() int { return b.E.Config.MaxPositionEmbeddings }

// VocabSize is the model's vocabulary size.
func (b *EngineBackend) VocabSize() int { return b.E.Config.VocabSize }

// MaxTokenBytes is the most bytes of text one token stands for.
func (b *EngineBackend) MaxTokenBytes() int { return b.E.Tokenizer.MaxTokenBytes() }

// TokenBytes is the tokenizer's piece for id, as bytes.
func (b *EngineBackend) TokenBytes(id int) []byte { return b.E.Tokenizer.TokenBytes(id) }

// Tokenize encodes text with the model's tokenizer.
func (b *EngineBackend) Tokenize(text string, bos bool) []int {
	ids := b.E.Tokenizer.Encode(text)
	if bos {
		ids = append([]int{b.E.Tokenizer.BOS()}, ids...)
	}
	return ids
}

// Detokenize decodes ids with the model's tokenizer.
func (b *EngineBackend) Detokenize(ids []int) string { return b.E.Tokenizer.Decode(ids) }

// NewSession allocates a KV cache of maxCtx tokens.
func (b *EngineBackend) NewSession(maxCtx int) (Session, error) {
	s, err := b.E.NewSession(maxCtx)
	if err != nil {
		return nil, err
	}
	return engineSession{s, b.E}, nil
}

type engineSession struct {
	s *runtime.Session
	e *runtime.Engine
}

// Generate runs runtime.Session.Generate. The runtime reuses the longest
// cached prefix of the prompt, so a reused slot answers a growing
// conversation without recomputing it.
func (es engineSession) Generate(ctx context.Context, prompt []int, o GenerateOptions, onToken func(int) bool) (string, error) {
	opts := runtime.GenerateOptions{
		SampleOptions: runtime.SampleOptions{Temperature: o.Temperature, TopK: o.TopK, TopP: o.TopP, MinP: o.MinP, Seed: o.Seed,
			RepeatPenalty: o.RepeatPenalty, PresencePenalty: o.PresencePenalty, FrequencyPenalty: o.FrequencyPenalty,
			LogitBias: o.LogitBias},
		MaxTokens:   o.MaxTokens,
		StopTokens:  o.StopTokens,
		OnLogprobs:  o.OnLogprobs,
		TopLogprobs: o.TopLogprobs,
	}
	if o.JSONSchema != nil {
		opts.Constraint = es.e.NewJSONConstraint(o.JSONSchema)
	}
	res, err := es.s.Generate(ctx, prompt, opts, onToken)
	return res.FinishReason, err
}
