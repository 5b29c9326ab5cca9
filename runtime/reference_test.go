package runtime

import (
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/cafeq/cafeq/model"
)

// refForward is a deliberately naive float64 Gemma 2 forward pass written
// straight from the architecture description, independent of the engine's
// batching, caching and kernels. It returns (len(ids), vocab) logits.
func refForward(t *testing.T, ck *model.Checkpoint, ids []int) [][]float64 {
	t.Helper()
	c := ck.Config
	get := func(name string) []float64 {
		tn, err := ck.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		f, _ := tn.Float32s()
		out := make([]float64, len(f))
		for i, v := range f {
			out[i] = float64(v)
		}
		return out
	}
	d, hd := c.HiddenSize, c.HeadDim
	matvec := func(w []float64, x []float64, rows int) []float64 {
		cols := len(x)
		y := make([]float64, rows)
		for r := 0; r < rows; r++ {
			for k := 0; k < cols; k++ {
				y[r] += w[r*cols+k] * x[k]
			}
		}
		return y
	}
	norm := func(x, w []float64) []float64 {
		var ss float64
		for _, v := range x {
			ss += v * v
		}
		inv := 1 / math.Sqrt(ss/float64(len(x))+c.RMSNormEps)
		out := make([]float64, len(x))
		for i := range x {
			out[i] = x[i] * inv * (1 + w[i])
		}
		return out
	}
	rope := func(x []float64, pos int) {
		half := len(x) / 2
		for i := 0; i < half; i++ {
			a := float64(pos) * math.Pow(c.RopeTheta, -float64(2*i)/float64(len(x)))
			x0, x1 := x[i], x[i+half]
			x[i], x[i+half] = x0*math.Cos(a)-x1*math.Sin(a), x1*math.Cos(a)+x0*math.Sin(a)
		}
	}
	softcap := func(v, cap float64) float64 {
		if cap == 0 {
			return v
		}
		return cap * math.Tanh(v/cap)
	}
	embed := get(model.NameEmbed)
	n := len(ids)
	xs := make([][]float64, n)
	for i, id := range ids {
		xs[i] = make([]float64, d)
		for k := range xs[i] {
			xs[i][k] = embed[id*d+k] * math.Sqrt(float64(d))
		}
	}
	for l := 0; l < c.NumHiddenLayers; l++ {
		L := func(kind string) []float64 { return get(model.LayerName(l, kind)) }
		wq, wk, wv, wo := L(model.AttnQ), L(model.AttnK), L(model.AttnV), L(model.AttnO)
		qs, ks, vs := make([][]float64, n), make([][]float64, n), make([][]float64, n)
		for i := range xs {
			h := norm(xs[i], L(model.AttnNorm))
			qs[i], ks[i], vs[i] = matvec(wq, h, c.QDim()), matvec(wk, h, c.KVDim()), matvec(wv, h, c.KVDim())
			for hh := 0; hh < c.NumAttentionHeads; hh++ {
				rope(qs[i][hh*hd:(hh+1)*hd], i)
			}
			for hh := 0; hh < c.NumKeyValueHeads; hh++ {
				rope(ks[i][hh*hd:(hh+1)*hd], i)
			}
		}
		for i := range xs {
			attn := make([]float64, c.QDim())
			for hh := 0; hh < c.NumAttentionHeads; hh++ {
				g := hh / (c.NumAttentionHeads / c.NumKeyValueHeads)
				scores := make([]float64, i+1)
				maxS := math.Inf(-1)
				for j := 0; j <= i; j++ {
					if l%2 == 0 && i-j >= c.SlidingWindow {
						scores[j] = math.Inf(-1)
						continue
					}
					var s float64
					for k := 0; k < hd; k++ {
						s += qs[i][hh*hd+k] * ks[j][g*hd+k]
					}
					scores[j] = softcap(s/math.Sqrt(c.QueryPreAttnScalar), c.AttnLogitSoftcapping)
					maxS = math.Max(maxS, scores[j])
				}
				var sum float64
				for j := range scores {
					scores[j] = math.Exp(scores[j] - maxS)
					sum += scores[j]
				}
				for j := range scores {
					for k := 0; k < hd; k++ {
						attn[hh*hd+k] += scores[j] / sum * vs[j][g*hd+k]
					}
				}
			}
			o := norm(matvec(wo, attn, d), L(model.PostAttnNorm))
			for k := range xs[i] {
				xs[i][k] += o[k]
			}
			h := norm(xs[i], L(model.FFNNorm))
			gate, up := matvec(L(model.FFNGate), h, c.IntermediateSize), matvec(L(model.FFNUp), h, c.IntermediateSize)
			for k := range gate {
				x := gate[k]
				gate[k] = 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x))) * up[k]
			}
			f := norm(matvec(L(model.FFNDown), gate, d), L(model.PostFFNNorm))
			for k := range xs[i] {
				xs[i][k] += f[k]
			}
		}
	}
	out := make([][]float64, n)
	final := get(model.NameFinalNorm)
	for i := range xs {
		out[i] = matvec(embed, norm(xs[i], final), c.VocabSize)
		for k := range out[i] {
			out[i][k] = softcap(out[i][k], c.FinalLogitSoftcapping)
		}
	}
	return out
}

// TestOddShapesMatchReference runs checkpoints with shapes the released
// models lack (head_dim 48, not a power of two; GQA ratio 3; query scale
// different from head_dim; a window shorter than the prompt; a prompt
// longer than two attention row blocks) through the engine and the naive
// reference.
func TestOddShapesMatchReference(t *testing.T) {
	cfg := model.Gemma2_2B()
	cfg.HiddenSize, cfg.IntermediateSize, cfg.NumHiddenLayers = 96, 160, 3
	cfg.NumAttentionHeads, cfg.NumKeyValueHeads, cfg.HeadDim, cfg.QueryPreAttnScalar = 6, 2, 48, 40
	cfg.VocabSize, cfg.SlidingWindow = 512, 5
	dir := t.TempDir()
	if err := model.WriteSynthetic(dir, cfg, 7, nil); err != nil {
		t.Fatal(err)
	}
	copyFile(t, "../testdata/gemma2-tiny/tokenizer.model", filepath.Join(dir, "tokenizer.model"))
	ck, err := model.OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	ids := []int{2, 17, 250, 3, 99, 42, 42, 7, 480, 11, 5, 199}
	for len(ids) < 2*attnBlockRows+7 {
		ids = append(ids, (ids[len(ids)-1]*31+7)%cfg.VocabSize)
	}
	want := refForward(t, ck, ids)
	e, err := Load(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	s, _ := e.NewSession(len(ids))
	// One pass, then uneven chunks (attention blocks that start mid-sequence
	// and past the window), then token by token.
	for _, sizes := range [][]int{{len(ids)}, {5, 17, 1, 9, len(ids)}, {1}} {
		s.Reset()
		var maxDiff, scale float64
		for start, c := 0, 0; start < len(ids); c++ {
			end := min(len(ids), start+sizes[min(c, len(sizes)-1)])
			if _, err := s.Forward(ids[start:end], func(i int, l []float32) {
				for k, v := range l {
					maxDiff = math.Max(maxDiff, math.Abs(float64(v)-want[start+i][k]))
					scale = math.Max(scale, math.Abs(want[start+i][k]))
				}
			}); err != nil {
				t.Fatal(err)
			}
			start = end
		}
		if maxDiff > 1e-4*scale {
			t.Fatalf("chunks %v: engine vs naive reference: max |diff| %.3g, logit scale %.3g", sizes, maxDiff, scale)
		}
	}
}

// TestTokenLoopAllocatesNothing checks that a decode step allocates nothing.
func TestTokenLoopAllocatesNothing(t *testing.T) {
	for _, f16 := range []bool{false, true} {
		t.Run(fmt.Sprintf("kvf16=%v", f16), func(t *testing.T) { testTokenLoopAllocs(t, Options{KVF16: f16}) })
	}
}

func testTokenLoopAllocs(t *testing.T, opts Options) {
	e, err := Load("../testdata/gemma2-tiny", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	s, _ := e.NewSession(128)
	if _, err := s.Forward([]int{2, 400, 314}, nil); err != nil {
		t.Fatal(err)
	}
	id := 5
	allocs := testing.AllocsPerRun(20, func() {
		l, err := s.Step(id)
		if err != nil {
			t.Fatal(err)
		}
		id = s.sampler.sample(l, SampleOptions{Temperature: 0.8, TopK: 40, TopP: 0.9})
	})
	if allocs != 0 {
		t.Fatalf("decode step + sampling allocates %.1f times", allocs)
	}
}
