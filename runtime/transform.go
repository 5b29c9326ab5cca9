package runtime

import (
	"fmt"

	"github.com/cafeq/cafeq/kernels"
)

// blockTransform is a block-diagonal M⁻¹ applied to an activation before a
// transformed matrix: the file stores Q(W·M), and W·x = Q(W·M)·(M⁻¹·x).
// It is stored as an (n, block) matrix whose rows k*block..(k+1)*block-1
// form block k, acting on x[k*block : (k+1)*block]. Any kernels format
// works: f32 is exact; q8 reads about a quarter of the bytes, which is what
// keeps the transform step cheap in memory-bound decoding.
type blockTransform struct {
	name  string // the file's tensor holding M⁻¹, to tell shared transforms apart
	block int
	inv   kernels.Matrix // (n, block)
}

func newBlockTransform(name string, m kernels.Matrix) (*blockTransform, error) {
	b := m.Cols
	if b <= 0 || m.Rows%b != 0 || b%kernels.ChunkSize != 0 {
		return nil, fmt.Errorf("runtime: transform %q: shape %dx%d is not a stack of square blocks of a multiple of %d", name, m.Rows, m.Cols, kernels.ChunkSize)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("runtime: transform %q: %w", name, err)
	}
	// The tier's in-memory form (kernels.Prepare). Blocks are whole
	// multiples of 8 rows, so in Tiled8 too block k is the k-th of equal
	// slices of the data (apply).
	p, err := kernels.Prepare(&m)
	if err != nil {
		return nil, fmt.Errorf("runtime: transform %q: %w", name, err)
	}
	return &blockTransform{name: name, block: b, inv: *p}, nil
}

// apply writes rows [lo, hi) of M⁻¹·x into dst, lo and hi multiples of the
// block (so the worker pool can split the blocks); dst must not alias x. x
// must carry its 8-bit form when the transform is quantized. blk and part
// are the caller's scratch, so that the token loop allocates nothing.
func (t *blockTransform) apply(dst []float32, x *kernels.Activation, lo, hi int, blk *kernels.Matrix, part *kernels.Activation) {
	b := t.block
	blockBytes := len(t.inv.Data) / (t.inv.Rows / b) // a Tiled8 superblock format is larger than rows x RowBytes
	chunks := b / kernels.ChunkSize
	for k := lo / b; k < hi/b; k++ {
		*blk = kernels.Matrix{Format: t.inv.Format, Rows: b, Cols: b, Data: t.inv.Data[k*blockBytes : (k+1)*blockBytes], Layout: t.inv.Layout}
		*part = kernels.Activation{F32: x.F32[k*b : (k+1)*b]}
		if len(x.D) > 0 {
			part.Q = x.Q[k*b : (k+1)*b]
			part.D = x.D[k*chunks : (k+1)*chunks]
			part.S = x.S[k*chunks : (k+1)*chunks]
			part.DS = x.DS[k*chunks : (k+1)*chunks]
		}
		if err := blk.MulVec(dst[k*b:(k+1)*b], part, 0, b); err != nil {
			panic(err) // shapes were checked at load
		}
	}
}

func sameTransform(a, b *linear) bool {
	if a.transform == nil || b.transform == nil {
		return a.transform == nil && b.transform == nil
	}
	return a.transform.name == b.transform.name
}

// applyInverseTransform computes M⁻¹·x for a matrix's input transform t
// (none: in itself) over the activation batch in, into out, and quantizes the
// result when the weights read 8-bit activations. in must already be
// quantized when needQ8 is set.
func (e *Engine) applyInverseTransform(sc *scratch, t *blockTransform, in, out *kernels.ActivationBatch) *kernels.ActivationBatch {
	if t == nil || e.skipTransforms {
		return in
	}
	o := sc.view(out, in.N)
	sc.tr.t, sc.tr.src, sc.tr.dst = t, in, o.F32
	e.pool.parallel(&sc.tr, in.N*in.Cols, t.block)
	return e.quantized(o)
}
