/* test_main.c — the runner behind test.h and its helpers (temp dirs, paths, commands).
 *
 * Kept in its own library so every test executable shares one runner.
 */
#include "tests/test.h"

#include <errno.h>
#include <ftw.h>
#include <sys/wait.h>

static char *qct_tmpdirs[256];
static int qct_ntmp;

static int qct_rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st; (void)flag; (void)ftw;
  remove(p);
  return 0;
}

static void qct_cleanup(void) {
  if (getenv("QCT_KEEP")) return;
  for (int i = 0; i < qct_ntmp; i++) {
    /* make everything writable first: tests create read-only files and dirs */
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "chmod -R u+rwX '%s' 2>/dev/null", qct_tmpdirs[i]);
    if (system(cmd) == -1) { /* best effort */ }
    nftw(qct_tmpdirs[i], qct_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(qct_tmpdirs[i]);
  }
  qct_ntmp = 0;
}

char *qct_tempdir(const char *tag) {
  const char *base = getenv("TMPDIR");
  if (!base || !*base) base = "/tmp";
  char tmpl[PATH_MAX];
  snprintf(tmpl, sizeof tmpl, "%s/qct-%s-XXXXXX", base, tag);
  char *d = mkdtemp(tmpl);
  if (!d) return NULL;
  char *res = realpath(d, NULL);
  if (res && qct_ntmp < 256) qct_tmpdirs[qct_ntmp++] = strdup(res);
  return res;
}

char *qct_shared_path(const char *rel) {
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s/%s", QCT_SHARED_DIR, rel);
  if (access(p, R_OK) != 0) return NULL;
  return strdup(p);
}

char *qct_data_path(const char *rel) {
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s/%s", QCT_DATA_DIR, rel);
  return strdup(p);
}

const char *qct_qcoder_bin(void) {
  const char *e = getenv("QCODER_BIN");
  return e && *e ? e : QCT_QCODER_BIN;
}

int qct_write_file(const char *path, const char *content) {
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  for (char *s = dir + 1; *s; s++) {
    if (*s == '/') { *s = '\0'; mkdir(dir, 0755); *s = '/'; }
  }
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t n = strlen(content);
  int ok = fwrite(content, 1, n, f) == n;
  return (fclose(f) == 0 && ok) ? 0 : -1;
}

char *qct_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (n + 4096 > cap) { cap *= 2; buf = realloc(buf, cap); }
    size_t r = fread(buf + n, 1, cap - n - 1, f);
    n += r;
    if (r == 0) break;
  }
  fclose(f);
  buf[n] = '\0';
  if (len) *len = n;
  return buf;
}

int qct_run(const char *cmd, char **out) {
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (n + 4096 > cap) { cap *= 2; buf = realloc(buf, cap); }
    size_t r = fread(buf + n, 1, cap - n - 1, p);
    n += r;
    if (r == 0) break;
  }
  buf[n] = '\0';
  int st = pclose(p);
  if (out) *out = buf; else free(buf);
  if (st == -1) return -1;
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return -1;
}

int qct_main(int argc, char **argv) {
  atexit(qct_cleanup);
  /* volatile: setjmp below; keeps -Wclobbered quiet at -O1 (asan preset) */
  volatile int failed = 0, passed = 0, skipped = 0;
  for (volatile int i = 0; i < qct_ncases; i++) {
    if (argc > 1) {
      int want = 0;
      for (int a = 1; a < argc; a++) want |= strcmp(argv[a], qct_cases[i].name) == 0;
      if (!want) continue;
    }
    fprintf(stderr, "[ RUN  ] %s\n", qct_cases[i].name);
    qct_failed_current = 0;
    if (setjmp(qct_jmp) == 0) qct_cases[i].fn();
    if (qct_failed_current > 0) {
      failed++;
      fprintf(stderr, "[ FAIL ] %s\n", qct_cases[i].name);
    } else if (qct_failed_current < 0) {
      skipped++;
      fprintf(stderr, "[ SKIP ] %s\n", qct_cases[i].name);
    } else {
      passed++;
      fprintf(stderr, "[  OK  ] %s\n", qct_cases[i].name);
    }
  }
  fprintf(stderr, "%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  return failed ? 1 : 0;
}
