/* mcp.h — a Model Context Protocol client for the stdio servers an editor offers in
 * session/new (internal to daemon/, prefix `acp_mcp_`).
 *
 * ACP says every agent must connect to the stdio MCP servers the client lists, so their
 * tools reach the model. One acp_mcp is one server process: started with the given
 * command, args and env in the session's directory, spoken to with newline-delimited
 * JSON-RPC on its stdin/stdout (the same framing as ACP), in the "legacy" era that the
 * npm ecosystem speaks: initialize (2025-06-18) -> notifications/initialized ->
 * tools/list (paginated) -> tools/call. Requests the server sends us are answered on the
 * spot (ping -> {}, roots/list -> the session directory, anything else -32601); its
 * notifications are read and dropped; its stderr is kept (the last few KB) for error
 * messages.
 *
 * Everything is synchronous on the caller's thread with poll() timeouts; one call at a
 * time per server (a mutex serialises callers). The session's worker thread is the only
 * caller in practice.
 *
 * Ownership: *tools and *text results are the caller's; acp_mcp_stop frees the server.
 */
#ifndef QC_DAEMON_MCP_H
#define QC_DAEMON_MCP_H

#include <jansson.h>
#include <stdatomic.h>

/* ---- limits ------------------------------------------------------------------------- */
/* initialize may need a package manager to start the server (npx): generous. */
#define ACP_MCP_START_TIMEOUT_MS 60000
/* tools/list pages and other short requests. */
#define ACP_MCP_REQUEST_TIMEOUT_MS 30000
/* One tools/call: long-running tools exist (builds, searches); cancel ends it earlier. */
#define ACP_MCP_CALL_TIMEOUT_MS (10 * 60 * 1000)
/* tools/list pages followed (a server that keeps handing out cursors is broken). */
#define ACP_MCP_MAX_PAGES 50
/* Tools taken from one server: the model's tool block must stay readable. */
#define ACP_MCP_MAX_TOOLS 128
/* One message from a server. */
#define ACP_MCP_MAX_MESSAGE (16u << 20)
/* stderr kept for error messages. */
#define ACP_MCP_STDERR_KEEP 4096
/* After closing its stdin, how long a server gets to exit before SIGTERM, then SIGKILL. */
#define ACP_MCP_STOP_GRACE_MS 500

typedef struct acp_mcp acp_mcp;

typedef struct acp_mcp_spec {
  const char *name;     /* as the client named it */
  const char *command;  /* absolute, or looked up in PATH */
  const json_t *args;   /* array of strings (may be NULL) */
  const json_t *env;    /* array of {name, value} (may be NULL), added to our environment */
  const char *cwd;      /* the session directory */
} acp_mcp_spec;

/* Start the server and do the handshake. QC_OK, or an error with *errmsg (malloc'd)
 * naming the server and what failed (including its stderr). */
int acp_mcp_start(const acp_mcp_spec *spec, acp_mcp **out, char **errmsg);
/* All its tools ([{name, description?, inputSchema, annotations?}], new reference). */
int acp_mcp_list_tools(acp_mcp *m, json_t **tools, char **errmsg);
/* Call a tool. QC_OK with *is_error and *text (malloc'd: the text content blocks joined
 * with newlines, other blocks described; structuredContent when there is no text), or an
 * error code with *errmsg (protocol failure, timeout, cancelled). */
int acp_mcp_call_tool(acp_mcp *m, const char *tool, const json_t *args, atomic_int *cancel, int *is_error,
                      char **text, char **errmsg);
const char *acp_mcp_name(const acp_mcp *m);
/* Close stdin, wait a moment, then SIGTERM/SIGKILL the process group; free. NULL-safe. */
void acp_mcp_stop(acp_mcp *m);

#endif /* QC_DAEMON_MCP_H */
