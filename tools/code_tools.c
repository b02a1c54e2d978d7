/* code_tools.c — the code-intelligence tools: code_outline, find_symbol, and the syntax
 * check that write_file and edit_file report; plus the workspace scan they share with
 * the repo map.
 *
 * code_outline parses one file and lists its definitions nested (methods inside classes)
 * with line ranges and signature lines. find_symbol scans the workspace: a file is parsed
 * only when its bytes contain the name (a memmem prefilter), so a lookup in a large tree
 * costs a read of each file plus a parse of the few that mention the name.
 */
#include "tools/code_internal.h"
#include "tools/git_internal.h"
#include "tools/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- workspace scans ------------------------------------------------------------- */

static int skip_dir(const char *name) {
  static const char *const skip[] = {"node_modules", "target", "build", "dist", "__pycache__",
                                     "venv", "site-packages", "bower_components"};
  if (name[0] == '.') return 1;
  for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
    if (strcmp(name, skip[i]) == 0) return 1;
  return 0;
}

typedef struct scan {
  tool__src_fn fn;
  void *user;
  size_t count;
  int truncated;
  int stop;
  size_t strip;  /* bytes of repo prefix to strip from git paths */
} scan;

static int name_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void walk_plain(scan *s, const char *root, const char *rel, int depth) {
  if (s->stop || depth > TOOL__CODE_SCAN_DEPTH) return;
  char *dir = *rel ? qc_path_join(root, rel) : qc_strndup(root, strlen(root));
  DIR *d = dir ? opendir(dir) : NULL;
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue; /* ".", "..", hidden files and folders */
    if (n == cap) {
      size_t nc = cap ? cap * 2 : 64;
      char **nv = realloc(names, nc * sizeof *nv);
      if (!nv) break;
      names = nv;
      cap = nc;
    }
    names[n] = qc_strndup(e->d_name, strlen(e->d_name));
    if (names[n]) n++;
  }
  if (d) closedir(d);
  if (n) qsort(names, n, sizeof *names, name_cmp);
  for (size_t i = 0; i < n; i++) {
    if (!s->stop) {
      char *r = *rel ? qc_asprintf("%s/%s", rel, names[i]) : qc_strndup(names[i], strlen(names[i]));
      char *abs = r ? qc_path_join(root, r) : NULL;
      struct stat st;
      if (abs && lstat(abs, &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
          if (!skip_dir(names[i])) walk_plain(s, root, r, depth + 1);
        } else if (S_ISREG(st.st_mode)) {
          if (s->count >= TOOL__CODE_SCAN_MAX_FILES) {
            s->truncated = 1;
            s->stop = 1;
          } else {
            s->count++;
            if (s->fn(s->user, r)) s->stop = 1;
          }
        }
      }
      free(abs);
      free(r);
    }
    free(names[i]);
  }
  free(names);
  free(dir);
}

static int git_file_cb(void *user, const char *path) {
  scan *s = user;
  if (s->count >= TOOL__CODE_SCAN_MAX_FILES) {
    s->truncated = 1;
    return 1;
  }
  s->count++;
  return s->fn(s->user, path + s->strip) ? 1 : 0;
}

int tool__source_files(const char *root, tool__src_fn fn, void *user, int *truncated,
                       char **err) {
  *err = NULL;
  if (truncated) *truncated = 0;
  scan s = {fn, user, 0, 0, 0, 0};
  tool__repo r;
  char *e = NULL;
  int rc = tool__repo_open(root, &r, &e);
  if (rc == TOOL_OK) {
    s.strip = strlen(r.prefix);
    rc = tool__repo_foreach_file(&r, git_file_cb, &s, err);
    if (rc == 1) rc = TOOL_OK; /* stopped by the callback */
    tool__repo_close(&r);
  } else if (rc == TOOL_ENOTREPO || rc == TOOL_EDENIED) {
    /* no repository, or one libgit2 refuses (owned by another user): a plain walk */
    free(e);
    e = NULL;
    rc = TOOL_OK;
    walk_plain(&s, root, "", 0);
  } else {
    *err = e;
    return rc;
  }
  if (truncated) *truncated = s.truncated;
  return rc;
}

int tool__read_source(const char *root, const char *rel, size_t max, char **data, size_t *len,
                      struct stat *stp) {
  *data = NULL;
  *len = 0;
  char *abs = qc_path_join(root, rel);
  if (!abs) return -1;
  int fd = open(abs, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  free(abs);
  if (fd < 0) return -1;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
    close(fd);
    return -1;
  }
  size_t n = (size_t)st.st_size;
  char *buf = malloc(n + 1);
  size_t got = 0;
  while (buf && got < n) {
    ssize_t k = read(fd, buf + got, n - got);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break;
    got += (size_t)k;
  }
  close(fd);
  if (!buf) return -1;
  buf[got] = 0;
  if (memchr(buf, 0, got < 8192 ? got : 8192)) { /* binary */
    free(buf);
    return -1;
  }
  if (stp) *stp = st;
  *data = buf;
  *len = got;
  return 0;
}

/* ---- syntax check ---------------------------------------------------------------- */

static char *err_key(const tool__syntax_err *e) { return qc_asprintf("%s\x1f%s", e->message, e->context); }

int tool_syntax_check(const char *path, const char *old_text, size_t old_len,
                      const char *new_text, size_t new_len, json_t **errors) {
  *errors = NULL;
  const tool__lang *l = tool__lang_detect(path, new_text, new_len < 4096 ? new_len : 4096);
  if (!l || new_len > TOOL__CODE_MAX_FILE) return TOOL_OK;
  tool__syntax_err *ne = NULL, *oe = NULL;
  int nn = tool__syntax_errors(l, new_text, new_len, TOOL__SYNTAX_MAX_COLLECTED, &ne);
  if (nn < 0) return nn == TOOL_ENOMEM ? TOOL_ENOMEM : TOOL_OK; /* too big / time limit */
  int no = 0;
  if (nn > 0 && old_text && old_len <= TOOL__CODE_MAX_FILE) {
    no = tool__syntax_errors(l, old_text, old_len, TOOL__SYNTAX_MAX_COLLECTED, &oe);
    if (no < 0) no = 0;
  }
  json_t *arr = json_array();
  char **okeys = no ? calloc((size_t)no, sizeof *okeys) : NULL;
  int rc = arr ? TOOL_OK : TOOL_ENOMEM;
  for (int i = 0; i < no && okeys; i++) okeys[i] = err_key(&oe[i]);
  for (int i = 0; rc == TOOL_OK && i < nn && json_array_size(arr) < TOOL__SYNTAX_MAX_REPORTED; i++) {
    char *k = err_key(&ne[i]);
    int seen = 0;
    for (int j = 0; k && okeys && j < no; j++)
      if (okeys[j] && strcmp(okeys[j], k) == 0) { /* consume: an old error counts once */
        free(okeys[j]);
        okeys[j] = NULL;
        seen = 1;
        break;
      }
    free(k);
    if (seen) continue;
    json_array_append_new(arr, json_pack("{s:I, s:I, s:s, s:o}", "line", (json_int_t)ne[i].line,
                                         "column", (json_int_t)ne[i].column, "message", ne[i].message,
                                         "context", tool__json_text(ne[i].context, strlen(ne[i].context))));
  }
  for (int i = 0; i < no && okeys; i++) free(okeys[i]);
  free(okeys);
  tool__syntax_errs_free(ne, (size_t)nn);
  tool__syntax_errs_free(oe, (size_t)no);
  *errors = arr;
  return rc;
}

/* Report new syntax errors in a tool result (used by write_file and edit_file): adds
 * data.syntax_errors and a short note to the output. */
void tool__report_syntax(tool_result *res, const char *path, const char *old_text, size_t old_len,
                         const char *new_text, size_t new_len) {
  json_t *errs = NULL;
  if (tool_syntax_check(path, old_text, old_len, new_text, new_len, &errs) != TOOL_OK || !errs) return;
  size_t n = json_array_size(errs);
  if (n == 0) {
    json_decref(errs);
    return;
  }
  qc_buf b;
  qc_buf_init(&b, 16384);
  qc_buf_puts(&b, res->output ? res->output : "");
  qc_buf_printf(&b, "\nWarning: the new content has %zu new syntax error%s (not there before the write):",
                n, n == 1 ? "" : "s");
  for (size_t i = 0; i < n && i < 5; i++) {
    json_t *e = json_array_get(errs, i);
    qc_buf_printf(&b, "\n  line %lld, column %lld: %s: %s", json_integer_value(json_object_get(e, "line")),
                  json_integer_value(json_object_get(e, "column")),
                  json_string_value(json_object_get(e, "message")),
                  json_string_value(json_object_get(e, "context")));
  }
  if (n > 5) qc_buf_printf(&b, "\n  (%zu more in data.syntax_errors)", n - 5);
  char *out = qc_buf_detach(&b, NULL);
  if (out) {
    free(res->output);
    res->output = out;
  }
  json_t *d = tool__data(res);
  if (d) json_object_set_new(d, "syntax_errors", errs);
  else json_decref(errs);
}

/* ---- code_outline ---------------------------------------------------------------- */

static json_t *symbol_json(const tool__tags *t, size_t i) {
  const tool__tag *g = &t->v[i];
  return json_pack("{s:s, s:o, s:I, s:I, s:o}", "kind", g->kind, "name",
                   tool__json_text(g->name, strlen(g->name)), "line", (json_int_t)g->start_line + 1,
                   "end_line", (json_int_t)g->end_line + 1, "signature",
                   tool__json_text(g->signature, strlen(g->signature)));
}

static int tool_code_outline(tool_call_ctx *ctx, const json_t *args, tool_result *res) {
  tool_ws *ws = ctx->ws;
  const char *path = tool__arg_str(args, "path", NULL);
  char *err = NULL, *src = NULL;
  size_t len = 0;
  tool__path p;
  tool__path_init(&p);
  tool__tags t = {0};
  json_t **nodes = NULL;
  qc_buf out;
  qc_buf_init(&out, (size_t)1 << 20);
  int rc = tool__read_whole(ws, path, TOOL__CODE_MAX_FILE, &src, &len, &p, &err);
  if (rc != TOOL_OK) goto fail;
  const tool__lang *l = tool__lang_detect(p.rel, src, len < 4096 ? len : 4096);
  if (!l) {
    rc = TOOL_EARGS;
    err = qc_asprintf("%s: no grammar for this file type (qcoder parses C, C++, Python, "
                      "JavaScript, TypeScript/TSX, Go, Rust, Java, Bash and JSON)", p.rel);
    goto fail;
  }
  rc = tool__tags_extract(l, src, len, 1, &t, &err);
  if (rc != TOOL_OK) goto fail;
  nodes = calloc(t.ndefs ? t.ndefs : 1, sizeof *nodes);
  json_t *top = json_array();
  if (!nodes || !top) {
    json_decref(top);
    rc = TOOL_ENOMEM;
    goto fail;
  }
  size_t nsym = 0;
  for (size_t i = 0; i < t.ndefs; i++) {
    int par = t.v[i].parent;
    nsym += !(par >= 0 && strcmp(t.v[par].name, t.v[i].name) == 0 && t.v[par].start_line == t.v[i].start_line);
  }
  qc_buf_printf(&out, "%s (%s, %zu symbol%s%s)\n", p.rel, tool__lang_name(l), nsym,
                nsym == 1 ? "" : "s", t.has_error ? "; the file has syntax errors" : "");
  size_t shown = 0;
  for (size_t i = 0; i < t.ndefs; i++) {
    const tool__tag *g = &t.v[i];
    /* `typedef struct x {...} x;`: the struct inside its own typedef adds nothing */
    if (g->parent >= 0 && strcmp(t.v[g->parent].name, g->name) == 0 &&
        t.v[g->parent].start_line == g->start_line) {
      nodes[i] = nodes[g->parent]; /* its children (if any) go to the typedef */
      continue;
    }
    if (shown++ < TOOL__OUTLINE_MAX_SYMBOLS) {
      for (int k = 0; k < g->depth; k++) qc_buf_puts(&out, "  ");
      if (g->end_line > g->start_line)
        qc_buf_printf(&out, "%u-%u %s %s: ", g->start_line + 1, g->end_line + 1, g->kind, g->name);
      else
        qc_buf_printf(&out, "%u %s %s: ", g->start_line + 1, g->kind, g->name);
      tool__buf_put_safe(&out, g->signature, strlen(g->signature));
      qc_buf_putc(&out, '\n');
    }
    nodes[i] = symbol_json(&t, i);
    if (!nodes[i]) continue;
    json_t *parent = g->parent >= 0 ? nodes[g->parent] : NULL;
    if (parent) {
      json_t *ch = json_object_get(parent, "children");
      if (!ch) json_object_set_new(parent, "children", ch = json_array());
      json_array_append_new(ch, nodes[i]);
    } else {
      json_array_append_new(top, nodes[i]);
    }
  }
  if (shown > TOOL__OUTLINE_MAX_SYMBOLS)
    qc_buf_printf(&out, "[%zu more symbols not shown]\n", shown - TOOL__OUTLINE_MAX_SYMBOLS);
  json_t *d = tool__data(res);
  if (d) {
    json_object_set_new(d, "language", json_string(tool__lang_name(l)));
    json_object_set_new(d, "symbols", top);
  } else {
    json_decref(top);
  }
  tool__add_location(res, p.abs, 0);
  rc = tool__ok_take(res, qc_buf_detach(&out, NULL));
  goto out;
fail:
  rc = tool__fail_take(res, rc, err ? err : qc_asprintf("%s", tool_strerror(rc)));
  err = NULL;
out:
  free(nodes);
  tool__tags_release(&t);
  qc_buf_release(&out);
  tool__path_release(&p);
  free(src);
  free(err);
  return rc;
}

/* ---- find_symbol ----------------------------------------------------------------- */

typedef struct find_ctx {
  tool_ws *ws;
  const char *name;
  size_t name_len;
  const char *kind;
  const char *under;  /* workspace-relative directory or file limiting the search ("" = all) */
  json_t *defs, *refs;
  size_t ndefs, nrefs;  /* found (may exceed what is kept) */
  size_t files_parsed;
  tool_call_ctx *ctx;
} find_ctx;

static int find_file(void *user, const char *rel) {
  find_ctx *f = user;
  if (tool_ctx_cancelled(f->ctx)) return 1;
  size_t ul = strlen(f->under);
  if (ul && !(strncmp(rel, f->under, ul) == 0 && (rel[ul] == '/' || rel[ul] == 0))) return 0;
  /* cheap checks first: a known extension or basename, else the shebang after reading */
  const tool__lang *l = tool__lang_detect(rel, NULL, 0);
  const char *base = strrchr(rel, '/');
  base = base ? base + 1 : rel;
  if (!l && strchr(base, '.')) return 0;  /* an extension we do not parse */
  char *src;
  size_t len;
  if (tool__read_source(tool_ws_root(f->ws), rel, TOOL__CODE_SCAN_FILE_MAX, &src, &len, NULL) != 0) return 0;
  if (!l) l = tool__lang_detect(rel, src, len < 4096 ? len : 4096);
  if (!l || !memmem(src, len, f->name, f->name_len)) {
    free(src);
    return 0;
  }
  tool__tags t;
  char *err = NULL;
  f->files_parsed++;
  if (tool__tags_extract(l, src, len, 0, &t, &err) == TOOL_OK) {
    for (size_t i = 0; i < t.n; i++) {
      const tool__tag *g = &t.v[i];
      if (strcmp(g->name, f->name) != 0) continue;
      if (g->is_def && f->kind && strcmp(g->kind, f->kind) != 0) continue;
      if (g->is_def) {
        if (++f->ndefs > TOOL__FIND_MAX_DEFS) continue;
        json_array_append_new(f->defs, json_pack("{s:s, s:I, s:I, s:s, s:o}", "path", rel, "line",
                                                 (json_int_t)g->start_line + 1, "end_line",
                                                 (json_int_t)g->end_line + 1, "kind", g->kind, "signature",
                                                 tool__json_text(g->signature, strlen(g->signature))));
      } else {
        if (++f->nrefs > TOOL__FIND_MAX_REFS) continue;
        /* the referencing line, trimmed, as context */
        size_t a = g->name_byte, b = g->name_byte;
        while (a > 0 && src[a - 1] != '\n') a--;
        while (b < len && src[b] != '\n') b++;
        while (a < b && (src[a] == ' ' || src[a] == '\t')) a++;
        if (b - a > 200) b = a + qc_utf8_complete_len(src + a, 200);
        json_array_append_new(f->refs, json_pack("{s:s, s:I, s:I, s:s, s:o}", "path", rel, "line",
                                                 (json_int_t)g->name_line + 1, "column",
                                                 (json_int_t)g->name_col + 1, "kind", g->kind, "context",
                                                 tool__json_text(src + a, b - a)));
      }
    }
  }
  free(err);
  tool__tags_release(&t);
  free(src);
  return 0;
}

static int tool_find_symbol(tool_call_ctx *ctx, const json_t *args, tool_result *res) {
  tool_ws *ws = ctx->ws;
  const char *name = tool__arg_str(args, "name", NULL);
  const char *kind = tool__arg_str(args, "kind", NULL);
  const char *path = tool__arg_str(args, "path", NULL);
  char *err = NULL;
  int rc;
  tool__path p;
  tool__path_init(&p);
  find_ctx f = {ws, name, strlen(name), kind && *kind ? kind : NULL, "", json_array(), json_array(), 0, 0, 0, ctx};
  qc_buf out;
  qc_buf_init(&out, (size_t)1 << 20);
  if (!f.defs || !f.refs) {
    rc = TOOL_ENOMEM;
    goto fail;
  }
  if (f.name_len == 0 || f.name_len > TOOL__CODE_NAME_MAX || strpbrk(name, " \t\n")) {
    rc = TOOL_EARGS;
    err = qc_asprintf("name must be one identifier (no spaces), e.g. \"parse_config\"");
    goto fail;
  }
  if (path && *path) {
    rc = tool__resolve(ws, path, 0, &p, &err);
    if (rc != TOOL_OK) goto fail;
    f.under = p.rel;
  }
  int truncated = 0;
  rc = tool__source_files(tool_ws_root(ws), find_file, &f, &truncated, &err);
  if (rc != TOOL_OK) goto fail;
  if (tool_ctx_cancelled(ctx)) {
    rc = TOOL_ECANCELLED;
    err = qc_asprintf("cancelled");
    goto fail;
  }
  size_t nd = json_array_size(f.defs), nr = json_array_size(f.refs);
  if (f.ndefs == 0 && f.nrefs == 0) {
    qc_buf_printf(&out, "No definition or reference of '%s'%s%s%s found", name, f.kind ? " (kind " : "",
                  f.kind ? f.kind : "", f.kind ? ")" : "");
    qc_buf_printf(&out, " in %s. The name must match exactly (case-sensitive); grep finds text in "
                        "comments and strings.\n", *f.under ? f.under : "the workspace");
  } else {
    qc_buf_printf(&out, "Definitions of %s (%zu):\n", name, f.ndefs);
    for (size_t i = 0; i < nd; i++) {
      json_t *e = json_array_get(f.defs, i);
      qc_buf_printf(&out, "  %s:%lld %s: ", json_string_value(json_object_get(e, "path")),
                    json_integer_value(json_object_get(e, "line")), json_string_value(json_object_get(e, "kind")));
      const char *sig = json_string_value(json_object_get(e, "signature"));
      tool__buf_put_safe(&out, sig, strlen(sig));
      qc_buf_putc(&out, '\n');
      char *abs = qc_path_join(tool_ws_root(ws), json_string_value(json_object_get(e, "path")));
      if (abs) tool__add_location(res, abs, (long)json_integer_value(json_object_get(e, "line")));
      free(abs);
    }
    if (f.ndefs > nd) qc_buf_printf(&out, "  [%zu more not shown]\n", f.ndefs - nd);
    qc_buf_printf(&out, "References (%zu):\n", f.nrefs);
    for (size_t i = 0; i < nr; i++) {
      json_t *e = json_array_get(f.refs, i);
      qc_buf_printf(&out, "  %s:%lld:%lld: ", json_string_value(json_object_get(e, "path")),
                    json_integer_value(json_object_get(e, "line")), json_integer_value(json_object_get(e, "column")));
      const char *c = json_string_value(json_object_get(e, "context"));
      tool__buf_put_safe(&out, c, strlen(c));
      qc_buf_putc(&out, '\n');
      char *abs = qc_path_join(tool_ws_root(ws), json_string_value(json_object_get(e, "path")));
      if (abs) tool__add_location(res, abs, (long)json_integer_value(json_object_get(e, "line")));
      free(abs);
    }
    if (f.nrefs > nr) qc_buf_printf(&out, "  [%zu more not shown; pass path to narrow the search]\n", f.nrefs - nr);
  }
  if (truncated) qc_buf_printf(&out, "[the workspace has more than %u files; only the first were searched]\n",
                               TOOL__CODE_SCAN_MAX_FILES);
  json_t *d = tool__data(res);
  if (d) {
    json_object_set(d, "definitions", f.defs);
    json_object_set(d, "references", f.refs);
  }
  rc = tool__ok_take(res, qc_buf_detach(&out, NULL));
  goto out;
fail:
  rc = tool__fail_take(res, rc, err ? err : qc_asprintf("%s", tool_strerror(rc)));
  err = NULL;
out:
  json_decref(f.defs);
  json_decref(f.refs);
  qc_buf_release(&out);
  tool__path_release(&p);
  free(err);
  return rc;
}

const tool_def tool__code_defs[] = {
    {"code_outline",
     "Show the structure of a source file: its functions, classes, methods, types and other "
     "definitions with line ranges and signature lines, nested (methods under their class). "
     "Cheaper than reading the whole file; use it to find where to read or edit. Languages: C, "
     "C++, Python, JavaScript, TypeScript/TSX, Go, Rust, Java, Bash, JSON.",
     "{\"type\":\"object\",\"properties\":{"
     "\"path\":{\"type\":\"string\",\"format\":\"path\",\"description\":\"source file, relative to the workspace root\"}"
     "},\"required\":[\"path\"],\"additionalProperties\":false}",
     TOOL_KIND_READ, 0, tool_code_outline},
    {"find_symbol",
     "Find where a symbol (function, class, method, type, variable) is defined and where it is "
     "referenced, across the workspace, by parsing the code (comments and strings do not count). "
     "The name must match exactly. Files ignored by .gitignore are skipped.",
     "{\"type\":\"object\",\"properties\":{"
     "\"name\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":256,\"description\":\"the identifier, e.g. parse_config or Parser\"},"
     "\"kind\":{\"type\":\"string\",\"enum\":[\"function\",\"method\",\"class\",\"interface\",\"type\",\"enum\",\"module\",\"macro\",\"constant\",\"variable\",\"field\",\"impl\",\"key\"],"
     "\"description\":\"only definitions of this kind (references are listed regardless)\"},"
     "\"path\":{\"type\":\"string\",\"format\":\"path\",\"description\":\"limit the search to this file or directory\"}"
     "},\"required\":[\"name\"],\"additionalProperties\":false}",
     TOOL_KIND_SEARCH, 0, tool_find_symbol},
    {0},
};
