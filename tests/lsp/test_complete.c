/* test_complete.c — the daemon's `_qcoder/complete` (daemon/complete.c) over the socket:
 * the FIM prompt it builds (plain and repository-level), a raw prompt, stop strings and
 * maxTokens passed through, the model from the request or the daemon's default, bad
 * parameters refused with a message, and $/cancel_request answering -32800. */
#include "tests/daemon/daemon_harness.h"

static qd_daemon d;
static char *g_log;

static void up(const char *script_json) {
  qd_init(&d, "complete");
  g_log = qc_asprintf("%s/prompts.jsonl", d.dir);
  setenv("QCODER_SCRIPT_PROMPT_LOG", g_log, 1);
  char *script = qc_asprintf("%s/script.json", d.dir);
  ASSERT_EQ_INT(qct_write_file(script, script_json), 0);
  char *spec = qc_asprintf("script:%s", script);
  const char *extra[] = {"--model", spec, NULL};
  ASSERT_MSG(qd_start(&d, extra) == 0, "the daemon did not start");
  free(spec);
  free(script);
}

static void down(void) {
  kill(d.pid, SIGTERM);
  ASSERT_EQ_INT(qd_wait_exit(d.pid, 15000), 0);
  d.pid = 0;
  qd_free(&d);
  free(g_log);
  unsetenv("QCODER_SCRIPT_PROMPT_LOG");
}

/* The last prompt in the log. */
static char *last_prompt(void) {
  char *text = qct_read_file(g_log, NULL);
  char *last = NULL;
  for (char *l = text ? strtok(text, "\n") : NULL; l; l = strtok(NULL, "\n")) last = l;
  json_t *j = last ? json_loads(last, 0, NULL) : NULL;
  char *p = j ? strdup(json_string_value(json_object_get(j, "prompt"))) : NULL;
  json_decref(j);
  free(text);
  return p;
}

TEST(fim_prompts_and_errors) {
  up("[{\"raw\": true, \"text\": \"one\"}, {\"raw\": true, \"text\": \"two\"}, {\"raw\": true, \"text\": \"three\"}]");
  int fd = qd_connect(d.sock);
  ASSERT(fd >= 0);
  rpc_framer f;
  rpc_framer_init(&f, RPC_FRAMING_NDJSON, 0);
  /* plain FIM with the daemon's default model */
  json_t *r = qd_call_line(fd, &f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"_qcoder/complete\",\"params\":"
                                   "{\"prefix\":\"int x = \",\"suffix\":\";\\n\",\"maxTokens\":16}}");
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(r, "result"), "text")), "one");
  json_decref(r);
  char *p = last_prompt();
  ASSERT_STR_EQ(p, "<|fim_prefix|>int x = <|fim_suffix|>;\n<|fim_middle|>");
  free(p);
  /* repository-level FIM */
  r = qd_call_line(fd, &f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"_qcoder/complete\",\"params\":"
                           "{\"prefix\":\"a\",\"suffix\":\"b\",\"path\":\"src/x.c\",\"repoName\":\"proj\","
                           "\"files\":[{\"path\":\"src/y.h\",\"content\":\"int y;\"}]}}");
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(r, "result"), "text")), "two");
  json_decref(r);
  p = last_prompt();
  ASSERT_STR_EQ(p, "<|repo_name|>proj\n<|file_sep|>src/y.h\nint y;\n<|file_sep|>src/x.c\n<|fim_prefix|>a"
                   "<|fim_suffix|>b<|fim_middle|>");
  free(p);
  /* a raw prompt, sent as it is */
  r = qd_call_line(fd, &f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"_qcoder/complete\",\"params\":"
                           "{\"prompt\":\"raw text\",\"stop\":[\"\\n\\n\"]}}");
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(r, "result"), "text")), "three");
  json_decref(r);
  p = last_prompt();
  ASSERT_STR_EQ(p, "raw text");
  free(p);
  /* bad parameters */
  struct {
    const char *params, *want;
  } bad[] = {
      {"{}", "needs \\\"prompt\\\""},
      {"{\"prompt\":\"a\",\"prefix\":\"b\"}", "needs"},
      {"{\"prefix\":7}", "strings"},
      {"{\"prefix\":\"a\",\"maxTokens\":0}", "maxTokens"},
      {"{\"prefix\":\"a\",\"maxTokens\":100000}", "maxTokens"},
      {"{\"prefix\":\"a\",\"files\":[{\"path\":\"x\"}]}", "files[0]"},
      {"{\"prefix\":\"a\",\"files\":{}}", "files must be"},
      {"{\"prefix\":\"a\",\"stop\":[\"\"]}", "stop[0]"},
      {"{\"prefix\":\"a\",\"model\":\"/nonexistent/model.gguf\"}", "cannot open the model"},
      {NULL, NULL},
  };
  for (int i = 0; bad[i].params; i++) {
    char *line = qc_asprintf("{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"_qcoder/complete\",\"params\":%s}", 10 + i,
                             bad[i].params);
    r = qd_call_line(fd, &f, line);
    free(line);
    ASSERT_MSG(json_object_get(r, "error"), "accepted %s", bad[i].params);
    char *msg = json_dumps(json_object_get(r, "error"), 0);
    ASSERT_MSG(strstr(msg, bad[i].want), "%s: %s", bad[i].params, msg);
    free(msg);
    json_decref(r);
  }
  rpc_framer_release(&f);
  close(fd);
  down();
}

TEST(cancel_request_stops_a_completion) {
  qc_buf s;
  qc_buf_init(&s, 0);
  qc_buf_puts(&s, "[{\"raw\": true, \"delay_ms\": 50, \"text\": \"");
  for (int i = 0; i < 300; i++) qc_buf_puts(&s, "slow ");
  qc_buf_puts(&s, "\"}]");
  up(s.data);
  qc_buf_release(&s);
  int fd = qd_connect(d.sock);
  ASSERT(fd >= 0);
  rpc_framer f;
  rpc_framer_init(&f, RPC_FRAMING_NDJSON, 0);
  ASSERT_EQ_INT(qd_send_str(fd, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"_qcoder/complete\",\"params\":"
                                "{\"prefix\":\"x\"}}\n"), 0);
  usleep(300000);
  uint64_t t0 = qc_now_ms();
  ASSERT_EQ_INT(qd_send_str(fd, "{\"jsonrpc\":\"2.0\",\"method\":\"$/cancel_request\",\"params\":{\"requestId\":7}}\n"),
                0);
  json_t *r = qd_read_msg(fd, &f, 5000, NULL);
  ASSERT(r);
  ASSERT_EQ_INT(json_integer_value(json_object_get(r, "id")), 7);
  ASSERT_EQ_INT(qd_err_code(r), -32800);
  ASSERT(qc_now_ms() - t0 < 1500);
  json_decref(r);
  rpc_framer_release(&f);
  close(fd);
  down();
}

QC_TEST_MAIN
