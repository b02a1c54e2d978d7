/* fs.c — read_file, write_file, list_dir and glob.
 *
 * read_file shows lines the way `cat -n` does (number, tab, text), so the model can quote
 * line numbers back; it never shows more than TOOL__READ_LINES_DEFAULT lines or
 * TOOL__READ_BYTES_MAX bytes at once and says where it stopped and how to go on. Text is
 * made safe to show: invalid UTF-8 and control characters become U+FFFD, binary files
 * are described, not dumped. Reading a whole file (up to TOOL__FILE_MAX) records its
 * content hash in the workspace: edit_file and write_file refuse to replace a file whose
 * content is not what the agent last saw.
 *
 * write_file creates missing parent directories, replaces atomically and keeps the mode
 * of the file it replaces. Over an existing file it applies the same read-first rule as
 * edit_file (tool__check_fresh).
 */
#include "tools/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- freshness ------------------------------------------------------------------- */

int tool__check_fresh(tool_ws *ws, const tool__path *p, const char *data, size_t len, char **err) {
  const char *seen = tool__seen_get(ws, p->rel);
  if (!seen) {
    if (ws->edit_without_read) return TOOL_OK;
    *err = qc_asprintf("%s exists and you have not read it in this session; call read_file on %s "
                       "first, then retry",
                       p->rel, p->rel);
    return TOOL_ESTALE;
  }
  char now[65];
  qc_sha256_hex(data, len, now);
  if (strcmp(now, seen) != 0) {
    *err = qc_asprintf("%s changed on disk since you last read it (edited by the user, a formatter "
                       "or a command); call read_file on it again, then retry",
                       p->rel);
    return TOOL_ESTALE;
  }
  return TOOL_OK;
}

/* ---- read_file ------------------------------------------------------------------- */

typedef struct tool__lines {
  qc_buf out;
  long start, limit;      /* first line shown (1-based), lines to show */
  long line;              /* number of the line being read (1-based) */
  long shown;
  qc_buf cur;             /* the current line, up to TOOL__READ_LINE_MAX bytes */
  size_t cur_len;         /* its full length */
  int stop;               /* 1: line limit, 2: byte limit */
  int crlf;
  int ended_with_newline;
} tool__lines;

static void tool__lines_emit(tool__lines *L) {
  if (L->stop || L->line < L->start) return;
  if (L->shown >= L->limit) {
    L->stop = 1;
    return;
  }
  const char *s = L->cur.data;
  size_t n = L->cur.len;
  if (n && s[n - 1] == '\r' && L->cur_len == n) {
    n--;
    L->crlf = 1;
  }
  size_t before = L->out.len;
  qc_buf_printf(&L->out, "%6ld\t", L->line);
  tool__buf_put_safe(&L->out, s, n);
  if (L->cur_len > L->cur.len)
    qc_buf_printf(&L->out, " … [line truncated: %zu bytes in all]", L->cur_len);
  qc_buf_putc(&L->out, '\n');
  if (L->out.len > TOOL__READ_BYTES_MAX) {
    qc_buf_truncate(&L->out, before);
    L->stop = 2;
    return;
  }
  L->shown++;
}

/* Feed bytes; lines before `start` are only counted. */
static void tool__lines_feed(tool__lines *L, const char *s, size_t n) {
  while (n > 0 && !L->stop) {
    const char *nl = memchr(s, '\n', n);
    size_t take = nl ? (size_t)(nl - s) : n;
    if (L->line >= L->start) {
      size_t room = TOOL__READ_LINE_MAX > L->cur.len ? TOOL__READ_LINE_MAX - L->cur.len : 0;
      qc_buf_append(&L->cur, s, take < room ? take : room);
    }
    L->cur_len += take;
    if (!nl) {
      L->ended_with_newline = 0;
      return;
    }
    tool__lines_emit(L);
    if (L->stop) return;
    qc_buf_reset(&L->cur);
    L->cur_len = 0;
    L->line++;
    L->ended_with_newline = 1;
    s = nl + 1;
    n -= take + 1;
  }
}

static int tool_read_file(tool_call_ctx *ctx, const json_t *args, tool_result *res) {
  tool_ws *ws = ctx->ws;
  const char *path = tool__arg_str(args, "path", NULL);
  long offset = (long)tool__arg_int(args, "offset", 1);
  long limit = (long)tool__arg_int(args, "limit", TOOL__READ_LINES_DEFAULT);
  if (offset < 1) offset = 1;
  char *err = NULL, *data = NULL;
  size_t len = 0;
  tool__path p;
  tool__lines L;
  memset(&L, 0, sizeof L);
  qc_buf_init(&L.out, TOOL__READ_BYTES_MAX * 2);
  qc_buf_init(&L.cur, TOOL__READ_LINE_MAX + 1);
  L.start = offset;
  L.limit = limit;
  L.line = 1;
  int rc = tool__resolve(ws, path, TOOL__R_FILE, &p, &err);
  if (rc != TOOL_OK) goto fail;

  int whole = 0;          /* the whole file was read (its hash recorded, total known) */
  long total = -1;
  off_t size = p.st.st_size;
  if ((ws->has_io && ws->io.read_text_file) || (size_t)size <= TOOL__FILE_MAX) {
    tool__path_release(&p);
    rc = tool__read_whole(ws, path, TOOL__FILE_MAX, &data, &len, &p, &err);
    if (rc != TOOL_OK) goto fail;
    whole = 1;
    size = (off_t)len;
    if (tool__looks_binary(data, len)) {
      rc = tool__ok(res, "%s is a binary file (%zu bytes); its content is not shown.", p.rel, len);
      json_object_set_new(tool__data(res), "binary", json_true());
      tool__add_location(res, p.abs, 0);
      goto out;
    }
    char hash[65];
    qc_sha256_hex(data, len, hash);
    tool__seen_set(ws, p.rel, hash);
    tool__lines_feed(&L, data, len);
    /* count the rest for the total */
    long lines = 0;
    for (const char *s = data; (s = memchr(s, '\n', len - (size_t)(s - data))); s++) lines++;
    total = lines + (len > 0 && data[len - 1] != '\n');
  } else {
    int fd = tool__open_read(ws, &p, &err);
    if (fd < 0) {
      rc = fd;
      goto fail;
    }
    char chunk[65536];
    int first = 1;
    for (;;) {
      ssize_t n = read(fd, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      if (first && tool__looks_binary(chunk, (size_t)n)) {
        close(fd);
        rc = tool__ok(res, "%s is a binary file (%lld bytes); its content is not shown.", p.rel,
                      (long long)size);
        json_object_set_new(tool__data(res), "binary", json_true());
        tool__add_location(res, p.abs, 0);
        goto out;
      }
      first = 0;
      tool__lines_feed(&L, chunk, (size_t)n);
      if (L.stop) break;
    }
    close(fd);
  }
  /* a last line without a newline */
  if (!L.stop && L.cur_len > 0) tool__lines_emit(&L);

  if (size == 0) {
    rc = tool__ok(res, "%s is empty (0 bytes).", p.rel);
    tool__add_location(res, p.abs, 0);
    goto out;
  }
  if (L.shown == 0 && !L.stop) {
    rc = tool__fail(res, TOOL_EARGS, "offset %ld is past the end of %s, which has %ld lines", offset,
                    p.rel, total >= 0 ? total : L.line - 1);
    goto out;
  }
  long last = offset + L.shown - 1;
  qc_buf msg;
  qc_buf_init(&msg, TOOL__READ_BYTES_MAX * 2 + 1024);
  if (L.crlf) qc_buf_puts(&msg, "(this file has CRLF line endings; they are not shown)\n");
  qc_buf_append(&msg, L.out.data, L.out.len);
  int more = whole ? last < total : (L.stop != 0);
  if (more) {
    const char *why = L.stop == 2 ? "the output size limit" : "the line limit";
    if (whole)
      qc_buf_printf(&msg, "[… stopped at %s: showing lines %ld-%ld of %ld; call read_file with offset=%ld to continue]\n",
                    why, offset, last, total, last + 1);
    else
      qc_buf_printf(&msg, "[… stopped at %s: showing lines %ld-%ld of a %lld-byte file; call read_file with offset=%ld to continue]\n",
                    why, offset, last, (long long)size, last + 1);
  }
  json_t *d = tool__data(res);
  json_object_set_new(d, "path", json_string(p.abs));
  json_object_set_new(d, "start_line", json_integer(offset));
  json_object_set_new(d, "end_line", json_integer(last));
  if (total >= 0) json_object_set_new(d, "total_lines", json_integer(total));
  json_object_set_new(d, "truncated", json_boolean(more));
  tool__add_location(res, p.abs, offset);
  rc = tool__ok_take(res, qc_buf_detach(&msg, NULL));
  goto out;
fail:
  rc = tool__fail_take(res, rc, err);
  err = NULL;
out:
  free(err);
  free(data);
  qc_buf_release(&L.out);
  qc_buf_release(&L.cur);
  tool__path_release(&p);
  return rc;
}

/* ---- write_file ------------------------------------------------------------------ */

static long tool__count_lines(const char *s, size_t n) {
  long lines = 0;
  for (size_t i = 0; i < n; i++)
    if (s[i] == '\n') lines++;
  return lines + (n > 0 && s[n - 1] != '\n');
}

static int tool_write_file(tool_call_ctx *ctx, const json_t *args, tool_result *res) {
  tool_ws *ws = ctx->ws;
  const char *path = tool__arg_str(args, "path", NULL);
  size_t clen = 0;
  const char *content = tool__arg_strn(args, "content", &clen);
  char *err = NULL, *old = NULL;
  size_t olen = 0;
  tool__path p;
  int rc = tool__resolve(ws, path, TOOL__R_WRITE | TOOL__R_MKDIRS | TOOL__R_FILE, &p, &err);
  if (rc != TOOL_OK) goto fail;
  int existed = p.exists;
  if (existed) {
    tool__path q;
    rc = tool__read_whole(ws, p.rel, TOOL__FILE_MAX, &old, &olen, &q, &err);
    if (rc != TOOL_OK) goto fail;
    tool__path_release(&q);
    rc = tool__check_fresh(ws, &p, old, olen, &err);
    if (rc != TOOL_OK) goto fail;
  }
  if (existed && olen == clen && memcmp(old, content, clen) == 0) {
    rc = tool__ok(res, "%s already has this content; nothing was written.", p.rel);
  } else {
    rc = tool__store(ws, &p, content, clen, &err);
    if (rc != TOOL_OK) goto fail;
    rc = tool__ok(res, "%s %s (%zu bytes, %ld lines).", existed ? "Wrote" : "Created", p.rel, clen,
                  tool__count_lines(content, clen));
    tool__report_syntax(res, p.rel, existed ? old : NULL, olen, content, clen);
  }
  char hash[65];
  qc_sha256_hex(content, clen, hash);
  tool__seen_set(ws, p.rel, hash);
  json_t *diff = json_pack("{s:s, s:o, s:s%}", "path", p.abs, "oldText",
                           existed ? tool__json_text(old, olen) : json_null(), "newText", content,
                           clen);
  if (diff) json_object_set_new(tool__data(res), "diff", diff);
  tool__add_location(res, p.abs, 0);
  goto out;
fail:
  rc = tool__fail_take(res, rc, err);
  err = NULL;
out:
  free(err);
  free(old);
  tool__path_release(&p);
  return rc;
}

/* ---- list_dir -------------------------------------------------------------------- */

typedef struct tool__list {
  qc_buf out;
  size_t entries;
  int capped;
  size_t base_len;  /* length of the start's rel + 1, to show names relative to it */
} tool__list;

static int tool__list_cb(void *user, const tool__walk_entry *e) {
  tool__list *L = user;
  if (L->entries >= TOOL__LIST_ENTRIES_MAX) {
    L->capped = 1;
    return -1;
  }
  L->entries++;
  for (int i = 1; i < e->depth; i++) qc_buf_puts(&L->out, "  ");
  tool__buf_put_safe(&L->out, e->name, strlen(e->name));
  if (S_ISDIR(e->st->st_mode)) {
    qc_buf_putc(&L->out, '/');
    if (e->ignored) qc_buf_puts(&L->out, " (ignored by .gitignore; not listed)");
  } else if (S_ISLNK(e->st->st_mode)) {
    char t[TOOL__PATH_MAX + 1];
    ssize_t n = readlinkat(e->dirfd, e->name, t, TOOL__PATH_MAX);
    qc_buf_puts(&L->out, " -> ");
    if (n > 0) tool__buf_put_safe(&L->out, t, (size_t)n);
  } else if (!S_ISREG(e->st->st_mode)) {
    qc_buf_puts(&L->out, " (special file)");
  }
  qc_buf_putc(&L->out, '\n');
  return 0;
}

static int tool_list_dir(tool_call_ctx *ctx, const json_t *args, tool_result *res) {
  tool_ws *ws = ctx->ws;
  const char *path = tool__arg_str(args, "path", ".");
  int depth = (int)tool__arg_int(args, "depth", TOOL__LIST_DEPTH_DEFAULT);
  char *err = NULL;
  tool__path p;
  tool__list L;
  memset(&L, 0, sizeof L);
  qc_buf_init(&L.out, 0);
  int rc = tool__resolve(ws, path, TOOL__R_DIR, &p, &err);
  if (rc != TOOL_OK) goto fail;
  tool__walk_opts o = {depth, 0, 0, ctx->opts->cancel, 1};
  int truncated = 0;
  rc = tool__walk(ws, &p, &o, tool__list_cb, &L, &truncated, &err);
  if (rc != TOOL_OK) goto fail;
  qc_buf msg;
  qc_buf_init(&msg, 0);
  qc_buf_printf(&msg, "%s/\n", tool__path_show(&p));
  if (L.entries == 0) qc_buf_puts(&msg, "  (empty)\n");
  const char *s = L.out.data;
  /* indent the tree one level under the directory's own line */
  while (*s) {
    const char *nl = strchr(s, '\n');
    size_t n = nl ? (size_t)(nl - s) + 1 : strlen(s);
    qc_buf_puts(&msg, "  ");
    qc_buf_append(&msg, s, n);
    s += n;
  }
  if (L.capped || truncated)
    qc_buf_printf(&msg, "[… listing stopped after %zu entries; list a subdirectory or use a smaller depth]\n",
                  L.entries);
  json_object_set_new(tool__data(res), "truncated", json_boolean(L.capped || truncated));
  json_object_set_new(tool__data(res), "entries", json_integer((json_int_t)L.entries));
  tool__add_location(res, p.abs, 0);
  rc = tool__ok_take(res, qc_buf_detach(&msg, NULL));
  goto out;
fail:
  rc = tool__fail_take(res, rc, err);
  err = NULL;
out:
  free(err);
  qc_buf_release(&L.out);
  tool__path_release(&p);
  return rc;
}

/* ---- glob ------------------------------------------------------------------------ */

typedef struct tool__globber {
  char **patterns;
  size_t base_len;   /* strip this many bytes of rel to get the path relative to the base */
  char **hits;
  size_t n, cap;
  int capped;
} tool__globber;

static int tool__glob_cb(void *user, const tool__walk_entry *e) {
  tool__globber *g = user;
  if (S_ISDIR(e->st->st_mode)) return 0;
  const char *relb = e->rel + g->base_len;
  for (char **p = g->patterns; *p; p++) {
    if (!tool__glob_match(*p, relb)) continue;
    if (g->n >= TOOL__GLOB_RESULTS_MAX) {
      g->capped = 1;
      return -1;
    }
    if (g->n == g->cap) {
      size_t nc = g->cap ? g->cap * 2 : 64;
      char **nh = realloc(g->hits, nc * sizeof *nh);
      if (!nh) return -1;
      g->hits = nh;
      g->cap = nc;
    }
    g->hits[g->n] = strdup(e->rel);
    if (g->hits[g->n]) g->n++;
    break;
  }
  return 0;
}

static int tool__cmp_strp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int tool_glob(tool_call_ctx *ctx, const json_t *args, tool_result *res) {
  tool_ws *ws = ctx->ws;
  const char *pattern = tool__arg_str(args, "pattern", NULL);
  const char *path = tool__arg_str(args, "path", ".");
  char *err = NULL;
  tool__path p;
  tool__path_init(&p);
  tool__globber g;
  memset(&g, 0, sizeof g);
  int rc;
  /* an absolute pattern must lie under the workspace and is taken relative to it */
  if (pattern[0] == '/') {
    size_t rl = ws->root_len;
    if (strncmp(pattern, ws->root, rl) == 0 && pattern[rl] == '/') {
      pattern += rl + 1;
      path = ".";
    } else {
      rc = tool__fail(res, TOOL_EESCAPE, "pattern '%s' is outside the workspace %s; use a pattern relative to it",
                      pattern, ws->root);
      goto out;
    }
  }
  for (const char *s = pattern; *s;) {
    const char *e = strchr(s, '/');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    if (n == 2 && strncmp(s, "..", 2) == 0) {
      rc = tool__fail(res, TOOL_EESCAPE, "pattern '%s' uses '..'; patterns match beneath the search directory only",
                      pattern);
      goto out;
    }
    s += n;
    while (*s == '/') s++;
  }
  rc = tool__resolve(ws, path, TOOL__R_DIR, &p, &err);
  if (rc != TOOL_OK) goto fail;
  g.patterns = tool__glob_expand(pattern, &err);
  if (!g.patterns) {
    rc = TOOL_EARGS;
    goto fail;
  }
  /* without `**` a pattern cannot match deeper than its own number of components */
  int depth = 0;
  for (char **q = g.patterns; *q; q++) {
    if (strstr(*q, "**")) {
      depth = TOOL__WALK_DEPTH_MAX;
      break;
    }
    int c = 1;
    for (const char *s = *q; *s; s++)
      if (*s == '/' && s[1] && s[1] != '/') c++;
    if (c > depth) depth = c;
  }
  g.base_len = *p.rel ? strlen(p.rel) + 1 : 0;
  tool__walk_opts o = {depth, 0, 0, ctx->opts->cancel};
  int truncated = 0;
  rc = tool__walk(ws, &p, &o, tool__glob_cb, &g, &truncated, &err);
  if (rc != TOOL_OK) goto fail;
  if (g.n > 1) qsort(g.hits, g.n, sizeof *g.hits, tool__cmp_strp);
  qc_buf msg;
  qc_buf_init(&msg, 0);
  json_t *files = json_array();
  for (size_t i = 0; i < g.n; i++) {
    tool__buf_put_safe(&msg, g.hits[i], strlen(g.hits[i]));
    qc_buf_putc(&msg, '\n');
    json_array_append_new(files, json_string(g.hits[i]));
  }
  if (g.n == 0) qc_buf_printf(&msg, "No files match '%s' under %s.\n", pattern, tool__path_show(&p));
  if (g.capped)
    qc_buf_printf(&msg, "[… stopped at %d files; use a narrower pattern or path]\n", TOOL__GLOB_RESULTS_MAX);
  else if (truncated)
    qc_buf_printf(&msg, "[… the search stopped after visiting %d entries; use a narrower path]\n",
                  TOOL__WALK_VISIT_MAX);
  json_object_set_new(tool__data(res), "files", files);
  json_object_set_new(tool__data(res), "truncated", json_boolean(g.capped || truncated));
  rc = tool__ok_take(res, qc_buf_detach(&msg, NULL));
  goto out;
fail:
  rc = tool__fail_take(res, rc, err);
  err = NULL;
out:
  free(err);
  for (size_t i = 0; i < g.n; i++) free(g.hits[i]);
  free(g.hits);
  tool__strv_free(g.patterns);
  tool__path_release(&p);
  return rc;
}

/* ---- the list -------------------------------------------------------------------- */

const tool_def tool__fs_defs[] = {
    {"read_file",
     "Read a text file of the workspace. Lines are shown numbered like `cat -n` (number, tab, "
     "text). At most 2000 lines are shown per call; use offset (first line, 1-based) and limit "
     "(number of lines) to read a long file in parts. Read a file before you edit or overwrite it.",
     "{\"type\":\"object\",\"properties\":{"
     "\"path\":{\"type\":\"string\",\"format\":\"path\",\"description\":\"file path, relative to the workspace root\"},"
     "\"offset\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":100000000,\"description\":\"first line to show, 1-based (default 1)\"},"
     "\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":2000,\"description\":\"number of lines to show (default and maximum 2000)\"}"
     "},\"required\":[\"path\"],\"additionalProperties\":false}",
     TOOL_KIND_READ, 0, tool_read_file},
    {"write_file",
     "Create a file or replace its whole content. Missing parent directories are created. To "
     "change part of an existing file prefer edit_file; to overwrite an existing file, read it "
     "first. The write is atomic and keeps the file's permissions.",
     "{\"type\":\"object\",\"properties\":{"
     "\"path\":{\"type\":\"string\",\"format\":\"path\",\"description\":\"file path, relative to the workspace root\"},"
     "\"content\":{\"type\":\"string\",\"maxLength\":8388608,\"description\":\"the complete new content of the file\"}"
     "},\"required\":[\"path\",\"content\"],\"additionalProperties\":false}",
     TOOL_KIND_EDIT, TOOL_F_MUTATES, tool_write_file},
    {"list_dir",
     "List a directory of the workspace as an indented tree (directories end with '/', symbolic "
     "links show their target). Files ignored by .gitignore are left out (ignored directories "
     "are shown but not entered); .git is never shown.",
     "{\"type\":\"object\",\"properties\":{"
     "\"path\":{\"type\":\"string\",\"format\":\"path\",\"description\":\"directory, relative to the workspace root (default: the root)\"},"
     "\"depth\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":10,\"description\":\"how many levels to show (default 2)\"}"
     "},\"additionalProperties\":false}",
     TOOL_KIND_READ, 0, tool_list_dir},
    {"glob",
     "Find files by name pattern, e.g. \"**/*.c\", \"src/**/*.{ts,tsx}\", \"*.md\". `*` and `?` "
     "match within one path component, `**` matches any number of directories, {a,b} gives "
     "alternatives. The pattern is matched against paths relative to `path` (default: the "
     "workspace root). Prints matching file paths relative to the workspace root, sorted. "
     "Files ignored by .gitignore are left out.",
     "{\"type\":\"object\",\"properties\":{"
     "\"pattern\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":1000,\"description\":\"glob pattern\"},"
     "\"path\":{\"type\":\"string\",\"format\":\"path\",\"description\":\"directory to search in (default: the workspace root)\"}"
     "},\"required\":[\"pattern\"],\"additionalProperties\":false}",
     TOOL_KIND_SEARCH, 0, tool_glob},
    {NULL},
};
