/* model.h — the loaded model, sessions and the forward pass (internal to engine/).
 *
 * ## The KV cache
 *
 * Each session owns two F32 arrays, K and V, laid out [layer][position][kv_head·head_dim]:
 * the keys (after QK-norm and RoPE) and values of every token the session has evaluated,
 * at the position it was evaluated at. `n_past` tokens are valid; prefix reuse simply
 * keeps the first L and overwrites from L on. The arrays are anonymous mappings: pages
 * are only committed as positions fill, so a 32K-token cache costs what it holds.
 *
 * ## Threads and locking
 *
 * The model owns one thread pool and one set of scratch buffers sized for ENG__BATCH
 * tokens; a forward pass holds the model mutex for its whole duration, so scratch and
 * pool are never shared. Sessions own their cache, history and attention scratch.
 */
#ifndef QC_ENGINE_MODEL_H
#define QC_ENGINE_MODEL_H

#include <pthread.h>
#include <stdatomic.h>

#include "engine/engine.h"
#include "engine/gguf.h"
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
  float *ff_g, *ff_u;                     /* [B][ff] */
  float *ff_in;                           /* [B][D] gathered rows */
  float *yslot;                           /* [B][n_used][D] expert outputs */
  float *ff_out;                          /* [B][D] */
  uint8_t *actq;                          /* [B][row bytes of the widest activation] */
  int32_t *tok_of;                        /* [B·n_used] grouping by expert */
  int32_t *slot_of;
} eng__scratch;

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
  size_t max_in;           /* widest matmul input */
  char *chat_template;
};

struct eng_session {
  eng_model *m;
  uint32_t n_ctx;
  size_t kv_dim;
  float *kc, *vc;          /* mappings of kv_bytes each */
  size_t kv_bytes;
  int32_t *hist;           /* n_ctx */
  size_t n_past;
  float *logits;           /* n_vocab, after the last evaluated token */
  int have_logits;
  float *att;              /* n_threads × n_ctx scores */
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

/* Row r of a weight (expert e) and the traits of its type. */
static inline const uint8_t *eng__w_row(const eng__w *w, uint64_t e, uint64_t r) {
  return w->data + (e * w->ne1 + r) * w->row_bytes;
}

#endif
