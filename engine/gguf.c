/* gguf.c — the validating GGUF reader (format and trust rules: see gguf.h).
 *
 * Parsing walks the header with a cursor that knows the file size; every read goes through
 * cur_need(), which fails with the section, item and offset when the bytes are not there.
 * Counts are bounded by the bytes left before anything is allocated from them. Tensor
 * infos are checked as a whole once the data section's start is known: every tensor
 * inside it, aligned, and (after sorting by offset) not overlapping its neighbour.
 */
#include "engine/gguf.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/internal.h"
#include "engine/limits.h"

/* ---- type tables ----------------------------------------------------------------------- */

static const char *const vtype_names[ENG__GGUF_NTYPES] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
static const uint32_t vtype_size[ENG__GGUF_NTYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *eng__gguf_type_name(uint32_t t) { return t < ENG__GGUF_NTYPES ? vtype_names[t] : "?"; }

/* ggml.c type_traits: block size and bytes per block. Codes 4, 5, 31-33, 36-38 were
 * removed from ggml and stay NULL. */
static const eng__ggml_type_info ggml_types[ENG__T_COUNT] = {
    [0] = {"F32", 1, 4},        [1] = {"F16", 1, 2},        [2] = {"Q4_0", 32, 18},
    [3] = {"Q4_1", 32, 20},     [6] = {"Q5_0", 32, 22},     [7] = {"Q5_1", 32, 24},
    [8] = {"Q8_0", 32, 34},     [9] = {"Q8_1", 32, 36},     [10] = {"Q2_K", 256, 84},
    [11] = {"Q3_K", 256, 110},  [12] = {"Q4_K", 256, 144},  [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},  [15] = {"Q8_K", 256, 292},  [16] = {"IQ2_XXS", 256, 66},
    [17] = {"IQ2_XS", 256, 74}, [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50},
    [20] = {"IQ4_NL", 32, 18},  [21] = {"IQ3_S", 256, 110}, [22] = {"IQ2_S", 256, 82},
    [23] = {"IQ4_XS", 256, 136}, [24] = {"I8", 1, 1},       [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},       [27] = {"I64", 1, 8},       [28] = {"F64", 1, 8},
    [29] = {"IQ1_M", 256, 56},  [30] = {"BF16", 1, 2},      [34] = {"TQ1_0", 256, 54},
    [35] = {"TQ2_0", 256, 66},  [39] = {"MXFP4", 32, 17},
};

const eng__ggml_type_info *eng__ggml_type(uint32_t type) {
  if (type >= ENG__T_COUNT || !ggml_types[type].name) return NULL;
  return &ggml_types[type];
}

size_t eng__ggml_row_size(uint32_t type, uint64_t n) {
  const eng__ggml_type_info *t = eng__ggml_type(type);
  if (!t || n % t->blck) return 0;
  return (size_t)(n / t->blck * t->size);
}

/* ---- structures ------------------------------------------------------------------------ */

typedef struct gguf_file {
  char *path;
  uint8_t *map;
  size_t size;
  uint64_t data_off;   /* start of the data section */
} gguf_file;

typedef struct gguf_kv {
  char *key;
  uint32_t type;
  uint64_t val_off;    /* value bytes (after the type code) in file 0 */
  uint64_t val_len;
  eng__gguf_arr arr;   /* arrays */
  uint64_t *str_off;   /* string arrays: owned offsets table */
} gguf_kv;

struct eng__gguf {
  char *path;
  uint32_t version;
  uint32_t alignment;
  gguf_file *files;
  uint32_t n_files;
  gguf_kv *kv;
  size_t n_kv;
  eng__gguf_tensor *tensors;
  size_t n_tensors;
  size_t cap_tensors;
};

/* ---- cursor ---------------------------------------------------------------------------- */

typedef struct cursor {
  const uint8_t *p;
  size_t size;
  size_t pos;
  const char *path;
  eng_error *err;
  char what[160];   /* the item being read, for messages */
} cursor;

static int cur_fail(cursor *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int cur_fail(cursor *c, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return eng__err(c->err, ENG_EFORMAT, "%s: %s: %s", c->path, c->what, msg);
}

static int cur_need(cursor *c, uint64_t n) {
  if (n > c->size - c->pos)
    return cur_fail(c, "truncated: needs %" PRIu64 " bytes at offset %zu, the file has %zu", n,
                    c->pos, c->size);
  return 0;
}

static int cur_u32(cursor *c, uint32_t *v) {
  if (cur_need(c, 4)) return ENG_EFORMAT;
  memcpy(v, c->p + c->pos, 4);
  c->pos += 4;
  return 0;
}

static int cur_u64(cursor *c, uint64_t *v) {
  if (cur_need(c, 8)) return ENG_EFORMAT;
  memcpy(v, c->p + c->pos, 8);
  c->pos += 8;
  return 0;
}

/* A string: validates the length against the bytes left; returns its offset. */
static int cur_str(cursor *c, uint64_t max, uint64_t *off, uint64_t *len) {
  uint64_t n;
  size_t at = c->pos;
  if (cur_u64(c, &n)) return ENG_EFORMAT;
  if (n > c->size - c->pos)
    return cur_fail(c, "string length %" PRIu64 " at offset %zu runs past the end of the file (%zu bytes)",
                    n, at, c->size);
  if (n > max) return cur_fail(c, "string length %" PRIu64 " exceeds the limit %" PRIu64, n, max);
  *off = c->pos;
  *len = n;
  c->pos += n;
  return 0;
}

/* Skip one value of type t (not an array), validating it. */
static int cur_skip_scalar(cursor *c, uint32_t t) {
  if (t == ENG__GGUF_STRING) {
    uint64_t o, l;
    return cur_str(c, UINT64_MAX, &o, &l);
  }
  if (cur_need(c, vtype_size[t])) return ENG_EFORMAT;
  if (t == ENG__GGUF_BOOL && c->p[c->pos] > 1)
    return cur_fail(c, "bool value %u at offset %zu is not 0 or 1", c->p[c->pos], c->pos);
  c->pos += vtype_size[t];
  return 0;
}

/* ---- parsing one file ------------------------------------------------------------------ */

static void kv_release(gguf_kv *kv) {
  free(kv->key);
  free(kv->str_off);
}

static int parse_kv(cursor *c, gguf_kv *kv, size_t idx) {
  snprintf(c->what, sizeof c->what, "metadata pair #%zu", idx);
  uint64_t koff, klen;
  if (cur_str(c, ENG__GGUF_MAX_KEY, &koff, &klen)) return ENG_EFORMAT;
  if (klen == 0) return cur_fail(c, "empty key at offset %" PRIu64, koff - 8);
  if (memchr(c->p + koff, 0, klen)) return cur_fail(c, "key contains a NUL byte");
  kv->key = malloc(klen + 1);
  if (!kv->key) return eng__err(c->err, ENG_ENOMEM, "out of memory reading metadata");
  memcpy(kv->key, c->p + koff, klen);
  kv->key[klen] = '\0';
  snprintf(c->what, sizeof c->what, "metadata '%.100s'", kv->key);
  if (cur_u32(c, &kv->type)) return ENG_EFORMAT;
  if (kv->type >= ENG__GGUF_NTYPES)
    return cur_fail(c, "unknown value type %u at offset %zu", kv->type, c->pos - 4);
  kv->val_off = c->pos;
  if (kv->type != ENG__GGUF_ARRAY) {
    if (cur_skip_scalar(c, kv->type)) return ENG_EFORMAT;
  } else {
    uint32_t et;
    uint64_t n;
    if (cur_u32(c, &et) || cur_u64(c, &n)) return ENG_EFORMAT;
    if (et >= ENG__GGUF_NTYPES) return cur_fail(c, "unknown array element type %u", et);
    if (et == ENG__GGUF_ARRAY) return cur_fail(c, "nested arrays are not supported");
    kv->arr.type = et;
    kv->arr.count = n;
    kv->arr.data = c->p + c->pos;
    uint64_t left = c->size - c->pos;
    if (et != ENG__GGUF_STRING) {
      if (n > left / vtype_size[et])
        return cur_fail(c, "array of %" PRIu64 " %s elements at offset %zu runs past the end of the file",
                        n, vtype_names[et], c->pos);
      if (et == ENG__GGUF_BOOL)
        for (uint64_t i = 0; i < n; i++)
          if (c->p[c->pos + i] > 1) return cur_fail(c, "bool element %" PRIu64 " is not 0 or 1", i);
      c->pos += n * vtype_size[et];
    } else {
      if (n > left / 8)
        return cur_fail(c, "array of %" PRIu64 " strings at offset %zu runs past the end of the file", n,
                        c->pos);
      kv->str_off = malloc((n ? n : 1) * sizeof *kv->str_off);
      if (!kv->str_off) return eng__err(c->err, ENG_ENOMEM, "out of memory reading '%s'", kv->key);
      size_t base = c->pos;
      for (uint64_t i = 0; i < n; i++) {
        kv->str_off[i] = c->pos - base;
        uint64_t o, l;
        if (cur_str(c, UINT64_MAX, &o, &l)) return ENG_EFORMAT;
      }
      kv->arr.str_off = kv->str_off;
    }
  }
  kv->val_len = c->pos - kv->val_off;
  return 0;
}

static int is_pow2(uint64_t x) { return x && !(x & (x - 1)); }

static const gguf_kv *find_kv_in(const gguf_kv *kv, size_t n, const char *key) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(kv[i].key, key) == 0) return &kv[i];
  return NULL;
}

/* Integer value of a scalar pair, if it is an integer type. */
static int kv_int(const uint8_t *map, const gguf_kv *kv, int64_t *v, uint64_t *uv, int *is_unsigned) {
  const uint8_t *p = map + kv->val_off;
  switch (kv->type) {
    case ENG__GGUF_U8: *uv = p[0]; *is_unsigned = 1; break;
    case ENG__GGUF_I8: *v = (int8_t)p[0]; *is_unsigned = 0; break;
    case ENG__GGUF_U16: { uint16_t x; memcpy(&x, p, 2); *uv = x; *is_unsigned = 1; break; }
    case ENG__GGUF_I16: { int16_t x; memcpy(&x, p, 2); *v = x; *is_unsigned = 0; break; }
    case ENG__GGUF_U32: { uint32_t x; memcpy(&x, p, 4); *uv = x; *is_unsigned = 1; break; }
    case ENG__GGUF_I32: { int32_t x; memcpy(&x, p, 4); *v = x; *is_unsigned = 0; break; }
    case ENG__GGUF_U64: { uint64_t x; memcpy(&x, p, 8); *uv = x; *is_unsigned = 1; break; }
    case ENG__GGUF_I64: { int64_t x; memcpy(&x, p, 8); *v = x; *is_unsigned = 0; break; }
    default: return 0;
  }
  if (*is_unsigned) *v = *uv > INT64_MAX ? INT64_MAX : (int64_t)*uv;
  else *uv = *v < 0 ? 0 : (uint64_t)*v;
  return 1;
}

static int str_cmp(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first name that occurs twice, or NULL; sorts `names` (n log n on hostile counts). */
static const char *first_duplicate(const char **names, size_t n) {
  qsort(names, n, sizeof *names, str_cmp);
  for (size_t i = 0; i + 1 < n; i++)
    if (strcmp(names[i], names[i + 1]) == 0) return names[i];
  return NULL;
}

typedef struct span {
  uint64_t off, len;
  size_t idx;
} span;

static int span_cmp(const void *a, const void *b) {
  const span *x = a, *y = b;
  return x->off < y->off ? -1 : x->off > y->off;
}

typedef struct parsed_file {
  uint32_t version;
  uint64_t n_tensors, n_kv;
  gguf_kv *kv;
  size_t n_kv_done;
  uint32_t alignment;
} parsed_file;

/* Map `path` and parse its header; tensors are appended to g->tensors with `file_idx`.
 * When keep_kv, the metadata pairs are handed to the caller in pf->kv. */
static int parse_file(eng__gguf *g, const char *path, uint32_t file_idx, parsed_file *pf, eng_error *err) {
  int rc = ENG_EFORMAT;
  gguf_file *f = &g->files[file_idx];
  memset(pf, 0, sizeof *pf);
  f->path = strdup(path);
  if (!f->path) return eng__err(err, ENG_ENOMEM, "out of memory");
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return eng__err(err, ENG_EIO, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    rc = eng__err(err, ENG_EIO, "%s: cannot stat: %s", path, strerror(errno));
    close(fd);
    return rc;
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return eng__err(err, ENG_EIO, "%s: not a regular file", path);
  }
  if (st.st_size < 24) {
    close(fd);
    return eng__err(err, ENG_EFORMAT, "%s: not a GGUF file: %lld bytes is shorter than the 24-byte header",
                    path, (long long)st.st_size);
  }
  f->size = (size_t)st.st_size;
  void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (m == MAP_FAILED) return eng__err(err, ENG_EIO, "%s: cannot map: %s", path, strerror(errno));
  f->map = m;
  /* Paging hints, for measurements ($QCODER_MADVISE = hugepage | willneed | sequential |
   * random): none is the default, as none measured better (BENCHMARKS.md). A refused hint
   * is harmless. */
  const char *adv = getenv("QCODER_MADVISE");
  if (adv && *adv) {
    int a = !strcmp(adv, "willneed") ? MADV_WILLNEED : !strcmp(adv, "sequential") ? MADV_SEQUENTIAL
          : !strcmp(adv, "random") ? MADV_RANDOM :
#ifdef MADV_HUGEPAGE
          !strcmp(adv, "hugepage") ? MADV_HUGEPAGE :
#endif
          -1;
    if (a >= 0) (void)madvise(m, f->size, a);
  }

  cursor c = {.p = f->map, .size = f->size, .path = path, .err = err};
  snprintf(c.what, sizeof c.what, "header");
  if (memcmp(f->map, "GGUF", 4) != 0)
    return eng__err(err, ENG_EFORMAT, "%s: not a GGUF file (magic bytes %02x %02x %02x %02x, expected \"GGUF\")",
                    path, f->map[0], f->map[1], f->map[2], f->map[3]);
  c.pos = 4;
  cur_u32(&c, &pf->version);
  if (pf->version == 1)
    return eng__err(err, ENG_EFORMAT, "%s: GGUF version 1 is not supported (an early-2023 file): convert it again", path);
  if ((pf->version & 0xFFFF) == 0 && pf->version != 0)
    return eng__err(err, ENG_EFORMAT, "%s: big-endian GGUF files are not supported", path);
  if (pf->version != 2 && pf->version != 3)
    return eng__err(err, ENG_EFORMAT, "%s: GGUF version %u is not supported (this engine reads versions 2 and 3)",
                    path, pf->version);
  cur_u64(&c, &pf->n_tensors);
  cur_u64(&c, &pf->n_kv);
  /* each pair takes at least 8 (key len) + 1 (key) + 4 (type) + 1 bytes; each tensor info
   * 8 + 1 + 4 + 8 + 4 + 8 */
  if (pf->n_kv > ENG__GGUF_MAX_KV || pf->n_kv > (f->size - c.pos) / 14)
    return eng__err(err, ENG_EFORMAT, "%s: header: %" PRIu64 " metadata pairs cannot fit in a %zu-byte file (limit %u)",
                    path, pf->n_kv, f->size, ENG__GGUF_MAX_KV);
  if (pf->n_tensors > ENG__GGUF_MAX_TENSORS || pf->n_tensors > (f->size - c.pos) / 33)
    return eng__err(err, ENG_EFORMAT, "%s: header: %" PRIu64 " tensors cannot fit in a %zu-byte file (limit %u)",
                    path, pf->n_tensors, f->size, ENG__GGUF_MAX_TENSORS);

  pf->kv = calloc(pf->n_kv ? pf->n_kv : 1, sizeof *pf->kv);
  if (!pf->kv) return eng__err(err, ENG_ENOMEM, "out of memory");
  for (size_t i = 0; i < pf->n_kv; i++) {
    pf->n_kv_done = i + 1;
    if ((rc = parse_kv(&c, &pf->kv[i], i))) return rc;
  }
  rc = 0;
  {
    const char **names = malloc((pf->n_kv ? pf->n_kv : 1) * sizeof *names);
    if (!names) return eng__err(err, ENG_ENOMEM, "out of memory");
    for (size_t i = 0; i < pf->n_kv; i++) names[i] = pf->kv[i].key;
    const char *dup = first_duplicate(names, pf->n_kv);
    if (dup) rc = eng__err(err, ENG_EFORMAT, "%s: metadata key '%.100s' appears twice", path, dup);
    free(names);
    if (rc) return rc;
  }

  pf->alignment = 32;
  const gguf_kv *al = find_kv_in(pf->kv, pf->n_kv, "general.alignment");
  if (al) {
    if (al->type != ENG__GGUF_U32)
      return eng__err(err, ENG_EFORMAT, "%s: general.alignment has type %s, expected u32", path,
                      vtype_names[al->type]);
    uint32_t a;
    memcpy(&a, f->map + al->val_off, 4);
    if (!is_pow2(a) || a > ENG__GGUF_MAX_ALIGN)
      return eng__err(err, ENG_EFORMAT, "%s: general.alignment %u is not a power of two in 1..%u", path, a,
                      ENG__GGUF_MAX_ALIGN);
    pf->alignment = a;
  }

  /* tensor infos */
  size_t first = g->n_tensors;
  if (g->n_tensors + pf->n_tensors > ENG__GGUF_MAX_TENSORS)
    return eng__err(err, ENG_EFORMAT, "%s: more than %u tensors in the model", path, ENG__GGUF_MAX_TENSORS);
  if (g->n_tensors + pf->n_tensors > g->cap_tensors) {
    size_t cap = g->n_tensors + pf->n_tensors;
    eng__gguf_tensor *t = realloc(g->tensors, (cap ? cap : 1) * sizeof *t);
    if (!t) return eng__err(err, ENG_ENOMEM, "out of memory for %zu tensor infos", cap);
    g->tensors = t;
    g->cap_tensors = cap;
  }
  for (uint64_t i = 0; i < pf->n_tensors; i++) {
    eng__gguf_tensor *t = &g->tensors[g->n_tensors];
    memset(t, 0, sizeof *t);
    snprintf(c.what, sizeof c.what, "tensor info #%" PRIu64, i);
    uint64_t noff, nlen;
    if (cur_str(&c, ENG__GGUF_MAX_NAME, &noff, &nlen)) return ENG_EFORMAT;
    if (nlen == 0 || memchr(f->map + noff, 0, nlen)) return cur_fail(&c, "empty name or a name with a NUL byte");
    char *name = malloc(nlen + 1);
    if (!name) return eng__err(err, ENG_ENOMEM, "out of memory");
    memcpy(name, f->map + noff, nlen);
    name[nlen] = '\0';
    t->name = name;
    g->n_tensors++;   /* owned from here on: eng__gguf_close frees the name */
    snprintf(c.what, sizeof c.what, "tensor '%s'", name);
    if (cur_u32(&c, &t->n_dims)) return ENG_EFORMAT;
    if (t->n_dims < 1 || t->n_dims > ENG__GGUF_MAX_DIMS)
      return cur_fail(&c, "%u dimensions (must be 1..%u)", t->n_dims, ENG__GGUF_MAX_DIMS);
    t->n_elems = 1;
    for (uint32_t d = 0; d < 4; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
      if (cur_u64(&c, &t->ne[d])) return ENG_EFORMAT;
      if (t->ne[d] == 0 || t->ne[d] > (uint64_t)INT64_MAX)
        return cur_fail(&c, "dimension %u is %" PRIu64 " (must be 1..2^63-1)", d, t->ne[d]);
      if (t->n_elems > (uint64_t)INT64_MAX / t->ne[d])
        return cur_fail(&c, "the product of the dimensions overflows (dimension %u is %" PRIu64 ")", d, t->ne[d]);
      t->n_elems *= t->ne[d];
    }
    if (cur_u32(&c, &t->type)) return ENG_EFORMAT;
    const eng__ggml_type_info *ti = eng__ggml_type(t->type);
    if (!ti) return cur_fail(&c, "unknown ggml type %u", t->type);
    if (t->ne[0] % ti->blck)
      return cur_fail(&c, "first dimension %" PRIu64 " is not a multiple of the %s block size %u", t->ne[0],
                      ti->name, ti->blck);
    t->nbytes = t->n_elems / ti->blck * ti->size;   /* n_elems < 2^63, size ≤ 292·blck: no overflow */
    if (t->n_elems / ti->blck > UINT64_MAX / ti->size) return cur_fail(&c, "size overflows");
    if (cur_u64(&c, &t->offset)) return ENG_EFORMAT;
    if (t->offset % pf->alignment)
      return cur_fail(&c, "data offset %" PRIu64 " is not a multiple of the alignment %u", t->offset, pf->alignment);
    t->file = file_idx;
  }

  /* data section */
  uint64_t hdr_end = c.pos;
  f->data_off = hdr_end + (pf->alignment - hdr_end % pf->alignment) % pf->alignment;
  if (pf->n_tensors > 0 && f->data_off > f->size)
    return eng__err(err, ENG_EFORMAT, "%s: the tensor data section (offset %" PRIu64 ") starts past the end of the file (%zu bytes)",
                    path, f->data_off, f->size);
  uint64_t data_size = f->data_off <= f->size ? f->size - f->data_off : 0;
  for (size_t j = first; j < g->n_tensors; j++) {
    eng__gguf_tensor *t = &g->tensors[j];
    if (t->offset > data_size || t->nbytes > data_size - t->offset)
      return eng__err(err, ENG_EFORMAT,
                      "%s: tensor '%s' extends past the end of the file (data offset %" PRIu64 ", size %" PRIu64
                      ", data section %" PRIu64 " bytes)",
                      path, t->name, t->offset, t->nbytes, data_size);
    t->data = f->map + f->data_off + t->offset;
  }
  /* overlap: sort by offset, compare neighbours */
  size_t nt = g->n_tensors - first;
  if (nt > 1) {
    span *sp = malloc(nt * sizeof *sp);
    if (!sp) return eng__err(err, ENG_ENOMEM, "out of memory");
    for (size_t j = 0; j < nt; j++) sp[j] = (span){g->tensors[first + j].offset, g->tensors[first + j].nbytes, first + j};
    qsort(sp, nt, sizeof *sp, span_cmp);
    for (size_t j = 0; j + 1 < nt && !rc; j++) {
      if (sp[j].off + sp[j].len > sp[j + 1].off) {
        const eng__gguf_tensor *a = &g->tensors[sp[j].idx], *b = &g->tensors[sp[j + 1].idx];
        rc = eng__err(err, ENG_EFORMAT, "%s: tensors '%s' (offset %" PRIu64 ", %" PRIu64 " bytes) and '%s' (offset %" PRIu64
                      ") overlap", path, a->name, a->offset, a->nbytes, b->name, b->offset);
      }
    }
    free(sp);
    if (rc) return rc;
  }
  return 0;
}

static void parsed_release(parsed_file *pf) {
  for (size_t i = 0; i < pf->n_kv_done; i++) kv_release(&pf->kv[i]);
  free(pf->kv);
  pf->kv = NULL;
  pf->n_kv_done = 0;
}

/* split.* value as an unsigned integer; -1 absent, -2 wrong type. */
static int64_t split_key(const uint8_t *map, const gguf_kv *kv, size_t n, const char *key) {
  const gguf_kv *k = find_kv_in(kv, n, key);
  if (!k) return -1;
  int64_t v;
  uint64_t uv;
  int u;
  if (!kv_int(map, k, &v, &uv, &u) || v < 0) return -2;
  return v;
}

void eng__gguf_close(eng__gguf *g) {
  if (!g) return;
  for (size_t i = 0; i < g->n_kv; i++) kv_release(&g->kv[i]);
  free(g->kv);
  for (size_t i = 0; i < g->n_tensors; i++) free((char *)g->tensors[i].name);
  free(g->tensors);
  for (uint32_t i = 0; i < g->n_files; i++) {
    if (g->files[i].map) munmap(g->files[i].map, g->files[i].size);
    free(g->files[i].path);
  }
  free(g->files);
  free(g->path);
  free(g);
}

/* The split-file name of part k (1-based) of `count`, given any part's path; NULL when the
 * path does not end in -NNNNN-of-MMMMM.gguf with MMMMM == count. Malloc'd. */
static char *split_part_path(const char *path, int64_t k, int64_t count) {
  size_t len = strlen(path);
  if (len < 20) return NULL;
  const char *sfx = path + len - 20;
  unsigned a, b;
  char tail[8];
  if (sscanf(sfx, "-%5u-of-%5u.%5s", &a, &b, tail) != 3 || strcmp(tail, "gguf") != 0 || b != (unsigned)count)
    return NULL;
  char *p = malloc(len + 1);
  if (!p) return NULL;
  snprintf(p, len + 1, "%.*s-%05u-of-%05u.gguf", (int)(len - 20), path, (unsigned)k, (unsigned)count);
  return p;
}

static int open_impl(const char *path, const char *given, int redirected, eng__gguf **out, eng_error *err) {
  int rc;
  parsed_file pf = {0}, pp = {0};
  char *part = NULL;
  *out = NULL;
  eng__gguf *g = calloc(1, sizeof *g);
  if (!g) return eng__err(err, ENG_ENOMEM, "out of memory");
  g->path = strdup(given);
  g->files = calloc(1, sizeof *g->files);
  if (!g->path || !g->files) { rc = eng__err(err, ENG_ENOMEM, "out of memory"); goto fail; }
  g->n_files = 1;
  if ((rc = parse_file(g, path, 0, &pf, err))) goto fail;
  g->version = pf.version;
  g->alignment = pf.alignment;
  g->kv = pf.kv;
  g->n_kv = pf.n_kv_done;
  pf.kv = NULL;
  pf.n_kv_done = 0;

  int64_t count = split_key(g->files[0].map, g->kv, g->n_kv, "split.count");
  int64_t no = split_key(g->files[0].map, g->kv, g->n_kv, "split.no");
  if (count == -2 || no == -2) {
    rc = eng__err(err, ENG_EFORMAT, "%s: split.count and split.no must be non-negative integers", path);
    goto fail;
  }
  if (count > ENG__GGUF_MAX_SPLITS) {
    rc = eng__err(err, ENG_EFORMAT, "%s: split.count %" PRId64 " exceeds the limit %u", path, count, ENG__GGUF_MAX_SPLITS);
    goto fail;
  }
  if (no >= 0 && (count < 1 || no >= count)) {
    rc = eng__err(err, ENG_EFORMAT, "%s: split.no %" PRId64 " is not below split.count %" PRId64, path, no, count);
    goto fail;
  }
  if (count > 1) {
    if (no < 0) {
      rc = eng__err(err, ENG_EFORMAT, "%s: split.count %" PRId64 " without split.no", path, count);
      goto fail;
    }
    if (no != 0) {
      /* the metadata lives in part 1: start over from there */
      part = split_part_path(path, 1, count);
      if (!part || redirected) {
        rc = eng__err(err, ENG_EFORMAT, "%s: part %" PRId64 " of a %" PRId64 "-file split model whose name does not end in "
                      "-%05" PRId64 "-of-%05" PRId64 ".gguf, so part 1 cannot be found", path, no + 1, count, no + 1, count);
        goto fail;
      }
      eng__gguf_close(g);
      rc = open_impl(part, given, 1, out, err);
      free(part);
      return rc;
    }
    char *check = split_part_path(path, 1, count);
    if (!check || strcmp(check, path) != 0) {
      free(check);
      rc = eng__err(err, ENG_EFORMAT, "%s: part 1 of a %" PRId64 "-file split model, but the name does not end in "
                    "-00001-of-%05" PRId64 ".gguf, so the other parts cannot be found", path, count, count);
      goto fail;
    }
    free(check);
    gguf_file *nf = realloc(g->files, (size_t)count * sizeof *nf);
    if (!nf) { rc = eng__err(err, ENG_ENOMEM, "out of memory"); goto fail; }
    memset(nf + 1, 0, (size_t)(count - 1) * sizeof *nf);
    g->files = nf;
    for (int64_t k = 1; k < count; k++) {
      g->n_files = (uint32_t)k + 1;
      part = split_part_path(path, k + 1, count);
      if (!part) { rc = eng__err(err, ENG_ENOMEM, "out of memory"); goto fail; }
      if ((rc = parse_file(g, part, (uint32_t)k, &pp, err))) goto fail;
      int64_t pno = split_key(g->files[k].map, pp.kv, pp.n_kv_done, "split.no");
      int64_t pcount = split_key(g->files[k].map, pp.kv, pp.n_kv_done, "split.count");
      if (pno != k || pcount != count) {
        rc = eng__err(err, ENG_EFORMAT, "%s: split.no is %" PRId64 " and split.count %" PRId64 ", expected %" PRId64 " and %" PRId64,
                      part, pno, pcount, k, count);
        goto fail;
      }
      parsed_release(&pp);
      free(part);
      part = NULL;
    }
    int64_t total = split_key(g->files[0].map, g->kv, g->n_kv, "split.tensors.count");
    if (total >= 0 && (uint64_t)total != g->n_tensors) {
      rc = eng__err(err, ENG_EFORMAT, "%s: split.tensors.count says %" PRId64 " tensors, the parts hold %zu", path,
                    total, g->n_tensors);
      goto fail;
    }
  }
  /* tensor names are unique over the whole model */
  if (g->n_tensors > 1) {
    const char **names = malloc(g->n_tensors * sizeof *names);
    if (!names) { rc = eng__err(err, ENG_ENOMEM, "out of memory"); goto fail; }
    for (size_t i = 0; i < g->n_tensors; i++) names[i] = g->tensors[i].name;
    const char *dup = first_duplicate(names, g->n_tensors);
    if (dup) rc = eng__err(err, ENG_EFORMAT, "%s: tensor name '%s' appears twice", path, dup);
    free(names);
    if (rc) goto fail;
  }
  *out = g;
  return ENG_OK;
fail:
  parsed_release(&pf);
  parsed_release(&pp);
  free(part);
  eng__gguf_close(g);
  return rc;
}

int eng__gguf_open(const char *path, eng__gguf **out, eng_error *err) {
  return open_impl(path, path, 0, out, err);
}

/* ---- accessors ------------------------------------------------------------------------- */

uint32_t eng__gguf_version(const eng__gguf *g) { return g->version; }
uint32_t eng__gguf_alignment(const eng__gguf *g) { return g->alignment; }
uint32_t eng__gguf_n_files(const eng__gguf *g) { return g->n_files; }
const char *eng__gguf_path(const eng__gguf *g) { return g->path; }
uint64_t eng__gguf_file_bytes(const eng__gguf *g) {
  uint64_t s = 0;
  for (uint32_t i = 0; i < g->n_files; i++) s += g->files[i].size;
  return s;
}
size_t eng__gguf_n_kv(const eng__gguf *g) { return g->n_kv; }
const char *eng__gguf_kv_key(const eng__gguf *g, size_t i) { return i < g->n_kv ? g->kv[i].key : NULL; }
uint32_t eng__gguf_kv_type(const eng__gguf *g, size_t i) { return i < g->n_kv ? g->kv[i].type : ENG__GGUF_NTYPES; }

long eng__gguf_find_key(const eng__gguf *g, const char *key) {
  for (size_t i = 0; i < g->n_kv; i++)
    if (strcmp(g->kv[i].key, key) == 0) return (long)i;
  return -1;
}

const uint8_t *eng__gguf_kv_raw(const eng__gguf *g, size_t i, size_t *len) {
  if (i >= g->n_kv) return NULL;
  *len = g->kv[i].val_len;
  return g->files[0].map + g->kv[i].val_off;
}

static const gguf_kv *lookup(const eng__gguf *g, const char *key) {
  long i = eng__gguf_find_key(g, key);
  return i < 0 ? NULL : &g->kv[i];
}

static int wrong_type(const eng__gguf *g, const gguf_kv *kv, const char *want, eng_error *err) {
  return eng__err(err, ENG_EFORMAT, "%s: metadata '%s' has type %s, expected %s", g->path, kv->key,
                  vtype_names[kv->type], want);
}

static int get_int(const eng__gguf *g, const char *key, int64_t lo, uint64_t hi, const char *want, int64_t *sv,
                   uint64_t *uv, eng_error *err) {
  const gguf_kv *kv = lookup(g, key);
  if (!kv) return 0;
  int u;
  if (kv->type == ENG__GGUF_BOOL) return wrong_type(g, kv, want, err);
  if (!kv_int(g->files[0].map, kv, sv, uv, &u)) return wrong_type(g, kv, want, err);
  if ((u && *uv > hi) || (!u && (*sv < lo || (*sv >= 0 && (uint64_t)*sv > hi))))
    return eng__err(err, ENG_EFORMAT, "%s: metadata '%s' = %s%" PRIu64 " is out of range for %s", g->path, key,
                    (!u && *sv < 0) ? "-" : "", (!u && *sv < 0) ? (uint64_t)(-(*sv + 1)) + 1 : *uv, want);
  return 1;
}

int eng__gguf_get_u32(const eng__gguf *g, const char *key, uint32_t *out, eng_error *err) {
  int64_t s;
  uint64_t u;
  int rc = get_int(g, key, 0, UINT32_MAX, "u32", &s, &u, err);
  if (rc == 1) *out = (uint32_t)u;
  return rc;
}

int eng__gguf_get_i32(const eng__gguf *g, const char *key, int32_t *out, eng_error *err) {
  int64_t s;
  uint64_t u;
  int rc = get_int(g, key, INT32_MIN, INT32_MAX, "i32", &s, &u, err);
  if (rc == 1) *out = (int32_t)s;
  return rc;
}

int eng__gguf_get_u64(const eng__gguf *g, const char *key, uint64_t *out, eng_error *err) {
  int64_t s;
  uint64_t u;
  int rc = get_int(g, key, 0, UINT64_MAX, "u64", &s, &u, err);
  if (rc == 1) *out = u;
  return rc;
}

int eng__gguf_get_f32(const eng__gguf *g, const char *key, float *out, eng_error *err) {
  const gguf_kv *kv = lookup(g, key);
  if (!kv) return 0;
  const uint8_t *p = g->files[0].map + kv->val_off;
  if (kv->type == ENG__GGUF_F32) {
    memcpy(out, p, 4);
  } else if (kv->type == ENG__GGUF_F64) {
    double d;
    memcpy(&d, p, 8);
    *out = (float)d;
  } else {
    return wrong_type(g, kv, "f32", err);
  }
  if (!isfinite(*out))
    return eng__err(err, ENG_EFORMAT, "%s: metadata '%s' is not a finite number", g->path, key);
  return 1;
}

int eng__gguf_get_bool(const eng__gguf *g, const char *key, int *out, eng_error *err) {
  const gguf_kv *kv = lookup(g, key);
  if (!kv) return 0;
  if (kv->type != ENG__GGUF_BOOL) return wrong_type(g, kv, "bool", err);
  *out = g->files[0].map[kv->val_off] != 0;
  return 1;
}

int eng__gguf_get_str(const eng__gguf *g, const char *key, const char **out, size_t *len, eng_error *err) {
  const gguf_kv *kv = lookup(g, key);
  if (!kv) return 0;
  if (kv->type != ENG__GGUF_STRING) return wrong_type(g, kv, "string", err);
  uint64_t n;
  memcpy(&n, g->files[0].map + kv->val_off, 8);
  *out = (const char *)g->files[0].map + kv->val_off + 8;
  *len = (size_t)n;
  return 1;
}

int eng__gguf_get_str_buf(const eng__gguf *g, const char *key, char *buf, size_t n, eng_error *err) {
  const char *s;
  size_t len;
  int rc = eng__gguf_get_str(g, key, &s, &len, err);
  if (rc == 1 && n > 0) {
    if (len > n - 1) len = n - 1;
    memcpy(buf, s, len);
    buf[len] = '\0';
  }
  return rc;
}

int eng__gguf_get_arr(const eng__gguf *g, const char *key, eng__gguf_arr *out, eng_error *err) {
  const gguf_kv *kv = lookup(g, key);
  if (!kv) return 0;
  if (kv->type != ENG__GGUF_ARRAY) return wrong_type(g, kv, "array", err);
  *out = kv->arr;
  return 1;
}

const char *eng__gguf_arr_str(const eng__gguf_arr *a, uint64_t i, size_t *len) {
  assert(a->type == ENG__GGUF_STRING && i < a->count);
  const uint8_t *p = a->data + a->str_off[i];
  uint64_t n;
  memcpy(&n, p, 8);
  *len = (size_t)n;
  return (const char *)p + 8;
}

int64_t eng__gguf_arr_i64(const eng__gguf_arr *a, uint64_t i) {
  assert(i < a->count);
  const uint8_t *p = a->data + i * vtype_size[a->type < ENG__GGUF_NTYPES ? a->type : 0];
  switch (a->type) {
    case ENG__GGUF_U8: case ENG__GGUF_BOOL: return p[0];
    case ENG__GGUF_I8: return (int8_t)p[0];
    case ENG__GGUF_U16: { uint16_t x; memcpy(&x, p, 2); return x; }
    case ENG__GGUF_I16: { int16_t x; memcpy(&x, p, 2); return x; }
    case ENG__GGUF_U32: { uint32_t x; memcpy(&x, p, 4); return x; }
    case ENG__GGUF_I32: { int32_t x; memcpy(&x, p, 4); return x; }
    case ENG__GGUF_U64: { uint64_t x; memcpy(&x, p, 8); return x > INT64_MAX ? INT64_MAX : (int64_t)x; }
    case ENG__GGUF_I64: { int64_t x; memcpy(&x, p, 8); return x; }
    case ENG__GGUF_F32: { float x; memcpy(&x, p, 4); return (int64_t)x; }
    case ENG__GGUF_F64: { double x; memcpy(&x, p, 8); return (int64_t)x; }
    default: assert(0 && "not a numeric array"); return 0;
  }
}

double eng__gguf_arr_f64(const eng__gguf_arr *a, uint64_t i) {
  assert(i < a->count);
  const uint8_t *p = a->data + i * vtype_size[a->type < ENG__GGUF_NTYPES ? a->type : 0];
  if (a->type == ENG__GGUF_F32) { float x; memcpy(&x, p, 4); return x; }
  if (a->type == ENG__GGUF_F64) { double x; memcpy(&x, p, 8); return x; }
  return (double)eng__gguf_arr_i64(a, i);
}

static void format_str(const char *s, size_t len, char *buf, size_t n) {
  size_t w = 0;
  for (size_t i = 0; i < len && w + 8 < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '\n') { buf[w++] = '\\'; buf[w++] = 'n'; }
    else if (ch < 0x20 || ch == 0x7f) w += (size_t)snprintf(buf + w, n - w, "\\x%02x", ch);
    else buf[w++] = (char)ch;
    if (i + 1 < len && w + 8 >= n) { memcpy(buf + w, "...", 3); w += 3; break; }
  }
  buf[w] = '\0';
}

void eng__gguf_kv_format(const eng__gguf *g, size_t i, char *buf, size_t n) {
  if (!n) return;
  buf[0] = '\0';
  if (i >= g->n_kv) return;
  const gguf_kv *kv = &g->kv[i];
  const uint8_t *p = g->files[0].map + kv->val_off;
  int64_t sv;
  uint64_t uv;
  int u;
  if (kv_int(g->files[0].map, kv, &sv, &uv, &u)) {
    if (u) snprintf(buf, n, "%" PRIu64, uv);
    else snprintf(buf, n, "%" PRId64, sv);
    return;
  }
  switch (kv->type) {
    case ENG__GGUF_F32: { float x; memcpy(&x, p, 4); snprintf(buf, n, "%g", x); break; }
    case ENG__GGUF_F64: { double x; memcpy(&x, p, 8); snprintf(buf, n, "%g", x); break; }
    case ENG__GGUF_BOOL: snprintf(buf, n, "%s", p[0] ? "true" : "false"); break;
    case ENG__GGUF_STRING: {
      uint64_t len;
      memcpy(&len, p, 8);
      format_str((const char *)p + 8, (size_t)len, buf, n);
      break;
    }
    case ENG__GGUF_ARRAY:
      snprintf(buf, n, "[%s; %" PRIu64 "]", vtype_names[kv->arr.type], kv->arr.count);
      break;
    default: break;
  }
}

size_t eng__gguf_n_tensors(const eng__gguf *g) { return g->n_tensors; }
const eng__gguf_tensor *eng__gguf_tensor_at(const eng__gguf *g, size_t i) {
  return i < g->n_tensors ? &g->tensors[i] : NULL;
}
const eng__gguf_tensor *eng__gguf_find_tensor(const eng__gguf *g, const char *name) {
  for (size_t i = 0; i < g->n_tensors; i++)
    if (strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
  return NULL;
}
