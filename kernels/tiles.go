package kernels

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
)

// Layout is how a quantized Matrix's packed groups are arranged in Data.
type Layout uint8

const (
	// RowMajor stores Rows rows of RowBytes(Cols) bytes each: the layout of
	// cafeq's model file and of every tier's reference kernels.
	RowMajor Layout = iota
	// Tiled8 regroups the same bytes by 8 rows so that one 32-byte vector
	// holds 4 consecutive weights of each of 8 rows: a kernel multiplies it
	// by a single broadcast of 4 activations and gets 8 rows' partial sums in
	// the 8 dword lanes, with no horizontal reductions and one sequential
	// stream of weights. It is built in memory at load (Tile) for tiers that
	// want it (Prepare); the model file keeps RowMajor.
	Tiled8
)

// TileRows is the number of rows a Tiled8 tile interleaves.
const TileRows = 8

// tiledPairs lets benchmarks compare the AVX-512 tier's 512-bit Tiled8
// kernels (two row blocks per register) with its 256-bit ones; always true
// outside benchmarks.
var tiledPairs = true

// tiledGFNI selects the avx512-vnni tier's GFNI Tiled8 kernels for Q3 and
// Q6 on CPUs with GFNI (kernels_amd64.go); tests and benchmarks turn it off
// to run the tier's other ones.
var tiledGFNI = hasGFNI

func (l Layout) String() string {
	if l == Tiled8 {
		return "tiled8"
	}
	return "row-major"
}

// Tiled8 layout, byte by byte. Data holds Rows/8 row blocks one after
// another; row block b (rows 8b..8b+7) holds one tile per group, and the tile
// of group g has exactly the bytes of the 8 rows' RowMajor groups g, permuted:
//
//	[0:16]           d of rows 0..7, f16 each
//	[16:32]          m of rows 0..7, f16 each (asymmetric formats only)
//	then Group/32 chunk tiles of 8 x chunkBytes:
//
// A chunk tile is made of "vectors": vector k (k = 0..7) is 32 values in which
// bytes 4r..4r+3 hold weights 4k..4k+3 of the chunk for row r. A kernel
// multiplies vector k by dword k of the activation chunk broadcast to all
// lanes. Stored:
//
//	Q4 (128 bytes): 4 quads of 32 bytes; quad j byte 4r+i: bits 0..3 = level
//	                of weight 8j+i of row r (vector 2j), bits 4..7 = level of
//	                weight 8j+4+i (vector 2j+1).
//	Q3 (96 bytes):  three planes A, B, C of 32 bytes at 0, 32, 64; with l_k the
//	                level of weight 4k+i of row r, byte 4r+i holds
//	                  A: l_0 | l_1 << 3 | (l_6 & 3) << 6
//	                  B: l_2 | l_3 << 3 | (l_7 & 3) << 6
//	                  C: l_4 | l_5 << 3 | (l_6 >> 2) << 6 | (l_7 >> 2) << 7
//	                so six vectors are one shift and mask each, and the last
//	                two combine two fields (with GFNI: one instruction each,
//	                and three for the last two; asm/tiledgfni.go).
//	Q6 (192 bytes): [0:128] the low 4 bits as the Q4 chunk tile; [128:192]
//	                two planes P = 0, 1 of 32 bytes, byte 4r+i bits 2s..2s+1 =
//	                bits 4..5 of the level of weight 4(4P+s)+i of row r
//	                (vector 4P+s).
//	Q5 (160 bytes): [0:128] the low 4 bits as the Q4 chunk tile; [128:160]
//	                one plane, byte 4r+i bit k = bit 4 of the level of
//	                weight 4k+i of row r (vector k): row r's dword is the
//	                RowMajor chunk's high plane as it is.
//	Q8 (256 bytes): vector k as 32 bytes: byte 4r+i = weight 4k+i of row r as
//	                the signed byte q-128, as in RowMajor.
//
// Bits per weight are those of the format: only the order changes.
//
// Superblock formats (superblock.go) have one tile per superblock, whose
// header holds the 8 rows' super-scales and their sub-scale (and sub-min)
// codes unpacked to one byte each, so that a kernel widens the 8 rows' codes
// of chunk j with one VPMOVSXBD/VPMOVZXBD and multiplies them by the
// super-scales (sub-scale = D*(c-32) or D*c, exactly as superHeader):
//
//	symmetric (80 bytes):   [0:16]   D of rows 0..7, f16 each
//	                        [16:80]  byte 16+8j+r = c_j - 32 of row r (int8)
//	asymmetric (160 bytes): [0:16]   D of rows 0..7, f16 each
//	                        [16:32]  M of rows 0..7, f16 each
//	                        [32:96]  byte 32+8j+r = scale code c_j of row r
//	                        [96:160] byte 96+8j+r = min code n_j of row r
//
// then the 8 chunk tiles as above. The codes take 8 bits instead of 6, so a
// Tiled8 superblock matrix is 2 (symmetric) or 4 (asymmetric) bytes per row
// and superblock larger in memory than the file's RowMajor bytes (1.5% for
// q4_k, 2.8% for q4_k_asym); the file format and its counted sizes are
// unchanged.

// tileHeaderBytes is the size of a tile's header: the scale (and min)
// fields, for superblock formats the super-scales and codes.
func tileHeaderBytes(f Format) int {
	if f.Super {
		return tileSuperCodes(f) + superChunks*TileRows*tileCodeFields(f)
	}
	return TileRows * f.headerBytes()
}

// tileSuperCodes is the offset of the codes in a superblock tile's header;
// the min codes (asymmetric) follow the scale codes.
func tileSuperCodes(f Format) int { return TileRows * 2 * tileCodeFields(f) }

// tileCodeFields is the number of code fields of a superblock: scales, and
// mins when asymmetric.
func tileCodeFields(f Format) int {
	if f.Asym {
		return 2
	}
	return 1
}

// tileGroupBytes is the size of one group's (superblock's) tile.
func tileGroupBytes(f Format) int {
	return tileHeaderBytes(f) + TileRows*(f.Group/ChunkSize)*f.Type.chunkBytes()
}

// tiledBlockBytes is the size of one row block of a Tiled8 matrix with cols
// columns: 8 rows' RowMajor bytes, more for superblock formats.
func tiledBlockBytes(f Format, cols int) int { return cols / f.Group * tileGroupBytes(f) }

// canTile reports whether m can be stored Tiled8.
func canTile(m *Matrix) bool {
	return m.Format.Type.Quantized() && m.Rows%TileRows == 0 && m.Cols%ChunkSize == 0
}

// wantsTiles reports whether the current tier has Tiled8 kernels for m's
// format and shape, so that Tile would make its products faster.
func wantsTiles(m *Matrix) bool {
	return impl.tiled && m.Layout == RowMajor && canTile(m)
}

// Tile returns a copy of m in the Tiled8 layout, with its data in dst (nil to
// allocate): len(m.Data) bytes, plus 2 (symmetric) or 4 (asymmetric) bytes per
// row and superblock for superblock formats. The result computes exactly what
// m does; Row, MulVec and MulMat accept either layout on every tier.
func Tile(m *Matrix, dst []byte) (*Matrix, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if m.Layout != RowMajor || !canTile(m) {
		return nil, fmt.Errorf("kernels: tile: %w: %s matrix %dx%d (%s) cannot be tiled by %d rows", ErrShape, m.Format, m.Rows, m.Cols, m.Layout, TileRows)
	}
	blockBytes := tiledBlockBytes(m.Format, m.Cols)
	blocks := m.Rows / TileRows
	if dst == nil {
		dst = allocWeights(blocks * blockBytes)
	}
	if len(dst) != blocks*blockBytes {
		return nil, fmt.Errorf("kernels: tile: %w: destination is %d bytes, want %d", ErrShape, len(dst), blocks*blockBytes)
	}
	t := &Matrix{Format: m.Format, Rows: m.Rows, Cols: m.Cols, Data: dst, Layout: Tiled8}
	rb := m.Format.RowBytes(m.Cols)
	// Tiling runs once at load, over the whole model: split large matrices
	// over all cores (a 2B model's 1.8 GB take about 3 s on one core).
	workers := min(runtime.GOMAXPROCS(0), max(1, len(m.Data)>>20))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(b0, b1 int) {
			defer wg.Done()
			for b := b0; b < b1; b++ {
				var rows [TileRows][]byte
				for r := range rows {
					rows[r] = m.Data[(b*TileRows+r)*rb:][:rb]
				}
				tileRowBlock(m.Format, dst[b*blockBytes:][:blockBytes], &rows)
			}
		}(blocks*w/workers, blocks*(w+1)/workers)
	}
	wg.Wait()
	return t, nil
}

// tileRowBlock writes the tiles of 8 RowMajor rows into dst.
func tileRowBlock(f Format, dst []byte, rows *[TileRows][]byte) {
	bb, hb := f.BlockBytes(), f.headerBytes()
	cb := f.Type.chunkBytes()
	th, tgb := tileHeaderBytes(f), tileGroupBytes(f)
	cpg := f.Group / ChunkSize
	for g := 0; g < len(rows[0])/bb; g++ {
		tile := dst[g*tgb:][:tgb]
		for r, row := range rows {
			blk := row[g*bb:]
			copy(tile[2*r:2*r+2], blk[0:2])
			if f.Asym {
				copy(tile[16+2*r:16+2*r+2], blk[2:4])
			}
			if f.Super {
				tileSuperRow(f, tile, r, blk)
			}
			for c := 0; c < cpg; c++ {
				tileChunkRow(f.Type, tile[th+c*TileRows*cb:][:TileRows*cb], r, blk[hb+c*cb:][:cb])
			}
		}
	}
}

// tileChunkRow stores row r's RowMajor chunk src into a chunk tile, with word
// operations on 4 weights at a time (byte i of each word is weight i of the
// dword). It is the fast form of packChunkTile in tiles_test.go, which the
// tests hold it to.
func tileChunkRow(t Type, tile []byte, r int, src []byte) {
	le := binary.LittleEndian
	const lo4, lo2 = 0x0f0f0f0f, 0x03030303
	switch t {
	case Q4:
		// src word 0..3 = bytes 0..15: low nibbles weights 0..15, high 16..31
		a, b, c, d := le.Uint32(src[0:]), le.Uint32(src[4:]), le.Uint32(src[8:]), le.Uint32(src[12:])
		le.PutUint32(tile[4*r:], a&lo4|(b&lo4)<<4)    // weights 0..3 | 4..7
		le.PutUint32(tile[32+4*r:], c&lo4|(d&lo4)<<4) // 8..11 | 12..15
		le.PutUint32(tile[64+4*r:], a>>4&lo4|b&^lo4)  // 16..19 | 20..23
		le.PutUint32(tile[96+4*r:], c>>4&lo4|d&^lo4)  // 24..27 | 28..31
	case Q6:
		// low 4 bits: the Q4 chunk's nibbles, same order; high 2 bits:
		// src byte 16+4(k%2)+i bits 2(k/2) for vector k, as Q3's low plane
		tileChunkRow(Q4, tile, r, src[:16])
		x, y := le.Uint32(src[16:]), le.Uint32(src[20:])
		for P := 0; P < 2; P++ {
			sh := 4 * P
			le.PutUint32(tile[128+32*P+4*r:], x>>sh&lo2|(y>>sh&lo2)<<2|(x>>(sh+2)&lo2)<<4|(y>>(sh+2)&lo2)<<6)
		}
	case Q5:
		// low 4 bits as Q4; the high plane's byte i bit k is already bit 4
		// of weight 4k+i
		tileChunkRow(Q4, tile, r, src[:16])
		copy(tile[128+4*r:][:4], src[16:20])
	case Q3:
		// levels of vector k: low plane byte 4(k%2)+i bits 2(k/2) (words x,
		// y), high plane byte 8+i bit k (word h)
		x, y, h := le.Uint32(src[0:]), le.Uint32(src[4:]), le.Uint32(src[8:])
		var l [8]uint32
		for k := range l {
			lo := x
			if k%2 == 1 {
				lo = y
			}
			l[k] = lo>>(2*(k/2))&lo2 | (h>>k&0x01010101)<<2
		}
		le.PutUint32(tile[4*r:], l[0]|l[1]<<3|(l[6]&lo2)<<6)
		le.PutUint32(tile[32+4*r:], l[2]|l[3]<<3|(l[7]&lo2)<<6)
		le.PutUint32(tile[64+4*r:], l[4]|l[5]<<3|(l[6]>>2&0x01010101)<<6|(l[7]>>2&0x01010101)<<7)
	case Q8:
		for k := 0; k < 8; k++ {
			le.PutUint32(tile[32*k+4*r:], le.Uint32(src[4*k:]))
		}
	}
}

// tileSuperRow stores the codes of RowMajor superblock blk (row r) in a
// superblock tile's header, one byte each (symmetric scales as c-32).
func tileSuperRow(f Format, tile []byte, r int, blk []byte) {
	var codes [2 * superChunks]uint8
	n := superChunks * tileCodeFields(f)
	superCodes(codes[:n], blk[f.headerBytes()-n*codeBits/8:f.headerBytes()])
	at := tileSuperCodes(f)
	for i, c := range codes[:n] {
		if !f.Asym {
			c -= symCodeOffset
		}
		tile[at+TileRows*i+r] = c
	}
}

// untileSuperRow is the inverse of tileSuperRow: it packs row r's codes
// back into the RowMajor header blk.
func untileSuperRow(f Format, blk []byte, tile []byte, r int) {
	var codes [2 * superChunks]uint8
	n := superChunks * tileCodeFields(f)
	at := tileSuperCodes(f)
	for i := range codes[:n] {
		codes[i] = tile[at+TileRows*i+r]
		if !f.Asym {
			codes[i] += symCodeOffset
		}
	}
	putSuperCodes(blk[f.headerBytes()-n*codeBits/8:f.headerBytes()], codes[:n])
}

// maxBlockBytes bounds BlockBytes of the quantized formats (q6_k: 200).
const maxBlockBytes = 256

// untileGroup rebuilds the RowMajor bytes of group g of row r of a Tiled8
// matrix in dst (BlockBytes long).
func untileGroup(m *Matrix, r, g int, dst []byte) {
	f := m.Format
	hb := f.headerBytes()
	cb := f.Type.chunkBytes()
	tgb := tileGroupBytes(f)
	tile := m.Data[(r/TileRows)*tiledBlockBytes(f, m.Cols)+g*tgb:][:tgb]
	lane := r % TileRows
	copy(dst[0:2], tile[2*lane:])
	if f.Asym {
		copy(dst[2:4], tile[16+2*lane:])
	}
	if f.Super {
		untileSuperRow(f, dst, tile, lane)
	}
	var lv [ChunkSize]uint8
	for c := 0; c < f.Group/ChunkSize; c++ {
		chunkTileLevels(f.Type, lv[:], tile[tileHeaderBytes(f)+c*TileRows*cb:][:TileRows*cb], lane)
		packChunk(f.Type, dst[hb+c*cb:][:cb], lv[:])
	}
}

// dequantizeTiledRow is Row for Tiled8 matrices, group by group.
func dequantizeTiledRow(m *Matrix, r int, dst []float32) {
	var blk [maxBlockBytes]byte
	bb := m.Format.BlockBytes()
	for g := 0; g < m.Cols/m.Format.Group; g++ {
		untileGroup(m, r, g, blk[:bb])
		dequantizeRow(m.Format, dst[g*m.Format.Group:][:m.Format.Group], blk[:bb])
	}
}

// packChunk writes one RowMajor chunk's 32 levels (Q8: the stored byte).
func packChunk(t Type, dst []byte, q []uint8) {
	switch t {
	case Q4:
		packQ4Chunk(dst, q)
	case Q3:
		packQ3Chunk(dst, q)
	case Q6:
		packQ6Chunk(dst, q)
	case Q5:
		packQ5Chunk(dst, q)
	case Q8:
		copy(dst, q)
	}
}

// chunkTileLevels reads row r's 32 levels out of a chunk tile.
func chunkTileLevels(t Type, dst []uint8, src []byte, r int) {
	for e := 0; e < ChunkSize; e++ {
		k, i := e/4, e%4
		switch t {
		case Q4:
			dst[e] = src[32*(k/2)+4*r+i] >> (4 * (k % 2)) & 0x0f
		case Q3:
			a, b, c := src[4*r+i], src[32+4*r+i], src[64+4*r+i]
			dst[e] = [8]uint8{a & 7, a >> 3 & 7, b & 7, b >> 3 & 7, c & 7, c >> 3 & 7, a>>6 | c>>6&1<<2, b>>6 | c>>7<<2}[k]
		case Q6:
			dst[e] = src[32*(k/2)+4*r+i]>>(4*(k%2))&0x0f | (src[128+32*(k/4)+4*r+i]>>(2*(k%4))&3)<<4
		case Q5:
			dst[e] = src[32*(k/2)+4*r+i]>>(4*(k%2))&0x0f | (src[128+4*r+i]>>k&1)<<4
		case Q8:
			dst[e] = src[32*k+4*r+i]
		}
	}
}

// mulVecTiledGeneric is the reference product of a Tiled8 matrix: each
// group is rebuilt RowMajor and dotted by dotRowGeneric, so every tier's tiled
// kernels are checked against the same integer sums as the row-major ones.
func mulVecTiledGeneric(m *Matrix, dst []float32, x *Activation, r0, r1 int) {
	var blk [maxBlockBytes]byte
	f := m.Format
	bb, cpg := f.BlockBytes(), f.Group/ChunkSize
	for r := r0; r < r1; r++ {
		var acc float32
		for g := 0; g < m.Cols/f.Group; g++ {
			untileGroup(m, r, g, blk[:bb])
			acc += dotRowGeneric(f, blk[:bb], x.Q[g*f.Group:], x.D[g*cpg:], x.S[g*cpg:])
		}
		dst[r] = acc
	}
}

func mulMatTiledGeneric(m *Matrix, dst []float32, xs *ActivationBatch, r0, r1 int) {
	for t := 0; t < xs.N; t++ {
		a := xs.Token(t)
		mulVecTiledGeneric(m, dst[t*m.Rows:(t+1)*m.Rows], &a, r0, r1)
	}
}
