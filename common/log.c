/* log.c — levelled logging to a file or stderr.
 *
 * One process-wide sink guarded by a mutex so engine threads, tool threads and the
 * event loop can all log. Lines carry a UTC timestamp, the level, the pid and the
 * source position, so a log shared by several daemon runs stays readable.
 */
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t qc__log_mu = PTHREAD_MUTEX_INITIALIZER;
static FILE *qc__log_fp;                      /* NULL: stderr */
static _Atomic int qc__log_level = QC_LOG_WARN;

static const char *const qc__level_names[] = {"error", "warn", "info", "debug", "trace"};

int qc_log_open(const char *path, qc_log_level level) {
  FILE *fp = NULL;
  if (path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return QC_EIO;
    fp = fdopen(fd, "a");
    if (!fp) {
      close(fd);
      return QC_ENOMEM;
    }
    setvbuf(fp, NULL, _IOLBF, 0);
  }
  pthread_mutex_lock(&qc__log_mu);
  if (qc__log_fp) fclose(qc__log_fp);
  qc__log_fp = fp;
  atomic_store(&qc__log_level, (int)level);
  pthread_mutex_unlock(&qc__log_mu);
  return QC_OK;
}

void qc_log_close(void) {
  pthread_mutex_lock(&qc__log_mu);
  if (qc__log_fp) fclose(qc__log_fp);
  qc__log_fp = NULL;
  pthread_mutex_unlock(&qc__log_mu);
}

void qc_log_set_level(qc_log_level level) { atomic_store(&qc__log_level, (int)level); }

qc_log_level qc_log_get_level(void) { return (qc_log_level)atomic_load(&qc__log_level); }

int qc_log_level_parse(const char *name, qc_log_level *out) {
  for (int i = 0; i <= QC_LOG_TRACE; i++) {
    if (strcmp(name, qc__level_names[i]) == 0) {
      *out = (qc_log_level)i;
      return QC_OK;
    }
  }
  return QC_EINVAL;
}

void qc_log_write(qc_log_level level, const char *file, int line, const char *fmt, ...) {
  int saved = errno;
  struct timeval tv;
  gettimeofday(&tv, NULL);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  char ts[32];
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  const char *base = strrchr(file, '/');
  base = base ? base + 1 : file;

  pthread_mutex_lock(&qc__log_mu);
  FILE *fp = qc__log_fp ? qc__log_fp : stderr;
  fprintf(fp, "%s.%03ldZ %-5s [%d] %s:%d: ", ts, (long)(tv.tv_usec / 1000),
          qc__level_names[level <= QC_LOG_TRACE ? level : QC_LOG_TRACE], (int)getpid(), base, line);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(fp, fmt, ap);
  va_end(ap);
  fputc('\n', fp);
  fflush(fp);
  pthread_mutex_unlock(&qc__log_mu);
  errno = saved;
}
