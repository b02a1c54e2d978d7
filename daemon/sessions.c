/* sessions.c — the session service (sessions.h): backends shared per model spec, agent
 * sessions bound to connections, one worker thread per piece of work, events to
 * `session/update`, the agent's questions to the client, cancellation and cleanup.
 *
 * Who touches what:
 *  - The loop thread owns the session table, the connection records and each session's
 *    `busy`/`closing`/`req` fields. It starts a worker (a tracked thread: `job`) for
 *    anything that may block — opening a backend, a workspace, a session, MCP servers,
 *    a prompt turn, a slash command, a teardown — and the worker hands its result back
 *    with rpc_server_post().
 *  - While `busy`, the worker owns the agent session and the session's worker-only
 *    fields; nothing else frees them. Cancellation crosses over through atomics and the
 *    session mutex (which guards the one pending client call).
 *  - Backends are shared by workers: a mutex guards the list and the refcounts.
 *
 * Shutdown: acp_sessions_shutdown() sets `stopping` (from then on nothing new starts and
 * work that would go to a worker runs inline), cancels every session, completes every
 * pending client call with "closed" and joins every worker; what workers posted runs
 * when rpc_server_free() drains the queue; acp_sessions_free() frees what is left.
 */
#include "daemon/sessions.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/mcp.h"

/* ---- the fair queue ------------------------------------------------------------------- */

void acp_fairq_init(acp_fairq *q) {
  memset(q, 0, sizeof *q);
  pthread_mutex_init(&q->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&q->cv, &ca);
  pthread_condattr_destroy(&ca);
}

void acp_fairq_release_all(acp_fairq *q) {
  assert(q->head == NULL);
  pthread_mutex_destroy(&q->mu);
  pthread_cond_destroy(&q->cv);
}

static void fairq_unlink(acp_fairq *q, acp_fairq_waiter *w) {
  acp_fairq_waiter *prev = NULL;
  for (acp_fairq_waiter *x = q->head; x; prev = x, x = x->next) {
    if (x != w) continue;
    if (prev) prev->next = x->next;
    else q->head = x->next;
    if (q->tail == x) q->tail = prev;
    break;
  }
  w->next = NULL;
}

int acp_fairq_enter(acp_fairq *q, acp_fairq_waiter *w, atomic_int *cancel) {
  pthread_mutex_lock(&q->mu);
  w->next = NULL;
  w->ticket = q->next_ticket++;
  if (q->tail) q->tail->next = w;
  else q->head = w;
  q->tail = w;
  int rc = 0;
  while (q->head != w) {
    if (cancel && atomic_load(cancel)) {
      fairq_unlink(q, w);
      pthread_cond_broadcast(&q->cv);
      rc = 1;
      break;
    }
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += (long)ACP_FAIRQ_POLL_MS * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&q->cv, &q->mu, &until);
  }
  if (!rc) q->served++;
  pthread_mutex_unlock(&q->mu);
  return rc;
}

void acp_fairq_leave(acp_fairq *q, acp_fairq_waiter *w) {
  pthread_mutex_lock(&q->mu);
  fairq_unlink(q, w);
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
}

void acp_fairq_kick(acp_fairq *q) {
  pthread_mutex_lock(&q->mu);
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
}

uint64_t acp_fairq_served(acp_fairq *q) {
  pthread_mutex_lock(&q->mu);
  uint64_t n = q->served;
  pthread_mutex_unlock(&q->mu);
  return n;
}

int acp_fairq_length(acp_fairq *q) {
  pthread_mutex_lock(&q->mu);
  int n = 0;
  for (acp_fairq_waiter *x = q->head; x; x = x->next) n++;
  pthread_mutex_unlock(&q->mu);
  return n;
}

/* ---- types ------------------------------------------------------------------------------ */

typedef struct svc_backend {
  struct svc_backend *next;
  char *spec;
  agent_backend *b;
  int refs;
  int pinned;   /* the daemon's default model: kept open once loaded */
  int gated;    /* model calls take turns in `q` */
  acp_fairq q;
} svc_backend;

typedef struct svc_conn {
  struct svc_conn *next;
  uint64_t id;
  char *model;
} svc_conn;

/* A request a worker sends to the client and waits for. Shared with the loop side
 * (refcounted): the worker may give up (cancel, timeout) before the answer comes. */
typedef struct svc_call {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int refs;
  int done;
  int rc;
  int cancellable;
  json_t *result;
  int code;
  char message[256];
  uint64_t conn_id;
  json_t *params;
  char method[64];
} svc_call;

enum { CALL_CANCELLED = 1 }; /* besides QC_OK and RPC_E* */

typedef struct job job;

typedef struct sess {
  struct sess *next;        /* in the table (loop thread) */
  struct sess *all_next;    /* every session alive (svc->mu) */
  char id[64];
  uint64_t conn_id;
  agent_session *as;
  svc_backend *be;
  char *cwd;
  char *model;
  tool_io io;
  int cap_read, cap_write, cap_terminal;

  /* loop thread */
  int in_table;
  int torn_down;            /* sess_teardown ran: the free is on its way */
  int busy;
  int closing;
  rpc_req *req;             /* the request the worker answers */

  /* the open request (copied for the worker) */
  acp_open_params op;
  json_t *mcp_servers;
  char *test_command;
  json_t *open_result;      /* set by the worker: the answer, or … */
  int open_code;            /* … an error */
  char *open_error;
  json_t *mcp_report;       /* [{name, ok, tools | error}] */

  /* the prompt */
  char *text;
  agent_stop stop;
  char *stop_error;

  /* worker and canceller */
  pthread_mutex_t mu;
  atomic_int cancelled;
  svc_call *pending;        /* the client call being waited for (mu) */

  /* worker only */
  char *cur_call;           /* the tool call running now (for terminal content) */
  char *cur_terminal;       /* the editor terminal that call used */
  json_t *restore_points;   /* checkpoint ids /undo walks back through */
  tool_ws *cp_ws;
  acp_mcp **mcp;
  size_t n_mcp;
  struct mcp_tool **mtools; /* handed to the agent as tool handlers' user data */
  size_t n_mtools;
  acp_fairq_waiter qw;
  int n_test_calls;
} sess;

struct job {
  struct job *next;
  pthread_t th;
  void (*fn)(void *);
  void *arg;
  int joined;
};

typedef struct svc {
  rpc_server *srv;
  atomic_int stopping;
  pthread_mutex_t mu;       /* backends, all sessions, jobs, store */
  svc_backend *backends;
  sess *all;
  job *jobs;
  agent_store *store;
  int store_failed;
  sess *table;              /* loop thread */
  int n_table;
  svc_conn *conns;          /* loop thread */
} svc;

static svc *g_svc;
static char *g_default_model;

static void sess_teardown_at(sess *s, int line);
#define sess_teardown(s) sess_teardown_at((s), __LINE__)
static void teardown_job(void *arg);

/* ---- jobs: tracked worker threads -------------------------------------------------------- */

static void job_reap(rpc_server *srv, void *user) {
  (void)srv;
  job *j = user;
  pthread_mutex_lock(&g_svc->mu);
  for (job **p = &g_svc->jobs; *p; p = &(*p)->next)
    if (*p == j) {
      *p = j->next;
      break;
    }
  int joined = j->joined;
  j->joined = 1;
  pthread_mutex_unlock(&g_svc->mu);
  if (!joined) pthread_join(j->th, NULL);
  free(j);
}

static void *job_main(void *arg) {
  job *j = arg;
  j->fn(j->arg);
  if (rpc_server_post(g_svc->srv, job_reap, j) != QC_OK) qc_error("cannot hand a finished worker back to the loop");
  return NULL;
}

/* Run fn(arg) on a new worker thread; inline when the service is stopping. */
static int job_spawn(void (*fn)(void *), void *arg) {
  if (atomic_load(&g_svc->stopping)) {
    fn(arg);
    return QC_OK;
  }
  job *j = calloc(1, sizeof *j);
  if (!j) return QC_ENOMEM;
  j->fn = fn;
  j->arg = arg;
  pthread_mutex_lock(&g_svc->mu);
  j->next = g_svc->jobs;
  g_svc->jobs = j;
  int rc = pthread_create(&j->th, NULL, job_main, j);
  if (rc) {
    g_svc->jobs = j->next;
    free(j);
  }
  pthread_mutex_unlock(&g_svc->mu);
  if (rc) {
    qc_error("cannot start a worker thread: %s", strerror(rc));
    return QC_ENOMEM;
  }
  return QC_OK;
}

/* ---- backends --------------------------------------------------------------------------- */

static svc_backend *backend_get(const char *spec, char **errmsg) {
  pthread_mutex_lock(&g_svc->mu);
  svc_backend *be;
  for (be = g_svc->backends; be; be = be->next)
    if (!strcmp(be->spec, spec)) break;
  if (be) {
    be->refs++;
    pthread_mutex_unlock(&g_svc->mu);
    return be;
  }
  /* Opened under the lock: a second session asking for the same model waits for this
   * one instead of loading it twice. */
  agent_backend_opts o;
  agent_backend_opts_init(&o);
  o.spec = spec;
  /* local models keep session caches on disk across restarts, in $QCODER_CACHE_DIR/kv;
   * QCODER_KV_CACHE=off turns that off, QCODER_KV_CACHE=N caps the folder at N MB */
  const char *kv_env = getenv("QCODER_KV_CACHE");
  char *cache = kv_env && !strcmp(kv_env, "off") ? NULL : qc_cache_dir();
  char *kv_dir = cache ? qc_path_join(cache, "kv") : NULL;
  free(cache);
  o.kv_cache_dir = kv_dir;
  if (kv_dir && kv_env && *kv_env) {
    char *end = NULL;
    unsigned long long mb = strtoull(kv_env, &end, 10);
    if (*end || mb == 0 || mb > (1ull << 30)) qc_warn("QCODER_KV_CACHE=%s is neither 'off' nor a size in MB: ignored", kv_env);
    else o.kv_cache_max_bytes = (uint64_t)mb << 20;
  }
  agent_backend *b = NULL;
  char *err = NULL;
  int rc = agent_backend_open(&o, &b, &err);
  free(kv_dir);
  if (rc == AGENT_OK && (be = calloc(1, sizeof *be)) && (be->spec = strdup(spec))) {
    be->b = b;
    be->refs = 1;
    be->pinned = g_default_model && !strcmp(spec, g_default_model);
    const char *kind = agent_backend_kind(b);
    /* the scripted test double stands in for the local engine in tests */
    be->gated = !strcmp(kind, "local") || !strcmp(kind, "scripted");
    acp_fairq_init(&be->q);
    be->next = g_svc->backends;
    g_svc->backends = be;
    qc_info("opened model %s (%s)", spec, kind);
  } else {
    if (rc == AGENT_OK) {
      free(be);
      be = NULL;
      agent_backend_close(b);
      err = strdup("out of memory");
    }
    *errmsg = qc_asprintf("cannot open the model %s: %s", spec, err ? err : agent_strerror(rc));
    free(err);
  }
  pthread_mutex_unlock(&g_svc->mu);
  return be;
}

static void backend_put(svc_backend *be) {
  if (!be) return;
  pthread_mutex_lock(&g_svc->mu);
  int close_it = --be->refs == 0 && !be->pinned;
  if (close_it) {
    for (svc_backend **p = &g_svc->backends; *p; p = &(*p)->next)
      if (*p == be) {
        *p = be->next;
        break;
      }
  }
  pthread_mutex_unlock(&g_svc->mu);
  if (!close_it) return;
  qc_info("closing model %s (no session uses it)", be->spec);
  agent_backend_close(be->b);
  acp_fairq_release_all(&be->q);
  free(be->spec);
  free(be);
}

static agent_store *store_get(void) {
  pthread_mutex_lock(&g_svc->mu);
  if (!g_svc->store && !g_svc->store_failed) {
    char *err = NULL;
    if (agent_store_open(NULL, &g_svc->store, &err) != AGENT_OK) {
      qc_warn("sessions will not be saved: %s", err ? err : "cannot open the session database");
      g_svc->store_failed = 1;
      g_svc->store = NULL;
    }
    free(err);
  }
  agent_store *st = g_svc->store;
  pthread_mutex_unlock(&g_svc->mu);
  return st;
}

/* ---- connections -------------------------------------------------------------------------- */

static void on_conn_closed(rpc_conn *c, void *user);

static svc_conn *conn_rec(rpc_conn *c, int create) {
  uint64_t id = rpc_conn_id(c);
  for (svc_conn *r = g_svc->conns; r; r = r->next)
    if (r->id == id) return r;
  if (!create) return NULL;
  svc_conn *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  if (rpc_conn_on_close(c, on_conn_closed, NULL) != QC_OK) {
    free(r);
    return NULL;
  }
  r->id = id;
  r->next = g_svc->conns;
  g_svc->conns = r;
  return r;
}

int acp_conn_set_model(rpc_conn *c, const char *model) {
  svc_conn *r = conn_rec(c, 1);
  if (!r) return QC_ENOMEM;
  char *m = model && *model ? strdup(model) : NULL;
  if (model && *model && !m) return QC_ENOMEM;
  free(r->model);
  r->model = m;
  return QC_OK;
}

/* ---- the session table ------------------------------------------------------------------ */

static sess *table_find(const char *id) {
  for (sess *s = g_svc->table; s; s = s->next)
    if (!strcmp(s->id, id)) return s;
  return NULL;
}

static void table_remove(sess *s) {
  if (!s->in_table) return;
  for (sess **p = &g_svc->table; *p; p = &(*p)->next)
    if (*p == s) {
      *p = s->next;
      break;
    }
  s->in_table = 0;
  g_svc->n_table--;
}

/* A session of this connection, or an error answer. */
static sess *find_for(rpc_req *req, const char *id) {
  sess *s = id ? table_find(id) : NULL;
  if (!s || s->closing || s->conn_id != rpc_conn_id(rpc_req_conn(req))) {
    rpc_req_errorf(req, ACP_RESOURCE_NOT_FOUND,
                   "unknown session '%s' on this connection: create one with session/new or open a saved one with "
                   "session/load",
                   id ? id : "");
    return NULL;
  }
  return s;
}

/* ---- talking to the client from a worker --------------------------------------------- */

static void call_unref(svc_call *c) {
  pthread_mutex_lock(&c->mu);
  int last = --c->refs == 0;
  pthread_mutex_unlock(&c->mu);
  if (!last) return;
  json_decref(c->result);
  json_decref(c->params);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
  free(c);
}

/* First completion wins; later ones (a late answer after a cancel) are dropped. */
static void call_complete(svc_call *c, int rc, const json_t *result, int code, const char *message) {
  pthread_mutex_lock(&c->mu);
  if (!c->done) {
    c->done = 1;
    c->rc = rc;
    c->result = result ? json_incref((json_t *)result) : NULL;
    c->code = code;
    snprintf(c->message, sizeof c->message, "%s", message ? message : "");
    pthread_cond_signal(&c->cv);
  }
  pthread_mutex_unlock(&c->mu);
}

static void call_answered(rpc_conn *conn, const json_t *result, const rpc_error *err, void *user) {
  (void)conn;
  svc_call *c = user;
  if (result) call_complete(c, QC_OK, result, 0, NULL);
  else if (err->code == RPC_CONNECTION_CLOSED) call_complete(c, RPC_ECLOSED, NULL, err->code, "the client has gone");
  else call_complete(c, RPC_EREMOTE, NULL, err->code, err->message);
  call_unref(c);
}

static void call_send(rpc_server *srv, void *user) {
  svc_call *c = user;
  rpc_conn *conn = atomic_load(&g_svc->stopping) ? NULL : rpc_server_find_conn(srv, c->conn_id);
  if (!conn || !rpc_conn_is_open(conn)) {
    call_complete(c, RPC_ECLOSED, NULL, 0, "the client has gone");
    call_unref(c);
    return;
  }
  json_t *params = c->params;
  c->params = NULL;
  int64_t id = rpc_conn_request(conn, c->method, params, call_answered, c);
  if (id < 0) {
    call_complete(c, (int)id, NULL, 0, rpc_strerror((int)id));
    call_unref(c);
  }
}

/* Send `method` to the session's client and wait. QC_OK and *result (new reference);
 * RPC_EREMOTE (the client answered with an error: *why), RPC_ECLOSED, RPC_ETIMEOUT, or
 * CALL_CANCELLED when `cancellable` and the turn was cancelled. */
static int sess_call(sess *s, const char *method, json_t *params_steal, int timeout_ms, int cancellable,
                     json_t **result, char *why, size_t why_len) {
  *result = NULL;
  if (why && why_len) why[0] = '\0';
  if (cancellable && atomic_load(&s->cancelled)) {
    json_decref(params_steal);
    return CALL_CANCELLED;
  }
  svc_call *c = calloc(1, sizeof *c);
  if (!c) {
    json_decref(params_steal);
    return QC_ENOMEM;
  }
  pthread_mutex_init(&c->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&c->cv, &ca);
  pthread_condattr_destroy(&ca);
  c->refs = 2; /* ours and the loop side's */
  c->cancellable = cancellable;
  c->conn_id = s->conn_id;
  c->params = params_steal;
  snprintf(c->method, sizeof c->method, "%s", method);

  pthread_mutex_lock(&s->mu);
  s->pending = c;
  pthread_mutex_unlock(&s->mu);
  /* checked after registering, so a shutdown or cancel either sees the call or we see it */
  if (atomic_load(&g_svc->stopping)) call_complete(c, RPC_ECLOSED, NULL, 0, "the daemon is shutting down");
  else if (cancellable && atomic_load(&s->cancelled)) call_complete(c, CALL_CANCELLED, NULL, 0, "cancelled");
  if (rpc_server_post(g_svc->srv, call_send, c) != QC_OK) {
    call_complete(c, QC_ENOMEM, NULL, 0, "out of memory");
    c->refs--; /* the loop side never runs */
  }

  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  if (timeout_ms >= 0) {
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
  }
  pthread_mutex_lock(&c->mu);
  while (!c->done) {
    if (timeout_ms < 0) {
      pthread_cond_wait(&c->cv, &c->mu);
    } else if (pthread_cond_timedwait(&c->cv, &c->mu, &until) == ETIMEDOUT) {
      c->done = 1;
      c->rc = RPC_ETIMEOUT;
      snprintf(c->message, sizeof c->message, "%s: the client did not answer within %d s", method, timeout_ms / 1000);
    }
  }
  int rc = c->rc;
  if (rc == QC_OK) *result = json_incref(c->result);
  if (rc != QC_OK && why && why_len) snprintf(why, why_len, "%s", c->message);
  pthread_mutex_unlock(&c->mu);

  pthread_mutex_lock(&s->mu);
  s->pending = NULL;
  pthread_mutex_unlock(&s->mu);
  call_unref(c);
  return rc;
}

static void notify_update(sess *s, json_t *update_steal) {
  if (!update_steal) return;
  json_t *params = json_pack("{s:s, s:o}", "sessionId", s->id, "update", update_steal);
  if (params) rpc_server_post_notify(g_svc->srv, s->conn_id, "session/update", params);
}

static json_t *text_update(const char *kind, const char *text) {
  return json_pack("{s:s, s:{s:s, s:s}}", "sessionUpdate", kind, "content", "type", "text", "text", text);
}

/* ---- the agent's callbacks (worker thread) ------------------------------------------- */

static int is_final_status(const char *st) { return st && (!strcmp(st, "completed") || !strcmp(st, "failed")); }

static void on_event(void *user, const agent_event *ev) {
  sess *s = user;
  json_t *u = NULL;
  switch (ev->type) {
  case AGENT_EVENT_STOP: return;
  case AGENT_EVENT_COMPACTION: {
    char *t = qc_asprintf("[context: %.*s]\n", (int)ev->text_len, ev->text ? ev->text : "");
    if (t) u = text_update("agent_thought_chunk", t);
    free(t);
    break;
  }
  case AGENT_EVENT_TOOL_CALL_UPDATE:
    if (ev->status && !strcmp(ev->status, "in_progress") && !ev->content && ev->tool_call_id) {
      free(s->cur_call);
      s->cur_call = strdup(ev->tool_call_id);
    }
    u = agent_event_to_acp(ev);
    if (u && is_final_status(ev->status) && s->cur_terminal && s->cur_call && ev->tool_call_id &&
        !strcmp(ev->tool_call_id, s->cur_call)) {
      /* the editor's terminal stays in the call: the final content replaces the list */
      json_t *content = json_object_get(u, "content");
      if (!content) {
        content = json_array();
        json_object_set_new(u, "content", content);
      }
      json_array_insert_new(content, 0, json_pack("{s:s, s:s}", "type", "terminal", "terminalId", s->cur_terminal));
      free(s->cur_terminal);
      s->cur_terminal = NULL;
    }
    break;
  default: u = agent_event_to_acp(ev); break;
  }
  notify_update(s, u);
}

static const struct {
  const char *id, *name;
  agent_permission answer;
} k_perm_options[] = {
    {"allow_once", "Allow once", AGENT_PERMISSION_ALLOW_ONCE},
    {"allow_always", "Always allow", AGENT_PERMISSION_ALLOW_ALWAYS},
    {"reject_once", "Reject", AGENT_PERMISSION_REJECT_ONCE},
    {"reject_always", "Always reject", AGENT_PERMISSION_REJECT_ALWAYS},
};

static agent_permission on_permission(void *user, const agent_tool_call_info *ci) {
  sess *s = user;
  if (atomic_load(&s->cancelled)) return AGENT_PERMISSION_CANCELLED;
  json_t *tc = json_pack("{s:s, s:s, s:s}", "toolCallId", ci->tool_call_id ? ci->tool_call_id : "", "status",
                         "pending", "title", ci->title ? ci->title : (ci->tool_name ? ci->tool_name : "tool"));
  if (ci->kind) json_object_set_new(tc, "kind", json_string(ci->kind));
  if (ci->raw_input) json_object_set(tc, "rawInput", (json_t *)ci->raw_input);
  if (ci->n_locations) {
    json_t *locs = json_array();
    for (size_t i = 0; i < ci->n_locations; i++) {
      json_t *l = json_pack("{s:s}", "path", ci->locations[i].path ? ci->locations[i].path : "");
      if (ci->locations[i].line > 0) json_object_set_new(l, "line", json_integer(ci->locations[i].line));
      json_array_append_new(locs, l);
    }
    json_object_set_new(tc, "locations", locs);
  }
  json_t *opts = json_array();
  for (size_t i = 0; i < sizeof k_perm_options / sizeof *k_perm_options; i++)
    json_array_append_new(opts, json_pack("{s:s, s:s, s:s}", "optionId", k_perm_options[i].id, "name",
                                          k_perm_options[i].name, "kind", k_perm_options[i].id));
  json_t *params = json_pack("{s:s, s:o, s:o}", "sessionId", s->id, "toolCall", tc, "options", opts);
  json_t *res = NULL;
  char why[256];
  int rc = sess_call(s, "session/request_permission", params, -1, 1, &res, why, sizeof why);
  if (rc == CALL_CANCELLED || rc == RPC_ECLOSED) return AGENT_PERMISSION_CANCELLED;
  if (rc != QC_OK) {
    qc_warn("session %s: permission request failed (%s); treating it as a refusal", s->id, why);
    return AGENT_PERMISSION_REJECT_ONCE;
  }
  json_t *outcome = json_object_get(res, "outcome");
  const char *what = json_string_value(json_object_get(outcome, "outcome"));
  const char *opt = json_string_value(json_object_get(outcome, "optionId"));
  agent_permission p = AGENT_PERMISSION_REJECT_ONCE;
  if (what && !strcmp(what, "cancelled")) p = AGENT_PERMISSION_CANCELLED;
  else if (what && !strcmp(what, "selected") && opt)
    for (size_t i = 0; i < sizeof k_perm_options / sizeof *k_perm_options; i++)
      if (!strcmp(opt, k_perm_options[i].id)) p = k_perm_options[i].answer;
  json_decref(res);
  return p;
}

static tool_ws *cp_ws(sess *s, char **err) {
  if (s->cp_ws) return s->cp_ws;
  tool_ws_opts wo = {.sandbox = s->op.sandbox >= 0 ? (tool_sandbox_policy)s->op.sandbox : TOOL_SANDBOX_PREFER,
                     .test_command = s->test_command};
  if (tool_ws_open(s->cwd, &wo, &s->cp_ws, err) != TOOL_OK) s->cp_ws = NULL;
  return s->cp_ws;
}

static int on_checkpoint(void *user, const char *root, const char *session_id, const char *tool_call_id,
                         char **checkpoint_id, char **err) {
  (void)root;
  sess *s = user;
  tool_ws *ws = cp_ws(s, err);
  if (!ws) return 1;
  char *msg = tool_call_id ? qc_asprintf("qcoder session %s: after %s", session_id, tool_call_id)
                           : qc_asprintf("qcoder session %s: before the changes of a prompt", session_id);
  int rc = tool_checkpoint_create(ws, msg ? msg : "qcoder checkpoint", checkpoint_id, err);
  free(msg);
  if (rc != TOOL_OK) return 1;
  /* the state before a prompt changed anything is where /undo goes back to */
  if (!tool_call_id) json_array_append_new(s->restore_points, json_string(*checkpoint_id));
  return 0;
}

static int on_model_acquire(void *user, atomic_int *cancel) {
  sess *s = user;
  if (atomic_load(&s->cancelled)) return 1; /* cancelled before the run reset its own flag */
  if (!s->be->gated) return 0;
  return acp_fairq_enter(&s->be->q, &s->qw, cancel);
}

static void on_model_release(void *user) {
  sess *s = user;
  if (s->be->gated) acp_fairq_leave(&s->be->q, &s->qw);
}

/* ---- the editor's files and terminal (tool_io hooks, worker thread) ------------------ */

static int io_fail(char **err, const char *what, int rc, const char *why) {
  *err = rc == CALL_CANCELLED ? strdup("cancelled") : qc_asprintf("%s: %s", what, why && *why ? why : rpc_strerror(rc));
  return 1;
}

static int io_read(void *user, const char *path, char **content, char **err) {
  sess *s = user;
  *content = NULL;
  json_t *res = NULL;
  char why[256];
  int rc = sess_call(s, "fs/read_text_file", json_pack("{s:s, s:s}", "sessionId", s->id, "path", path),
                     ACP_CLIENT_CALL_TIMEOUT_MS, 1, &res, why, sizeof why);
  if (rc != QC_OK) return io_fail(err, "fs/read_text_file", rc, why);
  const char *text = json_string_value(json_object_get(res, "content"));
  if (!text) {
    json_decref(res);
    *err = strdup("the editor's answer to fs/read_text_file has no content");
    return 1;
  }
  *content = strdup(text);
  json_decref(res);
  return *content ? 0 : 1;
}

static int io_write(void *user, const char *path, const char *content, char **err) {
  sess *s = user;
  json_t *res = NULL;
  char why[256];
  int rc = sess_call(s, "fs/write_text_file",
                     json_pack("{s:s, s:s, s:s}", "sessionId", s->id, "path", path, "content", content),
                     ACP_CLIENT_CALL_TIMEOUT_MS, 1, &res, why, sizeof why);
  json_decref(res);
  if (rc != QC_OK) return io_fail(err, "fs/write_text_file", rc, why);
  return 0;
}

static const char *const k_signals[] = {"", "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT",
                                        "SIGBUS", "SIGFPE", "SIGKILL", "SIGUSR1", "SIGSEGV", "SIGUSR2",
                                        "SIGPIPE", "SIGALRM", "SIGTERM"};

static int signal_number(const json_t *v) {
  if (json_is_integer(v)) return (int)json_integer_value(v);
  const char *n = json_string_value(v);
  if (!n) return 0;
  for (int i = 1; i < (int)(sizeof k_signals / sizeof *k_signals); i++)
    if (!strcmp(n, k_signals[i]) || !strcmp(n, k_signals[i] + 3)) return i;
  return 9;
}

static void term_simple(sess *s, const char *method, const char *tid) {
  json_t *res = NULL;
  char why[256];
  int rc = sess_call(s, method, json_pack("{s:s, s:s}", "sessionId", s->id, "terminalId", tid),
                     ACP_CLIENT_CALL_TIMEOUT_MS, 0, &res, why, sizeof why);
  if (rc != QC_OK) qc_info("session %s: %s %s: %s", s->id, method, tid, why);
  json_decref(res);
}

/* A command in the editor's terminal: create, show it in the tool call, wait, read the
 * output, release (always). */
static int io_run(void *user, const char *command, const char *cwd, int timeout_s, atomic_int *cancel,
                  tool_exec_result *r, char **err) {
  sess *s = user;
  (void)cancel; /* the session's own cancel flag ends the waits below */
  json_t *res = NULL;
  char why[256];
  json_t *params = json_pack("{s:s, s:s, s:[s, s], s:s, s:I}", "sessionId", s->id, "command", "/bin/sh", "args",
                             "-c", command, "cwd", cwd, "outputByteLimit", (json_int_t)ACP_TERMINAL_OUTPUT_LIMIT);
  int rc = sess_call(s, "terminal/create", params, ACP_CLIENT_CALL_TIMEOUT_MS, 1, &res, why, sizeof why);
  if (rc != QC_OK) return io_fail(err, "terminal/create", rc, why);
  const char *t = json_string_value(json_object_get(res, "terminalId"));
  char *tid = t ? strdup(t) : NULL;
  json_decref(res);
  if (!tid) {
    *err = strdup("the editor's answer to terminal/create has no terminalId");
    return 1;
  }
  if (s->cur_call) {
    free(s->cur_terminal);
    s->cur_terminal = strdup(tid);
    notify_update(s, json_pack("{s:s, s:s, s:s, s:[{s:s, s:s}]}", "sessionUpdate", "tool_call_update", "toolCallId",
                               s->cur_call, "status", "in_progress", "content", "type", "terminal", "terminalId",
                               tid));
  }
  int wait_ms = timeout_s > 0 ? timeout_s * 1000 : ACP_CLIENT_CALL_TIMEOUT_MS;
  rc = sess_call(s, "terminal/wait_for_exit", json_pack("{s:s, s:s}", "sessionId", s->id, "terminalId", tid),
                 wait_ms, 1, &res, why, sizeof why);
  int waited = rc == QC_OK;
  if (waited) {
    json_t *code = json_object_get(res, "exitCode");
    r->exit_code = json_is_integer(code) ? (int)json_integer_value(code) : -1;
    r->signal = signal_number(json_object_get(res, "signal"));
    json_decref(res);
  } else {
    r->timed_out = rc == RPC_ETIMEOUT;
    r->exit_code = -1;
    r->signal = 9;
    term_simple(s, "terminal/kill", tid);
  }
  int orc = sess_call(s, "terminal/output", json_pack("{s:s, s:s}", "sessionId", s->id, "terminalId", tid),
                      ACP_CLIENT_CALL_TIMEOUT_MS, 0, &res, why, sizeof why);
  if (orc == QC_OK) {
    const char *out = json_string_value(json_object_get(res, "output"));
    r->output = strdup(out ? out : "");
    r->truncated = json_is_true(json_object_get(res, "truncated"));
    json_t *es = json_object_get(res, "exitStatus");
    if (!waited && json_is_object(es)) { /* it finished after all */
      json_t *code = json_object_get(es, "exitCode");
      if (json_is_integer(code)) r->exit_code = (int)json_integer_value(code), r->signal = 0;
    }
    json_decref(res);
  }
  term_simple(s, "terminal/release", tid);
  free(tid);
  if (rc == CALL_CANCELLED || rc == RPC_ECLOSED) return io_fail(err, "terminal/wait_for_exit", rc, why);
  if (!r->output) r->output = strdup("");
  return 0;
}

/* ---- MCP tools ---------------------------------------------------------------------------- */

typedef struct mcp_tool {
  acp_mcp *m;
  char *name; /* the server's name for it */
} mcp_tool;

static int mcp_tool_handler(void *user, const json_t *args, atomic_int *cancel, tool_result *res) {
  mcp_tool *t = user;
  int is_error = 0;
  char *text = NULL, *err = NULL;
  int rc = acp_mcp_call_tool(t->m, t->name, args, cancel, &is_error, &text, &err);
  if (rc != QC_OK) {
    res->ok = 0;
    res->error = err ? err : strdup("the MCP server failed");
    free(text);
    return TOOL_EFAILED;
  }
  free(err);
  res->ok = !is_error;
  if (is_error) res->error = text ? text : strdup("the tool reported an error");
  else res->output = text ? text : strdup("");
  return is_error ? TOOL_EFAILED : TOOL_OK;
}

/* Keep [A-Za-z0-9_-] of a name, so `mcp__NAME__TOOL` is a valid tool name. */
static void sanitize(char *dst, size_t n, const char *src) {
  size_t k = 0;
  for (; src && *src && k + 1 < n; src++) {
    char c = *src;
    dst[k++] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'
                   ? c
                   : '_';
  }
  dst[k] = '\0';
}

/* Start the session's MCP servers and offer their tools. Failures are reported in
 * s->mcp_report, never fatal. */
static void start_mcp(sess *s) {
  size_t n = json_array_size(s->mcp_servers);
  if (!n) return;
  s->mcp = calloc(n, sizeof *s->mcp);
  s->mcp_report = json_array();
  if (!s->mcp || !s->mcp_report) return;
  size_t i;
  json_t *sv;
  json_array_foreach(s->mcp_servers, i, sv) {
    const char *name = json_string_value(json_object_get(sv, "name"));
    const char *type = json_string_value(json_object_get(sv, "type"));
    json_t *rep = json_pack("{s:s}", "name", name ? name : "");
    json_array_append_new(s->mcp_report, rep);
    if (type && strcmp(type, "stdio")) {
      json_object_set_new(rep, "error", json_sprintf("%s MCP servers are not supported (only stdio)", type));
      continue;
    }
    acp_mcp_spec spec = {name, json_string_value(json_object_get(sv, "command")), json_object_get(sv, "args"),
                         json_object_get(sv, "env"), s->cwd};
    acp_mcp *m = NULL;
    char *err = NULL;
    if (acp_mcp_start(&spec, &m, &err) != QC_OK) {
      json_object_set_new(rep, "error", json_string(err ? err : "cannot start"));
      qc_warn("session %s: %s", s->id, err ? err : "an MCP server failed to start");
      free(err);
      continue;
    }
    s->mcp[s->n_mcp++] = m;
    json_t *tools = NULL;
    if (acp_mcp_list_tools(m, &tools, &err) != QC_OK) {
      json_object_set_new(rep, "error", json_string(err ? err : "tools/list failed"));
      free(err);
      continue;
    }
    char sname[48];
    sanitize(sname, sizeof sname, name);
    json_t *offered = json_array();
    size_t j;
    json_t *t;
    json_array_foreach(tools, j, t) {
      const char *tn = json_string_value(json_object_get(t, "name"));
      if (!tn) continue;
      char tname[80], full[140];
      sanitize(tname, sizeof tname, tn);
      snprintf(full, sizeof full, "mcp__%s__%s", sname, tname);
      json_t *schema = json_object_get(t, "inputSchema");
      char *schema_text = json_is_object(schema) ? json_dumps(schema, JSON_COMPACT) : NULL;
      json_t *ann = json_object_get(t, "annotations");
      int read_only = json_is_true(json_object_get(ann, "readOnlyHint"));
      mcp_tool **mt = realloc(s->mtools, (s->n_mtools + 1) * sizeof *mt);
      mcp_tool *one = mt ? malloc(sizeof *one) : NULL;
      if (mt) s->mtools = mt;
      if (!one) {
        free(schema_text);
        break;
      }
      one->m = m;
      one->name = strdup(tn);
      const char *desc = json_string_value(json_object_get(t, "description"));
      char *d = qc_asprintf("[MCP server %s] %s", name ? name : "?", desc ? desc : "");
      char *aerr = NULL;
      int arc = agent_session_add_tool(s->as, full, d, schema_text, read_only ? TOOL_KIND_READ : TOOL_KIND_OTHER,
                                       read_only ? 0 : TOOL_F_EXEC, mcp_tool_handler, one, &aerr);
      free(d);
      free(schema_text);
      if (arc != AGENT_OK) {
        qc_info("session %s: MCP tool %s not offered: %s", s->id, full, aerr ? aerr : "?");
        free(aerr);
        free(one->name);
        free(one);
        continue;
      }
      s->mtools[s->n_mtools++] = one;
      json_array_append_new(offered, json_string(full));
    }
    json_decref(tools);
    json_object_set_new(rep, "tools", offered);
  }
}

/* ---- sessions: allocation and teardown ------------------------------------------------ */

static sess *sess_alloc(void) {
  sess *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  pthread_mutex_init(&s->mu, NULL);
  s->restore_points = json_array();
  pthread_mutex_lock(&g_svc->mu);
  s->all_next = g_svc->all;
  g_svc->all = s;
  pthread_mutex_unlock(&g_svc->mu);
  return s;
}

/* Free everything a session holds (no worker may be using it). */
static void sess_free(sess *s) {
  for (size_t i = 0; i < s->n_mcp; i++) acp_mcp_stop(s->mcp[i]);
  free(s->mcp);
  agent_session_free(s->as);
  for (size_t i = 0; i < s->n_mtools; i++) {
    free(s->mtools[i]->name);
    free(s->mtools[i]);
  }
  free(s->mtools);
  if (s->cp_ws) tool_ws_close(s->cp_ws);
  backend_put(s->be);
  pthread_mutex_lock(&g_svc->mu);
  for (sess **p = &g_svc->all; *p; p = &(*p)->all_next)
    if (*p == s) {
      *p = s->all_next;
      break;
    }
  pthread_mutex_unlock(&g_svc->mu);
  json_decref(s->mcp_servers);
  json_decref(s->open_result);
  json_decref(s->mcp_report);
  json_decref(s->restore_points);
  free(s->open_error);
  free(s->test_command);
  free(s->cwd);
  free(s->model);
  free(s->text);
  free(s->stop_error);
  free(s->cur_call);
  free(s->cur_terminal);
  free((char *)s->op.session_id);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

static void teardown_job(void *arg) { sess_free(arg); }

/* Out of the table and freed on a worker (MCP servers take a moment to stop). */
static void sess_teardown_at(sess *s, int line) {
  qc_debug("session %s: teardown (sessions.c:%d)%s", s->id, line, s->torn_down ? " AGAIN" : "");
  if (s->torn_down) return;
  s->torn_down = 1;
  table_remove(s);
  if (job_spawn(teardown_job, s) != QC_OK) sess_free(s);
}

/* Cancel whatever the session is doing (any thread that owns a reference). */
static void sess_cancel(sess *s) {
  atomic_store(&s->cancelled, 1);
  if (s->as) agent_session_cancel(s->as);
  pthread_mutex_lock(&s->mu);
  if (s->pending && s->pending->cancellable) call_complete(s->pending, CALL_CANCELLED, NULL, 0, "cancelled");
  pthread_mutex_unlock(&s->mu);
  if (s->be && s->be->gated) acp_fairq_kick(&s->be->q);
}

static void on_conn_closed(rpc_conn *c, void *user) {
  (void)user;
  uint64_t id = rpc_conn_id(c);
  for (svc_conn **p = &g_svc->conns; *p; p = &(*p)->next)
    if ((*p)->id == id) {
      svc_conn *r = *p;
      *p = r->next;
      free(r->model);
      free(r);
      break;
    }
  sess *next;
  for (sess *s = g_svc->table; s; s = next) {
    next = s->next;
    if (s->conn_id != id) continue;
    qc_debug("session %s: its client has gone%s", s->id, s->busy ? "; cancelling its work" : "");
    s->closing = 1;
    if (s->busy) sess_cancel(s);
    else sess_teardown(s);
  }
}

/* ---- opening: session/new, session/load, session/resume --------------------------------- */

json_t *acp_modes_json(agent_mode current) {
  static const char *const desc[] = {
      "Reads and searches only; edits and commands are refused",
      "Edits and commands wait for your approval",
      "Edits are made without asking; commands wait for your approval",
      "Edits and commands run without asking; commands only inside the sandbox",
  };
  static const char *const names[] = {"Read-only", "Ask", "Auto-edit", "Full-auto"};
  json_t *avail = json_array();
  for (int m = AGENT_MODE_READ_ONLY; m <= AGENT_MODE_FULL_AUTO; m++)
    json_array_append_new(avail, json_pack("{s:s, s:s, s:s}", "id", agent_mode_name((agent_mode)m), "name", names[m],
                                           "description", desc[m]));
  return json_pack("{s:s, s:o}", "currentModeId", agent_mode_name(current), "availableModes", avail);
}

static void open_job(void *arg) {
  sess *s = arg;
  char *err = NULL;
  s->be = backend_get(s->model, &err);
  if (!s->be) {
    s->open_code = RPC_INVALID_PARAMS;
    s->open_error = err;
    goto done;
  }
  agent_store *store = store_get();
  if (s->op.kind != ACP_OPEN_NEW && !store) {
    s->open_code = RPC_INTERNAL_ERROR;
    s->open_error = strdup("the session database cannot be opened (see the daemon log), so saved sessions cannot "
                           "be loaded");
    goto done;
  }
  agent_session_opts so;
  agent_session_opts_init(&so);
  so.cwd = s->cwd;
  so.backend = s->be->b;
  so.store = store;
  so.mode = s->op.mode >= 0 ? (agent_mode)s->op.mode : AGENT_MODE_ASK;
  so.io = (s->io.read_text_file || s->io.write_text_file || s->io.run_command) ? &s->io : NULL;
  if (s->op.sandbox >= 0) so.sandbox = (tool_sandbox_policy)s->op.sandbox;
  so.test_command = s->test_command;
  if (s->op.max_steps > 0) so.max_steps = s->op.max_steps;
  if (s->op.max_tokens > 0) so.max_tokens = s->op.max_tokens;
  so.on_event = on_event;
  so.request_permission = on_permission;
  so.checkpoint = on_checkpoint;
  so.model_acquire = on_model_acquire;
  so.model_release = on_model_release;
  so.user = s;
  int rc = s->op.kind == ACP_OPEN_NEW ? agent_session_new(&so, &s->as, &err)
                                       : agent_session_resume(&so, s->op.session_id, &s->as, &err);
  if (rc != AGENT_OK) {
    s->open_code = rc == AGENT_ENOTFOUND ? ACP_RESOURCE_NOT_FOUND : rc == AGENT_EARG ? RPC_INVALID_PARAMS
                                                                                   : RPC_INTERNAL_ERROR;
    s->open_error = rc == AGENT_ENOTFOUND ? qc_asprintf("no saved session '%s' (session/list shows them)",
                                                        s->op.session_id)
                                          : (err ? err : strdup(agent_strerror(rc)));
    if (rc == AGENT_ENOTFOUND) free(err);
    goto done;
  }
  free(err);
  err = NULL;
  if (s->op.kind != ACP_OPEN_NEW && s->op.mode >= 0) agent_session_set_mode(s->as, (agent_mode)s->op.mode);
  snprintf(s->id, sizeof s->id, "%s", agent_session_id(s->as));
  start_mcp(s);
  if (s->op.kind == ACP_OPEN_LOAD) agent_session_replay(s->as);
  json_t *meta = json_pack("{s:{s:s, s:s}}", "qcoder", "model", s->model, "cwd", s->cwd);
  if (s->mcp_report) json_object_set(json_object_get(meta, "qcoder"), "mcpServers", s->mcp_report);
  s->open_result = json_pack("{s:o, s:o}", "modes", acp_modes_json(agent_session_mode(s->as)), "_meta", meta);
  if (s->op.kind == ACP_OPEN_NEW) json_object_set_new(s->open_result, "sessionId", json_string(s->id));
  if (!s->open_result) {
    s->open_code = RPC_INTERNAL_ERROR;
    s->open_error = strdup("out of memory");
  }
done:
  return;
}

static json_t *commands_update(void) {
  return json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s, s:{s:s}}, {s:s, s:s}, {s:s, s:s, s:{s:s}}]}", "sessionUpdate",
                   "available_commands_update", "availableCommands", "name", "compact", "description",
                   "Summarise the conversation so far to free context (old tool outputs elided, earlier turns "
                   "summarised)",
                   "name", "checkpoint", "description",
                   "Snapshot the workspace's files now (a git commit under refs/qcoder/checkpoints/; your files, "
                   "HEAD and index untouched)",
                   "input", "hint", "optional description", "name", "undo", "description",
                   "Restore the files to this session's last checkpoint (before the last prompt's changes, or the "
                   "last /checkpoint)",
                   "name", "test", "description", "Run the project's tests and show the results", "input", "hint",
                   "optional test filter");
}

static void open_done(rpc_server *srv, void *user) {
  sess *s = user;
  rpc_req *req = s->req;
  s->req = NULL;
  rpc_conn *conn = rpc_server_find_conn(srv, s->conn_id);
  if (s->open_error || !s->open_result) {
    rpc_req_error(req, s->open_code ? s->open_code : RPC_INTERNAL_ERROR, s->open_error ? s->open_error : "failed",
                  NULL);
    sess_teardown(s);
    return;
  }
  if (!conn || !rpc_conn_is_open(conn) || atomic_load(&g_svc->stopping)) {
    rpc_req_error(req, RPC_REQUEST_CANCELLED, "the client has gone", NULL);
    sess_teardown(s);
    return;
  }
  sess *other = table_find(s->id);
  if (other) { /* a second load of the same session raced this one */
    rpc_req_errorf(req, RPC_INVALID_PARAMS, "session %s is already open", s->id);
    sess_teardown(s);
    return;
  }
  s->next = g_svc->table;
  g_svc->table = s;
  s->in_table = 1;
  g_svc->n_table++;
  json_t *result = s->open_result;
  s->open_result = NULL;
  /* still busy: answering may close the connection (see prompt_done) */
  rpc_conn_ref(conn);
  rpc_req_reply(req, result);
  qc_info("session %s %s on conn %llu (%s, %s)", s->id,
          s->op.kind == ACP_OPEN_NEW ? "created" : s->op.kind == ACP_OPEN_LOAD ? "loaded" : "resumed",
          (unsigned long long)s->conn_id, s->cwd, s->model);
  if (rpc_conn_is_open(conn))
    rpc_conn_notify(conn, "session/update", json_pack("{s:s, s:o}", "sessionId", s->id, "update", commands_update()));
  size_t i;
  json_t *r;
  json_array_foreach(s->mcp_report, i, r) {
    const char *e = json_string_value(json_object_get(r, "error"));
    if (!e || !rpc_conn_is_open(conn)) continue;
    char *t = qc_asprintf("MCP server '%s' is not available: %s\n",
                          json_string_value(json_object_get(r, "name")) ?: "?", e);
    if (t)
      rpc_conn_notify(conn, "session/update",
                      json_pack("{s:s, s:o}", "sessionId", s->id, "update", text_update("agent_message_chunk", t)));
    free(t);
  }
  rpc_conn_unref(conn);
  s->busy = 0;
  if (s->closing) sess_teardown(s);
}

static void open_job_main(void *arg) {
  sess *s = arg;
  open_job(s);
  if (rpc_server_post(g_svc->srv, open_done, s) != QC_OK) qc_error("session setup result lost (out of memory)");
}

/* Reload a session this connection already has open: replay it from memory. */
static void replay_job(void *arg) {
  sess *s = arg;
  agent_session_replay(s->as);
  s->open_result = json_pack("{s:o}", "modes", acp_modes_json(agent_session_mode(s->as)));
}

static void replay_done(rpc_server *srv, void *user) {
  (void)srv;
  sess *s = user;
  rpc_req *req = s->req;
  s->req = NULL;
  json_t *r = s->open_result;
  s->open_result = NULL;
  rpc_req_reply(req, r ? r : json_object()); /* may close the connection: see prompt_done */
  s->busy = 0;
  if (s->closing) sess_teardown(s);
}

static void replay_job_main(void *arg) {
  replay_job(arg);
  rpc_server_post(g_svc->srv, replay_done, arg);
}

static const char *conn_model(rpc_conn *c) {
  svc_conn *r = conn_rec(c, 0);
  if (r && r->model) return r->model;
  return g_default_model;
}

void acp_session_open(rpc_req *req, const acp_open_params *p) {
  rpc_conn *conn = rpc_req_conn(req);
  if (atomic_load(&g_svc->stopping)) {
    rpc_req_error(req, RPC_REQUEST_CANCELLED, "the qcoder daemon is shutting down", NULL);
    return;
  }
  if (!conn_rec(conn, 1)) {
    rpc_req_error(req, RPC_INTERNAL_ERROR, "out of memory", NULL);
    return;
  }
  if (p->kind != ACP_OPEN_NEW) {
    sess *open = table_find(p->session_id);
    if (open && open->conn_id != rpc_conn_id(conn)) {
      rpc_req_errorf(req, RPC_INVALID_PARAMS, "session %s is open in another client; close it there first",
                     p->session_id);
      return;
    }
    if (open) {
      if (open->busy) {
        rpc_req_errorf(req, RPC_INVALID_PARAMS, "session %s is busy (a prompt is running)", p->session_id);
        return;
      }
      if (p->mode >= 0) agent_session_set_mode(open->as, (agent_mode)p->mode);
      if (p->kind == ACP_OPEN_RESUME) {
        rpc_req_reply(req, json_pack("{s:o}", "modes", acp_modes_json(agent_session_mode(open->as))));
        return;
      }
      open->busy = 1;
      open->req = req;
      if (job_spawn(replay_job_main, open) != QC_OK) {
        open->busy = 0;
        open->req = NULL;
        rpc_req_error(req, RPC_INTERNAL_ERROR, "cannot start a worker thread", NULL);
      }
      return;
    }
  }
  const char *model = p->model && *p->model ? p->model : conn_model(conn);
  if (!model) {
    rpc_req_error(req, RPC_INVALID_PARAMS,
                  "no model: give one with `qcoder acp --model SPEC` (or --remote URL), start the daemon with "
                  "`qcoder serve --model SPEC`, or pass _meta.qcoder.model in this request (SPEC: a .gguf file, "
                  "http(s)://server/v1, or script:FILE)",
                  NULL);
    return;
  }
  if (g_svc->n_table >= ACP_MAX_SESSIONS) {
    rpc_req_errorf(req, RPC_INTERNAL_ERROR, "this daemon has %d sessions open, its limit; close some (session/close)",
                   ACP_MAX_SESSIONS);
    return;
  }
  sess *s = sess_alloc();
  if (!s) {
    rpc_req_error(req, RPC_INTERNAL_ERROR, "out of memory", NULL);
    return;
  }
  s->op = *p;
  s->op.session_id = p->session_id ? strdup(p->session_id) : NULL;
  s->op.model = NULL;
  s->op.test_command = NULL;
  s->op.mcp_servers = NULL;
  s->cwd = strdup(p->cwd);
  s->model = strdup(model);
  s->test_command = p->test_command ? strdup(p->test_command) : NULL;
  s->mcp_servers = p->mcp_servers ? json_deep_copy(p->mcp_servers) : NULL;
  s->conn_id = rpc_conn_id(conn);
  const json_t *caps = json_object_get(rpc_conn_init_params(conn), "clientCapabilities");
  json_t *fs = json_object_get(caps, "fs");
  s->cap_read = json_is_true(json_object_get(fs, "readTextFile"));
  s->cap_write = json_is_true(json_object_get(fs, "writeTextFile"));
  s->cap_terminal = json_is_true(json_object_get(caps, "terminal"));
  s->io = (tool_io){s->cap_read ? io_read : NULL, s->cap_write ? io_write : NULL, s->cap_terminal ? io_run : NULL, s};
  if (!s->cwd || !s->model || (p->session_id && !s->op.session_id)) {
    sess_free(s);
    rpc_req_error(req, RPC_INTERNAL_ERROR, "out of memory", NULL);
    return;
  }
  snprintf(s->id, sizeof s->id, "%s", p->session_id ? p->session_id : "(new)");
  s->busy = 1;
  s->req = req;
  if (job_spawn(open_job_main, s) != QC_OK) {
    s->req = NULL;
    sess_free(s);
    rpc_req_error(req, RPC_INTERNAL_ERROR, "cannot start a worker thread", NULL);
  }
}

/* ---- prompts and slash commands ------------------------------------------------------- */

static void say(sess *s, const char *text) { notify_update(s, text_update("agent_message_chunk", text)); }

/* /test: run the tests, shown as a tool call. */
static void cmd_test(sess *s, const char *filter) {
  char id[48];
  snprintf(id, sizeof id, "test_%d", ++s->n_test_calls);
  notify_update(s, json_pack("{s:s, s:s, s:s, s:s, s:s}", "sessionUpdate", "tool_call", "toolCallId", id, "title",
                             filter && *filter ? "Run the tests (filtered)" : "Run the tests", "kind", "execute",
                             "status", "in_progress"));
  char *err = NULL;
  tool_ws *ws = cp_ws(s, &err);
  json_t *results = NULL;
  int rc = TOOL_EFAILED;
  if (ws) {
    tool_tests_opts to = {.filter = filter && *filter ? filter : NULL, .cancel = &s->cancelled};
    rc = tool_tests_run(ws, &to, &results, &err);
  }
  qc_buf t;
  qc_buf_init(&t, 1 << 20);
  const char *status = "failed";
  if (rc == TOOL_OK) {
    json_t *sum = json_object_get(results, "summary");
    long total = (long)json_integer_value(json_object_get(sum, "total"));
    long passed = (long)json_integer_value(json_object_get(sum, "passed"));
    long failed = (long)json_integer_value(json_object_get(sum, "failed"));
    long errors = (long)json_integer_value(json_object_get(sum, "errors"));
    long skipped = (long)json_integer_value(json_object_get(sum, "skipped"));
    int exit_code = (int)json_integer_value(json_object_get(sum, "exit_code"));
    qc_buf_printf(&t, "$ %s\n%ld passed, %ld failed", json_string_value(json_object_get(sum, "command")) ?: "?",
                  passed, failed + errors);
    if (skipped) qc_buf_printf(&t, ", %ld skipped", skipped);
    qc_buf_printf(&t, " (%ld tests; exit code %d)\n", total, exit_code);
    size_t i;
    json_t *tc;
    json_array_foreach(json_object_get(results, "tests"), i, tc) {
      const char *st = json_string_value(json_object_get(tc, "status"));
      if (st && (!strcmp(st, "failed") || !strcmp(st, "error")))
        qc_buf_printf(&t, "FAILED %s\n", json_string_value(json_object_get(tc, "name")) ?: "?");
    }
    if (total == 0 || failed + errors > 0) {
      const char *out = json_string_value(json_object_get(sum, "output"));
      if (out && *out) qc_buf_printf(&t, "\n%s", out);
    }
    if (failed + errors == 0 && exit_code == 0) status = "completed";
  } else {
    qc_buf_printf(&t, "The tests could not be run: %s", err ? err : tool_strerror(rc));
  }
  json_t *up = json_pack("{s:s, s:s, s:s, s:[{s:s, s:{s:s, s:s}}]}", "sessionUpdate", "tool_call_update",
                         "toolCallId", id, "status", status, "content", "type", "content", "content", "type", "text",
                         "text", t.data);
  if (up && results) json_object_set(up, "rawOutput", json_object_get(results, "summary"));
  notify_update(s, up);
  qc_buf_release(&t);
  json_decref(results);
  free(err);
}

static void cmd_checkpoint(sess *s, const char *msg) {
  char *err = NULL, *id = NULL;
  tool_ws *ws = cp_ws(s, &err);
  if (ws && tool_checkpoint_create(ws, msg && *msg ? msg : "checkpoint from /checkpoint", &id, &err) == TOOL_OK) {
    json_array_append_new(s->restore_points, json_string(id));
    char *t = qc_asprintf("Checkpoint %s created. /undo restores the files to it.\n", id);
    if (t) say(s, t);
    free(t);
  } else {
    char *t = qc_asprintf("No checkpoint was made: %s\n", err ? err : "unknown error");
    if (t) say(s, t);
    free(t);
  }
  free(id);
  free(err);
}

static void cmd_undo(sess *s) {
  size_t n = json_array_size(s->restore_points);
  if (!n) {
    say(s, "Nothing to undo: this session has made no changes and taken no checkpoint yet.\n");
    return;
  }
  char *target = strdup(json_string_value(json_array_get(s->restore_points, n - 1)));
  char *err = NULL, *safety = NULL;
  tool_ws *ws = target ? cp_ws(s, &err) : NULL;
  json_t *summary = NULL;
  if (ws && tool_checkpoint_create(ws, "before /undo", &safety, &err) != TOOL_OK) {
    qc_warn("session %s: no safety checkpoint before /undo: %s", s->id, err ? err : "?");
    free(err);
    err = NULL;
  }
  if (ws && tool_checkpoint_restore(ws, target, &summary, &err) == TOOL_OK) {
    json_array_remove(s->restore_points, n - 1);
    long restored = (long)json_integer_value(json_object_get(summary, "restored"));
    long removed = (long)json_integer_value(json_object_get(summary, "removed"));
    char *t = qc_asprintf("Restored the files to checkpoint %s: %ld file%s restored, %ld removed.%s%s%s\n", target,
                          restored, restored == 1 ? "" : "s", removed, safety ? " The state before the undo is " : "",
                          safety ? safety : "", safety ? " (`qcoder checkpoint restore` brings it back)." : "");
    if (t) say(s, t);
    free(t);
  } else {
    char *t = qc_asprintf("Undo failed: %s\n", err ? err : "unknown error");
    if (t) say(s, t);
    free(t);
  }
  json_decref(summary);
  free(safety);
  free(target);
  free(err);
}

static int slash(const char *text, const char *name, const char **arg) {
  size_t n = strlen(name);
  if (strncmp(text, name, n) || (text[n] && text[n] != ' ' && text[n] != '\t' && text[n] != '\n')) return 0;
  const char *a = text + n;
  while (*a == ' ' || *a == '\t' || *a == '\n') a++;
  *arg = a;
  return 1;
}

static void prompt_job(void *arg) {
  sess *s = arg;
  s->stop = AGENT_STOP_END_TURN;
  const char *text = s->text, *a = NULL;
  while (*text == ' ' || *text == '\n' || *text == '\t') text++;
  if (slash(text, "/compact", &a)) {
    char *report = NULL, *err = NULL;
    int rc = agent_session_compact(s->as, &report, &err);
    char *t = rc == AGENT_OK ? qc_asprintf("Compacted the conversation: %s.\n", report)
              : rc == AGENT_ECANCELLED ? NULL
                                       : qc_asprintf("Not compacted: %s.\n", err ? err : agent_strerror(rc));
    if (t) say(s, t);
    if (rc == AGENT_ECANCELLED) s->stop = AGENT_STOP_CANCELLED;
    free(t);
    free(report);
    free(err);
  } else if (slash(text, "/checkpoint", &a)) {
    cmd_checkpoint(s, a);
  } else if (slash(text, "/undo", &a)) {
    cmd_undo(s);
  } else if (slash(text, "/test", &a)) {
    cmd_test(s, a);
  } else {
    agent_run_result r;
    int rc = agent_run(s->as, s->text, &r);
    if (rc != AGENT_OK) {
      s->stop = AGENT_STOP_ERROR;
      s->stop_error = strdup(agent_strerror(rc));
    } else {
      s->stop = r.stop;
      if (r.stop == AGENT_STOP_ERROR) s->stop_error = r.error ? strdup(r.error) : strdup("the model backend failed");
    }
    agent_run_result_release(&r);
  }
  if (atomic_load(&s->cancelled) && s->stop != AGENT_STOP_ERROR) s->stop = AGENT_STOP_CANCELLED;
}

/* Answering may close the connection at once (its peer already finished sending), and
 * then on_conn_closed runs inside rpc_req_reply: the session stays `busy` until the
 * answer is out, so that hook only marks it closing, and it is torn down here. */
static void prompt_done(rpc_server *srv, void *user) {
  (void)srv;
  sess *s = user;
  rpc_req *req = s->req;
  s->req = NULL;
  free(s->text);
  s->text = NULL;
  if (s->stop == AGENT_STOP_ERROR) {
    rpc_req_error(req, RPC_INTERNAL_ERROR, s->stop_error ? s->stop_error : "the model backend failed", NULL);
  } else {
    rpc_req_reply(req, json_pack("{s:s}", "stopReason", agent_stop_name(s->stop)));
  }
  free(s->stop_error);
  s->stop_error = NULL;
  s->busy = 0;
  if (s->closing) sess_teardown(s);
}

static void prompt_job_main(void *arg) {
  prompt_job(arg);
  if (rpc_server_post(g_svc->srv, prompt_done, arg) != QC_OK) qc_error("a prompt's answer was lost (out of memory)");
}

static void on_prompt_cancel(rpc_req *req, void *user) {
  (void)req;
  sess_cancel(user);
}

void acp_session_prompt(rpc_req *req, const char *session_id, const char *text) {
  sess *s = find_for(req, session_id);
  if (!s) return;
  if (s->busy) {
    rpc_req_errorf(req, RPC_INVALID_REQUEST, "session %s is busy: a prompt is running (cancel it with session/cancel)",
                   s->id);
    return;
  }
  if (atomic_load(&g_svc->stopping)) {
    rpc_req_error(req, RPC_REQUEST_CANCELLED, "the qcoder daemon is shutting down", NULL);
    return;
  }
  s->text = strdup(text);
  if (!s->text) {
    rpc_req_error(req, RPC_INTERNAL_ERROR, "out of memory", NULL);
    return;
  }
  atomic_store(&s->cancelled, 0);
  s->busy = 1;
  s->req = req;
  rpc_req_on_cancel(req, on_prompt_cancel, s);
  if (job_spawn(prompt_job_main, s) != QC_OK) {
    s->busy = 0;
    s->req = NULL;
    free(s->text);
    s->text = NULL;
    rpc_req_error(req, RPC_INTERNAL_ERROR, "cannot start a worker thread", NULL);
  }
}

int acp_session_cancel(rpc_conn *c, const char *session_id) {
  sess *s = session_id ? table_find(session_id) : NULL;
  if (!s || s->conn_id != rpc_conn_id(c)) return -1;
  if (s->busy) sess_cancel(s);
  return 0;
}

void acp_session_set_mode(rpc_req *req, const char *session_id, agent_mode mode) {
  sess *s = find_for(req, session_id);
  if (!s) return;
  agent_session_set_mode(s->as, mode);
  /* the update first: answering may close the connection and free the session */
  rpc_conn_notify(rpc_req_conn(req), "session/update",
                  json_pack("{s:s, s:{s:s, s:s}}", "sessionId", s->id, "update", "sessionUpdate",
                            "current_mode_update", "currentModeId", agent_mode_name(mode)));
  rpc_req_reply(req, json_object());
}

void acp_session_close(rpc_req *req, const char *session_id) {
  sess *s = find_for(req, session_id);
  if (!s) return;
  s->closing = 1;
  if (s->busy) sess_cancel(s); /* freed when its worker is done */
  else sess_teardown(s);
  rpc_req_reply(req, json_object());
}

/* ---- session/list ----------------------------------------------------------------------- */

typedef struct list_job {
  rpc_req *req;
  char *cwd;
  size_t offset;
} list_job;

static void list_job_main(void *arg) {
  list_job *lj = arg;
  agent_store *st = store_get();
  agent_session_info *v = NULL;
  size_t n = 0;
  if (!st || agent_store_list(st, lj->cwd, &v, &n) != AGENT_OK) {
    rpc_server_post_error(g_svc->srv, lj->req, RPC_INTERNAL_ERROR,
                          "the session database cannot be read (see the daemon log)");
  } else {
    json_t *out = json_array();
    size_t end = lj->offset + ACP_LIST_PAGE < n ? lj->offset + ACP_LIST_PAGE : n;
    for (size_t i = lj->offset; i < end; i++) {
      char when[40];
      qc_iso8601(v[i].updated_ms, when, sizeof when);
      json_t *e = json_pack("{s:s, s:s, s:s}", "sessionId", v[i].id, "cwd", v[i].cwd ? v[i].cwd : "/", "updatedAt",
                            when);
      if (v[i].title && *v[i].title) json_object_set_new(e, "title", json_string(v[i].title));
      json_array_append_new(out, e);
    }
    json_t *res = json_pack("{s:o}", "sessions", out);
    if (end < n) json_object_set_new(res, "nextCursor", json_sprintf("%zu", end));
    rpc_server_post_reply(g_svc->srv, lj->req, res);
    agent_session_info_free(v, n);
  }
  free(lj->cwd);
  free(lj);
}

void acp_session_list(rpc_req *req, const char *cwd, const char *cursor) {
  list_job *lj = calloc(1, sizeof *lj);
  if (!lj || (cwd && !(lj->cwd = strdup(cwd)))) {
    free(lj);
    rpc_req_error(req, RPC_INTERNAL_ERROR, "out of memory", NULL);
    return;
  }
  if (cursor) {
    char *end;
    unsigned long long off = strtoull(cursor, &end, 10);
    if (!*cursor || *end || off > 10000000ull) {
      free(lj->cwd);
      free(lj);
      rpc_req_error(req, RPC_INVALID_PARAMS, "invalid cursor (pass back the nextCursor of the previous page)", NULL);
      return;
    }
    lj->offset = (size_t)off;
  }
  lj->req = req;
  if (job_spawn(list_job_main, lj) != QC_OK) {
    free(lj->cwd);
    free(lj);
    rpc_req_error(req, RPC_INTERNAL_ERROR, "cannot start a worker thread", NULL);
  }
}

/* ---- status ------------------------------------------------------------------------------- */

static json_t *backends_json(void) {
  json_t *a = json_array();
  pthread_mutex_lock(&g_svc->mu);
  for (svc_backend *be = g_svc->backends; be; be = be->next)
    json_array_append_new(a, json_pack("{s:s, s:s, s:i, s:b, s:i, s:I}", "spec", be->spec, "kind",
                                       agent_backend_kind(be->b), "sessions", be->refs, "fairQueue", be->gated,
                                       "waiting", be->gated ? acp_fairq_length(&be->q) : 0, "modelCalls",
                                       (json_int_t)acp_fairq_served(&be->q)));
  pthread_mutex_unlock(&g_svc->mu);
  return a;
}

json_t *acp_sessions_snapshot(void) {
  json_t *ss = json_array();
  for (sess *s = g_svc->table; s; s = s->next)
    json_array_append_new(ss, json_pack("{s:s, s:s, s:s, s:I, s:b, s:s}", "sessionId", s->id, "cwd", s->cwd, "model",
                                        s->model, "conn", (json_int_t)s->conn_id, "busy", s->busy, "mode",
                                        agent_mode_name(agent_session_mode(s->as))));
  int n_all = 0;
  pthread_mutex_lock(&g_svc->mu);
  for (sess *s = g_svc->all; s; s = s->all_next) n_all++;
  int n_jobs = 0;
  for (job *j = g_svc->jobs; j; j = j->next) n_jobs++;
  pthread_mutex_unlock(&g_svc->mu);
  return json_pack("{s:o, s:o, s:i, s:i, s:o}", "sessions", ss, "backends", backends_json(), "allocated", n_all,
                   "workers", n_jobs, "defaultModel", g_default_model ? json_string(g_default_model) : json_null());
}

/* `model` of _qcoder/status: null until a model is loaded, then the loaded specs. */
static json_t *model_info(rpc_server *srv, void *user) {
  (void)srv;
  (void)user;
  json_t *be = backends_json();
  if (!json_array_size(be)) {
    json_decref(be);
    return NULL;
  }
  qc_buf names;
  qc_buf_init(&names, 1 << 16);
  size_t i;
  json_t *b;
  json_array_foreach(be, i, b) qc_buf_printf(&names, "%s%s", i ? ", " : "", json_string_value(json_object_get(b, "spec")));
  json_t *r = json_pack("{s:s, s:o, s:o}", "name", names.data, "default",
                        g_default_model ? json_string(g_default_model) : json_null(), "backends", be);
  qc_buf_release(&names);
  return r;
}

/* ---- models for work outside sessions ------------------------------------------------------ */

struct acp_model {
  svc_backend *be;
};

const char *acp_conn_model(rpc_conn *c) { return g_svc ? conn_model(c) : NULL; }

acp_model *acp_model_acquire(const char *spec, char **errmsg) {
  *errmsg = NULL;
  if (!g_svc || !spec || !*spec) {
    *errmsg = strdup("no model to complete with");
    return NULL;
  }
  acp_model *m = calloc(1, sizeof *m);
  if (!m) {
    *errmsg = strdup("out of memory");
    return NULL;
  }
  m->be = backend_get(spec, errmsg);
  if (!m->be) {
    free(m);
    return NULL;
  }
  return m;
}

agent_backend *acp_model_backend(acp_model *m) { return m->be->b; }

int acp_model_enter(acp_model *m, acp_fairq_waiter *w, atomic_int *cancel) {
  return m->be->gated ? acp_fairq_enter(&m->be->q, w, cancel) : 0;
}

void acp_model_leave(acp_model *m, acp_fairq_waiter *w) {
  if (m->be->gated) acp_fairq_leave(&m->be->q, w);
}

void acp_model_release(acp_model *m) {
  if (!m) return;
  backend_put(m->be);
  free(m);
}

/* ---- lifecycle -------------------------------------------------------------------------- */

void acp_sessions_set_default_model(const char *spec) {
  free(g_default_model);
  g_default_model = spec && *spec ? strdup(spec) : NULL;
}

int acp_sessions_init(rpc_server *srv) {
  if (g_svc) return QC_EINVAL;
  g_svc = calloc(1, sizeof *g_svc);
  if (!g_svc) return QC_ENOMEM;
  g_svc->srv = srv;
  pthread_mutex_init(&g_svc->mu, NULL);
  rpc_server_set_model_hook(srv, model_info, NULL);
  return QC_OK;
}

void acp_sessions_shutdown(void) {
  if (!g_svc) return;
  atomic_store(&g_svc->stopping, 1);
  pthread_mutex_lock(&g_svc->mu);
  for (sess *s = g_svc->all; s; s = s->all_next) {
    atomic_store(&s->cancelled, 1);
    if (s->as) agent_session_cancel(s->as);
    pthread_mutex_lock(&s->mu);
    if (s->pending) call_complete(s->pending, RPC_ECLOSED, NULL, 0, "the daemon is shutting down");
    pthread_mutex_unlock(&s->mu);
  }
  for (svc_backend *be = g_svc->backends; be; be = be->next)
    if (be->gated) acp_fairq_kick(&be->q);
  pthread_mutex_unlock(&g_svc->mu);
  /* join every worker; their reaping posts run (and free them) in rpc_server_free */
  for (;;) {
    pthread_mutex_lock(&g_svc->mu);
    job *j = g_svc->jobs;
    while (j && j->joined) j = j->next;
    if (j) j->joined = 1;
    pthread_mutex_unlock(&g_svc->mu);
    if (!j) break;
    pthread_join(j->th, NULL);
  }
}

void acp_sessions_free(void) {
  if (!g_svc) return;
  atomic_store(&g_svc->stopping, 1);
  /* what the posts left: sessions in the table (idle ones of open connections) */
  while (g_svc->table) {
    sess *s = g_svc->table;
    table_remove(s);
    sess_free(s);
  }
  while (g_svc->all) sess_free(g_svc->all);
  while (g_svc->jobs) { /* reaps that never ran */
    job *j = g_svc->jobs;
    g_svc->jobs = j->next;
    if (!j->joined) pthread_join(j->th, NULL);
    free(j);
  }
  while (g_svc->backends) {
    svc_backend *be = g_svc->backends;
    g_svc->backends = be->next;
    agent_backend_close(be->b);
    acp_fairq_release_all(&be->q);
    free(be->spec);
    free(be);
  }
  while (g_svc->conns) {
    svc_conn *r = g_svc->conns;
    g_svc->conns = r->next;
    free(r->model);
    free(r);
  }
  if (g_svc->store) agent_store_close(g_svc->store);
  pthread_mutex_destroy(&g_svc->mu);
  free(g_svc);
  g_svc = NULL;
  free(g_default_model);
  g_default_model = NULL;
}
