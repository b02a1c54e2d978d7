/* test_client.c — daemon/client.c: connecting, calling, and starting the daemon on demand.
 *
 * Auto-start is what `qcoder run`, `qcoder acp` and `qcoder lsp` will rely on: the first
 * client starts a detached daemon, clients racing to start one all end up on the same
 * daemon, and a daemon that cannot start reports why instead of timing out.
 */
#include <pthread.h>

#include "daemon/client.h"
#include "tests/daemon/daemon_harness.h"

static long status_pid(int fd) {
  json_t *res = NULL;
  char why[256];
  int code = 0;
  int rc = rpc_client_call(fd, "_qcoder/status", NULL, 10000, &res, &code, why, sizeof why);
  if (rc != QC_OK) return -1;
  long pid = (long)json_integer_value(json_object_get(res, "pid"));
  json_decref(res);
  return pid;
}

static void shutdown_daemon(const char *sock) {
  int fd;
  char why[256];
  ASSERT_EQ_INT(rpc_client_connect(sock, &fd, why, sizeof why), QC_OK);
  json_t *res = NULL;
  int code;
  ASSERT_EQ_INT(rpc_client_call(fd, "_qcoder/shutdown", NULL, 10000, &res, &code, why, sizeof why), QC_OK);
  json_decref(res);
  close(fd);
  ASSERT(rpc_client_wait_gone(sock, 15000));
}

TEST(default_socket_path_follows_the_runtime_dir) {
  char *dir = qct_tempdir("cl-path");
  char *old = getenv("QCODER_RUNTIME_DIR") ? strdup(getenv("QCODER_RUNTIME_DIR")) : NULL;
  setenv("QCODER_RUNTIME_DIR", dir, 1);
  char *p = rpc_socket_path(NULL);
  char *want = qc_asprintf("%s/qcoder.sock", dir);
  ASSERT_STR_EQ(p, want);
  free(p);
  free(want);
  p = rpc_socket_path("/x/y.sock");
  ASSERT_STR_EQ(p, "/x/y.sock");
  free(p);
  if (old) setenv("QCODER_RUNTIME_DIR", old, 1);
  free(old);
  free(dir);
}

TEST(connect_reports_not_running) {
  char *dir = qct_tempdir("cl-none");
  char *sock = qc_asprintf("%s/none.sock", dir);
  int fd;
  char why[256];
  ASSERT_EQ_INT(rpc_client_connect(sock, &fd, why, sizeof why), RPC_ENOT_RUNNING);
  ASSERT_CONTAINS(why, "no qcoder daemon");
  ASSERT_EQ_INT(rpc_client_wait_gone(sock, 0), 1); /* nothing there: gone at once */
  free(sock);
  free(dir);
}

TEST(autostart_starts_a_detached_daemon_once) {
  char *dir = qct_tempdir("cl-auto");
  char *sock = qc_asprintf("%s/run/q.sock", dir);
  char *log = qc_asprintf("%s/daemon.log", dir);
  rpc_autostart as = {.qcoder_bin = qct_qcoder_bin(), .idle_timeout_s = 60, .log_file = log};
  int fd = -1, started = 0;
  char why[512] = "";
  uint64_t t0 = qc_now_ms();
  ASSERT_MSG(rpc_client_connect_auto(sock, &as, &fd, &started, why, sizeof why) == QC_OK, "autostart: %s", why);
  fprintf(stderr, "  auto-started and connected in %llu ms\n", (unsigned long long)(qc_now_ms() - t0));
  ASSERT_EQ_INT(started, 1);
  long pid = status_pid(fd);
  ASSERT(pid > 0 && pid != getpid());
  /* detached: not our child */
  ASSERT(waitpid((pid_t)pid, NULL, WNOHANG) < 0 && errno == ECHILD);
  /* a second client connects to the same daemon without starting another */
  int fd2 = -1, started2 = 1;
  ASSERT_EQ_INT(rpc_client_connect_auto(sock, &as, &fd2, &started2, why, sizeof why), QC_OK);
  ASSERT_EQ_INT(started2, 0);
  ASSERT_EQ_INT(status_pid(fd2), pid);
  close(fd);
  close(fd2);
  char *lg = qct_read_file(log, NULL);
  ASSERT_CONTAINS(lg, "idle timeout 60 s");
  free(lg);
  shutdown_daemon(sock);
  free(sock);
  free(log);
  free(dir);
}

typedef struct racer {
  const char *sock;
  const rpc_autostart *as;
  long pid;
  int rc;
} racer;

static void *race(void *p) {
  racer *r = p;
  int fd = -1;
  char why[512];
  r->rc = rpc_client_connect_auto(r->sock, r->as, &fd, NULL, why, sizeof why);
  r->pid = r->rc == QC_OK ? status_pid(fd) : -1;
  if (fd >= 0) close(fd);
  return NULL;
}

TEST(racing_autostarts_end_on_one_daemon) {
  char *dir = qct_tempdir("cl-race");
  char *sock = qc_asprintf("%s/run/q.sock", dir);
  char *log = qc_asprintf("%s/daemon.log", dir);
  rpc_autostart as = {.qcoder_bin = qct_qcoder_bin(), .idle_timeout_s = 60, .log_file = log};
  enum { N = 4 };
  racer r[N];
  pthread_t th[N];
  for (int i = 0; i < N; i++) {
    r[i] = (racer){sock, &as, 0, 0};
    pthread_create(&th[i], NULL, race, &r[i]);
  }
  for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < N; i++) {
    ASSERT_EQ_INT(r[i].rc, QC_OK);
    ASSERT(r[i].pid > 0);
    ASSERT_EQ_INT(r[i].pid, r[0].pid);
  }
  shutdown_daemon(sock);
  free(sock);
  free(log);
  free(dir);
}

TEST(autostart_failure_says_why_quickly) {
  char *dir = qct_tempdir("cl-fail");
  char *file = qc_asprintf("%s/file", dir);
  qct_write_file(file, "x");
  char *sock = qc_asprintf("%s/file/sub/q.sock", dir); /* a directory cannot be made under a file */
  rpc_autostart as = {.qcoder_bin = qct_qcoder_bin(), .log_file = "/dev/null"};
  int fd = -1;
  char why[512] = "";
  uint64_t t0 = qc_now_ms();
  int rc = rpc_client_connect_auto(sock, &as, &fd, NULL, why, sizeof why);
  ASSERT_EQ_INT(rc, RPC_ENOT_RUNNING);
  ASSERT_CONTAINS(why, "failed to start");
  ASSERT_CONTAINS(why, "cannot create directory");
  ASSERT(qc_now_ms() - t0 < 10000);
  /* and a binary that does not exist */
  as.qcoder_bin = "/nonexistent/qcoder";
  rc = rpc_client_connect_auto(sock, &as, &fd, NULL, why, sizeof why);
  ASSERT_EQ_INT(rc, RPC_ENOT_RUNNING);
  ASSERT_CONTAINS(why, "cannot execute");
  free(sock);
  free(file);
  free(dir);
}

TEST(call_reports_remote_errors_and_timeouts) {
  qd_daemon d;
  qd_init(&d, "cl-call");
  ASSERT(qd_start(&d, NULL) == 0);
  int fd;
  char why[256];
  ASSERT_EQ_INT(rpc_client_connect(d.sock, &fd, why, sizeof why), QC_OK);
  json_t *res = NULL;
  int code = 0;
  ASSERT_EQ_INT(rpc_client_call(fd, "no/such", json_object(), 10000, &res, &code, why, sizeof why), RPC_EREMOTE);
  ASSERT_EQ_INT(code, RPC_METHOD_NOT_FOUND);
  ASSERT_CONTAINS(why, "no/such");
  ASSERT(res == NULL);
  ASSERT_EQ_INT(rpc_client_call(fd, "_qcoder/ping", NULL, 10000, &res, &code, why, sizeof why), QC_OK);
  ASSERT(json_is_true(json_object_get(res, "pong")));
  json_decref(res);
  close(fd);
  /* a peer that never answers: timeout, not a hang */
  int sv[2];
  ASSERT_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  uint64_t t0 = qc_now_ms();
  ASSERT_EQ_INT(rpc_client_call(sv[0], "_qcoder/ping", NULL, 200, &res, &code, why, sizeof why), RPC_ETIMEOUT);
  ASSERT(qc_now_ms() - t0 < 2000);
  close(sv[1]); /* and one that hangs up */
  ASSERT_EQ_INT(rpc_client_call(sv[0], "_qcoder/ping", NULL, 2000, &res, &code, why, sizeof why), RPC_ENOT_RUNNING);
  close(sv[0]);
  kill(d.pid, SIGTERM);
  ASSERT_EQ_INT(qd_wait_exit(d.pid, 10000), 0);
  d.pid = 0;
  qd_free(&d);
}

QC_TEST_MAIN
