/* test_acp_client.c — the C ACP client (daemon/acp_client.h) that `qcoder run`,
 * `fix-tests` and `qcoder lsp` use, against a real daemon it starts itself: a session and
 * a prompt with updates and a permission answered from another thread, cancel, the
 * daemon freeing the sessions of a client that goes away mid-turn, and the error for a
 * session without a model. */
#include <pthread.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/acp_client.h"
#include "tests/test.h"

static char *g_dir, *g_sock, *g_ws;

static void setup(void) {
  if (g_dir) return;
  g_dir = qct_tempdir("acp-client");
  char p[4096];
  snprintf(p, sizeof p, "%s/rt", g_dir);
  mkdir(p, 0700);
  setenv("QCODER_RUNTIME_DIR", p, 1);
  g_sock = qc_path_join(p, "qcoder.sock");
  snprintf(p, sizeof p, "%s/st", g_dir);
  mkdir(p, 0700);
  setenv("QCODER_STATE_DIR", p, 1);
  g_ws = qc_path_join(g_dir, "ws");
  mkdir(g_ws, 0700);
  snprintf(p, sizeof p, "%s/f.txt", g_ws);
  ASSERT_EQ_INT(qct_write_file(p, "alpha\n"), 0);
}

static char *script(const char *name, const char *json) {
  char *path = qc_asprintf("%s/%s.json", g_dir, name);
  ASSERT_EQ_INT(qct_write_file(path, json), 0);
  char *spec = qc_asprintf("script:%s", path);
  free(path);
  return spec;
}

typedef struct seen {
  pthread_mutex_t mu;
  qc_buf text;
  int tool_calls, permissions;
} seen;

static void on_update(void *user, const char *sid, const json_t *u) {
  (void)sid;
  seen *s = user;
  const char *kind = json_string_value(json_object_get(u, "sessionUpdate"));
  pthread_mutex_lock(&s->mu);
  if (kind && !strcmp(kind, "agent_message_chunk"))
    qc_buf_puts(&s->text, json_string_value(json_object_get(json_object_get(u, "content"), "text")) ?: "");
  if (kind && !strcmp(kind, "tool_call")) s->tool_calls++;
  pthread_mutex_unlock(&s->mu);
}

/* Permission answered later, from another thread (what a UI does). */
typedef struct later {
  rpc_req *req;
} later;

static void *answer_later(void *arg) {
  later *l = arg;
  usleep(50000);
  acp_client_reply(l->req, json_pack("{s:{s:s, s:s}}", "outcome", "outcome", "selected", "optionId", "allow_once"));
  free(l);
  return NULL;
}

static void on_request(void *user, rpc_req *req, const char *method, const json_t *params) {
  (void)params;
  seen *s = user;
  if (!strcmp(method, "session/request_permission")) {
    pthread_mutex_lock(&s->mu);
    s->permissions++;
    pthread_mutex_unlock(&s->mu);
    later *l = malloc(sizeof *l);
    l->req = req;
    pthread_t t;
    pthread_create(&t, NULL, answer_later, l);
    pthread_detach(t);
    return;
  }
  acp_client_reply_error(req, RPC_METHOD_NOT_FOUND, "not offered");
}

static acp_client *open_client(const char *model, seen *s) {
  acp_client_opts o = {.autostart = 1, .qcoder_bin = qct_qcoder_bin(), .model = model, .on_request = on_request,
                       .user = s};
  acp_client *c = NULL;
  char why[1024];
  ASSERT_MSG(acp_client_open(&o, &c, why, sizeof why) == QC_OK, "%s", why);
  ASSERT(acp_client_connected(c));
  ASSERT_EQ_INT(json_integer_value(json_object_get(acp_client_init_result(c), "protocolVersion")), 1);
  return c;
}

TEST(session_prompt_updates_and_permission) {
  setup();
  char *model = script("edit", "[\"<tool_call>\\n<function=read_file>\\n<parameter=path>\\nf.txt\\n</parameter>\\n"
                               "</function>\\n</tool_call>\", \"<tool_call>\\n<function=write_file>\\n<parameter=path>"
                               "\\nf.txt\\n</parameter>\\n<parameter=content>\\nbeta\\n</parameter>\\n</function>\\n"
                               "</tool_call>\", \"Wrote beta.\"]");
  seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
  qc_buf_init(&s.text, 0);
  acp_client *c = open_client(model, &s);
  char *sid = NULL, why[1024];
  json_t *res = NULL;
  ASSERT_MSG(acp_client_new_session(c, g_ws, NULL, NULL, &sid, &res, why, sizeof why) == QC_OK, "%s", why);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(res, "modes"), "currentModeId")), "ask");
  json_decref(res);
  char *stop = NULL;
  ASSERT_MSG(acp_client_prompt(c, sid, "write beta", on_update, &s, &stop, why, sizeof why) == QC_OK, "%s", why);
  ASSERT_STR_EQ(stop, "end_turn");
  ASSERT_STR_EQ(s.text.data, "Wrote beta.");
  ASSERT_EQ_INT(s.tool_calls, 2);
  ASSERT_EQ_INT(s.permissions, 1);
  char p[4096];
  snprintf(p, sizeof p, "%s/f.txt", g_ws);
  char *text = qct_read_file(p, NULL);
  ASSERT_STR_EQ(text, "beta"); /* the parser drops the newlines around a value */
  free(text);
  /* set_mode, and a bad mode */
  ASSERT_EQ_INT(acp_client_set_mode(c, sid, "full-auto", why, sizeof why), QC_OK);
  ASSERT_EQ_INT(acp_client_set_mode(c, sid, "sideways", why, sizeof why), RPC_EREMOTE);
  free(stop);
  free(sid);
  acp_client_close(c);
  qc_buf_release(&s.text);
  free(model);
}

typedef struct prompt_run {
  acp_client *c;
  const char *sid;
  char *stop;
  int rc;
} prompt_run;

static void *run_prompt(void *arg) {
  prompt_run *r = arg;
  char why[512];
  r->rc = acp_client_prompt(r->c, r->sid, "go", NULL, NULL, &r->stop, why, sizeof why);
  return NULL;
}

static json_t *sessions_of(acp_client *c) {
  json_t *res = NULL;
  int code;
  char why[512];
  ASSERT_EQ_INT(acp_client_call(c, "_qcoder/sessions", NULL, 5000, &res, &code, why, sizeof why), QC_OK);
  return res;
}

TEST(cancel_and_cleanup_when_a_client_goes) {
  setup();
  /* each prompt of a session takes the next entry */
  char *slow = script("slow", "[{\"text\": \"one two three four five six seven eight nine ten\", \"delay_ms\": 100},"
                              " {\"text\": \"one two three four five six seven eight nine ten\", \"delay_ms\": 100}]");
  seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
  qc_buf_init(&s.text, 0);
  acp_client *c = open_client(slow, &s);
  char *sid = NULL, why[1024];
  ASSERT_EQ_INT(acp_client_new_session(c, g_ws, NULL, NULL, &sid, NULL, why, sizeof why), QC_OK);
  /* cancel from another thread while the prompt blocks */
  prompt_run r = {c, sid, NULL, 0};
  pthread_t t;
  pthread_create(&t, NULL, run_prompt, &r);
  usleep(300000);
  uint64_t t0 = qc_now_ms();
  ASSERT_EQ_INT(acp_client_cancel(c, sid), QC_OK);
  pthread_join(t, NULL);
  ASSERT_EQ_INT(r.rc, QC_OK);
  ASSERT_STR_EQ(r.stop, "cancelled");
  ASSERT(qc_now_ms() - t0 < 2000);
  free(r.stop);

  /* a client that goes away mid-turn: its prompt is cancelled, its session freed */
  prompt_run r2 = {c, sid, NULL, 0};
  pthread_create(&t, NULL, run_prompt, &r2);
  usleep(200000);
  seen s2 = {.mu = PTHREAD_MUTEX_INITIALIZER};
  qc_buf_init(&s2.text, 0);
  acp_client *watcher = open_client(NULL, &s2);
  json_t *snap = sessions_of(watcher);
  ASSERT_EQ_INT((int)json_array_size(json_object_get(snap, "sessions")), 1);
  ASSERT(json_is_true(json_object_get(json_array_get(json_object_get(snap, "sessions"), 0), "busy")));
  json_decref(snap);
  acp_client_close(c); /* the blocked prompt fails: the connection is gone */
  pthread_join(t, NULL);
  ASSERT_EQ_INT(r2.rc, RPC_ECLOSED);
  int gone = 0;
  for (int i = 0; i < 100 && !gone; i++) {
    snap = sessions_of(watcher);
    gone = json_array_size(json_object_get(snap, "sessions")) == 0 &&
           json_integer_value(json_object_get(snap, "allocated")) == 0 &&
           json_integer_value(json_object_get(snap, "workers")) == 0;
    json_decref(snap);
    if (!gone) usleep(50000);
  }
  ASSERT_MSG(gone, "the daemon still holds the session of a client that went away");
  acp_client_close(watcher);

  /* a daemon with no default model and a client that names none: a clear error */
  char *sock2 = qc_asprintf("%s/rt/other.sock", g_dir);
  acp_client_opts o = {.socket_path = sock2, .autostart = 1, .qcoder_bin = qct_qcoder_bin()};
  ASSERT_MSG(acp_client_open(&o, &watcher, why, sizeof why) == QC_OK, "%s", why);
  char *sid2 = NULL;
  ASSERT_EQ_INT(acp_client_new_session(watcher, g_ws, NULL, NULL, &sid2, NULL, why, sizeof why), RPC_EREMOTE);
  ASSERT_CONTAINS(why, "--model");
  /* … but one named in _meta.qcoder works */
  json_t *meta = json_pack("{s:s, s:s}", "model", slow, "mode", "read-only");
  json_t *res = NULL;
  ASSERT_MSG(acp_client_new_session(watcher, g_ws, meta, NULL, &sid2, &res, why, sizeof why) == QC_OK, "%s", why);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(res, "modes"), "currentModeId")), "read-only");
  json_decref(res);
  json_decref(meta);
  free(sid2);
  acp_client_close(watcher);
  free(sid);
  qc_buf_release(&s.text);
  qc_buf_release(&s2.text);
  free(slow);
  const char *socks[2] = {g_sock, sock2};
  for (int i = 0; i < 2; i++) {
    char *cmd = qc_asprintf("'%s' stop --socket '%s'", qct_qcoder_bin(), socks[i]);
    char *out = NULL;
    ASSERT_EQ_INT(qct_run(cmd, &out), 0);
    free(out);
    free(cmd);
  }
  free(sock2);
}

QC_TEST_MAIN
