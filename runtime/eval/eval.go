// Package eval scores language models on text: perplexity over fixed
// windows and, against a reference model, the mean KL divergence of the
// next-token distributions and top-1 agreement. `cafeq perplexity`, the
// quantizer's -report and the quality tests all measure through it, so every
// number they print is computed one way.
//
// It sits on top of runtime and imports nothing of quantize.
package eval

import (
	"fmt"
	"math"
	"time"

	"github.com/cafeq/cafeq/runtime"
)

// Result is one model's score over a text (what `cafeq perplexity -json`
// prints). The reference fields are set only when a reference was given.
type Result struct {
	PPL       float64  `json:"ppl"`
	Tokens    int      `json:"tokens"`
	Seconds   float64  `json:"seconds"`
	Ctx       int      `json:"ctx"`
	RefPPL    *float64 `json:"ref_ppl,omitempty"`
	KLD       *float64 `json:"kld,omitempty"`        // mean KL(ref ‖ model) per token, nats
	Top1Agree *float64 `json:"top1_agree,omitempty"` // share of positions with the same argmax
}

// Windows cuts tokens into consecutive windows of ctx-1 text tokens (the
// last may be shorter). Each is scored after a BOS, so every text token is
// predicted exactly once and never from more than ctx-1 tokens of context.
func Windows(tokens []int, ctx int) [][]int {
	per := ctx - 1
	var out [][]int
	for w := 0; w*per < len(tokens); w++ {
		out = append(out, tokens[w*per:min(len(tokens), (w+1)*per)])
	}
	return out
}

// Perplexity scores e on tokens in Windows of ctx; with a reference engine
// (nil: none) the same windows also give KL(ref ‖ e) and top-1 agreement.
// progress, when not nil, is called with done = 0 before the first window
// and after each one.
func Perplexity(e, ref *runtime.Engine, tokens []int, ctx int, progress func(done, total int)) (Result, error) {
	res, err := Compare(ref, []*runtime.Engine{e}, tokens, ctx, progress)
	if err != nil {
		return Result{}, err
	}
	return res[0], nil
}

// Compare runs every model (and the reference, once per window, when not
// nil) over the same windows, so several quantizations of one checkpoint are
// scored against one pass of the reference. Results follow models' order.
func Compare(ref *runtime.Engine, models []*runtime.Engine, tokens []int, ctx int, progress func(done, total int)) ([]Result, error) {
	if ctx < 2 {
		return nil, fmt.Errorf("eval: window of %d tokens: want at least 2", ctx)
	}
	if len(models) == 0 || len(tokens) == 0 {
		return nil, fmt.Errorf("eval: %d models over %d tokens", len(models), len(tokens))
	}
	start := time.Now()
	windows := Windows(tokens, ctx)
	if progress != nil {
		progress(0, len(windows))
	}
	per := ctx - 1
	vocab := models[0].Config.VocabSize
	sessions := make([]*runtime.Session, len(models))
	for i, e := range models {
		if e.Config.VocabSize != vocab {
			return nil, fmt.Errorf("models disagree on the vocabulary size")
		}
		var err error
		if sessions[i], err = e.NewSession(ctx); err != nil {
			return nil, err
		}
	}
	var rs *runtime.Session
	var refLogits []float32 // (per, vocab) reference logits of the current window
	if ref != nil {
		if ref.Config.VocabSize != vocab {
			return nil, fmt.Errorf("reference vocabulary %d differs from the model's %d", ref.Config.VocabSize, vocab)
		}
		var err error
		if rs, err = ref.NewSession(ctx); err != nil {
			return nil, err
		}
		refLogits = make([]float32, per*vocab)
	}
	nll, kl, agree := make([]float64, len(models)), make([]float64, len(models)), make([]int, len(models))
	var refNLL float64
	var scored int
	input := make([]int, 0, ctx)
	bos := models[0].Tokenizer.BOS()
	for w, text := range windows {
		// Position i (BOS, then text[:len-1]) predicts text[i].
		input = append(append(input[:0], bos), text[:len(text)-1]...)
		if rs != nil {
			rs.Reset()
			if _, err := rs.Forward(input, func(i int, l []float32) {
				copy(refLogits[i*vocab:(i+1)*vocab], l)
				refNLL -= LogProb(l, text[i])
			}); err != nil {
				return nil, err
			}
		}
		for m, s := range sessions {
			s.Reset()
			if _, err := s.Forward(input, func(i int, l []float32) {
				nll[m] -= LogProb(l, text[i])
				if rs != nil {
					r := refLogits[i*vocab : (i+1)*vocab]
					kl[m] += KL(r, l)
					if runtime.Argmax(r) == runtime.Argmax(l) {
						agree[m]++
					}
				}
			}); err != nil {
				return nil, err
			}
		}
		scored += len(text)
		if progress != nil {
			progress(w+1, len(windows))
		}
	}
	out := make([]Result, len(models))
	for m := range models {
		out[m] = Result{PPL: math.Exp(nll[m] / float64(scored)), Tokens: scored, Seconds: time.Since(start).Seconds(), Ctx: ctx}
		if rs != nil {
			refPPL := math.Exp(refNLL / float64(scored))
			meanKL := kl[m] / float64(scored)
			top1 := float64(agree[m]) / float64(scored)
			out[m].RefPPL, out[m].KLD, out[m].Top1Agree = &refPPL, &meanKL, &top1
		}
	}
	return out, nil
}

// KL is KL(softmax(p) ‖ softmax(q)) in nats, computed in float64.
func KL(p, q []float32) float64 {
	lp, lq := LogSumExp(p), LogSumExp(q)
	var kl float64
	for i := range p {
		a := float64(p[i]) - lp
		kl += math.Exp(a) * (a - (float64(q[i]) - lq))
	}
	return math.Max(kl, 0)
}

// LogSumExp is log Σ exp(x_i) in float64, shifted by the maximum so that
// large logits do not overflow.
func LogSumExp(x []float32) float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = math.Max(m, float64(v))
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v) - m)
	}
	return m + math.Log(s)
}

// LogProb returns log p(target) under softmax(logits), in float64.
func LogProb(logits []float32, target int) float64 {
	return float64(logits[target]) - LogSumExp(logits)
}
