/* buf.c — the bounded byte buffer and the common error table.
 *
 * Every buffer is created with a maximum: input that would grow it past that fails with
 * QC_ETOOBIG rather than exhausting memory, which is how hostile RPC messages, model
 * output and command output are kept in check throughout the daemon.
 */
#include "common/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char qc__empty[1];

const char *qc_strerror(int code) {
  switch (code) {
  case QC_OK: return "ok";
#define QC__ERR_CASE(name, msg) case QC_E##name: return msg;
    QC_ERR_MAP(QC__ERR_CASE)
#undef QC__ERR_CASE
  default: return "unknown error";
  }
}

void qc_buf_init(qc_buf *b, size_t max) {
  b->data = qc__empty;
  b->len = 0;
  b->cap = 0;
  b->max = max ? max : SIZE_MAX / 2;
}

void qc_buf_release(qc_buf *b) {
  if (b->cap) free(b->data);
  b->data = qc__empty;
  b->len = 0;
  b->cap = 0;
}

void qc_buf_reset(qc_buf *b) {
  b->len = 0;
  if (b->cap) b->data[0] = '\0';
}

int qc_buf_reserve(qc_buf *b, size_t extra) {
  if (extra > b->max || b->len > b->max - extra) return QC_ETOOBIG;
  size_t need = b->len + extra + 1;
  if (need <= b->cap) return QC_OK;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  if (cap > b->max + 1) cap = b->max + 1;
  if (cap < need) cap = need;
  char *p = realloc(b->cap ? b->data : NULL, cap);
  if (!p) return QC_ENOMEM;
  if (!b->cap) p[0] = '\0';
  b->data = p;
  b->cap = cap;
  return QC_OK;
}

int qc_buf_append(qc_buf *b, const void *p, size_t n) {
  if (n == 0) return QC_OK;
  int rc = qc_buf_reserve(b, n);
  if (rc) return rc;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return QC_OK;
}

int qc_buf_puts(qc_buf *b, const char *s) { return qc_buf_append(b, s, strlen(s)); }

int qc_buf_putc(qc_buf *b, char c) { return qc_buf_append(b, &c, 1); }

int qc_buf_vprintf(qc_buf *b, const char *fmt, va_list ap) {
  va_list cp;
  va_copy(cp, ap);
  char small[256];
  int n = vsnprintf(small, sizeof small, fmt, cp);
  va_end(cp);
  if (n < 0) return QC_EINVAL;
  if ((size_t)n < sizeof small) return qc_buf_append(b, small, (size_t)n);
  int rc = qc_buf_reserve(b, (size_t)n);
  if (rc) return rc;
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
  return QC_OK;
}

int qc_buf_printf(qc_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = qc_buf_vprintf(b, fmt, ap);
  va_end(ap);
  return rc;
}

void qc_buf_consume(qc_buf *b, size_t n) {
  if (n >= b->len) {
    qc_buf_reset(b);
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
  b->data[b->len] = '\0';
}

void qc_buf_truncate(qc_buf *b, size_t len) {
  if (len >= b->len) return;
  b->len = len;
  b->data[len] = '\0';
}

char *qc_buf_detach(qc_buf *b, size_t *len) {
  char *p;
  if (b->cap) {
    p = b->data;
  } else {
    p = malloc(1);
    if (p) p[0] = '\0';
  }
  if (len) *len = b->len;
  b->data = qc__empty;
  b->len = 0;
  b->cap = 0;
  return p;
}
