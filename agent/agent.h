/* agent.h — the coding agent: Qwen3-Coder's chat format, the tool-calling loop, permissions,
 * context management, sessions in SQLite and the model backends (prefix `agent_`).
 *
 * A session is one conversation in one workspace. agent_run() takes a user prompt and runs
 * the loop on the CALLER's thread until the model answers without calling a tool, the user
 * cancels, or a budget ends:
 *
 *     render the conversation (Qwen3-Coder template, byte-identical to the model's own)
 *       → generate through the backend, streaming
 *       → parse tool calls from the stream (<tool_call><function=…><parameter=…>)
 *       → for each call: permission check → checkpoint → tools/ → result message
 *       → next model call …
 *
 * Every step is reported through the session's event callback with the shape of ACP's
 * `session/update` (agent_event_to_acp() builds that object). The conversation is
 * append-only, so the local engine reuses its KV cache turn after turn; only when the next
 * turn would not fit the context window are old tool outputs elided, then older turns
 * summarised — each time with an AGENT_EVENT_COMPACTION event, never silently.
 *
 * The order of a run's events, which protocol layers may rely on:
 *  - Within one model call, message chunks and TOOL_CALL events (status "pending") come in
 *    the order the model wrote them; each call is announced as soon as the streaming parser
 *    has read it whole, while the model may still be generating the rest of the reply.
 *    Its id (tool_call_id) is fixed then and used by every later event of the call, by
 *    the permission request, the conversation and the store.
 *  - The calls run only after the reply has ended, one at a time in the order announced:
 *    "in_progress" (then live output), then exactly one final update ("completed" or
 *    "failed"); the next call's updates start after the previous call's final update.
 *  - Every announced call gets its final update before the run goes on — when it was
 *    malformed, denied or cancelled, and when the model call failed after announcing it
 *    ("failed": nothing of that reply is run) — so no call is left pending.
 *  - STOP is the run's last event.
 *
 * How a daemon drives a session:
 *  - Open one agent_backend per model (agent_backend_open); it is shared by all sessions.
 *  - agent_session_new()/agent_session_resume() on any thread but the event loop's (a new
 *    session parses the repository for its repo map: about 2 s for qcoder's own tree in a
 *    debug build). agent_run() on a worker thread: it blocks for the whole turn; one run
 *    per session at a time (a second concurrent call returns AGENT_EBUSY). Free a session
 *    only when no run is going (cancel, wait for agent_run to return, then free).
 *  - Events arrive on the worker thread, synchronously, during agent_run; the pointers in
 *    an agent_event are valid only during the callback — copy what you keep (for example
 *    agent_event_to_acp()) and hand it to your loop thread.
 *  - In ask / auto-edit modes the permission callback is called on the worker thread and
 *    may block until the editor answers.
 *  - agent_session_cancel() from any thread: the model call stops (engine cancel flag /
 *    HTTP transfer aborted), a running tool is killed, agent_run returns
 *    AGENT_STOP_CANCELLED. A permission callback that is blocked waiting for the editor is
 *    not interrupted by the agent: the protocol layer answers it with
 *    AGENT_PERMISSION_CANCELLED (ACP clients answer pending requests with "cancelled"
 *    after session/cancel).
 *
 * Ownership: `**out` results belong to the caller and are released with the matching
 * _free/_close/_release; `char *` results and `char **errmsg` are malloc'd (free()).
 * Strings and JSON passed in are borrowed for the duration of the call unless stated.
 *
 * Depends on tools/, engine/ and common/ only; nothing here knows about sockets or JSON-RPC.
 */
#ifndef QC_AGENT_H
#define QC_AGENT_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "tools/tools.h"

/* ---- errors ---------------------------------------------------------------------- */

#define AGENT_ERR_MAP(X)                                                                     \
  X(NOMEM, "out of memory")                                                                  \
  X(ARG, "invalid argument")                                                                 \
  X(SPEC, "cannot use this model spec (expected a .gguf file, script:FILE or http(s)://URL)") \
  X(BACKEND, "the model backend failed")                                                     \
  X(SCRIPT, "the scripted test backend has no more replies")                                 \
  X(HTTP, "the remote model server returned an error")                                       \
  X(CONNECT, "cannot connect to the remote model server")                                    \
  X(TIMEOUT, "the remote model server did not answer in time")                               \
  X(CONTEXT, "the conversation does not fit the context window")                             \
  X(STORE, "the session database failed")                                                    \
  X(NOTFOUND, "no such session")                                                             \
  X(BUSY, "the session is already running a prompt")                                         \
  X(FORMAT, "invalid conversation format")                                                   \
  X(CANCELLED, "cancelled")

enum {
  AGENT_OK = 0,
  AGENT__ERR_FIRST = -400,
#define AGENT__ERR_ENUM(name, msg) AGENT_E##name,
  AGENT_ERR_MAP(AGENT__ERR_ENUM)
#undef AGENT__ERR_ENUM
};

const char *agent_strerror(int code);

/* ---- the chat format ------------------------------------------------------------- */

/* Render `{"messages": [...], "tools": [...], "add_generation_prompt": bool}` — OpenAI-style
 * messages (assistant tool_calls with `function.arguments` an object or a JSON string;
 * tool results as role "tool"), OpenAI-style tools — exactly as Qwen3-Coder's chat template
 * does (llama.cpp's models/templates/Qwen3-Coder.jinja rendered by Hugging Face's
 * apply_chat_template). *out is malloc'd, NUL-terminated, *len its length. On a malformed
 * conversation returns AGENT_EFORMAT with *errmsg saying what is wrong. */
int agent_render_conversation(const json_t *conversation, char **out, size_t *len, char **errmsg);

/* Fill-in-the-middle prompt: `<|fim_prefix|>PREFIX<|fim_suffix|>SUFFIX<|fim_middle|>`. */
char *agent_fim_prompt(const char *prefix, const char *suffix);

/* Repository-level FIM: `<|repo_name|>REPO\n`, then `<|file_sep|>PATH\nCONTENT\n` for each
 * context file (a newline is added only when CONTENT does not end with one), then
 * `<|file_sep|>PATH\n<|fim_prefix|>PREFIX<|fim_suffix|>SUFFIX<|fim_middle|>`. The model's
 * output ends at the next `<|file_sep|>` (agent_fim_stops() lists the stop strings). */
typedef struct agent_fim_file {
  const char *path;
  const char *content;
} agent_fim_file;
char *agent_fim_repo_prompt(const char *repo_name, const agent_fim_file *files, size_t n_files,
                            const char *path, const char *prefix, const char *suffix);
/* NULL-terminated list of the FIM stop strings (special tokens ending a completion). */
const char *const *agent_fim_stops(void);

/* ---- sampling ---------------------------------------------------------------------- */

typedef struct agent_sampling {
  float temperature;     /* 0 = greedy */
  float top_p;
  int top_k;             /* 0 = off */
  float min_p;
  float repeat_penalty;  /* 1 = off */
  uint64_t seed;         /* 0 = from the clock */
} agent_sampling;

/* Qwen3-Coder's generation_config.json: temperature 0.7, top_p 0.8, top_k 20,
 * repetition_penalty 1.05, min_p 0. */
void agent_sampling_default(agent_sampling *s);

/* ---- backends ---------------------------------------------------------------------- */

/* One backend per model, shared by every session that uses it:
 *   local     a GGUF file run by the engine (one eng_model; one eng_session per agent
 *             session, so each conversation keeps its own KV cache and prefix reuse)
 *   remote    an OpenAI-compatible server (vLLM, SGLang, llama-server): http(s)://HOST[:PORT][/v1]
 *   scripted  `script:FILE` — a TEST DOUBLE: FILE is a JSON array of strings, each the raw
 *             assistant output (Qwen3-Coder text, <tool_call> XML included) returned for one
 *             model call, in order, streamed in small chunks; each session replays the
 *             script from its start; when it is exhausted the run stops with an error. */
typedef struct agent_backend agent_backend;

typedef enum agent_remote_api {
  AGENT_REMOTE_CHAT,         /* /v1/chat/completions with native `tools` (server parses calls) */
  AGENT_REMOTE_COMPLETIONS,  /* /v1/completions with our rendered prompt and our parser */
} agent_remote_api;

typedef struct agent_backend_opts {
  const char *spec;             /* path.gguf | script:FILE | http(s)://URL (required) */
  agent_sampling sampling;
  int max_reply_tokens;         /* cap per model call; default 8192 */
  /* local */
  int n_threads;                /* 0 = all cores */
  uint32_t n_ctx;               /* per-session KV cache; 0 = engine default */
  const char *kernels;          /* NULL = best */
  const char *kv_cache_dir;     /* a folder where a session's KV cache is saved when the
                                   session ends, and from which a fresh session restores the
                                   saved history sharing the longest prefix with its first
                                   prompt (so a restarted daemon does not prefill the same
                                   system prompt again); NULL = no disk cache */
  uint64_t kv_cache_max_bytes;  /* size cap of that folder, oldest files deleted first;
                                   0 = AGENT_KV_CACHE_DEFAULT_BYTES */
  /* remote */
  agent_remote_api api;
  const char *model_name;       /* the request's "model"; NULL = first id of GET /v1/models */
  const char *api_key_env;      /* NULL = QCODER_API_KEY, then OPENAI_API_KEY */
  long connect_timeout_ms;      /* default 10000 */
  long read_timeout_ms;         /* silence allowed between bytes; default 300000 */
  int max_retries;              /* 429/5xx/refused; default 3 (exponential backoff) */
  long retry_base_ms;           /* first backoff; default 500 */
  uint32_t remote_ctx;          /* the server's context window for budgeting; default 32768 */
  const char *tokenizer;        /* a GGUF whose tokenizer counts tokens for a remote model
                                   (exact counts); NULL = estimate (bytes / 3, documented) */
  /* scripted (test double) */
  int script_chunk_bytes;       /* default 7 */
  int script_delay_ms;          /* pause before each chunk (tests of cancel); default 0 */
  uint32_t script_ctx;          /* context size reported by the test double; default 32768 */
} agent_backend_opts;

/* The disk KV cache's default size cap: a few long conversations of a 30B-A3B model
 * (~190 KB a token at 48 layers), many of the small ones. */
#define AGENT_KV_CACHE_DEFAULT_BYTES ((uint64_t)8 << 30)

void agent_backend_opts_init(agent_backend_opts *o);
/* Parse the spec and open the backend (a local model is loaded here; a remote is not
 * contacted until the first call). */
int agent_backend_open(const agent_backend_opts *o, agent_backend **out, char **errmsg);
void agent_backend_close(agent_backend *b);
/* "local", "remote" or "scripted". */
const char *agent_backend_kind(const agent_backend *b);
/* The spec it was opened with (borrowed). */
const char *agent_backend_spec(const agent_backend *b);

/* Raw completion of a prompt (FIM for inline completion): the text arrives through
 * `on_text` as it is produced; generation ends at a stop string, at max_tokens or when
 * `cancel` becomes nonzero. *out (malloc'd) holds the whole completion. Runs on the
 * caller's thread; many may run at once on one backend (local calls are serialised by the
 * engine). For a remote backend this is /v1/completions whatever the chat API is. */
typedef struct agent_complete_opts {
  int max_tokens;                /* default 256 */
  const char *const *stop;       /* NULL-terminated; NULL = agent_fim_stops() */
  const agent_sampling *sampling;/* NULL = the backend's */
  atomic_int *cancel;            /* may be NULL */
  int (*on_text)(void *user, const char *text, size_t len);  /* nonzero return stops */
  void *user;
} agent_complete_opts;
int agent_backend_complete(agent_backend *b, const char *prompt, const agent_complete_opts *o,
                           char **out, char **errmsg);

/* ---- sessions in SQLite ---------------------------------------------------------- */

typedef struct agent_store agent_store;

/* Open (creating) the session database; path NULL = qc_state_dir()/sessions.db. WAL mode;
 * every message is committed when complete. Safe to share between threads. */
int agent_store_open(const char *path, agent_store **out, char **errmsg);
void agent_store_close(agent_store *st);

typedef struct agent_session_info {
  char *id, *cwd, *title, *mode, *backend;
  int64_t created_ms, updated_ms;  /* Unix epoch ms */
  long n_messages;
} agent_session_info;

/* Sessions whose cwd equals `cwd` (NULL = all), most recently updated first. */
int agent_store_list(agent_store *st, const char *cwd, agent_session_info **out, size_t *n);
void agent_session_info_free(agent_session_info *v, size_t n);
int agent_store_delete(agent_store *st, const char *id);

/* ---- sessions, modes, events ----------------------------------------------------- */

typedef enum agent_mode {
  AGENT_MODE_READ_ONLY,  /* edits and commands refused (the model is told so) */
  AGENT_MODE_ASK,        /* edits and commands wait on the permission callback */
  AGENT_MODE_AUTO_EDIT,  /* edits allowed, commands ask */
  AGENT_MODE_FULL_AUTO,  /* everything allowed; commands must run sandboxed */
} agent_mode;

/* "read-only", "ask", "auto-edit", "full-auto". */
const char *agent_mode_name(agent_mode m);
int agent_mode_parse(const char *name, agent_mode *out);

/* Why a run ended; the names are ACP's StopReason values ("error" is not one: the protocol
 * layer answers the prompt with a JSON-RPC error carrying the message). */
typedef enum agent_stop {
  AGENT_STOP_END_TURN,           /* "end_turn": the model answered without calling a tool */
  AGENT_STOP_MAX_TOKENS,         /* "max_tokens": the token budget ended */
  AGENT_STOP_MAX_TURN_REQUESTS,  /* "max_turn_requests": the step budget ended */
  AGENT_STOP_REFUSAL,            /* "refusal" (reserved: not produced today) */
  AGENT_STOP_CANCELLED,          /* "cancelled" */
  AGENT_STOP_ERROR,              /* "error": the backend failed (message in the result) */
} agent_stop;
const char *agent_stop_name(agent_stop s);

typedef enum agent_event_type {
  AGENT_EVENT_MESSAGE_CHUNK,     /* agent_message_chunk: `text` */
  AGENT_EVENT_USER_MESSAGE_CHUNK,/* user_message_chunk: `text` (agent_session_replay only) */
  AGENT_EVENT_TOOL_CALL,         /* tool_call: a new call, status "pending", sent when it is
                                    parsed (the reply may still be streaming) */
  AGENT_EVENT_TOOL_CALL_UPDATE,  /* tool_call_update: only the fields that changed are set */
  AGENT_EVENT_PLAN,              /* plan: the complete list of entries */
  AGENT_EVENT_USAGE,             /* usage_update: used / size tokens */
  AGENT_EVENT_COMPACTION,        /* the context was compacted: `text` says how */
  AGENT_EVENT_STOP,              /* the run ended: `stop`, `text` = error message or NULL */
} agent_event_type;

typedef struct agent_location {
  const char *path;  /* absolute */
  int line;          /* 1-based; 0 = none */
} agent_location;

typedef struct agent_diff {
  const char *path;      /* absolute */
  const char *old_text;  /* NULL = new file */
  const char *new_text;
} agent_diff;

typedef struct agent_plan_entry {
  const char *content;
  const char *priority;  /* "high" | "medium" | "low" */
  const char *status;    /* "pending" | "in_progress" | "completed" */
} agent_plan_entry;

typedef struct agent_event {
  agent_event_type type;
  const char *session_id;
  const char *text;       /* MESSAGE_CHUNKs (complete UTF-8), COMPACTION, STOP (error) */
  size_t text_len;
  /* TOOL_CALL / TOOL_CALL_UPDATE; NULL (or has_locations 0) = unchanged */
  const char *tool_call_id;
  const char *tool_name;
  const char *title;
  const char *kind;       /* ACP ToolKind: "read", "edit", "execute", … */
  const char *status;     /* "pending", "in_progress", "completed", "failed" */
  const char *content;    /* text shown for the call (output, error, live command output) */
  const agent_diff *diff; /* an edit's diff */
  const agent_location *locations;
  size_t n_locations;
  int has_locations;
  const json_t *raw_input;   /* the arguments */
  const json_t *raw_output;  /* the tool result as JSON ({"ok","output","error","data"}) */
  /* PLAN */
  const agent_plan_entry *plan;
  size_t n_plan;
  /* USAGE */
  long used_tokens;       /* the conversation after the last model call */
  long context_size;      /* the budget's window */
  long prompt_tokens;     /* last model call: prompt tokens … */
  long reused_tokens;     /* … of which taken from the prefix cache (local) … */
  long generated_tokens;  /* … and generated */
  /* STOP */
  agent_stop stop;
} agent_event;

typedef void (*agent_event_cb)(void *user, const agent_event *ev);

/* The ACP `session/update` "update" object for an event ({"sessionUpdate": …}), a new
 * reference; NULL for STOP and COMPACTION (ACP has no stable variant for them: the protocol
 * layer answers the prompt with the stop reason and may show compaction as it likes). */
json_t *agent_event_to_acp(const agent_event *ev);

typedef enum agent_permission {
  AGENT_PERMISSION_ALLOW_ONCE,
  AGENT_PERMISSION_ALLOW_ALWAYS,   /* remembered for this tool for the session's lifetime */
  AGENT_PERMISSION_REJECT_ONCE,
  AGENT_PERMISSION_REJECT_ALWAYS,  /* remembered likewise */
  AGENT_PERMISSION_CANCELLED,      /* the user cancelled the turn */
} agent_permission;

typedef struct agent_tool_call_info {
  const char *session_id;
  const char *tool_call_id;
  const char *tool_name;
  const char *title;
  const char *kind;
  const json_t *raw_input;
  const agent_location *locations;
  size_t n_locations;
} agent_tool_call_info;

/* Called on the agent_run thread; may block until the user answers. */
typedef agent_permission (*agent_permission_cb)(void *user, const agent_tool_call_info *call);

/* Checkpoints of the working tree: one before the first tool of a run that may change
 * files (edits and commands), tool_call_id NULL; then one after each such tool, with its
 * id. Return 0 and a malloc'd id in *checkpoint_id (stored with the session), or nonzero
 * with *err (malloc'd): the failure is logged and the run goes on. After a run's first
 * checkpoint (hook or not) the agent prunes refs/qcoder/checkpoints/ of the workspace's
 * repository with tool_checkpoint_prune: only checkpoints beyond the newest 200, older than
 * 30 days AND taken before the oldest agent_session still open in this process was opened
 * go (agent/limits.h; docs/tools2.md), so an open session's restore points always stay. */
typedef int (*agent_checkpoint_cb)(void *user, const char *workspace_root, const char *session_id,
                                   const char *tool_call_id, char **checkpoint_id, char **err);

typedef struct agent_session agent_session;

typedef struct agent_session_opts {
  const char *cwd;               /* workspace root (required, an existing directory) */
  agent_backend *backend;        /* required; borrowed, must outlive the session */
  agent_mode mode;               /* default AGENT_MODE_ASK */
  agent_store *store;            /* NULL: the session is not persisted */
  const char *title;             /* NULL: the first prompt's first line */
  const tool_io *io;             /* editor fs/terminal hooks; NULL = local */
  tool_sandbox_policy sandbox;   /* default PREFER; full-auto forces REQUIRE */
  const char *test_command;      /* overrides detection for run_tests */
  int max_steps;                 /* model calls per agent_run; default 50 */
  long max_tokens;               /* generated tokens per agent_run; 0 = no limit */
  int max_reply_tokens;          /* per model call; 0 = the backend's */
  uint32_t context_size;         /* 0 = the backend's real window (tests use tiny ones) */
  int keep_tool_outputs;         /* newest tool outputs never elided; default 3 */
  const char *system_prompt;     /* replaces the built-in system prompt (tests) */
  const char *system_append;     /* appended to it (CLI --append-system-prompt) */
  int no_plan_tool;              /* do not offer the todo_write plan tool */
  const char *const *tools;      /* NULL-terminated names of the built-in tools to offer;
                                    NULL = all (a small model with a small window may do
                                    better with fewer) */
  agent_event_cb on_event;
  agent_permission_cb request_permission;  /* NULL in ask mode = every request rejected */
  agent_checkpoint_cb checkpoint;          /* NULL = the tools' own (tool_checkpoint_create:
                                              a commit under refs/qcoder/checkpoints/) */
  int no_checkpoints;            /* take none at all */
  /* Scheduling across sessions (the daemon's fair queue): called on the run thread around
   * every model call (replies and summaries). model_acquire blocks until this session may
   * use the model and returns 0, or nonzero when *cancel became set while waiting (the
   * call is then not made and the run ends cancelled); model_release follows each
   * successful acquire. NULL: no gate (the engine still serialises forward passes). */
  int (*model_acquire)(void *user, atomic_int *cancel);
  void (*model_release)(void *user);
  int no_repo_map;               /* leave the repo map out of the system prompt */
  void *user;                    /* passed to the three callbacks */
} agent_session_opts;

void agent_session_opts_init(agent_session_opts *o);

/* A new session (persisted at once when a store is given). */
int agent_session_new(const agent_session_opts *o, agent_session **out, char **errmsg);
/* Resume a stored session: the conversation is rebuilt from the store (its system prompt
 * included, so the prefix cache stays valid). o->cwd may be NULL (the stored one is used);
 * o->store is required. */
int agent_session_resume(const agent_session_opts *o, const char *session_id, agent_session **out,
                         char **errmsg);
void agent_session_free(agent_session *s);

const char *agent_session_id(const agent_session *s);
agent_mode agent_session_mode(const agent_session *s);
/* Thread-safe; applies from the next permission check (commands run sandboxed from the
 * next run on when switching to full-auto). */
void agent_session_set_mode(agent_session *s, agent_mode m);

/* A session-specific tool (e.g. an MCP server's tool offered by the editor), rendered in
 * the tools block like the built-ins (the prompt changes, so add tools before the first
 * run to keep the prefix cache). `flags` uses TOOL_F_MUTATES / TOOL_F_EXEC for permission
 * checks. The handler runs on the agent_run thread; it fills *res (output or error) and
 * should return promptly when *cancel becomes nonzero. */
typedef int (*agent_tool_handler)(void *user, const json_t *args, atomic_int *cancel, tool_result *res);
int agent_session_add_tool(agent_session *s, const char *name, const char *description,
                           const char *parameters_schema_json, tool_kind kind, unsigned flags,
                           agent_tool_handler handler, void *user, char **errmsg);

typedef struct agent_run_result {
  agent_stop stop;
  char *error;              /* malloc'd when stop == AGENT_STOP_ERROR, else NULL */
  int n_model_calls;
  int n_tool_calls;
  long prompt_tokens;       /* summed over the model calls */
  long reused_tokens;
  long generated_tokens;
} agent_run_result;
void agent_run_result_release(agent_run_result *r);

/* Run one prompt turn to its end (see the top of this file). Returns AGENT_OK with
 * res->stop set, or AGENT_EBUSY / AGENT_EARG without running. */
int agent_run(agent_session *s, const char *prompt, agent_run_result *res);

/* Thread-safe, any time; a no-op when nothing runs. */
void agent_session_cancel(agent_session *s);

/* Compact the conversation now (ACP's /compact command): old tool outputs are elided (the
 * newest keep_tool_outputs kept), then the older turns are summarised by the model, each
 * step with an AGENT_EVENT_COMPACTION event. On the caller's thread, like agent_run and
 * not at the same time (AGENT_EBUSY); agent_session_cancel() stops the summary
 * (AGENT_ECANCELLED). AGENT_OK with *report (malloc'd) saying what changed, e.g.
 * "12400 -> 3100 tokens"; AGENT_ECONTEXT with *errmsg when there is nothing to compact. */
int agent_session_compact(agent_session *s, char **report, char **errmsg);

/* Replay the conversation (after the system prompt) as events through the session's
 * callback, on the caller's thread — what ACP's session/load sends before answering: user
 * and agent message chunks, each tool call and its final update. Not while a run is going. */
void agent_session_replay(agent_session *s);

/* The conversation as OpenAI-style messages (a new reference; tool_calls arguments are
 * objects), and the exact prompt the next model call would see. */
json_t *agent_session_messages(const agent_session *s);
char *agent_session_render(agent_session *s);

#endif /* QC_AGENT_H */
