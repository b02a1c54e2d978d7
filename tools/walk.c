/* walk.c — directory walks that honour .gitignore, glob patterns, and text helpers.
 *
 * Walks are depth-first with the children of each directory in byte order of their
 * names, so every listing is sorted and stable. Symlinks are reported, never followed
 * (following them could leave the workspace or loop); `.git` is never entered; entries
 * that the repository's ignore rules exclude are skipped, and an ignored directory is not
 * entered at all, which is what keeps walks of real projects (node_modules, build trees)
 * fast. Every directory is opened relative to its parent's fd with O_NOFOLLOW.
 */
#include "tools/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- walks ----------------------------------------------------------------------- */

typedef struct tool__walker {
  tool_ws *ws;
  const tool__walk_opts *o;
  int include_ignored;
  tool__walk_fn fn;
  void *user;
  size_t visits, max_visits;
  int max_depth;
  int truncated, stopped, cancelled;
} tool__walker;

static int tool__cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Takes ownership of fd. */
static void tool__walk_dir(tool__walker *w, int fd, const char *prefix, int depth) {
  if (w->o->cancel && atomic_load(w->o->cancel)) {
    w->cancelled = w->stopped = 1;
    close(fd);
    return;
  }
  DIR *d = fdopendir(fd);
  if (!d) {
    close(fd);
    return;
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    if (n == cap) {
      size_t nc = cap ? cap * 2 : 64;
      char **nn = realloc(names, nc * sizeof *nn);
      if (!nn) break;
      names = nn;
      cap = nc;
    }
    if (!(names[n] = strdup(de->d_name))) break;
    n++;
  }
  if (n > 1) qsort(names, n, sizeof *names, tool__cmp_str);
  for (size_t i = 0; i < n && !w->stopped; i++) {
    const char *name = names[i];
    if (strcmp(name, ".git") == 0) continue;
    if (w->visits >= w->max_visits) {
      w->truncated = w->stopped = 1;
      break;
    }
    w->visits++;
    struct stat st;
    if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    char *rel = *prefix ? qc_asprintf("%s/%s", prefix, name) : strdup(name);
    if (!rel) break;
    int is_dir = S_ISDIR(st.st_mode);
    int ignored = !w->include_ignored && tool__ignored(w->ws, rel, is_dir);
    if (ignored && !(is_dir && w->o->report_ignored_dirs)) {
      free(rel);
      continue;
    }
    tool__walk_entry e = {rel, name, depth, &st, dirfd(d), ignored};
    int r = w->fn(w->user, &e);
    if (ignored && r == 0) r = 1; /* never enter an ignored directory */
    if (r < 0) {
      w->stopped = 1;
    } else if (r == 0 && is_dir && depth < w->max_depth) {
      int cfd = openat(dirfd(d), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (cfd >= 0) tool__walk_dir(w, cfd, rel, depth + 1);
    }
    free(rel);
  }
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
  closedir(d);
}

int tool__walk(tool_ws *ws, const tool__path *start, const tool__walk_opts *o, tool__walk_fn fn,
               void *user, int *truncated, char **err) {
  *truncated = 0;
  *err = NULL;
  tool__walker w = {ws, o, o->include_ignored, fn, user, 0,
                    o->max_visits ? o->max_visits : TOOL__WALK_VISIT_MAX, o->max_depth, 0, 0, 0};
  /* a directory named explicitly is searched even if ignored (as ripgrep does) */
  if (!w.include_ignored && start->rel && *start->rel && tool__ignored(ws, start->rel, 1)) w.include_ignored = 1;
  if (w.max_depth > TOOL__WALK_DEPTH_MAX || w.max_depth <= 0) w.max_depth = TOOL__WALK_DEPTH_MAX;
  int fd = tool__open_beneath(ws, start->rel, O_RDONLY | O_DIRECTORY, 0);
  if (fd < 0) {
    *err = qc_asprintf("cannot open directory %s: %s", tool__path_show(start), strerror(errno));
    return errno == EACCES ? TOOL_EDENIED : errno == ENOTDIR ? TOOL_EARGS : TOOL_EIO;
  }
  tool__walk_dir(&w, fd, start->rel, 1);
  *truncated = w.truncated;
  if (w.cancelled) {
    *err = strdup("cancelled");
    return TOOL_ECANCELLED;
  }
  return TOOL_OK;
}

/* ---- glob patterns --------------------------------------------------------------- */

void tool__strv_free(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}

static int tool__strv_push(char ***v, size_t *n, char *s) {
  if (!s) return -1;
  char **nv = realloc(*v, (*n + 2) * sizeof *nv);
  if (!nv) {
    free(s);
    return -1;
  }
  *v = nv;
  nv[(*n)++] = s;
  nv[*n] = NULL;
  return 0;
}

/* Expand the first top-level {a,b} group of `p`, recursively. */
static int tool__expand(const char *p, char ***out, size_t *n, char **err) {
  const char *open = NULL;
  int depth = 0;
  for (const char *s = p; *s; s++) {
    if (*s == '\\' && s[1]) {
      s++;
      continue;
    }
    if (*s == '[') { /* a bracket expression may contain braces literally */
      const char *e = strchr(s + 1, ']');
      if (e) s = e;
      continue;
    }
    if (*s == '{') {
      if (depth++ == 0) open = s;
    } else if (*s == '}' && depth > 0) {
      if (--depth == 0) {
        const char *close = s;
        /* split the inside on top-level commas */
        const char *a = open + 1;
        int d2 = 0;
        for (const char *q = open + 1; q <= close; q++) {
          if (*q == '\\' && q[1] && q < close) {
            q++;
            continue;
          }
          if (*q == '{') d2++;
          else if (*q == '}' && d2 > 0 && q < close) d2--;
          else if ((*q == ',' && d2 == 0) || q == close) {
            char *alt = qc_asprintf("%.*s%.*s%s", (int)(open - p), p, (int)(q - a), a, close + 1);
            if (!alt) return -1;
            int rc = tool__expand(alt, out, n, err);
            free(alt);
            if (rc) return rc;
            a = q + 1;
          }
        }
        return 0;
      }
    }
  }
  if (*n >= TOOL__GLOB_PATTERNS_MAX) {
    if (!*err)
      *err = qc_asprintf("the pattern expands to more than %d alternatives", TOOL__GLOB_PATTERNS_MAX);
    return -1;
  }
  return tool__strv_push(out, n, strdup(p));
}

char **tool__glob_expand(const char *pattern, char **err) {
  *err = NULL;
  char **v = calloc(1, sizeof *v);
  size_t n = 0;
  if (!v) return NULL;
  if (tool__expand(pattern, &v, &n, err) != 0) {
    tool__strv_free(v);
    if (!*err) *err = strdup("out of memory");
    return NULL;
  }
  return v;
}

static int tool__match_comps(char **pc, int np, char **sc, int ns) {
  while (np > 0) {
    if (strcmp(pc[0], "**") == 0) {
      while (np > 1 && strcmp(pc[1], "**") == 0) pc++, np--;
      for (int k = 0; k <= ns; k++)
        if (tool__match_comps(pc + 1, np - 1, sc + k, ns - k)) return 1;
      return 0;
    }
    if (ns == 0 || fnmatch(pc[0], sc[0], 0) != 0) return 0;
    pc++, np--, sc++, ns--;
  }
  return ns == 0;
}

/* Split on '/' into at most `max` components (empty ones dropped). */
static int tool__split(char *s, char **out, int max) {
  int n = 0;
  char *sv = NULL;
  for (char *c = strtok_r(s, "/", &sv); c; c = strtok_r(NULL, "/", &sv)) {
    if (n == max) return -1;
    out[n++] = c;
  }
  return n;
}

int tool__glob_match(const char *pattern, const char *path) {
  enum { MAXC = 128 };
  char *pc[MAXC], *sc[MAXC];
  char *p = strdup(pattern), *s = strdup(path);
  int r = 0;
  if (p && s) {
    int np = tool__split(p, pc, MAXC), ns = tool__split(s, sc, MAXC);
    if (np >= 0 && ns >= 0) r = tool__match_comps(pc, np, sc, ns);
  }
  free(p);
  free(s);
  return r;
}

/* ---- text ------------------------------------------------------------------------ */

int tool__looks_binary(const char *data, size_t len) {
  size_t n = len < TOOL__BINARY_PROBE ? len : TOOL__BINARY_PROBE;
  return memchr(data, '\0', n) != NULL;
}

static const char tool__repl[] = "\xEF\xBF\xBD"; /* U+FFFD */

int tool__buf_put_safe(qc_buf *b, const char *s, size_t n) {
  size_t i = 0, run = 0; /* s[run..i) is clean and not yet copied */
  while (i < n) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c < 0x7F) {
      i++;
      continue;
    }
    if (c == '\t' || c == '\n' || c == '\r') {
      i++;
      continue;
    }
    size_t len = 0;
    if (c >= 0x80) {
      /* one UTF-8 sequence, validated */
      size_t want = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
      if (want && i + want <= n && qc_utf8_valid(s + i, want)) len = want;
    }
    if (len) {
      i += len;
      continue;
    }
    if (run < i && qc_buf_append(b, s + run, i - run) != QC_OK) return -1;
    if (qc_buf_append(b, tool__repl, 3) != QC_OK) return -1;
    i++;
    run = i;
  }
  if (run < n && qc_buf_append(b, s + run, n - run) != QC_OK) return -1;
  return 0;
}

json_t *tool__json_text(const char *s, size_t n) {
  if (qc_utf8_valid(s, n)) return json_stringn_nocheck(s, n);
  size_t m = 0;
  char *t = qc_utf8_sanitize(s, n, &m);
  json_t *j = t ? json_stringn_nocheck(t, m) : NULL;
  free(t);
  return j;
}
