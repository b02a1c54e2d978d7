/* cmd_repomap.c — `qcoder repomap`: print the ranked repo map of a workspace.
 *
 * The same map the agent gets in its prompt (tools.h tool_repomap_*), built cold here:
 * useful to see what the model sees, and to measure it (--stats).
 */
#include "daemon/commands.h"
#include "tools/tools.h"
#include "common/common.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPOMAP_MAX_FOCUS 64 /* --focus files: a conversation holds a handful */

const char cmd_repomap_usage[] =
    "usage: qcoder repomap [--workspace DIR] [--budget N] [--focus FILE...] [--stats]\n"
    "\n"
    "Print the repo map of a workspace (default: the current directory): its definitions\n"
    "ranked by how much the rest of the code refers to them (PageRank over the file\n"
    "reference graph, as Aider does), as file paths followed by signature lines, within a\n"
    "budget of N tokens (default 1024, counted as bytes/4). --focus ranks toward the given\n"
    "files (paths relative to the workspace) and leaves them out of the map, as for files\n"
    "already in a conversation. --stats prints counts and timings to stderr.\n";

int cmd_repomap(int argc, char **argv) {
  const char *ws = ".";
  long budget = 1024;
  int stats = 0;
  const char *focus[REPOMAP_MAX_FOCUS];
  size_t nfocus = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--workspace") == 0 && i + 1 < argc) {
      ws = argv[++i];
    } else if (strcmp(a, "--budget") == 0 && i + 1 < argc) {
      char *end;
      budget = strtol(argv[++i], &end, 10);
      if (*end || budget < 1 || budget > 1000000)
        return qc_cmd_usage_error("repomap", "--budget wants a number of tokens (1..1000000)");
    } else if (strcmp(a, "--focus") == 0 && i + 1 < argc) {
      while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
        if (nfocus == REPOMAP_MAX_FOCUS) return qc_cmd_usage_error("repomap", "too many --focus files");
        focus[nfocus++] = argv[++i];
      }
    } else if (strcmp(a, "--stats") == 0) {
      stats = 1;
    } else {
      return qc_cmd_usage_error("repomap", "unknown argument '%s'", a);
    }
  }
  char root[PATH_MAX];
  if (!realpath(ws, root)) {
    fprintf(stderr, "qcoder repomap: cannot open workspace %s\n", ws);
    return 1;
  }
  /* focus paths: relative to the workspace, or absolute beneath it */
  size_t rl = strlen(root);
  for (size_t i = 0; i < nfocus; i++)
    if (strncmp(focus[i], root, rl) == 0 && focus[i][rl] == '/') focus[i] += rl + 1;
  tool_repomap *m = NULL;
  char *err = NULL;
  uint64_t t0 = qc_now_ns();
  int rc = tool_repomap_create(root, &m, &err);
  if (rc != TOOL_OK) {
    fprintf(stderr, "qcoder repomap: %s\n", err ? err : tool_strerror(rc));
    free(err);
    return 1;
  }
  uint64_t t1 = qc_now_ns();
  char *map = tool_repomap_render(m, focus, nfocus, (size_t)budget, NULL, NULL);
  uint64_t t2 = qc_now_ns();
  if (!map) {
    fprintf(stderr, "qcoder repomap: out of memory\n");
    tool_repomap_free(m);
    return 1;
  }
  fputs(map, stdout);
  if (stats) {
    tool_repomap_stats st;
    tool_repomap_get_stats(m, &st);
    fprintf(stderr, "repomap: %zu files, %zu definitions, %zu references; scan+parse %.1f ms, rank+render %.1f ms, %zu bytes\n",
            st.files, st.definitions, st.references, (double)(t1 - t0) / 1e6, (double)(t2 - t1) / 1e6,
            strlen(map));
  }
  free(map);
  tool_repomap_free(m);
  return 0;
}
