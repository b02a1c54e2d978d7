/* test_acp_relay.c — `qcoder acp` (daemon/cmd_acp.c) as an editor sees it, and model
 * names on the command lines that start or configure a daemon.
 *
 * The relay runs as a child whose stdin and stdout are one end of a socketpair, so the
 * test can half-close "stdin" (what an editor does when it is done) and still read
 * what the relay writes. Model names are checked against `qcoder run`'s resolution
 * (wf_model_resolve): a model in a private cache directory named by its cache name,
 * relative paths made absolute, and an unknown name refused with exit 2 and the same
 * message `qcoder run` gives.
 */
#include <limits.h>
#include <stdlib.h>

#include "tests/daemon/daemon_harness.h"

typedef struct relay_child {
  pid_t pid;
  int fd; /* our end: write = the relay's stdin, read = its stdout */
  rpc_framer fr;
  char *err; /* the relay's stderr file */
} relay_child;

/* Spawn `qcoder acp --socket SOCK EXTRA...`. */
static void relay_spawn(relay_child *rc, const qd_daemon *d, const char *const *extra) {
  int sv[2];
  ASSERT_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  const char *argv[16];
  int a = 0;
  argv[a++] = qct_qcoder_bin();
  argv[a++] = "acp";
  argv[a++] = "--socket";
  argv[a++] = d->sock;
  for (int i = 0; extra && extra[i] && a < 14; i++) argv[a++] = extra[i];
  argv[a] = NULL;
  rc->err = qc_asprintf("%s/acp.stderr", d->dir);
  rc->pid = fork();
  ASSERT(rc->pid >= 0);
  if (rc->pid == 0) {
    int e = open(rc->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(sv[1], 0);
    dup2(sv[1], 1);
    if (e >= 0) dup2(e, 2);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(sv[1]);
  rc->fd = sv[0];
  rpc_framer_init(&rc->fr, RPC_FRAMING_NDJSON, 0);
}

/* Close our end, wait for the relay; its exit status. */
static int relay_finish(relay_child *rc) {
  close(rc->fd);
  int st = qd_wait_exit(rc->pid, 15000);
  rpc_framer_release(&rc->fr);
  free(rc->err);
  return st;
}

static qd_daemon g_d;

static void daemon_up(const char *tag) {
  qd_init(&g_d, tag);
  ASSERT_MSG(qd_start(&g_d, NULL) == 0, "the daemon did not start");
}

static void daemon_down(void) {
  kill(g_d.pid, SIGTERM);
  ASSERT_EQ_INT(qd_wait_exit(g_d.pid, 15000), 0);
  g_d.pid = 0;
  qd_free(&g_d);
}

/* A tiny real model in a private cache directory ($QCODER_CACHE_DIR/models/NAME.gguf);
 * returns its real path. */
static char *cached_model(const char *dir, const char *name) {
  char *cache = qc_asprintf("%s/cache", dir);
  char *models = qc_asprintf("%s/models", cache);
  ASSERT_EQ_INT(qc_mkdir_p(models, 0700), 0);
  setenv("QCODER_CACHE_DIR", cache, 1);
  char *file = qc_asprintf("%s/%s.gguf", models, name);
  char *cmd = qc_asprintf("'%s' mkmodel --preset tiny --layers 1 --n-vocab 300 --type q8_0 -o '%s' 2>&1",
                          qct_qcoder_bin(), file);
  char *out = NULL;
  ASSERT_MSG(qct_run(cmd, &out) == 0, "mkmodel: %s", out ? out : "");
  free(out);
  free(cmd);
  char *real = realpath(file, NULL);
  ASSERT(real);
  free(file);
  free(models);
  free(cache);
  return real;
}

/* ---- the editor closing stdin ------------------------------------------------------ */

TEST(last_line_without_newline_is_relayed_and_answered) {
  daemon_up("relay-eof");
  relay_child rc;
  relay_spawn(&rc, &g_d, NULL);
  /* two messages, the second without its '\n', then the editor closes stdin */
  qd_send_str(rc.fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":1}}\n"
                     "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"_qcoder/ping\"}");
  ASSERT_EQ_INT(shutdown(rc.fd, SHUT_WR), 0);
  int got_init = 0, got_ping = 0, eof = 0;
  for (int i = 0; i < 2; i++) {
    json_t *m = qd_read_msg(rc.fd, &rc.fr, 10000, &eof);
    ASSERT_MSG(m, "answer %d missing (eof %d)", i + 1, eof);
    json_int_t id = json_integer_value(json_object_get(m, "id"));
    if (id == 1) got_init = json_integer_value(json_object_get(json_object_get(m, "result"), "protocolVersion")) == 1;
    if (id == 2) got_ping = json_is_true(json_object_get(json_object_get(m, "result"), "pong"));
    json_decref(m);
  }
  ASSERT(got_init);
  ASSERT(got_ping);
  /* nothing else, then the relay exits cleanly */
  ASSERT(qd_read_msg(rc.fd, &rc.fr, 10000, &eof) == NULL && eof);
  ASSERT_EQ_INT(relay_finish(&rc), 0);
  daemon_down();
}

TEST(a_lone_message_without_newline_is_relayed) {
  /* the whole input is one request with no '\n' at all, as `printf … | qcoder acp` sends */
  daemon_up("relay-lone");
  char *cmd = qc_asprintf("printf '%%s' '{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"_qcoder/ping\"}' | "
                          "timeout 20 '%s' acp --socket '%s'",
                          qct_qcoder_bin(), g_d.sock);
  char *out = NULL;
  ASSERT_EQ_INT(qct_run(cmd, &out), 0);
  ASSERT_CONTAINS(out, "\"id\":\"x\"");
  ASSERT_CONTAINS(out, "\"pong\":true");
  free(out);
  free(cmd);
  daemon_down();
}

/* ---- model names --------------------------------------------------------------------- */

TEST(acp_model_is_resolved_by_its_cache_name) {
  daemon_up("relay-model");
  char *real = cached_model(g_d.dir, "tiny-relay");
  relay_child rc;
  const char *extra[] = {"--model", "tiny-relay", NULL};
  relay_spawn(&rc, &g_d, extra);
  char *line = qc_asprintf("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"session/new\",\"params\":{\"cwd\":\"%s\","
                           "\"mcpServers\":[]}}",
                           g_d.dir);
  json_t *r = qd_call_line(rc.fd, &rc.fr, line);
  free(line);
  /* session/update notifications may come first */
  while (r && !json_object_get(r, "id")) {
    json_decref(r);
    r = qd_read_msg(rc.fd, &rc.fr, 10000, NULL);
  }
  ASSERT_MSG(r && json_object_get(r, "result"), "session/new failed: %s",
             r ? qd_err_msg(r) : "no answer");
  const char *model =
      json_string_value(json_object_get(json_object_get(json_object_get(json_object_get(r, "result"), "_meta"),
                                                        "qcoder"),
                                        "model"));
  ASSERT(model);
  ASSERT_STR_EQ(model, real);
  json_decref(r);
  ASSERT_EQ_INT(relay_finish(&rc), 0);
  unsetenv("QCODER_CACHE_DIR");
  free(real);
  daemon_down();
}

/* The message after "qcoder CMD: " for `qcoder CMD ARGS`, which must exit 2. */
static char *refusal(const char *args) {
  char *cmd = qc_asprintf("cd / && timeout 20 '%s' %s 2>&1 </dev/null", qct_qcoder_bin(), args);
  char *out = NULL;
  int st = qct_run(cmd, &out);
  ASSERT_MSG(st == 2, "`qcoder %s` exited %d: %s", args, st, out ? out : "");
  char *colon = out ? strstr(out, ": ") : NULL;
  ASSERT_MSG(colon, "no message: %s", out ? out : "");
  char *msg = strdup(colon + 2);
  free(out);
  free(cmd);
  return msg;
}

TEST(unknown_model_names_are_refused_like_run) {
  char *dir = qct_tempdir("relay-unknown");
  char *real = cached_model(dir, "tiny-known");
  char *sock = qc_asprintf("%s/run/qcoder.sock", dir);
  char *a = qc_asprintf("acp --socket '%s' --model no-such-model", sock);
  char *s = qc_asprintf("serve --socket '%s' --model no-such-model", sock);
  char *msg_acp = refusal(a);
  char *msg_serve = refusal(s);
  char *msg_run = refusal("run --workspace / --model no-such-model hello");
  char *l = qc_asprintf("lsp --socket '%s' --model no-such-model", sock);
  char *msg_lsp = refusal(l);
  ASSERT_CONTAINS(msg_acp, "no model named no-such-model in the cache");
  ASSERT_CONTAINS(msg_acp, "qcoder pull");
  ASSERT_STR_EQ(msg_acp, msg_run);
  ASSERT_STR_EQ(msg_serve, msg_run);
  ASSERT_STR_EQ(msg_lsp, msg_run);
  free(msg_lsp);
  free(l);
  /* a missing file and a bad --remote are refused the same way */
  char *m1 = refusal("acp --model /nonexistent/m.gguf");
  ASSERT_CONTAINS(m1, "does not exist");
  char *m2 = refusal("acp --remote ftp://x");
  ASSERT_CONTAINS(m2, "http(s)://");
  /* nothing was started */
  ASSERT(!qd_path_exists(sock));
  free(m1);
  free(m2);
  free(msg_acp);
  free(msg_serve);
  free(msg_run);
  free(a);
  free(s);
  free(sock);
  free(real);
  free(dir);
  unsetenv("QCODER_CACHE_DIR");
}

TEST(serve_model_is_resolved_by_cache_name_and_relative_path) {
  qd_init(&g_d, "serve-model");
  char *real = cached_model(g_d.dir, "tiny-serve");
  const char *extra[] = {"--model", "tiny-serve", NULL};
  ASSERT_MSG(qd_start(&g_d, extra) == 0, "the daemon did not start");
  int fd = qd_connect(g_d.sock);
  rpc_framer fr;
  rpc_framer_init(&fr, RPC_FRAMING_NDJSON, 0);
  json_t *r = qd_call_line(fd, &fr, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"_qcoder/sessions\"}");
  ASSERT(r);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(r, "result"), "defaultModel")), real);
  json_decref(r);
  close(fd);
  rpc_framer_release(&fr);
  daemon_down();

  /* a relative path, given from another working directory, becomes absolute */
  qd_init(&g_d, "serve-relpath");
  char *dir = strdup(real);
  *strrchr(dir, '/') = '\0';
  char cwd[PATH_MAX];
  ASSERT(getcwd(cwd, sizeof cwd));
  ASSERT_EQ_INT(chdir(dir), 0);
  const char *extra2[] = {"--model", "./tiny-serve.gguf", NULL};
  int started = qd_start(&g_d, extra2);
  ASSERT_EQ_INT(chdir(cwd), 0);
  ASSERT_MSG(started == 0, "the daemon did not start");
  fd = qd_connect(g_d.sock);
  rpc_framer_init(&fr, RPC_FRAMING_NDJSON, 0);
  r = qd_call_line(fd, &fr, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"_qcoder/sessions\"}");
  ASSERT(r);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(r, "result"), "defaultModel")), real);
  json_decref(r);
  close(fd);
  rpc_framer_release(&fr);
  daemon_down();
  free(dir);
  free(real);
  unsetenv("QCODER_CACHE_DIR");
}

QC_TEST_MAIN
