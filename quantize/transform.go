package quantize

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"

	"github.com/cafeq/cafeq/kernels"
)

// Transform is an invertible block-diagonal matrix M = diag(M_0..M_{K-1})
// acting on the input axis of a matrix W[out][in]. The quantizer stores
// Q(W·M); the runtime must apply Inv = M^-1 to the activation first:
//
//	x' = M^-1 x,   y = Q(W·M) x'   (W x = (W M)(M^-1 x))
//
// Inv holds the K blocks of M^-1 one after another, each Block x Block
// row-major: x'[k*Block+i] = sum_j Inv[k*Block*Block + i*Block + j] * x[k*Block+j].
type Transform struct {
	Block int
	Inv   []float32
	m     []float64 // the forward blocks, same layout, kept for folding W·M
}

// Blocks is the number of diagonal blocks.
func (t *Transform) Blocks() int { return len(t.Inv) / (t.Block * t.Block) }

// Apply writes M^-1 x into dst (len(x) = Blocks*Block); dst must not alias x.
func (t *Transform) Apply(dst, x []float32) {
	b := t.Block
	for k := range t.Blocks() {
		inv := t.Inv[k*b*b : (k+1)*b*b]
		xs := x[k*b : (k+1)*b]
		for i := range b {
			var s float32
			for j, v := range inv[i*b : (i+1)*b] {
				s += v * xs[j]
			}
			dst[k*b+i] = s
		}
	}
}

// Fold returns m·M, the matrix in the transformed input basis (m itself
// when t is nil). Use it to hand v_proj to QuantizeVO after q/k/v got a
// shared input transform.
func (t *Transform) Fold(m Matrix) (Matrix, error) {
	if t == nil {
		return m, nil
	}
	if m.Cols != t.Blocks()*t.Block || len(m.Data) != m.Rows*m.Cols {
		return Matrix{}, fmt.Errorf("quantize: fold %q (%dx%d) with a transform of %d columns", m.Name, m.Rows, m.Cols, t.Blocks()*t.Block)
	}
	out := Matrix{Name: m.Name, Rows: m.Rows, Cols: m.Cols, Data: make([]float32, len(m.Data))}
	applyRight(out.Data, m.Data, m.Rows, m.Cols, t.Block, t.m)
	return out, nil
}

// setIdentity makes block k the identity.
func (t *Transform) setIdentity(k int) {
	b := t.Block
	for i := range b {
		for j := range b {
			v := 0.0
			if i == j {
				v = 1
			}
			t.m[k*b*b+i*b+j] = v
			t.Inv[k*b*b+i*b+j] = float32(v)
		}
	}
}

// blockIsIdentity reports whether block k of m is the identity (then it can be
// skipped when folding).
func blockIsIdentity(m []float64, b int) bool {
	for i := range b {
		for j := range b {
			want := 0.0
			if i == j {
				want = 1
			}
			if m[i*b+j] != want {
				return false
			}
		}
	}
	return true
}

// applyRight computes dst = w·M for a row-major rows x cols matrix, block by
// block (dst may not alias w).
func applyRight(dst, w []float32, rows, cols, b int, m []float64) {
	k := cols / b
	parallelFor(k, func(kb int) {
		mk := m[kb*b*b : (kb+1)*b*b]
		if blockIsIdentity(mk, b) {
			for r := range rows {
				copy(dst[r*cols+kb*b:r*cols+(kb+1)*b], w[r*cols+kb*b:r*cols+(kb+1)*b])
			}
			return
		}
		m32 := make([]float32, b*b)
		for i, v := range mk {
			m32[i] = float32(v)
		}
		gemm32(dst[kb*b:], cols, w[kb*b:], cols, rows, b, m32, b)
	})
}

// hadamardBlock returns the b x b block S·H/sqrt(b), with H the Sylvester
// Hadamard matrix and S a diagonal of random signs. It is orthogonal, so its
// inverse is its transpose.
func hadamardBlock(b int, rng *rand.Rand) []float64 {
	m := make([]float64, b*b)
	scale := 1 / math.Sqrt(float64(b))
	for i := range b {
		sign := scale
		if rng.IntN(2) == 1 {
			sign = -scale
		}
		for j := range b {
			v := sign
			if bits.OnesCount(uint(i&j))%2 == 1 {
				v = -v
			}
			m[i*b+j] = v
		}
	}
	return m
}

// newHadamard builds a random-sign block Hadamard transform. block must be a
// power of two dividing cols; cols like 2304 = 9*256 get 9 independent
// 256-blocks.
func newHadamard(cols, block int, seed uint64) (*Transform, error) {
	if block <= 0 || block&(block-1) != 0 || cols%block != 0 {
		return nil, fmt.Errorf("quantize: hadamard block %d must be a power of two dividing %d columns", block, cols)
	}
	rng := rand.New(rand.NewPCG(seed, 0x4861646d))
	t := &Transform{Block: block}
	for range cols / block {
		m := hadamardBlock(block, rng)
		t.m = append(t.m, m...)
		// Inverse of S·H/sqrt(b) is its transpose.
		for i := range block {
			for j := range block {
				t.Inv = append(t.Inv, float32(m[j*block+i]))
			}
		}
	}
	return t, nil
}

// rngFor is a deterministic generator for stream k of a seed.
func rngFor(seed, k uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, k^0x9e3779b97f4a7c15)) }

// roundInv rounds every block of t.Inv to the storage format f (as the
// writer will) and replaces M by the inverse of the rounded M^-1, so the
// folded weights and the stored M^-1 are exact inverses. A block whose
// rounded M^-1 is singular becomes the identity.
func roundInv(t *Transform, f kernels.Format) error {
	b := t.Block
	rb := f.RowBytes(b)
	errs := make([]error, t.Blocks())
	parallelFor(t.Blocks(), func(k int) {
		inv := t.Inv[k*b*b : (k+1)*b*b]
		buf := make([]byte, rb)
		for i := range b {
			row := inv[i*b : (i+1)*b]
			if err := kernels.QuantizeRowRTN(f, buf, row); err != nil {
				errs[k] = fmt.Errorf("quantize: round transform: %w", err)
				return
			}
			if err := kernels.DequantizeRow(f, row, buf); err != nil {
				errs[k] = fmt.Errorf("quantize: round transform: %w", err)
				return
			}
		}
		m, err := invert(dense64(b, b, inv))
		if err != nil {
			t.setIdentity(k)
			return
		}
		copy(t.m[k*b*b:(k+1)*b*b], m.RawMatrix().Data)
	})
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
