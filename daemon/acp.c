/* acp.c — the Agent Client Protocol (v1) face of the daemon: capabilities, the methods'
 * parameters checked and turned into calls of the session service (sessions.h).
 *
 * Everything an ACP client sends is untrusted: each handler checks types, sizes and
 * paths and answers -32602 with a message that says what to fix. The shapes follow
 * the schema (schema/v1/schema.json), not the prose docs where they disagree (see
 * docs/acp.md). `initialize` itself lives with the daemon's built-in methods
 * (cmd_serve.c): it negotiates the version and keeps the client's capabilities on the
 * connection; this file only says which agent capabilities are true.
 *
 * qcoder's own settings ride in `_meta.qcoder` of session/new, load and resume:
 *   {"model": SPEC, "mode": "read-only"|"ask"|"auto-edit"|"full-auto", "maxSteps": N,
 *    "maxTokens": N, "testCommand": CMD, "sandbox": "require"|"prefer"|"off"}
 * and `_qcoder/configure {"model": SPEC}` sets a connection's default model (what
 * `qcoder acp --model` sends right after connecting).
 */
#include <string.h>
#include <sys/stat.h>

#include "daemon/sessions.h"

/* ---- parameters ------------------------------------------------------------------------- */

static int bad(rpc_req *req, const char *msg) {
  rpc_req_error(req, RPC_INVALID_PARAMS, msg, NULL);
  return -1;
}

static const char *str_param(const json_t *params, const char *key) {
  return json_string_value(json_object_get(params, key));
}

/* `cwd`: absolute and an existing directory. */
static int check_cwd(rpc_req *req, const char *cwd) {
  if (!cwd) return bad(req, "cwd is required: the absolute path of the project directory");
  if (cwd[0] != '/') {
    rpc_req_errorf(req, RPC_INVALID_PARAMS, "cwd must be an absolute path, not '%s'", cwd);
    return -1;
  }
  struct stat st;
  if (stat(cwd, &st) != 0 || !S_ISDIR(st.st_mode)) {
    rpc_req_errorf(req, RPC_INVALID_PARAMS, "cwd %s is not an existing directory", cwd);
    return -1;
  }
  return 0;
}

static int check_mcp_servers(rpc_req *req, const json_t *v) {
  if (!v || json_is_null(v)) return 0;
  if (!json_is_array(v)) return bad(req, "mcpServers must be an array of MCP server descriptions");
  if (json_array_size(v) > ACP_MAX_MCP_SERVERS) {
    rpc_req_errorf(req, RPC_INVALID_PARAMS, "at most %d MCP servers per session", ACP_MAX_MCP_SERVERS);
    return -1;
  }
  size_t i;
  json_t *s;
  json_array_foreach(v, i, s) {
    if (!json_is_object(s) || !json_is_string(json_object_get(s, "name"))) {
      rpc_req_errorf(req, RPC_INVALID_PARAMS, "mcpServers[%zu] needs a \"name\"", i);
      return -1;
    }
    const char *type = str_param(s, "type");
    if (type && strcmp(type, "stdio")) continue; /* http/sse: reported as unsupported, not refused */
    if (!json_is_string(json_object_get(s, "command")) || !*str_param(s, "command")) {
      rpc_req_errorf(req, RPC_INVALID_PARAMS, "mcpServers[%zu] (stdio) needs a \"command\"", i);
      return -1;
    }
    json_t *args = json_object_get(s, "args"), *env = json_object_get(s, "env");
    size_t j;
    json_t *x;
    if (args && !json_is_array(args)) goto bad_args;
    json_array_foreach(args, j, x) if (!json_is_string(x)) goto bad_args;
    if (env && !json_is_array(env)) goto bad_env;
    json_array_foreach(env, j, x) {
      if (!json_is_string(json_object_get(x, "name")) || !json_is_string(json_object_get(x, "value"))) goto bad_env;
      if (strchr(str_param(x, "name"), '=') || !*str_param(x, "name")) goto bad_env;
    }
    continue;
  bad_args:
    rpc_req_errorf(req, RPC_INVALID_PARAMS, "mcpServers[%zu].args must be an array of strings", i);
    return -1;
  bad_env:
    rpc_req_errorf(req, RPC_INVALID_PARAMS, "mcpServers[%zu].env must be an array of {\"name\", \"value\"} strings", i);
    return -1;
  }
  return 0;
}

/* `_meta.qcoder` into the open parameters. */
static int parse_meta(rpc_req *req, const json_t *params, acp_open_params *p) {
  p->mode = -1;
  p->sandbox = -1;
  json_t *q = json_object_get(json_object_get(params, "_meta"), "qcoder");
  if (!q || json_is_null(q)) return 0;
  if (!json_is_object(q)) return bad(req, "_meta.qcoder must be an object");
  json_t *v;
  if ((v = json_object_get(q, "model")) && !json_is_null(v)) {
    if (!json_is_string(v) || !*json_string_value(v))
      return bad(req, "_meta.qcoder.model must be a model spec: PATH.gguf, http(s)://HOST/v1 or script:FILE");
    p->model = json_string_value(v);
  }
  if ((v = json_object_get(q, "mode")) && !json_is_null(v)) {
    agent_mode m;
    if (!json_is_string(v) || agent_mode_parse(json_string_value(v), &m) != AGENT_OK)
      return bad(req, "_meta.qcoder.mode must be read-only, ask, auto-edit or full-auto");
    p->mode = (int)m;
  }
  if ((v = json_object_get(q, "maxSteps")) && !json_is_null(v)) {
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 10000)
      return bad(req, "_meta.qcoder.maxSteps must be an integer from 1 to 10000 (model calls per prompt)");
    p->max_steps = (int)json_integer_value(v);
  }
  if ((v = json_object_get(q, "maxTokens")) && !json_is_null(v)) {
    if (!json_is_integer(v) || json_integer_value(v) < 0)
      return bad(req, "_meta.qcoder.maxTokens must be a non-negative integer (generated tokens per prompt; 0 = none)");
    p->max_tokens = (long)json_integer_value(v);
  }
  if ((v = json_object_get(q, "testCommand")) && !json_is_null(v)) {
    if (!json_is_string(v)) return bad(req, "_meta.qcoder.testCommand must be a string (a shell command)");
    p->test_command = json_string_value(v);
  }
  if ((v = json_object_get(q, "sandbox")) && !json_is_null(v)) {
    const char *sv = json_string_value(v);
    if (sv && !strcmp(sv, "require")) p->sandbox = TOOL_SANDBOX_REQUIRE;
    else if (sv && !strcmp(sv, "prefer")) p->sandbox = TOOL_SANDBOX_PREFER;
    else if (sv && !strcmp(sv, "off")) p->sandbox = TOOL_SANDBOX_OFF;
    else return bad(req, "_meta.qcoder.sandbox must be require, prefer or off");
  }
  return 0;
}

static void open_common(rpc_req *req, const json_t *params, acp_open_kind kind) {
  if (!json_is_object(params)) {
    bad(req, "params must be an object");
    return;
  }
  acp_open_params p = {.kind = kind};
  if (kind != ACP_OPEN_NEW) {
    p.session_id = str_param(params, "sessionId");
    if (!p.session_id || !*p.session_id) {
      bad(req, "sessionId is required (session/list shows the saved sessions)");
      return;
    }
  }
  p.cwd = str_param(params, "cwd");
  if (check_cwd(req, p.cwd)) return;
  p.mcp_servers = json_object_get(params, "mcpServers");
  if (check_mcp_servers(req, p.mcp_servers)) return;
  if (parse_meta(req, params, &p)) return;
  acp_session_open(req, &p);
}

static void m_session_new(rpc_req *req, const json_t *params, void *user) {
  (void)user;
  open_common(req, params, ACP_OPEN_NEW);
}

static void m_session_load(rpc_req *req, const json_t *params, void *user) {
  (void)user;
  open_common(req, params, ACP_OPEN_LOAD);
}

static void m_session_resume(rpc_req *req, const json_t *params, void *user) {
  (void)user;
  open_common(req, params, ACP_OPEN_RESUME);
}

/* ---- prompts: content blocks to text -------------------------------------------------- */

/* Append one ContentBlock; -1 (answered) when it is refused. */
static int add_block(rpc_req *req, size_t i, const json_t *b, qc_buf *out) {
  const char *type = str_param(b, "type");
  if (!json_is_object(b) || !type) {
    rpc_req_errorf(req, RPC_INVALID_PARAMS, "prompt[%zu] is not a content block (it needs a \"type\")", i);
    return -1;
  }
  int rc = 0;
  if (!strcmp(type, "text")) {
    const char *t = str_param(b, "text");
    if (!t) goto missing;
    if (out->len && out->data[out->len - 1] != '\n') rc |= qc_buf_putc(out, '\n');
    rc |= qc_buf_puts(out, t);
  } else if (!strcmp(type, "resource_link")) {
    const char *uri = str_param(b, "uri"), *name = str_param(b, "name");
    if (!uri) goto missing;
    rc |= qc_buf_printf(out, "%s[Referenced: %s <%s>]", out->len ? "\n" : "", name ? name : uri, uri);
  } else if (!strcmp(type, "resource")) {
    json_t *r = json_object_get(b, "resource");
    const char *uri = str_param(r, "uri"), *text = str_param(r, "text");
    if (!uri) goto missing;
    if (out->len && out->data[out->len - 1] != '\n') rc |= qc_buf_putc(out, '\n');
    if (text) {
      rc |= qc_buf_printf(out, "<resource uri=\"%s\">\n%s%s</resource>\n", uri, text,
                          *text && text[strlen(text) - 1] == '\n' ? "" : "\n");
    } else {
      const char *mime = str_param(r, "mimeType");
      rc |= qc_buf_printf(out, "[Attached binary resource %s (%s); its content is not shown]\n", uri,
                          mime ? mime : "unknown type");
    }
  } else if (!strcmp(type, "image") || !strcmp(type, "audio")) {
    rpc_req_errorf(req, RPC_INVALID_PARAMS,
                   "prompt[%zu]: %s content is not supported (promptCapabilities.%s is false); send text", i, type,
                   type);
    return -1;
  } else {
    rpc_req_errorf(req, RPC_INVALID_PARAMS, "prompt[%zu]: unknown content type '%s'", i, type);
    return -1;
  }
  if (rc) {
    rpc_req_errorf(req, RPC_INVALID_PARAMS, "the prompt is larger than %u bytes", ACP_MAX_PROMPT_BYTES);
    return -1;
  }
  return 0;
missing:
  rpc_req_errorf(req, RPC_INVALID_PARAMS, "prompt[%zu] (%s) lacks a required field", i, type);
  return -1;
}

static void m_session_prompt(rpc_req *req, const json_t *params, void *user) {
  (void)user;
  const char *id = str_param(params, "sessionId");
  json_t *prompt = json_object_get(params, "prompt");
  if (!id) {
    bad(req, "sessionId is required");
    return;
  }
  if (!json_is_array(prompt) || !json_array_size(prompt)) {
    bad(req, "prompt must be a non-empty array of content blocks");
    return;
  }
  qc_buf text;
  qc_buf_init(&text, ACP_MAX_PROMPT_BYTES);
  size_t i;
  json_t *b;
  json_array_foreach(prompt, i, b) {
    if (add_block(req, i, b, &text)) {
      qc_buf_release(&text);
      return;
    }
  }
  acp_session_prompt(req, id, text.data);
  qc_buf_release(&text);
}

static void m_session_cancel(rpc_conn *c, const json_t *params, void *user) {
  (void)user;
  const char *id = str_param(params, "sessionId");
  if (acp_session_cancel(c, id) != 0) qc_debug("session/cancel for unknown session %s", id ? id : "(none)");
}

static void m_session_set_mode(rpc_req *req, const json_t *params, void *user) {
  (void)user;
  const char *id = str_param(params, "sessionId"), *mode = str_param(params, "modeId");
  agent_mode m;
  if (!id || !mode) {
    bad(req, "sessionId and modeId are required");
    return;
  }
  if (agent_mode_parse(mode, &m) != AGENT_OK) {
    rpc_req_errorf(req, RPC_INVALID_PARAMS, "unknown mode '%s': use read-only, ask, auto-edit or full-auto", mode);
    return;
  }
  acp_session_set_mode(req, id, m);
}

static void m_session_close(rpc_req *req, const json_t *params, void *user) {
  (void)user;
  const char *id = str_param(params, "sessionId");
  if (!id) {
    bad(req, "sessionId is required");
    return;
  }
  acp_session_close(req, id);
}

static void m_session_list(rpc_req *req, const json_t *params, void *user) {
  (void)user;
  const json_t *cwd = json_object_get(params, "cwd"), *cursor = json_object_get(params, "cursor");
  if ((cwd && !json_is_null(cwd) && !json_is_string(cwd)) || (cursor && !json_is_null(cursor) && !json_is_string(cursor))) {
    bad(req, "cwd and cursor must be strings when given");
    return;
  }
  acp_session_list(req, json_string_value(cwd), json_string_value(cursor));
}

static void m_authenticate(rpc_req *req, const json_t *params, void *user) {
  (void)params;
  (void)user;
  rpc_req_reply(req, json_object()); /* no authentication needed: authMethods is [] */
}

/* ---- qcoder extensions -------------------------------------------------------------- */

static void m_configure(rpc_req *req, const json_t *params, void *user) {
  (void)user;
  json_t *model = json_object_get(params, "model");
  if (model && !json_is_null(model) && (!json_is_string(model) || !*json_string_value(model))) {
    bad(req, "model must be a model spec (PATH.gguf, http(s)://HOST/v1, script:FILE) or null");
    return;
  }
  if (acp_conn_set_model(rpc_req_conn(req), json_string_value(model)) != QC_OK) {
    rpc_req_error(req, RPC_INTERNAL_ERROR, "out of memory", NULL);
    return;
  }
  rpc_req_reply(req, json_object());
}

static void m_sessions(rpc_req *req, const json_t *params, void *user) {
  (void)params;
  (void)user;
  rpc_req_reply(req, acp_sessions_snapshot());
}

int acp_register(rpc_server *srv) {
  int rc = acp_sessions_init(srv);
  if (rc) return rc;
  json_t *caps = rpc_server_agent_capabilities(srv);
  json_object_set_new(caps, "loadSession", json_true());
  json_object_set_new(caps, "promptCapabilities",
                      json_pack("{s:b, s:b, s:b}", "image", 0, "audio", 0, "embeddedContext", 1));
  json_object_set_new(caps, "mcpCapabilities", json_pack("{s:b, s:b}", "http", 0, "sse", 0));
  json_object_set_new(caps, "sessionCapabilities", json_pack("{s:{}, s:{}, s:{}}", "list", "resume", "close"));
  rc |= rpc_register(srv, "authenticate", m_authenticate, NULL);
  rc |= rpc_register(srv, "session/new", m_session_new, NULL);
  rc |= rpc_register(srv, "session/load", m_session_load, NULL);
  rc |= rpc_register(srv, "session/resume", m_session_resume, NULL);
  rc |= rpc_register(srv, "session/list", m_session_list, NULL);
  rc |= rpc_register(srv, "session/close", m_session_close, NULL);
  rc |= rpc_register(srv, "session/prompt", m_session_prompt, NULL);
  rc |= rpc_register(srv, "session/set_mode", m_session_set_mode, NULL);
  rc |= rpc_register_notification(srv, "session/cancel", m_session_cancel, NULL);
  rc |= rpc_register(srv, "_qcoder/configure", m_configure, NULL);
  rc |= rpc_register(srv, "_qcoder/sessions", m_sessions, NULL);
  return rc ? QC_EINVAL : QC_OK;
}
