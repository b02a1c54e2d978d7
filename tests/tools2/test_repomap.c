/* test_repomap.c — ranking, token budget, focus files and incremental updates. */
#include "tests/test.h"
#include "tools/tools.h"
#include "common/common.h"

#include <sys/time.h>

static void wr(const char *root, const char *rel, const char *content) {
  char *p = qc_path_join(root, rel);
  ASSERT(qct_write_file(p, content) == 0);
  free(p);
}

/* core.c's parse_config_value is used by four files; util.c's helper_thing by one;
 * lonely.c's function by nobody. */
static char *fixture(void) {
  char *d = qct_tempdir("rmap");
  wr(d, "src/core.c", "#include \"core.h\"\n\nint parse_config_value(const char *s) {\n  return s[0];\n}\n\n"
                      "int core_misc(void) { return 0; }\n");
  wr(d, "src/util.c", "int helper_thing(int x) {\n  return x + 1;\n}\n");
  wr(d, "src/lonely.c", "static int unused_function(void) { return 7; }\n");
  wr(d, "src/a.c", "int a(void) { return parse_config_value(\"a\") + parse_config_value(\"b\"); }\n");
  wr(d, "src/b.c", "int b(void) { return parse_config_value(\"b\"); }\n");
  wr(d, "src/c.c", "int c(void) { return parse_config_value(\"c\"); }\n");
  wr(d, "src/d.py", "def d():\n    return parse_config_value('d') + helper_thing(1)\n");
  wr(d, "src/e.c", "int e(void) { return helper_thing(2) + helper_thing(3) + helper_thing(4); }\n");
  wr(d, "README.md", "# not parsed\n");
  return d;
}

static size_t words(void *user, const char *t, size_t n) {
  (*(int *)user)++;
  size_t w = 0;
  int in = 0;
  for (size_t i = 0; i < n; i++) {
    int sp = t[i] == ' ' || t[i] == '\n';
    if (!sp && !in) w++;
    in = !sp;
  }
  return w;
}

TEST(most_referenced_definition_first) {
  char *d = fixture();
  tool_repomap *m;
  char *err = NULL;
  ASSERT_EQ_INT(tool_repomap_create(d, &m, &err), TOOL_OK);
  tool_repomap_stats st;
  tool_repomap_get_stats(m, &st);
  ASSERT_EQ_INT(st.files, 8);
  ASSERT_EQ_INT(st.parsed_last, 8);
  char *map = tool_repomap_render(m, NULL, 0, 4096, NULL, NULL);
  ASSERT(map);
  if (getenv("QCT_DUMP")) fprintf(stderr, "%s", map);
  /* the first file is core.c and its first line is the most used definition */
  ASSERT(strncmp(map, "src/core.c:\n  3: int parse_config_value(const char *s) {\n", 56) == 0);
  ASSERT(strstr(map, "helper_thing") < strstr(map, "unused_function"));
  ASSERT(!strstr(map, "README"));
  free(map);
  tool_repomap_free(m);
  free(d);
}

TEST(budget_respected) {
  char *d = fixture();
  /* many unreferenced definitions, so the budget (not the count) limits the map and the
   * top-k selection runs */
  qc_buf many;
  qc_buf_init(&many, 1 << 20);
  for (int i = 0; i < 300; i++) qc_buf_printf(&many, "int filler_%d(void) { return %d; }\n", i, i);
  wr(d, "src/many.c", many.data);
  qc_buf_release(&many);
  tool_repomap *m;
  char *err = NULL;
  ASSERT_EQ_INT(tool_repomap_create(d, &m, &err), TOOL_OK);
  for (size_t budget = 1; budget < 80; budget += 7) {
    int calls = 0;
    char *map = tool_repomap_render(m, NULL, 0, budget, words, &calls);
    ASSERT(map);
    ASSERT(calls > 0);
    int dummy = 0;
    ASSERT_MSG(words(&dummy, map, strlen(map)) <= budget, "budget %zu: %s", budget, map);
    free(map);
  }
  /* default counter (chars/4): a tiny budget gives a tiny map, a big one everything */
  char *small = tool_repomap_render(m, NULL, 0, 20, NULL, NULL);
  ASSERT((strlen(small) + 3) / 4 <= 20);
  ASSERT(strncmp(small, "src/core.c:\n  3: int parse_config_value(const char *s) {\n", 56) == 0);
  char *mid = tool_repomap_render(m, NULL, 0, 200, NULL, NULL);
  ASSERT((strlen(mid) + 3) / 4 <= 200);
  ASSERT(strncmp(mid, "src/core.c:\n  3: int parse_config_value(const char *s) {\n", 56) == 0);
  ASSERT_CONTAINS(mid, "helper_thing");
  ASSERT(strlen(mid) > 600); /* the budget is used, not just the first lines */
  free(mid);
  char *all = tool_repomap_render(m, NULL, 0, 100000, NULL, NULL);
  ASSERT_CONTAINS(all, "unused_function");
  ASSERT(strlen(all) > strlen(small));
  free(small);
  free(all);
  tool_repomap_free(m);
  free(d);
}

TEST(focus_files_personalise) {
  char *d = fixture();
  tool_repomap *m;
  char *err = NULL;
  ASSERT_EQ_INT(tool_repomap_create(d, &m, &err), TOOL_OK);
  const char *focus[] = {"src/e.c"};
  char *map = tool_repomap_render(m, focus, 1, 4096, NULL, NULL);
  if (getenv("QCT_DUMP")) fprintf(stderr, "%s", map);
  /* e.c uses helper_thing only: it now leads, and e.c itself is left out */
  ASSERT(strncmp(map, "src/util.c:\n", 12) == 0);
  ASSERT(!strstr(map, "src/e.c"));
  free(map);
  tool_repomap_free(m);
  free(d);
}

TEST(incremental_update_parses_only_changed_files) {
  char *d = fixture();
  tool_repomap *m;
  char *err = NULL;
  ASSERT_EQ_INT(tool_repomap_create(d, &m, &err), TOOL_OK);
  tool_repomap_stats st;
  ASSERT_EQ_INT(tool_repomap_update(m, &err), TOOL_OK);
  tool_repomap_get_stats(m, &st);
  ASSERT_EQ_INT(st.parsed_last, 0);
  ASSERT_EQ_INT(st.parsed_total, 8);
  /* one edit: now helper_thing is used everywhere */
  wr(d, "src/b.c", "int b(void) { return helper_thing(1) + helper_thing(2) + helper_thing(5) + helper_thing(6); }\n"
                   "int b2(void) { return helper_thing(9) + helper_thing(8) + helper_thing(7); }\n");
  ASSERT_EQ_INT(tool_repomap_update(m, &err), TOOL_OK);
  tool_repomap_get_stats(m, &st);
  ASSERT_EQ_INT(st.parsed_last, 1);
  ASSERT_EQ_INT(st.files, 8);
  /* a new file, a deleted file */
  wr(d, "src/new.go", "package x\n\nfunc NewThing() int { return 1 }\n");
  char *p = qc_path_join(d, "src/lonely.c");
  unlink(p);
  free(p);
  ASSERT_EQ_INT(tool_repomap_update(m, &err), TOOL_OK);
  tool_repomap_get_stats(m, &st);
  ASSERT_EQ_INT(st.parsed_last, 1);
  ASSERT_EQ_INT(st.files, 8);
  char *map = tool_repomap_render(m, NULL, 0, 100000, NULL, NULL);
  ASSERT_CONTAINS(map, "NewThing");
  ASSERT(!strstr(map, "unused_function"));
  free(map);
  tool_repomap_free(m);
  free(d);
}

TEST(empty_and_bad_roots) {
  char *d = qct_tempdir("rmempty");
  tool_repomap *m;
  char *err = NULL;
  ASSERT_EQ_INT(tool_repomap_create(d, &m, &err), TOOL_OK);
  char *map = tool_repomap_render(m, NULL, 0, 0, NULL, NULL);
  ASSERT_STR_EQ(map, "");
  free(map);
  tool_repomap_free(m);
  ASSERT(tool_repomap_create("/nonexistent/dir", &m, &err) != TOOL_OK);
  free(err);
  free(d);
}

QC_TEST_MAIN
