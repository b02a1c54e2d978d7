/* test_rpc_conn.c — the dispatch core of daemon/jsonrpc.c over a memory transport.
 *
 * What later layers rely on: handlers answer now or later; the peer's cancel reaches
 * the request's hook while the request is still answered; the daemon's own requests
 * complete exactly once (with the answer, or "closed"); close hooks run once; framing
 * errors answer with id null and close; replies use the peer's framing.
 */
#include "daemon/jsonrpc.h"
#include "tests/test.h"

/* ---- memory transport -------------------------------------------------------------- */

typedef struct mem_io {
  qc_buf out;        /* everything written */
  int close_calls;
  int closed_flush;  /* flush flag of the first close */
  int fail_writes;
  rpc_conn *conn;
  int sync_close;    /* report io_closed from inside close() */
} mem_io;

static int mem_write(void *io, const char *data, size_t len) {
  mem_io *m = io;
  if (m->fail_writes) return -1;
  return qc_buf_append(&m->out, data, len);
}

static void mem_close(void *io, int flush) {
  mem_io *m = io;
  if (m->close_calls++ == 0) m->closed_flush = flush;
  if (m->sync_close && m->close_calls == 1) rpc_conn_io_closed(m->conn);
}

static const rpc_conn_ops mem_ops = {mem_write, mem_close};

static rpc_conn *mem_conn(mem_io *m, rpc_methods *methods, rpc_framing framing) {
  memset(m, 0, sizeof *m);
  qc_buf_init(&m->out, 0);
  rpc_conn_config cfg = {methods, &mem_ops, m, NULL, framing, 0};
  m->conn = rpc_conn_new(&cfg);
  return m->conn;
}

/* Take the messages written so far, decoded (array of json, caller frees). */
static json_t *mem_take(mem_io *m) {
  json_t *arr = json_array();
  rpc_framer f;
  rpc_framer_init(&f, RPC_FRAMING_DETECT, 0);
  rpc_framer_feed(&f, m->out.data, m->out.len);
  for (;;) {
    const char *s;
    size_t len;
    int rc = rpc_framer_next(&f, &s, &len);
    if (rc <= 0) break;
    json_t *j = json_loadb(s, len, 0, NULL);
    if (j) json_array_append_new(arr, j);
  }
  rpc_framer_release(&f);
  qc_buf_reset(&m->out);
  return arr;
}

static void mem_finish(mem_io *m) {
  if (!m->sync_close || m->close_calls == 0) {
    rpc_conn_close(m->conn, 0);
    if (!m->sync_close) rpc_conn_io_closed(m->conn);
  }
  qc_buf_release(&m->out);
}

static void send_line(rpc_conn *c, const char *s) {
  rpc_conn_input(c, s, strlen(s));
  rpc_conn_input(c, "\n", 1);
}

static long long err_code(const json_t *msg) {
  return json_integer_value(json_object_get(json_object_get(msg, "error"), "code"));
}

/* ---- handlers ---------------------------------------------------------------------- */

static void h_echo(rpc_req *req, const json_t *params, void *user) {
  (void)user;
  rpc_req_reply(req, params ? json_deep_copy(params) : NULL);
}

static void h_big(rpc_req *req, const json_t *params, void *user) {
  (void)params;
  (void)user;
  char s[1000];
  memset(s, 'a', sizeof s - 1);
  s[sizeof s - 1] = '\0';
  rpc_req_reply(req, json_string(s));
}

static rpc_req *g_held[16];
static int g_nheld;
static void h_defer(rpc_req *req, const json_t *params, void *user) {
  (void)params;
  (void)user;
  g_held[g_nheld++] = req;
}

static int g_cancels;
static void on_cancel_answer(rpc_req *req, void *user) {
  (void)user;
  g_cancels++;
  rpc_req_error(req, RPC_REQUEST_CANCELLED, "cancelled", NULL);
}
static void on_cancel_count(rpc_req *req, void *user) {
  (void)req;
  (void)user;
  g_cancels++;
}
static void h_cancellable(rpc_req *req, const json_t *params, void *user) {
  (void)params;
  (void)user;
  rpc_req_on_cancel(req, on_cancel_answer, NULL);
}

static void h_close_me(rpc_req *req, const json_t *params, void *user) {
  (void)params;
  (void)user;
  rpc_req_reply(req, json_true());
  rpc_conn_close(rpc_req_conn(req), 1);
}

static int g_notes;
static void n_count(rpc_conn *c, const json_t *params, void *user) {
  (void)c;
  (void)params;
  (void)user;
  g_notes++;
}

static rpc_methods *test_methods(void) {
  rpc_methods *m = rpc_methods_new();
  rpc_methods_add_request(m, "echo", h_echo, NULL);
  rpc_methods_add_request(m, "defer", h_defer, NULL);
  rpc_methods_add_request(m, "cancellable", h_cancellable, NULL);
  rpc_methods_add_request(m, "close_me", h_close_me, NULL);
  rpc_methods_add_request(m, "big", h_big, NULL);
  rpc_methods_add_notification(m, "note", n_count, NULL);
  g_nheld = 0;
  g_cancels = 0;
  g_notes = 0;
  return m;
}

/* ---- tests ------------------------------------------------------------------------- */

TEST(duplicate_registration_is_refused) {
  rpc_methods *m = test_methods();
  ASSERT_EQ_INT(rpc_methods_add_request(m, "echo", h_echo, NULL), RPC_EDUPLICATE);
  ASSERT_EQ_INT(rpc_methods_add_notification(m, "note", n_count, NULL), RPC_EDUPLICATE);
  ASSERT_EQ_INT(rpc_methods_add_notification(m, "echo", n_count, NULL), 0); /* other kind */
  rpc_methods_free(m);
}

TEST(request_reply_and_unknown_method) {
  rpc_methods *m = test_methods();
  mem_io io;
  rpc_conn *c = mem_conn(&io, m, RPC_FRAMING_DETECT);
  send_line(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":{\"a\":[1,2]}}");
  send_line(c, "{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"method\":\"nope\"}");
  send_line(c, "{\"jsonrpc\":\"2.0\",\"method\":\"unknown/notification\"}");
  send_line(c, "{\"jsonrpc\":\"2.0\",\"method\":\"note\"}");
  json_t *out = mem_take(&io);
  ASSERT_EQ_INT(json_array_size(out), 2);
  json_t *r0 = json_array_get(out, 0), *r1 = json_array_get(out, 1);
  ASSERT_EQ_INT(json_integer_value(json_object_get(r0, "id")), 1);
  ASSERT_EQ_INT(json_integer_value(json_array_get(json_object_get(json_object_get(r0, "result"), "a"), 1)), 2);
  ASSERT_STR_EQ(json_string_value(json_object_get(r1, "id")), "s");
  ASSERT_EQ_INT(err_code(r1), RPC_METHOD_NOT_FOUND);
  ASSERT_CONTAINS(json_string_value(json_object_get(json_object_get(r1, "error"), "message")), "nope");
  ASSERT_EQ_INT(g_notes, 1);
  ASSERT_EQ_INT(rpc_conn_framing(c), RPC_FRAMING_NDJSON);
  json_decref(out);
  mem_finish(&io);
  rpc_methods_free(m);
}

TEST(reply_uses_the_peers_framing) {
  rpc_methods *m = test_methods();
  mem_io io;
  rpc_conn *c = mem_conn(&io, m, RPC_FRAMING_DETECT);
  const char *body = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\"}";
  char *msg = qc_asprintf("Content-Length: %zu\r\n\r\n%s", strlen(body), body);
  rpc_conn_input(c, msg, strlen(msg));
  ASSERT(qc_str_has_prefix(io.out.data, "Content-Length: "));
  json_t *out = mem_take(&io);
  ASSERT_EQ_INT(json_array_size(out), 1);
  ASSERT(json_is_null(json_object_get(json_array_get(out, 0), "result")));
  json_decref(out);
  free(msg);
  mem_finish(&io);
  rpc_methods_free(m);
}

TEST(bad_messages_are_answered_and_the_connection_lives) {
  rpc_methods *m = test_methods();
  mem_io io;
  rpc_conn *c = mem_conn(&io, m, RPC_FRAMING_DETECT);
  send_line(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\"}");
  send_line(c, "this is garbage");
  send_line(c, "[{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"echo\"}]");
  send_line(c, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"\xff\"}");
  send_line(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":5}"); /* response to nothing: ignored */
  send_line(c, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"echo\"}");
  json_t *out = mem_take(&io);
  ASSERT_EQ_INT(json_array_size(out), 5);
  ASSERT_EQ_INT(err_code(json_array_get(out, 1)), RPC_PARSE_ERROR);
  ASSERT(json_is_null(json_object_get(json_array_get(out, 1), "id")));
  ASSERT_EQ_INT(err_code(json_array_get(out, 2)), RPC_INVALID_REQUEST);
  ASSERT_EQ_INT(err_code(json_array_get(out, 3)), RPC_PARSE_ERROR);
  ASSERT_EQ_INT(json_integer_value(json_object_get(json_array_get(out, 4), "id")), 4);
  ASSERT(rpc_conn_is_open(c));
  ASSERT_EQ_INT(io.close_calls, 0);
  json_decref(out);
  mem_finish(&io);
  rpc_methods_free(m);
}

TEST(framing_error_answers_null_id_and_closes_after_flush) {
  rpc_methods *m = test_methods();
  mem_io io;
  rpc_conn *c = mem_conn(&io, m, RPC_FRAMING_DETECT);
  const char *s = "Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}";
  rpc_conn_input(c, s, strlen(s));
  json_t *out = mem_take(&io);
  ASSERT_EQ_INT(json_array_size(out), 1);
  ASSERT(json_is_null(json_object_get(json_array_get(out, 0), "id")));
  ASSERT_EQ_INT(err_code(json_array_get(out, 0)), RPC_PARSE_ERROR);
  ASSERT_EQ_INT(io.close_calls, 1);
  ASSERT_EQ_INT(io.closed_flush, 1);
  ASSERT(!rpc_conn_is_open(c));
  /* further input is ignored */
  send_line(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\"}");
  ASSERT_EQ_INT(io.out.len, 0);
  json_decref(out);
  rpc_conn_io_closed(c);
  qc_buf_release(&io.out);
  rpc_methods_free(m);
}

TEST(oversize_answers_invalid_request_and_closes) {
  rpc_methods *m = test_methods();
  mem_io io;
  memset(&io, 0, sizeof io);
  qc_buf_init(&io.out, 0);
  rpc_conn_config cfg = {m, &mem_ops, &io, NULL, RPC_FRAMING_DETECT, 64};
  rpc_conn *c = io.conn = rpc_conn_new(&cfg);
  char big[200];
  memset(big, 'x', sizeof big);
  big[0] = '{';
  rpc_conn_input(c, big, sizeof big);
  json_t *out = mem_take(&io);
  ASSERT_EQ_INT(json_array_size(out), 1);
  ASSERT_EQ_INT(err_code(json_array_get(out, 0)), RPC_INVALID_REQUEST);
  ASSERT_CONTAINS(json_string_value(json_object_get(json_object_get(json_array_get(out, 0), "error"), "message")),
                  "exceeds");
  ASSERT(!rpc_conn_is_open(c));
  json_decref(out);
  rpc_conn_io_closed(c);
  qc_buf_release(&io.out);
  rpc_methods_free(m);
}

TEST(result_over_the_limit_becomes_an_error) {
  rpc_methods *m = test_methods();
  mem_io io;
  memset(&io, 0, sizeof io);
  qc_buf_init(&io.out, 0);
  rpc_conn_config cfg = {m, &mem_ops, &io, NULL, RPC_FRAMING_DETECT, 120};
  rpc_conn *c = io.conn = rpc_conn_new(&cfg);
  send_line(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"big\"}");
  json_t *out = mem_take(&io);
  ASSERT_EQ_INT(json_array_size(out), 1);
  ASSERT_EQ_INT(err_code(json_array_get(out, 0)), RPC_INTERNAL_ERROR);
  ASSERT_EQ_INT(json_integer_value(json_object_get(json_array_get(out, 0), "id")), 1);
  json_decref(out);
  mem_finish(&io);
  rpc_methods_free(m);
}

TEST(deferred_reply_later) {
  rpc_methods *m = test_methods();
  mem_io io;
  rpc_conn *c = mem_conn(&io, m, RPC_FRAMING_DETECT);
  send_line(c, "{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"defer\"}");
  send_line(c, "{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"defer\"}");
  ASSERT_EQ_INT(g_nheld, 2);
  ASSERT_EQ_INT(rpc_conn_inflight(c), 2);
  ASSERT_EQ_INT(io.out.len, 0);
  ASSERT_STR_EQ(rpc_req_method(g_held[1]), "defer");
  rpc_req_reply(g_held[1], json_string("second"));
  rpc_req_errorf(g_held[0], -32001, "first failed: %d", 42);
  json_t *out = mem_take(&io);
  ASSERT_EQ_INT(json_array_size(out), 2);
  ASSERT_EQ_INT(json_integer_value(json_object_get(json_array_get(out, 0), "id")), 11);
  ASSERT_EQ_INT(err_code(json_array_get(out, 1)), -32001);
  ASSERT_EQ_INT(rpc_conn_inflight(c), 0);
  json_decref(out);
  mem_finish(&io);
  rpc_methods_free(m);
}

TEST(cancel_request_acp_and_lsp_reach_the_hook) {
  rpc_methods *m = test_methods();
  mem_io io;
  rpc_conn *c = mem_conn(&io, m, RPC_FRAMING_DETECT);
  send_line(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"cancellable\"}");
  send_line(c, "{\"jsonrpc\":\"2.0\",\"id\":\"two\",\"method\":\"cancellable\"}");
  send_line(c, "{\"jsonrpc\":\"2.0\",\"method\":\"$/cancel_request\",\"params\":{\"requestId\":99}}");
  ASSERT_EQ_INT(g_cancels, 0);
  send_line(c, "{\"jsonrpc\":\"2.0\",\"method\":\"$/cancel_request\",\"params\":{\"requestId\":\"two\"}}");
  ASSERT_EQ_INT(g_cancels, 1);
  send_line(c, "{\"jsonrpc\":\"2.0\",\"method\":\"$/cancelRequest\",\"params\":{\"id\":1}}");
  ASSERT_EQ_INT(g_cancels, 2);
  /* a second cancel of the same (now answered) request does nothing */
  send_line(c, "{\"jsonrpc\":\"2.0\",\"method\":\"$/cancelRequest\",\"params\":{\"id\":1}}");
  send_line(c, "{\"jsonrpc\":\"2.0\",\"method\":\"$/cancelRequest\"}");
  ASSERT_EQ_INT(g_cancels, 2);
  json_t *out = mem_take(&io);
  ASSERT_EQ_INT(json_array_size(out), 2);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(out, 0), "id")), "two");
  ASSERT_EQ_INT(err_code(json_array_get(out, 0)), RPC_REQUEST_CANCELLED);
  ASSERT_EQ_INT(json_integer_value(json_object_get(json_array_get(out, 1), "id")), 1);
  ASSERT_EQ_INT(err_code(json_array_get(out, 1)), RPC_REQUEST_CANCELLED);
  json_decref(out);
  mem_finish(&io);
  rpc_methods_free(m);
}

TEST(cancel_before_hook_runs_hook_when_set) {
  rpc_methods *m = test_methods();
  mem_io io;
  rpc_conn *c = mem_conn(&io, m, RPC_FRAMING_DETECT);
  send_line(c, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"defer\"}");
  send_line(c, "{\"jsonrpc\":\"2.0\",\"method\":\"$/cancel_request\",\"params\":{\"requestId\":5}}");
  ASSERT(rpc_req_cancelled(g_held[0]));
  rpc_req_on_cancel(g_held[0], on_cancel_count, NULL);
  ASSERT_EQ_INT(g_cancels, 1);
  rpc_req_reply(g_held[0], json_pack("{s:s}", "stopReason", "cancelled"));
  json_t *out = mem_take(&io);
  ASSERT_EQ_INT(json_array_size(out), 1);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(json_array_get(out, 0), "result"), "stopReason")),
                "cancelled");
  json_decref(out);
  mem_finish(&io);
  rpc_methods_free(m);
}

static int g_resp_calls;
static long long g_resp_code;
static char g_resp_text[64];
static void on_response(rpc_conn *c, const json_t *result, const rpc_error *error, void *user) {
  (void)c;
  g_resp_calls++;
  ASSERT((result == NULL) != (error == NULL));
  g_resp_code = error ? error->code : 0;
  snprintf(g_resp_text, sizeof g_resp_text, "%s", result ? json_string_value(json_object_get(result, "v")) : error->message);
  (void)user;
}

TEST(outgoing_requests_match_responses) {
  rpc_methods *m = test_methods();
  mem_io io;
  rpc_conn *c = mem_conn(&io, m, RPC_FRAMING_DETECT);
  g_resp_calls = 0;
  int64_t a = rpc_conn_request(c, "session/request_permission", json_pack("{s:s}", "sessionId", "s1"), on_response, NULL);
  int64_t b = rpc_conn_request(c, "fs/read_text_file", NULL, on_response, NULL);
  ASSERT(a == 1 && b == 2);
  json_t *out = mem_take(&io);
  ASSERT_EQ_INT(json_array_size(out), 2);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(out, 0), "method")), "session/request_permission");
  ASSERT_EQ_INT(json_integer_value(json_object_get(json_array_get(out, 1), "id")), 2);
  json_decref(out);
  /* answers arrive in any order, interleaved with a request from the peer */
  send_line(c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-32002,\"message\":\"not found\"}}");
  ASSERT_EQ_INT(g_resp_calls, 1);
  ASSERT_EQ_INT(g_resp_code, -32002);
  ASSERT_STR_EQ(g_resp_text, "not found");
  send_line(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\"}"); /* same id, other direction */
  send_line(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"v\":\"yes\"}}");
  ASSERT_EQ_INT(g_resp_calls, 2);
  ASSERT_STR_EQ(g_resp_text, "yes");
  send_line(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"v\":\"again\"}}"); /* duplicate: ignored */
  ASSERT_EQ_INT(g_resp_calls, 2);
  out = mem_take(&io);
  ASSERT_EQ_INT(json_array_size(out), 1); /* just the echo reply */
  json_decref(out);
  mem_finish(&io);
  rpc_methods_free(m);
}

TEST(cancel_outgoing_uses_the_framing_dialect) {
  rpc_methods *m = test_methods();
  mem_io io;
  rpc_conn *c = mem_conn(&io, m, RPC_FRAMING_LSP);
  g_resp_calls = 0;
  int64_t id = rpc_conn_request(c, "workspace/applyEdit", NULL, on_response, NULL);
  ASSERT_EQ_INT(rpc_conn_cancel_request(c, id), 0);
  json_t *out = mem_take(&io);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(out, 1), "method")), "$/cancelRequest");
  ASSERT_EQ_INT(json_integer_value(json_object_get(json_object_get(json_array_get(out, 1), "params"), "id")), id);
  json_decref(out);
  mem_finish(&io);
  ASSERT_EQ_INT(g_resp_calls, 1); /* failed by the close */

  c = mem_conn(&io, m, RPC_FRAMING_NDJSON);
  id = rpc_conn_request(c, "x", NULL, on_response, NULL);
  rpc_conn_cancel_request(c, id);
  out = mem_take(&io);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(out, 1), "method")), "$/cancel_request");
  ASSERT_EQ_INT(json_integer_value(json_object_get(json_object_get(json_array_get(out, 1), "params"), "requestId")), id);
  json_decref(out);
  mem_finish(&io);
  rpc_methods_free(m);
}

static int g_hook_calls;
static void close_hook(rpc_conn *c, void *user) {
  (void)c;
  g_hook_calls += (int)(intptr_t)user;
  /* sending from a close hook is refused, not a crash */
  ASSERT_EQ_INT(rpc_conn_notify(c, "late", NULL), RPC_ECLOSED);
}

TEST(close_fails_pending_outgoing_cancels_and_runs_hooks_once) {
  rpc_methods *m = test_methods();
  mem_io io;
  rpc_conn *c = mem_conn(&io, m, RPC_FRAMING_DETECT);
  g_resp_calls = 0;
  g_hook_calls = 0;
  rpc_conn_request(c, "a", NULL, on_response, NULL);
  rpc_conn_request(c, "b", NULL, on_response, NULL);
  send_line(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"cancellable\"}");
  send_line(c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"defer\"}");
  rpc_conn_on_close(c, close_hook, (void *)(intptr_t)1);
  rpc_conn_on_close(c, close_hook, (void *)(intptr_t)100);
  rpc_conn_remove_close_hook(c, close_hook, (void *)(intptr_t)100);
  rpc_conn_on_close(c, close_hook, (void *)(intptr_t)10);
  rpc_conn_ref(c); /* like a session holding on to it */
  rpc_conn_close(c, 0);
  ASSERT_EQ_INT(g_resp_calls, 2);
  ASSERT_EQ_INT(g_resp_code, RPC_CONNECTION_CLOSED);
  ASSERT_EQ_INT(g_cancels, 1);
  ASSERT_EQ_INT(g_hook_calls, 11);
  rpc_conn_close(c, 0);
  ASSERT_EQ_INT(g_hook_calls, 11);
  /* after close: requests fail at once without calling back; hooks are refused */
  ASSERT_EQ_INT(rpc_conn_request(c, "c", NULL, on_response, NULL), RPC_ECLOSED);
  ASSERT_EQ_INT(g_resp_calls, 2);
  ASSERT_EQ_INT(rpc_conn_on_close(c, close_hook, NULL), RPC_ECLOSED);
  /* the deferred request can still be finished; its answer is dropped */
  size_t before = io.out.len;
  rpc_req_reply(g_held[0], json_true());
  ASSERT_EQ_INT(io.out.len, before);
  rpc_conn_io_closed(c);
  rpc_conn_unref(c);
  qc_buf_release(&io.out);
  rpc_methods_free(m);
}

TEST(pending_outgoing_limit) {
  rpc_methods *m = test_methods();
  mem_io io;
  rpc_conn *c = mem_conn(&io, m, RPC_FRAMING_DETECT);
  g_resp_calls = 0;
  for (int i = 0; i < RPC_MAX_PENDING_OUTGOING; i++) ASSERT(rpc_conn_request(c, "x", NULL, on_response, NULL) > 0);
  ASSERT_EQ_INT(rpc_conn_request(c, "x", json_object(), on_response, NULL), RPC_EBUSY);
  ASSERT_EQ_INT(g_resp_calls, 0);
  mem_finish(&io);
  ASSERT_EQ_INT(g_resp_calls, RPC_MAX_PENDING_OUTGOING);
  rpc_methods_free(m);
}

TEST(forgotten_request_frees_its_slot_and_drops_the_late_answer) {
  rpc_methods *m = test_methods();
  mem_io io;
  rpc_conn *c = mem_conn(&io, m, RPC_FRAMING_DETECT);
  g_resp_calls = 0;
  int64_t a = rpc_conn_request(c, "x", NULL, on_response, NULL);
  int64_t b = rpc_conn_request(c, "y", NULL, on_response, NULL);
  ASSERT_EQ_INT(rpc_conn_pending_outgoing(c), 2);
  ASSERT_EQ_INT(rpc_conn_forget_request(c, a), QC_OK);
  ASSERT_EQ_INT(rpc_conn_forget_request(c, a), QC_ENOENT); /* once */
  ASSERT_EQ_INT(rpc_conn_forget_request(c, 999), QC_ENOENT);
  ASSERT_EQ_INT(rpc_conn_pending_outgoing(c), 1);
  json_decref(mem_take(&io));
  /* the late answer reaches nobody and is not answered; b's answer still reaches b */
  char line[96];
  snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"v\":\"late\"}}", (long long)a);
  send_line(c, line);
  ASSERT_EQ_INT(g_resp_calls, 0);
  snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"v\":\"b\"}}", (long long)b);
  send_line(c, line);
  ASSERT_EQ_INT(g_resp_calls, 1);
  ASSERT_STR_EQ(g_resp_text, "b");
  ASSERT_EQ_INT(rpc_conn_pending_outgoing(c), 0);
  json_t *out = mem_take(&io);
  ASSERT_EQ_INT(json_array_size(out), 0);
  json_decref(out);
  /* a forgotten request is not failed again when the connection closes */
  rpc_conn_request(c, "z", NULL, on_response, NULL);
  int64_t d = rpc_conn_request(c, "w", NULL, on_response, NULL);
  ASSERT_EQ_INT(rpc_conn_forget_request(c, d), QC_OK);
  mem_finish(&io);
  ASSERT_EQ_INT(g_resp_calls, 2); /* z failed as closed; w never called */
  rpc_methods_free(m);
}

TEST(inflight_limit) {
  rpc_methods *m = rpc_methods_new();
  static rpc_req *held[RPC_MAX_INFLIGHT_REQUESTS];
  int n = 0;
  mem_io io;
  rpc_conn *c = mem_conn(&io, m, RPC_FRAMING_DETECT);
  rpc_methods_add_request(m, "defer", h_defer, NULL);
  for (int i = 0; i < RPC_MAX_INFLIGHT_REQUESTS + 1; i++) {
    g_nheld = 0;
    char line[80];
    snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"defer\"}", i);
    send_line(c, line);
    if (g_nheld) held[n++] = g_held[0];
  }
  ASSERT_EQ_INT(n, RPC_MAX_INFLIGHT_REQUESTS);
  json_t *out = mem_take(&io);
  ASSERT_EQ_INT(json_array_size(out), 1);
  ASSERT_CONTAINS(json_string_value(json_object_get(json_object_get(json_array_get(out, 0), "error"), "message")),
                  "too many requests");
  json_decref(out);
  for (int i = 0; i < n; i++) rpc_req_reply(held[i], NULL);
  ASSERT_EQ_INT(rpc_conn_inflight(c), 0);
  mem_finish(&io);
  rpc_methods_free(m);
}

TEST(fail_inflight_answers_once_and_drops_late_answers) {
  rpc_methods *m = test_methods();
  mem_io io;
  rpc_conn *c = mem_conn(&io, m, RPC_FRAMING_DETECT);
  send_line(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"defer\"}");
  rpc_conn_fail_inflight(c, RPC_REQUEST_CANCELLED, "the daemon is shutting down");
  rpc_conn_fail_inflight(c, RPC_REQUEST_CANCELLED, "again");
  rpc_req_reply(g_held[0], json_true());
  json_t *out = mem_take(&io);
  ASSERT_EQ_INT(json_array_size(out), 1);
  ASSERT_EQ_INT(err_code(json_array_get(out, 0)), RPC_REQUEST_CANCELLED);
  json_decref(out);
  mem_finish(&io);
  rpc_methods_free(m);
}

TEST(eof_cancels_open_work_and_closes_after_the_last_answer) {
  rpc_methods *m = test_methods();
  mem_io io;
  rpc_conn *c = mem_conn(&io, m, RPC_FRAMING_DETECT);
  send_line(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"defer\"}");
  rpc_req_on_cancel(g_held[0], on_cancel_count, NULL);
  /* the last line has no newline: it still counts */
  const char *last = "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"echo\"}";
  rpc_conn_input(c, last, strlen(last));
  rpc_conn_input_eof(c);
  ASSERT_EQ_INT(g_cancels, 1);
  ASSERT(rpc_conn_is_open(c));
  ASSERT_EQ_INT(io.close_calls, 0);
  rpc_req_error(g_held[0], RPC_REQUEST_CANCELLED, "cancelled", NULL);
  ASSERT(!rpc_conn_is_open(c));
  ASSERT_EQ_INT(io.close_calls, 1);
  ASSERT_EQ_INT(io.closed_flush, 1);
  json_t *out = mem_take(&io);
  ASSERT_EQ_INT(json_array_size(out), 2);
  json_decref(out);
  rpc_conn_io_closed(c);
  qc_buf_release(&io.out);
  rpc_methods_free(m);
}

TEST(eof_fails_our_pending_requests_so_waiting_handlers_finish) {
  /* the peer stopped sending: it can never answer what we asked */
  rpc_methods *m = test_methods();
  mem_io io;
  rpc_conn *c = mem_conn(&io, m, RPC_FRAMING_DETECT);
  g_resp_calls = 0;
  send_line(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\"}");
  ASSERT(rpc_conn_request(c, "session/request_permission", NULL, on_response, NULL) > 0);
  rpc_conn_input_eof(c);
  ASSERT_EQ_INT(g_resp_calls, 1);
  ASSERT_EQ_INT(g_resp_code, RPC_CONNECTION_CLOSED);
  ASSERT(!rpc_conn_is_open(c)); /* nothing open: closed after flushing */
  ASSERT_EQ_INT(io.closed_flush, 1);
  rpc_conn_io_closed(c);
  qc_buf_release(&io.out);
  rpc_methods_free(m);
}

TEST(handler_may_close_its_connection) {
  rpc_methods *m = test_methods();
  mem_io io;
  rpc_conn *c = mem_conn(&io, m, RPC_FRAMING_DETECT);
  io.sync_close = 1; /* the transport reports gone from inside close() */
  const char *two = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"close_me\"}\n"
                    "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"echo\"}\n";
  rpc_conn_ref(c);
  rpc_conn_input(c, two, strlen(two));
  json_t *out = mem_take(&io);
  ASSERT_EQ_INT(json_array_size(out), 1); /* the second message is not dispatched */
  ASSERT(!rpc_conn_is_open(c));
  json_decref(out);
  rpc_conn_unref(c);
  qc_buf_release(&io.out);
  rpc_methods_free(m);
}

TEST(write_failure_closes) {
  rpc_methods *m = test_methods();
  mem_io io;
  rpc_conn *c = mem_conn(&io, m, RPC_FRAMING_DETECT);
  io.fail_writes = 1;
  g_resp_calls = 0;
  ASSERT_EQ_INT(rpc_conn_request(c, "x", NULL, on_response, NULL), RPC_ECLOSED);
  ASSERT_EQ_INT(g_resp_calls, 0);
  ASSERT(!rpc_conn_is_open(c));
  rpc_conn_io_closed(c);
  qc_buf_release(&io.out);
  rpc_methods_free(m);
}

TEST(init_params_and_ids) {
  rpc_methods *m = test_methods();
  mem_io io1, io2;
  rpc_conn *a = mem_conn(&io1, m, RPC_FRAMING_DETECT);
  rpc_conn *b = mem_conn(&io2, m, RPC_FRAMING_DETECT);
  ASSERT(rpc_conn_id(a) > 0 && rpc_conn_id(b) != rpc_conn_id(a));
  ASSERT(rpc_conn_init_params(a) == NULL);
  json_t *p = json_pack("{s:i}", "protocolVersion", 1);
  rpc_conn_set_init_params(a, p);
  json_decref(p);
  ASSERT_EQ_INT(json_integer_value(json_object_get(rpc_conn_init_params(a), "protocolVersion")), 1);
  mem_finish(&io1);
  mem_finish(&io2);
  rpc_methods_free(m);
}

QC_TEST_MAIN
