/* tokenizer.h — Qwen2/Qwen3 byte-level BPE tokenizer (internal to engine/).
 *
 * ## What the tokenizer computes
 *
 * The ids the model's own Hugging Face tokenizer (tokenizer.json: NFC normalizer, Split
 * with the Qwen2 regex, ByteLevel, BPE) gives, from the vocabulary a GGUF file carries in
 * its `tokenizer.ggml.*` keys:
 *
 *   1. Added tokens (GGUF token_type 3 CONTROL and 4 USER_DEFINED: `<|im_start|>`,
 *      `<tool_call>`, …) are cut out of the raw text first, as whole strings, leftmost
 *      match first and the longest token at a position. With parse_special off only the
 *      USER_DEFINED ones are cut (llama.cpp's rule: `<think>` stays a token, `<|im_end|>`
 *      becomes text). Added tokens are matched before normalisation, as in HF (their
 *      `normalized` flag is false).
 *   2. Every text segment between them is NFC-normalised (utf8proc).
 *   3. The segment is split into pre-tokens by the Qwen2 regex, run by PCRE2 (UTF, UCP,
 *      JIT); `\s` is spelt out as the Unicode White_Space set (PCRE2's own `\s` also
 *      matches U+180E, which HF's and llama.cpp's do not).
 *   4. Each pre-token's bytes start as byte tokens (the GPT-2 byte→unicode map names
 *      them) and the adjacent pair of lowest merge rank is merged until none is left
 *      (ties: leftmost). Rank = position in `tokenizer.ggml.merges`.
 *
 * Decoding maps each token back to bytes: NORMAL tokens through the inverse byte map,
 * CONTROL / USER_DEFINED / UNKNOWN tokens as their text, UNUSED (`[PAD151669]`) as
 * nothing, as llama.cpp renders them.
 *
 * ## Input text
 *
 * Input must be valid UTF-8: invalid input is refused with ENG_EARG and a message naming
 * the byte offset of the first bad byte (HF cannot take such text either; callers holding
 * arbitrary bytes clean them with qc_utf8_sanitize first). NUL bytes are ordinary
 * characters (the length is explicit).
 *
 * ## Trust
 *
 * The vocabulary comes from an untrusted file. eng__tok_build checks every part of it
 * before use: counts and string lengths against the limits in engine/limits.h, UTF-8
 * validity, that NORMAL tokens are byte-level strings, no duplicate tokens, all 256 byte
 * tokens present, every merge "A B" naming two tokens whose concatenation is a token, no
 * repeated merge, special ids in range. A failure is ENG_EFORMAT with a message naming the
 * token id or merge index; ENG_EUNSUPPORTED for a tokenizer model or pre-tokenizer other
 * than gpt2 / qwen2.
 *
 * ## Threads and ownership
 *
 * An eng__tok is immutable after building: every function taking `const eng__tok *` is
 * safe from any number of threads at once (each encode call has its own scratch space,
 * including its pre-token cache). Pointers returned by the getters are borrowed from the
 * tokenizer and live as long as it. The tokenizer copies what it needs from the vocabulary
 * (about 3 MB for Qwen3) and keeps no pointer into the GGUF mapping.
 *
 * eng_model_open builds the model's tokenizer with eng__tok_load and keeps it for the
 * model's lifetime (released with eng__tok_free); the public functions of engine.h
 * (eng_tokenize, eng_detok_*, eng_token_*, …) reach it through eng__model_tok.
 */
#ifndef QC_ENGINE_TOKENIZER_H
#define QC_ENGINE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

typedef struct eng__gguf eng__gguf;  /* engine/gguf.h */

typedef struct eng__tok eng__tok;

/* GGUF token types (llama.cpp's LLAMA_TOKEN_TYPE_*). */
enum {
  ENG__TOKT_NORMAL = 1,
  ENG__TOKT_UNKNOWN = 2,
  ENG__TOKT_CONTROL = 3,
  ENG__TOKT_USER_DEFINED = 4,
  ENG__TOKT_UNUSED = 5,
  ENG__TOKT_BYTE = 6,
};

/* The raw vocabulary, as plain arrays (the core constructor's input; eng__tok_load fills
 * it from a GGUF file, tests from anything). Strings need not be NUL-terminated. */
typedef struct eng__tok_spec {
  size_t n_tokens;
  const char *const *tokens;   /* n_tokens strings: the vocabulary in GGUF form */
  const size_t *token_lens;
  const int32_t *token_types;  /* n_tokens ENG__TOKT_* values; NULL = all NORMAL */
  size_t n_merges;
  const char *const *merges;   /* "A B": rank i is merges[i] */
  const size_t *merge_lens;
  int32_t eos_id, eot_id, bos_id, pad_id;  /* -1 when absent */
} eng__tok_spec;

/* Build a tokenizer from a vocabulary (copied: the spec's strings may go away after). */
int eng__tok_build(const eng__tok_spec *spec, eng__tok **out, eng_error *err);

/* Build from the `tokenizer.ggml.*` keys of a GGUF file (model "gpt2", pre "qwen2"). */
int eng__tok_load(const eng__gguf *g, eng__tok **out, eng_error *err);
void eng__tok_free(eng__tok *t);

/* Text → ids (see the top of this file). *ids is malloc'd (NULL when *n_ids is 0). */
int eng__tok_encode(const eng__tok *t, const char *text, size_t len, int parse_special,
                    int32_t **ids, size_t *n_ids, eng_error *err);
/* Bytes of one token; NULL when id is out of range. Borrowed, NUL-terminated. */
const char *eng__tok_bytes(const eng__tok *t, int32_t id, size_t *len);
/* Exact lookup of a token's text in GGUF form (byte-level for NORMAL tokens, e.g. "Ġhello";
 * literal for added tokens, e.g. "<|im_end|>"), or -1. */
int32_t eng__tok_lookup(const eng__tok *t, const char *text, size_t len);
/* The token's text in GGUF form. Borrowed, NUL-terminated; NULL when out of range. */
const char *eng__tok_text(const eng__tok *t, int32_t id, size_t *len);
int eng__tok_type(const eng__tok *t, int32_t id);   /* ENG__TOKT_*, 0 when out of range */
int eng__tok_is_eog(const eng__tok *t, int32_t id);
/* Concatenated token bytes; *text malloc'd and NUL-terminated. ENG_ETOKEN for an id out of
 * range. */
int eng__tok_decode(const eng__tok *t, const int32_t *ids, size_t n, char **text, size_t *len,
                    eng_error *err);

/* A summary for `model-info` and logs. */
typedef struct eng__tok_info {
  size_t n_tokens, n_merges;
  size_t n_added;              /* CONTROL + USER_DEFINED tokens */
  int32_t eos_id, bos_id, pad_id, eot_id;
  size_t n_eog;
  const int32_t *eog;          /* the end-of-generation ids, ascending (borrowed) */
  const char *model, *pre;     /* "gpt2", "qwen2" (or the accepted alias) */
} eng__tok_info;
void eng__tok_get_info(const eng__tok *t, eng__tok_info *info);

/* Test hooks: the pieces the pre-tokenizer cuts from NFC text (byte offset just past each
 * piece, in the NFC form; *ends malloc'd), and the BPE of one piece by the linked-list scan
 * (method 1), the heap (method 2) or the automatic choice (0). */
int eng__tok_pretokenize(const eng__tok *t, const char *text, size_t len, size_t **ends, size_t *n,
                         eng_error *err);
int eng__tok_bpe(const eng__tok *t, const void *piece, size_t len, int method, int32_t **ids,
                 size_t *n_ids);
/* NFC of valid UTF-8 as the encoder computes it (*out malloc'd). */
int eng__tok_nfc(const char *s, size_t n, char **out, size_t *out_n);

/* The model's tokenizer (never NULL for an open model). Implemented in model.c. */
const eng__tok *eng__model_tok(const eng_model *m);

/* Streaming decoder over a tokenizer (eng_detok_new takes the model and calls this). */
eng_detok *eng__detok_new(const eng__tok *t);

#endif
