package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/cafeq/cafeq/runtime"
)

// perplexityResult is what `cafeq perplexity -json` prints.
type perplexityResult struct {
	PPL       float64  `json:"ppl"`
	Tokens    int      `json:"tokens"`
	Seconds   float64  `json:"seconds"`
	Ctx       int      `json:"ctx"`
	RefPPL    *float64 `json:"ref_ppl,omitempty"`
	KLD       *float64 `json:"kld,omitempty"`        // mean KL(ref ‖ model) per token, nats
	Top1Agree *float64 `json:"top1_agree,omitempty"` // share of positions with the same argmax
}

func cmdPerplexity(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("perplexity", "-m MODEL -f TEXT_FILE [-ctx 512] [-ref MODEL] [-json]", stderr)
	modelPath := fs.String("m", "", "model (required)")
	textPath := fs.String("f", "", "text file (required)")
	ctxLen := fs.Int("ctx", 512, "window length in tokens, BOS included")
	refPath := fs.String("ref", "", "reference model: also report KL(ref ‖ model) and top-1 agreement")
	asJSON := fs.Bool("json", false, "print one JSON object")
	threads := fs.Int("threads", 0, "worker threads; 0: all cores")
	kv := registerKVCache(fs, false)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *modelPath == "":
		return usagef("-m MODEL is required")
	case *textPath == "":
		return usagef("-f TEXT_FILE is required")
	case *ctxLen < 2:
		return usagef("-ctx must be at least 2")
	}
	text, err := os.ReadFile(*textPath)
	if err != nil {
		return err
	}
	opts := engineOptions(*threads, kv)
	e, err := loadEngine(*modelPath, opts, stderr)
	if err != nil {
		return err
	}
	defer e.Close()
	var ref *runtime.Engine
	if *refPath != "" {
		if ref, err = loadEngine(*refPath, opts, stderr); err != nil {
			return err
		}
		defer ref.Close()
		if ref.Config.VocabSize != e.Config.VocabSize {
			return fmt.Errorf("reference vocabulary %d differs from the model's %d", ref.Config.VocabSize, e.Config.VocabSize)
		}
	}
	tokens := e.Tokenizer.Encode(string(text))
	if len(tokens) == 0 {
		return fmt.Errorf("%s holds no tokens", *textPath)
	}
	res, err := perplexity(e, ref, tokens, *ctxLen, stderr)
	if err != nil {
		return err
	}
	if *asJSON {
		data, _ := json.Marshal(res)
		fmt.Fprintln(stdout, string(data))
		return nil
	}
	fmt.Fprintf(stdout, "perplexity: %.4f over %d tokens (ctx %d) in %.1fs\n", res.PPL, res.Tokens, res.Ctx, res.Seconds)
	if res.KLD != nil {
		fmt.Fprintf(stdout, "reference perplexity: %.4f\nmean KL(ref || model): %.6f nats/token\ntop-1 agreement: %.4f\n", *res.RefPPL, *res.KLD, *res.Top1Agree)
	}
	return nil
}

// perplexity scores tokens in consecutive windows of ctx-1 text tokens, each
// prefixed with BOS; every text token is predicted once. With a reference
// engine the same windows also give KL(ref ‖ model) and top-1 agreement.
func perplexity(e, ref *runtime.Engine, tokens []int, ctx int, stderr io.Writer) (perplexityResult, error) {
	res, err := compareModels(ref, []*runtime.Engine{e}, tokens, ctx, stderr)
	if err != nil {
		return perplexityResult{}, err
	}
	return res[0], nil
}

// compareModels runs every model (and the reference, once per window, when
// not nil) over the same windows, so several quantizations of one checkpoint
// are scored against one pass of the reference.
func compareModels(ref *runtime.Engine, models []*runtime.Engine, tokens []int, ctx int, stderr io.Writer) ([]perplexityResult, error) {
	start := time.Now()
	per := ctx - 1
	windows := (len(tokens) + per - 1) / per
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
		var err error
		if rs, err = ref.NewSession(ctx); err != nil {
			return nil, err
		}
		refLogits = make([]float32, per*vocab)
	}
	nll, kl, agree := make([]float64, len(models)), make([]float64, len(models)), make([]int, len(models))
	var refNLL float64
	var scored int
	bar := newProgress(stderr, "perplexity", "windows", windows)
	input := make([]int, 0, ctx)
	bos := models[0].Tokenizer.BOS()
	for w := 0; w < windows; w++ {
		text := tokens[w*per : min(len(tokens), (w+1)*per)]
		// Position i (BOS, then text[:len-1]) predicts text[i].
		input = append(append(input[:0], bos), text[:len(text)-1]...)
		if rs != nil {
			rs.Reset()
			if _, err := rs.Forward(input, func(i int, l []float32) {
				copy(refLogits[i*vocab:(i+1)*vocab], l)
				refNLL -= logSoftmaxAt(l, text[i])
			}); err != nil {
				return nil, err
			}
		}
		for m, s := range sessions {
			s.Reset()
			if _, err := s.Forward(input, func(i int, l []float32) {
				nll[m] -= logSoftmaxAt(l, text[i])
				if rs != nil {
					r := refLogits[i*vocab : (i+1)*vocab]
					kl[m] += klDivergence(r, l)
					if runtime.Argmax(r) == runtime.Argmax(l) {
						agree[m]++
					}
				}
			}); err != nil {
				return nil, err
			}
		}
		scored += len(text)
		bar.update(w + 1)
	}
	out := make([]perplexityResult, len(models))
	for m := range models {
		out[m] = perplexityResult{PPL: math.Exp(nll[m] / float64(scored)), Tokens: scored, Seconds: time.Since(start).Seconds(), Ctx: ctx}
		if rs != nil {
			refPPL := math.Exp(refNLL / float64(scored))
			meanKL := kl[m] / float64(scored)
			top1 := float64(agree[m]) / float64(scored)
			out[m].RefPPL, out[m].KLD, out[m].Top1Agree = &refPPL, &meanKL, &top1
		}
	}
	return out, nil
}

// klDivergence is KL(softmax(p) ‖ softmax(q)) in nats, computed in float64.
func klDivergence(p, q []float32) float64 {
	lp, lq := logSumExp(p), logSumExp(q)
	var kl float64
	for i := range p {
		a := float64(p[i]) - lp
		kl += math.Exp(a) * (a - (float64(q[i]) - lq))
	}
	return math.Max(kl, 0)
}

func logSumExp(x []float32) float64 {
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

// logSoftmaxAt returns log p(target) under softmax(logits), in float64.
func logSoftmaxAt(logits []float32, target int) float64 {
	return float64(logits[target]) - logSumExp(logits)
}
