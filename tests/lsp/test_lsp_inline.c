/* Unit tests for lsp/ inline completion: the FIM request (windows on line boundaries,
 * context files within budget, the prompt the model sees) and the cut at the end of the
 * block. */
#include "lsp/lsp.h"
#include "tests/test.h"

static char *trim(const char *prefix, const char *completion, const char *suffix) {
  return lsp_inline_trim(prefix, strlen(prefix), completion, strlen(completion), suffix, strlen(suffix), 0);
}

#define ASSERT_TRIM(prefix, completion, suffix, want)      \
  do {                                                     \
    char *got_ = trim(prefix, completion, suffix);         \
    ASSERT_STR_EQ(got_, want);                             \
    free(got_);                                            \
  } while (0)

TEST(fim_windows_start_and_end_on_lines) {
  const char *t = "line one\nline two\nline three|rest\nline four\nline five\n";
  size_t off = (size_t)(strchr(t, '|') - t);
  lsp_fim_input in = {.text = t, .len = strlen(t), .offset = off, .path = "src/a.c", .prefix_bytes = 15,
                      .suffix_bytes = 12};
  lsp_fim_request r;
  ASSERT_EQ_INT(lsp_fim_build(&in, &r), LSP_OK);
  /* 15 bytes back lands inside "line two": the window starts at the next line */
  ASSERT_STR_EQ(r.prefix, "line three");
  /* 12 bytes forward ends inside "line four": back to the end of "rest\n" */
  ASSERT_STR_EQ(r.suffix, "|rest\n");
  ASSERT(r.repo_name == NULL);
  ASSERT_EQ_INT(r.n_files, 0);
  char *p = lsp_fim_prompt(&r);
  ASSERT_STR_EQ(p, "<|fim_prefix|>line three<|fim_suffix|>|rest\n<|fim_middle|>");
  free(p);
  lsp_fim_request_release(&r);
  /* defaults: the whole small document */
  in.prefix_bytes = in.suffix_bytes = 0;
  ASSERT_EQ_INT(lsp_fim_build(&in, &r), LSP_OK);
  ASSERT_STR_EQ(r.prefix, "line one\nline two\nline three");
  ASSERT_STR_EQ(r.suffix, "|rest\nline four\nline five\n");
  lsp_fim_request_release(&r);
}

TEST(fim_window_never_splits_a_character) {
  /* one long line of emoji: no line start in the window, so a character boundary */
  qc_buf b;
  qc_buf_init(&b, 0);
  for (int i = 0; i < 100; i++) qc_buf_puts(&b, "\xf0\x9f\x98\x80");
  lsp_fim_input in = {.text = b.data, .len = b.len, .offset = 200, .path = "e.txt", .prefix_bytes = 10,
                      .suffix_bytes = 10};
  lsp_fim_request r;
  ASSERT_EQ_INT(lsp_fim_build(&in, &r), LSP_OK);
  ASSERT(qc_utf8_valid(r.prefix, strlen(r.prefix)));
  ASSERT(qc_utf8_valid(r.suffix, strlen(r.suffix)));
  ASSERT_EQ_INT(strlen(r.prefix) % 4, 0);
  lsp_fim_request_release(&r);
  /* a cursor inside a character is moved to its start */
  in.offset = 202;
  ASSERT_EQ_INT(lsp_fim_build(&in, &r), LSP_OK);
  ASSERT_EQ_INT(strlen(r.prefix) % 4, 0);
  lsp_fim_request_release(&r);
  qc_buf_release(&b);
}

TEST(fim_context_files_within_budget) {
  qc_buf big;
  qc_buf_init(&big, 0);
  for (int i = 0; i < 400; i++) qc_buf_printf(&big, "int big_%d;\n", i);
  lsp_fim_file files[] = {
      {"src/a.c", "self\n", 5},                         /* the document itself: skipped */
      {"src/util.h", "int util(int);\n", 15},
      {"src/empty.c", "", 0},                           /* empty: skipped */
      {"src/util.h", "int util(int);\n", 15},           /* a repeat: skipped */
      {"src/big.c", big.data, big.len},                 /* cut to its head, whole lines */
      {"src/more.c", "int more;\n", 10},
      {"src/bin", "\xff\xfe\x00", 3},                    /* not UTF-8: skipped */
  };
  const char *t = "int main() {\n  \n}\n";
  lsp_fim_input in = {.text = t, .len = strlen(t), .offset = 15, .path = "src/a.c", .repo_name = "proj",
                      .files = files, .n_files = 7};
  lsp_fim_request r;
  ASSERT_EQ_INT(lsp_fim_build(&in, &r), LSP_OK);
  ASSERT_EQ_INT(r.n_files, 3);
  ASSERT_STR_EQ(r.files[0].path, "src/util.h");
  ASSERT_STR_EQ(r.files[1].path, "src/big.c");
  ASSERT(strlen(r.files[1].content) <= LSP_FIM_CONTEXT_FILE_BYTES);
  ASSERT(r.files[1].content[strlen(r.files[1].content) - 1] == '\n');
  ASSERT_STR_EQ(r.files[2].path, "src/more.c");
  char *p = lsp_fim_prompt(&r);
  ASSERT_CONTAINS(p, "<|repo_name|>proj\n<|file_sep|>src/util.h\nint util(int);\n<|file_sep|>src/big.c\nint big_0;\n");
  ASSERT_CONTAINS(p, "<|file_sep|>src/more.c\nint more;\n<|file_sep|>src/a.c\n<|fim_prefix|>int main() {\n  "
                     "<|fim_suffix|>\n}\n<|fim_middle|>");
  free(p);
  json_t *j = lsp_fim_request_json(&r, 0);
  ASSERT_STR_EQ(json_string_value(json_object_get(j, "repoName")), "proj");
  ASSERT_EQ_INT(json_array_size(json_object_get(j, "files")), 3);
  ASSERT_EQ_INT(json_integer_value(json_object_get(j, "maxTokens")), LSP_INLINE_MAX_TOKENS);
  ASSERT_STR_EQ(json_string_value(json_object_get(j, "prefix")), "int main() {\n  ");
  json_decref(j);
  lsp_fim_request_release(&r);
  /* a small context budget takes fewer files */
  in.context_bytes = 200;
  ASSERT_EQ_INT(lsp_fim_build(&in, &r), LSP_OK);
  ASSERT_EQ_INT(r.n_files, 1);
  lsp_fim_request_release(&r);
  qc_buf_release(&big);
}

TEST(trim_stops_at_dedent) {
  /* cursor on an empty line inside a body: the next function is not completed */
  ASSERT_TRIM("int f(void) {\n  int x = 1;\n  ", "x++;\n  return x;\n}\n\nint g(void) {\n  return 2;\n}\n", "\n",
              "x++;\n  return x;");
}

TEST(trim_keeps_the_closing_line_of_an_opened_block) {
  ASSERT_TRIM("int f(void) {", "\n  return 1;\n}\n\nint g(void) {\n", "", "\n  return 1;\n}");
  /* "} else {" continues the block */
  ASSERT_TRIM("  if (x) {", "\n    a();\n  } else {\n    b();\n  }\n  c();\n", "\n", "\n    a();\n  } else {\n    b();\n  }");
}

TEST(trim_python_block_without_closer) {
  ASSERT_TRIM("def f(x):", "\n    y = x + 1\n    return y\n\ndef g():\n    pass\n", "\n",
              "\n    y = x + 1\n    return y");
  /* a blank line then a line back at the cursor's level ends it */
  ASSERT_TRIM("    ", "a = 1\n    b = 2\n\n    c = 3\n", "\n", "a = 1\n    b = 2");
}

TEST(trim_does_not_retype_the_suffix) {
  /* the model writes the "}" that already follows the cursor */
  ASSERT_TRIM("int f(void) {\n  ", "return 0;\n}", "\n}\n", "return 0;");
  ASSERT_TRIM("int f(void) {\n  ", "a();\n  b();\n  c();\n", "\n  c();\n}\n", "a();\n  b();");
}

TEST(trim_mid_line_completes_the_line_only) {
  ASSERT_TRIM("  foo(", "a, b);\n  bar();\n", ");\n", "a, b");
  ASSERT_TRIM("  x = ", "compute(1) + 2;\nmore\n", " // note\n", "compute(1) + 2;");
}

TEST(trim_max_lines_and_blanks) {
  qc_buf b;
  qc_buf_init(&b, 0);
  for (int i = 0; i < 100; i++) qc_buf_printf(&b, "\n    line%d();", i);
  char *got = lsp_inline_trim("void f() {", 10, b.data, b.len, "", 0, 5);
  ASSERT_STR_EQ(got, "\n    line0();\n    line1();\n    line2();\n    line3();");
  free(got);
  qc_buf_release(&b);
  ASSERT_TRIM("x = ", "   \n\n  ", "\n", "");
  ASSERT_TRIM("", "", "", "");
  /* a single-line answer keeps its trailing space (it may be meaningful) */
  ASSERT_TRIM("return ", "a + ", "\n", "a + ");
}

TEST(trim_crlf_and_tabs) {
  ASSERT_TRIM("int f(void) {\r\n\t", "x();\r\n\ty();\r\n}\r\n\r\nint g;\r\n", "\r\n}\r\n", "x();\r\n\ty();");
}

QC_TEST_MAIN
