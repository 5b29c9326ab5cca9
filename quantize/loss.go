package quantize

import (
	"fmt"
	"math"
)

// RelError is the exact proxy loss ||W - Q(W·M)·M^-1||_F / ||W||_F of a
// quantized matrix q (t nil: no transform), computed in float64.
func RelError(w []float32, q *Quantized, t *Transform) (float64, error) {
	if len(w) != q.Rows*q.Cols {
		return 0, fmt.Errorf("quantize: relerror: %d weights for a %dx%d matrix", len(w), q.Rows, q.Cols)
	}
	if t != nil && t.Blocks()*t.Block != q.Cols {
		return 0, fmt.Errorf("quantize: relerror: transform covers %d of %d columns", t.Blocks()*t.Block, q.Cols)
	}
	rec := reconstruct(q, t)
	var num, den float64
	for i, v := range w {
		d := float64(v) - float64(rec[i])
		num += d * d
		den += float64(v) * float64(v)
	}
	if den == 0 {
		return math.Sqrt(num), nil
	}
	return math.Sqrt(num / den), nil
}

// reconstruct returns the effective weights Q(W·M)·M^-1 the runtime computes
// with, row-major (t nil means identity).
func reconstruct(q *Quantized, t *Transform) []float32 {
	deq := q.Dequantize()
	if t == nil {
		return deq
	}
	out := make([]float32, len(deq))
	b := t.Block
	parallelFor(t.Blocks(), func(kb int) {
		gemm32(out[kb*b:], q.Cols, deq[kb*b:], q.Cols, q.Rows, b, t.Inv[kb*b*b:(kb+1)*b*b], b)
	})
	return out
}

// smoothRange returns the smoothed range of v at inverse temperature t and
// writes dR/dv into d.
func smoothRange(v []float32, d []float32, t float64, asym bool) float64 {
	hi, lo := v[0], v[0]
	for _, x := range v {
		hi = max(hi, x)
		lo = min(lo, x)
	}
	if asym {
		// smax = max + log(sum exp(t(v-max)))/t; smin likewise with -v.
		var zp, zm float64
		for _, x := range v {
			zp += math.Exp(t * float64(x-hi))
			zm += math.Exp(-t * float64(x-lo))
		}
		for i, x := range v {
			d[i] = float32(math.Exp(t*float64(x-hi))/zp - math.Exp(-t*float64(x-lo))/zm)
		}
		return float64(hi-lo) + (math.Log(zp)+math.Log(zm))/t
	}
	a := math.Max(float64(hi), -float64(lo))
	var z float64
	for _, x := range v {
		z += math.Exp(t*(float64(x)-a)) + math.Exp(t*(-float64(x)-a))
	}
	for i, x := range v {
		d[i] = float32((math.Exp(t*(float64(x)-a)) - math.Exp(t*(-float64(x)-a))) / z)
	}
	return a + math.Log(z)/t
}

// rowTemp is tau / rms(x), the LogSumExp sharpness for a row of that scale:
// the smoothing follows the row's own scale, so tau is a property of the
// shape of a group, not of its magnitude.
func rowTemp(x []float32, tau float64) float64 {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	if ss == 0 {
		return 1
	}
	return tau / math.Sqrt(ss/float64(len(x)))
}
