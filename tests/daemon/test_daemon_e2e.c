/* test_daemon_e2e.c — the real `qcoder serve`, `status` and `stop` on temporary sockets.
 *
 * What a user and an editor rely on: the first methods answer in both framings; many
 * clients at once are all served; broken, hostile or stalled clients cost only their
 * own connection; one daemon per socket; stale sockets are replaced; SIGTERM and
 * `qcoder stop` leave no socket or lock behind and exit 0; `--stdio` keeps stdout clean.
 */
#include "tests/daemon/daemon_harness.h"

#define PING(id) "{\"jsonrpc\":\"2.0\",\"id\":" #id ",\"method\":\"_qcoder/ping\"}"

static void expect_pong(int fd, rpc_framer *f, int id) {
  char line[96];
  snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"_qcoder/ping\"}", id);
  json_t *r = qd_call_line(fd, f, line);
  ASSERT_MSG(r != NULL, "no answer to ping %d", id);
  ASSERT_EQ_INT(json_integer_value(json_object_get(r, "id")), id);
  ASSERT(json_is_true(json_object_get(json_object_get(r, "result"), "pong")));
  json_decref(r);
}

static int log_contains(const qd_daemon *d, const char *needle) {
  char *s = qct_read_file(d->log, NULL);
  int found = s && strstr(s, needle);
  free(s);
  return found;
}

TEST(initialize_ping_status_and_errors) {
  qd_daemon d;
  qd_init(&d, "e2e-init");
  ASSERT_MSG(qd_start(&d, NULL) == 0, "daemon did not start");
  struct stat st;
  ASSERT(stat(d.sock, &st) == 0 && S_ISSOCK(st.st_mode));
  ASSERT_EQ_INT(st.st_mode & 0777, 0600);
  char *dir = qc_asprintf("%s/run", d.dir);
  ASSERT(stat(dir, &st) == 0);
  ASSERT_EQ_INT(st.st_mode & 0777, 0700);
  free(dir);
  char *lock = qc_asprintf("%s.lock", d.sock);
  char *pidtxt = qct_read_file(lock, NULL);
  ASSERT(pidtxt && atoi(pidtxt) == d.pid);
  free(pidtxt);

  int fd = qd_connect(d.sock);
  ASSERT(fd >= 0);
  rpc_framer f;
  rpc_framer_init(&f, RPC_FRAMING_DETECT, 0);
  json_t *r = qd_call_line(fd, &f,
                           "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":1,"
                           "\"clientCapabilities\":{\"fs\":{\"readTextFile\":true,\"writeTextFile\":true},\"terminal\":true},"
                           "\"clientInfo\":{\"name\":\"acpx\",\"version\":\"0.19.1\"}}}");
  ASSERT(r);
  json_t *res = json_object_get(r, "result");
  ASSERT_EQ_INT(json_integer_value(json_object_get(res, "protocolVersion")), 1);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(res, "agentInfo"), "name")), "qcoder");
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(res, "agentInfo"), "version")), QCODER_VERSION);
  /* the ACP face (daemon/acp.c) is registered: session/load works */
  ASSERT(json_is_true(json_object_get(json_object_get(res, "agentCapabilities"), "loadSession")));
  ASSERT(json_is_array(json_object_get(res, "authMethods")) && json_array_size(json_object_get(res, "authMethods")) == 0);
  json_decref(r);
  /* a newer client gets our version; a broken one gets -32602 */
  r = qd_call_line(fd, &f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":7}}");
  ASSERT_EQ_INT(json_integer_value(json_object_get(json_object_get(r, "result"), "protocolVersion")), 1);
  json_decref(r);
  r = qd_call_line(fd, &f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"initialize\",\"params\":{}}");
  ASSERT_EQ_INT(qd_err_code(r), RPC_INVALID_PARAMS);
  json_decref(r);

  expect_pong(fd, &f, 3);

  r = qd_call_line(fd, &f, "{\"jsonrpc\":\"2.0\",\"id\":\"st\",\"method\":\"_qcoder/status\"}");
  res = json_object_get(r, "result");
  ASSERT_EQ_INT(json_integer_value(json_object_get(res, "pid")), d.pid);
  ASSERT_STR_EQ(json_string_value(json_object_get(res, "version")), QCODER_VERSION);
  ASSERT(json_integer_value(json_object_get(res, "uptime_s")) >= 0);
  ASSERT_EQ_INT(json_integer_value(json_object_get(res, "connections")), 1);
  ASSERT(json_is_null(json_object_get(res, "model")));
  ASSERT_STR_EQ(json_string_value(json_object_get(res, "socket")), d.sock);
  json_decref(r);

  r = qd_call_line(fd, &f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"session/nope\"}");
  ASSERT_EQ_INT(qd_err_code(r), RPC_METHOD_NOT_FOUND);
  json_decref(r);
  /* unknown notifications are ignored: the next answer is the ping's */
  ASSERT_EQ_INT(qd_send_str(fd, "{\"jsonrpc\":\"2.0\",\"method\":\"_zed.dev/whatever\",\"params\":{}}\n"), 0);
  expect_pong(fd, &f, 5);
  r = qd_call_line(fd, &f, "[" PING(6) "]");
  ASSERT_EQ_INT(qd_err_code(r), RPC_INVALID_REQUEST);
  ASSERT(json_is_null(json_object_get(r, "id")));
  json_decref(r);
  r = qd_call_line(fd, &f, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"_qcoder/p\xffng\"}");
  ASSERT_EQ_INT(qd_err_code(r), RPC_PARSE_ERROR);
  ASSERT_CONTAINS(qd_err_msg(r), "invalid UTF-8");
  json_decref(r);
  /* a nesting bomb is refused and the connection lives */
  char *bomb = malloc(100001);
  memset(bomb, '[', 100000);
  bomb[100000] = '\0';
  r = qd_call_line(fd, &f, bomb);
  free(bomb);
  ASSERT_EQ_INT(qd_err_code(r), RPC_PARSE_ERROR);
  ASSERT_CONTAINS(qd_err_msg(r), "nested deeper");
  json_decref(r);
  expect_pong(fd, &f, 8);
  rpc_framer_release(&f);

  /* the other framing on another connection: answers come back in it */
  int fd2 = qd_connect(d.sock);
  const char *body = PING(9);
  char *msg = qc_asprintf("Content-Length: %zu\r\n\r\n%s", strlen(body), body);
  ASSERT_EQ_INT(qd_send_str(fd2, msg), 0);
  free(msg);
  char buf[512] = {0};
  struct pollfd p = {fd2, POLLIN, 0};
  ASSERT(poll(&p, 1, 10000) == 1);
  usleep(20000);
  ssize_t n = recv(fd2, buf, sizeof buf - 1, 0);
  ASSERT(n > 0);
  ASSERT(qc_str_has_prefix(buf, "Content-Length: "));
  ASSERT_CONTAINS(buf, "\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{\"pong\":true}}");
  close(fd2);

  /* SIGTERM with a client connected: it sees EOF; exit 0; socket and lock gone */
  ASSERT_EQ_INT(kill(d.pid, SIGTERM), 0);
  rpc_framer_init(&f, RPC_FRAMING_NDJSON, 0);
  int eof = 0;
  json_t *none = qd_read_msg(fd, &f, 10000, &eof);
  ASSERT(none == NULL && eof);
  rpc_framer_release(&f);
  ASSERT_EQ_INT(qd_wait_exit(d.pid, 10000), 0);
  d.pid = 0;
  ASSERT(!qd_path_exists(d.sock));
  ASSERT(!qd_path_exists(lock));
  ASSERT(log_contains(&d, "shutting down: SIGTERM"));
  close(fd);
  free(lock);
  qd_free(&d);
}

/* 100 clients, each 100 pings one after another, all at once through poll(). */
TEST(hundred_clients_hundred_pings_each) {
  enum { NC = 100, NP = 100 };
  qd_daemon d;
  qd_init(&d, "e2e-many");
  const char *extra[] = {"--log-level", "info", NULL};
  ASSERT(qd_start(&d, extra) == 0);
  int fds[NC], done[NC], next[NC];
  rpc_framer fr[NC];
  for (int i = 0; i < NC; i++) {
    fds[i] = qd_connect(d.sock);
    ASSERT_MSG(fds[i] >= 0, "client %d could not connect", i);
    rpc_framer_init(&fr[i], RPC_FRAMING_NDJSON, 0);
    done[i] = 0;
    next[i] = 0;
  }
  uint64_t t0 = qc_now_ms();
  char line[128];
  for (int i = 0; i < NC; i++) {
    snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"_qcoder/ping\"}\n", i * 1000);
    ASSERT_EQ_INT(qd_send_str(fds[i], line), 0);
  }
  int finished = 0, answered = 0;
  struct pollfd pf[NC];
  while (finished < NC) {
    ASSERT_MSG(qc_now_ms() - t0 < 60000, "only %d of %d answers after 60 s", answered, NC * NP);
    for (int i = 0; i < NC; i++) pf[i] = (struct pollfd){fds[i], done[i] ? 0 : POLLIN, 0};
    int pr = poll(pf, NC, 1000);
    ASSERT(pr >= 0 || errno == EINTR);
    for (int i = 0; i < NC; i++) {
      if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      ssize_t n = recv(fds[i], buf, sizeof buf, MSG_DONTWAIT);
      ASSERT_MSG(n > 0, "client %d: connection lost", i);
      rpc_framer_feed(&fr[i], buf, (size_t)n);
      const char *m;
      size_t len;
      while (rpc_framer_next(&fr[i], &m, &len) == 1) {
        json_t *r = json_loadb(m, len, 0, NULL);
        ASSERT(r);
        ASSERT_EQ_INT(json_integer_value(json_object_get(r, "id")), i * 1000 + next[i]);
        ASSERT(json_is_true(json_object_get(json_object_get(r, "result"), "pong")));
        json_decref(r);
        answered++;
        if (++next[i] == NP) {
          done[i] = 1;
          finished++;
        } else {
          snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"_qcoder/ping\"}\n",
                   i * 1000 + next[i]);
          ASSERT_EQ_INT(qd_send_str(fds[i], line), 0);
        }
      }
    }
  }
  uint64_t ms = qc_now_ms() - t0;
  fprintf(stderr, "  %d clients x %d pings: %d answers in %llu ms\n", NC, NP, answered, (unsigned long long)ms);
  ASSERT_EQ_INT(answered, NC * NP);
  for (int i = 0; i < NC; i++) {
    close(fds[i]);
    rpc_framer_release(&fr[i]);
  }
  kill(d.pid, SIGTERM);
  ASSERT_EQ_INT(qd_wait_exit(d.pid, 10000), 0);
  d.pid = 0;
  qd_free(&d);
}

TEST(broken_and_hostile_clients_leave_others_unaffected) {
  qd_daemon d;
  qd_init(&d, "e2e-hostile");
  ASSERT(qd_start(&d, NULL) == 0);
  int good = qd_connect(d.sock);
  rpc_framer gf;
  rpc_framer_init(&gf, RPC_FRAMING_NDJSON, 0);
  expect_pong(good, &gf, 1);

  /* disconnects in the middle of a message, both framings */
  int a = qd_connect(d.sock);
  qd_send_str(a, "{\"jsonrpc\":\"2.0\",\"id\":1,\"meth");
  close(a);
  a = qd_connect(d.sock);
  qd_send_str(a, "Content-Length: 100\r\n\r\n{\"jsonrpc\"");
  close(a);
  expect_pong(good, &gf, 2);

  /* random garbage: answered with parse errors, never a crash */
  int g = qd_connect(d.sock);
  char junk[4096];
  uint32_t x = 12345;
  for (size_t i = 0; i < sizeof junk; i++) {
    x = x * 1103515245u + 12345u;
    junk[i] = (char)(x >> 16);
  }
  junk[0] = '{';
  qd_send(g, junk, sizeof junk);
  qd_send_str(g, "\n");
  expect_pong(good, &gf, 3);
  close(g);

  /* a hostile Content-Length: one error with id null, then the connection closes */
  int h = qd_connect(d.sock);
  qd_send_str(h, "Content-Length: 99999999999\r\n\r\n");
  rpc_framer hf;
  rpc_framer_init(&hf, RPC_FRAMING_DETECT, 0);
  int eof = 0;
  json_t *r = qd_read_msg(h, &hf, 10000, &eof);
  ASSERT(r);
  ASSERT_EQ_INT(qd_err_code(r), RPC_INVALID_REQUEST);
  ASSERT(json_is_null(json_object_get(r, "id")));
  json_decref(r);
  ASSERT(qd_read_msg(h, &hf, 10000, &eof) == NULL && eof);
  rpc_framer_release(&hf);
  close(h);

  /* duplicate Content-Length: the same */
  h = qd_connect(d.sock);
  qd_send_str(h, "Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}");
  rpc_framer_init(&hf, RPC_FRAMING_DETECT, 0);
  r = qd_read_msg(h, &hf, 10000, &eof);
  ASSERT(r && qd_err_code(r) == RPC_PARSE_ERROR);
  ASSERT_CONTAINS(qd_err_msg(r), "duplicate Content-Length");
  json_decref(r);
  ASSERT(qd_read_msg(h, &hf, 10000, &eof) == NULL && eof);
  rpc_framer_release(&hf);
  close(h);

  /* a line over the 32 MiB limit: error, closed; the good client never noticed */
  h = qd_connect(d.sock);
  size_t big = RPC_MAX_MESSAGE_BYTES + 4096;
  char *blob = malloc(big);
  memset(blob, ' ', big);
  blob[0] = '{';
  int sent_ok = qd_send(h, blob, big) == 0; /* may fail once the daemon closes */
  free(blob);
  (void)sent_ok;
  rpc_framer_init(&hf, RPC_FRAMING_NDJSON, 0);
  r = qd_read_msg(h, &hf, 20000, &eof);
  ASSERT(r && qd_err_code(r) == RPC_INVALID_REQUEST);
  ASSERT_CONTAINS(qd_err_msg(r), "exceeds");
  json_decref(r);
  rpc_framer_release(&hf);
  close(h);

  expect_pong(good, &gf, 4);
  close(good);
  rpc_framer_release(&gf);
  kill(d.pid, SIGTERM);
  ASSERT_EQ_INT(qd_wait_exit(d.pid, 10000), 0);
  d.pid = 0;
  qd_free(&d);
}

TEST(client_that_never_reads_is_dropped_without_stalling_others) {
  qd_daemon d;
  qd_init(&d, "e2e-stall");
  const char *extra[] = {"--max-write-queue", "262144", NULL};
  ASSERT(qd_start(&d, extra) == 0);
  int good = qd_connect(d.sock);
  rpc_framer gf;
  rpc_framer_init(&gf, RPC_FRAMING_NDJSON, 0);
  expect_pong(good, &gf, 1);

  int flood = qd_connect(d.sock);
  fcntl(flood, F_SETFL, O_NONBLOCK);
  /* 200k pings (~10 MB) whose answers the flooder never reads */
  qc_buf b;
  qc_buf_init(&b, 0);
  for (int i = 0; i < 200000; i++) qc_buf_printf(&b, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"_qcoder/ping\"}\n", i);
  size_t off = 0;
  int dropped = 0, pings = 0, id = 100;
  uint64_t worst = 0, t0 = qc_now_ms();
  while (!dropped && qc_now_ms() - t0 < 60000) {
    ssize_t w = send(flood, b.data + off, b.len - off, MSG_NOSIGNAL);
    if (w > 0) off += (size_t)w;
    if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) dropped = 1;
    if (off == b.len) break;
    /* meanwhile the good client is served promptly */
    uint64_t s = qc_now_ms();
    expect_pong(good, &gf, id++);
    uint64_t lat = qc_now_ms() - s;
    if (lat > worst) worst = lat;
    pings++;
  }
  /* whether or not every byte went out, the daemon must drop the flooder */
  uint64_t t1 = qc_now_ms();
  while (!log_contains(&d, "dropping a peer that does not read") && qc_now_ms() - t1 < 20000) {
    expect_pong(good, &gf, id++);
    usleep(10000);
  }
  fprintf(stderr, "  flooder sent %zu of %zu bytes; %d pings meanwhile, worst latency %llu ms\n", off, b.len, pings,
          (unsigned long long)worst);
  ASSERT(log_contains(&d, "dropping a peer that does not read"));
  ASSERT_MSG(worst < 3000, "a ping took %llu ms while another client stalled", (unsigned long long)worst);
  /* the flooder's connection is gone: reading drains what was sent, then EOF/reset */
  fcntl(flood, F_SETFL, 0);
  char buf[65536];
  uint64_t t2 = qc_now_ms();
  ssize_t n;
  struct pollfd p = {flood, POLLIN, 0};
  while (qc_now_ms() - t2 < 20000 && poll(&p, 1, 5000) > 0 && (n = recv(flood, buf, sizeof buf, 0)) > 0) {}
  ASSERT(qc_now_ms() - t2 < 20000);
  close(flood);
  qc_buf_release(&b);
  expect_pong(good, &gf, id++);
  close(good);
  rpc_framer_release(&gf);
  kill(d.pid, SIGTERM);
  ASSERT_EQ_INT(qd_wait_exit(d.pid, 10000), 0);
  d.pid = 0;
  qd_free(&d);
}

TEST(half_closed_client_that_never_reads_is_closed_after_the_flush_limit) {
  qd_daemon d;
  qd_init(&d, "e2e-halfclose");
  ASSERT(qd_start(&d, NULL) == 0);
  /* ~1 MB of answers, more than the socket buffers hold, then "I am done sending" */
  int lazy = qd_connect(d.sock);
  qc_buf b;
  qc_buf_init(&b, 0);
  for (int i = 0; i < 20000; i++) qc_buf_printf(&b, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"_qcoder/ping\"}\n", i);
  ASSERT_EQ_INT(qd_send(lazy, b.data, b.len), 0);
  qc_buf_release(&b);
  shutdown(lazy, SHUT_WR);
  int fd = qd_connect(d.sock);
  rpc_framer f;
  rpc_framer_init(&f, RPC_FRAMING_NDJSON, 0);
  uint64_t t0 = qc_now_ms();
  long long conns = 0;
  int id = 1;
  do {
    usleep(100000);
    char line[96];
    snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"_qcoder/status\"}", id++);
    json_t *r = qd_call_line(fd, &f, line);
    ASSERT(r);
    conns = json_integer_value(json_object_get(json_object_get(r, "result"), "connections"));
    json_decref(r);
  } while (conns > 1 && qc_now_ms() - t0 < 15000);
  ASSERT_MSG(conns == 1, "the half-closed, unread connection is still open after %llu ms",
             (unsigned long long)(qc_now_ms() - t0));
  ASSERT(log_contains(&d, "did not take its last bytes"));
  close(lazy);
  close(fd);
  rpc_framer_release(&f);
  kill(d.pid, SIGTERM);
  ASSERT_EQ_INT(qd_wait_exit(d.pid, 10000), 0);
  d.pid = 0;
  qd_free(&d);
}

TEST(second_serve_is_refused_naming_the_pid) {
  qd_daemon d;
  qd_init(&d, "e2e-second");
  ASSERT(qd_start(&d, NULL) == 0);
  char *cmd = qc_asprintf("QCODER_STATE_DIR='%s/state' '%s' serve --socket '%s' 2>&1", d.dir, qct_qcoder_bin(), d.sock);
  char *out = NULL;
  int rc = qct_run(cmd, &out);
  ASSERT_EQ_INT(rc, 1);
  char want[64];
  snprintf(want, sizeof want, "(pid %d)", (int)d.pid);
  ASSERT_CONTAINS(out, "already running");
  ASSERT_CONTAINS(out, want);
  free(out);
  free(cmd);
  /* the first one is unharmed */
  int fd = qd_connect(d.sock);
  rpc_framer f;
  rpc_framer_init(&f, RPC_FRAMING_NDJSON, 0);
  expect_pong(fd, &f, 1);
  close(fd);
  rpc_framer_release(&f);
  kill(d.pid, SIGINT);
  ASSERT_EQ_INT(qd_wait_exit(d.pid, 10000), 0);
  d.pid = 0;
  qd_free(&d);
}

TEST(stale_socket_and_lock_are_replaced) {
  qd_daemon d;
  qd_init(&d, "e2e-stale");
  char *run = qc_asprintf("%s/run", d.dir);
  mkdir(run, 0700);
  /* a crashed daemon's leftovers: a socket nobody listens on, a lock with a dead pid */
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", d.sock);
  ASSERT_EQ_INT(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
  close(s);
  ASSERT(qd_path_exists(d.sock));
  ASSERT(qd_connect(d.sock) < 0);
  char *lock = qc_asprintf("%s.lock", d.sock);
  qct_write_file(lock, "999999\n");
  ASSERT(qd_start(&d, NULL) == 0);
  ASSERT(log_contains(&d, "replacing stale socket"));
  char *pidtxt = qct_read_file(lock, NULL);
  ASSERT(pidtxt && atoi(pidtxt) == d.pid);
  free(pidtxt);
  int fd = qd_connect(d.sock);
  rpc_framer f;
  rpc_framer_init(&f, RPC_FRAMING_NDJSON, 0);
  expect_pong(fd, &f, 1);
  close(fd);
  rpc_framer_release(&f);
  kill(d.pid, SIGTERM);
  ASSERT_EQ_INT(qd_wait_exit(d.pid, 10000), 0);
  d.pid = 0;
  free(lock);
  free(run);
  qd_free(&d);
}

TEST(a_non_socket_file_at_the_path_is_not_replaced) {
  qd_daemon d;
  qd_init(&d, "e2e-notsock");
  char *run = qc_asprintf("%s/run", d.dir);
  mkdir(run, 0700);
  qct_write_file(d.sock, "precious\n");
  d.pid = qd_spawn_serve(&d, NULL);
  ASSERT_EQ_INT(qd_wait_exit(d.pid, 10000), 2);
  d.pid = 0;
  char *err = qct_read_file(d.err, NULL);
  ASSERT_CONTAINS(err, "is not a socket");
  free(err);
  char *content = qct_read_file(d.sock, NULL);
  ASSERT_STR_EQ(content, "precious\n");
  free(content);
  free(run);
  qd_free(&d);
}

TEST(status_and_stop_without_a_daemon_exit_3) {
  char *dir = qct_tempdir("e2e-none");
  char *cmd = qc_asprintf("'%s' status --socket '%s/none.sock'", qct_qcoder_bin(), dir);
  char *out = NULL;
  ASSERT_EQ_INT(qct_run(cmd, &out), 3);
  ASSERT_CONTAINS(out, "no qcoder daemon is running");
  free(out);
  free(cmd);
  cmd = qc_asprintf("'%s' status --json --socket '%s/none.sock'", qct_qcoder_bin(), dir);
  ASSERT_EQ_INT(qct_run(cmd, &out), 3);
  json_t *j = json_loads(out, 0, NULL);
  ASSERT(j && json_is_false(json_object_get(j, "running")));
  json_decref(j);
  free(out);
  free(cmd);
  cmd = qc_asprintf("'%s' stop --socket '%s/none.sock'", qct_qcoder_bin(), dir);
  ASSERT_EQ_INT(qct_run(cmd, &out), 3);
  ASSERT_CONTAINS(out, "no qcoder daemon is running");
  free(out);
  free(cmd);
  /* and the default socket path, with a private runtime dir */
  cmd = qc_asprintf("QCODER_RUNTIME_DIR='%s/rt' '%s' status", dir, qct_qcoder_bin());
  ASSERT_EQ_INT(qct_run(cmd, &out), 3);
  ASSERT_CONTAINS(out, "/rt/qcoder.sock");
  free(out);
  free(cmd);
  free(dir);
}

TEST(status_and_stop_commands) {
  qd_daemon d;
  qd_init(&d, "e2e-stop");
  ASSERT(qd_start(&d, NULL) == 0);
  char *cmd = qc_asprintf("'%s' status --socket '%s'", qct_qcoder_bin(), d.sock);
  char *out = NULL;
  ASSERT_EQ_INT(qct_run(cmd, &out), 0);
  char want[64];
  snprintf(want, sizeof want, "pid:         %d", (int)d.pid);
  ASSERT_CONTAINS(out, want);
  ASSERT_CONTAINS(out, "model:       none loaded");
  ASSERT_CONTAINS(out, "connections: 1");
  free(out);
  free(cmd);
  cmd = qc_asprintf("'%s' status --json --socket '%s'", qct_qcoder_bin(), d.sock);
  ASSERT_EQ_INT(qct_run(cmd, &out), 0);
  json_t *j = json_loads(out, 0, NULL);
  ASSERT(j && json_integer_value(json_object_get(j, "pid")) == d.pid);
  ASSERT(json_is_true(json_object_get(j, "running")));
  json_decref(j);
  free(out);
  free(cmd);
  /* stop: the daemon answers, shuts down, and is gone when the command returns */
  cmd = qc_asprintf("'%s' stop --socket '%s'", qct_qcoder_bin(), d.sock);
  ASSERT_EQ_INT(qct_run(cmd, &out), 0);
  ASSERT_CONTAINS(out, "stopped the qcoder daemon");
  ASSERT(!qd_path_exists(d.sock));
  char *lock = qc_asprintf("%s.lock", d.sock);
  ASSERT(!qd_path_exists(lock));
  free(lock);
  free(out);
  free(cmd);
  ASSERT_EQ_INT(qd_wait_exit(d.pid, 10000), 0);
  d.pid = 0;
  qd_free(&d);
}

TEST(idle_timeout_exits_only_when_nobody_is_connected) {
  qd_daemon d;
  qd_init(&d, "e2e-idle");
  const char *extra[] = {"--idle-timeout", "1", NULL};
  ASSERT(qd_start(&d, extra) == 0);
  int fd = qd_connect(d.sock);
  ASSERT(fd >= 0);
  usleep(1600000); /* longer than the timeout, but connected */
  rpc_framer f;
  rpc_framer_init(&f, RPC_FRAMING_NDJSON, 0);
  expect_pong(fd, &f, 1);
  rpc_framer_release(&f);
  uint64_t t0 = qc_now_ms();
  close(fd);
  ASSERT_EQ_INT(qd_wait_exit(d.pid, 10000), 0);
  uint64_t ms = qc_now_ms() - t0;
  ASSERT_MSG(ms >= 900 && ms < 5000, "exited %llu ms after the last client left", (unsigned long long)ms);
  d.pid = 0;
  ASSERT(!qd_path_exists(d.sock));
  ASSERT(log_contains(&d, "idle timeout"));
  qd_free(&d);
}

TEST(stdio_round_trip_keeps_stdout_clean) {
  char *dir = qct_tempdir("e2e-stdio");
  int in[2], out[2];
  ASSERT(pipe(in) == 0 && pipe(out) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    qd_setenv(dir);
    dup2(in[0], 0);
    dup2(out[1], 1);
    close(in[0]);
    close(in[1]);
    close(out[0]);
    close(out[1]);
    int nul = open("/dev/null", O_WRONLY);
    dup2(nul, 2);
    execl(qct_qcoder_bin(), qct_qcoder_bin(), "serve", "--stdio", "--log-level", "debug", (char *)NULL);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  const char *req = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":1}}\n"
                    "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"_qcoder/ping\"}\n"
                    "garbage\n"
                    "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"_qcoder/status\"}\n";
  ASSERT(write(in[1], req, strlen(req)) == (ssize_t)strlen(req));
  /* read the answers before closing stdin: it is a conversation */
  rpc_framer f;
  rpc_framer_init(&f, RPC_FRAMING_NDJSON, 0);
  json_t *r[4];
  for (int i = 0; i < 4; i++) {
    r[i] = qd_read_msg(out[0], &f, 10000, NULL);
    ASSERT_MSG(r[i] != NULL, "answer %d missing", i);
  }
  ASSERT_EQ_INT(json_integer_value(json_object_get(json_object_get(r[0], "result"), "protocolVersion")), 1);
  ASSERT(json_is_true(json_object_get(json_object_get(r[1], "result"), "pong")));
  ASSERT_EQ_INT(qd_err_code(r[2]), RPC_PARSE_ERROR);
  ASSERT_EQ_INT(json_integer_value(json_object_get(json_object_get(r[3], "result"), "pid")), pid);
  ASSERT(json_is_null(json_object_get(json_object_get(r[3], "result"), "socket")));
  for (int i = 0; i < 4; i++) json_decref(r[i]);
  close(in[1]); /* EOF: the daemon finishes and exits 0 */
  int eof = 0;
  ASSERT(qd_read_msg(out[0], &f, 10000, &eof) == NULL && eof);
  ASSERT_EQ_INT(rpc_framer_pending(&f), 0); /* nothing but protocol on stdout */
  rpc_framer_release(&f);
  close(out[0]);
  ASSERT_EQ_INT(qd_wait_exit(pid, 10000), 0);
  free(dir);
}

TEST(stdio_lsp_framing) {
  int in[2], out[2];
  ASSERT(pipe(in) == 0 && pipe(out) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    close(in[1]);
    close(out[0]);
    int nul = open("/dev/null", O_WRONLY);
    dup2(nul, 2);
    execl(qct_qcoder_bin(), qct_qcoder_bin(), "serve", "--stdio", (char *)NULL);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  const char *body = PING(5);
  char *msg = qc_asprintf("Content-Length: %zu\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n%s",
                          strlen(body), body);
  ASSERT(write(in[1], msg, strlen(msg)) == (ssize_t)strlen(msg));
  free(msg);
  close(in[1]);
  char *all = NULL;
  qc_buf b;
  qc_buf_init(&b, 0);
  char buf[4096];
  ssize_t n;
  while ((n = read(out[0], buf, sizeof buf)) > 0) qc_buf_append(&b, buf, (size_t)n);
  all = b.data;
  ASSERT_STR_EQ(all, "Content-Length: 47\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{\"pong\":true}}");
  qc_buf_release(&b);
  close(out[0]);
  ASSERT_EQ_INT(qd_wait_exit(pid, 10000), 0);
}

TEST(silent_connection_is_closed_after_the_first_message_limit) {
  /* QCODER_FIRST_MESSAGE_TIMEOUT_MS shortens RPC_FIRST_MESSAGE_TIMEOUT_MS (30 s) */
  setenv("QCODER_FIRST_MESSAGE_TIMEOUT_MS", "300", 1);
  qd_daemon d;
  qd_init(&d, "hello");
  int started = qd_start(&d, NULL);
  unsetenv("QCODER_FIRST_MESSAGE_TIMEOUT_MS");
  ASSERT_MSG(started == 0, "the daemon did not start");
  int silent = qd_connect(d.sock), talker = qd_connect(d.sock);
  rpc_framer fs, ft;
  rpc_framer_init(&fs, RPC_FRAMING_NDJSON, 0);
  rpc_framer_init(&ft, RPC_FRAMING_NDJSON, 0);
  json_t *r = qd_call_line(talker, &ft, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"_qcoder/ping\"}");
  ASSERT(r && json_object_get(r, "result"));
  json_decref(r);
  int eof = 0;
  ASSERT(qd_read_msg(silent, &fs, 10000, &eof) == NULL && eof);
  /* the talker idles past the limit and is still served; status counts it */
  usleep(600 * 1000);
  r = qd_call_line(talker, &ft, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"_qcoder/status\"}");
  ASSERT(r);
  ASSERT_EQ_INT(json_integer_value(json_object_get(json_object_get(r, "result"), "connections")), 1);
  json_decref(r);
  char *log = qct_read_file(d.log, NULL);
  ASSERT(log);
  ASSERT_CONTAINS(log, "no complete message within 300 ms of connecting");
  free(log);
  close(silent);
  close(talker);
  rpc_framer_release(&fs);
  rpc_framer_release(&ft);
  kill(d.pid, SIGTERM);
  ASSERT_EQ_INT(qd_wait_exit(d.pid, 15000), 0);
  d.pid = 0;
  qd_free(&d);
  /* a bad value is a usage error */
  char *out = NULL;
  char *cmd = qc_asprintf("QCODER_FIRST_MESSAGE_TIMEOUT_MS=soon '%s' serve --socket /tmp/x.sock 2>&1", qct_qcoder_bin());
  ASSERT_EQ_INT(qct_run(cmd, &out), 2);
  ASSERT_CONTAINS(out, "QCODER_FIRST_MESSAGE_TIMEOUT_MS");
  free(out);
  free(cmd);
}

TEST(serve_usage_errors) {
  char *out = NULL;
  char *cmd = qc_asprintf("'%s' serve --bogus 2>&1", qct_qcoder_bin());
  ASSERT_EQ_INT(qct_run(cmd, &out), 2);
  ASSERT_CONTAINS(out, "unknown option");
  free(out);
  free(cmd);
  cmd = qc_asprintf("'%s' serve --stdio --socket /tmp/x.sock 2>&1", qct_qcoder_bin());
  ASSERT_EQ_INT(qct_run(cmd, &out), 2);
  free(out);
  free(cmd);
  cmd = qc_asprintf("'%s' serve --idle-timeout soon 2>&1", qct_qcoder_bin());
  ASSERT_EQ_INT(qct_run(cmd, &out), 2);
  free(out);
  free(cmd);
  cmd = qc_asprintf("'%s' serve --help", qct_qcoder_bin());
  ASSERT_EQ_INT(qct_run(cmd, &out), 0);
  ASSERT_CONTAINS(out, "--idle-timeout");
  free(out);
  free(cmd);
  cmd = qc_asprintf("'%s' serve --socket /tmp/%0200d.sock 2>&1", qct_qcoder_bin(), 0);
  ASSERT_EQ_INT(qct_run(cmd, &out), 2);
  ASSERT_CONTAINS(out, "longer than");
  free(out);
  free(cmd);
}

QC_TEST_MAIN
