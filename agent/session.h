/* session.h — internal: the agent session (loop.c) as context.c and prompt.c see it. */
#ifndef QC_AGENT_SESSION_H
#define QC_AGENT_SESSION_H

#include <pthread.h>
#include <stdatomic.h>

#include "agent/agent.h"
#include "agent/backend.h"
#include "agent/limits.h"
#include "common/common.h"

typedef struct agent__extra_tool {
  char *name;
  tool_kind kind;
  unsigned flags;
  agent_tool_handler handler;
  void *user;
} agent__extra_tool;

struct agent_session {
  char id[40];
  char *cwd, *title, *test_command, *system_prompt, *system_append;
  agent_session_opts opts;          /* strings point at the copies above */
  agent_backend *backend;
  agent__bind *bind;
  tool_ws *ws;
  int ws_required_sandbox;          /* opened with TOOL_SANDBOX_REQUIRE */
  agent_store *store;

  pthread_mutex_t mu;               /* permissions memory, running */
  atomic_int cancel;
  atomic_int running;
  _Atomic int mode;

  json_t *msgs;                     /* the conversation, msgs[0] the system prompt */
  int64_t *seqs;                    /* store position of each message */
  size_t seq_cap;
  int64_t next_seq;
  json_t *tools;                    /* OpenAI-style tools offered to the model */
  agent__extra_tool *extra;
  size_t n_extra;
  json_t *allow_always, *reject_always;  /* tool name → true */
  json_t *plan;                     /* the plan tool's last list */
  char *last_call_sig;              /* loop detection: the previous call and its result */
  char *last_result_sig;
  int repeat_count;
  int checkpointed;                 /* this run took its "before the changes" checkpoint */
  int64_t opened_s;                 /* wall clock when it was opened (checkpoint pruning) */
  agent_session *open_next;         /* the process's open sessions (loop.c) */
  int registered;
};

/* Append a message to the conversation and the store. */
int agent__session_append(agent_session *s, json_t *msg /* stolen */);
/* Emit an event (session_id filled in). */
void agent__emit(agent_session *s, agent_event *ev);

/* One model call through the session's gate (opts.model_acquire/release): a call that
 * was cancelled while waiting for its turn is not made (res->finish CANCELLED). */
int agent__generate(agent_session *s, const agent__gen_req *req, agent__gen_res *res);

/* Render the conversation with the generation prompt into `out`. */
int agent__session_render(agent_session *s, qc_buf *out);

/* The context window for budgeting and the room kept for the reply. */
uint32_t agent__context_size(agent_session *s);
long agent__reply_reserve(agent_session *s);

/* Make the next prompt fit: elide old tool outputs, then summarise older turns, each with
 * an AGENT_EVENT_COMPACTION event. On success `prompt` holds the rendered prompt and
 * *tokens its count. AGENT_ECONTEXT with *errmsg when it cannot be made to fit;
 * AGENT_ECANCELLED when cancelled during the summary. */
int agent__context_fit(agent_session *s, qc_buf *prompt, long *tokens, char **errmsg);

/* The built-in system prompt for a workspace (malloc'd): rules, AGENTS.md / QWEN.md,
 * the repo map when given, the appended text. */
char *agent__system_prompt(const char *root, const char *repo_map, const char *append);

/* TESTS ONLY: replace the checkpoint pruning limits (AGENT__CHECKPOINT_KEEP and the
 * age, in seconds); negative values restore the defaults. */
void agent__set_checkpoint_prune_limits(long keep, long max_age_s);

/* The plan tool's schema (OpenAI-style, new reference). */
json_t *agent__plan_tool_schema(void);

#endif
