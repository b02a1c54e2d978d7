/* test_cli.c — `qcoder tool` end to end: output shapes, exit codes, stdin arguments. */
#include "tests/tools/tt.h"

static int qc(const char *args, char **out) {
  char *cmd = qc_asprintf("'%s' tool %s 2>&1", qct_qcoder_bin(), args);
  int rc = qct_run(cmd, out);
  free(cmd);
  return rc;
}

TEST(tool_list_prints_every_tool_with_its_schema) {
  char *out = NULL;
  ASSERT_EQ_INT(qc("--list --json", &out), 0);
  json_t *j = json_loads(out, 0, NULL);
  ASSERT_MSG(json_is_array(j), "not a JSON array: %.200s", out);
  ASSERT_EQ_INT(json_array_size(j), tool_count());
  json_t *first = json_array_get(j, 0);
  ASSERT(json_is_string(json_object_get(first, "name")));
  ASSERT(json_is_string(json_object_get(first, "kind")));
  ASSERT(json_is_object(json_object_get(first, "parameters")));
  json_decref(j);
  free(out);
  ASSERT_EQ_INT(qc("--list", &out), 0);
  ASSERT_CONTAINS(out, "edit_file (edit)");
  ASSERT_CONTAINS(out, "parameters: {");
  free(out);
}

TEST(tool_json_output_and_exit_codes) {
  char *d = qct_tempdir("cli");
  tt_write(d, "a.txt", "hello\nworld\n");
  char *args = qc_asprintf("read_file '{\"path\":\"a.txt\",\"limit\":1}' --workspace '%s' --json", d);
  char *out = NULL;
  ASSERT_EQ_INT(qc(args, &out), 0);
  json_t *j = json_loads(out, 0, NULL);
  ASSERT_MSG(j, "not JSON: %s", out);
  ASSERT_EQ_INT(json_object_size(j), 4);
  ASSERT(json_is_true(json_object_get(j, "ok")));
  ASSERT_CONTAINS(json_string_value(json_object_get(j, "output")), "     1\thello\n");
  ASSERT_STR_EQ(json_string_value(json_object_get(j, "error")), "");
  ASSERT(json_is_object(json_object_get(j, "data")));
  json_decref(j);
  free(out);
  free(args);
  /* a tool error: exit 1, ok false */
  args = qc_asprintf("read_file '{\"path\":\"../etc/passwd\"}' --workspace '%s' --json", d);
  ASSERT_EQ_INT(qc(args, &out), 1);
  j = json_loads(out, 0, NULL);
  ASSERT(j && json_is_false(json_object_get(j, "ok")));
  ASSERT_CONTAINS(json_string_value(json_object_get(j, "error")), "outside the workspace");
  json_decref(j);
  free(out);
  free(args);
  /* schema errors are tool errors too */
  args = qc_asprintf("read_file '{\"path\":1}' --workspace '%s'", d);
  ASSERT_EQ_INT(qc(args, &out), 1);
  ASSERT_CONTAINS(out, "args.path: expected string, got integer");
  free(out);
  free(args);
  /* plain output */
  args = qc_asprintf("grep '{\"pattern\":\"wor\"}' -w '%s'", d);
  ASSERT_EQ_INT(qc(args, &out), 0);
  ASSERT_CONTAINS(out, "a.txt:2:world\n");
  free(out);
  free(args);
  free(d);
}

TEST(tool_usage_errors_exit_2) {
  char *out = NULL;
  ASSERT_EQ_INT(qc("", &out), 2);
  free(out);
  ASSERT_EQ_INT(qc("no_such_tool '{}'", &out), 2);
  ASSERT_CONTAINS(out, "read_file");
  free(out);
  ASSERT_EQ_INT(qc("read_file '{not json'", &out), 2);
  ASSERT_CONTAINS(out, "not valid JSON");
  free(out);
  ASSERT_EQ_INT(qc("read_file '{}' --sandbox maybe", &out), 2);
  free(out);
  ASSERT_EQ_INT(qc("read_file '{}' --bogus", &out), 2);
  free(out);
  ASSERT_EQ_INT(qc("read_file '{\"path\":\"x\"}' --workspace /nonexistent/qct", &out), 2);
  free(out);
  ASSERT_EQ_INT(qc("--help", &out), 0);
  ASSERT_CONTAINS(out, "usage: qcoder tool");
  free(out);
}

TEST(tool_arguments_from_stdin_and_edits_by_hand) {
  char *d = qct_tempdir("cli");
  tt_write(d, "main.c", "int x = 1;\n");
  char *cmd = qc_asprintf("printf '%%s' '{\"path\":\"main.c\",\"old_string\":\"1\",\"new_string\":\"2\"}' | '%s' tool "
                          "edit_file - --workspace '%s' --json",
                          qct_qcoder_bin(), d);
  char *out = NULL;
  /* one call per process: an edit without a prior read is allowed by hand */
  ASSERT_EQ_INT(qct_run(cmd, &out), 0);
  json_t *j = json_loads(out, 0, NULL);
  ASSERT_MSG(j, "not JSON: %s", out);
  ASSERT_CONTAINS(json_string_value(json_object_get(json_object_get(j, "data"), "unified")), "-int x = 1;\n+int x = 2;\n");
  json_decref(j);
  free(out);
  free(cmd);
  char *s = tt_read(d, "main.c");
  ASSERT_STR_EQ(s, "int x = 2;\n");
  free(s);
  free(d);
}

TEST(tool_run_command_by_hand) {
  char *d = qct_tempdir("cli");
  char *args = qc_asprintf("run_command '{\"command\":\"echo hi; exit 4\"}' --workspace '%s' --json --sandbox prefer", d);
  char *out = NULL;
  ASSERT_EQ_INT(qc(args, &out), 1);
  json_t *j = json_loads(out, 0, NULL);
  ASSERT_MSG(j, "not JSON: %s", out);
  ASSERT_EQ_INT(json_integer_value(json_object_get(json_object_get(json_object_get(j, "data"), "exit"), "code")), 4);
  ASSERT_CONTAINS(json_string_value(json_object_get(j, "error")), "hi\n");
  json_decref(j);
  free(out);
  free(args);
  free(d);
}

QC_TEST_MAIN
