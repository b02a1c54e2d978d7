/* quant_avx512.c — the AVX-512 kernel table: F/BW/DQ/VL with VNNI required, BF16 used
 * where the CPU has it (compiled with those flags only here; the BF16 dot product carries
 * its own target attribute and is installed only after cpuid says BF16 is there).
 *
 * Dot products: 64 bytes per step; u8×s8 pairs with vpmaddubsw, then vpdpwssd multiplies
 * the pair sums by the 16-bit sub-block scales and accumulates in int32 (VNNI), one float
 * multiply-add per block. Signed×signed products (Q8_0, Q4_0) use vpdpbusd on |x| and y
 * with x's sign. Conversions are bit-identical to the scalar code (-ffp-contract=off).
 *
 * The prefill GEMM (mul_mat, the second half of this file) repacks weight rows into
 * panels — 8-bit values, 16 lanes per 256 values, each lane 16 consecutive values sharing
 * one scale — and activation rows into the same layout once per batch, so its inner loop
 * is 4 vpdpbusd per 256 values per (row, token) and two float multiply-adds per block.
 */
#include "engine/quant.h"

#ifdef QC_ENGINE_X86_SIMD
#include "engine/simd_common.h"

#include <pthread.h>
#include <stdlib.h>

#include "engine/limits.h"

/* ---- helpers -------------------------------------------------------------------------- */

static inline __m512 exp512_ps(__m512 x) {
  const __m512 hi = _mm512_set1_ps(88.7228391f), lo = _mm512_set1_ps(-87.3365447f);
  __mmask16 over = _mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ), under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
  x = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500E-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  __m512i ni = _mm512_cvtps_epi32(n);
  __m512i n1 = _mm512_srai_epi32(ni, 1), n2 = _mm512_sub_epi32(ni, n1);
  __m512 s1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n1, _mm512_set1_epi32(127)), 23));
  __m512 s2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n2, _mm512_set1_epi32(127)), 23));
  __m512 res = _mm512_mul_ps(_mm512_mul_ps(p, s1), s2);
  res = _mm512_mask_blend_ps(over, res, _mm512_set1_ps(INFINITY));
  return _mm512_maskz_mov_ps((__mmask16)~under, res);
}

static inline __m512 abs512(__m512 v) { return _mm512_abs_ps(v); }

/* 16 × int32 (each in -128..127) → 16 bytes */
static inline __m128i narrow16(__m512i v) { return _mm512_cvtsepi32_epi8(v); }

/* ---- F32 / F16 / BF16 ---------------------------------------------------------------- */

static void f32_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
  const float *x = vx, *y = vy;
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16), a1);
    a2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 32), _mm512_loadu_ps(y + i + 32), a2);
    a3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 48), _mm512_loadu_ps(y + i + 48), a3);
  }
  for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
  if (i < n) {
    __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
    a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i), a1);
  }
  *s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

static void f16_to_float(const void *vx, float *y, int64_t n) {
  const uint16_t *x = vx;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i))));
  for (; i < n; i++) y[i] = eng__f16_to_f32(x[i]);
}

static void f16_from_float(const float *x, void *vy, int64_t n) {
  uint16_t *y = vy;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 v = _mm512_loadu_ps(x + i);
    __m256i h = _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT);
    __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    _mm256_storeu_si256((__m256i *)(y + i), h);
    if (nan)
      for (int j = 0; j < 16; j++)
        if (nan >> j & 1) y[i + j] = eng__f32_to_f16(x[i + j]);
  }
  for (; i < n; i++) y[i] = eng__f32_to_f16(x[i]);
}

static void f16_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
  const uint16_t *x = vx, *y = vy;
  __m512 a0 = _mm512_setzero_ps(), a1 = a0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i))),
                         _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(y + i))), a0);
    a1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i + 16))),
                         _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(y + i + 16))), a1);
  }
  for (; i + 16 <= n; i += 16)
    a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i))),
                         _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(y + i))), a0);
  float sum = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
  for (; i < n; i++) sum += eng__f16_to_f32(x[i]) * eng__f16_to_f32(y[i]);
  *s = sum;
}

static inline __m512 bf16x16_to_ps(const uint16_t *p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}

static void bf16_to_float(const void *vx, float *y, int64_t n) {
  const uint16_t *x = vx;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, bf16x16_to_ps(x + i));
  for (; i < n; i++) y[i] = eng__bf16_to_f32(x[i]);
}

static void bf16_from_float(const float *x, void *vy, int64_t n) {
  uint16_t *y = vy;
  int64_t i = 0;
  const __m512i one = _mm512_set1_epi32(1), bias = _mm512_set1_epi32(0x7fff), absm = _mm512_set1_epi32(0x7fffffff);
  const __m512i inf = _mm512_set1_epi32(0x7f800000), q = _mm512_set1_epi32(64);
  for (; i + 16 <= n; i += 16) {
    __m512i u = _mm512_loadu_si512(x + i);
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(bias, _mm512_and_si512(_mm512_srli_epi32(u, 16), one))), 16);
    __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, absm), inf);
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), q));
    _mm256_storeu_si256((__m256i *)(y + i), _mm512_cvtepi32_epi16(r));
  }
  for (; i < n; i++) y[i] = eng__f32_to_bf16(x[i]);
}

/* Without AVX512_BF16: widen and FMA. */
static void bf16_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
  const uint16_t *x = vx, *y = vy;
  __m512 a0 = _mm512_setzero_ps(), a1 = a0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm512_fmadd_ps(bf16x16_to_ps(x + i), bf16x16_to_ps(y + i), a0);
    a1 = _mm512_fmadd_ps(bf16x16_to_ps(x + i + 16), bf16x16_to_ps(y + i + 16), a1);
  }
  for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(bf16x16_to_ps(x + i), bf16x16_to_ps(y + i), a0);
  float sum = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
  for (; i < n; i++) sum += eng__bf16_to_f32(x[i]) * eng__bf16_to_f32(y[i]);
  *s = sum;
}

/* With AVX512_BF16: vdpbf16ps multiplies bf16 pairs and accumulates in f32 (as llama.cpp). */
__attribute__((target("avx512bf16"))) static void bf16_vec_dot_dp(int64_t n, float *s, const void *vx, const void *vy) {
  const uint16_t *x = vx, *y = vy;
  __m512 a0 = _mm512_setzero_ps(), a1 = a0;
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(x + i), (__m512bh)_mm512_loadu_si512(y + i));
    a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_loadu_si512(x + i + 32), (__m512bh)_mm512_loadu_si512(y + i + 32));
  }
  for (; i + 32 <= n; i += 32)
    a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(x + i), (__m512bh)_mm512_loadu_si512(y + i));
  float sum = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
  for (; i < n; i++) sum += eng__bf16_to_f32(x[i]) * eng__bf16_to_f32(y[i]);
  *s = sum;
}

/* ---- Q8_0 / Q4_0 ----------------------------------------------------------------------- */

static inline __m256i dot_i8x32(__m256i acc, __m256i x, __m256i y) {
  return _mm256_dpbusd_epi32(acc, _mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

static void q8_0_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
  const eng__block_q8_0 *x = vx, *y = vy;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
  const int64_t nb = n / 32;
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    __m256i p0 = dot_i8x32(_mm256_setzero_si256(), _mm256_loadu_si256((const __m256i *)x[b].qs),
                           _mm256_loadu_si256((const __m256i *)y[b].qs));
    __m256i p1 = dot_i8x32(_mm256_setzero_si256(), _mm256_loadu_si256((const __m256i *)x[b + 1].qs),
                           _mm256_loadu_si256((const __m256i *)y[b + 1].qs));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(F16(x[b].d) * F16(y[b].d)), _mm256_cvtepi32_ps(p0), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_set1_ps(F16(x[b + 1].d) * F16(y[b + 1].d)), _mm256_cvtepi32_ps(p1), acc1);
  }
  for (; b < nb; b++) {
    __m256i p0 = dot_i8x32(_mm256_setzero_si256(), _mm256_loadu_si256((const __m256i *)x[b].qs),
                           _mm256_loadu_si256((const __m256i *)y[b].qs));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(F16(x[b].d) * F16(y[b].d)), _mm256_cvtepi32_ps(p0), acc0);
  }
  *s = hsum256_ps(_mm256_add_ps(acc0, acc1));
}

static void q4_0_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
  const eng__block_q4_0 *x = vx;
  const eng__block_q8_0 *y = vy;
  __m256 acc = _mm256_setzero_ps();
  const __m256i m4 = _mm256_set1_epi8(0xF), off = _mm256_set1_epi8(8);
  for (int64_t b = 0; b < n / 32; b++) {
    const __m128i t = _mm_loadu_si128((const __m128i *)x[b].qs);
    __m256i qx = _mm256_sub_epi8(_mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), m4), off);
    __m256i p = dot_i8x32(_mm256_setzero_si256(), qx, _mm256_loadu_si256((const __m256i *)y[b].qs));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(F16(x[b].d) * F16(y[b].d)), _mm256_cvtepi32_ps(p), acc);
  }
  *s = hsum256_ps(acc);
}

static void q8_0_to_float(const void *vx, float *y, int64_t n) {
  const eng__block_q8_0 *x = vx;
  for (int64_t b = 0; b < n / 32; b++) {
    const __m512 d = _mm512_set1_ps(F16(x[b].d));
    const __m128i q0 = _mm_loadu_si128((const __m128i *)x[b].qs), q1 = _mm_loadu_si128((const __m128i *)(x[b].qs + 16));
    _mm512_storeu_ps(y + b * 32, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0)), d));
    _mm512_storeu_ps(y + b * 32 + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1)), d));
  }
}

static void q4_0_to_float(const void *vx, float *y, int64_t n) {
  const eng__block_q4_0 *x = vx;
  for (int64_t b = 0; b < n / 32; b++) {
    const __m512 d = _mm512_set1_ps(F16(x[b].d));
    const __m128i t = _mm_loadu_si128((const __m128i *)x[b].qs);
    const __m512i v = _mm512_cvtepu8_epi32(t), off = _mm512_set1_epi32(8);
    const __m512i lo = _mm512_sub_epi32(_mm512_and_si512(v, _mm512_set1_epi32(0xF)), off);
    const __m512i hi = _mm512_sub_epi32(_mm512_srli_epi32(v, 4), off);
    _mm512_storeu_ps(y + b * 32, _mm512_mul_ps(_mm512_cvtepi32_ps(lo), d));
    _mm512_storeu_ps(y + b * 32 + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(hi), d));
  }
}

static inline float absmax32(const float *x) {
  __m512 m = _mm512_max_ps(abs512(_mm512_loadu_ps(x)), abs512(_mm512_loadu_ps(x + 16)));
  return _mm512_reduce_max_ps(m);
}

static void q8_0_from_float(const float *x, void *vy, int64_t n) {
  eng__block_q8_0 *y = vy;
  for (int64_t b = 0; b < n / 32; b++) {
    const float *xb = x + b * 32;
    const float amax = absmax32(xb);
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    y[b].d = eng__f32_to_f16(d);
    const __m512 vid = _mm512_set1_ps(id);
    __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb), vid));
    __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb + 16), vid));
    _mm_storeu_si128((__m128i *)y[b].qs, narrow16(q0));
    _mm_storeu_si128((__m128i *)(y[b].qs + 16), narrow16(q1));
  }
}

static void q8_0_quantize_ref(const float *x, void *vy, int64_t n) {
  eng__block_q8_0 *y = vy;
  const __m512 half = _mm512_set1_ps(0.5f);
  for (int64_t b = 0; b < n / 32; b++) {
    const float *xb = x + b * 32;
    const float amax = absmax32(xb);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = eng__f32_to_f16(d);
    const __m512 vid = _mm512_set1_ps(id);
    for (int j = 0; j < 2; j++) {
      __m512 v = _mm512_mul_ps(_mm512_loadu_ps(xb + 16 * j), vid);
      __m512 av = abs512(v), t = _mm512_roundscale_ps(av, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
      __mmask16 up = _mm512_cmp_ps_mask(_mm512_sub_ps(av, t), half, _CMP_GE_OQ);
      t = _mm512_mask_add_ps(t, up, t, _mm512_set1_ps(1.0f));
      __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
      __m512i qi = _mm512_cvttps_epi32(t);
      qi = _mm512_mask_sub_epi32(qi, neg, _mm512_setzero_si512(), qi);
      _mm_storeu_si128((__m128i *)(y[b].qs + 16 * j), narrow16(qi));
    }
  }
}

/* ---- Q8_K -------------------------------------------------------------------------------- */

static void q8_K_from_float(const float *x, void *vy, int64_t n) {
  eng__block_q8_K *y = vy;
  for (int64_t b = 0; b < n / ENG__QK_K; b++) {
    const float *xb = x + b * ENG__QK_K;
    __m512 m = _mm512_setzero_ps();
    for (int j = 0; j < ENG__QK_K; j += 16) m = _mm512_max_ps(m, abs512(_mm512_loadu_ps(xb + j)));
    const float amax = _mm512_reduce_max_ps(m);
    if (amax == 0.0f) {
      memset(&y[b], 0, sizeof y[b]);
      continue;
    }
    const float max = first_absmax_signed(xb, ENG__QK_K, amax);
    const float iscale = -127.0f / max;
    const __m512 vs = _mm512_set1_ps(iscale);
    const __m512i cap = _mm512_set1_epi32(127);
    for (int j = 0; j < ENG__QK_K; j += 16) {
      __m512i q = _mm512_min_epi32(cap, _mm512_cvtps_epi32(_mm512_mul_ps(vs, _mm512_loadu_ps(xb + j))));
      _mm_storeu_si128((__m128i *)(y[b].qs + j), narrow16(q));
      y[b].bsums[j / 16] = (int16_t)_mm512_reduce_add_epi32(q);
    }
    y[b].d = 1 / iscale;
  }
}

static void q8_K_to_float(const void *vx, float *y, int64_t n) {
  const eng__block_q8_K *x = vx;
  for (int64_t b = 0; b < n / ENG__QK_K; b++) {
    const __m512 d = _mm512_set1_ps(x[b].d);
    for (int j = 0; j < ENG__QK_K; j += 16) {
      __m512i q = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(x[b].qs + j)));
      _mm512_storeu_ps(y + b * ENG__QK_K + j, _mm512_mul_ps(d, _mm512_cvtepi32_ps(q)));
    }
  }
}

/* ---- K-quants ------------------------------------------------------------------------------ */

/* 32 int16 lanes: lanes 0..15 take 16-bit element a of v, lanes 16..31 element b. */
static inline __m512i spread2(__m512i v, int a, int b) {
  const __m512i idx = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16((short)a)), _mm256_set1_epi16((short)b), 1);
  return _mm512_permutexvar_epi16(idx, v);
}

/* 32 int16 lanes in 4 groups of 8: group k takes element e0+k of v. */
static inline __m512i spread4(__m512i v, int e0) {
  const __m512i idx = _mm512_set_epi16((short)(e0 + 3), (short)(e0 + 3), (short)(e0 + 3), (short)(e0 + 3), (short)(e0 + 3),
                                       (short)(e0 + 3), (short)(e0 + 3), (short)(e0 + 3), (short)(e0 + 2), (short)(e0 + 2),
                                       (short)(e0 + 2), (short)(e0 + 2), (short)(e0 + 2), (short)(e0 + 2), (short)(e0 + 2),
                                       (short)(e0 + 2), (short)(e0 + 1), (short)(e0 + 1), (short)(e0 + 1), (short)(e0 + 1),
                                       (short)(e0 + 1), (short)(e0 + 1), (short)(e0 + 1), (short)(e0 + 1), (short)e0,
                                       (short)e0, (short)e0, (short)e0, (short)e0, (short)e0, (short)e0, (short)e0);
  return _mm512_permutexvar_epi16(idx, v);
}

static inline __m512i load2x256(const void *a, const void *b) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a)),
                            _mm256_loadu_si256((const __m256i *)b), 1);
}

/* mins·bsums for a Q4_K/Q5_K block: 8 int32 lanes */
static inline __m256i kquant_min_prod(const uint32_t utmp[4], const int16_t *bsums) {
  const __m128i mins = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)utmp[3], (int)utmp[2]));
  const __m256i q8sums = _mm256_loadu_si256((const __m256i *)bsums);
  const __m128i q8s = _mm_hadd_epi16(_mm256_castsi256_si128(q8sums), _mm256_extracti128_si256(q8sums, 1));
  return _mm256_castsi128_si256(_mm_madd_epi16(mins, q8s));
}

static void q4_K_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
  const eng__block_q4_K *x = vx;
  const eng__block_q8_K *y = vy;
  const __m512i m4 = _mm512_set1_epi8(0xF);
  __m512 acc = _mm512_setzero_ps();
  __m128 acc_m = _mm_setzero_ps();
  uint32_t utmp[4];
  for (int64_t b = 0; b < n / ENG__QK_K; b++) {
    const float d = y[b].d * F16(x[b].d);
    const float dmin = -y[b].d * F16(x[b].dmin);
    kquant_scales_mins(x[b].scales, utmp);
    const __m128i prod = _mm256_castsi256_si128(kquant_min_prod(utmp, y[b].bsums));
    acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m);
    const __m512i sc16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)utmp[1], (int)utmp[0])));
    const int8_t *q8 = y[b].qs;
    __m512i sumi = _mm512_setzero_si512();
    for (int jj = 0; jj < 2; jj++) {
      const __m512i q4bits = _mm512_loadu_si512(x[b].qs + 64 * jj);
      const __m512i lo = _mm512_and_si512(q4bits, m4), hi = _mm512_and_si512(_mm512_srli_epi16(q4bits, 4), m4);
      const __m512i alo = load2x256(q8 + 128 * jj, q8 + 128 * jj + 64);
      const __m512i ahi = load2x256(q8 + 128 * jj + 32, q8 + 128 * jj + 96);
      sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(lo, alo), spread2(sc16, 4 * jj, 4 * jj + 2));
      sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(hi, ahi), spread2(sc16, 4 * jj + 1, 4 * jj + 3));
    }
    acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
  }
  acc_m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
  acc_m = _mm_add_ss(acc_m, _mm_movehdup_ps(acc_m));
  *s = _mm512_reduce_add_ps(acc) + _mm_cvtss_f32(acc_m);
}

static void q5_K_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
  const eng__block_q5_K *x = vx;
  const eng__block_q8_K *y = vy;
  const __m512i m4 = _mm512_set1_epi8(0xF), m1 = _mm512_set1_epi8(1);
  __m512 acc = _mm512_setzero_ps();
  __m128 acc_m = _mm_setzero_ps();
  uint32_t utmp[4];
  for (int64_t b = 0; b < n / ENG__QK_K; b++) {
    const float d = y[b].d * F16(x[b].d);
    const float dmin = -y[b].d * F16(x[b].dmin);
    kquant_scales_mins(x[b].scales, utmp);
    const __m128i prod = _mm256_castsi256_si128(kquant_min_prod(utmp, y[b].bsums));
    acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m);
    const __m512i sc16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)utmp[1], (int)utmp[0])));
    const int8_t *q8 = y[b].qs;
    const __m512i qh2 = load2x256(x[b].qh, x[b].qh);
    __m512i sumi = _mm512_setzero_si512();
    for (int jj = 0; jj < 2; jj++) {
      const __m512i q5bits = _mm512_loadu_si512(x[b].qs + 64 * jj);
      const __m512i cl = _mm512_inserti64x4(_mm512_set1_epi16((short)(4 * jj)), _mm256_set1_epi16((short)(4 * jj + 2)), 1);
      const __m512i ch = _mm512_inserti64x4(_mm512_set1_epi16((short)(4 * jj + 1)), _mm256_set1_epi16((short)(4 * jj + 3)), 1);
      const __m512i hl = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh2, cl), m1), 4);
      const __m512i hh = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh2, ch), m1), 4);
      const __m512i lo = _mm512_or_si512(_mm512_and_si512(q5bits, m4), hl);
      const __m512i hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(q5bits, 4), m4), hh);
      const __m512i alo = load2x256(q8 + 128 * jj, q8 + 128 * jj + 64);
      const __m512i ahi = load2x256(q8 + 128 * jj + 32, q8 + 128 * jj + 96);
      sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(lo, alo), spread2(sc16, 4 * jj, 4 * jj + 2));
      sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(hi, ahi), spread2(sc16, 4 * jj + 1, 4 * jj + 3));
    }
    acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
  }
  acc_m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
  acc_m = _mm_add_ss(acc_m, _mm_movehdup_ps(acc_m));
  *s = _mm512_reduce_add_ps(acc) + _mm_cvtss_f32(acc_m);
}

static void q6_K_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
  const eng__block_q6_K *x = vx;
  const eng__block_q8_K *y = vy;
  const __m512i m4 = _mm512_set1_epi8(0xF), m3 = _mm512_set1_epi8(3);
  const __m512i c02 = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
  const __m512i c46 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(6), 1);
  __m512 acc = _mm512_setzero_ps();
  __m256 acc_m = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / ENG__QK_K; b++) {
    const float d = y[b].d * F16(x[b].d);
    const __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[b].scales));
    const __m512i sc16 = _mm512_castsi256_si512(sc);
    const __m256i summ = _mm256_madd_epi16(sc, _mm256_loadu_si256((const __m256i *)y[b].bsums));
    const int8_t *q8 = y[b].qs;
    __m512i sumi = _mm512_setzero_si512();
    for (int h = 0; h < 2; h++) {
      const __m512i ql = _mm512_loadu_si512(x[b].ql + 64 * h);
      const __m512i qh2 = load2x256(x[b].qh + 32 * h, x[b].qh + 32 * h);
      const __m512i hA = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh2, c02), m3), 4);
      const __m512i hB = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh2, c46), m3), 4);
      const __m512i qA = _mm512_or_si512(_mm512_and_si512(ql, m4), hA);
      const __m512i qB = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), hB);
      const __m512i aA = _mm512_loadu_si512(q8 + 128 * h), aB = _mm512_loadu_si512(q8 + 128 * h + 64);
      sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(qA, aA), spread4(sc16, 8 * h));
      sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(qB, aB), spread4(sc16, 8 * h + 4));
    }
    acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
    acc_m = _mm256_fmadd_ps(_mm256_set1_ps(32.0f * d), _mm256_cvtepi32_ps(summ), acc_m);
  }
  *s = _mm512_reduce_add_ps(acc) - hsum256_ps(acc_m);
}

static void q4_K_to_float(const void *vx, float *y, int64_t n) {
  const eng__block_q4_K *x = vx;
  uint32_t utmp[4];
  for (int64_t b = 0; b < n / ENG__QK_K; b++) {
    const float d = F16(x[b].d), dmin = F16(x[b].dmin);
    kquant_scales_mins(x[b].scales, utmp);
    const uint8_t *sc = (const uint8_t *)utmp, *mn = (const uint8_t *)utmp + 8;
    const uint8_t *q = x[b].qs;
    for (int c = 0; c < 4; c++, q += 32) {
      const __m512 d1 = _mm512_set1_ps(d * sc[2 * c]), m1 = _mm512_set1_ps(dmin * mn[2 * c]);
      const __m512 d2 = _mm512_set1_ps(d * sc[2 * c + 1]), m2 = _mm512_set1_ps(dmin * mn[2 * c + 1]);
      for (int l = 0; l < 32; l += 16) {
        __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(q + l)));
        __m512 lo = _mm512_cvtepi32_ps(_mm512_and_si512(v, _mm512_set1_epi32(0xF)));
        __m512 hi = _mm512_cvtepi32_ps(_mm512_srli_epi32(v, 4));
        _mm512_storeu_ps(y + l, _mm512_sub_ps(_mm512_mul_ps(d1, lo), m1));
        _mm512_storeu_ps(y + 32 + l, _mm512_sub_ps(_mm512_mul_ps(d2, hi), m2));
      }
      y += 64;
    }
  }
}

static void q5_K_to_float(const void *vx, float *y, int64_t n) {
  const eng__block_q5_K *x = vx;
  uint32_t utmp[4];
  for (int64_t b = 0; b < n / ENG__QK_K; b++) {
    const float d = F16(x[b].d), dmin = F16(x[b].dmin);
    kquant_scales_mins(x[b].scales, utmp);
    const uint8_t *sc = (const uint8_t *)utmp, *mn = (const uint8_t *)utmp + 8;
    const uint8_t *q = x[b].qs, *qh = x[b].qh;
    for (int c = 0; c < 4; c++, q += 32) {
      const __m512 d1 = _mm512_set1_ps(d * sc[2 * c]), m1 = _mm512_set1_ps(dmin * mn[2 * c]);
      const __m512 d2 = _mm512_set1_ps(d * sc[2 * c + 1]), m2 = _mm512_set1_ps(dmin * mn[2 * c + 1]);
      for (int l = 0; l < 32; l += 16) {
        __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(q + l)));
        __m512i h = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(qh + l)));
        __m512i hl = _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(h, 2 * c), _mm512_set1_epi32(1)), 4);
        __m512i hh = _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(h, 2 * c + 1), _mm512_set1_epi32(1)), 4);
        __m512 lo = _mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_and_si512(v, _mm512_set1_epi32(0xF)), hl));
        __m512 hi = _mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_srli_epi32(v, 4), hh));
        _mm512_storeu_ps(y + l, _mm512_sub_ps(_mm512_mul_ps(d1, lo), m1));
        _mm512_storeu_ps(y + 32 + l, _mm512_sub_ps(_mm512_mul_ps(d2, hi), m2));
      }
      y += 64;
    }
  }
}

static void q6_K_to_float(const void *vx, float *y, int64_t n) {
  const eng__block_q6_K *x = vx;
  const __m512i m3 = _mm512_set1_epi32(3), mf = _mm512_set1_epi32(0xF), k32 = _mm512_set1_epi32(32);
  for (int64_t b = 0; b < n / ENG__QK_K; b++) {
    const float d = F16(x[b].d);
    for (int h = 0; h < 2; h++) {
      const uint8_t *ql = x[b].ql + 64 * h, *qh = x[b].qh + 32 * h;
      float *o = y + b * ENG__QK_K + 128 * h;
      for (int l = 0; l < 32; l += 16) {
        __m512i a = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(ql + l)));
        __m512i c = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(ql + l + 32)));
        __m512i hb = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(qh + l)));
        __m512i v[4] = {
            _mm512_or_si512(_mm512_and_si512(a, mf), _mm512_slli_epi32(_mm512_and_si512(hb, m3), 4)),
            _mm512_or_si512(_mm512_and_si512(c, mf), _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(hb, 2), m3), 4)),
            _mm512_or_si512(_mm512_srli_epi32(a, 4), _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(hb, 4), m3), 4)),
            _mm512_or_si512(_mm512_srli_epi32(c, 4), _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(hb, 6), m3), 4)),
        };
        for (int k = 0; k < 4; k++) {
          const int i = 128 * h + 32 * k + l;
          const __m512 ds = _mm512_set1_ps(d * x[b].scales[i / 16]);
          _mm512_storeu_ps(o + 32 * k + l, _mm512_mul_ps(ds, _mm512_cvtepi32_ps(_mm512_sub_epi32(v[k], k32))));
        }
      }
    }
  }
}

/* ---- the other loops ------------------------------------------------------------------------ */

static void rmsnorm(const float *x, const float *w, float *y, int64_t n, float eps) {
  __m512d s0 = _mm512_setzero_pd(), s1 = s0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 v = _mm512_loadu_ps(x + i);
    __m512 sq = _mm512_mul_ps(v, v);
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(sq)));
    s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(sq), 1))));
  }
  double sum = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
  for (; i < n; i++) sum += (double)(x[i] * x[i]);
  const float mean = (float)(sum / (double)n);
  const float scale = 1.0f / sqrtf(mean + eps);
  const __m512 vs = _mm512_set1_ps(scale);
  for (i = 0; i + 16 <= n; i += 16)
    _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), vs), _mm512_loadu_ps(w + i)));
  for (; i < n; i++) y[i] = (x[i] * scale) * w[i];
}

static float vmax(const float *x, int64_t n) {
  __m512 m = _mm512_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(x + i));
  float r = _mm512_reduce_max_ps(m);
  for (; i < n; i++) r = x[i] > r ? x[i] : r;
  return r;
}

static float exp_sum(float *x, float m, int64_t n) {
  const __m512 vm = _mm512_set1_ps(m);
  __m512 s = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 e = exp512_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm));
    _mm512_storeu_ps(x + i, e);
    s = _mm512_add_ps(s, e);
  }
  if (i < n) {
    __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
    __m512 e = exp512_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm));
    _mm512_mask_storeu_ps(x + i, k, e);
    s = _mm512_add_ps(s, _mm512_maskz_mov_ps(k, e));
  }
  return _mm512_reduce_add_ps(s);
}

static void scale(float *y, float a, int64_t n) {
  const __m512 va = _mm512_set1_ps(a);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(y + i), va));
  for (; i < n; i++) y[i] *= a;
}

static void softmax(float *x, int64_t n) {
  float sum = exp_sum(x, vmax(x, n), n);
  scale(x, 1.0f / sum, n);
}

static void silu_mul(float *g, const float *u, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 v = _mm512_loadu_ps(g + i);
    __m512 e = exp512_ps(_mm512_sub_ps(_mm512_setzero_ps(), v));
    _mm512_storeu_ps(g + i, _mm512_mul_ps(_mm512_div_ps(v, _mm512_add_ps(one, e)), _mm512_loadu_ps(u + i)));
  }
  for (; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static void rope(float *v, const float *cache, int hd) {
  const int half = hd / 2;
  const __m512i ic = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i is = _mm512_add_epi32(ic, _mm512_set1_epi32(1));
  int i = 0;
  for (; i + 16 <= half; i += 16) {
    __m512 p0 = _mm512_loadu_ps(cache + 2 * i), p1 = _mm512_loadu_ps(cache + 2 * i + 16);
    __m512 c = _mm512_permutex2var_ps(p0, ic, p1), s = _mm512_permutex2var_ps(p0, is, p1);
    __m512 x0 = _mm512_loadu_ps(v + i), x1 = _mm512_loadu_ps(v + i + half);
    _mm512_storeu_ps(v + i, _mm512_sub_ps(_mm512_mul_ps(x0, c), _mm512_mul_ps(x1, s)));
    _mm512_storeu_ps(v + i + half, _mm512_add_ps(_mm512_mul_ps(x0, s), _mm512_mul_ps(x1, c)));
  }
  for (; i < half; i++) {
    const float c = cache[2 * i], sn = cache[2 * i + 1];
    const float x0 = v[i], x1 = v[i + half];
    v[i] = x0 * c - x1 * sn;
    v[i + half] = x0 * sn + x1 * c;
  }
}

static float dot(const float *a, const float *b, int64_t n) {
  float s;
  f32_vec_dot(n, &s, a, b);
  return s;
}

static void axpy(float *y, float a, const float *x, int64_t n) {
  const __m512 va = _mm512_set1_ps(a);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
  for (; i < n; i++) y[i] += a * x[i];
}

static void add(float *y, const float *x, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_add_ps(_mm512_loadu_ps(y + i), _mm512_loadu_ps(x + i)));
  for (; i < n; i++) y[i] += x[i];
}

/* Scores of up to 8 heads against up to 32 transposed keys: per dimension two key vectors,
 * one broadcast multiply-add per head — no horizontal sums. */
static void attn_scores(const float *q, int G, int hd, const float *KT, size_t ldk, int nb, float scale, float *S) {
  const __mmask16 m0 = nb >= 16 ? 0xFFFF : (__mmask16)((1u << nb) - 1);
  const __mmask16 m1 = nb >= 32 ? 0xFFFF : nb > 16 ? (__mmask16)((1u << (nb - 16)) - 1) : 0;
  const __m512 vs = _mm512_set1_ps(scale);
  for (int h0 = 0; h0 < G; h0 += 8) {
    const int hn = G - h0 < 8 ? G - h0 : 8;
    __m512 a[8][2];
    for (int h = 0; h < 8; h++) a[h][0] = a[h][1] = _mm512_setzero_ps();
    if (hn == 8) {
      for (int d = 0; d < hd; d++) {
        const __m512 k0 = _mm512_maskz_loadu_ps(m0, KT + (size_t)d * ldk);
        const __m512 k1 = _mm512_maskz_loadu_ps(m1, KT + (size_t)d * ldk + 16);
        _Pragma("GCC unroll 8")
        for (int h = 0; h < 8; h++) {
          const __m512 qb = _mm512_set1_ps(q[(h0 + h) * hd + d]);
          a[h][0] = _mm512_fmadd_ps(qb, k0, a[h][0]);
          a[h][1] = _mm512_fmadd_ps(qb, k1, a[h][1]);
        }
      }
    } else {
      for (int d = 0; d < hd; d++) {
        const __m512 k0 = _mm512_maskz_loadu_ps(m0, KT + (size_t)d * ldk);
        const __m512 k1 = _mm512_maskz_loadu_ps(m1, KT + (size_t)d * ldk + 16);
        for (int h = 0; h < hn; h++) {
          const __m512 qb = _mm512_set1_ps(q[(h0 + h) * hd + d]);
          a[h][0] = _mm512_fmadd_ps(qb, k0, a[h][0]);
          a[h][1] = _mm512_fmadd_ps(qb, k1, a[h][1]);
        }
      }
    }
    for (int h = 0; h < hn; h++) {
      _mm512_storeu_ps(S + (h0 + h) * ENG__ATT_BLOCK, _mm512_mul_ps(a[h][0], vs));
      _mm512_storeu_ps(S + (h0 + h) * ENG__ATT_BLOCK + 16, _mm512_mul_ps(a[h][1], vs));
    }
  }
}

/* acc += P·V, 16 dimensions at a time for up to 8 heads: one V load, one broadcast
 * multiply-add per head and position. */
static void attn_accum(float *acc, int G, int hd, const float *P, int nb, const float *V, size_t ldv) {
  if (hd % 16) {
    eng__kernels_scalar.op.attn_accum(acc, G, hd, P, nb, V, ldv);
    return;
  }
  for (int h0 = 0; h0 < G; h0 += 8) {
    const int hn = G - h0 < 8 ? G - h0 : 8;
    for (int dc = 0; dc < hd; dc += 16) {
      __m512 a[8];
      for (int h = 0; h < hn; h++) a[h] = _mm512_loadu_ps(acc + (h0 + h) * hd + dc);
      if (hn == 8) {
        for (int j = 0; j < nb; j++) {
          const __m512 v = _mm512_loadu_ps(V + (size_t)j * ldv + (size_t)dc);
          _Pragma("GCC unroll 8")
          for (int h = 0; h < 8; h++) a[h] = _mm512_fmadd_ps(_mm512_set1_ps(P[(h0 + h) * ENG__ATT_BLOCK + j]), v, a[h]);
        }
      } else {
        for (int j = 0; j < nb; j++) {
          const __m512 v = _mm512_loadu_ps(V + (size_t)j * ldv + (size_t)dc);
          for (int h = 0; h < hn; h++) a[h] = _mm512_fmadd_ps(_mm512_set1_ps(P[(h0 + h) * ENG__ATT_BLOCK + j]), v, a[h]);
        }
      }
      for (int h = 0; h < hn; h++) _mm512_storeu_ps(acc + (h0 + h) * hd + dc, a[h]);
    }
  }
}

/* ---- the table --------------------------------------------------------------------------------- */

#include "engine/gemm_avx512.h"

static eng__kernels table = {
    .name = "avx512",
    .t = {
        [ENG__T_F32] = {"F32", 1, 4, ENG__T_F32, NULL, NULL, NULL, f32_vec_dot},
        [ENG__T_F16] = {"F16", 1, 2, ENG__T_F16, f16_to_float, NULL, f16_from_float, f16_vec_dot},
        [ENG__T_BF16] = {"BF16", 1, 2, ENG__T_BF16, bf16_to_float, NULL, bf16_from_float, bf16_vec_dot},
        [ENG__T_Q8_0] = {"Q8_0", 32, 34, ENG__T_Q8_0, q8_0_to_float, q8_0_quantize_ref, q8_0_from_float, q8_0_vec_dot},
        [ENG__T_Q4_0] = {"Q4_0", 32, 18, ENG__T_Q8_0, q4_0_to_float, NULL, NULL, q4_0_vec_dot},
        [ENG__T_Q4_K] = {"Q4_K", 256, 144, ENG__T_Q8_K, q4_K_to_float, NULL, NULL, q4_K_vec_dot},
        [ENG__T_Q5_K] = {"Q5_K", 256, 176, ENG__T_Q8_K, q5_K_to_float, NULL, NULL, q5_K_vec_dot},
        [ENG__T_Q6_K] = {"Q6_K", 256, 210, ENG__T_Q8_K, q6_K_to_float, NULL, NULL, q6_K_vec_dot},
        [ENG__T_Q8_K] = {"Q8_K", 256, 292, ENG__T_Q8_K, q8_K_to_float, NULL, q8_K_from_float, NULL},
    },
    .op = {rmsnorm, softmax, silu_mul, rope, dot, axpy, scale, add, exp_sum, attn_scores, attn_accum},
};

static void fill(void) {
  for (int t = 0; t < ENG__T_COUNT; t++) {
    const eng__type_traits *s = &eng__kernels_scalar.t[t];
    eng__type_traits *f = &table.t[t];
    if (!s->name) continue;
    if (!f->to_float) f->to_float = s->to_float;
    if (!f->quantize_row) f->quantize_row = s->quantize_row;
    if (!f->from_float) f->from_float = s->from_float;
    if (!f->vec_dot) f->vec_dot = s->vec_dot;
  }
  if (eng__cpu()->avx512bf16) table.t[ENG__T_BF16].vec_dot = bf16_vec_dot_dp;
  gemm_install(&table);
}

const eng__kernels *eng__kernels_avx512(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, fill);
  return &table;
}

#else /* not x86-64: no table */
const eng__kernels *eng__kernels_avx512(void) { return NULL; }
#endif
