/* tokenizer_testonly.c — TEST-ONLY stand-in for engine/tokenizer.c until the tokenizer
 * branch is merged. It is linked into qc_engine only while engine/tokenizer.c is absent
 * (see engine/CMakeLists.txt); delete it when the real tokenizer lands.
 *
 * What it does: token ids → bytes (GPT-2 byte-level decoding of tokenizer.ggml.tokens),
 * exact vocabulary lookup, the end-of-generation set, streaming UTF-8-safe detokenizing.
 * What it does NOT do: encode text. eng_tokenize and eng_count_tokens fail with
 * ENG_EUNSUPPORTED ("test-only tokenizer"), so text prompts are refused, never faked.
 */
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "engine/internal.h"
#include "engine/tokenizer.h"

struct eng__tok {
  uint32_t n;
  char *bytes;        /* all decoded tokens back to back */
  size_t *off;        /* n + 1 offsets into bytes */
  uint8_t *eog;       /* per id */
  eng__gguf_arr tokens;
};

/* GPT-2 bytes_to_unicode inverse: code point → byte, or -1. */
static int cp_to_byte(uint32_t cp) {
  if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF)) return (int)cp;
  if (cp >= 0x100 && cp < 0x100 + 68) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
      if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) continue;
      if ((uint32_t)n == cp - 0x100) return b;
      n++;
    }
  }
  return -1;
}

int eng__tok_load(const eng__gguf *g, eng__tok **out, eng_error *err) {
  eng__tok *t = calloc(1, sizeof *t);
  if (!t) return eng__err(err, ENG_ENOMEM, "out of memory");
  int rc = eng__gguf_get_arr(g, "tokenizer.ggml.tokens", &t->tokens, err);
  if (rc <= 0 || t->tokens.type != ENG__GGUF_STRING || t->tokens.count == 0 || t->tokens.count > (1u << 22)) {
    free(t);
    return rc < 0 ? rc : eng__err(err, ENG_EFORMAT, "tokenizer.ggml.tokens is missing or not a string array");
  }
  eng__gguf_arr types = {0};
  int have_types = eng__gguf_get_arr(g, "tokenizer.ggml.token_type", &types, NULL) == 1 &&
                   types.count == t->tokens.count && types.type != ENG__GGUF_STRING;
  t->n = (uint32_t)t->tokens.count;
  size_t total = 0;
  for (uint32_t i = 0; i < t->n; i++) {
    size_t len;
    eng__gguf_arr_str(&t->tokens, i, &len);
    total += len;
  }
  t->bytes = malloc(total + 1);
  t->off = malloc((t->n + 1) * sizeof *t->off);
  t->eog = calloc(t->n, 1);
  if (!t->bytes || !t->off || !t->eog) {
    eng__tok_free(t);
    return eng__err(err, ENG_ENOMEM, "out of memory");
  }
  size_t w = 0;
  for (uint32_t i = 0; i < t->n; i++) {
    size_t len;
    const char *s = eng__gguf_arr_str(&t->tokens, i, &len);
    t->off[i] = w;
    int ttype = have_types ? (int)eng__gguf_arr_i64(&types, i) : 1;
    if (ttype == 3 || ttype == 4) {  /* control / user-defined: the text itself */
      memcpy(t->bytes + w, s, len);
      w += len;
      continue;
    }
    for (size_t k = 0; k < len;) {  /* UTF-8 decode, map code points to bytes */
      unsigned char c = (unsigned char)s[k];
      uint32_t cp;
      size_t l = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
      if (k + l > len) l = len - k;
      cp = l == 1 ? c : l == 2 ? c & 0x1F : l == 3 ? c & 0x0F : c & 0x07;
      for (size_t j = 1; j < l; j++) cp = (cp << 6) | ((unsigned char)s[k + j] & 0x3F);
      int b = cp_to_byte(cp);
      if (b >= 0) t->bytes[w++] = (char)b;
      else { memcpy(t->bytes + w, s + k, l); w += l; }
      k += l;
    }
  }
  t->off[t->n] = w;
  static const char *const eog_text[] = {"<|endoftext|>", "<|im_end|>", "<|fim_pad|>", "<|repo_name|>",
                                         "<|file_sep|>", "<|eot_id|>"};
  for (uint32_t i = 0; i < t->n; i++) {
    size_t len;
    const char *s = eng__gguf_arr_str(&t->tokens, i, &len);
    for (size_t k = 0; k < sizeof eog_text / sizeof *eog_text; k++)
      if (len == strlen(eog_text[k]) && memcmp(s, eog_text[k], len) == 0) t->eog[i] = 1;
  }
  uint32_t eos;
  if (eng__gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &eos, NULL) == 1 && eos < t->n) t->eog[eos] = 1;
  *out = t;
  return 0;
}

void eng__tok_free(eng__tok *t) {
  if (!t) return;
  free(t->bytes);
  free(t->off);
  free(t->eog);
  free(t);
}

int eng_tokenize(const eng_model *m, const char *text, size_t len, int parse_special, int32_t **ids,
                 size_t *n_ids, eng_error *err) {
  (void)m; (void)text; (void)len; (void)parse_special; (void)ids; (void)n_ids;
  return eng__err(err, ENG_EUNSUPPORTED, "text encoding needs engine/tokenizer.c (this build has the test-only tokenizer)");
}

long eng_count_tokens(const eng_model *m, const char *text, size_t len) {
  (void)m; (void)text; (void)len;
  return ENG_EUNSUPPORTED;
}

const char *eng_token_bytes(const eng_model *m, int32_t id, size_t *len) {
  const eng__tok *t = eng__model_tok(m);
  if (!t || id < 0 || (uint32_t)id >= t->n) return NULL;
  *len = t->off[id + 1] - t->off[id];
  return t->bytes + t->off[id];
}

int32_t eng_token_lookup(const eng_model *m, const char *text) {
  const eng__tok *t = eng__model_tok(m);
  size_t n = strlen(text);
  for (uint32_t i = 0; t && i < t->n; i++) {
    size_t len;
    const char *s = eng__gguf_arr_str(&t->tokens, i, &len);
    if (len == n && memcmp(s, text, n) == 0) return (int32_t)i;
  }
  return -1;
}

int eng_token_is_eog(const eng_model *m, int32_t id) {
  const eng__tok *t = eng__model_tok(m);
  return t && id >= 0 && (uint32_t)id < t->n && t->eog[id];
}

int eng_detokenize(const eng_model *m, const int32_t *ids, size_t n, char **text, size_t *len) {
  qc_buf b;
  qc_buf_init(&b, (size_t)1 << 30);
  for (size_t i = 0; i < n; i++) {
    size_t l;
    const char *s = eng_token_bytes(m, ids[i], &l);
    if (!s) { qc_buf_release(&b); return ENG_ETOKEN; }
    if (qc_buf_append(&b, s, l)) { qc_buf_release(&b); return ENG_ENOMEM; }
  }
  *text = qc_buf_detach(&b, len);
  return *text ? 0 : ENG_ENOMEM;
}

struct eng_detok {
  const eng_model *m;
  qc_buf pending, out;
};

eng_detok *eng_detok_new(const eng_model *m) {
  eng_detok *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  d->m = m;
  qc_buf_init(&d->pending, 1 << 20);
  qc_buf_init(&d->out, 1 << 20);
  return d;
}

void eng_detok_free(eng_detok *d) {
  if (!d) return;
  qc_buf_release(&d->pending);
  qc_buf_release(&d->out);
  free(d);
}

int eng_detok_push(eng_detok *d, int32_t id, const char **out, size_t *out_len) {
  size_t l;
  const char *s = eng_token_bytes(d->m, id, &l);
  if (!s) return ENG_ETOKEN;
  if (qc_buf_append(&d->pending, s, l)) return ENG_ENOMEM;
  size_t ok = qc_utf8_complete_len(d->pending.data, d->pending.len);
  qc_buf_reset(&d->out);
  if (qc_buf_append(&d->out, d->pending.data, ok)) return ENG_ENOMEM;
  qc_buf_consume(&d->pending, ok);
  *out = d->out.data;
  *out_len = d->out.len;
  return 0;
}

int eng_detok_flush(eng_detok *d, const char **out, size_t *out_len) {
  size_t n;
  char *s = qc_utf8_sanitize(d->pending.data, d->pending.len, &n);
  if (!s) return ENG_ENOMEM;
  qc_buf_reset(&d->out);
  qc_buf_reset(&d->pending);
  int rc = qc_buf_append(&d->out, s, n) ? ENG_ENOMEM : 0;
  free(s);
  *out = d->out.data;
  *out_len = d->out.len;
  return rc;
}
