package quantize

import (
	"fmt"
	"math"
	"time"

	"github.com/cafeq/cafeq/kernels"
)

// Method names a quantization method.
type Method string

const (
	// MethodRTN is plain min-max round to nearest (the paper's "Uniform").
	MethodRTN Method = "rtn"
	// MethodHadamard rotates the input axis by a random-sign block Hadamard.
	MethodHadamard Method = "hadamard"
	// MethodCafeQ learns invertible block-diagonal transforms (and, for
	// V/O pairs, coupled transforms and alternating rounding).
	MethodCafeQ Method = "cafeq"
)

// Options configures a quantization. Zero fields take the defaults below.
type Options struct {
	Method Method
	Grid   Grid
	// Block is the transform block on the input axis (hadamard: a power of
	// two; cafeq: 32..256, a multiple of Grid.Group); it must divide the
	// columns. Default 256.
	Block int
	// Steps is the Adam budget per starting point and block (cafeq).
	// Default DefaultSteps; the time is roughly linear in it.
	Steps int
	// LR is Adam's step on the entries of M. Default 1e-2.
	LR float64
	// Temp is the LogSumExp sharpness, relative to each row's RMS. Default 8.
	Temp float64
	// BatchRows is the number of rows sampled per Adam step (default 256);
	// EvalRows the rows on which iterates are scored exactly (default 1024).
	BatchRows, EvalRows int
	// NoHadamardStart skips the random-sign Hadamard start (cafeq).
	NoHadamardStart bool
	// AllStarts runs Adam from both starts (identity and Hadamard) instead
	// of only from the one with the lower exact error; twice the time.
	AllStarts bool
	// Refine enables per-group scale/min refinement (any method).
	Refine Refine
	// Rounding enables data-free alternating rounding of V/O pairs (cafeq),
	// with RoundingIters swaps (default 2). Each least-squares solution is
	// rounded GPTQ-style, with the partner's Gram matrix as the Hessian,
	// unless PlainRounding asks for round to nearest.
	Rounding      bool
	RoundingIters int
	PlainRounding bool
	// VOSteps is the Adam budget of each coupled V/O transform (default Steps).
	VOSteps int
	// InvFormat is the format the runtime stores M^-1 in (e.g. q8); zero
	// means float32. When set, each learned or Hadamard block's M^-1 is
	// first rounded to it and the weights are folded with the inverse of
	// the rounded matrix, so Q(W·M)·M^-1 uses exactly the stored M^-1 and
	// the reported errors are those of the stored pair. (Blocks that fall
	// back to the identity keep an exact identity; q8 stores it with a
	// float16-rounded scale, a relative change below 2^-11.)
	InvFormat kernels.Format
	Seed      uint64
}

// DefaultSteps is the default Adam budget per start and block. On the
// trained test model (q3_g64_asym, all of eval.txt, ctx 256), KL to the
// checkpoint fell from 0.0110 at 16 steps to 0.0087 at 32, 0.0077 at 64 and
// 0.0074 at 128; docs/QUANTIZATION.md has the same runs scored by
// llama.cpp. 64 costs about 1.7x the CPU time of 16 on a 2B model (see
// doc.go, Cost).
const DefaultSteps = 64

func (o Options) withDefaults() Options {
	if o.Method == "" {
		o.Method = MethodCafeQ
	}
	if o.Block == 0 {
		o.Block = 256
	}
	if o.Steps == 0 {
		o.Steps = DefaultSteps
	}
	if o.VOSteps == 0 {
		o.VOSteps = o.Steps
	}
	if o.LR == 0 {
		o.LR = 1e-2
	}
	if o.Temp == 0 {
		o.Temp = 8
	}
	if o.BatchRows == 0 {
		o.BatchRows = 256
	}
	if o.EvalRows == 0 {
		o.EvalRows = 1024
	}
	if o.RoundingIters == 0 {
		o.RoundingIters = 2
	}
	return o
}

func (o Options) validate(cols int) error {
	if err := o.Grid.Validate(cols); err != nil {
		return err
	}
	switch o.Method {
	case MethodRTN:
	case MethodHadamard:
		if o.Block&(o.Block-1) != 0 || cols%o.Block != 0 {
			return fmt.Errorf("quantize: hadamard block %d must be a power of two dividing %d columns", o.Block, cols)
		}
	case MethodCafeQ:
		if o.Block < 32 || o.Block > 256 || o.Block%o.Grid.Group != 0 || cols%o.Block != 0 {
			return fmt.Errorf("quantize: cafeq block %d must be in 32..256, a multiple of group %d and divide %d columns", o.Block, o.Grid.Group, cols)
		}
		if o.Steps < 0 || o.LR < 0 || o.Temp < 0 || o.BatchRows < 0 || o.EvalRows < 0 {
			return fmt.Errorf("quantize: negative cafeq budget")
		}
	default:
		return fmt.Errorf("quantize: unknown method %q", o.Method)
	}
	if o.InvFormat.Type != kernels.TypeInvalid && o.Method != MethodRTN {
		if err := o.InvFormat.Valid(o.Block); err != nil {
			return fmt.Errorf("quantize: transform format: %w", err)
		}
	}
	return nil
}

func (o Options) learnParams() learnParams {
	return learnParams{grid: o.Grid, steps: o.Steps, lr: o.LR, tau: o.Temp, batch: o.BatchRows,
		evalRows: o.EvalRows, evalEvery: 8, hadamard: !o.NoHadamardStart, allStarts: o.AllStarts, seed: o.Seed}
}

// Matrix is a row-major float32 weight W[Rows][Cols] (PyTorch out x in).
type Matrix struct {
	Name       string
	Rows, Cols int
	Data       []float32
}

// Entry is one tensor's line of the quantization report.
type Entry struct {
	Name      string
	Method    Method
	Grid      string
	RelErr    float64 // exact ||W - Q(W·M)·M^-1||_F / ||W||_F (V/O: see QuantizeVO)
	RTNRelErr float64 // the same for plain RTN on this grid
	Seconds   float64 // wall time attributed to the tensor (shared work split evenly)
}

// Result is the output for matrices that share one input: one Quantized per
// input matrix, in order, all stored as Q(W·M), and the transform whose
// inverse the runtime applies to the shared activation (nil: identity).
type Result struct {
	Q         []*Quantized
	Transform *Transform
	Report    []Entry
}

// QuantizeMatrix quantizes one matrix with opt.
func QuantizeMatrix(m Matrix, opt Options) (*Result, error) {
	return QuantizeShared([]Matrix{m}, opt)
}

// QuantizeShared quantizes matrices that read the same input (same Cols),
// e.g. gate/up or q/k/v, with one shared transform whose objective is the sum
// of the matrices' relative squared errors.
func QuantizeShared(ms []Matrix, opt Options) (*Result, error) {
	start := time.Now()
	opt = opt.withDefaults()
	if len(ms) == 0 {
		return nil, fmt.Errorf("quantize: no matrices")
	}
	cols := ms[0].Cols
	srcs := make([]source, len(ms))
	for i, m := range ms {
		if m.Cols != cols {
			return nil, fmt.Errorf("quantize: %q has %d columns, %q has %d: a shared transform needs one input width", m.Name, m.Cols, ms[0].Name, cols)
		}
		if err := checkMatrix(m.Data, m.Rows, m.Cols); err != nil {
			return nil, fmt.Errorf("quantize: %q: %w", m.Name, err)
		}
		var ss float64
		for _, v := range m.Data {
			ss += float64(v) * float64(v)
		}
		srcs[i] = source{w: m.Data, rows: m.Rows, cols: m.Cols, wt: 1 / math.Max(ss, 1e-30)}
	}
	if err := opt.validate(cols); err != nil {
		return nil, err
	}

	var t *Transform
	switch opt.Method {
	case MethodHadamard:
		var err error
		if t, err = newHadamard(cols, opt.Block, opt.Seed); err != nil {
			return nil, err
		}
	case MethodCafeQ:
		t = learnTransform(srcs, opt.Block, opt.learnParams())
	}
	if t != nil && opt.InvFormat.Type != kernels.TypeInvalid {
		if err := roundInv(t, opt.InvFormat); err != nil {
			return nil, err
		}
	}

	res, err := finish(ms, srcs, opt.Grid, t, opt.Refine, opt.Method == MethodCafeQ)
	if err != nil {
		return nil, err
	}
	sec := time.Since(start).Seconds() / float64(len(ms))
	for i := range res.Report {
		res.Report[i].Method = opt.Method
		res.Report[i].Seconds = sec
	}
	return res, nil
}

// plainBlockErr returns the squared error of q against x per block of b
// columns (no transform).
func plainBlockErr(x []float32, q *Quantized, b int) []float64 {
	out := make([]float64, q.Cols/b)
	row := make([]float32, q.Cols)
	for r := range q.Rows {
		q.DequantizeRow(row, r)
		for i, v := range row {
			d := float64(x[r*q.Cols+i] - v)
			out[i/b] += d * d
		}
	}
	return out
}

// finish stores each matrix as Q(W·M): RTN on W·M, then the requested
// refinements (kept per matrix and block only where the exact error drops).
// Then, per block, the transform must beat the identity (with its own
// refinements) on the exact error summed over the matrices, and no matrix
// may end above its own RTN error, else blocks
// reverts to the identity (only with fallback: the Hadamard baseline keeps
// its rotation). The report's errors are exact, over all rows.
func finish(ms []Matrix, srcs []source, g Grid, t *Transform, flags Refine, fallback bool) (*Result, error) {
	type cand struct {
		q    *Quantized
		errs []float64
	}
	// pick merges, per block, the candidate with the lower error into a.
	pick := func(a, b cand, blk int) {
		for k := range a.errs {
			if b.errs[k] < a.errs[k] {
				copyBlock(a.q, b.q, k, blk)
				a.errs[k] = b.errs[k]
			}
		}
	}
	blk := g.Group
	if t != nil {
		blk = t.Block
	}
	ids := make([]cand, len(ms))
	rtnErr := make([]float64, len(ms))
	for i, m := range ms {
		q, err := RTN(g, m.Data, m.Rows, m.Cols)
		if err != nil {
			return nil, fmt.Errorf("quantize: %q: %w", m.Name, err)
		}
		c := cand{q, plainBlockErr(m.Data, q, blk)}
		for _, e := range c.errs {
			rtnErr[i] += e
		}
		ids[i] = c
	}
	final := ids
	xs := make([][]float32, len(ms)) // what each final matrix stores (W·M)
	for i, m := range ms {
		xs[i] = m.Data
	}
	if t != nil {
		trs := make([]cand, len(ms))
		for i, m := range ms {
			x := make([]float32, len(m.Data))
			applyRight(x, m.Data, m.Rows, m.Cols, t.Block, t.m)
			q, err := RTN(g, x, m.Rows, m.Cols)
			if err != nil {
				return nil, fmt.Errorf("quantize: %q: %w", m.Name, err)
			}
			trs[i] = cand{q, blockErrors(x, q, t)}
			xs[i] = x
		}
		// Keep a block when it lowers the group's summed relative error;
		// then, while some matrix is above its own RTN error, revert the
		// kept block that hurts it most. Every matrix ends at or below RTN.
		nb := t.Blocks()
		keep := make([]bool, nb)
		for k := range nb {
			var et, ei float64
			for i := range ms {
				et += srcs[i].wt * trs[i].errs[k]
				ei += srcs[i].wt * ids[i].errs[k]
			}
			keep[k] = et < ei || !fallback
		}
		for fallback {
			worst, wk := 0.0, -1
			for i := range ms {
				var over float64
				for k := range nb {
					if keep[k] {
						over += trs[i].errs[k] - ids[i].errs[k]
					}
				}
				if over <= 0 {
					continue
				}
				for k := range nb {
					if d := trs[i].errs[k] - ids[i].errs[k]; keep[k] && d > worst {
						worst, wk = d, k
					}
				}
			}
			if wk < 0 {
				break
			}
			keep[wk] = false
		}
		allID := true
		for k := range nb {
			if keep[k] {
				allID = false
				continue
			}
			t.setIdentity(k)
			for i, m := range ms {
				copyBlock(trs[i].q, ids[i].q, k, blk)
				trs[i].errs[k] = ids[i].errs[k]
				for r := range m.Rows {
					copy(xs[i][r*m.Cols+k*blk:r*m.Cols+(k+1)*blk], m.Data[r*m.Cols+k*blk:r*m.Cols+(k+1)*blk])
				}
			}
		}
		final = trs
		if allID {
			t = nil
			final, xs = ids, nil
			for _, m := range ms {
				xs = append(xs, m.Data)
			}
		}
	}
	// Refine only the chosen candidate: it is at or below RTN already, and
	// refinement is kept per group (no transform) or per block (exact
	// error through M^-1) only where it lowers the error.
	if flags != 0 {
		for i, m := range ms {
			c := final[i]
			if t == nil {
				refineRows(c.q, xs[i], nil, flags)
				final[i].errs = plainBlockErr(m.Data, c.q, blk)
				continue
			}
			r := cand{clone(c.q), nil}
			refineRows(r.q, xs[i], invRowNorms(t), flags)
			r.errs = blockErrors(xs[i], r.q, t)
			pick(c, r, blk)
		}
	}
	res := &Result{Transform: t}
	for i, m := range ms {
		var e float64
		for _, v := range final[i].errs {
			e += v
		}
		res.Q = append(res.Q, final[i].q)
		res.Report = append(res.Report, Entry{Name: m.Name, Grid: g.String(),
			RelErr: math.Sqrt(e * srcs[i].wt), RTNRelErr: math.Sqrt(rtnErr[i] * srcs[i].wt)})
	}
	return res, nil
}

// invRowNorms returns, per input column i, ||(M^-1)_{i,:}||^2: the rounding
// error on column i of W·M reaches W as e'_i·(M^-1)_{i,:}.
func invRowNorms(t *Transform) []float64 {
	b := t.Block
	out := make([]float64, t.Blocks()*b)
	for i := range out {
		var s float64
		for _, v := range t.Inv[i*b : (i+1)*b] {
			s += float64(v) * float64(v)
		}
		out[i] = s
	}
	return out
}

func clone(q *Quantized) *Quantized {
	c := *q
	c.Levels = append([]uint8(nil), q.Levels...)
	c.Scales = append([]float32(nil), q.Scales...)
	if q.Mins != nil {
		c.Mins = append([]float32(nil), q.Mins...)
	}
	return &c
}

// copyBlock copies columns [k*b, (k+1)*b) (levels and their groups) of src
// into dst; b is a multiple of the group.
func copyBlock(dst, src *Quantized, k, b int) {
	cols, ng, gpr := dst.Cols, b/dst.Group, dst.Cols/dst.Group
	for r := range dst.Rows {
		copy(dst.Levels[r*cols+k*b:r*cols+(k+1)*b], src.Levels[r*cols+k*b:r*cols+(k+1)*b])
		gi := r*gpr + k*ng
		copy(dst.Scales[gi:gi+ng], src.Scales[gi:gi+ng])
		if dst.Mins != nil {
			copy(dst.Mins[gi:gi+ng], src.Mins[gi:gi+ng])
		}
	}
}

// blockErrors returns, per transform block, ||(X - Q)_k · M_k^-1||_F^2 where
// X = W·M is the matrix q stores.
func blockErrors(x []float32, q *Quantized, t *Transform) []float64 {
	deq := q.Dequantize()
	for i := range deq {
		deq[i] = x[i] - deq[i]
	}
	b, cols := t.Block, q.Cols
	out := make([]float64, t.Blocks())
	parallelFor(t.Blocks(), func(k int) {
		e := make([]float32, q.Rows*b)
		gemm32(e, b, deq[k*b:], cols, q.Rows, b, t.Inv[k*b*b:(k+1)*b*b], b)
		var s float64
		for _, v := range e {
			s += float64(v) * float64(v)
		}
		out[k] = s
	})
	return out
}

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
