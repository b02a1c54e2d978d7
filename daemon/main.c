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

static const char usage_serve[] =
    "usage: qcoder serve [--socket PATH | --stdio] [--idle-timeout SECONDS]\n"
    "                    [--log-level LEVEL] [--log-file PATH] [--max-write-queue BYTES]\n"
    "\n"
    "Run the qcoder daemon: JSON-RPC 2.0 (Agent Client Protocol methods and _qcoder/*) on a\n"
    "Unix socket, or on stdin/stdout with --stdio. Each connection may use newline-delimited\n"
    "JSON (ACP) or Content-Length framing (LSP); the first bytes decide.\n"
    "\n"
    "  --socket PATH          socket to listen on (default $XDG_RUNTIME_DIR/qcoder/qcoder.sock,\n"
    "                         else /tmp/qcoder-$UID/qcoder.sock; $QCODER_RUNTIME_DIR overrides\n"
    "                         the directory). One daemon per socket: a second one exits 1.\n"
    "  --stdio                serve stdin/stdout as one connection (stdout: protocol only;\n"
    "                         logs go to stderr unless --log-file); exit when stdin closes\n"
    "  --idle-timeout SECONDS exit after this long with no connection (default 0 = never;\n"
    "                         daemons started automatically by clients use 1800)\n"
    "  --log-level LEVEL      error, warn, info (default), debug or trace\n"
    "  --log-file PATH        log here (default: daemon.log in the state directory,\n"
    "                         $XDG_STATE_HOME/qcoder or ~/.local/state/qcoder)\n"
    "  --max-write-queue BYTES  drop a client that leaves this much unread (default 65 MiB)\n"
    "\n"
    "SIGINT/SIGTERM shut down gracefully: open requests are cancelled and answered,\n"
    "connections flushed, socket and lock file removed, exit status 0.\n";

static const char usage_status[] =
    "usage: qcoder status [--socket PATH] [--json]\n"
    "\n"
    "Show the running daemon: pid, version, uptime, connections, model. Exit status 3\n"
    "when no daemon answers on the socket. Never starts a daemon.\n";

static const char usage_stop[] =
    "usage: qcoder stop [--socket PATH]\n"
    "\n"
    "Ask the running daemon to shut down gracefully and wait until its socket is gone.\n"
    "Exit status 3 when no daemon answers on the socket.\n";

const qc_command qc_commands[] = {
    {"help", "show help for qcoder or one command", usage_help, cmd_help},
    {"serve", "run the daemon (JSON-RPC on a Unix socket or stdio)", usage_serve, cmd_serve},
    {"status", "show whether the daemon runs, and what it is doing", usage_status, cmd_status},
    {"stop", "stop the running daemon", usage_stop, cmd_stop},
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
