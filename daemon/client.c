/* client.c — finding, starting and calling the daemon from a command.
 *
 * Auto-start detaches the daemon with a double fork (so it is nobody's zombie and
 * survives an editor killing our process group) but keeps the daemon's stderr on a
 * pipe until it answers: if it dies during start-up, its own error message becomes
 * ours, instead of a bare timeout.
 */
#include "daemon/client.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

char *rpc_socket_path(const char *override) {
  if (override && *override) return strdup(override);
  char *rt = qc_runtime_dir();
  if (!rt) return NULL;
  char *p = qc_path_join(rt, "qcoder.sock");
  free(rt);
  return p;
}

static int set_why(char *why, size_t n, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int set_why(char *why, size_t n, int code, const char *fmt, ...) {
  if (why && n) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
  }
  return code;
}

int rpc_client_connect(const char *socket_path, int *fd_out, char *why, size_t why_len) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  *fd_out = -1;
  if (strlen(socket_path) >= sizeof sa.sun_path)
    return set_why(why, why_len, RPC_ESOCKET, "socket path is longer than %zu bytes", sizeof sa.sun_path - 1);
  memcpy(sa.sun_path, socket_path, strlen(socket_path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return set_why(why, why_len, RPC_ESOCKET, "socket: %s", strerror(errno));
  int rc;
  do rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
  while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    int e = errno;
    close(fd);
    if (e == ENOENT || e == ECONNREFUSED || e == ENOTDIR)
      return set_why(why, why_len, RPC_ENOT_RUNNING, "no qcoder daemon is running on %s", socket_path);
    return set_why(why, why_len, RPC_ESOCKET, "cannot connect to %s: %s", socket_path, strerror(e));
  }
  *fd_out = fd;
  return QC_OK;
}

/* ---- auto-start -------------------------------------------------------------------- */

static void close_fds_from(int lowest) {
#ifdef SYS_close_range
  if (syscall(SYS_close_range, (unsigned)lowest, ~0u, 0u) == 0) return;
#endif
  long max = sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > 65536) max = 65536;
  for (int fd = lowest; fd < max; fd++) close(fd);
}

/* Fork twice; the grandchild execs argv with stderr on errfd. Only async-signal-safe
 * calls between fork and exec: the caller may have threads. */
static int spawn_detached(char *const argv[], int errfd) {
  pid_t mid = fork();
  if (mid < 0) return -1;
  if (mid == 0) {
    setsid();
    pid_t gc = fork();
    if (gc != 0) _exit(gc < 0 ? 1 : 0);
    if (chdir("/") != 0) _exit(126);
    int nul = open("/dev/null", O_RDWR);
    if (nul < 0) _exit(126);
    dup2(nul, 0);
    dup2(nul, 1);
    dup2(errfd, 2);
    close_fds_from(3);
    execv(argv[0], argv);
    static const char msg[] = "qcoder: cannot execute the daemon binary\n";
    if (write(2, msg, sizeof msg - 1) < 0) { /* nothing more to do */ }
    _exit(127);
  }
  int st;
  while (waitpid(mid, &st, 0) < 0 && errno == EINTR) {}
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

int rpc_client_connect_auto(const char *socket_path, const rpc_autostart *opts, int *fd, int *started,
                            char *why, size_t why_len) {
  rpc_autostart def = {0};
  if (!opts) opts = &def;
  if (started) *started = 0;
  int rc = rpc_client_connect(socket_path, fd, why, why_len);
  if (rc != RPC_ENOT_RUNNING) return rc;

  char self[PATH_MAX], abs_sock[PATH_MAX], cwd[PATH_MAX], idle[32];
  const char *bin = opts->qcoder_bin;
  if (!bin) {
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return set_why(why, why_len, RPC_ENOT_RUNNING, "cannot find the qcoder binary to start the daemon");
    self[n] = '\0';
    bin = self;
  }
  /* the daemon runs in "/": hand it an absolute path */
  if (socket_path[0] == '/') {
    cwd[0] = '\0';
  } else if (!getcwd(cwd, sizeof cwd)) {
    return set_why(why, why_len, RPC_ESOCKET, "cannot resolve %s", socket_path);
  }
  size_t cl = strlen(cwd), sl = strlen(socket_path);
  if (cl + sl + 2 > sizeof abs_sock) return set_why(why, why_len, RPC_ESOCKET, "socket path too long");
  memcpy(abs_sock, cwd, cl);
  if (cl) abs_sock[cl++] = '/';
  memcpy(abs_sock + cl, socket_path, sl + 1);
  snprintf(idle, sizeof idle, "%u", opts->idle_timeout_s ? opts->idle_timeout_s : RPC_AUTOSTART_IDLE_TIMEOUT_S);
  char *argv[20];
  int a = 0;
  argv[a++] = (char *)bin;
  argv[a++] = "serve";
  argv[a++] = "--socket";
  argv[a++] = abs_sock;
  argv[a++] = "--idle-timeout";
  argv[a++] = idle;
  if (opts->log_file) {
    argv[a++] = "--log-file";
    argv[a++] = (char *)opts->log_file;
  }
  for (const char *const *x = opts->serve_args; x && *x && a < 18; x++) argv[a++] = (char *)*x;
  argv[a] = NULL;

  int errp[2];
  if (pipe2(errp, O_CLOEXEC) != 0) return set_why(why, why_len, RPC_ENOT_RUNNING, "pipe: %s", strerror(errno));
  /* the write end must survive exec in the grandchild: dup2 onto fd 2 clears CLOEXEC */
  if (spawn_detached(argv, errp[1]) != 0) {
    close(errp[0]);
    close(errp[1]);
    return set_why(why, why_len, RPC_ENOT_RUNNING, "cannot start %s: fork failed", bin);
  }
  close(errp[1]);
  if (started) *started = 1;
  qc_info("started a qcoder daemon on %s", abs_sock);
  fcntl(errp[0], F_SETFL, O_NONBLOCK);

  char err[1024] = "";
  size_t errlen = 0;
  int err_eof = 0;
  int wait_ms = opts->wait_ms ? opts->wait_ms : RPC_AUTOSTART_WAIT_MS;
  uint64_t deadline = qc_now_ms() + (uint64_t)wait_ms;
  int sleep_ms = 5;
  rc = RPC_ETIMEOUT;
  for (;;) {
    int r = rpc_client_connect(abs_sock, fd, NULL, 0);
    if (r == QC_OK) {
      rc = QC_OK;
      break;
    }
    if (r != RPC_ENOT_RUNNING) {
      rc = rpc_client_connect(abs_sock, fd, why, why_len);
      break;
    }
    if (!err_eof) {
      ssize_t n;
      while ((n = read(errp[0], err + errlen, sizeof err - 1 - errlen)) > 0) errlen += (size_t)n;
      if (n == 0) err_eof = 1;
      err[errlen] = '\0';
      /* The daemon exited. If it lost a race to another daemon starting on the same
       * socket, that one will answer shortly; otherwise its message is the error. */
      if (err_eof && !strstr(err, "already running")) {
        if (rpc_client_connect(abs_sock, fd, NULL, 0) == QC_OK) {
          rc = QC_OK;
          break;
        }
        while (errlen && (err[errlen - 1] == '\n' || err[errlen - 1] == ' ')) err[--errlen] = '\0';
        rc = set_why(why, why_len, RPC_ENOT_RUNNING, "the qcoder daemon failed to start: %s",
                     errlen ? err : "it exited without a message");
        break;
      }
    }
    if (qc_now_ms() >= deadline) {
      rc = set_why(why, why_len, RPC_ETIMEOUT, "the qcoder daemon started but did not answer on %s within %d ms",
                   abs_sock, wait_ms);
      break;
    }
    usleep((useconds_t)sleep_ms * 1000);
    if (sleep_ms < 50) sleep_ms *= 2;
  }
  /* Connected — maybe to a daemon someone else started. Wait until the one we started
   * has settled (it is the daemon: "listening on"; or it lost the race and exited), so
   * it cannot come up later, after the daemon we use has gone, and linger unasked. */
  while (rc == QC_OK && !err_eof && !strstr(err, "listening on") && qc_now_ms() < deadline) {
    struct pollfd pfd = {errp[0], POLLIN, 0};
    if (poll(&pfd, 1, (int)(deadline - qc_now_ms())) <= 0) continue;
    ssize_t n = read(errp[0], err + errlen, sizeof err - 1 - errlen);
    if (n > 0) errlen += (size_t)n;
    else if (n == 0 || (errno != EINTR && errno != EAGAIN)) err_eof = 1;
    err[errlen] = '\0';
    if (errlen == sizeof err - 1) break;
  }
  close(errp[0]);
  return rc;
}

/* ---- one blocking call ------------------------------------------------------------- */

static _Atomic long long rpc__client_next_id = 1;

static int send_all(int fd, const char *p, size_t n, uint64_t deadline) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      p += w;
      n -= (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      uint64_t now = qc_now_ms();
      if (now >= deadline) return RPC_ETIMEOUT;
      struct pollfd pfd = {fd, POLLOUT, 0};
      poll(&pfd, 1, (int)(deadline - now));
      continue;
    }
    return RPC_ENOT_RUNNING;
  }
  return QC_OK;
}

int rpc_client_call(int fd, const char *method, json_t *params_steal, int timeout_ms, json_t **result,
                    int *err_code, char *why, size_t why_len) {
  *result = NULL;
  if (err_code) *err_code = 0;
  json_int_t id = (json_int_t)atomic_fetch_add(&rpc__client_next_id, 1);
  json_t *req = rpc_make_request(id, method, params_steal);
  char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
  json_decref(req);
  if (!text) return QC_ENOMEM;
  uint64_t deadline = qc_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
  size_t len = strlen(text);
  qc_buf line;
  qc_buf_init(&line, 0);
  int rc = qc_buf_append(&line, text, len);
  if (!rc) rc = qc_buf_putc(&line, '\n');
  free(text);
  if (!rc) rc = send_all(fd, line.data, line.len, deadline);
  qc_buf_release(&line);
  if (rc == RPC_ENOT_RUNNING) return set_why(why, why_len, rc, "the daemon closed the connection");
  if (rc == RPC_ETIMEOUT) return set_why(why, why_len, rc, "timed out sending to the daemon");
  if (rc) return rc;

  rpc_framer f;
  rpc_framer_init(&f, RPC_FRAMING_NDJSON, 0);
  char buf[65536];
  rc = RPC_ETIMEOUT;
  for (;;) {
    const char *m;
    size_t mlen;
    int got = rpc_framer_next(&f, &m, &mlen);
    if (got < 0) {
      rc = set_why(why, why_len, RPC_EPROTOCOL, "bad framing from the daemon: %s", f.error);
      break;
    }
    if (got == 1) {
      rpc_msg msg;
      rpc_decode_error de;
      if (rpc_decode(m, mlen, &msg, &de) != 0) {
        json_decref(de.id);
        rc = set_why(why, why_len, RPC_EPROTOCOL, "bad message from the daemon: %s", de.message);
        break;
      }
      if (msg.kind == RPC_MSG_RESPONSE && json_is_integer(msg.id) && json_integer_value(msg.id) == id) {
        if (msg.result) {
          *result = json_incref((json_t *)msg.result);
          rc = QC_OK;
        } else {
          const json_t *em = json_object_get(msg.error, "message");
          if (err_code) *err_code = (int)json_integer_value(json_object_get(msg.error, "code"));
          rc = set_why(why, why_len, RPC_EREMOTE, "%s", json_is_string(em) ? json_string_value(em) : "error");
        }
        rpc_msg_release(&msg);
        break;
      }
      rpc_msg_release(&msg); /* a notification or someone else's answer */
      continue;
    }
    uint64_t now = qc_now_ms();
    if (now >= deadline) {
      rc = set_why(why, why_len, RPC_ETIMEOUT, "the daemon did not answer %s within %d ms", method, timeout_ms);
      break;
    }
    struct pollfd pfd = {fd, POLLIN, 0};
    int pr = poll(&pfd, 1, (int)(deadline - now));
    if (pr < 0 && errno != EINTR) {
      rc = set_why(why, why_len, RPC_ENOT_RUNNING, "poll: %s", strerror(errno));
      break;
    }
    if (pr <= 0) continue;
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (n <= 0) {
      rc = set_why(why, why_len, RPC_ENOT_RUNNING, "the daemon closed the connection");
      break;
    }
    if (rpc_framer_feed(&f, buf, (size_t)n) != 0) {
      rc = QC_ENOMEM;
      break;
    }
  }
  rpc_framer_release(&f);
  return rc;
}

int rpc_client_wait_gone(const char *socket_path, int timeout_ms) {
  char *lock = qc_asprintf("%s.lock", socket_path);
  if (!lock) return 0;
  uint64_t deadline = qc_now_ms() + (uint64_t)timeout_ms;
  int gone = 0;
  for (;;) {
    struct stat st;
    int sock_gone = lstat(socket_path, &st) != 0 && errno == ENOENT;
    int lock_free = 0;
    int fd = open(lock, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
      lock_free = errno == ENOENT;
    } else {
      lock_free = flock(fd, LOCK_SH | LOCK_NB) == 0;
      close(fd);
    }
    if (sock_gone && lock_free) {
      gone = 1;
      break;
    }
    if (qc_now_ms() >= deadline) break;
    usleep(20000);
  }
  free(lock);
  return gone;
}
