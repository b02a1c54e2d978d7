/* test_server.c — daemon/server.c in-process: the API later layers build on.
 *
 * The server runs on its own thread over a real Unix socket; handlers here do what ACP
 * and the agent runner will do: answer from a worker thread through rpc_server_post,
 * stream notifications with rpc_server_post_notify, ask the client with
 * rpc_conn_request and answer once it replies, react to $/cancel_request, clean up in
 * close hooks. Shutdown is checked phase by phase: cancel hooks first, a stuck handler
 * answered for after the grace period, connections closed, the socket removed.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "daemon/server.h"
#include "tests/daemon/daemon_harness.h"

typedef struct fixture {
  rpc_server *srv;
  char *dir, *sock;
  pthread_t th;
  int rc;
} fixture;

static _Atomic int n_close_hooks, n_closed_callbacks, n_stuck_cancels, n_handlers, n_posts;
static rpc_req *stuck_req;
static pthread_t workers[64];
static _Atomic int n_workers;

/* ---- handlers ---------------------------------------------------------------------- */

typedef struct work {
  rpc_server *srv;
  rpc_req *req;
  uint64_t conn_id;
} work;

static void *worker_main(void *p) {
  work *w = p;
  usleep(20000); /* "compute" off the loop */
  for (int i = 1; i <= 3; i++)
    rpc_server_post_notify(w->srv, w->conn_id, "work/progress", json_pack("{s:i}", "step", i));
  rpc_server_post_reply(w->srv, w->req, json_pack("{s:b}", "done", 1));
  free(w);
  return NULL;
}

static void h_work(rpc_req *req, const json_t *params, void *user) {
  (void)params;
  work *w = malloc(sizeof *w);
  w->srv = user;
  w->req = req;
  w->conn_id = rpc_conn_id(rpc_req_conn(req));
  int i = atomic_fetch_add(&n_workers, 1);
  pthread_create(&workers[i], NULL, worker_main, w);
}

/* An agent-run-like worker that blocks on asking the client, then answers. */
typedef struct perm {
  rpc_server *srv;
  rpc_req *req;
  uint64_t conn_id;
  int timeout_ms;
} perm;

static _Atomic int last_call_rc;

static void *perm_worker(void *p) {
  perm *w = p;
  json_t *res = NULL;
  int code = 0;
  char why[256] = "";
  int rc = rpc_server_call(w->srv, w->conn_id, "session/request_permission",
                           json_pack("{s:s}", "sessionId", "s1"), w->timeout_ms, &res, &code, why, sizeof why);
  atomic_store(&last_call_rc, rc);
  if (rc == QC_OK) {
    rpc_server_post_reply(w->srv, w->req, json_pack("{s:O}", "outcome", json_object_get(res, "outcome")));
  } else {
    char msg[300];
    snprintf(msg, sizeof msg, "%s (%d): %s", rpc_strerror(rc), code, why);
    rpc_server_post_error(w->srv, w->req, -32001, msg);
  }
  json_decref(res);
  free(w);
  return NULL;
}

static void h_permission(rpc_req *req, const json_t *params, void *user) {
  perm *w = malloc(sizeof *w);
  w->srv = user;
  w->req = req;
  w->conn_id = rpc_conn_id(rpc_req_conn(req));
  w->timeout_ms = (int)json_integer_value(json_object_get(params, "timeout_ms"));
  if (!w->timeout_ms) w->timeout_ms = -1;
  /* from the loop thread a blocking call is refused, not a deadlock */
  json_t *res = NULL;
  if (rpc_server_call(w->srv, w->conn_id, "x", NULL, 10, &res, NULL, NULL, 0) != QC_EINVAL) {
    rpc_req_error(req, -32002, "rpc_server_call on the loop thread was not refused", NULL);
    free(w);
    return;
  }
  int i = atomic_fetch_add(&n_workers, 1);
  pthread_create(&workers[i], NULL, perm_worker, w);
}

static void on_close_hook(rpc_conn *c, void *user) {
  (void)c;
  (void)user;
  atomic_fetch_add(&n_close_hooks, 1);
}

static void on_client_answer(rpc_conn *c, const json_t *result, const rpc_error *err, void *user) {
  (void)c;
  rpc_req *req = user;
  if (result) {
    rpc_req_reply(req, json_pack("{s:O}", "answer", json_object_get(result, "a")));
  } else {
    if (err->code == RPC_CONNECTION_CLOSED) atomic_fetch_add(&n_closed_callbacks, 1);
    rpc_req_error(req, RPC_INTERNAL_ERROR, "the client did not answer", NULL);
  }
}

static void h_ask(rpc_req *req, const json_t *params, void *user) {
  (void)params;
  (void)user;
  rpc_conn *c = rpc_req_conn(req);
  rpc_conn_on_close(c, on_close_hook, NULL);
  int64_t id = rpc_conn_request(c, "client/question", json_pack("{s:s}", "q", "why"), on_client_answer, req);
  if (id < 0) rpc_req_error(req, RPC_INTERNAL_ERROR, rpc_strerror((int)id), NULL);
}

static void cancel_answers(rpc_req *req, void *user) {
  (void)user;
  rpc_req_error(req, RPC_REQUEST_CANCELLED, "cancelled", NULL);
}

static void h_wait_cancel(rpc_req *req, const json_t *params, void *user) {
  (void)params;
  (void)user;
  atomic_fetch_add(&n_handlers, 1);
  rpc_req_on_cancel(req, cancel_answers, NULL);
}

static void cancel_ignored(rpc_req *req, void *user) {
  (void)req;
  (void)user;
  atomic_fetch_add(&n_stuck_cancels, 1);
}

static void h_stuck(rpc_req *req, const json_t *params, void *user) {
  (void)params;
  (void)user;
  atomic_fetch_add(&n_handlers, 1);
  stuck_req = req;
  rpc_req_on_cancel(req, cancel_ignored, NULL);
}

static void h_echo(rpc_req *req, const json_t *params, void *user) {
  (void)user;
  rpc_req_reply(req, params ? json_deep_copy(params) : NULL);
}

/* How many of our requests this connection's peer has not answered. */
static void h_pending(rpc_req *req, const json_t *params, void *user) {
  (void)params;
  (void)user;
  rpc_req_reply(req, json_pack("{s:i}", "pending", rpc_conn_pending_outgoing(rpc_req_conn(req))));
}

static void do_stop(rpc_server *srv, void *user) {
  (void)user;
  rpc_server_stop(srv, "test asked");
}

static void count_post(rpc_server *srv, void *user) {
  (void)srv;
  (void)user;
  atomic_fetch_add(&n_posts, 1);
}

/* ---- fixture ----------------------------------------------------------------------- */

static void *server_thread(void *p) {
  fixture *f = p;
  f->rc = rpc_server_run(f->srv);
  return NULL;
}

static void fixture_start_opts(fixture *f, const rpc_server_opts *opts) {
  memset(f, 0, sizeof *f);
  f->dir = qct_tempdir("srv");
  f->sock = qc_asprintf("%s/s/test.sock", f->dir);
  rpc_server_opts o = *opts;
  f->srv = rpc_server_new(&o);
  ASSERT(f->srv);
  ASSERT_EQ_INT(rpc_register(f->srv, "work", h_work, f->srv), 0);
  ASSERT_EQ_INT(rpc_register(f->srv, "ask", h_ask, f->srv), 0);
  ASSERT_EQ_INT(rpc_register(f->srv, "wait_cancel", h_wait_cancel, f->srv), 0);
  ASSERT_EQ_INT(rpc_register(f->srv, "stuck", h_stuck, f->srv), 0);
  ASSERT_EQ_INT(rpc_register(f->srv, "echo", h_echo, f->srv), 0);
  ASSERT_EQ_INT(rpc_register(f->srv, "permission", h_permission, f->srv), 0);
  ASSERT_EQ_INT(rpc_register(f->srv, "pending", h_pending, f->srv), 0);
  ASSERT_EQ_INT(rpc_register(f->srv, "echo", h_echo, f->srv), RPC_EDUPLICATE);
  long holder = 0;
  char why[256] = "";
  ASSERT_MSG(rpc_server_listen(f->srv, f->sock, &holder, why, sizeof why) == 0, "listen: %s", why);
  /* a second server on the same socket in the same process is refused, naming us */
  rpc_server *other = rpc_server_new(&o);
  ASSERT_EQ_INT(rpc_server_listen(other, f->sock, &holder, why, sizeof why), RPC_ERUNNING);
  ASSERT_EQ_INT(holder, getpid());
  rpc_server_free(other);
  ASSERT(qd_path_exists(f->sock)); /* the refused one did not touch our socket */
  ASSERT_EQ_INT(pthread_create(&f->th, NULL, server_thread, f), 0);
}

static void fixture_start(fixture *f) {
  rpc_server_opts o = {0};
  fixture_start_opts(f, &o);
}

static void fixture_stop(fixture *f) {
  rpc_server_post(f->srv, do_stop, NULL);
  pthread_join(f->th, NULL);
  ASSERT_EQ_INT(f->rc, 0);
  ASSERT(!qd_path_exists(f->sock));
  for (int i = 0; i < n_workers; i++) pthread_join(workers[i], NULL);
  n_workers = 0;
  rpc_server_free(f->srv);
  free(f->sock);
  free(f->dir);
}

static void wait_for(_Atomic int *v, int want) {
  uint64_t end = qc_now_ms() + 10000;
  while (atomic_load(v) < want && qc_now_ms() < end) usleep(2000);
  ASSERT_MSG(atomic_load(v) >= want, "waited for %d, have %d", want, atomic_load(v));
}

/* ---- tests ------------------------------------------------------------------------- */

TEST(worker_thread_streams_notifications_then_answers) {
  fixture f;
  fixture_start(&f);
  int fd = qd_connect(f.sock);
  rpc_framer fr;
  rpc_framer_init(&fr, RPC_FRAMING_NDJSON, 0);
  qd_send_str(fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"work\"}\n");
  for (int i = 1; i <= 3; i++) {
    json_t *n = qd_read_msg(fd, &fr, 10000, NULL);
    ASSERT(n);
    ASSERT_STR_EQ(json_string_value(json_object_get(n, "method")), "work/progress");
    ASSERT_EQ_INT(json_integer_value(json_object_get(json_object_get(n, "params"), "step")), i);
    json_decref(n);
  }
  json_t *r = qd_read_msg(fd, &fr, 10000, NULL);
  ASSERT(r && json_is_true(json_object_get(json_object_get(r, "result"), "done")));
  json_decref(r);
  close(fd);
  rpc_framer_release(&fr);
  fixture_stop(&f);
}

TEST(server_asks_the_client_and_answers_with_its_reply) {
  fixture f;
  fixture_start(&f);
  n_close_hooks = n_closed_callbacks = 0;
  int fd = qd_connect(f.sock);
  rpc_framer fr;
  rpc_framer_init(&fr, RPC_FRAMING_NDJSON, 0);
  qd_send_str(fd, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ask\"}\n");
  json_t *q = qd_read_msg(fd, &fr, 10000, NULL);
  ASSERT(q);
  ASSERT_STR_EQ(json_string_value(json_object_get(q, "method")), "client/question");
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(q, "params"), "q")), "why");
  char *ans = qc_asprintf("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"a\":42}}\n",
                          (long long)json_integer_value(json_object_get(q, "id")));
  json_decref(q);
  qd_send_str(fd, ans);
  free(ans);
  json_t *r = qd_read_msg(fd, &fr, 10000, NULL);
  ASSERT(r);
  ASSERT_EQ_INT(json_integer_value(json_object_get(r, "id")), 2);
  ASSERT_EQ_INT(json_integer_value(json_object_get(json_object_get(r, "result"), "answer")), 42);
  json_decref(r);

  /* the peer cancels a request: the hook answers -32800 */
  qd_send_str(fd, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"wait_cancel\"}\n"
                  "{\"jsonrpc\":\"2.0\",\"method\":\"$/cancel_request\",\"params\":{\"requestId\":3}}\n");
  r = qd_read_msg(fd, &fr, 10000, NULL);
  ASSERT(r && json_integer_value(json_object_get(r, "id")) == 3);
  ASSERT_EQ_INT(qd_err_code(r), RPC_REQUEST_CANCELLED);
  json_decref(r);

  /* ask again and hang up without answering: the pending request fails with
   * "connection closed" and the close hooks run (one per ask) */
  qd_send_str(fd, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"ask\"}\n");
  q = qd_read_msg(fd, &fr, 10000, NULL);
  ASSERT(q);
  json_decref(q);
  close(fd);
  wait_for(&n_close_hooks, 2);
  wait_for(&n_closed_callbacks, 1);
  rpc_framer_release(&fr);
  fixture_stop(&f);
}

TEST(shutdown_cancels_waits_then_answers_for_stuck_handlers) {
  fixture f;
  fixture_start(&f);
  n_handlers = n_stuck_cancels = 0;
  stuck_req = NULL;
  int fd = qd_connect(f.sock);
  rpc_framer fr;
  rpc_framer_init(&fr, RPC_FRAMING_NDJSON, 0);
  qd_send_str(fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"wait_cancel\"}\n"
                  "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"stuck\"}\n");
  wait_for(&n_handlers, 2);
  uint64_t t0 = qc_now_ms();
  rpc_server_post(f.srv, do_stop, NULL);
  /* phase 1: cancel hooks run; the cancellable request answers at once */
  json_t *r = qd_read_msg(fd, &fr, 10000, NULL);
  ASSERT(r && json_integer_value(json_object_get(r, "id")) == 1);
  ASSERT_EQ_INT(qd_err_code(r), RPC_REQUEST_CANCELLED);
  ASSERT(qc_now_ms() - t0 < 1000);
  json_decref(r);
  /* phase 2: after the grace period the daemon answers for the stuck one */
  r = qd_read_msg(fd, &fr, 10000, NULL);
  ASSERT(r && json_integer_value(json_object_get(r, "id")) == 2);
  ASSERT_EQ_INT(qd_err_code(r), RPC_REQUEST_CANCELLED);
  ASSERT_CONTAINS(qd_err_msg(r), "shutting down");
  uint64_t waited = qc_now_ms() - t0;
  ASSERT_MSG(waited >= RPC_SHUTDOWN_GRACE_MS - 100, "answered after %llu ms", (unsigned long long)waited);
  json_decref(r);
  /* then the connection closes */
  int eof = 0;
  ASSERT(qd_read_msg(fd, &fr, 10000, &eof) == NULL && eof);
  pthread_join(f.th, NULL);
  ASSERT_EQ_INT(f.rc, 0);
  ASSERT_EQ_INT(n_stuck_cancels, 1);
  ASSERT(!qd_path_exists(f.sock));
  /* the lock is held until the server is freed (the daemon's teardown runs under it) */
  char *lock = qc_asprintf("%s.lock", f.sock);
  ASSERT(qd_path_exists(lock));
  /* the stuck handler finishes late: its answer is dropped, nothing breaks */
  rpc_req_reply(stuck_req, json_true());
  rpc_server_free(f.srv);
  ASSERT(!qd_path_exists(lock));
  free(lock);
  close(fd);
  rpc_framer_release(&fr);
  free(f.sock);
  free(f.dir);
}

TEST(worker_blocks_on_asking_the_client) {
  fixture f;
  fixture_start(&f);
  int fd = qd_connect(f.sock);
  rpc_framer fr;
  rpc_framer_init(&fr, RPC_FRAMING_NDJSON, 0);
  /* answered */
  qd_send_str(fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"permission\"}\n");
  json_t *q = qd_read_msg(fd, &fr, 10000, NULL);
  ASSERT(q);
  ASSERT_STR_EQ(json_string_value(json_object_get(q, "method")), "session/request_permission");
  char *ans = qc_asprintf("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"outcome\":{\"outcome\":\"selected\","
                          "\"optionId\":\"allow\"}}}\n",
                          (long long)json_integer_value(json_object_get(q, "id")));
  json_decref(q);
  qd_send_str(fd, ans);
  free(ans);
  json_t *r = qd_read_msg(fd, &fr, 10000, NULL);
  ASSERT(r && json_integer_value(json_object_get(r, "id")) == 1);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(json_object_get(r, "result"), "outcome"), "optionId")),
                "allow");
  json_decref(r);
  /* the client answers with an error */
  qd_send_str(fd, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"permission\"}\n");
  q = qd_read_msg(fd, &fr, 10000, NULL);
  ans = qc_asprintf("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"error\":{\"code\":-32000,\"message\":\"nope\"}}\n",
                    (long long)json_integer_value(json_object_get(q, "id")));
  json_decref(q);
  qd_send_str(fd, ans);
  free(ans);
  r = qd_read_msg(fd, &fr, 10000, NULL);
  ASSERT(r && qd_err_code(r) == -32001);
  ASSERT_CONTAINS(qd_err_msg(r), "(-32000): nope");
  json_decref(r);
  /* the client never answers: the worker times out and still answers */
  qd_send_str(fd, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"permission\",\"params\":{\"timeout_ms\":100}}\n");
  q = qd_read_msg(fd, &fr, 10000, NULL);
  ASSERT(q);
  json_decref(q);
  r = qd_read_msg(fd, &fr, 10000, NULL);
  ASSERT(r && json_integer_value(json_object_get(r, "id")) == 3);
  ASSERT_EQ_INT(atomic_load(&last_call_rc), RPC_ETIMEOUT);
  json_decref(r);
  /* the client hangs up while a worker waits with no time limit: it is released */
  atomic_store(&last_call_rc, 0);
  qd_send_str(fd, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"permission\"}\n");
  q = qd_read_msg(fd, &fr, 10000, NULL);
  ASSERT(q);
  json_decref(q);
  close(fd);
  uint64_t t0 = qc_now_ms();
  while (atomic_load(&last_call_rc) == 0 && qc_now_ms() - t0 < 10000) usleep(2000);
  ASSERT_EQ_INT(atomic_load(&last_call_rc), RPC_ECLOSED);
  rpc_framer_release(&fr);
  fixture_stop(&f);
}

static int pending_outgoing(int fd, rpc_framer *fr) {
  json_t *r = qd_call_line(fd, fr, "{\"jsonrpc\":\"2.0\",\"id\":\"p\",\"method\":\"pending\"}");
  ASSERT_MSG(r && json_is_string(json_object_get(r, "id")), "no answer to 'pending'");
  int n = (int)json_integer_value(json_object_get(json_object_get(r, "result"), "pending"));
  json_decref(r);
  return n;
}

TEST(timed_out_call_is_forgotten_and_its_late_answer_dropped) {
  fixture f;
  fixture_start(&f);
  int fd = qd_connect(f.sock);
  rpc_framer fr;
  rpc_framer_init(&fr, RPC_FRAMING_NDJSON, 0);
  /* the worker asks and gives up after 100 ms */
  qd_send_str(fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"permission\",\"params\":{\"timeout_ms\":100}}\n");
  json_t *q = qd_read_msg(fd, &fr, 10000, NULL);
  ASSERT(q);
  json_int_t late_id = json_integer_value(json_object_get(q, "id"));
  json_decref(q);
  json_t *r = qd_read_msg(fd, &fr, 10000, NULL);
  ASSERT(r && json_integer_value(json_object_get(r, "id")) == 1);
  ASSERT_EQ_INT(atomic_load(&last_call_rc), RPC_ETIMEOUT);
  json_decref(r);
  /* the request no longer holds a pending slot (the abandon runs on the loop right
   * after the worker gives up; allow it a moment) */
  int pending = -1;
  for (int i = 0; i < 500 && (pending = pending_outgoing(fd, &fr)) != 0; i++) usleep(2000);
  ASSERT_EQ_INT(pending, 0);
  /* a new question is asked; the late answer to the old one comes first and must be
   * dropped, not taken for the new one's */
  qd_send_str(fd, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"permission\"}\n");
  q = qd_read_msg(fd, &fr, 10000, NULL);
  ASSERT(q);
  json_int_t new_id = json_integer_value(json_object_get(q, "id"));
  ASSERT(new_id != late_id);
  json_decref(q);
  char *late = qc_asprintf("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"outcome\":{\"outcome\":\"selected\","
                           "\"optionId\":\"late\"}}}\n",
                           (long long)late_id);
  qd_send_str(fd, late);
  free(late);
  char *ans = qc_asprintf("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"outcome\":{\"outcome\":\"selected\","
                          "\"optionId\":\"fresh\"}}}\n",
                          (long long)new_id);
  qd_send_str(fd, ans);
  free(ans);
  r = qd_read_msg(fd, &fr, 10000, NULL);
  ASSERT(r && json_integer_value(json_object_get(r, "id")) == 2);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(json_object_get(r, "result"), "outcome"), "optionId")),
                "fresh");
  json_decref(r);
  ASSERT_EQ_INT(pending_outgoing(fd, &fr), 0);
  close(fd);
  rpc_framer_release(&fr);
  fixture_stop(&f);
}

/* ms until the peer closes fd (EOF), or -1 if it is still open after wait_ms. */
static int ms_until_eof(int fd, rpc_framer *fr, int wait_ms) {
  uint64_t t0 = qc_now_ms();
  int eof = 0;
  json_t *m = qd_read_msg(fd, fr, wait_ms, &eof);
  json_decref(m);
  return eof ? (int)(qc_now_ms() - t0) : -1;
}

TEST(connections_that_never_speak_are_closed_after_the_first_message_limit) {
  fixture f;
  rpc_server_opts o = {.first_message_timeout_ms = 300};
  fixture_start_opts(&f, &o);
  rpc_framer f_silent, f_partial, f_spoke;
  rpc_framer_init(&f_silent, RPC_FRAMING_NDJSON, 0);
  rpc_framer_init(&f_partial, RPC_FRAMING_NDJSON, 0);
  rpc_framer_init(&f_spoke, RPC_FRAMING_NDJSON, 0);
  uint64_t t0 = qc_now_ms();
  int silent = qd_connect(f.sock), partial = qd_connect(f.sock), spoke = qd_connect(f.sock);
  ASSERT(silent >= 0 && partial >= 0 && spoke >= 0);
  /* half a message is not a message */
  qd_send_str(partial, "{\"jsonrpc\":\"2.0\",\"id\":1,");
  /* one message, then silence for longer than the limit */
  json_t *r = qd_call_line(spoke, &f_spoke, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":[1]}");
  ASSERT(r && json_object_get(r, "result"));
  json_decref(r);
  ASSERT(ms_until_eof(silent, &f_silent, 10000) >= 0);
  ASSERT(ms_until_eof(partial, &f_partial, 10000) >= 0);
  uint64_t waited = qc_now_ms() - t0;
  ASSERT_MSG(waited >= 250, "closed after %llu ms, before the limit", (unsigned long long)waited);
  /* the one that spoke stays, idle past the limit, and is still served */
  ASSERT_EQ_INT(ms_until_eof(spoke, &f_spoke, 600), -1);
  r = qd_call_line(spoke, &f_spoke, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"echo\",\"params\":[2]}");
  ASSERT(r && json_integer_value(json_array_get(json_object_get(r, "result"), 0)) == 2);
  json_decref(r);
  close(silent);
  close(partial);
  close(spoke);
  rpc_framer_release(&f_silent);
  rpc_framer_release(&f_partial);
  rpc_framer_release(&f_spoke);
  fixture_stop(&f);
}

TEST(first_message_limit_can_be_turned_off) {
  fixture f;
  rpc_server_opts o = {.first_message_timeout_ms = -1};
  fixture_start_opts(&f, &o);
  rpc_framer fr;
  rpc_framer_init(&fr, RPC_FRAMING_NDJSON, 0);
  int fd = qd_connect(f.sock);
  ASSERT_EQ_INT(ms_until_eof(fd, &fr, 500), -1);
  json_t *r = qd_call_line(fd, &fr, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":[1]}");
  ASSERT(r && json_object_get(r, "result"));
  json_decref(r);
  close(fd);
  rpc_framer_release(&fr);
  fixture_stop(&f);
}

typedef struct poster {
  rpc_server *srv;
  int n;
} poster;

static void *post_many(void *p) {
  poster *ps = p;
  for (int i = 0; i < ps->n; i++) rpc_server_post(ps->srv, count_post, NULL);
  return NULL;
}

TEST(posts_from_many_threads_all_run) {
  fixture f;
  fixture_start(&f);
  n_posts = 0;
  pthread_t th[8];
  poster ps = {f.srv, 2000};
  for (int i = 0; i < 8; i++) pthread_create(&th[i], NULL, post_many, &ps);
  for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
  wait_for(&n_posts, 8 * 2000);
  fixture_stop(&f);
  ASSERT_EQ_INT(n_posts, 8 * 2000);
}

static _Atomic int n_adopted_answers;
static rpc_conn *adopted;
static void on_adopted_answer(rpc_conn *c, const json_t *result, const rpc_error *err, void *user) {
  (void)c;
  (void)user;
  if (result && json_is_true(json_object_get(result, "pong"))) atomic_fetch_add(&n_adopted_answers, 1);
  (void)err;
}
static void ask_adopted(rpc_server *srv, void *user) {
  (void)srv;
  (void)user;
  rpc_conn_request(adopted, "_qcoder/ping", NULL, on_adopted_answer, NULL);
}

static void adopt_now(rpc_server *srv, void *user) {
  int fd = *(int *)user;
  adopted = rpc_server_adopt_fd(srv, fd, RPC_FRAMING_NDJSON);
  if (adopted) ask_adopted(srv, NULL);
}

TEST(adopted_fd_works_in_both_directions) {
  /* how `qcoder acp`/`qcoder lsp` will hold their connection to the daemon */
  fixture f;
  fixture_start(&f);
  int sv[2];
  ASSERT_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  /* adopt from the loop thread */
  typedef struct { int fd; } adopt_arg;
  static adopt_arg arg;
  arg.fd = sv[0];
  adopted = NULL;
  n_adopted_answers = 0;
  rpc_server_post(f.srv, adopt_now, &arg);
  rpc_framer fr;
  rpc_framer_init(&fr, RPC_FRAMING_NDJSON, 0);
  /* our side asks the peer (the "daemon" here is the test) */
  json_t *q = qd_read_msg(sv[1], &fr, 10000, NULL);
  ASSERT(q);
  ASSERT_STR_EQ(json_string_value(json_object_get(q, "method")), "_qcoder/ping");
  char *ans = qc_asprintf("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"pong\":true}}\n",
                          (long long)json_integer_value(json_object_get(q, "id")));
  qd_send_str(sv[1], ans);
  free(ans);
  json_decref(q);
  wait_for(&n_adopted_answers, 1);
  /* and the peer may call our methods on the same connection */
  json_t *r = qd_call_line(sv[1], &fr, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"echo\",\"params\":[1]}");
  ASSERT(r && json_integer_value(json_array_get(json_object_get(r, "result"), 0)) == 1);
  json_decref(r);
  close(sv[1]);
  rpc_framer_release(&fr);
  fixture_stop(&f);
}


QC_TEST_MAIN
