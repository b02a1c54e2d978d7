/* backend.c — choosing a model backend from its spec, and what all backends share.
 *
 * The spec is what users type after --model: a path to a .gguf file (local engine),
 * `script:FILE` (the scripted TEST DOUBLE), or an http(s):// URL (a remote
 * OpenAI-compatible server). This is the only place that decides.
 */
#include "agent/backend.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/common.h"

const char *const agent__chat_stops[] = {"<|im_end|>", "<|endoftext|>", NULL};

long agent__estimate_tokens(size_t bytes) { return (long)((bytes + 2) / 3); }

void agent__gen_res_release(agent__gen_res *r) {
  free(r->error);
  r->error = NULL;
}

void agent_backend_opts_init(agent_backend_opts *o) {
  memset(o, 0, sizeof *o);
  agent_sampling_default(&o->sampling);
  o->max_reply_tokens = 8192;
  o->api = AGENT_REMOTE_CHAT;
  o->connect_timeout_ms = 10000;
  o->read_timeout_ms = 300000;
  o->max_retries = 3;
  o->retry_base_ms = 500;
  o->remote_ctx = 32768;
  o->script_chunk_bytes = 7;
  o->script_ctx = 32768;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static void free_opts(agent_backend_opts *o) {
  free((char *)o->spec);
  free((char *)o->kernels);
  free((char *)o->kv_cache_dir);
  free((char *)o->model_name);
  free((char *)o->api_key_env);
  free((char *)o->tokenizer);
}


int agent_backend_open(const agent_backend_opts *o, agent_backend **out, char **errmsg) {
  *out = NULL;
  if (errmsg) *errmsg = NULL;
  if (!o || !o->spec || !*o->spec) {
    if (errmsg) *errmsg = strdup("no model given (a .gguf file, script:FILE or http(s)://URL)");
    return AGENT_ESPEC;
  }
  agent_backend *b = calloc(1, sizeof *b);
  if (!b) return AGENT_ENOMEM;
  b->opts = *o;
  b->opts.spec = dup_or_null(o->spec);
  b->opts.kernels = dup_or_null(o->kernels);
  b->opts.kv_cache_dir = dup_or_null(o->kv_cache_dir);
  b->opts.model_name = dup_or_null(o->model_name);
  b->opts.api_key_env = dup_or_null(o->api_key_env);
  b->opts.tokenizer = dup_or_null(o->tokenizer);
  if (b->opts.max_reply_tokens <= 0) b->opts.max_reply_tokens = 8192;
  if (b->opts.script_chunk_bytes <= 0) b->opts.script_chunk_bytes = 7;
  pthread_mutex_init(&b->complete_mu, NULL);
  const char *spec = b->opts.spec;
  int rc;
  if (qc_str_has_prefix(spec, "script:")) {
    rc = agent__script_open(b, errmsg);
  } else if (qc_str_has_prefix(spec, "http://") || qc_str_has_prefix(spec, "https://")) {
    rc = agent__remote_open(b, errmsg);
  } else {
    struct stat st;
    if (stat(spec, &st) != 0 || !S_ISREG(st.st_mode)) {
      if (errmsg)
        *errmsg = qc_asprintf("model '%s' is not a file; give a .gguf file, script:FILE (test double) or an "
                              "http(s):// URL of an OpenAI-compatible server", spec);
      rc = AGENT_ESPEC;
    } else {
      rc = agent__local_open(b, errmsg);
    }
  }
  if (rc) {
    pthread_mutex_destroy(&b->complete_mu);
    free_opts(&b->opts);
    free(b);
    return rc;
  }
  *out = b;
  return AGENT_OK;
}

void agent_backend_close(agent_backend *b) {
  if (!b) return;
  if (b->complete_bind) b->ops->unbind(b->complete_bind);
  b->ops->close(b);
  pthread_mutex_destroy(&b->complete_mu);
  free_opts(&b->opts);
  free(b);
}

const char *agent_backend_kind(const agent_backend *b) { return b->ops->kind; }
const char *agent_backend_spec(const agent_backend *b) { return b->opts.spec; }

typedef struct complete_ctx {
  qc_buf out;
  const agent_complete_opts *o;
  int stopped;
} complete_ctx;

static void complete_text(void *user, const char *text, size_t len) {
  complete_ctx *c = user;
  if (c->stopped) return;
  qc_buf_append(&c->out, text, len);
  if (c->o->on_text && c->o->on_text(c->o->user, text, len)) {
    c->stopped = 1;
    if (c->o->cancel) atomic_store(c->o->cancel, 1);
  }
}

int agent_backend_complete(agent_backend *b, const char *prompt, const agent_complete_opts *o,
                           char **out, char **errmsg) {
  *out = NULL;
  if (errmsg) *errmsg = NULL;
  agent_complete_opts defaults = {0};
  if (!o) o = &defaults;
  atomic_int local_cancel = 0;
  complete_ctx c = {.o = o};
  qc_buf_init(&c.out, 4u << 20);
  agent__gen_req req = {
      .prompt = prompt,
      .prompt_len = strlen(prompt),
      .max_tokens = o->max_tokens > 0 ? o->max_tokens : 256,
      .stop = o->stop ? o->stop : agent_fim_stops(),
      .sampling = o->sampling ? o->sampling : &b->opts.sampling,
      .cancel = o->cancel ? o->cancel : &local_cancel,
      .raw = 1,
      .on_text = complete_text,
      .user = &c,
  };
  agent__gen_res res = {0};
  pthread_mutex_lock(&b->complete_mu);
  int rc = AGENT_OK;
  if (!b->complete_bind) rc = b->ops->bind(b, &b->complete_bind, errmsg);
  if (!rc) rc = b->ops->generate(b->complete_bind, &req, &res);
  pthread_mutex_unlock(&b->complete_mu);
  if (rc == AGENT_OK && res.finish == AGENT__FIN_CANCELLED && !c.stopped) rc = AGENT_ECANCELLED;
  if (rc && rc != AGENT_ECANCELLED && errmsg && !*errmsg && res.error) {
    *errmsg = res.error;
    res.error = NULL;
  }
  agent__gen_res_release(&res);
  if (rc) {
    qc_buf_release(&c.out);
    return rc;
  }
  *out = qc_buf_detach(&c.out, NULL);
  return *out ? AGENT_OK : AGENT_ENOMEM;
}
