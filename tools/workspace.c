/* workspace.c — opening a workspace, its git repository, ignore rules and the table of
 * content hashes the agent has seen.
 *
 * The root is made canonical (realpath) and held open as an O_PATH directory fd: every
 * later path is resolved from that fd, never from a string, so renaming or replacing the
 * root's ancestors afterwards cannot redirect tool calls. The state and runtime
 * directories are canonicalised too, so the write policy compares like with like.
 *
 * The git repository is found the way git finds it (searching upwards from the root), so
 * a workspace that is a subdirectory of a repository still honours its .gitignore.
 */
#include "tools/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Canonical form of a directory that may not exist yet: realpath when it exists, else
 * the path as given (absolute paths only). */
static char *tool__canon_dir(const char *p) {
  if (!p || *p != '/') return NULL;
  char *r = realpath(p, NULL);
  if (r) return r;
  size_t n = strlen(p);
  while (n > 1 && p[n - 1] == '/') n--;
  return qc_strndup(p, n);
}

static char *tool__strip_slash(const char *p) {
  if (!p) return NULL;
  size_t n = strlen(p);
  while (n > 1 && p[n - 1] == '/') n--;
  char *s = qc_strndup(p, n);
  char *r = s ? realpath(s, NULL) : NULL;
  if (r) {
    free(s);
    return r;
  }
  return s;
}

static void tool__open_repo(tool_ws *ws) {
  git_repository *repo = NULL;
  if (git_repository_open_ext(&repo, ws->root, 0, NULL) != 0) return;
  const char *wd = git_repository_workdir(repo);
  if (!wd || git_repository_is_bare(repo)) {
    git_repository_free(repo);
    return;
  }
  char *workdir = tool__strip_slash(wd);
  if (!workdir) goto fail;
  size_t wl = strlen(workdir);
  const char *prefix = NULL;
  if (strcmp(workdir, ws->root) == 0) prefix = "";
  else if (strncmp(ws->root, workdir, wl) == 0 && ws->root[wl] == '/') prefix = ws->root + wl + 1;
  if (!prefix) goto fail;  /* the root is not inside the work tree it reports */
  ws->repo_prefix = *prefix ? qc_asprintf("%s/", prefix) : strdup("");
  ws->gitdir = tool__strip_slash(git_repository_path(repo));
  ws->commondir = tool__strip_slash(git_repository_commondir(repo));
  if (!ws->repo_prefix || !ws->gitdir || !ws->commondir) goto fail;
  ws->repo = repo;
  ws->repo_workdir = workdir;
  return;
fail:
  free(workdir);
  free(ws->repo_prefix);
  free(ws->gitdir);
  free(ws->commondir);
  ws->repo_prefix = ws->gitdir = ws->commondir = NULL;
  git_repository_free(repo);
}

int tool_ws_open(const char *root, const tool_ws_opts *opts, tool_ws **out, char **errmsg) {
  *out = NULL;
  *errmsg = NULL;
  static const tool_ws_opts defaults = {TOOL_SANDBOX_REQUIRE};
  if (!opts) opts = &defaults;
  if (!root || !*root) {
    *errmsg = strdup("no workspace directory given");
    return TOOL_EARGS;
  }
  tool_ws *ws = calloc(1, sizeof *ws);
  if (!ws) return TOOL_ENOMEM;
  ws->rootfd = -1;
  int rc = TOOL_EIO;
  ws->root = realpath(root, NULL);
  if (!ws->root) {
    rc = errno == ENOENT ? TOOL_ENOENT : TOOL_EIO;
    *errmsg = qc_asprintf("cannot open workspace %s: %s", root, strerror(errno));
    goto fail;
  }
  if (strcmp(ws->root, "/") == 0) {
    rc = TOOL_EDENIED;
    *errmsg = strdup("refusing to use the filesystem root as a workspace");
    goto fail;
  }
  ws->root_len = strlen(ws->root);
  ws->rootfd = open(ws->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (ws->rootfd < 0) {
    *errmsg = qc_asprintf("cannot open workspace %s: %s", ws->root, strerror(errno));
    rc = errno == ENOTDIR ? TOOL_EARGS : TOOL_EIO;
    goto fail;
  }
  /* the path as given, made absolute, for stripping absolute arguments that use it */
  if (root[0] == '/') {
    ws->given_root = qc_strndup(root, strlen(root));
  } else {
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd)) ws->given_root = qc_path_join(cwd, root);
  }
  if (ws->given_root) {
    size_t n = strlen(ws->given_root);
    while (n > 1 && ws->given_root[n - 1] == '/') ws->given_root[--n] = '\0';
    if (strcmp(ws->given_root, ws->root) == 0) {
      free(ws->given_root);
      ws->given_root = NULL;
    }
  }

  ws->sandbox = opts->sandbox;
  ws->edit_without_read = opts->edit_without_read;
  if (opts->state_dir) ws->state_dir = tool__canon_dir(opts->state_dir);
  else {
    char *d = qc_state_dir();
    ws->state_dir = tool__canon_dir(d);
    free(d);
  }
  if (opts->runtime_dir) ws->runtime_dir = tool__canon_dir(opts->runtime_dir);
  else {
    char *d = qc_runtime_dir();
    ws->runtime_dir = tool__canon_dir(d);
    free(d);
  }
  if (opts->test_command && *opts->test_command) {
    ws->test_command = strdup(opts->test_command);
    if (!ws->test_command) {
      rc = TOOL_ENOMEM;
      goto fail;
    }
  }
  if (opts->io) {
    ws->io = *opts->io;
    ws->has_io = 1;
  }
  git_libgit2_init();
  tool__open_repo(ws);
  *out = ws;
  return TOOL_OK;
fail:
  if (!*errmsg) *errmsg = strdup(tool_strerror(rc));
  if (ws->rootfd >= 0) close(ws->rootfd);
  free(ws->root);
  free(ws->given_root);
  free(ws);
  return rc;
}

void tool_ws_close(tool_ws *ws) {
  if (!ws) return;
  if (ws->rootfd >= 0) close(ws->rootfd);
  free(ws->root);
  free(ws->given_root);
  free(ws->state_dir);
  free(ws->runtime_dir);
  free(ws->test_command);
  if (ws->repo) {
    git_repository_free(ws->repo);
    free(ws->repo_workdir);
    free(ws->repo_prefix);
    free(ws->gitdir);
    free(ws->commondir);
  }
  git_libgit2_shutdown();
  for (size_t i = 0; i < ws->nseen; i++) free(ws->seen[i].rel);
  free(ws->seen);
  free(ws);
}

const char *tool_ws_root(const tool_ws *ws) { return ws->root; }

/* ---- content hashes -------------------------------------------------------------- */

static tool__seen *tool__seen_find(tool_ws *ws, const char *rel) {
  for (size_t i = 0; i < ws->nseen; i++)
    if (strcmp(ws->seen[i].rel, rel) == 0) return &ws->seen[i];
  return NULL;
}

void tool__seen_set(tool_ws *ws, const char *rel, const char hash[65]) {
  tool__seen *s = tool__seen_find(ws, rel);
  if (!s) {
    if (ws->nseen >= TOOL__SEEN_MAX) {
      /* forget the oldest */
      size_t old = 0;
      for (size_t i = 1; i < ws->nseen; i++)
        if (ws->seen[i].stamp < ws->seen[old].stamp) old = i;
      free(ws->seen[old].rel);
      ws->seen[old] = ws->seen[--ws->nseen];
    }
    if (ws->nseen == ws->capseen) {
      size_t cap = ws->capseen ? ws->capseen * 2 : 32;
      tool__seen *n = realloc(ws->seen, cap * sizeof *n);
      if (!n) return;
      ws->seen = n;
      ws->capseen = cap;
    }
    char *r = strdup(rel);
    if (!r) return;
    s = &ws->seen[ws->nseen++];
    s->rel = r;
  }
  memcpy(s->hash, hash, 65);
  s->stamp = ++ws->seen_clock;
}

const char *tool__seen_get(tool_ws *ws, const char *rel) {
  tool__seen *s = tool__seen_find(ws, rel);
  return s ? s->hash : NULL;
}

/* ---- ignore rules ---------------------------------------------------------------- */

int tool__ignored(tool_ws *ws, const char *rel, int is_dir) {
  const char *base = strrchr(rel, '/');
  base = base ? base + 1 : rel;
  if (strcmp(base, ".git") == 0) return 1;
  if (!ws->repo) return 0;
  char *p = qc_asprintf("%s%s%s", ws->repo_prefix, rel, is_dir ? "/" : "");
  if (!p) return 0;
  int ignored = 0;
  if (git_ignore_path_is_ignored(&ignored, ws->repo, p) != 0) ignored = 0;
  free(p);
  return ignored;
}
