package kernels

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func quantFormats() []Format {
	var fs []Format
	for _, f := range Formats() {
		if f.Type.Quantized() {
			fs = append(fs, f)
		}
	}
	return fs
}

// packChunkTile is the reference for tileChunkRow: it stores 8 rows' chunk
// levels (lv[r][e]) as one chunk tile, straight from the layout's definition.
func packChunkTile(t Type, dst []byte, lv *[TileRows][ChunkSize]uint8) {
	clear(dst)
	for r := 0; r < TileRows; r++ {
		for e := 0; e < ChunkSize; e++ {
			k, i := e/4, e%4 // vector k, byte i of row r's dword
			q := lv[r][e]
			switch t {
			case Q4:
				dst[32*(k/2)+4*r+i] |= q << (4 * (k % 2))
			case Q3:
				if k < 6 { // vectors 2j, 2j+1 in plane j, bits 0..2 and 3..5
					dst[32*(k/2)+4*r+i] |= q << (3 * (k % 2))
				} else { // bits 0..1 in plane k-6 bits 6..7, bit 2 in plane C bit k
					dst[32*(k-6)+4*r+i] |= (q & 3) << 6
					dst[64+4*r+i] |= (q >> 2) << k
				}
			case Q6:
				dst[32*(k/2)+4*r+i] |= (q & 0x0f) << (4 * (k % 2))
				dst[128+32*(k/4)+4*r+i] |= (q >> 4) << (2 * (k % 4))
			case Q5:
				dst[32*(k/2)+4*r+i] |= (q & 0x0f) << (4 * (k % 2))
				dst[128+4*r+i] |= (q >> 4) << k
			case Q8:
				dst[32*k+4*r+i] = q
			}
		}
	}
}

func mustTile(t testing.TB, m *Matrix) *Matrix {
	tm, err := Tile(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// Tiling is a permutation: every group rebuilt from the tiles has the
// original bytes, and Row dequantizes the same values.
func TestTileRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for _, f := range quantFormats() {
		cols := colsFor(f, 5)
		m, _ := randMatrix(t, rng, f, 24, cols)
		tm := mustTile(t, m)
		if bytes.Equal(tm.Data, m.Data) {
			t.Fatalf("%s: tiled data equals row-major data", f)
		}
		bb := f.BlockBytes()
		blk := make([]byte, bb)
		want, got := make([]float32, cols), make([]float32, cols)
		for r := 0; r < m.Rows; r++ {
			for g := 0; g < cols/f.Group; g++ {
				untileGroup(tm, r, g, blk)
				if orig := m.row(r)[g*bb : (g+1)*bb]; !bytes.Equal(blk, orig) {
					t.Fatalf("%s row %d group %d: rebuilt % x, stored % x", f, r, g, blk, orig)
				}
			}
			if err := m.Row(r, want); err != nil {
				t.Fatal(err)
			}
			if err := tm.Row(r, got); err != nil {
				t.Fatal(err)
			}
			for c := range got {
				if got[c] != want[c] {
					t.Fatalf("%s row %d col %d: tiled %v, row-major %v", f, r, c, got[c], want[c])
				}
			}
		}
	}
}

func TestTileChunkRowMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(29, 30))
	for _, typ := range []Type{Q4, Q3, Q6, Q5, Q8} {
		f := Format{Type: typ, Group: 32}
		cb := typ.chunkBytes()
		var lv [TileRows][ChunkSize]uint8
		got := make([]byte, TileRows*cb)
		for trial := 0; trial < 50; trial++ {
			for r := range lv {
				q := randLevels(rng, f, ChunkSize)
				if typ == Q8 {
					for i := range q {
						q[i] = uint8(rng.IntN(256))
					}
				}
				copy(lv[r][:], q)
				src := make([]byte, cb)
				packChunk(typ, src, q)
				tileChunkRow(typ, got, r, src)
			}
			want := make([]byte, TileRows*cb)
			packChunkTile(typ, want, &lv)
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: tileChunkRow\n% x\nlayout definition\n% x", typ, got, want)
			}
		}
	}
}

// A superblock tile's header, byte by byte as tiles.go spells it: the
// rows' super-scales (and super-mins), then per chunk j and row r the scale
// code (symmetric: c-32 as int8) and the min code.
func TestTileSuperHeader(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	for _, f := range SuperFormats() {
		const cols = 2 * SuperBlock
		m, _ := randMatrix(t, rng, f, 16, cols)
		tm := mustTile(t, m)
		if want := len(m.Data) + m.Rows*cols/SuperBlock*2*tileCodeFields(f); len(tm.Data) != want {
			t.Fatalf("%s: tiled %d bytes, want %d", f, len(tm.Data), want)
		}
		for r := 0; r < m.Rows; r++ {
			levels := make([]uint8, cols)
			scales, mins := make([]float32, cols/ChunkSize), make([]float32, cols/ChunkSize)
			supers, superMins := make([]float32, cols/SuperBlock), make([]float32, cols/SuperBlock)
			if err := UnpackSuperRow(f, levels, scales, mins, supers, superMins, m.row(r)); err != nil {
				t.Fatal(err)
			}
			for b := 0; b < cols/SuperBlock; b++ {
				tile := tm.Data[r/TileRows*tiledBlockBytes(f, cols)+b*tileGroupBytes(f):]
				lane := r % TileRows
				if d := f16At(tile, 2*lane); d != supers[b] {
					t.Fatalf("%s row %d block %d: D %v, want %v", f, r, b, d, supers[b])
				}
				codes := tile[16:]
				if f.Asym {
					if mm := f16At(tile, 16+2*lane); mm != superMins[b] {
						t.Fatalf("%s row %d block %d: M %v, want %v", f, r, b, mm, superMins[b])
					}
					codes = tile[32:]
				}
				for j := 0; j < superChunks; j++ {
					sc := supers[b] * float32(codes[8*j+lane])
					if !f.Asym {
						sc = supers[b] * float32(int8(codes[8*j+lane]))
					}
					if want := scales[b*superChunks+j]; sc != want {
						t.Fatalf("%s row %d block %d chunk %d: scale %v from the tile, want %v", f, r, b, j, sc, want)
					}
					if f.Asym {
						if mn, want := superMins[b]*float32(codes[64+8*j+lane]), mins[b*superChunks+j]; mn != want {
							t.Fatalf("%s row %d block %d chunk %d: min %v from the tile, want %v", f, r, b, j, mn, want)
						}
					}
				}
			}
		}
	}
}

func TestTileErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	m, _ := randMatrix(t, rng, Format{Type: Q4, Group: 32}, 12, 64) // 12 rows: not a multiple of 8
	if _, err := Tile(m, nil); err == nil {
		t.Fatal("tiled 12 rows")
	}
	f, _ := randMatrix(t, rng, FormatBF16, 8, 64)
	if _, err := Tile(f, nil); err == nil {
		t.Fatal("tiled a float matrix")
	}
	m8, _ := randMatrix(t, rng, Format{Type: Q4, Group: 32}, 8, 64)
	if _, err := Tile(m8, make([]byte, 3)); err == nil {
		t.Fatal("tiled into a short buffer")
	}
	bad := *mustTile(t, m8)
	bad.Rows = 4
	bad.Data = bad.Data[:len(bad.Data)/2]
	if err := bad.Validate(); err == nil {
		t.Fatal("validated a tiled matrix of 4 rows")
	}
}

// forEachTiledTier is forEachTier plus, on a CPU with GFNI, the avx512-vnni
// tier without its GFNI Q3/Q5/Q6 kernels (those of CPUs without GFNI).
func forEachTiledTier(t *testing.T, fn func(t *testing.T, tier Tier)) {
	forEachTier(t, fn)
	if !hasGFNI {
		return
	}
	restore, err := ForceTier(TierAVX512)
	if err != nil {
		t.Fatal(err)
	}
	defer restore()
	tiledGFNI = false
	defer func() { tiledGFNI = true }()
	t.Run("avx512-vnni-nogfni", func(t *testing.T) { fn(t, TierAVX512) })
}

// tiledRanges are row ranges of a 40-row matrix: whole blocks (an odd and an
// even number, in pairs for the 512-bit kernels and alone), ranges that start
// or end inside a block, and one inside a single block.
var tiledRanges = [][2]int{{0, 40}, {0, 32}, {3, 37}, {8, 16}, {9, 12}, {5, 6}, {16, 23}}

// Every tier's Tiled8 products against the row-major reference: the integer
// chunk sums agree exactly (scales 1, small levels), so outputs are equal.
func TestTiledIntegerExact(t *testing.T) {
	forEachTiledTier(t, func(t *testing.T, tier Tier) {
		rng := rand.New(rand.NewPCG(23, 24))
		for _, f := range quantFormats() {
			for _, groups := range []int{1, 3, 33} {
				cols := groups * f.Group
				m := integerMatrix(t, rng, f, 40, cols)
				tm := mustTile(t, m)
				const n = 9 // two 4-token kernel calls and a tail
				xs := NewActivationBatch(n, cols)
				for tok := 0; tok < n; tok++ {
					a := xs.Token(tok)
					setIntegerActivation(rng, &a, 127)
				}
				want := make([]float32, n*m.Rows)
				mulMatGeneric(m, want, xs, 0, m.Rows)
				for _, rg := range tiledRanges {
					name := fmt.Sprintf("%s %d cols rows [%d,%d)", f, cols, rg[0], rg[1])
					for tok := 0; tok < n; tok++ {
						a := xs.Token(tok)
						buf, dst := guarded(m.Rows)
						if err := tm.MulVec(dst, &a, rg[0], rg[1]); err != nil {
							t.Fatal(err)
						}
						checkGuard(t, buf, rg[0], rg[1])
						for r := rg[0]; r < rg[1]; r++ {
							if dst[r] != want[tok*m.Rows+r] {
								t.Fatalf("%s token %d row %d: matvec %v, integer reference %v", name, tok, r, dst[r], want[tok*m.Rows+r])
							}
						}
					}
					buf, dst := guarded(n * m.Rows)
					if err := tm.MulMat(dst, xs, rg[0], rg[1]); err != nil {
						t.Fatal(err)
					}
					for i := range buf {
						r := (i - 16) % m.Rows
						written := i >= 16 && i < 16+len(dst) && r >= rg[0] && r < rg[1]
						if written == (buf[i] == sentinel) {
							t.Fatalf("%s: matmul buffer index %d: %v (written %v)", name, i, buf[i], written)
						}
						if written && buf[i] != want[i-16] {
							t.Fatalf("%s: matmul token %d row %d: %v, integer reference %v", name, (i-16)/m.Rows, r, buf[i], want[i-16])
						}
					}
				}
			}
		}
	})
}

// Real-valued tiled products against the row-major reference, within the
// SIMD-vs-reference budget of TestMulVecTiers; 32896 columns (33024 for
// superblocks) make token blocks of 4 in MulMat, so 9 tokens cross blocks.
func TestTiledTiers(t *testing.T) {
	forEachTiledTier(t, func(t *testing.T, tier Tier) {
		rng := rand.New(rand.NewPCG(25, 26))
		for _, f := range quantFormats() {
			for _, cols := range []int{colsFor(f, 7), 2304, (32896 + f.Group - 1) / f.Group * f.Group} {
				m, _ := randMatrix(t, rng, f, 16, cols)
				tm := mustTile(t, m)
				const n = 9
				xs := NewActivationBatch(n, cols)
				if err := xs.Set(gaussian(rng, n*cols, 1)); err != nil {
					t.Fatal(err)
				}
				wd := dequantAll(t, m)
				got := make([]float32, n*m.Rows)
				if err := tm.MulMat(got, xs, 0, m.Rows); err != nil {
					t.Fatal(err)
				}
				vec := make([]float32, m.Rows)
				for tok := 0; tok < n; tok++ {
					a := xs.Token(tok)
					want := make([]float32, m.Rows)
					mulVecGeneric(m, want, &a, 0, m.Rows)
					if err := tm.MulVec(vec, &a, 0, m.Rows); err != nil {
						t.Fatal(err)
					}
					mag := absDotW(wd, cols, a.F32)
					for r := range want {
						for _, v := range []float32{got[tok*m.Rows+r], vec[r]} {
							if d := math.Abs(float64(v - want[r])); d > 1e-6*mag[r] {
								t.Fatalf("%s %d cols token %d row %d: %v, reference %v", f, cols, tok, r, v, want[r])
							}
						}
					}
				}
			}
		}
	})
}

func TestTiledNoAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(27, 28))
	for _, f := range []Format{{Type: Q4, Group: 32}, {Type: Q4, Group: SuperBlock, Asym: true, Super: true}} {
		m, _ := randMatrix(t, rng, f, 16, 256)
		tm := mustTile(t, m)
		x := randActivation(t, rng, 256)
		dst := make([]float32, 16)
		row := make([]float32, 256)
		if n := testing.AllocsPerRun(10, func() {
			_ = tm.MulVec(dst, x, 3, 13)
			_ = tm.Row(5, row)
		}); n != 0 {
			t.Fatalf("%s: tiled MulVec and Row allocate %v times", f, n)
		}
	}
}

// benchTiledTiers is benchTiers plus, where the CPU has AVX-512, the
// avx512-vnni tier with its 256-bit kernels only ("avx512-vnni-ymm"), to
// measure the 512-bit ones against them, and where it has GFNI too, without
// the GFNI Q3/Q5/Q6 kernels ("avx512-vnni-nogfni").
func benchTiledTiers(b *testing.B, fn func(b *testing.B)) {
	benchTiers(b, fn)
	restore, err := ForceTier(TierAVX512)
	if err != nil {
		return
	}
	defer restore()
	if hasGFNI {
		tiledGFNI = false
		b.Run("avx512-vnni-nogfni", fn)
		tiledGFNI = true
	}
	tiledPairs = false
	defer func() { tiledPairs = true }()
	b.Run("avx512-vnni-ymm", fn)
}

func BenchmarkMulVecTiled(b *testing.B) {
	for _, fs := range append(benchFormats[:len(benchFormats):len(benchFormats)], superBenchFormats...) {
		f, _ := ParseFormat(fs)
		for _, sh := range benchShapes {
			rng := rand.New(rand.NewPCG(1, 1))
			m, _ := randMatrix(b, rng, f, sh[0], sh[1])
			tm := mustTile(b, m)
			x := randActivation(b, rng, sh[1])
			dst := make([]float32, sh[0])
			b.Run(fmt.Sprintf("%s/%dx%d", f, sh[0], sh[1]), func(b *testing.B) {
				benchTiledTiers(b, func(b *testing.B) {
					timedLoop(b, int64(len(m.Data)), 0, func() {
						if err := tm.MulVec(dst, x, 0, m.Rows); err != nil {
							b.Fatal(err)
						}
					})
				})
			})
		}
	}
}

func BenchmarkMulMatTiled(b *testing.B) {
	const n = 64
	for _, fs := range append([]string{"q4_g32", "q4_g128", "q3_g32", "q4_g64_asym", "q6_g32", "q5_g32", "q8_g32"}, superBenchFormats...) {
		f, _ := ParseFormat(fs)
		sh := [2]int{2304, 2304}
		rng := rand.New(rand.NewPCG(1, 1))
		m, _ := randMatrix(b, rng, f, sh[0], sh[1])
		tm := mustTile(b, m)
		xs := NewActivationBatch(n, sh[1])
		if err := xs.Set(gaussian(rng, n*sh[1], 1)); err != nil {
			b.Fatal(err)
		}
		dst := make([]float32, n*sh[0])
		b.Run(fmt.Sprintf("%s/%dx%d/n=%d", f, sh[0], sh[1], n), func(b *testing.B) {
			benchTiledTiers(b, func(b *testing.B) {
				timedLoop(b, int64(len(m.Data)), int64(n*m.Rows*m.Cols), func() {
					if err := tm.MulMat(dst, xs, 0, m.Rows); err != nil {
						b.Fatal(err)
					}
				})
			})
		})
	}
}

// BenchmarkTile reports how fast load-time tiling runs (MB/s of packed data).
func BenchmarkTile(b *testing.B) {
	for _, fs := range []string{"q4_g32", "q3_g32", "q8_g32", "q4_k_asym"} {
		f, _ := ParseFormat(fs)
		rng := rand.New(rand.NewPCG(1, 1))
		m, _ := randMatrix(b, rng, f, 2048, 2304)
		dst := make([]byte, 2048/TileRows*tiledBlockBytes(f, 2304))
		b.Run(fs, func(b *testing.B) {
			b.SetBytes(int64(len(m.Data)))
			for i := 0; i < b.N; i++ {
				if _, err := Tile(m, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// NaN in gives NaN out on every tier, as in the reference: a NaN weight scale
// makes its row NaN for every token, a NaN activation its token NaN for every
// row (the 8-bit activation then carries a NaN scale), and nothing else.
func TestTiledNaN(t *testing.T) {
	forEachTiledTier(t, func(t *testing.T, tier Tier) {
		rng := rand.New(rand.NewPCG(29, 30))
		const rows, n, nanRow, nanTok = 40, 5, 13, 2
		for _, f := range quantFormats() {
			cols := 3 * f.Group
			m, _ := randMatrix(t, rng, f, rows, cols)
			m.Data[nanRow*f.RowBytes(cols)+f.BlockBytes()+1] = 0x7e // group 1's scale: f16 0x7e.. is NaN
			tm := mustTile(t, m)
			x := gaussian(rng, n*cols, 1)
			x[nanTok*cols+cols/2] = float32(math.NaN())
			xs := NewActivationBatch(n, cols)
			if err := xs.Set(x); err != nil {
				t.Fatal(err)
			}
			got := make([]float32, n*rows)
			if err := tm.MulMat(got, xs, 0, rows); err != nil {
				t.Fatal(err)
			}
			vec := make([]float32, rows)
			for tok := 0; tok < n; tok++ {
				a := xs.Token(tok)
				if err := tm.MulVec(vec, &a, 0, rows); err != nil {
					t.Fatal(err)
				}
				for r := 0; r < rows; r++ {
					want := r == nanRow || tok == nanTok
					for _, v := range []float32{got[tok*rows+r], vec[r]} {
						if math.IsNaN(float64(v)) != want {
							t.Fatalf("%s token %d row %d: %v, want NaN: %v", f, tok, r, v, want)
						}
					}
				}
			}
		}
	})
}
