/* cmd_mkmodel.c — `qcoder mkmodel`: write a synthetic qwen3moe/qwen3 GGUF with seeded
 * random weights (see eng_mkmodel in engine/engine.h). */
#include "daemon/commands.h"

#include <stdio.h>
#include <string.h>

#include "daemon/cmd_engine_util.h"
#include "engine/engine.h"

const char cmd_mkmodel_usage[] =
    "usage: qcoder mkmodel --preset tiny|30b-a3b [--arch qwen3moe|qwen3] [--layers N]\n"
    "                      [--type f32|f16|bf16|q8_0|q4_0|q4_k|q5_k|q6_k|q4_k_m] [--seed S]\n"
    "                      [--vocab-from GGUF] [--n-vocab N] -o OUT.gguf\n"
    "\n"
    "Write a GGUF model with seeded random weights at a preset's shapes: tiny, or the\n"
    "Qwen3-Coder-30B-A3B layer shapes (n_embd 2048, 32/4 heads of 128, 128 experts with 8\n"
    "used, expert ffn 768, rope base 1e7) with any layer count. The tokenizer is copied\n"
    "from --vocab-from (else a byte-level toy vocabulary). q4_k_m follows llama.cpp's\n"
    "Q4_K_M mix. Tensors are streamed to disk; the file appears under its name only when\n"
    "complete.\n";

int cmd_mkmodel(int argc, char **argv) {
  eng_mkmodel_opts o = {0};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int has = i + 1 < argc;
    if (!strcmp(a, "--preset") && has) o.preset = argv[++i];
    else if (!strcmp(a, "--arch") && has) o.arch = argv[++i];
    else if (!strcmp(a, "--type") && has) o.type = argv[++i];
    else if (!strcmp(a, "--vocab-from") && has) o.vocab_from = argv[++i];
    else if (!strcmp(a, "-o") && has) o.out = argv[++i];
    else if (!strcmp(a, "--layers") && has) {
      long v;
      if (qc_cmd_parse_long(argv[++i], 1, 1024, &v)) return qc_cmd_usage_error("mkmodel", "--layers needs 1..1024");
      o.n_layer = (int)v;
    } else if (!strcmp(a, "--n-vocab") && has) {
      long v;
      if (qc_cmd_parse_long(argv[++i], 1, 1 << 22, &v)) return qc_cmd_usage_error("mkmodel", "--n-vocab needs 1..4194304");
      o.n_vocab = (uint32_t)v;
    } else if (!strcmp(a, "--seed") && has) {
      if (qc_cmd_parse_u64(argv[++i], &o.seed)) return qc_cmd_usage_error("mkmodel", "--seed needs a non-negative integer");
    } else return qc_cmd_usage_error("mkmodel", "unknown or incomplete option '%s'", a);
  }
  if (!o.out) return qc_cmd_usage_error("mkmodel", "-o OUT.gguf is required");
  if (!o.preset) return qc_cmd_usage_error("mkmodel", "--preset tiny|30b-a3b is required");
  eng_error err = {0};
  if (eng_mkmodel(&o, &err)) {
    fprintf(stderr, "qcoder mkmodel: %s\n", err.msg);
    return 1;
  }
  return 0;
}
