/* model.c — opening a Qwen3 / Qwen3-MoE GGUF: hyper-parameters, tensor binding and
 * validation, the tokenizer, the thread pool and the forward-pass scratch.
 *
 * Everything the forward pass will touch is checked here, once: each required tensor
 * exists, has exactly the expected shape and a type the kernels support, and norms are
 * F32. After eng_model_open succeeds the forward pass needs no further checks.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>

#include "engine/internal.h"
#include "engine/limits.h"
#include "engine/model.h"

/* ---- hyper-parameters ------------------------------------------------------------------ */

typedef struct hp_ctx {
  const eng__gguf *g;
  const char *arch;
  eng_error *err;
  int strict;   /* missing required keys are errors */
} hp_ctx;

/* arch-prefixed u32: 1 found, 0 absent (error when required and strict), <0 error */
static int hp_u32(hp_ctx *c, const char *suffix, uint32_t *out, int required, uint32_t lo, uint32_t hi) {
  char key[128];
  snprintf(key, sizeof key, "%s.%s", c->arch, suffix);
  int rc = eng__gguf_get_u32(c->g, key, out, c->err);
  if (rc < 0) return rc;
  if (rc == 0) {
    if (required && c->strict)
      return eng__err(c->err, ENG_EFORMAT, "%s: required metadata key '%s' is missing", eng__gguf_path(c->g), key);
    return 0;
  }
  if (*out < lo || *out > hi)
    return eng__err(c->err, ENG_EFORMAT, "%s: metadata '%s' = %u is out of range (%u..%u)", eng__gguf_path(c->g), key,
                    *out, lo, hi);
  return 1;
}

static int hp_f32(hp_ctx *c, const char *suffix, float *out) {
  char key[128];
  snprintf(key, sizeof key, "%s.%s", c->arch, suffix);
  return eng__gguf_get_f32(c->g, key, out, c->err);
}

static int load_hparams(eng_model *m, eng_error *err) {
  eng_hparams *hp = &m->hp;
  const eng__gguf *g = m->g;
  int rc = eng__gguf_get_str_buf(g, "general.architecture", hp->arch, sizeof hp->arch, err);
  if (rc < 0) return rc;
  if (rc == 0) return eng__err(err, ENG_EFORMAT, "%s: metadata key 'general.architecture' is missing", eng__gguf_path(g));
  if (strcmp(hp->arch, "qwen3moe") != 0 && strcmp(hp->arch, "qwen3") != 0 && !m->vocab_only)
    return eng__err(err, ENG_EUNSUPPORTED, "%s: architecture '%s' is not supported (this engine runs qwen3moe and qwen3)",
                    eng__gguf_path(g), hp->arch);
  m->moe = strcmp(hp->arch, "qwen3moe") == 0;
  if ((rc = eng__gguf_get_str_buf(g, "general.name", hp->name, sizeof hp->name, err)) < 0) return rc;
  hp_ctx c = {g, hp->arch, err, !m->vocab_only};
  if ((rc = hp_u32(&c, "block_count", &hp->n_layer, 1, 1, ENG__MAX_LAYERS)) < 0) return rc;
  if ((rc = hp_u32(&c, "embedding_length", &hp->n_embd, 1, 1, ENG__MAX_EMBD)) < 0) return rc;
  if ((rc = hp_u32(&c, "attention.head_count", &hp->n_head, 1, 1, ENG__MAX_HEADS)) < 0) return rc;
  hp->n_head_kv = hp->n_head;
  if ((rc = hp_u32(&c, "attention.head_count_kv", &hp->n_head_kv, 0, 1, ENG__MAX_HEADS)) < 0) return rc;
  hp->n_ctx_train = 0;
  if ((rc = hp_u32(&c, "context_length", &hp->n_ctx_train, 0, 1, UINT32_MAX)) < 0) return rc;
  hp->head_dim = hp->n_head ? hp->n_embd / hp->n_head : 0;
  if ((rc = hp_u32(&c, "attention.key_length", &hp->head_dim, 0, 2, ENG__MAX_HEAD_DIM)) < 0) return rc;
  uint32_t vlen = hp->head_dim;
  if ((rc = hp_u32(&c, "attention.value_length", &vlen, 0, 1, ENG__MAX_HEAD_DIM)) < 0) return rc;
  uint32_t n_rot = hp->head_dim;
  if ((rc = hp_u32(&c, "rope.dimension_count", &n_rot, 0, 1, ENG__MAX_HEAD_DIM)) < 0) return rc;
  hp->rope_base = 10000.0f;
  if ((rc = hp_f32(&c, "rope.freq_base", &hp->rope_base)) < 0) return rc;
  hp->rms_eps = 1e-6f;
  if ((rc = hp_f32(&c, "attention.layer_norm_rms_epsilon", &hp->rms_eps)) < 0) return rc;
  if (m->moe) {
    if ((rc = hp_u32(&c, "expert_count", &hp->n_expert, 1, 1, ENG__MAX_EXPERTS)) < 0) return rc;
    if ((rc = hp_u32(&c, "expert_used_count", &hp->n_expert_used, 1, 1, ENG__MAX_EXPERTS)) < 0) return rc;
    /* never feed_forward_length: that is the (unused) dense width */
    if ((rc = hp_u32(&c, "expert_feed_forward_length", &hp->n_ff_exp, 1, 1, ENG__MAX_FF)) < 0) return rc;
    if ((rc = hp_u32(&c, "feed_forward_length", &hp->n_ff, 0, 0, UINT32_MAX)) < 0) return rc;
  } else {
    if ((rc = hp_u32(&c, "feed_forward_length", &hp->n_ff, 1, 1, ENG__MAX_FF)) < 0) return rc;
  }
  /* RoPE scaling */
  hp->rope_scale = 1.0f;
  hp->rope_orig_ctx = hp->n_ctx_train;
  char key[128], stype[32] = "";
  snprintf(key, sizeof key, "%s.rope.scaling.type", hp->arch);
  if ((rc = eng__gguf_get_str_buf(g, key, stype, sizeof stype, err)) < 0) return rc;
  float factor = 0;
  if ((rc = hp_f32(&c, "rope.scaling.factor", &factor)) < 0) return rc;
  if ((rc = hp_u32(&c, "rope.scaling.original_context_length", &hp->rope_orig_ctx, 0, 1, UINT32_MAX)) < 0) return rc;
  if (stype[0] && strcmp(stype, "none") != 0 && strcmp(stype, "yarn") != 0) {
    if (!m->vocab_only)
      return eng__err(err, ENG_EUNSUPPORTED, "%s: rope scaling '%s' is not supported (none, yarn)", eng__gguf_path(g), stype);
  }
  if (strcmp(stype, "yarn") == 0 && factor > 0 && factor != 1.0f) {
    hp->rope_yarn = 1;
    hp->rope_scale = factor;
  }
  hp->bos_id = hp->eos_id = hp->pad_id = -1;
  uint32_t v;
  if (eng__gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &v, NULL) == 1 && v <= INT32_MAX) hp->bos_id = (int32_t)v;
  if (eng__gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &v, NULL) == 1 && v <= INT32_MAX) hp->eos_id = (int32_t)v;
  if (eng__gguf_get_u32(g, "tokenizer.ggml.padding_token_id", &v, NULL) == 1 && v <= INT32_MAX) hp->pad_id = (int32_t)v;
  if (m->vocab_only) return 0;

  /* consistency */
  const char *p = eng__gguf_path(g);
  if (hp->n_head % hp->n_head_kv)
    return eng__err(err, ENG_EFORMAT, "%s: head_count %u is not a multiple of head_count_kv %u", p, hp->n_head, hp->n_head_kv);
  if (hp->head_dim % 2)
    return eng__err(err, ENG_EFORMAT, "%s: attention.key_length %u is odd (RoPE rotates pairs)", p, hp->head_dim);
  if (vlen != hp->head_dim)
    return eng__err(err, ENG_EUNSUPPORTED, "%s: value_length %u differs from key_length %u", p, vlen, hp->head_dim);
  if (n_rot != hp->head_dim)
    return eng__err(err, ENG_EUNSUPPORTED, "%s: partial RoPE (dimension_count %u of %u) is not supported", p, n_rot,
                    hp->head_dim);
  if (m->moe && hp->n_expert_used > hp->n_expert)
    return eng__err(err, ENG_EFORMAT, "%s: expert_used_count %u exceeds expert_count %u", p, hp->n_expert_used, hp->n_expert);
  if (!(hp->rms_eps > 0) || !(hp->rope_base > 0))
    return eng__err(err, ENG_EFORMAT, "%s: rms epsilon and rope.freq_base must be positive", p);
  if (hp->n_ctx_train == 0) hp->n_ctx_train = 4096;
  if (hp->rope_orig_ctx == 0) hp->rope_orig_ctx = hp->n_ctx_train;
  return 0;
}

/* ---- tensors ----------------------------------------------------------------------------- */

static int type_error(const eng__gguf *g, const eng__gguf_tensor *t, eng_error *err) {
  const eng__ggml_type_info *ti = eng__ggml_type(t->type);
  return eng__err(err, ENG_EUNSUPPORTED,
                  "%s: tensor '%s' has type %s, which this engine does not support (supported: F32, F16, BF16, Q8_0, "
                  "Q4_0, Q4_K, Q5_K, Q6_K)", eng__gguf_path(g), t->name, ti ? ti->name : "?");
}

static void shape_str(const uint64_t *ne, uint32_t n, char *buf, size_t len) {
  size_t w = 0;
  w += (size_t)snprintf(buf + w, len - w, "[");
  for (uint32_t i = 0; i < n && w < len; i++)
    w += (size_t)snprintf(buf + w, len - w, "%s%" PRIu64, i ? ", " : "", ne[i]);
  if (w < len) snprintf(buf + w, len - w, "]");
}

/* Find `name`, check its shape (n dims, ne) and type. */
static int bind(eng_model *m, const char *name, uint32_t n, uint64_t ne0, uint64_t ne1, uint64_t ne2, int optional,
                const eng__gguf_tensor **out, eng_error *err) {
  const eng__gguf_tensor *t = eng__gguf_find_tensor(m->g, name);
  *out = t;
  if (!t) {
    if (optional) return 0;
    return eng__err(err, ENG_EFORMAT, "%s: required tensor '%s' is missing", eng__gguf_path(m->g), name);
  }
  uint64_t want[4] = {ne0, ne1, ne2, 1};
  int ok = 1;
  for (uint32_t d = 0; d < 4; d++)
    if (t->ne[d] != (d < n ? want[d] : 1)) ok = 0;
  if (!ok) {
    char got[96], exp[96];
    shape_str(t->ne, t->n_dims, got, sizeof got);
    shape_str(want, n, exp, sizeof exp);
    return eng__err(err, ENG_EFORMAT, "%s: tensor '%s' has shape %s, expected %s", eng__gguf_path(m->g), name, got, exp);
  }
  if (!eng__type_supported(t->type)) return type_error(m->g, t, err);
  return 1;
}

static int bind_w(eng_model *m, eng__w *w, const char *name, uint64_t in, uint64_t out, uint64_t ne2, int optional,
                  eng_error *err) {
  const eng__gguf_tensor *t;
  int rc = bind(m, name, ne2 > 1 ? 3 : 2, in, out, ne2, optional, &t, err);
  if (rc <= 0) return rc;
  w->name = t->name;
  w->data = t->data;
  w->type = t->type;
  w->ne0 = in;
  w->ne1 = out;
  w->ne2 = ne2;
  w->row_bytes = eng__ggml_row_size(t->type, in);
  if (w->row_bytes == 0)
    return eng__err(err, ENG_EFORMAT, "%s: tensor '%s': width %" PRIu64 " is not a multiple of its block size",
                    eng__gguf_path(m->g), name, in);
  return 1;
}

static int bind_norm(eng_model *m, const float **out, const char *name, uint64_t n, eng_error *err) {
  const eng__gguf_tensor *t;
  int rc = bind(m, name, 1, n, 1, 1, 0, &t, err);
  if (rc <= 0) return rc;
  if (t->type != ENG__T_F32)
    return eng__err(err, ENG_EUNSUPPORTED, "%s: norm tensor '%s' must be F32, it is %s", eng__gguf_path(m->g), name,
                    eng__ggml_type(t->type)->name);
  *out = t->data;
  return 1;
}

static int load_tensors(eng_model *m, eng_error *err) {
  eng_hparams *hp = &m->hp;
  const uint64_t D = hp->n_embd, hd = hp->head_dim, nq = (uint64_t)hp->n_head * hd, nkv = (uint64_t)hp->n_head_kv * hd;
  const eng__gguf_tensor *te = eng__gguf_find_tensor(m->g, "token_embd.weight");
  if (!te) return eng__err(err, ENG_EFORMAT, "%s: required tensor 'token_embd.weight' is missing", eng__gguf_path(m->g));
  if (te->n_dims != 2 || te->ne[1] < 1 || te->ne[1] > ENG__MAX_VOCAB)
    return eng__err(err, ENG_EFORMAT, "%s: tensor 'token_embd.weight' must be [%" PRIu64 ", n_vocab ≤ %u]",
                    eng__gguf_path(m->g), D, ENG__MAX_VOCAB);
  hp->n_vocab = (uint32_t)te->ne[1];
  int rc;
  if ((rc = bind_w(m, &m->tok_embd, "token_embd.weight", D, hp->n_vocab, 1, 0, err)) < 0) return rc;
  if ((rc = bind_w(m, &m->output, "output.weight", D, hp->n_vocab, 1, 1, err)) < 0) return rc;
  if (rc == 0) {
    m->output = m->tok_embd;
    hp->tied_output = 1;
  }
  if ((rc = bind_norm(m, &m->output_norm, "output_norm.weight", D, err)) < 0) return rc;
  m->layers = calloc(hp->n_layer, sizeof *m->layers);
  if (!m->layers) return eng__err(err, ENG_ENOMEM, "out of memory");
  for (uint32_t il = 0; il < hp->n_layer; il++) {
    eng__layer *L = &m->layers[il];
    char n[96];
#define NAME(s) (snprintf(n, sizeof n, "blk.%u." s ".weight", il), n)
    if ((rc = bind_norm(m, &L->attn_norm, NAME("attn_norm"), D, err)) < 0) return rc;
    if ((rc = bind_norm(m, &L->q_norm, NAME("attn_q_norm"), hd, err)) < 0) return rc;
    if ((rc = bind_norm(m, &L->k_norm, NAME("attn_k_norm"), hd, err)) < 0) return rc;
    if ((rc = bind_norm(m, &L->ffn_norm, NAME("ffn_norm"), D, err)) < 0) return rc;
    if ((rc = bind_w(m, &L->wq, NAME("attn_q"), D, nq, 1, 0, err)) < 0) return rc;
    if ((rc = bind_w(m, &L->wk, NAME("attn_k"), D, nkv, 1, 0, err)) < 0) return rc;
    if ((rc = bind_w(m, &L->wv, NAME("attn_v"), D, nkv, 1, 0, err)) < 0) return rc;
    if ((rc = bind_w(m, &L->wo, NAME("attn_output"), nq, D, 1, 0, err)) < 0) return rc;
    if (m->moe) {
      const uint64_t E = hp->n_expert, ff = hp->n_ff_exp;
      if ((rc = bind_w(m, &L->gate_inp, NAME("ffn_gate_inp"), D, E, 1, 0, err)) < 0) return rc;
      if (E == 1) {
        /* a one-expert stack has 2-D ne in some writers: accept [in, out] */
        return eng__err(err, ENG_EUNSUPPORTED, "%s: a MoE model with one expert is not supported", eng__gguf_path(m->g));
      }
      if ((rc = bind_w(m, &L->gate_exps, NAME("ffn_gate_exps"), D, ff, E, 0, err)) < 0) return rc;
      if ((rc = bind_w(m, &L->up_exps, NAME("ffn_up_exps"), D, ff, E, 0, err)) < 0) return rc;
      if ((rc = bind_w(m, &L->down_exps, NAME("ffn_down_exps"), ff, D, E, 0, err)) < 0) return rc;
    } else {
      const uint64_t ff = hp->n_ff;
      if ((rc = bind_w(m, &L->ffn_gate, NAME("ffn_gate"), D, ff, 1, 0, err)) < 0) return rc;
      if ((rc = bind_w(m, &L->ffn_up, NAME("ffn_up"), D, ff, 1, 0, err)) < 0) return rc;
      if ((rc = bind_w(m, &L->ffn_down, NAME("ffn_down"), ff, D, 1, 0, err)) < 0) return rc;
    }
#undef NAME
  }
  return 0;
}

/* ---- RoPE parameters (ggml_rope_yarn_corr_dims) ----------------------------------------- */

static float corr_dim(int n_dims, int n_ctx_orig, float n_rot, float base) {
  return n_dims * logf(n_ctx_orig / (n_rot * 2 * (float)M_PI)) / (2 * logf(base));
}

static void setup_rope(eng_model *m) {
  const eng_hparams *hp = &m->hp;
  m->theta_scale = powf(hp->rope_base, -2.0f / (float)hp->head_dim);
  m->freq_scale = hp->rope_yarn ? 1.0f / hp->rope_scale : 1.0f;
  m->ext_factor = hp->rope_yarn ? 1.0f : 0.0f;
  m->attn_factor = 1.0f;
  float beta_fast = 32.0f, beta_slow = 1.0f;
  char key[128];
  snprintf(key, sizeof key, "%s.rope.scaling.yarn_beta_fast", hp->arch);
  eng__gguf_get_f32(m->g, key, &beta_fast, NULL);
  snprintf(key, sizeof key, "%s.rope.scaling.yarn_beta_slow", hp->arch);
  eng__gguf_get_f32(m->g, key, &beta_slow, NULL);
  float start = floorf(corr_dim((int)hp->head_dim, (int)hp->rope_orig_ctx, beta_fast, hp->rope_base));
  float end = ceilf(corr_dim((int)hp->head_dim, (int)hp->rope_orig_ctx, beta_slow, hp->rope_base));
  m->corr_dims[0] = start > 0 ? start : 0;
  m->corr_dims[1] = end < (float)hp->head_dim - 1 ? end : (float)hp->head_dim - 1;
}

/* ---- scratch ------------------------------------------------------------------------------ */

static int alloc_scratch(eng_model *m, eng_error *err) {
  const eng_hparams *hp = &m->hp;
  const size_t B = ENG__BATCH, D = hp->n_embd, nq = (size_t)hp->n_head * hp->head_dim;
  const size_t nkv = (size_t)hp->n_head_kv * hp->head_dim;
  const size_t ff = m->moe ? hp->n_ff_exp : hp->n_ff;
  const size_t nu = m->moe ? hp->n_expert_used : 1, E = m->moe ? hp->n_expert : 1;
  const size_t nth = (size_t)eng__pool_size(m->pool), group = hp->n_head / hp->n_head_kv;
  size_t max_in = D > nq ? D : nq;
  if (ff > max_in) max_in = ff;
  m->max_in = max_in;
  /* widest activation row in any vec_dot format: F32 is the widest per value (4 bytes);
   * Q8_K/Q8_0 blocks are below 4 bytes per value */
  size_t act_row = max_in * 4 + 292, ff_row = (D > ff ? D : ff) * 4 + 292;
  eng__scratch *s = &m->s;
  s->x = calloc(B * D, sizeof(float));
  s->h = calloc(B * D, sizeof(float));
  s->o = calloc(B * D, sizeof(float));
  s->q = calloc(B * nq, sizeof(float));
  s->att = calloc(B * nq, sizeof(float));
  s->k = calloc(B * nkv, sizeof(float));
  s->v = calloc(B * nkv, sizeof(float));
  s->rope = calloc(B * hp->head_dim, sizeof(float));
  s->router = calloc(B * E, sizeof(float));
  s->sel = calloc(B * nu, sizeof(int32_t));
  s->selw = calloc(B * nu, sizeof(float));
  s->ff_g = calloc(B * nu * ff, sizeof(float));
  s->ff_u = calloc(B * nu * ff, sizeof(float));
  s->ff_out = calloc(B * D, sizeof(float));
  s->yslot = calloc(B * nu * D, sizeof(float));
  s->actq[0] = calloc(B, act_row);
  s->actq[1] = calloc(B, act_row);
  s->actq_ff = calloc(B * nu, ff_row);
  s->tok_of = calloc(B * nu, sizeof(int32_t));
  s->pair_of = calloc(B * nu, sizeof(int32_t));
  s->exp_off = calloc(E + 1, sizeof(int32_t));
  s->att_sc = calloc(nth * group * ENG__ATT_BLOCK, sizeof(float));
  s->att_acc = calloc(nth * ENG__ATT_QBLOCK * group * hp->head_dim, sizeof(float));
  s->att_ml = calloc(nth * 2 * ENG__ATT_QBLOCK * group, sizeof(float));
  s->ws_bytes = (ENG__SGEMM_ROWS * max_in * sizeof(float) + 63) / 64 * 64;
  if (m->k->gemm.run) {
    s->actp_bytes = m->k->gemm.act_bytes((int64_t)(max_in + 255) / 256 * 256, (int)(B * nu));
    size_t gw = (m->k->gemm.ws_bytes((int64_t)(max_in + 255) / 256 * 256) + 63) / 64 * 64;
    if (gw > s->ws_bytes) s->ws_bytes = gw;
    s->actp = aligned_alloc(64, (s->actp_bytes + 63) / 64 * 64);
    if (!s->actp) return eng__err(err, ENG_ENOMEM, "out of memory for the GEMM buffers");
  }
  s->gemm_ws = aligned_alloc(64, nth * s->ws_bytes);
  if (!s->gemm_ws) return eng__err(err, ENG_ENOMEM, "out of memory for the GEMM buffers");
  if (!s->x || !s->h || !s->o || !s->q || !s->att || !s->k || !s->v || !s->rope || !s->router || !s->sel ||
      !s->selw || !s->ff_g || !s->ff_u || !s->ff_out || !s->yslot || !s->actq[0] || !s->actq[1] || !s->actq_ff ||
      !s->tok_of || !s->pair_of || !s->exp_off || !s->att_sc || !s->att_acc || !s->att_ml)
    return eng__err(err, ENG_ENOMEM, "out of memory for the forward-pass buffers");
  return 0;
}

static void free_scratch(eng__scratch *s) {
  free(s->x); free(s->h); free(s->o); free(s->q); free(s->att); free(s->k); free(s->v); free(s->rope);
  free(s->router); free(s->sel); free(s->selw); free(s->ff_g); free(s->ff_u); free(s->ff_out);
  free(s->yslot); free(s->actq[0]); free(s->actq[1]); free(s->actq_ff); free(s->tok_of); free(s->pair_of);
  free(s->exp_off); free(s->att_sc); free(s->att_acc); free(s->att_ml); free(s->actp); free(s->gemm_ws);
}

/* Gate and up are fused over one converted input: their activation formats must agree. */
static int check_fusable(eng_model *m, eng_error *err) {
  for (uint32_t il = 0; il < m->hp.n_layer; il++) {
    const eng__layer *L = &m->layers[il];
    const eng__w *g = m->moe ? &L->gate_exps : &L->ffn_gate, *u = m->moe ? &L->up_exps : &L->ffn_up;
    if (m->k->t[g->type].vec_dot_type != m->k->t[u->type].vec_dot_type)
      return eng__err(err, ENG_EUNSUPPORTED, "%s: layer %u: gate (%s) and up (%s) weights need different activation formats",
                      eng__gguf_path(m->g), il, eng__ggml_type(g->type)->name, eng__ggml_type(u->type)->name);
  }
  return 0;
}

/* ---- open / close ------------------------------------------------------------------------- */

int eng_model_open(const char *path, const eng_model_opts *opts, eng_model **out, eng_error *err) {
  int rc;
  *out = NULL;
  if (!path) return eng__err(err, ENG_EARG, "no model path given");
  eng_model *m = calloc(1, sizeof *m);
  if (!m) return eng__err(err, ENG_ENOMEM, "out of memory");
  pthread_mutex_init(&m->mu, NULL);
  m->vocab_only = opts && opts->vocab_only;
  if ((rc = eng__kernels_get(opts ? opts->kernels : NULL, &m->k, err))) goto fail;
  if ((rc = eng__gguf_open(path, &m->g, err))) goto fail;
  if ((rc = load_hparams(m, err))) goto fail;
  if (!m->vocab_only) {
    if ((rc = load_tensors(m, err))) goto fail;
    setup_rope(m);
    if ((rc = check_fusable(m, err))) goto fail;
    int nt = opts ? opts->n_threads : 0;
    if (nt <= 0) {
      long nc = sysconf(_SC_NPROCESSORS_ONLN);
      nt = nc > 0 ? (int)nc : 1;
    }
    if (nt > ENG__MAX_THREADS) nt = ENG__MAX_THREADS;
    if (eng__pool_new(nt, &m->pool)) {
      rc = eng__err(err, ENG_ENOMEM, "cannot start %d worker threads", nt);
      goto fail;
    }
    if ((rc = alloc_scratch(m, err))) goto fail;
    const char *mm = getenv("QCODER_MATMUL");
    if (mm && *mm) {
      if (!strcmp(mm, "vecdot")) m->mm_mode = ENG__MM_VECDOT;
      else if (!strcmp(mm, "int8")) m->mm_mode = ENG__MM_INT8;
      else if (!strcmp(mm, "sgemm")) m->mm_mode = ENG__MM_SGEMM;
      else if (strcmp(mm, "auto") != 0) {
        rc = eng__err(err, ENG_EARG, "QCODER_MATMUL='%s': use auto, vecdot, int8 or sgemm", mm);
        goto fail;
      }
    }
    m->kv_budget = opts ? opts->kv_budget_bytes : 0;
    /* OpenBLAS runs inside our pool's tasks: its own threads would fight ours */
    openblas_set_num_threads(1);
  }
  const char *tmpl;
  size_t tlen;
  if ((rc = eng__gguf_get_str(m->g, "tokenizer.chat_template", &tmpl, &tlen, err)) < 0) goto fail;
  if (rc == 1) {
    m->chat_template = malloc(tlen + 1);
    if (!m->chat_template) { rc = eng__err(err, ENG_ENOMEM, "out of memory"); goto fail; }
    memcpy(m->chat_template, tmpl, tlen);
    m->chat_template[tlen] = '\0';
  }
  if ((rc = eng__tok_load(m->g, &m->tok, err))) goto fail;
  if (!m->vocab_only) {
    for (size_t i = 0; i < eng__gguf_n_tensors(m->g); i++) m->hp.n_params += eng__gguf_tensor_at(m->g, i)->n_elems;
  }
  m->hp.file_bytes = eng__gguf_file_bytes(m->g);
  m->hp.n_files = eng__gguf_n_files(m->g);
  *out = m;
  return ENG_OK;
fail:
  eng_model_close(m);
  return rc;
}

void eng_model_close(eng_model *m) {
  if (!m) return;
  if (m->pool) eng__pool_free(m->pool);
  eng__tok_free(m->tok);
  free_scratch(&m->s);
  free(m->layers);
  free(m->chat_template);
  eng__gguf_close(m->g);
  pthread_mutex_destroy(&m->mu);
  free(m);
}

const eng_hparams *eng_model_hparams(const eng_model *m) { return &m->hp; }
const char *eng_model_chat_template(const eng_model *m) { return m->chat_template; }
const char *eng_model_kernels(const eng_model *m) { return m->k->name; }
static uint64_t w_bytes(const eng__w *w) { return (uint64_t)w->row_bytes * w->ne1; }

uint64_t eng_model_active_bytes(const eng_model *m) {
  if (m->vocab_only) return 0;
  const eng_hparams *hp = &m->hp;
  uint64_t b = m->tok_embd.row_bytes + w_bytes(&m->output) + 4ull * hp->n_embd;
  for (uint32_t il = 0; il < hp->n_layer; il++) {
    const eng__layer *L = &m->layers[il];
    b += w_bytes(&L->wq) + w_bytes(&L->wk) + w_bytes(&L->wv) + w_bytes(&L->wo);
    b += 4ull * (2 * hp->n_embd + 2 * hp->head_dim);  /* norms */
    if (m->moe)
      b += w_bytes(&L->gate_inp) +
           (uint64_t)hp->n_expert_used * (w_bytes(&L->gate_exps) + w_bytes(&L->up_exps) + w_bytes(&L->down_exps));
    else
      b += w_bytes(&L->ffn_gate) + w_bytes(&L->ffn_up) + w_bytes(&L->ffn_down);
  }
  return b;
}

int eng_model_threads(const eng_model *m) { return m->pool ? eng__pool_size(m->pool) : 0; }

size_t eng_model_kv_bytes(eng_model *m) {
  pthread_mutex_lock(&m->mu);
  size_t v = m->kv_used;
  pthread_mutex_unlock(&m->mu);
  return v;
}

uint64_t eng_model_kv_evictions(eng_model *m) {
  pthread_mutex_lock(&m->mu);
  uint64_t v = m->n_evictions;
  pthread_mutex_unlock(&m->mu);
  return v;
}
const eng__tok *eng__model_tok(const eng_model *m) { return m->tok; }

void eng_model_get_info(const eng_model *m, eng_model_info *o) {
  memset(o, 0, sizeof *o);
  const eng__gguf *g = m->g;
  o->gguf_version = eng__gguf_version(g);
  o->alignment = eng__gguf_alignment(g);
  o->file_type = UINT32_MAX;
  eng__gguf_get_u32(g, "general.file_type", &o->file_type, NULL);
  o->n_kv = eng__gguf_n_kv(g);
  o->n_tensors = eng__gguf_n_tensors(g);
  for (size_t i = 0; i < o->n_tensors; i++) {
    const eng__gguf_tensor *t = eng__gguf_tensor_at(g, i);
    const eng__ggml_type_info *ti = eng__ggml_type(t->type);
    o->tensor_bytes += t->nbytes;
    size_t j = 0;
    while (j < o->n_types && strcmp(o->types[j].type, ti->name) != 0) j++;
    if (j == o->n_types) {
      if (o->n_types == sizeof o->types / sizeof o->types[0]) continue;
      snprintf(o->types[j].type, sizeof o->types[j].type, "%s", ti->name);
      o->n_types++;
    }
    o->types[j].n_tensors++;
    o->types[j].bytes += t->nbytes;
  }
  eng__gguf_get_str_buf(g, "tokenizer.ggml.model", o->tok_model, sizeof o->tok_model, NULL);
  eng__gguf_get_str_buf(g, "tokenizer.ggml.pre", o->tok_pre, sizeof o->tok_pre, NULL);
  eng__gguf_arr a;
  if (eng__gguf_get_arr(g, "tokenizer.ggml.tokens", &a, NULL) == 1) o->n_tokens = (uint32_t)a.count;
  if (eng__gguf_get_arr(g, "tokenizer.ggml.merges", &a, NULL) == 1) o->n_merges = (uint32_t)a.count;
  static const char *const ids[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                    "tokenizer.ggml.padding_token_id", "tokenizer.ggml.eot_token_id"};
  int32_t *dst[] = {&o->bos_id, &o->eos_id, &o->pad_id, &o->eot_id};
  for (int i = 0; i < 4; i++) {
    uint32_t v;
    *dst[i] = eng__gguf_get_u32(g, ids[i], &v, NULL) == 1 && v <= INT32_MAX ? (int32_t)v : -1;
  }
  int b;
  o->add_bos = eng__gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b, NULL) == 1 ? b : -1;
  o->chat_template_len = m->chat_template ? strlen(m->chat_template) : 0;
}

size_t eng_model_meta(const eng_model *m, size_t i, const char **key, char *value, size_t value_len) {
  size_t n = eng__gguf_n_kv(m->g);
  if (i < n) {
    if (key) *key = eng__gguf_kv_key(m->g, i);
    if (value && value_len) eng__gguf_kv_format(m->g, i, value, value_len);
  }
  return n;
}
