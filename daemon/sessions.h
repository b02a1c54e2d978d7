/* sessions.h — the daemon's session service: agent sessions behind ACP (internal to
 * daemon/, prefix `acp_`).
 *
 * Every client of the daemon — an editor through `qcoder acp`, `qcoder run`, `qcoder
 * fix-tests`, the `qcoder lsp` process — reaches the agent through this service, over
 * ACP methods on its connection (acp.c parses them and calls in here). There is one
 * agent path.
 *
 * The model of it:
 *
 *   backends   opened once per model spec and shared by every session using that spec,
 *              refcounted; closed when the last session lets go (the daemon's default
 *              model stays open once loaded). Each has a fair queue (acp_fairq): every
 *              model call of every session takes a turn, first come first served, so
 *              one long session cannot starve the others; the engine still serialises
 *              forward passes itself.
 *   sessions   keyed by id, each bound to the connection that created or loaded it. A
 *              session is driven by at most one worker thread at a time (setup, a prompt
 *              turn, a slash command); the loop thread owns the table and every field
 *              but the worker's own.
 *   events     agent events arrive on the worker, are copied with agent_event_to_acp()
 *              and sent as `session/update` notifications from the loop thread
 *              (rpc_server_post_notify: ordered, dropped if the client has gone).
 *   requests   the worker asks the client — session/request_permission, fs/…,
 *              terminal/… — and blocks until it answers, the turn is cancelled (then a
 *              pending permission counts as "cancelled"), the connection closes or the
 *              service stops. A slow client only ever stalls its own session.
 *   cleanup    when a connection closes, its sessions are cancelled and freed once their
 *              worker is done (MCP servers stopped, backend released).
 *
 * Threads: every function here runs on the loop thread, except acp_sessions_shutdown /
 * acp_sessions_free (after the loop has stopped) and the acp_fairq functions (any).
 * Request handlers finish their rpc_req exactly once, now or later (jsonrpc.h).
 */
#ifndef QC_DAEMON_SESSIONS_H
#define QC_DAEMON_SESSIONS_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "agent/agent.h"
#include "daemon/server.h"

/* ---- limits, each with its reason --------------------------------------------------- */

/* A prompt's text after its content blocks are joined: far above any hand-written
 * prompt plus a few embedded files, far below what would crowd the context window. */
#define ACP_MAX_PROMPT_BYTES (4u << 20)
/* Sessions one daemon keeps in memory; each holds a KV cache (local model) or at least a
 * workspace and a repo map. */
#define ACP_MAX_SESSIONS 256
/* MCP servers one session may start (each is a process). */
#define ACP_MAX_MCP_SERVERS 16
/* How long a client gets to answer fs/… and terminal/{create,output,kill,release}: an
 * editor answers these in milliseconds; a client that takes this long is stuck, and the
 * tool call fails instead of hanging the turn. Permission requests wait for the user
 * (no limit; cancel ends the wait). */
#define ACP_CLIENT_CALL_TIMEOUT_MS 60000
/* Extra time a terminal command gets beyond its own timeout before it is killed. */
#define ACP_TERMINAL_GRACE_MS 5000
/* Bytes of a command's output asked of the editor's terminal (terminal/create
 * outputByteLimit): the tool's own output cap is smaller still. */
#define ACP_TERMINAL_OUTPUT_LIMIT (1u << 20)
/* Sessions per page of session/list. */
#define ACP_LIST_PAGE 100
/* How often a waiter in the fair queue looks at its cancel flag. */
#define ACP_FAIRQ_POLL_MS 100

/* ACP's "resource not found": an unknown session id (the SDK treats it as "already
 * closed" for session/close). */
#define ACP_RESOURCE_NOT_FOUND -32002

/* ---- the fair queue (FIFO across sessions, per backend) ----------------------------- */

typedef struct acp_fairq_waiter {
  struct acp_fairq_waiter *next;
  uint64_t ticket;
} acp_fairq_waiter;

typedef struct acp_fairq {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  acp_fairq_waiter *head, *tail; /* head holds the model; the rest wait in order */
  uint64_t next_ticket;
  uint64_t served;               /* turns granted, for status and tests */
} acp_fairq;

void acp_fairq_init(acp_fairq *q);
void acp_fairq_release_all(acp_fairq *q); /* destroy; nobody may be queued */
/* Wait for our turn: 0 when it is ours (release it with acp_fairq_leave), 1 when *cancel
 * became nonzero while waiting (we left the queue). `w` is the caller's storage, valid
 * until leave. `ticket` (may be NULL) gets the place in line (tests check order). */
int acp_fairq_enter(acp_fairq *q, acp_fairq_waiter *w, atomic_int *cancel);
void acp_fairq_leave(acp_fairq *q, acp_fairq_waiter *w);
/* Wake every waiter so it looks at its cancel flag now. */
void acp_fairq_kick(acp_fairq *q);
/* Waiters (including the holder); turns granted so far. */
int acp_fairq_length(acp_fairq *q);
uint64_t acp_fairq_served(acp_fairq *q);

/* ---- the service -------------------------------------------------------------------- */

/* The ACP face (acp.c): set the capabilities and register every ACP method and the
 * `_qcoder/configure` and `_qcoder/sessions` extensions. One line in serve_modules[]. */
int acp_register(rpc_server *srv);

/* Create the service for `srv` (one per process) and register the methods it serves
 * (acp.c calls this from acp_register). */
int acp_sessions_init(rpc_server *srv);
/* After rpc_server_run() returned: cancel everything, answer waits, join every worker. */
void acp_sessions_shutdown(void);
/* After rpc_server_free(): free sessions, backends and the store. */
void acp_sessions_free(void);
/* The daemon's default model spec (`qcoder serve --model SPEC`); copied. Before init. */
void acp_sessions_set_default_model(const char *spec);

/* What a session/new, session/load or session/resume asks for (acp.c validates). */
typedef enum { ACP_OPEN_NEW, ACP_OPEN_LOAD, ACP_OPEN_RESUME } acp_open_kind;

typedef struct acp_open_params {
  acp_open_kind kind;
  const char *session_id;     /* load/resume */
  const char *cwd;            /* absolute, existing (checked by acp.c) */
  const json_t *mcp_servers;  /* array of McpServer (may be NULL) */
  /* _meta.qcoder */
  const char *model;          /* NULL: the connection's default, then the daemon's */
  int mode;                   /* agent_mode, or -1: ask for new sessions, stored for others */
  int max_steps;              /* 0: the agent's default */
  long max_tokens;            /* 0: no limit */
  const char *test_command;   /* NULL: detected */
  int sandbox;                /* tool_sandbox_policy, or -1: prefer */
} acp_open_params;

/* Each answers `req` (now or from a worker). */
void acp_session_open(rpc_req *req, const acp_open_params *p);
/* A prompt: `text` is the joined content blocks (copied). Slash commands are recognised
 * here (/compact, /checkpoint, /undo, /test). */
void acp_session_prompt(rpc_req *req, const char *session_id, const char *text);
void acp_session_set_mode(rpc_req *req, const char *session_id, agent_mode mode);
void acp_session_close(rpc_req *req, const char *session_id);
void acp_session_list(rpc_req *req, const char *cwd, const char *cursor);
/* session/cancel (a notification): 0 when a session of this connection was found. */
int acp_session_cancel(rpc_conn *c, const char *session_id);
/* _qcoder/configure: the connection's default model (NULL clears). */
int acp_conn_set_model(rpc_conn *c, const char *model);
/* _qcoder/sessions: what lives in memory, for status and tests (new reference). */
json_t *acp_sessions_snapshot(void);

/* The modes as ACP `modes` ({currentModeId, availableModes}) (new reference). */
json_t *acp_modes_json(agent_mode current);

#endif /* QC_DAEMON_SESSIONS_H */
