package kernels

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/x448/float16"
)

// The f32 loops of the forward pass. Lengths must agree as documented; a
// mismatch is a programming error in the caller (not bad input), and panics
// with a kernels: message like an out-of-range slice would.

func mustLen(op string, want int, got ...int) {
	for _, g := range got {
		if g != want {
			panic(fmt.Sprintf("kernels: %s: length %d, want %d", op, g, want))
		}
	}
}

// Dot returns sum_i a[i]*b[i]; len(a) must equal len(b).
func Dot(a, b []float32) float32 {
	mustLen("dot", len(a), len(b))
	return impl.dot(a, b)
}

// DotRows computes dst[i] = rows[i] · x for the len(dst) rows stored one
// after another in rows (len(rows) = len(dst)*len(x)): attention's scores of
// one query against a run of cached keys.
func DotRows(dst, rows, x []float32) {
	mustLen("dotrows", len(dst)*len(x), len(rows))
	impl.dotRows(dst, rows, x)
}

// AxpyRows computes y += sum_i alpha[i]*rows[i] for the len(alpha) rows
// stored one after another in rows (len(rows) = len(alpha)*len(y)):
// attention's weighted sum of a run of cached values.
func AxpyRows(y, alpha, rows []float32) {
	mustLen("axpyrows", len(alpha)*len(y), len(rows))
	impl.axpyRows(y, alpha, rows)
}

// DotRowsF16 is DotRows over rows of f16 bit patterns (an f16 KV cache).
func DotRowsF16(dst []float32, rows []uint16, x []float32) {
	mustLen("dotrowsf16", len(dst)*len(x), len(rows))
	impl.dotRowsF16(dst, rows, x)
}

// AxpyRowsF16 is AxpyRows over rows of f16 bit patterns (an f16 KV cache).
func AxpyRowsF16(y, alpha []float32, rows []uint16) {
	mustLen("axpyrowsf16", len(alpha)*len(y), len(rows))
	impl.axpyRowsF16(y, alpha, rows)
}

// ToF16 rounds src to the nearest f16 values (ties to even; beyond the
// range to ±Inf) and stores their bit patterns in dst.
func ToF16(dst []uint16, src []float32) {
	mustLen("tof16", len(src), len(dst))
	impl.toF16(dst, src)
}

// Scale computes x[i] *= alpha.
func Scale(alpha float32, x []float32) { impl.scale(alpha, x) }

// Add computes dst[i] += x[i] (residual connections).
func Add(dst, x []float32) {
	mustLen("add", len(dst), len(x))
	impl.axpy(1, x, dst)
}

// RMSNorm writes Gemma's RMS norm of x into dst:
// dst[i] = x[i] / sqrt(mean(x^2) + eps) * (1 + w[i]). dst may alias x.
func RMSNorm(dst, x, w []float32, eps float32) {
	mustLen("rmsnorm", len(x), len(dst), len(w))
	ss := impl.dot(x, x)
	inv := float32(1 / math.Sqrt(float64(ss/float32(len(x))+eps)))
	impl.mulScaleOnePlus(dst, x, w, inv)
}

// Softmax replaces x with softmax(x) (max-subtracted, so any finite input is safe).
func Softmax(x []float32) {
	if len(x) == 0 {
		return
	}
	m := impl.max(x)
	s := impl.expSub(x, m)
	impl.scale(1/s, x)
}

// GELUMul computes Gemma's gated MLP activation in place:
// gate[i] = gelu(gate[i]) * up[i] with the tanh approximation
// gelu(x) = 0.5*x*(1 + tanh(sqrt(2/pi)*(x + 0.044715*x^3))).
func GELUMul(gate, up []float32) {
	mustLen("gelumul", len(gate), len(up))
	impl.geluMul(gate, gate, up)
}

// RoPE rotates one head (len 2*len(cos)) by the rotate-half convention used by
// Gemma (and Hugging Face): with h = len(x)/2, for i < h,
// (x[i], x[i+h]) = (x[i]*cos[i] - x[i+h]*sin[i], x[i+h]*cos[i] + x[i]*sin[i]).
// cos and sin hold the position's angles, len(x)/2 values each.
func RoPE(x, cos, sin []float32) {
	mustLen("rope", len(x), 2*len(cos), 2*len(sin))
	impl.rope(x, cos, sin)
}

// SoftCap applies Gemma 2's logit soft-capping in place:
// x[i] = cap * tanh(x[i] / cap).
func SoftCap(x []float32, cap float32) { impl.softCap(x, cap) }

// ---- generic reference implementations ----

func dotGeneric(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func axpyGeneric(alpha float32, x, y []float32) {
	x = x[:len(y)]
	for i := range y {
		y[i] += alpha * x[i]
	}
}

// dotRowsGeneric and axpyRowsGeneric are DotRows and AxpyRows one row at a
// time; dotRowsEach and axpyRowsEach do the same with a tier's own Dot and
// Axpy.
func dotRowsGeneric(dst, rows, x []float32)    { dotRowsEach(dotGeneric, dst, rows, x) }
func axpyRowsGeneric(y, alpha, rows []float32) { axpyRowsEach(axpyGeneric, y, alpha, rows) }

// f16 rows: the reference widens each value exactly and multiplies in f32.
func dotRowsF16Generic(dst []float32, rows []uint16, x []float32) {
	n := len(x)
	for i := range dst {
		dst[i] = dotRowFloatGeneric(F16, f16Bytes(rows[i*n:(i+1)*n]), x)
	}
}

func axpyRowsF16Generic(y, alpha []float32, rows []uint16) {
	n := len(y)
	for i, a := range alpha {
		axpyF16Generic(a, rows[i*n:(i+1)*n], y)
	}
}

func axpyF16Generic(alpha float32, x []uint16, y []float32) {
	for i, h := range x {
		y[i] += alpha * float16.Frombits(h).Float32()
	}
}

func toF16Generic(dst []uint16, src []float32) {
	for i, v := range src {
		dst[i] = float16.Fromfloat32(v).Bits()
	}
}

// f16Bytes views f16 bit patterns as the little-endian bytes the F16 row
// kernels read (every supported GOARCH is little-endian).
func f16Bytes(h []uint16) []byte {
	if len(h) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&h[0])), 2*len(h))
}

func dotRowsEach(dot func(a, b []float32) float32, dst, rows, x []float32) {
	n := len(x)
	for i := range dst {
		dst[i] = dot(rows[i*n:(i+1)*n], x)
	}
}

func axpyRowsEach(axpy func(alpha float32, x, y []float32), y, alpha, rows []float32) {
	n := len(y)
	for i, a := range alpha {
		axpy(a, rows[i*n:(i+1)*n], y)
	}
}

func scaleGeneric(alpha float32, x []float32) {
	for i := range x {
		x[i] *= alpha
	}
}

// mulScaleOnePlusGeneric: dst[i] = x[i]*s*(1+w[i]).
func mulScaleOnePlusGeneric(dst, x, w []float32, s float32) {
	x, w = x[:len(dst)], w[:len(dst)]
	for i := range dst {
		dst[i] = x[i] * s * (1 + w[i])
	}
}

func maxGeneric(x []float32) float32 {
	m := x[0]
	for _, v := range x[1:] {
		m = max(m, v)
	}
	return m
}

// expSubGeneric: x[i] = exp(x[i]-m), returns the sum.
func expSubGeneric(x []float32, m float32) float32 {
	var s float32
	for i, v := range x {
		e := expNeg(v - m)
		x[i] = e
		s += e
	}
	return s
}

// Constants of the exp/expm1 approximations shared by every tier.
const (
	ln2Hi   = 0.693145751953125 // ln 2 split in two (Cody-Waite) so k*ln2Hi is exact
	ln2Lo   = 1.42860682030941723212e-6
	invLn2  = 1.44269504088896340736
	expLo   = -87.0 // exp of anything below underflows to 0 in f32
	tanhMax = 9.0   // tanh(9) rounds to 1 in f32
)

// expm1Poly is expm1(r) for |r| <= ln2/2 by its Taylor series to r^8
// (truncation error < 6e-9 relative), in Horner form.
func expm1Poly(r float32) float32 {
	p := float32(1.0 / 40320)
	p = p*r + 1.0/5040
	p = p*r + 1.0/720
	p = p*r + 1.0/120
	p = p*r + 1.0/24
	p = p*r + 1.0/6
	p = p*r + 0.5
	return r + r*r*p
}

// reduce splits y (in [-87, 0]) as k*ln2 + r with |r| <= ln2/2 and returns
// 2^k and r.
func reduce(y float32) (two, r float32) {
	k := float32(math.Round(float64(y * invLn2)))
	r = (y - k*ln2Hi) - k*ln2Lo
	return math.Float32frombits(uint32(int32(k)+127) << 23), r
}

// expm1Neg returns exp(y)-1 for y <= 0 with small relative error, even for
// tiny |y| (where k = 0 and the result is the polynomial itself).
func expm1Neg(y float32) float32 {
	two, r := reduce(max(y, expLo))
	return two*expm1Poly(r) + (two - 1)
}

// expNeg returns exp(y) = 2^k * (1 + expm1(r)) for y <= 0 (0 below -87).
func expNeg(y float32) float32 {
	if y < expLo {
		return 0
	}
	two, r := reduce(y)
	return two * (expm1Poly(r) + 1)
}

// tanhGeneric computes tanh(x) = -expm1(-2|x|)/(2 + expm1(-2|x|)) with the sign of x.
func tanhGeneric(x float32) float32 {
	a := min(abs32(x), tanhMax)
	e := expm1Neg(-2 * a)
	t := -e / (2 + e)
	return math.Float32frombits(math.Float32bits(t) | math.Float32bits(x)&(1<<31))
}

// geluMulGeneric: dst[i] = gelu(x[i]) * up[i] (up nil: just gelu).
func geluMulGeneric(dst, x, up []float32) {
	const c0 = 0.7978845608028654 // sqrt(2/pi)
	const c1 = 0.044715
	for i, v := range x[:len(dst)] {
		g := 0.5 * v * (1 + tanhGeneric(c0*(v+c1*v*v*v)))
		if up != nil {
			g *= up[i]
		}
		dst[i] = g
	}
}

func softCapGeneric(x []float32, cap float32) {
	for i, v := range x {
		x[i] = cap * tanhGeneric(v/cap)
	}
}

func ropeGeneric(x, cos, sin []float32) { ropePairs(x, cos, sin, 0) }

// ropePairs rotates pairs from..h-1 (h = len(x)/2): the reference, and the
// tail of the SIMD tiers.
func ropePairs(x, cos, sin []float32, from int) {
	h := len(x) / 2
	for i := from; i < h; i++ {
		x0, x1 := x[i], x[i+h]
		x[i] = x0*cos[i] - x1*sin[i]
		x[i+h] = x1*cos[i] + x0*sin[i]
	}
}
