/* internal.h — small helpers shared by the engine's files (internal to engine/).
 *
 * Error reporting (eng__err fills an eng_error and returns its code, so a failure is one
 * line: `return eng__err(err, ENG_EFORMAT, "…")`), and the half-precision conversions
 * every kernel and the writer use. The conversions are the bit-exact ones of ggml
 * (round-to-nearest-even), because quantised activations must round exactly as the
 * reference engine does.
 */
#ifndef QC_ENGINE_INTERNAL_H
#define QC_ENGINE_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "engine/engine.h"

int eng__err(eng_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static inline uint32_t eng__f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
static inline float eng__bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* IEEE half → float, exact (ggml_compute_fp16_to_fp32 generic path). */
static inline float eng__f16_to_f32(uint16_t h) {
  const uint32_t w = (uint32_t)h << 16;
  const uint32_t sign = w & 0x80000000u;
  const uint32_t two_w = w + w;
  const uint32_t exp_offset = 0xE0u << 23;
  const float exp_scale = 0x1.0p-112f;
  const float normalized = eng__bits_f32((two_w >> 4) + exp_offset) * exp_scale;
  const uint32_t magic_mask = 126u << 23;
  const float magic_bias = 0.5f;
  const float denormalized = eng__bits_f32((two_w >> 17) | magic_mask) - magic_bias;
  const uint32_t denormalized_cutoff = 1u << 27;
  const uint32_t result =
      sign | (two_w < denormalized_cutoff ? eng__f32_bits(denormalized) : eng__f32_bits(normalized));
  return eng__bits_f32(result);
}

/* float → IEEE half, round to nearest even (ggml_compute_fp32_to_fp16 generic path). */
static inline uint16_t eng__f32_to_f16(float f) {
  const float scale_to_inf = 0x1.0p+112f;
  const float scale_to_zero = 0x1.0p-110f;
  float base = (f < 0 ? -f : f) * scale_to_inf;
  base *= scale_to_zero;
  const uint32_t w = eng__f32_bits(f);
  const uint32_t shl1_w = w + w;
  const uint32_t sign = w & 0x80000000u;
  uint32_t bias = shl1_w & 0xFF000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  base = eng__bits_f32((bias >> 1) + 0x07800000u) + base;
  const uint32_t bits = eng__f32_bits(base);
  const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
  const uint32_t mantissa_bits = bits & 0x00000FFFu;
  const uint32_t nonsign = exp_bits + mantissa_bits;
  return (uint16_t)((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

static inline float eng__bf16_to_f32(uint16_t h) { return eng__bits_f32((uint32_t)h << 16); }

/* float → bf16, round to nearest even; NaN stays NaN (ggml_compute_fp32_to_bf16). */
static inline uint16_t eng__f32_to_bf16(float f) {
  uint32_t u = eng__f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64);
  return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}

#endif
