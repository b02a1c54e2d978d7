/* cmd_model_info.c — `qcoder model-info FILE [--json]`: what a GGUF model file holds.
 *
 * Opens the file with vocab_only (no weights needed, so files with unsupported tensor
 * types or no tensors at all can still be inspected) and prints the architecture and
 * hyper-parameters, the tensors by type with counts and bytes, sizes, the number of
 * files of a split model, and the tokenizer as the metadata describes it. */
#include "daemon/commands.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "engine/engine.h"

const char cmd_model_info_usage[] =
    "usage: qcoder model-info FILE [--json]\n"
    "\n"
    "Describe a GGUF model file: architecture and hyper-parameters, tensors by type (counts\n"
    "and bytes), file sizes and split parts, and the tokenizer (vocabulary size, merges,\n"
    "special ids, chat template). --json prints the same as one JSON object, plus every\n"
    "metadata key.\n";

static void human(uint64_t b, char *buf, size_t n) {
  if (b >= (1ull << 30)) snprintf(buf, n, "%.2f GiB", (double)b / (1ull << 30));
  else if (b >= (1ull << 20)) snprintf(buf, n, "%.2f MiB", (double)b / (1ull << 20));
  else snprintf(buf, n, "%" PRIu64 " B", b);
}

int cmd_model_info(int argc, char **argv) {
  const char *path = NULL;
  int json = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--json")) json = 1;
    else if (argv[i][0] == '-' && argv[i][1]) return qc_cmd_usage_error("model-info", "unknown option '%s'", argv[i]);
    else if (!path) path = argv[i];
    else return qc_cmd_usage_error("model-info", "more than one FILE");
  }
  if (!path) return qc_cmd_usage_error("model-info", "no model FILE given");
  eng_model *m;
  eng_error err = {0};
  eng_model_opts mo = {.vocab_only = 1};
  if (eng_model_open(path, &mo, &m, &err)) {
    fprintf(stderr, "qcoder model-info: %s\n", err.msg);
    return 1;
  }
  const eng_hparams *hp = eng_model_hparams(m);
  eng_model_info in;
  eng_model_get_info(m, &in);
  int moe = !strcmp(hp->arch, "qwen3moe");
  uint32_t n_vocab = 0;
  /* rows of the embedding when present; else the token count */
  n_vocab = in.n_tokens;
  if (json) {
    json_t *o = json_object();
    json_object_set_new(o, "file", json_string(path));
    json_object_set_new(o, "gguf_version", json_integer(in.gguf_version));
    json_object_set_new(o, "n_files", json_integer(hp->n_files));
    json_object_set_new(o, "file_bytes", json_integer((json_int_t)hp->file_bytes));
    json_object_set_new(o, "architecture", json_string(hp->arch));
    json_object_set_new(o, "name", json_string(hp->name));
    if (in.file_type != UINT32_MAX) json_object_set_new(o, "file_type", json_integer(in.file_type));
    json_t *h = json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f}", "n_layer", (json_int_t)hp->n_layer, "n_embd",
                          (json_int_t)hp->n_embd, "n_head", (json_int_t)hp->n_head, "n_head_kv", (json_int_t)hp->n_head_kv,
                          "head_dim", (json_int_t)hp->head_dim, "n_ctx_train", (json_int_t)hp->n_ctx_train, "rope_base",
                          (double)hp->rope_base, "rms_eps", (double)hp->rms_eps);
    if (moe) {
      json_object_set_new(h, "n_expert", json_integer(hp->n_expert));
      json_object_set_new(h, "n_expert_used", json_integer(hp->n_expert_used));
      json_object_set_new(h, "n_ff_exp", json_integer(hp->n_ff_exp));
    } else {
      json_object_set_new(h, "n_ff", json_integer(hp->n_ff));
    }
    if (hp->rope_yarn) {
      json_object_set_new(h, "rope_yarn_factor", json_real(hp->rope_scale));
      json_object_set_new(h, "rope_orig_ctx", json_integer(hp->rope_orig_ctx));
    }
    json_object_set_new(o, "hparams", h);
    json_t *ty = json_array();
    for (size_t i = 0; i < in.n_types; i++)
      json_array_append_new(ty, json_pack("{s:s, s:i, s:I}", "type", in.types[i].type, "tensors",
                                          (json_int_t)in.types[i].n_tensors, "bytes", (json_int_t)in.types[i].bytes));
    json_object_set_new(o, "tensors", json_pack("{s:i, s:I, s:o}", "count", (json_int_t)in.n_tensors, "bytes",
                                                (json_int_t)in.tensor_bytes, "by_type", ty));
    json_t *tk = json_pack("{s:s, s:s, s:i, s:i, s:b}", "model", in.tok_model, "pre", in.tok_pre, "n_tokens",
                           (json_int_t)n_vocab, "n_merges", (json_int_t)in.n_merges, "chat_template",
                           in.chat_template_len > 0);
    const char *idn[] = {"bos_id", "eos_id", "pad_id", "eot_id"};
    int32_t idv[] = {in.bos_id, in.eos_id, in.pad_id, in.eot_id};
    for (int i = 0; i < 4; i++)
      if (idv[i] >= 0) json_object_set_new(tk, idn[i], json_integer(idv[i]));
    if (in.add_bos >= 0) json_object_set_new(tk, "add_bos", json_boolean(in.add_bos));
    json_object_set_new(o, "tokenizer", tk);
    json_t *meta = json_object();
    size_t nkv = eng_model_meta(m, 0, NULL, NULL, 0);
    for (size_t i = 0; i < nkv; i++) {
      const char *key;
      char val[256];
      eng_model_meta(m, i, &key, val, sizeof val);
      if (strcmp(key, "tokenizer.chat_template") == 0) continue;
      json_object_set_new(meta, key, json_string(val));
    }
    json_object_set_new(o, "metadata", meta);
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    puts(s);
    free(s);
    json_decref(o);
  } else {
    char b1[32], b2[32];
    human(hp->file_bytes, b1, sizeof b1);
    printf("file:          %s (%s, %u file%s, GGUF v%u)\n", path, b1, hp->n_files, hp->n_files == 1 ? "" : "s",
           in.gguf_version);
    printf("architecture:  %s%s%s%s\n", hp->arch, hp->name[0] ? " (" : "", hp->name, hp->name[0] ? ")" : "");
    printf("layers:        %u, n_embd %u, heads %u (kv %u), head_dim %u\n", hp->n_layer, hp->n_embd, hp->n_head,
           hp->n_head_kv, hp->head_dim);
    if (moe) printf("experts:       %u, %u used, expert ffn %u\n", hp->n_expert, hp->n_expert_used, hp->n_ff_exp);
    else printf("ffn:           %u\n", hp->n_ff);
    printf("context:       %u (rope base %g%s)\n", hp->n_ctx_train, (double)hp->rope_base, hp->rope_yarn ? ", YaRN" : "");
    if (hp->rope_yarn) printf("yarn:          factor %g, original context %u\n", (double)hp->rope_scale, hp->rope_orig_ctx);
    printf("rms eps:       %g\n", (double)hp->rms_eps);
    human(in.tensor_bytes, b2, sizeof b2);
    printf("tensors:       %zu (%s)\n", in.n_tensors, b2);
    for (size_t i = 0; i < in.n_types; i++) {
      human(in.types[i].bytes, b2, sizeof b2);
      printf("  %-8s %5u tensors  %s\n", in.types[i].type, in.types[i].n_tensors, b2);
    }
    printf("tokenizer:     %s/%s, %u tokens, %u merges", in.tok_model[0] ? in.tok_model : "?",
           in.tok_pre[0] ? in.tok_pre : "?", n_vocab, in.n_merges);
    if (in.bos_id >= 0) printf(", bos %d", in.bos_id);
    if (in.eos_id >= 0) printf(", eos %d", in.eos_id);
    if (in.pad_id >= 0) printf(", pad %d", in.pad_id);
    if (in.eot_id >= 0) printf(", eot %d", in.eot_id);
    printf("\n");
    if (in.chat_template_len) printf("chat template: yes (%zu bytes)\n", in.chat_template_len);
    else printf("chat template: no\n");
  }
  eng_model_close(m);
  return 0;
}
