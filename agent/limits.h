/* limits.h — internal: every size, cap and timeout of the agent, each with its reason
 * (SQLite's sqliteLimit.h idea). Change them here and nowhere else. */
#ifndef QC_AGENT_LIMITS_H
#define QC_AGENT_LIMITS_H

enum {
  /* ---- the tool-call parser ---- */
  /* One call's text. A whole-file write is the largest legitimate call; 1 MiB is far above
   * what a model writes in one reply (max_reply_tokens) and keeps memory bounded. */
  AGENT__TCP_MAX_CALL_BYTES = 1 << 20,
  /* Function and parameter names: identifiers, never paragraphs. */
  AGENT__TCP_MAX_NAME = 128,
  /* Parameters in one call: tool schemas have a handful. */
  AGENT__TCP_MAX_PARAMS = 64,
  /* Whitespace looked through after a closing tag to find the next structural tag. */
  AGENT__TCP_MAX_WS_LOOKAHEAD = 256,
  /* Calls in one reply: the ones beyond this are not run (each is reported as an error). */
  AGENT__TCP_MAX_CALLS = 64,
  /* Nesting accepted by the Python-literal reader for object/array values. */
  AGENT__TCP_MAX_DEPTH = 64,
  /* Raw text kept with a call for error messages. */
  AGENT__TCP_RAW_EXCERPT = 2048,
  /* Input is processed in slices so prose never piles up in the parser's buffer. */
  AGENT__TCP_FEED_SLICE = 64 * 1024,

  /* ---- the loop ---- */
  AGENT__DEFAULT_MAX_STEPS = 50,          /* model calls per run: long tasks fit, loops end */
  AGENT__PROJECT_DOC_MAX = 16 * 1024,     /* AGENTS.md / QWEN.md bytes in the system prompt */
  AGENT__REPOMAP_TOKENS = 1024,           /* repo map budget in the system prompt */
  AGENT__LIVE_OUTPUT_TAIL = 8 * 1024,     /* command output shown live to the editor */
  AGENT__LIVE_OUTPUT_MS = 250,            /* at most one live-output update per 250 ms */
  AGENT__TOOL_TEXT_MAX = 256 * 1024,      /* a tool result as the model reads it */
  AGENT__EXTRA_TOOLS_MAX = 256,           /* session tools (MCP servers offer many) */
  /* Checkpoint pruning (after a run's first checkpoint; the rule is in loop.c). A
   * checkpoint goes only when it is beyond the newest KEEP of its repository AND older
   * than MAX_AGE_DAYS AND older than every session open in this process (their /undo
   * walks back through their own checkpoints). 200 is far more steps than anyone undoes;
   * a month outlives any undo worth doing, and the refs stay bounded by the activity of a
   * month. The objects go at the next `git gc`. */
  AGENT__CHECKPOINT_KEEP = 200,
  AGENT__CHECKPOINT_MAX_AGE_DAYS = 30,

  /* ---- the context ---- */
  AGENT__KEEP_TOOL_OUTPUTS = 3,           /* newest tool outputs never elided */
  AGENT__ELIDE_MIN_BYTES = 200,           /* smaller outputs are not worth a stub */
  AGENT__SUMMARY_MSG_MAX = 2000,          /* bytes of one message in a summarisation transcript */
  AGENT__SUMMARY_MAX_TOKENS = 2048,       /* the summary's own length */

  /* ---- the local backend's KV cache on disk ---- */
  /* Histories shorter than this are not saved or restored: prefilling a few hundred tokens
   * costs less than finding, reading and checking a file. */
  AGENT__KV_DISK_MIN_TOKENS = 256,
  /* Files looked at in the cache folder per scan (a folder filled by hand is not read
   * without end). */
  AGENT__KV_DISK_MAX_FILES = 1024,
  /* A temporary file of a save older than this is left from a crash: deleted. */
  AGENT__KV_DISK_STALE_TMP_S = 3600,

  /* ---- the remote backend ---- */
  AGENT__REMOTE_ERRBODY_MAX = 8 * 1024,   /* error response kept for the message */
  AGENT__REMOTE_LINE_MAX = 16 << 20,      /* one SSE line (a chunk of JSON) */
  AGENT__REMOTE_BODY_MAX = 32 << 20,      /* a non-streamed JSON answer */
  AGENT__REMOTE_POLL_MS = 50,             /* cancel / idle-timeout granularity */
  AGENT__REMOTE_BACKOFF_MAX_MS = 30000,   /* longest wait between attempts */
  AGENT__REMOTE_RETRY_AFTER_MAX_S = 60,   /* a server asking for longer is not waited for */
  AGENT__REMOTE_MAX_NATIVE_CALLS = 64,    /* tool_calls indexes accepted from a server */
  AGENT__REMOTE_NATIVE_ARGS_MAX = 4 << 20,/* one native call's arguments */

  /* ---- the scripted test double and the store ---- */
  AGENT__SCRIPT_MAX_BYTES = 64 << 20,     /* a test fixture, not a corpus */
  AGENT__STORE_BUSY_MS = 5000,            /* another process holding the write lock */
};

#endif
