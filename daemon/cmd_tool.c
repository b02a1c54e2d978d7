/* cmd_tool.c — `qcoder tool`: run one tool by hand, or list the registry.
 *
 * The same registry, validation and handlers the agent uses, so what works here works for
 * the model. One call per process: nothing has been read before, so edits of existing
 * files are allowed without a prior read_file (the staleness check needs a read in the
 * same workspace session to compare against). Ctrl-C cancels a running command (its
 * process group is killed).
 */
#include "common/common.h"
#include "daemon/commands.h"
#include "tools/tools.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char cmd_tool_usage[] =
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

static atomic_int cmd_tool_cancel;

static void cmd_tool_on_sigint(int sig) {
  (void)sig;
  atomic_store(&cmd_tool_cancel, 1);
}

static int cmd_tool_list(int json) {
  if (json) {
    json_t *arr = json_array();
    for (size_t i = 0; i < tool_count(); i++) {
      const tool_def *t = tool_at(i);
      const json_t *s = tool_schema(t);
      json_t *flags = json_array();
      if (t->flags & TOOL_F_MUTATES) json_array_append_new(flags, json_string("mutates"));
      if (t->flags & TOOL_F_EXEC) json_array_append_new(flags, json_string("exec"));
      if (t->flags & TOOL_F_INTERNAL) json_array_append_new(flags, json_string("internal"));
      if (t->flags & TOOL_F_GIT) json_array_append_new(flags, json_string("git"));
      json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:o, s:O}", "name", t->name, "kind",
                                           tool_kind_name(t->kind), "description", t->description,
                                           "flags", flags, "parameters", s ? s : json_null()));
    }
    char *out = json_dumps(arr, JSON_INDENT(2));
    if (out) puts(out);
    free(out);
    json_decref(arr);
    return 0;
  }
  for (size_t i = 0; i < tool_count(); i++) {
    const tool_def *t = tool_at(i);
    char *schema = json_dumps(tool_schema(t), JSON_COMPACT);
    printf("%s (%s)%s\n  %s\n  parameters: %s\n\n", t->name, tool_kind_name(t->kind),
           (t->flags & TOOL_F_INTERNAL) ? " [internal]" : "", t->description, schema ? schema : "?");
    free(schema);
  }
  return 0;
}

static char *cmd_tool_read_stdin(void) {
  qc_buf b;
  qc_buf_init(&b, (size_t)64 << 20);
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
    if (qc_buf_append(&b, chunk, n) != QC_OK) {
      qc_buf_release(&b);
      return NULL;
    }
  }
  return qc_buf_detach(&b, NULL);
}

int cmd_tool(int argc, char **argv) {
  const char *name = NULL, *args_text = NULL, *workspace = NULL, *sandbox = "prefer";
  int json = 0, list = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--json") == 0) json = 1;
    else if (strcmp(a, "--list") == 0) list = 1;
    else if (strcmp(a, "--workspace") == 0 || strcmp(a, "-w") == 0) {
      if (++i >= argc) return qc_cmd_usage_error("tool", "%s needs a directory", a);
      workspace = argv[i];
    } else if (strncmp(a, "--workspace=", 12) == 0) workspace = a + 12;
    else if (strcmp(a, "--sandbox") == 0) {
      if (++i >= argc) return qc_cmd_usage_error("tool", "--sandbox needs require, prefer or off");
      sandbox = argv[i];
    } else if (strncmp(a, "--sandbox=", 10) == 0) sandbox = a + 10;
    else if (a[0] == '-' && a[1] != '\0') return qc_cmd_usage_error("tool", "unknown option '%s'", a);
    else if (!name) name = a;
    else if (!args_text) args_text = a;
    else return qc_cmd_usage_error("tool", "unexpected argument '%s'", a);
  }
  if (list) {
    if (name) return qc_cmd_usage_error("tool", "--list takes no tool name");
    return cmd_tool_list(json);
  }
  if (!name) return qc_cmd_usage_error("tool", "which tool? (qcoder tool --list shows them)");
  if (!tool_find(name)) {
    fprintf(stderr, "qcoder tool: there is no tool '%s'; the tools are:", name);
    for (size_t i = 0; i < tool_count(); i++) fprintf(stderr, " %s", tool_at(i)->name);
    fputc('\n', stderr);
    return 2;
  }
  tool_sandbox_policy pol;
  if (strcmp(sandbox, "require") == 0) pol = TOOL_SANDBOX_REQUIRE;
  else if (strcmp(sandbox, "prefer") == 0) pol = TOOL_SANDBOX_PREFER;
  else if (strcmp(sandbox, "off") == 0) pol = TOOL_SANDBOX_OFF;
  else return qc_cmd_usage_error("tool", "--sandbox must be require, prefer or off, not '%s'", sandbox);

  char *stdin_text = NULL;
  if (args_text && strcmp(args_text, "-") == 0) {
    stdin_text = cmd_tool_read_stdin();
    if (!stdin_text) {
      fprintf(stderr, "qcoder tool: cannot read the arguments from stdin (at most 64 MiB)\n");
      return 2;
    }
    args_text = stdin_text;
  }
  json_t *args = NULL;
  if (args_text) {
    json_error_t jerr;
    args = json_loads(args_text, JSON_REJECT_DUPLICATES, &jerr);
    if (!args) {
      free(stdin_text);
      return qc_cmd_usage_error("tool", "the arguments are not valid JSON: %s (line %d, column %d)",
                                jerr.text, jerr.line, jerr.column);
    }
  }
  free(stdin_text);

  char cwd[4096];
  if (!workspace) workspace = getcwd(cwd, sizeof cwd) ? cwd : ".";
  tool_ws_opts opts = {pol};
  opts.edit_without_read = 1;
  tool_ws *ws = NULL;
  char *err = NULL;
  if (tool_ws_open(workspace, &opts, &ws, &err) != TOOL_OK) {
    fprintf(stderr, "qcoder tool: %s\n", err ? err : "cannot open the workspace");
    free(err);
    json_decref(args);
    return 2;
  }

  struct sigaction sa, old_int, old_term;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = cmd_tool_on_sigint;
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  tool_call_opts copts = {&cmd_tool_cancel, NULL, NULL};
  tool_result res;
  tool_call(ws, name, args, &copts, &res);
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);

  if (json) {
    json_t *o = tool_result_to_json(&res);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (s) puts(s);
    else puts("{\"ok\": false, \"output\": \"\", \"error\": \"cannot encode the result\", \"data\": {}}");
    free(s);
    json_decref(o);
  } else if (res.ok) {
    fputs(res.output ? res.output : "", stdout);
    if (res.output && *res.output && res.output[strlen(res.output) - 1] != '\n') fputc('\n', stdout);
  } else {
    fprintf(stderr, "%s\n", res.error ? res.error : "error");
  }
  int rc = res.ok ? 0 : 1;
  tool_result_release(&res);
  tool_ws_close(ws);
  json_decref(args);
  return rc;
}
