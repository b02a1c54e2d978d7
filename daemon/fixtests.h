/* fixtests.h — the parts of `qcoder fix-tests` that are pure logic (internal to daemon/,
 * prefix `ft_`): reading a suite run into per-test statuses, grouping failures, the
 * keep/revert rule, the SWE-bench-style grading, and the reports. cmd_fixtests.c drives
 * them: it runs the suite, talks to the agent through the daemon, takes and restores
 * checkpoints. Kept apart so the rules are unit-tested without a daemon or a model.
 *
 * Vocabulary (SWE-bench's, see docs/workflows.md):
 *   FAIL_TO_PASS  the tests that fail in the first run (what fix-tests works on)
 *   PASS_TO_PASS  the tests that pass in the first run (they must keep passing)
 *   resolution    FULL when every FAIL_TO_PASS test passes and every PASS_TO_PASS test
 *                 still passes (or is skipped); PARTIAL when some but not all
 *                 FAIL_TO_PASS pass and PASS_TO_PASS all hold; NO otherwise.
 *
 * Ownership: every struct here owns its strings and JSON; ft_*_release frees them.
 */
#ifndef QC_DAEMON_FIXTESTS_H
#define QC_DAEMON_FIXTESTS_H

#include <jansson.h>
#include <stddef.h>

/* ---- limits, each with its reason ------------------------------------------------------ */

/* A failing test's output shown to the model, and all of a group's together: enough for
 * an assertion message and a stack trace, small enough for a local model's context. */
#define FT_TEST_OUTPUT_IN_PROMPT 2048
#define FT_GROUP_OUTPUT_IN_PROMPT 12288
/* Tests named in one group's prompt (the rest are summarised by count). */
#define FT_TESTS_IN_PROMPT 20
/* Lines of failure output that make an error signature, and its length. */
#define FT_SIGNATURE_LINES 2
#define FT_SIGNATURE_MAX 160
/* The model's final explanation kept per attempt (report.md quotes it). */
#define FT_EXPLANATION_MAX 4096
/* Failure output kept per test in report.json / junit.xml. */
#define FT_REPORT_OUTPUT_MAX 4096

/* The name of the stand-in test of a suite whose output has no per-test results: it
 * passes when the command exits 0. */
#define FT_SUITE_TEST "(test command)"

/* ---- one run of the suite ------------------------------------------------------------- */

typedef enum ft_status {
  FT_PASSED,
  FT_FAILED,
  FT_ERROR,    /* the runner's "error" (a crash, a setup failure) */
  FT_SKIPPED,
  FT_MISSING,  /* not in this run at all (counts as failing) */
} ft_status;

const char *ft_status_name(ft_status s); /* "passed", "failed", "error", "skipped", "missing" */
/* Failing for the keep rule and for FAIL_TO_PASS: failed, error, missing. */
int ft_status_failing(ft_status s);

typedef struct ft_result {
  char *key;      /* suite + "::" + name (or name): the identity across runs */
  char *name, *suite, *file;  /* suite, file may be NULL */
  ft_status status;
  char *output;   /* failure output, capped; may be NULL */
  double duration_s;
} ft_result;

typedef struct ft_run {
  ft_result *r;
  size_t n;
  int per_test;      /* 1: the runner's output had per-test results */
  int exit_code, signal, timed_out;
  char *format;      /* "tap", "junit", … or NULL */
  char *output;      /* the command's output, capped head+tail */
  double elapsed_s;
  size_t *by_key;    /* indices of r sorted by key, for lookups */
} ft_run;

/* Read tool_tests_run()'s results. Without per-test results the run holds one test,
 * FT_SUITE_TEST, passing iff the command exited 0. 0, or -1 when out of memory. */
int ft_run_from_json(const json_t *results, double elapsed_s, ft_run *out);
void ft_run_release(ft_run *run);
/* The status of a test in a run: FT_MISSING when absent — except FT_SUITE_TEST, which
 * passes in any run that has per-test results. */
ft_status ft_run_status(const ft_run *run, const char *key);
const ft_result *ft_run_find(const ft_run *run, const char *key);

/* ---- grouping ---------------------------------------------------------------------------- */

/* The file a test belongs to: its "file", else the part of a pytest-style name before
 * "::", else the first FILE:LINE reference in its output, else its suite; malloc'd, or
 * NULL when none is known. */
char *ft_test_file(const ft_result *t);
/* The error signature of a failure: its first FT_SIGNATURE_LINES non-blank lines with
 * TAP/comment markers and surrounding blanks stripped, digits runs replaced by "N" and
 * hex addresses by "0xH", whitespace collapsed, capped at FT_SIGNATURE_MAX bytes
 * (malloc'd; "" for no output). Two failures with the same file and signature are the
 * same problem as far as fix-tests can tell. */
char *ft_signature(const char *output);

typedef struct ft_group_key {
  char *file;        /* may be NULL */
  char *signature;
  size_t *tests;     /* indices into run->r */
  size_t n;
} ft_group_key;

/* Group the failing tests of `run` (in the order they appear) by (file, signature);
 * `tests` are indices into run->r.
 * `only` (may be NULL) restricts to keys for which it returns 1. *groups is malloc'd. */
int ft_group_failures(const ft_run *run, int (*only)(void *user, const char *key), void *user,
                      ft_group_key **groups, size_t *n_groups);
void ft_group_keys_free(ft_group_key *g, size_t n);

/* ---- the keep rule ----------------------------------------------------------------------- */

/* Compare a run after a change with the accepted state: `fixed` lists the tests failing
 * before that pass now, `broke` the tests passing before that fail now (skipped counts
 * as still passing, as SWE-bench counts PASS_TO_PASS). `before` maps a test key to its
 * accepted status (callback so the caller keeps its own table); `keys` are all tests
 * known. Keep iff fixed >= 1 and broke == 0. Returns 1 keep, 0 revert. The arrays are
 * new references of test keys. */
typedef ft_status (*ft_status_fn)(void *user, const char *key);
int ft_decide(const char *const *keys, size_t n_keys, ft_status_fn before, void *user, const ft_run *after,
              json_t **fixed, json_t **broke);

/* SWE-bench's resolution from the counts: "FULL", "PARTIAL" or "NO". With no
 * FAIL_TO_PASS tests at all the suite was green: FULL when PASS_TO_PASS holds. */
const char *ft_resolution(size_t f2p_total, size_t f2p_passing, size_t p2p_total, size_t p2p_holding);

/* ---- reports ----------------------------------------------------------------------------- */

/* JUnit XML of a run (one <testsuite> per suite or file, failures with their output,
 * text sanitised to XML 1.0 characters). Malloc'd. */
char *ft_junit_xml(const ft_run *run, const char *name);
/* Markdown of report.json's object (the shape cmd_fixtests.c builds; see
 * docs/workflows.md): summary table, per-test table, per-group narrative with the
 * model's explanation. Malloc'd. */
char *ft_report_markdown(const json_t *report);
/* Write `len` bytes to path atomically (temp file + rename); 0 or -1 with errno. */
int ft_write_file(const char *path, const char *data, size_t len);

#endif /* QC_DAEMON_FIXTESTS_H */
