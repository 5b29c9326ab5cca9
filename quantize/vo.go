package quantize

import (
	"fmt"
	"math"
	"time"

	"github.com/cafeq/cafeq/kernels"

	"gonum.org/v1/gonum/mat"
)

// VOResult is a quantized V/O pair with the coupled transforms folded in:
// V stores Q(M_h^-1 · V_h) for each KV head h and O stores Q(O_q · M_h) for
// each query head q of h's group. The runtime uses them as plain weights.
type VOResult struct {
	V, O *Quantized
	// M holds the folded transform of each KV head (headDim x headDim,
	// row-major, one after another), for inspection; nil when every head
	// kept the identity.
	M      []float32
	Report []Entry // v then o; RelErr and RTNRelErr are the paired error
}

// QuantizeVO quantizes v_proj [kvHeads*headDim, d] and o_proj
// [d, heads*headDim] (PyTorch layouts) together. The reported RelErr of both
// entries is the paired product error
//
//	sqrt( sum_h sum_q ||O_q V_h - Q(O_q M_h) Q(M_h^-1 V_h)||_F^2 / sum_h sum_q ||O_q V_h||_F^2 )
//
// and RTNRelErr the same for plain RTN of both. With Method "hadamard" each
// M_h is a random-sign Hadamard; with "cafeq" it is learned (identity and
// Hadamard starts, best exact iterate) and, with Options.Rounding, refined by
// alternating rounding. Never worse than RTN per head for "cafeq".
func QuantizeVO(v, o Matrix, heads, kvHeads, headDim int, opt Options) (*VOResult, error) {
	start := time.Now()
	opt = opt.withDefaults()
	if heads <= 0 || kvHeads <= 0 || headDim <= 0 || heads%kvHeads != 0 {
		return nil, fmt.Errorf("quantize: vo: %d heads, %d kv heads, head_dim %d", heads, kvHeads, headDim)
	}
	d := v.Cols
	if v.Rows != kvHeads*headDim || o.Cols != heads*headDim || o.Rows != d {
		return nil, fmt.Errorf("quantize: vo: v %dx%d and o %dx%d do not match %d heads, %d kv heads, head_dim %d",
			v.Rows, v.Cols, o.Rows, o.Cols, heads, kvHeads, headDim)
	}
	for _, m := range []Matrix{v, o} {
		if err := checkMatrix(m.Data, m.Rows, m.Cols); err != nil {
			return nil, fmt.Errorf("quantize: %q: %w", m.Name, err)
		}
	}
	if err := opt.Grid.Validate(d); err != nil {
		return nil, err
	}
	if err := opt.Grid.Validate(headDim); err != nil {
		return nil, fmt.Errorf("quantize: vo: o_proj groups must not straddle heads: %w", err)
	}
	if opt.Method != MethodRTN && opt.Method != MethodHadamard && opt.Method != MethodCafeQ {
		return nil, fmt.Errorf("quantize: unknown method %q", opt.Method)
	}
	if opt.Method == MethodHadamard && headDim&(headDim-1) != 0 {
		return nil, fmt.Errorf("quantize: vo: hadamard needs a power-of-two head_dim, got %d", headDim)
	}
	g, hd, rep := opt.Grid, headDim, heads/kvHeads
	p := opt.learnParams()

	type headOut struct {
		c           *voCand
		m           *mat.Dense
		norm, rtn   float64
		err         error
		nonIdentity bool
	}
	outs := make([]headOut, kvHeads)
	parallelFor(kvHeads, func(h int) {
		head := &voHead{hd: hd, d: d, b: v.Data[h*hd*d : (h+1)*hd*d]}
		for q := h * rep; q < (h+1)*rep; q++ {
			a := make([]float32, d*hd)
			for r := range d {
				copy(a[r*hd:(r+1)*hd], o.Data[r*o.Cols+q*hd:r*o.Cols+(q+1)*hd])
			}
			head.a = append(head.a, a)
		}
		xa := make([]float32, 0, rep*d*hd)
		for _, a := range head.a {
			xa = append(xa, a...)
		}
		ex := newVOExact(dense64(rep*d, hd, xa), dense64(hd, d, head.b))
		eye := mat.NewDense(hd, hd, nil)
		for i := range hd {
			eye.Set(i, i, 1)
		}
		base, _, _, err := quantizePair(head, g, eye, ex)
		if err != nil {
			outs[h].err = err
			return
		}
		m := eye
		switch opt.Method {
		case MethodHadamard:
			m = mat.NewDense(hd, hd, hadamardBlock(hd, rngFor(opt.Seed, uint64(h))))
		case MethodCafeQ:
			m = learnVO(head, ex, p, opt.VOSteps, opt.Seed+uint64(h))
		}
		c, x, y, err := quantizePair(head, g, m, ex)
		if err != nil {
			outs[h].err = err
			return
		}
		if opt.Method == MethodCafeQ && opt.Rounding {
			c = alternate(x, y, c, g, opt.RoundingIters, !opt.PlainRounding, ex)
		}
		if opt.Refine != 0 {
			c = refinePair(c, x, y, g, opt.Refine, ex)
		}
		if opt.Method == MethodCafeQ && c.err >= base.err {
			c, m = base, eye
		}
		outs[h] = headOut{c: c, m: m, norm: ex.norm, rtn: base.err, nonIdentity: m != eye}
	})

	res := &VOResult{V: newQuantized(g, v.Rows, v.Cols), O: newQuantized(g, o.Rows, o.Cols)}
	var num, den, rtn float64
	anyM := false
	for h, out := range outs {
		if out.err != nil {
			return nil, fmt.Errorf("quantize: vo head %d: %w", h, out.err)
		}
		num += out.c.err
		den += out.norm
		rtn += out.rtn
		anyM = anyM || out.nonIdentity
		// V rows of head h.
		qb := out.c.qb
		copy(res.V.Levels[h*hd*d:(h+1)*hd*d], qb.Levels)
		ng := d / g.Group
		copy(res.V.Scales[h*hd*ng:(h+1)*hd*ng], qb.Scales)
		if g.Asym {
			copy(res.V.Mins[h*hd*ng:(h+1)*hd*ng], qb.Mins)
		}
		if g.Super {
			ns := d / kernels.SuperBlock
			copy(res.V.Supers[h*hd*ns:(h+1)*hd*ns], qb.Supers)
			if g.Asym {
				copy(res.V.SuperMins[h*hd*ns:(h+1)*hd*ns], qb.SuperMins)
			}
		}
		// O columns of each query head in the group.
		for k, qa := range out.c.qa {
			q := h*rep + k
			gpr, hg := o.Cols/g.Group, hd/g.Group
			for r := range d {
				copy(res.O.Levels[r*o.Cols+q*hd:r*o.Cols+(q+1)*hd], qa.RowLevels(r))
				copy(res.O.Scales[r*gpr+q*hg:r*gpr+(q+1)*hg], qa.RowScales(r))
				if g.Asym {
					copy(res.O.Mins[r*gpr+q*hg:r*gpr+(q+1)*hg], qa.RowMins(r))
				}
				if g.Super {
					ns := hd / kernels.SuperBlock
					copy(res.O.RowSupers(r)[q*ns:(q+1)*ns], qa.RowSupers(r))
					if g.Asym {
						copy(res.O.RowSuperMins(r)[q*ns:(q+1)*ns], qa.RowSuperMins(r))
					}
				}
			}
		}
	}
	if anyM {
		for _, out := range outs {
			res.M = append(res.M, toDense32(out.m)...)
		}
	}
	rel, relRTN := 0.0, 0.0
	if den > 0 {
		rel, relRTN = math.Sqrt(num/den), math.Sqrt(rtn/den)
	}
	sec := time.Since(start).Seconds() / 2
	for _, m := range []Matrix{v, o} {
		res.Report = append(res.Report, Entry{Name: m.Name, Method: opt.Method, Grid: g.String(),
			RelErr: rel, RTNRelErr: relRTN, Seconds: sec})
	}
	return res, nil
}

// refinePair applies the per-group refinements to both halves of a
// candidate (in their own, transformed, space) and keeps the result only if
// the exact paired error drops.
func refinePair(c *voCand, x, y *mat.Dense, g Grid, flags Refine, ex *voExact) *voCand {
	d, hd := c.qa[0].Rows, c.qa[0].Cols
	r := &voCand{}
	xr := x.RawMatrix().Data
	for q, qa := range c.qa {
		n := clone(qa)
		refineRows(n, to32(xr[q*d*hd:(q+1)*d*hd]), nil, flags)
		r.qa = append(r.qa, n)
	}
	r.qb = clone(c.qb)
	refineRows(r.qb, to32(y.RawMatrix().Data), nil, flags)
	r.err = ex.err(x, y, stackDeq(r.qa), dense64(hd, d, r.qb.Dequantize()))
	if r.err < c.err {
		return r
	}
	return c
}

// foldVO applies per-KV-head transforms m (headDim x headDim blocks,
// row-major) to unquantized weights: V_h -> M_h^-1 V_h and
// O_q -> O_q M_h. It is the float reference of what QuantizeVO stores.
func foldVO(v, o []float32, d, heads, kvHeads, hd int, m []float32) (vf, of []float32, err error) {
	rep := heads / kvHeads
	vf = make([]float32, len(v))
	of = make([]float32, len(o))
	oc := heads * hd
	for h := range kvHeads {
		mh := dense64(hd, hd, m[h*hd*hd:(h+1)*hd*hd])
		inv, err := invert(mh)
		if err != nil {
			return nil, nil, fmt.Errorf("quantize: fold head %d: %w", h, err)
		}
		gemm32(vf[h*hd*d:], d, toDense32(inv), hd, hd, hd, v[h*hd*d:(h+1)*hd*d], d)
		m32 := toDense32(mh)
		for q := h * rep; q < (h+1)*rep; q++ {
			gemm32(of[q*hd:], oc, o[q*hd:], oc, d, hd, m32, hd)
		}
	}
	return vf, of, nil
}
