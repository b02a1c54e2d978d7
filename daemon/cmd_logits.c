/* cmd_logits.c — `qcoder logits --model FILE --tokens 1,2,3 [--top K] [--json]`: run the
 * tokens through the model and print, for every position, the K largest logits (best
 * first, ties to the lower id). The JSON form `{"positions": [{"top": [[id, logit], …]},
 * …]}` is what the oracle tests compare. */
#include "daemon/commands.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/cmd_engine_util.h"
#include "engine/engine.h"

const char cmd_logits_usage[] =
    "usage: qcoder logits --model FILE --tokens 1,2,3 [--top K] [--json] [-t THREADS]\n"
    "\n"
    "Run the token ids through the model and print, for every position, the K largest\n"
    "logits (default 10), best first. --json prints {\"positions\": [{\"top\": [[id, logit],\n"
    "...]}, ...]}.\n";

#define LOGITS_MAX_TOKENS 65536

typedef struct pair {
  int32_t id;
  float v;
} pair;

/* top k of row (k small): insertion into a sorted list */
static size_t topk(const float *row, uint32_t n, size_t k, pair *out) {
  size_t m = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (m == k && !(row[i] > out[m - 1].v)) continue;
    size_t j = m < k ? m++ : k - 1;
    while (j > 0 && row[i] > out[j - 1].v) {
      out[j] = out[j - 1];
      j--;
    }
    out[j] = (pair){(int32_t)i, row[i]};
  }
  return m;
}

int cmd_logits(int argc, char **argv) {
  const char *model = NULL, *toks = NULL, *kernels = NULL;
  long top = 10, threads = 0;
  int json = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int has = i + 1 < argc;
    if (!strcmp(a, "--json")) json = 1;
    else if (!strcmp(a, "--model") && has) model = argv[++i];
    else if (!strcmp(a, "--tokens") && has) toks = argv[++i];
    else if (!strcmp(a, "--kernels") && has) kernels = argv[++i];
    else if (!strcmp(a, "--top") && has) {
      if (qc_cmd_parse_long(argv[++i], 1, 1000, &top)) return qc_cmd_usage_error("logits", "--top needs 1..1000");
    } else if ((!strcmp(a, "-t") || !strcmp(a, "--threads")) && has) {
      if (qc_cmd_parse_long(argv[++i], 1, 256, &threads)) return qc_cmd_usage_error("logits", "-t needs 1..256");
    } else return qc_cmd_usage_error("logits", "unknown or incomplete option '%s'", a);
  }
  if (!model) return qc_cmd_usage_error("logits", "--model FILE is required");
  if (!toks) return qc_cmd_usage_error("logits", "--tokens 1,2,3 is required");
  int32_t *ids;
  size_t n;
  if (qc_cmd_parse_tokens(toks, LOGITS_MAX_TOKENS, &ids, &n))
    return qc_cmd_usage_error("logits", "--tokens must be comma-separated ids (at most %d)", LOGITS_MAX_TOKENS);
  eng_model *m = NULL;
  eng_session *s = NULL;
  float *lg = NULL;
  pair *best = NULL;
  eng_error err = {0};
  int rc = 1;
  eng_model_opts mo = {.n_threads = (int)threads, .kernels = kernels};
  if (eng_model_open(model, &mo, &m, &err)) goto fail;
  const uint32_t V = eng_model_hparams(m)->n_vocab;
  eng_session_opts so = {.n_ctx = (uint32_t)n};
  if (eng_session_new(m, &so, &s, &err)) goto fail;
  lg = malloc(n * (size_t)V * sizeof *lg);
  best = malloc((size_t)top * sizeof *best);
  if (!lg || !best) {
    snprintf(err.msg, sizeof err.msg, "out of memory for %zu × %u logits", n, V);
    goto fail;
  }
  if (eng_session_eval(s, ids, n, lg, &err)) goto fail;
  if (json) {
    json_t *pos = json_array();
    for (size_t p = 0; p < n; p++) {
      size_t k = topk(lg + p * V, V, (size_t)top, best);
      json_t *arr = json_array();
      for (size_t j = 0; j < k; j++) json_array_append_new(arr, json_pack("[i, f]", best[j].id, (double)best[j].v));
      json_array_append_new(pos, json_pack("{s:o}", "top", arr));
    }
    json_t *o = json_pack("{s:o}", "positions", pos);
    char *str = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
    puts(str);
    free(str);
    json_decref(o);
  } else {
    for (size_t p = 0; p < n; p++) {
      size_t k = topk(lg + p * V, V, (size_t)top, best);
      printf("%zu (token %d):", p, ids[p]);
      for (size_t j = 0; j < k; j++) printf(" %d:%.4f", best[j].id, (double)best[j].v);
      printf("\n");
    }
  }
  rc = 0;
fail:
  if (rc) fprintf(stderr, "qcoder logits: %s\n", err.msg);
  free(best);
  free(lg);
  free(ids);
  eng_session_free(s);
  eng_model_close(m);
  return rc;
}
