/* bench_tokenizer.c — tokenizer throughput (not a ctest test: run it by hand on a quiet
 * machine, release build).
 *
 *   bench_tokenizer [VOCAB.gguf] [FILE...]
 *
 * Reports vocabulary load time (wall), and encoding MB/s by CPU time (best of 3) on the
 * oracle's 4 KB C file (encoded many times), on a ~4 MB concatenation of every oracle case,
 * and on any FILE given. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/common.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"

static char *unhex(const char *hex, size_t *n) {
  size_t len = strlen(hex) / 2;
  char *s = malloc(len + 1);
  for (size_t i = 0; i < len; i++) {
    unsigned v;
    sscanf(hex + 2 * i, "%2x", &v);
    s[i] = (char)v;
  }
  *n = len;
  return s;
}

/* This thread's CPU time: on a shared machine, wall time also counts other processes. */
static uint64_t cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Encode `s` repeatedly for about `ms` milliseconds of CPU time; best of 3 rounds, MB/s. */
static double bench(const eng__tok *t, const char *s, size_t n, double ms, size_t *n_ids) {
  double best = 0;
  for (int round = 0; round < 3; round++) {
    uint64_t t0 = cpu_ns(), t1;
    size_t iters = 0;
    do {
      int32_t *ids;
      eng_error err;
      if (eng__tok_encode(t, s, n, 1, &ids, n_ids, &err)) {
        fprintf(stderr, "encode: %s\n", err.msg);
        exit(1);
      }
      free(ids);
      iters++;
      t1 = cpu_ns();
    } while ((double)(t1 - t0) < ms * 1e6);
    double mbs = (double)n * (double)iters / ((double)(t1 - t0) / 1e9) / 1e6;
    if (mbs > best) best = mbs;
  }
  return best;
}

int main(int argc, char **argv) {
  const char *vocab = argc > 1 ? argv[1] : QCT_DATA_DIR "/oracle/models/vocab-qwen3.gguf";
  eng_error err;
  eng__gguf *g;
  uint64_t t0 = qc_now_ns(), c0 = cpu_ns();
  if (eng__gguf_open(vocab, &g, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
  uint64_t c1 = cpu_ns();
  eng__tok *t;
  if (eng__tok_load(g, &t, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
  eng__gguf_close(g);
  uint64_t t2 = qc_now_ns(), c2 = cpu_ns();
  printf("load %s: %.1f ms wall, %.1f ms CPU (GGUF open %.1f ms CPU, tokenizer build %.1f ms CPU)\n",
         vocab, (double)(t2 - t0) / 1e6, (double)(c2 - c0) / 1e6, (double)(c1 - c0) / 1e6,
         (double)(c2 - c1) / 1e6);

  json_error_t je;
  json_t *j = json_load_file(QCT_DATA_DIR "/oracle/tokenizer/tokenizer-cases.json", 0, &je);
  if (!j) return fprintf(stderr, "%s\n", je.text), 1;
  qc_buf all;
  qc_buf_init(&all, 0);
  json_t *c;
  size_t i;
  json_array_foreach(json_object_get(j, "cases"), i, c) {
    size_t n, n_ids;
    char *s = unhex(json_string_value(json_object_get(c, "text_hex")), &n);
    if (strcmp(json_string_value(json_object_get(c, "name")), "code_c_4kb") == 0) {
      double v = bench(t, s, n, 300, &n_ids);
      printf("4 KB C file (%zu bytes): %.1f MB/s (%zu tokens)\n", n, v, n_ids);
    }
    qc_buf_append(&all, s, n);
    free(s);
  }
  size_t one = all.len;
  char *copy = qc_strndup(all.data, one);
  while (all.len < (4u << 20)) qc_buf_append(&all, copy, one);
  free(copy);
  size_t n_ids;
  double mbs = bench(t, all.data, all.len, 1000, &n_ids);
  printf("all oracle cases x%zu (%.2f MB): %.1f MB/s (%zu tokens)\n", all.len / one,
         (double)all.len / 1e6, mbs, n_ids);
  for (int a = 2; a < argc; a++) {
    char *s;
    size_t n;
    if (qc_read_file(argv[a], 1u << 30, &s, &n)) return fprintf(stderr, "cannot read %s\n", argv[a]), 1;
    double v = bench(t, s, n, 1000, &n_ids);
    printf("%s (%zu bytes): %.1f MB/s", argv[a], n, v);
    printf(" (%zu tokens)\n", n_ids);
    free(s);
  }
  qc_buf_release(&all);
  json_decref(j);
  eng__tok_free(t);
  return 0;
}
