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
 * eng__kernels holds, per weight type, the functions above. The scalar table in quant.c is
 * the specification. A SIMD path (AVX2, AVX-512) is another eng__kernels whose entries
 * point at faster functions where it has them and at the scalar ones elsewhere; it must
 * compute the same results (integer parts bit-identical, float sums within rounding) and
 * is tested against the scalar table. eng__kernels_get picks a table by name.
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

typedef struct eng__kernels {
  const char *name;             /* "scalar", "avx2", "avx512" */
  eng__type_traits t[ENG__T_COUNT];
} eng__kernels;

/* The scalar table (the specification). */
extern const eng__kernels eng__kernels_scalar;

/* Every kernel table built into this binary and usable on this CPU, scalar first (the
 * consistency test compares each with the scalar one). */
const eng__kernels *const *eng__kernels_all(size_t *n);

/* Pick a kernel table: `name` if given, else $QCODER_KERNELS, else the best available for
 * this CPU (today: scalar). Unknown names are ENG_EARG, known but unavailable paths
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
