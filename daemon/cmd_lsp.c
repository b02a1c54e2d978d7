/* cmd_lsp.c — `qcoder lsp`: the LSP face, an LSP server on stdio that is an ACP client of
 * the daemon.
 *
 *   editor ──LSP (Content-Length) on stdio──▶ qcoder lsp ──ACP (NDJSON) on the socket──▶ daemon
 *
 * One libuv loop (an rpc_server that listens nowhere) carries both connections: the
 * editor's stdio and the adopted daemon socket. The protocol logic — positions, the
 * document store, edits, code actions, prompts, progress, the FIM request and its trim —
 * is lsp/ (pure, unit-tested); this file does the I/O and the bookkeeping:
 *
 *   - Editor side: initialize (capabilities: only what works), document sync into the
 *     store, code actions, workspace/executeCommand, textDocument/inlineCompletion,
 *     window/workDoneProgress/cancel, shutdown/exit (exit code 0 after shutdown, else 1).
 *   - Daemon side: connected (and started when none answers, as `gopls -remote=auto`)
 *     on a worker thread the first time it is needed; `initialize` as an ACP client with
 *     fs.readTextFile/writeTextFile, so the agent reads the editor's unsaved buffers and
 *     its writes come back here.
 *   - A command is one ACP session (session/new with _meta.qcoder {model, mode}, then one
 *     session/prompt). Its session/update events become $/progress reports (when the
 *     client supports window.workDoneProgress: the client's workDoneToken, or one
 *     created with window/workDoneProgress/create); $/cancelRequest (or the progress's
 *     cancel) sends session/cancel and answers the command -32800 at once.
 *   - The agent's fs/write_text_file: a document open in the editor is changed with
 *     workspace/applyEdit (minimal TextEdits, versioned documentChanges when the client
 *     takes them), so the editor's undo works and the buffer is never overwritten behind
 *     the user's back; a file not open in the editor is written to disk (atomically), so
 *     builds and tests the agent runs see it — an edit parked in an unsaved hidden buffer
 *     would be invisible to them and lost when the editor quits without saving.
 *   - session/request_permission by mode: read-only rejects, full-auto allows, ask and
 *     auto-edit ask the user with window/showMessageRequest (Allow / Allow always /
 *     Reject) when the client supports it, else reject and say why.
 *   - Inline completion: the FIM request (lsp_fim_build: prefix/suffix windows, open
 *     buffers, then files the repo map ranks near this one) goes to the daemon's
 *     `_qcoder/complete`; the answer is cut at the end of the block (lsp_inline_trim) and
 *     returned as one item with an empty range at the cursor. $/cancelRequest answers
 *     -32800 at once and cancels the daemon's request.
 *
 * Threads: everything runs on the loop thread except the daemon connect, disk reads and
 * writes, and the repo map (a build thread, and completion jobs on the libuv pool under a
 * mutex with a bounded wait).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"
#include "daemon/client.h"
#include "daemon/commands.h"
#include "daemon/workflow.h"
#include "daemon/server.h"
#include "lsp/lsp.h"
#include "tools/tools.h"

const char cmd_lsp_usage[] =
    "usage: qcoder lsp [--model SPEC | --remote URL] [--mode MODE] [--socket PATH]\n"
    "                  [--log-level LEVEL]\n"
    "\n"
    "Speak the Language Server Protocol on stdin/stdout (Content-Length framing) for an\n"
    "editor: code actions (qcoder: fix / explain / refactor), the commands qcoder.fix,\n"
    "qcoder.explain, qcoder.refactor, qcoder.ask and qcoder.run, and inline completion\n"
    "(fill-in-the-middle). The work is done by the qcoder daemon, which is started when none\n"
    "answers on the socket. See docs/lsp.md.\n"
    "\n"
    "  --model SPEC     the model: a GGUF file, a cached model's name (qcoder models),\n"
    "                   script:FILE (the scripted test double) or an http(s):// URL of an\n"
    "                   OpenAI-compatible server (default: the daemon's)\n"
    "  --remote URL     an OpenAI-compatible server (the same as --model URL)\n"
    "  --mode MODE      ask (default), auto-edit, full-auto or read-only: what the agent may\n"
    "                   do without asking (explain and ask always run read-only)\n"
    "  --socket PATH    the daemon's socket (default: as `qcoder serve`)\n"
    "  --log-level L    error, warn (default), info, debug or trace; the log goes to stderr\n"
    "\n"
    "initializationOptions {\"model\", \"remote\", \"mode\"} override the command line.\n"
    "Exit status: 0 after shutdown+exit, 1 when the editor exits without shutdown, 2 usage.\n";

/* LSP error codes this face answers with (besides jsonrpc.h's). */
#define LSP_SERVER_NOT_INITIALIZED -32002
#define LSP_REQUEST_FAILED -32803

/* A command's document that the editor does not have open is read from disk on the
 * loop thread, to be quoted in the prompt (at most LSP_PROMPT_MAX_QUOTE_BYTES of it,
 * with line numbers counted from the top). 4 MiB reads in a millisecond or two from
 * the page cache, so the loop is never held long; source files are far smaller, and a
 * bigger one works once the editor opens it (the store takes LSP_MAX_DOCUMENT_BYTES). */
#define LSP_MAX_UNOPENED_FILE_BYTES ((size_t)4 << 20)

/* ---- state ------------------------------------------------------------------------- */

typedef struct qls qls;
typedef void (*ready_fn)(qls *ls, const char *err, void *user);

typedef struct waiter {
  ready_fn fn;
  void *user;
  struct waiter *next;
} waiter;

enum { D_NONE, D_CONNECTING, D_INITIALIZING, D_READY };
enum { MAP_NONE, MAP_BUILDING, MAP_READY, MAP_FAILED };

/* One executeCommand: one ACP session, one prompt. Reference-counted: every callback
 * that may still arrive holds a reference. */
typedef struct run {
  qls *ls;
  int refs;
  struct run *next;
  rpc_req *req;            /* the editor's request; NULL once answered */
  lsp_command_args a;
  char *prompt;
  const char *mode;        /* the session's mode name (a literal, or ls->mode_name, which is
                              set before the first command and then never changes) */
  char *session_id;
  json_t *token;           /* progress token, NULL: no progress */
  int token_live;          /* "begin" sent, "end" not yet */
  lsp_progress *progress;
  json_t *changed;         /* URIs of the files the agent wrote */
  int cancelled;           /* by the editor */
  int done;                /* the prompt ended (or never started) */
  json_t *permission_reqs; /* open session/request_permission reqs (as integers of pointers) */
} run;

/* One textDocument/inlineCompletion. */
typedef struct inl {
  qls *ls;
  int refs;
  rpc_req *req;            /* NULL once answered */
  int cancelled;
  lsp_pos pos;
  char *rel;               /* the document's workspace-relative path */
  lsp_fim_request fim;     /* windows + open-buffer context; the worker adds neighbours */
  int64_t daemon_id;       /* the _qcoder/complete request, 0: none in flight */
  uv_work_t work;
} inl;

struct qls {
  rpc_server *srv;
  rpc_conn *editor;
  /* options (initializationOptions override the command line) */
  char *model;             /* absolute for files; NULL: the daemon's default */
  char *mode_name;         /* ask | auto-edit | full-auto | read-only */
  char *socket_path;
  /* the daemon */
  int dstate;
  rpc_conn *daemon;
  waiter *waiters;
  /* LSP */
  int initialized, shutdown;
  json_t *agent_caps;      /* what the daemon's ACP initialize reported */
  lsp_client_caps caps;
  char *root;              /* workspace root, absolute, no trailing slash */
  char *repo_name;
  lsp_docs *docs;
  run *runs;
  int64_t next_token;
  /* the repo map (built on its own thread; used under map_mu) */
  pthread_mutex_t map_mu;
  pthread_t map_thread;
  int map_started;
  atomic_int map_state;    /* MAP_* */
  tool_repomap *map;
  uint64_t map_updated_ms;
};

/* ---- small helpers ----------------------------------------------------------------- */

static void show_message(qls *ls, int type, const char *msg) {
  if (!ls->editor || !rpc_conn_is_open(ls->editor)) return;
  rpc_conn_notify(ls->editor, "window/showMessage", json_pack("{s:i, s:s}", "type", type, "message", msg));
}

/* The path as the agent and the prompts show it: relative inside the root. */
static const char *rel_path(const qls *ls, const char *path) {
  size_t n = strlen(ls->root);
  if (strncmp(path, ls->root, n) == 0 && path[n] == '/') return path + n + 1;
  if (n == 1 && path[0] == '/') return path + 1;
  return path;
}

/* The path with symlinks resolved (the daemon's spelling), or NULL when it is the same or
 * cannot be known; a file not on disk yet resolves through its folder. */
static char *real_path_of(const char *path) {
  char buf[PATH_MAX], *out = NULL;
  if (realpath(path, buf)) {
    out = strdup(buf);
  } else {
    const char *slash = strrchr(path, '/');
    char *dir = slash && slash > path ? qc_strndup(path, (size_t)(slash - path)) : NULL;
    if (dir && realpath(dir, buf)) out = qc_asprintf("%s%s", strcmp(buf, "/") ? buf : "", slash);
    free(dir);
  }
  if (out && !strcmp(out, path)) {
    free(out);
    out = NULL;
  }
  return out;
}

/* Lexically normalised absolute path (".", ".." and repeated slashes resolved); NULL for
 * a relative path. */
static char *normalize_path(const char *p) {
  if (!p || p[0] != '/') return NULL;
  size_t n = strlen(p);
  char *out = malloc(n + 2);
  if (!out) return NULL;
  size_t o = 0;
  const char *s = p;
  while (*s) {
    while (*s == '/') s++;
    const char *e = s;
    while (*e && *e != '/') e++;
    size_t len = (size_t)(e - s);
    if (len == 0) break;
    if (len == 1 && s[0] == '.') {
    } else if (len == 2 && s[0] == '.' && s[1] == '.') {
      while (o > 0 && out[o - 1] != '/') o--;
      if (o > 0) o--;
    } else {
      out[o++] = '/';
      memcpy(out + o, s, len);
      o += len;
    }
    s = e;
  }
  if (o == 0) out[o++] = '/';
  out[o] = '\0';
  return out;
}

/* A document's path as the agent sees it: its real path (the root is a real path too),
 * relative inside the root. */
static const char *doc_rel(const qls *ls, const lsp_doc *doc) { return rel_path(ls, doc->real ? doc->real : doc->path); }

/* How a prompt names a file (malloc'd; NULL without a path): as the agent sees it. */
static char *shown_path(const qls *ls, const lsp_doc *doc, const char *path) {
  if (doc) return strdup(doc_rel(ls, doc));
  if (!path) return NULL;
  char *real = real_path_of(path);
  char *out = strdup(rel_path(ls, real ? real : path));
  free(real);
  return out;
}

/* Whether the agent may touch `path` (normalised): inside the workspace, or open in the
 * editor. */
static int path_allowed(const qls *ls, const char *path) {
  size_t n = strlen(ls->root);
  if (n == 1 || (strncmp(path, ls->root, n) == 0 && (path[n] == '/' || path[n] == '\0'))) return 1;
  return lsp_docs_find_path(ls->docs, path) != NULL;
}

static const char *str_field(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

/* ---- the daemon connection --------------------------------------------------------- */

typedef struct connect_job {
  uv_work_t work;
  qls *ls;
  char *socket_path;
  char *model;   /* a daemon started here has the lsp's model as its default (kept loaded) */
  int fd, rc;
  char why[512];
} connect_job;

static void daemon_ready(qls *ls, const char *err) {
  waiter *w = ls->waiters;
  ls->waiters = NULL;
  if (err) qc_warn("daemon: %s", err);
  while (w) {
    waiter *next = w->next;
    w->fn(ls, err, w->user);
    free(w);
    w = next;
  }
}

static void on_daemon_closed(rpc_conn *c, void *user) {
  qls *ls = user;
  if (ls->daemon != c) return;
  if (rpc_server_stopping(ls->srv)) qc_debug("closed the connection to the qcoder daemon");
  else qc_warn("the qcoder daemon closed the connection");
  ls->daemon = NULL;
  ls->dstate = D_NONE;
  rpc_conn_unref(c);
}

static void on_acp_initialized(rpc_conn *c, const json_t *result, const rpc_error *error, void *user) {
  (void)c;
  qls *ls = user;
  if (error) {
    char msg[400];
    snprintf(msg, sizeof msg, "the qcoder daemon refused initialize: %s", error->message ? error->message : "?");
    if (ls->daemon) rpc_conn_close(ls->daemon, 0);
    ls->dstate = D_NONE;
    daemon_ready(ls, msg);
    return;
  }
  json_decref(ls->agent_caps);
  ls->agent_caps = json_incref(json_object_get(result, "agentCapabilities"));
  ls->dstate = D_READY;
  daemon_ready(ls, NULL);
}

static void connect_work(uv_work_t *w) {
  connect_job *j = w->data;
  const char *args[3] = {"--model", j->model, NULL};
  rpc_autostart as = {.serve_args = j->model ? args : NULL};
  j->rc = rpc_client_connect_auto(j->socket_path, &as, &j->fd, NULL, j->why, sizeof j->why);
}

static void connect_done(uv_work_t *w, int status) {
  connect_job *j = w->data;
  qls *ls = j->ls;
  if (status != 0 || j->rc != QC_OK) {
    char msg[700];
    snprintf(msg, sizeof msg, "cannot reach the qcoder daemon on %s: %s%s%s", j->socket_path,
             status ? "cancelled" : rpc_strerror(j->rc), j->why[0] ? ": " : "", j->why);
    ls->dstate = D_NONE;
    daemon_ready(ls, msg);
    goto out;
  }
  if (rpc_server_stopping(ls->srv)) {
    close(j->fd);
    ls->dstate = D_NONE;
    daemon_ready(ls, "qcoder lsp is shutting down");
    goto out;
  }
  rpc_conn *c = rpc_server_adopt_fd(ls->srv, j->fd, RPC_FRAMING_NDJSON);
  if (!c) {
    ls->dstate = D_NONE;
    daemon_ready(ls, "cannot use the connection to the qcoder daemon (out of memory)");
    goto out;
  }
  rpc_conn_ref(c);
  ls->daemon = c;
  rpc_conn_on_close(c, on_daemon_closed, ls);
  ls->dstate = D_INITIALIZING;
  json_t *params = json_pack("{s:i, s:{s:{s:b, s:b}, s:b}, s:{s:s, s:s, s:s}}", "protocolVersion", 1,
                             "clientCapabilities", "fs", "readTextFile", 1, "writeTextFile", 1, "terminal", 0,
                             "clientInfo", "name", "qcoder-lsp", "title", "qcoder lsp", "version", QCODER_VERSION);
  if (rpc_conn_request(c, "initialize", params, on_acp_initialized, ls) < 0) {
    ls->dstate = D_NONE;
    daemon_ready(ls, "cannot talk to the qcoder daemon");
  }
out:
  free(j->socket_path);
  free(j->model);
  free(j);
}

/* Call fn once the daemon is ready (now, when it is), or with an error message. */
static void with_daemon(qls *ls, ready_fn fn, void *user) {
  if (ls->dstate == D_READY && ls->daemon && rpc_conn_is_open(ls->daemon)) {
    fn(ls, NULL, user);
    return;
  }
  waiter *w = calloc(1, sizeof *w);
  if (!w) {
    fn(ls, "out of memory", user);
    return;
  }
  w->fn = fn;
  w->user = user;
  w->next = ls->waiters;
  ls->waiters = w;
  if (ls->dstate != D_NONE) return;
  connect_job *j = calloc(1, sizeof *j);
  if (!j || !(j->socket_path = strdup(ls->socket_path)) || (ls->model && !(j->model = strdup(ls->model)))) {
    if (j) free(j->socket_path);
    free(j);
    daemon_ready(ls, "out of memory");
    return;
  }
  j->ls = ls;
  j->work.data = j;
  ls->dstate = D_CONNECTING;
  if (uv_queue_work(rpc_server_loop(ls->srv), &j->work, connect_work, connect_done) != 0) {
    free(j->socket_path);
    free(j->model);
    free(j);
    ls->dstate = D_NONE;
    daemon_ready(ls, "cannot start a thread to connect to the qcoder daemon");
  }
}

/* ---- runs (executeCommand) --------------------------------------------------------- */

static void run_unref(run *r) {
  if (--r->refs > 0) return;
  qls *ls = r->ls;
  for (run **p = &ls->runs; *p; p = &(*p)->next)
    if (*p == r) {
      *p = r->next;
      break;
    }
  lsp_command_args_release(&r->a);
  free(r->prompt);
  free(r->session_id);
  json_decref(r->token);
  lsp_progress_free(r->progress);
  json_decref(r->changed);
  json_decref(r->permission_reqs);
  free(r);
}

/* Record a changed file (once). */
static void changed_add(run *r, const char *uri) {
  size_t i;
  json_t *v;
  json_array_foreach(r->changed, i, v) if (!strcmp(json_string_value(v), uri)) return;
  json_array_append_new(r->changed, json_string(uri));
}

static run *find_run_by_session(qls *ls, const char *sid) {
  for (run *r = ls->runs; sid && r; r = r->next)
    if (r->session_id && strcmp(r->session_id, sid) == 0) return r;
  return NULL;
}

static void progress_send(run *r, json_t *value_steal) {
  qls *ls = r->ls;
  if (!r->token || !r->token_live || !value_steal || !ls->editor) {
    json_decref(value_steal);
    return;
  }
  rpc_conn_notify(ls->editor, "$/progress", json_pack("{s:O, s:o}", "token", r->token, "value", value_steal));
}

static void progress_end(run *r, const char *message) {
  if (!r->token_live) return;
  progress_send(r, message ? json_pack("{s:s, s:s}", "kind", "end", "message", message)
                           : json_pack("{s:s}", "kind", "end"));
  r->token_live = 0;
}

/* Answer the daemon's pending permission requests of a run with "cancelled". */
static void run_cancel_permissions(run *r) {
  size_t i;
  json_t *v;
  json_array_foreach(r->permission_reqs, i, v) {
    rpc_req *pr = (rpc_req *)(uintptr_t)json_integer_value(v);
    rpc_req_reply(pr, json_pack("{s:{s:s}}", "outcome", "outcome", "cancelled"));
  }
  json_array_clear(r->permission_reqs);
}

/* The editor cancelled (or the run cannot go on): answer -32800 now, stop the session. */
static void run_cancel(run *r, const char *why) {
  if (r->cancelled) return;
  r->cancelled = 1;
  qls *ls = r->ls;
  if (r->session_id && !r->done && ls->daemon)
    rpc_conn_notify(ls->daemon, "session/cancel", json_pack("{s:s}", "sessionId", r->session_id));
  run_cancel_permissions(r);
  progress_end(r, "cancelled");
  if (r->req) {
    rpc_req *req = r->req;
    r->req = NULL;
    rpc_req_errorf(req, RPC_REQUEST_CANCELLED, "%s cancelled%s%s", lsp_command_name(r->a.cmd), why ? ": " : "",
                   why ? why : "");
  }
}

static void on_run_cancel(rpc_req *req, void *user) {
  (void)req;
  run_cancel(user, NULL);
}

/* Finish with a JSON-RPC error (announced too). */
/* A file the editor does not have open: a regular file of at most `max` bytes holding
 * UTF-8 text. Opened non-blocking and refused unless regular, so a FIFO or a device in
 * the workspace can never hang the caller. QC_OK and *out (NUL-terminated, malloc'd);
 * else QC_ENOENT, QC_EIO, QC_EINVAL (not a regular file), QC_ETOOBIG or QC_EUTF8 (binary
 * or not UTF-8), with `why` saying so for the user. */
static int read_disk_text(const char *path, size_t max, char **out, size_t *len, char *why, size_t why_len) {
  *out = NULL;
  *len = 0;
  int rc = QC_OK;
  qc_buf b;
  qc_buf_init(&b, max);
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    int e = errno;
    snprintf(why, why_len, "cannot read %s: %s", path, strerror(e));
    return e == ENOENT ? QC_ENOENT : QC_EIO;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    snprintf(why, why_len, "cannot read %s: %s", path, strerror(errno));
    rc = QC_EIO;
    goto out;
  }
  if (!S_ISREG(st.st_mode)) {
    snprintf(why, why_len, "%s is not a regular file", path);
    rc = QC_EINVAL;
    goto out;
  }
  if ((uint64_t)st.st_size > max) {
    snprintf(why, why_len, "%s is %lld bytes, over the %zu-byte limit for a file the editor does not have open; "
             "open it in the editor", path, (long long)st.st_size, max);
    rc = QC_ETOOBIG;
    goto out;
  }
  char chunk[65536];
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      snprintf(why, why_len, "cannot read %s: %s", path, strerror(errno));
      rc = QC_EIO;
      goto out;
    }
    if (n == 0) break;
    if ((rc = qc_buf_append(&b, chunk, (size_t)n)) != QC_OK) {
      if (rc == QC_ETOOBIG) /* it grew while we read */
        snprintf(why, why_len, "%s is over the %zu-byte limit for a file the editor does not have open; open it in "
                 "the editor", path, max);
      else snprintf(why, why_len, "cannot read %s: out of memory", path);
      goto out;
    }
  }
  if ((b.len && memchr(b.data, '\0', b.len)) || !qc_utf8_valid(b.data ? b.data : "", b.len)) {
    snprintf(why, why_len, "%s is not UTF-8 text (a binary file?)", path);
    rc = QC_EUTF8;
    goto out;
  }
  *out = qc_buf_detach(&b, len);
  if (!*out) {
    snprintf(why, why_len, "cannot read %s: out of memory", path);
    rc = QC_ENOMEM;
  }
out:
  close(fd);
  qc_buf_release(&b);
  return rc;
}

static void run_fail(run *r, const char *msg) {
  progress_end(r, "failed");
  r->done = 1;
  if (!r->req) return;
  char text[1200];
  snprintf(text, sizeof text, "%s failed: %s", lsp_command_name(r->a.cmd), msg);
  show_message(r->ls, 1, text);
  rpc_req *req = r->req;
  r->req = NULL;
  rpc_req_error(req, LSP_REQUEST_FAILED, text, NULL);
}

/* The prompt ended: answer the editor per the contract and announce it. */
static void run_finish(run *r, const char *stop, const char *error) {
  r->done = 1;
  /* files the daemon changed itself (not through fs/write_text_file) show as diffs */
  size_t di;
  const json_t *dp;
  json_array_foreach(lsp_progress_changed(r->progress), di, dp) {
    const lsp_doc *doc = lsp_docs_find_path(r->ls->docs, json_string_value(dp)); /* the editor's URI */
    char *u = doc ? strdup(doc->uri) : lsp_path_to_uri(json_string_value(dp));
    if (u) changed_add(r, u);
    free(u);
  }
  const char *text = lsp_progress_text(r->progress);
  size_t nchanged = json_array_size(r->changed);
  progress_end(r, error ? "failed" : stop);
  if (!r->req) return; /* cancelled: already answered */
  if (lsp_command_answers_text(r->a.cmd)) {
    if (error) {
      run_fail(r, error);
      return;
    }
    const char *t = *text ? text : "(qcoder gave no answer)";
    show_message(r->ls, 3, t);
    rpc_req *req = r->req;
    r->req = NULL;
    rpc_req_reply(req, json_pack("{s:s}", "text", t));
    return;
  }
  char summary[LSP_MAX_RESULT_TEXT_BYTES + 200];
  if (error) snprintf(summary, sizeof summary, "%s failed: %s", lsp_command_name(r->a.cmd), error);
  else if (*text) snprintf(summary, sizeof summary, "%s", text);
  else if (nchanged) snprintf(summary, sizeof summary, "%s changed %zu file%s", lsp_command_name(r->a.cmd), nchanged,
                              nchanged == 1 ? "" : "s");
  else snprintf(summary, sizeof summary, "%s made no changes", lsp_command_name(r->a.cmd));
  const char *stop_reason = error ? "error" : stop;
  int type = error ? 1 : (strcmp(stop_reason, "end_turn") == 0 ? 3 : 2);
  show_message(r->ls, type, summary);
  rpc_req *req = r->req;
  r->req = NULL;
  rpc_req_reply(req, json_pack("{s:s, s:s, s:O}", "summary", summary, "stopReason", stop_reason, "changedFiles",
                               r->changed));
}

static void on_ignore(rpc_conn *c, const json_t *result, const rpc_error *error, void *user) {
  (void)c, (void)result, (void)error, (void)user;
}

/* A command's session has done its one prompt (or will not do it): free it in the daemon
 * when the daemon can close sessions. */
static void session_close(run *r, rpc_conn *c) {
  if (r->session_id && c && rpc_conn_is_open(c) &&
      json_is_object(json_object_get(json_object_get(r->ls->agent_caps, "sessionCapabilities"), "close")))
    rpc_conn_request(c, "session/close", json_pack("{s:s}", "sessionId", r->session_id), on_ignore, NULL);
}

static void on_prompt_done(rpc_conn *c, const json_t *result, const rpc_error *error, void *user) {
  run *r = user;
  session_close(r, c);
  if (error) {
    char msg[600];
    snprintf(msg, sizeof msg, "%s", error->code == RPC_CONNECTION_CLOSED ? "the qcoder daemon went away"
                                                                         : (error->message ? error->message : "?"));
    run_finish(r, "error", msg);
  } else {
    const char *stop = str_field(result, "stopReason");
    run_finish(r, stop ? stop : "end_turn", NULL);
  }
  run_unref(r);
}

static void on_session_new(rpc_conn *c, const json_t *result, const rpc_error *error, void *user) {
  run *r = user;
  const char *sid = result ? str_field(result, "sessionId") : NULL;
  if (error || !sid) {
    char msg[600];
    snprintf(msg, sizeof msg, "could not start an agent session: %s",
             error ? (error->message ? error->message : "?") : "the daemon sent no sessionId");
    run_fail(r, msg);
    run_unref(r);
    return;
  }
  r->session_id = strdup(sid);
  if (r->cancelled || !r->session_id) { /* cancelled while the session was being made */
    session_close(r, c);
    r->done = 1;
    run_unref(r);
    return;
  }
  progress_send(r, json_pack("{s:s, s:s}", "kind", "report", "message", "thinking"));
  json_t *params = json_pack("{s:s, s:[{s:s, s:s}]}", "sessionId", r->session_id, "prompt", "type", "text", "text",
                             r->prompt);
  if (rpc_conn_request(c, "session/prompt", params, on_prompt_done, r) < 0) {
    run_fail(r, "cannot send the prompt to the qcoder daemon");
    run_unref(r);
  }
}

static void run_start_session(qls *ls, const char *err, void *user) {
  run *r = user;
  if (err) {
    run_fail(r, err);
    run_unref(r);
    return;
  }
  if (r->cancelled) {
    r->done = 1;
    run_unref(r);
    return;
  }
  json_t *q = json_pack("{s:s}", "mode", r->mode);
  if (ls->model) json_object_set_new(q, "model", json_string(ls->model));
  json_t *params = json_pack("{s:s, s:[], s:{s:o}}", "cwd", ls->root, "mcpServers", "_meta", "qcoder", q);
  if (rpc_conn_request(ls->daemon, "session/new", params, on_session_new, r) < 0) {
    run_fail(r, "cannot talk to the qcoder daemon");
    run_unref(r);
  }
}

static void on_progress_created(rpc_conn *c, const json_t *result, const rpc_error *error, void *user) {
  (void)c;
  (void)result;
  run *r = user;
  if (error) { /* the token must not be used */
    json_decref(r->token);
    r->token = NULL;
  } else if (!r->cancelled && !r->done) {
    r->token_live = 1;
    char title[64];
    snprintf(title, sizeof title, "qcoder: %s", lsp_command_name(r->a.cmd) + strlen("qcoder."));
    progress_send(r, json_pack("{s:s, s:s, s:b, s:s}", "kind", "begin", "title", title, "cancellable", 1, "message",
                               "starting"));
  }
  run_unref(r);
}

/* Everything is known: start progress, then the session. */
static void run_go(run *r) {
  qls *ls = r->ls;
  if (r->token) { /* the client's own token: begin at once */
    r->token_live = 1;
    char title[64];
    snprintf(title, sizeof title, "qcoder: %s", lsp_command_name(r->a.cmd) + strlen("qcoder."));
    progress_send(r, json_pack("{s:s, s:s, s:b, s:s}", "kind", "begin", "title", title, "cancellable", 1, "message",
                               "starting"));
  } else if (ls->caps.work_done_progress && ls->editor) {
    r->token = json_sprintf("qcoder-%lld", (long long)++ls->next_token);
    r->refs++;
    if (rpc_conn_request(ls->editor, "window/workDoneProgress/create", json_pack("{s:O}", "token", r->token),
                         on_progress_created, r) < 0) {
      json_decref(r->token);
      r->token = NULL;
      r->refs--;
    }
  }
  r->refs++;
  with_daemon(ls, run_start_session, r);
  run_unref(r); /* the reference m_execute made */
}

/* Refactor without an instruction: offer instructions with showMessageRequest. */
static const struct {
  const char *title, *instruction;
} k_refactors[] = {
    {"Simplify", "simplify this code without changing its behaviour"},
    {"Improve names", "give the variables and functions here clearer names (update every use)"},
    {"Extract a function", "extract the selected code into a well-named function and call it here"},
    {"Add comments", "add brief comments that explain why the code does what it does"},
};

static void on_refactor_choice(rpc_conn *c, const json_t *result, const rpc_error *error, void *user) {
  (void)c;
  run *r = user;
  const char *title = result ? str_field(result, "title") : NULL;
  const char *ins = NULL;
  for (size_t i = 0; title && i < sizeof k_refactors / sizeof k_refactors[0]; i++)
    if (strcmp(title, k_refactors[i].title) == 0) ins = k_refactors[i].instruction;
  if (r->cancelled) {
    run_unref(r);
    return;
  }
  if (error || !ins) {
    r->done = 1;
    if (r->req) {
      rpc_req *req = r->req;
      r->req = NULL;
      rpc_req_error(req, RPC_REQUEST_CANCELLED, "qcoder.refactor cancelled: no instruction was chosen", NULL);
    }
    run_unref(r);
    return;
  }
  free(r->prompt);
  r->a.instruction = strdup(ins);
  r->prompt = NULL;
  /* the prompt is built again with the instruction */
  const lsp_doc *doc = lsp_docs_find(r->ls->docs, r->a.uri);
  char *path = lsp_uri_to_path(r->a.uri);
  char *text = NULL;
  size_t len = 0;
  if (doc) {
    text = qc_strndup(doc->text, doc->len);
    len = doc->len;
  } else if (path) {
    char why[PATH_MAX + 200];
    if (read_disk_text(path, LSP_MAX_UNOPENED_FILE_BYTES, &text, &len, why, sizeof why) != QC_OK) {
      free(path);
      run_fail(r, why);
      run_unref(r);
      return;
    }
  }
  char *shown = shown_path(r->ls, doc, path);
  lsp_prompt_input in = {.cmd = r->a.cmd, .path = shown ? shown : "?",
                         .language_id = doc ? doc->language_id : NULL, .text = text, .len = len,
                         .has_range = r->a.has_range, .range = r->a.range, .instruction = r->a.instruction};
  r->prompt = lsp_prompt_build(&in);
  free(shown);
  free(text);
  free(path);
  if (!r->prompt) {
    run_fail(r, "out of memory");
    run_unref(r);
    return;
  }
  run_go(r);
}

static void m_execute(rpc_req *req, const json_t *params, void *user) {
  qls *ls = user;
  const char *command = str_field(params, "command");
  lsp_command_args a;
  char *err = NULL;
  if (lsp_command_args_parse(command, json_object_get(params, "arguments"), &a, &err) != LSP_OK) {
    rpc_req_error(req, RPC_INVALID_PARAMS, err ? err : "invalid arguments", NULL);
    free(err);
    return;
  }
  run *r = calloc(1, sizeof *r);
  if (!r) {
    lsp_command_args_release(&a);
    rpc_req_error(req, RPC_INTERNAL_ERROR, "out of memory", NULL);
    return;
  }
  r->ls = ls;
  r->refs = 1;
  r->a = a;
  r->req = req;
  r->progress = lsp_progress_new();
  r->changed = json_array();
  r->permission_reqs = json_array();
  r->mode = lsp_command_read_only(a.cmd) ? "read-only" : ls->mode_name;
  r->next = ls->runs;
  ls->runs = r;
  const json_t *tok = json_object_get(params, "workDoneToken");
  /* a token the client made is an invitation to report on it, whatever its capabilities */
  if (json_is_string(tok) || json_is_integer(tok)) r->token = json_copy((json_t *)tok);
  rpc_req_on_cancel(req, on_run_cancel, r);
  if (!r->progress || !r->changed || !r->permission_reqs) {
    run_fail(r, "out of memory");
    run_unref(r);
    return;
  }
  /* the document (the editor's buffer, else the file) for the prompt */
  char *path = a.uri ? lsp_uri_to_path(a.uri) : NULL;
  const lsp_doc *doc = a.uri ? lsp_docs_find(ls->docs, a.uri) : NULL;
  char *text = NULL;
  size_t len = 0;
  if (doc) {
    text = qc_strndup(doc->text, doc->len);
    len = doc->len;
  } else if (path) {
    char why[PATH_MAX + 200];
    int rc = read_disk_text(path, LSP_MAX_UNOPENED_FILE_BYTES, &text, &len, why, sizeof why);
    if (rc != QC_OK && a.cmd != LSP_CMD_ASK) { /* a question does without the file */
      free(path);
      run_fail(r, why);
      run_unref(r);
      return;
    }
  }
  if (a.cmd == LSP_CMD_REFACTOR && !a.instruction) {
    free(text);
    free(path);
    if (!ls->caps.show_message_request || !ls->editor) {
      r->done = 1;
      r->req = NULL;
      rpc_req_error(req, RPC_INVALID_PARAMS,
                    "qcoder.refactor needs an instruction (argument field \"instruction\")", NULL);
      run_unref(r);
      return;
    }
    json_t *actions = json_array();
    for (size_t i = 0; i < sizeof k_refactors / sizeof k_refactors[0]; i++)
      json_array_append_new(actions, json_pack("{s:s}", "title", k_refactors[i].title));
    if (rpc_conn_request(ls->editor, "window/showMessageRequest",
                         json_pack("{s:i, s:s, s:o}", "type", 3, "message", "qcoder: how should the code be refactored?",
                                   "actions", actions),
                         on_refactor_choice, r) < 0) {
      run_fail(r, "cannot ask the editor for an instruction");
      run_unref(r);
    }
    return;
  }
  char *shown = shown_path(ls, doc, path);
  lsp_prompt_input in = {.cmd = a.cmd, .path = shown, .language_id = doc ? doc->language_id : NULL, .text = text,
                         .len = len, .has_range = a.has_range, .range = a.range, .diagnostics = a.diagnostics,
                         .instruction = a.instruction};
  r->prompt = lsp_prompt_build(&in);
  free(shown);
  free(text);
  free(path);
  if (!r->prompt) {
    run_fail(r, "out of memory");
    run_unref(r);
    return;
  }
  run_go(r);
}

static void m_progress_cancel(rpc_conn *c, const json_t *params, void *user) {
  (void)c;
  qls *ls = user;
  const json_t *tok = json_object_get(params, "token");
  for (run *r = ls->runs; tok && r; r = r->next)
    if (r->token && json_equal(r->token, (json_t *)tok)) {
      run_cancel(r, "stopped from the progress notification");
      return;
    }
}

/* ---- the daemon's requests and notifications (ACP client side) --------------------- */

static int from_daemon(qls *ls, rpc_req *req) {
  if (ls->daemon && rpc_req_conn(req) == ls->daemon) return 1;
  rpc_req_error(req, RPC_METHOD_NOT_FOUND, "method not found", NULL);
  return 0;
}

static void n_session_update(rpc_conn *c, const json_t *params, void *user) {
  qls *ls = user;
  if (c != ls->daemon) return;
  run *r = find_run_by_session(ls, str_field(params, "sessionId"));
  if (!r || r->cancelled) return;
  progress_send(r, lsp_progress_feed(r->progress, json_object_get(params, "update")));
}

/* session/request_permission: by the mode; ask the user where the client can. */
typedef struct perm_ask {
  run *r;
  rpc_req *req;
  char *allow, *always, *reject; /* optionIds by kind */
} perm_ask;

static void perm_answer(run *r, rpc_req *req, const char *option) {
  /* forget it in the run's open list */
  size_t i;
  json_t *v;
  json_array_foreach(r->permission_reqs, i, v) if ((rpc_req *)(uintptr_t)json_integer_value(v) == req) {
    json_array_remove(r->permission_reqs, i);
    break;
  }
  if (option) rpc_req_reply(req, json_pack("{s:{s:s, s:s}}", "outcome", "outcome", "selected", "optionId", option));
  else rpc_req_reply(req, json_pack("{s:{s:s}}", "outcome", "outcome", "cancelled"));
}

static int still_open(run *r, rpc_req *req) {
  size_t i;
  json_t *v;
  json_array_foreach(r->permission_reqs, i, v) if ((rpc_req *)(uintptr_t)json_integer_value(v) == req) return 1;
  return 0;
}

static void on_permission_choice(rpc_conn *c, const json_t *result, const rpc_error *error, void *user) {
  (void)c;
  perm_ask *pa = user;
  run *r = pa->r;
  if (still_open(r, pa->req)) {
    const char *title = !error && result ? str_field(result, "title") : NULL;
    const char *opt = pa->reject;
    if (title && !strcmp(title, "Allow")) opt = pa->allow;
    else if (title && !strcmp(title, "Allow always")) opt = pa->always;
    if (!opt) opt = pa->reject;
    if (opt) perm_answer(r, pa->req, opt);
    else perm_answer(r, pa->req, NULL);
  }
  free(pa->allow);
  free(pa->always);
  free(pa->reject);
  free(pa);
  run_unref(r);
}

static void m_request_permission(rpc_req *req, const json_t *params, void *user) {
  qls *ls = user;
  if (!from_daemon(ls, req)) return;
  run *r = find_run_by_session(ls, str_field(params, "sessionId"));
  if (!r || r->cancelled || r->done) {
    rpc_req_reply(req, json_pack("{s:{s:s}}", "outcome", "outcome", "cancelled"));
    return;
  }
  const char *allow = NULL, *always = NULL, *reject = NULL;
  size_t i;
  const json_t *o;
  json_array_foreach(json_object_get(params, "options"), i, o) {
    const char *kind = str_field(o, "kind"), *id = str_field(o, "optionId");
    if (!kind || !id) continue;
    if (!strcmp(kind, "allow_once") && !allow) allow = id;
    else if (!strcmp(kind, "allow_always") && !always) always = id;
    else if (!strcmp(kind, "reject_once") && !reject) reject = id;
    else if (!strcmp(kind, "reject_always") && !reject) reject = id;
  }
  json_array_append_new(r->permission_reqs, json_integer((json_int_t)(uintptr_t)req));
  const json_t *tc = json_object_get(params, "toolCall");
  const char *title = str_field(tc, "title");
  if (!title) title = str_field(tc, "toolCallId");
  if (!title) title = "run a tool";
  if (!strcmp(r->mode, "full-auto") && (allow || always)) {
    perm_answer(r, req, allow ? allow : always);
    return;
  }
  if (!strcmp(r->mode, "read-only") || !ls->caps.show_message_request || !ls->editor) {
    if (strcmp(r->mode, "read-only") != 0) {
      char msg[700];
      snprintf(msg, sizeof msg, "qcoder was not allowed to: %.400s (this editor cannot ask; start qcoder lsp with "
                                "--mode auto-edit or full-auto to allow it)", title);
      show_message(ls, 2, msg);
    }
    perm_answer(r, req, reject);
    return;
  }
  perm_ask *pa = calloc(1, sizeof *pa);
  json_t *actions = json_array();
  if (!pa || !actions) {
    free(pa);
    json_decref(actions);
    perm_answer(r, req, reject);
    return;
  }
  pa->r = r;
  pa->req = req;
  pa->allow = allow ? strdup(allow) : NULL;
  pa->always = always ? strdup(always) : NULL;
  pa->reject = reject ? strdup(reject) : NULL;
  if (allow) json_array_append_new(actions, json_pack("{s:s}", "title", "Allow"));
  if (always) json_array_append_new(actions, json_pack("{s:s}", "title", "Allow always"));
  json_array_append_new(actions, json_pack("{s:s}", "title", "Reject"));
  char msg[700];
  snprintf(msg, sizeof msg, "qcoder wants to: %.500s", title);
  r->refs++;
  if (rpc_conn_request(ls->editor, "window/showMessageRequest",
                       json_pack("{s:i, s:s, s:o}", "type", 3, "message", msg, "actions", actions), on_permission_choice,
                       pa) < 0) {
    r->refs--;
    perm_answer(r, req, reject);
    free(pa->allow);
    free(pa->always);
    free(pa->reject);
    free(pa);
  }
}

/* fs/read_text_file: the editor's buffer when open, else the file (on a worker). */
typedef struct disk_job {
  uv_work_t work;
  qls *ls;
  rpc_req *req;
  char *path;
  char *content;       /* write: in; read: out */
  size_t len;
  long line, limit;    /* read: 1-based first line, count (0: all) */
  int rc;
  char why[PATH_MAX + 200];
  run *r;              /* write: the run (a reference) */
} disk_job;

/* Lines [line, line+limit) of text (1-based; 0/absent: from the start / all). */
static json_t *read_result(const char *text, size_t len, long line, long limit) {
  size_t s = 0;
  for (long k = 1; k < line && s < len; k++) {
    const char *nl = memchr(text + s, '\n', len - s);
    s = nl ? (size_t)(nl - text) + 1 : len;
  }
  size_t e = len;
  if (limit > 0) {
    e = s;
    for (long k = 0; k < limit && e < len; k++) {
      const char *nl = memchr(text + e, '\n', len - e);
      e = nl ? (size_t)(nl - text) + 1 : len;
    }
  }
  return json_pack("{s:s%}", "content", text + s, e - s);
}

static void read_work(uv_work_t *w) {
  disk_job *j = w->data;
  j->rc = read_disk_text(j->path, LSP_MAX_DOCUMENT_BYTES, &j->content, &j->len, j->why, sizeof j->why);
}

static void read_done(uv_work_t *w, int status) {
  disk_job *j = w->data;
  if (status != 0) rpc_req_error(j->req, RPC_REQUEST_CANCELLED, "cancelled", NULL);
  else if (j->rc == QC_ENOENT) rpc_req_errorf(j->req, -32002, "resource not found: %s", j->path);
  else if (j->rc != QC_OK) rpc_req_error(j->req, RPC_INTERNAL_ERROR, j->why, NULL);
  else rpc_req_reply(j->req, read_result(j->content, j->len, j->line, j->limit));
  free(j->path);
  free(j->content);
  free(j);
}

static long opt_long(const json_t *o, const char *k) {
  const json_t *v = json_object_get(o, k);
  return json_is_integer(v) && json_integer_value(v) > 0 ? (long)json_integer_value(v) : 0;
}

static void m_fs_read(rpc_req *req, const json_t *params, void *user) {
  qls *ls = user;
  if (!from_daemon(ls, req)) return;
  char *path = normalize_path(str_field(params, "path"));
  if (!path) {
    rpc_req_error(req, RPC_INVALID_PARAMS, "fs/read_text_file needs an absolute path", NULL);
    return;
  }
  if (!path_allowed(ls, path)) {
    rpc_req_errorf(req, RPC_INVALID_PARAMS, "%s is outside the workspace %s", path, ls->root);
    free(path);
    return;
  }
  long line = opt_long(params, "line"), limit = opt_long(params, "limit");
  const lsp_doc *doc = lsp_docs_find_path(ls->docs, path);
  if (doc) {
    rpc_req_reply(req, read_result(doc->text, doc->len, line, limit));
    free(path);
    return;
  }
  disk_job *j = calloc(1, sizeof *j);
  if (!j) {
    free(path);
    rpc_req_error(req, RPC_INTERNAL_ERROR, "out of memory", NULL);
    return;
  }
  j->ls = ls;
  j->req = req;
  j->path = path;
  j->line = line;
  j->limit = limit;
  j->work.data = j;
  if (uv_queue_work(rpc_server_loop(ls->srv), &j->work, read_work, read_done) != 0) {
    free(path);
    free(j);
    rpc_req_error(req, RPC_INTERNAL_ERROR, "cannot start a thread to read the file", NULL);
  }
}

/* Atomic write: a temporary file in the same folder, fsync, the old mode, rename. */
static void write_work(uv_work_t *w) {
  disk_job *j = w->data;
  j->rc = QC_OK;
  char *dir = strdup(j->path);
  char *slash = dir ? strrchr(dir, '/') : NULL;
  if (!slash) {
    j->rc = QC_ENOMEM;
    free(dir);
    return;
  }
  *slash = '\0';
  if (*dir && qc_mkdir_p(dir, 0755) != QC_OK) {
    snprintf(j->why, sizeof j->why, "cannot create the folder %s", dir);
    j->rc = QC_EIO;
    free(dir);
    return;
  }
  free(dir);
  struct stat st;
  mode_t mode = 0644;
  if (stat(j->path, &st) == 0) mode = st.st_mode & 07777;
  char *tmp = qc_asprintf("%s.qcoder-XXXXXX", j->path);
  int fd = tmp ? mkstemp(tmp) : -1;
  if (fd < 0) {
    snprintf(j->why, sizeof j->why, "cannot create a temporary file next to it: %s", strerror(errno));
    j->rc = QC_EIO;
    free(tmp);
    return;
  }
  size_t off = 0;
  while (off < j->len) {
    ssize_t n = write(fd, j->content + off, j->len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    off += (size_t)n;
  }
  int ok = off == j->len && fchmod(fd, mode) == 0 && fsync(fd) == 0;
  ok = close(fd) == 0 && ok;
  if (!ok || rename(tmp, j->path) != 0) {
    snprintf(j->why, sizeof j->why, "cannot write it: %s", strerror(errno));
    unlink(tmp);
    j->rc = QC_EIO;
  }
  free(tmp);
}

static void write_done(uv_work_t *w, int status) {
  disk_job *j = w->data;
  if (status != 0 || j->rc != QC_OK) {
    rpc_req_errorf(j->req, RPC_INTERNAL_ERROR, "cannot write %s: %s", j->path, status ? "cancelled" : j->why);
  } else {
    char *uri = lsp_path_to_uri(j->path);
    if (uri && j->r) changed_add(j->r, uri);
    free(uri);
    rpc_req_reply(j->req, json_object());
  }
  if (j->r) run_unref(j->r);
  free(j->path);
  free(j->content);
  free(j);
}

typedef struct edit_job {
  run *r;
  rpc_req *req;
  char *path, *uri, *content;
  size_t len;
} edit_job;

static void on_apply_edit(rpc_conn *c, const json_t *result, const rpc_error *error, void *user) {
  (void)c;
  edit_job *e = user;
  qls *ls = e->r->ls;
  if (error) {
    rpc_req_errorf(e->req, RPC_INTERNAL_ERROR, "the editor refused the edit of %s: %s", e->path,
                   error->message ? error->message : "?");
  } else if (!json_is_true(json_object_get(result, "applied"))) {
    const char *why = str_field(result, "failureReason");
    rpc_req_errorf(e->req, RPC_INTERNAL_ERROR, "the editor did not apply the edit of %s%s%s", e->path,
                   why ? ": " : "", why ? why : "");
  } else {
    /* the buffer now holds the new text; its version arrives with the next didChange */
    lsp_docs_set_text(ls->docs, e->path, e->content, e->len);
    changed_add(e->r, e->uri);
    rpc_req_reply(e->req, json_object());
  }
  run_unref(e->r);
  free(e->path);
  free(e->uri);
  free(e->content);
  free(e);
}

static void m_fs_write(rpc_req *req, const json_t *params, void *user) {
  qls *ls = user;
  if (!from_daemon(ls, req)) return;
  run *r = find_run_by_session(ls, str_field(params, "sessionId"));
  const json_t *cj = json_object_get(params, "content");
  char *path = normalize_path(str_field(params, "path"));
  if (!path || !json_is_string(cj)) {
    free(path);
    rpc_req_error(req, RPC_INVALID_PARAMS, "fs/write_text_file needs an absolute path and content", NULL);
    return;
  }
  if (!r || r->cancelled) {
    rpc_req_errorf(req, RPC_REQUEST_CANCELLED, "not written: %s", r ? "the user cancelled" : "unknown session");
    free(path);
    return;
  }
  if (!strcmp(r->mode, "read-only")) {
    rpc_req_errorf(req, RPC_INVALID_PARAMS, "not written: %s runs read-only", lsp_command_name(r->a.cmd));
    free(path);
    return;
  }
  if (!path_allowed(ls, path)) {
    rpc_req_errorf(req, RPC_INVALID_PARAMS, "%s is outside the workspace %s", path, ls->root);
    free(path);
    return;
  }
  const char *content = json_string_value(cj);
  size_t clen = json_string_length(cj);
  const lsp_doc *doc = lsp_docs_find_path(ls->docs, path);
  if (doc && ls->caps.apply_edit && ls->editor) {
    lsp_text_edit *edits = NULL;
    size_t n = 0;
    if (lsp_diff_edits(doc->text, doc->len, content, clen, &edits, &n) != LSP_OK) {
      rpc_req_error(req, RPC_INTERNAL_ERROR, "out of memory", NULL);
      free(path);
      return;
    }
    if (n == 0) { /* nothing changes */
      rpc_req_reply(req, json_object());
      free(path);
      return;
    }
    json_t *we = lsp_workspace_edit(&ls->caps, doc->uri, doc->version, edits, n);
    lsp_text_edits_free(edits, n);
    edit_job *e = calloc(1, sizeof *e);
    if (!e || !we || !(e->uri = strdup(doc->uri)) || !(e->content = qc_strndup(content, clen))) {
      if (e) free(e->uri);
      free(e);
      json_decref(we);
      free(path);
      rpc_req_error(req, RPC_INTERNAL_ERROR, "out of memory", NULL);
      return;
    }
    e->r = r;
    e->req = req;
    e->path = path;
    e->len = clen;
    r->refs++;
    char label[64];
    snprintf(label, sizeof label, "qcoder: %s", lsp_command_name(r->a.cmd) + strlen("qcoder."));
    if (rpc_conn_request(ls->editor, "workspace/applyEdit", json_pack("{s:s, s:o}", "label", label, "edit", we),
                         on_apply_edit, e) < 0) {
      rpc_req_error(req, RPC_INTERNAL_ERROR, "cannot send the edit to the editor", NULL);
      run_unref(r);
      free(e->path);
      free(e->uri);
      free(e->content);
      free(e);
    }
    return;
  }
  disk_job *j = calloc(1, sizeof *j);
  if (!j || !(j->content = malloc(clen ? clen : 1))) {
    free(j);
    free(path);
    rpc_req_error(req, RPC_INTERNAL_ERROR, "out of memory", NULL);
    return;
  }
  memcpy(j->content, content, clen);
  j->len = clen;
  j->ls = ls;
  j->req = req;
  j->path = path;
  j->r = r;
  r->refs++;
  j->work.data = j;
  if (uv_queue_work(rpc_server_loop(ls->srv), &j->work, write_work, write_done) != 0) {
    rpc_req_error(req, RPC_INTERNAL_ERROR, "cannot start a thread to write the file", NULL);
    run_unref(r);
    free(j->content);
    free(j->path);
    free(j);
  }
}

/* Terminals are not offered (clientCapabilities.terminal is false): the daemon runs
 * commands itself. */

/* ---- the repo map (neighbours for inline completion) ------------------------------- */

static void *map_build(void *arg) {
  qls *ls = arg;
  pthread_mutex_lock(&ls->map_mu);
  char *err = NULL;
  tool_repomap *m = NULL;
  uint64_t t0 = qc_now_ms();
  if (tool_repomap_create(ls->root, &m, &err) == TOOL_OK) {
    ls->map = m;
    ls->map_updated_ms = qc_now_ms();
    qc_info("repo map of %s built in %llu ms", ls->root, (unsigned long long)(qc_now_ms() - t0));
    atomic_store(&ls->map_state, MAP_READY);
  } else {
    qc_warn("no repo map for %s: %s", ls->root, err ? err : "?");
    atomic_store(&ls->map_state, MAP_FAILED);
  }
  free(err);
  pthread_mutex_unlock(&ls->map_mu);
  return NULL;
}

/* Workspace-relative paths the map ranks near `rel`, best first (at most `max`). */
static size_t map_neighbours(qls *ls, const char *rel, char **out, size_t max) {
  if (!ls->map_started) return 0;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_nsec += (long)LSP_REPOMAP_WAIT_MS * 1000000L;
  ts.tv_sec += ts.tv_nsec / 1000000000L;
  ts.tv_nsec %= 1000000000L;
  if (pthread_mutex_timedlock(&ls->map_mu, &ts) != 0) return 0;
  size_t n = 0;
  if (ls->map) {
    if (qc_now_ms() - ls->map_updated_ms > LSP_REPOMAP_REFRESH_MS) {
      char *err = NULL;
      if (tool_repomap_update(ls->map, &err) != TOOL_OK) qc_debug("repo map update: %s", err ? err : "?");
      free(err);
      ls->map_updated_ms = qc_now_ms();
    }
    const char *focus[1] = {rel};
    char *text = tool_repomap_render(ls->map, focus, 1, LSP_REPOMAP_RANK_TOKENS, NULL, NULL);
    /* the rendering lists "path:" lines (unindented) in rank order, then definitions */
    for (char *line = text; line && *line && n < max;) {
      char *nl = strchr(line, '\n');
      size_t len = nl ? (size_t)(nl - line) : strlen(line);
      if (len > 1 && line[0] != ' ' && line[len - 1] == ':' && strncmp(line, rel, len - 1) != 0)
        out[n++] = qc_strndup(line, len - 1);
      line = nl ? nl + 1 : line + len;
    }
    free(text);
  }
  pthread_mutex_unlock(&ls->map_mu);
  return n;
}

/* ---- inline completion ------------------------------------------------------------- */

static void inl_unref(inl *c) {
  if (--c->refs > 0) return;
  lsp_fim_request_release(&c->fim);
  free(c->rel);
  free(c);
}

static void inl_reply(inl *c, json_t *result_steal) {
  if (!c->req) {
    json_decref(result_steal);
    return;
  }
  rpc_req *req = c->req;
  c->req = NULL;
  rpc_req_reply(req, result_steal);
}

static void inl_error(inl *c, int code, const char *msg) {
  if (!c->req) return;
  rpc_req *req = c->req;
  c->req = NULL;
  rpc_req_error(req, code, msg, NULL);
}

static void on_inl_cancel(rpc_req *req, void *user) {
  (void)req;
  inl *c = user;
  c->cancelled = 1;
  if (c->daemon_id > 0 && c->ls->daemon) rpc_conn_cancel_request(c->ls->daemon, c->daemon_id);
  inl_error(c, RPC_REQUEST_CANCELLED, "inline completion cancelled");
}

static void on_complete(rpc_conn *conn, const json_t *result, const rpc_error *error, void *user) {
  (void)conn;
  inl *c = user;
  c->daemon_id = 0;
  if (error) {
    if (!c->cancelled) {
      char msg[600];
      snprintf(msg, sizeof msg, "completion failed: %s", error->message ? error->message : "?");
      inl_error(c, error->code == RPC_REQUEST_CANCELLED ? RPC_REQUEST_CANCELLED : LSP_REQUEST_FAILED, msg);
    }
  } else if (!c->cancelled) {
    const json_t *tj = json_object_get(result, "text");
    const char *text = json_string_value(tj);
    char *kept = text ? lsp_inline_trim(c->fim.prefix, strlen(c->fim.prefix), text, json_string_length(tj),
                                        c->fim.suffix, strlen(c->fim.suffix), LSP_INLINE_MAX_LINES)
                      : NULL;
    json_t *items = json_array();
    if (kept && *kept)
      json_array_append_new(items, json_pack("{s:s, s:{s:o, s:o}}", "insertText", kept, "range", "start",
                                             lsp_pos_json(c->pos), "end", lsp_pos_json(c->pos)));
    free(kept);
    inl_reply(c, json_pack("{s:o}", "items", items));
  }
  inl_unref(c);
}

static void inl_send(qls *ls, const char *err, void *user) {
  inl *c = user;
  if (err || c->cancelled) {
    if (err) inl_error(c, LSP_REQUEST_FAILED, err);
    inl_unref(c);
    return;
  }
  json_t *params = lsp_fim_request_json(&c->fim, LSP_INLINE_MAX_TOKENS);
  if (params && ls->model) json_object_set_new(params, "model", json_string(ls->model));
  int64_t id = rpc_conn_request(ls->daemon, "_qcoder/complete", params, on_complete, c);
  if (id < 0) {
    inl_error(c, LSP_REQUEST_FAILED, "cannot send the completion request to the qcoder daemon");
    inl_unref(c);
    return;
  }
  c->daemon_id = id;
}

/* Worker: add the files the repo map ranks near this one (read from disk). */
static void inl_work(uv_work_t *w) {
  inl *c = w->data;
  qls *ls = c->ls;
  if (c->fim.n_files >= LSP_FIM_MAX_CONTEXT_FILES) return;
  char *names[LSP_FIM_MAX_CONTEXT_FILES * 2];
  size_t n = map_neighbours(ls, c->rel, names, LSP_FIM_MAX_CONTEXT_FILES * 2);
  if (!n) return;
  lsp_fim_file files[LSP_FIM_MAX_CONTEXT_FILES * 3];
  char *bufs[LSP_FIM_MAX_CONTEXT_FILES * 2] = {0};
  size_t nf = 0;
  for (size_t i = 0; i < c->fim.n_files; i++)
    files[nf++] = (lsp_fim_file){c->fim.files[i].path, c->fim.files[i].content, strlen(c->fim.files[i].content)};
  for (size_t i = 0; i < n; i++) {
    char *abs = qc_path_join(ls->root, names[i]);
    int fd = abs ? open(abs, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY) : -1; /* a FIFO must not hang us */
    free(abs);
    if (fd < 0) continue;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      close(fd);
      continue;
    }
    bufs[i] = malloc(LSP_FIM_CONTEXT_FILE_BYTES + 1);
    ssize_t got = bufs[i] ? read(fd, bufs[i], LSP_FIM_CONTEXT_FILE_BYTES) : -1;
    close(fd);
    if (got > 0) files[nf++] = (lsp_fim_file){names[i], bufs[i], (size_t)got};
  }
  /* rebuild with the same windows (the text is prefix + suffix, the cursor between) */
  size_t pl = strlen(c->fim.prefix), sl = strlen(c->fim.suffix);
  char *text = malloc(pl + sl + 1);
  if (text) {
    memcpy(text, c->fim.prefix, pl);
    memcpy(text + pl, c->fim.suffix, sl);
    text[pl + sl] = '\0';
    lsp_fim_input in = {.text = text, .len = pl + sl, .offset = pl, .path = c->fim.path,
                        .repo_name = c->fim.repo_name, .files = files, .n_files = nf,
                        .prefix_bytes = pl + 1, .suffix_bytes = sl + 1};
    lsp_fim_request nr;
    if (lsp_fim_build(&in, &nr) == LSP_OK) {
      lsp_fim_request_release(&c->fim);
      c->fim = nr;
    }
    free(text);
  }
  for (size_t i = 0; i < n; i++) {
    free(names[i]);
    free(bufs[i]);
  }
}

static void inl_work_done(uv_work_t *w, int status) {
  inl *c = w->data;
  if (status != 0 || c->cancelled) {
    inl_unref(c);
    return;
  }
  with_daemon(c->ls, inl_send, c);
}

static void m_inline(rpc_req *req, const json_t *params, void *user) {
  qls *ls = user;
  const char *uri = str_field(json_object_get(params, "textDocument"), "uri");
  lsp_pos pos;
  if (!uri || lsp_pos_parse(json_object_get(params, "position"), &pos)) {
    rpc_req_error(req, RPC_INVALID_PARAMS, "textDocument/inlineCompletion needs textDocument.uri and position", NULL);
    return;
  }
  const lsp_doc *doc = lsp_docs_find(ls->docs, uri);
  if (!doc) { /* only open documents are completed */
    rpc_req_reply(req, json_pack("{s:[]}", "items"));
    return;
  }
  inl *c = calloc(1, sizeof *c);
  if (!c) {
    rpc_req_error(req, RPC_INTERNAL_ERROR, "out of memory", NULL);
    return;
  }
  c->ls = ls;
  c->refs = 1;
  c->req = req;
  size_t off = lsp_offset_at(doc->text, doc->len, pos);
  c->pos = lsp_pos_at(doc->text, doc->len, off); /* clamped into the document */
  c->rel = strdup(doc_rel(ls, doc));
  /* the other open buffers, most recent first */
  const lsp_doc *recent[LSP_FIM_MAX_CONTEXT_FILES + 1];
  size_t nr = lsp_docs_recent(ls->docs, recent, LSP_FIM_MAX_CONTEXT_FILES + 1);
  lsp_fim_file files[LSP_FIM_MAX_CONTEXT_FILES + 1];
  for (size_t i = 0; i < nr; i++) files[i] = (lsp_fim_file){doc_rel(ls, recent[i]), recent[i]->text, recent[i]->len};
  lsp_fim_input in = {.text = doc->text, .len = doc->len, .offset = off, .path = c->rel ? c->rel : "",
                      .repo_name = ls->repo_name, .files = files, .n_files = nr};
  if (!c->rel || lsp_fim_build(&in, &c->fim) != LSP_OK) {
    free(c->rel);
    free(c);
    rpc_req_error(req, RPC_INTERNAL_ERROR, "out of memory", NULL);
    return;
  }
  rpc_req_on_cancel(req, on_inl_cancel, c);
  c->work.data = c;
  c->refs++;
  if (uv_queue_work(rpc_server_loop(ls->srv), &c->work, inl_work, inl_work_done) != 0) {
    c->refs--;
    with_daemon(ls, inl_send, c);
    return;
  }
  inl_unref(c); /* the worker holds its own reference */
}

/* ---- the editor side --------------------------------------------------------------- */

static int ready(qls *ls, rpc_req *req) {
  if (ls->daemon && rpc_req_conn(req) == ls->daemon) {
    rpc_req_error(req, RPC_METHOD_NOT_FOUND, "method not found", NULL);
    return 0;
  }
  if (ls->shutdown) {
    rpc_req_error(req, RPC_INVALID_REQUEST, "the server is shutting down", NULL);
    return 0;
  }
  if (!ls->initialized) {
    rpc_req_error(req, LSP_SERVER_NOT_INITIALIZED, "the server is not initialized yet", NULL);
    return 0;
  }
  return 1;
}

static int set_option(char **slot, const char *value) {
  char *v = strdup(value);
  if (!v) return -1;
  free(*slot);
  *slot = v;
  return 0;
}

/* A model spec as the daemon needs it, resolved as `qcoder run` resolves it (a cached
 * model's name, a file, a URL, script:FILE; files made absolute: the daemon's working
 * directory is not ours). NULL and *err for a name that cannot be used. */
static char *resolve_spec(const char *spec, char **err) {
  *err = NULL;
  if (!spec || !*spec) return NULL;
  char *out = NULL;
  if (wf_model_spec(spec, &out, err) != 0) {
    free(out);
    if (!*err) *err = strdup("cannot use the model");
    return NULL;
  }
  return out;
}

static const char *const k_modes[] = {"ask", "auto-edit", "full-auto", "read-only", NULL};

static int valid_mode(const char *m) {
  for (int i = 0; m && k_modes[i]; i++)
    if (!strcmp(m, k_modes[i])) return 1;
  return 0;
}

static void m_initialize(rpc_req *req, const json_t *params, void *user) {
  qls *ls = user;
  if (ls->daemon && rpc_req_conn(req) == ls->daemon) {
    rpc_req_error(req, RPC_METHOD_NOT_FOUND, "method not found", NULL);
    return;
  }
  if (ls->initialized) {
    rpc_req_error(req, RPC_INVALID_REQUEST, "initialize was already received", NULL);
    return;
  }
  /* options */
  const json_t *o = json_object_get(params, "initializationOptions");
  const char *model = str_field(o, "model"), *remote = str_field(o, "remote"), *mode = str_field(o, "mode");
  if (model && remote) {
    rpc_req_error(req, RPC_INVALID_PARAMS, "initializationOptions: give model or remote, not both", NULL);
    return;
  }
  if (remote && !qc_str_has_prefix(remote, "http://") && !qc_str_has_prefix(remote, "https://")) {
    rpc_req_error(req, RPC_INVALID_PARAMS, "initializationOptions.remote must be an http:// or https:// URL", NULL);
    return;
  }
  if (mode && !valid_mode(mode)) {
    rpc_req_error(req, RPC_INVALID_PARAMS,
                  "initializationOptions.mode must be ask, auto-edit, full-auto or read-only", NULL);
    return;
  }
  if (model || remote) {
    char *why = NULL, *spec = resolve_spec(model ? model : remote, &why);
    if (!spec) {
      char *msg = qc_asprintf("initializationOptions.%s: %s", model ? "model" : "remote", why ? why : "unusable");
      rpc_req_error(req, RPC_INVALID_PARAMS, msg ? msg : "initializationOptions: the model cannot be used", NULL);
      free(msg);
      free(why);
      return;
    }
    free(ls->model);
    ls->model = spec;
  }
  if (mode) set_option(&ls->mode_name, mode);
  /* the workspace root: rootUri, rootPath, the first workspace folder, else our cwd */
  char *root = NULL;
  const char *ru = str_field(params, "rootUri");
  if (ru) root = lsp_uri_to_path(ru);
  if (!root && str_field(params, "rootPath")) root = normalize_path(str_field(params, "rootPath"));
  if (!root) {
    const json_t *wf = json_array_get(json_object_get(params, "workspaceFolders"), 0);
    if (str_field(wf, "uri")) root = lsp_uri_to_path(str_field(wf, "uri"));
  }
  if (!root) {
    char cwd[PATH_MAX];
    root = getcwd(cwd, sizeof cwd) ? strdup(cwd) : strdup("/");
  }
  char real[PATH_MAX];
  if (root && realpath(root, real)) {
    free(root);
    root = strdup(real);
  }
  char *norm = normalize_path(root);
  free(root);
  if (!norm) {
    rpc_req_error(req, RPC_INVALID_PARAMS, "the workspace root must be an absolute file path", NULL);
    return;
  }
  ls->root = norm;
  const char *base = strrchr(ls->root, '/');
  ls->repo_name = strdup(base && base[1] ? base + 1 : "workspace");
  lsp_client_caps_parse(json_object_get(params, "capabilities"), &ls->caps);
  ls->editor = rpc_req_conn(req);
  rpc_conn_ref(ls->editor);
  ls->initialized = 1;
  qc_info("initialize: root %s, model %s, mode %s", ls->root, ls->model ? ls->model : "(daemon default)",
          ls->mode_name);
  json_t *caps = json_pack(
      "{s:s, s:{s:b, s:i, s:{s:b}}, s:{s:[s, s, s]}, s:{s:o}, s:b}", "positionEncoding", "utf-16",
      "textDocumentSync", "openClose", 1, "change", 1, "save", "includeText", 0, "codeActionProvider",
      "codeActionKinds", "quickfix", "refactor.rewrite", "qcoder.explain", "executeCommandProvider", "commands",
      lsp_command_list(), "inlineCompletionProvider", 1);
  rpc_req_reply(req, json_pack("{s:o, s:{s:s, s:s}}", "capabilities", caps, "serverInfo", "name", "qcoder", "version",
                               QCODER_VERSION));
  /* get ready for the first command and the first completion */
  const char *home = getenv("HOME");
  int too_wide = !strcmp(ls->root, "/") || (home && !strcmp(ls->root, home)); /* not a project */
  if (!too_wide) {
    atomic_store(&ls->map_state, MAP_BUILDING);
    if (pthread_create(&ls->map_thread, NULL, map_build, ls) == 0) ls->map_started = 1;
    else atomic_store(&ls->map_state, MAP_FAILED);
  }
}

static void m_shutdown(rpc_req *req, const json_t *params, void *user) {
  (void)params;
  qls *ls = user;
  if (!ready(ls, req)) return;
  ls->shutdown = 1;
  for (run *r = ls->runs; r; r = r->next) run_cancel(r, "the server is shutting down");
  rpc_req_reply(req, NULL);
}

static void n_exit(rpc_conn *c, const json_t *params, void *user) {
  (void)params;
  qls *ls = user;
  if (c == ls->daemon) return;
  rpc_server_stop(ls->srv, "exit");
}

static void n_did_open(rpc_conn *c, const json_t *params, void *user) {
  qls *ls = user;
  if (c == ls->daemon || !ls->initialized) return;
  const json_t *td = json_object_get(params, "textDocument");
  const json_t *text = json_object_get(td, "text");
  const json_t *ver = json_object_get(td, "version");
  if (!str_field(td, "uri") || !json_is_string(text)) return;
  int rc = lsp_docs_open(ls->docs, str_field(td, "uri"), str_field(td, "languageId"),
                         json_is_integer(ver) ? json_integer_value(ver) : 0, json_string_value(text),
                         json_string_length(text));
  if (rc != LSP_OK) {
    qc_info("didOpen %s: not kept (%s)", str_field(td, "uri"), lsp_strerror(rc));
    return;
  }
  /* the daemon names files with symlinks resolved: remember that spelling too */
  const lsp_doc *doc = lsp_docs_find(ls->docs, str_field(td, "uri"));
  char *real = doc ? real_path_of(doc->path) : NULL;
  if (real) lsp_docs_set_real(ls->docs, str_field(td, "uri"), real);
  free(real);
}

static void n_did_change(rpc_conn *c, const json_t *params, void *user) {
  qls *ls = user;
  if (c == ls->daemon || !ls->initialized) return;
  const json_t *td = json_object_get(params, "textDocument");
  const json_t *ver = json_object_get(td, "version");
  const char *uri = str_field(td, "uri");
  if (!uri) return;
  int rc = lsp_docs_change(ls->docs, uri, json_is_integer(ver) ? json_integer_value(ver) : LSP_VERSION_UNKNOWN,
                           json_object_get(params, "contentChanges"));
  if (rc != LSP_OK && rc != LSP_ENOTOPEN) {
    /* the store no longer knows this buffer's text: forget it (reads go to disk) */
    qc_warn("didChange %s: %s; the document is dropped from the store", uri, lsp_strerror(rc));
    lsp_docs_close(ls->docs, uri);
  }
}

static void n_did_close(rpc_conn *c, const json_t *params, void *user) {
  qls *ls = user;
  if (c == ls->daemon || !ls->initialized) return;
  const char *uri = str_field(json_object_get(params, "textDocument"), "uri");
  if (uri) lsp_docs_close(ls->docs, uri);
}

static void m_code_action(rpc_req *req, const json_t *params, void *user) {
  qls *ls = user;
  if (!ready(ls, req)) return;
  json_t *a = lsp_code_actions(params, ls->caps.code_action_literals);
  if (!a) {
    rpc_req_error(req, RPC_INVALID_PARAMS, "textDocument/codeAction needs textDocument.uri and a range", NULL);
    return;
  }
  rpc_req_reply(req, a);
}

/* qcoder/status — a qcoder extension for diagnostics and tests: what this server holds. */
static void m_status(rpc_req *req, const json_t *params, void *user) {
  (void)params;
  qls *ls = user;
  if (!ready(ls, req)) return;
  static const char *const dstates[] = {"none", "connecting", "initializing", "ready"};
  static const char *const mstates[] = {"none", "building", "ready", "failed"};
  int nruns = 0;
  for (run *r = ls->runs; r; r = r->next) nruns += !r->done;
  rpc_req_reply(req, json_pack("{s:s, s:s?, s:s, s:I, s:s, s:s, s:i}", "root", ls->root, "model", ls->model, "mode",
                               ls->mode_name, "documents", (json_int_t)lsp_docs_count(ls->docs), "daemon",
                               dstates[ls->dstate], "repoMap", mstates[atomic_load(&ls->map_state)], "running", nruns));
}

/* Wrappers that check the editor side's state first. */
static void m_execute_checked(rpc_req *req, const json_t *params, void *user) {
  if (ready(user, req)) m_execute(req, params, user);
}
static void m_inline_checked(rpc_req *req, const json_t *params, void *user) {
  if (ready(user, req)) m_inline(req, params, user);
}

/* ---- the command ------------------------------------------------------------------- */

static const char *opt_value(int argc, char **argv, int *i, const char *name) {
  size_t n = strlen(name);
  if (strncmp(argv[*i], name, n) != 0) return NULL;
  if (argv[*i][n] == '=') return argv[*i] + n + 1;
  if (argv[*i][n] != '\0') return NULL;
  if (*i + 1 >= argc) return "";
  return argv[++*i];
}

int cmd_lsp(int argc, char **argv) {
  const char *model = NULL, *remote = NULL, *mode = "ask", *socket_opt = NULL, *level = "warn";
  for (int i = 1; i < argc; i++) {
    const char *v;
    if ((v = opt_value(argc, argv, &i, "--model"))) {
      if (!*v) return qc_cmd_usage_error("lsp", "--model needs a GGUF path, script:FILE or URL");
      model = v;
    } else if ((v = opt_value(argc, argv, &i, "--remote"))) {
      if (!qc_str_has_prefix(v, "http://") && !qc_str_has_prefix(v, "https://"))
        return qc_cmd_usage_error("lsp", "--remote needs an http:// or https:// URL");
      remote = v;
    } else if ((v = opt_value(argc, argv, &i, "--mode"))) {
      if (!valid_mode(v)) return qc_cmd_usage_error("lsp", "--mode must be ask, auto-edit, full-auto or read-only");
      mode = v;
    } else if ((v = opt_value(argc, argv, &i, "--socket"))) {
      if (!*v) return qc_cmd_usage_error("lsp", "--socket needs a path");
      socket_opt = v;
    } else if ((v = opt_value(argc, argv, &i, "--log-level"))) {
      level = v;
    } else if (!strcmp(argv[i], "--stdio")) {
      /* what some editors append by habit: stdio is the only transport */
    } else {
      return qc_cmd_usage_error("lsp", "unknown argument '%s'", argv[i]);
    }
  }
  if (model && remote) return qc_cmd_usage_error("lsp", "give --model or --remote, not both");
  qc_log_level lvl;
  if (qc_log_level_parse(level, &lvl) != QC_OK)
    return qc_cmd_usage_error("lsp", "--log-level must be error, warn, info, debug or trace");
  qc_log_open(NULL, lvl); /* stderr: stdout carries the protocol */

  /* as `qcoder acp` does: resolved like `qcoder run` when given, else the daemon's default */
  wf_model_choice choice = {0};
  if (model || remote) {
    char *why = NULL;
    if (wf_model_resolve(model, remote, &choice, &why) != 0) {
      fprintf(stderr, "qcoder lsp: %s\n", why ? why : "cannot use the model");
      free(why);
      return 2;
    }
  }
  qls ls_ = {0}, *ls = &ls_;
  ls->model = choice.spec;
  choice.spec = NULL;
  wf_model_choice_release(&choice);
  ls->mode_name = strdup(mode);
  ls->socket_path = rpc_socket_path(socket_opt);
  ls->docs = lsp_docs_new();
  pthread_mutex_init(&ls->map_mu, NULL);
  int rc = 2;
  rpc_server_opts so = {.handle_signals = 1};
  ls->srv = rpc_server_new(&so);
  if (!ls->srv || !ls->mode_name || !ls->socket_path || !ls->docs) {
    fprintf(stderr, "qcoder lsp: out of memory\n");
    goto out;
  }
  int r = 0;
  r |= rpc_register(ls->srv, "initialize", m_initialize, ls);
  r |= rpc_register(ls->srv, "shutdown", m_shutdown, ls);
  r |= rpc_register(ls->srv, "textDocument/codeAction", m_code_action, ls);
  r |= rpc_register(ls->srv, "workspace/executeCommand", m_execute_checked, ls);
  r |= rpc_register(ls->srv, "textDocument/inlineCompletion", m_inline_checked, ls);
  r |= rpc_register(ls->srv, "qcoder/status", m_status, ls);
  r |= rpc_register_notification(ls->srv, "exit", n_exit, ls);
  r |= rpc_register_notification(ls->srv, "textDocument/didOpen", n_did_open, ls);
  r |= rpc_register_notification(ls->srv, "textDocument/didChange", n_did_change, ls);
  r |= rpc_register_notification(ls->srv, "textDocument/didClose", n_did_close, ls);
  r |= rpc_register_notification(ls->srv, "window/workDoneProgress/cancel", m_progress_cancel, ls);
  /* the daemon's side (ACP client methods) */
  r |= rpc_register_notification(ls->srv, "session/update", n_session_update, ls);
  r |= rpc_register(ls->srv, "session/request_permission", m_request_permission, ls);
  r |= rpc_register(ls->srv, "fs/read_text_file", m_fs_read, ls);
  r |= rpc_register(ls->srv, "fs/write_text_file", m_fs_write, ls);
  if (r) {
    fprintf(stderr, "qcoder lsp: cannot register the methods\n");
    goto out;
  }
  if (rpc_server_add_stdio(ls->srv) != QC_OK) {
    fprintf(stderr, "qcoder lsp: stdin and stdout must be pipes (an editor starts qcoder lsp)\n");
    goto out;
  }
  rpc_server_run(ls->srv);
  /* LSP: 0 when `shutdown` came before `exit` (or before the editor hung up), else 1 */
  rc = ls->shutdown ? 0 : 1;
out:
  if (ls->srv) rpc_server_free(ls->srv);
  /* waiters left (a connect that never finished) have nothing to answer any more */
  while (ls->waiters) {
    waiter *w = ls->waiters;
    ls->waiters = w->next;
    free(w);
  }
  if (ls->map_started) pthread_join(ls->map_thread, NULL);
  if (ls->map) tool_repomap_free(ls->map);
  pthread_mutex_destroy(&ls->map_mu);
  if (ls->editor) rpc_conn_unref(ls->editor);
  lsp_docs_free(ls->docs);
  free(ls->model);
  free(ls->mode_name);
  free(ls->socket_path);
  free(ls->root);
  free(ls->repo_name);
  json_decref(ls->agent_caps);
  return rc;
}
