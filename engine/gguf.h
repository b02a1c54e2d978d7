/* gguf.h — the GGUF file format: a validating reader over mmap, and a streaming writer.
 *
 * ## The format (GGUF v2 and v3; little-endian)
 *
 *   u32 magic "GGUF"   u32 version   u64 n_tensors   u64 n_kv
 *   n_kv × { string key; u32 type; value }
 *   n_tensors × { string name; u32 n_dims; u64 ne[n_dims]; u32 ggml_type; u64 offset }
 *   padding to the alignment, then the tensor data section
 *
 * A string is `u64 len` + `len` bytes (no NUL). A value is one of 13 types: u8 i8 u16 i16
 * u32 i32 f32 bool(1 byte) string array u64 i64 f64 (codes 0..12); an array is
 * `u32 elem_type; u64 count; count × elem` and never nests. `ne[0]` is the fastest
 * varying dimension and the one quantisation blocks run along, so a tensor of ggml type T
 * occupies ne[0]/blck(T)·size(T)·ne[1]·ne[2]·ne[3] bytes. `offset` is relative to the data
 * section and a multiple of the alignment: `general.alignment` (u32, a power of two) or 32.
 * Version 1 (2023, u32 counts) is refused; v2 and v3 differ only in that v3 allows a
 * big-endian variant, which we refuse.
 *
 * A model too large for one file is split into `PREFIX-0000N-of-0000M.gguf`; each part is
 * a full GGUF with the keys `split.no` (0-based), `split.count` and `split.tensors.count`.
 * The first part holds the metadata; the tensors are spread over the parts. The reader
 * opens all parts and presents one model: metadata from part 0, tensors from every part.
 *
 * ## Trust
 *
 * Every count, length, dimension and offset comes from the file and is checked before it
 * is used: counts against the bytes left in the file (a 2^60 count fails before anything
 * is allocated), against the named limits in engine/limits.h, products of dimensions with
 * overflow checks, each tensor inside the data section, aligned, and not overlapping
 * another. A failure is an ENG_EFORMAT with a message naming the file, the item (key or
 * tensor name or index) and the byte offset. After eng__gguf_open succeeds, every pointer
 * the reader hands out is inside a mapping and every length is in bounds.
 *
 * ## Ownership
 *
 * The eng__gguf owns its mappings; every pointer it returns (keys, string values, tensor
 * data) is borrowed and valid until eng__gguf_close. Strings in the file are not
 * NUL-terminated: string accessors return a pointer and a length. Keys and tensor names
 * are copied (NUL-terminated) at open because they are short and looked up by C string.
 * Weights are never copied: mappings are PROT_READ, MAP_PRIVATE.
 */
#ifndef QC_ENGINE_GGUF_H
#define QC_ENGINE_GGUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/engine.h"

/* ---- value and tensor types -------------------------------------------------------- */

typedef enum eng__gguf_type {
  ENG__GGUF_U8 = 0,
  ENG__GGUF_I8 = 1,
  ENG__GGUF_U16 = 2,
  ENG__GGUF_I16 = 3,
  ENG__GGUF_U32 = 4,
  ENG__GGUF_I32 = 5,
  ENG__GGUF_F32 = 6,
  ENG__GGUF_BOOL = 7,
  ENG__GGUF_STRING = 8,
  ENG__GGUF_ARRAY = 9,
  ENG__GGUF_U64 = 10,
  ENG__GGUF_I64 = 11,
  ENG__GGUF_F64 = 12,
  ENG__GGUF_NTYPES
} eng__gguf_type;

/* "u32", "string", …; "?" for an invalid code. */
const char *eng__gguf_type_name(uint32_t t);

/* ggml tensor types (the numbering of ggml.h). The reader knows the block geometry of all
 * of them so it can validate any file; the engine computes with a subset (quant.h). */
enum {
  ENG__T_F32 = 0,
  ENG__T_F16 = 1,
  ENG__T_Q4_0 = 2,
  ENG__T_Q4_1 = 3,
  ENG__T_Q5_0 = 6,
  ENG__T_Q5_1 = 7,
  ENG__T_Q8_0 = 8,
  ENG__T_Q8_1 = 9,
  ENG__T_Q2_K = 10,
  ENG__T_Q3_K = 11,
  ENG__T_Q4_K = 12,
  ENG__T_Q5_K = 13,
  ENG__T_Q6_K = 14,
  ENG__T_Q8_K = 15,
  ENG__T_BF16 = 30,
  ENG__T_COUNT = 40
};

/* Block geometry of a ggml type: elements per block and bytes per block; 0/0 and name
 * NULL for codes ggml never assigned or has removed. */
typedef struct eng__ggml_type_info {
  const char *name;
  uint32_t blck;
  uint32_t size;
} eng__ggml_type_info;
const eng__ggml_type_info *eng__ggml_type(uint32_t type);  /* NULL when unknown */
/* Bytes of a row of n elements of `type`; 0 when n is not a multiple of the block. */
size_t eng__ggml_row_size(uint32_t type, uint64_t n);

/* ---- reader ------------------------------------------------------------------------ */

typedef struct eng__gguf eng__gguf;

/* A metadata array. For fixed-size element types `data` points at count packed elements;
 * for strings use eng__gguf_arr_str. */
typedef struct eng__gguf_arr {
  uint32_t type;          /* element type */
  uint64_t count;
  const uint8_t *data;    /* first element (inside the mapping) */
  const uint64_t *str_off;/* strings: offset of element i's length field from `data` */
} eng__gguf_arr;

typedef struct eng__gguf_tensor {
  const char *name;       /* NUL-terminated copy */
  uint32_t type;          /* ggml type */
  uint32_t n_dims;        /* 1..4 */
  uint64_t ne[4];         /* dims beyond n_dims are 1 */
  uint64_t n_elems;
  uint64_t nbytes;
  uint64_t offset;        /* within its file's data section */
  uint32_t file;          /* split part index */
  const void *data;       /* inside the mapping */
} eng__gguf_tensor;

/* Open a GGUF file read-only. When its metadata says it is part of a split model, all
 * parts (named PREFIX-0000N-of-0000M.gguf beside it) are opened and presented as one. */
int eng__gguf_open(const char *path, eng__gguf **out, eng_error *err);
void eng__gguf_close(eng__gguf *g);

uint32_t eng__gguf_version(const eng__gguf *g);
uint32_t eng__gguf_alignment(const eng__gguf *g);
uint32_t eng__gguf_n_files(const eng__gguf *g);
uint64_t eng__gguf_file_bytes(const eng__gguf *g);   /* all parts */
const char *eng__gguf_path(const eng__gguf *g);      /* the path given to open */

/* Metadata (from part 0), in file order. */
size_t eng__gguf_n_kv(const eng__gguf *g);
const char *eng__gguf_kv_key(const eng__gguf *g, size_t i);
uint32_t eng__gguf_kv_type(const eng__gguf *g, size_t i);
long eng__gguf_find_key(const eng__gguf *g, const char *key);  /* index or -1 */
/* Raw encoded value bytes of pair i (what follows the type code), for copying a pair to
 * another file verbatim. */
const uint8_t *eng__gguf_kv_raw(const eng__gguf *g, size_t i, size_t *len);

/* Typed getters. Each returns 1 and sets *out when the key is present with a compatible
 * type, 0 when it is absent (leaving *out alone), and ENG_EFORMAT with a message when it
 * is present with an incompatible type or out of range. Integer getters accept any
 * integer type whose value fits; f32 accepts f32 and f64. */
int eng__gguf_get_u32(const eng__gguf *g, const char *key, uint32_t *out, eng_error *err);
int eng__gguf_get_i32(const eng__gguf *g, const char *key, int32_t *out, eng_error *err);
int eng__gguf_get_u64(const eng__gguf *g, const char *key, uint64_t *out, eng_error *err);
int eng__gguf_get_f32(const eng__gguf *g, const char *key, float *out, eng_error *err);
int eng__gguf_get_bool(const eng__gguf *g, const char *key, int *out, eng_error *err);
/* String value: *out points into the mapping (not NUL-terminated), *len its length. */
int eng__gguf_get_str(const eng__gguf *g, const char *key, const char **out, size_t *len,
                      eng_error *err);
/* Copy a string value into buf (NUL-terminated, truncated to n-1). Same returns. */
int eng__gguf_get_str_buf(const eng__gguf *g, const char *key, char *buf, size_t n, eng_error *err);
/* Array value. Same returns. */
int eng__gguf_get_arr(const eng__gguf *g, const char *key, eng__gguf_arr *out, eng_error *err);

/* Array elements; i must be < count (asserted). arr_str requires a string array;
 * arr_i64 any integer or bool array; arr_f64 any numeric array. */
const char *eng__gguf_arr_str(const eng__gguf_arr *a, uint64_t i, size_t *len);
int64_t eng__gguf_arr_i64(const eng__gguf_arr *a, uint64_t i);
static inline int32_t eng__gguf_arr_i32(const eng__gguf_arr *a, uint64_t i) {
  return (int32_t)eng__gguf_arr_i64(a, i);
}
double eng__gguf_arr_f64(const eng__gguf_arr *a, uint64_t i);

/* Scalar value of pair i as text ("151645", "1e+07", "true", the string with non-printable
 * bytes escaped and cut at `n`); arrays as "[type; count]". For model-info. */
void eng__gguf_kv_format(const eng__gguf *g, size_t i, char *buf, size_t n);

/* Tensors of all parts, in file order (part 0 first). */
size_t eng__gguf_n_tensors(const eng__gguf *g);
const eng__gguf_tensor *eng__gguf_tensor_at(const eng__gguf *g, size_t i);
const eng__gguf_tensor *eng__gguf_find_tensor(const eng__gguf *g, const char *name);

/* ---- writer ------------------------------------------------------------------------ */

/* Writes a GGUF v3 file in one pass without holding tensor data: declare every key and
 * tensor first, then eng__gguf_writer_begin writes the header (offsets are known from the
 * declared shapes), then the tensors' bytes are streamed in declaration order. The file
 * is written to PATH.tmp and renamed over PATH by eng__gguf_writer_finish, so a failed or
 * interrupted write never leaves a half file under the final name. */
typedef struct eng__gguf_writer eng__gguf_writer;

eng__gguf_writer *eng__gguf_writer_new(uint32_t alignment);  /* 0 = 32 */
void eng__gguf_writer_free(eng__gguf_writer *w);  /* also removes an unfinished temp file */

int eng__gguf_writer_set_u32(eng__gguf_writer *w, const char *key, uint32_t v);
int eng__gguf_writer_set_i32(eng__gguf_writer *w, const char *key, int32_t v);
int eng__gguf_writer_set_f32(eng__gguf_writer *w, const char *key, float v);
int eng__gguf_writer_set_bool(eng__gguf_writer *w, const char *key, int v);
int eng__gguf_writer_set_str(eng__gguf_writer *w, const char *key, const char *s);
int eng__gguf_writer_set_arr_str(eng__gguf_writer *w, const char *key, const char *const *s,
                                 size_t n);
int eng__gguf_writer_set_arr_i32(eng__gguf_writer *w, const char *key, const int32_t *v, size_t n);
/* Any pair with an explicit type code and raw value bytes (hostile-file tests use it to
 * write values the typed setters would not). */
int eng__gguf_writer_set_raw(eng__gguf_writer *w, const char *key, uint32_t type,
                             const void *raw, size_t len);
/* Copy pair `key` of another file verbatim; 0 if absent there, 1 if copied. */
int eng__gguf_writer_copy_kv(eng__gguf_writer *w, const eng__gguf *g, const char *key);

int eng__gguf_writer_add_tensor(eng__gguf_writer *w, const char *name, uint32_t type,
                                uint32_t n_dims, const uint64_t *ne);

/* Byte offsets of the sections in the file being written (valid after begin). */
typedef struct eng__gguf_layout {
  uint64_t kv_start;        /* first metadata pair */
  uint64_t tinfo_start;     /* first tensor info */
  uint64_t data_start;      /* data section */
  size_t n_kv, n_tensors;
  const uint64_t *kv_off;      /* each pair's key string */
  const uint64_t *tinfo_off;   /* each tensor info's name string */
  const uint64_t *tdata_off;   /* each tensor's data, relative to data_start */
} eng__gguf_layout;

int eng__gguf_writer_begin(eng__gguf_writer *w, const char *path, eng_error *err);
const eng__gguf_layout *eng__gguf_writer_layout(const eng__gguf_writer *w);
/* Append bytes of the current tensor (may be called several times per tensor); when a
 * tensor's bytes are complete the writer pads and moves to the next. */
int eng__gguf_writer_write(eng__gguf_writer *w, const void *data, size_t n, eng_error *err);
int eng__gguf_writer_finish(eng__gguf_writer *w, eng_error *err);

#endif
