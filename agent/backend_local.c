/* backend_local.c — the local engine as the model: one eng_model shared by every session
 * of the backend, one eng_session (KV cache) per agent session.
 *
 * The prompt handed to eng_generate is always the whole conversation. Because the agent's
 * conversation is append-only, turn N+1's prompt extends turn N's, and the engine keeps
 * the common prefix in the session's cache: only the new tail (the tool results and the
 * next user message) is prefilled. The counts come back in the usage numbers
 * (n_prompt, n_reused), so the saving is visible.
 *
 * Cancellation: agent_session_cancel() calls eng_session_cancel() while a generation runs
 * (the engine checks it every token, prefill included), and the token callback also looks
 * at the request's cancel flag.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "agent/backend.h"
#include "common/common.h"
#include "engine/engine.h"

typedef struct local {
  eng_model *m;
} local;

struct agent__bind {
  agent_backend *b;
  eng_session *s;
  pthread_mutex_t mu;
  int generating;
};

static int l_bind(agent_backend *b, agent__bind **out, char **errmsg) {
  local *l = b->impl;
  agent__bind *x = calloc(1, sizeof *x);
  if (!x) return AGENT_ENOMEM;
  x->b = b;
  pthread_mutex_init(&x->mu, NULL);
  eng_session_opts so = {.n_ctx = b->opts.n_ctx};
  eng_error ee = {0};
  if (eng_session_new(l->m, &so, &x->s, &ee) != ENG_OK) {
    if (errmsg) *errmsg = qc_asprintf("cannot create an engine session: %s", ee.msg[0] ? ee.msg : eng_strerror(ee.code));
    pthread_mutex_destroy(&x->mu);
    free(x);
    return AGENT_EBACKEND;
  }
  *out = x;
  return AGENT_OK;
}

static void l_unbind(agent__bind *x) {
  if (!x) return;
  eng_session_free(x->s);
  pthread_mutex_destroy(&x->mu);
  free(x);
}

typedef struct tok_ctx {
  const agent__gen_req *req;
} tok_ctx;

static int on_token(void *user, int32_t id, const char *text, size_t len) {
  (void)id;
  tok_ctx *t = user;
  if (t->req->cancel && atomic_load(t->req->cancel)) return 1;
  if (len) t->req->on_text(t->req->user, text, len);
  return 0;
}

static int l_generate(agent__bind *x, const agent__gen_req *req, agent__gen_res *res) {
  memset(res, 0, sizeof *res);
  local *l = x->b->impl;
  int32_t *ids = NULL;
  size_t n_ids = 0;
  eng_error ee = {0};
  if (eng_tokenize(l->m, req->prompt, req->prompt_len, 1, &ids, &n_ids, &ee) != ENG_OK) {
    res->finish = AGENT__FIN_ERROR;
    res->code = AGENT_EBACKEND;
    res->error = qc_asprintf("tokenizing the prompt failed: %s", ee.msg[0] ? ee.msg : eng_strerror(ee.code));
    return res->code;
  }
  res->n_prompt = (long)n_ids;
  if (n_ids >= eng_session_n_ctx(x->s)) {
    free(ids);
    res->finish = AGENT__FIN_CONTEXT;
    return AGENT_OK;
  }
  const agent_sampling *sp = req->sampling ? req->sampling : &x->b->opts.sampling;
  eng_sample_params p;
  eng_sample_params_default(&p);
  p.temperature = sp->temperature;
  p.top_p = sp->top_p;
  p.top_k = sp->top_k;
  p.min_p = sp->min_p;
  p.repeat_penalty = sp->repeat_penalty;
  if (sp->seed) p.seed = sp->seed;
  p.max_tokens = req->max_tokens;
  size_t n_stop = 0;
  if (req->stop)
    while (req->stop[n_stop]) n_stop++;
  p.stop = req->stop;
  p.n_stop = n_stop;
  tok_ctx t = {req};
  eng_gen_stats st = {0};
  pthread_mutex_lock(&x->mu);
  int already = req->cancel && atomic_load(req->cancel);
  x->generating = !already;
  pthread_mutex_unlock(&x->mu);
  int rc = already ? ENG_ECANCELLED : eng_generate(x->s, ids, n_ids, &p, on_token, &t, &st, &ee);
  if (rc == ENG_ECANCELLED && !already && !(req->cancel && atomic_load(req->cancel)) && st.n_generated == 0) {
    /* a cancel meant for the previous generation arrived as it ended and stayed pending in
     * the engine (it consumes the flag without touching the cache): run again */
    memset(&st, 0, sizeof st);
    rc = eng_generate(x->s, ids, n_ids, &p, on_token, &t, &st, &ee);
  }
  pthread_mutex_lock(&x->mu);
  x->generating = 0;
  pthread_mutex_unlock(&x->mu);
  free(ids);
  res->n_prompt = (long)(st.n_prompt ? st.n_prompt : n_ids);
  res->n_reused = (long)st.n_reused;
  res->n_generated = (long)st.n_generated;
  res->prefill_ms = st.prefill_ms;
  res->decode_ms = st.decode_ms;
  int user_cancel = req->cancel && atomic_load(req->cancel);
  if (rc == ENG_ECANCELLED || user_cancel) {
    res->finish = AGENT__FIN_CANCELLED;
    return AGENT_OK;
  }
  if (rc == ENG_ECONTEXT) {
    res->finish = AGENT__FIN_CONTEXT;
    return AGENT_OK;
  }
  if (rc != ENG_OK) {
    res->finish = AGENT__FIN_ERROR;
    res->code = AGENT_EBACKEND;
    res->error = qc_asprintf("the engine failed: %s", ee.msg[0] ? ee.msg : eng_strerror(rc));
    return res->code;
  }
  switch (st.stop) {
  case ENG_STOP_MAX_TOKENS: res->finish = AGENT__FIN_LENGTH; break;
  case ENG_STOP_CONTEXT: res->finish = AGENT__FIN_CONTEXT; break;
  case ENG_STOP_CANCELLED:
  case ENG_STOP_CALLBACK: res->finish = AGENT__FIN_CANCELLED; break;
  default: res->finish = AGENT__FIN_STOP; break;
  }
  return AGENT_OK;
}

static void l_cancel(agent__bind *x) {
  pthread_mutex_lock(&x->mu);
  if (x->generating) eng_session_cancel(x->s);
  pthread_mutex_unlock(&x->mu);
}

static long l_count(agent_backend *b, const char *text, size_t len) {
  local *l = b->impl;
  long n = eng_count_tokens(l->m, text, len);
  return n >= 0 ? n : agent__estimate_tokens(len);
}

static uint32_t l_n_ctx(agent__bind *x) { return eng_session_n_ctx(x->s); }

static void l_close(agent_backend *b) {
  local *l = b->impl;
  if (!l) return;
  eng_model_close(l->m);
  free(l);
}

static const agent__backend_ops k_local_ops = {
    .kind = "local", .bind = l_bind, .unbind = l_unbind, .generate = l_generate, .cancel = l_cancel,
    .count_tokens = l_count, .n_ctx = l_n_ctx, .close = l_close, .chat_api = 0,
};

int agent__local_open(agent_backend *b, char **errmsg) {
  local *l = calloc(1, sizeof *l);
  if (!l) return AGENT_ENOMEM;
  eng_model_opts mo = {.n_threads = b->opts.n_threads, .kernels = b->opts.kernels};
  eng_error ee = {0};
  if (eng_model_open(b->opts.spec, &mo, &l->m, &ee) != ENG_OK) {
    if (errmsg)
      *errmsg = qc_asprintf("cannot load the model %s: %s", b->opts.spec, ee.msg[0] ? ee.msg : eng_strerror(ee.code));
    free(l);
    return AGENT_EBACKEND;
  }
  b->impl = l;
  b->ops = &k_local_ops;
  return AGENT_OK;
}
