/* commands.c — the qcoder commands: names, arguments, code actions and agent prompts.
 *
 * docs/lsp-contract.md is the contract with the editor plugins: five commands
 * (qcoder.fix, .explain, .refactor, .ask, .run), each taking one argument object, and
 * three code actions offering the first three for a range. The argument objects come
 * from editors and from code actions the server made earlier (and a client may alter
 * them), so they are validated here field by field with messages a plugin author can
 * act on.
 *
 * A prompt tells the agent what to do with which lines: it quotes the target lines with
 * their numbers (1-based, as the agent's tools count), marks them, shows some context
 * around them, lists the diagnostics, and says how to answer. The agent then works with
 * its tools (read_file, edit_file, ...) on the real file — which the daemon reads from
 * this process's document store, so it sees the unsaved buffer.
 */
#include "lsp/lsp.h"

#include <stdlib.h>
#include <string.h>

static const char *const k_names[LSP_CMD__COUNT] = {
    [LSP_CMD_FIX] = "qcoder.fix",       [LSP_CMD_EXPLAIN] = "qcoder.explain", [LSP_CMD_REFACTOR] = "qcoder.refactor",
    [LSP_CMD_ASK] = "qcoder.ask",       [LSP_CMD_RUN] = "qcoder.run",
};

int lsp_command_parse(const char *name, lsp_command *out) {
  for (int i = 0; name && i < LSP_CMD__COUNT; i++)
    if (strcmp(name, k_names[i]) == 0) {
      *out = (lsp_command)i;
      return LSP_OK;
    }
  return LSP_EARG;
}

const char *lsp_command_name(lsp_command c) { return c < LSP_CMD__COUNT ? k_names[c] : "qcoder.?"; }

json_t *lsp_command_list(void) {
  json_t *a = json_array();
  for (int i = 0; a && i < LSP_CMD__COUNT; i++) json_array_append_new(a, json_string(k_names[i]));
  return a;
}

int lsp_command_read_only(lsp_command c) { return c == LSP_CMD_EXPLAIN || c == LSP_CMD_ASK; }
int lsp_command_answers_text(lsp_command c) { return c == LSP_CMD_EXPLAIN || c == LSP_CMD_ASK; }

/* ---- arguments --------------------------------------------------------------------- */

void lsp_command_args_release(lsp_command_args *a) {
  if (!a) return;
  free(a->uri);
  free(a->instruction);
  json_decref(a->diagnostics);
  memset(a, 0, sizeof *a);
}

/* Refuse the arguments with a message (printf-style). */
#define FAIL(...)                                  \
  do {                                             \
    if (errmsg) *errmsg = qc_asprintf(__VA_ARGS__); \
    lsp_command_args_release(out);                 \
    return LSP_EARG;                               \
  } while (0)

/* A string field: trimmed copy, NULL when absent/empty; -1 when present but wrong. */
static int opt_string(const json_t *obj, const char *key, char **out) {
  *out = NULL;
  const json_t *v = json_object_get(obj, key);
  if (!v || json_is_null(v)) return 0;
  if (!json_is_string(v) || json_string_length(v) > LSP_MAX_INSTRUCTION_BYTES) return -1;
  const char *s = json_string_value(v);
  size_t n = json_string_length(v);
  while (n && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) s++, n--;
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r')) n--;
  if (n == 0) return 0;
  if (memchr(s, '\0', n)) return -1;
  *out = qc_strndup(s, n);
  return *out ? 0 : -1;
}

int lsp_command_args_parse(const char *command, const json_t *arguments, lsp_command_args *out, char **errmsg) {
  memset(out, 0, sizeof *out);
  if (errmsg) *errmsg = NULL;
  if (lsp_command_parse(command, &out->cmd))
    FAIL("unknown command %s (qcoder has qcoder.fix, qcoder.explain, qcoder.refactor, qcoder.ask, qcoder.run)",
         command ? command : "(none)");
  const char *name = k_names[out->cmd];
  const json_t *arg = json_is_array(arguments) ? json_array_get(arguments, 0) : NULL;
  if (!json_is_object(arg)) FAIL("%s takes one argument object (see docs/lsp-contract.md)", name);
  const json_t *uri = json_object_get(arg, "uri");
  const json_t *range = json_object_get(arg, "range");
  int needs_file = out->cmd == LSP_CMD_FIX || out->cmd == LSP_CMD_EXPLAIN || out->cmd == LSP_CMD_REFACTOR;
  if (uri && !json_is_null(uri) && out->cmd != LSP_CMD_RUN) {
    if (!json_is_string(uri)) FAIL("%s: uri must be a string", name);
    char *path = lsp_uri_to_path(json_string_value(uri));
    if (!path) FAIL("%s: uri must be a file:// URI of an absolute path", name);
    free(path);
    out->uri = strdup(json_string_value(uri));
    if (!out->uri) FAIL("%s: out of memory", name);
  } else if (needs_file) {
    FAIL("%s needs uri, the document's file:// URI", name);
  }
  if (range && !json_is_null(range) && out->uri) {
    if (lsp_range_parse(range, &out->range))
      FAIL("%s: range must be {start: {line, character}, end: {line, character}} with start <= end", name);
    out->has_range = 1;
  } else if (needs_file) {
    FAIL("%s needs range, the lines to work on", name);
  }
  const json_t *diags = json_object_get(arg, "diagnostics");
  if (out->cmd == LSP_CMD_FIX && diags && !json_is_null(diags)) {
    if (!json_is_array(diags)) FAIL("%s: diagnostics must be an array", name);
    out->diagnostics = json_deep_copy(diags);
  }
  const char *key = (out->cmd == LSP_CMD_ASK || out->cmd == LSP_CMD_RUN) ? "prompt" : "instruction";
  if (opt_string(arg, key, &out->instruction)) FAIL("%s: %s must be a string (at most 64 KiB)", name, key);
  if ((out->cmd == LSP_CMD_ASK || out->cmd == LSP_CMD_RUN) && !out->instruction)
    FAIL("%s needs prompt, a non-empty question or task", name);
  return LSP_OK;
}

/* ---- code actions ------------------------------------------------------------------ */

/* Whether `kind` passes context.only: a requested kind matches itself and its sub-kinds
 * ("refactor" lets "refactor.rewrite" through). */
static int kind_wanted(const json_t *only, const char *kind) {
  if (!json_is_array(only)) return 1;
  size_t i;
  const json_t *k;
  json_array_foreach(only, i, k) {
    const char *want = json_string_value(k);
    if (!want) continue;
    size_t n = strlen(want);
    if (n == 0 || (strncmp(kind, want, n) == 0 && (kind[n] == '\0' || kind[n] == '.'))) return 1;
  }
  return 0;
}

static json_t *action(const char *title, const char *kind, const char *command, json_t *arg_steal,
                      const json_t *diagnostics) {
  json_t *a = json_pack("{s:s, s:s, s:{s:s, s:s, s:[o]}}", "title", title, "kind", kind, "command", "title", title,
                        "command", command, "arguments", arg_steal);
  if (a && diagnostics && json_array_size(diagnostics)) json_object_set(a, "diagnostics", (json_t *)diagnostics);
  return a;
}

json_t *lsp_code_actions(const json_t *params, int literals) {
  const json_t *td = json_object_get(params, "textDocument");
  const char *uri = json_string_value(json_object_get(td, "uri"));
  lsp_range r;
  if (!uri || lsp_range_parse(json_object_get(params, "range"), &r)) return NULL;
  const json_t *ctx = json_object_get(params, "context");
  const json_t *diags = json_object_get(ctx, "diagnostics");
  const json_t *only = json_object_get(ctx, "only");
  json_t *dcopy = json_is_array(diags) ? json_deep_copy(diags) : json_array();
  json_t *out = json_array();
  if (!out || !dcopy) goto fail;
  if (kind_wanted(only, "quickfix"))
    json_array_append_new(out, action("qcoder: fix", "quickfix", "qcoder.fix",
                                      json_pack("{s:s, s:o, s:O}", "uri", uri, "range", lsp_range_json(r),
                                                "diagnostics", dcopy),
                                      dcopy));
  if (kind_wanted(only, "qcoder.explain"))
    json_array_append_new(out, action("qcoder: explain", "qcoder.explain", "qcoder.explain",
                                      json_pack("{s:s, s:o}", "uri", uri, "range", lsp_range_json(r)), NULL));
  if (kind_wanted(only, "refactor.rewrite"))
    json_array_append_new(out, action("qcoder: refactor\xe2\x80\xa6", "refactor.rewrite", "qcoder.refactor",
                                      json_pack("{s:s, s:o}", "uri", uri, "range", lsp_range_json(r)), NULL));
  json_decref(dcopy);
  if (!literals) { /* an old client: the commands alone */
    json_t *cmds = json_array();
    size_t i;
    json_t *a;
    json_array_foreach(out, i, a) json_array_append(cmds, json_object_get(a, "command"));
    json_decref(out);
    return cmds;
  }
  return out;
fail:
  json_decref(dcopy);
  json_decref(out);
  return NULL;
}

/* ---- prompts ----------------------------------------------------------------------- */

/* Byte offsets of the start of each line of text (line i starts at starts[i]); n lines. */
static size_t *line_starts(const char *t, size_t len, size_t *n) {
  size_t cap = 64, k = 0;
  size_t *v = malloc(cap * sizeof *v);
  if (!v) return NULL;
  v[k++] = 0;
  for (size_t i = 0; i < len; i++) {
    int brk = t[i] == '\n' || (t[i] == '\r' && !(i + 1 < len && t[i + 1] == '\n'));
    if (!brk) continue;
    if (k == cap) {
      size_t *nv = realloc(v, (cap *= 2) * sizeof *nv);
      if (!nv) {
        free(v);
        return NULL;
      }
      v = nv;
    }
    v[k++] = i + 1;
  }
  *n = k;
  return v;
}

/* Length of line i without its break. */
static size_t line_len(const char *t, size_t len, const size_t *starts, size_t n, size_t i) {
  size_t e = i + 1 < n ? starts[i + 1] : len;
  while (e > starts[i] && (t[e - 1] == '\n' || t[e - 1] == '\r')) e--;
  return e - starts[i];
}

static const char *severity_name(const json_t *sev) {
  switch (json_is_integer(sev) ? (int)json_integer_value(sev) : 0) {
  case 1: return "error";
  case 2: return "warning";
  case 3: return "info";
  case 4: return "hint";
  default: return "problem";
  }
}

/* Append `s` with control characters (but newlines and tabs) dropped, at most max bytes. */
static void put_clean(qc_buf *b, const char *s, size_t n, size_t max) {
  if (n > max) n = qc_utf8_complete_len(s, max);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 && c != '\n' && c != '\t') c = ' ';
    qc_buf_putc(b, (char)c);
  }
}

static void put_diagnostics(qc_buf *b, const json_t *diags) {
  size_t n = json_array_size(diags);
  if (!n) return;
  qc_buf_puts(b, "\nDiagnostics reported there:\n");
  for (size_t i = 0; i < n && i < LSP_PROMPT_MAX_DIAGNOSTICS; i++) {
    const json_t *d = json_array_get(diags, i);
    lsp_range r = {{0, 0}, {0, 0}};
    lsp_range_parse(json_object_get(d, "range"), &r);
    const char *msg = json_string_value(json_object_get(d, "message"));
    const char *src = json_string_value(json_object_get(d, "source"));
    const json_t *code = json_object_get(d, "code");
    qc_buf_printf(b, "- line %u, column %u: %s", r.start.line + 1, r.start.character + 1,
                  severity_name(json_object_get(d, "severity")));
    if (src || code) {
      qc_buf_puts(b, " [");
      if (src) put_clean(b, src, strlen(src), 80);
      if (json_is_string(code)) qc_buf_printf(b, "%s%.40s", src ? " " : "", json_string_value(code));
      else if (json_is_integer(code)) qc_buf_printf(b, "%s%lld", src ? " " : "", (long long)json_integer_value(code));
      qc_buf_puts(b, "]");
    }
    qc_buf_puts(b, ": ");
    if (msg) put_clean(b, msg, strlen(msg), LSP_PROMPT_MAX_DIAGNOSTIC_BYTES);
    qc_buf_putc(b, '\n');
  }
  if (n > LSP_PROMPT_MAX_DIAGNOSTICS)
    qc_buf_printf(b, "- ... and %zu more\n", n - LSP_PROMPT_MAX_DIAGNOSTICS);
}

/* Quote lines [first, last] of the document with `ctx` lines around them, numbered, the
 * target lines marked with ">"; within LSP_PROMPT_MAX_QUOTE_BYTES. */
static void put_quote(qc_buf *b, const lsp_prompt_input *in, size_t first, size_t last) {
  size_t n = 0;
  size_t *st = line_starts(in->text, in->len, &n);
  if (!st) return;
  if (last >= n) last = n - 1;
  if (first > last) first = last;
  size_t from = first > LSP_PROMPT_CONTEXT_LINES ? first - LSP_PROMPT_CONTEXT_LINES : 0;
  size_t to = last + LSP_PROMPT_CONTEXT_LINES < n ? last + LSP_PROMPT_CONTEXT_LINES : n - 1;
  /* a file ending in a newline has an empty last "line": do not show it as context */
  if (to > last && to == n - 1 && line_len(in->text, in->len, st, n, to) == 0) to--;
  qc_buf_printf(b, "\n```%s\n", in->language_id ? in->language_id : "");
  size_t used = 0;
  for (size_t i = from; i <= to; i++) {
    size_t ll = line_len(in->text, in->len, st, n, i);
    if (used + ll > LSP_PROMPT_MAX_QUOTE_BYTES) {
      qc_buf_printf(b, "... (%zu more lines)\n", to - i + 1);
      break;
    }
    used += ll;
    qc_buf_printf(b, "%c%5zu  ", (i >= first && i <= last) ? '>' : ' ', i + 1);
    put_clean(b, in->text + st[i], ll, ll);
    qc_buf_putc(b, '\n');
  }
  qc_buf_puts(b, "```\n");
  free(st);
}

char *lsp_prompt_build(const lsp_prompt_input *in) {
  qc_buf b;
  qc_buf_init(&b, LSP_PROMPT_MAX_QUOTE_BYTES * 2 + LSP_MAX_INSTRUCTION_BYTES * 2 + (64 << 10));
  const char *path = in->path ? in->path : "(unnamed)";
  size_t first = 0, last = 0;
  int has_quote = in->text && in->has_range;
  char lines[64] = "";
  if (has_quote) {
    first = in->range.start.line;
    last = in->range.end.line;
    /* a range ending at column 0 of a line does not include that line */
    if (last > first && in->range.end.character == 0) last--;
    if (first == last) snprintf(lines, sizeof lines, "line %zu", first + 1);
    else snprintf(lines, sizeof lines, "lines %zu-%zu", first + 1, last + 1);
  }
  const char *ins = in->instruction;
  switch (in->cmd) {
  case LSP_CMD_FIX:
    qc_buf_printf(&b, "Fix the problem in %s of `%s` (the lines marked with \">\" below).\n", lines, path);
    if (ins) qc_buf_printf(&b, "The user says: %s\n", ins);
    if (in->diagnostics) put_diagnostics(&b, in->diagnostics);
    if (has_quote) put_quote(&b, in, first, last);
    qc_buf_puts(&b, "\nMake the smallest change that fixes it: edit the file with your tools (the file may "
                    "have unsaved changes; read it from the workspace, not from memory). Change other lines or "
                    "files only when the fix needs it. Then answer with one or two sentences saying what was "
                    "wrong and what you changed.\n");
    break;
  case LSP_CMD_REFACTOR:
    qc_buf_printf(&b, "Refactor %s of `%s` (the lines marked with \">\" below).\n", lines, path);
    qc_buf_printf(&b, "Instruction: %s\n", ins ? ins : "improve the code's clarity without changing its behaviour");
    if (has_quote) put_quote(&b, in, first, last);
    qc_buf_puts(&b, "\nRewrite those lines as instructed by editing the file with your tools; keep the "
                    "behaviour the same unless the instruction says otherwise, and update callers in other "
                    "files if a signature changes. Then answer with one or two sentences saying what you "
                    "changed.\n");
    break;
  case LSP_CMD_EXPLAIN:
    qc_buf_printf(&b, "Explain %s of `%s` (the lines marked with \">\" below).\n", lines, path);
    if (has_quote) put_quote(&b, in, first, last);
    qc_buf_puts(&b, "\nSay what the marked code does and why, for a programmer reading it for the first time: "
                    "its purpose, its inputs and outputs, anything surprising or risky. Look up definitions "
                    "with your tools when it helps. Do not change any file. Answer in a few short paragraphs "
                    "of plain text.\n");
    break;
  case LSP_CMD_ASK:
    qc_buf_printf(&b, "%s\n", ins ? ins : "");
    if (in->text) {
      if (has_quote) {
        qc_buf_printf(&b, "\nThe question is about %s of `%s` (marked with \">\"):\n", lines, path);
        put_quote(&b, in, first, last);
      } else {
        qc_buf_printf(&b, "\n(The user is looking at `%s`.)\n", path);
      }
    }
    qc_buf_puts(&b, "\nAnswer the question; look at the code with your tools when needed. Do not change any "
                    "file.\n");
    break;
  case LSP_CMD_RUN:
  default:
    qc_buf_printf(&b, "%s\n", ins ? ins : "");
    break;
  }
  return qc_buf_detach(&b, NULL);
}
