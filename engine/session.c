/* session.c — sessions (KV cache + history), evaluation, prefix reuse and generation.
 *
 * eng_generate keeps the longest common prefix of the new prompt and the history in the
 * cache, prefills the rest in batches, then samples token by token. The model mutex is
 * taken per forward pass, so sessions on other threads interleave at token granularity.
 * Streaming text goes through the detokenizer (which holds back partial UTF-8) and then
 * through a hold-back buffer for stop strings: text is released only once it cannot be
 * the start of a stop string, so the callback never sees any part of one.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/common.h"
#include "engine/internal.h"
#include "engine/limits.h"
#include "engine/model.h"
#include "engine/sample.h"

/* ---- the KV cache: chunks, the budget, LRU eviction (all under m->mu) ------------------- */

static void lru_unlink(eng_session *s) {
  eng_model *m = s->m;
  if (s->lru_prev) s->lru_prev->lru_next = s->lru_next;
  else if (m->lru_head == s) m->lru_head = s->lru_next;
  if (s->lru_next) s->lru_next->lru_prev = s->lru_prev;
  s->lru_prev = s->lru_next = NULL;
}

static void lru_touch(eng_session *s) {
  eng_model *m = s->m;
  if (m->lru_head == s) return;
  lru_unlink(s);
  s->lru_next = m->lru_head;
  if (m->lru_head) m->lru_head->lru_prev = s;
  m->lru_head = s;
}

static void drop_cache(eng_session *s) {
  for (size_t c = 0; c < s->n_chunk_slots; c++)
    if (s->chunk[c]) {
      free(s->chunk[c]);
      s->chunk[c] = NULL;
      s->m->kv_used -= s->chunk_bytes;
    }
  s->n_chunks = 0;
  s->n_past = 0;
  s->have_logits = 0;
}

/* Free the least recently used idle session's cache other than `keep`; 0 when none. */
static int evict_one(eng_model *m, const eng_session *keep) {
  eng_session *victim = NULL;
  for (eng_session *x = m->lru_head; x; x = x->lru_next)
    if (x != keep && !x->busy && x->n_chunks) victim = x;
  if (!victim) return 0;
  drop_cache(victim);
  m->n_evictions++;
  return 1;
}

int eng__kv_reserve(eng_session *s, size_t n, eng_error *err) {
  eng_model *m = s->m;
  lru_touch(s);
  const size_t need = (n + ENG__KV_CHUNK - 1) / ENG__KV_CHUNK;
  for (size_t c = 0; c < need; c++) {
    if (s->chunk[c]) continue;
    while (m->kv_budget && m->kv_used + s->chunk_bytes > m->kv_budget)
      if (!evict_one(m, s))
        return eng__err(err, ENG_ENOMEM,
                        "the KV-cache budget (%zu MB) is used up by sessions in use: this session needs %zu MB more",
                        m->kv_budget >> 20, s->chunk_bytes >> 20);
    s->chunk[c] = aligned_alloc(64, s->chunk_bytes);
    if (!s->chunk[c]) return eng__err(err, ENG_ENOMEM, "out of memory for the KV cache (%zu MB chunk)", s->chunk_bytes >> 20);
    m->kv_used += s->chunk_bytes;
    s->n_chunks++;
  }
  return ENG_OK;
}

int eng_session_new(eng_model *m, const eng_session_opts *opts, eng_session **out, eng_error *err) {
  *out = NULL;
  if (!m || m->vocab_only) return eng__err(err, ENG_EARG, "the model was opened vocab-only: no sessions");
  uint32_t n_ctx = opts ? opts->n_ctx : 0;
  if (n_ctx == 0) n_ctx = m->hp.n_ctx_train < 32768 ? m->hp.n_ctx_train : 32768;
  if (n_ctx > ENG__MAX_CTX) return eng__err(err, ENG_EARG, "n_ctx %u exceeds the limit %u", n_ctx, ENG__MAX_CTX);
  eng_session *s = calloc(1, sizeof *s);
  if (!s) return eng__err(err, ENG_ENOMEM, "out of memory");
  s->m = m;
  s->n_ctx = n_ctx;
  s->kv_dim = (size_t)m->hp.n_head_kv * m->hp.head_dim;
  s->chunk_bytes = 2 * (size_t)m->hp.n_layer * ENG__KV_CHUNK * s->kv_dim * sizeof(float);
  s->n_chunk_slots = (n_ctx + ENG__KV_CHUNK - 1) / ENG__KV_CHUNK;
  s->chunk = calloc(s->n_chunk_slots, sizeof *s->chunk);
  s->hist = malloc((size_t)n_ctx * sizeof *s->hist);
  s->logits = malloc((size_t)m->hp.n_vocab * sizeof *s->logits);
  atomic_init(&s->cancel, 0);
  if (!s->chunk || !s->hist || !s->logits) {
    free(s->chunk);
    free(s->hist);
    free(s->logits);
    free(s);
    return eng__err(err, ENG_ENOMEM, "out of memory for a %u-token context", n_ctx);
  }
  pthread_mutex_lock(&m->mu);
  lru_touch(s);
  pthread_mutex_unlock(&m->mu);
  *out = s;
  return ENG_OK;
}

void eng_session_free(eng_session *s) {
  if (!s) return;
  pthread_mutex_lock(&s->m->mu);
  drop_cache(s);
  lru_unlink(s);
  pthread_mutex_unlock(&s->m->mu);
  free(s->chunk);
  free(s->hist);
  free(s->logits);
  free(s);
}

uint32_t eng_session_n_ctx(const eng_session *s) { return s->n_ctx; }
size_t eng_session_n_past(const eng_session *s) { return s->n_past; }
const int32_t *eng_session_history(const eng_session *s) { return s->hist; }
const float *eng_session_logits(const eng_session *s) { return s->have_logits ? s->logits : NULL; }
void eng_session_cancel(eng_session *s) { atomic_store(&s->cancel, 1); }

size_t eng_session_kv_bytes(eng_session *s) {
  pthread_mutex_lock(&s->m->mu);
  size_t v = s->n_chunks * s->chunk_bytes;
  pthread_mutex_unlock(&s->m->mu);
  return v;
}

void eng_session_reset(eng_session *s) {
  pthread_mutex_lock(&s->m->mu);
  s->n_past = 0;
  s->have_logits = 0;
  pthread_mutex_unlock(&s->m->mu);
}

static void set_busy(eng_session *s, int busy) {
  pthread_mutex_lock(&s->m->mu);
  s->busy = busy;
  pthread_mutex_unlock(&s->m->mu);
}

void eng__session_log_routes(eng_session *s, int32_t *buf, size_t cap) {
  s->route_log = buf;
  s->route_cap = buf ? cap : 0;
}

/* Evaluate tokens at the end of the history, in batches. logits_all: n rows out. */
static int eval(eng_session *s, const int32_t *tokens, size_t n, float *logits_all, eng_error *err) {
  const uint32_t V = s->m->hp.n_vocab;
  if (n == 0) return ENG_OK;
  if (s->n_past + n > s->n_ctx)
    return eng__err(err, ENG_ECONTEXT, "the context window is full: %zu tokens in the cache + %zu new > %u", s->n_past, n,
                    s->n_ctx);
  for (size_t i = 0; i < n;) {
    int b = (int)(n - i < ENG__BATCH ? n - i : ENG__BATCH);
    int last = i + (size_t)b == n;
    float *dst = logits_all ? logits_all + i * V : (last ? s->logits : NULL);
    pthread_mutex_lock(&s->m->mu);
    int rc = eng__forward(s, tokens + i, b, s->n_past, dst, logits_all != NULL, err);
    pthread_mutex_unlock(&s->m->mu);
    if (rc) {
      s->have_logits = 0;
      return rc;
    }
    memcpy(s->hist + s->n_past, tokens + i, (size_t)b * sizeof *tokens);
    s->n_past += (size_t)b;
    i += (size_t)b;
    if (last) {
      if (logits_all) memcpy(s->logits, logits_all + (n - 1) * V, (size_t)V * sizeof(float));
      s->have_logits = 1;
    } else {
      s->have_logits = 0;
    }
  }
  return ENG_OK;
}

int eng_session_eval(eng_session *s, const int32_t *tokens, size_t n, float *logits, eng_error *err) {
  if (!s || (!tokens && n)) return eng__err(err, ENG_EARG, "no session or tokens");
  set_busy(s, 1);
  int rc = eval(s, tokens, n, logits, err);
  set_busy(s, 0);
  return rc;
}

/* ---- generation ------------------------------------------------------------------------ */

void eng_sample_params_default(eng_sample_params *p) {
  memset(p, 0, sizeof *p);
  p->temperature = 0.7f;
  p->top_k = 20;
  p->top_p = 0.8f;
  p->min_p = 0.0f;
  p->repeat_penalty = 1.05f;
  p->repeat_last_n = 64;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  p->seed = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec;
  p->max_tokens = 0;
}

typedef struct stream {
  eng_token_cb cb;
  void *user;
  const char *const *stop;
  size_t n_stop;
  qc_buf hold;     /* decoded text not yet released */
  int stopped;     /* a stop string matched */
  int cb_stop;     /* the callback asked to stop */
} stream;

static size_t stop_prefix_suffix(const stream *st) {
  /* longest suffix of hold that is a proper prefix of some stop string */
  size_t best = 0;
  for (size_t k = 0; k < st->n_stop; k++) {
    size_t sl = strlen(st->stop[k]);
    size_t max = sl - 1 < st->hold.len ? sl - 1 : st->hold.len;
    for (size_t l = max; l > best; l--)
      if (memcmp(st->hold.data + st->hold.len - l, st->stop[k], l) == 0) {
        best = l;
        break;
      }
  }
  return best;
}

/* Add text completed by token `id`; release what is safe; detect stop strings. */
static int stream_push(stream *st, int32_t id, const char *text, size_t len) {
  if (qc_buf_append(&st->hold, text, len)) return ENG_ENOMEM;
  size_t release = st->hold.len;
  for (size_t k = 0; k < st->n_stop; k++) {
    const char *hit = memmem(st->hold.data, st->hold.len, st->stop[k], strlen(st->stop[k]));
    if (hit && (size_t)(hit - st->hold.data) < release) {
      release = (size_t)(hit - st->hold.data);
      st->stopped = 1;
    }
  }
  if (!st->stopped) release = st->hold.len - stop_prefix_suffix(st);
  if (st->cb && st->cb(st->user, id, st->hold.data, release)) st->cb_stop = 1;
  if (st->stopped) qc_buf_reset(&st->hold);
  else qc_buf_consume(&st->hold, release);
  return ENG_OK;
}

static int64_t elapsed_ms_since(uint64_t t0) { return (int64_t)((qc_now_ns() - t0) / 1000000); }

int eng_generate(eng_session *s, const int32_t *prompt, size_t n_prompt, const eng_sample_params *p,
                 eng_token_cb cb, void *user, eng_gen_stats *stats, eng_error *err) {
  eng_gen_stats local = {0};
  if (!stats) stats = &local;
  memset(stats, 0, sizeof *stats);
  if (!s || !prompt || n_prompt == 0) return eng__err(err, ENG_EARG, "generation needs a session and a non-empty prompt");
  eng_sample_params defaults;
  if (!p) {
    eng_sample_params_default(&defaults);
    p = &defaults;
  }
  if (p->n_stop > ENG__MAX_STOP) return eng__err(err, ENG_EARG, "%zu stop strings (limit %u)", p->n_stop, ENG__MAX_STOP);
  for (size_t k = 0; k < p->n_stop; k++)
    if (!p->stop[k] || !p->stop[k][0] || strlen(p->stop[k]) > ENG__MAX_STOP_LEN)
      return eng__err(err, ENG_EARG, "stop string %zu is empty or longer than %u bytes", k, ENG__MAX_STOP_LEN);
  if (n_prompt > s->n_ctx)
    return eng__err(err, ENG_ECONTEXT, "the prompt has %zu tokens; the context holds %u", n_prompt, s->n_ctx);
  const eng_model *m = s->m;
  for (size_t i = 0; i < n_prompt; i++)
    if (prompt[i] < 0 || (uint32_t)prompt[i] >= m->hp.n_vocab)
      return eng__err(err, ENG_ETOKEN, "prompt token %zu (id %d) is out of range (vocabulary of %u)", i, prompt[i],
                      m->hp.n_vocab);
  stats->n_prompt = n_prompt;
  int rc = ENG_OK;
  set_busy(s, 1);
  eng__sampler *smp = NULL;
  eng_detok *dt = NULL;
  stream st = {cb, user, p->stop, p->n_stop, {0}, 0, 0};
  qc_buf_init(&st.hold, (size_t)1 << 24);

  if (atomic_exchange(&s->cancel, 0)) {
    stats->stop = ENG_STOP_CANCELLED;
    rc = eng__err(err, ENG_ECANCELLED, "cancelled");
    goto out;
  }
  /* prefix reuse */
  size_t common = 0;
  while (common < s->n_past && common < n_prompt && s->hist[common] == prompt[common]) common++;
  if (common == n_prompt) common--;  /* re-evaluate the last token to get its logits */
  s->n_past = common;
  s->have_logits = 0;
  stats->n_reused = common;
  uint64_t t0 = qc_now_ns();
  for (size_t i = common; i < n_prompt;) {
    size_t chunk = n_prompt - i < ENG__BATCH ? n_prompt - i : ENG__BATCH;
    if ((rc = eval(s, prompt + i, chunk, NULL, err))) goto out;
    i += chunk;
    if (i < n_prompt && atomic_exchange(&s->cancel, 0)) {
      stats->stop = ENG_STOP_CANCELLED;
      rc = eng__err(err, ENG_ECANCELLED, "cancelled during the prompt");
      goto out;
    }
  }
  stats->prefill_ms = (double)elapsed_ms_since(t0);

  if ((rc = eng__sampler_new(p, m->hp.n_vocab, &smp, err))) goto out;
  dt = eng_detok_new(m);
  if (!dt) {
    rc = eng__err(err, ENG_ENOMEM, "out of memory");
    goto out;
  }
  t0 = qc_now_ns();
  for (;;) {
    if (atomic_exchange(&s->cancel, 0)) {
      stats->stop = ENG_STOP_CANCELLED;
      rc = eng__err(err, ENG_ECANCELLED, "cancelled");
      break;
    }
    int32_t id = eng__sample(smp, s->logits, s->hist, s->n_past);
    if (!p->ignore_eog && eng_token_is_eog(m, id)) {
      stats->stop = ENG_STOP_EOG;
      break;
    }
    stats->n_generated++;
    const char *text;
    size_t len;
    if (eng_detok_push(dt, id, &text, &len) != 0) {
      /* an id the vocabulary has no text for (embedding rows beyond the token list):
       * it is generated and evaluated, it just shows nothing */
      text = "";
      len = 0;
    }
    if ((rc = stream_push(&st, id, text, len))) break;
    if (st.stopped) {
      stats->stop = ENG_STOP_STRING;
      break;
    }
    if (st.cb_stop) {
      stats->stop = ENG_STOP_CALLBACK;
      break;
    }
    if (p->max_tokens > 0 && stats->n_generated >= (size_t)p->max_tokens) {
      stats->stop = ENG_STOP_MAX_TOKENS;  /* the last token is not evaluated: nobody needs its logits yet */
      break;
    }
    if (s->n_past >= s->n_ctx) {
      stats->stop = ENG_STOP_CONTEXT;
      break;
    }
    if ((rc = eval(s, &id, 1, NULL, err))) break;
  }
  stats->decode_ms = (double)elapsed_ms_since(t0);
  /* release what is held back (never after a stop string: that text is dropped) */
  if (!st.stopped && dt) {
    const char *text;
    size_t len;
    if (eng_detok_flush(dt, &text, &len) == 0) qc_buf_append(&st.hold, text, len);
    if (st.hold.len && cb) cb(user, -1, st.hold.data, st.hold.len);
  }
out:
  set_busy(s, 0);
  eng_detok_free(dt);
  eng__sampler_free(smp);
  qc_buf_release(&st.hold);
  return rc;
}
