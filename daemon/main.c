/* main.c — the qcoder binary: one table of subcommands, dispatched git-style.
 *
 * Adding a command means adding one row here and one cmd_<name>.c file. Help for every
 * command comes from its row, so `qcoder help X`, `qcoder X --help` and `qcoder X -h`
 * always agree.
 */
#include "daemon/commands.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char usage_version[] =
    "usage: qcoder version [--json]\n"
    "\n"
    "Print qcoder's version and the versions of the libraries it was built with.\n";

static const char usage_help[] =
    "usage: qcoder help [COMMAND]\n"
    "\n"
    "List the commands, or print the full help of one command.\n";

static const char usage_tool[] =
    "usage: qcoder tool NAME ['{json}' | -] [--workspace DIR] [--json] [--sandbox require|prefer|off]\n"
    "       qcoder tool --list [--json]\n"
    "\n"
    "Run one of the agent's tools by hand, with the same validation, confinement and sandbox\n"
    "the agent gets. The arguments are a JSON object ('-' reads it from stdin). The workspace\n"
    "defaults to the current directory; --sandbox defaults to prefer (run unsandboxed with a\n"
    "warning when bubblewrap is unavailable).\n"
    "\n"
    "  --json   print {\"ok\": true|false, \"output\": \"...\", \"error\": \"...\", \"data\": {...}}\n"
    "  --list   print the tools with their descriptions and JSON schemas\n"
    "\n"
    "Exit status: 0 the tool succeeded, 1 it returned an error, 2 usage error.\n"
    "\n"
    "Examples:\n"
    "  qcoder tool read_file '{\"path\": \"src/main.c\", \"offset\": 40, \"limit\": 20}'\n"
    "  qcoder tool grep '{\"pattern\": \"TODO\", \"glob\": \"*.c\"}' --workspace ~/src/proj\n"
    "  qcoder tool run_command '{\"command\": \"make -j2\", \"timeout_s\": 600}' --json\n";
static const char usage_repomap[] =
    "usage: qcoder repomap [--workspace DIR] [--budget N] [--focus FILE...] [--stats]\n"
    "\n"
    "Print the repo map of a workspace (default: the current directory): its definitions\n"
    "ranked by how much the rest of the code refers to them (PageRank over the file\n"
    "reference graph, as Aider does), as file paths followed by signature lines, within a\n"
    "budget of N tokens (default 1024, counted as bytes/4). --focus ranks toward the given\n"
    "files (paths relative to the workspace) and leaves them out of the map, as for files\n"
    "already in a conversation. --stats prints counts and timings to stderr.\n";

static const char usage_checkpoint[] =
    "usage: qcoder checkpoint create [-m MESSAGE] [--workspace DIR] [--json]\n"
    "       qcoder checkpoint list [--workspace DIR] [--json]\n"
    "       qcoder checkpoint diff [ID] [--workspace DIR] [--json]\n"
    "       qcoder checkpoint restore [ID] [--workspace DIR] [--json]\n"
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
    "           checkpoint first, so a restore can be undone.\n";

const qc_command qc_commands[] = {
    {"help", "show help for qcoder or one command", usage_help, cmd_help},
    {"tool", "run one agent tool by hand, or list them", usage_tool, cmd_tool},
    {"version", "print version information", usage_version, cmd_version},
    {"repomap", "print the ranked map of a repository's definitions", usage_repomap, cmd_repomap},
    {"checkpoint", "create, list, diff or restore snapshots of a workspace", usage_checkpoint, cmd_checkpoint},
    {NULL, NULL, NULL, NULL},
};

static const qc_command *find_command(const char *name) {
  for (const qc_command *c = qc_commands; c->name; c++)
    if (strcmp(c->name, name) == 0) return c;
  return NULL;
}

int qc_cmd_usage_error(const char *name, const char *fmt, ...) {
  fprintf(stderr, "qcoder %s: ", name);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n(see 'qcoder help %s')\n", name);
  return 2;
}

static void print_overview(FILE *out) {
  fprintf(out,
          "usage: qcoder COMMAND [ARGS...]\n"
          "\n"
          "qcoder is a coding-assistant daemon for the Qwen3-Coder models.\n"
          "\n"
          "Commands:\n");
  for (const qc_command *c = qc_commands; c->name; c++)
    fprintf(out, "  %-12s %s\n", c->name, c->summary);
  fprintf(out, "\nRun 'qcoder help COMMAND' or 'qcoder COMMAND --help' for details.\n");
}

int cmd_help(int argc, char **argv) {
  if (argc < 2) {
    print_overview(stdout);
    return 0;
  }
  const qc_command *c = find_command(argv[1]);
  if (!c) {
    fprintf(stderr, "qcoder: no command '%s'\n", argv[1]);
    print_overview(stderr);
    return 2;
  }
  fputs(c->usage, stdout);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    print_overview(stderr);
    return 2;
  }
  const char *name = argv[1];
  if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) name = "help";
  if (strcmp(name, "--version") == 0) name = "version";
  const qc_command *c = find_command(name);
  if (!c) {
    fprintf(stderr, "qcoder: '%s' is not a qcoder command\n\n", argv[1]);
    print_overview(stderr);
    return 2;
  }
  /* `--help` anywhere before `--` asks for this command's help */
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) break;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(c->usage, stdout);
      return 0;
    }
  }
  return c->run(argc - 1, argv + 1);
}
