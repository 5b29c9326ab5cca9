//go:build arm64 && !purego

// NEON kernels for arm64: the quantized row dot (one packed row against one
// 8-bit activation, see dotRowGeneric) for every quantized format, in two
// tiers (baseline NEON: SMULL/SADALP; dotprod: SDOT), and the f32 dot and
// axpy loops.
//
// Go's arm64 assembler has no SDOT, SMULL, SADALP, SCVTF (vector), FADD
// (vector) or FADDP; those are written as WORD with the instruction in the
// comment. The encodings were produced with GNU as (binutils-aarch64) and are
// checked by running every tier against the generic reference under
// qemu-aarch64 (kernels_arm64_test.go).

#include "textflag.h"

// Registers of the quantized row dot.
#define W_PTR R0     // packed row, advances through group headers and chunks
#define Q_PTR R1     // activation int8 values, 32 per chunk
#define D_PTR R2     // activation scales, one per chunk
#define S_PTR R3     // activation block sums, one per chunk (asym only)
#define GROUPS R4    // groups left
#define CPG R5       // chunks per group
#define CHUNKS R6    // chunks left in this group
#define TMP R7
//   V0, V1: the chunk's 32 weight levels (element order, minus the offset when symmetric)
//   V2, V3: the block's 32 activations
//   V4:     4 int32 lane sums of level*activation
//   F5:     dw*d[b];  F6: scratch
//   V8:     4 f32 lane accumulators of (dw*d[b])*lanes
//   F9:     asym: scalar accumulator of mw*(d[b]*s[b])
//   F22:    group scale dw;  F23: group min mw
//   V16-V20: scratch;  V26-V31: constants

// ---- group headers: f16 scale (and f16 min) converted to f32 ----

// F22 = f16 d
#define HEADER_SYM \
	MOVHU.P 2(W_PTR), TMP; \
	FMOVS   TMP, F22;      \
	FCVTHS  F22, F22

// F22 = f16 d, F23 = f16 m
#define HEADER_ASYM \
	HEADER_SYM;            \
	MOVHU.P 2(W_PTR), TMP; \
	FMOVS   TMP, F23;      \
	FCVTHS  F23, F23

// ---- chunk unpacking into V0 (weights 0..15) and V1 (weights 16..31) ----

// Q4: byte i holds weight i (low nibble) and weight 16+i (high nibble).
// Needs V31 = 0x0F.
#define UNPACK_Q4(WP) \
	VLD1.P 16(WP), [V0.B16];   \ // V0 = 16 packed bytes
	VUSHR  $4, V0.B16, V1.B16;    \ // V1 = high nibbles: weights 16..31
	VAND   V31.B16, V0.B16, V0.B16  // V0 = low nibbles: weights 0..15

// Q3: low plane byte i, bits 2k..2k+1 = bits 0..1 of weight 8k+i; high plane
// byte 8+j, bit l = bit 2 of weight 4l+j. Needs V26 = 0x04, V27 = 0x03,
// V28 = bytes {1,1,1,1,2,2,2,2,4,4,4,4,8,8,8,8}, V29 = V28<<4.
#define UNPACK_Q3(WP) \
	VLD1.P  8(WP), [V16.B8];        \ // V16.D[0] = low plane p
	VUSHR   $2, V16.B8, V17.B8;        \ // V17.D[0] = p>>2
	VZIP1   V17.D2, V16.D2, V0.D2;     \ // V0 = [p, p>>2]: weights 0..7, 8..15 (bits 0..1)
	VUSHR   $4, V0.B16, V1.B16;        \ // V1 = [p>>4, p>>6]: weights 16..23, 24..31
	VAND    V27.B16, V0.B16, V0.B16;   \
	VAND    V27.B16, V1.B16, V1.B16;   \
	VLD1R.P 4(WP), [V18.S4];        \ // V18 = high plane h0 h1 h2 h3, 4 times: byte e is h[e%4]
	VCMTST  V28.B16, V18.B16, V19.B16; \ // byte e (0..15): 0xFF if bit e/4 of h[e%4] is set
	VCMTST  V29.B16, V18.B16, V20.B16; \ // byte e (16..31): same with bit e/4
	VAND    V26.B16, V19.B16, V19.B16; \ // 0xFF -> 4
	VAND    V26.B16, V20.B16, V20.B16; \
	VORR    V19.B16, V0.B16, V0.B16;   \
	VORR    V20.B16, V1.B16, V1.B16

// Q8: 32 signed bytes q-128, i.e. the level minus the symmetric offset already.
#define UNPACK_Q8(WP) \
	VLD1.P 32(WP), [V0.B16, V1.B16]

// Symmetric formats subtract the level offset (V30) so that the integer dot
// is sum (level-o)*a = isum - o*S directly (S is the sum of the block's
// activations by construction, see Activation).
#define OFFSET_SYM \
	VSUB V30.B16, V0.B16, V0.B16; \
	VSUB V30.B16, V1.B16, V1.B16

#define OFFSET_NONE

// ---- V4 = 4 int32 lane sums of V0*V2 + V1*V3 (signed bytes) ----

// Baseline: widening multiplies into 16 bits (|product| <= 128*128 fits
// int16), then pairwise widening adds into 32 bits.
#define IDOT_NEON \
	WORD $0x0e22c010; \ // SMULL  V16.8H, V0.8B, V2.8B
	WORD $0x4e22c011; \ // SMULL2 V17.8H, V0.16B, V2.16B
	WORD $0x0e23c032; \ // SMULL  V18.8H, V1.8B, V3.8B
	WORD $0x4e23c033; \ // SMULL2 V19.8H, V1.16B, V3.16B
	WORD $0x4e602a04; \ // SADDLP V4.4S, V16.8H
	WORD $0x4e606a24; \ // SADALP V4.4S, V17.8H
	WORD $0x4e606a44; \ // SADALP V4.4S, V18.8H
	WORD $0x4e606a64    // SADALP V4.4S, V19.8H

// dotprod: SDOT sums four byte products into each int32 lane.
#define IDOT_SDOT \
	VEOR V4.B16, V4.B16, V4.B16; \
	WORD $0x4e829404;            \ // SDOT V4.4S, V0.16B, V2.16B
	WORD $0x4e839424               // SDOT V4.4S, V1.16B, V3.16B

// ---- per-chunk float accumulation ----

// sym: ACCV += (dw*d[b]) * lanes. FMLA is the encoding of
// FMLA ACCV.4S, V4.4S, V5.S[0] for the chosen accumulator (see ACCV_*).
#define ACC_SYM(DP, SP, MINF, FMLA) \
	WORD    $0x4e21d884;  \ // SCVTF V4.4S, V4.4S
	FMOVS.P 4(DP), F5;    \ // F5 = d[b]
	FMULS   F22, F5, F5;  \ // F5 = dw*d[b]
	WORD    $FMLA

// asym: also MINF += mw * (d[b]*float32(s[b]))
#define ACC_ASYM(DP, SP, MINF, FMLA) \
	WORD    $0x4e21d884;  \ // SCVTF V4.4S, V4.4S
	FMOVS.P 4(DP), F5;    \ // F5 = d[b]
	MOVW.P  4(SP), TMP;   \ // TMP = s[b]
	SCVTFWS TMP, F6;      \
	FMULS   F5, F6, F6;   \ // F6 = d[b]*s[b]
	FMADDS  F23, MINF, F6, MINF; \ // MINF += mw*F6
	FMULS   F22, F5, F5;  \ // F5 = dw*d[b]
	WORD    $FMLA

#define ACCV_8 0x4f851088  // FMLA V8.4S, V4.4S, V5.S[0]
#define ACCV_9 0x4f851089  // FMLA V9.4S, V4.4S, V5.S[0]
#define ACCV_10 0x4f85108a // FMLA V10.4S, V4.4S, V5.S[0]
#define ACCV_11 0x4f85108b // FMLA V11.4S, V4.4S, V5.S[0]

// ---- constants ----

#define CONSTS \
	VMOVI $15, V31.B16;                 \
	VMOVI $3, V27.B16;                  \
	VMOVI $4, V26.B16;                  \
	MOVD  $0x0202020201010101, TMP;     \
	VMOV  TMP, V28.D[0];                \
	MOVD  $0x0808080804040404, TMP;     \
	VMOV  TMP, V28.D[1];                \
	VSHL  $4, V28.B16, V29.B16

// ROWDOT defines one kernel:
//
//	func NAME(w *byte, q *int8, d *float32, s *int32, groups, cpg uintptr) float32
//
// returning dotRowGeneric's sum for a row of `groups` groups of `cpg` chunks
// (groups >= 1).
#define ROWDOT(NAME, OFF, HEADER, UNPACK, OFFSET, IDOT, ACC) \
TEXT NAME(SB), NOSPLIT, $0-52;     \
	MOVD w+0(FP), W_PTR;           \
	MOVD q+8(FP), Q_PTR;           \
	MOVD d+16(FP), D_PTR;          \
	MOVD s+24(FP), S_PTR;          \
	MOVD groups+32(FP), GROUPS;    \
	MOVD cpg+40(FP), CPG;          \
	CONSTS;                        \
	VMOVI $OFF, V30.B16;           \
	VEOR  V8.B16, V8.B16, V8.B16;  \
	VEOR  V9.B16, V9.B16, V9.B16;  \
	CBZ   GROUPS, done;            \
group:                             \
	HEADER;                        \
	MOVD CPG, CHUNKS;              \
chunk:                             \
	UNPACK(W_PTR);                 \
	OFFSET;                        \
	VLD1.P 32(Q_PTR), [V2.B16, V3.B16]; \
	IDOT;                          \
	ACC(D_PTR, S_PTR, F9, ACCV_8); \
	SUBS $1, CHUNKS;               \
	BNE  chunk;                    \
	SUBS $1, GROUPS;               \
	BNE  group;                    \
done:                              \
	WORD $0x6e28d508;              \ // FADDP V8.4S, V8.4S, V8.4S
	WORD $0x7e30d908;              \ // FADDP S8, V8.2S
	FADDS F9, F8, F8;              \
	FMOVS F8, ret+48(FP);          \
	RET

ROWDOT(·q4SymNEON, 8, HEADER_SYM, UNPACK_Q4, OFFSET_SYM, IDOT_NEON, ACC_SYM)
ROWDOT(·q4AsymNEON, 0, HEADER_ASYM, UNPACK_Q4, OFFSET_NONE, IDOT_NEON, ACC_ASYM)
ROWDOT(·q3SymNEON, 4, HEADER_SYM, UNPACK_Q3, OFFSET_SYM, IDOT_NEON, ACC_SYM)
ROWDOT(·q3AsymNEON, 0, HEADER_ASYM, UNPACK_Q3, OFFSET_NONE, IDOT_NEON, ACC_ASYM)
ROWDOT(·q8SymNEON, 0, HEADER_SYM, UNPACK_Q8, OFFSET_NONE, IDOT_NEON, ACC_SYM)

ROWDOT(·q4SymSDOT, 8, HEADER_SYM, UNPACK_Q4, OFFSET_SYM, IDOT_SDOT, ACC_SYM)
ROWDOT(·q4AsymSDOT, 0, HEADER_ASYM, UNPACK_Q4, OFFSET_NONE, IDOT_SDOT, ACC_ASYM)
ROWDOT(·q3SymSDOT, 4, HEADER_SYM, UNPACK_Q3, OFFSET_SYM, IDOT_SDOT, ACC_SYM)
ROWDOT(·q3AsymSDOT, 0, HEADER_ASYM, UNPACK_Q3, OFFSET_NONE, IDOT_SDOT, ACC_ASYM)
ROWDOT(·q8SymSDOT, 0, HEADER_SYM, UNPACK_Q8, OFFSET_NONE, IDOT_SDOT, ACC_SYM)

// Registers of the 4 rows x 1 token kernels: row r reads its packed bytes
// through Wr and accumulates into V(8+r); V12 holds the four rows' min terms.
#define W1 R21
#define W2 R22
#define W3 R23
#define WSTRIDE R9
#define OUT R10
//   V22 = [dw0, dw1, dw2, dw3], V23 = [mw0, mw1, mw2, mw3] of the current group
//   F7 = d[b];  V5 = V22*d[b];  F6 = d[b]*s[b]

// HEADER4_SYM loads the four rows' f16 scales into V22 as f32.
#define HEADER4_SYM \
	MOVHU.P 2(W_PTR), TMP; \
	VMOV    TMP, V22.H[0]; \
	MOVHU.P 2(W1), TMP;    \
	VMOV    TMP, V22.H[1]; \
	MOVHU.P 2(W2), TMP;    \
	VMOV    TMP, V22.H[2]; \
	MOVHU.P 2(W3), TMP;    \
	VMOV    TMP, V22.H[3]; \
	WORD    $0x0e217ad6      // FCVTL V22.4S, V22.4H

// HEADER4_ASYM also loads the mins into V23.
#define HEADER4_ASYM \
	HEADER4_SYM;           \
	MOVHU.P 2(W_PTR), TMP; \
	VMOV    TMP, V23.H[0]; \
	MOVHU.P 2(W1), TMP;    \
	VMOV    TMP, V23.H[1]; \
	MOVHU.P 2(W2), TMP;    \
	VMOV    TMP, V23.H[2]; \
	MOVHU.P 2(W3), TMP;    \
	VMOV    TMP, V23.H[3]; \
	WORD    $0x0e217af7      // FCVTL V23.4S, V23.4H

// CHUNK4_SYM: per-chunk scales for the four rows.
#define CHUNK4_SYM \
	FMOVS.P 4(D_PTR), F7; \ // F7 = d[b]
	WORD    $0x4f8792c5     // FMUL V5.4S, V22.4S, V7.S[0]: V5 = dw_r*d[b]

// CHUNK4_ASYM: also V12 += mw_r * (d[b]*float32(s[b])).
#define CHUNK4_ASYM \
	CHUNK4_SYM;           \
	MOVW.P  4(S_PTR), TMP; \
	SCVTFWS TMP, F6;      \
	FMULS   F7, F6, F6;   \ // F6 = d[b]*s[b]
	WORD    $0x4f8612ec     // FMLA V12.4S, V23.4S, V6.S[0]

// One row's share of a chunk: unpack its weights, dot with V2/V3 and
// accumulate lane-wise (FMLA is FMLA V(8+r).4S, V4.4S, V5.S[r]).
#define ROW(WP, FMLA, UNPACK, OFFSET, IDOT) \
	UNPACK(WP);          \
	OFFSET;              \
	IDOT;                \
	WORD $0x4e21d884;    \ // SCVTF V4.4S, V4.4S
	WORD $FMLA

// ROWS4 defines one decode kernel:
//
//	func NAME(out *float32, w *byte, wstride uintptr, q *int8, d *float32, s *int32, groups, cpg uintptr)
//
// out[r] = the dot of row r (at w + r*wstride) with the activation, r < 4.
// The activation chunk and its scale are loaded once for the four rows.
#define ROWS4(NAME, OFF, HEADER, CHUNK, UNPACK, OFFSET, IDOT) \
TEXT NAME(SB), NOSPLIT, $0-64;       \
	MOVD out+0(FP), OUT;             \
	MOVD w+8(FP), W_PTR;             \
	MOVD wstride+16(FP), WSTRIDE;    \
	MOVD q+24(FP), Q_PTR;            \
	MOVD d+32(FP), D_PTR;            \
	MOVD s+40(FP), S_PTR;            \
	MOVD groups+48(FP), GROUPS;      \
	MOVD cpg+56(FP), CPG;            \
	ADD  WSTRIDE, W_PTR, W1;         \
	ADD  WSTRIDE, W1, W2;            \
	ADD  WSTRIDE, W2, W3;            \
	CONSTS;                          \
	VMOVI $OFF, V30.B16;             \
	VEOR  V8.B16, V8.B16, V8.B16;    \
	VEOR  V9.B16, V9.B16, V9.B16;    \
	VEOR  V10.B16, V10.B16, V10.B16; \
	VEOR  V11.B16, V11.B16, V11.B16; \
	VEOR  V12.B16, V12.B16, V12.B16; \
	CBZ   GROUPS, done;              \
group:                               \
	HEADER;                          \
	MOVD CPG, CHUNKS;                \
chunk:                               \
	VLD1.P 32(Q_PTR), [V2.B16, V3.B16]; \
	CHUNK;                           \
	ROW(W_PTR, 0x4f851088, UNPACK, OFFSET, IDOT); \ // FMLA V8.4S, V4.4S, V5.S[0]
	ROW(W1, 0x4fa51089, UNPACK, OFFSET, IDOT);    \ // FMLA V9.4S, V4.4S, V5.S[1]
	ROW(W2, 0x4f85188a, UNPACK, OFFSET, IDOT);    \ // FMLA V10.4S, V4.4S, V5.S[2]
	ROW(W3, 0x4fa5188b, UNPACK, OFFSET, IDOT);    \ // FMLA V11.4S, V4.4S, V5.S[3]
	SUBS $1, CHUNKS;                 \
	BNE  chunk;                      \
	SUBS $1, GROUPS;                 \
	BNE  group;                      \
done:                                \
	WORD $0x6e29d508;                \ // FADDP V8.4S, V8.4S, V9.4S
	WORD $0x6e2bd54a;                \ // FADDP V10.4S, V10.4S, V11.4S
	WORD $0x6e2ad508;                \ // FADDP V8.4S, V8.4S, V10.4S: [r0, r1, r2, r3]
	WORD $0x4e2cd508;                \ // FADD V8.4S, V8.4S, V12.4S
	VST1 [V8.S4], (OUT);             \
	RET

ROWS4(·q4SymR4NEON, 8, HEADER4_SYM, CHUNK4_SYM, UNPACK_Q4, OFFSET_SYM, IDOT_NEON)
ROWS4(·q4AsymR4NEON, 0, HEADER4_ASYM, CHUNK4_ASYM, UNPACK_Q4, OFFSET_NONE, IDOT_NEON)
ROWS4(·q3SymR4NEON, 4, HEADER4_SYM, CHUNK4_SYM, UNPACK_Q3, OFFSET_SYM, IDOT_NEON)
ROWS4(·q3AsymR4NEON, 0, HEADER4_ASYM, CHUNK4_ASYM, UNPACK_Q3, OFFSET_NONE, IDOT_NEON)
ROWS4(·q8SymR4NEON, 0, HEADER4_SYM, CHUNK4_SYM, UNPACK_Q8, OFFSET_NONE, IDOT_NEON)

ROWS4(·q4SymR4SDOT, 8, HEADER4_SYM, CHUNK4_SYM, UNPACK_Q4, OFFSET_SYM, IDOT_SDOT)
ROWS4(·q4AsymR4SDOT, 0, HEADER4_ASYM, CHUNK4_ASYM, UNPACK_Q4, OFFSET_NONE, IDOT_SDOT)
ROWS4(·q3SymR4SDOT, 4, HEADER4_SYM, CHUNK4_SYM, UNPACK_Q3, OFFSET_SYM, IDOT_SDOT)
ROWS4(·q3AsymR4SDOT, 0, HEADER4_ASYM, CHUNK4_ASYM, UNPACK_Q3, OFFSET_NONE, IDOT_SDOT)
ROWS4(·q8SymR4SDOT, 0, HEADER4_SYM, CHUNK4_SYM, UNPACK_Q8, OFFSET_NONE, IDOT_SDOT)

// Registers of the 1 row x 4 tokens kernels: token t reads its activation
// through its own Q/D/S pointers and accumulates into V(8+t) and F(12+t).
#define T1_Q R11
#define T2_Q R12
#define T3_Q R13
#define T1_D R14
#define T2_D R15
#define T3_D R16
#define T1_S R17
#define T2_S R19
#define T3_S R20
#define ASTRIDE R8   // blocks per token (Activation.D/S stride)

// One token's share of a chunk: its activations against V0/V1.
#define TOKEN(QP, DP, SP, MINF, ACCV, IDOT, ACC) \
	VLD1.P 32(QP), [V2.B16, V3.B16]; \
	IDOT;                            \
	ACC(DP, SP, MINF, ACCV)

// ROWDOT4 defines one prefill kernel:
//
//	func NAME(out *float32, w *byte, q *int8, d *float32, s *int32, astride, groups, cpg uintptr)
//
// out[t] = the row's dot with token t for t < 4, where token t's activation
// is q[t*astride*32:], d[t*astride:], s[t*astride:]. Each chunk is unpacked
// once for the four tokens.
#define ROWDOT4(NAME, OFF, HEADER, UNPACK, OFFSET, IDOT, ACC) \
TEXT NAME(SB), NOSPLIT, $0-64;       \
	MOVD out+0(FP), OUT;             \
	MOVD w+8(FP), W_PTR;             \
	MOVD q+16(FP), Q_PTR;            \
	MOVD d+24(FP), D_PTR;            \
	MOVD s+32(FP), S_PTR;            \
	MOVD astride+40(FP), ASTRIDE;    \
	MOVD groups+48(FP), GROUPS;      \
	MOVD cpg+56(FP), CPG;            \
	ADD  ASTRIDE<<5, Q_PTR, T1_Q;      \ // 32 int8 per block
	ADD  ASTRIDE<<5, T1_Q, T2_Q;         \
	ADD  ASTRIDE<<5, T2_Q, T3_Q;         \
	ADD  ASTRIDE<<2, D_PTR, T1_D;      \ // 4 bytes per scale
	ADD  ASTRIDE<<2, T1_D, T2_D;         \
	ADD  ASTRIDE<<2, T2_D, T3_D;         \
	ADD  ASTRIDE<<2, S_PTR, T1_S;      \
	ADD  ASTRIDE<<2, T1_S, T2_S;         \
	ADD  ASTRIDE<<2, T2_S, T3_S;         \
	CONSTS;                          \
	VMOVI $OFF, V30.B16;             \
	VEOR  V8.B16, V8.B16, V8.B16;    \
	VEOR  V9.B16, V9.B16, V9.B16;    \
	VEOR  V10.B16, V10.B16, V10.B16; \
	VEOR  V11.B16, V11.B16, V11.B16; \
	VEOR  V12.B16, V12.B16, V12.B16; \
	VEOR  V13.B16, V13.B16, V13.B16; \
	VEOR  V14.B16, V14.B16, V14.B16; \
	VEOR  V15.B16, V15.B16, V15.B16; \
	CBZ   GROUPS, done;              \
group:                               \
	HEADER;                          \
	MOVD CPG, CHUNKS;                \
chunk:                               \
	UNPACK(W_PTR);                   \
	OFFSET;                          \
	TOKEN(Q_PTR, D_PTR, S_PTR, F12, ACCV_8, IDOT, ACC);  \
	TOKEN(T1_Q, T1_D, T1_S, F13, ACCV_9, IDOT, ACC);           \
	TOKEN(T2_Q, T2_D, T2_S, F14, ACCV_10, IDOT, ACC);          \
	TOKEN(T3_Q, T3_D, T3_S, F15, ACCV_11, IDOT, ACC);          \
	SUBS $1, CHUNKS;                 \
	BNE  chunk;                      \
	SUBS $1, GROUPS;                 \
	BNE  group;                      \
done:                                \
	WORD $0x6e29d508;                \ // FADDP V8.4S, V8.4S, V9.4S: [t0 01, t0 23, t1 01, t1 23]
	WORD $0x6e2bd54a;                \ // FADDP V10.4S, V10.4S, V11.4S
	WORD $0x6e2ad508;                \ // FADDP V8.4S, V8.4S, V10.4S: [t0, t1, t2, t3]
	VMOV V13.S[0], V12.S[1];         \ // V12 = [F12, F13, F14, F15]
	VMOV V14.S[0], V12.S[2];         \
	VMOV V15.S[0], V12.S[3];         \
	WORD $0x4e2cd508;                \ // FADD V8.4S, V8.4S, V12.4S
	VST1 [V8.S4], (OUT);             \
	RET

ROWDOT4(·q4SymT4NEON, 8, HEADER_SYM, UNPACK_Q4, OFFSET_SYM, IDOT_NEON, ACC_SYM)
ROWDOT4(·q4AsymT4NEON, 0, HEADER_ASYM, UNPACK_Q4, OFFSET_NONE, IDOT_NEON, ACC_ASYM)
ROWDOT4(·q3SymT4NEON, 4, HEADER_SYM, UNPACK_Q3, OFFSET_SYM, IDOT_NEON, ACC_SYM)
ROWDOT4(·q3AsymT4NEON, 0, HEADER_ASYM, UNPACK_Q3, OFFSET_NONE, IDOT_NEON, ACC_ASYM)
ROWDOT4(·q8SymT4NEON, 0, HEADER_SYM, UNPACK_Q8, OFFSET_NONE, IDOT_NEON, ACC_SYM)

ROWDOT4(·q4SymT4SDOT, 8, HEADER_SYM, UNPACK_Q4, OFFSET_SYM, IDOT_SDOT, ACC_SYM)
ROWDOT4(·q4AsymT4SDOT, 0, HEADER_ASYM, UNPACK_Q4, OFFSET_NONE, IDOT_SDOT, ACC_ASYM)
ROWDOT4(·q3SymT4SDOT, 4, HEADER_SYM, UNPACK_Q3, OFFSET_SYM, IDOT_SDOT, ACC_SYM)
ROWDOT4(·q3AsymT4SDOT, 0, HEADER_ASYM, UNPACK_Q3, OFFSET_NONE, IDOT_SDOT, ACC_ASYM)
ROWDOT4(·q8SymT4SDOT, 0, HEADER_SYM, UNPACK_Q8, OFFSET_NONE, IDOT_SDOT, ACC_SYM)

// func dotF32NEON(a, b *float32, n uintptr) float32
// 16 floats per iteration in four accumulators, then 4, then 1.
TEXT ·dotF32NEON(SB), NOSPLIT, $0-28
	MOVD a+0(FP), R0
	MOVD b+8(FP), R1
	MOVD n+16(FP), R2
	VEOR V16.B16, V16.B16, V16.B16
	VEOR V17.B16, V17.B16, V17.B16
	VEOR V18.B16, V18.B16, V18.B16
	VEOR V19.B16, V19.B16, V19.B16

loop16:
	CMP  $16, R2
	BLT  loop4
	VLD1.P 64(R0), [V0.S4, V1.S4, V2.S4, V3.S4]
	VLD1.P 64(R1), [V4.S4, V5.S4, V6.S4, V7.S4]
	VFMLA V4.S4, V0.S4, V16.S4 // V16 += a[0:4]*b[0:4]
	VFMLA V5.S4, V1.S4, V17.S4
	VFMLA V6.S4, V2.S4, V18.S4
	VFMLA V7.S4, V3.S4, V19.S4
	SUB  $16, R2
	B    loop16

loop4:
	CMP  $4, R2
	BLT  reduce
	VLD1.P 16(R0), [V0.S4]
	VLD1.P 16(R1), [V4.S4]
	VFMLA V4.S4, V0.S4, V16.S4
	SUB  $4, R2
	B    loop4

reduce:
	WORD $0x4e31d610 // FADD  V16.4S, V16.4S, V17.4S
	WORD $0x4e33d652 // FADD  V18.4S, V18.4S, V19.4S
	WORD $0x4e32d610 // FADD  V16.4S, V16.4S, V18.4S
	WORD $0x6e30d610 // FADDP V16.4S, V16.4S, V16.4S
	WORD $0x7e30da10 // FADDP S16, V16.2S

loop1:
	CBZ     R2, done
	FMOVS.P 4(R0), F0
	FMOVS.P 4(R1), F1
	FMADDS  F1, F16, F0, F16 // F16 += a[i]*b[i]
	SUB     $1, R2
	B       loop1

done:
	FMOVS F16, ret+24(FP)
	RET

// func axpyF32NEON(alpha float32, x, y *float32, n uintptr)
// y[i] += alpha*x[i], 16 floats per iteration, then 4, then 1.
TEXT ·axpyF32NEON(SB), NOSPLIT, $0-32
	FMOVS alpha+0(FP), F31
	MOVD  x+8(FP), R0
	MOVD  y+16(FP), R1
	MOVD  n+24(FP), R2
	VDUP  V31.S[0], V31.S4

loop16:
	CMP  $16, R2
	BLT  loop4
	VLD1.P 64(R0), [V0.S4, V1.S4, V2.S4, V3.S4]
	VLD1   (R1), [V4.S4, V5.S4, V6.S4, V7.S4]
	VFMLA  V31.S4, V0.S4, V4.S4 // y[0:4] += alpha*x[0:4]
	VFMLA  V31.S4, V1.S4, V5.S4
	VFMLA  V31.S4, V2.S4, V6.S4
	VFMLA  V31.S4, V3.S4, V7.S4
	VST1.P [V4.S4, V5.S4, V6.S4, V7.S4], 64(R1)
	SUB    $16, R2
	B      loop16

loop4:
	CMP  $4, R2
	BLT  loop1
	VLD1.P 16(R0), [V0.S4]
	VLD1   (R1), [V4.S4]
	VFMLA  V31.S4, V0.S4, V4.S4
	VST1.P [V4.S4], 16(R1)
	SUB    $4, R2
	B      loop4

loop1:
	CBZ     R2, done
	FMOVS.P 4(R0), F0
	FMOVS   (R1), F1
	FMADDS  F31, F1, F0, F1 // F1 += x[i]*alpha
	FMOVS.P F1, 4(R1)
	SUB     $1, R2
	B       loop1

done:
	RET

// func quantActNEON(q *int8, d *float32, s *int32, x *float32, nb uintptr)
// Quantizes nb full blocks of 32 values (quantizeActGeneric, bit-identical):
// d = amax/127, q = round-half-even(x * (127/amax)), s = sum(q); a block with
// a NaN or ±Inf gets d = NaN, q = 0, s = 0. An all-zero block needs no
// special case: 127/0 = +Inf, 0*Inf = NaN, and FCVTNS turns NaN into 0.
TEXT ·quantActNEON(SB), NOSPLIT, $0-40
	MOVD q+0(FP), R1
	MOVD d+8(FP), R2
	MOVD s+16(FP), R3
	MOVD x+24(FP), R0
	MOVD nb+32(FP), R4
	MOVW  $0x42fe0000, R7 // 127.0
	FMOVS R7, F29
	MOVW  $0x7f800000, R7 // +Inf
	FMOVS R7, F30
	VEOR  V8.B16, V8.B16, V8.B16 // V8, V9: zeros for non-finite blocks
	VEOR  V9.B16, V9.B16, V9.B16
	CBZ   R4, done

block:
	VLD1.P 64(R0), [V0.S4, V1.S4, V2.S4, V3.S4]
	VLD1.P 64(R0), [V4.S4, V5.S4, V6.S4, V7.S4]
	WORD $0x4ea0f810 // FABS V16.4S, V0.4S
	WORD $0x4ea0f831 // FABS V17.4S, V1.4S
	WORD $0x4ea0f852 // FABS V18.4S, V2.4S
	WORD $0x4ea0f873 // FABS V19.4S, V3.4S
	WORD $0x4ea0f894 // FABS V20.4S, V4.4S
	WORD $0x4ea0f8b5 // FABS V21.4S, V5.4S
	WORD $0x4ea0f8d6 // FABS V22.4S, V6.4S
	WORD $0x4ea0f8f7 // FABS V23.4S, V7.4S
	WORD $0x4e31f610 // FMAX V16.4S, V16.4S, V17.4S (FMAX propagates NaN)
	WORD $0x4e33f652 // FMAX V18.4S, V18.4S, V19.4S
	WORD $0x4e35f694 // FMAX V20.4S, V20.4S, V21.4S
	WORD $0x4e37f6d6 // FMAX V22.4S, V22.4S, V23.4S
	WORD $0x4e32f610 // FMAX V16.4S, V16.4S, V18.4S
	WORD $0x4e36f694 // FMAX V20.4S, V20.4S, V22.4S
	WORD $0x4e34f610 // FMAX V16.4S, V16.4S, V20.4S
	WORD $0x6e30fa10 // FMAXV S16, V16.4S: amax (NaN if any NaN, Inf if any Inf)
	FCMPS F30, F16   // amax < +Inf, ordered: the block is finite
	BPL  bad         // not MI: not less (or unordered)
	FDIVS F29, F16, F17 // F17 = amax/127
	FMOVS.P F17, 4(R2)
	FDIVS F16, F29, F18 // F18 = 127/amax
	WORD $0x4f929000 // FMUL V0.4S, V0.4S, V18.S[0]
	WORD $0x4f929021 // FMUL V1.4S, V1.4S, V18.S[0]
	WORD $0x4f929042 // FMUL V2.4S, V2.4S, V18.S[0]
	WORD $0x4f929063 // FMUL V3.4S, V3.4S, V18.S[0]
	WORD $0x4f929084 // FMUL V4.4S, V4.4S, V18.S[0]
	WORD $0x4f9290a5 // FMUL V5.4S, V5.4S, V18.S[0]
	WORD $0x4f9290c6 // FMUL V6.4S, V6.4S, V18.S[0]
	WORD $0x4f9290e7 // FMUL V7.4S, V7.4S, V18.S[0]
	WORD $0x4e21a800 // FCVTNS V0.4S, V0.4S (round to nearest, ties to even)
	WORD $0x4e21a821 // FCVTNS V1.4S, V1.4S
	WORD $0x4e21a842 // FCVTNS V2.4S, V2.4S
	WORD $0x4e21a863 // FCVTNS V3.4S, V3.4S
	WORD $0x4e21a884 // FCVTNS V4.4S, V4.4S
	WORD $0x4e21a8a5 // FCVTNS V5.4S, V5.4S
	WORD $0x4e21a8c6 // FCVTNS V6.4S, V6.4S
	WORD $0x4e21a8e7 // FCVTNS V7.4S, V7.4S

	// s = sum of the 32 int32 values
	VADD  V1.S4, V0.S4, V24.S4
	VADD  V3.S4, V2.S4, V25.S4
	VADD  V5.S4, V4.S4, V26.S4
	VADD  V7.S4, V6.S4, V27.S4
	VADD  V25.S4, V24.S4, V24.S4
	VADD  V27.S4, V26.S4, V26.S4
	VADD  V26.S4, V24.S4, V24.S4
	VADDV V24.S4, V24
	VMOV  V24.S[0], R7
	MOVW.P R7, 4(R3)

	// narrow int32 -> int8 by taking low halves twice (values are in [-127, 127])
	VUZP1 V1.H8, V0.H8, V0.H8   // V0 = values 0..7 as int16
	VUZP1 V3.H8, V2.H8, V2.H8   // 8..15
	VUZP1 V5.H8, V4.H8, V4.H8   // 16..23
	VUZP1 V7.H8, V6.H8, V6.H8   // 24..31
	VUZP1 V2.B16, V0.B16, V0.B16 // V0 = values 0..15 as int8
	VUZP1 V6.B16, V4.B16, V1.B16 // V1 = values 16..31
	VST1.P [V0.B16, V1.B16], 32(R1)
	SUBS  $1, R4
	BNE   block
	RET

bad:
	VST1.P [V8.B16, V9.B16], 32(R1)
	MOVW   $0x7fc00000, R7 // float32(math.NaN())
	MOVW.P R7, 4(R2)
	MOVW.P ZR, 4(R3)
	SUBS   $1, R4
	BNE    block

done:
	RET

// Constants of geluMulF32NEON, each in all four lanes, loaded into V16..V31.
DATA geluConsts<>+0(SB)/8, $0x3f4c422a3f4c422a // V16: c0 = sqrt(2/pi)
DATA geluConsts<>+8(SB)/8, $0x3f4c422a3f4c422a
DATA geluConsts<>+16(SB)/8, $0x3d1222793d122279 // V17: c0*0.044715
DATA geluConsts<>+24(SB)/8, $0x3d1222793d122279
DATA geluConsts<>+32(SB)/8, $0x4110000041100000 // V18: tanhMax = 9
DATA geluConsts<>+40(SB)/8, $0x4110000041100000
DATA geluConsts<>+48(SB)/8, $0xc038aa3bc038aa3b // V19: -2/ln2
DATA geluConsts<>+56(SB)/8, $0xc038aa3bc038aa3b
DATA geluConsts<>+64(SB)/8, $0x3f3172003f317200 // V20: ln2Hi
DATA geluConsts<>+72(SB)/8, $0x3f3172003f317200
DATA geluConsts<>+80(SB)/8, $0x35bfbe8e35bfbe8e // V21: ln2Lo
DATA geluConsts<>+88(SB)/8, $0x35bfbe8e35bfbe8e
DATA geluConsts<>+96(SB)/8, $0x37d00d0137d00d01 // V22: 1/40320
DATA geluConsts<>+104(SB)/8, $0x37d00d0137d00d01
DATA geluConsts<>+112(SB)/8, $0x39500d0139500d01 // V23: 1/5040
DATA geluConsts<>+120(SB)/8, $0x39500d0139500d01
DATA geluConsts<>+128(SB)/8, $0x3ab60b613ab60b61 // V24: 1/720
DATA geluConsts<>+136(SB)/8, $0x3ab60b613ab60b61
DATA geluConsts<>+144(SB)/8, $0x3c0888893c088889 // V25: 1/120
DATA geluConsts<>+152(SB)/8, $0x3c0888893c088889
DATA geluConsts<>+160(SB)/8, $0x3d2aaaab3d2aaaab // V26: 1/24
DATA geluConsts<>+168(SB)/8, $0x3d2aaaab3d2aaaab
DATA geluConsts<>+176(SB)/8, $0x3e2aaaab3e2aaaab // V27: 1/6
DATA geluConsts<>+184(SB)/8, $0x3e2aaaab3e2aaaab
DATA geluConsts<>+192(SB)/8, $0x3f0000003f000000 // V28: 0.5
DATA geluConsts<>+200(SB)/8, $0x3f0000003f000000
DATA geluConsts<>+208(SB)/8, $0x3f8000003f800000 // V29: 1
DATA geluConsts<>+216(SB)/8, $0x3f8000003f800000
DATA geluConsts<>+224(SB)/8, $0x4000000040000000 // V30: 2
DATA geluConsts<>+232(SB)/8, $0x4000000040000000
DATA geluConsts<>+240(SB)/8, $0x0000007f0000007f // V31: int32 127 (exponent bias)
DATA geluConsts<>+248(SB)/8, $0x0000007f0000007f
GLOBL geluConsts<>(SB), RODATA|NOPTR, $256

// TANHCONSTS loads geluConsts into V16..V31 (through REG) and the sign mask
// 0x80000000 into V15.
#define TANHCONSTS(REG) \
	MOVD   $geluConsts<>(SB), REG;                       \
	VLD1.P 64(REG), [V16.S4, V17.S4, V18.S4, V19.S4];   \
	VLD1.P 64(REG), [V20.S4, V21.S4, V22.S4, V23.S4];   \
	VLD1.P 64(REG), [V24.S4, V25.S4, V26.S4, V27.S4];   \
	VLD1   (REG), [V28.S4, V29.S4, V30.S4, V31.S4];     \
	VEOR   V15.B16, V15.B16, V15.B16;                   \
	WORD   $0x6ea0f9ef                                    // FNEG V15.4S, V15.4S

// TANH computes V8 = tanh(V1) lane-wise as tanhGeneric does: a = min(|u|, 9),
// k = round(-2a/ln2), r = -2a - k*ln2 (two parts), e = 2^k*expm1(r) + (2^k - 1)
// with the degree-8 Taylor expm1, tanh = -e/(2+e) with u's sign. Needs the
// geluConsts in V16..V31 and the sign mask in V15; clobbers V2..V11.
#define TANH \
	WORD   $0x4ea0f822;              \ // FABS V2.4S, V1.4S
	WORD   $0x4eb2f442;              \ // FMIN V2.4S, V2.4S, V18.4S: a = min(|u|, 9)
	WORD   $0x6e33dc43;              \ // FMUL V3.4S, V2.4S, V19.4S: -2a/ln2
	WORD   $0x6e218863;              \ // FRINTA V3.4S, V3.4S: k (ties away, as math.Round)
	WORD   $0x4e22d444;              \ // FADD V4.4S, V2.4S, V2.4S
	WORD   $0x6ea0f884;              \ // FNEG V4.4S, V4.4S: -2a
	VFMLS  V20.S4, V3.S4, V4.S4;     \ // r = -2a - k*ln2Hi
	VFMLS  V21.S4, V3.S4, V4.S4;     \ // - k*ln2Lo
	VORR   V23.B16, V23.B16, V6.B16; \ // Horner: p = ((1/40320*r + 1/5040)*r + ...)
	VFMLA  V22.S4, V4.S4, V6.S4;     \
	VORR   V24.B16, V24.B16, V5.B16; \
	VFMLA  V6.S4, V4.S4, V5.S4;      \
	VORR   V25.B16, V25.B16, V6.B16; \
	VFMLA  V5.S4, V4.S4, V6.S4;      \
	VORR   V26.B16, V26.B16, V5.B16; \
	VFMLA  V6.S4, V4.S4, V5.S4;      \
	VORR   V27.B16, V27.B16, V6.B16; \
	VFMLA  V5.S4, V4.S4, V6.S4;      \
	VORR   V28.B16, V28.B16, V5.B16; \
	VFMLA  V6.S4, V4.S4, V5.S4;      \ // V5 = p
	WORD   $0x6e24dc86;              \ // FMUL V6.4S, V4.4S, V4.4S: r^2
	VORR   V4.B16, V4.B16, V7.B16;   \
	VFMLA  V6.S4, V5.S4, V7.S4;      \ // V7 = expm1(r) = r + r^2*p
	WORD   $0x4ea1b869;              \ // FCVTZS V9.4S, V3.4S: k as int32 (exact)
	VADD   V31.S4, V9.S4, V9.S4;     \
	VSHL   $23, V9.S4, V9.S4;        \ // V9 = 2^k
	WORD   $0x4ebdd528;              \ // FSUB V8.4S, V9.4S, V29.4S: 2^k - 1
	VFMLA  V9.S4, V7.S4, V8.S4;      \ // e = 2^k*expm1(r) + (2^k - 1)
	WORD   $0x4e3ed50a;              \ // FADD V10.4S, V8.4S, V30.4S: 2 + e
	WORD   $0x6ea0f908;              \ // FNEG V8.4S, V8.4S
	WORD   $0x6e2afd08;              \ // FDIV V8.4S, V8.4S, V10.4S: -e/(2+e) >= 0
	VAND   V15.B16, V1.B16, V11.B16; \
	VORR   V11.B16, V8.B16, V8.B16   // with the sign of u

// func geluMulF32NEON(dst, x, up *float32, n uintptr)
// dst[i] = gelu(x[i]) * up[i] (up nil: gelu only) for i < n, n a multiple of
// 4 (geluMulGeneric up to FMA rounding).
TEXT ·geluMulF32NEON(SB), NOSPLIT, $0-32
	MOVD dst+0(FP), R0
	MOVD x+8(FP), R1
	MOVD up+16(FP), R2
	MOVD n+24(FP), R3
	TANHCONSTS(R4)
	CBZ    R3, done

loop:
	VLD1.P 16(R1), [V0.S4]        // v
	WORD   $0x6e20dc01            // FMUL V1.4S, V0.4S, V0.4S: v^2
	VORR   V16.B16, V16.B16, V2.B16 // V2 = c0
	VFMLA  V17.S4, V1.S4, V2.S4   // V2 = c0 + c0*c1*v^2
	WORD   $0x6e22dc01            // FMUL V1.4S, V0.4S, V2.4S: u = c0*(v + c1*v^3)

	TANH

	// 0.5*v*(1 + tanh), times up
	WORD   $0x4e3dd508            // FADD V8.4S, V8.4S, V29.4S
	WORD   $0x6e3cdc00            // FMUL V0.4S, V0.4S, V28.4S: 0.5*v
	WORD   $0x6e28dc00            // FMUL V0.4S, V0.4S, V8.4S
	CBZ    R2, store
	VLD1.P 16(R2), [V12.S4]
	WORD   $0x6e2cdc00            // FMUL V0.4S, V0.4S, V12.4S

store:
	VST1.P [V0.S4], 16(R0)
	SUBS   $4, R3
	BNE    loop

done:
	RET

// func softCapF32NEON(x *float32, n uintptr, cap float32)
// x[i] = cap * tanh(x[i]/cap) for i < n, n a multiple of 4 (softCapGeneric
// up to FMA rounding).
TEXT ·softCapF32NEON(SB), NOSPLIT, $0-20
	MOVD  x+0(FP), R0
	MOVD  n+8(FP), R3
	FMOVS cap+16(FP), F14
	VDUP  V14.S[0], V14.S4
	TANHCONSTS(R4)
	CBZ   R3, done

loop:
	VLD1   (R0), [V0.S4]
	WORD   $0x6e2efc01 // FDIV V1.4S, V0.4S, V14.4S: x/cap
	TANH
	WORD   $0x6e2edd08 // FMUL V8.4S, V8.4S, V14.4S: cap*tanh
	VST1.P [V8.S4], 16(R0)
	SUBS   $4, R3
	BNE    loop

done:
	RET

// Constants of expSubF32NEON, each in all four lanes, loaded into V16..V28.
DATA expConsts<>+0(SB)/8, $0x3fb8aa3b3fb8aa3b   // V16: 1/ln2
DATA expConsts<>+8(SB)/8, $0x3fb8aa3b3fb8aa3b
DATA expConsts<>+16(SB)/8, $0x3f3172003f317200  // V17: ln2Hi
DATA expConsts<>+24(SB)/8, $0x3f3172003f317200
DATA expConsts<>+32(SB)/8, $0x35bfbe8e35bfbe8e  // V18: ln2Lo
DATA expConsts<>+40(SB)/8, $0x35bfbe8e35bfbe8e
DATA expConsts<>+48(SB)/8, $0x37d00d0137d00d01  // V19: 1/40320
DATA expConsts<>+56(SB)/8, $0x37d00d0137d00d01
DATA expConsts<>+64(SB)/8, $0x39500d0139500d01  // V20: 1/5040
DATA expConsts<>+72(SB)/8, $0x39500d0139500d01
DATA expConsts<>+80(SB)/8, $0x3ab60b613ab60b61  // V21: 1/720
DATA expConsts<>+88(SB)/8, $0x3ab60b613ab60b61
DATA expConsts<>+96(SB)/8, $0x3c0888893c088889  // V22: 1/120
DATA expConsts<>+104(SB)/8, $0x3c0888893c088889
DATA expConsts<>+112(SB)/8, $0x3d2aaaab3d2aaaab // V23: 1/24
DATA expConsts<>+120(SB)/8, $0x3d2aaaab3d2aaaab
DATA expConsts<>+128(SB)/8, $0x3e2aaaab3e2aaaab // V24: 1/6
DATA expConsts<>+136(SB)/8, $0x3e2aaaab3e2aaaab
DATA expConsts<>+144(SB)/8, $0x3f0000003f000000 // V25: 0.5
DATA expConsts<>+152(SB)/8, $0x3f0000003f000000
DATA expConsts<>+160(SB)/8, $0x3f8000003f800000 // V26: 1
DATA expConsts<>+168(SB)/8, $0x3f8000003f800000
DATA expConsts<>+176(SB)/8, $0x0000007f0000007f // V27: int32 127 (exponent bias)
DATA expConsts<>+184(SB)/8, $0x0000007f0000007f
DATA expConsts<>+192(SB)/8, $0xc2ae0000c2ae0000 // V28: expLo = -87
DATA expConsts<>+200(SB)/8, $0xc2ae0000c2ae0000
GLOBL expConsts<>(SB), RODATA|NOPTR, $208

// func expSubF32NEON(x *float32, n uintptr, m float32) float32
// x[i] = exp(x[i]-m) for i < n, n a multiple of 4, returning the sum
// (expSubGeneric up to FMA rounding and the order of the sum): y = x-m,
// k = round(y/ln2), r = y - k*ln2 (two parts), exp = 2^k*(expm1(r) + 1), and
// 0 where y < -87.
TEXT ·expSubF32NEON(SB), NOSPLIT, $0-28
	MOVD  x+0(FP), R0
	MOVD  n+8(FP), R1
	FMOVS m+16(FP), F29
	VDUP  V29.S[0], V29.S4
	MOVD  $expConsts<>(SB), R4
	VLD1.P 64(R4), [V16.S4, V17.S4, V18.S4, V19.S4]
	VLD1.P 64(R4), [V20.S4, V21.S4, V22.S4, V23.S4]
	VLD1.P 64(R4), [V24.S4, V25.S4, V26.S4, V27.S4]
	VLD1   (R4), [V28.S4]
	VEOR  V30.B16, V30.B16, V30.B16 // sum
	CBZ   R1, done

loop:
	VLD1   (R0), [V0.S4]
	WORD   $0x4ebdd401              // FSUB V1.4S, V0.4S, V29.4S: y = x - m
	WORD   $0x4e3cf422              // FMAX V2.4S, V1.4S, V28.4S: max(y, -87)
	WORD   $0x6e30dc43              // FMUL V3.4S, V2.4S, V16.4S
	WORD   $0x6e218863              // FRINTA V3.4S, V3.4S: k (ties away, as math.Round)
	VORR   V2.B16, V2.B16, V4.B16
	VFMLS  V17.S4, V3.S4, V4.S4     // r = y - k*ln2Hi
	VFMLS  V18.S4, V3.S4, V4.S4     //      - k*ln2Lo
	VORR   V20.B16, V20.B16, V6.B16 // Horner: p = ((1/40320*r + 1/5040)*r + ...)
	VFMLA  V19.S4, V4.S4, V6.S4
	VORR   V21.B16, V21.B16, V5.B16
	VFMLA  V6.S4, V4.S4, V5.S4
	VORR   V22.B16, V22.B16, V6.B16
	VFMLA  V5.S4, V4.S4, V6.S4
	VORR   V23.B16, V23.B16, V5.B16
	VFMLA  V6.S4, V4.S4, V5.S4
	VORR   V24.B16, V24.B16, V6.B16
	VFMLA  V5.S4, V4.S4, V6.S4
	VORR   V25.B16, V25.B16, V5.B16
	VFMLA  V6.S4, V4.S4, V5.S4      // V5 = p
	WORD   $0x6e24dc86              // FMUL V6.4S, V4.4S, V4.4S: r^2
	VORR   V4.B16, V4.B16, V7.B16
	VFMLA  V6.S4, V5.S4, V7.S4      // V7 = expm1(r) = r + r^2*p
	WORD   $0x4e3ad4e7              // FADD V7.4S, V7.4S, V26.4S: + 1
	WORD   $0x4ea1b869              // FCVTZS V9.4S, V3.4S: k as int32 (exact)
	VADD   V27.S4, V9.S4, V9.S4
	VSHL   $23, V9.S4, V9.S4        // V9 = 2^k
	WORD   $0x6e27dd20              // FMUL V0.4S, V9.4S, V7.4S
	WORD   $0x6e3ce42c              // FCMGE V12.4S, V1.4S, V28.4S: y >= -87
	VAND   V12.B16, V0.B16, V0.B16  // 0 below
	WORD   $0x4e20d7de              // FADD V30.4S, V30.4S, V0.4S
	VST1.P [V0.S4], 16(R0)
	SUBS   $4, R1
	BNE    loop

done:
	WORD  $0x6e3ed7de // FADDP V30.4S, V30.4S, V30.4S
	WORD  $0x7e30dbde // FADDP S30, V30.2S
	FMOVS F30, ret+24(FP)
	RET

// Widen 16 halves in V0, V1 to f32 in V2, V3, V8, V9.
#define WIDEN16_F16 \
	WORD $0x0e217802; \ // FCVTL  V2.4S, V0.4H
	WORD $0x4e217803; \ // FCVTL2 V3.4S, V0.8H
	WORD $0x0e217828; \ // FCVTL  V8.4S, V1.4H
	WORD $0x4e217829    // FCVTL2 V9.4S, V1.8H

// bfloat16 is the top half of a float32: interleave with zero halves (V31).
#define WIDEN16_BF16 \
	VZIP1 V0.H8, V31.H8, V2.H8; \
	VZIP2 V0.H8, V31.H8, V3.H8; \
	VZIP1 V1.H8, V31.H8, V8.H8; \
	VZIP2 V1.H8, V31.H8, V9.H8

// Widen the half in R3 to f32 in F0.
#define WIDEN1_F16 \
	FMOVS  R3, F0; \
	FCVTHS F0, F0

#define WIDEN1_BF16 \
	LSLW  $16, R3; \
	FMOVS R3, F0

// HALFDOT defines
//
//	func NAME(w *byte, x *float32, n uintptr) float32
//
// the dot of n little-endian 16-bit floats at w with x (dotRowFloatGeneric
// up to the order of additions), 16 per iteration in four accumulators.
#define HALFDOT(NAME, WIDEN16, WIDEN1) \
TEXT NAME(SB), NOSPLIT, $0-28;        \
	MOVD w+0(FP), R0;                 \
	MOVD x+8(FP), R1;                 \
	MOVD n+16(FP), R2;                \
	VEOR V16.B16, V16.B16, V16.B16;   \
	VEOR V17.B16, V17.B16, V17.B16;   \
	VEOR V18.B16, V18.B16, V18.B16;   \
	VEOR V19.B16, V19.B16, V19.B16;   \
	VEOR V31.B16, V31.B16, V31.B16;   \
loop16:                               \
	CMP  $16, R2;                     \
	BLT  reduce;                      \
	VLD1.P 32(R0), [V0.B16, V1.B16];  \
	VLD1.P 64(R1), [V4.S4, V5.S4, V6.S4, V7.S4]; \
	WIDEN16;                          \
	VFMLA V2.S4, V4.S4, V16.S4;       \
	VFMLA V3.S4, V5.S4, V17.S4;       \
	VFMLA V8.S4, V6.S4, V18.S4;       \
	VFMLA V9.S4, V7.S4, V19.S4;       \
	SUB  $16, R2;                     \
	B    loop16;                      \
reduce:                               \
	WORD $0x4e31d610;                 \ // FADD  V16.4S, V16.4S, V17.4S
	WORD $0x4e33d652;                 \ // FADD  V18.4S, V18.4S, V19.4S
	WORD $0x4e32d610;                 \ // FADD  V16.4S, V16.4S, V18.4S
	WORD $0x6e30d610;                 \ // FADDP V16.4S, V16.4S, V16.4S
	WORD $0x7e30da10;                 \ // FADDP S16, V16.2S
loop1:                                \
	CBZ     R2, done;                 \
	MOVHU.P 2(R0), R3;                \
	WIDEN1;                           \
	FMOVS.P 4(R1), F1;                \
	FMADDS  F1, F16, F0, F16;         \
	SUB     $1, R2;                   \
	B       loop1;                    \
done:                                 \
	FMOVS F16, ret+24(FP);            \
	RET

HALFDOT(·dotF16NEON, WIDEN16_F16, WIDEN1_F16)
HALFDOT(·dotBF16NEON, WIDEN16_BF16, WIDEN1_BF16)

// func scaleF32NEON(alpha float32, x *float32, n uintptr)
// x[i] *= alpha for i < n (scaleGeneric, bit-identical).
TEXT ·scaleF32NEON(SB), NOSPLIT, $0-24
	FMOVS alpha+0(FP), F31
	MOVD  x+8(FP), R0
	MOVD  n+16(FP), R2

loop16:
	CMP    $16, R2
	BLT    loop1
	VLD1   (R0), [V0.S4, V1.S4, V2.S4, V3.S4]
	WORD   $0x4f9f9000 // FMUL V0.4S, V0.4S, V31.S[0]
	WORD   $0x4f9f9021 // FMUL V1.4S, V1.4S, V31.S[0]
	WORD   $0x4f9f9042 // FMUL V2.4S, V2.4S, V31.S[0]
	WORD   $0x4f9f9063 // FMUL V3.4S, V3.4S, V31.S[0]
	VST1.P [V0.S4, V1.S4, V2.S4, V3.S4], 64(R0)
	SUB    $16, R2
	B      loop16

loop1:
	CBZ     R2, done
	FMOVS   (R0), F0
	FMULS   F31, F0, F0
	FMOVS.P F0, 4(R0)
	SUB     $1, R2
	B       loop1

done:
	RET

// func maxF32NEON(x *float32, n uintptr) float32
// max of x[0:n], n >= 1 (maxGeneric: NaN if any value is NaN).
TEXT ·maxF32NEON(SB), NOSPLIT, $0-20
	MOVD  x+0(FP), R0
	MOVD  n+8(FP), R2
	VLD1R (R0), [V16.S4] // every accumulator starts at x[0]
	VORR  V16.B16, V16.B16, V17.B16
	VORR  V16.B16, V16.B16, V18.B16
	VORR  V16.B16, V16.B16, V19.B16

loop16:
	CMP    $16, R2
	BLT    reduce
	VLD1.P 64(R0), [V0.S4, V1.S4, V2.S4, V3.S4]
	WORD   $0x4e20f610 // FMAX V16.4S, V16.4S, V0.4S
	WORD   $0x4e21f631 // FMAX V17.4S, V17.4S, V1.4S
	WORD   $0x4e22f652 // FMAX V18.4S, V18.4S, V2.4S
	WORD   $0x4e23f673 // FMAX V19.4S, V19.4S, V3.4S
	SUB    $16, R2
	B      loop16

reduce:
	WORD $0x4e31f610 // FMAX V16.4S, V16.4S, V17.4S
	WORD $0x4e33f652 // FMAX V18.4S, V18.4S, V19.4S
	WORD $0x4e32f610 // FMAX V16.4S, V16.4S, V18.4S
	WORD $0x6e30fa10 // FMAXV S16, V16.4S

loop1:
	CBZ     R2, done
	FMOVS.P 4(R0), F0
	FMAXS   F0, F16, F16
	SUB     $1, R2
	B       loop1

done:
	FMOVS F16, ret+16(FP)
	RET

// func mulScaleOnePlusF32NEON(dst, x, w *float32, n uintptr, s float32)
// dst[i] = x[i]*s*(1+w[i]) for i < n (mulScaleOnePlusGeneric, bit-identical:
// the same three roundings in the same order).
TEXT ·mulScaleOnePlusF32NEON(SB), NOSPLIT, $0-36
	MOVD  dst+0(FP), R3
	MOVD  x+8(FP), R0
	MOVD  w+16(FP), R1
	MOVD  n+24(FP), R2
	FMOVS s+32(FP), F31
	FMOVS $1.0, F30
	VDUP  V30.S[0], V30.S4

loop4:
	CMP    $4, R2
	BLT    loop1
	VLD1.P 16(R0), [V0.S4]
	VLD1.P 16(R1), [V1.S4]
	WORD   $0x4f9f9000 // FMUL V0.4S, V0.4S, V31.S[0]: x*s
	WORD   $0x4e3ed421 // FADD V1.4S, V1.4S, V30.4S: 1+w
	WORD   $0x6e21dc00 // FMUL V0.4S, V0.4S, V1.4S
	VST1.P [V0.S4], 16(R3)
	SUB    $4, R2
	B      loop4

loop1:
	CBZ     R2, done
	FMOVS.P 4(R0), F0
	FMOVS.P 4(R1), F1
	FMULS   F31, F0, F0
	FADDS   F30, F1, F1
	FMULS   F1, F0, F0
	FMOVS.P F0, 4(R3)
	SUB     $1, R2
	B       loop1

done:
	RET

// func ropeF32NEON(x, cos, sin *float32, h uintptr)
// For i < h: (x[i], x[i+h]) = (x[i]*cos[i] - x[i+h]*sin[i], x[i+h]*cos[i] + x[i]*sin[i])
// (ropeGeneric up to FMA rounding).
TEXT ·ropeF32NEON(SB), NOSPLIT, $0-32
	MOVD x+0(FP), R0
	MOVD cos+8(FP), R2
	MOVD sin+16(FP), R3
	MOVD h+24(FP), R4
	ADD  R4<<2, R0, R1 // R1 = &x[h]

loop4:
	CMP    $4, R4
	BLT    loop1
	VLD1   (R0), [V0.S4]    // x0
	VLD1   (R1), [V1.S4]    // x1
	VLD1.P 16(R2), [V2.S4]  // cos
	VLD1.P 16(R3), [V3.S4]  // sin
	WORD   $0x6e22dc04      // FMUL V4.4S, V0.4S, V2.4S: x0*cos
	VFMLS  V3.S4, V1.S4, V4.S4 //  - x1*sin
	WORD   $0x6e22dc25      // FMUL V5.4S, V1.4S, V2.4S: x1*cos
	VFMLA  V3.S4, V0.S4, V5.S4 //  + x0*sin
	VST1.P [V4.S4], 16(R0)
	VST1.P [V5.S4], 16(R1)
	SUB    $4, R4
	B      loop4

loop1:
	CBZ     R4, done
	FMOVS   (R0), F0
	FMOVS   (R1), F1
	FMOVS.P 4(R2), F2
	FMOVS.P 4(R3), F3
	FMULS   F2, F0, F4
	FMSUBS  F3, F4, F1, F4 // F4 = x0*cos - x1*sin
	FMULS   F2, F1, F5
	FMADDS  F3, F5, F0, F5 // F5 = x1*cos + x0*sin
	FMOVS.P F4, 4(R0)
	FMOVS.P F5, 4(R1)
	SUB     $1, R4
	B       loop1

done:
	RET
