/* test_confine.c — every path escape is refused, with openat2 and with the fallback.
 *
 * Layout made by each test:
 *   BASE/ws/                 the workspace
 *   BASE/ws-evil/secret.txt  a prefix sibling
 *   BASE/outside/            a directory outside
 *   BASE/ws/leak      -> /etc/passwd
 *   BASE/ws/up        -> ../outside          (relative link out; parent of new files)
 *   BASE/ws/abs-out   -> BASE/outside        (absolute link out)
 *   BASE/ws/sib       -> ../ws-evil
 *   BASE/ws/proc      -> /proc/self/root
 *   BASE/ws/fdlink    -> /proc/self/fd/0
 *   BASE/ws/loop1 <-> loop2
 *   BASE/ws/gitlink   -> .git
 *   BASE/ws/in/ok.txt, BASE/ws/inlink -> in (a link that stays inside)
 */
#include "tests/tools/tt.h"

typedef struct fx {
  char *base, *ws, *outside;
} fx;

static fx make(void) {
  fx f;
  f.base = qct_tempdir("confine");
  f.ws = tt_path(f.base, "ws");
  f.outside = tt_path(f.base, "outside");
  tt_write(f.base, "ws-evil/secret.txt", "evil secret\n");
  tt_write(f.base, "outside/secret.txt", "outside secret\n");
  tt_write(f.ws, "in/ok.txt", "inside\n");
  tt_write(f.ws, ".git/config", "[core]\n");
  tt_write(f.ws, ".git/hooks/README", "hooks\n");
  tt_sh("cd '%s' && ln -s /etc/passwd leak && ln -s ../outside up && ln -s '%s' abs-out && "
        "ln -s ../ws-evil sib && ln -s /proc/self/root proc && ln -s /proc/self/fd/0 fdlink && "
        "ln -s loop2 loop1 && ln -s loop1 loop2 && ln -s .git gitlink && ln -s in inlink",
        f.ws, f.outside);
  return f;
}

static void drop(fx *f) {
  free(f->base);
  free(f->ws);
  free(f->outside);
}

#define EXPECT_CODE(ws, tool, json, code)                                               \
  do {                                                                                  \
    tool_result r_;                                                                     \
    int rc_ = tt_call((ws), (tool), (json), &r_);                                       \
    ASSERT_MSG(rc_ == (code), "%s %s (openat2 %s): got %s (%d): %s", (tool), (json),    \
               tool__have_openat2() ? "on" : "off", tool_strerror(rc_), rc_,            \
               r_.ok ? r_.output : r_.error);                                           \
    tool_result_release(&r_);                                                           \
  } while (0)

static void for_both_resolvers(void (*fn)(fx *f)) {
  for (int mode = 0; mode < 2; mode++) {
    tool__force_no_openat2(mode);
    fx f = make();
    fn(&f);
    drop(&f);
  }
  tool__force_no_openat2(0);
}

static void reads(fx *f) {
  tool_ws *ws = tt_open(f->ws);
  EXPECT_CODE(ws, "read_file", "{\"path\":\"in/ok.txt\"}", TOOL_OK);
  EXPECT_CODE(ws, "read_file", "{\"path\":\"inlink/ok.txt\"}", TOOL_OK);
  EXPECT_CODE(ws, "read_file", "{\"path\":\"in/../in/ok.txt\"}", TOOL_OK);
  EXPECT_CODE(ws, "read_file", "{\"path\":\"../outside/secret.txt\"}", TOOL_EESCAPE);
  EXPECT_CODE(ws, "read_file", "{\"path\":\"in/../../outside/secret.txt\"}", TOOL_EESCAPE);
  EXPECT_CODE(ws, "read_file", "{\"path\":\"..\"}", TOOL_EESCAPE);
  EXPECT_CODE(ws, "read_file", "{\"path\":\"/etc/passwd\"}", TOOL_EESCAPE);
  EXPECT_CODE(ws, "read_file", "{\"path\":\"leak\"}", TOOL_EESCAPE);
  EXPECT_CODE(ws, "read_file", "{\"path\":\"up/secret.txt\"}", TOOL_EESCAPE);
  EXPECT_CODE(ws, "read_file", "{\"path\":\"abs-out/secret.txt\"}", TOOL_EESCAPE);
  EXPECT_CODE(ws, "read_file", "{\"path\":\"sib/secret.txt\"}", TOOL_EESCAPE);
  EXPECT_CODE(ws, "read_file", "{\"path\":\"proc/etc/passwd\"}", TOOL_EESCAPE);
  EXPECT_CODE(ws, "read_file", "{\"path\":\"fdlink\"}", TOOL_EESCAPE);
  EXPECT_CODE(ws, "read_file", "{\"path\":\"/proc/self/root/etc/passwd\"}", TOOL_EESCAPE);
  EXPECT_CODE(ws, "read_file", "{\"path\":\"loop1\"}", TOOL_EESCAPE);
  char *j = qc_asprintf("{\"path\":\"%s/in/ok.txt\"}", f->ws);
  EXPECT_CODE(ws, "read_file", j, TOOL_OK); /* absolute inside: fine */
  free(j);
  j = qc_asprintf("{\"path\":\"%s-evil/secret.txt\"}", f->ws); /* the prefix sibling */
  EXPECT_CODE(ws, "read_file", j, TOOL_EESCAPE);
  free(j);
  j = qc_asprintf("{\"path\":\"/proc/self/root%s/in/ok.txt\"}", f->ws);
  EXPECT_CODE(ws, "read_file", j, TOOL_EESCAPE);
  free(j);
  j = qc_asprintf("{\"path\":\"%s/../outside/secret.txt\"}", f->ws);
  EXPECT_CODE(ws, "read_file", j, TOOL_EESCAPE);
  free(j);
  /* listing and searching obey the same rules */
  EXPECT_CODE(ws, "list_dir", "{\"path\":\"up\"}", TOOL_EESCAPE);
  EXPECT_CODE(ws, "list_dir", "{\"path\":\"/\"}", TOOL_EESCAPE);
  EXPECT_CODE(ws, "grep", "{\"pattern\":\"secret\",\"path\":\"sib\"}", TOOL_EESCAPE);
  EXPECT_CODE(ws, "glob", "{\"pattern\":\"*\",\"path\":\"abs-out\"}", TOOL_EESCAPE);
  EXPECT_CODE(ws, "run_command", "{\"command\":\"true\",\"cwd\":\"up\"}", TOOL_EESCAPE);
  /* a walk of the workspace never follows the links out */
  tool_result r;
  ASSERT_EQ_INT(tt_call(ws, "grep", "{\"pattern\":\"secret\"}", &r), TOOL_OK);
  ASSERT_CONTAINS(r.output, "No matches");
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "glob", "{\"pattern\":\"**/secret.txt\"}", &r), TOOL_OK);
  ASSERT_CONTAINS(r.output, "No files match");
  tool_result_release(&r);
  tool_ws_close(ws);
}

TEST(reads_that_escape_are_refused) { for_both_resolvers(reads); }

static void writes(fx *f) {
  tool_ws *ws = tt_open_opts(f->ws, TOOL_SANDBOX_PREFER, NULL, 1);
  EXPECT_CODE(ws, "write_file", "{\"path\":\"in/new.txt\",\"content\":\"x\"}", TOOL_OK);
  EXPECT_CODE(ws, "write_file", "{\"path\":\"inlink/new2.txt\",\"content\":\"x\"}", TOOL_OK);
  EXPECT_CODE(ws, "write_file", "{\"path\":\"../outside/new.txt\",\"content\":\"x\"}", TOOL_EESCAPE);
  /* a symlink as the parent of a new file, and as the parent of new directories */
  EXPECT_CODE(ws, "write_file", "{\"path\":\"up/new.txt\",\"content\":\"x\"}", TOOL_EESCAPE);
  EXPECT_CODE(ws, "write_file", "{\"path\":\"up/deeper/still/new.txt\",\"content\":\"x\"}", TOOL_EESCAPE);
  EXPECT_CODE(ws, "write_file", "{\"path\":\"abs-out/new.txt\",\"content\":\"x\"}", TOOL_EESCAPE);
  EXPECT_CODE(ws, "write_file", "{\"path\":\"sib/new.txt\",\"content\":\"x\"}", TOOL_EESCAPE);
  /* replacing a symlink that points out */
  EXPECT_CODE(ws, "write_file", "{\"path\":\"leak\",\"content\":\"x\"}", TOOL_EESCAPE);
  EXPECT_CODE(ws, "edit_file", "{\"path\":\"leak\",\"old_string\":\"root\",\"new_string\":\"x\"}", TOOL_EESCAPE);
  EXPECT_CODE(ws, "write_file", "{\"path\":\"proc/tmp/qct-proc-escape\",\"content\":\"x\"}", TOOL_EESCAPE);
  EXPECT_CODE(ws, "write_file", "{\"path\":\"/tmp/qct-abs-escape\",\"content\":\"x\"}", TOOL_EESCAPE);
  /* git internals and qcoder's directories */
  EXPECT_CODE(ws, "write_file", "{\"path\":\".git/config\",\"content\":\"x\"}", TOOL_EDENIED);
  EXPECT_CODE(ws, "write_file", "{\"path\":\".git/hooks/pre-commit\",\"content\":\"#!/bin/sh\\n\"}", TOOL_EDENIED);
  EXPECT_CODE(ws, "write_file", "{\"path\":\".git/objects/aa/bb\",\"content\":\"x\"}", TOOL_EDENIED);
  EXPECT_CODE(ws, "write_file", "{\"path\":\"gitlink/hooks/pre-push\",\"content\":\"x\"}", TOOL_EDENIED);
  EXPECT_CODE(ws, "write_file", "{\"path\":\"in/../.git/config\",\"content\":\"x\"}", TOOL_EDENIED);
  EXPECT_CODE(ws, "write_file", "{\"path\":\".GIT/config\",\"content\":\"x\"}", TOOL_EDENIED);
  EXPECT_CODE(ws, "write_file", "{\"path\":\"sub/.git/config\",\"content\":\"x\"}", TOOL_EDENIED);
  EXPECT_CODE(ws, "edit_file", "{\"path\":\".git/config\",\"old_string\":\"core\",\"new_string\":\"x\"}", TOOL_EDENIED);
  ASSERT(!tt_exists(f->outside, "new.txt"));
  ASSERT(!tt_exists(f->outside, "deeper"));
  ASSERT(!tt_exists(f->ws, ".git/hooks/pre-commit"));
  ASSERT(!tt_exists(f->ws, "sub"));
  ASSERT(!tt_exists("/tmp", "qct-abs-escape"));
  ASSERT(!tt_exists("/tmp", "qct-proc-escape"));
  char *s = qct_read_file("/etc/passwd", NULL);
  ASSERT(s && strstr(s, "root"));
  free(s);
  s = tt_read(f->ws, ".git/config");
  ASSERT_STR_EQ(s, "[core]\n");
  free(s);
  tool_ws_close(ws);
}

TEST(writes_that_escape_or_touch_git_are_refused) { for_both_resolvers(writes); }

static void qcoder_dirs(fx *f) {
  /* state and runtime directories inside the workspace (e.g. a workspace that is $HOME) */
  char *state = tt_path(f->ws, "home/.local/state/qcoder");
  char *rt = tt_path(f->ws, "run/qcoder");
  tt_write(state, "sessions.db", "db");
  tt_write(rt, "daemon.sock.lock", "l");
  tool_ws_opts o = {TOOL_SANDBOX_PREFER};
  o.state_dir = state;
  o.runtime_dir = rt;
  o.edit_without_read = 1;
  tool_ws *ws = NULL;
  char *err = NULL;
  ASSERT_EQ_INT(tool_ws_open(f->ws, &o, &ws, &err), TOOL_OK);
  EXPECT_CODE(ws, "write_file", "{\"path\":\"home/.local/state/qcoder/sessions.db\",\"content\":\"x\"}", TOOL_EDENIED);
  EXPECT_CODE(ws, "write_file", "{\"path\":\"home/.local/state/qcoder/new/x\",\"content\":\"x\"}", TOOL_EDENIED);
  EXPECT_CODE(ws, "write_file", "{\"path\":\"run/qcoder/x\",\"content\":\"x\"}", TOOL_EDENIED);
  EXPECT_CODE(ws, "write_file", "{\"path\":\"home/.local/state/other.txt\",\"content\":\"x\"}", TOOL_OK);
  /* reading them is not a write */
  EXPECT_CODE(ws, "read_file", "{\"path\":\"home/.local/state/qcoder/sessions.db\"}", TOOL_OK);
  ASSERT(!tt_exists(state, "new"));
  tool_ws_close(ws);
  free(state);
  free(rt);
}

TEST(writes_to_qcoder_state_and_runtime_dirs_are_refused) { for_both_resolvers(qcoder_dirs); }

static void bad_strings(fx *f) {
  tool_ws *ws = tt_open_opts(f->ws, TOOL_SANDBOX_PREFER, NULL, 1);
  /* a NUL byte: "in/ok.txt\0../../etc/passwd" */
  json_t *a = json_pack("{s:o}", "path", json_stringn("in/ok.txt\0/../../etc/passwd", 27));
  tool_result r;
  ASSERT_EQ_INT(tool_call(ws, "read_file", a, NULL, &r), TOOL_EESCAPE);
  ASSERT_CONTAINS(r.error, "NUL");
  tool_result_release(&r);
  json_decref(a);
  a = json_pack("{s:o, s:s}", "path", json_stringn("x\0y", 3), "content", "c");
  ASSERT_EQ_INT(tool_call(ws, "write_file", a, NULL, &r), TOOL_EESCAPE);
  tool_result_release(&r);
  json_decref(a);
  /* overlong: 5000 bytes; and a 300-byte component */
  char *longp = malloc(5001);
  for (int i = 0; i < 5000; i++) longp[i] = (i % 2) ? '/' : 'a';
  longp[5000] = '\0';
  a = json_pack("{s:s}", "path", longp);
  ASSERT_EQ_INT(tool_call(ws, "read_file", a, NULL, &r), TOOL_EESCAPE);
  tool_result_release(&r);
  json_decref(a);
  memset(longp, 'b', 300);
  longp[300] = '\0';
  a = json_pack("{s:s, s:s}", "path", longp, "content", "x");
  ASSERT_EQ_INT(tool_call(ws, "write_file", a, NULL, &r), TOOL_EESCAPE);
  ASSERT_CONTAINS(r.error, "names are at most 255 bytes");
  tool_result_release(&r);
  json_decref(a);
  free(longp);
  /* many ../ inside the limit */
  qc_buf b;
  qc_buf_init(&b, 0);
  qc_buf_puts(&b, "{\"path\":\"in/");
  for (int i = 0; i < 500; i++) qc_buf_puts(&b, "../");
  qc_buf_puts(&b, "etc/passwd\"}");
  EXPECT_CODE(ws, "read_file", b.data, TOOL_EESCAPE);
  qc_buf_release(&b);
  EXPECT_CODE(ws, "read_file", "{\"path\":\"\"}", TOOL_EARGS);
  tool_ws_close(ws);
}

TEST(nul_bytes_and_overlong_paths_are_refused) { for_both_resolvers(bad_strings); }

TEST(resolver_gives_canonical_paths) {
  fx f = make();
  tool_ws *ws = tt_open(f.ws);
  tool__path p;
  char *err = NULL;
  ASSERT_EQ_INT(tool__resolve(ws, "inlink/./ok.txt", 0, &p, &err), TOOL_OK);
  ASSERT_STR_EQ(p.rel, "in/ok.txt");
  ASSERT_STR_EQ(p.name, "ok.txt");
  ASSERT(p.exists && S_ISREG(p.st.st_mode));
  tool__path_release(&p);
  ASSERT_EQ_INT(tool__resolve(ws, ".", 0, &p, &err), TOOL_OK);
  ASSERT_STR_EQ(p.rel, "");
  ASSERT_STR_EQ(p.abs, f.ws);
  tool__path_release(&p);
  ASSERT_EQ_INT(tool__resolve(ws, "inlink", TOOL__R_NOFOLLOW, &p, &err), TOOL_OK);
  ASSERT_STR_EQ(p.rel, "inlink");
  ASSERT(S_ISLNK(p.st.st_mode));
  tool__path_release(&p);
  ASSERT_EQ_INT(tool__resolve(ws, "gitlink/config", TOOL__R_WRITE, &p, &err), TOOL_EDENIED);
  ASSERT_CONTAINS(err, ".git/config");
  free(err);
  ASSERT_EQ_INT(tool__resolve(ws, "new/dir/file", TOOL__R_MISSING_OK, &p, &err), TOOL_ENOENT);
  ASSERT_CONTAINS(err, "the directory new/dir does not exist");
  free(err);
  ASSERT(!tt_exists(f.ws, "new"));
  tool_ws_close(ws);
  drop(&f);
}

TEST(workspace_given_through_a_symlink_accepts_both_absolute_forms) {
  fx f = make();
  char *alias = tt_path(f.base, "alias");
  tt_sh("ln -s ws '%s'", alias);
  tool_ws *ws = tt_open(alias);
  ASSERT_STR_EQ(tool_ws_root(ws), f.ws);
  char *j = qc_asprintf("{\"path\":\"%s/in/ok.txt\"}", alias);
  EXPECT_CODE(ws, "read_file", j, TOOL_OK);
  free(j);
  j = qc_asprintf("{\"path\":\"%s/in/ok.txt\"}", f.ws);
  EXPECT_CODE(ws, "read_file", j, TOOL_OK);
  free(j);
  tool_ws_close(ws);
  free(alias);
  drop(&f);
}

QC_TEST_MAIN
