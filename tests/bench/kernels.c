/* kernels.c — single-thread throughput of every kernel table's dot products and
 * conversions, for the scalar-vs-SIMD ratios in BENCHMARKS.md.
 *
 * usage: bench_kernels [ROWS=256] [MS=200]
 *
 * For each table and weight type: ROWS weight rows of 2048 values (resident in L2, so
 * this measures compute, not memory) dotted with one converted activation row, repeated
 * for about MS milliseconds; prints GB/s of weight bytes processed and the time per row.
 * Also T=32 activation rows through mul_mat (prefill) and the activation converters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/quant.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  int rows = argc > 1 ? atoi(argv[1]) : 256;
  double ms = argc > 2 ? atof(argv[2]) : 200;
  enum { N = 2048, TT = 32 };
  if (rows < 1 || rows > 65536) return 2;
  float *w = malloc((size_t)rows * N * sizeof(float)), *a = malloc((size_t)TT * N * sizeof(float));
  float *y = malloc((size_t)rows * TT * sizeof(float));
  uint8_t *qw = malloc((size_t)rows * N * 4), *qa = malloc((size_t)TT * N * 4);
  unsigned s = 1;
  for (size_t i = 0; i < (size_t)rows * N; i++) w[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
  for (size_t i = 0; i < (size_t)TT * N; i++) a[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
  size_t nt;
  const eng__kernels *const *all = eng__kernels_all(&nt);
  static const uint32_t types[] = {ENG__T_F32, ENG__T_F16, ENG__T_BF16, ENG__T_Q8_0, ENG__T_Q4_0, ENG__T_Q4_K, ENG__T_Q5_K, ENG__T_Q6_K};
  printf("%-7s %-5s %12s %12s %14s\n", "table", "type", "vec_dot GB/s", "ns/row", "mul_mat T=32 GOP/s");
  for (size_t k = 0; k < nt; k++) {
    const eng__kernels *kt = all[k];
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
      const uint32_t type = types[ti];
      const eng__type_traits *tt = &kt->t[type], *vt = &kt->t[tt->vec_dot_type];
      const size_t wrow = eng__ggml_row_size(type, N), arow = eng__ggml_row_size(tt->vec_dot_type, N);
      for (int r = 0; r < rows; r++) eng__kernels_scalar.t[type].quantize_row(w + (size_t)r * N, qw + (size_t)r * wrow, N);
      for (int t = 0; t < TT; t++) vt->from_float(a + (size_t)t * N, qa + (size_t)t * arow, N);
      long it = 0;
      double t0 = now(), t1;
      do {
        for (int r = 0; r < rows; r++) tt->vec_dot(N, &y[r], qw + (size_t)r * wrow, qa);
        it++;
        t1 = now();
      } while ((t1 - t0) * 1e3 < ms);
      double dt = (t1 - t0) / (double)(it * rows);
      long it2 = 0;
      double u0 = now(), u1;
      do {
        kt->mul_mat[type](N, qw, wrow, rows, qa, arow, TT, y, (size_t)rows);
        it2++;
        u1 = now();
      } while ((u1 - u0) * 1e3 < ms);
      double gops = 2.0 * N * rows * TT * (double)it2 / (u1 - u0) / 1e9;
      printf("%-7s %-5s %12.2f %12.1f %14.1f\n", kt->name, tt->name, (double)wrow / dt / 1e9, dt * 1e9, gops);
    }
  }
  free(w); free(a); free(y); free(qw); free(qa);
  return 0;
}
