/* test_registry.c — the registry, argument validation and results: bad arguments get
 * schema errors naming the field, never crashes. */
#include "tests/tools/tt.h"

static const char *const all_kinds_schema =
    "{\"type\":\"object\",\"properties\":{"
    "\"s\":{\"type\":\"string\",\"minLength\":2,\"maxLength\":4},"
    "\"p\":{\"type\":\"string\",\"format\":\"path\"},"
    "\"i\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":10},"
    "\"n\":{\"type\":\"number\",\"minimum\":0.5},"
    "\"b\":{\"type\":\"boolean\"},"
    "\"e\":{\"type\":\"string\",\"enum\":[\"red\",\"green\"]},"
    "\"u\":{\"type\":[\"string\",\"null\"]},"
    "\"a\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":1,\"maxItems\":3},"
    "\"o\":{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"integer\"}},\"required\":[\"x\"],\"additionalProperties\":false},"
    "\"free\":{\"type\":\"object\"}"
    "},\"required\":[\"s\"],\"additionalProperties\":false}";

static int validate(const char *json, char **msg) {
  json_t *schema = json_loads(all_kinds_schema, 0, NULL);
  ASSERT(schema);
  json_t *args = json_loads(json, JSON_DECODE_ANY, NULL);
  ASSERT_MSG(args, "bad test json %s", json);
  int rc = tool__validate_json(schema, args, msg);
  json_decref(args);
  json_decref(schema);
  return rc;
}

#define EXPECT_INVALID(json, needle)                                         \
  do {                                                                       \
    char *m_ = NULL;                                                         \
    ASSERT_EQ_INT(validate(json, &m_), TOOL_EARGS);                          \
    ASSERT_CONTAINS(m_, needle);                                             \
    free(m_);                                                                \
  } while (0)

#define EXPECT_VALID(json)                                                   \
  do {                                                                       \
    char *m_ = NULL;                                                         \
    int rc_ = validate(json, &m_);                                           \
    ASSERT_MSG(rc_ == TOOL_OK, "%s: %s", json, m_ ? m_ : "");                \
    free(m_);                                                                \
  } while (0)

TEST(validator_accepts_good_arguments) {
  EXPECT_VALID("{\"s\":\"ab\"}");
  EXPECT_VALID("{\"s\":\"abcd\",\"i\":10,\"n\":1,\"b\":false,\"e\":\"red\",\"u\":null,\"a\":[1,2],"
               "\"o\":{\"x\":1},\"free\":{\"anything\":[1,{\"deep\":true}]}}");
  EXPECT_VALID("{\"s\":\"ab\",\"u\":\"text\",\"n\":0.75}");
  EXPECT_VALID("{\"s\":\"\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\"}"); /* 4 code points, 8 bytes */
}

TEST(validator_rejects_each_kind_of_mistake_naming_the_field) {
  EXPECT_INVALID("{}", "missing required field 's'");
  EXPECT_INVALID("{\"s\":1}", "args.s: expected string, got integer");
  EXPECT_INVALID("{\"s\":\"a\"}", "args.s: must be at least 2 characters");
  EXPECT_INVALID("{\"s\":\"abcde\"}", "args.s: is 5 characters long; the limit is 4");
  EXPECT_INVALID("{\"s\":\"ab\",\"i\":0}", "args.i: must be at least 1");
  EXPECT_INVALID("{\"s\":\"ab\",\"i\":11}", "args.i: must be at most 10");
  EXPECT_INVALID("{\"s\":\"ab\",\"i\":1.5}", "args.i: expected integer, got number");
  EXPECT_INVALID("{\"s\":\"ab\",\"i\":\"5\"}", "args.i: expected integer, got string");
  EXPECT_INVALID("{\"s\":\"ab\",\"n\":0.25}", "args.n: must be at least 0.5");
  EXPECT_INVALID("{\"s\":\"ab\",\"b\":\"yes\"}", "args.b: expected boolean, got string");
  EXPECT_INVALID("{\"s\":\"ab\",\"e\":\"blue\"}", "args.e: must be one of [\"red\",\"green\"]");
  EXPECT_INVALID("{\"s\":\"ab\",\"u\":3}", "args.u: expected string or null, got integer");
  EXPECT_INVALID("{\"s\":\"ab\",\"a\":[]}", "args.a: needs at least 1 items");
  EXPECT_INVALID("{\"s\":\"ab\",\"a\":[1,2,3,4]}", "args.a: has 4 items; the limit is 3");
  EXPECT_INVALID("{\"s\":\"ab\",\"a\":[1,\"x\"]}", "args.a[1]: expected integer, got string");
  EXPECT_INVALID("{\"s\":\"ab\",\"o\":{}}", "args.o: missing required field 'x'");
  EXPECT_INVALID("{\"s\":\"ab\",\"o\":{\"x\":1,\"y\":2}}", "args.o: unknown field 'y'");
  EXPECT_INVALID("{\"s\":\"ab\",\"zz\":1}", "unknown field 'zz' (allowed:");
  EXPECT_INVALID("[]", "expected an object");
  EXPECT_INVALID("\"str\"", "expected an object");
}

TEST(nul_bytes_and_overlong_paths_are_refused) {
  json_t *schema = json_loads(all_kinds_schema, 0, NULL);
  json_t *args = json_pack("{s:s, s:o}", "s", "ab", "p", json_stringn("a\0b", 3));
  char *m = NULL;
  ASSERT_EQ_INT(tool__validate_json(schema, args, &m), TOOL_EESCAPE);
  ASSERT_CONTAINS(m, "args.p: contains a NUL byte");
  free(m);
  json_decref(args);
  args = json_pack("{s:o}", "s", json_stringn("a\0b", 3));
  ASSERT_EQ_INT(tool__validate_json(schema, args, &m), TOOL_EARGS);
  ASSERT_CONTAINS(m, "args.s: contains a NUL byte");
  free(m);
  json_decref(args);
  char *longp = malloc(5001);
  memset(longp, 'a', 5000);
  longp[5000] = '\0';
  args = json_pack("{s:s, s:s}", "s", "ab", "p", longp);
  ASSERT_EQ_INT(tool__validate_json(schema, args, &m), TOOL_EESCAPE);
  ASSERT_CONTAINS(m, "args.p: path is 5000 bytes long");
  free(m);
  json_decref(args);
  free(longp);
  json_decref(schema);
}

TEST(registry_lists_every_tool_with_a_valid_schema) {
  static const char *const want[] = {"read_file", "write_file", "edit_file", "list_dir", "glob",
                                     "grep", "run_command", "run_tests", NULL};
  for (int i = 0; want[i]; i++) ASSERT_MSG(tool_find(want[i]) != NULL, "missing tool %s", want[i]);
  ASSERT(tool_find("nope") == NULL);
  ASSERT(tool_find(NULL) == NULL);
  for (size_t i = 0; i < tool_count(); i++) {
    const tool_def *t = tool_at(i);
    const json_t *s = tool_schema(t);
    ASSERT_MSG(s != NULL, "schema of %s does not parse", t->name);
    ASSERT_STR_EQ(json_string_value(json_object_get(s, "type")), "object");
    ASSERT_MSG(json_is_false(json_object_get(s, "additionalProperties")), "%s allows unknown fields", t->name);
    ASSERT(t->description && strlen(t->description) > 20);
    ASSERT(strcmp(tool_kind_name(t->kind), "other") != 0);
  }
  ASSERT(tool_at(tool_count()) == NULL);
  json_t *o = tool_openai_schemas();
  ASSERT_EQ_INT(json_array_size(o), tool_count());
  json_t *f = json_object_get(json_array_get(o, 0), "function");
  ASSERT(json_is_string(json_object_get(f, "name")));
  ASSERT(json_is_object(json_object_get(f, "parameters")));
  json_decref(o);
  ASSERT_STR_EQ(tool_strerror(12345), "unknown error");
}

TEST(bad_arguments_to_every_tool_are_errors_not_crashes) {
  char *d = qct_tempdir("reg");
  tool_ws *ws = tt_open(d);
  /* wrong types for every property of every tool, unknown fields, huge numbers */
  static const char *const bad_values[] = {"1", "-1", "1e308", "9223372036854775807", "true", "null",
                                           "[]", "{}", "\"\"", "[[[[[[[[[[]]]]]]]]]]", NULL};
  for (size_t i = 0; i < tool_count(); i++) {
    const tool_def *t = tool_at(i);
    const json_t *props = json_object_get(tool_schema(t), "properties");
    const char *key;
    const json_t *ps;
    json_object_foreach((json_t *)props, key, ps) {
      for (int v = 0; bad_values[v]; v++) {
        json_t *val = json_loads(bad_values[v], JSON_DECODE_ANY, NULL);
        json_t *args = json_object();
        json_object_set_new(args, key, val);
        /* keep run_command and run_tests quick even if a value slips through */
        if (strcmp(key, "command") != 0 && strcmp(t->name, "run_command") == 0)
          json_object_set_new(args, "command", json_string("true"));
        tool_result r;
        int rc = tool_call(ws, t->name, args, NULL, &r);
        if (rc != TOOL_OK) {
          ASSERT(!r.ok);
          ASSERT(r.error && *r.error);
        }
        tool_result_release(&r);
        json_decref(args);
      }
    }
    tool_result r;
    ASSERT_EQ_INT(tt_call(ws, t->name, "{\"no_such_field\": 1}", &r), TOOL_EARGS);
    ASSERT_CONTAINS(r.error, "no_such_field");
    tool_result_release(&r);
  }
  tool_ws_close(ws);
  free(d);
}

TEST(deeply_nested_arguments_are_refused_cleanly) {
  char *d = qct_tempdir("reg");
  tool_ws *ws = tt_open(d);
  /* 2000 levels: jansson's own depth limit is 2048 */
  size_t depth = 2000;
  char *s = malloc(depth * 2 + 64);
  size_t k = 0;
  k += (size_t)sprintf(s, "{\"path\":");
  for (size_t i = 0; i < depth; i++) s[k++] = '[';
  for (size_t i = 0; i < depth; i++) s[k++] = ']';
  s[k++] = '}';
  s[k] = '\0';
  json_t *a = json_loads(s, 0, NULL);
  ASSERT(a);
  tool_result r;
  ASSERT_EQ_INT(tool_call(ws, "read_file", a, NULL, &r), TOOL_EARGS);
  ASSERT_CONTAINS(r.error, "args.path: expected string, got array");
  tool_result_release(&r);
  json_decref(a);
  free(s);
  tool_ws_close(ws);
  free(d);
}

TEST(unknown_tool_is_an_error_listing_the_tools) {
  char *d = qct_tempdir("reg");
  tool_ws *ws = tt_open(d);
  tool_result r;
  ASSERT_EQ_INT(tt_call(ws, "nope", "{}", &r), TOOL_EUNKNOWN);
  ASSERT(!r.ok);
  ASSERT_CONTAINS(r.error, "read_file");
  ASSERT(r.output == NULL);
  tool_result_release(&r);
  /* NULL arguments mean {} */
  ASSERT_EQ_INT(tool_call(ws, "list_dir", NULL, NULL, &r), TOOL_OK);
  ASSERT(r.ok);
  tool_result_release(&r);
  tool_ws_close(ws);
  free(d);
}

TEST(cancelled_before_start) {
  char *d = qct_tempdir("reg");
  tool_ws *ws = tt_open(d);
  atomic_int cancel = 1;
  tool_call_opts o = {&cancel, NULL, NULL};
  tool_result r;
  ASSERT_EQ_INT(tool_call(ws, "list_dir", NULL, &o, &r), TOOL_ECANCELLED);
  tool_result_release(&r);
  tool_ws_close(ws);
  free(d);
}

TEST(result_to_json_has_exactly_the_four_keys) {
  tool_result r = {1, strdup("out"), NULL, NULL};
  json_t *j = tool_result_to_json(&r);
  ASSERT_EQ_INT(json_object_size(j), 4);
  ASSERT(json_is_true(json_object_get(j, "ok")));
  ASSERT_STR_EQ(json_string_value(json_object_get(j, "output")), "out");
  ASSERT_STR_EQ(json_string_value(json_object_get(j, "error")), "");
  ASSERT(json_is_object(json_object_get(j, "data")));
  json_decref(j);
  tool_result_release(&r);
  ASSERT(r.output == NULL);
}

TEST(workspace_open_errors) {
  tool_ws *ws = NULL;
  char *err = NULL;
  ASSERT_EQ_INT(tool_ws_open("/nonexistent/dir/qct", NULL, &ws, &err), TOOL_ENOENT);
  ASSERT_CONTAINS(err, "/nonexistent/dir/qct");
  free(err);
  ASSERT_EQ_INT(tool_ws_open("/", NULL, &ws, &err), TOOL_EDENIED);
  free(err);
  ASSERT_EQ_INT(tool_ws_open("", NULL, &ws, &err), TOOL_EARGS);
  free(err);
  char *d = qct_tempdir("reg");
  tt_write(d, "f", "x");
  char *f = tt_path(d, "f");
  ASSERT(tool_ws_open(f, NULL, &ws, &err) != TOOL_OK);
  free(err);
  free(f);
  free(d);
}

QC_TEST_MAIN
