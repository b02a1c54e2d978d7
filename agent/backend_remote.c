/* backend_remote.c — a remote OpenAI-compatible server as the model (vLLM, SGLang,
 * llama-server), through libcurl.
 *
 * Two ways to talk to it:
 *  - chat (default): POST BASE/v1/chat/completions with the conversation and native
 *    `tools`; the server renders the prompt and parses the calls (vLLM needs
 *    --enable-auto-tool-choice --tool-call-parser qwen3_coder). Streamed `tool_calls`
 *    deltas are put back together per index and handed to the loop as calls; any
 *    <tool_call> XML that still arrives as content goes through our own parser.
 *  - completions: POST BASE/v1/completions with our own rendered prompt, and our parser
 *    reads the calls: the same bytes as the local engine sees, whatever the server's
 *    template or parser.
 * Both stream Server-Sent Events (`data: {json}` lines, `data: [DONE]` at the end); a
 * server that answers with one JSON body instead is understood too.
 *
 * Failures are reported so the user can act: refused connections, timeouts (connect, and
 * silence longer than read_timeout_ms between bytes), HTTP errors with an excerpt of the
 * server's error message. 429, 5xx and refused connections are retried with exponential
 * backoff (Retry-After honoured), but only before any output has been streamed: a reply
 * is never shown twice. Cancellation is polled every 50 ms of the transfer loop and wakes
 * it at once (curl_multi_wakeup). The API key comes from the environment and is never
 * logged.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/backend.h"
#include "agent/limits.h"
#include "common/common.h"
#include "engine/engine.h"

typedef struct remote {
  char *base;      /* scheme://host[:port][/prefix] without a trailing /v1 */
  char *api_key;   /* may be NULL */
  pthread_mutex_t mu;
  char *model;     /* resolved name */
  eng_model *tok;  /* tokenizer for exact counts, or NULL */
} remote;

struct agent__bind {
  agent_backend *b;
  pthread_mutex_t mu;
  CURLM *active;   /* the transfer in progress, for curl_multi_wakeup */
};

/* ---- one attempt ---------------------------------------------------------------------- */

typedef struct native_call {
  qc_buf id, name, args;
  int used;
} native_call;

typedef struct xfer {
  const agent__gen_req *req;
  int chat;                 /* chat API (delta/tool_calls) vs completions (text) */
  long status;
  qc_buf line;              /* partial SSE line */
  qc_buf errbody;           /* body of an HTTP error */
  qc_buf body;              /* non-SSE body */
  int saw_data, done, emitted;
  char *stream_error;       /* an error object inside the stream */
  char finish[32];
  long n_prompt, n_completion, n_cached;
  native_call calls[AGENT__REMOTE_MAX_NATIVE_CALLS];
  int n_calls;
  uint64_t last_data_ms;
  long retry_after_s;
} xfer;

static void xfer_init(xfer *x, const agent__gen_req *req, int chat) {
  memset(x, 0, sizeof *x);
  x->req = req;
  x->chat = chat;
  x->n_prompt = x->n_completion = x->n_cached = -1;
  qc_buf_init(&x->line, AGENT__REMOTE_LINE_MAX);
  qc_buf_init(&x->errbody, AGENT__REMOTE_ERRBODY_MAX);
  qc_buf_init(&x->body, AGENT__REMOTE_BODY_MAX);
  for (int i = 0; i < AGENT__REMOTE_MAX_NATIVE_CALLS; i++) {
    qc_buf_init(&x->calls[i].id, 4096);
    qc_buf_init(&x->calls[i].name, 4096);
    qc_buf_init(&x->calls[i].args, AGENT__REMOTE_NATIVE_ARGS_MAX);
  }
}

static void xfer_release(xfer *x) {
  qc_buf_release(&x->line);
  qc_buf_release(&x->errbody);
  qc_buf_release(&x->body);
  for (int i = 0; i < AGENT__REMOTE_MAX_NATIVE_CALLS; i++) {
    qc_buf_release(&x->calls[i].id);
    qc_buf_release(&x->calls[i].name);
    qc_buf_release(&x->calls[i].args);
  }
  free(x->stream_error);
}

static void set_usage(xfer *x, json_t *usage) {
  if (!json_is_object(usage)) return;
  json_t *p = json_object_get(usage, "prompt_tokens"), *c = json_object_get(usage, "completion_tokens");
  if (json_is_integer(p)) x->n_prompt = (long)json_integer_value(p);
  if (json_is_integer(c)) x->n_completion = (long)json_integer_value(c);
  json_t *cached = json_object_get(json_object_get(usage, "prompt_tokens_details"), "cached_tokens");
  if (json_is_integer(cached)) x->n_cached = (long)json_integer_value(cached);
}

static void emit_text(xfer *x, const char *s, size_t n) {
  if (!n) return;
  x->emitted = 1;
  x->req->on_text(x->req->user, s, n);
}

/* One chunk (or a whole non-streamed answer: `message` instead of `delta`). */
static void on_chunk(xfer *x, json_t *o) {
  json_t *err = json_object_get(o, "error");
  if (err && !json_is_null(err)) {
    const char *m = json_string_value(json_object_get(err, "message"));
    if (!m) m = json_string_value(err);
    free(x->stream_error);
    x->stream_error = strdup(m ? m : "the server reported an error in the stream");
    return;
  }
  set_usage(x, json_object_get(o, "usage"));
  json_t *ch = json_array_get(json_object_get(o, "choices"), 0);
  if (!ch) return;
  const char *fr = json_string_value(json_object_get(ch, "finish_reason"));
  if (fr) snprintf(x->finish, sizeof x->finish, "%s", fr);
  if (!x->chat) {
    json_t *t = json_object_get(ch, "text");
    if (json_is_string(t)) emit_text(x, json_string_value(t), json_string_length(t));
    return;
  }
  json_t *d = json_object_get(ch, "delta");
  if (!d) d = json_object_get(ch, "message");
  json_t *content = json_object_get(d, "content");
  if (json_is_string(content)) emit_text(x, json_string_value(content), json_string_length(content));
  size_t i;
  json_t *tc;
  json_array_foreach(json_object_get(d, "tool_calls"), i, tc) {
    json_t *ix = json_object_get(tc, "index");
    long idx = json_is_integer(ix) ? (long)json_integer_value(ix) : (long)i;
    if (idx < 0 || idx >= AGENT__REMOTE_MAX_NATIVE_CALLS) continue;
    native_call *nc = &x->calls[idx];
    nc->used = 1;
    if (idx + 1 > x->n_calls) x->n_calls = (int)idx + 1;
    x->emitted = 1;
    const char *id = json_string_value(json_object_get(tc, "id"));
    if (id && !nc->id.len) qc_buf_puts(&nc->id, id);
    json_t *fn = json_object_get(tc, "function");
    const char *name = json_string_value(json_object_get(fn, "name"));
    if (name) qc_buf_puts(&nc->name, name);
    json_t *args = json_object_get(fn, "arguments");
    if (json_is_string(args)) qc_buf_append(&nc->args, json_string_value(args), json_string_length(args));
    else if (json_is_object(args)) { /* some servers send the object itself */
      char *s = json_dumps(args, JSON_COMPACT | JSON_PRESERVE_ORDER);
      if (s) qc_buf_puts(&nc->args, s);
      free(s);
    }
  }
}

static void on_line(xfer *x, const char *l, size_t n) {
  if (n && l[n - 1] == '\r') n--;
  if (n >= 5 && memcmp(l, "data:", 5) == 0) {
    l += 5;
    n -= 5;
    if (n && *l == ' ') l++, n--;
    x->saw_data = 1;
    if (n == 6 && memcmp(l, "[DONE]", 6) == 0) {
      x->done = 1;
      return;
    }
    json_t *o = json_loadb(l, n, 0, NULL);
    if (o) on_chunk(x, o);
    json_decref(o);
    return;
  }
  if (!x->saw_data && n && l[0] != ':' && !(n >= 6 && (!memcmp(l, "event:", 6) || !memcmp(l, "retry:", 6))) &&
      !(n >= 3 && !memcmp(l, "id:", 3))) {
    qc_buf_append(&x->body, l, n);
    qc_buf_putc(&x->body, '\n');
  }
}

static size_t write_cb(char *p, size_t size, size_t nmemb, void *user) {
  xfer *x = user;
  size_t n = size * nmemb;
  x->last_data_ms = qc_now_ms();
  if (x->status >= 400) {
    size_t room = x->errbody.max - x->errbody.len;
    qc_buf_append(&x->errbody, p, n < room ? n : room);
    return n;
  }
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '\n') {
      on_line(x, x->line.data, x->line.len);
      qc_buf_reset(&x->line);
    } else if (qc_buf_putc(&x->line, p[i]) != QC_OK) {
      return 0; /* a line beyond AGENT__REMOTE_LINE_MAX: abort */
    }
  }
  return n;
}

static size_t header_cb(char *p, size_t size, size_t nmemb, void *user) {
  xfer *x = user;
  size_t n = size * nmemb;
  x->last_data_ms = qc_now_ms();
  if (n > 9 && !strncmp(p, "HTTP/", 5)) {
    const char *sp = memchr(p, ' ', n);
    if (sp) x->status = strtol(sp + 1, NULL, 10);
  } else if (n > 12 && !strncasecmp(p, "Retry-After:", 12)) {
    x->retry_after_s = strtol(p + 12, NULL, 10);
  }
  return n;
}

/* ---- requests --------------------------------------------------------------------------- */

static json_t *wire_messages(const json_t *msgs) {
  json_t *out = json_array();
  size_t i;
  json_t *m;
  json_array_foreach(msgs, i, m) {
    json_t *w = json_deep_copy(m);
    json_t *calls = json_object_get(w, "tool_calls");
    size_t j;
    json_t *c;
    json_array_foreach(calls, j, c) {
      json_t *fn = json_object_get(c, "function");
      json_t *args = json_object_get(fn, "arguments");
      if (args && !json_is_string(args)) {
        char *s = json_dumps(args, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_object_set_new(fn, "arguments", json_string(s ? s : "{}"));
        free(s);
      }
      if (!json_object_get(c, "type")) json_object_set_new(c, "type", json_string("function"));
    }
    if (json_is_array(calls) && json_array_size(calls) == 0) json_object_del(w, "tool_calls");
    json_array_append_new(out, w);
  }
  return out;
}

static char *request_body(agent_backend *b, const char *model, const agent__gen_req *req, int chat) {
  const agent_sampling *s = req->sampling ? req->sampling : &b->opts.sampling;
  json_t *o = json_pack("{s:s, s:b, s:{s:b}, s:i, s:f, s:f, s:i, s:f, s:f}", "model", model, "stream", 1,
                        "stream_options", "include_usage", 1, "max_tokens", req->max_tokens, "temperature",
                        (double)s->temperature, "top_p", (double)s->top_p, "top_k", s->top_k, "min_p",
                        (double)s->min_p, "repetition_penalty", (double)s->repeat_penalty);
  if (!o) return NULL;
  if (s->seed) json_object_set_new(o, "seed", json_integer((json_int_t)(s->seed & 0x7fffffffffffffffULL)));
  if (chat) {
    json_object_set_new(o, "messages", wire_messages(req->messages));
    if (json_array_size(req->tools)) json_object_set(o, "tools", (json_t *)req->tools);
  } else {
    json_object_set_new(o, "prompt", json_stringn(req->prompt, req->prompt_len));
    const char *const *stop = req->stop ? req->stop : agent__chat_stops;
    json_t *st = json_array();
    for (; *stop; stop++) json_array_append_new(st, json_string(*stop));
    json_object_set_new(o, "stop", st);
  }
  char *body = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  return body;
}

static char *error_excerpt(const qc_buf *body) {
  json_t *o = json_loadb(body->data, body->len, 0, NULL);
  const char *m = NULL;
  json_t *e = json_object_get(o, "error");
  if (json_is_string(e)) m = json_string_value(e);
  else if (e) m = json_string_value(json_object_get(e, "message"));
  if (!m) m = json_string_value(json_object_get(o, "message"));
  if (!m) m = json_string_value(json_object_get(o, "detail"));
  char *r;
  if (m) {
    r = qc_utf8_sanitize(m, strlen(m) > 500 ? 500 : strlen(m), NULL);
  } else {
    size_t n = body->len > 500 ? 500 : body->len;
    r = qc_utf8_sanitize(body->data, qc_utf8_complete_len(body->data, n), NULL);
    for (char *p = r; p && *p; p++)
      if (*p == '\n' || *p == '\r') *p = ' ';
  }
  json_decref(o);
  return r;
}

static int cancelled(const agent__gen_req *req) { return req->cancel && atomic_load(req->cancel); }

typedef enum { ATTEMPT_OK, ATTEMPT_RETRY, ATTEMPT_FAIL, ATTEMPT_CANCELLED } attempt_result;

/* One HTTP exchange. */
static attempt_result attempt(agent__bind *bd, const char *url, const char *body, xfer *x, agent__gen_res *res) {
  agent_backend *b = bd->b;
  remote *r = b->impl;
  CURL *e = curl_easy_init();
  CURLM *m = curl_multi_init();
  struct curl_slist *h = NULL;
  char errbuf[CURL_ERROR_SIZE] = "";
  attempt_result ar = ATTEMPT_FAIL;
  int idle_timeout = 0;
  if (!e || !m) {
    res->code = AGENT_ENOMEM;
    res->error = strdup("out of memory");
    goto out;
  }
  h = curl_slist_append(h, "Content-Type: application/json");
  h = curl_slist_append(h, "Accept: text/event-stream");
  if (r->api_key) {
    char *auth = qc_asprintf("Authorization: Bearer %s", r->api_key);
    h = curl_slist_append(h, auth);
    free(auth);
  }
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, b->opts.connect_timeout_ms > 0 ? b->opts.connect_timeout_ms : 10000L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "qcoder/" QCODER_VERSION);
  curl_multi_add_handle(m, e);
  pthread_mutex_lock(&bd->mu);
  bd->active = m;
  pthread_mutex_unlock(&bd->mu);
  x->last_data_ms = qc_now_ms();
  long read_to = b->opts.read_timeout_ms > 0 ? b->opts.read_timeout_ms : 300000;
  int running = 1;
  while (running) {
    if (curl_multi_perform(m, &running) != CURLM_OK) break;
    if (!running) break;
    if (cancelled(x->req)) break;
    if ((long)(qc_now_ms() - x->last_data_ms) > read_to) {
      idle_timeout = 1;
      break;
    }
    curl_multi_poll(m, NULL, 0, AGENT__REMOTE_POLL_MS, NULL);
  }
  pthread_mutex_lock(&bd->mu);
  bd->active = NULL;
  pthread_mutex_unlock(&bd->mu);
  if (running && cancelled(x->req)) {
    ar = ATTEMPT_CANCELLED;
    goto out;
  }
  if (idle_timeout) {
    res->code = AGENT_ETIMEOUT;
    res->error = qc_asprintf("%s sent nothing for %ld s (read timeout); the server may be overloaded or stuck",
                             url, read_to / 1000);
    goto out;
  }
  CURLcode cc = CURLE_OK;
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(m, &left)))
    if (msg->msg == CURLMSG_DONE) cc = msg->data.result;
  if (x->line.len) { /* a last line without its newline */
    on_line(x, x->line.data, x->line.len);
    qc_buf_reset(&x->line);
  }
  long status = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  if (status) x->status = status;
  if (cc != CURLE_OK) {
    int refused = cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_PROXY;
    int ctimeout = cc == CURLE_OPERATION_TIMEDOUT && x->status == 0;
    res->code = refused ? AGENT_ECONNECT : ctimeout ? AGENT_ETIMEOUT : AGENT_EBACKEND;
    if (refused)
      res->error = qc_asprintf("cannot connect to %s: %s (is the server running?)", url, errbuf[0] ? errbuf : curl_easy_strerror(cc));
    else if (ctimeout)
      res->error = qc_asprintf("connecting to %s timed out after %ld ms", url, b->opts.connect_timeout_ms);
    else if (cc == CURLE_COULDNT_RESOLVE_HOST)
      res->error = qc_asprintf("cannot resolve the host of %s: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(cc));
    else
      res->error = qc_asprintf("request to %s failed: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(cc));
    ar = (refused || ctimeout) && !x->emitted ? ATTEMPT_RETRY : ATTEMPT_FAIL;
    goto out;
  }
  if (x->status >= 400) {
    char *why = error_excerpt(&x->errbody);
    const char *hint = x->status == 401 || x->status == 403 ? " (check the API key: $QCODER_API_KEY or $OPENAI_API_KEY)"
                       : x->status == 404 ? " (is the base URL right? qcoder appends /v1/...; and the model name?)"
                                          : "";
    res->code = AGENT_EHTTP;
    res->error = qc_asprintf("%s answered HTTP %ld: %s%s", url, x->status, why && *why ? why : "(no message)", hint);
    free(why);
    int transient = x->status == 429 || x->status == 500 || x->status == 502 || x->status == 503 || x->status == 504;
    ar = transient && !x->emitted ? ATTEMPT_RETRY : ATTEMPT_FAIL;
    goto out;
  }
  if (!x->saw_data && x->body.len) { /* one JSON answer instead of a stream */
    json_t *o = json_loadb(x->body.data, x->body.len, 0, NULL);
    if (o) on_chunk(x, o);
    json_decref(o);
  }
  if (x->stream_error) {
    res->code = AGENT_EHTTP;
    res->error = qc_asprintf("%s reported an error: %s", url, x->stream_error);
    goto out;
  }
  ar = ATTEMPT_OK;
out:
  if (m && e) curl_multi_remove_handle(m, e);
  if (e) curl_easy_cleanup(e);
  if (m) curl_multi_cleanup(m);
  curl_slist_free_all(h);
  return ar;
}

/* GET BASE/v1/models and take the first id (vLLM and SGLang insist on the served name). */
static char *resolve_model(agent_backend *b) {
  remote *r = b->impl;
  pthread_mutex_lock(&r->mu);
  if (!r->model && b->opts.model_name) r->model = strdup(b->opts.model_name);
  if (!r->model) {
    char *url = qc_asprintf("%s/v1/models", r->base);
    CURL *e = curl_easy_init();
    struct curl_slist *h = NULL;
    if (r->api_key) {
      char *auth = qc_asprintf("Authorization: Bearer %s", r->api_key);
      h = curl_slist_append(h, auth);
      free(auth);
    }
    char *mbuf = NULL;
    size_t mlen = 0;
    FILE *mem = e && url ? open_memstream(&mbuf, &mlen) : NULL;
    if (mem) {
      curl_easy_setopt(e, CURLOPT_URL, url);
      curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
      curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
      curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, b->opts.connect_timeout_ms > 0 ? b->opts.connect_timeout_ms : 10000L);
      curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
      curl_easy_setopt(e, CURLOPT_MAXFILESIZE, 1L << 20);
      curl_easy_setopt(e, CURLOPT_WRITEDATA, mem); /* the default writer: fwrite to the FILE */
      CURLcode cc = curl_easy_perform(e);
      fclose(mem);
      long status = 0;
      curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
      json_t *o = cc == CURLE_OK && status == 200 ? json_loadb(mbuf, mlen, 0, NULL) : NULL;
      const char *id = json_string_value(json_object_get(json_array_get(json_object_get(o, "data"), 0), "id"));
      if (id) r->model = strdup(id);
      json_decref(o);
    }
    free(mbuf);
    if (!r->model) {
      qc_warn("remote %s: no model name given and GET /v1/models gave none; using \"default\"", r->base);
      r->model = strdup("default");
    }
    curl_slist_free_all(h);
    if (e) curl_easy_cleanup(e);
    free(url);
  }
  char *m = r->model ? strdup(r->model) : NULL;
  pthread_mutex_unlock(&r->mu);
  return m;
}

static int sleep_cancellable(const agent__gen_req *req, long ms) {
  for (long t = 0; t < ms; t += 10) {
    if (cancelled(req)) return 1;
    struct timespec ts = {0, 10 * 1000000L};
    nanosleep(&ts, NULL);
  }
  return cancelled(req);
}

static int r_generate(agent__bind *bd, const agent__gen_req *req, agent__gen_res *res) {
  memset(res, 0, sizeof *res);
  res->n_prompt = res->n_reused = -1;
  agent_backend *b = bd->b;
  remote *r = b->impl;
  int chat = b->ops->chat_api && !req->raw;
  char *model = resolve_model(b);
  char *url = qc_asprintf("%s/v1/%s", r->base, chat ? "chat/completions" : "completions");
  char *body = model ? request_body(b, model, req, chat) : NULL;
  int rc = AGENT_OK;
  if (!url || !body) {
    res->finish = AGENT__FIN_ERROR;
    res->code = rc = AGENT_ENOMEM;
    res->error = strdup("out of memory");
    goto out;
  }
  int max_attempts = 1 + (b->opts.max_retries > 0 ? b->opts.max_retries : 0);
  long backoff = b->opts.retry_base_ms > 0 ? b->opts.retry_base_ms : 500;
  for (int a = 1;; a++) {
    xfer x;
    xfer_init(&x, req, chat);
    free(res->error);
    res->error = NULL;
    res->code = 0;
    attempt_result ar = attempt(bd, url, body, &x, res);
    if (ar == ATTEMPT_OK) {
      int last = -1;
      for (int i = 0; i < x.n_calls; i++)
        if (x.calls[i].used) last = i;
      int cut = !strcmp(x.finish, "length");
      for (int i = 0; i < x.n_calls; i++) {
        native_call *nc = &x.calls[i];
        if (!nc->used || !req->on_native_call) continue;
        req->on_native_call(req->user, nc->id.len ? nc->id.data : NULL, nc->name.data, nc->args.data,
                            cut && i == last);
      }
      res->n_prompt = x.n_prompt;
      res->n_generated = x.n_completion;
      res->n_reused = x.n_cached;
      res->finish = cancelled(req) ? AGENT__FIN_CANCELLED
                    : !strcmp(x.finish, "length") ? AGENT__FIN_LENGTH
                                                   : AGENT__FIN_STOP;
    } else if (ar == ATTEMPT_CANCELLED) {
      res->finish = AGENT__FIN_CANCELLED;
    } else if (ar == ATTEMPT_RETRY && a < max_attempts) {
      long wait = backoff;
      if (x.retry_after_s > 0 && x.retry_after_s <= AGENT__REMOTE_RETRY_AFTER_MAX_S) wait = x.retry_after_s * 1000;
      if (wait > AGENT__REMOTE_BACKOFF_MAX_MS) wait = AGENT__REMOTE_BACKOFF_MAX_MS;
      qc_info("remote: attempt %d of %d failed (%s); retrying in %ld ms", a, max_attempts, res->error, wait);
      xfer_release(&x);
      backoff *= 2;
      if (sleep_cancellable(req, wait)) {
        res->finish = AGENT__FIN_CANCELLED;
        break;
      }
      continue;
    } else {
      res->finish = AGENT__FIN_ERROR;
      if (!res->code) res->code = AGENT_EBACKEND;
      if (a > 1 && res->error) {
        char *m = qc_asprintf("%s (after %d attempts)", res->error, a);
        if (m) {
          free(res->error);
          res->error = m;
        }
      }
      rc = res->code;
    }
    xfer_release(&x);
    break;
  }
out:
  free(model);
  free(url);
  free(body);
  return rc;
}

static int r_bind(agent_backend *b, agent__bind **out, char **errmsg) {
  (void)errmsg;
  agent__bind *x = calloc(1, sizeof *x);
  if (!x) return AGENT_ENOMEM;
  x->b = b;
  pthread_mutex_init(&x->mu, NULL);
  *out = x;
  return AGENT_OK;
}

static void r_unbind(agent__bind *x) {
  if (!x) return;
  pthread_mutex_destroy(&x->mu);
  free(x);
}

static void r_cancel(agent__bind *x) {
  pthread_mutex_lock(&x->mu);
  if (x->active) curl_multi_wakeup(x->active);
  pthread_mutex_unlock(&x->mu);
}

static long r_count(agent_backend *b, const char *text, size_t len) {
  remote *r = b->impl;
  if (r->tok) {
    long n = eng_count_tokens(r->tok, text, len);
    if (n >= 0) return n;
  }
  (void)text;
  return agent__estimate_tokens(len);
}

static uint32_t r_n_ctx(agent__bind *x) { return x->b->opts.remote_ctx ? x->b->opts.remote_ctx : 32768; }

static void r_close(agent_backend *b) {
  remote *r = b->impl;
  if (!r) return;
  free(r->base);
  if (r->api_key) {
    memset(r->api_key, 0, strlen(r->api_key));
    free(r->api_key);
  }
  free(r->model);
  if (r->tok) eng_model_close(r->tok);
  pthread_mutex_destroy(&r->mu);
  free(r);
}

static const agent__backend_ops k_chat_ops = {
    .kind = "remote", .bind = r_bind, .unbind = r_unbind, .generate = r_generate, .cancel = r_cancel,
    .count_tokens = r_count, .n_ctx = r_n_ctx, .close = r_close, .chat_api = 1,
};
static const agent__backend_ops k_completions_ops = {
    .kind = "remote", .bind = r_bind, .unbind = r_unbind, .generate = r_generate, .cancel = r_cancel,
    .count_tokens = r_count, .n_ctx = r_n_ctx, .close = r_close, .chat_api = 0,
};

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

int agent__remote_open(agent_backend *b, char **errmsg) {
  pthread_once(&g_curl_once, curl_init_once);
  remote *r = calloc(1, sizeof *r);
  if (!r) return AGENT_ENOMEM;
  pthread_mutex_init(&r->mu, NULL);
  size_t n = strlen(b->opts.spec);
  while (n > 0 && b->opts.spec[n - 1] == '/') n--;
  if (n >= 3 && !strncmp(b->opts.spec + n - 3, "/v1", 3)) n -= 3;
  r->base = qc_strndup(b->opts.spec, n);
  const char *host = strstr(b->opts.spec, "://");
  if (!r->base || !host || !host[3] || host[3] == '/') {
    if (errmsg) *errmsg = qc_asprintf("'%s' is not a usable server URL (expected http(s)://HOST[:PORT][/v1])", b->opts.spec);
    b->impl = r;
    r_close(b);
    b->impl = NULL;
    return AGENT_ESPEC;
  }
  const char *env = b->opts.api_key_env;
  const char *key = env ? getenv(env) : getenv("QCODER_API_KEY");
  if (!env && (!key || !*key)) key = getenv("OPENAI_API_KEY");
  if (key && *key) r->api_key = strdup(key);
  if (b->opts.tokenizer) {
    eng_model_opts mo = {.vocab_only = 1};
    eng_error ee = {0};
    if (eng_model_open(b->opts.tokenizer, &mo, &r->tok, &ee) != ENG_OK) {
      if (errmsg) *errmsg = qc_asprintf("cannot load the tokenizer %s: %s", b->opts.tokenizer, ee.msg);
      b->impl = r;
      r_close(b);
      b->impl = NULL;
      return AGENT_ESPEC;
    }
  }
  b->impl = r;
  b->ops = b->opts.api == AGENT_REMOTE_COMPLETIONS ? &k_completions_ops : &k_chat_ops;
  return AGENT_OK;
}
