/* tap.h — a tiny test harness that prints TAP (Test Anything Protocol):
 * "ok N - name" / "not ok N - name" followed by "# file:line: what was wrong". */
#ifndef MINILIB_TAP_H
#define MINILIB_TAP_H

#include <stdio.h>
#include <string.h>

extern int tap_count, tap_failed;

#define TAP_RESULT(ok, name) \
  (printf("%s %d - %s\n", (ok) ? "ok" : "not ok", ++tap_count, (name)), tap_failed += !(ok), (ok))

#define CHECK_INT(name, got, want)                                                              \
  do {                                                                                          \
    long long g_ = (long long)(got), w_ = (long long)(want);                                    \
    if (!TAP_RESULT(g_ == w_, name))                                                            \
      printf("# %s:%d: %s: expected %lld, got %lld\n", __FILE__, __LINE__, #got, w_, g_);       \
  } while (0)

#define CHECK_STR(name, got, want)                                                              \
  do {                                                                                          \
    const char *g_ = (got), *w_ = (want);                                                       \
    if (!TAP_RESULT(strcmp(g_, w_) == 0, name))                                                 \
      printf("# %s:%d: %s: expected \"%s\", got \"%s\"\n", __FILE__, __LINE__, #got, w_, g_);   \
  } while (0)

void test_strutil(void);
void test_mathutil(void);

#endif
