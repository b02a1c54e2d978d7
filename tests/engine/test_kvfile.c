/* test_kvfile.c — a session's KV cache saved to a file and restored in another model
 * instance (as another process would): the restored session continues bit for bit like
 * the original, only the shared prefix is taken, a file of another model is refused, and
 * every kind of damage (truncation, flipped bytes in the header, the tokens or a chunk,
 * not a cache at all) is a clear error that leaves the session empty and usable. */
#include <sys/stat.h>
#include <unistd.h>

#include "tests/test.h"

#include "common/common.h"
#include "engine/engine.h"
#include "engine/limits.h"

static eng_model *open_model(const char *name) {
  char *rel = qc_asprintf("oracle/models/%s", name);
  char *p = qct_data_path(rel);
  eng_model *m;
  eng_error err = {0};
  eng_model_opts o = {.n_threads = 2};
  ASSERT_MSG(eng_model_open(p, &o, &m, &err) == 0, "%s", err.msg);
  free(p);
  free(rel);
  return m;
}

static void ids(int32_t *out, size_t n, int32_t base) {
  for (size_t i = 0; i < n; i++) out[i] = (int32_t)((base + (int32_t)i * 7) % 200 + 1);
}

static eng_sample_params greedy(int n) {
  eng_sample_params sp;
  eng_sample_params_default(&sp);
  sp.temperature = 0;
  sp.max_tokens = n;
  sp.ignore_eog = 1;
  return sp;
}

typedef struct collected {
  int32_t ids[64];
  int n;
} collected;

static int collect(void *user, int32_t id, const char *text, size_t len) {
  (void)text;
  (void)len;
  collected *c = user;
  if (id >= 0 && c->n < 64) c->ids[c->n++] = id;
  return 0;
}

#define N_PROMPT (ENG__KV_CHUNK + 44) /* two chunks */

/* A saved session restored into a fresh model instance: same greedy continuation, same
 * logits bit for bit, and only the last prompt token is recomputed. */
TEST(restored_session_continues_exactly) {
  char *dir = qct_tempdir("kvfile");
  char *path = qc_asprintf("%s/a.qckv", dir);
  eng_model *m = open_model("tiny-qwen3moe-f32.gguf");
  const uint32_t V = eng_model_hparams(m)->n_vocab;
  eng_session *a;
  eng_error err = {0};
  ASSERT_EQ_INT(eng_session_new(m, &(eng_session_opts){.n_ctx = 1024}, &a, &err), 0);
  int32_t prompt[N_PROMPT];
  ids(prompt, N_PROMPT, 3);
  ASSERT_EQ_INT(eng_session_eval(a, prompt, N_PROMPT, NULL, &err), 0);
  ASSERT_EQ_INT(eng_session_save(a, path, &err), 0);
  struct stat st;
  ASSERT_EQ_INT(stat(path, &st), 0);
  ASSERT(access(path, R_OK) == 0); /* renamed into place */
  eng_sample_params sp = greedy(12);
  collected ca = {0}, cb = {0};
  eng_gen_stats gs;
  ASSERT_EQ_INT(eng_generate(a, prompt, N_PROMPT, &sp, collect, &ca, &gs, &err), 0);
  ASSERT_EQ_INT(gs.n_reused, N_PROMPT - 1);

  eng_model *m2 = open_model("tiny-qwen3moe-f32.gguf");
  ASSERT_STR_EQ(eng_model_fingerprint(m2), eng_model_fingerprint(m));
  eng_session *b;
  ASSERT_EQ_INT(eng_session_new(m2, &(eng_session_opts){.n_ctx = 1024}, &b, &err), 0);
  int32_t *saved;
  size_t n_saved;
  ASSERT_EQ_INT(eng_kvfile_tokens(m2, path, &saved, &n_saved, &err), 0);
  ASSERT_EQ_INT(n_saved, N_PROMPT);
  ASSERT(memcmp(saved, prompt, sizeof prompt) == 0);
  free(saved);
  size_t got = 0;
  ASSERT_MSG(eng_session_restore(b, path, prompt, N_PROMPT, &got, &err) == 0, "%s", err.msg);
  ASSERT_EQ_INT(got, N_PROMPT);
  ASSERT_EQ_INT(eng_session_n_past(b), N_PROMPT);
  ASSERT_EQ_INT(eng_generate(b, prompt, N_PROMPT, &sp, collect, &cb, &gs, &err), 0);
  ASSERT_EQ_INT(gs.n_reused, N_PROMPT - 1);
  ASSERT_EQ_INT(cb.n, ca.n);
  ASSERT(memcmp(ca.ids, cb.ids, (size_t)ca.n * sizeof ca.ids[0]) == 0);
  const float *la = eng_session_logits(a), *lb = eng_session_logits(b);
  ASSERT(la && lb);
  for (uint32_t v = 0; v < V; v++) ASSERT_MSG(la[v] == lb[v], "logit %u: %g vs %g", v, la[v], lb[v]);
  eng_session_free(a);
  eng_session_free(b);
  eng_model_close(m);
  eng_model_close(m2);
  free(path);
  free(dir);
}

/* A prompt that shares only its first 100 tokens with the file restores those 100, and
 * the result equals a session that had the saved history in memory and reused the same
 * 100 tokens (a different batching would change the float rounding, not the meaning). */
TEST(restore_takes_only_the_shared_prefix) {
  char *dir = qct_tempdir("kvfile");
  char *path = qc_asprintf("%s/a.qckv", dir);
  eng_model *m = open_model("tiny-qwen3moe-f32.gguf");
  const uint32_t V = eng_model_hparams(m)->n_vocab;
  eng_session *a, *b, *c;
  eng_error err = {0};
  eng_session_opts so = {.n_ctx = 1024};
  ASSERT_EQ_INT(eng_session_new(m, &so, &a, &err), 0);
  ASSERT_EQ_INT(eng_session_new(m, &so, &b, &err), 0);
  ASSERT_EQ_INT(eng_session_new(m, &so, &c, &err), 0);
  int32_t p1[N_PROMPT], p2[150];
  ids(p1, N_PROMPT, 3);
  memcpy(p2, p1, 100 * sizeof *p2);
  ids(p2 + 100, 50, 77);
  ASSERT_EQ_INT(eng_session_eval(a, p1, N_PROMPT, NULL, &err), 0);
  ASSERT_EQ_INT(eng_session_save(a, path, &err), 0);
  size_t got = 0;
  ASSERT_EQ_INT(eng_session_restore(b, path, p2, 150, &got, &err), 0);
  ASSERT_EQ_INT(got, 100);
  eng_sample_params sp = greedy(1);
  eng_gen_stats gs;
  ASSERT_EQ_INT(eng_generate(b, p2, 150, &sp, NULL, NULL, &gs, &err), 0);
  ASSERT_EQ_INT(gs.n_reused, 100);
  ASSERT_EQ_INT(eng_session_eval(c, p1, N_PROMPT, NULL, &err), 0);
  ASSERT_EQ_INT(eng_generate(c, p2, 150, &sp, NULL, NULL, &gs, &err), 0);
  ASSERT_EQ_INT(gs.n_reused, 100);
  const float *lb = eng_session_logits(b), *lc = eng_session_logits(c);
  for (uint32_t v = 0; v < V; v++) ASSERT(lb[v] == lc[v]);
  /* nothing in common: the session is left as it was */
  int32_t other[10];
  ids(other, 10, 150);
  other[0] = p1[0] + 1;
  ASSERT_EQ_INT(eng_session_restore(c, path, other, 10, &got, &err), 0);
  ASSERT_EQ_INT(got, 0);
  ASSERT_EQ_INT(eng_session_n_past(c), 150);
  eng_session_free(a);
  eng_session_free(b);
  eng_session_free(c);
  eng_model_close(m);
  free(path);
  free(dir);
}

TEST(a_file_of_another_model_is_refused) {
  char *dir = qct_tempdir("kvfile");
  char *path = qc_asprintf("%s/a.qckv", dir);
  /* same shapes, different weights: only the fingerprint tells them apart */
  eng_model *m = open_model("tiny-qwen3moe-f16.gguf"), *other = open_model("tiny-qwen3moe-bf16.gguf");
  ASSERT(strcmp(eng_model_fingerprint(m), eng_model_fingerprint(other)) != 0);
  eng_session *a, *b;
  eng_error err = {0};
  ASSERT_EQ_INT(eng_session_new(m, &(eng_session_opts){.n_ctx = 512}, &a, &err), 0);
  ASSERT_EQ_INT(eng_session_new(other, &(eng_session_opts){.n_ctx = 512}, &b, &err), 0);
  int32_t p[40];
  ids(p, 40, 1);
  ASSERT_EQ_INT(eng_session_eval(a, p, 40, NULL, &err), 0);
  ASSERT_EQ_INT(eng_session_save(a, path, &err), 0);
  size_t got = 7;
  ASSERT_EQ_INT(eng_session_restore(b, path, p, 40, &got, &err), ENG_EUNSUPPORTED);
  ASSERT_CONTAINS(err.msg, "another model");
  ASSERT_EQ_INT(got, 0);
  ASSERT_EQ_INT(eng_session_n_past(b), 0);
  eng_session_free(a);
  eng_session_free(b);
  eng_model_close(m);
  eng_model_close(other);
  free(path);
  free(dir);
}

static void write_bytes(const char *path, const uint8_t *p, size_t n) {
  FILE *f = fopen(path, "wb");
  ASSERT(f);
  ASSERT_EQ_INT(fwrite(p, 1, n, f), n);
  fclose(f);
}

/* Damage of every kind is an error naming the problem; the session is left empty and
 * still works. */
TEST(damaged_files_are_refused_and_the_session_stays_usable) {
  char *dir = qct_tempdir("kvfile");
  char *path = qc_asprintf("%s/a.qckv", dir), *bad = qc_asprintf("%s/bad.qckv", dir);
  eng_model *m = open_model("tiny-qwen3moe-q8_0.gguf");
  eng_session *a, *b;
  eng_error err = {0};
  ASSERT_EQ_INT(eng_session_new(m, &(eng_session_opts){.n_ctx = 1024}, &a, &err), 0);
  ASSERT_EQ_INT(eng_session_new(m, &(eng_session_opts){.n_ctx = 1024}, &b, &err), 0);
  int32_t p[N_PROMPT];
  ids(p, N_PROMPT, 5);
  ASSERT_EQ_INT(eng_session_eval(a, p, N_PROMPT, NULL, &err), 0);
  ASSERT_EQ_INT(eng_session_save(a, path, &err), 0);
  size_t len = 0;
  uint8_t *good = (uint8_t *)qct_read_file(path, &len);
  ASSERT(good && len > 4096);
  const size_t tokens_at = 128, data_at = (tokens_at + N_PROMPT * 4 + 2 * 64 + 63) / 64 * 64;
  struct {
    const char *what;
    size_t off;   /* byte to flip, or SIZE_MAX for a truncation */
    size_t keep;  /* bytes kept when truncating */
    const char *msg;
  } cases[] = {
      {"magic", 0, 0, "bad magic"},
      {"version", 8, 0, "version"},
      {"fingerprint", 16, 0, "another model"},
      {"n_layer", 80, 0, "shape"},
      {"n_tokens", 96, 0, "damaged"},
      {"n_tokens high byte", 103, 0, "tokens in"},
      {"a token id", tokens_at + 3, 0, "out of the vocabulary"},
      {"a digest", tokens_at + N_PROMPT * 4 + 5, 0, "checksum"},
      {"the first chunk", data_at + 100, 0, "checksum"},
      {"the last chunk", len - 1, 0, "checksum"},
      {"truncated header", SIZE_MAX, 100, "too short"},
      {"truncated tokens", SIZE_MAX, 200, "truncated"},
      {"truncated data", SIZE_MAX, len - 1, "truncated"},
      {"empty", SIZE_MAX, 0, "too short"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint8_t *c = malloc(len);
    memcpy(c, good, len);
    size_t n = len;
    if (cases[i].off == SIZE_MAX) n = cases[i].keep;
    else c[cases[i].off] ^= 0x5a;
    write_bytes(bad, c, n);
    free(c);
    /* b holds some history first: a failed restore must not leave it half-replaced */
    ASSERT_EQ_INT(eng_session_eval(b, p, 10, NULL, &err), 0);
    size_t got = 99;
    memset(&err, 0, sizeof err);
    int rc = eng_session_restore(b, bad, p, N_PROMPT, &got, &err);
    ASSERT_MSG(rc != 0, "%s: accepted", cases[i].what);
    ASSERT_MSG(strstr(err.msg, cases[i].msg) != NULL, "%s: message '%s' lacks '%s'", cases[i].what, err.msg, cases[i].msg);
    ASSERT_EQ_INT(got, 0);
    ASSERT_MSG(eng_session_n_past(b) == 0 || eng_session_n_past(b) == 10, "%s: n_past %zu", cases[i].what,
               eng_session_n_past(b));
    eng_session_reset(b);
  }
  /* not a file at all, and a missing one */
  ASSERT_EQ_INT(eng_session_restore(b, dir, p, N_PROMPT, NULL, &err), ENG_EFORMAT);
  ASSERT_CONTAINS(err.msg, "not a regular file");
  char *missing = qc_asprintf("%s/none.qckv", dir);
  ASSERT_EQ_INT(eng_session_restore(b, missing, p, N_PROMPT, NULL, &err), ENG_EIO);
  /* the session still works, and the good file still restores */
  size_t got = 0;
  ASSERT_EQ_INT(eng_session_restore(b, path, p, N_PROMPT, &got, &err), 0);
  ASSERT_EQ_INT(got, N_PROMPT);
  eng_sample_params sp = greedy(2);
  ASSERT_EQ_INT(eng_generate(b, p, N_PROMPT, &sp, NULL, NULL, NULL, &err), 0);
  free(good);
  free(missing);
  eng_session_free(a);
  eng_session_free(b);
  eng_model_close(m);
  free(bad);
  free(path);
  free(dir);
}

TEST(saving_an_empty_session_or_into_a_missing_folder_fails_cleanly) {
  char *dir = qct_tempdir("kvfile");
  eng_model *m = open_model("tiny-qwen3moe-f32.gguf");
  eng_session *a;
  eng_error err = {0};
  ASSERT_EQ_INT(eng_session_new(m, &(eng_session_opts){.n_ctx = 512}, &a, &err), 0);
  char *path = qc_asprintf("%s/a.qckv", dir);
  ASSERT_EQ_INT(eng_session_save(a, path, &err), ENG_EARG);
  ASSERT_CONTAINS(err.msg, "empty");
  ASSERT(access(path, F_OK) != 0);
  int32_t p[20];
  ids(p, 20, 1);
  ASSERT_EQ_INT(eng_session_eval(a, p, 20, NULL, &err), 0);
  char *nowhere = qc_asprintf("%s/no/such/dir/a.qckv", dir);
  ASSERT_EQ_INT(eng_session_save(a, nowhere, &err), ENG_EIO);
  ASSERT_CONTAINS(err.msg, "cannot create");
  /* nothing left behind in the folder */
  char *ls = NULL;
  char *cmd = qc_asprintf("ls -A '%s'", dir);
  ASSERT_EQ_INT(qct_run(cmd, &ls), 0);
  ASSERT_STR_EQ(ls, "");
  free(ls);
  free(cmd);
  free(nowhere);
  free(path);
  eng_session_free(a);
  eng_model_close(m);
  free(dir);
}

QC_TEST_MAIN
