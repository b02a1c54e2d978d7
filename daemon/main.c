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
static const char usage_model_info[] =
    "usage: qcoder model-info FILE [--json]\n"
    "\n"
    "Describe a GGUF model file: architecture and hyper-parameters, tensors by type (counts\n"
    "and bytes), file sizes and split parts, and the tokenizer (vocabulary size, merges,\n"
    "special ids, chat template). --json prints the same as one JSON object, plus every\n"
    "metadata key.\n";

static const char usage_generate[] =
    "usage: qcoder generate --model FILE (--prompt TEXT | --chat TEXT | --tokens 1,2,3)\n"
    "                       [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P]\n"
    "                       [--repeat-penalty R] [--repeat-last-n N] [--seed S]\n"
    "                       [--stop STR]... [--ignore-eos] [--ctx N] [-t THREADS]\n"
    "                       [--kernels scalar] [-q]\n"
    "\n"
    "Stream a continuation to stdout. --chat wraps TEXT as a ChatML user turn followed by\n"
    "the assistant header. Defaults are Qwen3-Coder's generation config (temperature 0.7,\n"
    "top-k 20, top-p 0.8, repetition penalty 1.05); --temp 0 is greedy (ties to the lowest\n"
    "id). -n -1 generates until an end-of-generation token or the context is full (default\n"
    "256). A summary with timings goes to stderr unless -q.\n";

static const char usage_logits[] =
    "usage: qcoder logits --model FILE --tokens 1,2,3 [--top K] [--json] [-t THREADS]\n"
    "\n"
    "Run the token ids through the model and print, for every position, the K largest\n"
    "logits (default 10), best first. --json prints {\"positions\": [{\"top\": [[id, logit],\n"
    "...]}, ...]}.\n";

static const char usage_mkmodel[] =
    "usage: qcoder mkmodel --preset tiny|30b-a3b [--arch qwen3moe|qwen3] [--layers N]\n"
    "                      [--type f32|f16|bf16|q8_0|q4_0|q4_k|q5_k|q6_k|q4_k_m] [--seed S]\n"
    "                      [--vocab-from GGUF] [--n-vocab N] -o OUT.gguf\n"
    "\n"
    "Write a GGUF model with seeded random weights at a preset's shapes: tiny, or the\n"
    "Qwen3-Coder-30B-A3B layer shapes (n_embd 2048, 32/4 heads of 128, 128 experts with 8\n"
    "used, expert ffn 768, rope base 1e7) with any layer count. The tokenizer is copied\n"
    "from --vocab-from (else a byte-level toy vocabulary). q4_k_m follows llama.cpp's\n"
    "Q4_K_M mix. Tensors are streamed to disk; the file appears under its name only when\n"
    "complete.\n";

static const char usage_tokenize[] =
    "usage: qcoder tokenize --model FILE [--json] [--no-special] [--count] [TEXT | -]\n"
    "\n"
    "Print the token ids of TEXT (or of stdin, with '-' or no TEXT) as the model's own\n"
    "tokenizer gives them. Only the vocabulary is loaded.\n"
    "\n"
    "  -m, --model FILE  a GGUF model (the first part of a split model)\n"
    "  --json            print {\"ids\": [...]} (with --count: {\"count\": N})\n"
    "  --no-special      treat control tokens written in the text (<|im_start|>, ...) as\n"
    "                    plain text; <tool_call>, <think> and the other user-defined tokens\n"
    "                    are still recognised, as llama.cpp does\n"
    "  --count           print only the number of tokens\n"
    "\n"
    "Stdin is read byte for byte (a final newline is part of the text). The text must be\n"
    "valid UTF-8. Exit status: 0 success, 1 the model or text was refused, 2 usage.\n";

const qc_command qc_commands[] = {
    {"help", "show help for qcoder or one command", usage_help, cmd_help},
    {"serve", "run the daemon (JSON-RPC on a Unix socket or stdio)", usage_serve, cmd_serve},
    {"status", "show whether the daemon runs, and what it is doing", usage_status, cmd_status},
    {"stop", "stop the running daemon", usage_stop, cmd_stop},
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
    {"model-info", "describe a GGUF model file", usage_model_info, cmd_model_info},
    {"generate", "generate text with a local model", usage_generate, cmd_generate},
    {"logits", "print the top logits for a list of token ids", usage_logits, cmd_logits},
    {"mkmodel", "write a synthetic model with random weights", usage_mkmodel, cmd_mkmodel},
    {"tokenize", "print the token ids of a text", usage_tokenize, cmd_tokenize},
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
