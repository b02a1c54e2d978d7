/* test_render.c — the Qwen3-Coder renderer against every chat fixture (byte for byte),
 * Python value printing, FIM prompts, and `qcoder render` from outside. */
#include <dirent.h>

#include "agent/agent.h"
#include "agent/chat_format.h"
#include "tests/test.h"

static const char *const k_fixtures[] = {
    "no_tools_no_system", "system_only", "tools_no_system", "tools_with_system",
    "tool_complex_params", "assistant_text_one_call", "assistant_two_calls", "call_arg_types",
    "consecutive_tool_responses", "multi_turn_rounds", "non_ascii_content", "newlines_xml_content",
    "no_generation_prompt", "assistant_content_whitespace", NULL};

static void first_difference(const char *got, size_t gl, const char *want, size_t wl) {
  size_t i = 0;
  while (i < gl && i < wl && got[i] == want[i]) i++;
  size_t from = i > 60 ? i - 60 : 0;
  fprintf(stderr, "  first difference at byte %zu\n  got:  %.*s\n  want: %.*s\n", i,
          (int)((gl - from) < 120 ? gl - from : 120), got + from,
          (int)((wl - from) < 120 ? wl - from : 120), want + from);
}

static void check_fixture(const char *name) {
  char rel[256];
  snprintf(rel, sizeof rel, "agent/chat/%s.json", name);
  char *jp = qct_data_path(rel);
  snprintf(rel, sizeof rel, "agent/chat/%s.txt", name);
  char *tp = qct_data_path(rel);
  json_error_t jerr;
  json_t *conv = json_load_file(jp, 0, &jerr);
  ASSERT_MSG(conv, "%s: %s", jp, jerr.text);
  size_t wl;
  char *want = qct_read_file(tp, &wl);
  ASSERT_MSG(want, "cannot read %s", tp);
  char *got = NULL, *err = NULL;
  size_t gl = 0;
  int rc = agent_render_conversation(conv, &got, &gl, &err);
  ASSERT_MSG(rc == AGENT_OK, "%s: %s", name, err ? err : "?");
  if (gl != wl || memcmp(got, want, wl) != 0) {
    first_difference(got, gl, want, wl);
    QCT_FAIL("%s: rendering differs from the fixture (%zu vs %zu bytes)", name, gl, wl);
  }
  free(got);
  free(want);
  free(jp);
  free(tp);
  json_decref(conv);
}

TEST(every_fixture_renders_byte_for_byte) {
  int n = 0;
  for (const char *const *f = k_fixtures; *f; f++, n++) check_fixture(*f);
  ASSERT_EQ_INT(n, 14);
}

TEST(the_fixture_copies_match_the_oracle) {
  /* tests/data holds copies; when the shared oracle is present they must be identical */
  char *dir = qct_shared_path("oracle/chat");
  if (!dir) SKIP("shared oracle folder not present");
  for (const char *const *f = k_fixtures; *f; f++) {
    for (int ext = 0; ext < 2; ext++) {
      char rel[256], path[1024];
      snprintf(rel, sizeof rel, "agent/chat/%s.%s", *f, ext ? "txt" : "json");
      snprintf(path, sizeof path, "%s/%s.%s", dir, *f, ext ? "txt" : "json");
      char *dp = qct_data_path(rel);
      size_t a, b;
      char *x = qct_read_file(dp, &a), *y = qct_read_file(path, &b);
      ASSERT_MSG(x && y && a == b && memcmp(x, y, a) == 0, "%s differs from %s", dp, path);
      free(x);
      free(y);
      free(dp);
    }
  }
  free(dir);
}

static char *py(int (*fn)(qc_buf *, const json_t *), const char *json) {
  json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);
  ASSERT_MSG(v, "bad json %s", json);
  qc_buf b;
  qc_buf_init(&b, 0);
  ASSERT_EQ_INT(fn(&b, v), QC_OK);
  json_decref(v);
  return qc_buf_detach(&b, NULL);
}

#define ASSERT_PY(fn, json, want)        \
  do {                                   \
    char *s_ = py(fn, json);             \
    ASSERT_STR_EQ(s_, want);             \
    free(s_);                            \
  } while (0)

TEST(python_float_repr) {
  struct { double x; const char *want; } cases[] = {
      {0.25, "0.25"}, {1.0, "1.0"}, {100000.0, "100000.0"}, {1e16, "1e+16"}, {1e15, "1000000000000000.0"},
      {1e-5, "1e-05"}, {0.0001, "0.0001"}, {0.1, "0.1"}, {1.0 / 3, "0.3333333333333333"},
      {-2.5, "-2.5"}, {123456789012345678.0, "1.2345678901234568e+17"}, {5e-324, "5e-324"},
      {1.7976931348623157e308, "1.7976931348623157e+308"}, {-0.0, "-0.0"}, {0.0, "0.0"},
      {12345.678, "12345.678"}, {1.5e-7, "1.5e-07"}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char out[40];
    agent__py_float_repr(cases[i].x, out, sizeof out);
    ASSERT_STR_EQ(out, cases[i].want);
  }
}

TEST(python_str_repr_and_json) {
  ASSERT_PY(agent__py_str, "\"plain\"", "plain");
  ASSERT_PY(agent__py_str, "true", "True");
  ASSERT_PY(agent__py_str, "null", "None");
  ASSERT_PY(agent__py_str, "3", "3");
  ASSERT_PY(agent__py_str, "[\"integer\", \"null\"]", "['integer', 'null']");
  ASSERT_PY(agent__py_str, "{\"a\": 1, \"b\": [true, null, 0.5]}", "{'a': 1, 'b': [True, None, 0.5]}");
  ASSERT_PY(agent__py_repr, "\"it's\"", "\"it's\"");
  ASSERT_PY(agent__py_repr, "\"both ' and \\\"\"", "'both \\' and \"'");
  ASSERT_PY(agent__py_repr, "\"tab\\tnl\\nbs\\\\\"", "'tab\\tnl\\nbs\\\\'");
  ASSERT_PY(agent__py_repr, "\"\\u0001\\u007f\\u00a0\\u00e9\\u200b\\u4e2d\"", "'\\x01\\x7f\\xa0\xc3\xa9\\u200b\xe4\xb8\xad'");
  ASSERT_PY(agent__py_json, "{\"z\": 1, \"a\": {\"y\": \"\\u00e9\\n\"}, \"l\": [1.0, false]}",
            "{\"z\": 1, \"a\": {\"y\": \"\xc3\xa9\\n\"}, \"l\": [1.0, false]}");
  ASSERT_PY(agent__py_json, "\"<tag> & \\u001f \\u007f\"", "\"<tag> & \\u001f \x7f\"");
}

TEST(python_strip_is_unicode_aware) {
  const char *s = "\xe3\x80\x80 \t\n x y \xc2\xa0\r\n";
  size_t a, n = agent__py_strip(s, strlen(s), &a);
  ASSERT_EQ_INT(n, 3);
  ASSERT(memcmp(s + a, "x y", 3) == 0);
  n = agent__py_strip("   ", 3, &a);
  ASSERT_EQ_INT(n, 0);
  const char *zw = "\xe2\x80\x8b" "a"; /* U+200B is not whitespace for Python */
  n = agent__py_strip(zw, strlen(zw), &a);
  ASSERT_EQ_INT(n, 4);
}

TEST(tool_response_first_and_string_arguments) {
  /* a leading tool message gets no <|im_start|>user (the template looks at a previous item
   * only); OpenAI-wire string arguments are parsed */
  const char *conv =
      "{\"messages\": [{\"role\": \"tool\", \"content\": \"r\"},"
      " {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"c\", \"type\": \"function\","
      "  \"function\": {\"name\": \"f\", \"arguments\": \"{\\\"b\\\": 2, \\\"a\\\": [1, \\\"x\\\"]}\"}}]}],"
      " \"add_generation_prompt\": false}";
  json_t *c = json_loads(conv, 0, NULL);
  ASSERT(c);
  char *out = NULL, *err = NULL;
  ASSERT_EQ_INT(agent_render_conversation(c, &out, NULL, &err), AGENT_OK);
  ASSERT_STR_EQ(out, "<tool_response>\nr\n</tool_response>\n<|im_end|>\n<|im_start|>assistant\n<tool_call>\n"
                     "<function=f>\n<parameter=b>\n2\n</parameter>\n<parameter=a>\n[1, \"x\"]\n</parameter>\n"
                     "</function>\n</tool_call><|im_end|>\n");
  free(out);
  json_decref(c);
}

TEST(malformed_conversations_are_errors_not_crashes) {
  const char *bad[] = {"[]", "{\"messages\": 3}", "{\"messages\": [1]}", "{\"messages\": [], \"tools\": {}}",
                       "{\"messages\": [{\"role\": \"assistant\", \"tool_calls\": [{\"function\": {\"name\": \"f\", \"arguments\": \"nope\"}}]}]}",
                       NULL};
  for (const char **b = bad; *b; b++) {
    json_t *c = json_loads(*b, JSON_DECODE_ANY, NULL);
    ASSERT(c);
    char *out = NULL, *err = NULL;
    int rc = agent_render_conversation(c, &out, NULL, &err);
    ASSERT_MSG(rc == AGENT_EFORMAT, "%s rendered", *b);
    ASSERT(err && *err);
    ASSERT(out == NULL);
    free(err);
    json_decref(c);
  }
}

TEST(fim_prompts) {
  char *p = agent_fim_prompt("int f() {\n  ", "\n}\n");
  ASSERT_STR_EQ(p, "<|fim_prefix|>int f() {\n  <|fim_suffix|>\n}\n<|fim_middle|>");
  free(p);
  agent_fim_file files[] = {{"lib.py", "def a():\n    pass\n"}, {"util.py", "X = 1"}};
  p = agent_fim_repo_prompt("proj", files, 2, "main.py", "import lib\n", "\n");
  ASSERT_STR_EQ(p, "<|repo_name|>proj\n<|file_sep|>lib.py\ndef a():\n    pass\n<|file_sep|>util.py\nX = 1\n"
                   "<|file_sep|>main.py\n<|fim_prefix|>import lib\n<|fim_suffix|>\n<|fim_middle|>");
  free(p);
  int has_file_sep = 0;
  for (const char *const *s = agent_fim_stops(); *s; s++) has_file_sep |= strcmp(*s, "<|file_sep|>") == 0;
  ASSERT(has_file_sep);
}

TEST(qcoder_render_prints_the_prompt_exactly) {
  for (const char *const *f = k_fixtures; *f; f++) {
    char rel[256];
    snprintf(rel, sizeof rel, "agent/chat/%s.json", *f);
    char *jp = qct_data_path(rel);
    snprintf(rel, sizeof rel, "agent/chat/%s.txt", *f);
    char *tp = qct_data_path(rel);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' render '%s'", qct_qcoder_bin(), jp);
    char *out = NULL;
    int st = qct_run(cmd, &out);
    ASSERT_EQ_INT(st, 0);
    size_t wl;
    char *want = qct_read_file(tp, &wl);
    ASSERT_MSG(strlen(out) == wl && memcmp(out, want, wl) == 0, "qcoder render %s differs", *f);
    free(out);
    free(want);
    free(jp);
    free(tp);
  }
  /* stdin and errors */
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "printf '%%s' '{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                            "\"add_generation_prompt\":true}' | '%s' render -", qct_qcoder_bin());
  char *out = NULL;
  ASSERT_EQ_INT(qct_run(cmd, &out), 0);
  ASSERT_STR_EQ(out, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  free(out);
  snprintf(cmd, sizeof cmd, "echo '{\"messages\": 5}' | '%s' render - 2>&1", qct_qcoder_bin());
  ASSERT_EQ_INT(qct_run(cmd, &out), 1);
  ASSERT_CONTAINS(out, "messages");
  free(out);
  snprintf(cmd, sizeof cmd, "'%s' render /nonexistent/x.json 2>&1", qct_qcoder_bin());
  ASSERT_EQ_INT(qct_run(cmd, &out), 1);
  free(out);
}

QC_TEST_MAIN
