/* wf_test.h — helpers shared by the workflow tests: a private qcoder environment per test
 * (runtime, state, cache and config directories, so each test gets its own auto-started
 * daemon and cache), fixture repositories, scripted-backend replies in Qwen3-Coder's
 * tool-call syntax, and running the real binary.
 */
#ifndef QC_TESTS_WF_TEST_H
#define QC_TESTS_WF_TEST_H

#include <jansson.h>
#include <stdarg.h>

#include "common/common.h"
#include "tests/test.h"

/* A fresh environment: every QCODER_* directory under one new temp dir (returned,
 * malloc'd); QCODER_MODEL, HF_ENDPOINT, HF_TOKEN and GITHUB_STEP_SUMMARY unset. */
static inline char *wf_env(const char *tag) {
  char *root = qct_tempdir(tag);
  const char *names[] = {"QCODER_RUNTIME_DIR", "QCODER_STATE_DIR", "QCODER_CACHE_DIR", "QCODER_CONFIG_DIR"};
  const char *sub[] = {"run", "state", "cache", "config"};
  for (int i = 0; i < 4; i++) {
    char *d = qc_asprintf("%s/%s", root, sub[i]);
    setenv(names[i], d, 1);
    free(d);
  }
  unsetenv("QCODER_MODEL");
  unsetenv("HF_ENDPOINT");
  unsetenv("HF_TOKEN");
  unsetenv("GITHUB_STEP_SUMMARY");
  return root;
}

/* One scripted tool call. */
static inline void wf_call(qc_buf *b, const char *name, ...) {
  va_list ap;
  va_start(ap, name);
  qc_buf_printf(b, "<tool_call>\n<function=%s>\n", name);
  for (;;) {
    const char *k = va_arg(ap, const char *);
    if (!k) break;
    const char *v = va_arg(ap, const char *);
    qc_buf_printf(b, "<parameter=%s>\n%s\n</parameter>\n", k, v);
  }
  qc_buf_puts(b, "</function>\n</tool_call>\n");
  va_end(ap);
}

/* Run a shell command line, capture stdout; the exit status (128+signal). */
static inline int wf_sh(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline int wf_sh(char **out, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *cmd = NULL;
  if (vasprintf(&cmd, fmt, ap) < 0) cmd = NULL;
  va_end(ap);
  if (!cmd) return -1;
  int rc = qct_run(cmd, out);
  free(cmd);
  return rc;
}

/* Whether bubblewrap can run here (the workflows run commands in the sandbox). */
static inline int wf_sandbox_works(void) {
  char *d = qct_tempdir("wf-sbx");
  int rc = wf_sh(NULL, "'%s' tool run_command '{\"command\": \"true\"}' --workspace '%s' --sandbox require >/dev/null 2>&1",
                 qct_qcoder_bin(), d);
  free(d);
  return rc == 0;
}

/* A git repository in a new temp dir with the given files (NULL-terminated path, content
 * pairs), committed. */
static inline char *wf_repo(const char *tag, ...) {
  char *d = qct_tempdir(tag);
  va_list ap;
  va_start(ap, tag);
  for (;;) {
    const char *p = va_arg(ap, const char *);
    if (!p) break;
    const char *c = va_arg(ap, const char *);
    char *full = qc_asprintf("%s/%s", d, p);
    qct_write_file(full, c);
    free(full);
  }
  va_end(ap);
  wf_sh(NULL, "cd '%s' && git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm init", d);
  return d;
}

static inline json_t *wf_load_json(const char *path) {
  json_error_t e;
  return json_load_file(path, 0, &e);
}

/* Parse newline-delimited JSON into an array. */
static inline json_t *wf_ndjson(const char *text) {
  json_t *a = json_array();
  const char *p = text ? text : "";
  while (*p) {
    size_t n = strcspn(p, "\n");
    if (n) {
      json_error_t e;
      json_t *o = json_loadb(p, n, 0, &e);
      if (o) json_array_append_new(a, o);
    }
    p += n;
    if (*p) p++;
  }
  return a;
}

/* No daemon left behind: `qcoder status` answers 3 (not running). */
static inline int wf_daemon_gone(void) {
  return wf_sh(NULL, "'%s' status >/dev/null 2>&1", qct_qcoder_bin()) == 3;
}

#endif

/* ---- background children (Ctrl-C tests) ------------------------------------------------ */

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

/* Start argv[0] with stdout (and stderr) to files; its pid. */
static inline pid_t wf_spawn(char *const argv[], const char *out_path, const char *err_path) {
  pid_t pid = fork();
  if (pid == 0) {
    int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int n = open("/dev/null", O_RDONLY);
    if (o < 0 || e < 0 || n < 0) _exit(127);
    dup2(n, 0);
    dup2(o, 1);
    dup2(e, 2);
    setpgid(0, 0); /* not in the test runner's terminal group */
    execv(argv[0], argv);
    _exit(127);
  }
  return pid;
}

static inline void wf_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Wait until the file holds `needle` (1) or the time is up (0). */
static inline int wf_wait_for(const char *path, const char *needle, int timeout_ms) {
  for (int t = 0; t < timeout_ms; t += 20) {
    char *s = qct_read_file(path, NULL);
    int hit = s && strstr(s, needle);
    free(s);
    if (hit) return 1;
    wf_sleep_ms(20);
  }
  return 0;
}

/* waitpid with a timeout: the exit status (128+signal), or -1 on timeout (then killed). */
static inline int wf_wait_exit(pid_t pid, int timeout_ms) {
  for (int t = 0; t < timeout_ms; t += 20) {
    int st;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    wf_sleep_ms(20);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return -1;
}

/* Wait until one line of the file holds both needles. */
static inline int wf_wait_for_line(const char *path, const char *a, const char *b, int timeout_ms) {
  for (int t = 0; t < timeout_ms; t += 20) {
    char *s = qct_read_file(path, NULL);
    int hit = 0;
    for (char *line = s; line && *line && !hit;) {
      char *nl = strchr(line, '\n');
      if (!nl) break; /* only complete lines */
      *nl = '\0';
      hit = strstr(line, a) && strstr(line, b);
      line = nl + 1;
    }
    free(s);
    if (hit) return 1;
    wf_sleep_ms(20);
  }
  return 0;
}
