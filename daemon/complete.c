/* complete.c — `_qcoder/complete`: a raw completion (fill-in-the-middle) without a
 * session, for inline completion (`qcoder lsp`).
 *
 *   {"model"?: SPEC, "prompt": TEXT | "prefix": TEXT, "suffix"?: TEXT, "path"?: PATH,
 *    "repoName"?: NAME, "files"?: [{"path", "content"}], "maxTokens"?: N, "stop"?: [S]}
 *   → {"text": COMPLETION}
 *
 * With `prefix`, the prompt is Qwen3-Coder's FIM format: the repository-level one
 * (agent_fim_repo_prompt) when a repository name or context files are given, else the
 * plain one. With `prompt`, the text is sent as it is. The model is the one sessions use
 * for the same spec (shared backend, its fair queue: a completion takes its turn like
 * any model call); without `model`, the connection's default, then the daemon's.
 *
 * A connection that completes with a model keeps that model open until it closes (or
 * completes with another): an editor asks for a completion every few keystrokes, and a
 * local model must not be loaded again for each one when no session happens to hold it.
 *
 * agent_backend_complete blocks, so the request runs on the libuv thread pool; the loop
 * thread only validates and answers. `$/cancel_request` (or the connection closing, or
 * shutdown) sets the cancel flag the backend checks every token; the request is then
 * answered -32800.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/sessions.h"

/* Limits of one request, each with its reason. */
enum {
  /* Tokens one completion may ask for: inline completion wants a block, not a file. */
  COMPLETE_MAX_TOKENS = 4096,
  COMPLETE_DEFAULT_TOKENS = 256,
  /* Context files: more than a handful only slows the prefill down. */
  COMPLETE_MAX_FILES = 32,
  /* Stop strings: a few sentinels, each short. */
  COMPLETE_MAX_STOPS = 16,
  COMPLETE_MAX_STOP_BYTES = 64,
};

typedef struct complete_job {
  uv_work_t work;
  rpc_req *req;
  uint64_t conn_id;
  acp_model *model;  /* the worker's reference, handed to the connection's hold */
  char *spec;
  char *prompt;
  int max_tokens;
  char **stops;      /* NULL-terminated, or NULL for the FIM stops */
  atomic_int cancel;
  int rc;
  char *text;
  char *err;
} complete_job;

/* ---- a connection's hold on its completion model (loop thread) ----------------------- */

typedef struct hold {
  struct hold *next;
  uint64_t conn_id;
  char *spec;
  acp_model *model;
} hold;

static hold *g_holds;

static void on_conn_closed(rpc_conn *c, void *user) {
  (void)user;
  for (hold **p = &g_holds; *p;) {
    hold *h = *p;
    if (h->conn_id == rpc_conn_id(c)) {
      *p = h->next;
      acp_model_release(h->model);
      free(h->spec);
      free(h);
    } else {
      p = &h->next;
    }
  }
}

/* Keep `m` (a reference) open for connection `c`; an older hold of another model goes. */
static void hold_model(rpc_conn *c, const char *spec, acp_model *m) {
  hold *h = NULL;
  for (h = g_holds; h && h->conn_id != rpc_conn_id(c); h = h->next) {
  }
  if (h && !strcmp(h->spec, spec)) {
    acp_model_release(m); /* held already */
    return;
  }
  char *sp = strdup(spec);
  if (!sp || !rpc_conn_is_open(c)) {
    free(sp);
    acp_model_release(m);
    return;
  }
  if (!h) {
    if (!(h = calloc(1, sizeof *h)) || rpc_conn_on_close(c, on_conn_closed, NULL) != QC_OK) {
      free(h);
      free(sp);
      acp_model_release(m);
      return;
    }
    h->conn_id = rpc_conn_id(c);
    h->next = g_holds;
    g_holds = h;
  } else {
    acp_model_release(h->model);
    free(h->spec);
  }
  h->spec = sp;
  h->model = m;
}

static void job_free(complete_job *j) {
  free(j->spec);
  free(j->prompt);
  for (char **s = j->stops; s && *s; s++) free(*s);
  free(j->stops);
  free(j->text);
  free(j->err);
  free(j);
}

static void on_cancel(rpc_req *req, void *user) {
  (void)req;
  complete_job *j = user;
  atomic_store(&j->cancel, 1);
}

static void complete_work(uv_work_t *w) {
  complete_job *j = w->data;
  acp_model *m = acp_model_acquire(j->spec, &j->err);
  if (!m) {
    j->rc = AGENT_EBACKEND;
    return;
  }
  j->model = m;
  acp_fairq_waiter qw;
  if (acp_model_enter(m, &qw, &j->cancel) != 0) {
    j->rc = AGENT_ECANCELLED;
  } else {
    agent_complete_opts o = {.max_tokens = j->max_tokens, .stop = (const char *const *)j->stops,
                             .cancel = &j->cancel};
    j->rc = agent_backend_complete(acp_model_backend(m), j->prompt, &o, &j->text, &j->err);
    acp_model_leave(m, &qw);
  }
}

static void complete_done(uv_work_t *w, int status) {
  complete_job *j = w->data;
  rpc_conn *c = rpc_req_conn(j->req);
  if (j->model) hold_model(c, j->spec, j->model);
  j->model = NULL;
  if (status != 0 || atomic_load(&j->cancel) || j->rc == AGENT_ECANCELLED)
    rpc_req_error(j->req, RPC_REQUEST_CANCELLED, "completion cancelled", NULL);
  else if (j->rc != AGENT_OK)
    rpc_req_errorf(j->req, RPC_INTERNAL_ERROR, "completion failed: %s", j->err ? j->err : agent_strerror(j->rc));
  else
    rpc_req_reply(j->req, json_pack("{s:s}", "text", j->text ? j->text : ""));
  job_free(j);
}

/* A string field or NULL; *bad set when present but not a string. */
static const char *opt_str(const json_t *o, const char *k, int *bad) {
  const json_t *v = json_object_get(o, k);
  if (!v || json_is_null(v)) return NULL;
  if (!json_is_string(v)) *bad = 1;
  return json_string_value(v);
}

static void m_complete(rpc_req *req, const json_t *params, void *user) {
  (void)user;
  int bad = 0;
  const char *model = opt_str(params, "model", &bad), *prompt = opt_str(params, "prompt", &bad);
  const char *prefix = opt_str(params, "prefix", &bad), *suffix = opt_str(params, "suffix", &bad);
  const char *path = opt_str(params, "path", &bad), *repo = opt_str(params, "repoName", &bad);
  if (!json_is_object(params) || bad || (!prompt && !prefix) || (prompt && prefix)) {
    rpc_req_error(req, RPC_INVALID_PARAMS,
                  "_qcoder/complete needs \"prompt\" (text) or \"prefix\" (with \"suffix\", \"path\", \"repoName\", "
                  "\"files\"), all strings",
                  NULL);
    return;
  }
  const json_t *mt = json_object_get(params, "maxTokens");
  int max_tokens = COMPLETE_DEFAULT_TOKENS;
  if (mt && !json_is_null(mt)) {
    if (!json_is_integer(mt) || json_integer_value(mt) < 1 || json_integer_value(mt) > COMPLETE_MAX_TOKENS) {
      rpc_req_errorf(req, RPC_INVALID_PARAMS, "maxTokens must be an integer from 1 to %d", COMPLETE_MAX_TOKENS);
      return;
    }
    max_tokens = (int)json_integer_value(mt);
  }
  const json_t *files = json_object_get(params, "files");
  size_t nf = json_array_size(files);
  if ((files && !json_is_null(files) && !json_is_array(files)) || nf > COMPLETE_MAX_FILES) {
    rpc_req_errorf(req, RPC_INVALID_PARAMS, "files must be an array of at most %d {path, content}", COMPLETE_MAX_FILES);
    return;
  }
  agent_fim_file ff[COMPLETE_MAX_FILES];
  for (size_t i = 0; i < nf; i++) {
    const json_t *f = json_array_get(files, i);
    ff[i].path = json_string_value(json_object_get(f, "path"));
    ff[i].content = json_string_value(json_object_get(f, "content"));
    if (!ff[i].path || !ff[i].content) {
      rpc_req_errorf(req, RPC_INVALID_PARAMS, "files[%zu] needs \"path\" and \"content\" strings", i);
      return;
    }
  }
  const json_t *stop = json_object_get(params, "stop");
  size_t ns = json_array_size(stop);
  if ((stop && !json_is_null(stop) && !json_is_array(stop)) || ns > COMPLETE_MAX_STOPS) {
    rpc_req_errorf(req, RPC_INVALID_PARAMS, "stop must be an array of at most %d strings", COMPLETE_MAX_STOPS);
    return;
  }
  for (size_t i = 0; i < ns; i++) {
    const json_t *s = json_array_get(stop, i);
    if (!json_is_string(s) || json_string_length(s) == 0 || json_string_length(s) > COMPLETE_MAX_STOP_BYTES) {
      rpc_req_errorf(req, RPC_INVALID_PARAMS, "stop[%zu] must be a non-empty string of at most %d bytes", i,
                     COMPLETE_MAX_STOP_BYTES);
      return;
    }
  }
  const char *spec = model && *model ? model : acp_conn_model(rpc_req_conn(req));
  if (!spec) {
    rpc_req_error(req, RPC_INVALID_PARAMS,
                  "no model: pass \"model\" (a .gguf file, http(s)://server/v1 or script:FILE), or start the daemon "
                  "with `qcoder serve --model SPEC`",
                  NULL);
    return;
  }
  complete_job *j = calloc(1, sizeof *j);
  if (!j) {
    rpc_req_error(req, RPC_INTERNAL_ERROR, "out of memory", NULL);
    return;
  }
  j->req = req;
  j->max_tokens = max_tokens;
  j->spec = strdup(spec);
  if (prompt) j->prompt = strdup(prompt);
  else if (repo || nf) j->prompt = agent_fim_repo_prompt(repo, ff, nf, path, prefix, suffix);
  else j->prompt = agent_fim_prompt(prefix, suffix);
  int oom = !j->spec || !j->prompt;
  if (!oom && strlen(j->prompt) > ACP_MAX_PROMPT_BYTES) {
    job_free(j);
    rpc_req_errorf(req, RPC_INVALID_PARAMS, "the prompt is over %u bytes", ACP_MAX_PROMPT_BYTES);
    return;
  }
  if (!oom && ns) {
    j->stops = calloc(ns + 1, sizeof *j->stops);
    oom = !j->stops;
    for (size_t i = 0; !oom && i < ns; i++) oom = !(j->stops[i] = strdup(json_string_value(json_array_get(stop, i))));
  }
  if (oom) {
    job_free(j);
    rpc_req_error(req, RPC_INTERNAL_ERROR, "out of memory", NULL);
    return;
  }
  j->work.data = j;
  rpc_req_on_cancel(req, on_cancel, j);
  rpc_server *srv = rpc_conn_server(rpc_req_conn(req));
  if (uv_queue_work(rpc_server_loop(srv), &j->work, complete_work, complete_done) != 0) {
    rpc_req_on_cancel(req, NULL, NULL);
    job_free(j);
    rpc_req_error(req, RPC_INTERNAL_ERROR, "cannot queue the completion", NULL);
  }
}

int acp_complete_register(rpc_server *srv) { return rpc_register(srv, "_qcoder/complete", m_complete, NULL); }
