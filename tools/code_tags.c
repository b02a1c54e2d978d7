/* code_tags.c — definitions and references of one source buffer, and its syntax errors.
 *
 * The tags query of the buffer's language runs over the parse tree; each match names an
 * identifier (@name) and what it is (@definition.KIND / @reference.KIND). Matches are
 * collected, predicates checked, duplicates folded (one tag per identifier node: a
 * definition beats a reference, an earlier pattern beats a later one), definition
 * ranges widened from declarators to whole constructs, and definitions nested by range
 * containment. The result feeds the outline, find_symbol and the repo map alike.
 */
#include "tools/code_internal.h"
#include "tools/tools.h"
#include "common/common.h"

#include <stdlib.h>
#include <string.h>

/* Kinds are interned into static storage so tags never point into a query. */
static const char *intern_kind(const char *k, size_t n) {
  static const char *const known[] = {
      "function", "method", "class", "interface", "type", "module", "macro", "constant",
      "variable", "enum", "field", "key", "impl", "call", "implementation", "struct"};
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (strlen(known[i]) == n && memcmp(known[i], k, n) == 0) return known[i];
  return "other";
}

typedef struct cand {
  TSNode name, node;
  const char *kind;
  int is_def;
  uint32_t pattern;
} cand;

static int cand_cmp(const void *a, const void *b) {
  const cand *x = a, *y = b;
  uint32_t xs = ts_node_start_byte(x->name), ys = ts_node_start_byte(y->name);
  if (xs != ys) return xs < ys ? -1 : 1;
  uint32_t xe = ts_node_end_byte(x->name), ye = ts_node_end_byte(y->name);
  if (xe != ye) return xe < ye ? -1 : 1;
  if (x->is_def != y->is_def) return x->is_def ? -1 : 1;
  return x->pattern < y->pattern ? -1 : x->pattern > y->pattern;
}

static int has_suffix(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Widen a definition node to the construct a reader means: a C/C++ declarator becomes
 * its function_definition / declaration / field_declaration (and a template around it). */
static TSNode widen(TSNode n) {
  if (!has_suffix(ts_node_type(n), "declarator")) return n;
  TSNode p = ts_node_parent(n);
  while (!ts_node_is_null(p) && has_suffix(ts_node_type(p), "declarator")) {
    n = p;
    p = ts_node_parent(p);
  }
  if (ts_node_is_null(p)) return n;
  const char *t = ts_node_type(p);
  if (strcmp(t, "function_definition") == 0 || strcmp(t, "declaration") == 0 ||
      strcmp(t, "field_declaration") == 0 || strcmp(t, "type_definition") == 0) {
    n = p;
    p = ts_node_parent(p);
    if (!ts_node_is_null(p) && strcmp(ts_node_type(p), "template_declaration") == 0) n = p;
  }
  return n;
}

/* Append src[a..b) to out[*o..max) with whitespace runs folded to one space. */
static void fold(const char *src, size_t a, size_t b, char *out, size_t *o, size_t max) {
  int space = *o > 0;
  for (size_t i = a; i < b && *o < max; i++) {
    unsigned char c = (unsigned char)src[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      space = *o > 0;
      continue;
    }
    if (space) {
      if (*o + 1 >= max) break;
      out[(*o)++] = ' ';
      space = 0;
    }
    out[(*o)++] = (char)c;
  }
}

/* The signature: from the start of the definition's first line through the end of the
 * line holding its name, whitespace runs folded to one space, cut at TOOL__CODE_SIG_MAX
 * bytes on a character boundary. When the name is TOOL__CODE_SIG_LINES or more lines
 * below the start (`typedef struct x { ... } x_t;`), the first line and the name's line
 * joined by " … ". */
static char *signature(const char *src, size_t len, uint32_t start_byte, uint32_t name_byte) {
  size_t a = start_byte;
  while (a > 0 && src[a - 1] != '\n') a--;
  size_t b = name_byte;
  while (b < len && src[b] != '\n') b++;
  size_t lines = 0;
  for (size_t i = a; i < b; i++) lines += src[i] == '\n';
  char *out = malloc(TOOL__CODE_SIG_MAX + 1);
  if (!out) return NULL;
  size_t o = 0;
  if (lines >= TOOL__CODE_SIG_LINES) {
    size_t e1 = a;
    while (e1 < len && src[e1] != '\n') e1++;
    size_t a2 = name_byte;
    while (a2 > 0 && src[a2 - 1] != '\n') a2--;
    fold(src, a, e1, out, &o, TOOL__CODE_SIG_MAX);
    if (o + 5 < TOOL__CODE_SIG_MAX) {
      memcpy(out + o, " \xe2\x80\xa6", 4); /* " …" */
      o += 4;
    }
    fold(src, a2, b, out, &o, TOOL__CODE_SIG_MAX);
  } else {
    fold(src, a, b, out, &o, TOOL__CODE_SIG_MAX);
  }
  o = qc_utf8_complete_len(out, o); /* do not end inside a UTF-8 sequence */
  out[o] = 0;
  return out;
}

static int push_tag(tool__tags *t, const tool__tag *g) {
  if (t->n == t->cap) {
    size_t nc = t->cap ? t->cap * 2 : 64;
    tool__tag *nv = realloc(t->v, nc * sizeof *nv);
    if (!nv) return -1;
    t->v = nv;
    t->cap = nc;
  }
  t->v[t->n++] = *g;
  return 0;
}

void tool__tags_release(tool__tags *t) {
  for (size_t i = 0; i < t->n; i++) {
    free(t->v[i].name);
    free(t->v[i].signature);
  }
  free(t->v);
  memset(t, 0, sizeof *t);
}

/* Order definitions for nesting: by start, the wider one first. */
static int def_cmp(const void *a, const void *b) {
  const tool__tag *x = a, *y = b;
  if (x->start_byte != y->start_byte) return x->start_byte < y->start_byte ? -1 : 1;
  if (x->end_byte != y->end_byte) return x->end_byte > y->end_byte ? -1 : 1;
  return x->name_byte < y->name_byte ? -1 : x->name_byte > y->name_byte;
}

static int ref_cmp(const void *a, const void *b) {
  const tool__tag *x = a, *y = b;
  return x->name_byte < y->name_byte ? -1 : x->name_byte > y->name_byte;
}

int tool__tags_extract(const tool__lang *l, const char *src, size_t len, int defs_only,
                       tool__tags *out, char **err) {
  memset(out, 0, sizeof *out);
  *err = NULL;
  int rc = TOOL_OK;
  TSTree *tree = NULL;
  TSQueryCursor *cur = NULL;
  cand *cands = NULL;
  size_t nc = 0, cc = 0;

  if (len > TOOL__CODE_MAX_FILE) {
    *err = qc_asprintf("file is larger than %u bytes; not parsed", TOOL__CODE_MAX_FILE);
    return TOOL_ETOOBIG;
  }
  const tool__query *q = defs_only ? tool__lang_query_defs(l, err) : tool__lang_query(l, err);
  if (!q) return TOOL_EFAILED;
  tree = tool__parse(l, src, len);
  if (!tree) {
    *err = qc_asprintf("the %s parser gave up (time limit)", tool__lang_name(l));
    rc = TOOL_ETIMEOUT;
    goto out;
  }
  TSNode root = ts_tree_root_node(tree);
  out->has_error = ts_node_has_error(root);
  const TSQuery *tq = tool__query_ts(q);
  cur = ts_query_cursor_new();
  if (!cur) goto nomem;
  ts_query_cursor_set_match_limit(cur, TOOL__CODE_MATCH_LIMIT);
  ts_query_cursor_exec(cur, tq, root);

  TSQueryMatch m;
  while (ts_query_cursor_next_match(cur, &m)) {
    TSNode name = {0}, node = {0};
    int have_name = 0, have_node = 0, is_def = 0;
    const char *kind = NULL;
    for (uint16_t i = 0; i < m.capture_count; i++) {
      uint32_t cl;
      const char *cn = ts_query_capture_name_for_id(tq, m.captures[i].index, &cl);
      if (cl == 4 && memcmp(cn, "name", 4) == 0) {
        if (!have_name) name = m.captures[i].node, have_name = 1;
      } else if (cl > 11 && memcmp(cn, "definition.", 11) == 0) {
        node = m.captures[i].node, have_node = 1, is_def = 1;
        kind = intern_kind(cn + 11, cl - 11);
      } else if (cl > 10 && memcmp(cn, "reference.", 10) == 0) {
        node = m.captures[i].node, have_node = 1, is_def = 0;
        kind = intern_kind(cn + 10, cl - 10);
      }
    }
    if (!have_name || !have_node) continue;
    if (defs_only && !is_def) continue;
    if (!tool__query_match_ok(q, &m, src, len)) continue;
    uint32_t nb = ts_node_start_byte(name), ne = ts_node_end_byte(name);
    if (ne <= nb || ne > len || ne - nb > TOOL__CODE_NAME_MAX) continue;
    if (nc == cc) {
      size_t ncap = cc ? cc * 2 : 128;
      cand *nv = realloc(cands, ncap * sizeof *nv);
      if (!nv) goto nomem;
      cands = nv;
      cc = ncap;
    }
    cands[nc++] = (cand){name, node, kind, is_def, m.pattern_index};
  }
  if (nc) qsort(cands, nc, sizeof *cands, cand_cmp);

  /* one tag per identifier node; definitions first, then references */
  for (int pass = 1; pass >= 0; pass--) {
    for (size_t i = 0; i < nc; i++) {
      if (i > 0 && ts_node_start_byte(cands[i].name) == ts_node_start_byte(cands[i - 1].name) &&
          ts_node_end_byte(cands[i].name) == ts_node_end_byte(cands[i - 1].name))
        continue; /* the first of a run is the winner */
      if (cands[i].is_def != pass) continue;
      cand *c = &cands[i];
      uint32_t nb = ts_node_start_byte(c->name), ne = ts_node_end_byte(c->name);
      TSPoint np = ts_node_start_point(c->name);
      tool__tag g = {0};
      g.kind = c->kind;
      g.is_def = c->is_def;
      g.name_byte = nb;
      g.name_line = np.row;
      g.name_col = np.column;
      g.parent = -1;
      g.name = qc_strndup(src + nb, ne - nb);
      if (!g.name) goto nomem;
      if (c->is_def) {
        TSNode w = widen(c->node);
        g.start_byte = ts_node_start_byte(w);
        g.end_byte = ts_node_end_byte(w);
        g.start_line = ts_node_start_point(w).row;
        TSPoint ep = ts_node_end_point(w);
        g.end_line = (ep.column == 0 && ep.row > g.start_line) ? ep.row - 1 : ep.row;
        if (g.start_byte > nb) g.start_byte = nb, g.start_line = np.row;
        g.signature = signature(src, len, g.start_byte, nb);
        if (!g.signature) {
          free(g.name);
          goto nomem;
        }
      } else {
        g.start_byte = nb;
        g.end_byte = ne;
        g.start_line = g.end_line = np.row;
      }
      if (push_tag(out, &g) != 0) {
        free(g.name);
        free(g.signature);
        goto nomem;
      }
      if (c->is_def) out->ndefs++;
    }
  }

  /* nesting of definitions by range containment */
  if (out->ndefs) qsort(out->v, out->ndefs, sizeof *out->v, def_cmp);
  if (out->n > out->ndefs) qsort(out->v + out->ndefs, out->n - out->ndefs, sizeof *out->v, ref_cmp);
  {
    int stack[64];
    int sp = 0;
    for (size_t i = 0; i < out->ndefs; i++) {
      tool__tag *g = &out->v[i];
      while (sp > 0 && out->v[stack[sp - 1]].end_byte <= g->start_byte) sp--;
      while (sp > 0 && out->v[stack[sp - 1]].end_byte < g->end_byte) sp--; /* overlap, not nest */
      g->parent = sp > 0 ? stack[sp - 1] : -1;
      g->depth = sp;
      if (g->parent >= 0 && strcmp(g->kind, "function") == 0) {
        const char *pk = out->v[g->parent].kind;
        if (strcmp(pk, "class") == 0 || strcmp(pk, "interface") == 0 || strcmp(pk, "impl") == 0 ||
            strcmp(pk, "struct") == 0)
          g->kind = "method";
      }
      if (sp < (int)(sizeof stack / sizeof stack[0])) stack[sp++] = (int)i;
    }
  }
  goto out;

nomem:
  rc = TOOL_ENOMEM;
  free(*err);
  *err = qc_strndup("out of memory", 13);
out:
  free(cands);
  if (cur) ts_query_cursor_delete(cur);
  if (tree) ts_tree_delete(tree);
  return rc;
}

/* ---- syntax errors --------------------------------------------------------------- */

void tool__syntax_errs_free(tool__syntax_err *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(v[i].message);
    free(v[i].context);
  }
  free(v);
}

static char *line_text(const char *src, size_t len, uint32_t byte) {
  size_t a = byte < len ? byte : len, b = a;
  while (a > 0 && src[a - 1] != '\n') a--;
  while (b < len && src[b] != '\n') b++;
  while (a < b && (src[a] == ' ' || src[a] == '\t')) a++;
  while (b > a && (src[b - 1] == ' ' || src[b - 1] == '\t' || src[b - 1] == '\r')) b--;
  if (b - a > TOOL__CODE_SIG_MAX) b = a + qc_utf8_complete_len(src + a, TOOL__CODE_SIG_MAX);
  return qc_strndup(src + a, b - a);
}

int tool__syntax_errors(const tool__lang *l, const char *src, size_t len, size_t max,
                        tool__syntax_err **out) {
  *out = NULL;
  if (len > TOOL__CODE_MAX_FILE) return TOOL_ETOOBIG;
  TSTree *tree = tool__parse(l, src, len);
  if (!tree) return TOOL_ETIMEOUT;
  tool__syntax_err *v = NULL;
  size_t n = 0, cap = 0;
  int rc = 0;
  TSNode root = ts_tree_root_node(tree);
  if (!ts_node_has_error(root)) goto done;
  TSTreeCursor c = ts_tree_cursor_new(root);
  /* pre-order walk; descend only into subtrees that hold an error; an ERROR node is
   * reported once (its inner errors are part of it) */
  for (;;) {
    TSNode n0 = ts_tree_cursor_current_node(&c);
    int is_err = ts_node_symbol(n0) == (TSSymbol)-1, is_missing = ts_node_is_missing(n0);
    if ((is_err || is_missing) && n < max) {
      if (n == cap) {
        size_t nc = cap ? cap * 2 : 8;
        tool__syntax_err *nv = realloc(v, nc * sizeof *nv);
        if (!nv) { rc = TOOL_ENOMEM; break; }
        v = nv;
        cap = nc;
      }
      TSPoint p = ts_node_start_point(n0);
      tool__syntax_err *e = &v[n];
      e->line = p.row + 1;
      e->column = p.column + 1;
      e->missing = is_missing;
      e->message = is_missing ? qc_asprintf("missing '%s'", ts_node_type(n0))
                              : qc_asprintf("syntax error");
      e->context = line_text(src, len, ts_node_start_byte(n0));
      n++;
      if (!e->message || !e->context) { rc = TOOL_ENOMEM; break; }
    }
    int descend = !is_err && !is_missing && ts_node_has_error(n0);
    if (descend && ts_tree_cursor_goto_first_child(&c)) continue;
    int moved = 0;
    while (!moved) {
      if (ts_tree_cursor_goto_next_sibling(&c)) { moved = 1; break; }
      if (!ts_tree_cursor_goto_parent(&c)) break;
    }
    if (!moved) break;
  }
  ts_tree_cursor_delete(&c);
done:
  ts_tree_delete(tree);
  if (rc < 0) {
    tool__syntax_errs_free(v, n);
    return rc;
  }
  *out = v;
  return (int)n;
}
