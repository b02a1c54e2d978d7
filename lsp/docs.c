/* docs.c — the document store: what the editor has open, as the editor has it.
 *
 * The daemon must see unsaved buffers (a fix is made to the code on screen, not to the
 * file on disk), so every didOpen/didChange lands here and the daemon's ACP
 * fs/read_text_file is served from here. Documents are keyed by their decoded absolute
 * path, not by URI spelling: the daemon asks by path, and two clients may encode one path
 * differently ("%7E" or "~"). The URI the client used is kept for the edits sent back; the
 * symlink-free path (the daemon resolves symlinks) is kept beside it when the caller knows
 * it, so a project opened through a symlink still finds its buffers.
 *
 * Full sync is what the server advertises, but ranged changes are applied as well (a
 * client may send them anyway); a batch of changes is all or nothing. The store is a
 * small array searched linearly: editors keep tens of buffers open, the bound is
 * LSP_MAX_DOCUMENTS, and every lookup is one strcmp per document.
 */
#include "lsp/lsp.h"

#include <stdlib.h>
#include <string.h>

struct lsp_docs {
  lsp_doc *v;
  size_t n, cap;
  size_t bytes;      /* sum of the texts' lengths */
  uint64_t counter;  /* recency clock */
};

lsp_docs *lsp_docs_new(void) { return calloc(1, sizeof(lsp_docs)); }

static void doc_release(lsp_doc *d) {
  free(d->uri);
  free(d->path);
  free(d->real);
  free(d->language_id);
  free(d->text);
}

void lsp_docs_free(lsp_docs *d) {
  if (!d) return;
  for (size_t i = 0; i < d->n; i++) doc_release(&d->v[i]);
  free(d->v);
  free(d);
}

static lsp_doc *find_path(const lsp_docs *d, const char *path) {
  for (size_t i = 0; i < d->n; i++)
    if (strcmp(d->v[i].path, path) == 0) return &d->v[i];
  return NULL;
}

const lsp_doc *lsp_docs_find_path(const lsp_docs *d, const char *path) {
  if (!d || !path) return NULL;
  const lsp_doc *doc = find_path(d, path);
  for (size_t i = 0; !doc && i < d->n; i++)
    if (d->v[i].real && strcmp(d->v[i].real, path) == 0) doc = &d->v[i];
  return doc;
}

int lsp_docs_set_real(lsp_docs *d, const char *uri, const char *real) {
  if (!d || !uri) return LSP_EARG;
  char *path = lsp_uri_to_path(uri);
  lsp_doc *doc = path ? find_path(d, path) : NULL;
  free(path);
  if (!doc) return LSP_ENOTOPEN;
  char *r = real && strcmp(real, doc->path) != 0 ? strdup(real) : NULL;
  if (real && strcmp(real, doc->path) != 0 && !r) return LSP_ENOMEM;
  free(doc->real);
  doc->real = r;
  return LSP_OK;
}

const lsp_doc *lsp_docs_find(const lsp_docs *d, const char *uri) {
  char *path = lsp_uri_to_path(uri);
  const lsp_doc *doc = path && d ? find_path(d, path) : NULL;
  free(path);
  return doc;
}

size_t lsp_docs_count(const lsp_docs *d) { return d ? d->n : 0; }

int lsp_docs_open(lsp_docs *d, const char *uri, const char *language_id, int64_t version, const char *text,
                  size_t len) {
  if (!d || !uri || !text) return LSP_EARG;
  if (len > LSP_MAX_DOCUMENT_BYTES) return LSP_ETOOBIG;
  if (!qc_utf8_valid(text, len)) return LSP_EUTF8;
  char *path = lsp_uri_to_path(uri);
  if (!path) return LSP_EURI;
  lsp_doc *old = find_path(d, path);
  size_t others = d->bytes - (old ? old->len : 0);
  if ((!old && d->n >= LSP_MAX_DOCUMENTS) || others + len > LSP_MAX_STORE_BYTES) {
    free(path);
    return LSP_ETOOMANY;
  }
  lsp_doc nd = {0};
  nd.uri = strdup(uri);
  nd.path = path;
  nd.language_id = strdup(language_id ? language_id : "");
  nd.text = qc_strndup(text, len);
  nd.len = len;
  nd.version = version;
  nd.touched = ++d->counter;
  if (!nd.uri || !nd.language_id || !nd.text) {
    doc_release(&nd);
    return LSP_ENOMEM;
  }
  if (old) {
    d->bytes -= old->len;
    doc_release(old);
    *old = nd;
  } else {
    if (d->n == d->cap) {
      size_t nc = d->cap ? d->cap * 2 : 16;
      lsp_doc *nv = realloc(d->v, nc * sizeof *nv);
      if (!nv) {
        doc_release(&nd);
        return LSP_ENOMEM;
      }
      d->v = nv;
      d->cap = nc;
    }
    d->v[d->n++] = nd;
  }
  d->bytes += len;
  return LSP_OK;
}

/* Replace text[a..b) with `ins` into a new buffer. */
static char *splice(const char *text, size_t len, size_t a, size_t b, const char *ins, size_t ins_len,
                    size_t *out_len) {
  size_t n = len - (b - a) + ins_len;
  char *out = malloc(n + 1);
  if (!out) return NULL;
  memcpy(out, text, a);
  memcpy(out + a, ins, ins_len);
  memcpy(out + a + ins_len, text + b, len - b);
  out[n] = '\0';
  *out_len = n;
  return out;
}

int lsp_docs_change(lsp_docs *d, const char *uri, int64_t version, const json_t *changes) {
  if (!d || !uri || !json_is_array(changes)) return LSP_EARG;
  char *path = lsp_uri_to_path(uri);
  lsp_doc *doc = path ? find_path(d, path) : NULL;
  free(path);
  if (!doc) return LSP_ENOTOPEN;
  /* work on a copy: all changes or none */
  size_t len = doc->len;
  char *text = qc_strndup(doc->text, len);
  if (!text) return LSP_ENOMEM;
  int rc = LSP_OK;
  size_t i;
  const json_t *ch;
  json_array_foreach(changes, i, ch) {
    const json_t *t = json_object_get(ch, "text");
    if (!json_is_string(t)) {
      rc = LSP_EARG;
      break;
    }
    const char *s = json_string_value(t);
    size_t slen = json_string_length(t);
    const json_t *rj = json_object_get(ch, "range");
    size_t a = 0, b = len;
    if (rj && !json_is_null(rj)) {
      lsp_range r;
      if (lsp_range_parse(rj, &r)) {
        rc = LSP_ERANGE;
        break;
      }
      a = lsp_offset_at(text, len, r.start);
      b = lsp_offset_at(text, len, r.end);
      if (b < a) b = a;
    }
    if (len - (b - a) + slen > LSP_MAX_DOCUMENT_BYTES) {
      rc = LSP_ETOOBIG;
      break;
    }
    size_t nlen;
    char *nt = splice(text, len, a, b, s, slen, &nlen);
    if (!nt) {
      rc = LSP_ENOMEM;
      break;
    }
    free(text);
    text = nt;
    len = nlen;
  }
  if (rc == LSP_OK && d->bytes - doc->len + len > LSP_MAX_STORE_BYTES) rc = LSP_ETOOMANY;
  if (rc != LSP_OK) {
    free(text);
    return rc;
  }
  d->bytes = d->bytes - doc->len + len;
  free(doc->text);
  doc->text = text;
  doc->len = len;
  doc->version = version;
  doc->touched = ++d->counter;
  return LSP_OK;
}

int lsp_docs_set_text(lsp_docs *d, const char *path, const char *text, size_t len) {
  if (!d || !path || !text) return LSP_EARG;
  lsp_doc *doc = (lsp_doc *)lsp_docs_find_path(d, path);
  if (!doc) return LSP_ENOTOPEN;
  if (len > LSP_MAX_DOCUMENT_BYTES) return LSP_ETOOBIG;
  char *nt = qc_strndup(text, len);
  if (!nt) return LSP_ENOMEM;
  d->bytes = d->bytes - doc->len + len;
  free(doc->text);
  doc->text = nt;
  doc->len = len;
  doc->version = LSP_VERSION_UNKNOWN;
  doc->touched = ++d->counter;
  return LSP_OK;
}

int lsp_docs_close(lsp_docs *d, const char *uri) {
  if (!d || !uri) return LSP_EARG;
  char *path = lsp_uri_to_path(uri);
  lsp_doc *doc = path ? find_path(d, path) : NULL;
  free(path);
  if (!doc) return LSP_ENOTOPEN;
  d->bytes -= doc->len;
  doc_release(doc);
  size_t k = (size_t)(doc - d->v);
  memmove(&d->v[k], &d->v[k + 1], (d->n - k - 1) * sizeof *d->v);
  d->n--;
  return LSP_OK;
}

size_t lsp_docs_recent(const lsp_docs *d, const lsp_doc **out, size_t max) {
  if (!d || !out) return 0;
  size_t n = 0;
  /* selection by recency: the store is small and max is a handful */
  uint64_t below = UINT64_MAX;
  while (n < max) {
    const lsp_doc *best = NULL;
    for (size_t i = 0; i < d->n; i++)
      if (d->v[i].touched < below && (!best || d->v[i].touched > best->touched)) best = &d->v[i];
    if (!best) break;
    out[n++] = best;
    below = best->touched;
  }
  return n;
}
