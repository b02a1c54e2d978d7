/* Unit tests for lsp/: UTF-16 positions (emoji, surrogates, CRLF, clamping), file URIs,
 * the document store (open, full and ranged changes, versions, limits, recency). */
#include "lsp/lsp.h"
#include "tests/test.h"

static lsp_pos P(uint32_t l, uint32_t c) { return (lsp_pos){l, c}; }

TEST(utf16_ascii_and_multibyte) {
  const char *t = "ab\nh\xc3\xa9llo\n";  /* "héllo": é is 2 bytes, 1 unit */
  size_t n = strlen(t);
  ASSERT_EQ_INT(lsp_offset_at(t, n, P(0, 0)), 0);
  ASSERT_EQ_INT(lsp_offset_at(t, n, P(0, 2)), 2);
  ASSERT_EQ_INT(lsp_offset_at(t, n, P(1, 0)), 3);
  ASSERT_EQ_INT(lsp_offset_at(t, n, P(1, 2)), 6); /* after "hé" */
  ASSERT_EQ_INT(lsp_offset_at(t, n, P(1, 5)), 9);
  lsp_pos p = lsp_pos_at(t, n, 6);
  ASSERT_EQ_INT(p.line, 1);
  ASSERT_EQ_INT(p.character, 2);
  ASSERT_EQ_INT(lsp_utf16_len("h\xc3\xa9", 3), 2);
}

TEST(utf16_surrogate_pairs) {
  /* "a😀b": the emoji is 4 bytes and 2 UTF-16 units */
  const char *t = "a\xf0\x9f\x98\x80" "b";
  size_t n = strlen(t);
  ASSERT_EQ_INT(lsp_utf16_len(t, n), 4);
  ASSERT_EQ_INT(lsp_offset_at(t, n, P(0, 1)), 1);
  ASSERT_EQ_INT(lsp_offset_at(t, n, P(0, 3)), 5); /* after the emoji */
  ASSERT_EQ_INT(lsp_offset_at(t, n, P(0, 4)), 6);
  /* between the two halves of the pair: the start of the emoji */
  ASSERT_EQ_INT(lsp_offset_at(t, n, P(0, 2)), 1);
  ASSERT_EQ_INT(lsp_pos_at(t, n, 5).character, 3);
  /* a byte offset inside the emoji's bytes rounds down to its start */
  ASSERT_EQ_INT(lsp_pos_at(t, n, 3).character, 1);
  /* two emoji in a row, a CJK character (3 bytes, 1 unit) */
  const char *u = "\xf0\x9f\x98\x80\xf0\x9f\x8e\x89\xe4\xb8\xad!";
  size_t un = strlen(u);
  ASSERT_EQ_INT(lsp_offset_at(u, un, P(0, 4)), 8);
  ASSERT_EQ_INT(lsp_offset_at(u, un, P(0, 5)), 11);
  ASSERT_EQ_INT(lsp_pos_at(u, un, 11).character, 5);
}

TEST(utf16_line_breaks_crlf_cr) {
  const char *t = "one\r\ntwo\rthree\nfour";
  size_t n = strlen(t);
  ASSERT_EQ_INT(lsp_offset_at(t, n, P(1, 0)), 5);
  ASSERT_EQ_INT(lsp_offset_at(t, n, P(2, 0)), 9);
  ASSERT_EQ_INT(lsp_offset_at(t, n, P(3, 0)), 15);
  /* past the end of a CRLF line: before the \r, never between \r and \n */
  ASSERT_EQ_INT(lsp_offset_at(t, n, P(0, 99)), 3);
  lsp_pos p = lsp_pos_at(t, n, 4); /* between \r and \n */
  ASSERT_EQ_INT(p.line, 0);
  ASSERT_EQ_INT(p.character, 3);
  p = lsp_pos_at(t, n, 5);
  ASSERT_EQ_INT(p.line, 1);
  ASSERT_EQ_INT(p.character, 0);
  p = lsp_pos_at(t, n, n);
  ASSERT_EQ_INT(p.line, 3);
  ASSERT_EQ_INT(p.character, 4);
}

TEST(utf16_clamping) {
  const char *t = "ab\ncd\n";
  size_t n = strlen(t);
  ASSERT_EQ_INT(lsp_offset_at(t, n, P(0, 50)), 2);   /* past the line's end */
  ASSERT_EQ_INT(lsp_offset_at(t, n, P(2, 0)), 6);    /* the empty last line */
  ASSERT_EQ_INT(lsp_offset_at(t, n, P(2, 7)), 6);
  ASSERT_EQ_INT(lsp_offset_at(t, n, P(9, 0)), 6);    /* past the last line */
  ASSERT_EQ_INT(lsp_offset_at("", 0, P(3, 3)), 0);
  ASSERT_EQ_INT(lsp_pos_at(t, n, 999).line, 2);
  /* invalid UTF-8 bytes count one unit each */
  ASSERT_EQ_INT(lsp_offset_at("\xff\xfe" "x", 3, P(0, 2)), 2);
}

TEST(utf16_round_trip_every_offset) {
  const char *t = "x\xc3\xa9\xf0\x9f\x98\x80y\r\n\xe4\xb8\xad\rz\n";
  size_t n = strlen(t);
  for (size_t off = 0; off <= n; off++) {
    lsp_pos p = lsp_pos_at(t, n, off);
    size_t back = lsp_offset_at(t, n, p);
    ASSERT_MSG(back <= off, "offset %zu -> (%u,%u) -> %zu", off, p.line, p.character, back);
    lsp_pos again = lsp_pos_at(t, n, back);
    ASSERT_EQ_INT(lsp_pos_cmp(p, again), 0);
  }
}

TEST(position_json_parsing) {
  json_t *j = json_loads("{\"start\":{\"line\":1,\"character\":2},\"end\":{\"line\":1,\"character\":5}}", 0, NULL);
  lsp_range r;
  ASSERT_EQ_INT(lsp_range_parse(j, &r), LSP_OK);
  ASSERT_EQ_INT(r.end.character, 5);
  json_decref(j);
  const char *bad[] = {"{\"start\":{\"line\":-1,\"character\":0},\"end\":{\"line\":0,\"character\":0}}",
                       "{\"start\":{\"line\":2,\"character\":0},\"end\":{\"line\":1,\"character\":0}}",
                       "{\"start\":{\"line\":\"1\",\"character\":0},\"end\":{\"line\":1,\"character\":0}}",
                       "{\"start\":{\"line\":1.5,\"character\":0},\"end\":{\"line\":2,\"character\":0}}",
                       "{\"start\":{\"line\":99999999999,\"character\":0},\"end\":{\"line\":1,\"character\":0}}",
                       "[1,2]", NULL};
  for (int i = 0; bad[i]; i++) {
    j = json_loads(bad[i], 0, NULL);
    ASSERT_MSG(lsp_range_parse(j, &r) == LSP_EARG, "accepted %s", bad[i]);
    json_decref(j);
  }
  json_t *o = lsp_range_json(r);
  ASSERT(json_is_object(json_object_get(o, "start")));
  json_decref(o);
}

TEST(file_uris) {
  char *p = lsp_uri_to_path("file:///home/u/a%20b/c%C3%A9.c");
  ASSERT_STR_EQ(p, "/home/u/a b/c\xc3\xa9.c");
  free(p);
  p = lsp_uri_to_path("file://localhost/x/y");
  ASSERT_STR_EQ(p, "/x/y");
  free(p);
  p = lsp_uri_to_path("FILE:///x?query#frag");
  ASSERT_STR_EQ(p, "/x");
  free(p);
  ASSERT(lsp_uri_to_path("untitled:Untitled-1") == NULL);
  ASSERT(lsp_uri_to_path("file://server/share/x") == NULL);
  ASSERT(lsp_uri_to_path("file:///a%00b") == NULL);
  ASSERT(lsp_uri_to_path("file:///a%2") == NULL);
  ASSERT(lsp_uri_to_path("file:///a%zz") == NULL);
  ASSERT(lsp_uri_to_path("file:///%ff") == NULL); /* not UTF-8 */
  char *u = lsp_path_to_uri("/home/u/a b/c\xc3\xa9#.c");
  ASSERT_STR_EQ(u, "file:///home/u/a%20b/c%C3%A9%23.c");
  p = lsp_uri_to_path(u);
  ASSERT_STR_EQ(p, "/home/u/a b/c\xc3\xa9#.c");
  free(u);
  free(p);
  ASSERT(lsp_path_to_uri("relative/x") == NULL);
}

static json_t *J(const char *s) {
  json_error_t e;
  json_t *j = json_loads(s, 0, &e);
  if (!j) fprintf(stderr, "bad JSON in test: %s: %s\n", s, e.text);
  return j;
}

TEST(document_store_sync) {
  lsp_docs *d = lsp_docs_new();
  ASSERT_EQ_INT(lsp_docs_open(d, "file:///w/a.c", "c", 1, "int x;\n", 7), LSP_OK);
  ASSERT_EQ_INT(lsp_docs_open(d, "file:///w/b.c", "c", 1, "b\n", 2), LSP_OK);
  ASSERT_EQ_INT(lsp_docs_count(d), 2);
  /* full sync */
  json_t *ch = J("[{\"text\":\"int y;\\n\"}]");
  ASSERT_EQ_INT(lsp_docs_change(d, "file:///w/a.c", 2, ch), LSP_OK);
  json_decref(ch);
  const lsp_doc *a = lsp_docs_find(d, "file:///w/a.c");
  ASSERT_STR_EQ(a->text, "int y;\n");
  ASSERT_EQ_INT(a->version, 2);
  /* another spelling of the same path finds it; so does the path */
  ASSERT(lsp_docs_find(d, "file://localhost/w/%61.c") == a);
  ASSERT(lsp_docs_find_path(d, "/w/a.c") == a);
  /* ranged changes with UTF-16 positions, applied in order */
  ch = J("[{\"range\":{\"start\":{\"line\":0,\"character\":4},\"end\":{\"line\":0,\"character\":5}},"
         "\"text\":\"\xf0\x9f\x98\x80\"},"
         "{\"range\":{\"start\":{\"line\":0,\"character\":6},\"end\":{\"line\":0,\"character\":6}},\"text\":\"z\"}]");
  ASSERT_EQ_INT(lsp_docs_change(d, "file:///w/a.c", 3, ch), LSP_OK);
  json_decref(ch);
  a = lsp_docs_find(d, "file:///w/a.c");
  ASSERT_STR_EQ(a->text, "int \xf0\x9f\x98\x80z;\n");
  /* a bad change leaves the document as it was */
  ch = J("[{\"text\":\"all new\"},{\"range\":{\"start\":{\"line\":0,\"character\":3},\"end\":{\"line\":0,"
         "\"character\":1}},\"text\":\"x\"}]");
  ASSERT_EQ_INT(lsp_docs_change(d, "file:///w/a.c", 4, ch), LSP_ERANGE);
  json_decref(ch);
  ch = J("[{\"nottext\":1}]");
  ASSERT_EQ_INT(lsp_docs_change(d, "file:///w/a.c", 4, ch), LSP_EARG);
  ASSERT_EQ_INT(lsp_docs_change(d, "file:///w/nope.c", 4, ch), LSP_ENOTOPEN);
  json_decref(ch);
  a = lsp_docs_find(d, "file:///w/a.c");
  ASSERT_STR_EQ(a->text, "int \xf0\x9f\x98\x80z;\n");
  ASSERT_EQ_INT(a->version, 3);
  /* our own edit: text known, version unknown */
  ASSERT_EQ_INT(lsp_docs_set_text(d, "/w/a.c", "new\n", 4), LSP_OK);
  a = lsp_docs_find(d, "file:///w/a.c");
  ASSERT_EQ_INT(a->version, LSP_VERSION_UNKNOWN);
  ASSERT_STR_EQ(a->text, "new\n");
  /* recency: a.c was touched last */
  const lsp_doc *rec[4];
  ASSERT_EQ_INT(lsp_docs_recent(d, rec, 4), 2);
  ASSERT_STR_EQ(rec[0]->path, "/w/a.c");
  ASSERT_STR_EQ(rec[1]->path, "/w/b.c");
  /* the symlink-free spelling finds the document too */
  ASSERT_EQ_INT(lsp_docs_set_real(d, "file:///w/a.c", "/real/w/a.c"), LSP_OK);
  ASSERT(lsp_docs_find_path(d, "/real/w/a.c") == lsp_docs_find_path(d, "/w/a.c"));
  ASSERT_EQ_INT(lsp_docs_set_text(d, "/real/w/a.c", "via real\n", 9), LSP_OK);
  ASSERT_STR_EQ(lsp_docs_find_path(d, "/w/a.c")->text, "via real\n");
  ASSERT_EQ_INT(lsp_docs_set_real(d, "file:///w/nope.c", "/x"), LSP_ENOTOPEN);
  ASSERT_EQ_INT(lsp_docs_close(d, "file:///w/a.c"), LSP_OK);
  ASSERT(lsp_docs_find_path(d, "/real/w/a.c") == NULL);
  ASSERT_EQ_INT(lsp_docs_close(d, "file:///w/a.c"), LSP_ENOTOPEN);
  ASSERT(lsp_docs_find(d, "file:///w/a.c") == NULL);
  ASSERT_EQ_INT(lsp_docs_count(d), 1);
  lsp_docs_free(d);
}

TEST(document_store_refuses_bad_input) {
  lsp_docs *d = lsp_docs_new();
  ASSERT_EQ_INT(lsp_docs_open(d, "untitled:1", "c", 1, "x", 1), LSP_EURI);
  ASSERT_EQ_INT(lsp_docs_open(d, "file:///w/bin", "c", 1, "\xff\xfe", 2), LSP_EUTF8);
  char *big = malloc(LSP_MAX_DOCUMENT_BYTES + 1);
  memset(big, 'a', LSP_MAX_DOCUMENT_BYTES + 1);
  ASSERT_EQ_INT(lsp_docs_open(d, "file:///w/big", "c", 1, big, LSP_MAX_DOCUMENT_BYTES + 1), LSP_ETOOBIG);
  free(big);
  ASSERT_EQ_INT(lsp_docs_count(d), 0);
  /* a change that would make the document too big is refused */
  ASSERT_EQ_INT(lsp_docs_open(d, "file:///w/a", "c", 1, "a", 1), LSP_OK);
  json_t *ch = json_pack("[{s:s%}]", "text", "x", (size_t)1);
  ASSERT_EQ_INT(lsp_docs_change(d, "file:///w/a", 2, ch), LSP_OK);
  json_decref(ch);
  /* reopening replaces */
  ASSERT_EQ_INT(lsp_docs_open(d, "file:///w/a", "c", 7, "again", 5), LSP_OK);
  ASSERT_EQ_INT(lsp_docs_count(d), 1);
  ASSERT_EQ_INT(lsp_docs_find_path(d, "/w/a")->version, 7);
  lsp_docs_free(d);
}

TEST(error_messages) {
  ASSERT_CONTAINS(lsp_strerror(LSP_EURI), "file://");
  ASSERT_CONTAINS(lsp_strerror(QC_ENOMEM), "memory");
}

QC_TEST_MAIN
