/* cmd_version.c — `qcoder version`: what this binary is and what it was built with. */
#include "daemon/commands.h"

#include <git2.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

const char cmd_version_usage[] =
    "usage: qcoder version [--json]\n"
    "\n"
    "Print qcoder's version and the versions of the libraries it was built with.\n";

int cmd_version(int argc, char **argv) {
  int json = argc > 1 && strcmp(argv[1], "--json") == 0;
  if (argc > 1 && !json) return qc_cmd_usage_error("version", "unknown option '%s'", argv[1]);
  int gmaj, gmin, grev;
  git_libgit2_version(&gmaj, &gmin, &grev);
  if (json) {
    char git[32];
    snprintf(git, sizeof git, "%d.%d.%d", gmaj, gmin, grev);
    json_t *o = json_pack("{s:s, s:{s:s, s:s, s:s, s:s}}", "version", QCODER_VERSION, "libraries",
                          "libuv", uv_version_string(), "libgit2", git, "sqlite", sqlite3_libversion(),
                          "jansson", JANSSON_VERSION);
    char *s = json_dumps(o, JSON_COMPACT);
    puts(s);
    free(s);
    json_decref(o);
  } else {
    printf("qcoder %s\n", QCODER_VERSION);
    printf("libuv %s, libgit2 %d.%d.%d, sqlite %s, jansson %s\n", uv_version_string(), gmaj, gmin,
           grev, sqlite3_libversion(), JANSSON_VERSION);
  }
  return 0;
}
