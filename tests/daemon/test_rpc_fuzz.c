/* test_rpc_fuzz.c — mutation fuzzing of the framer, the decoder and the dispatch core,
 * without libFuzzer.
 *
 * A fixed-seed generator mutates a corpus of real messages in both framings (bit flips,
 * inserted framing tokens, splices, truncations, random bytes) and feeds each result in
 * random chunk sizes. Invariants: nothing crashes or leaks (ASan/LSan in the asan
 * preset); the framer only ever yields messages within the limit or a sticky error;
 * decoding either succeeds or names a standard error code; and every byte the
 * connection writes back is well-framed JSON-RPC (responses with a valid id and exactly
 * one of result/error). QCT_FUZZ_ITERS and QCT_FUZZ_SEED widen a local run.
 */
#include "daemon/jsonrpc.h"
#include "tests/test.h"

static uint64_t rng_state;
static uint64_t rng(void) {
  uint64_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return rng_state = x;
}
static size_t rnd(size_t n) { return n ? (size_t)(rng() % n) : 0; }

static const char *const corpus[] = {
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":{\"a\":[1,2,{\"b\":\"c\"}]}}\n",
    "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"defer\"}\n"
    "{\"jsonrpc\":\"2.0\",\"method\":\"$/cancel_request\",\"params\":{\"requestId\":\"x\"}}\n",
    "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"cancellable\"}\r\n"
    "{\"jsonrpc\":\"2.0\",\"method\":\"$/cancelRequest\",\"params\":{\"id\":2}}\r\n",
    "Content-Length: 44\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"echo\"}xxx",
    "Content-Length: 41\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n"
    "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"echo\"}",
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"outcome\":{\"outcome\":\"selected\"}}}\n",
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32800,\"message\":\"cancelled\"}}\n",
    "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\"}]\n",
    "{\"jsonrpc\":\"2.0\",\"method\":\"note\",\"params\":[\"\\u00e9\\ud83d\\ude00\",\"\xc3\xa9\"]}\n",
    "\n\n   \r\n",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n",
};
static const char *const tokens[] = {"Content-Length: ", "content-length:", "\r\n", "\n", "\r\n\r\n", "[", "{",
                                     "}", "]", "\"", "\\", "\xff", "\xc3", "0", "99999999999", ":", "\"id\":",
                                     "\"method\":\"echo\"", "null", "-1", "\"jsonrpc\":\"2.0\"", ","};

static void mutate(qc_buf *b) {
  int rounds = 1 + (int)rnd(6);
  for (int r = 0; r < rounds; r++) {
    size_t at = rnd(b->len + 1);
    switch (rnd(7)) {
    case 0: /* flip a bit */
      if (b->len) b->data[rnd(b->len)] ^= (char)(1u << rnd(8));
      break;
    case 1: { /* insert a token */
      const char *t = tokens[rnd(sizeof tokens / sizeof *tokens)];
      qc_buf tail;
      qc_buf_init(&tail, 0);
      qc_buf_append(&tail, b->data + at, b->len - at);
      qc_buf_truncate(b, at);
      qc_buf_puts(b, t);
      qc_buf_append(b, tail.data, tail.len);
      qc_buf_release(&tail);
      break;
    }
    case 2: /* delete a range */
      if (b->len) {
        size_t n = 1 + rnd(16);
        if (at + n > b->len) n = b->len - at;
        memmove(b->data + at, b->data + at + n, b->len - at - n);
        qc_buf_truncate(b, b->len - n);
      }
      break;
    case 3: /* truncate */
      qc_buf_truncate(b, at);
      break;
    case 4: /* append another corpus entry */
      qc_buf_puts(b, corpus[rnd(sizeof corpus / sizeof *corpus)]);
      break;
    case 5: /* random bytes */
      for (size_t i = 0, n = 1 + rnd(8); i < n; i++) qc_buf_putc(b, (char)rnd(256));
      break;
    case 6: /* duplicate a slice */
      if (b->len) {
        size_t n = 1 + rnd(b->len - at + 1);
        if (at + n > b->len) n = b->len - at;
        char *copy = qc_strndup(b->data + at, n);
        qc_buf_append(b, copy, n);
        free(copy);
      }
      break;
    }
  }
}

/* ---- transport and handlers for the dispatch part ---------------------------------- */

typedef struct {
  qc_buf out;
  rpc_conn *conn;
} fz_io;

static int fz_write(void *io, const char *d, size_t n) { return qc_buf_append(&((fz_io *)io)->out, d, n); }
static void fz_close(void *io, int flush) { (void)io; (void)flush; }
static const rpc_conn_ops fz_ops = {fz_write, fz_close};

static rpc_req *held[64];
static int nheld;

static void h_echo(rpc_req *req, const json_t *params, void *user) {
  (void)user;
  rpc_req_reply(req, params ? json_deep_copy(params) : json_null());
}
static void h_defer(rpc_req *req, const json_t *params, void *user) {
  (void)params;
  (void)user;
  if (nheld < 64) held[nheld++] = req;
  else rpc_req_reply(req, NULL);
}
static void on_cancel(rpc_req *req, void *user) {
  (void)user;
  for (int i = 0; i < nheld; i++) /* it answers now: no longer held */
    if (held[i] == req) held[i] = held[--nheld];
  rpc_req_error(req, RPC_REQUEST_CANCELLED, "cancelled", NULL);
}
static void h_cancellable(rpc_req *req, const json_t *params, void *user) {
  (void)params;
  (void)user;
  rpc_req_on_cancel(req, on_cancel, NULL);
  if (nheld < 64) held[nheld++] = req;
  else rpc_req_reply(req, NULL);
}
static void n_note(rpc_conn *c, const json_t *params, void *user) {
  (void)c;
  (void)params;
  (void)user;
}
static int responses_seen;
static void on_resp(rpc_conn *c, const json_t *result, const rpc_error *error, void *user) {
  (void)c;
  (void)user;
  if ((result == NULL) == (error == NULL)) abort();
  responses_seen++;
}

/* Every written message must be a well-formed response or request of ours. */
static void check_output(const qc_buf *out) {
  rpc_framer f;
  rpc_framer_init(&f, RPC_FRAMING_DETECT, 0);
  ASSERT_EQ_INT(rpc_framer_feed(&f, out->data, out->len), 0);
  for (;;) {
    const char *s;
    size_t len;
    int rc = rpc_framer_next(&f, &s, &len);
    ASSERT_MSG(rc >= 0, "the connection wrote badly framed output: %s", f.error);
    if (rc == 0) break;
    rpc_msg m;
    rpc_decode_error e;
    ASSERT_MSG(rpc_decode(s, len, &m, &e) == 0, "the connection wrote an invalid message: %s", e.message);
    ASSERT(m.kind == RPC_MSG_RESPONSE || m.kind == RPC_MSG_REQUEST);
    rpc_msg_release(&m);
  }
  ASSERT_EQ_INT(rpc_framer_pending(&f), 0);
  rpc_framer_release(&f);
}

static void run_one(const char *data, size_t n, rpc_methods *methods, size_t max_message) {
  /* the framer and the decoder alone */
  rpc_framer f;
  rpc_framer_init(&f, RPC_FRAMING_DETECT, max_message);
  size_t fed = 0, msgs = 0;
  int failed = 0;
  while (fed < n && !failed) {
    size_t k = 1 + rnd(n - fed < 64 ? n - fed : 64);
    ASSERT_EQ_INT(rpc_framer_feed(&f, data + fed, k), 0);
    fed += k;
    for (;;) {
      const char *m;
      size_t len;
      int rc = rpc_framer_next(&f, &m, &len);
      if (rc == 0) break;
      if (rc < 0) {
        ASSERT(rc == RPC_EFRAMING || rc == RPC_EMSG_TOOBIG);
        ASSERT(f.error[0] != '\0');
        failed = 1;
        break;
      }
      ASSERT(rc == 1 && len <= f.max_message);
      msgs++;
      rpc_msg msg;
      rpc_decode_error e;
      if (rpc_decode(m, len, &msg, &e) == 0) {
        ASSERT(msg.kind >= RPC_MSG_REQUEST && msg.kind <= RPC_MSG_RESPONSE);
        rpc_msg_release(&msg);
      } else {
        ASSERT(e.code == RPC_PARSE_ERROR || e.code == RPC_INVALID_REQUEST);
        json_decref(e.id);
      }
    }
    ASSERT(rpc_framer_pending(&f) <= fed);
  }
  if (failed) {
    const char *m;
    size_t len;
    ASSERT(rpc_framer_next(&f, &m, &len) < 0);
  }
  rpc_framer_release(&f);

  /* the whole connection: dispatch, deferred answers, cancels, outgoing requests */
  fz_io io;
  qc_buf_init(&io.out, 0);
  rpc_conn_config cfg = {methods, &fz_ops, &io, NULL, RPC_FRAMING_DETECT, max_message};
  rpc_conn *c = io.conn = rpc_conn_new(&cfg);
  nheld = 0;
  int outgoing = (int)rnd(3);
  fed = 0;
  while (fed < n && rpc_conn_is_open(c)) {
    size_t k = 1 + rnd(n - fed < 64 ? n - fed : 64);
    rpc_conn_input(c, data + fed, k);
    fed += k;
    /* our own requests, once the peer's framing is known (before that we would have
     * to guess, and the daemon never speaks first) */
    if (outgoing && rpc_conn_framing(c) != RPC_FRAMING_DETECT && rpc_conn_is_open(c)) {
      rpc_conn_request(c, "fs/read_text_file", json_object(), on_resp, NULL);
      outgoing--;
    }
    if (nheld && rnd(4) == 0) { /* answer a deferred request late */
      rpc_req *r = held[--nheld];
      rpc_req_reply(r, json_true());
    }
  }
  if (rnd(2)) rpc_conn_input_eof(c);
  while (nheld) rpc_req_reply(held[--nheld], NULL);
  rpc_conn_close(c, 1);
  rpc_conn_io_closed(c);
  check_output(&io.out);
  qc_buf_release(&io.out);
  (void)msgs;
}

TEST(mutated_inputs_never_crash_and_output_stays_well_formed) {
  const char *e = getenv("QCT_FUZZ_SEED");
  rng_state = e ? strtoull(e, NULL, 0) : 0x9E3779B97F4A7C15ull;
  if (!rng_state) rng_state = 1;
  e = getenv("QCT_FUZZ_ITERS");
#ifdef QCODER_ASAN
  int iters = e ? atoi(e) : 4000; /* ~10x slower under ASan; keep the suite quick */
#else
  int iters = e ? atoi(e) : 10000;
#endif
  rpc_methods *methods = rpc_methods_new();
  rpc_methods_add_request(methods, "echo", h_echo, NULL);
  rpc_methods_add_request(methods, "defer", h_defer, NULL);
  rpc_methods_add_request(methods, "cancellable", h_cancellable, NULL);
  rpc_methods_add_notification(methods, "note", n_note, NULL);
  qc_log_set_level(QC_LOG_ERROR); /* the warnings about bad input are expected here */
  qc_buf b;
  qc_buf_init(&b, 0);
  for (int i = 0; i < iters; i++) {
    qc_buf_reset(&b);
    int pieces = 1 + (int)rnd(4);
    for (int p = 0; p < pieces; p++) qc_buf_puts(&b, corpus[rnd(sizeof corpus / sizeof *corpus)]);
    if (i % 8 != 0) mutate(&b);
    size_t max = rnd(3) == 0 ? 64 + rnd(256) : 0;
    run_one(b.data, b.len, methods, max);
  }
  /* and some purely random byte strings */
  for (int i = 0; i < iters / 4; i++) {
    qc_buf_reset(&b);
    for (size_t k = 0, n = rnd(300); k < n; k++) qc_buf_putc(&b, (char)rnd(256));
    run_one(b.data, b.len, methods, 0);
  }
  qc_buf_release(&b);
  rpc_methods_free(methods);
  ASSERT(responses_seen > 0);
}

QC_TEST_MAIN
