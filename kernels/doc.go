// Package kernels holds cafeq's numeric core: stored weight formats (dtypes and
// packed quantized blocks), 8-bit activations, matrix-vector and matrix-matrix
// products over them, and the f32 loops of the forward pass (dot, axpy,
// RMSNorm, softmax, GELU, RoPE, logit soft-capping).
//
// # Formats
//
// Format names a stored weight type (F32, F16, BF16, Q8, and Q4/Q3 with groups
// of 32, 64 or 128 along the input axis, symmetric or asymmetric). The byte
// layout of every block is documented above its type in blocks.go and in
// docs/FORMAT.md. PackRow/UnpackRow move between packed rows and integer
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
// Every kernel has a pure-Go reference (the generic tier, always compiled, the
// only tier under `-tags purego`). On amd64 the AVX2+FMA tier and the
// AVX-512+VNNI tier are generated with avo from ../asm (`make generate`);
// arm64 has NEON tiers. The best tier the CPU supports is chosen once at init
// (golang.org/x/sys/cpu); CPUFeatures reports it, and tests and benchmarks
// switch tiers with ForceTier, DisableAVX512 and DisableAVX2.
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
// On the development machine (AMD EPYC, 2 vCPUs at ~2.45 GHz, AVX2 only, no
// AVX-512; shared and heavily loaded, so the best of 200 calls is quoted),
// single-thread MulVec on the 2B shapes (`go test -bench MulVec -benchtime
// 200x`, best-GB/s of packed weights): q4_g32 2304x9216 13.6 GB/s, 64x2304
// (cache-resident) 14.3 GB/s; q4_g32_asym 10.6 GB/s; q3_g32_asym 6.4 GB/s;
// q8_g32 ~27 GB/s cache-resident. The generic tier runs at 0.1-0.4 GB/s. The
// AVX-512 VNNI tier could not be run there (see the kernels tests, which
// compare every tier the CPU has with the reference).
package kernels
