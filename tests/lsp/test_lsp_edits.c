/* Unit tests for lsp/: edit minimisation (line diff + narrowing, round trips on random
 * texts), workspace edits and client capabilities, code actions, command arguments,
 * agent prompts and progress reports. */
#include "lsp/lsp.h"
#include "tests/test.h"

static json_t *J(const char *s) {
  json_error_t e;
  json_t *j = json_loads(s, 0, &e);
  if (!j) fprintf(stderr, "bad JSON in test: %s: %s\n", s, e.text);
  return j;
}

/* diff, then apply: must give the new text back; returns the number of edits */
static size_t round_trip(const char *a, const char *b, lsp_text_edit **keep) {
  lsp_text_edit *e = NULL;
  size_t n = 0;
  ASSERT_EQ_INT(lsp_diff_edits(a, strlen(a), b, strlen(b), &e, &n), LSP_OK);
  char *out = NULL;
  size_t olen = 0;
  ASSERT_EQ_INT(lsp_apply_edits(a, strlen(a), e, n, &out, &olen), LSP_OK);
  ASSERT_MSG(olen == strlen(b) && memcmp(out, b, olen) == 0, "round trip of\n%s\n->\n%s\ngave\n%s", a, b, out);
  free(out);
  if (keep) *keep = e;
  else lsp_text_edits_free(e, n);
  return n;
}

TEST(diff_one_character) {
  lsp_text_edit *e;
  const char *a = "int main(void) {\n  return 0\n}\n";
  const char *b = "int main(void) {\n  return 0;\n}\n";
  ASSERT_EQ_INT(round_trip(a, b, &e), 1);
  /* the missing ";" is inserted at 1:10, nothing else touched */
  ASSERT_EQ_INT(e[0].range.start.line, 1);
  ASSERT_EQ_INT(e[0].range.start.character, 10);
  ASSERT_EQ_INT(e[0].range.end.line, 1);
  ASSERT_EQ_INT(e[0].range.end.character, 10);
  ASSERT_STR_EQ(e[0].new_text, ";");
  lsp_text_edits_free(e, 1);
}

TEST(diff_equal_texts_give_no_edits) {
  ASSERT_EQ_INT(round_trip("same\n", "same\n", NULL), 0);
  ASSERT_EQ_INT(round_trip("", "", NULL), 0);
}

TEST(diff_separate_hunks) {
  lsp_text_edit *e;
  const char *a = "a\nb\nc\nd\ne\nf\ng\nh\n";
  const char *b = "a\nB\nc\nd\ne\nf\nG\nh\nnew\n";
  size_t n = round_trip(a, b, &e);
  ASSERT_EQ_INT(n, 3);
  ASSERT_EQ_INT(e[0].range.start.line, 1);
  ASSERT_STR_EQ(e[0].new_text, "B");
  ASSERT_EQ_INT(e[1].range.start.line, 6);
  ASSERT_STR_EQ(e[1].new_text, "G");
  ASSERT_EQ_INT(e[2].range.start.line, 8);
  ASSERT_STR_EQ(e[2].new_text, "new\n");
  lsp_text_edits_free(e, n);
}

TEST(diff_insert_and_delete_lines) {
  lsp_text_edit *e;
  size_t n = round_trip("one\ntwo\nthree\n", "one\nthree\n", &e);
  ASSERT_EQ_INT(n, 1);
  ASSERT_EQ_INT(e[0].range.start.line, 1);
  ASSERT_EQ_INT(e[0].range.end.line, 2);
  ASSERT_STR_EQ(e[0].new_text, "");
  lsp_text_edits_free(e, n);
  round_trip("", "brand new\nfile\n", NULL);
  round_trip("all\ngone\n", "", NULL);
  round_trip("no newline at end", "no newline at end\n", NULL);
  round_trip("x\n", "x", NULL);
}

TEST(diff_unicode_and_crlf_boundaries) {
  lsp_text_edit *e;
  /* é → è share their first UTF-8 byte: the edit must still replace whole characters */
  size_t n = round_trip("caf\xc3\xa9\n", "caf\xc3\xa8\n", &e);
  ASSERT_EQ_INT(n, 1);
  ASSERT_EQ_INT(e[0].range.start.character, 3);
  ASSERT_EQ_INT(e[0].range.end.character, 4);
  ASSERT_STR_EQ(e[0].new_text, "\xc3\xa8");
  lsp_text_edits_free(e, n);
  /* emoji: positions in UTF-16 */
  n = round_trip("\xf0\x9f\x98\x80 x = 1\n", "\xf0\x9f\x98\x80 x = 2\n", &e);
  ASSERT_EQ_INT(e[0].range.start.character, 7);
  lsp_text_edits_free(e, n);
  /* CRLF documents stay CRLF, edits never split a CRLF */
  round_trip("a\r\nb\r\nc\r\n", "a\r\nB\r\nc\r\n", NULL);
  round_trip("a\r\nb\r\n", "a\nb\r\n", NULL);
  round_trip("a\r\nb", "a\rb", NULL);
  round_trip("x\r", "x\r\n", NULL);
}

/* xorshift for reproducible random texts */
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static char *random_text(size_t lines) {
  static const char *const pieces[] = {"int x;", "  return 0;", "}", "\xc3\xa9t\xc3\xa9", "\xf0\x9f\x98\x80",
                                       "", "foo(bar);", "  ", "// comment"};
  static const char *const breaks[] = {"\n", "\r\n", "\n", "\r"};
  qc_buf b;
  qc_buf_init(&b, 0);
  for (size_t i = 0; i < lines; i++) {
    qc_buf_puts(&b, pieces[rnd() % 9]);
    if (rnd() % 4) qc_buf_puts(&b, pieces[rnd() % 9]);
    if (i + 1 < lines || rnd() % 2) qc_buf_puts(&b, breaks[rnd() % 4]);
  }
  return qc_buf_detach(&b, NULL);
}

TEST(diff_random_round_trips) {
  for (int iter = 0; iter < 400; iter++) {
    char *a = random_text(rnd() % 30);
    char *b;
    if (rnd() % 3) {
      b = random_text(rnd() % 30);
    } else { /* a small mutation of a */
      size_t n = strlen(a);
      qc_buf m;
      qc_buf_init(&m, 0);
      size_t cut = n ? rnd() % n : 0;
      qc_buf_append(&m, a, cut);
      qc_buf_puts(&m, "X\n");
      if (cut < n) qc_buf_append(&m, a + cut, n - cut);
      b = qc_buf_detach(&m, NULL);
      if (!qc_utf8_valid(b, strlen(b))) { /* cut inside a character: skip */
        free(a);
        free(b);
        continue;
      }
    }
    round_trip(a, b, NULL);
    free(a);
    free(b);
  }
}

TEST(diff_past_the_step_limit_is_one_edit) {
  qc_buf a, b;
  qc_buf_init(&a, 0);
  qc_buf_init(&b, 0);
  for (int i = 0; i < 3000; i++) {
    qc_buf_printf(&a, "a%d\n", i);
    qc_buf_printf(&b, "b%d\n", i);
  }
  lsp_text_edit *e;
  size_t n = round_trip(a.data, b.data, &e);
  ASSERT_EQ_INT(n, 1);
  lsp_text_edits_free(e, n);
  qc_buf_release(&a);
  qc_buf_release(&b);
}

TEST(apply_edits_refuses_overlaps) {
  lsp_text_edit e[2] = {{{{0, 2}, {0, 4}}, "x"}, {{{0, 1}, {0, 3}}, "y"}};
  char *out;
  size_t n;
  ASSERT_EQ_INT(lsp_apply_edits("abcdef", 6, e, 2, &out, &n), LSP_ERANGE);
}

TEST(client_caps_and_workspace_edits) {
  json_t *caps = J("{\"workspace\":{\"applyEdit\":true,\"workspaceEdit\":{\"documentChanges\":true}},"
                   "\"window\":{\"workDoneProgress\":true,\"showMessage\":{}},"
                   "\"textDocument\":{\"inlineCompletion\":{},\"codeAction\":{\"codeActionLiteralSupport\":{}}}}");
  lsp_client_caps c;
  lsp_client_caps_parse(caps, &c);
  json_decref(caps);
  ASSERT(c.apply_edit && c.document_changes && c.work_done_progress && c.show_message_request &&
         c.inline_completion && c.code_action_literals);
  lsp_text_edit e = {{{1, 2}, {1, 2}}, ";"};
  json_t *we = lsp_workspace_edit(&c, "file:///w/a.c", 7, &e, 1);
  json_t *dc = json_array_get(json_object_get(we, "documentChanges"), 0);
  ASSERT_EQ_INT(json_integer_value(json_object_get(json_object_get(dc, "textDocument"), "version")), 7);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(json_object_get(dc, "edits"), 0), "newText")), ";");
  json_decref(we);
  we = lsp_workspace_edit(&c, "file:///w/a.c", LSP_VERSION_UNKNOWN, &e, 1);
  dc = json_array_get(json_object_get(we, "documentChanges"), 0);
  ASSERT(json_is_null(json_object_get(json_object_get(dc, "textDocument"), "version")));
  json_decref(we);
  /* eglot-style client without documentChanges: the `changes` map */
  lsp_client_caps_parse(NULL, &c);
  ASSERT(!c.apply_edit && !c.work_done_progress);
  we = lsp_workspace_edit(&c, "file:///w/a.c", 7, &e, 1);
  ASSERT(json_is_array(json_object_get(json_object_get(we, "changes"), "file:///w/a.c")));
  json_decref(we);
}

TEST(code_actions_for_a_range) {
  json_t *params = J("{\"textDocument\":{\"uri\":\"file:///w/a.c\"},"
                     "\"range\":{\"start\":{\"line\":2,\"character\":0},\"end\":{\"line\":2,\"character\":9}},"
                     "\"context\":{\"diagnostics\":[{\"range\":{\"start\":{\"line\":2,\"character\":9},"
                     "\"end\":{\"line\":2,\"character\":9}},\"message\":\"expected ';'\",\"severity\":1}]}}");
  json_t *a = lsp_code_actions(params, 1);
  ASSERT_EQ_INT(json_array_size(a), 3);
  json_t *fix = json_array_get(a, 0);
  ASSERT_STR_EQ(json_string_value(json_object_get(fix, "title")), "qcoder: fix");
  ASSERT_STR_EQ(json_string_value(json_object_get(fix, "kind")), "quickfix");
  json_t *cmd = json_object_get(fix, "command");
  ASSERT_STR_EQ(json_string_value(json_object_get(cmd, "command")), "qcoder.fix");
  json_t *arg = json_array_get(json_object_get(cmd, "arguments"), 0);
  ASSERT_STR_EQ(json_string_value(json_object_get(arg, "uri")), "file:///w/a.c");
  ASSERT_EQ_INT(json_array_size(json_object_get(arg, "diagnostics")), 1);
  ASSERT_EQ_INT(json_array_size(json_object_get(fix, "diagnostics")), 1);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(a, 1), "kind")), "qcoder.explain");
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(a, 2), "title")), "qcoder: refactor\xe2\x80\xa6");
  json_decref(a);
  /* context.only filters by kind and sub-kind */
  json_object_set_new(json_object_get(params, "context"), "only", J("[\"refactor\"]"));
  a = lsp_code_actions(params, 1);
  ASSERT_EQ_INT(json_array_size(a), 1);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(a, 0), "kind")), "refactor.rewrite");
  json_decref(a);
  json_object_set_new(json_object_get(params, "context"), "only", J("[\"source.organizeImports\"]"));
  a = lsp_code_actions(params, 1);
  ASSERT_EQ_INT(json_array_size(a), 0);
  json_decref(a);
  /* a client without code action literals gets the commands */
  json_object_del(json_object_get(params, "context"), "only");
  a = lsp_code_actions(params, 0);
  ASSERT_EQ_INT(json_array_size(a), 3);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(a, 0), "command")), "qcoder.fix");
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(a, 2), "title")), "qcoder: refactor\xe2\x80\xa6");
  ASSERT(json_is_array(json_object_get(json_array_get(a, 1), "arguments")));
  json_decref(a);
  json_decref(params);
  /* malformed params */
  params = J("{\"textDocument\":{},\"range\":{}}");
  ASSERT(lsp_code_actions(params, 1) == NULL);
  json_decref(params);
}

TEST(command_arguments) {
  lsp_command_args a;
  char *err = NULL;
  json_t *args = J("[{\"uri\":\"file:///w/a.c\",\"range\":{\"start\":{\"line\":1,\"character\":0},"
                   "\"end\":{\"line\":1,\"character\":4}},\"diagnostics\":[],\"instruction\":\"  semicolon \"}]");
  ASSERT_EQ_INT(lsp_command_args_parse("qcoder.fix", args, &a, &err), LSP_OK);
  ASSERT_EQ_INT(a.cmd, LSP_CMD_FIX);
  ASSERT(a.has_range);
  ASSERT_STR_EQ(a.instruction, "semicolon");
  ASSERT(json_is_array(a.diagnostics));
  lsp_command_args_release(&a);
  json_decref(args);
  /* a refactor without instruction parses: the server asks for one */
  args = J("[{\"uri\":\"file:///w/a.c\",\"range\":{\"start\":{\"line\":1,\"character\":0},"
           "\"end\":{\"line\":1,\"character\":4}}}]");
  ASSERT_EQ_INT(lsp_command_args_parse("qcoder.refactor", args, &a, &err), LSP_OK);
  ASSERT(a.instruction == NULL);
  lsp_command_args_release(&a);
  json_decref(args);
  args = J("[{\"prompt\":\"what is this?\"}]");
  ASSERT_EQ_INT(lsp_command_args_parse("qcoder.ask", args, &a, &err), LSP_OK);
  ASSERT(a.uri == NULL);
  lsp_command_args_release(&a);
  ASSERT_EQ_INT(lsp_command_args_parse("qcoder.run", args, &a, &err), LSP_OK);
  ASSERT_STR_EQ(a.instruction, "what is this?");
  lsp_command_args_release(&a);
  json_decref(args);
  struct {
    const char *cmd, *args, *want;
  } bad[] = {
      {"qcoder.nope", "[{}]", "unknown command"},
      {"qcoder.fix", "[]", "one argument object"},
      {"qcoder.fix", "[{\"range\":{}}]", "needs uri"},
      {"qcoder.fix", "[{\"uri\":\"untitled:1\"}]", "file:// URI"},
      {"qcoder.explain", "[{\"uri\":\"file:///a\"}]", "needs range"},
      {"qcoder.explain", "[{\"uri\":\"file:///a\",\"range\":{\"start\":{\"line\":3,\"character\":0},"
                         "\"end\":{\"line\":1,\"character\":0}}}]", "start <= end"},
      {"qcoder.ask", "[{\"prompt\":\"   \"}]", "needs prompt"},
      {"qcoder.run", "[{\"prompt\":7}]", "must be a string"},
      {NULL, NULL, NULL},
  };
  for (int i = 0; bad[i].cmd; i++) {
    args = J(bad[i].args);
    ASSERT_EQ_INT(lsp_command_args_parse(bad[i].cmd, args, &a, &err), LSP_EARG);
    ASSERT_CONTAINS(err, bad[i].want);
    free(err);
    err = NULL;
    json_decref(args);
  }
  ASSERT(lsp_command_read_only(LSP_CMD_EXPLAIN) && lsp_command_read_only(LSP_CMD_ASK));
  ASSERT(!lsp_command_read_only(LSP_CMD_FIX) && !lsp_command_read_only(LSP_CMD_RUN));
  json_t *list = lsp_command_list();
  ASSERT_EQ_INT(json_array_size(list), 5);
  json_decref(list);
}

TEST(prompts_quote_the_target_lines) {
  const char *doc = "#include <stdio.h>\n\nint main(void) {\n  puts(\"h\xc3\xa9llo\");\n  return 0\n}\n";
  json_t *diags = J("[{\"range\":{\"start\":{\"line\":4,\"character\":10},\"end\":{\"line\":4,\"character\":10}},"
                    "\"severity\":1,\"message\":\"expected ';'\",\"source\":\"cc\",\"code\":\"E1\"}]");
  lsp_prompt_input in = {.cmd = LSP_CMD_FIX, .path = "src/main.c", .language_id = "c", .text = doc,
                         .len = strlen(doc), .has_range = 1, .range = {{4, 0}, {4, 10}},
                         .diagnostics = diags, .instruction = "the semicolon"};
  char *p = lsp_prompt_build(&in);
  ASSERT_CONTAINS(p, "Fix the problem in line 5 of `src/main.c`");
  ASSERT_CONTAINS(p, "The user says: the semicolon");
  ASSERT_CONTAINS(p, "- line 5, column 11: error [cc E1]: expected ';'");
  ASSERT_CONTAINS(p, "```c\n");
  ASSERT_CONTAINS(p, ">    5    return 0\n");
  ASSERT_CONTAINS(p, "     4    puts(\"h\xc3\xa9llo\");\n"); /* context, unmarked */
  ASSERT_CONTAINS(p, "     6  }\n");
  ASSERT(!strstr(p, "     7  ")); /* the empty line after the final newline is not quoted */
  free(p);
  json_decref(diags);
  /* a range ending at column 0 does not include that line */
  lsp_prompt_input ex = {.cmd = LSP_CMD_EXPLAIN, .path = "src/main.c", .text = doc, .len = strlen(doc),
                         .has_range = 1, .range = {{2, 0}, {4, 0}}};
  p = lsp_prompt_build(&ex);
  ASSERT_CONTAINS(p, "Explain lines 3-4 of `src/main.c`");
  ASSERT_CONTAINS(p, "Do not change any file");
  ASSERT_CONTAINS(p, ">    4  ");
  ASSERT_CONTAINS(p, "     5  ");
  free(p);
  lsp_prompt_input ref = ex;
  ref.cmd = LSP_CMD_REFACTOR;
  ref.instruction = "use printf";
  p = lsp_prompt_build(&ref);
  ASSERT_CONTAINS(p, "Instruction: use printf");
  free(p);
  lsp_prompt_input ask = {.cmd = LSP_CMD_ASK, .path = "src/main.c", .text = doc, .len = strlen(doc),
                          .instruction = "what does main return?"};
  p = lsp_prompt_build(&ask);
  ASSERT_CONTAINS(p, "what does main return?\n");
  ASSERT_CONTAINS(p, "looking at `src/main.c`");
  free(p);
  lsp_prompt_input run = {.cmd = LSP_CMD_RUN, .instruction = "rename main"};
  p = lsp_prompt_build(&run);
  ASSERT_STR_EQ(p, "rename main\n");
  free(p);
}

TEST(progress_reports) {
  lsp_progress *p = lsp_progress_new();
  json_t *u = J("{\"sessionUpdate\":\"agent_message_chunk\",\"content\":{\"type\":\"text\",\"text\":\"Let me look. \"}}");
  json_t *r = lsp_progress_feed(p, u);
  ASSERT_STR_EQ(json_string_value(json_object_get(r, "message")), "writing the answer");
  ASSERT_STR_EQ(json_string_value(json_object_get(r, "kind")), "report");
  json_decref(r);
  ASSERT(lsp_progress_feed(p, u) == NULL); /* once per message */
  json_decref(u);
  u = J("{\"sessionUpdate\":\"tool_call\",\"toolCallId\":\"c1\",\"title\":\"Read src/main.c\",\"kind\":\"read\"}");
  r = lsp_progress_feed(p, u);
  ASSERT_STR_EQ(json_string_value(json_object_get(r, "message")), "Read src/main.c");
  json_decref(r);
  json_decref(u);
  u = J("{\"sessionUpdate\":\"plan\",\"entries\":[{\"content\":\"a\",\"priority\":\"high\",\"status\":\"completed\"},"
        "{\"content\":\"fix it\",\"priority\":\"high\",\"status\":\"in_progress\"}]}");
  r = lsp_progress_feed(p, u);
  ASSERT_STR_EQ(json_string_value(json_object_get(r, "message")), "fix it (1/2)");
  ASSERT_EQ_INT(json_integer_value(json_object_get(r, "percentage")), 50);
  json_decref(r);
  json_decref(u);
  /* percentages never go back */
  u = J("{\"sessionUpdate\":\"plan\",\"entries\":[{\"content\":\"a\",\"priority\":\"high\",\"status\":\"pending\"}]}");
  r = lsp_progress_feed(p, u);
  ASSERT_EQ_INT(json_integer_value(json_object_get(r, "percentage")), 50);
  json_decref(r);
  json_decref(u);
  u = J("{\"sessionUpdate\":\"tool_call_update\",\"toolCallId\":\"c1\",\"status\":\"failed\"}");
  r = lsp_progress_feed(p, u);
  ASSERT_CONTAINS(json_string_value(json_object_get(r, "message")), "failed");
  json_decref(r);
  json_decref(u);
  u = J("{\"sessionUpdate\":\"agent_message_chunk\",\"content\":{\"type\":\"text\",\"text\":\"Added the ';'.\\n\"}}");
  json_decref(lsp_progress_feed(p, u));
  json_decref(u);
  u = J("{\"sessionUpdate\":\"usage_update\",\"used\":1,\"size\":2}");
  ASSERT(lsp_progress_feed(p, u) == NULL);
  json_decref(u);
  u = J("{\"sessionUpdate\":\"tool_call_update\",\"toolCallId\":\"c2\",\"status\":\"completed\","
        "\"content\":[{\"type\":\"diff\",\"path\":\"/w/a.c\",\"oldText\":\"x\",\"newText\":\"y\"},"
        "{\"type\":\"diff\",\"path\":\"relative.c\",\"newText\":\"y\"}]}");
  json_decref(lsp_progress_feed(p, u));
  json_decref(lsp_progress_feed(p, u)); /* each file once */
  json_decref(u);
  ASSERT_EQ_INT(json_array_size(lsp_progress_changed(p)), 1);
  ASSERT_STR_EQ(json_string_value(json_array_get(lsp_progress_changed(p), 0)), "/w/a.c");
  /* the answer is what came after the last tool call */
  ASSERT_STR_EQ(lsp_progress_text(p), "Added the ';'.");
  ASSERT_EQ_INT(lsp_progress_tool_calls(p), 1);
  ASSERT_EQ_INT(lsp_progress_tool_failures(p), 1);
  lsp_progress_free(p);
}

QC_TEST_MAIN
