// Package quantize is cafeq's offline, calibration-free quantizer: plain
// round to nearest (RTN), a random-sign block Hadamard rotation, and CafeQ
// (learned block-diagonal transforms, coupled V/O transforms and data-free
// alternating rounding; arXiv 2511.19705, reconstructed in CAFEQ.md).
//
// # Storage
//
// A matrix is row-major W[out][in] (PyTorch layout). It is stored on a Grid
// (3 or 4 bits, groups of 32/64/128 along the input axis, symmetric or
// asymmetric, float16 scales) as a Quantized: one integer level per weight
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
// The V/O transform is folded into the weights and costs nothing at run
// time (see QuantizeVO).
//
// # Proxy loss
//
// Every reported error is exact: ||W - Q(W·M)·M^-1||_F / ||W||_F (RelError),
// measured with the float16 scales that are stored. The learned transforms
// descend a smooth surrogate (LogSumExp-smoothed group ranges times the row
// norms of M^-1, see surrogate) but keep an iterate only when its exact
// error is lower, and fall back to the identity per block (a shared block
// is kept only if no matrix of the group gets worse): CafeQ is never worse
// than RTN on any matrix, nor on the V/O paired error.
//
// # Cost
//
// Options.Steps (Adam steps per block) is the budget knob. With the default
// (DefaultSteps, block 256, rounding on) one Gemma-2-2B-shaped layer takes
// about 85 CPU-seconds (BenchmarkCafeQ2BLayer, 2-core AMD EPYC, measured as
// process CPU time on a shared machine), so a 26-layer 2B model is about
// 37 CPU-minutes: under 20 minutes of wall time on 2 idle cores.
//
// # API
//
//	QuantizeMatrix(m, opt)            one matrix
//	QuantizeShared(ms, opt)           matrices sharing an input and a transform
//	QuantizeVO(v, o, heads, kv, hd, opt)  a V/O pair with coupled transforms
//	RTN(grid, w, rows, cols)          plain round to nearest
//	RelError(w, q, t)                 the exact proxy loss
//
// Each returns the Quantized matrices, the transform (nil for identity) and
// one report Entry per tensor. A Gemma 2 layer is quantized as
//
//	qkv, _ := QuantizeShared([]Matrix{q, k, v}, opt) // runtime: x' = qkv.Transform.Inv · x
//	vin, _ := qkv.Transform.Fold(v)                  // v in the q/k/v input basis
//	vo, _ := QuantizeVO(vin, o, heads, kvHeads, headDim, opt)
//	// store qkv.Q[0], qkv.Q[1] (q, k), vo.V (replaces qkv.Q[2]) and vo.O
//	ffn, _ := QuantizeShared([]Matrix{gate, up}, opt)
//	down, _ := QuantizeMatrix(downW, opt)
//
// The V/O transforms are folded into vo.V and vo.O (nothing for the
// runtime); the q/k/v, gate/up and down transforms are applied to the
// activations by the runtime. Options.Method picks "rtn", "hadamard" or
// "cafeq"; Options.Refine enables per-group scale/min refinement (clipping
// search and HQQ-style least squares), which is only kept where it lowers
// the exact error. Work runs on every core (blocks and rows in parallel).
package quantize
