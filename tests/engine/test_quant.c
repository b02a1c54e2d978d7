/* test_quant.c — the scalar kernel table: half-precision conversions, dequantisation of
 * hand-built blocks against hand-computed values, quantise → dequantise error bounds per
 * type, dot products against dequantised references, and kernel selection. */
#include "tests/test.h"

#include "engine/internal.h"
#include "engine/limits.h"
#include "engine/quant.h"

static const eng__kernels *K = &eng__kernels_scalar;

static void randn(float *x, int n, unsigned seed, float scale) {
  unsigned s = seed * 2654435761u + 1;
  for (int i = 0; i < n; i++) {
    float acc = 0;
    for (int k = 0; k < 4; k++) {
      s = s * 1664525u + 1013904223u;
      acc += (float)(s >> 8) / 16777216.0f - 0.5f;
    }
    x[i] = acc * scale * 1.7f;
  }
}

TEST(half_conversions) {
  ASSERT_EQ_INT(eng__f32_to_f16(1.0f), 0x3C00);
  ASSERT_EQ_INT(eng__f32_to_f16(-2.0f), 0xC000);
  ASSERT_EQ_INT(eng__f32_to_f16(65504.0f), 0x7BFF);
  ASSERT_EQ_INT(eng__f32_to_f16(1e6f), 0x7C00);        /* overflow → inf */
  ASSERT_EQ_INT(eng__f32_to_f16(5.9604645e-8f), 0x0001); /* smallest subnormal */
  /* 1 + 2^-11 is exactly between two halves: ties to even (1.0) */
  ASSERT_EQ_INT(eng__f32_to_f16(1.0f + 0x1.0p-11f), 0x3C00);
  ASSERT_EQ_INT(eng__f32_to_f16(1.0f + 3 * 0x1.0p-11f), 0x3C02);
  for (uint32_t h = 0; h < 65536; h++) {
    if ((h & 0x7C00) == 0x7C00 && (h & 0x3FF)) continue; /* NaN */
    ASSERT_EQ_INT(eng__f32_to_f16(eng__f16_to_f32((uint16_t)h)), h);
  }
  ASSERT(eng__f16_to_f32(0x3555) > 0.3332f && eng__f16_to_f32(0x3555) < 0.3334f);
  ASSERT_EQ_INT(eng__f32_to_bf16(1.0f), 0x3F80);
  ASSERT_EQ_INT(eng__f32_to_bf16(eng__bits_f32(0x3F808000u)), 0x3F80); /* tie → even */
  ASSERT_EQ_INT(eng__f32_to_bf16(eng__bits_f32(0x3F818000u)), 0x3F82); /* tie → even (up) */
  ASSERT_EQ_INT(eng__f32_to_bf16(eng__bits_f32(0x3F808001u)), 0x3F81);
  ASSERT(isnan(eng__bf16_to_f32(eng__f32_to_bf16(NAN))));
  ASSERT_EQ_INT(eng__nearest_int(2.5f), 2);
  ASSERT_EQ_INT(eng__nearest_int(3.5f), 4);
  ASSERT_EQ_INT(eng__nearest_int(-2.5f), -2);
}

TEST(dequant_q8_0_and_q4_0_hand_blocks) {
  eng__block_q8_0 b8 = {0};
  b8.d = eng__f32_to_f16(0.5f);
  for (int j = 0; j < 32; j++) b8.qs[j] = (int8_t)(j - 16);
  float y[32];
  K->t[ENG__T_Q8_0].to_float(&b8, y, 32);
  for (int j = 0; j < 32; j++) ASSERT_NEAR(y[j], 0.5 * (j - 16), 0);
  eng__block_q4_0 b4 = {0};
  b4.d = eng__f32_to_f16(0.25f);
  for (int j = 0; j < 16; j++) b4.qs[j] = (uint8_t)(j | ((15 - j) << 4));
  K->t[ENG__T_Q4_0].to_float(&b4, y, 32);
  for (int j = 0; j < 16; j++) {
    ASSERT_NEAR(y[j], 0.25 * (j - 8), 0);
    ASSERT_NEAR(y[j + 16], 0.25 * (15 - j - 8), 0);
  }
}

TEST(dequant_q4_K_hand_block) {
  eng__block_q4_K b;
  memset(&b, 0, sizeof b);
  b.d = eng__f32_to_f16(2.0f);
  b.dmin = eng__f32_to_f16(0.5f);
  /* scales: sub-block j has scale j+1 and min 2j (6-bit packing: j<4 plain, j>=4 split) */
  uint8_t sc[8], mn[8];
  for (int j = 0; j < 8; j++) sc[j] = (uint8_t)(j + 1 + (j >= 4 ? 40 : 0)), mn[j] = (uint8_t)(2 * j + (j >= 6 ? 30 : 0));
  for (int j = 0; j < 4; j++) {
    b.scales[j] = (uint8_t)(sc[j] | ((sc[j + 4] >> 4) << 6));
    b.scales[j + 4] = (uint8_t)(mn[j] | ((mn[j + 4] >> 4) << 6));
    b.scales[j + 8] = (uint8_t)((sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4));
  }
  for (int l = 0; l < 128; l++) b.qs[l] = (uint8_t)((l % 16) | ((15 - l % 16) << 4));
  float y[256];
  K->t[ENG__T_Q4_K].to_float(&b, y, 256);
  for (int i = 0; i < 256; i++) {
    int chunk = i / 64, r = i % 64, sub = 2 * chunk + (r >= 32), l = r % 32;
    uint8_t byte = b.qs[32 * chunk + l];
    int q = r < 32 ? (byte & 0xF) : (byte >> 4);
    double want = 2.0 * sc[sub] * q - 0.5 * mn[sub];
    ASSERT_MSG(fabs(y[i] - want) < 1e-6, "value %d: %g vs %g", i, y[i], want);
  }
}

TEST(dequant_q5_K_hand_block) {
  eng__block_q5_K b;
  memset(&b, 0, sizeof b);
  b.d = eng__f32_to_f16(1.0f);
  b.dmin = eng__f32_to_f16(0.0f);
  for (int j = 0; j < 4; j++) b.scales[j] = 1;  /* sub-blocks 0..3 scale 1, 4..7 scale 0 */
  for (int j = 8; j < 12; j++) b.scales[j] = 1; /* sub-blocks 4..7: low nibble of scale = 1 */
  for (int l = 0; l < 128; l++) b.qs[l] = 0x53;   /* low 3, high 5 */
  for (int l = 0; l < 32; l++) b.qh[l] = 0x01 | 0x08; /* fifth bit: sub-block 0 (u1 chunk 0), 3 (u2 chunk 1) */
  float y[256];
  K->t[ENG__T_Q5_K].to_float(&b, y, 256);
  ASSERT_NEAR(y[0], 3 + 16, 0);      /* chunk 0 low nibble, bit 0 set */
  ASSERT_NEAR(y[32], 5, 0);          /* chunk 0 high nibble, bit 1 clear */
  ASSERT_NEAR(y[64], 3, 0);          /* chunk 1 low nibble, bit 2 clear */
  ASSERT_NEAR(y[96], 5 + 16, 0);     /* chunk 1 high nibble, bit 3 set */
  ASSERT_NEAR(y[128], 3, 0);         /* sub-block 4: scale 1 */
}

TEST(dequant_q6_K_hand_block) {
  eng__block_q6_K b;
  memset(&b, 0, sizeof b);
  b.d = eng__f32_to_f16(0.5f);
  for (int j = 0; j < 16; j++) b.scales[j] = (int8_t)(j - 8);
  /* level of value i = (i * 7) % 64; pack ql/qh by the documented layout */
  for (int i = 0; i < 256; i++) {
    int L = (i * 7) % 64, half = i / 128, r = i % 128, quarter = r / 32, l = r % 32;
    uint8_t *ql = b.ql + 64 * half, *qh = b.qh + 32 * half;
    int idx = (quarter & 1) ? l + 32 : l;
    if (quarter < 2) ql[idx] = (uint8_t)((ql[idx] & 0xF0) | (L & 0xF));
    else ql[idx] = (uint8_t)((ql[idx] & 0x0F) | ((L & 0xF) << 4));
    qh[l] = (uint8_t)(qh[l] | ((L >> 4) << (2 * quarter)));
  }
  float y[256];
  K->t[ENG__T_Q6_K].to_float(&b, y, 256);
  for (int i = 0; i < 256; i++) {
    double want = 0.5 * (i / 16 - 8) * ((i * 7) % 64 - 32);
    ASSERT_MSG(fabs(y[i] - want) < 1e-6, "value %d: %g vs %g", i, y[i], want);
  }
}

TEST(dequant_f16_bf16) {
  uint16_t h[3] = {0x3C00, 0xC000, 0x3800};
  float y[3];
  K->t[ENG__T_F16].to_float(h, y, 3);
  ASSERT(y[0] == 1.0f && y[1] == -2.0f && y[2] == 0.5f);
  uint16_t b[2] = {0x3F80, 0xC040};
  K->t[ENG__T_BF16].to_float(b, y, 2);
  ASSERT(y[0] == 1.0f && y[1] == -3.0f);
}

/* quantise → dequantise: relative RMS error bounded per type (random normal rows). */
TEST(round_trip_error_bounds) {
  static const struct { uint32_t t; double rms_bound; } cases[] = {
      {ENG__T_F32, 0}, {ENG__T_F16, 1e-3}, {ENG__T_BF16, 5e-3}, {ENG__T_Q8_0, 0.01},
      {ENG__T_Q6_K, 0.02}, {ENG__T_Q5_K, 0.04}, {ENG__T_Q4_K, 0.08}, {ENG__T_Q4_0, 0.12},
  };
  enum { N = 4096 };
  static float x[N], y[N];
  static uint8_t q[N * 4];
  randn(x, N, 7, 1.0f);
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    const eng__type_traits *tt = &K->t[cases[c].t];
    tt->quantize_row(x, q, N);
    tt->to_float(q, y, N);
    double e2 = 0, x2 = 0;
    for (int i = 0; i < N; i++) e2 += (x[i] - y[i]) * (x[i] - y[i]), x2 += x[i] * x[i];
    double rel = sqrt(e2 / x2);
    ASSERT_MSG(rel <= cases[c].rms_bound, "%s: relative RMS error %.5f > %.5f", tt->name, rel, cases[c].rms_bound);
    /* all-zero rows stay zero */
    static float z[512];
    tt->quantize_row(z, q, 512);
    tt->to_float(q, y, 512);
    for (int i = 0; i < 512; i++) ASSERT(y[i] == 0.0f);
  }
  /* Q8_0's per-element error is at most half a step (amax/127/2) plus the fp16 scale */
  const eng__type_traits *t8 = &K->t[ENG__T_Q8_0];
  t8->quantize_row(x, q, N);
  t8->to_float(q, y, N);
  for (int b = 0; b < N / 32; b++) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b * 32 + j]));
    for (int j = 0; j < 32; j++) ASSERT(fabsf(x[b * 32 + j] - y[b * 32 + j]) <= amax / 127 * (0.5f + 127 * 0x1.0p-11f) + 1e-6f);
  }
}

/* vec_dot(weights, activation in vec_dot_type) equals the dot of the dequantised rows */
TEST(vec_dot_matches_dequantized_dot) {
  enum { N = 1024 };
  static float w[N], a[N], wd[N], ad[N];
  static uint8_t qw[N * 4], qa[N * 4];
  randn(w, N, 3, 1.0f);
  randn(a, N, 5, 2.0f);
  static const uint32_t types[] = {ENG__T_F32, ENG__T_F16, ENG__T_BF16, ENG__T_Q8_0,
                                   ENG__T_Q4_0, ENG__T_Q4_K, ENG__T_Q5_K, ENG__T_Q6_K};
  for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
    const eng__type_traits *tt = &K->t[types[i]], *vt = &K->t[tt->vec_dot_type];
    tt->quantize_row(w, qw, N);
    tt->to_float(qw, wd, N);
    vt->from_float(a, qa, N);
    vt->to_float(qa, ad, N);
    double ref = 0;
    for (int j = 0; j < N; j++) ref += (double)wd[j] * ad[j];
    float got;
    tt->vec_dot(N, &got, qw, qa);
    ASSERT_MSG(fabs(got - ref) <= 1e-4 * (1 + fabs(ref)), "%s: vec_dot %.7g, dequantised dot %.7g", tt->name, got, ref);
  }
}

TEST(activation_quantizers_round_like_the_cpu_backend) {
  /* Q8_0: 127/amax and ties to even: x = 0.5·step must round to 0, 1.5·step to 2 */
  float x[32] = {0};
  x[0] = 127.0f;  /* amax 127 → step 1 */
  x[1] = 0.5f;
  x[2] = 1.5f;
  x[3] = -2.5f;
  eng__block_q8_0 b;
  K->t[ENG__T_Q8_0].from_float(x, &b, 32);
  ASSERT_EQ_INT(b.qs[0], 127);
  ASSERT_EQ_INT(b.qs[1], 0);
  ASSERT_EQ_INT(b.qs[2], 2);
  ASSERT_EQ_INT(b.qs[3], -2);
  /* the reference (file) quantizer rounds half away from zero */
  K->t[ENG__T_Q8_0].quantize_row(x, &b, 32);
  ASSERT_EQ_INT(b.qs[1], 1);
  ASSERT_EQ_INT(b.qs[3], -3);
  /* Q8_K: scale from the signed extreme, block sums */
  float xk[256];
  for (int i = 0; i < 256; i++) xk[i] = (float)(i % 7) - 3.0f;
  xk[10] = -6.35f;
  eng__block_q8_K k;
  K->t[ENG__T_Q8_K].from_float(xk, &k, 256);
  ASSERT_EQ_INT(k.qs[10], -127);
  int s0 = 0;
  for (int i = 0; i < 16; i++) s0 += k.qs[i];
  ASSERT_EQ_INT(k.bsums[0], s0);
  ASSERT_NEAR(k.d * k.qs[10], -6.35, 1e-5);
}

/* Every kernel table (SIMD paths when built and usable on this CPU) computes what the
 * scalar table computes: dequantisation, activation conversion and the file quantisers
 * bit-identical, dot products within float rounding of the scalar result. Several row
 * lengths (tails shorter than a vector), several random inputs, and special rows (all
 * zero, ties of magnitude with opposite signs). */
TEST(kernel_tables_agree_with_scalar) {
  size_t nt;
  const eng__kernels *const *all = eng__kernels_all(&nt);
  ASSERT(nt >= 1 && all[0] == &eng__kernels_scalar);
  enum { N = 4096 };
  static float w[N], a[N], y0[N], y1[N];
  static uint8_t qw[N * 4], qa0[N * 4], qa1[N * 4];
  static const int lens[] = {256, 512, 768, 2048, 4096};
  for (size_t k = 1; k < nt; k++) {
    const eng__kernels *kt = all[k];
    for (int rep = 0; rep < 4; rep++) {
      randn(w, N, 21 + (unsigned)rep, rep == 3 ? 1e-3f : 1.0f);
      randn(a, N, 22 + (unsigned)rep, 3.0f);
      if (rep == 1) {
        memset(a + 256, 0, 256 * sizeof(float)); /* an all-zero block */
        a[0] = 5.0f;                             /* opposite-sign tie: the first one sets the scale */
        a[7] = -5.0f;
        a[300 + 512] = -7.0f;
        a[301 + 512] = 7.0f;
      }
      for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
        const int n = lens[li];
        for (uint32_t type = 0; type < ENG__T_COUNT; type++) {
          const eng__type_traits *s = &K->t[type], *f = &kt->t[type];
          if (!s->name) continue;
          ASSERT_MSG(f->name && f->vec_dot_type == s->vec_dot_type, "%s: %s entry missing or different", kt->name, s->name);
          const size_t rb = eng__ggml_row_size(type, (uint64_t)n);
          s->quantize_row(w, qw, n);
          f->quantize_row(w, qa1, n);
          ASSERT_MSG(memcmp(qw, qa1, rb) == 0, "%s: %s quantize_row differs (n %d)", kt->name, s->name, n);
          s->to_float(qw, y0, n);
          f->to_float(qw, y1, n);
          ASSERT_MSG(memcmp(y0, y1, (size_t)n * sizeof(float)) == 0, "%s: %s to_float differs (n %d)", kt->name, s->name, n);
          if (s->from_float) {
            s->from_float(a, qa0, n);
            f->from_float(a, qa1, n);
            ASSERT_MSG(memcmp(qa0, qa1, rb) == 0, "%s: %s from_float differs (n %d, rep %d)", kt->name, s->name, n, rep);
          }
          if (s->vec_dot) {
            const eng__type_traits *v = &K->t[s->vec_dot_type];
            v->from_float(a, qa0, n);
            float r0, r1;
            s->vec_dot(n, &r0, qw, qa0);
            f->vec_dot(n, &r1, qw, qa0);
            /* bound relative to the sum of |terms| (cancellation makes |r0| itself small) */
            v->to_float(qa0, y1, n);
            double mag = 0;
            for (int i = 0; i < n; i++) mag += fabs((double)y0[i] * y1[i]);
            ASSERT_MSG(fabsf(r0 - r1) <= 2e-6 * mag + 1e-30, "%s: %s vec_dot %.9g vs scalar %.9g (n %d)", kt->name, s->name,
                       r1, r0, n);
          }
        }
      }
    }
  }
}

/* mul_mat (the tile product prefill uses) equals vec_dot row by row, for every table, every
 * type, and numbers of activation rows that hit the unrolled and the remainder paths. */
TEST(mul_mat_agrees_with_vec_dot) {
  size_t nt;
  const eng__kernels *const *all = eng__kernels_all(&nt);
  enum { N = 1024, R = 37, TMAX = 21 };
  static float w[R * N], a[TMAX * N], y[TMAX * R];
  static uint8_t qw[R * N * 4], qa[TMAX * N * 4];
  randn(w, R * N, 31, 1.0f);
  randn(a, TMAX * N, 32, 2.0f);
  static const int Ts[] = {1, 3, 4, 8, 16, 21};
  for (size_t k = 0; k < nt; k++) {
    const eng__kernels *kt = all[k];
    for (uint32_t type = 0; type < ENG__T_COUNT; type++) {
      const eng__type_traits *tt = &kt->t[type];
      if (!tt->name || !tt->vec_dot) continue;
      const eng__type_traits *vt = &kt->t[tt->vec_dot_type];
      const size_t wrow = eng__ggml_row_size(type, N), arow = eng__ggml_row_size(tt->vec_dot_type, N);
      for (int r = 0; r < R; r++) tt->quantize_row(w + r * N, qw + r * wrow, N);
      for (int t = 0; t < TMAX; t++) vt->from_float(a + t * N, qa + t * arow, N);
      for (size_t ti = 0; ti < sizeof Ts / sizeof *Ts; ti++) {
        const int T = Ts[ti];
        for (int i = 0; i < T * R; i++) y[i] = NAN;
        kt->mul_mat[type](N, qw, wrow, R, qa, arow, T, y, R);
        for (int t = 0; t < T; t++)
          for (int r = 0; r < R; r++) {
            float ref;
            K->t[type].vec_dot(N, &ref, qw + r * wrow, qa + t * arow);
            ASSERT_MSG(fabsf(y[t * R + r] - ref) <= 1e-4f * (1 + fabsf(ref)), "%s %s T=%d: y[%d][%d] %.7g vs %.7g", kt->name,
                       tt->name, T, t, r, y[t * R + r], ref);
          }
      }
    }
  }
}

static double rel_err(const float *a, const float *b, int n) {
  double e = 0, m = 0;
  for (int i = 0; i < n; i++) {
    e = fmax(e, fabs((double)a[i] - b[i]));
    m = fmax(m, fabs((double)b[i]));
  }
  return e / (m > 0 ? m : 1);
}

/* The other loops of the forward pass: each table's version within float rounding of the
 * scalar one, at lengths with and without vector tails. */
TEST(ops_agree_with_scalar) {
  size_t nt;
  const eng__kernels *const *all = eng__kernels_all(&nt);
  const eng__ops *so = &K->op;
  enum { N = 2048 + 13 };
  static float x[N], w[N], u[N], r0[N], r1[N];
  static const int lens[] = {1, 7, 16, 128, 768, 2048, N};
  randn(x, N, 41, 2.0f);
  randn(w, N, 42, 1.0f);
  randn(u, N, 43, 1.0f);
  for (size_t k = 1; k < nt; k++) {
    const eng__ops *fo = &all[k]->op;
    const char *nm = all[k]->name;
    for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
      const int n = lens[li];
      so->rmsnorm(x, w, r0, n, 1e-6f);
      fo->rmsnorm(x, w, r1, n, 1e-6f);
      ASSERT_MSG(rel_err(r1, r0, n) < 1e-6, "%s rmsnorm n=%d", nm, n);
      memcpy(r0, x, sizeof x);
      memcpy(r1, x, sizeof x);
      r0[0] = r1[0] = 30.0f; /* a dominant score */
      so->softmax(r0, n);
      fo->softmax(r1, n);
      ASSERT_MSG(rel_err(r1, r0, n) < 1e-5, "%s softmax n=%d", nm, n);
      memcpy(r0, x, sizeof x);
      memcpy(r1, x, sizeof x);
      r0[n - 1] = r1[n - 1] = -100.0f; /* exp underflow inside silu */
      so->silu_mul(r0, u, n);
      fo->silu_mul(r1, u, n);
      ASSERT_MSG(rel_err(r1, r0, n) < 1e-5, "%s silu_mul n=%d", nm, n);
      ASSERT_MSG(fabs(fo->dot(x, w, n) - so->dot(x, w, n)) < 1e-5 * (1 + n), "%s dot n=%d", nm, n);
      memcpy(r0, u, sizeof u);
      memcpy(r1, u, sizeof u);
      so->axpy(r0, 0.37f, x, n);
      fo->axpy(r1, 0.37f, x, n);
      ASSERT_MSG(rel_err(r1, r0, n) < 1e-6, "%s axpy n=%d", nm, n);
      so->scale(r0, 1.7f, n);
      fo->scale(r1, 1.7f, n);
      so->add(r0, w, n);
      fo->add(r1, w, n);
      ASSERT_MSG(rel_err(r1, r0, n) < 1e-6, "%s scale/add n=%d", nm, n);
      memcpy(r0, x, sizeof x);
      memcpy(r1, x, sizeof x);
      float s0 = so->exp_sum(r0, 3.0f, n), s1 = fo->exp_sum(r1, 3.0f, n);
      ASSERT_MSG(rel_err(r1, r0, n) < 1e-5 && fabsf(s0 - s1) <= 1e-5f * s0, "%s exp_sum n=%d", nm, n);
    }
    /* attention blocks: G query heads against nb ≤ ENG__ATT_BLOCK transposed keys, then
     * the weighted sum of values; head sizes 16/64/128, full and partial blocks */
    for (int hd = 16; hd <= 128; hd *= 2) {
      if (hd == 32) continue;
      for (int G = 1; G <= 12; G += 11) {
        for (int nb = 1; nb <= 32; nb += 15) {
          static float KT[128 * 256], V[32 * 1024], S0[12 * 32], S1[12 * 32], A0[12 * 128], A1[12 * 128];
          randn(KT, 128 * 256, 51, 1.0f);
          randn(V, 32 * 1024, 52, 1.0f);
          so->attn_scores(x, G, hd, KT, 256, nb, 0.125f, S0);
          fo->attn_scores(x, G, hd, KT, 256, nb, 0.125f, S1);
          for (int h = 0; h < G; h++)
            for (int j = 0; j < nb; j++)
              ASSERT_MSG(fabsf(S0[h * 32 + j] - S1[h * 32 + j]) < 1e-5f * (1 + fabsf(S0[h * 32 + j])),
                         "%s attn_scores hd=%d G=%d nb=%d [%d][%d]: %g vs %g", nm, hd, G, nb, h, j, S1[h * 32 + j], S0[h * 32 + j]);
          memcpy(A0, u, sizeof A0);
          memcpy(A1, u, sizeof A1);
          so->attn_accum(A0, G, hd, S0, nb, V, 1024);
          fo->attn_accum(A1, G, hd, S0, nb, V, 1024);
          ASSERT_MSG(rel_err(A1, A0, G * hd) < 1e-5, "%s attn_accum hd=%d G=%d nb=%d", nm, hd, G, nb);
        }
      }
    }
    /* RoPE on head sizes 64 and 128, cache of (cos, sin) pairs */
    for (int hd = 64; hd <= 128; hd *= 2) {
      float cache[128];
      for (int i = 0; i < hd / 2; i++) {
        cache[2 * i] = cosf(0.1f * (float)i + 0.3f);
        cache[2 * i + 1] = sinf(0.1f * (float)i + 0.3f);
      }
      memcpy(r0, x, (size_t)hd * sizeof(float));
      memcpy(r1, x, (size_t)hd * sizeof(float));
      so->rope(r0, cache, hd);
      fo->rope(r1, cache, hd);
      ASSERT_MSG(rel_err(r1, r0, hd) < 1e-6, "%s rope hd=%d", nm, hd);
    }
  }
}

TEST(kernel_selection) {
  const eng__kernels *k;
  eng_error err = {0};
  ASSERT_EQ_INT(eng__kernels_get("scalar", &k, &err), 0);
  ASSERT_STR_EQ(k->name, "scalar");
  ASSERT_EQ_INT(eng__kernels_get("avx9", &k, &err), ENG_EARG);
  ASSERT_CONTAINS(err.msg, "unknown kernel path 'avx9'");
  const eng__cpu_features *c = eng__cpu();
  int have512 = c->avx512f && c->avx512bw && c->avx512vl && c->avx512dq && c->avx512vnni;
  int have2 = c->avx2 && c->fma && c->f16c;
  ASSERT_EQ_INT(eng__kernels_get("avx512", &k, &err), have512 ? 0 : ENG_EUNSUPPORTED);
  if (!have512) ASSERT_CONTAINS(err.msg, "available: scalar");
  ASSERT_EQ_INT(eng__kernels_get("avx2", &k, &err), have2 ? 0 : ENG_EUNSUPPORTED);
  /* the default is the best: the last table */
  size_t nt;
  const eng__kernels *const *all = eng__kernels_all(&nt);
  ASSERT_EQ_INT(eng__kernels_get(NULL, &k, &err), 0);
  ASSERT(k == all[nt - 1]);
  ASSERT_EQ_INT(nt, 1 + have2 + have512);
  setenv("QCODER_KERNELS", "bogus", 1);
  ASSERT_EQ_INT(eng__kernels_get(NULL, &k, &err), ENG_EARG);
  setenv("QCODER_KERNELS", "scalar", 1);
  ASSERT_EQ_INT(eng__kernels_get(NULL, &k, &err), 0);
  ASSERT_STR_EQ(k->name, "scalar");
  unsetenv("QCODER_KERNELS");
  /* the supported set */
  ASSERT(eng__type_supported(ENG__T_Q4_K) && eng__type_supported(ENG__T_BF16));
  ASSERT(!eng__type_supported(ENG__T_Q4_1) && !eng__type_supported(ENG__T_Q8_K) && !eng__type_supported(16));
}

QC_TEST_MAIN
