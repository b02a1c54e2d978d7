/* test_fs.c — read_file, write_file, list_dir and glob on fixture workspaces. */
#include "tests/tools/tt.h"

/* ---- read_file -------------------------------------------------------------------- */

TEST(read_file_numbers_lines_like_cat_n) {
  char *d = qct_tempdir("fs");
  tt_write(d, "a.txt", "alpha\nbeta\n\tgamma\nno newline at end");
  tool_ws *ws = tt_open(d);
  tool_result r;
  ASSERT_EQ_INT(tt_call(ws, "read_file", "{\"path\":\"a.txt\"}", &r), TOOL_OK);
  ASSERT_STR_EQ(r.output, "     1\talpha\n     2\tbeta\n     3\t\tgamma\n     4\tno newline at end\n");
  ASSERT_EQ_INT(json_integer_value(json_object_get(r.data, "total_lines")), 4);
  ASSERT(json_is_false(json_object_get(r.data, "truncated")));
  json_t *loc = json_array_get(json_object_get(r.data, "locations"), 0);
  ASSERT(qc_str_has_suffix(json_string_value(json_object_get(loc, "path")), "/a.txt"));
  tool_result_release(&r);
  tool_ws_close(ws);
  free(d);
}

TEST(read_file_offset_limit_and_continuation_marker) {
  char *d = qct_tempdir("fs");
  qc_buf b;
  qc_buf_init(&b, 0);
  for (int i = 1; i <= 50; i++) qc_buf_printf(&b, "line %d\n", i);
  tt_write(d, "f.txt", b.data);
  qc_buf_release(&b);
  tool_ws *ws = tt_open(d);
  tool_result r;
  ASSERT_EQ_INT(tt_call(ws, "read_file", "{\"path\":\"f.txt\",\"offset\":10,\"limit\":3}", &r), TOOL_OK);
  ASSERT_CONTAINS(r.output, "    10\tline 10\n    11\tline 11\n    12\tline 12\n");
  ASSERT(!strstr(r.output, "line 13\n"));
  ASSERT_CONTAINS(r.output, "showing lines 10-12 of 50; call read_file with offset=13 to continue");
  ASSERT(json_is_true(json_object_get(r.data, "truncated")));
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "read_file", "{\"path\":\"f.txt\",\"offset\":51}", &r), TOOL_EARGS);
  ASSERT_CONTAINS(r.error, "past the end of f.txt, which has 50 lines");
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "read_file", "{\"path\":\"f.txt\",\"offset\":50}", &r), TOOL_OK);
  ASSERT_STR_EQ(r.output, "    50\tline 50\n");
  tool_result_release(&r);
  tool_ws_close(ws);
  free(d);
}

TEST(read_file_caps_lines_and_bytes) {
  char *d = qct_tempdir("fs");
  /* 3000 short lines: the line cap (2000) applies */
  qc_buf b;
  qc_buf_init(&b, 0);
  for (int i = 1; i <= 3000; i++) qc_buf_printf(&b, "%d\n", i);
  tt_write(d, "many.txt", b.data);
  qc_buf_reset(&b);
  /* 400 lines of 1000 bytes: the byte cap (256 KiB) applies first */
  for (int i = 0; i < 400; i++) {
    for (int k = 0; k < 999; k++) qc_buf_putc(&b, 'x');
    qc_buf_putc(&b, '\n');
  }
  tt_write(d, "wide.txt", b.data);
  qc_buf_reset(&b);
  /* one 10000-byte line: cut with a marker */
  for (int k = 0; k < 10000; k++) qc_buf_putc(&b, 'y');
  tt_write(d, "long.txt", b.data);
  qc_buf_release(&b);
  tool_ws *ws = tt_open(d);
  tool_result r;
  ASSERT_EQ_INT(tt_call(ws, "read_file", "{\"path\":\"many.txt\"}", &r), TOOL_OK);
  ASSERT_CONTAINS(r.output, "  2000\t2000\n");
  ASSERT(!strstr(r.output, "\t2001\n"));
  ASSERT_CONTAINS(r.output, "stopped at the line limit: showing lines 1-2000 of 3000; call read_file with offset=2001");
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "read_file", "{\"path\":\"wide.txt\"}", &r), TOOL_OK);
  ASSERT_CONTAINS(r.output, "stopped at the output size limit");
  ASSERT(strlen(r.output) <= TOOL__READ_BYTES_MAX + 512);
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "read_file", "{\"path\":\"long.txt\"}", &r), TOOL_OK);
  ASSERT_CONTAINS(r.output, "[line truncated: 10000 bytes in all]");
  ASSERT(strlen(r.output) < 2200);
  tool_result_release(&r);
  tool_ws_close(ws);
  free(d);
}

TEST(read_file_binary_invalid_utf8_crlf_empty) {
  char *d = qct_tempdir("fs");
  char *p = tt_path(d, "bin.dat");
  FILE *f = fopen(p, "wb");
  fwrite("\x7f" "ELF\0\0\1\2", 1, 8, f);
  fclose(f);
  free(p);
  tt_write(d, "bad.txt", "ok \xff\xfe bytes \x1b[31mred\n");
  tt_write(d, "dos.txt", "one\r\ntwo\r\n");
  tt_write(d, "empty.txt", "");
  tool_ws *ws = tt_open(d);
  tool_result r;
  ASSERT_EQ_INT(tt_call(ws, "read_file", "{\"path\":\"bin.dat\"}", &r), TOOL_OK);
  ASSERT_CONTAINS(r.output, "bin.dat is a binary file (8 bytes)");
  ASSERT(json_is_true(json_object_get(r.data, "binary")));
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "read_file", "{\"path\":\"bad.txt\"}", &r), TOOL_OK);
  /* invalid bytes and the escape character become U+FFFD; the output is valid UTF-8 */
  ASSERT_CONTAINS(r.output, "ok \xEF\xBF\xBD\xEF\xBF\xBD bytes \xEF\xBF\xBD[31mred");
  ASSERT(qc_utf8_valid(r.output, strlen(r.output)));
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "read_file", "{\"path\":\"dos.txt\"}", &r), TOOL_OK);
  ASSERT_CONTAINS(r.output, "CRLF line endings");
  ASSERT_CONTAINS(r.output, "     1\tone\n     2\ttwo\n");
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "read_file", "{\"path\":\"empty.txt\"}", &r), TOOL_OK);
  ASSERT_CONTAINS(r.output, "empty");
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "read_file", "{\"path\":\"missing.txt\"}", &r), TOOL_ENOENT);
  ASSERT_CONTAINS(r.error, "missing.txt does not exist");
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "read_file", "{\"path\":\".\"}", &r), TOOL_EARGS);
  ASSERT_CONTAINS(r.error, "a directory, not a regular file");
  tool_result_release(&r);
  tool_ws_close(ws);
  free(d);
}

TEST(read_file_refuses_fifos_without_hanging) {
  char *d = qct_tempdir("fs");
  char *p = tt_path(d, "pipe");
  ASSERT(mkfifo(p, 0600) == 0);
  free(p);
  tool_ws *ws = tt_open(d);
  tool_result r;
  ASSERT_EQ_INT(tt_call(ws, "read_file", "{\"path\":\"pipe\"}", &r), TOOL_EARGS);
  ASSERT_CONTAINS(r.error, "special file");
  tool_result_release(&r);
  tool_ws_close(ws);
  free(d);
}

/* ---- write_file ------------------------------------------------------------------- */

TEST(write_file_creates_parents_and_reports_a_diff) {
  char *d = qct_tempdir("fs");
  tool_ws *ws = tt_open(d);
  tool_result r;
  ASSERT_EQ_INT(tt_call(ws, "write_file", "{\"path\":\"a/b/c/new.txt\",\"content\":\"hello\\n\"}", &r), TOOL_OK);
  ASSERT_CONTAINS(r.output, "Created a/b/c/new.txt (6 bytes, 1 lines)");
  json_t *diff = json_object_get(r.data, "diff");
  ASSERT(json_is_null(json_object_get(diff, "oldText")));
  ASSERT_STR_EQ(json_string_value(json_object_get(diff, "newText")), "hello\n");
  tool_result_release(&r);
  char *s = tt_read(d, "a/b/c/new.txt");
  ASSERT_STR_EQ(s, "hello\n");
  free(s);
  /* written by us: may be overwritten without a read */
  ASSERT_EQ_INT(tt_call(ws, "write_file", "{\"path\":\"a/b/c/new.txt\",\"content\":\"bye\\n\"}", &r), TOOL_OK);
  ASSERT_CONTAINS(r.output, "Wrote a/b/c/new.txt");
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(r.data, "diff"), "oldText")), "hello\n");
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_count_names(d, ".qcoder-"), 0);
  char *sub = tt_path(d, "a/b/c");
  ASSERT_EQ_INT(tt_count_names(sub, ".qcoder-"), 0);
  free(sub);
  tool_ws_close(ws);
  free(d);
}

TEST(write_file_keeps_the_mode_and_requires_a_read_of_existing_files) {
  char *d = qct_tempdir("fs");
  tt_write(d, "run.sh", "#!/bin/sh\necho old\n");
  char *p = tt_path(d, "run.sh");
  ASSERT(chmod(p, 0751) == 0);
  tool_ws *ws = tt_open(d);
  tool_result r;
  /* never read: refused, file untouched */
  ASSERT_EQ_INT(tt_call(ws, "write_file", "{\"path\":\"run.sh\",\"content\":\"#!/bin/sh\\necho new\\n\"}", &r), TOOL_ESTALE);
  ASSERT_CONTAINS(r.error, "you have not read it");
  tool_result_release(&r);
  char *s = tt_read(d, "run.sh");
  ASSERT_STR_EQ(s, "#!/bin/sh\necho old\n");
  free(s);
  ASSERT_EQ_INT(tt_call(ws, "read_file", "{\"path\":\"run.sh\"}", &r), TOOL_OK);
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "write_file", "{\"path\":\"run.sh\",\"content\":\"#!/bin/sh\\necho new\\n\"}", &r), TOOL_OK);
  tool_result_release(&r);
  struct stat st;
  ASSERT(stat(p, &st) == 0);
  ASSERT_EQ_INT(st.st_mode & 07777, 0751);
  s = tt_read(d, "run.sh");
  ASSERT_STR_EQ(s, "#!/bin/sh\necho new\n");
  free(s);
  /* changed behind our back: stale */
  tt_write(d, "run.sh", "#!/bin/sh\necho user edit\n");
  ASSERT_EQ_INT(tt_call(ws, "write_file", "{\"path\":\"run.sh\",\"content\":\"x\"}", &r), TOOL_ESTALE);
  ASSERT_CONTAINS(r.error, "changed on disk since you last read it");
  tool_result_release(&r);
  s = tt_read(d, "run.sh");
  ASSERT_STR_EQ(s, "#!/bin/sh\necho user edit\n");
  free(s);
  free(p);
  tool_ws_close(ws);
  /* a workspace that allows edits without a read (qcoder tool) */
  ws = tt_open_opts(d, TOOL_SANDBOX_PREFER, NULL, 1);
  ASSERT_EQ_INT(tt_call(ws, "write_file", "{\"path\":\"run.sh\",\"content\":\"x\"}", &r), TOOL_OK);
  tool_result_release(&r);
  tool_ws_close(ws);
  free(d);
}

TEST(write_file_through_an_inside_symlink_writes_the_target) {
  char *d = qct_tempdir("fs");
  tt_write(d, "real/target.txt", "old\n");
  tt_sh("ln -s real/target.txt '%s/link.txt' && ln -s '%s/real' '%s/absdir'", d, d, d);
  tool_ws *ws = tt_open(d);
  tool_result r;
  ASSERT_EQ_INT(tt_call(ws, "read_file", "{\"path\":\"link.txt\"}", &r), TOOL_OK);
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "write_file", "{\"path\":\"link.txt\",\"content\":\"new\\n\"}", &r), TOOL_OK);
  ASSERT_CONTAINS(r.output, "real/target.txt");
  tool_result_release(&r);
  char *s = tt_read(d, "real/target.txt");
  ASSERT_STR_EQ(s, "new\n");
  free(s);
  struct stat st;
  char *lp = tt_path(d, "link.txt");
  ASSERT(lstat(lp, &st) == 0 && S_ISLNK(st.st_mode));
  free(lp);
  /* an absolute symlink that stays inside the workspace is followed too */
  ASSERT_EQ_INT(tt_call(ws, "write_file", "{\"path\":\"absdir/other.txt\",\"content\":\"o\"}", &r), TOOL_OK);
  tool_result_release(&r);
  ASSERT(tt_exists(d, "real/other.txt"));
  tool_ws_close(ws);
  free(d);
}

TEST(write_file_refuses_directories) {
  char *d = qct_tempdir("fs");
  tt_write(d, "dir/x", "x");
  tool_ws *ws = tt_open(d);
  tool_result r;
  ASSERT_EQ_INT(tt_call(ws, "write_file", "{\"path\":\"dir\",\"content\":\"x\"}", &r), TOOL_EARGS);
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "write_file", "{\"path\":\"dir/x/y\",\"content\":\"x\"}", &r), TOOL_ENOENT);
  ASSERT_CONTAINS(r.error, "not a directory");
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "write_file", "{\"path\":\".\",\"content\":\"x\"}", &r), TOOL_EARGS);
  tool_result_release(&r);
  tool_ws_close(ws);
  free(d);
}

/* ---- list_dir and glob ------------------------------------------------------------ */

static char *make_repo(void) {
  char *d = qct_tempdir("fsrepo");
  tt_sh("git -C '%s' init -q", d);
  tt_write(d, ".gitignore", "build/\n*.log\n!keep.log\n");
  tt_write(d, "src/main.c", "int main(void) { return 0; }\n");
  tt_write(d, "src/util.h", "#pragma once\n");
  tt_write(d, "src/deep/x/y.c", "int y;\n");
  tt_write(d, "build/out.o", "obj");
  tt_write(d, "debug.log", "log");
  tt_write(d, "keep.log", "kept");
  tt_write(d, "README.md", "# hi\n");
  tt_write(d, "web/app.ts", "x");
  tt_write(d, "web/app.tsx", "x");
  tt_write(d, ".github/ci.yml", "x");
  return d;
}

TEST(list_dir_is_sorted_skips_git_and_ignored) {
  char *d = make_repo();
  tool_ws *ws = tt_open(d);
  tool_result r;
  ASSERT_EQ_INT(tt_call(ws, "list_dir", "{}", &r), TOOL_OK);
  ASSERT_STR_EQ(r.output,
                "./\n"
                "  .github/\n"
                "    ci.yml\n"
                "  .gitignore\n"
                "  README.md\n"
                "  build/ (ignored by .gitignore; not listed)\n"
                "  keep.log\n"
                "  src/\n"
                "    deep/\n"
                "    main.c\n"
                "    util.h\n"
                "  web/\n"
                "    app.ts\n"
                "    app.tsx\n");
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "list_dir", "{\"path\":\"src\",\"depth\":3}", &r), TOOL_OK);
  ASSERT_CONTAINS(r.output, "src/\n  deep/\n    x/\n      y.c\n  main.c\n");
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "list_dir", "{\"path\":\"README.md\"}", &r), TOOL_EARGS);
  tool_result_release(&r);
  tool_ws_close(ws);
  free(d);
}

TEST(list_dir_outside_a_repository_shows_everything_but_git) {
  char *d = qct_tempdir("fsplain");
  tt_write(d, ".gitignore", "build/\n");
  tt_write(d, "build/a.o", "x");
  tt_write(d, ".git/config", "x");
  tt_sh("ln -s /etc '%s/etc-link'", d);
  tool_ws *ws = tt_open(d);
  tool_result r;
  ASSERT_EQ_INT(tt_call(ws, "list_dir", "{}", &r), TOOL_OK);
  ASSERT_STR_EQ(r.output, "./\n  .gitignore\n  build/\n    a.o\n  etc-link -> /etc\n");
  tool_result_release(&r);
  tool_ws_close(ws);
  free(d);
}

TEST(list_dir_caps_entries) {
  char *d = qct_tempdir("fscap");
  tt_sh("cd '%s' && mkdir many && cd many && seq 1 1200 | sed 's/^/f/' | xargs touch", d);
  tool_ws *ws = tt_open(d);
  tool_result r;
  ASSERT_EQ_INT(tt_call(ws, "list_dir", "{\"path\":\"many\"}", &r), TOOL_OK);
  ASSERT_CONTAINS(r.output, "listing stopped after 1000 entries");
  ASSERT(json_is_true(json_object_get(r.data, "truncated")));
  tool_result_release(&r);
  tool_ws_close(ws);
  free(d);
}

TEST(glob_patterns_braces_and_ignore_rules) {
  char *d = make_repo();
  tool_ws *ws = tt_open(d);
  tool_result r;
  ASSERT_EQ_INT(tt_call(ws, "glob", "{\"pattern\":\"**/*.c\"}", &r), TOOL_OK);
  ASSERT_STR_EQ(r.output, "src/deep/x/y.c\nsrc/main.c\n");
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "glob", "{\"pattern\":\"**/*.{ts,tsx}\"}", &r), TOOL_OK);
  ASSERT_STR_EQ(r.output, "web/app.ts\nweb/app.tsx\n");
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "glob", "{\"pattern\":\"*.log\"}", &r), TOOL_OK);
  ASSERT_STR_EQ(r.output, "keep.log\n");
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "glob", "{\"pattern\":\"*.h\",\"path\":\"src\"}", &r), TOOL_OK);
  ASSERT_STR_EQ(r.output, "src/util.h\n");
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "glob", "{\"pattern\":\"**/*.o\"}", &r), TOOL_OK);
  ASSERT_CONTAINS(r.output, "No files match");
  tool_result_release(&r);
  /* an ignored directory named explicitly is searched */
  ASSERT_EQ_INT(tt_call(ws, "glob", "{\"pattern\":\"*.o\",\"path\":\"build\"}", &r), TOOL_OK);
  ASSERT_STR_EQ(r.output, "build/out.o\n");
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "list_dir", "{\"path\":\"build\"}", &r), TOOL_OK);
  ASSERT_STR_EQ(r.output, "build/\n  out.o\n");
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "glob", "{\"pattern\":\"src/*/x/?.c\"}", &r), TOOL_OK);
  ASSERT_STR_EQ(r.output, "src/deep/x/y.c\n");
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "glob", "{\"pattern\":\"../*\"}", &r), TOOL_EESCAPE);
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "glob", "{\"pattern\":\"/etc/*\"}", &r), TOOL_EESCAPE);
  tool_result_release(&r);
  char *abs = qc_asprintf("{\"pattern\":\"%s/src/*.c\"}", d);
  ASSERT_EQ_INT(tt_call(ws, "glob", abs, &r), TOOL_OK);
  ASSERT_STR_EQ(r.output, "src/main.c\n");
  tool_result_release(&r);
  free(abs);
  tool_ws_close(ws);
  free(d);
}

TEST(glob_matcher_units) {
  ASSERT(tool__glob_match("**/*.c", "a.c"));
  ASSERT(tool__glob_match("**/*.c", "x/y/a.c"));
  ASSERT(!tool__glob_match("*.c", "x/a.c"));
  ASSERT(tool__glob_match("src/**", "src/a/b"));
  ASSERT(tool__glob_match("a/**/b", "a/b"));
  ASSERT(tool__glob_match("a/**/b", "a/x/y/b"));
  ASSERT(!tool__glob_match("a/**/b", "a/x/y/c"));
  ASSERT(tool__glob_match("[ab].txt", "b.txt"));
  char *err = NULL;
  char **v = tool__glob_expand("x.{a,b{1,2}}", &err);
  ASSERT(v);
  ASSERT_STR_EQ(v[0], "x.a");
  ASSERT_STR_EQ(v[1], "x.b1");
  ASSERT_STR_EQ(v[2], "x.b2");
  ASSERT(v[3] == NULL);
  tool__strv_free(v);
  v = tool__glob_expand("{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}", &err);
  ASSERT(v == NULL);
  ASSERT_CONTAINS(err, "more than 64");
  free(err);
}

QC_TEST_MAIN
