/* quant.h — tensor formats and the compute kernels, behind one dispatch table.
 *
 * ## Formats
 *
 * Block layouts are ggml's (ggml-common.h), little-endian and packed; `d`/`dmin` are IEEE
 * halves unless noted:
 *
 *   Q8_0  32 values, 34 B: d, int8 qs[32]                       y = d·q
 *   Q4_0  32 values, 18 B: d, u8 qs[16] (low nibbles = 0..15, high = 16..31)  y = d·(q-8)
 *   Q4_K 256 values, 144 B: d, dmin, scales[12] (8 × 6-bit scale + 6-bit min), qs[128]
 *   Q5_K 256 values, 176 B: as Q4_K plus qh[32] (the fifth bit)
 *   Q6_K 256 values, 210 B: ql[128], qh[64], int8 scales[16], d (last)
 *   Q8_K 256 values, 292 B: float d, int8 qs[256], int16 bsums[16] (activations only)
 *   F16 / BF16 / F32: one value each.
 *
 * ## How a matrix-vector product is computed (and why)
 *
 * Like llama.cpp's CPU backend, the activation vector is first converted to the weight
 * type's `vec_dot_type` — Q8_0 blocks for Q8_0/Q4_0 weights, Q8_K blocks for K-quants,
 * f16 for F16, bf16 for BF16, f32 for F32 — and the dot product then runs on the two
 * low-precision rows (integer sums inside a block, one float multiply per block). This is
 * both the fast way and the way the reference engine rounds: matching its activation
 * rounding is what brings our logits to within 0.1 of it instead of within 1-7 (routing
 * flips). The activation quantizer (`from_float`) therefore follows the x86 CPU backend
 * (Q8_0: scale 127/amax, round half to even), while `quantize_row` is ggml's reference
 * quantizer used to write model files (Q8_0 there rounds half away from zero).
 *
 * ## The dispatch table
 *
 * eng__kernels holds, per weight type, the functions above, plus the other hot loops of
 * the forward pass (eng__ops: norms, softmax, RoPE, SiLU·mul, the float vector helpers
 * attention is made of). The scalar table in quant.c is the specification. A SIMD path
 * (quant_avx2.c: AVX2+FMA+F16C; quant_avx512.c: AVX-512 F/BW/DQ/VL + VNNI, and BF16 where
 * the CPU has it) is another eng__kernels whose entries point at faster functions; it
 * must compute the same results — conversions (to_float, from_float) bit-identical, dot
 * products and float loops within float rounding — and test_quant/test_ops check exactly
 * that. Those files are compiled with their ISA flags (and -ffp-contract=off, so a mul
 * followed by an add stays two roundings as in the scalar code); nothing else is, so the
 * binary runs on any x86-64 and picks a table at run time from cpuid/xgetbv
 * (eng__cpu_features). eng__kernels_get picks a table by name, $QCODER_KERNELS, or the
 * best one available.
 *
 * ## Matrix products over several activation rows (prefill)
 *
 * mul_mat computes a tile y[t][r] = W[r] · A[t] for a run of weight rows and T activation
 * rows. The scalar version is vec_dot in a loop. The AVX-512 one, for larger T, unpacks a
 * panel of weight rows once into 8-bit values with per-16-value float scales (the "panel"
 * layout of quant_avx512.c) and runs VNNI vpdpbusd over all T rows against it, so the
 * unpacking cost is paid once per row instead of once per (row, token).
 */
#ifndef QC_ENGINE_QUANT_H
#define QC_ENGINE_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "engine/gguf.h"

#define ENG__QK8_0 32
#define ENG__QK4_0 32
#define ENG__QK_K 256

typedef struct { uint16_t d; int8_t qs[32]; } eng__block_q8_0;
typedef struct { uint16_t d; uint8_t qs[16]; } eng__block_q4_0;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; } eng__block_q4_K;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; } eng__block_q5_K;
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; } eng__block_q6_K;
typedef struct { float d; int8_t qs[256]; int16_t bsums[16]; } eng__block_q8_K;

_Static_assert(sizeof(eng__block_q8_0) == 34, "Q8_0 block");
_Static_assert(sizeof(eng__block_q4_0) == 18, "Q4_0 block");
_Static_assert(sizeof(eng__block_q4_K) == 144, "Q4_K block");
_Static_assert(sizeof(eng__block_q5_K) == 176, "Q5_K block");
_Static_assert(sizeof(eng__block_q6_K) == 210, "Q6_K block");
_Static_assert(sizeof(eng__block_q8_K) == 292, "Q8_K block");

/* x: n values of the weight type; y: n values of its vec_dot_type; n a multiple of the
 * block size. */
typedef void (*eng__vec_dot_fn)(int64_t n, float *s, const void *x, const void *y);
typedef void (*eng__to_float_fn)(const void *x, float *y, int64_t n);
typedef void (*eng__from_float_fn)(const float *x, void *y, int64_t n);

typedef struct eng__type_traits {
  const char *name;             /* NULL: the engine does not compute with this type */
  uint32_t blck, size;
  uint32_t vec_dot_type;        /* format the activations are converted to */
  eng__to_float_fn to_float;    /* dequantize a row */
  eng__from_float_fn quantize_row;  /* ggml's reference quantizer (model files) */
  eng__from_float_fn from_float;    /* the CPU backend's conversion of activations into
                                       this type, when it is some type's vec_dot_type */
  eng__vec_dot_fn vec_dot;      /* weight row · converted activation row */
} eng__type_traits;

/* y[t·ystride + r] = W row r · A row t, for r in 0..nrows-1 and t in 0..T-1 (rows of W
 * wrow bytes apart, of A arow bytes apart, A in the vec_dot_type). */
typedef void (*eng__mul_mat_fn)(int64_t n, const void *w, size_t wrow, int64_t nrows, const void *a, size_t arow, int T,
                                float *y, size_t ystride);

/* The non-matmul loops of the forward pass. Scalar versions follow ggml's CPU backend
 * (double sums in norms and softmax); SIMD versions are within float rounding. */
typedef struct eng__ops {
  /* y = x / sqrt(mean(x²) + eps) · w (x and y may alias) */
  void (*rmsnorm)(const float *x, const float *w, float *y, int64_t n, float eps);
  /* in place: x = exp(x - max) / Σ */
  void (*softmax)(float *x, int64_t n);
  /* g = silu(g) · u */
  void (*silu_mul)(float *g, const float *u, int64_t n);
  /* NEOX rotation of one head by (cos, sin) pairs */
  void (*rope)(float *v, const float *cache, int hd);
  float (*dot)(const float *a, const float *b, int64_t n);
  /* y += a·x */
  void (*axpy)(float *y, float a, const float *x, int64_t n);
  /* y *= a */
  void (*scale)(float *y, float a, int64_t n);
  /* y += x */
  void (*add)(float *y, const float *x, int64_t n);
  /* x = exp(x - m) in place; returns Σ x (online softmax over a block of scores) */
  float (*exp_sum)(float *x, float m, int64_t n);
  /* Attention over a block of nb ≤ ENG__ATT_BLOCK cached positions for G query heads of
   * hd values: S[h·ENG__ATT_BLOCK + j] = scale · Σ_d q[h·hd + d] · KT[d·ldk + j] (keys
   * stored transposed), and acc[h·hd + d] += Σ_j P[h·ENG__ATT_BLOCK + j] · V[j·ldv + d]. */
  void (*attn_scores)(const float *q, int G, int hd, const float *KT, size_t ldk, int nb, float scale, float *S);
  void (*attn_accum)(float *acc, int G, int hd, const float *P, int nb, const float *V, size_t ldv);
} eng__ops;

/* The int8 GEMM of a table, split so a product converts its activations once (act) and
 * each task then runs its rows against them (run, with a per-thread workspace of
 * ws_bytes). NULL members: the table has none. */
typedef struct eng__gemm {
  int (*supports)(uint32_t wtype, int64_t n);
  size_t (*act_bytes)(int64_t n, int T);
  size_t (*ws_bytes)(int64_t n);
  void (*act)(uint32_t wtype, int64_t n, const void *a, size_t arow, int T, void *panel);
  void (*run)(uint32_t wtype, int64_t n, const void *w, size_t wrow, int64_t nrows, const void *panel, int T, float *y,
              size_t ystride, void *ws);
  int min_t;                    /* fewer activation rows: vec_dot rows are faster */
} eng__gemm;

typedef struct eng__kernels {
  const char *name;             /* "scalar", "avx2", "avx512" */
  eng__type_traits t[ENG__T_COUNT];
  eng__mul_mat_fn mul_mat[ENG__T_COUNT];
  eng__ops op;
  eng__gemm gemm;
} eng__kernels;

/* What this CPU (and its OS, through XCR0) can run. */
typedef struct eng__cpu_features {
  int avx2, fma, f16c;
  int avx512f, avx512bw, avx512dq, avx512vl, avx512vnni, avx512bf16;
} eng__cpu_features;

const eng__cpu_features *eng__cpu(void);

/* The SIMD tables (quant_avx2.c, quant_avx512.c); NULL when not built for this target.
 * Only usable when eng__cpu() says so: eng__kernels_all/get check. */
const eng__kernels *eng__kernels_avx2(void);
const eng__kernels *eng__kernels_avx512(void);

/* Scalar building blocks the SIMD tables fall back to (quant.c). */
void eng__mul_mat_generic(const eng__type_traits *tt, int64_t n, const void *w, size_t wrow, int64_t nrows,
                          const void *a, size_t arow, int T, float *y, size_t ystride);
/* A table's mul_mat: its int8 GEMM (k->gemm) when the type is supported and there are at
 * least gemm.min_t activation rows (activations converted to panels once, weights
 * unpacked into a temporary workspace), vec_dot rows otherwise or when memory is short. */
void eng__mul_mat_gemm(const eng__kernels *k, uint32_t type, int64_t n, const void *w, size_t wrow, int64_t nrows,
                       const void *a, size_t arow, int T, float *y, size_t ystride);

/* The scalar table (the specification). */
extern const eng__kernels eng__kernels_scalar;

/* Every kernel table built into this binary and usable on this CPU, scalar first (the
 * consistency test compares each with the scalar one). */
const eng__kernels *const *eng__kernels_all(size_t *n);

/* Pick a kernel table: `name` if given, else $QCODER_KERNELS, else the best available for
 * this CPU (avx512, else avx2, else scalar). Unknown names are ENG_EARG, known but unavailable paths
 * ENG_EUNSUPPORTED, each with a message listing what is available. */
int eng__kernels_get(const char *name, const eng__kernels **out, eng_error *err);

/* Weight types the engine computes with (F32 F16 BF16 Q8_0 Q4_0 Q4_K Q5_K Q6_K). */
int eng__type_supported(uint32_t type);

/* ggml's rounding helper for K-quants: round to nearest, ties to even, via the
 * 1.5·2^23 trick (valid for |x| < 2^22). */
static inline int eng__nearest_int(float fval) {
  float val = fval + 12582912.f;
  int i;
  __builtin_memcpy(&i, &val, sizeof i);
  return (i & 0x007fffff) - 0x00400000;
}

#endif
