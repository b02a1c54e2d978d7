/* cmd_generate.c — `qcoder generate`: stream a continuation of a prompt to stdout.
 *
 * The prompt is text (--prompt, tokenized with special tokens recognised), a user turn
 * wrapped in ChatML (--chat), or token ids (--tokens). Sampling defaults are Qwen3-Coder's
 * generation config; --temp 0 is greedy. A summary (tokens, timings, why it stopped) goes
 * to stderr so stdout holds only the generated text. */
#include "daemon/commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "daemon/cmd_engine_util.h"
#include "engine/engine.h"

const char cmd_generate_usage[] =
    "usage: qcoder generate --model FILE (--prompt TEXT | --chat TEXT | --tokens 1,2,3)\n"
    "                       [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P]\n"
    "                       [--repeat-penalty R] [--repeat-last-n N] [--seed S]\n"
    "                       [--stop STR]... [--ignore-eos] [--ctx N] [-t THREADS]\n"
    "                       [--kernels scalar|avx2|avx512] [-q]\n"
    "\n"
    "Stream a continuation to stdout. --chat wraps TEXT as a ChatML user turn followed by\n"
    "the assistant header. Defaults are Qwen3-Coder's generation config (temperature 0.7,\n"
    "top-k 20, top-p 0.8, repetition penalty 1.05); --temp 0 is greedy (ties to the lowest\n"
    "id). -n -1 generates until an end-of-generation token or the context is full (default\n"
    "256). A summary with timings goes to stderr unless -q.\n";

#define GENERATE_MAX_STOP 16
#define GENERATE_MAX_TOKENS_ARG 1048576

static int on_token(void *user, int32_t id, const char *text, size_t len) {
  (void)user;
  (void)id;
  if (len) fwrite(text, 1, len, stdout);
  fflush(stdout);
  return 0;
}

static const char *stop_name(eng_stop_reason r) {
  switch (r) {
    case ENG_STOP_EOG: return "end of generation";
    case ENG_STOP_MAX_TOKENS: return "max tokens";
    case ENG_STOP_STRING: return "stop string";
    case ENG_STOP_CALLBACK: return "callback";
    case ENG_STOP_CANCELLED: return "cancelled";
    case ENG_STOP_CONTEXT: return "context full";
    default: return "none";
  }
}

int cmd_generate(int argc, char **argv) {
  const char *model = NULL, *prompt = NULL, *chat = NULL, *toks = NULL, *kernels = NULL;
  const char *stops[GENERATE_MAX_STOP];
  size_t n_stop = 0;
  long n = 256, threads = 0, ctx = 0, top_k = -1, last_n = -1;
  float temp = -1, top_p = -1, min_p = -1, rep = -1;
  uint64_t seed = 0;
  int have_seed = 0, ignore_eos = 0, quiet = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int has = i + 1 < argc;
    const char *v = has ? argv[i + 1] : NULL;
#define BAD(...) return qc_cmd_usage_error("generate", __VA_ARGS__)
    if (!strcmp(a, "--model") && has) model = argv[++i];
    else if (!strcmp(a, "--prompt") && has) prompt = argv[++i];
    else if (!strcmp(a, "--chat") && has) chat = argv[++i];
    else if (!strcmp(a, "--tokens") && has) toks = argv[++i];
    else if (!strcmp(a, "--kernels") && has) kernels = argv[++i];
    else if (!strcmp(a, "--ignore-eos")) ignore_eos = 1;
    else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) quiet = 1;
    else if (!strcmp(a, "--stop") && has) {
      if (n_stop == GENERATE_MAX_STOP) BAD("at most %d --stop strings", GENERATE_MAX_STOP);
      stops[n_stop++] = argv[++i];
    } else if ((!strcmp(a, "-n") || !strcmp(a, "--max-tokens")) && has) {
      if (qc_cmd_parse_long(argv[++i], -1, GENERATE_MAX_TOKENS_ARG, &n)) BAD("-n needs -1..%d", GENERATE_MAX_TOKENS_ARG);
    } else if ((!strcmp(a, "-t") || !strcmp(a, "--threads")) && has) {
      if (qc_cmd_parse_long(argv[++i], 1, 256, &threads)) BAD("-t needs 1..256");
    } else if (!strcmp(a, "--ctx") && has) {
      if (qc_cmd_parse_long(argv[++i], 1, 1 << 20, &ctx)) BAD("--ctx needs 1..1048576");
    } else if (!strcmp(a, "--temp") && has) {
      if (qc_cmd_parse_float(argv[++i], 0, 100, &temp)) BAD("--temp needs 0..100, got '%s'", v);
    } else if (!strcmp(a, "--top-k") && has) {
      if (qc_cmd_parse_long(argv[++i], 0, 1 << 22, &top_k)) BAD("--top-k needs 0 or more");
    } else if (!strcmp(a, "--top-p") && has) {
      if (qc_cmd_parse_float(argv[++i], 0, 1, &top_p)) BAD("--top-p needs 0..1");
    } else if (!strcmp(a, "--min-p") && has) {
      if (qc_cmd_parse_float(argv[++i], 0, 1, &min_p)) BAD("--min-p needs 0..1");
    } else if (!strcmp(a, "--repeat-penalty") && has) {
      if (qc_cmd_parse_float(argv[++i], 0.01f, 100, &rep)) BAD("--repeat-penalty needs 0.01..100");
    } else if (!strcmp(a, "--repeat-last-n") && has) {
      if (qc_cmd_parse_long(argv[++i], -1, 1 << 20, &last_n)) BAD("--repeat-last-n needs -1..1048576");
    } else if (!strcmp(a, "--seed") && has) {
      if (qc_cmd_parse_u64(argv[++i], &seed)) BAD("--seed needs a non-negative integer");
      have_seed = 1;
    } else BAD("unknown or incomplete option '%s'", a);
#undef BAD
  }
  if (!model) return qc_cmd_usage_error("generate", "--model FILE is required");
  if (!!prompt + !!chat + !!toks != 1)
    return qc_cmd_usage_error("generate", "give exactly one of --prompt TEXT, --chat TEXT, --tokens 1,2,3");
  int rc = 1;
  eng_error err = {0};
  eng_model *m = NULL;
  eng_session *s = NULL;
  int32_t *ids = NULL;
  size_t n_ids = 0;
  char *wrapped = NULL;
  eng_model_opts mo = {.n_threads = (int)threads, .kernels = kernels};
  if (eng_model_open(model, &mo, &m, &err)) goto out;
  if (toks) {
    if (qc_cmd_parse_tokens(toks, GENERATE_MAX_TOKENS_ARG, &ids, &n_ids)) {
      rc = qc_cmd_usage_error("generate", "--tokens must be comma-separated ids");
      goto out;
    }
  } else {
    const char *text = prompt;
    if (chat) {
      wrapped = qc_asprintf("<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n", chat);
      if (!wrapped) goto out;
      text = wrapped;
    }
    if (eng_tokenize(m, text, strlen(text), 1, &ids, &n_ids, &err)) goto out;
  }
  uint32_t n_ctx = (uint32_t)ctx;
  if (!n_ctx) {
    size_t want = n_ids + (n > 0 ? (size_t)n : 4096) + 1;
    uint32_t train = eng_model_hparams(m)->n_ctx_train;
    n_ctx = (uint32_t)(want < train ? want : train);
  }
  eng_session_opts so = {.n_ctx = n_ctx};
  if (eng_session_new(m, &so, &s, &err)) goto out;
  eng_sample_params p;
  eng_sample_params_default(&p);
  if (temp >= 0) p.temperature = temp;
  if (top_k >= 0) p.top_k = (int)top_k;
  if (top_p >= 0) p.top_p = top_p;
  if (min_p >= 0) p.min_p = min_p;
  if (rep > 0) p.repeat_penalty = rep;
  if (last_n >= -1 && last_n != -1) p.repeat_last_n = (int)last_n;
  if (have_seed) p.seed = seed;
  p.max_tokens = (int)n;
  p.stop = stops;
  p.n_stop = n_stop;
  p.ignore_eog = ignore_eos;
  eng_gen_stats st;
  int grc = eng_generate(s, ids, n_ids, &p, on_token, NULL, &st, &err);
  fflush(stdout);
  if (!quiet) {
    double tps = st.decode_ms > 0 ? (double)st.n_generated * 1000.0 / st.decode_ms : 0;
    double pps = st.prefill_ms > 0 ? (double)(st.n_prompt - st.n_reused) * 1000.0 / st.prefill_ms : 0;
    fprintf(stderr, "\n[prompt %zu tokens in %.0f ms (%.1f tok/s); generated %zu tokens in %.0f ms (%.2f tok/s); stop: %s; kernels %s]\n",
            st.n_prompt, st.prefill_ms, pps, st.n_generated, st.decode_ms, tps, stop_name(st.stop), eng_model_kernels(m));
  }
  if (grc && grc != ENG_ECANCELLED) goto out;
  rc = 0;
out:
  if (rc == 1 && err.msg[0]) fprintf(stderr, "qcoder generate: %s\n", err.msg);
  free(wrapped);
  free(ids);
  eng_session_free(s);
  eng_model_close(m);
  return rc;
}
