/* main.c — the qcoder binary: one table of subcommands, dispatched git-style.
 *
 * Adding a command means adding one row here and one cmd_<name>.c file that defines
 * `cmd_<name>()` and its help text `cmd_<name>_usage[]` (declared in commands.h). Help
 * for every command comes from its row, so `qcoder help X`, `qcoder X --help` and
 * `qcoder X -h` always agree.
 */
#include "daemon/commands.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char usage_help[] =
    "usage: qcoder help [COMMAND]\n"
    "\n"
    "List the commands, or print the full help of one command.\n";

const qc_command qc_commands[] = {
    {"help", "show help for qcoder or one command", usage_help, cmd_help},
    {"run", "run the agent on one instruction, headless; verify and commit", cmd_run_usage, cmd_run},
    {"fix-tests", "fix failing tests, keeping only changes that prove themselves", cmd_fixtests_usage, cmd_fixtests},
    {"acp", "speak the Agent Client Protocol on stdio (for Zed and other editors)", cmd_acp_usage, cmd_acp},
    {"lsp", "speak LSP on stdio for an editor (code actions, commands, inline completion)", cmd_lsp_usage, cmd_lsp},
    {"serve", "run the daemon (JSON-RPC on a Unix socket or stdio)", cmd_serve_usage, cmd_serve},
    {"status", "show whether the daemon runs, and what it is doing", cmd_status_usage, cmd_status},
    {"stop", "stop the running daemon", cmd_stop_usage, cmd_stop},
    {"models", "list the models in the cache, or show which one would be used", cmd_models_usage, cmd_models},
    {"pull", "download a GGUF model into the cache (resumable, checksummed)", cmd_pull_usage, cmd_pull},
    {"tool", "run one agent tool by hand, or list them", cmd_tool_usage, cmd_tool},
    {"repomap", "print the ranked map of a repository's definitions", cmd_repomap_usage, cmd_repomap},
    {"checkpoint", "create, list, diff, restore or prune snapshots of a workspace", cmd_checkpoint_usage, cmd_checkpoint},
    {"render", "print the exact prompt for a conversation", cmd_render_usage, cmd_render},
    {"model-info", "describe a GGUF model file", cmd_model_info_usage, cmd_model_info},
    {"tokenize", "print the token ids of a text", cmd_tokenize_usage, cmd_tokenize},
    {"generate", "generate text with a local model", cmd_generate_usage, cmd_generate},
    {"logits", "print the top logits for a list of token ids", cmd_logits_usage, cmd_logits},
    {"bench", "measure prompt and generation speed of a local model", cmd_bench_usage, cmd_bench},
    {"mkmodel", "write a synthetic model with random weights", cmd_mkmodel_usage, cmd_mkmodel},
    {"version", "print version information", cmd_version_usage, cmd_version},
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
