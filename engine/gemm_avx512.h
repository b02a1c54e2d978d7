/* gemm_avx512.h — the int8 (VNNI) matrix-matrix product for prefill; part of
 * quant_avx512.c (included once, compiled with its flags).
 *
 * ## The panel layout
 *
 * Every 256 values of a row (one "superblock") become 256 bytes of 8-bit values plus 16
 * float scales and 16 float offsets, one per group of 16 consecutive values. The bytes
 * are laid out for vpdpbusd: register k (0..3) lane i (0..15) byte b holds value
 * 16·i + 4·k + b, so after four vpdpbusd the int32 lane i holds the integer dot product
 * of group i — a single scale applies to it. Weights store unsigned values (a Q4_K
 * nibble, a Q6_K level + 32, a Q8_0 value + 128 …) with
 *
 *     value = sw[g] · q − ow[g]                                   (weights)
 *     value = sa[g] · a,   Sa[g] = sa[g] · Σ_{group} a            (activations, signed)
 *
 * so Σ value_w · value_a over a group is sw·sa·Σ(q·a) − ow·Sa: per (row, token, 256
 * values) four vpdpbusd, one int→float conversion and three float operations. Every type
 * fits: Q4_K/Q5_K (sw = d·sc, ow = dmin·m of the group's sub-block), Q6_K (sw = d·sc,
 * ow = 32·sw), Q8_0 (sw = d, ow = 128·d), Q4_0 (sw = d, ow = 8·d); activations come from
 * Q8_K (sa = d, Sa = d·bsum) or Q8_0 blocks (sa = the block's d).
 *
 * Activations are converted to panels once per product (gemm_act); weights a panel of
 * GEMM_ROWS rows at a time inside each task (into the worker's workspace), then every
 * token runs against it, two rows by four tokens per step. The results equal the
 * vec_dot products up to float summation order (tested: mul_mat_agrees_with_vec_dot).
 */

#define GEMM_ROWS 16
/* below this many activation rows unpacking the weights does not pay: bench_kernels
 * --shapes measures int8 vs vec_dot rows at 768×2048 Q4_K as 49 vs 83 GFLOP/s at 1 token,
 * 88 vs 84 at 2, 116 vs 89 at 3 */
#define GEMM_MIN_T 3
#define SB_BYTES (256 + 64 + 64)

/* 256 values in natural order (64 dwords) → the register-lane order above. */
static inline void perm256(const __m512i N[4], uint8_t *out) {
  for (int k = 0; k < 4; k++) {
    const __m512i idx = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 28 + k, 24 + k, 20 + k, 16 + k, 12 + k, 8 + k, 4 + k, k);
    const __m512i t01 = _mm512_permutex2var_epi32(N[0], idx, N[1]);
    const __m512i t23 = _mm512_permutex2var_epi32(N[2], idx, N[3]);
    _mm512_storeu_si512(out + 64 * k, _mm512_shuffle_i64x2(t01, t23, 0x44));
  }
}

/* ---- weights → panels (one superblock of one row each call) ---------------------------- */

/* sw[g] = d·sc[g/2], ow[g] = dmin·m[g/2] for the 16 groups of a Q4_K/Q5_K superblock. */
static inline void kquant_panel_scales(const uint8_t *scales12, float d, float dmin, uint8_t *p) {
  uint32_t utmp[4];
  kquant_scales_mins(scales12, utmp);
  const __m128i sm = _mm_loadu_si128((const __m128i *)utmp); /* 8 scales, 8 mins */
  const __m128i sc2 = _mm_unpacklo_epi8(sm, sm), mn2 = _mm_unpackhi_epi8(sm, sm);
  _mm512_storeu_ps(p + 256, _mm512_mul_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(sc2))));
  _mm512_storeu_ps(p + 320, _mm512_mul_ps(_mm512_set1_ps(dmin), _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(mn2))));
}

static void unpack_q4_K(const void *row, int sb, uint8_t *p) {
  const eng__block_q4_K *x = (const eng__block_q4_K *)row + sb;
  const __m512i m4 = _mm512_set1_epi8(0xF);
  __m512i N[4];
  for (int h = 0; h < 2; h++) { /* qs[64h..64h+63] = chunks 2h, 2h+1 */
    const __m512i q = _mm512_loadu_si512(x->qs + 64 * h);
    const __m512i lo = _mm512_and_si512(q, m4), hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
    /* natural order: chunk c → values 64c..64c+31 low nibbles, 64c+32..63 high */
    N[2 * h] = _mm512_inserti64x4(lo, _mm512_castsi512_si256(hi), 1);          /* chunk 2h   */
    N[2 * h + 1] = _mm512_inserti64x4(hi, _mm512_extracti64x4_epi64(lo, 1), 0); /* chunk 2h+1 */
  }
  perm256(N, p);
  kquant_panel_scales(x->scales, F16(x->d), F16(x->dmin), p);
}

static void unpack_q5_K(const void *row, int sb, uint8_t *p) {
  const eng__block_q5_K *x = (const eng__block_q5_K *)row + sb;
  const __m512i m4 = _mm512_set1_epi8(0xF), m1 = _mm512_set1_epi8(1);
  const __m512i qh2 = load2x256(x->qh, x->qh);
  __m512i N[4];
  for (int h = 0; h < 2; h++) {
    const __m512i q = _mm512_loadu_si512(x->qs + 64 * h);
    /* bytes 0..31 are chunk 2h, 32..63 chunk 2h+1: the fifth bit of chunk c is bit 2c
     * (low nibbles) and 2c+1 (high nibbles) of qh */
    const __m512i cl = _mm512_inserti64x4(_mm512_set1_epi16((short)(4 * h)), _mm256_set1_epi16((short)(4 * h + 2)), 1);
    const __m512i ch = _mm512_inserti64x4(_mm512_set1_epi16((short)(4 * h + 1)), _mm256_set1_epi16((short)(4 * h + 3)), 1);
    const __m512i hl = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh2, cl), m1), 4);
    const __m512i hh = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh2, ch), m1), 4);
    const __m512i lo = _mm512_or_si512(_mm512_and_si512(q, m4), hl);
    const __m512i hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(q, 4), m4), hh);
    N[2 * h] = _mm512_inserti64x4(lo, _mm512_castsi512_si256(hi), 1);
    N[2 * h + 1] = _mm512_inserti64x4(hi, _mm512_extracti64x4_epi64(lo, 1), 0);
  }
  perm256(N, p);
  kquant_panel_scales(x->scales, F16(x->d), F16(x->dmin), p);
}

static void unpack_q6_K(const void *row, int sb, uint8_t *p) {
  const eng__block_q6_K *x = (const eng__block_q6_K *)row + sb;
  const __m512i m4 = _mm512_set1_epi8(0xF), m3 = _mm512_set1_epi8(3);
  const __m512i c02 = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
  const __m512i c46 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(6), 1);
  __m512i N[4];
  for (int h = 0; h < 2; h++) { /* half h: values 128h.. ; A = 0..63, B = 64..127 */
    const __m512i ql = _mm512_loadu_si512(x->ql + 64 * h);
    const __m512i qh2 = load2x256(x->qh + 32 * h, x->qh + 32 * h);
    const __m512i hA = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh2, c02), m3), 4);
    const __m512i hB = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh2, c46), m3), 4);
    N[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, m4), hA);
    N[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), hB);
  }
  perm256(N, p);
  const __m512 sw = _mm512_mul_ps(_mm512_set1_ps(F16(x->d)),
                                  _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)x->scales))));
  _mm512_storeu_ps(p + 256, sw);
  _mm512_storeu_ps(p + 320, _mm512_mul_ps(_mm512_set1_ps(32.0f), sw));
}

static void unpack_q8_0(const void *row, int sb, uint8_t *p) {
  const eng__block_q8_0 *x = (const eng__block_q8_0 *)row + 8 * sb;
  const __m512i off = _mm512_set1_epi8((char)0x80);
  __m512i N[4];
  for (int k = 0; k < 4; k++)
    N[k] = _mm512_xor_si512(load2x256(x[2 * k].qs, x[2 * k + 1].qs), off);
  perm256(N, p);
  float *sw = (float *)(p + 256), *ow = sw + 16;
  for (int g = 0; g < 16; g++) {
    sw[g] = F16(x[g / 2].d);
    ow[g] = 128.0f * sw[g];
  }
}

static void unpack_q4_0(const void *row, int sb, uint8_t *p) {
  const eng__block_q4_0 *x = (const eng__block_q4_0 *)row + 8 * sb;
  const __m256i m4 = _mm256_set1_epi8(0xF);
  __m512i N[4];
  for (int k = 0; k < 4; k++) {
    __m256i v[2];
    for (int j = 0; j < 2; j++) {
      const __m128i t = _mm_loadu_si128((const __m128i *)x[2 * k + j].qs);
      v[j] = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), m4);
    }
    N[k] = _mm512_inserti64x4(_mm512_castsi256_si512(v[0]), v[1], 1);
  }
  perm256(N, p);
  float *sw = (float *)(p + 256), *ow = sw + 16;
  for (int g = 0; g < 16; g++) {
    sw[g] = F16(x[g / 2].d);
    ow[g] = 8.0f * sw[g];
  }
}

typedef void (*unpack_fn)(const void *row, int sb, uint8_t *p);

static unpack_fn unpacker(uint32_t type) {
  switch (type) {
    case ENG__T_Q4_K: return unpack_q4_K;
    case ENG__T_Q5_K: return unpack_q5_K;
    case ENG__T_Q6_K: return unpack_q6_K;
    case ENG__T_Q8_0: return unpack_q8_0;
    case ENG__T_Q4_0: return unpack_q4_0;
    default: return NULL;
  }
}

/* ---- activations → panels --------------------------------------------------------------- */

static size_t gemm_act_bytes(int64_t n, int T) { return (size_t)T * (size_t)(n / 256) * SB_BYTES; }

/* T rows of the weight type's vec_dot format (Q8_K or Q8_0) → panels, token-major. */
static void gemm_act(uint32_t wtype, int64_t n, const void *a, size_t arow, int T, void *panel) {
  const int nsb = (int)(n / 256);
  const int q8k = eng__kernels_scalar.t[wtype].vec_dot_type == ENG__T_Q8_K;
  uint8_t *p = panel;
  for (int t = 0; t < T; t++) {
    const uint8_t *row = (const uint8_t *)a + (size_t)t * arow;
    for (int sb = 0; sb < nsb; sb++, p += SB_BYTES) {
      __m512i N[4];
      float *sa = (float *)(p + 256), *Sa = sa + 16;
      if (q8k) {
        const eng__block_q8_K *y = (const eng__block_q8_K *)row + sb;
        for (int k = 0; k < 4; k++) N[k] = _mm512_loadu_si512(y->qs + 64 * k);
        const __m512 d = _mm512_set1_ps(y->d);
        _mm512_storeu_ps(sa, d);
        _mm512_storeu_ps(Sa, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)y->bsums)))));
      } else {
        const eng__block_q8_0 *y = (const eng__block_q8_0 *)row + 8 * sb;
        for (int k = 0; k < 4; k++) N[k] = load2x256(y[2 * k].qs, y[2 * k + 1].qs);
        for (int g = 0; g < 16; g++) {
          const int8_t *q = y[g / 2].qs + 16 * (g % 2);
          int s = 0;
          for (int i = 0; i < 16; i++) s += q[i];
          sa[g] = F16(y[g / 2].d);
          Sa[g] = sa[g] * (float)s;
        }
      }
      perm256(N, p);
    }
  }
}

/* ---- the kernel -------------------------------------------------------------------------- */

/* R rows (1..4) × C tokens (1..2) over all superblocks; y[t·ys + r]. The rows' weights
 * stay in registers through a superblock, their scales are memory operands. Four rows per
 * tile halve the activation traffic from L2 against two (measured: pp512 ~700 vs ~620
 * tok/s on the 30B-A3B shapes). */
static inline __attribute__((always_inline)) void gemm_tile(const uint8_t *wp, size_t wstride, const uint8_t *ap,
                                                            size_t astride, int nsb, int R, int C, float *y, size_t ys) {
  __m512 acc[4][2];
  _Pragma("GCC unroll 4")
  for (int r = 0; r < R; r++)
    _Pragma("GCC unroll 2")
    for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps();
  for (int sb = 0; sb < nsb; sb++) {
    __m512i W[4][4];
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R; r++) {
      const uint8_t *w = wp + (size_t)r * wstride + (size_t)sb * SB_BYTES;
      _Pragma("GCC unroll 4")
      for (int k = 0; k < 4; k++) W[r][k] = _mm512_loadu_si512(w + 64 * k);
    }
    _Pragma("GCC unroll 2")
    for (int c = 0; c < C; c++) {
      const uint8_t *a = ap + (size_t)c * astride + (size_t)sb * SB_BYTES;
      const __m512i A0 = _mm512_loadu_si512(a), A1 = _mm512_loadu_si512(a + 64);
      const __m512i A2 = _mm512_loadu_si512(a + 128), A3 = _mm512_loadu_si512(a + 192);
      const __m512 sa = _mm512_loadu_ps((const float *)(a + 256)), Sa = _mm512_loadu_ps((const float *)(a + 320));
      _Pragma("GCC unroll 4")
      for (int r = 0; r < R; r++) {
        const uint8_t *w = wp + (size_t)r * wstride + (size_t)sb * SB_BYTES;
        /* two chains of two: half the dependent latency */
        __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), W[r][0], A0);
        __m512i s2 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), W[r][1], A1);
        s = _mm512_dpbusd_epi32(s, W[r][2], A2);
        s2 = _mm512_dpbusd_epi32(s2, W[r][3], A3);
        s = _mm512_add_epi32(s, s2);
        const __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(s), _mm512_loadu_ps((const float *)(w + 256)));
        acc[r][c] = _mm512_fmadd_ps(f, sa, acc[r][c]);
        acc[r][c] = _mm512_fnmadd_ps(_mm512_loadu_ps((const float *)(w + 320)), Sa, acc[r][c]);
      }
    }
  }
  _Pragma("GCC unroll 4")
  for (int r = 0; r < R; r++)
    _Pragma("GCC unroll 2")
    for (int c = 0; c < C; c++) y[(size_t)c * ys + (size_t)r] = _mm512_reduce_add_ps(acc[r][c]);
}

/* Blocks of up to 32 tokens (their panels, ≤ 100 KB at 2048 values, stay in L2); in a
 * block, row quads outer (their weights stay in L1) and token pairs inner. */
static void gemm_rows(const uint8_t *wp, size_t wstride, int nr, const uint8_t *ap, int T, int nsb, float *y, size_t ys) {
  const size_t astride = (size_t)nsb * SB_BYTES;
  for (int t0 = 0; t0 < T; t0 += 32) {
    const int t1 = T - t0 < 32 ? T : t0 + 32;
    int r = 0;
    for (; r + 4 <= nr; r += 4) {
      int t = t0;
      for (; t + 2 <= t1; t += 2)
        gemm_tile(wp + (size_t)r * wstride, wstride, ap + (size_t)t * astride, astride, nsb, 4, 2, y + (size_t)t * ys + r, ys);
      if (t < t1) gemm_tile(wp + (size_t)r * wstride, wstride, ap + (size_t)t * astride, astride, nsb, 4, 1, y + (size_t)t * ys + r, ys);
    }
    for (; r < nr; r++) {
      int t = t0;
      for (; t + 2 <= t1; t += 2)
        gemm_tile(wp + (size_t)r * wstride, wstride, ap + (size_t)t * astride, astride, nsb, 1, 2, y + (size_t)t * ys + r, ys);
      if (t < t1) gemm_tile(wp + (size_t)r * wstride, wstride, ap + (size_t)t * astride, astride, nsb, 1, 1, y + (size_t)t * ys + r, ys);
    }
  }
}

/* Workspace bytes one task needs for rows of n values. */
static size_t gemm_ws_bytes(int64_t n) { return (size_t)GEMM_ROWS * (size_t)(n / 256) * SB_BYTES; }

/* Rows of W (wrow bytes apart) × the activation panels of T tokens. */
static void gemm(uint32_t wtype, int64_t n, const void *w, size_t wrow, int64_t nrows, const void *panel, int T, float *y,
                 size_t ystride, void *ws) {
  const unpack_fn up = unpacker(wtype);
  const int nsb = (int)(n / 256);
  const size_t wstride = (size_t)nsb * SB_BYTES;
  uint8_t *wp = ws;
  for (int64_t r0 = 0; r0 < nrows; r0 += GEMM_ROWS) {
    const int nr = (int)(nrows - r0 < GEMM_ROWS ? nrows - r0 : GEMM_ROWS);
    for (int r = 0; r < nr; r++) {
      const uint8_t *row = (const uint8_t *)w + (size_t)(r0 + r) * wrow;
      /* the same row of the next panel comes from DRAM: ask for it now, a row at a time
       * (a burst of a whole panel's lines overflows the miss queues and is dropped) */
      if (r0 + GEMM_ROWS + r < nrows)
        for (size_t off = 0; off < wrow; off += 64) _mm_prefetch((const char *)row + (size_t)GEMM_ROWS * wrow + off, _MM_HINT_T1);
      for (int sb = 0; sb < nsb; sb++) up(row, sb, wp + (size_t)r * wstride + (size_t)sb * SB_BYTES);
    }
    gemm_rows(wp, wstride, nr, panel, T, nsb, y + r0, ystride);
  }
}

static int gemm_supports(uint32_t wtype, int64_t n) { return unpacker(wtype) != NULL && n % 256 == 0; }

/* ---- mul_mat: the GEMM above for enough tokens, vec_dot rows otherwise ------------------- */

static eng__kernels table;

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

static void gemm_install(eng__kernels *k) {
  k->mul_mat[ENG__T_F32] = mm_f32;
  k->mul_mat[ENG__T_F16] = mm_f16;
  k->mul_mat[ENG__T_BF16] = mm_bf16;
  k->mul_mat[ENG__T_Q8_0] = mm_q8_0;
  k->mul_mat[ENG__T_Q4_0] = mm_q4_0;
  k->mul_mat[ENG__T_Q4_K] = mm_q4_K;
  k->mul_mat[ENG__T_Q5_K] = mm_q5_K;
  k->mul_mat[ENG__T_Q6_K] = mm_q6_K;
  k->gemm.supports = gemm_supports;
  k->gemm.act_bytes = gemm_act_bytes;
  k->gemm.ws_bytes = gemm_ws_bytes;
  k->gemm.act = gemm_act;
  k->gemm.run = gemm;
  k->gemm.min_t = GEMM_MIN_T;
}
