/* tt.h — helpers shared by the tools tests: workspaces, calls, files. */
#ifndef QC_TESTS_TOOLS_TT_H
#define QC_TESTS_TOOLS_TT_H

#include "tests/test.h"
#include "tools/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/wait.h>

/* A workspace on `dir` with private state/runtime dirs (so nothing touches the user's). */
static inline tool_ws *tt_open_opts(const char *dir, tool_sandbox_policy pol, const char *runtime_dir,
                                    int edit_without_read) {
  tool_ws_opts o = {pol};
  o.runtime_dir = runtime_dir ? runtime_dir : "/nonexistent/qct-runtime";
  o.state_dir = "/nonexistent/qct-state";
  o.edit_without_read = edit_without_read;
  tool_ws *ws = NULL;
  char *err = NULL;
  int rc = tool_ws_open(dir, &o, &ws, &err);
  ASSERT_MSG(rc == TOOL_OK, "tool_ws_open(%s): %s", dir, err ? err : "?");
  free(err);
  return ws;
}

static inline tool_ws *tt_open(const char *dir) { return tt_open_opts(dir, TOOL_SANDBOX_PREFER, NULL, 0); }

/* Call a tool with JSON text arguments (NULL: no arguments). */
static inline int tt_call(tool_ws *ws, const char *name, const char *json, tool_result *r) {
  json_t *a = NULL;
  if (json) {
    json_error_t je;
    a = json_loads(json, 0, &je);
    ASSERT_MSG(a != NULL, "bad JSON in the test: %s: %s", json, je.text);
  }
  int rc = tool_call(ws, name, a, NULL, r);
  json_decref(a);
  return rc;
}

/* Call with printf-built JSON. */
#define tt_callf(ws, name, r, ...)                                  \
  ({                                                                \
    char *tt_j_ = qc_asprintf(__VA_ARGS__);                         \
    int tt_rc_ = tt_call((ws), (name), tt_j_, (r));                 \
    free(tt_j_);                                                    \
    tt_rc_;                                                         \
  })

static inline char *tt_path(const char *dir, const char *rel) { return qc_path_join(dir, rel); }

static inline void tt_write(const char *dir, const char *rel, const char *content) {
  char *p = tt_path(dir, rel);
  ASSERT_MSG(qct_write_file(p, content) == 0, "cannot write %s", p);
  free(p);
}

static inline char *tt_read(const char *dir, const char *rel) {
  char *p = tt_path(dir, rel);
  char *s = qct_read_file(p, NULL);
  free(p);
  return s;
}

static inline int tt_exists(const char *dir, const char *rel) {
  char *p = tt_path(dir, rel);
  struct stat st;
  int ok = lstat(p, &st) == 0;
  free(p);
  return ok;
}

/* Number of directory entries whose name contains `needle`. */
static inline int tt_count_names(const char *dir, const char *needle) {
  DIR *d = opendir(dir);
  int n = 0;
  if (!d) return -1;
  struct dirent *de;
  while ((de = readdir(d)))
    if (strstr(de->d_name, needle)) n++;
  closedir(d);
  return n;
}

static inline void tt_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void tt_sh(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *cmd = NULL;
  if (vasprintf(&cmd, fmt, ap) < 0) cmd = NULL;
  va_end(ap);
  ASSERT(cmd);
  int rc = qct_run(cmd, NULL);
  ASSERT_MSG(rc == 0, "command failed (%d): %s", rc, cmd);
  free(cmd);
}

#endif
