/* engine.h — qcoder's local inference engine for Qwen3 / Qwen3-MoE GGUF models (prefix `eng_`).
 *
 * A model is a memory-mapped GGUF file (or a set of split files) opened read-only: weights
 * are used in place and never copied. A session owns a KV cache and the token history
 * that fills it; generating from a prompt that shares a prefix with the history only
 * prefills the new tail (prefix reuse), which is what makes multi-turn agents fast.
 *
 * The engine knows nothing of agents, tools, chat formats or sockets. It depends only on
 * common/ and the system libraries (PCRE2, utf8proc, OpenBLAS).
 *
 * Threads: a model may be shared by many sessions on many threads. Calls that run the
 * network (eng_session_eval, eng_generate) are serialised per model; everything else
 * that reads a model is safe concurrently. eng_session_cancel() may be called from any
 * thread at any time.
 *
 * Ownership: pointers returned through `**out` parameters belong to the caller and are
 * released with the matching _free/_close function (or free() where stated); pointers
 * returned directly (hparams, logits, strings) are borrowed from the model/session and
 * valid until it is closed (logits: until the next eval on that session).
 */
#ifndef QC_ENGINE_H
#define QC_ENGINE_H

#include <stddef.h>
#include <stdint.h>

/* ---- errors ---------------------------------------------------------------------- */

#define ENG_ERR_MAP(X)                                                            \
  X(NOMEM, "out of memory")                                                       \
  X(IO, "cannot read the model file")                                             \
  X(FORMAT, "the file is not a valid GGUF model")                                 \
  X(UNSUPPORTED, "the model uses something this engine does not support")         \
  X(ARG, "invalid argument")                                                      \
  X(TOKEN, "token id out of range")                                               \
  X(CONTEXT, "the context window is full")                                        \
  X(CANCELLED, "cancelled")

enum {
  ENG_OK = 0,
  ENG__ERR_FIRST = -200,
#define ENG__ERR_ENUM(name, msg) ENG_E##name,
  ENG_ERR_MAP(ENG__ERR_ENUM)
#undef ENG__ERR_ENUM
};

const char *eng_strerror(int code);

/* Every fallible call takes an optional eng_error: `msg` then says exactly what is wrong
 * ("tensor 'blk.3.attn_q.weight' extends past the end of the file (offset …, size …)"). */
typedef struct eng_error {
  int code;
  char msg[512];
} eng_error;

/* ---- models ---------------------------------------------------------------------- */

typedef struct eng_model eng_model;

typedef struct eng_model_opts {
  int n_threads;        /* worker threads for the forward pass; 0 = all available cores */
  int vocab_only;       /* load metadata and tokenizer only (tensors not required) */
  const char *kernels;  /* NULL = best for this CPU; "scalar", "avx2", "avx512" force a
                           path (the QCODER_KERNELS environment variable does the same) */
  size_t kv_budget_bytes; /* KV-cache bytes all sessions of the model may hold together;
                           0 = no limit. Caches grow in chunks of 256 positions; when a
                           chunk would exceed the budget, the least recently used idle
                           sessions lose their cache (their next request re-prefills, see
                           eng_session_evictions). */
} eng_model_opts;

typedef struct eng_hparams {
  char arch[32];           /* "qwen3moe" or "qwen3" */
  char name[128];          /* general.name, may be empty */
  uint32_t n_vocab;        /* rows of the embedding */
  uint32_t n_embd;
  uint32_t n_layer;
  uint32_t n_head, n_head_kv, head_dim;
  uint32_t n_ctx_train;
  uint32_t n_ff;           /* dense FFN width (qwen3) */
  uint32_t n_expert, n_expert_used, n_ff_exp;  /* qwen3moe; 0 for dense */
  float rope_base;
  float rms_eps;
  int rope_yarn;           /* YaRN scaling requested by the metadata */
  float rope_scale;        /* YaRN factor (1 when none) */
  uint32_t rope_orig_ctx;  /* YaRN original context length */
  int tied_output;         /* no output.weight: the LM head is token_embd */
  int32_t bos_id, eos_id, pad_id;  /* -1 when absent */
  uint64_t n_params;       /* elements in all tensors */
  uint64_t file_bytes;     /* total over all split files */
  uint32_t n_files;        /* 1, or the split count */
} eng_hparams;

int eng_model_open(const char *path, const eng_model_opts *opts, eng_model **out, eng_error *err);
void eng_model_close(eng_model *m);
const eng_hparams *eng_model_hparams(const eng_model *m);
/* The GGUF's tokenizer.chat_template, or NULL. Borrowed. */
const char *eng_model_chat_template(const eng_model *m);
/* The kernel path in use: "scalar", "avx2" or "avx512". */
const char *eng_model_kernels(const eng_model *m);
/* Bytes of weights one decoded token reads: every attention matrix, the router, the
 * selected experts' slices (n_expert_used of each stack), norms, one embedding row and
 * the LM head. Divided into the machine's read bandwidth it bounds decode speed. */
uint64_t eng_model_active_bytes(const eng_model *m);
/* Worker threads of the forward pass (the caller's thread counts as one). */
int eng_model_threads(const eng_model *m);
/* Bytes of KV cache all sessions hold now, and sessions evicted so far (budget). */
size_t eng_model_kv_bytes(eng_model *m);
uint64_t eng_model_kv_evictions(eng_model *m);

/* What is in the file, for `qcoder model-info`: the container, the tensors by type, and
 * the tokenizer as the metadata describes it. */
typedef struct eng_type_count {
  char type[12];           /* "Q4_K", "F32", … */
  uint32_t n_tensors;
  uint64_t bytes;
} eng_type_count;

typedef struct eng_model_info {
  uint32_t gguf_version;
  uint32_t alignment;
  uint32_t file_type;      /* general.file_type, or UINT32_MAX when absent */
  size_t n_kv, n_tensors;
  uint64_t tensor_bytes;
  eng_type_count types[40];
  size_t n_types;
  char tok_model[32], tok_pre[32];  /* tokenizer.ggml.model / .pre */
  uint32_t n_tokens, n_merges;
  int32_t bos_id, eos_id, pad_id, eot_id;  /* -1 when absent */
  int add_bos;             /* -1 when absent */
  size_t chat_template_len;/* 0 when absent */
} eng_model_info;

void eng_model_get_info(const eng_model *m, eng_model_info *out);
/* Metadata pair i (0..n-1) as key and printable value text (arrays as "[type; count]").
 * Returns the number of pairs; key/value untouched when i is out of range. */
size_t eng_model_meta(const eng_model *m, size_t i, const char **key, char *value, size_t value_len);

/* ---- tokenizer ------------------------------------------------------------------- */

/* Byte-level BPE with the Qwen2 pre-tokenizer and NFC normalisation, identical to the
 * model's own (Hugging Face) tokenizer. With parse_special, added tokens (<|im_start|>,
 * <tool_call>, …) written in the text are matched as whole strings; without, control
 * tokens (<|…|>) are ordinary text while user-defined ones (<tool_call>, <think>, …) are
 * still matched, as in llama.cpp. `text` must be valid UTF-8: otherwise ENG_EARG, and the
 * message names the offset of the first bad byte (clean arbitrary bytes with
 * qc_utf8_sanitize first). *ids is malloc'd (NULL when *n_ids is 0). */
int eng_tokenize(const eng_model *m, const char *text, size_t len, int parse_special,
                 int32_t **ids, size_t *n_ids, eng_error *err);
/* Number of tokens `text` encodes to (parse_special on). Negative on error. */
long eng_count_tokens(const eng_model *m, const char *text, size_t len);
/* The raw bytes of one token (special tokens as their text). Borrowed; NULL if out of
 * range. */
const char *eng_token_bytes(const eng_model *m, int32_t id, size_t *len);
/* Exact vocabulary lookup of a token's text (e.g. "<|im_end|>"), or -1. */
int32_t eng_token_lookup(const eng_model *m, const char *text);
/* End-of-generation token (eos, <|endoftext|>, <|im_end|>, FIM pad/repo/file-sep). */
int eng_token_is_eog(const eng_model *m, int32_t id);
/* Decode ids to text; *text is malloc'd (may contain invalid UTF-8 if the ids do). */
int eng_detokenize(const eng_model *m, const int32_t *ids, size_t n, char **text, size_t *len);

/* Streaming decoder: returns only complete UTF-8, holding back a partial character until
 * the tokens that finish it arrive; bytes that can never form a character are replaced by
 * U+FFFD at once. All pushes plus the flush give qc_utf8_sanitize(eng_detokenize(ids)). */
typedef struct eng_detok eng_detok;
eng_detok *eng_detok_new(const eng_model *m);
void eng_detok_free(eng_detok *d);
/* Append one token; *out points to newly completed text (borrowed, valid until the next
 * call), *out_len its length (0 is normal). */
int eng_detok_push(eng_detok *d, int32_t id, const char **out, size_t *out_len);
/* Whatever is held back, with invalid bytes replaced by U+FFFD. */
int eng_detok_flush(eng_detok *d, const char **out, size_t *out_len);

/* ---- sampling -------------------------------------------------------------------- */

typedef struct eng_sample_params {
  float temperature;      /* 0 = greedy (argmax, ties to the lowest id) */
  int top_k;              /* 0 = off */
  float top_p;            /* 1 = off */
  float min_p;            /* 0 = off */
  float repeat_penalty;   /* 1 = off */
  int repeat_last_n;      /* tokens the penalty looks back over */
  uint64_t seed;          /* same seed, same prompt, same params → same output */
  int max_tokens;         /* <= 0: until a stop or the context is full */
  const char *const *stop;/* stop strings (not included in the output) */
  size_t n_stop;
  int ignore_eog;         /* keep going past end-of-generation tokens (tests) */
} eng_sample_params;

/* Qwen3-Coder's generation_config: temperature 0.7, top_p 0.8, top_k 20,
 * repetition_penalty 1.05; min_p 0; seed from the clock. */
void eng_sample_params_default(eng_sample_params *p);

/* ---- sessions and generation ----------------------------------------------------- */

typedef struct eng_session eng_session;

typedef struct eng_session_opts {
  uint32_t n_ctx;         /* KV cache capacity in tokens; 0 = min(n_ctx_train, 32768) */
} eng_session_opts;

int eng_session_new(eng_model *m, const eng_session_opts *opts, eng_session **out, eng_error *err);
void eng_session_free(eng_session *s);
uint32_t eng_session_n_ctx(const eng_session *s);
/* Tokens currently held in the cache (the history prefix reuse compares against). */
size_t eng_session_n_past(const eng_session *s);
const int32_t *eng_session_history(const eng_session *s);
void eng_session_reset(eng_session *s);
/* Bytes of KV cache this session holds (0 after an eviction). */
size_t eng_session_kv_bytes(eng_session *s);

/* Run `tokens` at the next positions. If `logits` is non-NULL it receives n × n_vocab
 * floats, the logits after each token (row i predicts the token after tokens[i]). */
int eng_session_eval(eng_session *s, const int32_t *tokens, size_t n, float *logits, eng_error *err);
/* Logits after the last evaluated token (n_vocab floats), or NULL before any eval. */
const float *eng_session_logits(const eng_session *s);

typedef enum eng_stop_reason {
  ENG_STOP_NONE = 0,
  ENG_STOP_EOG,          /* the model emitted an end-of-generation token */
  ENG_STOP_MAX_TOKENS,
  ENG_STOP_STRING,       /* a stop string appeared */
  ENG_STOP_CALLBACK,     /* the token callback asked to stop */
  ENG_STOP_CANCELLED,    /* eng_session_cancel() */
  ENG_STOP_CONTEXT,      /* the context window filled up */
} eng_stop_reason;

/* Called once per generated token with the text it completes (possibly empty, never a
 * partial UTF-8 character, never part of a stop string), and once more with id -1 at the
 * end when text was held back (a partial character or a stop-string prefix that did not
 * complete). End-of-generation tokens are not passed. Return nonzero to stop. */
typedef int (*eng_token_cb)(void *user, int32_t id, const char *text, size_t len);

typedef struct eng_gen_stats {
  size_t n_prompt;       /* prompt tokens given */
  size_t n_reused;       /* of those, taken from the cache without recomputation */
  size_t n_generated;
  double prefill_ms, decode_ms;
  eng_stop_reason stop;
} eng_gen_stats;

/* Generate a continuation of `prompt` (the whole conversation, not just the new part):
 * the longest common prefix with the session history is kept in the cache, the rest of
 * the prompt is prefilled, then tokens are sampled until a stop. */
int eng_generate(eng_session *s, const int32_t *prompt, size_t n_prompt, const eng_sample_params *p,
                 eng_token_cb cb, void *user, eng_gen_stats *stats, eng_error *err);

/* Ask the running (or next) eng_generate on this session to stop; thread-safe. The
 * generation returns ENG_ECANCELLED (stats->stop = ENG_STOP_CANCELLED) after the token in
 * progress; what was already delivered stands and stays in the cache. */
void eng_session_cancel(eng_session *s);

/* ---- a session's cache on disk --------------------------------------------------- */

/* Hex SHA-256 identifying the model (metadata, tensor layout, sampled weight bytes),
 * computed on first use; borrowed, NULL when out of memory. Saved caches carry it and
 * restore only into sessions of a model with the same fingerprint. */
const char *eng_model_fingerprint(eng_model *m);

/* Write the session's token history and KV cache to `path` (a unique PATH.XXXXXX, fsync,
 * rename: a failure never leaves a half file under PATH). ENG_EARG when the cache is empty. The file
 * holds 2 · n_layer · kv_dim · 4 bytes per position, rounded up to 256 positions. The
 * session must not be generating (ENG_EARG); other sessions of the model keep running
 * while the file is written. */
int eng_session_save(eng_session *s, const char *path, eng_error *err);

/* The token history saved in `path`, validated against this model (malloc'd, caller
 * frees). ENG_EFORMAT: damaged or not a cache file; ENG_EUNSUPPORTED: another model or
 * file version; ENG_EIO: unreadable. */
int eng_kvfile_tokens(eng_model *m, const char *path, int32_t **tokens, size_t *n, eng_error *err);

/* Load into `s` the longest prefix of the saved history that `prompt` also starts with
 * (all of it when prompt is NULL), at most the session's n_ctx; *n_restored gets its
 * length. Only the chunks covering that prefix are read, each checked against its
 * checksum. With nothing in common the session is left untouched (*n_restored = 0); on
 * an error after reading began it is left empty. The next eng_generate reuses the
 * restored prefix like any cached history. The session must not be generating. */
int eng_session_restore(eng_session *s, const char *path, const int32_t *prompt, size_t n_prompt, size_t *n_restored,
                        eng_error *err);

/* ---- synthetic models ------------------------------------------------------------ */

/* `qcoder mkmodel`: write a qwen3moe or qwen3 GGUF with seeded random weights (normal,
 * std 1/sqrt(fan_in); norms 1 + 0.1·N(0,1)), streamed to disk tensor by tensor. */
typedef struct eng_mkmodel_opts {
  const char *preset;      /* "tiny" or "30b-a3b" */
  const char *arch;        /* NULL = qwen3moe; or "qwen3" */
  int n_layer;             /* 0 = the preset's */
  const char *type;        /* f32 f16 bf16 q8_0 q4_0 q4_k q5_k q6_k q4_k_m; NULL = f32 */
  uint64_t seed;
  const char *vocab_from;  /* GGUF to copy the tokenizer from, or NULL (byte-level toy vocab) */
  uint32_t n_vocab;        /* 0 = the tokenizer's size (vocab_from) or the preset's */
  const char *out;
} eng_mkmodel_opts;

int eng_mkmodel(const eng_mkmodel_opts *o, eng_error *err);

#endif /* QC_ENGINE_H */
