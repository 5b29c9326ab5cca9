package runtime

import (
	"math/rand/v2"
	"slices"
	"time"

	"github.com/cafeq/cafeq/kernels"
)

// BenchOptions sizes a speed measurement.
type BenchOptions struct {
	Prompt int // tokens of prefill, from an empty context
	Gen    int // tokens of decode
	// Depth is the context decode starts from: Depth tokens already in the
	// KV cache, as llama-bench's -d. At 0 (its default) decode starts at
	// the first position, so the two tools' decode numbers compare.
	Depth  int
	Rounds int // repetitions; the median is reported
	// OnRound, if set, is called as each round finishes, with its prefill
	// and decode times, so a caller can show progress.
	OnRound func(round int, prefill, decode time.Duration)
}

// BenchResult holds medians over the rounds.
type BenchResult struct {
	PrefillTokS float64
	DecodeTokS  float64
	// TransformOverheadPct is the decode time spent applying input
	// transforms M⁻¹, as a percentage of the decode time without them:
	// decode steps alternate with and without the transform step, so that
	// machine noise slower than a step hits both alike; the median over
	// rounds is reported. Nil when the model has no transforms.
	TransformOverheadPct *float64
	PrefillRuns          []time.Duration
	DecodeRuns           []time.Duration
}

// HasTransforms reports whether any matrix applies an input transform.
func (e *Engine) HasTransforms() bool {
	for i := range e.w.layers {
		for _, m := range e.w.layers[i].matrices() {
			if m.transform != nil {
				return true
			}
		}
	}
	return false
}

// Bench measures prefill and decode speed on random token ids.
func (e *Engine) Bench(o BenchOptions) (BenchResult, error) {
	o.Rounds = max(o.Rounds, 1)
	s, err := e.NewSession(max(o.Prompt, o.Depth) + o.Gen + 1)
	if err != nil {
		return BenchResult{}, err
	}
	// context holds the prompt's tokens, then those that fill the cache up
	// to Depth when it is deeper than the prompt.
	rng := rand.New(rand.NewPCG(1, 2))
	context := make([]int, max(o.Prompt, o.Depth))
	for i := range context {
		context[i] = rng.IntN(e.Config.VocabSize)
	}
	prompt := context[:o.Prompt]
	// decode runs n decode steps from Depth and returns the time of the
	// steps with and without the transform step; with alternate, every
	// other step skips the transforms, so machine noise slower than a step
	// hits both halves alike.
	decode := func(n int, alternate bool) (with, without time.Duration, err error) {
		defer func() { e.skipTransforms = false }()
		s.Truncate(o.Depth)
		id := e.Tokenizer.BOS()
		for i := 0; i < n; i++ {
			e.skipTransforms = alternate && i%2 == 1
			start := time.Now()
			logits, err := s.Step(id)
			if err != nil {
				return 0, 0, err
			}
			id = Argmax(logits)
			if d := time.Since(start); e.skipTransforms {
				without += d
			} else {
				with += d
			}
		}
		return with, without, nil
	}
	var res BenchResult
	var ratios []float64
	for r := 0; r < o.Rounds; r++ {
		s.Reset()
		start := time.Now()
		if o.Prompt > 0 {
			if _, err := s.Forward(prompt, nil); err != nil {
				return res, err
			}
		} else if _, err := s.Forward([]int{e.Tokenizer.BOS()}, nil); err != nil {
			return res, err
		}
		res.PrefillRuns = append(res.PrefillRuns, time.Since(start))
		if o.Depth > o.Prompt {
			if _, err := s.Forward(context[o.Prompt:], nil); err != nil {
				return res, err
			}
		}
		d, _, err := decode(o.Gen, false)
		if err != nil {
			return res, err
		}
		res.DecodeRuns = append(res.DecodeRuns, d)
		if o.OnRound != nil {
			o.OnRound(r, res.PrefillRuns[r], d)
		}
		if e.HasTransforms() {
			with, without, err := decode(2*((o.Gen+1)/2), true)
			if err != nil {
				return res, err
			}
			ratios = append(ratios, with.Seconds()/without.Seconds())
		}
	}
	res.PrefillTokS = float64(o.Prompt) / median(res.PrefillRuns).Seconds()
	res.DecodeTokS = float64(o.Gen) / median(res.DecodeRuns).Seconds()
	if len(ratios) > 0 {
		slices.Sort(ratios)
		pct := (ratios[len(ratios)/2] - 1) * 100
		res.TransformOverheadPct = &pct
	}
	return res, nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// MeasureReadBandwidth reads a buffer of the given size with every worker
// thread (SIMD dot products over disjoint shares) and returns the best of a
// few passes in GB/s: the memory-bound ceiling decode can be compared with.
func (e *Engine) MeasureReadBandwidth(bytes int) float64 {
	buf := make([]float32, bytes/4)
	for i := range buf {
		buf[i] = 1 // touch every page so the measurement reads memory, not zero pages
	}
	job := &bandwidthJob{buf: buf, sums: make([]float32, e.pool.threads)}
	best := 0.0
	for pass := 0; pass < 5; pass++ {
		start := time.Now()
		e.pool.parallel(job, len(buf), 1<<14)
		if gbs := float64(bytes) / time.Since(start).Seconds() / 1e9; gbs > best {
			best = gbs
		}
	}
	return best
}

type bandwidthJob struct {
	buf  []float32
	sums []float32
}

func (j *bandwidthJob) run(w, lo, hi int) {
	half := (hi - lo) / 2
	j.sums[w] += kernels.Dot(j.buf[lo:lo+half], j.buf[lo+half:lo+2*half])
}
