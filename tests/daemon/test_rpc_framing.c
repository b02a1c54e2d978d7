/* test_rpc_framing.c — the pure framer and decoder of daemon/jsonrpc.c, byte by byte.
 *
 * Every rule of the wire format in jsonrpc.h has a case here: both framings, messages
 * split at every byte boundary and packed many to a read, CRLF and blank lines, each
 * way a Content-Length header can be wrong, over-size messages, invalid JSON and
 * UTF-8, nesting bombs and batches.
 */
#include "daemon/jsonrpc.h"
#include "tests/test.h"

#define PING "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"_qcoder/ping\"}"

/* Collected output of draining a framer. */
typedef struct {
  int n;          /* messages */
  char *msgs[256];
  int err;        /* last negative return, 0 if none */
} drained;

static void drain(rpc_framer *f, drained *d) {
  for (;;) {
    const char *m;
    size_t len;
    int rc = rpc_framer_next(f, &m, &len);
    if (rc == 0) return;
    if (rc < 0) {
      d->err = rc;
      return;
    }
    if (d->n < 256) d->msgs[d->n] = qc_strndup(m, len);
    d->n++;
  }
}

static void drained_free(drained *d) {
  for (int i = 0; i < d->n && i < 256; i++) free(d->msgs[i]);
  memset(d, 0, sizeof *d);
}

/* Feed `s` split at every position (two chunks), and one byte at a time; each way
 * must give exactly the messages `want` (NULL-terminated). */
static void check_all_splits(rpc_framing framing, const char *s, const char *const *want) {
  size_t n = strlen(s);
  int nwant = 0;
  while (want[nwant]) nwant++;
  for (size_t cut = 0; cut <= n + 1; cut++) {
    rpc_framer f;
    drained d = {0};
    rpc_framer_init(&f, framing, 0);
    if (cut <= n) {
      ASSERT_EQ_INT(rpc_framer_feed(&f, s, cut), 0);
      drain(&f, &d);
      ASSERT_EQ_INT(rpc_framer_feed(&f, s + cut, n - cut), 0);
      drain(&f, &d);
    } else { /* one byte at a time */
      for (size_t i = 0; i < n; i++) {
        ASSERT_EQ_INT(rpc_framer_feed(&f, s + i, 1), 0);
        drain(&f, &d);
      }
    }
    ASSERT_MSG(d.err == 0, "cut %zu: framing error %d: %s", cut, d.err, f.error);
    ASSERT_MSG(d.n == nwant, "cut %zu: %d messages, want %d", cut, d.n, nwant);
    for (int i = 0; i < nwant; i++) ASSERT_STR_EQ(d.msgs[i], want[i]);
    ASSERT_EQ_INT(rpc_framer_pending(&f), 0);
    drained_free(&d);
    rpc_framer_release(&f);
  }
}

static char *lsp_frame(const char *body) {
  return qc_asprintf("Content-Length: %zu\r\n\r\n%s", strlen(body), body);
}

/* Feed all of `s` and report how the framer ended. */
static int feed_all(rpc_framer *f, const char *s, size_t n, drained *d) {
  ASSERT_EQ_INT(rpc_framer_feed(f, s, n), 0);
  drain(f, d);
  return d->err;
}

TEST(ndjson_split_at_every_byte) {
  const char *want[] = {PING, "{\"a\":\"\\u00e9 \xc3\xa9\"}", NULL};
  check_all_splits(RPC_FRAMING_DETECT, PING "\n{\"a\":\"\\u00e9 \xc3\xa9\"}\n", want);
  check_all_splits(RPC_FRAMING_NDJSON, PING "\n{\"a\":\"\\u00e9 \xc3\xa9\"}\n", want);
}

TEST(lsp_split_at_every_byte) {
  char *a = lsp_frame(PING);
  char *b = lsp_frame("{\"x\":[1,2,3]}");
  char *both = qc_asprintf("%s%s", a, b);
  const char *want[] = {PING, "{\"x\":[1,2,3]}", NULL};
  check_all_splits(RPC_FRAMING_DETECT, both, want);
  check_all_splits(RPC_FRAMING_LSP, both, want);
  free(a);
  free(b);
  free(both);
}

TEST(lsp_with_content_type_first_and_lowercase_names) {
  const char *s = "Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n"
                  "content-length: 2\r\n\r\n{}"
                  "CONTENT-LENGTH:2\r\nX-Unknown: yes\r\n\r\n[]";
  const char *want[] = {"{}", "[]", NULL};
  check_all_splits(RPC_FRAMING_DETECT, s, want);
  rpc_framer f;
  rpc_framer_init(&f, RPC_FRAMING_DETECT, 0);
  drained d = {0};
  feed_all(&f, s, strlen(s), &d);
  ASSERT_EQ_INT(f.framing, RPC_FRAMING_LSP);
  drained_free(&d);
  rpc_framer_release(&f);
}

TEST(lsp_bare_lf_headers_are_accepted) {
  const char *want[] = {"{}", NULL};
  check_all_splits(RPC_FRAMING_DETECT, "Content-Length: 2\n\n{}", want);
}

TEST(hundred_messages_in_one_read) {
  for (int lsp = 0; lsp <= 1; lsp++) {
    qc_buf all;
    qc_buf_init(&all, 0);
    for (int i = 0; i < 100; i++) {
      char body[96];
      snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"_qcoder/ping\"}", i);
      if (lsp) qc_buf_printf(&all, "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
      else qc_buf_printf(&all, "%s\n", body);
    }
    rpc_framer f;
    rpc_framer_init(&f, RPC_FRAMING_DETECT, 0);
    drained d = {0};
    ASSERT_EQ_INT(feed_all(&f, all.data, all.len, &d), 0);
    ASSERT_EQ_INT(d.n, 100);
    for (int i = 0; i < 100; i++) {
      char want[96];
      snprintf(want, sizeof want, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"_qcoder/ping\"}", i);
      ASSERT_STR_EQ(d.msgs[i], want);
    }
    ASSERT_EQ_INT(f.framing, lsp ? RPC_FRAMING_LSP : RPC_FRAMING_NDJSON);
    drained_free(&d);
    rpc_framer_release(&f);
    qc_buf_release(&all);
  }
}

TEST(ndjson_crlf_blank_lines_and_padding) {
  const char *want[] = {"{\"a\":1}", "{\"b\":2}", "{\"c\":3}", NULL};
  check_all_splits(RPC_FRAMING_DETECT, "\r\n\n  {\"a\":1}\r\n\r\n\n\t{\"b\":2}  \r\n{\"c\":3}\n\n", want);
}

TEST(detection_waits_for_enough_bytes) {
  rpc_framer f;
  rpc_framer_init(&f, RPC_FRAMING_DETECT, 0);
  drained d = {0};
  feed_all(&f, "  Conte", 7, &d);
  ASSERT_EQ_INT(f.framing, RPC_FRAMING_DETECT);
  feed_all(&f, "nt-Length: 2\r\n\r\n{}", 18, &d);
  ASSERT_EQ_INT(f.framing, RPC_FRAMING_LSP);
  ASSERT_EQ_INT(d.n, 1);
  drained_free(&d);
  rpc_framer_release(&f);
  /* "Co" then "{": a JSON-ish peer that happens to start with C is newline framed */
  rpc_framer_init(&f, RPC_FRAMING_DETECT, 0);
  feed_all(&f, "Cox\n", 4, &d);
  ASSERT_EQ_INT(f.framing, RPC_FRAMING_NDJSON);
  ASSERT_EQ_INT(d.n, 1);
  drained_free(&d);
  rpc_framer_release(&f);
}

/* Expect a framing error whose text contains `what`. */
static void expect_framing_error(const char *s, size_t n, int code, const char *what) {
  rpc_framer f;
  rpc_framer_init(&f, RPC_FRAMING_DETECT, 0);
  drained d = {0};
  ASSERT_EQ_INT(feed_all(&f, s, n, &d), code);
  ASSERT_CONTAINS(f.error, what);
  /* and it stays failed */
  ASSERT_EQ_INT(rpc_framer_feed(&f, "{}\n", 3), RPC_EFRAMING);
  const char *m;
  size_t len;
  ASSERT(rpc_framer_next(&f, &m, &len) < 0);
  drained_free(&d);
  rpc_framer_release(&f);
}

TEST(content_length_missing_duplicate_wrong) {
  const char *s;
  s = "Content-Type: application/vscode-jsonrpc\r\n\r\n{}";
  expect_framing_error(s, strlen(s), RPC_EFRAMING, "missing Content-Length");
  s = "Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}";
  expect_framing_error(s, strlen(s), RPC_EFRAMING, "duplicate Content-Length");
  s = "Content-Length: abc\r\n\r\n{}";
  expect_framing_error(s, strlen(s), RPC_EFRAMING, "not a decimal number");
  s = "Content-Length: -2\r\n\r\n{}";
  expect_framing_error(s, strlen(s), RPC_EFRAMING, "not a decimal number");
  s = "Content-Length: 2x\r\n\r\n{}";
  expect_framing_error(s, strlen(s), RPC_EFRAMING, "not a decimal number");
  s = "Content-Length: \r\n\r\n{}";
  expect_framing_error(s, strlen(s), RPC_EFRAMING, "empty Content-Length");
  s = "Content-Length: 2\r\nno colon here\r\n\r\n{}";
  expect_framing_error(s, strlen(s), RPC_EFRAMING, "malformed header line");
  s = "Content-Length: 2\r\nX-Name: caf\xc3\xa9\r\n\r\n{}";
  expect_framing_error(s, strlen(s), RPC_EFRAMING, "non-ASCII");
  s = "Content-Length: 9999999999\r\n\r\n";
  expect_framing_error(s, strlen(s), RPC_EMSG_TOOBIG, "exceeds");
  s = "Content-Length: 999999999999999999999999999999\r\n\r\n";
  expect_framing_error(s, strlen(s), RPC_EMSG_TOOBIG, "exceeds");
  s = "Content-Length: 33554433\r\n\r\n"; /* one past 32 MiB, refused before any body */
  expect_framing_error(s, strlen(s), RPC_EMSG_TOOBIG, "exceeds");
}

TEST(content_length_too_small_desynchronises_and_fails) {
  /* The body is longer than declared: the first 10 bytes come out as a (broken) body,
   * then the rest is not a header block. */
  const char *s = "Content-Length: 10\r\n\r\n" PING;
  rpc_framer f;
  rpc_framer_init(&f, RPC_FRAMING_DETECT, 0);
  drained d = {0};
  ASSERT_EQ_INT(feed_all(&f, s, strlen(s), &d), 0);
  ASSERT_EQ_INT(d.n, 1);
  ASSERT_EQ_INT(strlen(d.msgs[0]), 10);
  rpc_msg m;
  rpc_decode_error e;
  ASSERT_EQ_INT(rpc_decode(d.msgs[0], 10, &m, &e), -1);
  ASSERT_EQ_INT(e.code, RPC_PARSE_ERROR);
  /* the remainder has no header terminator yet; a newline makes it a bad header */
  feed_all(&f, "\r\n\r\n", 4, &d);
  ASSERT_EQ_INT(d.err, RPC_EFRAMING);
  drained_free(&d);
  rpc_framer_release(&f);
}

TEST(content_length_too_large_waits_then_header_error) {
  /* Declared 100, sent 48: the framer waits for more (it cannot know). */
  const char *s = "Content-Length: 100\r\n\r\n" PING;
  rpc_framer f;
  rpc_framer_init(&f, RPC_FRAMING_DETECT, 0);
  drained d = {0};
  ASSERT_EQ_INT(feed_all(&f, s, strlen(s), &d), 0);
  ASSERT_EQ_INT(d.n, 0);
  ASSERT_EQ_INT(rpc_framer_pending(&f), strlen(PING));
  drained_free(&d);
  rpc_framer_release(&f);
}

TEST(header_block_too_long) {
  qc_buf b;
  qc_buf_init(&b, 0);
  qc_buf_puts(&b, "Content-Length: 2\r\n");
  while (b.len < RPC_MAX_HEADER_BYTES + 10) qc_buf_puts(&b, "X-Padding: aaaaaaaaaaaaaaaaaaaa\r\n");
  expect_framing_error(b.data, b.len, RPC_EFRAMING, "header block longer");
  /* the same without any newline at all */
  qc_buf_reset(&b);
  qc_buf_puts(&b, "Content-Length: 2");
  while (b.len < RPC_MAX_HEADER_BYTES + 10) qc_buf_putc(&b, ' ');
  expect_framing_error(b.data, b.len, RPC_EFRAMING, "header block longer");
  qc_buf_release(&b);
}

TEST(oversize_ndjson_line) {
  /* small limit: exactly max passes, max+1 fails, also before the newline arrives */
  rpc_framer f;
  drained d = {0};
  char line[120];
  memset(line, ' ', sizeof line);
  line[0] = '{';
  line[99] = '}';
  line[100] = '\n';
  rpc_framer_init(&f, RPC_FRAMING_NDJSON, 100);
  ASSERT_EQ_INT(feed_all(&f, line, 101, &d), 0);
  ASSERT_EQ_INT(d.n, 1);
  drained_free(&d);
  rpc_framer_release(&f);

  memset(line, 'x', sizeof line);
  line[101] = '\n';
  rpc_framer_init(&f, RPC_FRAMING_NDJSON, 100);
  ASSERT_EQ_INT(feed_all(&f, line, 102, &d), RPC_EMSG_TOOBIG);
  drained_free(&d);
  rpc_framer_release(&f);

  rpc_framer_init(&f, RPC_FRAMING_NDJSON, 100);
  ASSERT_EQ_INT(feed_all(&f, line, 101, &d), 0); /* 101 bytes, maybe a "\r" yet to come */
  ASSERT_EQ_INT(feed_all(&f, "x", 1, &d), RPC_EMSG_TOOBIG);
  drained_free(&d);
  rpc_framer_release(&f);
}

TEST(oversize_at_the_real_limit) {
  /* 32 MiB + 2 bytes without a newline, fed in 64 KiB chunks as the server reads */
  size_t total = RPC_MAX_MESSAGE_BYTES + 2, chunk = 65536;
  char *big = malloc(chunk);
  memset(big, 'a', chunk);
  big[0] = '"';
  rpc_framer f;
  rpc_framer_init(&f, RPC_FRAMING_NDJSON, 0);
  drained d = {0};
  size_t fed = 0;
  while (fed < total && d.err == 0) {
    size_t k = total - fed < chunk ? total - fed : chunk;
    feed_all(&f, big, k, &d);
    fed += k;
  }
  ASSERT_EQ_INT(d.err, RPC_EMSG_TOOBIG);
  ASSERT(fed == total); /* failed exactly when the limit was passed */
  ASSERT_EQ_INT(d.n, 0);
  rpc_framer_release(&f);
  free(big);
}

TEST(max_size_message_accepted_in_chunks_quickly) {
  /* a body of exactly 32 MiB via Content-Length, in 64 KiB chunks */
  size_t body = RPC_MAX_MESSAGE_BYTES, chunk = 65536;
  char *buf = malloc(chunk);
  memset(buf, ' ', chunk);
  rpc_framer f;
  rpc_framer_init(&f, RPC_FRAMING_DETECT, 0);
  drained d = {0};
  char hdr[64];
  int hl = snprintf(hdr, sizeof hdr, "Content-Length: %zu\r\n\r\n", body);
  feed_all(&f, hdr, (size_t)hl, &d);
  uint64_t t0 = qc_now_ms();
  for (size_t fed = 0; fed < body; fed += chunk) {
    const char *m;
    size_t len;
    ASSERT_EQ_INT(rpc_framer_feed(&f, buf, chunk), 0);
    int rc = rpc_framer_next(&f, &m, &len);
    if (fed + chunk < body) ASSERT_EQ_INT(rc, 0);
    else ASSERT(rc == 1 && len == body);
  }
  ASSERT_MSG(qc_now_ms() - t0 < 5000, "buffering 32 MiB took %llu ms",
             (unsigned long long)(qc_now_ms() - t0));
  rpc_framer_release(&f);
  free(buf);
}

/* ---- decoding ---------------------------------------------------------------------- */

static void expect_decode_error(const char *s, size_t n, int code, const char *what, const char *id_json) {
  rpc_msg m;
  rpc_decode_error e;
  ASSERT_EQ_INT(rpc_decode(s, n, &m, &e), -1);
  ASSERT_EQ_INT(e.code, code);
  ASSERT_CONTAINS(e.message, what);
  if (id_json) {
    ASSERT(e.id != NULL);
    char *got = json_dumps(e.id, JSON_ENCODE_ANY | JSON_COMPACT);
    ASSERT_STR_EQ(got, id_json);
    free(got);
  } else {
    ASSERT(e.id == NULL);
  }
  json_decref(e.id);
  ASSERT(m.root == NULL);
}

#define DE(s, code, what, id) expect_decode_error(s, strlen(s), code, what, id)

TEST(decode_request_notification_response) {
  rpc_msg m;
  rpc_decode_error e;
  const char *s = "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"m\",\"params\":{\"x\":1}}";
  ASSERT_EQ_INT(rpc_decode(s, strlen(s), &m, &e), 0);
  ASSERT_EQ_INT(m.kind, RPC_MSG_REQUEST);
  ASSERT_STR_EQ(m.method, "m");
  ASSERT_STR_EQ(json_string_value(m.id), "a");
  ASSERT_EQ_INT(json_integer_value(json_object_get(m.params, "x")), 1);
  rpc_msg_release(&m);

  s = "{\"jsonrpc\":\"2.0\",\"method\":\"n\",\"params\":null}";
  ASSERT_EQ_INT(rpc_decode(s, strlen(s), &m, &e), 0);
  ASSERT_EQ_INT(m.kind, RPC_MSG_NOTIFICATION);
  ASSERT(m.id == NULL && m.params == NULL);
  rpc_msg_release(&m);

  s = "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"n\"}"; /* null id: a request */
  ASSERT_EQ_INT(rpc_decode(s, strlen(s), &m, &e), 0);
  ASSERT_EQ_INT(m.kind, RPC_MSG_REQUEST);
  rpc_msg_release(&m);

  s = "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"ok\":true}}";
  ASSERT_EQ_INT(rpc_decode(s, strlen(s), &m, &e), 0);
  ASSERT_EQ_INT(m.kind, RPC_MSG_RESPONSE);
  ASSERT(m.result && !m.error);
  rpc_msg_release(&m);

  s = "{\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":-1,\"message\":\"no\"}}";
  ASSERT_EQ_INT(rpc_decode(s, strlen(s), &m, &e), 0);
  ASSERT_EQ_INT(m.kind, RPC_MSG_RESPONSE);
  ASSERT(!m.result && m.error);
  rpc_msg_release(&m);
}

TEST(decode_invalid_json) {
  DE("{\"jsonrpc\":\"2.0\",", RPC_PARSE_ERROR, "parse error", NULL);
  DE("not json at all", RPC_PARSE_ERROR, "parse error", NULL);
  DE("", RPC_PARSE_ERROR, "parse error", NULL);
  DE("{} {}", RPC_PARSE_ERROR, "parse error", NULL);
  /* NUL inside a string is refused (C strings downstream) */
  DE("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\\u0000b\"}", RPC_PARSE_ERROR, "parse error", NULL);
}

TEST(decode_invalid_utf8) {
  DE("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}", RPC_PARSE_ERROR, "invalid UTF-8", NULL);
  DE("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xc0\xaf\"}", RPC_PARSE_ERROR, "invalid UTF-8", NULL);
  DE("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xed\xa0\x80\"}", RPC_PARSE_ERROR, "invalid UTF-8", NULL);
  /* escaped lone surrogates are jansson's to refuse */
  DE("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\\ud800\"}", RPC_PARSE_ERROR, "parse error", NULL);
}

TEST(decode_nesting_bomb_is_cheap) {
  size_t n = 100000;
  char *s = malloc(n);
  memset(s, '[', n);
  uint64_t t0 = qc_now_ms();
  expect_decode_error(s, n, RPC_PARSE_ERROR, "nested deeper than 128", NULL);
  for (size_t i = 0; i < n; i += 5) memcpy(s + i, "{\"a\":", 5);
  expect_decode_error(s, n, RPC_PARSE_ERROR, "nested deeper than 128", NULL);
  ASSERT(qc_now_ms() - t0 < 1000);
  free(s);
}

TEST(decode_depth_limit_is_exact) {
  qc_buf b;
  qc_buf_init(&b, 0);
  qc_buf_puts(&b, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":");
  for (int i = 0; i < RPC_MAX_JSON_DEPTH - 1; i++) qc_buf_putc(&b, '[');
  for (int i = 0; i < RPC_MAX_JSON_DEPTH - 1; i++) qc_buf_putc(&b, ']');
  qc_buf_putc(&b, '}');
  rpc_msg m;
  rpc_decode_error e;
  ASSERT_EQ_INT(rpc_json_depth(b.data, b.len, 1000), RPC_MAX_JSON_DEPTH);
  ASSERT_EQ_INT(rpc_decode(b.data, b.len, &m, &e), 0);
  rpc_msg_release(&m);
  qc_buf_reset(&b);
  qc_buf_puts(&b, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":");
  for (int i = 0; i < RPC_MAX_JSON_DEPTH; i++) qc_buf_putc(&b, '[');
  for (int i = 0; i < RPC_MAX_JSON_DEPTH; i++) qc_buf_putc(&b, ']');
  qc_buf_putc(&b, '}');
  expect_decode_error(b.data, b.len, RPC_PARSE_ERROR, "nested deeper", NULL);
  qc_buf_release(&b);
  /* brackets inside strings and escaped quotes do not count */
  const char *s = "{\"a\":\"[[[[\\\"[[[[\",\"b\":[{}]}";
  ASSERT_EQ_INT(rpc_json_depth(s, strlen(s), 100), 3);
}

TEST(decode_batches_and_non_objects) {
  DE("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\"}]", RPC_INVALID_REQUEST, "batches", NULL);
  DE("[]", RPC_INVALID_REQUEST, "batches", NULL);
  DE("42", RPC_INVALID_REQUEST, "JSON object", NULL);
  DE("\"str\"", RPC_INVALID_REQUEST, "JSON object", NULL);
  DE("null", RPC_INVALID_REQUEST, "JSON object", NULL);
}

TEST(decode_invalid_requests_keep_the_id) {
  DE("{\"id\":3,\"method\":\"m\"}", RPC_INVALID_REQUEST, "\"jsonrpc\" must be", "3");
  DE("{\"jsonrpc\":\"1.0\",\"id\":\"x\",\"method\":\"m\"}", RPC_INVALID_REQUEST, "\"jsonrpc\" must be", "\"x\"");
  DE("{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":5}", RPC_INVALID_REQUEST, "method must be a string", "3");
  DE("{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"m\",\"params\":7}", RPC_INVALID_REQUEST, "params must be", "3");
  DE("{\"jsonrpc\":\"2.0\",\"id\":3}", RPC_INVALID_REQUEST, "no \"method\"", "3");
  DE("{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"m\"}", RPC_INVALID_REQUEST, "id must be", NULL);
  DE("{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"m\"}", RPC_INVALID_REQUEST, "id must be", NULL);
  DE("{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"m\"}", RPC_INVALID_REQUEST, "id must be", NULL);
}

TEST(decode_malformed_responses_are_silent) {
  const char *bad[] = {
      "{\"jsonrpc\":\"2.0\",\"result\":1}",
      "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":1,\"error\":{\"code\":1,\"message\":\"\"}}",
      "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":\"oops\"}",
      "{\"id\":1,\"result\":1}",
      "{\"jsonrpc\":\"2.0\",\"id\":{},\"result\":1}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    rpc_msg m;
    rpc_decode_error e;
    ASSERT_EQ_INT(rpc_decode(bad[i], strlen(bad[i]), &m, &e), -1);
    ASSERT_MSG(e.silent, "case %zu should be silent", i);
    json_decref(e.id);
  }
}

TEST(encode_round_trips_through_the_framer) {
  for (int fr = RPC_FRAMING_NDJSON; fr <= RPC_FRAMING_LSP; fr++) {
    qc_buf out;
    qc_buf_init(&out, 0);
    ASSERT_EQ_INT(rpc_frame_encode((rpc_framing)fr, PING, strlen(PING), &out), 0);
    ASSERT_EQ_INT(rpc_frame_encode((rpc_framing)fr, "{}", 2, &out), 0);
    if (fr == RPC_FRAMING_LSP) ASSERT(qc_str_has_prefix(out.data, "Content-Length: 48\r\n\r\n{"));
    else ASSERT_STR_EQ(out.data, PING "\n{}\n");
    const char *want[] = {PING, "{}", NULL};
    check_all_splits(RPC_FRAMING_DETECT, out.data, want);
    qc_buf_release(&out);
  }
}

TEST(make_messages) {
  json_t *id = json_integer(5);
  json_t *m = rpc_make_error(id, RPC_METHOD_NOT_FOUND, "nope", NULL);
  char *s = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
  ASSERT_STR_EQ(s, "{\"error\":{\"code\":-32601,\"message\":\"nope\"},\"id\":5,\"jsonrpc\":\"2.0\"}");
  free(s);
  json_decref(m);
  m = rpc_make_result(NULL, NULL);
  s = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
  ASSERT_STR_EQ(s, "{\"id\":null,\"jsonrpc\":\"2.0\",\"result\":null}");
  free(s);
  json_decref(m);
  /* an error message that is not UTF-8 still produces a valid message */
  m = rpc_make_error(id, -1, "bad \xff", NULL);
  ASSERT(m != NULL);
  ASSERT_CONTAINS(json_string_value(json_object_get(json_object_get(m, "error"), "message")), "not valid UTF-8");
  json_decref(m);
  json_decref(id);
}

QC_TEST_MAIN
