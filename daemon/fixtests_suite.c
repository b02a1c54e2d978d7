/* fixtests_suite.c — suite runs as per-test statuses, failure groups, the keep rule and
 * the grading of `qcoder fix-tests`.
 *
 * A run is what tool_tests_run() read from the runner (JUnit, TAP, ctest, pytest, …),
 * keyed by "suite::name" so the same test is recognised in every run. A failure's
 * "signature" is its first lines of output with the noise that differs between two
 * instances of the same bug taken out (numbers, addresses, blanks), so tests failing for
 * one reason in one file go to the agent together, in one session, and a distinct
 * failure gets its own.
 */
#include "daemon/fixtests.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

const char *ft_status_name(ft_status s) {
  switch (s) {
  case FT_PASSED: return "passed";
  case FT_FAILED: return "failed";
  case FT_ERROR: return "error";
  case FT_SKIPPED: return "skipped";
  case FT_MISSING: return "missing";
  }
  return "missing";
}

int ft_status_failing(ft_status s) { return s == FT_FAILED || s == FT_ERROR || s == FT_MISSING; }

static ft_status parse_status(const char *s) {
  if (!s) return FT_ERROR;
  if (!strcmp(s, "passed")) return FT_PASSED;
  if (!strcmp(s, "failed")) return FT_FAILED;
  if (!strcmp(s, "skipped")) return FT_SKIPPED;
  return FT_ERROR;
}

static char *dup_or_null(const char *s) { return s && *s ? strdup(s) : NULL; }

/* Output capped to max bytes (head and tail), valid UTF-8. */
static char *cap_text(const char *s, size_t max) {
  if (!s) return NULL;
  size_t n = strlen(s);
  char *clean = qc_utf8_sanitize(s, n, &n);
  if (!clean || n <= max) return clean;
  size_t head = max / 4, tail = max - head - 32;
  size_t hl = qc_utf8_complete_len(clean, head);
  size_t ts = n - tail;
  while (ts < n && ((unsigned char)clean[ts] & 0xC0) == 0x80) ts++;
  char *out = qc_asprintf("%.*s\n[… output cut …]\n%s", (int)hl, clean, clean + ts);
  free(clean);
  return out;
}

static const ft_run *g_sort_run;
static int cmp_key(const void *a, const void *b) {
  return strcmp(g_sort_run->r[*(const size_t *)a].key, g_sort_run->r[*(const size_t *)b].key);
}

static int key_used(const ft_run *run, size_t upto, const char *key) {
  for (size_t i = 0; i < upto; i++)
    if (!strcmp(run->r[i].key, key)) return 1;
  return 0;
}

int ft_run_from_json(const json_t *results, double elapsed_s, ft_run *out) {
  memset(out, 0, sizeof *out);
  const json_t *sum = json_object_get(results, "summary");
  const json_t *tests = json_object_get(results, "tests");
  out->exit_code = (int)json_integer_value(json_object_get(sum, "exit_code"));
  out->signal = (int)json_integer_value(json_object_get(sum, "signal"));
  out->timed_out = json_is_true(json_object_get(sum, "timed_out"));
  out->format = dup_or_null(json_string_value(json_object_get(sum, "format")));
  out->output = cap_text(json_string_value(json_object_get(sum, "output")), 64 * 1024);
  out->elapsed_s = elapsed_s;
  size_t n = json_array_size(tests);
  out->per_test = n > 0;
  out->r = calloc(n ? n : 1, sizeof *out->r);
  if (!out->r) return -1;
  if (!n) {
    ft_result *t = &out->r[0];
    t->key = strdup(FT_SUITE_TEST);
    t->name = strdup(FT_SUITE_TEST);
    t->status = out->exit_code == 0 && !out->signal && !out->timed_out ? FT_PASSED : FT_FAILED;
    if (t->status != FT_PASSED) {
      const char *o = json_string_value(json_object_get(sum, "output"));
      char *c = cap_text(o ? o : "", FT_REPORT_OUTPUT_MAX);
      char how[64];
      if (out->timed_out) snprintf(how, sizeof how, "timed out");
      else if (out->signal) snprintf(how, sizeof how, "was killed by signal %d", out->signal);
      else snprintf(how, sizeof how, "exited with status %d", out->exit_code);
      t->output = qc_asprintf("the test command %s and printed no per-test results:\n%s", how, c ? c : "");
      free(c);
    }
    out->n = 1;
  } else {
    size_t i;
    json_t *t;
    json_array_foreach(tests, i, t) {
      ft_result *x = &out->r[out->n];
      const char *name = json_string_value(json_object_get(t, "name"));
      const char *suite = json_string_value(json_object_get(t, "suite"));
      x->name = strdup(name ? name : "(unnamed)");
      x->suite = dup_or_null(suite);
      x->file = dup_or_null(json_string_value(json_object_get(t, "file")));
      x->status = parse_status(json_string_value(json_object_get(t, "status")));
      x->output = cap_text(json_string_value(json_object_get(t, "output")), FT_REPORT_OUTPUT_MAX);
      x->duration_s = json_number_value(json_object_get(t, "duration_s"));
      char *key = x->suite ? qc_asprintf("%s::%s", x->suite, x->name) : strdup(x->name);
      /* the same name twice in one run: the second is "name #2", stable across runs */
      for (int k = 2; key && key_used(out, out->n, key); k++) {
        free(key);
        key = x->suite ? qc_asprintf("%s::%s #%d", x->suite, x->name, k) : qc_asprintf("%s #%d", x->name, k);
      }
      x->key = key;
      out->n++;
      if (!x->name || !x->key) return -1;
    }
  }
  out->by_key = malloc(out->n * sizeof *out->by_key);
  if (!out->by_key) return -1;
  for (size_t i = 0; i < out->n; i++) out->by_key[i] = i;
  g_sort_run = out;
  qsort(out->by_key, out->n, sizeof *out->by_key, cmp_key);
  g_sort_run = NULL;
  return 0;
}

void ft_run_release(ft_run *run) {
  if (!run) return;
  for (size_t i = 0; i < run->n; i++) {
    free(run->r[i].key);
    free(run->r[i].name);
    free(run->r[i].suite);
    free(run->r[i].file);
    free(run->r[i].output);
  }
  free(run->r);
  free(run->by_key);
  free(run->format);
  free(run->output);
  memset(run, 0, sizeof *run);
}

const ft_result *ft_run_find(const ft_run *run, const char *key) {
  size_t lo = 0, hi = run->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(run->r[run->by_key[mid]].key, key);
    if (c == 0) return &run->r[run->by_key[mid]];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

ft_status ft_run_status(const ft_run *run, const char *key) {
  const ft_result *t = ft_run_find(run, key);
  if (t) return t->status;
  if (!strcmp(key, FT_SUITE_TEST) && run->per_test) return FT_PASSED;
  return FT_MISSING;
}

/* ---- files and signatures ----------------------------------------------------------------- */

static int path_char(int c) { return isalnum(c) || c == '_' || c == '.' || c == '/' || c == '-' || c == '+'; }

/* The first "path/file.ext:LINE" in text. */
static char *file_in_text(const char *s) {
  if (!s) return NULL;
  for (const char *p = s; *p; p++) {
    if (*p != ':' || !isdigit((unsigned char)p[1])) continue;
    const char *b = p;
    while (b > s && path_char((unsigned char)b[-1])) b--;
    size_t n = (size_t)(p - b);
    if (n < 3) continue;
    const char *dot = NULL;
    for (const char *q = b; q < p; q++)
      if (*q == '.') dot = q;
    if (!dot || dot == b || p - dot < 2 || p - dot > 6) continue;
    int ext_ok = 1;
    for (const char *q = dot + 1; q < p; q++)
      if (!isalnum((unsigned char)*q)) ext_ok = 0;
    if (!ext_ok) continue;
    while (n > 2 && b[0] == '.' && b[1] == '/') b += 2, n -= 2;
    return qc_strndup(b, n);
  }
  return NULL;
}

char *ft_test_file(const ft_result *t) {
  if (t->file && *t->file) return strdup(t->file);
  const char *cc = t->name ? strstr(t->name, "::") : NULL;
  if (cc && cc > t->name) {
    char *f = qc_strndup(t->name, (size_t)(cc - t->name));
    if (f && (strchr(f, '.') || strchr(f, '/'))) return f;
    free(f);
  }
  char *f = file_in_text(t->output);
  if (f) return f;
  return t->suite ? strdup(t->suite) : NULL;
}

char *ft_signature(const char *output) {
  qc_buf b;
  qc_buf_init(&b, 0);
  int lines = 0;
  const char *p = output ? output : "";
  while (*p && lines < FT_SIGNATURE_LINES) {
    const char *e = strchr(p, '\n');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    const char *s = p;
    const char *end = p + n;
    p = e ? e + 1 : p + n;
    while (s < end && (isspace((unsigned char)*s) || *s == '#')) s++;
    while (end > s && isspace((unsigned char)end[-1])) end--;
    if (s == end || (end - s == 3 && (!strncmp(s, "---", 3) || !strncmp(s, "...", 3)))) continue;
    if (lines++) qc_buf_puts(&b, " | ");
    int space = 0;
    for (const char *q = s; q < end; q++) {
      unsigned char c = (unsigned char)*q;
      if (c == '0' && q + 2 < end && (q[1] == 'x' || q[1] == 'X') && isxdigit((unsigned char)q[2])) {
        qc_buf_puts(&b, "0xH");
        q += 2;
        while (q + 1 < end && isxdigit((unsigned char)q[1])) q++;
        space = 0;
      } else if (isdigit(c)) {
        qc_buf_putc(&b, 'N');
        while (q + 1 < end && isdigit((unsigned char)q[1])) q++;
        space = 0;
      } else if (isspace(c)) {
        if (!space) qc_buf_putc(&b, ' ');
        space = 1;
      } else {
        qc_buf_putc(&b, (char)c);
        space = 0;
      }
    }
  }
  if (b.len > FT_SIGNATURE_MAX) qc_buf_truncate(&b, qc_utf8_complete_len(b.data, FT_SIGNATURE_MAX));
  return qc_buf_detach(&b, NULL);
}

/* ---- groups ---------------------------------------------------------------------------------- */

static int same(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

int ft_group_failures(const ft_run *run, int (*only)(void *user, const char *key), void *user, ft_group_key **groups,
                      size_t *n_groups) {
  *groups = NULL;
  *n_groups = 0;
  ft_group_key *g = calloc(run->n ? run->n : 1, sizeof *g);
  if (!g) return -1;
  size_t ng = 0;
  for (size_t i = 0; i < run->n; i++) {
    const ft_result *t = &run->r[i];
    if (!ft_status_failing(t->status)) continue;
    if (only && !only(user, t->key)) continue;
    char *file = ft_test_file(t);
    char *sig = ft_signature(t->output);
    size_t k;
    for (k = 0; k < ng; k++)
      if (same(g[k].file, file) && same(g[k].signature, sig)) break;
    if (k == ng) {
      g[ng].file = file;
      g[ng].signature = sig;
      g[ng].tests = malloc(run->n * sizeof(size_t));
      if (!g[ng].tests) {
        ft_group_keys_free(g, ng + 1);
        return -1;
      }
      ng++;
    } else {
      free(file);
      free(sig);
    }
    g[k].tests[g[k].n++] = i;
  }
  *groups = g;
  *n_groups = ng;
  return 0;
}

void ft_group_keys_free(ft_group_key *g, size_t n) {
  if (!g) return;
  for (size_t i = 0; i < n; i++) {
    free(g[i].file);
    free(g[i].signature);
    free(g[i].tests);
  }
  free(g);
}

/* ---- the keep rule and grading --------------------------------------------------------------- */

int ft_decide(const char *const *keys, size_t n_keys, ft_status_fn before, void *user, const ft_run *after,
              json_t **fixed, json_t **broke) {
  *fixed = json_array();
  *broke = json_array();
  for (size_t i = 0; i < n_keys; i++) {
    ft_status b = before(user, keys[i]);
    ft_status a = ft_run_status(after, keys[i]);
    if (ft_status_failing(b) && a == FT_PASSED) json_array_append_new(*fixed, json_string(keys[i]));
    else if (b == FT_PASSED && ft_status_failing(a)) json_array_append_new(*broke, json_string(keys[i]));
  }
  return json_array_size(*fixed) > 0 && json_array_size(*broke) == 0;
}

const char *ft_resolution(size_t f2p_total, size_t f2p_passing, size_t p2p_total, size_t p2p_holding) {
  int p2p_ok = p2p_holding == p2p_total;
  if (f2p_passing == f2p_total && p2p_ok) return "FULL";
  if (f2p_passing > 0 && p2p_ok) return "PARTIAL";
  return "NO";
}
