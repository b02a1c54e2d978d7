/* edit.c — edit_file: replace an exact string in a file.
 *
 * The model names the text to replace (old_string) and its replacement. The match is
 * exact and must be unique unless replace_all is set: silently picking one of several
 * matches, or a "close enough" one, is how edits land in the wrong place. The one
 * tolerance is line endings: a file with CRLF endings matches an old_string written with
 * LF, and the replacement then gets CRLF too.
 *
 * When nothing matches, the error shows the region of the file most like old_string
 * (a best window of lines, scored by a cheap per-line similarity), with line numbers, so
 * the model can see what it got wrong — whitespace, a stale copy, a wrong file — instead
 * of guessing again. Several matches are listed by line.
 *
 * The file must be unchanged since the agent last read it (tool__check_fresh). The write
 * is atomic. The result carries the ACP diff (whole old and new text) and a unified diff
 * made by libgit2, and shows the edited lines with their numbers.
 */
#include "tools/internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

typedef struct tool__line {
  const char *s;
  size_t n;
} tool__line;

/* Split into lines (without '\n'; a final '\n' does not start an empty line). */
static tool__line *tool__split_lines(const char *s, size_t n, size_t *count) {
  size_t cap = 1;
  for (size_t i = 0; i < n; i++)
    if (s[i] == '\n') cap++;
  tool__line *v = malloc(cap * sizeof *v);
  if (!v) return NULL;
  size_t k = 0, start = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '\n') {
      v[k++] = (tool__line){s + start, i - start};
      start = i + 1;
    }
  }
  if (start < n) v[k++] = (tool__line){s + start, n - start};
  *count = k;
  return v;
}

static void tool__trim(const char **s, size_t *n) {
  while (*n && isspace((unsigned char)**s)) (*s)++, (*n)--;
  while (*n && isspace((unsigned char)(*s)[*n - 1])) (*n)--;
}

/* Similarity of two lines in [0,1]: common prefix plus common suffix of the trimmed
 * lines over the longer one. Cheap, and good at "same line, one token changed". */
static double tool__line_sim(tool__line a, tool__line b) {
  const char *x = a.s, *y = b.s;
  size_t nx = a.n, ny = b.n;
  tool__trim(&x, &nx);
  tool__trim(&y, &ny);
  if (nx == 0 && ny == 0) return 1.0;
  if (nx == 0 || ny == 0) return 0.0;
  size_t m = nx < ny ? nx : ny, p = 0, q = 0;
  while (p < m && x[p] == y[p]) p++;
  if (p == m && nx == ny) return 1.0;
  while (q < m - p && x[nx - 1 - q] == y[ny - 1 - q]) q++;
  return (double)(p + q) / (double)(nx > ny ? nx : ny);
}

/* Equal after removing all whitespace. */
static int tool__same_but_space(const char *a, size_t na, const char *b, size_t nb) {
  size_t i = 0, j = 0;
  for (;;) {
    while (i < na && isspace((unsigned char)a[i])) i++;
    while (j < nb && isspace((unsigned char)b[j])) j++;
    if (i == na || j == nb) return i == na && j == nb;
    if (a[i] != b[j]) return 0;
    i++, j++;
  }
}

static void tool__show_lines(qc_buf *b, const tool__line *L, size_t from, size_t to) {
  for (size_t i = from; i < to; i++) {
    qc_buf_printf(b, "%6zu\t", i + 1);
    size_t n = L[i].n;
    if (n && L[i].s[n - 1] == '\r') n--;
    if (n > TOOL__READ_LINE_MAX) n = TOOL__READ_LINE_MAX;
    tool__buf_put_safe(b, L[i].s, n);
    qc_buf_putc(b, '\n');
  }
}

/* The "not found" message: the closest window of lines and what differs. */
static char *tool__not_found(const char *rel, const char *content, size_t clen, const char *old,
                             size_t olen) {
  qc_buf b;
  qc_buf_init(&b, 0);
  qc_buf_printf(&b, "old_string was not found in %s (the match must be exact, including whitespace "
                    "and indentation).",
                rel);
  size_t nf = 0, no = 0;
  tool__line *F = tool__split_lines(content, clen, &nf);
  tool__line *O = tool__split_lines(old, olen, &no);
  if (!F || !O || nf == 0 || no == 0) goto done;
  /* skip blank lines at the ends of old_string: they carry no signal */
  size_t o0 = 0, o1 = no;
  while (o0 < o1 && O[o0].n == 0) o0++;
  while (o1 > o0 && O[o1 - 1].n == 0) o1--;
  if (o0 == o1) goto done;
  size_t m = o1 - o0;
  size_t win = m < nf ? m : nf;
  size_t used = win < TOOL__EDIT_FUZZY_LINES ? win : TOOL__EDIT_FUZZY_LINES;
  size_t starts = nf - win + 1;
  size_t stride = 1;
  while ((starts / stride) * used > TOOL__EDIT_FUZZY_BUDGET) stride++;
  double best = -1;
  size_t at = 0;
  for (size_t i = 0; i < starts; i += stride) {
    double score = 0;
    for (size_t j = 0; j < used; j++) score += tool__line_sim(F[i + j], O[o0 + j]);
    if (score > best) best = score, at = i;
  }
  best /= (double)used;
  if (best < 0.3) {
    qc_buf_puts(&b, " Nothing in the file resembles it; check the path, or read the file again.");
    goto done;
  }
  const char *ws = F[at].s;
  const char *we = F[at + win - 1].s + F[at + win - 1].n;
  if (tool__same_but_space(ws, (size_t)(we - ws), O[o0].s, (size_t)(O[o1 - 1].s + O[o1 - 1].n - O[o0].s)))
    qc_buf_printf(&b, " Lines %zu-%zu match it except for whitespace (indentation, tabs vs spaces or "
                      "line breaks); copy them exactly as shown:\n",
                  at + 1, at + win);
  else
    qc_buf_printf(&b, " The most similar part of the file is lines %zu-%zu (%.0f%% similar):\n", at + 1,
                  at + win, best * 100.0);
  size_t from = at > 2 ? at - 2 : 0;
  size_t to = at + win + 2 < nf ? at + win + 2 : nf;
  if (to - from > 60) to = from + 60;
  tool__show_lines(&b, F, from, to);
  qc_buf_puts(&b, "Read the file again if it may have changed, and retry with the exact text.");
done:
  free(F);
  free(O);
  return qc_buf_detach(&b, NULL);
}

static char *tool__unified(const char *rel, const char *a, size_t na, const char *b, size_t nb) {
  git_patch *patch = NULL;
  git_buf buf = {0};
  char *out = NULL;
  git_diff_options opts = GIT_DIFF_OPTIONS_INIT;
  opts.context_lines = 3;
  char *oa = strdup(rel), *ob = strdup(rel); /* libgit2 adds the a/ and b/ */
  if (oa && ob && git_patch_from_buffers(&patch, a, na, oa, b, nb, ob, &opts) == 0 &&
      git_patch_to_buf(&buf, patch) == 0) {
    /* drop the "diff --git" and "index" lines: the ---/+++ header says it all */
    const char *s = strstr(buf.ptr, "--- ");
    out = strdup(s ? s : buf.ptr);
  }
  git_buf_dispose(&buf);
  git_patch_free(patch);
  free(oa);
  free(ob);
  return out;
}

/* 1-based line of byte offset `off`, counting from (prev_off, prev_line). */
static size_t tool__line_at(const char *s, size_t off, size_t *prev_off, size_t *prev_line) {
  size_t line = *prev_line;
  for (size_t i = *prev_off; i < off; i++)
    if (s[i] == '\n') line++;
  *prev_off = off;
  *prev_line = line;
  return line;
}

/* LF -> CRLF (for matching in a CRLF file). */
static char *tool__to_crlf(const char *s, size_t n, size_t *out) {
  size_t extra = 0;
  for (size_t i = 0; i < n; i++)
    if (s[i] == '\n') extra++;
  char *t = malloc(n + extra + 1);
  if (!t) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '\n') t[k++] = '\r';
    t[k++] = s[i];
  }
  t[k] = '\0';
  *out = k;
  return t;
}

static int tool_edit_file(tool_call_ctx *ctx, const json_t *args, tool_result *res) {
  tool_ws *ws = ctx->ws;
  const char *path = tool__arg_str(args, "path", NULL);
  size_t olen = 0, nlen = 0;
  const char *old = tool__arg_strn(args, "old_string", &olen);
  const char *new = tool__arg_strn(args, "new_string", &nlen);
  int all = tool__arg_bool(args, "replace_all", 0);
  char *err = NULL, *content = NULL, *crlf_old = NULL, *crlf_new = NULL, *unified = NULL;
  size_t clen = 0;
  size_t *hits = NULL;
  qc_buf out;
  qc_buf_init(&out, TOOL__FILE_MAX);
  tool__path p;
  tool__path_init(&p);
  int rc;
  if (olen == nlen && memcmp(old, new, olen) == 0) {
    rc = tool__fail(res, TOOL_EARGS, "old_string and new_string are the same; nothing to change");
    goto out;
  }
  rc = tool__resolve(ws, path, TOOL__R_WRITE | TOOL__R_FILE, &p, &err);
  if (rc == TOOL_ENOENT) {
    free(err);
    err = qc_asprintf("%s does not exist; use write_file to create a new file", path);
    goto fail;
  }
  if (rc != TOOL_OK) goto fail;
  tool__path q;
  rc = tool__read_whole(ws, p.rel, TOOL__FILE_MAX, &content, &clen, &q, &err);
  if (rc != TOOL_OK) goto fail;
  tool__path_release(&q);
  if (tool__looks_binary(content, clen)) {
    rc = tool__fail(res, TOOL_EARGS, "%s is a binary file; edit_file changes text files only", p.rel);
    goto out;
  }
  rc = tool__check_fresh(ws, &p, content, clen, &err);
  if (rc != TOOL_OK) goto fail;

  /* find the matches (non-overlapping, left to right) */
  const char *o = old, *nw = new;
  size_t ol = olen, nl = nlen;
  size_t nhits = 0, caphits = 0;
  int used_crlf = 0;
  for (int attempt = 0; attempt < 2; attempt++) {
    nhits = 0;
    for (const char *s = content; (size_t)(s - content) + ol <= clen;) {
      const char *m = memmem(s, clen - (size_t)(s - content), o, ol);
      if (!m) break;
      if (nhits == caphits) {
        size_t nc = caphits ? caphits * 2 : 16;
        size_t *nh = realloc(hits, nc * sizeof *nh);
        if (!nh) {
          rc = tool__fail(res, TOOL_ENOMEM, "out of memory");
          goto out;
        }
        hits = nh;
        caphits = nc;
      }
      hits[nhits++] = (size_t)(m - content);
      s = m + ol;
    }
    if (nhits || attempt) break;
    /* a CRLF file and an old_string with bare LF: retry with CRLF */
    if (!memmem(content, clen, "\r\n", 2) || !memchr(old, '\n', olen) || memchr(old, '\r', olen)) break;
    crlf_old = tool__to_crlf(old, olen, &ol);
    crlf_new = tool__to_crlf(new, nlen, &nl);
    if (!crlf_old || !crlf_new) break;
    o = crlf_old;
    nw = crlf_new;
    used_crlf = 1;
  }
  if (nhits == 0) {
    rc = tool__fail_take(res, TOOL_EARGS, tool__not_found(p.rel, content, clen, old, olen));
    goto out;
  }
  size_t poff = 0, pline = 1;
  if (nhits > 1 && !all) {
    qc_buf b;
    qc_buf_init(&b, 0);
    qc_buf_printf(&b, "old_string occurs %zu times in %s, at lines ", nhits, p.rel);
    for (size_t i = 0; i < nhits && i < TOOL__EDIT_LIST_MATCHES; i++)
      qc_buf_printf(&b, "%s%zu", i ? ", " : "", tool__line_at(content, hits[i], &poff, &pline));
    if (nhits > TOOL__EDIT_LIST_MATCHES) qc_buf_puts(&b, ", …");
    qc_buf_puts(&b, ". Include more surrounding lines in old_string to make it unique, or set "
                    "replace_all to true to replace every occurrence.");
    rc = tool__fail_take(res, TOOL_EARGS, qc_buf_detach(&b, NULL));
    goto out;
  }

  /* build the new content */
  size_t prev = 0;
  for (size_t i = 0; i < nhits; i++) {
    if (qc_buf_append(&out, content + prev, hits[i] - prev) != QC_OK ||
        qc_buf_append(&out, nw, nl) != QC_OK)
      goto toobig;
    prev = hits[i] + ol;
  }
  if (qc_buf_append(&out, content + prev, clen - prev) != QC_OK) goto toobig;

  rc = tool__store(ws, &p, out.data, out.len, &err);
  if (rc != TOOL_OK) goto fail;
  char hash[65];
  qc_sha256_hex(out.data, out.len, hash);
  tool__seen_set(ws, p.rel, hash);

  /* where the changes landed, in the new file */
  size_t first_line = 0, last_line = 0;
  {
    size_t noff = 0, nline = 1;
    for (size_t i = 0; i < nhits; i++) {
      size_t at = hits[i] + i * nl - i * ol; /* offset in the new content */
      size_t l0 = tool__line_at(out.data, at, &noff, &nline);
      size_t extra = 0;
      for (size_t k = 0; k < nl; k++)
        if (nw[k] == '\n') extra++;
      if (i == 0) first_line = l0;
      last_line = l0 + extra;
    }
  }
  qc_buf msg;
  qc_buf_init(&msg, 0);
  qc_buf_printf(&msg, "Edited %s: replaced %zu occurrence%s", p.rel, nhits, nhits == 1 ? "" : "s");
  if (used_crlf) qc_buf_puts(&msg, " (matched with the file's CRLF line endings)");
  qc_buf_puts(&msg, ".\n");
  if (nhits == 1) {
    size_t nlines = 0;
    tool__line *L = tool__split_lines(out.data, out.len, &nlines);
    if (L && nlines) {
      size_t from = first_line > 4 ? first_line - 4 : 0;
      size_t to = last_line + 3 < nlines ? last_line + 3 : nlines;
      if (to > from + 40) to = from + 40;
      qc_buf_puts(&msg, "The edited region now reads:\n");
      tool__show_lines(&msg, L, from, to);
    }
    free(L);
  }
  unified = tool__unified(p.rel, content, clen, out.data, out.len);
  json_t *d = tool__data(res);
  json_object_set_new(d, "diff", json_pack("{s:s, s:o, s:o}", "path", p.abs, "oldText",
                                           tool__json_text(content, clen), "newText",
                                           tool__json_text(out.data, out.len)));
  if (unified) json_object_set_new(d, "unified", tool__json_text(unified, strlen(unified)));
  json_object_set_new(d, "replacements", json_integer((json_int_t)nhits));
  tool__add_location(res, p.abs, (long)first_line);
  rc = tool__ok_take(res, qc_buf_detach(&msg, NULL));
  tool__report_syntax(res, p.rel, content, clen, out.data, out.len);
  goto out;
toobig:
  rc = tool__fail(res, TOOL_ETOOBIG, "the edited %s would exceed %zu bytes", p.rel, (size_t)TOOL__FILE_MAX);
  goto out;
fail:
  rc = tool__fail_take(res, rc, err);
  err = NULL;
out:
  free(err);
  free(content);
  free(crlf_old);
  free(crlf_new);
  free(unified);
  free(hits);
  qc_buf_release(&out);
  tool__path_release(&p);
  return rc;
}

const tool_def tool__edit_defs[] = {
    {"edit_file",
     "Replace text in an existing file. old_string must match the file exactly — including "
     "whitespace and indentation — and occur once, unless replace_all is true (then every "
     "occurrence is replaced). Copy old_string from read_file output without the line-number "
     "prefix, and include enough surrounding lines to make it unique. Read the file first; the "
     "edit is refused if the file changed since you read it.",
     "{\"type\":\"object\",\"properties\":{"
     "\"path\":{\"type\":\"string\",\"format\":\"path\",\"description\":\"file to edit, relative to the workspace root\"},"
     "\"old_string\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":1048576,\"description\":\"the exact text to replace\"},"
     "\"new_string\":{\"type\":\"string\",\"maxLength\":8388608,\"description\":\"the text to put in its place\"},"
     "\"replace_all\":{\"type\":\"boolean\",\"description\":\"replace every occurrence (default false)\"}"
     "},\"required\":[\"path\",\"old_string\",\"new_string\"],\"additionalProperties\":false}",
     TOOL_KIND_EDIT, TOOL_F_MUTATES, tool_edit_file},
    {NULL},
};
