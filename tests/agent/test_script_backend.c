/* test_script_backend.c — the scripted test double's features for protocol tests: one
 * script serving both raw completions (inline completion) and agent turns ("raw": true
 * entries), and the prompt log (QCODER_SCRIPT_PROMPT_LOG). */
#include "agent/agent.h"
#include "common/common.h"
#include "tests/test.h"

static agent_backend *open_script(const char *path) {
  agent_backend_opts o;
  agent_backend_opts_init(&o);
  char spec[4200];
  snprintf(spec, sizeof spec, "script:%s", path);
  o.spec = spec;
  agent_backend *b = NULL;
  char *err = NULL;
  ASSERT_MSG(agent_backend_open(&o, &b, &err) == AGENT_OK, "%s", err ? err : "?");
  return b;
}

static void event_text(void *user, const agent_event *ev) {
  if (ev->type == AGENT_EVENT_MESSAGE_CHUNK) qc_buf_append(user, ev->text, ev->text_len);
}

TEST(raw_and_turn_entries_and_the_prompt_log) {
  char *dir = qct_tempdir("script-backend");
  setenv("QCODER_STATE_DIR", dir, 1);
  char *script = qc_path_join(dir, "script.json");
  char *log = qc_path_join(dir, "prompts.jsonl");
  ASSERT_EQ_INT(qct_write_file(script, "[{\"text\": \"x + 1;\", \"raw\": true}, \"The answer.\","
                                       " {\"text\": \"second();\", \"raw\": true}]"),
                0);
  setenv("QCODER_SCRIPT_PROMPT_LOG", log, 1);
  agent_backend *b = open_script(script);
  char *out = NULL, *err = NULL;
  char *prompt = agent_fim_prompt("int y = ", "\n");
  ASSERT_EQ_INT(agent_backend_complete(b, prompt, NULL, &out, &err), AGENT_OK);
  ASSERT_STR_EQ(out, "x + 1;");
  free(out);
  /* an agent turn skips the raw entries */
  agent_session_opts so;
  agent_session_opts_init(&so);
  so.cwd = dir;
  so.backend = b;
  so.mode = AGENT_MODE_READ_ONLY;
  so.no_repo_map = 1;
  so.no_checkpoints = 1;
  so.on_event = event_text;
  qc_buf text;
  qc_buf_init(&text, 0);
  so.user = &text;
  agent_session *s = NULL;
  ASSERT_EQ_INT(agent_session_new(&so, &s, &err), AGENT_OK);
  agent_run_result res;
  ASSERT_EQ_INT(agent_run(s, "hello", &res), AGENT_OK);
  ASSERT_EQ_INT(res.stop, AGENT_STOP_END_TURN);
  ASSERT_STR_EQ(text.data, "The answer.");
  agent_run_result_release(&res);
  agent_session_free(s);
  qc_buf_release(&text);
  /* the next raw completion gets the next raw entry; then they are used up */
  ASSERT_EQ_INT(agent_backend_complete(b, prompt, NULL, &out, &err), AGENT_OK);
  ASSERT_STR_EQ(out, "second();");
  free(out);
  out = NULL;
  ASSERT(agent_backend_complete(b, prompt, NULL, &out, &err) != AGENT_OK);
  ASSERT_CONTAINS(err, "no raw");
  free(err);
  free(out);
  agent_backend_close(b);
  unsetenv("QCODER_SCRIPT_PROMPT_LOG");
  /* the log holds every prompt, one JSON line each, raw ones marked */
  char *logged = qct_read_file(log, NULL);
  ASSERT(logged);
  int lines = 0, raws = 0, saw_fim = 0, saw_turn = 0;
  for (char *line = strtok(logged, "\n"); line; line = strtok(NULL, "\n")) {
    json_t *j = json_loads(line, 0, NULL);
    ASSERT_MSG(j, "not JSON: %s", line);
    lines++;
    if (json_is_true(json_object_get(j, "raw"))) {
      raws++;
      saw_fim |= strcmp(json_string_value(json_object_get(j, "prompt")), prompt) == 0;
    } else {
      saw_turn |= strstr(json_string_value(json_object_get(j, "prompt")), "hello") != NULL;
    }
    json_decref(j);
  }
  ASSERT_EQ_INT(lines, 4);
  ASSERT_EQ_INT(raws, 3);
  ASSERT(saw_fim && saw_turn);
  free(logged);
  free(prompt);
  free(script);
  free(log);
  free(dir);
}

TEST(a_script_without_raw_entries_serves_both_in_order) {
  char *dir = qct_tempdir("script-backend2");
  char *script = qc_path_join(dir, "script.json");
  ASSERT_EQ_INT(qct_write_file(script, "[\"one\", \"two\"]"), 0);
  agent_backend *b = open_script(script);
  char *out = NULL, *err = NULL;
  ASSERT_EQ_INT(agent_backend_complete(b, "p", NULL, &out, &err), AGENT_OK);
  ASSERT_STR_EQ(out, "one");
  free(out);
  ASSERT_EQ_INT(agent_backend_complete(b, "p", NULL, &out, &err), AGENT_OK);
  ASSERT_STR_EQ(out, "two");
  free(out);
  agent_backend_close(b);
  free(script);
  free(dir);
}

QC_TEST_MAIN
