/* jsonrpc.c — JSON-RPC 2.0 framing, decoding and per-connection dispatch, without I/O.
 *
 * The wire rules, the limits and the ownership rules are in jsonrpc.h. Here: the framer
 * (a byte buffer with a read position, compacted lazily so a 32 MiB message arriving
 * in 64 KiB chunks is copied O(n) times, not O(n^2)), the decoder (UTF-8 and nesting
 * checked before jansson parses), and the connection state machine: open incoming
 * requests, pending outgoing requests, close hooks, reference counts.
 *
 * Reentrancy is the hard part: a handler may answer, close the connection, or send
 * requests from inside any callback, and a cancel hook may free its own request. So
 * every place that calls out holds a reference on what it still needs afterwards, and
 * lists are re-scanned from the head after each callout instead of being walked.
 */
#include "daemon/jsonrpc.h"

#include <assert.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *rpc_strerror(int code) {
  switch (code) {
#define RPC__ERR_CASE(name, msg) case RPC_E##name: return msg;
    RPC_ERR_MAP(RPC__ERR_CASE)
#undef RPC__ERR_CASE
  default: return qc_strerror(code);
  }
}

/* ---- framer ------------------------------------------------------------------------ */

void rpc_framer_init(rpc_framer *f, rpc_framing framing, size_t max_message) {
  memset(f, 0, sizeof *f);
  f->framing = framing;
  f->max_message = max_message ? max_message : RPC_MAX_MESSAGE_BYTES;
  qc_buf_init(&f->in, 0);
}

void rpc_framer_release(rpc_framer *f) {
  qc_buf_release(&f->in);
  f->pos = f->scan = 0;
}

size_t rpc_framer_pending(const rpc_framer *f) { return f->in.len - f->pos; }

int rpc_framer_feed(rpc_framer *f, const void *data, size_t n) {
  if (f->failed) return RPC_EFRAMING;
  /* Drop consumed bytes only once they outweigh the rest, so a big message that
   * arrives in many chunks is moved a bounded number of times. */
  if (f->pos && f->pos >= f->in.len - f->pos) {
    qc_buf_consume(&f->in, f->pos);
    f->pos = 0;
  }
  return qc_buf_append(&f->in, data, n);
}

static int framer_fail(rpc_framer *f, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int framer_fail(rpc_framer *f, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(f->error, sizeof f->error, fmt, ap);
  va_end(ap);
  f->failed = 1;
  return code;
}

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Decide the framing from the first non-blank bytes; 0 when more bytes are needed. */
static int framer_detect(rpc_framer *f) {
  static const char lsp_prefix[] = "content-";
  const size_t plen = sizeof lsp_prefix - 1;
  while (f->pos < f->in.len && is_blank(f->in.data[f->pos])) f->pos++;
  size_t avail = f->in.len - f->pos;
  if (avail == 0) return 0;
  size_t k = avail < plen ? avail : plen;
  if (strncasecmp(f->in.data + f->pos, lsp_prefix, k) == 0) {
    if (k < plen) return 0;
    f->framing = RPC_FRAMING_LSP;
  } else {
    f->framing = RPC_FRAMING_NDJSON;
  }
  return 1;
}

static int framer_next_ndjson(rpc_framer *f, const char **msg, size_t *len) {
  for (;;) {
    const char *base = f->in.data + f->pos;
    size_t avail = f->in.len - f->pos;
    const char *nl = avail > f->scan ? memchr(base + f->scan, '\n', avail - f->scan) : NULL;
    if (!nl) {
      f->scan = avail;
      /* a line may end in "\r\n": allow one byte over the limit before the '\n' comes */
      if (avail > f->max_message + 1)
        return framer_fail(f, RPC_EMSG_TOOBIG,
                           "message exceeds the %zu-byte limit (no newline after %zu bytes)",
                           f->max_message, avail);
      return 0;
    }
    size_t line = (size_t)(nl - base);
    f->pos += line + 1;
    f->scan = 0;
    size_t a = 0, b = line;
    while (b > a && is_blank(base[b - 1])) b--;
    while (a < b && is_blank(base[a])) a++;
    if (a == b) continue; /* blank line */
    if (b - a > f->max_message)
      return framer_fail(f, RPC_EMSG_TOOBIG, "message of %zu bytes exceeds the %zu-byte limit",
                         b - a, f->max_message);
    *msg = base + a;
    *len = b - a;
    return 1;
  }
}

/* Parse a complete LSP header block [p, p+n) (lines without the final blank line). */
static int framer_parse_headers(rpc_framer *f, const char *p, size_t n) {
  int have_length = 0;
  size_t length = 0;
  const char *end = p + n;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *le = eol ? eol : end;
    if (le > p && le[-1] == '\r') le--;
    for (const char *q = p; q < le; q++) {
      unsigned char c = (unsigned char)*q;
      if ((c < 0x20 && c != '\t') || c > 0x7E)
        return framer_fail(f, RPC_EFRAMING, "header contains a non-ASCII or control byte 0x%02x", c);
    }
    const char *colon = memchr(p, ':', (size_t)(le - p));
    if (!colon || colon == p)
      return framer_fail(f, RPC_EFRAMING, "malformed header line \"%.*s\" (expected Name: value)",
                         (int)((le - p) > 60 ? 60 : (le - p)), p);
    const char *name = p, *ne = colon;
    while (ne > name && (ne[-1] == ' ' || ne[-1] == '\t')) ne--;
    const char *v = colon + 1, *ve = le;
    while (v < ve && (*v == ' ' || *v == '\t')) v++;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
    size_t nlen = (size_t)(ne - name);
    if (nlen == 14 && strncasecmp(name, "Content-Length", 14) == 0) {
      if (have_length) return framer_fail(f, RPC_EFRAMING, "duplicate Content-Length header");
      if (v == ve) return framer_fail(f, RPC_EFRAMING, "empty Content-Length header");
      length = 0;
      for (const char *d = v; d < ve; d++) {
        if (*d < '0' || *d > '9')
          return framer_fail(f, RPC_EFRAMING, "Content-Length \"%.*s\" is not a decimal number",
                             (int)((ve - v) > 40 ? 40 : (ve - v)), v);
        if (length > (SIZE_MAX - 9) / 10) {
          length = SIZE_MAX;
          break;
        }
        length = length * 10 + (size_t)(*d - '0');
      }
      if (length > f->max_message)
        return framer_fail(f, RPC_EMSG_TOOBIG, "Content-Length %.*s exceeds the %zu-byte limit",
                           (int)((ve - v) > 40 ? 40 : (ve - v)), v, f->max_message);
      have_length = 1;
    }
    /* Content-Type and unknown headers are accepted and ignored. */
    p = eol ? eol + 1 : end;
  }
  if (!have_length) return framer_fail(f, RPC_EFRAMING, "missing Content-Length header");
  f->body_len = length;
  f->in_body = 1;
  return 0;
}

static int framer_next_lsp(rpc_framer *f, const char **msg, size_t *len) {
  if (!f->in_body) {
    if (f->scan == 0) /* tolerate stray line ends between messages */
      while (f->pos < f->in.len && (f->in.data[f->pos] == '\r' || f->in.data[f->pos] == '\n')) f->pos++;
    const char *base = f->in.data + f->pos;
    size_t avail = f->in.len - f->pos;
    /* f->scan: start of the first header line not yet seen complete */
    for (;;) {
      const char *nl = avail > f->scan ? memchr(base + f->scan, '\n', avail - f->scan) : NULL;
      if (!nl) {
        if (avail > RPC_MAX_HEADER_BYTES)
          return framer_fail(f, RPC_EFRAMING, "header block longer than %u bytes", RPC_MAX_HEADER_BYTES);
        return 0;
      }
      size_t ls = f->scan, le = (size_t)(nl - base);
      size_t content = le - ls - (le > ls && base[le - 1] == '\r' ? 1 : 0);
      if (le + 1 > RPC_MAX_HEADER_BYTES)
        return framer_fail(f, RPC_EFRAMING, "header block longer than %u bytes", RPC_MAX_HEADER_BYTES);
      if (content == 0) { /* the blank line: headers are [0, ls) */
        int rc = framer_parse_headers(f, base, ls);
        if (rc) return rc;
        f->pos += le + 1;
        f->scan = 0;
        break;
      }
      f->scan = le + 1;
    }
  }
  if (f->in.len - f->pos < f->body_len) return 0;
  *msg = f->in.data + f->pos;
  *len = f->body_len;
  f->pos += f->body_len;
  f->in_body = 0;
  f->body_len = 0;
  return 1;
}

int rpc_framer_next(rpc_framer *f, const char **msg, size_t *len) {
  if (f->failed) return RPC_EFRAMING;
  if (f->framing == RPC_FRAMING_DETECT && !framer_detect(f)) return 0;
  if (f->framing == RPC_FRAMING_LSP) return framer_next_lsp(f, msg, len);
  return framer_next_ndjson(f, msg, len);
}

int rpc_frame_encode(rpc_framing framing, const char *body, size_t len, qc_buf *out) {
  int rc;
  if (framing == RPC_FRAMING_LSP) {
    if ((rc = qc_buf_printf(out, "Content-Length: %zu\r\n\r\n", len))) return rc;
    return qc_buf_append(out, body, len);
  }
  if ((rc = qc_buf_reserve(out, len + 1))) return rc;
  qc_buf_append(out, body, len);
  return qc_buf_putc(out, '\n');
}

/* ---- decoding ---------------------------------------------------------------------- */

int rpc_json_depth(const char *s, size_t n, int limit) {
  int depth = 0, max = 0, in_str = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (in_str) {
      if (c == '\\') i++;
      else if (c == '"') in_str = 0;
      continue;
    }
    if (c == '"') {
      in_str = 1;
    } else if (c == '[' || c == '{') {
      if (++depth > max && (max = depth) > limit) return max;
    } else if ((c == ']' || c == '}') && depth > 0) {
      depth--;
    }
  }
  return max;
}

static int decode_fail(rpc_decode_error *err, int code, const json_t *id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int decode_fail(rpc_decode_error *err, int code, const json_t *id, const char *fmt, ...) {
  err->code = code;
  err->id = id ? json_deep_copy(id) : NULL;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  return -1;
}

static int valid_id(const json_t *id) {
  return id && (json_is_integer(id) || json_is_string(id) || json_is_null(id));
}

int rpc_decode(const char *text, size_t len, rpc_msg *msg, rpc_decode_error *err) {
  memset(msg, 0, sizeof *msg);
  memset(err, 0, sizeof *err);
  if (!qc_utf8_valid(text, len)) return decode_fail(err, RPC_PARSE_ERROR, NULL, "parse error: invalid UTF-8");
  if (rpc_json_depth(text, len, RPC_MAX_JSON_DEPTH) > RPC_MAX_JSON_DEPTH)
    return decode_fail(err, RPC_PARSE_ERROR, NULL, "parse error: JSON nested deeper than %d levels",
                       RPC_MAX_JSON_DEPTH);
  json_error_t je;
  json_t *root = json_loadb(text, len, JSON_DECODE_ANY, &je);
  if (!root) {
    if (json_error_code(&je) == json_error_invalid_utf8)
      return decode_fail(err, RPC_PARSE_ERROR, NULL, "parse error: invalid UTF-8");
    return decode_fail(err, RPC_PARSE_ERROR, NULL, "parse error at line %d column %d: %s", je.line,
                       je.column, je.text);
  }
  int rc = -1;
  if (json_is_array(root)) {
    decode_fail(err, RPC_INVALID_REQUEST, NULL, "invalid request: batches (JSON arrays) are not supported");
    goto out;
  }
  if (!json_is_object(root)) {
    decode_fail(err, RPC_INVALID_REQUEST, NULL, "invalid request: a message must be a JSON object");
    goto out;
  }
  const json_t *id = json_object_get(root, "id");
  const json_t *method = json_object_get(root, "method");
  const json_t *result = json_object_get(root, "result");
  const json_t *error = json_object_get(root, "error");
  const json_t *version = json_object_get(root, "jsonrpc");
  int version_ok = json_is_string(version) && strcmp(json_string_value(version), "2.0") == 0;
  if (id && !valid_id(id)) {
    err->silent = !method && (result || error);
    decode_fail(err, RPC_INVALID_REQUEST, NULL, "invalid request: id must be a string, an integer or null");
    goto out;
  }
  if (method) {
    if (!json_is_string(method)) {
      decode_fail(err, RPC_INVALID_REQUEST, id, "invalid request: method must be a string");
      goto out;
    }
    if (!version_ok) {
      decode_fail(err, RPC_INVALID_REQUEST, id, "invalid request: \"jsonrpc\" must be \"2.0\"");
      goto out;
    }
    const json_t *params = json_object_get(root, "params");
    if (params && json_is_null(params)) params = NULL; /* tolerated: some clients send null */
    if (params && !json_is_object(params) && !json_is_array(params)) {
      decode_fail(err, RPC_INVALID_REQUEST, id, "invalid request: params must be an object or an array");
      goto out;
    }
    msg->kind = id ? RPC_MSG_REQUEST : RPC_MSG_NOTIFICATION;
    msg->id = id;
    msg->method = json_string_value(method);
    msg->params = params;
  } else if (result || error) {
    /* A malformed response is logged, never answered: answering could start an error
     * ping-pong between two peers that each think the other is wrong. */
    err->silent = 1;
    if (!id) {
      decode_fail(err, RPC_INVALID_REQUEST, NULL, "response without an id");
      goto out;
    }
    if (!version_ok) {
      decode_fail(err, RPC_INVALID_REQUEST, NULL, "response without \"jsonrpc\": \"2.0\"");
      goto out;
    }
    if (result && error) {
      decode_fail(err, RPC_INVALID_REQUEST, NULL, "response with both result and error");
      goto out;
    }
    if (error && (!json_is_object(error) || !json_is_integer(json_object_get(error, "code")))) {
      decode_fail(err, RPC_INVALID_REQUEST, NULL, "response error is not an object with an integer code");
      goto out;
    }
    err->silent = 0;
    msg->kind = RPC_MSG_RESPONSE;
    msg->id = id;
    msg->result = result;
    msg->error = error;
  } else {
    decode_fail(err, RPC_INVALID_REQUEST, valid_id(id) ? id : NULL,
                "invalid request: no \"method\" (and not a response)");
    goto out;
  }
  msg->root = root;
  root = NULL;
  rc = 0;
out:
  json_decref(root);
  return rc;
}

void rpc_msg_release(rpc_msg *msg) {
  json_decref(msg->root);
  memset(msg, 0, sizeof *msg);
}

json_t *rpc_make_request(json_int_t id, const char *method, json_t *params_steal) {
  json_t *m = json_pack("{s:s, s:I, s:s}", "jsonrpc", "2.0", "id", id, "method", method);
  if (m && params_steal) json_object_set_new(m, "params", params_steal);
  else json_decref(params_steal);
  return m;
}

json_t *rpc_make_notification(const char *method, json_t *params_steal) {
  json_t *m = json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method", method);
  if (m && params_steal) json_object_set_new(m, "params", params_steal);
  else json_decref(params_steal);
  return m;
}

json_t *rpc_make_result(const json_t *id, json_t *result_steal) {
  json_t *m = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id ? (json_t *)id : json_null(),
                        "result", result_steal ? result_steal : json_null());
  return m;
}

json_t *rpc_make_error(const json_t *id, int code, const char *message, json_t *data_steal) {
  json_t *e = json_pack("{s:i, s:s}", "code", code, "message", message ? message : "");
  if (!e) {
    /* message was not valid UTF-8: say so rather than send nothing */
    e = json_pack("{s:i, s:s}", "code", code, "message", "(error message was not valid UTF-8)");
  }
  if (e && data_steal) json_object_set_new(e, "data", data_steal);
  else json_decref(data_steal);
  if (!e) return NULL;
  return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id ? (json_t *)id : json_null(), "error", e);
}

/* ---- method table ------------------------------------------------------------------ */

typedef struct rpc_method_entry {
  char *name;
  int notification;
  rpc_request_fn on_request;
  rpc_notify_fn on_notify;
  void *user;
} rpc_method_entry;

struct rpc_methods {
  rpc_method_entry *v;
  size_t n, cap;
};

rpc_methods *rpc_methods_new(void) { return calloc(1, sizeof(rpc_methods)); }

void rpc_methods_free(rpc_methods *m) {
  if (!m) return;
  for (size_t i = 0; i < m->n; i++) free(m->v[i].name);
  free(m->v);
  free(m);
}

static const rpc_method_entry *methods_find(const rpc_methods *m, const char *name, int notification) {
  if (!m) return NULL;
  for (size_t i = 0; i < m->n; i++)
    if (m->v[i].notification == notification && strcmp(m->v[i].name, name) == 0) return &m->v[i];
  return NULL;
}

static int methods_add(rpc_methods *m, const char *name, int notification, rpc_request_fn rf,
                       rpc_notify_fn nf, void *user) {
  if (methods_find(m, name, notification)) return RPC_EDUPLICATE;
  if (m->n == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 16;
    rpc_method_entry *v = realloc(m->v, cap * sizeof *v);
    if (!v) return QC_ENOMEM;
    m->v = v;
    m->cap = cap;
  }
  char *copy = strdup(name);
  if (!copy) return QC_ENOMEM;
  m->v[m->n++] = (rpc_method_entry){copy, notification, rf, nf, user};
  return QC_OK;
}

int rpc_methods_add_request(rpc_methods *m, const char *method, rpc_request_fn fn, void *user) {
  return methods_add(m, method, 0, fn, NULL, user);
}

int rpc_methods_add_notification(rpc_methods *m, const char *method, rpc_notify_fn fn, void *user) {
  return methods_add(m, method, 1, NULL, fn, user);
}

/* ---- connections ------------------------------------------------------------------- */

struct rpc_req {
  rpc_conn *conn;          /* holds a reference */
  json_t *id;
  char *method;
  int refs;                /* 1 for the handler until it finishes, + temporary holds */
  int answered;            /* a response went out (or was dropped because closed) */
  int finished;            /* the handler called reply/error */
  int cancelled;
  int hook_ran;
  rpc_cancel_fn on_cancel;
  void *cancel_user;
  rpc_req *prev, *next;
};

typedef struct rpc_out {
  int64_t id;
  rpc_response_fn cb;
  void *user;
  struct rpc_out *next;
} rpc_out;

typedef struct rpc_hook {
  rpc_close_fn fn;
  void *user;
  struct rpc_hook *next;
} rpc_hook;

struct rpc_conn {
  int refs;
  uint64_t id;
  rpc_methods *methods;
  const rpc_conn_ops *ops;
  void *io;
  void *owner;
  rpc_framer framer;
  int closed;     /* logically closed: nothing more is sent or dispatched */
  int io_closed;  /* the transport is gone */
  int eof;        /* the peer finished sending */
  rpc_req *reqs;  /* open incoming requests (answered or not, until finished) */
  int ninflight;  /* of those, not answered */
  rpc_out *outs;
  int nouts;
  int64_t next_out_id;
  rpc_hook *hooks;
  uint64_t nreceived; /* framed messages from the peer */
  json_t *init_params;
  void (*idle_fn)(rpc_conn *, void *);
  void *idle_user;
};

static _Atomic uint64_t rpc__next_conn_id = 1;

rpc_conn *rpc_conn_new(const rpc_conn_config *cfg) {
  rpc_conn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->refs = 1;
  c->id = atomic_fetch_add(&rpc__next_conn_id, 1);
  c->methods = cfg->methods;
  c->ops = cfg->ops;
  c->io = cfg->io;
  c->owner = cfg->owner;
  rpc_framer_init(&c->framer, cfg->framing, cfg->max_message);
  return c;
}

void rpc_conn_ref(rpc_conn *c) { c->refs++; }

void rpc_conn_unref(rpc_conn *c) {
  assert(c->refs > 0);
  if (--c->refs > 0) return;
  assert(c->closed && !c->reqs && !c->outs);
  rpc_framer_release(&c->framer);
  json_decref(c->init_params);
  while (c->hooks) {
    rpc_hook *h = c->hooks;
    c->hooks = h->next;
    free(h);
  }
  free(c);
}

uint64_t rpc_conn_id(const rpc_conn *c) { return c->id; }
uint64_t rpc_conn_messages_received(const rpc_conn *c) { return c->nreceived; }
rpc_framing rpc_conn_framing(const rpc_conn *c) { return c->framer.framing; }
void *rpc_conn_owner(const rpc_conn *c) { return c->owner; }
void *rpc_conn_io(const rpc_conn *c) { return c->io_closed ? NULL : c->io; }
int rpc_conn_is_open(const rpc_conn *c) { return !c->closed; }
int rpc_conn_inflight(const rpc_conn *c) { return c->ninflight; }
const json_t *rpc_conn_init_params(const rpc_conn *c) { return c->init_params; }

void rpc_conn_set_init_params(rpc_conn *c, const json_t *params) {
  json_decref(c->init_params);
  c->init_params = params ? json_incref((json_t *)params) : NULL;
}

void rpc_conn_set_idle_hook(rpc_conn *c, void (*fn)(rpc_conn *, void *), void *user) {
  c->idle_fn = fn;
  c->idle_user = user;
}

/* Serialise, frame and hand to the transport. Messages we build ourselves from short
 * texts (error answers) skip the size check so they always get out. */
static int conn_send_checked(rpc_conn *c, json_t *msg_steal, int check_size) {
  int rc = QC_OK;
  char *text = NULL;
  qc_buf out;
  qc_buf_init(&out, 0);
  if (c->closed) {
    rc = RPC_ECLOSED;
    goto out;
  }
  if (!msg_steal || !(text = json_dumps(msg_steal, JSON_COMPACT))) {
    rc = QC_ENOMEM;
    goto out;
  }
  size_t len = strlen(text);
  if (check_size && len > c->framer.max_message) {
    rc = RPC_EMSG_TOOBIG;
    goto out;
  }
  rpc_framing fr = c->framer.framing == RPC_FRAMING_LSP ? RPC_FRAMING_LSP : RPC_FRAMING_NDJSON;
  if ((rc = rpc_frame_encode(fr, text, len, &out))) goto out;
  qc_trace("conn %llu send: %.*s", (unsigned long long)c->id, (int)(len > 2000 ? 2000 : len), text);
  if (c->ops->write(c->io, out.data, out.len) != 0) {
    qc_info("conn %llu: write failed; closing", (unsigned long long)c->id);
    rc = RPC_ECLOSED;
    rpc_conn_close(c, 0);
  }
out:
  free(text);
  qc_buf_release(&out);
  json_decref(msg_steal);
  return rc;
}

static int conn_send(rpc_conn *c, json_t *msg_steal) { return conn_send_checked(c, msg_steal, 1); }

static void conn_send_error(rpc_conn *c, const json_t *id, int code, const char *message) {
  conn_send_checked(c, rpc_make_error(id, code, message, NULL), 0);
}

int rpc_conn_notify(rpc_conn *c, const char *method, json_t *params_steal) {
  if (c->closed) {
    json_decref(params_steal);
    return RPC_ECLOSED;
  }
  return conn_send(c, rpc_make_notification(method, params_steal));
}

int64_t rpc_conn_request(rpc_conn *c, const char *method, json_t *params_steal, rpc_response_fn cb,
                         void *user) {
  if (c->closed) {
    json_decref(params_steal);
    return RPC_ECLOSED;
  }
  if (c->nouts >= RPC_MAX_PENDING_OUTGOING) {
    json_decref(params_steal);
    return RPC_EBUSY;
  }
  rpc_out *o = calloc(1, sizeof *o);
  if (!o) {
    json_decref(params_steal);
    return QC_ENOMEM;
  }
  int64_t id = ++c->next_out_id;
  int rc = conn_send(c, rpc_make_request((json_int_t)id, method, params_steal));
  if (rc) {
    free(o);
    return rc;
  }
  o->id = id;
  o->cb = cb;
  o->user = user;
  o->next = c->outs;
  c->outs = o;
  c->nouts++;
  return id;
}

int rpc_conn_forget_request(rpc_conn *c, int64_t id) {
  for (rpc_out **p = &c->outs; *p; p = &(*p)->next) {
    if ((*p)->id != id) continue;
    rpc_out *o = *p;
    *p = o->next;
    c->nouts--;
    free(o);
    return QC_OK;
  }
  return QC_ENOENT;
}

int rpc_conn_pending_outgoing(const rpc_conn *c) { return c->nouts; }

int rpc_conn_cancel_request(rpc_conn *c, int64_t id) {
  if (c->framer.framing == RPC_FRAMING_LSP)
    return rpc_conn_notify(c, "$/cancelRequest", json_pack("{s:I}", "id", (json_int_t)id));
  return rpc_conn_notify(c, "$/cancel_request", json_pack("{s:I}", "requestId", (json_int_t)id));
}

int rpc_conn_on_close(rpc_conn *c, rpc_close_fn fn, void *user) {
  if (c->closed) return RPC_ECLOSED;
  rpc_hook *h = calloc(1, sizeof *h);
  if (!h) return QC_ENOMEM;
  h->fn = fn;
  h->user = user;
  h->next = c->hooks;
  c->hooks = h;
  return QC_OK;
}

void rpc_conn_remove_close_hook(rpc_conn *c, rpc_close_fn fn, void *user) {
  for (rpc_hook **p = &c->hooks; *p; p = &(*p)->next) {
    if ((*p)->fn == fn && (*p)->user == user) {
      rpc_hook *h = *p;
      *p = h->next;
      free(h);
      return;
    }
  }
}

/* ---- incoming requests ------------------------------------------------------------- */

static void req_unref(rpc_req *r) {
  assert(r->refs > 0);
  if (--r->refs > 0) return;
  rpc_conn *c = r->conn;
  if (r->prev) r->prev->next = r->next;
  else c->reqs = r->next;
  if (r->next) r->next->prev = r->prev;
  json_decref(r->id);
  free(r->method);
  free(r);
  rpc_conn_unref(c);
}

/* After an answer: the connection may have been waiting for its last one. */
static void conn_after_answer(rpc_conn *c) {
  if (c->ninflight > 0) return;
  if (c->eof && !c->closed) rpc_conn_close(c, 1);
  if (c->idle_fn) c->idle_fn(c, c->idle_user);
}

/* Mark answered and send `msg` (stolen) unless the connection is gone. */
static void req_answer(rpc_req *r, json_t *msg_steal) {
  rpc_conn *c = r->conn;
  assert(!r->answered);
  r->answered = 1;
  c->ninflight--;
  if (!c->closed) {
    int rc = conn_send(c, msg_steal);
    if (rc == RPC_EMSG_TOOBIG) {
      qc_warn("conn %llu: answer to %s exceeds the message limit; sending an error instead",
              (unsigned long long)c->id, r->method);
      conn_send_error(c, r->id, RPC_INTERNAL_ERROR, "the result exceeds the 32 MiB message limit");
    } else if (rc == QC_ENOMEM) {
      qc_error("conn %llu: cannot serialise the answer to %s", (unsigned long long)c->id, r->method);
      conn_send_error(c, r->id, RPC_INTERNAL_ERROR, "internal error: the answer could not be serialised");
    }
  } else {
    json_decref(msg_steal);
  }
}

static void req_finish(rpc_req *r, json_t *msg_steal) {
  assert(!r->finished); /* a handler answers exactly once */
  if (r->finished) {
    json_decref(msg_steal);
    return;
  }
  r->finished = 1;
  rpc_conn *c = r->conn;
  rpc_conn_ref(c);
  if (!r->answered) req_answer(r, msg_steal);
  else json_decref(msg_steal);
  req_unref(r);
  conn_after_answer(c);
  rpc_conn_unref(c);
}

void rpc_req_reply(rpc_req *req, json_t *result_steal) {
  req_finish(req, rpc_make_result(req->id, result_steal));
}

void rpc_req_error(rpc_req *req, int code, const char *message, json_t *data_steal) {
  req_finish(req, rpc_make_error(req->id, code, message, data_steal));
}

void rpc_req_errorf(rpc_req *req, int code, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  rpc_req_error(req, code, msg, NULL);
}

static void req_run_hook(rpc_req *r) {
  if (!r->cancelled || r->hook_ran || r->finished || !r->on_cancel) return;
  r->hook_ran = 1;
  r->refs++;
  r->on_cancel(r, r->cancel_user);
  req_unref(r);
}

void rpc_req_on_cancel(rpc_req *req, rpc_cancel_fn fn, void *user) {
  req->on_cancel = fn;
  req->cancel_user = user;
  req->hook_ran = 0;
  req_run_hook(req);
}

static void req_cancel(rpc_req *r) {
  if (r->cancelled) return;
  r->cancelled = 1;
  req_run_hook(r);
}

int rpc_req_cancelled(const rpc_req *req) { return req->cancelled; }
rpc_conn *rpc_req_conn(const rpc_req *req) { return req->conn; }
const json_t *rpc_req_id(const rpc_req *req) { return req->id; }
const char *rpc_req_method(const rpc_req *req) { return req->method; }

void rpc_conn_cancel_all(rpc_conn *c) {
  rpc_conn_ref(c);
  for (;;) {
    rpc_req *r = c->reqs;
    while (r && (r->cancelled || r->finished)) r = r->next;
    if (!r) break;
    req_cancel(r); /* may free r and change the list: rescan */
  }
  rpc_conn_unref(c);
}

void rpc_conn_fail_inflight(rpc_conn *c, int code, const char *message) {
  rpc_conn_ref(c);
  for (;;) {
    rpc_req *r = c->reqs;
    while (r && r->answered) r = r->next;
    if (!r) break;
    req_answer(r, rpc_make_error(r->id, code, message, NULL));
  }
  conn_after_answer(c);
  rpc_conn_unref(c);
}

/* ---- closing ----------------------------------------------------------------------- */

/* Our requests that can no longer be answered (closed, or the peer stopped sending). */
static void conn_fail_outgoing(rpc_conn *c) {
  while (c->outs) {
    rpc_out *o = c->outs;
    c->outs = o->next;
    c->nouts--;
    rpc_error e = {RPC_CONNECTION_CLOSED, "the connection closed before the peer answered", NULL};
    o->cb(c, NULL, &e, o->user);
    free(o);
  }
}

void rpc_conn_close(rpc_conn *c, int flush) {
  if (c->closed) {
    if (!flush && !c->io_closed) c->ops->close(c->io, 0);
    return;
  }
  c->closed = 1;
  rpc_conn_ref(c);
  if (!c->io_closed) c->ops->close(c->io, flush);
  conn_fail_outgoing(c);
  rpc_conn_cancel_all(c);
  while (c->hooks) {
    rpc_hook *h = c->hooks;
    c->hooks = h->next;
    h->fn(c, h->user);
    free(h);
  }
  rpc_conn_unref(c);
}

void rpc_conn_io_closed(rpc_conn *c) {
  assert(!c->io_closed);
  c->io_closed = 1;
  if (!c->closed) rpc_conn_close(c, 0);
  rpc_conn_unref(c); /* the transport's reference */
}

/* ---- dispatch ---------------------------------------------------------------------- */

static void dispatch_request(rpc_conn *c, const rpc_msg *m) {
  if (c->ninflight >= RPC_MAX_INFLIGHT_REQUESTS) {
    char msg[120];
    snprintf(msg, sizeof msg, "too many requests in flight on this connection (limit %d)",
             RPC_MAX_INFLIGHT_REQUESTS);
    conn_send_error(c, m->id, RPC_INTERNAL_ERROR, msg);
    return;
  }
  const rpc_method_entry *e = methods_find(c->methods, m->method, 0);
  if (!e) {
    char msg[200];
    snprintf(msg, sizeof msg, "method not found: %.150s", m->method);
    conn_send_error(c, m->id, RPC_METHOD_NOT_FOUND, msg);
    return;
  }
  rpc_req *r = calloc(1, sizeof *r);
  char *method = strdup(m->method);
  if (!r || !method) {
    free(r);
    free(method);
    conn_send_error(c, m->id, RPC_INTERNAL_ERROR, "out of memory");
    return;
  }
  r->conn = c;
  rpc_conn_ref(c);
  r->id = json_incref((json_t *)m->id);
  r->method = method;
  r->refs = 2; /* the handler's, and ours across the call */
  r->next = c->reqs;
  if (c->reqs) c->reqs->prev = r;
  c->reqs = r;
  c->ninflight++;
  e->on_request(r, m->params, e->user);
  req_unref(r);
}

static void dispatch_cancel(rpc_conn *c, const json_t *id) {
  if (!valid_id(id)) return;
  for (rpc_req *r = c->reqs; r; r = r->next) {
    if (!r->answered && !r->cancelled && json_equal(r->id, (json_t *)id)) {
      qc_debug("conn %llu: peer cancelled %s", (unsigned long long)c->id, r->method);
      req_cancel(r);
      return;
    }
  }
}

static void dispatch_notification(rpc_conn *c, const rpc_msg *m) {
  if (strcmp(m->method, "$/cancel_request") == 0) {
    dispatch_cancel(c, json_object_get(m->params, "requestId"));
    return;
  }
  if (strcmp(m->method, "$/cancelRequest") == 0) {
    dispatch_cancel(c, json_object_get(m->params, "id"));
    return;
  }
  const rpc_method_entry *e = methods_find(c->methods, m->method, 1);
  if (!e) {
    qc_debug("conn %llu: ignoring notification %s", (unsigned long long)c->id, m->method);
    return;
  }
  e->on_notify(c, m->params, e->user);
}

static void dispatch_response(rpc_conn *c, const rpc_msg *m) {
  rpc_out **p = &c->outs;
  if (json_is_integer(m->id)) {
    for (; *p; p = &(*p)->next)
      if ((*p)->id == (int64_t)json_integer_value(m->id)) break;
  } else {
    p = NULL;
  }
  if (!p || !*p) {
    json_int_t n = json_is_integer(m->id) ? json_integer_value(m->id) : 0;
    if (n > 0 && n <= c->next_out_id)
      qc_debug("conn %llu: answer to our request %lld, which is no longer pending (given up on, or already "
               "answered); dropped",
               (unsigned long long)c->id, (long long)n);
    else
      qc_warn("conn %llu: response to an unknown request id; ignored", (unsigned long long)c->id);
    return;
  }
  rpc_out *o = *p;
  *p = o->next;
  c->nouts--;
  if (m->result) {
    o->cb(c, m->result, NULL, o->user);
  } else {
    const json_t *msg = json_object_get(m->error, "message");
    rpc_error e = {(int)json_integer_value(json_object_get(m->error, "code")),
                   json_is_string(msg) ? json_string_value(msg) : "", json_object_get(m->error, "data")};
    o->cb(c, NULL, &e, o->user);
  }
  free(o);
}

static void conn_handle_message(rpc_conn *c, const char *text, size_t len) {
  rpc_msg m;
  rpc_decode_error de;
  qc_trace("conn %llu recv: %.*s", (unsigned long long)c->id, (int)(len > 2000 ? 2000 : len), text);
  c->nreceived++;
  if (rpc_decode(text, len, &m, &de) != 0) {
    if (de.silent) {
      qc_warn("conn %llu: dropped a malformed response: %s", (unsigned long long)c->id, de.message);
    } else {
      qc_debug("conn %llu: %s", (unsigned long long)c->id, de.message);
      conn_send_error(c, de.id, de.code, de.message);
    }
    json_decref(de.id);
    return;
  }
  switch (m.kind) {
  case RPC_MSG_REQUEST: dispatch_request(c, &m); break;
  case RPC_MSG_NOTIFICATION: dispatch_notification(c, &m); break;
  case RPC_MSG_RESPONSE: dispatch_response(c, &m); break;
  }
  rpc_msg_release(&m);
}

static void conn_drain(rpc_conn *c) {
  while (!c->closed) {
    const char *msg;
    size_t len;
    int rc = rpc_framer_next(&c->framer, &msg, &len);
    if (rc == 0) break;
    if (rc < 0) {
      qc_warn("conn %llu: %s; closing the connection", (unsigned long long)c->id, c->framer.error);
      conn_send_error(c, NULL, rc == RPC_EMSG_TOOBIG ? RPC_INVALID_REQUEST : RPC_PARSE_ERROR,
                      c->framer.error);
      rpc_conn_close(c, 1);
      break;
    }
    conn_handle_message(c, msg, len);
  }
}

void rpc_conn_input(rpc_conn *c, const char *data, size_t n) {
  if (c->closed || c->eof) return;
  rpc_conn_ref(c);
  if (rpc_framer_feed(&c->framer, data, n) != 0) {
    qc_error("conn %llu: out of memory buffering input; closing", (unsigned long long)c->id);
    rpc_conn_close(c, 0);
  }
  conn_drain(c);
  rpc_conn_unref(c);
}

void rpc_conn_input_eof(rpc_conn *c) {
  if (c->closed || c->eof) return;
  rpc_conn_ref(c);
  if (c->framer.framing != RPC_FRAMING_LSP) {
    /* a last newline-delimited message without its '\n' still counts */
    if (rpc_framer_feed(&c->framer, "\n", 1) == 0) conn_drain(c);
  } else if (rpc_framer_pending(&c->framer) > 0) {
    qc_info("conn %llu: peer closed in the middle of a message", (unsigned long long)c->id);
  }
  c->eof = 1;
  if (!c->closed) {
    /* The peer is gone for input: it cannot answer our requests any more; stop its
     * work, answer what is open, then close. */
    conn_fail_outgoing(c);
    if (c->closed) {
      /* a callback closed it */
    } else if (c->ninflight == 0) {
      rpc_conn_close(c, 1);
    } else {
      rpc_conn_cancel_all(c);
    }
  }
  rpc_conn_unref(c);
}
