package runtime

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// GenerateOptions controls one generation.
type GenerateOptions struct {
	SampleOptions
	MaxTokens  int   // at most this many new tokens; <= 0: until the context is full
	StopTokens []int // generation ends after one of these (it is not passed to onToken)

	// Constraint, if set, masks the tokens that may not come next (for
	// response_format JSON); generation ends with an error if it allows none.
	Constraint *JSONConstraint
	// OnLogprobs, if set, is called before onToken with the token's
	// log-probability and the TopLogprobs most likely alternatives (best
	// first; top is reused after the call). Both are taken from the
	// distribution the sampler draws from before temperature, top-k, top-p
	// and min-p: the model's, after logit bias, penalties and Constraint.
	OnLogprobs  func(chosen TokenLogprob, top []TokenLogprob)
	TopLogprobs int
}

// Finish reasons, as OpenAI's API names them.
const (
	FinishStop   = "stop"   // a stop token, or the caller's onToken returned false
	FinishLength = "length" // MaxTokens reached or the context is full
)

// GenerateResult says how a generation ended.
type GenerateResult struct {
	PromptTokens int    // tokens in the prompt
	Generated    int    // tokens passed to onToken
	CachedTokens int    // prompt tokens reused from the session's cache
	FinishReason string // FinishStop or FinishLength
	// PromptDuration is the time spent running the prompt's uncached tokens
	// (PromptTokens-CachedTokens of them); EvalDuration the time after that,
	// sampling and running the generated tokens.
	PromptDuration, EvalDuration time.Duration
}

// Generate runs prompt, the whole context (BOS included), and samples new
// tokens, calling onToken for each until a stop token, MaxTokens, a full
// context, onToken returning false, or ctx's cancellation. The longest prefix
// of prompt already in the session's cache is reused, so a chat that sends its
// growing conversation each turn only runs the new tokens.
func (s *Session) Generate(ctx context.Context, prompt []int, opts GenerateOptions, onToken func(id int) bool) (res GenerateResult, err error) {
	res.PromptTokens = len(prompt)
	if len(prompt) == 0 {
		return res, fmt.Errorf("runtime: empty prompt")
	}
	if len(prompt) > s.maxCtx {
		return res, fmt.Errorf("runtime: prompt of %d tokens exceeds the context of %d", len(prompt), s.maxCtx)
	}
	// Reuse the cached prefix; at least the last prompt token is run again
	// to get its logits.
	keep := commonPrefix(s.cache.tokens[:s.cache.pos], prompt)
	keep = min(keep, len(prompt)-1)
	s.Truncate(keep)
	res.CachedTokens = keep
	start := time.Now()
	logits, err := s.Forward(prompt[keep:], nil)
	res.PromptDuration = time.Since(start)
	if err != nil {
		return res, err
	}
	evalStart := time.Now()
	defer func() { res.EvalDuration = time.Since(evalStart) }()
	s.sampler.seed(opts.Seed)
	// Counted as decoding, so the stepper waits for this session's steps
	// and batches them with other sessions'.
	s.e.stepper.decoding.Add(1)
	defer s.e.stepper.decoding.Add(-1)
	var top []TokenLogprob
	if opts.OnLogprobs != nil {
		top = make([]TokenLogprob, opts.TopLogprobs)
	}
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		s.sampler.adjust(logits, s.cache.tokens[:s.cache.pos], opts.SampleOptions)
		if opts.Constraint != nil && opts.Constraint.Mask(logits) == 0 {
			return res, fmt.Errorf("runtime: the output constraint allows no next token")
		}
		id := s.sampler.sample(logits, opts.SampleOptions)
		if slices.Contains(opts.StopTokens, id) {
			res.FinishReason = FinishStop
			return res, nil
		}
		if opts.Constraint != nil {
			opts.Constraint.Accept(id)
		}
		if opts.OnLogprobs != nil {
			lp := logprobs(logits, id, top)
			opts.OnLogprobs(TokenLogprob{ID: id, Logprob: lp}, top)
		}
		res.Generated++
		if !onToken(id) {
			res.FinishReason = FinishStop
			return res, nil
		}
		if (opts.MaxTokens > 0 && res.Generated >= opts.MaxTokens) || s.cache.pos >= s.maxCtx {
			res.FinishReason = FinishLength
			return res, nil
		}
		if logits, err = s.Step(id); err != nil {
			return res, err
		}
	}
}

func commonPrefix(a, b []int) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}
