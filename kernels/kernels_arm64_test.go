//go:build arm64 && !purego

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
)

// The arm64 build offers NEON always and NEON+dotprod exactly when the CPU
// has it, and picks the best at init (or the one CAFEQ_KERNELS names). Run under qemu-aarch64 with
// QEMU_CPU=max and QEMU_CPU=cortex-a53 (no dotprod) to see both.
func TestARM64Tiers(t *testing.T) {
	want := []Tier{TierGeneric, TierNEON}
	if hasDotProd {
		want = append(want, TierNEONDot)
	}
	if got := Tiers(); !slices.Equal(got, want) {
		t.Fatalf("Tiers() = %v, want %v", got, want)
	}
	best := want[len(want)-1]
	if env := os.Getenv("CAFEQ_KERNELS"); env != "" {
		// an explicit choice (see bestSet) wins when it names a tier of this CPU
		for _, tier := range want {
			if tier.String() == env {
				best = tier
			}
		}
	}
	if CurrentTier() != best {
		t.Fatalf("CurrentTier() = %v, want %v", CurrentTier(), best)
	}
	t.Logf("dotprod %v: %s", hasDotProd, CPUFeatures())
}

// The three kernel shapes (1 row x 1 token, 1 row x 4 tokens, 4 rows x 1
// token) at the edges of the integer ranges: levels 0 and 2^bits-1,
// activations -128 and 127 (beyond the quantizer's ±127), where a 16-bit
// intermediate or a wrong signedness would show. The four rows and the four
// tokens all differ (constant extremes, random extremes, random values), so a
// row or token reading another's data, scale or accumulator shows too. With
// unit scales and integer mins every f32 step of both paths is exact (partial
// sums below 2^24: at most 20 chunks of 32*128*128; superblocks: 40 chunks of
// sub-scale ±1 or ±2 times 32*128*32), so every result must equal the
// integer reference.
func TestRowDotExtremes(t *testing.T) {
	sets := map[string]*rowDots{"neon": &neonDots}
	if hasDotProd {
		sets["sdot"] = &sdotDots
	}
	rng := rand.New(rand.NewPCG(31, 32))
	for name, k := range sets {
		for _, f := range Formats() {
			if !f.Type.Quantized() {
				continue
			}
			top := maxLevel(f.Type)
			fk := k.lookup(f)
			if fk == nil {
				if f != FormatQ6 {
					t.Fatalf("%s: no %s kernels", f, name)
				}
				continue // Q6 is widened to Q8 at load (see Prepare)
			}
			for _, groups := range []int{1, 2, 3, 5} {
				cols := groups * f.Group
				rb := f.RowBytes(cols)
				for trial := 0; trial < 3; trial++ {
					// rows: all top, all 0 or top, random levels, all 0
					m := &Matrix{Format: f, Rows: 4, Cols: cols, Data: make([]byte, 4*rb)}
					for r := 0; r < 4; r++ {
						levels := make([]uint8, cols)
						for i := range levels {
							switch r {
							case 0:
								levels[i] = uint8(top)
							case 1:
								levels[i] = uint8(top * rng.IntN(2))
							case 2:
								levels[i] = uint8(rng.IntN(top + 1))
							}
						}
						if err := packIntegerRow(rng, f, m.row(r), levels); err != nil {
							t.Fatal(err)
						}
					}
					// tokens: all -128, all 127, random extremes, random small
					xs := NewActivationBatch(4, cols)
					for i := range xs.D {
						xs.D[i] = 1
					}
					for i := range xs.Q {
						switch tok := i / (xs.Blocks * ChunkSize); tok {
						case 0:
							xs.Q[i] = -128
						case 1:
							xs.Q[i] = 127
						case 2:
							xs.Q[i] = []int8{-128, 127, -1, 0}[rng.IntN(4)]
						default:
							xs.Q[i] = int8(rng.IntN(7) - 3)
						}
						xs.S[i/ChunkSize] += int32(xs.Q[i])
					}
					groupsU, cpg := uintptr(groups), uintptr(f.Group/ChunkSize)
					for r := 0; r < 4; r++ {
						var byToken [4]float32
						fk.t4(&byToken[0], &m.Data[r*rb], &xs.Q[0], &xs.D[0], &xs.S[0], uintptr(xs.Blocks), groupsU, cpg)
						for tok := 0; tok < 4; tok++ {
							x := xs.Token(tok)
							var byRow [4]float32
							fk.r4(&byRow[0], &m.Data[0], uintptr(rb), &x.Q[0], &x.D[0], &x.S[0], groupsU, cpg)
							want := dotRowGeneric(f, m.row(r), x.Q, x.D, x.S)
							got := fk.t1(&m.Data[r*rb], &x.Q[0], &x.D[0], &x.S[0], groupsU, cpg)
							if got != want || byToken[tok] != want || byRow[r] != want {
								t.Fatalf("%s %s %d cols trial %d row %d token %d: 1x1 %v, 1x4 %v, 4x1 %v, integer reference %v",
									name, f, cols, trial, r, tok, got, byToken[tok], byRow[r], want)
							}
						}
					}
				}
			}
		}
	}
}

// packIntegerRow packs levels with integer scales and mins: plain formats
// scale 1 and mins -4..4; superblock formats super-scales 1 (mins: ±1) and
// codes giving sub-scales ±1, ±2 (asymmetric: 1, 2) and sub-mins 0..±8.
func packIntegerRow(rng *rand.Rand, f Format, dst []byte, levels []uint8) error {
	groups := len(levels) / f.SubGroup()
	scales, mins := make([]float32, groups), make([]float32, groups)
	if !f.Super {
		for g := range scales {
			scales[g], mins[g] = 1, float32(rng.IntN(9)-4)
		}
		if !f.Asym {
			mins = nil
		}
		return PackRow(f, dst, levels, scales, mins)
	}
	nb := len(levels) / SuperBlock
	supers, superMins := make([]float32, nb), make([]float32, nb)
	for b := range supers {
		supers[b], superMins[b] = 1, float32(2*rng.IntN(2)-1)
	}
	for g := range scales {
		scales[g] = float32(1 + rng.IntN(2))
		if !f.Asym && rng.IntN(2) == 0 {
			scales[g] = -scales[g]
		}
		mins[g] = superMins[g/superChunks] * float32(rng.IntN(9))
	}
	if !f.Asym {
		mins, superMins = nil, nil
	}
	return PackSuperRow(f, dst, levels, scales, mins, supers, superMins)
}

// Float matrices (F32, F16, BF16) take the NEON row dots, reading rows
// through pointers that need not be aligned; check matrices whose data starts
// at an odd address against the generic path (error budget of
// TestMulVecTiers), on lengths that exercise the 16-wide loop and the tail.
func TestMulVecFloatUnaligned(t *testing.T) {
	rng := rand.New(rand.NewPCG(33, 34))
	for _, f := range []Format{FormatF32, FormatF16, FormatBF16} {
		for _, cols := range []int{1, 3, 17, 255, 2305} {
			rows := 5
			src := gaussian(rng, rows*cols, 0.05)
			rb := f.RowBytes(cols)
			buf := make([]byte, rows*rb+1)
			m := &Matrix{Format: f, Rows: rows, Cols: cols, Data: buf[1:]}
			for r := 0; r < rows; r++ {
				if err := QuantizeRowRTN(f, m.row(r), src[r*cols:(r+1)*cols]); err != nil {
					t.Fatal(err)
				}
			}
			x := randActivation(t, rng, cols)
			want := make([]float32, rows)
			mulVecGeneric(m, want, x, 0, rows)
			mag := absDot(t, m, x.F32)
			t.Run(fmt.Sprintf("%s/cols=%d", f, cols), func(t *testing.T) {
				forEachTier(t, func(t *testing.T, tier Tier) {
					got := make([]float32, rows)
					if err := m.MulVec(got, x, 0, rows); err != nil {
						t.Fatal(err)
					}
					for r := range got {
						if d := math.Abs(float64(got[r] - want[r])); d > 1e-6*mag[r] {
							t.Errorf("row %d: %v, reference %v", r, got[r], want[r])
						}
					}
				})
			})
		}
	}
}

// The 4-row and 4-token kernels run the same f32 operations in the same
// order as the 1x1 kernel for each (row, token), so with real (random) scales
// and mins their results must be bit-identical to it; this catches a row or
// token paired with another's scale, which unit scales cannot show.
func TestKernelShapesAgree(t *testing.T) {
	sets := map[string]*rowDots{"neon": &neonDots}
	if hasDotProd {
		sets["sdot"] = &sdotDots
	}
	rng := rand.New(rand.NewPCG(35, 36))
	for name, k := range sets {
		for _, f := range Formats() {
			if !f.Type.Quantized() {
				continue
			}
			fk := k.lookup(f)
			if fk == nil {
				if f != FormatQ6 {
					t.Fatalf("%s: no %s kernels", f, name)
				}
				continue // Q6 is widened to Q8 at load (see Prepare)
			}
			for _, groups := range []int{1, 7, 33} {
				cols := groups * f.Group
				rb := f.RowBytes(cols)
				m, _ := randMatrix(t, rng, f, 4, cols)
				xs := NewActivationBatch(4, cols)
				if err := xs.Set(gaussian(rng, 4*cols, 1)); err != nil {
					t.Fatal(err)
				}
				groupsU, cpg := uintptr(groups), uintptr(f.Group/ChunkSize)
				for r := 0; r < 4; r++ {
					var byToken [4]float32
					fk.t4(&byToken[0], &m.Data[r*rb], &xs.Q[0], &xs.D[0], &xs.S[0], uintptr(xs.Blocks), groupsU, cpg)
					for tok := 0; tok < 4; tok++ {
						x := xs.Token(tok)
						var byRow [4]float32
						fk.r4(&byRow[0], &m.Data[0], uintptr(rb), &x.Q[0], &x.D[0], &x.S[0], groupsU, cpg)
						one := fk.t1(&m.Data[r*rb], &x.Q[0], &x.D[0], &x.S[0], groupsU, cpg)
						if byToken[tok] != one || byRow[r] != one {
							t.Fatalf("%s %s %d cols row %d token %d: 1x1 %v, 1x4 %v, 4x1 %v", name, f, cols, r, tok, one, byToken[tok], byRow[r])
						}
					}
				}
			}
		}
	}
}

// The NEON GELU against the reference on a dense grid over [-12, 12] (both
// saturated ends of tanh included) and on the n%4 tails. They differ only by
// FMA rounding, so each value must be within 5e-7*|x*up| of the reference
// (a few ulps; measured worst about 2e-7)
// (the size of 0.5*x*(1+tanh) before the cancellation for negative x).
func TestGELUNEON(t *testing.T) {
	const n = 24001 // n%4 == 1: a tail for the reference
	x := make([]float32, n)
	up := make([]float32, n)
	for i := range x {
		x[i] = -12 + 24*float32(i)/(n-1)
		up[i] = 1 + float32(i%7)/8
	}
	for _, withUp := range []bool{false, true} {
		var u []float32
		if withUp {
			u = up
		}
		got := make([]float32, n)
		want := make([]float32, n)
		geluMulNEON(got, x, u)
		geluMulGeneric(want, x, u)
		worst := 0.0
		for i := range got {
			scale := abs32(x[i])
			if withUp {
				scale *= up[i]
			}
			d := abs32(got[i] - want[i])
			if scale > 0 {
				worst = max(worst, float64(d/scale))
			}
			if d > 5e-7*scale {
				t.Fatalf("up %v: gelu(%v) = %v, reference %v", withUp, x[i], got[i], want[i])
			}
		}
		t.Logf("up %v: worst |neon-reference|/|x*up| %.3g", withUp, worst)
	}
}

// The NEON softcap and softmax exp pass against the reference, value by
// value on dense grids (ends included) and on the n%4 tails. They run the
// reference's formulas and differ only by FMA rounding: within a few ulps.
func TestSoftCapExpNEON(t *testing.T) {
	const n = 40001 // n%4 == 1: a tail for the reference
	x := make([]float32, n)
	for i := range x {
		x[i] = -200 + 400*float32(i)/(n-1)
	}
	for _, c := range []float32{30, 50} {
		got := slices.Clone(x)
		want := slices.Clone(x)
		softCapNEON(got, c)
		softCapGeneric(want, c)
		worst := 0.0
		for i := range got {
			d := float64(abs32(got[i] - want[i]))
			if want[i] != 0 {
				worst = max(worst, d/float64(abs32(want[i])))
			}
			if d > 5e-7*float64(abs32(want[i])) {
				t.Fatalf("softcap %v of %v: %v, reference %v", c, x[i], got[i], want[i])
			}
		}
		t.Logf("softcap %v: worst relative difference %.3g", c, worst)
	}

	for i := range x {
		x[i] = -100 + 105*float32(i)/(n-1) // y = x - 5 covers [-105, 0]: the -87 cutoff and 1
	}
	got := slices.Clone(x)
	want := slices.Clone(x)
	gs := expSubNEON(got, 5)
	ws := expSubGeneric(want, 5)
	worst := 0.0
	for i := range got {
		d := float64(abs32(got[i] - want[i]))
		if want[i] != 0 {
			worst = max(worst, d/float64(want[i]))
		}
		if d > 5e-7*float64(want[i]) {
			t.Fatalf("exp(%v - 5): %v, reference %v", x[i], got[i], want[i])
		}
	}
	t.Logf("exp: worst relative difference %.3g", worst)
	if d := math.Abs(float64(gs - ws)); d > 1e-6*float64(ws) {
		t.Fatalf("exp sum %v, reference %v", gs, ws)
	}
}

// Scale, max and the RMSNorm multiply do the reference's roundings in the
// reference's order, so they must be bit-identical to it, on odd lengths
// with guarded outputs; max must also return NaN when a NaN is present
// (wherever it is: in the 16-wide part or the tail).
func TestSimpleLoopsNEON(t *testing.T) {
	rng := rand.New(rand.NewPCG(37, 38))
	for _, n := range oddLens {
		a, w := gaussian(rng, n, 1), gaussian(rng, n, 0.1)

		buf, y := guarded(n)
		copy(y, a)
		scaleNEON(-0.37, y)
		checkGuard(t, buf, 0, n)
		want := slices.Clone(a)
		scaleGeneric(-0.37, want)
		if !slices.Equal(y, want) {
			t.Fatalf("n=%d: scale differs from the reference", n)
		}

		buf, y = guarded(n)
		mulScaleOnePlusNEON(y, a, w, 0.81)
		checkGuard(t, buf, 0, n)
		mulScaleOnePlusGeneric(want, a, w, 0.81)
		if !slices.Equal(y, want) {
			t.Fatalf("n=%d: mulScaleOnePlus differs from the reference", n)
		}

		if got, ref := maxNEON(a), maxGeneric(a); got != ref {
			t.Fatalf("n=%d: max %v, reference %v", n, got, ref)
		}
		for _, at := range []int{0, n / 2, n - 1} {
			b := slices.Clone(a)
			b[at] = float32(math.NaN())
			if got := maxNEON(b); !math.IsNaN(float64(got)) {
				t.Fatalf("n=%d: max with a NaN at %d: %v", n, at, got)
			}
		}
	}
	if got := maxNEON([]float32{float32(math.Copysign(0, -1)), 0}); math.Signbit(float64(got)) {
		t.Fatalf("max(-0, +0) = %v, want +0 as the reference", got)
	}
}

// RoPE against the reference on head sizes with and without a tail (h%4),
// guarded; the two differ only by FMA rounding: within 2 ulps of the larger
// product.
func TestRoPENEON(t *testing.T) {
	rng := rand.New(rand.NewPCG(39, 40))
	for _, h := range []int{1, 3, 4, 7, 64, 129} {
		x := gaussian(rng, 2*h, 1)
		ang := gaussian(rng, h, 3)
		cs, sn := make([]float32, h), make([]float32, h)
		for i, a := range ang {
			cs[i], sn[i] = float32(math.Cos(float64(a))), float32(math.Sin(float64(a)))
		}
		buf, y := guarded(2 * h)
		copy(y, x)
		ropeNEON(y, cs, sn)
		checkGuard(t, buf, 0, 2*h)
		want := slices.Clone(x)
		ropeGeneric(want, cs, sn)
		for i := range y {
			j := i % h
			a, b := abs32(x[j]), abs32(x[j+h])
			if d := abs32(y[i] - want[i]); d > 2.4e-7*max(a, b) {
				t.Fatalf("h=%d value %d: %v, reference %v", h, i, y[i], want[i])
			}
		}
	}
}
