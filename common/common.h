/* common.h — the small helpers every qcoder module may use (prefix `qc_`).
 *
 * Bounded byte buffers, one error table, levelled logging, the per-user directories
 * (runtime, state, cache, config), UTF-8 checks, hashing and clocks. Nothing here knows
 * about models, tools, agents or sockets: it sits at the bottom of the dependency graph.
 *
 * Ownership: a function returning `char *` hands the caller a malloc'd string to free();
 * a `qc_buf` owns its bytes until qc_buf_release() or qc_buf_detach().
 */
#ifndef QC_COMMON_H
#define QC_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* ---- errors ---------------------------------------------------------------------- */

/* One table: the enum and the messages are generated from the same list. Values are
 * negative so functions can return `>= 0` for success with a count. */
#define QC_ERR_MAP(X)                                                        \
  X(NOMEM, "out of memory")                                                  \
  X(TOOBIG, "data exceeds the size limit")                                   \
  X(IO, "input/output error")                                                \
  X(INVAL, "invalid argument")                                               \
  X(NOENT, "no such file or directory")                                      \
  X(UTF8, "invalid UTF-8")                                                   \
  X(RANGE, "value out of range")

enum {
  QC_OK = 0,
#define QC__ERR_ENUM(name, msg) QC_E##name,
  QC__ERR_FIRST = -100,
  QC_ERR_MAP(QC__ERR_ENUM)
#undef QC__ERR_ENUM
};

/* Message for a QC_E* code; "unknown error" for anything else. Never NULL. */
const char *qc_strerror(int code);

/* ---- bounded buffer -------------------------------------------------------------- */

/* A growable byte buffer with a mandatory maximum (curl's dynbuf idea): appends past
 * `max` fail with QC_ETOOBIG instead of growing without bound. `data` is never NULL and
 * always NUL-terminated (it points to a shared empty string until the first append). */
typedef struct qc_buf {
  char *data;
  size_t len;
  size_t cap;
  size_t max;
} qc_buf;

void qc_buf_init(qc_buf *b, size_t max);
void qc_buf_release(qc_buf *b);            /* free the bytes; the buffer is empty after */
void qc_buf_reset(qc_buf *b);              /* length 0, keep the allocation */
int qc_buf_append(qc_buf *b, const void *p, size_t n);
int qc_buf_puts(qc_buf *b, const char *s);
int qc_buf_putc(qc_buf *b, char c);
int qc_buf_printf(qc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int qc_buf_vprintf(qc_buf *b, const char *fmt, va_list ap);
int qc_buf_reserve(qc_buf *b, size_t extra);
void qc_buf_consume(qc_buf *b, size_t n);  /* drop the first n bytes */
void qc_buf_truncate(qc_buf *b, size_t len);
/* Hand the bytes to the caller (malloc'd, NUL-terminated, never NULL unless out of
 * memory); the buffer is empty after. */
char *qc_buf_detach(qc_buf *b, size_t *len);

/* ---- logging --------------------------------------------------------------------- */

typedef enum { QC_LOG_ERROR = 0, QC_LOG_WARN, QC_LOG_INFO, QC_LOG_DEBUG, QC_LOG_TRACE } qc_log_level;

/* Log to `path` (appended, created 0600) or to stderr when path is NULL. Safe to call
 * again to reopen. Until called, messages of level <= WARN go to stderr. */
int qc_log_open(const char *path, qc_log_level level);
void qc_log_close(void);
void qc_log_set_level(qc_log_level level);
qc_log_level qc_log_get_level(void);
int qc_log_level_parse(const char *name, qc_log_level *out); /* "error".."trace" */
void qc_log_write(qc_log_level level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define QC_LOG(lvl, ...)                                                   \
  do {                                                                     \
    if ((lvl) <= qc_log_get_level()) qc_log_write((lvl), __FILE__, __LINE__, __VA_ARGS__); \
  } while (0)
#define qc_error(...) QC_LOG(QC_LOG_ERROR, __VA_ARGS__)
#define qc_warn(...) QC_LOG(QC_LOG_WARN, __VA_ARGS__)
#define qc_info(...) QC_LOG(QC_LOG_INFO, __VA_ARGS__)
#define qc_debug(...) QC_LOG(QC_LOG_DEBUG, __VA_ARGS__)
#define qc_trace(...) QC_LOG(QC_LOG_TRACE, __VA_ARGS__)

/* ---- per-user directories -------------------------------------------------------- */

/* Each returns a malloc'd absolute path (without creating it) or NULL when no home can
 * be found. Environment overrides come first, then the XDG variables:
 *   runtime  $QCODER_RUNTIME_DIR | $XDG_RUNTIME_DIR/qcoder | /tmp/qcoder-$UID
 *   state    $QCODER_STATE_DIR   | $XDG_STATE_HOME/qcoder  | ~/.local/state/qcoder
 *   cache    $QCODER_CACHE_DIR   | $XDG_CACHE_HOME/qcoder  | ~/.cache/qcoder
 *   config   $QCODER_CONFIG_DIR  | $XDG_CONFIG_HOME/qcoder | ~/.config/qcoder */
char *qc_runtime_dir(void);
char *qc_state_dir(void);
char *qc_cache_dir(void);
char *qc_config_dir(void);

/* mkdir -p with `mode` for the directories it creates. The last component, when it
 * exists already, must be a directory owned by the current user (so a runtime directory
 * planted by someone else in /tmp is refused with QC_EINVAL). */
int qc_mkdir_p(const char *path, unsigned mode);

/* Join two path parts with one '/'. Malloc'd. */
char *qc_path_join(const char *a, const char *b);

/* Read a whole file up to `max` bytes (QC_ETOOBIG past that). *out is malloc'd and
 * NUL-terminated. */
int qc_read_file(const char *path, size_t max, char **out, size_t *len);

/* ---- text ------------------------------------------------------------------------ */

/* Whole buffer is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int qc_utf8_valid(const char *s, size_t n);
/* Length of the longest prefix of s[0..n) that does not end inside a multi-byte
 * sequence which could still be completed by more bytes. Used to hold back a partial
 * character in streamed output. */
size_t qc_utf8_complete_len(const char *s, size_t n);
/* Copy with every invalid sequence replaced by U+FFFD. Malloc'd. */
char *qc_utf8_sanitize(const char *s, size_t n, size_t *out_len);

char *qc_strndup(const char *s, size_t n);
char *qc_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int qc_str_has_prefix(const char *s, const char *prefix);
int qc_str_has_suffix(const char *s, const char *suffix);

/* ---- hashing, time --------------------------------------------------------------- */

/* SHA-256 of the bytes as 64 lowercase hex characters plus NUL in `hex`. */
void qc_sha256_hex(const void *data, size_t n, char hex[65]);

uint64_t qc_now_ns(void);       /* monotonic */
uint64_t qc_now_ms(void);       /* monotonic */
int64_t qc_wall_ms(void);       /* Unix epoch milliseconds */
/* ISO 8601 UTC ("2026-11-25T01:10:13Z") of a wall time in ms; `out` >= 32 bytes. */
void qc_iso8601(int64_t wall_ms, char *out, size_t n);

#endif /* QC_COMMON_H */
