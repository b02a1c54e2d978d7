/* test_store.c — the SQLite session store: create, append, reload equals, compaction rows,
 * list by cwd, delete, and a process killed with SIGKILL in the middle of writing leaves a
 * consistent database holding every message it committed. */
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/store.h"
#include "common/common.h"
#include "tests/test.h"

static char *db_path(const char *tag) {
  char *dir = qct_tempdir(tag);
  ASSERT(dir);
  char *p = qc_path_join(dir, "sessions.db");
  free(dir);
  return p;
}

static json_t *msg(const char *role, const char *content) {
  return json_pack("{s:s, s:s}", "role", role, "content", content);
}

TEST(create_append_reload_equals) {
  char *path = db_path("store");
  agent_store *st;
  char *err = NULL;
  ASSERT_EQ_INT(agent_store_open(path, &st, &err), AGENT_OK);
  char id[33];
  agent__new_id(id, sizeof id);
  ASSERT_EQ_INT(strlen(id), 32);
  ASSERT_EQ_INT(agent__store_create(st, id, "/ws/a", "fix the bug", "ask", "script:x.json"), AGENT_OK);
  json_t *conv = json_array();
  json_array_append_new(conv, msg("system", "You are qcoder."));
  json_array_append_new(conv, msg("user", "Read main.c — ünïcödé"));
  json_t *call = json_loads("{\"role\":\"assistant\",\"content\":\"Reading.\",\"tool_calls\":[{\"id\":\"call_1\","
                            "\"type\":\"function\",\"function\":{\"name\":\"read_file\",\"arguments\":"
                            "{\"z\":1,\"path\":\"main.c\",\"a\":[true,null,0.5]}}}]}", 0, NULL);
  ASSERT(call);
  json_array_append_new(conv, call);
  json_array_append_new(conv, json_pack("{s:s, s:s, s:s}", "role", "tool", "tool_call_id", "call_1", "content",
                                        "int main(void) { return 0; }\n"));
  for (size_t i = 0; i < json_array_size(conv); i++)
    ASSERT_EQ_INT(agent__store_append(st, id, (int64_t)i, json_array_get(conv, i), 10), AGENT_OK);
  ASSERT_EQ_INT(agent__store_tool_call(st, id, "call_1", 2, "read_file", json_object_get(json_object_get(
      json_array_get(json_object_get(call, "tool_calls"), 0), "function"), "arguments"), "pending"), AGENT_OK);
  ASSERT_EQ_INT(agent__store_tool_result(st, id, "call_1", "completed", "int main", NULL, NULL), AGENT_OK);
  ASSERT_EQ_INT(agent__store_checkpoint(st, id, "ckpt-1", "call_1"), AGENT_OK);
  agent_store_close(st);

  ASSERT_EQ_INT(agent_store_open(path, &st, &err), AGENT_OK);
  agent_session_info info;
  json_t *loaded;
  int64_t *seqs;
  int lrc = agent__store_load(st, id, &info, &loaded, &seqs, &err);
  ASSERT_MSG(lrc == AGENT_OK, "load: %d %s", lrc, err ? err : "");
  ASSERT(json_equal(loaded, conv));
  /* key order of the arguments survives (it decides the rendered prompt) */
  char *a = json_dumps(loaded, JSON_COMPACT | JSON_PRESERVE_ORDER), *b = json_dumps(conv, JSON_COMPACT | JSON_PRESERVE_ORDER);
  ASSERT_STR_EQ(a, b);
  free(a);
  free(b);
  ASSERT_STR_EQ(info.cwd, "/ws/a");
  ASSERT_STR_EQ(info.title, "fix the bug");
  ASSERT_STR_EQ(info.mode, "ask");
  ASSERT_EQ_INT(info.n_messages, 4);
  ASSERT_EQ_INT(seqs[3], 3);
  free(seqs);
  json_decref(loaded);
  free(info.id); free(info.cwd); free(info.title); free(info.mode); free(info.backend);

  /* compaction: elide in place, then replace the tail with a summary */
  json_t *stub = msg("tool", "[output elided]");
  json_object_set_new(stub, "tool_call_id", json_string("call_1"));
  ASSERT_EQ_INT(agent__store_set_content(st, id, 3, stub), AGENT_OK);
  json_t *tail = json_array();
  json_array_append_new(tail, msg("user", "[Summary] read main.c"));
  ASSERT_EQ_INT(agent__store_replace_tail(st, id, 1, tail, 4), AGENT_OK);
  ASSERT_EQ_INT(agent__store_load(st, id, &info, &loaded, &seqs, &err), AGENT_OK);
  ASSERT_EQ_INT(json_array_size(loaded), 2);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(loaded, 1), "content")), "[Summary] read main.c");
  ASSERT_EQ_INT(seqs[1], 4);
  free(seqs);
  json_decref(loaded);
  free(info.id); free(info.cwd); free(info.title); free(info.mode); free(info.backend);
  json_decref(tail);
  json_decref(stub);
  json_decref(conv);
  agent_store_close(st);
  free(path);
}

TEST(list_by_cwd_and_delete) {
  char *path = db_path("store-list");
  agent_store *st;
  ASSERT_EQ_INT(agent_store_open(path, &st, NULL), AGENT_OK);
  char ids[3][33];
  const char *cwds[3] = {"/ws/one", "/ws/two", "/ws/one"};
  for (int i = 0; i < 3; i++) {
    agent__new_id(ids[i], sizeof ids[i]);
    ASSERT_EQ_INT(agent__store_create(st, ids[i], cwds[i], "t", "ask", "b"), AGENT_OK);
    json_t *m = msg("user", "hi");
    ASSERT_EQ_INT(agent__store_append(st, ids[i], 0, m, 1), AGENT_OK);
    json_decref(m);
  }
  agent_session_info *v;
  size_t n;
  ASSERT_EQ_INT(agent_store_list(st, "/ws/one", &v, &n), AGENT_OK);
  ASSERT_EQ_INT(n, 2);
  ASSERT_STR_EQ(v[0].id, ids[2]); /* most recent first */
  ASSERT_EQ_INT(v[0].n_messages, 1);
  agent_session_info_free(v, n);
  ASSERT_EQ_INT(agent_store_list(st, NULL, &v, &n), AGENT_OK);
  ASSERT_EQ_INT(n, 3);
  agent_session_info_free(v, n);
  ASSERT_EQ_INT(agent_store_delete(st, ids[0]), AGENT_OK);
  ASSERT_EQ_INT(agent_store_delete(st, ids[0]), AGENT_ENOTFOUND);
  ASSERT_EQ_INT(agent_store_list(st, "/ws/one", &v, &n), AGENT_OK);
  ASSERT_EQ_INT(n, 1);
  agent_session_info_free(v, n);
  agent_session_info info;
  json_t *loaded;
  int64_t *seqs;
  char *err = NULL;
  ASSERT_EQ_INT(agent__store_load(st, ids[0], &info, &loaded, &seqs, &err), AGENT_ENOTFOUND);
  ASSERT(err && strstr(err, ids[0]));
  free(err);
  /* messages of a deleted session are gone too (cascade) */
  sqlite3 *db;
  ASSERT_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_stmt *s;
  sqlite3_prepare_v2(db, "SELECT count(*) FROM messages WHERE session_id = ?", -1, &s, NULL);
  sqlite3_bind_text(s, 1, ids[0], -1, SQLITE_STATIC);
  ASSERT_EQ_INT(sqlite3_step(s), SQLITE_ROW);
  ASSERT_EQ_INT(sqlite3_column_int(s, 0), 0);
  sqlite3_finalize(s);
  sqlite3_close(db);
  agent_store_close(st);
  free(path);
}

TEST(bad_path_is_an_error) {
  agent_store *st = NULL;
  char *err = NULL;
  ASSERT_EQ_INT(agent_store_open("/nonexistent-dir/x/sessions.db", &st, &err), AGENT_ESTORE);
  ASSERT(st == NULL && err);
  ASSERT_CONTAINS(err, "/nonexistent-dir");
  free(err);
}

TEST(sigkill_during_writes_leaves_a_consistent_db) {
  char *path = db_path("store-kill");
  char id[33];
  agent__new_id(id, sizeof id);
  for (int round = 0; round < 3; round++) {
    /* the child says when its first message is committed: the kill comes after that,
     * however slow the start (asan, a loaded machine) */
    int ready[2];
    ASSERT_EQ_INT(pipe(ready), 0);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
      close(ready[0]);
      agent_store *st;
      if (agent_store_open(path, &st, NULL)) _exit(3);
      if (round == 0 && agent__store_create(st, id, "/ws", "kill", "ask", "b")) _exit(4);
      agent_session_info info;
      json_t *cur;
      int64_t *seqs;
      if (agent__store_load(st, id, &info, &cur, &seqs, NULL)) _exit(5);
      int64_t next = (int64_t)json_array_size(cur);
      for (;; next++) {
        char text[600];
        int k = snprintf(text, sizeof text, "message %lld ", (long long)next);
        while (k < 500) text[k++] = (char)('a' + next % 26);
        text[k] = '\0';
        json_t *m = msg(next % 2 ? "assistant" : "user", text);
        if (agent__store_append(st, id, next, m, 1)) _exit(6);
        json_decref(m);
        if (ready[1] >= 0) {
          if (write(ready[1], "x", 1) != 1) _exit(7);
          close(ready[1]);
          ready[1] = -1;
        }
      }
    }
    close(ready[1]);
    char go;
    ASSERT_MSG(read(ready[0], &go, 1) == 1, "the writer died before committing a message");
    close(ready[0]);
    usleep(150000 + 50000 * round);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    sqlite3 *db;
    ASSERT_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *s;
    sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL);
    ASSERT_EQ_INT(sqlite3_step(s), SQLITE_ROW);
    ASSERT_STR_EQ((const char *)sqlite3_column_text(s, 0), "ok");
    sqlite3_finalize(s);
    sqlite3_close(db);

    agent_store *st;
    ASSERT_EQ_INT(agent_store_open(path, &st, NULL), AGENT_OK);
    agent_session_info info;
    json_t *msgs;
    int64_t *seqs;
    ASSERT_EQ_INT(agent__store_load(st, id, &info, &msgs, &seqs, NULL), AGENT_OK);
    size_t n = json_array_size(msgs);
    ASSERT_MSG(n > 0, "nothing was committed before the kill");
    for (size_t i = 0; i < n; i++) {
      ASSERT_EQ_INT(seqs[i], (int64_t)i); /* no gaps, no half message */
      const char *c = json_string_value(json_object_get(json_array_get(msgs, i), "content"));
      char want[32];
      snprintf(want, sizeof want, "message %zu ", i);
      ASSERT(c && qc_str_has_prefix(c, want) && strlen(c) == 500);
    }
    fprintf(stderr, "  round %d: %zu messages committed before SIGKILL\n", round, n);
    free(seqs);
    json_decref(msgs);
    free(info.id); free(info.cwd); free(info.title); free(info.mode); free(info.backend);
    agent_store_close(st);
  }
  free(path);
}

QC_TEST_MAIN
