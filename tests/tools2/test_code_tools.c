/* test_code_tools.c — code_outline, find_symbol, git tools and the syntax check as the
 * registry runs them (tool_call on a workspace), and bad input to each. */
#include "tests/test.h"
#include "tools/tools.h"
#include "common/common.h"

static tool_ws *open_ws(const char *root) {
  tool_ws_opts o = {0};
  o.sandbox = TOOL_SANDBOX_OFF;
  o.edit_without_read = 1;
  char *state = qct_tempdir("state");
  o.state_dir = state;
  tool_ws *ws = NULL;
  char *err = NULL;
  ASSERT_MSG(tool_ws_open(root, &o, &ws, &err) == 0, "ws: %s", err ? err : "?");
  free(state);
  return ws;
}

/* A copy of the language fixtures in a fresh directory. */
static char *fixture_copy(void) {
  char *d = qct_tempdir("code");
  char *src = qct_data_path("tools2/lang");
  char *cmd = qc_asprintf("cp -a '%s/.' '%s/'", src, d);
  ASSERT(qct_run(cmd, NULL) == 0);
  free(cmd);
  free(src);
  return d;
}

static tool_result call(tool_ws *ws, const char *name, const char *json) {
  json_error_t je;
  json_t *args = json_loads(json, 0, &je);
  ASSERT_MSG(args, "bad test json: %s", json);
  tool_result r = {0};
  tool_call(ws, name, args, NULL, &r);
  json_decref(args);
  return r;
}

TEST(tools_are_registered) {
  const char *names[] = {"code_outline", "find_symbol", "git_status", "git_diff", "git_log", "git_blame", "git_show"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    const tool_def *t = tool_find(names[i]);
    ASSERT_MSG(t, "%s missing", names[i]);
    ASSERT_MSG(tool_schema(t), "%s schema does not parse", names[i]);
  }
}

TEST(code_outline_nested_with_signatures) {
  char *d = fixture_copy();
  tool_ws *ws = open_ws(d);
  tool_result r = call(ws, "code_outline", "{\"path\":\"sample.py\"}");
  ASSERT_MSG(r.ok, "%s", r.error);
  ASSERT_CONTAINS(r.output, "sample.py (python, 5 symbols)\n");
  ASSERT_CONTAINS(r.output, "6-11 class Greeter: class Greeter:\n");
  ASSERT_CONTAINS(r.output, "  7-8 method __init__: def __init__(self, name):\n");
  ASSERT_CONTAINS(r.output, "14-15 function helper: def helper(name):\n");
  json_t *syms = json_object_get(r.data, "symbols");
  json_t *cls = json_array_get(syms, 1);
  ASSERT_STR_EQ(json_string_value(json_object_get(cls, "name")), "Greeter");
  ASSERT_EQ_INT(json_integer_value(json_object_get(cls, "line")), 6);
  ASSERT_EQ_INT(json_array_size(json_object_get(cls, "children")), 2);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(json_object_get(cls, "children"), 1), "name")),
                "greet");
  tool_result_release(&r);

  r = call(ws, "code_outline", "{\"path\":\"sample.rs\"}");
  ASSERT_MSG(r.ok, "%s", r.error);
  ASSERT_CONTAINS(r.output, "9-17 impl Stack: impl Stack {\n  10-12 method new: pub fn new() -> Self {\n");
  tool_result_release(&r);

  /* bad input: no grammar, missing file, escape */
  {
    char *p = qc_path_join(d, "notes.txt");
    qct_write_file(p, "just text\n");
    free(p);
  }
  r = call(ws, "code_outline", "{\"path\":\"notes.txt\"}");
  ASSERT(!r.ok);
  ASSERT_CONTAINS(r.error, "no grammar");
  tool_result_release(&r);
  r = call(ws, "code_outline", "{\"path\":\"nope.c\"}");
  ASSERT(!r.ok);
  tool_result_release(&r);
  r = call(ws, "code_outline", "{\"path\":\"../../etc/passwd\"}");
  ASSERT(!r.ok);
  tool_result_release(&r);
  tool_ws_close(ws);
  free(d);
}

TEST(find_symbol_definitions_and_references) {
  char *d = fixture_copy();
  char *p = qc_path_join(d, "util.py");
  qct_write_file(p, "from sample import helper\n\n# helper in a comment does not count\nx = helper('a')\n");
  free(p);
  tool_ws *ws = open_ws(d);
  tool_result r = call(ws, "find_symbol", "{\"name\":\"helper\"}");
  ASSERT_MSG(r.ok, "%s", r.error);
  ASSERT_CONTAINS(r.output, "Definitions of helper (2):\n");
  ASSERT_CONTAINS(r.output, "  sample.py:14 function: def helper(name):\n");
  ASSERT_CONTAINS(r.output, "  Sample.java:16 method: static int helper(int x) {\n");
  ASSERT_CONTAINS(r.output, "  sample.py:11:16: return helper(self.name)\n");
  ASSERT_CONTAINS(r.output, "  util.py:4:5: x = helper('a')\n");
  ASSERT(!strstr(r.output, "util.py:3"));
  json_t *locs = json_object_get(r.data, "locations");
  ASSERT(json_array_size(locs) >= 4);
  ASSERT(json_string_value(json_object_get(json_array_get(locs, 0), "path"))[0] == '/');
  tool_result_release(&r);

  r = call(ws, "find_symbol", "{\"name\":\"helper\", \"kind\":\"method\"}");
  ASSERT_CONTAINS(r.output, "Definitions of helper (1):\n  Sample.java:16");
  tool_result_release(&r);
  r = call(ws, "find_symbol", "{\"name\":\"helper\", \"path\":\"util.py\"}");
  ASSERT_CONTAINS(r.output, "Definitions of helper (0):\n");
  ASSERT_CONTAINS(r.output, "util.py:4:5");
  tool_result_release(&r);
  /* every language's fixture answers */
  const char *names[] = {"add", "Circle", "makeCounter", "format", "Button", "Push", "Stack", "twice", "deploy_to", "scripts"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char q[128];
    snprintf(q, sizeof q, "{\"name\":\"%s\"}", names[i]);
    r = call(ws, "find_symbol", q);
    ASSERT_MSG(r.ok && !strstr(r.output, "(0):\nReferences"), "%s: %s", names[i], r.output ? r.output : r.error);
    tool_result_release(&r);
  }
  r = call(ws, "find_symbol", "{\"name\":\"no_such_symbol_anywhere\"}");
  ASSERT(r.ok);
  ASSERT_CONTAINS(r.output, "No definition or reference");
  tool_result_release(&r);
  r = call(ws, "find_symbol", "{\"name\":\"two words\"}");
  ASSERT(!r.ok);
  tool_result_release(&r);
  tool_ws_close(ws);
  free(d);
}

TEST(syntax_check_function) {
  const char *good = "int add(int a, int b) {\n  return a + b;\n}\n\nint sub(int a, int b) {\n  return a - b;\n}\n";
  const char *broken = "int add(int a, int b) {\n  return a + b;\n}\n\nint sub(int a, int b) {\n  return a - ;\n}\n";
  json_t *errs;
  /* an edit that breaks a C function reports the error line */
  ASSERT_EQ_INT(tool_syntax_check("m.c", good, strlen(good), broken, strlen(broken), &errs), TOOL_OK);
  ASSERT_EQ_INT(json_array_size(errs), 1);
  ASSERT_EQ_INT(json_integer_value(json_object_get(json_array_get(errs, 0), "line")), 6);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(errs, 0), "context")), "return a - ;");
  json_decref(errs);
  /* a clean edit reports none */
  const char *clean = "int add(int a, int b) {\n  return a + b + 0;\n}\n";
  ASSERT_EQ_INT(tool_syntax_check("m.c", good, strlen(good), clean, strlen(clean), &errs), TOOL_OK);
  ASSERT_EQ_INT(json_array_size(errs), 0);
  json_decref(errs);
  /* a file that already had the error: an edit elsewhere (shifting it down) reports nothing */
  const char *shifted = "/* new comment */\nint add(int a, int b) {\n  return a + b;\n}\n\nint sub(int a, int b) {\n  return a - ;\n}\n";
  ASSERT_EQ_INT(tool_syntax_check("m.c", broken, strlen(broken), shifted, strlen(shifted), &errs), TOOL_OK);
  ASSERT_EQ_INT(json_array_size(errs), 0);
  json_decref(errs);
  /* ... but a second, new error in it is reported */
  const char *two = "int add(int a, int b) {\n  return a + * ;\n}\n\nint sub(int a, int b) {\n  return a - ;\n}\n";
  ASSERT_EQ_INT(tool_syntax_check("m.c", broken, strlen(broken), two, strlen(two), &errs), TOOL_OK);
  ASSERT_EQ_INT(json_array_size(errs), 1);
  ASSERT_EQ_INT(json_integer_value(json_object_get(json_array_get(errs, 0), "line")), 2);
  json_decref(errs);
  /* a new file, python, a missing token */
  const char *py = "def f(:\n    pass\n";
  ASSERT_EQ_INT(tool_syntax_check("x.py", NULL, 0, py, strlen(py), &errs), TOOL_OK);
  ASSERT(json_array_size(errs) >= 1);
  ASSERT_EQ_INT(json_integer_value(json_object_get(json_array_get(errs, 0), "line")), 1);
  json_decref(errs);
  /* no grammar: NULL */
  ASSERT_EQ_INT(tool_syntax_check("notes.txt", NULL, 0, "((", 2, &errs), TOOL_OK);
  ASSERT(errs == NULL);
}

TEST(write_file_reports_new_syntax_errors) {
  char *d = qct_tempdir("wsyn");
  tool_ws *ws = open_ws(d);
  tool_result r = call(ws, "write_file", "{\"path\":\"a.c\",\"content\":\"int f(void) {\\n  return 1;\\n}\\n\"}");
  ASSERT_MSG(r.ok, "%s", r.error);
  ASSERT(!strstr(r.output, "syntax"));
  ASSERT(json_object_get(r.data, "syntax_errors") == NULL);
  tool_result_release(&r);
  r = call(ws, "write_file", "{\"path\":\"a.c\",\"content\":\"int f(void) {\\n  return 1 +;\\n}\\n\"}");
  ASSERT_MSG(r.ok, "%s", r.error);
  ASSERT_CONTAINS(r.output, "1 new syntax error (not there before the write)");
  ASSERT_CONTAINS(r.output, "line 2, column");
  json_t *se = json_object_get(r.data, "syntax_errors");
  ASSERT_EQ_INT(json_array_size(se), 1);
  ASSERT_EQ_INT(json_integer_value(json_object_get(json_array_get(se, 0), "line")), 2);
  tool_result_release(&r);
  tool_ws_close(ws);
  free(d);
}

TEST(edit_file_reports_new_syntax_errors_only) {
  char *d = qct_tempdir("esyn");
  char *p = qc_path_join(d, "m.py");
  /* the file is already broken at line 2; the edit breaks line 5 too */
  qct_write_file(p, "def ok():\n    return (1\n\ndef g():\n    return 2\n");
  free(p);
  tool_ws *ws = open_ws(d);
  tool_result r = call(ws, "edit_file", "{\"path\":\"m.py\",\"old_string\":\"return 2\",\"new_string\":\"return 2 +\"}");
  ASSERT_MSG(r.ok, "%s", r.error);
  json_t *se = json_object_get(r.data, "syntax_errors");
  if (se) { /* python's error recovery may fold both into one region; any report names the new line */
    for (size_t i = 0; i < json_array_size(se); i++)
      ASSERT(json_integer_value(json_object_get(json_array_get(se, i), "line")) != 2);
  }
  tool_result_release(&r);
  /* a clean edit of a clean C file: nothing reported */
  p = qc_path_join(d, "a.c");
  qct_write_file(p, "int f(void) {\n  return 1;\n}\n");
  free(p);
  r = call(ws, "edit_file", "{\"path\":\"a.c\",\"old_string\":\"return 1;\",\"new_string\":\"return 2;\"}");
  ASSERT_MSG(r.ok, "%s", r.error);
  ASSERT(json_object_get(r.data, "syntax_errors") == NULL);
  tool_result_release(&r);
  /* an edit that breaks the function: the error's line is reported */
  r = call(ws, "edit_file", "{\"path\":\"a.c\",\"old_string\":\"return 2;\",\"new_string\":\"return 2 +;\"}");
  ASSERT_MSG(r.ok, "%s", r.error);
  se = json_object_get(r.data, "syntax_errors");
  ASSERT_EQ_INT(json_array_size(se), 1);
  ASSERT_EQ_INT(json_integer_value(json_object_get(json_array_get(se, 0), "line")), 2);
  ASSERT_CONTAINS(r.output, "new syntax error");
  tool_result_release(&r);
  tool_ws_close(ws);
  free(d);
}

TEST(git_tools_through_the_registry) {
  char *d = qct_tempdir("gitreg");
  tool_ws *ws = open_ws(d);
  tool_result r = call(ws, "git_status", "{}");
  ASSERT(!r.ok);
  ASSERT_CONTAINS(r.error, "not inside");
  tool_result_release(&r);
  tool_ws_close(ws);
  char *cmd = qc_asprintf("cd '%s' && git init -q -b main . && printf 'a\\nb\\n' > f.txt && git add f.txt && "
                          "git -c user.name=T -c user.email=t@x commit -q -m first && printf 'a\\nB\\n' > f.txt", d);
  if (qct_run(cmd, NULL) != 0) {
    free(cmd);
    free(d);
    SKIP("the git command-line tool is not available to build the fixture");
  }
  free(cmd);
  ws = open_ws(d);
  r = call(ws, "git_status", "{}");
  ASSERT_MSG(r.ok, "%s", r.error);
  ASSERT_CONTAINS(r.output, "## main\n M f.txt\n");
  tool_result_release(&r);
  r = call(ws, "git_diff", "{\"path\":\"f.txt\"}");
  ASSERT_CONTAINS(r.output, "-b\n+B\n");
  tool_result_release(&r);
  r = call(ws, "git_log", "{\"n\":5}");
  ASSERT_CONTAINS(r.output, "T: first\n");
  tool_result_release(&r);
  r = call(ws, "git_blame", "{\"path\":\"f.txt\",\"start\":2,\"end\":2}");
  ASSERT_CONTAINS(r.output, "Not Committed Yet");
  tool_result_release(&r);
  r = call(ws, "git_show", "{\"rev\":\"HEAD:f.txt\"}");
  ASSERT_STR_EQ(r.output, "a\nb\n");
  tool_result_release(&r);
  r = call(ws, "git_diff", "{\"path\":\"../outside\"}");
  ASSERT(!r.ok);
  tool_result_release(&r);
  r = call(ws, "git_show", "{\"rev\":\"nonexistent-rev\"}");
  ASSERT(!r.ok);
  ASSERT_CONTAINS(r.error, "unknown revision");
  tool_result_release(&r);

  /* the public checkpoint API on a workspace */
  char *id, *err;
  ASSERT_EQ_INT(tool_checkpoint_create(ws, "t", &id, &err), TOOL_OK);
  char *p = qc_path_join(d, "f.txt");
  qct_write_file(p, "changed\n");
  char *patch;
  ASSERT_EQ_INT(tool_checkpoint_diff(ws, id, &patch, NULL, &err), TOOL_OK);
  ASSERT_CONTAINS(patch, "+changed");
  free(patch);
  json_t *sum;
  ASSERT_EQ_INT(tool_checkpoint_restore(ws, id, &sum, &err), TOOL_OK);
  json_decref(sum);
  char *c = qct_read_file(p, NULL);
  ASSERT_STR_EQ(c, "a\nB\n");
  free(c);
  free(p);
  json_t *list;
  ASSERT_EQ_INT(tool_checkpoint_list(ws, &list, &err), TOOL_OK);
  ASSERT_EQ_INT(json_array_size(list), 1);
  json_decref(list);
  free(id);
  tool_ws_close(ws);
  free(d);
}

QC_TEST_MAIN
