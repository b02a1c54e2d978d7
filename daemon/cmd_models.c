/* cmd_models.c — `qcoder models`: what is in the model cache, and which model a command
 * would use.
 *
 * Lists qc_cache_dir()/models with what each GGUF header says (architecture,
 * quantisation), split parts grouped under one name, and unfinished downloads; `--which`
 * prints the model `qcoder run` / `fix-tests` would pick and where that choice came from
 * (the resolution order of workflow_models.c), so a user can see why a model is used. */
#include "daemon/commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "daemon/workflow.h"

const char cmd_models_usage[] =
    "usage: qcoder models [--json]\n"
    "       qcoder models --which [--model SPEC | --remote URL] [--json]\n"
    "\n"
    "List the GGUF models in the model cache ($QCODER_CACHE_DIR/models, else\n"
    "$XDG_CACHE_HOME/qcoder/models, else ~/.cache/qcoder/models): name, size, architecture\n"
    "and quantisation from the GGUF header, split parts grouped under one name, and\n"
    "downloads still in progress. The model marked '*' is the cache's default (the newest\n"
    "qwen3/qwen3moe model), used when nothing else names one.\n"
    "\n"
    "  --which  print the model that 'qcoder run' and 'qcoder fix-tests' would use and why.\n"
    "           The first of these wins: --model SPEC, --remote URL, $QCODER_MODEL, the\n"
    "           config file's \"model\", then its \"remote\" ($XDG_CONFIG_HOME/qcoder/config.json,\n"
    "           e.g. {\"model\": \"qwen3-coder-30b-a3b:q4_k_m\"}), then the cache's default.\n"
    "           SPEC is a GGUF path, an http(s) URL of an OpenAI-compatible server,\n"
    "           script:FILE (the scripted test double), or a NAME in the cache.\n"
    "  --json   machine-readable output\n"
    "\n"
    "Exit status: 0 ok; 1 --which found no usable model; 2 usage error.\n";

int cmd_models(int argc, char **argv) {
  int json = 0, which = 0;
  const char *model = NULL, *remote = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--json")) json = 1;
    else if (!strcmp(argv[i], "--which")) which = 1;
    else if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
    else if (!strcmp(argv[i], "--remote") && i + 1 < argc) remote = argv[++i];
    else return qc_cmd_usage_error("models", "unexpected argument '%s'", argv[i]);
  }
  if ((model || remote) && !which) return qc_cmd_usage_error("models", "--model and --remote go with --which");
  if (which) {
    wf_model_choice c;
    char *err = NULL;
    if (wf_model_resolve(model, remote, &c, &err) != 0) {
      fprintf(stderr, "qcoder models: %s\n", err ? err : "cannot resolve the model");
      free(err);
      return 1;
    }
    int rc = 0;
    if (json) {
      json_t *o = json_pack("{s:o, s:o}", "model", c.spec ? json_string(c.spec) : json_null(), "source",
                            c.source ? json_string(c.source) : json_null());
      char *s = json_dumps(o, JSON_COMPACT);
      puts(s ? s : "{}");
      free(s);
      json_decref(o);
    } else if (c.spec) {
      printf("%s\n  (from %s)\n", c.spec, c.source);
    } else {
      printf("no model configured: use --model, $QCODER_MODEL, the config file, or 'qcoder pull NAME'\n");
    }
    if (!c.spec) rc = 1;
    wf_model_choice_release(&c);
    return rc;
  }
  char *dir = wf_models_dir();
  if (!dir) {
    fprintf(stderr, "qcoder models: no cache directory (no home directory?)\n");
    return 2;
  }
  json_t *list = wf_models_list(dir);
  if (json) {
    json_t *o = json_pack("{s:s, s:O}", "dir", dir, "models", list);
    char *s = json_dumps(o, JSON_INDENT(2));
    puts(s ? s : "{}");
    free(s);
    json_decref(o);
  } else if (json_array_size(list) == 0) {
    printf("no models in %s\n(download one with: qcoder pull qwen3-coder-30b-a3b:q4_k_m)\n", dir);
  } else {
    printf("models in %s\n\n  %-48s %10s  %-10s %-8s %s\n", dir, "NAME", "SIZE", "ARCH", "QUANT", "STATE");
    size_t i;
    json_t *m;
    json_array_foreach(list, i, m) {
      char sz[32], state[96];
      wf_fmt_bytes((uint64_t)json_integer_value(json_object_get(m, "size")), sz, sizeof sz);
      long parts = (long)json_integer_value(json_object_get(m, "parts"));
      long present = (long)json_integer_value(json_object_get(m, "parts_present"));
      const char *err = json_string_value(json_object_get(m, "error"));
      if (json_is_true(json_object_get(m, "complete")))
        snprintf(state, sizeof state, parts > 1 ? "%ld parts" : "ok", parts);
      else if (json_is_true(json_object_get(m, "downloading")))
        snprintf(state, sizeof state, "downloading (%ld of %ld parts done)", present, parts);
      else if (err)
        snprintf(state, sizeof state, "unreadable: %.70s", err);
      else
        snprintf(state, sizeof state, "incomplete: %ld of %ld parts", present, parts);
      const char *arch = json_string_value(json_object_get(m, "architecture"));
      const char *q = json_string_value(json_object_get(m, "quantization"));
      printf("%s %-48s %10s  %-10s %-8s %s\n", json_is_true(json_object_get(m, "default")) ? "*" : " ",
             json_string_value(json_object_get(m, "name")), sz, arch && *arch ? arch : "-", q ? q : "-", state);
    }
  }
  json_decref(list);
  free(dir);
  return 0;
}
