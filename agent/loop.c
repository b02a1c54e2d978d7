/* loop.c — the agent session and its tool-calling loop.
 *
 * agent_run() runs on the caller's thread: render → generate (streaming through the
 * tool-call parser) → for each call: permission → checkpoint → tool → result message →
 * next model call, until the model answers without a call (end_turn), the user cancels
 * (cancelled), the step budget ends (max_turn_requests), the token budget ends or a reply
 * is cut by it (max_tokens), or the backend fails (error). Every step is an event with
 * the shape of an ACP session/update.
 *
 * Invariants:
 *  - The conversation only grows (context.c is the one exception, and says so with an
 *    event), and every message is committed to the store when complete.
 *  - Every tool call the model makes gets exactly one tool result message — a malformed
 *    call, a denial and a cancellation included — so the conversation is always valid for
 *    the next model call and for the chat API of a remote server.
 *  - Nothing is run that the mode and the user did not allow.
 */
#include <stdlib.h>
#include <string.h>

#include "agent/chat_format.h"
#include "agent/session.h"
#include "agent/store.h"
#include "agent/toolcall_parser.h"

/* ---- small helpers ---------------------------------------------------------------------- */

void agent__emit(agent_session *s, agent_event *ev) {
  ev->session_id = s->id;
  if (s->opts.on_event) s->opts.on_event(s->opts.user, ev);
}

static char *xstrdup(const char *s) { return s ? strdup(s) : NULL; }

static int grow_seqs(agent_session *s, size_t need) {
  if (need <= s->seq_cap) return AGENT_OK;
  size_t cap = s->seq_cap ? s->seq_cap : 64;
  while (cap < need) cap *= 2;
  int64_t *p = realloc(s->seqs, cap * sizeof *p);
  if (!p) return AGENT_ENOMEM;
  s->seqs = p;
  s->seq_cap = cap;
  return AGENT_OK;
}

int agent__session_append(agent_session *s, json_t *msg) {
  if (!msg) return AGENT_ENOMEM;
  size_t n = json_array_size(s->msgs);
  if (grow_seqs(s, n + 1) || json_array_append_new(s->msgs, msg)) return AGENT_ENOMEM;
  s->seqs[n] = s->next_seq++;
  long tokens = 0;
  if (s->store) { /* the message's own tokens, for people reading the store */
    qc_buf t;
    qc_buf_init(&t, 0);
    agent__content_text(&t, json_object_get(msg, "content"));
    char *calls = json_dumps(json_object_get(msg, "tool_calls"), JSON_COMPACT | JSON_ENCODE_ANY);
    if (calls) qc_buf_puts(&t, calls);
    free(calls);
    tokens = s->backend->ops->count_tokens(s->backend, t.data, t.len);
    qc_buf_release(&t);
  }
  if (s->store && agent__store_append(s->store, s->id, s->seqs[n], msg, tokens) != AGENT_OK)
    qc_warn("session %s: could not store message %lld", s->id, (long long)s->seqs[n]);
  return AGENT_OK;
}

int agent__generate(agent_session *s, const agent__gen_req *req, agent__gen_res *res) {
  if (s->opts.model_acquire && s->opts.model_acquire(s->opts.user, &s->cancel) != 0) {
    memset(res, 0, sizeof *res);
    res->finish = AGENT__FIN_CANCELLED;
    res->n_prompt = -1;
    return AGENT_OK;
  }
  int rc = s->backend->ops->generate(s->bind, req, res);
  if (s->opts.model_acquire && s->opts.model_release) s->opts.model_release(s->opts.user);
  return rc;
}

int agent__session_render(agent_session *s, qc_buf *out) {
  return agent__render(out, s->msgs, s->tools, 1, NULL);
}

static const char *role_of(const json_t *m) {
  const char *r = json_string_value(json_object_get(m, "role"));
  return r ? r : "";
}

/* ---- tools offered ------------------------------------------------------------------------ */

static int rebuild_tools(agent_session *s) {
  json_t *t = tool_openai_schemas();
  if (!t) return AGENT_ENOMEM;
  if (s->opts.tools) { /* only the tools asked for */
    for (size_t i = json_array_size(t); i-- > 0;) {
      const char *name = json_string_value(json_object_get(json_object_get(json_array_get(t, i), "function"), "name"));
      int keep = 0;
      for (const char *const *w = s->opts.tools; *w && !keep; w++) keep = name && !strcmp(*w, name);
      if (!keep) json_array_remove(t, i);
    }
  }
  if (!s->opts.no_plan_tool) json_array_append_new(t, agent__plan_tool_schema());
  json_decref(s->tools);
  s->tools = t;
  return AGENT_OK;
}

static const agent__extra_tool *find_extra(const agent_session *s, const char *name) {
  for (size_t i = 0; i < s->n_extra; i++)
    if (!strcmp(s->extra[i].name, name)) return &s->extra[i];
  return NULL;
}

int agent_session_add_tool(agent_session *s, const char *name, const char *description,
                           const char *parameters_schema_json, tool_kind kind, unsigned flags,
                           agent_tool_handler handler, void *user, char **errmsg) {
  if (errmsg) *errmsg = NULL;
  if (!name || !*name || !handler || strlen(name) > AGENT__TCP_MAX_NAME || strpbrk(name, "{}<>\"' \t\r\n")) {
    if (errmsg) *errmsg = qc_asprintf("invalid tool name '%s'", name ? name : "");
    return AGENT_EARG;
  }
  if (atomic_load(&s->running)) {
    if (errmsg) *errmsg = strdup("tools cannot be added while the session runs");
    return AGENT_EBUSY;
  }
  int taken = find_extra(s, name) != NULL || !strcmp(name, "todo_write");
  taken |= tool_find(name) != NULL;
  if (taken) {
    if (errmsg) *errmsg = qc_asprintf("a tool named '%s' exists already", name);
    return AGENT_EARG;
  }
  if (s->n_extra >= AGENT__EXTRA_TOOLS_MAX) {
    if (errmsg) *errmsg = strdup("too many session tools");
    return AGENT_EARG;
  }
  json_error_t jerr;
  json_t *schema = parameters_schema_json ? json_loads(parameters_schema_json, 0, &jerr) : json_pack("{s:s, s:{}}", "type", "object", "properties");
  if (!json_is_object(schema)) {
    if (errmsg) *errmsg = qc_asprintf("the parameters schema of '%s' is not a JSON object", name);
    json_decref(schema);
    return AGENT_EARG;
  }
  json_t *def = json_pack("{s:s, s:{s:s, s:s, s:o}}", "type", "function", "function", "name", name, "description",
                          description ? description : "", "parameters", schema);
  agent__extra_tool *x = realloc(s->extra, (s->n_extra + 1) * sizeof *x);
  if (!def || !x) {
    json_decref(def);
    if (x) s->extra = x;
    return AGENT_ENOMEM;
  }
  s->extra = x;
  s->extra[s->n_extra++] = (agent__extra_tool){strdup(name), kind, flags, handler, user};
  json_array_append_new(s->tools, def);
  return AGENT_OK;
}

/* ---- sessions ----------------------------------------------------------------------------- */

/* The sessions open in this process, for checkpoint pruning: a checkpoint taken while one
 * of them was open may be what its /undo goes back to, so none of those is ever pruned.
 * (The daemon holds every session of its clients, so "open in this process" is "open".) */
static pthread_mutex_t g_open_mu = PTHREAD_MUTEX_INITIALIZER;
static agent_session *g_open;

static void open_register(agent_session *s) {
  s->opened_s = qc_wall_ms() / 1000;
  pthread_mutex_lock(&g_open_mu);
  s->open_next = g_open;
  g_open = s;
  s->registered = 1;
  pthread_mutex_unlock(&g_open_mu);
}

static void open_unregister(agent_session *s) {
  if (!s->registered) return;
  pthread_mutex_lock(&g_open_mu);
  for (agent_session **p = &g_open; *p; p = &(*p)->open_next)
    if (*p == s) {
      *p = s->open_next;
      break;
    }
  pthread_mutex_unlock(&g_open_mu);
  s->registered = 0;
}

/* When the oldest session still open was opened (seconds), or `dflt` when none is older. */
static int64_t oldest_open_s(int64_t dflt) {
  int64_t t = dflt;
  pthread_mutex_lock(&g_open_mu);
  for (agent_session *o = g_open; o; o = o->open_next)
    if (o->opened_s < t) t = o->opened_s;
  pthread_mutex_unlock(&g_open_mu);
  return t;
}

void agent_session_opts_init(agent_session_opts *o) {
  memset(o, 0, sizeof *o);
  o->mode = AGENT_MODE_ASK;
  o->sandbox = TOOL_SANDBOX_PREFER;
  o->max_steps = AGENT__DEFAULT_MAX_STEPS;
  o->keep_tool_outputs = AGENT__KEEP_TOOL_OUTPUTS;
}

static int open_ws(agent_session *s, char **errmsg) {
  int full = atomic_load(&s->mode) == AGENT_MODE_FULL_AUTO;
  tool_ws_opts wo = {.sandbox = full ? TOOL_SANDBOX_REQUIRE : s->opts.sandbox, .test_command = s->test_command,
                     .io = s->opts.io};
  tool_ws *ws = NULL;
  char *err = NULL;
  if (tool_ws_open(s->cwd, &wo, &ws, &err) != TOOL_OK) {
    if (errmsg) *errmsg = qc_asprintf("cannot open the workspace %s: %s", s->cwd, err ? err : "?");
    free(err);
    return AGENT_EARG;
  }
  if (s->ws) tool_ws_close(s->ws);
  s->ws = ws;
  s->ws_required_sandbox = full;
  return AGENT_OK;
}

static agent_session *session_alloc(const agent_session_opts *o) {
  agent_session *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->opts = *o;
  if (s->opts.max_steps <= 0) s->opts.max_steps = AGENT__DEFAULT_MAX_STEPS;
  if (s->opts.keep_tool_outputs <= 0) s->opts.keep_tool_outputs = AGENT__KEEP_TOOL_OUTPUTS;
  s->title = xstrdup(o->title);
  s->test_command = xstrdup(o->test_command);
  s->system_prompt = xstrdup(o->system_prompt);
  s->system_append = xstrdup(o->system_append);
  s->opts.title = s->title;
  s->opts.test_command = s->test_command;
  s->opts.system_prompt = s->system_prompt;
  s->opts.system_append = s->system_append;
  s->backend = o->backend;
  s->store = o->store;
  pthread_mutex_init(&s->mu, NULL);
  atomic_store(&s->mode, (int)o->mode);
  s->msgs = json_array();
  s->allow_always = json_object();
  s->reject_always = json_object();
  return s;
}

void agent_session_free(agent_session *s) {
  if (!s) return;
  open_unregister(s);
  if (s->bind) s->backend->ops->unbind(s->bind);
  if (s->ws) tool_ws_close(s->ws);
  json_decref(s->msgs);
  json_decref(s->tools);
  json_decref(s->allow_always);
  json_decref(s->reject_always);
  json_decref(s->plan);
  for (size_t i = 0; i < s->n_extra; i++) free(s->extra[i].name);
  free(s->extra);
  free(s->seqs);
  free(s->cwd);
  free(s->title);
  free(s->test_command);
  free(s->system_prompt);
  free(s->system_append);
  free(s->last_call_sig);
  free(s->last_result_sig);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

/* Common to new and resume: workspace, backend binding, tools. */
static int session_setup(agent_session *s, char **errmsg) {
  int rc = open_ws(s, errmsg);
  if (!rc) rc = s->backend->ops->bind(s->backend, &s->bind, errmsg);
  if (!rc) rc = rebuild_tools(s);
  return rc;
}

static size_t count_for_map(void *user, const char *text, size_t len) {
  agent_session *s = user;
  long n = s->backend->ops->count_tokens(s->backend, text, len);
  return n > 0 ? (size_t)n : 0;
}

/* The repo map for the system prompt, or NULL (none available, or it failed: logged). */
static char *repo_map(agent_session *s) {
  tool_repomap *m = NULL;
  char *err = NULL;
  if (tool_repomap_create(s->cwd, &m, &err) != TOOL_OK) {
    qc_info("session %s: no repo map: %s", s->id, err ? err : "?");
    free(err);
    return NULL;
  }
  char *text = tool_repomap_render(m, NULL, 0, AGENT__REPOMAP_TOKENS, count_for_map, s);
  tool_repomap_free(m);
  return text;
}

int agent_session_new(const agent_session_opts *o, agent_session **out, char **errmsg) {
  *out = NULL;
  if (errmsg) *errmsg = NULL;
  if (!o || !o->cwd || !o->backend) {
    if (errmsg) *errmsg = strdup("a session needs a workspace (cwd) and a backend");
    return AGENT_EARG;
  }
  char *cwd = realpath(o->cwd, NULL);
  if (!cwd) {
    if (errmsg) *errmsg = qc_asprintf("the workspace %s does not exist", o->cwd);
    return AGENT_EARG;
  }
  agent_session *s = session_alloc(o);
  if (!s) {
    free(cwd);
    return AGENT_ENOMEM;
  }
  s->cwd = cwd;
  s->opts.cwd = s->cwd;
  agent__new_id(s->id, sizeof s->id);
  int rc = session_setup(s, errmsg);
  if (rc) goto fail;
  char *map = s->system_prompt || o->no_repo_map ? NULL : repo_map(s);
  char *sys = s->system_prompt ? strdup(s->system_prompt) : agent__system_prompt(s->cwd, map, s->system_append);
  free(map);
  if (!sys) {
    rc = AGENT_ENOMEM;
    goto fail;
  }
  if (s->store &&
      agent__store_create(s->store, s->id, s->cwd, s->title, agent_mode_name(o->mode), agent_backend_spec(s->backend))) {
    free(sys);
    if (errmsg) *errmsg = strdup("cannot record the session in the session database");
    rc = AGENT_ESTORE;
    goto fail;
  }
  rc = agent__session_append(s, json_pack("{s:s, s:s}", "role", "system", "content", sys));
  free(sys);
  if (rc) goto fail;
  open_register(s);
  *out = s;
  return AGENT_OK;
fail:
  agent_session_free(s);
  return rc;
}

int agent_session_resume(const agent_session_opts *o, const char *session_id, agent_session **out, char **errmsg) {
  *out = NULL;
  if (errmsg) *errmsg = NULL;
  if (!o || !o->store || !o->backend || !session_id) {
    if (errmsg) *errmsg = strdup("resuming needs the session store, a backend and a session id");
    return AGENT_EARG;
  }
  agent_session_info info;
  json_t *msgs = NULL;
  int64_t *seqs = NULL;
  int rc = agent__store_load(o->store, session_id, &info, &msgs, &seqs, errmsg);
  if (rc) return rc;
  agent_session *s = session_alloc(o);
  if (!s) {
    rc = AGENT_ENOMEM;
    goto out;
  }
  snprintf(s->id, sizeof s->id, "%s", info.id);
  s->cwd = o->cwd ? realpath(o->cwd, NULL) : xstrdup(info.cwd);
  s->opts.cwd = s->cwd;
  if (!s->title) s->title = xstrdup(info.title);
  s->opts.title = s->title;
  agent_mode m;
  if (agent_mode_parse(info.mode, &m) == AGENT_OK) atomic_store(&s->mode, (int)m);
  if (!s->cwd) {
    if (errmsg) *errmsg = qc_asprintf("the session's workspace %s does not exist any more", info.cwd);
    rc = AGENT_EARG;
    goto out;
  }
  size_t n = json_array_size(msgs);
  if (!n || strcmp(role_of(json_array_get(msgs, 0)), "system")) {
    if (errmsg) *errmsg = qc_asprintf("session %s has no system message: it cannot be resumed", session_id);
    rc = AGENT_ESTORE;
    goto out;
  }
  rc = session_setup(s, errmsg);
  if (rc) goto out;
  if ((rc = grow_seqs(s, n + 16))) goto out;
  json_decref(s->msgs);
  s->msgs = msgs;
  msgs = NULL;
  memcpy(s->seqs, seqs, n * sizeof *seqs);
  s->next_seq = seqs[n - 1] + 1;
  /* a run cut off mid-way (crash) may have left calls without results: answer them */
  json_t *last = json_array_get(s->msgs, json_array_size(s->msgs) - 1);
  json_t *calls = json_object_get(last, "tool_calls");
  if (!strcmp(role_of(last), "assistant") && json_array_size(calls)) {
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c) {
      const char *cid = json_string_value(json_object_get(c, "id"));
      agent__session_append(s, json_pack("{s:s, s:s, s:s}", "role", "tool", "tool_call_id", cid ? cid : "",
                                         "content", "Error: this tool call was interrupted (the session ended before "
                                                    "it finished); check the state before repeating it."));
    }
  }
  open_register(s);
  *out = s;
  s = NULL;
out:
  if (s) agent_session_free(s);
  json_decref(msgs);
  free(seqs);
  free(info.id);
  free(info.cwd);
  free(info.title);
  free(info.mode);
  free(info.backend);
  return rc;
}

const char *agent_session_id(const agent_session *s) { return s->id; }
agent_mode agent_session_mode(const agent_session *s) { return (agent_mode)atomic_load(&s->mode); }

void agent_session_set_mode(agent_session *s, agent_mode m) {
  atomic_store(&s->mode, (int)m);
  if (s->store) agent__store_touch(s->store, s->id, NULL, agent_mode_name(m));
}

void agent_session_cancel(agent_session *s) {
  atomic_store(&s->cancel, 1);
  pthread_mutex_lock(&s->mu);
  if (atomic_load(&s->running) && s->bind) s->backend->ops->cancel(s->bind);
  pthread_mutex_unlock(&s->mu);
}

json_t *agent_session_messages(const agent_session *s) { return json_deep_copy(s->msgs); }

char *agent_session_render(agent_session *s) {
  qc_buf b;
  qc_buf_init(&b, 0);
  if (agent__session_render(s, &b)) {
    qc_buf_release(&b);
    return NULL;
  }
  return qc_buf_detach(&b, NULL);
}

/* ---- one model call ------------------------------------------------------------------------- */

typedef struct turn {
  agent_session *s;
  agent__tcp *parser;
  qc_buf text;           /* the reply's prose */
  qc_buf pending;        /* an incomplete UTF-8 tail not yet shown */
  agent__call **calls;
  size_t n_calls, cap_calls;
  int oom;
} turn;

static void show_text(turn *t, const char *s, size_t n, int flush) {
  qc_buf_append(&t->pending, s, n);
  size_t k = flush ? t->pending.len : qc_utf8_complete_len(t->pending.data, t->pending.len);
  if (!k) return;
  char *clean = qc_utf8_sanitize(t->pending.data, k, &k);
  if (clean && k) {
    agent_event ev = {.type = AGENT_EVENT_MESSAGE_CHUNK, .text = clean, .text_len = k};
    agent__emit(t->s, &ev);
  }
  free(clean);
  qc_buf_consume(&t->pending, flush ? t->pending.len : qc_utf8_complete_len(t->pending.data, t->pending.len));
}

static void turn_on_text(void *user, const char *s, size_t n) {
  turn *t = user;
  if (qc_buf_append(&t->text, s, n)) t->oom = 1;
  show_text(t, s, n, 0);
}

static void announce_call(agent_session *s, agent__call *c);

/* A call the parser completed: kept for running after the reply, and shown at once (the
 * model may still be writing the rest of the reply). */
static void turn_add_call(turn *t, agent__call *c) {
  if (t->n_calls == t->cap_calls) {
    size_t cap = t->cap_calls ? t->cap_calls * 2 : 8;
    agent__call **p = realloc(t->calls, cap * sizeof *p);
    if (!p) {
      agent__call_free(c);
      t->oom = 1;
      return;
    }
    t->calls = p;
    t->cap_calls = cap;
  }
  t->calls[t->n_calls++] = c;
  announce_call(t->s, c);
  if (!c->id) t->oom = 1;
}

static void turn_on_call(void *user, agent__call *c) { turn_add_call(user, c); }

static void gen_on_text(void *user, const char *s, size_t n) {
  turn *t = user;
  agent__tcp_feed(t->parser, s, n);
}

static void gen_on_native(void *user, const char *id, const char *name, const char *args, int cut) {
  turn *t = user;
  agent__call *c = agent__call_from_native(t->s->tools, id, name, args);
  if (c && cut && c->error) agent__call_mark_cut(c); /* arguments cut short, not malformed */
  if (c) turn_add_call(t, c);
  else t->oom = 1;
}

static void turn_release(turn *t) {
  agent__tcp_free(t->parser);
  qc_buf_release(&t->text);
  qc_buf_release(&t->pending);
  for (size_t i = 0; i < t->n_calls; i++) agent__call_free(t->calls[i]);
  free(t->calls);
}

/* ---- running one tool call -------------------------------------------------------------------- */

typedef struct live {
  agent_session *s;
  const char *call_id;
  qc_buf tail;
  uint64_t last_ms;
} live;

static void live_output(void *user, const char *chunk, size_t len) {
  live *l = user;
  qc_buf_append(&l->tail, chunk, len);
  if (l->tail.len > AGENT__LIVE_OUTPUT_TAIL) {
    size_t drop = l->tail.len - AGENT__LIVE_OUTPUT_TAIL;
    while (drop < l->tail.len && ((unsigned char)l->tail.data[drop] & 0xC0) == 0x80) drop++;
    qc_buf_consume(&l->tail, drop);
  }
  uint64_t now = qc_now_ms();
  if (now - l->last_ms < AGENT__LIVE_OUTPUT_MS) return;
  l->last_ms = now;
  char *text = qc_utf8_sanitize(l->tail.data, l->tail.len, NULL);
  agent_event ev = {.type = AGENT_EVENT_TOOL_CALL_UPDATE, .tool_call_id = l->call_id, .status = "in_progress",
                    .content = text ? text : ""};
  agent__emit(l->s, &ev);
  free(text);
}


typedef struct call_meta {
  const char *kind;
  unsigned flags;
  int known;          /* a tool we can run */
  char *title;
  agent_location loc;
  char *loc_path;
} call_meta;

static int offered(const agent_session *s, const char *name) {
  size_t i;
  json_t *t;
  json_array_foreach(s->tools, i, t) {
    const char *n = json_string_value(json_object_get(json_object_get(t, "function"), "name"));
    if (n && !strcmp(n, name)) return 1;
  }
  return 0;
}

static void call_meta_init(agent_session *s, const agent__call *c, call_meta *m) {
  memset(m, 0, sizeof *m);
  m->kind = "other";
  const agent__extra_tool *x = find_extra(s, c->name);
  const tool_def *d = tool_find(c->name);
  if (d && !(d->flags & TOOL_F_INTERNAL) && offered(s, c->name)) {
    m->kind = tool_kind_name(d->kind);
    m->flags = d->flags;
    m->known = 1;
  }
  if (x) {
    m->kind = tool_kind_name(x->kind);
    m->flags = x->flags;
    m->known = 1;
  } else if (!strcmp(c->name, "todo_write") && !s->opts.no_plan_tool) {
    m->kind = "think";
    m->known = 1;
  }
  /* title: the tool and its most telling argument */
  static const char *const keys[] = {"path", "command", "pattern", "query", "symbol", "file", "filter", NULL};
  const char *arg = NULL;
  for (const char *const *k = keys; *k && !arg; k++) arg = json_string_value(json_object_get(c->args, *k));
  if (!*c->name) m->title = strdup("malformed tool call");
  else if (arg) {
    size_t al = strlen(arg);
    m->title = al > 80 ? qc_asprintf("%s %.77s…", c->name, arg) : qc_asprintf("%s %s", c->name, arg);
    for (char *p = m->title; p && *p; p++)
      if (*p == '\n' || *p == '\r') *p = ' ';
  } else {
    m->title = strdup(c->name);
  }
  const char *path = json_string_value(json_object_get(c->args, "path"));
  if (path && m->known) {
    m->loc_path = path[0] == '/' ? strdup(path) : qc_path_join(s->cwd, path);
    m->loc.path = m->loc_path;
    json_t *line = json_object_get(c->args, "line");
    if (!line) line = json_object_get(c->args, "offset");
    if (json_is_integer(line) && json_integer_value(line) > 0) m->loc.line = (int)json_integer_value(line);
  }
}

static void call_meta_release(call_meta *m) {
  free(m->title);
  free(m->loc_path);
}

/* The call's id: the server's for a native call, else a new one. It is given when the call
 * is parsed and never changes: the pending event, the updates, the conversation and the
 * store all use it. */
static void ensure_call_id(agent__call *c) {
  if (c->id) return;
  char rid[40];
  agent__new_id(rid, sizeof rid);
  c->id = qc_asprintf("call_%.24s", rid);
}

/* The TOOL_CALL event (status pending), sent as soon as the parser has the whole call —
 * while the model may still be generating the rest of its reply. */
static void announce_call(agent_session *s, agent__call *c) {
  ensure_call_id(c);
  if (!c->id) return; /* out of memory: the run ends with an error, the call is not run */
  call_meta m;
  call_meta_init(s, c, &m);
  agent_event ev = {.type = AGENT_EVENT_TOOL_CALL, .tool_call_id = c->id, .tool_name = c->name, .title = m.title,
                    .kind = m.kind, .status = "pending", .raw_input = c->args,
                    .locations = m.loc.path ? &m.loc : NULL, .n_locations = m.loc.path ? 1 : 0,
                    .has_locations = m.loc.path != NULL};
  agent__emit(s, &ev);
  call_meta_release(&m);
}

/* Locations from a result's data.locations. */
static agent_location *result_locations(const json_t *data, size_t *n) {
  json_t *locs = json_object_get(data, "locations");
  *n = 0;
  if (!json_array_size(locs)) return NULL;
  size_t cnt = json_array_size(locs) > 64 ? 64 : json_array_size(locs);
  agent_location *v = calloc(cnt, sizeof *v);
  if (!v) return NULL;
  for (size_t i = 0; i < cnt; i++) {
    json_t *l = json_array_get(locs, i);
    const char *p = json_string_value(json_object_get(l, "path"));
    if (!p) continue;
    v[*n].path = p;
    json_t *ln = json_object_get(l, "line");
    v[*n].line = json_is_integer(ln) ? (int)json_integer_value(ln) : 0;
    (*n)++;
  }
  return v;
}

typedef enum { RUN_DONE, RUN_CANCELLED } run_status;

/* The plan tool: the complete list, validated, then a plan event. */
static int run_plan_tool(agent_session *s, const json_t *args, tool_result *res) {
  json_t *todos = json_object_get(args, "todos");
  size_t n = json_array_size(todos), done = 0;
  agent_plan_entry *e = calloc(n ? n : 1, sizeof *e);
  if (!e) return AGENT_ENOMEM;
  size_t i;
  json_t *t;
  json_array_foreach(todos, i, t) {
    e[i].content = json_string_value(json_object_get(t, "content"));
    e[i].status = json_string_value(json_object_get(t, "status"));
    e[i].priority = json_string_value(json_object_get(t, "priority"));
    if (!e[i].priority) e[i].priority = "medium";
    if (!e[i].content || !e[i].status ||
        (strcmp(e[i].status, "pending") && strcmp(e[i].status, "in_progress") && strcmp(e[i].status, "completed")) ||
        (strcmp(e[i].priority, "high") && strcmp(e[i].priority, "medium") && strcmp(e[i].priority, "low"))) {
      res->ok = 0;
      res->error = qc_asprintf("todos[%zu] needs \"content\" and a \"status\" of pending, in_progress or completed "
                               "(and \"priority\", if given, high, medium or low)", i);
      free(e);
      return AGENT_OK;
    }
    done += !strcmp(e[i].status, "completed");
  }
  agent_event ev = {.type = AGENT_EVENT_PLAN, .plan = e, .n_plan = n};
  agent__emit(s, &ev);
  free(e);
  json_decref(s->plan);
  s->plan = json_deep_copy(todos);
  res->ok = 1;
  res->output = qc_asprintf("Plan updated: %zu step%s, %zu completed.", n, n == 1 ? "" : "s", done);
  return AGENT_OK;
}

/* Ask (or remember). Returns 1 allowed, 0 denied, -1 cancelled. */
static int permission(agent_session *s, const agent__call *c, const call_meta *m) {
  agent_mode mode = (agent_mode)atomic_load(&s->mode);
  int mutates = (m->flags & TOOL_F_MUTATES) != 0, exec = (m->flags & TOOL_F_EXEC) != 0;
  if (!mutates && !exec) return 1;
  if (mode == AGENT_MODE_FULL_AUTO) return 1;
  if (mode == AGENT_MODE_AUTO_EDIT && !exec) return 1;
  pthread_mutex_lock(&s->mu);
  int always_yes = json_object_get(s->allow_always, c->name) != NULL;
  int always_no = json_object_get(s->reject_always, c->name) != NULL;
  pthread_mutex_unlock(&s->mu);
  if (always_no) return 0;
  if (always_yes) return 1;
  if (!s->opts.request_permission) return 0;
  agent_tool_call_info info = {.session_id = s->id, .tool_call_id = c->id, .tool_name = c->name, .title = m->title,
                               .kind = m->kind, .raw_input = c->args, .locations = m->loc.path ? &m->loc : NULL,
                               .n_locations = m->loc.path ? 1 : 0};
  agent_permission p = s->opts.request_permission(s->opts.user, &info);
  if (atomic_load(&s->cancel)) return -1;
  pthread_mutex_lock(&s->mu);
  if (p == AGENT_PERMISSION_ALLOW_ALWAYS) json_object_set_new(s->allow_always, c->name, json_true());
  if (p == AGENT_PERMISSION_REJECT_ALWAYS) json_object_set_new(s->reject_always, c->name, json_true());
  pthread_mutex_unlock(&s->mu);
  switch (p) {
  case AGENT_PERMISSION_ALLOW_ONCE:
  case AGENT_PERMISSION_ALLOW_ALWAYS: return 1;
  case AGENT_PERMISSION_CANCELLED: return -1;
  default: return 0;
  }
}

static char *bounded_text(const char *prefix, const char *text) {
  const char *t = text ? text : "";
  size_t n = strlen(t);
  if (!n && !prefix) return strdup("(no output)");
  if (n > AGENT__TOOL_TEXT_MAX) {
    size_t k = qc_utf8_complete_len(t, AGENT__TOOL_TEXT_MAX);
    return qc_asprintf("%s%.*s\n[… %zu more bytes not shown]", prefix ? prefix : "", (int)k, t, n - k);
  }
  return qc_asprintf("%s%s", prefix ? prefix : "", t);
}

/* A checkpoint of the working tree: the session's hook, else the tools' own. `c` is NULL
 * for the one taken before the run's first change. Failures are logged; the tool runs. */
static void checkpoint(agent_session *s, const agent__call *c) {
  char *id = NULL, *err = NULL;
  int rc;
  if (s->opts.checkpoint) {
    rc = s->opts.checkpoint(s->opts.user, s->cwd, s->id, c ? c->id : NULL, &id, &err);
  } else {
    char *msg = c ? qc_asprintf("qcoder session %s: after %s (%s)", s->id, c->name, c->id)
                  : qc_asprintf("qcoder session %s: before the changes of this prompt", s->id);
    rc = tool_checkpoint_create(s->ws, msg ? msg : "qcoder checkpoint", &id, &err) == TOOL_OK ? 0 : 1;
    free(msg);
  }
  if (rc == 0 && id) {
    if (s->store) agent__store_checkpoint(s->store, s->id, id, c ? c->id : NULL);
  } else {
    qc_warn("session %s: checkpoint %s failed: %s", s->id, c ? "after a tool call" : "before changes",
            err ? err : "?");
  }
  free(id);
  free(err);
}

/* The pruning limits (limits.h); tests shrink them. */
static _Atomic long g_prune_keep = AGENT__CHECKPOINT_KEEP;
static _Atomic long g_prune_age_s = (long)AGENT__CHECKPOINT_MAX_AGE_DAYS * 86400;

void agent__set_checkpoint_prune_limits(long keep, long max_age_s) {
  atomic_store(&g_prune_keep, keep >= 0 ? keep : AGENT__CHECKPOINT_KEEP);
  atomic_store(&g_prune_age_s, max_age_s >= 0 ? max_age_s : (long)AGENT__CHECKPOINT_MAX_AGE_DAYS * 86400);
}

/* Forget old checkpoints of the workspace's repository, so a long-lived workspace does not
 * collect refs forever. A checkpoint goes only when all three hold:
 *   - it is not among the newest AGENT__CHECKPOINT_KEEP;
 *   - it is older than AGENT__CHECKPOINT_MAX_AGE_DAYS;
 *   - it was taken before the oldest session open in this process was opened (each open
 *     session's /undo and restore points are checkpoints taken while it was open).
 * Done once per run, after the run's first checkpoint. Failures are logged, never fatal. */
static void prune_checkpoints(agent_session *s) {
  int64_t now = qc_wall_ms() / 1000;
  int64_t cutoff = now - atomic_load(&g_prune_age_s);
  /* 2 s of margin: commit times are whole seconds and the clock moves during the prune */
  int64_t open_cut = oldest_open_s(INT64_MAX) - 2;
  if (open_cut < cutoff) cutoff = open_cut;
  if (cutoff <= 0) return;
  size_t removed = 0;
  char *err = NULL;
  if (tool_checkpoint_prune(s->ws, (size_t)atomic_load(&g_prune_keep), now - cutoff, &removed, &err) != TOOL_OK)
    qc_warn("session %s: checkpoint pruning failed: %s", s->id, err ? err : "?");
  else if (removed)
    qc_info("session %s: pruned %zu old checkpoint%s", s->id, removed, removed == 1 ? "" : "s");
  free(err);
}

/* Run one call (already announced, pending, when it was parsed) and append its result
 * message. */
static run_status run_call(agent_session *s, agent__call *c, int64_t msg_seq, int cancelled_already) {
  call_meta m;
  call_meta_init(s, c, &m);
  if (s->store) agent__store_tool_call(s->store, s->id, c->id, msg_seq, c->name, c->args, "pending");

  tool_result res = {0};
  const char *status = "failed";
  char *text = NULL;
  run_status rs = RUN_DONE;
  if (cancelled_already || atomic_load(&s->cancel)) {
    text = strdup("Cancelled by the user before this tool ran.");
    rs = RUN_CANCELLED;
  } else if (c->error) {
    text = qc_asprintf("Error: %s. The call was not run; fix it and call again if still needed.", c->error);
  } else if (!m.known) {
    text = qc_asprintf("Error: unknown tool '%s'.", c->name);
  } else if (atomic_load(&s->mode) == AGENT_MODE_READ_ONLY && (m.flags & (TOOL_F_MUTATES | TOOL_F_EXEC))) {
    text = qc_asprintf("Not run: this session is read-only, so %s (which %s) is not allowed. Describe the change "
                       "instead, or ask the user to switch modes.", c->name,
                       (m.flags & TOOL_F_EXEC) ? "runs commands" : "changes files");
  } else {
    int p = permission(s, c, &m);
    if (p < 0) {
      text = strdup("Cancelled by the user.");
      atomic_store(&s->cancel, 1);
      rs = RUN_CANCELLED;
    } else if (p == 0) {
      text = qc_asprintf("The user denied this action: %s was not run. Do not retry it as is; ask the user or try "
                         "another way.", c->name);
    } else {
      int changes = (m.flags & (TOOL_F_MUTATES | TOOL_F_EXEC)) && !s->opts.no_checkpoints;
      if (changes && !s->checkpointed) { /* the state before this prompt changed anything */
        checkpoint(s, NULL);
        s->checkpointed = 1;
        prune_checkpoints(s);
      }
      agent_event up = {.type = AGENT_EVENT_TOOL_CALL_UPDATE, .tool_call_id = c->id, .title = m.title,
                        .status = "in_progress"};
      agent__emit(s, &up);
      live lv = {.s = s, .call_id = c->id, .last_ms = qc_now_ms()};
      qc_buf_init(&lv.tail, 0);
      const agent__extra_tool *x = find_extra(s, c->name);
      if (x) {
        x->handler(x->user, c->args, &s->cancel, &res);
      } else if (!strcmp(c->name, "todo_write")) {
        run_plan_tool(s, c->args, &res);
      } else {
        tool_call_opts to = {.cancel = &s->cancel, .on_output = live_output, .user = &lv};
        tool_call(s->ws, c->name, c->args, &to, &res);
      }
      qc_buf_release(&lv.tail);
      if (changes) checkpoint(s, c); /* and the state after each change */
      if (atomic_load(&s->cancel)) rs = RUN_CANCELLED;
      if (res.ok) {
        status = "completed";
        text = bounded_text(NULL, res.output);
      } else {
        text = bounded_text("Error: ", res.error ? res.error : "the tool failed");
      }
    }
  }
  if (!text) text = strdup("Error: out of memory");
  if (text && !qc_utf8_valid(text, strlen(text))) { /* the model and the editor read UTF-8 only */
    char *clean = qc_utf8_sanitize(text, strlen(text), NULL);
    if (clean) {
      free(text);
      text = clean;
    }
  }

  /* loop detection: the same call with the same result again */
  char *args = json_dumps(c->args, JSON_COMPACT | JSON_PRESERVE_ORDER);
  char *sig = qc_asprintf("%s %s", c->name, args ? args : "");
  char rh[65];
  qc_sha256_hex(text, strlen(text), rh);
  if (sig && s->last_call_sig && !strcmp(sig, s->last_call_sig) && s->last_result_sig && !strcmp(rh, s->last_result_sig)) {
    s->repeat_count++;
    char *t2 = qc_asprintf("%s\n\n[Note: you made this exact call %d times in a row with the same result. Do "
                           "something different.]", text, s->repeat_count + 1);
    if (t2) {
      free(text);
      text = t2;
    }
  } else {
    s->repeat_count = 0;
  }
  free(s->last_call_sig);
  free(s->last_result_sig);
  s->last_call_sig = sig;
  s->last_result_sig = strdup(rh);
  free(args);

  /* the update: status, the text, the diff and locations of edits, the raw result */
  json_t *raw = res.output || res.error || res.data ? tool_result_to_json(&res) : NULL;
  json_t *dj = json_object_get(res.data, "diff");
  agent_diff diff = {json_string_value(json_object_get(dj, "path")), json_string_value(json_object_get(dj, "oldText")),
                     json_string_value(json_object_get(dj, "newText"))};
  size_t n_locs = 0;
  agent_location *locs = result_locations(res.data, &n_locs);
  agent_event fin = {.type = AGENT_EVENT_TOOL_CALL_UPDATE, .tool_call_id = c->id, .title = m.title, .status = status,
                     .content = text, .diff = diff.path && diff.new_text ? &diff : NULL, .locations = locs,
                     .n_locations = n_locs, .has_locations = n_locs > 0, .raw_output = raw};
  agent__emit(s, &fin);
  if (s->store)
    agent__store_tool_result(s->store, s->id, c->id, status, res.ok ? res.output : NULL, res.ok ? NULL : text, res.data);
  free(locs);
  json_decref(raw);
  tool_result_release(&res);
  agent__session_append(s, json_pack("{s:s, s:s, s:s}", "role", "tool", "tool_call_id", c->id, "content", text));
  free(text);
  call_meta_release(&m);
  return rs;
}

/* ---- replay (ACP session/load) ----------------------------------------------------------- */

void agent_session_replay(agent_session *s) {
  size_t i;
  json_t *m;
  json_array_foreach(s->msgs, i, m) {
    if (i == 0) continue; /* the system prompt is not part of the conversation shown */
    const char *role = role_of(m);
    qc_buf text;
    qc_buf_init(&text, 0);
    agent__content_text(&text, json_object_get(m, "content"));
    if (!strcmp(role, "tool")) {
      const char *id = json_string_value(json_object_get(m, "tool_call_id"));
      int failed = qc_str_has_prefix(text.data, "Error:") || qc_str_has_prefix(text.data, "Not run:") ||
                   qc_str_has_prefix(text.data, "The user denied") || qc_str_has_prefix(text.data, "Cancelled");
      agent_event ev = {.type = AGENT_EVENT_TOOL_CALL_UPDATE, .tool_call_id = id ? id : "",
                        .status = failed ? "failed" : "completed", .content = text.data};
      agent__emit(s, &ev);
    } else if (text.len) {
      agent_event ev = {.type = strcmp(role, "assistant") ? AGENT_EVENT_USER_MESSAGE_CHUNK : AGENT_EVENT_MESSAGE_CHUNK,
                        .text = text.data, .text_len = text.len};
      agent__emit(s, &ev);
    }
    size_t j;
    json_t *call;
    json_array_foreach(json_object_get(m, "tool_calls"), j, call) {
      json_t *fn = json_object_get(call, "function");
      agent__call c = {.id = (char *)json_string_value(json_object_get(call, "id")),
                       .name = (char *)(json_string_value(json_object_get(fn, "name")) ?: ""),
                       .args = json_object_get(fn, "arguments")};
      if (!json_is_object(c.args)) continue;
      call_meta cm;
      call_meta_init(s, &c, &cm);
      agent_event ev = {.type = AGENT_EVENT_TOOL_CALL, .tool_call_id = c.id ? c.id : "", .tool_name = c.name,
                        .title = cm.title, .kind = cm.kind, .status = "pending", .raw_input = c.args,
                        .locations = cm.loc.path ? &cm.loc : NULL, .n_locations = cm.loc.path ? 1 : 0,
                        .has_locations = cm.loc.path != NULL};
      agent__emit(s, &ev);
      call_meta_release(&cm);
    }
    qc_buf_release(&text);
  }
}

/* ---- the run ------------------------------------------------------------------------------- */

/* The model call failed after some calls were announced: none of them runs (the reply is
 * not kept), and each gets its final update so no editor shows it pending forever. */
static void fail_announced(agent_session *s, turn *t, const char *why) {
  for (size_t i = 0; i < t->n_calls; i++) {
    if (!t->calls[i]->id) continue; /* never announced */
    char *text = qc_asprintf("Not run: the model call failed (%s).", why ? why : "unknown error");
    agent_event ev = {.type = AGENT_EVENT_TOOL_CALL_UPDATE, .tool_call_id = t->calls[i]->id, .status = "failed",
                      .content = text ? text : "Not run: the model call failed."};
    agent__emit(s, &ev);
    free(text);
  }
}

static void stop_event(agent_session *s, agent_run_result *res) {
  agent_event ev = {.type = AGENT_EVENT_STOP, .stop = res->stop, .text = res->error,
                    .text_len = res->error ? strlen(res->error) : 0};
  agent__emit(s, &ev);
}

static char *first_line_title(const char *prompt) {
  size_t n = strcspn(prompt, "\n");
  if (n > 80) n = qc_utf8_complete_len(prompt, 80);
  return qc_utf8_sanitize(prompt, n, NULL);
}

int agent_run(agent_session *s, const char *prompt, agent_run_result *res) {
  memset(res, 0, sizeof *res);
  if (!s || !prompt) return AGENT_EARG;
  int expected = 0;
  pthread_mutex_lock(&s->mu);
  int ok = atomic_compare_exchange_strong(&s->running, &expected, 1);
  if (ok) {
    atomic_store(&s->cancel, 0);
    s->checkpointed = 0;
  }
  pthread_mutex_unlock(&s->mu);
  if (!ok) return AGENT_EBUSY;

  /* switching to or from full-auto changes the sandbox the commands need */
  int full = atomic_load(&s->mode) == AGENT_MODE_FULL_AUTO;
  if (full != s->ws_required_sandbox) {
    char *err = NULL;
    if (open_ws(s, &err)) {
      res->stop = AGENT_STOP_ERROR;
      res->error = err;
      goto done;
    }
  }
  if (!s->title) {
    s->title = first_line_title(prompt);
    s->opts.title = s->title;
    if (s->store) agent__store_touch(s->store, s->id, s->title, NULL);
  }
  char *clean = qc_utf8_sanitize(prompt, strlen(prompt), NULL);
  agent__session_append(s, json_pack("{s:s, s:s}", "role", "user", "content", clean ? clean : ""));
  free(clean);

  qc_buf prompt_buf;
  qc_buf_init(&prompt_buf, 0);
  for (;;) {
    if (atomic_load(&s->cancel)) {
      res->stop = AGENT_STOP_CANCELLED;
      break;
    }
    if (res->n_model_calls >= s->opts.max_steps) {
      res->stop = AGENT_STOP_MAX_TURN_REQUESTS;
      break;
    }
    if (s->opts.max_tokens > 0 && res->generated_tokens >= s->opts.max_tokens) {
      res->stop = AGENT_STOP_MAX_TOKENS;
      break;
    }
    long prompt_tokens = 0;
    char *err = NULL;
    int rc = agent__context_fit(s, &prompt_buf, &prompt_tokens, &err);
    if (rc == AGENT_ECANCELLED || atomic_load(&s->cancel)) {
      free(err);
      res->stop = AGENT_STOP_CANCELLED;
      break;
    }
    if (rc) {
      res->stop = AGENT_STOP_ERROR;
      res->error = err ? err : strdup(agent_strerror(rc));
      break;
    }
    /* the reply's cap: the per-call cap, the room left in the window, the run's budget */
    long n_ctx = (long)agent__context_size(s);
    long max_reply = s->opts.max_reply_tokens > 0 ? s->opts.max_reply_tokens : s->backend->opts.max_reply_tokens;
    if (max_reply > n_ctx - prompt_tokens) max_reply = n_ctx - prompt_tokens;
    if (s->opts.max_tokens > 0 && max_reply > s->opts.max_tokens - res->generated_tokens)
      max_reply = s->opts.max_tokens - res->generated_tokens;
    if (max_reply < 1) max_reply = 1;

    turn t = {.s = s};
    qc_buf_init(&t.text, 0);
    qc_buf_init(&t.pending, 0);
    agent__tcp_cbs cbs = {turn_on_text, turn_on_call, &t};
    t.parser = agent__tcp_new(s->tools, &cbs);
    agent__gen_req req = {.prompt = prompt_buf.data, .prompt_len = prompt_buf.len, .messages = s->msgs,
                          .tools = s->tools, .max_tokens = (int)max_reply, .stop = agent__chat_stops,
                          .cancel = &s->cancel, .on_text = gen_on_text, .on_native_call = gen_on_native, .user = &t};
    agent__gen_res gr = {0};
    int grc = t.parser ? agent__generate(s, &req, &gr) : AGENT_ENOMEM;
    res->n_model_calls++;
    int truncated = gr.finish == AGENT__FIN_LENGTH || gr.finish == AGENT__FIN_CONTEXT ||
                    gr.finish == AGENT__FIN_CANCELLED;
    if (t.parser) agent__tcp_finish(t.parser, truncated);
    show_text(&t, "", 0, 1);
    long gen = gr.n_generated > 0 ? gr.n_generated : agent__estimate_tokens(t.text.len);
    long ptok = gr.n_prompt >= 0 && gr.n_prompt ? gr.n_prompt : prompt_tokens;
    res->generated_tokens += gen;
    res->prompt_tokens += ptok;
    res->reused_tokens += gr.n_reused > 0 ? gr.n_reused : 0;
    agent_event usage = {.type = AGENT_EVENT_USAGE, .used_tokens = ptok + gen, .context_size = n_ctx,
                         .prompt_tokens = ptok, .reused_tokens = gr.n_reused > 0 ? gr.n_reused : 0,
                         .generated_tokens = gen};
    agent__emit(s, &usage);

    if (grc != AGENT_OK || gr.finish == AGENT__FIN_ERROR || t.oom) {
      res->stop = AGENT_STOP_ERROR;
      res->error = gr.error ? gr.error : strdup(t.oom ? "out of memory" : agent_strerror(grc));
      gr.error = NULL;
      fail_announced(s, &t, res->error);
      agent__gen_res_release(&gr);
      turn_release(&t);
      break;
    }
    agent__gen_res_release(&gr);

    /* the assistant message: prose and calls, as the model wrote them */
    int cancelled = gr.finish == AGENT__FIN_CANCELLED || atomic_load(&s->cancel);
    json_t *calls = json_array();
    for (size_t i = 0; i < t.n_calls; i++) {
      agent__call *c = t.calls[i];
      json_array_append_new(calls, json_pack("{s:s, s:s, s:{s:s, s:O}}", "id", c->id, "type", "function", "function",
                                             "name", c->name, "arguments", c->args));
    }
    if (t.n_calls || t.text.len || !cancelled) {
      size_t tl = t.text.len;
      char *reply = qc_utf8_sanitize(t.text.data, t.text.len, &tl);
      json_t *am = json_pack("{s:s, s:s%}", "role", "assistant", "content", reply ? reply : "", reply ? tl : 0);
      free(reply);
      if (t.n_calls) json_object_set(am, "tool_calls", calls);
      agent__session_append(s, am);
    }
    json_decref(calls);
    if (!t.n_calls) {
      res->stop = cancelled ? AGENT_STOP_CANCELLED
                  : gr.finish == AGENT__FIN_LENGTH || gr.finish == AGENT__FIN_CONTEXT ? AGENT_STOP_MAX_TOKENS
                                                                                      : AGENT_STOP_END_TURN;
      turn_release(&t);
      break;
    }
    int stop_cancel = cancelled;
    int64_t assistant_seq = s->seqs[json_array_size(s->msgs) - 1];
    for (size_t i = 0; i < t.n_calls; i++) {
      res->n_tool_calls++;
      if (run_call(s, t.calls[i], assistant_seq, stop_cancel) == RUN_CANCELLED) stop_cancel = 1;
    }
    turn_release(&t);
    if (stop_cancel || atomic_load(&s->cancel)) {
      res->stop = AGENT_STOP_CANCELLED;
      break;
    }
  }
  qc_buf_release(&prompt_buf);
done:
  stop_event(s, res);
  pthread_mutex_lock(&s->mu);
  atomic_store(&s->running, 0);
  pthread_mutex_unlock(&s->mu);
  return AGENT_OK;
}
