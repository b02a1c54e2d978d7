/* cmd_render.c — `qcoder render CONVERSATION.json`: print the exact prompt the model sees.
 *
 * The input is the chat fixtures' format, {"messages": [...], "tools": [...],
 * "add_generation_prompt": bool}, so the renderer can be checked from outside against any
 * Jinja implementation. The output is written as is: no newline is added.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "daemon/commands.h"

const char cmd_render_usage[] =
    "usage: qcoder render CONVERSATION.json | -\n"
    "\n"
    "Print the prompt Qwen3-Coder sees for a conversation, exactly (no newline added).\n"
    "The input is {\"messages\": [...], \"tools\": [...], \"add_generation_prompt\": true|false}\n"
    "with OpenAI-style messages (assistant tool_calls, role \"tool\" results) and tools;\n"
    "'-' reads it from stdin. Exit status 1 when the file cannot be read or is malformed.\n";

int cmd_render(int argc, char **argv) {
  if (argc != 2) return qc_cmd_usage_error("render", "expected one file (or - for stdin)");
  const char *path = argv[1];
  json_error_t jerr;
  json_t *conv = strcmp(path, "-") == 0 ? json_loadf(stdin, 0, &jerr) : json_load_file(path, 0, &jerr);
  if (!conv) {
    fprintf(stderr, "qcoder render: %s: %s (line %d, column %d)\n", strcmp(path, "-") ? path : "stdin",
            jerr.text, jerr.line, jerr.column);
    return 1;
  }
  char *out = NULL, *err = NULL;
  size_t len = 0;
  int rc = agent_render_conversation(conv, &out, &len, &err);
  json_decref(conv);
  if (rc != AGENT_OK) {
    fprintf(stderr, "qcoder render: %s: %s\n", agent_strerror(rc), err ? err : "");
    free(err);
    return 1;
  }
  int ok = fwrite(out, 1, len, stdout) == len && fflush(stdout) == 0;
  free(out);
  if (!ok) {
    perror("qcoder render: stdout");
    return 1;
  }
  return 0;
}
