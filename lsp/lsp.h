/* lsp.h — the LSP face of qcoder: protocol logic without I/O (prefix `lsp_`).
 *
 * `qcoder lsp` (daemon/cmd_lsp.c) is a translator: an editor speaks LSP to it on stdio, it
 * speaks ACP to the daemon on the socket. Everything that translation needs and that can
 * be decided on memory alone lives here, so it is unit-tested byte by byte:
 *
 *   - positions: LSP counts characters in UTF-16 code units; documents are UTF-8. A
 *     position maps to a byte offset and back (surrogate pairs, CRLF and CR line ends,
 *     positions past the end of a line or of the text clamped);
 *   - the document store: what the editor has open, with versions and the unsaved text
 *     (full sync; ranged changes are applied too), so the daemon reads what the user sees;
 *   - edits: the agent writes whole files (ACP fs/write_text_file); the editor gets the
 *     smallest line-level TextEdits that turn its text into the new one, inside a
 *     WorkspaceEdit (versioned `documentChanges` when the client supports them);
 *   - code actions for a range and its diagnostics, the executeCommand arguments of the
 *     qcoder commands, and the agent prompts built from a document range;
 *   - progress: ACP `session/update` events become `$/progress` reports;
 *   - inline completion: the fill-in-the-middle request (the buffer's prefix and suffix
 *     windows plus repository context files, within byte budgets) and the cut of the
 *     model's answer at the end of the block.
 *
 * Nothing here reads files, sockets or clocks, and nothing knows the daemon: callers hand
 * in text and JSON and get text and JSON back. Everything runs on the caller's thread; a
 * store is not locked (cmd_lsp.c uses it from its loop thread only).
 *
 * Ownership: `char *` and `json_t *` results are new (free() / json_decref()); inputs are
 * borrowed for the call. Structs filled by a function are released by its `_release`.
 *
 * Depends on agent/ (the FIM prompt format) and common/ only.
 */
#ifndef QC_LSP_H
#define QC_LSP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

/* ---- limits: every bound of the LSP face, with its reason ------------------------ */

/* A document kept in the store. Source files beyond 16 MiB are generated or data; the
 * store refuses them (the daemon then reads the file from disk) instead of holding
 * copies of huge buffers for every change. */
#define LSP_MAX_DOCUMENT_BYTES ((size_t)16 << 20)
/* Documents open at once, and their bytes together: an editor with thousands of buffers
 * is possible, an unbounded store is not. Past either, new documents are not kept. */
#define LSP_MAX_DOCUMENTS 4096
#define LSP_MAX_STORE_BYTES ((size_t)512 << 20)
/* The line diff (Myers) explores at most this many edit steps (its trace costs about
 * steps^2 ints: 1000 is 4 MB); a rewrite that differs more becomes one edit of the
 * changed middle. An agent's edit changes a few hunks, far below it. */
#define LSP_DIFF_MAX_STEPS 1000
/* Lines of context shown around the target range in an agent prompt, each side, and the
 * most bytes of the document a prompt quotes: enough to see the enclosing function; the
 * agent reads more with its tools when it needs to. */
#define LSP_PROMPT_CONTEXT_LINES 30
#define LSP_PROMPT_MAX_QUOTE_BYTES ((size_t)48 << 10)
/* Diagnostics quoted in a fix prompt, and the bytes of one message. */
#define LSP_PROMPT_MAX_DIAGNOSTICS 20
#define LSP_PROMPT_MAX_DIAGNOSTIC_BYTES 1000
/* An instruction or question from the editor. */
#define LSP_MAX_INSTRUCTION_BYTES ((size_t)64 << 10)
/* The answer text kept from a run for the command's result and window/showMessage. */
#define LSP_MAX_RESULT_TEXT_BYTES ((size_t)64 << 10)
/* Fill-in-the-middle windows, in bytes. Inline completion must be fast: the prompt is
 * prefilled on every keystroke pause, so it stays near 4k tokens: 6 KiB of prefix (most
 * of the signal), 2 KiB of suffix, 8 KiB of other files. */
#define LSP_FIM_PREFIX_BYTES ((size_t)6 << 10)
#define LSP_FIM_SUFFIX_BYTES ((size_t)2 << 10)
#define LSP_FIM_CONTEXT_BYTES ((size_t)8 << 10)
/* Context files offered to the prompt, and the head of each one kept: a few neighbours
 * show the repository's names and style; whole files would crowd out the prefix. */
#define LSP_FIM_MAX_CONTEXT_FILES 6
#define LSP_FIM_CONTEXT_FILE_BYTES ((size_t)3 << 10)
/* A context file smaller than this after cutting is not worth its separator. */
#define LSP_FIM_MIN_CONTEXT_FILE_BYTES 200
/* Lines an inline completion may have, and the tokens asked of the model for it: a
 * block's worth; ghost text longer than a screen is not read. */
#define LSP_INLINE_MAX_LINES 24
#define LSP_INLINE_MAX_TOKENS 160
/* `qcoder lsp` asks the repo map (tools/) which files rank near the one being completed.
 * The map of a large repository takes seconds to build, so it is built once in the
 * background; a completion waits at most this long for it (else goes without it), and
 * re-scans for changed files at most this often. */
#define LSP_REPOMAP_WAIT_MS 300
#define LSP_REPOMAP_REFRESH_MS 15000
/* Token budget of the map rendering whose file list ranks the neighbours. */
#define LSP_REPOMAP_RANK_TOKENS 1024

/* ---- errors ------------------------------------------------------------------------ */

#define LSP_ERR_MAP(X)                                                                  \
  X(NOMEM, "out of memory")                                                             \
  X(ARG, "invalid argument")                                                            \
  X(TOOBIG, "the document is larger than qcoder keeps (16 MiB)")                       \
  X(TOOMANY, "too many open documents (4096, 512 MiB): this one is read from disk")     \
  X(URI, "not a file:// URI of an absolute path")                                       \
  X(NOTOPEN, "the document is not open")                                                \
  X(RANGE, "the change's range is outside the document")                                \
  X(UTF8, "the text is not valid UTF-8")

enum {
  LSP_OK = 0,
  LSP__ERR_FIRST = -500,
#define LSP__ERR_ENUM(name, msg) LSP_E##name,
  LSP_ERR_MAP(LSP__ERR_ENUM)
#undef LSP__ERR_ENUM
};

/* Message for an LSP_E* code (or a common QC_E* one). Never NULL. */
const char *lsp_strerror(int code);

/* ---- positions (UTF-16 code units, as LSP counts by default) --------------------- */

typedef struct lsp_pos {
  uint32_t line;       /* 0-based */
  uint32_t character;  /* UTF-16 code units from the line's start */
} lsp_pos;

typedef struct lsp_range {
  lsp_pos start, end;  /* end exclusive; start <= end */
} lsp_range;

/* Byte offset of `p` in text[0..len). Lines end at "\n", "\r\n" or "\r" (LSP's three).
 * A character past the end of its line is the line's end (before the line break); a line
 * past the last is the end of the text; a character between the two halves of a
 * surrogate pair (inside an emoji) is the start of that character. Bytes that are not
 * UTF-8 count one unit each (they would be U+FFFD). */
size_t lsp_offset_at(const char *text, size_t len, lsp_pos p);
/* The position of byte `offset` (clamped to len; inside a UTF-8 sequence: its start;
 * between "\r" and "\n": the end of that line). */
lsp_pos lsp_pos_at(const char *text, size_t len, size_t offset);
/* UTF-16 code units of text[0..len) (no line logic): what `character` advances by. */
size_t lsp_utf16_len(const char *text, size_t len);

/* {line, character} with non-negative integers (up to 2^32-1); LSP_EARG otherwise. */
int lsp_pos_parse(const json_t *j, lsp_pos *out);
/* {start, end}; an end before the start is LSP_EARG. */
int lsp_range_parse(const json_t *j, lsp_range *out);
json_t *lsp_pos_json(lsp_pos p);
json_t *lsp_range_json(lsp_range r);
int lsp_pos_cmp(lsp_pos a, lsp_pos b);

/* ---- file URIs --------------------------------------------------------------------- */

/* "file:///a%20b/c.c" (or file://localhost/...) → "/a b/c.c"; NULL for other schemes,
 * relative paths, "%00" and malformed escapes. */
char *lsp_uri_to_path(const char *uri);
/* An absolute path as a file URI, percent-encoding all but A-Z a-z 0-9 - . _ ~ / (what
 * VS Code and Neovim send for ordinary paths). NULL for a relative path. */
char *lsp_path_to_uri(const char *path);

/* ---- the document store ------------------------------------------------------------ */

/* What `version` holds after qcoder's own edit was applied by the editor and before the
 * editor's didChange reports the version it gave that change. */
#define LSP_VERSION_UNKNOWN INT64_MIN

typedef struct lsp_doc {
  char *uri;           /* as the client sent it (edits go back with the same URI) */
  char *path;          /* absolute, decoded: the key */
  char *real;          /* the same file with symlinks resolved (the daemon's spelling), or
                          NULL; set by the caller, who may look at the file system */
  char *language_id;
  int64_t version;     /* the editor's, or LSP_VERSION_UNKNOWN */
  char *text;          /* UTF-8, NUL-terminated */
  size_t len;
  uint64_t touched;    /* store-wide counter at the last open/change: recency */
} lsp_doc;

typedef struct lsp_docs lsp_docs;

lsp_docs *lsp_docs_new(void);
void lsp_docs_free(lsp_docs *d);
/* didOpen. Opening an open document replaces it. LSP_EURI, LSP_ETOOBIG, LSP_ETOOMANY,
 * LSP_EUTF8 (nothing stored then). */
int lsp_docs_open(lsp_docs *d, const char *uri, const char *language_id, int64_t version, const char *text,
                  size_t len);
/* didChange: `changes` is contentChanges — each {text} (the whole document) or
 * {range, text} (replace that UTF-16 range), applied in order. All or nothing: on an
 * error the document is unchanged. LSP_ENOTOPEN, LSP_ERANGE, LSP_ETOOBIG, LSP_EARG. */
int lsp_docs_change(lsp_docs *d, const char *uri, int64_t version, const json_t *changes);
/* The editor applied qcoder's edit: the text is now `text`, the version unknown until the
 * next didChange. LSP_ENOTOPEN when `path` is not open. */
int lsp_docs_set_text(lsp_docs *d, const char *path, const char *text, size_t len);
/* Record the symlink-free spelling of an open document's path (the daemon resolves
 * symlinks, so its fs requests name files that way); lookups by path match either. */
int lsp_docs_set_real(lsp_docs *d, const char *uri, const char *real);
/* didClose. LSP_ENOTOPEN when it was not open. */
int lsp_docs_close(lsp_docs *d, const char *uri);
/* Lookups (borrowed; valid until the next call that changes the store). By URI the path
 * is decoded first, so different spellings of one file find it; by path, the path or the
 * recorded real path matches. */
const lsp_doc *lsp_docs_find(const lsp_docs *d, const char *uri);
const lsp_doc *lsp_docs_find_path(const lsp_docs *d, const char *path);
/* Up to `max` documents, most recently opened or changed first. Returns the count. */
size_t lsp_docs_recent(const lsp_docs *d, const lsp_doc **out, size_t max);
size_t lsp_docs_count(const lsp_docs *d);

/* ---- edits ------------------------------------------------------------------------- */

typedef struct lsp_text_edit {
  lsp_range range;   /* in the old text */
  char *new_text;
} lsp_text_edit;

/* The TextEdits turning old into new: a line diff (Myers, at most LSP_DIFF_MAX_STEPS
 * steps, else one edit of everything between the common head and tail), each changed
 * run of lines one edit, trimmed to the characters that differ when a single line
 * changed. Non-overlapping, in document order; none when the texts are equal. */
int lsp_diff_edits(const char *old_text, size_t old_len, const char *new_text, size_t new_len,
                   lsp_text_edit **out, size_t *n);
void lsp_text_edits_free(lsp_text_edit *e, size_t n);
/* [{range, newText}, ...] */
json_t *lsp_text_edits_json(const lsp_text_edit *e, size_t n);
/* Apply non-overlapping edits given in document order (as an editor does). LSP_ERANGE
 * when they overlap or are out of order. *out is malloc'd and NUL-terminated. */
int lsp_apply_edits(const char *text, size_t len, const lsp_text_edit *e, size_t n, char **out, size_t *out_len);

/* ---- what the client can do -------------------------------------------------------- */

typedef struct lsp_client_caps {
  int apply_edit;            /* workspace.applyEdit */
  int document_changes;      /* workspace.workspaceEdit.documentChanges */
  int work_done_progress;    /* window.workDoneProgress */
  int show_message_request;  /* window.showMessage (ShowMessageRequestClientCapabilities) */
  int inline_completion;     /* textDocument.inlineCompletion */
  int code_action_literals;  /* textDocument.codeAction.codeActionLiteralSupport */
} lsp_client_caps;

/* From InitializeParams.capabilities (NULL: nothing). */
void lsp_client_caps_parse(const json_t *capabilities, lsp_client_caps *out);

/* The WorkspaceEdit for `edits` on one open document: {documentChanges: [{textDocument:
 * {uri, version}, edits}]} when the client takes documentChanges (version null when
 * unknown), else {changes: {uri: edits}}. */
json_t *lsp_workspace_edit(const lsp_client_caps *caps, const char *uri, int64_t version, const lsp_text_edit *e,
                           size_t n);

/* ---- commands and code actions ----------------------------------------------------- */

typedef enum lsp_command {
  LSP_CMD_FIX,
  LSP_CMD_EXPLAIN,
  LSP_CMD_REFACTOR,
  LSP_CMD_ASK,
  LSP_CMD_RUN,
  LSP_CMD__COUNT
} lsp_command;

/* "qcoder.fix" ...; LSP_EARG for other names. */
int lsp_command_parse(const char *name, lsp_command *out);
const char *lsp_command_name(lsp_command c);
/* ["qcoder.fix", ...] for executeCommandProvider.commands. */
json_t *lsp_command_list(void);
/* Commands that only read (explain, ask) run with the agent in read-only mode. */
int lsp_command_read_only(lsp_command c);
/* Commands that report {text} rather than {summary, stopReason, changedFiles}. */
int lsp_command_answers_text(lsp_command c);

/* The argument object of a command (docs/lsp-contract.md), validated. */
typedef struct lsp_command_args {
  lsp_command cmd;
  char *uri;             /* NULL for run (and ask without a file) */
  int has_range;
  lsp_range range;
  json_t *diagnostics;   /* array (maybe empty) or NULL */
  char *instruction;     /* fix hint, refactor instruction, ask question / run task */
} lsp_command_args;

/* Parse executeCommand {command, arguments}: LSP_EARG with *errmsg (malloc'd) saying what
 * is missing or wrong. A refactor without instruction parses (the server asks for one). */
int lsp_command_args_parse(const char *command, const json_t *arguments, lsp_command_args *out, char **errmsg);
void lsp_command_args_release(lsp_command_args *a);

/* textDocument/codeAction params → CodeAction[] (fix, explain, refactor…), filtered by
 * context.only; each carries its command with the contract's argument. A client without
 * codeActionLiteralSupport (`literals` 0) gets the bare Command[] instead. NULL when the
 * params are malformed. */
json_t *lsp_code_actions(const json_t *params, int literals);

/* ---- agent prompts ----------------------------------------------------------------- */

typedef struct lsp_prompt_input {
  lsp_command cmd;
  const char *path;          /* the file as shown to the agent (workspace-relative when inside) */
  const char *language_id;   /* may be NULL */
  const char *text;          /* the document (NULL: no file) */
  size_t len;
  int has_range;
  lsp_range range;
  const json_t *diagnostics; /* array or NULL */
  const char *instruction;   /* may be NULL */
} lsp_prompt_input;

/* The user prompt for an agent run: what to do, the target lines (quoted with line
 * numbers and LSP_PROMPT_CONTEXT_LINES of context, the target marked), the diagnostics
 * and the instruction. Malloc'd; NULL when out of memory. */
char *lsp_prompt_build(const lsp_prompt_input *in);

/* ---- progress ---------------------------------------------------------------------- */

/* Follows one agent run's ACP session/update events: collects the answer text (the
 * agent_message_chunks) and turns events into $/progress "report" values. */
typedef struct lsp_progress lsp_progress;

lsp_progress *lsp_progress_new(void);
void lsp_progress_free(lsp_progress *p);
/* Feed the `update` object of a session/update. Returns a WorkDoneProgressReport value
 * ({kind: "report", message, percentage?}, new reference) when there is something new to
 * show, else NULL. Percentages never go down. */
json_t *lsp_progress_feed(lsp_progress *p, const json_t *update);
/* The answer so far (agent message text, at most LSP_MAX_RESULT_TEXT_BYTES), trimmed. */
const char *lsp_progress_text(const lsp_progress *p);
/* Absolute paths of the files completed tool calls changed (their ACP diff content), in
 * order, each once (borrowed array of strings). */
const json_t *lsp_progress_changed(const lsp_progress *p);
/* Tool calls seen and failed. */
int lsp_progress_tool_calls(const lsp_progress *p);
int lsp_progress_tool_failures(const lsp_progress *p);

/* ---- inline completion ------------------------------------------------------------- */

typedef struct lsp_fim_file {
  const char *path;   /* workspace-relative */
  const char *text;
  size_t len;
} lsp_fim_file;

typedef struct lsp_fim_input {
  const char *text;          /* the document */
  size_t len;
  size_t offset;             /* the cursor, a byte offset */
  const char *path;          /* the document's workspace-relative path */
  const char *repo_name;     /* the workspace folder's name; may be NULL */
  const lsp_fim_file *files; /* candidate context files, best first (may repeat `path`) */
  size_t n_files;
  size_t prefix_bytes, suffix_bytes, context_bytes;  /* 0: the LSP_FIM_* defaults */
} lsp_fim_input;

typedef struct lsp_fim_request {
  char *prefix;              /* the prefix window (starts at a line start) */
  char *suffix;              /* the suffix window (ends at a line end) */
  char *path;
  char *repo_name;           /* NULL when none */
  struct {
    char *path;
    char *content;
  } files[LSP_FIM_MAX_CONTEXT_FILES];
  size_t n_files;
} lsp_fim_request;

/* Choose the windows and the context files within the budgets: the prefix is the text
 * before the cursor cut back to start at a line, the suffix the text after it cut to end
 * at a line; context files are taken best first, skipping the document itself, repeats
 * and empty files, each cut to its head (whole lines, LSP_FIM_CONTEXT_FILE_BYTES) until
 * the context budget is spent. */
int lsp_fim_build(const lsp_fim_input *in, lsp_fim_request *out);
void lsp_fim_request_release(lsp_fim_request *r);
/* The `_qcoder/complete` params: {prefix, suffix, path, repoName?, files: [{path,
 * content}], maxTokens}. */
json_t *lsp_fim_request_json(const lsp_fim_request *r, int max_tokens);
/* The prompt the model sees for it (agent_fim_repo_prompt, or agent_fim_prompt when
 * there is neither a repository name nor a context file). */
char *lsp_fim_prompt(const lsp_fim_request *r);

/* Cut a completion at the end of the block it starts in. The completion goes between
 * `prefix` (text before the cursor) and `suffix` (text after it):
 *   - with code after the cursor on its line, only the rest of that line is kept;
 *   - a line indented less than the cursor's line ends it (the block closed);
 *   - after the cursor's line opened a block ("{", "(", "[", ":" at its end), the line
 *     that closes it at the cursor line's indentation is kept and ends it, and any other
 *     line back at that indentation ends it before;
 *   - a blank line followed by a line at or below the cursor line's indentation ends it;
 *   - a line repeating the suffix's next line (the model re-typing a "}" that is already
 *     there) ends it before;
 *   - at most max_lines lines (0: LSP_INLINE_MAX_LINES); trailing blanks dropped.
 * Returns the kept text (malloc'd; "" when nothing is left). */
char *lsp_inline_trim(const char *prefix, size_t prefix_len, const char *completion, size_t completion_len,
                      const char *suffix, size_t suffix_len, int max_lines);

#endif /* QC_LSP_H */
