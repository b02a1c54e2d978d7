/* workflow_gguf.c — a header-only GGUF reader for `qcoder models` and `qcoder pull`.
 *
 * The engine owns the GGUF format (engine/gguf.c maps the whole file and validates every
 * tensor for inference); listing a cache of 18 GB files and checking that a download is
 * a model needs much less: the architecture, the quantisation, the split numbering, and
 * the assurance that the header is well-formed and the tensors lie inside the file. This
 * reader streams the header through stdio, skipping values it does not need, and stops
 * where the tensor data begins — a few hundred KB read whatever the file size.
 *
 * Layout (GGUF v2/v3, little-endian): "GGUF", u32 version, u64 n_tensors, u64 n_kv;
 * n_kv × (string key, u32 type, value); n_tensors × (string name, u32 n_dims, n_dims ×
 * u64 dim, u32 ggml type, u64 offset); padding to general.alignment (default 32); data.
 * A string is u64 length + bytes; an array is u32 element type + u64 count + elements.
 * Everything is bounded by the WF_GGUF_* limits.
 */
#include "daemon/workflow.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

enum {
  GT_U8, GT_I8, GT_U16, GT_I16, GT_U32, GT_I32, GT_F32, GT_BOOL, GT_STRING, GT_ARRAY, GT_U64, GT_I64, GT_F64,
  GT_COUNT
};

static const unsigned k_scalar_size[GT_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

typedef struct rd {
  FILE *f;
  uint64_t pos;
  char *why;
  size_t why_len;
} rd;

static int fail(rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(rd *r, const char *fmt, ...) {
  if (r->why && r->why_len) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, r->why_len, fmt, ap);
    va_end(ap);
  }
  return -1;
}

static int rd_bytes(rd *r, void *p, size_t n) {
  if (n && fread(p, 1, n, r->f) != n) return -1;
  r->pos += n;
  return 0;
}

static int rd_u32(rd *r, uint32_t *v) {
  unsigned char b[4];
  if (rd_bytes(r, b, 4)) return -1;
  *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
  return 0;
}

static int rd_u64(rd *r, uint64_t *v) {
  uint32_t lo, hi;
  if (rd_u32(r, &lo) || rd_u32(r, &hi)) return -1;
  *v = (uint64_t)hi << 32 | lo;
  return 0;
}

static int rd_skip(rd *r, uint64_t n) {
  if (n > (uint64_t)INT64_MAX || fseeko(r->f, (off_t)n, SEEK_CUR) != 0) return -1;
  r->pos += n;
  return 0;
}

/* A string: into buf (NUL-terminated, cut to cap-1) when buf is given, else skipped. */
static int rd_string(rd *r, char *buf, size_t cap, uint64_t *len_out) {
  uint64_t n;
  if (rd_u64(r, &n)) return -1;
  if (n > WF_GGUF_MAX_STRING) return -2;
  if (len_out) *len_out = n;
  if (!buf) return rd_skip(r, n);
  size_t keep = n < cap - 1 ? (size_t)n : cap - 1;
  if (rd_bytes(r, buf, keep)) return -1;
  buf[keep] = '\0';
  return rd_skip(r, n - keep);
}

static int rd_skip_value(rd *r, uint32_t type, int depth) {
  if (type >= GT_COUNT) return -2;
  if (type == GT_STRING) return rd_string(r, NULL, 0, NULL);
  if (type != GT_ARRAY) return rd_skip(r, k_scalar_size[type]);
  if (depth > 2) return -2; /* arrays of arrays of arrays: not in any model */
  uint32_t et;
  uint64_t count;
  if (rd_u32(r, &et) || rd_u64(r, &count)) return -1;
  if (et >= GT_COUNT || count > WF_GGUF_MAX_ARRAY) return -2;
  if (et != GT_STRING && et != GT_ARRAY) return rd_skip(r, count * k_scalar_size[et]);
  for (uint64_t i = 0; i < count; i++) {
    int rc = rd_skip_value(r, et, depth + 1);
    if (rc) return rc;
  }
  return 0;
}

/* An unsigned integer value of any integer type. */
static int rd_uint(rd *r, uint32_t type, uint64_t *v) {
  unsigned char b[8] = {0};
  if (type >= GT_COUNT || type == GT_STRING || type == GT_ARRAY || type == GT_F32 || type == GT_F64) return -2;
  if (rd_bytes(r, b, k_scalar_size[type])) return -1;
  uint64_t x = 0;
  for (unsigned i = 0; i < k_scalar_size[type]; i++) x |= (uint64_t)b[i] << (8 * i);
  *v = x;
  return 0;
}

int wf_gguf_peek(const char *path, wf_gguf_head *h, char *why, size_t why_len) {
  memset(h, 0, sizeof *h);
  h->file_type = UINT32_MAX;
  rd r = {NULL, 0, why, why_len};
  int ret = -1;
  struct stat st;
  r.f = fopen(path, "rb");
  if (!r.f) return fail(&r, "cannot open %s: %s", path, strerror(errno));
  if (fstat(fileno(r.f), &st) != 0 || !S_ISREG(st.st_mode)) {
    fail(&r, "%s is not a regular file", path);
    goto out;
  }
  h->file_size = (uint64_t)st.st_size;
  char magic[4];
  if (rd_bytes(&r, magic, 4) || memcmp(magic, "GGUF", 4) != 0) {
    fail(&r, "not a GGUF file (it does not start with \"GGUF\")");
    goto out;
  }
  if (rd_u32(&r, &h->version) || rd_u64(&r, &h->n_tensors) || rd_u64(&r, &h->n_kv)) {
    fail(&r, "truncated GGUF header");
    goto out;
  }
  if (h->version != 2 && h->version != 3) {
    fail(&r, "unsupported GGUF version %u (2 and 3 are read)", h->version);
    goto out;
  }
  if (h->n_kv > WF_GGUF_MAX_KV || h->n_tensors > WF_GGUF_MAX_TENSORS) {
    fail(&r, "implausible GGUF header: %llu keys, %llu tensors", (unsigned long long)h->n_kv,
         (unsigned long long)h->n_tensors);
    goto out;
  }
  uint64_t alignment = 32;
  for (uint64_t i = 0; i < h->n_kv; i++) {
    char key[256];
    uint32_t type;
    int rc = rd_string(&r, key, sizeof key, NULL);
    if (rc == 0) rc = rd_u32(&r, &type);
    if (rc) {
      fail(&r, rc == -2 ? "key %llu: too long" : "truncated inside key %llu", (unsigned long long)i);
      goto out;
    }
    if (type == GT_STRING && (!strcmp(key, "general.architecture") || !strcmp(key, "general.name"))) {
      int is_arch = !strcmp(key, "general.architecture");
      rc = rd_string(&r, is_arch ? h->arch : h->name, is_arch ? sizeof h->arch : sizeof h->name, NULL);
    } else if (!strcmp(key, "general.file_type") || !strcmp(key, "split.no") || !strcmp(key, "split.count") ||
               !strcmp(key, "general.alignment")) {
      uint64_t v = 0;
      rc = rd_uint(&r, type, &v);
      if (rc == 0) {
        if (!strcmp(key, "general.file_type")) h->file_type = v > UINT32_MAX ? UINT32_MAX - 1 : (uint32_t)v;
        else if (!strcmp(key, "split.no")) h->split_no = (uint32_t)(v > WF_SPLIT_MAX_PARTS ? WF_SPLIT_MAX_PARTS : v);
        else if (!strcmp(key, "split.count")) h->split_count = (uint32_t)(v > WF_SPLIT_MAX_PARTS ? WF_SPLIT_MAX_PARTS : v);
        else alignment = v;
      }
    } else {
      rc = rd_skip_value(&r, type, 0);
    }
    if (rc) {
      fail(&r, rc == -2 ? "key %s: malformed or oversized value" : "truncated inside the value of %s", key);
      goto out;
    }
  }
  if (alignment == 0 || alignment > (1u << 20) || (alignment & (alignment - 1))) {
    fail(&r, "general.alignment %llu is not a power of two up to 1 MiB", (unsigned long long)alignment);
    goto out;
  }
  uint64_t max_off = 0;
  for (uint64_t i = 0; i < h->n_tensors; i++) {
    uint32_t n_dims, type;
    uint64_t off;
    int rc = rd_string(&r, NULL, 0, NULL);
    if (rc == 0) rc = rd_u32(&r, &n_dims);
    if (rc == 0 && n_dims > 8) rc = -2;
    for (uint32_t d = 0; rc == 0 && d < n_dims; d++) {
      uint64_t dim;
      rc = rd_u64(&r, &dim);
    }
    if (rc == 0) rc = rd_u32(&r, &type);
    if (rc == 0) rc = rd_u64(&r, &off);
    if (rc) {
      fail(&r, rc == -2 ? "tensor %llu: malformed description" : "truncated inside tensor description %llu",
           (unsigned long long)i);
      goto out;
    }
    if (off % alignment) {
      fail(&r, "tensor %llu: offset %llu is not aligned to %llu", (unsigned long long)i, (unsigned long long)off,
           (unsigned long long)alignment);
      goto out;
    }
    if (off > max_off) max_off = off;
  }
  h->data_offset = (r.pos + alignment - 1) / alignment * alignment;
  h->data_needed = h->n_tensors ? h->data_offset + max_off : h->data_offset;
  if (h->n_tensors && h->data_needed >= h->file_size) {
    fail(&r, "truncated: the tensor data needs more than %llu bytes, the file has %llu",
         (unsigned long long)h->data_needed, (unsigned long long)h->file_size);
    goto out;
  }
  ret = 0;
out:
  fclose(r.f);
  return ret;
}

/* llama.cpp's llama_ftype values (include/llama.h), as its quantize tool names them. */
const char *wf_ftype_name(uint32_t ft) {
  static const char *const names[] = {
      [0] = "F32",      [1] = "F16",     [2] = "Q4_0",    [3] = "Q4_1",    [7] = "Q8_0",    [8] = "Q5_0",
      [9] = "Q5_1",     [10] = "Q2_K",   [11] = "Q3_K_S", [12] = "Q3_K_M", [13] = "Q3_K_L", [14] = "Q4_K_S",
      [15] = "Q4_K_M",  [16] = "Q5_K_S", [17] = "Q5_K_M", [18] = "Q6_K",   [19] = "IQ2_XXS", [20] = "IQ2_XS",
      [21] = "Q2_K_S",  [22] = "IQ3_XS", [23] = "IQ3_XXS", [24] = "IQ1_S", [25] = "IQ4_NL", [26] = "IQ3_S",
      [27] = "IQ3_M",   [28] = "IQ2_S",  [29] = "IQ2_M",  [30] = "IQ4_XS", [31] = "IQ1_M",  [32] = "BF16",
      [36] = "TQ1_0",   [37] = "TQ2_0",  [38] = "MXFP4_MOE",
  };
  if (ft >= sizeof names / sizeof names[0]) return NULL;
  return names[ft];
}
