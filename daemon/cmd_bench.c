/* cmd_bench.c — `qcoder bench`: prompt-processing and generation speed of a model, the
 * way llama-bench measures them (pp: one prompt of -p random tokens into an empty cache;
 * tg: -n tokens decoded one at a time from an empty cache), plus the memory side (peak
 * RSS, bytes of weights a decoded token reads and the bandwidth that implies) and, with
 * --agent, the time to first token of a growing multi-turn conversation with prefix reuse
 * on and off, and with the previous turn's cache restored from a saved file (a restarted
 * daemon).
 *
 * Each measurement is repeated -r times after one untimed warm-up run (which also faults
 * the mapped weights in); the report gives mean ± standard deviation and every value.
 */
#include "daemon/commands.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/common.h"
#include "daemon/cmd_engine_util.h"
#include "engine/engine.h"

const char cmd_bench_usage[] =
    "usage: qcoder bench --model FILE [-p N] [-n N] [-t THREADS] [-r REPS] [--json]\n"
    "                    [--kernels scalar|avx2|avx512] [--bandwidth GB/s]\n"
    "                    [--agent [--agent-user N] [--agent-reply N] [--agent-turns N]]\n"
    "\n"
    "Measure prompt processing (pp: -p random tokens into an empty cache, default 512) and\n"
    "generation (tg: -n tokens decoded one by one, default 128), each -r times (default 3)\n"
    "after one warm-up, with -t threads (default all cores). Prints tok/s as mean ± sd,\n"
    "peak RSS, the bytes of weights a generated token reads and the read bandwidth that\n"
    "implies; with --bandwidth (the machine's measured read bandwidth, e.g. from\n"
    "tests/bench/bench_bandwidth) also the share of that limit reached.\n"
    "\n"
    "--agent runs a synthetic ChatML conversation of --agent-turns turns (default 6), each\n"
    "a user message of about --agent-user tokens (default 200) and an assistant reply of\n"
    "about --agent-reply tokens (default 800), and reports the time to first token of\n"
    "every turn with prefix reuse (one session that keeps its cache; the reply is put into\n"
    "the cache untimed, as if it had been generated), without (the cache emptied before\n"
    "each turn), and from disk (the previous turn's cache saved to a file, then restored\n"
    "into a fresh session and used: what a restarted daemon does; the file is in the page\n"
    "cache, as it is right after a daemon saved it).\n"
    "\n"
    "--json prints one object: pp_tok_s, tg_tok_s (means), pp_runs, tg_runs, pp_sd, tg_sd,\n"
    "peak_rss_bytes, bytes_per_token, gb_per_s, kernels, threads, and agent_turns.\n";

#define BENCH_MAX_TOKENS 65536
#define BENCH_MAX_REPS 100
#define BENCH_MAX_TURNS 32

static double now_s(void) { return (double)qc_now_ns() / 1e9; }

static void mean_sd(const double *v, int n, double *mean, double *sd) {
  double s = 0, s2 = 0;
  for (int i = 0; i < n; i++) s += v[i];
  *mean = s / n;
  for (int i = 0; i < n; i++) s2 += (v[i] - *mean) * (v[i] - *mean);
  *sd = n > 1 ? sqrt(s2 / (n - 1)) : 0;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 11);
}

/* ---- synthetic chat text ---------------------------------------------------------------- */

static const char *const WORDS[] = {
    "the", "function", "returns", "a", "value", "when", "buffer", "is", "empty", "and", "we", "should", "check",
    "error", "code", "before", "calling", "parser", "with", "input", "file", "test", "fails", "because", "of", "missing",
    "header", "in", "build", "output", "shows", "warning", "about", "unused", "variable", "let", "me", "look", "at",
    "this", "module", "imports", "config", "from", "path", "that", "does", "not", "exist", "on", "disk", "so", "loader",
    "throws", "exception", "rename", "parse_cfg", "to", "config_parse", "every", "caller", "updates", "struct",
    "field", "pointer", "memory", "leak", "free", "after", "use", "thread", "lock", "queue", "request", "response",
    "json", "string", "length", "index", "array", "loop", "over", "items", "count", "total", "result", "assert",
    "expected", "got", "line", "column", "token", "stream", "socket", "timeout", "retry", "cache", "hit", "miss"};

static void synth_text(qc_buf *b, int words) {
  for (int i = 0; i < words; i++) {
    const char *w = WORDS[rnd() % (sizeof WORDS / sizeof *WORDS)];
    qc_buf_append(b, w, strlen(w));
    uint32_t r = rnd() % 16;
    qc_buf_append(b, r == 0 ? ".\n" : r == 1 ? ", " : r == 2 ? "(); " : " ", r == 0 || r == 1 ? 2 : r == 2 ? 4 : 1);
  }
}

/* ---- the measurements ------------------------------------------------------------------- */

typedef struct agent_turn {
  size_t prompt_tokens, reused, new_tokens;
  double ttft_reuse_ms, ttft_full_ms;
  double ttft_disk_ms;  /* a fresh session restoring the previous turn's saved cache */
} agent_turn;

static int tokenize_all(eng_model *m, const qc_buf *b, int32_t **ids, size_t *n) {
  eng_error err = {0};
  if (eng_tokenize(m, b->data, b->len, 1, ids, n, &err)) {
    fprintf(stderr, "qcoder bench: %s\n", err.msg);
    return -1;
  }
  return 0;
}

static int run_agent(eng_model *m, int turns, int user_tok, int reply_tok, agent_turn *out) {
  eng_error err = {0};
  eng_session *s = NULL, *s2 = NULL;
  int rc = -1;
  int32_t *ids = NULL;
  size_t n_ids = 0;
  qc_buf conv, sys, replies[BENCH_MAX_TURNS], users[BENCH_MAX_TURNS];
  qc_buf_init(&conv, (size_t)1 << 26);
  qc_buf_init(&sys, (size_t)1 << 22);
  /* the texts are drawn once so both runs see the same conversation */
  qc_buf_puts(&sys, "<|im_start|>system\nYou are Qwen, a coding assistant. You read code, run tools and fix tests.\n");
  synth_text(&sys, 150);
  qc_buf_puts(&sys, "<|im_end|>\n");
  for (int k = 0; k < turns; k++) {
    qc_buf_init(&users[k], (size_t)1 << 22);
    qc_buf_init(&replies[k], (size_t)1 << 22);
    synth_text(&users[k], user_tok * 5 / 6);
    synth_text(&replies[k], reply_tok * 5 / 6);
  }
  eng_session_opts so = {.n_ctx = (uint32_t)(turns * (user_tok + reply_tok) * 2 + 1024)};
  char *tmpdir = NULL, *kvpath = NULL;
  char tmpl[] = "/tmp/qcoder-bench-XXXXXX";
  if (!(tmpdir = mkdtemp(tmpl)) || !(kvpath = qc_path_join(tmpdir, "turn.qckv"))) {
    fprintf(stderr, "qcoder bench: cannot create a temporary folder: %s\n", strerror(errno));
    tmpdir = NULL;
    goto out;
  }
  if (eng_session_new(m, &so, &s, &err) || eng_session_new(m, &so, &s2, &err)) {
    fprintf(stderr, "qcoder bench: %s\n", err.msg);
    goto out;
  }
  eng_sample_params sp;
  eng_sample_params_default(&sp);
  sp.temperature = 0;
  sp.max_tokens = 1;
  sp.ignore_eog = 1;
  sp.repeat_penalty = 1;
  for (int pass = 0; pass < 2; pass++) {
    qc_buf_reset(&conv);
    qc_buf_append(&conv, sys.data, sys.len);
    eng_session_reset(s);
    for (int k = 0; k < turns; k++) {
      qc_buf_puts(&conv, "<|im_start|>user\n");
      qc_buf_append(&conv, users[k].data, users[k].len);
      qc_buf_puts(&conv, "<|im_end|>\n<|im_start|>assistant\n");
      free(ids);
      ids = NULL;
      if (tokenize_all(m, &conv, &ids, &n_ids)) goto out;
      if (pass == 1) eng_session_reset(s); /* reuse off: an empty cache every turn */
      eng_gen_stats st;
      if (pass == 0 && k > 0) {
        /* a restarted daemon: the cache saved after the previous turn (untimed; the file is
         * then in the page cache), restored into a fresh session and used (timed) */
        if (eng_session_save(s, kvpath, &err)) {
          fprintf(stderr, "qcoder bench: saving turn %d: %s\n", k, err.msg);
          goto out;
        }
        eng_session_reset(s2);
        double t1 = now_s();
        size_t got = 0;
        if (eng_session_restore(s2, kvpath, ids, n_ids, &got, &err) ||
            eng_generate(s2, ids, n_ids, &sp, NULL, NULL, &st, &err)) {
          fprintf(stderr, "qcoder bench: turn %d from disk: %s\n", k + 1, err.msg);
          goto out;
        }
        out[k].ttft_disk_ms = (now_s() - t1) * 1e3;
        unlink(kvpath);
      }
      double t0 = now_s();
      if (eng_generate(s, ids, n_ids, &sp, NULL, NULL, &st, &err)) {
        fprintf(stderr, "qcoder bench: turn %d: %s\n", k + 1, err.msg);
        goto out;
      }
      double ms = (now_s() - t0) * 1e3;
      out[k].prompt_tokens = n_ids;
      if (pass == 0) {
        out[k].ttft_reuse_ms = ms;
        out[k].reused = st.n_reused;
        out[k].new_tokens = n_ids - st.n_reused;
      } else {
        out[k].ttft_full_ms = ms;
      }
      /* the assistant's reply joins the conversation and (reuse on) the cache, as if it
       * had been generated: untimed */
      qc_buf_append(&conv, replies[k].data, replies[k].len);
      qc_buf_puts(&conv, "<|im_end|>\n");
      if (pass == 0 && k + 1 < turns) {
        free(ids);
        ids = NULL;
        if (tokenize_all(m, &conv, &ids, &n_ids)) goto out;
        if (eng_generate(s, ids, n_ids, &sp, NULL, NULL, &st, &err)) {
          fprintf(stderr, "qcoder bench: reply %d: %s\n", k + 1, err.msg);
          goto out;
        }
      }
    }
  }
  rc = 0;
out:
  for (int k = 0; k < turns; k++) {
    qc_buf_release(&users[k]);
    qc_buf_release(&replies[k]);
  }
  qc_buf_release(&sys);
  qc_buf_release(&conv);
  free(ids);
  eng_session_free(s);
  eng_session_free(s2);
  if (tmpdir) rmdir(tmpdir);
  free(kvpath);
  return rc;
}

int cmd_bench(int argc, char **argv) {
  const char *model = NULL, *kernels = NULL;
  long pp = 512, tg = 128, threads = 0, reps = 3, turns = 6, user_tok = 200, reply_tok = 800;
  float bw = 0;
  int json = 0, agent = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int has = i + 1 < argc;
    if (!strcmp(a, "--model") && has) model = argv[++i];
    else if (!strcmp(a, "--kernels") && has) kernels = argv[++i];
    else if (!strcmp(a, "--json")) json = 1;
    else if (!strcmp(a, "--agent")) agent = 1;
    else if (!strcmp(a, "-p") && has) {
      if (qc_cmd_parse_long(argv[++i], 0, BENCH_MAX_TOKENS, &pp)) return qc_cmd_usage_error("bench", "-p needs 0..%d", BENCH_MAX_TOKENS);
    } else if (!strcmp(a, "-n") && has) {
      if (qc_cmd_parse_long(argv[++i], 0, BENCH_MAX_TOKENS, &tg)) return qc_cmd_usage_error("bench", "-n needs 0..%d", BENCH_MAX_TOKENS);
    } else if (!strcmp(a, "-t") && has) {
      if (qc_cmd_parse_long(argv[++i], 1, 256, &threads)) return qc_cmd_usage_error("bench", "-t needs 1..256");
    } else if (!strcmp(a, "-r") && has) {
      if (qc_cmd_parse_long(argv[++i], 1, BENCH_MAX_REPS, &reps)) return qc_cmd_usage_error("bench", "-r needs 1..%d", BENCH_MAX_REPS);
    } else if (!strcmp(a, "--agent-turns") && has) {
      if (qc_cmd_parse_long(argv[++i], 1, BENCH_MAX_TURNS, &turns)) return qc_cmd_usage_error("bench", "--agent-turns needs 1..%d", BENCH_MAX_TURNS);
    } else if (!strcmp(a, "--agent-user") && has) {
      if (qc_cmd_parse_long(argv[++i], 1, 8192, &user_tok)) return qc_cmd_usage_error("bench", "--agent-user needs 1..8192");
    } else if (!strcmp(a, "--agent-reply") && has) {
      if (qc_cmd_parse_long(argv[++i], 1, 8192, &reply_tok)) return qc_cmd_usage_error("bench", "--agent-reply needs 1..8192");
    } else if (!strcmp(a, "--bandwidth") && has) {
      if (qc_cmd_parse_float(argv[++i], 0.001f, 100000.0f, &bw)) return qc_cmd_usage_error("bench", "--bandwidth needs GB/s > 0");
    } else return qc_cmd_usage_error("bench", "unknown or incomplete option '%s'", a);
  }
  if (!model) return qc_cmd_usage_error("bench", "--model FILE is required");
  eng_error err = {0};
  eng_model *m = NULL;
  eng_session *s = NULL;
  int32_t *toks = NULL;
  int rc = 1;
  eng_model_opts mo = {.n_threads = (int)threads, .kernels = kernels};
  if (eng_model_open(model, &mo, &m, &err)) {
    fprintf(stderr, "qcoder bench: %s\n", err.msg);
    return 1;
  }
  const eng_hparams *hp = eng_model_hparams(m);
  long n_ctx = (pp > tg ? pp : tg) + 16;
  if (eng_session_new(m, &(eng_session_opts){.n_ctx = (uint32_t)n_ctx}, &s, &err)) {
    fprintf(stderr, "qcoder bench: %s\n", err.msg);
    goto out;
  }
  long nt = pp > tg ? pp : tg;
  toks = malloc((size_t)(nt + 1) * sizeof *toks);
  if (!toks) goto out;
  for (long i = 0; i <= nt; i++) toks[i] = (int32_t)(rnd() % hp->n_vocab);
  double pp_v[BENCH_MAX_REPS], tg_v[BENCH_MAX_REPS];
  /* warm-up: one prompt and a few decode steps, untimed */
  if (pp) {
    if (eng_session_eval(s, toks, (size_t)pp, NULL, &err)) goto eval_fail;
  }
  eng_session_reset(s);
  for (long i = 0; i < (tg < 4 ? tg : 4); i++)
    if (eng_session_eval(s, &toks[i], 1, NULL, &err)) goto eval_fail;
  for (long r = 0; r < reps; r++) {
    if (pp) {
      eng_session_reset(s);
      double t0 = now_s();
      if (eng_session_eval(s, toks, (size_t)pp, NULL, &err)) goto eval_fail;
      pp_v[r] = (double)pp / (now_s() - t0);
    }
    if (tg) {
      eng_session_reset(s);
      double t0 = now_s();
      for (long i = 0; i < tg; i++)
        if (eng_session_eval(s, &toks[i], 1, NULL, &err)) goto eval_fail;
      tg_v[r] = (double)tg / (now_s() - t0);
    }
    if (!json) fprintf(stderr, "  run %ld/%ld: pp %.1f tok/s, tg %.2f tok/s\n", r + 1, reps, pp ? pp_v[r] : 0, tg ? tg_v[r] : 0);
  }
  agent_turn at[BENCH_MAX_TURNS];
  memset(at, 0, sizeof at);
  if (agent && run_agent(m, (int)turns, (int)user_tok, (int)reply_tok, at)) goto out;
  double ppm = 0, pps = 0, tgm = 0, tgs = 0;
  if (pp) mean_sd(pp_v, (int)reps, &ppm, &pps);
  if (tg) mean_sd(tg_v, (int)reps, &tgm, &tgs);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  const uint64_t rss = (uint64_t)ru.ru_maxrss * 1024;
  const uint64_t bpt = eng_model_active_bytes(m);
  const double gbs = (double)bpt * tgm / 1e9;
  const uint64_t kv = eng_model_kv_bytes(m);
  if (json) {
    json_t *o = json_object(), *pr = json_array(), *tr = json_array(), *ag = json_array();
    for (long r = 0; r < reps; r++) {
      if (pp) json_array_append_new(pr, json_real(pp_v[r]));
      if (tg) json_array_append_new(tr, json_real(tg_v[r]));
    }
    json_object_set_new(o, "model", json_string(model));
    json_object_set_new(o, "kernels", json_string(eng_model_kernels(m)));
    json_object_set_new(o, "threads", json_integer(eng_model_threads(m)));
    json_object_set_new(o, "n_prompt", json_integer(pp));
    json_object_set_new(o, "n_gen", json_integer(tg));
    json_object_set_new(o, "reps", json_integer(reps));
    json_object_set_new(o, "pp_tok_s", json_real(ppm));
    json_object_set_new(o, "pp_sd", json_real(pps));
    json_object_set_new(o, "pp_runs", pr);
    json_object_set_new(o, "tg_tok_s", json_real(tgm));
    json_object_set_new(o, "tg_sd", json_real(tgs));
    json_object_set_new(o, "tg_runs", tr);
    json_object_set_new(o, "peak_rss_bytes", json_integer((json_int_t)rss));
    json_object_set_new(o, "weights_file_bytes", json_integer((json_int_t)hp->file_bytes));
    json_object_set_new(o, "kv_bytes", json_integer((json_int_t)kv));
    json_object_set_new(o, "bytes_per_token", json_integer((json_int_t)bpt));
    json_object_set_new(o, "gb_per_s", json_real(gbs));
    if (bw > 0) json_object_set_new(o, "bandwidth_fraction", json_real(gbs / bw));
    for (long k = 0; agent && k < turns; k++) {
      json_t *t = json_object();
      json_object_set_new(t, "turn", json_integer(k + 1));
      json_object_set_new(t, "prompt_tokens", json_integer((json_int_t)at[k].prompt_tokens));
      json_object_set_new(t, "reused_tokens", json_integer((json_int_t)at[k].reused));
      json_object_set_new(t, "ttft_reuse_ms", json_real(at[k].ttft_reuse_ms));
      json_object_set_new(t, "ttft_no_reuse_ms", json_real(at[k].ttft_full_ms));
      if (k > 0) json_object_set_new(t, "ttft_from_disk_ms", json_real(at[k].ttft_disk_ms));
      json_array_append_new(ag, t);
    }
    json_object_set_new(o, "agent_turns", ag);
    char *txt = json_dumps(o, JSON_COMPACT);
    printf("%s\n", txt);
    free(txt);
    json_decref(o);
  } else {
    printf("model:      %s (%s, %u layers)\n", model, hp->arch, hp->n_layer);
    printf("kernels:    %s, %d threads\n", eng_model_kernels(m), eng_model_threads(m));
    if (pp) printf("pp%-5ld    %8.1f ± %.1f tok/s  (%ld runs)\n", pp, ppm, pps, reps);
    if (tg) printf("tg%-5ld    %8.2f ± %.2f tok/s  (%ld runs)\n", tg, tgm, tgs, reps);
    printf("weights:    %.1f MB file, %.1f MB read per generated token → %.1f GB/s", (double)hp->file_bytes / 1e6,
           (double)bpt / 1e6, gbs);
    if (bw > 0) printf(" (%.0f%% of %.1f GB/s)", 100 * gbs / bw, bw);
    printf("\npeak RSS:   %.1f MB (KV cache now %.1f MB)\n", (double)rss / 1e6, (double)kv / 1e6);
    if (agent) {
      printf("\nagent: %ld turns of ~%ld user + ~%ld reply tokens; time to first token\n", turns, user_tok, reply_tok);
      printf("turn  prompt  reused   new   reuse ms  no-reuse ms  ratio   from disk ms\n");
      double sr = 0, sf = 0, sd = 0;
      for (long k = 0; k < turns; k++) {
        printf("%4ld  %6zu  %6zu  %5zu  %9.0f  %11.0f  %5.1f%%", k + 1, at[k].prompt_tokens, at[k].reused,
               at[k].new_tokens, at[k].ttft_reuse_ms, at[k].ttft_full_ms, 100 * at[k].ttft_reuse_ms / at[k].ttft_full_ms);
        if (k > 0) printf("  %12.0f", at[k].ttft_disk_ms);
        printf("\n");
        if (k > 0) {
          sr += at[k].ttft_reuse_ms;
          sf += at[k].ttft_full_ms;
          sd += at[k].ttft_disk_ms;
        }
      }
      if (turns > 1)
        printf("turns 2-%ld: %.0f ms with reuse, %.0f ms without (%.1f%%), %.0f ms restoring a saved cache (%.1f%%)\n",
               turns, sr, sf, 100 * sr / sf, sd, 100 * sd / sf);
    }
  }
  rc = 0;
  goto out;
eval_fail:
  fprintf(stderr, "qcoder bench: %s\n", err.msg);
out:
  free(toks);
  eng_session_free(s);
  eng_model_close(m);
  return rc;
}
