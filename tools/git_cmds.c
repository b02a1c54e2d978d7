/* git_cmds.c — the git tools as the registry offers them (git_status, git_diff, git_log,
 * git_blame, git_show) and the public checkpoint / commit functions of tools.h.
 *
 * Each call opens the workspace's repository afresh (a few hundred microseconds), so a
 * tool always sees the repository as it is now, whatever ran in between. Path arguments
 * are resolved through the workspace's confinement first; git then receives the
 * canonical path inside the working tree.
 */
#include "tools/git_internal.h"
#include "tools/internal.h"

#include <stdlib.h>
#include <string.h>

static int open_or_fail(tool_ws *ws, tool__repo *r, tool_result *res) {
  char *err = NULL;
  int rc = tool__repo_open(tool_ws_root(ws), r, &err);
  if (rc == TOOL_ENOTREPO) {
    free(err);
    return tool__fail(res, rc, "the workspace %s is not inside a git repository; git tools need "
                               "one (run `git init` there to start one)", tool_ws_root(ws));
  }
  if (rc != TOOL_OK) return tool__fail_take(res, rc, err);
  return TOOL_OK;
}

/* A path argument as a workspace-relative canonical path ("" for none). Files that no
 * longer exist are allowed (a deleted file still has a diff and a log). */
static int rel_arg(tool_ws *ws, const json_t *args, const char *key, tool__path *p, const char **rel,
                   tool_result *res) {
  const char *path = tool__arg_str(args, key, NULL);
  *rel = "";
  if (!path || !*path) return TOOL_OK;
  char *err = NULL;
  int rc = tool__resolve(ws, path, TOOL__R_MISSING_OK | TOOL__R_NOFOLLOW, p, &err);
  if (rc != TOOL_OK) return tool__fail_take(res, rc, err);
  free(err);
  *rel = p->rel;
  return TOOL_OK;
}

/* Finish a git tool: the text (made valid UTF-8) as output, data attached. */
static int finish(tool_result *res, int rc, qc_buf *out, json_t *data, char *err) {
  if (rc != TOOL_OK) {
    json_decref(data);
    return tool__fail_take(res, rc, err ? err : qc_asprintf("%s", tool_strerror(rc)));
  }
  free(err);
  size_t n;
  char *text = qc_utf8_sanitize(out->data, out->len, &n);
  if (data) {
    json_t *d = tool__data(res);
    if (d) json_object_update(d, data);
    json_decref(data);
  }
  return text ? tool__ok_take(res, text) : tool__fail(res, TOOL_ENOMEM, "out of memory");
}

static int tool_git_status(tool_call_ctx *ctx, const json_t *args, tool_result *res) {
  tool__repo r;
  int rc = open_or_fail(ctx->ws, &r, res);
  if (rc != TOOL_OK) return rc;
  qc_buf out;
  qc_buf_init(&out, TOOL__GIT_MAX_OUTPUT + 1024);
  json_t *data = NULL;
  char *err = NULL;
  rc = tool__git_status(&r, &out, &data, &err);
  rc = finish(res, rc, &out, data, err);
  qc_buf_release(&out);
  tool__repo_close(&r);
  return rc;
}

static int tool_git_diff(tool_call_ctx *ctx, const json_t *args, tool_result *res) {
  tool__repo r;
  tool__path p;
  tool__path_init(&p);
  const char *rel;
  int rc = rel_arg(ctx->ws, args, "path", &p, &rel, res);
  if (rc != TOOL_OK) return rc;
  rc = open_or_fail(ctx->ws, &r, res);
  if (rc != TOOL_OK) {
    tool__path_release(&p);
    return rc;
  }
  qc_buf out;
  qc_buf_init(&out, TOOL__GIT_MAX_OUTPUT + 1024);
  json_t *data = NULL;
  char *err = NULL;
  rc = tool__git_diff(&r, rel, tool__arg_bool(args, "staged", 0), tool__arg_str(args, "against", NULL), &out,
                      &data, &err);
  rc = finish(res, rc, &out, data, err);
  qc_buf_release(&out);
  tool__repo_close(&r);
  tool__path_release(&p);
  return rc;
}

static int tool_git_log(tool_call_ctx *ctx, const json_t *args, tool_result *res) {
  tool__repo r;
  tool__path p;
  tool__path_init(&p);
  const char *rel;
  int rc = rel_arg(ctx->ws, args, "path", &p, &rel, res);
  if (rc != TOOL_OK) return rc;
  rc = open_or_fail(ctx->ws, &r, res);
  if (rc != TOOL_OK) {
    tool__path_release(&p);
    return rc;
  }
  qc_buf out;
  qc_buf_init(&out, TOOL__GIT_MAX_OUTPUT + 1024);
  json_t *data = NULL;
  char *err = NULL;
  rc = tool__git_log(&r, rel, (unsigned)tool__arg_int(args, "n", TOOL__GIT_LOG_DEFAULT), &out, &data, &err);
  rc = finish(res, rc, &out, data, err);
  qc_buf_release(&out);
  tool__repo_close(&r);
  tool__path_release(&p);
  return rc;
}

static int tool_git_blame(tool_call_ctx *ctx, const json_t *args, tool_result *res) {
  tool__repo r;
  tool__path p;
  tool__path_init(&p);
  char *err = NULL;
  int rc = tool__resolve(ctx->ws, tool__arg_str(args, "path", NULL), TOOL__R_FILE, &p, &err);
  if (rc != TOOL_OK) return tool__fail_take(res, rc, err);
  rc = open_or_fail(ctx->ws, &r, res);
  if (rc != TOOL_OK) {
    tool__path_release(&p);
    return rc;
  }
  qc_buf out;
  qc_buf_init(&out, TOOL__GIT_MAX_OUTPUT + 1024);
  json_t *data = NULL;
  rc = tool__git_blame(&r, p.rel, (unsigned)tool__arg_int(args, "start", 0), (unsigned)tool__arg_int(args, "end", 0),
                       &out, &data, &err);
  rc = finish(res, rc, &out, data, err);
  if (rc == TOOL_OK) tool__add_location(res, p.abs, tool__arg_int(args, "start", 1));
  qc_buf_release(&out);
  tool__repo_close(&r);
  tool__path_release(&p);
  return rc;
}

static int tool_git_show(tool_call_ctx *ctx, const json_t *args, tool_result *res) {
  tool__repo r;
  int rc = open_or_fail(ctx->ws, &r, res);
  if (rc != TOOL_OK) return rc;
  qc_buf out;
  qc_buf_init(&out, TOOL__GIT_MAX_OUTPUT + 1024);
  json_t *data = NULL;
  char *err = NULL;
  rc = tool__git_show(&r, tool__arg_str(args, "rev", "HEAD"), &out, &data, &err);
  rc = finish(res, rc, &out, data, err);
  qc_buf_release(&out);
  tool__repo_close(&r);
  return rc;
}

const tool_def tool__git_defs[] = {
    {"git_status",
     "Show the git status of the workspace: the branch, then one line per changed file in "
     "`git status --short` form (XY path: X = staged, Y = not staged, ?? = untracked).",
     "{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false}", TOOL_KIND_READ, TOOL_F_GIT,
     tool_git_status},
    {"git_diff",
     "Show changes as a unified diff: by default the unstaged changes (working tree vs index); "
     "staged=true for the staged ones (index vs HEAD); against=REV to compare the working tree "
     "(or with staged=true, the index) with a commit such as HEAD or main. path limits it to a "
     "file or directory.",
     "{\"type\":\"object\",\"properties\":{"
     "\"path\":{\"type\":\"string\",\"format\":\"path\",\"description\":\"file or directory to limit the diff to\"},"
     "\"staged\":{\"type\":\"boolean\",\"description\":\"diff the index instead of the working tree\"},"
     "\"against\":{\"type\":\"string\",\"maxLength\":256,\"description\":\"a revision (commit, branch, tag, HEAD~2)\"}"
     "},\"additionalProperties\":false}",
     TOOL_KIND_READ, TOOL_F_GIT, tool_git_diff},
    {"git_log",
     "List recent commits (newest first): short hash, date, author and subject. path shows only "
     "the commits that changed that file or directory.",
     "{\"type\":\"object\",\"properties\":{"
     "\"path\":{\"type\":\"string\",\"format\":\"path\",\"description\":\"file or directory\"},"
     "\"n\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":500,\"description\":\"number of commits (default 20)\"}"
     "},\"additionalProperties\":false}",
     TOOL_KIND_READ, TOOL_F_GIT, tool_git_log},
    {"git_blame",
     "Show who last changed each line of a file and in which commit (uncommitted lines show "
     "'Not Committed Yet'). start/end limit it to a line range.",
     "{\"type\":\"object\",\"properties\":{"
     "\"path\":{\"type\":\"string\",\"format\":\"path\",\"description\":\"file, relative to the workspace root\"},"
     "\"start\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100000000,\"description\":\"first line (1-based)\"},"
     "\"end\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100000000,\"description\":\"last line\"}"
     "},\"required\":[\"path\"],\"additionalProperties\":false}",
     TOOL_KIND_READ, TOOL_F_GIT, tool_git_blame},
    {"git_show",
     "Show a commit (header, message and patch), or a file at a revision (REV:path), or a "
     "directory listing (REV:dir).",
     "{\"type\":\"object\",\"properties\":{"
     "\"rev\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":512,\"description\":\"e.g. HEAD, abc1234, main~2, HEAD:src/main.c\"}"
     "},\"required\":[\"rev\"],\"additionalProperties\":false}",
     TOOL_KIND_READ, TOOL_F_GIT, tool_git_show},
    {0},
};

/* ---- public checkpoint and commit functions -------------------------------------- */

static int cp_open(tool_ws *ws, int create, tool__repo *r, char **errmsg) {
  return tool__repo_open_for_checkpoints(tool_ws_root(ws), ws->state_dir, create, r, errmsg);
}

int tool_checkpoint_create(tool_ws *ws, const char *message, char **id, char **errmsg) {
  tool__repo r;
  *id = NULL;
  int rc = cp_open(ws, 1, &r, errmsg);
  if (rc != TOOL_OK) return rc;
  rc = tool__cp_create(&r, message, id, errmsg);
  tool__repo_close(&r);
  return rc;
}

int tool_checkpoint_list(tool_ws *ws, json_t **list, char **errmsg) {
  tool__repo r;
  *list = NULL;
  int rc = cp_open(ws, 0, &r, errmsg);
  if (rc == TOOL_ENOENT) { /* a plain directory never checkpointed: none yet */
    free(*errmsg);
    *errmsg = NULL;
    *list = json_array();
    return *list ? TOOL_OK : TOOL_ENOMEM;
  }
  if (rc != TOOL_OK) return rc;
  rc = tool__cp_list(&r, list, errmsg);
  tool__repo_close(&r);
  return rc;
}

int tool_checkpoint_diff(tool_ws *ws, const char *id, char **patch, json_t **stats, char **errmsg) {
  tool__repo r;
  *patch = NULL;
  int rc = cp_open(ws, 0, &r, errmsg);
  if (rc != TOOL_OK) return rc;
  rc = tool__cp_diff(&r, id, 0, patch, stats, errmsg);
  tool__repo_close(&r);
  return rc;
}

int tool_checkpoint_resolve(tool_ws *ws, const char *id, char **full_id, char **errmsg) {
  tool__repo r;
  *full_id = NULL;
  int rc = cp_open(ws, 0, &r, errmsg);
  if (rc != TOOL_OK) return rc;
  git_oid c;
  rc = tool__cp_resolve(&r, id, &c, full_id, errmsg);
  tool__repo_close(&r);
  return rc;
}

int tool_checkpoint_prune(tool_ws *ws, size_t keep, int64_t older_than_s, size_t *removed,
                          char **errmsg) {
  tool__repo r;
  *removed = 0;
  int rc = cp_open(ws, 0, &r, errmsg);
  if (rc == TOOL_ENOENT) { /* never checkpointed: nothing to prune */
    free(*errmsg);
    *errmsg = NULL;
    return TOOL_OK;
  }
  if (rc != TOOL_OK) return rc;
  rc = tool__cp_prune(&r, keep, older_than_s, removed, errmsg);
  tool__repo_close(&r);
  return rc;
}

int tool_checkpoint_restore(tool_ws *ws, const char *id, json_t **summary, char **errmsg) {
  tool__repo r;
  *summary = NULL;
  int rc = cp_open(ws, 0, &r, errmsg);
  if (rc != TOOL_OK) return rc;
  rc = tool__cp_restore(&r, id, summary, errmsg);
  tool__repo_close(&r);
  return rc;
}

int tool_git_commit_branch(tool_ws *ws, const char *branch, const char *message, char **commit,
                           char **errmsg) {
  tool__repo r;
  *commit = NULL;
  int rc = tool__repo_open(tool_ws_root(ws), &r, errmsg);
  if (rc != TOOL_OK) return rc;
  rc = tool__git_commit_branch(&r, branch, message, commit, errmsg);
  tool__repo_close(&r);
  return rc;
}
