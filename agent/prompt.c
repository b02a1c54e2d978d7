/* prompt.c — the system prompt: short and concrete, for a local model.
 *
 * A 30B model follows a few precise rules better than pages of policy (Cline's ~15k-token
 * prompt is a known failure with local models), and every token here is prefilled once per
 * session and then kept in the KV cache — so the prompt is built once, when the session
 * starts, and never changes afterwards (changing it would throw the cache away every turn).
 * It holds: the role and the workspace root, the rules that make edits apply and changes
 * verified, the project's own instructions from AGENTS.md and QWEN.md at the workspace
 * root (bounded), and a repo map (tool_repomap_*, within AGENT__REPOMAP_TOKENS) when the
 * tools provide one.
 */
#include <stdlib.h>
#include <string.h>

#include "agent/session.h"

static const char k_role[] = "You are qcoder, a coding agent. You work in the repository at ";
static const char k_rules[] =
    " and act only through the tools below; the user sees your messages and every tool call.\n"
    "\n"
    "Rules:\n"
    "- Look before you act: find files with glob/grep and read them with read_file before "
    "changing them. Never guess file contents or command output.\n"
    "- edit_file replaces old_string with new_string: copy old_string exactly from the file "
    "(same indentation and line breaks) and include enough lines that it matches once.\n"
    "- Keep changes small and in the style of the surrounding code. Use paths relative to the "
    "repository root.\n"
    "- After changing code, verify: run the tests (run_tests) or the build. If they fail, read "
    "the error, fix it and run them again.\n"
    "- For a task with several steps, keep a plan with todo_write.\n"
    "- Be concise. When you are done, say in a few lines what you changed and how you checked it.";

/* Read a project instruction file, bounded; NULL when absent. */
static char *project_doc(const char *root, const char *name) {
  char *path = qc_path_join(root, name);
  if (!path) return NULL;
  char *data = NULL;
  size_t len = 0;
  int rc = qc_read_file(path, 1 << 20, &data, &len);
  free(path);
  if (rc != QC_OK || !len) {
    free(data);
    return NULL;
  }
  size_t keep = len > AGENT__PROJECT_DOC_MAX ? qc_utf8_complete_len(data, AGENT__PROJECT_DOC_MAX) : len;
  char *clean = qc_utf8_sanitize(data, keep, NULL);
  free(data);
  if (!clean) return NULL;
  if (keep < len) {
    char *r = qc_asprintf("%s\n[… %s continues: %zu more bytes not included]", clean, name, len - keep);
    free(clean);
    return r;
  }
  return clean;
}

char *agent__system_prompt(const char *root, const char *repo_map, const char *append) {
  qc_buf b;
  qc_buf_init(&b, 0);
  qc_buf_puts(&b, k_role);
  qc_buf_puts(&b, root);
  qc_buf_puts(&b, k_rules);
  static const char *const docs[] = {"AGENTS.md", "QWEN.md"};
  for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) {
    char *d = project_doc(root, docs[i]);
    if (!d) continue;
    size_t n = strlen(d);
    while (n && (d[n - 1] == '\n' || d[n - 1] == ' ')) d[--n] = '\0';
    qc_buf_printf(&b, "\n\n# Project instructions (%s)\n\n%s", docs[i], d);
    free(d);
  }
  if (repo_map && *repo_map)
    qc_buf_printf(&b, "\n\n# Repository map (the most referenced definitions, by file)\n\n%s", repo_map);
  if (append && *append) qc_buf_printf(&b, "\n\n%s", append);
  return qc_buf_detach(&b, NULL);
}

json_t *agent__plan_tool_schema(void) {
  return json_loads(
      "{\"type\": \"function\", \"function\": {\"name\": \"todo_write\", \"description\": "
      "\"Write the plan for the current task: the complete list of steps with their status (it "
      "replaces the previous list). Use it when a task has several steps; keep one step in_progress "
      "and mark steps completed as soon as they are done.\", \"parameters\": {\"type\": \"object\", "
      "\"properties\": {\"todos\": {\"type\": \"array\", \"description\": \"The steps, in order\", "
      "\"items\": {\"type\": \"object\", \"properties\": {\"content\": {\"type\": \"string\"}, "
      "\"status\": {\"type\": \"string\", \"enum\": [\"pending\", \"in_progress\", \"completed\"]}, "
      "\"priority\": {\"type\": \"string\", \"enum\": [\"high\", \"medium\", \"low\"]}}, "
      "\"required\": [\"content\", \"status\"]}}}, \"required\": [\"todos\"]}}}",
      0, NULL);
}
