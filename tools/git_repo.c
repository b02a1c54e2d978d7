/* git_repo.c — finding a workspace's repository (or its shadow), listing the files git
 * would show, and snapshotting them into a tree without touching the index or HEAD.
 * The rules are in git_internal.h.
 */
#include "tools/git_internal.h"
#include "tools/tools.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static pthread_once_t git_once = PTHREAD_ONCE_INIT;
static void git_init_once(void) { git_libgit2_init(); }
void tool__git_init(void) { pthread_once(&git_once, git_init_once); }

char *tool__git_errmsg(const char *what) {
  const git_error *e = git_error_last();
  return qc_asprintf("%s: %s", what, e && e->message ? e->message : "unknown libgit2 error");
}

/* ---- capped output --------------------------------------------------------------- */

void tool__out_append(qc_buf *out, const char *s, size_t n) {
  if (out->len > TOOL__GIT_MAX_OUTPUT) return; /* already cut */
  size_t room = TOOL__GIT_MAX_OUTPUT - out->len;
  if (n <= room) {
    qc_buf_append(out, s, n);
    return;
  }
  qc_buf_append(out, s, qc_utf8_complete_len(s, room));
  /* the marker takes len past the cap, which is how later appends know to stop; the
   * caller's buffer allows TOOL__GIT_MAX_OUTPUT + 1024 bytes */
  qc_buf_printf(out, "\n[output cut at %u KiB; narrow the request (a path, fewer lines or commits)]\n",
                TOOL__GIT_MAX_OUTPUT / 1024);
}

void tool__out_printf(qc_buf *out, const char *fmt, ...) {
  char small[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof small) {
    tool__out_append(out, small, (size_t)n);
    return;
  }
  char *big = malloc((size_t)n + 1);
  if (!big) return;
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  tool__out_append(out, big, (size_t)n);
  free(big);
}

/* ---- opening --------------------------------------------------------------------- */

void tool__repo_close(tool__repo *r) {
  if (r->repo) git_repository_free(r->repo);
  free(r->workdir);
  free(r->prefix);
  memset(r, 0, sizeof *r);
}

/* Fill workdir and prefix from an open repository and the workspace root. */
static int set_paths(tool__repo *r, const char *root, char **errmsg) {
  const char *wd = git_repository_workdir(r->repo);
  if (!wd) {
    *errmsg = qc_asprintf("the repository at %s is bare (it has no working tree)",
                          git_repository_path(r->repo));
    return TOOL_ENOTREPO;
  }
  char rwd[PATH_MAX], rroot[PATH_MAX];
  if (!realpath(wd, rwd) || !realpath(root, rroot)) {
    *errmsg = qc_asprintf("cannot resolve %s: %s", wd, strerror(errno));
    return TOOL_EIO;
  }
  size_t wl = strlen(rwd);
  if (strcmp(rwd, "/") == 0) wl = 0;
  if (strncmp(rroot, rwd, wl) != 0 || (rroot[wl] != '/' && rroot[wl] != 0)) {
    *errmsg = qc_asprintf("the workspace %s is outside the working tree %s", rroot, rwd);
    return TOOL_ENOTREPO;
  }
  r->workdir = qc_asprintf("%.*s/", (int)wl, rwd);
  const char *rest = rroot + wl;
  while (*rest == '/') rest++;
  r->prefix = *rest ? qc_asprintf("%s/", rest) : qc_strndup("", 0);
  if (!r->workdir || !r->prefix) return TOOL_ENOMEM;
  return TOOL_OK;
}

int tool__repo_open(const char *root, tool__repo *out, char **errmsg) {
  memset(out, 0, sizeof *out);
  *errmsg = NULL;
  tool__git_init();
  int e = git_repository_open_ext(&out->repo, root, 0, NULL);
  if (e == GIT_ENOTFOUND) {
    *errmsg = qc_asprintf("%s is not inside a git repository", root);
    return TOOL_ENOTREPO;
  }
  if (e == GIT_EOWNER) {
    *errmsg = tool__git_errmsg("refusing a repository owned by another user");
    return TOOL_EDENIED;
  }
  if (e < 0) {
    *errmsg = tool__git_errmsg("cannot open the repository");
    return TOOL_EFAILED;
  }
  int rc = set_paths(out, root, errmsg);
  if (rc != TOOL_OK) tool__repo_close(out);
  return rc;
}

int tool__repo_open_shadow(const char *root, const char *state_dir, int create, tool__repo *out,
                           char **errmsg) {
  memset(out, 0, sizeof *out);
  *errmsg = NULL;
  tool__git_init();
  int rc = TOOL_OK;
  char *state = state_dir ? qc_strndup(state_dir, strlen(state_dir)) : qc_state_dir();
  char *base = NULL, *dir = NULL, rroot[PATH_MAX];
  if (!state) {
    *errmsg = qc_asprintf("no state directory (set QCODER_STATE_DIR or HOME)");
    return TOOL_EFAILED;
  }
  if (!realpath(root, rroot)) {
    *errmsg = qc_asprintf("cannot resolve %s: %s", root, strerror(errno));
    rc = TOOL_EIO;
    goto out;
  }
  char hex[65];
  qc_sha256_hex(rroot, strlen(rroot), hex);
  base = qc_path_join(state, "checkpoints");
  dir = base ? qc_asprintf("%s/%.16s", base, hex) : NULL;
  if (!dir) {
    rc = TOOL_ENOMEM;
    goto out;
  }
  struct stat st;
  if (stat(dir, &st) != 0) {
    if (!create) {
      *errmsg = qc_asprintf("no checkpoints for %s yet", rroot);
      rc = TOOL_ENOENT;
      goto out;
    }
    if (qc_mkdir_p(base, 0700) != QC_OK) {
      *errmsg = qc_asprintf("cannot create %s", base);
      rc = TOOL_EIO;
      goto out;
    }
    git_repository_init_options o = GIT_REPOSITORY_INIT_OPTIONS_INIT;
    /* created bare: given a workdir, libgit2 would write a .git link file into the
     * user's directory; the workdir is attached in memory below instead */
    o.flags = GIT_REPOSITORY_INIT_MKPATH | GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_NO_REINIT;
    o.description = "qcoder checkpoints of a directory that is not a git repository";
    if (git_repository_init_ext(&out->repo, dir, &o) < 0) {
      *errmsg = tool__git_errmsg("cannot create the checkpoint repository");
      rc = TOOL_EFAILED;
      goto out;
    }
    char *note = qc_path_join(dir, "qcoder-workspace");
    FILE *f = note ? fopen(note, "w") : NULL;
    if (f) {
      fprintf(f, "%s\n", rroot);
      fclose(f);
    }
    free(note);
  } else if (git_repository_open_bare(&out->repo, dir) < 0) {
    *errmsg = tool__git_errmsg("cannot open the checkpoint repository");
    rc = TOOL_EFAILED;
    goto out;
  }
  /* opened bare (no discovery through the workspace); point it at the workspace */
  if (git_repository_set_workdir(out->repo, rroot, 0) < 0) {
    *errmsg = tool__git_errmsg("cannot attach the checkpoint repository to the workspace");
    rc = TOOL_EFAILED;
    goto out;
  }
  out->shadow = 1;
  rc = set_paths(out, rroot, errmsg);
out:
  if (rc != TOOL_OK) tool__repo_close(out);
  free(state);
  free(base);
  free(dir);
  return rc;
}

int tool__repo_open_for_checkpoints(const char *root, const char *state_dir, int create,
                                    tool__repo *out, char **errmsg) {
  int rc = tool__repo_open(root, out, errmsg);
  if (rc != TOOL_ENOTREPO) return rc;
  free(*errmsg);
  *errmsg = NULL;
  return tool__repo_open_shadow(root, state_dir, create, out, errmsg);
}

/* ---- enumeration ----------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct strv {
  char **v;
  size_t n, cap;
} strv;

static int strv_push(strv *s, const char *p) {
  if (s->n == s->cap) {
    size_t nc = s->cap ? s->cap * 2 : 256;
    char **nv = realloc(s->v, nc * sizeof *nv);
    if (!nv) return -1;
    s->v = nv;
    s->cap = nc;
  }
  s->v[s->n] = qc_strndup(p, strlen(p));
  return s->v[s->n] ? (int)(s->n++, 0) : -1;
}

static void strv_free(strv *s) {
  for (size_t i = 0; i < s->n; i++) free(s->v[i]);
  free(s->v);
  memset(s, 0, sizeof *s);
}

/* Candidate paths from status, then kept only when a file or symlink is there. */
static int list_files(tool__repo *r, strv *files, char **errmsg) {
  git_status_options o = GIT_STATUS_OPTIONS_INIT;
  o.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
  o.flags = GIT_STATUS_OPT_INCLUDE_UNTRACKED | GIT_STATUS_OPT_RECURSE_UNTRACKED_DIRS |
            GIT_STATUS_OPT_INCLUDE_UNMODIFIED | GIT_STATUS_OPT_EXCLUDE_SUBMODULES |
            GIT_STATUS_OPT_SORT_CASE_SENSITIVELY;
  char *spec = NULL;
  if (*r->prefix) {
    spec = qc_strndup(r->prefix, strlen(r->prefix) - 1);
    if (!spec) return TOOL_ENOMEM;
    o.pathspec.strings = &spec;
    o.pathspec.count = 1;
  }
  git_status_list *sl = NULL;
  int rc = TOOL_OK;
  if (git_status_list_new(&sl, r->repo, &o) < 0) {
    *errmsg = tool__git_errmsg("cannot list the working tree");
    free(spec);
    return TOOL_EFAILED;
  }
  size_t n = git_status_list_entrycount(sl);
  size_t plen = strlen(r->prefix);
  /* a shadow repository inside its own workspace (a workspace that holds the state
   * directory, such as $HOME) must not snapshot itself */
  char gd[PATH_MAX];
  const char *inner = NULL;
  size_t wl = strlen(r->workdir), il = 0;
  if (r->shadow && realpath(git_repository_path(r->repo), gd) && strncmp(gd, r->workdir, wl) == 0) {
    inner = gd + wl;
    il = strlen(inner);
  }
  strv cand = {0};
  for (size_t i = 0; i < n && rc == TOOL_OK; i++) {
    const git_status_entry *e = git_status_byindex(sl, i);
    const char *paths[3] = {
        e->index_to_workdir ? e->index_to_workdir->new_file.path : NULL,
        e->index_to_workdir ? e->index_to_workdir->old_file.path : NULL,
        e->head_to_index ? e->head_to_index->new_file.path : NULL};
    for (int k = 0; k < 3; k++) {
      if (!paths[k] || strncmp(paths[k], r->prefix, plen) != 0) continue;
      if (inner && strncmp(paths[k], inner, il) == 0 && (paths[k][il] == '/' || !paths[k][il])) continue;
      if (k > 0 && paths[0] && strcmp(paths[k], paths[0]) == 0) continue;
      if (strv_push(&cand, paths[k]) != 0) rc = TOOL_ENOMEM;
    }
  }
  git_status_list_free(sl);
  free(spec);
  if (rc == TOOL_OK && cand.n) qsort(cand.v, cand.n, sizeof *cand.v, cmp_str);
  for (size_t i = 0; i < cand.n && rc == TOOL_OK; i++) {
    if (i > 0 && strcmp(cand.v[i], cand.v[i - 1]) == 0) continue;
    char *abs = qc_asprintf("%s%s", r->workdir, cand.v[i]);
    struct stat st;
    if (!abs) {
      rc = TOOL_ENOMEM;
      break;
    }
    if (lstat(abs, &st) == 0 && (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode))) {
      if (files->n >= TOOL__GIT_SNAPSHOT_MAX_FILES) {
        *errmsg = qc_asprintf("more than %u files in the working tree", TOOL__GIT_SNAPSHOT_MAX_FILES);
        rc = TOOL_ETOOBIG;
      } else if (strv_push(files, cand.v[i]) != 0) {
        rc = TOOL_ENOMEM;
      }
    }
    free(abs);
  }
  strv_free(&cand);
  return rc;
}

int tool__repo_foreach_file(tool__repo *r, tool__file_fn fn, void *user, char **errmsg) {
  *errmsg = NULL;
  strv files = {0};
  int rc = list_files(r, &files, errmsg);
  for (size_t i = 0; rc == TOOL_OK && i < files.n; i++) {
    int x = fn(user, files.v[i]);
    if (x) rc = x;
  }
  strv_free(&files);
  return rc;
}

/* ---- the snapshot stat cache ----------------------------------------------------
 * A daemon snapshots the same tree after every mutating tool call; hashing every file
 * each time would cost a read of the whole tree. Like git's index, the cache remembers
 * (path → size, mtime, ctime, inode, mode, blob id) per repository and working tree, and
 * a file whose stat is unchanged is not read again. As in git ("racily clean" entries),
 * a file modified less than TOOL__GIT_RACY_NS before it was hashed is not cached: a
 * later write within the same timestamp granularity could otherwise go unseen. A
 * cached blob must still exist in the object database (checked; cheap). */


typedef struct sc_entry {
  char *path;
  int64_t size, mtime, ctime;
  uint64_t ino;
  uint32_t mode;
  git_oid id;
} sc_entry;

typedef struct sc_cache {
  char *key;             /* gitdir + "\n" + workdir */
  sc_entry *v;           /* open addressing on path */
  size_t n, cap;
} sc_cache;

static pthread_mutex_t sc_mu = PTHREAD_MUTEX_INITIALIZER;
static sc_cache sc_caches[8];  /* a few workspaces per process; least recently used goes */
static unsigned sc_clock[8], sc_now;

static uint64_t sc_hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static void sc_clear(sc_cache *c) {
  for (size_t i = 0; i < c->cap; i++) free(c->v[i].path);
  free(c->v);
  c->v = NULL;
  c->n = c->cap = 0;
}

static sc_cache *sc_get(tool__repo *r) {
  char *key = qc_asprintf("%s\n%s", git_repository_path(r->repo), r->workdir);
  if (!key) return NULL;
  int lru = 0;
  for (int i = 0; i < 8; i++) {
    if (sc_caches[i].key && strcmp(sc_caches[i].key, key) == 0) {
      free(key);
      sc_clock[i] = ++sc_now;
      return &sc_caches[i];
    }
    if (sc_clock[i] < sc_clock[lru]) lru = i;
  }
  sc_clear(&sc_caches[lru]);
  free(sc_caches[lru].key);
  sc_caches[lru].key = key;
  sc_clock[lru] = ++sc_now;
  return &sc_caches[lru];
}

static sc_entry *sc_slot(sc_cache *c, const char *path) {
  if (!c->cap) return NULL;
  size_t h = (size_t)sc_hash(path) & (c->cap - 1);
  while (c->v[h].path && strcmp(c->v[h].path, path) != 0) h = (h + 1) & (c->cap - 1);
  return &c->v[h];
}

static void sc_put(sc_cache *c, const char *path, const struct stat *st, const git_oid *id) {
  if (c->n >= TOOL__GIT_STATCACHE_MAX) sc_clear(c);
  if ((c->n + 1) * 2 > c->cap) {
    size_t nc = c->cap ? c->cap * 2 : 1024;
    sc_entry *nv = calloc(nc, sizeof *nv);
    if (!nv) return;
    for (size_t i = 0; i < c->cap; i++) {
      if (!c->v[i].path) continue;
      size_t h = (size_t)sc_hash(c->v[i].path) & (nc - 1);
      while (nv[h].path) h = (h + 1) & (nc - 1);
      nv[h] = c->v[i];
    }
    free(c->v);
    c->v = nv;
    c->cap = nc;
  }
  sc_entry *e = sc_slot(c, path);
  if (!e->path) {
    e->path = qc_strndup(path, strlen(path));
    if (!e->path) return;
    c->n++;
  }
  e->size = st->st_size;
  e->mtime = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
  e->ctime = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
  e->ino = st->st_ino;
  e->mode = st->st_mode;
  e->id = *id;
}

static int sc_lookup(sc_cache *c, const char *path, const struct stat *st, git_odb *odb, git_oid *id) {
  sc_entry *e = c ? sc_slot(c, path) : NULL;
  if (!e || !e->path) return 0;
  if (e->size != st->st_size || e->ino != st->st_ino || e->mode != st->st_mode ||
      e->mtime != (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec ||
      e->ctime != (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec)
    return 0;
  if (odb && !git_odb_exists(odb, &e->id)) return 0;
  *id = e->id;
  return 1;
}

int tool__repo_snapshot_tree(tool__repo *r, git_oid *tree_out, size_t *nfiles, char **errmsg) {
  *errmsg = NULL;
  strv files = {0};
  git_index *idx = NULL;
  git_odb *odb = NULL;
  int rc = list_files(r, &files, errmsg);
  if (rc != TOOL_OK) goto out;
  if (git_index_new(&idx) < 0) {
    *errmsg = tool__git_errmsg("cannot create an in-memory index");
    rc = TOOL_EFAILED;
    goto out;
  }
  if (git_repository_odb(&odb, r->repo) < 0) {
    *errmsg = tool__git_errmsg("cannot open the object database");
    rc = TOOL_EFAILED;
    goto out;
  }
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  uint64_t start_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
  pthread_mutex_lock(&sc_mu);
  sc_cache *cache = sc_get(r);
  pthread_mutex_unlock(&sc_mu);
  for (size_t i = 0; i < files.n; i++) {
    char *abs = qc_asprintf("%s%s", r->workdir, files.v[i]);
    if (!abs) {
      rc = TOOL_ENOMEM;
      goto out;
    }
    struct stat st;
    git_index_entry e;
    memset(&e, 0, sizeof e);
    e.path = files.v[i];
    int ok = lstat(abs, &st) == 0;
    if (ok && (S_ISLNK(st.st_mode) || S_ISREG(st.st_mode))) {
      e.mode = S_ISLNK(st.st_mode) ? GIT_FILEMODE_LINK
               : (st.st_mode & 0111) ? GIT_FILEMODE_BLOB_EXECUTABLE : GIT_FILEMODE_BLOB;
      pthread_mutex_lock(&sc_mu);
      int hit = sc_lookup(cache, files.v[i], &st, odb, &e.id);
      pthread_mutex_unlock(&sc_mu);
      if (!hit) {
        if (S_ISLNK(st.st_mode)) {
          char target[PATH_MAX];
          ssize_t tl = readlink(abs, target, sizeof target);
          ok = tl >= 0 && git_blob_create_from_buffer(&e.id, r->repo, target, (size_t)tl) == 0;
        } else {
          ok = git_blob_create_from_disk(&e.id, r->repo, abs) == 0;
        }
        /* cache only files that were already old when hashed, and whose stat did not
         * change while they were read */
        struct stat st2;
        uint64_t mt = (uint64_t)st.st_mtim.tv_sec * 1000000000ull + (uint64_t)st.st_mtim.tv_nsec;
        if (ok && lstat(abs, &st2) == 0 && st2.st_mtim.tv_sec == st.st_mtim.tv_sec &&
            st2.st_mtim.tv_nsec == st.st_mtim.tv_nsec && st2.st_size == st.st_size &&
            st2.st_ctim.tv_sec == st.st_ctim.tv_sec && st2.st_ctim.tv_nsec == st.st_ctim.tv_nsec &&
            start_ns > mt + TOOL__GIT_RACY_NS) {
          pthread_mutex_lock(&sc_mu);
          if (cache) sc_put(cache, files.v[i], &st, &e.id);
          pthread_mutex_unlock(&sc_mu);
        }
      }
    } else {
      free(abs);
      continue; /* vanished or replaced by a directory since the listing */
    }
    if (!ok) {
      *errmsg = errno == ENOENT ? NULL : tool__git_errmsg(files.v[i]);
      free(abs);
      if (!*errmsg) continue; /* deleted under us: it is not part of the state */
      rc = TOOL_EIO;
      goto out;
    }
    free(abs);
    if (git_index_add(idx, &e) < 0) {
      *errmsg = tool__git_errmsg(files.v[i]);
      rc = TOOL_EFAILED;
      goto out;
    }
  }
  if (git_index_write_tree_to(tree_out, idx, r->repo) < 0) {
    *errmsg = tool__git_errmsg("cannot write the snapshot tree");
    rc = TOOL_EFAILED;
    goto out;
  }
  if (nfiles) *nfiles = git_index_entrycount(idx);
out:
  git_odb_free(odb);
  if (idx) git_index_free(idx);
  strv_free(&files);
  return rc;
}
