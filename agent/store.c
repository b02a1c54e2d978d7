/* store.c — agent sessions in SQLite.
 *
 * SCHEMA (user_version 1):
 *
 *   sessions(id PK, cwd, title, mode, backend, created_ms, updated_ms)
 *   messages(session_id, seq, role, content, tool_calls, tool_call_id, json, n_tokens,
 *            active, created_ms; PK(session_id, seq))
 *   tool_calls(session_id, id, msg_seq, name, args, status, output, error, data,
 *              created_ms, finished_ms; PK(session_id, id))
 *   checkpoints(session_id, id, tool_call_id, created_ms; PK(session_id, id))
 *
 * A session's conversation is its `active` messages ordered by `seq`; `json` holds the
 * whole OpenAI-style message (tool_calls arguments as objects, key order kept), which is
 * what resuming reads, so a reloaded conversation renders to the same prompt and the
 * engine's prefix cache stays valid. The other columns are for people and queries.
 * Compaction never deletes: elided tool outputs are updated in place (the stub is what the
 * model sees from then on) and summarised turns become inactive rows.
 *
 * CRASH RULES. WAL journal, synchronous=NORMAL: every function commits its own transaction
 * before returning, so a killed process loses at most the message it had not yet handed to
 * the store, and readers never see half a message (a power loss may lose the last few
 * commits, never consistency). Foreign keys cascade deletes from sessions. One connection
 * is shared by all sessions of a daemon (SQLITE_OPEN_FULLMUTEX plus a mutex around
 * multi-statement transactions); other processes (the CLI) wait up to 5 s on a busy lock.
 */
#include "agent/store.h"

#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/limits.h"
#include "common/common.h"

struct agent_store {
  sqlite3 *db;
  pthread_mutex_t mu;
  char *path;
};

static const char k_schema[] =
    "CREATE TABLE IF NOT EXISTS sessions("
    " id TEXT PRIMARY KEY, cwd TEXT NOT NULL, title TEXT, mode TEXT, backend TEXT,"
    " created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS sessions_cwd ON sessions(cwd, updated_ms);"
    "CREATE TABLE IF NOT EXISTS messages("
    " session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,"
    " seq INTEGER NOT NULL, role TEXT NOT NULL, content TEXT, tool_calls TEXT, tool_call_id TEXT,"
    " json TEXT NOT NULL, n_tokens INTEGER, active INTEGER NOT NULL DEFAULT 1,"
    " created_ms INTEGER NOT NULL, PRIMARY KEY(session_id, seq));"
    "CREATE TABLE IF NOT EXISTS tool_calls("
    " session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,"
    " id TEXT NOT NULL, msg_seq INTEGER, name TEXT, args TEXT, status TEXT, output TEXT, error TEXT,"
    " data TEXT, created_ms INTEGER NOT NULL, finished_ms INTEGER, PRIMARY KEY(session_id, id));"
    "CREATE TABLE IF NOT EXISTS checkpoints("
    " session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,"
    " id TEXT NOT NULL, tool_call_id TEXT, created_ms INTEGER NOT NULL, PRIMARY KEY(session_id, id));"
    "PRAGMA user_version = 1;";

void agent__new_id(char *out, size_t n) {
  unsigned char r[16];
  if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
    uint64_t t = qc_now_ns() ^ ((uint64_t)getpid() << 32);
    for (size_t i = 0; i < sizeof r; i++) r[i] = (unsigned char)(t >> ((i % 8) * 8)) ^ (unsigned char)(i * 131);
  }
  size_t k = 0;
  for (size_t i = 0; i < sizeof r && k + 2 < n; i++) k += (size_t)snprintf(out + k, n - k, "%02x", r[i]);
  out[k] = '\0';
}

static int exec_sql(agent_store *st, const char *sql, char **errmsg) {
  char *e = NULL;
  if (sqlite3_exec(st->db, sql, NULL, NULL, &e) != SQLITE_OK) {
    if (errmsg) *errmsg = qc_asprintf("session database %s: %s", st->path, e ? e : sqlite3_errmsg(st->db));
    else qc_warn("session database %s: %s", st->path, e ? e : sqlite3_errmsg(st->db));
    sqlite3_free(e);
    return AGENT_ESTORE;
  }
  return AGENT_OK;
}

int agent_store_open(const char *path, agent_store **out, char **errmsg) {
  *out = NULL;
  if (errmsg) *errmsg = NULL;
  agent_store *st = calloc(1, sizeof *st);
  if (!st) return AGENT_ENOMEM;
  pthread_mutex_init(&st->mu, NULL);
  int rc = AGENT_OK;
  if (path) {
    st->path = strdup(path);
  } else {
    char *dir = qc_state_dir();
    if (!dir) {
      if (errmsg) *errmsg = strdup("no state directory (set QCODER_STATE_DIR or HOME)");
      rc = AGENT_ESTORE;
      goto fail;
    }
    if (qc_mkdir_p(dir, 0700) != QC_OK) {
      if (errmsg) *errmsg = qc_asprintf("cannot create the state directory %s", dir);
      free(dir);
      rc = AGENT_ESTORE;
      goto fail;
    }
    st->path = qc_path_join(dir, "sessions.db");
    free(dir);
  }
  if (!st->path) {
    rc = AGENT_ENOMEM;
    goto fail;
  }
  if (sqlite3_open_v2(st->path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      NULL) != SQLITE_OK) {
    if (errmsg) *errmsg = qc_asprintf("cannot open the session database %s: %s", st->path,
                                      st->db ? sqlite3_errmsg(st->db) : "out of memory");
    rc = AGENT_ESTORE;
    goto fail;
  }
  sqlite3_busy_timeout(st->db, AGENT__STORE_BUSY_MS);
  if ((rc = exec_sql(st, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;", errmsg)))
    goto fail;
  if ((rc = exec_sql(st, k_schema, errmsg))) goto fail;
  chmod(st->path, 0600);
  *out = st;
  return AGENT_OK;
fail:
  agent_store_close(st);
  return rc;
}

void agent_store_close(agent_store *st) {
  if (!st) return;
  if (st->db) sqlite3_close_v2(st->db);
  pthread_mutex_destroy(&st->mu);
  free(st->path);
  free(st);
}

/* Prepare, bind text/int64/null by a small format ("s" text or NULL, "i" int64), step to
 * completion. */
static int run(agent_store *st, const char *sql, const char *fmt, ...) {
  sqlite3_stmt *s = NULL;
  int rc = AGENT_OK;
  if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
    qc_warn("session database: %s: %s", sqlite3_errmsg(st->db), sql);
    return AGENT_ESTORE;
  }
  va_list ap;
  va_start(ap, fmt);
  for (int i = 0; fmt[i]; i++) {
    if (fmt[i] == 's') {
      const char *v = va_arg(ap, const char *);
      if (v) sqlite3_bind_text(s, i + 1, v, -1, SQLITE_TRANSIENT);
      else sqlite3_bind_null(s, i + 1);
    } else {
      sqlite3_bind_int64(s, i + 1, va_arg(ap, int64_t));
    }
  }
  va_end(ap);
  int r = sqlite3_step(s);
  if (r != SQLITE_DONE && r != SQLITE_ROW) {
    qc_warn("session database: %s", sqlite3_errmsg(st->db));
    rc = AGENT_ESTORE;
  }
  sqlite3_finalize(s);
  return rc;
}

int agent__store_create(agent_store *st, const char *id, const char *cwd, const char *title,
                        const char *mode, const char *backend) {
  int64_t now = qc_wall_ms();
  return run(st, "INSERT INTO sessions(id, cwd, title, mode, backend, created_ms, updated_ms) VALUES(?,?,?,?,?,?,?)",
             "sssssii", id, cwd, title, mode, backend, now, now);
}

int agent__store_touch(agent_store *st, const char *id, const char *title, const char *mode) {
  return run(st, "UPDATE sessions SET title = COALESCE(?, title), mode = COALESCE(?, mode), updated_ms = ? WHERE id = ?",
             "ssis", title, mode, (int64_t)qc_wall_ms(), id);
}

static char *dump(const json_t *v) {
  return v ? json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY) : NULL;
}

static int append_locked(agent_store *st, const char *id, int64_t seq, const json_t *msg, long n_tokens) {
  char *js = dump(msg), *calls = dump(json_object_get(msg, "tool_calls"));
  json_t *c = json_object_get(msg, "content");
  char *content_alt = (!c || json_is_string(c) || json_is_null(c)) ? NULL : dump(c);
  const char *content = json_is_string(c) ? json_string_value(c) : content_alt;
  int rc = js ? run(st, "INSERT INTO messages(session_id, seq, role, content, tool_calls, tool_call_id, json, "
                        "n_tokens, active, created_ms) VALUES(?,?,?,?,?,?,?,?,1,?)",
                    "sisssssii", id, seq, json_string_value(json_object_get(msg, "role")), content, calls,
                    json_string_value(json_object_get(msg, "tool_call_id")), js, (int64_t)n_tokens,
                    (int64_t)qc_wall_ms())
              : AGENT_ENOMEM;
  free(js);
  free(calls);
  free(content_alt);
  return rc;
}

int agent__store_append(agent_store *st, const char *id, int64_t seq, const json_t *msg, long n_tokens) {
  pthread_mutex_lock(&st->mu);
  int rc = exec_sql(st, "BEGIN IMMEDIATE", NULL);
  if (!rc) rc = append_locked(st, id, seq, msg, n_tokens);
  if (!rc)
    rc = run(st, "UPDATE sessions SET updated_ms = ? WHERE id = ?", "is", (int64_t)qc_wall_ms(), id);
  exec_sql(st, rc ? "ROLLBACK" : "COMMIT", NULL);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

int agent__store_set_content(agent_store *st, const char *id, int64_t seq, const json_t *msg) {
  char *js = dump(msg);
  json_t *c = json_object_get(msg, "content");
  int rc = js ? run(st, "UPDATE messages SET content = ?, json = ? WHERE session_id = ? AND seq = ?", "sssi",
                    json_string_value(c), js, id, seq)
              : AGENT_ENOMEM;
  free(js);
  return rc;
}

int agent__store_replace_tail(agent_store *st, const char *id, int64_t first_seq, const json_t *msgs,
                              int64_t new_seq) {
  pthread_mutex_lock(&st->mu);
  int rc = exec_sql(st, "BEGIN IMMEDIATE", NULL);
  if (!rc)
    rc = run(st, "UPDATE messages SET active = 0 WHERE session_id = ? AND seq >= ?", "si", id, first_seq);
  size_t i;
  json_t *m;
  json_array_foreach(msgs, i, m) {
    if (rc) break;
    rc = append_locked(st, id, new_seq + (int64_t)i, m, 0);
  }
  exec_sql(st, rc ? "ROLLBACK" : "COMMIT", NULL);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

int agent__store_tool_call(agent_store *st, const char *id, const char *call_id, int64_t msg_seq,
                           const char *name, const json_t *args, const char *status) {
  char *a = dump(args);
  int rc = run(st, "INSERT OR REPLACE INTO tool_calls(session_id, id, msg_seq, name, args, status, created_ms) "
                   "VALUES(?,?,?,?,?,?,?)",
               "ssisssi", id, call_id, msg_seq, name, a, status, (int64_t)qc_wall_ms());
  free(a);
  return rc;
}

int agent__store_tool_result(agent_store *st, const char *id, const char *call_id, const char *status,
                             const char *output, const char *error, const json_t *data) {
  char *d = dump(data);
  int rc = run(st, "UPDATE tool_calls SET status = ?, output = ?, error = ?, data = ?, finished_ms = ? "
                   "WHERE session_id = ? AND id = ?",
               "ssssiss", status, output, error, d, (int64_t)qc_wall_ms(), id, call_id);
  free(d);
  return rc;
}

int agent__store_checkpoint(agent_store *st, const char *id, const char *checkpoint_id,
                            const char *tool_call_id) {
  return run(st, "INSERT OR REPLACE INTO checkpoints(session_id, id, tool_call_id, created_ms) VALUES(?,?,?,?)",
             "sssi", id, checkpoint_id, tool_call_id, (int64_t)qc_wall_ms());
}

static char *col_dup(sqlite3_stmt *s, int i) {
  const unsigned char *t = sqlite3_column_text(s, i);
  return t ? strdup((const char *)t) : NULL;
}

static void info_from_row(sqlite3_stmt *s, agent_session_info *info) {
  info->id = col_dup(s, 0);
  info->cwd = col_dup(s, 1);
  info->title = col_dup(s, 2);
  info->mode = col_dup(s, 3);
  info->backend = col_dup(s, 4);
  info->created_ms = sqlite3_column_int64(s, 5);
  info->updated_ms = sqlite3_column_int64(s, 6);
  info->n_messages = (long)sqlite3_column_int64(s, 7);
}

#define INFO_COLS                                                                         \
  "s.id, s.cwd, s.title, s.mode, s.backend, s.created_ms, s.updated_ms,"                  \
  " (SELECT count(*) FROM messages m WHERE m.session_id = s.id AND m.active = 1)"

void agent_session_info_free(agent_session_info *v, size_t n) {
  if (!v) return;
  for (size_t i = 0; i < n; i++) {
    free(v[i].id);
    free(v[i].cwd);
    free(v[i].title);
    free(v[i].mode);
    free(v[i].backend);
  }
  free(v);
}

int agent_store_list(agent_store *st, const char *cwd, agent_session_info **out, size_t *n) {
  *out = NULL;
  *n = 0;
  sqlite3_stmt *s = NULL;
  const char *sql = cwd ? "SELECT " INFO_COLS " FROM sessions s WHERE s.cwd = ? ORDER BY s.updated_ms DESC, s.rowid DESC"
                        : "SELECT " INFO_COLS " FROM sessions s ORDER BY s.updated_ms DESC, s.rowid DESC";
  if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) return AGENT_ESTORE;
  if (cwd) sqlite3_bind_text(s, 1, cwd, -1, SQLITE_TRANSIENT);
  size_t cap = 0;
  int rc = AGENT_OK, r;
  while ((r = sqlite3_step(s)) == SQLITE_ROW) {
    if (*n == cap) {
      cap = cap ? cap * 2 : 16;
      agent_session_info *v = realloc(*out, cap * sizeof *v);
      if (!v) {
        rc = AGENT_ENOMEM;
        break;
      }
      *out = v;
    }
    info_from_row(s, &(*out)[(*n)++]);
  }
  if (!rc && r != SQLITE_DONE) rc = AGENT_ESTORE;
  sqlite3_finalize(s);
  if (rc) {
    agent_session_info_free(*out, *n);
    *out = NULL;
    *n = 0;
  }
  return rc;
}

int agent_store_delete(agent_store *st, const char *id) {
  sqlite3_stmt *s = NULL;
  if (sqlite3_prepare_v2(st->db, "DELETE FROM sessions WHERE id = ?", -1, &s, NULL) != SQLITE_OK) return AGENT_ESTORE;
  sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
  int r = sqlite3_step(s);
  int changed = sqlite3_changes(st->db);
  sqlite3_finalize(s);
  if (r != SQLITE_DONE) return AGENT_ESTORE;
  return changed ? AGENT_OK : AGENT_ENOTFOUND;
}

int agent__store_load(agent_store *st, const char *id, agent_session_info *info, json_t **msgs,
                      int64_t **seqs, char **errmsg) {
  memset(info, 0, sizeof *info);
  *msgs = NULL;
  *seqs = NULL;
  sqlite3_stmt *s = NULL;
  int rc = AGENT_OK;
  if (sqlite3_prepare_v2(st->db, "SELECT " INFO_COLS " FROM sessions s WHERE s.id = ?", -1, &s, NULL) != SQLITE_OK)
    return AGENT_ESTORE;
  sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
  if (sqlite3_step(s) != SQLITE_ROW) {
    sqlite3_finalize(s);
    if (errmsg) *errmsg = qc_asprintf("no session '%s' in %s", id, st->path);
    return AGENT_ENOTFOUND;
  }
  info_from_row(s, info);
  sqlite3_finalize(s);
  if (sqlite3_prepare_v2(st->db, "SELECT seq, json FROM messages WHERE session_id = ? AND active = 1 ORDER BY seq",
                         -1, &s, NULL) != SQLITE_OK) {
    rc = AGENT_ESTORE;
    goto fail;
  }
  sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
  json_t *arr = json_array();
  size_t cap = 16, n = 0;
  int64_t *sq = malloc(cap * sizeof *sq);
  int r;
  while (arr && sq && (r = sqlite3_step(s)) == SQLITE_ROW) {
    const char *js = (const char *)sqlite3_column_text(s, 1);
    json_t *m = js ? json_loads(js, 0, NULL) : NULL;
    if (!json_is_object(m)) {
      json_decref(m);
      if (errmsg) *errmsg = qc_asprintf("session '%s': message %lld is corrupt", id, (long long)sqlite3_column_int64(s, 0));
      rc = AGENT_ESTORE;
      break;
    }
    if (n == cap) {
      int64_t *x = realloc(sq, (cap *= 2) * sizeof *sq);
      if (!x) {
        json_decref(m);
        rc = AGENT_ENOMEM;
        break;
      }
      sq = x;
    }
    sq[n++] = sqlite3_column_int64(s, 0);
    json_array_append_new(arr, m);
  }
  sqlite3_finalize(s);
  if (!arr || !sq) rc = AGENT_ENOMEM;
  if (rc) {
    json_decref(arr);
    free(sq);
    goto fail;
  }
  *msgs = arr;
  *seqs = sq;
  return AGENT_OK;
fail:
  free(info->id);
  free(info->cwd);
  free(info->title);
  free(info->mode);
  free(info->backend);
  memset(info, 0, sizeof *info);
  return rc;
}
