/* grep.c — grep: search file contents with a regular expression (PCRE2, JIT-compiled).
 *
 * Output is ripgrep's non-interactive format, which models know well: `path:line:text`
 * for a matching line, `path-line-text` for a context line, `--` between separate groups.
 * The walk honours .gitignore and never enters .git; binary files (a NUL byte in the first
 * 8 KiB) and files above TOOL__GREP_FILE_MAX are skipped and counted. Matches are capped
 * per file and in total, long lines are cut, and a cut is always said.
 *
 * The pattern is compiled in UTF mode with PCRE2_MATCH_INVALID_UTF, so files with invalid
 * UTF-8 are still searched, and with a match limit so a catastrophic pattern costs bounded
 * time per line. A pattern that does not compile gets PCRE2's message and the offset where
 * it went wrong, with a caret under the pattern.
 */
#include "tools/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Backtracking budget per line: enough for any sane pattern, small enough that a
 * pathological one returns in milliseconds. */
#define TOOL__GREP_MATCH_LIMIT 1000000
#define TOOL__GREP_DEPTH_LIMIT 10000

typedef struct tool__grep {
  tool_ws *ws;
  pcre2_code *code;
  pcre2_match_data *md;
  pcre2_match_context *mctx;
  char **globs;        /* NULL: every file */
  size_t base_len;     /* bytes of rel to strip for the glob filter */
  int context;
  qc_buf out;
  tool_result *res;
  size_t matches, files_matched, skipped_binary, skipped_big, limit_hits;
  int capped;          /* total cap reached */
  atomic_int *cancel;
} tool__grep;

static int tool__grep_wanted(tool__grep *g, const char *rel) {
  if (!g->globs) return 1;
  const char *relb = rel + g->base_len;
  const char *base = strrchr(rel, '/');
  base = base ? base + 1 : rel;
  for (char **p = g->globs; *p; p++) {
    /* like rg -g: a pattern without '/' matches the file name at any depth */
    if (strchr(*p, '/') ? tool__glob_match(*p, relb) : tool__glob_match(*p, base)) return 1;
  }
  return 0;
}

static void tool__grep_line(tool__grep *g, const char *rel, size_t lineno, char sep,
                            const char *s, size_t n) {
  if (n && s[n - 1] == '\r') n--;
  qc_buf_printf(&g->out, "%s%c%zu%c", rel, sep, lineno, sep);
  size_t show = n > TOOL__GREP_LINE_MAX ? TOOL__GREP_LINE_MAX : n;
  /* do not cut inside a UTF-8 sequence */
  while (show < n && show > 0 && ((unsigned char)s[show] & 0xC0) == 0x80) show--;
  tool__buf_put_safe(&g->out, s, show);
  if (show < n) qc_buf_printf(&g->out, " … [%zu more bytes]", n - show);
  qc_buf_putc(&g->out, '\n');
}

static void tool__grep_file(tool__grep *g, const char *rel) {
  int fd = tool__open_beneath(g->ws, rel, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, 0);
  if (fd < 0) return;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return;
  }
  if ((size_t)st.st_size > TOOL__GREP_FILE_MAX) {
    g->skipped_big++;
    close(fd);
    return;
  }
  qc_buf b;
  qc_buf_init(&b, TOOL__GREP_FILE_MAX);
  char chunk[65536];
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (qc_buf_append(&b, chunk, (size_t)n) != QC_OK) break;
  }
  close(fd);
  if (tool__looks_binary(b.data, b.len)) {
    g->skipped_binary++;
    qc_buf_release(&b);
    return;
  }
  /* line starts, then matching lines */
  size_t nlines = 0, cap = 0;
  size_t *starts = NULL;
  size_t *hits = NULL, nhits = 0;
  int more_in_file = 0;
  for (size_t i = 0; i <= b.len;) {
    if (i == b.len && (b.len == 0 || b.data[b.len - 1] == '\n')) break;
    if (nlines == cap) {
      size_t nc = cap ? cap * 2 : 256;
      size_t *ns = realloc(starts, nc * sizeof *ns);
      if (!ns) goto out;
      starts = ns;
      cap = nc;
    }
    starts[nlines++] = i;
    const char *nl = memchr(b.data + i, '\n', b.len - i);
    i = nl ? (size_t)(nl - b.data) + 1 : b.len + 1;
  }
  for (size_t l = 0; l < nlines; l++) {
    size_t s = starts[l];
    size_t e = l + 1 < nlines ? starts[l + 1] - 1 : b.len;
    if (e > s && b.data[e - 1] == '\n') e--;
    if (e < s) e = s;
    int rc = pcre2_match(g->code, (PCRE2_SPTR)(b.data + s), e - s, 0, 0, g->md, g->mctx);
    if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT) {
      g->limit_hits++;
      continue;
    }
    if (rc < 0) continue;
    if (nhits >= TOOL__GREP_PER_FILE_MAX) {
      more_in_file = 1;
      break;
    }
    if (g->matches + nhits >= TOOL__GREP_TOTAL_MAX) {
      g->capped = 1;
      break;
    }
    if (!hits) hits = malloc(TOOL__GREP_PER_FILE_MAX * sizeof *hits);
    if (!hits) goto out;
    hits[nhits++] = l;
  }
  if (nhits == 0) goto out;
  g->files_matched++;
  g->matches += nhits;
  size_t printed_to = 0; /* lines [0, printed_to) printed already */
  for (size_t k = 0; k < nhits; k++) {
    size_t l = hits[k];
    size_t from = l >= (size_t)g->context ? l - (size_t)g->context : 0;
    size_t to = l + (size_t)g->context + 1 < nlines ? l + (size_t)g->context + 1 : nlines;
    if (from < printed_to) from = printed_to;
    if (g->context && k > 0 && from > printed_to) qc_buf_puts(&g->out, "--\n");
    for (size_t x = from; x < to; x++) {
      size_t s = starts[x];
      size_t e = x + 1 < nlines ? starts[x + 1] - 1 : b.len;
      if (e > s && b.data[e - 1] == '\n') e--;
      if (e < s) e = s;
      int is_hit = 0;
      for (size_t h = k; h < nhits && hits[h] <= x; h++)
        if (hits[h] == x) is_hit = 1;
      tool__grep_line(g, rel, x + 1, is_hit ? ':' : '-', b.data + s, e - s);
    }
    printed_to = to;
    char *abs = qc_path_join(g->ws->root, rel);
    if (abs) tool__add_location(g->res, abs, (long)l + 1);
    free(abs);
  }
  if (more_in_file)
    qc_buf_printf(&g->out, "%s: [… more matches in this file not shown; search it alone or narrow the pattern]\n",
                  rel);
  if (g->context) qc_buf_puts(&g->out, "--\n");
out:
  free(starts);
  free(hits);
  qc_buf_release(&b);
}

static int tool__grep_cb(void *user, const tool__walk_entry *e) {
  tool__grep *g = user;
  if (g->capped || g->out.len > TOOL__GREP_OUTPUT_MAX) {
    g->capped = 1;
    return -1;
  }
  if (g->cancel && atomic_load(g->cancel)) return -1;
  if (!S_ISREG(e->st->st_mode)) return 0;
  if (!tool__grep_wanted(g, e->rel)) return 0;
  tool__grep_file(g, e->rel);
  return 0;
}

static int tool_grep(tool_call_ctx *ctx, const json_t *args, tool_result *res) {
  tool_ws *ws = ctx->ws;
  size_t plen = 0;
  const char *pattern = tool__arg_strn(args, "pattern", &plen);
  const char *path = tool__arg_str(args, "path", ".");
  const char *glob = tool__arg_str(args, "glob", NULL);
  int icase = tool__arg_bool(args, "ignore_case", 0);
  int context = (int)tool__arg_int(args, "context", 0);
  char *err = NULL;
  tool__grep g;
  memset(&g, 0, sizeof g);
  g.ws = ws;
  g.context = context;
  g.res = res;
  g.cancel = ctx->opts->cancel;
  qc_buf_init(&g.out, TOOL__GREP_OUTPUT_MAX * 2);
  tool__path p;
  tool__path_init(&p);
  int rc;

  int ecode = 0;
  PCRE2_SIZE eoff = 0;
  uint32_t flags = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | (icase ? PCRE2_CASELESS : 0);
  g.code = pcre2_compile((PCRE2_SPTR)pattern, plen, flags, &ecode, &eoff, NULL);
  if (!g.code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(ecode, msg, sizeof msg);
    qc_buf b;
    qc_buf_init(&b, 0);
    qc_buf_printf(&b, "invalid regular expression: %s at offset %zu\n  %s\n  %*s^\n", (char *)msg,
                  (size_t)eoff, pattern, (int)eoff, "");
    qc_buf_puts(&b, "The pattern is PCRE2 (Perl) syntax: escape literal ( ) [ ] { } . * + ? | \\ with a backslash.");
    rc = tool__fail_take(res, TOOL_EARGS, qc_buf_detach(&b, NULL));
    goto out;
  }
  pcre2_jit_compile(g.code, PCRE2_JIT_COMPLETE); /* the interpreter is the fallback */
  g.md = pcre2_match_data_create_from_pattern(g.code, NULL);
  g.mctx = pcre2_match_context_create(NULL);
  if (!g.md || !g.mctx) {
    rc = tool__fail(res, TOOL_ENOMEM, "out of memory");
    goto out;
  }
  pcre2_set_match_limit(g.mctx, TOOL__GREP_MATCH_LIMIT);
  pcre2_set_depth_limit(g.mctx, TOOL__GREP_DEPTH_LIMIT);

  if (glob && *glob) {
    g.globs = tool__glob_expand(glob, &err);
    if (!g.globs) {
      rc = TOOL_EARGS;
      goto fail;
    }
  }
  rc = tool__resolve(ws, path, 0, &p, &err);
  if (rc != TOOL_OK) goto fail;
  if (S_ISREG(p.st.st_mode)) {
    tool__grep_file(&g, p.rel);
  } else if (S_ISDIR(p.st.st_mode)) {
    g.base_len = *p.rel ? strlen(p.rel) + 1 : 0;
    tool__walk_opts o = {TOOL__WALK_DEPTH_MAX, 0, 0, ctx->opts->cancel};
    int truncated = 0;
    rc = tool__walk(ws, &p, &o, tool__grep_cb, &g, &truncated, &err);
    if (rc != TOOL_OK) goto fail;
    if (truncated) g.capped = 1;
  } else {
    rc = tool__fail(res, TOOL_EARGS, "%s is neither a file nor a directory", p.rel);
    goto out;
  }
  if (tool_ctx_cancelled(ctx)) {
    rc = tool__fail(res, TOOL_ECANCELLED, "grep was cancelled");
    goto out;
  }
  qc_buf msg;
  qc_buf_init(&msg, 0);
  qc_buf_append(&msg, g.out.data, g.out.len);
  if (g.matches == 0)
    qc_buf_printf(&msg, "No matches for /%s/ in %s.", pattern, tool__path_show(&p));
  else
    qc_buf_printf(&msg, "%zu matching line%s in %zu file%s.", g.matches, g.matches == 1 ? "" : "s",
                  g.files_matched, g.files_matched == 1 ? "" : "s");
  if (g.capped)
    qc_buf_printf(&msg, " [… stopped at the limit of %d matches or %zu KiB of output; narrow the pattern, path or glob]",
                  TOOL__GREP_TOTAL_MAX, TOOL__GREP_OUTPUT_MAX >> 10);
  if (g.skipped_binary && g.skipped_big)
    qc_buf_printf(&msg, " (skipped %zu binary file%s and %zu file%s over %zu MiB)", g.skipped_binary,
                  g.skipped_binary == 1 ? "" : "s", g.skipped_big, g.skipped_big == 1 ? "" : "s",
                  TOOL__GREP_FILE_MAX >> 20);
  else if (g.skipped_binary)
    qc_buf_printf(&msg, " (skipped %zu binary file%s)", g.skipped_binary, g.skipped_binary == 1 ? "" : "s");
  else if (g.skipped_big)
    qc_buf_printf(&msg, " (skipped %zu file%s over %zu MiB)", g.skipped_big, g.skipped_big == 1 ? "" : "s",
                  TOOL__GREP_FILE_MAX >> 20);
  if (g.limit_hits)
    qc_buf_printf(&msg, " (the pattern was too expensive on %zu line%s, which were skipped)", g.limit_hits,
                  g.limit_hits == 1 ? "" : "s");
  qc_buf_putc(&msg, '\n');
  json_object_set_new(tool__data(res), "matches", json_integer((json_int_t)g.matches));
  json_object_set_new(tool__data(res), "truncated", json_boolean(g.capped));
  rc = tool__ok_take(res, qc_buf_detach(&msg, NULL));
  goto out;
fail:
  rc = tool__fail_take(res, rc, err);
  err = NULL;
out:
  free(err);
  pcre2_match_data_free(g.md);
  pcre2_match_context_free(g.mctx);
  pcre2_code_free(g.code);
  tool__strv_free(g.globs);
  qc_buf_release(&g.out);
  tool__path_release(&p);
  return rc;
}

const tool_def tool__grep_defs[] = {
    {"grep",
     "Search file contents with a regular expression (PCRE2/Perl syntax). Prints matching lines "
     "as path:line:text, sorted by path. Searches the workspace (or `path`, a file or directory), "
     "skipping binary files and files ignored by .gitignore. Use `glob` to restrict the files "
     "(\"*.c\", \"src/**/*.{ts,tsx}\") and `context` for lines around each match.",
     "{\"type\":\"object\",\"properties\":{"
     "\"pattern\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":10000,\"description\":\"regular expression\"},"
     "\"path\":{\"type\":\"string\",\"format\":\"path\",\"description\":\"file or directory to search (default: the workspace root)\"},"
     "\"glob\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":1000,\"description\":\"only files matching this glob; without '/' it matches file names at any depth\"},"
     "\"ignore_case\":{\"type\":\"boolean\",\"description\":\"case-insensitive (default false)\"},"
     "\"context\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":10,\"description\":\"lines of context before and after each match (default 0)\"}"
     "},\"required\":[\"pattern\"],\"additionalProperties\":false}",
     TOOL_KIND_SEARCH, 0, tool_grep},
    {NULL},
};
