/* pool.c — persistent worker threads (see pool.h).
 *
 * A run publishes (fn, ctx, n_tasks) under the mutex, bumps a generation counter and
 * broadcasts; every thread, the caller included, then claims tasks from an atomic counter
 * until none are left. The last thread to finish its claims signals the caller.
 */
#include "engine/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct eng__pool {
  int n;                 /* threads including the caller */
  pthread_t *threads;
  pthread_mutex_t mu;
  pthread_cond_t start, done;
  unsigned long gen;
  int quit;
  eng__task_fn fn;
  void *ctx;
  int n_tasks;
  atomic_int next;
  int active;            /* workers still working on this generation */
};

typedef struct worker_arg {
  eng__pool *p;
  int id;
} worker_arg;

static void drain(eng__pool *p, int id) {
  for (;;) {
    int t = atomic_fetch_add(&p->next, 1);
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
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->quit && p->gen == seen) pthread_cond_wait(&p->start, &p->mu);
    if (p->quit) break;
    seen = p->gen;
    pthread_mutex_unlock(&p->mu);
    drain(p, id);
    pthread_mutex_lock(&p->mu);
    if (--p->active == 0) pthread_cond_signal(&p->done);
  }
  pthread_mutex_unlock(&p->mu);
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
  p->quit = 1;
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
  pthread_mutex_lock(&p->mu);
  p->fn = fn;
  p->ctx = ctx;
  p->n_tasks = n_tasks;
  atomic_store(&p->next, 0);
  p->active = p->n - 1;
  p->gen++;
  pthread_cond_broadcast(&p->start);
  pthread_mutex_unlock(&p->mu);
  drain(p, 0);
  pthread_mutex_lock(&p->mu);
  while (p->active > 0) pthread_cond_wait(&p->done, &p->mu);
  pthread_mutex_unlock(&p->mu);
}
