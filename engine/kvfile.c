/* kvfile.c — a session's KV cache saved to a file and restored into another session,
 * possibly in another process (eng_session_save, eng_session_restore).
 *
 * Why: prefilling a long conversation is the slowest thing a coding agent waits for, and a
 * daemon that is restarted (every `qcoder run` starts and stops one) would otherwise
 * prefill the same system prompt, tool list and repository map again each time. Reading
 * the cached keys and values back costs a file read instead of a forward pass.
 *
 * The file is a snapshot of the session's chunks exactly as they sit in memory (F32, the
 * chunk layout of model.h), so a restored session computes bit for bit what the original
 * would have. Layout (little-endian, as the machine that wrote it; version 1):
 *
 *   header, ENG__KVF_HEADER bytes:
 *     char magic[8] "QCKVFILE"   u32 version   u32 header_bytes
 *     char model[64]             hex SHA-256 fingerprint of the model (eng_model_fingerprint)
 *     u32 n_layer  u32 kv_dim  u32 chunk_positions  u32 reserved (0)
 *     u64 n_tokens  u64 chunk_bytes  u64 n_chunks
 *   tokens:   int32 × n_tokens (the history: position i holds token i)
 *   digests:  char[64] × n_chunks, hex SHA-256 of each chunk's bytes
 *   padding to a multiple of 64 bytes
 *   chunks:   chunk_bytes × n_chunks, n_chunks = ceil(n_tokens / chunk_positions)
 *
 * A file is untrusted input (a cache directory can hold anything): every field is checked
 * against the model, the limits and the exact file size before anything is allocated or
 * read, and each chunk is checked against its digest as it is read, so a damaged file is
 * refused with a message instead of silently corrupting the answers. Only the chunks
 * covering the prefix a restore wants are read — restoring a shared system prompt from a
 * long conversation reads a few megabytes, not the whole file. Files are written to
 * PATH.XXXXXX (unique), fsynced and renamed, so a crash never leaves a half file under
 * PATH.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "engine/internal.h"
#include "engine/limits.h"
#include "engine/model.h"

#define KVF_MAGIC "QCKVFILE"
#define KVF_VERSION 1u
#define KVF_HEADER 128u
#define KVF_DIGEST 64u

typedef struct kvf_header {
  char magic[8];
  uint32_t version, header_bytes;
  char model[64];
  uint32_t n_layer, kv_dim, chunk_positions, reserved;
  uint64_t n_tokens, chunk_bytes, n_chunks;
} kvf_header;
_Static_assert(sizeof(kvf_header) <= KVF_HEADER, "header fits");

static uint64_t data_offset(uint64_t n_tokens, uint64_t n_chunks) {
  uint64_t off = KVF_HEADER + n_tokens * sizeof(int32_t) + n_chunks * KVF_DIGEST;
  return (off + 63) / 64 * 64;
}

/* ---- the model's fingerprint ----------------------------------------------------------- */

/* SHA-256 over the metadata (keys and raw values), every tensor's name, type and shape,
 * and 64 bytes at the start, middle and end of its data: two files that differ in
 * architecture, tokenizer, quantisation or weights get different fingerprints, at the
 * cost of a few page reads per tensor rather than a pass over gigabytes. */
static int compute_fingerprint(const eng_model *m, char hex[65]) {
  qc_buf b;
  qc_buf_init(&b, (size_t)1 << 30);
  int rc = 0;
  const eng__gguf *g = m->g;
  for (size_t i = 0; i < eng__gguf_n_kv(g) && !rc; i++) {
    size_t len = 0;
    const char *key = eng__gguf_kv_key(g, i);
    const uint8_t *raw = eng__gguf_kv_raw(g, i, &len);
    uint32_t type = eng__gguf_kv_type(g, i);
    rc = qc_buf_append(&b, key, strlen(key) + 1) || qc_buf_append(&b, &type, sizeof type) || qc_buf_append(&b, raw, len);
  }
  for (size_t i = 0; i < eng__gguf_n_tensors(g) && !rc; i++) {
    const eng__gguf_tensor *t = eng__gguf_tensor_at(g, i);
    rc = qc_buf_append(&b, t->name, strlen(t->name) + 1) || qc_buf_append(&b, &t->type, sizeof t->type) ||
         qc_buf_append(&b, t->ne, sizeof t->ne);
    const uint64_t sample = t->nbytes < 64 ? t->nbytes : 64;
    const uint64_t at[3] = {0, t->nbytes / 2 - (t->nbytes / 2 < sample ? t->nbytes / 2 : sample / 2),
                            t->nbytes - sample};
    for (int k = 0; k < 3 && !rc; k++) rc = qc_buf_append(&b, (const uint8_t *)t->data + at[k], (size_t)sample);
  }
  if (!rc) qc_sha256_hex(b.data, b.len, hex);
  qc_buf_release(&b);
  return rc ? ENG_ENOMEM : ENG_OK;
}

const char *eng_model_fingerprint(eng_model *m) {
  pthread_mutex_lock(&m->mu);
  if (!m->fingerprint[0] && compute_fingerprint(m, m->fingerprint) != ENG_OK) m->fingerprint[0] = 0;
  pthread_mutex_unlock(&m->mu);
  return m->fingerprint[0] ? m->fingerprint : NULL;
}

/* ---- writing --------------------------------------------------------------------------- */

static int write_all(int fd, const void *p, size_t n) {
  const uint8_t *c = p;
  while (n) {
    ssize_t w = write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Zero the unused positions of the last chunk (never initialised, or left from a longer
 * history), so a file holds nothing but this history's keys and values. */
static void zero_tail(eng_session *s) {
  const size_t p0 = s->n_past % ENG__KV_CHUNK;
  if (p0 == 0) return;
  float *c = s->chunk[s->n_past / ENG__KV_CHUNK];
  const size_t rows = (size_t)s->m->hp.n_layer * s->kv_dim; /* K: one row of positions per (layer, value) */
  for (size_t r = 0; r < rows; r++) memset(c + r * ENG__KV_CHUNK + p0, 0, (ENG__KV_CHUNK - p0) * sizeof(float));
  for (size_t l = 0; l < s->m->hp.n_layer; l++) /* V: [layer][position][value] after all of K */
    memset(c + ((s->m->hp.n_layer + l) * ENG__KV_CHUNK + p0) * s->kv_dim, 0, (ENG__KV_CHUNK - p0) * s->kv_dim * sizeof(float));
}

/* Make the rename durable: fsync the directory that holds `path` (best effort). */
static void fsync_parent(const char *path) {
  char *dir = qc_strndup(path, strlen(path));
  if (!dir) return;
  char *slash = strrchr(dir, '/');
  if (slash == dir) slash[1] = 0;
  else if (slash) *slash = 0;
  else strcpy(dir, ".");
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)fsync(dfd);
    close(dfd);
  }
  free(dir);
}

int eng_session_save(eng_session *s, const char *path, eng_error *err) {
  if (!s || !path || !*path) return eng__err(err, ENG_EARG, "saving a session needs a session and a path");
  eng_model *m = s->m;
  const char *fp = eng_model_fingerprint(m);
  if (!fp) return eng__err(err, ENG_ENOMEM, "out of memory computing the model's fingerprint");
  char *tmp = qc_asprintf("%s.XXXXXX", path); /* unique: two processes may save the same history */
  char(*digests)[KVF_DIGEST + 1] = NULL;
  int fd = -1, rc = ENG_OK, locked = 0, created = 0, marked = 0;
  if (!tmp) return eng__err(err, ENG_ENOMEM, "out of memory");
  /* Under the model lock only long enough to mark the session busy (its chunks are then
   * never evicted): other sessions keep generating while the file is hashed and written. */
  pthread_mutex_lock(&m->mu);
  locked = 1;
  if (s->busy) {
    rc = eng__err(err, ENG_EARG, "the session is generating: save an idle session");
    goto out;
  }
  const uint64_t n_tokens = s->n_past;
  if (n_tokens == 0) {
    rc = eng__err(err, ENG_EARG, "the session's cache is empty (nothing evaluated, or evicted): nothing to save");
    goto out;
  }
  s->busy = marked = 1;
  zero_tail(s);
  pthread_mutex_unlock(&m->mu);
  locked = 0;
  const uint64_t n_chunks = (n_tokens + ENG__KV_CHUNK - 1) / ENG__KV_CHUNK;
  digests = calloc((size_t)n_chunks, sizeof *digests);
  if (!digests) {
    rc = eng__err(err, ENG_ENOMEM, "out of memory");
    goto out;
  }
  for (uint64_t c = 0; c < n_chunks; c++) qc_sha256_hex(s->chunk[c], s->chunk_bytes, digests[c]);
  kvf_header h;
  memset(&h, 0, sizeof h);
  memcpy(h.magic, KVF_MAGIC, 8);
  h.version = KVF_VERSION;
  h.header_bytes = KVF_HEADER;
  memcpy(h.model, fp, 64);
  h.n_layer = m->hp.n_layer;
  h.kv_dim = (uint32_t)s->kv_dim;
  h.chunk_positions = ENG__KV_CHUNK;
  h.n_tokens = n_tokens;
  h.chunk_bytes = s->chunk_bytes;
  h.n_chunks = n_chunks;
  uint8_t head[KVF_HEADER] = {0};
  memcpy(head, &h, sizeof h);
  fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
  if (fd < 0) {
    rc = eng__err(err, ENG_EIO, "cannot create %s: %s", tmp, strerror(errno));
    goto out;
  }
  created = 1;
  static const uint8_t zeros[64] = {0};
  const uint64_t pad = data_offset(n_tokens, n_chunks) - (KVF_HEADER + n_tokens * 4 + n_chunks * KVF_DIGEST);
  int wr = write_all(fd, head, sizeof head) || write_all(fd, s->hist, (size_t)n_tokens * sizeof(int32_t));
  for (uint64_t c = 0; c < n_chunks && !wr; c++) wr = write_all(fd, digests[c], KVF_DIGEST);
  if (!wr) wr = write_all(fd, zeros, (size_t)pad);
  for (uint64_t c = 0; c < n_chunks && !wr; c++) wr = write_all(fd, s->chunk[c], s->chunk_bytes);
  if (wr || fsync(fd)) {
    rc = eng__err(err, ENG_EIO, "cannot write %s: %s", tmp, strerror(errno));
    goto out;
  }
  if (close(fd)) {
    fd = -1;
    rc = eng__err(err, ENG_EIO, "cannot write %s: %s", tmp, strerror(errno));
    goto out;
  }
  fd = -1;
  if (rename(tmp, path)) {
    rc = eng__err(err, ENG_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    goto out;
  }
  fsync_parent(path);
out:
  if (marked) {
    if (!locked) pthread_mutex_lock(&m->mu);
    locked = 1;
    s->busy = 0;
  }
  if (locked) pthread_mutex_unlock(&m->mu);
  if (fd >= 0) close(fd);
  if (rc != ENG_OK && created) unlink(tmp);
  free(tmp);
  free(digests);
  return rc;
}

/* ---- reading --------------------------------------------------------------------------- */

static int read_at(int fd, void *p, size_t n, uint64_t off) {
  uint8_t *c = p;
  while (n) {
    ssize_t r = pread(fd, c, n, (off_t)off);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    c += r;
    n -= (size_t)r;
    off += (uint64_t)r;
  }
  return 0;
}

/* Open and validate the header against the model and the file size. */
static int open_checked(eng_model *m, const char *path, int *fd_out, kvf_header *h, eng_error *err) {
  *fd_out = -1;
  const char *fp = eng_model_fingerprint(m);
  if (!fp) return eng__err(err, ENG_ENOMEM, "out of memory computing the model's fingerprint");
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return eng__err(err, ENG_EIO, "cannot open %s: %s", path, strerror(errno));
  struct stat st;
  uint8_t head[KVF_HEADER];
  int rc = ENG_OK;
  if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
    rc = eng__err(err, ENG_EFORMAT, "%s is not a regular file", path);
    goto fail;
  }
  if ((uint64_t)st.st_size < KVF_HEADER || read_at(fd, head, sizeof head, 0)) {
    rc = eng__err(err, ENG_EFORMAT, "%s is too short to be a saved KV cache", path);
    goto fail;
  }
  memcpy(h, head, sizeof *h);
  if (memcmp(h->magic, KVF_MAGIC, 8)) {
    rc = eng__err(err, ENG_EFORMAT, "%s is not a saved KV cache (bad magic)", path);
    goto fail;
  }
  if (h->version != KVF_VERSION || h->header_bytes != KVF_HEADER) {
    rc = eng__err(err, ENG_EUNSUPPORTED, "%s: KV-cache file version %u is not supported (this build reads %u)", path,
                  h->version, KVF_VERSION);
    goto fail;
  }
  if (memcmp(h->model, fp, 64)) {
    rc = eng__err(err, ENG_EUNSUPPORTED, "%s was saved from another model (fingerprint %.12s…, this model %.12s…)", path,
                  h->model, fp);
    goto fail;
  }
  const uint64_t chunk_bytes = 2ull * m->hp.n_layer * ENG__KV_CHUNK * ((uint64_t)m->hp.n_head_kv * m->hp.head_dim) * 4;
  if (h->n_layer != m->hp.n_layer || h->kv_dim != (uint64_t)m->hp.n_head_kv * m->hp.head_dim ||
      h->chunk_positions != ENG__KV_CHUNK || h->chunk_bytes != chunk_bytes || h->reserved != 0) {
    rc = eng__err(err, ENG_EFORMAT, "%s: the cache shape (%u layers, %u values, %u positions a chunk) does not match the model",
                  path, h->n_layer, h->kv_dim, h->chunk_positions);
    goto fail;
  }
  if (h->n_tokens == 0 || h->n_tokens > ENG__MAX_CTX ||
      h->n_chunks != (h->n_tokens + ENG__KV_CHUNK - 1) / ENG__KV_CHUNK) {
    rc = eng__err(err, ENG_EFORMAT, "%s: %" PRIu64 " tokens in %" PRIu64 " chunks is not a valid cache (limit %u tokens)",
                  path, h->n_tokens, h->n_chunks, ENG__MAX_CTX);
    goto fail;
  }
  if (h->chunk_bytes > (UINT64_MAX / 2) / h->n_chunks) {
    rc = eng__err(err, ENG_EFORMAT, "%s: the cache size overflows", path);
    goto fail;
  }
  const uint64_t want = data_offset(h->n_tokens, h->n_chunks) + h->n_chunks * h->chunk_bytes;
  if ((uint64_t)st.st_size != want) {
    rc = eng__err(err, ENG_EFORMAT, "%s: the file has %" PRIu64 " bytes; its header says %" PRIu64 " (truncated or damaged)",
                  path, (uint64_t)st.st_size, want);
    goto fail;
  }
  *fd_out = fd;
  return ENG_OK;
fail:
  close(fd);
  return rc;
}

/* The history of an open, checked file (malloc'd into *tokens), every id in the vocabulary. */
static int read_tokens(const eng_model *m, int fd, const kvf_header *h, const char *path, int32_t **tokens,
                       eng_error *err) {
  int32_t *ids = malloc((size_t)h->n_tokens * sizeof *ids);
  if (!ids) return eng__err(err, ENG_ENOMEM, "out of memory");
  int rc = ENG_OK;
  if (read_at(fd, ids, (size_t)h->n_tokens * sizeof *ids, KVF_HEADER)) {
    rc = eng__err(err, ENG_EIO, "cannot read %s: %s", path, strerror(errno));
    goto fail;
  }
  for (uint64_t i = 0; i < h->n_tokens; i++)
    if (ids[i] < 0 || (uint32_t)ids[i] >= m->hp.n_vocab) {
      rc = eng__err(err, ENG_EFORMAT, "%s: token %" PRIu64 " (id %d) is out of the vocabulary", path, i, ids[i]);
      goto fail;
    }
  *tokens = ids;
  return ENG_OK;
fail:
  free(ids);
  return rc;
}

int eng_kvfile_tokens(eng_model *m, const char *path, int32_t **tokens, size_t *n, eng_error *err) {
  *tokens = NULL;
  *n = 0;
  if (!m || !path) return eng__err(err, ENG_EARG, "no model or path");
  kvf_header h;
  int fd = -1;
  int rc = open_checked(m, path, &fd, &h, err);
  if (rc) return rc;
  rc = read_tokens(m, fd, &h, path, tokens, err);
  if (rc == ENG_OK) *n = (size_t)h.n_tokens;
  close(fd);
  return rc;
}

int eng_session_restore(eng_session *s, const char *path, const int32_t *prompt, size_t n_prompt, size_t *n_restored,
                        eng_error *err) {
  if (n_restored) *n_restored = 0;
  if (!s || !path) return eng__err(err, ENG_EARG, "restoring needs a session and a path");
  eng_model *m = s->m;
  int32_t *ids = NULL;
  size_t n_ids = 0;
  char(*digests)[KVF_DIGEST] = NULL;
  int fd = -1, locked = 0, marked = 0;
  kvf_header h;
  int rc = open_checked(m, path, &fd, &h, err);
  if (rc) return rc;
  rc = read_tokens(m, fd, &h, path, &ids, err);
  if (rc) goto out;
  n_ids = (size_t)h.n_tokens;
  size_t keep = n_ids;
  if (prompt) {
    keep = 0;
    while (keep < n_ids && keep < n_prompt && ids[keep] == prompt[keep]) keep++;
  }
  if (keep > s->n_ctx) keep = s->n_ctx;
  if (keep == 0) goto out; /* nothing in common: the session is left as it was */
  const size_t n_chunks = (keep + ENG__KV_CHUNK - 1) / ENG__KV_CHUNK;
  digests = malloc(n_chunks * sizeof *digests);
  if (!digests || read_at(fd, digests, n_chunks * KVF_DIGEST, KVF_HEADER + h.n_tokens * 4)) {
    rc = digests ? eng__err(err, ENG_EIO, "cannot read %s: %s", path, strerror(errno)) : eng__err(err, ENG_ENOMEM, "out of memory");
    goto out;
  }
  pthread_mutex_lock(&m->mu);
  locked = 1;
  if (s->busy) {
    rc = eng__err(err, ENG_EARG, "the session is generating: restore into an idle session");
    goto out;
  }
  s->n_past = 0;
  s->have_logits = 0;
  rc = eng__kv_reserve(s, keep, err);
  if (rc) goto out;
  /* read and check outside the model lock (the session, marked busy, keeps its chunks) */
  s->busy = marked = 1;
  pthread_mutex_unlock(&m->mu);
  locked = 0;
  const uint64_t base = data_offset(h.n_tokens, h.n_chunks);
  for (size_t c = 0; c < n_chunks; c++) {
    char hex[65];
    if (read_at(fd, s->chunk[c], s->chunk_bytes, base + (uint64_t)c * h.chunk_bytes)) {
      rc = eng__err(err, ENG_EIO, "cannot read %s: %s", path, strerror(errno));
      goto out;
    }
    qc_sha256_hex(s->chunk[c], s->chunk_bytes, hex);
    if (memcmp(hex, digests[c], KVF_DIGEST)) {
      rc = eng__err(err, ENG_EFORMAT, "%s: chunk %zu does not match its checksum (the file is damaged)", path, c);
      goto out;
    }
  }
  memcpy(s->hist, ids, keep * sizeof *ids);
  pthread_mutex_lock(&m->mu);
  locked = 1;
  s->n_past = keep;
  if (n_restored) *n_restored = keep;
out:
  if (marked) {
    if (!locked) pthread_mutex_lock(&m->mu);
    locked = 1;
    s->busy = 0;
  }
  if (locked) pthread_mutex_unlock(&m->mu);
  if (fd >= 0) close(fd);
  free(ids);
  free(digests);
  return rc;
}
