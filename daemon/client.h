/* client.h — connecting to the daemon from a qcoder command (internal to daemon/).
 *
 * Every command that needs the daemon (`status`, `stop`, later `run`, `acp`, `lsp`)
 * finds the socket the same way and connects the same way. Commands that only look
 * (`status`, `stop`) must not start a daemon; commands that need one call
 * rpc_client_connect_auto(), which starts `qcoder serve` in the background when nobody
 * answers and waits for it, as `gopls -remote=auto` does. Two clients racing to start
 * one are fine: the socket lock lets one daemon win and both connect to it.
 *
 * The connected fd is a plain blocking Unix socket speaking newline-delimited JSON-RPC.
 * rpc_client_call() does one blocking request/answer on it (for short CLI commands);
 * long-lived clients hand the fd to rpc_server_adopt_fd() and use the async core.
 */
#ifndef QC_DAEMON_CLIENT_H
#define QC_DAEMON_CLIENT_H

#include <jansson.h>
#include <sys/types.h>

#include "daemon/jsonrpc.h"

/* The socket to use: `override` when given, else qc_runtime_dir()/qcoder.sock. Malloc'd;
 * NULL when out of memory. */
char *rpc_socket_path(const char *override);

/* Connect to a daemon. QC_OK and *fd (blocking, close-on-exec); RPC_ENOT_RUNNING when
 * nothing answers at the path (no socket, or a stale one); RPC_ESOCKET for a path that
 * cannot be used (too long, permission denied), with `why` filled. */
int rpc_client_connect(const char *socket_path, int *fd, char *why, size_t why_len);

typedef struct rpc_autostart {
  const char *qcoder_bin;     /* the binary to run; NULL: this process's own executable */
  unsigned idle_timeout_s;    /* 0: RPC_AUTOSTART_IDLE_TIMEOUT_S */
  int wait_ms;                /* 0: RPC_AUTOSTART_WAIT_MS */
  const char *log_file;       /* NULL: the daemon's default (state dir) */
  /* More arguments for `qcoder serve`, NULL-terminated (at most 8), e.g. {"--model",
   * SPEC, NULL}: a daemon started by `qcoder acp --model X` has X as its default. */
  const char *const *serve_args;
} rpc_autostart;

/* Connect, starting `qcoder serve --socket PATH --idle-timeout N` in the background
 * (own session, stdio on /dev/null, no inherited fds) when nothing answers. Returns as
 * rpc_client_connect, plus RPC_ETIMEOUT when the daemon did not come up in time, and
 * RPC_ENOT_RUNNING with `why` holding what the started daemon printed before it exited.
 * `*started` (may be NULL) is 1 when this call started a daemon. The daemon is detached
 * (double fork): it is never this process's child, so no zombie is left behind. */
int rpc_client_connect_auto(const char *socket_path, const rpc_autostart *opts, int *fd, int *started,
                            char *why, size_t why_len);

/* One blocking call: send `method` (params stolen, may be NULL) with a fresh id, wait up
 * to timeout_ms for its answer (skipping notifications), and return QC_OK with *result
 * (new reference). RPC_EREMOTE when the daemon answered with an error (*err_code and
 * `why` set), RPC_ETIMEOUT, RPC_ENOT_RUNNING when the daemon closed the connection,
 * RPC_EPROTOCOL for garbage. */
int rpc_client_call(int fd, const char *method, json_t *params_steal, int timeout_ms, json_t **result,
                    int *err_code, char *why, size_t why_len);

/* Wait until no daemon holds the socket's lock and the socket is gone (after a shutdown
 * request). 1 when gone, 0 on timeout. */
int rpc_client_wait_gone(const char *socket_path, int timeout_ms);

#endif /* QC_DAEMON_CLIENT_H */
