/* edits.c — whole-file writes as small TextEdits, applying edits, client capabilities.
 *
 * The agent writes files whole (ACP fs/write_text_file carries the new content). Sending
 * that to the editor as one "replace everything" edit would work, but it moves the
 * cursor, drops marks, folds and diagnostics all over the buffer and makes a one-line fix
 * look like a rewrite in the undo history. So the new text is diffed against the editor's
 * text: lines first (Myers' O(ND) algorithm on whole lines, line breaks included, after
 * stripping the common head and tail), then each changed run of lines is narrowed to the
 * bytes that differ — a missing ";" becomes an insertion of ";". Narrowing never splits a
 * UTF-8 character or a CRLF, so every edit boundary is a valid LSP position.
 *
 * Myers keeps one V array per step for the backtrack: step d holds 2d+1 entries, so the
 * trace costs about D^2 ints; past LSP_DIFF_MAX_STEPS the changed middle becomes one edit.
 */
#include "lsp/lsp.h"

#include <stdlib.h>
#include <string.h>

/* ---- lines ------------------------------------------------------------------------- */

typedef struct line {
  size_t off, len;  /* the line with its break */
  uint64_t hash;
} line;

static uint64_t fnv1a(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h;
}

/* Split into lines, each with its break ("\n", "\r\n" or "\r"). */
static int split_lines(const char *t, size_t len, line **out, size_t *n) {
  size_t cap = 64, k = 0;
  line *v = malloc(cap * sizeof *v);
  if (!v) return LSP_ENOMEM;
  size_t i = 0;
  while (i < len) {
    size_t s = i;
    while (i < len && t[i] != '\n' && t[i] != '\r') i++;
    if (i < len) i += (t[i] == '\r' && i + 1 < len && t[i + 1] == '\n') ? 2 : 1;
    if (k == cap) {
      line *nv = realloc(v, (cap *= 2) * sizeof *nv);
      if (!nv) {
        free(v);
        return LSP_ENOMEM;
      }
      v = nv;
    }
    v[k++] = (line){s, i - s, fnv1a(t + s, i - s)};
  }
  *out = v;
  *n = k;
  return LSP_OK;
}

static int line_eq(const char *a, const line *la, const char *b, const line *lb) {
  return la->hash == lb->hash && la->len == lb->len && memcmp(a + la->off, b + lb->off, la->len) == 0;
}

/* ---- Myers ------------------------------------------------------------------------- */

enum { OP_KEEP, OP_DEL, OP_INS };

/* Edit script for A[0..n) → B[0..m) as ops (forward order) in *ops; 1 when the script
 * would need more than LSP_DIFF_MAX_STEPS steps (then *ops is NULL), <0 on ENOMEM. */
static int myers(const char *ta, const line *A, size_t n, const char *tb, const line *B, size_t m,
                 unsigned char **ops, size_t *nops) {
  *ops = NULL;
  *nops = 0;
  long maxd = (long)(n + m);
  if (maxd > LSP_DIFF_MAX_STEPS) maxd = LSP_DIFF_MAX_STEPS;
  long off = maxd + 1;
  long *V = calloc((size_t)(2 * off + 1), sizeof *V);
  long **trace = calloc((size_t)maxd + 1, sizeof *trace);
  int rc = LSP_ENOMEM;
  long D = -1;
  if (!V || !trace) goto out;
  for (long d = 0; d <= maxd; d++) {
    for (long k = -d; k <= d; k += 2) {
      long x;
      if (k == -d || (k != d && V[off + k - 1] < V[off + k + 1])) x = V[off + k + 1];
      else x = V[off + k - 1] + 1;
      long y = x - k;
      while (x < (long)n && y < (long)m && line_eq(ta, &A[x], tb, &B[y])) x++, y++;
      V[off + k] = x;
      if (x >= (long)n && y >= (long)m) {
        D = d;
        break;
      }
    }
    trace[d] = malloc((size_t)(2 * d + 1) * sizeof(long));
    if (!trace[d]) goto out;
    memcpy(trace[d], &V[off - d], (size_t)(2 * d + 1) * sizeof(long));
    if (D >= 0) break;
  }
  if (D < 0) {
    rc = 1;
    goto out;
  }
  /* backtrack: ops in reverse, at most n + m of them */
  unsigned char *rev = malloc(n + m + 1);
  if (!rev) goto out;
  size_t r = 0;
  long x = (long)n, y = (long)m;
  for (long d = D; d > 0; d--) {
    long *pv = trace[d - 1]; /* index k → pv[k + d - 1] */
    long k = x - y, pk;
    if (k == -d || (k != d && pv[k - 1 + d - 1] < pv[k + 1 + d - 1])) pk = k + 1;
    else pk = k - 1;
    long px = pv[pk + d - 1], py = px - pk;
    while (x > px && y > py) rev[r++] = OP_KEEP, x--, y--;
    if (pk == k + 1) rev[r++] = OP_INS, y--;
    else rev[r++] = OP_DEL, x--;
  }
  while (x > 0 && y > 0) rev[r++] = OP_KEEP, x--, y--;
  for (size_t i = 0; i < r / 2; i++) {
    unsigned char t = rev[i];
    rev[i] = rev[r - 1 - i];
    rev[r - 1 - i] = t;
  }
  *ops = rev;
  *nops = r;
  rc = LSP_OK;
out:
  if (trace)
    for (long d = 0; d <= maxd; d++) free(trace[d]);
  free(trace);
  free(V);
  return rc;
}

/* ---- edits ------------------------------------------------------------------------- */

typedef struct edit_list {
  lsp_text_edit *v;
  size_t n, cap;
} edit_list;

static int is_cont(unsigned char c) { return (c & 0xC0) == 0x80; }

/* One changed run: old bytes [a0, a1) become new bytes [b0, b1). Narrow it to what
 * differs, keeping boundaries on characters and off CRLF middles, and append the edit. */
static int add_edit(edit_list *el, const char *o, size_t olen, size_t a0, size_t a1, const char *nw, size_t b0,
                    size_t b1) {
  size_t la = a1 - a0, lb = b1 - b0, pre = 0, suf = 0;
  while (pre < la && pre < lb && o[a0 + pre] == nw[b0 + pre]) pre++;
  /* back off to a character start and off the middle of a CRLF (in both texts the byte at
   * the boundary is the same, so one test serves both) */
  while (pre > 0 && ((a0 + pre < olen && is_cont((unsigned char)o[a0 + pre])) ||
                     (o[a0 + pre - 1] == '\r' && a0 + pre < olen && o[a0 + pre] == '\n')))
    pre--;
  while (suf < la - pre && suf < lb - pre && o[a1 - 1 - suf] == nw[b1 - 1 - suf]) suf++;
  while (suf > 0 && (is_cont((unsigned char)o[a1 - suf]) ||
                     (o[a1 - suf] == '\n' && a1 - suf > 0 && o[a1 - suf - 1] == '\r')))
    suf--;
  size_t s = a0 + pre, e = a1 - suf;
  size_t ns = b0 + pre, ne = b1 - suf;
  if (s == e && ns == ne) return LSP_OK;
  if (el->n == el->cap) {
    size_t nc = el->cap ? el->cap * 2 : 8;
    lsp_text_edit *nv = realloc(el->v, nc * sizeof *nv);
    if (!nv) return LSP_ENOMEM;
    el->v = nv;
    el->cap = nc;
  }
  char *t = qc_strndup(nw + ns, ne - ns);
  if (!t) return LSP_ENOMEM;
  el->v[el->n].range.start = lsp_pos_at(o, olen, s);
  el->v[el->n].range.end = lsp_pos_at(o, olen, e);
  el->v[el->n].new_text = t;
  el->n++;
  return LSP_OK;
}

void lsp_text_edits_free(lsp_text_edit *e, size_t n) {
  if (!e) return;
  for (size_t i = 0; i < n; i++) free(e[i].new_text);
  free(e);
}

int lsp_diff_edits(const char *old_text, size_t old_len, const char *new_text, size_t new_len,
                   lsp_text_edit **out, size_t *n) {
  *out = NULL;
  *n = 0;
  if (!old_text || !new_text) return LSP_EARG;
  line *A = NULL, *B = NULL;
  size_t na = 0, nb = 0, nops = 0;
  unsigned char *ops = NULL;
  edit_list el = {0};
  int rc = split_lines(old_text, old_len, &A, &na);
  if (!rc) rc = split_lines(new_text, new_len, &B, &nb);
  if (rc) goto out;
  size_t head = 0, tail = 0;
  while (head < na && head < nb && line_eq(old_text, &A[head], new_text, &B[head])) head++;
  while (tail < na - head && tail < nb - head && line_eq(old_text, &A[na - 1 - tail], new_text, &B[nb - 1 - tail]))
    tail++;
  size_t ma = na - head - tail, mb = nb - head - tail;
  /* byte offset where line i starts (i may be one past the last) */
#define OFF_A(i) ((i) < na ? A[i].off : old_len)
#define OFF_B(i) ((i) < nb ? B[i].off : new_len)
  if (ma == 0 && mb == 0) goto out;
  int mr = myers(old_text, A + head, ma, new_text, B + head, mb, &ops, &nops);
  if (mr < 0) {
    rc = mr;
    goto out;
  }
  if (mr == 1) { /* too different: one edit of the middle */
    rc = add_edit(&el, old_text, old_len, OFF_A(head), OFF_A(head + ma), new_text, OFF_B(head), OFF_B(head + mb));
    goto out;
  }
  size_t ia = head, ib = head, ha = 0, hb = 0;
  int in_hunk = 0;
  for (size_t i = 0; i <= nops && !rc; i++) {
    int op = i < nops ? ops[i] : OP_KEEP;
    if (op == OP_KEEP) {
      if (in_hunk) rc = add_edit(&el, old_text, old_len, OFF_A(ha), OFF_A(ia), new_text, OFF_B(hb), OFF_B(ib));
      in_hunk = 0;
      if (i < nops) ia++, ib++;
      continue;
    }
    if (!in_hunk) ha = ia, hb = ib, in_hunk = 1;
    if (op == OP_DEL) ia++;
    else ib++;
  }
#undef OFF_A
#undef OFF_B
out:
  free(A);
  free(B);
  free(ops);
  if (rc) {
    lsp_text_edits_free(el.v, el.n);
    return rc;
  }
  *out = el.v;
  *n = el.n;
  return LSP_OK;
}

json_t *lsp_text_edits_json(const lsp_text_edit *e, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; a && i < n; i++)
    json_array_append_new(a, json_pack("{s:o, s:s}", "range", lsp_range_json(e[i].range), "newText", e[i].new_text));
  return a;
}

int lsp_apply_edits(const char *text, size_t len, const lsp_text_edit *e, size_t n, char **out, size_t *out_len) {
  qc_buf b;
  qc_buf_init(&b, LSP_MAX_DOCUMENT_BYTES * 2);
  size_t at = 0;
  int rc = LSP_OK;
  for (size_t i = 0; i < n && !rc; i++) {
    size_t s = lsp_offset_at(text, len, e[i].range.start), t = lsp_offset_at(text, len, e[i].range.end);
    if (s < at || t < s) {
      rc = LSP_ERANGE;
      break;
    }
    if (qc_buf_append(&b, text + at, s - at) || qc_buf_puts(&b, e[i].new_text)) rc = LSP_ENOMEM;
    at = t;
  }
  if (!rc && qc_buf_append(&b, text + at, len - at)) rc = LSP_ENOMEM;
  if (rc) {
    qc_buf_release(&b);
    return rc;
  }
  *out = qc_buf_detach(&b, out_len);
  return *out ? LSP_OK : LSP_ENOMEM;
}

/* ---- client capabilities and workspace edits --------------------------------------- */

static const json_t *path_get(const json_t *j, const char *a, const char *b, const char *c) {
  j = json_object_get(j, a);
  if (j && b) j = json_object_get(j, b);
  if (j && c) j = json_object_get(j, c);
  return j;
}

void lsp_client_caps_parse(const json_t *caps, lsp_client_caps *out) {
  memset(out, 0, sizeof *out);
  if (!json_is_object(caps)) return;
  out->apply_edit = json_is_true(path_get(caps, "workspace", "applyEdit", NULL));
  out->document_changes = json_is_true(path_get(caps, "workspace", "workspaceEdit", "documentChanges"));
  out->work_done_progress = json_is_true(path_get(caps, "window", "workDoneProgress", NULL));
  out->show_message_request = json_is_object(path_get(caps, "window", "showMessage", NULL));
  out->inline_completion = json_is_object(path_get(caps, "textDocument", "inlineCompletion", NULL));
  out->code_action_literals = json_is_object(path_get(caps, "textDocument", "codeAction", "codeActionLiteralSupport"));
}

json_t *lsp_workspace_edit(const lsp_client_caps *caps, const char *uri, int64_t version, const lsp_text_edit *e,
                           size_t n) {
  json_t *edits = lsp_text_edits_json(e, n);
  if (!edits) return NULL;
  if (caps && caps->document_changes) {
    json_t *ver = version == LSP_VERSION_UNKNOWN ? json_null() : json_integer((json_int_t)version);
    return json_pack("{s:[{s:{s:s, s:o}, s:o}]}", "documentChanges", "textDocument", "uri", uri, "version", ver,
                     "edits", edits);
  }
  return json_pack("{s:{s:o}}", "changes", uri, edits);
}
