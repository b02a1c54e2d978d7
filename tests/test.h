/* test.h — the unit-test harness: a registry of TEST() functions and assertions.
 *
 * Each test file is one executable (one ctest entry per file). TEST(name) registers a
 * function at load time; main() from QC_TEST_MAIN runs all of them, or those named on the
 * command line, and reports each. A failed assertion prints where and why and abandons
 * that test only (longjmp back to the runner), so one failure does not hide the others.
 * Helpers for temporary directories and the shared oracle folder live here too.
 */
#ifndef QC_TEST_H
#define QC_TEST_H

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef void (*qct_fn)(void);
struct qct_case { const char *name; qct_fn fn; };

#define QCT_MAX_CASES 512
extern struct qct_case qct_cases[QCT_MAX_CASES];
extern int qct_ncases;
extern jmp_buf qct_jmp;
extern int qct_failed_current;

static inline void qct_register(const char *name, qct_fn fn) {
  if (qct_ncases < QCT_MAX_CASES) qct_cases[qct_ncases++] = (struct qct_case){name, fn};
}

#define TEST(name)                                                              \
  static void test_##name(void);                                                \
  __attribute__((constructor)) static void qct_reg_##name(void) { qct_register(#name, test_##name); } \
  static void test_##name(void)

#define QCT_FAIL(...)                                                           \
  do {                                                                          \
    fprintf(stderr, "  FAIL %s:%d: ", __FILE__, __LINE__);                      \
    fprintf(stderr, __VA_ARGS__);                                               \
    fputc('\n', stderr);                                                        \
    qct_failed_current = 1;                                                     \
    longjmp(qct_jmp, 1);                                                        \
  } while (0)

#define ASSERT(cond)                                                            \
  do { if (!(cond)) QCT_FAIL("assertion failed: %s", #cond); } while (0)
#define ASSERT_MSG(cond, ...)                                                   \
  do { if (!(cond)) QCT_FAIL(__VA_ARGS__); } while (0)
#define ASSERT_EQ_INT(a, b)                                                     \
  do { long long qa_ = (long long)(a), qb_ = (long long)(b);                    \
       if (qa_ != qb_) QCT_FAIL("%s == %s: %lld != %lld", #a, #b, qa_, qb_); } while (0)
#define ASSERT_STR_EQ(a, b)                                                     \
  do { const char *qa_ = (a), *qb_ = (b);                                       \
       if (!qa_ || !qb_ || strcmp(qa_, qb_) != 0)                               \
         QCT_FAIL("%s == %s:\n    got:  \"%s\"\n    want: \"%s\"", #a, #b,      \
                  qa_ ? qa_ : "(null)", qb_ ? qb_ : "(null)"); } while (0)
#define ASSERT_CONTAINS(hay, needle)                                            \
  do { const char *qh_ = (hay), *qn_ = (needle);                                \
       if (!qh_ || !strstr(qh_, qn_))                                           \
         QCT_FAIL("%s should contain \"%s\"; it is:\n%s", #hay, qn_, qh_ ? qh_ : "(null)"); } while (0)
#define ASSERT_NEAR(a, b, tol)                                                  \
  do { double qa_ = (a), qb_ = (b);                                             \
       if (!(fabs(qa_ - qb_) <= (tol)))                                         \
         QCT_FAIL("%s ~ %s: %.9g vs %.9g (tol %g)", #a, #b, qa_, qb_, (double)(tol)); } while (0)

/* Skip the current test with a reason (counted, not failed). */
#define SKIP(...)                                                               \
  do { fprintf(stderr, "  SKIP: "); fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); \
       qct_failed_current = -1; longjmp(qct_jmp, 1); } while (0)

/* A fresh directory under $TMPDIR; removed at exit unless QCT_KEEP is set. Malloc'd. */
char *qct_tempdir(const char *tag);
/* Path of a file in the shared folder beside the repository (oracle, references), or
 * NULL when the folder is absent. Malloc'd. */
char *qct_shared_path(const char *rel);
/* Path in tests/data. Malloc'd. */
char *qct_data_path(const char *rel);
/* Path of the built qcoder binary. */
const char *qct_qcoder_bin(void);
/* Write a file (creating parents); returns 0 on success. */
int qct_write_file(const char *path, const char *content);
/* Read a whole file; malloc'd, NULL on error. */
char *qct_read_file(const char *path, size_t *len);
/* Run a shell command, capture stdout (malloc'd, may be NULL), return exit status
 * (or 128+signal). */
int qct_run(const char *cmd, char **out);

#define QC_TEST_MAIN                                                            \
  struct qct_case qct_cases[QCT_MAX_CASES];                                     \
  int qct_ncases;                                                               \
  jmp_buf qct_jmp;                                                              \
  int qct_failed_current;                                                       \
  int main(int argc, char **argv) { return qct_main(argc, argv); }

int qct_main(int argc, char **argv);

#endif
