/* workflow.h — what the editor-free commands share (internal to daemon/, prefix `wf_`):
 * models (which one to use, the cache, a GGUF header reader, the alias table), terminal
 * output (sizes, durations, a progress bar, a status line), Ctrl-C handling, and the one
 * way the workflows talk to an agent — as ACP clients of the daemon (workflow_agent.c).
 *
 * Used by `qcoder run`, `qcoder fix-tests`, `qcoder models` and `qcoder pull`.
 *
 * Ownership: `char *` results are malloc'd (free()); json_t results are new references.
 */
#ifndef QC_DAEMON_WORKFLOW_H
#define QC_DAEMON_WORKFLOW_H

#include <jansson.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- limits, each with its reason -------------------------------------------------- */

/* A GGUF header with more key/value pairs or tensors than these is not a model we know:
 * Qwen3-Coder-480B has ~50 keys and ~750 tensors per split; the bound keeps a hostile
 * file from making the reader loop for hours. */
#define WF_GGUF_MAX_KV 100000u
#define WF_GGUF_MAX_TENSORS 1000000u
/* Longest string value (the chat template is ~6 KB, a vocabulary entry a few bytes). */
#define WF_GGUF_MAX_STRING (16u << 20)
/* Longest array (Qwen's vocabulary and merges: 151 669 entries). */
#define WF_GGUF_MAX_ARRAY (16u << 20)
/* config.json is a few lines; anything bigger is a mistake. */
#define WF_CONFIG_MAX_BYTES (1u << 20)
/* Split GGUF files ("-00001-of-00006"): llama.cpp's gguf-split writes five digits. */
#define WF_SPLIT_MAX_PARTS 99999

/* Loading a large model can take minutes on a cold disk: session/new waits this long
 * (run, fix-tests). */
#define WF_SESSION_TIMEOUT_MS 900000

/* qcoder run: --verify's timeout (a full build and test run); lines of a failed
 * verification's output shown (all of it is in --json); the instruction's size. */
#define WF_RUN_VERIFY_TIMEOUT_S 600
#define WF_RUN_VERIFY_TAIL_LINES 40
#define WF_RUN_INSTRUCTION_MAX (1u << 20)

/* qcoder fix-tests: attempts per group and model calls per attempt unless told (a loop
 * ends; hard suites raise them); how often the time budget is checked; the joined test
 * command. */
#define WF_FIX_DEFAULT_ATTEMPTS 3
#define WF_FIX_DEFAULT_STEPS 30
#define WF_FIX_DEADLINE_POLL_MS 100
#define WF_FIX_COMMAND_MAX 8192

/* qcoder pull. Attempts in a row that bring no new byte before giving up (a server that
 * is down). The pause before a retry starts at FIRST and doubles up to MAX; it resets
 * when an attempt made progress (a flaky link keeps going, a dead one stops in about a
 * minute). A transfer moving less than 1 byte/s for STALL seconds is a stalled
 * connection. Redirects: Hugging Face sends resolve → CDN, one or two hops. The
 * progress line is redrawn every REDRAW ms; a resumed part is re-hashed in chunks. */
#define WF_PULL_MAX_FAILURES 6
#define WF_PULL_RETRY_FIRST_MS 500
#define WF_PULL_RETRY_MAX_MS 16000
#define WF_PULL_STALL_S 60L
#define WF_PULL_CONNECT_TIMEOUT_S 30L
#define WF_PULL_MAX_REDIRECTS 10L
#define WF_PULL_REDRAW_MS 200
#define WF_PULL_HASH_CHUNK (1u << 20)

/* ---- GGUF header ------------------------------------------------------------------- */

typedef struct wf_gguf_head {
  uint32_t version;
  uint64_t n_tensors, n_kv;
  char arch[64];           /* general.architecture ("" when absent) */
  char name[128];          /* general.name */
  uint32_t file_type;      /* general.file_type, UINT32_MAX when absent */
  uint32_t split_no;       /* split.no (0-based), 0 when absent */
  uint32_t split_count;    /* split.count, 0 when absent */
  uint64_t file_size;
  uint64_t data_offset;    /* where the tensor data starts */
  uint64_t data_needed;    /* data_offset + the largest tensor offset: a lower bound */
} wf_gguf_head;

/* Read and check the header of a GGUF file: magic, version 2 or 3, every key/value pair
 * and tensor description well-formed and within the limits above, tensor offsets inside
 * the file. 0 on success; -1 with `why` filled ("not a GGUF file (magic …)", "truncated
 * inside key 12", …). Reads only the header, however big the file. */
int wf_gguf_peek(const char *path, wf_gguf_head *h, char *why, size_t why_len);
/* llama.cpp's name for a general.file_type ("Q4_K_M", "Q8_0", "BF16", …), or NULL. */
const char *wf_ftype_name(uint32_t ft);

/* ---- the model cache, aliases, resolution ------------------------------------------ */

/* qc_cache_dir()/models (not created). */
char *wf_models_dir(void);

/* "NAME-00002-of-00006.gguf": 1 with the stem length (up to the dash), part and count;
 * 0 for a file that is not a split part. */
int wf_split_parse(const char *filename, size_t *stem_len, int *part, int *count);

/* The built-in names for the Qwen3-Coder GGUFs people download (unsloth's quantisations
 * on Hugging Face). `file` is the path inside the repository; for split models it is the
 * first part ("…-00001-of-00006.gguf") and `parts` is the count. */
typedef struct wf_alias {
  const char *name;        /* "qwen3-coder-30b-a3b:q4_k_m" */
  const char *repo;        /* "unsloth/Qwen3-Coder-30B-A3B-Instruct-GGUF" */
  const char *file;
  int parts;
  const char *size;        /* approximate download, for the help text */
} wf_alias;
const wf_alias *wf_alias_at(size_t i);     /* NULL past the end */
const wf_alias *wf_alias_find(const char *name);  /* case-insensitive */
/* https://huggingface.co/REPO/resolve/main/FILE (HF_ENDPOINT replaces the host part,
 * as huggingface_hub does). */
char *wf_alias_url(const wf_alias *a);

/* Turn what a user wrote into a spec the daemon accepts: `script:FILE` and files become
 * absolute paths (the daemon has its own working directory), http(s) URLs stay, a bare
 * NAME is looked up in the cache (NAME, NAME.gguf, an alias's file, the first part of a
 * split NAME, case-insensitively). 0 and *out, or -1 and *err. */
int wf_model_spec(const char *given, char **out, char **err);

typedef struct wf_model_choice {
  char *spec;      /* for session/new `_meta.qcoder.model`; NULL when nothing is configured */
  char *source;    /* "--model", "--remote", "QCODER_MODEL", "config FILE (model)", "cache" */
} wf_model_choice;

/* Which model a command uses, first match wins: --model, --remote, $QCODER_MODEL, the
 * config file's "model", then its "remote", then the newest qwen3/qwen3moe model in the
 * cache. 0 with choice->spec NULL when nothing is configured at all; -1 with *err for a
 * model that was named but cannot be used (missing file, unknown NAME, bad config). */
int wf_model_resolve(const char *model_flag, const char *remote_flag, wf_model_choice *out, char **err);
void wf_model_choice_release(wf_model_choice *c);
/* qc_config_dir()/config.json. */
char *wf_config_path(void);

/* The models in `dir`: [{"name", "path", "files": [..], "parts", "complete", "size",
 * "architecture", "quantization", "file_type", "error"?, "default"}], sorted by name;
 * `*.part` downloads appear with "complete": false. Never fails: an empty array for a
 * missing directory. */
json_t *wf_models_list(const char *dir);

/* ---- terminal ---------------------------------------------------------------------- */

/* "17.3 GiB", "812 KiB", "12 B" */
void wf_fmt_bytes(uint64_t n, char *out, size_t len);
/* "4.2s", "3m07s", "1h02m" */
void wf_fmt_duration(double seconds, char *out, size_t len);
/* One line: "[=====>    ]  45%  1.2 GiB / 2.6 GiB  35.1 MiB/s  ETA 41s" fitting `width`
 * columns; total 0 = unknown (no bar, no ETA). */
void wf_fmt_progress(char *out, size_t len, int width, uint64_t done, uint64_t total, double rate_bps);
/* Columns of the terminal behind fd, 80 when unknown. */
int wf_term_width(int fd);

/* ---- the daemon, git ----------------------------------------------------------------- */

struct acp_client;
struct acp_client_opts;
/* Connect an ACP client to the daemon, starting one when none answers (*started = 1 then:
 * the command stops it again with wf_agent_close). QC_OK or an RPC_E* code with `why`. */
int wf_agent_open(const struct acp_client_opts *o, struct acp_client **out, int *started, char *why, size_t why_len);
/* Close the client; when `started`, shut the daemon down first unless another client is
 * connected to it by now (that one keeps it; its idle timeout ends it later). */
void wf_agent_close(struct acp_client *c, int started);

/* --commit BRANCH: 0 when `root` is in a git repository and BRANCH is a valid name that
 * does not exist yet; -1 with `why` otherwise. */
int wf_check_new_branch(const char *root, const char *branch, char *why, size_t why_len);
/* The paths a unified patch changes ("diff --git a/X b/Y" → Y), in order. */
json_t *wf_patch_files(const char *patch);

/* ---- the live view of an agent turn -------------------------------------------------- */

/* What `qcoder run` and `fix-tests` show while the agent works, fed with the ACP
 * session/update objects. On a terminal (`live`): one status line at the bottom, redrawn
 * in place every WF_STATUS_REDRAW_MS — spinner, step (model call), the current tool,
 * tokens/s of the last model call, elapsed time — with the assistant's text and one line
 * per finished tool call printed above it, a line at a time. Otherwise plain lines: the
 * text as it comes, "[tool] TITLE: completed" per call. Thread-safe (updates arrive on the
 * ACP client's thread, prints on the main one). */
#define WF_STATUS_REDRAW_MS 250
typedef struct wf_view wf_view;

typedef struct wf_view_stats {
  int steps;                 /* model calls finished (usage updates) */
  int tool_calls;
  long prompt_tokens, reused_tokens, generated_tokens;  /* summed (_meta.qcoder of usage_update) */
  long context_used, context_size;                      /* the last usage_update */
  double last_rate;          /* tokens/s of the last model call, 0 when unknown */
} wf_view_stats;

/* out: where the text goes (stdout for run). show_text: print the assistant's text;
 * show_tools: a line per finished tool call. The status line is drawn on `out` when
 * `live`. */
wf_view *wf_view_new(FILE *out, int live, int show_text, int show_tools);
void wf_view_free(wf_view *v);
/* Start a new turn: label (may be NULL) leads the status line; counters of the turn reset
 * (the stats keep summing over the view's life). */
void wf_view_begin(wf_view *v, const char *label);
/* Finish a turn: flush a partial line of text, erase the status line. */
void wf_view_end(wf_view *v);
void wf_view_update(wf_view *v, const json_t *update);
/* Hold (1) or resume (0) the status line — while a question waits on the terminal. */
void wf_view_hold(wf_view *v, int hold);
/* A line above the status line (printf-style; a newline is added). */
void wf_view_printf(wf_view *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The assistant's text of the current turn (malloc'd; its last WF_VIEW_TEXT_MAX bytes). */
#define WF_VIEW_TEXT_MAX (64u << 10)
char *wf_view_turn_text(wf_view *v);
void wf_view_get_stats(wf_view *v, wf_view_stats *st);

/* ---- Ctrl-C ------------------------------------------------------------------------ */

/* SIGINT and SIGTERM handling for a long command: the first signal sets the count and
 * calls on_first (from a helper thread, never from the signal handler, so it may take
 * locks and send messages); the second exits the process at once with `second_exit`.
 * SIGPIPE is ignored. */
typedef void (*wf_interrupt_fn)(void *user);
int wf_interrupt_install(wf_interrupt_fn on_first, void *user, int second_exit);
/* How many signals arrived (0, 1). */
int wf_interrupted(void);
/* Stop the helper thread and restore the default handlers. */
void wf_interrupt_uninstall(void);

#endif /* QC_DAEMON_WORKFLOW_H */
