/* mkmodel.c — synthetic Qwen3 / Qwen3-MoE GGUF files with seeded random weights.
 *
 * Tests and benchmarks need models of real shapes without downloading 18 GB. A preset
 * gives the shapes (tiny, or the Qwen3-Coder-30B-A3B layer shapes with any layer count),
 * the tokenizer comes from another GGUF (--vocab-from) or is a byte-level toy vocabulary,
 * and every weight matrix is drawn from N(0, 1/fan_in) (untied embeddings N(0, 1), tied
 * ones N(0, (1.5/sqrt(n_embd))²), norms 1 + 0.1·N(0, 1)) by a generator seeded per tensor,
 * then quantised with ggml's reference quantisers. Tensors are generated and written a
 * chunk of rows at a time, so a 1.9 GB file needs a few MB of memory.
 *
 * The q4_k_m mix follows llama.cpp's llama_tensor_get_type for LLAMA_FTYPE_MOSTLY_Q4_K_M:
 * Q4_K by default; output.weight Q6_K; attn_v and ffn_down(_exps) Q6_K in the
 * "use_more_bits" layers; for models with exactly 8 experts attn_k/attn_v Q8_0 and
 * attn_output Q5_K; routers and norms F32. A K-quant whose rows are not a multiple of 256
 * falls back to Q8_0 (then F32), as the engine supports no other 32-block fallback.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "engine/gguf.h"
#include "engine/internal.h"
#include "engine/limits.h"
#include "engine/pool.h"
#include "engine/quant.h"
#include <unistd.h>

typedef struct shape {
  const char *arch;
  uint32_t n_embd, n_layer, n_head, n_head_kv, head_dim, n_expert, n_used, n_ff_exp, n_ff, n_vocab, ctx;
  float rope_base;
  int tied;
} shape;

typedef struct tdesc {
  char name[64];
  uint32_t n_dims;
  uint64_t ne[3];
  uint32_t type;
  int kind;        /* 0 matrix, 1 norm, 2 embedding (untied), 3 embedding (tied) */
  uint64_t fan_in;
} tdesc;

static int use_more_bits(uint32_t i, uint32_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static uint32_t parse_type(const char *t, int *mix) {
  *mix = 0;
  if (!t || !strcmp(t, "f32")) return ENG__T_F32;
  if (!strcmp(t, "f16")) return ENG__T_F16;
  if (!strcmp(t, "bf16")) return ENG__T_BF16;
  if (!strcmp(t, "q8_0")) return ENG__T_Q8_0;
  if (!strcmp(t, "q4_0")) return ENG__T_Q4_0;
  if (!strcmp(t, "q4_k")) return ENG__T_Q4_K;
  if (!strcmp(t, "q5_k")) return ENG__T_Q5_K;
  if (!strcmp(t, "q6_k")) return ENG__T_Q6_K;
  if (!strcmp(t, "q4_k_m")) {
    *mix = 1;
    return ENG__T_Q4_K;
  }
  return UINT32_MAX;
}

static uint32_t file_type_code(uint32_t t, int mix) {
  if (mix) return 15;
  switch (t) {
    case ENG__T_F32: return 0;
    case ENG__T_F16: return 1;
    case ENG__T_Q4_0: return 2;
    case ENG__T_Q8_0: return 7;
    case ENG__T_Q4_K: return 14;
    case ENG__T_Q5_K: return 16;
    case ENG__T_Q6_K: return 18;
    case ENG__T_BF16: return 32;
    default: return 0;
  }
}

/* A type every row of width ne0 can use. */
static uint32_t fit_type(uint32_t t, uint64_t ne0) {
  const eng__ggml_type_info *ti = eng__ggml_type(t);
  if (ne0 % ti->blck == 0) return t;
  if (ne0 % 32 == 0) return ENG__T_Q8_0;
  return ENG__T_F32;
}

/* ---- random numbers ---------------------------------------------------------------------- */

typedef struct rng {
  uint64_t s[4];
  int have;
  float spare;
} rng;

static uint64_t sm64(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed, uint64_t stream) {
  uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ull);
  for (int i = 0; i < 4; i++) r->s[i] = sm64(&x);
  r->have = 0;
}

static uint64_t rng_next(rng *r) {
  uint64_t *s = r->s;
  const uint64_t res = ((s[1] * 5) << 7 | (s[1] * 5) >> 57) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = (s[3] << 45) | (s[3] >> 19);
  return res;
}

static float rng_normal(rng *r) {
  if (r->have) {
    r->have = 0;
    return r->spare;
  }
  double u1, u2;
  do u1 = (double)(rng_next(r) >> 11) * 0x1.0p-53; while (u1 <= 0);
  u2 = (double)(rng_next(r) >> 11) * 0x1.0p-53;
  double m = sqrt(-2.0 * log(u1));
  r->spare = (float)(m * sin(2 * M_PI * u2));
  r->have = 1;
  return (float)(m * cos(2 * M_PI * u2));
}

/* ---- the model description --------------------------------------------------------------- */

static int preset_shape(const eng_mkmodel_opts *o, shape *sh, eng_error *err) {
  memset(sh, 0, sizeof *sh);
  sh->arch = o->arch ? o->arch : "qwen3moe";
  int moe = !strcmp(sh->arch, "qwen3moe");
  if (!moe && strcmp(sh->arch, "qwen3") != 0)
    return eng__err(err, ENG_EARG, "unknown architecture '%s' (qwen3moe or qwen3)", sh->arch);
  const char *p = o->preset ? o->preset : "tiny";
  if (!strcmp(p, "tiny")) {
    *sh = (shape){sh->arch, 64, 4, 4, 2, 16, 8, 2, 32, 128, 4096, 262144, 1e7f, 0};
    if (!moe) {
      sh->n_layer = 2;
      sh->ctx = 40960;
      sh->rope_base = 1e6f;
    }
  } else if (!strcmp(p, "30b-a3b")) {
    *sh = (shape){sh->arch, 2048, 48, 32, 4, 128, 128, 8, 768, 6144, 151936, 262144, 1e7f, 0};
    if (moe) sh->n_ff = 5472;  /* Qwen3-Coder-30B-A3B: intermediate_size, unused by MoE layers */
  } else {
    return eng__err(err, ENG_EARG, "unknown preset '%s' (tiny or 30b-a3b)", p);
  }
  if (!moe) {
    sh->n_expert = sh->n_used = sh->n_ff_exp = 0;
    sh->tied = 1;
  }
  if (o->n_layer > 0) {
    if ((uint32_t)o->n_layer > ENG__MAX_LAYERS) return eng__err(err, ENG_EARG, "--layers %d is above %u", o->n_layer, ENG__MAX_LAYERS);
    sh->n_layer = (uint32_t)o->n_layer;
  }
  return 0;
}

static void add_t(tdesc *t, size_t *n, const char *name, uint32_t nd, uint64_t a, uint64_t b, uint64_t c, uint32_t type,
                  int kind, uint64_t fan_in) {
  tdesc *d = &t[(*n)++];
  snprintf(d->name, sizeof d->name, "%s", name);
  d->n_dims = nd;
  d->ne[0] = a;
  d->ne[1] = b;
  d->ne[2] = c;
  d->type = kind == 1 ? ENG__T_F32 : fit_type(type, a);
  d->kind = kind;
  d->fan_in = fan_in;
}

static size_t describe(const shape *sh, uint32_t type, int mix, tdesc *t) {
  size_t n = 0;
  const uint64_t D = sh->n_embd, q = (uint64_t)sh->n_head * sh->head_dim, kv = (uint64_t)sh->n_head_kv * sh->head_dim;
  int moe = sh->n_expert > 0, e8 = sh->n_expert == 8;
  add_t(t, &n, "token_embd.weight", 2, D, sh->n_vocab, 1, type, sh->tied ? 3 : 2, D);
  add_t(t, &n, "output_norm.weight", 1, D, 1, 1, type, 1, 0);
  if (!sh->tied) add_t(t, &n, "output.weight", 2, D, sh->n_vocab, 1, mix ? ENG__T_Q6_K : type, 0, D);
  for (uint32_t i = 0; i < sh->n_layer; i++) {
    char nm[64];
    int more = use_more_bits(i, sh->n_layer);
#define N(s) (snprintf(nm, sizeof nm, "blk.%u." s ".weight", i), nm)
    add_t(t, &n, N("attn_norm"), 1, D, 1, 1, type, 1, 0);
    add_t(t, &n, N("attn_q"), 2, D, q, 1, type, 0, D);
    add_t(t, &n, N("attn_k"), 2, D, kv, 1, mix && e8 ? ENG__T_Q8_0 : type, 0, D);
    add_t(t, &n, N("attn_v"), 2, D, kv, 1, mix ? (e8 ? ENG__T_Q8_0 : more ? ENG__T_Q6_K : type) : type, 0, D);
    add_t(t, &n, N("attn_output"), 2, q, D, 1, mix && e8 ? ENG__T_Q5_K : type, 0, q);
    add_t(t, &n, N("attn_q_norm"), 1, sh->head_dim, 1, 1, type, 1, 0);
    add_t(t, &n, N("attn_k_norm"), 1, sh->head_dim, 1, 1, type, 1, 0);
    add_t(t, &n, N("ffn_norm"), 1, D, 1, 1, type, 1, 0);
    uint32_t down = mix && more ? ENG__T_Q6_K : type;
    if (moe) {
      const uint64_t ff = sh->n_ff_exp, E = sh->n_expert;
      add_t(t, &n, N("ffn_gate_inp"), 2, D, E, 1, ENG__T_F32, 0, D);
      add_t(t, &n, N("ffn_gate_exps"), 3, D, ff, E, type, 0, D);
      add_t(t, &n, N("ffn_up_exps"), 3, D, ff, E, type, 0, D);
      add_t(t, &n, N("ffn_down_exps"), 3, ff, D, E, down, 0, ff);
    } else {
      add_t(t, &n, N("ffn_gate"), 2, D, sh->n_ff, 1, type, 0, D);
      add_t(t, &n, N("ffn_up"), 2, D, sh->n_ff, 1, type, 0, D);
      add_t(t, &n, N("ffn_down"), 2, sh->n_ff, D, 1, down, 0, sh->n_ff);
    }
#undef N
  }
  return n;
}

/* ---- tokenizer metadata ----------------------------------------------------------------- */

/* GPT-2 byte → unicode string (UTF-8) for the toy vocabulary. */
static void byte_token(int b, char out[4]) {
  int cp;
  if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) {
    cp = b;
  } else {
    int n = 0;
    for (int x = 0; x < b; x++)
      if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) n++;
    cp = 256 + n;
  }
  if (cp < 0x80) {
    out[0] = (char)cp;
    out[1] = 0;
  } else {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    out[2] = 0;
  }
}

static int write_vocab(eng__gguf_writer *w, const eng_mkmodel_opts *o, shape *sh, eng__gguf **src, eng_error *err) {
  int rc;
  if (o->vocab_from) {
    if ((rc = eng__gguf_open(o->vocab_from, src, err))) return rc;
    eng__gguf_arr toks, types;
    if (eng__gguf_get_arr(*src, "tokenizer.ggml.tokens", &toks, err) != 1 || toks.type != ENG__GGUF_STRING)
      return eng__err(err, ENG_EFORMAT, "%s: no tokenizer.ggml.tokens to copy", o->vocab_from);
    uint64_t nt = toks.count;
    sh->n_vocab = o->n_vocab ? o->n_vocab : (uint32_t)nt;
    if (sh->n_vocab < nt)
      return eng__err(err, ENG_EARG, "--n-vocab %u is smaller than the %" PRIu64 " tokens of %s", sh->n_vocab, nt, o->vocab_from);
    if (sh->n_vocab > ENG__MAX_VOCAB) return eng__err(err, ENG_EARG, "--n-vocab %u is above %u", sh->n_vocab, ENG__MAX_VOCAB);
    static const char *const keys[] = {"tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.merges",
                                       "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                       "tokenizer.ggml.padding_token_id", "tokenizer.ggml.eot_token_id",
                                       "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.add_bos_token",
                                       "tokenizer.ggml.add_eos_token", "tokenizer.chat_template"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
      if (eng__gguf_writer_copy_kv(w, *src, keys[i]) < 0) return eng__err(err, ENG_ENOMEM, "out of memory");
    if (sh->n_vocab == nt) {
      eng__gguf_writer_copy_kv(w, *src, "tokenizer.ggml.tokens");
      eng__gguf_writer_copy_kv(w, *src, "tokenizer.ggml.token_type");
      return 0;
    }
    /* pad with [PADn] (type 5, unused) as the converter does */
    int have_types = eng__gguf_get_arr(*src, "tokenizer.ggml.token_type", &types, NULL) == 1 && types.count == nt;
    char **strs = calloc(sh->n_vocab, sizeof *strs);
    int32_t *tt = calloc(sh->n_vocab, sizeof *tt);
    rc = strs && tt ? 0 : eng__err(err, ENG_ENOMEM, "out of memory");
    for (uint32_t i = 0; !rc && i < sh->n_vocab; i++) {
      if (i < nt) {
        size_t len;
        const char *s = eng__gguf_arr_str(&toks, i, &len);
        strs[i] = strndup(s, len);
        tt[i] = have_types ? eng__gguf_arr_i32(&types, i) : 1;
      } else {
        strs[i] = qc_asprintf("[PAD%u]", i);
        tt[i] = 5;
      }
      if (!strs[i]) rc = eng__err(err, ENG_ENOMEM, "out of memory");
    }
    if (!rc && (eng__gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)strs, sh->n_vocab) ||
                eng__gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", tt, sh->n_vocab)))
      rc = eng__err(err, ENG_ENOMEM, "out of memory");
    for (uint32_t i = 0; strs && i < sh->n_vocab; i++) free(strs[i]);
    free(strs);
    free(tt);
    return rc;
  }
  /* toy byte-level vocabulary: 256 byte tokens, no merges, three specials, padding */
  if (o->n_vocab) sh->n_vocab = o->n_vocab;
  if (sh->n_vocab < 259 || sh->n_vocab > ENG__MAX_VOCAB)
    return eng__err(err, ENG_EARG, "--n-vocab %u: the toy vocabulary needs 259..%u", sh->n_vocab, ENG__MAX_VOCAB);
  char **strs = calloc(sh->n_vocab, sizeof *strs);
  int32_t *tt = calloc(sh->n_vocab, sizeof *tt);
  rc = strs && tt ? 0 : eng__err(err, ENG_ENOMEM, "out of memory");
  static const char *const specials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  for (uint32_t i = 0; !rc && i < sh->n_vocab; i++) {
    char b[4];
    if (i < 256) {
      byte_token((int)i, b);
      strs[i] = strdup(b);
      tt[i] = 1;
    } else if (i < 259) {
      strs[i] = strdup(specials[i - 256]);
      tt[i] = 3;
    } else {
      strs[i] = qc_asprintf("[PAD%u]", i);
      tt[i] = 5;
    }
    if (!strs[i]) rc = eng__err(err, ENG_ENOMEM, "out of memory");
  }
  const char *no_merges[1] = {NULL};
  if (!rc && (eng__gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2") ||
              eng__gguf_writer_set_str(w, "tokenizer.ggml.pre", "qwen2") ||
              eng__gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)strs, sh->n_vocab) ||
              eng__gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", tt, sh->n_vocab) ||
              eng__gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", no_merges, 0) ||
              eng__gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 256) ||
              eng__gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 258) ||
              eng__gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", 256) ||
              eng__gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", 0)))
    rc = eng__err(err, ENG_ENOMEM, "out of memory");
  for (uint32_t i = 0; strs && i < sh->n_vocab; i++) free(strs[i]);
  free(strs);
  free(tt);
  return rc;
}

/* ---- writing ------------------------------------------------------------------------------ */

#define CHUNK_VALUES ((size_t)1 << 20)

/* One tensor is produced a chunk of rows at a time, pipelined over the thread pool: in
 * each pool run, task 0 draws the next chunk of random values (the generator is one
 * sequential stream per tensor, so drawing cannot be split) while the other tasks
 * quantise groups of rows of the current chunk. Rows are quantised independently by the
 * same scalar reference functions, so the bytes are those of a single-threaded run. */
typedef struct emit_job {
  const tdesc *t;
  const eng__type_traits *tt;
  rng *r;
  float std;
  uint64_t ne0;
  size_t rb;
  float *cur, *next;      /* chunk being quantised, chunk being drawn */
  uint64_t cur_rows, next_rows;
  uint8_t *qbuf;
  uint64_t rows_per_task;
} emit_job;

static void draw_rows(const emit_job *j, float *dst, uint64_t nr) {
  for (uint64_t i = 0; i < nr * j->ne0; i++)
    dst[i] = j->t->kind == 1 ? 1.0f + 0.1f * rng_normal(j->r) : j->std * rng_normal(j->r);
}

static void emit_task(void *ctx, int task, int worker) {
  (void)worker;
  const emit_job *j = ctx;
  if (task == 0) {
    if (j->next_rows) draw_rows(j, j->next, j->next_rows);
    return;
  }
  uint64_t r0 = (uint64_t)(task - 1) * j->rows_per_task, r1 = r0 + j->rows_per_task;
  if (r1 > j->cur_rows) r1 = j->cur_rows;
  for (uint64_t k = r0; k < r1; k++) j->tt->quantize_row(j->cur + k * j->ne0, j->qbuf + k * j->rb, (int64_t)j->ne0);
}

static int emit_tensor(eng__gguf_writer *w, eng__pool *pool, const tdesc *t, uint64_t seed, size_t index, float *buf[2],
                       uint8_t *qbuf, eng_error *err) {
  const uint64_t ne0 = t->ne[0], rows = t->ne[1] * t->ne[2];
  rng r;
  rng_seed(&r, seed, index + 1);
  emit_job j = {t, &eng__kernels_scalar.t[t->type], &r, 0, ne0, eng__ggml_row_size(t->type, ne0), buf[0], buf[1], 0, 0,
                qbuf, 1};
  j.std = t->kind == 0 ? 1.0f / sqrtf((float)t->fan_in) : t->kind == 2 ? 1.0f : 1.5f / sqrtf((float)ne0);
  uint64_t rows_per_chunk = CHUNK_VALUES / ne0 ? CHUNK_VALUES / ne0 : 1;
  j.cur_rows = rows < rows_per_chunk ? rows : rows_per_chunk;
  draw_rows(&j, j.cur, j.cur_rows);
  const int nth = eng__pool_size(pool);
  uint64_t done = 0;
  while (j.cur_rows) {
    uint64_t left = rows - done - j.cur_rows;
    j.next_rows = left < rows_per_chunk ? left : rows_per_chunk;
    j.rows_per_task = (j.cur_rows + (uint64_t)nth * 4 - 1) / ((uint64_t)nth * 4);
    if (!j.rows_per_task) j.rows_per_task = 1;
    eng__pool_run(pool, emit_task, &j, 1 + (int)((j.cur_rows + j.rows_per_task - 1) / j.rows_per_task));
    int rc = eng__gguf_writer_write(w, qbuf, j.cur_rows * j.rb, err);
    if (rc) return rc;
    done += j.cur_rows;
    float *tmp = j.cur;
    j.cur = j.next;
    j.next = tmp;
    j.cur_rows = j.next_rows;
  }
  return 0;
}

int eng_mkmodel(const eng_mkmodel_opts *o, eng_error *err) {
  int rc, mix;
  shape sh;
  tdesc *t = NULL;
  float *buf[2] = {NULL, NULL};
  uint8_t *qbuf = NULL;
  eng__gguf *src = NULL;
  eng__pool *pool = NULL;
  if (!o || !o->out) return eng__err(err, ENG_EARG, "no output file given");
  uint32_t type = parse_type(o->type, &mix);
  if (type == UINT32_MAX)
    return eng__err(err, ENG_EARG, "unknown type '%s' (f32 f16 bf16 q8_0 q4_0 q4_k q5_k q6_k q4_k_m)", o->type);
  if ((rc = preset_shape(o, &sh, err))) return rc;
  eng__gguf_writer *w = eng__gguf_writer_new(32);
  if (!w) return eng__err(err, ENG_ENOMEM, "out of memory");
  if ((rc = write_vocab(w, o, &sh, &src, err))) goto out;
  const char *a = sh.arch;
  char k[128];
#define KEY(s) (snprintf(k, sizeof k, "%s." s, a), k)
  char name[96];
  snprintf(name, sizeof name, "qcoder mkmodel %s %s %s", o->preset ? o->preset : "tiny", a, o->type ? o->type : "f32");
  rc = eng__gguf_writer_set_str(w, "general.architecture", a) | eng__gguf_writer_set_str(w, "general.name", name) |
       eng__gguf_writer_set_u32(w, "general.file_type", file_type_code(type, mix)) |
       eng__gguf_writer_set_u32(w, "general.quantization_version", 2) |
       eng__gguf_writer_set_u32(w, KEY("context_length"), sh.ctx) |
       eng__gguf_writer_set_u32(w, KEY("embedding_length"), sh.n_embd) |
       eng__gguf_writer_set_u32(w, KEY("block_count"), sh.n_layer) |
       eng__gguf_writer_set_u32(w, KEY("feed_forward_length"), sh.n_ff) |
       eng__gguf_writer_set_u32(w, KEY("attention.head_count"), sh.n_head) |
       eng__gguf_writer_set_u32(w, KEY("attention.head_count_kv"), sh.n_head_kv) |
       eng__gguf_writer_set_u32(w, KEY("attention.key_length"), sh.head_dim) |
       eng__gguf_writer_set_u32(w, KEY("attention.value_length"), sh.head_dim) |
       eng__gguf_writer_set_f32(w, KEY("rope.freq_base"), sh.rope_base) |
       eng__gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-6f);
  if (sh.n_expert)
    rc |= eng__gguf_writer_set_u32(w, KEY("expert_count"), sh.n_expert) |
          eng__gguf_writer_set_u32(w, KEY("expert_used_count"), sh.n_used) |
          eng__gguf_writer_set_u32(w, KEY("expert_feed_forward_length"), sh.n_ff_exp);
#undef KEY
  if (rc) {
    rc = eng__err(err, ENG_ENOMEM, "out of memory");
    goto out;
  }
  t = calloc(3 + 12 * (size_t)sh.n_layer, sizeof *t);
  if (!t) {
    rc = eng__err(err, ENG_ENOMEM, "out of memory");
    goto out;
  }
  size_t nt = describe(&sh, type, mix, t);
  size_t max_row = 0;
  for (size_t i = 0; i < nt; i++) {
    if ((rc = eng__gguf_writer_add_tensor(w, t[i].name, t[i].type, t[i].n_dims, t[i].ne))) {
      rc = eng__err(err, ENG_EARG, "cannot add tensor '%s'", t[i].name);
      goto out;
    }
    if (t[i].ne[0] > max_row) max_row = t[i].ne[0];
  }
  size_t cap = CHUNK_VALUES > max_row ? CHUNK_VALUES : max_row;
  buf[0] = malloc(cap * sizeof(float));
  buf[1] = malloc(cap * sizeof(float));
  qbuf = malloc(cap * sizeof(float));
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  if (eng__pool_new(ncpu > 0 ? (int)(ncpu < ENG__MAX_THREADS ? ncpu : ENG__MAX_THREADS) : 1, &pool)) pool = NULL;
  if (!buf[0] || !buf[1] || !qbuf || !pool) {
    rc = eng__err(err, ENG_ENOMEM, "out of memory");
    goto out;
  }
  if ((rc = eng__gguf_writer_begin(w, o->out, err))) goto out;
  for (size_t i = 0; i < nt; i++)
    if ((rc = emit_tensor(w, pool, &t[i], o->seed, i, buf, qbuf, err))) goto out;
  rc = eng__gguf_writer_finish(w, err);
out:
  eng__gguf_writer_free(w);
  eng__gguf_close(src);
  free(t);
  eng__pool_free(pool);
  free(buf[0]);
  free(buf[1]);
  free(qbuf);
  return rc;
}
