/* sample.c — the sampling chain (see sample.h). */
#include "engine/sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"

typedef struct cand {
  int32_t id;
  float logit;
  float p;
} cand;

struct eng__sampler {
  eng_sample_params p;
  uint32_t n_vocab;
  float *work;     /* penalised logits */
  cand *c;         /* candidates */
  uint8_t *seen;   /* penalty: token already penalised */
  uint64_t rng[4];
};

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro(uint64_t *s) {
  const uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return r;
}

int eng__sampler_new(const eng_sample_params *p, uint32_t n_vocab, eng__sampler **out, eng_error *err) {
  eng__sampler *s = calloc(1, sizeof *s);
  if (!s) return eng__err(err, ENG_ENOMEM, "out of memory");
  s->p = *p;
  s->n_vocab = n_vocab;
  s->work = malloc((size_t)n_vocab * sizeof *s->work);
  s->c = malloc((size_t)n_vocab * sizeof *s->c);
  s->seen = calloc(n_vocab, 1);
  if (!s->work || !s->c || !s->seen) {
    eng__sampler_free(s);
    return eng__err(err, ENG_ENOMEM, "out of memory");
  }
  uint64_t x = p->seed;
  for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
  *out = s;
  return ENG_OK;
}

void eng__sampler_free(eng__sampler *s) {
  if (!s) return;
  free(s->work);
  free(s->c);
  free(s->seen);
  free(s);
}

/* a before b: higher logit, then lower id */
static int better(const cand *a, const cand *b) { return a->logit > b->logit || (a->logit == b->logit && a->id < b->id); }

static int cand_cmp(const void *a, const void *b) {
  const cand *x = a, *y = b;
  return better(x, y) ? -1 : better(y, x) ? 1 : 0;
}

/* min-heap on "better": the root is the worst of the kept k */
static void sift_down(cand *h, size_t n, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, w = i;
    if (l < n && better(&h[w], &h[l])) w = l;
    if (l + 1 < n && better(&h[w], &h[l + 1])) w = l + 1;
    if (w == i) return;
    cand t = h[i];
    h[i] = h[w];
    h[w] = t;
    i = w;
  }
}

int32_t eng__sample(eng__sampler *s, const float *logits, const int32_t *hist, size_t n_hist) {
  const uint32_t V = s->n_vocab;
  const eng_sample_params *p = &s->p;
  memcpy(s->work, logits, (size_t)V * sizeof(float));
  if (p->repeat_penalty > 0 && p->repeat_penalty != 1.0f && p->repeat_last_n != 0 && n_hist) {
    size_t n = p->repeat_last_n < 0 || (size_t)p->repeat_last_n > n_hist ? n_hist : (size_t)p->repeat_last_n;
    for (size_t i = n_hist - n; i < n_hist; i++) {
      int32_t t = hist[i];
      if (t < 0 || (uint32_t)t >= V || s->seen[t]) continue;
      s->seen[t] = 1;
      s->work[t] = s->work[t] > 0 ? s->work[t] / p->repeat_penalty : s->work[t] * p->repeat_penalty;
    }
    for (size_t i = n_hist - n; i < n_hist; i++)
      if (hist[i] >= 0 && (uint32_t)hist[i] < V) s->seen[hist[i]] = 0;
  }
  if (!(p->temperature > 0)) {
    int32_t best = 0;
    for (uint32_t i = 1; i < V; i++)
      if (s->work[i] > s->work[best]) best = (int32_t)i;
    return best;
  }
  /* top-k (k = V when off), sorted best first */
  size_t k = p->top_k > 0 && (uint32_t)p->top_k < V ? (size_t)p->top_k : V;
  size_t n = 0;
  if (k < V) {
    for (uint32_t i = 0; i < V; i++) {
      cand c = {(int32_t)i, s->work[i], 0};
      if (n < k) {
        s->c[n++] = c;
        if (n == k)
          for (size_t j = k / 2 + 1; j-- > 0;) sift_down(s->c, n, j);
      } else if (better(&c, &s->c[0])) {
        s->c[0] = c;
        sift_down(s->c, n, 0);
      }
    }
  } else {
    for (uint32_t i = 0; i < V; i++) s->c[n++] = (cand){(int32_t)i, s->work[i], 0};
  }
  qsort(s->c, n, sizeof *s->c, cand_cmp);
  /* probabilities for top-p / min-p */
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    s->c[i].p = expf(s->c[i].logit - s->c[0].logit);
    sum += s->c[i].p;
  }
  for (size_t i = 0; i < n; i++) s->c[i].p = (float)(s->c[i].p / sum);
  if (p->top_p > 0 && p->top_p < 1) {
    double cum = 0;
    size_t keep = n;
    for (size_t i = 0; i < n; i++) {
      cum += s->c[i].p;
      if (cum >= p->top_p) {
        keep = i + 1;
        break;
      }
    }
    n = keep;
  }
  if (p->min_p > 0) {
    size_t keep = 1;
    while (keep < n && s->c[keep].p >= p->min_p * s->c[0].p) keep++;
    n = keep;
  }
  /* temperature, then draw */
  sum = 0;
  for (size_t i = 0; i < n; i++) {
    s->c[i].p = expf((s->c[i].logit - s->c[0].logit) / p->temperature);
    sum += s->c[i].p;
  }
  double r = (double)(xoshiro(s->rng) >> 11) * 0x1.0p-53 * sum;
  double cum = 0;
  for (size_t i = 0; i < n; i++) {
    cum += s->c[i].p;
    if (r < cum) return s->c[i].id;
  }
  return s->c[n - 1].id;
}
