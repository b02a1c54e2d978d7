/* daemon_harness.h — helpers for tests that drive a real `qcoder serve`.
 *
 * Start the binary on a private socket with private runtime/state directories, talk to
 * it over plain sockets with poll() timeouts (a hung daemon fails a test, never hangs
 * it), and collect its exit status. Header-only: each end-to-end test file includes it.
 */
#ifndef QC_TESTS_DAEMON_HARNESS_H
#define QC_TESTS_DAEMON_HARNESS_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "daemon/jsonrpc.h"
#include "tests/test.h"

typedef struct qd_daemon {
  char *dir;   /* private temp dir */
  char *sock;  /* dir/run/qcoder.sock */
  char *log;   /* dir/daemon.log */
  char *err;   /* dir/serve.stderr */
  pid_t pid;
} qd_daemon;

static inline void qd_setenv(const char *dir) {
  char *rt = qc_asprintf("%s/run", dir), *st = qc_asprintf("%s/state", dir);
  setenv("QCODER_RUNTIME_DIR", rt, 1);
  setenv("QCODER_STATE_DIR", st, 1);
  free(rt);
  free(st);
}

/* Every qcoder this test process starts gets private directories unless told otherwise:
 * a test must never write into the user's own state or runtime directory. */
__attribute__((constructor)) static void qd_private_dirs(void) {
  char *d = qct_tempdir("qd-env");
  if (d) qd_setenv(d);
  free(d);
}

static inline int qd_connect(const char *sock) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* fork+exec `qcoder serve --socket ... --log-file ... EXTRA...`; stdin from /dev/null,
 * stderr to d->err. Does not wait. */
static inline pid_t qd_spawn_serve(qd_daemon *d, const char *const *extra) {
  const char *argv[32];
  int a = 0;
  argv[a++] = qct_qcoder_bin();
  argv[a++] = "serve";
  argv[a++] = "--socket";
  argv[a++] = d->sock;
  argv[a++] = "--log-file";
  argv[a++] = d->log;
  argv[a++] = "--log-level";
  argv[a++] = "debug";
  for (int i = 0; extra && extra[i] && a < 30; i++) argv[a++] = extra[i];
  argv[a] = NULL;
  pid_t pid = fork();
  if (pid == 0) {
    qd_setenv(d->dir);
    int nul = open("/dev/null", O_RDWR);
    int err = open(d->err, O_WRONLY | O_CREAT | O_APPEND, 0600);
    dup2(nul, 0);
    dup2(nul, 1);
    if (err >= 0) dup2(err, 2);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  return pid;
}

/* Exit status (or 128+signal) of pid within timeout_ms; -1 on timeout (then killed). */
static inline int qd_wait_exit(pid_t pid, int timeout_ms) {
  uint64_t end = qc_now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    int st;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (qc_now_ms() > end) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      return -1;
    }
    usleep(5000);
  }
}

static inline void qd_init(qd_daemon *d, const char *tag) {
  memset(d, 0, sizeof *d);
  d->dir = qct_tempdir(tag);
  d->sock = qc_asprintf("%s/run/qcoder.sock", d->dir);
  d->log = qc_asprintf("%s/daemon.log", d->dir);
  d->err = qc_asprintf("%s/serve.stderr", d->dir);
}

/* Start and wait until the socket answers. 0 on success. */
static inline int qd_start(qd_daemon *d, const char *const *extra) {
  d->pid = qd_spawn_serve(d, extra);
  uint64_t end = qc_now_ms() + 15000;
  while (qc_now_ms() < end) {
    int fd = qd_connect(d->sock);
    if (fd >= 0) {
      close(fd);
      return 0;
    }
    int st;
    if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
      d->pid = 0;
      return -1;
    }
    usleep(10000);
  }
  return -1;
}

static inline void qd_free(qd_daemon *d) {
  if (d->pid > 0) {
    kill(d->pid, SIGKILL);
    waitpid(d->pid, NULL, 0);
  }
  free(d->dir);
  free(d->sock);
  free(d->log);
  free(d->err);
  memset(d, 0, sizeof *d);
}

static inline int qd_send(int fd, const char *s, size_t n) {
  while (n) {
    ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    s += w;
    n -= (size_t)w;
  }
  return 0;
}

static inline int qd_send_str(int fd, const char *s) { return qd_send(fd, s, strlen(s)); }

/* Read the next framed message within timeout_ms: new JSON, or NULL on EOF/timeout
 * (*eof set on EOF or reset). */
static inline json_t *qd_read_msg(int fd, rpc_framer *f, int timeout_ms, int *eof) {
  uint64_t end = qc_now_ms() + (uint64_t)timeout_ms;
  if (eof) *eof = 0;
  for (;;) {
    const char *m;
    size_t len;
    int rc = rpc_framer_next(f, &m, &len);
    if (rc < 0) return NULL;
    if (rc == 1) return json_loadb(m, len, 0, NULL);
    uint64_t now = qc_now_ms();
    if (now >= end) return NULL;
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, (int)(end - now)) <= 0) continue;
    char buf[65536];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (eof) *eof = 1;
      return NULL;
    }
    rpc_framer_feed(f, buf, (size_t)n);
  }
}

/* Send one newline-delimited line and read one message back. */
static inline json_t *qd_call_line(int fd, rpc_framer *f, const char *line) {
  if (qd_send_str(fd, line) || qd_send_str(fd, "\n")) return NULL;
  return qd_read_msg(fd, f, 10000, NULL);
}

static inline long long qd_err_code(const json_t *m) {
  return json_integer_value(json_object_get(json_object_get(m, "error"), "code"));
}

static inline const char *qd_err_msg(const json_t *m) {
  return json_string_value(json_object_get(json_object_get(m, "error"), "message"));
}

static inline int qd_path_exists(const char *p) {
  struct stat st;
  return lstat(p, &st) == 0;
}

#endif
