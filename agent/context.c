/* context.c — keeping the conversation inside the context window, visibly.
 *
 * The budget is the backend's real window (the engine session's n_ctx, or the size
 * configured for a remote server) minus room for the reply (the per-call reply cap, at
 * most a quarter of the window). Token counts are exact for the local engine
 * (eng_count_tokens) and for a remote with a tokenizer GGUF; otherwise the documented
 * estimate of backend.h.
 *
 * The conversation is append-only — that is what keeps the engine's prefix cache valid
 * turn after turn — so nothing is touched until the next prompt would not fit. Then, in
 * order, each step reported with an AGENT_EVENT_COMPACTION event and never silently:
 *  1. elide old tool outputs, oldest first, keeping the newest few: the content becomes
 *     "[output elided to save context: N lines; re-run the tool if needed]";
 *  2. summarise the older turns with one model call; the summary replaces them as a single
 *     message, and the recent turns stay as they were;
 *  3. elide the remaining tool outputs but the very last;
 * and if it still does not fit, the run stops with AGENT_ECONTEXT saying by how much.
 * Every change is written to the store (elided rows updated, summarised rows kept
 * inactive).
 */
#include <stdlib.h>
#include <string.h>

#include "agent/chat_format.h"
#include "agent/session.h"
#include "agent/store.h"

static const char k_stub_prefix[] = "[output elided to save context: ";

uint32_t agent__context_size(agent_session *s) {
  if (s->opts.context_size) return s->opts.context_size;
  return s->backend->ops->n_ctx(s->bind);
}

long agent__reply_reserve(agent_session *s) {
  long per_call = s->opts.max_reply_tokens > 0 ? s->opts.max_reply_tokens : s->backend->opts.max_reply_tokens;
  long quarter = (long)agent__context_size(s) / 4;
  return per_call < quarter ? per_call : quarter;
}

static long count(agent_session *s, const char *text, size_t len) {
  return s->backend->ops->count_tokens(s->backend, text, len);
}

static int render_count(agent_session *s, qc_buf *prompt, long *tokens) {
  qc_buf_reset(prompt);
  int rc = agent__session_render(s, prompt);
  if (rc) return rc;
  *tokens = count(s, prompt->data, prompt->len);
  return AGENT_OK;
}

static void compaction_event(agent_session *s, const char *text) {
  agent_event ev = {.type = AGENT_EVENT_COMPACTION, .text = text, .text_len = strlen(text)};
  agent__emit(s, &ev);
  qc_info("session %s: %s", s->id, text);
}

/* Elide tool outputs oldest first, sparing the newest `keep`, until the estimate fits
 * `budget`. Returns how many were elided. */
static int elide(agent_session *s, int keep, long *tokens, long budget) {
  size_t n = json_array_size(s->msgs);
  int n_tool = 0;
  for (size_t i = 0; i < n; i++)
    if (!strcmp(json_string_value(json_object_get(json_array_get(s->msgs, i), "role")) ?: "", "tool")) n_tool++;
  int seen = 0, elided = 0;
  long saved = 0;
  for (size_t i = 1; i < n && *tokens > budget; i++) {
    json_t *m = json_array_get(s->msgs, i);
    if (strcmp(json_string_value(json_object_get(m, "role")) ?: "", "tool")) continue;
    if (seen++ >= n_tool - keep) break;
    json_t *c = json_object_get(m, "content");
    const char *text = json_string_value(c);
    size_t len = json_string_length(c);
    if (!text || len < AGENT__ELIDE_MIN_BYTES || qc_str_has_prefix(text, k_stub_prefix)) continue;
    size_t lines = 1;
    for (size_t k = 0; k < len; k++) lines += text[k] == '\n';
    char *stub = qc_asprintf("%s%zu lines; re-run the tool if needed]", k_stub_prefix, lines);
    if (!stub) break;
    long before = count(s, text, len), after = count(s, stub, strlen(stub));
    json_object_set_new(m, "content", json_string(stub));
    free(stub);
    if (s->store) agent__store_set_content(s->store, s->id, s->seqs[i], m);
    *tokens -= before - after;
    saved += before - after;
    elided++;
  }
  if (elided) {
    char *msg = qc_asprintf("Elided %d old tool output%s (about %ld tokens) to fit the context window of %u tokens",
                            elided, elided == 1 ? "" : "s", saved, agent__context_size(s));
    if (msg) compaction_event(s, msg);
    free(msg);
  }
  return elided;
}

static void transcript_add(qc_buf *t, const char *who, const char *text, size_t len) {
  qc_buf_printf(t, "%s: ", who);
  if (len > AGENT__SUMMARY_MSG_MAX) {
    size_t k = qc_utf8_complete_len(text, AGENT__SUMMARY_MSG_MAX);
    qc_buf_append(t, text, k);
    qc_buf_printf(t, " [… %zu more bytes]", len - k);
  } else {
    qc_buf_append(t, text, len);
  }
  qc_buf_puts(t, "\n\n");
}

static long msg_tokens(agent_session *s, const json_t *m) {
  char *d = json_dumps(m, JSON_COMPACT);
  long n = d ? count(s, d, strlen(d)) : 0;
  free(d);
  return n + 8;
}

typedef struct sum_ctx {
  qc_buf out;
} sum_ctx;

static void sum_text(void *user, const char *text, size_t len) { qc_buf_append(&((sum_ctx *)user)->out, text, len); }

/* Replace the older turns by a summary. Returns AGENT_OK (done), AGENT_ECONTEXT (nothing
 * to summarise) or the failure of the model call. */
static int summarise(agent_session *s, long budget, char **errmsg) {
  size_t n = json_array_size(s->msgs);
  /* the room the conversation has: the budget less the system prompt and the tools */
  json_t *head = json_array();
  json_array_append(head, json_array_get(s->msgs, 0));
  qc_buf hb;
  qc_buf_init(&hb, 0);
  long fixed = agent__render(&hb, head, s->tools, 1, NULL) == AGENT_OK ? count(s, hb.data, hb.len) : 0;
  qc_buf_release(&hb);
  json_decref(head);
  long half = (budget - fixed) / 2;
  /* the cut: the earliest non-tool message k >= 2 whose tail fits half that room */
  long tail = 0;
  size_t k = 0;
  long *tok = calloc(n, sizeof *tok);
  if (!tok) return AGENT_ENOMEM;
  for (size_t i = n; i-- > 1;) tok[i] = msg_tokens(s, json_array_get(s->msgs, i));
  for (size_t i = n; i-- > 2;) {
    tail += tok[i];
    const char *role = json_string_value(json_object_get(json_array_get(s->msgs, i), "role")) ?: "";
    if (strcmp(role, "tool") == 0) continue;
    if (tail <= half || k == 0) k = i;
    if (tail > half) break;
  }
  free(tok);
  if (k < 2) return AGENT_ECONTEXT;

  /* the transcript of msgs[1..k) */
  qc_buf t;
  qc_buf_init(&t, 0);
  for (size_t i = 1; i < k; i++) {
    json_t *m = json_array_get(s->msgs, i);
    const char *role = json_string_value(json_object_get(m, "role")) ?: "";
    qc_buf c;
    qc_buf_init(&c, 0);
    agent__content_text(&c, json_object_get(m, "content"));
    if (!strcmp(role, "assistant")) {
      if (c.len) transcript_add(&t, "Assistant", c.data, c.len);
      size_t j;
      json_t *call;
      json_array_foreach(json_object_get(m, "tool_calls"), j, call) {
        json_t *fn = json_object_get(call, "function");
        char *args = json_dumps(json_object_get(fn, "arguments"), JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
        char *line = qc_asprintf("%s(%s)", json_string_value(json_object_get(fn, "name")) ?: "?", args ? args : "");
        if (line) transcript_add(&t, "Tool call", line, strlen(line));
        free(line);
        free(args);
      }
    } else if (!strcmp(role, "tool")) {
      transcript_add(&t, "Tool result", c.data, c.len);
    } else {
      transcript_add(&t, !strcmp(role, "user") ? "User" : role, c.data, c.len);
    }
    qc_buf_release(&c);
  }
  /* the summary request must fit too: drop the oldest part of the transcript if needed */
  long max_summary = AGENT__SUMMARY_MAX_TOKENS < (long)agent__context_size(s) / 8 ? AGENT__SUMMARY_MAX_TOKENS
                                                                                  : (long)agent__context_size(s) / 8;
  if (max_summary < 16) max_summary = 16;
  long room = (long)agent__context_size(s) - max_summary - 200;
  long tt = count(s, t.data, t.len);
  if (tt > room && room > 0) {
    size_t drop = (size_t)((double)t.len * (double)(tt - room) / (double)tt) + 64;
    if (drop >= t.len) drop = t.len;
    while (drop < t.len && ((unsigned char)t.data[drop] & 0xC0) == 0x80) drop++;
    qc_buf_consume(&t, drop);
    char *marked = qc_asprintf("[… the earliest part of the conversation is omitted here …]\n\n%s", t.data);
    qc_buf_reset(&t);
    if (marked) qc_buf_puts(&t, marked);
    free(marked);
  }
  json_t *req_msgs = json_pack(
      "[{s:s, s:s}, {s:s, s:s++}]", "role", "system", "content",
      "You summarise the history of a coding session so that the agent can continue it with less context.",
      "role", "user", "content",
      "Summarise the conversation below for the agent that continues it. Keep the user's requests and "
      "constraints, decisions made, files read or changed (with paths) and how, commands run and their results, "
      "problems still open and what remains to do. Be factual and brief (at most 300 words). Reply with the "
      "summary only, without tool calls.\n\n<conversation>\n",
      t.data, "</conversation>");
  qc_buf_release(&t);
  if (!req_msgs) return AGENT_ENOMEM;
  qc_buf prompt;
  qc_buf_init(&prompt, 0);
  int rc = agent__render(&prompt, req_msgs, NULL, 1, NULL);
  json_t *no_tools = json_array();
  sum_ctx sc;
  qc_buf_init(&sc.out, 1 << 20);
  agent__gen_req req = {.prompt = prompt.data, .prompt_len = prompt.len, .messages = req_msgs, .tools = no_tools,
                        .max_tokens = (int)max_summary, .sampling = NULL, .cancel = &s->cancel,
                        .on_text = sum_text, .user = &sc};
  agent__gen_res res = {0};
  if (!rc) rc = s->backend->ops->generate(s->bind, &req, &res);
  qc_buf_release(&prompt);
  json_decref(req_msgs);
  json_decref(no_tools);
  if (!rc && res.finish == AGENT__FIN_CANCELLED) rc = AGENT_ECANCELLED;
  if (rc) {
    if (errmsg && rc != AGENT_ECANCELLED)
      *errmsg = qc_asprintf("summarising the conversation to fit the context window failed: %s",
                            res.error ? res.error : agent_strerror(rc));
    agent__gen_res_release(&res);
    qc_buf_release(&sc.out);
    return rc;
  }
  agent__gen_res_release(&res);
  /* the summary is prose: anything that looks like a tool call is cut */
  char *cut = strstr(sc.out.data, "<tool_call>");
  if (cut) qc_buf_truncate(&sc.out, (size_t)(cut - sc.out.data));
  size_t a, sl = agent__py_strip(sc.out.data, sc.out.len, &a);
  if (!sl) {
    qc_buf_release(&sc.out);
    if (errmsg) *errmsg = strdup("summarising the conversation to fit the context window gave an empty summary");
    return AGENT_ECONTEXT;
  }
  char *content = qc_asprintf("[Summary of the earlier conversation, written to save context]\n%.*s", (int)sl, sc.out.data + a);
  qc_buf_release(&sc.out);
  if (!content) return AGENT_ENOMEM;

  /* the new conversation: system, summary, msgs[k..) */
  json_t *tail_msgs = json_array();
  json_array_append_new(tail_msgs, json_pack("{s:s, s:s}", "role", "user", "content", content));
  free(content);
  for (size_t i = k; i < n; i++) json_array_append(tail_msgs, json_array_get(s->msgs, i));
  size_t nt = json_array_size(tail_msgs);
  if (s->store) agent__store_replace_tail(s->store, s->id, s->seqs[1], tail_msgs, s->next_seq);
  json_t *sys = json_incref(json_array_get(s->msgs, 0));
  json_array_clear(s->msgs);
  json_array_append_new(s->msgs, sys);
  json_array_extend(s->msgs, tail_msgs);
  for (size_t i = 0; i < nt; i++) s->seqs[1 + i] = s->next_seq + (int64_t)i;
  s->next_seq += (int64_t)nt;
  json_decref(tail_msgs);
  char *msg = qc_asprintf("Summarised %zu earlier message%s into one to fit the context window of %u tokens", k - 1,
                          k - 1 == 1 ? "" : "s", agent__context_size(s));
  if (msg) compaction_event(s, msg);
  free(msg);
  return AGENT_OK;
}

int agent__context_fit(agent_session *s, qc_buf *prompt, long *tokens, char **errmsg) {
  long budget = (long)agent__context_size(s) - agent__reply_reserve(s);
  int rc = render_count(s, prompt, tokens);
  if (rc || *tokens <= budget) return rc;
  int keep = s->opts.keep_tool_outputs > 0 ? s->opts.keep_tool_outputs : AGENT__KEEP_TOOL_OUTPUTS;
  long est = *tokens;
  if (elide(s, keep, &est, budget) && (rc = render_count(s, prompt, tokens))) return rc;
  if (*tokens <= budget) return AGENT_OK;
  rc = summarise(s, budget, errmsg);
  if (rc && rc != AGENT_ECONTEXT) return rc;
  if (errmsg && *errmsg && rc == AGENT_ECONTEXT) { /* an empty summary: go on with elision */
    free(*errmsg);
    *errmsg = NULL;
  }
  if ((rc = render_count(s, prompt, tokens))) return rc;
  if (*tokens <= budget) return AGENT_OK;
  est = *tokens;
  if (elide(s, 1, &est, budget) && (rc = render_count(s, prompt, tokens))) return rc;
  if (*tokens <= budget) return AGENT_OK;
  if (errmsg)
    *errmsg = qc_asprintf("the conversation needs %ld tokens but the context window of %u tokens leaves %ld after "
                          "keeping %ld for the reply, even after compaction; start a new session or use a model "
                          "with a larger context",
                          *tokens, agent__context_size(s), budget, agent__reply_reserve(s));
  return AGENT_ECONTEXT;
}
