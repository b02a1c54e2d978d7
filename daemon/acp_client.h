/* acp_client.h — an ACP client of the daemon, in C, for qcoder's own commands (internal
 * to daemon/, prefix `acp_client_`).
 *
 * `qcoder run`, `qcoder fix-tests` and the `qcoder lsp` process reach the agent the way
 * an editor does: as ACP clients of the daemon (there is one agent path). This is the
 * client they share: it connects to the daemon's socket (starting the daemon when none
 * answers), runs a libuv loop with that one connection on a thread of its own, says
 * `initialize` with the capabilities the caller offers, and then gives blocking calls
 * that can be made from any other thread:
 *
 *     acp_client_opts o = {.autostart = 1, .model = "model.gguf", .on_request = answer};
 *     acp_client *c;
 *     if (acp_client_open(&o, &c, why, sizeof why)) die(why);
 *     char *sid;
 *     acp_client_new_session(c, "/abs/repo", meta, NULL, &sid, NULL, why, sizeof why);
 *         (meta: {"mode": "auto-edit"} or NULL)
 *     char *stop;
 *     acp_client_prompt(c, sid, "fix the failing test", show_update, ui, &stop, why, sizeof why);
 *     ... acp_client_cancel(c, sid) from a signal-watching thread ...
 *     free(stop); free(sid); acp_client_close(c);
 *
 * Threads:
 *  - The client's loop thread runs every callback: `on_update` (each `session/update`
 *    of any session), the per-prompt update callback, and `on_request` (each request
 *    the daemon sends: session/request_permission, fs/read_text_file,
 *    fs/write_text_file, terminal/…). Callbacks must not call the blocking functions
 *    below (they would wait for their own thread: QC_EINVAL).
 *  - `on_request` answers its rpc_req exactly once with acp_client_reply() or
 *    acp_client_reply_error(), before returning or later from any thread — so a UI
 *    may ask the user on another thread. Without `on_request`, permission requests are
 *    answered "reject_once" and fs/terminal requests -32601 (do not offer those
 *    capabilities then).
 *  - The blocking calls (new_session, prompt, call, set_mode) may be made from any
 *    thread but the client's loop thread, several at once (one prompt per session).
 *    acp_client_cancel() works from any thread, including the loop thread.
 *
 * When the daemon goes away, blocking calls in progress and later ones fail with
 * RPC_ECLOSED ("the daemon has gone"); acp_client_connected() turns 0. Open a new client
 * to start over (sessions can be reloaded with session/load).
 *
 * Ownership: strings and JSON passed in are borrowed unless named `_steal`; `char **`
 * and `json_t **` results are the caller's (free / json_decref).
 */
#ifndef QC_DAEMON_ACP_CLIENT_H
#define QC_DAEMON_ACP_CLIENT_H

#include <jansson.h>

#include "daemon/jsonrpc.h"

typedef struct acp_client acp_client;

/* Each session/update: `update` is the `update` object (borrowed for the call). */
typedef void (*acp_client_update_fn)(void *user, const char *session_id, const json_t *update);
/* A request from the daemon; answer `req` exactly once (acp_client_reply*). */
typedef void (*acp_client_request_fn)(void *user, rpc_req *req, const char *method, const json_t *params);

typedef struct acp_client_opts {
  const char *socket_path;             /* NULL: the default socket (client.h) */
  int autostart;                       /* start `qcoder serve` when no daemon answers */
  const char *qcoder_bin;              /* binary to start; NULL: this executable */
  const char *model;                   /* this connection's default model (_qcoder/configure);
                                          NULL: the daemon's default; also the started
                                          daemon's --model */
  const json_t *client_capabilities;   /* ACP ClientCapabilities; NULL: {} */
  const char *client_name;             /* clientInfo.name; NULL: "qcoder" */
  acp_client_update_fn on_update;      /* may be NULL */
  acp_client_request_fn on_request;    /* may be NULL (see above) */
  void *user;
  int call_timeout_ms;                 /* initialize, session/new …; 0: 120000 (a new
                                          session may load a model and start MCP servers) */
} acp_client_opts;

/* Connect, start the loop thread, initialize (and configure the model). QC_OK, or an
 * RPC_E* code with `why` filled ("no qcoder daemon is running …", the daemon's own
 * start-up error, "the daemon answered initialize with …"). */
int acp_client_open(const acp_client_opts *o, acp_client **out, char *why, size_t why_len);
/* Stop the loop, close the connection (the daemon cancels this client's running
 * prompts and frees its sessions), join the thread, free. NULL-safe. */
void acp_client_close(acp_client *c);

/* The daemon's `initialize` result (borrowed; valid until close). */
const json_t *acp_client_init_result(const acp_client *c);
/* 1 while the daemon connection is open. */
int acp_client_connected(const acp_client *c);

/* Any request; timeout_ms < 0 waits for ever. QC_OK and *result (new reference);
 * RPC_EREMOTE with *err_code and `why`; RPC_ECLOSED; RPC_ETIMEOUT. */
int acp_client_call(acp_client *c, const char *method, json_t *params_steal, int timeout_ms, json_t **result,
                    int *err_code, char *why, size_t why_len);

/* session/new in `cwd` (absolute). `meta_qcoder` (may be NULL) is sent as
 * _meta.qcoder ({model, mode, maxSteps, maxTokens, testCommand, sandbox});
 * `mcp_servers` (may be NULL: []) as mcpServers. *session_id (malloc'd); *result (may
 * be NULL) the whole answer (modes, _meta.qcoder.mcpServers). */
int acp_client_new_session(acp_client *c, const char *cwd, const json_t *meta_qcoder, const json_t *mcp_servers,
                           char **session_id, json_t **result, char *why, size_t why_len);
/* session/prompt with one text block; blocks until the turn ends. `on_update` (may be
 * NULL) gets this session's updates while the prompt runs, on the loop thread, before
 * this returns. *stop_reason (malloc'd): end_turn, cancelled, max_tokens, … ;
 * RPC_EREMOTE when the turn failed (`why` says why). */
int acp_client_prompt(acp_client *c, const char *session_id, const char *text, acp_client_update_fn on_update,
                      void *user, char **stop_reason, char *why, size_t why_len);
/* session/cancel (a notification; the prompt then answers "cancelled"). Any thread. */
int acp_client_cancel(acp_client *c, const char *session_id);
/* session/set_mode: "read-only", "ask", "auto-edit", "full-auto". */
int acp_client_set_mode(acp_client *c, const char *session_id, const char *mode, char *why, size_t why_len);

/* Answer a request from the daemon (any thread). */
void acp_client_reply(rpc_req *req, json_t *result_steal);
void acp_client_reply_error(rpc_req *req, int code, const char *message);

#endif /* QC_DAEMON_ACP_CLIENT_H */
