/* server.h — the daemon's libuv server: listeners, connections, shutdown, and the door
 * through which other threads reach the loop (internal to daemon/, prefix `rpc_`).
 *
 * One rpc_server owns one libuv loop (its own, or one handed in) and binds the pure
 * JSON-RPC core (jsonrpc.h) to streams: accepted Unix-socket connections, stdin/stdout
 * as a single connection (`--stdio`), or any connected fd adopted as a connection
 * (how a `qcoder acp` or `qcoder lsp` process talks to the daemon).
 *
 * How other layers plug in (ACP, LSP, the agent runner):
 *
 *   - Methods: rpc_register(srv, "session/prompt", handler, user) — one line per method,
 *     typically inside a module's `xxx_register(rpc_server *)` listed once in
 *     cmd_serve.c. Handlers run on the loop thread and must never block it.
 *   - Deferred answers: keep the rpc_req from the handler; answer later on the loop
 *     thread, or from a worker with rpc_server_post_reply / rpc_server_post_error.
 *   - Requests to the client: rpc_conn_request(conn, method, params, cb, user) on the
 *     loop thread; from a worker, rpc_server_call() blocks until the client answers
 *     (or the connection closes, or a timeout).
 *   - Worker threads: rpc_server_post(srv, fn, user) runs fn on the loop thread (a
 *     locked queue plus uv_async); rpc_server_post_notify() sends a notification to a
 *     connection named by its id (rpc_conn_id), from any thread.
 *   - Sessions: rpc_conn_on_close(conn, fn, user) to clean up; rpc_req_on_cancel for
 *     `$/cancel_request` / `$/cancelRequest` / connection loss / shutdown.
 *   - Status: rpc_server_set_model_hook() fills `model` in `_qcoder/status`;
 *     rpc_server_agent_capabilities() is the object `initialize` advertises.
 *
 * Shutdown (SIGINT, SIGTERM, `_qcoder/shutdown`, idle timeout, stdin closing in stdio
 * mode) runs in phases: stop accepting; run every open request's cancel hook; give
 * handlers RPC_SHUTDOWN_GRACE_MS to answer; answer the rest with -32800; flush and close
 * every connection (force after RPC_SHUTDOWN_FLUSH_MS); remove socket and lock file;
 * rpc_server_run() returns 0. A second signal skips the waiting.
 *
 * Silent peers: an accepted connection that sends no complete message within
 * RPC_FIRST_MESSAGE_TIMEOUT_MS (opts.first_message_timeout_ms) is closed and logged, so
 * connecting and saying nothing cannot hold a connection slot; after its first message a
 * connection may stay idle for as long as it likes.
 *
 * Slow peers: every connection has a bounded write queue (RPC_MAX_WRITE_QUEUE_BYTES or
 * opts.max_write_queue); a peer that lets it overflow is dropped and logged, so it
 * never holds memory or delays anyone else. Nothing on the loop thread blocks on I/O.
 *
 * The server ignores SIGPIPE process-wide (a peer closing mid-write must be an error
 * code, not a dead daemon).
 */
#ifndef QC_DAEMON_SERVER_H
#define QC_DAEMON_SERVER_H

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "daemon/jsonrpc.h"

typedef struct rpc_server rpc_server;

typedef struct rpc_server_opts {
  uv_loop_t *loop;           /* NULL: the server creates and owns a loop */
  unsigned idle_timeout_s;   /* exit after this long without connections; 0 = never */
  size_t max_write_queue;    /* 0: RPC_MAX_WRITE_QUEUE_BYTES */
  int handle_signals;        /* SIGINT/SIGTERM start a graceful shutdown */
  /* An accepted connection that sends no complete message within this long is closed;
   * 0: RPC_FIRST_MESSAGE_TIMEOUT_MS; < 0: never. Not applied to stdio or adopted fds. */
  int first_message_timeout_ms;
} rpc_server_opts;

rpc_server *rpc_server_new(const rpc_server_opts *opts);
/* Close whatever is still open, run posted functions still queued (so their owners can
 * free data), release everything. Threads that post must be stopped first. */
void rpc_server_free(rpc_server *srv);

/* The method table shared by every connection of this server. */
int rpc_register(rpc_server *srv, const char *method, rpc_request_fn fn, void *user);
int rpc_register_notification(rpc_server *srv, const char *method, rpc_notify_fn fn, void *user);
rpc_methods *rpc_server_methods(rpc_server *srv);

/* Listen on a Unix socket, one daemon per socket: takes `PATH.lock` (flock, our pid
 * inside), replaces a stale socket left by a crashed daemon, binds with mode 0600. The
 * socket's directory is created 0700 when missing and must be owned by us.
 * RPC_ERUNNING (and *holder_pid) when another daemon holds the lock; RPC_ESOCKET with
 * `why` filled for unusable paths. The socket is removed when run() ends, the lock when
 * the server is freed (or by whoever took it with rpc_server_take_lock). */
int rpc_server_listen(rpc_server *srv, const char *socket_path, long *holder_pid, char *why, size_t why_len);
/* stdin/stdout as one connection; stdout then carries protocol bytes only. When it
 * closes (stdin EOF and answers sent) the server shuts down. Pipes, sockets and
 * terminals work; a regular file does not (RPC_ESOCKET). */
int rpc_server_add_stdio(rpc_server *srv);
/* Wrap a connected stream fd (socket or pipe) as a connection of this server, which
 * now owns the fd. `framing` DETECT learns it from the peer; NDJSON/LSP fix it for
 * peers that wait for us to speak first. The returned connection is borrowed. */
rpc_conn *rpc_server_adopt_fd(rpc_server *srv, int fd, rpc_framing framing);

/* Take over the lock file's descriptor (returned; -1 when none is held) and its path
 * (*lock_path, malloc'd): the caller keeps other daemons out — and tells clients waiting
 * for this one to be gone to wait — until its own teardown ends, then unlinks the path and
 * closes the fd. The daemon does this so session caches are saved before it counts as
 * stopped. */
int rpc_server_take_lock(rpc_server *srv, char **lock_path);

/* Run the loop until shutdown completes. 0 after a graceful stop. */
int rpc_server_run(rpc_server *srv);
/* Start a graceful shutdown (loop thread; idempotent). `reason` goes to the log. */
void rpc_server_stop(rpc_server *srv, const char *reason);
int rpc_server_stopping(const rpc_server *srv);

/* ---- from other threads ------------------------------------------------------------ */

typedef void (*rpc_post_fn)(rpc_server *srv, void *user);
/* Run fn(srv, user) on the loop thread, in posting order. Safe from any thread until
 * rpc_server_free(); functions still queued at free time run then. QC_ENOMEM only. */
int rpc_server_post(rpc_server *srv, rpc_post_fn fn, void *user);
/* Send a notification (params stolen) to connection `conn_id` from any thread — how an
 * agent run streams session/update; dropped silently if that connection has closed. */
int rpc_server_post_notify(rpc_server *srv, uint64_t conn_id, const char *method, json_t *params_steal);

/* Answer a request the handler kept (rpc_req_reply / rpc_req_error) from any thread:
 * the answer is sent on the loop thread. The request must not be finished otherwise. */
int rpc_server_post_reply(rpc_server *srv, rpc_req *req, json_t *result_steal);
int rpc_server_post_error(rpc_server *srv, rpc_req *req, int code, const char *message);

/* From a worker thread (never the loop thread: QC_EINVAL), send a request to connection
 * `conn_id` and block until it is answered or timeout_ms passes (< 0: no limit) — how an
 * agent run asks the editor for permission. QC_OK and *result (new reference);
 * RPC_EREMOTE with *err_code and `why` when the client answered with an error;
 * RPC_ECLOSED when the connection is gone or closes first (so shutdown never leaves a
 * worker waiting); RPC_ETIMEOUT: the request is then forgotten on the connection (its
 * pending slot freed) and an answer that still comes is dropped with a debug log. */
int rpc_server_call(rpc_server *srv, uint64_t conn_id, const char *method, json_t *params_steal, int timeout_ms,
                    json_t **result, int *err_code, char *why, size_t why_len);

/* ---- loop-thread accessors --------------------------------------------------------- */

uv_loop_t *rpc_server_loop(rpc_server *srv);
rpc_conn *rpc_server_find_conn(rpc_server *srv, uint64_t conn_id);
int rpc_server_connection_count(const rpc_server *srv);
uint64_t rpc_server_uptime_ms(const rpc_server *srv);
const char *rpc_server_socket_path(const rpc_server *srv); /* NULL when not listening */
/* The server a connection belongs to; only for connections a server made. */
rpc_server *rpc_conn_server(const rpc_conn *c);

/* `agentCapabilities` as `initialize` reports them (borrowed, mutable): modules that
 * add a capability set it here when they register. */
json_t *rpc_server_agent_capabilities(rpc_server *srv);
/* What `_qcoder/status` reports as `model`: fn returns a new reference, or NULL for
 * "no model loaded" (reported as null). Called on the loop thread. */
typedef json_t *(*rpc_model_info_fn)(rpc_server *srv, void *user);
void rpc_server_set_model_hook(rpc_server *srv, rpc_model_info_fn fn, void *user);
json_t *rpc_server_model_info(rpc_server *srv); /* new reference or NULL */

#endif /* QC_DAEMON_SERVER_H */
