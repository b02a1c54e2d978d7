/* bandwidth.c — the machine's memory read bandwidth, the bound on decode speed.
 *
 * usage: bench_bandwidth [THREADS=2] [MiB=1024] [REPS=10]
 *
 * Fills a buffer (so its pages exist), then times THREADS threads each summing its own
 * contiguous share of it with wide loads, REPS times; prints the best and the median
 * GB/s (10^9 bytes). Decode reads weights the same way (each thread a run of rows), so
 * this is the ceiling `qcoder bench --bandwidth` compares against.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct job {
  const uint64_t *p;
  size_t n;
  uint64_t sum;
  pthread_barrier_t *bar;
} job;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#if defined(__x86_64__)
#include <immintrin.h>
/* 256-bit loads, four independent accumulators */
__attribute__((target("avx2"))) static uint64_t sum_avx2(const uint64_t *p, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 16 <= n; i += 16) {
    a0 = _mm256_add_epi64(a0, _mm256_load_si256((const __m256i *)(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256((const __m256i *)(p + i + 4)));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256((const __m256i *)(p + i + 8)));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256((const __m256i *)(p + i + 12)));
  }
  a0 = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  uint64_t t[4];
  _mm256_storeu_si256((__m256i *)t, a0);
  return t[0] + t[1] + t[2] + t[3];
}
#endif

static void *reader(void *a) {
  job *j = a;
  pthread_barrier_wait(j->bar);
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) {
    j->sum = sum_avx2(j->p, j->n);
    return NULL;
  }
#endif
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
  for (size_t i = 0; i + 8 <= j->n; i += 8) {
    s0 += j->p[i]; s1 += j->p[i + 1]; s2 += j->p[i + 2]; s3 += j->p[i + 3];
    s4 += j->p[i + 4]; s5 += j->p[i + 5]; s6 += j->p[i + 6]; s7 += j->p[i + 7];
  }
  j->sum = s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
  return NULL;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  int nt = argc > 1 ? atoi(argv[1]) : 2;
  size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 1024;
  int reps = argc > 3 ? atoi(argv[3]) : 10;
  if (nt < 1 || nt > 256 || mib < 1 || reps < 1 || reps > 1000) {
    fprintf(stderr, "usage: bench_bandwidth [THREADS] [MiB] [REPS]\n");
    return 2;
  }
  size_t bytes = mib << 20, n = bytes / 8;
  uint64_t *buf = aligned_alloc(4096, bytes);
  if (!buf) return 1;
  for (size_t i = 0; i < n; i++) buf[i] = i;
  double *gbs = calloc((size_t)reps, sizeof *gbs);
  uint64_t check = 0;
  for (int r = 0; r < reps; r++) {
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)nt + 1);
    pthread_t th[256];
    job jb[256];
    for (int t = 0; t < nt; t++) {
      jb[t] = (job){buf + n / (size_t)nt * (size_t)t, n / (size_t)nt, 0, &bar};
      pthread_create(&th[t], NULL, reader, &jb[t]);
    }
    pthread_barrier_wait(&bar);
    double t0 = now();
    for (int t = 0; t < nt; t++) pthread_join(th[t], NULL);
    double dt = now() - t0;
    for (int t = 0; t < nt; t++) check += jb[t].sum;
    gbs[r] = (double)(n / (size_t)nt * (size_t)nt * 8) / dt / 1e9;
    pthread_barrier_destroy(&bar);
  }
  qsort(gbs, (size_t)reps, sizeof *gbs, cmp);
  printf("threads %d, buffer %zu MiB, %d reps: best %.1f GB/s, median %.1f GB/s (checksum %llu)\n", nt, mib, reps,
         gbs[reps - 1], gbs[reps / 2], (unsigned long long)(check & 0xff));
  free(gbs);
  free(buf);
  return 0;
}
