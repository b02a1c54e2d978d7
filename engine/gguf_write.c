/* gguf_write.c — the streaming GGUF v3 writer (see gguf.h).
 *
 * Keys and tensor infos are collected in memory (they are small); the header is written
 * once every tensor is declared, so each tensor's offset is known from its shape. Tensor
 * bytes are then streamed in declaration order and never held: a 1.9 GB model is written
 * with a few MB of memory.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/gguf.h"
#include "engine/internal.h"
#include "engine/limits.h"
#include "common/common.h"

typedef struct wkv {
  char *key;
  uint32_t type;
  qc_buf val;   /* encoded value */
} wkv;

typedef struct wtensor {
  char *name;
  uint32_t type, n_dims;
  uint64_t ne[4];
  uint64_t nbytes;
} wtensor;

struct eng__gguf_writer {
  uint32_t alignment;
  wkv *kv;
  size_t n_kv, cap_kv;
  wtensor *t;
  size_t n_t, cap_t;
  FILE *f;
  char *path, *tmp;
  uint64_t pos;          /* bytes written */
  size_t cur;            /* tensor being written */
  uint64_t cur_done;     /* its bytes written so far */
  int failed;
  eng__gguf_layout layout;
  uint64_t *kv_off, *tinfo_off, *tdata_off;
};

#define W_MAX_VALUE ((size_t)1 << 34) /* one encoded value (a vocabulary is ~3 MB) */

eng__gguf_writer *eng__gguf_writer_new(uint32_t alignment) {
  eng__gguf_writer *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->alignment = alignment ? alignment : 32;
  return w;
}

void eng__gguf_writer_free(eng__gguf_writer *w) {
  if (!w) return;
  for (size_t i = 0; i < w->n_kv; i++) {
    free(w->kv[i].key);
    qc_buf_release(&w->kv[i].val);
  }
  free(w->kv);
  for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
  free(w->t);
  if (w->f) {
    fclose(w->f);
    if (w->tmp) unlink(w->tmp);
  }
  free(w->path);
  free(w->tmp);
  free(w->kv_off);
  free(w->tinfo_off);
  free(w->tdata_off);
  free(w);
}

static wkv *new_kv(eng__gguf_writer *w, const char *key, uint32_t type) {
  if (w->f) return NULL;  /* header already written */
  for (size_t i = 0; i < w->n_kv; i++)
    if (strcmp(w->kv[i].key, key) == 0) {  /* replace */
      qc_buf_reset(&w->kv[i].val);
      w->kv[i].type = type;
      return &w->kv[i];
    }
  if (w->n_kv == w->cap_kv) {
    size_t cap = w->cap_kv ? 2 * w->cap_kv : 32;
    wkv *n = realloc(w->kv, cap * sizeof *n);
    if (!n) return NULL;
    w->kv = n;
    w->cap_kv = cap;
  }
  wkv *kv = &w->kv[w->n_kv];
  kv->key = strdup(key);
  if (!kv->key) return NULL;
  kv->type = type;
  qc_buf_init(&kv->val, W_MAX_VALUE);
  w->n_kv++;
  return kv;
}

static int put_str(qc_buf *b, const char *s, size_t n) {
  uint64_t len = n;
  if (qc_buf_append(b, &len, 8) || qc_buf_append(b, s, n)) return ENG_ENOMEM;
  return 0;
}

static int set_scalar(eng__gguf_writer *w, const char *key, uint32_t type, const void *v, size_t n) {
  wkv *kv = new_kv(w, key, type);
  if (!kv || qc_buf_append(&kv->val, v, n)) return ENG_ENOMEM;
  return 0;
}

int eng__gguf_writer_set_u32(eng__gguf_writer *w, const char *key, uint32_t v) {
  return set_scalar(w, key, ENG__GGUF_U32, &v, 4);
}
int eng__gguf_writer_set_i32(eng__gguf_writer *w, const char *key, int32_t v) {
  return set_scalar(w, key, ENG__GGUF_I32, &v, 4);
}
int eng__gguf_writer_set_f32(eng__gguf_writer *w, const char *key, float v) {
  return set_scalar(w, key, ENG__GGUF_F32, &v, 4);
}
int eng__gguf_writer_set_bool(eng__gguf_writer *w, const char *key, int v) {
  uint8_t b = v != 0;
  return set_scalar(w, key, ENG__GGUF_BOOL, &b, 1);
}
int eng__gguf_writer_set_str(eng__gguf_writer *w, const char *key, const char *s) {
  wkv *kv = new_kv(w, key, ENG__GGUF_STRING);
  if (!kv) return ENG_ENOMEM;
  return put_str(&kv->val, s, strlen(s));
}

int eng__gguf_writer_set_arr_str(eng__gguf_writer *w, const char *key, const char *const *s, size_t n) {
  wkv *kv = new_kv(w, key, ENG__GGUF_ARRAY);
  if (!kv) return ENG_ENOMEM;
  uint32_t et = ENG__GGUF_STRING;
  uint64_t cnt = n;
  if (qc_buf_append(&kv->val, &et, 4) || qc_buf_append(&kv->val, &cnt, 8)) return ENG_ENOMEM;
  for (size_t i = 0; i < n; i++)
    if (put_str(&kv->val, s[i], strlen(s[i]))) return ENG_ENOMEM;
  return 0;
}

int eng__gguf_writer_set_arr_i32(eng__gguf_writer *w, const char *key, const int32_t *v, size_t n) {
  wkv *kv = new_kv(w, key, ENG__GGUF_ARRAY);
  if (!kv) return ENG_ENOMEM;
  uint32_t et = ENG__GGUF_I32;
  uint64_t cnt = n;
  if (qc_buf_append(&kv->val, &et, 4) || qc_buf_append(&kv->val, &cnt, 8) ||
      qc_buf_append(&kv->val, v, n * 4))
    return ENG_ENOMEM;
  return 0;
}

int eng__gguf_writer_set_raw(eng__gguf_writer *w, const char *key, uint32_t type, const void *raw, size_t len) {
  return set_scalar(w, key, type, raw, len);
}

int eng__gguf_writer_copy_kv(eng__gguf_writer *w, const eng__gguf *g, const char *key) {
  long i = eng__gguf_find_key(g, key);
  if (i < 0) return 0;
  size_t len;
  const uint8_t *raw = eng__gguf_kv_raw(g, (size_t)i, &len);
  int rc = set_scalar(w, key, eng__gguf_kv_type(g, (size_t)i), raw, len);
  return rc ? rc : 1;
}

int eng__gguf_writer_add_tensor(eng__gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                const uint64_t *ne) {
  if (w->f || n_dims < 1 || n_dims > 4 || strlen(name) > ENG__GGUF_MAX_NAME) return ENG_EARG;
  const eng__ggml_type_info *ti = eng__ggml_type(type);
  if (!ti) return ENG_EARG;
  uint64_t n = 1;
  for (uint32_t d = 0; d < n_dims; d++) {
    if (ne[d] == 0) return ENG_EARG;
    n *= ne[d];
  }
  if (ne[0] % ti->blck) return ENG_EARG;
  if (w->n_t == w->cap_t) {
    size_t cap = w->cap_t ? 2 * w->cap_t : 64;
    wtensor *t = realloc(w->t, cap * sizeof *t);
    if (!t) return ENG_ENOMEM;
    w->t = t;
    w->cap_t = cap;
  }
  wtensor *t = &w->t[w->n_t];
  memset(t, 0, sizeof *t);
  t->name = strdup(name);
  if (!t->name) return ENG_ENOMEM;
  t->type = type;
  t->n_dims = n_dims;
  for (uint32_t d = 0; d < 4; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
  t->nbytes = n / ti->blck * ti->size;
  w->n_t++;
  return 0;
}

static int wr(eng__gguf_writer *w, const void *p, size_t n) {
  if (n && fwrite(p, 1, n, w->f) != n) {
    w->failed = errno ? errno : EIO;
    return -1;
  }
  w->pos += n;
  return 0;
}

static int pad(eng__gguf_writer *w) {
  static const uint8_t zeros[64];
  uint64_t need = (w->alignment - w->pos % w->alignment) % w->alignment;
  while (need) {
    size_t k = need > sizeof zeros ? sizeof zeros : (size_t)need;
    if (wr(w, zeros, k)) return -1;
    need -= k;
  }
  return 0;
}

static int io_fail(eng__gguf_writer *w, eng_error *err) {
  return eng__err(err, ENG_EIO, "%s: write failed: %s", w->tmp ? w->tmp : "(gguf)", strerror(w->failed ? w->failed : EIO));
}

int eng__gguf_writer_begin(eng__gguf_writer *w, const char *path, eng_error *err) {
  if (w->f) return eng__err(err, ENG_EARG, "gguf writer: begin called twice");
  w->path = strdup(path);
  w->tmp = qc_asprintf("%s.tmp", path);
  w->kv_off = calloc(w->n_kv + 1, sizeof *w->kv_off);
  w->tinfo_off = calloc(w->n_t + 1, sizeof *w->tinfo_off);
  w->tdata_off = calloc(w->n_t + 1, sizeof *w->tdata_off);
  if (!w->path || !w->tmp || !w->kv_off || !w->tinfo_off || !w->tdata_off)
    return eng__err(err, ENG_ENOMEM, "out of memory");
  w->f = fopen(w->tmp, "wb");
  if (!w->f) return eng__err(err, ENG_EIO, "%s: cannot create: %s", w->tmp, strerror(errno));
  uint32_t magic_version[2];
  memcpy(&magic_version[0], "GGUF", 4);
  magic_version[1] = 3;
  uint64_t counts[2] = {w->n_t, w->n_kv};
  if (wr(w, magic_version, 8) || wr(w, counts, 16)) return io_fail(w, err);
  w->layout.kv_start = w->pos;
  for (size_t i = 0; i < w->n_kv; i++) {
    w->kv_off[i] = w->pos;
    uint64_t kl = strlen(w->kv[i].key);
    if (wr(w, &kl, 8) || wr(w, w->kv[i].key, kl) || wr(w, &w->kv[i].type, 4) ||
        wr(w, w->kv[i].val.data, w->kv[i].val.len))
      return io_fail(w, err);
  }
  w->layout.tinfo_start = w->pos;
  uint64_t off = 0;
  for (size_t i = 0; i < w->n_t; i++) {
    wtensor *t = &w->t[i];
    w->tinfo_off[i] = w->pos;
    w->tdata_off[i] = off;
    uint64_t nl = strlen(t->name);
    if (wr(w, &nl, 8) || wr(w, t->name, nl) || wr(w, &t->n_dims, 4) || wr(w, t->ne, 8 * t->n_dims) ||
        wr(w, &t->type, 4) || wr(w, &off, 8))
      return io_fail(w, err);
    off += t->nbytes;
    off += (w->alignment - off % w->alignment) % w->alignment;
  }
  if (pad(w)) return io_fail(w, err);
  w->layout.data_start = w->pos;
  w->layout.n_kv = w->n_kv;
  w->layout.n_tensors = w->n_t;
  w->layout.kv_off = w->kv_off;
  w->layout.tinfo_off = w->tinfo_off;
  w->layout.tdata_off = w->tdata_off;
  w->cur = 0;
  w->cur_done = 0;
  return 0;
}

const eng__gguf_layout *eng__gguf_writer_layout(const eng__gguf_writer *w) { return &w->layout; }

int eng__gguf_writer_write(eng__gguf_writer *w, const void *data, size_t n, eng_error *err) {
  const uint8_t *p = data;
  if (!w->f) return eng__err(err, ENG_EARG, "gguf writer: write before begin");
  while (n) {
    if (w->cur >= w->n_t) return eng__err(err, ENG_EARG, "gguf writer: more tensor data than declared");
    wtensor *t = &w->t[w->cur];
    uint64_t left = t->nbytes - w->cur_done;
    size_t k = n < left ? n : (size_t)left;
    if (wr(w, p, k)) return io_fail(w, err);
    p += k;
    n -= k;
    w->cur_done += k;
    if (w->cur_done == t->nbytes) {
      if (w->cur + 1 < w->n_t && pad(w)) return io_fail(w, err);
      w->cur++;
      w->cur_done = 0;
    }
  }
  return 0;
}

int eng__gguf_writer_finish(eng__gguf_writer *w, eng_error *err) {
  if (!w->f) return eng__err(err, ENG_EARG, "gguf writer: finish before begin");
  if (w->cur != w->n_t)
    return eng__err(err, ENG_EARG, "gguf writer: tensor '%s' is incomplete (%zu of %zu tensors written)",
                    w->t[w->cur].name, w->cur, w->n_t);
  if (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0) {
    w->failed = errno;
    return io_fail(w, err);
  }
  int rc = fclose(w->f);
  w->f = NULL;
  if (rc != 0) {
    unlink(w->tmp);
    return eng__err(err, ENG_EIO, "%s: close failed: %s", w->tmp, strerror(errno));
  }
  if (rename(w->tmp, w->path) != 0) {
    int e = errno;
    unlink(w->tmp);
    return eng__err(err, ENG_EIO, "cannot rename %s to %s: %s", w->tmp, w->path, strerror(e));
  }
  return 0;
}
