package quantize

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// attnOut computes y = O · concat_q(sum_j a_qj V_h(q) x_j): one attention
// output with fixed mixing weights a (heads x tokens) over tokens xs.
func attnOut(v, o []float32, d, heads, kvHeads, hd int, xs [][]float32, a [][]float64) []float64 {
	rep := heads / kvHeads
	cat := make([]float64, heads*hd)
	for q := range heads {
		h := q / rep
		for j, x := range xs {
			for i := range hd {
				var s float64
				for c := range d {
					s += float64(v[(h*hd+i)*d+c]) * float64(x[c])
				}
				cat[q*hd+i] += a[q][j] * s
			}
		}
	}
	y := make([]float64, d)
	for r := range d {
		for k, c := range cat {
			y[r] += float64(o[r*heads*hd+k]) * c
		}
	}
	return y
}

// TestVOFoldExact: folding any invertible per-head M into v_proj and o_proj
// leaves the attention output unchanged (float32, to ~1e-5 relative).
func TestVOFoldExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const d, heads, kv, hd = 96, 4, 2, 32
	v := randMatrix(rng, kv*hd, d)
	o := randMatrix(rng, d, heads*hd)
	m := make([]float32, kv*hd*hd)
	for h := range kv {
		for i := range hd {
			for j := range hd {
				x := 0.3 * rng.NormFloat64() / math.Sqrt(hd)
				if i == j {
					x += 1
				}
				m[h*hd*hd+i*hd+j] = float32(x)
			}
		}
	}
	vf, of, err := foldVO(v, o, d, heads, kv, hd, m)
	if err != nil {
		t.Fatal(err)
	}
	xs := [][]float32{randMatrix(rng, 1, d), randMatrix(rng, 1, d), randMatrix(rng, 1, d)}
	a := make([][]float64, heads)
	for q := range a {
		a[q] = []float64{rng.Float64(), rng.Float64(), rng.Float64()}
	}
	y0 := attnOut(v, o, d, heads, kv, hd, xs, a)
	y1 := attnOut(vf, of, d, heads, kv, hd, xs, a)
	var num, den float64
	for i := range y0 {
		num += (y0[i] - y1[i]) * (y0[i] - y1[i])
		den += y0[i] * y0[i]
	}
	if r := math.Sqrt(num / den); r > 1e-5 {
		t.Fatalf("folded attention output differs: relative %g", r)
	}
}

func randVO(rng *rand.Rand, d, heads, kv, hd int) (Matrix, Matrix) {
	v := randMatrix(rng, kv*hd, d)
	o := randMatrix(rng, d, heads*hd)
	plantOutliers(rng, v, kv*hd, d, 3)
	return Matrix{Name: "v", Rows: kv * hd, Cols: d, Data: v}, Matrix{Name: "o", Rows: d, Cols: heads * hd, Data: o}
}

// TestQuantizeVO: the stored pair is the quantization of foldVO's pair (so
// the runtime convention matches the reference), the report equals the
// paired error recomputed from the stored matrices, and learned transforms
// plus alternating rounding beat RTN's paired error at 3 and 4 bits.
func TestQuantizeVO(t *testing.T) {
	const d, heads, kv, hd = 256, 4, 2, 64
	for _, bits := range []int{3, 4} {
		rng := rand.New(rand.NewPCG(13, uint64(bits)))
		v, o := randVO(rng, d, heads, kv, hd)
		g := Grid{Bits: bits, Group: 32, Asym: true}
		res, err := QuantizeVO(v, o, heads, kv, hd, Options{Method: MethodCafeQ, Grid: g, Steps: 20, Rounding: true, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		e := res.Report[0]
		t.Logf("%d-bit: paired relative error rtn %.4f cafeq+rounding %.4f", bits, e.RTNRelErr, e.RelErr)
		if e.RelErr >= e.RTNRelErr {
			t.Errorf("%d-bit: cafeq %.4f not below rtn %.4f", bits, e.RelErr, e.RTNRelErr)
		}
		m := res.M
		if m == nil {
			m = make([]float32, kv*hd*hd)
			for h := range kv {
				for i := range hd {
					m[h*hd*hd+i*hd+i] = 1
				}
			}
		}
		vf, of, err := foldVO(v.Data, o.Data, d, heads, kv, hd, m)
		if err != nil {
			t.Fatal(err)
		}
		vq, oq := res.V.Dequantize(), res.O.Dequantize()
		for name, pair := range map[string][2][]float32{"v": {vf, vq}, "o": {of, oq}} {
			if r := relDiff(pair[0], pair[1]); r > 0.5 {
				t.Errorf("%d-bit %s: stored matrix is %.3f away from the folded one", bits, name, r)
			}
		}
		// Paired error from the stored matrices.
		var num, den float64
		for q := range heads {
			h := q / (heads / kv)
			var ab, ah, bb, bh mat.Dense
			ab.Mul(colsOf(o.Data, d, heads*hd, q*hd, hd), dense64(hd, d, v.Data[h*hd*d:(h+1)*hd*d]))
			ah.Mul(colsOf(oq, d, heads*hd, q*hd, hd), dense64(hd, d, vq[h*hd*d:(h+1)*hd*d]))
			bb.Sub(&ab, &ah)
			num += mat.Norm(&bb, 2) * mat.Norm(&bb, 2)
			den += mat.Norm(&ab, 2) * mat.Norm(&ab, 2)
			_ = bh
		}
		if r := math.Sqrt(num / den); math.Abs(r-e.RelErr) > 1e-4*r {
			t.Errorf("%d-bit: reported paired error %.6f, recomputed %.6f", bits, e.RelErr, r)
		}
	}
}

func colsOf(x []float32, rows, stride, c0, n int) *mat.Dense {
	out := mat.NewDense(rows, n, nil)
	for r := range rows {
		for c := range n {
			out.Set(r, c, float64(x[r*stride+c0+c]))
		}
	}
	return out
}

func relDiff(a, b []float32) float64 {
	var num, den float64
	for i := range a {
		num += float64(a[i]-b[i]) * float64(a[i]-b[i])
		den += float64(a[i]) * float64(a[i])
	}
	return math.Sqrt(num / den)
}

// TestAlternatingRounding: from RTN of a random pair (no transform),
// alternating rounding lowers the exact product error, plain and GPTQ-style,
// at 3 and 4 bits.
func TestAlternatingRounding(t *testing.T) {
	const d, hd, nq = 256, 64, 2
	const iters = 4
	for _, bits := range []int{3, 4} {
		g := Grid{Bits: bits, Group: 32, Asym: true}
		rng := rand.New(rand.NewPCG(21, uint64(bits)))
		head := &voHead{hd: hd, d: d, b: randMatrix(rng, hd, d)}
		var xa []float32
		for range nq {
			a := randMatrix(rng, d, hd)
			head.a = append(head.a, a)
			xa = append(xa, a...)
		}
		ex := newVOExact(dense64(nq*d, hd, xa), dense64(hd, d, head.b))
		eye := mat.NewDense(hd, hd, nil)
		for i := range hd {
			eye.Set(i, i, 1)
		}
		c, x, y, err := quantizePair(head, g, eye, ex)
		if err != nil {
			t.Fatal(err)
		}
		for _, gptq := range []bool{false, true} {
			r := alternate(x, y, c, g, iters, gptq, ex)
			ratio := math.Sqrt(r.err / c.err)
			t.Logf("%d-bit gptq=%v: product error %.4f of RTN's", bits, gptq, ratio)
			if ratio >= 0.97 {
				t.Errorf("%d-bit gptq=%v: alternating rounding only reached %.4f of RTN's error", bits, gptq, ratio)
			}
		}
	}
}

func TestVOSurrogateGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	const d, hd = 128, 64
	g := Grid{Bits: 3, Group: 32, Asym: true}
	head := &voHead{hd: hd, d: d, b: randMatrix(rng, hd, d), a: [][]float32{randMatrix(rng, d, hd), randMatrix(rng, d, hd)}}
	s := newVOSurrogate(head, g, 100, 64, 64, rng)
	m := mat.NewDense(hd, hd, nil)
	for i := range hd {
		for j := range hd {
			m.Set(i, j, 0.1*rng.NormFloat64()/8)
		}
		m.Set(i, i, m.At(i, i)+1)
	}
	grad := mat.NewDense(hd, hd, nil)
	l0, err := s.eval(m, grad)
	if err != nil {
		t.Fatal(err)
	}
	for range 12 {
		i, j := rng.IntN(hd), rng.IntN(hd)
		const h = 1e-3
		orig := m.At(i, j)
		m.Set(i, j, orig+h)
		lp, _ := s.eval(m, nil)
		m.Set(i, j, orig-h)
		lm, _ := s.eval(m, nil)
		m.Set(i, j, orig)
		fd := (lp - lm) / (2 * h)
		if an := grad.At(i, j); math.Abs(fd-an) > 0.02*math.Abs(an)+1e-4*l0 {
			t.Errorf("dL/dM[%d][%d] = %g, finite difference %g", i, j, an, fd)
		}
	}
}
