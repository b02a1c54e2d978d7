/* code_lang.c — the grammars qcoder knows, how a file finds its grammar, and the tag
 * queries with the text predicates the tree-sitter C library leaves to its caller.
 *
 * The table below is the only place that names a grammar: adding a language is a row
 * here, a row in cmake/grammars.txt and (when its package ships no tags.scm) a query in
 * tools/queries/. See code_internal.h for the predicate semantics.
 */
#include "tools/code_internal.h"
#include "tools/tools.h"
#include "common/common.h"

#include <pcre2.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

const TSLanguage *tree_sitter_c(void);
const TSLanguage *tree_sitter_cpp(void);
const TSLanguage *tree_sitter_python(void);
const TSLanguage *tree_sitter_javascript(void);
const TSLanguage *tree_sitter_typescript(void);
const TSLanguage *tree_sitter_tsx(void);
const TSLanguage *tree_sitter_go(void);
const TSLanguage *tree_sitter_rust(void);
const TSLanguage *tree_sitter_java(void);
const TSLanguage *tree_sitter_bash(void);
const TSLanguage *tree_sitter_json(void);

#define MAX_QUERY_PARTS 3

struct tool__lang {
  const char *name;
  const TSLanguage *(*fn)(void);
  const char *exts;        /* space-separated, with the dot */
  const char *basenames;   /* space-separated exact file names */
  const char *interps;     /* space-separated shebang interpreters (version digits stripped) */
  const char *queries[MAX_QUERY_PARTS];  /* embedded query names, concatenated in order */
};

static const struct tool__lang langs[] = {
    {"c", tree_sitter_c, ".c .h", "", "", {"c/tags.scm", "qcoder/c.scm"}},
    {"cpp", tree_sitter_cpp, ".cc .cpp .cxx .c++ .hpp .hh .hxx .h++ .ipp .tpp .inl", "", "",
     {"cpp/tags.scm", "qcoder/cpp.scm"}},
    {"python", tree_sitter_python, ".py .pyi .pyw", "SConstruct SConscript", "python pypy",
     {"python/tags.scm", "qcoder/python.scm"}},
    {"javascript", tree_sitter_javascript, ".js .mjs .cjs .jsx", "", "node nodejs",
     {"javascript/tags.scm"}},
    {"typescript", tree_sitter_typescript, ".ts .mts .cts", "", "ts-node deno bun tsx",
     {"javascript/tags.scm", "typescript/tags.scm", "qcoder/typescript.scm"}},
    {"tsx", tree_sitter_tsx, ".tsx", "", "",
     {"javascript/tags.scm", "typescript/tags.scm", "qcoder/typescript.scm"}},
    {"go", tree_sitter_go, ".go", "", "", {"go/tags.scm", "qcoder/go.scm"}},
    {"rust", tree_sitter_rust, ".rs", "", "", {"rust/tags.scm", "qcoder/rust.scm"}},
    {"java", tree_sitter_java, ".java", "", "", {"java/tags.scm", "qcoder/java.scm"}},
    {"bash", tree_sitter_bash, ".sh .bash .bats .ksh",
     ".bashrc .bash_profile .bash_login .bash_logout .profile .bash_aliases PKGBUILD",
     "sh bash dash ksh ash", {"qcoder/bash.scm"}},
    {"json", tree_sitter_json, ".json .jsonc .jsonl .geojson .webmanifest", ".babelrc .eslintrc",
     "", {"qcoder/json.scm"}},
};
#define NLANGS (sizeof langs / sizeof langs[0])

size_t tool__lang_count(void) { return NLANGS; }
const tool__lang *tool__lang_at(size_t i) { return i < NLANGS ? &langs[i] : NULL; }
const char *tool__lang_name(const tool__lang *l) { return l->name; }
const TSLanguage *tool__lang_ts(const tool__lang *l) { return l->fn(); }

const tool__lang *tool__lang_by_name(const char *name) {
  for (size_t i = 0; i < NLANGS; i++)
    if (strcmp(langs[i].name, name) == 0) return &langs[i];
  return NULL;
}

const tool__embedded *tool__embedded_find(const char *name) {
  for (const tool__embedded *e = tool__embedded_queries; e->name; e++)
    if (strcmp(e->name, name) == 0) return e;
  return NULL;
}

/* Is `word` (length n) one of the space-separated words of `list`? */
static int in_list(const char *list, const char *word, size_t n) {
  const char *p = list;
  while (*p) {
    while (*p == ' ') p++;
    const char *e = p;
    while (*e && *e != ' ') e++;
    if ((size_t)(e - p) == n && n > 0 && memcmp(p, word, n) == 0) return 1;
    p = e;
  }
  return 0;
}

/* C++ in a .h file: cheap textual signs in the first bytes. */
static int looks_like_cpp(const char *head, size_t n) {
  static const char *const signs[] = {"namespace ", "template <", "template<", "class ",
                                      "public:", "private:", "protected:", "std::",
                                      "#include <iostream>", "#include <string>",
                                      "#include <vector>", "virtual ", "nullptr"};
  if (!head) return 0;
  for (size_t i = 0; i < sizeof signs / sizeof signs[0]; i++)
    if (memmem(head, n, signs[i], strlen(signs[i]))) return 1;
  return 0;
}

/* The interpreter named by a "#!" line: "#!/usr/bin/env -S python3 -u" → "python". */
static const tool__lang *lang_from_shebang(const char *head, size_t n) {
  if (!head || n < 3 || head[0] != '#' || head[1] != '!') return NULL;
  const char *end = memchr(head, '\n', n);
  if (!end) end = head + n;
  const char *p = head + 2;
  char words[4][64];
  int nw = 0;
  while (p < end && nw < 4) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r')) p++;
    const char *s = p;
    while (p < end && *p != ' ' && *p != '\t' && *p != '\r') p++;
    size_t wl = (size_t)(p - s);
    if (wl == 0) break;
    if (wl >= sizeof words[0]) wl = sizeof words[0] - 1;
    memcpy(words[nw], s, wl);
    words[nw][wl] = 0;
    nw++;
  }
  if (nw == 0) return NULL;
  int i = 0;
  const char *prog = strrchr(words[0], '/');
  prog = prog ? prog + 1 : words[0];
  if (strcmp(prog, "env") == 0) {
    for (i = 1; i < nw && words[i][0] == '-'; i++) {}
    if (i >= nw) return NULL;
    prog = strrchr(words[i], '/');
    prog = prog ? prog + 1 : words[i];
  }
  /* strip a version suffix: python3.11 → python, bash5 → bash */
  size_t pl = strlen(prog);
  while (pl > 0 && ((prog[pl - 1] >= '0' && prog[pl - 1] <= '9') || prog[pl - 1] == '.')) pl--;
  for (size_t k = 0; k < NLANGS; k++)
    if (in_list(langs[k].interps, prog, pl)) return &langs[k];
  return NULL;
}

const tool__lang *tool__lang_detect(const char *path, const char *head, size_t head_len) {
  const char *base = path ? strrchr(path, '/') : NULL;
  base = base ? base + 1 : path;
  if (base && *base) {
    for (size_t k = 0; k < NLANGS; k++)
      if (in_list(langs[k].basenames, base, strlen(base))) return &langs[k];
    const char *dot = strrchr(base, '.');
    if (dot && dot != base) {
      char ext[16];
      size_t el = strlen(dot);
      if (el < sizeof ext) {
        for (size_t i = 0; i < el; i++)
          ext[i] = (char)((dot[i] >= 'A' && dot[i] <= 'Z') ? dot[i] + 32 : dot[i]);
        ext[el] = 0;
        /* .C and .H (upper case) are C++ by convention; everything else case-folded */
        if (strcmp(dot, ".C") == 0 || strcmp(dot, ".H") == 0) return &langs[1];
        if (strcmp(ext, ".h") == 0) return looks_like_cpp(head, head_len) ? &langs[1] : &langs[0];
        for (size_t k = 0; k < NLANGS; k++)
          if (in_list(langs[k].exts, ext, el)) return &langs[k];
      }
    }
  }
  return lang_from_shebang(head, head_len);
}

TSTree *tool__parse(const tool__lang *l, const char *src, size_t len) {
  if (len > UINT32_MAX) return NULL;
  TSParser *p = ts_parser_new();
  if (!p) return NULL;
  TSTree *t = NULL;
  if (ts_parser_set_language(p, l->fn())) {
    ts_parser_set_timeout_micros(p, TOOL__CODE_PARSE_TIMEOUT_US);
    t = ts_parser_parse_string(p, NULL, src, (uint32_t)len);
  }
  ts_parser_delete(p);
  return t;
}

/* ---- predicates ------------------------------------------------------------------ */

enum pred_op { P_EQ, P_MATCH, P_ANY_OF };

typedef struct pred {
  enum pred_op op;
  int negate;
  int any;              /* any node of a quantified capture may satisfy it */
  uint32_t cap;         /* capture id of the left operand */
  int64_t cap2;         /* eq? against a capture: its id, else -1 */
  char **strs;          /* eq?: 1 string; any-of?: n strings */
  size_t nstrs;
  pcre2_code *re;       /* match? */
} pred;

struct tool__query {
  TSQuery *q;
  uint32_t npatterns;
  pred **preds;         /* per pattern */
  size_t *npreds;
};

const TSQuery *tool__query_ts(const tool__query *q) { return q->q; }

void tool__query_free(tool__query *q) {
  if (!q) return;
  for (uint32_t i = 0; i < q->npatterns; i++) {
    for (size_t j = 0; q->preds && j < q->npreds[i]; j++) {
      pred *p = &q->preds[i][j];
      for (size_t k = 0; k < p->nstrs; k++) free(p->strs[k]);
      free(p->strs);
      if (p->re) pcre2_code_free(p->re);
    }
    if (q->preds) free(q->preds[i]);
  }
  free(q->preds);
  free(q->npreds);
  if (q->q) ts_query_delete(q->q);
  free(q);
}

static char *query_str(const TSQuery *q, uint32_t id) {
  uint32_t n;
  const char *s = ts_query_string_value_for_id(q, id, &n);
  return qc_strndup(s, n);
}

/* Parse one predicate (steps[0..n), the name first). Returns 1 = a predicate stored in
 * *out, 0 = a directive to ignore, -1 = unknown or malformed (pattern disabled). */
static int parse_pred(const TSQuery *q, const TSQueryPredicateStep *st, uint32_t n, pred *out,
                      char **err) {
  if (n < 1 || st[0].type != TSQueryPredicateStepTypeString) return -1;
  uint32_t nl;
  const char *name = ts_query_string_value_for_id(q, st[0].value_id, &nl);
  if (nl > 0 && name[nl - 1] == '!') return 0; /* #strip!, #set!, #select-adjacent!, … */
  memset(out, 0, sizeof *out);
  out->cap2 = -1;
  const char *base = name;
  if (strncmp(base, "not-", 4) == 0) out->negate = 1, base += 4;
  if (strncmp(base, "any-", 4) == 0 && strcmp(base, "any-of?") != 0) out->any = 1, base += 4;
  if (!out->negate && strncmp(base, "not-", 4) == 0) out->negate = 1, base += 4;
  if (strcmp(base, "eq?") == 0) out->op = P_EQ;
  else if (strcmp(base, "match?") == 0) out->op = P_MATCH;
  else if (strcmp(base, "any-of?") == 0) out->op = P_ANY_OF;
  else return -1;
  if (n < 3 || st[1].type != TSQueryPredicateStepTypeCapture) return -1;
  out->cap = st[1].value_id;
  if (out->op == P_EQ) {
    if (n != 3) return -1;
    if (st[2].type == TSQueryPredicateStepTypeCapture) {
      out->cap2 = st[2].value_id;
      return 1;
    }
  } else if (out->op == P_MATCH && n != 3) {
    return -1;
  }
  out->nstrs = n - 2;
  out->strs = calloc(out->nstrs, sizeof *out->strs);
  if (!out->strs) return -1;
  for (uint32_t i = 2; i < n; i++) {
    if (st[i].type != TSQueryPredicateStepTypeString) return -1;
    out->strs[i - 2] = query_str(q, st[i].value_id);
    if (!out->strs[i - 2]) return -1;
  }
  if (out->op == P_MATCH) {
    int ec;
    PCRE2_SIZE eo;
    out->re = pcre2_compile((PCRE2_SPTR)out->strs[0], PCRE2_ZERO_TERMINATED, PCRE2_UTF, &ec, &eo,
                            NULL);
    if (!out->re) {
      PCRE2_UCHAR msg[160];
      pcre2_get_error_message(ec, msg, sizeof msg);
      free(*err);
      *err = qc_asprintf("regex \"%s\" in #%.*s: %s at offset %zu", out->strs[0], (int)nl, name,
                         (const char *)msg, (size_t)eo);
      return -1;
    }
  }
  return 1;
}

tool__query *tool__query_compile(const tool__lang *l, const char *text, size_t len, char **err) {
  *err = NULL;
  if (len > UINT32_MAX) return NULL;
  tool__query *q = calloc(1, sizeof *q);
  if (!q) return NULL;
  uint32_t eoff = 0;
  TSQueryError etype = TSQueryErrorNone;
  q->q = ts_query_new(l->fn(), text, (uint32_t)len, &eoff, &etype);
  if (!q->q) {
    static const char *const kinds[] = {"none", "syntax", "node type", "field", "capture",
                                        "structure", "language"};
    const char *k = (unsigned)etype < sizeof kinds / sizeof kinds[0] ? kinds[etype] : "unknown";
    uint32_t line = 1;
    for (uint32_t i = 0; i < eoff && i < len; i++) line += text[i] == '\n';
    *err = qc_asprintf("%s query: %s error at line %u", l->name, k, line);
    goto fail;
  }
  q->npatterns = ts_query_pattern_count(q->q);
  q->preds = calloc(q->npatterns ? q->npatterns : 1, sizeof *q->preds);
  q->npreds = calloc(q->npatterns ? q->npatterns : 1, sizeof *q->npreds);
  if (!q->preds || !q->npreds) goto fail;
  for (uint32_t i = 0; i < q->npatterns; i++) {
    uint32_t nsteps;
    const TSQueryPredicateStep *st = ts_query_predicates_for_pattern(q->q, i, &nsteps);
    size_t npred = 0;
    for (uint32_t k = 0; k < nsteps; k++) npred += st[k].type == TSQueryPredicateStepTypeDone;
    if (npred == 0) continue;
    q->preds[i] = calloc(npred, sizeof(pred));
    if (!q->preds[i]) goto fail;
    uint32_t s = 0;
    for (uint32_t k = 0; k < nsteps; k++) {
      if (st[k].type != TSQueryPredicateStepTypeDone) continue;
      pred *p = &q->preds[i][q->npreds[i]];
      int r = parse_pred(q->q, st + s, k - s, p, err);
      if (r == 1) {
        q->npreds[i]++;
      } else {
        for (size_t j = 0; j < p->nstrs; j++) free(p->strs[j]);
        free(p->strs);
        if (p->re) pcre2_code_free(p->re);
        memset(p, 0, sizeof *p);
        if (r < 0) {
          if (*err) goto fail; /* a bad regex is a defect in the query text */
          uint32_t nl;
          const char *pn = ts_query_string_value_for_id(q->q, st[s].value_id, &nl);
          qc_warn("%s query: pattern %u: unknown predicate #%.*s; pattern disabled", l->name, i,
                  (int)nl, pn);
          ts_query_disable_pattern(q->q, i);
        }
      }
      s = k + 1;
    }
  }
  return q;
fail:
  tool__query_free(q);
  if (!*err) *err = qc_strndup("out of memory", 13);
  return NULL;
}

/* The nodes of capture `id` in a match (a quantified capture may have several). */
static int node_text_eq(TSNode n, const char *src, size_t len, const char *s, size_t sl) {
  uint32_t a = ts_node_start_byte(n), b = ts_node_end_byte(n);
  if (b > len || a > b) return 0;
  return (size_t)(b - a) == sl && memcmp(src + a, s, sl) == 0;
}

static int eval_one(const pred *p, TSNode n, const TSQueryMatch *m, const char *src, size_t len,
                    pcre2_match_data *md) {
  uint32_t a = ts_node_start_byte(n), b = ts_node_end_byte(n);
  if (b > len || a > b) return 0;
  switch (p->op) {
    case P_EQ:
      if (p->cap2 >= 0) {
        for (uint16_t i = 0; i < m->capture_count; i++)
          if (m->captures[i].index == (uint32_t)p->cap2) {
            TSNode o = m->captures[i].node;
            uint32_t oa = ts_node_start_byte(o), ob = ts_node_end_byte(o);
            if (ob > len || oa > ob) return 0;
            return (ob - oa) == (b - a) && memcmp(src + a, src + oa, b - a) == 0;
          }
        return 0;
      }
      return node_text_eq(n, src, len, p->strs[0], strlen(p->strs[0]));
    case P_MATCH:
      return pcre2_match(p->re, (PCRE2_SPTR)(src + a), b - a, 0, 0, md, NULL) >= 0;
    case P_ANY_OF:
      for (size_t i = 0; i < p->nstrs; i++)
        if (node_text_eq(n, src, len, p->strs[i], strlen(p->strs[i]))) return 1;
      return 0;
  }
  return 0;
}

int tool__query_match_ok(const tool__query *q, const TSQueryMatch *m, const char *src,
                         size_t len) {
  if (m->pattern_index >= q->npatterns || q->npreds[m->pattern_index] == 0) return 1;
  pcre2_match_data *md = pcre2_match_data_create(1, NULL);
  if (!md) return 0;
  int ok = 1;
  for (size_t j = 0; ok && j < q->npreds[m->pattern_index]; j++) {
    const pred *p = &q->preds[m->pattern_index][j];
    int seen = 0, any_pass = 0, all_pass = 1;
    for (uint16_t i = 0; i < m->capture_count; i++) {
      if (m->captures[i].index != p->cap) continue;
      seen++;
      int r = eval_one(p, m->captures[i].node, m, src, len, md);
      if (p->negate) r = !r;
      any_pass |= r;
      all_pass &= r;
    }
    /* a capture absent from the match (an optional or zero-quantified one) passes */
    if (seen) ok = p->any ? any_pass : all_pass;
  }
  pcre2_match_data_free(md);
  return ok;
}

/* ---- the per-language query cache ------------------------------------------------ */

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static tool__query *cache[2][NLANGS];
static char *cache_err[2][NLANGS];

/* In the definitions-only variant, patterns that capture references are disabled: an
 * outline then costs only the definition patterns (the `(type_identifier) @name
 * @reference.type` kind of pattern matches nearly every node). A pattern's text runs
 * from its start byte to the next pattern's. */
static void disable_reference_patterns(tool__query *q, const char *text, size_t len) {
  for (uint32_t i = 0; i < q->npatterns; i++) {
    uint32_t a = ts_query_start_byte_for_pattern(q->q, i);
    uint32_t b = i + 1 < q->npatterns ? ts_query_start_byte_for_pattern(q->q, i + 1) : (uint32_t)len;
    if (a < b && b <= len && memmem(text + a, b - a, "@reference.", 11) &&
        !memmem(text + a, b - a, "@definition.", 12))
      ts_query_disable_pattern(q->q, i);
  }
}

static const tool__query *lang_query(const tool__lang *l, int defs_only, char **err);

const tool__query *tool__lang_query(const tool__lang *l, char **err) { return lang_query(l, 0, err); }
const tool__query *tool__lang_query_defs(const tool__lang *l, char **err) { return lang_query(l, 1, err); }

static const tool__query *lang_query(const tool__lang *l, int v, char **err) {
  size_t k = (size_t)(l - langs);
  if (err) *err = NULL;
  pthread_mutex_lock(&cache_mu);
  if (!cache[v][k] && !cache_err[v][k]) {
    qc_buf text;
    qc_buf_init(&text, 1u << 20);
    int rc = 0;
    for (int i = 0; i < MAX_QUERY_PARTS && l->queries[i]; i++) {
      const tool__embedded *e = tool__embedded_find(l->queries[i]);
      if (!e) {
        cache_err[v][k] = qc_asprintf("%s: embedded query %s is missing", l->name, l->queries[i]);
        break;
      }
      rc |= qc_buf_append(&text, e->text, e->len);
      rc |= qc_buf_putc(&text, '\n');
    }
    if (!cache_err[v][k]) {
      char *e = NULL;
      if (rc == 0) cache[v][k] = tool__query_compile(l, text.data, text.len, &e);
      if (!cache[v][k]) cache_err[v][k] = e ? e : qc_asprintf("%s: out of memory", l->name);
      else free(e);
      if (cache[v][k] && v) disable_reference_patterns(cache[v][k], text.data, text.len);
    }
    qc_buf_release(&text);
  }
  const tool__query *q = cache[v][k];
  if (!q && err && cache_err[v][k]) *err = qc_asprintf("%s", cache_err[v][k]);
  pthread_mutex_unlock(&cache_mu);
  return q;
}
