//go:build arm64 && !purego

package kernels

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// hasGFNI: the GFNI kernels are amd64 ones.
const hasGFNI = false

// Advanced SIMD is part of the arm64 baseline; SDOT is optional (FEAT_DotProd:
// Neoverse N1/V1 and later, Apple M1 and later, Cortex-A55/A75 and later;
// not Cortex-A53/A57/A72).
var hasDotProd = cpu.ARM64.HasASIMDDP

// archSets lists the SIMD tiers this CPU supports, slowest first.
func archSets() []kernelSet {
	s := []kernelSet{neonSet}
	if hasDotProd {
		s = append(s, neonDotSet)
	}
	return s
}

// rowDot is the signature of the quantized row kernels in dot_arm64.s: one
// packed row (groups groups of cpg 32-weight chunks) against one 8-bit
// activation, returning what dotRowGeneric returns up to the order of the f32
// additions (the integer chunk sums are exact).
type rowDot func(w *byte, q *int8, d *float32, s *int32, groups, cpg uintptr) float32

// rowDot4 is the signature of the prefill kernels: one row against four
// tokens of an ActivationBatch (astride = Blocks), out[t] for t < 4.
type rowDot4 func(out *float32, w *byte, q *int8, d *float32, s *int32, astride, groups, cpg uintptr)

// rowsDot4 is the signature of the decode kernels: four rows (w, w+wstride,
// ...) against one activation, out[r] for r < 4.
type rowsDot4 func(out *float32, w *byte, wstride uintptr, q *int8, d *float32, s *int32, groups, cpg uintptr)

// formatDots is one format's kernels: 1 row x 1 token, 1 row x 4 tokens
// (prefill), 4 rows x 1 token (decode).
type formatDots struct {
	t1 rowDot
	t4 rowDot4
	r4 rowsDot4
}

// rowDots holds one tier's kernels by format. The superblock formats'
// kernels (q4k ... q5k) take a superblock as their group (groups = cols/256,
// cpg = 8) and decode its sub-scales once per block.
type rowDots struct{ q4, q4a, q3, q3a, q5, q8, q4k, q4ka, q3k, q3ka, q6k, q5k formatDots }

func (k *rowDots) lookup(f Format) *formatDots {
	switch {
	case f.Super && f.Type == Q4 && !f.Asym:
		return &k.q4k
	case f.Super && f.Type == Q4:
		return &k.q4ka
	case f.Super && f.Type == Q3 && !f.Asym:
		return &k.q3k
	case f.Super && f.Type == Q3:
		return &k.q3ka
	case f.Super && f.Type == Q6:
		return &k.q6k
	case f.Super && f.Type == Q5:
		return &k.q5k
	case f.Super:
		return nil
	case f.Type == Q4 && !f.Asym:
		return &k.q4
	case f.Type == Q4:
		return &k.q4a
	case f.Type == Q3 && !f.Asym:
		return &k.q3
	case f.Type == Q3:
		return &k.q3a
	case f.Type == Q5:
		return &k.q5
	case f.Type == Q8:
		return &k.q8
	}
	return nil
}

var neonDots = rowDots{
	q4:   formatDots{q4SymNEON, q4SymT4NEON, q4SymR4NEON},
	q4a:  formatDots{q4AsymNEON, q4AsymT4NEON, q4AsymR4NEON},
	q3:   formatDots{q3SymNEON, q3SymT4NEON, q3SymR4NEON},
	q3a:  formatDots{q3AsymNEON, q3AsymT4NEON, q3AsymR4NEON},
	q8:   formatDots{q8SymNEON, q8SymT4NEON, q8SymR4NEON},
	q4k:  formatDots{q4kSymNEON, q4kSymT4NEON, q4kSymR4NEON},
	q4ka: formatDots{q4kAsymNEON, q4kAsymT4NEON, q4kAsymR4NEON},
	q3k:  formatDots{q3kSymNEON, q3kSymT4NEON, q3kSymR4NEON},
	q3ka: formatDots{q3kAsymNEON, q3kAsymT4NEON, q3kAsymR4NEON},
	q6k:  formatDots{q6kSymNEON, q6kSymT4NEON, q6kSymR4NEON},
	q5:   formatDots{q5SymNEON, q5SymT4NEON, q5SymR4NEON},
	q5k:  formatDots{q5kSymNEON, q5kSymT4NEON, q5kSymR4NEON},
}

var sdotDots = rowDots{
	q4:   formatDots{q4SymSDOT, q4SymT4SDOT, q4SymR4SDOT},
	q4a:  formatDots{q4AsymSDOT, q4AsymT4SDOT, q4AsymR4SDOT},
	q3:   formatDots{q3SymSDOT, q3SymT4SDOT, q3SymR4SDOT},
	q3a:  formatDots{q3AsymSDOT, q3AsymT4SDOT, q3AsymR4SDOT},
	q8:   formatDots{q8SymSDOT, q8SymT4SDOT, q8SymR4SDOT},
	q4k:  formatDots{q4kSymSDOT, q4kSymT4SDOT, q4kSymR4SDOT},
	q4ka: formatDots{q4kAsymSDOT, q4kAsymT4SDOT, q4kAsymR4SDOT},
	q3k:  formatDots{q3kSymSDOT, q3kSymT4SDOT, q3kSymR4SDOT},
	q3ka: formatDots{q3kAsymSDOT, q3kAsymT4SDOT, q3kAsymR4SDOT},
	q6k:  formatDots{q6kSymSDOT, q6kSymT4SDOT, q6kSymR4SDOT},
	q5:   formatDots{q5SymSDOT, q5SymT4SDOT, q5SymR4SDOT},
	q5k:  formatDots{q5kSymSDOT, q5kSymT4SDOT, q5kSymR4SDOT},
}

var neonSet = func() kernelSet {
	s := genericSet
	s.tier = TierNEON
	s.noQ6 = true
	s.mulVec = func(m *Matrix, dst []float32, x *Activation, r0, r1 int) { mulVecNEON(&neonDots, m, dst, x, r0, r1) }
	s.mulMat = func(m *Matrix, dst []float32, xs *ActivationBatch, r0, r1 int) {
		mulMatNEON(&neonDots, m, dst, xs, r0, r1)
	}
	s.dot = dotNEON
	s.axpy = axpyNEON
	s.dotRows = func(dst, rows, x []float32) { dotRowsEach(dotNEON, dst, rows, x) }
	s.axpyRows = func(y, alpha, rows []float32) { axpyRowsEach(axpyNEON, y, alpha, rows) }
	s.dotRowsF16 = dotRowsF16NEON
	s.axpyRowsF16 = axpyRowsF16NEON
	s.quantAct = quantActNEONGo
	s.geluMul = geluMulNEON
	s.softCap = softCapNEON
	s.expSub = expSubNEON
	s.scale = scaleNEON
	s.max = maxNEON
	s.mulScaleOnePlus = mulScaleOnePlusNEON
	s.rope = ropeNEON
	return s
}()

var neonDotSet = func() kernelSet {
	s := neonSet
	s.tier = TierNEONDot
	s.mulVec = func(m *Matrix, dst []float32, x *Activation, r0, r1 int) { mulVecNEON(&sdotDots, m, dst, x, r0, r1) }
	s.mulMat = func(m *Matrix, dst []float32, xs *ActivationBatch, r0, r1 int) {
		mulMatNEON(&sdotDots, m, dst, xs, r0, r1)
	}
	return s
}()

// mulVecNEON runs the 4-row kernel of m's format over [r0, r1) and the 1-row
// kernel on the last rows; float formats take one f32 dot per row.
func mulVecNEON(k *rowDots, m *Matrix, dst []float32, x *Activation, r0, r1 int) {
	if fd := floatRowDot(m.Format.Type); fd != nil {
		for r := r0; r < r1; r++ {
			dst[r] = fd(m.row(r), x.F32)
		}
		return
	}
	fk := k.lookup(m.Format)
	if fk == nil {
		mulVecGeneric(m, dst, x, r0, r1)
		return
	}
	rb := m.Format.RowBytes(m.Cols)
	groups := uintptr(m.Cols / m.Format.Group)
	cpg := uintptr(m.Format.Group / ChunkSize)
	q, d, s := &x.Q[0], &x.D[0], &x.S[0]
	r := r0
	for ; r+4 <= r1; r += 4 {
		fk.r4(&dst[r], &m.Data[r*rb], uintptr(rb), q, d, s, groups, cpg)
	}
	for ; r < r1; r++ {
		dst[r] = fk.t1(&m.Data[r*rb], q, d, s, groups, cpg)
	}
}

// mulMatNEON walks rows in the outer loop so that a row's packed bytes stay
// in L1 while they meet every token, four tokens per kernel call (one unpack
// per four dot products).
func mulMatNEON(k *rowDots, m *Matrix, dst []float32, xs *ActivationBatch, r0, r1 int) {
	if fd := floatRowDot(m.Format.Type); fd != nil {
		for r := r0; r < r1; r++ {
			row := m.row(r)
			for t := 0; t < xs.N; t++ {
				dst[t*m.Rows+r] = fd(row, xs.F32[t*xs.Cols:(t+1)*xs.Cols])
			}
		}
		return
	}
	fk := k.lookup(m.Format)
	if xs.N == 0 || fk == nil {
		mulMatGeneric(m, dst, xs, r0, r1)
		return
	}
	rb := m.Format.RowBytes(m.Cols)
	groups := uintptr(m.Cols / m.Format.Group)
	cpg := uintptr(m.Format.Group / ChunkSize)
	nb := xs.Blocks
	var out [4]float32
	for r := r0; r < r1; r++ {
		w := &m.Data[r*rb]
		t := 0
		for ; t+4 <= xs.N; t += 4 {
			fk.t4(&out[0], w, &xs.Q[t*nb*ChunkSize], &xs.D[t*nb], &xs.S[t*nb], uintptr(nb), groups, cpg)
			for i, v := range out {
				dst[(t+i)*m.Rows+r] = v
			}
		}
		for ; t < xs.N; t++ {
			dst[t*m.Rows+r] = fk.t1(w, &xs.Q[t*nb*ChunkSize], &xs.D[t*nb], &xs.S[t*nb], groups, cpg)
		}
	}
}

// floatRowDot returns the row dot for a float format (nil for quantized
// ones). Rows are little-endian, as arm64 is; len(row) is len(x) times the
// element size. NEON loads need no alignment.
func floatRowDot(t Type) func(row []byte, x []float32) float32 {
	switch t {
	case F32:
		return dotF32Row
	case F16:
		return func(row []byte, x []float32) float32 { return dotF16NEON(&row[0], &x[0], uintptr(len(x))) }
	case BF16:
		return func(row []byte, x []float32) float32 { return dotBF16NEON(&row[0], &x[0], uintptr(len(x))) }
	}
	return nil
}

func dotF32Row(row []byte, x []float32) float32 {
	return dotF32NEON((*float32)(unsafe.Pointer(&row[0])), &x[0], uintptr(len(x)))
}

// quantActNEONGo quantizes the full 32-blocks with the kernel and a partial
// last block with the reference.
func quantActNEONGo(q []int8, d []float32, s []int32, x []float32) {
	full := min(len(x)/ChunkSize, len(d))
	if full > 0 {
		quantActNEON(&q[0], &d[0], &s[0], &x[0], uintptr(full))
	}
	if full < len(d) {
		quantizeActGeneric(q[full*ChunkSize:], d[full:], s[full:], x[full*ChunkSize:])
	}
}

// geluMulNEON runs the 4-wide kernel on the bulk and the reference on the tail.
func geluMulNEON(dst, x, up []float32) {
	n := len(dst) &^ 3
	if n > 0 {
		var u *float32
		if up != nil {
			u = &up[0]
		}
		geluMulF32NEON(&dst[0], &x[0], u, uintptr(n))
	}
	if n < len(dst) {
		var ut []float32
		if up != nil {
			ut = up[n:]
		}
		geluMulGeneric(dst[n:], x[n:], ut)
	}
}

func softCapNEON(x []float32, cap float32) {
	n := len(x) &^ 3
	if n > 0 {
		softCapF32NEON(&x[0], uintptr(n), cap)
	}
	softCapGeneric(x[n:], cap)
}

func expSubNEON(x []float32, m float32) float32 {
	n := len(x) &^ 3
	var sum float32
	if n > 0 {
		sum = expSubF32NEON(&x[0], uintptr(n), m)
	}
	return sum + expSubGeneric(x[n:], m)
}

func scaleNEON(alpha float32, x []float32) {
	if len(x) > 0 {
		scaleF32NEON(alpha, &x[0], uintptr(len(x)))
	}
}

// maxNEON: callers guarantee len(x) >= 1, like maxGeneric (which indexes x[0]).
func maxNEON(x []float32) float32 { return maxF32NEON(&x[0], uintptr(len(x))) }

func mulScaleOnePlusNEON(dst, x, w []float32, s float32) {
	if len(dst) > 0 {
		x, w = x[:len(dst)], w[:len(dst)]
		mulScaleOnePlusF32NEON(&dst[0], &x[0], &w[0], uintptr(len(dst)), s)
	}
}

// ropeNEON: RoPE has checked len(x) == 2*len(cos) == 2*len(sin).
func ropeNEON(x, cos, sin []float32) {
	if h := len(x) / 2; h > 0 {
		ropeF32NEON(&x[0], &cos[0], &sin[0], uintptr(h))
	}
}

func dotNEON(a, b []float32) float32 {
	if len(a) == 0 {
		return 0
	}
	return dotF32NEON(&a[0], &b[0], uintptr(len(a)))
}

func axpyNEON(alpha float32, x, y []float32) {
	if len(y) == 0 {
		return
	}
	axpyF32NEON(alpha, &x[0], &y[0], uintptr(len(y)))
}

// Kernels in dot_arm64.s. Each quantized one computes dotRowGeneric(f, row,
// q, d, s) for its format f (q4k...q5k: the superblock formats, f.Super).

//go:noescape
func q4SymNEON(w *byte, q *int8, d *float32, s *int32, groups, cpg uintptr) float32

//go:noescape
func q4AsymNEON(w *byte, q *int8, d *float32, s *int32, groups, cpg uintptr) float32

//go:noescape
func q3SymNEON(w *byte, q *int8, d *float32, s *int32, groups, cpg uintptr) float32

//go:noescape
func q3AsymNEON(w *byte, q *int8, d *float32, s *int32, groups, cpg uintptr) float32

//go:noescape
func q8SymNEON(w *byte, q *int8, d *float32, s *int32, groups, cpg uintptr) float32

//go:noescape
func q4SymSDOT(w *byte, q *int8, d *float32, s *int32, groups, cpg uintptr) float32

//go:noescape
func q4AsymSDOT(w *byte, q *int8, d *float32, s *int32, groups, cpg uintptr) float32

//go:noescape
func q3SymSDOT(w *byte, q *int8, d *float32, s *int32, groups, cpg uintptr) float32

//go:noescape
func q3AsymSDOT(w *byte, q *int8, d *float32, s *int32, groups, cpg uintptr) float32

//go:noescape
func q8SymSDOT(w *byte, q *int8, d *float32, s *int32, groups, cpg uintptr) float32

//go:noescape
func q4kSymNEON(w *byte, q *int8, d *float32, s *int32, groups, cpg uintptr) float32

//go:noescape
func q4kAsymNEON(w *byte, q *int8, d *float32, s *int32, groups, cpg uintptr) float32

//go:noescape
func q3kSymNEON(w *byte, q *int8, d *float32, s *int32, groups, cpg uintptr) float32

//go:noescape
func q3kAsymNEON(w *byte, q *int8, d *float32, s *int32, groups, cpg uintptr) float32

//go:noescape
func q6kSymNEON(w *byte, q *int8, d *float32, s *int32, groups, cpg uintptr) float32

//go:noescape
func q5SymNEON(w *byte, q *int8, d *float32, s *int32, groups, cpg uintptr) float32

//go:noescape
func q5kSymNEON(w *byte, q *int8, d *float32, s *int32, groups, cpg uintptr) float32

//go:noescape
func q4kSymSDOT(w *byte, q *int8, d *float32, s *int32, groups, cpg uintptr) float32

//go:noescape
func q4kAsymSDOT(w *byte, q *int8, d *float32, s *int32, groups, cpg uintptr) float32

//go:noescape
func q3kSymSDOT(w *byte, q *int8, d *float32, s *int32, groups, cpg uintptr) float32

//go:noescape
func q3kAsymSDOT(w *byte, q *int8, d *float32, s *int32, groups, cpg uintptr) float32

//go:noescape
func q6kSymSDOT(w *byte, q *int8, d *float32, s *int32, groups, cpg uintptr) float32

//go:noescape
func q5SymSDOT(w *byte, q *int8, d *float32, s *int32, groups, cpg uintptr) float32

//go:noescape
func q5kSymSDOT(w *byte, q *int8, d *float32, s *int32, groups, cpg uintptr) float32

// The prefill kernels: out[t] = dotRowGeneric(f, row, token t's q, d, s) for t < 4.

//go:noescape
func q4SymT4NEON(out *float32, w *byte, q *int8, d *float32, s *int32, astride, groups, cpg uintptr)

//go:noescape
func q4AsymT4NEON(out *float32, w *byte, q *int8, d *float32, s *int32, astride, groups, cpg uintptr)

//go:noescape
func q3SymT4NEON(out *float32, w *byte, q *int8, d *float32, s *int32, astride, groups, cpg uintptr)

//go:noescape
func q3AsymT4NEON(out *float32, w *byte, q *int8, d *float32, s *int32, astride, groups, cpg uintptr)

//go:noescape
func q8SymT4NEON(out *float32, w *byte, q *int8, d *float32, s *int32, astride, groups, cpg uintptr)

//go:noescape
func q4SymT4SDOT(out *float32, w *byte, q *int8, d *float32, s *int32, astride, groups, cpg uintptr)

//go:noescape
func q4AsymT4SDOT(out *float32, w *byte, q *int8, d *float32, s *int32, astride, groups, cpg uintptr)

//go:noescape
func q3SymT4SDOT(out *float32, w *byte, q *int8, d *float32, s *int32, astride, groups, cpg uintptr)

//go:noescape
func q3AsymT4SDOT(out *float32, w *byte, q *int8, d *float32, s *int32, astride, groups, cpg uintptr)

//go:noescape
func q8SymT4SDOT(out *float32, w *byte, q *int8, d *float32, s *int32, astride, groups, cpg uintptr)

//go:noescape
func q4kSymT4NEON(out *float32, w *byte, q *int8, d *float32, s *int32, astride, groups, cpg uintptr)

//go:noescape
func q4kAsymT4NEON(out *float32, w *byte, q *int8, d *float32, s *int32, astride, groups, cpg uintptr)

//go:noescape
func q3kSymT4NEON(out *float32, w *byte, q *int8, d *float32, s *int32, astride, groups, cpg uintptr)

//go:noescape
func q3kAsymT4NEON(out *float32, w *byte, q *int8, d *float32, s *int32, astride, groups, cpg uintptr)

//go:noescape
func q6kSymT4NEON(out *float32, w *byte, q *int8, d *float32, s *int32, astride, groups, cpg uintptr)

//go:noescape
func q5SymT4NEON(out *float32, w *byte, q *int8, d *float32, s *int32, astride, groups, cpg uintptr)

//go:noescape
func q5kSymT4NEON(out *float32, w *byte, q *int8, d *float32, s *int32, astride, groups, cpg uintptr)

//go:noescape
func q4kSymT4SDOT(out *float32, w *byte, q *int8, d *float32, s *int32, astride, groups, cpg uintptr)

//go:noescape
func q4kAsymT4SDOT(out *float32, w *byte, q *int8, d *float32, s *int32, astride, groups, cpg uintptr)

//go:noescape
func q3kSymT4SDOT(out *float32, w *byte, q *int8, d *float32, s *int32, astride, groups, cpg uintptr)

//go:noescape
func q3kAsymT4SDOT(out *float32, w *byte, q *int8, d *float32, s *int32, astride, groups, cpg uintptr)

//go:noescape
func q6kSymT4SDOT(out *float32, w *byte, q *int8, d *float32, s *int32, astride, groups, cpg uintptr)

//go:noescape
func q5SymT4SDOT(out *float32, w *byte, q *int8, d *float32, s *int32, astride, groups, cpg uintptr)

//go:noescape
func q5kSymT4SDOT(out *float32, w *byte, q *int8, d *float32, s *int32, astride, groups, cpg uintptr)

// The decode kernels: out[r] = dotRowGeneric(f, row r, q, d, s) for r < 4,
// row r starting at w + r*wstride.

//go:noescape
func q4SymR4NEON(out *float32, w *byte, wstride uintptr, q *int8, d *float32, s *int32, groups, cpg uintptr)

//go:noescape
func q4AsymR4NEON(out *float32, w *byte, wstride uintptr, q *int8, d *float32, s *int32, groups, cpg uintptr)

//go:noescape
func q3SymR4NEON(out *float32, w *byte, wstride uintptr, q *int8, d *float32, s *int32, groups, cpg uintptr)

//go:noescape
func q3AsymR4NEON(out *float32, w *byte, wstride uintptr, q *int8, d *float32, s *int32, groups, cpg uintptr)

//go:noescape
func q8SymR4NEON(out *float32, w *byte, wstride uintptr, q *int8, d *float32, s *int32, groups, cpg uintptr)

//go:noescape
func q4SymR4SDOT(out *float32, w *byte, wstride uintptr, q *int8, d *float32, s *int32, groups, cpg uintptr)

//go:noescape
func q4AsymR4SDOT(out *float32, w *byte, wstride uintptr, q *int8, d *float32, s *int32, groups, cpg uintptr)

//go:noescape
func q3SymR4SDOT(out *float32, w *byte, wstride uintptr, q *int8, d *float32, s *int32, groups, cpg uintptr)

//go:noescape
func q3AsymR4SDOT(out *float32, w *byte, wstride uintptr, q *int8, d *float32, s *int32, groups, cpg uintptr)

//go:noescape
func q8SymR4SDOT(out *float32, w *byte, wstride uintptr, q *int8, d *float32, s *int32, groups, cpg uintptr)

//go:noescape
func q4kSymR4NEON(out *float32, w *byte, wstride uintptr, q *int8, d *float32, s *int32, groups, cpg uintptr)

//go:noescape
func q4kAsymR4NEON(out *float32, w *byte, wstride uintptr, q *int8, d *float32, s *int32, groups, cpg uintptr)

//go:noescape
func q3kSymR4NEON(out *float32, w *byte, wstride uintptr, q *int8, d *float32, s *int32, groups, cpg uintptr)

//go:noescape
func q3kAsymR4NEON(out *float32, w *byte, wstride uintptr, q *int8, d *float32, s *int32, groups, cpg uintptr)

//go:noescape
func q6kSymR4NEON(out *float32, w *byte, wstride uintptr, q *int8, d *float32, s *int32, groups, cpg uintptr)

//go:noescape
func q5SymR4NEON(out *float32, w *byte, wstride uintptr, q *int8, d *float32, s *int32, groups, cpg uintptr)

//go:noescape
func q5kSymR4NEON(out *float32, w *byte, wstride uintptr, q *int8, d *float32, s *int32, groups, cpg uintptr)

//go:noescape
func q4kSymR4SDOT(out *float32, w *byte, wstride uintptr, q *int8, d *float32, s *int32, groups, cpg uintptr)

//go:noescape
func q4kAsymR4SDOT(out *float32, w *byte, wstride uintptr, q *int8, d *float32, s *int32, groups, cpg uintptr)

//go:noescape
func q3kSymR4SDOT(out *float32, w *byte, wstride uintptr, q *int8, d *float32, s *int32, groups, cpg uintptr)

//go:noescape
func q3kAsymR4SDOT(out *float32, w *byte, wstride uintptr, q *int8, d *float32, s *int32, groups, cpg uintptr)

//go:noescape
func q6kSymR4SDOT(out *float32, w *byte, wstride uintptr, q *int8, d *float32, s *int32, groups, cpg uintptr)

//go:noescape
func q5SymR4SDOT(out *float32, w *byte, wstride uintptr, q *int8, d *float32, s *int32, groups, cpg uintptr)

//go:noescape
func q5kSymR4SDOT(out *float32, w *byte, wstride uintptr, q *int8, d *float32, s *int32, groups, cpg uintptr)

// quantActNEON quantizes nb full blocks of 32 values of x into q, d and s
// (quantizeActGeneric, bit-identical).
//
//go:noescape
func quantActNEON(q *int8, d *float32, s *int32, x *float32, nb uintptr)

// geluMulF32NEON computes dst[i] = gelu(x[i]) * up[i] (up may be nil: gelu
// only) for i < n, n a multiple of 4 (geluMulGeneric up to rounding).
//
//go:noescape
func geluMulF32NEON(dst, x, up *float32, n uintptr)

// softCapF32NEON computes x[i] = cap*tanh(x[i]/cap) for i < n, n a multiple
// of 4 (softCapGeneric up to rounding).
//
//go:noescape
func softCapF32NEON(x *float32, n uintptr, cap float32)

// expSubF32NEON computes x[i] = exp(x[i]-m) for i < n, n a multiple of 4, and
// returns their sum (expSubGeneric up to rounding).
//
//go:noescape
func expSubF32NEON(x *float32, n uintptr, m float32) float32

// dotRowsF16NEON is DotRowsF16 with the F16 row kernel, one row at a time.
func dotRowsF16NEON(dst []float32, rows []uint16, x []float32) {
	n := len(x)
	if n == 0 {
		clear(dst)
		return
	}
	for i := range dst {
		dst[i] = dotF16NEON(&f16Bytes(rows[i*n : (i+1)*n])[0], &x[0], uintptr(n))
	}
}

// axpyRowsF16NEON is AxpyRowsF16 with the NEON f16 axpy, one row at a time.
func axpyRowsF16NEON(y, alpha []float32, rows []uint16) {
	n := len(y)
	if n == 0 {
		return
	}
	for i, a := range alpha {
		axpyF16NEON(a, &rows[i*n], &y[0], uintptr(n))
	}
}

// axpyF16NEON computes y[i] += alpha*f32(x[i]) for i < n, x f16
// (axpyF16Generic up to rounding).
//
//go:noescape
func axpyF16NEON(alpha float32, x *uint16, y *float32, n uintptr)

// dotF16NEON and dotBF16NEON return the dot of n little-endian f16 (bf16)
// values at w with x (dotRowFloatGeneric up to the order of additions).
//
//go:noescape
func dotF16NEON(w *byte, x *float32, n uintptr) float32

//go:noescape
func dotBF16NEON(w *byte, x *float32, n uintptr) float32

// scaleF32NEON computes x[i] *= alpha for i < n (scaleGeneric).
//
//go:noescape
func scaleF32NEON(alpha float32, x *float32, n uintptr)

// maxF32NEON returns the largest of x[0:n], n >= 1 (maxGeneric).
//
//go:noescape
func maxF32NEON(x *float32, n uintptr) float32

// mulScaleOnePlusF32NEON computes dst[i] = x[i]*s*(1+w[i]) for i < n
// (mulScaleOnePlusGeneric).
//
//go:noescape
func mulScaleOnePlusF32NEON(dst, x, w *float32, n uintptr, s float32)

// ropeF32NEON rotates x (2h values) by cos and sin (h values each), as ropeGeneric.
//
//go:noescape
func ropeF32NEON(x, cos, sin *float32, h uintptr)

// dotF32NEON returns sum_i a[i]*b[i] for i < n (dotGeneric up to the order of additions).
//
//go:noescape
func dotF32NEON(a, b *float32, n uintptr) float32

// axpyF32NEON computes y[i] += alpha*x[i] for i < n (axpyGeneric, fused).
//
//go:noescape
func axpyF32NEON(alpha float32, x, y *float32, n uintptr)
