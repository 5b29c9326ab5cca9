package quantize

import (
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time: the machine is shared, so
// CPU seconds (divided by the cores) predict the uncontended wall time
// better than the wall clock does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCafeQ2BMatrix quantizes one Gemma-2-2B-shaped FFN matrix
// (9216 x 2304, gate/up shape) at 3 bits, block 256, default budget.
// A 2B model is about 100 such matrices' worth of blocks (gate+up share
// 9 blocks, down has 36, q/k/v 9 per layer), so the per-model time is
// roughly 26 * (time of this + down + qkv).
func BenchmarkCafeQ2BMatrix(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	const rows, cols = 9216, 2304
	w := randMatrix(rng, rows, cols)
	plantOutliers(rng, w, rows, cols, 20)
	m := Matrix{Name: "gate", Rows: rows, Cols: cols, Data: w}
	for _, meth := range []Method{MethodRTN, MethodHadamard, MethodCafeQ} {
		b.Run(string(meth), func(b *testing.B) {
			b.SetBytes(int64(4 * rows * cols))
			var e Entry
			c0 := cpuTime()
			for b.Loop() {
				res, err := QuantizeMatrix(m, Options{Method: meth, Grid: Grid{Bits: 3, Group: 32, Asym: true}, Seed: 1})
				if err != nil {
					b.Fatal(err)
				}
				e = res.Report[0]
			}
			b.ReportMetric((cpuTime()-c0).Seconds()/float64(b.N), "cpu-s/op")
			b.ReportMetric(e.RelErr, "relerr")
			b.ReportMetric(e.RTNRelErr, "rtn-relerr")
		})
	}
}

// BenchmarkCafeQ2BLayer quantizes one Gemma-2-2B-shaped layer of random
// weights (with outlier columns) the way the CLI does: q/k/v sharing one
// transform, the coupled V/O pair, gate/up sharing one transform, and down,
// with the refinements and alternating rounding on (the CLI defaults).
// A whole 2B model is 26 of these.
func BenchmarkCafeQ2BLayer(b *testing.B) {
	const d, ffn, heads, kv, hd = 2304, 9216, 8, 4, 256
	rng := rand.New(rand.NewPCG(2, 2))
	mk := func(name string, rows, cols int) Matrix {
		w := randMatrix(rng, rows, cols)
		plantOutliers(rng, w, rows, cols, 8)
		return Matrix{Name: name, Rows: rows, Cols: cols, Data: w}
	}
	q, k, v := mk("q", heads*hd, d), mk("k", kv*hd, d), mk("v", kv*hd, d)
	o := mk("o", d, heads*hd)
	gate, up, down := mk("gate", ffn, d), mk("up", ffn, d), mk("down", d, ffn)
	opt := Options{Method: MethodCafeQ, Grid: Grid{Bits: 3, Group: 32, Asym: true}, Rounding: true, Refine: RefineClip | RefineLSQ, Seed: 1}
	c0 := cpuTime()
	for b.Loop() {
		var rep []Entry
		for _, grp := range [][]Matrix{{q, k, v}, {gate, up}, {down}} {
			res, err := QuantizeShared(grp, opt)
			if err != nil {
				b.Fatal(err)
			}
			rep = append(rep, res.Report...)
		}
		res, err := QuantizeVO(v, o, heads, kv, hd, opt)
		if err != nil {
			b.Fatal(err)
		}
		rep = append(rep, res.Report...)
		for _, e := range rep {
			b.Logf("%-5s rtn %.4f cafeq %.4f %6.1fs", e.Name, e.RTNRelErr, e.RelErr, e.Seconds)
		}
	}
	b.ReportMetric((cpuTime()-c0).Seconds()/float64(b.N), "cpu-s/op")
}

// BenchmarkReround2BGateUp: the input-covariance re-rounding of one
// 9216 x 2304 matrix (gate or up at the 2B shape) on q4_k.
func BenchmarkReround2BGateUp(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	const rows, n = 9216, 2304
	h := make([]float64, n*n)
	for i := range n {
		h[i*n+i] = 1 + rng.Float64()
	}
	ic, err := inputCovOf(h, n)
	if err != nil {
		b.Fatal(err)
	}
	s := make([]float64, n)
	for j := range s {
		s[j] = 1
	}
	x := make([]float32, rows*n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	q, err := RTN(Grid{Bits: 4, Group: 32, Super: true}, x, rows, n)
	if err != nil {
		b.Fatal(err)
	}
	f := ic.factorFor(s)
	b.ResetTimer()
	for range b.N {
		roundWithFeedback(x, q, f, gptqBlock)
	}
}
