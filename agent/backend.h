/* backend.h — internal: the one interface behind which the model backends sit (local
 * engine, remote OpenAI-compatible server, scripted test double). Chosen in one place,
 * agent_backend_open() in backend.c, from the spec string. */
#ifndef QC_AGENT_BACKEND_H
#define QC_AGENT_BACKEND_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

#include "agent/agent.h"

typedef enum agent__finish {
  AGENT__FIN_STOP,       /* the model ended its reply */
  AGENT__FIN_LENGTH,     /* max_tokens reached */
  AGENT__FIN_CONTEXT,    /* the context window filled up */
  AGENT__FIN_CANCELLED,
  AGENT__FIN_ERROR,
} agent__finish;

typedef struct agent__gen_req {
  const char *prompt;            /* the rendered conversation (local, completions, scripted) */
  size_t prompt_len;
  const json_t *messages;        /* the conversation (remote chat API) */
  const json_t *tools;           /* OpenAI-style tools (remote chat API) */
  int max_tokens;
  const char *const *stop;       /* NULL-terminated; may be NULL */
  const agent_sampling *sampling;
  atomic_int *cancel;            /* checked between chunks / by transfer callbacks */
  int raw;                       /* a raw completion (FIM): no chat stops, /v1/completions */
  /* streamed text; and calls a server parsed itself (remote chat API) */
  void (*on_text)(void *user, const char *text, size_t len);
  /* `cut`: the reply ended by the token limit and this is its last call, whose arguments
   * may be incomplete */
  void (*on_native_call)(void *user, const char *id, const char *name, const char *args_json, int cut);
  void *user;
} agent__gen_req;

typedef struct agent__gen_res {
  agent__finish finish;
  int code;           /* AGENT_E* when finish == ERROR */
  char *error;        /* malloc'd message when finish == ERROR */
  long n_prompt;      /* -1 when unknown */
  long n_reused;
  long n_generated;
  double prefill_ms, decode_ms;
} agent__gen_res;

typedef struct agent__bind agent__bind;  /* a session's hold on a backend (local: its KV cache) */

typedef struct agent__backend_ops {
  const char *kind;
  int (*bind)(agent_backend *b, agent__bind **out, char **errmsg);
  void (*unbind)(agent__bind *x);
  /* Always fills *res; returns AGENT_OK or res->code. */
  int (*generate)(agent__bind *x, const agent__gen_req *req, agent__gen_res *res);
  /* Thread-safe: stop the generation running on this binding, if any. */
  void (*cancel)(agent__bind *x);
  /* Token count of `text` (exact where a tokenizer exists, else the estimate). */
  long (*count_tokens)(agent_backend *b, const char *text, size_t len);
  uint32_t (*n_ctx)(agent__bind *x);
  void (*close)(agent_backend *b);
  int chat_api;  /* sends messages + tools, not a rendered prompt */
} agent__backend_ops;

struct agent_backend {
  const agent__backend_ops *ops;
  agent_backend_opts opts;  /* strings owned (copied) */
  void *impl;
  pthread_mutex_t complete_mu;  /* raw completions share one binding */
  agent__bind *complete_bind;
};

/* The documented estimate when no tokenizer is at hand: one token per 3 bytes, rounded up
 * (Qwen's BPE averages 3.5-4.5 bytes per token on code and English, so this overestimates:
 * compaction starts a little early rather than the server refusing the prompt). */
long agent__estimate_tokens(size_t bytes);

void agent__gen_res_release(agent__gen_res *r);

int agent__script_open(agent_backend *b, char **errmsg);
int agent__remote_open(agent_backend *b, char **errmsg);
int agent__local_open(agent_backend *b, char **errmsg);

/* The chat stop strings every backend honours. */
extern const char *const agent__chat_stops[];

#endif
