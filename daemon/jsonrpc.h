/* jsonrpc.h — JSON-RPC 2.0 for the daemon: framing, decoding and dispatch (internal to
 * daemon/, prefix `rpc_`).
 *
 * This module knows bytes and JSON, never sockets: it has no libuv in it. A transport
 * (server.c binds it to libuv streams; tests bind it to memory) hands it input bytes
 * in chunks of any size and gets framed output bytes back through two callbacks. That
 * keeps every rule about untrusted input testable byte by byte and fuzzable.
 *
 * ## Framing (the wire)
 *
 * Two framings exist and one connection speaks one of them, chosen from its first
 * bytes and used for everything sent back on it:
 *
 *  - newline-delimited JSON (ACP, MCP stdio): one JSON text per line, `\n`-terminated;
 *    a trailing `\r` and surrounding blanks are trimmed and blank lines are skipped, as
 *    the ACP TypeScript SDK does. JSON forbids raw control characters inside strings,
 *    so a newline can only end a message.
 *  - `Content-Length:` headers (LSP base protocol): ASCII header lines ended by CRLF
 *    (a bare LF is accepted), a blank line, then exactly Content-Length bytes of body.
 *    Header names are case-insensitive; `Content-Type` is accepted and otherwise
 *    ignored, as are unknown headers. A missing, duplicate, non-decimal or over-limit
 *    Content-Length is a framing error.
 *
 * Detection: the first non-blank bytes decide. `Content-` (any case) means headers;
 * anything else means newline-delimited, where a line that is not JSON is answered
 * with -32700 and the connection lives on.
 *
 * A framing error (header garbage, bad Content-Length, a message over the size limit)
 * means the byte stream can no longer be trusted to be in step: the peer gets one
 * error response with `"id": null` and the connection is closed once that is flushed.
 * Everything after the framing layer — invalid JSON, invalid UTF-8, nesting bombs,
 * batches, malformed requests — is answered per message and the connection stays.
 *
 * ## Messages
 *
 * A decoded message is a request (`method` + `id`), a notification (`method`, no id),
 * or a response (`id` + exactly one of `result`/`error`). Ids are integers, strings or
 * null. Batches (top-level arrays) are refused with -32600, as the ACP SDK does. Nesting
 * deeper than RPC_MAX_JSON_DEPTH is refused by a byte scan before jansson sees the text,
 * so a 100k-`[` bomb costs one pass over its bytes.
 *
 * ## Dispatch, in both directions
 *
 * A connection (`rpc_conn`) dispatches incoming requests to handlers found in a method
 * table (`rpc_methods`), which other files fill with one registration call per method.
 * A handler gets an `rpc_req` and must finish it exactly once with rpc_req_reply() or
 * rpc_req_error() — before returning, or later from the loop thread (a deferred
 * response: ACP's session/prompt stays open for a whole turn). While it is open the
 * peer may cancel it with `$/cancel_request {requestId}` (ACP) or `$/cancelRequest {id}`
 * (LSP); the core then runs the request's cancel hook, and the handler still answers
 * (with -32800 or a result).
 *
 * The daemon also sends its own requests to the peer (ACP's permission, fs and terminal
 * requests; LSP's workspace/applyEdit) with rpc_conn_request(): integer ids from a
 * per-connection counter, a completion callback called exactly once — with the
 * response, or with RPC_CONNECTION_CLOSED when the connection goes first.
 *
 * Threads: everything here runs on one thread (the loop thread). Worker threads reach
 * it through rpc_server_post() in server.h.
 *
 * Ownership: json_t arguments named `steal` are consumed (even on error); other
 * json_t pointers are borrowed for the duration of the call. An rpc_conn lives until
 * its transport is closed and the last reference (rpc_conn_ref, open rpc_req handles)
 * is dropped.
 */
#ifndef QC_DAEMON_JSONRPC_H
#define QC_DAEMON_JSONRPC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

/* ---- limits: every bound of the daemon's protocol layer, with its reason ------------ */

/* Largest message body accepted or sent: the ACP TypeScript SDK's
 * DEFAULT_MAX_MESSAGE_BYTES, so anything an ACP client can send fits, and a hostile
 * `Content-Length: 9999999999` is refused before a byte is buffered. */
#define RPC_MAX_MESSAGE_BYTES (32u << 20)
/* LSP header block (all lines up to the blank line). Real clients send under 100 bytes;
 * 8 KiB is generous and keeps a header-only flood small. */
#define RPC_MAX_HEADER_BYTES 8192u
/* JSON nesting accepted. No protocol message we know nests beyond ~12 levels; 128
 * leaves room for tool arguments and stays far below jansson's recursive 2048. */
#define RPC_MAX_JSON_DEPTH 128
/* Requests from one peer that the daemon has not answered yet. Beyond that the peer is
 * not waiting for answers, it is flooding: new requests get an error at once. */
#define RPC_MAX_INFLIGHT_REQUESTS 1024
/* Requests the daemon has sent to one peer and not had answered. A peer that never
 * answers must not grow our memory without bound. */
#define RPC_MAX_PENDING_OUTGOING 1024
/* Bytes queued for a peer that has not read them. Two maximum-size messages plus
 * slack: a slow reader is fine, a peer that stops reading is dropped (logged) so it
 * cannot hold memory or stall anyone. `qcoder serve --max-write-queue` overrides. */
#define RPC_MAX_WRITE_QUEUE_BYTES (2 * (size_t)RPC_MAX_MESSAGE_BYTES + (1u << 20))
/* Simultaneous connections to one daemon; each costs a file descriptor. */
#define RPC_MAX_CONNECTIONS 512
/* How long an accepted connection may go without sending one complete message before
 * it is closed (logged): a peer that connects and says nothing would otherwise hold one
 * of the RPC_MAX_CONNECTIONS slots forever — with 512 silent connects, a local denial of
 * service. Every qcoder client speaks as soon as it connects; 30 s covers a machine under
 * heavy load. Once a connection has sent a message it may stay idle without limit
 * (editors sit idle for hours). rpc_server_opts.first_message_timeout_ms overrides it;
 * `qcoder serve` reads $QCODER_FIRST_MESSAGE_TIMEOUT_MS (for tests). */
#define RPC_FIRST_MESSAGE_TIMEOUT_MS 30000
/* On shutdown, how long handlers get to answer after their cancel hooks ran; and, for
 * any connection closing after its last answers, how long the peer gets to read them
 * before the daemon closes anyway. */
#define RPC_SHUTDOWN_GRACE_MS 2000
#define RPC_SHUTDOWN_FLUSH_MS 2000
/* Bytes taken from a socket per read; the framer copies what it keeps, so one buffer
 * serves every connection. */
#define RPC_READ_CHUNK_BYTES (64u << 10)
/* Pending connections the kernel queues for us: 100 clients connecting in the same
 * instant must not be refused (the kernel caps it at net.core.somaxconn). */
#define RPC_LISTEN_BACKLOG 256
/* Taking the lock retries when the lock file is replaced under us by an exiting
 * daemon; more than a few replacements in a row means something else is wrong. */
#define RPC_LOCK_RETRIES 5
/* How long a CLI command (`status`, `stop`) waits for one answer: the loop never
 * blocks, so a daemon that takes longer is stuck. */
#define RPC_CLIENT_CALL_TIMEOUT_MS 5000
/* How long `qcoder stop` waits for the socket to go: the daemon's worst case
 * (grace + flush) plus slack for a loaded machine. */
#define RPC_STOP_WAIT_MS (RPC_SHUTDOWN_GRACE_MS + RPC_SHUTDOWN_FLUSH_MS + 10000)
/* Idle timeout of a daemon started automatically by a client: long enough that a pause
 * in an editor session does not unload a model that takes a while to page in again,
 * short enough that a forgotten daemon gives its memory back. */
#define RPC_AUTOSTART_IDLE_TIMEOUT_S 1800
/* How long a client waits for an auto-started daemon to answer (loading nothing yet,
 * it starts in milliseconds; this covers a machine under heavy load). */
#define RPC_AUTOSTART_WAIT_MS 15000

/* ---- error codes on the wire ------------------------------------------------------- */

#define RPC_PARSE_ERROR -32700
#define RPC_INVALID_REQUEST -32600
#define RPC_METHOD_NOT_FOUND -32601
#define RPC_INVALID_PARAMS -32602
#define RPC_INTERNAL_ERROR -32603
#define RPC_REQUEST_CANCELLED -32800 /* ACP and LSP */
/* Local only, never sent: what a completion callback gets when the connection closed
 * before the peer answered. Inside JSON-RPC's reserved server-error range. */
#define RPC_CONNECTION_CLOSED -32099

/* ---- module error codes (function return values) ----------------------------------- */

/* The daemon module's error table; values continue below common's QC_E* codes. */
#define RPC_ERR_MAP(X)                                                                   \
  X(FRAMING, "the peer broke the message framing")                                       \
  X(MSG_TOOBIG, "message exceeds the 32 MiB limit")                                      \
  X(CLOSED, "the connection is closed")                                                  \
  X(BUSY, "too many requests are pending on this connection")                            \
  X(DUPLICATE, "a handler for this method is already registered")                        \
  X(RUNNING, "another qcoder daemon is already serving this socket")                     \
  X(NOT_RUNNING, "no qcoder daemon is answering on this socket")                         \
  X(SOCKET, "cannot use the socket path")                                                \
  X(TIMEOUT, "the daemon did not answer in time")                                        \
  X(REMOTE, "the daemon answered with an error")                                         \
  X(PROTOCOL, "the daemon sent something that is not a JSON-RPC answer")

enum {
  RPC__ERR_FIRST = -200,
#define RPC__ERR_ENUM(name, msg) RPC_E##name,
  RPC_ERR_MAP(RPC__ERR_ENUM)
#undef RPC__ERR_ENUM
};

/* Message for an RPC_E* or QC_E* code. Never NULL. */
const char *rpc_strerror(int code);

/* ---- framing (pure: bytes in, messages out) ---------------------------------------- */

typedef enum {
  RPC_FRAMING_DETECT = 0, /* not decided yet: the first bytes will tell */
  RPC_FRAMING_NDJSON,     /* newline-delimited JSON (ACP) */
  RPC_FRAMING_LSP,        /* Content-Length headers (LSP) */
} rpc_framing;

typedef struct rpc_framer {
  rpc_framing framing;
  size_t max_message;  /* RPC_MAX_MESSAGE_BYTES unless a test wants less */
  qc_buf in;           /* bytes received and not yet consumed, from `pos` */
  size_t pos;          /* start of the unconsumed bytes in `in` */
  size_t scan;         /* NDJSON: bytes from `pos` already known to hold no newline */
  size_t body_len;     /* LSP: length of the body being waited for */
  int in_body;         /* LSP: headers done, waiting for body_len bytes */
  int failed;          /* a framing error was reported; no more messages */
  char error[160];     /* what went wrong, for the error response and the log */
} rpc_framer;

/* `max_message` 0 means RPC_MAX_MESSAGE_BYTES. `framing` DETECT decides from input. */
void rpc_framer_init(rpc_framer *f, rpc_framing framing, size_t max_message);
void rpc_framer_release(rpc_framer *f);
/* Append received bytes. The caller then drains with rpc_framer_next() until it returns
 * 0, so at most one partial message plus one chunk is ever buffered. */
int rpc_framer_feed(rpc_framer *f, const void *data, size_t n);
/* The next complete message body: 1 and *msg and *len set (valid until the next feed or
 * next call; not NUL-terminated), 0 when more bytes are needed, or a negative code on
 * a framing error (RPC_EFRAMING, RPC_EMSG_TOOBIG; f->error says what) after which the
 * framer stays failed. */
int rpc_framer_next(rpc_framer *f, const char **msg, size_t *len);
/* Bytes buffered and not yet returned as messages. */
size_t rpc_framer_pending(const rpc_framer *f);

/* Frame one message body for the wire into `out` (appended). */
int rpc_frame_encode(rpc_framing framing, const char *body, size_t len, qc_buf *out);

/* ---- decoding one message ---------------------------------------------------------- */

typedef enum {
  RPC_MSG_REQUEST = 1,
  RPC_MSG_NOTIFICATION,
  RPC_MSG_RESPONSE,
} rpc_msg_kind;

typedef struct rpc_msg {
  rpc_msg_kind kind;
  json_t *root;          /* owned: the whole message */
  const json_t *id;      /* request/response id (borrowed from root); NULL for notifications */
  const char *method;    /* requests and notifications */
  const json_t *params;  /* object or array, or NULL when absent */
  const json_t *result;  /* responses: exactly one of result/error is set */
  const json_t *error;
} rpc_msg;

/* Why a message was refused, and what to answer. `id` is the request id when it could
 * be recovered (a new reference), else NULL (answer with id null). */
typedef struct rpc_decode_error {
  int code;              /* RPC_PARSE_ERROR or RPC_INVALID_REQUEST */
  int silent;            /* a malformed *response*: log it, never answer it */
  json_t *id;
  char message[200];
} rpc_decode_error;

/* Decode one framed message body. 0 and *msg filled (release with rpc_msg_release),
 * or -1 and *err filled. Never keeps pointers into `text`. */
int rpc_decode(const char *text, size_t len, rpc_msg *msg, rpc_decode_error *err);
void rpc_msg_release(rpc_msg *msg);
/* Deepest `[`/`{` nesting in a JSON text (strings and escapes skipped), scanning no
 * further than one level past `limit`. Exposed for tests. */
int rpc_json_depth(const char *text, size_t len, int limit);

/* Build messages (new references). `id` is borrowed and copied; NULL means null. */
json_t *rpc_make_request(json_int_t id, const char *method, json_t *params_steal);
json_t *rpc_make_notification(const char *method, json_t *params_steal);
json_t *rpc_make_result(const json_t *id, json_t *result_steal);
json_t *rpc_make_error(const json_t *id, int code, const char *message, json_t *data_steal);

/* ---- method table ------------------------------------------------------------------ */

typedef struct rpc_conn rpc_conn;
typedef struct rpc_req rpc_req;
typedef struct rpc_methods rpc_methods;

/* A request handler. `params` is the object/array sent, or NULL when absent. It must
 * finish `req` exactly once (rpc_req_reply / rpc_req_error), now or later. */
typedef void (*rpc_request_fn)(rpc_req *req, const json_t *params, void *user);
/* A notification handler. Nothing to answer. */
typedef void (*rpc_notify_fn)(rpc_conn *conn, const json_t *params, void *user);

rpc_methods *rpc_methods_new(void);
void rpc_methods_free(rpc_methods *m);
/* Register a handler; RPC_EDUPLICATE when the name is taken (two modules claiming
 * one method is a bug to catch at start-up). The name is copied. */
int rpc_methods_add_request(rpc_methods *m, const char *method, rpc_request_fn fn, void *user);
int rpc_methods_add_notification(rpc_methods *m, const char *method, rpc_notify_fn fn, void *user);

/* ---- requests being handled (incoming) --------------------------------------------- */

typedef void (*rpc_cancel_fn)(rpc_req *req, void *user);

/* Answer with a result (stolen; NULL sends `null`) and release the handle. */
void rpc_req_reply(rpc_req *req, json_t *result_steal);
/* Answer with an error (data stolen, may be NULL) and release the handle. */
void rpc_req_error(rpc_req *req, int code, const char *message, json_t *data_steal);
void rpc_req_errorf(rpc_req *req, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Run `fn` once when the request is cancelled: by the peer's $/cancel_request or
 * $/cancelRequest, by the connection closing, or by daemon shutdown. When it already
 * was, `fn` runs now. `fn` may answer the request. One hook per request; a second call
 * replaces the first. */
void rpc_req_on_cancel(rpc_req *req, rpc_cancel_fn fn, void *user);
int rpc_req_cancelled(const rpc_req *req);
rpc_conn *rpc_req_conn(const rpc_req *req);
const json_t *rpc_req_id(const rpc_req *req);
const char *rpc_req_method(const rpc_req *req);

/* ---- connections ------------------------------------------------------------------- */

/* What a transport provides. Both run on the loop thread. */
typedef struct rpc_conn_ops {
  /* Queue framed bytes for the peer (copied). Nonzero: the transport failed and is
   * closing; the core treats the bytes as lost. */
  int (*write)(void *io, const char *data, size_t len);
  /* Stop reading; when `flush`, send what is queued first. The transport then calls
   * rpc_conn_io_closed() exactly once when it is really gone. */
  void (*close)(void *io, int flush);
} rpc_conn_ops;

typedef struct rpc_conn_config {
  rpc_methods *methods;      /* borrowed; must outlive the connection */
  const rpc_conn_ops *ops;
  void *io;                  /* the transport's handle, passed to ops */
  void *owner;               /* for the embedding code (server.c: the rpc_server) */
  rpc_framing framing;       /* DETECT for accepted connections */
  size_t max_message;        /* 0: RPC_MAX_MESSAGE_BYTES */
} rpc_conn_config;

/* A new connection with one reference, held by the transport until it calls
 * rpc_conn_io_closed(). NULL when out of memory. */
rpc_conn *rpc_conn_new(const rpc_conn_config *cfg);
void rpc_conn_ref(rpc_conn *c);
void rpc_conn_unref(rpc_conn *c);

/* Transport side: bytes arrived; the peer finished sending (EOF); the transport is gone.
 * On EOF a last newline-delimited message without its '\n' still counts; then our
 * pending requests fail (the peer can no longer answer), open requests are cancelled
 * (their hooks run), and the connection closes once the last answer is flushed. */
void rpc_conn_input(rpc_conn *c, const char *data, size_t n);
void rpc_conn_input_eof(rpc_conn *c);
void rpc_conn_io_closed(rpc_conn *c);

/* Close the connection: pending outgoing requests fail with RPC_CONNECTION_CLOSED,
 * cancel hooks of open requests run, close hooks run; queued bytes are flushed when
 * `flush`. Safe to call more than once and from handlers. */
void rpc_conn_close(rpc_conn *c, int flush);
int rpc_conn_is_open(const rpc_conn *c);

/* Send a notification (params stolen, may be NULL). RPC_ECLOSED when closed. */
int rpc_conn_notify(rpc_conn *c, const char *method, json_t *params_steal);

/* Completion of an outgoing request: exactly one of result / error is non-NULL. On
 * RPC_CONNECTION_CLOSED, `error->data` is NULL. */
typedef struct rpc_error {
  int code;
  const char *message;
  const json_t *data;
} rpc_error;
typedef void (*rpc_response_fn)(rpc_conn *c, const json_t *result, const rpc_error *error,
                                void *user);

/* Send a request to the peer (params stolen, may be NULL). Returns its id (> 0) and
 * later calls `cb` exactly once; or returns a negative code (RPC_ECLOSED, RPC_EBUSY
 * past RPC_MAX_PENDING_OUTGOING, QC_ENOMEM) and never calls `cb`. */
int64_t rpc_conn_request(rpc_conn *c, const char *method, json_t *params_steal,
                         rpc_response_fn cb, void *user);
/* Give up on our request `id` (a caller that stopped waiting): its callback is never
 * called, the pending slot is freed, and an answer that still comes is dropped with a
 * debug log. QC_OK, or QC_ENOENT when `id` is not pending (answered, failed, unknown). */
int rpc_conn_forget_request(rpc_conn *c, int64_t id);
/* Our requests the peer has not answered yet. */
int rpc_conn_pending_outgoing(const rpc_conn *c);
/* Ask the peer to cancel our request `id` ($/cancelRequest on LSP framing,
 * $/cancel_request otherwise). The callback still comes with the peer's answer. */
int rpc_conn_cancel_request(rpc_conn *c, int64_t id);

/* Close hooks run once, on the loop thread, when the connection closes (after
 * outgoing requests failed and cancel hooks ran). Sessions clean up here. */
typedef void (*rpc_close_fn)(rpc_conn *c, void *user);
int rpc_conn_on_close(rpc_conn *c, rpc_close_fn fn, void *user);
void rpc_conn_remove_close_hook(rpc_conn *c, rpc_close_fn fn, void *user);

/* Cancel every open incoming request (run its hook), as shutdown does. */
void rpc_conn_cancel_all(rpc_conn *c);
/* Answer every open incoming request that has not been answered with an error; their
 * handles stay valid until the handlers finish them (the late answer is dropped). */
void rpc_conn_fail_inflight(rpc_conn *c, int code, const char *message);
/* Open incoming requests not answered yet. */
int rpc_conn_inflight(const rpc_conn *c);

uint64_t rpc_conn_id(const rpc_conn *c);            /* unique in the process, > 0 */
/* Complete messages the peer has sent (framed; valid or not). */
uint64_t rpc_conn_messages_received(const rpc_conn *c);
rpc_framing rpc_conn_framing(const rpc_conn *c);    /* DETECT until the first bytes */
void *rpc_conn_owner(const rpc_conn *c);
void *rpc_conn_io(const rpc_conn *c);
/* The `initialize` params this peer sent (clientCapabilities, clientInfo), kept for
 * later layers; NULL before. rpc_conn_set_init_params takes a new reference. */
const json_t *rpc_conn_init_params(const rpc_conn *c);
void rpc_conn_set_init_params(rpc_conn *c, const json_t *params);

/* Optional observer for the transport: called when the number of answered-or-not
 * incoming requests drops to zero (server.c uses it to finish a graceful shutdown). */
void rpc_conn_set_idle_hook(rpc_conn *c, void (*fn)(rpc_conn *c, void *user), void *user);

#endif /* QC_DAEMON_JSONRPC_H */
