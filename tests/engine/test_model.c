/* test_model.c — model loading (validation of real and broken models), mkmodel round
 * trips, and sessions: batching, prefix reuse, sampling, stop strings, cancellation,
 * context limits and concurrent sessions on one model. */
#include "tests/test.h"

#include <pthread.h>

#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/quant.h"

static char *tmp;
static const char *tdir(void) {
  if (!tmp) tmp = qct_tempdir("model");
  return tmp;
}

static char *tiny_f32(void) { return qct_data_path("oracle/models/tiny-qwen3moe-f32.gguf"); }

static eng_model *open_ok(const char *path) {
  eng_model *m;
  eng_error err = {0};
  eng_model_opts o = {.n_threads = 2};
  ASSERT_MSG(eng_model_open(path, &o, &m, &err) == 0, "%s", err.msg);
  return m;
}

/* ---- rewriting a valid model into a broken one ---------------------------------------- */

typedef struct edit {
  const char *drop_key;
  int yarn;                 /* add rope.scaling.* keys for YaRN ×4 over 64 tokens */
  const char *drop_tensor;
  const char *tensor;       /* retype or reshape this one */
  int new_type;             /* -1: keep */
  int64_t new_ne1;          /* 0: keep */
  const char *arch;         /* replace general.architecture */
} edit;

static void rewrite(const char *src, const char *dst, const edit *e) {
  eng__gguf *g;
  eng_error err = {0};
  ASSERT_MSG(eng__gguf_open(src, &g, &err) == 0, "%s", err.msg);
  eng__gguf_writer *w = eng__gguf_writer_new(0);
  for (size_t i = 0; i < eng__gguf_n_kv(g); i++) {
    const char *k = eng__gguf_kv_key(g, i);
    if (e->drop_key && !strcmp(k, e->drop_key)) continue;
    if (e->arch && !strcmp(k, "general.architecture")) {
      eng__gguf_writer_set_str(w, k, e->arch);
      continue;
    }
    ASSERT_EQ_INT(eng__gguf_writer_copy_kv(w, g, k), 1);
  }
  if (e->yarn) {
    eng__gguf_writer_set_str(w, "qwen3moe.rope.scaling.type", "yarn");
    eng__gguf_writer_set_f32(w, "qwen3moe.rope.scaling.factor", 4.0f);
    eng__gguf_writer_set_u32(w, "qwen3moe.rope.scaling.original_context_length", 64);
  }
  size_t nt = eng__gguf_n_tensors(g);
  for (size_t i = 0; i < nt; i++) {
    const eng__gguf_tensor *t = eng__gguf_tensor_at(g, i);
    if (e->drop_tensor && !strcmp(t->name, e->drop_tensor)) continue;
    uint64_t ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
    uint32_t type = t->type;
    if (e->tensor && !strcmp(t->name, e->tensor)) {
      if (e->new_type >= 0) type = (uint32_t)e->new_type;
      if (e->new_ne1) ne[1] = (uint64_t)e->new_ne1;
    }
    ASSERT_EQ_INT(eng__gguf_writer_add_tensor(w, t->name, type, t->n_dims, ne), 0);
  }
  ASSERT_MSG(eng__gguf_writer_begin(w, dst, &err) == 0, "%s", err.msg);
  for (size_t i = 0; i < nt; i++) {
    const eng__gguf_tensor *t = eng__gguf_tensor_at(g, i);
    if (e->drop_tensor && !strcmp(t->name, e->drop_tensor)) continue;
    if (e->tensor && !strcmp(t->name, e->tensor)) {
      uint32_t type = e->new_type >= 0 ? (uint32_t)e->new_type : t->type;
      uint64_t rows = (e->new_ne1 ? (uint64_t)e->new_ne1 : t->ne[1]) * t->ne[2];
      size_t n = eng__ggml_row_size(type, t->ne[0]) * rows;
      void *z = calloc(1, n);
      ASSERT_EQ_INT(eng__gguf_writer_write(w, z, n, &err), 0);
      free(z);
    } else {
      ASSERT_EQ_INT(eng__gguf_writer_write(w, t->data, t->nbytes, &err), 0);
    }
  }
  ASSERT_MSG(eng__gguf_writer_finish(w, &err) == 0, "%s", err.msg);
  eng__gguf_writer_free(w);
  eng__gguf_close(g);
}

static void expect_open_fail(const edit *e, int code, const char *want) {
  char *src = tiny_f32();
  char dst[600];
  snprintf(dst, sizeof dst, "%s/broken.gguf", tdir());
  rewrite(src, dst, e);
  free(src);
  eng_model *m;
  eng_error err = {0};
  int rc = eng_model_open(dst, NULL, &m, &err);
  if (rc == 0) eng_model_close(m);
  ASSERT_MSG(rc == code, "expected %d (%s), got %d: %s", code, want, rc, err.msg);
  ASSERT_CONTAINS(err.msg, want);
}

TEST(broken_models_are_refused_with_a_reason) {
  expect_open_fail(&(edit){.drop_tensor = "blk.2.attn_q.weight", .new_type = -1}, ENG_EFORMAT,
                   "required tensor 'blk.2.attn_q.weight' is missing");
  expect_open_fail(&(edit){.drop_tensor = "output_norm.weight", .new_type = -1}, ENG_EFORMAT, "output_norm.weight");
  expect_open_fail(&(edit){.tensor = "blk.1.attn_k.weight", .new_type = -1, .new_ne1 = 48}, ENG_EFORMAT,
                   "tensor 'blk.1.attn_k.weight' has shape [64, 48], expected [64, 32]");
  expect_open_fail(&(edit){.tensor = "blk.0.ffn_up_exps.weight", .new_type = 3}, ENG_EUNSUPPORTED,
                   "tensor 'blk.0.ffn_up_exps.weight' has type Q4_1");
  expect_open_fail(&(edit){.tensor = "blk.0.attn_q.weight", .new_type = 20}, ENG_EUNSUPPORTED, "type IQ4_NL");
  expect_open_fail(&(edit){.tensor = "blk.0.attn_norm.weight", .new_type = 1}, ENG_EUNSUPPORTED,
                   "norm tensor 'blk.0.attn_norm.weight' must be F32");
  expect_open_fail(&(edit){.drop_key = "qwen3moe.expert_feed_forward_length", .new_type = -1}, ENG_EFORMAT,
                   "'qwen3moe.expert_feed_forward_length' is missing");
  expect_open_fail(&(edit){.drop_key = "qwen3moe.block_count", .new_type = -1}, ENG_EFORMAT, "qwen3moe.block_count");
  expect_open_fail(&(edit){.drop_key = "general.architecture", .new_type = -1}, ENG_EFORMAT, "general.architecture");
  expect_open_fail(&(edit){.arch = "llama", .new_type = -1}, ENG_EUNSUPPORTED, "architecture 'llama' is not supported");
  expect_open_fail(&(edit){.drop_key = "tokenizer.ggml.tokens", .new_type = -1}, ENG_EFORMAT, "tokenizer.ggml.tokens");
}

TEST(yarn_keys_are_honoured) {
  char *src = tiny_f32();
  char dst[600];
  snprintf(dst, sizeof dst, "%s/yarn.gguf", tdir());
  rewrite(src, dst, &(edit){.yarn = 1, .new_type = -1});
  eng_model *a = open_ok(src), *b = open_ok(dst);
  const eng_hparams *hp = eng_model_hparams(b);
  ASSERT_EQ_INT(hp->rope_yarn, 1);
  ASSERT_NEAR(hp->rope_scale, 4.0, 0);
  ASSERT_EQ_INT(hp->rope_orig_ctx, 64);
  ASSERT_EQ_INT(eng_model_hparams(a)->rope_yarn, 0);
  const uint32_t V = hp->n_vocab;
  int32_t ids[6] = {11, 22, 33, 44, 55, 66};
  float *la = malloc(6 * V * sizeof(float)), *lb = malloc(6 * V * sizeof(float));
  eng_session *sa, *sb;
  eng_error err = {0};
  ASSERT_EQ_INT(eng_session_new(a, &(eng_session_opts){.n_ctx = 16}, &sa, &err), 0);
  ASSERT_EQ_INT(eng_session_new(b, &(eng_session_opts){.n_ctx = 16}, &sb, &err), 0);
  ASSERT_EQ_INT(eng_session_eval(sa, ids, 6, la, &err), 0);
  ASSERT_EQ_INT(eng_session_eval(sb, ids, 6, lb, &err), 0);
  /* position 0 attends only to itself: the YaRN scale cancels in the softmax */
  for (uint32_t v = 0; v < V; v++) ASSERT_NEAR(la[v], lb[v], 1e-5);
  double d = 0;
  for (uint32_t v = 0; v < V; v++) d = fmax(d, fabs(la[5 * V + v] - lb[5 * V + v]));
  ASSERT_MSG(d > 1e-3, "YaRN did not change later positions (max diff %g)", d);
  free(la);
  free(lb);
  eng_session_free(sa);
  eng_session_free(sb);
  eng_model_close(a);
  eng_model_close(b);
  free(src);
}

/* Corrupt the header of a small model at random: opening either fails with a message
 * or yields a model that evaluates without touching memory it should not (ASan). */
TEST(random_header_corruption_of_a_model) {
  char path[600];
  snprintf(path, sizeof path, "%s/fuzzbase.gguf", tdir());
  eng_mkmodel_opts o = {.preset = "tiny", .n_layer = 1, .n_vocab = 300, .type = "q8_0", .seed = 5, .out = path};
  eng_error err = {0};
  ASSERT_MSG(eng_mkmodel(&o, &err) == 0, "%s", err.msg);
  size_t len;
  unsigned char *base = (unsigned char *)qct_read_file(path, &len);
  /* mutate only the tensor-info part of the header (after the vocabulary), where shapes,
   * types and offsets live */
  const char *needle = "token_embd.weight";
  size_t tinfo = 0;
  for (size_t i = 0; i + strlen(needle) < len; i++)
    if (memcmp(base + i, needle, strlen(needle)) == 0) { tinfo = i - 8; break; }
  ASSERT(tinfo > 0);
  size_t span = 1600;
  uint64_t x = 99;
  unsigned char *b = malloc(len);
  char mpath[600];
  snprintf(mpath, sizeof mpath, "%s/fuzz.gguf", tdir());
  int opened = 0;
  for (int it = 0; it < 150; it++) {
    memcpy(b, base, len);
    for (int k = 0; k < 2; k++) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      b[tinfo + (size_t)((x >> 33) % span)] = (unsigned char)(x >> 17);
    }
    FILE *f = fopen(mpath, "wb");
    fwrite(b, 1, len, f);
    fclose(f);
    eng_model *m;
    eng_model_opts mo = {.n_threads = 1};
    if (eng_model_open(mpath, &mo, &m, &err) == 0) {
      opened++;
      eng_session *s;
      ASSERT_EQ_INT(eng_session_new(m, &(eng_session_opts){.n_ctx = 8}, &s, &err), 0);
      int32_t ids[2] = {1, 2};
      ASSERT_EQ_INT(eng_session_eval(s, ids, 2, NULL, &err), 0);
      eng_session_free(s);
      eng_model_close(m);
    } else {
      ASSERT(err.msg[0]);
    }
  }
  fprintf(stderr, "  %d of 150 mutants opened and ran\n", opened);
  ASSERT(opened > 0);
  free(b);
  free(base);
}

TEST(vocab_only_model) {
  char *p = qct_data_path("oracle/models/vocab-qwen3.gguf");
  eng_model *m;
  eng_error err = {0};
  ASSERT_EQ_INT(eng_model_open(p, NULL, &m, &err), ENG_EFORMAT);  /* no tensors: a full load fails */
  ASSERT_CONTAINS(err.msg, "token_embd.weight");
  eng_model_opts o = {.vocab_only = 1};
  ASSERT_MSG(eng_model_open(p, &o, &m, &err) == 0, "%s", err.msg);
  ASSERT_EQ_INT(eng_model_hparams(m)->n_layer, 48);
  ASSERT_EQ_INT(eng_model_hparams(m)->n_ff_exp, 768);
  eng_session *s;
  ASSERT_EQ_INT(eng_session_new(m, NULL, &s, &err), ENG_EARG);
  eng_model_info in;
  eng_model_get_info(m, &in);
  ASSERT_EQ_INT(in.n_tokens, 151936);
  ASSERT_EQ_INT(in.n_merges, 151387);
  ASSERT_EQ_INT(in.eos_id, 151645);
  ASSERT(in.chat_template_len > 1000);
  ASSERT(eng_model_chat_template(m) != NULL);
  eng_model_close(m);
  free(p);
  eng_model_opts bad = {.kernels = "sse9"};
  char *q = tiny_f32();
  ASSERT_EQ_INT(eng_model_open(q, &bad, &m, &err), ENG_EARG);
  ASSERT_CONTAINS(err.msg, "sse9");
  free(q);
}

/* ---- mkmodel ---------------------------------------------------------------------------- */

static void mk(const char *name, const char *type, const char *arch, uint64_t seed, uint32_t n_vocab, char *out,
               size_t outn) {
  snprintf(out, outn, "%s/%s", tdir(), name);
  char *vocab = tiny_f32();
  eng_mkmodel_opts o = {.preset = "tiny", .arch = arch, .type = type, .seed = seed, .vocab_from = vocab,
                        .n_vocab = n_vocab, .out = out};
  eng_error err = {0};
  ASSERT_MSG(eng_mkmodel(&o, &err) == 0, "%s", err.msg);
  free(vocab);
}

TEST(mkmodel_round_trip_same_weights) {
  char f32[600], q8[600], q8b[600], other[600];
  /* 20011 embedding rows of 64: more than one 1M-value chunk, the last one partial, so the
   * pipelined writer (draw the next chunk while quantising this one) is exercised */
  mk("f32.gguf", "f32", NULL, 11, 20011, f32, sizeof f32);
  mk("q8.gguf", "q8_0", NULL, 11, 20011, q8, sizeof q8);
  mk("q8b.gguf", "q8_0", NULL, 11, 20011, q8b, sizeof q8b);
  mk("other.gguf", "q8_0", NULL, 12, 20011, other, sizeof other);
  size_t la, lb, lc;
  char *a = qct_read_file(q8, &la), *b = qct_read_file(q8b, &lb), *c = qct_read_file(other, &lc);
  ASSERT(la == lb && memcmp(a, b, la) == 0);   /* same seed, same bytes */
  ASSERT(la == lc && memcmp(a, c, la) != 0);   /* another seed, other weights */
  free(a); free(b); free(c);
  eng__gguf *gf, *gq;
  eng_error err = {0};
  ASSERT_EQ_INT(eng__gguf_open(f32, &gf, &err), 0);
  ASSERT_EQ_INT(eng__gguf_open(q8, &gq, &err), 0);
  ASSERT_EQ_INT(eng__gguf_n_tensors(gf), eng__gguf_n_tensors(gq));
  for (size_t i = 0; i < eng__gguf_n_tensors(gf); i++) {
    const eng__gguf_tensor *tf = eng__gguf_tensor_at(gf, i), *tq = eng__gguf_find_tensor(gq, tf->name);
    ASSERT(tq);
    if (tf->n_dims == 1 || strstr(tf->name, "ffn_gate_inp")) {
      ASSERT_EQ_INT(tq->type, ENG__T_F32);
      ASSERT(memcmp(tf->data, tq->data, tf->nbytes) == 0);
      continue;
    }
    ASSERT_EQ_INT(tq->type, ENG__T_Q8_0);
    uint8_t *qq = malloc(tq->nbytes);
    eng__kernels_scalar.t[ENG__T_Q8_0].quantize_row(tf->data, qq, (int64_t)tf->n_elems);
    ASSERT_MSG(memcmp(qq, tq->data, tq->nbytes) == 0, "%s: Q8_0 bytes differ from quantising the F32 weights", tf->name);
    free(qq);
  }
  /* statistics of the generated weights: N(0, 1/fan_in) matrices, norms around 1 */
  const eng__gguf_tensor *wq = eng__gguf_find_tensor(gf, "blk.0.attn_q.weight");
  const float *x = wq->data;
  double s2 = 0;
  for (uint64_t i = 0; i < wq->n_elems; i++) s2 += x[i] * x[i];
  ASSERT_NEAR(sqrt(s2 / (double)wq->n_elems), 1.0 / 8.0, 0.01);
  const float *nrm = eng__gguf_find_tensor(gf, "blk.0.attn_norm.weight")->data;
  for (int i = 0; i < 64; i++) ASSERT(nrm[i] > 0.5f && nrm[i] < 1.5f);
  /* tokenizer copied verbatim */
  char *src = tiny_f32();
  eng__gguf *gs;
  ASSERT_EQ_INT(eng__gguf_open(src, &gs, &err), 0);
  size_t l1, l2;
  const uint8_t *r1 = eng__gguf_kv_raw(gs, (size_t)eng__gguf_find_key(gs, "tokenizer.ggml.merges"), &l1);
  const uint8_t *r2 = eng__gguf_kv_raw(gq, (size_t)eng__gguf_find_key(gq, "tokenizer.ggml.merges"), &l2);
  ASSERT(l1 == l2 && memcmp(r1, r2, l1) == 0);
  ASSERT(eng__gguf_find_key(gq, "tokenizer.chat_template") >= 0);
  eng__gguf_close(gs);
  eng__gguf_close(gf);
  eng__gguf_close(gq);
  free(src);
}

TEST(mkmodel_types_load_and_run) {
  static const char *const types[] = {"f16", "bf16", "q4_0", "q4_k", "q5_k", "q6_k", "q4_k_m"};
  for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
    char p[600], name[64];
    snprintf(name, sizeof name, "t-%s.gguf", types[i]);
    mk(name, types[i], i % 2 ? "qwen3" : NULL, 3, 0, p, sizeof p);
    eng_model *m = open_ok(p);
    eng_session *s;
    eng_error err = {0};
    ASSERT_EQ_INT(eng_session_new(m, &(eng_session_opts){.n_ctx = 64}, &s, &err), 0);
    int32_t ids[4] = {1, 2, 3, 4};
    ASSERT_MSG(eng_session_eval(s, ids, 4, NULL, &err) == 0, "%s", err.msg);
    const float *lg = eng_session_logits(s);
    for (uint32_t v = 0; v < eng_model_hparams(m)->n_vocab; v++) ASSERT(isfinite(lg[v]));
    eng_model_info in;
    eng_model_get_info(m, &in);
    if (!strcmp(types[i], "q4_0")) ASSERT(!strcmp(in.types[0].type, "Q4_0") || !strcmp(in.types[1].type, "Q4_0"));
    eng_session_free(s);
    eng_model_close(m);
  }
  /* padding the vocabulary, and refusing to shrink it */
  char p[600];
  mk("pad.gguf", "f32", NULL, 1, 5000, p, sizeof p);
  eng_model *m = open_ok(p);
  ASSERT_EQ_INT(eng_model_hparams(m)->n_vocab, 5000);
  size_t len;
  const char *t;
  eng_model_close(m);
  char *vocab = tiny_f32();
  eng_mkmodel_opts o = {.preset = "tiny", .vocab_from = vocab, .n_vocab = 100, .out = p};
  eng_error err = {0};
  ASSERT_EQ_INT(eng_mkmodel(&o, &err), ENG_EARG);
  ASSERT_CONTAINS(err.msg, "smaller than the 4096 tokens");
  o = (eng_mkmodel_opts){.preset = "huge", .out = p};
  ASSERT_EQ_INT(eng_mkmodel(&o, &err), ENG_EARG);
  o = (eng_mkmodel_opts){.preset = "tiny", .type = "q3_k", .out = p};
  ASSERT_EQ_INT(eng_mkmodel(&o, &err), ENG_EARG);
  ASSERT_CONTAINS(err.msg, "q3_k");
  free(vocab);
  /* the toy vocabulary (no --vocab-from) is self-contained */
  o = (eng_mkmodel_opts){.preset = "tiny", .out = p, .seed = 2};
  ASSERT_MSG(eng_mkmodel(&o, &err) == 0, "%s", err.msg);
  m = open_ok(p);
  ASSERT_EQ_INT(eng_token_lookup(m, "<|im_end|>"), 258);
  ASSERT(eng_token_is_eog(m, 258));
  t = eng_token_bytes(m, ' ', &len);
  ASSERT(t && len == 1 && t[0] == ' ');
  eng_model_close(m);
}

/* ---- sessions ---------------------------------------------------------------------------- */

/* Batched prefill equals one-by-one decoding: bit for bit on the scalar path (the same
 * dot products in the same order); on the SIMD paths prefill may use the GEMMs, which sum
 * in another order, so there within float rounding. */
static void batched_vs_single(const char *kernels) {
  char *p = tiny_f32();
  eng_model *m;
  eng_error err = {0};
  eng_model_opts mo = {.n_threads = 2, .kernels = kernels};
  ASSERT_MSG(eng_model_open(p, &mo, &m, &err) == 0, "%s", err.msg);
  const int exact = !strcmp(eng_model_kernels(m), "scalar");
  const uint32_t V = eng_model_hparams(m)->n_vocab;
  enum { N = 80 };  /* crosses a chunk of attention blocks */
  int32_t ids[N];
  for (int i = 0; i < N; i++) ids[i] = (i * 37 + 11) % 4000;
  eng_session *a, *b;
  ASSERT_EQ_INT(eng_session_new(m, &(eng_session_opts){.n_ctx = 128}, &a, &err), 0);
  ASSERT_EQ_INT(eng_session_new(m, &(eng_session_opts){.n_ctx = 128}, &b, &err), 0);
  float *all = malloc((size_t)N * V * sizeof *all);
  ASSERT_EQ_INT(eng_session_eval(a, ids, N, all, &err), 0);
  for (int i = 0; i < N; i++) {
    ASSERT_EQ_INT(eng_session_eval(b, &ids[i], 1, NULL, &err), 0);
    const float *one = eng_session_logits(b), *bat = all + (size_t)i * V;
    if (exact) ASSERT_MSG(memcmp(one, bat, V * sizeof(float)) == 0, "%s: row %d differs", kernels, i);
    else
      for (uint32_t v = 0; v < V; v++)
        ASSERT_MSG(fabsf(one[v] - bat[v]) <= 1e-4f * (1 + fabsf(bat[v])), "%s: row %d id %u: %g vs %g", kernels, i, v, one[v], bat[v]);
  }
  ASSERT_EQ_INT(eng_session_n_past(a), N);
  ASSERT(memcmp(eng_session_history(a), ids, sizeof ids) == 0);
  /* errors */
  int32_t bad = (int32_t)V;
  ASSERT_EQ_INT(eng_session_eval(b, &bad, 1, NULL, &err), ENG_ETOKEN);
  ASSERT_CONTAINS(err.msg, "out of range");
  eng_session *c;
  ASSERT_EQ_INT(eng_session_new(m, &(eng_session_opts){.n_ctx = 10}, &c, &err), 0);
  ASSERT_EQ_INT(eng_session_eval(c, ids, 11, NULL, &err), ENG_ECONTEXT);
  eng_session_reset(a);
  ASSERT_EQ_INT(eng_session_n_past(a), 0);
  ASSERT(eng_session_logits(a) == NULL);
  free(all);
  eng_session_free(a);
  eng_session_free(b);
  eng_session_free(c);
  eng_model_close(m);
  free(p);
}

TEST(batched_equals_one_by_one) {
  batched_vs_single("scalar");
  batched_vs_single(NULL);
}

typedef struct collect {
  int32_t ids[256];
  size_t n;
  char text[4096];
  size_t len;
  int final_calls;
  eng_session *cancel_at_session;
  size_t cancel_at;
  size_t stop_at;
} collect;

static int on_tok(void *u, int32_t id, const char *text, size_t len) {
  collect *c = u;
  if (id >= 0 && c->n < 256) c->ids[c->n++] = id;
  if (id < 0) c->final_calls++;
  if (c->len + len < sizeof c->text) {
    memcpy(c->text + c->len, text, len);
    c->len += len;
    c->text[c->len] = 0;
  }
  if (c->cancel_at_session && c->n == c->cancel_at) eng_session_cancel(c->cancel_at_session);
  return c->stop_at && c->n == c->stop_at;
}

static eng_sample_params greedy(int n) {
  eng_sample_params p;
  eng_sample_params_default(&p);
  p.temperature = 0;
  p.repeat_penalty = 1;
  p.max_tokens = n;
  p.ignore_eog = 1;
  return p;
}

TEST(generate_matches_oracle_greedy_and_reuses_prefix) {
  /* oracle case len7 of tiny-qwen3moe-f32: prompt and its 32 greedy tokens */
  static const int32_t prompt[] = {3159, 2621, 3026, 4039, 2541, 757, 2360};
  static const int32_t oracle_gen[16] = {489, 156, 1154, 1739, 603, 1673, 1794, 2832,
                                         2234, 2907, 3385, 896, 1583, 3356, 3491, 2847};
  char *p = tiny_f32();
  eng_model *m = open_ok(p);
  eng_session *s;
  eng_error err = {0};
  ASSERT_EQ_INT(eng_session_new(m, &(eng_session_opts){.n_ctx = 256}, &s, &err), 0);
  eng_sample_params sp = greedy(16);
  collect c1 = {0};
  eng_gen_stats st;
  ASSERT_MSG(eng_generate(s, prompt, 7, &sp, on_tok, &c1, &st, &err) == 0, "%s", err.msg);
  ASSERT_EQ_INT(st.n_generated, 16);
  ASSERT_EQ_INT(st.stop, ENG_STOP_MAX_TOKENS);
  ASSERT_EQ_INT(st.n_reused, 0);
  ASSERT(memcmp(c1.ids, oracle_gen, sizeof oracle_gen) == 0);
  /* the cache holds the prompt and all generated tokens but the last */
  ASSERT_EQ_INT(eng_session_n_past(s), 7 + 15);
  /* next turn: the whole conversation plus new tokens reuses everything in the cache */
  int32_t conv[64];
  memcpy(conv, prompt, sizeof prompt);
  memcpy(conv + 7, c1.ids, 16 * sizeof(int32_t));
  conv[23] = 42;
  conv[24] = 43;
  collect c2 = {0};
  ASSERT_EQ_INT(eng_generate(s, conv, 25, &sp, on_tok, &c2, &st, &err), 0);
  ASSERT_EQ_INT(st.n_reused, 22);
  /* same result as a fresh session */
  eng_session *f;
  ASSERT_EQ_INT(eng_session_new(m, &(eng_session_opts){.n_ctx = 256}, &f, &err), 0);
  collect c3 = {0};
  ASSERT_EQ_INT(eng_generate(f, conv, 25, &sp, on_tok, &c3, &st, &err), 0);
  ASSERT_EQ_INT(st.n_reused, 0);
  ASSERT(c2.n == c3.n && memcmp(c2.ids, c3.ids, c2.n * sizeof(int32_t)) == 0);
  /* a prompt equal to the history re-evaluates only the last token */
  int32_t hist[64];
  size_t nh = eng_session_n_past(f);
  memcpy(hist, eng_session_history(f), nh * sizeof(int32_t));
  collect c4 = {0};
  ASSERT_EQ_INT(eng_generate(f, hist, nh, &sp, on_tok, &c4, &st, &err), 0);
  ASSERT_EQ_INT(st.n_reused, nh - 1);
  /* a diverging prompt keeps only the common prefix */
  conv[3] = 7;
  ASSERT_EQ_INT(eng_generate(f, conv, 25, &sp, on_tok, &(collect){0}, &st, &err), 0);
  ASSERT_EQ_INT(st.n_reused, 3);
  eng_session_free(f);
  eng_session_free(s);
  eng_model_close(m);
  free(p);
}

TEST(sampling_is_deterministic_per_seed) {
  char *p = tiny_f32();
  eng_model *m = open_ok(p);
  eng_error err = {0};
  static const int32_t prompt[] = {100, 200, 300};
  int32_t runs[3][24];
  uint64_t seeds[3] = {1, 1, 2};
  for (int r = 0; r < 3; r++) {
    eng_session *s;
    ASSERT_EQ_INT(eng_session_new(m, &(eng_session_opts){.n_ctx = 64}, &s, &err), 0);
    eng_sample_params sp;
    eng_sample_params_default(&sp);
    sp.temperature = 1.5f;
    sp.top_k = 0;
    sp.top_p = 0.95f;
    sp.min_p = 0.01f;
    sp.seed = seeds[r];
    sp.max_tokens = 24;
    sp.ignore_eog = 1;
    collect c = {0};
    ASSERT_EQ_INT(eng_generate(s, prompt, 3, &sp, on_tok, &c, NULL, &err), 0);
    ASSERT_EQ_INT(c.n, 24);
    memcpy(runs[r], c.ids, sizeof runs[r]);
    eng_session_free(s);
  }
  ASSERT(memcmp(runs[0], runs[1], sizeof runs[0]) == 0);
  ASSERT(memcmp(runs[0], runs[2], sizeof runs[0]) != 0);
  /* top-k 1 is greedy whatever the temperature */
  eng_session *s;
  ASSERT_EQ_INT(eng_session_new(m, &(eng_session_opts){.n_ctx = 64}, &s, &err), 0);
  eng_sample_params sp = greedy(10), sk;
  eng_sample_params_default(&sk);
  sk.top_k = 1;
  sk.temperature = 3;
  sk.repeat_penalty = 1;
  sk.max_tokens = 10;
  sk.ignore_eog = 1;
  collect g = {0}, k1 = {0};
  ASSERT_EQ_INT(eng_generate(s, prompt, 3, &sp, on_tok, &g, NULL, &err), 0);
  eng_session_reset(s);
  ASSERT_EQ_INT(eng_generate(s, prompt, 3, &sk, on_tok, &k1, NULL, &err), 0);
  ASSERT(memcmp(g.ids, k1.ids, 10 * sizeof(int32_t)) == 0);
  /* a strong repetition penalty changes a greedy run that repeats tokens */
  eng_sample_params rp = greedy(24);
  rp.repeat_penalty = 50;
  collect r1 = {0};
  eng_session_reset(s);
  ASSERT_EQ_INT(eng_generate(s, prompt, 3, &rp, on_tok, &r1, NULL, &err), 0);
  for (size_t i = 0; i < r1.n; i++)
    for (size_t j = i + 1; j < r1.n && j < i + 20; j++) ASSERT_MSG(r1.ids[i] != r1.ids[j], "token %d repeated", r1.ids[i]);
  eng_session_free(s);
  eng_model_close(m);
  free(p);
}

TEST(stop_strings_are_never_shown) {
  char *p = tiny_f32();
  eng_model *m = open_ok(p);
  eng_error err = {0};
  static const int32_t prompt[] = {5, 6, 7, 8};
  eng_session *s;
  ASSERT_EQ_INT(eng_session_new(m, &(eng_session_opts){.n_ctx = 128}, &s, &err), 0);
  eng_sample_params sp = greedy(40);
  collect full = {0};
  ASSERT_EQ_INT(eng_generate(s, prompt, 4, &sp, on_tok, &full, NULL, &err), 0);
  ASSERT(full.len > 20);
  /* a stop string from the middle of the output: 3 bytes starting at byte 12 */
  char stop[8];
  memcpy(stop, full.text + 12, 3);
  stop[3] = 0;
  size_t first = (size_t)(strstr(full.text, stop) - full.text);
  const char *stops[2] = {"never-appears-xyz", stop};
  sp.stop = stops;
  sp.n_stop = 2;
  collect c = {0};
  eng_gen_stats st;
  eng_session_reset(s);
  ASSERT_EQ_INT(eng_generate(s, prompt, 4, &sp, on_tok, &c, &st, &err), 0);
  ASSERT_EQ_INT(st.stop, ENG_STOP_STRING);
  ASSERT_EQ_INT(c.len, first);
  ASSERT(memcmp(c.text, full.text, first) == 0);
  ASSERT_EQ_INT(c.final_calls, 0);
  /* without a match, the held-back tail is delivered at the end */
  const char *nomatch[1] = {"\x01\x02"};
  sp.stop = nomatch;
  sp.n_stop = 1;
  collect d = {0};
  eng_session_reset(s);
  ASSERT_EQ_INT(eng_generate(s, prompt, 4, &sp, on_tok, &d, &st, &err), 0);
  ASSERT_EQ_INT(d.len, full.len);
  ASSERT(memcmp(d.text, full.text, full.len) == 0);
  /* bad stop strings */
  const char *empty[1] = {""};
  sp.stop = empty;
  ASSERT_EQ_INT(eng_generate(s, prompt, 4, &sp, on_tok, &d, &st, &err), ENG_EARG);
  eng_session_free(s);
  eng_model_close(m);
  free(p);
}

TEST(cancel_callback_stop_and_context_full) {
  char *p = tiny_f32();
  eng_model *m = open_ok(p);
  eng_error err = {0};
  static const int32_t prompt[] = {10, 20, 30};
  eng_session *s;
  ASSERT_EQ_INT(eng_session_new(m, &(eng_session_opts){.n_ctx = 16}, &s, &err), 0);
  eng_sample_params sp = greedy(100);
  collect c = {.cancel_at_session = s, .cancel_at = 3};
  eng_gen_stats st;
  ASSERT_EQ_INT(eng_generate(s, prompt, 3, &sp, on_tok, &c, &st, &err), ENG_ECANCELLED);
  ASSERT_EQ_INT(st.stop, ENG_STOP_CANCELLED);
  ASSERT_EQ_INT(st.n_generated, 3);
  /* the flag was consumed: the next generation runs */
  collect k = {.stop_at = 2};
  ASSERT_EQ_INT(eng_generate(s, prompt, 3, &sp, on_tok, &k, &st, &err), 0);
  ASSERT_EQ_INT(st.stop, ENG_STOP_CALLBACK);
  ASSERT_EQ_INT(k.n, 2);
  /* cancel before the call: nothing runs */
  eng_session_cancel(s);
  ASSERT_EQ_INT(eng_generate(s, prompt, 3, &sp, on_tok, &k, &st, &err), ENG_ECANCELLED);
  /* the 16-token context fills up */
  collect f = {0};
  ASSERT_EQ_INT(eng_generate(s, prompt, 3, &sp, on_tok, &f, &st, &err), 0);
  ASSERT_EQ_INT(st.stop, ENG_STOP_CONTEXT);
  ASSERT_EQ_INT(st.n_generated, 14);
  int32_t longp[20] = {0};
  ASSERT_EQ_INT(eng_generate(s, longp, 20, &sp, on_tok, &f, &st, &err), ENG_ECONTEXT);
  longp[0] = 99999;
  ASSERT_EQ_INT(eng_generate(s, longp, 5, &sp, on_tok, &f, &st, &err), ENG_ETOKEN);
  ASSERT_EQ_INT(eng_generate(s, longp, 0, &sp, on_tok, &f, &st, &err), ENG_EARG);
  eng_session_free(s);
  eng_model_close(m);
  free(p);
}

typedef struct thr {
  eng_model *m;
  int32_t prompt[3];
  int32_t out[12];
  int rc;
} thr;

static void *gen_thread(void *a) {
  thr *t = a;
  eng_session *s;
  eng_error err;
  if ((t->rc = eng_session_new(t->m, &(eng_session_opts){.n_ctx = 64}, &s, &err))) return NULL;
  eng_sample_params sp = greedy(12);
  collect c = {0};
  t->rc = eng_generate(s, t->prompt, 3, &sp, on_tok, &c, NULL, &err);
  memcpy(t->out, c.ids, sizeof t->out);
  eng_session_free(s);
  return NULL;
}

TEST(sessions_on_threads_share_a_model) {
  char *p = tiny_f32();
  eng_model *m = open_ok(p);
  thr t[3] = {{m, {1, 2, 3}, {0}, 0}, {m, {4, 5, 6}, {0}, 0}, {m, {7, 8, 9}, {0}, 0}};
  thr ref[3];
  memcpy(ref, t, sizeof t);
  for (int i = 0; i < 3; i++) gen_thread(&ref[i]);
  pthread_t th[3];
  for (int i = 0; i < 3; i++) pthread_create(&th[i], NULL, gen_thread, &t[i]);
  for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 3; i++) {
    ASSERT_EQ_INT(t[i].rc, 0);
    ASSERT(memcmp(t[i].out, ref[i].out, sizeof t[i].out) == 0);
  }
  eng_model_close(m);
  free(p);
}

QC_TEST_MAIN
