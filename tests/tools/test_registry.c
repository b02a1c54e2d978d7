/* test_registry.c — the registry, argument validation and results. */
#include "tests/test.h"
#include "tools/internal.h"

static tool_ws *open_ws(const char *dir) {
  tool_ws_opts o = {TOOL_SANDBOX_PREFER};
  tool_ws *ws = NULL;
  char *err = NULL;
  int rc = tool_ws_open(dir, &o, &ws, &err);
  ASSERT_MSG(rc == TOOL_OK, "ws open: %s", err ? err : "?");
  return ws;
}

static int call(tool_ws *ws, const char *name, const char *json, tool_result *r) {
  json_error_t je;
  json_t *a = json ? json_loads(json, 0, &je) : NULL;
  if (json) ASSERT_MSG(a != NULL, "bad json in test: %s", je.text);
  int rc = tool_call(ws, name, a, NULL, r);
  json_decref(a);
  return rc;
}

TEST(registry_lists_tools_with_valid_schemas) {
  ASSERT(tool_count() >= 4);
  for (size_t i = 0; i < tool_count(); i++) {
    const tool_def *t = tool_at(i);
    ASSERT_MSG(tool_schema(t) != NULL, "schema of %s", t->name);
    ASSERT(tool_find(t->name) == t);
  }
  json_t *s = tool_openai_schemas();
  ASSERT(json_array_size(s) >= 4);
  json_decref(s);
}

TEST(unknown_tool_is_an_error_listing_the_tools) {
  char *d = qct_tempdir("reg");
  tool_ws *ws = open_ws(d);
  tool_result r;
  ASSERT_EQ_INT(call(ws, "nope", "{}", &r), TOOL_EUNKNOWN);
  ASSERT(!r.ok);
  ASSERT_CONTAINS(r.error, "read_file");
  tool_result_release(&r);
  tool_ws_close(ws);
  free(d);
}

TEST(schema_errors_name_the_field) {
  char *d = qct_tempdir("reg");
  tool_ws *ws = open_ws(d);
  tool_result r;
  ASSERT_EQ_INT(call(ws, "read_file", "{}", &r), TOOL_EARGS);
  ASSERT_CONTAINS(r.error, "missing required field 'path'");
  tool_result_release(&r);
  ASSERT_EQ_INT(call(ws, "read_file", "{\"path\": 5}", &r), TOOL_EARGS);
  ASSERT_CONTAINS(r.error, "args.path: expected string, got integer");
  tool_result_release(&r);
  ASSERT_EQ_INT(call(ws, "read_file", "{\"path\": \"a\", \"bogus\": 1}", &r), TOOL_EARGS);
  ASSERT_CONTAINS(r.error, "unknown field 'bogus'");
  tool_result_release(&r);
  ASSERT_EQ_INT(call(ws, "read_file", "{\"path\": \"a\", \"limit\": 99999999999}", &r), TOOL_EARGS);
  ASSERT_CONTAINS(r.error, "args.limit: must be at most");
  tool_result_release(&r);
  ASSERT_EQ_INT(call(ws, "read_file", "[1,2]", &r), TOOL_EARGS);
  tool_result_release(&r);
  tool_ws_close(ws);
  free(d);
}

TEST(write_then_read_round_trip) {
  char *d = qct_tempdir("reg");
  tool_ws *ws = open_ws(d);
  tool_result r;
  ASSERT_EQ_INT(call(ws, "write_file", "{\"path\": \"sub/dir/a.txt\", \"content\": \"one\\ntwo\\n\"}", &r), TOOL_OK);
  ASSERT_CONTAINS(r.output, "Created sub/dir/a.txt");
  tool_result_release(&r);
  ASSERT_EQ_INT(call(ws, "read_file", "{\"path\": \"sub/dir/a.txt\"}", &r), TOOL_OK);
  ASSERT_STR_EQ(r.output, "     1\tone\n     2\ttwo\n");
  tool_result_release(&r);
  ASSERT_EQ_INT(call(ws, "read_file", "{\"path\": \"../x\"}", &r), TOOL_EESCAPE);
  tool_result_release(&r);
  tool_ws_close(ws);
  free(d);
}

QC_TEST_MAIN
