/* quant.c — the scalar kernels: dequantisation, quantisation and dot products for every
 * tensor type the engine computes with. This table is the specification the SIMD paths
 * are tested against (formats and the product scheme: see quant.h).
 *
 * The quantisers reproduce ggml's reference algorithms (quantize_row_*_ref) so that files
 * written by `qcoder mkmodel` hold what llama-quantize would write from the same floats.
 */
#include "engine/quant.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"
#include "engine/limits.h"

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* ---- F32 / F16 / BF16 ---------------------------------------------------------------- */

static void f32_to_float(const void *x, float *y, int64_t n) { memcpy(y, x, (size_t)n * sizeof *y); }
static void f32_from_float(const float *x, void *y, int64_t n) { memcpy(y, x, (size_t)n * sizeof *x); }

static void f32_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
  const float *x = vx, *y = vy;
  double sum = 0;
  for (int64_t i = 0; i < n; i++) sum += (double)(x[i] * y[i]);
  *s = (float)sum;
}

static void f16_to_float(const void *vx, float *y, int64_t n) {
  const uint16_t *x = vx;
  for (int64_t i = 0; i < n; i++) y[i] = eng__f16_to_f32(x[i]);
}

static void f16_from_float(const float *x, void *vy, int64_t n) {
  uint16_t *y = vy;
  for (int64_t i = 0; i < n; i++) y[i] = eng__f32_to_f16(x[i]);
}

static void f16_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
  const uint16_t *x = vx, *y = vy;
  double sum = 0;
  for (int64_t i = 0; i < n; i++) sum += (double)(eng__f16_to_f32(x[i]) * eng__f16_to_f32(y[i]));
  *s = (float)sum;
}

static void bf16_to_float(const void *vx, float *y, int64_t n) {
  const uint16_t *x = vx;
  for (int64_t i = 0; i < n; i++) y[i] = eng__bf16_to_f32(x[i]);
}

static void bf16_from_float(const float *x, void *vy, int64_t n) {
  uint16_t *y = vy;
  for (int64_t i = 0; i < n; i++) y[i] = eng__f32_to_bf16(x[i]);
}

static void bf16_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
  const uint16_t *x = vx, *y = vy;
  double sum = 0;
  for (int64_t i = 0; i < n; i++) sum += (double)(eng__bf16_to_f32(x[i]) * eng__bf16_to_f32(y[i]));
  *s = (float)sum;
}

/* ---- Q8_0 ------------------------------------------------------------------------------ */

static void q8_0_to_float(const void *vx, float *y, int64_t n) {
  const eng__block_q8_0 *x = vx;
  for (int64_t b = 0; b < n / ENG__QK8_0; b++) {
    const float d = eng__f16_to_f32(x[b].d);
    for (int j = 0; j < ENG__QK8_0; j++) y[b * ENG__QK8_0 + j] = x[b].qs[j] * d;
  }
}

/* Reference quantizer (model files): d = amax/127, q = round half away from zero (x/d). */
static void q8_0_quantize_ref(const float *x, void *vy, int64_t n) {
  eng__block_q8_0 *y = vy;
  for (int64_t b = 0; b < n / ENG__QK8_0; b++) {
    const float *xb = x + b * ENG__QK8_0;
    float amax = 0;
    for (int j = 0; j < ENG__QK8_0; j++) amax = MAX(amax, fabsf(xb[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = eng__f32_to_f16(d);
    for (int j = 0; j < ENG__QK8_0; j++) y[b].qs[j] = (int8_t)roundf(xb[j] * id);
  }
}

/* Activation quantizer as the x86 CPU backend computes it: id = 127/amax (not 1/d), and
 * round half to even. */
static void q8_0_from_float(const float *x, void *vy, int64_t n) {
  eng__block_q8_0 *y = vy;
  for (int64_t b = 0; b < n / ENG__QK8_0; b++) {
    const float *xb = x + b * ENG__QK8_0;
    float amax = 0;
    for (int j = 0; j < ENG__QK8_0; j++) amax = MAX(amax, fabsf(xb[j]));
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    y[b].d = eng__f32_to_f16(d);
    for (int j = 0; j < ENG__QK8_0; j++) y[b].qs[j] = (int8_t)nearbyintf(xb[j] * id);
  }
}

static void q8_0_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
  const eng__block_q8_0 *x = vx, *y = vy;
  float sum = 0;
  for (int64_t b = 0; b < n / ENG__QK8_0; b++) {
    int32_t sumi = 0;
    for (int j = 0; j < ENG__QK8_0; j++) sumi += x[b].qs[j] * y[b].qs[j];
    sum += (float)sumi * (eng__f16_to_f32(x[b].d) * eng__f16_to_f32(y[b].d));
  }
  *s = sum;
}

/* ---- Q4_0 ------------------------------------------------------------------------------ */

static void q4_0_to_float(const void *vx, float *y, int64_t n) {
  const eng__block_q4_0 *x = vx;
  for (int64_t b = 0; b < n / ENG__QK4_0; b++) {
    const float d = eng__f16_to_f32(x[b].d);
    for (int j = 0; j < 16; j++) {
      y[b * 32 + j] = ((x[b].qs[j] & 0x0F) - 8) * d;
      y[b * 32 + j + 16] = ((x[b].qs[j] >> 4) - 8) * d;
    }
  }
}

/* ggml reference: the value of largest magnitude maps to -8 exactly (d = max / -8). */
static void q4_0_quantize_ref(const float *x, void *vy, int64_t n) {
  eng__block_q4_0 *y = vy;
  for (int64_t b = 0; b < n / ENG__QK4_0; b++) {
    const float *xb = x + b * 32;
    float amax = 0, max = 0;
    for (int j = 0; j < 32; j++)
      if (amax < fabsf(xb[j])) {
        amax = fabsf(xb[j]);
        max = xb[j];
      }
    const float d = max / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = eng__f32_to_f16(d);
    for (int j = 0; j < 16; j++) {
      const uint8_t lo = (uint8_t)MIN(15, (int8_t)(xb[j] * id + 8.5f));
      const uint8_t hi = (uint8_t)MIN(15, (int8_t)(xb[j + 16] * id + 8.5f));
      y[b].qs[j] = (uint8_t)(lo | (hi << 4));
    }
  }
}

static void q4_0_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
  const eng__block_q4_0 *x = vx;
  const eng__block_q8_0 *y = vy;
  float sum = 0;
  for (int64_t b = 0; b < n / ENG__QK4_0; b++) {
    int32_t sumi = 0;
    for (int j = 0; j < 16; j++) {
      sumi += ((x[b].qs[j] & 0x0F) - 8) * y[b].qs[j];
      sumi += ((x[b].qs[j] >> 4) - 8) * y[b].qs[j + 16];
    }
    sum += (float)sumi * (eng__f16_to_f32(x[b].d) * eng__f16_to_f32(y[b].d));
  }
  *s = sum;
}

/* ---- Q8_K (activations for K-quants) ---------------------------------------------------- */

/* ggml reference (also what the x86 backend uses): scale from the signed value of largest
 * magnitude, iscale = -127/max, q = min(127, nearest_int(iscale·x)), sums of 16. */
static void q8_K_from_float(const float *x, void *vy, int64_t n) {
  eng__block_q8_K *y = vy;
  for (int64_t b = 0; b < n / ENG__QK_K; b++) {
    const float *xb = x + b * ENG__QK_K;
    float amax = 0, max = 0;
    for (int j = 0; j < ENG__QK_K; j++)
      if (fabsf(xb[j]) > amax) {
        amax = fabsf(xb[j]);
        max = xb[j];
      }
    if (amax == 0.0f) {
      memset(&y[b], 0, sizeof y[b]);
      continue;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < ENG__QK_K; j++) y[b].qs[j] = (int8_t)MIN(127, eng__nearest_int(iscale * xb[j]));
    for (int j = 0; j < ENG__QK_K / 16; j++) {
      int sum = 0;
      for (int k = 0; k < 16; k++) sum += y[b].qs[j * 16 + k];
      y[b].bsums[j] = (int16_t)sum;
    }
    y[b].d = 1 / iscale;
  }
}

static void q8_K_to_float(const void *vx, float *y, int64_t n) {
  const eng__block_q8_K *x = vx;
  for (int64_t b = 0; b < n / ENG__QK_K; b++)
    for (int j = 0; j < ENG__QK_K; j++) y[b * ENG__QK_K + j] = x[b].d * x[b].qs[j];
}

/* ---- K-quant helpers -------------------------------------------------------------------- */

/* The 6-bit scale and min of sub-block j (0..7) packed in 12 bytes. */
static inline void scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

/* ggml make_qkx2_quants: fit x ≈ scale·L + min (min ≤ 0) with L in 0..nmax, weighted
 * least squares over a small search of scales. Returns scale, *the_min = -min. */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
                           uint8_t *Laux, float rmin, float rdelta, int nstep) {
  float min = x[0], max = x[0];
  float sum_w = w[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; i++) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; i++) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; i++) {
    int l = eng__nearest_int(iscale * (x[i] - min));
    L[i] = (uint8_t)MAX(0, MIN(nmax, l));
    float diff = scale * L[i] + min - x[i];
    best_error += w[i] * diff * diff;
  }
  for (int is = 0; is <= nstep; is++) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; i++) {
      int l = eng__nearest_int(iscale * (x[i] - min));
      l = MAX(0, MIN(nmax, l));
      Laux[i] = (uint8_t)l;
      sum_l += w[i] * l;
      sum_l2 += w[i] * l * l;
      sum_xl += w[i] * l * x[i];
    }
    float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float err = 0;
      for (int i = 0; i < n; i++) {
        float diff = this_scale * Laux[i] + this_min - x[i];
        err += w[i] * diff * diff;
      }
      if (err < best_error) {
        memcpy(L, Laux, (size_t)n);
        best_error = err;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

/* ggml make_qx_quants with rmse_type 1 and no importance weights: symmetric L in
 * -nmax..nmax-1 (stored +nmax), weighted by x², search of 19 scales. */
static float fit_scale_sym(int n, int nmax, const float *x, int8_t *L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; i++) {
    float ax = fabsf(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < 1e-15f) {
    for (int i = 0; i < n; i++) L[i] = 0;
    return 0.f;
  }
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; i++) {
    int l = eng__nearest_int(iscale * x[i]);
    l = MAX(-nmax, MIN(nmax - 1, l));
    L[i] = (int8_t)(l + nmax);
    float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; is++) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; i++) {
      int l = eng__nearest_int(iscale * x[i]);
      l = MAX(-nmax, MIN(nmax - 1, l));
      float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; i++) {
        int l = eng__nearest_int(iscale * x[i]);
        L[i] = (int8_t)(nmax + MAX(-nmax, MIN(nmax - 1, l)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

/* Pack 8 six-bit scales and mins into the 12-byte K-quant layout. */
static void pack_scales_k4(uint8_t *s, const uint8_t *ls, const uint8_t *lm) {
  for (int j = 0; j < 8; j++) {
    if (j < 4) {
      s[j] = ls[j];
      s[j + 4] = lm[j];
    } else {
      s[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
      s[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
      s[j] |= (uint8_t)((lm[j] >> 4) << 6);
    }
  }
}

/* Sub-block scales/mins for Q4_K (nmax 15) and Q5_K (nmax 31) and the quantized levels. */
static void kquant_levels(const float *x, int nmax, float rmin, float rdelta, int nstep, uint8_t *scales12,
                          uint16_t *d_out, uint16_t *dmin_out, uint8_t *L) {
  float mins[8], scales[8], w[32];
  uint8_t Laux[32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; j++) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
    float av_x = sqrtf(sum_x2 / 32);
    for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(x[32 * j + l]);
    scales[j] = fit_scale_min(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], Laux, rmin, rdelta, nstep);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; j++) {
    ls[j] = (uint8_t)MIN(63, (uint8_t)eng__nearest_int(inv_scale * scales[j]));
    lm[j] = (uint8_t)MIN(63, (uint8_t)eng__nearest_int(inv_min * mins[j]));
  }
  memset(scales12, 0, 12);
  pack_scales_k4(scales12, ls, lm);
  *d_out = eng__f32_to_f16(max_scale / 63.f);
  *dmin_out = eng__f32_to_f16(max_min / 63.f);
  for (int j = 0; j < 8; j++) {
    uint8_t sc, m;
    scale_min_k4(j, scales12, &sc, &m);
    const float d = eng__f16_to_f32(*d_out) * sc;
    if (d == 0.0f) continue;
    const float dm = eng__f16_to_f32(*dmin_out) * m;
    for (int i = 0; i < 32; i++) {
      int l = eng__nearest_int((x[32 * j + i] + dm) / d);
      L[32 * j + i] = (uint8_t)MAX(0, MIN(nmax, l));
    }
  }
}

/* ---- Q4_K ------------------------------------------------------------------------------ */

static void q4_K_to_float(const void *vx, float *y, int64_t n) {
  const eng__block_q4_K *x = vx;
  for (int64_t b = 0; b < n / ENG__QK_K; b++) {
    const uint8_t *q = x[b].qs;
    const float d = eng__f16_to_f32(x[b].d), dmin = eng__f16_to_f32(x[b].dmin);
    for (int c = 0; c < 4; c++) {
      uint8_t sc, m;
      scale_min_k4(2 * c, x[b].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      scale_min_k4(2 * c + 1, x[b].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; l++) *y++ = d1 * (q[l] & 0xF) - m1;
      for (int l = 0; l < 32; l++) *y++ = d2 * (q[l] >> 4) - m2;
      q += 32;
    }
  }
}

static void q4_K_quantize_ref(const float *x, void *vy, int64_t n) {
  eng__block_q4_K *y = vy;
  uint8_t L[ENG__QK_K];
  for (int64_t b = 0; b < n / ENG__QK_K; b++, x += ENG__QK_K) {
    kquant_levels(x, 15, -1.f, 0.1f, 20, y[b].scales, &y[b].d, &y[b].dmin, L);
    uint8_t *q = y[b].qs;
    for (int j = 0; j < ENG__QK_K; j += 64, q += 32)
      for (int l = 0; l < 32; l++) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
  }
}

/* Σ_sub-blocks d·sc_j·Σ(q·a) − dmin·m_j·Σa, with Σa from the Q8_K block sums. */
static void q4_K_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
  const eng__block_q4_K *x = vx;
  const eng__block_q8_K *y = vy;
  float sum = 0;
  for (int64_t b = 0; b < n / ENG__QK_K; b++) {
    const uint8_t *q = x[b].qs;
    const int8_t *a = y[b].qs;
    int32_t sumi = 0, summ = 0;
    for (int c = 0; c < 4; c++) {
      uint8_t sc1, m1, sc2, m2;
      scale_min_k4(2 * c, x[b].scales, &sc1, &m1);
      scale_min_k4(2 * c + 1, x[b].scales, &sc2, &m2);
      int32_t s1 = 0, s2 = 0;
      for (int l = 0; l < 32; l++) {
        s1 += (q[l] & 0xF) * a[l];
        s2 += (q[l] >> 4) * a[l + 32];
      }
      sumi += sc1 * s1 + sc2 * s2;
      summ += m1 * (y[b].bsums[4 * c] + y[b].bsums[4 * c + 1]) + m2 * (y[b].bsums[4 * c + 2] + y[b].bsums[4 * c + 3]);
      q += 32;
      a += 64;
    }
    sum += eng__f16_to_f32(x[b].d) * y[b].d * (float)sumi - eng__f16_to_f32(x[b].dmin) * y[b].d * (float)summ;
  }
  *s = sum;
}

/* ---- Q5_K ------------------------------------------------------------------------------ */

static void q5_K_to_float(const void *vx, float *y, int64_t n) {
  const eng__block_q5_K *x = vx;
  for (int64_t b = 0; b < n / ENG__QK_K; b++) {
    const uint8_t *ql = x[b].qs, *qh = x[b].qh;
    const float d = eng__f16_to_f32(x[b].d), dmin = eng__f16_to_f32(x[b].dmin);
    uint8_t u1 = 1, u2 = 2;
    for (int c = 0; c < 4; c++) {
      uint8_t sc, m;
      scale_min_k4(2 * c, x[b].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      scale_min_k4(2 * c + 1, x[b].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; l++) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
      for (int l = 0; l < 32; l++) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
      ql += 32;
      u1 = (uint8_t)(u1 << 2);
      u2 = (uint8_t)(u2 << 2);
    }
  }
}

static void q5_K_quantize_ref(const float *x, void *vy, int64_t n) {
  eng__block_q5_K *y = vy;
  uint8_t L[ENG__QK_K];
  for (int64_t b = 0; b < n / ENG__QK_K; b++, x += ENG__QK_K) {
    kquant_levels(x, 31, -0.5f, 0.1f, 15, y[b].scales, &y[b].d, &y[b].dmin, L);
    uint8_t *qh = y[b].qh, *ql = y[b].qs;
    memset(qh, 0, 32);
    uint8_t m1 = 1, m2 = 2;
    for (int j = 0; j < ENG__QK_K; j += 64) {
      for (int l = 0; l < 32; l++) {
        int l1 = L[j + l], l2 = L[j + l + 32];
        if (l1 > 15) { l1 -= 16; qh[l] |= m1; }
        if (l2 > 15) { l2 -= 16; qh[l] |= m2; }
        ql[l] = (uint8_t)(l1 | (l2 << 4));
      }
      m1 = (uint8_t)(m1 << 2);
      m2 = (uint8_t)(m2 << 2);
      ql += 32;
    }
  }
}

static void q5_K_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
  const eng__block_q5_K *x = vx;
  const eng__block_q8_K *y = vy;
  float sum = 0;
  for (int64_t b = 0; b < n / ENG__QK_K; b++) {
    const uint8_t *ql = x[b].qs, *qh = x[b].qh;
    const int8_t *a = y[b].qs;
    int32_t sumi = 0, summ = 0;
    uint8_t u1 = 1, u2 = 2;
    for (int c = 0; c < 4; c++) {
      uint8_t sc1, m1, sc2, m2;
      scale_min_k4(2 * c, x[b].scales, &sc1, &m1);
      scale_min_k4(2 * c + 1, x[b].scales, &sc2, &m2);
      int32_t s1 = 0, s2 = 0;
      for (int l = 0; l < 32; l++) {
        s1 += ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) * a[l];
        s2 += ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) * a[l + 32];
      }
      sumi += sc1 * s1 + sc2 * s2;
      summ += m1 * (y[b].bsums[4 * c] + y[b].bsums[4 * c + 1]) + m2 * (y[b].bsums[4 * c + 2] + y[b].bsums[4 * c + 3]);
      ql += 32;
      a += 64;
      u1 = (uint8_t)(u1 << 2);
      u2 = (uint8_t)(u2 << 2);
    }
    sum += eng__f16_to_f32(x[b].d) * y[b].d * (float)sumi - eng__f16_to_f32(x[b].dmin) * y[b].d * (float)summ;
  }
  *s = sum;
}

/* ---- Q6_K ------------------------------------------------------------------------------ */

/* The 256 signed levels (-32..31) of a Q6_K block, in value order. Value i lives in half
 * h = i/128; within it, quarter q = (i%128)/32 and lane l = i%32 take their low nibble
 * from ql[64h + l (+32 for odd q)] (low nibble for q < 2, high for q >= 2) and their two
 * high bits from qh[32h + l] at bit 2q. */
static void q6_unpack(const eng__block_q6_K *x, int8_t *L) {
  for (int h = 0; h < 2; h++) {
    const uint8_t *ql = x->ql + 64 * h, *qh = x->qh + 32 * h;
    int8_t *o = L + 128 * h;
    for (int l = 0; l < 32; l++) {
      o[l] = (int8_t)(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
      o[l + 32] = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
      o[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
      o[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
    }
  }
}

/* Value i has scale index i/16 (16 values per scale, in value order). */
static void q6_K_to_float(const void *vx, float *y, int64_t n) {
  const eng__block_q6_K *x = vx;
  int8_t L[ENG__QK_K];
  for (int64_t b = 0; b < n / ENG__QK_K; b++) {
    const float d = eng__f16_to_f32(x[b].d);
    q6_unpack(&x[b], L);
    for (int i = 0; i < ENG__QK_K; i++) y[b * ENG__QK_K + i] = d * x[b].scales[i / 16] * L[i];
  }
}

static void q6_K_quantize_ref(const float *x, void *vy, int64_t n) {
  eng__block_q6_K *y = vy;
  int8_t L[ENG__QK_K];
  float scales[16];
  for (int64_t b = 0; b < n / ENG__QK_K; b++, x += ENG__QK_K) {
    float max_scale = 0, max_abs = 0;
    for (int ib = 0; ib < 16; ib++) {
      scales[ib] = fit_scale_sym(16, 32, x + 16 * ib, L + 16 * ib);
      if (fabsf(scales[ib]) > max_abs) {
        max_abs = fabsf(scales[ib]);
        max_scale = scales[ib];
      }
    }
    if (max_abs < 1e-15f) {
      memset(&y[b], 0, sizeof y[b]);
      continue;
    }
    float iscale = -128.f / max_scale;
    y[b].d = eng__f32_to_f16(1 / iscale);
    for (int ib = 0; ib < 16; ib++) y[b].scales[ib] = (int8_t)MIN(127, eng__nearest_int(iscale * scales[ib]));
    for (int j = 0; j < 16; j++) {
      float d = eng__f16_to_f32(y[b].d) * y[b].scales[j];
      if (d == 0.0f) continue;
      for (int i = 0; i < 16; i++) {
        int l = eng__nearest_int(x[16 * j + i] / d);
        L[16 * j + i] = (int8_t)(MAX(-32, MIN(31, l)) + 32);
      }
    }
    uint8_t *ql = y[b].ql, *qh = y[b].qh;
    for (int j = 0; j < ENG__QK_K; j += 128, ql += 64, qh += 32) {
      for (int l = 0; l < 32; l++) {
        const uint8_t q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF;
        const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
        ql[l] = (uint8_t)(q1 | (q3 << 4));
        ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
        qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                          ((L[j + l + 96] >> 4) << 6));
      }
    }
  }
}

static void q6_K_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
  const eng__block_q6_K *x = vx;
  const eng__block_q8_K *y = vy;
  int8_t L[ENG__QK_K];
  float sum = 0;
  for (int64_t b = 0; b < n / ENG__QK_K; b++) {
    q6_unpack(&x[b], L);
    int32_t sumi = 0;
    for (int g = 0; g < 16; g++) {
      int32_t sg = 0;
      for (int i = 16 * g; i < 16 * g + 16; i++) sg += L[i] * y[b].qs[i];
      sumi += x[b].scales[g] * sg;
    }
    sum += eng__f16_to_f32(x[b].d) * y[b].d * (float)sumi;
  }
  *s = sum;
}

/* ---- the other loops of the forward pass ------------------------------------------------- */

/* ggml_rms_norm (double sum of float squares) then multiply by the weight. */
static void rmsnorm_scalar(const float *x, const float *w, float *y, int64_t n, float eps) {
  double sum = 0;
  for (int64_t i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
  const float mean = (float)(sum / (double)n);
  const float scale = 1.0f / sqrtf(mean + eps);
  for (int64_t i = 0; i < n; i++) y[i] = (x[i] * scale) * w[i];
}

/* ggml_soft_max: max, exp, double sum, multiply by the inverse. */
static void softmax_scalar(float *x, int64_t n) {
  float max = -INFINITY;
  for (int64_t i = 0; i < n; i++)
    if (x[i] > max) max = x[i];
  double sum = 0;
  for (int64_t i = 0; i < n; i++) {
    x[i] = expf(x[i] - max);
    sum += (double)x[i];
  }
  const float inv = (float)(1.0 / sum);
  for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

static void silu_mul_scalar(float *g, const float *u, int64_t n) {
  for (int64_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* NEOX rotation: pairs (i, i + hd/2). */
static void rope_scalar(float *v, const float *cache, int hd) {
  const int half = hd / 2;
  for (int i = 0; i < half; i++) {
    const float c = cache[2 * i], sn = cache[2 * i + 1];
    const float x0 = v[i], x1 = v[i + half];
    v[i] = x0 * c - x1 * sn;
    v[i + half] = x0 * sn + x1 * c;
  }
}

static float dot_scalar(const float *a, const float *b, int64_t n) {
  double sum = 0;
  for (int64_t i = 0; i < n; i++) sum += (double)(a[i] * b[i]);
  return (float)sum;
}

static void axpy_scalar(float *y, float a, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

static void scale_scalar(float *y, float a, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] *= a;
}

static void add_scalar(float *y, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

static float exp_sum_scalar(float *x, float m, int64_t n) {
  double sum = 0;
  for (int64_t i = 0; i < n; i++) {
    x[i] = expf(x[i] - m);
    sum += (double)x[i];
  }
  return (float)sum;
}

static void attn_scores_scalar(const float *q, int G, int hd, const float *KT, size_t ldk, int nb, float scale, float *S) {
  for (int h = 0; h < G; h++)
    for (int j = 0; j < nb; j++) {
      double d = 0;
      for (int i = 0; i < hd; i++) d += (double)(q[h * hd + i] * KT[(size_t)i * ldk + (size_t)j]);
      S[h * ENG__ATT_BLOCK + j] = (float)d * scale;
    }
}

static void attn_accum_scalar(float *acc, int G, int hd, const float *P, int nb, const float *V, size_t ldv) {
  for (int h = 0; h < G; h++)
    for (int j = 0; j < nb; j++) {
      const float p = P[h * ENG__ATT_BLOCK + j];
      for (int i = 0; i < hd; i++) acc[h * hd + i] += p * V[(size_t)j * ldv + (size_t)i];
    }
}

/* Rows ahead whose bytes are requested before their dot product (decode streams weights
 * from DRAM; one thread's hardware prefetcher alone does not keep enough lines in flight). */
#define PREFETCH_ROWS 4

void eng__mul_mat_generic(const eng__type_traits *tt, int64_t n, const void *w, size_t wrow, int64_t nrows,
                          const void *a, size_t arow, int T, float *y, size_t ystride) {
  for (int64_t r = 0; r < nrows; r++) {
    if (r + PREFETCH_ROWS < nrows) {
      const char *nx = (const char *)w + (size_t)(r + PREFETCH_ROWS) * wrow;
      for (size_t off = 0; off < wrow; off += 64) __builtin_prefetch(nx + off, 0, 0);
    }
    for (int t = 0; t < T; t++)
      tt->vec_dot(n, &y[(size_t)t * ystride + (size_t)r], (const uint8_t *)w + (size_t)r * wrow,
                  (const uint8_t *)a + (size_t)t * arow);
  }
}

void eng__mul_mat_gemm(const eng__kernels *k, uint32_t type, int64_t n, const void *w, size_t wrow, int64_t nrows,
                       const void *a, size_t arow, int T, float *y, size_t ystride) {
  const eng__gemm *g = &k->gemm;
  if (g->run && T >= g->min_t && g->supports(type, n)) {
    void *panel = aligned_alloc(64, (g->act_bytes(n, T) + 63) / 64 * 64);
    void *ws = aligned_alloc(64, (g->ws_bytes(n) + 63) / 64 * 64);
    if (panel && ws) {
      g->act(type, n, a, arow, T, panel);
      g->run(type, n, w, wrow, nrows, panel, T, y, ystride, ws);
    } else {
      eng__mul_mat_generic(&k->t[type], n, w, wrow, nrows, a, arow, T, y, ystride);
    }
    free(panel);
    free(ws);
    return;
  }
  eng__mul_mat_generic(&k->t[type], n, w, wrow, nrows, a, arow, T, y, ystride);
}

#define MM_SCALAR(NAME, TYPE)                                                                                   \
  static void NAME(int64_t n, const void *w, size_t wrow, int64_t nrows, const void *a, size_t arow, int T,      \
                   float *y, size_t ystride) {                                                                  \
    eng__mul_mat_generic(&eng__kernels_scalar.t[TYPE], n, w, wrow, nrows, a, arow, T, y, ystride);              \
  }
MM_SCALAR(mm_f32, ENG__T_F32)
MM_SCALAR(mm_f16, ENG__T_F16)
MM_SCALAR(mm_bf16, ENG__T_BF16)
MM_SCALAR(mm_q8_0, ENG__T_Q8_0)
MM_SCALAR(mm_q4_0, ENG__T_Q4_0)
MM_SCALAR(mm_q4_K, ENG__T_Q4_K)
MM_SCALAR(mm_q5_K, ENG__T_Q5_K)
MM_SCALAR(mm_q6_K, ENG__T_Q6_K)

/* ---- the table ------------------------------------------------------------------------- */

const eng__kernels eng__kernels_scalar = {
    .name = "scalar",
    .t = {
        [ENG__T_F32] = {"F32", 1, 4, ENG__T_F32, f32_to_float, f32_from_float, f32_from_float, f32_vec_dot},
        [ENG__T_F16] = {"F16", 1, 2, ENG__T_F16, f16_to_float, f16_from_float, f16_from_float, f16_vec_dot},
        [ENG__T_BF16] = {"BF16", 1, 2, ENG__T_BF16, bf16_to_float, bf16_from_float, bf16_from_float, bf16_vec_dot},
        [ENG__T_Q8_0] = {"Q8_0", 32, 34, ENG__T_Q8_0, q8_0_to_float, q8_0_quantize_ref, q8_0_from_float, q8_0_vec_dot},
        [ENG__T_Q4_0] = {"Q4_0", 32, 18, ENG__T_Q8_0, q4_0_to_float, q4_0_quantize_ref, NULL, q4_0_vec_dot},
        [ENG__T_Q4_K] = {"Q4_K", 256, 144, ENG__T_Q8_K, q4_K_to_float, q4_K_quantize_ref, NULL, q4_K_vec_dot},
        [ENG__T_Q5_K] = {"Q5_K", 256, 176, ENG__T_Q8_K, q5_K_to_float, q5_K_quantize_ref, NULL, q5_K_vec_dot},
        [ENG__T_Q6_K] = {"Q6_K", 256, 210, ENG__T_Q8_K, q6_K_to_float, q6_K_quantize_ref, NULL, q6_K_vec_dot},
        [ENG__T_Q8_K] = {"Q8_K", 256, 292, ENG__T_Q8_K, q8_K_to_float, q8_K_from_float, q8_K_from_float, NULL},
    },
    .mul_mat = {
        [ENG__T_F32] = mm_f32, [ENG__T_F16] = mm_f16, [ENG__T_BF16] = mm_bf16, [ENG__T_Q8_0] = mm_q8_0,
        [ENG__T_Q4_0] = mm_q4_0, [ENG__T_Q4_K] = mm_q4_K, [ENG__T_Q5_K] = mm_q5_K, [ENG__T_Q6_K] = mm_q6_K,
    },
    .op = {rmsnorm_scalar, softmax_scalar, silu_mul_scalar, rope_scalar, dot_scalar, axpy_scalar, scale_scalar,
           add_scalar, exp_sum_scalar, attn_scores_scalar, attn_accum_scalar},
};

int eng__type_supported(uint32_t type) {
  return type < ENG__T_COUNT && type != ENG__T_Q8_K && eng__kernels_scalar.t[type].vec_dot != NULL;
}

/* ---- CPU features and table selection ---------------------------------------------------- */

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
static uint64_t xgetbv0(void) {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((uint64_t)hi << 32) | lo;
}
#endif

static eng__cpu_features cpu;
static const eng__kernels *tables[3];
static size_t n_tables;
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT, tables_once = PTHREAD_ONCE_INIT;

static void detect_cpu(void) {
#if defined(__x86_64__) || defined(__i386__)
  unsigned a, b, c, d;
  if (__get_cpuid(1, &a, &b, &c, &d)) {
    int osxsave = (c >> 27) & 1;
    uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    int avx_os = (xcr0 & 6) == 6, avx512_os = (xcr0 & 0xE6) == 0xE6;
    int avx = (c >> 28) & 1;
    cpu.fma = avx_os && ((c >> 12) & 1);
    cpu.f16c = avx_os && ((c >> 29) & 1);
    if (__get_cpuid_max(0, NULL) >= 7) {
      __cpuid_count(7, 0, a, b, c, d);
      cpu.avx2 = avx_os && avx && ((b >> 5) & 1);
      cpu.avx512f = avx512_os && ((b >> 16) & 1);
      cpu.avx512dq = avx512_os && ((b >> 17) & 1);
      cpu.avx512bw = avx512_os && ((b >> 30) & 1);
      cpu.avx512vl = avx512_os && ((b >> 31) & 1);
      cpu.avx512vnni = avx512_os && ((c >> 11) & 1);
      unsigned max_sub = a;
      if (max_sub >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        cpu.avx512bf16 = avx512_os && ((a >> 5) & 1);
      }
    }
  }
#endif
}

static void detect(void) {
  pthread_once(&cpu_once, detect_cpu);
  tables[n_tables++] = &eng__kernels_scalar;
  const eng__kernels *k;
  if (cpu.avx2 && cpu.fma && cpu.f16c && (k = eng__kernels_avx2())) tables[n_tables++] = k;
  if (cpu.avx512f && cpu.avx512bw && cpu.avx512dq && cpu.avx512vl && cpu.avx512vnni && cpu.fma && cpu.f16c &&
      (k = eng__kernels_avx512()))
    tables[n_tables++] = k;
}

const eng__cpu_features *eng__cpu(void) {
  pthread_once(&cpu_once, detect_cpu);
  return &cpu;
}

const eng__kernels *const *eng__kernels_all(size_t *n) {
  pthread_once(&tables_once, detect);
  *n = n_tables;
  return tables;
}

static void list_available(char *buf, size_t len) {
  size_t w = 0;
  buf[0] = 0;
  for (size_t i = 0; i < n_tables && w < len; i++) w += (size_t)snprintf(buf + w, len - w, "%s%s", i ? ", " : "", tables[i]->name);
}

int eng__kernels_get(const char *name, const eng__kernels **out, eng_error *err) {
  pthread_once(&tables_once, detect);
  if (!name || !*name) name = getenv("QCODER_KERNELS");
  if (!name || !*name || strcmp(name, "best") == 0) {
    *out = tables[n_tables - 1];
    return ENG_OK;
  }
  for (size_t i = 0; i < n_tables; i++)
    if (strcmp(tables[i]->name, name) == 0) {
      *out = tables[i];
      return ENG_OK;
    }
  char avail[64];
  list_available(avail, sizeof avail);
  if (strcmp(name, "avx2") == 0 || strcmp(name, "avx512") == 0)
    return eng__err(err, ENG_EUNSUPPORTED, "kernel path '%s' is not available on this CPU (available: %s)", name, avail);
  return eng__err(err, ENG_EARG, "unknown kernel path '%s' (known: scalar, avx2, avx512; available: %s)", name, avail);
}
