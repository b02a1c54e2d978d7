/* test_lsp_e2e.c — the real `qcoder lsp` end to end, driven by a raw LSP client in C,
 * against a real daemon with the scripted test double: the lifecycle and its errors,
 * a fix whose edit comes back as a minimal versioned workspace/applyEdit (the daemon
 * reading the unsaved buffer), writes to files not open going to disk, read-only
 * explain, permissions asked with window/showMessageRequest, refactor asking for its
 * instruction, progress, $/cancelRequest of a command and of an inline completion, and
 * the FIM prompt the model received. */
#include "tests/daemon/daemon_harness.h"

#include <fcntl.h>

/* ---- a raw LSP client ------------------------------------------------------------- */

typedef struct lc {
  pid_t pid;
  int to, from;        /* the server's stdin (we write), stdout (we read) */
  rpc_framer f;
  json_t *log;         /* every message received, in order */
  int64_t next_id;
  const char *choose;  /* showMessageRequest: the action title to answer, NULL: null */
} lc;

static void lc_start(lc *c, const char *const *args) {
  memset(c, 0, sizeof *c);
  int in[2], out[2];
  ASSERT(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0);
  const char *argv[24];
  int a = 0;
  argv[a++] = qct_qcoder_bin();
  argv[a++] = "lsp";
  for (int i = 0; args && args[i] && a < 22; i++) argv[a++] = args[i];
  argv[a] = NULL;
  c->pid = fork();
  if (c->pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  c->to = in[1];
  c->from = out[0];
  rpc_framer_init(&c->f, RPC_FRAMING_LSP, 0);
  c->log = json_array();
  c->next_id = 1;
}

static void lc_send(lc *c, json_t *msg) {
  json_object_set_new(msg, "jsonrpc", json_string("2.0"));
  char *body = json_dumps(msg, JSON_COMPACT);
  json_decref(msg);
  char hdr[64];
  snprintf(hdr, sizeof hdr, "Content-Length: %zu\r\n\r\n", strlen(body));
  ASSERT(write(c->to, hdr, strlen(hdr)) == (ssize_t)strlen(hdr));
  ASSERT(write(c->to, body, strlen(body)) == (ssize_t)strlen(body));
  free(body);
}

static int64_t lc_request(lc *c, const char *method, json_t *params) {
  int64_t id = c->next_id++;
  lc_send(c, json_pack("{s:I, s:s, s:o}", "id", (json_int_t)id, "method", method, "params",
                       params ? params : json_object()));
  return id;
}

static void lc_notify(lc *c, const char *method, json_t *params) {
  lc_send(c, json_pack("{s:s, s:o}", "method", method, "params", params ? params : json_object()));
}

/* Answer what the server asks, as an editor would. */
static void lc_answer(lc *c, json_t *m) {
  const char *method = json_string_value(json_object_get(m, "method"));
  json_t *id = json_object_get(m, "id");
  if (!method || !id) return;
  json_t *result;
  if (!strcmp(method, "workspace/applyEdit")) result = json_pack("{s:b}", "applied", 1);
  else if (!strcmp(method, "window/showMessageRequest")) result = c->choose ? json_pack("{s:s}", "title", c->choose) : json_null();
  else result = json_null();
  lc_send(c, json_pack("{s:O, s:o}", "id", id, "result", result));
}

/* The next message (answering the server's requests), or NULL after timeout_ms/EOF. */
static json_t *lc_next(lc *c, int timeout_ms) {
  json_t *m = qd_read_msg(c->from, &c->f, timeout_ms, NULL);
  if (!m) return NULL;
  json_array_append(c->log, m);
  lc_answer(c, m);
  return m;
}

/* Wait for the response to `id` (new reference), handling everything else meanwhile. */
static json_t *lc_wait(lc *c, int64_t id, int timeout_ms) {
  uint64_t end = qc_now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    uint64_t now = qc_now_ms();
    if (now >= end) return NULL;
    json_t *m = lc_next(c, (int)(end - now));
    if (!m) return NULL;
    if (!json_object_get(m, "method") && json_integer_value(json_object_get(m, "id")) == id) return m;
    json_decref(m);
  }
}

static json_t *lc_call(lc *c, const char *method, json_t *params) {
  int64_t id = lc_request(c, method, params);
  json_t *r = lc_wait(c, id, 20000);
  ASSERT_MSG(r, "no answer to %s", method);
  return r;
}

/* Messages received with `method` (borrowed from the log), the k-th of them. */
static json_t *lc_find(lc *c, const char *method, size_t k) {
  size_t i;
  json_t *m;
  json_array_foreach(c->log, i, m) {
    const char *mm = json_string_value(json_object_get(m, "method"));
    if (mm && !strcmp(mm, method) && k-- == 0) return m;
  }
  return NULL;
}

static size_t lc_count(lc *c, const char *method) {
  size_t n = 0;
  while (lc_find(c, method, n)) n++;
  return n;
}

/* Close stdin after shutdown/exit (or not) and collect the exit status. */
static int lc_finish(lc *c, int shutdown) {
  if (shutdown) {
    json_t *r = lc_call(c, "shutdown", NULL);
    ASSERT(json_is_null(json_object_get(r, "result")));
    json_decref(r);
    lc_notify(c, "exit", NULL);
  }
  close(c->to);
  int st = qd_wait_exit(c->pid, 10000);
  close(c->from);
  rpc_framer_release(&c->f);
  json_decref(c->log);
  return st;
}

static json_t *caps_full(void) {
  return json_pack("{s:{s:b, s:{s:b}}, s:{s:b, s:{}}, s:{s:{}}}", "workspace", "applyEdit", 1, "workspaceEdit",
                   "documentChanges", 1, "window", "workDoneProgress", 1, "showMessage", "textDocument",
                   "inlineCompletion");
}

static void lc_initialize(lc *c, const char *root, json_t *caps) {
  char *uri = qc_asprintf("file://%s", root);
  json_t *r = lc_call(c, "initialize", json_pack("{s:s, s:o}", "rootUri", uri, "capabilities", caps));
  ASSERT_MSG(json_object_get(r, "result"), "initialize failed");
  json_decref(r);
  lc_notify(c, "initialized", NULL);
  free(uri);
}

static void lc_open(lc *c, const char *path, const char *text) {
  char *uri = qc_asprintf("file://%s", path);
  lc_notify(c, "textDocument/didOpen",
            json_pack("{s:{s:s, s:s, s:i, s:s}}", "textDocument", "uri", uri, "languageId", "c", "version", 1, "text",
                      text));
  free(uri);
}

static json_t *range_json(int l1, int c1, int l2, int c2) {
  return json_pack("{s:{s:i, s:i}, s:{s:i, s:i}}", "start", "line", l1, "character", c1, "end", "line", l2,
                   "character", c2);
}

/* ---- fixtures --------------------------------------------------------------------- */

static qd_daemon g_daemon;
static char *g_log; /* the scripted backend's prompt log */

/* One daemon for the whole file (every lsp connects to it). */
static void daemon_up(void) {
  if (g_daemon.pid > 0) return;
  qd_init(&g_daemon, "lsp-e2e-daemon");
  g_log = qc_asprintf("%s/prompts.jsonl", g_daemon.dir);
  setenv("QCODER_SCRIPT_PROMPT_LOG", g_log, 1);
  ASSERT_MSG(qd_start(&g_daemon, NULL) == 0, "the daemon did not start");
}

__attribute__((destructor)) static void daemon_down(void) {
  if (g_daemon.pid > 0) {
    kill(g_daemon.pid, SIGTERM);
    qd_wait_exit(g_daemon.pid, 10000);
    g_daemon.pid = 0;
  }
}

/* A workspace with src/main.c (a missing ';'), src/util.c and src/util.h. */
static char *workspace(void) {
  char *dir = qct_tempdir("lsp-ws");
  char real[4096];
  ASSERT(realpath(dir, real));
  free(dir);
  char p[4200];
  snprintf(p, sizeof p, "%s/src/main.c", real);
  ASSERT_EQ_INT(qct_write_file(p, "#include \"util.h\"\nint main(void) {\n  return 0\n}\n"), 0);
  snprintf(p, sizeof p, "%s/src/util.h", real);
  ASSERT_EQ_INT(qct_write_file(p, "int util_add(int a, int b);\n"), 0);
  snprintf(p, sizeof p, "%s/src/util.c", real);
  ASSERT_EQ_INT(qct_write_file(p, "#include \"util.h\"\nint util_add(int a, int b) { return a + b; }\n"), 0);
  snprintf(p, sizeof p, "%s/AGENTS.md", real);
  ASSERT_EQ_INT(qct_write_file(p, "A tiny C project.\n"), 0);
  return strdup(real);
}

/* A script file; returns "script:PATH" (malloc'd). */
static char *script(const char *ws, const char *name, const char *json) {
  char *path = qc_asprintf("%s-%s.json", ws, name);
  ASSERT_EQ_INT(qct_write_file(path, json), 0);
  char *spec = qc_asprintf("script:%s", path);
  free(path);
  return spec;
}

/* The prompt log's entries (new array of {raw, prompt}) appended since `from` lines. */
static json_t *prompts_since(size_t from) {
  json_t *a = json_array();
  char *text = qct_read_file(g_log, NULL);
  size_t k = 0;
  for (char *line = text ? strtok(text, "\n") : NULL; line; line = strtok(NULL, "\n"))
    if (k++ >= from) json_array_append_new(a, json_loads(line, 0, NULL));
  free(text);
  return a;
}

static size_t prompts_count(void) {
  json_t *a = prompts_since(0);
  size_t n = json_array_size(a);
  json_decref(a);
  return n;
}

#define CALL_READ(path) \
  "<tool_call>\n<function=read_file>\n<parameter=path>\n" path "\n</parameter>\n</function>\n</tool_call>"
#define CALL_EDIT(path, old, new_)                                                                               \
  "<tool_call>\n<function=edit_file>\n<parameter=path>\n" path "\n</parameter>\n<parameter=old_string>\n" old \
  "\n</parameter>\n<parameter=new_string>\n" new_ "\n</parameter>\n</function>\n</tool_call>"
#define CALL_WRITE(path, content)                                                                                  \
  "<tool_call>\n<function=write_file>\n<parameter=path>\n" path "\n</parameter>\n<parameter=content>\n" content \
  "\n</parameter>\n</function>\n</tool_call>"

static const char *k_fix_script =
    "[" "\"" "<tool_call>\\n<function=read_file>\\n<parameter=path>\\nsrc/main.c\\n</parameter>\\n</function>\\n"
    "</tool_call>" "\","
    "\"<tool_call>\\n<function=edit_file>\\n<parameter=path>\\nsrc/main.c\\n</parameter>\\n<parameter=old_string>\\n"
    "  return 0\\n</parameter>\\n<parameter=new_string>\\n  return 0;\\n</parameter>\\n</function>\\n</tool_call>\","
    "\"Added the missing semicolon.\"]";

/* ---- tests ------------------------------------------------------------------------ */

TEST(lifecycle_capabilities_and_errors) {
  char *ws = workspace();
  const char *args[] = {"--socket", "/dev/null/qcoder-test.sock", NULL};
  lc c;
  lc_start(&c, args);
  json_t *r = lc_call(&c, "textDocument/codeAction", json_object());
  ASSERT_EQ_INT(qd_err_code(r), -32002); /* not initialized */
  json_decref(r);
  char *root_uri = qc_asprintf("file://%s", ws);
  /* a model name that resolves to nothing is refused up front, and initialize can be retried */
  r = lc_call(&c, "initialize", json_pack("{s:s, s:{}, s:{s:s}}", "rootUri", root_uri, "capabilities",
                                          "initializationOptions", "model", "no-such-model-here"));
  ASSERT_EQ_INT(qd_err_code(r), -32602);
  ASSERT_CONTAINS(qd_err_msg(r), "initializationOptions.model");
  ASSERT_CONTAINS(qd_err_msg(r), "no model named no-such-model-here");
  json_decref(r);
  r = lc_call(&c, "initialize", json_pack("{s:s, s:{}}", "rootUri", root_uri, "capabilities"));
  json_t *caps = json_object_get(json_object_get(r, "result"), "capabilities");
  ASSERT_STR_EQ(json_string_value(json_object_get(caps, "positionEncoding")), "utf-16");
  ASSERT_EQ_INT(json_integer_value(json_object_get(json_object_get(caps, "textDocumentSync"), "change")), 1);
  ASSERT(json_is_true(json_object_get(caps, "inlineCompletionProvider")));
  ASSERT_EQ_INT(json_array_size(json_object_get(json_object_get(caps, "executeCommandProvider"), "commands")), 5);
  ASSERT_EQ_INT(json_array_size(json_object_get(json_object_get(caps, "codeActionProvider"), "codeActionKinds")), 3);
  ASSERT(!json_object_get(caps, "hoverProvider")); /* only what works */
  json_decref(r);
  r = lc_call(&c, "initialize", json_pack("{s:{}}", "capabilities"));
  ASSERT_EQ_INT(qd_err_code(r), -32600);
  json_decref(r);
  lc_notify(&c, "initialized", NULL);
  char *main_c = qc_asprintf("%s/src/main.c", ws);
  lc_open(&c, main_c, "int x\n");
  char *uri = qc_asprintf("file://%s", main_c);
  /* code actions for a range with a diagnostic */
  r = lc_call(&c, "textDocument/codeAction",
              json_pack("{s:{s:s}, s:o, s:{s:[{s:o, s:s}]}}", "textDocument", "uri", uri, "range", range_json(0, 0, 0, 5),
                        "context", "diagnostics", "range", range_json(0, 5, 0, 5), "message", "expected ';'"));
  json_t *actions = json_object_get(r, "result");
  ASSERT_EQ_INT(json_array_size(actions), 3);
  /* this client announced no code action literals: bare commands */
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(actions, 0), "command")), "qcoder.fix");
  json_decref(r);
  /* bad commands are refused with a message */
  r = lc_call(&c, "workspace/executeCommand", json_pack("{s:s, s:[{}]}", "command", "qcoder.nope", "arguments"));
  ASSERT_EQ_INT(qd_err_code(r), -32602);
  ASSERT_CONTAINS(qd_err_msg(r), "unknown command");
  json_decref(r);
  r = lc_call(&c, "workspace/executeCommand", json_pack("{s:s, s:[{s:s}]}", "command", "qcoder.fix", "arguments", "uri", uri));
  ASSERT_EQ_INT(qd_err_code(r), -32602);
  ASSERT_CONTAINS(qd_err_msg(r), "needs range");
  json_decref(r);
  /* a refactor without instruction, from a client that cannot be asked */
  r = lc_call(&c, "workspace/executeCommand",
              json_pack("{s:s, s:[{s:s, s:o}]}", "command", "qcoder.refactor", "arguments", "uri", uri, "range",
                        range_json(0, 0, 0, 1)));
  ASSERT_EQ_INT(qd_err_code(r), -32602);
  ASSERT_CONTAINS(qd_err_msg(r), "needs an instruction");
  json_decref(r);
  /* a command when no daemon can be reached: a clear error, announced */
  r = lc_call(&c, "workspace/executeCommand", json_pack("{s:s, s:[{s:s}]}", "command", "qcoder.run", "arguments",
                                                        "prompt", "hello"));
  ASSERT_EQ_INT(qd_err_code(r), -32803);
  ASSERT_CONTAINS(qd_err_msg(r), "qcoder daemon");
  json_decref(r);
  ASSERT(lc_find(&c, "window/showMessage", 0));
  /* inline completion of a document that is not open: nothing */
  r = lc_call(&c, "textDocument/inlineCompletion",
              json_pack("{s:{s:s}, s:{s:i, s:i}}", "textDocument", "uri", "file:///elsewhere.c", "position", "line", 0,
                        "character", 0));
  ASSERT_EQ_INT(json_array_size(json_object_get(json_object_get(r, "result"), "items")), 0);
  json_decref(r);
  /* the store follows open/change/close */
  lc_notify(&c, "textDocument/didChange",
            json_pack("{s:{s:s, s:i}, s:[{s:o, s:s}]}", "textDocument", "uri", uri, "version", 2, "contentChanges",
                      "range", range_json(0, 5, 0, 5), "text", ";"));
  r = lc_call(&c, "qcoder/status", NULL);
  ASSERT_EQ_INT(json_integer_value(json_object_get(json_object_get(r, "result"), "documents")), 1);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(r, "result"), "root")), ws);
  json_decref(r);
  lc_notify(&c, "textDocument/didClose", json_pack("{s:{s:s}}", "textDocument", "uri", uri));
  r = lc_call(&c, "qcoder/status", NULL);
  ASSERT_EQ_INT(json_integer_value(json_object_get(json_object_get(r, "result"), "documents")), 0);
  json_decref(r);
  /* shutdown: later requests are refused; exit after shutdown is status 0 */
  r = lc_call(&c, "shutdown", NULL);
  ASSERT(json_is_null(json_object_get(r, "result")));
  json_decref(r);
  r = lc_call(&c, "textDocument/codeAction", json_object());
  ASSERT_EQ_INT(qd_err_code(r), -32600);
  json_decref(r);
  lc_notify(&c, "exit", NULL);
  ASSERT_EQ_INT(lc_finish(&c, 0), 0);
  /* exit without shutdown: status 1; the editor hanging up without either: 1 */
  lc_start(&c, args);
  lc_initialize(&c, ws, json_object());
  lc_notify(&c, "exit", NULL);
  ASSERT_EQ_INT(lc_finish(&c, 0), 1);
  lc_start(&c, args);
  ASSERT_EQ_INT(lc_finish(&c, 0), 1);
  /* bad command lines */
  char *out = NULL;
  char cmd[4400];
  snprintf(cmd, sizeof cmd, "%s lsp --mode bogus </dev/null 2>&1", qct_qcoder_bin());
  ASSERT_EQ_INT(qct_run(cmd, &out), 2);
  ASSERT_CONTAINS(out, "--mode must be");
  free(out);
  free(root_uri);
  free(main_c);
  free(uri);
  free(ws);
}

TEST(fix_comes_back_as_a_minimal_versioned_edit) {
  daemon_up();
  char *ws = workspace();
  char *model = script(ws, "fix", k_fix_script);
  const char *args[] = {"--socket", g_daemon.sock, "--model", model, "--mode", "auto-edit", NULL};
  lc c;
  lc_start(&c, args);
  lc_initialize(&c, ws, caps_full());
  char *main_c = qc_asprintf("%s/src/main.c", ws);
  char *uri = qc_asprintf("file://%s", main_c);
  /* the buffer differs from the file: an unsaved line on top, then a full change */
  lc_open(&c, main_c, "#include \"util.h\"\nint main(void) {\n  return 0\n}\n");
  lc_notify(&c, "textDocument/didChange",
            json_pack("{s:{s:s, s:i}, s:[{s:s}]}", "textDocument", "uri", uri, "version", 2, "contentChanges", "text",
                      "// unsaved \xf0\x9f\x98\x80\n#include \"util.h\"\nint main(void) {\n  return 0\n}\n"));
  size_t p0 = prompts_count();
  json_t *r = lc_call(&c, "workspace/executeCommand",
                      json_pack("{s:s, s:[{s:s, s:o, s:[{s:o, s:s, s:i}]}]}", "command", "qcoder.fix", "arguments", "uri",
                                uri, "range", range_json(3, 0, 3, 10), "diagnostics", "range", range_json(3, 10, 3, 10),
                                "message", "expected ';'", "severity", 1));
  json_t *res = json_object_get(r, "result");
  ASSERT_MSG(res, "fix failed: %s", qd_err_msg(r) ? qd_err_msg(r) : "?");
  ASSERT_STR_EQ(json_string_value(json_object_get(res, "summary")), "Added the missing semicolon.");
  ASSERT_STR_EQ(json_string_value(json_object_get(res, "stopReason")), "end_turn");
  ASSERT_STR_EQ(json_string_value(json_array_get(json_object_get(res, "changedFiles"), 0)), uri);
  json_decref(r);
  /* the edit: versioned, one insertion of ";" */
  json_t *ae = lc_find(&c, "workspace/applyEdit", 0);
  ASSERT(ae);
  ASSERT_EQ_INT(lc_count(&c, "workspace/applyEdit"), 1);
  json_t *dc = json_array_get(json_object_get(json_object_get(json_object_get(ae, "params"), "edit"), "documentChanges"), 0);
  ASSERT_EQ_INT(json_integer_value(json_object_get(json_object_get(dc, "textDocument"), "version")), 2);
  json_t *edits = json_object_get(dc, "edits");
  ASSERT_EQ_INT(json_array_size(edits), 1);
  json_t *e0 = json_array_get(edits, 0);
  ASSERT_STR_EQ(json_string_value(json_object_get(e0, "newText")), ";");
  json_t *start = json_object_get(json_object_get(e0, "range"), "start");
  ASSERT_EQ_INT(json_integer_value(json_object_get(start, "line")), 3);
  ASSERT_EQ_INT(json_integer_value(json_object_get(start, "character")), 10);
  /* progress: created by the server, begin → reports → end */
  ASSERT(lc_find(&c, "window/workDoneProgress/create", 0));
  json_t *p = lc_find(&c, "$/progress", 0);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(json_object_get(p, "params"), "value"), "kind")), "begin");
  size_t np = lc_count(&c, "$/progress");
  ASSERT(np >= 3);
  p = lc_find(&c, "$/progress", np - 1);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(json_object_get(p, "params"), "value"), "kind")), "end");
  /* announced */
  json_t *sm = lc_find(&c, "window/showMessage", 0);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(sm, "params"), "message")), "Added the missing semicolon.");
  /* the file on disk is untouched: the edit went to the editor */
  char *disk = qct_read_file(main_c, NULL);
  ASSERT_STR_EQ(disk, "#include \"util.h\"\nint main(void) {\n  return 0\n}\n");
  free(disk);
  /* the agent read the unsaved buffer, and the prompt named the diagnostic */
  json_t *pr = prompts_since(p0);
  ASSERT_EQ_INT(json_array_size(pr), 3);
  ASSERT_CONTAINS(json_string_value(json_object_get(json_array_get(pr, 0), "prompt")), "expected ';'");
  ASSERT_CONTAINS(json_string_value(json_object_get(json_array_get(pr, 0), "prompt")), "Fix the problem in line 4 of `src/main.c`");
  /* (in read_file's numbered output, line 1: not the quote of the user prompt) */
  ASSERT_CONTAINS(json_string_value(json_object_get(json_array_get(pr, 1), "prompt")), "1\t// unsaved \xf0\x9f\x98\x80");
  json_decref(pr);
  /* a second fix before the editor reported the buffer's new version: the edit is made
   * against the text the editor now has, and sent without a version */
  r = lc_call(&c, "workspace/executeCommand",
              json_pack("{s:s, s:[{s:s, s:o}]}", "command", "qcoder.fix", "arguments", "uri", uri, "range",
                        range_json(3, 0, 3, 11)));
  json_decref(r);
  ASSERT_EQ_INT(lc_count(&c, "workspace/applyEdit"), 2);
  ae = lc_find(&c, "workspace/applyEdit", 1);
  dc = json_array_get(json_object_get(json_object_get(json_object_get(ae, "params"), "edit"), "documentChanges"), 0);
  ASSERT(json_is_null(json_object_get(json_object_get(dc, "textDocument"), "version")));
  e0 = json_array_get(json_object_get(dc, "edits"), 0);
  start = json_object_get(json_object_get(e0, "range"), "start");
  ASSERT_EQ_INT(json_integer_value(json_object_get(start, "character")), 11); /* after the first ';' */
  ASSERT_EQ_INT(lc_finish(&c, 1), 0);
  free(main_c);
  free(uri);
  free(model);
  free(ws);
}

TEST(a_workspace_opened_through_a_symlink_still_edits_the_buffer) {
  daemon_up();
  char *ws = workspace();
  char *link = qc_asprintf("%s-link", ws);
  ASSERT_EQ_INT(symlink(ws, link), 0);
  char *model = script(ws, "fix-link", k_fix_script);
  const char *args[] = {"--socket", g_daemon.sock, "--model", model, "--mode", "auto-edit", NULL};
  lc c;
  lc_start(&c, args);
  lc_initialize(&c, link, caps_full());
  /* the editor names the file through the symlink; the daemon resolves symlinks */
  char *main_c = qc_asprintf("%s/src/main.c", link);
  char *uri = qc_asprintf("file://%s", main_c);
  lc_open(&c, main_c, "// unsaved\n#include \"util.h\"\nint main(void) {\n  return 0\n}\n");
  size_t p0 = prompts_count();
  json_t *r = lc_call(&c, "workspace/executeCommand",
                      json_pack("{s:s, s:[{s:s, s:o}]}", "command", "qcoder.fix", "arguments", "uri", uri, "range",
                                range_json(3, 0, 3, 10)));
  json_t *res = json_object_get(r, "result");
  ASSERT_MSG(res, "fix failed: %s", qd_err_msg(r) ? qd_err_msg(r) : "?");
  ASSERT_EQ_INT(json_array_size(json_object_get(res, "changedFiles")), 1);
  ASSERT_STR_EQ(json_string_value(json_array_get(json_object_get(res, "changedFiles"), 0)), uri);
  json_decref(r);
  json_t *ae = lc_find(&c, "workspace/applyEdit", 0);
  ASSERT_MSG(ae, "the edit went to disk instead of the buffer");
  json_t *dc = json_array_get(json_object_get(json_object_get(json_object_get(ae, "params"), "edit"), "documentChanges"), 0);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(dc, "textDocument"), "uri")), uri);
  char *disk = qct_read_file(main_c, NULL);
  ASSERT_STR_EQ(disk, "#include \"util.h\"\nint main(void) {\n  return 0\n}\n");
  free(disk);
  json_t *pr = prompts_since(p0);
  ASSERT_CONTAINS(json_string_value(json_object_get(json_array_get(pr, 1), "prompt")), "1\t// unsaved");
  json_decref(pr);
  ASSERT_EQ_INT(lc_finish(&c, 1), 0);
  unlink(link);
  free(link);
  free(main_c);
  free(uri);
  free(model);
  free(ws);
}

TEST(writes_to_files_not_open_go_to_disk) {
  daemon_up();
  char *ws = workspace();
  char *model = script(ws, "run",
                       "[\"" "<tool_call>\\n<function=write_file>\\n<parameter=path>\\nsrc/new.c\\n</parameter>\\n"
                       "<parameter=content>\\nint fresh;\\n</parameter>\\n</function>\\n</tool_call>" "\","
                       "\"<tool_call>\\n<function=read_file>\\n<parameter=path>\\nsrc/util.c\\n</parameter>\\n"
                       "</function>\\n</tool_call>\","
                       "\"<tool_call>\\n<function=edit_file>\\n<parameter=path>\\nsrc/util.c\\n</parameter>\\n"
                       "<parameter=old_string>\\na + b\\n</parameter>\\n<parameter=new_string>\\nb + a\\n</parameter>\\n"
                       "</function>\\n</tool_call>\","
                       "\"Done.\"]");
  const char *args[] = {"--socket", g_daemon.sock, "--model", model, "--mode", "auto-edit", NULL};
  lc c;
  lc_start(&c, args);
  lc_initialize(&c, ws, caps_full());
  json_t *r = lc_call(&c, "workspace/executeCommand",
                      json_pack("{s:s, s:[{s:s}]}", "command", "qcoder.run", "arguments", "prompt", "tidy up"));
  json_t *res = json_object_get(r, "result");
  ASSERT_MSG(res, "run failed: %s", qd_err_msg(r) ? qd_err_msg(r) : "?");
  ASSERT_STR_EQ(json_string_value(json_object_get(res, "summary")), "Done.");
  ASSERT_EQ_INT(json_array_size(json_object_get(res, "changedFiles")), 2);
  json_decref(r);
  ASSERT_EQ_INT(lc_count(&c, "workspace/applyEdit"), 0);
  char p[4300];
  snprintf(p, sizeof p, "%s/src/new.c", ws);
  char *t = qct_read_file(p, NULL);
  ASSERT_STR_EQ(t, "int fresh;");
  free(t);
  snprintf(p, sizeof p, "%s/src/util.c", ws);
  t = qct_read_file(p, NULL);
  ASSERT_CONTAINS(t, "return b + a;");
  free(t);
  ASSERT_EQ_INT(lc_finish(&c, 1), 0);
  free(model);
  free(ws);
}

TEST(explain_runs_read_only) {
  daemon_up();
  char *ws = workspace();
  char *model = script(ws, "explain",
                       "[\"<tool_call>\\n<function=write_file>\\n<parameter=path>\\nsrc/main.c\\n</parameter>\\n"
                       "<parameter=content>\\nbroken\\n</parameter>\\n</function>\\n</tool_call>\","
                       "\"main returns zero: success.\"]");
  const char *args[] = {"--socket", g_daemon.sock, "--model", model, "--mode", "full-auto", NULL};
  lc c;
  lc_start(&c, args);
  lc_initialize(&c, ws, caps_full());
  char *main_c = qc_asprintf("%s/src/main.c", ws);
  char *uri = qc_asprintf("file://%s", main_c);
  lc_open(&c, main_c, "#include \"util.h\"\nint main(void) {\n  return 0\n}\n");
  json_t *r = lc_call(&c, "workspace/executeCommand",
                      json_pack("{s:s, s:[{s:s, s:o}], s:s}", "command", "qcoder.explain", "arguments", "uri", uri,
                                "range", range_json(1, 0, 3, 1), "workDoneToken", "client-token-1"));
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(r, "result"), "text")), "main returns zero: success.");
  json_decref(r);
  /* the client's own progress token is used: nothing created */
  ASSERT_EQ_INT(lc_count(&c, "window/workDoneProgress/create"), 0);
  json_t *pg = lc_find(&c, "$/progress", 0);
  ASSERT(pg);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(pg, "params"), "token")), "client-token-1");
  ASSERT_EQ_INT(lc_count(&c, "workspace/applyEdit"), 0);
  char *disk = qct_read_file(main_c, NULL);
  ASSERT_CONTAINS(disk, "int main(void)");
  free(disk);
  ASSERT_EQ_INT(lc_finish(&c, 1), 0);
  free(main_c);
  free(uri);
  free(model);
  free(ws);
}

TEST(permission_is_asked_with_show_message_request) {
  daemon_up();
  char *ws = workspace();
  char *model = script(ws, "perm",
                       "[\"<tool_call>\\n<function=write_file>\\n<parameter=path>\\nsrc/perm.c\\n</parameter>\\n"
                       "<parameter=content>\\nint p;\\n</parameter>\\n</function>\\n</tool_call>\","
                       "\"Finished.\"]");
  const char *args[] = {"--socket", g_daemon.sock, "--model", model, "--mode", "ask", NULL};
  char p[4300];
  snprintf(p, sizeof p, "%s/src/perm.c", ws);
  lc c;
  lc_start(&c, args);
  lc_initialize(&c, ws, caps_full());
  /* the user rejects: nothing is written */
  c.choose = "Reject";
  json_t *r = lc_call(&c, "workspace/executeCommand",
                      json_pack("{s:s, s:[{s:s}]}", "command", "qcoder.run", "arguments", "prompt", "add perm.c"));
  ASSERT(json_object_get(r, "result"));
  json_decref(r);
  json_t *q = lc_find(&c, "window/showMessageRequest", 0);
  ASSERT(q);
  ASSERT_CONTAINS(json_string_value(json_object_get(json_object_get(q, "params"), "message")), "qcoder wants to");
  json_t *acts = json_object_get(json_object_get(q, "params"), "actions");
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(acts, 0), "title")), "Allow");
  ASSERT(!qd_path_exists(p));
  /* the user allows: written */
  c.choose = "Allow";
  r = lc_call(&c, "workspace/executeCommand",
              json_pack("{s:s, s:[{s:s}]}", "command", "qcoder.run", "arguments", "prompt", "add perm.c"));
  ASSERT_STR_EQ(json_string_value(json_array_get(json_object_get(json_object_get(r, "result"), "changedFiles"), 0)) + 7, p);
  json_decref(r);
  ASSERT(qd_path_exists(p));
  unlink(p);
  ASSERT_EQ_INT(lc_finish(&c, 1), 0);
  /* a client that cannot be asked: rejected, and the user is told why */
  lc_start(&c, args);
  lc_initialize(&c, ws, json_pack("{s:{s:b}}", "workspace", "applyEdit", 1));
  r = lc_call(&c, "workspace/executeCommand",
              json_pack("{s:s, s:[{s:s}]}", "command", "qcoder.run", "arguments", "prompt", "add perm.c"));
  json_decref(r);
  ASSERT(!qd_path_exists(p));
  ASSERT_EQ_INT(lc_count(&c, "window/showMessageRequest"), 0);
  int told = 0;
  for (size_t i = 0; lc_find(&c, "window/showMessage", i); i++)
    told |= strstr(json_string_value(json_object_get(json_object_get(lc_find(&c, "window/showMessage", i), "params"),
                                                     "message")),
                   "was not allowed") != NULL;
  ASSERT(told);
  ASSERT_EQ_INT(lc_finish(&c, 1), 0);
  free(model);
  free(ws);
}

TEST(refactor_asks_for_its_instruction) {
  daemon_up();
  char *ws = workspace();
  char *model = script(ws, "refactor", "[\"Nothing to change.\"]");
  const char *args[] = {"--socket", g_daemon.sock, "--model", model, "--mode", "auto-edit", NULL};
  lc c;
  lc_start(&c, args);
  lc_initialize(&c, ws, caps_full());
  char *main_c = qc_asprintf("%s/src/main.c", ws);
  char *uri = qc_asprintf("file://%s", main_c);
  lc_open(&c, main_c, "#include \"util.h\"\nint main(void) {\n  return 0\n}\n");
  size_t p0 = prompts_count();
  c.choose = "Simplify";
  json_t *r = lc_call(&c, "workspace/executeCommand",
                      json_pack("{s:s, s:[{s:s, s:o}]}", "command", "qcoder.refactor", "arguments", "uri", uri, "range",
                                range_json(1, 0, 3, 1)));
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(r, "result"), "summary")), "Nothing to change.");
  json_decref(r);
  json_t *q = lc_find(&c, "window/showMessageRequest", 0);
  ASSERT_EQ_INT(json_array_size(json_object_get(json_object_get(q, "params"), "actions")), 4);
  json_t *pr = prompts_since(p0);
  ASSERT_CONTAINS(json_string_value(json_object_get(json_array_get(pr, 0), "prompt")), "Instruction: simplify this code");
  json_decref(pr);
  /* dismissing the question cancels the command */
  c.choose = NULL;
  r = lc_call(&c, "workspace/executeCommand",
              json_pack("{s:s, s:[{s:s, s:o}]}", "command", "qcoder.refactor", "arguments", "uri", uri, "range",
                        range_json(1, 0, 3, 1)));
  ASSERT_EQ_INT(qd_err_code(r), -32800);
  json_decref(r);
  ASSERT_EQ_INT(lc_finish(&c, 1), 0);
  free(main_c);
  free(uri);
  free(model);
  free(ws);
}

TEST(cancel_request_stops_a_running_command) {
  daemon_up();
  char *ws = workspace();
  /* one slow answer: 2000 bytes at 7 bytes per 40 ms is about 11 s */
  qc_buf s;
  qc_buf_init(&s, 0);
  qc_buf_puts(&s, "[{\"delay_ms\": 40, \"text\": \"");
  for (int i = 0; i < 200; i++) qc_buf_puts(&s, "slow text ");
  qc_buf_puts(&s, "\"}]");
  char *model = script(ws, "slow", s.data);
  qc_buf_release(&s);
  const char *args[] = {"--socket", g_daemon.sock, "--model", model, "--mode", "auto-edit", NULL};
  lc c;
  lc_start(&c, args);
  lc_initialize(&c, ws, caps_full());
  int64_t id = lc_request(&c, "workspace/executeCommand",
                          json_pack("{s:s, s:[{s:s}]}", "command", "qcoder.ask", "arguments", "prompt", "talk slowly"));
  /* wait until the model is writing */
  uint64_t end = qc_now_ms() + 15000;
  int writing = 0;
  while (!writing && qc_now_ms() < end) {
    json_t *m = lc_next(&c, 500);
    const char *msg = json_string_value(
        json_object_get(json_object_get(json_object_get(m, "params"), "value"), "message"));
    writing = msg && !strcmp(msg, "writing the answer");
    json_decref(m);
  }
  ASSERT_MSG(writing, "the model never started writing");
  uint64_t t0 = qc_now_ms();
  lc_notify(&c, "$/cancelRequest", json_pack("{s:I}", "id", (json_int_t)id));
  json_t *r = lc_wait(&c, id, 5000);
  ASSERT(r);
  ASSERT_EQ_INT(qd_err_code(r), -32800);
  ASSERT(qc_now_ms() - t0 < 2000);
  json_decref(r);
  size_t np = lc_count(&c, "$/progress");
  json_t *last = lc_find(&c, "$/progress", np - 1);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(json_object_get(last, "params"), "value"), "kind")), "end");
  /* the session stopped in the daemon: the server has nothing running */
  end = qc_now_ms() + 5000;
  int idle = 0;
  while (!idle && qc_now_ms() < end) {
    r = lc_call(&c, "qcoder/status", NULL);
    idle = json_integer_value(json_object_get(json_object_get(r, "result"), "running")) == 0;
    json_decref(r);
    if (!idle) usleep(50000);
  }
  ASSERT(idle);
  ASSERT_EQ_INT(lc_finish(&c, 1), 0);
  free(model);
  free(ws);
}

TEST(inline_completion_fim_prompt_and_cancel) {
  daemon_up();
  char *ws = workspace();
  qc_buf s;
  qc_buf_init(&s, 0);
  qc_buf_puts(&s, "[{\"raw\": true, \"text\": \"int y = util_add(1, 2);\\n  return y;\\n}\\n\\nint other(void) {\"},"
                  "{\"raw\": true, \"delay_ms\": 50, \"text\": \"");
  for (int i = 0; i < 100; i++) qc_buf_puts(&s, "slow();    ");
  qc_buf_puts(&s, "\"}]");
  char *model = script(ws, "fim", s.data);
  qc_buf_release(&s);
  const char *args[] = {"--socket", g_daemon.sock, "--model", model, NULL};
  lc c;
  lc_start(&c, args);
  lc_initialize(&c, ws, caps_full());
  char *main_c = qc_asprintf("%s/src/main.c", ws), *other = qc_asprintf("%s/src/other.c", ws);
  char *uri = qc_asprintf("file://%s", main_c);
  /* on disk main.c calls util_add: the repo map ranks util.h and util.c near it */
  ASSERT_EQ_INT(qct_write_file(main_c, "#include \"util.h\"\nint main(void) {\n  return util_add(0, 0);\n}\n"), 0);
  lc_open(&c, other, "int other_helper(void);\n");
  lc_open(&c, main_c, "#include \"util.h\"\nint main(void) {\n  \n}\n");
  /* wait for the repo map, so the neighbours are deterministic */
  uint64_t end = qc_now_ms() + 20000;
  int ready = 0;
  while (!ready && qc_now_ms() < end) {
    json_t *r = lc_call(&c, "qcoder/status", NULL);
    ready = !strcmp(json_string_value(json_object_get(json_object_get(r, "result"), "repoMap")), "ready");
    json_decref(r);
    if (!ready) usleep(50000);
  }
  ASSERT(ready);
  size_t p0 = prompts_count();
  json_t *r = lc_call(&c, "textDocument/inlineCompletion",
                      json_pack("{s:{s:s}, s:{s:i, s:i}, s:{s:i}}", "textDocument", "uri", uri, "position", "line", 2,
                                "character", 2, "context", "triggerKind", 1));
  json_t *items = json_object_get(json_object_get(r, "result"), "items");
  ASSERT_EQ_INT(json_array_size(items), 1);
  json_t *it = json_array_get(items, 0);
  /* cut at the end of the block: the next function is not offered */
  ASSERT_STR_EQ(json_string_value(json_object_get(it, "insertText")), "int y = util_add(1, 2);\n  return y;");
  json_t *rs = json_object_get(json_object_get(it, "range"), "start");
  ASSERT_EQ_INT(json_integer_value(json_object_get(rs, "line")), 2);
  ASSERT_EQ_INT(json_integer_value(json_object_get(rs, "character")), 2);
  json_decref(r);
  /* the prompt the model received: repository FIM with the open buffer and the repo map's
   * neighbours, then the prefix and suffix of the buffer */
  json_t *pr = prompts_since(p0);
  ASSERT_EQ_INT(json_array_size(pr), 1);
  ASSERT(json_is_true(json_object_get(json_array_get(pr, 0), "raw")));
  const char *fim = json_string_value(json_object_get(json_array_get(pr, 0), "prompt"));
  const char *base = strrchr(ws, '/') + 1;
  char want[512];
  snprintf(want, sizeof want, "<|repo_name|>%s\n", base);
  ASSERT(strncmp(fim, want, strlen(want)) == 0);
  /* the open buffer first, then the neighbours from disk */
  snprintf(want, sizeof want, "<|repo_name|>%s\n<|file_sep|>src/other.c\nint other_helper(void);\n<|file_sep|>src/util", base);
  ASSERT_CONTAINS(fim, want);
  ASSERT_CONTAINS(fim, "<|file_sep|>src/util.h\nint util_add(int a, int b);\n");
  ASSERT_CONTAINS(fim, "<|file_sep|>src/util.c\n#include \"util.h\"\nint util_add(int a, int b) { return a + b; }\n");
  ASSERT_CONTAINS(fim, "<|file_sep|>src/main.c\n<|fim_prefix|>#include \"util.h\"\nint main(void) {\n  "
                       "<|fim_suffix|>\n}\n<|fim_middle|>");
  json_decref(pr);
  /* a slow completion cancelled: -32800 at once */
  int64_t id = lc_request(&c, "textDocument/inlineCompletion",
                          json_pack("{s:{s:s}, s:{s:i, s:i}, s:{s:i}}", "textDocument", "uri", uri, "position", "line",
                                    2, "character", 2, "context", "triggerKind", 2));
  usleep(300000);
  uint64_t t0 = qc_now_ms();
  lc_notify(&c, "$/cancelRequest", json_pack("{s:I}", "id", (json_int_t)id));
  r = lc_wait(&c, id, 5000);
  ASSERT(r);
  ASSERT_EQ_INT(qd_err_code(r), -32800);
  ASSERT(qc_now_ms() - t0 < 1000);
  json_decref(r);
  ASSERT_EQ_INT(lc_finish(&c, 1), 0);
  free(main_c);
  free(other);
  free(uri);
  free(model);
  free(ws);
}

/* Last: the daemon every test used stops cleanly (status 0; under the sanitizers, no
 * report: the completion holds and sessions of the lsp connections were all released). */
/* Files the editor does not have open are read by `qcoder lsp` itself: a FIFO, a
 * directory, a binary file, one over LSP_MAX_UNOPENED_FILE_BYTES (4 MiB) and a missing
 * one each give a clean error at once (a FIFO used to block the loop thread forever). */
TEST(unopened_files_that_cannot_be_quoted_fail_cleanly) {
  char *ws = workspace();
  const char *args[] = {"--socket", "/dev/null/qcoder-test.sock", NULL};
  lc c;
  lc_start(&c, args);
  lc_initialize(&c, ws, json_object());
  char p[4400];
  snprintf(p, sizeof p, "%s/pipe", ws);
  ASSERT_EQ_INT(mkfifo(p, 0600), 0);
  snprintf(p, sizeof p, "%s/blob.bin", ws);
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ASSERT(fd >= 0 && write(fd, "ab\0\x01\xff" "cd\n", 8) == 8);
  close(fd);
  snprintf(p, sizeof p, "%s/huge.c", ws);
  fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ASSERT(fd >= 0 && ftruncate(fd, (off_t)(4u << 20) + 1) == 0);
  close(fd);
  static const struct {
    const char *name, *want;
  } cases[] = {
      {"pipe", "is not a regular file"},
      {"src", "is not a regular file"},
      {"blob.bin", "is not UTF-8 text"},
      {"huge.c", "over the 4194304-byte limit"},
      {"missing.c", "No such file"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *uri = qc_asprintf("file://%s/%s", ws, cases[i].name);
    uint64_t t0 = qc_now_ms();
    json_t *r = lc_call(&c, "workspace/executeCommand",
                        json_pack("{s:s, s:[{s:s, s:o}]}", "command", "qcoder.explain", "arguments", "uri", uri,
                                  "range", range_json(0, 0, 0, 1)));
    ASSERT_MSG(qc_now_ms() - t0 < 5000, "%s took %llu ms", cases[i].name, (unsigned long long)(qc_now_ms() - t0));
    ASSERT_EQ_INT(qd_err_code(r), -32803);
    ASSERT_MSG(qd_err_msg(r) && strstr(qd_err_msg(r), cases[i].want), "%s: %s", cases[i].name,
               qd_err_msg(r) ? qd_err_msg(r) : "(no message)");
    json_decref(r);
    free(uri);
  }
  /* a readable file gets past the read (and then fails on the missing daemon) */
  char *uri = qc_asprintf("file://%s/src/util.c", ws);
  json_t *r = lc_call(&c, "workspace/executeCommand",
                      json_pack("{s:s, s:[{s:s, s:o}]}", "command", "qcoder.explain", "arguments", "uri", uri,
                                "range", range_json(0, 0, 0, 1)));
  ASSERT_CONTAINS(qd_err_msg(r), "qcoder daemon");
  json_decref(r);
  free(uri);
  ASSERT_EQ_INT(lc_finish(&c, 1), 0);
  free(ws);
}

/* The agent reading a FIFO through the editor's fs (fs/read_text_file, served by
 * `qcoder lsp` from disk for files not open): an error the model sees, not a hang. */
TEST(agent_reading_a_fifo_through_the_lsp_gets_an_error) {
  daemon_up();
  char *ws = workspace();
  char p[4400];
  snprintf(p, sizeof p, "%s/pipe", ws);
  ASSERT_EQ_INT(mkfifo(p, 0600), 0);
  char *model = script(ws, "fifo", "[\"" "<tool_call>\\n<function=read_file>\\n<parameter=path>\\npipe\\n</parameter>\\n"
                                   "</function>\\n</tool_call>" "\", \"Could not read it.\"]");
  const char *args[] = {"--socket", g_daemon.sock, "--model", model, "--mode", "auto-edit", NULL};
  lc c;
  lc_start(&c, args);
  lc_initialize(&c, ws, caps_full());
  size_t p0 = prompts_count();
  json_t *r = lc_call(&c, "workspace/executeCommand",
                      json_pack("{s:s, s:[{s:s}]}", "command", "qcoder.run", "arguments", "prompt", "read the pipe"));
  json_t *res = json_object_get(r, "result");
  ASSERT_MSG(res, "run failed: %s", qd_err_msg(r) ? qd_err_msg(r) : "?");
  ASSERT_STR_EQ(json_string_value(json_object_get(res, "summary")), "Could not read it.");
  json_decref(r);
  /* the model's second call saw the read fail */
  json_t *pr = prompts_since(p0);
  ASSERT_EQ_INT(json_array_size(pr), 2);
  const char *second = json_string_value(json_object_get(json_array_get(pr, 1), "prompt"));
  ASSERT(second);
  ASSERT_MSG(strstr(second, "not a regular file") || strstr(second, "not a file"), "the tool result: %s",
             second + (strlen(second) > 600 ? strlen(second) - 600 : 0));
  json_decref(pr);
  ASSERT_EQ_INT(lc_finish(&c, 1), 0);
  free(model);
  free(ws);
}

TEST(the_daemon_stops_cleanly) {
  if (g_daemon.pid <= 0) SKIP("no daemon was started (a single test was run)");
  kill(g_daemon.pid, SIGTERM);
  int st = qd_wait_exit(g_daemon.pid, 15000);
  g_daemon.pid = 0;
  char *err = qct_read_file(g_daemon.err, NULL);
  ASSERT_MSG(st == 0, "the daemon exited with %d:\n%s", st, err ? err : "");
  ASSERT_MSG(!err || !strstr(err, "Sanitizer"), "sanitizer report:\n%s", err);
  free(err);
}

QC_TEST_MAIN
