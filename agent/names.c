/* names.c — the agent's error table, mode and stop-reason names, sampling defaults, and the
 * mapping of agent events onto ACP `session/update` objects.
 *
 * The event mapping lives here, next to the names it uses, so the protocol layer never
 * re-derives ACP shapes: one agent_event is exactly one session/update.
 */
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"

const char *agent_strerror(int code) {
  switch (code) {
  case AGENT_OK: return "ok";
#define AGENT__ERR_CASE(name, msg) case AGENT_E##name: return msg;
    AGENT_ERR_MAP(AGENT__ERR_CASE)
#undef AGENT__ERR_CASE
  default: return "unknown error";
  }
}

static const char *const k_modes[] = {"read-only", "ask", "auto-edit", "full-auto"};

const char *agent_mode_name(agent_mode m) {
  return (unsigned)m < sizeof k_modes / sizeof *k_modes ? k_modes[m] : "ask";
}

int agent_mode_parse(const char *name, agent_mode *out) {
  if (!name) return AGENT_EARG;
  for (unsigned i = 0; i < sizeof k_modes / sizeof *k_modes; i++)
    if (strcmp(name, k_modes[i]) == 0) {
      *out = (agent_mode)i;
      return AGENT_OK;
    }
  /* the spellings other tools use */
  if (strcmp(name, "readonly") == 0 || strcmp(name, "read_only") == 0) *out = AGENT_MODE_READ_ONLY;
  else if (strcmp(name, "auto_edit") == 0 || strcmp(name, "autoedit") == 0) *out = AGENT_MODE_AUTO_EDIT;
  else if (strcmp(name, "full_auto") == 0 || strcmp(name, "yolo") == 0) *out = AGENT_MODE_FULL_AUTO;
  else return AGENT_EARG;
  return AGENT_OK;
}

const char *agent_stop_name(agent_stop s) {
  switch (s) {
  case AGENT_STOP_END_TURN: return "end_turn";
  case AGENT_STOP_MAX_TOKENS: return "max_tokens";
  case AGENT_STOP_MAX_TURN_REQUESTS: return "max_turn_requests";
  case AGENT_STOP_REFUSAL: return "refusal";
  case AGENT_STOP_CANCELLED: return "cancelled";
  case AGENT_STOP_ERROR: return "error";
  }
  return "error";
}

void agent_sampling_default(agent_sampling *s) {
  s->temperature = 0.7f;
  s->top_p = 0.8f;
  s->top_k = 20;
  s->min_p = 0.0f;
  s->repeat_penalty = 1.05f;
  s->seed = 0;
}

void agent_run_result_release(agent_run_result *r) {
  if (!r) return;
  free(r->error);
  r->error = NULL;
}

/* ---- events → ACP ------------------------------------------------------------------ */

static json_t *text_block(const char *text, size_t len) {
  return json_pack("{s:s, s:s%}", "type", "text", "text", text ? text : "", text ? len : 0);
}

static void set_str(json_t *o, const char *k, const char *v) {
  if (v) json_object_set_new(o, k, json_string(v));
}

static void add_tool_fields(json_t *u, const agent_event *ev) {
  set_str(u, "toolCallId", ev->tool_call_id);
  set_str(u, "title", ev->title);
  set_str(u, "kind", ev->kind);
  set_str(u, "status", ev->status);
  if (ev->content || ev->diff) {
    json_t *content = json_array();
    if (ev->diff) {
      json_t *d = json_pack("{s:s, s:s, s:o, s:s}", "type", "diff", "path", ev->diff->path ? ev->diff->path : "",
                            "oldText", ev->diff->old_text ? json_string(ev->diff->old_text) : json_null(),
                            "newText", ev->diff->new_text ? ev->diff->new_text : "");
      if (d) json_array_append_new(content, d);
    }
    if (ev->content)
      json_array_append_new(content, json_pack("{s:s, s:o}", "type", "content", "content",
                                               text_block(ev->content, strlen(ev->content))));
    json_object_set_new(u, "content", content);
  }
  if (ev->has_locations) {
    json_t *locs = json_array();
    for (size_t i = 0; i < ev->n_locations; i++) {
      json_t *l = json_pack("{s:s}", "path", ev->locations[i].path ? ev->locations[i].path : "");
      if (l && ev->locations[i].line > 0) json_object_set_new(l, "line", json_integer(ev->locations[i].line));
      if (l) json_array_append_new(locs, l);
    }
    json_object_set_new(u, "locations", locs);
  }
  if (ev->raw_input) json_object_set(u, "rawInput", (json_t *)ev->raw_input);
  if (ev->raw_output) json_object_set(u, "rawOutput", (json_t *)ev->raw_output);
}

json_t *agent_event_to_acp(const agent_event *ev) {
  json_t *u = NULL;
  switch (ev->type) {
  case AGENT_EVENT_MESSAGE_CHUNK:
  case AGENT_EVENT_USER_MESSAGE_CHUNK:
    u = json_pack("{s:s, s:o}", "sessionUpdate",
                  ev->type == AGENT_EVENT_MESSAGE_CHUNK ? "agent_message_chunk" : "user_message_chunk", "content",
                  text_block(ev->text, ev->text_len));
    break;
  case AGENT_EVENT_TOOL_CALL:
    u = json_pack("{s:s}", "sessionUpdate", "tool_call");
    if (u) {
      add_tool_fields(u, ev);
      if (!ev->status) json_object_set_new(u, "status", json_string("pending"));
    }
    break;
  case AGENT_EVENT_TOOL_CALL_UPDATE:
    u = json_pack("{s:s}", "sessionUpdate", "tool_call_update");
    if (u) add_tool_fields(u, ev);
    break;
  case AGENT_EVENT_PLAN: {
    json_t *entries = json_array();
    for (size_t i = 0; i < ev->n_plan; i++)
      json_array_append_new(entries, json_pack("{s:s, s:s, s:s}", "content",
                                               ev->plan[i].content ? ev->plan[i].content : "",
                                               "priority", ev->plan[i].priority ? ev->plan[i].priority : "medium",
                                               "status", ev->plan[i].status ? ev->plan[i].status : "pending"));
    u = json_pack("{s:s, s:o}", "sessionUpdate", "plan", "entries", entries);
    break;
  }
  case AGENT_EVENT_USAGE:
    u = json_pack("{s:s, s:I, s:I}", "sessionUpdate", "usage_update", "used", (json_int_t)ev->used_tokens,
                  "size", (json_int_t)ev->context_size);
    break;
  case AGENT_EVENT_COMPACTION:
  case AGENT_EVENT_STOP:
    break;
  }
  return u;
}
