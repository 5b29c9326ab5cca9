// Package kernels holds cafeq's numeric core: stored weight formats (dtypes and
// packed quantized blocks), 8-bit activations, matrix-vector and matrix-matrix
// products over them, and the f32 loops of the forward pass (dot, axpy,
// RMSNorm, softmax, GELU, RoPE, logit soft-capping).
//
// # Formats
//
// Format names a stored weight type (F32, F16, BF16, Q8, Q6, Q5, and Q4/Q3 with groups
// of 32, 64 or 128 along the input axis, symmetric or asymmetric; and the
// superblock formats q4_k, q3_k (sym or asym), q5_k and q6_k: 256-weight blocks of
// 32-weight sub-groups with 6-bit scale codes under f16 super-scales,
// superblock.go). The byte
// layout of every block is documented above its type in blocks.go and in
// docs/WEIGHT-BLOCKS.md. PackRow/UnpackRow move between packed rows and integer
// levels; QuantizeRowRTN is plain round-to-nearest; DequantizeRow expands a row.
//
// # Products
//
// Matrix.MulVec (decode) and Matrix.MulMat (prefill) multiply a row range of a
// stored matrix by an Activation (one vector, f32 plus an 8-bit form with
// per-32 scales and sums) or an ActivationBatch (n tokens). Quantized weights
// meet the 8-bit form: unsigned weight levels times signed activations,
// integer sums per 32-weight chunk (VPMADDUBSW on AVX2, VPDPBUSD on
// AVX-512 VNNI), one f32 scale per chunk. The kernels are single-threaded;
// the caller splits rows across its worker pool.
//
// # Tiers
//
// Superblock formats (q4_k, q3_k, sym or asym, q5_k, q6_k) have a Tiled8 form too
// (tiles.go: one tile per superblock, the 6-bit codes unpacked to a byte per
// row and chunk) and Tiled8 kernels on every amd64 tier: decode multiplies
// each chunk's sums by code x activation scale and each superblock's total
// by the rows' D (and M), prefill converts a chunk's sub-scales once for its
// 4 tokens. Matrices whose row count is not a multiple of 8 run the
// row-major AVX2 kernels (decode 4 rows x 1 token, prefill 1 row x 4 tokens;
// the codes decoded once per superblock into a stack slot of f32
// sub-scales), which on AMD Zen 5 streamed 2.6-5.8x fewer bytes per second
// than q4_g64 Tiled8. arm64 runs them with NEON kernels of the plain
// formats' three shapes that decode the codes once per superblock into a
// stack table of f32 sub-scales, read chunk by chunk.
//
// Every kernel has a pure-Go reference (the generic tier, always compiled, the
// only tier under `-tags purego`). On amd64 the tiers are, slowest first,
// avx2 (AVX2+FMA), avx-vnni (avx2 plus VEX-encoded VPDPBUSD for the Tiled8
// kernels: Intel clients since Alder Lake, Zen 5) and avx512-vnni (AVX-512
// F/BW/VL/DQ + VNNI: row-major kernels on EVEX VPDPBUSD, the Tiled8
// kernels of avx-vnni with the EVEX encoding and 512-bit ones, and the f32
// loops on 16 lanes, their n%16 tails under a mask: see "f32 loops" below;
// where the CPU has GFNI, as every AVX-512 CPU since Ice Lake and Zen 4 does
// but Cascade Lake and Cooper Lake do not, its Tiled8 Q3, Q5 and Q6 kernels
// unpack levels with GF2P8AFFINEQB instead: ../asm/tiledgfni.go), all
// generated with avo from
// ../asm (`make generate`); arm64 has NEON tiers. The best tier the CPU
// supports is chosen once at init (golang.org/x/sys/cpu); CAFEQ_KERNELS names
// another (generic, avx2, avx-vnni, avx512-vnni, neon, neon-dotprod).
// CPUFeatures reports the choice, and tests and benchmarks switch tiers with
// ForceTier, DisableAVX512 (best tier below it) and DisableAVX2 (generic).
// On CPUs without the VNNI tiers their results are checked by interpreting
// their assembly (emu_amd64_test.go, an x86 interpreter that matches the CPU
// bit for bit on the AVX2 twins and, where the CPU has them, on the VNNI
// kernels themselves, the hand-encoded VEX VPDPBUSD included); where the CPU
// has them, the tier tests also run them natively.
//
// Decode kernels process 4 rows per call so that one activation load and its
// scale/offset work serve 4 rows; prefill kernels process one row with 4
// tokens per call (one unpack per 4 dot products) and, for rows whose length
// is a multiple of 128, fold 4 chunks' integer sums into one vector before a
// single convert and scale (superblocks). MulMat tiles tokens in blocks whose
// 8-bit activations fit in about 256 KiB, walking rows inside each block.
//
// # Measured speed
//
// Development machine: AMD EPYC (Zen 3), 2 vCPUs at ~2.45 GHz, AVX2 only (no
// AVX-512), shared with other jobs. Single thread, GB/s of packed weights,
// 2026-11-24. Row-major layout, the fastest of 100 calls (best-GB/s,
// `go test -bench 'BenchmarkMulVec/' -benchtime 100x`):
//
//	format        64x2304 (in cache)   2304x9216 (12 MB)   generic tier
//	q4_g32        15.2                 15.0                0.51
//	q4_g32_asym   12.9                 12.5                0.52
//	q3_g32        8.5                  8.2                 0.13
//	q3_g32_asym   7.9                  7.7                 0.14
//	q8_g32        22.8                 24.1                0.86
//
// The Tiled8 layout the AVX2 tier uses at run time (tiles.go;
// `-bench MulVecTiled`, mean of 1 s runs):
//
//	format        64x2304    2304x9216
//	q4_g32        30.6       29.3
//	q4_g32_asym   34.4       33.0
//	q3_g32        20.1       20.7
//	q3_g32_asym   24.0       23.8
//	q6_g32        27.1       26.9
//	q8_g32        42.0       34.7
//
// Tiled prefill (`-bench MulMatTiled`, 2304x2304, 64 tokens, best of the
// runs): q4_g32 91 GMAC/s, q4_g64_asym 92, q4_g128 94, q3_g32 84, q6_g32 69,
// q8_g32 60. The AVX-512 VNNI tier could not be run there (see Tiers above);
// the tests compare every tier the CPU has with the reference.
//
// AVX-512 machine: AMD EPYC Zen 5 ("Turin", virtualized), 2 vCPUs, AVX-512
// F/BW/VL/DQ/VNNI/BF16 and AVX-VNNI, shared with 4 other jobs (load average
// about 18), 2026-12-02. Tiled8, single thread, median of 4 runs of the best
// of 200 calls (decode, best-GB/s) or 20 calls (prefill, best-GMAC/s).
// avx512-vnni runs 512-bit kernels over pairs of row blocks;
// avx512-vnni-ymm is the same tier with its 256-bit kernels only (the ones
// avx-vnni runs with the VEX encoding), measured to choose between them:
//
//	decode GB/s       avx2    avx-vnni   avx512-vnni-ymm   avx512-vnni (ZMM)
//	q4_g32  64x2304   48.7    56.0       57.3              75.2
//	q4_g32  2304x9216 47.7    53.6       54.2              56.4
//	q4_g32_asym 64x.. 55.0    60.9       61.1              80.7
//	q3_g32  64x2304   30.0    30.6       25.2              33.9
//	q3_g32  2304x9216 31.4    31.0       31.4              36.6
//	q3_g32_asym 2304x 33.8    34.5       36.4              43.2
//	q6_g32  64x2304   39.6    39.9       39.9              45.7
//	q8_g32  64x2304   65.8    74.8       75.5              87.6
//	q8_g32  2304x9216 53.3    52.9       57.1              43.6
//
//	prefill GMAC/s    avx2    avx-vnni   avx512-vnni-ymm   avx512-vnni (ZMM)
//	q4_g32            105.8   129.6      133.5             230.7
//	q4_g64_asym       108.9   130.1      116.3             225.0
//	q4_g128           108.0   127.4      130.8             204.9
//	q3_g32            78.9    113.0      114.2             184.3
//	q6_g32            50.9    76.9       91.7              117.0
//	q8_g32            60.6    108.7      97.9              154.9
//
// The 512-bit kernels win everywhere but on the large Q8 matrix, which is
// bandwidth-bound and noisy here; Q8 only holds the small transforms (M⁻¹),
// where they win by 16%, so the tier keeps them for every format.
//
// Superblock formats on their Tiled8 kernels, per byte against q4_g64_asym:
// Intel Xeon ("Intel(R) Xeon(R) Processor", KVM, 2 vCPUs, AVX-512
// F/BW/VL/DQ/VNNI/BF16/FP16, AVX-VNNI, AMX; 2 MiB L2 per core), shared
// with other jobs (load average 11-15 on 2 cores), 2026-12-02. Single
// thread, 4 rounds, each running every format in turn (`-bench
// 'MulVecTiled/.../(2048x2304|2304x9216)/(avx2|avx512-vnni)$' -benchtime
// 200x`, best-GB/s; `-bench 'MulMatTiled/...' -benchtime 20x`, 64 tokens,
// best-GMAC/s); the median over rounds of each round's ratio to
// q4_g64_asym (bytes as in the file; the tiled form is 1.0% (q6_k) to 3.6%
// (q3_k_asym) larger):
//
//	decode GB/s       avx2                    avx512-vnni (ZMM)
//	                  2048x2304   2304x9216   2048x2304   2304x9216
//	q4_g64_asym       37.7        29.7        40.7        28.7
//	q4_k              0.96x       0.97x       1.03x       0.96x
//	q4_k_asym         0.92x       0.96x       0.93x       0.95x
//	q3_k              0.60x       0.77x       0.65x       0.79x
//	q3_k_asym         0.65x       0.80x       0.69x       0.79x
//	q6_k              0.80x       0.90x       0.77x       0.88x
//
//	prefill GMAC/s    avx2            avx512-vnni (ZMM)
//	q4_g64_asym       96.6            161.0
//	q4_k              0.94x           0.93x
//	q4_k_asym         0.95x           0.89x
//	q3_k              0.89x           0.81x
//	q3_k_asym         0.87x           0.80x
//	q6_k              0.66x           0.60x
//
// (prefill ratios spread by ±0.1 between rounds under this load). Before
// their Tiled8 form, the same rounds ran the superblock formats' row-major
// AVX2 kernels at 2048x2304 at 15.0 (q4_k), 11.2 (q4_k_asym), 8.7 (q3_k) and
// 7.9 (q3_k_asym) GB/s: tiled they are 2.3-3.6x faster. q4_k decodes at
// parity per byte within the noise; the asymmetric formats keep a 4-8% gap
// in decode and about 5-10% in prefill, the cost of a scale and a min per
// 32 weights (two code vectors widened and converted per chunk) where
// q4_g64_asym converts one f16 scale and min pair per 64.
//
// The avx512-vnni columns above are the kernels that CPUs without GFNI
// still run. With GFNI (asm/tiledgfni.go) the tier's Q3 and Q6 kernels
// unpack levels with GF2P8AFFINEQB; on the same Xeon (load average 7-13 on
// 2 cores, 2026-12-02), 4 interleaved rounds of the build with them (and
// with them switched off, "no GFNI") and of the build before them, same
// benchmarks and units, per byte against q4_g64_asym (median of the rounds'
// ratios), and "speedup", GFNI against the build before (median of the
// rounds' ratios):
//
//	decode (avx512-vnni)  2048x2304         2304x9216         speedup
//	                      GFNI    no GFNI   GFNI    no GFNI   2048x2304  2304x9216
//	q4_g64_asym GB/s      40.3    40.5      27.3    27.5
//	q3_g32                1.09x   0.73x     0.98x   0.86x     1.47x      1.17x
//	q3_g32_asym           1.10x   0.86x     0.97x   0.85x     1.30x      1.04x
//	q3_k                  0.93x   0.63x     0.94x   0.79x     1.40x      1.13x
//	q3_k_asym             0.94x   0.69x     0.92x   0.80x     1.35x      1.10x
//	q6_g32                0.76x   0.75x     1.06x   0.97x     1.01x      1.09x
//	q6_k                  0.75x   0.75x     1.03x   0.92x     1.02x      1.07x
//
//	prefill (avx512-vnni) GFNI    no GFNI   speedup
//	q4_g64_asym GMAC/s    159.8   160.5
//	q3_g32                1.01x   0.82x     1.17x
//	q3_k                  0.98x   0.81x     1.15x
//	q3_k_asym             0.99x   0.82x     1.17x
//	q6_g32                0.85x   0.68x     1.24x
//	q6_k                  0.84x   0.68x     1.34x
//
// The no-GFNI kernels ran at 0.92-1.01x the build before (the same code;
// the spread is the load). The Q3 formats now decode at 0.92-1.10x
// q4_g64_asym per byte at these shapes. Q6 decode at 2048x2304 did not
// move: its matrix (3.8 MB, 2 MiB L2) streams at the 27-30 GB/s that every
// format gets at 2304x9216. On an L2-resident 64x2304 matrix (4 rounds of
// this build, -benchtime 2000x, load average 7-8) GFNI against no GFNI:
// q6_g32 59.5 against 36.2 GB/s (1.65x), q6_k 54.7 against 35.5 (1.54x),
// q3_g32 43.7 against 29.6 (1.48x), q3_k 37.5 against 26.6 (1.41x), with
// q4_g64_asym at 56.5: in cache Q3 stays at 0.67x (q3_k) to 0.88x
// (q3_g32_asym) per byte, its 8 VPDPBUSD per 32 weights the same as Q4's
// for 3/4 of the bytes. A VPERMB table in place of the affine transform for
// the fields within bits 0..5 (it runs on port 5, the affine transform and
// VPDPBUSD on port 0) measured no faster, at 64x2304 too (4 interleaved
// rounds: q6_g32 0.98x, q6_k 1.04x, q3_g32 1.04x, q3_k 0.96x), and was
// dropped. The 512-bit kernels without GFNI fold an AND and an OR into one
// VPTERNLOGD (Q6: 8 per chunk, Q3: 2); against the build before, 4
// interleaved rounds (load average 8-9), median of the rounds' ratios:
// 1.04x for every Q3 and Q6 format at 64x2304 but q3_g32 (1.01x),
// 1.01-1.02x at 2048x2304, with the unchanged q4_g64_asym at 0.97x and
// 1.00x.
//
// The 5-bit formats (q5_g32, q5_k: a Q4 chunk plus a 1-bit plane,
// blocks.go) have the kernels Q6 has, on every tier, GFNI ones included
// (one affine transform moves a vector's bit 4 out of the plane, which
// stays in a register). Their unpack costs what Q6's does for 0.85x (q5_k:
// 0.84x) the bytes per weight, so per byte they run at about 0.85x Q6 and
// per weight at Q6's speed. AMD EPYC Zen 5 ("Turin", virtualized, 2 vCPUs,
// AVX-512 with GFNI), shared with other jobs (load average 2-5),
// 2026-12-02, single thread, 3 rounds each running every format in turn
// (`-bench 'MulVecTiled/...' -benchtime 200x`, best-GB/s; `-bench
// 'MulMatTiled/...' -benchtime 20x`, 64 tokens, best-GMAC/s; `-bench
// 'MulVec$/...' -benchtime 100x`, row-major), median of the rounds' ratios:
//
//	decode per byte, Tiled8   avx2              avx512-vnni (GFNI)   no GFNI
//	                          64x2304  2048x..  64x2304  2048x..    64x2304  2048x..
//	q5_g32 / q6_g32           0.84     0.87     0.87     0.99       0.85     0.88
//	q5_k / q6_k               0.83     0.90     0.82     0.95       0.87     0.84
//
//	prefill GMAC/s, Tiled8    avx2    avx512-vnni (GFNI)   no GFNI
//	q5_g32 / q6_g32           1.00    1.07                 1.00
//	q5_k / q6_k               1.03    1.03                 1.00
//
// Row-major decode (AVX2 and AVX-512 kernels, 64x2304 and 2048x2304):
// q5_g32 0.85-0.86x q6_g32 per byte, q5_k 0.83-0.84x q6_k. In the same
// rounds q4_g64_asym decoded at 49.6 (avx2) and 82.8 GB/s (avx512-vnni) at
// 64x2304 and q6_g32 at 34.0 and 77.7.
//
// # f32 loops
//
// The avx512-vnni tier runs the f32 loops on Z registers, 16 lanes, with
// the n%16 values left as one more step under a mask; each element-wise
// kernel does the same operations lane for lane as its AVX2 twin, so tanh
// and exp (GELU, softcap, softmax) agree with avx2 bit for bit, and only the
// sums (dot, softmax's denominator, attention scores) differ, in f32
// rounding order. The Intel Xeon above (KVM, 2 vCPUs, AVX-512), shared
// with other jobs (load average 14-17), 2026-12-02: `-bench
// 'F32/.*/.*/(avx2|avx512-vnni)$' -benchtime 0.3s`, 5 rounds, each op's two
// tiers run back to back; median ns per call
// and the median of the per-round ratios (softmax, gelumul, softcap and
// rope include a copy of the input, the same for both):
//
//	op          n=2304: avx2  avx512  ratio   n=9216: avx2  avx512  ratio
//	dot                  257     179   1.59           1671    1296   1.29
//	axpy                 321     231   1.37           1949    2263   0.86
//	max                  735     352   2.23           3540    1991   1.86
//	scale                244     183   1.39           1130     654   1.50
//	rmsnorm              729     467   1.49           4718    4184   1.14
//	softmax             3851    2256   1.71          18473   11220   1.65
//	gelumul             4133    3125   1.24          19650   15734   1.25
//	softcap             3643    3076   1.36          20480   14756   1.24
//	rope                 542     395   1.37           6063    4887   1.09
//	tof16                388     235   1.66           1595    1284   1.24
//
// The per-round ratios spread widely (axpy at 9216: 0.69-1.03; gelumul at
// 2304: 0.65-1.35) on this loaded machine. A focused re-run of dot and axpy
// at 9216 (6 rounds, load average 11.5-11.7) gave dot 1.08x (0.93-1.15) and
// axpy 0.93x (0.90-0.98): their 72 KB stream from L2, where the wider
// registers do not help; the model's residual adds are 2304 long (L1). GELU and softcap gain least: their
// division (tanh = -e/(2+e)) has the same per-lane throughput at both widths.
// Attention's rows (`-bench 'AttentionRows/(avx2|avx512-vnni)/'`, 64 cached
// rows of 256, 5 rounds, median ratio): f16 scores 1.16, f16 weighted sum
// 1.36, f32 weighted sum 1.49; f32 scores stay on the AVX2 4-row kernel (1.00).
//
// Decode, same machine and window (2B shape, q4_g64_asym RTN, output q6;
// `cafeq bench -m q4.cq -p 16 -n 32 -d 1024 -threads 2 -rounds 3`, avx2
// and avx512-vnni alternated 3 times, load average 12-18): avx2 2.27, 2.63,
// 1.33 tok/s, avx512-vnni 3.91, 1.76, 4.27; the bandwidth bench measured in
// the same runs swung from 2.2 to 6.5 GB/s, so these say nothing about a
// few percent (and avx2 also switches the matmul kernels). A CPU profile of
// one run per tier (-rounds 1 -cpuprofile, the same tokens) bounds what the
// f32 loops can give: their kernels took 3.25 CPU-s under avx2 (f16
// attention scores 1.53, weighted sums 1.38, GELU 0.34; the rest below
// pprof's cut) and 2.62 under avx512-vnni (1.23, 1.24, 0.15), of 23-34 s in
// all: about 2% of the CPU time saved, at depth 1024 where attention weighs
// most.
package kernels
