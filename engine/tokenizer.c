/* tokenizer.c — Qwen2/Qwen3 byte-level BPE: vocabulary checks, encode, decode, streaming.
 *
 * The pipeline and its rules are described in tokenizer.h. What this file adds is how it
 * is made fast and safe:
 *
 * - Everything is in id space. Each byte starts as its byte token (byte_id[]), and a merge
 *   is a hash lookup of the pair (left id, right id) → (rank, merged id), built once from
 *   the "A B" strings. No strings are built while encoding.
 * - Short pre-tokens (the vast majority: words, operators, indentation) are merged with a
 *   linked list whose pair ranks are cached, scanning for the lowest rank; long ones
 *   (runs of '=' or spaces can be megabytes) use a binary heap, O(n log n). Both pick the
 *   lowest rank, leftmost on ties, which is the rule HF and llama.cpp follow.
 * - Each encode call keeps a cache of pre-token → ids, so identifiers repeated in a source
 *   file are merged once. The cache is per call, so concurrent calls never share state.
 * - NFC is applied only around the characters it can change (combining marks, Hangul
 *   jamo, precomposed letters above U+0300): ASCII, Latin-1, CJK and emoji text never
 *   reaches utf8proc, and already-normal text is not copied (see nfc_normalize).
 */
#include "engine/tokenizer.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pcre2.h>
#include <utf8proc.h>

#include "common/common.h"
#include "engine/gguf.h"
#include "engine/internal.h"
#include "engine/limits.h"

/* ---- the regex ----------------------------------------------------------------------- */

/* The Qwen2 pre-tokenizer, verbatim from Qwen's tokenizer.json (llama.cpp's QWEN2 entry is
 * the same with the case-insensitive group spelt out). */
static const char qwen2_regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* Unicode White_Space, the set `\s` means to HF (Oniguruma) and llama.cpp. PCRE2 with UCP
 * also counts U+180E (MONGOLIAN VOWEL SEPARATOR, a format character since Unicode 6.3), so
 * `\s` / `\S` are rewritten with this class before compiling. */
static const char white_space_class[] =
    "\\t-\\r \\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}";

/* Rewrite \s and \S of `re` with white_space_class. Malloc'd, NULL when out of memory or
 * when \S appears inside a class (not expressible; the Qwen2 regex has none). */
static char *expand_whitespace(const char *re) {
  qc_buf b;
  qc_buf_init(&b, 0);
  int in_class = 0;
  for (const char *p = re; *p; p++) {
    if (p[0] == '\\' && p[1]) {
      if (p[1] == 's' || p[1] == 'S') {
        int neg = p[1] == 'S';
        if (in_class && neg) goto fail;
        if (!in_class && qc_buf_puts(&b, neg ? "[^" : "[")) goto fail;
        if (qc_buf_puts(&b, white_space_class)) goto fail;
        if (!in_class && qc_buf_putc(&b, ']')) goto fail;
      } else if (qc_buf_append(&b, p, 2)) {
        goto fail;
      }
      p++;
      continue;
    }
    if (!in_class && p[0] == '[') {
      in_class = 1;
      if (qc_buf_putc(&b, '[')) goto fail;
      if (p[1] == '^') {
        if (qc_buf_putc(&b, '^')) goto fail;
        p++;
      }
      if (p[1] == ']') {   /* a ']' first in a class is a literal */
        if (qc_buf_putc(&b, ']')) goto fail;
        p++;
      }
      continue;
    }
    if (in_class && p[0] == ']') in_class = 0;
    if (qc_buf_putc(&b, p[0])) goto fail;
  }
  return qc_buf_detach(&b, NULL);
fail:
  qc_buf_release(&b);
  return NULL;
}

/* ---- the GPT-2 byte <-> unicode map -------------------------------------------------- */

/* Bytes 0x21-0x7E, 0xA1-0xAC and 0xAE-0xFF stand for themselves; the other 68 bytes map, in
 * increasing order, to U+0100, U+0101, … (space → U+0120 'Ġ', '\n' → U+010A 'Ċ'). */
#define BYTE_CP_END 0x144  /* one past the largest code point the map uses (U+0143) */

static void byte_map_init(uint16_t byte_cp[256], int16_t cp_byte[BYTE_CP_END]) {
  for (int i = 0; i < BYTE_CP_END; i++) cp_byte[i] = -1;
  int next = 0x100;
  for (int b = 0; b < 256; b++) {
    int self = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    byte_cp[b] = (uint16_t)(self ? b : next++);
    cp_byte[byte_cp[b]] = (int16_t)b;
  }
}

/* ---- hashing ------------------------------------------------------------------------- */

static inline uint64_t hash_bytes(const void *p, size_t n) {
  /* 8 bytes at a time, each word mixed in with a multiply and a shift (splitmix-style) */
  const unsigned char *s = p;
  uint64_t h = 0x9e3779b97f4a7c15ull ^ n, w;
  while (n >= 8) {
    memcpy(&w, s, 8);
    h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
    s += 8;
    n -= 8;
  }
  if (n >= 4) {  /* the tail as two overlapping 4-byte words (the length is in h already) */
    uint32_t a, b;
    memcpy(&a, s, 4);
    memcpy(&b, s + n - 4, 4);
    w = ((uint64_t)a << 32) | b;
  } else {
    w = n ? (uint64_t)s[0] | (uint64_t)s[n / 2] << 8 | (uint64_t)s[n - 1] << 16 : 0;
  }
  h = (h ^ w) * 0x94d049bb133111ebull;
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 32;
  return h;
}

static inline uint64_t hash_pair(uint64_t key) {
  key ^= key >> 31;
  key *= 0x9e3779b97f4a7c15ull;
  key ^= key >> 29;
  return key;
}

static size_t pow2_at_least(size_t n) {
  size_t c = 16;
  while (c < n) c <<= 1;
  return c;
}

/* ---- the tokenizer ------------------------------------------------------------------- */

typedef struct merge_val {
  int32_t rank;
  int32_t id;  /* the merged token */
} merge_val;

#define PAIR_EMPTY UINT64_MAX
#define SLOT_EMPTY UINT64_MAX

typedef struct tok_rec {
  size_t text_off, bytes_off;  /* into text_pool, bytes_pool */
  uint32_t text_len, bytes_len;
} tok_rec;

struct eng__tok {
  size_t n_tokens;
  char *text_pool;          /* each token's text in GGUF form, NUL-terminated */
  char *bytes_pool;         /* each token's decoded bytes, NUL-terminated */
  tok_rec *rec;
  uint8_t *type;

  uint64_t *text_slots;     /* open addressing: text → (hash >> 32) << 32 | id; ~0 empty */
  size_t text_mask;

  size_t n_merges;
  uint64_t *pair_keys;      /* (left << 32) | right; PAIR_EMPTY empty */
  merge_val *pair_vals;
  size_t pair_mask;

  int32_t byte_id[256];

  int32_t *added;           /* CONTROL and USER_DEFINED ids, longest text first */
  size_t n_added;
  uint8_t added_first[256]; /* 1 if some added token starts with this byte */

  int32_t eos_id, eot_id, bos_id, pad_id;
  int32_t eog[16];
  size_t n_eog;

  pcre2_code *re;
  int re_jit;               /* JIT compiled: use pcre2_jit_match */
};

/* The slot holding text s[0..n), or the empty slot where it would go. The slots keep the
 * hash's high half, so a probe rarely touches a token that is not the one looked for (the
 * vocabulary is megabytes: each touch is a cache miss). */
static size_t text_slot(const eng__tok *t, const char *s, size_t n) {
  uint64_t h = hash_bytes(s, n), tag = h >> 32 << 32;
  size_t i = (size_t)h & t->text_mask;
  for (;;) {
    uint64_t v = t->text_slots[i];
    if (v == SLOT_EMPTY) return i;
    if ((v & 0xffffffff00000000ull) == tag) {
      const tok_rec *r = &t->rec[(uint32_t)v];
      if (r->text_len == n && memcmp(t->text_pool + r->text_off, s, n) == 0) return i;
    }
    i = (i + 1) & t->text_mask;
  }
}

static int32_t text_find(const eng__tok *t, const char *s, size_t n) {
  uint64_t v = t->text_slots[text_slot(t, s, n)];
  return v == SLOT_EMPTY ? -1 : (int32_t)(uint32_t)v;
}

static inline const merge_val *pair_find(const eng__tok *t, int32_t a, int32_t b) {
  uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
  size_t i = (size_t)hash_pair(key) & t->pair_mask;
  for (;;) {
    uint64_t k = t->pair_keys[i];
    if (k == key) return &t->pair_vals[i];
    if (k == PAIR_EMPTY) return NULL;
    i = (i + 1) & t->pair_mask;
  }
}

void eng__tok_free(eng__tok *t) {
  if (!t) return;
  free(t->text_pool);
  free(t->bytes_pool);
  free(t->rec);
  free(t->type);
  free(t->text_slots);
  free(t->pair_keys);
  free(t->pair_vals);
  free(t->added);
  if (t->re) pcre2_code_free(t->re);
  free(t);
}

/* Length of the valid UTF-8 prefix of s[0..n) (n when all of it is valid): the offset of
 * the first byte that does not start a well-formed sequence. Same rules as
 * qc_utf8_valid (no overlongs, surrogates or code points past U+10FFFF). */
static size_t utf8_valid_prefix(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    while (i + 8 <= n) {  /* ASCII runs 8 bytes at a time */
      uint64_t w;
      memcpy(&w, s + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;  /* range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return i;
    }
    if (n - i < len || s[i + 1] < lo || s[i + 1] > hi) return i;
    for (size_t k = 2; k < len; k++)
      if ((s[i + k] & 0xC0) != 0x80) return i;
    i += len;
  }
  return n;
}

/* The code point at s (valid UTF-8) and its length in bytes. */
static inline uint32_t utf8_decode(const unsigned char *s, size_t *len) {
  unsigned c = s[0];
  if (c < 0x80) return *len = 1, c;
  if (c < 0xE0) return *len = 2, ((c & 0x1Fu) << 6) | (s[1] & 0x3Fu);
  if (c < 0xF0) return *len = 3, ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
  return *len = 4, ((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
}

/* Decode a NORMAL token's byte-level text into bytes (out has room for n bytes). Returns
 * the byte count, or -1 (with *bad the offending code point) when a character is not in
 * the byte map. The text is valid UTF-8. */
static long byte_level_decode(const int16_t cp_byte[BYTE_CP_END], const unsigned char *s, size_t n,
                              char *out, uint32_t *bad) {
  size_t i = 0, o = 0;
  while (i < n) {
    size_t len;
    uint32_t cp = utf8_decode(s + i, &len);
    i += len;
    if (cp >= BYTE_CP_END || cp_byte[cp] < 0) {
      *bad = cp;
      return -1;
    }
    out[o++] = (char)cp_byte[cp];
  }
  return (long)o;
}

static const char *type_name(int type) {
  switch (type) {
  case ENG__TOKT_NORMAL: return "normal";
  case ENG__TOKT_UNKNOWN: return "unknown";
  case ENG__TOKT_CONTROL: return "control";
  case ENG__TOKT_USER_DEFINED: return "user-defined";
  case ENG__TOKT_UNUSED: return "unused";
  case ENG__TOKT_BYTE: return "byte";
  default: return "?";
  }
}

/* Token text for messages: printable ASCII as is, the rest escaped, cut at ~40 bytes. */
static const char *quote_text(const char *s, size_t n, char *buf, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < n && o + 8 < cap; i++) {
    unsigned char c = (unsigned char)s[i];
    if (i >= 40) {
      o += (size_t)snprintf(buf + o, cap - o, "...");
      break;
    }
    if (c >= 0x20 && c < 0x7F && c != '\\' && c != '\'') buf[o++] = (char)c;
    else o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
  }
  buf[o] = '\0';
  return buf;
}

static int cmp_added(const void *a, const void *b, void *ctx) {
  const eng__tok *t = ctx;
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  if (t->rec[x].text_len != t->rec[y].text_len) return t->rec[x].text_len > t->rec[y].text_len ? -1 : 1;
  return x < y ? -1 : x > y;
}

static int cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return x < y ? -1 : x > y;
}

static void add_eog(eng__tok *t, int32_t id) {
  if (id < 0 || (size_t)id >= t->n_tokens) return;
  for (size_t i = 0; i < t->n_eog; i++)
    if (t->eog[i] == id) return;
  if (t->n_eog < sizeof t->eog / sizeof t->eog[0]) t->eog[t->n_eog++] = id;
}

static int check_special_id(const char *what, int32_t id, size_t n_tokens, eng_error *err) {
  if (id < -1 || (id >= 0 && (size_t)id >= n_tokens))
    return eng__err(err, ENG_EFORMAT, "tokenizer.ggml.%s %d is outside the vocabulary (%zu tokens)",
                    what, (int)id, n_tokens);
  return 0;
}

int eng__tok_build(const eng__tok_spec *spec, eng__tok **out, eng_error *err) {
  *out = NULL;
  char q[200], q2[200];
  int rc = ENG_ENOMEM;
  size_t n = spec->n_tokens;
  if (n < 256 || n > ENG__MAX_VOCAB)
    return eng__err(err, ENG_EFORMAT, "the vocabulary has %zu tokens; expected 256 to %u", n,
                    (unsigned)ENG__MAX_VOCAB);
  if (spec->n_merges > ENG__TOK_MAX_MERGES)
    return eng__err(err, ENG_EFORMAT, "the tokenizer has %zu merges; at most %u are accepted",
                    spec->n_merges, (unsigned)ENG__TOK_MAX_MERGES);
  if ((rc = check_special_id("eos_token_id", spec->eos_id, n, err)) ||
      (rc = check_special_id("eot_token_id", spec->eot_id, n, err)) ||
      (rc = check_special_id("bos_token_id", spec->bos_id, n, err)) ||
      (rc = check_special_id("padding_token_id", spec->pad_id, n, err)))
    return rc;

  eng__tok *t = calloc(1, sizeof *t);
  if (!t) return eng__err(err, ENG_ENOMEM, "out of memory building the tokenizer");
  rc = ENG_ENOMEM;
  t->n_tokens = n;
  t->eos_id = spec->eos_id;
  t->eot_id = spec->eot_id;
  t->bos_id = spec->bos_id;
  t->pad_id = spec->pad_id;

  uint16_t byte_cp[256];
  int16_t cp_byte[BYTE_CP_END];
  byte_map_init(byte_cp, cp_byte);

  /* 1. token texts, types, decoded bytes */
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    size_t len = spec->token_lens[i];
    int type = spec->token_types ? spec->token_types[i] : ENG__TOKT_NORMAL;
    if (type < ENG__TOKT_NORMAL || type > ENG__TOKT_BYTE) {
      rc = eng__err(err, ENG_EFORMAT, "token %zu has type %d; GGUF token types are 1 to 6", i, type);
      goto fail;
    }
    if (len > ENG__TOK_MAX_TOKEN_BYTES) {
      rc = eng__err(err, ENG_EFORMAT, "token %zu is %zu bytes long; at most %u are accepted", i, len,
                    (unsigned)ENG__TOK_MAX_TOKEN_BYTES);
      goto fail;
    }
    if (len == 0 && type != ENG__TOKT_UNUSED) {
      rc = eng__err(err, ENG_EFORMAT, "token %zu (%s) is empty", i, type_name(type));
      goto fail;
    }
    size_t bad = utf8_valid_prefix((const unsigned char *)spec->tokens[i], len);
    if (bad != len) {
      rc = eng__err(err, ENG_EFORMAT, "token %zu is not valid UTF-8 (byte %zu of '%s')", i, bad,
                    quote_text(spec->tokens[i], len, q, sizeof q));
      goto fail;
    }
    total += len + 1;
  }
  t->text_pool = malloc(total);
  t->bytes_pool = malloc(total);  /* decoded bytes are never longer than the text */
  t->rec = malloc(n * sizeof *t->rec);
  t->type = malloc(n);
  if (!t->text_pool || !t->bytes_pool || !t->rec || !t->type) goto nomem;
  size_t off = 0, boff = 0;
  for (size_t i = 0; i < n; i++) {
    size_t len = spec->token_lens[i];
    int type = spec->token_types ? spec->token_types[i] : ENG__TOKT_NORMAL;
    t->type[i] = (uint8_t)type;
    memcpy(t->text_pool + off, spec->tokens[i], len);
    t->text_pool[off + len] = '\0';
    t->rec[i].text_off = off;
    t->rec[i].text_len = (uint32_t)len;
    t->rec[i].bytes_off = boff;
    long blen;
    if (type == ENG__TOKT_NORMAL || type == ENG__TOKT_BYTE) {
      uint32_t cp = 0;
      blen = byte_level_decode(cp_byte, (const unsigned char *)spec->tokens[i], len,
                               t->bytes_pool + boff, &cp);
      if (blen < 0) {
        rc = eng__err(err, ENG_EFORMAT,
                      "token %zu ('%s', %s) contains U+%04X, which is not a byte-level character",
                      i, quote_text(spec->tokens[i], len, q, sizeof q), type_name(type), (unsigned)cp);
        goto fail;
      }
    } else if (type == ENG__TOKT_UNUSED) {
      blen = 0;
    } else {
      memcpy(t->bytes_pool + boff, spec->tokens[i], len);
      blen = (long)len;
    }
    t->bytes_pool[boff + (size_t)blen] = '\0';
    t->rec[i].bytes_len = (uint32_t)blen;
    off += len + 1;
    boff += (size_t)blen + 1;
  }

  /* 2. text → id, refusing duplicates */
  size_t cap = pow2_at_least(n * 2);
  t->text_mask = cap - 1;
  t->text_slots = malloc(cap * sizeof *t->text_slots);
  if (!t->text_slots) goto nomem;
  memset(t->text_slots, 0xff, cap * sizeof *t->text_slots);
  for (size_t i = 0; i < n; i++) {
    const char *s = t->text_pool + t->rec[i].text_off;
    size_t len = t->rec[i].text_len;
    size_t h = text_slot(t, s, len);
    if (t->text_slots[h] != SLOT_EMPTY) {
      rc = eng__err(err, ENG_EFORMAT, "tokens %d and %zu are both '%s'", (int)(uint32_t)t->text_slots[h],
                    i, quote_text(s, len, q, sizeof q));
      goto fail;
    }
    t->text_slots[h] = (hash_bytes(s, len) >> 32 << 32) | (uint32_t)i;
  }

  /* 3. byte tokens */
  for (int b = 0; b < 256; b++) {
    char u[4];
    size_t ul = (size_t)utf8proc_encode_char(byte_cp[b], (utf8proc_uint8_t *)u);
    int32_t id = text_find(t, u, ul);
    if (id < 0 || (t->type[id] != ENG__TOKT_NORMAL && t->type[id] != ENG__TOKT_BYTE)) {
      rc = eng__err(err, ENG_EFORMAT, "the vocabulary has no token for byte 0x%02x (U+%04X)", b,
                    (unsigned)byte_cp[b]);
      goto fail;
    }
    t->byte_id[b] = id;
  }

  /* 4. merges: "A B" → (id A, id B) → (rank, id AB) */
  t->n_merges = spec->n_merges;
  cap = pow2_at_least(spec->n_merges * 2 + 1);
  t->pair_mask = cap - 1;
  t->pair_keys = malloc(cap * sizeof *t->pair_keys);
  t->pair_vals = malloc(cap * sizeof *t->pair_vals);
  if (!t->pair_keys || !t->pair_vals) goto nomem;
  memset(t->pair_keys, 0xff, cap * sizeof *t->pair_keys);
  int32_t last_ab = 255;
  char *joined = malloc(2 * ENG__TOK_MAX_TOKEN_BYTES + 2);
  if (!joined) goto nomem;
  for (size_t r = 0; r < spec->n_merges; r++) {
    const char *s = spec->merges[r];
    size_t len = spec->merge_lens[r];
    const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
    if (len > 2 * ENG__TOK_MAX_TOKEN_BYTES + 1 || !sp || sp == s + len - 1) {
      free(joined);
      rc = eng__err(err, ENG_EFORMAT, "merge %zu ('%s') is not two tokens separated by a space", r,
                    quote_text(s, len, q, sizeof q));
      goto fail;
    }
    size_t la = (size_t)(sp - s), lb = len - la - 1;
    int32_t a = text_find(t, s, la), b = text_find(t, sp + 1, lb);
    memcpy(joined, s, la);
    memcpy(joined + la, sp + 1, lb);
    /* converted vocabularies put the token a merge creates right after the previous one's
     * (Qwen: id 256 + rank); checking that guess first saves a random probe per merge */
    int32_t ab = -1;
    if (a >= 0 && b >= 0) {
      size_t g = (size_t)last_ab + 1;
      if (g < n && t->rec[g].text_len == la + lb && memcmp(t->text_pool + t->rec[g].text_off, joined, la + lb) == 0)
        ab = (int32_t)g;
      else
        ab = text_find(t, joined, la + lb);
      last_ab = ab;
    }
    if (a < 0 || b < 0 || ab < 0) {
      const char *which = a < 0 ? s : b < 0 ? sp + 1 : joined;
      size_t wl = a < 0 ? la : b < 0 ? lb : la + lb;
      quote_text(which, wl, q2, sizeof q2);
      free(joined);
      rc = eng__err(err, ENG_EFORMAT, "merge %zu ('%s') refers to '%s', which is not in the vocabulary",
                    r, quote_text(s, len, q, sizeof q), q2);
      goto fail;
    }
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t h = (size_t)hash_pair(key) & t->pair_mask;
    while (t->pair_keys[h] != PAIR_EMPTY && t->pair_keys[h] != key) h = (h + 1) & t->pair_mask;
    if (t->pair_keys[h] == key) {
      free(joined);
      rc = eng__err(err, ENG_EFORMAT, "merge %zu ('%s') repeats merge %d", r,
                    quote_text(s, len, q, sizeof q), (int)t->pair_vals[h].rank);
      goto fail;
    }
    t->pair_keys[h] = key;
    t->pair_vals[h] = (merge_val){(int32_t)r, ab};
  }
  free(joined);

  /* 5. added tokens, longest first */
  for (size_t i = 0; i < n; i++)
    if (t->type[i] == ENG__TOKT_CONTROL || t->type[i] == ENG__TOKT_USER_DEFINED) t->n_added++;
  if (t->n_added) {
    t->added = malloc(t->n_added * sizeof *t->added);
    if (!t->added) goto nomem;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
      if (t->type[i] == ENG__TOKT_CONTROL || t->type[i] == ENG__TOKT_USER_DEFINED) {
        t->added[k++] = (int32_t)i;
        t->added_first[(unsigned char)t->text_pool[t->rec[i].text_off]] = 1;
      }
    qsort_r(t->added, t->n_added, sizeof *t->added, cmp_added, t);
  }

  /* 6. end-of-generation set: the metadata's eos/eot and the Qwen stop tokens by text (a
   * truncated test vocabulary renumbers them) */
  add_eog(t, t->eos_id);
  add_eog(t, t->eot_id);
  static const char *const eog_texts[] = {"<|endoftext|>", "<|im_end|>", "<|fim_pad|>",
                                          "<|repo_name|>", "<|file_sep|>"};
  for (size_t i = 0; i < sizeof eog_texts / sizeof eog_texts[0]; i++)
    add_eog(t, text_find(t, eog_texts[i], strlen(eog_texts[i])));
  qsort(t->eog, t->n_eog, sizeof t->eog[0], cmp_i32);

  /* 7. the pre-tokenizer */
  char *pattern = expand_whitespace(qwen2_regex);
  if (!pattern) goto nomem;
  int ecode;
  PCRE2_SIZE eoff;
  t->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &ecode,
                        &eoff, NULL);
  free(pattern);
  if (!t->re) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(ecode, msg, sizeof msg);
    rc = eng__err(err, ENG_EUNSUPPORTED, "PCRE2 cannot compile the Qwen2 regex: %s", (char *)msg);
    goto fail;
  }
  /* without JIT (a kernel that forbids executable memory) the interpreter gives the same
   * matches, only slower */
  t->re_jit = pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE) == 0;

  *out = t;
  return ENG_OK;
nomem:
  rc = eng__err(err, ENG_ENOMEM, "out of memory building the tokenizer (%zu tokens, %zu merges)", n,
                spec->n_merges);
fail:
  eng__tok_free(t);
  return rc;
}

/* ---- loading from GGUF --------------------------------------------------------------- */

/* `tokenizer.ggml.pre` values llama.cpp maps to the same Qwen2 regex
 * (llama-vocab.cpp: LLAMA_VOCAB_PRE_TYPE_QWEN2). */
static const char *const qwen2_pre_names[] = {"qwen2", "deepseek-r1-qwen"};

static int get_opt_id(const eng__gguf *g, const char *key, int32_t *out, eng_error *err) {
  uint32_t v;
  *out = -1;
  int rc = eng__gguf_get_u32(g, key, &v, err);
  if (rc < 0) return rc;
  if (rc == 1) {
    if (v > INT32_MAX) return eng__err(err, ENG_EFORMAT, "%s is %u, past any token id", key, v);
    *out = (int32_t)v;
  }
  return 0;
}

int eng__tok_load(const eng__gguf *g, eng__tok **out, eng_error *err) {
  *out = NULL;
  const char *s;
  size_t len;
  int rc = eng__gguf_get_str(g, "tokenizer.ggml.model", &s, &len, err);
  if (rc < 0) return rc;
  if (rc == 0) return eng__err(err, ENG_EFORMAT, "the file has no tokenizer (tokenizer.ggml.model is missing)");
  char q[200];
  if (len != 4 || memcmp(s, "gpt2", 4) != 0)
    return eng__err(err, ENG_EUNSUPPORTED,
                    "tokenizer model '%s' is not supported (qcoder reads byte-level BPE, 'gpt2')",
                    quote_text(s, len, q, sizeof q));
  rc = eng__gguf_get_str(g, "tokenizer.ggml.pre", &s, &len, err);
  if (rc < 0) return rc;
  if (rc == 0)
    return eng__err(err, ENG_EUNSUPPORTED,
                    "tokenizer.ggml.pre is missing; qcoder supports the 'qwen2' pre-tokenizer");
  int pre_ok = 0;
  for (size_t i = 0; i < sizeof qwen2_pre_names / sizeof qwen2_pre_names[0]; i++)
    if (strlen(qwen2_pre_names[i]) == len && memcmp(s, qwen2_pre_names[i], len) == 0) pre_ok = 1;
  if (!pre_ok)
    return eng__err(err, ENG_EUNSUPPORTED,
                    "pre-tokenizer '%s' is not supported (qcoder supports 'qwen2', the Qwen2/Qwen3 regex)",
                    quote_text(s, len, q, sizeof q));

  eng__gguf_arr toks, types, merges;
  int have_types;
  rc = eng__gguf_get_arr(g, "tokenizer.ggml.tokens", &toks, err);
  if (rc < 0) return rc;
  if (rc == 0) return eng__err(err, ENG_EFORMAT, "tokenizer.ggml.tokens is missing");
  if (toks.type != ENG__GGUF_STRING)
    return eng__err(err, ENG_EFORMAT, "tokenizer.ggml.tokens is an array of %s; expected strings",
                    eng__gguf_type_name(toks.type));
  if (toks.count < 256 || toks.count > ENG__MAX_VOCAB)
    return eng__err(err, ENG_EFORMAT, "tokenizer.ggml.tokens has %llu entries; expected 256 to %u",
                    (unsigned long long)toks.count, (unsigned)ENG__MAX_VOCAB);
  rc = have_types = eng__gguf_get_arr(g, "tokenizer.ggml.token_type", &types, err);
  if (rc < 0) return rc;
  if (have_types) {
    if (types.type != ENG__GGUF_I32 && types.type != ENG__GGUF_U32 && types.type != ENG__GGUF_I8 &&
        types.type != ENG__GGUF_U8 && types.type != ENG__GGUF_I16 && types.type != ENG__GGUF_U16)
      return eng__err(err, ENG_EFORMAT, "tokenizer.ggml.token_type is an array of %s; expected integers",
                      eng__gguf_type_name(types.type));
    if (types.count != toks.count)
      return eng__err(err, ENG_EFORMAT,
                      "tokenizer.ggml.token_type has %llu entries but there are %llu tokens",
                      (unsigned long long)types.count, (unsigned long long)toks.count);
  }
  rc = eng__gguf_get_arr(g, "tokenizer.ggml.merges", &merges, err);
  if (rc < 0) return rc;
  if (rc == 0) return eng__err(err, ENG_EFORMAT, "tokenizer.ggml.merges is missing");
  if (merges.type != ENG__GGUF_STRING)
    return eng__err(err, ENG_EFORMAT, "tokenizer.ggml.merges is an array of %s; expected strings",
                    eng__gguf_type_name(merges.type));
  if (merges.count > ENG__TOK_MAX_MERGES)
    return eng__err(err, ENG_EFORMAT, "tokenizer.ggml.merges has %llu entries; at most %u are accepted",
                    (unsigned long long)merges.count, (unsigned)ENG__TOK_MAX_MERGES);

  eng__tok_spec spec = {.n_tokens = toks.count, .n_merges = merges.count};
  if ((rc = get_opt_id(g, "tokenizer.ggml.eos_token_id", &spec.eos_id, err)) ||
      (rc = get_opt_id(g, "tokenizer.ggml.eot_token_id", &spec.eot_id, err)) ||
      (rc = get_opt_id(g, "tokenizer.ggml.bos_token_id", &spec.bos_id, err)) ||
      (rc = get_opt_id(g, "tokenizer.ggml.padding_token_id", &spec.pad_id, err)))
    return rc;

  const char **tp = malloc(toks.count * sizeof *tp);
  size_t *tl = malloc(toks.count * sizeof *tl);
  int32_t *tt = have_types ? malloc(toks.count * sizeof *tt) : NULL;
  const char **mp = malloc((merges.count + 1) * sizeof *mp);
  size_t *ml = malloc((merges.count + 1) * sizeof *ml);
  if (!tp || !tl || (have_types && !tt) || !mp || !ml) {
    rc = eng__err(err, ENG_ENOMEM, "out of memory reading the vocabulary");
    goto out;
  }
  for (uint64_t i = 0; i < toks.count; i++) {
    tp[i] = eng__gguf_arr_str(&toks, i, &tl[i]);
    if (have_types) {
      int64_t v = eng__gguf_arr_i64(&types, i);
      tt[i] = v < 0 || v > 255 ? 0 : (int32_t)v;  /* out of range → type 0, refused by build */
    }
  }
  for (uint64_t i = 0; i < merges.count; i++) mp[i] = eng__gguf_arr_str(&merges, i, &ml[i]);
  spec.tokens = tp;
  spec.token_lens = tl;
  spec.token_types = tt;
  spec.merges = mp;
  spec.merge_lens = ml;
  rc = eng__tok_build(&spec, out, err);
out:
  free(tp);
  free(tl);
  free(tt);
  free(mp);
  free(ml);
  return rc;
}

/* ---- getters ------------------------------------------------------------------------- */

const char *eng__tok_bytes(const eng__tok *t, int32_t id, size_t *len) {
  if (id < 0 || (size_t)id >= t->n_tokens) {
    if (len) *len = 0;
    return NULL;
  }
  if (len) *len = t->rec[id].bytes_len;
  return t->bytes_pool + t->rec[id].bytes_off;
}

const char *eng__tok_text(const eng__tok *t, int32_t id, size_t *len) {
  if (id < 0 || (size_t)id >= t->n_tokens) {
    if (len) *len = 0;
    return NULL;
  }
  if (len) *len = t->rec[id].text_len;
  return t->text_pool + t->rec[id].text_off;
}

int32_t eng__tok_lookup(const eng__tok *t, const char *text, size_t len) {
  return text_find(t, text, len);
}

int eng__tok_type(const eng__tok *t, int32_t id) {
  return id < 0 || (size_t)id >= t->n_tokens ? 0 : t->type[id];
}

int eng__tok_is_eog(const eng__tok *t, int32_t id) {
  for (size_t i = 0; i < t->n_eog; i++)
    if (t->eog[i] == id) return 1;
  return 0;
}

void eng__tok_get_info(const eng__tok *t, eng__tok_info *info) {
  *info = (eng__tok_info){
      .n_tokens = t->n_tokens, .n_merges = t->n_merges, .n_added = t->n_added,
      .eos_id = t->eos_id, .bos_id = t->bos_id, .pad_id = t->pad_id, .eot_id = t->eot_id,
      .n_eog = t->n_eog, .eog = t->eog, .model = "gpt2", .pre = "qwen2",
  };
}

/* ---- encoding ------------------------------------------------------------------------ */

/* Pre-tokens at most this long (bytes) go through the linked-list scan; longer ones
 * through the heap. Measured on random lowercase words (release build): the scan is faster
 * up to 64 bytes, the heap twice as fast at 96. */
#define BPE_SCAN_MAX 64
/* Pre-tokens at most this long are cached per encode call. */
#define CACHE_PIECE_MAX 48
/* Entries of the per-call cache: bounds its memory (1 MB of slots plus the keys and ids);
 * when full, new words are merged without being remembered. */
#define CACHE_ENTRIES (1u << 15)

typedef struct cache_ent {
  uint32_t hash;      /* 0 = empty slot */
  uint32_t key_off;   /* into keys */
  uint16_t key_len;
  uint16_t n_ids;
  uint32_t ids_off;   /* into ids */
} cache_ent;

typedef struct heap_ent {
  int32_t rank;
  int32_t left;       /* symbol index of the pair's left part */
  int32_t lid, rid;   /* ids of the two parts when pushed (stale entries are skipped) */
  int32_t merged;
} heap_ent;

typedef struct encoder {
  const eng__tok *t;
  int32_t *ids;
  size_t n_ids, cap_ids;
  /* BPE scratch */
  int32_t *sym, *prev, *next, *rank;
  size_t cap_sym;
  heap_ent *heap;
  size_t n_heap, cap_heap;
  /* pre-token cache */
  cache_ent *cache;           /* open addressing, at most half full; grown by doubling */
  size_t n_cache, cache_slots;
  qc_buf keys;
  int32_t *cids;
  size_t n_cids, cap_cids;
  pcre2_match_data *md;
  int bpe_method;             /* 0 auto, 1 scan, 2 heap (test hook) */
  size_t *ends;               /* when non-NULL: record piece ends instead of encoding */
  size_t n_ends, cap_ends;
} encoder;

static void encoder_release(encoder *e) {
  free(e->ids);
  free(e->sym);
  free(e->prev);
  free(e->next);
  free(e->rank);
  free(e->heap);
  free(e->cache);
  qc_buf_release(&e->keys);
  free(e->cids);
  free(e->ends);
  if (e->md) pcre2_match_data_free(e->md);
}

static int grow_i32(int32_t **p, size_t *cap, size_t need) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 64;
  while (c < need) c *= 2;
  int32_t *q = realloc(*p, c * sizeof *q);
  if (!q) return -1;
  *p = q;
  *cap = c;
  return 0;
}

static inline int emit(encoder *e, int32_t id) {
  if (e->n_ids == e->cap_ids && grow_i32(&e->ids, &e->cap_ids, e->n_ids + 1)) return -1;
  e->ids[e->n_ids++] = id;
  return 0;
}

static int scratch_reserve(encoder *e, size_t n) {
  if (n <= e->cap_sym) return 0;
  size_t c = e->cap_sym ? e->cap_sym : 64;
  while (c < n) c *= 2;
  int32_t *a = realloc(e->sym, c * sizeof *a);
  if (!a) return -1;
  e->sym = a;
  if (!(a = realloc(e->prev, c * sizeof *a))) return -1;
  e->prev = a;
  if (!(a = realloc(e->next, c * sizeof *a))) return -1;
  e->next = a;
  if (!(a = realloc(e->rank, c * sizeof *a))) return -1;
  e->rank = a;
  e->cap_sym = c;
  return 0;
}

/* rank of merging symbol i with its right neighbour; INT32_MAX when none */
static inline int32_t pair_rank(const encoder *e, int32_t i, int32_t *merged) {
  int32_t j = e->next[i];
  if (j < 0) return INT32_MAX;
  const merge_val *v = pair_find(e->t, e->sym[i], e->sym[j]);
  if (!v) return INT32_MAX;
  *merged = v->id;
  return v->rank;
}

/* Linked list with cached pair ranks; each step scans for the lowest rank. O(n^2) in the
 * worst case, fastest for the short pre-tokens that make up almost all text. */
static void bpe_scan(encoder *e, int32_t n) {
  int32_t *merged = e->prev;  /* prev[] is not needed by the scan: reuse it */
  for (int32_t i = 0; i < n; i++) e->next[i] = i + 1 < n ? i + 1 : -1;
  for (int32_t i = 0; i < n; i++) e->rank[i] = pair_rank(e, i, &merged[i]);
  for (;;) {
    int32_t best = -1, best_rank = INT32_MAX, before = -1, prev_i = -1;
    for (int32_t i = 0; i >= 0; prev_i = i, i = e->next[i])
      if (e->rank[i] < best_rank) best_rank = e->rank[i], best = i, before = prev_i;
    if (best < 0) break;
    int32_t right = e->next[best];
    e->sym[best] = merged[best];
    e->next[best] = e->next[right];
    e->rank[best] = pair_rank(e, best, &merged[best]);
    if (before >= 0) e->rank[before] = pair_rank(e, before, &merged[before]);
  }
}

static inline int heap_less(const heap_ent *a, const heap_ent *b) {
  return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static int heap_push(encoder *e, heap_ent x) {
  if (e->n_heap == e->cap_heap) {
    size_t c = e->cap_heap ? e->cap_heap * 2 : 256;
    heap_ent *h = realloc(e->heap, c * sizeof *h);
    if (!h) return -1;
    e->heap = h;
    e->cap_heap = c;
  }
  size_t i = e->n_heap++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!heap_less(&x, &e->heap[p])) break;
    e->heap[i] = e->heap[p];
    i = p;
  }
  e->heap[i] = x;
  return 0;
}

static heap_ent heap_pop(encoder *e) {
  heap_ent top = e->heap[0], x = e->heap[--e->n_heap];
  size_t i = 0, n = e->n_heap;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && heap_less(&e->heap[c + 1], &e->heap[c])) c++;
    if (!heap_less(&e->heap[c], &x)) break;
    e->heap[i] = e->heap[c];
    i = c;
  }
  if (n) e->heap[i] = x;
  return top;
}

static int heap_push_pair(encoder *e, int32_t i) {
  int32_t merged;
  int32_t r = i >= 0 ? pair_rank(e, i, &merged) : INT32_MAX;
  if (r == INT32_MAX) return 0;
  return heap_push(e, (heap_ent){r, i, e->sym[i], e->sym[e->next[i]], merged});
}

/* Binary heap of candidate pairs ordered by (rank, position): O(n log n) for pre-tokens of
 * any length. Stale entries (a part already merged away) are recognised by their ids. */
static int bpe_heap(encoder *e, int32_t n) {
  for (int32_t i = 0; i < n; i++) {
    e->prev[i] = i - 1;
    e->next[i] = i + 1 < n ? i + 1 : -1;
  }
  e->n_heap = 0;
  for (int32_t i = 0; i + 1 < n; i++)
    if (heap_push_pair(e, i)) return -1;
  while (e->n_heap) {
    heap_ent h = heap_pop(e);
    int32_t l = h.left, r = e->next[l];
    if (e->sym[l] != h.lid || r < 0 || e->sym[r] != h.rid) continue;
    e->sym[l] = h.merged;
    e->sym[r] = -1;
    e->next[l] = e->next[r];
    if (e->next[l] >= 0) e->prev[e->next[l]] = l;
    if (heap_push_pair(e, e->prev[l]) || heap_push_pair(e, l)) return -1;
  }
  return 0;
}

/* Merge one pre-token and append its ids. */
static int bpe_piece(encoder *e, const unsigned char *p, size_t n) {
  const eng__tok *t = e->t;
  if (n == 1) return emit(e, t->byte_id[p[0]]);
  if (scratch_reserve(e, n)) return -1;
  for (size_t i = 0; i < n; i++) e->sym[i] = t->byte_id[p[i]];
  int scan = e->bpe_method ? e->bpe_method == 1 : n <= BPE_SCAN_MAX;
  if (scan) bpe_scan(e, (int32_t)n);
  else if (bpe_heap(e, (int32_t)n)) return -1;
  for (int32_t i = 0; i >= 0; i = e->next[i])
    if (emit(e, e->sym[i])) return -1;
  return 0;
}

/* Double the cache's slots (rehashing from the stored hashes). */
static int cache_grow(encoder *e) {
  size_t slots = e->cache_slots ? e->cache_slots * 2 : 256, mask = slots - 1;
  cache_ent *c = calloc(slots, sizeof *c);
  if (!c) return -1;
  for (size_t k = 0; k < e->cache_slots; k++) {
    if (!e->cache[k].hash) continue;
    size_t i = e->cache[k].hash & mask;
    while (c[i].hash) i = (i + 1) & mask;
    c[i] = e->cache[k];
  }
  if (!e->cache) qc_buf_init(&e->keys, 0);
  free(e->cache);
  e->cache = c;
  e->cache_slots = slots;
  return 0;
}

/* Pre-token through the cache. */
static int encode_piece(encoder *e, const unsigned char *p, size_t n) {
  if (n == 1) return emit(e, e->t->byte_id[p[0]]);
  if (n > CACHE_PIECE_MAX) return bpe_piece(e, p, n);
  if (e->n_cache * 2 >= e->cache_slots && e->cache_slots < CACHE_ENTRIES * 2 && cache_grow(e))
    return -1;
  uint32_t h = (uint32_t)hash_bytes(p, n) | 1u;
  size_t mask = e->cache_slots - 1, i = h & mask;
  for (;;) {
    cache_ent *c = &e->cache[i];
    if (c->hash == 0) break;
    if (c->hash == h && c->key_len == n && memcmp(e->keys.data + c->key_off, p, n) == 0) {
      if (e->n_ids + c->n_ids > e->cap_ids && grow_i32(&e->ids, &e->cap_ids, e->n_ids + c->n_ids))
        return -1;
      memcpy(e->ids + e->n_ids, e->cids + c->ids_off, c->n_ids * sizeof *e->ids);
      e->n_ids += c->n_ids;
      return 0;
    }
    i = (i + 1) & mask;
  }
  size_t start = e->n_ids;
  if (bpe_piece(e, p, n)) return -1;
  size_t got = e->n_ids - start;
  if (e->n_cache >= CACHE_ENTRIES || e->keys.len > UINT32_MAX - n || e->n_cids > UINT32_MAX - got)
    return 0;
  if (grow_i32(&e->cids, &e->cap_cids, e->n_cids + got)) return -1;
  cache_ent c = {h, (uint32_t)e->keys.len, (uint16_t)n, (uint16_t)got, (uint32_t)e->n_cids};
  if (qc_buf_append(&e->keys, p, n)) return -1;
  memcpy(e->cids + e->n_cids, e->ids + start, got * sizeof *e->ids);
  e->n_cids += got;
  e->cache[i] = c;
  e->n_cache++;
  return 0;
}

static int record_end(encoder *e, size_t end) {
  if (e->n_ends == e->cap_ends) {
    size_t c = e->cap_ends * 2;
    size_t *q = realloc(e->ends, c * sizeof *q);
    if (!q) return -1;
    e->ends = q;
    e->cap_ends = c;
  }
  e->ends[e->n_ends++] = end;
  return 0;
}

/* ---- NFC ----------------------------------------------------------------------------- */

/* NFC is local: text can be cut at any "boundary" and each part normalised alone (UAX #15).
 * There is a boundary before every character that is NFC-stable with canonical combining
 * class 0 — every code point below U+0300 is one — and after every character that also
 * never composes with a following one. Characters that are both ("inert": CJK, most
 * letters of most scripts, emoji) are skipped, and utf8proc only sees the short stretches
 * around combining marks, Hangul jamo and precomposed letters. */
static int nfc_inert(uint32_t cp) {
  if ((cp >= 0x1100 && cp <= 0x11FF) || (cp >= 0xAC00 && cp <= 0xD7A3)) return 0;  /* Hangul */
  const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)cp);
  return p->combining_class == 0 && p->comb_index == UINT16_MAX &&
         (p->decomp_seqindex == UINT16_MAX || p->decomp_type != 0 /* compatibility only */);
}


/* NFC of valid UTF-8 s[0..n). Returns 0 with *out NULL when s is already in NFC (the usual
 * case: nothing is allocated), 0 with *out malloc'd otherwise, or a negative utf8proc
 * error. */
static long nfc_normalize(const char *s, size_t n, char **out, size_t *out_n) {
  const unsigned char *u = (const unsigned char *)s;
  qc_buf b;
  int used = 0;
  size_t i = 0, rstart = 0, copied = 0;
  *out = NULL;
  *out_n = n;
  while (i < n) {
    if (u[i] < 0x80) {  /* an ASCII run, 8 bytes at a time: a boundary before each */
      size_t j = i + 1;
      for (uint64_t w; j + 8 <= n; j += 8) {
        memcpy(&w, u + j, 8);
        if (w & 0x8080808080808080ull) break;
      }
      while (j < n && u[j] < 0x80) j++;
      rstart = j - 1;
      i = j;
      continue;
    }
    if (u[i] < 0xCC) {  /* U+0080..U+02FF: a boundary before it too */
      rstart = i;
      i += 2;
      continue;
    }
    size_t len;
    uint32_t cp = utf8_decode(u + i, &len);
    if (nfc_inert(cp)) {
      i += len;
      rstart = i;
      continue;
    }
    size_t j = i + len;
    while (j < n && u[j] >= 0xCC) {
      cp = utf8_decode(u + j, &len);
      if (nfc_inert(cp)) break;
      j += len;
    }
    utf8proc_uint8_t *norm = NULL;
    utf8proc_ssize_t m = utf8proc_map(u + rstart, (utf8proc_ssize_t)(j - rstart), &norm,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (m < 0) {
      if (used) qc_buf_release(&b);
      return (long)m;
    }
    if ((size_t)m != j - rstart || memcmp(norm, u + rstart, (size_t)m) != 0) {
      if (!used) qc_buf_init(&b, 0), used = 1;
      if (qc_buf_append(&b, u + copied, rstart - copied) || qc_buf_append(&b, norm, (size_t)m)) {
        free(norm);
        qc_buf_release(&b);
        return UTF8PROC_ERROR_NOMEM;
      }
      copied = j;
    }
    free(norm);
    i = rstart = j;
  }
  if (!used) return 0;
  if (qc_buf_append(&b, u + copied, n - copied)) {
    qc_buf_release(&b);
    return UTF8PROC_ERROR_NOMEM;
  }
  *out = qc_buf_detach(&b, out_n);
  return *out ? 0 : UTF8PROC_ERROR_NOMEM;
}

int eng__tok_nfc(const char *s, size_t n, char **out, size_t *out_n) {
  long rc = nfc_normalize(s, n, out, out_n);
  if (rc < 0) return ENG_ENOMEM;
  if (!*out) {
    *out = qc_strndup(s, n);
    if (!*out) return ENG_ENOMEM;
  }
  return ENG_OK;
}

/* NFC, split, merge one text segment (valid UTF-8, no added tokens inside). */
static int encode_segment(encoder *e, const char *s, size_t n, eng_error *err) {
  if (n == 0) return 0;
  const eng__tok *t = e->t;
  char *norm = NULL;
  size_t nn;
  long nrc = nfc_normalize(s, n, &norm, &nn);
  if (nrc < 0) {
    if (nrc == UTF8PROC_ERROR_NOMEM) return eng__err(err, ENG_ENOMEM, "out of memory normalising text");
    return eng__err(err, ENG_EARG, "cannot normalise the text: %s", utf8proc_errmsg((utf8proc_ssize_t)nrc));
  }
  if (norm) {
    s = norm;
    n = nn;
  }
  int rc = ENG_OK;
  const unsigned char *u = (const unsigned char *)s;
  size_t off = 0;
  while (off < n) {
    int m = t->re_jit ? pcre2_jit_match(t->re, u, n, off, PCRE2_NO_UTF_CHECK, e->md, NULL)
                      : pcre2_match(t->re, u, n, off, PCRE2_NO_UTF_CHECK, e->md, NULL);
    if (m == PCRE2_ERROR_JIT_STACKLIMIT)  /* interpreter: heap-allocated backtracking */
      m = pcre2_match(t->re, u, n, off, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, e->md, NULL);
    size_t ms, me;
    if (m == PCRE2_ERROR_NOMATCH) {
      ms = me = n;
    } else if (m < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(m, msg, sizeof msg);
      rc = eng__err(err, ENG_EARG, "the pre-tokenizer regex failed at byte %zu: %s", off, (char *)msg);
      goto out;
    } else {
      PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->md);
      ms = ov[0];
      me = ov[1];
      if (me <= ms) {  /* cannot happen with this regex; step one character to stay safe */
        me = ms + 1;
        while (me < n && (u[me] & 0xC0) == 0x80) me++;
      }
    }
    /* text the regex skipped is a piece of its own (HF "Isolated" splitting) */
    if (e->ends) {
      if ((ms > off && record_end(e, ms)) || (me > ms && ms < n && record_end(e, me))) goto nomem;
    } else {
      if (ms > off && encode_piece(e, u + off, ms - off)) goto nomem;
      if (me > ms && ms < n && encode_piece(e, u + ms, me - ms)) goto nomem;
    }
    off = me;
  }
  goto out;
nomem:
  rc = eng__err(err, ENG_ENOMEM, "out of memory tokenizing");
out:
  free(norm);
  return rc;
}

/* The added token matching at s[0..n), or -1 (longest first). */
static int32_t match_added(const eng__tok *t, const char *s, size_t n, int parse_special) {
  for (size_t k = 0; k < t->n_added; k++) {
    int32_t id = t->added[k];
    size_t len = t->rec[id].text_len;
    if (len > n) continue;
    if (!parse_special && t->type[id] != ENG__TOKT_USER_DEFINED) continue;
    const char *txt = t->text_pool + t->rec[id].text_off;
    if (txt[len - 1] == s[len - 1] && memcmp(s, txt, len) == 0) return id;
  }
  return -1;
}

int eng__tok_encode(const eng__tok *t, const char *text, size_t len, int parse_special,
                    int32_t **ids, size_t *n_ids, eng_error *err) {
  *ids = NULL;
  *n_ids = 0;
  if (!text && len) return eng__err(err, ENG_EARG, "no text given");
  if (len > ENG__TOK_MAX_TEXT)
    return eng__err(err, ENG_EARG, "the text is %zu bytes; at most %zu can be tokenized at once", len,
                    (size_t)ENG__TOK_MAX_TEXT);
  size_t bad = utf8_valid_prefix((const unsigned char *)text, len);
  if (bad != len)
    return eng__err(err, ENG_EARG, "the text is not valid UTF-8: byte 0x%02x at offset %zu",
                    (unsigned char)text[bad], bad);
  encoder e = {.t = t};
  int rc = ENG_OK;
  e.md = pcre2_match_data_create_from_pattern(t->re, NULL);
  if (!e.md) goto nomem;
  size_t seg = 0;
  for (size_t i = 0; i < len; i++) {
    if (!t->added_first[(unsigned char)text[i]]) continue;
    int32_t id = match_added(t, text + i, len - i, parse_special);
    if (id < 0) continue;
    if ((rc = encode_segment(&e, text + seg, i - seg, err))) goto out;
    if (emit(&e, id)) goto nomem;
    i += t->rec[id].text_len - 1;
    seg = i + 1;
  }
  if ((rc = encode_segment(&e, text + seg, len - seg, err))) goto out;
  *ids = e.ids;
  *n_ids = e.n_ids;
  e.ids = NULL;
  goto out;
nomem:
  rc = eng__err(err, ENG_ENOMEM, "out of memory tokenizing");
out:
  encoder_release(&e);
  return rc;
}

int eng__tok_pretokenize(const eng__tok *t, const char *text, size_t len, size_t **ends, size_t *n,
                         eng_error *err) {
  *ends = NULL;
  *n = 0;
  if (utf8_valid_prefix((const unsigned char *)text, len) != len)
    return eng__err(err, ENG_EARG, "the text is not valid UTF-8");
  encoder e = {.t = t, .cap_ends = 16};
  int rc = ENG_ENOMEM;
  e.ends = malloc(e.cap_ends * sizeof *e.ends);
  e.md = pcre2_match_data_create_from_pattern(t->re, NULL);
  if (!e.ends || !e.md) goto out;
  if ((rc = encode_segment(&e, text, len, err))) goto out;
  *ends = e.ends;
  *n = e.n_ends;
  e.ends = NULL;
out:
  encoder_release(&e);
  return rc;
}

int eng__tok_bpe(const eng__tok *t, const void *piece, size_t len, int method, int32_t **ids,
                 size_t *n_ids) {
  *ids = NULL;
  *n_ids = 0;
  if (len == 0) return ENG_OK;
  encoder e = {.t = t, .bpe_method = method};
  int rc = bpe_piece(&e, piece, len) ? ENG_ENOMEM : ENG_OK;
  if (!rc) {
    *ids = e.ids;
    *n_ids = e.n_ids;
    e.ids = NULL;
  }
  encoder_release(&e);
  return rc;
}

/* ---- decoding ------------------------------------------------------------------------ */

int eng__tok_decode(const eng__tok *t, const int32_t *ids, size_t n, char **text, size_t *len,
                    eng_error *err) {
  *text = NULL;
  if (len) *len = 0;
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    if (ids[i] < 0 || (size_t)ids[i] >= t->n_tokens)
      return eng__err(err, ENG_ETOKEN, "token id %d at position %zu is outside the vocabulary (%zu tokens)",
                      (int)ids[i], i, t->n_tokens);
    total += t->rec[ids[i]].bytes_len;
  }
  char *s = malloc(total + 1);
  if (!s) return eng__err(err, ENG_ENOMEM, "out of memory decoding %zu tokens", n);
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    memcpy(s + o, t->bytes_pool + t->rec[ids[i]].bytes_off, t->rec[ids[i]].bytes_len);
    o += t->rec[ids[i]].bytes_len;
  }
  s[o] = '\0';
  *text = s;
  if (len) *len = o;
  return ENG_OK;
}

/* Streaming: `pending` holds at most the 3 bytes of a character still being completed;
 * everything before it is emitted, with invalid bytes replaced by U+FFFD. So the
 * concatenated output of all pushes and the flush equals qc_utf8_sanitize of the whole
 * decode: the held-back point is always a sequence boundary for the sanitiser. */
struct eng_detok {
  const eng__tok *t;
  qc_buf pending;
  qc_buf out;
};

eng_detok *eng__detok_new(const eng__tok *t) {
  if (!t) return NULL;
  eng_detok *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  d->t = t;
  qc_buf_init(&d->pending, 0);
  qc_buf_init(&d->out, 0);
  return d;
}

void eng_detok_free(eng_detok *d) {
  if (!d) return;
  qc_buf_release(&d->pending);
  qc_buf_release(&d->out);
  free(d);
}

/* Emit pending[0..k) sanitised into d->out and drop it from pending. */
static int detok_emit(eng_detok *d, size_t k) {
  qc_buf_reset(&d->out);
  if (k == 0) return ENG_OK;
  const char *p = d->pending.data;
  if (utf8_valid_prefix((const unsigned char *)p, k) == k) {
    if (qc_buf_append(&d->out, p, k)) return ENG_ENOMEM;
  } else {
    size_t m;
    char *s = qc_utf8_sanitize(p, k, &m);
    if (!s) return ENG_ENOMEM;
    int r = qc_buf_append(&d->out, s, m);
    free(s);
    if (r) return ENG_ENOMEM;
  }
  qc_buf_consume(&d->pending, k);
  return ENG_OK;
}

int eng_detok_push(eng_detok *d, int32_t id, const char **out, size_t *out_len) {
  *out = "";
  *out_len = 0;
  size_t n;
  const char *b = eng__tok_bytes(d->t, id, &n);
  if (!b) return ENG_ETOKEN;
  if (qc_buf_append(&d->pending, b, n)) return ENG_ENOMEM;
  int rc = detok_emit(d, qc_utf8_complete_len(d->pending.data, d->pending.len));
  if (rc) return rc;
  *out = d->out.data;
  *out_len = d->out.len;
  return ENG_OK;
}

int eng_detok_flush(eng_detok *d, const char **out, size_t *out_len) {
  *out = "";
  *out_len = 0;
  int rc = detok_emit(d, d->pending.len);
  if (rc) return rc;
  *out = d->out.data;
  *out_len = d->out.len;
  return ENG_OK;
}

/* ---- the public API (engine.h): the model's tokenizer -------------------------------- */

int eng_tokenize(const eng_model *m, const char *text, size_t len, int parse_special,
                 int32_t **ids, size_t *n_ids, eng_error *err) {
  if (!m || !ids || !n_ids) return eng__err(err, ENG_EARG, "eng_tokenize: no model or no output");
  return eng__tok_encode(eng__model_tok(m), text, len, parse_special, ids, n_ids, err);
}

long eng_count_tokens(const eng_model *m, const char *text, size_t len) {
  int32_t *ids;
  size_t n;
  int rc = eng_tokenize(m, text, len, 1, &ids, &n, NULL);
  if (rc) return rc;
  free(ids);
  return (long)n;
}

const char *eng_token_bytes(const eng_model *m, int32_t id, size_t *len) {
  if (!m) {
    if (len) *len = 0;
    return NULL;
  }
  return eng__tok_bytes(eng__model_tok(m), id, len);
}

int32_t eng_token_lookup(const eng_model *m, const char *text) {
  if (!m || !text) return -1;
  return eng__tok_lookup(eng__model_tok(m), text, strlen(text));
}

int eng_token_is_eog(const eng_model *m, int32_t id) {
  return m ? eng__tok_is_eog(eng__model_tok(m), id) : 0;
}

int eng_detokenize(const eng_model *m, const int32_t *ids, size_t n, char **text, size_t *len) {
  if (!m || !text || (n && !ids)) return ENG_EARG;
  return eng__tok_decode(eng__model_tok(m), ids, n, text, len, NULL);
}

eng_detok *eng_detok_new(const eng_model *m) {
  return m ? eng__detok_new(eng__model_tok(m)) : NULL;
}
