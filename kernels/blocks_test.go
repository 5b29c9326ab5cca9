package kernels

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func randLevels(rng *rand.Rand, f Format, n int) []uint8 {
	q := make([]uint8, n)
	for i := range q {
		q[i] = uint8(rng.IntN(maxLevel(f.Type) + 1))
	}
	return q
}

func gaussian(rng *rand.Rand, n int, sigma float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * sigma)
	}
	return x
}

func TestPackUnpackRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, f := range Formats() {
		if !f.Type.Quantized() {
			continue
		}
		cols := 3 * 256
		groups := cols / f.SubGroup()
		levels := randLevels(rng, f, cols)
		scales := make([]float32, groups)
		mins := make([]float32, groups)
		for g := range scales {
			scales[g] = RoundF16(float32(rng.NormFloat64()))
			mins[g] = RoundF16(float32(rng.NormFloat64()))
		}
		if f.Super {
			// what a superblock stores: the snapped sub-scales, which pack
			// again to the same codes
			for b := 0; b < cols/SuperBlock; b++ {
				SnapSuperScales(f, scales[8*b:8*b+8], mins[8*b:8*b+8])
			}
		}
		if !f.Asym {
			mins = nil
		}
		buf := make([]byte, f.RowBytes(cols))
		if err := PackRow(f, buf, levels, scales, mins); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		gotL := make([]uint8, cols)
		gotS := make([]float32, groups)
		var gotM []float32
		if f.Asym {
			gotM = make([]float32, groups)
		}
		if err := UnpackRow(f, gotL, gotS, gotM, buf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		deq := make([]float32, cols)
		if err := DequantizeRow(f, deq, buf); err != nil {
			t.Fatal(err)
		}
		off := float32(int(1) << (f.Type.Bits() - 1))
		for i := range levels {
			if gotL[i] != levels[i] {
				t.Fatalf("%s: level %d = %d, want %d", f, i, gotL[i], levels[i])
			}
			g := i / f.SubGroup()
			want := scales[g] * (float32(levels[i]) - off)
			if f.Asym {
				want = scales[g]*float32(levels[i]) + mins[g]
			}
			if deq[i] != want {
				t.Fatalf("%s: dequantized %d = %v, want %v", f, i, deq[i], want)
			}
		}
		for g := range scales {
			if gotS[g] != scales[g] || (f.Asym && gotM[g] != mins[g]) {
				t.Fatalf("%s: group %d header mismatch", f, g)
			}
		}
	}
}

// The Q3 chunk layout is spelled out in blocks.go; check it bit by bit on a
// chunk where only weight e has a non-zero level.
func TestQ3Layout(t *testing.T) {
	f := Format{Type: Q3, Group: 32}
	for e := 0; e < 32; e++ {
		for _, lv := range []uint8{1, 2, 4, 7} {
			levels := make([]uint8, 32)
			levels[e] = lv
			buf := make([]byte, f.RowBytes(32))
			if err := PackRow(f, buf, levels, []float32{1}, nil); err != nil {
				t.Fatal(err)
			}
			want := make([]byte, 12)
			k, i := e/8, e%8
			want[i] |= (lv & 3) << (2 * k)
			l, j := e/4, e%4
			want[8+j] |= (lv >> 2) << l
			for b := range want {
				if buf[2+b] != want[b] {
					t.Fatalf("weight %d level %d: chunk byte %d = %08b, want %08b", e, lv, b, buf[2+b], want[b])
				}
			}
		}
	}
	// Q4: weight 17 is the high nibble of byte 1.
	q4 := Format{Type: Q4, Group: 32}
	levels := make([]uint8, 32)
	levels[17] = 0xA
	buf := make([]byte, q4.RowBytes(32))
	if err := PackRow(q4, buf, levels, []float32{1}, nil); err != nil {
		t.Fatal(err)
	}
	if buf[2+1] != 0xA0 {
		t.Fatalf("q4 weight 17: byte 1 = %#x, want 0xa0", buf[3])
	}
}

func TestPackRowRejects(t *testing.T) {
	f := Format{Type: Q4, Group: 32, Asym: true}
	buf := make([]byte, f.RowBytes(64))
	lv := make([]uint8, 64)
	two := []float32{1, 1}
	cases := []struct {
		name string
		err  error
		do   func() error
	}{
		{"level too big", ErrShape, func() error { l := append([]uint8{}, lv...); l[3] = 16; return PackRow(f, buf, l, two, two) }},
		{"short dst", ErrShape, func() error { return PackRow(f, buf[:10], lv, two, two) }},
		{"missing mins", ErrShape, func() error { return PackRow(f, buf, lv, two, nil) }},
		{"cols not multiple", ErrShape, func() error { return PackRow(f, buf, lv[:48], two, two) }},
		{"float format", ErrFormat, func() error { return PackRow(FormatF16, make([]byte, 128), lv, nil, nil) }},
		{"unpack short", ErrShape, func() error { return UnpackRow(f, lv, two, two, buf[:5]) }},
		{"dequant short", ErrShape, func() error { return DequantizeRow(f, make([]float32, 64), buf[:5]) }},
		{"rtn nan", ErrShape, func() error {
			x := make([]float32, 64)
			x[5] = float32(math.NaN())
			return QuantizeRowRTN(f, buf, x)
		}},
	}
	for _, c := range cases {
		if err := c.do(); !errors.Is(err, c.err) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.err)
		}
	}
}

func rmse(a, b []float32) float64 {
	var s float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		s += d * d
	}
	return math.Sqrt(s / float64(len(a)))
}

// Error budget 1: quantization error of RTN against the float weights, as
// RMSE relative to the weights' standard deviation (Gaussian, sigma 0.02 like
// trained transformer weights). A uniform quantizer with step D has RMSE
// D/sqrt(12); the bounds are those estimates with about 15% margin:
//
//	q8:      D = absmax/127 ~ 2.5s/127       -> 0.0057s, bound 0.007
//	q6:      D = absmax/32  ~ 2.5s/32        -> 0.023s, bound 0.026
//	q5:      D = absmax/16  ~ 2.5s/16        -> 0.045s, bound 0.052
//	q4 sym:  D = absmax/8   ~ (2.5..3.1)s/8  -> 0.09..0.11s (group 32..128)
//	q4 asym: D = range/15   ~ (4.1..5.3)s/15 -> 0.08..0.10s
//	q3 sym:  D = absmax/4                    -> 0.18..0.22s
//	q3 asym: D = range/7                     -> 0.17..0.22s
//
// Float formats: f16 keeps 11 significant bits (ulp 2^-10 of the value's
// binade, RMSE about 2^-10/sqrt(12) = 2.8e-4 of the magnitude, ~2.1e-4s for
// Gaussian data), bf16 keeps 8 (ulp 2^-7, ~1.7e-3s); bounds 3e-4 and 2.4e-3.
func TestQuantizationErrorBudget(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const sigma = 0.02
	bound := map[string]float64{
		"f32": 0, "f16": 3e-4, "bf16": 2.4e-3, "q8_g32": 0.007, "q6_g32": 0.026, "q5_g32": 0.052,
		"q4_g32": 0.105, "q4_g64": 0.115, "q4_g128": 0.125,
		"q4_g32_asym": 0.095, "q4_g64_asym": 0.105, "q4_g128_asym": 0.115,
		"q3_g32": 0.21, "q3_g64": 0.23, "q3_g128": 0.25,
		"q3_g32_asym": 0.2, "q3_g64_asym": 0.22, "q3_g128_asym": 0.25,
		// groups of 32 under 6-bit sub-scales: within 2% of the f16-scaled g32 grids
		"q4_k": 0.088, "q4_k_asym": 0.08, "q3_k": 0.178, "q3_k_asym": 0.173, "q6_k": 0.0215 * 1.05,
		"q5_k": 0.0425 * 1.05,
	}
	const cols = 128 * 64
	x := gaussian(rng, cols, sigma)
	for _, f := range Formats() {
		buf := make([]byte, f.RowBytes(cols))
		if err := QuantizeRowRTN(f, buf, x); err != nil {
			t.Fatal(err)
		}
		y := make([]float32, cols)
		if err := DequantizeRow(f, y, buf); err != nil {
			t.Fatal(err)
		}
		rel := rmse(x, y) / sigma
		t.Logf("%-13s %.3f bpw  RTN RMSE %.5f sigma", f, f.BitsPerWeight(), rel)
		if rel > bound[f.String()] {
			t.Errorf("%s: RMSE %.5f sigma exceeds %.5f", f, rel, bound[f.String()])
		}
		if f.Type.Quantized() && rel < bound[f.String()]/4 {
			t.Errorf("%s: RMSE %.5f sigma is implausibly small (bound %.5f): levels not quantized?", f, rel, bound[f.String()])
		}
	}
}

// An all-zero group (and constant groups) must quantize without NaN.
func TestQuantizeDegenerateGroups(t *testing.T) {
	for _, f := range Formats() {
		for _, v := range []float32{0, 0.5, -3} {
			x := make([]float32, 256)
			for i := range x {
				x[i] = v
			}
			buf := make([]byte, f.RowBytes(256))
			if err := QuantizeRowRTN(f, buf, x); err != nil {
				t.Fatal(err)
			}
			y := make([]float32, 256)
			if err := DequantizeRow(f, y, buf); err != nil {
				t.Fatal(err)
			}
			for i := range y {
				if math.IsNaN(float64(y[i])) || math.Abs(float64(y[i]-v)) > 0.01*math.Abs(float64(v))+1e-6 {
					t.Fatalf("%s constant %v: got %v at %d", f, v, y[i], i)
				}
			}
		}
	}
}

func TestRoundF16(t *testing.T) {
	if got := RoundF16(1 + 1.0/4096); got != 1 {
		t.Errorf("RoundF16(1+2^-12) = %v, want 1 (ties to even)", got)
	}
	if got := RoundF16(1 + 3.0/4096); got != 1+4.0/4096 {
		t.Errorf("RoundF16(1+3*2^-12) = %v", got)
	}
	if got := RoundF16(1e6); !math.IsInf(float64(got), 1) {
		t.Errorf("RoundF16(1e6) = %v, want +Inf", got)
	}
	if BF16ToF32(F32ToBF16(1.00390625)) != 1 || BF16ToF32(F32ToBF16(-2.5)) != -2.5 {
		t.Error("bf16 rounding")
	}
}
