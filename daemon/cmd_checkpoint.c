/* cmd_checkpoint.c — `qcoder checkpoint create|list|diff|restore`: the agent's safety net,
 * by hand.
 *
 * Checkpoints are commits under refs/qcoder/checkpoints/ of the workspace's repository
 * (a shadow repository under the state directory when the workspace is not one); see
 * tools.h. `restore` first saves the current state as a new checkpoint, so a restore can
 * itself be undone.
 */
#include "daemon/commands.h"
#include "tools/tools.h"
#include "common/common.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char cmd_checkpoint_usage[] =
    "usage: qcoder checkpoint create [-m MESSAGE] [--workspace DIR] [--json]\n"
    "       qcoder checkpoint list [--workspace DIR] [--json]\n"
    "       qcoder checkpoint diff [ID] [--workspace DIR] [--json]\n"
    "       qcoder checkpoint restore [ID] [--workspace DIR] [--json]\n"
    "       qcoder checkpoint prune [--keep N] [--days D] [--workspace DIR] [--json]\n"
    "\n"
    "Snapshots of the workspace's files (tracked, and untracked but not ignored; modes and\n"
    "symlinks included), stored as commits under refs/qcoder/checkpoints/ without touching\n"
    "HEAD, the index or any file. A directory that is not a git repository gets a private\n"
    "repository under qcoder's state directory instead. ID is the id that create and list\n"
    "print, a unique prefix of it, or 'latest' (the default).\n"
    "\n"
    "  create   take a checkpoint and print its id\n"
    "  list     list checkpoints, newest first\n"
    "  diff     show a patch from the checkpoint to the files as they are now\n"
    "  restore  make the files equal to the checkpoint again: files created since are\n"
    "           removed, changed and deleted ones come back with their modes; ignored\n"
    "           files and .git are never touched. The current state is saved as a new\n"
    "           checkpoint first, so a restore can be undone.\n"
    "  prune    forget checkpoints older than D days (default 30) beyond the newest N\n"
    "           (default 100); git gc then reclaims their space.\n"
    "\n"
    "The agent takes a checkpoint before a prompt's first change and after each edit or\n"
    "command, and prunes once per prompt, after the first: a checkpoint goes only when it is\n"
    "beyond the newest 200, older than 30 days, and older than every session still open in\n"
    "the daemon (so /undo of an open session always works).\n";

static void print_json(json_t *j) {
  char *s = json_dumps(j, JSON_INDENT(2));
  if (s) puts(s);
  free(s);
}

static int fail(const char *what, int rc, char *err) {
  fprintf(stderr, "qcoder checkpoint %s: %s\n", what, err ? err : tool_strerror(rc));
  free(err);
  return 1;
}

int cmd_checkpoint(int argc, char **argv) {
  const char *sub = NULL, *id = NULL, *ws_dir = ".", *message = NULL;
  int json = 0;
  long keep = 100, days = 30;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--workspace") == 0 && i + 1 < argc) ws_dir = argv[++i];
    else if ((strcmp(a, "-m") == 0 || strcmp(a, "--message") == 0) && i + 1 < argc) message = argv[++i];
    else if (strcmp(a, "--json") == 0) json = 1;
    else if ((strcmp(a, "--keep") == 0 || strcmp(a, "--days") == 0) && i + 1 < argc) {
      char *end;
      long v = strtol(argv[++i], &end, 10);
      if (*end || v < 0 || v > 1000000) return qc_cmd_usage_error("checkpoint", "%s wants a number", a);
      if (a[2] == 'k') keep = v;
      else days = v;
    }
    else if (a[0] == '-') return qc_cmd_usage_error("checkpoint", "unknown option '%s'", a);
    else if (!sub) sub = a;
    else if (!id) id = a;
    else return qc_cmd_usage_error("checkpoint", "unexpected argument '%s'", a);
  }
  if (!sub) return qc_cmd_usage_error("checkpoint", "which one: create, list, diff, restore or prune?");
  int is_create = strcmp(sub, "create") == 0, is_list = strcmp(sub, "list") == 0;
  int is_diff = strcmp(sub, "diff") == 0, is_restore = strcmp(sub, "restore") == 0;
  int is_prune = strcmp(sub, "prune") == 0;
  if (!is_create && !is_list && !is_diff && !is_restore && !is_prune)
    return qc_cmd_usage_error("checkpoint", "unknown subcommand '%s'", sub);
  if (id && (is_create || is_list || is_prune))
    return qc_cmd_usage_error("checkpoint", "'%s' takes no id (use -m for a message)", sub);

  tool_ws_opts o = {0};
  o.sandbox = TOOL_SANDBOX_OFF;
  tool_ws *ws = NULL;
  char *err = NULL;
  if (tool_ws_open(ws_dir, &o, &ws, &err) != 0) {
    fprintf(stderr, "qcoder checkpoint: cannot open workspace %s: %s\n", ws_dir, err ? err : "?");
    free(err);
    return 1;
  }
  int rc, status = 0;
  if (is_create) {
    char *cid = NULL;
    rc = tool_checkpoint_create(ws, message ? message : "checkpoint (qcoder checkpoint create)", &cid, &err);
    if (rc != TOOL_OK) status = fail("create", rc, err);
    else if (json) {
      json_t *j = json_pack("{s:s}", "id", cid);
      print_json(j);
      json_decref(j);
    } else {
      printf("%s\n", cid);
    }
    free(cid);
  } else if (is_list) {
    json_t *list = NULL;
    rc = tool_checkpoint_list(ws, &list, &err);
    if (rc != TOOL_OK) status = fail("list", rc, err);
    else if (json) print_json(list);
    else if (json_array_size(list) == 0) printf("no checkpoints\n");
    else {
      size_t i;
      json_t *e;
      json_array_foreach(list, i, e) {
        printf("%s  %s  %s\n", json_string_value(json_object_get(e, "id")),
               json_string_value(json_object_get(e, "time")), json_string_value(json_object_get(e, "message")));
      }
    }
    json_decref(list);
  } else if (is_prune) {
    size_t removed = 0;
    rc = tool_checkpoint_prune(ws, (size_t)keep, (int64_t)days * 86400, &removed, &err);
    if (rc != TOOL_OK) status = fail("prune", rc, err);
    else if (json) {
      json_t *j = json_pack("{s:I}", "removed", (json_int_t)removed);
      print_json(j);
      json_decref(j);
    } else {
      printf("removed %zu checkpoint%s\n", removed, removed == 1 ? "" : "s");
    }
  } else if (is_diff) {
    char *patch = NULL;
    json_t *stats = NULL;
    rc = tool_checkpoint_diff(ws, id ? id : "latest", &patch, &stats, &err);
    if (rc != TOOL_OK) status = fail("diff", rc, err);
    else if (json) {
      json_t *j = json_pack("{s:s, s:O}", "patch", patch, "stats", stats ? stats : json_null());
      print_json(j);
      json_decref(j);
    } else {
      fputs(patch, stdout);
    }
    free(patch);
    json_decref(stats);
  } else {
    char *saved = NULL, *full = NULL;
    json_t *sum = NULL;
    /* resolve first: the safety checkpoint below would otherwise become "latest" */
    rc = tool_checkpoint_resolve(ws, id ? id : "latest", &full, &err);
    if (rc == TOOL_OK) rc = tool_checkpoint_create(ws, "before `qcoder checkpoint restore`", &saved, &err);
    if (rc != TOOL_OK) {
      status = fail("restore", rc, err);
    } else {
      rc = tool_checkpoint_restore(ws, full, &sum, &err);
      if (rc != TOOL_OK) status = fail("restore", rc, err);
      else {
        json_object_set_new(sum, "saved_as", json_string(saved));
        if (json) print_json(sum);
        else {
          printf("restored %lld files, removed %lld, %lld unchanged; the previous state is checkpoint %s\n",
                 json_integer_value(json_object_get(sum, "restored")),
                 json_integer_value(json_object_get(sum, "removed")),
                 json_integer_value(json_object_get(sum, "unchanged")), saved);
          size_t i;
          json_t *e;
          json_array_foreach(json_object_get(sum, "errors"), i, e)
            fprintf(stderr, "  not restored: %s: %s\n", json_string_value(json_object_get(e, "path")),
                    json_string_value(json_object_get(e, "error")));
        }
        if (json_array_size(json_object_get(sum, "errors"))) status = 1;
      }
    }
    free(saved);
    free(full);
    json_decref(sum);
  }
  tool_ws_close(ws);
  return status;
}
