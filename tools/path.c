/* path.c — resolving model-supplied paths beneath the workspace root, and atomic writes.
 *
 * The design is in internal.h ("Path resolution"). In short: a component walk with
 * O_PATH|O_NOFOLLOW that interprets symlinks itself yields the canonical path relative to
 * the root (what the policy checks see); the kernel then re-opens that canonical path
 * with openat2(RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS|RESOLVE_NO_SYMLINKS), or with an
 * O_NOFOLLOW component walk where openat2 does not exist. String prefix checks are used
 * only to strip the root from absolute arguments, with the boundary checked (`/ws` does
 * not prefix `/ws-evil`).
 *
 * Lexical trickery the walk refuses: `..` at the root; absolute paths and absolute
 * symlink targets that do not name a place under the root; more than 40 symlinks; a
 * component longer than NAME_MAX; a path longer than PATH_MAX. Names are bytes: no
 * Unicode normalisation, no case folding (except that `.GIT` is treated as `.git` by the
 * write policy, for case-insensitive filesystems).
 */
#include "tools/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- openat2 ---------------------------------------------------------------------- */

static atomic_int tool__openat2_state;  /* 0 unknown, 1 works, -1 missing */
static atomic_int tool__openat2_forced_off;

void tool__force_no_openat2(int on) { atomic_store(&tool__openat2_forced_off, on); }

int tool__have_openat2(void) {
  return !atomic_load(&tool__openat2_forced_off) && atomic_load(&tool__openat2_state) >= 0;
}

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

static int tool__openat2(int dirfd, const char *path, int oflags, mode_t mode) {
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = (unsigned long long)(oflags | O_CLOEXEC);
  how.mode = (oflags & (O_CREAT | O_TMPFILE)) ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS;
  return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

/* The fallback: one component at a time, never following a symlink. The path is
 * canonical, so a symlink or `..` met here was planted after resolution: refuse. */
static int tool__open_walk(int rootfd, const char *rel, int oflags, mode_t mode) {
  char comp[TOOL__NAME_MAX + 1];
  int cur = rootfd;
  const char *s = rel;
  for (;;) {
    while (*s == '/') s++;
    const char *e = strchr(s, '/');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    const char *after = s + n;
    while (*after == '/') after++;
    int last = *after == '\0';
    if (n > TOOL__NAME_MAX) {
      errno = ENAMETOOLONG;
      goto fail;
    }
    memcpy(comp, s, n);
    comp[n] = '\0';
    if (n == 0) strcpy(comp, ".");
    if (strcmp(comp, "..") == 0 || (strcmp(comp, ".") == 0 && !last)) {
      errno = EXDEV;
      goto fail;
    }
    if (last) {
      int fd = openat(cur, comp, oflags | O_NOFOLLOW | O_CLOEXEC, mode);
      int saved = errno;
      if (cur != rootfd) close(cur);
      errno = saved;
      return fd;
    }
    int next = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0) {
      if (errno == ENOTDIR) {
        /* a symlink where a directory was resolved: it was swapped in */
        struct stat st;
        if (fstatat(cur, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) errno = ELOOP;
      }
      goto fail;
    }
    if (cur != rootfd) close(cur);
    cur = next;
    s = after;
  }
fail:;
  int saved = errno;
  if (cur != rootfd) close(cur);
  errno = saved;
  return -1;
}

int tool__open_beneath(tool_ws *ws, const char *rel, int oflags, mode_t mode) {
  const char *p = (rel && *rel) ? rel : ".";
  if (!atomic_load(&tool__openat2_forced_off) && atomic_load(&tool__openat2_state) >= 0) {
    int fd = tool__openat2(ws->rootfd, p, oflags, mode);
    if (fd >= 0) {
      atomic_store(&tool__openat2_state, 1);
      return fd;
    }
    if (errno != ENOSYS) return -1;
    atomic_store(&tool__openat2_state, -1);
    qc_warn("openat2 is not available; resolving paths component by component");
  }
  return tool__open_walk(ws->rootfd, p, oflags, mode);
}

/* ---- resolution ------------------------------------------------------------------- */

void tool__path_init(tool__path *p) {
  memset(p, 0, sizeof *p);
  p->dirfd = -1;
}

void tool__path_release(tool__path *p) {
  if (p->dirfd >= 0) close(p->dirfd);
  free(p->rel);
  free(p->abs);
  tool__path_init(p);
}

const char *tool__path_show(const tool__path *p) { return p->rel && *p->rel ? p->rel : "."; }

/* The part of absolute `abs` under the root (without leading '/'), or NULL when `abs`
 * does not name a place under it. The boundary must be '/' or the end. */
static const char *tool__strip_root(const tool_ws *ws, const char *abs) {
  const char *roots[2] = {ws->root, ws->given_root};
  for (int i = 0; i < 2; i++) {
    const char *r = roots[i];
    if (!r) continue;
    size_t n = strlen(r);
    if (strncmp(abs, r, n) == 0 && (abs[n] == '/' || abs[n] == '\0')) {
      const char *s = abs + n;
      while (*s == '/') s++;
      return s;
    }
  }
  return NULL;
}

static int tool__under(const char *abs, const char *dir) {
  if (!dir) return 0;
  size_t n = strlen(dir);
  return strncmp(abs, dir, n) == 0 && (abs[n] == '/' || abs[n] == '\0');
}

int tool__write_policy(tool_ws *ws, const char *rel, char **err) {
  if (!*rel) {
    *err = strdup("the workspace root is a directory, not a file to write");
    return TOOL_EDENIED;
  }
  for (const char *s = rel; *s;) {
    const char *e = strchr(s, '/');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    if (n == 4 && strncasecmp(s, ".git", 4) == 0) {
      *err = qc_asprintf("writing %s is refused: files under .git are git's internals (config, "
                         "hooks, objects); change the repository with git commands instead", rel);
      return TOOL_EDENIED;
    }
    s += n;
    while (*s == '/') s++;
  }
  char *abs = qc_path_join(ws->root, rel);
  if (!abs) return TOOL_ENOMEM;
  int rc = TOOL_OK;
  const char *why = NULL;
  if (tool__under(abs, ws->gitdir) || tool__under(abs, ws->commondir)) why = "the git directory";
  else if (tool__under(abs, ws->state_dir)) why = "qcoder's state directory";
  else if (tool__under(abs, ws->runtime_dir)) why = "qcoder's runtime directory";
  if (why) {
    *err = qc_asprintf("writing %s is refused: it is inside %s", rel, why);
    rc = TOOL_EDENIED;
  }
  free(abs);
  return rc;
}

typedef struct tool__walkstate {
  tool_ws *ws;
  const char *given;  /* the path as the caller gave it, for messages */
  char **err;
} tool__walkstate;

static int tool__perr(tool__walkstate *w, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int tool__perr(tool__walkstate *w, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *what = NULL;
  if (vasprintf(&what, fmt, ap) < 0) what = NULL;
  va_end(ap);
  free(*w->err);
  *w->err = qc_asprintf("path '%.300s'%s: %s", w->given, strlen(w->given) > 300 ? "…" : "",
                        what ? what : tool_strerror(code));
  free(what);
  return code;
}

static void tool__rel_pop(qc_buf *rel) {
  char *slash = strrchr(rel->data, '/');
  qc_buf_truncate(rel, slash ? (size_t)(slash - rel->data) : 0);
}

static int tool__rel_push(qc_buf *rel, const char *comp) {
  if (rel->len && qc_buf_putc(rel, '/') != QC_OK) return -1;
  return qc_buf_puts(rel, comp) == QC_OK ? 0 : -1;
}

int tool__resolve(tool_ws *ws, const char *path, unsigned flags, tool__path *out, char **err) {
  tool__path_init(out);
  *err = NULL;
  tool__walkstate w = {ws, path ? path : "", err};
  if (flags & TOOL__R_MKDIRS) flags |= TOOL__R_MISSING_OK;
  if (!path || !*path) return tool__perr(&w, TOOL_EARGS, "empty path; use \".\" for the workspace root");
  size_t plen = strlen(path);
  if (plen > TOOL__PATH_MAX)
    return tool__perr(&w, TOOL_EESCAPE, "%zu bytes long; a path is at most %d bytes", plen, TOOL__PATH_MAX);

  const char *start = path;
  if (path[0] == '/') {
    start = tool__strip_root(ws, path);
    if (!start)
      return tool__perr(&w, TOOL_EESCAPE, "outside the workspace %s; use a path relative to it",
                        ws->root);
  }

  int rc = TOOL_OK;
  qc_buf rel, todo;
  qc_buf_init(&rel, TOOL__PATH_MAX + 1);
  qc_buf_init(&todo, 2 * TOOL__PATH_MAX + 2);
  int cur = openat(ws->rootfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  int missing = 0, links = 0, exists = 1;
  struct stat st;
  char comp[TOOL__NAME_MAX + 1];
  char *target = NULL;
  if (cur < 0 || fstat(cur, &st) != 0) {
    rc = tool__perr(&w, TOOL_EIO, "cannot open the workspace root: %s", strerror(errno));
    goto out;
  }
  if (qc_buf_puts(&todo, start) != QC_OK) {
    rc = tool__perr(&w, TOOL_ENOMEM, "out of memory");
    goto out;
  }
  size_t pos = 0;
  for (;;) {
    while (pos < todo.len && todo.data[pos] == '/') pos++;
    if (pos >= todo.len) break;
    const char *s = todo.data + pos;
    const char *e = memchr(s, '/', todo.len - pos);
    size_t n = e ? (size_t)(e - s) : todo.len - pos;
    pos += n;
    size_t after = pos;
    while (after < todo.len && todo.data[after] == '/') after++;
    int last = after >= todo.len;
    if (n > TOOL__NAME_MAX) {
      rc = tool__perr(&w, TOOL_EESCAPE, "a component is %zu bytes long; names are at most %d bytes",
                      n, TOOL__NAME_MAX);
      goto out;
    }
    memcpy(comp, s, n);
    comp[n] = '\0';
    if (strcmp(comp, ".") == 0) continue;
    if (strcmp(comp, "..") == 0) {
      if (missing) {
        rc = tool__perr(&w, TOOL_ENOENT, "'..' after %s, which does not exist", rel.data);
        goto out;
      }
      if (rel.len == 0) {
        rc = tool__perr(&w, TOOL_EESCAPE, "'..' leads outside the workspace %s", ws->root);
        goto out;
      }
      int up = openat(cur, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (up < 0) {
        rc = tool__perr(&w, TOOL_EIO, "%s", strerror(errno));
        goto out;
      }
      close(cur);
      cur = up;
      tool__rel_pop(&rel);
      if (fstat(cur, &st) != 0) memset(&st, 0, sizeof st);
      exists = 1;
      continue;
    }
    if (missing) {
      if (tool__rel_push(&rel, comp) != 0) goto toolong;
      missing++;
      continue;
    }
    int fd = openat(cur, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT && (flags & TOOL__R_MISSING_OK)) {
        if (tool__rel_push(&rel, comp) != 0) goto toolong;
        missing = 1;
        exists = 0;
        continue;
      }
      if (errno == ENOENT)
        rc = tool__perr(&w, TOOL_ENOENT, "%s%s%s does not exist", rel.len ? rel.data : "",
                        rel.len ? "/" : "", comp);
      else if (errno == ENOTDIR)
        rc = tool__perr(&w, TOOL_ENOENT, "%s is not a directory", rel.len ? rel.data : ".");
      else if (errno == EACCES)
        rc = tool__perr(&w, TOOL_EDENIED, "permission denied");
      else
        rc = tool__perr(&w, TOOL_EIO, "%s", strerror(errno));
      goto out;
    }
    struct stat cst;
    if (fstat(fd, &cst) != 0) {
      close(fd);
      rc = tool__perr(&w, TOOL_EIO, "%s", strerror(errno));
      goto out;
    }
    if (S_ISLNK(cst.st_mode) && !(last && (flags & TOOL__R_NOFOLLOW))) {
      if (++links > TOOL__SYMLINK_MAX) {
        close(fd);
        rc = tool__perr(&w, TOOL_EESCAPE, "more than %d symbolic links (a loop?)", TOOL__SYMLINK_MAX);
        goto out;
      }
      free(target);
      target = malloc(TOOL__PATH_MAX + 1);
      ssize_t tn = target ? readlinkat(fd, "", target, TOOL__PATH_MAX + 1) : -1;
      close(fd);
      if (tn <= 0 || tn > TOOL__PATH_MAX) {
        rc = tool__perr(&w, TOOL_EESCAPE, "cannot read the symbolic link %s%s%s", rel.data,
                        rel.len ? "/" : "", comp);
        goto out;
      }
      target[tn] = '\0';
      if (strlen(target) != (size_t)tn) {
        rc = tool__perr(&w, TOOL_EESCAPE, "bad symbolic link");
        goto out;
      }
      const char *t = target;
      if (target[0] == '/') {
        t = tool__strip_root(ws, target);
        if (!t) {
          rc = tool__perr(&w, TOOL_EESCAPE,
                          "%s%s%s is a symbolic link to %s, which is outside the workspace",
                          rel.data, rel.len ? "/" : "", comp, target);
          goto out;
        }
        /* restart at the root */
        int r = openat(ws->rootfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (r < 0) {
          rc = tool__perr(&w, TOOL_EIO, "%s", strerror(errno));
          goto out;
        }
        close(cur);
        cur = r;
        qc_buf_reset(&rel);
      }
      /* todo := target + "/" + rest */
      qc_buf nt;
      qc_buf_init(&nt, todo.max);
      int bad = qc_buf_puts(&nt, t) != QC_OK ||
                (after < todo.len &&
                 (qc_buf_putc(&nt, '/') != QC_OK ||
                  qc_buf_append(&nt, todo.data + after, todo.len - after) != QC_OK));
      if (bad) {
        qc_buf_release(&nt);
        goto toolong;
      }
      qc_buf_release(&todo);
      todo = nt;
      pos = 0;
      continue;
    }
    if (!last && !S_ISDIR(cst.st_mode)) {
      close(fd);
      rc = tool__perr(&w, TOOL_ENOENT, "%s%s%s is not a directory", rel.data, rel.len ? "/" : "", comp);
      goto out;
    }
    if (tool__rel_push(&rel, comp) != 0) {
      close(fd);
      goto toolong;
    }
    close(cur);
    cur = fd;
    st = cst;
  }

  /* rel is canonical now */
  if (missing > 1 && !(flags & TOOL__R_MKDIRS)) {
    char *slash = strrchr(rel.data, '/');
    rc = tool__perr(&w, TOOL_ENOENT, "the directory %.*s does not exist",
                    slash ? (int)(slash - rel.data) : 0, rel.data);
    goto out;
  }
  if (exists && (flags & TOOL__R_DIR) && !S_ISDIR(st.st_mode)) {
    rc = tool__perr(&w, TOOL_EARGS, "%s is not a directory", rel.len ? rel.data : ".");
    goto out;
  }
  if (exists && (flags & TOOL__R_FILE) && !S_ISREG(st.st_mode)) {
    rc = tool__perr(&w, TOOL_EARGS, "%s is %s, not a regular file", rel.len ? rel.data : ".",
                    S_ISDIR(st.st_mode) ? "a directory" : "a special file");
    goto out;
  }
  if (!exists && (flags & TOOL__R_DIR) && !(flags & TOOL__R_MISSING_OK)) {
    rc = tool__perr(&w, TOOL_ENOENT, "does not exist");
    goto out;
  }
  if (flags & TOOL__R_WRITE) {
    char *perr = NULL;
    int prc = tool__write_policy(ws, rel.data, &perr);
    if (prc != TOOL_OK) {
      rc = tool__perr(&w, prc, "%s", perr ? perr : tool_strerror(prc));
      free(perr);
      goto out;
    }
  }

  /* create missing parents (cur is the deepest existing directory) */
  if (missing > 1) {
    /* the missing components are the last `missing` ones of rel; create all but the
     * last (the file itself) */
    const char *m = rel.data + rel.len;
    for (int k = 0; k < missing; k++) {
      while (m > rel.data && m[-1] != '/') m--;
      if (k + 1 < missing) m--; /* step over the '/' before this component */
    }
    char *dup = strdup(m);
    if (!dup) {
      rc = tool__perr(&w, TOOL_ENOMEM, "out of memory");
      goto out;
    }
    char *sv = NULL;
    int made = 0;
    for (char *c = strtok_r(dup, "/", &sv); c && made < missing - 1; c = strtok_r(NULL, "/", &sv)) {
      made++;
      if (mkdirat(cur, c, 0777) != 0 && errno != EEXIST) {
        rc = tool__perr(&w, errno == EACCES ? TOOL_EDENIED : TOOL_EIO, "cannot create directory %s: %s",
                        c, strerror(errno));
        free(dup);
        goto out;
      }
      int nfd = openat(cur, c, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (nfd < 0) {
        rc = tool__perr(&w, TOOL_EIO, "cannot open the new directory %s: %s", c, strerror(errno));
        free(dup);
        goto out;
      }
      close(cur);
      cur = nfd;
    }
    free(dup);
  }

  out->rel = qc_buf_detach(&rel, NULL);
  out->abs = out->rel && *out->rel ? qc_path_join(ws->root, out->rel) : strdup(ws->root);
  if (!out->rel || !out->abs) {
    rc = tool__perr(&w, TOOL_ENOMEM, "out of memory");
    goto out;
  }
  const char *slash = strrchr(out->rel, '/');
  out->name = slash ? slash + 1 : out->rel;
  if (*out->rel) {
    /* the parent, re-opened by the kernel's beneath-the-root rules */
    char *parent = slash ? qc_strndup(out->rel, (size_t)(slash - out->rel)) : strdup("");
    out->dirfd = parent ? tool__open_beneath(ws, parent, O_PATH | O_DIRECTORY, 0) : -1;
    int saved = errno;
    free(parent);
    if (out->dirfd < 0) {
      rc = tool__perr(&w, saved == EXDEV || saved == ELOOP ? TOOL_EESCAPE : TOOL_EIO,
                      "cannot open its directory beneath the workspace: %s", strerror(saved));
      goto out;
    }
    if (fstatat(out->dirfd, out->name, &out->st, AT_SYMLINK_NOFOLLOW) == 0) {
      out->exists = 1;
    } else if (errno == ENOENT && (flags & TOOL__R_MISSING_OK)) {
      out->exists = 0;
    } else {
      rc = tool__perr(&w, errno == ENOENT ? TOOL_ENOENT : TOOL_EIO, "%s", strerror(errno));
      goto out;
    }
  } else {
    out->exists = 1;
    if (fstat(ws->rootfd, &out->st) != 0) memset(&out->st, 0, sizeof out->st);
  }
  goto out;

toolong:
  rc = tool__perr(&w, TOOL_EESCAPE, "the resolved path is longer than %d bytes", TOOL__PATH_MAX);
out:
  if (cur >= 0) close(cur);
  free(target);
  qc_buf_release(&rel);
  qc_buf_release(&todo);
  if (rc != TOOL_OK) tool__path_release(out);
  return rc;
}

/* ---- reading --------------------------------------------------------------------- */

int tool__open_read(tool_ws *ws, const tool__path *p, char **err) {
  (void)ws;
  if (!p->exists || p->dirfd < 0) {
    *err = qc_asprintf("%s does not exist", tool__path_show(p));
    return TOOL_ENOENT;
  }
  if (!S_ISREG(p->st.st_mode)) {
    *err = qc_asprintf("%s is not a regular file", tool__path_show(p));
    return TOOL_EARGS;
  }
  /* O_NONBLOCK: should a FIFO have been swapped in, do not hang on it */
  int fd = openat(p->dirfd, p->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    *err = qc_asprintf("cannot open %s: %s", tool__path_show(p), strerror(e));
    return e == ELOOP ? TOOL_EESCAPE : e == EACCES ? TOOL_EDENIED : e == ENOENT ? TOOL_ENOENT : TOOL_EIO;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_ino != p->st.st_ino ||
      st.st_dev != p->st.st_dev) {
    close(fd);
    *err = qc_asprintf("%s changed while it was being opened; try again", tool__path_show(p));
    return TOOL_EIO;
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  return fd;
}

int tool__read_whole(tool_ws *ws, const char *path, size_t max, char **data, size_t *len,
                     tool__path *outp, char **err) {
  *data = NULL;
  *len = 0;
  tool__path p;
  int rc = tool__resolve(ws, path, TOOL__R_FILE, &p, err);
  if (rc != TOOL_OK) return rc;
  if (ws->has_io && ws->io.read_text_file) {
    char *content = NULL, *ioerr = NULL;
    if (ws->io.read_text_file(ws->io.user, p.abs, &content, &ioerr) != 0) {
      *err = qc_asprintf("the editor could not read %s: %s", p.rel, ioerr ? ioerr : "unknown error");
      free(ioerr);
      free(content);
      rc = TOOL_EIO;
      goto out;
    }
    size_t n = content ? strlen(content) : 0;
    if (n > max) {
      free(content);
      *err = qc_asprintf("%s is %zu bytes; the limit is %zu", p.rel, n, max);
      rc = TOOL_ETOOBIG;
      goto out;
    }
    *data = content ? content : strdup("");
    *len = n;
    goto out;
  }
  if ((size_t)p.st.st_size > max) {
    *err = qc_asprintf("%s is %lld bytes; the limit is %zu", p.rel, (long long)p.st.st_size, max);
    rc = TOOL_ETOOBIG;
    goto out;
  }
  int fd = tool__open_read(ws, &p, err);
  if (fd < 0) {
    rc = fd;
    goto out;
  }
  qc_buf b;
  qc_buf_init(&b, max);
  char chunk[65536];
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *err = qc_asprintf("reading %s: %s", p.rel, strerror(errno));
      rc = TOOL_EIO;
      break;
    }
    if (n == 0) break;
    if (qc_buf_append(&b, chunk, (size_t)n) != QC_OK) {
      *err = qc_asprintf("%s grew past the limit of %zu bytes", p.rel, max);
      rc = TOOL_ETOOBIG;
      break;
    }
  }
  close(fd);
  if (rc == TOOL_OK) {
    *data = qc_buf_detach(&b, len);
    if (!*data) rc = TOOL_ENOMEM;
  } else {
    qc_buf_release(&b);
  }
out:
  if (rc == TOOL_OK && outp) *outp = p;
  else tool__path_release(&p);
  return rc;
}

/* ---- atomic writes ---------------------------------------------------------------- */

#define TOOL__TMP_TAG ".qcoder-"
#define TOOL__TMP_SUFFIX ".tmp"

/* Remove `.NAME.qcoder-PID-HEX.tmp` files whose writer is gone (a crash or SIGKILL between
 * creating the temp file and renaming it). A live PID (ours included: another thread may
 * be writing) keeps its files. */
static void tool__clean_stale(int dfd) {
  int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  DIR *d = fdopendir(fd);
  if (!d) {
    close(fd);
    return;
  }
  struct dirent *de;
  pid_t self = getpid();
  while ((de = readdir(d))) {
    const char *n = de->d_name;
    if (n[0] != '.' || !qc_str_has_suffix(n, TOOL__TMP_SUFFIX)) continue;
    const char *tag = NULL;
    for (const char *s = strstr(n, TOOL__TMP_TAG); s; s = strstr(s + 1, TOOL__TMP_TAG)) tag = s;
    if (!tag) continue;
    char *endp;
    long pid = strtol(tag + strlen(TOOL__TMP_TAG), &endp, 10);
    if (pid <= 0 || *endp != '-') continue;
    char *endh;
    strtoul(endp + 1, &endh, 16);
    if (endh == endp + 1 || strcmp(endh, TOOL__TMP_SUFFIX) != 0) continue;
    if ((pid_t)pid == self) continue;
    if (kill((pid_t)pid, 0) == -1 && errno == ESRCH) unlinkat(dirfd(d), n, 0);
  }
  closedir(d);
}

int tool__write_atomic(tool_ws *ws, const tool__path *p, const void *data, size_t len, char **err) {
  (void)ws;
  *err = NULL;
  if (p->dirfd < 0 || !p->rel || !*p->rel) {
    *err = qc_asprintf("%s cannot be written", p->rel ? tool__path_show(p) : "this path");
    return TOOL_EDENIED;
  }
  int rc = TOOL_OK;
  int fd = -1;
  char tmp[TOOL__NAME_MAX + 1];
  tmp[0] = '\0';
  int dfd = openat(p->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    *err = qc_asprintf("cannot open the directory of %s: %s", p->rel, strerror(errno));
    return TOOL_EIO;
  }
  struct stat st;
  int exists = fstatat(dfd, p->name, &st, AT_SYMLINK_NOFOLLOW) == 0;
  if (exists && !S_ISREG(st.st_mode)) {
    *err = qc_asprintf("%s is %s; only regular files are written", p->rel,
                       S_ISDIR(st.st_mode) ? "a directory" : S_ISLNK(st.st_mode) ? "a symbolic link" : "a special file");
    rc = S_ISLNK(st.st_mode) ? TOOL_EESCAPE : TOOL_EARGS;
    goto out;
  }
  tool__clean_stale(dfd);

  unsigned rnd = 0;
  if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd) rnd = (unsigned)qc_now_ns();
  snprintf(tmp, sizeof tmp, ".%.180s" TOOL__TMP_TAG "%ld-%08x" TOOL__TMP_SUFFIX, p->name,
           (long)getpid(), rnd);
  fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, exists ? 0600 : 0666);
  if (fd < 0) {
    int e = errno;
    tmp[0] = '\0';
    *err = qc_asprintf("cannot create a temporary file beside %s: %s", p->rel, strerror(e));
    rc = e == EACCES || e == EROFS || e == EPERM ? TOOL_EDENIED : TOOL_EIO;
    goto out;
  }
  if (exists) {
    if (fchmod(fd, st.st_mode & 07777) != 0) {
      *err = qc_asprintf("cannot keep the mode of %s: %s", p->rel, strerror(errno));
      rc = TOOL_EIO;
      goto out;
    }
    if ((st.st_uid != geteuid() || st.st_gid != getegid()) && fchown(fd, st.st_uid, st.st_gid) != 0) {
      /* not permitted (not root): the file becomes ours, as with any editor's save */
    }
  }
  const char *s = data;
  size_t left = len;
  while (left > 0) {
    ssize_t n = write(fd, s, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *err = qc_asprintf("writing %s: %s", p->rel, strerror(errno));
      rc = errno == ENOSPC || errno == EDQUOT ? TOOL_ETOOBIG : TOOL_EIO;
      goto out;
    }
    s += n;
    left -= (size_t)n;
  }
  if (fsync(fd) != 0) {
    *err = qc_asprintf("syncing %s: %s", p->rel, strerror(errno));
    rc = TOOL_EIO;
    goto out;
  }
  if (close(fd) != 0) {
    fd = -1;
    *err = qc_asprintf("closing %s: %s", p->rel, strerror(errno));
    rc = TOOL_EIO;
    goto out;
  }
  fd = -1;
  if (renameat(dfd, tmp, dfd, p->name) != 0) {
    *err = qc_asprintf("replacing %s: %s", p->rel, strerror(errno));
    rc = errno == EISDIR ? TOOL_EARGS : TOOL_EIO;
    goto out;
  }
  tmp[0] = '\0';
  if (fsync(dfd) != 0) {
    *err = qc_asprintf("%s was replaced, but syncing its directory failed: %s", p->rel, strerror(errno));
    rc = TOOL_EIO;
  }
out:
  if (fd >= 0) close(fd);
  if (tmp[0]) unlinkat(dfd, tmp, 0);
  close(dfd);
  return rc;
}

int tool__store(tool_ws *ws, const tool__path *p, const char *data, size_t len, char **err) {
  if (ws->has_io && ws->io.write_text_file) {
    if (memchr(data, '\0', len)) {
      *err = qc_asprintf("%s: content with NUL bytes cannot be written through the editor", p->rel);
      return TOOL_EARGS;
    }
    char *ioerr = NULL;
    if (ws->io.write_text_file(ws->io.user, p->abs, data, &ioerr) != 0) {
      *err = qc_asprintf("the editor could not write %s: %s", p->rel, ioerr ? ioerr : "unknown error");
      free(ioerr);
      return TOOL_EIO;
    }
    return TOOL_OK;
  }
  return tool__write_atomic(ws, p, data, len, err);
}
