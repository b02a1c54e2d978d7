/* tools.h — the tools the agent acts with, confined to a workspace (prefix `tool_`).
 *
 * A registry of tools, each with a name, a description written for the model, a JSON
 * schema for its arguments, an ACP tool kind and a handler. Calls go through tool_call(),
 * which validates the arguments against the schema before the handler runs, so handlers
 * see well-typed input; every failure becomes a result the model can read, never a crash.
 *
 * Promises (the model's output is untrusted input):
 *  - Every path resolves beneath the workspace root (openat2 RESOLVE_BENEATH, symlinks
 *    followed only while they stay inside). `..`, absolute paths elsewhere, symlinks that
 *    lead out, /proc magic links and prefix-siblings (/ws vs /ws-evil) are refused.
 *  - Writes are atomic (temp file in the same directory, fsync, rename, fsync of the
 *    directory), keep the file mode, and never touch .git internals or qcoder's own
 *    state and runtime directories.
 *  - Commands (run_command, run_tests) run with a timeout, in a fresh process group that
 *    is killed on timeout or cancel, with an allowlisted environment, and inside the
 *    sandbox described at tool_sandbox_policy.
 *  - Outputs are capped; a cut is marked in the text.
 *
 * The sandbox (bubblewrap, when it works here; probed once per process):
 *  Promises: the workspace is the only writable place besides a private /tmp (and, for
 *  run_tests, a private results directory); the rest of the filesystem is read-only;
 *  .git/hooks, .git/config (also of the resolved gitdir) and core.hooksPath are
 *  read-only; there is no network at all — a new network namespace with only loopback,
 *  so no DNS, no outside hosts and no services on the host's 127.0.0.1; qcoder's runtime
 *  and state directories (the daemon socket), $XDG_RUNTIME_DIR, /run (docker, D-Bus
 *  sockets; only its socket directories where PATH uses /run) and the usual credential
 *  stores (~/.ssh, ~/.gnupg, ~/.aws, ~/.docker, ~/.config/gh, ~/.kube, ~/.netrc,
 *  ~/.git-credentials, ~/.pgpass) are hidden; the
 *  environment is an allowlist with no credentials; all capabilities are dropped; new
 *  PID, IPC and UTS namespaces; every process of the command dies when it ends, times
 *  out or is cancelled (PID namespace, --die-with-parent).
 *  Does not: limit CPU time, memory, disk use or the number of processes inside the
 *  workspace; hide other readable files (source trees, /etc, the user's home apart from
 *  the stores above); filter system calls (no seccomp filter); stop a command from
 *  changing or deleting anything in the workspace (checkpoints are the remedy).
 *  Without bubblewrap: TOOL_SANDBOX_REQUIRE refuses commands (TOOL_ESANDBOX);
 *  TOOL_SANDBOX_PREFER runs them with the same environment allowlist, process group and
 *  timeout, and a warning in the result; a process that calls setsid() then escapes the
 *  group kill.
 *
 * Depends on common/ and system libraries only (libgit2, tree-sitter, PCRE2); nothing
 * here knows about the engine, the agent or sockets.
 *
 * Ownership: a tool_result owns its strings and its `data` reference until
 * tool_result_release(). Workspaces are opened and closed by their owner; a workspace may
 * be used by one call at a time.
 */
#ifndef QC_TOOLS_H
#define QC_TOOLS_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>

/* ---- errors ---------------------------------------------------------------------- */

#define TOOL_ERR_MAP(X)                                                           \
  X(NOMEM, "out of memory")                                                       \
  X(UNKNOWN, "no such tool")                                                      \
  X(ARGS, "invalid arguments")                                                    \
  X(ESCAPE, "path is outside the workspace")                                      \
  X(DENIED, "refused by policy")                                                  \
  X(NOENT, "no such file or directory")                                           \
  X(EXISTS, "already exists")                                                     \
  X(STALE, "the file changed on disk since it was last read")                     \
  X(TOOBIG, "too large")                                                          \
  X(IO, "input/output error")                                                     \
  X(TIMEOUT, "timed out")                                                         \
  X(CANCELLED, "cancelled")                                                       \
  X(SANDBOX, "no sandbox is available")                                           \
  X(NOTREPO, "the workspace is not a git repository")                             \
  X(FAILED, "the tool failed")

enum {
  TOOL_OK = 0,
  TOOL__ERR_FIRST = -300,
#define TOOL__ERR_ENUM(name, msg) TOOL_E##name,
  TOOL_ERR_MAP(TOOL__ERR_ENUM)
#undef TOOL__ERR_ENUM
};

const char *tool_strerror(int code);

/* ---- kinds (the ACP ToolKind values) --------------------------------------------- */

typedef enum tool_kind {
  TOOL_KIND_READ,
  TOOL_KIND_EDIT,
  TOOL_KIND_DELETE,
  TOOL_KIND_MOVE,
  TOOL_KIND_SEARCH,
  TOOL_KIND_EXECUTE,
  TOOL_KIND_THINK,
  TOOL_KIND_FETCH,
  TOOL_KIND_OTHER,
} tool_kind;

/* "read", "edit", … as ACP spells them. */
const char *tool_kind_name(tool_kind k);

/* ---- workspaces ------------------------------------------------------------------ */

typedef enum tool_sandbox_policy {
  TOOL_SANDBOX_REQUIRE,  /* commands refused when bubblewrap is missing (full-auto, CI) */
  TOOL_SANDBOX_PREFER,   /* sandbox when possible, else run with a loud warning */
  TOOL_SANDBOX_OFF,      /* never sandbox (explicit user choice) */
} tool_sandbox_policy;

/* Result of a command, whether run by qcoder or by the editor's terminal. */
typedef struct tool_exec_result {
  int exit_code;         /* -1 when killed by a signal */
  int signal;            /* 0 when it exited */
  int timed_out;
  char *output;          /* combined stdout+stderr, capped head+tail (malloc'd) */
  int truncated;
} tool_exec_result;

/* Optional redirection of file I/O and commands to an editor (ACP fs/... and terminal/... methods):
 * the editor sees its unsaved buffers and keeps its own undo. Any hook may be NULL.
 * Hooks are called on the tool's thread and may block until the editor answers; they
 * return 0 on success, else nonzero with *err set (malloc'd). */
typedef struct tool_io {
  int (*read_text_file)(void *user, const char *abs_path, char **content, char **err);
  int (*write_text_file)(void *user, const char *abs_path, const char *content, char **err);
  int (*run_command)(void *user, const char *command, const char *abs_cwd, int timeout_s,
                     atomic_int *cancel, tool_exec_result *res, char **err);
  void *user;
} tool_io;

typedef struct tool_ws_opts {
  tool_sandbox_policy sandbox;
  const char *state_dir;     /* refused as a write target; default qc_state_dir() */
  const char *runtime_dir;   /* hidden from sandboxed commands; default qc_runtime_dir() */
  const char *test_command;  /* overrides .qcoder/config.json and detection (fix-tests) */
  const tool_io *io;         /* NULL: everything local */
  /* edit_file and write_file over an existing file normally require that the agent read
   * (or wrote) the file in this workspace first, and refuse when it changed on disk since.
   * Nonzero: a file never read may be edited (the staleness check still applies to files
   * that were read). For one-shot use such as `qcoder tool`, where nothing was read. */
  int edit_without_read;
} tool_ws_opts;

typedef struct tool_ws tool_ws;

/* Open a workspace at `root` (an existing directory; made absolute and canonical).
 * On failure *errmsg (malloc'd) says why. */
int tool_ws_open(const char *root, const tool_ws_opts *opts, tool_ws **out, char **errmsg);
void tool_ws_close(tool_ws *ws);
const char *tool_ws_root(const tool_ws *ws);

/* ---- results --------------------------------------------------------------------- */

/* `output` is what the model reads on success; `error` what it reads on failure (both
 * malloc'd; the unused one may be NULL). `data` is structured detail for editors, by
 * convention:
 *   "locations": [{"path": ABS, "line": N}]            files touched or found (1-based)
 *   "diff":      {"path": ABS, "oldText": S|null, "newText": S}   an edit (ACP shape)
 *   "unified":   "--- a/x\n+++ b/x\n@@ …"              the same edit as a unified diff
 *   "syntax_errors": [{"line": N, "column": N, "message": S}]   new parse errors
 *   "exit":      {"code": N, "signal": N, "timed_out": B}
 *   "tests":     {"summary": {…}, "tests": [{"name","status","file","output"}]}
 */
typedef struct tool_result {
  int ok;
  char *output;
  char *error;
  json_t *data;
} tool_result;

void tool_result_release(tool_result *r);
/* {"ok":…, "output":…, "error":…, "data":…} — what `qcoder tool --json` prints. */
json_t *tool_result_to_json(const tool_result *r);

/* ---- the registry ---------------------------------------------------------------- */

enum {
  TOOL_F_MUTATES = 1u << 0,   /* may change files (checkpoint first; needs approval in ask mode) */
  TOOL_F_EXEC = 1u << 1,      /* runs commands (needs approval in ask mode) */
  TOOL_F_INTERNAL = 1u << 2,  /* not offered to the model */
  TOOL_F_GIT = 1u << 3,       /* needs a git repository */
};

typedef struct tool_call_ctx tool_call_ctx;

typedef struct tool_def {
  const char *name;
  const char *description;  /* for the model */
  const char *schema;       /* JSON schema of the arguments (an object schema) */
  tool_kind kind;
  unsigned flags;
  /* Fill *res; return TOOL_OK or a TOOL_E* code (res->error then explains it). */
  int (*handler)(tool_call_ctx *ctx, const json_t *args, tool_result *res);
} tool_def;

size_t tool_count(void);
const tool_def *tool_at(size_t i);
const tool_def *tool_find(const char *name);
/* The parsed schema of a tool (borrowed, cached). */
const json_t *tool_schema(const tool_def *t);
/* OpenAI-style [{"type":"function","function":{"name","description","parameters"}}] of
 * the tools offered to the model (new reference). */
json_t *tool_openai_schemas(void);

/* Check `args` against a tool's schema: types, required, unknown keys, enum, bounds.
 * On failure *errmsg (malloc'd) names the offending field. */
int tool_validate_args(const tool_def *t, const json_t *args, char **errmsg);

/* ---- calling --------------------------------------------------------------------- */

typedef struct tool_call_opts {
  atomic_int *cancel;          /* nonzero: stop (commands are killed); may be NULL */
  /* Live output of long tools (commands): called on the tool's thread. May be NULL. */
  void (*on_output)(void *user, const char *chunk, size_t len);
  void *user;
} tool_call_opts;

/* Validate and run one tool. Always fills *res (res->ok says whether the tool succeeded)
 * and returns TOOL_OK or the failure's code. */
int tool_call(tool_ws *ws, const char *name, const json_t *args, const tool_call_opts *opts,
              tool_result *res);

/* Accessors for handlers. */
tool_ws *tool_ctx_ws(tool_call_ctx *ctx);
int tool_ctx_cancelled(const tool_call_ctx *ctx);

/* ---- test runs (run_tests; `qcoder fix-tests`) ----------------------------------- */

typedef struct tool_tests_opts {
  /* The test command (/bin/sh -c, in the workspace root, in the sandbox). NULL: the
   * workspace's test_command, else "test_command" of .qcoder/config.json, else detected
   * from the project files. `{filter}` in it becomes the shell-quoted filter ('' when
   * none) and `{junit}` a path where the runner may write JUnit XML. */
  const char *command;
  const char *filter;    /* NULL: all tests; passed to the runner, else applied to results */
  int timeout_s;         /* 0: 600 (or "test_timeout_s" of .qcoder/config.json) */
  atomic_int *cancel;    /* may be NULL */
  void (*on_output)(void *user, const char *chunk, size_t len);  /* raw output; may be NULL */
  void *user;
} tool_tests_opts;

/* Run the tests and read per-test results. On TOOL_OK (the command ran, whatever the
 * outcome) *results is a new reference:
 *   {"summary": {"runner", "command", "format", "total", "passed", "failed", "skipped",
 *                "errors", "exit_code", "signal", "timed_out", "sandboxed", "filter",
 *                "filtered_by", "output" (capped head+tail), "warning"?},
 *    "tests": [{"name", "status": "passed"|"failed"|"skipped"|"error", "suite"?,
 *               "file"?, "duration_s"?, "output"? (capped)}]}
 * `name` is what the runner calls the test (a pytest node id, a go test name with its
 * package in `suite`, a cargo test path, a ctest name), stable across runs. Otherwise
 * TOOL_ENOENT (no test command), TOOL_ESANDBOX, TOOL_ECANCELLED, … with *errmsg. */
int tool_tests_run(tool_ws *ws, const tool_tests_opts *opts, json_t **results, char **errmsg);

/* Per-test results from captured output: format is "junit", "ctest", "pytest", "go"
 * (go test -json), "cargo", "node" (node --test spec reporter) or "tap" (also node's TAP),
 * or NULL to try them all and keep the one that finds most tests. Returns the "tests"
 * array above (new reference, empty when nothing was recognised); *detected (may be
 * NULL) receives the format used or NULL. Never fails on malformed input. */
json_t *tool_tests_parse(const char *format, const char *text, size_t len, const char **detected);

/* The test command detected from the project's files (malloc'd), with *runner set to
 * "ctest", "make", "go", "cargo", "pytest" or "npm"; NULL when none. */
char *tool_tests_detect(tool_ws *ws, const char **runner);
/* ---- code intelligence and git ----------------------------------------------------
 * (tree-sitter and libgit2; tools code_outline, find_symbol, git_status, git_diff,
 * git_log, git_blame, git_show are in the registry like the others.) */

/* Syntax check of a source file after a write: the ERROR/MISSING nodes of new_text that
 * were not already in old_text (old_text NULL for a new file). "Not already there" is by
 * (message, trimmed source line) counted as a multiset, so errors an edit merely moved are
 * not reported. *errors is a new array of {"line","column","message","context"} (1-based
 * line and byte column; empty when clean, at most 20), or NULL when no grammar applies to
 * the path (or the text is too large to parse). Returns TOOL_OK or TOOL_ENOMEM. */
int tool_syntax_check(const char *path, const char *old_text, size_t old_len,
                      const char *new_text, size_t new_len, json_t **errors);

/* Checkpoints: snapshots of the workspace's files as commits under
 * refs/qcoder/checkpoints/<id> of its repository (or of a shadow repository under the
 * state directory when the workspace is not in one), taken without touching HEAD, the
 * index or any file. They cover tracked files and untracked files that are not ignored,
 * with modes and symlinks; restore makes exactly those equal the checkpoint again (files
 * created since are removed, ignored files and .git are never touched). Ids look like
 * "20261125T011013.042Z-1a2b3c4d"; functions taking an id accept a unique prefix, the commit
 * hash (7+ hex digits) or "latest". Each returns TOOL_OK or a TOOL_E* code with *errmsg
 * (malloc'd). */
int tool_checkpoint_create(tool_ws *ws, const char *message, char **id, char **errmsg);
/* [{"id","commit","time","time_ms","message"}], newest first (new reference). */
int tool_checkpoint_list(tool_ws *ws, json_t **list, char **errmsg);
/* Unified patch from the checkpoint to the files as they are now (malloc'd), and
 * {"files_changed","insertions","deletions"} when stats is not NULL. */
int tool_checkpoint_diff(tool_ws *ws, const char *id, char **patch, json_t **stats,
                         char **errmsg);
/* The full id a user's id (prefix, commit hash, "latest") names (malloc'd). */
int tool_checkpoint_resolve(tool_ws *ws, const char *id, char **full_id, char **errmsg);
/* Forget old checkpoints: all but the newest `keep` that are older than `older_than_s`
 * seconds lose their ref (the objects go at the next `git gc`). *removed counts them. */
int tool_checkpoint_prune(tool_ws *ws, size_t keep, int64_t older_than_s, size_t *removed,
                          char **errmsg);
/* *summary: {"restored","removed","unchanged","errors":[{"path","error"}]}. */
int tool_checkpoint_restore(tool_ws *ws, const char *id, json_t **summary, char **errmsg);

/* Commit the current changes to a new branch, as `git switch -c BRANCH && git add -A &&
 * git commit -m MESSAGE` would: the commit holds every tracked and untracked-not-ignored
 * file of the working tree, its parent is HEAD (none on an unborn branch), the author is
 * user.name/user.email from git config or "qcoder <qcoder@localhost>", HEAD moves to the
 * new branch and the index is set to the commit; files are not touched. No hooks run
 * (libgit2 has none). TOOL_EEXISTS when the branch exists, TOOL_ENOTREPO outside a
 * repository. *commit: the new commit's hex id (malloc'd). */
int tool_git_commit_branch(tool_ws *ws, const char *branch, const char *message, char **commit,
                           char **errmsg);

/* Repo map (Aider's idea): the definitions of a repository ranked by how much the rest of
 * it refers to them — PageRank over the graph "file A refers to an identifier defined in
 * file B", personalised toward focus files — rendered as file paths followed by the
 * signature lines of their top definitions, within a token budget. Build it once per
 * workspace and call update() when files may have changed: only files whose size or
 * mtime changed are parsed again. Not thread-safe: one call at a time per map. */
typedef struct tool_repomap tool_repomap;
/* Tokens in text[0..len); NULL means len/4 (rounded up). */
typedef size_t (*tool_token_count_fn)(void *user, const char *text, size_t len);

typedef struct tool_repomap_stats {
  size_t files;          /* source files in the map */
  size_t definitions;    /* definition tags */
  size_t references;     /* reference tags */
  size_t parsed_last;    /* files parsed by the last update (or create) */
  size_t parsed_total;   /* files parsed since create */
  double last_update_ms; /* wall time of the last update */
} tool_repomap_stats;

/* Scan and parse the workspace rooted at `root` (an existing directory). */
int tool_repomap_create(const char *root, tool_repomap **out, char **errmsg);
int tool_repomap_update(tool_repomap *m, char **errmsg);
/* The map text (malloc'd; "" for an empty repository). `focus`: workspace-relative paths
 * of files in the conversation (may be NULL); budget 0 means 1024 tokens. */
char *tool_repomap_render(tool_repomap *m, const char *const *focus, size_t nfocus,
                          size_t budget, tool_token_count_fn count, void *user);
void tool_repomap_get_stats(const tool_repomap *m, tool_repomap_stats *st);
void tool_repomap_free(tool_repomap *m);

#endif /* QC_TOOLS_H */
