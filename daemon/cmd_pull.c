/* cmd_pull.c — `qcoder pull NAME|URL`: download a GGUF model into the cache.
 *
 * Model files are big (18 GB for Qwen3-Coder-30B-A3B at Q4_K_M, 290 GB in six parts for
 * the 480B), so the download is built to be interrupted:
 *
 *  - bytes go to NAME.part next to the final file; a new attempt asks for the rest with an
 *    HTTP Range request (a server that ignores it and sends 200 restarts the part from
 *    zero; 416 with the full size means the part is already whole);
 *  - inside one run a dropped connection or a stalled transfer (no byte for 60 s) is
 *    retried from where it stopped, with a growing pause, until no progress is made
 *    WF_PULL_MAX_FAILURES times in a row; across runs the part file is resumed;
 *  - the SHA-256 is computed while writing (after re-reading the part's existing bytes on
 *    a resume) and checked against --sha256, else Hugging Face's X-Linked-Etag (the LFS
 *    object's sha256, sent on the redirect) or an ETag that is a bare sha256; a mismatch
 *    deletes the part file;
 *  - the part is checked to be a GGUF file (header and tensor offsets, workflow_gguf.c)
 *    and only then renamed to its final name, so a file in the cache is always complete;
 *  - an flock on the part file keeps two pulls of the same file from interleaving.
 * Split models ("…-00001-of-00006.gguf") are fetched part by part, each as above.
 *
 * Ctrl-C stops the transfer, keeps the part file and exits 3; running the same command
 * again resumes.
 */
#include "daemon/commands.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
#include "daemon/workflow.h"

const char cmd_pull_usage[] =
    "usage: qcoder pull NAME|URL [--sha256 HEX] [--quiet]\n"
    "\n"
    "Download a GGUF model into the model cache ($QCODER_CACHE_DIR/models, else\n"
    "$XDG_CACHE_HOME/qcoder/models, else ~/.cache/qcoder/models), where --model NAME and\n"
    "'qcoder models' find it.\n"
    "\n"
    "URL is an http(s) URL of a .gguf file, typically a Hugging Face 'resolve' URL:\n"
    "  https://huggingface.co/ORG/REPO/resolve/main/FILE.gguf\n"
    "A split model (FILE-00001-of-00006.gguf) is fetched whole: every part.\n"
    "\n"
    "NAME is one of these built-in aliases for unsloth's Qwen3-Coder GGUFs on Hugging Face\n"
    "(HF_ENDPOINT replaces https://huggingface.co, as in huggingface_hub):\n"
    "  qwen3-coder-30b-a3b:q4_k_m    Qwen3-Coder-30B-A3B-Instruct-Q4_K_M.gguf    ~18.6 GB\n"
    "  qwen3-coder-30b-a3b:q6_k      Qwen3-Coder-30B-A3B-Instruct-Q6_K.gguf      ~25.1 GB\n"
    "  qwen3-coder-30b-a3b:q8_0      Qwen3-Coder-30B-A3B-Instruct-Q8_0.gguf      ~32.5 GB\n"
    "  qwen3-coder-480b-a35b:q2_k    Qwen3-Coder-480B-A35B-Instruct-Q2_K, 4 parts   ~176 GB\n"
    "  qwen3-coder-480b-a35b:q3_k_m  Qwen3-Coder-480B-A35B-Instruct-Q3_K_M, 5 parts ~233 GB\n"
    "  qwen3-coder-480b-a35b:q4_k_m  Qwen3-Coder-480B-A35B-Instruct-Q4_K_M, 6 parts ~290 GB\n"
    "  (qwen3-coder-30b-a3b and qwen3-coder-480b-a35b mean their q4_k_m)\n"
    "\n"
    "The download resumes where it stopped (NAME.part, HTTP Range requests), within one\n"
    "run after a dropped connection and across runs. The SHA-256 is checked against\n"
    "--sha256 HEX, else the server's X-Linked-Etag / ETag when it is a sha256 (Hugging\n"
    "Face sends one for every LFS file): a mismatch deletes the partial file. The file is\n"
    "checked to be GGUF before it appears under its final name. A token in $HF_TOKEN is\n"
    "sent to the first host (gated repositories). A progress bar is drawn on a terminal.\n"
    "\n"
    "  --sha256 HEX  the expected SHA-256 (single-file models only)\n"
    "  --quiet       no progress output\n"
    "\n"
    "Exit status: 0 pulled (or already there); 1 the download failed (HTTP error, checksum\n"
    "mismatch, not a GGUF file); 2 usage error; 3 interrupted (run again to resume).\n";

static atomic_int g_stop;

static void on_interrupt(void *user) {
  (void)user;
  atomic_store(&g_stop, 1);
}

/* ---- one file -------------------------------------------------------------------------- */

typedef struct xfer {
  /* the part file */
  int fd;
  uint64_t have;            /* bytes in the part file */
  EVP_MD_CTX *sha;
  /* per response (reset at each status line) */
  long status;
  uint64_t range_start;     /* Content-Range: bytes START-END/TOTAL */
  uint64_t range_total;
  int has_range;
  uint64_t content_length;
  char etag[80];
  /* sticky over the redirect chain */
  char linked_etag[80];
  uint64_t linked_size;
  /* the body */
  int body_started;
  int write_error;
  char why[256];
  uint64_t got_this_attempt;
  /* progress */
  const char *label;
  int tty, quiet;
  uint64_t total;           /* expected size, 0 when unknown */
  uint64_t start_have;      /* bytes present when this run started */
  uint64_t t0_ms, last_draw_ms;
  int last_pct;
} xfer;

static void trim(char *s) {
  size_t n = strlen(s);
  while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
}

/* A quoted or weak ETag reduced to its value; 1 when it is a sha256 (64 hex digits). */
static int etag_sha256(const char *tag, char out[65]) {
  const char *s = tag;
  if (!strncmp(s, "W/", 2)) s += 2;
  if (*s == '"') s++;
  size_t n = 0;
  while (s[n] && s[n] != '"') n++;
  if (n != 64) return 0;
  for (size_t i = 0; i < 64; i++) {
    if (!isxdigit((unsigned char)s[i])) return 0;
    out[i] = (char)tolower((unsigned char)s[i]);
  }
  out[64] = '\0';
  return 1;
}

static size_t on_header(char *buf, size_t size, size_t n, void *user) {
  xfer *x = user;
  size_t len = size * n;
  char line[512];
  size_t k = len < sizeof line - 1 ? len : sizeof line - 1;
  memcpy(line, buf, k);
  line[k] = '\0';
  trim(line);
  if (!strncmp(line, "HTTP/", 5)) {
    const char *sp = strchr(line, ' ');
    x->status = sp ? strtol(sp + 1, NULL, 10) : 0;
    x->has_range = 0;
    x->range_start = x->range_total = x->content_length = 0;
    x->etag[0] = '\0';
    return len;
  }
  char *colon = strchr(line, ':');
  if (!colon) return len;
  *colon = '\0';
  char *v = colon + 1;
  while (*v == ' ' || *v == '\t') v++;
  if (!strcasecmp(line, "content-range")) {
    unsigned long long a, b, t;
    if (sscanf(v, "bytes %llu-%llu/%llu", &a, &b, &t) == 3) {
      x->has_range = 1;
      x->range_start = a;
      x->range_total = t;
    } else if (sscanf(v, "bytes */%llu", &t) == 1) {
      x->range_total = t;
    }
  } else if (!strcasecmp(line, "content-length")) {
    x->content_length = strtoull(v, NULL, 10);
  } else if (!strcasecmp(line, "etag")) {
    snprintf(x->etag, sizeof x->etag, "%s", v);
  } else if (!strcasecmp(line, "x-linked-etag")) {
    snprintf(x->linked_etag, sizeof x->linked_etag, "%s", v);
  } else if (!strcasecmp(line, "x-linked-size")) {
    x->linked_size = strtoull(v, NULL, 10);
  }
  return len;
}

static void draw(xfer *x, int final) {
  if (x->quiet) return;
  uint64_t now = qc_now_ms();
  if (!final && now - x->last_draw_ms < WF_PULL_REDRAW_MS) return;
  x->last_draw_ms = now;
  double secs = (double)(now - x->t0_ms) / 1000.0;
  double rate = secs > 0.2 ? (double)(x->have - x->start_have) / secs : 0;
  if (x->tty) {
    char line[256];
    int w = wf_term_width(2);
    int lw = (int)strlen(x->label);
    if (lw > w / 3) lw = w / 3;
    wf_fmt_progress(line, sizeof line, w - lw - 2, x->have, x->total, rate);
    fprintf(stderr, "\r%.*s  %s\033[K%s", lw, x->label, line, final ? "\n" : "");
    fflush(stderr);
  } else if (x->total) {
    int pct = (int)(x->have * 100 / x->total);
    if (pct / 10 > x->last_pct / 10 || (final && pct != x->last_pct)) {
      char a[32], b[32];
      wf_fmt_bytes(x->have, a, sizeof a);
      wf_fmt_bytes(x->total, b, sizeof b);
      fprintf(stderr, "pull: %s %d%% (%s of %s)\n", x->label, pct, a, b);
      x->last_pct = pct;
    }
  }
}

static size_t on_body(char *buf, size_t size, size_t n, void *user) {
  xfer *x = user;
  size_t len = size * n;
  if (!x->body_started) {
    x->body_started = 1;
    if (x->status == 206) {
      if (!x->has_range || x->range_start != x->have) {
        snprintf(x->why, sizeof x->why, "the server answered a range request from byte %llu with bytes from %llu",
                 (unsigned long long)x->have, (unsigned long long)x->range_start);
        x->write_error = 1;
        return 0;
      }
      if (x->range_total) x->total = x->range_total;
    } else if (x->status == 200) {
      if (x->have) { /* the server ignored Range: start over */
        if (ftruncate(x->fd, 0) != 0 || lseek(x->fd, 0, SEEK_SET) != 0) {
          snprintf(x->why, sizeof x->why, "cannot truncate the part file: %s", strerror(errno));
          x->write_error = 1;
          return 0;
        }
        EVP_DigestInit_ex(x->sha, EVP_sha256(), NULL);
        x->have = x->start_have = 0;
      }
      if (x->content_length) x->total = x->content_length;
    } else {
      return len; /* an error page: read and drop it, the status decides */
    }
  }
  if (x->status != 200 && x->status != 206) return len;
  for (size_t off = 0; off < len;) {
    ssize_t w = write(x->fd, buf + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      snprintf(x->why, sizeof x->why, "cannot write the part file: %s", strerror(errno));
      x->write_error = 1;
      return 0;
    }
    off += (size_t)w;
  }
  EVP_DigestUpdate(x->sha, buf, len);
  x->have += len;
  x->got_this_attempt += len;
  draw(x, 0);
  return len;
}

static int on_progress(void *user, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
  (void)user, (void)dt, (void)dn, (void)ut, (void)un;
  return atomic_load(&g_stop) ? 1 : 0;
}

static void nap_ms(int ms) {
  for (int t = 0; t < ms && !atomic_load(&g_stop); t += 50) {
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
  }
}

/* Hash the part file's existing bytes into x->sha. */
static int hash_existing(xfer *x) {
  if (!x->have) return 0;
  if (!x->quiet) {
    char a[32];
    wf_fmt_bytes(x->have, a, sizeof a);
    fprintf(stderr, "pull: resuming %s: checking the %s already downloaded\n", x->label, a);
  }
  char *buf = malloc(WF_PULL_HASH_CHUNK);
  if (!buf) return -1;
  uint64_t left = x->have;
  off_t pos = 0;
  while (left) {
    size_t want = left < WF_PULL_HASH_CHUNK ? (size_t)left : WF_PULL_HASH_CHUNK;
    ssize_t r = pread(x->fd, buf, want, pos);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      free(buf);
      return -1;
    }
    EVP_DigestUpdate(x->sha, buf, (size_t)r);
    pos += r;
    left -= (uint64_t)r;
    if (atomic_load(&g_stop)) {
      free(buf);
      return -1;
    }
  }
  free(buf);
  return 0;
}

enum { PULL_OK = 0, PULL_FAILED = 1, PULL_INTERRUPTED = 3 };

/* Download url to dir/filename. expect_sha: 64 lowercase hex or NULL. */
static int pull_file(const char *url, const char *dir, const char *filename, const char *expect_sha,
                     const char *label, int quiet) {
  char *final = qc_path_join(dir, filename);
  char *part = qc_asprintf("%s.part", final);
  int rc = PULL_FAILED;
  xfer x;
  memset(&x, 0, sizeof x);
  x.fd = -1;
  x.label = label;
  x.quiet = quiet;
  x.tty = isatty(2);
  x.last_pct = -1;
  CURL *c = NULL;
  struct curl_slist *hdrs = NULL;
  struct stat st;
  if (!final || !part) goto out;
  if (stat(final, &st) == 0) {
    if (!quiet) fprintf(stderr, "pull: %s is already in the cache (%s)\n", filename, final);
    rc = PULL_OK;
    goto out;
  }
  x.fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (x.fd < 0) {
    fprintf(stderr, "qcoder pull: cannot open %s: %s\n", part, strerror(errno));
    goto out;
  }
  if (flock(x.fd, LOCK_EX | LOCK_NB) != 0) {
    fprintf(stderr, "qcoder pull: another qcoder pull is downloading %s\n", part);
    goto out;
  }
  if (fstat(x.fd, &st) != 0) goto out;
  x.have = x.start_have = (uint64_t)st.st_size;
  if (lseek(x.fd, 0, SEEK_END) < 0) goto out;
  x.sha = EVP_MD_CTX_new();
  if (!x.sha || !EVP_DigestInit_ex(x.sha, EVP_sha256(), NULL)) goto out;
  if (hash_existing(&x) != 0) {
    if (atomic_load(&g_stop)) rc = PULL_INTERRUPTED;
    else fprintf(stderr, "qcoder pull: cannot read %s\n", part);
    goto out;
  }
  c = curl_easy_init();
  if (!c) goto out;
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, WF_PULL_MAX_REDIRECTS);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_USERAGENT, "qcoder-pull/0.1");
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, WF_PULL_CONNECT_TIMEOUT_S);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, WF_PULL_STALL_S);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  const char *token = getenv("HF_TOKEN");
  if (token && *token) {
    /* libcurl sends it to the first host only, never to the CDN a redirect leads to */
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
    curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, token);
  }
  x.t0_ms = qc_now_ms();
  int failures = 0, pause_ms = WF_PULL_RETRY_FIRST_MS;
  int done = 0;
  while (!done) {
    char range[64];
    if (x.have) {
      snprintf(range, sizeof range, "%llu-", (unsigned long long)x.have);
      curl_easy_setopt(c, CURLOPT_RANGE, range);
    } else {
      curl_easy_setopt(c, CURLOPT_RANGE, NULL);
    }
    x.body_started = 0;
    x.got_this_attempt = 0;
    x.why[0] = '\0';
    CURLcode cr = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (atomic_load(&g_stop)) {
      if (x.tty && !quiet) fputc('\n', stderr);
      rc = PULL_INTERRUPTED;
      goto out;
    }
    if (x.write_error) {
      fprintf(stderr, "\nqcoder pull: %s: %s\n", filename, x.why);
      goto out;
    }
    if (cr == CURLE_OK && status == 416 && x.have && x.range_total == x.have) {
      x.total = x.have; /* the part was already whole */
      done = 1;
      break;
    }
    if (cr == CURLE_OK && status == 416) { /* the part is longer than the file: start over */
      if (ftruncate(x.fd, 0) != 0 || lseek(x.fd, 0, SEEK_SET) != 0) goto out;
      EVP_DigestInit_ex(x.sha, EVP_sha256(), NULL);
      x.have = x.start_have = 0;
      continue;
    }
    if (cr == CURLE_OK && status >= 400) {
      fprintf(stderr, "\nqcoder pull: %s answered HTTP %ld%s\n", url, status,
              status == 401 || status == 403 ? " (a gated or private repository? put an access token in $HF_TOKEN)"
              : status == 404              ? " (no such file: check the name and the repository)"
                                           : "");
      goto out;
    }
    if (cr == CURLE_OK && (status == 200 || status == 206) && (!x.total || x.have == x.total)) {
      done = 1;
      break;
    }
    /* cut short, refused, stalled: try again from where we are */
    if (x.got_this_attempt) {
      failures = 0;
      pause_ms = WF_PULL_RETRY_FIRST_MS;
    }
    if (++failures >= WF_PULL_MAX_FAILURES) {
      fprintf(stderr, "\nqcoder pull: %s: giving up after %d attempts without progress: %s\n", filename, failures,
              cr != CURLE_OK ? curl_easy_strerror(cr) : "the transfer ended early");
      fprintf(stderr, "qcoder pull: %s keeps what arrived; run the same command again to resume\n", part);
      goto out;
    }
    if (!quiet) {
      char a[32];
      wf_fmt_bytes(x.have, a, sizeof a);
      fprintf(stderr, "%spull: %s: %s at %s; retrying in %.1fs\n", x.tty ? "\n" : "", filename,
              cr != CURLE_OK ? curl_easy_strerror(cr) : "the connection closed early", a, pause_ms / 1000.0);
    }
    nap_ms(pause_ms);
    if (atomic_load(&g_stop)) {
      rc = PULL_INTERRUPTED;
      goto out;
    }
    pause_ms = pause_ms * 2 > WF_PULL_RETRY_MAX_MS ? WF_PULL_RETRY_MAX_MS : pause_ms * 2;
  }
  draw(&x, 1);
  if (fsync(x.fd) != 0) {
    fprintf(stderr, "qcoder pull: cannot sync %s: %s\n", part, strerror(errno));
    goto out;
  }
  /* the checksum */
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned mdlen = 0;
  EVP_DigestFinal_ex(x.sha, md, &mdlen);
  char got[65];
  for (unsigned i = 0; i < 32; i++) snprintf(got + 2 * i, 3, "%02x", md[i]);
  char server[65];
  const char *want = expect_sha;
  const char *from = "--sha256";
  if (!want && etag_sha256(x.linked_etag, server)) {
    want = server;
    from = "the server's X-Linked-Etag";
  } else if (!want && etag_sha256(x.etag, server)) {
    want = server;
    from = "the server's ETag";
  }
  if (x.linked_size && x.linked_size != x.have) {
    fprintf(stderr, "qcoder pull: %s: got %llu bytes, the server announced %llu; deleted %s\n", filename,
            (unsigned long long)x.have, (unsigned long long)x.linked_size, part);
    unlink(part);
    goto out;
  }
  if (want && strcmp(want, got) != 0) {
    fprintf(stderr, "qcoder pull: %s: SHA-256 mismatch: got %s, expected %s (from %s); deleted %s\n", filename, got,
            want, from, part);
    unlink(part);
    goto out;
  }
  if (!quiet) {
    if (want) fprintf(stderr, "pull: %s: SHA-256 %s verified (%s)\n", filename, got, from);
    else fprintf(stderr, "pull: %s: SHA-256 %s (no checksum to compare with: pass --sha256 to check it)\n", filename, got);
  }
  wf_gguf_head h;
  char why[256];
  if (wf_gguf_peek(part, &h, why, sizeof why) != 0) {
    fprintf(stderr, "qcoder pull: %s is not a usable GGUF file: %s; deleted %s\n", filename, why, part);
    unlink(part);
    goto out;
  }
  if (rename(part, final) != 0) {
    fprintf(stderr, "qcoder pull: cannot rename %s: %s\n", part, strerror(errno));
    goto out;
  }
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  rc = PULL_OK;
out:
  if (c) curl_easy_cleanup(c);
  curl_slist_free_all(hdrs);
  if (x.sha) EVP_MD_CTX_free(x.sha);
  if (x.fd >= 0) close(x.fd);
  free(final);
  free(part);
  return rc;
}

/* ---- what to fetch ------------------------------------------------------------------------ */

static int hexval(int c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The file name of a URL's path (percent-decoded), or NULL when it is not a plain
 * *.gguf name. *name_at / *name_end: where it sits in the URL. */
static char *url_filename(const char *url, size_t *name_at, size_t *name_end) {
  const char *q = url + strcspn(url, "?#");
  const char *s = q;
  while (s > url && s[-1] != '/') s--;
  if (s == q) return NULL;
  char *out = malloc((size_t)(q - s) + 1);
  if (!out) return NULL;
  size_t k = 0;
  for (const char *p = s; p < q; p++) {
    if (*p == '%' && q - p >= 3 && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
      out[k++] = (char)(hexval(p[1]) * 16 + hexval(p[2]));
      p += 2;
    } else {
      out[k++] = *p;
    }
  }
  out[k] = '\0';
  int ok = k > 5 && !strcmp(out + k - 5, ".gguf") && out[0] != '.';
  for (size_t i = 0; ok && i < k; i++)
    if (out[i] == '/' || out[i] == '\0' || (unsigned char)out[i] < 0x20) ok = 0;
  if (strlen(out) != k) ok = 0;
  if (!ok) {
    free(out);
    return NULL;
  }
  *name_at = (size_t)(s - url);
  *name_end = (size_t)(q - url);
  return out;
}

static int valid_sha(const char *s) {
  if (strlen(s) != 64) return 0;
  for (int i = 0; i < 64; i++)
    if (!isxdigit((unsigned char)s[i])) return 0;
  return 1;
}

int cmd_pull(int argc, char **argv) {
  const char *what = NULL, *sha = NULL;
  int quiet = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--sha256") && i + 1 < argc) sha = argv[++i];
    else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) quiet = 1;
    else if (argv[i][0] == '-') return qc_cmd_usage_error("pull", "unknown option '%s'", argv[i]);
    else if (!what) what = argv[i];
    else return qc_cmd_usage_error("pull", "more than one NAME|URL");
  }
  if (!what) return qc_cmd_usage_error("pull", "no NAME or URL given");
  char shabuf[65] = "";
  if (sha) {
    if (!valid_sha(sha)) return qc_cmd_usage_error("pull", "--sha256 wants 64 hex digits");
    for (int i = 0; i < 64; i++) shabuf[i] = (char)tolower((unsigned char)sha[i]);
    shabuf[64] = '\0';
  }
  const wf_alias *alias = NULL;
  char *url = NULL;
  if (!strncmp(what, "http://", 7) || !strncmp(what, "https://", 8)) {
    url = strdup(what);
  } else {
    alias = wf_alias_find(what);
    if (!alias) {
      fprintf(stderr, "qcoder pull: '%s' is neither an http(s) URL nor a known name; the names are:\n", what);
      for (size_t i = 0; wf_alias_at(i); i++) fprintf(stderr, "  %s\n", wf_alias_at(i)->name);
      return 2;
    }
    url = wf_alias_url(alias);
  }
  size_t at = 0, end = 0;
  char *filename = url ? url_filename(url, &at, &end) : NULL;
  if (!filename) {
    fprintf(stderr, "qcoder pull: %s does not name a .gguf file (expected …/FILE.gguf)\n", what);
    free(url);
    return 2;
  }
  size_t stem = 0;
  int part = 0, count = 1;
  int split = wf_split_parse(filename, &stem, &part, &count);
  if (split && sha) {
    fprintf(stderr, "qcoder pull: --sha256 checks one file; %s has %d parts\n", filename, count);
    free(url);
    free(filename);
    return 2;
  }
  char *dir = wf_models_dir();
  if (!dir || qc_mkdir_p(dir, 0755) != QC_OK) {
    fprintf(stderr, "qcoder pull: cannot create the model cache %s\n", dir ? dir : "(no home directory)");
    free(dir);
    free(url);
    free(filename);
    return 1;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  atomic_store(&g_stop, 0);
  wf_interrupt_install(on_interrupt, NULL, 3);
  int rc = PULL_OK;
  uint64_t t0 = qc_now_ms();
  /* the digits of "-00001-of-00006" as the file spells them */
  const char *dash_of = split ? strstr(filename + stem, "-of-") : NULL;
  int wpart = split ? (int)(dash_of - (filename + stem + 1)) : 0;
  int wcount = split ? (int)(strlen(dash_of + 4) - 5) : 0;
  for (int p = 1; p <= (split ? count : 1) && rc == PULL_OK; p++) {
    char *fname = split ? qc_asprintf("%.*s-%0*d-of-%0*d.gguf", (int)stem, filename, wpart, p, wcount, count)
                        : strdup(filename);
    char *purl = split ? qc_asprintf("%.*s%s%s", (int)at, url, fname, url + end) : strdup(url);
    char *label = split ? qc_asprintf("%s (part %d/%d)", fname, p, count) : strdup(fname);
    if (!fname || !purl || !label) rc = PULL_FAILED;
    else {
      if (!quiet) fprintf(stderr, "pull: %s\n  from %s\n", label, purl);
      rc = pull_file(purl, dir, fname, sha ? shabuf : NULL, label, quiet);
    }
    free(fname);
    free(purl);
    free(label);
  }
  wf_interrupt_uninstall();
  curl_global_cleanup();
  char dur[32];
  wf_fmt_duration((double)(qc_now_ms() - t0) / 1000.0, dur, sizeof dur);
  if (rc == PULL_OK) {
    char *name = split ? qc_strndup(filename, stem) : qc_strndup(filename, strlen(filename) - 5);
    printf("pulled %s into %s (%s)\n", name ? name : filename, dir, dur);
    printf("use it with: qcoder run --model %s \"…\"   (or set QCODER_MODEL=%s)\n", alias ? alias->name : name,
           alias ? alias->name : name);
    free(name);
  } else if (rc == PULL_INTERRUPTED) {
    fprintf(stderr, "qcoder pull: interrupted; the partial download is kept — run the same command to resume\n");
  }
  free(dir);
  free(url);
  free(filename);
  return rc;
}
