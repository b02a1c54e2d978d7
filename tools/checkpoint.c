/* checkpoint.c — snapshots of the working tree as commits under refs/qcoder/checkpoints/,
 * their list, the diff since one, the exact restore of one, and "commit the changes to a
 * new branch".
 *
 * A checkpoint is an ordinary commit object whose tree is the working tree's state (see
 * git_internal.h): `git show refs/qcoder/checkpoints/<id>` works, `git gc` keeps it
 * (it is referenced), and nothing the user sees changes: HEAD, the index and the files
 * are left alone. Its parent is HEAD's commit when there is one, so `git diff HEAD <ref>`
 * is what the agent changed on top of the last commit.
 *
 * Restore is "make the files git would show equal the checkpoint", in this order:
 *   1. .gitignore files first (extra ones removed, the checkpoint's written back), so the
 *      next listing applies the checkpoint's ignore rules: a file ignored then is never
 *      deleted now, and a file visible then is never mistaken for ignored;
 *   2. list the working tree again; remove every listed path the checkpoint lacks;
 *   3. remove directories that became empty (up to the workspace root, never above);
 *   4. write every entry whose bytes or mode differ (temp file + rename in the same
 *      directory, so a reader sees the old or the new file; symlinks recreated the same
 *      way), creating parent directories without following symlinks;
 *   each written file is fdatasync'ed before its rename (a crash leaves the old or the
 *   new bytes, never a torn file; syncfs was measured far slower on a shared disk).
 * Ignored files and .git are never listed, so never touched. A path blocked by an ignored
 * file (the checkpoint has a file where an ignored one now sits in the way) is reported
 * in summary.errors and left alone.
 */
#include "tools/git_internal.h"
#include "tools/tools.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Tests only: skip the per-file fdatasync of restore (the property test restores
 * thousands of files; durability is exercised by the other tests). */
static int cp_durable = 1;
void tool__cp_set_durable(int on) { cp_durable = on; }

#define QCODER_IDENT_NAME "qcoder"
#define QCODER_IDENT_EMAIL "qcoder@localhost"

static git_commit *head_commit(git_repository *repo) {
  git_object *o = NULL;
  if (git_revparse_single(&o, repo, "HEAD^{commit}") < 0) {
    git_error_clear();
    return NULL;
  }
  return (git_commit *)o;
}

int tool__cp_create(tool__repo *r, const char *message, char **id_out, char **errmsg) {
  *id_out = NULL;
  *errmsg = NULL;
  git_oid tree_id, commit_id;
  git_tree *tree = NULL;
  git_signature *sig = NULL;
  git_commit *parent = NULL;
  git_reference *ref = NULL;
  char *msg = NULL, *refname = NULL;
  size_t nfiles = 0;
  int rc = tool__repo_snapshot_tree(r, &tree_id, &nfiles, errmsg);
  if (rc != TOOL_OK) goto out;
  if (git_tree_lookup(&tree, r->repo, &tree_id) < 0 ||
      git_signature_now(&sig, QCODER_IDENT_NAME, QCODER_IDENT_EMAIL) < 0) {
    *errmsg = tool__git_errmsg("cannot prepare the checkpoint commit");
    rc = TOOL_EFAILED;
    goto out;
  }
  if (!r->shadow) parent = head_commit(r->repo);
  msg = qc_asprintf("%s\n\nqcoder checkpoint of %s (%zu files)\n",
                    message && *message ? message : "checkpoint",
                    *r->prefix ? r->prefix : "the working tree", nfiles);
  if (!msg) {
    rc = TOOL_ENOMEM;
    goto out;
  }
  const git_commit *parents[1] = {parent};
  if (git_commit_create(&commit_id, r->repo, NULL, sig, sig, NULL, msg, tree, parent ? 1 : 0,
                        parents) < 0) {
    *errmsg = tool__git_errmsg("cannot write the checkpoint commit");
    rc = TOOL_EFAILED;
    goto out;
  }
  char stamp[32], hex[GIT_OID_HEXSZ + 1];
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  struct tm tm;
  gmtime_r(&now.tv_sec, &tm);
  strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &tm);
  git_oid_tostr(hex, sizeof hex, &commit_id);
  /* milliseconds in the id: ids sort in the order they were taken */
  *id_out = qc_asprintf("%s.%03ldZ-%.8s", stamp, (long)(now.tv_nsec / 1000000), hex);
  refname = *id_out ? qc_asprintf(TOOL__CP_REF_PREFIX "%s", *id_out) : NULL;
  if (!refname) {
    rc = TOOL_ENOMEM;
    goto out;
  }
  if (git_reference_create(&ref, r->repo, refname, &commit_id, 1, "qcoder checkpoint") < 0) {
    *errmsg = tool__git_errmsg("cannot create the checkpoint reference");
    rc = TOOL_EFAILED;
    goto out;
  }
out:
  if (rc != TOOL_OK) {
    free(*id_out);
    *id_out = NULL;
  }
  git_reference_free(ref);
  git_commit_free(parent);
  git_signature_free(sig);
  git_tree_free(tree);
  free(msg);
  free(refname);
  return rc;
}

/* ---- listing and resolving ------------------------------------------------------- */

typedef struct cp_item {
  char *id;
  git_oid commit;
  int64_t time;
} cp_item;

typedef struct cp_list {
  cp_item *v;
  size_t n, cap;
  git_repository *repo;
} cp_list;

static int collect_cb(const char *name, void *payload) {
  cp_list *l = payload;
  git_oid oid;
  if (git_reference_name_to_id(&oid, l->repo, name) < 0) {
    git_error_clear();
    return 0;
  }
  git_commit *c = NULL;
  if (git_commit_lookup(&c, l->repo, &oid) < 0) {
    git_error_clear();
    return 0;
  }
  if (l->n == l->cap) {
    size_t nc = l->cap ? l->cap * 2 : 32;
    cp_item *nv = realloc(l->v, nc * sizeof *nv);
    if (!nv) {
      git_commit_free(c);
      return -1;
    }
    l->v = nv;
    l->cap = nc;
  }
  cp_item *it = &l->v[l->n];
  it->id = qc_strndup(name + strlen(TOOL__CP_REF_PREFIX), strlen(name) - strlen(TOOL__CP_REF_PREFIX));
  it->commit = oid;
  it->time = (int64_t)git_commit_time(c);
  git_commit_free(c);
  if (!it->id) return -1;
  l->n++;
  return 0;
}

/* Newest first: ids begin with their UTC time to the millisecond, so they sort in the
 * order taken; the commit time (seconds) orders refs that do not follow the format. */
static int item_cmp(const void *a, const void *b) {
  const cp_item *x = a, *y = b;
  if (x->time != y->time && (strlen(x->id) != 29 || strlen(y->id) != 29))
    return x->time > y->time ? -1 : 1;
  return -strcmp(x->id, y->id);
}

static void cp_list_free(cp_list *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i].id);
  free(l->v);
}

static int collect(tool__repo *r, cp_list *l, char **errmsg) {
  memset(l, 0, sizeof *l);
  l->repo = r->repo;
  int e = git_reference_foreach_glob(r->repo, TOOL__CP_REF_PREFIX "*", collect_cb, l);
  if (e < 0 && e != GIT_ENOTFOUND) {
    *errmsg = tool__git_errmsg("cannot list checkpoints");
    cp_list_free(l);
    memset(l, 0, sizeof *l);
    return TOOL_EFAILED;
  }
  if (l->n) qsort(l->v, l->n, sizeof *l->v, item_cmp);
  return TOOL_OK;
}

int tool__cp_list(tool__repo *r, json_t **out, char **errmsg) {
  *errmsg = NULL;
  cp_list l;
  int rc = collect(r, &l, errmsg);
  if (rc != TOOL_OK) return rc;
  json_t *arr = json_array();
  for (size_t i = 0; arr && i < l.n; i++) {
    git_commit *c = NULL;
    if (git_commit_lookup(&c, r->repo, &l.v[i].commit) < 0) continue;
    char hex[GIT_OID_HEXSZ + 1], iso[32];
    git_oid_tostr(hex, sizeof hex, &l.v[i].commit);
    qc_iso8601(l.v[i].time * 1000, iso, sizeof iso);
    const char *summary = git_commit_summary(c);
    char *safe = qc_utf8_sanitize(summary ? summary : "", summary ? strlen(summary) : 0, NULL);
    json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:I, s:s}", "id", l.v[i].id, "commit",
                                         hex, "time", iso, "time_ms", (json_int_t)l.v[i].time * 1000,
                                         "message", safe ? safe : ""));
    free(safe);
    git_commit_free(c);
  }
  cp_list_free(&l);
  if (!arr) return TOOL_ENOMEM;
  *out = arr;
  return TOOL_OK;
}

int tool__cp_resolve(tool__repo *r, const char *id, git_oid *commit, char **full_id,
                     char **errmsg) {
  *errmsg = NULL;
  if (full_id) *full_id = NULL;
  cp_list l;
  int rc = collect(r, &l, errmsg);
  if (rc != TOOL_OK) return rc;
  size_t hit = (size_t)-1, nhits = 0;
  if (!id || !*id || strcmp(id, "latest") == 0) {
    if (l.n) hit = 0, nhits = 1;
  } else {
    size_t il = strlen(id);
    for (size_t i = 0; i < l.n; i++) {
      char hex[GIT_OID_HEXSZ + 1];
      git_oid_tostr(hex, sizeof hex, &l.v[i].commit);
      if (strcmp(l.v[i].id, id) == 0) { /* exact beats any prefix */
        hit = i, nhits = 1;
        break;
      }
      if (strncmp(l.v[i].id, id, il) == 0 || (il >= 7 && strncmp(hex, id, il) == 0)) {
        if (hit == (size_t)-1) hit = i;
        nhits++;
      }
    }
  }
  if (nhits == 0) {
    *errmsg = l.n ? qc_asprintf("no checkpoint '%s' (see `qcoder checkpoint list`)", id ? id : "")
                  : qc_asprintf("there are no checkpoints yet");
    rc = TOOL_ENOENT;
  } else if (nhits > 1) {
    *errmsg = qc_asprintf("'%s' matches %zu checkpoints; give more of the id", id, nhits);
    rc = TOOL_EARGS;
  } else {
    *commit = l.v[hit].commit;
    if (full_id) *full_id = qc_strndup(l.v[hit].id, strlen(l.v[hit].id));
  }
  cp_list_free(&l);
  return rc;
}

int tool__cp_prune(tool__repo *r, size_t keep, int64_t older_than_s, size_t *removed, char **errmsg) {
  *errmsg = NULL;
  *removed = 0;
  cp_list l;
  int rc = collect(r, &l, errmsg);
  if (rc != TOOL_OK) return rc;
  int64_t cutoff = (int64_t)time(NULL) - older_than_s;
  for (size_t i = keep; i < l.n; i++) { /* newest first: the first `keep` stay */
    if (l.v[i].time > cutoff) continue;
    char *name = qc_asprintf(TOOL__CP_REF_PREFIX "%s", l.v[i].id);
    git_reference *ref = NULL;
    if (name && git_reference_lookup(&ref, r->repo, name) == 0 && git_reference_delete(ref) == 0)
      (*removed)++;
    else
      git_error_clear();
    git_reference_free(ref);
    free(name);
  }
  cp_list_free(&l);
  return TOOL_OK;
}

/* ---- diff ------------------------------------------------------------------------ */

typedef struct patch_ctx {
  qc_buf *out;
  size_t max;
  int cut;
} patch_ctx;

static int print_cb(const git_diff_delta *d, const git_diff_hunk *h, const git_diff_line *line,
                    void *payload) {
  patch_ctx *p = payload;
  if (p->cut) return 0;
  char origin = line->origin;
  size_t need = line->content_len + 1;
  if (p->max && p->out->len + need > p->max) {
    qc_buf_printf(p->out, "\n[patch cut at %zu bytes]\n", p->max);
    p->cut = 1;
    return 0;
  }
  if (origin == GIT_DIFF_LINE_CONTEXT || origin == GIT_DIFF_LINE_ADDITION ||
      origin == GIT_DIFF_LINE_DELETION)
    qc_buf_putc(p->out, origin);
  qc_buf_append(p->out, line->content, line->content_len);
  return 0;
}

int tool__cp_diff(tool__repo *r, const char *id, size_t max, char **patch, json_t **stats,
                  char **errmsg) {
  *patch = NULL;
  if (stats) *stats = NULL;
  git_oid cid, now_tree;
  git_commit *c = NULL;
  git_tree *from = NULL, *to = NULL;
  git_diff *d = NULL;
  git_diff_stats *st = NULL;
  qc_buf b;
  qc_buf_init(&b, max ? max + 1024 : ((size_t)1 << 31));
  int rc = tool__cp_resolve(r, id, &cid, NULL, errmsg);
  if (rc != TOOL_OK) goto out;
  rc = tool__repo_snapshot_tree(r, &now_tree, NULL, errmsg);
  if (rc != TOOL_OK) goto out;
  git_diff_options o = GIT_DIFF_OPTIONS_INIT;
  o.flags = GIT_DIFF_SHOW_BINARY;
  if (git_commit_lookup(&c, r->repo, &cid) < 0 || git_commit_tree(&from, c) < 0 ||
      git_tree_lookup(&to, r->repo, &now_tree) < 0 ||
      git_diff_tree_to_tree(&d, r->repo, from, to, &o) < 0) {
    *errmsg = tool__git_errmsg("cannot diff against the checkpoint");
    rc = TOOL_EFAILED;
    goto out;
  }
  patch_ctx pc = {&b, max, 0};
  if (git_diff_print(d, GIT_DIFF_FORMAT_PATCH, print_cb, &pc) < 0) {
    *errmsg = tool__git_errmsg("cannot print the diff");
    rc = TOOL_EFAILED;
    goto out;
  }
  if (stats && git_diff_get_stats(&st, d) == 0)
    *stats = json_pack("{s:I, s:I, s:I}", "files_changed", (json_int_t)git_diff_stats_files_changed(st),
                       "insertions", (json_int_t)git_diff_stats_insertions(st), "deletions",
                       (json_int_t)git_diff_stats_deletions(st));
  *patch = qc_buf_detach(&b, NULL);
  if (!*patch) rc = TOOL_ENOMEM;
out:
  git_diff_stats_free(st);
  git_diff_free(d);
  git_tree_free(from);
  git_tree_free(to);
  git_commit_free(c);
  qc_buf_release(&b);
  return rc;
}

/* ---- restore --------------------------------------------------------------------- */

typedef struct tentry {
  char *path;
  git_filemode_t mode;
  git_oid id;
} tentry;

typedef struct tentries {
  tentry *v;
  size_t n, cap;
  int oom;
  size_t unsafe;   /* entries refused by safe_name */
} tentries;

/* A tree entry name qcoder will write: a checkpoint ref could have been planted by
 * whoever controls the repository, so names that would step out of the working tree or
 * into .git ("", ".", "..", ".git" in any case, anything with '/' or '\\') are refused. */
static int safe_name(const char *n) {
  if (!*n || strcmp(n, ".") == 0 || strcmp(n, "..") == 0 || strcasecmp(n, ".git") == 0) return 0;
  return strchr(n, '/') == NULL && strchr(n, '\\') == NULL;
}

static int tree_walk_cb(const char *root, const git_tree_entry *e, void *payload) {
  tentries *t = payload;
  git_filemode_t m = git_tree_entry_filemode(e);
  if (!safe_name(git_tree_entry_name(e))) {
    t->unsafe++;
    return 1; /* skip it (and, for a tree, everything below) */
  }
  if (m != GIT_FILEMODE_BLOB && m != GIT_FILEMODE_BLOB_EXECUTABLE && m != GIT_FILEMODE_LINK)
    return 0;
  if (t->n == t->cap) {
    size_t nc = t->cap ? t->cap * 2 : 256;
    tentry *nv = realloc(t->v, nc * sizeof *nv);
    if (!nv) return t->oom = 1, -1;
    t->v = nv;
    t->cap = nc;
  }
  tentry *x = &t->v[t->n];
  x->path = qc_asprintf("%s%s", root, git_tree_entry_name(e));
  if (!x->path) return t->oom = 1, -1;
  x->mode = m;
  x->id = *git_tree_entry_id(e);
  t->n++;
  return 0;
}

static int tentry_cmp(const void *a, const void *b) {
  return strcmp(((const tentry *)a)->path, ((const tentry *)b)->path);
}

static const tentry *tfind(const tentries *t, const char *path) {
  tentry key = {(char *)path, 0, {{0}}};
  return t->n ? bsearch(&key, t->v, t->n, sizeof *t->v, tentry_cmp) : NULL;
}

static int is_gitignore(const char *path) {
  const char *b = strrchr(path, '/');
  return strcmp(b ? b + 1 : path, ".gitignore") == 0;
}

typedef struct restore_ctx {
  tool__repo *r;
  tentries *t;
  json_t *errors;
  size_t restored, removed, unchanged;
  char **listed;      /* current listing */
  size_t nlisted, caplisted;
} restore_ctx;

static void add_error(restore_ctx *c, const char *path, const char *why) {
  json_array_append_new(c->errors, json_pack("{s:s, s:s}", "path", path, "error", why));
}

static int listed_cb(void *user, const char *path) {
  restore_ctx *c = user;
  if (c->nlisted == c->caplisted) {
    size_t nc = c->caplisted ? c->caplisted * 2 : 256;
    char **nv = realloc(c->listed, nc * sizeof *nv);
    if (!nv) return TOOL_ENOMEM;
    c->listed = nv;
    c->caplisted = nc;
  }
  c->listed[c->nlisted] = qc_strndup(path, strlen(path));
  if (!c->listed[c->nlisted]) return TOOL_ENOMEM;
  c->nlisted++;
  return 0;
}

static void listed_free(restore_ctx *c) {
  for (size_t i = 0; i < c->nlisted; i++) free(c->listed[i]);
  free(c->listed);
  c->listed = NULL;
  c->nlisted = c->caplisted = 0;
}

/* Remove empty directories from `rel`'s parent upward, stopping at the workspace root. */
static void prune_dirs(restore_ctx *c, const char *rel) {
  size_t plen = strlen(c->r->prefix);
  char *p = qc_asprintf("%s%s", c->r->workdir, rel);
  if (!p) return;
  size_t floor = strlen(c->r->workdir) + plen;
  for (;;) {
    char *slash = strrchr(p, '/');
    if (!slash || (size_t)(slash - p) <= floor) break;
    *slash = 0;
    if (rmdir(p) != 0) break;
  }
  free(p);
}

/* Parent directories of `abs` (below the workdir) exist as real directories? Create
 * missing ones without following symlinks. 0, or -1 with *why set. */
static int make_parents(const char *workdir, const char *abs, const char **why) {
  size_t wl = strlen(workdir);
  char *p = qc_strndup(abs, strlen(abs));
  if (!p) return *why = "out of memory", -1;
  for (char *s = p + wl; (s = strchr(s, '/')) != NULL; s++) {
    *s = 0;
    struct stat st;
    if (lstat(p, &st) == 0) {
      if (!S_ISDIR(st.st_mode)) {
        *s = '/';
        free(p);
        return *why = "an ignored file or a symlink is in the way of its directory", -1;
      }
    } else if (errno != ENOENT || mkdir(p, 0777) != 0) {
      *s = '/';
      free(p);
      return *why = "cannot create its directory", -1;
    }
    *s = '/';
  }
  free(p);
  return 0;
}

/* Remove a directory tree that holds no files at all (only empty directories), depth
 * first; 0 when it is gone. Anything else inside (an ignored file) stops it. */
static int remove_empty_tree(const char *dir, int depth) {
  if (depth > 64) return -1;
  DIR *d = opendir(dir);
  if (!d) return -1;
  struct dirent *e;
  int rc = 0;
  while (rc == 0 && (e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char *p = qc_asprintf("%s/%s", dir, e->d_name);
    struct stat st;
    if (!p || lstat(p, &st) != 0 || !S_ISDIR(st.st_mode)) rc = -1;
    else rc = remove_empty_tree(p, depth + 1);
    free(p);
  }
  closedir(d);
  return rc == 0 ? rmdir(dir) : rc;
}

/* Is the file at `abs` already the entry (same kind, bytes and executable bit)? */
static int same_as_entry(git_repository *repo, const char *abs, const tentry *e) {
  struct stat st;
  if (lstat(abs, &st) != 0) return 0;
  if (e->mode == GIT_FILEMODE_LINK) {
    if (!S_ISLNK(st.st_mode)) return 0;
    char target[PATH_MAX];
    ssize_t n = readlink(abs, target, sizeof target);
    git_oid id;
    return n >= 0 && git_odb_hash(&id, target, (size_t)n, GIT_OBJECT_BLOB) == 0 &&
           git_oid_equal(&id, &e->id);
  }
  if (!S_ISREG(st.st_mode)) return 0;
  int want_x = e->mode == GIT_FILEMODE_BLOB_EXECUTABLE;
  if (want_x != ((st.st_mode & 0111) != 0)) return 0;
  git_oid id;
  (void)repo;
  if (git_odb_hashfile(&id, abs, GIT_OBJECT_BLOB) < 0) {
    git_error_clear();
    return 0;
  }
  return git_oid_equal(&id, &e->id);
}

/* Write one entry atomically (temp name in the same directory, then rename). */
static int write_entry(restore_ctx *c, const tentry *e) {
  const char *why = NULL;
  char *abs = qc_asprintf("%s%s", c->r->workdir, e->path);
  char *tmp = NULL;
  git_blob *blob = NULL;
  int fd = -1, rc = -1;
  if (!abs) return -1;
  if (same_as_entry(c->r->repo, abs, e)) {
    c->unchanged++;
    free(abs);
    return 0;
  }
  if (make_parents(c->r->workdir, abs, &why) != 0) goto out;
  struct stat st;
  int exists = lstat(abs, &st) == 0;
  if (exists && S_ISDIR(st.st_mode)) {
    if (remove_empty_tree(abs, 0) != 0) {
      why = "a directory holding ignored files is in the way";
      goto out;
    }
    exists = 0;
  }
  if (git_blob_lookup(&blob, c->r->repo, &e->id) < 0) {
    git_error_clear();
    why = "its content is missing from the object database";
    goto out;
  }
  const char *data = git_blob_rawcontent(blob);
  size_t len = (size_t)git_blob_rawsize(blob);
  char *slash = strrchr(abs, '/');
  tmp = qc_asprintf("%.*s/.qcoder-restore-XXXXXX", (int)(slash - abs), abs);
  if (!tmp) goto out;
  if (e->mode == GIT_FILEMODE_LINK) {
    /* mkstemp gives a unique name; replace the file with the link */
    fd = mkstemp(tmp);
    if (fd < 0) {
      why = "cannot create a temporary file";
      goto out;
    }
    close(fd);
    fd = -1;
    unlink(tmp);
    char *target = qc_strndup(data, len);
    int ok = target && symlink(target, tmp) == 0;
    free(target);
    if (!ok) {
      why = "cannot create the symlink";
      goto out;
    }
  } else {
    fd = mkstemp(tmp);
    if (fd < 0) {
      why = "cannot create a temporary file";
      goto out;
    }
    size_t off = 0;
    while (off < len) {
      ssize_t w = write(fd, data + off, len - off);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        why = "write failed";
        goto out;
      }
      off += (size_t)w;
    }
    mode_t mode;
    if (exists && S_ISREG(st.st_mode)) /* keep the read/write bits the user chose */
      mode = (st.st_mode & 0666) | (e->mode == GIT_FILEMODE_BLOB_EXECUTABLE ? (st.st_mode & 0444) >> 2 : 0);
    else
      mode = e->mode == GIT_FILEMODE_BLOB_EXECUTABLE ? 0755 : 0644;
    if (fchmod(fd, mode) != 0 || (cp_durable && fdatasync(fd) != 0) || close(fd) != 0) {
      fd = -1;
      why = "cannot set the file mode";
      goto out;
    }
    fd = -1;
  }
  if (rename(tmp, abs) != 0) {
    why = "cannot move the file into place";
    goto out;
  }
  free(tmp);
  tmp = NULL;
  c->restored++;
  rc = 0;
out:
  if (fd >= 0) close(fd);
  if (tmp) unlink(tmp);
  if (rc != 0 && why) add_error(c, e->path, why);
  free(tmp);
  free(abs);
  git_blob_free(blob);
  return why ? 0 : rc; /* a per-path problem is reported, not fatal */
}

int tool__cp_restore(tool__repo *r, const char *id, json_t **summary, char **errmsg) {
  *summary = NULL;
  *errmsg = NULL;
  git_oid cid;
  git_commit *commit = NULL;
  git_tree *tree = NULL;
  tentries t = {0};
  restore_ctx c = {0};
  c.r = r;
  c.t = &t;
  c.errors = json_array();
  int rc = tool__cp_resolve(r, id, &cid, NULL, errmsg);
  if (rc != TOOL_OK) goto out;
  if (!c.errors) {
    rc = TOOL_ENOMEM;
    goto out;
  }
  if (git_commit_lookup(&commit, r->repo, &cid) < 0 || git_commit_tree(&tree, commit) < 0 ||
      git_tree_walk(tree, GIT_TREEWALK_PRE, tree_walk_cb, &t) < 0) {
    *errmsg = t.oom ? qc_strndup("out of memory", 13) : tool__git_errmsg("cannot read the checkpoint");
    rc = t.oom ? TOOL_ENOMEM : TOOL_EFAILED;
    goto out;
  }
  if (t.n) qsort(t.v, t.n, sizeof *t.v, tentry_cmp);
  if (t.unsafe) add_error(&c, "(checkpoint)", "entries with unsafe names (.., .git) were skipped");
  size_t plen = strlen(r->prefix);

  /* 1. ignore rules first */
  rc = tool__repo_foreach_file(r, listed_cb, &c, errmsg);
  if (rc != TOOL_OK) goto out;
  for (size_t i = 0; i < c.nlisted; i++) {
    if (!is_gitignore(c.listed[i]) || tfind(&t, c.listed[i])) continue;
    char *abs = qc_asprintf("%s%s", r->workdir, c.listed[i]);
    if (abs && unlink(abs) == 0) c.removed++;
    free(abs);
  }
  for (size_t i = 0; i < t.n; i++)
    if (is_gitignore(t.v[i].path) && strncmp(t.v[i].path, r->prefix, plen) == 0)
      write_entry(&c, &t.v[i]);
  listed_free(&c);

  /* 2. remove what the checkpoint lacks (listed under its ignore rules) */
  rc = tool__repo_foreach_file(r, listed_cb, &c, errmsg);
  if (rc != TOOL_OK) goto out;
  for (size_t i = 0; i < c.nlisted; i++) {
    if (tfind(&t, c.listed[i])) continue;
    char *abs = qc_asprintf("%s%s", r->workdir, c.listed[i]);
    if (!abs) {
      rc = TOOL_ENOMEM;
      goto out;
    }
    if (unlink(abs) == 0) c.removed++;
    else if (errno != ENOENT) add_error(&c, c.listed[i], strerror(errno));
    free(abs);
  }
  /* 3. directories left empty */
  for (size_t i = 0; i < c.nlisted; i++)
    if (!tfind(&t, c.listed[i])) prune_dirs(&c, c.listed[i]);
  listed_free(&c);

  /* 4. write back what differs */
  for (size_t i = 0; i < t.n; i++) {
    if (strncmp(t.v[i].path, r->prefix, plen) != 0 || is_gitignore(t.v[i].path)) continue;
    if (write_entry(&c, &t.v[i]) != 0) {
      rc = TOOL_ENOMEM;
      goto out;
    }
  }

  *summary = json_pack("{s:I, s:I, s:I, s:O}", "restored", (json_int_t)c.restored, "removed",
                       (json_int_t)c.removed, "unchanged", (json_int_t)c.unchanged, "errors",
                       c.errors);
  if (!*summary) rc = TOOL_ENOMEM;
out:
  listed_free(&c);
  json_decref(c.errors);
  for (size_t i = 0; i < t.n; i++) free(t.v[i].path);
  free(t.v);
  git_tree_free(tree);
  git_commit_free(commit);
  return rc;
}

/* ---- commit to a new branch ------------------------------------------------------ */

int tool__git_commit_branch(tool__repo *r, const char *branch, const char *message,
                            char **commit_out, char **errmsg) {
  *commit_out = NULL;
  *errmsg = NULL;
  if (r->shadow) {
    *errmsg = qc_asprintf("the workspace is not a git repository; nothing to commit to");
    return TOOL_ENOTREPO;
  }
  if (!message || !*message) {
    *errmsg = qc_asprintf("a commit message is required");
    return TOOL_EARGS;
  }
  char *refname = qc_asprintf("refs/heads/%s", branch ? branch : "");
  git_signature *sig = NULL;
  git_commit *parent = NULL;
  git_tree *tree = NULL;
  git_reference *ref = NULL;
  git_index *idx = NULL;
  char *saved_prefix = r->prefix;
  int rc = TOOL_OK, valid = 0;
  if (!refname) return TOOL_ENOMEM;
  if (!branch || !*branch || git_reference_name_is_valid(&valid, refname) < 0 || !valid) {
    *errmsg = qc_asprintf("'%s' is not a valid branch name", branch ? branch : "");
    rc = TOOL_EARGS;
    goto out;
  }
  git_oid existing;
  if (git_reference_name_to_id(&existing, r->repo, refname) == 0) {
    *errmsg = qc_asprintf("branch '%s' already exists", branch);
    rc = TOOL_EEXISTS;
    goto out;
  }
  git_error_clear();
  /* the commit holds the whole working tree (like `git add -A` from any directory) */
  git_oid tree_id, commit_id;
  r->prefix = "";
  rc = tool__repo_snapshot_tree(r, &tree_id, NULL, errmsg);
  r->prefix = saved_prefix;
  if (rc != TOOL_OK) goto out;
  if (git_signature_default(&sig, r->repo) < 0) {
    git_error_clear();
    if (git_signature_now(&sig, QCODER_IDENT_NAME, QCODER_IDENT_EMAIL) < 0) {
      *errmsg = tool__git_errmsg("cannot make a signature");
      rc = TOOL_EFAILED;
      goto out;
    }
  }
  parent = head_commit(r->repo);
  const git_commit *parents[1] = {parent};
  if (git_tree_lookup(&tree, r->repo, &tree_id) < 0 ||
      git_commit_create(&commit_id, r->repo, NULL, sig, sig, NULL, message, tree, parent ? 1 : 0,
                        parents) < 0 ||
      git_reference_create(&ref, r->repo, refname, &commit_id, 0, "qcoder: commit to new branch") < 0) {
    *errmsg = tool__git_errmsg("cannot create the commit");
    rc = TOOL_EFAILED;
    goto out;
  }
  /* as after `git switch -c && git commit -a`: HEAD on the branch, index = the commit */
  if (git_repository_set_head(r->repo, refname) < 0 || git_repository_index(&idx, r->repo) < 0 ||
      git_index_read_tree(idx, tree) < 0 || git_index_write(idx) < 0) {
    *errmsg = tool__git_errmsg("the commit was made but HEAD or the index could not be updated");
    rc = TOOL_EFAILED;
    goto out;
  }
  char hex[GIT_OID_HEXSZ + 1];
  git_oid_tostr(hex, sizeof hex, &commit_id);
  *commit_out = qc_strndup(hex, strlen(hex));
  if (!*commit_out) rc = TOOL_ENOMEM;
out:
  r->prefix = saved_prefix;
  git_index_free(idx);
  git_reference_free(ref);
  git_tree_free(tree);
  git_commit_free(parent);
  git_signature_free(sig);
  free(refname);
  return rc;
}
