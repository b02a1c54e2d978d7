/* tokenizer.h — the seam between the model loader and the tokenizer (internal to engine/).
 *
 * eng_model_open builds the tokenizer from the GGUF `tokenizer.ggml.*` keys through
 * eng__tok_load and keeps it for the model's lifetime; the public tokenizer functions of
 * engine.h (eng_tokenize, eng_detok_*, eng_token_*, eng_count_tokens, eng_detokenize)
 * reach it through eng__model_tok. The tokenizer is implemented in engine/tokenizer*.c.
 *
 * Ownership: *out belongs to the model, released with eng__tok_free. The tokenizer may
 * keep pointers into the GGUF mapping `g`: the model keeps `g` open until after
 * eng__tok_free.
 */
#ifndef QC_ENGINE_TOKENIZER_H
#define QC_ENGINE_TOKENIZER_H

#include "engine/engine.h"
#include "engine/gguf.h"

typedef struct eng__tok eng__tok;

/* Build the tokenizer from the metadata of `g`. Errors name the key that is missing or
 * malformed (ENG_EFORMAT) or the tokenizer model that is not supported (ENG_EUNSUPPORTED). */
int eng__tok_load(const eng__gguf *g, eng__tok **out, eng_error *err);
void eng__tok_free(eng__tok *t);

/* The model's tokenizer (never NULL for an open model). Implemented in model.c. */
const eng__tok *eng__model_tok(const eng_model *m);

#endif
