/* backend_script.c — the SCRIPTED TEST DOUBLE backend (`script:FILE`).
 *
 * Not a model: it replays canned replies so the loop, the parser, permissions and the
 * protocol layers can be tested end to end without weights. FILE is a JSON array; entry k
 * is the raw assistant output (Qwen3-Coder text, <tool_call> XML included) returned for
 * the k-th model call of a session, streamed in chunks of script_chunk_bytes (never
 * splitting a UTF-8 character) with script_delay_ms before each chunk so cancellation can
 * be tested. Each session replays from the first entry. When the entries are used up the
 * call fails with AGENT_ESCRIPT and a message saying so — the run stops with an error.
 *
 * An entry may also be an object, for tests of the rarer endings:
 *   {"text": "...", "finish": "stop"|"length"|"context"|"error", "error": "message",
 *    "delay_ms": N, "raw": true}
 * Token counts are the documented estimate (agent__estimate_tokens).
 *
 * Raw completions (agent_backend_complete: inline completion's fill-in-the-middle) and
 * agent turns can share one script: once any entry is marked "raw": true, raw
 * completions take only the raw entries, in order, and agent turns only the others. A
 * script without raw entries serves both from the same list, as before.
 *
 * TEST-DOUBLE FEATURE — the prompt log: when the environment variable
 * QCODER_SCRIPT_PROMPT_LOG names a file, every prompt this backend is given is appended
 * to it as one JSON line {"raw": bool, "prompt": "..."} (raw: a completion, else an agent
 * turn), so a test can check exactly what the model would have seen (the FIM prompt of
 * an inline completion, the rendered conversation of a turn). It exists for tests only;
 * the real backends have no such log.
 *
 * Several sessions with different replies (one agent session per group of failing tests
 * in `qcoder fix-tests`): FILE may instead be an object
 *   {"sessions": [{"match": "TEXT", "replies": [...]}, ...], "replies": [...]}
 * A session's first model call picks the first entry whose "match" occurs in the
 * session's first user message; the top-level "replies" (optional) serve a session that
 * matches none. The choice holds for the session's life, so its later calls continue
 * down the same list — deterministic whatever order the sessions run in.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/backend.h"
#include "agent/limits.h"
#include "common/common.h"

typedef struct script {
  json_t *entries;   /* the replies of a plain script, or the top-level "replies" (may be NULL) */
  json_t *sessions;  /* [{"match", "replies"}] or NULL */
  char *path;
  int has_raw;  /* some entries are for raw completions only */
} script;

/* The prompt log (see the top of the file). One line per write(2) on an O_APPEND file,
 * under a lock, so lines from concurrent calls never interleave. */
static pthread_mutex_t g_log_mu = PTHREAD_MUTEX_INITIALIZER;

static void log_prompt(const agent__gen_req *req) {
  const char *path = getenv("QCODER_SCRIPT_PROMPT_LOG");
  if (!path || !*path || !req->prompt) return;
  json_t *j = json_pack("{s:b, s:s%}", "raw", req->raw != 0, "prompt", req->prompt, req->prompt_len);
  char *line = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  if (!line) return;
  pthread_mutex_lock(&g_log_mu);
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd >= 0) {
    size_t n = strlen(line);
    line[n] = '\n'; /* replaces the NUL: written with its length */
    ssize_t w = write(fd, line, n + 1);
    (void)w;
    close(fd);
  }
  pthread_mutex_unlock(&g_log_mu);
  free(line);
}

static int entry_is_raw(const json_t *e) { return json_is_object(e) && json_is_true(json_object_get(e, "raw")); }

struct agent__bind {
  agent_backend *b;
  size_t cursor;
  const json_t *replies;  /* chosen at the first call (borrowed from the script) */
  int chosen;
};

/* The text of the first user message in a rendered prompt (Qwen3-Coder's template). */
static const char *first_user(const char *prompt, size_t len, size_t *n) {
  static const char open[] = "<|im_start|>user\n", close[] = "<|im_end|>";
  const char *s = memmem(prompt, len, open, sizeof open - 1);
  if (!s) {
    *n = len;
    return prompt;
  }
  s += sizeof open - 1;
  const char *e = memmem(s, len - (size_t)(s - prompt), close, sizeof close - 1);
  *n = e ? (size_t)(e - s) : len - (size_t)(s - prompt);
  return s;
}

static void choose(agent__bind *x, const agent__gen_req *req) {
  script *sc = x->b->impl;
  x->chosen = 1;
  x->replies = sc->entries;
  if (!sc->sessions) return;
  size_t n;
  const char *u = first_user(req->prompt ? req->prompt : "", req->prompt ? req->prompt_len : 0, &n);
  size_t i;
  json_t *e;
  json_array_foreach(sc->sessions, i, e) {
    const char *m = json_string_value(json_object_get(e, "match"));
    if (m && *m && memmem(u, n, m, strlen(m))) {
      x->replies = json_object_get(e, "replies");
      return;
    }
  }
}

static int s_bind(agent_backend *b, agent__bind **out, char **errmsg) {
  (void)errmsg;
  agent__bind *x = calloc(1, sizeof *x);
  if (!x) return AGENT_ENOMEM;
  x->b = b;
  *out = x;
  return AGENT_OK;
}

static void s_unbind(agent__bind *x) { free(x); }

static int cancelled(const agent__gen_req *req) { return req->cancel && atomic_load(req->cancel); }

/* Sleep ms, waking every 5 ms to look at the cancel flag. */
static int nap(const agent__gen_req *req, int ms) {
  for (int t = 0; t < ms; t += 5) {
    if (cancelled(req)) return 1;
    struct timespec ts = {0, (ms - t < 5 ? ms - t : 5) * 1000000L};
    nanosleep(&ts, NULL);
  }
  return cancelled(req);
}

static int s_generate(agent__bind *x, const agent__gen_req *req, agent__gen_res *res) {
  memset(res, 0, sizeof *res);
  script *sc = x->b->impl;
  res->n_prompt = agent__estimate_tokens(req->prompt_len);
  log_prompt(req);
  if (!x->chosen) choose(x, req);
  size_t n = json_array_size(x->replies);
  if (sc->has_raw) /* raw completions and turns each take their own entries */
    while (x->cursor < n && entry_is_raw(json_array_get(x->replies, x->cursor)) != (req->raw != 0)) x->cursor++;
  if (x->cursor >= n) {
    res->finish = AGENT__FIN_ERROR;
    res->code = AGENT_ESCRIPT;
    res->error = !x->replies ? qc_asprintf("the scripted test backend %s has no session whose \"match\" is in this "
                                           "session's first message, and no default \"replies\"", sc->path)
                 : sc->has_raw ? qc_asprintf("the scripted test backend %s has no %s reply left: the script is "
                                             "exhausted", sc->path, req->raw ? "raw (\"raw\": true)" : "turn")
                             : qc_asprintf("the scripted test backend %s has no reply #%zu (it holds %zu): the script "
                                           "is exhausted", sc->path, x->cursor + 1, n);
    return res->code;
  }
  json_t *e = json_array_get(x->replies, x->cursor++);
  const char *text = json_string_value(json_is_object(e) ? json_object_get(e, "text") : e);
  size_t len = text ? strlen(text) : 0;
  const char *finish = json_string_value(json_object_get(e, "finish"));
  json_t *dj = json_object_get(e, "delay_ms");
  int delay = json_is_integer(dj) ? (int)json_integer_value(dj) : x->b->opts.script_delay_ms;
  size_t chunk = (size_t)x->b->opts.script_chunk_bytes;
  for (size_t i = 0; i < len;) {
    if (delay > 0 ? nap(req, delay) : cancelled(req)) {
      res->finish = AGENT__FIN_CANCELLED;
      res->n_generated = agent__estimate_tokens(i);
      return AGENT_OK;
    }
    size_t k = len - i < chunk ? len - i : chunk;
    while (i + k < len && ((unsigned char)text[i + k] & 0xC0) == 0x80) k++; /* whole characters */
    req->on_text(req->user, text + i, k);
    i += k;
  }
  res->n_generated = agent__estimate_tokens(len);
  if (cancelled(req)) res->finish = AGENT__FIN_CANCELLED;
  else if (finish && !strcmp(finish, "length")) res->finish = AGENT__FIN_LENGTH;
  else if (finish && !strcmp(finish, "context")) res->finish = AGENT__FIN_CONTEXT;
  else if (finish && !strcmp(finish, "error")) {
    res->finish = AGENT__FIN_ERROR;
    res->code = AGENT_EBACKEND;
    const char *m = json_string_value(json_object_get(e, "error"));
    res->error = strdup(m ? m : "scripted error");
    return res->code;
  } else res->finish = AGENT__FIN_STOP;
  return AGENT_OK;
}

static void s_cancel(agent__bind *x) { (void)x; /* the request's cancel flag is polled */ }

static long s_count(agent_backend *b, const char *text, size_t len) {
  (void)b;
  (void)text;
  return agent__estimate_tokens(len);
}

static uint32_t s_n_ctx(agent__bind *x) { return x->b->opts.script_ctx ? x->b->opts.script_ctx : 32768; }

static void s_close(agent_backend *b) {
  script *sc = b->impl;
  if (!sc) return;
  json_decref(sc->entries);
  json_decref(sc->sessions);
  free(sc->path);
  free(sc);
}

static const agent__backend_ops k_script_ops = {
    .kind = "scripted",
    .bind = s_bind,
    .unbind = s_unbind,
    .generate = s_generate,
    .cancel = s_cancel,
    .count_tokens = s_count,
    .n_ctx = s_n_ctx,
    .close = s_close,
};

int agent__script_open(agent_backend *b, char **errmsg) {
  const char *path = b->opts.spec + strlen("script:");
  char *data = NULL;
  size_t len = 0;
  int r = qc_read_file(path, AGENT__SCRIPT_MAX_BYTES, &data, &len);
  if (r != QC_OK) {
    if (errmsg) *errmsg = qc_asprintf("cannot read the script %s: %s", path, qc_strerror(r));
    return AGENT_ESPEC;
  }
  json_error_t jerr;
  json_t *top = json_loadb(data, len, 0, &jerr);
  free(data);
  json_t *entries = NULL, *sessions = NULL;
  if (json_is_array(top)) {
    entries = json_incref(top);
  } else if (json_is_object(top) && json_is_array(json_object_get(top, "sessions"))) {
    sessions = json_incref(json_object_get(top, "sessions"));
    entries = json_incref(json_object_get(top, "replies")); /* may be NULL */
  }
  json_decref(top);
  if (!entries && !sessions) {
    if (errmsg)
      *errmsg = top ? qc_asprintf("the script %s must be a JSON array of strings (or {\"sessions\": [...]})", path)
                    : qc_asprintf("the script %s is not JSON: %s (line %d)", path, jerr.text, jerr.line);
    return AGENT_ESPEC;
  }
  /* every list of replies: strings or {"text": …}; every session: a match and its replies */
  int bad = entries && !json_is_array(entries);
  size_t i, k;
  json_t *e, *s;
  json_array_foreach(sessions, k, s) {
    if (!json_is_string(json_object_get(s, "match")) || !json_is_array(json_object_get(s, "replies"))) {
      if (errmsg) *errmsg = qc_asprintf("the script %s: session %zu needs \"match\" (a string) and \"replies\" (an "
                                        "array)", path, k + 1);
      bad = 2;
      break;
    }
  }
  for (k = 0; !bad && k <= json_array_size(sessions); k++) {
    json_t *list = k < json_array_size(sessions) ? json_object_get(json_array_get(sessions, k), "replies") : entries;
    json_array_foreach(list, i, e) {
      if (json_is_string(e) || (json_is_object(e) && json_is_string(json_object_get(e, "text")))) continue;
      if (errmsg) *errmsg = qc_asprintf("the script %s: entry %zu is not a string (nor {\"text\": …})", path, i + 1);
      bad = 2;
      break;
    }
  }
  if (bad) {
    if (bad == 1 && errmsg) *errmsg = qc_asprintf("the script %s: \"replies\" must be an array", path);
    json_decref(entries);
    json_decref(sessions);
    return AGENT_ESPEC;
  }
  script *sc = calloc(1, sizeof *sc);
  if (!sc || !(sc->path = strdup(path))) {
    free(sc);
    json_decref(entries);
    json_decref(sessions);
    return AGENT_ENOMEM;
  }
  sc->sessions = sessions;
  sc->entries = entries;
  json_array_foreach(entries, i, e) sc->has_raw |= entry_is_raw(e);
  json_array_foreach(sessions, k, s) {
    json_array_foreach(json_object_get(s, "replies"), i, e) sc->has_raw |= entry_is_raw(e);
  }
  b->impl = sc;
  b->ops = &k_script_ops;
  return AGENT_OK;
}
