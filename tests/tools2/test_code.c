/* test_code.c — languages, tag queries, predicates, outline data, syntax errors. */
#include "tests/test.h"
#include "tools/code_internal.h"
#include "tools/tools.h"
#include "common/common.h"

/* "kind name start-end^parent" lines of every tag of a fixture file (1-based lines). */
static char *dump_tags(const char *rel, int defs_only) {
  char *path = qct_data_path(rel);
  size_t len;
  char *src = qct_read_file(path, &len);
  ASSERT_MSG(src, "cannot read %s", path);
  const tool__lang *l = tool__lang_detect(path, src, len);
  ASSERT_MSG(l, "no language for %s", path);
  tool__tags t;
  char *err = NULL;
  int rc = tool__tags_extract(l, src, len, defs_only, &t, &err);
  ASSERT_MSG(rc == 0, "%s: %s", rel, err ? err : "?");
  qc_buf b;
  qc_buf_init(&b, 1 << 20);
  for (size_t i = 0; i < t.n; i++) {
    tool__tag *g = &t.v[i];
    if (g->is_def)
      qc_buf_printf(&b, "%s %s %u-%u^%s|%s\n", g->kind, g->name, g->start_line + 1,
                    g->end_line + 1, g->parent >= 0 ? t.v[g->parent].name : "-", g->signature);
    else
      qc_buf_printf(&b, "ref.%s %s %u:%u\n", g->kind, g->name, g->name_line + 1, g->name_col + 1);
  }
  if (getenv("QCT_DUMP")) fprintf(stderr, "---- %s (%s)\n%s", rel, tool__lang_name(l), b.data);
  tool__tags_release(&t);
  free(src);
  free(path);
  return qc_buf_detach(&b, NULL);
}

TEST(all_queries_compile) {
  for (size_t i = 0; i < tool__lang_count(); i++) {
    char *err = NULL;
    const tool__lang *l = tool__lang_at(i);
    const tool__query *q = tool__lang_query(l, &err);
    ASSERT_MSG(q, "%s: %s", tool__lang_name(l), err ? err : "?");
    free(err);
  }
}

/* Every expected line must appear in the dump of the file's tags. */
static void expect_tags(const char *rel, const char *lang, const char *const *want) {
  char *path = qct_data_path(rel);
  size_t len;
  char *src = qct_read_file(path, &len);
  ASSERT(src);
  const tool__lang *l = tool__lang_detect(path, src, len);
  ASSERT(l);
  ASSERT_STR_EQ(tool__lang_name(l), lang);
  free(src);
  free(path);
  char *d = dump_tags(rel, 0);
  for (size_t i = 0; want[i]; i++) ASSERT_CONTAINS(d, want[i]);
  free(d);
}

TEST(tags_c) {
  const char *w[] = {"macro MAX_ITEMS 3-3^-|#define MAX_ITEMS 16\n", "class point 5-7^-|struct point {\n",
                     "type color 9-9^-", "variable counter 11-11^-|static int counter = 0;\n",
                     /* return type on its own line: folded into the signature */
                     "function add 13-17^-|static int add(int a, int b)\n",
                     "function main 19-23^-|int main(void) {\n", "ref.type point 20:10\n",
                     "ref.call printf 21:3\n", "ref.call add 21:18\n", NULL};
  expect_tags("tools2/lang/sample.c", "c", w);
}

TEST(tags_cpp) {
  const char *w[] = {"module geo 3-16^-", "class Shape 5-8^geo", "method area 7-7^Shape",
                     "class Circle 10-14^geo", "method area 12-12^Circle",
                     "function total 18-18^-", "ref.type Shape 10:23", "ref.call area 18:46", NULL};
  expect_tags("tools2/lang/sample.cpp", "cpp", w);
}

TEST(tags_python) {
  const char *w[] = {"constant LIMIT 3-3^-", "class Greeter 6-11^-|class Greeter:\n",
                     "method __init__ 7-8^Greeter|def __init__(self, name):\n",
                     "method greet 10-11^Greeter", "function helper 14-15^-",
                     "ref.call helper 11:16", NULL};
  expect_tags("tools2/lang/sample.py", "python", w);
}

TEST(tags_javascript) {
  /* #not-eq? drops "constructor"; #not-match? drops require() */
  const char *w[] = {"class Counter 2-11^-", "method increment 7-10^Counter",
                     "function makeCounter 13-15^-", "function double 17-17^-",
                     "ref.class Counter 14:14", "ref.call makeCounter 19:1", NULL};
  expect_tags("tools2/lang/sample.js", "javascript", w);
  char *d = dump_tags("tools2/lang/sample.js", 0);
  ASSERT(!strstr(d, "constructor"));
  ASSERT(!strstr(d, "require"));
  free(d);
}

TEST(tags_typescript) {
  const char *w[] = {"interface Named 1-3^-", "type Id 5-5^-", "enum Color 7-7^-",
                     "class Person 9-14^-", "method hello 11-13^Person",
                     "function format 16-18^-", "ref.type Named 9:25", "ref.call format 12:12", NULL};
  expect_tags("tools2/lang/sample.ts", "typescript", w);
}

TEST(tags_tsx) {
  const char *w[] = {"interface Props 3-5^-", "function Button 7-9^-", "function App 11-11^-",
                     "ref.type Props 7:31", NULL};
  expect_tags("tools2/lang/sample.tsx", "tsx", w);
}

TEST(tags_go) {
  const char *w[] = {"constant Limit 5-5^-", "type Stack 7-9^-",
                     "method Push 12-14^-|func (s *Stack) Push(v int) {\n", "function main 16-20^-",
                     "ref.type Stack 17:8", "ref.call Push 18:4", NULL};
  expect_tags("tools2/lang/sample.go", "go", w);
}

TEST(tags_rust) {
  const char *w[] = {"constant MAX 3-3^-", "class Stack 5-7^-", "impl Stack 9-17^-",
                     "method new 10-12^Stack", "method push 14-16^Stack", "interface Shape 19-21^-",
                     "function main 23-27^-", "ref.call new 24:24", "ref.call push 25:7", NULL};
  expect_tags("tools2/lang/sample.rs", "rust", w);
}

TEST(tags_java) {
  const char *w[] = {"class Sample 5-19^-", "field count 6-6^Sample", "method Sample 8-10^Sample",
                     "method twice 12-14^Sample", "method helper 16-18^Sample",
                     "interface Shape 21-23^-", "method area 22-22^Shape", "ref.call helper 13:16",
                     NULL};
  expect_tags("tools2/lang/Sample.java", "java", w);
}

TEST(tags_bash_by_shebang) {
  const char *w[] = {"variable TARGET 4-4^-", "function build 6-8^-", "function deploy_to 10-13^-",
                     "ref.call build 11:3", "ref.call deploy_to 15:1", NULL};
  expect_tags("tools2/lang/deploy", "bash", w);
}

TEST(tags_json_top_level_keys) {
  const char *w[] = {"key name 2-2^-", "key version 3-3^-", "key scripts 4-6^-|\"scripts\": {\n",
                     "key license 7-7^-", NULL};
  expect_tags("tools2/lang/package.json", "json", w);
  char *d = dump_tags("tools2/lang/package.json", 0);
  ASSERT(!strstr(d, "key test")); /* nested keys are not definitions */
  free(d);
}

static const tool__lang *L(const char *name) {
  const tool__lang *l = tool__lang_by_name(name);
  ASSERT(l);
  return l;
}

TEST(detect_by_extension_name_and_shebang) {
  ASSERT_STR_EQ(tool__lang_name(tool__lang_detect("a/b.c", NULL, 0)), "c");
  ASSERT_STR_EQ(tool__lang_name(tool__lang_detect("x.hpp", NULL, 0)), "cpp");
  ASSERT_STR_EQ(tool__lang_name(tool__lang_detect("X.CPP", NULL, 0)), "cpp");
  ASSERT_STR_EQ(tool__lang_name(tool__lang_detect("a.h", "int f(void);", 12)), "c");
  ASSERT_STR_EQ(tool__lang_name(tool__lang_detect("a.h", "namespace x {}", 14)), "cpp");
  ASSERT_STR_EQ(tool__lang_name(tool__lang_detect("m.tsx", NULL, 0)), "tsx");
  ASSERT_STR_EQ(tool__lang_name(tool__lang_detect("m.mjs", NULL, 0)), "javascript");
  ASSERT_STR_EQ(tool__lang_name(tool__lang_detect("/home/u/.bashrc", NULL, 0)), "bash");
  const char *py = "#!/usr/bin/env python3\nprint(1)\n";
  ASSERT_STR_EQ(tool__lang_name(tool__lang_detect("tool", py, strlen(py))), "python");
  const char *py2 = "#!/usr/bin/python3.11 -u\n";
  ASSERT_STR_EQ(tool__lang_name(tool__lang_detect("tool", py2, strlen(py2))), "python");
  const char *sh = "#!/bin/bash\necho hi\n";
  ASSERT_STR_EQ(tool__lang_name(tool__lang_detect("run", sh, strlen(sh))), "bash");
  const char *sh2 = "#!/bin/sh -e\n";
  ASSERT_STR_EQ(tool__lang_name(tool__lang_detect("run", sh2, strlen(sh2))), "bash");
  const char *nd = "#!/usr/bin/env -S node --harmony\n";
  ASSERT_STR_EQ(tool__lang_name(tool__lang_detect("cli", nd, strlen(nd))), "javascript");
  /* no grammar: plain text, unknown interpreter, a lone "#!" */
  ASSERT(tool__lang_detect("README", "hello", 5) == NULL);
  ASSERT(tool__lang_detect("x.txt", NULL, 0) == NULL);
  ASSERT(tool__lang_detect("run", "#!/usr/bin/perl\n", 16) == NULL);
  ASSERT(tool__lang_detect("run", "#!", 2) == NULL);
  ASSERT(tool__lang_detect(".c", NULL, 0) == NULL); /* a dot file named ".c" */
}

/* Names captured as @name by `query` over `src` that pass the predicates, joined by ','. */
static char *run_query(const char *lang, const char *query, const char *src) {
  char *err = NULL;
  tool__query *q = tool__query_compile(L(lang), query, strlen(query), &err);
  ASSERT_MSG(q, "query: %s", err ? err : "?");
  TSTree *t = tool__parse(L(lang), src, strlen(src));
  ASSERT(t);
  TSQueryCursor *c = ts_query_cursor_new();
  ts_query_cursor_exec(c, tool__query_ts(q), ts_tree_root_node(t));
  qc_buf b;
  qc_buf_init(&b, 4096);
  TSQueryMatch m;
  while (ts_query_cursor_next_match(c, &m)) {
    if (!tool__query_match_ok(q, &m, src, strlen(src))) continue;
    for (uint16_t i = 0; i < m.capture_count; i++) {
      uint32_t n;
      const char *cn = ts_query_capture_name_for_id(tool__query_ts(q), m.captures[i].index, &n);
      if (n != 4 || memcmp(cn, "name", 4) != 0) continue;
      TSNode nd = m.captures[i].node;
      if (b.len) qc_buf_putc(&b, ',');
      qc_buf_append(&b, src + ts_node_start_byte(nd), ts_node_end_byte(nd) - ts_node_start_byte(nd));
    }
  }
  ts_query_cursor_delete(c);
  ts_tree_delete(t);
  tool__query_free(q);
  return qc_buf_detach(&b, NULL);
}

TEST(predicates) {
  const char *src = "int alpha(void); int beta(void); int gamma2(void); int main(void) { alpha(); beta(); }";
  const char *fn = "(function_declarator declarator: (identifier) @name";
  char q[512], *r, *err = NULL;
#define Q(pred) (snprintf(q, sizeof q, "(%s) " pred ")", fn), q)
  r = run_query("c", Q("(#eq? @name \"beta\")"), src);
  ASSERT_STR_EQ(r, "beta"); free(r);
  r = run_query("c", Q("(#not-eq? @name \"beta\")"), src);
  ASSERT_STR_EQ(r, "alpha,gamma2,main"); free(r);
  r = run_query("c", Q("(#match? @name \"^[ab]\")"), src);
  ASSERT_STR_EQ(r, "alpha,beta"); free(r);
  r = run_query("c", Q("(#not-match? @name \"[0-9]$\")"), src);
  ASSERT_STR_EQ(r, "alpha,beta,main"); free(r);
  r = run_query("c", Q("(#any-of? @name \"main\" \"gamma2\" \"nope\")"), src);
  ASSERT_STR_EQ(r, "gamma2,main"); free(r);
  r = run_query("c", Q("(#not-any-of? @name \"main\" \"gamma2\")"), src);
  ASSERT_STR_EQ(r, "alpha,beta"); free(r);
  /* directives are ignored: the pattern still matches */
  r = run_query("c", Q("(#strip! @name \"a\") (#set-adjacent! @name @name)"), src);
  ASSERT_STR_EQ(r, "alpha,beta,gamma2,main"); free(r);
#undef Q
  /* capture against capture: a call whose callee equals the function being defined */
  const char *rec = "int f(int n) { return f(n - 1); } int g(void) { return f(1); }";
  r = run_query("c",
                "(function_definition declarator: (function_declarator declarator: (identifier) @a)"
                " body: (compound_statement (return_statement (call_expression function: (identifier) @name)))"
                " (#eq? @a @name))", rec);
  ASSERT_STR_EQ(r, "f"); free(r);
  /* quantified capture (a match holding several nodes for one capture; libtree-sitter
   * 0.20.7 rarely produces one, so the match is assembled by hand): #eq? needs every
   * node to pass, #any-eq? one of them */
  {
    const char *qs[] = {"((identifier) @arg (#eq? @arg \"x\"))", "((identifier) @arg (#any-eq? @arg \"x\"))",
                        "((identifier) @arg (#not-eq? @arg \"x\"))", "((identifier) @arg (#any-not-eq? @arg \"x\"))"};
    const int want_xy[] = {0, 1, 0, 1}, want_xx[] = {1, 1, 0, 0};
    const char *s2 = "int x; int y;";
    TSTree *t = tool__parse(L("c"), s2, strlen(s2));
    TSNode root = ts_tree_root_node(t);
    TSNode x = ts_node_named_descendant_for_byte_range(root, 4, 5);
    TSNode y = ts_node_named_descendant_for_byte_range(root, 11, 12);
    for (int i = 0; i < 4; i++) {
      tool__query *qq = tool__query_compile(L("c"), qs[i], strlen(qs[i]), &err);
      ASSERT(qq);
      TSQueryCapture caps[2] = {{x, 0}, {y, 0}};
      TSQueryMatch m = {0, 0, 2, caps};
      ASSERT_EQ_INT(tool__query_match_ok(qq, &m, s2, strlen(s2)), want_xy[i]);
      caps[1].node = x;
      ASSERT_EQ_INT(tool__query_match_ok(qq, &m, s2, strlen(s2)), want_xx[i]);
      tool__query_free(qq);
    }
    ts_tree_delete(t);
  }
  /* a bad regex or a query error is an error, not a crash */
  tool__query *bad = tool__query_compile(L("c"), "((identifier) @name (#match? @name \"[\"))", 40, &err);
  ASSERT(bad == NULL);
  ASSERT_CONTAINS(err, "regex");
  free(err);
  bad = tool__query_compile(L("c"), "(no_such_node) @x", 17, &err);
  ASSERT(bad == NULL);
  ASSERT_CONTAINS(err, "node type");
  free(err);
  /* unknown predicate: the pattern is disabled, never matched */
  r = run_query("c", "((identifier) @name (#frobnicate? @name))", src);
  ASSERT_STR_EQ(r, ""); free(r);
}

TEST(syntax_errors_listed_with_lines) {
  const char *src = "int ok(void) { return 1; }\nint bad(void) {\n  return 1 +;\n}\n";
  tool__syntax_err *e = NULL;
  int n = tool__syntax_errors(L("c"), src, strlen(src), 16, &e);
  ASSERT(n >= 1);
  ASSERT_EQ_INT(e[0].line, 3);
  ASSERT_CONTAINS(e[0].context, "return 1 +;");
  tool__syntax_errs_free(e, (size_t)n);
  n = tool__syntax_errors(L("python"), "def f():\n    return 1\n", 22, 16, &e);
  ASSERT_EQ_INT(n, 0);
  tool__syntax_errs_free(e, 0);
  /* missing token */
  const char *miss = "int f(void) { return 1 }\n";
  n = tool__syntax_errors(L("c"), miss, strlen(miss), 16, &e);
  ASSERT_EQ_INT(n, 1);
  ASSERT(e[0].missing);
  ASSERT_CONTAINS(e[0].message, "missing ';'");
  tool__syntax_errs_free(e, (size_t)n);
}

TEST(hostile_input) {
  /* binary junk, NULs, a huge identifier, deep nesting: errors or tags, never a crash */
  char junk[1024];
  for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)((i * 7919) & 0xff);
  for (size_t k = 0; k < tool__lang_count(); k++) {
    tool__tags t;
    char *err = NULL;
    tool__tags_extract(tool__lang_at(k), junk, sizeof junk, 0, &t, &err);
    tool__tags_release(&t);
    free(err);
  }
  size_t n = 10000;
  char *deep = malloc(n + 1);
  for (size_t i = 0; i < n; i++) deep[i] = i < n / 2 ? '(' : ')';
  deep[n] = 0;
  tool__tags t;
  char *err = NULL;
  tool__tags_extract(L("python"), deep, n, 0, &t, &err);
  tool__tags_release(&t);
  free(err);
  free(deep);
  /* too big */
  ASSERT_EQ_INT(tool__tags_extract(L("c"), "", TOOL__CODE_MAX_FILE + 1, 0, &t, &err), TOOL_ETOOBIG);
  tool__tags_release(&t);
  free(err);
}

QC_TEST_MAIN
