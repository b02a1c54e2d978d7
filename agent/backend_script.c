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
 *    "delay_ms": N}
 * Token counts are the documented estimate (agent__estimate_tokens).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/backend.h"
#include "agent/limits.h"
#include "common/common.h"

typedef struct script {
  json_t *entries;
  char *path;
} script;

struct agent__bind {
  agent_backend *b;
  size_t cursor;
};

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
  size_t n = json_array_size(sc->entries);
  if (x->cursor >= n) {
    res->finish = AGENT__FIN_ERROR;
    res->code = AGENT_ESCRIPT;
    res->error = qc_asprintf("the scripted test backend %s has no reply #%zu (it holds %zu): the script is "
                             "exhausted", sc->path, x->cursor + 1, n);
    return res->code;
  }
  json_t *e = json_array_get(sc->entries, x->cursor++);
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
  json_t *entries = json_loadb(data, len, 0, &jerr);
  free(data);
  if (!json_is_array(entries)) {
    if (errmsg)
      *errmsg = entries ? qc_asprintf("the script %s must be a JSON array of strings", path)
                        : qc_asprintf("the script %s is not JSON: %s (line %d)", path, jerr.text, jerr.line);
    json_decref(entries);
    return AGENT_ESPEC;
  }
  size_t i;
  json_t *e;
  json_array_foreach(entries, i, e) {
    if (json_is_string(e) || (json_is_object(e) && json_is_string(json_object_get(e, "text")))) continue;
    if (errmsg) *errmsg = qc_asprintf("the script %s: entry %zu is not a string (nor {\"text\": …})", path, i + 1);
    json_decref(entries);
    return AGENT_ESPEC;
  }
  script *sc = calloc(1, sizeof *sc);
  if (!sc || !(sc->path = strdup(path))) {
    free(sc);
    json_decref(entries);
    return AGENT_ENOMEM;
  }
  sc->entries = entries;
  b->impl = sc;
  b->ops = &k_script_ops;
  return AGENT_OK;
}
