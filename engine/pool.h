/* pool.h — the engine's persistent thread pool (internal).
 *
 * Created once per model with n threads (the caller counts as one: n-1 workers are
 * started). eng__pool_run(fn, ctx, n_tasks) runs fn(ctx, task, worker) for every task in
 * 0..n_tasks-1 on all threads and returns when all are done; tasks are handed out through
 * an atomic counter so uneven tasks balance. No thread is created and nothing is
 * allocated per run. Runs are not reentrant: one run at a time per pool (the model's
 * forward-pass mutex guarantees it).
 */
#ifndef QC_ENGINE_POOL_H
#define QC_ENGINE_POOL_H

typedef struct eng__pool eng__pool;
typedef void (*eng__task_fn)(void *ctx, int task, int worker);

int eng__pool_new(int n_threads, eng__pool **out);
void eng__pool_free(eng__pool *p);
int eng__pool_size(const eng__pool *p);
void eng__pool_run(eng__pool *p, eng__task_fn fn, void *ctx, int n_tasks);

#endif
