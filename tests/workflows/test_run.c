/* test_run.c — `qcoder run` end to end with the scripted backend: a rename refactor across
 * three files of a C project verified by its build, the --json stream and final object,
 * the exit codes (verification failed, out of budget, backend error, no model, Ctrl-C),
 * commands refused without a terminal in auto-edit, --commit, and no daemon left behind.
 */
#include "tests/workflows/wf_test.h"

static const char k_header[] = "#ifndef CONFIG_H\n#define CONFIG_H\nint parse_cfg(const char *s);\n#endif\n";
static const char k_impl[] = "#include \"config.h\"\n#include <stdlib.h>\nint parse_cfg(const char *s) { return atoi(s); }\n";
static const char k_main[] = "#include <stdio.h>\n#include \"config.h\"\nint main(void) {\n"
                             "  printf(\"%d\\n\", parse_cfg(\"42\"));\n  return 0;\n}\n";
static const char k_make[] = "app: main.c config.c config.h\n\tcc -Wall -Werror -o app main.c config.c\n";

static char *fixture(void) {
  return wf_repo("wf-run", "config.h", k_header, "config.c", k_impl, "main.c", k_main, "Makefile", k_make,
                 ".gitignore", "app\n", NULL);
}

/* A script file: a JSON array of replies. */
static char *script(const char *dir, json_t *replies_steal) {
  char *p = qc_asprintf("%s/script.json", dir);
  json_dump_file(replies_steal, p, 0);
  json_decref(replies_steal);
  return p;
}

static json_t *rename_replies(int fix_main) {
  json_t *r = json_array();
  qc_buf b;
  qc_buf_init(&b, 0);
  qc_buf_puts(&b, "I will read the three files first.\n");
  wf_call(&b, "read_file", "path", "config.h", NULL);
  wf_call(&b, "read_file", "path", "config.c", NULL);
  wf_call(&b, "read_file", "path", "main.c", NULL);
  json_array_append_new(r, json_string(b.data));
  qc_buf_reset(&b);
  wf_call(&b, "edit_file", "path", "config.h", "old_string", "int parse_cfg(", "new_string", "int config_parse(", NULL);
  wf_call(&b, "edit_file", "path", "config.c", "old_string", "int parse_cfg(", "new_string", "int config_parse(", NULL);
  if (fix_main)
    wf_call(&b, "edit_file", "path", "main.c", "old_string", "parse_cfg(\"42\")", "new_string", "config_parse(\"42\")",
            NULL);
  json_array_append_new(r, json_string(b.data));
  json_array_append_new(r, json_string("Renamed parse_cfg to config_parse in config.h, config.c and main.c."));
  qc_buf_release(&b);
  return r;
}

static json_t *last_of_type(json_t *events, const char *type) {
  json_t *hit = NULL;
  size_t i;
  json_t *e;
  json_array_foreach(events, i, e) if (!strcmp(json_string_value(json_object_get(e, "type")), type)) hit = e;
  return hit;
}

static int count_updates(json_t *events, const char *kind, const char *status) {
  int n = 0;
  size_t i;
  json_t *e;
  json_array_foreach(events, i, e) {
    json_t *u = json_object_get(e, "update");
    if (!u) continue;
    if (strcmp(json_string_value(json_object_get(u, "sessionUpdate")), kind)) continue;
    if (status && (!json_is_string(json_object_get(u, "status")) || strcmp(json_string_value(json_object_get(u, "status")), status)))
      continue;
    n++;
  }
  return n;
}

TEST(run_rename_across_three_files_verified_and_committed) {
  if (!wf_sandbox_works()) SKIP("bubblewrap cannot run here (--verify runs in the sandbox)");
  char *env = wf_env("wf-run-env");
  char *ws = fixture();
  char *sc = script(env, rename_replies(1));
  char *out = NULL;
  int rc = wf_sh(&out, "'%s' run --workspace '%s' --model 'script:%s' --verify make --commit rename-cfg --json "
                       "'rename parse_cfg to config_parse and fix every caller'",
                 qct_qcoder_bin(), ws, sc);
  ASSERT_EQ_INT(rc, 0);
  /* the files on disk */
  const char *files[] = {"config.h", "config.c", "main.c"};
  for (int i = 0; i < 3; i++) {
    char *p = qc_asprintf("%s/%s", ws, files[i]);
    char *s = qct_read_file(p, NULL);
    ASSERT_CONTAINS(s, "config_parse(");
    ASSERT(!strstr(s, "parse_cfg"));
    free(s);
    free(p);
  }
  /* the stream */
  json_t *ev = wf_ndjson(out);
  ASSERT(json_array_size(ev) > 5);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(ev, 0), "type")), "start");
  ASSERT_EQ_INT(count_updates(ev, "tool_call", NULL), 6);
  ASSERT(count_updates(ev, "tool_call_update", "completed") >= 6);
  ASSERT(count_updates(ev, "agent_message_chunk", NULL) > 0);
  ASSERT_EQ_INT(count_updates(ev, "usage_update", NULL), 3);
  json_t *verify = last_of_type(ev, "verify");
  ASSERT(verify && json_is_true(json_object_get(verify, "passed")));
  ASSERT_EQ_INT(json_integer_value(json_object_get(verify, "exitCode")), 0);
  ASSERT(last_of_type(ev, "commit"));
  json_t *res = json_array_get(ev, json_array_size(ev) - 1);
  ASSERT_STR_EQ(json_string_value(json_object_get(res, "type")), "result");
  ASSERT_STR_EQ(json_string_value(json_object_get(res, "stopReason")), "end_turn");
  ASSERT(json_is_true(json_object_get(res, "verified")));
  ASSERT_EQ_INT(json_integer_value(json_object_get(res, "exitCode")), 0);
  json_t *cf = json_object_get(res, "changedFiles");
  ASSERT_EQ_INT(json_array_size(cf), 3);
  ASSERT_STR_EQ(json_string_value(json_array_get(cf, 0)), "config.c");
  ASSERT_STR_EQ(json_string_value(json_array_get(cf, 1)), "config.h");
  ASSERT_STR_EQ(json_string_value(json_array_get(cf, 2)), "main.c");
  json_t *ds = json_object_get(res, "diffStat");
  ASSERT_EQ_INT(json_integer_value(json_object_get(ds, "files_changed")), 3);
  ASSERT_EQ_INT(json_integer_value(json_object_get(ds, "insertions")), 3);
  ASSERT_EQ_INT(json_integer_value(json_object_get(ds, "deletions")), 3);
  ASSERT(json_integer_value(json_object_get(json_object_get(res, "tokens"), "generated")) > 0);
  ASSERT(json_number_value(json_object_get(res, "elapsed_s")) > 0);
  ASSERT(!json_object_get(res, "error"));
  /* the branch holds the change; the working tree is clean */
  char *log = NULL;
  ASSERT_EQ_INT(wf_sh(&log, "cd '%s' && git rev-parse --abbrev-ref HEAD && git status --porcelain && git show --stat HEAD",
                      ws), 0);
  ASSERT_CONTAINS(log, "rename-cfg\n");
  ASSERT_CONTAINS(log, "qcoder run: rename parse_cfg to config_parse");
  ASSERT_CONTAINS(log, "3 files changed");
  ASSERT(wf_daemon_gone());
  free(log);
  json_decref(ev);
  free(out), free(sc), free(ws), free(env);
}

TEST(run_plain_output_when_not_a_terminal) {
  if (!wf_sandbox_works()) SKIP("bubblewrap cannot run here");
  char *env = wf_env("wf-run-env");
  char *ws = fixture();
  char *sc = script(env, rename_replies(1));
  char *out = NULL;
  int rc = wf_sh(&out, "'%s' run --workspace '%s' --model 'script:%s' --verify make 'rename parse_cfg'", qct_qcoder_bin(),
                 ws, sc);
  ASSERT_EQ_INT(rc, 0);
  ASSERT_CONTAINS(out, "I will read the three files first.\n");
  ASSERT_CONTAINS(out, "[tool] edit_file main.c: completed\n");
  ASSERT_CONTAINS(out, "Renamed parse_cfg to config_parse");
  ASSERT_CONTAINS(out, "changed 3 files, +3 −3: config.c, config.h, main.c");
  ASSERT_CONTAINS(out, "verify: make — passed (exit 0)");
  ASSERT_CONTAINS(out, "undo: qcoder checkpoint restore ");
  ASSERT(!strstr(out, "\033[")); /* no terminal control sequences in a pipe */
  ASSERT(wf_daemon_gone());
  free(out), free(sc), free(ws), free(env);
}

TEST(run_verification_failure_exits_1_and_does_not_commit) {
  if (!wf_sandbox_works()) SKIP("bubblewrap cannot run here");
  char *env = wf_env("wf-run-env");
  char *ws = fixture();
  char *sc = script(env, rename_replies(0)); /* main.c still calls parse_cfg: the build fails */
  char *out = NULL;
  int rc = wf_sh(&out, "'%s' run --workspace '%s' --model 'script:%s' --verify make --commit rename-cfg --json 'rename'",
                 qct_qcoder_bin(), ws, sc);
  ASSERT_EQ_INT(rc, 1);
  json_t *ev = wf_ndjson(out);
  json_t *res = json_array_get(ev, json_array_size(ev) - 1);
  ASSERT(json_is_false(json_object_get(res, "verified")));
  ASSERT_EQ_INT(json_integer_value(json_object_get(res, "exitCode")), 1);
  ASSERT_EQ_INT(json_array_size(json_object_get(res, "changedFiles")), 2);
  json_t *verify = last_of_type(ev, "verify");
  ASSERT(json_integer_value(json_object_get(verify, "exitCode")) != 0);
  ASSERT_CONTAINS(json_string_value(json_object_get(verify, "output")), "parse_cfg");
  ASSERT(!last_of_type(ev, "commit"));
  ASSERT_EQ_INT(wf_sh(NULL, "cd '%s' && git rev-parse --verify -q rename-cfg >/dev/null", ws), 1);
  json_decref(ev);
  free(out), free(sc), free(ws), free(env);
}

TEST(run_refuses_commands_without_a_terminal_in_auto_edit) {
  char *env = wf_env("wf-run-env");
  char *ws = fixture();
  json_t *r = json_array();
  qc_buf b;
  qc_buf_init(&b, 0);
  wf_call(&b, "run_command", "command", "touch ran-it", NULL);
  json_array_append_new(r, json_string(b.data));
  json_array_append_new(r, json_string("The command was refused, so I stopped."));
  qc_buf_release(&b);
  char *sc = script(env, r);
  char *out = NULL;
  int rc = wf_sh(&out, "'%s' run --workspace '%s' --model 'script:%s' --json 'run something' </dev/null",
                 qct_qcoder_bin(), ws, sc);
  ASSERT_EQ_INT(rc, 0);
  json_t *ev = wf_ndjson(out);
  json_t *perm = last_of_type(ev, "permission");
  ASSERT(perm);
  ASSERT_STR_EQ(json_string_value(json_object_get(perm, "outcome")), "reject_once");
  ASSERT_CONTAINS(json_string_value(json_object_get(perm, "title")), "touch ran-it");
  char *p = qc_asprintf("%s/ran-it", ws);
  ASSERT(access(p, F_OK) != 0);
  /* the model read that the action was denied */
  ASSERT_CONTAINS(out, "denied");
  json_decref(ev);
  free(p), free(out), free(sc), free(ws), free(env);
}

TEST(run_exit_codes_budget_error_and_no_model) {
  char *env = wf_env("wf-run-env");
  char *ws = fixture();
  /* out of budget: one step, and the first reply calls a tool */
  json_t *r = json_array();
  qc_buf b;
  qc_buf_init(&b, 0);
  wf_call(&b, "read_file", "path", "main.c", NULL);
  json_array_append_new(r, json_string(b.data));
  json_array_append_new(r, json_string(b.data));
  qc_buf_release(&b);
  char *sc = script(env, r);
  char *out = NULL;
  ASSERT_EQ_INT(wf_sh(&out, "'%s' run --workspace '%s' --model 'script:%s' --max-steps 1 --json 'look'", qct_qcoder_bin(),
                      ws, sc),
                3);
  json_t *ev = wf_ndjson(out);
  json_t *res = json_array_get(ev, json_array_size(ev) - 1);
  ASSERT_STR_EQ(json_string_value(json_object_get(res, "stopReason")), "max_turn_requests");
  ASSERT_EQ_INT(json_integer_value(json_object_get(res, "exitCode")), 3);
  json_decref(ev);
  free(out);
  /* a backend error (the script runs out after two replies): exit 2 with the message */
  ASSERT_EQ_INT(wf_sh(&out, "'%s' run --workspace '%s' --model 'script:%s' --json 'look'", qct_qcoder_bin(), ws, sc), 2);
  ev = wf_ndjson(out);
  res = json_array_get(ev, json_array_size(ev) - 1);
  ASSERT_EQ_INT(json_integer_value(json_object_get(res, "exitCode")), 2);
  ASSERT_CONTAINS(json_string_value(json_object_get(res, "error")), "exhausted");
  json_decref(ev);
  free(out);
  /* no model anywhere: exit 2 at once, no daemon started */
  ASSERT_EQ_INT(wf_sh(NULL, "'%s' run --workspace '%s' 'anything' 2>/dev/null", qct_qcoder_bin(), ws), 2);
  /* a usage error */
  ASSERT_EQ_INT(wf_sh(NULL, "'%s' run --mode yolo x 2>/dev/null", qct_qcoder_bin()), 2);
  ASSERT(wf_daemon_gone());
  free(sc), free(ws), free(env);
}

TEST(run_ctrl_c_cancels_cleanly_with_exit_3) {
  char *env = wf_env("wf-run-env");
  char *ws = fixture();
  /* a slow reply: 40 ms per 7-byte chunk */
  json_t *r = json_array();
  json_array_append_new(r, json_pack("{s:s, s:i}", "text",
                                     "Thinking about this very carefully, one slow word at a time, for a long while "
                                     "before doing anything at all to the files in this repository.",
                                     "delay_ms", 40));
  char *sc = script(env, r);
  char *outp = qc_asprintf("%s/out.jsonl", env), *errp = qc_asprintf("%s/err.txt", env);
  char *model = qc_asprintf("script:%s", sc);
  char *argv[] = {(char *)qct_qcoder_bin(), "run", "--workspace", ws, "--model", model, "--json", "think", NULL};
  pid_t pid = wf_spawn(argv, outp, errp);
  ASSERT(pid > 0);
  ASSERT(wf_wait_for(outp, "agent_message_chunk", 30000));
  kill(pid, SIGINT);
  int rc = wf_wait_exit(pid, 30000);
  ASSERT_EQ_INT(rc, 3);
  char *out = qct_read_file(outp, NULL);
  json_t *ev = wf_ndjson(out);
  json_t *res = json_array_get(ev, json_array_size(ev) - 1);
  ASSERT_STR_EQ(json_string_value(json_object_get(res, "type")), "result");
  ASSERT_STR_EQ(json_string_value(json_object_get(res, "stopReason")), "cancelled");
  ASSERT_EQ_INT(json_integer_value(json_object_get(res, "exitCode")), 3);
  ASSERT(wf_daemon_gone());
  json_decref(ev);
  free(out), free(outp), free(errp), free(model), free(sc), free(ws), free(env);
}

TEST(run_draws_a_live_status_line_on_a_terminal) {
  if (wf_sh(NULL, "command -v script >/dev/null && script -qc true /dev/null >/dev/null 2>&1") != 0)
    SKIP("script(1) cannot give this test a terminal");
  if (!wf_sandbox_works()) SKIP("bubblewrap cannot run here");
  char *env = wf_env("wf-run-env");
  char *ws = fixture();
  json_t *r = rename_replies(1);
  size_t i;
  json_t *e;
  json_t *slow = json_array();
  json_array_foreach(r, i, e) json_array_append_new(slow, json_pack("{s:O, s:i}", "text", e, "delay_ms", 15));
  json_decref(r);
  char *sc = script(env, slow);
  char *out = NULL;
  int rc = wf_sh(&out, "script -qec \"'%s' run --workspace '%s' --model 'script:%s' --verify make rename\" /dev/null",
                 qct_qcoder_bin(), ws, sc);
  ASSERT_EQ_INT(rc, 0);
  ASSERT_CONTAINS(out, "\r\033[K");          /* redrawn in place */
  ASSERT_CONTAINS(out, " step 1 · ");
  ASSERT_CONTAINS(out, " · edit_file config.h · ");
  ASSERT_CONTAINS(out, " tok/s · ");
  ASSERT_CONTAINS(out, "  ✓ edit_file main.c");
  ASSERT_CONTAINS(out, "Renamed parse_cfg to config_parse");
  ASSERT_CONTAINS(out, "changed 3 files, +3 −3");
  ASSERT_CONTAINS(out, "verify: make — passed (exit 0)");
  ASSERT(wf_daemon_gone());
  free(out), free(sc), free(ws), free(env);
}

/* `qcoder run` with the local engine: each run starts and stops its own daemon, and the
 * second run restores the first one's KV cache from disk instead of prefilling the same
 * system prompt again. A damaged cache file is deleted and the run prefills as usual; the
 * folder stays under QCODER_KV_CACHE's cap. */
static long run_reused(const char *ws, const char *model, const char *extra_env) {
  char *out = NULL;
  int rc = wf_sh(&out, "env -u QCODER_KV_CACHE %s '%s' run --workspace '%s' --model '%s' --max-steps 1 --max-tokens 4 "
                 "--json 'say hi' 2>/dev/null", extra_env, qct_qcoder_bin(), ws, model);
  /* out of budget (--max-tokens: 3), or the random-weights model ended its turn early (0) */
  ASSERT_MSG(rc == 3 || rc == 0, "run exit %d: %s", rc, out ? out : "");
  json_t *ev = wf_ndjson(out);
  json_t *res = json_array_get(ev, json_array_size(ev) - 1);
  json_t *tok = json_object_get(res, "tokens");
  ASSERT_MSG(json_is_integer(json_object_get(tok, "reused")), "no tokens.reused in %s", out);
  ASSERT(json_integer_value(json_object_get(tok, "prompt")) > 1000);
  long reused = (long)json_integer_value(json_object_get(tok, "reused"));
  json_decref(ev);
  free(out);
  return reused;
}

static int count_cache_files(const char *env, char **one) {
  char *out = NULL;
  wf_sh(&out, "ls %s/cache/kv/*/*.qckv 2>/dev/null", env);
  int n = 0;
  for (char *p = out; p && *p; p++) n += *p == '\n';
  if (one && out && *out) *one = qc_strndup(out, strcspn(out, "\n"));
  free(out);
  return n;
}

TEST(run_restores_the_kv_cache_a_previous_daemon_saved) {
  char *env = wf_env("wf-run-kv");
  char *ws = fixture();
  char *model = qct_data_path("oracle/models/tiny-qwen3moe-f32.gguf");
  ASSERT_EQ_INT(run_reused(ws, model, ""), 0);
  char *file = NULL;
  ASSERT_EQ_INT(count_cache_files(env, &file), 1);
  /* the same instruction again: the whole prompt but its last token comes from disk */
  long r2 = run_reused(ws, model, "");
  ASSERT_MSG(r2 > 1000, "second run reused %ld tokens", r2);
  /* damage every file: they are deleted and the run prefills from scratch */
  ASSERT(count_cache_files(env, NULL) >= 1);
  ASSERT_EQ_INT(wf_sh(NULL, "for f in %s/cache/kv/*/*.qckv; do printf 'XXXX' | dd of=\"$f\" bs=1 seek=300 conv=notrunc "
                            "2>/dev/null; done", env), 0);
  ASSERT_EQ_INT(run_reused(ws, model, ""), 0);
  ASSERT_EQ_INT(count_cache_files(env, NULL), 1); /* only this run's own */
  /* a cap (8 MB) below two files (~5 MB each): the run restores, saves its own, and only
   * the newest stays */
  ASSERT(run_reused(ws, model, "QCODER_KV_CACHE=8") > 1000);
  ASSERT_EQ_INT(count_cache_files(env, NULL), 1);
  /* and off means off */
  ASSERT_EQ_INT(wf_sh(NULL, "rm -rf %s/cache/kv", env), 0);
  ASSERT_EQ_INT(run_reused(ws, model, "QCODER_KV_CACHE=off"), 0);
  ASSERT_EQ_INT(count_cache_files(env, NULL), 0);
  ASSERT(wf_daemon_gone());
  free(file), free(model), free(ws), free(env);
}

QC_TEST_MAIN
