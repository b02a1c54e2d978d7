/* test_fixtests.c — `qcoder fix-tests` end to end on examples/minilib (three failing tests
 * with real bugs, TAP output) with the scripted backend, one scripted session per group
 * (chosen by the failing test's name in the first message):
 *   - two groups are fixed and kept; the third group's first attempt fixes its test but
 *     breaks a passing one, so it is reverted; its second attempt changes nothing;
 *     report.json, report.md, fix.patch, junit.xml, $GITHUB_STEP_SUMMARY and exit 1;
 *   - --commit puts the kept changes on a branch;
 *   - a green suite exits 0 without starting a daemon;
 *   - Ctrl-C in the middle of an attempt leaves the workspace at the last kept checkpoint
 *     and writes a partial report (exit 3); the time budget likewise stops and reverts.
 */
#include "tests/workflows/wf_test.h"

static char *minilib(void) {
  char *d = qct_tempdir("wf-fix");
  char *src = qct_data_path("../../examples/minilib");
  ASSERT_EQ_INT(wf_sh(NULL, "cp -R '%s/.' '%s/' && cd '%s' && rm -rf build && git init -q && git add -A && "
                            "git -c user.name=t -c user.email=t@t commit -qm init",
                      src, d, d),
                0);
  free(src);
  return d;
}

static json_t *reply_list(const char *first, ...) {
  json_t *a = json_array();
  va_list ap;
  va_start(ap, first);
  for (const char *s = first; s; s = va_arg(ap, const char *)) json_array_append_new(a, json_string(s));
  va_end(ap);
  return a;
}

static char *call1(const char *name, ...) {
  qc_buf b;
  qc_buf_init(&b, 0);
  va_list ap;
  va_start(ap, name);
  qc_buf_printf(&b, "<tool_call>\n<function=%s>\n", name);
  for (;;) {
    const char *k = va_arg(ap, const char *);
    if (!k) break;
    qc_buf_printf(&b, "<parameter=%s>\n%s\n</parameter>\n", k, va_arg(ap, const char *));
  }
  qc_buf_puts(&b, "</function>\n</tool_call>\n");
  va_end(ap);
  return qc_buf_detach(&b, NULL);
}

static const char k_cw_old[] = "  size_t words = 0;\n  if (!*s) return 0;\n  for (const char *p = s; *p; p++)\n"
                               "    if (*p == ' ' || *p == '\\t') words++;\n  return words + 1;";
static const char k_cw_new[] = "  size_t words = 0;\n  int in_word = 0;\n  for (const char *p = s; *p; p++) {\n"
                               "    int space = *p == ' ' || *p == '\\t';\n    if (!space && !in_word) words++;\n"
                               "    in_word = !space;\n  }\n  return words;";

/* The three sessions: reverse fixed, count_words fixed, is_prime broken then nothing. */
static char *write_script(const char *dir, int slow_group2) {
  char *rd1 = call1("read_file", "path", "src/strutil.c", NULL);
  char *ed1 = call1("edit_file", "path", "src/strutil.c", "old_string", "i < j - 1; i++, j--", "new_string",
                    "i < j; i++, j--", NULL);
  char *ed2 = call1("edit_file", "path", "src/strutil.c", "old_string", k_cw_old, "new_string", k_cw_new, NULL);
  char *rd3 = call1("read_file", "path", "src/mathutil.c", NULL);
  char *ed3 = call1("edit_file", "path", "src/mathutil.c", "old_string",
                    "  if (n < 2) return 0;\n  for (unsigned d = 2; d * d < n; d++)", "new_string",
                    "  if (n < 3) return 0;\n  for (unsigned d = 2; d * d <= n; d++)", NULL);
  json_t *g2 = slow_group2
                   ? json_pack("[s, s, {s:s, s:i}]", rd1,
                               /* a first edit that is not the fix: the interrupted attempt's change */
                               "<tool_call>\n<function=edit_file>\n<parameter=path>\nsrc/strutil.c\n</parameter>\n"
                               "<parameter=old_string>\nsize_t str_count_words(const char *s) {\n</parameter>\n"
                               "<parameter=new_string>\nsize_t str_count_words(const char *s) { /* WIP */\n"
                               "</parameter>\n</function>\n</tool_call>\n",
                               "text", "Now I am thinking very slowly about how words are counted, one word at a "
                               "time, and this reply takes a long while to arrive in full: it is here so that the "
                               "attempt is still running when the test interrupts it or when the time budget ends. "
                               "Words are runs of characters other than blanks; a run of blanks separates two words; "
                               "blanks at either end separate nothing at all.",
                               "delay_ms", 150)
                   : reply_list(rd1, ed2,
                                "str_count_words counted separators instead of words; it now counts where words "
                                "start.",
                                NULL);
  json_t *script = json_pack(
      "{s:[{s:s, s:o}, {s:s, s:o}, {s:s, s:o}]}", "sessions", "match", "str_reverse: even length", "replies",
      reply_list(rd1, ed1, "The loop in str_reverse stopped one swap early for even lengths; the condition is now i < j.",
                 NULL),
      "match", "str_count_words: extra spaces", "replies", g2, "match", "is_prime: squares of primes", "replies",
      reply_list(rd3, ed3, "is_prime missed squares; the loop now includes d * d == n.",
                 "I do not know what else to change.", NULL));
  char *p = qc_asprintf("%s/script.json", dir);
  json_dump_file(script, p, JSON_INDENT(1));
  json_decref(script);
  free(rd1), free(ed1), free(ed2), free(rd3), free(ed3);
  return p;
}

static json_t *find_test(json_t *report, const char *name) {
  size_t i;
  json_t *t;
  json_array_foreach(json_object_get(report, "tests"), i, t) if (!strcmp(json_string_value(json_object_get(t, "name")), name))
      return t;
  return NULL;
}

static char *read_in(const char *dir, const char *name) {
  char *p = qc_asprintf("%s/%s", dir, name);
  char *s = qct_read_file(p, NULL);
  free(p);
  return s;
}

TEST(fixtests_keeps_two_fixes_and_reverts_the_attempt_that_breaks_a_passing_test) {
  if (!wf_sandbox_works()) SKIP("bubblewrap cannot run here (fix-tests runs the suite in the sandbox)");
  char *env = wf_env("wf-fix-env");
  char *ws = minilib();
  char *sc = write_script(env, 0);
  char *rep = qc_asprintf("%s/report", env);
  char *summary = qc_asprintf("%s/summary.md", env);
  qct_write_file(summary, "# earlier step\n");
  setenv("GITHUB_STEP_SUMMARY", summary, 1);
  char *out = NULL;
  int rc = wf_sh(&out, "'%s' fix-tests --workspace '%s' --model 'script:%s' --max-attempts 2 --report '%s' "
                       "--commit qcoder-fixes --json -- make test",
                 qct_qcoder_bin(), ws, sc, rep);
  unsetenv("GITHUB_STEP_SUMMARY");
  ASSERT_EQ_INT(rc, 1);
  /* the events */
  json_t *ev = wf_ndjson(out);
  json_t *last = json_array_get(ev, json_array_size(ev) - 1);
  ASSERT_STR_EQ(json_string_value(json_object_get(last, "type")), "result");
  ASSERT_STR_EQ(json_string_value(json_object_get(last, "resolution")), "PARTIAL");
  ASSERT_EQ_INT(json_integer_value(json_object_get(last, "exitCode")), 1);
  int attempts = 0, updates = 0;
  size_t i;
  json_t *e;
  json_array_foreach(ev, i, e) {
    attempts += !strcmp(json_string_value(json_object_get(e, "type")), "attempt");
    updates += !strcmp(json_string_value(json_object_get(e, "type")), "session/update");
  }
  ASSERT_EQ_INT(attempts, 4);
  ASSERT(updates > 10);
  /* report.json */
  char *rj = qc_asprintf("%s/report.json", rep);
  json_t *r = wf_load_json(rj);
  ASSERT(r);
  ASSERT_STR_EQ(json_string_value(json_object_get(r, "status")), "complete");
  ASSERT_STR_EQ(json_string_value(json_object_get(r, "resolution")), "PARTIAL");
  ASSERT_EQ_INT(json_integer_value(json_object_get(r, "exit_code")), 1);
  json_t *tot = json_object_get(r, "totals");
  ASSERT_EQ_INT(json_integer_value(json_object_get(tot, "tests")), 15);
  ASSERT_EQ_INT(json_integer_value(json_object_get(tot, "failing_before")), 3);
  ASSERT_EQ_INT(json_integer_value(json_object_get(tot, "failing_after")), 1);
  ASSERT_EQ_INT(json_integer_value(json_object_get(tot, "fixed")), 2);
  ASSERT_EQ_INT(json_integer_value(json_object_get(tot, "broken")), 0);
  ASSERT_EQ_INT(json_integer_value(json_object_get(tot, "groups")), 3);
  ASSERT_EQ_INT(json_integer_value(json_object_get(tot, "attempts")), 4);
  ASSERT_EQ_INT(json_integer_value(json_object_get(tot, "kept")), 2);
  ASSERT_EQ_INT(json_integer_value(json_object_get(tot, "reverted")), 1);
  ASSERT_EQ_INT(json_integer_value(json_object_get(tot, "no_change")), 1);
  ASSERT(json_integer_value(json_object_get(tot, "generated_tokens")) > 0);
  json_t *ts = json_object_get(r, "tests_status");
  ASSERT_EQ_INT(json_array_size(json_object_get(json_object_get(ts, "FAIL_TO_PASS"), "success")), 2);
  ASSERT_EQ_INT(json_array_size(json_object_get(json_object_get(ts, "FAIL_TO_PASS"), "failure")), 1);
  ASSERT_EQ_INT(json_array_size(json_object_get(json_object_get(ts, "PASS_TO_PASS"), "success")), 12);
  ASSERT_EQ_INT(json_array_size(json_object_get(json_object_get(ts, "PASS_TO_PASS"), "failure")), 0);
  json_t *t = find_test(r, "str_reverse: even length");
  ASSERT_STR_EQ(json_string_value(json_object_get(t, "before")), "failed");
  ASSERT_STR_EQ(json_string_value(json_object_get(t, "after")), "passed");
  ASSERT_STR_EQ(json_string_value(json_object_get(t, "result")), "fixed");
  ASSERT(json_is_true(json_object_get(t, "kept")));
  ASSERT_EQ_INT(json_integer_value(json_object_get(t, "attempts")), 1);
  t = find_test(r, "is_prime: squares of primes");
  ASSERT_STR_EQ(json_string_value(json_object_get(t, "after")), "failed");
  ASSERT_STR_EQ(json_string_value(json_object_get(t, "result")), "still failing");
  ASSERT_EQ_INT(json_integer_value(json_object_get(t, "attempts")), 2);
  ASSERT_CONTAINS(json_string_value(json_object_get(t, "why")), "broke 1 passing test");
  t = find_test(r, "is_prime: small primes");
  ASSERT_STR_EQ(json_string_value(json_object_get(t, "result")), "passing");
  /* the group that was reverted */
  json_t *g3 = json_array_get(json_object_get(r, "groups"), 2);
  ASSERT_STR_EQ(json_string_value(json_object_get(g3, "status")), "not fixed");
  ASSERT_STR_EQ(json_string_value(json_object_get(g3, "file")), "tests/test_mathutil.c");
  json_t *a1 = json_array_get(json_object_get(g3, "attempts"), 0);
  ASSERT_STR_EQ(json_string_value(json_object_get(a1, "outcome")), "reverted");
  ASSERT_STR_EQ(json_string_value(json_array_get(json_object_get(a1, "broke"), 0)), "is_prime: small primes");
  ASSERT_STR_EQ(json_string_value(json_array_get(json_object_get(a1, "fixed"), 0)), "is_prime: squares of primes");
  ASSERT_CONTAINS(json_string_value(json_object_get(a1, "explanation")), "is_prime missed squares");
  json_t *a2 = json_array_get(json_object_get(g3, "attempts"), 1);
  ASSERT_STR_EQ(json_string_value(json_object_get(a2, "outcome")), "no change");
  json_t *g1 = json_array_get(json_object_get(r, "groups"), 0);
  ASSERT_STR_EQ(json_string_value(json_object_get(g1, "status")), "fixed");
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(json_object_get(g1, "attempts"), 0), "outcome")), "kept");
  ASSERT_EQ_INT(json_integer_value(json_object_get(json_object_get(r, "patch"), "files_changed")), 1);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(r, "commit"), "branch")), "qcoder-fixes");
  /* the workspace: the two kept fixes, not the reverted one */
  char *strutil = read_in(ws, "src/strutil.c"), *mathutil = read_in(ws, "src/mathutil.c");
  ASSERT_CONTAINS(strutil, "i < j; i++, j--");
  ASSERT_CONTAINS(strutil, "in_word = !space;");
  ASSERT_CONTAINS(mathutil, "if (n < 2) return 0;");
  ASSERT_CONTAINS(mathutil, "d * d < n;");
  /* fix.patch: the kept changes, applicable to the starting commit */
  char *patch = read_in(rep, "fix.patch");
  ASSERT_CONTAINS(patch, "diff --git a/src/strutil.c b/src/strutil.c");
  ASSERT_CONTAINS(patch, "+  for (size_t i = 0, j = n - 1; i < j; i++, j--) {");
  ASSERT(!strstr(patch, "mathutil"));
  ASSERT_EQ_INT(wf_sh(NULL, "cd '%s' && git apply --check -R '%s/fix.patch'", ws, rep), 0);
  /* the branch */
  char *log = NULL;
  ASSERT_EQ_INT(wf_sh(&log, "cd '%s' && git log --format=%%s -1 qcoder-fixes", ws), 0);
  ASSERT_CONTAINS(log, "qcoder fix-tests: fix failing tests");
  /* junit.xml of the final run */
  char *junit = read_in(rep, "junit.xml");
  ASSERT_CONTAINS(junit, "<testsuites name=\"qcoder fix-tests: final run\" tests=\"15\" failures=\"1\"");
  ASSERT_CONTAINS(junit, "<testcase name=\"is_prime: squares of primes\"");
  ASSERT_CONTAINS(junit, "<failure message=\"tests/test_mathutil.c:10:");
  ASSERT_CONTAINS(junit, "<testcase name=\"str_reverse: even length\" classname=\"tests\" time=\"0.000\"/>");
  /* report.md, also in the step summary */
  char *md = read_in(rep, "report.md");
  ASSERT_CONTAINS(md, "**Resolution: PARTIAL** — 2 of 3 failing tests fixed, 0 passing tests broken.");
  ASSERT_CONTAINS(md, "| `str_reverse: even length` | failed | passed | 1 | fixed");
  ASSERT_CONTAINS(md, "- **Attempt 1: reverted** — it broke 1 passing test");
  ASSERT_CONTAINS(md, "> The loop in str_reverse stopped one swap early");
  ASSERT_CONTAINS(md, "12 other tests passed before and after.");
  char *sum = qct_read_file(summary, NULL);
  ASSERT(!strncmp(sum, "# earlier step\n# qcoder fix-tests report", 40));
  ASSERT(wf_daemon_gone());
  free(sum), free(md), free(junit), free(log), free(patch), free(strutil), free(mathutil);
  json_decref(r);
  json_decref(ev);
  free(rj), free(out), free(summary), free(rep), free(sc), free(ws), free(env);
}

TEST(fixtests_green_suite_exits_0_without_a_daemon) {
  if (!wf_sandbox_works()) SKIP("bubblewrap cannot run here");
  char *env = wf_env("wf-fix-env");
  char *ws = wf_repo("wf-green", "Makefile", "test:\n\t@echo 'ok 1 - one'; echo 'ok 2 - two'; echo '1..2'\n", NULL);
  char *rep = qc_asprintf("%s/report", env);
  char *out = NULL;
  ASSERT_EQ_INT(wf_sh(&out, "'%s' fix-tests --workspace '%s' --model script:/nonexistent.json --report '%s' -- make test "
                            "2>&1",
                      qct_qcoder_bin(), ws, rep),
                2); /* the script must exist: the model is checked first */
  free(out);
  char *sc = qc_asprintf("%s/unused.json", env);
  qct_write_file(sc, "[]");
  ASSERT_EQ_INT(wf_sh(&out, "'%s' fix-tests --workspace '%s' --model 'script:%s' --report '%s' -- make test",
                      qct_qcoder_bin(), ws, sc, rep),
                0);
  ASSERT_CONTAINS(out, "every test passes");
  char *rp = qc_asprintf("%s/report.json", rep);
  json_t *r = wf_load_json(rp);
  free(rp);
  ASSERT_STR_EQ(json_string_value(json_object_get(r, "resolution")), "FULL");
  ASSERT_EQ_INT(json_integer_value(json_object_get(json_object_get(r, "totals"), "tests")), 2);
  ASSERT(wf_daemon_gone());
  json_decref(r);
  free(out), free(sc), free(rep), free(ws), free(env);
}

TEST(fixtests_without_per_test_results_uses_the_exit_status) {
  if (!wf_sandbox_works()) SKIP("bubblewrap cannot run here");
  char *env = wf_env("wf-fix-env");
  char *ws = wf_repo("wf-build", "check.sh", "#!/bin/sh\ngrep -q fixed flag.txt || { echo 'flag.txt: not fixed yet'; exit 2; }\n",
                     "flag.txt", "broken\n", NULL);
  char *rd = call1("read_file", "path", "flag.txt", NULL);
  char *w = call1("write_file", "path", "flag.txt", "content", "fixed", NULL);
  json_t *s = json_pack("[s, s, s]", rd, w, "flag.txt said broken; it now says fixed.");
  free(rd);
  char *sc = qc_asprintf("%s/s.json", env);
  json_dump_file(s, sc, 0);
  json_decref(s);
  char *rep = qc_asprintf("%s/report", env);
  ASSERT_EQ_INT(wf_sh(NULL, "'%s' fix-tests --workspace '%s' --model 'script:%s' --report '%s' -- sh check.sh",
                      qct_qcoder_bin(), ws, sc, rep),
                0);
  char *p = qc_asprintf("%s/report.json", rep);
  json_t *r = wf_load_json(p);
  ASSERT_STR_EQ(json_string_value(json_object_get(r, "resolution")), "FULL");
  json_t *t = find_test(r, "(test command)");
  ASSERT(t);
  ASSERT_STR_EQ(json_string_value(json_object_get(t, "result")), "fixed");
  json_decref(r);
  free(p), free(rep), free(sc), free(w), free(ws), free(env);
}

TEST(fixtests_ctrl_c_restores_the_checkpoint_and_writes_a_partial_report) {
  if (!wf_sandbox_works()) SKIP("bubblewrap cannot run here");
  char *env = wf_env("wf-fix-env");
  char *ws = minilib();
  char *sc = write_script(env, 1);
  char *rep = qc_asprintf("%s/report", env);
  char *outp = qc_asprintf("%s/out.jsonl", env), *errp = qc_asprintf("%s/err.txt", env);
  char *model = qc_asprintf("script:%s", sc);
  char *argv[] = {(char *)qct_qcoder_bin(), "fix-tests", "--workspace", ws, "--model", model, "--report", rep, "--json",
                  "--", "make", "test", NULL};
  pid_t pid = wf_spawn(argv, outp, errp);
  ASSERT(pid > 0);
  /* group 2's slow reply is streaming: its first edit has been made */
  ASSERT(wf_wait_for_line(outp, "\"group\":2", "agent_message_chunk", 60000));
  char *mid = read_in(ws, "src/strutil.c");
  ASSERT_CONTAINS(mid, "/* WIP */");
  free(mid);
  kill(pid, SIGINT);
  int rc = wf_wait_exit(pid, 60000);
  ASSERT_EQ_INT(rc, 3);
  /* the workspace is at the last kept checkpoint: group 1's fix, not group 2's edit */
  char *strutil = read_in(ws, "src/strutil.c");
  ASSERT_CONTAINS(strutil, "i < j; i++, j--");
  ASSERT(!strstr(strutil, "WIP"));
  ASSERT_CONTAINS(strutil, "return words + 1;");
  /* the partial report */
  char *p = qc_asprintf("%s/report.json", rep);
  json_t *r = wf_load_json(p);
  ASSERT(r);
  ASSERT_STR_EQ(json_string_value(json_object_get(r, "status")), "interrupted");
  ASSERT_STR_EQ(json_string_value(json_object_get(r, "stopped_by")), "interrupt");
  ASSERT_EQ_INT(json_integer_value(json_object_get(r, "exit_code")), 3);
  ASSERT_EQ_INT(json_integer_value(json_object_get(json_object_get(r, "totals"), "fixed")), 1);
  json_t *groups = json_object_get(r, "groups");
  json_t *a = json_array_get(json_object_get(json_array_get(groups, 1), "attempts"), 0);
  ASSERT_STR_EQ(json_string_value(json_object_get(a, "outcome")), "interrupted");
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(groups, 2), "status")), "not attempted");
  char *md = read_in(rep, "report.md");
  ASSERT_CONTAINS(md, "**Interrupted.** This is a partial report");
  char *patch = read_in(rep, "fix.patch");
  ASSERT_CONTAINS(patch, "i < j; i++, j--");
  ASSERT(!strstr(patch, "WIP"));
  char *junit = read_in(rep, "junit.xml");
  ASSERT_CONTAINS(junit, "failures=\"2\"");
  ASSERT(wf_daemon_gone());
  json_decref(r);
  free(junit), free(patch), free(md), free(p), free(strutil), free(outp), free(errp), free(model), free(rep), free(sc),
      free(ws), free(env);
}

TEST(fixtests_time_budget_stops_and_reverts) {
  if (!wf_sandbox_works()) SKIP("bubblewrap cannot run here");
  char *env = wf_env("wf-fix-env");
  char *ws = minilib();
  char *sc = write_script(env, 1);
  char *rep = qc_asprintf("%s/report", env);
  /* group 1 is quick; group 2's slow reply outlives a 4 s budget */
  int rc = wf_sh(NULL, "'%s' fix-tests --workspace '%s' --model 'script:%s' --report '%s' --time-budget 4 -- make test",
                 qct_qcoder_bin(), ws, sc, rep);
  ASSERT_EQ_INT(rc, 1);
  char *p = qc_asprintf("%s/report.json", rep);
  json_t *r = wf_load_json(p);
  ASSERT_STR_EQ(json_string_value(json_object_get(r, "stopped_by")), "time_budget");
  ASSERT_STR_EQ(json_string_value(json_object_get(r, "status")), "complete");
  char *strutil = read_in(ws, "src/strutil.c");
  ASSERT(!strstr(strutil, "WIP"));
  ASSERT(json_number_value(json_object_get(r, "elapsed_s")) < 30);
  json_decref(r);
  free(strutil), free(p), free(rep), free(sc), free(ws), free(env);
}

TEST(fixtests_usage_errors) {
  char *env = wf_env("wf-fix-env");
  ASSERT_EQ_INT(wf_sh(NULL, "'%s' fix-tests --max-attempts 0 -- make 2>/dev/null", qct_qcoder_bin()), 2);
  ASSERT_EQ_INT(wf_sh(NULL, "'%s' fix-tests --workspace /tmp 2>/dev/null", qct_qcoder_bin()), 2);
  ASSERT_EQ_INT(wf_sh(NULL, "'%s' fix-tests --workspace /tmp -- make 2>/dev/null", qct_qcoder_bin()), 2); /* no model */
  free(env);
}

QC_TEST_MAIN
