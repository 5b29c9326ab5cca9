package quantize

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/cafeq/cafeq/model"
	"github.com/cafeq/cafeq/runtime"
)

// correlatedCov returns a second moment of n inputs with a few loud
// channels and strong correlations (x = A z, z white), like a norm's output.
func correlatedCov(n int, rng *rand.Rand) []float64 {
	a := make([]float64, n*n)
	for i := range n {
		loud := 1.0
		if i%17 == 3 {
			loud = 6
		}
		for k := range n {
			a[i*n+k] = rng.NormFloat64() * loud / math.Sqrt(float64(n))
		}
		a[i*n+i] += loud
	}
	h := make([]float64, n*n)
	for i := range n {
		for j := range n {
			var s float64
			for k := range n {
				s += a[i*n+k] * a[j*n+k]
			}
			h[i*n+j] = s
		}
	}
	return h
}

// fullWeightedErr is Σ over all rows of δᵀ (S·H·S) δ, in float64, written
// independently of weightedErr.
func fullWeightedErr(x []float32, q *Quantized, h []float64, s []float64) float64 {
	n := q.Cols
	deq := q.Dequantize()
	var e float64
	for r := range q.Rows {
		d := make([]float64, n)
		for j := range n {
			d[j] = float64(x[r*n+j]-deq[r*n+j]) * s[j]
		}
		for i := range n {
			for j := range n {
				e += d[i] * h[i*n+j] * d[j]
			}
		}
	}
	return e
}

func TestReroundLowersInputWeightedError(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const rows, n = 48, 128
	h := correlatedCov(n, rng)
	ic, err := inputCovOf(h, n)
	if err != nil {
		t.Fatal(err)
	}
	s := make([]float64, n)
	for j := range s {
		s[j] = 0.5 + rng.Float64()
	}
	x := make([]float32, rows*n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	for _, g := range []Grid{{Bits: 3, Group: 32, Asym: true}, {Bits: 4, Group: 64}, {Bits: 4, Group: 32, Super: true}} {
		// Super grids need 256-wide rows.
		cols := n
		xx, hh, ss, icc := x, h, s, ic
		if g.Super {
			cols = 256
			xx = make([]float32, rows*cols)
			for i := range xx {
				xx[i] = float32(rng.NormFloat64())
			}
			hh = correlatedCov(cols, rng)
			ss = make([]float64, cols)
			for j := range ss {
				ss[j] = 1
			}
			if icc, err = inputCovOf(hh, cols); err != nil {
				t.Fatal(err)
			}
		}
		q, err := RTN(g, xx, rows, cols)
		if err != nil {
			t.Fatal(err)
		}
		nq, ratio := reround(xx, q, icc.factorFor(ss))
		if nq == nil {
			t.Fatalf("%v: re-rounding did not lower the weighted error", g)
		}
		before, after := fullWeightedErr(xx, q, hh, ss), fullWeightedErr(xx, nq, hh, ss)
		t.Logf("%v: weighted error %.4g -> %.4g (sampled ratio %.3f)", g, before, after, ratio)
		if after > 0.9*before {
			t.Errorf("%v: weighted error %.4g -> %.4g, want at least 10%% lower", g, before, after)
		}
		if ratio <= 0 || ratio >= 1 {
			t.Errorf("%v: ratio %v, want in (0, 1)", g, ratio)
		}
		for i := range q.Scales {
			if nq.Scales[i] != q.Scales[i] {
				t.Fatalf("%v: scale %d changed", g, i)
			}
		}
	}
}

// The lazy batches give the column-by-column result, whatever the block.
func TestRoundWithFeedbackBlocksAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const rows, n = 40, 96
	ic, err := inputCovOf(correlatedCov(n, rng), n)
	if err != nil {
		t.Fatal(err)
	}
	ones := make([]float64, n)
	for j := range ones {
		ones[j] = 1
	}
	f := ic.factorFor(ones)
	x := make([]float32, rows*n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	q, err := RTN(Grid{Bits: 3, Group: 32}, x, rows, n)
	if err != nil {
		t.Fatal(err)
	}
	ref := gptqReference(x, q, f.u)
	for _, b := range []int{1, 7, 32, n} {
		got := roundWithFeedback(x, q, f, b)
		diff := 0
		for i := range ref {
			if got.Levels[i] != ref[i] {
				diff++
			}
		}
		// float32 sums in another order can flip a rare tie.
		if diff > len(ref)/200 {
			t.Errorf("block %d: %d of %d levels differ from the column-by-column reference", b, diff, len(ref))
		}
	}
}

// gptqReference is GPTQ's plain loop in float64: per row, per column,
// round, and push the scaled error into every later column.
func gptqReference(x []float32, q *Quantized, u []float32) []uint8 {
	n := q.Cols
	levels := make([]uint8, len(x))
	w := make([]float64, n)
	for r := range q.Rows {
		for j := range n {
			w[j] = float64(x[r*n+j])
		}
		for i := range n {
			gi := r*(n/q.Group) + i/q.Group
			sc, mn := q.Scales[gi], q.minAt(gi)
			top := float64(q.maxLevel())
			var l float64
			if q.Asym {
				l = math.Round((w[i] - float64(mn)) / float64(sc))
			} else {
				l = math.Round(w[i]/float64(sc) + float64(q.zero()))
			}
			l = math.Max(0, math.Min(top, l))
			levels[r*n+i] = uint8(l)
			e := (w[i] - float64(q.value(uint8(l), sc, mn))) / float64(u[i*n+i])
			for j := i + 1; j < n; j++ {
				w[j] -= e * float64(u[i*n+j])
			}
		}
	}
	return levels
}

func TestInputScale(t *testing.T) {
	s := inputScale([]float32{0, 1, -1, -3}, []float32{2, 4, 1, 1})
	want := []float64{0.5, 0.5, 1e-6 * 2, 2}
	for i := range want {
		if math.Abs(s[i]-want[i]) > 1e-12 {
			t.Errorf("s[%d] = %v, want %v", i, s[i], want[i])
		}
	}
}

// H0 is the mean of u·uᵀ with u at unit RMS, so its trace is d_model; the
// stream starts at the sampled rows times sqrt(d_model).
func TestInputStatsFromEmbedding(t *testing.T) {
	ck := openTiny(t)
	st, err := newInputStats(ck, 1)
	if err != nil {
		t.Fatal(err)
	}
	n := ck.Config.HiddenSize
	var tr float64
	for i := range n {
		tr += st.h0[i*n+i]
		for j := range n {
			if st.h0[i*n+j] != st.h0[j*n+i] {
				t.Fatalf("H0 not symmetric at %d,%d", i, j)
			}
		}
	}
	if math.Abs(tr-float64(n)) > 1e-9*float64(n) {
		t.Errorf("trace(H0) = %v, want %d", tr, n)
	}
	if want := min(streamSamples, inputCovSamples*n, ck.Config.VocabSize); st.stream.m != want {
		t.Errorf("stream of %d samples, want %d", st.stream.m, want)
	}
	ic, err := st.cov()
	if err != nil {
		t.Fatal(err)
	}
	var trc float64
	for i := range n {
		trc += ic.h[i*n+i]
	}
	if math.Abs(trc-float64(n)) > 1e-4*float64(n) {
		t.Errorf("trace of the mixed moment = %v, want %d (both parts have unit RMS)", trc, n)
	}
}

// The stream is Gemma 2's forward pass of one-token sequences: after every
// layer, its final norm times the embedding gives the runtime's logits.
func TestStreamMatchesRuntime(t *testing.T) {
	ck := openTiny(t)
	cfg := ck.Config
	n := cfg.HiddenSize
	tokens := []int{2, 17, 100, cfg.VocabSize - 1}
	emb := tensor(t, ck, model.NameEmbed)
	st := &stream{cfg: cfg, m: len(tokens)}
	for _, tok := range tokens {
		for _, v := range emb.Data[tok*n : (tok+1)*n] {
			st.x = append(st.x, v*float32(math.Sqrt(float64(n))))
		}
	}
	q := &checkpointWriter{ck: ck}
	for l := range cfg.NumHiddenLayers {
		if err := st.attention(q, l); err != nil {
			t.Fatal(err)
		}
		if err := st.mlp(q, l); err != nil {
			t.Fatal(err)
		}
	}
	final, err := q.vector(model.NameFinalNorm)
	if err != nil {
		t.Fatal(err)
	}
	got := times(st.normed(st.x, final), st.m, emb)
	if c := float32(cfg.FinalLogitSoftcapping); c > 0 {
		for i, v := range got {
			got[i] = c * float32(math.Tanh(float64(v/c)))
		}
	}
	e, err := runtime.Load("../testdata/gemma2-tiny", runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for i, tok := range tokens {
		s, err := e.NewSession(8)
		if err != nil {
			t.Fatal(err)
		}
		want, err := s.Forward([]int{tok}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var scale, worst float64
		for j, w := range want {
			scale = math.Max(scale, math.Abs(float64(w)))
			worst = math.Max(worst, math.Abs(float64(w-got[i*cfg.VocabSize+j])))
		}
		if worst > 1e-3*scale {
			t.Errorf("token %d: logits differ by %g (scale %g)", tok, worst, scale)
		}
	}
}

func TestMulNT(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, sz := range [][3]int{{1, 1, 1}, {3, 7, 5}, {17, 33, 130}, {64, 300, 9}} {
		m, k, n := sz[0], sz[1], sz[2]
		a, b := make([]float32, m*k), make([]float32, n*k)
		for i := range a {
			a[i] = float32(rng.NormFloat64())
		}
		for i := range b {
			b[i] = float32(rng.NormFloat64())
		}
		c := make([]float32, m*n)
		mulNT(c, a, m, k, b, n)
		at := transpose32(a, m, k)
		for i := range m {
			for j := range n {
				var want float64
				for l := range k {
					want += float64(at[l*m+i]) * float64(b[j*k+l])
				}
				if math.Abs(float64(c[i*n+j])-want) > 1e-4*math.Sqrt(float64(k)) {
					t.Fatalf("%v: C[%d][%d] = %v, want %v", sz, i, j, c[i*n+j], want)
				}
			}
		}
	}
}
