/* acp_client.c — the C ACP client (acp_client.h): one adopted daemon connection on a
 * private rpc_server whose loop runs on its own thread.
 *
 * The private server registers only the client side of ACP (session/update and the
 * requests an agent sends). Blocking calls from other threads go through
 * rpc_server_call(); per-prompt update callbacks are kept in a small list under a mutex
 * and matched by session id on the loop thread.
 */
#include "daemon/acp_client.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/client.h"
#include "daemon/server.h"

#define ACP_CLIENT_DEFAULT_TIMEOUT_MS 120000

typedef struct watcher {
  struct watcher *next;
  char *session_id;
  acp_client_update_fn fn;
  void *user;
} watcher;

struct acp_client {
  acp_client_opts opts;
  rpc_server *srv;
  uint64_t conn_id;
  pthread_t thread;
  int thread_live;
  atomic_int connected;
  json_t *init_result;
  pthread_mutex_t mu;
  watcher *watchers;
  int timeout_ms;
};

static void on_closed(rpc_conn *conn, void *user) {
  (void)conn;
  acp_client *c = user;
  atomic_store(&c->connected, 0);
}

static void on_session_update(rpc_conn *conn, const json_t *params, void *user) {
  (void)conn;
  acp_client *c = user;
  const char *sid = json_string_value(json_object_get(params, "sessionId"));
  const json_t *u = json_object_get(params, "update");
  if (!sid || !json_is_object(u)) return;
  if (c->opts.on_update) c->opts.on_update(c->opts.user, sid, u);
  pthread_mutex_lock(&c->mu);
  for (watcher *w = c->watchers; w; w = w->next)
    if (!strcmp(w->session_id, sid)) w->fn(w->user, sid, u);
  pthread_mutex_unlock(&c->mu);
}

static void on_request(rpc_req *req, const json_t *params, void *user) {
  acp_client *c = user;
  const char *method = rpc_req_method(req);
  if (c->opts.on_request) {
    c->opts.on_request(c->opts.user, req, method, params);
    return;
  }
  if (!strcmp(method, "session/request_permission")) {
    rpc_req_reply(req, json_pack("{s:{s:s, s:s}}", "outcome", "outcome", "selected", "optionId", "reject_once"));
    return;
  }
  rpc_req_errorf(req, RPC_METHOD_NOT_FOUND, "%s is not offered by this client", method);
}

void acp_client_reply(rpc_req *req, json_t *result_steal) {
  rpc_conn *conn = rpc_req_conn(req);
  rpc_server_post_reply(rpc_conn_server(conn), req, result_steal);
}

void acp_client_reply_error(rpc_req *req, int code, const char *message) {
  rpc_conn *conn = rpc_req_conn(req);
  rpc_server_post_error(rpc_conn_server(conn), req, code, message);
}

static void *loop_main(void *arg) {
  acp_client *c = arg;
  rpc_server_run(c->srv);
  return NULL;
}

static void stop_loop(rpc_server *srv, void *user) {
  (void)user;
  rpc_server_stop(srv, "the client is closing");
}

static const char *const k_client_requests[] = {
    "session/request_permission", "fs/read_text_file", "fs/write_text_file", "terminal/create",
    "terminal/output", "terminal/wait_for_exit", "terminal/kill", "terminal/release", NULL,
};

int acp_client_open(const acp_client_opts *o, acp_client **out, char *why, size_t why_len) {
  *out = NULL;
  if (why && why_len) why[0] = '\0';
  acp_client *c = calloc(1, sizeof *c);
  if (!c) return QC_ENOMEM;
  c->opts = *o;
  c->timeout_ms = o->call_timeout_ms > 0 ? o->call_timeout_ms : ACP_CLIENT_DEFAULT_TIMEOUT_MS;
  pthread_mutex_init(&c->mu, NULL);
  char *sock = rpc_socket_path(o->socket_path);
  int fd = -1, rc;
  if (!sock) {
    rc = QC_ENOMEM;
    goto fail;
  }
  if (o->autostart) {
    const char *args[3] = {NULL, NULL, NULL};
    if (o->model) {
      args[0] = "--model";
      args[1] = o->model;
    }
    rpc_autostart as = {.qcoder_bin = o->qcoder_bin, .serve_args = args};
    rc = rpc_client_connect_auto(sock, &as, &fd, NULL, why, why_len);
  } else {
    rc = rpc_client_connect(sock, &fd, why, why_len);
  }
  if (rc) goto fail;
  rpc_server_opts so = {0};
  c->srv = rpc_server_new(&so);
  if (!c->srv) {
    rc = QC_ENOMEM;
    goto fail;
  }
  rc = rpc_register_notification(c->srv, "session/update", on_session_update, c);
  for (const char *const *m = k_client_requests; *m; m++) rc |= rpc_register(c->srv, *m, on_request, c);
  if (rc) {
    rc = QC_ENOMEM;
    goto fail;
  }
  rpc_conn *conn = rpc_server_adopt_fd(c->srv, fd, RPC_FRAMING_NDJSON);
  if (!conn) {
    rc = QC_ENOMEM;
    goto fail;
  }
  fd = -1; /* the server owns it now */
  c->conn_id = rpc_conn_id(conn);
  atomic_store(&c->connected, 1);
  rpc_conn_on_close(conn, on_closed, c);
  if (pthread_create(&c->thread, NULL, loop_main, c) != 0) {
    rc = QC_ENOMEM;
    goto fail;
  }
  c->thread_live = 1;

  json_t *caps = o->client_capabilities ? json_deep_copy(o->client_capabilities) : json_object();
  json_t *params = json_pack("{s:i, s:o, s:{s:s, s:s}}", "protocolVersion", 1, "clientCapabilities", caps,
                             "clientInfo", "name", o->client_name ? o->client_name : "qcoder", "version",
                             QCODER_VERSION);
  int code = 0;
  rc = acp_client_call(c, "initialize", params, c->timeout_ms, &c->init_result, &code, why, why_len);
  if (rc) goto fail;
  if (o->model) {
    json_t *res = NULL;
    rc = acp_client_call(c, "_qcoder/configure", json_pack("{s:s}", "model", o->model), c->timeout_ms, &res, &code,
                         why, why_len);
    json_decref(res);
    if (rc) goto fail;
  }
  free(sock);
  *out = c;
  return QC_OK;
fail:
  if (fd >= 0) close(fd);
  free(sock);
  acp_client_close(c);
  return rc;
}

void acp_client_close(acp_client *c) {
  if (!c) return;
  if (c->thread_live) {
    rpc_server_post(c->srv, stop_loop, NULL);
    pthread_join(c->thread, NULL);
  }
  rpc_server_free(c->srv);
  json_decref(c->init_result);
  while (c->watchers) {
    watcher *w = c->watchers;
    c->watchers = w->next;
    free(w->session_id);
    free(w);
  }
  pthread_mutex_destroy(&c->mu);
  free(c);
}

const json_t *acp_client_init_result(const acp_client *c) { return c->init_result; }
int acp_client_connected(const acp_client *c) { return atomic_load(&c->connected); }

int acp_client_call(acp_client *c, const char *method, json_t *params_steal, int timeout_ms, json_t **result,
                    int *err_code, char *why, size_t why_len) {
  if (!atomic_load(&c->connected)) {
    json_decref(params_steal);
    *result = NULL;
    if (why && why_len) snprintf(why, why_len, "the qcoder daemon has gone");
    return RPC_ECLOSED;
  }
  int rc = rpc_server_call(c->srv, c->conn_id, method, params_steal, timeout_ms, result, err_code, why, why_len);
  if (rc == RPC_ECLOSED && why && why_len) snprintf(why, why_len, "the qcoder daemon has gone");
  return rc;
}

int acp_client_new_session(acp_client *c, const char *cwd, const json_t *meta_qcoder, const json_t *mcp_servers,
                           char **session_id, json_t **result, char *why, size_t why_len) {
  *session_id = NULL;
  if (result) *result = NULL;
  json_t *params = json_pack("{s:s, s:o}", "cwd", cwd, "mcpServers",
                             mcp_servers ? json_deep_copy(mcp_servers) : json_array());
  if (meta_qcoder) json_object_set_new(params, "_meta", json_pack("{s:O}", "qcoder", meta_qcoder));
  json_t *res = NULL;
  int code = 0;
  int rc = acp_client_call(c, "session/new", params, c->timeout_ms, &res, &code, why, why_len);
  if (rc) return rc;
  const char *sid = json_string_value(json_object_get(res, "sessionId"));
  if (!sid) {
    json_decref(res);
    if (why && why_len) snprintf(why, why_len, "the daemon's answer to session/new has no sessionId");
    return RPC_EPROTOCOL;
  }
  *session_id = strdup(sid);
  if (result) *result = res;
  else json_decref(res);
  return *session_id ? QC_OK : QC_ENOMEM;
}

int acp_client_prompt(acp_client *c, const char *session_id, const char *text, acp_client_update_fn on_update,
                      void *user, char **stop_reason, char *why, size_t why_len) {
  *stop_reason = NULL;
  watcher *w = NULL;
  if (on_update) {
    w = calloc(1, sizeof *w);
    if (!w || !(w->session_id = strdup(session_id))) {
      free(w);
      return QC_ENOMEM;
    }
    w->fn = on_update;
    w->user = user;
    pthread_mutex_lock(&c->mu);
    w->next = c->watchers;
    c->watchers = w;
    pthread_mutex_unlock(&c->mu);
  }
  json_t *res = NULL;
  int code = 0;
  int rc = acp_client_call(c, "session/prompt",
                           json_pack("{s:s, s:[{s:s, s:s}]}", "sessionId", session_id, "prompt", "type", "text",
                                     "text", text),
                           -1, &res, &code, why, why_len);
  if (w) {
    pthread_mutex_lock(&c->mu);
    for (watcher **p = &c->watchers; *p; p = &(*p)->next)
      if (*p == w) {
        *p = w->next;
        break;
      }
    pthread_mutex_unlock(&c->mu);
    free(w->session_id);
    free(w);
  }
  if (rc) return rc;
  const char *sr = json_string_value(json_object_get(res, "stopReason"));
  *stop_reason = strdup(sr ? sr : "end_turn");
  json_decref(res);
  return *stop_reason ? QC_OK : QC_ENOMEM;
}

int acp_client_cancel(acp_client *c, const char *session_id) {
  return rpc_server_post_notify(c->srv, c->conn_id, "session/cancel", json_pack("{s:s}", "sessionId", session_id));
}

int acp_client_set_mode(acp_client *c, const char *session_id, const char *mode, char *why, size_t why_len) {
  json_t *res = NULL;
  int code = 0;
  int rc = acp_client_call(c, "session/set_mode", json_pack("{s:s, s:s}", "sessionId", session_id, "modeId", mode),
                           c->timeout_ms, &res, &code, why, why_len);
  json_decref(res);
  return rc;
}
