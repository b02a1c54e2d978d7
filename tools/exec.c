/* exec.c — running commands: run_command, and the spawner run_tests shares.
 *
 * A command runs as `/bin/sh -c COMMAND` in a new session (so a new process group whose
 * id is the child's pid), with stdin from /dev/null and stdout and stderr on one pipe so
 * their interleaving is kept. The parent polls the pipe, streams chunks to on_output,
 * keeps the first and last halves of TOOL__EXEC_OUTPUT_MAX bytes, and watches the clock
 * and the cancel flag. On timeout or cancel the whole process group gets SIGKILL. When
 * the main process exits, output still arriving (from background children holding the
 * pipe) is read for TOOL__EXEC_DRAIN_MS, then the group is killed too: a command never
 * leaves processes behind. The exit is observed with waitid(WNOWAIT) and the group killed
 * before the child is reaped, so the group id cannot have been reused by then.
 *
 * The environment is an allowlist (tool__exec_env): PATH, HOME, TMPDIR, USER, SHELL,
 * TERM=dumb, LANG and LC_*, and a few toolchain locations (CARGO_HOME, RUSTUP_HOME,
 * GOPATH, …) that carry no secrets; any name that looks like a credential (KEY, TOKEN,
 * SECRET, PASSWORD, CREDENTIAL) is dropped even then. HOME and TMPDIR point at a private
 * scratch directory (sandboxed: the sandbox's own tmpfs /tmp), removed afterwards.
 *
 * Outside the sandbox a process that calls setsid() itself escapes the process-group
 * kill; inside it, the PID namespace ends with the command, taking every process with it.
 */
#include "tools/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- environment ----------------------------------------------------------------- */

static int tool__env_secret(const char *name) {
  static const char *const bad[] = {"KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH", NULL};
  for (int i = 0; bad[i]; i++)
    if (strcasestr(name, bad[i])) return 1;
  return 0;
}

static void tool__env_add(char ***v, size_t *n, const char *k, const char *val) {
  if (!val || tool__env_secret(k)) return;
  for (size_t i = 0; i < *n; i++) {
    size_t kl = strlen(k);
    if (strncmp((*v)[i], k, kl) == 0 && (*v)[i][kl] == '=') return; /* first wins */
  }
  char **nv = realloc(*v, (*n + 2) * sizeof *nv);
  if (!nv) return;
  *v = nv;
  char *s = qc_asprintf("%s=%s", k, val);
  if (!s) return;
  nv[(*n)++] = s;
  nv[*n] = NULL;
}

char **tool__exec_env(const char *home, const char *tmpdir) {
  char **v = calloc(1, sizeof *v);
  size_t n = 0;
  if (!v) return NULL;
  const char *path = getenv("PATH");
  tool__env_add(&v, &n, "PATH", path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
  tool__env_add(&v, &n, "HOME", home);
  tool__env_add(&v, &n, "TMPDIR", tmpdir);
  const char *user = getenv("USER");
  struct passwd *pw = getpwuid(getuid());
  if (!user || !*user) user = pw ? pw->pw_name : NULL;
  tool__env_add(&v, &n, "USER", user);
  tool__env_add(&v, &n, "SHELL", "/bin/sh");
  tool__env_add(&v, &n, "TERM", "dumb");
  const char *lang = getenv("LANG");
  tool__env_add(&v, &n, "LANG", lang && *lang ? lang : "C.UTF-8");
  for (char **e = environ; e && *e; e++) {
    if (strncmp(*e, "LC_", 3) != 0) continue;
    const char *eq = strchr(*e, '=');
    if (!eq) continue;
    int ok = 1;
    for (const char *c = *e + 3; c < eq; c++)
      if (!((*c >= 'A' && *c <= 'Z') || *c == '_')) ok = 0;
    if (!ok) continue;
    char *k = qc_strndup(*e, (size_t)(eq - *e));
    if (k) tool__env_add(&v, &n, k, eq + 1);
    free(k);
  }
  /* toolchain locations: where to find compilers and caches, never credentials. The real
   * home is hidden behind HOME=scratch, so point at the defaults explicitly. */
  static const struct {
    const char *var, *home_rel;
  } tc[] = {{"CARGO_HOME", ".cargo"}, {"RUSTUP_HOME", ".rustup"}, {"GOPATH", "go"},
            {"GOROOT", NULL},         {"GOMODCACHE", NULL},     {"GOFLAGS", NULL},
            {"PYENV_ROOT", ".pyenv"}, {"VIRTUAL_ENV", NULL},    {"JAVA_HOME", NULL},
            {"NVM_DIR", NULL}};
  const char *real_home = pw && pw->pw_dir ? pw->pw_dir : getenv("HOME");
  for (size_t i = 0; i < sizeof tc / sizeof tc[0]; i++) {
    const char *val = getenv(tc[i].var);
    if (val && *val) {
      tool__env_add(&v, &n, tc[i].var, val);
    } else if (tc[i].home_rel && real_home && *real_home == '/') {
      char *d = qc_path_join(real_home, tc[i].home_rel);
      struct stat st;
      if (d && stat(d, &st) == 0 && S_ISDIR(st.st_mode)) tool__env_add(&v, &n, tc[i].var, d);
      free(d);
    }
  }
  return v;
}

/* ---- capture --------------------------------------------------------------------- */

typedef struct tool__cap {
  qc_buf head;
  char *tail;      /* ring of tmax bytes */
  size_t tmax, tpos, tlen;
  size_t total;
} tool__cap;

static void tool__cap_add(tool__cap *c, const char *s, size_t n) {
  c->total += n;
  size_t room = c->head.max > c->head.len ? c->head.max - c->head.len : 0;
  size_t h = n < room ? n : room;
  if (h) qc_buf_append(&c->head, s, h);
  s += h;
  n -= h;
  if (!n || !c->tail) return;
  if (n >= c->tmax) {
    memcpy(c->tail, s + n - c->tmax, c->tmax);
    c->tpos = 0;
    c->tlen = c->tmax;
    return;
  }
  for (size_t i = 0; i < n; i++) {
    c->tail[c->tpos] = s[i];
    c->tpos = (c->tpos + 1) % c->tmax;
  }
  c->tlen = c->tlen + n > c->tmax ? c->tmax : c->tlen + n;
}

/* Drop ANSI escape sequences (colours, cursor moves, titles). */
static size_t tool__strip_ansi(char *s, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] != 0x1B) {
      s[k++] = s[i];
      continue;
    }
    if (i + 1 >= n) break;
    char t = s[i + 1];
    if (t == '[') { /* CSI: parameters, then a final byte 0x40-0x7E */
      i += 2;
      while (i < n && !((unsigned char)s[i] >= 0x40 && (unsigned char)s[i] <= 0x7E)) i++;
    } else if (t == ']') { /* OSC: up to BEL or ESC \ */
      i += 2;
      while (i < n && s[i] != 0x07 && !(s[i] == 0x1B && i + 1 < n && s[i + 1] == '\\')) i++;
      if (i < n && s[i] == 0x1B) i++;
    } else {
      i++;
    }
  }
  return k;
}

static char *tool__cap_finish(tool__cap *c, int *truncated) {
  qc_buf raw;
  qc_buf_init(&raw, 0);
  qc_buf_append(&raw, c->head.data, c->head.len);
  *truncated = c->total > c->head.len + c->tlen;
  if (*truncated) qc_buf_printf(&raw, "\n[… %zu bytes of output omitted …]\n", c->total - c->head.len - c->tlen);
  if (c->tlen) {
    size_t start = (c->tpos + c->tmax - c->tlen) % c->tmax;
    for (size_t i = 0; i < c->tlen; i++) qc_buf_putc(&raw, c->tail[(start + i) % c->tmax]);
  }
  size_t n = tool__strip_ansi(raw.data, raw.len);
  qc_buf out;
  qc_buf_init(&out, 0);
  tool__buf_put_safe(&out, raw.data, n);
  qc_buf_release(&raw);
  return qc_buf_detach(&out, NULL);
}

/* ---- spawning -------------------------------------------------------------------- */

void tool__exec_result_release(tool_exec_result *r) {
  free(r->output);
  memset(r, 0, sizeof *r);
}

static int tool__rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f) {
  (void)st;
  (void)f;
  if (flag == FTW_DP) rmdir(p);
  else unlink(p);
  return 0;
}

static int tool__rm_rf(const char *dir) { return nftw(dir, tool__rm_cb, 32, FTW_DEPTH | FTW_PHYS); }

/* Read what is left on fd for at most ms milliseconds. */
static void tool__drain(int *fd, int ms, tool__cap *cap, const tool__exec_opts *o) {
  uint64_t end = qc_now_ms() + (uint64_t)ms;
  char buf[16384];
  while (*fd >= 0) {
    uint64_t now = qc_now_ms();
    if (now >= end) break;
    struct pollfd p = {*fd, POLLIN, 0};
    int pr = poll(&p, 1, (int)(end - now));
    if (pr <= 0) break;
    ssize_t n = read(*fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(*fd);
      *fd = -1;
      break;
    }
    tool__cap_add(cap, buf, (size_t)n);
    if (o->on_output) o->on_output(o->user, buf, (size_t)n);
  }
}

/* Spawn argv with env in cwd (NULL: inherit), capture, wait. */
static int tool__spawn_wait(char *const *argv, char *const *env, const char *cwd,
                            const tool__exec_opts *o, tool_exec_result *r, char **err) {
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) != 0) {
    *err = qc_asprintf("cannot create a pipe: %s", strerror(errno));
    return TOOL_EIO;
  }
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&at);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
  posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
  if (cwd) posix_spawn_file_actions_addchdir_np(&fa, cwd);
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &all);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid;
  int src = posix_spawn(&pid, argv[0], &fa, &at, argv, env);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  close(pfd[1]);
  if (src != 0) {
    close(pfd[0]);
    *err = qc_asprintf("cannot run %s: %s", argv[0], strerror(src));
    return TOOL_EIO;
  }

  tool__cap cap;
  memset(&cap, 0, sizeof cap);
  size_t max = o->output_max ? o->output_max : TOOL__EXEC_OUTPUT_MAX;
  qc_buf_init(&cap.head, max / 2);
  cap.tmax = max - max / 2;
  cap.tail = malloc(cap.tmax ? cap.tmax : 1);
  int fd = pfd[0];
  int timeout_s = o->timeout_s > 0 ? o->timeout_s : TOOL__EXEC_TIMEOUT_DEFAULT;
  uint64_t deadline = qc_now_ms() + (uint64_t)timeout_s * 1000u;
  int exited = 0, timed_out = 0, cancelled = 0;
  uint64_t exit_at = 0;
  char buf[16384];
  for (;;) {
    if (fd >= 0) {
      struct pollfd p = {fd, POLLIN, 0};
      int pr = poll(&p, 1, TOOL__EXEC_POLL_MS);
      if (pr > 0) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) {
          tool__cap_add(&cap, buf, (size_t)n);
          if (o->on_output) o->on_output(o->user, buf, (size_t)n);
        } else if (n == 0 || errno != EINTR) {
          close(fd);
          fd = -1;
        }
      }
    } else {
      poll(NULL, 0, exited ? 0 : 10);
    }
    if (!exited) {
      siginfo_t si;
      memset(&si, 0, sizeof si);
      if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid) {
        exited = 1;
        exit_at = qc_now_ms();
      }
    }
    if (exited) {
      if (fd < 0 || qc_now_ms() - exit_at >= TOOL__EXEC_DRAIN_MS) break;
      continue;
    }
    if (o->cancel && atomic_load(o->cancel)) {
      cancelled = 1;
      break;
    }
    if (qc_now_ms() >= deadline) {
      timed_out = 1;
      break;
    }
  }
  /* whatever is left of the group goes now; then read the rest and reap */
  kill(-pid, SIGKILL);
  tool__drain(&fd, TOOL__EXEC_DRAIN_MS, &cap, o);
  if (fd >= 0) close(fd);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  kill(-pid, SIGKILL); /* anything forked between the kill and the reap */

  memset(r, 0, sizeof *r);
  if (WIFEXITED(status)) {
    r->exit_code = WEXITSTATUS(status);
  } else {
    r->exit_code = -1;
    r->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  }
  r->timed_out = timed_out;
  r->output = tool__cap_finish(&cap, &r->truncated);
  qc_buf_release(&cap.head);
  free(cap.tail);
  if (cancelled) {
    *err = strdup("the command was cancelled; its process group was killed");
    return TOOL_ECANCELLED;
  }
  return TOOL_OK;
}

int tool__exec(tool_ws *ws, const tool__exec_opts *o, tool_exec_result *r, int *sandboxed_out,
               char **warning, char **err) {
  *warning = NULL;
  *err = NULL;
  *sandboxed_out = 0;
  memset(r, 0, sizeof *r);
  /* the editor's terminal, when it offers one and the sandbox is not required */
  if (ws->has_io && ws->io.run_command && ws->sandbox != TOOL_SANDBOX_REQUIRE) {
    char *ioerr = NULL;
    int timeout_s = o->timeout_s > 0 ? o->timeout_s : TOOL__EXEC_TIMEOUT_DEFAULT;
    if (ws->io.run_command(ws->io.user, o->command, o->cwd_abs, timeout_s, o->cancel, r, &ioerr) != 0) {
      *err = qc_asprintf("the editor could not run the command: %s", ioerr ? ioerr : "unknown error");
      free(ioerr);
      return TOOL_EIO;
    }
    if (!r->output) r->output = strdup("");
    *warning = strdup("Note: the command ran in the editor's terminal, outside qcoder's sandbox.");
    return TOOL_OK;
  }
  int sandboxed = 0;
  char *why = NULL;
  if (ws->sandbox != TOOL_SANDBOX_OFF) {
    sandboxed = tool__sandbox_available(&why);
    if (!sandboxed && ws->sandbox == TOOL_SANDBOX_REQUIRE) {
      *err = qc_asprintf("refusing to run the command without a sandbox: %s. Install bubblewrap "
                         "(Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap) "
                         "and make sure unprivileged user namespaces are enabled, or allow "
                         "unsandboxed commands with --sandbox prefer.",
                         why ? why : "bubblewrap is unavailable");
      free(why);
      return TOOL_ESANDBOX;
    }
  }
  int rc;
  char scratch[4096] = "";
  char **env = NULL, **argv = NULL;
  if (sandboxed) {
    env = tool__exec_env("/tmp", "/tmp");
    argv = env ? tool__sandbox_argv(ws, o->command, o->cwd_abs, env, o->rw_dirs) : NULL;
    if (!argv) {
      rc = TOOL_ENOMEM;
      *err = strdup("cannot build the sandbox command line");
      goto out;
    }
    /* bwrap itself gets a minimal environment too; the command's comes from --setenv */
    char **benv = calloc(2, sizeof *benv);
    if (benv) benv[0] = strdup("PATH=/usr/local/bin:/usr/bin:/bin");
    rc = tool__spawn_wait(argv, benv, NULL, o, r, err);
    tool__strv_free(benv);
    *sandboxed_out = 1;
  } else {
    const char *tmp = getenv("TMPDIR");
    snprintf(scratch, sizeof scratch, "%s/qcoder-run-XXXXXX", tmp && *tmp == '/' ? tmp : "/tmp");
    if (!mkdtemp(scratch)) {
      *err = qc_asprintf("cannot create a scratch directory: %s", strerror(errno));
      scratch[0] = '\0';
      rc = TOOL_EIO;
      goto out;
    }
    env = tool__exec_env(scratch, scratch);
    argv = calloc(4, sizeof *argv);
    if (!env || !argv || !(argv[0] = strdup("/bin/sh")) || !(argv[1] = strdup("-c")) ||
        !(argv[2] = strdup(o->command))) {
      rc = TOOL_ENOMEM;
      *err = strdup("out of memory");
      goto out;
    }
    rc = tool__spawn_wait(argv, env, o->cwd_abs, o, r, err);
    if (ws->sandbox == TOOL_SANDBOX_PREFER)
      *warning = qc_asprintf("WARNING: this command ran WITHOUT a sandbox (%s): it could write "
                             "anywhere the user can and use the network.",
                             why ? why : "bubblewrap is unavailable");
  }
out:
  free(why);
  tool__strv_free(env);
  tool__strv_free(argv);
  if (scratch[0]) tool__rm_rf(scratch);
  return rc;
}

/* ---- run_command ----------------------------------------------------------------- */

/* "exit code 2", "killed by signal 9 (Killed)", "timed out after 5 s". */
static void tool__status_line(qc_buf *b, const tool_exec_result *r, int timeout_s) {
  if (r->timed_out)
    qc_buf_printf(b, "[timed out after %d s; the command and every process it started were killed]", timeout_s);
  else if (r->signal)
    qc_buf_printf(b, "[killed by signal %d (%s)]", r->signal, strsignal(r->signal));
  else
    qc_buf_printf(b, "[exit code %d]", r->exit_code);
}

json_t *tool__exit_json(const tool_exec_result *r) {
  return json_pack("{s:i, s:i, s:b}", "code", r->exit_code, "signal", r->signal, "timed_out",
                   r->timed_out);
}

static int tool_run_command(tool_call_ctx *ctx, const json_t *args, tool_result *res) {
  tool_ws *ws = ctx->ws;
  const char *command = tool__arg_str(args, "command", NULL);
  int timeout_s = (int)tool__arg_int(args, "timeout_s", TOOL__EXEC_TIMEOUT_DEFAULT);
  const char *cwd = tool__arg_str(args, "cwd", ".");
  char *err = NULL, *warning = NULL;
  tool_exec_result r;
  memset(&r, 0, sizeof r);
  tool__path p;
  int rc = tool__resolve(ws, cwd, TOOL__R_DIR, &p, &err);
  if (rc != TOOL_OK) goto fail;
  tool__exec_opts o = {command, p.abs, timeout_s, ctx->opts->cancel, ctx->opts->on_output,
                       ctx->opts->user, NULL, 0};
  int sandboxed = 0;
  rc = tool__exec(ws, &o, &r, &sandboxed, &warning, &err);
  if (rc == TOOL_ECANCELLED) {
    json_object_set_new(tool__data(res), "exit", tool__exit_json(&r));
    goto fail;
  }
  if (rc != TOOL_OK) goto fail;
  qc_buf msg;
  qc_buf_init(&msg, 0);
  if (warning) qc_buf_printf(&msg, "%s\n", warning);
  qc_buf_puts(&msg, r.output);
  if (msg.len && msg.data[msg.len - 1] != '\n') qc_buf_putc(&msg, '\n');
  if (!*r.output) qc_buf_puts(&msg, "(no output)\n");
  tool__status_line(&msg, &r, timeout_s);
  json_t *d = tool__data(res);
  json_object_set_new(d, "exit", tool__exit_json(&r));
  json_object_set_new(d, "truncated", json_boolean(r.truncated));
  json_object_set_new(d, "sandboxed", json_boolean(sandboxed));
  if (r.timed_out) rc = tool__fail_take(res, TOOL_ETIMEOUT, qc_buf_detach(&msg, NULL));
  else if (r.exit_code != 0 || r.signal) rc = tool__fail_take(res, TOOL_EFAILED, qc_buf_detach(&msg, NULL));
  else rc = tool__ok_take(res, qc_buf_detach(&msg, NULL));
  goto out;
fail:
  rc = tool__fail_take(res, rc, err);
  err = NULL;
out:
  free(err);
  free(warning);
  tool__exec_result_release(&r);
  tool__path_release(&p);
  return rc;
}

const tool_def tool__exec_defs[] = {
    {"run_command",
     "Run a shell command (/bin/sh -c) in the workspace, or in `cwd` beneath it, and return its "
     "combined stdout and stderr with the exit code. Use it to build, run programs, and use "
     "command-line tools. Runs sandboxed: the workspace is writable, the rest of the system "
     "read-only, there is no network, and the environment holds no credentials. Background "
     "processes are killed when the command ends; long output keeps its beginning and end.",
     "{\"type\":\"object\",\"properties\":{"
     "\"command\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":65536,\"description\":\"the shell command\"},"
     "\"timeout_s\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":3600,\"description\":\"seconds before the command is killed (default 120)\"},"
     "\"cwd\":{\"type\":\"string\",\"format\":\"path\",\"description\":\"working directory, relative to the workspace root (default: the root)\"}"
     "},\"required\":[\"command\"],\"additionalProperties\":false}",
     TOOL_KIND_EXECUTE, TOOL_F_EXEC | TOOL_F_MUTATES, tool_run_command},
    {NULL},
};
