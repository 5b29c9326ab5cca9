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
	Seed        uint64  // same seed, same samples
}

// sampler holds the scratch a draw needs, so sampling allocates nothing.
type sampler struct {
	rng   *rand.Rand
	idx   []int32   // candidate token ids
	probs []float32 // their probabilities
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

// sample draws a token: temperature scaling, then top-k, then top-p
// (nucleus), then a draw from the renormalised distribution.
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
		sum = 0
		for _, p := range probs {
			sum += float64(p)
		}
	}
	r := s.rng.Float64() * sum
	for i, p := range probs {
		r -= float64(p)
		if r < 0 {
			return int(idx[i])
		}
	}
	return int(idx[len(probs)-1])
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
