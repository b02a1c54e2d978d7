/* test_unit.c — the rules of fix-tests and the model cache as plain functions: error
 * signatures and grouping, the keep/revert decision, SWE-bench grading, JUnit/Markdown
 * escaping, suite runs without per-test results, split names, the GGUF header reader on
 * real, truncated and garbage files, and the progress line.
 */
#include "tests/workflows/wf_test.h"

#include "daemon/fixtests.h"
#include "daemon/workflow.h"

static json_t *results(const char *tests_json, int exit_code) {
  json_t *t = json_loads(tests_json, 0, NULL);
  return json_pack("{s:{s:i, s:i, s:b, s:s, s:s}, s:o}", "summary", "exit_code", exit_code, "signal", 0, "timed_out", 0,
                   "format", "tap", "output", "raw output", "tests", t ? t : json_array());
}

TEST(signature_normalises_numbers_addresses_and_markers) {
  char *a = ft_signature("# tests/a.c:12: expected 3, got 4\n# more\n# third line ignored");
  char *b = ft_signature("\n\n#   tests/a.c:99: expected 10,   got 200\n#   more\n");
  ASSERT_STR_EQ(a, "tests/a.c:N: expected N, got N | more");
  ASSERT_STR_EQ(a, b);
  char *c = ft_signature("Segfault at 0x7ffd1234abcd in frame 3");
  ASSERT_STR_EQ(c, "Segfault at 0xH in frame N");
  char *d = ft_signature(NULL);
  ASSERT_STR_EQ(d, "");
  char long_line[1000];
  memset(long_line, 'x', sizeof long_line - 1);
  long_line[sizeof long_line - 1] = '\0';
  char *e = ft_signature(long_line);
  ASSERT(strlen(e) <= FT_SIGNATURE_MAX);
  free(a), free(b), free(c), free(d), free(e);
}

TEST(test_file_from_field_node_id_output_or_suite) {
  ft_result t = {.name = "tests/test_x.py::test_y", .output = NULL};
  char *f = ft_test_file(&t);
  ASSERT_STR_EQ(f, "tests/test_x.py");
  free(f);
  ft_result u = {.name = "reverse", .output = "# ./src/test_str.c:41: assertion failed"};
  f = ft_test_file(&u);
  ASSERT_STR_EQ(f, "src/test_str.c");
  free(f);
  ft_result v = {.name = "TestFoo", .suite = "example.com/pkg", .output = "time 12:30 no file here"};
  f = ft_test_file(&v);
  ASSERT_STR_EQ(f, "example.com/pkg");
  free(f);
  ft_result w = {.name = "x", .file = "spec/a_spec.rb", .output = "other.c:1: x"};
  f = ft_test_file(&w);
  ASSERT_STR_EQ(f, "spec/a_spec.rb");
  free(f);
}

TEST(groups_by_file_and_signature_in_order) {
  json_t *res = results(
      "[{\"name\":\"a1\",\"status\":\"failed\",\"output\":\"# t/a.c:1: expected 1, got 2\"},"
      " {\"name\":\"ok\",\"status\":\"passed\"},"
      " {\"name\":\"b1\",\"status\":\"failed\",\"output\":\"# t/b.c:5: expected 1, got 2\"},"
      " {\"name\":\"a2\",\"status\":\"error\",\"output\":\"# t/a.c:7: expected 5, got 9\"},"
      " {\"name\":\"a3\",\"status\":\"failed\",\"output\":\"# t/a.c:9: crashed\"},"
      " {\"name\":\"s\",\"status\":\"skipped\"}]",
      1);
  ft_run run;
  ASSERT_EQ_INT(ft_run_from_json(res, 1.0, &run), 0);
  ASSERT(run.per_test);
  ft_group_key *g;
  size_t n;
  ASSERT_EQ_INT(ft_group_failures(&run, NULL, NULL, &g, &n), 0);
  ASSERT_EQ_INT(n, 3);
  ASSERT_STR_EQ(g[0].file, "t/a.c");
  ASSERT_EQ_INT(g[0].n, 2); /* a1 and a2: same file, same signature */
  ASSERT_STR_EQ(run.r[g[0].tests[1]].name, "a2");
  ASSERT_STR_EQ(g[1].file, "t/b.c");
  ASSERT_STR_EQ(g[2].signature, "t/a.c:N: crashed");
  ft_group_keys_free(g, n);
  ASSERT_EQ_INT(ft_run_status(&run, "s"), FT_SKIPPED);
  ASSERT_EQ_INT(ft_run_status(&run, "nope"), FT_MISSING);
  ASSERT_EQ_INT(ft_run_status(&run, FT_SUITE_TEST), FT_PASSED); /* a run with per-test results */
  ft_run_release(&run);
  json_decref(res);
}

TEST(duplicate_names_get_stable_keys) {
  json_t *res = results("[{\"name\":\"t\",\"status\":\"passed\"},{\"name\":\"t\",\"status\":\"failed\"},"
                        "{\"name\":\"t\",\"suite\":\"S\",\"status\":\"passed\"}]",
                        1);
  ft_run run;
  ASSERT_EQ_INT(ft_run_from_json(res, 0, &run), 0);
  ASSERT_STR_EQ(run.r[0].key, "t");
  ASSERT_STR_EQ(run.r[1].key, "t #2");
  ASSERT_STR_EQ(run.r[2].key, "S::t");
  ASSERT_EQ_INT(ft_run_status(&run, "t #2"), FT_FAILED);
  ft_run_release(&run);
  json_decref(res);
}

TEST(a_run_without_per_test_results_is_one_test) {
  json_t *res = results("[]", 2);
  ft_run run;
  ASSERT_EQ_INT(ft_run_from_json(res, 0, &run), 0);
  ASSERT(!run.per_test);
  ASSERT_EQ_INT(run.n, 1);
  ASSERT_STR_EQ(run.r[0].name, FT_SUITE_TEST);
  ASSERT_EQ_INT(run.r[0].status, FT_FAILED);
  ASSERT_CONTAINS(run.r[0].output, "exited with status 2");
  ft_run_release(&run);
  json_decref(res);
  res = results("[]", 0);
  ASSERT_EQ_INT(ft_run_from_json(res, 0, &run), 0);
  ASSERT_EQ_INT(run.r[0].status, FT_PASSED);
  ft_run_release(&run);
  json_decref(res);
}

typedef struct { const char *k; ft_status s; } kv;
static kv g_before[8];
static ft_status before(void *user, const char *key) {
  (void)user;
  for (int i = 0; i < 8 && g_before[i].k; i++)
    if (!strcmp(g_before[i].k, key)) return g_before[i].s;
  return FT_MISSING;
}

TEST(keep_only_when_something_is_fixed_and_nothing_breaks) {
  kv b[] = {{"f1", FT_FAILED}, {"f2", FT_ERROR}, {"p1", FT_PASSED}, {"p2", FT_PASSED}, {"s", FT_SKIPPED}, {NULL, 0}};
  memcpy(g_before, b, sizeof b);
  const char *keys[] = {"f1", "f2", "p1", "p2", "s"};
  json_t *fixed, *broke;
  /* f1 fixed, p2 skipped now (still counts as holding) */
  json_t *r1 = results("[{\"name\":\"f1\",\"status\":\"passed\"},{\"name\":\"f2\",\"status\":\"failed\"},"
                       "{\"name\":\"p1\",\"status\":\"passed\"},{\"name\":\"p2\",\"status\":\"skipped\"}]",
                       1);
  ft_run run;
  ft_run_from_json(r1, 0, &run);
  ASSERT_EQ_INT(ft_decide(keys, 5, before, NULL, &run, &fixed, &broke), 1);
  ASSERT_EQ_INT(json_array_size(fixed), 1);
  ASSERT_EQ_INT(json_array_size(broke), 0);
  json_decref(fixed), json_decref(broke);
  ft_run_release(&run);
  json_decref(r1);
  /* both fixed, but p1 missing from the run (the build broke part of the suite) */
  json_t *r2 = results("[{\"name\":\"f1\",\"status\":\"passed\"},{\"name\":\"f2\",\"status\":\"passed\"},"
                       "{\"name\":\"p2\",\"status\":\"passed\"}]",
                       0);
  ft_run_from_json(r2, 0, &run);
  ASSERT_EQ_INT(ft_decide(keys, 5, before, NULL, &run, &fixed, &broke), 0);
  ASSERT_EQ_INT(json_array_size(fixed), 2);
  ASSERT_STR_EQ(json_string_value(json_array_get(broke, 0)), "p1");
  json_decref(fixed), json_decref(broke);
  ft_run_release(&run);
  json_decref(r2);
  /* nothing fixed: revert even though nothing broke */
  json_t *r3 = results("[{\"name\":\"f1\",\"status\":\"skipped\"},{\"name\":\"p1\",\"status\":\"passed\"},"
                       "{\"name\":\"p2\",\"status\":\"passed\"}]",
                       1);
  ft_run_from_json(r3, 0, &run);
  ASSERT_EQ_INT(ft_decide(keys, 5, before, NULL, &run, &fixed, &broke), 0);
  ASSERT_EQ_INT(json_array_size(fixed), 0); /* a skipped FAIL_TO_PASS test is not a fix */
  json_decref(fixed), json_decref(broke);
  ft_run_release(&run);
  json_decref(r3);
}

TEST(resolution_as_swe_bench_grades) {
  ASSERT_STR_EQ(ft_resolution(3, 3, 10, 10), "FULL");
  ASSERT_STR_EQ(ft_resolution(3, 2, 10, 10), "PARTIAL");
  ASSERT_STR_EQ(ft_resolution(3, 0, 10, 10), "NO");
  ASSERT_STR_EQ(ft_resolution(3, 3, 10, 9), "NO");
  ASSERT_STR_EQ(ft_resolution(3, 2, 10, 9), "NO");
  ASSERT_STR_EQ(ft_resolution(0, 0, 5, 5), "FULL");
}

TEST(junit_xml_escapes_and_drops_control_characters) {
  json_t *res = results("[{\"name\":\"a<b>&\\\"c\\\"\",\"suite\":\"S\",\"status\":\"failed\","
                        "\"output\":\"bad \\u0001\\u001b[31m <x> & \\u00e9\"},"
                        "{\"name\":\"ok\",\"file\":\"t.py\",\"status\":\"passed\",\"duration_s\":0.25},"
                        "{\"name\":\"sk\",\"status\":\"skipped\"}]",
                        1);
  ft_run run;
  ft_run_from_json(res, 2.0, &run);
  char *x = ft_junit_xml(&run, "n&me");
  ASSERT_CONTAINS(x, "<testsuites name=\"n&amp;me\" tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\"");
  ASSERT_CONTAINS(x, "<testcase name=\"a&lt;b&gt;&amp;&quot;c&quot;\" classname=\"S\"");
  ASSERT_CONTAINS(x, "bad [31m &lt;x&gt; &amp; \xc3\xa9</failure>");
  ASSERT_CONTAINS(x, "<testcase name=\"ok\" classname=\"t.py\" file=\"t.py\" time=\"0.250\"/>");
  ASSERT_CONTAINS(x, "<skipped/>");
  for (const char *p = x; *p; p++) ASSERT((unsigned char)*p >= 0x20 || *p == '\n' || *p == '\t' || *p == '\r');
  free(x);
  ft_run_release(&run);
  json_decref(res);
}

TEST(markdown_report_cannot_be_broken_by_names) {
  json_t *r = json_pack(
      "{s:s, s:s, s:s, s:s, s:f, s:{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f},"
      " s:[{s:s, s:s, s:s, s:i, s:s, s:s}], s:[]}",
      "status", "complete", "resolution", "NO", "command", "make `test` | x", "model", "m", "elapsed_s", 1.0, "totals",
      "tests", 1, "failing_before", 1, "failing_after", 1, "fixed", 0, "broken", 0, "groups", 0, "attempts", 0, "kept", 0,
      "reverted", 0, "no_change", 0, "prompt_tokens", 0, "generated_tokens", 0, "agent_time_s", 0.0, "test_time_s", 0.0,
      "tests", "name", "a | b `c`", "before", "failed", "after", "failed", "attempts", 0, "result", "still failing",
      "why", "line1\nline2 | pipe", "groups");
  char *md = ft_report_markdown(r);
  ASSERT_CONTAINS(md, "``make `test` \\| x``");
  ASSERT_CONTAINS(md, "| `` a \\| b `c` `` | failed | failed | 0 | still failing: line1 line2 \\| pipe |");
  free(md);
  json_decref(r);
}

TEST(split_names) {
  size_t stem;
  int part, count;
  ASSERT(wf_split_parse("Qwen3-Coder-480B-A35B-Instruct-Q4_K_M-00002-of-00006.gguf", &stem, &part, &count));
  ASSERT_EQ_INT(stem, strlen("Qwen3-Coder-480B-A35B-Instruct-Q4_K_M"));
  ASSERT_EQ_INT(part, 2);
  ASSERT_EQ_INT(count, 6);
  ASSERT(!wf_split_parse("model.gguf", &stem, &part, &count));
  ASSERT(!wf_split_parse("m-00007-of-00006.gguf", &stem, &part, &count));
  ASSERT(!wf_split_parse("-00001-of-00002.gguf", &stem, &part, &count));
  ASSERT(!wf_split_parse("m-00001-of-.gguf", &stem, &part, &count));
  ASSERT(!wf_split_parse("m-1x-of-2.gguf", &stem, &part, &count));
  ASSERT_STR_EQ(wf_ftype_name(15), "Q4_K_M");
  ASSERT_STR_EQ(wf_ftype_name(7), "Q8_0");
  ASSERT_STR_EQ(wf_ftype_name(32), "BF16");
  ASSERT(wf_ftype_name(4) == NULL);
  ASSERT(wf_ftype_name(UINT32_MAX) == NULL);
  const wf_alias *a = wf_alias_find("QWEN3-CODER-480B");
  ASSERT(a && a->parts == 6);
  ASSERT(wf_split_parse(strrchr(a->file, '/') + 1, &stem, &part, &count) && count == 6 && part == 1);
  for (size_t i = 0; wf_alias_at(i); i++) {
    const wf_alias *x = wf_alias_at(i);
    int sp = wf_split_parse(strrchr(x->file, '/') ? strrchr(x->file, '/') + 1 : x->file, &stem, &part, &count);
    ASSERT_MSG(x->parts == (sp ? count : 1), "alias %s: parts %d", x->name, x->parts);
  }
}

TEST(gguf_header_of_real_truncated_and_garbage_files) {
  char *m = qct_data_path("oracle/models/small-qwen3moe-q4_k_m.gguf");
  wf_gguf_head h;
  char why[256];
  ASSERT_EQ_INT(wf_gguf_peek(m, &h, why, sizeof why), 0);
  ASSERT_STR_EQ(h.arch, "qwen3moe");
  ASSERT_STR_EQ(wf_ftype_name(h.file_type), "Q4_K_M");
  ASSERT_EQ_INT(h.n_tensors, 27);
  ASSERT(h.data_needed < h.file_size);
  size_t len = 0;
  char *data = qct_read_file(m, &len);
  char *dir = qct_tempdir("wf-gguf");
  char *p = qc_asprintf("%s/x.gguf", dir);
  /* every truncation inside the header, and random bytes, fail cleanly */
  for (size_t cut = 0; cut < h.data_offset + 64; cut += cut < 64 ? 1 : 97) {
    FILE *f = fopen(p, "wb");
    fwrite(data, 1, cut, f);
    fclose(f);
    ASSERT_MSG(wf_gguf_peek(p, &h, why, sizeof why) != 0, "a file cut at %zu was accepted", cut);
  }
  /* random damage to the header (the data region is left as a sparse hole of the same size) */
  uint32_t seed = 7;
  size_t head = len < 8192 ? len : 8192;
  char *copy = malloc(head);
  for (int round = 0; round < 300; round++) {
    memcpy(copy, data, head);
    for (int k = 0; k < 8; k++) {
      seed = seed * 1103515245u + 12345u;
      size_t at = (seed >> 8) % 4096;
      copy[at] = (char)(seed >> 3);
    }
    FILE *f = fopen(p, "wb");
    fwrite(copy, 1, head, f);
    ASSERT(ftruncate(fileno(f), (off_t)len) == 0);
    fclose(f);
    wf_gguf_peek(p, &h, why, sizeof why); /* any answer, never a crash or a hang */
  }
  free(copy);
  qct_write_file(p, "<html>not a model</html>");
  ASSERT(wf_gguf_peek(p, &h, why, sizeof why) != 0);
  ASSERT_CONTAINS(why, "not a GGUF file");
  free(p), free(dir), free(data), free(m);
}

TEST(progress_line_fits_and_says_eta) {
  char line[256];
  wf_fmt_progress(line, sizeof line, 80, 512ull << 20, 2048ull << 20, 64.0 * (1 << 20));
  ASSERT_CONTAINS(line, " 25%  512 MiB / 2.00 GiB  64.0 MiB/s  ETA 24.0s");
  ASSERT(line[0] == '[');
  ASSERT(strlen(line) <= 80);
  wf_fmt_progress(line, sizeof line, 80, 1000, 0, 0);
  ASSERT_STR_EQ(line, "1000 B  0 B/s");
  char d[32];
  wf_fmt_duration(3725, d, sizeof d);
  ASSERT_STR_EQ(d, "1h02m");
  wf_fmt_duration(187, d, sizeof d);
  ASSERT_STR_EQ(d, "3m07s");
}

QC_TEST_MAIN
