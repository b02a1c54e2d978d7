/* util.c — per-user directories, files, UTF-8, strings, hashing and clocks.
 *
 * The directory rules follow the XDG base-directory spec with a QCODER_* override for
 * each, so tests and CI can point a daemon at private directories without touching the
 * user's own.
 */
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- directories ----------------------------------------------------------------- */

static const char *qc__home(void) {
  const char *h = getenv("HOME");
  if (h && *h == '/') return h;
  struct passwd *pw = getpwuid(getuid());
  return pw && pw->pw_dir && *pw->pw_dir == '/' ? pw->pw_dir : NULL;
}

static char *qc__xdg_dir(const char *override, const char *xdg, const char *fallback_rel) {
  const char *v = getenv(override);
  if (v && *v == '/') return strdup(v);
  v = getenv(xdg);
  if (v && *v == '/') return qc_path_join(v, "qcoder");
  const char *home = qc__home();
  if (!home) return NULL;
  return qc_asprintf("%s/%s/qcoder", home, fallback_rel);
}

char *qc_runtime_dir(void) {
  const char *v = getenv("QCODER_RUNTIME_DIR");
  if (v && *v == '/') return strdup(v);
  v = getenv("XDG_RUNTIME_DIR");
  if (v && *v == '/') return qc_path_join(v, "qcoder");
  return qc_asprintf("/tmp/qcoder-%u", (unsigned)getuid());
}

char *qc_state_dir(void) { return qc__xdg_dir("QCODER_STATE_DIR", "XDG_STATE_HOME", ".local/state"); }
char *qc_cache_dir(void) { return qc__xdg_dir("QCODER_CACHE_DIR", "XDG_CACHE_HOME", ".cache"); }
char *qc_config_dir(void) { return qc__xdg_dir("QCODER_CONFIG_DIR", "XDG_CONFIG_HOME", ".config"); }

char *qc_path_join(const char *a, const char *b) {
  size_t la = strlen(a);
  while (la > 1 && a[la - 1] == '/') la--;
  while (*b == '/') b++;
  return qc_asprintf("%.*s/%s", (int)la, a, b);
}

int qc_mkdir_p(const char *path, unsigned mode) {
  if (!path || !*path) return QC_EINVAL;
  char *p = strdup(path);
  if (!p) return QC_ENOMEM;
  int rc = QC_OK;
  for (char *s = p + 1;; s++) {
    if (*s == '/' || *s == '\0') {
      char c = *s;
      *s = '\0';
      if (mkdir(p, mode) != 0 && errno != EEXIST) {
        rc = errno == ENOENT ? QC_ENOENT : QC_EIO;
        goto out;
      }
      *s = c;
      if (c == '\0') break;
    }
  }
  struct stat st;
  if (lstat(path, &st) != 0) {
    rc = QC_EIO;
  } else if (!S_ISDIR(st.st_mode) || st.st_uid != getuid()) {
    rc = QC_EINVAL;
  }
out:
  free(p);
  return rc;
}

int qc_read_file(const char *path, size_t max, char **out, size_t *len) {
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? QC_ENOENT : QC_EIO;
  qc_buf b;
  qc_buf_init(&b, max);
  int rc = QC_OK;
  char chunk[65536];
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      rc = QC_EIO;
      break;
    }
    if (n == 0) break;
    if ((rc = qc_buf_append(&b, chunk, (size_t)n)) != QC_OK) break;
  }
  close(fd);
  if (rc) {
    qc_buf_release(&b);
    return rc;
  }
  *out = qc_buf_detach(&b, len);
  return *out ? QC_OK : QC_ENOMEM;
}

/* ---- UTF-8 ----------------------------------------------------------------------- */

/* Length of the valid sequence at s (1..4), 0 if invalid, -1 if truncated but so far a
 * valid start. */
static int qc__utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  if (c < 0x80) return 1;
  int len;
  unsigned min;
  if (c >= 0xC2 && c <= 0xDF) len = 2, min = 0x80;
  else if (c >= 0xE0 && c <= 0xEF) len = 3, min = 0x800;
  else if (c >= 0xF0 && c <= 0xF4) len = 4, min = 0x10000;
  else return 0;
  unsigned cp = c & (0x3F >> (len - 1));
  for (int i = 1; i < len; i++) {
    if ((size_t)i >= n) return -1;
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
    /* reject overlongs and surrogates as early as the second byte allows */
    if (i == 1) {
      if (c == 0xE0 && s[1] < 0xA0) return 0;
      if (c == 0xED && s[1] > 0x9F) return 0;
      if (c == 0xF0 && s[1] < 0x90) return 0;
      if (c == 0xF4 && s[1] > 0x8F) return 0;
    }
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

int qc_utf8_valid(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    if (p[i] < 0x80) {
      i++;
      continue;
    }
    int l = qc__utf8_seq(p + i, n - i);
    if (l <= 0) return 0;
    i += (size_t)l;
  }
  return 1;
}

size_t qc_utf8_complete_len(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  /* look back at most 3 bytes for the start of the last sequence */
  size_t start = n;
  for (size_t k = 0; k < 4 && start > 0; k++) {
    start--;
    if ((p[start] & 0xC0) != 0x80) {
      int l = qc__utf8_seq(p + start, n - start);
      return l == -1 ? start : n;
    }
  }
  return n;
}

char *qc_utf8_sanitize(const char *s, size_t n, size_t *out_len) {
  const unsigned char *p = (const unsigned char *)s;
  qc_buf b;
  qc_buf_init(&b, 0);
  size_t i = 0;
  while (i < n) {
    int l = p[i] < 0x80 ? 1 : qc__utf8_seq(p + i, n - i);
    if (l > 0) {
      if (qc_buf_append(&b, p + i, (size_t)l)) goto oom;
      i += (size_t)l;
    } else {
      if (qc_buf_append(&b, "\xEF\xBF\xBD", 3)) goto oom;
      i++;
    }
  }
  return qc_buf_detach(&b, out_len);
oom:
  qc_buf_release(&b);
  return NULL;
}

/* ---- strings --------------------------------------------------------------------- */

char *qc_strndup(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (!p) return NULL;
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *qc_asprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *p = NULL;
  int n = vasprintf(&p, fmt, ap);
  va_end(ap);
  return n < 0 ? NULL : p;
}

int qc_str_has_prefix(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

int qc_str_has_suffix(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

/* ---- hashing, time --------------------------------------------------------------- */

void qc_sha256_hex(const void *data, size_t n, char hex[65]) {
  unsigned char md[32];
  unsigned int mdlen = 0;
  EVP_Digest(data, n, md, &mdlen, EVP_sha256(), NULL);
  for (unsigned i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
  hex[64] = '\0';
}

uint64_t qc_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t qc_now_ms(void) { return qc_now_ns() / 1000000ull; }

int64_t qc_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void qc_iso8601(int64_t wall_ms, char *out, size_t n) {
  time_t t = (time_t)(wall_ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
