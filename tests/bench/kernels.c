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
#include <cblas.h>
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

/* int8 GEMM (avx512 table) vs dequantise + cblas_sgemm vs vec_dot rows, by shape, one
 * thread, the three interleaved (A B C A B C …) and the best of each kept, so a burst of
 * load from other processes hits all three alike. Times include converting the
 * activations (int8: panels; vec_dot: none beyond the Q8_K rows) and dequantising the
 * weights (sgemm), as in the forward pass. */
static int shapes(void) {
  const eng__kernels *k512 = NULL;
  eng_error err = {0};
  if (eng__kernels_get("avx512", &k512, &err)) {
    printf("no avx512 table: %s\n", err.msg);
    return 0;
  }
  openblas_set_num_threads(1);
  static const struct { const char *what; int rows, n, T; uint32_t type; } sh[] = {
      {"expert gate/up, 1 tok", 768, 2048, 1, ENG__T_Q4_K},   {"expert gate/up, 2 tok", 768, 2048, 2, ENG__T_Q4_K},
      {"expert gate/up, 3 tok", 768, 2048, 3, ENG__T_Q4_K},   {"expert gate/up, 4 tok", 768, 2048, 4, ENG__T_Q4_K},
      {"expert gate/up, 8 tok", 768, 2048, 8, ENG__T_Q4_K},   {"expert gate/up, 32 tok", 768, 2048, 32, ENG__T_Q4_K},
      {"expert gate/up, 128 tok", 768, 2048, 128, ENG__T_Q4_K}, {"expert down, 32 tok", 2048, 768, 32, ENG__T_Q6_K},
      {"attn q, 512 tok", 1024, 2048, 512, ENG__T_Q4_K},      {"attn out, 512 tok", 512, 4096, 512, ENG__T_Q4_K},
      {"expert gate/up Q8_0, 32 tok", 768, 2048, 32, ENG__T_Q8_0}, {"attn q Q8_0, 512 tok", 1024, 2048, 512, ENG__T_Q8_0},
  };
  printf("%-30s %10s %10s %10s  (GFLOP/s, 1 thread; 2·rows·n·T per product)\n", "shape", "int8", "sgemm", "vec_dot");
  for (size_t i = 0; i < sizeof sh / sizeof *sh; i++) {
    const int R = sh[i].rows, n = sh[i].n, T = sh[i].T;
    const eng__type_traits *tt = &k512->t[sh[i].type], *vt = &k512->t[tt->vec_dot_type];
    const size_t wrow = eng__ggml_row_size(sh[i].type, (uint64_t)n), arow = eng__ggml_row_size(tt->vec_dot_type, (uint64_t)n);
    float *w = malloc((size_t)R * n * sizeof(float)), *x = malloc((size_t)T * n * sizeof(float));
    float *y = malloc((size_t)T * R * sizeof(float)), *wf = malloc((size_t)64 * n * sizeof(float));
    uint8_t *qw = malloc((size_t)R * wrow), *qa = malloc((size_t)T * arow);
    void *panel = aligned_alloc(64, (k512->gemm.act_bytes(n, T) + 63) / 64 * 64);
    void *ws = aligned_alloc(64, (k512->gemm.ws_bytes(n) + 63) / 64 * 64);
    unsigned s = 7;
    for (size_t j = 0; j < (size_t)R * n; j++) w[j] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    for (size_t j = 0; j < (size_t)T * n; j++) x[j] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    for (int r = 0; r < R; r++) tt->quantize_row(w + (size_t)r * n, qw + (size_t)r * wrow, n);
    double best[3] = {1e9, 1e9, 1e9};
    for (int rep = 0; rep < 5; rep++) {
      double t0 = now();
      for (int t = 0; t < T; t++) vt->from_float(x + (size_t)t * n, qa + (size_t)t * arow, n);
      k512->gemm.act(sh[i].type, n, qa, arow, T, panel);
      k512->gemm.run(sh[i].type, n, qw, wrow, R, panel, T, y, (size_t)R, ws);
      double t1 = now();
      for (int r0 = 0; r0 < R; r0 += 64) {
        int b = R - r0 < 64 ? R - r0 : 64;
        for (int r = 0; r < b; r++) tt->to_float(qw + (size_t)(r0 + r) * wrow, wf + (size_t)r * n, n);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, b, n, 1.0f, x, n, wf, n, 0.0f, y + r0, R);
      }
      double t2 = now();
      if (T <= 32) {
        for (int t = 0; t < T; t++) vt->from_float(x + (size_t)t * n, qa + (size_t)t * arow, n);
        eng__mul_mat_generic(tt, n, qw, wrow, R, qa, arow, T, y, (size_t)R);
      }
      double t3 = now();
      if (t1 - t0 < best[0]) best[0] = t1 - t0;
      if (t2 - t1 < best[1]) best[1] = t2 - t1;
      if (t3 - t2 < best[2]) best[2] = t3 - t2;
    }
    const double fl = 2.0 * R * n * T / 1e9;
    printf("%-30s %10.1f %10.1f %10.1f\n", sh[i].what, fl / best[0], fl / best[1], T <= 32 ? fl / best[2] : 0.0);
    free(w); free(x); free(y); free(wf); free(qw); free(qa); free(panel); free(ws);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "--shapes")) return shapes();
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
