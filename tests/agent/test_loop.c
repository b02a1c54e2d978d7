/* test_loop.c — the agent loop end to end with the scripted test double on a fixture
 * repository: read → edit → run tests → answer (files on disk and the event sequence),
 * permissions (ask/deny/always/read-only), cancel during generation and during a running
 * command, context overflow (elision, then a summary), the session store (resume renders
 * the same prompt), session tools, the plan tool, budgets and errors. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <time.h>

#include <git2.h>

#include "agent/agent.h"
#include "agent/session.h" /* agent__set_checkpoint_prune_limits (tests only) */
#include "common/common.h"
#include "mock_http.h"
#include "tests/test.h"

/* ---- fixtures ------------------------------------------------------------------------ */

static char *make_repo(void) {
  /* checkpoints of non-repositories live in shadow repositories under the state directory:
   * keep them out of the user's home */
  static char *state;
  if (!state) {
    state = qct_tempdir("loop-state");
    setenv("QCODER_STATE_DIR", state, 1);
  }
  char *dir = qct_tempdir("loop");
  ASSERT(dir);
  char p[4096];
  snprintf(p, sizeof p, "%s/add.sh", dir);
  ASSERT_EQ_INT(qct_write_file(p, "add() {\n  echo $(( $1 - $2 ))\n}\n"), 0);
  snprintf(p, sizeof p, "%s/test.sh", dir);
  ASSERT_EQ_INT(qct_write_file(p, ". ./add.sh\nif [ \"$(add 2 3)\" = 5 ]; then echo PASS; else echo FAIL; exit 1; fi\n"), 0);
  snprintf(p, sizeof p, "%s/AGENTS.md", dir);
  ASSERT_EQ_INT(qct_write_file(p, "Run the tests with `sh test.sh`.\n"), 0);
  return dir;
}

/* A script file from NULL-terminated replies. */
static char *make_script(const char *dir, const char *const *replies) {
  json_t *a = json_array();
  for (; *replies; replies++) json_array_append_new(a, json_string(*replies));
  char *path = qc_path_join(dir, ".script.json");
  ASSERT_EQ_INT(json_dump_file(a, path, 0), 0);
  json_decref(a);
  return path;
}

static agent_backend *open_script(const char *path, int delay_ms) {
  agent_backend_opts o;
  agent_backend_opts_init(&o);
  char spec[4200];
  snprintf(spec, sizeof spec, "script:%s", path);
  o.spec = spec;
  o.script_delay_ms = delay_ms;
  o.script_chunk_bytes = 5;
  agent_backend *b = NULL;
  char *err = NULL;
  ASSERT_MSG(agent_backend_open(&o, &b, &err) == AGENT_OK, "%s", err ? err : "?");
  ASSERT_STR_EQ(agent_backend_kind(b), "scripted");
  return b;
}

/* ---- recording events and answering permissions ------------------------------------------ */

typedef struct rec {
  pthread_mutex_t mu;
  qc_buf log;       /* one line per event */
  qc_buf text;      /* the message chunks */
  json_t *acp;      /* agent_event_to_acp of each event */
  int n_perm;
  qc_buf perm_log;
  agent_permission answer;             /* default answer */
  const char *answer_for; agent_permission answer_special;  /* per tool */
  int compactions;
  qc_buf compaction_text;
  int plans;
  int saw_diff;
  agent_stop stop;
  /* announcement while the reply streams */
  int n_announced;
  size_t text_at_first_call;           /* message text shown when call 1 was announced */
  agent_session *cancel_on_call;       /* cancel this session at the first announcement */
} rec;

static void rec_init(rec *r) {
  memset(r, 0, sizeof *r);
  pthread_mutex_init(&r->mu, NULL);
  qc_buf_init(&r->log, 0);
  qc_buf_init(&r->text, 0);
  qc_buf_init(&r->perm_log, 0);
  qc_buf_init(&r->compaction_text, 0);
  r->acp = json_array();
  r->answer = AGENT_PERMISSION_ALLOW_ONCE;
}

static void rec_release(rec *r) {
  qc_buf_release(&r->log);
  qc_buf_release(&r->text);
  qc_buf_release(&r->perm_log);
  qc_buf_release(&r->compaction_text);
  json_decref(r->acp);
  pthread_mutex_destroy(&r->mu);
}

static void on_event(void *user, const agent_event *ev) {
  rec *r = user;
  pthread_mutex_lock(&r->mu);
  json_t *u = agent_event_to_acp(ev);
  if (u) json_array_append_new(r->acp, u);
  switch (ev->type) {
  case AGENT_EVENT_USER_MESSAGE_CHUNK:
    break;
  case AGENT_EVENT_MESSAGE_CHUNK:
    qc_buf_append(&r->text, ev->text, ev->text_len);
    if (!r->log.len || !qc_str_has_suffix(r->log.data, "text\n")) qc_buf_puts(&r->log, "text\n");
    break;
  case AGENT_EVENT_TOOL_CALL:
    qc_buf_printf(&r->log, "call %s %s\n", ev->tool_name, ev->status);
    if (!r->n_announced++) {
      r->text_at_first_call = r->text.len;
      if (r->cancel_on_call) agent_session_cancel(r->cancel_on_call);
    }
    break;
  case AGENT_EVENT_TOOL_CALL_UPDATE:
    if (ev->status && !strcmp(ev->status, "in_progress") && ev->content) break; /* live output */
    qc_buf_printf(&r->log, "update %s\n", ev->status ? ev->status : "-");
    if (ev->diff) r->saw_diff = 1;
    break;
  case AGENT_EVENT_PLAN:
    r->plans++;
    qc_buf_printf(&r->log, "plan %zu\n", ev->n_plan);
    break;
  case AGENT_EVENT_USAGE:
    break;
  case AGENT_EVENT_COMPACTION:
    r->compactions++;
    qc_buf_printf(&r->compaction_text, "%.*s\n", (int)ev->text_len, ev->text);
    qc_buf_puts(&r->log, "compaction\n");
    break;
  case AGENT_EVENT_STOP:
    r->stop = ev->stop;
    qc_buf_printf(&r->log, "stop %s\n", agent_stop_name(ev->stop));
    break;
  }
  pthread_mutex_unlock(&r->mu);
}

static agent_permission on_permission(void *user, const agent_tool_call_info *call) {
  rec *r = user;
  pthread_mutex_lock(&r->mu);
  r->n_perm++;
  qc_buf_printf(&r->perm_log, "%s\n", call->tool_name);
  agent_permission a = r->answer_for && !strcmp(r->answer_for, call->tool_name) ? r->answer_special : r->answer;
  pthread_mutex_unlock(&r->mu);
  return a;
}

static agent_session *new_session(const char *cwd, agent_backend *b, agent_mode mode, rec *r, agent_store *st) {
  agent_session_opts o;
  agent_session_opts_init(&o);
  o.cwd = cwd;
  o.backend = b;
  o.mode = mode;
  o.on_event = on_event;
  o.request_permission = on_permission;
  o.user = r;
  o.store = st;
  agent_session *s = NULL;
  char *err = NULL;
  ASSERT_MSG(agent_session_new(&o, &s, &err) == AGENT_OK, "%s", err ? err : "?");
  return s;
}

static char *read_at(const char *dir, const char *name) {
  char *p = qc_path_join(dir, name);
  char *s = qct_read_file(p, NULL);
  free(p);
  return s;
}

/* The last tool message's content. */
static const char *last_tool_text(json_t *msgs) {
  for (size_t i = json_array_size(msgs); i-- > 0;) {
    json_t *m = json_array_get(msgs, i);
    if (!strcmp(json_string_value(json_object_get(m, "role")), "tool"))
      return json_string_value(json_object_get(m, "content"));
  }
  return NULL;
}

#define CALL1(fn, p1, v1) "<tool_call>\n<function=" fn ">\n<parameter=" p1 ">\n" v1 "\n</parameter>\n</function>\n</tool_call>"

/* ---- tests --------------------------------------------------------------------------- */

TEST(read_edit_test_answer_end_to_end) {
  char *repo = make_repo();
  const char *replies[] = {
      "Let me look at the function.\n\n" CALL1("read_file", "path", "add.sh"),
      "The subtraction is the bug.\n<tool_call>\n<function=edit_file>\n<parameter=path>\nadd.sh\n</parameter>\n"
      "<parameter=old_string>\n  echo $(( $1 - $2 ))\n</parameter>\n<parameter=new_string>\n  echo $(( $1 + $2 ))\n"
      "</parameter>\n</function>\n</tool_call>",
      CALL1("run_command", "command", "sh test.sh"),
      "Fixed `add` to add instead of subtract; `sh test.sh` prints PASS.",
      NULL};
  char *script = make_script(repo, replies);
  agent_backend *b = open_script(script, 0);
  rec r;
  rec_init(&r);
  agent_session *s = new_session(repo, b, AGENT_MODE_ASK, &r, NULL);
  /* AGENTS.md is in the system prompt */
  json_t *msgs = agent_session_messages(s);
  ASSERT_CONTAINS(json_string_value(json_object_get(json_array_get(msgs, 0), "content")), "sh test.sh");
  json_decref(msgs);
  agent_run_result res;
  ASSERT_EQ_INT(agent_run(s, "The test fails. Fix add.", &res), AGENT_OK);
  ASSERT_MSG(res.stop == AGENT_STOP_END_TURN, "stop %s: %s", agent_stop_name(res.stop), res.error ? res.error : "");
  ASSERT_EQ_INT(res.n_model_calls, 4);
  ASSERT_EQ_INT(res.n_tool_calls, 3);
  char *add = read_at(repo, "add.sh");
  ASSERT_STR_EQ(add, "add() {\n  echo $(( $1 + $2 ))\n}\n");
  free(add);
  ASSERT_STR_EQ(r.log.data, "text\ncall read_file pending\nupdate in_progress\nupdate completed\n"
                            "text\ncall edit_file pending\nupdate in_progress\nupdate completed\n"
                            "call run_command pending\nupdate in_progress\nupdate completed\n"
                            "text\nstop end_turn\n");
  ASSERT_STR_EQ(r.text.data, "Let me look at the function.\n\nThe subtraction is the bug.\n"
                             "Fixed `add` to add instead of subtract; `sh test.sh` prints PASS.");
  ASSERT_STR_EQ(r.perm_log.data, "edit_file\nrun_command\n"); /* reads are not asked about */
  ASSERT(r.saw_diff);
  msgs = agent_session_messages(s);
  ASSERT_EQ_INT(json_array_size(msgs), 9); /* system user (assistant tool)x3 assistant */
  const char *t = last_tool_text(msgs);
  ASSERT_CONTAINS(t, "PASS");
  json_decref(msgs);
  /* ACP shapes */
  int n_calls = 0, n_chunks = 0, n_usage = 0, n_diff = 0;
  size_t i;
  json_t *u;
  json_array_foreach(r.acp, i, u) {
    const char *k = json_string_value(json_object_get(u, "sessionUpdate"));
    if (!strcmp(k, "tool_call")) {
      n_calls++;
      ASSERT(json_is_string(json_object_get(u, "toolCallId")) && json_is_string(json_object_get(u, "title")));
      ASSERT(json_is_object(json_object_get(u, "rawInput")));
    } else if (!strcmp(k, "agent_message_chunk")) {
      n_chunks++;
      ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(u, "content"), "type")), "text");
    } else if (!strcmp(k, "usage_update")) {
      n_usage++;
      ASSERT(json_integer_value(json_object_get(u, "size")) > 0);
    } else if (!strcmp(k, "tool_call_update")) {
      size_t j;
      json_t *c;
      json_array_foreach(json_object_get(u, "content"), j, c) if (!strcmp(json_string_value(json_object_get(c, "type")), "diff")) {
        n_diff++;
        ASSERT_CONTAINS(json_string_value(json_object_get(c, "newText")), "$1 + $2");
        ASSERT_CONTAINS(json_string_value(json_object_get(c, "path")), "/add.sh");
      }
    }
  }
  ASSERT_EQ_INT(n_calls, 3);
  ASSERT(n_chunks >= 3);
  ASSERT_EQ_INT(n_usage, 4);
  ASSERT_EQ_INT(n_diff, 1);
  agent_run_result_release(&res);
  agent_session_free(s);
  agent_backend_close(b);
  rec_release(&r);
  free(script);
  free(repo);
}

TEST(permission_denied_is_a_result_the_model_sees) {
  char *repo = make_repo();
  const char *edit = "<tool_call>\n<function=edit_file>\n<parameter=path>\nadd.sh\n</parameter>\n<parameter=old_string>\n"
                     "-\n</parameter>\n<parameter=new_string>\n+\n</parameter>\n</function>\n</tool_call>";
  const char *replies[] = {CALL1("read_file", "path", "add.sh"), edit, edit, "I will leave the file as it is.", NULL};
  char *script = make_script(repo, replies);
  agent_backend *b = open_script(script, 0);
  rec r;
  rec_init(&r);
  r.answer = AGENT_PERMISSION_REJECT_ALWAYS;
  agent_session *s = new_session(repo, b, AGENT_MODE_ASK, &r, NULL);
  agent_run_result res;
  ASSERT_EQ_INT(agent_run(s, "change it", &res), AGENT_OK);
  ASSERT_EQ_INT(res.stop, AGENT_STOP_END_TURN);
  ASSERT_EQ_INT(r.n_perm, 1); /* "reject always" remembered: the second edit is not asked about */
  char *add = read_at(repo, "add.sh");
  ASSERT_CONTAINS(add, "$1 - $2");
  free(add);
  json_t *msgs = agent_session_messages(s);
  ASSERT_CONTAINS(last_tool_text(msgs), "The user denied this action");
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(msgs, json_array_size(msgs) - 1), "content")),
                "I will leave the file as it is.");
  json_decref(msgs);
  ASSERT_CONTAINS(r.log.data, "call edit_file pending\nupdate failed\n");
  agent_run_result_release(&res);
  agent_session_free(s);
  agent_backend_close(b);
  rec_release(&r);
  free(script);
  free(repo);
}

TEST(allow_always_and_modes) {
  char *repo = make_repo();
  const char *cmd = CALL1("run_command", "command", "echo hi");
  const char *replies[] = {cmd, cmd, "done", cmd, "done", NULL};
  char *script = make_script(repo, replies);
  agent_backend *b = open_script(script, 0);
  rec r;
  rec_init(&r);
  r.answer = AGENT_PERMISSION_ALLOW_ALWAYS;
  agent_session *s = new_session(repo, b, AGENT_MODE_AUTO_EDIT, &r, NULL);
  agent_run_result res;
  ASSERT_EQ_INT(agent_run(s, "say hi twice", &res), AGENT_OK);
  ASSERT_EQ_INT(res.stop, AGENT_STOP_END_TURN);
  ASSERT_EQ_INT(r.n_perm, 1); /* auto-edit asks for commands, once with "always" */
  agent_run_result_release(&res);
  /* read-only: refused without asking */
  agent_session_set_mode(s, AGENT_MODE_READ_ONLY);
  ASSERT_EQ_INT(agent_session_mode(s), AGENT_MODE_READ_ONLY);
  ASSERT_EQ_INT(agent_run(s, "again", &res), AGENT_OK);
  ASSERT_EQ_INT(r.n_perm, 1);
  json_t *msgs = agent_session_messages(s);
  ASSERT_CONTAINS(last_tool_text(msgs), "read-only");
  json_decref(msgs);
  agent_run_result_release(&res);
  agent_session_free(s);
  agent_backend_close(b);
  rec_release(&r);
  free(script);
  free(repo);
}

typedef struct canceller {
  agent_session *s;
  int after_ms;
} canceller;

static void *cancel_thread(void *arg) {
  canceller *c = arg;
  struct timespec ts = {c->after_ms / 1000, (c->after_ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
  agent_session_cancel(c->s);
  return NULL;
}

TEST(cancel_during_generation) {
  char *repo = make_repo();
  const char *replies[] = {"This reply streams slowly, five bytes every twenty milliseconds, so it takes a good while "
                           "to arrive in full and the cancel lands in the middle of it.",
                           "never used", NULL};
  char *script = make_script(repo, replies);
  agent_backend *b = open_script(script, 20);
  rec r;
  rec_init(&r);
  agent_session *s = new_session(repo, b, AGENT_MODE_ASK, &r, NULL);
  canceller c = {s, 150};
  pthread_t th;
  pthread_create(&th, NULL, cancel_thread, &c);
  uint64_t t0 = qc_now_ms();
  agent_run_result res;
  ASSERT_EQ_INT(agent_run(s, "talk", &res), AGENT_OK);
  uint64_t dt = qc_now_ms() - t0;
  pthread_join(th, NULL);
  ASSERT_EQ_INT(res.stop, AGENT_STOP_CANCELLED);
  ASSERT_MSG(dt < 1000, "cancel took %llu ms", (unsigned long long)dt);
  ASSERT(r.text.len > 0 && r.text.len < 100);
  ASSERT_CONTAINS(r.log.data, "stop cancelled\n");
  agent_run_result_release(&res);
  /* the session is usable after a cancel */
  ASSERT_EQ_INT(agent_run(s, "again", &res), AGENT_OK);
  ASSERT_EQ_INT(res.stop, AGENT_STOP_END_TURN);
  agent_run_result_release(&res);
  agent_session_free(s);
  agent_backend_close(b);
  rec_release(&r);
  free(script);
  free(repo);
}

TEST(cancel_during_a_running_command) {
  char *repo = make_repo();
  const char *replies[] = {CALL1("run_command", "command", "sleep 30"), "unreachable", NULL};
  char *script = make_script(repo, replies);
  agent_backend *b = open_script(script, 0);
  rec r;
  rec_init(&r);
  agent_session *s = new_session(repo, b, AGENT_MODE_ASK, &r, NULL);
  canceller c = {s, 500};
  pthread_t th;
  pthread_create(&th, NULL, cancel_thread, &c);
  uint64_t t0 = qc_now_ms();
  agent_run_result res;
  ASSERT_EQ_INT(agent_run(s, "wait", &res), AGENT_OK);
  uint64_t dt = qc_now_ms() - t0;
  pthread_join(th, NULL);
  ASSERT_EQ_INT(res.stop, AGENT_STOP_CANCELLED);
  ASSERT_MSG(dt < 5000, "cancel took %llu ms", (unsigned long long)dt);
  ASSERT_CONTAINS(r.log.data, "call run_command pending\nupdate in_progress\nupdate failed\nstop cancelled\n");
  /* the call still has its result in the conversation */
  json_t *msgs = agent_session_messages(s);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(msgs, json_array_size(msgs) - 1), "role")), "tool");
  json_decref(msgs);
  agent_run_result_release(&res);
  agent_session_free(s);
  agent_backend_close(b);
  rec_release(&r);
  free(script);
  free(repo);
}

TEST(cancelled_permission_request_cancels_the_turn) {
  char *repo = make_repo();
  const char *replies[] = {CALL1("run_command", "command", "echo x") "\n" CALL1("read_file", "path", "add.sh"), "no", NULL};
  char *script = make_script(repo, replies);
  agent_backend *b = open_script(script, 0);
  rec r;
  rec_init(&r);
  r.answer = AGENT_PERMISSION_CANCELLED;
  agent_session *s = new_session(repo, b, AGENT_MODE_ASK, &r, NULL);
  agent_run_result res;
  ASSERT_EQ_INT(agent_run(s, "go", &res), AGENT_OK);
  ASSERT_EQ_INT(res.stop, AGENT_STOP_CANCELLED);
  json_t *msgs = agent_session_messages(s);
  /* both calls answered: the asked one cancelled, the next not run */
  size_t n = json_array_size(msgs);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(msgs, n - 2), "content")), "Cancelled by the user.");
  ASSERT_CONTAINS(json_string_value(json_object_get(json_array_get(msgs, n - 1), "content")), "Cancelled by the user");
  json_decref(msgs);
  agent_run_result_release(&res);
  agent_session_free(s);
  agent_backend_close(b);
  rec_release(&r);
  free(script);
  free(repo);
}

TEST(malformed_calls_errors_and_budgets) {
  char *repo = make_repo();
  const char *replies[] = {
      "<tool_call>\n<function=read_file>\n<parameter=file>\nadd.sh\n</parameter>\n</function>\n</tool_call>",
      "<tool_call>\n<function=no_such_tool>\n</function>\n</tool_call>",
      "Sorry.",
      CALL1("read_file", "path", "add.sh"),
      CALL1("read_file", "path", "test.sh"),
      CALL1("read_file", "path", "add.sh"),
      NULL};
  char *script = make_script(repo, replies);
  agent_backend *b = open_script(script, 0);
  rec r;
  rec_init(&r);
  agent_session *s = new_session(repo, b, AGENT_MODE_ASK, &r, NULL);
  agent_run_result res;
  ASSERT_EQ_INT(agent_run(s, "go", &res), AGENT_OK);
  ASSERT_EQ_INT(res.stop, AGENT_STOP_END_TURN);
  json_t *msgs = agent_session_messages(s);
  ASSERT_CONTAINS(json_string_value(json_object_get(json_array_get(msgs, 3), "content")), "missing required parameter 'path'");
  ASSERT_CONTAINS(json_string_value(json_object_get(json_array_get(msgs, 5), "content")), "unknown tool 'no_such_tool'");
  json_decref(msgs);
  agent_run_result_release(&res);
  /* the step budget */
  agent_session_free(s);
  agent_session_opts o;
  agent_session_opts_init(&o);
  o.cwd = repo;
  o.backend = b;
  o.max_steps = 2;
  o.on_event = on_event;
  o.user = &r;
  ASSERT_EQ_INT(agent_session_new(&o, &s, NULL), AGENT_OK);
  ASSERT_EQ_INT(agent_run(s, "go", &res), AGENT_OK);
  ASSERT_EQ_INT(res.stop, AGENT_STOP_MAX_TURN_REQUESTS);
  agent_run_result_release(&res);
  /* the script goes on (reply 3 ends a turn, 4-5 hit the step budget, 6 and then nothing) */
  ASSERT_EQ_INT(agent_run(s, "more", &res), AGENT_OK);
  agent_run_result_release(&res);
  ASSERT_EQ_INT(agent_run(s, "more", &res), AGENT_OK);
  agent_run_result_release(&res);
  ASSERT_EQ_INT(agent_run(s, "more", &res), AGENT_OK);
  ASSERT_EQ_INT(res.stop, AGENT_STOP_ERROR);
  ASSERT_CONTAINS(res.error, "exhausted");
  agent_run_result_release(&res);
  agent_session_free(s);
  agent_backend_close(b);
  rec_release(&r);
  free(script);
  free(repo);
}

TEST(a_cut_reply_stops_with_max_tokens) {
  char *repo = make_repo();
  json_t *a = json_pack("[{s:s, s:s}, {s:s, s:s}, s]", "text", "A long answer that was cut", "finish", "length",
                        "text", "<tool_call>\n<function=write_file>\n<parameter=path>\nx.txt\n</parameter>\n<parameter=content>\nhalf",
                        "finish", "length", "Understood.");
  char *script = qc_path_join(repo, ".s.json");
  json_dump_file(a, script, 0);
  json_decref(a);
  agent_backend *b = open_script(script, 0);
  rec r;
  rec_init(&r);
  agent_session *s = new_session(repo, b, AGENT_MODE_FULL_AUTO, &r, NULL);
  agent_run_result res;
  ASSERT_EQ_INT(agent_run(s, "go", &res), AGENT_OK);
  ASSERT_EQ_INT(res.stop, AGENT_STOP_MAX_TOKENS);
  agent_run_result_release(&res);
  /* a call cut by the limit is not run: the model is told */
  ASSERT_EQ_INT(agent_run(s, "write it", &res), AGENT_OK);
  ASSERT_EQ_INT(res.stop, AGENT_STOP_END_TURN);
  char *x = read_at(repo, "x.txt");
  ASSERT(x == NULL);
  json_t *msgs = agent_session_messages(s);
  ASSERT_CONTAINS(last_tool_text(msgs), "cut off");
  json_decref(msgs);
  /* the editor saw the cut call fail, with the reason, never left pending */
  ASSERT_CONTAINS(r.log.data, "stop max_tokens\ncall write_file pending\nupdate failed\ntext\nstop end_turn\n");
  int saw = 0;
  size_t i;
  json_t *u;
  json_array_foreach(r.acp, i, u) {
    const char *st = json_string_value(json_object_get(u, "status"));
    if (!st || strcmp(st, "failed")) continue;
    char *c = json_dumps(json_object_get(u, "content"), 0);
    saw += c && strstr(c, "cut off") != NULL;
    free(c);
  }
  ASSERT_EQ_INT(saw, 1);
  agent_run_result_release(&res);
  agent_session_free(s);
  agent_backend_close(b);
  rec_release(&r);
  free(script);

  /* the run's token budget ends with a reply cut inside a call: the run stops max_tokens,
   * the call failed, and the next prompt shows the model why */
  a = json_pack("[{s:s, s:s}, s]", "text",
                "Writing the file now.\n<tool_call>\n<function=write_file>\n<parameter=path>\nx.txt\n</parameter>\n"
                "<parameter=content>\nthe first half of a long file and then",
                "finish", "length", "Understood.");
  script = qc_path_join(repo, ".s2.json");
  json_dump_file(a, script, 0);
  json_decref(a);
  b = open_script(script, 0);
  rec_init(&r);
  agent_session_opts o;
  agent_session_opts_init(&o);
  o.cwd = repo;
  o.backend = b;
  o.mode = AGENT_MODE_FULL_AUTO;
  o.max_tokens = 20; /* the scripted reply counts ~60 */
  o.on_event = on_event;
  o.user = &r;
  ASSERT_EQ_INT(agent_session_new(&o, &s, NULL), AGENT_OK);
  ASSERT_EQ_INT(agent_run(s, "write it", &res), AGENT_OK);
  ASSERT_EQ_INT(res.stop, AGENT_STOP_MAX_TOKENS);
  ASSERT_STR_EQ(r.log.data, "text\ncall write_file pending\nupdate failed\nstop max_tokens\n");
  x = read_at(repo, "x.txt");
  ASSERT(x == NULL);
  char *prompt = agent_session_render(s);
  ASSERT_CONTAINS(prompt, "<tool_response>\nError: your reply was cut off (token limit) inside this tool call");
  free(prompt);
  agent_run_result_release(&res);
  agent_session_free(s);
  agent_backend_close(b);
  rec_release(&r);
  free(script);
  free(repo);
}

/* A call is shown (ACP tool_call, pending) as soon as the parser has it, while the model
 * is still writing the rest of its reply; it runs, with the same id, after the reply. */
TEST(a_tool_call_is_announced_while_the_reply_streams) {
  char *repo = make_repo();
  const char *replies[] = {
      "Reading both.\n" CALL1("read_file", "path", "add.sh") "\nAnd the test too, while I am at it.\n"
      CALL1("read_file", "path", "test.sh"),
      "Both read.",
      NULL};
  char *script = make_script(repo, replies);
  agent_backend *b = open_script(script, 0);
  rec r;
  rec_init(&r);
  agent_session *s = new_session(repo, b, AGENT_MODE_ASK, &r, NULL);
  agent_run_result res;
  ASSERT_EQ_INT(agent_run(s, "read them", &res), AGENT_OK);
  ASSERT_EQ_INT(res.stop, AGENT_STOP_END_TURN);
  ASSERT_EQ_INT(res.n_tool_calls, 2);
  /* call 1 was announced before the text after it had been generated, call 2 after it,
   * and both ran only once the reply had ended */
  ASSERT_STR_EQ(r.log.data, "text\ncall read_file pending\ntext\ncall read_file pending\n"
                            "update in_progress\nupdate completed\nupdate in_progress\nupdate completed\n"
                            "text\nstop end_turn\n");
  ASSERT_EQ_INT((long)r.text_at_first_call, (long)strlen("Reading both.\n"));
  /* one id per call, from the announcement to the result message */
  json_t *ids = json_array();
  size_t i;
  json_t *u;
  json_array_foreach(r.acp, i, u) {
    const char *k = json_string_value(json_object_get(u, "sessionUpdate"));
    if (!strcmp(k, "tool_call")) json_array_append(ids, json_object_get(u, "toolCallId"));
  }
  ASSERT_EQ_INT(json_array_size(ids), 2);
  const char *id1 = json_string_value(json_array_get(ids, 0)), *id2 = json_string_value(json_array_get(ids, 1));
  ASSERT(id1 && id2 && strcmp(id1, id2));
  int finals1 = 0, finals2 = 0;
  json_array_foreach(r.acp, i, u) {
    const char *k = json_string_value(json_object_get(u, "sessionUpdate"));
    const char *st = json_string_value(json_object_get(u, "status"));
    if (strcmp(k, "tool_call_update") || !st || strcmp(st, "completed")) continue;
    const char *id = json_string_value(json_object_get(u, "toolCallId"));
    finals1 += !strcmp(id, id1);
    finals2 += !strcmp(id, id2);
    ASSERT_CONTAINS(json_string_value(json_object_get(u, "title")), "read_file"); /* titled, for displays */
  }
  ASSERT_EQ_INT(finals1, 1);
  ASSERT_EQ_INT(finals2, 1);
  json_t *msgs = agent_session_messages(s);
  json_t *calls = json_object_get(json_array_get(msgs, 2), "tool_calls");
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(calls, 0), "id")), id1);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(calls, 1), "id")), id2);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(msgs, 3), "tool_call_id")), id1);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(msgs, 4), "tool_call_id")), id2);
  json_decref(msgs);
  json_decref(ids);
  agent_run_result_release(&res);
  agent_session_free(s);
  agent_backend_close(b);
  rec_release(&r);
  free(script);

  /* an editor can act on the announcement: cancelling then stops the model before it
   * writes the second call, and the announced call ends failed, never left pending */
  replies[1] = NULL;
  script = make_script(repo, replies);
  b = open_script(script, 2);
  rec_init(&r);
  s = new_session(repo, b, AGENT_MODE_ASK, &r, NULL);
  r.cancel_on_call = s;
  ASSERT_EQ_INT(agent_run(s, "read them", &res), AGENT_OK);
  ASSERT_EQ_INT(res.stop, AGENT_STOP_CANCELLED);
  ASSERT_EQ_INT(r.n_announced, 1);
  ASSERT_STR_EQ(r.log.data, "text\ncall read_file pending\nupdate failed\nstop cancelled\n");
  ASSERT(!strstr(r.text.data, "And the test too"));
  agent_run_result_release(&res);
  agent_session_free(s);
  agent_backend_close(b);
  rec_release(&r);
  free(script);

  /* the model call fails after announcing a call: the call ends failed, nothing runs */
  json_t *a = json_pack("[{s:s, s:s, s:s}]", "text", CALL1("write_file", "path", "x.txt") "\nand then",
                        "finish", "error", "error", "the server went away");
  script = qc_path_join(repo, ".s.json");
  json_dump_file(a, script, 0);
  json_decref(a);
  b = open_script(script, 0);
  rec_init(&r);
  s = new_session(repo, b, AGENT_MODE_FULL_AUTO, &r, NULL);
  ASSERT_EQ_INT(agent_run(s, "write", &res), AGENT_OK);
  ASSERT_EQ_INT(res.stop, AGENT_STOP_ERROR);
  ASSERT_CONTAINS(res.error, "the server went away");
  ASSERT_STR_EQ(r.log.data, "call write_file pending\ntext\nupdate failed\nstop error\n");
  char *x = read_at(repo, "x.txt");
  ASSERT(x == NULL);
  agent_run_result_release(&res);
  agent_session_free(s);
  agent_backend_close(b);
  rec_release(&r);
  free(script);
  free(repo);
}

static int echo_handler(void *user, const json_t *args, atomic_int *cancel, tool_result *res) {
  (void)cancel;
  int *calls = user;
  (*calls)++;
  res->ok = 1;
  res->output = qc_asprintf("echo: %s", json_string_value(json_object_get(args, "text")));
  return 0;
}

TEST(session_tools_and_the_plan_tool) {
  char *repo = make_repo();
  const char *replies[] = {
      "<tool_call>\n<function=todo_write>\n<parameter=todos>\n[{\"content\": \"Read the code\", \"status\": \"completed\"}, "
      "{\"content\": \"Fix it\", \"status\": \"in_progress\", \"priority\": \"high\"}]\n</parameter>\n</function>\n</tool_call>",
      CALL1("mcp_echo", "text", "héllo"),
      "ok", NULL};
  char *script = make_script(repo, replies);
  agent_backend *b = open_script(script, 0);
  rec r;
  rec_init(&r);
  agent_session *s = new_session(repo, b, AGENT_MODE_ASK, &r, NULL);
  int calls = 0;
  char *err = NULL;
  ASSERT_EQ_INT(agent_session_add_tool(s, "mcp_echo", "Echo text back.",
                                       "{\"type\": \"object\", \"properties\": {\"text\": {\"type\": \"string\"}}, \"required\": [\"text\"]}",
                                       TOOL_KIND_FETCH, 0, echo_handler, &calls, &err), AGENT_OK);
  ASSERT_EQ_INT(agent_session_add_tool(s, "mcp_echo", "dup", NULL, TOOL_KIND_OTHER, 0, echo_handler, &calls, &err), AGENT_EARG);
  free(err);
  ASSERT_EQ_INT(agent_session_add_tool(s, "read_file", "dup", NULL, TOOL_KIND_OTHER, 0, echo_handler, &calls, &err), AGENT_EARG);
  free(err);
  char *prompt = agent_session_render(s);
  ASSERT_CONTAINS(prompt, "<name>mcp_echo</name>\n<description>Echo text back.</description>");
  ASSERT_CONTAINS(prompt, "<name>todo_write</name>");
  free(prompt);
  agent_run_result res;
  ASSERT_EQ_INT(agent_run(s, "plan and echo", &res), AGENT_OK);
  ASSERT_EQ_INT(res.stop, AGENT_STOP_END_TURN);
  ASSERT_EQ_INT(calls, 1);
  ASSERT_EQ_INT(r.plans, 1);
  ASSERT_CONTAINS(r.log.data, "plan 2\n");
  json_t *msgs = agent_session_messages(s);
  ASSERT_STR_EQ(last_tool_text(msgs), "echo: héllo");
  json_decref(msgs);
  int saw_plan = 0;
  size_t i;
  json_t *u;
  json_array_foreach(r.acp, i, u) if (!strcmp(json_string_value(json_object_get(u, "sessionUpdate")), "plan")) {
    saw_plan = 1;
    json_t *e1 = json_array_get(json_object_get(u, "entries"), 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(e1, "status")), "in_progress");
    ASSERT_STR_EQ(json_string_value(json_object_get(e1, "priority")), "high");
  }
  ASSERT(saw_plan);
  agent_run_result_release(&res);
  agent_session_free(s);
  agent_backend_close(b);
  rec_release(&r);
  free(script);
  free(repo);
}

TEST(sessions_are_stored_and_resume_to_the_same_prompt) {
  char *repo = make_repo();
  const char *replies[] = {CALL1("read_file", "path", "add.sh"), "It subtracts.", "Still subtracts.", NULL};
  char *script = make_script(repo, replies);
  agent_backend *b = open_script(script, 0);
  char *dbp = qc_path_join(repo, ".sessions.db");
  agent_store *st;
  ASSERT_EQ_INT(agent_store_open(dbp, &st, NULL), AGENT_OK);
  rec r;
  rec_init(&r);
  agent_session *s = new_session(repo, b, AGENT_MODE_ASK, &r, st);
  agent_run_result res;
  ASSERT_EQ_INT(agent_run(s, "What does add do?\nsecond line", &res), AGENT_OK);
  agent_run_result_release(&res);
  char *id = strdup(agent_session_id(s));
  char *before = agent_session_render(s);
  json_t *msgs_before = agent_session_messages(s);
  agent_session_free(s);

  agent_session_info *v;
  size_t n;
  ASSERT_EQ_INT(agent_store_list(st, repo, &v, &n), AGENT_OK);
  ASSERT_EQ_INT(n, 1);
  ASSERT_STR_EQ(v[0].id, id);
  ASSERT_STR_EQ(v[0].title, "What does add do?");
  ASSERT_STR_EQ(v[0].backend, agent_backend_spec(b));
  ASSERT_EQ_INT(v[0].n_messages, 5);
  agent_session_info_free(v, n);

  agent_session_opts o;
  agent_session_opts_init(&o);
  o.backend = b;
  o.store = st;
  o.on_event = on_event;
  o.user = &r;
  char *err = NULL;
  ASSERT_MSG(agent_session_resume(&o, id, &s, &err) == AGENT_OK, "%s", err ? err : "?");
  ASSERT_STR_EQ(agent_session_id(s), id);
  json_t *msgs_after = agent_session_messages(s);
  ASSERT(json_equal(msgs_before, msgs_after));
  char *after = agent_session_render(s);
  ASSERT_STR_EQ(after, before);
  /* session/load: the conversation replayed as events */
  qc_buf_reset(&r.log);
  json_array_clear(r.acp);
  agent_session_replay(s);
  ASSERT_STR_EQ(r.log.data, "call read_file pending\nupdate completed\ntext\n");
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(r.acp, 0), "sessionUpdate")), "user_message_chunk");
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(json_array_get(r.acp, 0), "content"), "text")),
                "What does add do?\nsecond line");
  /* the resumed session goes on (its script replays from the start: reply 1 is a read) */
  ASSERT_EQ_INT(agent_run(s, "and now?", &res), AGENT_OK);
  agent_run_result_release(&res);
  agent_session_free(s);
  ASSERT_EQ_INT(agent_store_delete(st, id), AGENT_OK);
  ASSERT_EQ_INT(agent_session_resume(&o, id, &s, &err), AGENT_ENOTFOUND);
  free(err);
  json_decref(msgs_before);
  json_decref(msgs_after);
  free(before);
  free(after);
  free(id);
  agent_store_close(st);
  free(dbp);
  agent_backend_close(b);
  rec_release(&r);
  free(script);
  free(repo);
}

TEST(context_overflow_elides_then_summarises) {
  char *repo = make_repo();
  /* four files of ~1800 bytes (the test double counts 3 bytes a token) */
  for (int i = 1; i <= 4; i++) {
    char name[32], p[4200];
    snprintf(name, sizeof name, "f%d.txt", i);
    qc_buf c;
    qc_buf_init(&c, 0);
    for (int l = 0; l < 45; l++) qc_buf_printf(&c, "file %d line %02d: the quick brown fox jumps\n", i, l);
    snprintf(p, sizeof p, "%s/%s", repo, name);
    ASSERT_EQ_INT(qct_write_file(p, c.data), 0);
    qc_buf_release(&c);
  }
  char prose[2500];
  memset(prose, 0, sizeof prose);
  for (int i = 0; i < 24; i++) strcat(prose, "I am thinking about this at length, carefully. ");
  char r1[3000], r2[3000];
  snprintf(r1, sizeof r1, "%s\n" CALL1("read_file", "path", "f1.txt"), prose);
  snprintf(r2, sizeof r2, "%s\n" CALL1("read_file", "path", "f2.txt"), prose);
  /* the third model call is the summary (the prompt no longer fits), the fourth the answer */
  const char *replies[] = {r1, r2, "SUMMARY: the user asked to read the files; f1.txt was read.", "All read.", NULL};
  char *script = make_script(repo, replies);
  agent_backend *b = open_script(script, 0);
  rec r;
  rec_init(&r);
  /* measure the fixed part (system prompt and tools), then give the conversation ~1400 tokens */
  agent_session *probe = new_session(repo, b, AGENT_MODE_ASK, &r, NULL);
  char *p0 = agent_session_render(probe);
  long base = (long)(strlen(p0) + 2) / 3;
  free(p0);
  agent_session_free(probe);
  agent_session_opts o;
  agent_session_opts_init(&o);
  o.cwd = repo;
  o.backend = b;
  o.on_event = on_event;
  o.user = &r;
  o.keep_tool_outputs = 1;
  o.max_reply_tokens = 100;
  o.context_size = (uint32_t)(base + 1500);
  agent_session *s;
  ASSERT_EQ_INT(agent_session_new(&o, &s, NULL), AGENT_OK);
  agent_run_result res;
  ASSERT_EQ_INT(agent_run(s, "Read f1.txt and f2.txt.", &res), AGENT_OK);
  ASSERT_MSG(res.stop == AGENT_STOP_END_TURN, "stop %s: %s\nlog:\n%s", agent_stop_name(res.stop),
             res.error ? res.error : "", r.log.data);
  ASSERT_MSG(r.compactions >= 2, "compactions: %s", r.compaction_text.data);
  const char *el = strstr(r.compaction_text.data, "Elided"), *su = strstr(r.compaction_text.data, "Summarised");
  ASSERT_MSG(el && su && el < su, "expected elision before the summary:\n%s", r.compaction_text.data);
  json_t *msgs = agent_session_messages(s);
  ASSERT_CONTAINS(json_string_value(json_object_get(json_array_get(msgs, 1), "content")),
                  "[Summary of the earlier conversation");
  ASSERT_CONTAINS(json_string_value(json_object_get(json_array_get(msgs, 1), "content")), "SUMMARY: the user asked");
  /* the conversation fits the window now */
  char *p1 = agent_session_render(s);
  ASSERT((long)(strlen(p1) + 2) / 3 <= (long)o.context_size);
  free(p1);
  json_decref(msgs);
  agent_run_result_release(&res);
  agent_session_free(s);
  /* a window too small for anything: a clear error, no silent truncation */
  o.context_size = (uint32_t)(base / 2);
  ASSERT_EQ_INT(agent_session_new(&o, &s, NULL), AGENT_OK);
  ASSERT_EQ_INT(agent_run(s, "hello", &res), AGENT_OK);
  ASSERT_EQ_INT(res.stop, AGENT_STOP_ERROR);
  ASSERT_CONTAINS(res.error, "context window");
  agent_run_result_release(&res);
  agent_session_free(s);
  agent_backend_close(b);
  rec_release(&r);
  free(script);
  free(repo);
}

static agent_backend *open_mock(int port, agent_remote_api api) {
  agent_backend_opts o;
  agent_backend_opts_init(&o);
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
  o.spec = url;
  o.api = api;
  o.model_name = "qwen3-coder";
  agent_backend *b = NULL;
  ASSERT_EQ_INT(agent_backend_open(&o, &b, NULL), AGENT_OK);
  return b;
}

TEST(a_remote_server_drives_the_loop_both_ways) {
  char *repo = make_repo();
  /* chat API: the server parsed the call (native tool_calls) */
  mock_server m = {0};
  m.resp[0] = (mock_resp){.status = 200, .pieces = {
      "data: {\"choices\":[{\"delta\":{\"content\":\"Reading.\"}}]}\n\n",
      "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"srv-call-1\",\"function\":"
      "{\"name\":\"read_file\",\"arguments\":\"{\\\"path\\\": \\\"add.sh\\\"}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n",
      "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":900,\"completion_tokens\":20}}\n\n", "data: [DONE]\n\n"}};
  m.resp[1] = (mock_resp){.status = 200, .pieces = {
      "data: {\"choices\":[{\"delta\":{\"content\":\"It subtracts.\"},\"finish_reason\":\"stop\"}]}\n\n", "data: [DONE]\n\n"}};
  m.n_resp = 2;
  mock_start(&m);
  agent_backend *b = open_mock(m.port, AGENT_REMOTE_CHAT);
  rec r;
  rec_init(&r);
  agent_session *s = new_session(repo, b, AGENT_MODE_ASK, &r, NULL);
  agent_run_result res;
  ASSERT_EQ_INT(agent_run(s, "what does add do?", &res), AGENT_OK);
  ASSERT_MSG(res.stop == AGENT_STOP_END_TURN, "%s: %s", agent_stop_name(res.stop), res.error ? res.error : "");
  ASSERT_STR_EQ(r.text.data, "Reading.It subtracts.");
  ASSERT_EQ_INT(m.n_req, 2);
  /* the second request carries the call with the server's id and its result */
  json_t *body = json_loads(m.req[1].body, 0, NULL);
  json_t *msgs = json_object_get(body, "messages");
  ASSERT_EQ_INT(json_array_size(msgs), 4);
  json_t *call = json_array_get(json_object_get(json_array_get(msgs, 2), "tool_calls"), 0);
  ASSERT_STR_EQ(json_string_value(json_object_get(call, "id")), "srv-call-1");
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(call, "function"), "arguments")), "{\"path\":\"add.sh\"}");
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(msgs, 3), "tool_call_id")), "srv-call-1");
  ASSERT_CONTAINS(json_string_value(json_object_get(json_array_get(msgs, 3), "content")), "$1 - $2");
  ASSERT(json_array_size(json_object_get(body, "tools")) > 5);
  json_decref(body);
  agent_run_result_release(&res);
  agent_session_free(s);
  agent_backend_close(b);
  mock_stop(&m);
  rec_release(&r);

  /* chat API, the reply cut inside a call's arguments: not run, the model is told why,
   * the editor sees it fail */
  mock_server m3 = {0};
  m3.resp[0] = (mock_resp){.status = 200, .pieces = {
      "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"srv-cut\",\"function\":"
      "{\"name\":\"write_file\",\"arguments\":\"{\\\"path\\\": \\\"x.txt\\\", \\\"content\\\": \\\"half\"}}]},"
      "\"finish_reason\":\"length\"}]}\n\n", "data: [DONE]\n\n"}};
  m3.resp[1] = (mock_resp){.status = 200, .pieces = {
      "data: {\"choices\":[{\"delta\":{\"content\":\"I will write it in parts.\"},\"finish_reason\":\"stop\"}]}\n\n",
      "data: [DONE]\n\n"}};
  m3.n_resp = 2;
  mock_start(&m3);
  b = open_mock(m3.port, AGENT_REMOTE_CHAT);
  rec_init(&r);
  s = new_session(repo, b, AGENT_MODE_FULL_AUTO, &r, NULL);
  ASSERT_EQ_INT(agent_run(s, "write x", &res), AGENT_OK);
  ASSERT_EQ_INT(res.stop, AGENT_STOP_END_TURN);
  ASSERT_STR_EQ(r.log.data, "call write_file pending\nupdate failed\ntext\nstop end_turn\n");
  char *x = read_at(repo, "x.txt");
  ASSERT(x == NULL);
  body = json_loads(m3.req[1].body, 0, NULL);
  msgs = json_object_get(body, "messages");
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(msgs, 3), "tool_call_id")), "srv-cut");
  ASSERT_CONTAINS(json_string_value(json_object_get(json_array_get(msgs, 3), "content")), "cut off (token limit)");
  json_decref(body);
  agent_run_result_release(&res);
  agent_session_free(s);
  agent_backend_close(b);
  mock_stop(&m3);
  rec_release(&r);

  /* completions API: our prompt, our parser */
  mock_server m2 = {0};
  m2.resp[0] = (mock_resp){.status = 200, .pieces = {
      "data: {\"choices\":[{\"text\":\"<tool_call>\\n<function=read_file>\\n<parameter=path>\\nadd.sh\\n\"}]}\n\n",
      "data: {\"choices\":[{\"text\":\"</parameter>\\n</function>\\n</tool_call>\",\"finish_reason\":\"stop\"}]}\n\n",
      "data: [DONE]\n\n"}};
  m2.resp[1] = (mock_resp){.status = 200, .pieces = {"data: {\"choices\":[{\"text\":\"Done.\"}]}\n\n", "data: [DONE]\n\n"}};
  m2.n_resp = 2;
  mock_start(&m2);
  b = open_mock(m2.port, AGENT_REMOTE_COMPLETIONS);
  rec_init(&r);
  s = new_session(repo, b, AGENT_MODE_ASK, &r, NULL);
  ASSERT_EQ_INT(agent_run(s, "what does add do?", &res), AGENT_OK);
  ASSERT_EQ_INT(res.stop, AGENT_STOP_END_TURN);
  body = json_loads(m2.req[1].body, 0, NULL);
  char *want = agent_session_render(s);
  /* the second prompt is the rendered conversation up to the tool result */
  const char *sent = json_string_value(json_object_get(body, "prompt"));
  ASSERT(sent && qc_str_has_prefix(want, "<|im_start|>system\n"));
  ASSERT_CONTAINS(sent, "<tool_response>\n     1\tadd() {");
  ASSERT(qc_str_has_suffix(sent, "</tool_response>\n<|im_end|>\n<|im_start|>assistant\n"));
  free(want);
  json_decref(body);
  agent_run_result_release(&res);
  agent_session_free(s);
  agent_backend_close(b);
  mock_stop(&m2);
  rec_release(&r);
  free(repo);
}

TEST(checkpoints_around_changes_and_the_repo_map) {
  char *repo = make_repo();
  char p[4200];
  snprintf(p, sizeof p, "%s/lib.c", repo);
  ASSERT_EQ_INT(qct_write_file(p, "int helper_function(int x) { return x * 2; }\n"), 0);
  snprintf(p, sizeof p, "%s/main.c", repo);
  ASSERT_EQ_INT(qct_write_file(p, "int helper_function(int x);\nint main(void) { return helper_function(1); }\n"), 0);
  const char *replies[] = {
      CALL1("read_file", "path", "add.sh"),
      "<tool_call>\n<function=edit_file>\n<parameter=path>\nadd.sh\n</parameter>\n<parameter=old_string>\n$1 - $2\n"
      "</parameter>\n<parameter=new_string>\n$1 + $2\n</parameter>\n</function>\n</tool_call>",
      "done", NULL};
  char *script = make_script(repo, replies);
  agent_backend *b = open_script(script, 0);
  char *dbp = qc_path_join(repo, ".sessions.db");
  agent_store *st;
  ASSERT_EQ_INT(agent_store_open(dbp, &st, NULL), AGENT_OK);
  rec r;
  rec_init(&r);
  agent_session *s = new_session(repo, b, AGENT_MODE_AUTO_EDIT, &r, st);
  json_t *msgs = agent_session_messages(s);
  const char *sys = json_string_value(json_object_get(json_array_get(msgs, 0), "content"));
  ASSERT_CONTAINS(sys, "# Repository map");
  ASSERT_CONTAINS(sys, "helper_function");
  json_decref(msgs);
  agent_run_result res;
  ASSERT_EQ_INT(agent_run(s, "fix add", &res), AGENT_OK);
  ASSERT_EQ_INT(res.stop, AGENT_STOP_END_TURN);
  agent_run_result_release(&res);
  /* the checkpoint taken before the edit holds the old file */
  tool_ws *ws = NULL;
  tool_ws_opts wo = {.sandbox = TOOL_SANDBOX_PREFER};
  char *err = NULL;
  ASSERT_EQ_INT(tool_ws_open(repo, &wo, &ws, &err), TOOL_OK);
  json_t *list = NULL;
  ASSERT_EQ_INT(tool_checkpoint_list(ws, &list, &err), TOOL_OK);
  ASSERT_EQ_INT(json_array_size(list), 2); /* before the prompt's changes, after the edit */
  char *patch = NULL;
  const char *before = json_string_value(json_object_get(json_array_get(list, 1), "id"));
  ASSERT_EQ_INT(tool_checkpoint_diff(ws, before, &patch, NULL, &err), TOOL_OK);
  ASSERT_CONTAINS(patch, "-  echo $(( $1 - $2 ))");
  free(patch);
  ASSERT_EQ_INT(tool_checkpoint_diff(ws, "latest", &patch, NULL, &err), TOOL_OK);
  ASSERT_MSG(!strstr(patch, "$1 - $2"), "the latest checkpoint holds the edit:\n%s", patch);
  free(patch);
  /* both are recorded with the session */
  sqlite3 *db;
  ASSERT_EQ_INT(sqlite3_open(dbp, &db), SQLITE_OK);
  sqlite3_stmt *q;
  sqlite3_prepare_v2(db, "SELECT count(*), count(tool_call_id) FROM checkpoints", -1, &q, NULL);
  ASSERT_EQ_INT(sqlite3_step(q), SQLITE_ROW);
  ASSERT_EQ_INT(sqlite3_column_int(q, 0), 2);
  ASSERT_EQ_INT(sqlite3_column_int(q, 1), 1);
  sqlite3_finalize(q);
  sqlite3_prepare_v2(db, "SELECT min(n_tokens) FROM messages WHERE role = 'tool'", -1, &q, NULL);
  ASSERT_EQ_INT(sqlite3_step(q), SQLITE_ROW);
  ASSERT(sqlite3_column_int(q, 0) > 0);
  sqlite3_finalize(q);
  sqlite3_close(db);
  json_decref(list);
  tool_ws_close(ws);
  agent_session_free(s);
  agent_store_close(st);
  free(dbp);
  agent_backend_close(b);
  rec_release(&r);
  free(script);
  free(repo);
}

/* ---- checkpoint pruning --------------------------------------------------------------- */

/* `n` checkpoints as the tools make them (refs/qcoder/checkpoints/<time>-<commit>) but
 * taken long ago: from `base_s`, one a minute. Their ids, oldest first, in *ids. */
static void make_old_checkpoints(const char *dir, int n, int64_t base_s, char ***ids) {
  git_repository *repo = NULL;
  ASSERT_EQ_INT(git_repository_open(&repo, dir), 0);
  git_treebuilder *tb = NULL;
  git_oid tree_id;
  ASSERT_EQ_INT(git_treebuilder_new(&tb, repo, NULL), 0);
  ASSERT_EQ_INT(git_treebuilder_write(&tree_id, tb), 0);
  git_treebuilder_free(tb);
  git_tree *tree = NULL;
  ASSERT_EQ_INT(git_tree_lookup(&tree, repo, &tree_id), 0);
  *ids = calloc((size_t)n, sizeof **ids);
  for (int i = 0; i < n; i++) {
    time_t t = (time_t)(base_s + 60 * i);
    git_signature *sig = NULL;
    ASSERT_EQ_INT(git_signature_new(&sig, "qcoder", "qcoder@localhost", t, 0), 0);
    git_oid c;
    char msg[64];
    snprintf(msg, sizeof msg, "old checkpoint %d\n", i);
    ASSERT_EQ_INT(git_commit_create(&c, repo, NULL, sig, sig, NULL, msg, tree, 0, NULL), 0);
    git_signature_free(sig);
    struct tm tm;
    gmtime_r(&t, &tm);
    char stamp[32], hex[GIT_OID_HEXSZ + 1], ref[128];
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &tm);
    git_oid_tostr(hex, sizeof hex, &c);
    (*ids)[i] = qc_asprintf("%s.000Z-%.8s", stamp, hex);
    ASSERT_EQ_INT((int)strlen((*ids)[i]), 29);
    snprintf(ref, sizeof ref, "refs/qcoder/checkpoints/%s", (*ids)[i]);
    git_reference *r = NULL;
    ASSERT_EQ_INT(git_reference_create(&r, repo, ref, &c, 0, "test"), 0);
    git_reference_free(r);
  }
  git_tree_free(tree);
  git_repository_free(repo);
}

static int listed(const json_t *list, const char *id) {
  size_t i;
  json_t *c;
  json_array_foreach(list, i, c) if (!strcmp(json_string_value(json_object_get(c, "id")), id)) return 1;
  return 0;
}

static json_t *checkpoints_of(const char *dir) {
  tool_ws *ws = NULL;
  tool_ws_opts wo = {.sandbox = TOOL_SANDBOX_PREFER};
  char *err = NULL;
  ASSERT_EQ_INT(tool_ws_open(dir, &wo, &ws, &err), TOOL_OK);
  json_t *list = NULL;
  ASSERT_MSG(tool_checkpoint_list(ws, &list, &err) == TOOL_OK, "%s", err ? err : "?");
  tool_ws_close(ws);
  return list;
}

static void restore_to(const char *dir, const char *id) {
  tool_ws *ws = NULL;
  tool_ws_opts wo = {.sandbox = TOOL_SANDBOX_PREFER};
  char *err = NULL;
  ASSERT_EQ_INT(tool_ws_open(dir, &wo, &ws, &err), TOOL_OK);
  json_t *summary = NULL;
  ASSERT_MSG(tool_checkpoint_restore(ws, id, &summary, &err) == TOOL_OK, "%s", err ? err : "?");
  json_decref(summary);
  tool_ws_close(ws);
}

#define FIX_ADD                                                                                               \
  "<tool_call>\n<function=edit_file>\n<parameter=path>\nadd.sh\n</parameter>\n<parameter=old_string>\n$1 - $2\n" \
  "</parameter>\n<parameter=new_string>\n$1 + $2\n</parameter>\n</function>\n</tool_call>"

/* With the real limits: beyond the newest 200, checkpoints older than 30 days go when a
 * run takes its first checkpoint; the newest stay and the run's own undo works. */
TEST(old_checkpoints_are_pruned_and_undo_still_works) {
  char *repo = make_repo();
  git_libgit2_init();
  git_repository *gr = NULL;
  ASSERT_EQ_INT(git_repository_init(&gr, repo, 0), 0);
  git_repository_free(gr);
  enum { OLD = 210 };
  char **old = NULL;
  make_old_checkpoints(repo, OLD, (int64_t)time(NULL) - 60 * 86400, &old);
  json_t *list = checkpoints_of(repo);
  ASSERT_EQ_INT(json_array_size(list), OLD);
  json_decref(list);

  const char *replies[] = {CALL1("read_file", "path", "add.sh"), FIX_ADD, "done", NULL};
  char *script = make_script(repo, replies);
  agent_backend *b = open_script(script, 0);
  rec r;
  rec_init(&r);
  agent_session *s = new_session(repo, b, AGENT_MODE_AUTO_EDIT, &r, NULL);
  agent_run_result res;
  ASSERT_EQ_INT(agent_run(s, "fix add", &res), AGENT_OK);
  ASSERT_EQ_INT(res.stop, AGENT_STOP_END_TURN);
  agent_run_result_release(&res);
  char *add = read_at(repo, "add.sh");
  ASSERT_CONTAINS(add, "$1 + $2");
  free(add);

  /* the run's "before" checkpoint + the newest 199 old ones were kept (200), then the
   * checkpoint after the edit was added; the 11 oldest are gone */
  list = checkpoints_of(repo);
  ASSERT_EQ_INT(json_array_size(list), 201);
  for (int i = 0; i < OLD; i++)
    ASSERT_MSG(listed(list, old[i]) == (i >= OLD - 199), "old checkpoint %d (%s) %s", i, old[i],
               listed(list, old[i]) ? "kept" : "pruned");
  /* undo of the run: back to the state before its changes */
  const char *before = json_string_value(json_object_get(json_array_get(list, 1), "id"));
  ASSERT_CONTAINS(json_string_value(json_object_get(json_array_get(list, 1), "message")), "before the changes");
  restore_to(repo, before);
  add = read_at(repo, "add.sh");
  ASSERT_STR_EQ(add, "add() {\n  echo $(( $1 - $2 ))\n}\n");
  free(add);
  json_decref(list);

  for (int i = 0; i < OLD; i++) free(old[i]);
  free(old);
  agent_session_free(s);
  agent_backend_close(b);
  rec_release(&r);
  free(script);
  git_libgit2_shutdown();
  free(repo);
}

/* A session that is still open keeps every checkpoint taken since it opened, however
 * small the limits: another session's pruning never breaks its undo. */
TEST(pruning_spares_the_checkpoints_of_open_sessions) {
  char *repo = make_repo();
  git_libgit2_init();
  git_repository *gr = NULL;
  ASSERT_EQ_INT(git_repository_init(&gr, repo, 0), 0);
  git_repository_free(gr);
  char **old = NULL;
  make_old_checkpoints(repo, 5, (int64_t)time(NULL) - 3600, &old);
  agent__set_checkpoint_prune_limits(2, 0); /* keep 2, no minimum age */

  const char *ra[] = {CALL1("read_file", "path", "add.sh"), FIX_ADD, "done", NULL};
  char *sa = make_script(repo, ra);
  agent_backend *ba = open_script(sa, 0);
  rec r;
  rec_init(&r);
  agent_session *a = new_session(repo, ba, AGENT_MODE_AUTO_EDIT, &r, NULL);
  agent_run_result res;
  ASSERT_EQ_INT(agent_run(a, "fix add", &res), AGENT_OK);
  ASSERT_EQ_INT(res.stop, AGENT_STOP_END_TURN);
  agent_run_result_release(&res);
  json_t *list = checkpoints_of(repo);
  /* pruned right after A's first checkpoint: that one and the newest old one were kept,
   * then the one after the edit was added */
  ASSERT_EQ_INT(json_array_size(list), 3);
  ASSERT(listed(list, old[4]) && !listed(list, old[3]));
  char *add = read_at(repo, "add.sh");
  ASSERT_CONTAINS(add, "$1 + $2");
  free(add);
  char *a_before = strdup(json_string_value(json_object_get(json_array_get(list, 1), "id")));
  char *a_after = strdup(json_string_value(json_object_get(json_array_get(list, 0), "id")));
  json_decref(list);

  /* B, opened later in the same workspace, changes files twice over two prompts */
  char p[4200];
  snprintf(p, sizeof p, "%s/.script-b.json", repo);
#define WRITE(f)                                                                                        \
  "<tool_call>\n<function=write_file>\n<parameter=path>\n" f "\n</parameter>\n<parameter=content>\nnew\n" \
  "</parameter>\n</function>\n</tool_call>"
  json_t *rb = json_pack("[s, s, s, s]", WRITE("b.txt"), "done", WRITE("c.txt"), "done");
#undef WRITE
  ASSERT_EQ_INT(json_dump_file(rb, p, 0), 0);
  json_decref(rb);
  agent_backend *bb = open_script(p, 0);
  agent_session *b = new_session(repo, bb, AGENT_MODE_FULL_AUTO, &r, NULL);
  ASSERT_EQ_INT(agent_run(b, "write b", &res), AGENT_OK);
  agent_run_result_release(&res);
  ASSERT_EQ_INT(agent_run(b, "write c", &res), AGENT_OK);
  agent_run_result_release(&res);
  char *bt = read_at(repo, "b.txt");
  ASSERT_STR_EQ(bt, "new");
  free(bt);
  list = checkpoints_of(repo);
  /* keep 2 alone would have left only B's newest: A's are kept because A is open */
  ASSERT_MSG(listed(list, a_before) && listed(list, a_after), "A's checkpoints were pruned (%zu left)",
             json_array_size(list));
  ASSERT_EQ_INT(json_array_size(list), 6); /* A: 2, B: 2 per prompt */
  for (int i = 0; i < 5; i++) ASSERT(!listed(list, old[i]));
  json_decref(list);
  /* A's undo still works */
  restore_to(repo, a_before);
  add = read_at(repo, "add.sh");
  ASSERT_STR_EQ(add, "add() {\n  echo $(( $1 - $2 ))\n}\n");
  free(add);
  bt = read_at(repo, "b.txt");
  ASSERT(bt == NULL);

  agent__set_checkpoint_prune_limits(-1, -1);
  for (int i = 0; i < 5; i++) free(old[i]);
  free(old);
  free(a_before);
  free(a_after);
  agent_session_free(b);
  agent_session_free(a);
  agent_backend_close(bb);
  agent_backend_close(ba);
  rec_release(&r);
  free(sa);
  git_libgit2_shutdown();
  free(repo);
}

QC_TEST_MAIN
