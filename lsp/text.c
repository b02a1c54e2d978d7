/* text.c — UTF-16 positions over UTF-8 text, file URIs, the module's error table.
 *
 * LSP positions count UTF-16 code units within a line (the default encoding, and the only
 * one Neovim 0.7 and eglot 1.9 use). Documents are UTF-8, so every position is converted
 * by walking the line: a code point of 1-3 UTF-8 bytes is one unit, one of 4 bytes (an
 * emoji, U+10000 and above) is two — a surrogate pair. Lines end at "\n", "\r\n" or "\r"
 * (the spec's three); a CRLF is one line break, never an empty line. Client positions are
 * untrusted: they are clamped into the text rather than refused, because editors do send
 * positions past the end of a line (a cursor in virtual space, a stale range).
 */
#include "lsp/lsp.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *lsp_strerror(int code) {
  switch (code) {
#define LSP__ERR_CASE(name, msg) \
  case LSP_E##name:              \
    return msg;
    LSP_ERR_MAP(LSP__ERR_CASE)
#undef LSP__ERR_CASE
  default:
    return qc_strerror(code);
  }
}

/* Length of the UTF-8 sequence starting at s[i] (1 for an invalid byte) and its UTF-16
 * width. Only well-formed sequences count as one character. */
static size_t u8_seq(const unsigned char *s, size_t i, size_t len, int *units) {
  unsigned char c = s[i];
  size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
  *units = 1;
  if (n <= 1 || i + n > len) return 1;
  for (size_t k = 1; k < n; k++)
    if ((s[i + k] & 0xC0) != 0x80) return 1;
  if (n == 2 && c < 0xC2) return 1;                               /* overlong */
  if (n == 3 && c == 0xE0 && s[i + 1] < 0xA0) return 1;           /* overlong */
  if (n == 3 && c == 0xED && s[i + 1] >= 0xA0) return 1;          /* surrogate */
  if (n == 4 && (c > 0xF4 || (c == 0xF0 && s[i + 1] < 0x90) || (c == 0xF4 && s[i + 1] >= 0x90))) return 1;
  if (n == 4) *units = 2;
  return n;
}

size_t lsp_utf16_len(const char *text, size_t len) {
  const unsigned char *s = (const unsigned char *)text;
  size_t units = 0;
  for (size_t i = 0; i < len;) {
    int u;
    i += u8_seq(s, i, len, &u);
    units += (size_t)u;
  }
  return units;
}

size_t lsp_offset_at(const char *text, size_t len, lsp_pos p) {
  const unsigned char *s = (const unsigned char *)text;
  size_t i = 0;
  /* find the start of line p.line */
  for (uint32_t line = 0; line < p.line; line++) {
    while (i < len && s[i] != '\n' && s[i] != '\r') i++;
    if (i >= len) return len; /* past the last line: the end of the text */
    if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n') i += 2;
    else i++;
  }
  /* walk p.character units, stopping at the line's end */
  uint32_t units = 0;
  while (i < len && s[i] != '\n' && s[i] != '\r' && units < p.character) {
    int u;
    size_t n = u8_seq(s, i, len, &u);
    if (units + (uint32_t)u > p.character) break; /* inside a surrogate pair: its start */
    units += (uint32_t)u;
    i += n;
  }
  return i;
}

lsp_pos lsp_pos_at(const char *text, size_t len, size_t offset) {
  const unsigned char *s = (const unsigned char *)text;
  if (offset > len) offset = len;
  lsp_pos p = {0, 0};
  size_t i = 0;
  while (i < offset) {
    if (s[i] == '\n' || s[i] == '\r') {
      size_t brk = (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n') ? 2 : 1;
      if (i + brk > offset) break; /* between \r and \n: the end of this line */
      i += brk;
      p.line++;
      p.character = 0;
      continue;
    }
    int u;
    size_t n = u8_seq(s, i, len, &u);
    if (i + n > offset) break; /* inside a sequence: its start */
    i += n;
    p.character += (uint32_t)u;
  }
  return p;
}

int lsp_pos_cmp(lsp_pos a, lsp_pos b) {
  if (a.line != b.line) return a.line < b.line ? -1 : 1;
  if (a.character != b.character) return a.character < b.character ? -1 : 1;
  return 0;
}

static int get_u32(const json_t *obj, const char *key, uint32_t *out) {
  const json_t *v = json_object_get(obj, key);
  if (!json_is_integer(v)) return LSP_EARG;
  json_int_t x = json_integer_value(v);
  if (x < 0 || x > (json_int_t)UINT32_MAX) return LSP_EARG;
  *out = (uint32_t)x;
  return LSP_OK;
}

int lsp_pos_parse(const json_t *j, lsp_pos *out) {
  if (!json_is_object(j)) return LSP_EARG;
  lsp_pos p;
  if (get_u32(j, "line", &p.line) || get_u32(j, "character", &p.character)) return LSP_EARG;
  *out = p;
  return LSP_OK;
}

int lsp_range_parse(const json_t *j, lsp_range *out) {
  if (!json_is_object(j)) return LSP_EARG;
  lsp_range r;
  if (lsp_pos_parse(json_object_get(j, "start"), &r.start) || lsp_pos_parse(json_object_get(j, "end"), &r.end))
    return LSP_EARG;
  if (lsp_pos_cmp(r.start, r.end) > 0) return LSP_EARG;
  *out = r;
  return LSP_OK;
}

json_t *lsp_pos_json(lsp_pos p) {
  return json_pack("{s:I, s:I}", "line", (json_int_t)p.line, "character", (json_int_t)p.character);
}

json_t *lsp_range_json(lsp_range r) {
  return json_pack("{s:o, s:o}", "start", lsp_pos_json(r.start), "end", lsp_pos_json(r.end));
}

/* ---- file URIs --------------------------------------------------------------------- */

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

char *lsp_uri_to_path(const char *uri) {
  if (!uri || strncasecmp(uri, "file://", 7) != 0) return NULL;
  const char *p = uri + 7;
  if (strncasecmp(p, "localhost/", 10) == 0) p += 9;
  if (*p != '/') return NULL; /* a host we cannot reach, or a relative path */
  size_t n = strcspn(p, "?#");  /* a query or fragment is not part of the path */
  char *out = malloc(n + 1);
  if (!out) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '%') {
      int hi = i + 2 < n ? hexval(p[i + 1]) : -1, lo = i + 2 < n ? hexval(p[i + 2]) : -1;
      if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
        free(out);
        return NULL;
      }
      out[o++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      out[o++] = p[i];
    }
  }
  out[o] = '\0';
  if (!qc_utf8_valid(out, o)) {
    free(out);
    return NULL;
  }
  return out;
}

char *lsp_path_to_uri(const char *path) {
  if (!path || path[0] != '/') return NULL;
  qc_buf b;
  qc_buf_init(&b, (size_t)1 << 20);
  int rc = qc_buf_puts(&b, "file://");
  for (const unsigned char *s = (const unsigned char *)path; *s && !rc; s++) {
    unsigned char c = *s;
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
        c == '_' || c == '~' || c == '/')
      rc = qc_buf_putc(&b, (char)c);
    else
      rc = qc_buf_printf(&b, "%%%02X", c);
  }
  if (rc) {
    qc_buf_release(&b);
    return NULL;
  }
  return qc_buf_detach(&b, NULL);
}
