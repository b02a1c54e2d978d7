/* cmd_run.c — `qcoder run "instruction"`: one agent turn without an editor — qcoder's
 * `claude -p` / `codex exec` / `aider --message`.
 *
 * A client of the daemon like any editor: connect (starting the daemon when none answers,
 * stopping it afterwards), open a session in the workspace, send the instruction, show the
 * turn as it happens, and then say what changed and whether it holds:
 *
 *   before  a checkpoint of the workspace (the diff summary is measured from it; it is
 *           also the undo: `qcoder checkpoint restore ID`)
 *   during  on a terminal a status line redrawn in place (step, current tool, tokens/s,
 *           elapsed) under the assistant's text and one line per tool call; plain lines
 *           when stdout is not a terminal; --json: one event per line
 *   after   files changed and +/- lines; --verify CMD run in the sandbox like run_command
 *           (its exit status decides); --commit BRANCH puts the changes on a new branch
 *
 * Permissions follow the mode: auto-edit lets edits through and asks for commands — y/n
 * on /dev/tty when a person is there, otherwise refused (the model reads that the action
 * was denied); full-auto allows everything, commands only inside the sandbox.
 *
 * Exit: 0 done (and verified when --verify), 1 done but verification failed, 2 error,
 * 3 cancelled (Ctrl-C) or out of budget (steps/tokens). Ctrl-C sends session/cancel and
 * waits for the turn to end; a second Ctrl-C exits at once.
 */
#include "daemon/commands.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "daemon/acp_client.h"
#include "daemon/workflow.h"
#include "tools/tools.h"

const char cmd_run_usage[] =
    "usage: qcoder run [--workspace DIR] [--model SPEC | --remote URL] [--mode auto-edit|full-auto]\n"
    "                  [--max-steps N] [--max-tokens N] [--verify CMD] [--commit BRANCH]\n"
    "                  [--sandbox require|prefer|off] [--json] \"instruction\" | -\n"
    "\n"
    "Run the agent on one instruction in a workspace, without an editor, and report what\n"
    "changed. The agent runs in the qcoder daemon (started when none answers and stopped\n"
    "afterwards). A checkpoint is taken first: 'qcoder checkpoint restore ID' undoes the run.\n"
    "'-' reads the instruction from stdin.\n"
    "\n"
    "  --workspace DIR   the project (default: the current directory)\n"
    "  --model SPEC      GGUF path, cache NAME, http(s) URL or script:FILE; default from\n"
    "                    $QCODER_MODEL, the config file or the cache ('qcoder models --which')\n"
    "  --remote URL      an OpenAI-compatible server (vLLM, SGLang, llama-server)\n"
    "  --mode MODE       auto-edit (default): edits are allowed, commands are asked for —\n"
    "                    y/n on the terminal, refused when there is none; full-auto: all\n"
    "                    allowed, commands only inside the sandbox\n"
    "  --max-steps N     model calls (default 50); --max-tokens N: generated tokens\n"
    "  --verify CMD      after the agent is done, run CMD in the workspace (sandboxed like\n"
    "                    run_command, 600 s timeout): exit status 0 means verified\n"
    "  --commit BRANCH   when done (and verified, with --verify), commit the changes to a\n"
    "                    new branch (a git repository is needed; the branch must not exist)\n"
    "  --sandbox MODE    commands: require (default in full-auto), prefer, off\n"
    "  --json            newline-delimited JSON on stdout: {\"type\":\"start\"}, each\n"
    "                    {\"type\":\"session/update\",\"update\":{…}} (ACP), permission, verify and\n"
    "                    commit records, and last {\"type\":\"result\", \"stopReason\", \"verified\",\n"
    "                    \"exitCode\", \"changedFiles\", \"diffStat\", \"tokens\", \"elapsed_s\", \"error\"?}\n"
    "\n"
    "Exit status: 0 done and verified (or done, without --verify); 1 done but the\n"
    "verification failed; 2 error (no model, daemon or backend failure, bad arguments);\n"
    "3 cancelled (Ctrl-C: the turn is cancelled cleanly; a second Ctrl-C exits at once) or\n"
    "out of budget (--max-steps / --max-tokens reached).\n"
    "\n"
    "Examples:\n"
    "  qcoder run \"rename parse_cfg to config_parse and fix every caller\" --verify make\n"
    "  qcoder run --mode full-auto --verify 'make test' --commit fix/overflow \"fix the overflow in buf.c\"\n";

typedef struct rs {
  acp_client *acp;
  char *session;
  pthread_mutex_t mu;  /* stdout records, session */
  int json;
  int can_ask;         /* a person at /dev/tty can answer permission requests */
  wf_view *view;
  int full_auto;
  atomic_int cancelled;
} rs;

static void emit(rs *r, json_t *ev_steal) {
  if (!r->json || !ev_steal) {
    json_decref(ev_steal);
    return;
  }
  char *s = json_dumps(ev_steal, JSON_COMPACT | JSON_ENSURE_ASCII);
  json_decref(ev_steal);
  if (!s) return;
  pthread_mutex_lock(&r->mu);
  fputs(s, stdout);
  fputc('\n', stdout);
  fflush(stdout);
  pthread_mutex_unlock(&r->mu);
  free(s);
}

static void on_update(void *user, const char *sid, const json_t *u) {
  rs *r = user;
  if (r->view) wf_view_update(r->view, u);
  emit(r, json_pack("{s:s, s:s, s:O}", "type", "session/update", "sessionId", sid, "update", u));
}

/* ---- permissions -------------------------------------------------------------------------- */

typedef struct ask {
  rs *r;
  rpc_req *req;
  char *title;
} ask;

static json_t *outcome(const char *option) {
  if (!option) return json_pack("{s:{s:s}}", "outcome", "outcome", "cancelled");
  return json_pack("{s:{s:s, s:s}}", "outcome", "outcome", "selected", "optionId", option);
}

/* Ask on /dev/tty, on a thread of its own (the ACP client's loop keeps running; Ctrl-C
 * turns the question into "cancelled"). */
static void *ask_main(void *arg) {
  ask *a = arg;
  const char *answer = "reject_once";
  int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) goto reply;
  wf_view_printf(a->r->view, "qcoder wants to run: %s", a->title);
  wf_view_hold(a->r->view, 1);
  char q[] = "Allow? [y]es / [n]o / [a]lways in this session: ";
  if (write(fd, q, sizeof q - 1) < 0) goto reply;
  char line[64];
  size_t n = 0;
  for (;;) {
    if (wf_interrupted()) {
      answer = NULL;
      break;
    }
    struct pollfd p = {fd, POLLIN, 0};
    int pr = poll(&p, 1, 200);
    if (pr < 0 && errno != EINTR) break;
    if (pr <= 0) continue;
    ssize_t k = read(fd, line + n, sizeof line - 1 - n);
    if (k <= 0) break;
    n += (size_t)k;
    if (memchr(line, '\n', n) || n >= sizeof line - 1) break;
  }
  line[n] = '\0';
  if (answer) {
    char c = line[strspn(line, " \t")];
    answer = c == 'y' || c == 'Y' ? "allow_once" : c == 'a' || c == 'A' ? "allow_always" : "reject_once";
  }
reply:
  if (fd >= 0) {
    if (!answer || !strcmp(answer, "reject_once")) {
      const char *msg = answer ? "refused\n" : "\n";
      if (write(fd, msg, strlen(msg)) < 0) { /* the terminal went away */
      }
    }
    close(fd);
  }
  wf_view_hold(a->r->view, 0);
  emit(a->r, json_pack("{s:s, s:s, s:s}", "type", "permission", "title", a->title, "outcome",
                       answer ? answer : "cancelled"));
  acp_client_reply(a->req, outcome(answer));
  free(a->title);
  free(a);
  return NULL;
}

static void on_request(void *user, rpc_req *req, const char *method, const json_t *params) {
  rs *r = user;
  if (strcmp(method, "session/request_permission") != 0) {
    acp_client_reply_error(req, RPC_METHOD_NOT_FOUND, "qcoder run offers no fs/terminal capabilities");
    return;
  }
  const json_t *tc = json_object_get(params, "toolCall");
  const char *title = json_string_value(json_object_get(tc, "title"));
  const char *cmd = json_string_value(json_object_get(json_object_get(tc, "rawInput"), "command"));
  char *what = cmd ? qc_asprintf("%s", cmd) : strdup(title ? title : "a tool");
  if (r->full_auto) { /* full-auto does not ask; should the daemon, the mode's answer stands */
    acp_client_reply(req, outcome("allow_once"));
    free(what);
    return;
  }
  if (atomic_load(&r->cancelled)) {
    acp_client_reply(req, outcome(NULL));
    free(what);
    return;
  }
  if (!r->can_ask) {
    if (r->json)
      emit(r, json_pack("{s:s, s:s, s:s, s:s}", "type", "permission", "title", what, "outcome", "reject_once",
                        "reason", "no terminal to ask on: commands need --mode full-auto"));
    else
      wf_view_printf(r->view, "qcoder run: refused to run %s — nobody can approve commands here (no terminal); "
                              "--mode full-auto allows them inside the sandbox", what);
    acp_client_reply(req, outcome("reject_once"));
    free(what);
    return;
  }
  ask *a = calloc(1, sizeof *a);
  pthread_t t;
  if (!a) {
    acp_client_reply(req, outcome("reject_once"));
    free(what);
    return;
  }
  a->r = r;
  a->req = req;
  a->title = what;
  if (pthread_create(&t, NULL, ask_main, a) != 0) {
    acp_client_reply(req, outcome("reject_once"));
    free(a->title);
    free(a);
    return;
  }
  pthread_detach(t);
}

static void on_interrupt(void *user) {
  rs *r = user;
  atomic_store(&r->cancelled, 1);
  pthread_mutex_lock(&r->mu);
  if (r->acp && r->session) acp_client_cancel(r->acp, r->session);
  pthread_mutex_unlock(&r->mu);
  fprintf(stderr, "\nqcoder run: cancelling (Ctrl-C again to quit at once)\n");
}

/* ---- the command ---------------------------------------------------------------------------- */

static int parse_num(const char *s, long lo, long hi, long *out) {
  char *end;
  long v = strtol(s, &end, 10);
  if (!*s || *end || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

static char *read_stdin(void) {
  qc_buf b;
  qc_buf_init(&b, WF_RUN_INSTRUCTION_MAX);
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
    if (qc_buf_append(&b, chunk, n) != QC_OK) {
      qc_buf_release(&b);
      return NULL;
    }
  return qc_buf_detach(&b, NULL);
}

/* The last `lines` lines of text. */
static const char *tail_lines(const char *s, int lines) {
  const char *p = s + strlen(s);
  while (p > s && (p[-1] == '\n')) p--;
  while (p > s) {
    if (p[-1] == '\n' && --lines == 0) break;
    p--;
  }
  return p;
}

int cmd_run(int argc, char **argv) {
  const char *ws_dir = ".", *model_flag = NULL, *remote_flag = NULL, *verify = NULL, *branch = NULL;
  const char *instruction_arg = NULL, *mode = "auto-edit", *sandbox = NULL;
  long max_steps = 0, max_tokens = 0, v;
  int json = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int more = i + 1 < argc;
    if (!strcmp(a, "--workspace") && more) ws_dir = argv[++i];
    else if (!strcmp(a, "--model") && more) model_flag = argv[++i];
    else if (!strcmp(a, "--remote") && more) remote_flag = argv[++i];
    else if (!strcmp(a, "--mode") && more) mode = argv[++i];
    else if (!strcmp(a, "--verify") && more) verify = argv[++i];
    else if (!strcmp(a, "--commit") && more) branch = argv[++i];
    else if (!strcmp(a, "--sandbox") && more) sandbox = argv[++i];
    else if (!strcmp(a, "--json")) json = 1;
    else if (!strcmp(a, "--max-steps") && more) {
      if (parse_num(argv[++i], 1, 10000, &v)) return qc_cmd_usage_error("run", "--max-steps wants 1..10000");
      max_steps = v;
    } else if (!strcmp(a, "--max-tokens") && more) {
      if (parse_num(argv[++i], 1, LONG_MAX, &v)) return qc_cmd_usage_error("run", "--max-tokens wants a count");
      max_tokens = v;
    } else if (!strcmp(a, "--") && more) {
      if (instruction_arg || i + 2 < argc) return qc_cmd_usage_error("run", "one instruction, please (quote it)");
      instruction_arg = argv[++i];
    } else if (a[0] == '-' && a[1]) return qc_cmd_usage_error("run", "unknown option '%s'", a);
    else if (!instruction_arg) instruction_arg = a;
    else return qc_cmd_usage_error("run", "one instruction, please (quote it): '%s' is extra", a);
  }
  if (!instruction_arg) return qc_cmd_usage_error("run", "no instruction given");
  if (strcmp(mode, "auto-edit") && strcmp(mode, "full-auto"))
    return qc_cmd_usage_error("run", "--mode is auto-edit or full-auto");
  if (sandbox && strcmp(sandbox, "require") && strcmp(sandbox, "prefer") && strcmp(sandbox, "off"))
    return qc_cmd_usage_error("run", "--sandbox is require, prefer or off");
  if (model_flag && remote_flag) return qc_cmd_usage_error("run", "--model and --remote exclude each other");
  int full_auto = !strcmp(mode, "full-auto");
  if (!sandbox) sandbox = full_auto ? "require" : "prefer";

  int rc = 2;
  uint64_t t0 = qc_now_ms();
  char *instruction = !strcmp(instruction_arg, "-") ? read_stdin() : strdup(instruction_arg);
  char *root = realpath(ws_dir, NULL);
  char *err = NULL, *cp = NULL, *stop = NULL, *error = NULL, *commit = NULL, *verify_out = NULL;
  char why[1024] = "";
  wf_model_choice model = {0};
  tool_ws *ws = NULL;
  json_t *changed = NULL, *stats = NULL;
  int verified = -1, verify_code = 0, started = 0;
  rs r;
  memset(&r, 0, sizeof r);
  pthread_mutex_init(&r.mu, NULL);
  r.json = json;
  r.full_auto = full_auto;
  int live = !json && isatty(1);
  {
    int tfd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
    r.can_ask = tfd >= 0 && isatty(2);
    if (tfd >= 0) close(tfd);
  }
  if (!instruction || !*instruction) {
    fprintf(stderr, "qcoder run: the instruction is empty (or over 1 MiB)\n");
    goto out;
  }
  if (!root) {
    fprintf(stderr, "qcoder run: the workspace %s does not exist\n", ws_dir);
    goto out;
  }
  if (wf_model_resolve(model_flag, remote_flag, &model, &err) != 0) {
    fprintf(stderr, "qcoder run: %s\n", err);
    goto out;
  }
  if (!model.spec) {
    fprintf(stderr, "qcoder run: no model: pass --model SPEC or --remote URL, set $QCODER_MODEL, put {\"model\": …} "
                    "in the config file, or download one with 'qcoder pull qwen3-coder-30b-a3b:q4_k_m'\n");
    goto out;
  }
  if (branch && wf_check_new_branch(root, branch, why, sizeof why)) {
    fprintf(stderr, "qcoder run: %s\n", why);
    goto out;
  }
  tool_ws_opts wo = {.sandbox = !strcmp(sandbox, "require") ? TOOL_SANDBOX_REQUIRE
                                : !strcmp(sandbox, "off") ? TOOL_SANDBOX_OFF : TOOL_SANDBOX_PREFER};
  if (tool_ws_open(root, &wo, &ws, &err) != TOOL_OK) {
    fprintf(stderr, "qcoder run: cannot open the workspace %s: %s\n", root, err ? err : "?");
    goto out;
  }
  if (tool_checkpoint_create(ws, "qcoder run: before", &cp, &err) != TOOL_OK) {
    fprintf(stderr, "qcoder run: cannot take a checkpoint of %s: %s\n", root, err ? err : "?");
    goto out;
  }
  r.view = wf_view_new(stdout, live, !json, !json);
  emit(&r, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", "start", "workspace", root, "model", model.spec,
                     "model_source", model.source, "mode", mode, "checkpoint", cp));
  acp_client_opts o = {.autostart = 1, .on_request = on_request, .user = &r, .client_name = "qcoder run",
                       .call_timeout_ms = WF_SESSION_TIMEOUT_MS};
  wf_interrupt_install(on_interrupt, &r, 3);
  int arc = wf_agent_open(&o, &r.acp, &started, why, sizeof why);
  if (arc != QC_OK) {
    error = qc_asprintf("cannot reach the qcoder daemon: %s", *why ? why : rpc_strerror(arc));
    goto report;
  }
  json_t *meta = json_pack("{s:s, s:s, s:s}", "model", model.spec, "mode", mode, "sandbox", sandbox);
  if (max_steps) json_object_set_new(meta, "maxSteps", json_integer(max_steps));
  if (max_tokens) json_object_set_new(meta, "maxTokens", json_integer(max_tokens));
  char *sid = NULL;
  arc = acp_client_new_session(r.acp, root, meta, NULL, &sid, NULL, why, sizeof why);
  json_decref(meta);
  if (arc != QC_OK) {
    error = qc_asprintf("cannot start a session: %s", *why ? why : rpc_strerror(arc));
    goto report;
  }
  pthread_mutex_lock(&r.mu);
  r.session = sid;
  pthread_mutex_unlock(&r.mu);
  if (atomic_load(&r.cancelled)) {
    stop = strdup("cancelled");
    goto report;
  }
  wf_view_begin(r.view, NULL);
  arc = acp_client_prompt(r.acp, sid, instruction, on_update, &r, &stop, why, sizeof why);
  wf_view_end(r.view);
  if (arc != QC_OK) {
    free(stop);
    stop = NULL;
    error = strdup(*why ? why : rpc_strerror(arc));
  }

report:
  /* what changed */
  if (ws && cp) {
    char *patch = NULL, *e2 = NULL;
    if (tool_checkpoint_diff(ws, cp, &patch, &stats, &e2) == TOOL_OK) {
      changed = wf_patch_files(patch);
    } else {
      if (!error) error = qc_asprintf("cannot compare with the checkpoint: %s", e2 ? e2 : "?");
    }
    free(patch);
    free(e2);
  }
  int done = stop && !strcmp(stop, "end_turn") && !error;
  if (done && verify && !wf_interrupted()) {
    if (!json) wf_view_printf(r.view, "verifying: %s", verify);
    json_t *args = json_pack("{s:s, s:i}", "command", verify, "timeout_s", WF_RUN_VERIFY_TIMEOUT_S);
    tool_result tr = {0};
    tool_call_opts to = {.cancel = &r.cancelled}; /* Ctrl-C stops the verification too */
    tool_call(ws, "run_command", args, &to, &tr);
    json_decref(args);
    const json_t *ex = json_object_get(tr.data, "exit");
    if (tr.ok && ex) {
      verify_code = (int)json_integer_value(json_object_get(ex, "code"));
      verified = verify_code == 0 && !json_integer_value(json_object_get(ex, "signal")) &&
                 !json_is_true(json_object_get(ex, "timed_out"));
      verify_out = tr.output ? strdup(tr.output) : NULL;
    } else {
      verified = 0;
      verify_code = -1;
      verify_out = strdup(tr.error ? tr.error : "the verification command could not run");
    }
    emit(&r, json_pack("{s:s, s:s, s:b, s:i, s:s}", "type", "verify", "command", verify, "passed", verified,
                       "exitCode", verify_code, "output", verify_out ? verify_out : ""));
    tool_result_release(&tr);
  }
  if (done && branch && verified != 0 && json_array_size(changed) > 0 && !wf_interrupted()) {
    char *msg = qc_asprintf("qcoder run: %.*s\n\n%s\n", (int)strcspn(instruction, "\n"), instruction, instruction);
    char *e2 = NULL;
    int crc = tool_git_commit_branch(ws, branch, msg ? msg : "qcoder run", &commit, &e2);
    free(msg);
    if (crc != TOOL_OK) {
      error = qc_asprintf("cannot commit to %s: %s", branch, e2 ? e2 : tool_strerror(crc));
    } else {
      emit(&r, json_pack("{s:s, s:s, s:s}", "type", "commit", "branch", branch, "commit", commit));
    }
    free(e2);
  }
  /* the exit code */
  if (error) rc = 2;
  else if (!stop || !strcmp(stop, "cancelled") || !strcmp(stop, "max_tokens") || !strcmp(stop, "max_turn_requests"))
    rc = 3;
  else if (!strcmp(stop, "end_turn")) rc = verified == 0 ? 1 : 0;
  else rc = 2; /* refusal, or a reason this client does not know */
  if (!error && wf_interrupted()) rc = 3; /* Ctrl-C after the turn, during --verify */
  wf_view_stats st = {0};
  if (r.view) wf_view_get_stats(r.view, &st);
  double elapsed = (double)(qc_now_ms() - t0) / 1000.0;
  if (json) {
    json_t *res = json_pack("{s:s, s:o, s:o, s:i, s:o, s:o, s:{s:I, s:I, s:I}, s:f, s:i, s:i, s:o}", "type", "result",
                            "stopReason", stop ? json_string(stop) : json_null(), "verified",
                            verified < 0 ? json_null() : json_boolean(verified), "exitCode", rc, "changedFiles",
                            changed ? json_incref(changed) : json_array(), "diffStat",
                            stats ? json_incref(stats) : json_null(), "tokens", "prompt", (json_int_t)st.prompt_tokens,
                            "reused", (json_int_t)st.reused_tokens, "generated", (json_int_t)st.generated_tokens, "elapsed_s", elapsed, "steps", st.steps,
                            "toolCalls", st.tool_calls, "checkpoint", cp ? json_string(cp) : json_null());
    if (error) json_object_set_new(res, "error", json_string(error));
    if (commit) json_object_set_new(res, "commit", json_pack("{s:s, s:s}", "branch", branch, "commit", commit));
    emit(&r, res);
  } else if (r.view) {
    char el[32];
    wf_fmt_duration(elapsed, el, sizeof el);
    wf_view_printf(r.view, "── %s in %s · %d step%s · %d tool call%s · %ld tokens generated",
                   error ? "failed" : stop ? stop : "stopped", el, st.steps, st.steps == 1 ? "" : "s", st.tool_calls,
                   st.tool_calls == 1 ? "" : "s", st.generated_tokens);
    if (error) wf_view_printf(r.view, "   error: %s", error);
    size_t nf = json_array_size(changed);
    if (nf) {
      qc_buf b;
      qc_buf_init(&b, 1 << 16);
      size_t i;
      json_t *f;
      json_array_foreach(changed, i, f) {
        if (i == 10) {
          qc_buf_printf(&b, ", … (%zu more)", nf - 10);
          break;
        }
        qc_buf_printf(&b, "%s%s", i ? ", " : "", json_string_value(f));
      }
      wf_view_printf(r.view, "   changed %zu file%s, +%lld −%lld: %s", nf, nf == 1 ? "" : "s",
                     (long long)json_integer_value(json_object_get(stats, "insertions")),
                     (long long)json_integer_value(json_object_get(stats, "deletions")), b.data);
      qc_buf_release(&b);
    } else if (cp) {
      wf_view_printf(r.view, "   no file changed");
    }
    if (verified >= 0) {
      wf_view_printf(r.view, "   verify: %s — %s (exit %d)", verify, verified ? "passed" : "FAILED", verify_code);
      if (!verified && verify_out) wf_view_printf(r.view, "%s", tail_lines(verify_out, WF_RUN_VERIFY_TAIL_LINES));
    } else if (verify && !done) {
      wf_view_printf(r.view, "   verify: not run (the agent did not finish)");
    }
    if (commit) wf_view_printf(r.view, "   committed to branch %s (%.12s)", branch, commit);
    else if (branch && done && verified != 0 && !nf) wf_view_printf(r.view, "   nothing to commit");
    else if (branch && verified == 0) wf_view_printf(r.view, "   not committed: the verification failed");
    if (nf && cp) wf_view_printf(r.view, "   undo: qcoder checkpoint restore %s --workspace %s", cp, root);
  }
  wf_interrupt_uninstall();
  pthread_mutex_lock(&r.mu);
  char *sess = r.session;
  r.session = NULL;
  pthread_mutex_unlock(&r.mu);
  wf_agent_close(r.acp, started);
  r.acp = NULL;
  free(sess);
out:
  if (r.view) wf_view_free(r.view);
  if (ws) tool_ws_close(ws);
  json_decref(changed);
  json_decref(stats);
  wf_model_choice_release(&model);
  pthread_mutex_destroy(&r.mu);
  free(instruction), free(root), free(err), free(cp), free(stop), free(error), free(commit), free(verify_out);
  return rc;
}
