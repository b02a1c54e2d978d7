/* test_git.c — git tools, checkpoints (with a property test) and commit-to-branch, on
 * fixture repositories built here with libgit2 (fixed author and times). */
#include "tests/test.h"
#include "tools/git_internal.h"
#include "tools/tools.h"
#include "common/common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#define T0 1700000000 /* fixed commit times */

static void wr(const char *root, const char *rel, const char *content) {
  char *p = qc_path_join(root, rel);
  ASSERT_MSG(qct_write_file(p, content) == 0, "write %s", p);
  free(p);
}

/* Commit the whole working tree (git add -A && git commit) with a fixed identity. */
static void commit_all(git_repository *repo, const char *msg, int64_t when) {
  git_index *idx;
  ASSERT(git_repository_index(&idx, repo) == 0);
  char *all = "*";
  git_strarray sa = {&all, 1};
  ASSERT(git_index_add_all(idx, &sa, 0, NULL, NULL) == 0);
  ASSERT(git_index_update_all(idx, &sa, NULL, NULL) == 0);
  ASSERT(git_index_write(idx) == 0);
  git_oid tree_id, cid;
  ASSERT(git_index_write_tree(&tree_id, idx) == 0);
  git_tree *tree;
  ASSERT(git_tree_lookup(&tree, repo, &tree_id) == 0);
  git_signature *sig;
  ASSERT(git_signature_new(&sig, "Ada Lovelace", "ada@example.com", when, 0) == 0);
  git_object *head = NULL;
  int has = git_revparse_single(&head, repo, "HEAD^{commit}") == 0;
  git_error_clear();
  const git_commit *parents[1] = {(git_commit *)head};
  ASSERT(git_commit_create(&cid, repo, "HEAD", sig, sig, NULL, msg, tree, has, parents) == 0);
  git_object_free(head);
  git_signature_free(sig);
  git_tree_free(tree);
  git_index_free(idx);
}

/* A repository with tracked, staged, untracked, ignored, executable and symlinked files. */
static char *fixture_repo(void) {
  tool__git_init();
  char *root = qct_tempdir("git");
  ASSERT(root);
  git_repository *repo;
  ASSERT(git_repository_init(&repo, root, 0) == 0);
  wr(root, ".gitignore", "*.log\nbuild/\n");
  wr(root, "README.md", "# demo\n");
  wr(root, "src/main.c", "#include \"util.h\"\nint main(void) {\n  return util();\n}\n");
  wr(root, "src/util.c", "int util(void) {\n  return 0;\n}\n");
  wr(root, "docs/a.txt", "alpha\n");
  wr(root, "scripts/run.sh", "#!/bin/sh\necho run\n");
  char *p = qc_path_join(root, "scripts/run.sh");
  chmod(p, 0755);
  free(p);
  p = qc_path_join(root, "link");
  ASSERT(symlink("src/main.c", p) == 0);
  free(p);
  commit_all(repo, "first commit\n", T0);
  wr(root, "src/util.c", "int util(void) {\n  return 1;\n}\n");
  commit_all(repo, "util returns 1\n\nA body line.\n", T0 + 60);
  /* staged change, unstaged change, untracked, ignored */
  wr(root, "README.md", "# demo\nstaged\n");
  git_index *idx;
  ASSERT(git_repository_index(&idx, repo) == 0);
  ASSERT(git_index_add_bypath(idx, "README.md") == 0);
  ASSERT(git_index_write(idx) == 0);
  git_index_free(idx);
  wr(root, "docs/a.txt", "alpha\nbeta\n");
  wr(root, "notes.txt", "untracked\n");
  wr(root, "app.log", "ignored\n");
  wr(root, "build/out.o", "ignored object\n");
  wr(root, "src/debug.log", "ignored too\n");
  git_repository_free(repo);
  return root;
}

static void open_repo(const char *root, tool__repo *r) {
  char *err = NULL;
  int rc = tool__repo_open(root, r, &err);
  ASSERT_MSG(rc == TOOL_OK, "open: %s", err ? err : "?");
}

TEST(not_a_repository) {
  char *d = qct_tempdir("norepo");
  tool__repo r;
  char *err = NULL;
  ASSERT_EQ_INT(tool__repo_open(d, &r, &err), TOOL_ENOTREPO);
  ASSERT_CONTAINS(err, "not inside a git repository");
  free(err);
  free(d);
}

TEST(status) {
  char *root = fixture_repo();
  tool__repo r;
  open_repo(root, &r);
  qc_buf b;
  qc_buf_init(&b, TOOL__GIT_MAX_OUTPUT + 1024);
  json_t *data;
  char *err;
  ASSERT_EQ_INT(tool__git_status(&r, &b, &data, &err), TOOL_OK);
  ASSERT_CONTAINS(b.data, "## master\n");
  ASSERT_CONTAINS(b.data, "M  README.md\n");
  ASSERT_CONTAINS(b.data, " M docs/a.txt\n");
  ASSERT_CONTAINS(b.data, "?? notes.txt\n");
  ASSERT(!strstr(b.data, "app.log"));
  ASSERT(!strstr(b.data, "build/"));
  ASSERT_EQ_INT(json_array_size(json_object_get(data, "files")), 3);
  json_decref(data);
  qc_buf_release(&b);
  tool__repo_close(&r);
  free(root);
}

TEST(diff_unstaged_staged_against) {
  char *root = fixture_repo();
  tool__repo r;
  open_repo(root, &r);
  qc_buf b;
  qc_buf_init(&b, TOOL__GIT_MAX_OUTPUT + 1024);
  json_t *data;
  char *err;
  ASSERT_EQ_INT(tool__git_diff(&r, NULL, 0, NULL, &b, &data, &err), TOOL_OK);
  ASSERT_CONTAINS(b.data, "diff --git a/docs/a.txt b/docs/a.txt");
  ASSERT_CONTAINS(b.data, "+beta\n");
  ASSERT(!strstr(b.data, "README"));
  json_decref(data);
  qc_buf_reset(&b);
  ASSERT_EQ_INT(tool__git_diff(&r, NULL, 1, NULL, &b, &data, &err), TOOL_OK);
  ASSERT_CONTAINS(b.data, "+staged\n");
  ASSERT(!strstr(b.data, "beta"));
  json_decref(data);
  qc_buf_reset(&b);
  ASSERT_EQ_INT(tool__git_diff(&r, "src", 0, "HEAD~1", &b, &data, &err), TOOL_OK);
  ASSERT_CONTAINS(b.data, "-  return 0;\n+  return 1;\n");
  ASSERT(!strstr(b.data, "beta"));
  json_t *f0 = json_array_get(json_object_get(data, "files"), 0);
  ASSERT_STR_EQ(json_string_value(json_object_get(f0, "path")), "src/util.c");
  ASSERT_EQ_INT(json_integer_value(json_object_get(f0, "additions")), 1);
  json_decref(data);
  qc_buf_reset(&b);
  ASSERT_EQ_INT(tool__git_diff(&r, NULL, 0, "no-such-rev", &b, &data, &err), TOOL_EARGS);
  ASSERT_CONTAINS(err, "unknown revision");
  free(err);
  qc_buf_release(&b);
  tool__repo_close(&r);
  free(root);
}

TEST(log_and_show) {
  char *root = fixture_repo();
  tool__repo r;
  open_repo(root, &r);
  qc_buf b;
  qc_buf_init(&b, TOOL__GIT_MAX_OUTPUT + 1024);
  json_t *data;
  char *err;
  ASSERT_EQ_INT(tool__git_log(&r, NULL, 0, &b, &data, &err), TOOL_OK);
  ASSERT_CONTAINS(b.data, "2023-11-14 Ada Lovelace: util returns 1\n");
  ASSERT_CONTAINS(b.data, "Ada Lovelace: first commit\n");
  ASSERT(strstr(b.data, "util returns 1") < strstr(b.data, "first commit")); /* newest first */
  ASSERT_EQ_INT(json_array_size(json_object_get(data, "commits")), 2);
  json_decref(data);
  qc_buf_reset(&b);
  ASSERT_EQ_INT(tool__git_log(&r, "docs/a.txt", 5, &b, &data, &err), TOOL_OK);
  ASSERT(!strstr(b.data, "util returns 1"));
  ASSERT_CONTAINS(b.data, "first commit");
  json_decref(data);
  qc_buf_reset(&b);
  ASSERT_EQ_INT(tool__git_log(&r, NULL, 1, &b, &data, &err), TOOL_OK);
  ASSERT(!strstr(b.data, "first commit"));
  json_decref(data);
  qc_buf_reset(&b);
  ASSERT_EQ_INT(tool__git_show(&r, "HEAD", &b, &data, &err), TOOL_OK);
  ASSERT_CONTAINS(b.data, "Author: Ada Lovelace <ada@example.com>\n");
  ASSERT_CONTAINS(b.data, "    util returns 1\n");
  ASSERT_CONTAINS(b.data, "    A body line.\n");
  ASSERT_CONTAINS(b.data, "+  return 1;\n");
  ASSERT_STR_EQ(json_string_value(json_object_get(data, "type")), "commit");
  json_decref(data);
  qc_buf_reset(&b);
  ASSERT_EQ_INT(tool__git_show(&r, "HEAD~1:src/util.c", &b, &data, &err), TOOL_OK);
  ASSERT_STR_EQ(b.data, "int util(void) {\n  return 0;\n}\n");
  json_decref(data);
  qc_buf_reset(&b);
  ASSERT_EQ_INT(tool__git_show(&r, "HEAD:src", &b, &data, &err), TOOL_OK);
  ASSERT_STR_EQ(b.data, "main.c\nutil.c\n");
  json_decref(data);
  qc_buf_release(&b);
  tool__repo_close(&r);
  free(root);
}

TEST(blame_with_uncommitted_lines) {
  char *root = fixture_repo();
  tool__repo r;
  open_repo(root, &r);
  qc_buf b;
  qc_buf_init(&b, TOOL__GIT_MAX_OUTPUT + 1024);
  json_t *data;
  char *err;
  ASSERT_EQ_INT(tool__git_blame(&r, "src/util.c", 0, 0, &b, &data, &err), TOOL_OK);
  ASSERT_CONTAINS(b.data, "(Ada Lovelace 2023-11-14    1) int util(void) {\n");
  ASSERT_CONTAINS(b.data, "   2)   return 1;\n");
  json_decref(data);
  qc_buf_reset(&b);
  ASSERT_EQ_INT(tool__git_blame(&r, "docs/a.txt", 2, 2, &b, &data, &err), TOOL_OK);
  ASSERT_STR_EQ(b.data, "00000000 (Not Committed Yet     2) beta\n");
  json_decref(data);
  qc_buf_reset(&b);
  ASSERT_EQ_INT(tool__git_blame(&r, "notes.txt", 0, 0, &b, &data, &err), TOOL_ENOENT);
  free(err);
  ASSERT_EQ_INT(tool__git_blame(&r, "missing.c", 0, 0, &b, &data, &err), TOOL_ENOENT);
  free(err);
  qc_buf_release(&b);
  tool__repo_close(&r);
  free(root);
}

TEST(output_is_capped) {
  char *root = fixture_repo();
  qc_buf big;
  qc_buf_init(&big, 1 << 22);
  for (int i = 0; i < 20000; i++) qc_buf_printf(&big, "line %d of a long file\n", i);
  wr(root, "docs/a.txt", big.data);
  qc_buf_release(&big);
  tool__repo r;
  open_repo(root, &r);
  qc_buf b;
  qc_buf_init(&b, TOOL__GIT_MAX_OUTPUT + 1024);
  json_t *data;
  char *err;
  ASSERT_EQ_INT(tool__git_diff(&r, NULL, 0, NULL, &b, &data, &err), TOOL_OK);
  ASSERT(b.len <= TOOL__GIT_MAX_OUTPUT + 200);
  ASSERT_CONTAINS(b.data, "[output cut at 64 KiB");
  json_decref(data);
  qc_buf_release(&b);
  tool__repo_close(&r);
  free(root);
}

/* ---- checkpoints ----------------------------------------------------------------- */

/* A digest of everything under `dir` except .git: paths, kinds, exec bits, bytes and
 * link targets — independent of the code under test. */
static void digest_walk(const char *dir, const char *rel, qc_buf *acc) {
  DIR *d = opendir(dir);
  ASSERT(d);
  struct dirent *e;
  char *names[512];
  int n = 0;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || (!*rel && !strcmp(e->d_name, ".git")))
      continue;
    if (n < 512) names[n++] = strdup(e->d_name);
  }
  closedir(d);
  for (int i = 0; i < n; i++)
    for (int j = i + 1; j < n; j++)
      if (strcmp(names[i], names[j]) > 0) { char *t = names[i]; names[i] = names[j]; names[j] = t; }
  for (int i = 0; i < n; i++) {
    char *p = qc_asprintf("%s/%s", dir, names[i]);
    char *r = qc_asprintf("%s%s", rel, names[i]);
    struct stat st;
    ASSERT(lstat(p, &st) == 0);
    if (S_ISDIR(st.st_mode)) {
      /* directories count through their files: git records no empty directory, and
       * restore leaves an empty one the agent made (documented) */
      char *r2 = qc_asprintf("%s/", r);
      digest_walk(p, r2, acc);
      free(r2);
    } else if (S_ISLNK(st.st_mode)) {
      char t[4096];
      ssize_t k = readlink(p, t, sizeof t);
      qc_buf_printf(acc, "L %s -> %.*s\n", r, (int)k, t);
    } else {
      size_t len;
      char *c = qct_read_file(p, &len);
      char hex[65];
      qc_sha256_hex(c ? c : "", c ? len : 0, hex);
      qc_buf_printf(acc, "F %s %c %s\n", r, (st.st_mode & 0100) ? 'x' : '-', hex);
      free(c);
    }
    free(p);
    free(r);
    free(names[i]);
  }
}

static char *digest(const char *root) {
  qc_buf b;
  qc_buf_init(&b, 1 << 24);
  digest_walk(root, "", &b);
  return qc_buf_detach(&b, NULL);
}

static char *file_sha(const char *root, const char *rel) {
  char *p = qc_path_join(root, rel);
  size_t len;
  char *c = qct_read_file(p, &len);
  free(p);
  if (!c) return strdup("(none)");
  char hex[65];
  qc_sha256_hex(c, len, hex);
  free(c);
  return strdup(hex);
}

TEST(checkpoint_create_list_diff_restore) {
  char *root = fixture_repo();
  char *before = digest(root), *idx0 = file_sha(root, ".git/index"), *head0 = file_sha(root, ".git/HEAD");
  tool__repo r;
  open_repo(root, &r);
  char *id, *err;
  ASSERT_EQ_INT(tool__cp_create(&r, "before the agent", &id, &err), TOOL_OK);
  ASSERT(strlen(id) == 29 && id[8] == 'T' && id[15] == '.' && id[19] == 'Z' && id[20] == '-');
  /* nothing the user sees changed */
  char *after = digest(root), *idx1 = file_sha(root, ".git/index"), *head1 = file_sha(root, ".git/HEAD");
  ASSERT_STR_EQ(after, before);
  ASSERT_STR_EQ(idx1, idx0);
  ASSERT_STR_EQ(head1, head0);
  free(after), free(idx1), free(head1);
  /* the snapshot holds tracked + untracked, not ignored */
  git_object *o;
  char *spec = qc_asprintf(TOOL__CP_REF_PREFIX "%s^{tree}", id);
  ASSERT(git_revparse_single(&o, r.repo, spec) == 0);
  git_tree *t = (git_tree *)o;
  git_tree_entry *te;
  ASSERT(git_tree_entry_bypath(&te, t, "notes.txt") == 0); git_tree_entry_free(te);
  ASSERT(git_tree_entry_bypath(&te, t, "scripts/run.sh") == 0);
  ASSERT_EQ_INT(git_tree_entry_filemode(te), GIT_FILEMODE_BLOB_EXECUTABLE); git_tree_entry_free(te);
  ASSERT(git_tree_entry_bypath(&te, t, "link") == 0);
  ASSERT_EQ_INT(git_tree_entry_filemode(te), GIT_FILEMODE_LINK); git_tree_entry_free(te);
  ASSERT(git_tree_entry_bypath(&te, t, "app.log") != 0);
  ASSERT(git_tree_entry_bypath(&te, t, "build/out.o") != 0);
  git_object_free(o);
  free(spec);

  json_t *list;
  ASSERT_EQ_INT(tool__cp_list(&r, &list, &err), TOOL_OK);
  ASSERT_EQ_INT(json_array_size(list), 1);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(list, 0), "id")), id);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(list, 0), "message")), "before the agent");
  json_decref(list);

  /* the agent works */
  wr(root, "src/util.c", "int util(void) { return 42; }\n");
  wr(root, "src/extra.c", "int extra;\n");
  char *p = qc_path_join(root, "notes.txt"); unlink(p); free(p);
  p = qc_path_join(root, "scripts/run.sh"); chmod(p, 0644); free(p);
  p = qc_path_join(root, "link"); unlink(p); ASSERT(symlink("README.md", p) == 0); free(p);
  wr(root, "app.log", "changed ignored file\n");

  char *patch;
  json_t *stats;
  ASSERT_EQ_INT(tool__cp_diff(&r, id, 0, &patch, &stats, &err), TOOL_OK);
  ASSERT_CONTAINS(patch, "+int util(void) { return 42; }");
  ASSERT_CONTAINS(patch, "diff --git a/src/extra.c b/src/extra.c\nnew file mode 100644");
  ASSERT_CONTAINS(patch, "deleted file mode 100644");
  ASSERT_CONTAINS(patch, "old mode 100755\nnew mode 100644");
  ASSERT(!strstr(patch, "app.log"));
  ASSERT_EQ_INT(json_integer_value(json_object_get(stats, "files_changed")), 5);
  free(patch);
  json_decref(stats);

  json_t *sum;
  ASSERT_EQ_INT(tool__cp_restore(&r, id, &sum, &err), TOOL_OK);
  ASSERT_EQ_INT(json_array_size(json_object_get(sum, "errors")), 0);
  ASSERT_EQ_INT(json_integer_value(json_object_get(sum, "removed")), 1);
  json_decref(sum);
  /* everything back except the ignored file, which restore never touches */
  wr(root, "app.log", "ignored\n");
  after = digest(root);
  ASSERT_STR_EQ(after, before);
  free(after);
  idx1 = file_sha(root, ".git/index");
  ASSERT_STR_EQ(idx1, idx0);
  free(idx1);

  /* ids: unique prefix, "latest", unknown */
  git_oid c1;
  char *full;
  ASSERT_EQ_INT(tool__cp_resolve(&r, "latest", &c1, &full, &err), TOOL_OK);
  ASSERT_STR_EQ(full, id);
  free(full);
  ASSERT_EQ_INT(tool__cp_resolve(&r, "nope", &c1, NULL, &err), TOOL_ENOENT);
  free(err);
  free(id);
  free(before), free(idx0), free(head0);
  tool__repo_close(&r);
  free(root);
}

TEST(prune_keeps_the_newest) {
  char *root = fixture_repo();
  tool__repo r;
  open_repo(root, &r);
  char *id, *err;
  for (int i = 0; i < 5; i++) {
    char msg[16];
    snprintf(msg, sizeof msg, "cp %d", i);
    wr(root, "docs/a.txt", msg); /* distinct trees, distinct commits */
    ASSERT_EQ_INT(tool__cp_create(&r, msg, &id, &err), TOOL_OK);
    free(id);
    usleep(2000); /* ids are taken to the millisecond */
  }
  size_t removed;
  ASSERT_EQ_INT(tool__cp_prune(&r, 2, 3600, &removed, &err), TOOL_OK);
  ASSERT_EQ_INT(removed, 0); /* all are younger than an hour */
  ASSERT_EQ_INT(tool__cp_prune(&r, 2, 0, &removed, &err), TOOL_OK);
  ASSERT_EQ_INT(removed, 3);
  json_t *list;
  ASSERT_EQ_INT(tool__cp_list(&r, &list, &err), TOOL_OK);
  ASSERT_EQ_INT(json_array_size(list), 2);
  /* the two kept are the last two taken, newest first */
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(list, 0), "message")), "cp 4");
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(list, 1), "message")), "cp 3");
  json_decref(list);
  tool__repo_close(&r);
  free(root);
}

/* ---- the property test ----------------------------------------------------------- */

static uint64_t rng_state;
static uint32_t rnd(uint32_t n) {
  rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)(rng_state >> 33) % n;
}

/* Non-ignored files currently in the tree (relative), by walking (skips .git, ignored). */
static int is_ignored_name(const char *rel) {
  return strstr(rel, ".log") || strncmp(rel, "build", 5) == 0;
}

static void list_files_rec(const char *root, const char *rel, char ***v, int *n) {
  char *dir = *rel ? qc_path_join(root, rel) : strdup(root);
  DIR *d = opendir(dir);
  if (!d) { free(dir); return; }
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, ".git")) continue;
    char *r = *rel ? qc_asprintf("%s/%s", rel, e->d_name) : strdup(e->d_name);
    char *p = qc_path_join(root, r);
    struct stat st;
    if (is_ignored_name(r) || strcmp(r, ".gitignore") == 0 || lstat(p, &st) != 0) {
      free(r);
    } else if (S_ISDIR(st.st_mode)) {
      list_files_rec(root, r, v, n);
      free(r);
    } else {
      *v = realloc(*v, (size_t)(*n + 1) * sizeof **v);
      (*v)[(*n)++] = r;
    }
    free(p);
  }
  closedir(d);
  free(dir);
}

static const char *const dirs[] = {"", "src/", "docs/", "new/", "new/deep/", "scripts/"};
static const char *const names[] = {"a.c", "b.txt", "c.py", "d", "e.md", "f.sh"};

static char *random_path(void) {
  return qc_asprintf("%s%s", dirs[rnd(6)], names[rnd(6)]);
}

static void make_parents_for(const char *p) {
  char *d = strdup(p);
  for (char *s = d + 1; *s; s++)
    if (*s == '/') { *s = 0; mkdir(d, 0755); *s = '/'; }
  free(d);
}

/* One random operation on the non-ignored part of the tree. */
static void random_op(const char *root, qc_buf *log) {
  char **files = NULL;
  int n = 0;
  list_files_rec(root, "", &files, &n);
  int op = rnd(7);
  char *pick = n ? files[rnd((uint32_t)n)] : NULL;
  char *target = random_path();
  char *abs = qc_path_join(root, target);
  char *pabs = pick ? qc_path_join(root, pick) : NULL;
  struct stat st;
  switch (op) {
    case 0: { /* create or overwrite */
      if (lstat(abs, &st) == 0 && S_ISDIR(st.st_mode)) break;
      make_parents_for(abs);
      unlink(abs);
      char content[64];
      snprintf(content, sizeof content, "content %u\n", rnd(1000));
      qct_write_file(abs, content);
      qc_buf_printf(log, "create %s; ", target);
      break;
    }
    case 1: /* modify */
      if (pick) {
        struct stat ls;
        if (lstat(pabs, &ls) == 0 && S_ISREG(ls.st_mode)) {
          FILE *f = fopen(pabs, "a");
          if (f) { fprintf(f, "more %u\n", rnd(1000)); fclose(f); }
          qc_buf_printf(log, "modify %s; ", pick);
        }
      }
      break;
    case 2: /* delete */
      if (pick) { unlink(pabs); qc_buf_printf(log, "delete %s; ", pick); }
      break;
    case 3: /* rename */
      if (pick && !(lstat(abs, &st) == 0 && S_ISDIR(st.st_mode))) {
        make_parents_for(abs);
        if (rename(pabs, abs) == 0) qc_buf_printf(log, "rename %s %s; ", pick, target);
      }
      break;
    case 4: /* chmod */
      if (pick && lstat(pabs, &st) == 0 && S_ISREG(st.st_mode)) {
        chmod(pabs, (st.st_mode & 0100) ? 0644 : 0755);
        qc_buf_printf(log, "chmod %s; ", pick);
      }
      break;
    case 5: /* symlink (new, or replacing a file) */
      if (!(lstat(abs, &st) == 0 && S_ISDIR(st.st_mode))) {
        make_parents_for(abs);
        unlink(abs);
        if (symlink(rnd(2) ? "README.md" : "../nowhere", abs) == 0) qc_buf_printf(log, "symlink %s; ", target);
      }
      break;
    case 6: /* a file becomes a directory */
      if (pick) {
        unlink(pabs);
        char *inner = qc_asprintf("%s/inner.txt", pabs);
        qct_write_file(inner, "inner\n");
        free(inner);
        qc_buf_printf(log, "file->dir %s; ", pick);
      }
      break;
  }
  free(abs);
  free(pabs);
  free(target);
  for (int i = 0; i < n; i++) free(files[i]);
  free(files);
}

static void property_run(const char *root, tool__repo *r, int iterations, uint64_t seed) {
  rng_state = seed;
  char *before = digest(root), *idx0 = file_sha(root, ".git/index"), *head0 = file_sha(root, ".git/HEAD");
  git_oid tree0;
  size_t nf;
  char *err = NULL;
  ASSERT_EQ_INT(tool__repo_snapshot_tree(r, &tree0, &nf, &err), TOOL_OK);
  for (int it = 0; it < iterations; it++) {
    char *id;
    ASSERT_MSG(tool__cp_create(r, "prop", &id, &err) == TOOL_OK, "create: %s", err);
    qc_buf log;
    qc_buf_init(&log, 1 << 16);
    int nops = 1 + (int)rnd(6);
    for (int k = 0; k < nops; k++) random_op(root, &log);
    json_t *sum;
    ASSERT_MSG(tool__cp_restore(r, id, &sum, &err) == TOOL_OK, "restore: %s", err);
    ASSERT_MSG(json_array_size(json_object_get(sum, "errors")) == 0, "iteration %d: errors after %s", it, log.data);
    json_decref(sum);
    char *after = digest(root);
    ASSERT_MSG(strcmp(after, before) == 0, "iteration %d (seed %llu): tree differs after ops: %s\nwant:\n%s\ngot:\n%s",
               it, (unsigned long long)seed, log.data, before, after);
    free(after);
    char *idx1 = file_sha(root, ".git/index"), *head1 = file_sha(root, ".git/HEAD");
    ASSERT_MSG(strcmp(idx1, idx0) == 0 && strcmp(head1, head0) == 0, "index or HEAD changed");
    free(idx1), free(head1);
    git_oid tree1;
    ASSERT_EQ_INT(tool__repo_snapshot_tree(r, &tree1, &nf, &err), TOOL_OK);
    ASSERT_MSG(git_oid_equal(&tree0, &tree1), "iteration %d: snapshot tree differs", it);
    qc_buf_release(&log);
    free(id);
  }
  free(before), free(idx0), free(head0);
}

TEST(checkpoint_property_200_sequences) {
  char *root = fixture_repo();
  tool__repo r;
  open_repo(root, &r);
  const char *s = getenv("QCT_SEED");
  tool__cp_set_durable(0); /* thousands of restored files: no fdatasync each */
  property_run(root, &r, 200, s ? strtoull(s, NULL, 10) : 20261125);
  tool__cp_set_durable(1);
  tool__repo_close(&r);
  free(root);
}

TEST(checkpoint_shadow_repository_for_plain_directory) {
  char *root = qct_tempdir("plain");
  char *state = qct_tempdir("state");
  wr(root, "main.py", "print('hi')\n");
  wr(root, "lib/util.py", "def f():\n    return 1\n");
  wr(root, ".gitignore", "*.log\n");
  wr(root, "run.log", "ignored\n");
  tool__repo r;
  char *err = NULL;
  ASSERT_EQ_INT(tool__repo_open_for_checkpoints(root, state, 0, &r, &err), TOOL_ENOENT);
  free(err);
  ASSERT_EQ_INT(tool__repo_open_for_checkpoints(root, state, 1, &r, &err), TOOL_OK);
  ASSERT(r.shadow);
  /* the user's directory gained no .git */
  char *dotgit = qc_path_join(root, ".git");
  struct stat st;
  ASSERT(lstat(dotgit, &st) != 0);
  free(dotgit);
  tool__cp_set_durable(0);
  property_run(root, &r, 40, 7);
  tool__cp_set_durable(1);
  tool__repo_close(&r);
  /* reopening finds the same shadow and its checkpoints */
  ASSERT_EQ_INT(tool__repo_open_for_checkpoints(root, state, 0, &r, &err), TOOL_OK);
  json_t *list;
  ASSERT_EQ_INT(tool__cp_list(&r, &list, &err), TOOL_OK);
  ASSERT(json_array_size(list) >= 1);
  json_decref(list);
  char *commit;
  ASSERT_EQ_INT(tool__git_commit_branch(&r, "x", "msg", &commit, &err), TOOL_ENOTREPO);
  free(err);
  tool__repo_close(&r);
  free(root);
  free(state);
}

TEST(shadow_inside_its_own_workspace_skips_itself) {
  char *root = qct_tempdir("home");
  char *state = qc_path_join(root, ".local/state/qcoder");
  wr(root, "notes.txt", "hello\n");
  tool__repo r;
  char *err = NULL;
  ASSERT_EQ_INT(tool__repo_open_for_checkpoints(root, state, 1, &r, &err), TOOL_OK);
  char *id;
  ASSERT_EQ_INT(tool__cp_create(&r, "one", &id, &err), TOOL_OK);
  free(id);
  ASSERT_EQ_INT(tool__cp_create(&r, "two", &id, &err), TOOL_OK);
  git_object *o;
  char *spec = qc_asprintf(TOOL__CP_REF_PREFIX "%s^{tree}", id);
  ASSERT(git_revparse_single(&o, r.repo, spec) == 0);
  ASSERT_EQ_INT(git_tree_entrycount((git_tree *)o), 1); /* notes.txt only */
  git_object_free(o);
  free(spec);
  json_t *sum;
  ASSERT_EQ_INT(tool__cp_restore(&r, id, &sum, &err), TOOL_OK);
  json_decref(sum);
  free(id);
  tool__repo_close(&r);
  struct stat st;
  ASSERT(stat(state, &st) == 0); /* restore did not delete the repository */
  free(state);
  free(root);
}

/* The snapshot stat cache: unchanged old files are not re-read, and a change that keeps
 * size and mtime (reset by hand) is still seen, through the ctime. */
TEST(snapshot_cache_sees_changes_behind_a_reset_mtime) {
  char *root = qct_tempdir("scache");
  char *state = qct_tempdir("scstate");
  wr(root, "a.txt", "aaaa\n");
  wr(root, "b.txt", "bbbb\n");
  char *pa = qc_path_join(root, "a.txt"), *pb = qc_path_join(root, "b.txt");
  struct timespec old[2] = {{1600000000, 0}, {1600000000, 0}};
  ASSERT(utimensat(AT_FDCWD, pa, old, 0) == 0 && utimensat(AT_FDCWD, pb, old, 0) == 0);
  tool__repo r;
  char *err = NULL;
  ASSERT_EQ_INT(tool__repo_open_for_checkpoints(root, state, 1, &r, &err), TOOL_OK);
  git_oid t1, t2, t3;
  ASSERT_EQ_INT(tool__repo_snapshot_tree(&r, &t1, NULL, &err), TOOL_OK);
  ASSERT_EQ_INT(tool__repo_snapshot_tree(&r, &t2, NULL, &err), TOOL_OK); /* from the cache */
  ASSERT(git_oid_equal(&t1, &t2));
  wr(root, "a.txt", "AAAA\n"); /* same size */
  ASSERT(utimensat(AT_FDCWD, pa, old, 0) == 0); /* same mtime */
  ASSERT_EQ_INT(tool__repo_snapshot_tree(&r, &t3, NULL, &err), TOOL_OK);
  ASSERT(!git_oid_equal(&t1, &t3));
  git_object *o;
  ASSERT(git_object_lookup(&o, r.repo, &t3, GIT_OBJECT_TREE) == 0);
  const git_tree_entry *e = git_tree_entry_byname((git_tree *)o, "a.txt");
  git_blob *b;
  ASSERT(git_blob_lookup(&b, r.repo, git_tree_entry_id(e)) == 0);
  ASSERT(memcmp(git_blob_rawcontent(b), "AAAA\n", 5) == 0);
  git_blob_free(b);
  git_object_free(o);
  tool__repo_close(&r);
  free(pa), free(pb), free(state), free(root);
}

/* A planted checkpoint whose tree names "..", ".GIT" must not write outside the working
 * tree or into .git. The tree is written raw (libgit2's tree builder refuses such names). */
TEST(restore_refuses_unsafe_tree_entries) {
  char *root = fixture_repo();
  tool__repo r;
  open_repo(root, &r);
  git_oid blob, tree, commit;
  ASSERT(git_blob_create_from_buffer(&blob, r.repo, "pwned\n", 6) == 0);
  unsigned char raw[512];
  size_t n = 0;
  const char *entry_names[] = {"..", ".GIT", "ok.txt"};
  for (int i = 0; i < 3; i++) {
    n += (size_t)sprintf((char *)raw + n, "100644 %s", entry_names[i]) + 1; /* with the NUL */
    memcpy(raw + n, blob.id, 20);
    n += 20;
  }
  git_odb *odb;
  ASSERT(git_repository_odb(&odb, r.repo) == 0);
  ASSERT(git_odb_write(&tree, odb, raw, n, GIT_OBJECT_TREE) == 0);
  git_odb_free(odb);
  git_tree *t;
  ASSERT(git_tree_lookup(&t, r.repo, &tree) == 0);
  git_signature *sig;
  git_signature_new(&sig, "x", "x@x", T0, 0);
  ASSERT(git_commit_create(&commit, r.repo, NULL, sig, sig, NULL, "evil", t, 0, NULL) == 0);
  git_signature_free(sig);
  git_tree_free(t);
  git_reference *ref;
  ASSERT(git_reference_create(&ref, r.repo, TOOL__CP_REF_PREFIX "evil", &commit, 1, NULL) == 0);
  git_reference_free(ref);
  json_t *sum;
  char *err;
  ASSERT_EQ_INT(tool__cp_restore(&r, "evil", &sum, &err), TOOL_OK);
  ASSERT(json_array_size(json_object_get(sum, "errors")) >= 1);
  json_decref(sum);
  char *p = qc_path_join(root, "ok.txt");
  char *c = qct_read_file(p, NULL);
  ASSERT_STR_EQ(c, "pwned\n"); /* the sane entry was restored */
  free(c), free(p);
  struct stat st;
  p = qc_path_join(root, ".GIT");
  ASSERT(lstat(p, &st) != 0); /* not written (it would be .git on a case-insensitive disk) */
  free(p);
  p = qc_path_join(root, ".git");
  ASSERT(lstat(p, &st) == 0 && S_ISDIR(st.st_mode));
  free(p);
  tool__repo_close(&r);
  free(root);
}

TEST(checkpoint_of_a_subdirectory_workspace) {
  char *root = fixture_repo();
  char *sub = qc_path_join(root, "src");
  tool__repo r;
  open_repo(sub, &r);
  ASSERT_STR_EQ(r.prefix, "src/");
  char *id, *err;
  ASSERT_EQ_INT(tool__cp_create(&r, "sub", &id, &err), TOOL_OK);
  wr(root, "src/util.c", "changed\n");
  wr(root, "docs/a.txt", "outside the workspace\n");
  wr(root, "src/new.c", "new\n");
  json_t *sum;
  ASSERT_EQ_INT(tool__cp_restore(&r, id, &sum, &err), TOOL_OK);
  json_decref(sum);
  char *p = qc_path_join(root, "src/util.c");
  char *c = qct_read_file(p, NULL);
  ASSERT_STR_EQ(c, "int util(void) {\n  return 1;\n}\n");
  free(c), free(p);
  p = qc_path_join(root, "src/new.c");
  ASSERT(access(p, F_OK) != 0);
  free(p);
  p = qc_path_join(root, "docs/a.txt"); /* outside: untouched */
  c = qct_read_file(p, NULL);
  ASSERT_STR_EQ(c, "outside the workspace\n");
  free(c), free(p);
  free(id);
  tool__repo_close(&r);
  free(sub);
  free(root);
}

TEST(commit_to_new_branch) {
  char *root = fixture_repo();
  tool__repo r;
  open_repo(root, &r);
  char *commit, *err;
  ASSERT_EQ_INT(tool__git_commit_branch(&r, "bad..name", "m", &commit, &err), TOOL_EARGS);
  free(err);
  ASSERT_EQ_INT(tool__git_commit_branch(&r, "master", "m", &commit, &err), TOOL_EEXISTS);
  free(err);
  ASSERT_EQ_INT(tool__git_commit_branch(&r, "qcoder/fix", "Fix things\n", &commit, &err), TOOL_OK);
  git_reference *head;
  ASSERT(git_repository_head(&head, r.repo) == 0);
  ASSERT_STR_EQ(git_reference_name(head), "refs/heads/qcoder/fix");
  git_reference_free(head);
  /* the commit has the untracked file, not the ignored ones; status is clean */
  git_object *o;
  ASSERT(git_revparse_single(&o, r.repo, "HEAD:notes.txt") == 0);
  git_object_free(o);
  ASSERT(git_revparse_single(&o, r.repo, "HEAD:app.log") != 0);
  ASSERT(git_revparse_single(&o, r.repo, "HEAD~1") == 0); /* parent: the old HEAD */
  git_object_free(o);
  qc_buf b;
  qc_buf_init(&b, TOOL__GIT_MAX_OUTPUT + 1024);
  json_t *data;
  ASSERT_EQ_INT(tool__git_status(&r, &b, &data, &err), TOOL_OK);
  ASSERT_CONTAINS(b.data, "nothing to commit");
  json_decref(data);
  qc_buf_release(&b);
  free(commit);
  tool__repo_close(&r);
  free(root);
}

QC_TEST_MAIN
