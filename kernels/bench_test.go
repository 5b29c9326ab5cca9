package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// Gemma 2 2B matrix shapes (rows x cols): attention q/o, MLP gate/up, down.
var benchShapes = [][2]int{{64, 2304}, {2048, 2304}, {9216, 2304}, {2304, 9216}}

var benchFormats = []string{"q4_g32", "q4_g32_asym", "q4_g64", "q4_g64_asym", "q4_g128", "q3_g32", "q3_g32_asym", "q6_g32", "q5_g32", "q8_g32"}

// superBenchFormats are the superblock formats the benchmarks add to
// benchFormats.
var superBenchFormats = []string{"q4_k", "q4_k_asym", "q3_k", "q3_k_asym", "q6_k", "q5_k"}

func benchTiers(b *testing.B, fn func(b *testing.B)) { benchTiersFrom(b, TierGeneric, fn) }

// benchTiersFrom runs fn on every available tier at or above lowest.
func benchTiersFrom(b *testing.B, lowest Tier, fn func(b *testing.B)) {
	for _, tier := range Tiers() {
		if tier < lowest {
			continue
		}
		restore, err := ForceTier(tier)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tier.String(), fn)
		restore()
	}
}

// BenchmarkMulVec reports single-thread GB/s of packed weights streamed
// (b.SetBytes is the matrix size), to compare with memory bandwidth.
func BenchmarkMulVec(b *testing.B) {
	for _, fs := range append(benchFormats[:len(benchFormats):len(benchFormats)], superBenchFormats...) {
		f, _ := ParseFormat(fs)
		for _, sh := range benchShapes {
			rng := rand.New(rand.NewPCG(1, 1))
			m, _ := randMatrix(b, rng, f, sh[0], sh[1])
			x := randActivation(b, rng, sh[1])
			dst := make([]float32, sh[0])
			b.Run(fmt.Sprintf("%s/%dx%d", f, sh[0], sh[1]), func(b *testing.B) {
				benchTiers(b, func(b *testing.B) {
					timedLoop(b, int64(len(m.Data)), 0, func() {
						if err := m.MulVec(dst, x, 0, m.Rows); err != nil {
							b.Fatal(err)
						}
					})
				})
			})
		}
	}
}

// BenchmarkMulMat reports prefill throughput as GMAC/s (weights x tokens)
// alongside GB/s of weights; "chunked" forces the per-chunk 4-token kernels
// instead of the superblock ones, to show what the superblocks gain.
func BenchmarkMulMat(b *testing.B) {
	const n = 64
	for _, fs := range []string{"q4_g32", "q4_g128", "q3_g32", "q4_g64_asym", "bf16"} {
		f, _ := ParseFormat(fs)
		sh := [2]int{2304, 2304}
		rng := rand.New(rand.NewPCG(1, 1))
		m, _ := randMatrix(b, rng, f, sh[0], sh[1])
		xs := NewActivationBatch(n, sh[1])
		if err := xs.Set(gaussian(rng, n*sh[1], 1)); err != nil {
			b.Fatal(err)
		}
		dst := make([]float32, n*sh[0])
		run := func(b *testing.B) {
			timedLoop(b, int64(len(m.Data)), int64(n*m.Rows*m.Cols), func() {
				if err := m.MulMat(dst, xs, 0, m.Rows); err != nil {
					b.Fatal(err)
				}
			})
		}
		b.Run(fmt.Sprintf("%s/%dx%d/n=%d", f, sh[0], sh[1], n), func(b *testing.B) {
			benchTiers(b, run)
		})
		b.Run(fmt.Sprintf("%s/%dx%d/n=%d/chunked", f, sh[0], sh[1], n), func(b *testing.B) {
			prefillSuperblocks = false
			defer func() { prefillSuperblocks = true }()
			benchTiersFrom(b, TierGeneric+1, run) // the generic tier has no superblocks
		})
	}
}

func BenchmarkActivationQuantize(b *testing.B) {
	x := gaussian(rand.New(rand.NewPCG(1, 1)), 9216, 1)
	a := NewActivation(len(x))
	benchTiers(b, func(b *testing.B) {
		timedLoop(b, int64(4*len(x)), 0, func() { _ = a.Set(x) })
	})
}

// BenchmarkF32 times the f32 loops of the forward pass on the 2B model's
// hidden size (2304) and MLP width (9216), each op's tiers side by side:
// `-bench 'F32/.*/(avx2|avx512-vnni)$'` compares the two widths.
func BenchmarkF32(b *testing.B) {
	for _, n := range []int{2304, 9216} {
		rng := rand.New(rand.NewPCG(1, 1))
		x, y, w := gaussian(rng, n, 1), gaussian(rng, n, 1), gaussian(rng, n, 0.1)
		cs, sn := gaussian(rng, n/2, 1), gaussian(rng, n/2, 1)
		g, h := make([]float32, n), make([]uint16, n)
		for _, op := range []struct {
			name  string
			bytes int // per call: values read and written
			run   func()
		}{
			{"dot", 8 * n, func() { Dot(x, y) }},
			{"axpy", 12 * n, func() { axpy(0.5, x, y) }},
			{"max", 4 * n, func() { impl.max(x) }},
			{"scale", 8 * n, func() { Scale(1.0001, g) }},
			{"rmsnorm", 16 * n, func() { RMSNorm(g, x, w, 1e-6) }},
			{"softmax", 20 * n, func() { copy(g, x); Softmax(g) }},
			{"gelumul", 16 * n, func() { copy(g, x); GELUMul(g, y) }},
			{"softcap", 16 * n, func() { copy(g, x); SoftCap(g, 30) }},
			{"rope", 16 * n, func() { copy(g, x); RoPE(g, cs, sn) }},
			{"tof16", 6 * n, func() { ToF16(h, x) }},
		} {
			b.Run(fmt.Sprintf("n=%d/%s", n, op.name), func(b *testing.B) {
				benchTiers(b, func(b *testing.B) {
					b.SetBytes(int64(op.bytes))
					for b.Loop() {
						op.run()
					}
				})
			})
		}
	}
}

// BenchmarkAttentionRows is attention's inner loops over one key tile: 64
// cached rows of head_dim 256 against one query, in f32 and f16 caches.
func BenchmarkAttentionRows(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	const rows, hd = 64, 256
	q, cache := gaussian(rng, hd, 1), gaussian(rng, rows*hd, 1)
	cache16 := make([]uint16, len(cache))
	ToF16(cache16, cache)
	scores, out := gaussian(rng, rows, 0.1), make([]float32, hd)
	benchTiers(b, func(b *testing.B) {
		for _, c := range []struct {
			name string
			run  func()
		}{
			{"dot/f32", func() { DotRows(scores, cache, q) }},
			{"dot/f16", func() { DotRowsF16(scores, cache16, q) }},
			{"axpy/f32", func() { AxpyRows(out, scores, cache) }},
			{"axpy/f16", func() { AxpyRowsF16(out, scores, cache16) }},
		} {
			b.Run(c.name, func(b *testing.B) {
				for b.Loop() {
					c.run()
				}
			})
		}
	})
}
