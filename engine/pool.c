/* pool.c — persistent worker threads (see pool.h).
 *
 * A run publishes (fn, ctx, n_tasks), then bumps a generation counter; every thread, the
 * caller included, claims tasks from an atomic counter until none are left, and the last
 * worker to finish tells the caller. Decode issues a few dozen runs per token a few
 * microseconds apart, so waking a sleeping thread (a futex round trip, tens of µs) on
 * every run would cost more than the work: waiting threads first spin on the counter for
 * ENG__POOL_SPIN pauses (about 100 µs) and only then sleep on a condition variable. The
 * publisher takes the mutex and broadcasts only when someone sleeps.
 */
#include "engine/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "engine/limits.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static inline void cpu_relax(void) { _mm_pause(); }
#else
static inline void cpu_relax(void) {}
#endif

struct eng__pool {
  int n;                 /* threads including the caller */
  pthread_t *threads;
  pthread_mutex_t mu;
  pthread_cond_t start, done;
  atomic_ulong gen;
  atomic_int quit;
  eng__task_fn fn;
  void *ctx;
  int n_tasks;
  atomic_int next;
  atomic_int active;     /* workers still working on this generation */
  int sleepers;          /* workers blocked on `start` (under mu) */
  int caller_waiting;    /* the caller blocked on `done` (under mu) */
};

typedef struct worker_arg {
  eng__pool *p;
  int id;
} worker_arg;

static void drain(eng__pool *p, int id) {
  for (;;) {
    int t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
    if (t >= p->n_tasks) break;
    p->fn(p->ctx, t, id);
  }
}

static void *worker_main(void *a) {
  worker_arg *wa = a;
  eng__pool *p = wa->p;
  int id = wa->id;
  free(wa);
  unsigned long seen = 0;
  for (;;) {
    unsigned long g;
    int spins = 0;
    while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen && !atomic_load(&p->quit)) {
      if (++spins < ENG__POOL_SPIN) {
        cpu_relax();
        continue;
      }
      pthread_mutex_lock(&p->mu);
      p->sleepers++;
      while (atomic_load(&p->gen) == seen && !atomic_load(&p->quit)) pthread_cond_wait(&p->start, &p->mu);
      p->sleepers--;
      pthread_mutex_unlock(&p->mu);
      spins = 0;
    }
    if (atomic_load(&p->quit)) break;
    seen = g;
    drain(p, id);
    if (atomic_fetch_sub_explicit(&p->active, 1, memory_order_acq_rel) == 1) {
      pthread_mutex_lock(&p->mu);
      if (p->caller_waiting) pthread_cond_signal(&p->done);
      pthread_mutex_unlock(&p->mu);
    }
  }
  return NULL;
}

int eng__pool_new(int n_threads, eng__pool **out) {
  eng__pool *p = calloc(1, sizeof *p);
  if (!p) return -1;
  if (n_threads < 1) n_threads = 1;
  p->n = n_threads;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->start, NULL);
  pthread_cond_init(&p->done, NULL);
  atomic_init(&p->gen, 0);
  atomic_init(&p->quit, 0);
  atomic_init(&p->next, 0);
  atomic_init(&p->active, 0);
  p->threads = calloc((size_t)n_threads, sizeof *p->threads);
  if (!p->threads) {
    eng__pool_free(p);
    return -1;
  }
  for (int i = 1; i < n_threads; i++) {
    worker_arg *wa = malloc(sizeof *wa);
    if (!wa) {
      p->n = i;
      eng__pool_free(p);
      return -1;
    }
    wa->p = p;
    wa->id = i;
    if (pthread_create(&p->threads[i], NULL, worker_main, wa) != 0) {
      free(wa);
      p->n = i;
      eng__pool_free(p);
      return -1;
    }
  }
  *out = p;
  return 0;
}

void eng__pool_free(eng__pool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  atomic_store(&p->quit, 1);
  pthread_cond_broadcast(&p->start);
  pthread_mutex_unlock(&p->mu);
  for (int i = 1; i < p->n; i++)
    if (p->threads) pthread_join(p->threads[i], NULL);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->start);
  pthread_cond_destroy(&p->done);
  free(p->threads);
  free(p);
}

int eng__pool_size(const eng__pool *p) { return p->n; }

void eng__pool_run(eng__pool *p, eng__task_fn fn, void *ctx, int n_tasks) {
  if (n_tasks <= 0) return;
  if (p->n == 1 || n_tasks == 1) {
    for (int t = 0; t < n_tasks; t++) fn(ctx, t, 0);
    return;
  }
  p->fn = fn;
  p->ctx = ctx;
  p->n_tasks = n_tasks;
  atomic_store_explicit(&p->next, 0, memory_order_relaxed);
  atomic_store_explicit(&p->active, p->n - 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
  pthread_mutex_lock(&p->mu);
  if (p->sleepers) pthread_cond_broadcast(&p->start);
  pthread_mutex_unlock(&p->mu);
  drain(p, 0);
  int spins = 0;
  while (atomic_load_explicit(&p->active, memory_order_acquire) > 0) {
    if (++spins < ENG__POOL_SPIN) {
      cpu_relax();
      continue;
    }
    pthread_mutex_lock(&p->mu);
    p->caller_waiting = 1;
    while (atomic_load(&p->active) > 0) pthread_cond_wait(&p->done, &p->mu);
    p->caller_waiting = 0;
    pthread_mutex_unlock(&p->mu);
  }
}
