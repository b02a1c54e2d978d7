/* cmd_fixtests.c — `qcoder fix-tests -- TEST_CMD…`: work through a red test suite, keep
 * only the fixes that prove themselves, and report exactly what happened.
 *
 * The loop, with the rules a reviewer can rely on:
 *
 *   1. Run the suite (tool_tests_run: per-test results from JUnit, TAP, ctest, pytest, go,
 *      cargo, node). All green: report, exit 0.
 *   2. Checkpoint the workspace (the start; fix.patch is measured from it) and group the
 *      failures by test file and error signature (fixtests_suite.c).
 *   3. For each group, an agent session through the daemon (full-auto, commands
 *      sandboxed) gets the failing tests' output and a focused instruction. After each
 *      attempt: re-run the group (when the command takes {filter} and the group is one
 *      test), then the whole suite. The change is KEPT only if at least one failing test
 *      now passes and no passing test fails; otherwise the checkpoint is restored and the
 *      reason recorded — and told to the model for its next attempt. A kept change becomes
 *      the new baseline (a new checkpoint). Attempts per group and the wall-clock budget
 *      are hard limits.
 *   4. Reports: report.json (per test, per group, per attempt; SWE-bench buckets and
 *      FULL/PARTIAL/NO), report.md, fix.patch (kept changes vs the start), junit.xml of
 *      the final state's run; report.md is appended to $GITHUB_STEP_SUMMARY.
 *
 * Ctrl-C (or SIGTERM) cancels the agent's turn or the test run in progress, restores the
 * last kept checkpoint, writes a partial report and exits 3; a second one exits at once.
 * Exit: 0 all tests pass, 1 some still fail, 2 error, 3 interrupted.
 */
#include "daemon/commands.h"

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
#include "daemon/acp_client.h"
#include "daemon/client.h"
#include "daemon/fixtests.h"
#include "daemon/workflow.h"
#include "tools/tools.h"

const char cmd_fixtests_usage[] =
    "usage: qcoder fix-tests [--workspace DIR] [--model SPEC | --remote URL] [--max-attempts N]\n"
    "                        [--time-budget SECONDS] [--max-steps N] [--max-tokens N]\n"
    "                        [--report DIR] [--commit BRANCH] [--sandbox require|prefer|off]\n"
    "                        [--test-timeout SECONDS] [--note TEXT] [--json] -- TEST_CMD...\n"
    "\n"
    "Run the test suite, and for each group of failing tests (same test file, same error)\n"
    "let the agent try a fix. A change is kept only if at least one failing test then passes\n"
    "and no passing test fails; otherwise the workspace is restored to the checkpoint taken\n"
    "before the attempt and the reason is recorded (and told to the model for its next try).\n"
    "The agent runs through the daemon (started when none answers, stopped afterwards) in\n"
    "full-auto mode: edits allowed, commands only inside the sandbox.\n"
    "\n"
    "TEST_CMD is run with /bin/sh in the workspace, in the sandbox (one argument is used as\n"
    "is; several are quoted and joined). Per-test results come from JUnit XML, TAP, ctest,\n"
    "pytest, go test -json, cargo test or node; {junit} in the command is a path where the\n"
    "runner may write JUnit XML, {filter} a test name (so a fix can be checked on its own\n"
    "test first). Without per-test results the command's exit status is the one test.\n"
    "\n"
    "  --workspace DIR        the repository (default: the current directory)\n"
    "  --model SPEC           GGUF path, cache NAME, http(s) URL or script:FILE (see\n"
    "                         'qcoder models --which' for where the default comes from)\n"
    "  --remote URL           an OpenAI-compatible server\n"
    "  --max-attempts N       attempts per group of failures (default 3)\n"
    "  --time-budget SECONDS  stop starting new work after this long; the attempt running at\n"
    "                         the deadline is cancelled and undone (default: none)\n"
    "  --max-steps N          model calls per attempt (default 30)\n"
    "  --max-tokens N         generated tokens per attempt (default: no limit)\n"
    "  --report DIR           where the reports go (default: $QCODER_STATE_DIR/fix-tests/\n"
    "                         NAME-TIME; keep it outside the workspace or in an ignored path)\n"
    "  --commit BRANCH        commit the kept changes to a new branch (git repositories)\n"
    "  --sandbox MODE         require (default), prefer (unsandboxed with a warning when\n"
    "                         bubblewrap cannot run), off\n"
    "  --test-timeout SECONDS one run of the suite (default 600)\n"
    "  --note TEXT            a note shown at the top of the reports (why this run exists)\n"
    "  --json                 newline-delimited JSON events on stdout, the last one\n"
    "                         {\"type\": \"result\", …}\n"
    "\n"
    "Reports (in DIR): report.json (per test: before/after, attempts, tokens, time,\n"
    "kept/reverted and why; totals; FAIL_TO_PASS / PASS_TO_PASS; resolution FULL, PARTIAL\n"
    "or NO as SWE-bench grades), report.md, fix.patch (the kept changes, unified diff) and\n"
    "junit.xml (the final run). report.md is appended to $GITHUB_STEP_SUMMARY when set.\n"
    "\n"
    "Exit status: 0 every test passes (nothing failed, or everything was fixed); 1 some\n"
    "tests still fail; 2 error (no model, the suite cannot run, the daemon failed, …);\n"
    "3 interrupted: Ctrl-C undoes the attempt in progress (the workspace is left at the\n"
    "last kept checkpoint) and writes a partial report; a second Ctrl-C exits at once.\n"
    "\n"
    "Example:\n"
    "  qcoder fix-tests --max-attempts 2 --report /tmp/report -- make test\n";

/* ---- state ---------------------------------------------------------------------------- */

typedef struct tst {
  char *key, *name, *suite, *file;
  ft_status before;    /* in the first run */
  int appeared;        /* not in the first run: appeared after a kept change */
  ft_status now;       /* in the accepted state */
  char *out_before;    /* failure output in the first run (or when it appeared) */
  char *out_last;      /* failure output in the latest run that had it */
  int group;           /* -1: never grouped */
  int fixed_group, fixed_attempt;  /* where it was fixed, 0 when not */
} tst;

typedef struct att {
  int n;
  const char *outcome; /* "kept", "reverted", "no change", "interrupted", "time budget" */
  char *why, *stop_reason, *error, *explanation;
  long prompt_tokens, generated_tokens;
  double time_s, agent_s, test_s;
  json_t *fixed, *broke, *still_failing, *changed_files, *changed_test_files, *diffstat;
} att;

typedef struct grp {
  int id;
  char *file, *signature;
  size_t *tests, n_tests;
  att *atts;
  size_t n_atts;
  const char *status;
  char *why;
  char *session_id;
} grp;

typedef struct fx {
  /* options */
  char *root;
  char *command;
  wf_model_choice model;
  int max_attempts, max_steps, json, tty;
  long max_tokens, time_budget_s, test_timeout_s;
  tool_sandbox_policy sandbox;
  const char *sandbox_name;
  const char *commit_branch;
  const char *note;
  char *report_dir;
  /* workspace */
  tool_ws *ws;
  char *cp_start, *cp_base;
  /* tests and groups */
  tst *tests;
  size_t n_tests, cap_tests;
  grp *groups;
  size_t n_groups, cap_groups;
  ft_run current;      /* the run of the accepted state */
  int have_current;
  /* agent */
  acp_client *acp;
  int started_daemon;
  pthread_mutex_t mu;  /* active_session, output */
  char *active_session;
  wf_view *view;
  int cur_group, cur_attempt;
  /* control */
  atomic_int cancel_tests;
  atomic_int interrupted;
  atomic_int deadline_hit;
  atomic_int quit_watch;
  uint64_t t0_ms, deadline_ms;
  int64_t started_wall;
  /* outcome */
  double agent_s, test_s;
  long prompt_tokens, generated_tokens;
  int n_attempts, n_kept, n_reverted, n_nochange;
  char *error;
  const char *stopped_by;   /* NULL, "time_budget", "interrupt", "error" */
  json_t *patch_info, *commit_info;
} fx;

/* ---- output ---------------------------------------------------------------------------- */

static void emit(fx *f, json_t *ev_steal) {
  if (!f->json || !ev_steal) {
    json_decref(ev_steal);
    return;
  }
  char *s = json_dumps(ev_steal, JSON_COMPACT | JSON_ENSURE_ASCII);
  json_decref(ev_steal);
  if (!s) return;
  pthread_mutex_lock(&f->mu);
  fputs(s, stdout);
  fputc('\n', stdout);
  fflush(stdout);
  pthread_mutex_unlock(&f->mu);
  free(s);
}

static void say(fx *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(fx *f, const char *fmt, ...) {
  if (f->json) return;
  char *line = NULL;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&line, fmt, ap) < 0) line = NULL;
  va_end(ap);
  if (!line) return;
  if (f->view) wf_view_printf(f->view, "%s", line);
  else printf("%s\n", line);
  free(line);
}

static void set_error(fx *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(fx *f, const char *fmt, ...) {
  if (f->error) return;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&f->error, fmt, ap) < 0) f->error = NULL;
  va_end(ap);
  if (!f->stopped_by) f->stopped_by = "error";
}

static int stopping(fx *f) { return atomic_load(&f->interrupted) || atomic_load(&f->deadline_hit) || f->error; }

/* ---- tests table ---------------------------------------------------------------------- */

static tst *find_test(fx *f, const char *key) {
  for (size_t i = 0; i < f->n_tests; i++)
    if (!strcmp(f->tests[i].key, key)) return &f->tests[i];
  return NULL;
}

static ft_status now_status(void *user, const char *key) {
  tst *t = find_test(user, key);
  return t ? t->now : FT_MISSING;
}

static char *dupn(const char *s) { return s ? strdup(s) : NULL; }

/* Add the tests of a run not yet known; update out_last from the run. */
static void absorb_run(fx *f, const ft_run *run, int first) {
  for (size_t i = 0; i < run->n; i++) {
    const ft_result *r = &run->r[i];
    tst *t = find_test(f, r->key);
    if (!t) {
      if (f->n_tests == f->cap_tests) {
        size_t nc = f->cap_tests ? f->cap_tests * 2 : 64;
        tst *nt = realloc(f->tests, nc * sizeof *nt);
        if (!nt) continue;
        f->tests = nt;
        f->cap_tests = nc;
      }
      t = &f->tests[f->n_tests++];
      memset(t, 0, sizeof *t);
      t->key = strdup(r->key);
      t->name = strdup(r->name);
      t->suite = dupn(r->suite);
      t->file = ft_test_file(r);
      t->before = first ? r->status : FT_MISSING;
      t->appeared = !first;
      t->now = r->status;
      t->out_before = dupn(r->output);
      t->group = -1;
    }
    if (r->output && ft_status_failing(r->status)) {
      free(t->out_last);
      t->out_last = strdup(r->output);
    }
  }
}

static int ungrouped_failing(void *user, const char *key) {
  tst *t = find_test(user, key);
  return t && t->group < 0 && ft_status_failing(t->now);
}

/* Group the failing tests of `run` that are in no group yet (appended). */
static void add_groups(fx *f, const ft_run *run) {
  ft_group_key *gk = NULL;
  size_t ng = 0;
  if (ft_group_failures(run, ungrouped_failing, f, &gk, &ng) != 0) return;
  for (size_t k = 0; k < ng; k++) {
    if (f->n_groups == f->cap_groups) {
      size_t nc = f->cap_groups ? f->cap_groups * 2 : 16;
      grp *ngp = realloc(f->groups, nc * sizeof *ngp);
      if (!ngp) break;
      f->groups = ngp;
      f->cap_groups = nc;
    }
    grp *g = &f->groups[f->n_groups];
    memset(g, 0, sizeof *g);
    g->id = (int)f->n_groups + 1;
    g->file = gk[k].file;
    g->signature = gk[k].signature;
    gk[k].file = gk[k].signature = NULL;
    g->tests = malloc(gk[k].n * sizeof *g->tests);
    g->status = "not attempted";
    for (size_t j = 0; g->tests && j < gk[k].n; j++) {
      tst *t = find_test(f, run->r[gk[k].tests[j]].key);
      if (!t) continue;
      t->group = (int)f->n_groups;
      g->tests[g->n_tests++] = (size_t)(t - f->tests);
    }
    f->n_groups++;
  }
  ft_group_keys_free(gk, ng);
}

/* ---- running the suite ------------------------------------------------------------------ */

/* 0 and *out; -1 when the run could not happen (interrupted, deadline, or f->error set). */
static int run_suite(fx *f, const char *filter, const char *phase, ft_run *out) {
  memset(out, 0, sizeof *out);
  if (stopping(f)) return -1;
  tool_tests_opts o = {.command = f->command, .filter = filter, .timeout_s = (int)f->test_timeout_s,
                       .cancel = &f->cancel_tests};
  json_t *res = NULL;
  char *err = NULL;
  uint64_t t0 = qc_now_ms();
  int rc = tool_tests_run(f->ws, &o, &res, &err);
  double secs = (double)(qc_now_ms() - t0) / 1000.0;
  f->test_s += secs;
  if (rc != TOOL_OK) {
    if (rc == TOOL_ECANCELLED || atomic_load(&f->cancel_tests)) {
      free(err);
      return -1;
    }
    if (rc == TOOL_ESANDBOX)
      set_error(f, "cannot run the tests: %s (install bubblewrap, or pass --sandbox prefer to run them unsandboxed)",
                err ? err : tool_strerror(rc));
    else set_error(f, "cannot run the tests: %s", err ? err : tool_strerror(rc));
    free(err);
    return -1;
  }
  if (atomic_load(&f->cancel_tests)) { /* killed by the deadline or Ctrl-C: not a verdict */
    json_decref(res);
    return -1;
  }
  const char *warning = json_string_value(json_object_get(json_object_get(res, "summary"), "warning"));
  if (warning && !strcmp(phase, "baseline")) say(f, "warning: %s", warning);
  int prc = ft_run_from_json(res, secs, out);
  json_decref(res);
  if (prc != 0) {
    set_error(f, "out of memory reading the test results");
    ft_run_release(out);
    return -1;
  }
  size_t pass = 0, fail = 0, skip = 0;
  for (size_t i = 0; i < out->n; i++) {
    pass += out->r[i].status == FT_PASSED;
    fail += ft_status_failing(out->r[i].status);
    skip += out->r[i].status == FT_SKIPPED;
  }
  json_t *ev = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:i, s:b, s:f}", "type", "suite", "phase", phase, "total",
                         (json_int_t)out->n, "passed", (json_int_t)pass, "failed", (json_int_t)fail, "skipped",
                         (json_int_t)skip, "exit_code", out->exit_code, "per_test", out->per_test, "elapsed_s", secs);
  if (filter) json_object_set_new(ev, "filter", json_string(filter));
  if (f->cur_group) {
    json_object_set_new(ev, "group", json_integer(f->cur_group));
    json_object_set_new(ev, "attempt", json_integer(f->cur_attempt));
  }
  emit(f, ev);
  char el[32];
  wf_fmt_duration(secs, el, sizeof el);
  if (!strcmp(phase, "baseline")) {
    if (out->per_test)
      say(f, "  %zu test%s: %zu passed, %zu failing, %zu skipped (%s, %s output)", out->n, out->n == 1 ? "" : "s", pass,
          fail, skip, el, out->format ? out->format : "?");
    else
      say(f, "  no per-test results in the output; the command's exit status (%d) is the one test (%s)", out->exit_code,
          el);
  }
  return 0;
}

/* ---- checkpoints --------------------------------------------------------------------------- */

static int checkpoint(fx *f, const char *msg, char **id) {
  char *err = NULL;
  int rc = tool_checkpoint_create(f->ws, msg, id, &err);
  if (rc != TOOL_OK) {
    set_error(f, "cannot take a checkpoint: %s", err ? err : tool_strerror(rc));
    free(err);
    return -1;
  }
  return 0;
}

static int restore(fx *f, const char *id) {
  json_t *sum = NULL;
  char *err = NULL;
  int rc = tool_checkpoint_restore(f->ws, id, &sum, &err);
  if (rc != TOOL_OK) {
    f->error = NULL; /* this one matters more than an earlier one */
    set_error(f, "cannot restore checkpoint %s: %s (restore it by hand: qcoder checkpoint restore %s --workspace %s)",
              id, err ? err : tool_strerror(rc), id, f->root);
    free(err);
    return -1;
  }
  if (json_array_size(json_object_get(sum, "errors")))
    say(f, "warning: restoring %s left some paths alone: %s", id,
        json_string_value(json_object_get(json_array_get(json_object_get(sum, "errors"), 0), "error")));
  json_decref(sum);
  emit(f, json_pack("{s:s, s:s, s:s}", "type", "checkpoint", "phase", "restored", "id", id));
  return 0;
}

static int looks_like_test_file(fx *f, const char *path) {
  for (size_t i = 0; i < f->n_tests; i++)
    if (f->tests[i].file && !strcmp(f->tests[i].file, path)) return 1;
  const char *b = strrchr(path, '/');
  b = b ? b + 1 : path;
  if (!strncmp(b, "test_", 5) || strstr(b, "_test.") || strstr(b, ".test.") || strstr(b, ".spec.")) return 1;
  for (const char *p = path; *p;) {
    size_t n = strcspn(p, "/");
    if ((n == 4 && !strncmp(p, "test", 4)) || (n == 5 && !strncmp(p, "tests", 5)) || (n == 4 && !strncmp(p, "spec", 4)))
      return p[n] == '/';
    p += n;
    if (*p == '/') p++;
  }
  return 0;
}

/* ---- the agent ------------------------------------------------------------------------------ */

static void on_request(void *user, rpc_req *req, const char *method, const json_t *params) {
  (void)user, (void)params;
  if (!strcmp(method, "session/request_permission")) {
    /* sessions run in full-auto and should not ask; if asked, the answer is the mode's */
    acp_client_reply(req, json_pack("{s:{s:s, s:s}}", "outcome", "outcome", "selected", "optionId", "allow_once"));
    return;
  }
  acp_client_reply_error(req, RPC_METHOD_NOT_FOUND, "fix-tests offers no fs/terminal capabilities");
}

static void on_update(void *user, const char *sid, const json_t *u) {
  fx *f = user;
  if (f->view) wf_view_update(f->view, u);
  if (f->json)
    emit(f, json_pack("{s:s, s:i, s:i, s:s, s:O}", "type", "session/update", "group", f->cur_group, "attempt",
                      f->cur_attempt, "sessionId", sid, "update", u));
}

static int connect_agent(fx *f) {
  if (f->acp) return 0;
  char why[512] = "";
  acp_client_opts o = {.autostart = 1, .on_request = on_request, .user = f, .client_name = "qcoder fix-tests",
                       .call_timeout_ms = WF_SESSION_TIMEOUT_MS};
  int rc = wf_agent_open(&o, &f->acp, &f->started_daemon, why, sizeof why);
  if (rc != QC_OK) {
    set_error(f, "cannot reach the qcoder daemon: %s", *why ? why : rpc_strerror(rc));
    f->acp = NULL;
    return -1;
  }
  return 0;
}

static void disconnect_agent(fx *f) {
  if (!f->acp) return;
  wf_agent_close(f->acp, f->started_daemon);
  f->acp = NULL;
}

static int open_session(fx *f, grp *g) {
  if (g->session_id) return 0;
  if (connect_agent(f)) return -1;
  json_t *meta = json_pack("{s:s, s:s, s:i, s:I, s:s, s:s}", "model", f->model.spec, "mode", "full-auto", "maxSteps",
                           f->max_steps, "maxTokens", (json_int_t)f->max_tokens, "testCommand", f->command, "sandbox",
                           f->sandbox_name);
  char why[1024] = "";
  int rc = acp_client_new_session(f->acp, f->root, meta, NULL, &g->session_id, NULL, why, sizeof why);
  json_decref(meta);
  if (rc != QC_OK) {
    set_error(f, "cannot start an agent session: %s", *why ? why : rpc_strerror(rc));
    g->session_id = NULL;
    return -1;
  }
  return 0;
}

static void cancel_active(fx *f) {
  pthread_mutex_lock(&f->mu);
  if (f->acp && f->active_session) acp_client_cancel(f->acp, f->active_session);
  pthread_mutex_unlock(&f->mu);
}

static void on_interrupt(void *user) {
  fx *f = user;
  atomic_store(&f->interrupted, 1);
  if (!f->stopped_by) f->stopped_by = "interrupt";
  atomic_store(&f->cancel_tests, 1);
  cancel_active(f);
  fprintf(stderr, "\nqcoder fix-tests: interrupted — undoing the attempt in progress and writing a partial report "
                  "(Ctrl-C again to quit at once)\n");
}

static void *watch_deadline(void *arg) {
  fx *f = arg;
  while (!atomic_load(&f->quit_watch)) {
    if (f->deadline_ms && qc_now_ms() >= f->deadline_ms && !atomic_load(&f->deadline_hit)) {
      atomic_store(&f->deadline_hit, 1);
      if (!f->stopped_by) f->stopped_by = "time_budget";
      atomic_store(&f->cancel_tests, 1);
      cancel_active(f);
    }
    struct timespec ts = {0, WF_FIX_DEADLINE_POLL_MS * 1000000L};
    nanosleep(&ts, NULL);
  }
  return NULL;
}

/* ---- prompts ---------------------------------------------------------------------------------- */

static void indent_block(qc_buf *b, const char *text, size_t max) {
  if (!text || !*text) {
    qc_buf_puts(b, "    (no output)\n");
    return;
  }
  size_t n = strlen(text);
  const char *s = text;
  if (n > max) { /* the tail holds the assertion more often than the head */
    s = text + n - max;
    while (*s && ((unsigned char)*s & 0xC0) == 0x80) s++;
    qc_buf_puts(b, "    […]\n");
  }
  while (*s) {
    size_t k = strcspn(s, "\n");
    qc_buf_puts(b, "    ");
    qc_buf_append(b, s, k);
    qc_buf_putc(b, '\n');
    s += k;
    if (*s) s++;
  }
}

static void list_tests(fx *f, qc_buf *b, const json_t *keys, int use_last) {
  size_t budget = FT_GROUP_OUTPUT_IN_PROMPT, i;
  json_t *k;
  json_array_foreach(keys, i, k) {
    if (i == FT_TESTS_IN_PROMPT) {
      qc_buf_printf(b, "- … and %zu more\n", json_array_size(keys) - i);
      break;
    }
    tst *t = find_test(f, json_string_value(k));
    if (!t) continue;
    qc_buf_printf(b, "- %s\n", t->name);
    const char *out = use_last && t->out_last ? t->out_last : t->out_before;
    size_t cap = budget < FT_TEST_OUTPUT_IN_PROMPT ? budget : FT_TEST_OUTPUT_IN_PROMPT;
    if (cap > 64) indent_block(b, out, cap);
    budget -= cap < budget ? cap : budget;
  }
}

static json_t *group_failing_keys(fx *f, grp *g) {
  json_t *a = json_array();
  for (size_t i = 0; i < g->n_tests; i++)
    if (ft_status_failing(f->tests[g->tests[i]].now)) json_array_append_new(a, json_string(f->tests[g->tests[i]].key));
  return a;
}

static const char k_rules[] =
    "Rules:\n"
    "1. Fix the code under test, not the tests. Change a test only if the test itself is wrong, and then say so "
    "plainly in your final answer, with the reason.\n"
    "2. Keep the change small and focused on these failures: tests that pass now must keep passing.\n"
    "3. Read the relevant code before you edit it. You can run the tests with the run_tests tool.\n"
    "4. End with a short explanation: what caused the failure and what you changed.\n"
    "Your change is kept only if at least one of these tests passes afterwards and no passing test fails; "
    "otherwise it is undone.\n";

static char *first_prompt(fx *f, grp *g) {
  qc_buf b;
  qc_buf_init(&b, 0);
  json_t *keys = group_failing_keys(f, g);
  qc_buf_printf(&b, "Some tests of this repository fail. Make the failing test%s below pass.\n\n",
                json_array_size(keys) == 1 ? "" : "s");
  qc_buf_printf(&b, "Test command: %s\n", f->command);
  qc_buf_printf(&b, "Failing test%s (group %d of %zu%s%s):\n", json_array_size(keys) == 1 ? "" : "s", g->id,
                f->n_groups, g->file ? ", in " : "", g->file ? g->file : "");
  list_tests(f, &b, keys, 0);
  qc_buf_putc(&b, '\n');
  qc_buf_puts(&b, k_rules);
  json_decref(keys);
  return qc_buf_detach(&b, NULL);
}

static char *next_prompt(fx *f, grp *g, const att *prev) {
  qc_buf b;
  qc_buf_init(&b, 0);
  json_t *keys = group_failing_keys(f, g);
  if (!strcmp(prev->outcome, "kept")) {
    qc_buf_printf(&b, "Your change was kept: it fixed %zu test%s. These still fail:\n", json_array_size(prev->fixed),
                  json_array_size(prev->fixed) == 1 ? "" : "s");
    list_tests(f, &b, keys, 1);
    qc_buf_puts(&b, "\nContinue: make them pass too.\n");
  } else if (!strcmp(prev->outcome, "no change")) {
    qc_buf_puts(&b, "You did not change any file, so nothing was fixed. These tests still fail:\n");
    list_tests(f, &b, keys, 1);
    qc_buf_puts(&b, "\nMake the change that fixes them.\n");
  } else {
    qc_buf_printf(&b, "Your change was undone: %s. The files are back as they were before it.\n",
                  prev->why ? prev->why : "it did not pass the checks");
    if (json_array_size(prev->broke)) {
      qc_buf_puts(&b, "\nThese tests passed before and failed with your change:\n");
      list_tests(f, &b, prev->broke, 1);
    }
    qc_buf_puts(&b, "\nThese tests still need fixing (output from the run with your change):\n");
    list_tests(f, &b, keys, 1);
    qc_buf_puts(&b, "\nTry a different fix.\n");
  }
  qc_buf_putc(&b, '\n');
  qc_buf_puts(&b, k_rules);
  json_decref(keys);
  return qc_buf_detach(&b, NULL);
}

/* ---- one attempt ------------------------------------------------------------------------------ */

static att *new_attempt(grp *g) {
  att *na = realloc(g->atts, (g->n_atts + 1) * sizeof *na);
  if (!na) return NULL;
  g->atts = na;
  att *a = &g->atts[g->n_atts++];
  memset(a, 0, sizeof *a);
  a->n = (int)g->n_atts;
  a->fixed = json_array();
  a->broke = json_array();
  a->still_failing = json_array();
  a->changed_files = json_array();
  a->changed_test_files = json_array();
  return a;
}

static void emit_attempt(fx *f, grp *g, att *a) {
  json_t *ev = json_pack("{s:s, s:i, s:i, s:s, s:s, s:O, s:O, s:O, s:f, s:I}", "type", "attempt", "group", g->id,
                         "attempt", a->n, "outcome", a->outcome, "why", a->why ? a->why : "", "fixed", a->fixed,
                         "broke", a->broke, "changed_files", a->changed_files, "time_s", a->time_s,
                         "generated_tokens", (json_int_t)a->generated_tokens);
  emit(f, ev);
}

static void tally(fx *f, att *a) {
  f->n_attempts++;
  if (!strcmp(a->outcome, "kept")) f->n_kept++;
  else if (!strcmp(a->outcome, "reverted")) f->n_reverted++;
  else if (!strcmp(a->outcome, "no change")) f->n_nochange++;
}

/* Run the agent once on group g. Returns 0 when the attempt ran to a verdict (kept or
 * reverted or no change), 1 when the loop must stop (interrupt, deadline, error). */
static int attempt(fx *f, size_t gi, int n) {
  grp *g = &f->groups[gi];
  att *a = new_attempt(g);
  if (!a) {
    set_error(f, "out of memory");
    return 1;
  }
  f->cur_attempt = n;
  uint64_t t0 = qc_now_ms();
  const att *prev = g->n_atts >= 2 ? &g->atts[g->n_atts - 2] : NULL;
  /* a session that ended in an error is not continued */
  if (prev && prev->error && g->session_id) {
    free(g->session_id);
    g->session_id = NULL;
  }
  int fresh = !g->session_id;
  if (open_session(f, g)) {
    a->outcome = "error";
    a->why = strdup(f->error ? f->error : "no agent session could be started");
    emit_attempt(f, g, a);
    return 1;
  }
  char *text = fresh || !prev ? first_prompt(f, g) : next_prompt(f, g, prev);
  char label[64];
  snprintf(label, sizeof label, "group %d/%zu, attempt %d", g->id, f->n_groups, n);
  say(f, "[%d/%zu] attempt %d: the agent is working…", g->id, f->n_groups, n);
  wf_view_stats s0, s1;
  wf_view_get_stats(f->view, &s0);
  wf_view_begin(f->view, label);
  pthread_mutex_lock(&f->mu);
  f->active_session = g->session_id;
  pthread_mutex_unlock(&f->mu);
  char *stop = NULL;
  char why[1024] = "";
  uint64_t ta = qc_now_ms();
  int rc = acp_client_prompt(f->acp, g->session_id, text, on_update, f, &stop, why, sizeof why);
  pthread_mutex_lock(&f->mu);
  f->active_session = NULL;
  pthread_mutex_unlock(&f->mu);
  a->agent_s = (double)(qc_now_ms() - ta) / 1000.0;
  f->agent_s += a->agent_s;
  wf_view_end(f->view);
  free(text);
  wf_view_get_stats(f->view, &s1);
  a->prompt_tokens = s1.prompt_tokens - s0.prompt_tokens;
  a->generated_tokens = s1.generated_tokens - s0.generated_tokens;
  f->prompt_tokens += a->prompt_tokens;
  f->generated_tokens += a->generated_tokens;
  char *expl = wf_view_turn_text(f->view);
  if (expl && strlen(expl) > FT_EXPLANATION_MAX) {
    char *tail = strdup(expl + strlen(expl) - FT_EXPLANATION_MAX);
    free(expl);
    expl = tail;
  }
  a->explanation = expl;
  if (rc == QC_OK) a->stop_reason = stop;
  else {
    free(stop);
    a->stop_reason = strdup("error");
    a->error = strdup(*why ? why : rpc_strerror(rc));
    if (rc == RPC_ECLOSED) {
      set_error(f, "the qcoder daemon went away during an attempt: %s", a->error);
    }
  }
  int cancelled = a->stop_reason && !strcmp(a->stop_reason, "cancelled");
  if (cancelled || atomic_load(&f->interrupted) || atomic_load(&f->deadline_hit) || f->error) {
    a->outcome = atomic_load(&f->interrupted) ? "interrupted" : atomic_load(&f->deadline_hit) ? "time budget" : "reverted";
    a->why = strdup(atomic_load(&f->interrupted) ? "interrupted (Ctrl-C); the attempt was undone"
                    : atomic_load(&f->deadline_hit) ? "the time budget ran out during the attempt; it was undone"
                    : f->error ? f->error
                               : "cancelled");
    restore(f, f->cp_base);
    a->time_s = (double)(qc_now_ms() - t0) / 1000.0;
    emit_attempt(f, g, a);
    return 1;
  }
  /* what changed */
  char *patch = NULL, *err = NULL;
  json_t *stats = NULL;
  if (tool_checkpoint_diff(f->ws, f->cp_base, &patch, &stats, &err) != TOOL_OK) {
    set_error(f, "cannot compare with the checkpoint: %s", err ? err : "?");
    free(err);
    return 1;
  }
  json_decref(a->changed_files);
  a->changed_files = wf_patch_files(patch);
  a->diffstat = stats;
  free(patch);
  size_t i;
  json_t *p;
  json_array_foreach(a->changed_files, i, p) if (looks_like_test_file(f, json_string_value(p)))
      json_array_append(a->changed_test_files, p);
  if (json_array_size(a->changed_files) == 0) {
    a->outcome = "no change";
    a->why = a->error ? qc_asprintf("the agent failed before changing anything: %s", a->error)
                      : qc_asprintf("the agent changed no file (stop reason: %s)", a->stop_reason);
    json_t *keys = group_failing_keys(f, g);
    json_array_extend(a->still_failing, keys);
    json_decref(keys);
    a->time_s = (double)(qc_now_ms() - t0) / 1000.0;
    say(f, "[%d/%zu] attempt %d: no change — %s", g->id, f->n_groups, n, a->why);
    emit_attempt(f, g, a);
    return 0;
  }
  /* the group on its own first, when the runner can take a filter and it is one test */
  ft_run grun, full;
  json_t *keys = group_failing_keys(f, g);
  uint64_t tt = qc_now_ms();
  if (strstr(f->command, "{filter}") && json_array_size(keys) == 1 &&
      strcmp(json_string_value(json_array_get(keys, 0)), FT_SUITE_TEST) != 0) {
    tst *only = find_test(f, json_string_value(json_array_get(keys, 0)));
    if (run_suite(f, only->name, "group", &grun) != 0) {
      json_decref(keys);
      goto stopped;
    }
    ft_status st = ft_run_status(&grun, only->key);
    const ft_result *r = ft_run_find(&grun, only->key);
    if (r && r->output) {
      free(only->out_last);
      only->out_last = strdup(r->output);
    }
    ft_run_release(&grun);
    if (st != FT_PASSED) {
      a->test_s = (double)(qc_now_ms() - tt) / 1000.0;
      a->outcome = "reverted";
      a->why = qc_asprintf("its test still fails when run on its own (%s)", ft_status_name(st));
      json_array_extend(a->still_failing, keys);
      json_decref(keys);
      if (restore(f, f->cp_base)) return 1;
      goto done;
    }
  }
  if (run_suite(f, NULL, "full", &full) != 0) {
    json_decref(keys);
    goto stopped;
  }
  a->test_s = (double)(qc_now_ms() - tt) / 1000.0;
  /* the decision over every test known so far */
  const char **all = malloc((f->n_tests ? f->n_tests : 1) * sizeof *all);
  for (size_t k = 0; all && k < f->n_tests; k++) all[k] = f->tests[k].key;
  json_decref(a->fixed);
  json_decref(a->broke);
  int keep = all ? ft_decide(all, f->n_tests, now_status, f, &full, &a->fixed, &a->broke) : 0;
  free(all);
  json_t *k;
  json_array_foreach(keys, i, k) if (ft_run_status(&full, json_string_value(k)) != FT_PASSED)
      json_array_append(a->still_failing, k);
  json_decref(keys);
  /* failure outputs of this run, for the next prompt */
  for (size_t r = 0; r < full.n; r++) {
    tst *t = find_test(f, full.r[r].key);
    if (t && full.r[r].output && ft_status_failing(full.r[r].status)) {
      free(t->out_last);
      t->out_last = strdup(full.r[r].output);
    }
  }
  if (keep) {
    char *id = NULL;
    char *msg = qc_asprintf("qcoder fix-tests: group %d attempt %d kept", g->id, n);
    int crc = checkpoint(f, msg ? msg : "qcoder fix-tests", &id);
    free(msg);
    if (crc) {
      ft_run_release(&full);
      return 1;
    }
    free(f->cp_base);
    f->cp_base = id;
    emit(f, json_pack("{s:s, s:s, s:s}", "type", "checkpoint", "phase", "kept", "id", id));
    for (size_t t = 0; t < f->n_tests; t++) {
      ft_status was = f->tests[t].now;
      f->tests[t].now = ft_run_status(&full, f->tests[t].key);
      if (ft_status_failing(was) && f->tests[t].now == FT_PASSED && !f->tests[t].fixed_group) {
        f->tests[t].fixed_group = g->id;
        f->tests[t].fixed_attempt = n;
      }
    }
    absorb_run(f, &full, 0);
    ft_run_release(&f->current);
    f->current = full;
    a->outcome = "kept";
    a->why = qc_asprintf("fixed %zu test%s, broke none", json_array_size(a->fixed),
                         json_array_size(a->fixed) == 1 ? "" : "s");
    add_groups(f, &f->current);
    g = &f->groups[gi]; /* the array may have moved */
  } else {
    size_t nb = json_array_size(a->broke);
    a->outcome = "reverted";
    if (nb) {
      a->why = qc_asprintf("it broke %zu passing test%s (%s%s)", nb, nb == 1 ? "" : "s",
                           json_string_value(json_array_get(a->broke, 0)), nb > 1 ? ", …" : "");
    } else {
      a->why = strdup("no failing test passes with it");
    }
    ft_run_release(&full);
    if (restore(f, f->cp_base)) return 1;
  }
done:
  a->time_s = (double)(qc_now_ms() - t0) / 1000.0;
  {
    char el[32];
    wf_fmt_duration(a->time_s, el, sizeof el);
    say(f, "[%d/%zu] attempt %d: %s — %s (%s, %ld tokens)", g->id, f->n_groups, n, a->outcome, a->why, el,
        a->generated_tokens);
  }
  emit_attempt(f, g, a);
  return 0;
stopped:
  a->outcome = atomic_load(&f->interrupted) ? "interrupted" : atomic_load(&f->deadline_hit) ? "time budget" : "reverted";
  a->why = strdup(atomic_load(&f->interrupted) ? "interrupted (Ctrl-C) while testing; the attempt was undone"
                  : atomic_load(&f->deadline_hit) ? "the time budget ran out while testing; the attempt was undone"
                  : f->error ? f->error : "the tests could not run");
  restore(f, f->cp_base);
  a->time_s = (double)(qc_now_ms() - t0) / 1000.0;
  emit_attempt(f, g, a);
  return 1;
}

/* ---- the report -------------------------------------------------------------------------------- */

static json_t *str_or_null(const char *s) { return s ? json_string(s) : json_null(); }

static const char *before_name(const tst *t) { return t->appeared ? "absent" : ft_status_name(t->before); }

static json_t *build_report(fx *f, int exit_code) {
  json_t *r = json_object();
  char started[32], finished[32];
  qc_iso8601(f->started_wall, started, sizeof started);
  qc_iso8601(qc_wall_ms(), finished, sizeof finished);
  const char *status = atomic_load(&f->interrupted) ? "interrupted" : f->error ? "error" : "complete";
  json_object_set_new(r, "qcoder_fix_tests", json_integer(1));
  json_object_set_new(r, "status", json_string(status));
  json_object_set_new(r, "stopped_by", str_or_null(f->stopped_by));
  json_object_set_new(r, "error", str_or_null(f->error));
  json_object_set_new(r, "exit_code", json_integer(exit_code));
  json_object_set_new(r, "command", json_string(f->command));
  json_object_set_new(r, "workspace", json_string(f->root));
  json_object_set_new(r, "model", str_or_null(f->model.spec));
  json_object_set_new(r, "model_source", str_or_null(f->model.source));
  if (f->note) json_object_set_new(r, "note", json_string(f->note));
  json_object_set_new(r, "started", json_string(started));
  json_object_set_new(r, "finished", json_string(finished));
  json_object_set_new(r, "elapsed_s", json_real((double)(qc_now_ms() - f->t0_ms) / 1000.0));
  json_object_set_new(r, "budgets", json_pack("{s:i, s:o, s:i, s:I, s:s}", "max_attempts", f->max_attempts,
                                              "time_budget_s", f->time_budget_s ? json_integer(f->time_budget_s) : json_null(),
                                              "max_steps", f->max_steps, "max_tokens", (json_int_t)f->max_tokens,
                                              "sandbox", f->sandbox_name));
  /* tests and the SWE-bench buckets */
  json_t *tests = json_array();
  json_t *f2p_ok = json_array(), *f2p_bad = json_array(), *p2p_ok = json_array(), *p2p_bad = json_array();
  size_t failing_before = 0, failing_after = 0, fixed = 0, broken = 0;
  for (size_t i = 0; i < f->n_tests; i++) {
    tst *t = &f->tests[i];
    grp *g = t->group >= 0 ? &f->groups[t->group] : NULL;
    int was_failing = !t->appeared && (t->before == FT_FAILED || t->before == FT_ERROR);
    int was_passing = !t->appeared && t->before == FT_PASSED;
    failing_before += was_failing;
    failing_after += ft_status_failing(t->now);
    const char *result;
    char *why = NULL;
    if (was_failing && t->now == FT_PASSED) {
      result = "fixed";
      fixed++;
      why = qc_asprintf("fixed by group %d, attempt %d (kept)", t->fixed_group, t->fixed_attempt);
      json_array_append_new(f2p_ok, json_string(t->key));
    } else if (was_failing) {
      result = "still failing";
      json_array_append_new(f2p_bad, json_string(t->key));
      if (g && g->n_atts) {
        qc_buf w;
        qc_buf_init(&w, 8192);
        for (size_t k = 0; k < g->n_atts; k++)
          qc_buf_printf(&w, "%sattempt %d %s: %s", k ? "; " : "", g->atts[k].n, g->atts[k].outcome,
                        g->atts[k].why ? g->atts[k].why : "");
        why = qc_buf_detach(&w, NULL);
      } else if (g && g->why) {
        why = strdup(g->why);
      }
    } else if (was_passing && ft_status_failing(t->now)) {
      result = "broken";
      broken++;
      json_array_append_new(p2p_bad, json_string(t->key));
    } else if (was_passing) {
      result = "passing";
      json_array_append_new(p2p_ok, json_string(t->key));
    } else if (t->appeared) {
      result = ft_status_failing(t->now) ? "appeared, failing" : "appeared, passing";
    } else {
      result = t->now == FT_PASSED ? "passing" : "skipped";
    }
    long ptok = 0, gtok = 0;
    double secs = 0;
    int natt = 0;
    for (size_t k = 0; g && k < g->n_atts; k++) {
      ptok += g->atts[k].prompt_tokens;
      gtok += g->atts[k].generated_tokens;
      secs += g->atts[k].time_s;
      natt++;
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o, s:i, s:I, s:I, s:f, s:b, s:s}", "name", t->name, "key", t->key,
                          "before", before_name(t), "after", ft_status_name(t->now), "group",
                          g ? json_integer(g->id) : json_null(), "attempts", natt, "prompt_tokens", (json_int_t)ptok,
                          "generated_tokens", (json_int_t)gtok, "time_s", secs, "kept", t->fixed_group > 0, "result",
                          result);
    if (t->suite) json_object_set_new(o, "suite", json_string(t->suite));
    if (t->file) json_object_set_new(o, "file", json_string(t->file));
    if (why) json_object_set_new(o, "why", json_string(why));
    if (t->out_before && was_failing) json_object_set_new(o, "output_before", json_string(t->out_before));
    free(why);
    json_array_append_new(tests, o);
  }
  size_t f2p_total = json_array_size(f2p_ok) + json_array_size(f2p_bad);
  size_t p2p_total = json_array_size(p2p_ok) + json_array_size(p2p_bad);
  json_object_set_new(r, "resolution", json_string(ft_resolution(f2p_total, json_array_size(f2p_ok), p2p_total,
                                                                 json_array_size(p2p_ok))));
  json_object_set_new(r, "totals",
                      json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:i, s:i, s:i, s:I, s:I, s:f, s:f}", "tests",
                                (json_int_t)f->n_tests, "failing_before", (json_int_t)failing_before, "failing_after",
                                (json_int_t)failing_after, "fixed", (json_int_t)fixed, "broken", (json_int_t)broken,
                                "groups", (json_int_t)f->n_groups, "attempts", f->n_attempts, "kept", f->n_kept,
                                "reverted", f->n_reverted, "no_change", f->n_nochange, "prompt_tokens", (json_int_t)f->prompt_tokens,
                                "generated_tokens", (json_int_t)f->generated_tokens, "agent_time_s", f->agent_s,
                                "test_time_s", f->test_s));
  json_object_set_new(r, "tests_status",
                      json_pack("{s:{s:o, s:o}, s:{s:o, s:o}}", "FAIL_TO_PASS", "success", f2p_ok, "failure", f2p_bad,
                                "PASS_TO_PASS", "success", p2p_ok, "failure", p2p_bad));
  json_object_set_new(r, "checkpoints", json_pack("{s:o, s:o}", "start", str_or_null(f->cp_start), "final",
                                                  str_or_null(f->cp_base)));
  if (f->patch_info) json_object_set(r, "patch", f->patch_info);
  json_object_set_new(r, "commit", f->commit_info ? json_incref(f->commit_info) : json_null());
  json_object_set_new(r, "tests", tests);
  /* groups */
  json_t *groups = json_array();
  for (size_t i = 0; i < f->n_groups; i++) {
    grp *g = &f->groups[i];
    json_t *names = json_array();
    for (size_t k = 0; k < g->n_tests; k++) json_array_append_new(names, json_string(f->tests[g->tests[k]].name));
    json_t *atts = json_array();
    for (size_t k = 0; k < g->n_atts; k++) {
      att *a = &g->atts[k];
      json_t *o = json_pack(
          "{s:i, s:s, s:s, s:o, s:o, s:s, s:I, s:I, s:f, s:f, s:f, s:O, s:O, s:O, s:O, s:O, s:o}", "n", a->n, "outcome",
          a->outcome ? a->outcome : "reverted", "why", a->why ? a->why : "", "stop_reason", str_or_null(a->stop_reason),
          "error", str_or_null(a->error), "explanation", a->explanation ? a->explanation : "", "prompt_tokens",
          (json_int_t)a->prompt_tokens, "generated_tokens", (json_int_t)a->generated_tokens, "time_s", a->time_s,
          "agent_time_s", a->agent_s, "test_time_s", a->test_s, "fixed", a->fixed, "broke", a->broke, "still_failing",
          a->still_failing, "changed_files", a->changed_files, "changed_test_files", a->changed_test_files, "diffstat",
          a->diffstat ? json_incref(a->diffstat) : json_null());
      json_array_append_new(atts, o);
    }
    json_t *o = json_pack("{s:i, s:o, s:s, s:o, s:s, s:o, s:o}", "id", g->id, "file", str_or_null(g->file),
                          "signature", g->signature ? g->signature : "", "tests", names, "status", g->status,
                          "session_id", str_or_null(g->session_id), "attempts", atts);
    if (g->why) json_object_set_new(o, "why", json_string(g->why));
    json_array_append_new(groups, o);
  }
  json_object_set_new(r, "groups", groups);
  return r;
}

static void finish_groups(fx *f) {
  for (size_t i = 0; i < f->n_groups; i++) {
    grp *g = &f->groups[i];
    size_t failing = 0;
    for (size_t k = 0; k < g->n_tests; k++) failing += ft_status_failing(f->tests[g->tests[k]].now);
    if (!failing) {
      if (!g->n_atts) g->status = "fixed by an earlier change";
      else g->status = "fixed";
    } else if (!g->n_atts) {
      g->status = "not attempted";
      if (!g->why)
        g->why = strdup(atomic_load(&f->interrupted) ? "interrupted before its turn"
                        : atomic_load(&f->deadline_hit) ? "the time budget ran out before its turn"
                        : f->error ? "stopped by an error" : "not reached");
    } else {
      g->status = failing < g->n_tests ? "partly fixed" : "not fixed";
    }
  }
}

static int write_reports(fx *f, int exit_code) {
  if (qc_mkdir_p(f->report_dir, 0755) != QC_OK) {
    fprintf(stderr, "qcoder fix-tests: cannot create the report directory %s\n", f->report_dir);
    return -1;
  }
  int ok = 1;
  json_t *rep = build_report(f, exit_code);
  char *js = json_dumps(rep, JSON_INDENT(2) | JSON_ENSURE_ASCII);
  char *md = ft_report_markdown(rep);
  char *junit = f->have_current ? ft_junit_xml(&f->current, "qcoder fix-tests: final run") : NULL;
  char *jsn = js ? qc_asprintf("%s\n", js) : NULL;
  const char *names[] = {"report.json", "report.md", "junit.xml"};
  char *data[] = {jsn, md, junit};
  for (int i = 0; i < 3; i++) {
    if (!data[i]) {
      if (i < 2 || f->have_current) ok = 0;
      continue;
    }
    char *p = qc_path_join(f->report_dir, names[i]);
    if (!p || ft_write_file(p, data[i], strlen(data[i])) != 0) ok = 0;
    free(p);
  }
  free(jsn);
  const char *summary = getenv("GITHUB_STEP_SUMMARY");
  if (summary && *summary && md) {
    FILE *s = fopen(summary, "a");
    if (s) {
      fputs(md, s);
      fputc('\n', s);
      fclose(s);
    } else {
      fprintf(stderr, "qcoder fix-tests: cannot append to $GITHUB_STEP_SUMMARY (%s)\n", summary);
    }
  }
  json_t *tot = json_object_get(rep, "totals");
  json_t *ev = json_pack("{s:s, s:s, s:s, s:i, s:O, s:O, s:s, s:o}", "type", "result", "status",
                         json_string_value(json_object_get(rep, "status")), "resolution",
                         json_string_value(json_object_get(rep, "resolution")), "exitCode", exit_code, "totals", tot,
                         "tests_status", json_object_get(rep, "tests_status"), "report_dir", f->report_dir, "error",
                         str_or_null(f->error));
  emit(f, ev);
  if (!f->json) {
    say(f, "fix-tests: %lld of %lld failing test%s fixed, %lld broken — resolution %s",
        (long long)json_integer_value(json_object_get(tot, "fixed")),
        (long long)json_integer_value(json_object_get(tot, "failing_before")),
        json_integer_value(json_object_get(tot, "failing_before")) == 1 ? "" : "s",
        (long long)json_integer_value(json_object_get(tot, "broken")), json_string_value(json_object_get(rep, "resolution")));
    say(f, "  report: %s/report.md (and report.json, fix.patch, junit.xml)", f->report_dir);
  }
  free(js);
  free(md);
  free(junit);
  json_decref(rep);
  if (!ok) fprintf(stderr, "qcoder fix-tests: could not write every report file into %s\n", f->report_dir);
  return ok ? 0 : -1;
}

/* fix.patch (kept changes vs the start) and the commit. */
static void finalize_changes(fx *f) {
  if (!f->cp_start) return;
  char *patch = NULL, *err = NULL;
  json_t *stats = NULL;
  if (tool_checkpoint_diff(f->ws, f->cp_start, &patch, &stats, &err) != TOOL_OK) {
    fprintf(stderr, "qcoder fix-tests: cannot compute fix.patch: %s\n", err ? err : "?");
    free(err);
    return;
  }
  char *p = qc_path_join(f->report_dir, "fix.patch");
  if (qc_mkdir_p(f->report_dir, 0755) != QC_OK || !p || ft_write_file(p, patch ? patch : "", patch ? strlen(patch) : 0))
    fprintf(stderr, "qcoder fix-tests: cannot write %s\n", p ? p : "fix.patch");
  free(p);
  f->patch_info = json_pack("{s:s, s:O, s:O, s:O, s:o}", "file", "fix.patch", "files_changed",
                            json_object_get(stats, "files_changed"), "insertions", json_object_get(stats, "insertions"),
                            "deletions", json_object_get(stats, "deletions"), "changed_files", wf_patch_files(patch));
  json_decref(stats);
  free(patch);
  if (f->commit_branch && f->n_kept > 0 && !atomic_load(&f->interrupted)) {
    char *commit = NULL;
    qc_buf msg;
    qc_buf_init(&msg, 1 << 16);
    qc_buf_printf(&msg, "qcoder fix-tests: fix failing tests\n\nCommand: %s\nFixed:\n", f->command);
    for (size_t i = 0; i < f->n_tests; i++)
      if (f->tests[i].fixed_group) qc_buf_printf(&msg, "- %s\n", f->tests[i].name);
    int rc = tool_git_commit_branch(f->ws, f->commit_branch, msg.data, &commit, &err);
    qc_buf_release(&msg);
    if (rc != TOOL_OK) {
      fprintf(stderr, "qcoder fix-tests: cannot commit to %s: %s\n", f->commit_branch, err ? err : tool_strerror(rc));
      set_error(f, "cannot commit to the branch %s: %s", f->commit_branch, err ? err : tool_strerror(rc));
      free(err);
    } else {
      f->commit_info = json_pack("{s:s, s:s}", "branch", f->commit_branch, "commit", commit);
      say(f, "fix-tests: committed the kept changes to branch %s (%.12s)", f->commit_branch, commit);
      free(commit);
    }
  }
}

/* ---- options ------------------------------------------------------------------------------------- */

static int safe_word(const char *s) {
  if (!*s) return 0;
  for (const char *p = s; *p; p++)
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:=@%+,-{}", *p)) return 0;
  return 1;
}

static char *join_command(int argc, char **argv) {
  if (argc == 1) return strdup(argv[0]);
  qc_buf b;
  qc_buf_init(&b, WF_FIX_COMMAND_MAX);
  for (int i = 0; i < argc; i++) {
    if (i) qc_buf_putc(&b, ' ');
    if (safe_word(argv[i])) qc_buf_puts(&b, argv[i]);
    else {
      qc_buf_putc(&b, '\'');
      for (const char *p = argv[i]; *p; p++) {
        if (*p == '\'') qc_buf_puts(&b, "'\\''");
        else qc_buf_putc(&b, *p);
      }
      qc_buf_putc(&b, '\'');
    }
  }
  if (b.len == 0 || b.len >= WF_FIX_COMMAND_MAX - 1) {
    qc_buf_release(&b);
    return NULL;
  }
  return qc_buf_detach(&b, NULL);
}

static int parse_num(const char *s, long lo, long hi, long *out) {
  char *end;
  long v = strtol(s, &end, 10);
  if (!*s || *end || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

static void fx_release(fx *f) {
  for (size_t i = 0; i < f->n_tests; i++) {
    tst *t = &f->tests[i];
    free(t->key), free(t->name), free(t->suite), free(t->file), free(t->out_before), free(t->out_last);
  }
  free(f->tests);
  for (size_t i = 0; i < f->n_groups; i++) {
    grp *g = &f->groups[i];
    for (size_t k = 0; k < g->n_atts; k++) {
      att *a = &g->atts[k];
      free(a->why), free(a->stop_reason), free(a->error), free(a->explanation);
      json_decref(a->fixed), json_decref(a->broke), json_decref(a->still_failing), json_decref(a->changed_files);
      json_decref(a->changed_test_files), json_decref(a->diffstat);
    }
    free(g->atts), free(g->file), free(g->signature), free(g->tests), free(g->why), free(g->session_id);
  }
  free(f->groups);
  ft_run_release(&f->current);
  free(f->root), free(f->command), free(f->report_dir), free(f->cp_start), free(f->cp_base), free(f->error);
  json_decref(f->patch_info);
  json_decref(f->commit_info);
  wf_model_choice_release(&f->model);
  if (f->ws) tool_ws_close(f->ws);
  pthread_mutex_destroy(&f->mu);
}

int cmd_fixtests(int argc, char **argv) {
  const char *ws_dir = ".", *model_flag = NULL, *remote_flag = NULL, *report = NULL;
  fx f;
  memset(&f, 0, sizeof f);
  pthread_mutex_init(&f.mu, NULL);
  f.max_attempts = WF_FIX_DEFAULT_ATTEMPTS;
  f.max_steps = WF_FIX_DEFAULT_STEPS;
  f.sandbox = TOOL_SANDBOX_REQUIRE;
  f.sandbox_name = "require";
  int i, rc = 2;
  long v;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    int more = i + 1 < argc;
    if (!strcmp(a, "--")) {
      i++;
      break;
    } else if (!strcmp(a, "--workspace") && more) ws_dir = argv[++i];
    else if (!strcmp(a, "--model") && more) model_flag = argv[++i];
    else if (!strcmp(a, "--remote") && more) remote_flag = argv[++i];
    else if (!strcmp(a, "--report") && more) report = argv[++i];
    else if (!strcmp(a, "--commit") && more) f.commit_branch = argv[++i];
    else if (!strcmp(a, "--note") && more) f.note = argv[++i];
    else if (!strcmp(a, "--json")) f.json = 1;
    else if (!strcmp(a, "--max-attempts") && more) {
      if (parse_num(argv[++i], 1, 100, &v)) return qc_cmd_usage_error("fix-tests", "--max-attempts wants 1..100");
      f.max_attempts = (int)v;
    } else if (!strcmp(a, "--max-steps") && more) {
      if (parse_num(argv[++i], 1, 10000, &v)) return qc_cmd_usage_error("fix-tests", "--max-steps wants 1..10000");
      f.max_steps = (int)v;
    } else if (!strcmp(a, "--max-tokens") && more) {
      if (parse_num(argv[++i], 0, LONG_MAX, &v)) return qc_cmd_usage_error("fix-tests", "--max-tokens wants a count");
      f.max_tokens = v;
    } else if (!strcmp(a, "--time-budget") && more) {
      if (parse_num(argv[++i], 1, 30L * 86400, &v)) return qc_cmd_usage_error("fix-tests", "--time-budget wants seconds");
      f.time_budget_s = v;
    } else if (!strcmp(a, "--test-timeout") && more) {
      if (parse_num(argv[++i], 1, 86400, &v)) return qc_cmd_usage_error("fix-tests", "--test-timeout wants seconds");
      f.test_timeout_s = v;
    } else if (!strcmp(a, "--sandbox") && more) {
      const char *m = argv[++i];
      if (!strcmp(m, "require")) f.sandbox = TOOL_SANDBOX_REQUIRE;
      else if (!strcmp(m, "prefer")) f.sandbox = TOOL_SANDBOX_PREFER;
      else if (!strcmp(m, "off")) f.sandbox = TOOL_SANDBOX_OFF;
      else return qc_cmd_usage_error("fix-tests", "--sandbox is require, prefer or off");
      f.sandbox_name = m;
    } else return qc_cmd_usage_error("fix-tests", "unexpected argument '%s' (the test command goes after --)", a);
  }
  if (i >= argc) return qc_cmd_usage_error("fix-tests", "no test command: put it after --, e.g. -- make test");
  if (model_flag && remote_flag) return qc_cmd_usage_error("fix-tests", "--model and --remote exclude each other");
  f.command = join_command(argc - i, argv + i);
  if (!f.command) return qc_cmd_usage_error("fix-tests", "the test command is empty or too long");
  f.root = realpath(ws_dir, NULL);
  if (!f.root) {
    fprintf(stderr, "qcoder fix-tests: the workspace %s does not exist\n", ws_dir);
    fx_release(&f);
    return 2;
  }
  char *err = NULL;
  if (wf_model_resolve(model_flag, remote_flag, &f.model, &err) != 0) {
    fprintf(stderr, "qcoder fix-tests: %s\n", err);
    free(err);
    fx_release(&f);
    return 2;
  }
  if (!f.model.spec) {
    fprintf(stderr, "qcoder fix-tests: no model: pass --model SPEC or --remote URL, set $QCODER_MODEL, put "
                    "{\"model\": …} in the config file, or download one with 'qcoder pull qwen3-coder-30b-a3b:q4_k_m'\n");
    fx_release(&f);
    return 2;
  }
  if (f.commit_branch) {
    char why[512];
    if (wf_check_new_branch(f.root, f.commit_branch, why, sizeof why)) {
      fprintf(stderr, "qcoder fix-tests: %s\n", why);
      fx_release(&f);
      return 2;
    }
  }
  if (report) f.report_dir = strdup(report);
  else {
    char *state = qc_state_dir();
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    const char *base = strrchr(f.root, '/');
    f.report_dir = state ? qc_asprintf("%s/fix-tests/%s-%s", state, base && base[1] ? base + 1 : "root", stamp) : NULL;
    free(state);
  }
  if (!f.report_dir || qc_mkdir_p(f.report_dir, 0755) != QC_OK) {
    fprintf(stderr, "qcoder fix-tests: cannot create the report directory %s\n", f.report_dir ? f.report_dir : "?");
    fx_release(&f);
    return 2;
  }
  tool_ws_opts wo = {.sandbox = f.sandbox, .test_command = f.command};
  if (tool_ws_open(f.root, &wo, &f.ws, &err) != TOOL_OK) {
    fprintf(stderr, "qcoder fix-tests: cannot open the workspace %s: %s\n", f.root, err ? err : "?");
    free(err);
    fx_release(&f);
    return 2;
  }
  f.tty = isatty(1);
  f.view = wf_view_new(stdout, f.tty && !f.json, 0, 0);
  f.t0_ms = qc_now_ms();
  f.started_wall = qc_wall_ms();
  if (f.time_budget_s) f.deadline_ms = f.t0_ms + (uint64_t)f.time_budget_s * 1000;
  wf_interrupt_install(on_interrupt, &f, 3);
  pthread_t watcher;
  int watching = pthread_create(&watcher, NULL, watch_deadline, &f) == 0;
  emit(&f, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", "start", "command", f.command, "workspace", f.root,
                     "model", f.model.spec, "model_source", f.model.source, "report_dir", f.report_dir));
  say(&f, "fix-tests: running the suite in %s: %s", f.root, f.command);

  /* 1. the first run */
  ft_run first;
  if (run_suite(&f, NULL, "baseline", &first) != 0) {
    if (!f.error && !atomic_load(&f.interrupted)) set_error(&f, "the time budget ran out during the first test run");
    goto report;
  }
  absorb_run(&f, &first, 1);
  f.current = first;
  f.have_current = 1;
  size_t failing = 0;
  for (size_t t = 0; t < f.n_tests; t++) failing += ft_status_failing(f.tests[t].now);
  if (!failing) {
    say(&f, "fix-tests: every test passes; nothing to fix");
    goto report;
  }
  /* 2. checkpoint, groups */
  if (checkpoint(&f, "qcoder fix-tests: start", &f.cp_start)) goto report;
  f.cp_base = strdup(f.cp_start);
  emit(&f, json_pack("{s:s, s:s, s:s}", "type", "checkpoint", "phase", "start", "id", f.cp_start));
  say(&f, "fix-tests: checkpoint %s (undo everything: qcoder checkpoint restore %s --workspace %s)", f.cp_start,
      f.cp_start, f.root);
  add_groups(&f, &f.current);
  say(&f, "fix-tests: %zu failing test%s in %zu group%s", failing, failing == 1 ? "" : "s", f.n_groups,
      f.n_groups == 1 ? "" : "s");
  for (size_t gi = 0; gi < f.n_groups; gi++) {
    grp *g = &f.groups[gi];
    json_t *names = json_array();
    for (size_t k = 0; k < g->n_tests; k++) json_array_append_new(names, json_string(f.tests[g->tests[k]].name));
    emit(&f, json_pack("{s:s, s:i, s:o, s:s, s:o}", "type", "group", "id", g->id, "file", str_or_null(g->file),
                       "signature", g->signature ? g->signature : "", "tests", names));
  }

  /* 3. the groups, in order (kept changes may append groups for tests that appear) */
  for (size_t gi = 0; gi < f.n_groups && !stopping(&f); gi++) {
    grp *g = &f.groups[gi];
    json_t *keys = group_failing_keys(&f, g);
    size_t nfail = json_array_size(keys);
    json_decref(keys);
    if (!nfail) continue; /* fixed by an earlier group's change */
    f.cur_group = g->id;
    say(&f, "[%d/%zu] %s%s%s (%zu test%s)", g->id, f.n_groups, g->file ? g->file : "", g->file ? ": " : "",
        g->signature, nfail, nfail == 1 ? "" : "s");
    for (int n = 1; n <= f.max_attempts && !stopping(&f); n++) {
      size_t had = g->n_atts;
      int stop = attempt(&f, gi, n);
      g = &f.groups[gi]; /* add_groups may have moved the array */
      if (g->n_atts > had) tally(&f, &g->atts[g->n_atts - 1]);
      if (stop) break;
      keys = group_failing_keys(&f, g);
      nfail = json_array_size(keys);
      json_decref(keys);
      if (!nfail) break;
    }
    f.cur_group = 0;
  }

report:;
  atomic_store(&f.quit_watch, 1);
  if (watching) pthread_join(watcher, NULL);
  disconnect_agent(&f);
  finish_groups(&f);
  finalize_changes(&f);
  size_t still = 0;
  for (size_t t = 0; t < f.n_tests; t++) still += ft_status_failing(f.tests[t].now);
  if (atomic_load(&f.interrupted)) rc = 3;
  else if (f.error) rc = 2;
  else rc = still ? 1 : 0;
  if (f.error && !f.json) fprintf(stderr, "qcoder fix-tests: %s\n", f.error);
  if (f.n_tests || f.error || atomic_load(&f.interrupted)) write_reports(&f, rc);
  wf_interrupt_uninstall();
  wf_view_free(f.view);
  f.view = NULL;
  fx_release(&f);
  return rc;
}
