/* workflow_agent.c — the workflows' link to the daemon, and the git checks they share.
 *
 * `qcoder run` and `fix-tests` are ACP clients of the daemon like any editor (there is one
 * agent path). A daemon they had to start is theirs to stop: "started" is known by trying
 * a plain connect first; at the end the daemon is shut down only when no other client is
 * connected to it by then, so a user's editor that attached meanwhile keeps it.
 */
#include "daemon/workflow.h"

#include <git2.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "daemon/acp_client.h"
#include "daemon/client.h"

int wf_agent_open(const acp_client_opts *o, acp_client **out, int *started, char *why, size_t why_len) {
  *started = 0;
  char *sock = rpc_socket_path(o->socket_path);
  int fd = -1;
  char tmp[256];
  if (sock && rpc_client_connect(sock, &fd, tmp, sizeof tmp) == QC_OK) close(fd);
  else if (o->autostart) *started = 1;
  free(sock);
  return acp_client_open(o, out, why, why_len);
}

void wf_agent_close(acp_client *c, int started) {
  if (!c) return;
  if (started && acp_client_connected(c)) {
    json_t *st = NULL, *r = NULL;
    int code = 0;
    char why[256];
    int stopping = 0;
    if (acp_client_call(c, "_qcoder/status", NULL, RPC_CLIENT_CALL_TIMEOUT_MS, &st, &code, why, sizeof why) == QC_OK &&
        json_integer_value(json_object_get(st, "connections")) <= 1)
      stopping = acp_client_call(c, "_qcoder/shutdown", NULL, RPC_CLIENT_CALL_TIMEOUT_MS, &r, &code, why, sizeof why) ==
                 QC_OK;
    char *sock = stopping ? rpc_socket_path(json_string_value(json_object_get(st, "socket"))) : NULL;
    json_decref(st);
    json_decref(r);
    acp_client_close(c);
    /* return when it is gone, so the next command does not find a daemon on its way out */
    if (sock) rpc_client_wait_gone(sock, RPC_STOP_WAIT_MS);
    free(sock);
    return;
  }
  acp_client_close(c);
}

int wf_check_new_branch(const char *root, const char *branch, char *why, size_t n) {
  git_libgit2_init();
  git_repository *repo = NULL;
  git_reference *ref = NULL;
  int ok = -1;
  char *full = qc_asprintf("refs/heads/%s", branch);
  int valid = 0;
  if (full && git_reference_name_is_valid(&valid, full) == 0 && !valid) {
    snprintf(why, n, "'%s' is not a valid branch name", branch);
    goto out;
  }
  if (git_repository_open_ext(&repo, root, 0, NULL) != 0) {
    snprintf(why, n, "--commit needs a git repository; %s is not in one", root);
    goto out;
  }
  if (git_branch_lookup(&ref, repo, branch, GIT_BRANCH_LOCAL) == 0) {
    snprintf(why, n, "the branch %s exists already", branch);
    goto out;
  }
  ok = 0;
out:
  free(full);
  git_reference_free(ref);
  git_repository_free(repo);
  git_libgit2_shutdown();
  return ok;
}

json_t *wf_patch_files(const char *patch) {
  json_t *a = json_array();
  for (const char *p = patch; p && *p;) {
    const char *e = strchr(p, '\n');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n > 11 && !strncmp(p, "diff --git ", 11)) {
      const char *b = NULL;
      for (const char *q = p + 11; q + 3 < p + n; q++)
        if (!strncmp(q, " b/", 3)) b = q + 3;
      if (b) json_array_append_new(a, json_stringn(b, (size_t)(p + n - b)));
    }
    p = e ? e + 1 : p + n;
  }
  return a;
}
