/* test_toolcall_parser.c — the streaming tool-call parser: a corpus of well-formed,
 * malformed, truncated and tricky replies; every split point gives the same result as the
 * whole text; value conversion by schema; a fuzz loop over random and mutated input. */
#include "agent/agent.h"
#include "common/common.h"
#include "agent/toolcall_parser.h"
#include "tests/test.h"

static const char k_tools_json[] =
    "[{\"type\":\"function\",\"function\":{\"name\":\"read_file\",\"description\":\"Read a file\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"},"
    "\"offset\":{\"type\":\"integer\"},\"limit\":{\"type\":\"integer\"}},\"required\":[\"path\"]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"write_file\",\"parameters\":{\"type\":\"object\","
    "\"properties\":{\"path\":{\"type\":\"string\"},\"content\":{\"type\":\"string\"}},"
    "\"required\":[\"path\",\"content\"]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"edit_file\",\"parameters\":{\"type\":\"object\","
    "\"properties\":{\"path\":{\"type\":\"string\"},\"old_string\":{\"type\":\"string\"},"
    "\"new_string\":{\"type\":\"string\"},\"replace_all\":{\"type\":\"boolean\"}},"
    "\"required\":[\"path\",\"old_string\",\"new_string\"]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"run_command\",\"parameters\":{\"type\":\"object\","
    "\"properties\":{\"command\":{\"type\":\"string\"},\"timeout\":{\"type\":\"number\"}},"
    "\"required\":[\"command\"]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"search_code\",\"parameters\":{\"type\":\"object\","
    "\"properties\":{\"query\":{\"type\":\"string\"},\"limits\":{\"type\":\"object\"},"
    "\"globs\":{\"type\":\"array\"},\"priority\":{\"type\":[\"integer\",\"null\"]},"
    "\"label\":{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"null\"}]},\"note\":{\"type\":\"string\"}},"
    "\"required\":[\"query\"]}}}]";

static json_t *g_tools;

/* The outcome of parsing one reply, in a comparable form. */
typedef struct outcome {
  qc_buf text;
  qc_buf calls; /* one line per call: name|args-json|error|flags */
  int n_calls;
  size_t max_raw;
} outcome;

static void on_text(void *u, const char *s, size_t n) {
  outcome *o = u;
  qc_buf_append(&o->text, s, n);
}

static void on_call(void *u, agent__call *c) {
  outcome *o = u;
  char *args = json_dumps(c->args, JSON_COMPACT | JSON_PRESERVE_ORDER);
  qc_buf_printf(&o->calls, "%s|%s|%s|%u\n", c->name, args ? args : "?", c->error ? c->error : "", c->flags);
  if (c->raw && strlen(c->raw) > o->max_raw) o->max_raw = strlen(c->raw);
  free(args);
  o->n_calls++;
  agent__call_free(c);
}

static void outcome_init(outcome *o) {
  qc_buf_init(&o->text, 0);
  qc_buf_init(&o->calls, 0);
  o->n_calls = 0;
  o->max_raw = 0;
}

static void outcome_release(outcome *o) {
  qc_buf_release(&o->text);
  qc_buf_release(&o->calls);
}

static unsigned g_seed = 12345;
static unsigned rnd(void) {
  g_seed = g_seed * 1103515245u + 12345u;
  return (g_seed >> 16) & 0x7fff;
}

/* split: 0 whole, 1 byte by byte, 2 random pieces, 3 two pieces at `at` */
static void parse(const char *s, size_t n, int split, size_t at, int truncated, outcome *o) {
  outcome_init(o);
  agent__tcp_cbs cbs = {on_text, on_call, o};
  agent__tcp *p = agent__tcp_new(g_tools, &cbs);
  ASSERT(p);
  if (split == 0) {
    ASSERT_EQ_INT(agent__tcp_feed(p, s, n), AGENT_OK);
  } else if (split == 1) {
    for (size_t i = 0; i < n; i++) ASSERT_EQ_INT(agent__tcp_feed(p, s + i, 1), AGENT_OK);
  } else if (split == 2) {
    for (size_t i = 0; i < n;) {
      size_t k = 1 + rnd() % 17;
      if (k > n - i) k = n - i;
      ASSERT_EQ_INT(agent__tcp_feed(p, s + i, k), AGENT_OK);
      i += k;
    }
  } else {
    ASSERT_EQ_INT(agent__tcp_feed(p, s, at), AGENT_OK);
    ASSERT_EQ_INT(agent__tcp_feed(p, s + at, n - at), AGENT_OK);
  }
  ASSERT_EQ_INT(agent__tcp_finish(p, truncated), AGENT_OK);
  agent__tcp_free(p);
}

static void same(const outcome *a, const outcome *b, const char *what, const char *input) {
  if (a->text.len != b->text.len || memcmp(a->text.data, b->text.data, a->text.len) != 0 ||
      strcmp(a->calls.data, b->calls.data) != 0)
    QCT_FAIL("%s differs for input:\n%s\n--- whole: text=[%s]\n%s--- split: text=[%s]\n%s", what, input,
             a->text.data, a->calls.data, b->text.data, b->calls.data);
}

/* Parse whole, byte by byte, at every split point and in random pieces: all must agree. */
static void parse_checked(const char *s, int truncated, outcome *o) {
  size_t n = strlen(s);
  parse(s, n, 0, 0, truncated, o);
  outcome x;
  parse(s, n, 1, 0, truncated, &x);
  same(o, &x, "byte-by-byte", s);
  outcome_release(&x);
  for (size_t at = 0; at <= n; at++) {
    parse(s, n, 3, at, truncated, &x);
    same(o, &x, "two-piece split", s);
    outcome_release(&x);
  }
  for (int r = 0; r < 5; r++) {
    parse(s, n, 2, 0, truncated, &x);
    same(o, &x, "random split", s);
    outcome_release(&x);
  }
}

/* Check: text and the call lines. */
static void expect(const char *input, int truncated, const char *want_text, const char *want_calls) {
  outcome o;
  parse_checked(input, truncated, &o);
  ASSERT_STR_EQ(o.text.data, want_text);
  ASSERT_STR_EQ(o.calls.data, want_calls);
  outcome_release(&o);
}

static void setup(void) {
  if (!g_tools) g_tools = json_loads(k_tools_json, 0, NULL);
  ASSERT(g_tools);
}

TEST(prose_only) {
  setup();
  expect("Hello! The answer is 42 < 43 and a <b>tag</b>.", 0, "Hello! The answer is 42 < 43 and a <b>tag</b>.", "");
  expect("", 0, "", "");
  expect("ends with a partial tag <tool_c", 0, "ends with a partial tag <tool_c", "");
  expect("mentions <function=name> inline and <function=", 0, "mentions <function=name> inline and <function=", "");
}

TEST(well_formed_call_with_prose) {
  setup();
  expect("I'll read it.\n\n<tool_call>\n<function=read_file>\n<parameter=path>\nsrc/main.c\n</parameter>\n"
         "</function>\n</tool_call>",
         0, "I'll read it.\n\n", "read_file|{\"path\":\"src/main.c\"}||0\n");
}

TEST(several_calls_and_types) {
  setup();
  expect("<tool_call>\n<function=read_file>\n<parameter=path>\na.c\n</parameter>\n<parameter=offset>\n10\n"
         "</parameter>\n<parameter=limit>\n 5 \n</parameter>\n</function>\n</tool_call>\n"
         "<tool_call>\n<function=edit_file>\n<parameter=path>\nb.c\n</parameter>\n<parameter=old_string>\n"
         "  int x;\n\n</parameter>\n<parameter=new_string>\n  long x;\n</parameter>\n<parameter=replace_all>\n"
         "True\n</parameter>\n</function>\n</tool_call>\n"
         "<tool_call>\n<function=run_command>\n<parameter=command>\nmake test\n</parameter>\n"
         "<parameter=timeout>\n2.5\n</parameter>\n</function>\n</tool_call>",
         0, "",
         "read_file|{\"path\":\"a.c\",\"offset\":10,\"limit\":5}||0\n"
         "edit_file|{\"path\":\"b.c\",\"old_string\":\"  int x;\\n\",\"new_string\":\"  long x;\",\"replace_all\":true}||0\n"
         "run_command|{\"command\":\"make test\",\"timeout\":2.5}||0\n");
}

TEST(object_array_and_null_values) {
  setup();
  expect("<tool_call>\n<function=search_code>\n<parameter=query>\nnull\n</parameter>\n<parameter=limits>\n"
         "{\"max\": 5, \"deep\": {\"a\": [1, 2]}}\n</parameter>\n<parameter=globs>\n['*.c', \"*.h\"]\n</parameter>\n"
         "<parameter=priority>\nNone\n</parameter>\n<parameter=label>\nnull\n</parameter>\n<parameter=note>\nNone\n"
         "</parameter>\n</function>\n</tool_call>",
         0, "",
         "search_code|{\"query\":\"null\",\"limits\":{\"max\":5,\"deep\":{\"a\":[1,2]}},\"globs\":[\"*.c\",\"*.h\"],"
         "\"priority\":null,\"label\":null,\"note\":\"None\"}||0\n");
  /* a Python dict (the July template's rendering) and a double-encoded JSON string */
  expect("<tool_call>\n<function=search_code>\n<parameter=query>\nq\n</parameter>\n<parameter=limits>\n"
         "{'a': True, 'b': None, 'c': (1, 2.5)}\n</parameter>\n<parameter=globs>\n\"[\\\"x\\\"]\"\n</parameter>\n"
         "</function>\n</tool_call>",
         0, "", "search_code|{\"query\":\"q\",\"limits\":{\"a\":true,\"b\":null,\"c\":[1,2.5]},\"globs\":[\"x\"]}||0\n");
}

TEST(missing_closing_tags_at_end_of_stream) {
  setup();
  /* no </tool_call> */
  expect("<tool_call>\n<function=read_file>\n<parameter=path>\na.c\n</parameter>\n</function>\n", 0, "",
         "read_file|{\"path\":\"a.c\"}||0\n");
  /* no </function></tool_call> */
  expect("<tool_call>\n<function=read_file>\n<parameter=path>\na.c\n</parameter>\n", 0, "",
         "read_file|{\"path\":\"a.c\"}||1\n");
  /* no </parameter> either */
  expect("<tool_call>\n<function=read_file>\n<parameter=path>\na.c\n", 0, "", "read_file|{\"path\":\"a.c\"}||1\n");
  /* no </parameter> before </function></tool_call> */
  expect("<tool_call>\n<function=read_file>\n<parameter=path>\na.c\n</function>\n</tool_call>", 0, "",
         "read_file|{\"path\":\"a.c\"}||0\n");
  /* a forgotten </parameter> before the next parameter */
  expect("<tool_call>\n<function=write_file>\n<parameter=path>\nx.txt\n<parameter=content>\nhello\n</parameter>\n"
         "</function>\n</tool_call>",
         0, "", "write_file|{\"path\":\"x.txt\",\"content\":\"hello\"}||0\n");
  /* the next call starts without the previous one's closing tags */
  expect("<tool_call>\n<function=read_file>\n<parameter=path>\na\n</parameter>\n<tool_call>\n<function=read_file>\n"
         "<parameter=path>\nb\n</parameter>\n</function>\n</tool_call>",
         0, "", "read_file|{\"path\":\"a\"}||0\nread_file|{\"path\":\"b\"}||0\n");
}

TEST(truncated_generation_is_not_run) {
  setup();
  outcome o;
  parse_checked("Writing.\n<tool_call>\n<function=write_file>\n<parameter=path>\nbig.c\n</parameter>\n"
                "<parameter=content>\nint main(void) {\n  return",
                1, &o);
  ASSERT_STR_EQ(o.text.data, "Writing.\n");
  ASSERT_EQ_INT(o.n_calls, 1);
  ASSERT_CONTAINS(o.calls.data, "cut off");
  outcome_release(&o);
  /* a complete call followed by the cut: the complete one is fine */
  parse_checked("<tool_call>\n<function=read_file>\n<parameter=path>\na\n</parameter>\n</function>\n</tool_call>\nMore te",
                1, &o);
  ASSERT_STR_EQ(o.calls.data, "read_file|{\"path\":\"a\"}||0\n");
  ASSERT_STR_EQ(o.text.data, "\nMore te");
  outcome_release(&o);
}

/* A reply cut by the token limit at ANY point after `<tool_call>` began: the call is never
 * dropped and never run half-written — it comes out as one call with an error the model
 * reads (complete ones, cut after </function>, are fine). Before `<tool_call>` is whole,
 * what was written is prose. */
TEST(a_reply_cut_anywhere_inside_a_call_is_reported) {
  setup();
  const char *full = "Writing.\n<tool_call>\n<function=write_file>\n<parameter=path>\nx.txt\n</parameter>\n"
                     "<parameter=content>\nhi\n</parameter>\n</function>\n</tool_call>";
  size_t open_end = strlen("Writing.\n<tool_call>");
  size_t func_end = strstr(full, "</function>") - full + strlen("</function>");
  for (size_t k = open_end; k <= strlen(full); k++) {
    char *cut = qc_strndup(full, k);
    outcome o;
    parse_checked(cut, 1, &o);
    ASSERT_MSG(o.n_calls == 1, "cut at %zu (%s): %d calls, text [%s]", k, cut + open_end, o.n_calls, o.text.data);
    if (k < func_end) {
      ASSERT_MSG(strstr(o.calls.data, "cut off") != NULL, "cut at %zu (%s): %s", k, cut + open_end, o.calls.data);
    } else {
      ASSERT_STR_EQ(o.calls.data, "write_file|{\"path\":\"x.txt\",\"content\":\"hi\"}||0\n");
    }
    ASSERT_MSG(!strcmp(o.text.data, "Writing.\n"), "cut at %zu (%s): text [%s]", k, cut + open_end, o.text.data);
    outcome_release(&o);
    free(cut);
  }
  /* the JSON style too, even when the JSON looks whole but the block never closed */
  expect("<tool_call>\n{\"name\": \"read_file\", \"arguments\": {\"path\": \"a", 1, "",
         "|{}|your reply was cut off (token limit) inside this tool call, so it was not run; make the call again, "
         "smaller if needed (for a big file, write it in parts)|1\n");
  outcome o;
  parse_checked("<tool_call>\n{\"name\": \"read_file\", \"arguments\": {\"path\": \"a.c\"}}\n", 1, &o);
  ASSERT_EQ_INT(o.n_calls, 1);
  ASSERT_CONTAINS(o.calls.data, "cut off");
  outcome_release(&o);
  /* not cut (the stream just ended): the same JSON call is accepted */
  expect("<tool_call>\n{\"name\": \"read_file\", \"arguments\": {\"path\": \"a.c\"}}\n", 0, "",
         "read_file|{\"path\":\"a.c\"}||0\n");
}

TEST(bare_function_without_tool_call) {
  setup();
  expect("Reading.\n<function=read_file>\n<parameter=path>\na.c\n</parameter>\n</function>\nthen more", 0,
         "Reading.\nthen more", "read_file|{\"path\":\"a.c\"}||0\n");
  expect("<function=read_file>\n<parameter=path>\na.c\n</parameter>\n</function>\n</tool_call>", 0, "",
         "read_file|{\"path\":\"a.c\"}||0\n");
}

TEST(values_with_markup_inside) {
  setup();
  /* </parameter> followed by prose stays in the value */
  expect("<tool_call>\n<function=write_file>\n<parameter=path>\ndoc.md\n</parameter>\n<parameter=content>\n"
         "Close values with </parameter> and functions with </function> tags.\n</parameter>\n</function>\n</tool_call>",
         0, "",
         "write_file|{\"path\":\"doc.md\",\"content\":\"Close values with </parameter> and functions with </function> tags.\"}||0\n");
  /* a whole example tool call inside a value (nested literal, balanced) */
  expect("<tool_call>\n<function=write_file>\n<parameter=path>\nex.txt\n</parameter>\n<parameter=content>\n"
         "<tool_call>\n<function=read_file>\n<parameter=path>\nx\n</parameter>\n</function>\n</tool_call>\n"
         "</parameter>\n</function>\n</tool_call>\nDone.",
         0, "\nDone.",
         "write_file|{\"path\":\"ex.txt\",\"content\":\"<tool_call>\\n<function=read_file>\\n<parameter=path>\\nx\\n"
         "</parameter>\\n</function>\\n</tool_call>\"}||0\n");
  /* </parameter> followed by an unknown parameter name is text */
  expect("<tool_call>\n<function=read_file>\n<parameter=path>\na</parameter>\n<parameter=nosuch>\n</parameter>\n"
         "</function>\n</tool_call>",
         0, "", "read_file|{\"path\":\"a</parameter>\\n<parameter=nosuch>\\n</parameter>\"}||0\n");
}

TEST(non_ascii_and_crlf) {
  setup();
  expect("Je lis le fichier « données ».\n<tool_call>\n<function=write_file>\n<parameter=path>\nnotes/日本語.txt\n"
         "</parameter>\n<parameter=content>\nπ ≈ 3.14159 🙂\r\n</parameter>\n</function>\n</tool_call>",
         0, "Je lis le fichier « données ».\n",
         "write_file|{\"path\":\"notes/日本語.txt\",\"content\":\"π ≈ 3.14159 🙂\\r\"}||0\n");
}

TEST(errors_the_model_sees) {
  setup();
  outcome o;
  parse_checked("<tool_call>\n<function=delete_everything>\n<parameter=path>\n/\n</parameter>\n</function>\n</tool_call>", 0, &o);
  ASSERT_CONTAINS(o.calls.data, "unknown tool 'delete_everything'");
  ASSERT_CONTAINS(o.calls.data, "read_file, write_file");
  outcome_release(&o);
  parse_checked("<tool_call>\n<function=read_file>\n<parameter=file>\na\n</parameter>\n</function>\n</tool_call>", 0, &o);
  ASSERT_CONTAINS(o.calls.data, "unknown parameter 'file'");
  ASSERT_CONTAINS(o.calls.data, "missing required parameter 'path'");
  outcome_release(&o);
  parse_checked("<tool_call>\n<function=read_file>\n<parameter=path>\na\n</parameter>\n<parameter=limit>\nten\n"
                "</parameter>\n<parameter=path>\nb\n</parameter>\n</function>\n</tool_call>", 0, &o);
  ASSERT_CONTAINS(o.calls.data, "must be an integer, got 'ten'");
  ASSERT_CONTAINS(o.calls.data, "given twice");
  outcome_release(&o);
  parse_checked("<tool_call>\n<function=edit_file>\n<parameter=path>\na\n</parameter>\n<parameter=old_string>\nx\n"
                "</parameter>\n<parameter=new_string>\ny\n</parameter>\n<parameter=replace_all>\nyes\n</parameter>\n"
                "</function>\n</tool_call>", 0, &o);
  ASSERT_CONTAINS(o.calls.data, "must be true or false");
  outcome_release(&o);
  /* malformed blocks are reported, never dropped */
  parse_checked("<tool_call>\n</tool_call>", 0, &o);
  ASSERT_EQ_INT(o.n_calls, 1);
  ASSERT_CONTAINS(o.calls.data, "empty <tool_call>");
  outcome_release(&o);
  parse_checked("<tool_call>\nread_file(path='a')\n</tool_call>\nok", 0, &o);
  ASSERT_EQ_INT(o.n_calls, 1);
  ASSERT_CONTAINS(o.calls.data, "malformed tool call");
  ASSERT_STR_EQ(o.text.data, "\nok");
  outcome_release(&o);
  parse_checked("<tool_call>\n<function=read file>\n<parameter=path>\na\n</parameter>\n</function>\n</tool_call>", 0, &o);
  ASSERT_EQ_INT(o.n_calls, 1);
  ASSERT_CONTAINS(o.calls.data, "malformed function name");
  outcome_release(&o);
  parse_checked("<tool_call>\n<function=read_file>\n<parameter=li mit>\n3\n</parameter>\n<parameter=path>\na\n"
                "</parameter>\n</function>\n</tool_call>", 0, &o);
  ASSERT_EQ_INT(o.n_calls, 1);
  ASSERT_CONTAINS(o.calls.data, "malformed name");
  ASSERT_CONTAINS(o.calls.data, "{\"path\":\"a\"}");
  outcome_release(&o);
  parse_checked("<tool_call>\n", 0, &o);
  ASSERT_EQ_INT(o.n_calls, 1);
  outcome_release(&o);
}

TEST(json_call_inside_tool_call) {
  setup();
  expect("<tool_call>\n{\"name\": \"read_file\", \"arguments\": {\"path\": \"a.c\", \"limit\": \"3\"}}\n</tool_call>", 0, "",
         "read_file|{\"path\":\"a.c\",\"limit\":3}||0\n");
  expect("<tool_call>\n{\"name\": \"read_file\", \"arguments\": \"{\\\"path\\\": \\\"b\\\"}\"}\n</tool_call>", 0, "",
         "read_file|{\"path\":\"b\"}||0\n");
}

TEST(native_calls_are_checked_too) {
  setup();
  agent__call *c = agent__call_from_native(g_tools, "id1", "read_file", "{\"path\": \"a\", \"offset\": \"7\"}");
  ASSERT(c && !c->error);
  ASSERT_EQ_INT(json_integer_value(json_object_get(c->args, "offset")), 7);
  ASSERT_STR_EQ(c->id, "id1");
  agent__call_free(c);
  c = agent__call_from_native(g_tools, "id2", "read_file", "{not json");
  ASSERT(c && c->error);
  ASSERT_CONTAINS(c->error, "not a JSON object");
  agent__call_free(c);
  c = agent__call_from_native(g_tools, NULL, "nope", "");
  ASSERT(c && c->error);
  agent__call_free(c);
}

TEST(huge_values_and_the_size_limit) {
  setup();
  /* 600 KB of content: accepted */
  size_t big = 600 * 1024;
  qc_buf in;
  qc_buf_init(&in, 0);
  qc_buf_puts(&in, "<tool_call>\n<function=write_file>\n<parameter=path>\nbig.txt\n</parameter>\n<parameter=content>\n");
  for (size_t i = 0; i < big; i++) qc_buf_putc(&in, (char)('a' + i % 26 + (i % 61 == 0 ? -50 : 0)));
  qc_buf_puts(&in, "\n</parameter>\n</function>\n</tool_call>\nok");
  outcome o, x;
  parse(in.data, in.len, 0, 0, 0, &o);
  parse(in.data, in.len, 2, 0, 0, &x);
  same(&o, &x, "random split", "(600 KB call)");
  ASSERT_EQ_INT(o.n_calls, 1);
  ASSERT(strstr(o.calls.data, "||0\n") != NULL);
  ASSERT(o.max_raw <= AGENT__TCP_RAW_EXCERPT + 64);
  ASSERT_STR_EQ(o.text.data, "\nok");
  outcome_release(&o);
  outcome_release(&x);
  qc_buf_reset(&in);
  /* 2 MB: refused with an error, the rest of the stream is still read */
  qc_buf_puts(&in, "<tool_call>\n<function=write_file>\n<parameter=path>\nbig.txt\n</parameter>\n<parameter=content>\n");
  for (size_t i = 0; i < 2u << 20; i++) qc_buf_putc(&in, 'x');
  qc_buf_puts(&in, "\n</parameter>\n</function>\n</tool_call>\nafter");
  parse(in.data, in.len, 0, 0, 0, &o);
  ASSERT_EQ_INT(o.n_calls, 1);
  ASSERT_CONTAINS(o.calls.data, "larger than");
  ASSERT_STR_EQ(o.text.data, "\nafter");
  outcome_release(&o);
  qc_buf_release(&in);
}

TEST(value_conversion_rules) {
  struct { const char *schema, *raw, *want; } ok[] = {
      {"{\"type\":\"integer\"}", "42", "42"},
      {"{\"type\":\"integer\"}", " -7 ", "-7"},
      {"{\"type\":\"integer\"}", "4.0", "4"},
      {"{\"type\":\"number\"}", "1e3", "1000"},
      {"{\"type\":\"number\"}", "0.5", "0.5"},
      {"{\"type\":\"boolean\"}", "FALSE", "false"},
      {"{\"type\":\"string\"}", "  spaced  ", "\"  spaced  \""},
      {"{\"type\":\"string\"}", "null", "\"null\""},
      {"{\"type\":[\"string\",\"null\"]}", "None", "null"},
      {"{\"type\":\"integer\"}", "null", "null"},
      {"{\"type\":\"array\"}", "[1, \"a\"]", "[1,\"a\"]"},
      {"{\"type\":\"object\"}", "{'k': [1, 2.0, 'x\\'y']}", "{\"k\":[1,2.0,\"x'y\"]}"},
      {"{}", "free text", "\"free text\""},
      {"{\"type\":\"weird\"}", "[1]", "[1]"},
  };
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
    json_t *schema = json_loads(ok[i].schema, 0, NULL);
    char *err = NULL;
    json_t *v = agent__convert_value(ok[i].raw, strlen(ok[i].raw), schema, &err);
    ASSERT_MSG(v, "%s %s: %s", ok[i].schema, ok[i].raw, err ? err : "?");
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    ASSERT_STR_EQ(s, ok[i].want);
    free(s);
    json_decref(v);
    json_decref(schema);
  }
  struct { const char *schema, *raw; } bad[] = {
      {"{\"type\":\"integer\"}", "12abc"}, {"{\"type\":\"integer\"}", ""}, {"{\"type\":\"number\"}", "inf"},
      {"{\"type\":\"boolean\"}", "1"}, {"{\"type\":\"object\"}", "[1]"}, {"{\"type\":\"array\"}", "{oops"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    json_t *schema = json_loads(bad[i].schema, 0, NULL);
    char *err = NULL;
    json_t *v = agent__convert_value(bad[i].raw, strlen(bad[i].raw), schema, &err);
    ASSERT_MSG(!v && err, "%s %s converted", bad[i].schema, bad[i].raw);
    free(err);
    json_decref(schema);
  }
  ASSERT(agent__py_literal("[1, 2", 5) == NULL);
  json_t *lv = agent__py_literal("'\\x41\\u00e9'", 12);
  ASSERT(json_is_string(lv));
  ASSERT_STR_EQ(json_string_value(lv), "A\xc3\xa9");
  json_decref(lv);
}

/* ---- fuzz ---------------------------------------------------------------------------- */

static const char *const k_frags[] = {
    "<tool_call>", "</tool_call>", "<function=read_file>", "<function=write_file>", "<function=",
    "<function=nope>", "<parameter=path>", "<parameter=content>", "<parameter=limit>", "<parameter=",
    "</parameter>", "</function>", "\n", "\n", " ", "x", "src/a.c", "42", "é", "🙂", "<", ">", "=",
    "{", "}", "[1, 2]", "{\"name\": \"read_file\", \"arguments\": {\"path\": \"a\"}}", "null", "True",
    "</tool_", "<tool", "</param", "\r\n", "hello world", "\xff", "\xc3",
};

static void check_bounds(const char *in, size_t n, const outcome *o) {
  ASSERT_MSG(o->text.len <= n, "more text out than in");
  ASSERT(o->n_calls <= AGENT__TCP_MAX_CALLS + (int)n);
  ASSERT(o->max_raw <= AGENT__TCP_RAW_EXCERPT + 64);
  (void)in;
}

TEST(fuzz_random_and_mutated_inputs) {
  setup();
  const char *seeds[] = {
      "Let me look.\n<tool_call>\n<function=read_file>\n<parameter=path>\na.c\n</parameter>\n</function>\n</tool_call>",
      "<tool_call>\n<function=write_file>\n<parameter=path>\nb\n</parameter>\n<parameter=content>\nx</parameter>y\n"
      "</parameter>\n</function>\n</tool_call>\nDone",
      "<function=read_file>\n<parameter=path>\nq\n</parameter>\n</function>",
  };
  qc_buf in;
  qc_buf_init(&in, 0);
  int iters = getenv("QCT_FUZZ_ITERS") ? atoi(getenv("QCT_FUZZ_ITERS")) : 3000;
  for (int it = 0; it < iters; it++) {
    qc_buf_reset(&in);
    if (it % 2 == 0) {
      int nf = (int)(rnd() % 40);
      for (int k = 0; k < nf; k++) qc_buf_puts(&in, k_frags[rnd() % (sizeof k_frags / sizeof *k_frags)]);
    } else {
      qc_buf_puts(&in, seeds[rnd() % 3]);
      int muts = 1 + (int)(rnd() % 4);
      for (int m = 0; m < muts && in.len; m++) {
        size_t a = rnd() % in.len, b = a + rnd() % (in.len - a + 1);
        int op = (int)(rnd() % 3);
        if (op == 0) { /* delete */
          memmove(in.data + a, in.data + b, in.len - b);
          qc_buf_truncate(&in, in.len - (b - a));
        } else if (op == 1) { /* insert a fragment */
          const char *f = k_frags[rnd() % (sizeof k_frags / sizeof *k_frags)];
          char *tail = strdup(in.data + a);
          qc_buf_truncate(&in, a);
          qc_buf_puts(&in, f);
          qc_buf_puts(&in, tail);
          free(tail);
        } else { /* flip a byte */
          in.data[a] = (char)(rnd() & 0xff);
          if (!in.data[a]) in.data[a] = '<';
        }
      }
    }
    outcome w, s;
    int trunc = (int)(rnd() % 2);
    parse(in.data, in.len, 0, 0, trunc, &w);
    parse(in.data, in.len, 2, 0, trunc, &s);
    check_bounds(in.data, in.len, &w);
    same(&w, &s, "fuzz split", in.data);
    outcome_release(&w);
    outcome_release(&s);
  }
  qc_buf_release(&in);
}

QC_TEST_MAIN
