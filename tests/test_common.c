/* test_common.c — the bounded buffer, UTF-8 helpers and directory rules. */
#include "common/common.h"
#include "tests/test.h"

TEST(buf_grows_and_stays_terminated) {
  qc_buf b;
  qc_buf_init(&b, 0);
  ASSERT(b.data != NULL && b.data[0] == '\0');
  for (int i = 0; i < 1000; i++) ASSERT_EQ_INT(qc_buf_printf(&b, "%d,", i), QC_OK);
  ASSERT_EQ_INT(b.data[b.len], '\0');
  ASSERT(qc_str_has_prefix(b.data, "0,1,2,"));
  qc_buf_consume(&b, 4);
  ASSERT(qc_str_has_prefix(b.data, "2,3,"));
  qc_buf_release(&b);
  ASSERT_EQ_INT(b.len, 0);
}

TEST(buf_refuses_past_max) {
  qc_buf b;
  qc_buf_init(&b, 10);
  ASSERT_EQ_INT(qc_buf_append(&b, "0123456789", 10), QC_OK);
  ASSERT_EQ_INT(qc_buf_putc(&b, 'x'), QC_ETOOBIG);
  ASSERT_EQ_INT(b.len, 10);
  ASSERT_EQ_INT(qc_buf_printf(&b, "%s", "y"), QC_ETOOBIG);
  size_t n;
  char *s = qc_buf_detach(&b, &n);
  ASSERT_EQ_INT(n, 10);
  ASSERT_STR_EQ(s, "0123456789");
  free(s);
}

TEST(utf8_validation) {
  ASSERT(qc_utf8_valid("plain", 5));
  ASSERT(qc_utf8_valid("h\xC3\xA9llo \xF0\x9F\x98\x80", 11));
  ASSERT(!qc_utf8_valid("\xC0\xAF", 2));           /* overlong */
  ASSERT(!qc_utf8_valid("\xED\xA0\x80", 3));       /* surrogate */
  ASSERT(!qc_utf8_valid("\xF4\x90\x80\x80", 4));   /* > U+10FFFF */
  ASSERT(!qc_utf8_valid("\xE2\x82", 2));           /* truncated */
  ASSERT(!qc_utf8_valid("\xFF", 1));
}

TEST(utf8_holds_back_partial_characters) {
  ASSERT_EQ_INT(qc_utf8_complete_len("ab\xE2\x82", 4), 2);
  ASSERT_EQ_INT(qc_utf8_complete_len("ab\xE2\x82\xAC", 5), 5);
  ASSERT_EQ_INT(qc_utf8_complete_len("\xF0\x9F\x98", 3), 0);
  ASSERT_EQ_INT(qc_utf8_complete_len("abc", 3), 3);
  ASSERT_EQ_INT(qc_utf8_complete_len("a\xFF", 2), 2); /* invalid is not held back */
}

TEST(utf8_sanitize_replaces_bad_bytes) {
  size_t n;
  char *s = qc_utf8_sanitize("a\xFF" "b\xE2\x82", 5, &n);
  ASSERT_STR_EQ(s, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD");
  ASSERT(qc_utf8_valid(s, n));
  free(s);
}

TEST(dirs_follow_overrides) {
  setenv("QCODER_RUNTIME_DIR", "/x/run", 1);
  char *r = qc_runtime_dir();
  ASSERT_STR_EQ(r, "/x/run");
  free(r);
  unsetenv("QCODER_RUNTIME_DIR");
  setenv("XDG_RUNTIME_DIR", "/run/user/7", 1);
  r = qc_runtime_dir();
  ASSERT_STR_EQ(r, "/run/user/7/qcoder");
  free(r);
  unsetenv("XDG_RUNTIME_DIR");
  r = qc_runtime_dir();
  ASSERT(qc_str_has_prefix(r, "/tmp/qcoder-"));
  free(r);
}

TEST(mkdir_p_and_read_file) {
  char *d = qct_tempdir("common");
  char *p = qc_path_join(d, "a/b/c");
  ASSERT_EQ_INT(qc_mkdir_p(p, 0700), QC_OK);
  ASSERT_EQ_INT(qc_mkdir_p(p, 0700), QC_OK);
  char *f = qc_path_join(p, "f.txt");
  ASSERT_EQ_INT(qct_write_file(f, "hello"), 0);
  ASSERT_EQ_INT(qc_mkdir_p(f, 0700), QC_EINVAL); /* exists, not a directory */
  char *s;
  size_t n;
  ASSERT_EQ_INT(qc_read_file(f, 100, &s, &n), QC_OK);
  ASSERT_STR_EQ(s, "hello");
  free(s);
  ASSERT_EQ_INT(qc_read_file(f, 3, &s, &n), QC_ETOOBIG);
  free(f);
  free(p);
  free(d);
}

TEST(sha256) {
  char hex[65];
  qc_sha256_hex("abc", 3, hex);
  ASSERT_STR_EQ(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

QC_TEST_MAIN
