/* sandbox.c — running commands inside bubblewrap.
 *
 * What the sandbox is (see also tools.h, "The sandbox"):
 *
 *   bwrap --ro-bind / /           the whole system visible, nothing writable
 *         --dev /dev --proc /proc minimal /dev, a /proc of the new PID namespace
 *         --tmpfs /tmp --tmpfs /run
 *                                 private /tmp; /run hidden (docker, D-Bus, systemd and
 *                                 other daemons' sockets live there; where PATH uses
 *                                 /run, as on NixOS, only its socket directories)
 *         --tmpfs RUNTIME --tmpfs STATE --tmpfs XDG_RUNTIME_DIR --tmpfs ~/.ssh …
 *         --ro-bind /dev/null ~/.netrc …
 *                                 qcoder's runtime directory (the daemon's socket) and
 *                                 state, and the usual credential stores, hidden
 *         --bind WS WS            the workspace, writable
 *         --ro-bind WS/.git/hooks … --ro-bind WS/.git/config …
 *                                 git hooks and config read-only (they run code the next
 *                                 time the user runs git), also for the resolved gitdir
 *                                 and core.hooksPath
 *         --unshare-all           new user, PID, network (only lo), IPC, UTS, cgroup
 *                                 namespaces: no network at all, not even the host's
 *                                 127.0.0.1, no DNS
 *         --die-with-parent --new-session --cap-drop ALL
 *         --clearenv --setenv …   only the allowlisted environment
 *         --chdir CWD -- /bin/sh -c COMMAND
 *
 * Mount order matters: hiding a directory that contains the workspace must come before
 * the workspace's bind, hiding one inside the workspace after it. A path that is a
 * symlink is never used as a mount target (bwrap would follow it); its canonical form
 * is used or it is skipped.
 *
 * Whether bwrap works is probed once per process by running /bin/true with the same
 * flags: it fails in some nested containers (no user namespaces), and then the policy
 * decides (refuse, or run unsandboxed with a warning).
 */
#include "tools/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static pthread_once_t tool__sb_once = PTHREAD_ONCE_INIT;
static char *tool__bwrap;         /* path of a working bwrap, or NULL */
static char *tool__sb_why;        /* why not, when NULL */
static atomic_int tool__sb_forced_off;

void tool__sandbox_force_unavailable(int on) { atomic_store(&tool__sb_forced_off, on); }

static char *tool__find_in_path(const char *name) {
  const char *env = getenv("QCODER_BWRAP");
  if (env && *env == '/') return access(env, X_OK) == 0 ? strdup(env) : NULL;
  const char *path = getenv("PATH");
  if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
  char *dup = strdup(path);
  char *sv = NULL, *found = NULL;
  for (char *d = dup ? strtok_r(dup, ":", &sv) : NULL; d; d = strtok_r(NULL, ":", &sv)) {
    if (*d != '/') continue;
    char *p = qc_path_join(d, name);
    if (p && access(p, X_OK) == 0) {
      found = p;
      break;
    }
    free(p);
  }
  free(dup);
  if (!found && access("/usr/bin/bwrap", X_OK) == 0) found = strdup("/usr/bin/bwrap");
  return found;
}

/* The flags every sandboxed run uses, up to the mounts specific to a workspace. */
static const char *const tool__sb_base[] = {
    "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", NULL,
};
static const char *const tool__sb_tail[] = {
    "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--clearenv", NULL,
};

static void tool__sb_probe(void) {
  char *bwrap = tool__find_in_path("bwrap");
  if (!bwrap) {
    tool__sb_why = strdup("bubblewrap (bwrap) is not installed");
    return;
  }
  const char *argv[32];
  int n = 0;
  argv[n++] = bwrap;
  for (int i = 0; tool__sb_base[i]; i++) argv[n++] = tool__sb_base[i];
  for (int i = 0; tool__sb_tail[i]; i++) argv[n++] = tool__sb_tail[i];
  argv[n++] = "--";
  argv[n++] = "/bin/true";
  argv[n] = NULL;
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) != 0) {
    tool__sb_why = qc_asprintf("cannot probe bwrap: %s", strerror(errno));
    free(bwrap);
    return;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
  posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
  char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", NULL};
  pid_t pid;
  int src = posix_spawn(&pid, bwrap, &fa, NULL, (char *const *)argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  close(pfd[1]);
  char msg[512];
  size_t got = 0;
  if (src == 0) {
    for (;;) {
      ssize_t r = read(pfd[0], msg + got, sizeof msg - 1 - got);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      got += (size_t)r;
      if (got == sizeof msg - 1) break;
    }
  }
  close(pfd[0]);
  msg[got] = '\0';
  while (got && (msg[got - 1] == '\n' || msg[got - 1] == ' ')) msg[--got] = '\0';
  int status = 0;
  if (src != 0) {
    tool__sb_why = qc_asprintf("cannot run %s: %s", bwrap, strerror(src));
  } else {
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      tool__bwrap = bwrap;
      return;
    }
    tool__sb_why = qc_asprintf("%s does not work here (%s)", bwrap, got ? msg : "no message");
  }
  free(bwrap);
}

int tool__sandbox_available(char **why) {
  pthread_once(&tool__sb_once, tool__sb_probe);
  if (atomic_load(&tool__sb_forced_off)) {
    if (why) *why = strdup("the sandbox was turned off for testing");
    return 0;
  }
  if (tool__bwrap) return 1;
  if (why) *why = strdup(tool__sb_why ? tool__sb_why : "bubblewrap is unavailable");
  return 0;
}

/* ---- argv ------------------------------------------------------------------------- */

typedef struct tool__argv {
  char **v;
  size_t n, cap;
  int oom;
} tool__argv;

static void tool__av_add(tool__argv *a, const char *s) {
  if (a->oom) return;
  if (a->n + 2 > a->cap) {
    size_t nc = a->cap ? a->cap * 2 : 64;
    char **nv = realloc(a->v, nc * sizeof *nv);
    if (!nv) {
      a->oom = 1;
      return;
    }
    a->v = nv;
    a->cap = nc;
  }
  char *d = strdup(s);
  if (!d) {
    a->oom = 1;
    return;
  }
  a->v[a->n++] = d;
  a->v[a->n] = NULL;
}

static void tool__av_add3(tool__argv *a, const char *x, const char *y, const char *z) {
  tool__av_add(a, x);
  tool__av_add(a, y);
  if (z) tool__av_add(a, z);
}

static int tool__is_under(const char *p, const char *dir) {
  size_t n = strlen(dir);
  return strncmp(p, dir, n) == 0 && (p[n] == '/' || p[n] == '\0');
}

/* Canonical path of an existing directory (or file when want_dir is 0), or NULL. */
static char *tool__canon(const char *p, int want_dir) {
  if (!p || *p != '/') return NULL;
  char *r = realpath(p, NULL);
  if (!r) return NULL;
  struct stat st;
  if (stat(r, &st) != 0 || (want_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))) {
    free(r);
    return NULL;
  }
  return r;
}

static int tool__path_uses_run(void) {
  const char *path = getenv("PATH");
  if (!path) return 0;
  for (const char *s = path; s && *s; s = strchr(s, ':'), s = s ? s + 1 : NULL)
    if (strncmp(s, "/run/", 5) == 0) return 1;
  return 0;
}

/* Directories hidden behind an empty tmpfs. Malloc'd, canonical, NULL-terminated. */
static char **tool__hidden_dirs(tool_ws *ws) {
  const char *home = getenv("HOME");
  const char *cand[24];
  int n = 0;
  cand[n++] = ws->runtime_dir;
  cand[n++] = ws->state_dir;
  cand[n++] = getenv("XDG_RUNTIME_DIR");
  /* /run holds the sockets of docker, D-Bus, systemd and the per-user runtime dirs. Where
   * PATH itself lives under /run (NixOS: /run/current-system, /run/wrappers) hiding all
   * of it would leave no commands, so only the socket directories go. */
  if (!tool__path_uses_run()) {
    cand[n++] = "/run";
  } else {
    cand[n++] = "/run/user";
    cand[n++] = "/run/dbus";
    cand[n++] = "/run/containerd";
    cand[n++] = "/run/podman";
    cand[n++] = "/run/systemd";
  }
  char *homes[6] = {0};
  static const char *const rel[] = {".ssh", ".gnupg", ".aws", ".docker", ".config/gh", ".kube"};
  if (home && *home == '/')
    for (int i = 0; i < 6; i++) cand[n++] = homes[i] = qc_path_join(home, rel[i]);
  char **out = calloc((size_t)n + 1, sizeof *out);
  int k = 0;
  for (int i = 0; out && i < n; i++) {
    char *c = tool__canon(cand[i], 1);
    if (!c) continue;
    if (strcmp(c, "/") == 0) {
      free(c);
      continue;
    }
    int dup = 0;
    for (int j = 0; j < k; j++)
      if (strcmp(out[j], c) == 0) dup = 1;
    if (dup) free(c);
    else out[k++] = c;
  }
  for (int i = 0; i < 6; i++) free(homes[i]);
  return out;
}

/* Files masked with /dev/null: credentials kept in single files, and daemon sockets that
 * stay visible when /run is not hidden (connecting to /dev/null fails). */
static char **tool__masked_files(void) {
  const char *home = getenv("HOME");
  char **out = calloc(8, sizeof *out);
  if (!out) return NULL;
  const char *cand[7];
  char *owned[3] = {0};
  int n = 0, k = 0;
  static const char *const rel[] = {".netrc", ".git-credentials", ".pgpass"};
  if (home && *home == '/')
    for (int i = 0; i < 3; i++) cand[n++] = owned[i] = qc_path_join(home, rel[i]);
  cand[n++] = "/run/docker.sock";
  cand[n++] = "/var/run/docker.sock";
  for (int i = 0; i < n; i++) {
    if (!cand[i]) continue;
    char *c = realpath(cand[i], NULL);
    struct stat st;
    if (c && stat(c, &st) == 0 && !S_ISDIR(st.st_mode)) {
      int dup = 0;
      for (int j = 0; j < k; j++)
        if (strcmp(out[j], c) == 0) dup = 1;
      if (!dup) {
        out[k++] = c;
        continue;
      }
    }
    free(c);
  }
  for (int i = 0; i < 3; i++) free(owned[i]);
  return out;
}

/* Git paths made read-only: hooks and config of the workspace's .git, of the resolved
 * gitdir and common dir, and core.hooksPath. A missing hooks directory is created first
 * (git would create it anyway), so a command cannot create hooks behind the mount. */
static void tool__protect_git(tool_ws *ws, tool__argv *a) {
  const char *bases[3] = {NULL, ws->gitdir, ws->commondir};
  char *dotgit = qc_path_join(ws->root, ".git");
  bases[0] = dotgit;
  char *seen[8] = {0};
  int ns = 0;
  for (int b = 0; b < 3; b++) {
    char *base = tool__canon(bases[b], 1);
    if (!base) continue;
    static const char *const names[] = {"hooks", "config"};
    for (int i = 0; i < 2; i++) {
      char *p = qc_path_join(base, names[i]);
      if (!p) continue;
      if (i == 0) {
        struct stat st;
        if (lstat(p, &st) != 0 && errno == ENOENT) (void)mkdir(p, 0755);
      }
      char *c = tool__canon(p, i == 0);
      free(p);
      if (!c) continue;
      int dup = 0;
      for (int j = 0; j < ns; j++)
        if (strcmp(seen[j], c) == 0) dup = 1;
      if (dup || ns == 8) {
        free(c);
        continue;
      }
      seen[ns++] = c;
      tool__av_add3(a, "--ro-bind", c, c);
    }
    free(base);
  }
  /* core.hooksPath pointing somewhere writable */
  if (ws->repo) {
    git_config *cfg = NULL;
    git_buf hp = {0};
    if (git_repository_config_snapshot(&cfg, ws->repo) == 0 &&
        git_config_get_path(&hp, cfg, "core.hooksPath") == 0 && hp.ptr) {
      char *abs = hp.ptr[0] == '/' ? strdup(hp.ptr) : qc_path_join(ws->repo_workdir, hp.ptr);
      char *c = tool__canon(abs, 1);
      if (c && tool__is_under(c, ws->root)) tool__av_add3(a, "--ro-bind", c, c);
      free(c);
      free(abs);
    }
    git_buf_dispose(&hp);
    git_config_free(cfg);
  }
  for (int j = 0; j < ns; j++) free(seen[j]);
  free(dotgit);
}

char **tool__sandbox_argv(tool_ws *ws, const char *command, const char *cwd_abs, char *const *env,
                          const char *const *rw_dirs) {
  if (!tool__sandbox_available(NULL)) return NULL;
  tool__argv a = {0};
  tool__av_add(&a, tool__bwrap);
  for (int i = 0; tool__sb_base[i]; i++) tool__av_add(&a, tool__sb_base[i]);
  char **hidden = tool__hidden_dirs(ws);
  char **masked = tool__masked_files();
  /* hidden directories outside the workspace (or containing it) first */
  for (char **h = hidden; h && *h; h++)
    if (!tool__is_under(*h, ws->root) || strcmp(*h, ws->root) == 0) tool__av_add3(&a, "--tmpfs", *h, NULL);
  for (char **m = masked; m && *m; m++) {
    int covered = tool__is_under(*m, ws->root);
    for (char **h = hidden; h && *h && !covered; h++) covered = tool__is_under(*m, *h);
    if (!covered) tool__av_add3(&a, "--ro-bind", "/dev/null", *m);
  }
  tool__av_add3(&a, "--bind", ws->root, ws->root);
  for (const char *const *d = rw_dirs; d && *d; d++) {
    char *c = tool__canon(*d, 1);
    if (c) tool__av_add3(&a, "--bind", c, c);
    free(c);
  }
  /* hidden directories inside the workspace after its bind */
  for (char **h = hidden; h && *h; h++)
    if (tool__is_under(*h, ws->root) && strcmp(*h, ws->root) != 0) tool__av_add3(&a, "--tmpfs", *h, NULL);
  tool__protect_git(ws, &a);
  for (int i = 0; tool__sb_tail[i]; i++) tool__av_add(&a, tool__sb_tail[i]);
  for (char *const *e = env; e && *e; e++) {
    const char *eq = strchr(*e, '=');
    if (!eq) continue;
    char *k = qc_strndup(*e, (size_t)(eq - *e));
    if (k) tool__av_add3(&a, "--setenv", k, eq + 1);
    free(k);
  }
  tool__av_add3(&a, "--chdir", cwd_abs, NULL);
  tool__av_add(&a, "--");
  tool__av_add3(&a, "/bin/sh", "-c", command);
  tool__strv_free(hidden);
  tool__strv_free(masked);
  if (a.oom) {
    tool__strv_free(a.v);
    return NULL;
  }
  return a.v;
}
