package server

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"
)

// stopMatcher finds stop strings in streamed text. It passes text through as
// soon as it cannot be part of a stop string and holds back the longest tail
// that is still a prefix of one, so a stop string is never emitted, not even
// in part.
type stopMatcher struct {
	stops []string
	held  string
}

// push adds text and returns what can be emitted now. hit reports that a stop
// string was found; out is then the text before it and the rest is dropped.
func (m *stopMatcher) push(text string) (out string, hit bool) {
	if len(m.stops) == 0 {
		return text, false
	}
	m.held += text
	first := -1
	for _, s := range m.stops {
		if i := strings.Index(m.held, s); i >= 0 && (first < 0 || i < first) {
			first = i
		}
	}
	if first >= 0 {
		out, m.held = m.held[:first], ""
		return out, true
	}
	keep := 0
	for _, s := range m.stops {
		// Longest suffix of held that is a proper prefix of s.
		for k := min(len(s)-1, len(m.held)); k > keep; k-- {
			if strings.HasSuffix(m.held, s[:k]) {
				keep = k
				break
			}
		}
	}
	out, m.held = m.held[:len(m.held)-keep], m.held[len(m.held)-keep:]
	return out, false
}

// flush returns the held text once no more text will come.
func (m *stopMatcher) flush() string {
	out := m.held
	m.held = ""
	return out
}

// genResult is the outcome of one generation.
type genResult struct {
	Finish           string
	CompletionTokens int
	Logprobs         []tokenLP // those not yet passed to emit with text
}

// tokenLP is one reply token's log-probability and its alternatives.
type tokenLP struct {
	id  int
	lp  float32
	top []TokenLogprob
}

// errEmit marks a failure to write to the client.
var errEmit = errors.New("server: write to client failed")

// generate runs one generation on sl's session and passes the reply text to
// emit in pieces as it becomes final (stop strings removed), with the
// log-probabilities of the tokens seen since the last piece when p.Logprobs.
// emit returning an error ends the generation with that error.
func (s *Server) generate(ctx context.Context, sl *slot, prompt []int, p sampling, emit func(string, []tokenLP) error) (genResult, error) {
	room := s.opts.MaxCtx - len(prompt)
	maxTok := room
	if p.MaxTokens > 0 && p.MaxTokens < room {
		maxTok = p.MaxTokens
	}
	stopTokens := s.backend.StopTokens()
	opts := GenerateOptions{
		MaxTokens:   maxTok,
		Temperature: p.Temperature,
		TopP:        p.TopP,
		TopK:        p.TopK,
		MinP:        p.MinP,
		Seed:        p.Seed,
		StopTokens:  stopTokens,

		RepeatPenalty:    p.RepeatPenalty,
		PresencePenalty:  p.PresencePenalty,
		FrequencyPenalty: p.FrequencyPenalty,
		LogitBias:        p.LogitBias,
		JSONSchema:       p.JSONSchema,
	}
	var pending []tokenLP // log-probabilities not yet emitted
	if p.Logprobs {
		opts.TopLogprobs = p.TopLogprobs
		opts.OnLogprobs = func(chosen TokenLogprob, top []TokenLogprob) {
			pending = append(pending, tokenLP{id: chosen.ID, lp: chosen.Logprob, top: slices.Clone(top)})
		}
	}
	dec := s.backend.NewDecoder()
	m := stopMatcher{stops: p.Stop}
	var (
		res      genResult
		stopped  bool // by a stop token or a stop string
		stopHit  bool // by a stop string: the rest of the text is dropped
		emitErr  error
		counted  int
		emitText = func(t string) bool {
			if t == "" {
				return true
			}
			if err := emit(t, pending); err != nil {
				emitErr = err
				return false
			}
			pending = nil
			return true
		}
	)
	ri, _ := ctx.Value(infoKey{}).(*reqInfo)
	// What the session's cache will hold, for choosing a slot next time.
	sl.cached = append(sl.cached[:0], prompt...)
	finish, err := sl.sess.Generate(ctx, prompt, opts, func(id int) bool {
		sl.cached = append(sl.cached, id)
		if slices.Contains(stopTokens, id) {
			// The runtime may or may not report the stop token itself;
			// either way it is not part of the reply.
			if n := len(pending); n > 0 && pending[n-1].id == id {
				pending = pending[:n-1]
			}
			stopped = true
			return false
		}
		counted++
		if ri != nil {
			ri.tokenTimes(time.Now())
		}
		out, hit := m.push(dec.Add(id))
		if !emitText(out) {
			return false
		}
		if hit {
			stopped, stopHit = true, true
			return false
		}
		return counted < maxTok
	})
	res.CompletionTokens = counted
	if emitErr != nil {
		return res, emitErr
	}
	if err != nil {
		return res, err
	}
	if !stopHit {
		out, hit := m.push(dec.Flush())
		if !emitText(out) {
			return res, emitErr
		}
		if hit {
			stopped = true
		} else if !emitText(m.flush()) {
			return res, emitErr
		}
	}
	res.Logprobs = pending
	switch {
	case stopped:
		res.Finish = FinishStop
	case finish == FinishLength || counted >= maxTok:
		res.Finish = FinishLength
	default:
		res.Finish = FinishStop
	}
	return res, nil
}
