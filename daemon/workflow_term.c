/* workflow_term.c — terminal output and Ctrl-C for the long-running commands.
 *
 * Formatting helpers (sizes, durations, a download progress line) and the interrupt
 * protocol every workflow command follows: the first Ctrl-C asks for a clean stop (cancel
 * the agent, restore a checkpoint, write what is known), the second exits at once. The
 * signal handler only counts and writes one byte to a pipe; a helper thread reads it and
 * runs the command's callback, which may then lock, allocate and talk to the daemon.
 */
#include "daemon/workflow.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

void wf_fmt_bytes(uint64_t n, char *out, size_t len) {
  static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = (double)n;
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, u++;
  if (u == 0) snprintf(out, len, "%llu B", (unsigned long long)n);
  else snprintf(out, len, v < 10 ? "%.2f %s" : v < 100 ? "%.1f %s" : "%.0f %s", v, unit[u]);
}

void wf_fmt_duration(double s, char *out, size_t len) {
  if (s < 0) s = 0;
  if (s < 60) snprintf(out, len, "%.1fs", s);
  else if (s < 3600) snprintf(out, len, "%dm%02ds", (int)s / 60, (int)s % 60);
  else snprintf(out, len, "%dh%02dm", (int)(s / 3600), ((int)s % 3600) / 60);
}

int wf_term_width(int fd) {
  struct winsize ws;
  if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20) return ws.ws_col;
  return 80;
}

void wf_fmt_progress(char *out, size_t len, int width, uint64_t done, uint64_t total, double rate) {
  char d[32], t[32], r[32], eta[32] = "";
  wf_fmt_bytes(done, d, sizeof d);
  wf_fmt_bytes(total, t, sizeof t);
  wf_fmt_bytes((uint64_t)(rate > 0 ? rate : 0), r, sizeof r);
  char tail[192];
  if (total) {
    if (rate > 0 && total > done) {
      char e[24];
      wf_fmt_duration((double)(total - done) / rate, e, sizeof e);
      snprintf(eta, sizeof eta, "  ETA %s", e);
    }
    snprintf(tail, sizeof tail, " %3d%%  %s / %s  %s/s%s", (int)(done * 100 / total), d, t, r, eta);
  } else {
    snprintf(tail, sizeof tail, " %s  %s/s", d, r);
  }
  int bar = width - (int)strlen(tail) - 3;
  if (bar > 40) bar = 40;
  if (!total || bar < 5) {
    snprintf(out, len, "%s", tail + 1);
    return;
  }
  char b[48];
  int fill = (int)((double)done / (double)total * bar);
  if (fill > bar) fill = bar;
  for (int i = 0; i < bar; i++) b[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
  b[bar] = '\0';
  snprintf(out, len, "[%s]%s", b, tail);
}

/* ---- interrupts ------------------------------------------------------------------------ */

static struct {
  int pipe[2];
  pthread_t thread;
  int running;
  wf_interrupt_fn fn;
  void *user;
  int second_exit;
  atomic_int count;
  struct sigaction old_int, old_term, old_pipe;
} g_int = {.pipe = {-1, -1}};

static void on_signal(int sig) {
  (void)sig;
  int n = atomic_fetch_add(&g_int.count, 1) + 1;
  if (n >= 2) _exit(g_int.second_exit);
  int e = errno;
  char c = 'i';
  if (write(g_int.pipe[1], &c, 1) < 0) { /* nothing to do in a handler */
  }
  errno = e;
}

static void *watch(void *arg) {
  (void)arg;
  for (;;) {
    char c;
    ssize_t n = read(g_int.pipe[0], &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || c == 'q') break;
    if (g_int.fn) g_int.fn(g_int.user);
  }
  return NULL;
}

int wf_interrupt_install(wf_interrupt_fn fn, void *user, int second_exit) {
  if (g_int.running) return -1;
  if (pipe2(g_int.pipe, O_CLOEXEC) != 0) return -1;
  g_int.fn = fn;
  g_int.user = user;
  g_int.second_exit = second_exit;
  atomic_store(&g_int.count, 0);
  if (pthread_create(&g_int.thread, NULL, watch, NULL) != 0) {
    close(g_int.pipe[0]);
    close(g_int.pipe[1]);
    g_int.pipe[0] = g_int.pipe[1] = -1;
    return -1;
  }
  g_int.running = 1;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, &g_int.old_int);
  sigaction(SIGTERM, &sa, &g_int.old_term);
  struct sigaction ign;
  memset(&ign, 0, sizeof ign);
  ign.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ign, &g_int.old_pipe);
  return 0;
}

int wf_interrupted(void) { return atomic_load(&g_int.count); }

void wf_interrupt_uninstall(void) {
  if (!g_int.running) return;
  sigaction(SIGINT, &g_int.old_int, NULL);
  sigaction(SIGTERM, &g_int.old_term, NULL);
  sigaction(SIGPIPE, &g_int.old_pipe, NULL);
  char c = 'q';
  if (write(g_int.pipe[1], &c, 1) < 0) { /* the thread then ends at close */
  }
  pthread_join(g_int.thread, NULL);
  close(g_int.pipe[0]);
  close(g_int.pipe[1]);
  g_int.pipe[0] = g_int.pipe[1] = -1;
  g_int.running = 0;
}
