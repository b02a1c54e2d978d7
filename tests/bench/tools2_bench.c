/* tools2_bench.c — timings of the code-intelligence tools on generated inputs (not a
 * test; run by tests/bench/tools2_bench.sh on the release build).
 *
 *   tools2_bench outline LINES      outline of a generated C file of about LINES lines
 *   tools2_bench repomap FILES      cold repo map of a generated tree of FILES files, then
 *                                   an incremental update after one edit
 * Each figure is the median of several runs (wall clock).
 */
#include "tools/code_internal.h"
#include "tools/git_internal.h"
#include "tools/tools.h"
#include "common/common.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <time.h>

/* CPU time of the process in ns: on a machine shared with other builds, wall time
 * measures the neighbours too; both are reported. */
static uint64_t cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int dcmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, dcmp);
  return v[n / 2];
}

static char *gen_c(int lines, int seed) {
  qc_buf b;
  qc_buf_init(&b, (size_t)64 << 20);
  qc_buf_printf(&b, "#include <stdio.h>\n\nstruct state_%d {\n  int count;\n  double value;\n};\n\n", seed);
  int fn = 0;
  while (1) {
    size_t nl = 0;
    for (size_t i = 0; i < b.len; i++) nl += b.data[i] == '\n';
    if ((int)nl >= lines) break;
    qc_buf_printf(&b, "/* function %d */\nstatic int compute_value_%d_%d(struct state_%d *s, int x) {\n", fn, seed, fn, seed);
    qc_buf_printf(&b, "  int acc = 0;\n  for (int i = 0; i < x; i++) {\n    acc += i * s->count;\n  }\n");
    if (fn > 0) qc_buf_printf(&b, "  acc += compute_value_%d_%d(s, x - 1);\n", seed, fn - 1);
    qc_buf_printf(&b, "  printf(\"%%d\\n\", acc);\n  return acc;\n}\n\n");
    fn++;
  }
  return qc_buf_detach(&b, NULL);
}

static int bench_outline(int lines) {
  char *src = gen_c(lines, 0);
  size_t len = strlen(src), nl = 0;
  for (size_t i = 0; i < len; i++) nl += src[i] == '\n';
  const tool__lang *l = tool__lang_by_name("c");
  char *err = NULL;
  tool__lang_query_defs(l, &err); /* compile the query once, as a running daemon has */
  double t[9], tcpu[9];
  size_t ndefs = 0;
  for (int r = 0; r < 9; r++) {
    uint64_t t0 = qc_now_ns(), c0 = cpu_ns();
    tool__tags tags;
    tool__tags_extract(l, src, len, 1, &tags, &err);
    t[r] = (double)(qc_now_ns() - t0) / 1e6;
    tcpu[r] = (double)(cpu_ns() - c0) / 1e6;
    ndefs = tags.ndefs;
    tool__tags_release(&tags);
  }
  /* the whole tool call (workspace, confinement, read, parse, render) */
  char dir[] = "/tmp/qc-bench-outline-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  char *path = qc_path_join(dir, "big.c");
  FILE *f = fopen(path, "w");
  fwrite(src, 1, len, f);
  fclose(f);
  tool_ws *ws;
  tool_ws_opts o = {0};
  o.sandbox = TOOL_SANDBOX_OFF;
  tool_ws_open(dir, &o, &ws, &err);
  json_t *args = json_pack("{s:s}", "path", "big.c");
  double tc[9], tccpu[9];
  for (int r = 0; r < 9; r++) {
    tool_result res = {0};
    uint64_t t0 = qc_now_ns(), c0 = cpu_ns();
    tool_call(ws, "code_outline", args, NULL, &res);
    tc[r] = (double)(qc_now_ns() - t0) / 1e6;
    tccpu[r] = (double)(cpu_ns() - c0) / 1e6;
    tool_result_release(&res);
  }
  json_decref(args);
  tool_ws_close(ws);
  unlink(path);
  rmdir(dir);
  free(path);
  printf("outline: %zu-line C file, %zu definitions: parse+query %.1f ms (cpu %.1f), code_outline tool call %.1f ms (cpu %.1f) (medians of 9)\n",
         nl, ndefs, median(t, 9), median(tcpu, 9), median(tc, 9), median(tccpu, 9));
  free(src);
  return 0;
}

static int bench_repomap(int nfiles) {
  char dir[] = "/tmp/qc-bench-repomap-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  /* a tree of C files in 40 folders; each file defines 10 functions and calls 10 in
   * other files (a skewed choice, so some files are used far more than others) */
  unsigned seed = 12345;
  size_t bytes = 0;
  for (int i = 0; i < nfiles; i++) {
    char rel[64];
    snprintf(rel, sizeof rel, "mod%02d/file%04d.c", i % 40, i);
    char *p = qc_path_join(dir, rel);
    char *slash = strrchr(p, '/');
    *slash = 0;
    mkdir(p, 0755);
    *slash = '/';
    qc_buf b;
    qc_buf_init(&b, 1 << 20);
    qc_buf_printf(&b, "/* file %d */\n#include \"common.h\"\n\n", i);
    for (int k = 0; k < 10; k++) {
      qc_buf_printf(&b, "int module_%d_function_%d(int x) {\n  int y = x * %d;\n", i, k, k + 1);
      for (int c = 0; c < 1; c++) {
        seed = seed * 1103515245u + 12345u;
        int target = (int)((seed >> 8) % (unsigned)nfiles);
        target = target * target / nfiles; /* skew toward low-numbered files */
        qc_buf_printf(&b, "  y += module_%d_function_%d(y);\n", target, (int)((seed >> 4) % 10));
      }
      qc_buf_printf(&b, "  return y;\n}\n\n");
    }
    FILE *f = fopen(p, "w");
    fwrite(b.data, 1, b.len, f);
    fclose(f);
    bytes += b.len;
    qc_buf_release(&b);
    free(p);
  }
  tool_repomap *m;
  char *err = NULL;
  uint64_t t0 = qc_now_ns(), c0 = cpu_ns();
  if (tool_repomap_create(dir, &m, &err) != TOOL_OK) {
    fprintf(stderr, "repomap: %s\n", err);
    return 1;
  }
  uint64_t t1 = qc_now_ns();
  char *map = tool_repomap_render(m, NULL, 0, 1024, NULL, NULL);
  uint64_t t2 = qc_now_ns(), c2 = cpu_ns();
  tool_repomap_stats st;
  tool_repomap_get_stats(m, &st);
  printf("repomap cold: %d files (%.1f MB), %zu definitions, %zu references: scan+parse %.0f ms, rank+render %.0f ms, total %.0f ms (cpu %.0f)\n",
         nfiles, (double)bytes / 1e6, st.definitions, st.references, (double)(t1 - t0) / 1e6,
         (double)(t2 - t1) / 1e6, (double)(t2 - t0) / 1e6, (double)(c2 - c0) / 1e6);
  free(map);
  double tu[7], tr[7], tucpu[7], trcpu[7];
  size_t parsed = 0;
  for (int r = 0; r < 7; r++) {
    char *p = qc_path_join(dir, "mod07/file0007.c");
    FILE *f = fopen(p, "a");
    fprintf(f, "int added_function_%d(void) { return module_1_function_1(%d); }\n", r, r);
    fclose(f);
    free(p);
    uint64_t a = qc_now_ns(), ac = cpu_ns();
    tool_repomap_update(m, &err);
    uint64_t b2 = qc_now_ns(), bc = cpu_ns();
    map = tool_repomap_render(m, NULL, 0, 1024, NULL, NULL);
    uint64_t c = qc_now_ns(), cc = cpu_ns();
    tucpu[r] = (double)(bc - ac) / 1e6;
    trcpu[r] = (double)(cc - bc) / 1e6;
    free(map);
    tool_repomap_get_stats(m, &st);
    parsed = st.parsed_last;
    tu[r] = (double)(b2 - a) / 1e6;
    tr[r] = (double)(c - b2) / 1e6;
  }
  printf("repomap incremental (one file edited, %zu re-parsed): update %.1f ms (cpu %.1f), rank+render %.1f ms (cpu %.1f) (medians of 7)\n",
         parsed, median(tu, 7), median(tucpu, 7), median(tr, 7), median(trcpu, 7));
  tool_repomap_free(m);
  /* checkpoints of the same tree (a shadow repository: the tree is not a git repo) */
  char state[] = "/tmp/qc-bench-state-XXXXXX";
  if (mkdtemp(state)) {
    tool__repo r;
    if (tool__repo_open_for_checkpoints(dir, state, 1, &r, &err) == TOOL_OK) {
      char *id = NULL;
      uint64_t a = qc_now_ns();
      tool__cp_create(&r, "bench", &id, &err);
      uint64_t b2 = qc_now_ns();
      free(id);
      char *p = qc_path_join(dir, "mod07/file0007.c");
      FILE *f = fopen(p, "a");
      fprintf(f, "int one_more(void) { return 1; }\n");
      fclose(f);
      free(p);
      tool__cp_create(&r, "bench 2", &id, &err);
      uint64_t c = qc_now_ns();
      json_t *sum = NULL;
      tool__cp_restore(&r, id, &sum, &err);
      uint64_t d = qc_now_ns();
      json_decref(sum);
      free(id);
      printf("checkpoint of the %d-file tree: first %.0f ms, after one edit %.0f ms, restore (nothing to do) %.0f ms\n",
             nfiles, (double)(b2 - a) / 1e6, (double)(c - b2) / 1e6, (double)(d - c) / 1e6);
      tool__repo_close(&r);
    }
    char rm[256];
    snprintf(rm, sizeof rm, "rm -rf '%s'", state);
    if (system(rm) != 0) fprintf(stderr, "could not remove %s\n", state);
  }
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "outline") == 0) return bench_outline(atoi(argv[2]));
  if (argc == 3 && strcmp(argv[1], "repomap") == 0) return bench_repomap(atoi(argv[2]));
  fprintf(stderr, "usage: tools2_bench outline LINES | repomap FILES\n");
  return 2;
}
