/* gemm_avx2.h — the int8 matrix-matrix product for prefill on AVX2 machines (no VNNI);
 * part of quant_avx2.c (included once, compiled with its flags).
 *
 * The idea is the AVX-512 GEMM's (gemm_avx512.h): unpack a panel of weight rows once into
 * 8-bit values with one float scale and offset per group of 16 values, convert the
 * activations once, then run every token against the panel, so unpacking is paid per row
 * and not per (row, token). Without vpdpbusd the integer dot of a group is vpmaddubsw
 * (u8 × s8 pairs → i16) and vpmaddwd (pairs of i16 → i32):
 *
 *     value = sw[g] · q − ow[g]            (weights, q unsigned)
 *     value = sa[g] · a,  Sa[g] = sa[g] · Σ_{group} a   (activations, signed)
 *     Σ_group value_w · value_a = sw·sa·Σ(q·a) − ow·Sa
 *
 * vpmaddubsw saturates at ±32767, so q must stay small: two pairs of 63 · 128 (a Q6_K
 * level + 32 against the most negative Q8_K value) add to 32256 and fit, which covers
 * Q4_K, Q5_K, Q6_K and Q4_0. Q8_0 weights (q up to 255) would overflow: they keep vec_dot
 * rows (gemm_supports says no).
 *
 * ## The panel layout (per 256 values: 256 bytes, then 16 sw, then 16 ow floats)
 *
 * Register k = 4·s + j (s = 0, 1: groups 8s..8s+7; j = 0..3), lane i (0..7), byte b
 * (0..3) holds value 16·(8s + i) + 4·j + b. Four vpmaddubsw + two vpaddw + two vpmaddwd
 * over j then leave group 8s + i's integer dot in int32 lane i, where one scale applies.
 * The i16 additions of two vpmaddubsw results stay within range by the bound above.
 */

#define GEMM2_ROWS 16
/* below this many activation rows unpacking does not pay (whole-model pp, see
 * BENCHMARKS.md: the AVX2 table) */
#define GEMM2_MIN_T 4
#define SB2_BYTES (256 + 64 + 64)

/* 256 values in natural order → the register-lane order above: out dword 8k + i is input
 * dword 32s + 4i + j (k = 4s + j). Scalar: it runs once per row and superblock, against
 * T tokens of arithmetic. */
static inline void perm256_avx2(const uint8_t *nat, uint8_t *out) {
  uint32_t D[64], O[64];
  memcpy(D, nat, 256);
  for (int s = 0; s < 2; s++)
    for (int j = 0; j < 4; j++)
      for (int i = 0; i < 8; i++) O[8 * (4 * s + j) + i] = D[32 * s + 4 * i + j];
  memcpy(out, O, 256);
}

/* ---- weights → panels -------------------------------------------------------------------- */

static inline void kquant_panel_scales2(const uint8_t *scales12, float d, float dmin, uint8_t *p) {
  uint32_t utmp[4];
  kquant_scales_mins(scales12, utmp);
  const uint8_t *sm = (const uint8_t *)utmp; /* 8 scales, then 8 mins */
  float *sw = (float *)(p + 256), *ow = sw + 16;
  for (int g = 0; g < 16; g++) {
    sw[g] = d * (float)sm[g / 2];
    ow[g] = dmin * (float)sm[8 + g / 2];
  }
}

static void unpack2_q4_K(const void *row, int sb, uint8_t *p) {
  const eng__block_q4_K *x = (const eng__block_q4_K *)row + sb;
  const __m256i m4 = _mm256_set1_epi8(0xF);
  uint8_t nat[256] __attribute__((aligned(32)));
  for (int c = 0; c < 4; c++) { /* chunk c: 32 low nibbles, then 32 high nibbles */
    const __m256i q = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * c));
    _mm256_store_si256((__m256i *)(nat + 64 * c), _mm256_and_si256(q, m4));
    _mm256_store_si256((__m256i *)(nat + 64 * c + 32), _mm256_and_si256(_mm256_srli_epi16(q, 4), m4));
  }
  perm256_avx2(nat, p);
  kquant_panel_scales2(x->scales, F16(x->d), F16(x->dmin), p);
}

static void unpack2_q5_K(const void *row, int sb, uint8_t *p) {
  const eng__block_q5_K *x = (const eng__block_q5_K *)row + sb;
  const __m256i m4 = _mm256_set1_epi8(0xF), m1 = _mm256_set1_epi8(1);
  const __m256i qh = _mm256_loadu_si256((const __m256i *)x->qh);
  uint8_t nat[256] __attribute__((aligned(32)));
  for (int c = 0; c < 4; c++) { /* the fifth bit of chunk c: bit 2c (low nibbles), 2c+1 (high) */
    const __m256i q = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * c));
    const __m256i hl = _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * c)), m1), 4);
    const __m256i hh = _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * c + 1)), m1), 4);
    _mm256_store_si256((__m256i *)(nat + 64 * c), _mm256_or_si256(_mm256_and_si256(q, m4), hl));
    _mm256_store_si256((__m256i *)(nat + 64 * c + 32),
                       _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), hh));
  }
  perm256_avx2(nat, p);
  kquant_panel_scales2(x->scales, F16(x->d), F16(x->dmin), p);
}

static void unpack2_q6_K(const void *row, int sb, uint8_t *p) {
  const eng__block_q6_K *x = (const eng__block_q6_K *)row + sb;
  const __m256i m4 = _mm256_set1_epi8(0xF), m3 = _mm256_set1_epi8(3);
  uint8_t nat[256] __attribute__((aligned(32)));
  for (int h = 0; h < 2; h++) { /* 128 values: ql[64h..], qh[32h..] */
    const uint8_t *ql = x->ql + 64 * h, *qhp = x->qh + 32 * h;
    const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
    const __m256i qh = _mm256_loadu_si256((const __m256i *)qhp);
    const __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4);
    const __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4);
    const __m256i h2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4);
    const __m256i h3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4);
    uint8_t *o = nat + 128 * h;
    _mm256_store_si256((__m256i *)o, _mm256_or_si256(_mm256_and_si256(l0, m4), h0));
    _mm256_store_si256((__m256i *)(o + 32), _mm256_or_si256(_mm256_and_si256(l1, m4), h1));
    _mm256_store_si256((__m256i *)(o + 64), _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), h2));
    _mm256_store_si256((__m256i *)(o + 96), _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), h3));
  }
  perm256_avx2(nat, p);
  float *sw = (float *)(p + 256), *ow = sw + 16;
  const float d = F16(x->d);
  for (int g = 0; g < 16; g++) {
    sw[g] = d * (float)x->scales[g];
    ow[g] = 32.0f * sw[g];
  }
}

static void unpack2_q4_0(const void *row, int sb, uint8_t *p) {
  const eng__block_q4_0 *x = (const eng__block_q4_0 *)row + 8 * sb;
  uint8_t nat[256];
  for (int b = 0; b < 8; b++)
    for (int i = 0; i < 16; i++) {
      nat[32 * b + i] = x[b].qs[i] & 0xF;
      nat[32 * b + 16 + i] = x[b].qs[i] >> 4;
    }
  perm256_avx2(nat, p);
  float *sw = (float *)(p + 256), *ow = sw + 16;
  for (int g = 0; g < 16; g++) {
    sw[g] = F16(x[g / 2].d);
    ow[g] = 8.0f * sw[g];
  }
}

typedef void (*unpack2_fn)(const void *row, int sb, uint8_t *p);

static unpack2_fn unpacker2(uint32_t type) {
  switch (type) {
    case ENG__T_Q4_K: return unpack2_q4_K;
    case ENG__T_Q5_K: return unpack2_q5_K;
    case ENG__T_Q6_K: return unpack2_q6_K;
    case ENG__T_Q4_0: return unpack2_q4_0;
    default: return NULL; /* Q8_0: q up to 255 would saturate vpmaddubsw */
  }
}

/* ---- activations → panels --------------------------------------------------------------- */

static size_t gemm2_act_bytes(int64_t n, int T) { return (size_t)T * (size_t)(n / 256) * SB2_BYTES; }

/* T rows of the weight type's vec_dot format (Q8_K, or Q8_0 for Q4_0) → panels. */
static void gemm2_act(uint32_t wtype, int64_t n, const void *a, size_t arow, int T, void *panel) {
  const int nsb = (int)(n / 256);
  const int q8k = eng__kernels_scalar.t[wtype].vec_dot_type == ENG__T_Q8_K;
  uint8_t *p = panel;
  for (int t = 0; t < T; t++) {
    const uint8_t *row = (const uint8_t *)a + (size_t)t * arow;
    for (int sb = 0; sb < nsb; sb++, p += SB2_BYTES) {
      float *sa = (float *)(p + 256), *Sa = sa + 16;
      if (q8k) {
        const eng__block_q8_K *y = (const eng__block_q8_K *)row + sb;
        perm256_avx2((const uint8_t *)y->qs, p);
        for (int g = 0; g < 16; g++) {
          sa[g] = y->d;
          Sa[g] = y->d * (float)y->bsums[g];
        }
      } else {
        const eng__block_q8_0 *y = (const eng__block_q8_0 *)row + 8 * sb;
        uint8_t nat[256];
        for (int b = 0; b < 8; b++) memcpy(nat + 32 * b, y[b].qs, 32);
        perm256_avx2(nat, p);
        for (int g = 0; g < 16; g++) {
          const int8_t *q = y[g / 2].qs + 16 * (g % 2);
          int s = 0;
          for (int i = 0; i < 16; i++) s += q[i];
          sa[g] = F16(y[g / 2].d);
          Sa[g] = sa[g] * (float)s;
        }
      }
    }
  }
}

/* ---- the kernel -------------------------------------------------------------------------- */

/* R rows (1..4) × one token over all superblocks: the token's 4 registers of a half are
 * loaded once and used by every row; the rows' bytes are memory operands (L1). */
static inline __attribute__((always_inline)) void gemm2_tile(const uint8_t *wp, size_t wstride, const uint8_t *ap,
                                                             int nsb, int R, float *y) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[4];
  _Pragma("GCC unroll 4")
  for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
  for (int sb = 0; sb < nsb; sb++) {
    const uint8_t *a = ap + (size_t)sb * SB2_BYTES;
    _Pragma("GCC unroll 2")
    for (int s = 0; s < 2; s++) {
      const __m256i A0 = _mm256_loadu_si256((const __m256i *)(a + 128 * s));
      const __m256i A1 = _mm256_loadu_si256((const __m256i *)(a + 128 * s + 32));
      const __m256i A2 = _mm256_loadu_si256((const __m256i *)(a + 128 * s + 64));
      const __m256i A3 = _mm256_loadu_si256((const __m256i *)(a + 128 * s + 96));
      const __m256 sa = _mm256_loadu_ps((const float *)(a + 256) + 8 * s);
      const __m256 Sa = _mm256_loadu_ps((const float *)(a + 320) + 8 * s);
      _Pragma("GCC unroll 4")
      for (int r = 0; r < R; r++) {
        const uint8_t *w = wp + (size_t)r * wstride + (size_t)sb * SB2_BYTES;
        const __m256i p01 =
            _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)(w + 128 * s)), A0),
                             _mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)(w + 128 * s + 32)), A1));
        const __m256i p23 =
            _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)(w + 128 * s + 64)), A2),
                             _mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)(w + 128 * s + 96)), A3));
        const __m256i i32 = _mm256_add_epi32(_mm256_madd_epi16(p01, ones), _mm256_madd_epi16(p23, ones));
        const __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(i32), _mm256_loadu_ps((const float *)(w + 256) + 8 * s));
        acc[r] = _mm256_fmadd_ps(f, sa, acc[r]);
        acc[r] = _mm256_fnmadd_ps(_mm256_loadu_ps((const float *)(w + 320) + 8 * s), Sa, acc[r]);
      }
    }
  }
  _Pragma("GCC unroll 4")
  for (int r = 0; r < R; r++) y[r] = hsum256_ps(acc[r]);
}

/* Tokens outer over a panel of up to GEMM2_ROWS rows (its bytes stay in L1/L2), quads of
 * rows inner. */
static void gemm2_rows(const uint8_t *wp, size_t wstride, int nr, const uint8_t *ap, int T, int nsb, float *y, size_t ys) {
  const size_t astride = (size_t)nsb * SB2_BYTES;
  for (int t = 0; t < T; t++) {
    int r = 0;
    for (; r + 4 <= nr; r += 4) gemm2_tile(wp + (size_t)r * wstride, wstride, ap + (size_t)t * astride, nsb, 4, y + (size_t)t * ys + r);
    for (; r < nr; r++) gemm2_tile(wp + (size_t)r * wstride, wstride, ap + (size_t)t * astride, nsb, 1, y + (size_t)t * ys + r);
  }
}

static size_t gemm2_ws_bytes(int64_t n) { return (size_t)GEMM2_ROWS * (size_t)(n / 256) * SB2_BYTES; }

static void gemm2(uint32_t wtype, int64_t n, const void *w, size_t wrow, int64_t nrows, const void *panel, int T, float *y,
                  size_t ystride, void *ws) {
  const unpack2_fn up = unpacker2(wtype);
  const int nsb = (int)(n / 256);
  const size_t wstride = (size_t)nsb * SB2_BYTES;
  uint8_t *wp = ws;
  for (int64_t r0 = 0; r0 < nrows; r0 += GEMM2_ROWS) {
    const int nr = (int)(nrows - r0 < GEMM2_ROWS ? nrows - r0 : GEMM2_ROWS);
    for (int r = 0; r < nr; r++) {
      const uint8_t *row = (const uint8_t *)w + (size_t)(r0 + r) * wrow;
      if (r0 + GEMM2_ROWS + r < nrows) /* the same row of the next panel, a row at a time */
        for (size_t off = 0; off < wrow; off += 64) _mm_prefetch((const char *)row + (size_t)GEMM2_ROWS * wrow + off, _MM_HINT_T1);
      for (int sb = 0; sb < nsb; sb++) up(row, sb, wp + (size_t)r * wstride + (size_t)sb * SB2_BYTES);
    }
    gemm2_rows(wp, wstride, nr, panel, T, nsb, y + r0, ystride);
  }
}

static int gemm2_supports(uint32_t wtype, int64_t n) { return unpacker2(wtype) != NULL && n % 256 == 0; }

static eng__kernels table;

static void gemm2_install(eng__kernels *k) {
  k->gemm.supports = gemm2_supports;
  k->gemm.act_bytes = gemm2_act_bytes;
  k->gemm.ws_bytes = gemm2_ws_bytes;
  k->gemm.act = gemm2_act;
  k->gemm.run = gemm2;
  k->gemm.min_t = GEMM2_MIN_T;
}
