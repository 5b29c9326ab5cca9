package quantize

import (
	"fmt"

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
	// Grid stores every matrix, unless Grids names one per matrix of a
	// QuantizeShared call; learned transforms are fitted on Grid.
	Grid  Grid
	Grids []Grid
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
	// Diag (cafeq) learns a diagonal input transform D first (see
	// learnDiag) and returns it in Result.Diag for the caller to fold into
	// the input's producer: free at run time.
	Diag bool
	// NoBlock (cafeq) learns no block-diagonal M, so the runtime applies no
	// transform: only D (with Diag), V/O coupling, refinement and rounding.
	NoBlock bool
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
		if o.Block&(o.Block-1) != 0 || cols%o.Block != 0 || (o.Grid.Super && o.Block%o.Grid.scaleBlock() != 0) {
			return fmt.Errorf("quantize: hadamard block %d must be a power of two dividing %d columns and a multiple of %d", o.Block, cols, o.Grid.scaleBlock())
		}
	case MethodCafeQ:
		if o.Block < 32 || o.Block > 256 || o.Block%o.Grid.scaleBlock() != 0 || cols%o.Block != 0 {
			return fmt.Errorf("quantize: cafeq block %d must be in 32..256, a multiple of %d (the grid's scale block) and divide %d columns", o.Block, o.Grid.scaleBlock(), cols)
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

// learnParams are the knobs of the per-block optimisation.
type learnParams struct {
	grid      Grid
	steps     int     // Adam steps per start
	lr        float64 // Adam step size on the entries of M
	tau       float64 // LogSumExp sharpness relative to the row RMS
	batch     int     // rows sampled per step
	evalRows  int     // rows used to score iterates exactly
	evalEvery int
	hadamard  bool // also start from a random-sign Hadamard block
	allStarts bool // run Adam from every start, not only the best
	seed      uint64
}

func (o Options) learnParams() learnParams {
	return learnParams{grid: o.Grid, steps: o.Steps, lr: o.LR, tau: o.Temp, batch: o.BatchRows,
		evalRows: o.EvalRows, evalEvery: 8, hadamard: !o.NoHadamardStart, allStarts: o.AllStarts, seed: o.Seed}
}
