/* limits.h — every size limit of the engine in one place, each with its reason.
 *
 * Inputs (GGUF files, token lists, options) are untrusted: each count read from outside is
 * checked against one of these before anything is allocated from it. The GGUF reader also
 * checks every count against the bytes left in the file, so these limits mostly bound what
 * a *valid-looking* file can make us allocate.
 */
#ifndef QC_ENGINE_LIMITS_H
#define QC_ENGINE_LIMITS_H

/* Metadata pairs in one file. Real models carry 30-60; tokenizer arrays count as one. */
#define ENG__GGUF_MAX_KV (1u << 16)
/* Tensors in one model (all split files). The 480B model has 747; MoE models with one
 * tensor per expert reach tens of thousands. */
#define ENG__GGUF_MAX_TENSORS (1u << 20)
/* Length of a metadata key (gguf.cpp has no limit; real keys are < 64 bytes). */
#define ENG__GGUF_MAX_KEY 4096u
/* Tensor name length in bytes, as ggml (GGML_MAX_NAME 64 including the NUL). */
#define ENG__GGUF_MAX_NAME 63u
/* Tensor dimensions, as ggml (GGML_MAX_DIMS). */
#define ENG__GGUF_MAX_DIMS 4u
/* general.alignment: a power of two no larger than this (ggml writers use 32). */
#define ENG__GGUF_MAX_ALIGN (1u << 20)
/* Split files of one model (the 480B model at BF16 is ~20 parts). */
#define ENG__GGUF_MAX_SPLITS 512u

/* Vocabulary rows the engine accepts (Qwen3: 151936); bounds the logits buffers. */
#define ENG__MAX_VOCAB (1u << 22)
/* Layers, heads, experts: far above any Qwen3 model, low enough that derived buffer sizes
 * cannot overflow. */
#define ENG__MAX_LAYERS 1024u
#define ENG__MAX_HEADS 1024u
#define ENG__MAX_HEAD_DIM 1024u
#define ENG__MAX_EXPERTS 4096u
#define ENG__MAX_EMBD (1u << 16)
#define ENG__MAX_FF (1u << 18)
/* Threads in the pool: the machine, not the model, bounds it. */
#define ENG__MAX_THREADS 256
/* Context (KV cache) length a session may ask for: 1M tokens (Qwen3-Coder with YaRN). */
#define ENG__MAX_CTX (1u << 20)
/* Prompt tokens processed per forward pass in prefill (the ubatch; bounds the batch
 * scratch, ~100 MB at the 30B-A3B shapes). Large enough that each expert sees ~32 tokens
 * of a batch on average (512 · 8 / 128), so its weights stream once for all of them. */
#define ENG__BATCH 512u
/* sgemm path: float weight rows dequantised at a time per task (64 × 4096 floats = 1 MB of
 * workspace per thread), and the fewest activation rows for which sgemm beats vec_dot
 * rows on float weights (the F32 router). */
#define ENG__SGEMM_ROWS 64
#define ENG__SGEMM_MIN_T 8
/* KV-cache chunk: positions allocated at a time (a 30B-A3B chunk of 256 is 50 MB; the
 * cache of a 32K context is never allocated up front). */
#define ENG__KV_CHUNK 256u
/* Attention block: KV positions scored at a time (online softmax); K and V of a block of
 * one KV head stay in L1 (2 · 32 · 128 · 4 B = 32 KB). Divides ENG__KV_CHUNK. */
#define ENG__ATT_BLOCK 32u
/* Attention query block: prompt tokens that walk the cache together (each cached block is
 * read from memory once per query block; the accumulators, 16 · 8 heads · 128 · 4 B =
 * 64 KB per thread at the 30B-A3B shapes, stay in L2). */
#define ENG__ATT_QBLOCK 16u
/* Pause instructions a pool thread spins before it sleeps (~100 µs on current x86: PAUSE
 * is ~65 cycles on Zen, ~140 on Skylake+). Long enough to bridge the serial gaps between
 * the runs of one decoded token, short enough not to burn a shared core while idle. */
#define ENG__POOL_SPIN 4000
/* Stop strings per generation and their length: they are matched on every token. */
#define ENG__MAX_STOP 64u
#define ENG__MAX_STOP_LEN 1024u

/* Tokenizer. The longest Qwen3 token is 256 bytes; anything past 4x that is not a real
 * vocabulary and would only inflate the merge buffers. */
#define ENG__TOK_MAX_TOKEN_BYTES 1024u
/* BPE merges (Qwen3: 151387); a merge creates a token, so more than the vocabulary bound
 * makes no sense. */
#define ENG__TOK_MAX_MERGES ENG__MAX_VOCAB
/* Bytes of text in one tokenize call: BPE positions are 32-bit, and no prompt comes near
 * 1 GiB (the 1M-token context is ~4 MB of text). */
#define ENG__TOK_MAX_TEXT (1u << 30)

#endif
