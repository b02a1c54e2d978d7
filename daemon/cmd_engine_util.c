/* cmd_engine_util.c — see cmd_engine_util.h. */
#include "daemon/cmd_engine_util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int qc_cmd_parse_long(const char *s, long lo, long hi, long *out) {
  if (!s || !*s) return -1;
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

int qc_cmd_parse_u64(const char *s, uint64_t *out) {
  if (!s || !*s || *s == '-') return -1;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end) return -1;
  *out = v;
  return 0;
}

int qc_cmd_parse_float(const char *s, float lo, float hi, float *out) {
  if (!s || !*s) return -1;
  char *end;
  errno = 0;
  float v = strtof(s, &end);
  if (errno || *end || !isfinite(v) || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

int qc_cmd_parse_tokens(const char *s, size_t max, int32_t **ids, size_t *n) {
  *ids = NULL;
  *n = 0;
  if (!s || !*s) return -1;
  size_t cap = 1;
  for (const char *p = s; *p; p++) cap += *p == ',';
  if (cap > max) return -1;
  int32_t *v = malloc(cap * sizeof *v);
  if (!v) return -1;
  size_t k = 0;
  const char *p = s;
  for (;;) {
    while (*p == ' ') p++;
    if (*p < '0' || *p > '9') { free(v); return -1; }
    long long x = 0;
    while (*p >= '0' && *p <= '9') {
      x = x * 10 + (*p - '0');
      if (x > INT32_MAX) { free(v); return -1; }
      p++;
    }
    while (*p == ' ') p++;
    v[k++] = (int32_t)x;
    if (*p == '\0') break;
    if (*p != ',') { free(v); return -1; }
    p++;
  }
  *ids = v;
  *n = k;
  return 0;
}
