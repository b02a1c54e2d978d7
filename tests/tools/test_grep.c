/* test_grep.c — grep: PCRE2 matches, context, globs, ignore rules, binaries, caps. */
#include "tests/tools/tt.h"

static char *fixture(void) {
  char *d = qct_tempdir("grep");
  tt_sh("git -C '%s' init -q", d);
  tt_write(d, ".gitignore", "vendor/\n");
  tt_write(d, "src/a.c", "int alpha(void);\nint beta(void);\n// TODO: gamma\nint delta(void);\n");
  tt_write(d, "src/b.h", "#define ALPHA 1\n");
  tt_write(d, "docs/notes.md", "alpha and Alpha\n");
  tt_write(d, "vendor/lib.c", "int alpha_vendor;\n");
  char *p = tt_path(d, "blob.bin");
  FILE *f = fopen(p, "wb");
  fwrite("alpha\0\1\2", 1, 8, f);
  fclose(f);
  free(p);
  return d;
}

TEST(grep_finds_matches_in_ripgrep_format) {
  char *d = fixture();
  tool_ws *ws = tt_open(d);
  tool_result r;
  ASSERT_EQ_INT(tt_call(ws, "grep", "{\"pattern\":\"alpha\"}", &r), TOOL_OK);
  ASSERT_STR_EQ(r.output,
                "docs/notes.md:1:alpha and Alpha\n"
                "src/a.c:1:int alpha(void);\n"
                "2 matching lines in 2 files. (skipped 1 binary file)\n");
  ASSERT_EQ_INT(json_array_size(json_object_get(r.data, "locations")), 2);
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "grep", "{\"pattern\":\"alpha\",\"ignore_case\":true,\"glob\":\"*.{c,h}\"}", &r), TOOL_OK);
  ASSERT_STR_EQ(r.output, "src/a.c:1:int alpha(void);\nsrc/b.h:1:#define ALPHA 1\n2 matching lines in 2 files.\n");
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "grep", "{\"pattern\":\"TODO\",\"context\":1}", &r), TOOL_OK);
  ASSERT_STR_EQ(r.output,
                "src/a.c-2-int beta(void);\nsrc/a.c:3:// TODO: gamma\nsrc/a.c-4-int delta(void);\n--\n"
                "1 matching line in 1 file. (skipped 1 binary file)\n");
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "grep", "{\"pattern\":\"^int \\\\w+\\\\(\",\"path\":\"src/a.c\"}", &r), TOOL_OK);
  ASSERT_CONTAINS(r.output, "3 matching lines in 1 file.");
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "grep", "{\"pattern\":\"alpha_vendor\",\"path\":\"vendor\"}", &r), TOOL_OK);
  ASSERT_STR_EQ(r.output, "vendor/lib.c:1:int alpha_vendor;\n1 matching line in 1 file.\n");
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "grep", "{\"pattern\":\"nomatchanywhere\"}", &r), TOOL_OK);
  ASSERT_CONTAINS(r.output, "No matches for /nomatchanywhere/ in .");
  tool_result_release(&r);
  tool_ws_close(ws);
  free(d);
}

TEST(grep_invalid_pattern_says_where) {
  char *d = fixture();
  tool_ws *ws = tt_open(d);
  tool_result r;
  ASSERT_EQ_INT(tt_call(ws, "grep", "{\"pattern\":\"foo(bar\"}", &r), TOOL_EARGS);
  ASSERT_CONTAINS(r.error, "invalid regular expression: missing closing parenthesis at offset 7");
  ASSERT_CONTAINS(r.error, "  foo(bar\n         ^\n");
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "grep", "{\"pattern\":\"a[b\"}", &r), TOOL_EARGS);
  ASSERT_CONTAINS(r.error, "offset 3");
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "grep", "{\"pattern\":\"x\",\"path\":\"../\"}", &r), TOOL_EESCAPE);
  tool_result_release(&r);
  tool_ws_close(ws);
  free(d);
}

TEST(grep_caps_per_file_and_total) {
  char *d = qct_tempdir("grepcap");
  qc_buf b;
  qc_buf_init(&b, 0);
  for (int i = 0; i < 120; i++) qc_buf_printf(&b, "hit %d\n", i);
  for (int f = 0; f < 12; f++) {
    char name[32];
    snprintf(name, sizeof name, "f%02d.txt", f);
    tt_write(d, name, b.data);
  }
  qc_buf_reset(&b);
  for (int k = 0; k < 2000; k++) qc_buf_putc(&b, 'z');
  qc_buf_puts(&b, " hit\n");
  tt_write(d, "wide.txt", b.data);
  qc_buf_release(&b);
  tool_ws *ws = tt_open(d);
  tool_result r;
  ASSERT_EQ_INT(tt_call(ws, "grep", "{\"pattern\":\"hit\",\"path\":\"f00.txt\"}", &r), TOOL_OK);
  ASSERT_CONTAINS(r.output, "f00.txt:50:hit 49\n");
  ASSERT(!strstr(r.output, "hit 50\n"));
  ASSERT_CONTAINS(r.output, "more matches in this file not shown");
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "grep", "{\"pattern\":\"hit\"}", &r), TOOL_OK);
  ASSERT_CONTAINS(r.output, "stopped at the limit of 500 matches");
  ASSERT(json_is_true(json_object_get(r.data, "truncated")));
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "grep", "{\"pattern\":\"hit$\",\"path\":\"wide.txt\"}", &r), TOOL_OK);
  ASSERT_CONTAINS(r.output, "more bytes]");
  ASSERT(strlen(r.output) < 1000);
  tool_result_release(&r);
  tool_ws_close(ws);
  free(d);
}

TEST(grep_catastrophic_pattern_is_bounded) {
  char *d = qct_tempdir("grepre");
  qc_buf b;
  qc_buf_init(&b, 0);
  for (int k = 0; k < 30; k++) qc_buf_putc(&b, 'a');
  qc_buf_puts(&b, "!\n");
  tt_write(d, "a.txt", b.data);
  qc_buf_release(&b);
  tool_ws *ws = tt_open(d);
  tool_result r;
  uint64_t t0 = qc_now_ms();
  ASSERT_EQ_INT(tt_call(ws, "grep", "{\"pattern\":\"(a+)+$\"}", &r), TOOL_OK);
  ASSERT_MSG(qc_now_ms() - t0 < 5000, "took %llu ms", (unsigned long long)(qc_now_ms() - t0));
  tool_result_release(&r);
  tool_ws_close(ws);
  free(d);
}

TEST(grep_searches_invalid_utf8_files) {
  char *d = qct_tempdir("grepu");
  tt_write(d, "latin1.txt", "caf\xe9 needle here\n");
  tool_ws *ws = tt_open(d);
  tool_result r;
  ASSERT_EQ_INT(tt_call(ws, "grep", "{\"pattern\":\"needle\"}", &r), TOOL_OK);
  ASSERT_CONTAINS(r.output, "latin1.txt:1:caf\xEF\xBF\xBD needle here\n");
  tool_result_release(&r);
  tool_ws_close(ws);
  free(d);
}

QC_TEST_MAIN
