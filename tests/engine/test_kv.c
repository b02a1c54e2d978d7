/* test_kv.c — the KV cache across sessions: chunks allocated as the history grows, the
 * model-wide byte budget with least-recently-used eviction (an evicted session re-prefills
 * and gets the same logits), a session larger than the budget failing cleanly, and the
 * pool running many small runs back to back (spin-then-sleep hand-off). */
#include "tests/test.h"

#include "engine/engine.h"
#include "engine/limits.h"

static eng_model *open_with(size_t budget) {
  char *p = qct_data_path("oracle/models/tiny-qwen3moe-f32.gguf");
  eng_model *m;
  eng_error err = {0};
  eng_model_opts o = {.n_threads = 2, .kv_budget_bytes = budget};
  ASSERT_MSG(eng_model_open(p, &o, &m, &err) == 0, "%s", err.msg);
  free(p);
  return m;
}

static size_t chunk_bytes(const eng_model *m) {
  const eng_hparams *hp = eng_model_hparams(m);
  return 2 * (size_t)hp->n_layer * ENG__KV_CHUNK * hp->n_head_kv * hp->head_dim * sizeof(float);
}

static void ids(int32_t *out, size_t n, int32_t base) {
  for (size_t i = 0; i < n; i++) out[i] = (int32_t)((base + (int32_t)i * 7) % 200 + 1);
}

TEST(cache_grows_in_chunks) {
  eng_model *m = open_with(0);
  eng_session *s;
  eng_error err = {0};
  ASSERT_EQ_INT(eng_session_new(m, &(eng_session_opts){.n_ctx = 4096}, &s, &err), 0);
  ASSERT_EQ_INT(eng_session_kv_bytes(s), 0); /* nothing up front */
  int32_t t[300];
  ids(t, 300, 3);
  ASSERT_EQ_INT(eng_session_eval(s, t, 10, NULL, &err), 0);
  ASSERT_EQ_INT(eng_session_kv_bytes(s), chunk_bytes(m));
  ASSERT_EQ_INT(eng_session_eval(s, t + 10, ENG__KV_CHUNK, NULL, &err), 0); /* crosses into the second chunk */
  ASSERT_EQ_INT(eng_session_kv_bytes(s), 2 * chunk_bytes(m));
  ASSERT_EQ_INT(eng_model_kv_bytes(m), 2 * chunk_bytes(m));
  eng_session_free(s);
  ASSERT_EQ_INT(eng_model_kv_bytes(m), 0);
  eng_model_close(m);
}

TEST(budget_evicts_least_recently_used_and_it_re_prefills) {
  eng_model *m = open_with(0);
  const size_t cb = chunk_bytes(m);
  eng_model_close(m);
  m = open_with(2 * cb);
  const uint32_t V = eng_model_hparams(m)->n_vocab;
  eng_session *a, *b, *c;
  eng_error err = {0};
  eng_session_opts so = {.n_ctx = 1024};
  ASSERT_EQ_INT(eng_session_new(m, &so, &a, &err), 0);
  ASSERT_EQ_INT(eng_session_new(m, &so, &b, &err), 0);
  ASSERT_EQ_INT(eng_session_new(m, &so, &c, &err), 0);
  int32_t pa[20], pb[20], pc[20];
  ids(pa, 20, 1);
  ids(pb, 20, 50);
  ids(pc, 20, 90);
  eng_sample_params sp;
  eng_sample_params_default(&sp);
  sp.temperature = 0;
  sp.max_tokens = 1;
  sp.ignore_eog = 1;
  eng_gen_stats st;
  ASSERT_EQ_INT(eng_generate(a, pa, 20, &sp, NULL, NULL, &st, &err), 0);
  float *la = malloc(V * sizeof *la);
  memcpy(la, eng_session_logits(a), V * sizeof *la);
  ASSERT_EQ_INT(eng_generate(b, pb, 20, &sp, NULL, NULL, &st, &err), 0);
  ASSERT_EQ_INT(eng_model_kv_bytes(m), 2 * cb);
  /* c needs a chunk: a is the least recently used */
  ASSERT_EQ_INT(eng_generate(c, pc, 20, &sp, NULL, NULL, &st, &err), 0);
  ASSERT_EQ_INT(eng_session_kv_bytes(a), 0);
  ASSERT_EQ_INT(eng_session_n_past(a), 0);
  ASSERT_EQ_INT(eng_session_kv_bytes(b), cb);
  ASSERT_EQ_INT(eng_model_kv_evictions(m), 1);
  ASSERT(eng_model_kv_bytes(m) <= 2 * cb);
  /* b used again: it keeps its prefix; then a comes back, re-prefills, evicts c */
  ASSERT_EQ_INT(eng_generate(b, pb, 20, &sp, NULL, NULL, &st, &err), 0);
  ASSERT_EQ_INT(st.n_reused, 19);
  ASSERT_EQ_INT(eng_generate(a, pa, 20, &sp, NULL, NULL, &st, &err), 0);
  ASSERT_EQ_INT(st.n_reused, 0);
  ASSERT_EQ_INT(eng_session_kv_bytes(c), 0);
  ASSERT_EQ_INT(eng_session_kv_bytes(b), cb);
  const float *la2 = eng_session_logits(a);
  for (uint32_t v = 0; v < V; v++) ASSERT_MSG(la[v] == la2[v], "logit %u after re-prefill: %g vs %g", v, la2[v], la[v]);
  free(la);
  eng_session_free(a);
  eng_session_free(b);
  eng_session_free(c);
  ASSERT_EQ_INT(eng_model_kv_bytes(m), 0);
  eng_model_close(m);
}

TEST(a_session_larger_than_the_budget_fails_cleanly) {
  eng_model *m = open_with(0);
  const size_t cb = chunk_bytes(m);
  eng_model_close(m);
  m = open_with(cb);
  eng_session *s;
  eng_error err = {0};
  ASSERT_EQ_INT(eng_session_new(m, &(eng_session_opts){.n_ctx = 1024}, &s, &err), 0);
  int32_t t[ENG__KV_CHUNK + 8];
  ids(t, ENG__KV_CHUNK + 8, 5);
  ASSERT_EQ_INT(eng_session_eval(s, t, ENG__KV_CHUNK, NULL, &err), 0);
  ASSERT_EQ_INT(eng_session_eval(s, t + ENG__KV_CHUNK, 8, NULL, &err), ENG_ENOMEM);
  ASSERT_CONTAINS(err.msg, "KV-cache budget");
  /* what was evaluated before stays usable */
  ASSERT_EQ_INT(eng_session_n_past(s), ENG__KV_CHUNK);
  eng_session_free(s);
  eng_model_close(m);
}

/* Many one-token steps: hundreds of pool runs each, alternating between two sessions. */
TEST(many_small_runs) {
  eng_model *m = open_with(0);
  eng_session *a, *b;
  eng_error err = {0};
  ASSERT_EQ_INT(eng_session_new(m, &(eng_session_opts){.n_ctx = 256}, &a, &err), 0);
  ASSERT_EQ_INT(eng_session_new(m, &(eng_session_opts){.n_ctx = 256}, &b, &err), 0);
  int32_t t[200];
  ids(t, 200, 9);
  for (int i = 0; i < 200; i++) {
    ASSERT_EQ_INT(eng_session_eval(a, &t[i], 1, NULL, &err), 0);
    ASSERT_EQ_INT(eng_session_eval(b, &t[i], 1, NULL, &err), 0);
  }
  const uint32_t V = eng_model_hparams(m)->n_vocab;
  const float *x = eng_session_logits(a), *y = eng_session_logits(b);
  for (uint32_t v = 0; v < V; v++) ASSERT(x[v] == y[v]);
  eng_session_free(a);
  eng_session_free(b);
  eng_model_close(m);
}

QC_TEST_MAIN
