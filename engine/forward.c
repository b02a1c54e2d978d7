/* forward.c — the Qwen3 / Qwen3-MoE forward pass over a batch of tokens.
 *
 * One call evaluates up to ENG__BATCH consecutive tokens of a session: embeddings, then
 * per layer RMSNorm → Q/K/V → per-head Q/K RMSNorm → NEOX RoPE → K/V into the cache →
 * causal grouped-query attention over the cache → output projection → residual →
 * RMSNorm → MoE (router softmax over all experts, top-k, renormalised, SwiGLU experts
 * read in place from the stacked tensors) or a dense SwiGLU → residual; finally RMSNorm
 * and the LM head for the rows whose logits are wanted.
 *
 * The arithmetic follows llama.cpp's CPU backend where it matters for agreement: norms
 * with a double sum, RoPE angles by repeated multiplication (ggml_rope_cache_init),
 * matrix products on activations converted to the weight's vec_dot_type (quant.h),
 * softmax over the router with a double sum, expert outputs weighted then added in
 * selection order. Every loop goes through the model's kernel table (m->k), so the
 * scalar path is the specification and the SIMD paths are what runs.
 *
 * Parallelism (the persistent pool; tasks are claimed from an atomic counter, so a thread
 * that is slowed by another process simply takes fewer): a matrix product is split into
 * chunks of output rows; Q, K and V are one run over all their rows; the experts of a
 * MoE layer are one run over (expert, row chunk) tasks of every selected expert — so
 * experts with many tokens and experts with one keep both cores busy — with gate and up
 * fused (one task computes a chunk of gate rows and the same up rows, then SiLU·mul);
 * down is another such run. Attention is one run over (query block, KV head) tasks, each
 * computing its query heads with an online softmax over blocks of ENG__ATT_BLOCK cached
 * positions (no score matrix of the whole context). Decode reads only the selected
 * experts' rows. Memory: only the model's scratch and the session's cache are touched —
 * nothing is allocated here.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include <cblas.h>

#include "engine/internal.h"
#include "engine/limits.h"
#include "engine/model.h"

/* ---- matrix products ------------------------------------------------------------------- */

/* One weight matrix (expert e) applied to T activation rows: y[t·ystride + r]. */
typedef struct mm_seg {
  const eng__w *W;
  uint64_t e;
  const uint8_t *a;
  size_t arow;
  int T;
  float *y;
  size_t ystride;
  /* fused SwiGLU: a second matrix (up) with the same rows and output yu; the task then
   * leaves silu(y)·yu in y */
  const eng__w *U;
  float *yu;
  const float *x;    /* the same activations in float (rows xstride apart), for sgemm */
  size_t xstride;
  int how;           /* MM_VECDOT, MM_INT8 (panel) or MM_SGEMM */
  const void *panel; /* activations as int8 GEMM panels */
  int64_t chunk;   /* rows per task */
  int first_task;  /* tasks of this segment: first_task .. next segment's first_task-1 */
} mm_seg;

#define MAX_SEGS 512

enum { MM_VECDOT, MM_INT8, MM_SGEMM };

typedef struct mm_job {
  const eng__kernels *k;
  mm_seg *seg;
  int nseg;
  uint8_t *ws;
  size_t ws_bytes;
} mm_job;

/* OpenBLAS on float weights: F32 rows are used in place, other types are dequantised
 * SGEMM_ROWS rows at a time into the worker's workspace. OpenBLAS runs single-threaded
 * inside our tasks (set at model open), so it never competes with the pool. */
static void sgemm_rows(const mm_job *j, const mm_seg *sg, const eng__w *W, int64_t r0, int64_t nr, float *y, void *ws) {
  const int64_t n = (int64_t)W->ne0;
  for (int64_t a = 0; a < nr; a += ENG__SGEMM_ROWS) {
    const int64_t b = nr - a < ENG__SGEMM_ROWS ? nr - a : ENG__SGEMM_ROWS;
    const float *wf;
    if (W->type == ENG__T_F32) {
      wf = (const float *)eng__w_row(W, sg->e, (uint64_t)(r0 + a));
    } else {
      float *d = ws;
      for (int64_t r = 0; r < b; r++) j->k->t[W->type].to_float(eng__w_row(W, sg->e, (uint64_t)(r0 + a + r)), d + r * n, n);
      wf = d;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, sg->T, (blasint)b, (blasint)n, 1.0f, sg->x, (blasint)sg->xstride,
                wf, (blasint)n, 0.0f, y + r0 + a, (blasint)sg->ystride);
  }
}

static void mm_rows(const mm_job *j, const mm_seg *sg, const eng__w *W, int64_t r0, int64_t nr, float *y, void *ws) {
  const uint8_t *w = eng__w_row(W, sg->e, (uint64_t)r0);
  if (sg->how == MM_INT8)
    j->k->gemm.run(W->type, (int64_t)W->ne0, w, W->row_bytes, nr, sg->panel, sg->T, y + r0, sg->ystride, ws);
  else if (sg->how == MM_SGEMM)
    sgemm_rows(j, sg, W, r0, nr, y, ws);
  else
    eng__mul_mat_generic(&j->k->t[W->type], (int64_t)W->ne0, w, W->row_bytes, nr, sg->a, sg->arow, sg->T, y + r0,
                         sg->ystride);
}

static void mm_run(void *ctx, int task, int worker) {
  const mm_job *j = ctx;
  int lo = 0, hi = j->nseg - 1;
  while (lo < hi) { /* last segment whose first_task <= task */
    int mid = (lo + hi + 1) / 2;
    if (j->seg[mid].first_task <= task) lo = mid;
    else hi = mid - 1;
  }
  const mm_seg *sg = &j->seg[lo];
  const eng__w *W = sg->W;
  int64_t r0 = (int64_t)(task - sg->first_task) * sg->chunk, r1 = r0 + sg->chunk;
  if (r1 > (int64_t)W->ne1) r1 = (int64_t)W->ne1;
  const int64_t nr = r1 - r0;
  void *ws = j->ws + (size_t)worker * j->ws_bytes;
  mm_rows(j, sg, W, r0, nr, sg->y, ws);
  if (sg->U) {
    mm_rows(j, sg, sg->U, r0, nr, sg->yu, ws);
    for (int t = 0; t < sg->T; t++) j->k->op.silu_mul(sg->y + (size_t)t * sg->ystride + r0, sg->yu + (size_t)t * sg->ystride + r0, nr);
  }
}

/* Rows per task: enough tasks that both threads stay busy when one is slowed down (about
 * 8 per thread), few enough that a task amortises its claim, a multiple of 16 rows. */
static int64_t chunk_rows(int64_t total_rows, int nth, int T) {
  int64_t c = total_rows / ((int64_t)nth * 8);
  int64_t lo = T > 1 ? 32 : 16;
  if (c < lo) c = lo;
  if (c > 1024) c = 1024;
  return (c + 15) / 16 * 16;
}

/* How a segment runs, by size (BENCHMARKS.md has the measurements behind it): the int8
 * GEMM when the table has one for the type and there are at least gemm.min_t activation
 * rows; sgemm for F32 weights (the router) with at least ENG__SGEMM_MIN_T rows, and for
 * quantised weights only when forced ($QCODER_MATMUL=sgemm: it loses to the int8 GEMM at
 * every measured shape); vec_dot rows otherwise (decode). The scalar path always uses
 * vec_dot: it is the specification. */
static int how(const eng_model *m, const mm_seg *sg) {
  const eng__gemm *g = &m->k->gemm;
  if (m->mm_mode == ENG__MM_VECDOT || m->k == &eng__kernels_scalar) return MM_VECDOT;
  if (m->mm_mode == ENG__MM_SGEMM) return sg->T > 1 && sg->x ? MM_SGEMM : MM_VECDOT;
  int int8 = g->run && g->supports(sg->W->type, (int64_t)sg->W->ne0) && (!sg->U || g->supports(sg->U->type, (int64_t)sg->U->ne0));
  if (int8 && (m->mm_mode == ENG__MM_INT8 || sg->T >= g->min_t)) return MM_INT8;
  if (sg->x && sg->W->type == ENG__T_F32 && sg->T >= ENG__SGEMM_MIN_T && (!sg->U || sg->U->type == sg->W->type))
    return MM_SGEMM;
  return MM_VECDOT;
}

static void mm_go(eng_model *m, mm_seg *seg, int nseg) {
  size_t panel_off = 0;
  for (int i = 0; i < nseg; i++) {
    seg[i].panel = NULL;
    seg[i].how = how(m, &seg[i]);
    if (seg[i].how != MM_INT8) continue;
    const size_t need = m->k->gemm.act_bytes((int64_t)seg[i].W->ne0, seg[i].T);
    if (panel_off + need > m->s.actp_bytes) {
      seg[i].how = MM_VECDOT;
      continue;
    }
    m->k->gemm.act(seg[i].W->type, (int64_t)seg[i].W->ne0, seg[i].a, seg[i].arow, seg[i].T, m->s.actp + panel_off);
    seg[i].panel = m->s.actp + panel_off;
    panel_off += (need + 63) / 64 * 64;
  }
  int64_t total = 0;
  for (int i = 0; i < nseg; i++) total += (int64_t)seg[i].W->ne1;
  const int nth = eng__pool_size(m->pool);
  int tasks = 0;
  for (int i = 0; i < nseg; i++) {
    seg[i].chunk = chunk_rows(total, nth, seg[i].T);
    seg[i].first_task = tasks;
    tasks += (int)(((int64_t)seg[i].W->ne1 + seg[i].chunk - 1) / seg[i].chunk);
  }
  mm_job j = {m->k, seg, nseg, m->s.gemm_ws, m->s.ws_bytes};
  eng__pool_run(m->pool, mm_run, &j, tasks);
}

/* Convert T rows of X (width n) into `type`'s vec_dot format; returns the row size. */
static size_t quantize_rows(const eng_model *m, uint32_t wtype, const float *X, size_t xstride, int T, int64_t n,
                            uint8_t *dst) {
  const eng__type_traits *tt = &m->k->t[wtype];
  const eng__type_traits *vt = &m->k->t[tt->vec_dot_type];
  const size_t arow = eng__ggml_row_size(tt->vec_dot_type, (uint64_t)n);
  for (int t = 0; t < T; t++) vt->from_float(X + (size_t)t * xstride, dst + (size_t)t * arow, n);
  return arow;
}

/* Y = W · X for T rows (one matrix). */
static void matmul(eng_model *m, const eng__w *W, uint64_t e, const float *X, size_t xstride, int T, float *Y,
                   size_t ystride) {
  size_t arow = quantize_rows(m, W->type, X, xstride, T, (int64_t)W->ne0, m->s.actq[0]);
  mm_seg sg = {W, e, m->s.actq[0], arow, T, Y, ystride, NULL, NULL, X, xstride, 0, NULL, 0, 0};
  mm_go(m, &sg, 1);
}

/* Several matrices over the same input X in one pool run (Q, K, V). Inputs are converted
 * once per distinct vec_dot format (at most two). */
static void matmul_multi(eng_model *m, const eng__w *const *W, float *const *Y, const size_t *ystride, int n,
                         const float *X, size_t xstride, int T) {
  mm_seg seg[4];
  uint32_t fmt[2] = {UINT32_MAX, UINT32_MAX};
  size_t arow[2] = {0, 0};
  for (int i = 0; i < n; i++) {
    uint32_t vdt = m->k->t[W[i]->type].vec_dot_type;
    int slot = fmt[0] == vdt ? 0 : fmt[1] == vdt ? 1 : fmt[0] == UINT32_MAX ? 0 : 1;
    if (fmt[slot] != vdt) {
      fmt[slot] = vdt;
      arow[slot] = quantize_rows(m, W[i]->type, X, xstride, T, (int64_t)W[i]->ne0, m->s.actq[slot]);
    }
    seg[i] = (mm_seg){W[i], 0, m->s.actq[slot], arow[slot], T, Y[i], ystride[i], NULL, NULL, X, xstride, 0, NULL, 0, 0};
  }
  mm_go(m, seg, n);
}

/* ---- attention ------------------------------------------------------------------------- */

typedef struct attn_task {
  eng_session *s;
  uint32_t layer;
  size_t pos0;
  int T;
  float scale;
} attn_task;

/* A block of up to ENG__ATT_QBLOCK query tokens and one KV head g: the `group` query heads
 * of each token share g. The cached positions are walked once, in blocks of
 * ENG__ATT_BLOCK (K and V of a block stay in L1 while every token of the query block uses
 * them — a long context is read from memory once per query block, not once per token),
 * with an online softmax per (token, head): scores of the block, new running max,
 * rescale the accumulator and the sum, add the block's weighted values. Positions after a
 * token's own are masked out. */
static void attn_run(void *ctx, int task, int worker) {
  const attn_task *c = ctx;
  eng_session *s = c->s;
  eng_model *m = s->m;
  const eng__ops *op = &m->k->op;
  const int nkvh = (int)m->hp.n_head_kv, hd = (int)m->hp.head_dim, group = (int)(m->hp.n_head / m->hp.n_head_kv);
  const int g = task % nkvh, t0 = (task / nkvh) * (int)ENG__ATT_QBLOCK;
  const int nt = c->T - t0 < (int)ENG__ATT_QBLOCK ? c->T - t0 : (int)ENG__ATT_QBLOCK;
  const size_t nq = (size_t)m->hp.n_head * (size_t)hd, gh = (size_t)group * (size_t)hd;
  float *S = m->s.att_sc + (size_t)worker * (size_t)group * ENG__ATT_BLOCK;
  float *acc = m->s.att_acc + (size_t)worker * ENG__ATT_QBLOCK * gh;
  float *mx = m->s.att_ml + (size_t)worker * ENG__ATT_QBLOCK * (size_t)group * 2, *l = mx + ENG__ATT_QBLOCK * (size_t)group;
  for (int i = 0; i < nt * group; i++) {
    mx[i] = -INFINITY;
    l[i] = 0;
  }
  memset(acc, 0, (size_t)nt * gh * sizeof(float));
  const size_t last = c->pos0 + (size_t)(t0 + nt - 1);
  for (size_t j0 = 0; j0 <= last; j0 += ENG__ATT_BLOCK) {
    const float *KT = eng__kv_kt(s, c->layer, (uint32_t)g, j0);
    const float *V = eng__kv_v(s, c->layer, j0) + (size_t)g * (size_t)hd;
    for (int ti = 0; ti < nt; ti++) {
      const size_t pos = c->pos0 + (size_t)(t0 + ti);
      if (j0 > pos) continue;
      const int nb = (int)(pos + 1 - j0 < ENG__ATT_BLOCK ? pos + 1 - j0 : ENG__ATT_BLOCK);
      const float *q = m->s.q + (size_t)(t0 + ti) * nq + (size_t)g * gh;
      float *a = acc + (size_t)ti * gh;
      op->attn_scores(q, group, hd, KT, ENG__KV_CHUNK, nb, c->scale, S);
      for (int h = 0; h < group; h++) {
        float *sc = S + (size_t)h * ENG__ATT_BLOCK;
        const int k = ti * group + h;
        float bm = -INFINITY;
        for (int j = 0; j < nb; j++) bm = sc[j] > bm ? sc[j] : bm;
        if (bm > mx[k]) {
          if (l[k] > 0) {
            const float corr = expf(mx[k] - bm);
            l[k] *= corr;
            op->scale(a + (size_t)h * (size_t)hd, corr, hd);
          }
          mx[k] = bm;
        }
        l[k] += op->exp_sum(sc, mx[k], nb);
      }
      op->attn_accum(a, group, hd, S, nb, V, s->kv_dim);
    }
  }
  for (int ti = 0; ti < nt; ti++) {
    float *out = m->s.att + (size_t)(t0 + ti) * nq + (size_t)g * gh;
    for (int h = 0; h < group; h++) {
      memcpy(out + (size_t)h * (size_t)hd, acc + (size_t)ti * gh + (size_t)h * (size_t)hd, (size_t)hd * sizeof(float));
      op->scale(out + (size_t)h * (size_t)hd, 1.0f / l[ti * group + h], hd);
    }
  }
}

/* ---- feed-forward ---------------------------------------------------------------------- */

static void route(eng_session *s, uint32_t il, int T, size_t pos0) {
  eng_model *m = s->m;
  eng__scratch *sc = &m->s;
  const int E = (int)m->hp.n_expert, K = (int)m->hp.n_expert_used;
  for (int t = 0; t < T; t++) {
    float *p = sc->router + (size_t)t * E;
    m->k->op.softmax(p, E);
    int32_t *sel = sc->sel + (size_t)t * K;
    float *w = sc->selw + (size_t)t * K;
    double wsum = 0;
    for (int k = 0; k < K; k++) {  /* top-k, descending, ties to the lower id */
      int best = -1;
      for (int e = 0; e < E; e++) {
        int taken = 0;
        for (int j = 0; j < k; j++) taken |= sel[j] == e;
        if (!taken && (best < 0 || p[e] > p[best])) best = e;
      }
      sel[k] = best;
      w[k] = p[best];
      wsum += (double)w[k];
    }
    const float fs = (float)wsum;
    for (int k = 0; k < K; k++) w[k] /= fs;
    if (s->route_log && pos0 + (size_t)t < s->route_cap)
      for (int k = 0; k < K; k++) s->route_log[((size_t)il * s->route_cap + pos0 + (size_t)t) * (size_t)K + (size_t)k] = sel[k];
  }
}

static void moe(eng_session *s, uint32_t il, int T, size_t pos0) {
  eng_model *m = s->m;
  eng__scratch *sc = &m->s;
  const eng__layer *L = &m->layers[il];
  const int E = (int)m->hp.n_expert, K = (int)m->hp.n_expert_used, D = (int)m->hp.n_embd, ff = (int)m->hp.n_ff_exp;
  matmul(m, &L->gate_inp, 0, sc->h, (size_t)D, T, sc->router, (size_t)E);
  route(s, il, T, pos0);
  /* group the (token, slot) pairs by expert */
  memset(sc->exp_off, 0, (size_t)(E + 1) * sizeof *sc->exp_off);
  for (int i = 0; i < T * K; i++) sc->exp_off[sc->sel[i] + 1]++;
  for (int e = 0; e < E; e++) sc->exp_off[e + 1] += sc->exp_off[e];
  int32_t fillp[ENG__MAX_EXPERTS];
  memcpy(fillp, sc->exp_off, (size_t)E * sizeof *fillp);
  for (int t = 0; t < T; t++)
    for (int k = 0; k < K; k++) {
      int i = fillp[sc->sel[t * K + k]]++;
      sc->tok_of[i] = t;
      sc->pair_of[t * K + k] = i;
    }
  /* the input rows in each expert's order: convert each token once, then gather */
  const uint32_t gtype = L->gate_exps.type;
  const size_t arow = quantize_rows(m, gtype, sc->h, (size_t)D, T, D, sc->actq[0]);
  for (int i = 0; i < T * K; i++)
    memcpy(sc->actq_ff + (size_t)i * arow, sc->actq[0] + (size_t)sc->tok_of[i] * arow, arow);
  /* the float rows too when sgemm may run (yslot is free until down writes it) */
  const int want_x = m->mm_mode == ENG__MM_SGEMM && T > 1;
  if (want_x)
    for (int i = 0; i < T * K; i++) memcpy(sc->yslot + (size_t)i * D, sc->h + (size_t)sc->tok_of[i] * D, (size_t)D * sizeof(float));
  /* gate and up, fused, over every used expert in one run */
  mm_seg seg[MAX_SEGS];
  int nseg = 0;
  for (int e = 0; e < E; e++) {
    int cnt = sc->exp_off[e + 1] - sc->exp_off[e];
    if (!cnt) continue;
    size_t o = (size_t)sc->exp_off[e];
    seg[nseg++] = (mm_seg){&L->gate_exps, (uint64_t)e, sc->actq_ff + o * arow, arow, cnt, sc->ff_g + o * (size_t)ff,
                           (size_t)ff, &L->up_exps, sc->ff_u + o * (size_t)ff, want_x ? sc->yslot + o * (size_t)D : NULL,
                           (size_t)D, 0, NULL, 0, 0};
    if (nseg == MAX_SEGS) {
      mm_go(m, seg, nseg);
      nseg = 0;
    }
  }
  if (nseg) mm_go(m, seg, nseg);
  /* down over every used expert in one run */
  const size_t drow = quantize_rows(m, L->down_exps.type, sc->ff_g, (size_t)ff, T * K, ff, sc->actq_ff);
  nseg = 0;
  for (int e = 0; e < E; e++) {
    int cnt = sc->exp_off[e + 1] - sc->exp_off[e];
    if (!cnt) continue;
    size_t o = (size_t)sc->exp_off[e];
    seg[nseg++] = (mm_seg){&L->down_exps, (uint64_t)e, sc->actq_ff + o * drow, drow, cnt, sc->yslot + o * (size_t)D,
                           (size_t)D, NULL, NULL, sc->ff_g + o * (size_t)ff, (size_t)ff, 0, NULL, 0, 0};
    if (nseg == MAX_SEGS) {
      mm_go(m, seg, nseg);
      nseg = 0;
    }
  }
  if (nseg) mm_go(m, seg, nseg);
  /* weighted sum in selection order */
  for (int t = 0; t < T; t++) {
    float *out = sc->ff_out + (size_t)t * D;
    for (int k = 0; k < K; k++) {
      const float *y = sc->yslot + (size_t)sc->pair_of[t * K + k] * D;
      const float w = sc->selw[t * K + k];
      if (k == 0)
        for (int i = 0; i < D; i++) out[i] = y[i] * w;
      else
        m->k->op.axpy(out, w, y, D);
    }
  }
}

static void dense_ffn(eng_model *m, uint32_t il, int T) {
  eng__scratch *sc = &m->s;
  const eng__layer *L = &m->layers[il];
  const size_t D = m->hp.n_embd, ff = m->hp.n_ff;
  size_t arow = quantize_rows(m, L->ffn_gate.type, sc->h, D, T, (int64_t)D, sc->actq[0]);
  mm_seg sg = {&L->ffn_gate, 0, sc->actq[0], arow, T, sc->ff_g, ff, &L->ffn_up, sc->ff_u, sc->h, D, 0, NULL, 0, 0};
  mm_go(m, &sg, 1);
  matmul(m, &L->ffn_down, 0, sc->ff_g, ff, T, sc->ff_out, D);
}

/* ---- the pass ---------------------------------------------------------------------------- */

/* cos/sin pairs for one position, as ggml_rope_cache_init with rope_yarn. */
static void rope_cache(const eng_model *m, float pos, float *cache) {
  const int hd = (int)m->hp.head_dim;
  float theta = pos;
  for (int i0 = 0; i0 < hd; i0 += 2) {
    float theta_interp = m->freq_scale * theta;
    float th = theta_interp, mscale = m->attn_factor;
    if (m->ext_factor != 0.0f) {
      float y = (i0 / 2 - m->corr_dims[0]) / fmaxf(0.001f, m->corr_dims[1] - m->corr_dims[0]);
      float ramp = (1 - fminf(1, fmaxf(0, y))) * m->ext_factor;
      th = theta_interp * (1 - ramp) + theta * ramp;
      mscale *= 1.0f + 0.1f * logf(1.0f / m->freq_scale);
    }
    cache[i0] = cosf(th) * mscale;
    cache[i0 + 1] = sinf(th) * mscale;
    theta *= m->theta_scale;
  }
}

int eng__forward(eng_session *s, const int32_t *tokens, int T, size_t pos0, float *logits, int all, eng_error *err) {
  eng_model *m = s->m;
  const eng_hparams *hp = &m->hp;
  eng__scratch *sc = &m->s;
  const eng__ops *op = &m->k->op;
  if (T <= 0 || T > (int)ENG__BATCH) return eng__err(err, ENG_EARG, "batch of %d tokens (1..%u)", T, ENG__BATCH);
  if (pos0 + (size_t)T > s->n_ctx)
    return eng__err(err, ENG_ECONTEXT, "the context window is full (%zu + %d tokens > %u)", pos0, T, s->n_ctx);
  for (int t = 0; t < T; t++)
    if (tokens[t] < 0 || (uint32_t)tokens[t] >= hp->n_vocab)
      return eng__err(err, ENG_ETOKEN, "token id %d is out of range (vocabulary of %u)", tokens[t], hp->n_vocab);
  int rc = eng__kv_reserve(s, pos0 + (size_t)T, err);
  if (rc) return rc;
  const size_t D = hp->n_embd, hd = hp->head_dim, nh = hp->n_head, nkvh = hp->n_head_kv;
  const size_t nq = nh * hd, nkv = nkvh * hd;
  const eng__type_traits *et = &m->k->t[m->tok_embd.type];
  for (int t = 0; t < T; t++) {
    et->to_float(eng__w_row(&m->tok_embd, 0, (uint64_t)tokens[t]), sc->x + t * D, (int64_t)D);
    rope_cache(m, (float)(pos0 + (size_t)t), sc->rope + t * hd);
  }
  const float kq_scale = 1.0f / sqrtf((float)hd);
  for (uint32_t il = 0; il < hp->n_layer; il++) {
    const eng__layer *L = &m->layers[il];
    for (int t = 0; t < T; t++) op->rmsnorm(sc->x + t * D, L->attn_norm, sc->h + t * D, (int64_t)D, hp->rms_eps);
    const eng__w *qkv[3] = {&L->wq, &L->wk, &L->wv};
    float *const outs[3] = {sc->q, sc->k, sc->v};
    const size_t strides[3] = {nq, nkv, nkv};
    matmul_multi(m, qkv, outs, strides, 3, sc->h, D, T);
    for (int t = 0; t < T; t++) {
      for (size_t h = 0; h < nh; h++) {
        float *q = sc->q + t * nq + h * hd;
        op->rmsnorm(q, L->q_norm, q, (int64_t)hd, hp->rms_eps);
        op->rope(q, sc->rope + t * hd, (int)hd);
      }
      for (size_t h = 0; h < nkvh; h++) {
        float *k = sc->k + t * nkv + h * hd;
        op->rmsnorm(k, L->k_norm, k, (int64_t)hd, hp->rms_eps);
        op->rope(k, sc->rope + t * hd, (int)hd);
      }
      for (size_t g = 0; g < nkvh; g++) {
        float *kt = eng__kv_kt(s, il, (uint32_t)g, pos0 + (size_t)t);
        const float *kv = sc->k + t * nkv + g * hd;
        for (size_t d = 0; d < hd; d++) kt[d * ENG__KV_CHUNK] = kv[d];
      }
      memcpy(eng__kv_v(s, il, pos0 + (size_t)t), sc->v + t * nkv, nkv * sizeof(float));
    }
    attn_task at = {s, il, pos0, T, kq_scale};
    eng__pool_run(m->pool, attn_run, &at, (T + (int)ENG__ATT_QBLOCK - 1) / (int)ENG__ATT_QBLOCK * (int)nkvh);
    matmul(m, &L->wo, 0, sc->att, nq, T, sc->o, D);
    op->add(sc->x, sc->o, (int64_t)((size_t)T * D));
    for (int t = 0; t < T; t++) op->rmsnorm(sc->x + t * D, L->ffn_norm, sc->h + t * D, (int64_t)D, hp->rms_eps);
    if (m->moe) moe(s, il, T, pos0);
    else dense_ffn(m, il, T);
    op->add(sc->x, sc->ff_out, (int64_t)((size_t)T * D));
  }
  if (logits) {
    int first = all ? 0 : T - 1;
    for (int t = first; t < T; t++) op->rmsnorm(sc->x + t * D, m->output_norm, sc->h + t * D, (int64_t)D, hp->rms_eps);
    matmul(m, &m->output, 0, sc->h + (size_t)first * D, D, T - first, logits, hp->n_vocab);
  }
  return ENG_OK;
}
