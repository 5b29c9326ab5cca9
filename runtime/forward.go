package runtime

import (
	"errors"
	"math"

	"github.com/cafeq/cafeq/kernels"
)

// forwardRows runs the n rows of sc (ids and refs filled in) through every
// layer, appends their keys, values and ids to their caches, and leaves the
// final normalized hidden states in sc.final.
func (e *Engine) forwardRows(sc *scratch, n int) {
	c := e.Config
	d, f, qd, kvd := c.HiddenSize, c.IntermediateSize, c.QDim(), c.KVDim()
	eps := float32(c.RMSNormEps)
	embedScale := float32(math.Sqrt(float64(d))) // Gemma scales embeddings by sqrt(d_model)
	for i := 0; i < n; i++ {
		row := sc.x[i*d : (i+1)*d]
		if err := e.w.embed.Row(sc.ids[i], row); err != nil {
			panic(err) // ids were range-checked and the matrix validated at load
		}
		kernels.Scale(embedScale, row)
		r := sc.refs[i]
		r.cache.tokens[r.pos] = sc.ids[i]
	}
	xn := sc.view(sc.xn, n)
	for l := range e.w.layers {
		L := &e.w.layers[l]
		// Attention block.
		for i := 0; i < n; i++ {
			kernels.RMSNorm(xn.F32[i*d:(i+1)*d], sc.x[i*d:(i+1)*d], L.attnNorm, eps)
		}
		e.quantized(xn)
		in := e.applyInverseTransform(sc, L.q.transform, xn, sc.xt)
		q, k, v := matmulPart{L.q, sc.q[:n*qd]}, matmulPart{L.k, sc.k[:n*kvd]}, matmulPart{L.v, sc.v[:n*kvd]}
		if sameTransform(L.q, L.v) {
			e.matmuls(sc, in, q, k, v)
		} else { // CafeQ folds V's transform into V/O instead
			e.matmuls(sc, in, q, k)
			e.matmuls(sc, e.applyInverseTransform(sc, L.v.transform, xn, sc.xt), v)
		}
		e.attention(sc, l, n)
		attn := e.applyInverseTransform(sc, L.o.transform, e.quantized(sc.view(sc.attn, n)), sc.xt)
		e.matmul(sc, L.o, sc.proj[:n*d], attn)
		for i := 0; i < n; i++ {
			p := sc.proj[i*d : (i+1)*d]
			kernels.RMSNorm(p, p, L.postAttnNorm, eps)
			kernels.Add(sc.x[i*d:(i+1)*d], p)
		}
		// Feed-forward block: GeGLU with tanh GELU.
		for i := 0; i < n; i++ {
			kernels.RMSNorm(xn.F32[i*d:(i+1)*d], sc.x[i*d:(i+1)*d], L.ffnNorm, eps)
		}
		e.quantized(xn)
		in = e.applyInverseTransform(sc, L.gate.transform, xn, sc.xt)
		e.matmuls(sc, in, matmulPart{L.gate, sc.gate[:n*f]}, matmulPart{L.up, sc.up[:n*f]})
		act := sc.view(sc.act, n)
		copy(act.F32, sc.gate[:n*f])
		kernels.GELUMul(act.F32, sc.up[:n*f])
		in = e.applyInverseTransform(sc, L.down.transform, e.quantized(act), sc.actT)
		e.matmul(sc, L.down, sc.proj[:n*d], in)
		for i := 0; i < n; i++ {
			p := sc.proj[i*d : (i+1)*d]
			kernels.RMSNorm(p, p, L.postFFNNorm, eps)
			kernels.Add(sc.x[i*d:(i+1)*d], p)
		}
	}
	final := sc.view(sc.final, n)
	for i := 0; i < n; i++ {
		kernels.RMSNorm(final.F32[i*d:(i+1)*d], sc.x[i*d:(i+1)*d], e.w.finalNorm, eps)
	}
	e.quantized(final)
	for i := 0; i < n; i++ {
		sc.refs[i].cache.pos = max(sc.refs[i].cache.pos, sc.refs[i].pos+1)
	}
}

// quantized quantizes a freshly written activation batch when some weights
// read the 8-bit form, and returns it.
func (e *Engine) quantized(b *kernels.ActivationBatch) *kernels.ActivationBatch {
	if e.needQ8 {
		b.Quantize()
	}
	return b
}

// matmul computes dst = W·x for every token of in, rows split across threads.
func (e *Engine) matmul(sc *scratch, l *linear, dst []float32, in *kernels.ActivationBatch) {
	e.matmuls(sc, in, matmulPart{l, dst})
}

// matmulPart is one matrix of a matmuls call and where its products go.
type matmulPart struct {
	l   *linear
	dst []float32
}

// matmuls runs up to three matrices that read the same input as one job over
// their stacked rows: one dispatch and one wait instead of one per matrix,
// and the threads' shares balance over all of them.
func (e *Engine) matmuls(sc *scratch, in *kernels.ActivationBatch, parts ...matmulPart) {
	sc.mm = matmulJob{in: in}
	rows := 0
	for i, p := range parts {
		sc.mm.parts[i] = p
		rows += p.l.Rows
	}
	sc.mm.n = len(parts)
	if in.N == 1 {
		sc.mm.one = in.Token(0)
	}
	e.pool.parallel(&sc.mm, rows, 16)
}

// logits computes the soft-capped logits of rows [lo, hi) into
// sc.logit[(i-lo)*vocab:]: one matrix product, so the large output matrix is
// read once for all of them. A row with a non-finite logit is an error
// (checked before the soft-cap, which would turn ±Inf into ±cap); the other
// rows are still valid, so bad reports which.
func (e *Engine) logits(sc *scratch, lo, hi int) (bad []bool, err error) {
	vocab := e.Config.VocabSize
	rows := sc.viewRange(sc.final, lo, hi)
	out := sc.logit[:(hi-lo)*vocab]
	e.matmul(sc, e.w.output, out, rows)
	for i := 0; i < hi-lo; i++ {
		if !allFinite(out[i*vocab : (i+1)*vocab]) {
			if bad == nil {
				bad = make([]bool, hi-lo)
				err = ErrNonFinite
			}
			bad[i] = true
		}
	}
	if cap := float32(e.Config.FinalLogitSoftcapping); cap > 0 {
		kernels.SoftCap(out, cap) // final logit soft-cap
	}
	return bad, err
}

// ErrNonFinite is returned instead of logits that hold a NaN or an infinity:
// corrupt weights (a NaN in a norm or a scale) or activations that overflow.
// Nothing is ever sampled from such logits.
var ErrNonFinite = errors.New("runtime: the model computed a non-finite logit (NaN or infinity); the weights may be corrupt")

// allFinite reports whether x holds neither NaN nor ±Inf (v-v is NaN for both).
func allFinite(x []float32) bool {
	var acc float32
	for _, v := range x {
		acc += v - v
	}
	return acc == 0
}
