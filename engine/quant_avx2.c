/* quant_avx2.c — the AVX2 + FMA + F16C kernel table (compiled with those flags only here).
 *
 * Dot products follow the scheme of quant.h: 8-bit activations, integer sums inside a
 * block (vpmaddubsw pairs u8×s8, vpmaddwd with the block's sub-scales), one float
 * multiply-add per block. Signed×signed products (Q8_0, Q4_0) use the sign trick: |x|
 * times y with x's sign moved onto y. Conversions (to_float, from_float) compute exactly
 * what the scalar code computes, lane by lane and in the same order, so they are
 * bit-identical (this file is built with -ffp-contract=off). The float loops (norms,
 * softmax, SiLU) use a polynomial expf and float partial sums: within rounding of the
 * scalar table, as tested. The second half (gemm_avx2.h) is the int8 GEMM prefill uses
 * for K-quants and Q4_0.
 */
#include "engine/quant.h"

#ifdef QC_ENGINE_X86_SIMD
#include "engine/simd_common.h"

#include <pthread.h>

#include "engine/limits.h"

/* ---- F32 / F16 / BF16 ---------------------------------------------------------------- */

static void f32_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
  const float *x = vx, *y = vy;
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);
    a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), a2);
    a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), a3);
  }
  for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
  float sum = hsum256_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; i < n; i++) sum += x[i] * y[i];
  *s = sum;
}

static void f16_to_float(const void *vx, float *y, int64_t n) {
  const uint16_t *x = vx;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
  for (; i < n; i++) y[i] = eng__f16_to_f32(x[i]);
}

/* vcvtps2ph rounds to nearest even like the scalar code; NaN lanes are replaced by the
 * scalar code's canonical 0x7E00 (with the sign). */
static void f16_from_float(const float *x, void *vy, int64_t n) {
  uint16_t *y = vy;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    __m128i h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT);
    int nan = _mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    _mm_storeu_si128((__m128i *)(y + i), h);
    if (nan)
      for (int j = 0; j < 8; j++)
        if (nan >> j & 1) y[i + j] = eng__f32_to_f16(x[i + j]);
  }
  for (; i < n; i++) y[i] = eng__f32_to_f16(x[i]);
}

static void f16_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
  const uint16_t *x = vx, *y = vy;
  __m256 a0 = _mm256_setzero_ps(), a1 = a0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))),
                         _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i))), a0);
    a1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i + 8))),
                         _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i + 8))), a1);
  }
  for (; i + 8 <= n; i += 8)
    a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))),
                         _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i))), a0);
  float sum = hsum256_ps(_mm256_add_ps(a0, a1));
  for (; i < n; i++) sum += eng__f16_to_f32(x[i]) * eng__f16_to_f32(y[i]);
  *s = sum;
}

static inline __m256 bf16x8_to_ps(const uint16_t *p) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

static void bf16_to_float(const void *vx, float *y, int64_t n) {
  const uint16_t *x = vx;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, bf16x8_to_ps(x + i));
  for (; i < n; i++) y[i] = eng__bf16_to_f32(x[i]);
}

/* Round to nearest even in integers, NaN → quiet (the scalar rule), 8 at a time. */
static void bf16_from_float(const float *x, void *vy, int64_t n) {
  uint16_t *y = vy;
  int64_t i = 0;
  const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff), absm = _mm256_set1_epi32(0x7fffffff);
  const __m256i inf = _mm256_set1_epi32(0x7f800000), q = _mm256_set1_epi32(64);
  for (; i + 8 <= n; i += 8) {
    __m256i u = _mm256_loadu_si256((const __m256i *)(x + i));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(bias, _mm256_and_si256(_mm256_srli_epi32(u, 16), one))), 16);
    __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, absm), inf);
    __m256i rn = _mm256_or_si256(_mm256_srli_epi32(u, 16), q);
    r = _mm256_blendv_epi8(r, rn, nan);
    /* pack 8 × u32 (< 65536) into 8 × u16 */
    __m128i lo = _mm256_castsi256_si128(r), hi = _mm256_extracti128_si256(r, 1);
    _mm_storeu_si128((__m128i *)(y + i), _mm_packus_epi32(lo, hi));
  }
  for (; i < n; i++) y[i] = eng__f32_to_bf16(x[i]);
}

static void bf16_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
  const uint16_t *x = vx, *y = vy;
  __m256 a0 = _mm256_setzero_ps(), a1 = a0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = _mm256_fmadd_ps(bf16x8_to_ps(x + i), bf16x8_to_ps(y + i), a0);
    a1 = _mm256_fmadd_ps(bf16x8_to_ps(x + i + 8), bf16x8_to_ps(y + i + 8), a1);
  }
  for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(bf16x8_to_ps(x + i), bf16x8_to_ps(y + i), a0);
  float sum = hsum256_ps(_mm256_add_ps(a0, a1));
  for (; i < n; i++) sum += eng__bf16_to_f32(x[i]) * eng__bf16_to_f32(y[i]);
  *s = sum;
}

/* ---- Q8_0 / Q4_0 ----------------------------------------------------------------------- */

/* Σ x·y over 32 signed bytes as 8 int32 lanes → floats. */
static inline __m256 mul_sum_i8_pairs(__m256i x, __m256i y) {
  const __m256i ax = _mm256_sign_epi8(x, x);
  const __m256i sy = _mm256_sign_epi8(y, x);
  const __m256i dot = _mm256_maddubs_epi16(ax, sy);
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(dot, _mm256_set1_epi16(1)));
}

static void q8_0_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
  const eng__block_q8_0 *x = vx, *y = vy;
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / 32; b++) {
    const __m256 d = _mm256_set1_ps(F16(x[b].d) * F16(y[b].d));
    const __m256i qx = _mm256_loadu_si256((const __m256i *)x[b].qs);
    const __m256i qy = _mm256_loadu_si256((const __m256i *)y[b].qs);
    acc = _mm256_fmadd_ps(d, mul_sum_i8_pairs(qx, qy), acc);
  }
  *s = hsum256_ps(acc);
}

static void q8_0_to_float(const void *vx, float *y, int64_t n) {
  const eng__block_q8_0 *x = vx;
  for (int64_t b = 0; b < n / 32; b++) {
    const __m256 d = _mm256_set1_ps(F16(x[b].d));
    for (int j = 0; j < 32; j += 8) {
      __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(x[b].qs + j)));
      _mm256_storeu_ps(y + b * 32 + j, _mm256_mul_ps(_mm256_cvtepi32_ps(q), d));
    }
  }
}

/* 32 floats → 32 int8 (already scaled and rounded), in order. */
static inline __m256i pack_32(__m256i i0, __m256i i1, __m256i i2, __m256i i3) {
  i0 = _mm256_packs_epi32(i0, i1);
  i2 = _mm256_packs_epi32(i2, i3);
  i0 = _mm256_packs_epi16(i0, i2);
  return _mm256_permutevar8x32_epi32(i0, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static inline __m256 abs_ps(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

static inline float absmax32(const float *x) {
  __m256 m = _mm256_max_ps(_mm256_max_ps(abs_ps(_mm256_loadu_ps(x)), abs_ps(_mm256_loadu_ps(x + 8))),
                           _mm256_max_ps(abs_ps(_mm256_loadu_ps(x + 16)), abs_ps(_mm256_loadu_ps(x + 24))));
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}

/* Activation quantiser: id = 127/amax, round half to even (exactly the scalar code). */
static void q8_0_from_float(const float *x, void *vy, int64_t n) {
  eng__block_q8_0 *y = vy;
  for (int64_t b = 0; b < n / 32; b++) {
    const float *xb = x + b * 32;
    const float amax = absmax32(xb);
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    y[b].d = eng__f32_to_f16(d);
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int j = 0; j < 4; j++)
      q[j] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(xb + 8 * j), vid),
                                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    _mm256_storeu_si256((__m256i *)y[b].qs, pack_32(q[0], q[1], q[2], q[3]));
  }
}

/* Reference (file) quantiser: d = amax/127, q = roundf(x·(1/d)), ties away from zero. */
static void q8_0_quantize_ref(const float *x, void *vy, int64_t n) {
  eng__block_q8_0 *y = vy;
  const __m256 half = _mm256_set1_ps(0.5f), sgn = _mm256_set1_ps(-0.0f);
  for (int64_t b = 0; b < n / 32; b++) {
    const float *xb = x + b * 32;
    const float amax = absmax32(xb);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = eng__f32_to_f16(d);
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int j = 0; j < 4; j++) {
      __m256 v = _mm256_mul_ps(_mm256_loadu_ps(xb + 8 * j), vid);
      /* roundf: trunc(|v|), +1 when the fraction is ≥ 0.5, sign back */
      __m256 av = abs_ps(v), t = _mm256_round_ps(av, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
      __m256 up = _mm256_cmp_ps(_mm256_sub_ps(av, t), half, _CMP_GE_OQ);
      t = _mm256_add_ps(t, _mm256_and_ps(up, _mm256_set1_ps(1.0f)));
      t = _mm256_or_ps(t, _mm256_and_ps(v, sgn));
      q[j] = _mm256_cvttps_epi32(t);
    }
    _mm256_storeu_si256((__m256i *)y[b].qs, pack_32(q[0], q[1], q[2], q[3]));
  }
}

static void q4_0_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
  const eng__block_q4_0 *x = vx;
  const eng__block_q8_0 *y = vy;
  __m256 acc = _mm256_setzero_ps();
  const __m256i m4 = _mm256_set1_epi8(0xF), off = _mm256_set1_epi8(8);
  for (int64_t b = 0; b < n / 32; b++) {
    const __m256 d = _mm256_set1_ps(F16(x[b].d) * F16(y[b].d));
    const __m128i t = _mm_loadu_si128((const __m128i *)x[b].qs);
    __m256i qx = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), m4);
    qx = _mm256_sub_epi8(qx, off);
    const __m256i qy = _mm256_loadu_si256((const __m256i *)y[b].qs);
    acc = _mm256_fmadd_ps(d, mul_sum_i8_pairs(qx, qy), acc);
  }
  *s = hsum256_ps(acc);
}

static void q4_0_to_float(const void *vx, float *y, int64_t n) {
  const eng__block_q4_0 *x = vx;
  for (int64_t b = 0; b < n / 32; b++) {
    const __m256 d = _mm256_set1_ps(F16(x[b].d));
    const __m128i t = _mm_loadu_si128((const __m128i *)x[b].qs);
    uint8_t nib[32];
    _mm_storeu_si128((__m128i *)nib, _mm_and_si128(t, _mm_set1_epi8(0xF)));
    _mm_storeu_si128((__m128i *)(nib + 16), _mm_and_si128(_mm_srli_epi16(t, 4), _mm_set1_epi8(0xF)));
    for (int j = 0; j < 32; j += 8) {
      __m256i q = _mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(nib + j))), _mm256_set1_epi32(8));
      _mm256_storeu_ps(y + b * 32 + j, _mm256_mul_ps(_mm256_cvtepi32_ps(q), d));
    }
  }
}

/* ---- Q8_K -------------------------------------------------------------------------------- */

static void q8_K_from_float(const float *x, void *vy, int64_t n) {
  eng__block_q8_K *y = vy;
  for (int64_t b = 0; b < n / ENG__QK_K; b++) {
    const float *xb = x + b * ENG__QK_K;
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < ENG__QK_K; j += 8) m = _mm256_max_ps(m, abs_ps(_mm256_loadu_ps(xb + j)));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    const float amax = _mm_cvtss_f32(h);
    if (amax == 0.0f) {
      memset(&y[b], 0, sizeof y[b]);
      continue;
    }
    const float max = first_absmax_signed(xb, ENG__QK_K, amax);
    const float iscale = -127.0f / max;
    const __m256 vs = _mm256_set1_ps(iscale);
    const __m256i cap = _mm256_set1_epi32(127);
    for (int j = 0; j < ENG__QK_K; j += 32) {
      __m256i q[4];
      for (int k = 0; k < 4; k++)
        q[k] = _mm256_min_epi32(cap, _mm256_cvtps_epi32(_mm256_mul_ps(vs, _mm256_loadu_ps(xb + j + 8 * k))));
      _mm256_storeu_si256((__m256i *)(y[b].qs + j), pack_32(q[0], q[1], q[2], q[3]));
    }
    for (int j = 0; j < ENG__QK_K / 16; j++) {
      __m128i v = _mm_loadu_si128((const __m128i *)(y[b].qs + 16 * j));
      __m256i w = _mm256_cvtepi8_epi16(v);
      __m256i s32 = _mm256_madd_epi16(w, _mm256_set1_epi16(1));
      y[b].bsums[j] = (int16_t)hsum256_epi32(s32);
    }
    y[b].d = 1 / iscale;
  }
}

/* ---- K-quants ------------------------------------------------------------------------------ */

static void q4_K_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
  const eng__block_q4_K *x = vx;
  const eng__block_q8_K *y = vy;
  const __m256i m4 = _mm256_set1_epi8(0xF);
  __m256 acc = _mm256_setzero_ps();
  __m128 acc_m = _mm_setzero_ps();
  uint32_t utmp[4];
  for (int64_t b = 0; b < n / ENG__QK_K; b++) {
    const float d = y[b].d * F16(x[b].d);
    const float dmin = -y[b].d * F16(x[b].dmin);
    kquant_scales_mins(x[b].scales, utmp);
    const __m256i mins_and_scales = _mm256_cvtepu8_epi16(_mm_set_epi32((int)utmp[3], (int)utmp[2], (int)utmp[1], (int)utmp[0]));
    const __m256i q8sums = _mm256_loadu_si256((const __m256i *)y[b].bsums);
    const __m128i q8s = _mm_hadd_epi16(_mm256_castsi256_si128(q8sums), _mm256_extracti128_si256(q8sums, 1));
    const __m128i prod = _mm_madd_epi16(_mm256_extracti128_si256(mins_and_scales, 1), q8s);
    acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m);
    const __m128i sc128 = _mm256_castsi256_si128(mins_and_scales);
    const __m256i scales = _mm256_set_m128i(sc128, sc128);
    const uint8_t *q4 = x[b].qs;
    const int8_t *q8 = y[b].qs;
    __m256i sumi = _mm256_setzero_si256();
    for (int j = 0; j < 4; j++) {
      const __m256i sl = _mm256_shuffle_epi8(scales, _mm256_set1_epi16((short)((4 * j + 1) << 8 | (4 * j))));
      const __m256i sh = _mm256_shuffle_epi8(scales, _mm256_set1_epi16((short)((4 * j + 3) << 8 | (4 * j + 2))));
      const __m256i q4bits = _mm256_loadu_si256((const __m256i *)q4);
      q4 += 32;
      const __m256i q4l = _mm256_and_si256(q4bits, m4);
      const __m256i q4h = _mm256_and_si256(_mm256_srli_epi16(q4bits, 4), m4);
      __m256i pl = _mm256_maddubs_epi16(q4l, _mm256_loadu_si256((const __m256i *)q8));
      __m256i ph = _mm256_maddubs_epi16(q4h, _mm256_loadu_si256((const __m256i *)(q8 + 32)));
      q8 += 64;
      sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(_mm256_madd_epi16(sl, pl), _mm256_madd_epi16(sh, ph)));
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
  }
  acc_m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
  acc_m = _mm_add_ss(acc_m, _mm_movehdup_ps(acc_m));
  *s = hsum256_ps(acc) + _mm_cvtss_f32(acc_m);
}

static void q5_K_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
  const eng__block_q5_K *x = vx;
  const eng__block_q8_K *y = vy;
  const __m256i m4 = _mm256_set1_epi8(0xF), m1 = _mm256_set1_epi8(1);
  __m256 acc = _mm256_setzero_ps();
  __m128 acc_m = _mm_setzero_ps();
  uint32_t utmp[4];
  for (int64_t b = 0; b < n / ENG__QK_K; b++) {
    const float d = y[b].d * F16(x[b].d);
    const float dmin = -y[b].d * F16(x[b].dmin);
    kquant_scales_mins(x[b].scales, utmp);
    const __m256i mins_and_scales = _mm256_cvtepu8_epi16(_mm_set_epi32((int)utmp[3], (int)utmp[2], (int)utmp[1], (int)utmp[0]));
    const __m256i q8sums = _mm256_loadu_si256((const __m256i *)y[b].bsums);
    const __m128i q8s = _mm_hadd_epi16(_mm256_castsi256_si128(q8sums), _mm256_extracti128_si256(q8sums, 1));
    const __m128i prod = _mm_madd_epi16(_mm256_extracti128_si256(mins_and_scales, 1), q8s);
    acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m);
    const __m128i sc128 = _mm256_castsi256_si128(mins_and_scales);
    const __m256i scales = _mm256_set_m128i(sc128, sc128);
    const uint8_t *q5 = x[b].qs;
    const int8_t *q8 = y[b].qs;
    const __m256i hbits = _mm256_loadu_si256((const __m256i *)x[b].qh);
    __m256i sumi = _mm256_setzero_si256();
    for (int j = 0; j < 4; j++) {
      const __m256i sl = _mm256_shuffle_epi8(scales, _mm256_set1_epi16((short)((4 * j + 1) << 8 | (4 * j))));
      const __m256i sh = _mm256_shuffle_epi8(scales, _mm256_set1_epi16((short)((4 * j + 3) << 8 | (4 * j + 2))));
      const __m256i q5bits = _mm256_loadu_si256((const __m256i *)q5);
      q5 += 32;
      const __m128i shl = _mm_cvtsi32_si128(2 * j), shh = _mm_cvtsi32_si128(2 * j + 1);
      const __m256i hl = _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(hbits, shl), m1), 4);
      const __m256i hh = _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(hbits, shh), m1), 4);
      const __m256i q5l = _mm256_or_si256(_mm256_and_si256(q5bits, m4), hl);
      const __m256i q5h = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q5bits, 4), m4), hh);
      __m256i pl = _mm256_maddubs_epi16(q5l, _mm256_loadu_si256((const __m256i *)q8));
      __m256i ph = _mm256_maddubs_epi16(q5h, _mm256_loadu_si256((const __m256i *)(q8 + 32)));
      q8 += 64;
      sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(_mm256_madd_epi16(sl, pl), _mm256_madd_epi16(sh, ph)));
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
  }
  acc_m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
  acc_m = _mm_add_ss(acc_m, _mm_movehdup_ps(acc_m));
  *s = hsum256_ps(acc) + _mm_cvtss_f32(acc_m);
}

/* Σ_g scale_g · Σ (q - 32)·a over a Q6_K block, computed as Σ q·a - 32·Σ a per pair. */
static void q6_K_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
  const eng__block_q6_K *x = vx;
  const eng__block_q8_K *y = vy;
  const __m256i m4 = _mm256_set1_epi8(0xF), m2 = _mm256_set1_epi8(3), m32s = _mm256_set1_epi8(32);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / ENG__QK_K; b++) {
    const float d = y[b].d * F16(x[b].d);
    const uint8_t *q4 = x[b].ql, *qh = x[b].qh;
    const int8_t *q8 = y[b].qs;
    const __m128i scales = _mm_loadu_si128((const __m128i *)x[b].scales);
    __m256i sumi = _mm256_setzero_si256();
    for (int j = 0; j < 2; j++) {
      const __m256i q4bits1 = _mm256_loadu_si256((const __m256i *)q4);
      const __m256i q4bits2 = _mm256_loadu_si256((const __m256i *)(q4 + 32));
      q4 += 64;
      const __m256i q4bitsH = _mm256_loadu_si256((const __m256i *)qh);
      qh += 32;
      const __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(q4bitsH, m2), 4);
      const __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(q4bitsH, 2), m2), 4);
      const __m256i h2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(q4bitsH, 4), m2), 4);
      const __m256i h3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(q4bitsH, 6), m2), 4);
      const __m256i q[4] = {
          _mm256_or_si256(_mm256_and_si256(q4bits1, m4), h0),
          _mm256_or_si256(_mm256_and_si256(q4bits2, m4), h1),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits1, 4), m4), h2),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits2, 4), m4), h3),
      };
      for (int k = 0; k < 4; k++) {
        const __m256i a = _mm256_loadu_si256((const __m256i *)(q8 + 32 * k));
        __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q[k], a), _mm256_maddubs_epi16(m32s, a));
        const int g = 8 * j + 2 * k;
        const __m128i sidx = _mm_set_epi8((char)(g + 1), (char)(g + 1), (char)(g + 1), (char)(g + 1), (char)(g + 1),
                                          (char)(g + 1), (char)(g + 1), (char)(g + 1), (char)g, (char)g, (char)g,
                                          (char)g, (char)g, (char)g, (char)g, (char)g);
        const __m256i sc = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, sidx));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(sc, p));
      }
      q8 += 128;
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
  }
  *s = hsum256_ps(acc);
}

/* Dequantisers: same products in the same order as the scalar code. */
static void q4_K_to_float(const void *vx, float *y, int64_t n) {
  const eng__block_q4_K *x = vx;
  uint32_t utmp[4];
  for (int64_t b = 0; b < n / ENG__QK_K; b++) {
    const float d = F16(x[b].d), dmin = F16(x[b].dmin);
    kquant_scales_mins(x[b].scales, utmp);
    const uint8_t *sc = (const uint8_t *)utmp, *mn = (const uint8_t *)utmp + 8;
    const uint8_t *q = x[b].qs;
    for (int c = 0; c < 4; c++, q += 32) {
      const __m256 d1 = _mm256_set1_ps(d * sc[2 * c]), m1 = _mm256_set1_ps(dmin * mn[2 * c]);
      const __m256 d2 = _mm256_set1_ps(d * sc[2 * c + 1]), m2 = _mm256_set1_ps(dmin * mn[2 * c + 1]);
      for (int l = 0; l < 32; l += 8) {
        __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(q + l)));
        __m256 lo = _mm256_cvtepi32_ps(_mm256_and_si256(v, _mm256_set1_epi32(0xF)));
        __m256 hi = _mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4));
        _mm256_storeu_ps(y + l, _mm256_sub_ps(_mm256_mul_ps(d1, lo), m1));
        _mm256_storeu_ps(y + 32 + l, _mm256_sub_ps(_mm256_mul_ps(d2, hi), m2));
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
      const __m256 d1 = _mm256_set1_ps(d * sc[2 * c]), m1 = _mm256_set1_ps(dmin * mn[2 * c]);
      const __m256 d2 = _mm256_set1_ps(d * sc[2 * c + 1]), m2 = _mm256_set1_ps(dmin * mn[2 * c + 1]);
      for (int l = 0; l < 32; l += 8) {
        __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(q + l)));
        __m256i h = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(qh + l)));
        __m256i hl = _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, 2 * c), _mm256_set1_epi32(1)), 4);
        __m256i hh = _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, 2 * c + 1), _mm256_set1_epi32(1)), 4);
        __m256 lo = _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_and_si256(v, _mm256_set1_epi32(0xF)), hl));
        __m256 hi = _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_srli_epi32(v, 4), hh));
        _mm256_storeu_ps(y + l, _mm256_sub_ps(_mm256_mul_ps(d1, lo), m1));
        _mm256_storeu_ps(y + 32 + l, _mm256_sub_ps(_mm256_mul_ps(d2, hi), m2));
      }
      y += 64;
    }
  }
}

static void q6_K_to_float(const void *vx, float *y, int64_t n) {
  const eng__block_q6_K *x = vx;
  for (int64_t b = 0; b < n / ENG__QK_K; b++) {
    const float d = F16(x[b].d);
    for (int h = 0; h < 2; h++) {
      const uint8_t *ql = x[b].ql + 64 * h, *qh = x[b].qh + 32 * h;
      float *o = y + b * ENG__QK_K + 128 * h;
      for (int l = 0; l < 32; l += 8) {
        __m256i a = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(ql + l)));
        __m256i c = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(ql + l + 32)));
        __m256i hb = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(qh + l)));
        const __m256i m3 = _mm256_set1_epi32(3), mf = _mm256_set1_epi32(0xF), k32 = _mm256_set1_epi32(32);
        __m256i v[4] = {
            _mm256_or_si256(_mm256_and_si256(a, mf), _mm256_slli_epi32(_mm256_and_si256(hb, m3), 4)),
            _mm256_or_si256(_mm256_and_si256(c, mf), _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(hb, 2), m3), 4)),
            _mm256_or_si256(_mm256_srli_epi32(a, 4), _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(hb, 4), m3), 4)),
            _mm256_or_si256(_mm256_srli_epi32(c, 4), _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(hb, 6), m3), 4)),
        };
        for (int k = 0; k < 4; k++) {
          const int i = 128 * h + 32 * k + l;
          const __m256 ds = _mm256_set1_ps(d * x[b].scales[i / 16]);
          _mm256_storeu_ps(o + 32 * k + l, _mm256_mul_ps(ds, _mm256_cvtepi32_ps(_mm256_sub_epi32(v[k], k32))));
        }
      }
    }
  }
}

static void q8_K_to_float(const void *vx, float *y, int64_t n) {
  const eng__block_q8_K *x = vx;
  for (int64_t b = 0; b < n / ENG__QK_K; b++) {
    const __m256 d = _mm256_set1_ps(x[b].d);
    for (int j = 0; j < ENG__QK_K; j += 8) {
      __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(x[b].qs + j)));
      _mm256_storeu_ps(y + b * ENG__QK_K + j, _mm256_mul_ps(d, _mm256_cvtepi32_ps(q)));
    }
  }
}

/* ---- the other loops ------------------------------------------------------------------------ */

static void rmsnorm(const float *x, const float *w, float *y, int64_t n, float eps) {
  __m256d s0 = _mm256_setzero_pd(), s1 = s0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    __m256 sq = _mm256_mul_ps(v, v);
    s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(sq)));
    s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(sq, 1)));
  }
  double sum = hsum256_pd(_mm256_add_pd(s0, s1));
  for (; i < n; i++) sum += (double)(x[i] * x[i]);
  const float mean = (float)(sum / (double)n);
  const float scale = 1.0f / sqrtf(mean + eps);
  const __m256 vs = _mm256_set1_ps(scale);
  for (i = 0; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs), _mm256_loadu_ps(w + i)));
  for (; i < n; i++) y[i] = (x[i] * scale) * w[i];
}

static float vmax(const float *x, int64_t n) {
  __m256 m = _mm256_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  float r = _mm_cvtss_f32(h);
  for (; i < n; i++) r = x[i] > r ? x[i] : r;
  return r;
}

static float exp_sum(float *x, float m, int64_t n) {
  const __m256 vm = _mm256_set1_ps(m);
  __m256 s = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 e = exp256_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
    _mm256_storeu_ps(x + i, e);
    s = _mm256_add_ps(s, e);
  }
  float sum = hsum256_ps(s);
  for (; i < n; i++) {
    x[i] = expf(x[i] - m);
    sum += x[i];
  }
  return sum;
}

static void scale(float *y, float a, int64_t n) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), va));
  for (; i < n; i++) y[i] *= a;
}

static void softmax(float *x, int64_t n) {
  float sum = exp_sum(x, vmax(x, n), n);
  scale(x, 1.0f / sum, n);
}

static void silu_mul(float *g, const float *u, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f), sgn = _mm256_set1_ps(-0.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(g + i);
    __m256 e = exp256_ps(_mm256_xor_ps(v, sgn));
    _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_div_ps(v, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + i)));
  }
  for (; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static void rope(float *v, const float *cache, int hd) {
  const int half = hd / 2;
  int i = 0;
  for (; i + 8 <= half; i += 8) {
    /* cache holds (cos, sin) pairs: deinterleave 16 floats */
    __m256 p0 = _mm256_loadu_ps(cache + 2 * i), p1 = _mm256_loadu_ps(cache + 2 * i + 8);
    __m256 c = _mm256_shuffle_ps(p0, p1, 0x88), s = _mm256_shuffle_ps(p0, p1, 0xDD);
    c = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(c), 0xD8));
    s = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), 0xD8));
    __m256 x0 = _mm256_loadu_ps(v + i), x1 = _mm256_loadu_ps(v + i + half);
    _mm256_storeu_ps(v + i, _mm256_sub_ps(_mm256_mul_ps(x0, c), _mm256_mul_ps(x1, s)));
    _mm256_storeu_ps(v + i + half, _mm256_add_ps(_mm256_mul_ps(x0, s), _mm256_mul_ps(x1, c)));
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
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; i++) y[i] += a * x[i];
}

static void add(float *y, const float *x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
  for (; i < n; i++) y[i] += x[i];
}

/* Scores: 8 keys per vector, 4 heads at a time (the AVX-512 scheme at half width). */
static void attn_scores(const float *q, int G, int hd, const float *KT, size_t ldk, int nb, float scale, float *S) {
  const __m256 vs = _mm256_set1_ps(scale);
  for (int j0 = 0; j0 < nb; j0 += 16) {
    const int left = nb - j0;
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(left), lane);
    const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(left - 8), lane);
    for (int h0 = 0; h0 < G; h0 += 4) {
      const int hn = G - h0 < 4 ? G - h0 : 4;
      __m256 a[4][2];
      for (int h = 0; h < 4; h++) a[h][0] = a[h][1] = _mm256_setzero_ps();
      for (int d = 0; d < hd; d++) {
        const __m256 k0 = _mm256_maskload_ps(KT + (size_t)d * ldk + j0, m0);
        const __m256 k1 = _mm256_maskload_ps(KT + (size_t)d * ldk + j0 + 8, m1);
        for (int h = 0; h < hn; h++) {
          const __m256 qb = _mm256_set1_ps(q[(h0 + h) * hd + d]);
          a[h][0] = _mm256_fmadd_ps(qb, k0, a[h][0]);
          a[h][1] = _mm256_fmadd_ps(qb, k1, a[h][1]);
        }
      }
      for (int h = 0; h < hn; h++) {
        _mm256_storeu_ps(S + (h0 + h) * ENG__ATT_BLOCK + j0, _mm256_mul_ps(a[h][0], vs));
        _mm256_storeu_ps(S + (h0 + h) * ENG__ATT_BLOCK + j0 + 8, _mm256_mul_ps(a[h][1], vs));
      }
    }
  }
}

static void attn_accum(float *acc, int G, int hd, const float *P, int nb, const float *V, size_t ldv) {
  if (hd % 8) {
    eng__kernels_scalar.op.attn_accum(acc, G, hd, P, nb, V, ldv);
    return;
  }
  for (int h0 = 0; h0 < G; h0 += 8) {
    const int hn = G - h0 < 8 ? G - h0 : 8;
    for (int dc = 0; dc < hd; dc += 8) {
      __m256 a[8];
      for (int h = 0; h < hn; h++) a[h] = _mm256_loadu_ps(acc + (h0 + h) * hd + dc);
      for (int j = 0; j < nb; j++) {
        const __m256 v = _mm256_loadu_ps(V + (size_t)j * ldv + (size_t)dc);
        for (int h = 0; h < hn; h++) a[h] = _mm256_fmadd_ps(_mm256_set1_ps(P[(h0 + h) * ENG__ATT_BLOCK + j]), v, a[h]);
      }
      for (int h = 0; h < hn; h++) _mm256_storeu_ps(acc + (h0 + h) * hd + dc, a[h]);
    }
  }
}

/* ---- the table --------------------------------------------------------------------------------- */

#include <stdlib.h>
#include <string.h>

#include "engine/gemm_avx2.h"

#define MM(NAME, TYPE)                                                                                           \
  static void NAME(int64_t n, const void *w, size_t wrow, int64_t nrows, const void *a, size_t arow, int T,       \
                   float *y, size_t ystride) {                                                                   \
    eng__mul_mat_gemm(&table, TYPE, n, w, wrow, nrows, a, arow, T, y, ystride);                                                \
  }

MM(mm_f32, ENG__T_F32)
MM(mm_f16, ENG__T_F16)
MM(mm_bf16, ENG__T_BF16)
MM(mm_q8_0, ENG__T_Q8_0)
MM(mm_q4_0, ENG__T_Q4_0)
MM(mm_q4_K, ENG__T_Q4_K)
MM(mm_q5_K, ENG__T_Q5_K)
MM(mm_q6_K, ENG__T_Q6_K)

static eng__kernels table = {
    .name = "avx2",
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
    .mul_mat = {
        [ENG__T_F32] = mm_f32, [ENG__T_F16] = mm_f16, [ENG__T_BF16] = mm_bf16, [ENG__T_Q8_0] = mm_q8_0,
        [ENG__T_Q4_0] = mm_q4_0, [ENG__T_Q4_K] = mm_q4_K, [ENG__T_Q5_K] = mm_q5_K, [ENG__T_Q6_K] = mm_q6_K,
    },
    .op = {rmsnorm, softmax, silu_mul, rope, dot, axpy, scale, add, exp_sum, attn_scores, attn_accum},
};

/* Entries this table leaves NULL take the scalar ones (the file quantisers, F32 copies). */
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
  gemm2_install(&table);
}

const eng__kernels *eng__kernels_avx2(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, fill);
  return &table;
}

#else /* not x86-64: no table */
const eng__kernels *eng__kernels_avx2(void) { return NULL; }
#endif
