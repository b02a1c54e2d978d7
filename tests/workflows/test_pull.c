/* test_pull.c — `qcoder pull` against an HTTP server running in this test (a thread on
 * 127.0.0.1 that honours Range, can cut a response mid-body, redirect like Hugging Face
 * with X-Linked-Etag, or ignore Range), then `qcoder models` and the model resolution
 * order (`qcoder models --which`).
 */
#include "tests/workflows/wf_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

/* ---- a GGUF file to serve ----------------------------------------------------------------- */

static void put_u32(qc_buf *b, uint32_t v) {
  unsigned char c[4] = {v & 255, v >> 8 & 255, v >> 16 & 255, v >> 24 & 255};
  qc_buf_append(b, c, 4);
}
static void put_u64(qc_buf *b, uint64_t v) {
  put_u32(b, (uint32_t)v);
  put_u32(b, (uint32_t)(v >> 32));
}
static void put_str(qc_buf *b, const char *s) {
  put_u64(b, strlen(s));
  qc_buf_puts(b, s);
}

/* A small valid GGUF: qwen3moe, Q4_K_M file type, one F32 tensor, `payload` bytes of data;
 * split keys when count > 0. */
static char *make_gguf(size_t payload, int split_no, int split_count, uint32_t seed, size_t *len) {
  qc_buf b;
  qc_buf_init(&b, 0);
  qc_buf_puts(&b, "GGUF");
  put_u32(&b, 3);
  put_u64(&b, 1);
  put_u64(&b, split_count ? 5 : 3);
  put_str(&b, "general.architecture");
  put_u32(&b, 8);
  put_str(&b, "qwen3moe");
  put_str(&b, "general.name");
  put_u32(&b, 8);
  put_str(&b, "pull test model");
  put_str(&b, "general.file_type");
  put_u32(&b, 4);
  put_u32(&b, 15);
  if (split_count) {
    put_str(&b, "split.no");
    put_u32(&b, 2);
    qc_buf_append(&b, (unsigned char[]){(unsigned char)split_no, 0}, 2);
    put_str(&b, "split.count");
    put_u32(&b, 2);
    qc_buf_append(&b, (unsigned char[]){(unsigned char)split_count, 0}, 2);
  }
  put_str(&b, "weights");
  put_u32(&b, 1);
  put_u64(&b, payload / 4);
  put_u32(&b, 0);
  put_u64(&b, 0);
  while (b.len % 32) qc_buf_putc(&b, 0);
  for (size_t i = 0; i < payload; i++) {
    seed = seed * 1103515245u + 12345u;
    qc_buf_putc(&b, (char)(seed >> 16));
  }
  return qc_buf_detach(&b, len);
}

/* ---- the server ---------------------------------------------------------------------------- */

typedef struct route {
  char path[256];
  const char *data;
  size_t len;
  char linked_etag[80];   /* sent on 302s and (when no redirect) on answers */
  char etag[80];
  char redirect[256];     /* 302 to this path */
  int cut_at;             /* close after this many body bytes … */
  int cuts_left;          /* … this many times */
  int ignore_range;
  int status;             /* 0: normal; else answer this status with an empty body */
} route;

typedef struct server {
  int fd, port;
  pthread_t thread;
  atomic_int stop;
  pthread_mutex_t mu;
  route routes[16];
  int n_routes;
  char log[64][600];      /* "PATH range=N" or "PATH range=-" */
  int n_log;
} server;

static route *add_route(server *s, const char *path, const char *data, size_t len) {
  route *r = &s->routes[s->n_routes++];
  memset(r, 0, sizeof *r);
  snprintf(r->path, sizeof r->path, "%s", path);
  r->data = data;
  r->len = len;
  return r;
}

static void send_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return;
    p += w;
    n -= (size_t)w;
  }
}

static void serve_one(server *s, int c) {
  char req[8192];
  size_t n = 0;
  while (n < sizeof req - 1) {
    struct pollfd p = {c, POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0) return;
    ssize_t k = recv(c, req + n, sizeof req - 1 - n, 0);
    if (k <= 0) return;
    n += (size_t)k;
    req[n] = '\0';
    if (strstr(req, "\r\n\r\n")) break;
  }
  char path[512] = "";
  if (sscanf(req, "GET %511s", path) != 1) return;
  char *q = strchr(path, '?');
  if (q) *q = '\0';
  long long from = -1;
  const char *rh = strcasestr(req, "\r\nRange: bytes=");
  if (rh) from = atoll(rh + 15);
  pthread_mutex_lock(&s->mu);
  if (s->n_log < 64) {
    if (from >= 0) snprintf(s->log[s->n_log++], sizeof s->log[0], "%s range=%lld", path, from);
    else snprintf(s->log[s->n_log++], sizeof s->log[0], "%s range=-", path);
  }
  route *r = NULL;
  for (int i = 0; i < s->n_routes; i++)
    if (!strcmp(s->routes[i].path, path)) r = &s->routes[i];
  int cut = -1;
  if (r && r->cuts_left > 0) {
    r->cuts_left--;
    cut = r->cut_at;
  }
  pthread_mutex_unlock(&s->mu);
  char head[1024];
  if (!r) {
    const char *m = "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found";
    send_all(c, m, strlen(m));
    return;
  }
  if (r->status) {
    int hn = snprintf(head, sizeof head, "HTTP/1.1 %d Nope\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", r->status);
    send_all(c, head, (size_t)hn);
    return;
  }
  if (*r->redirect) {
    int hn = snprintf(head, sizeof head,
                      "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:%d%s\r\nX-Linked-Etag: \"%s\"\r\n"
                      "X-Linked-Size: %zu\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                      s->port, r->redirect, r->linked_etag, r->len);
    send_all(c, head, (size_t)hn);
    return;
  }
  size_t start = 0;
  int hn;
  char extra[256] = "";
  if (*r->linked_etag) snprintf(extra, sizeof extra, "X-Linked-Etag: \"%s\"\r\n", r->linked_etag);
  if (*r->etag) snprintf(extra + strlen(extra), sizeof extra - strlen(extra), "ETag: \"%s\"\r\n", r->etag);
  if (from >= 0 && !r->ignore_range) {
    if ((size_t)from >= r->len) {
      hn = snprintf(head, sizeof head,
                    "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */%zu\r\nContent-Length: 0\r\n"
                    "Connection: close\r\n\r\n",
                    r->len);
      send_all(c, head, (size_t)hn);
      return;
    }
    start = (size_t)from;
    hn = snprintf(head, sizeof head,
                  "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes %zu-%zu/%zu\r\nContent-Length: %zu\r\n%s"
                  "Connection: close\r\n\r\n",
                  start, r->len - 1, r->len, r->len - start, extra);
  } else {
    hn = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n", r->len,
                  extra);
  }
  send_all(c, head, (size_t)hn);
  size_t body = r->len - start;
  if (cut >= 0 && (size_t)cut < body) body = (size_t)cut;
  send_all(c, r->data + start, body);
}

static void *serve(void *arg) {
  server *s = arg;
  while (!atomic_load(&s->stop)) {
    struct pollfd p = {s->fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    int c = accept(s->fd, NULL, NULL);
    if (c < 0) continue;
    serve_one(s, c);
    shutdown(c, SHUT_RDWR);
    close(c);
  }
  return NULL;
}

static void server_start(server *s) {
  memset(s, 0, sizeof *s);
  pthread_mutex_init(&s->mu, NULL);
  s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ASSERT(bind(s->fd, (struct sockaddr *)&a, sizeof a) == 0);
  socklen_t l = sizeof a;
  getsockname(s->fd, (struct sockaddr *)&a, &l);
  s->port = ntohs(a.sin_port);
  ASSERT(listen(s->fd, 16) == 0);
  pthread_create(&s->thread, NULL, serve, s);
}

static void server_stop(server *s) {
  atomic_store(&s->stop, 1);
  pthread_join(s->thread, NULL);
  close(s->fd);
  pthread_mutex_destroy(&s->mu);
}

static int logged(server *s, const char *entry) {
  int hit = 0;
  pthread_mutex_lock(&s->mu);
  for (int i = 0; i < s->n_log; i++) hit |= !strcmp(s->log[i], entry);
  pthread_mutex_unlock(&s->mu);
  return hit;
}

/* ---- helpers ------------------------------------------------------------------------------- */

static char *models_dir(void) { return qc_asprintf("%s/models", getenv("QCODER_CACHE_DIR")); }

static int same_bytes(const char *path, const char *data, size_t len) {
  size_t n = 0;
  char *s = qct_read_file(path, &n);
  int same = s && n == len && !memcmp(s, data, len);
  free(s);
  return same;
}

static char *in_models(const char *name) {
  char *d = models_dir();
  char *p = qc_asprintf("%s/%s", d, name);
  free(d);
  return p;
}

/* ---- tests --------------------------------------------------------------------------------- */

TEST(pull_verifies_the_linked_etag_and_lists_the_model) {
  char *env = wf_env("wf-pull");
  size_t len;
  char *g = make_gguf(200000, 0, 0, 1, &len);
  char sha[65];
  qc_sha256_hex(g, len, sha);
  server s;
  server_start(&s);
  route *r = add_route(&s, "/org/repo/resolve/main/Tiny-Q4_K_M.gguf", g, len);
  snprintf(r->linked_etag, sizeof r->linked_etag, "%s", sha);
  char *out = NULL;
  int rc = wf_sh(&out, "'%s' pull http://127.0.0.1:%d/org/repo/resolve/main/Tiny-Q4_K_M.gguf?download=true 2>&1",
                 qct_qcoder_bin(), s.port);
  ASSERT_EQ_INT(rc, 0);
  ASSERT_CONTAINS(out, "verified (the server's X-Linked-Etag)");
  ASSERT_CONTAINS(out, "pulled Tiny-Q4_K_M");
  char *f = in_models("Tiny-Q4_K_M.gguf"), *part = in_models("Tiny-Q4_K_M.gguf.part");
  ASSERT(same_bytes(f, g, len));
  ASSERT(access(part, F_OK) != 0);
  free(out);
  /* a second pull finds it */
  ASSERT_EQ_INT(wf_sh(&out, "'%s' pull http://127.0.0.1:%d/org/repo/resolve/main/Tiny-Q4_K_M.gguf 2>&1", qct_qcoder_bin(),
                      s.port),
                0);
  ASSERT_CONTAINS(out, "already in the cache");
  free(out);
  /* models lists it from the header */
  ASSERT_EQ_INT(wf_sh(&out, "'%s' models --json", qct_qcoder_bin()), 0);
  json_t *j = json_loads(out, 0, NULL);
  json_t *m = json_array_get(json_object_get(j, "models"), 0);
  ASSERT_STR_EQ(json_string_value(json_object_get(m, "name")), "Tiny-Q4_K_M");
  ASSERT_STR_EQ(json_string_value(json_object_get(m, "architecture")), "qwen3moe");
  ASSERT_STR_EQ(json_string_value(json_object_get(m, "quantization")), "Q4_K_M");
  ASSERT(json_is_true(json_object_get(m, "complete")));
  ASSERT(json_is_true(json_object_get(m, "default")));
  ASSERT_EQ_INT(json_integer_value(json_object_get(m, "size")), (long long)len);
  json_decref(j);
  free(out);
  ASSERT_EQ_INT(wf_sh(&out, "'%s' models", qct_qcoder_bin()), 0);
  ASSERT_CONTAINS(out, "* Tiny-Q4_K_M");
  ASSERT_CONTAINS(out, "qwen3moe   Q4_K_M");
  free(out);
  server_stop(&s);
  free(f), free(part), free(g), free(env);
}

TEST(pull_resumes_after_a_cut_connection_and_across_runs) {
  char *env = wf_env("wf-pull");
  size_t len;
  char *g = make_gguf(300000, 0, 0, 2, &len);
  char sha[65];
  qc_sha256_hex(g, len, sha);
  server s;
  server_start(&s);
  route *r = add_route(&s, "/m/cut.gguf", g, len);
  snprintf(r->linked_etag, sizeof r->linked_etag, "%s", sha);
  r->cut_at = 100000;
  r->cuts_left = 2; /* two drops in one run: it keeps going */
  char *out = NULL;
  ASSERT_EQ_INT(wf_sh(&out, "'%s' pull http://127.0.0.1:%d/m/cut.gguf 2>&1", qct_qcoder_bin(), s.port), 0);
  ASSERT_CONTAINS(out, "retrying");
  ASSERT(logged(&s, "/m/cut.gguf range=-"));
  ASSERT(logged(&s, "/m/cut.gguf range=100000"));
  ASSERT(logged(&s, "/m/cut.gguf range=200000"));
  char *f = in_models("cut.gguf");
  ASSERT(same_bytes(f, g, len));
  free(out);
  /* across runs: a part file left by an earlier run is continued with Range */
  route *r2 = add_route(&s, "/m/resume.gguf", g, len);
  snprintf(r2->linked_etag, sizeof r2->linked_etag, "%s", sha);
  char *part = in_models("resume.gguf.part");
  FILE *pf = fopen(part, "wb");
  fwrite(g, 1, 70000, pf);
  fclose(pf);
  ASSERT_EQ_INT(wf_sh(&out, "'%s' pull http://127.0.0.1:%d/m/resume.gguf 2>&1", qct_qcoder_bin(), s.port), 0);
  ASSERT_CONTAINS(out, "resuming");
  ASSERT(logged(&s, "/m/resume.gguf range=70000"));
  ASSERT(!logged(&s, "/m/resume.gguf range=-"));
  char *f2 = in_models("resume.gguf");
  ASSERT(same_bytes(f2, g, len));
  ASSERT(access(part, F_OK) != 0);
  free(out);
  /* a server that ignores Range: the part starts over and still ends right */
  route *r3 = add_route(&s, "/m/norange.gguf", g, len);
  snprintf(r3->linked_etag, sizeof r3->linked_etag, "%s", sha);
  r3->ignore_range = 1;
  char *part3 = in_models("norange.gguf.part");
  pf = fopen(part3, "wb");
  fwrite(g, 1, 5000, pf);
  fclose(pf);
  ASSERT_EQ_INT(wf_sh(NULL, "'%s' pull --quiet http://127.0.0.1:%d/m/norange.gguf", qct_qcoder_bin(), s.port), 0);
  char *f3 = in_models("norange.gguf");
  ASSERT(same_bytes(f3, g, len));
  server_stop(&s);
  free(f), free(f2), free(f3), free(part), free(part3), free(g), free(env);
}

TEST(pull_refuses_a_bad_checksum_and_non_gguf_files) {
  char *env = wf_env("wf-pull");
  size_t len;
  char *g = make_gguf(50000, 0, 0, 3, &len);
  char sha[65];
  qc_sha256_hex(g, len, sha);
  server s;
  server_start(&s);
  route *r = add_route(&s, "/bad.gguf", g, len);
  snprintf(r->linked_etag, sizeof r->linked_etag, "%064d", 7); /* a sha256 that is not this file's */
  char *out = NULL;
  ASSERT_EQ_INT(wf_sh(&out, "'%s' pull http://127.0.0.1:%d/bad.gguf 2>&1", qct_qcoder_bin(), s.port), 1);
  ASSERT_CONTAINS(out, "SHA-256 mismatch");
  char *f = in_models("bad.gguf"), *part = in_models("bad.gguf.part");
  ASSERT(access(f, F_OK) != 0);
  ASSERT(access(part, F_OK) != 0);
  free(out);
  /* --sha256 is checked too, and wins over the server */
  route *r2 = add_route(&s, "/plain.gguf", g, len);
  (void)r2;
  ASSERT_EQ_INT(wf_sh(NULL, "'%s' pull --quiet --sha256 %064d http://127.0.0.1:%d/plain.gguf", qct_qcoder_bin(), 1, s.port),
                1);
  ASSERT_EQ_INT(wf_sh(&out, "'%s' pull --sha256 %s http://127.0.0.1:%d/plain.gguf 2>&1", qct_qcoder_bin(), sha, s.port), 0);
  ASSERT_CONTAINS(out, "verified (--sha256)");
  free(out);
  /* an ETag that is a sha256 counts when there is no X-Linked-Etag */
  route *r3 = add_route(&s, "/etag.gguf", g, len);
  snprintf(r3->etag, sizeof r3->etag, "%s", sha);
  ASSERT_EQ_INT(wf_sh(&out, "'%s' pull http://127.0.0.1:%d/etag.gguf 2>&1", qct_qcoder_bin(), s.port), 0);
  ASSERT_CONTAINS(out, "verified (the server's ETag)");
  free(out);
  /* not a GGUF file */
  static const char html[] = "<html>this is a login page, not a model</html>";
  add_route(&s, "/html.gguf", html, sizeof html - 1);
  ASSERT_EQ_INT(wf_sh(&out, "'%s' pull http://127.0.0.1:%d/html.gguf 2>&1", qct_qcoder_bin(), s.port), 1);
  ASSERT_CONTAINS(out, "not a usable GGUF file");
  char *hf = in_models("html.gguf"), *hp = in_models("html.gguf.part");
  ASSERT(access(hf, F_OK) != 0 && access(hp, F_OK) != 0);
  free(out);
  /* HTTP errors */
  ASSERT_EQ_INT(wf_sh(&out, "'%s' pull http://127.0.0.1:%d/missing.gguf 2>&1", qct_qcoder_bin(), s.port), 1);
  ASSERT_CONTAINS(out, "HTTP 404");
  free(out);
  route *r4 = add_route(&s, "/gated.gguf", g, len);
  r4->status = 401;
  ASSERT_EQ_INT(wf_sh(&out, "'%s' pull http://127.0.0.1:%d/gated.gguf 2>&1", qct_qcoder_bin(), s.port), 1);
  ASSERT_CONTAINS(out, "HF_TOKEN");
  free(out);
  /* usage */
  ASSERT_EQ_INT(wf_sh(NULL, "'%s' pull 2>/dev/null", qct_qcoder_bin()), 2);
  ASSERT_EQ_INT(wf_sh(NULL, "'%s' pull no-such-alias 2>/dev/null", qct_qcoder_bin()), 2);
  ASSERT_EQ_INT(wf_sh(NULL, "'%s' pull http://127.0.0.1:%d/notes.txt 2>/dev/null", qct_qcoder_bin(), s.port), 2);
  server_stop(&s);
  free(f), free(part), free(hf), free(hp), free(g), free(env);
}

TEST(pull_fetches_every_part_of_a_split_model_through_a_redirect) {
  char *env = wf_env("wf-pull");
  server s;
  server_start(&s);
  char *parts[3];
  size_t lens[3];
  for (int i = 0; i < 3; i++) {
    parts[i] = make_gguf(40000 + 1000 * (size_t)i, i, 3, 10 + (uint32_t)i, &lens[i]);
    char sha[65];
    qc_sha256_hex(parts[i], lens[i], sha);
    char src[128], dst[128];
    snprintf(src, sizeof src, "/o/r/resolve/main/Q4_K_M/Big-Q4_K_M-%05d-of-00003.gguf", i + 1);
    snprintf(dst, sizeof dst, "/cdn/part%d", i + 1);
    route *r = add_route(&s, src, parts[i], lens[i]); /* Hugging Face: resolve → 302 (+ X-Linked-Etag) → CDN */
    snprintf(r->linked_etag, sizeof r->linked_etag, "%s", sha);
    snprintf(r->redirect, sizeof r->redirect, "%s", dst);
    add_route(&s, dst, parts[i], lens[i]);
  }
  char *out = NULL;
  ASSERT_EQ_INT(wf_sh(&out, "'%s' pull http://127.0.0.1:%d/o/r/resolve/main/Q4_K_M/Big-Q4_K_M-00002-of-00003.gguf 2>&1",
                      qct_qcoder_bin(), s.port),
                0);
  for (int i = 0; i < 3; i++) {
    char name[64];
    snprintf(name, sizeof name, "Big-Q4_K_M-%05d-of-00003.gguf", i + 1);
    char *p = in_models(name);
    ASSERT_MSG(same_bytes(p, parts[i], lens[i]), "part %d", i + 1);
    free(p);
  }
  ASSERT_CONTAINS(out, "part 3/3");
  free(out);
  ASSERT_EQ_INT(wf_sh(&out, "'%s' models --json", qct_qcoder_bin()), 0);
  json_t *j = json_loads(out, 0, NULL);
  json_t *ms = json_object_get(j, "models");
  ASSERT_EQ_INT(json_array_size(ms), 1);
  json_t *m = json_array_get(ms, 0);
  ASSERT_STR_EQ(json_string_value(json_object_get(m, "name")), "Big-Q4_K_M");
  ASSERT_EQ_INT(json_integer_value(json_object_get(m, "parts")), 3);
  ASSERT(json_is_true(json_object_get(m, "complete")));
  ASSERT_EQ_INT(json_integer_value(json_object_get(m, "size")), (long long)(lens[0] + lens[1] + lens[2]));
  json_decref(j);
  free(out);
  /* the split NAME resolves to its first part */
  ASSERT_EQ_INT(wf_sh(&out, "'%s' models --which --model Big-Q4_K_M --json", qct_qcoder_bin()), 0);
  ASSERT_CONTAINS(out, "Big-Q4_K_M-00001-of-00003.gguf");
  free(out);
  server_stop(&s);
  for (int i = 0; i < 3; i++) free(parts[i]);
  free(env);
}

TEST(pull_alias_through_hf_endpoint_and_the_resolution_order) {
  char *env = wf_env("wf-pull");
  size_t len;
  char *g = make_gguf(30000, 0, 0, 4, &len);
  char sha[65];
  qc_sha256_hex(g, len, sha);
  server s;
  server_start(&s);
  route *r = add_route(&s, "/unsloth/Qwen3-Coder-30B-A3B-Instruct-GGUF/resolve/main/Qwen3-Coder-30B-A3B-Instruct-Q4_K_M.gguf",
                       g, len);
  snprintf(r->linked_etag, sizeof r->linked_etag, "%s", sha);
  char *ep = qc_asprintf("http://127.0.0.1:%d", s.port);
  setenv("HF_ENDPOINT", ep, 1);
  char *out = NULL;
  ASSERT_EQ_INT(wf_sh(&out, "'%s' pull qwen3-coder-30b-a3b 2>&1", qct_qcoder_bin()), 0);
  unsetenv("HF_ENDPOINT");
  ASSERT_CONTAINS(out, "--model qwen3-coder-30b-a3b:q4_k_m");
  free(out);
  char *cached = in_models("Qwen3-Coder-30B-A3B-Instruct-Q4_K_M.gguf");
  /* resolution order: --model, --remote, QCODER_MODEL, config model, config remote, cache */
  char *cfgdir = qc_asprintf("%s", getenv("QCODER_CONFIG_DIR"));
  char *cfg = qc_asprintf("%s/config.json", cfgdir);
  char *script = qc_asprintf("%s/s.json", env);
  qct_write_file(script, "[]");
  ASSERT_EQ_INT(wf_sh(&out, "'%s' models --which --json", qct_qcoder_bin()), 0);
  json_t *j = json_loads(out, 0, NULL);
  ASSERT_STR_EQ(json_string_value(json_object_get(j, "model")), cached);
  ASSERT_CONTAINS(json_string_value(json_object_get(j, "source")), "cache");
  json_decref(j);
  free(out);
  qct_write_file(cfg, "{\"remote\": \"http://gpu1:8000/v1\"}");
  ASSERT_EQ_INT(wf_sh(&out, "'%s' models --which --json", qct_qcoder_bin()), 0);
  ASSERT_CONTAINS(out, "\"model\":\"http://gpu1:8000/v1\"");
  ASSERT_CONTAINS(out, "(remote)");
  free(out);
  qct_write_file(cfg, "{\"remote\": \"http://gpu1:8000/v1\", \"model\": \"qwen3-coder-30b-a3b:q4_k_m\"}");
  ASSERT_EQ_INT(wf_sh(&out, "'%s' models --which --json", qct_qcoder_bin()), 0);
  ASSERT_CONTAINS(out, cached);
  ASSERT_CONTAINS(out, "(model)");
  free(out);
  ASSERT_EQ_INT(wf_sh(&out, "QCODER_MODEL='script:%s' '%s' models --which --json", script, qct_qcoder_bin()), 0);
  ASSERT_CONTAINS(out, "\"source\":\"QCODER_MODEL\"");
  free(out);
  ASSERT_EQ_INT(wf_sh(&out, "QCODER_MODEL='script:%s' '%s' models --which --remote https://h:1/v1 --json", script,
                      qct_qcoder_bin()),
                0);
  ASSERT_CONTAINS(out, "\"model\":\"https://h:1/v1\",\"source\":\"--remote\"");
  free(out);
  ASSERT_EQ_INT(wf_sh(&out, "QCODER_MODEL='script:%s' '%s' models --which --model Qwen3-Coder-30B-A3B-Instruct-Q4_K_M --json",
                      script, qct_qcoder_bin()),
                0);
  ASSERT_CONTAINS(out, "\"source\":\"--model\"");
  ASSERT_CONTAINS(out, cached);
  free(out);
  /* names that cannot be used are errors, not fallbacks */
  ASSERT_EQ_INT(wf_sh(NULL, "'%s' models --which --model qwen3-coder-480b 2>/dev/null", qct_qcoder_bin()), 1);
  qct_write_file(cfg, "{\"model\": ");
  ASSERT_EQ_INT(wf_sh(&out, "'%s' models --which 2>&1", qct_qcoder_bin()), 1);
  ASSERT_CONTAINS(out, "not valid JSON");
  free(out);
  server_stop(&s);
  free(ep), free(cached), free(cfgdir), free(cfg), free(script), free(g), free(env);
}

QC_TEST_MAIN
