/* test_testruns.c — run_tests: the result parsers on captured runner output
 * (tests/data/tools/), malformed input, detection, and end-to-end runs on tiny projects. */
#include "tests/tools/tt.h"

static char *sample(const char *name, size_t *len) {
  char *p = qct_data_path(name);
  char *s = NULL;
  ASSERT_MSG(qc_read_file(p, 1 << 24, &s, len) == QC_OK, "cannot read %s", p);
  free(p);
  return s;
}

static json_t *parse_sample(const char *name, const char *format, const char *want_detected) {
  size_t n;
  char *s = sample(name, &n);
  const char *det = NULL;
  json_t *t = tool_tests_parse(format, s, n, &det);
  ASSERT(t && json_is_array(t));
  if (want_detected) {
    ASSERT_MSG(det && strcmp(det, want_detected) == 0, "%s: detected %s, want %s", name, det ? det : "(none)",
               want_detected);
  }
  free(s);
  return t;
}

static json_t *find(json_t *tests, const char *name) {
  size_t i;
  json_t *t;
  json_array_foreach(tests, i, t) {
    if (strcmp(json_string_value(json_object_get(t, "name")), name) == 0) return t;
  }
  QCT_FAIL("no test named %s", name);
  return NULL;
}

static const char *status(json_t *tests, const char *name) {
  return json_string_value(json_object_get(find(tests, name), "status"));
}

static const char *output(json_t *tests, const char *name) {
  const char *o = json_string_value(json_object_get(find(tests, name), "output"));
  return o ? o : "";
}

/* ---- parsers ---------------------------------------------------------------------- */

TEST(parse_ctest_output_and_junit) {
  for (int auto_ = 0; auto_ < 2; auto_++) {
    json_t *t = parse_sample("tools/ctest.txt", auto_ ? NULL : "ctest", "ctest");
    ASSERT_EQ_INT(json_array_size(t), 4);
    ASSERT_STR_EQ(status(t, "math_add"), "passed");
    ASSERT_STR_EQ(status(t, "math_div"), "failed");
    ASSERT_STR_EQ(output(t, "math_div"), "div.c:12: expected 2, got 3");
    ASSERT_STR_EQ(status(t, "io_skip"), "skipped");
    ASSERT_STR_EQ(status(t, "parse_json"), "passed");
    json_decref(t);
  }
  json_t *t = parse_sample("tools/ctest_junit.xml", NULL, "junit");
  ASSERT_EQ_INT(json_array_size(t), 4);
  ASSERT_STR_EQ(status(t, "math_div"), "failed");
  ASSERT_CONTAINS(output(t, "math_div"), "div.c:12: expected 2, got 3");
  ASSERT_STR_EQ(status(t, "io_skip"), "skipped");
  ASSERT(json_object_get(find(t, "math_add"), "output") == NULL); /* kept for failures only */
  json_decref(t);
}

TEST(parse_pytest_output_and_junit) {
  json_t *t = parse_sample("tools/pytest.txt", NULL, "pytest");
  ASSERT_EQ_INT(json_array_size(t), 6);
  ASSERT_STR_EQ(status(t, "tests/test_math.py::test_add"), "passed");
  ASSERT_STR_EQ(status(t, "tests/test_math.py::test_divide"), "failed");
  ASSERT_CONTAINS(output(t, "tests/test_math.py::test_divide"), "E       assert 2.0 == 3");
  ASSERT_CONTAINS(output(t, "tests/test_math.py::test_divide"), "tests/test_math.py:12: AssertionError");
  ASSERT_STR_EQ(status(t, "tests/test_parse.py::TestParser::test_quotes"), "failed");
  ASSERT_CONTAINS(output(t, "tests/test_parse.py::TestParser::test_quotes"), "Captured stdout call");
  ASSERT_STR_EQ(status(t, "tests/test_parse.py::test_parse_header"), "error");
  ASSERT_CONTAINS(output(t, "tests/test_parse.py::test_parse_header"), "FileNotFoundError");
  ASSERT_STR_EQ(status(t, "tests/test_math.py:20"), "skipped");
  ASSERT_STR_EQ(json_string_value(json_object_get(find(t, "tests/test_math.py::test_add"), "file")),
                "tests/test_math.py");
  json_decref(t);
  /* the JUnit file of the same run gives the same node ids */
  t = parse_sample("tools/pytest_junit.xml", "junit", "junit");
  ASSERT_EQ_INT(json_array_size(t), 6);
  ASSERT_STR_EQ(status(t, "tests/test_math.py::test_divide"), "failed");
  ASSERT_CONTAINS(output(t, "tests/test_math.py::test_divide"), "assert divide(6, 3) == 3");
  ASSERT_STR_EQ(status(t, "tests/test_parse.py::TestParser::test_quotes"), "failed");
  ASSERT_CONTAINS(output(t, "tests/test_parse.py::TestParser::test_quotes"), "assert '\"a\"' == 'a'");
  ASSERT_STR_EQ(status(t, "tests/test_parse.py::test_parse_header"), "error");
  ASSERT_STR_EQ(status(t, "tests/test_math.py::test_gpu"), "skipped");
  ASSERT_NEAR(json_real_value(json_object_get(find(t, "tests/test_math.py::test_add"), "duration_s")), 0.001, 1e-9);
  json_decref(t);
}

TEST(parse_go_test_json) {
  json_t *t = parse_sample("tools/go_test.json", NULL, "go");
  ASSERT_EQ_INT(json_array_size(t), 5);
  ASSERT_STR_EQ(status(t, "TestAdd"), "passed");
  ASSERT_STR_EQ(status(t, "TestDiv/by_zero"), "failed");
  ASSERT_CONTAINS(output(t, "TestDiv/by_zero"), "calc_test.go:21: Div(1, 0) = 0, want error");
  ASSERT_STR_EQ(status(t, "TestDiv/exact"), "passed");
  ASSERT_STR_EQ(status(t, "TestNetwork"), "skipped");
  /* the parent TestDiv is represented by its failing subtest */
  size_t i;
  json_t *x;
  json_array_foreach(t, i, x) ASSERT(strcmp(json_string_value(json_object_get(x, "name")), "TestDiv") != 0);
  /* a package that failed to build is an error with the compiler's message */
  ASSERT_STR_EQ(status(t, "example.com/calc/broken"), "error");
  ASSERT_CONTAINS(output(t, "example.com/calc/broken"), "undefined: missingFunc");
  ASSERT_STR_EQ(json_string_value(json_object_get(find(t, "TestAdd"), "suite")), "example.com/calc");
  json_decref(t);
}

TEST(parse_cargo_test) {
  json_t *t = parse_sample("tools/cargo_test.txt", NULL, "cargo");
  ASSERT_EQ_INT(json_array_size(t), 5);
  ASSERT_STR_EQ(status(t, "tests::adds"), "passed");
  ASSERT_STR_EQ(status(t, "tests::adds_wrong"), "failed");
  ASSERT_CONTAINS(output(t, "tests::adds_wrong"), "assertion `left == right` failed: two plus two");
  ASSERT_STR_EQ(status(t, "tests::prints_then_fails"), "failed");
  ASSERT(qc_str_has_prefix(output(t, "tests::prints_then_fails"), "some output\n"));
  ASSERT_STR_EQ(status(t, "tests::slow"), "skipped");
  ASSERT_STR_EQ(status(t, "integ_ok"), "passed");
  ASSERT_STR_EQ(json_string_value(json_object_get(find(t, "integ_ok"), "suite")), "tests/integ.rs");
  json_decref(t);
}

TEST(parse_node_spec_and_tap) {
  static const char *const files[] = {"tools/node_spec.txt", "tools/node_tap.txt"};
  static const char *const fmts[] = {"node", "tap"};
  for (int k = 0; k < 2; k++) {
    json_t *t = parse_sample(files[k], NULL, fmts[k]);
    ASSERT_MSG(json_array_size(t) == 5, "%s: %zu tests", files[k], json_array_size(t));
    ASSERT_STR_EQ(status(t, "adds numbers"), "passed");
    ASSERT_STR_EQ(status(t, "fails on purpose"), "failed");
    ASSERT_CONTAINS(output(t, "fails on purpose"), "2 !== 3");
    ASSERT_STR_EQ(status(t, "skipped one"), "skipped");
    ASSERT_STR_EQ(status(t, "inner ok"), "passed");
    ASSERT_STR_EQ(status(t, "inner bad"), "failed");
    ASSERT_CONTAINS(output(t, "inner bad"), "boom");
    json_decref(t);
  }
}

TEST(parse_plain_tap) {
  json_t *t = parse_sample("tools/tap.txt", NULL, "tap");
  ASSERT_EQ_INT(json_array_size(t), 6);
  ASSERT_STR_EQ(status(t, "parser accepts empty input"), "passed");
  ASSERT_STR_EQ(status(t, "parser rejects trailing comma"), "failed");
  ASSERT_CONTAINS(output(t, "parser rejects trailing comma"), "expected an error");
  ASSERT_STR_EQ(status(t, "lexer handles unicode"), "skipped");
  ASSERT_STR_EQ(status(t, "pretty printer wraps lines"), "skipped"); /* a failing TODO */
  ASSERT_STR_EQ(status(t, "round trip"), "passed");
  ASSERT_STR_EQ(status(t, "writer flushes on close"), "failed");
  ASSERT_CONTAINS(output(t, "writer flushes on close"), "expected: 'data'");
  json_decref(t);
}

TEST(parsers_survive_truncated_and_garbage_input) {
  static const char *const files[] = {"tools/ctest.txt", "tools/ctest_junit.xml", "tools/pytest.txt",
                                      "tools/pytest_junit.xml", "tools/go_test.json", "tools/cargo_test.txt",
                                      "tools/node_spec.txt", "tools/node_tap.txt", "tools/tap.txt", NULL};
  static const char *const fmts[] = {NULL, "junit", "ctest", "pytest", "go", "cargo", "node", "tap"};
  for (int f = 0; files[f]; f++) {
    size_t n;
    char *s = sample(files[f], &n);
    for (size_t cut = 0; cut < n; cut += 53) {
      for (size_t k = 0; k < sizeof fmts / sizeof fmts[0]; k++) {
        json_t *t = tool_tests_parse(fmts[k], s, cut, NULL);
        ASSERT(t && json_is_array(t));
        json_decref(t);
      }
    }
    free(s);
  }
  /* random bytes, NULs, unbalanced XML, a huge line */
  unsigned seed = 12345;
  char *junk = malloc(65536);
  for (int round = 0; round < 20; round++) {
    for (int i = 0; i < 65536; i++) {
      seed = seed * 1103515245u + 12345u;
      junk[i] = (char)(seed >> 16);
    }
    if (round % 2) memcpy(junk + 100, "<testcase name=\"x\"><failure><![CDATA[", 38);
    json_t *t = tool_tests_parse(NULL, junk, 65536, NULL);
    ASSERT(t);
    json_decref(t);
  }
  free(junk);
  const char *const bad[] = {"<testcase", "<testcase name=\"a", "<testcase name='a'><failure>&#99999999;&amp",
                             "ok", "not ok", "test x ... ", "{\"Action\":\"run\",\"Package\":\"p\",\"Test\":\"T\"}",
                             "\xE2\x9C\x96", "___ x ___", "", NULL};
  for (int i = 0; bad[i]; i++) {
    json_t *t = tool_tests_parse(NULL, bad[i], strlen(bad[i]), NULL);
    ASSERT(t);
    json_decref(t);
  }
  /* a go test that started but never finished (the binary crashed) is a failure */
  const char *crash = "{\"Action\":\"run\",\"Package\":\"p\",\"Test\":\"TestBoom\"}\n"
                      "{\"Action\":\"output\",\"Package\":\"p\",\"Test\":\"TestBoom\",\"Output\":\"panic: boom\\n\"}\n";
  json_t *t = tool_tests_parse("go", crash, strlen(crash), NULL);
  ASSERT_STR_EQ(status(t, "TestBoom"), "failed");
  ASSERT_CONTAINS(output(t, "TestBoom"), "panic: boom");
  json_decref(t);
}

/* ---- end to end ------------------------------------------------------------------- */

static int have(const char *prog) {
  char *cmd = qc_asprintf("command -v %s >/dev/null 2>&1", prog);
  int rc = qct_run(cmd, NULL);
  free(cmd);
  return rc == 0;
}

static json_t *run_tests(tool_ws *ws, const char *args, int want_rc, char **text) {
  tool_result r;
  int rc = tt_call(ws, "run_tests", args, &r);
  ASSERT_MSG(rc == want_rc, "run_tests %s: %s (%d): %s", args ? args : "", tool_strerror(rc), rc,
             r.ok ? r.output : r.error);
  json_t *tests = json_incref(json_object_get(r.data, "tests"));
  if (text) *text = strdup(r.ok ? r.output : r.error);
  tool_result_release(&r);
  return tests;
}

static const char tap_script[] =
    "#!/bin/sh\n"
    "echo 'TAP version 13'\n"
    "echo '1..3'\n"
    "echo 'ok 1 - addition works'\n"
    "echo 'not ok 2 - division by zero is caught'\n"
    "echo '# expected an error, got 0'\n"
    "echo 'ok 3 - parsing # SKIP no parser yet'\n"
    "exit 1\n";

TEST(run_tests_make_test_with_tap_output) {
  char *d = qct_tempdir("rt-make");
  tt_write(d, "Makefile", "all:\n\ttrue\n\ntest:\n\tsh ./t.sh\n");
  tt_write(d, "t.sh", tap_script);
  tool_ws *ws = tt_open(d);
  char *text = NULL;
  json_t *res = run_tests(ws, "{}", TOOL_EFAILED, &text);
  json_t *sum = json_object_get(res, "summary");
  ASSERT_STR_EQ(json_string_value(json_object_get(sum, "runner")), "make");
  ASSERT_STR_EQ(json_string_value(json_object_get(sum, "command")), "make test");
  ASSERT_STR_EQ(json_string_value(json_object_get(sum, "format")), "tap");
  ASSERT_EQ_INT(json_integer_value(json_object_get(sum, "total")), 3);
  ASSERT_EQ_INT(json_integer_value(json_object_get(sum, "failed")), 1);
  ASSERT(json_integer_value(json_object_get(sum, "exit_code")) != 0);
  json_t *tests = json_object_get(res, "tests");
  ASSERT_STR_EQ(status(tests, "division by zero is caught"), "failed");
  ASSERT_CONTAINS(text, "3 tests: 1 passed, 1 failed, 1 skipped, 0 errors.");
  ASSERT_CONTAINS(text, "FAILED division by zero is caught\n  # expected an error, got 0");
  free(text);
  json_decref(res);
  /* make cannot take a filter: all run, matching ones shown */
  res = run_tests(ws, "{\"filter\":\"addition\"}", TOOL_EFAILED, &text);
  sum = json_object_get(res, "summary");
  ASSERT_EQ_INT(json_integer_value(json_object_get(sum, "total")), 1);
  ASSERT_STR_EQ(json_string_value(json_object_get(sum, "filtered_by")), "results");
  ASSERT_CONTAINS(text, "the runner cannot filter");
  free(text);
  json_decref(res);
  tool_ws_close(ws);
  free(d);
}

TEST(run_tests_ctest_reads_junit) {
  if (!have("cmake") || !have("ctest")) SKIP("cmake/ctest are not installed");
  char *d = qct_tempdir("rt-ctest");
  tt_write(d, "CMakeLists.txt",
           "cmake_minimum_required(VERSION 3.20)\nproject(mini NONE)\nenable_testing()\n"
           "add_test(NAME math_add COMMAND sh -c \"exit 0\")\n"
           "add_test(NAME math_div COMMAND sh -c \"echo 'div.c:12: expected 2, got 3'; exit 1\")\n"
           "add_test(NAME io_skip COMMAND sh -c \"exit 77\")\n"
           "set_tests_properties(io_skip PROPERTIES SKIP_RETURN_CODE 77)\n");
  tt_sh("cmake -S '%s' -B '%s/build' >/dev/null 2>&1", d, d);
  tool_ws *ws = tt_open(d);
  char *text = NULL;
  json_t *res = run_tests(ws, "{}", TOOL_EFAILED, &text);
  json_t *sum = json_object_get(res, "summary");
  ASSERT_STR_EQ(json_string_value(json_object_get(sum, "runner")), "ctest");
  ASSERT_STR_EQ(json_string_value(json_object_get(sum, "format")), "junit");
  ASSERT_EQ_INT(json_integer_value(json_object_get(sum, "total")), 3);
  json_t *tests = json_object_get(res, "tests");
  ASSERT_STR_EQ(status(tests, "math_div"), "failed");
  ASSERT_CONTAINS(output(tests, "math_div"), "expected 2, got 3");
  ASSERT_STR_EQ(status(tests, "io_skip"), "skipped");
  ASSERT_CONTAINS(text, "FAILED math_div");
  free(text);
  json_decref(res);
  /* the filter goes to ctest -R */
  res = run_tests(ws, "{\"filter\":\"math_add\"}", TOOL_OK, &text);
  sum = json_object_get(res, "summary");
  ASSERT_EQ_INT(json_integer_value(json_object_get(sum, "total")), 1);
  ASSERT_STR_EQ(json_string_value(json_object_get(sum, "filtered_by")), "runner");
  ASSERT_CONTAINS(text, "1 tests: 1 passed");
  free(text);
  json_decref(res);
  tool_ws_close(ws);
  free(d);
}

TEST(run_tests_configured_command_with_placeholders) {
  char *d = qct_tempdir("rt-cfg");
  tt_write(d, ".qcoder/config.json", "{\"test_command\": \"sh ./run.sh {filter} {junit}\"}");
  tt_write(d, "run.sh",
           "#!/bin/sh\n"
           "echo \"filter=[$1]\"\n"
           "cat > \"$2\" <<EOF\n"
           "<testsuite><testcase classname=\"suite\" name=\"alpha\"/>"
           "<testcase classname=\"suite\" name=\"beta\"><failure message=\"boom\">trace</failure></testcase>"
           "</testsuite>\n"
           "EOF\n"
           "exit 1\n");
  tool_ws *ws = tt_open(d);
  char *text = NULL;
  json_t *res = run_tests(ws, "{\"filter\":\"it's\"}", TOOL_EFAILED, &text);
  json_t *sum = json_object_get(res, "summary");
  ASSERT_STR_EQ(json_string_value(json_object_get(sum, "runner")), "custom");
  ASSERT_STR_EQ(json_string_value(json_object_get(sum, "format")), "junit");
  ASSERT_STR_EQ(json_string_value(json_object_get(sum, "filtered_by")), "runner");
  json_t *tests = json_object_get(res, "tests");
  ASSERT_STR_EQ(status(tests, "suite.beta"), "failed");
  ASSERT_CONTAINS(output(tests, "suite.beta"), "boom\ntrace");
  ASSERT_CONTAINS(text, "FAILED suite.beta");
  free(text);
  json_decref(res);
  /* the public API, with the caller's command (fix-tests) and the raw output */
  tool_tests_opts o = {"echo 'ok 1 - one'; echo 'not ok 2 - two'; exit 1", NULL, 30, NULL, NULL, NULL};
  json_t *results = NULL;
  char *err = NULL;
  ASSERT_EQ_INT(tool_tests_run(ws, &o, &results, &err), TOOL_OK);
  sum = json_object_get(results, "summary");
  ASSERT_EQ_INT(json_integer_value(json_object_get(sum, "failed")), 1);
  ASSERT_EQ_INT(json_integer_value(json_object_get(sum, "exit_code")), 1);
  ASSERT_CONTAINS(json_string_value(json_object_get(sum, "output")), "not ok 2 - two");
  json_decref(results);
  tool_ws_close(ws);
  free(d);
}

TEST(run_tests_without_a_test_command) {
  char *d = qct_tempdir("rt-none");
  tt_write(d, "README.md", "nothing to test\n");
  tool_ws *ws = tt_open(d);
  tool_result r;
  ASSERT_EQ_INT(tt_call(ws, "run_tests", "{}", &r), TOOL_ENOENT);
  ASSERT_CONTAINS(r.error, "no test command found");
  ASSERT_CONTAINS(r.error, ".qcoder/config.json");
  tool_result_release(&r);
  const char *runner = NULL;
  ASSERT(tool_tests_detect(ws, &runner) == NULL);
  tool_ws_close(ws);
  free(d);
}

TEST(run_tests_detects_runners) {
  static const struct {
    const char *file, *content, *runner;
  } cases[] = {
      {"go.mod", "module x\n", "go"},
      {"Cargo.toml", "[package]\nname = \"x\"\n", "cargo"},
      {"pyproject.toml", "[tool.pytest.ini_options]\n", "pytest"},
      {"tests/test_x.py", "def test_x(): pass\n", "pytest"},
      {"package.json", "{\"scripts\":{\"test\":\"node --test\"}}", "npm"},
      {"Makefile", "check:\n\ttrue\n", "make"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *d = qct_tempdir("rt-detect");
    tt_write(d, cases[i].file, cases[i].content);
    tool_ws *ws = tt_open(d);
    const char *runner = NULL;
    char *cmd = tool_tests_detect(ws, &runner);
    ASSERT_MSG(cmd && runner && strcmp(runner, cases[i].runner) == 0, "%s: detected %s", cases[i].file,
               runner ? runner : "nothing");
    free(cmd);
    tool_ws_close(ws);
    free(d);
  }
  /* npm's placeholder script is not a test suite */
  char *d = qct_tempdir("rt-detect");
  tt_write(d, "package.json", "{\"scripts\":{\"test\":\"echo \\\"Error: no test specified\\\" && exit 1\"}}");
  tool_ws *ws = tt_open(d);
  const char *runner = NULL;
  ASSERT(tool_tests_detect(ws, &runner) == NULL);
  tool_ws_close(ws);
  free(d);
}

TEST(run_tests_node_end_to_end) {
  if (!have("node") || !have("npm")) SKIP("node/npm are not installed");
  char *d = qct_tempdir("rt-node");
  tt_write(d, "package.json", "{\"name\":\"x\",\"version\":\"1.0.0\",\"scripts\":{\"test\":\"node --test\"}}");
  tt_write(d, "test/a.test.js",
           "const test = require('node:test');\nconst assert = require('node:assert');\n"
           "test('good', () => {});\ntest('bad', () => { assert.strictEqual(1, 2); });\n");
  tool_ws *ws = tt_open(d);
  char *text = NULL;
  json_t *res = run_tests(ws, "{}", TOOL_EFAILED, &text);
  json_t *tests = json_object_get(res, "tests");
  ASSERT_STR_EQ(status(tests, "good"), "passed");
  ASSERT_STR_EQ(status(tests, "bad"), "failed");
  ASSERT_CONTAINS(text, "FAILED bad");
  free(text);
  json_decref(res);
  tool_ws_close(ws);
  free(d);
}

TEST(run_tests_cargo_end_to_end) {
  if (!have("cargo")) SKIP("cargo is not installed");
  char *d = qct_tempdir("rt-cargo");
  tt_write(d, "Cargo.toml", "[package]\nname = \"calc\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n");
  tt_write(d, "src/lib.rs",
           "pub fn add(a: i32, b: i32) -> i32 { a + b }\n"
           "#[cfg(test)]\nmod tests {\n    use super::*;\n"
           "    #[test]\n    fn adds() { assert_eq!(add(2, 2), 4); }\n"
           "    #[test]\n    fn adds_wrong() { assert_eq!(add(2, 2), 5, \"two plus two\"); }\n}\n");
  tool_ws *ws = tt_open(d);
  char *text = NULL;
  json_t *res = run_tests(ws, "{\"timeout_s\":300}", TOOL_EFAILED, &text);
  json_t *tests = json_object_get(res, "tests");
  if (json_array_size(tests) == 0) SKIP("cargo could not build offline here: %.300s", text);
  ASSERT_STR_EQ(status(tests, "tests::adds"), "passed");
  ASSERT_STR_EQ(status(tests, "tests::adds_wrong"), "failed");
  ASSERT_CONTAINS(output(tests, "tests::adds_wrong"), "two plus two");
  free(text);
  json_decref(res);
  tool_ws_close(ws);
  free(d);
}

TEST(run_tests_pytest_and_go_end_to_end_need_their_tools) {
  if (!have("go")) fprintf(stderr, "  (go is not installed: go test end-to-end not run; the parser is tested on a sample)\n");
  if (qct_run("python3 -c 'import pytest' >/dev/null 2>&1", NULL) != 0) {
    SKIP("pytest is not installed: its end-to-end run is not possible here (the parser is tested on samples)");
  }
  char *d = qct_tempdir("rt-pytest");
  tt_write(d, "pytest.ini", "[pytest]\n");
  tt_write(d, "tests/test_a.py", "def test_ok():\n    pass\n\ndef test_bad():\n    assert 1 == 2\n");
  tool_ws *ws = tt_open(d);
  json_t *res = run_tests(ws, "{}", TOOL_EFAILED, NULL);
  json_t *tests = json_object_get(res, "tests");
  ASSERT_STR_EQ(status(tests, "tests/test_a.py::test_ok"), "passed");
  ASSERT_STR_EQ(status(tests, "tests/test_a.py::test_bad"), "failed");
  json_decref(res);
  tool_ws_close(ws);
  free(d);
}

QC_TEST_MAIN
