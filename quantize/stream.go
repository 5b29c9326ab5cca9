package quantize

import (
	"github.com/cafeq/cafeq/kernels"
	"github.com/cafeq/cafeq/model"
)

// stream carries sampled tokens' residual-stream states through the
// model's layers, each token as a sequence of one: its attention returns
// its own v, so no position or context is needed.
type stream struct {
	cfg model.Config
	m   int
	x   []float32 // m x d_model
}

// moment is the mean of u·uᵀ over the states u = x/rms(x).
func (st *stream) moment() []float64 {
	n := st.cfg.HiddenSize
	u := st.normed(st.x, make([]float32, n)) // unit RMS: a norm with w = 0
	h := make([]float32, n*n)
	ut := transpose32(u, st.m, n)
	mulNT(h, ut, n, st.m, ut, n)
	out := make([]float64, n*n)
	for i := range out {
		out[i] = float64(h[i]) / float64(st.m)
	}
	return out
}

// normed is RMSNorm(x)·(1+w) of every state, with the runtime's kernel.
func (st *stream) normed(x []float32, w []float32) []float32 {
	n := len(w)
	out := make([]float32, len(x))
	for r := range len(x) / n {
		kernels.RMSNorm(out[r*n:(r+1)*n], x[r*n:(r+1)*n], w, float32(st.cfg.RMSNormEps))
	}
	return out
}

// times returns a·wᵀ for a (m x in) and w (out x in).
func times(a []float32, m int, w Matrix) []float32 {
	out := make([]float32, m*w.Rows)
	mulNT(out, a, m, w.Cols, w.Data, w.Rows)
	return out
}

// block loads what one block of layer l reads: its matrices, the norm
// before it and the norm after it.
func (q *checkpointWriter) block(l int, pre, post string, matrices ...string) (ms []Matrix, preW, postW []float32, err error) {
	names := make([]string, len(matrices))
	for i, m := range matrices {
		names[i] = model.LayerName(l, m)
	}
	if ms, err = q.loadAll(names...); err != nil {
		return nil, nil, nil, err
	}
	if preW, err = q.vector(model.LayerName(l, pre)); err != nil {
		return nil, nil, nil, err
	}
	if postW, err = q.vector(model.LayerName(l, post)); err != nil {
		return nil, nil, nil, err
	}
	return ms, preW, postW, nil
}

// attention adds layer l's attention output to the states.
func (st *stream) attention(q *checkpointWriter, l int) error {
	ms, norm, post, err := q.block(l, model.AttnNorm, model.PostAttnNorm, model.AttnV, model.AttnO)
	if err != nil {
		return err
	}
	v := times(st.normed(st.x, norm), st.m, ms[0])
	hd, nq, nkv := st.cfg.HeadDim, st.cfg.NumAttentionHeads, st.cfg.NumKeyValueHeads
	a := make([]float32, st.m*nq*hd)
	for r := range st.m {
		for h := range nq {
			kv := h / (nq / nkv)
			copy(a[(r*nq+h)*hd:(r*nq+h+1)*hd], v[(r*nkv+kv)*hd:(r*nkv+kv+1)*hd])
		}
	}
	st.add(times(a, st.m, ms[1]), post)
	return nil
}

// mlp adds layer l's MLP output to the states.
func (st *stream) mlp(q *checkpointWriter, l int) error {
	ms, norm, post, err := q.block(l, model.FFNNorm, model.PostFFNNorm, model.FFNGate, model.FFNUp, model.FFNDown)
	if err != nil {
		return err
	}
	h := st.normed(st.x, norm)
	g, u := times(h, st.m, ms[0]), times(h, st.m, ms[1])
	kernels.GELUMul(g, u)
	st.add(times(g, st.m, ms[2]), post)
	return nil
}

// add adds RMSNorm(y)·(1+post) to the states.
func (st *stream) add(y []float32, post []float32) {
	y = st.normed(y, post)
	for i, v := range y {
		st.x[i] += v
	}
}
