/* progress.c — an agent run's ACP session/update events as LSP $/progress reports, and
 * its answer text.
 *
 * The editor shows one line of progress per command, so most events are not worth a
 * report: a tool call is ("Read src/main.c"), a failed tool call is, a plan is (its
 * share of completed entries is the only honest percentage there is), and the moment the
 * model starts writing its answer is. Message chunks are collected instead: the text the
 * model wrote after its last tool call is the answer (what it said before calling tools
 * is narration); when it wrote nothing after the last call, all of its text is. The diffs
 * of completed tool calls name the files the run changed.
 */
#include "lsp/lsp.h"

#include <stdlib.h>
#include <string.h>

/* A report message shown in the editor: one line. */
#define PROGRESS_MESSAGE_BYTES 160

struct lsp_progress {
  qc_buf all;          /* every agent_message_chunk */
  qc_buf last;         /* those after the last tool call */
  char *answer;        /* lsp_progress_text's trimmed copy */
  int tools, failures;
  json_t *changed;     /* paths of completed edits (ACP diff content), in order, once */
  int percentage;      /* -1: none reported yet */
  int writing;         /* "writing the answer" reported since the last tool call */
  int thinking;
};

lsp_progress *lsp_progress_new(void) {
  lsp_progress *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  qc_buf_init(&p->all, LSP_MAX_RESULT_TEXT_BYTES);
  qc_buf_init(&p->last, LSP_MAX_RESULT_TEXT_BYTES);
  p->percentage = -1;
  p->changed = json_array();
  if (!p->changed) {
    lsp_progress_free(p);
    return NULL;
  }
  return p;
}

void lsp_progress_free(lsp_progress *p) {
  if (!p) return;
  qc_buf_release(&p->all);
  qc_buf_release(&p->last);
  free(p->answer);
  json_decref(p->changed);
  free(p);
}

/* A completed tool call's diffs: the files it changed. */
static void note_diffs(lsp_progress *p, const json_t *update) {
  const char *status = json_string_value(json_object_get(update, "status"));
  if (!status || strcmp(status, "completed") != 0) return;
  size_t i, k;
  const json_t *c, *v;
  json_array_foreach(json_object_get(update, "content"), i, c) {
    const char *type = json_string_value(json_object_get(c, "type"));
    const char *path = json_string_value(json_object_get(c, "path"));
    if (!type || strcmp(type, "diff") != 0 || !path || path[0] != '/') continue;
    int seen = 0;
    json_array_foreach(p->changed, k, v) seen |= strcmp(json_string_value(v), path) == 0;
    if (!seen) json_array_append_new(p->changed, json_string(path));
  }
}

const json_t *lsp_progress_changed(const lsp_progress *p) { return p ? p->changed : NULL; }

/* Append as much of s as fits (whole characters). */
static void append_capped(qc_buf *b, const char *s, size_t n) {
  size_t room = b->max > b->len ? b->max - b->len : 0;
  if (n > room) n = qc_utf8_complete_len(s, room);
  qc_buf_append(b, s, n);
}

/* A one-line message: newlines become spaces, cut at a character boundary. */
static json_t *report(lsp_progress *p, const char *msg, int pct) {
  char line[PROGRESS_MESSAGE_BYTES + 4];
  size_t n = strlen(msg);
  if (n > PROGRESS_MESSAGE_BYTES) n = qc_utf8_complete_len(msg, PROGRESS_MESSAGE_BYTES);
  for (size_t i = 0; i < n; i++) line[i] = (msg[i] == '\n' || msg[i] == '\r' || msg[i] == '\t') ? ' ' : msg[i];
  line[n] = '\0';
  json_t *r = json_pack("{s:s, s:s}", "kind", "report", "message", line);
  if (r && pct >= 0) {
    if (pct > 100) pct = 100;
    if (pct < p->percentage) pct = p->percentage; /* never backwards */
    p->percentage = pct;
    json_object_set_new(r, "percentage", json_integer(pct));
  } else if (r && p->percentage >= 0) {
    json_object_set_new(r, "percentage", json_integer(p->percentage));
  }
  return r;
}

json_t *lsp_progress_feed(lsp_progress *p, const json_t *update) {
  const char *kind = json_string_value(json_object_get(update, "sessionUpdate"));
  if (!p || !kind) return NULL;
  if (!strcmp(kind, "agent_message_chunk")) {
    const json_t *c = json_object_get(update, "content");
    const char *text = json_string_value(json_object_get(c, "text"));
    if (!text) return NULL;
    size_t n = json_string_length(json_object_get(c, "text"));
    append_capped(&p->all, text, n);
    append_capped(&p->last, text, n);
    if (p->writing) return NULL;
    p->writing = 1;
    return report(p, "writing the answer", -1);
  }
  if (!strcmp(kind, "agent_thought_chunk")) {
    if (p->thinking) return NULL;
    p->thinking = 1;
    return report(p, "thinking", -1);
  }
  if (!strcmp(kind, "tool_call") || !strcmp(kind, "tool_call_update")) note_diffs(p, update);
  if (!strcmp(kind, "tool_call")) {
    p->tools++;
    p->writing = 0;
    qc_buf_reset(&p->last);
    const char *title = json_string_value(json_object_get(update, "title"));
    return report(p, title && *title ? title : "running a tool", -1);
  }
  if (!strcmp(kind, "tool_call_update")) {
    const char *status = json_string_value(json_object_get(update, "status"));
    if (!status || strcmp(status, "failed") != 0) return NULL;
    p->failures++;
    const char *title = json_string_value(json_object_get(update, "title"));
    char msg[PROGRESS_MESSAGE_BYTES];
    snprintf(msg, sizeof msg, "failed: %s", title && *title ? title : "a tool call");
    return report(p, msg, -1);
  }
  if (!strcmp(kind, "plan")) {
    const json_t *entries = json_object_get(update, "entries");
    size_t n = json_array_size(entries), done = 0;
    const char *current = NULL;
    for (size_t i = 0; i < n; i++) {
      const json_t *e = json_array_get(entries, i);
      const char *st = json_string_value(json_object_get(e, "status"));
      if (st && !strcmp(st, "completed")) done++;
      else if (st && !strcmp(st, "in_progress") && !current) current = json_string_value(json_object_get(e, "content"));
    }
    if (!n) return NULL;
    char msg[PROGRESS_MESSAGE_BYTES];
    if (current) snprintf(msg, sizeof msg, "%s (%zu/%zu)", current, done, n);
    else snprintf(msg, sizeof msg, "plan: %zu of %zu done", done, n);
    return report(p, msg, (int)(done * 100 / n));
  }
  return NULL;
}

const char *lsp_progress_text(const lsp_progress *pc) {
  lsp_progress *p = (lsp_progress *)pc; /* the trimmed copy is a cache */
  if (!p) return "";
  const qc_buf *src = p->last.len ? &p->last : &p->all;
  const char *s = src->data;
  size_t n = src->len;
  while (n && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')) s++, n--;
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == '\t')) n--;
  free(p->answer);
  p->answer = qc_strndup(s, n);
  return p->answer ? p->answer : "";
}

int lsp_progress_tool_calls(const lsp_progress *p) { return p ? p->tools : 0; }
int lsp_progress_tool_failures(const lsp_progress *p) { return p ? p->failures : 0; }
