/* internal.h — what the files of tools/ share (prefix `tool__`); not a public header.
 *
 * The pieces every tool is built from:
 *
 *  - The workspace (`struct tool_ws`): a directory fd on the root held for the workspace's
 *    life, the root's canonical path, the policy (sandbox, denied directories), the git
 *    repository the root lives in (for ignore rules and git tools) and the table of content
 *    hashes of files the agent has read or written (for edit staleness).
 *
 *  - Path resolution. A path from the model is resolved in two steps:
 *      1. tool__resolve() walks it one component at a time from the root fd with
 *         openat(O_PATH|O_NOFOLLOW), reading each symlink itself and splicing its target
 *         into the rest of the walk. `..` pops one canonical component (refused at the
 *         root); an absolute symlink target is accepted only when it names a place under
 *         the root. The result is the canonical path relative to the root — no symlinks,
 *         no `.`/`..` — which is what policy checks (.git, state dirs) look at, so an alias
 *         cannot sneak a write past them.
 *      2. tool__open_beneath() opens a canonical path with openat2(RESOLVE_BENEATH |
 *         RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS) from the root fd: the kernel checks
 *         that nothing was swapped for a symlink or moved out between step 1 and the open.
 *         Where openat2 is missing (ENOSYS: kernels before 5.6, some seccomp profiles) the
 *         fallback opens the canonical path component by component with O_NOFOLLOW, so a
 *         symlink planted in a race fails with ELOOP instead of being followed.
 *    Magic links (/proc/self/fd/N, /proc/self/root) are never followed: the walk reads link
 *    text and interprets it itself, and the openat2 step forbids them.
 *
 *  - Atomic writes (tool__write_atomic): temp file `.NAME.qcoder-PID-RAND.tmp` created with
 *    O_CREAT|O_EXCL|O_NOFOLLOW in the target's directory, written, fsync'd, renamed over the
 *    target, directory fsync'd. Temp files of dead writers (same naming pattern, PID not
 *    alive) in that directory are removed by the next write there.
 *
 *  - Handlers: `int handler(tool_call_ctx *ctx, const json_t *args, tool_result *res)`.
 *    Arguments have been validated against the tool's schema, so a required string is a
 *    string. A handler fills res->output and returns TOOL_OK (tool__ok*), or fills
 *    res->error and returns a TOOL_E* code (tool__fail*). tool_call() sets res->ok.
 *
 *  - The registry is a NULL-terminated list of per-file tool arrays (registry.c); each
 *    array ends with an all-zero entry. A new tools file adds one `extern` below and one
 *    line to that list.
 */
#ifndef QC_TOOLS_INTERNAL_H
#define QC_TOOLS_INTERNAL_H

#include "common/common.h"
#include "tools/tools.h"

#include <git2.h>
#include <stdint.h>
#include <sys/stat.h>

/* ---- limits (one place, each with its reason) ------------------------------------ */

/* Longest path argument: the kernel's PATH_MAX; anything longer cannot name a file. */
#define TOOL__PATH_MAX 4096
/* Longest single component: NAME_MAX. */
#define TOOL__NAME_MAX 255
/* Symlinks followed while resolving one path: the kernel's MAXSYMLINKS. */
#define TOOL__SYMLINK_MAX 40
/* Largest file read whole (edit_file, write_file's old content, hashing). Source files
 * above this are generated or data; editing them by string replacement is not sensible. */
#define TOOL__FILE_MAX ((size_t)16 << 20)
/* Largest content write_file accepts (schema maxLength too). */
#define TOOL__WRITE_MAX ((size_t)8 << 20)
/* Files whose content hash the workspace remembers; the oldest is forgotten past this
 * (the agent then has to read that file again before editing it). */
#define TOOL__SEEN_MAX 4096

/* read_file: lines and bytes shown per call, longest line shown whole. */
#define TOOL__READ_LINES_DEFAULT 2000
#define TOOL__READ_BYTES_MAX ((size_t)256 << 10)
#define TOOL__READ_LINE_MAX 2000
/* Bytes inspected for NUL to call a file binary (what git and grep do). */
#define TOOL__BINARY_PROBE 8192

/* list_dir / glob / walks: entries shown, entries visited, depth. */
#define TOOL__LIST_ENTRIES_MAX 1000
#define TOOL__LIST_DEPTH_DEFAULT 2
#define TOOL__LIST_DEPTH_MAX 10
#define TOOL__GLOB_RESULTS_MAX 500
#define TOOL__WALK_VISIT_MAX 200000
#define TOOL__WALK_DEPTH_MAX 64
#define TOOL__GLOB_PATTERNS_MAX 64   /* after brace expansion */

/* grep: matches per file and in total, longest line shown, largest file searched. */
#define TOOL__GREP_PER_FILE_MAX 50
#define TOOL__GREP_TOTAL_MAX 500
#define TOOL__GREP_LINE_MAX 400
#define TOOL__GREP_FILE_MAX ((size_t)8 << 20)
#define TOOL__GREP_CONTEXT_MAX 10
#define TOOL__GREP_OUTPUT_MAX ((size_t)64 << 10)

/* edit_file: match line numbers listed, lines of old_string used for the closest-region
 * search, and the budget of line comparisons it may spend. */
#define TOOL__EDIT_LIST_MATCHES 20
#define TOOL__EDIT_FUZZY_LINES 60
#define TOOL__EDIT_FUZZY_BUDGET 4000000

/* Commands: default and largest timeout, captured output (head + tail), how long to wait
 * for output after the main process exited. */
#define TOOL__EXEC_TIMEOUT_DEFAULT 120
#define TOOL__EXEC_TIMEOUT_MAX 3600
#define TOOL__EXEC_OUTPUT_MAX ((size_t)64 << 10)
#define TOOL__EXEC_DRAIN_MS 200
#define TOOL__EXEC_POLL_MS 50
#define TOOL__COMMAND_MAX ((size_t)64 << 10)

/* run_tests: default timeout; output shown per failing test and in total. */
#define TOOL__TESTS_TIMEOUT_DEFAULT 600
#define TOOL__TESTS_OUTPUT_MAX ((size_t)2 << 20)
#define TOOL__TESTS_EXCERPT_MAX 2000
#define TOOL__TESTS_REPORT_MAX ((size_t)24 << 10)
#define TOOL__TESTS_MAX 20000

/* Bytes of JSON read from .qcoder/config.json. */
#define TOOL__CONFIG_MAX ((size_t)256 << 10)

/* ---- the workspace --------------------------------------------------------------- */

typedef struct tool__seen {
  char *rel;          /* canonical path relative to the root */
  char hash[65];      /* sha256 hex of the content last read or written */
  uint64_t stamp;     /* insertion order, for eviction */
} tool__seen;

struct tool_ws {
  int rootfd;             /* O_PATH|O_DIRECTORY on the root */
  char *root;             /* canonical absolute path, no trailing '/' */
  size_t root_len;
  char *given_root;       /* absolute path as given (may contain symlinks), or NULL */
  tool_sandbox_policy sandbox;
  char *state_dir;        /* canonical when it exists, else as configured; may be NULL */
  char *runtime_dir;      /* same */
  char *test_command;     /* from opts; NULL: .qcoder/config.json or detection */
  tool_io io;
  int has_io;
  int edit_without_read;  /* see tool_ws_opts */
  /* git: the repository whose work tree contains the root (NULL if none or bare) */
  git_repository *repo;
  char *repo_workdir;     /* canonical, no trailing '/' */
  char *repo_prefix;      /* the root relative to the workdir: "" or "sub/dir/" */
  char *gitdir;           /* canonical path of the git dir (may lie outside the root) */
  char *commondir;        /* canonical common dir (differs from gitdir in worktrees) */
  /* content hashes */
  tool__seen *seen;
  size_t nseen, capseen;
  uint64_t seen_clock;
};

struct tool_call_ctx {
  tool_ws *ws;
  const tool_def *def;
  const tool_call_opts *opts;
};

/* ---- paths ----------------------------------------------------------------------- */

enum {
  TOOL__R_MISSING_OK = 1u << 0, /* the last component may be missing (a file to create) */
  TOOL__R_MKDIRS = 1u << 1,     /* missing parent directories are created (after the
                                   policy check); implies MISSING_OK */
  TOOL__R_WRITE = 1u << 2,      /* a write target: .git, the gitdir, state and runtime
                                   directories are refused with TOOL_EDENIED */
  TOOL__R_NOFOLLOW = 1u << 3,   /* a symlink as the last component is the target itself */
  TOOL__R_DIR = 1u << 4,        /* the target must be a directory */
  TOOL__R_FILE = 1u << 5,       /* the target must be a regular file */
};

/* A resolved path. `rel` and `abs` are malloc'd; `name` points into `rel`. */
typedef struct tool__path {
  char *rel;        /* canonical, relative to the root: "" for the root itself */
  char *abs;        /* root + "/" + rel (the root for "") */
  const char *name; /* last component of rel ("" for the root) */
  int dirfd;        /* O_PATH|O_DIRECTORY fd of the parent directory, -1 for the root
                       and for a target whose parents are missing without MKDIRS */
  int exists;       /* the target exists (st is valid) */
  struct stat st;   /* lstat of the target (the link itself only with NOFOLLOW) */
} tool__path;

void tool__path_init(tool__path *p);
void tool__path_release(tool__path *p);
/* rel for messages: "." for the root. */
const char *tool__path_show(const tool__path *p);

/* Resolve `path` (relative to the root, or absolute naming a place under it) beneath the
 * workspace root. Returns TOOL_OK and fills *out, or:
 *   TOOL_EESCAPE  `..` above the root, an absolute path elsewhere, a symlink leading out,
 *                 a NUL byte, an overlong path or component, a symlink loop
 *   TOOL_EDENIED  TOOL__R_WRITE and the canonical target is under .git, the git dir, or
 *                 qcoder's state/runtime directory
 *   TOOL_ENOENT   missing (and not allowed to be), TOOL_EARGS wrong type (DIR/FILE)
 *   TOOL_EIO      anything else the system said
 * with *err (malloc'd) saying why, naming the path as the caller gave it. */
int tool__resolve(tool_ws *ws, const char *path, unsigned flags, tool__path *out, char **err);

/* Open a canonical relative path (as produced by tool__resolve) beneath the root:
 * openat2(RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS|RESOLVE_NO_SYMLINKS), or the O_NOFOLLOW
 * component walk where openat2 is missing. `oflags` as for open(2); O_CLOEXEC is added.
 * Returns an fd or -1 with errno set. */
int tool__open_beneath(tool_ws *ws, const char *rel, int oflags, mode_t mode);

/* Open a resolved, existing target for reading (regular file; O_RDONLY|O_NOFOLLOW) and
 * check it is still the inode that was resolved. Returns an fd or a negative TOOL_E* with
 * *err set. */
int tool__open_read(tool_ws *ws, const tool__path *p, char **err);

/* Resolve `path` and read the whole regular file, at most `max` bytes (TOOL_ETOOBIG
 * above). *data is malloc'd and NUL-terminated. `out` may be NULL; when given it receives
 * the resolved path (release it). */
int tool__read_whole(tool_ws *ws, const char *path, size_t max, char **data, size_t *len,
                     tool__path *out, char **err);

/* Replace or create the resolved target atomically with `data`. An existing file keeps
 * its mode (and owner when permitted); a new file gets 0666 & ~umask. The target must
 * have been resolved with TOOL__R_WRITE (and MISSING_OK/MKDIRS to create). A directory
 * or a special file as the target is refused. Removes stale temp files of dead writers
 * in the same directory. */
int tool__write_atomic(tool_ws *ws, const tool__path *p, const void *data, size_t len, char **err);

/* Store content at a resolved write target: through the editor's write hook when the
 * workspace has one (the editor keeps its undo and sees the change), else
 * tool__write_atomic. */
int tool__store(tool_ws *ws, const tool__path *p, const char *data, size_t len, char **err);

/* The write policy alone, for a canonical rel (TOOL_OK or TOOL_EDENIED with *err). */
int tool__write_policy(tool_ws *ws, const char *rel, char **err);

/* Tests only: force the fallback resolver even where openat2 exists (1), or auto (0). */
void tool__force_no_openat2(int on);
int tool__have_openat2(void);

/* ---- ignore rules and walks ------------------------------------------------------ */

/* 1 when `rel` (relative to the root) is ignored by the repository's .gitignore rules,
 * 0 otherwise (also when the workspace is not in a repository). `.git` itself is always
 * "ignored" for walks. */
int tool__ignored(tool_ws *ws, const char *rel, int is_dir);

typedef struct tool__walk_entry {
  const char *rel;         /* relative to the root */
  const char *name;        /* last component */
  int depth;               /* 1 for the children of the start directory */
  const struct stat *st;   /* lstat: a symlink is reported as one, not followed */
  int dirfd;               /* O_RDONLY fd of the directory holding it (valid during fn) */
  int ignored;             /* an ignored directory (only with report_ignored_dirs) */
} tool__walk_entry;

/* Return 0 to go on, 1 to skip a directory's contents, -1 to stop the walk. */
typedef int (*tool__walk_fn)(void *user, const tool__walk_entry *e);

typedef struct tool__walk_opts {
  int max_depth;          /* children of start are depth 1; <= TOOL__WALK_DEPTH_MAX */
  size_t max_visits;      /* 0: TOOL__WALK_VISIT_MAX */
  int include_ignored;    /* report ignored entries too (not .git) */
  atomic_int *cancel;     /* may be NULL */
  int report_ignored_dirs;/* pass ignored directories to fn (e.ignored set, never entered) */
} tool__walk_opts;

/* Depth-first walk of the directory `start` (resolved, a directory), children in byte
 * order of their names, never following symlinks, skipping `.git` and ignored entries.
 * When `start` itself is ignored (the caller named it explicitly) its contents are
 * walked as if nothing were ignored. *truncated is set when max_visits stopped it.
 * Returns TOOL_OK, TOOL_ECANCELLED, or an error with *err. Unreadable directories are
 * skipped silently. */
int tool__walk(tool_ws *ws, const tool__path *start, const tool__walk_opts *o, tool__walk_fn fn,
               void *user, int *truncated, char **err);

/* Glob matching with `*`, `?`, `[...]` within a component and `**` across components.
 * Patterns with `{a,b}` are expanded first by tool__glob_expand (at most
 * TOOL__GLOB_PATTERNS_MAX results, malloc'd array of malloc'd strings, NULL-terminated). */
int tool__glob_match(const char *pattern, const char *path);
char **tool__glob_expand(const char *pattern, char **err);
void tool__strv_free(char **v);

/* ---- content hashes (edit staleness) --------------------------------------------- */

void tool__seen_set(tool_ws *ws, const char *rel, const char hash[65]);
const char *tool__seen_get(tool_ws *ws, const char *rel);  /* NULL when never seen */
/* Before replacing an existing file whose current content is data[0..len): TOOL_OK when
 * the agent has seen exactly this content (or the workspace allows edits without a read
 * and the file was never seen), else TOOL_ESTALE with *err telling the model to read the
 * file again. */
int tool__check_fresh(tool_ws *ws, const tool__path *p, const char *data, size_t len, char **err);

/* ---- validation ------------------------------------------------------------------ */

/* tool_validate_args against any schema (the subset described in registry.c). */
int tool__validate_json(const json_t *schema, const json_t *args, char **errmsg);

/* ---- results --------------------------------------------------------------------- */

/* Set res->output (printf-style, or taking a malloc'd string) and return TOOL_OK. */
int tool__ok(tool_result *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int tool__ok_take(tool_result *res, char *output);
/* Set res->error and return `code`. */
int tool__fail(tool_result *res, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int tool__fail_take(tool_result *res, int code, char *error);
/* The result's data object, created on first use (borrowed; NULL only out of memory). */
json_t *tool__data(tool_result *res);
/* Append {"path": abs, "line": line} (line <= 0: no line) to data.locations. */
void tool__add_location(tool_result *res, const char *abs, long line);

/* ---- arguments (already validated) ----------------------------------------------- */

const char *tool__arg_str(const json_t *args, const char *key, const char *dflt);
/* Length-aware: *len receives the byte length (strings may be long). */
const char *tool__arg_strn(const json_t *args, const char *key, size_t *len);
long long tool__arg_int(const json_t *args, const char *key, long long dflt);
int tool__arg_bool(const json_t *args, const char *key, int dflt);

/* ---- text helpers ---------------------------------------------------------------- */

/* 1 when the bytes look binary (a NUL in the first TOOL__BINARY_PROBE bytes). */
int tool__looks_binary(const char *data, size_t len);
/* Append s[0..n) to b with invalid UTF-8 replaced by U+FFFD and control characters other
 * than tab shown as U+FFFD too (so output never carries terminal escapes). */
int tool__buf_put_safe(qc_buf *b, const char *s, size_t n);

/* A JSON string of s[0..n): as is when valid UTF-8, else with U+FFFD for invalid bytes
 * (jansson refuses to serialise invalid UTF-8). New reference. */
json_t *tool__json_text(const char *s, size_t n);

/* ---- commands (exec.c, sandbox.c) ------------------------------------------------ */

typedef struct tool__exec_opts {
  const char *command;        /* for /bin/sh -c */
  const char *cwd_abs;        /* absolute, beneath the root (resolved by the caller) */
  int timeout_s;
  atomic_int *cancel;
  void (*on_output)(void *user, const char *chunk, size_t len);
  void *user;
  const char *const *rw_dirs; /* extra host directories writable inside the sandbox
                                 (bound at the same path), NULL-terminated; may be NULL */
  size_t output_max;          /* 0: TOOL__EXEC_OUTPUT_MAX */
} tool__exec_opts;

/* Run a command as the workspace's policy says (sandboxed, or refused, or unsandboxed
 * with a warning). Fills *r (release with tool__exec_result_release); *sandboxed says
 * whether bubblewrap ran it; *warning (malloc'd or NULL) is the text to show the model
 * when it ran without a sandbox under TOOL_SANDBOX_PREFER or in the editor's terminal.
 * Returns TOOL_OK when the command ran (whatever its exit status), else TOOL_ESANDBOX /
 * TOOL_EIO / TOOL_ECANCELLED with *err. */
int tool__exec(tool_ws *ws, const tool__exec_opts *o, tool_exec_result *r, int *sandboxed,
               char **warning, char **err);
void tool__exec_result_release(tool_exec_result *r);
/* {"code": N, "signal": N, "timed_out": B} (new reference). */
json_t *tool__exit_json(const tool_exec_result *r);

/* The environment given to commands: a NULL-terminated malloc'd array of "K=V". `home`
 * and `tmpdir` are the values for HOME and TMPDIR. */
char **tool__exec_env(const char *home, const char *tmpdir);

/* Sandbox (sandbox.c): whether bubblewrap works here (probed once per process), and the
 * argv prefix that runs a command inside it. */
int tool__sandbox_available(char **why);
/* Tests only: behave as if bubblewrap were missing (1) or as probed (0). */
void tool__sandbox_force_unavailable(int on);
/* Build the bwrap argv for `command` in `cwd_abs`; NULL-terminated, malloc'd strings. */
char **tool__sandbox_argv(tool_ws *ws, const char *command, const char *cwd_abs,
                          char *const *env, const char *const *rw_dirs);

/* ---- the tool lists (one per file; each ends with an all-zero entry) ------------- */

extern const tool_def tool__fs_defs[];      /* fs.c: read_file, write_file, list_dir, glob */
extern const tool_def tool__edit_defs[];    /* edit.c: edit_file */
extern const tool_def tool__grep_defs[];    /* grep.c: grep */
extern const tool_def tool__exec_defs[];    /* exec.c: run_command */
extern const tool_def tool__tests_defs[];   /* tests.c: run_tests */
extern const tool_def tool__code_defs[];    /* code_tools.c: code_outline, find_symbol */
extern const tool_def tool__git_defs[];     /* git_cmds.c: git_status/diff/log/blame/show */

/* After a successful write of a source file (code_tools.c): syntax errors in new_text
 * that old_text (NULL for a new file) did not have are added to res->data.syntax_errors
 * and noted in res->output. Nothing happens for files without a grammar. */
void tool__report_syntax(tool_result *res, const char *path, const char *old_text, size_t old_len,
                         const char *new_text, size_t new_len);

#endif /* QC_TOOLS_INTERNAL_H */
