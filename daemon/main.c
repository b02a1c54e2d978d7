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

const qc_command qc_commands[] = {
    {"help", "show help for qcoder or one command", usage_help, cmd_help},
    {"tool", "run one agent tool by hand, or list them", usage_tool, cmd_tool},
    {"version", "print version information", usage_version, cmd_version},
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
