/* inline.c — inline completion: the fill-in-the-middle request and the cut at the end of
 * the block.
 *
 * Qwen3-Coder completes code in the repository-level FIM format (agent_fim_repo_prompt):
 * a repository name, a few other files, then the current file's text before the cursor
 * (prefix) and after it (suffix); the model writes the middle. Latency grows with the
 * prompt, so everything is budgeted in bytes: a prefix window ending at the cursor and
 * starting at a line start, a suffix window starting at the cursor and ending at a line
 * end, and the heads of a few context files (the editor's other open buffers, most recent
 * first, then files the repo map ranks near this one — the caller orders them).
 *
 * Models do not know when to stop: asked for 160 tokens they write 160 tokens, running
 * past the end of the function into the next one. lsp_inline_trim cuts the answer where
 * the block the cursor is in ends, judged by indentation (the one signal every language
 * has): a line less indented than the cursor's line, the line closing a block the
 * cursor's line opened, a blank line followed by a line back at the block's level, or a
 * line that repeats what already follows the cursor.
 */
#include "lsp/lsp.h"

#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"

/* ---- the request ------------------------------------------------------------------- */

static size_t char_start(const char *t, size_t len, size_t i) {
  if (i > len) i = len;
  while (i > 0 && i < len && ((unsigned char)t[i] & 0xC0) == 0x80) i--;
  return i;
}

void lsp_fim_request_release(lsp_fim_request *r) {
  if (!r) return;
  free(r->prefix);
  free(r->suffix);
  free(r->path);
  free(r->repo_name);
  for (size_t i = 0; i < r->n_files; i++) {
    free(r->files[i].path);
    free(r->files[i].content);
  }
  memset(r, 0, sizeof *r);
}

int lsp_fim_build(const lsp_fim_input *in, lsp_fim_request *out) {
  memset(out, 0, sizeof *out);
  if (!in || !in->text || !in->path) return LSP_EARG;
  size_t pb = in->prefix_bytes ? in->prefix_bytes : LSP_FIM_PREFIX_BYTES;
  size_t sb = in->suffix_bytes ? in->suffix_bytes : LSP_FIM_SUFFIX_BYTES;
  size_t cb = in->context_bytes ? in->context_bytes : LSP_FIM_CONTEXT_BYTES;
  const char *t = in->text;
  size_t len = in->len, cur = char_start(t, len, in->offset);
  /* prefix: back pb bytes, then forward to the next line start */
  size_t ps = cur > pb ? cur - pb : 0;
  if (ps > 0) {
    size_t k = ps;
    while (k < cur && t[k - 1] != '\n' && t[k - 1] != '\r') k++;
    ps = k < cur ? k : char_start(t, len, ps);
  }
  /* suffix: forward sb bytes, then back to the last line end */
  size_t se = len - cur > sb ? cur + sb : len;
  if (se < len) {
    size_t k = se;
    while (k > cur && t[k - 1] != '\n') k--;
    se = k > cur ? k : char_start(t, len, se);
  }
  out->prefix = qc_strndup(t + ps, cur - ps);
  out->suffix = qc_strndup(t + cur, se - cur);
  out->path = strdup(in->path);
  out->repo_name = in->repo_name && *in->repo_name ? strdup(in->repo_name) : NULL;
  if (!out->prefix || !out->suffix || !out->path || (in->repo_name && *in->repo_name && !out->repo_name)) goto nomem;
  size_t left = cb;
  for (size_t i = 0; i < in->n_files && out->n_files < LSP_FIM_MAX_CONTEXT_FILES; i++) {
    const lsp_fim_file *f = &in->files[i];
    if (!f->path || !f->text || f->len == 0 || strcmp(f->path, in->path) == 0) continue;
    int dup = 0;
    for (size_t k = 0; k < out->n_files && !dup; k++) dup = strcmp(out->files[k].path, f->path) == 0;
    if (dup) continue;
    if (left < LSP_FIM_MIN_CONTEXT_FILE_BYTES) break;
    size_t cap = left < LSP_FIM_CONTEXT_FILE_BYTES ? left : LSP_FIM_CONTEXT_FILE_BYTES;
    size_t n = f->len;
    if (n > cap) { /* the head, whole lines */
      n = cap;
      while (n > 0 && f->text[n - 1] != '\n') n--;
      if (n < LSP_FIM_MIN_CONTEXT_FILE_BYTES) continue;
    }
    if (!qc_utf8_valid(f->text, n)) continue; /* a binary file is no context */
    out->files[out->n_files].path = strdup(f->path);
    out->files[out->n_files].content = qc_strndup(f->text, n);
    if (!out->files[out->n_files].path || !out->files[out->n_files].content) {
      free(out->files[out->n_files].path);
      free(out->files[out->n_files].content);
      goto nomem;
    }
    out->n_files++;
    left -= n;
  }
  return LSP_OK;
nomem:
  lsp_fim_request_release(out);
  return LSP_ENOMEM;
}

json_t *lsp_fim_request_json(const lsp_fim_request *r, int max_tokens) {
  json_t *files = json_array();
  for (size_t i = 0; files && i < r->n_files; i++)
    json_array_append_new(files, json_pack("{s:s, s:s}", "path", r->files[i].path, "content", r->files[i].content));
  json_t *j = json_pack("{s:s, s:s, s:s, s:o, s:i}", "prefix", r->prefix, "suffix", r->suffix, "path", r->path,
                        "files", files, "maxTokens", max_tokens > 0 ? max_tokens : LSP_INLINE_MAX_TOKENS);
  if (j && r->repo_name) json_object_set_new(j, "repoName", json_string(r->repo_name));
  return j;
}

char *lsp_fim_prompt(const lsp_fim_request *r) {
  if (!r->repo_name && r->n_files == 0) return agent_fim_prompt(r->prefix, r->suffix);
  agent_fim_file files[LSP_FIM_MAX_CONTEXT_FILES];
  for (size_t i = 0; i < r->n_files; i++) files[i] = (agent_fim_file){r->files[i].path, r->files[i].content};
  return agent_fim_repo_prompt(r->repo_name, files, r->n_files, r->path, r->prefix, r->suffix);
}

/* ---- the cut at the end of the block ---------------------------------------------- */

/* Columns of leading whitespace (tabs to the next multiple of 8) of s[0..n). */
static int indent_width(const char *s, size_t n) {
  int w = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == ' ') w++;
    else if (s[i] == '\t') w = (w / 8 + 1) * 8;
    else break;
  }
  return w;
}

static int is_blank(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n' && s[i] != '\f' && s[i] != '\v') return 0;
  return 1;
}

/* s[0..n) without leading and trailing whitespace: *start and returned length. */
static size_t trimmed(const char *s, size_t n, const char **start) {
  while (n && (*s == ' ' || *s == '\t')) s++, n--;
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n')) n--;
  *start = s;
  return n;
}

static int word_at(const char *s, size_t n, const char *w) {
  size_t k = strlen(w);
  if (n < k || memcmp(s, w, k) != 0) return 0;
  return n == k || !((s[k] >= 'a' && s[k] <= 'z') || (s[k] >= 'A' && s[k] <= 'Z') || (s[k] >= '0' && s[k] <= '9') ||
                     s[k] == '_');
}

/* A line that closes a block: "}", ")", "]", or end/fi/done/esac/endif... */
static int is_closer(const char *s, size_t n) {
  const char *t;
  n = trimmed(s, n, &t);
  if (!n) return 0;
  if (t[0] == '}' || t[0] == ')' || t[0] == ']') return 1;
  static const char *const words[] = {"end", "fi", "done", "esac", "endif", "endfor", "endwhile", "endfunction",
                                      NULL};
  for (int i = 0; words[i]; i++)
    if (word_at(t, n, words[i])) return 1;
  return 0;
}

/* A line whose last character opens a block. */
static int opens_block(const char *s, size_t n) {
  const char *t;
  n = trimmed(s, n, &t);
  if (!n) return 0;
  char c = t[n - 1];
  if (c == '{' || c == '(' || c == '[' || c == ':') return 1;
  /* Lua/Ruby/shell openers at the end of a line */
  static const char *const words[] = {" then", " do", NULL};
  for (int i = 0; words[i]; i++) {
    size_t k = strlen(words[i]);
    if (n >= k && memcmp(t + n - k, words[i], k) == 0) return 1;
  }
  return 0;
}

char *lsp_inline_trim(const char *prefix, size_t prefix_len, const char *c, size_t clen, const char *suffix,
                      size_t suffix_len, int max_lines) {
  if (!c) return strdup("");
  if (max_lines <= 0) max_lines = LSP_INLINE_MAX_LINES;
  /* the cursor's line: its text before the cursor, and after it */
  size_t ls = prefix_len;
  while (ls > 0 && prefix[ls - 1] != '\n' && prefix[ls - 1] != '\r') ls--;
  const char *line_pre = prefix + ls;
  size_t line_pre_len = prefix_len - ls;
  size_t le = 0;
  while (le < suffix_len && suffix[le] != '\n' && suffix[le] != '\r') le++;
  const char *line_post;
  size_t line_post_len = trimmed(suffix, le, &line_post);
  /* the first non-blank line after the cursor's line */
  const char *next_line = NULL;
  size_t next_len = 0;
  for (size_t i = le; i < suffix_len && !next_line;) {
    while (i < suffix_len && (suffix[i] == '\n' || suffix[i] == '\r')) i++;
    size_t s = i;
    while (i < suffix_len && suffix[i] != '\n' && suffix[i] != '\r') i++;
    if (!is_blank(suffix + s, i - s)) next_len = trimmed(suffix + s, i - s, &next_line);
  }
  /* the completion's first line */
  size_t e0 = 0;
  while (e0 < clen && c[e0] != '\n' && c[e0] != '\r') e0++;
  size_t keep = clen; /* bytes of c kept */
  if (line_post_len > 0) {
    /* code after the cursor: complete this line only, without re-typing what follows */
    keep = e0;
    const char *t;
    size_t tn = trimmed(c, keep, &t);
    if (tn >= line_post_len && memcmp(t + tn - line_post_len, line_post, line_post_len) == 0)
      keep = (size_t)(t - c) + tn - line_post_len;
  } else {
    /* the cursor's whole line as completed decides the block's indentation */
    qc_buf first;
    qc_buf_init(&first, 0);
    qc_buf_append(&first, line_pre, line_pre_len);
    qc_buf_append(&first, c, e0);
    int base = is_blank(first.data, first.len) ? indent_width(line_pre, line_pre_len)
                                               : indent_width(first.data, first.len);
    int opens = opens_block(first.data, first.len);
    qc_buf_release(&first);
    int pending_blank = 0, nlines = 1;
    size_t i = e0;
    while (i < clen) {
      size_t brk = i; /* the break before this line */
      i += (c[i] == '\r' && i + 1 < clen && c[i + 1] == '\n') ? 2 : 1;
      size_t s = i;
      while (i < clen && c[i] != '\n' && c[i] != '\r') i++;
      const char *ln = c + s;
      size_t n = i - s;
      if (++nlines > max_lines) {
        keep = brk;
        break;
      }
      if (is_blank(ln, n)) {
        pending_blank = 1;
        continue;
      }
      int w = indent_width(ln, n);
      const char *t;
      size_t tn = trimmed(ln, n, &t);
      if (next_line && tn == next_len && memcmp(t, next_line, tn) == 0) { /* already there */
        keep = brk;
        break;
      }
      if (w < base) {
        keep = brk;
        break;
      }
      if (w == base) {
        if (opens && is_closer(ln, n)) {
          if (opens_block(ln, n)) { /* "} else {": the block goes on */
            pending_blank = 0;
            continue;
          }
          keep = i; /* the closing line ends the completion */
          break;
        }
        if (opens || pending_blank) {
          keep = brk;
          break;
        }
      }
      pending_blank = 0;
    }
  }
  /* trailing whitespace that spans a line break is dropped */
  size_t end = keep;
  while (end > 0 && (c[end - 1] == ' ' || c[end - 1] == '\t' || c[end - 1] == '\n' || c[end - 1] == '\r')) end--;
  if (memchr(c + end, '\n', keep - end) || memchr(c + end, '\r', keep - end)) keep = end;
  if (is_blank(c, keep)) keep = 0;
  return qc_strndup(c, keep);
}
