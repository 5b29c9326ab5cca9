package kernels

import (
	"fmt"
	"math"
)

// Activation is one input vector in the two forms the matrix kernels read:
// the f32 values (for F32/F16/BF16 weights) and an 8-bit form for the integer
// paths. The 8-bit form splits the vector into blocks of 32 (ChunkSize); block
// b holds int8 values Q[32b:32b+32] with x ≈ D[b] * Q, and S[b] = sum(Q in
// block b), so that a weight offset or min can be applied once per block:
//
//	sum_i (d*(q_i - o)) * (D*a_i) = d*D*(sum_i q_i*a_i - o*S)
//	sum_i (d*q_i + m)   * (D*a_i) = d*D*(sum_i q_i*a_i) + m*D*S
//
// The integer sum pairs unsigned weight levels with signed activations, which
// is the operand order of VPDPBUSD and VPMADDUBSW.
//
// Quantize it once per distinct input vector (q/k/v share one, gate/up share
// one) with Set; every matrix that reads that input reuses it.
type Activation struct {
	F32 []float32 // the vector itself, len Cols
	Q   []int8    // 8-bit values, len Blocks*32 (zero padded past Cols)
	D   []float32 // per-block scale, len Blocks
	S   []int32   // per-block sum of Q, len Blocks
	// DS is D*S per block (float32(S)*D, rounded once): the term an
	// asymmetric group's minimum multiplies, ready for the tiled kernels so
	// they need no int-to-float conversion per block and token.
	DS []float32
}

// Cols is the vector's length.
func (a *Activation) Cols() int { return len(a.F32) }

// NewActivation allocates an Activation for vectors of n values.
func NewActivation(n int) *Activation {
	nb := (n + ChunkSize - 1) / ChunkSize
	return &Activation{F32: make([]float32, n), Q: make([]int8, nb*ChunkSize), D: make([]float32, nb), S: make([]int32, nb), DS: make([]float32, nb)}
}

// Set copies x into a (len(x) must equal a.Cols()) and quantizes it.
func (a *Activation) Set(x []float32) error {
	if len(x) != len(a.F32) {
		return fmt.Errorf("kernels: activation: %w: vector of %d values for an activation of %d", ErrShape, len(x), len(a.F32))
	}
	copy(a.F32, x)
	a.Quantize()
	return nil
}

// Quantize recomputes the 8-bit form from a.F32 (after writing F32 in place).
func (a *Activation) Quantize() {
	quantizeAct(a.Q, a.D, a.S, a.F32)
	a.SetDS()
}

// SetDS recomputes DS from D and S (Quantize does; callers that fill D and S
// themselves call it).
func (a *Activation) SetDS() {
	for b, d := range a.D {
		a.DS[b] = float32(a.S[b]) * d
	}
}

// quantizeActGeneric is the reference activation quantizer: per 32-block
// absmax scaling to [-127, 127], rounding half to even (what CVTPS2DQ does),
// so the SIMD tiers are bit-identical. A block holding a NaN or ±Inf gets
// scale NaN and zero values, so results are visibly poisoned rather than
// silently wrong.
func quantizeActGeneric(q []int8, d []float32, s []int32, x []float32) {
	for b := range d {
		lo := b * ChunkSize
		hi := min(lo+ChunkSize, len(x))
		qb := q[lo : lo+ChunkSize]
		var amax float32
		finite := true
		for _, v := range x[lo:hi] {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				finite = false
			}
			amax = max(amax, abs32(v))
		}
		if !finite {
			clear(qb)
			d[b], s[b] = float32(math.NaN()), 0
			continue
		}
		var inv float32
		if amax > 0 {
			inv = 127 / amax
		}
		var sum int32
		for i := range qb {
			var v int8
			if lo+i < hi {
				v = int8(math.RoundToEven(float64(x[lo+i] * inv)))
			}
			qb[i] = v
			sum += int32(v)
		}
		d[b], s[b] = amax/127, sum
	}
}

// ActivationBatch holds n input vectors (tokens) of the same length for
// prefill, laid out token after token: token t's values are
// F32[t*Cols:(t+1)*Cols], its 8-bit values Q[t*Blocks*32:...], its scales
// and sums D/S/DS[t*Blocks:...].
type ActivationBatch struct {
	N, Cols, Blocks int
	F32             []float32
	Q               []int8
	D               []float32
	S               []int32
	DS              []float32
}

// NewActivationBatch allocates a batch of n vectors of cols values.
func NewActivationBatch(n, cols int) *ActivationBatch {
	nb := (cols + ChunkSize - 1) / ChunkSize
	return &ActivationBatch{N: n, Cols: cols, Blocks: nb,
		F32: make([]float32, n*cols), Q: make([]int8, n*nb*ChunkSize), D: make([]float32, n*nb), S: make([]int32, n*nb), DS: make([]float32, n*nb)}
}

// Token returns token t as an Activation that shares the batch's memory.
func (b *ActivationBatch) Token(t int) Activation {
	nb := b.Blocks
	return Activation{
		F32: b.F32[t*b.Cols : (t+1)*b.Cols],
		Q:   b.Q[t*nb*ChunkSize : (t+1)*nb*ChunkSize],
		D:   b.D[t*nb : (t+1)*nb],
		S:   b.S[t*nb : (t+1)*nb],
		DS:  b.DS[t*nb : (t+1)*nb],
	}
}

// Set copies the n*Cols values of xs (token-major) and quantizes them.
func (b *ActivationBatch) Set(xs []float32) error {
	if len(xs) != len(b.F32) {
		return fmt.Errorf("kernels: activation batch: %w: %d values for %d tokens of %d", ErrShape, len(xs), b.N, b.Cols)
	}
	copy(b.F32, xs)
	b.Quantize()
	return nil
}

// Quantize recomputes the 8-bit form of every token from F32.
func (b *ActivationBatch) Quantize() {
	for t := 0; t < b.N; t++ {
		a := b.Token(t)
		a.Quantize()
	}
}
