/* test_remote.c — the remote OpenAI-compatible backend against a mock HTTP server on a
 * thread: streamed text, native tool calls, completions mode, retry after a 500, read
 * timeout, refused connection, a 401 with an error body, model discovery, cancel. */
#include <stdatomic.h>

#include "agent/agent.h"
#include "agent/backend.h"
#include "common/common.h"
#include "mock_http.h"
#include "tests/test.h"

typedef struct got {
  qc_buf text;
  qc_buf calls;
} got;

static void g_text(void *u, const char *s, size_t n) { qc_buf_append(&((got *)u)->text, s, n); }
static void g_call(void *u, const char *id, const char *name, const char *args, int cut) {
  qc_buf_printf(&((got *)u)->calls, "%s|%s|%s%s\n", id ? id : "-", name, args, cut ? "|cut" : "");
}

static agent_backend *open_remote(int port, agent_remote_api api, const char *model) {
  agent_backend_opts o;
  agent_backend_opts_init(&o);
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/", port);
  o.spec = url;
  o.api = api;
  o.model_name = model;
  o.retry_base_ms = 10;
  o.max_retries = 2;
  o.read_timeout_ms = 400;
  o.connect_timeout_ms = 2000;
  agent_backend *b = NULL;
  char *err = NULL;
  ASSERT_MSG(agent_backend_open(&o, &b, &err) == AGENT_OK, "open: %s", err ? err : "?");
  ASSERT_STR_EQ(agent_backend_kind(b), "remote");
  return b;
}

static int generate(agent_backend *b, got *g, agent__gen_res *res, atomic_int *cancel) {
  qc_buf_init(&g->text, 0);
  qc_buf_init(&g->calls, 0);
  agent__bind *x = NULL;
  ASSERT_EQ_INT(b->ops->bind(b, &x, NULL), AGENT_OK);
  json_t *msgs = json_loads("[{\"role\":\"system\",\"content\":\"sys\"},{\"role\":\"user\",\"content\":\"hi\"},"
                            "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
                            "\"function\":{\"name\":\"read_file\",\"arguments\":{\"path\":\"a\"}}}]},"
                            "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"x\"}]", 0, NULL);
  json_t *tools = json_loads("[{\"type\":\"function\",\"function\":{\"name\":\"read_file\",\"parameters\":{}}}]", 0, NULL);
  atomic_int never = 0;
  agent__gen_req req = {.prompt = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", .prompt_len = 52,
                        .messages = msgs, .tools = tools, .max_tokens = 64, .cancel = cancel ? cancel : &never,
                        .on_text = g_text, .on_native_call = g_call, .user = g};
  int rc = b->ops->generate(x, &req, res);
  b->ops->unbind(x);
  json_decref(msgs);
  json_decref(tools);
  return rc;
}

static void got_release(got *g) {
  qc_buf_release(&g->text);
  qc_buf_release(&g->calls);
}

TEST(streams_text_and_sends_the_conversation) {
  setenv("QCODER_API_KEY", "sk-test-123", 1);
  mock_server m = {0};
  m.resp[0] = (mock_resp){.status = 200, .pieces = {
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}]}\n\n",
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo \\u00e9\"}}]}\n\n",
      ": keep-alive comment\n\n",
      "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
      "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":17,\"completion_tokens\":3,\"prompt_tokens_details\":{\"cached_tokens\":12}}}\n\n",
      "data: [DONE]\n\n"}};
  m.n_resp = 1;
  mock_start(&m);
  agent_backend *b = open_remote(m.port, AGENT_REMOTE_CHAT, "qwen3-coder");
  got g;
  agent__gen_res res;
  ASSERT_EQ_INT(generate(b, &g, &res, NULL), AGENT_OK);
  ASSERT_EQ_INT(res.finish, AGENT__FIN_STOP);
  ASSERT_STR_EQ(g.text.data, "Hello \xc3\xa9");
  ASSERT_EQ_INT(res.n_prompt, 17);
  ASSERT_EQ_INT(res.n_generated, 3);
  ASSERT_EQ_INT(res.n_reused, 12);
  ASSERT_EQ_INT(m.n_req, 1);
  ASSERT_STR_EQ(m.req[0].path, "/v1/chat/completions");
  ASSERT_STR_EQ(m.req[0].auth, "Bearer sk-test-123");
  json_t *body = json_loads(m.req[0].body, 0, NULL);
  ASSERT(body);
  ASSERT_STR_EQ(json_string_value(json_object_get(body, "model")), "qwen3-coder");
  ASSERT(json_is_true(json_object_get(body, "stream")));
  ASSERT_EQ_INT(json_array_size(json_object_get(body, "messages")), 4);
  /* arguments go on the wire as a JSON string */
  json_t *args = json_object_get(json_object_get(json_array_get(json_object_get(
      json_array_get(json_object_get(body, "messages"), 2), "tool_calls"), 0), "function"), "arguments");
  ASSERT_STR_EQ(json_string_value(args), "{\"path\":\"a\"}");
  ASSERT_EQ_INT(json_array_size(json_object_get(body, "tools")), 1);
  json_decref(body);
  agent__gen_res_release(&res);
  got_release(&g);
  agent_backend_close(b);
  mock_stop(&m);
  unsetenv("QCODER_API_KEY");
}

TEST(native_tool_calls_are_reassembled) {
  mock_server m = {0};
  m.resp[0] = (mock_resp){.status = 200, .pieces = {
      "data: {\"choices\":[{\"delta\":{\"content\":\"Reading.\"}}]}\n\n",
      "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"chatcmpl-tool-1\",\"type\":\"function\","
      "\"function\":{\"name\":\"read_file\",\"arguments\":\"\"}}]}}]}\n\n",
      "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"path\\\": \"}}]}}]}\n\n",
      "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"a.c\\\"}\"}}]}}]}\n\n",
      "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"t2\",\"function\":{\"name\":\"run_command\","
      "\"arguments\":\"{\\\"command\\\": \\\"ls\\\"}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n",
      "data: [DONE]\n\n"}};
  m.n_resp = 1;
  mock_start(&m);
  agent_backend *b = open_remote(m.port, AGENT_REMOTE_CHAT, "m");
  got g;
  agent__gen_res res;
  ASSERT_EQ_INT(generate(b, &g, &res, NULL), AGENT_OK);
  ASSERT_STR_EQ(g.text.data, "Reading.");
  ASSERT_STR_EQ(g.calls.data, "chatcmpl-tool-1|read_file|{\"path\": \"a.c\"}\nt2|run_command|{\"command\": \"ls\"}\n");
  agent__gen_res_release(&res);
  got_release(&g);
  agent_backend_close(b);
  mock_stop(&m);
}

TEST(a_native_call_cut_by_the_token_limit_is_flagged) {
  mock_server m = {0};
  m.resp[0] = (mock_resp){.status = 200, .pieces = {
      "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"t1\",\"function\":{\"name\":\"read_file\","
      "\"arguments\":\"{\\\"path\\\": \\\"a.c\\\"}\"}}]}}]}\n\n",
      "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"t2\",\"function\":{\"name\":\"write_file\","
      "\"arguments\":\"{\\\"path\\\": \\\"b.c\\\", \\\"content\\\": \\\"int ma\"}}]},\"finish_reason\":\"length\"}]}\n\n",
      "data: [DONE]\n\n"}};
  m.n_resp = 1;
  mock_start(&m);
  agent_backend *b = open_remote(m.port, AGENT_REMOTE_CHAT, "m");
  got g;
  agent__gen_res res;
  ASSERT_EQ_INT(generate(b, &g, &res, NULL), AGENT_OK);
  ASSERT_EQ_INT(res.finish, AGENT__FIN_LENGTH);
  /* only the last call can be incomplete */
  ASSERT_STR_EQ(g.calls.data, "t1|read_file|{\"path\": \"a.c\"}\nt2|write_file|{\"path\": \"b.c\", \"content\": \"int ma|cut\n");
  agent__gen_res_release(&res);
  got_release(&g);
  agent_backend_close(b);
  mock_stop(&m);
}

TEST(completions_mode_sends_our_prompt) {
  mock_server m = {0};
  m.resp[0] = (mock_resp){.status = 200, .pieces = {
      "data: {\"choices\":[{\"text\":\"<tool_call>\\n<function=\"}]}\n\n",
      "data: {\"choices\":[{\"text\":\"read_file>\",\"finish_reason\":\"length\"}]}\n\n", "data: [DONE]\n\n"}};
  m.n_resp = 1;
  mock_start(&m);
  agent_backend *b = open_remote(m.port, AGENT_REMOTE_COMPLETIONS, "m");
  got g;
  agent__gen_res res;
  ASSERT_EQ_INT(generate(b, &g, &res, NULL), AGENT_OK);
  ASSERT_STR_EQ(g.text.data, "<tool_call>\n<function=read_file>");
  ASSERT_EQ_INT(res.finish, AGENT__FIN_LENGTH);
  ASSERT_STR_EQ(m.req[0].path, "/v1/completions");
  json_t *body = json_loads(m.req[0].body, 0, NULL);
  ASSERT_STR_EQ(json_string_value(json_object_get(body, "prompt")), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  ASSERT_STR_EQ(json_string_value(json_array_get(json_object_get(body, "stop"), 0)), "<|im_end|>");
  ASSERT(!json_object_get(body, "messages"));
  json_decref(body);
  agent__gen_res_release(&res);
  got_release(&g);
  agent_backend_close(b);
  mock_stop(&m);
}

TEST(a_500_is_retried_then_succeeds) {
  mock_server m = {0};
  m.resp[0] = (mock_resp){.status = 500, .content_type = "application/json",
                          .pieces = {"{\"error\": {\"message\": \"engine overloaded\"}}"}};
  m.resp[1] = (mock_resp){.status = 503, .content_type = "application/json", .extra_headers = "Retry-After: 0\r\n",
                          .pieces = {"{}"}};
  m.resp[2] = (mock_resp){.status = 200, .pieces = {"data: {\"choices\":[{\"delta\":{\"content\":\"ok\"}}]}\n\n", "data: [DONE]\n\n"}};
  m.n_resp = 3;
  mock_start(&m);
  agent_backend *b = open_remote(m.port, AGENT_REMOTE_CHAT, "m");
  got g;
  agent__gen_res res;
  ASSERT_EQ_INT(generate(b, &g, &res, NULL), AGENT_OK);
  ASSERT_STR_EQ(g.text.data, "ok");
  ASSERT_EQ_INT(m.n_req, 3);
  agent__gen_res_release(&res);
  got_release(&g);
  agent_backend_close(b);
  mock_stop(&m);
}

TEST(a_stalled_server_times_out) {
  mock_server m = {0};
  m.resp[0] = (mock_resp){.status = 200, .hang_ms = 3000, .pieces = {"data: [DONE]\n\n"}};
  m.n_resp = 1;
  mock_start(&m);
  agent_backend *b = open_remote(m.port, AGENT_REMOTE_CHAT, "m");
  got g;
  agent__gen_res res;
  uint64_t t0 = qc_now_ms();
  ASSERT_EQ_INT(generate(b, &g, &res, NULL), AGENT_ETIMEOUT);
  uint64_t dt = qc_now_ms() - t0;
  ASSERT_EQ_INT(res.finish, AGENT__FIN_ERROR);
  ASSERT_CONTAINS(res.error, "read timeout");
  ASSERT_MSG(dt < 2000, "took %llu ms", (unsigned long long)dt);
  agent__gen_res_release(&res);
  got_release(&g);
  agent_backend_close(b);
  mock_stop(&m);
}

TEST(a_refused_connection_is_reported_after_retries) {
  agent_backend *b = open_remote(closed_port(), AGENT_REMOTE_CHAT, "m");
  got g;
  agent__gen_res res;
  ASSERT_EQ_INT(generate(b, &g, &res, NULL), AGENT_ECONNECT);
  ASSERT_CONTAINS(res.error, "cannot connect to http://127.0.0.1:");
  ASSERT_CONTAINS(res.error, "is the server running");
  ASSERT_CONTAINS(res.error, "after 3 attempts");
  agent__gen_res_release(&res);
  got_release(&g);
  agent_backend_close(b);
}

TEST(a_401_shows_the_server_message_and_is_not_retried) {
  mock_server m = {0};
  m.resp[0] = (mock_resp){.status = 401, .content_type = "application/json",
                          .pieces = {"{\"error\": {\"message\": \"Invalid API key provided\", \"type\": \"auth\"}}"}};
  m.n_resp = 1;
  mock_start(&m);
  agent_backend *b = open_remote(m.port, AGENT_REMOTE_CHAT, "m");
  got g;
  agent__gen_res res;
  ASSERT_EQ_INT(generate(b, &g, &res, NULL), AGENT_EHTTP);
  ASSERT_CONTAINS(res.error, "HTTP 401");
  ASSERT_CONTAINS(res.error, "Invalid API key provided");
  ASSERT_CONTAINS(res.error, "QCODER_API_KEY");
  ASSERT_EQ_INT(m.n_req, 1);
  agent__gen_res_release(&res);
  got_release(&g);
  agent_backend_close(b);
  mock_stop(&m);
}

TEST(model_name_from_v1_models_and_a_plain_json_answer) {
  mock_server m = {0};
  m.resp[0] = (mock_resp){.status = 200, .content_type = "application/json",
                          .pieces = {"{\"object\":\"list\",\"data\":[{\"id\":\"Qwen/Qwen3-Coder-480B-A35B-Instruct\"}]}"}};
  m.resp[1] = (mock_resp){.status = 200, .content_type = "application/json",
                          .pieces = {"{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"whole\"},"
                                     "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5}}"}};
  m.n_resp = 2;
  mock_start(&m);
  agent_backend *b = open_remote(m.port, AGENT_REMOTE_CHAT, NULL);
  got g;
  agent__gen_res res;
  ASSERT_EQ_INT(generate(b, &g, &res, NULL), AGENT_OK);
  ASSERT_STR_EQ(m.req[0].path, "/v1/models");
  ASSERT_STR_EQ(m.req[0].method, "GET");
  json_t *body = json_loads(m.req[1].body, 0, NULL);
  ASSERT_STR_EQ(json_string_value(json_object_get(body, "model")), "Qwen/Qwen3-Coder-480B-A35B-Instruct");
  json_decref(body);
  ASSERT_STR_EQ(g.text.data, "whole");
  ASSERT_EQ_INT(res.n_prompt, 5);
  agent__gen_res_release(&res);
  got_release(&g);
  agent_backend_close(b);
  mock_stop(&m);
}

static atomic_int g_cancel;
static void *cancel_later(void *arg) {
  (void)arg;
  mock_sleep(150);
  atomic_store(&g_cancel, 1);
  return NULL;
}

TEST(cancel_stops_a_streaming_reply) {
  mock_server m = {0};
  m.resp[0] = (mock_resp){.status = 200, .delay_ms = 100, .pieces = {
      "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n", "data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n",
      "data: {\"choices\":[{\"delta\":{\"content\":\"c\"}}]}\n\n", "data: {\"choices\":[{\"delta\":{\"content\":\"d\"}}]}\n\n",
      "data: {\"choices\":[{\"delta\":{\"content\":\"e\"}}]}\n\n", "data: {\"choices\":[{\"delta\":{\"content\":\"f\"}}]}\n\n",
      "data: [DONE]\n\n"}};
  m.n_resp = 1;
  mock_start(&m);
  agent_backend *b = open_remote(m.port, AGENT_REMOTE_CHAT, "m");
  atomic_store(&g_cancel, 0);
  pthread_t th;
  pthread_create(&th, NULL, cancel_later, NULL);
  got g;
  agent__gen_res res;
  uint64_t t0 = qc_now_ms();
  ASSERT_EQ_INT(generate(b, &g, &res, &g_cancel), AGENT_OK);
  uint64_t dt = qc_now_ms() - t0;
  pthread_join(th, NULL);
  ASSERT_EQ_INT(res.finish, AGENT__FIN_CANCELLED);
  ASSERT_MSG(dt < 500, "cancel took %llu ms", (unsigned long long)dt);
  ASSERT(g.text.len < 6);
  agent__gen_res_release(&res);
  got_release(&g);
  agent_backend_close(b);
  mock_stop(&m);
}

TEST(raw_completion_for_fim_goes_to_v1_completions) {
  mock_server m = {0};
  m.resp[0] = (mock_resp){.status = 200, .pieces = {"data: {\"choices\":[{\"text\":\"return a + b;\"}]}\n\n", "data: [DONE]\n\n"}};
  m.n_resp = 1;
  mock_start(&m);
  agent_backend *b = open_remote(m.port, AGENT_REMOTE_CHAT, "m");
  char *prompt = agent_fim_prompt("int add(int a, int b) {\n  ", "\n}\n");
  char *out = NULL, *err = NULL;
  ASSERT_EQ_INT(agent_backend_complete(b, prompt, NULL, &out, &err), AGENT_OK);
  ASSERT_STR_EQ(out, "return a + b;");
  ASSERT_STR_EQ(m.req[0].path, "/v1/completions");
  json_t *body = json_loads(m.req[0].body, 0, NULL);
  ASSERT_STR_EQ(json_string_value(json_object_get(body, "prompt")), prompt);
  int has_sep = 0;
  size_t i;
  json_t *s;
  json_array_foreach(json_object_get(body, "stop"), i, s) has_sep |= !strcmp(json_string_value(s), "<|file_sep|>");
  ASSERT(has_sep);
  json_decref(body);
  free(out);
  free(prompt);
  agent_backend_close(b);
  mock_stop(&m);
}

TEST(bad_specs_are_refused_clearly) {
  agent_backend_opts o;
  agent_backend_opts_init(&o);
  const char *bad[] = {"http://", "/nonexistent/model.gguf", "script:/nonexistent.json", "", NULL};
  for (const char **s = bad; *s; s++) {
    o.spec = *s;
    agent_backend *b = NULL;
    char *err = NULL;
    ASSERT_MSG(agent_backend_open(&o, &b, &err) != AGENT_OK, "%s opened", *s);
    ASSERT(b == NULL && err && *err);
    free(err);
  }
}

QC_TEST_MAIN
