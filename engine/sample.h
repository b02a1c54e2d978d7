/* sample.h — token sampling (internal).
 *
 * Order, as llama.cpp's default chain: repetition penalty over the last repeat_last_n
 * tokens of the history → (temperature 0: argmax, ties to the lowest id) → top-k →
 * softmax → top-p → min-p → temperature → draw. The generator is xoshiro256** seeded
 * from the seed through splitmix64, so the same seed, logits and history give the same
 * token on every machine. Buffers are allocated once per generation, not per token.
 */
#ifndef QC_ENGINE_SAMPLE_H
#define QC_ENGINE_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

typedef struct eng__sampler eng__sampler;

int eng__sampler_new(const eng_sample_params *p, uint32_t n_vocab, eng__sampler **out, eng_error *err);
void eng__sampler_free(eng__sampler *s);
/* Pick the next token from `logits` (n_vocab floats, not modified). */
int32_t eng__sample(eng__sampler *s, const float *logits, const int32_t *hist, size_t n_hist);

#endif
