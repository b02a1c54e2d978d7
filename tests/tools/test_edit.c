/* test_edit.c — edit_file: exact unique matches, closest-region errors, staleness, diffs. */
#include "tests/tools/tt.h"

static const char src[] =
    "#include <stdio.h>\n"
    "\n"
    "static int add(int a, int b) {\n"
    "    return a + b;\n"
    "}\n"
    "\n"
    "int main(void) {\n"
    "    printf(\"%d\\n\", add(1, 2));\n"
    "    return 0;\n"
    "}\n";

static tool_ws *setup(char **dir) {
  *dir = qct_tempdir("edit");
  tt_write(*dir, "main.c", src);
  tool_ws *ws = tt_open(*dir);
  tool_result r;
  ASSERT_EQ_INT(tt_call(ws, "read_file", "{\"path\":\"main.c\"}", &r), TOOL_OK);
  tool_result_release(&r);
  return ws;
}

TEST(edit_replaces_a_unique_match_and_returns_diffs) {
  char *d;
  tool_ws *ws = setup(&d);
  char *p = tt_path(d, "main.c");
  ASSERT(chmod(p, 0640) == 0);
  tool_result r;
  ASSERT_EQ_INT(tt_call(ws, "edit_file",
                        "{\"path\":\"main.c\",\"old_string\":\"    return a + b;\",\"new_string\":\"    return a + b + 0;\"}",
                        &r),
                TOOL_OK);
  ASSERT_CONTAINS(r.output, "Edited main.c: replaced 1 occurrence.");
  ASSERT_CONTAINS(r.output, "     4\t    return a + b + 0;\n");
  json_t *diff = json_object_get(r.data, "diff");
  ASSERT_STR_EQ(json_string_value(json_object_get(diff, "oldText")), src);
  ASSERT_CONTAINS(json_string_value(json_object_get(diff, "newText")), "return a + b + 0;");
  ASSERT_STR_EQ(json_string_value(json_object_get(diff, "path")), p);
  const char *u = json_string_value(json_object_get(r.data, "unified"));
  ASSERT_CONTAINS(u, "--- a/main.c\n+++ b/main.c\n@@ -1,7 +1,7 @@");
  ASSERT_CONTAINS(u, "-    return a + b;\n+    return a + b + 0;\n");
  json_t *loc = json_array_get(json_object_get(r.data, "locations"), 0);
  ASSERT_EQ_INT(json_integer_value(json_object_get(loc, "line")), 4);
  tool_result_release(&r);
  struct stat st;
  ASSERT(stat(p, &st) == 0);
  ASSERT_EQ_INT(st.st_mode & 07777, 0640);
  char *s = tt_read(d, "main.c");
  ASSERT_CONTAINS(s, "return a + b + 0;");
  free(s);
  ASSERT_EQ_INT(tt_count_names(d, ".qcoder-"), 0);
  /* our own edit keeps the file fresh: a second edit needs no new read */
  ASSERT_EQ_INT(tt_call(ws, "edit_file", "{\"path\":\"main.c\",\"old_string\":\"add(1, 2)\",\"new_string\":\"add(2, 3)\"}", &r),
                TOOL_OK);
  tool_result_release(&r);
  free(p);
  tool_ws_close(ws);
  free(d);
}

TEST(edit_with_several_matches_lists_their_lines) {
  char *d;
  tool_ws *ws = setup(&d);
  tool_result r;
  ASSERT_EQ_INT(tt_call(ws, "edit_file", "{\"path\":\"main.c\",\"old_string\":\"}\\n\",\"new_string\":\"} /* end */\\n\"}", &r),
                TOOL_EARGS);
  ASSERT_CONTAINS(r.error, "occurs 2 times in main.c, at lines 5, 10");
  ASSERT_CONTAINS(r.error, "replace_all");
  tool_result_release(&r);
  char *s = tt_read(d, "main.c");
  ASSERT_STR_EQ(s, src);
  free(s);
  ASSERT_EQ_INT(tt_call(ws, "edit_file",
                        "{\"path\":\"main.c\",\"old_string\":\"}\\n\",\"new_string\":\"} /* end */\\n\",\"replace_all\":true}", &r),
                TOOL_OK);
  ASSERT_CONTAINS(r.output, "replaced 2 occurrences");
  tool_result_release(&r);
  s = tt_read(d, "main.c");
  ASSERT_CONTAINS(s, "    return a + b;\n} /* end */\n");
  ASSERT(qc_str_has_suffix(s, "    return 0;\n} /* end */\n"));
  free(s);
  tool_ws_close(ws);
  free(d);
}

TEST(edit_not_found_shows_the_closest_region) {
  char *d;
  tool_ws *ws = setup(&d);
  tool_result r;
  /* a stale copy: one token differs */
  ASSERT_EQ_INT(tt_call(ws, "edit_file",
                        "{\"path\":\"main.c\",\"old_string\":\"static int add(int x, int y) {\\n    return x + y;\\n}\","
                        "\"new_string\":\"nothing\"}",
                        &r),
                TOOL_EARGS);
  ASSERT_CONTAINS(r.error, "old_string was not found in main.c");
  ASSERT_CONTAINS(r.error, "most similar part of the file is lines 3-5");
  ASSERT_CONTAINS(r.error, "     3\tstatic int add(int a, int b) {\n");
  tool_result_release(&r);
  /* indentation differs only */
  ASSERT_EQ_INT(tt_call(ws, "edit_file",
                        "{\"path\":\"main.c\",\"old_string\":\"static int add(int a, int b) {\\n  return a + b;\\n}\","
                        "\"new_string\":\"x\"}",
                        &r),
                TOOL_EARGS);
  ASSERT_CONTAINS(r.error, "except for whitespace");
  tool_result_release(&r);
  /* nothing alike */
  ASSERT_EQ_INT(tt_call(ws, "edit_file", "{\"path\":\"main.c\",\"old_string\":\"zzzzqqqq\",\"new_string\":\"x\"}", &r),
                TOOL_EARGS);
  ASSERT_CONTAINS(r.error, "Nothing in the file resembles it");
  tool_result_release(&r);
  char *s = tt_read(d, "main.c");
  ASSERT_STR_EQ(s, src);
  free(s);
  tool_ws_close(ws);
  free(d);
}

TEST(edit_refuses_stale_and_unread_files) {
  char *d = qct_tempdir("edit");
  tt_write(d, "a.txt", "one\ntwo\n");
  tool_ws *ws = tt_open(d);
  tool_result r;
  ASSERT_EQ_INT(tt_call(ws, "edit_file", "{\"path\":\"a.txt\",\"old_string\":\"one\",\"new_string\":\"1\"}", &r), TOOL_ESTALE);
  ASSERT_CONTAINS(r.error, "call read_file on a.txt first");
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "read_file", "{\"path\":\"a.txt\"}", &r), TOOL_OK);
  tool_result_release(&r);
  /* the user changes the file; a changed mtime alone would not matter, content does */
  tt_write(d, "a.txt", "one\ntwo\nthree\n");
  ASSERT_EQ_INT(tt_call(ws, "edit_file", "{\"path\":\"a.txt\",\"old_string\":\"one\",\"new_string\":\"1\"}", &r), TOOL_ESTALE);
  ASSERT_CONTAINS(r.error, "changed on disk since you last read it");
  tool_result_release(&r);
  char *s = tt_read(d, "a.txt");
  ASSERT_STR_EQ(s, "one\ntwo\nthree\n");
  free(s);
  ASSERT_EQ_INT(tt_call(ws, "read_file", "{\"path\":\"a.txt\",\"offset\":2,\"limit\":1}", &r), TOOL_OK);
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "edit_file", "{\"path\":\"a.txt\",\"old_string\":\"one\",\"new_string\":\"1\"}", &r), TOOL_OK);
  tool_result_release(&r);
  /* rewriting identical content (a touch) keeps it fresh */
  tt_write(d, "a.txt", "1\ntwo\nthree\n");
  ASSERT_EQ_INT(tt_call(ws, "edit_file", "{\"path\":\"a.txt\",\"old_string\":\"two\",\"new_string\":\"2\"}", &r), TOOL_OK);
  tool_result_release(&r);
  s = tt_read(d, "a.txt");
  ASSERT_STR_EQ(s, "1\n2\nthree\n");
  free(s);
  tool_ws_close(ws);
  free(d);
}

TEST(edit_argument_errors) {
  char *d;
  tool_ws *ws = setup(&d);
  tool_result r;
  ASSERT_EQ_INT(tt_call(ws, "edit_file", "{\"path\":\"main.c\",\"old_string\":\"add\",\"new_string\":\"add\"}", &r), TOOL_EARGS);
  ASSERT_CONTAINS(r.error, "the same");
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "edit_file", "{\"path\":\"main.c\",\"old_string\":\"\",\"new_string\":\"x\"}", &r), TOOL_EARGS);
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "edit_file", "{\"path\":\"nope.c\",\"old_string\":\"a\",\"new_string\":\"b\"}", &r), TOOL_ENOENT);
  ASSERT_CONTAINS(r.error, "use write_file to create");
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "edit_file", "{\"path\":\"main.c\",\"old_string\":\"a\"}", &r), TOOL_EARGS);
  ASSERT_CONTAINS(r.error, "new_string");
  tool_result_release(&r);
  tool_ws_close(ws);
  free(d);
}

TEST(edit_matches_lf_old_string_in_a_crlf_file) {
  char *d = qct_tempdir("edit");
  tt_write(d, "w.txt", "alpha\r\nbeta\r\ngamma\r\n");
  tool_ws *ws = tt_open(d);
  tool_result r;
  ASSERT_EQ_INT(tt_call(ws, "read_file", "{\"path\":\"w.txt\"}", &r), TOOL_OK);
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "edit_file", "{\"path\":\"w.txt\",\"old_string\":\"alpha\\nbeta\",\"new_string\":\"A\\nB\"}", &r),
                TOOL_OK);
  ASSERT_CONTAINS(r.output, "CRLF");
  tool_result_release(&r);
  char *s = tt_read(d, "w.txt");
  ASSERT_STR_EQ(s, "A\r\nB\r\ngamma\r\n");
  free(s);
  tool_ws_close(ws);
  free(d);
}

TEST(edit_refuses_binary_files_and_git_internals) {
  char *d = qct_tempdir("edit");
  char *p = tt_path(d, "b.bin");
  FILE *f = fopen(p, "wb");
  fwrite("ab\0cd", 1, 5, f);
  fclose(f);
  free(p);
  tt_write(d, ".git/config", "[core]\n");
  tool_ws *ws = tt_open_opts(d, TOOL_SANDBOX_PREFER, NULL, 1);
  tool_result r;
  ASSERT_EQ_INT(tt_call(ws, "edit_file", "{\"path\":\"b.bin\",\"old_string\":\"ab\",\"new_string\":\"x\"}", &r), TOOL_EARGS);
  ASSERT_CONTAINS(r.error, "binary");
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "edit_file", "{\"path\":\".git/config\",\"old_string\":\"core\",\"new_string\":\"x\"}", &r),
                TOOL_EDENIED);
  tool_result_release(&r);
  tool_ws_close(ws);
  free(d);
}

/* An editor that holds the buffers: reads and writes go through its hooks. */
typedef struct fake_editor {
  char *buffer;
  int writes;
} fake_editor;

static int fe_read(void *u, const char *abs, char **content, char **err) {
  fake_editor *e = u;
  (void)abs;
  (void)err;
  *content = strdup(e->buffer);
  return 0;
}

static int fe_write(void *u, const char *abs, const char *content, char **err) {
  fake_editor *e = u;
  (void)abs;
  (void)err;
  free(e->buffer);
  e->buffer = strdup(content);
  e->writes++;
  return 0;
}

TEST(edit_through_editor_hooks_uses_the_unsaved_buffer) {
  char *d = qct_tempdir("edit");
  tt_write(d, "a.txt", "on disk\n");
  fake_editor fe = {strdup("unsaved buffer\n"), 0};
  tool_io io = {fe_read, fe_write, NULL, &fe};
  tool_ws_opts o = {TOOL_SANDBOX_PREFER};
  o.io = &io;
  o.runtime_dir = "/nonexistent/r";
  o.state_dir = "/nonexistent/s";
  tool_ws *ws = NULL;
  char *err = NULL;
  ASSERT_EQ_INT(tool_ws_open(d, &o, &ws, &err), TOOL_OK);
  tool_result r;
  ASSERT_EQ_INT(tt_call(ws, "read_file", "{\"path\":\"a.txt\"}", &r), TOOL_OK);
  ASSERT_CONTAINS(r.output, "unsaved buffer");
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "edit_file", "{\"path\":\"a.txt\",\"old_string\":\"unsaved\",\"new_string\":\"edited\"}", &r),
                TOOL_OK);
  tool_result_release(&r);
  ASSERT_STR_EQ(fe.buffer, "edited buffer\n");
  ASSERT_EQ_INT(fe.writes, 1);
  char *s = tt_read(d, "a.txt");
  ASSERT_STR_EQ(s, "on disk\n");
  free(s);
  /* confinement still applies before any hook is called */
  ASSERT_EQ_INT(tt_call(ws, "read_file", "{\"path\":\"/etc/passwd\"}", &r), TOOL_EESCAPE);
  tool_result_release(&r);
  free(fe.buffer);
  tool_ws_close(ws);
  free(d);
}

QC_TEST_MAIN
