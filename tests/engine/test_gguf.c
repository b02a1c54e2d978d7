/* test_gguf.c — the GGUF reader and writer: real files, round trips, split models, and
 * hostile files (every truncation, bad magic/version, huge counts, bad strings, offsets,
 * dims and types) that must each fail with a message naming the problem, never crash. */
#include "tests/test.h"

#include "engine/gguf.h"

static char *tmp;

static const char *tmpdir(void) {
  if (!tmp) tmp = qct_tempdir("gguf");
  return tmp;
}

/* ---- a small valid file built with the writer ------------------------------------------ */

typedef struct sample {
  char path[512];
  unsigned char *bytes;
  size_t len;
  uint64_t kv_off[16], tinfo_off[8], tdata_off[8], data_start, tinfo_start;
  size_t n_kv, n_t;
} sample;

static void fill(void *p, size_t n, unsigned seed) {
  unsigned char *b = p;
  for (size_t i = 0; i < n; i++) b[i] = (unsigned char)((i * 131u + seed * 7u) >> 1);
}

static void write_sample(sample *s, const char *name, uint32_t alignment) {
  snprintf(s->path, sizeof s->path, "%s/%s", tmpdir(), name);
  eng__gguf_writer *w = eng__gguf_writer_new(alignment);
  ASSERT(w);
  ASSERT_EQ_INT(eng__gguf_writer_set_str(w, "general.architecture", "qwen3moe"), 0);
  ASSERT_EQ_INT(eng__gguf_writer_set_u32(w, "a.u32", 151645), 0);
  ASSERT_EQ_INT(eng__gguf_writer_set_f32(w, "a.f32", 1e7f), 0);
  ASSERT_EQ_INT(eng__gguf_writer_set_bool(w, "a.bool", 1), 0);
  ASSERT_EQ_INT(eng__gguf_writer_set_i32(w, "a.neg", -5), 0);
  const char *strs[] = {"hello", "", "\xc4\xa0world"};
  ASSERT_EQ_INT(eng__gguf_writer_set_arr_str(w, "a.strs", strs, 3), 0);
  int32_t ints[] = {1, -2, 3, 4};
  ASSERT_EQ_INT(eng__gguf_writer_set_arr_i32(w, "a.ints", ints, 4), 0);
  if (alignment) ASSERT_EQ_INT(eng__gguf_writer_set_u32(w, "general.alignment", alignment), 0);
  uint64_t ne0[2] = {8, 4}, ne1[2] = {32, 2}, ne2[1] = {4};
  ASSERT_EQ_INT(eng__gguf_writer_add_tensor(w, "t.f32", 0, 2, ne0), 0);
  ASSERT_EQ_INT(eng__gguf_writer_add_tensor(w, "t.q8", 8, 2, ne1), 0);
  ASSERT_EQ_INT(eng__gguf_writer_add_tensor(w, "t.f16", 1, 1, ne2), 0);
  eng_error err = {0};
  ASSERT_MSG(eng__gguf_writer_begin(w, s->path, &err) == 0, "%s", err.msg);
  const eng__gguf_layout *L = eng__gguf_writer_layout(w);
  s->n_kv = L->n_kv;
  s->n_t = L->n_tensors;
  for (size_t i = 0; i < s->n_kv; i++) s->kv_off[i] = L->kv_off[i];
  for (size_t i = 0; i < s->n_t; i++) s->tinfo_off[i] = L->tinfo_off[i], s->tdata_off[i] = L->tdata_off[i];
  s->data_start = L->data_start;
  s->tinfo_start = L->tinfo_start;
  unsigned char buf[128];
  fill(buf, 128, 1);
  ASSERT_EQ_INT(eng__gguf_writer_write(w, buf, 100, &err), 0);   /* t.f32: 128 bytes in two writes */
  ASSERT_EQ_INT(eng__gguf_writer_write(w, buf + 100, 28, &err), 0);
  fill(buf, 68, 2);
  ASSERT_EQ_INT(eng__gguf_writer_write(w, buf, 68, &err), 0);    /* t.q8: 2 blocks of 34 */
  fill(buf, 8, 3);
  ASSERT_EQ_INT(eng__gguf_writer_write(w, buf, 8, &err), 0);     /* t.f16 */
  ASSERT_MSG(eng__gguf_writer_finish(w, &err) == 0, "%s", err.msg);
  eng__gguf_writer_free(w);
  s->bytes = (unsigned char *)qct_read_file(s->path, &s->len);
  ASSERT(s->bytes);
}

/* Write `bytes` to a file and try to open it; returns the error code, message in err. */
static int try_bytes(const void *bytes, size_t len, eng_error *err) {
  char path[600];
  snprintf(path, sizeof path, "%s/hostile.gguf", tmpdir());
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  fwrite(bytes, 1, len, f);
  fclose(f);
  memset(err, 0, sizeof *err);
  eng__gguf *g = NULL;
  int rc = eng__gguf_open(path, &g, err);
  if (rc == 0) eng__gguf_close(g);
  return rc;
}

static void put_u64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static void put_u32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }

/* Patch a copy of the sample, expect failure with a message containing `want`. */
static void expect_fail(const sample *s, size_t off, const void *val, size_t vlen, const char *want) {
  unsigned char *b = malloc(s->len);
  memcpy(b, s->bytes, s->len);
  memcpy(b + off, val, vlen);
  eng_error err;
  int rc = try_bytes(b, s->len, &err);
  free(b);
  ASSERT_MSG(rc == ENG_EFORMAT, "patch at %zu: expected a format error containing '%s', got rc %d (%s)", off, want, rc,
             err.msg);
  ASSERT_CONTAINS(err.msg, want);
}

/* ---- tests ------------------------------------------------------------------------------ */

TEST(round_trip_values_and_tensors) {
  sample s;
  write_sample(&s, "rt.gguf", 0);
  eng__gguf *g;
  eng_error err = {0};
  ASSERT_MSG(eng__gguf_open(s.path, &g, &err) == 0, "%s", err.msg);
  ASSERT_EQ_INT(eng__gguf_version(g), 3);
  ASSERT_EQ_INT(eng__gguf_alignment(g), 32);
  ASSERT_EQ_INT(eng__gguf_n_kv(g), 7);
  char arch[32];
  ASSERT_EQ_INT(eng__gguf_get_str_buf(g, "general.architecture", arch, sizeof arch, &err), 1);
  ASSERT_STR_EQ(arch, "qwen3moe");
  uint32_t u = 0;
  ASSERT_EQ_INT(eng__gguf_get_u32(g, "a.u32", &u, &err), 1);
  ASSERT_EQ_INT(u, 151645);
  ASSERT_EQ_INT(eng__gguf_get_u32(g, "a.missing", &u, &err), 0);
  float f = 0;
  ASSERT_EQ_INT(eng__gguf_get_f32(g, "a.f32", &f, &err), 1);
  ASSERT_NEAR(f, 1e7, 0);
  int b = 0;
  ASSERT_EQ_INT(eng__gguf_get_bool(g, "a.bool", &b, &err), 1);
  ASSERT_EQ_INT(b, 1);
  int32_t i32 = 0;
  ASSERT_EQ_INT(eng__gguf_get_i32(g, "a.neg", &i32, &err), 1);
  ASSERT_EQ_INT(i32, -5);
  /* a negative value is out of range for u32; a string is the wrong type */
  ASSERT_EQ_INT(eng__gguf_get_u32(g, "a.neg", &u, &err), ENG_EFORMAT);
  ASSERT_CONTAINS(err.msg, "a.neg");
  ASSERT_EQ_INT(eng__gguf_get_u32(g, "general.architecture", &u, &err), ENG_EFORMAT);
  ASSERT_CONTAINS(err.msg, "has type string, expected u32");
  eng__gguf_arr a;
  ASSERT_EQ_INT(eng__gguf_get_arr(g, "a.strs", &a, &err), 1);
  ASSERT_EQ_INT(a.type, ENG__GGUF_STRING);
  ASSERT_EQ_INT(a.count, 3);
  size_t len;
  const char *str = eng__gguf_arr_str(&a, 0, &len);
  ASSERT(len == 5 && memcmp(str, "hello", 5) == 0);
  eng__gguf_arr_str(&a, 1, &len);
  ASSERT_EQ_INT(len, 0);
  str = eng__gguf_arr_str(&a, 2, &len);
  ASSERT(len == 7 && memcmp(str, "\xc4\xa0world", 7) == 0);
  ASSERT_EQ_INT(eng__gguf_get_arr(g, "a.ints", &a, &err), 1);
  ASSERT_EQ_INT(a.count, 4);
  ASSERT_EQ_INT(eng__gguf_arr_i32(&a, 1), -2);
  ASSERT_EQ_INT(eng__gguf_arr_i32(&a, 3), 4);
  char txt[64];
  eng__gguf_kv_format(g, (size_t)eng__gguf_find_key(g, "a.strs"), txt, sizeof txt);
  ASSERT_STR_EQ(txt, "[string; 3]");

  ASSERT_EQ_INT(eng__gguf_n_tensors(g), 3);
  const eng__gguf_tensor *t = eng__gguf_find_tensor(g, "t.q8");
  ASSERT(t);
  ASSERT_EQ_INT(t->type, 8);
  ASSERT_EQ_INT(t->n_dims, 2);
  ASSERT_EQ_INT(t->ne[0], 32);
  ASSERT_EQ_INT(t->ne[1], 2);
  ASSERT_EQ_INT(t->nbytes, 68);
  ASSERT_EQ_INT(((uintptr_t)t->data - (uintptr_t)eng__gguf_find_tensor(g, "t.f32")->data) % 32, 0);
  unsigned char want[68];
  fill(want, 68, 2);
  ASSERT(memcmp(t->data, want, 68) == 0);
  ASSERT(eng__gguf_find_tensor(g, "nope") == NULL);
  eng__gguf_close(g);
  free(s.bytes);
}

TEST(custom_alignment) {
  sample s;
  write_sample(&s, "al.gguf", 64);
  eng__gguf *g;
  eng_error err = {0};
  ASSERT_MSG(eng__gguf_open(s.path, &g, &err) == 0, "%s", err.msg);
  ASSERT_EQ_INT(eng__gguf_alignment(g), 64);
  ASSERT_EQ_INT(s.data_start % 64, 0);
  ASSERT_EQ_INT(eng__gguf_find_tensor(g, "t.q8")->offset, 128);
  eng__gguf_close(g);
  free(s.bytes);
}

TEST(oracle_models_load) {
  static const char *const names[] = {"tiny-qwen3moe-f32", "tiny-qwen3moe-q8_0", "small-qwen3moe-q4_k_m",
                                      "tiny-qwen3-f32", "vocab-qwen3"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    char rel[128];
    snprintf(rel, sizeof rel, "oracle/models/%s.gguf", names[i]);
    char *p = qct_data_path(rel);
    eng__gguf *g;
    eng_error err = {0};
    ASSERT_MSG(eng__gguf_open(p, &g, &err) == 0, "%s: %s", names[i], err.msg);
    eng__gguf_arr toks;
    ASSERT_EQ_INT(eng__gguf_get_arr(g, "tokenizer.ggml.tokens", &toks, &err), 1);
    ASSERT(toks.count == 4096 || toks.count == 151936);
    uint32_t eos;
    ASSERT_EQ_INT(eng__gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &eos, &err), 1);
    ASSERT(eos == 4072 || eos == 151645);
    if (i == 0) {
      ASSERT_EQ_INT(eng__gguf_n_tensors(g), 51);
      const eng__gguf_tensor *t = eng__gguf_find_tensor(g, "blk.0.ffn_down_exps.weight");
      ASSERT(t && t->ne[0] == 32 && t->ne[1] == 64 && t->ne[2] == 8);
    }
    if (i == 4) ASSERT_EQ_INT(eng__gguf_n_tensors(g), 0);
    eng__gguf_close(g);
    free(p);
  }
}

TEST(every_truncation_fails_cleanly) {
  sample s;
  write_sample(&s, "tr.gguf", 0);
  eng_error err;
  for (size_t n = 0; n < s.len; n++) {
    int rc = try_bytes(s.bytes, n, &err);
    ASSERT_MSG(rc == ENG_EFORMAT, "truncated to %zu of %zu bytes: rc %d (%s)", n, s.len, rc, err.msg);
    ASSERT_MSG(err.msg[0], "truncated to %zu: empty message", n);
  }
  /* the section boundaries name what is cut */
  ASSERT_EQ_INT(try_bytes(s.bytes, 10, &err), ENG_EFORMAT);
  ASSERT_CONTAINS(err.msg, "shorter than the 24-byte header");
  ASSERT_EQ_INT(try_bytes(s.bytes, s.kv_off[6] + 3, &err), ENG_EFORMAT);
  ASSERT_CONTAINS(err.msg, "metadata pair #6");
  ASSERT_EQ_INT(try_bytes(s.bytes, s.tinfo_start + 10, &err), ENG_EFORMAT);
  ASSERT_CONTAINS(err.msg, "tensor info #0");
  ASSERT_EQ_INT(try_bytes(s.bytes, s.data_start + 10, &err), ENG_EFORMAT);
  ASSERT_CONTAINS(err.msg, "extends past the end of the file");
  free(s.bytes);
}

TEST(magic_and_versions) {
  sample s;
  write_sample(&s, "ver.gguf", 0);
  expect_fail(&s, 0, "GGUX", 4, "not a GGUF file");
  unsigned char v[4];
  put_u32(v, 1);
  expect_fail(&s, 4, v, 4, "version 1 is not supported");
  put_u32(v, 4);
  expect_fail(&s, 4, v, 4, "version 4 is not supported");
  put_u32(v, 0x03000000);
  expect_fail(&s, 4, v, 4, "big-endian");
  /* version 2 has the same layout and loads */
  unsigned char *b = malloc(s.len);
  memcpy(b, s.bytes, s.len);
  put_u32(b + 4, 2);
  eng_error err;
  ASSERT_MSG(try_bytes(b, s.len, &err) == 0, "%s", err.msg);
  free(b);
  free(s.bytes);
}

TEST(huge_counts_fail_before_allocating) {
  sample s;
  write_sample(&s, "cnt.gguf", 0);
  unsigned char v[8];
  put_u64(v, 1ull << 60);
  expect_fail(&s, 8, v, 8, "tensors cannot fit");
  expect_fail(&s, 16, v, 8, "metadata pairs cannot fit");
  put_u64(v, UINT64_MAX);
  expect_fail(&s, 8, v, 8, "tensors cannot fit");
  /* a string array of 2^60 elements: the count sits after key, type, elem type */
  uint64_t arr_kv = s.kv_off[5]; /* "a.strs" */
  uint64_t count_at = arr_kv + 8 + strlen("a.strs") + 4 + 4;
  put_u64(v, 1ull << 60);
  expect_fail(&s, count_at, v, 8, "runs past the end of the file");
  uint64_t iarr_kv = s.kv_off[6]; /* "a.ints" */
  expect_fail(&s, iarr_kv + 8 + strlen("a.ints") + 8, v, 8, "runs past the end of the file");
  free(s.bytes);
}

TEST(bad_strings_and_values) {
  sample s;
  write_sample(&s, "str.gguf", 0);
  unsigned char v[8];
  put_u64(v, 1ull << 40);
  expect_fail(&s, s.kv_off[1], v, 8, "runs past the end of the file");     /* key length */
  put_u64(v, 100000);
  expect_fail(&s, s.kv_off[0] + 8 + strlen("general.architecture") + 4, v, 8, "runs past the end");  /* value */
  put_u64(v, 1ull << 40);
  expect_fail(&s, s.tinfo_off[0], v, 8, "runs past the end");    /* tensor name */
  put_u64(v, 200);
  expect_fail(&s, s.tinfo_off[0], v, 8, "exceeds the limit");  /* name longer than 63 */
  put_u32(v, 13);
  expect_fail(&s, s.kv_off[1] + 8 + strlen("a.u32"), v, 4, "unknown value type 13");
  /* nested array: patch the element type of a.ints to ARRAY */
  put_u32(v, 9);
  expect_fail(&s, s.kv_off[6] + 8 + strlen("a.ints") + 4, v, 4, "nested arrays");
  /* bool 2 */
  v[0] = 2;
  expect_fail(&s, s.kv_off[3] + 8 + strlen("a.bool") + 4, v, 1, "not 0 or 1");
  /* duplicate key: rename "a.neg" to "a.u32"'s spelling is longer; patch "a.bool" → "a.u32x" impossible;
   * so make "a.neg" (5 bytes) read "a.u32" */
  expect_fail(&s, s.kv_off[4] + 8, "a.u32", 5, "appears twice");
  free(s.bytes);
}

TEST(bad_tensor_infos) {
  sample s;
  write_sample(&s, "ti.gguf", 0);
  uint64_t t0 = s.tinfo_off[0] + 8 + strlen("t.f32");   /* n_dims of t.f32 */
  uint64_t t1 = s.tinfo_off[1] + 8 + strlen("t.q8");
  unsigned char v[8];
  put_u32(v, 5);
  expect_fail(&s, t0, v, 4, "5 dimensions");
  put_u32(v, 0);
  expect_fail(&s, t0, v, 4, "0 dimensions");
  put_u64(v, 1ull << 40);  /* ne0 = 2^40, ne1 = 2^40 → product overflows 2^63 */
  {
    unsigned char *b = malloc(s.len);
    memcpy(b, s.bytes, s.len);
    memcpy(b + t0 + 4, v, 8);
    memcpy(b + t0 + 12, v, 8);
    eng_error err;
    ASSERT_EQ_INT(try_bytes(b, s.len, &err), ENG_EFORMAT);
    ASSERT_CONTAINS(err.msg, "product of the dimensions overflows");
    ASSERT_CONTAINS(err.msg, "t.f32");
    free(b);
  }
  put_u64(v, 0);
  expect_fail(&s, t0 + 4, v, 8, "dimension 0 is 0");
  put_u64(v, 1ull << 20);   /* fits the product but not the file */
  expect_fail(&s, t0 + 4, v, 8, "extends past the end of the file");
  put_u64(v, 33);           /* Q8_0 needs a multiple of 32 */
  expect_fail(&s, t1 + 4, v, 8, "not a multiple of the Q8_0 block size");
  uint64_t type1 = t1 + 4 + 16;
  put_u32(v, 99);
  expect_fail(&s, type1, v, 4, "unknown ggml type 99");
  put_u32(v, 4);   /* removed Q4_2 */
  expect_fail(&s, type1, v, 4, "unknown ggml type 4");
  uint64_t off1 = type1 + 4;
  put_u64(v, s.tdata_off[1] + 1);
  expect_fail(&s, off1, v, 8, "not a multiple of the alignment");
  put_u64(v, 0);
  expect_fail(&s, off1, v, 8, "overlap");
  put_u64(v, 1ull << 40);
  expect_fail(&s, off1, v, 8, "extends past the end of the file");
  put_u64(v, UINT64_MAX - 31);
  expect_fail(&s, off1, v, 8, "extends past the end of the file");
  /* duplicate names: "t.q8" → "t.f3" is not a dup; make t.f16's name "t.f3"+"2" */
  expect_fail(&s, s.tinfo_off[2] + 8, "t.f32", 5, "appears twice");
  free(s.bytes);
}

TEST(bad_alignment) {
  eng__gguf_writer *w = eng__gguf_writer_new(0);
  ASSERT_EQ_INT(eng__gguf_writer_set_u32(w, "general.alignment", 48), 0);
  char p[600];
  snprintf(p, sizeof p, "%s/align48.gguf", tmpdir());
  eng_error err;
  ASSERT_EQ_INT(eng__gguf_writer_begin(w, p, &err), 0);
  ASSERT_EQ_INT(eng__gguf_writer_finish(w, &err), 0);
  eng__gguf_writer_free(w);
  eng__gguf *g;
  ASSERT_EQ_INT(eng__gguf_open(p, &g, &err), ENG_EFORMAT);
  ASSERT_CONTAINS(err.msg, "general.alignment 48 is not a power of two");
  w = eng__gguf_writer_new(0);
  ASSERT_EQ_INT(eng__gguf_writer_set_str(w, "general.alignment", "32"), 0);
  ASSERT_EQ_INT(eng__gguf_writer_begin(w, p, &err), 0);
  ASSERT_EQ_INT(eng__gguf_writer_finish(w, &err), 0);
  eng__gguf_writer_free(w);
  ASSERT_EQ_INT(eng__gguf_open(p, &g, &err), ENG_EFORMAT);
  ASSERT_CONTAINS(err.msg, "expected u32");
}

TEST(missing_file_and_directory) {
  eng__gguf *g;
  eng_error err;
  ASSERT_EQ_INT(eng__gguf_open("/nonexistent/x.gguf", &g, &err), ENG_EIO);
  ASSERT_CONTAINS(err.msg, "cannot open");
  ASSERT_EQ_INT(eng__gguf_open(tmpdir(), &g, &err), ENG_EIO);
  ASSERT_CONTAINS(err.msg, "not a regular file");
}

static void write_part(const char *path, int no, int count, int total, const char *tname, unsigned seed) {
  eng__gguf_writer *w = eng__gguf_writer_new(0);
  if (no == 0) eng__gguf_writer_set_str(w, "general.architecture", "qwen3");
  uint16_t v16 = (uint16_t)no;
  eng__gguf_writer_set_raw(w, "split.no", ENG__GGUF_U16, &v16, 2);
  v16 = (uint16_t)count;
  eng__gguf_writer_set_raw(w, "split.count", ENG__GGUF_U16, &v16, 2);
  eng__gguf_writer_set_i32(w, "split.tensors.count", total);
  uint64_t ne[1] = {16};
  eng__gguf_writer_add_tensor(w, tname, 0, 1, ne);
  eng_error err;
  ASSERT_MSG(eng__gguf_writer_begin(w, path, &err) == 0, "%s", err.msg);
  float data[16];
  for (int i = 0; i < 16; i++) data[i] = (float)(seed * 100 + i);
  ASSERT_EQ_INT(eng__gguf_writer_write(w, data, sizeof data, &err), 0);
  ASSERT_EQ_INT(eng__gguf_writer_finish(w, &err), 0);
  eng__gguf_writer_free(w);
}

TEST(split_model_is_one_model) {
  char p1[600], p2[600], p3[600];
  snprintf(p1, sizeof p1, "%s/m-00001-of-00003.gguf", tmpdir());
  snprintf(p2, sizeof p2, "%s/m-00002-of-00003.gguf", tmpdir());
  snprintf(p3, sizeof p3, "%s/m-00003-of-00003.gguf", tmpdir());
  write_part(p1, 0, 3, 3, "a", 1);
  write_part(p2, 1, 3, 3, "b", 2);
  write_part(p3, 2, 3, 3, "c", 3);
  eng__gguf *g;
  eng_error err = {0};
  ASSERT_MSG(eng__gguf_open(p1, &g, &err) == 0, "%s", err.msg);
  ASSERT_EQ_INT(eng__gguf_n_files(g), 3);
  ASSERT_EQ_INT(eng__gguf_n_tensors(g), 3);
  const eng__gguf_tensor *t = eng__gguf_find_tensor(g, "c");
  ASSERT(t && t->file == 2 && ((const float *)t->data)[5] == 305.0f);
  char arch[16];
  ASSERT_EQ_INT(eng__gguf_get_str_buf(g, "general.architecture", arch, sizeof arch, &err), 1);
  eng__gguf_close(g);
  /* opening a later part finds part 1 */
  ASSERT_MSG(eng__gguf_open(p2, &g, &err) == 0, "%s", err.msg);
  ASSERT_EQ_INT(eng__gguf_n_tensors(g), 3);
  ASSERT_EQ_INT(eng__gguf_get_str_buf(g, "general.architecture", arch, sizeof arch, &err), 1);
  eng__gguf_close(g);
  /* a part with the wrong split.no, a tensor in two parts, a missing part */
  write_part(p3, 1, 3, 3, "c", 3);
  ASSERT_EQ_INT(eng__gguf_open(p1, &g, &err), ENG_EFORMAT);
  ASSERT_CONTAINS(err.msg, "split.no is 1");
  write_part(p3, 2, 3, 3, "a", 3);
  ASSERT_EQ_INT(eng__gguf_open(p1, &g, &err), ENG_EFORMAT);
  ASSERT_CONTAINS(err.msg, "appears twice");
  write_part(p3, 2, 3, 5, "c", 3);
  write_part(p1, 0, 3, 5, "a", 1);
  ASSERT_EQ_INT(eng__gguf_open(p1, &g, &err), ENG_EFORMAT);
  ASSERT_CONTAINS(err.msg, "split.tensors.count says 5");
  unlink(p2);
  ASSERT_EQ_INT(eng__gguf_open(p1, &g, &err), ENG_EIO);
  ASSERT_CONTAINS(err.msg, "m-00002-of-00003.gguf");
  /* a split file whose name does not follow the pattern */
  char bad[600];
  snprintf(bad, sizeof bad, "%s/renamed.gguf", tmpdir());
  write_part(bad, 0, 3, 3, "a", 1);
  ASSERT_EQ_INT(eng__gguf_open(bad, &g, &err), ENG_EFORMAT);
  ASSERT_CONTAINS(err.msg, "-00001-of-00003.gguf");
}

/* Random corruption of a valid file: every mutant either opens (and then every accessor
 * stays in bounds: ASan checks) or fails with a message. Deterministic. */
TEST(random_mutations_never_crash) {
  sample s;
  write_sample(&s, "mut.gguf", 0);
  unsigned char *b = malloc(s.len);
  uint64_t x = 0x1234567;
  int opened = 0, failed = 0;
  for (int it = 0; it < 1500; it++) {
    memcpy(b, s.bytes, s.len);
    int nmut = 1 + (int)(x % 4);
    for (int k = 0; k < nmut; k++) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      size_t at = (size_t)((x >> 33) % s.data_start);   /* header region */
      b[at] = (unsigned char)(x >> 13);
    }
    char path[600];
    snprintf(path, sizeof path, "%s/mutant.gguf", tmpdir());
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, s.len, f);
    fclose(f);
    eng__gguf *g;
    eng_error err = {0};
    if (eng__gguf_open(path, &g, &err) == 0) {
      opened++;
      char buf[128];
      for (size_t i = 0; i < eng__gguf_n_kv(g); i++) {
        eng__gguf_kv_format(g, i, buf, sizeof buf);
        eng__gguf_arr a;
        if (eng__gguf_get_arr(g, eng__gguf_kv_key(g, i), &a, NULL) == 1) {
          for (uint64_t j = 0; j < a.count && j < 64; j++) {
            size_t l;
            if (a.type == ENG__GGUF_STRING) eng__gguf_arr_str(&a, j, &l);
            else eng__gguf_arr_f64(&a, j);
          }
        }
      }
      volatile unsigned sum = 0;
      for (size_t i = 0; i < eng__gguf_n_tensors(g); i++) {
        const eng__gguf_tensor *t = eng__gguf_tensor_at(g, i);
        const unsigned char *d = t->data;
        sum += d[0] + d[t->nbytes - 1];
      }
      eng__gguf_close(g);
    } else {
      failed++;
      ASSERT_MSG(err.msg[0] != 0, "a failure without a message");
    }
  }
  ASSERT(opened > 0 && failed > 0);
  free(b);
  free(s.bytes);
}

QC_TEST_MAIN
