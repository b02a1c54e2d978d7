/* test_tokenizer.c — the Qwen3 tokenizer against the oracle (llama.cpp and two Hugging Face
 * implementations agree on every case; on the 3 non-NFC strings we must give HF's ids),
 * round trips, streaming decode, the pre-tokenizer and BPE paths, and hostile
 * vocabularies that must fail with a message naming the problem. */
#include "tests/test.h"

#include <jansson.h>
#include <pthread.h>
#include <utf8proc.h>

#include "common/common.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"

/* ---- fixtures ------------------------------------------------------------------------- */

static eng__tok *tok_full, *tok_4096;

static void free_toks(void) {
  eng__tok_free(tok_full);
  eng__tok_free(tok_4096);
  tok_full = tok_4096 = NULL;
}

static eng__tok *load_path(const char *path) {
  eng_error err = {0};
  eng__gguf *g = NULL;
  ASSERT_MSG(eng__gguf_open(path, &g, &err) == 0, "%s: %s", path, err.msg);
  eng__tok *t = NULL;
  int rc = eng__tok_load(g, &t, &err);
  eng__gguf_close(g);  /* the tokenizer keeps no pointer into the file */
  ASSERT_MSG(rc == 0, "%s: %s", path, err.msg);
  return t;
}

/* The full 151936-id vocabulary (tests/data copy of the oracle's vocab-qwen3.gguf). */
static const eng__tok *full(void) {
  if (!tok_full) {
    char *p = qct_data_path("oracle/models/vocab-qwen3.gguf");
    tok_full = load_path(p);
    free(p);
    if (!tok_4096) atexit(free_toks);
  }
  return tok_full;
}

/* The truncated 4096-id vocabulary of the tiny models: tests/data when the engine's copy
 * is there, else the shared oracle folder; NULL (skip) when neither is. */
static const eng__tok *v4096(void) {
  if (!tok_4096) {
    char *p = qct_data_path("oracle/models/tiny-qwen3moe-f32.gguf");
    if (access(p, R_OK) != 0) {
      free(p);
      p = qct_shared_path("oracle/models/tiny-qwen3moe-f32.gguf");
    }
    if (!p) return NULL;
    tok_4096 = load_path(p);
    free(p);
    if (!tok_full) atexit(free_toks);
  }
  return tok_4096;
}

static json_t *load_json(const char *rel) {
  char *p = qct_data_path(rel);
  json_error_t je;
  json_t *j = json_load_file(p, 0, &je);
  ASSERT_MSG(j, "%s: %s", p, je.text);
  free(p);
  return j;
}

static char *unhex(const char *hex, size_t *n) {
  size_t len = strlen(hex) / 2;
  char *s = malloc(len + 1);
  for (size_t i = 0; i < len; i++) {
    unsigned v;
    sscanf(hex + 2 * i, "%2x", &v);
    s[i] = (char)v;
  }
  s[len] = '\0';
  *n = len;
  return s;
}

static int32_t *json_ids(json_t *arr, size_t *n) {
  *n = json_array_size(arr);
  int32_t *ids = malloc((*n + 1) * sizeof *ids);
  for (size_t i = 0; i < *n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(arr, i));
  return ids;
}

static char *fmt_ids(const int32_t *ids, size_t n) {
  qc_buf b;
  qc_buf_init(&b, 0);
  for (size_t i = 0; i < n && i < 64; i++) qc_buf_printf(&b, "%s%d", i ? "," : "", (int)ids[i]);
  if (n > 64) qc_buf_puts(&b, ",...");
  return qc_buf_detach(&b, NULL);
}

/* encode and compare; names the case and shows both id lists on a mismatch */
static void expect_ids(const eng__tok *t, const char *name, const char *s, size_t n, int parse_special,
                       const int32_t *want, size_t n_want) {
  int32_t *ids;
  size_t n_ids;
  eng_error err = {0};
  ASSERT_MSG(eng__tok_encode(t, s, n, parse_special, &ids, &n_ids, &err) == 0, "%s: %s", name, err.msg);
  int same = n_ids == n_want && (n_ids == 0 || memcmp(ids, want, n_ids * sizeof *ids) == 0);
  if (!same) {
    char *a = fmt_ids(ids, n_ids), *b = fmt_ids(want, n_want);
    QCT_FAIL("case %s (parse_special=%d):\n    got  %zu [%s]\n    want %zu [%s]", name, parse_special,
             n_ids, a, n_want, b);
  }
  free(ids);
}

static char *nfc(const char *s, size_t n, size_t *out_n) {
  utf8proc_uint8_t *d = NULL;
  utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &d,
                                    UTF8PROC_STABLE | UTF8PROC_COMPOSE);
  ASSERT(m >= 0);
  *out_n = (size_t)m;
  return (char *)d;
}

static void expect_roundtrip(const eng__tok *t, const char *name, const char *s, size_t n) {
  int32_t *ids;
  size_t n_ids, n_dec;
  char *dec;
  eng_error err = {0};
  ASSERT_MSG(eng__tok_encode(t, s, n, 1, &ids, &n_ids, &err) == 0, "%s: %s", name, err.msg);
  ASSERT_EQ_INT(eng__tok_decode(t, ids, n_ids, &dec, &n_dec, &err), 0);
  ASSERT_MSG(n_dec == n && memcmp(dec, s, n) == 0, "case %s: decode(encode(s)) != s", name);
  free(dec);
  free(ids);
}

/* Every oracle case: ids with special parsing on and off (when the file has the parse_special
 * false answers: the full-vocabulary one does), the NFD disagreements as HF. */
static void run_oracle(const eng__tok *t, const char *file, int has_special_false) {
  json_t *j = load_json(file);
  json_t *cases = json_object_get(j, "cases"), *c;
  size_t i, n_special_false = 0;
  ASSERT(json_array_size(cases) == 136);
  json_array_foreach(cases, i, c) {
    const char *name = json_string_value(json_object_get(c, "name"));
    size_t n, n_want;
    char *s = unhex(json_string_value(json_object_get(c, "text_hex")), &n);
    int32_t *want = json_ids(json_object_get(c, "ids"), &n_want);
    expect_ids(t, name, s, n, 1, want, n_want);
    json_t *psf = json_object_get(c, "ids_parse_special_false");
    if (psf) {
      free(want);
      want = json_ids(psf, &n_want);
      n_special_false++;
    }
    if (has_special_false) expect_ids(t, name, s, n, 0, want, n_want);
    free(want);
    free(s);
  }
  json_t *dis = json_object_get(j, "disagreements");
  ASSERT_EQ_INT(json_array_size(dis), 3);
  json_array_foreach(dis, i, c) {
    const char *name = json_string_value(json_object_get(c, "name"));
    size_t n, n_want, n_nfc;
    char *s = unhex(json_string_value(json_object_get(c, "text_hex")), &n);
    int32_t *want = json_ids(json_object_get(c, "hf_tokenizers_js"), &n_want);
    expect_ids(t, name, s, n, 1, want, n_want);
    free(want);
    if (json_object_get(c, "llama_cpp_on_nfc_text")) {
      want = json_ids(json_object_get(c, "llama_cpp_on_nfc_text"), &n_want);
      char *sn = nfc(s, n, &n_nfc);
      expect_ids(t, name, sn, n_nfc, 1, want, n_want);
      free(sn);
      free(want);
    }
    free(s);
  }
  if (has_special_false) ASSERT_EQ_INT(n_special_false, 10);
  json_decref(j);
}

/* ---- the oracle ----------------------------------------------------------------------- */

TEST(golden_vectors) {
  const eng__tok *t = full();
  int32_t a[] = {9707, 1879}, b[] = {21927, 1879};
  expect_ids(t, "hello", "Hello world", 11, 1, a, 2);
  expect_ids(t, "space-hello", " Hello world", 12, 1, b, 2);
  int32_t c[] = {2132, 594, 220, 16, 17, 18, 19, 20, 40676, 24796, 220, 220, 108386};
  const char *cs = "It's 12345 apples!!\n\n  \xe4\xbd\xa0\xe5\xa5\xbd";
  expect_ids(t, "apples", cs, strlen(cs), 1, c, 13);
  int32_t d[] = {151644, 872, 198, 6023, 151645};
  const char *ds = "<|im_start|>user\nhi<|im_end|>";
  expect_ids(t, "chatml", ds, strlen(ds), 1, d, 5);
}

TEST(oracle_full_vocab) { run_oracle(full(), "oracle/tokenizer/tokenizer-cases.json", 1); }

TEST(oracle_vocab4096) {
  const eng__tok *t = v4096();
  if (!t) SKIP("tiny-qwen3moe-f32.gguf is neither in tests/data nor in the shared oracle folder");
  run_oracle(t, "oracle/tokenizer/tokenizer-cases-vocab4096.json", 0);
}

/* One tokenizer, many threads at once: each call has its own scratch space and cache. */
typedef struct thread_job {
  const eng__tok *t;
  json_t *cases;
  int mismatches;
} thread_job;

static void *encode_all(void *arg) {
  thread_job *job = arg;
  for (int round = 0; round < 3; round++) {
    json_t *c;
    size_t i;
    json_array_foreach(job->cases, i, c) {
      size_t n, n_want, n_ids;
      char *s = unhex(json_string_value(json_object_get(c, "text_hex")), &n);
      int32_t *want = json_ids(json_object_get(c, "ids"), &n_want), *ids;
      eng_error err;
      if (eng__tok_encode(job->t, s, n, 1, &ids, &n_ids, &err) != 0 || n_ids != n_want ||
          (n_ids && memcmp(ids, want, n_ids * sizeof *ids) != 0))
        job->mismatches++;
      else
        free(ids);
      free(want);
      free(s);
    }
  }
  return NULL;
}

TEST(concurrent_encoding) {
  const eng__tok *t = full();
  json_t *j = load_json("oracle/tokenizer/tokenizer-cases.json");
  thread_job jobs[4];
  pthread_t th[4];
  for (int k = 0; k < 4; k++) {
    jobs[k] = (thread_job){t, json_object_get(j, "cases"), 0};
    ASSERT_EQ_INT(pthread_create(&th[k], NULL, encode_all, &jobs[k]), 0);
  }
  for (int k = 0; k < 4; k++) pthread_join(th[k], NULL);
  for (int k = 0; k < 4; k++) ASSERT_EQ_INT(jobs[k].mismatches, 0);
  json_decref(j);
}

/* 600 random strings (half of them NFD) with the ids Hugging Face's tokenizer gives. */
TEST(hf_random_strings) {
  const eng__tok *t = full();
  json_t *j = load_json("tokenizer/hf-random-600.json");
  json_t *c;
  size_t i;
  ASSERT_EQ_INT(json_array_size(json_object_get(j, "cases")), 600);
  json_array_foreach(json_object_get(j, "cases"), i, c) {
    size_t n, n_want;
    char *s = unhex(json_string_value(json_object_get(c, "text_hex")), &n);
    int32_t *want = json_ids(json_object_get(c, "ids"), &n_want);
    char name[32];
    snprintf(name, sizeof name, "hf-random #%zu", i);
    expect_ids(t, name, s, n, 1, want, n_want);
    free(want);
    free(s);
  }
  json_decref(j);
}

/* The full-vocabulary model file carries the same tokenizer (optional oracle file). */
TEST(oracle_fullvocab_model_file) {
  char *p = qct_shared_path("oracle/models/tiny-fullvocab-qwen3moe-q8_0.gguf");
  if (!p) SKIP("tiny-fullvocab-qwen3moe-q8_0.gguf is not in the shared oracle folder");
  eng__tok *t = load_path(p);
  free(p);
  run_oracle(t, "oracle/tokenizer/tokenizer-cases.json", 1);
  eng__tok_free(t);
}

/* The logit oracle's text cases (full-vocabulary model, optional file): the prompt tokens
 * llama.cpp fed the model, and the bytes of each token (llama_token_to_piece). */
TEST(oracle_text_prompts_and_pieces) {
  char *p = qct_shared_path("oracle/oracle/oracle-tiny-fullvocab-qwen3moe-q8_0.json");
  if (!p) SKIP("oracle-tiny-fullvocab-qwen3moe-q8_0.json is not in the shared oracle folder");
  const eng__tok *t = full();
  json_error_t je;
  json_t *j = json_load_file(p, 0, &je);
  ASSERT_MSG(j, "%s: %s", p, je.text);
  free(p);
  json_t *c;
  size_t i, n_text = 0;
  json_array_foreach(json_object_get(j, "cases"), i, c) {
    if (strcmp(json_string_value(json_object_get(c, "kind")), "text") != 0) continue;
    n_text++;
    const char *name = json_string_value(json_object_get(c, "name")), *text = json_string_value(json_object_get(c, "text"));
    size_t n_want;
    int32_t *want = json_ids(json_object_get(c, "tokens"), &n_want);
    expect_ids(t, name, text, strlen(text), 1, want, n_want);
    json_t *pieces = json_object_get(c, "pieces_hex");
    ASSERT_EQ_INT(json_array_size(pieces), n_want);
    for (size_t k = 0; k < n_want; k++) {
      size_t pn, bn;
      char *piece = unhex(json_string_value(json_array_get(pieces, k)), &pn);
      const char *b = eng__tok_bytes(t, want[k], &bn);
      ASSERT_MSG(b && bn == pn && memcmp(b, piece, pn) == 0, "%s: bytes of token %d differ", name, want[k]);
      free(piece);
    }
    free(want);
  }
  ASSERT_EQ_INT(n_text, 4);
  json_decref(j);
}

/* The public functions of engine.h reach the tokenizer of an opened model. */
TEST(public_api_through_model) {
  char *p = qct_data_path("oracle/models/vocab-qwen3.gguf");
  eng_model_opts opts = {.vocab_only = 1};
  eng_model *m = NULL;
  eng_error err = {0};
  ASSERT_MSG(eng_model_open(p, &opts, &m, &err) == 0, "%s", err.msg);
  free(p);
  int32_t *ids;
  size_t n;
  ASSERT_EQ_INT(eng_tokenize(m, "Hello world", 11, 1, &ids, &n, &err), 0);
  ASSERT(n == 2 && ids[0] == 9707 && ids[1] == 1879);
  free(ids);
  ASSERT_EQ_INT(eng_tokenize(m, "<|im_end|>", 10, 0, &ids, &n, &err), 0);
  ASSERT(n > 1);
  free(ids);
  ASSERT_EQ_INT(eng_count_tokens(m, "<|im_start|>user\nhi<|im_end|>", 29), 5);
  ASSERT_EQ_INT(eng_count_tokens(m, "\xff", 1), ENG_EARG);
  ASSERT_EQ_INT(eng_token_lookup(m, "<|im_end|>"), 151645);
  ASSERT_EQ_INT(eng_token_lookup(m, "no such token"), -1);
  ASSERT(eng_token_is_eog(m, 151645) && eng_token_is_eog(m, 151643) && !eng_token_is_eog(m, 151644));
  size_t len;
  const char *b = eng_token_bytes(m, 151667, &len);
  ASSERT(b && len == 7 && memcmp(b, "<think>", 7) == 0);
  ASSERT(eng_token_bytes(m, 1 << 30, &len) == NULL);
  int32_t seq[] = {9707, 1879, 151645};
  char *text;
  ASSERT_EQ_INT(eng_detokenize(m, seq, 3, &text, &len), 0);
  ASSERT_STR_EQ(text, "Hello world<|im_end|>");
  free(text);
  seq[2] = -5;
  ASSERT_EQ_INT(eng_detokenize(m, seq, 3, &text, &len), ENG_ETOKEN);
  eng_detok *d = eng_detok_new(m);
  ASSERT(d);
  const char *out;
  ASSERT_EQ_INT(eng_detok_push(d, 9707, &out, &len), 0);
  ASSERT(len == 5 && memcmp(out, "Hello", 5) == 0);
  ASSERT_EQ_INT(eng_detok_flush(d, &out, &len), 0);
  ASSERT_EQ_INT(len, 0);
  eng_detok_free(d);
  eng_model_close(m);
}

/* ---- round trips and decoding ---------------------------------------------------------- */

TEST(roundtrip_oracle_cases) {
  const eng__tok *t = full();
  json_t *j = load_json("oracle/tokenizer/tokenizer-cases.json");
  const char *sections[] = {"cases", "disagreements"};
  for (int k = 0; k < 2; k++) {
    json_t *c;
    size_t i;
    json_array_foreach(json_object_get(j, sections[k]), i, c) {
      size_t n, m;
      char *s = unhex(json_string_value(json_object_get(c, "text_hex")), &n);
      ASSERT(qc_utf8_valid(s, n));
      char *sn = nfc(s, n, &m);
      /* NFC text comes back byte for byte; other text comes back as its NFC form */
      expect_roundtrip(t, json_string_value(json_object_get(c, "name")), sn, m);
      if (k == 0) ASSERT_MSG(m == n && memcmp(s, sn, n) == 0, "an agreed case is not NFC");
      free(sn);
      free(s);
    }
  }
  json_decref(j);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 11);
}

/* A random code point from a mix that stresses the tokenizer: ASCII (most), whitespace
 * of every kind, Latin with combining marks, CJK, Hangul jamo, emoji with modifiers and
 * ZWJ, astral letters, private use, controls. */
static uint32_t random_cp(void) {
  static const uint32_t ws[] = {' ', '\t', '\n', '\r', 0x0B, 0x0C, 0x85, 0xA0, 0x1680, 0x2003,
                                0x2028, 0x2029, 0x202F, 0x3000, 0x180E, 0xFEFF, 0x200B, 0x200D};
  switch (rnd() % 16) {
  case 0: return ws[rnd() % (sizeof ws / sizeof ws[0])];
  case 1: return 0x300 + rnd() % 0x70;           /* combining diacritics */
  case 2: return 0xC0 + rnd() % 0x1C0;           /* Latin-1 and Extended */
  case 3: return 0x4E00 + rnd() % 0x5000;        /* CJK */
  case 4: return 0x1100 + rnd() % 0x100;         /* Hangul jamo (compose under NFC) */
  case 5: return 0x1F300 + rnd() % 0x300;        /* emoji */
  case 6: return 0x1F3FB + rnd() % 5;            /* skin tones */
  case 7: return 0x1D400 + rnd() % 0x400;        /* math letters (astral) */
  case 8: return rnd() % 0x20;                   /* controls, NUL included */
  case 9: return 0x0900 + rnd() % 0x80;          /* Devanagari */
  case 10: return 0xE000 + rnd() % 0x100;        /* private use */
  default: return 0x20 + rnd() % 0x5F;           /* printable ASCII */
  }
}

TEST(roundtrip_random_nfc_strings) {
  const eng__tok *t = full();
  static const char *frags[] = {"<|im_end|>", "<|im_start|>", "<think>", "'s", "'LL", "    ",
                                "\r\n", "1234567", "<|", "|>", "<tool_call"};
  char buf[256];
  for (int it = 0; it < 3000; it++) {
    size_t n = 0, want = rnd() % 48;
    while (n < want) {
      if (rnd() % 10 == 0) {
        const char *f = frags[rnd() % (sizeof frags / sizeof frags[0])];
        size_t fl = strlen(f);
        memcpy(buf + n, f, fl);
        n += fl;
      } else {
        uint32_t cp = random_cp();
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        n += (size_t)utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)buf + n);
      }
    }
    ASSERT(qc_utf8_valid(buf, n));
    size_t m;
    char *s = nfc(buf, n, &m);
    char name[32];
    snprintf(name, sizeof name, "random #%d", it);
    expect_roundtrip(t, name, s, m);
    free(s);
  }
}

/* The encoder normalises only around characters NFC can change; it must equal utf8proc's
 * NFC of the whole text. */
TEST(nfc_matches_utf8proc) {
  /* every code point below U+0300 is NFC-stable with combining class 0 (the encoder puts
   * a boundary before each) */
  char s[64];
  for (uint32_t cp = 0; cp < 0x300; cp++) {
    ASSERT_EQ_INT(utf8proc_get_property((utf8proc_int32_t)cp)->combining_class, 0);
    size_t n = (size_t)utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)s), m;
    char *d = nfc(s, n, &m);
    ASSERT_MSG(m == n && memcmp(d, s, n) == 0, "U+%04X is not NFC-stable", (unsigned)cp);
    free(d);
  }
  /* no canonical decomposition contains a character the encoder skips: decompose every
   * code point and check each part is normalised in context, via the public result */
  for (uint32_t cp = 0x300; cp < 0x110000; cp++) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)cp);
    if (p->decomp_seqindex == UINT16_MAX || p->decomp_type != 0) continue;
    utf8proc_int32_t parts[8];
    int last;
    utf8proc_ssize_t k = utf8proc_decompose_char((utf8proc_int32_t)cp, parts, 8, UTF8PROC_DECOMPOSE, &last);
    ASSERT(k > 0 && k <= 8);
    size_t n = 0;
    for (utf8proc_ssize_t i = 0; i < k; i++)
      n += (size_t)utf8proc_encode_char(parts[i], (utf8proc_uint8_t *)s + n);
    char *mine, *want;
    size_t mn, wn;
    ASSERT_EQ_INT(eng__tok_nfc(s, n, &mine, &mn), 0);
    want = nfc(s, n, &wn);
    ASSERT_MSG(mn == wn && memcmp(mine, want, wn) == 0, "NFC of the decomposition of U+%04X differs",
               (unsigned)cp);
    free(mine);
    free(want);
  }
  /* random text dense in marks, jamo and precomposed letters */
  static const uint32_t pool[] = {'a', 'e', 'o', 'u', 'A', ' ', 0xE9, 0xF4, 0x1EB9, 0x1EA1, 0x01B0,
                                  0x0301, 0x0300, 0x0323, 0x0302, 0x031B, 0x0338, '>', '=',
                                  0x1100, 0x1161, 0x11A8, 0xAC00, 0xAC01, 0x4E00, 0x0915, 0x093C,
                                  0x0B47, 0x0B3E, 0x0F71, 0x0F72, 0x212B, 0x2126, 0x1F600, 0x05D0,
                                  0x05B7, 0x3099, 0x304B, 0x0345, 0x0399};
  for (int it = 0; it < 20000; it++) {
    size_t n = 0, k = rnd() % 12;
    for (size_t i = 0; i < k; i++)
      n += (size_t)utf8proc_encode_char((utf8proc_int32_t)pool[rnd() % (sizeof pool / sizeof pool[0])],
                                        (utf8proc_uint8_t *)s + n);
    char *mine, *want;
    size_t mn, wn;
    ASSERT_EQ_INT(eng__tok_nfc(s, n, &mine, &mn), 0);
    want = nfc(s, n, &wn);
    ASSERT_MSG(mn == wn && memcmp(mine, want, wn) == 0, "NFC differs on random text #%d", it);
    free(mine);
    free(want);
  }
}

TEST(token_bytes_and_lookup) {
  const eng__tok *t = full();
  size_t n;
  const char *b = eng__tok_bytes(t, 198, &n);
  ASSERT(b && n == 1 && b[0] == '\n');
  b = eng__tok_bytes(t, 220, &n);
  ASSERT(b && n == 1 && b[0] == ' ');
  b = eng__tok_bytes(t, 151645, &n);
  ASSERT(b && n == 10 && memcmp(b, "<|im_end|>", 10) == 0);
  b = eng__tok_bytes(t, 151657, &n);  /* user-defined: text survives decoding */
  ASSERT(b && n == 11 && memcmp(b, "<tool_call>", 11) == 0);
  b = eng__tok_bytes(t, 151700, &n);  /* [PAD151700], unused: renders as nothing */
  ASSERT(b && n == 0);
  ASSERT(eng__tok_bytes(t, 151936, &n) == NULL);
  ASSERT(eng__tok_bytes(t, -1, &n) == NULL);
  ASSERT_EQ_INT(eng__tok_lookup(t, "<|im_end|>", 10), 151645);
  ASSERT_EQ_INT(eng__tok_lookup(t, "\xc4\xa0Hello", 7), 21927);
  ASSERT_EQ_INT(eng__tok_lookup(t, "<|im_end|", 9), -1);
  ASSERT_EQ_INT(eng__tok_type(t, 151645), ENG__TOKT_CONTROL);
  ASSERT_EQ_INT(eng__tok_type(t, 151667), ENG__TOKT_USER_DEFINED);
  ASSERT_EQ_INT(eng__tok_type(t, 9707), ENG__TOKT_NORMAL);
  eng__tok_info info;
  eng__tok_get_info(t, &info);
  ASSERT_EQ_INT(info.n_tokens, 151936);
  ASSERT_EQ_INT(info.n_merges, 151387);
  ASSERT_EQ_INT(info.n_added, 26);
  ASSERT_EQ_INT(info.eos_id, 151645);
  ASSERT_EQ_INT(info.bos_id, 151643);
  int32_t ids[] = {9707, 1879, 151645, 198};
  char *s;
  eng_error err = {0};
  ASSERT_EQ_INT(eng__tok_decode(t, ids, 4, &s, &n, &err), 0);
  ASSERT_STR_EQ(s, "Hello world<|im_end|>\n");
  free(s);
  ids[1] = 151936;
  ASSERT_EQ_INT(eng__tok_decode(t, ids, 4, &s, &n, &err), ENG_ETOKEN);
  ASSERT_CONTAINS(err.msg, "151936");
}

TEST(end_of_generation_set) {
  const eng__tok *t = full();
  int32_t eog[] = {151643, 151645, 151662, 151663, 151664};
  for (size_t i = 0; i < 5; i++) ASSERT_MSG(eng__tok_is_eog(t, eog[i]), "%d should end generation", eog[i]);
  int32_t not_eog[] = {151644, 151659, 151660, 151661, 151657, 198, 0, -1, 151936};
  for (size_t i = 0; i < sizeof not_eog / sizeof not_eog[0]; i++)
    ASSERT_MSG(!eng__tok_is_eog(t, not_eog[i]), "%d should not end generation", not_eog[i]);
  const eng__tok *s = v4096();
  if (!s) SKIP("no 4096-id vocabulary");
  int32_t eog2[] = {4070, 4072, 4089, 4090, 4091};  /* renumbered: found by text */
  for (size_t i = 0; i < 5; i++) ASSERT(eng__tok_is_eog(s, eog2[i]));
  ASSERT(!eng__tok_is_eog(s, 4071));
  ASSERT(!eng__tok_is_eog(s, 151645));
}

/* ---- streaming ------------------------------------------------------------------------- */

/* Push ids one at a time: every chunk is valid UTF-8 and the chunks plus the flush equal
 * the whole decode, with invalid bytes as U+FFFD. */
static void expect_stream(const eng__tok *t, const int32_t *ids, size_t n) {
  eng_detok *d = eng__detok_new(t);
  ASSERT(d);
  qc_buf got;
  qc_buf_init(&got, 0);
  const char *out;
  size_t len;
  for (size_t i = 0; i < n; i++) {
    ASSERT_EQ_INT(eng_detok_push(d, ids[i], &out, &len), 0);
    ASSERT_MSG(qc_utf8_valid(out, len), "chunk after token %zu is not valid UTF-8", i);
    qc_buf_append(&got, out, len);
  }
  ASSERT_EQ_INT(eng_detok_flush(d, &out, &len), 0);
  qc_buf_append(&got, out, len);
  char *whole, *want;
  size_t wn, want_n;
  eng_error err;
  ASSERT_EQ_INT(eng__tok_decode(t, ids, n, &whole, &wn, &err), 0);
  want = qc_utf8_sanitize(whole, wn, &want_n);
  ASSERT_MSG(got.len == want_n && memcmp(got.data, want, want_n) == 0, "streamed text differs");
  free(whole);
  free(want);
  qc_buf_release(&got);
  eng_detok_free(d);
}

TEST(streaming_decode) {
  const eng__tok *t = full();
  json_t *j = load_json("oracle/tokenizer/tokenizer-cases.json");
  json_t *c;
  size_t i;
  json_array_foreach(json_object_get(j, "cases"), i, c) {
    size_t n;
    int32_t *ids = json_ids(json_object_get(c, "ids"), &n);
    expect_stream(t, ids, n);
    free(ids);
  }
  json_decref(j);
  /* an emoji split over byte tokens is held back until complete */
  const char *wave = "\xf0\x9f\x91\x8b";  /* U+1F44B */
  int32_t ids[4];
  /* byte tokens by their byte-level text: 0xF0 → U+00F0 'ð', 0x9F → U+0141, 0x91 → U+0133,
   * 0x8B → U+012D (the 68 remapped bytes count up from U+0100; 0x7F is U+0121) */
  ids[0] = eng__tok_lookup(t, "\xc3\xb0", 2);
  ids[1] = eng__tok_lookup(t, "\xc5\x81", 2);
  ids[2] = eng__tok_lookup(t, "\xc4\xb3", 2);
  ids[3] = eng__tok_lookup(t, "\xc4\xad", 2);
  for (int k = 0; k < 4; k++) ASSERT(ids[k] >= 0);
  eng_detok *d = eng__detok_new(t);
  const char *out;
  size_t len;
  for (int k = 0; k < 3; k++) {
    ASSERT_EQ_INT(eng_detok_push(d, ids[k], &out, &len), 0);
    ASSERT_EQ_INT(len, 0);
  }
  ASSERT_EQ_INT(eng_detok_push(d, ids[3], &out, &len), 0);
  ASSERT(len == 4 && memcmp(out, wave, 4) == 0);
  /* an unfinished character at the end becomes U+FFFD, one per byte */
  ASSERT_EQ_INT(eng_detok_push(d, ids[0], &out, &len), 0);
  ASSERT_EQ_INT(len, 0);
  ASSERT_EQ_INT(eng_detok_push(d, ids[1], &out, &len), 0);
  ASSERT_EQ_INT(len, 0);
  ASSERT_EQ_INT(eng_detok_flush(d, &out, &len), 0);
  ASSERT(len == 6 && memcmp(out, "\xef\xbf\xbd\xef\xbf\xbd", 6) == 0);
  /* a stray continuation byte is not held back: it is replaced at once */
  ASSERT_EQ_INT(eng_detok_push(d, ids[2], &out, &len), 0);
  ASSERT(len == 3 && memcmp(out, "\xef\xbf\xbd", 3) == 0);
  /* an interrupted character: F0 9F then 'A' */
  int32_t mixed[] = {ids[0], ids[1], 32, ids[0], ids[1], ids[2], ids[3], 151645, ids[3], ids[0]};
  expect_stream(t, mixed, sizeof mixed / sizeof mixed[0]);
  ASSERT_EQ_INT(eng_detok_push(d, 151936, &out, &len), ENG_ETOKEN);
  eng_detok_free(d);
  /* random ids: the invariants hold for any sequence */
  int32_t r[64];
  for (int it = 0; it < 300; it++) {
    size_t n = rnd() % 64;
    for (size_t k = 0; k < n; k++) r[k] = (int32_t)(rnd() % 4 ? rnd() % 300 : rnd() % 151936);
    expect_stream(t, r, n);
  }
}

/* ---- pre-tokenizer and BPE -------------------------------------------------------------- */

static void expect_pieces(const eng__tok *t, const char *s, const char *const *want, size_t n_want) {
  size_t *ends, n;
  eng_error err;
  ASSERT_EQ_INT(eng__tok_pretokenize(t, s, strlen(s), &ends, &n, &err), 0);
  size_t start = 0;
  int ok = n == n_want;
  for (size_t i = 0; ok && i < n; i++) {
    ok = strlen(want[i]) == ends[i] - start && memcmp(s + start, want[i], ends[i] - start) == 0;
    start = ends[i];
  }
  if (!ok) {
    fprintf(stderr, "  pieces of \"%s\":", s);
    start = 0;
    for (size_t i = 0; i < n; i++) {
      fprintf(stderr, " [%.*s]", (int)(ends[i] - start), s + start);
      start = ends[i];
    }
    fputc('\n', stderr);
    QCT_FAIL("unexpected pre-tokenization");
  }
  free(ends);
}

TEST(pretokenizer_regex) {
  const eng__tok *t = full();
  /* digits one by one; a space run gives its last space to the word after it */
  const char *a[] = {"It", "'s", " ", "1", "2", "3", " apples", "!!\n\n", " ", " \xe4\xbd\xa0\xe5\xa5\xbd"};
  expect_pieces(t, "It's 123 apples!!\n\n  \xe4\xbd\xa0\xe5\xa5\xbd", a, 10);
  const char *b[] = {"WE", "'LL", " don", "'t", "\n", "   ", " x"};
  expect_pieces(t, "WE'LL don't\n    x", b, 7);
  const char *c[] = {"int", " main", "()", " {\n", "    ", " return", " ", "0", ";\n", "}"};
  expect_pieces(t, "int main() {\n     return 0;\n}", c, 10);
  /* U+180E is a format character, not white space (HF, llama.cpp); PCRE2's own \s would
   * cut "x", "\u180E", "!" */
  const char *d[] = {"x", "\xe1\xa0\x8e!"};
  expect_pieces(t, "x\xe1\xa0\x8e!", d, 2);
  /* U+00A0 and U+3000 are white space */
  const char *e[] = {"a", "\xc2\xa0", "\xe3\x80\x80" "b"};
  expect_pieces(t, "a\xc2\xa0\xe3\x80\x80" "b", e, 3);
}

TEST(bpe_scan_equals_heap) {
  const eng__tok *t = full();
  /* the linked-list scan and the heap must agree on any piece; pieces from a small
   * alphabet so many merges apply, of every length around the switch-over */
  static const char *alpha[] = {"a", "e", "t", "n", " ", "_", "=", "s", "\xe4\xbd\xa0", "\n", "0"};
  char buf[512];
  for (int it = 0; it < 2000; it++) {
    size_t n = 0, want = 1 + rnd() % 120;
    while (n < want) {
      const char *f = alpha[rnd() % (sizeof alpha / sizeof alpha[0])];
      memcpy(buf + n, f, strlen(f));
      n += strlen(f);
    }
    int32_t *x, *y;
    size_t nx, ny;
    ASSERT_EQ_INT(eng__tok_bpe(t, buf, n, 1, &x, &nx), 0);
    ASSERT_EQ_INT(eng__tok_bpe(t, buf, n, 2, &y, &ny), 0);
    ASSERT_MSG(nx == ny && memcmp(x, y, nx * sizeof *x) == 0, "scan and heap differ on a %zu-byte piece", n);
    free(x);
    free(y);
  }
}

/* Long single pieces (256 KB of one character: a quadratic merge would take minutes): no
 * blow-up, no regex stack overflow. */
TEST(long_runs) {
  const eng__tok *t = full();
  size_t n = 1 << 18;
  char *s = malloc(n + 1);
  const char fills[] = {'=', ' ', 'a', '\n', '7'};
  for (size_t k = 0; k < sizeof fills; k++) {
    memset(s, fills[k], n);
    uint64_t t0 = qc_now_ms();
    int32_t *ids;
    size_t n_ids;
    eng_error err = {0};
    ASSERT_MSG(eng__tok_encode(t, s, n, 1, &ids, &n_ids, &err) == 0, "%s", err.msg);
    ASSERT(n_ids > 0 && n_ids <= n);
    char *dec;
    size_t dn;
    ASSERT_EQ_INT(eng__tok_decode(t, ids, n_ids, &dec, &dn, &err), 0);
    ASSERT(dn == n && memcmp(dec, s, n) == 0);
    free(dec);
    free(ids);
    ASSERT_MSG(qc_now_ms() - t0 < 20000, "256 KB of '%c' took %llu ms", fills[k],
               (unsigned long long)(qc_now_ms() - t0));
  }
  free(s);
}

/* ---- bad input ----------------------------------------------------------------------- */

TEST(invalid_utf8_is_refused) {
  const eng__tok *t = full();
  const char *bad[] = {"ab\xff", "abc\xc3", "\xed\xa0\x80", "x\xc0\xaf", "ok \xf4\x90\x80\x80"};
  size_t off[] = {2, 3, 0, 1, 3};
  for (size_t i = 0; i < 5; i++) {
    int32_t *ids = (int32_t *)1;
    size_t n = 99;
    eng_error err = {0};
    ASSERT_EQ_INT(eng__tok_encode(t, bad[i], strlen(bad[i]), 1, &ids, &n, &err), ENG_EARG);
    ASSERT(ids == NULL && n == 0);
    char want[64];
    snprintf(want, sizeof want, "offset %zu", off[i]);
    ASSERT_CONTAINS(err.msg, want);
  }
  /* NUL is a character like any other */
  int32_t *ids;
  size_t n;
  eng_error err;
  ASSERT_EQ_INT(eng__tok_encode(t, "a\0b", 3, 1, &ids, &n, &err), 0);
  ASSERT(n >= 2);
  free(ids);
  ASSERT_EQ_INT(eng__tok_encode(t, "", 0, 1, &ids, &n, &err), 0);
  ASSERT(n == 0 && ids == NULL);
}

/* A small valid vocabulary: the 256 byte tokens (GGUF form), a few merges, two added tokens. */
typedef struct mini {
  const char *tok[300];
  size_t tok_len[300];
  int32_t type[300];
  char store[300][8];
  const char *merge[8];
  size_t merge_len[8];
  eng__tok_spec spec;
} mini;

static void mini_init(mini *v) {
  memset(v, 0, sizeof *v);
  int next = 0x100;
  size_t n = 0;
  for (int b = 0; b < 256; b++) {
    int self = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    int cp = self ? b : next++;
    size_t l = (size_t)utf8proc_encode_char(cp, (utf8proc_uint8_t *)v->store[n]);
    v->tok[n] = v->store[n];
    v->tok_len[n] = l;
    v->type[n] = ENG__TOKT_NORMAL;
    n++;
  }
  const char *extra[] = {"ab", "abc", "<|end|>", "<x>"};
  int32_t types[] = {ENG__TOKT_NORMAL, ENG__TOKT_NORMAL, ENG__TOKT_CONTROL, ENG__TOKT_USER_DEFINED};
  for (int i = 0; i < 4; i++, n++) {
    v->tok[n] = extra[i];
    v->tok_len[n] = strlen(extra[i]);
    v->type[n] = types[i];
  }
  v->merge[0] = "a b";
  v->merge[1] = "ab c";
  for (int i = 0; i < 2; i++) v->merge_len[i] = strlen(v->merge[i]);
  v->spec = (eng__tok_spec){.n_tokens = n, .tokens = v->tok, .token_lens = v->tok_len,
                            .token_types = v->type, .n_merges = 2, .merges = v->merge,
                            .merge_lens = v->merge_len, .eos_id = 258, .eot_id = -1,
                            .bos_id = -1, .pad_id = -1};
}

static void expect_build_error(mini *v, int code, const char *needle) {
  eng__tok *t = (eng__tok *)1;
  eng_error err = {0};
  ASSERT_EQ_INT(eng__tok_build(&v->spec, &t, &err), code);
  ASSERT(t == NULL);
  ASSERT_CONTAINS(err.msg, needle);
}

TEST(mini_vocab_builds_and_encodes) {
  mini v;
  mini_init(&v);
  eng__tok *t = NULL;
  eng_error err = {0};
  ASSERT_MSG(eng__tok_build(&v.spec, &t, &err) == 0, "%s", err.msg);
  int32_t want[] = {257, 258, 98, 259};  /* abc <|end|> b <x> */
  expect_ids(t, "mini", "abc<|end|>b<x>", 14, 1, want, 4);
  int32_t want2[] = {257, '<', '|', 'e', 'n', 'd', '|', '>', 'b', 259};  /* control off, user-defined on */
  expect_ids(t, "mini-nospecial", "abc<|end|>b<x>", 14, 0, want2, 10);
  ASSERT(eng__tok_is_eog(t, 258));
  eng__tok_free(t);
}

TEST(hostile_vocabularies) {
  mini v;
  mini_init(&v);
  v.tok[257] = "ab";  /* "abc" → "ab": a duplicate */
  v.tok_len[257] = 2;
  expect_build_error(&v, ENG_EFORMAT, "tokens 256 and 257 are both 'ab'");

  mini_init(&v);
  v.tok['b'] = "\xc4\xa0\xc4\xa0";  /* byte 'b' has no token any more */
  v.tok_len['b'] = 4;
  expect_build_error(&v, ENG_EFORMAT, "no token for byte 0x62");

  mini_init(&v);
  v.merge[1] = "ab d";  /* "abd" is not a token */
  v.merge_len[1] = 4;
  expect_build_error(&v, ENG_EFORMAT, "merge 1 ('ab d') refers to 'abd'");

  mini_init(&v);
  v.merge[1] = "abz c";
  v.merge_len[1] = 5;
  expect_build_error(&v, ENG_EFORMAT, "merge 1 ('abz c') refers to 'abz'");

  mini_init(&v);
  v.merge[0] = "ab";
  v.merge_len[0] = 2;
  expect_build_error(&v, ENG_EFORMAT, "merge 0 ('ab') is not two tokens");

  mini_init(&v);
  v.merge[1] = "a b";
  v.merge_len[1] = 3;
  expect_build_error(&v, ENG_EFORMAT, "merge 1 ('a b') repeats merge 0");

  mini_init(&v);
  v.type[10] = 9;
  expect_build_error(&v, ENG_EFORMAT, "token 10 has type 9");

  mini_init(&v);
  v.tok[256] = "a\xffz";
  v.tok_len[256] = 3;
  expect_build_error(&v, ENG_EFORMAT, "token 256 is not valid UTF-8");

  mini_init(&v);
  v.tok[256] = "\xe4\xbd\xa0";  /* a normal token that is not byte-level text */
  v.tok_len[256] = 3;
  expect_build_error(&v, ENG_EFORMAT, "contains U+4F60");

  mini_init(&v);
  static char big[2000];
  memset(big, 'a', sizeof big);
  v.tok[256] = big;
  v.tok_len[256] = sizeof big;
  expect_build_error(&v, ENG_EFORMAT, "token 256 is 2000 bytes long");

  mini_init(&v);
  v.tok[259] = "";
  v.tok_len[259] = 0;
  expect_build_error(&v, ENG_EFORMAT, "token 259 (user-defined) is empty");

  mini_init(&v);
  v.spec.eos_id = 5000;
  expect_build_error(&v, ENG_EFORMAT, "eos_token_id 5000 is outside the vocabulary");

  mini_init(&v);
  v.spec.n_tokens = 100;
  expect_build_error(&v, ENG_EFORMAT, "100 tokens");
}

/* GGUF files whose tokenizer keys are wrong: the message names the key or value. */
static char *tok_dir;

static int try_gguf(const char *name, const char *model, const char *pre, int tokens_as_ints,
                    int types_count_off, int drop_merges, eng_error *err) {
  if (!tok_dir) tok_dir = qct_tempdir("tok");
  char path[600];
  snprintf(path, sizeof path, "%s/%s.gguf", tok_dir, name);
  mini v;
  mini_init(&v);
  eng__gguf_writer *w = eng__gguf_writer_new(0);
  eng__gguf_writer_set_str(w, "general.architecture", "qwen3");
  if (model) eng__gguf_writer_set_str(w, "tokenizer.ggml.model", model);
  if (pre) eng__gguf_writer_set_str(w, "tokenizer.ggml.pre", pre);
  char *toks[300];
  for (size_t i = 0; i < v.spec.n_tokens; i++) toks[i] = qc_strndup(v.tok[i], v.tok_len[i]);
  if (tokens_as_ints)
    eng__gguf_writer_set_arr_i32(w, "tokenizer.ggml.tokens", v.type, v.spec.n_tokens);
  else
    eng__gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, v.spec.n_tokens);
  eng__gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", v.type, v.spec.n_tokens - (size_t)types_count_off);
  if (!drop_merges) eng__gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", v.merge, 2);
  eng__gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 258);
  for (size_t i = 0; i < v.spec.n_tokens; i++) free(toks[i]);
  int rc = eng__gguf_writer_begin(w, path, err);
  if (!rc) rc = eng__gguf_writer_finish(w, err);
  eng__gguf_writer_free(w);
  if (rc) return rc;
  eng__gguf *g = NULL;
  if ((rc = eng__gguf_open(path, &g, err))) return rc;
  eng__tok *t = NULL;
  rc = eng__tok_load(g, &t, err);
  eng__tok_free(t);
  eng__gguf_close(g);
  return rc;
}

/* Random byte flips in a small vocabulary file: every load either works or fails with a
 * message, never crashes (ASan watches the reads). */
TEST(mutated_vocab_files) {
  eng_error err = {0};
  ASSERT_MSG(try_gguf("base", "gpt2", "qwen2", 0, 0, 0, &err) == 0, "%s", err.msg);
  char *dir = qct_tempdir("tokmut");
  char src[700], dst[700];
  snprintf(src, sizeof src, "%s/base.gguf", tok_dir);
  snprintf(dst, sizeof dst, "%s/mutant.gguf", dir);
  size_t n;
  unsigned char *orig = (unsigned char *)qct_read_file(src, &n);
  ASSERT(orig && n > 64);
  unsigned char *buf = malloc(n);
  int loaded = 0, refused = 0;
  for (int it = 0; it < 400; it++) {
    memcpy(buf, orig, n);
    int flips = 1 + (int)(rnd() % 4);
    for (int k = 0; k < flips; k++) buf[24 + rnd() % (n - 24)] ^= (unsigned char)(1u << (rnd() % 8));
    FILE *f = fopen(dst, "wb");
    ASSERT(f);
    fwrite(buf, 1, n, f);
    fclose(f);
    eng__gguf *g = NULL;
    memset(&err, 0, sizeof err);
    if (eng__gguf_open(dst, &g, &err) != 0) {
      refused++;
      continue;
    }
    eng__tok *t = NULL;
    int rc = eng__tok_load(g, &t, &err);
    if (rc == 0) {
      int32_t *ids;
      size_t n_ids;
      ASSERT_EQ_INT(eng__tok_encode(t, "abc<|end|> b<x>", 15, 1, &ids, &n_ids, &err), 0);
      free(ids);
      loaded++;
    } else {
      ASSERT_MSG(err.msg[0], "error %d without a message", rc);
      if (getenv("QCT_VERBOSE")) fprintf(stderr, "    %s\n", err.msg);
      refused++;
    }
    eng__tok_free(t);
    eng__gguf_close(g);
  }
  ASSERT(loaded + refused == 400);
  fprintf(stderr, "  %d mutants loaded, %d refused\n", loaded, refused);
  free(buf);
  free(orig);
  free(dir);
}

TEST(hostile_gguf_keys) {
  eng_error err = {0};
  ASSERT_MSG(try_gguf("ok", "gpt2", "qwen2", 0, 0, 0, &err) == 0, "%s", err.msg);
  ASSERT_EQ_INT(try_gguf("alias", "gpt2", "deepseek-r1-qwen", 0, 0, 0, &err), 0);
  ASSERT_EQ_INT(try_gguf("pre", "gpt2", "llama-bpe", 0, 0, 0, &err), ENG_EUNSUPPORTED);
  ASSERT_CONTAINS(err.msg, "pre-tokenizer 'llama-bpe' is not supported");
  ASSERT_EQ_INT(try_gguf("nopre", "gpt2", NULL, 0, 0, 0, &err), ENG_EUNSUPPORTED);
  ASSERT_CONTAINS(err.msg, "tokenizer.ggml.pre is missing");
  ASSERT_EQ_INT(try_gguf("model", "llama", "qwen2", 0, 0, 0, &err), ENG_EUNSUPPORTED);
  ASSERT_CONTAINS(err.msg, "tokenizer model 'llama'");
  ASSERT_EQ_INT(try_gguf("nomodel", NULL, "qwen2", 0, 0, 0, &err), ENG_EFORMAT);
  ASSERT_CONTAINS(err.msg, "tokenizer.ggml.model is missing");
  ASSERT_EQ_INT(try_gguf("ints", "gpt2", "qwen2", 1, 0, 0, &err), ENG_EFORMAT);
  ASSERT_CONTAINS(err.msg, "tokenizer.ggml.tokens is an array of i32");
  ASSERT_EQ_INT(try_gguf("types", "gpt2", "qwen2", 0, 3, 0, &err), ENG_EFORMAT);
  ASSERT_CONTAINS(err.msg, "token_type has 257 entries but there are 260 tokens");
  ASSERT_EQ_INT(try_gguf("nomerges", "gpt2", "qwen2", 0, 0, 1, &err), ENG_EFORMAT);
  ASSERT_CONTAINS(err.msg, "tokenizer.ggml.merges is missing");
}

QC_TEST_MAIN
