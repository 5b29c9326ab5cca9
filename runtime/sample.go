package runtime

import (
	"math"
	"math/rand/v2"
	"slices"
)

// SampleOptions chooses the next token from logits.
type SampleOptions struct {
	Temperature float32 // 0: greedy (argmax)
	TopK        int     // keep the k most likely tokens; 0: no limit
	TopP        float32 // keep the smallest set whose probability reaches p; 0 or 1: no limit
	MinP        float32 // drop tokens less likely than MinP times the most likely one; 0: off
	Seed        uint64  // same seed, same samples

	// Penalties on the tokens among the last PenaltyWindow of the context
	// (prompt and reply), applied to the logits before anything else, as
	// llama.cpp does: RepeatPenalty divides a positive logit (multiplies a
	// negative one), 0 or 1: off; OpenAI's PresencePenalty is subtracted once
	// per token present and FrequencyPenalty once per occurrence.
	RepeatPenalty, PresencePenalty, FrequencyPenalty float32
	// LogitBias is added to the logits of the given ids (OpenAI's
	// logit_bias: -100 bans a token, 100 all but forces it).
	LogitBias map[int]float32
}

// PenaltyWindow is how many of the latest context tokens the repeat,
// presence and frequency penalties look at (llama.cpp's repeat_last_n).
const PenaltyWindow = 64

// sampler holds the scratch a draw needs, so sampling allocates nothing.
type sampler struct {
	rng    *rand.Rand
	idx    []int32   // candidate token ids
	probs  []float32 // their probabilities
	counts []int32   // (vocab) occurrences in the penalty window; zero between draws
}

func newSampler(vocab int) sampler {
	return sampler{rng: rand.New(rand.NewPCG(0, 0)), idx: make([]int32, vocab), probs: make([]float32, vocab)}
}

func (s *sampler) seed(seed uint64) {
	s.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// Argmax returns the index of the largest logit (the first on ties).
func Argmax(logits []float32) int {
	best := 0
	for i, v := range logits {
		if v > logits[best] {
			best = i
		}
	}
	return best
}

// adjust applies logit_bias and the penalties over recent, the latest
// context tokens, to logits in place.
func (s *sampler) adjust(logits []float32, recent []int, o SampleOptions) {
	for id, b := range o.LogitBias {
		if id >= 0 && id < len(logits) {
			logits[id] += b
		}
	}
	repeat := o.RepeatPenalty > 0 && o.RepeatPenalty != 1
	if !repeat && o.PresencePenalty == 0 && o.FrequencyPenalty == 0 {
		return
	}
	if s.counts == nil {
		s.counts = make([]int32, len(logits))
	}
	recent = recent[max(0, len(recent)-PenaltyWindow):]
	for _, id := range recent {
		if id >= 0 && id < len(logits) {
			s.counts[id]++
		}
	}
	for _, id := range recent {
		if id < 0 || id >= len(logits) || s.counts[id] == 0 {
			continue // out of range, or already penalised
		}
		l := logits[id]
		if repeat {
			if l > 0 {
				l /= o.RepeatPenalty
			} else {
				l *= o.RepeatPenalty
			}
		}
		l -= o.PresencePenalty + o.FrequencyPenalty*float32(s.counts[id])
		logits[id] = l
		s.counts[id] = 0
	}
}

// sample draws a token: temperature scaling, then top-k, then top-p
// (nucleus), then min-p, then a draw from the renormalised distribution.
func (s *sampler) sample(logits []float32, o SampleOptions) int {
	if o.Temperature <= 0 || o.TopK == 1 {
		return Argmax(logits)
	}
	n := len(logits)
	idx := s.idx[:n]
	for i := range idx {
		idx[i] = int32(i)
	}
	k := n
	if o.TopK > 0 && o.TopK < n {
		k = o.TopK
		selectTopK(idx, logits, k)
	}
	idx = idx[:k]
	slices.SortFunc(idx, func(a, b int32) int {
		switch {
		case logits[a] > logits[b]:
			return -1
		case logits[a] < logits[b]:
			return 1
		}
		return int(a - b)
	})
	probs := s.probs[:k]
	maxLogit := logits[idx[0]]
	var sum float64
	for i, id := range idx {
		p := math.Exp(float64((logits[id] - maxLogit) / o.Temperature))
		probs[i] = float32(p)
		sum += p
	}
	if o.TopP > 0 && o.TopP < 1 {
		var cum float64
		for i := range probs {
			cum += float64(probs[i]) / sum
			if cum >= float64(o.TopP) {
				k = i + 1
				break
			}
		}
		probs = probs[:k]
	}
	if o.MinP > 0 {
		// probs is sorted, so the kept tokens are a prefix.
		floor := probs[0] * o.MinP
		k = 1
		for k < len(probs) && probs[k] >= floor {
			k++
		}
		probs = probs[:k]
	}
	sum = 0
	for _, p := range probs {
		sum += float64(p)
	}
	r := s.rng.Float64() * sum
	for i, p := range probs {
		r -= float64(p)
		if r < 0 {
			return int(idx[i])
		}
	}
	// Rounding left r >= 0: the last token that had any probability (a
	// masked token has none).
	for i := len(probs) - 1; i > 0; i-- {
		if probs[i] > 0 {
			return int(idx[i])
		}
	}
	return int(idx[0])
}

// selectTopK partially orders idx so that its first k entries are the k
// largest logits (quickselect, O(n) on average).
func selectTopK(idx []int32, logits []float32, k int) {
	lo, hi := 0, len(idx)-1
	for lo < hi {
		pivot := logits[idx[(lo+hi)/2]]
		i, j := lo, hi
		for i <= j {
			for logits[idx[i]] > pivot {
				i++
			}
			for logits[idx[j]] < pivot {
				j--
			}
			if i <= j {
				idx[i], idx[j] = idx[j], idx[i]
				i++
				j--
			}
		}
		switch {
		case k-1 <= j:
			hi = j
		case k-1 >= i:
			lo = i
		default:
			return
		}
	}
}

// TokenLogprob is one token's log-probability.
type TokenLogprob struct {
	ID      int
	Logprob float32
}

// logprobs returns the log-probability of chosen under the softmax of
// logits, and fills top with the len(top) most likely tokens, best first.
func logprobs(logits []float32, chosen int, top []TokenLogprob) float32 {
	maxL := float32(math.Inf(-1))
	for _, l := range logits {
		maxL = max(maxL, l)
	}
	var sum float64
	for _, l := range logits {
		sum += math.Exp(float64(l - maxL))
	}
	logZ := float64(maxL) + math.Log(sum)
	n := 0
	for id, l := range logits {
		// insertion into the short sorted list top[:n]
		if n < len(top) {
			n++
		} else if n == 0 || l <= top[n-1].Logprob {
			continue
		}
		i := n - 1
		for i > 0 && top[i-1].Logprob < l {
			top[i] = top[i-1]
			i--
		}
		top[i] = TokenLogprob{ID: id, Logprob: l}
	}
	for i := range top[:n] {
		top[i].Logprob = float32(float64(top[i].Logprob) - logZ)
	}
	return float32(float64(logits[chosen]) - logZ)
}
