/* test_local_backend.c — the local backend on its own with the tiny random-weight oracle
 * model: generation streams, the second call reuses the first call's prefix, cancel stops
 * it, FIM completion runs, and a remote backend given the GGUF as tokenizer counts the
 * same tokens as the engine. */
#include <stdatomic.h>

#include "agent/agent.h"
#include "agent/backend.h"
#include "common/common.h"
#include "tests/test.h"

static char *model_path(void) {
  char *p = qct_data_path("oracle/models/tiny-qwen3moe-f32.gguf");
  if (p && access(p, R_OK) == 0) return p;
  free(p);
  return qct_shared_path("oracle/models/tiny-qwen3moe-f32.gguf");
}

static agent_backend *open_local(const char *path) {
  agent_backend_opts o;
  agent_backend_opts_init(&o);
  o.spec = path;
  o.n_ctx = 2048;
  o.n_threads = 2;
  o.sampling.temperature = 0;
  agent_backend *b = NULL;
  char *err = NULL;
  ASSERT_MSG(agent_backend_open(&o, &b, &err) == AGENT_OK, "%s", err ? err : "?");
  ASSERT_STR_EQ(agent_backend_kind(b), "local");
  return b;
}

typedef struct sink {
  qc_buf text;
  atomic_int *cancel_after;
  int pieces;
} sink;

static void on_text(void *user, const char *t, size_t n) {
  sink *k = user;
  qc_buf_append(&k->text, t, n);
  if (++k->pieces == 3 && k->cancel_after) atomic_store(k->cancel_after, 1);
}

TEST(generation_reuses_the_prefix_and_cancels) {
  char *path = model_path();
  if (!path) SKIP("the tiny oracle model is not available");
  agent_backend *b = open_local(path);
  agent__bind *x = NULL;
  ASSERT_EQ_INT(b->ops->bind(b, &x, NULL), AGENT_OK);
  ASSERT_EQ_INT(b->ops->n_ctx(x), 2048);
  const char *p1 = "<|im_start|>user\nWrite a function that adds two numbers.<|im_end|>\n<|im_start|>assistant\n";
  atomic_int cancel = 0;
  sink k = {0};
  qc_buf_init(&k.text, 0);
  agent__gen_req req = {.prompt = p1, .prompt_len = strlen(p1), .max_tokens = 12, .stop = agent__chat_stops,
                        .cancel = &cancel, .on_text = on_text, .user = &k};
  agent__gen_res res;
  ASSERT_EQ_INT(b->ops->generate(x, &req, &res), AGENT_OK);
  ASSERT(res.finish == AGENT__FIN_LENGTH || res.finish == AGENT__FIN_STOP);
  ASSERT(res.n_prompt > 10 && res.n_reused == 0);
  long first_prompt = res.n_prompt;
  agent__gen_res_release(&res);
  /* the conversation grows: the first prompt is reused from the cache */
  qc_buf p2;
  qc_buf_init(&p2, 0);
  qc_buf_printf(&p2, "%s%s<|im_end|>\n<|im_start|>user\nAnd subtracts?<|im_end|>\n<|im_start|>assistant\n", p1, k.text.data);
  qc_buf_reset(&k.text);
  req.prompt = p2.data;
  req.prompt_len = p2.len;
  ASSERT_EQ_INT(b->ops->generate(x, &req, &res), AGENT_OK);
  ASSERT_MSG(res.n_reused >= first_prompt, "reused %ld of the first %ld", res.n_reused, first_prompt);
  agent__gen_res_release(&res);
  /* cancel after three pieces of text */
  k.cancel_after = &cancel;
  k.pieces = 0;
  req.max_tokens = 200;
  ASSERT_EQ_INT(b->ops->generate(x, &req, &res), AGENT_OK);
  ASSERT_EQ_INT(res.finish, AGENT__FIN_CANCELLED);
  ASSERT(res.n_generated < 200);
  agent__gen_res_release(&res);
  /* a cancel that arrives when nothing runs does not spoil the next generation */
  atomic_store(&cancel, 0);
  b->ops->cancel(x);
  k.cancel_after = NULL;
  req.max_tokens = 4;
  ASSERT_EQ_INT(b->ops->generate(x, &req, &res), AGENT_OK);
  ASSERT(res.finish != AGENT__FIN_CANCELLED);
  agent__gen_res_release(&res);
  qc_buf_release(&p2);
  qc_buf_release(&k.text);
  b->ops->unbind(x);
  agent_backend_close(b);
  free(path);
}

TEST(fim_completion_on_the_local_engine) {
  char *path = model_path();
  if (!path) SKIP("the tiny oracle model is not available");
  agent_backend *b = open_local(path);
  char *prompt = agent_fim_prompt("def add(a, b):\n    ", "\n");
  agent_complete_opts co = {.max_tokens = 8};
  char *out = NULL, *err = NULL;
  ASSERT_MSG(agent_backend_complete(b, prompt, &co, &out, &err) == AGENT_OK, "%s", err ? err : "?");
  ASSERT(out != NULL);
  free(out);
  free(prompt);
  agent_backend_close(b);
  free(path);
}

TEST(a_remote_counts_exactly_with_a_tokenizer_gguf) {
  char *path = model_path();
  if (!path) SKIP("the tiny oracle model is not available");
  agent_backend_opts o;
  agent_backend_opts_init(&o);
  o.spec = "http://127.0.0.1:9/v1";
  agent_backend *est = NULL, *exact = NULL;
  ASSERT_EQ_INT(agent_backend_open(&o, &est, NULL), AGENT_OK);
  o.tokenizer = path;
  ASSERT_EQ_INT(agent_backend_open(&o, &exact, NULL), AGENT_OK);
  agent_backend *local = open_local(path);
  const char *text = "<|im_start|>user\nint main(void) { return 0; }<|im_end|>\n";
  long n_local = local->ops->count_tokens(local, text, strlen(text));
  ASSERT(n_local > 0);
  ASSERT_EQ_INT(exact->ops->count_tokens(exact, text, strlen(text)), n_local);
  ASSERT_EQ_INT(est->ops->count_tokens(est, text, strlen(text)), (long)(strlen(text) + 2) / 3);
  o.tokenizer = "/nonexistent.gguf";
  agent_backend *bad = NULL;
  char *err = NULL;
  ASSERT(agent_backend_open(&o, &bad, &err) != AGENT_OK && err);
  free(err);
  agent_backend_close(est);
  agent_backend_close(exact);
  agent_backend_close(local);
  free(path);
}

QC_TEST_MAIN
