/* git_internal.h — libgit2 inside tools/ (internal, `tool__` names).
 *
 * Everything here works on a directory path (the workspace root) so it can be tested
 * without a workspace object; the public tool_* functions in tools.h wrap it.
 *
 * Repositories. A workspace is "in a repository" when libgit2 finds one at or above its
 * root (GIT_REPOSITORY_OPEN_CROSS_FS off, so discovery stops at a mount boundary). The
 * workspace may be a subdirectory of the working tree: `prefix` is its path inside the
 * working tree ("" at the top, else "sub/dir/"), and every operation here stays beneath
 * it. libgit2 refuses a repository owned by another user (1.5's owner validation, like
 * git's safe.directory); qcoder keeps that check on: a daemon must not act on a repository
 * someone else controls.
 *
 * Shadow repositories (checkpoints of a directory that is not a repository, Cline-style):
 * a separate GIT_DIR under `<state>/checkpoints/<sha256(root)[0:16]>` with core.worktree
 * = the workspace and no .git link in it, so the user's directory is never changed. The
 * workspace's .gitignore files apply as usual; hooks never run (libgit2 has none).
 *
 * Snapshots. The working tree's state is "the files git would show": tracked files that
 * exist, plus untracked files that are not ignored (status with INCLUDE_UNTRACKED,
 * RECURSE_UNTRACKED_DIRS, INCLUDE_UNMODIFIED; submodules excluded). A snapshot hashes each
 * of them from disk without filters (exact bytes), with git's modes: 100644, 100755
 * (any executable bit), 120000 (symlink, the blob is the link text). Blobs go into the
 * repository's object database; the tree is built in a private in-memory index, so the
 * repository's index, HEAD and files are never touched.
 */
#ifndef QC_TOOLS_GIT_INTERNAL_H
#define QC_TOOLS_GIT_INTERNAL_H

#include <git2.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

/* ---- limits (git) ---------------------------------------------------------------- */

/* Output of a git tool (status, diff, log, blame, show) before it is cut: the model's
 * context is the scarce resource. */
#define TOOL__GIT_MAX_OUTPUT (64u * 1024)
/* Entries listed by git_status. */
#define TOOL__GIT_MAX_STATUS 500u
/* Commits listed by git_log: default and maximum. */
#define TOOL__GIT_LOG_DEFAULT 20u
#define TOOL__GIT_LOG_MAX 500u
/* Lines blamed per call. */
#define TOOL__GIT_BLAME_MAX_LINES 2000u
/* Largest file git_blame reads from the working tree. */
#define TOOL__GIT_BLAME_MAX_FILE (8u * 1024 * 1024)
/* Commits walked by git_log when filtering by path (bounds a scan of a huge history). */
#define TOOL__GIT_LOG_WALK_MAX 20000u
/* Snapshot stat cache (git_repo.c): a file modified less than this before it was hashed
 * is not cached (git's "racily clean" rule), and the cache of one working tree is emptied
 * past this many entries. */
#define TOOL__GIT_RACY_NS (2ull * 1000000000ull)
#define TOOL__GIT_STATCACHE_MAX 400000u
/* Files in one snapshot (checkpoint). A tree larger than this is refused, not cut:
 * a partial snapshot would make a restore delete the files it missed. */
#define TOOL__GIT_SNAPSHOT_MAX_FILES 200000u

/* ---- repositories ---------------------------------------------------------------- */

typedef struct tool__repo {
  git_repository *repo;
  char *workdir;   /* working tree, absolute, with a trailing '/' */
  char *prefix;    /* the workspace inside it: "" or "a/b/" */
  int shadow;      /* a qcoder shadow repository (the workspace is not a repository) */
} tool__repo;

/* Initialise libgit2 once per process (safe to call often). */
void tool__git_init(void);

/* Open the repository of a workspace. TOOL_ENOTREPO when there is none; *errmsg says
 * why for other failures (owner validation, a corrupt repository). */
int tool__repo_open(const char *root, tool__repo *out, char **errmsg);
/* Open (creating when `create`) the shadow repository of a workspace that is not in a
 * repository. `state_dir` NULL means qc_state_dir(). TOOL_ENOENT when !create and none
 * exists. */
int tool__repo_open_shadow(const char *root, const char *state_dir, int create, tool__repo *out,
                           char **errmsg);
/* The repository itself when there is one, else the shadow (created when `create`). */
int tool__repo_open_for_checkpoints(const char *root, const char *state_dir, int create,
                                    tool__repo *out, char **errmsg);
void tool__repo_close(tool__repo *r);

/* A message for the last libgit2 error (malloc'd), prefixed with `what`. */
char *tool__git_errmsg(const char *what);

/* ---- working-tree enumeration and snapshots -------------------------------------- */

/* Call `fn` for every file of the working tree under the prefix that git would show
 * (tracked and present, or untracked and not ignored), in path order. `path` is relative
 * to the working tree. Stops when fn returns nonzero (that value is returned). */
typedef int (*tool__file_fn)(void *user, const char *path);
int tool__repo_foreach_file(tool__repo *r, tool__file_fn fn, void *user, char **errmsg);

/* Build the tree of the working tree's current state (see the header comment). */
int tool__repo_snapshot_tree(tool__repo *r, git_oid *tree_out, size_t *nfiles, char **errmsg);

/* ---- checkpoints ----------------------------------------------------------------- */

#define TOOL__CP_REF_PREFIX "refs/qcoder/checkpoints/"

/* Take a checkpoint: snapshot → commit (parent: HEAD when there is one; author and
 * committer "qcoder <qcoder@localhost>") → ref refs/qcoder/checkpoints/<id>. *id_out is
 * "YYYYMMDDTHHMMSS.mmmZ-<8 hex of the commit>" (malloc'd). */
int tool__cp_create(tool__repo *r, const char *message, char **id_out, char **errmsg);
/* [{"id","commit","time"(ISO 8601),"time_ms","message","files"}] newest first. */
int tool__cp_list(tool__repo *r, json_t **out, char **errmsg);
/* Resolve an id (full, unique prefix, or "latest") to its commit. */
int tool__cp_resolve(tool__repo *r, const char *id, git_oid *commit, char **full_id,
                     char **errmsg);
/* Unified patch from the checkpoint to the working tree as it is now (untracked files
 * included), capped at `max` bytes (0: no cap) with a marker. */
int tool__cp_diff(tool__repo *r, const char *id, size_t max, char **patch, json_t **stats,
                  char **errmsg);
/* Make the working tree equal to the checkpoint: files created since are removed,
 * changed and deleted ones written back with their modes, symlinks recreated. Ignored
 * files and .git are never touched (a conflict with an ignored file fails that path and
 * is reported). *summary: {"restored":N,"removed":N,"unchanged":N,"errors":[…]}. */
int tool__cp_restore(tool__repo *r, const char *id, json_t **summary, char **errmsg);

/* Delete the refs of checkpoints beyond the newest `keep` that are older than
 * `older_than_s` seconds; *removed counts them. Their objects stay until git gc. */
int tool__cp_prune(tool__repo *r, size_t keep, int64_t older_than_s, size_t *removed, char **errmsg);

/* Tests only: 0 skips the per-file fdatasync of restore. */
void tool__cp_set_durable(int on);

/* `git switch -c BRANCH && git add -A && git commit -m MESSAGE` (see tools.h). */
int tool__git_commit_branch(tool__repo *r, const char *branch, const char *message,
                            char **commit_out, char **errmsg);

/* ---- read-only git tools (text for the model, data for editors) ------------------ */

/* Each writes the text into *out (cut at TOOL__GIT_MAX_OUTPUT with a marker) and may
 * set *data (new reference, or NULL). Paths are relative to the working tree. */
int tool__git_status(tool__repo *r, qc_buf *out, json_t **data, char **errmsg);
int tool__git_diff(tool__repo *r, const char *path, int staged, const char *against,
                   qc_buf *out, json_t **data, char **errmsg);
int tool__git_log(tool__repo *r, const char *path, unsigned n, qc_buf *out, json_t **data,
                  char **errmsg);
int tool__git_blame(tool__repo *r, const char *path, unsigned start, unsigned end, qc_buf *out,
                    json_t **data, char **errmsg);
int tool__git_show(tool__repo *r, const char *rev, qc_buf *out, json_t **data, char **errmsg);

/* Append to a capped buffer; after the cap, one truncation marker. */
void tool__out_append(qc_buf *out, const char *s, size_t n);
void tool__out_printf(qc_buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
