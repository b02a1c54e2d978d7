/* model.h — the loaded model, sessions and the forward pass (internal to engine/).
 *
 * ## The KV cache
 *
 * A session's cache is a table of chunks, each holding ENG__KV_CHUNK consecutive
 * positions for every layer, F32: first K, laid out [layer][kv_head][dim][position in
 * chunk] — transposed, so the scores of a block of positions against a query are
 * contiguous vector loads per dimension — then V, laid out [layer][position in
 * chunk][kv_head · head_dim]. The keys are stored after QK-norm and RoPE. `n_past` positions are valid; prefix reuse keeps the
 * first L and overwrites from L on. Chunks are allocated as the history grows (a 32K
 * context is not paid for up front) and stay until the session is reset, evicted or freed.
 * Attention walks the cache in blocks of ENG__ATT_BLOCK positions, which divide a chunk.
 *
 * All sessions of a model share one byte budget (eng_model_opts.kv_budget_bytes). When a
 * session needs a chunk beyond it, the least recently used sessions that are not in the
 * middle of a call lose their whole cache (their history empties; the next request
 * re-prefills); if that is not enough the call fails with ENG_ENOMEM.
 *
 * ## Threads and locking
 *
 * The model owns one thread pool and one set of scratch buffers sized for ENG__BATCH
 * tokens; a forward pass holds the model mutex for its whole duration, so scratch and
 * pool are never shared. The mutex also guards the session list, the LRU order and the
 * budget accounting, and every change to a session's cache (eviction included).
 */
#ifndef QC_ENGINE_MODEL_H
#define QC_ENGINE_MODEL_H

#include <pthread.h>
#include <stdatomic.h>

#include "engine/engine.h"
#include "engine/gguf.h"
#include "engine/limits.h"
#include "engine/pool.h"
#include "engine/quant.h"
#include "engine/tokenizer.h"

/* A weight matrix, or a stack of expert matrices (ne2 > 1), used in place. */
typedef struct eng__w {
  const char *name;
  const uint8_t *data;
  uint32_t type;
  uint64_t ne0, ne1, ne2;   /* input width, output rows, experts */
  size_t row_bytes;
} eng__w;

typedef struct eng__layer {
  const float *attn_norm, *q_norm, *k_norm, *ffn_norm;
  eng__w wq, wk, wv, wo;
  eng__w gate_inp, gate_exps, up_exps, down_exps;  /* qwen3moe */
  eng__w ffn_gate, ffn_up, ffn_down;               /* qwen3 */
} eng__layer;

typedef struct eng__scratch {
  float *x, *h, *q, *k, *v, *att, *o;     /* [B][…] */
  float *rope;                            /* [B][head_dim] cos/sin pairs */
  float *router;                          /* [B][n_expert] */
  int32_t *sel;                           /* [B][n_used] expert ids */
  float *selw;                            /* [B][n_used] weights */
  float *ff_g, *ff_u;                     /* [B·n_used][ff], (token, slot) pairs grouped by expert */
  float *yslot;                           /* [B·n_used][D] expert outputs, same order */
  float *ff_out;                          /* [B][D] */
  uint8_t *actq[2];                       /* [B][row bytes of the widest input] in up to two formats */
  uint8_t *actq_ff;                       /* [B·n_used][row bytes of an ff row] gathered / down input */
  int32_t *tok_of;                        /* [B·n_used] grouping by expert: token of pair i */
  int32_t *pair_of;                       /* [B][n_used] index of (token, slot) in the grouped order */
  int32_t *exp_off;                       /* [n_expert + 1] start of each expert's pairs */
  float *att_sc;                          /* [threads][heads per kv head][ENG__ATT_BLOCK] scores */
  float *att_acc;                         /* [threads][ENG__ATT_QBLOCK][heads per kv head][head_dim] */
  float *att_ml;                          /* [threads][2][ENG__ATT_QBLOCK · heads per kv head] max, sum */
  uint8_t *actp;                          /* activation panels of the int8 GEMM (all segments of a run) */
  uint8_t *gemm_ws;                       /* [threads][gemm workspace] */
  size_t actp_bytes, ws_bytes;
} eng__scratch;

/* How prefill matrix products run ($QCODER_MATMUL): by size (auto), or forced. */
typedef enum { ENG__MM_AUTO = 0, ENG__MM_VECDOT, ENG__MM_INT8, ENG__MM_SGEMM } eng__mm_mode;

struct eng_model {
  eng__gguf *g;
  eng_hparams hp;
  int moe;
  int vocab_only;
  eng__tok *tok;
  const eng__kernels *k;
  eng__pool *pool;
  pthread_mutex_t mu;      /* one forward pass at a time */
  eng__w tok_embd, output;
  const float *output_norm;
  eng__layer *layers;
  /* RoPE as ggml computes it */
  float theta_scale, freq_scale, ext_factor, attn_factor, corr_dims[2];
  eng__scratch s;
  eng__mm_mode mm_mode;
  size_t max_in;           /* widest matmul input */
  char *chat_template;
  /* KV budget over all sessions (guarded by mu) */
  size_t kv_budget;        /* bytes; 0 = no limit */
  size_t kv_used;
  eng_session *lru_head;   /* most recently used first */
  uint64_t n_evictions;
  char fingerprint[65];    /* eng_model_fingerprint, computed on first use (under mu) */
};

struct eng_session {
  eng_model *m;
  uint32_t n_ctx;
  size_t kv_dim;
  float **chunk;           /* ceil(n_ctx / ENG__KV_CHUNK) entries, NULL until used */
  size_t n_chunk_slots, n_chunks;
  size_t chunk_bytes;      /* K and V of ENG__KV_CHUNK positions, all layers */
  int32_t *hist;           /* n_ctx */
  size_t n_past;
  float *logits;           /* n_vocab, after the last evaluated token */
  int have_logits;
  int busy;                /* inside a call: not evictable (guarded by m->mu) */
  eng_session *lru_prev, *lru_next;
  atomic_int cancel;
  int32_t *route_log;      /* tests: [n_layer][route_cap][n_used], or NULL */
  size_t route_cap;
};

/* Evaluate tokens[0..n) at positions pos0.. (n <= ENG__BATCH), writing their K/V into the
 * session cache. logits: NULL, or n rows (all) / 1 row (last only) of n_vocab floats. */
int eng__forward(eng_session *s, const int32_t *tokens, int n, size_t pos0, float *logits, int all,
                 eng_error *err);

/* Tests: record the experts chosen for each position (layer-major; see struct). */
void eng__session_log_routes(eng_session *s, int32_t *buf, size_t cap_positions);

/* Make room for positions [0, n) in the cache (allocating chunks, evicting other
 * sessions under the budget). Caller holds m->mu. */
int eng__kv_reserve(eng_session *s, size_t n, eng_error *err);

/* Keys of layer l, KV head g from position p on: element (dim d, position p + j) is at
 * [d · ENG__KV_CHUNK + j] (j < the rest of the chunk). */
static inline float *eng__kv_kt(const eng_session *s, uint32_t l, uint32_t g, size_t p);
/* V row of position p in layer l (all KV heads). */
static inline float *eng__kv_v(const eng_session *s, uint32_t l, size_t p);

/* Row r of a weight (expert e) and the traits of its type. */
static inline const uint8_t *eng__w_row(const eng__w *w, uint64_t e, uint64_t r) {
  return w->data + (e * w->ne1 + r) * w->row_bytes;
}

static inline float *eng__kv_kt(const eng_session *s, uint32_t l, uint32_t g, size_t p) {
  const size_t hd = s->m->hp.head_dim;
  return s->chunk[p / ENG__KV_CHUNK] + ((size_t)l * s->kv_dim + (size_t)g * hd) * ENG__KV_CHUNK + p % ENG__KV_CHUNK;
}
static inline float *eng__kv_v(const eng_session *s, uint32_t l, size_t p) {
  return s->chunk[p / ENG__KV_CHUNK] + ((size_t)(s->m->hp.n_layer + l) * ENG__KV_CHUNK + p % ENG__KV_CHUNK) * s->kv_dim;
}

#endif
