package quantize

import (
	"fmt"
	"math"
	"time"

	"github.com/cafeq/cafeq/kernels"
)

// Matrix is a row-major float32 weight W[Rows][Cols] (PyTorch out x in).
type Matrix struct {
	Name       string
	Rows, Cols int
	Data       []float32
}

// Entry is one tensor's line of the quantization report.
type Entry struct {
	Name      string  `json:"name"`
	Method    Method  `json:"method"`
	Grid      string  `json:"grid"`        // format name, e.g. q4_g32_asym
	RelErr    float64 `json:"rel_err"`     // exact ||W - Q(W·M)·M^-1||_F / ||W||_F (V/O: see QuantizeVO)
	RTNRelErr float64 `json:"rtn_rel_err"` // the same for plain RTN on this grid
	// InputCovRatio, when set, is the input-covariance-weighted error of
	// the stored GPTQ-style rounding over the plain rounding's (below 1;
	// see inputcov.go); RelErr is then that rounding's, usually higher.
	InputCovRatio float64 `json:"input_cov_ratio,omitempty"`
	Seconds       float64 `json:"seconds"` // wall time attributed to the tensor (shared work split evenly)
}

// Result is the output for matrices that share one input: one Quantized per
// input matrix, in order, all stored as Q(W·M), and the transform whose
// inverse the runtime applies to the shared activation (nil: identity).
type Result struct {
	Q         []*Quantized
	Transform *Transform
	// Diag (Options.Diag) is the diagonal D folded into every Q: they store
	// Q(W·D·M), so the input must reach them as D^-1 x. The caller folds
	// D^-1 into whatever makes the input (see learnDiag); nil: D = I.
	Diag   []float32
	Report []Entry
}

// QuantizeMatrix quantizes one matrix with opt.
func QuantizeMatrix(m Matrix, opt Options) (*Result, error) {
	return QuantizeShared([]Matrix{m}, opt)
}

// QuantizeShared quantizes matrices that read the same input (same Cols),
// e.g. gate/up or q/k/v, with one shared transform whose objective is the sum
// of the matrices' relative squared errors.
func QuantizeShared(ms []Matrix, opt Options) (res *Result, err error) {
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
	grids := opt.Grids
	if grids == nil {
		for range ms {
			grids = append(grids, opt.Grid)
		}
	}
	if len(grids) != len(ms) {
		return nil, fmt.Errorf("quantize: %d grids for %d matrices", len(grids), len(ms))
	}
	for i, g := range grids {
		if err := g.Validate(cols); err != nil {
			return nil, fmt.Errorf("quantize: %q: %w", ms[i].Name, err)
		}
		if t := opt.Block; opt.Method != MethodRTN && !opt.NoBlock && t%g.Group != 0 {
			return nil, fmt.Errorf("quantize: %q: group %d does not divide transform block %d", ms[i].Name, g.Group, t)
		}
	}

	// The diagonal comes first: M, when learned, acts on W·D. Errors stay
	// relative to the original W (srcs keep their weights).
	var diag, inv []float32
	if opt.Diag && opt.Method == MethodCafeQ {
		diag = learnDiag(srcs, opt.Grid)
		inv = make([]float32, cols)
		for j, d := range diag {
			inv[j] = 1 / d
		}
		orig := ms
		ms = make([]Matrix, len(orig))
		for i, m := range orig {
			ms[i] = Matrix{Name: m.Name, Rows: m.Rows, Cols: m.Cols, Data: scaleCols(m.Data, m.Rows, m.Cols, diag)}
			srcs[i].w = ms[i].Data
		}
		defer func() {
			// Plain RTN is measured on the original weights.
			for i, m := range orig {
				if q, err := RTN(grids[i], m.Data, m.Rows, m.Cols); err == nil && res != nil {
					var e float64
					for _, v := range plainBlockErr(m.Data, q, grids[i].Group, nil) {
						e += v
					}
					res.Report[i].RTNRelErr = math.Sqrt(e * srcs[i].wt)
				}
			}
		}()
	}

	var t *Transform
	switch opt.Method {
	case MethodHadamard:
		var err error
		if t, err = newHadamard(cols, opt.Block, opt.Seed); err != nil {
			return nil, err
		}
	case MethodCafeQ:
		if !opt.NoBlock {
			t = learnTransform(srcs, opt.Block, opt.learnParams())
		}
	}
	if t != nil && opt.InvFormat.Type != kernels.TypeInvalid {
		if err := roundInv(t, opt.InvFormat); err != nil {
			return nil, err
		}
	}

	res, err = chooseBlocks(ms, srcs, grids, t, inv, opt.Refine, opt.Method == MethodCafeQ)
	if err != nil {
		return nil, err
	}
	res.Diag = diag
	sec := time.Since(start).Seconds() / float64(len(ms))
	for i := range res.Report {
		res.Report[i].Method = opt.Method
		res.Report[i].Seconds = sec
	}
	return res, nil
}
