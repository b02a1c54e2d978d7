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
 * softmax with a double sum, expert outputs weighted then added in selection order.
 *
 * Parallelism: matrix products split their output rows over the model's thread pool;
 * attention splits (token, head) pairs. Memory: only the model's scratch and the session's
 * cache are touched — nothing is allocated here.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "engine/internal.h"
#include "engine/limits.h"
#include "engine/model.h"

/* ---- matrix products ------------------------------------------------------------------- */

typedef struct mm_task {
  eng__vec_dot_fn dot;
  const uint8_t *w;
  size_t wrow;
  const uint8_t *a;
  size_t arow;
  int T;
  int64_t n, rows, chunk;
  float *y;
  size_t ystride;
} mm_task;

static void mm_run(void *ctx, int task, int worker) {
  (void)worker;
  const mm_task *c = ctx;
  int64_t r0 = (int64_t)task * c->chunk, r1 = r0 + c->chunk;
  if (r1 > c->rows) r1 = c->rows;
  for (int64_t r = r0; r < r1; r++) {
    const uint8_t *wr = c->w + (size_t)r * c->wrow;
    for (int t = 0; t < c->T; t++) c->dot(c->n, &c->y[(size_t)t * c->ystride + (size_t)r], wr, c->a + (size_t)t * c->arow);
  }
}

/* Y[t][r] = W_e[r] · X[t] for T rows of X (width W->ne0), all W->ne1 output rows. */
static void matmul(eng_model *m, const eng__w *W, uint64_t e, const float *X, size_t xstride, int T, float *Y,
                   size_t ystride) {
  const eng__type_traits *tt = &m->k->t[W->type];
  const eng__type_traits *vt = &m->k->t[tt->vec_dot_type];
  const size_t arow = eng__ggml_row_size(tt->vec_dot_type, W->ne0);
  for (int t = 0; t < T; t++) vt->from_float(X + (size_t)t * xstride, m->s.actq + (size_t)t * arow, (int64_t)W->ne0);
  int nth = eng__pool_size(m->pool);
  int64_t rows = (int64_t)W->ne1;
  int64_t chunk = rows / (nth * 4);
  if (chunk < 4) chunk = 4;
  mm_task c = {tt->vec_dot, eng__w_row(W, e, 0), W->row_bytes, m->s.actq, arow, T, (int64_t)W->ne0, rows, chunk, Y, ystride};
  eng__pool_run(m->pool, mm_run, &c, (int)((rows + chunk - 1) / chunk));
}

/* ---- elementwise ------------------------------------------------------------------------ */

/* ggml_rms_norm then multiply by the weight. */
static void rmsnorm(const float *x, const float *w, float *y, int64_t n, float eps) {
  double sum = 0;
  for (int64_t i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
  const float mean = (float)(sum / (double)n);
  const float scale = 1.0f / sqrtf(mean + eps);
  for (int64_t i = 0; i < n; i++) y[i] = (x[i] * scale) * w[i];
}

/* In-place softmax with a double sum (ggml_soft_max). */
static void softmax(float *x, int64_t n) {
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

/* NEOX rotation: pairs (i, i + hd/2). */
static void rope_apply(float *v, const float *cache, int hd) {
  const int half = hd / 2;
  for (int i = 0; i < half; i++) {
    const float c = cache[2 * i], s = cache[2 * i + 1];
    const float x0 = v[i], x1 = v[i + half];
    v[i] = x0 * c - x1 * s;
    v[i + half] = x0 * s + x1 * c;
  }
}

/* ---- attention ------------------------------------------------------------------------- */

typedef struct attn_task {
  eng_session *s;
  uint32_t layer;
  size_t pos0;
  float scale;
} attn_task;

static void attn_run(void *ctx, int task, int worker) {
  const attn_task *c = ctx;
  eng_session *s = c->s;
  const eng_model *m = s->m;
  const int nh = (int)m->hp.n_head, hd = (int)m->hp.head_dim, group = (int)(m->hp.n_head / m->hp.n_head_kv);
  const int t = task / nh, h = task % nh, kvh = h / group;
  const size_t pos = c->pos0 + (size_t)t, nq = (size_t)nh * hd;
  const float *q = m->s.q + (size_t)t * nq + (size_t)h * hd;
  const size_t layer_off = (size_t)c->layer * s->n_ctx * s->kv_dim + (size_t)kvh * hd;
  const float *K = s->kc + layer_off, *V = s->vc + layer_off;
  float *sc = s->att + (size_t)worker * s->n_ctx;
  for (size_t j = 0; j <= pos; j++) {
    const float *kj = K + j * s->kv_dim;
    double d = 0;
    for (int i = 0; i < hd; i++) d += (double)(q[i] * kj[i]);
    sc[j] = (float)d * c->scale;
  }
  softmax(sc, (int64_t)pos + 1);
  double acc[ENG__MAX_HEAD_DIM];
  for (int i = 0; i < hd; i++) acc[i] = 0;
  for (size_t j = 0; j <= pos; j++) {
    const float *vj = V + j * s->kv_dim;
    const float w = sc[j];
    for (int i = 0; i < hd; i++) acc[i] += (double)(w * vj[i]);
  }
  float *out = m->s.att + (size_t)t * nq + (size_t)h * hd;
  for (int i = 0; i < hd; i++) out[i] = (float)acc[i];
}

/* ---- feed-forward ---------------------------------------------------------------------- */

static inline float silu(float x) { return x / (1.0f + expf(-x)); }

static void moe(eng_session *s, uint32_t il, int T, size_t pos0) {
  eng_model *m = s->m;
  eng__scratch *sc = &m->s;
  const eng__layer *L = &m->layers[il];
  const int E = (int)m->hp.n_expert, K = (int)m->hp.n_expert_used, D = (int)m->hp.n_embd, ff = (int)m->hp.n_ff_exp;
  matmul(m, &L->gate_inp, 0, sc->h, (size_t)D, T, sc->router, (size_t)E);
  for (int t = 0; t < T; t++) {
    float *p = sc->router + (size_t)t * E;
    softmax(p, E);
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
  /* group (token, slot) pairs by expert, run each used expert once over its tokens */
  for (int e = 0; e < E; e++) {
    int cnt = 0;
    for (int t = 0; t < T; t++)
      for (int k = 0; k < K; k++)
        if (sc->sel[t * K + k] == e) {
          sc->tok_of[cnt] = t;
          sc->slot_of[cnt] = k;
          memcpy(sc->ff_in + (size_t)cnt * D, sc->h + (size_t)t * D, (size_t)D * sizeof(float));
          cnt++;
        }
    if (!cnt) continue;
    matmul(m, &L->gate_exps, (uint64_t)e, sc->ff_in, (size_t)D, cnt, sc->ff_g, (size_t)ff);
    matmul(m, &L->up_exps, (uint64_t)e, sc->ff_in, (size_t)D, cnt, sc->ff_u, (size_t)ff);
    for (size_t i = 0; i < (size_t)cnt * ff; i++) sc->ff_g[i] = silu(sc->ff_g[i]) * sc->ff_u[i];
    matmul(m, &L->down_exps, (uint64_t)e, sc->ff_g, (size_t)ff, cnt, sc->o, (size_t)D);
    for (int i = 0; i < cnt; i++)
      memcpy(sc->yslot + ((size_t)sc->tok_of[i] * K + (size_t)sc->slot_of[i]) * D, sc->o + (size_t)i * D,
             (size_t)D * sizeof(float));
  }
  for (int t = 0; t < T; t++) {
    float *out = sc->ff_out + (size_t)t * D;
    for (int k = 0; k < K; k++) {
      const float *y = sc->yslot + ((size_t)t * K + (size_t)k) * D;
      const float w = sc->selw[t * K + k];
      if (k == 0)
        for (int i = 0; i < D; i++) out[i] = y[i] * w;
      else
        for (int i = 0; i < D; i++) out[i] += y[i] * w;
    }
  }
}

static void dense_ffn(eng_model *m, uint32_t il, int T) {
  eng__scratch *sc = &m->s;
  const eng__layer *L = &m->layers[il];
  const size_t D = m->hp.n_embd, ff = m->hp.n_ff;
  matmul(m, &L->ffn_gate, 0, sc->h, D, T, sc->ff_g, ff);
  matmul(m, &L->ffn_up, 0, sc->h, D, T, sc->ff_u, ff);
  for (size_t i = 0; i < (size_t)T * ff; i++) sc->ff_g[i] = silu(sc->ff_g[i]) * sc->ff_u[i];
  matmul(m, &L->ffn_down, 0, sc->ff_g, ff, T, sc->ff_out, D);
}

/* ---- the pass ---------------------------------------------------------------------------- */

int eng__forward(eng_session *s, const int32_t *tokens, int T, size_t pos0, float *logits, int all, eng_error *err) {
  eng_model *m = s->m;
  const eng_hparams *hp = &m->hp;
  eng__scratch *sc = &m->s;
  if (T <= 0 || T > (int)ENG__BATCH) return eng__err(err, ENG_EARG, "batch of %d tokens (1..%u)", T, ENG__BATCH);
  if (pos0 + (size_t)T > s->n_ctx)
    return eng__err(err, ENG_ECONTEXT, "the context window is full (%zu + %d tokens > %u)", pos0, T, s->n_ctx);
  for (int t = 0; t < T; t++)
    if (tokens[t] < 0 || (uint32_t)tokens[t] >= hp->n_vocab)
      return eng__err(err, ENG_ETOKEN, "token id %d is out of range (vocabulary of %u)", tokens[t], hp->n_vocab);
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
    for (int t = 0; t < T; t++) rmsnorm(sc->x + t * D, L->attn_norm, sc->h + t * D, (int64_t)D, hp->rms_eps);
    matmul(m, &L->wq, 0, sc->h, D, T, sc->q, nq);
    matmul(m, &L->wk, 0, sc->h, D, T, sc->k, nkv);
    matmul(m, &L->wv, 0, sc->h, D, T, sc->v, nkv);
    for (int t = 0; t < T; t++) {
      for (size_t h = 0; h < nh; h++) {
        float *q = sc->q + t * nq + h * hd;
        rmsnorm(q, L->q_norm, q, (int64_t)hd, hp->rms_eps);
        rope_apply(q, sc->rope + t * hd, (int)hd);
      }
      for (size_t h = 0; h < nkvh; h++) {
        float *k = sc->k + t * nkv + h * hd;
        rmsnorm(k, L->k_norm, k, (int64_t)hd, hp->rms_eps);
        rope_apply(k, sc->rope + t * hd, (int)hd);
      }
      const size_t off = ((size_t)il * s->n_ctx + pos0 + (size_t)t) * s->kv_dim;
      memcpy(s->kc + off, sc->k + t * nkv, nkv * sizeof(float));
      memcpy(s->vc + off, sc->v + t * nkv, nkv * sizeof(float));
    }
    attn_task at = {s, il, pos0, kq_scale};
    eng__pool_run(m->pool, attn_run, &at, T * (int)nh);
    matmul(m, &L->wo, 0, sc->att, nq, T, sc->o, D);
    for (size_t i = 0; i < (size_t)T * D; i++) sc->x[i] += sc->o[i];
    for (int t = 0; t < T; t++) rmsnorm(sc->x + t * D, L->ffn_norm, sc->h + t * D, (int64_t)D, hp->rms_eps);
    if (m->moe) moe(s, il, T, pos0);
    else dense_ffn(m, il, T);
    for (size_t i = 0; i < (size_t)T * D; i++) sc->x[i] += sc->ff_out[i];
  }
  if (logits) {
    int first = all ? 0 : T - 1;
    for (int t = first; t < T; t++) rmsnorm(sc->x + t * D, m->output_norm, sc->h + t * D, (int64_t)D, hp->rms_eps);
    matmul(m, &m->output, 0, sc->h + (size_t)first * D, D, T - first, logits, hp->n_vocab);
  }
  return ENG_OK;
}
