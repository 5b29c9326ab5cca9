// Package quantize is cafeq's offline, calibration-free quantizer: plain
// round to nearest (RTN), a random-sign block Hadamard rotation, and CafeQ
// (learned block-diagonal transforms, coupled V/O transforms and data-free
// alternating rounding; arXiv 2511.19705). Only summaries of the paper could
// be read: docs/QUANTIZATION.md, "How CafeQ is built", says what the paper
// states and what is this package's design.
//
// # Files, in the order a matrix goes through them
//
//   - options.go: Method, Options and their defaults.
//   - quantize.go: QuantizeShared, the driver for matrices that read one
//     input (q/k/v, gate/up, or one matrix alone).
//   - grid.go: the grid, Quantized and RTN; refine.go: the data-free scale
//     refinements (clipping search, least squares); rounding.go: GPTQ-style
//     and alternating rounding of a V/O pair.
//   - transform.go: the block-diagonal Transform, Hadamard blocks, folding
//     and rounding M^-1 to its storage format; diag.go: the diagonal input
//     transform that folds into the norms; loss.go: the exact proxy loss and
//     the smoothed range; adam.go: the optimiser of both learners.
//   - learn.go: learning one transform shared by matrices (per block);
//     coupled.go: learning a coupled V/O transform (per KV head); vo.go:
//     QuantizeVO, the V/O driver.
//   - select.go: per block, the transform or the identity, whichever is
//     exactly better; the choice every method ends with.
//   - inputcov.go: input covariances made from the model alone, and the
//     GPTQ-style re-rounding of q/k/v, gate/up and the output projection
//     for them; stream.go: the sampled one-token sequences carried through
//     the layers that they come from.
//   - budget.go: a size in bits per linear weight, everything counted
//     (-bpw): each tensor's grid, chosen by the proxy loss within it.
//   - checkpoint.go: a whole Gemma 2 checkpoint into a .cq file;
//     report.go: the -report JSON and SVG.
//   - linalg.go: small dense helpers (gonum conversions, inverse, gemm);
//     parallel.go: parallelFor.
//
// # Storage
//
// A matrix is row-major W[out][in] (PyTorch layout). It is stored on a Grid
// (3 or 4 bits, groups of 32/64/128 along the input axis, symmetric or
// asymmetric, float16 scales; or q6/q8, symmetric groups of 32, which the
// bit budget gives sensitive matrices) as a Quantized: one integer level per weight
// and one scale (and min) per group, which kernels.PackRow writes as is.
// Plain RTN is kernels.QuantizeRowRTN itself, so the two cannot disagree.
//
// # Transforms
//
// A Transform M = diag(M_0..M_{K-1}) acts on the input axis. The quantizer
// stores Q(W·M) and hands the runtime Transform.Inv = M^-1 (float32, one
// Block x Block row-major matrix per block); the runtime computes
// x' = M^-1 x once per distinct input and y = Q(W·M)·x', since
// W x = (W M)(M^-1 x). Matrices that read the same input (q/k/v, gate/up)
// share one transform. Hadamard blocks must be a power of two dividing the
// columns: 2304 = 9*256 gets nine independent 256-blocks.
//
// Two transforms cost nothing at run time: the V/O transform is folded
// into the weights (see QuantizeVO), and a learned diagonal D of each
// shared input is folded into what makes that input (the RMSNorm before
// q/k/v and gate/up, up_proj's rows before down_proj; see diag.go). The
// CLI's default keeps only these (-block 0); a block M, when asked for, is
// learned on W·D.
//
// # Proxy loss
//
// Every reported error is exact: ||W - Q(W·M)·M^-1||_F / ||W||_F (RelError),
// measured with the float16 scales that are stored. The learned transforms
// descend a smooth surrogate (LogSumExp-smoothed group ranges times the row
// norms of M^-1, see surrogate) but keep an iterate only when its exact
// error is lower, and fall back to the identity per block (a shared block
// is kept only if no matrix of the group gets worse): CafeQ is never worse
// than RTN on any matrix, nor on the V/O paired error. The input-covariance
// re-rounding (inputcov.go, CheckpointOptions.InputCov) then trades this
// error for the one the model feels, tr(Δ H Δᵀ), and is kept only where
// that falls; the report gives its ratio (input_cov_ratio) and the larger
// Frobenius error.
//
// # Cost
//
// Options.Steps (Adam steps per block and start) is the budget knob; the
// time is about linear in it. BenchmarkCafeQ2BLayer (one Gemma-2-2B-shaped
// layer of random weights with outlier columns: q/k/v shared, V/O coupled
// with alternating rounding, gate/up shared, down transformed, both
// refinements, 3-bit, block 256, 16 steps) measured 108 CPU-seconds per
// layer on the 2-core AMD EPYC build machine (process CPU time; the machine
// was shared, so wall time was about twice that). One 9216 x 2304 matrix
// alone (BenchmarkCafeQ2BMatrix) takes about 11 CPU-seconds.
//
// With the CLI's default parts (no transform on down_proj), a whole 2B
// checkpoint took 1,912 CPU-seconds at 16 steps. The default is now 64:
// on a 2-layer 2B-shaped checkpoint (`cafeq synth -preset 2b -layers 2`,
// 3-bit, group 64) 16 steps took 134 CPU-seconds and 64 took 238, so 48
// more steps cost about 52 CPU-seconds per layer, and a whole 2B model
// about 3,300 CPU-seconds: some 27 minutes on 2 idle cores. The extra
// steps pay: 3-bit KL on the trained test model fell by 30%.
//
// The CLI's default since then (-bpw 4.5: the bit-budget search, the
// diagonals, no block M, 64 steps for V/O) on the same 2-layer 2B-shaped
// checkpoint took 214 CPU-seconds against 26 for plain RTN (which is mostly
// the embedding), so about 94 CPU-seconds per layer: a whole 2B model some
// 2,470 CPU-seconds, about 21 minutes on 2 idle cores. (Measured on
// 2026-12-02 on the 2-core AMD EPYC build machine with a load average near
// 25, so as process CPU time; wall time was 24 minutes for the 2 layers.)
// The least-squares refinement of the embedding, added since, costs about 23
// CPU-seconds more once per model (2B embedding: 32 against 9 for plain
// rounding, 2-core Intel Xeon), and the budget's blockGains about 1 (one
// read of the embedding); nothing per layer. With the superblock grids
// among the budget's default candidates (5 more grids scored per matrix
// besides the 14 plain ones), a whole synthetic 2B at the default settings
// took 20 minutes 8 seconds of wall time and 2,238 CPU-seconds on 2
// otherwise idle cores (2-core Intel Xeon, 2026-12-02; peak RSS 5.9 GiB).
//
// The input covariances (inputcov.go, on by default since 2026-12-03) add
// about 9 CPU-seconds once (H0 from 9,216 embedding rows), the stream's
// forward pass, a moment and a factorisation per norm, and the re-rounding
// of q/k/v, gate/up and the 256,000-row output projection. A whole
// synthetic 2B at the default settings then took 25 minutes 52 seconds of
// wall time and 2,735 CPU-seconds on 2 cores (2-core Intel Xeon,
// 2026-12-03; peak RSS 6.5 GiB; `/usr/bin/time cafeq quantize -m 2b -o
// 2b.cq` on `cafeq synth -preset 2b`; a few niced small-model jobs ran
// beside it in its first 18 minutes). The build before the re-rounding's
// in-batch feedback moved to the SIMD axpy took 28 minutes 32 seconds and
// 3,049 CPU-seconds.
package quantize
