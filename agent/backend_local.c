/* backend_local.c — the local engine as the model: one eng_model shared by every session
 * of the backend, one eng_session (KV cache) per agent session.
 *
 * The prompt handed to eng_generate is always the whole conversation. Because the agent's
 * conversation is append-only, turn N+1's prompt extends turn N's, and the engine keeps
 * the common prefix in the session's cache: only the new tail (the tool results and the
 * next user message) is prefilled. The counts come back in the usage numbers
 * (n_prompt, n_reused), so the saving is visible.
 *
 * Across restarts (opts.kv_cache_dir): when a session ends, its cache is saved to a file
 * in the model's folder of the disk cache (named by a hash of the token history); the
 * first generation of a fresh session restores the saved history that shares the longest
 * prefix with its prompt — the system prompt, the tools and the repository map, which
 * every session of a workspace starts with — so a restarted daemon (each `qcoder run`
 * starts one) does not prefill them again. Files whose history is a prefix of a newer
 * file are deleted as redundant; the folder is kept under its byte cap by deleting the
 * least recently used (mtime, refreshed on each restore). A damaged file or one of another
 * model is deleted with a warning; the engine checks every chunk it reads.
 *
 * Cancellation: agent_session_cancel() calls eng_session_cancel() while a generation runs
 * (the engine checks it every token, prefill included), and the token callback also looks
 * at the request's cancel flag.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/backend.h"
#include "agent/limits.h"
#include "common/common.h"
#include "engine/engine.h"

typedef struct local {
  eng_model *m;
  char *kv_root;           /* opts.kv_cache_dir; NULL = no disk cache */
  char *kv_dir;            /* this model's folder in it, made on first use (kv_folder) */
  int kv_failed;           /* that folder could not be made: caches stay in memory */
  uint64_t kv_max;
  pthread_mutex_t kv_mu;   /* one scan / save / prune at a time */
} local;

struct agent__bind {
  agent_backend *b;
  eng_session *s;
  pthread_mutex_t mu;
  int generating;
};

/* ---- the KV cache on disk ------------------------------------------------------------ */

typedef struct kv_file {
  char *path;
  int32_t *ids;
  size_t n;
  uint64_t bytes;
  int64_t mtime_ns;
} kv_file;

static void kv_files_free(kv_file *f, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(f[i].path);
    free(f[i].ids);
  }
  free(f);
}

/* The cache files of this model, with their histories; damaged ones and files of another
 * model are deleted on the way. */
static kv_file *kv_scan(local *l, size_t *count) {
  *count = 0;
  DIR *d = opendir(l->kv_dir);
  if (!d) return NULL;
  kv_file *f = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < AGENT__KV_DISK_MAX_FILES) {
    const int tmp = strstr(e->d_name, ".qckv.") != NULL; /* a save that never finished */
    if (!tmp && !qc_str_has_suffix(e->d_name, ".qckv")) continue;
    char *path = qc_path_join(l->kv_dir, e->d_name);
    struct stat st;
    if (!path || lstat(path, &st) || !S_ISREG(st.st_mode)) {
      free(path);
      continue;
    }
    if (tmp) {
      if (time(NULL) - st.st_mtime > AGENT__KV_DISK_STALE_TMP_S) unlink(path);
      free(path);
      continue;
    }
    eng_error ee = {0};
    int32_t *ids = NULL;
    size_t nid = 0;
    int rc = eng_kvfile_tokens(l->m, path, &ids, &nid, &ee);
    if (rc == ENG_EFORMAT || rc == ENG_EUNSUPPORTED) {
      qc_warn("deleting the KV-cache file %s: %s", path, ee.msg);
      unlink(path);
    }
    if (rc) {
      free(path);
      continue;
    }
    if (n == cap) {
      size_t nc = cap ? cap * 2 : 16;
      kv_file *g = realloc(f, nc * sizeof *g);
      if (!g) {
        free(ids);
        free(path);
        break;
      }
      f = g;
      cap = nc;
    }
    f[n++] = (kv_file){path, ids, nid, (uint64_t)st.st_size, (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec};
  }
  closedir(d);
  *count = n;
  return f;
}

/* This model's folder (KV_ROOT/<fingerprint prefix>), worked out on first use rather than
 * at model open: the fingerprint reads a few bytes of every tensor. Under kv_mu. */
static const char *kv_folder(local *l) {
  if (l->kv_dir || l->kv_failed) return l->kv_dir;
  const char *fp = eng_model_fingerprint(l->m);
  char sub[17] = "";
  if (fp) memcpy(sub, fp, 16);
  l->kv_dir = fp ? qc_path_join(l->kv_root, sub) : NULL;
  if (!l->kv_dir || qc_mkdir_p(l->kv_dir, 0700) != QC_OK) {
    qc_warn("the KV cache folder %s cannot be created: caches are not saved", l->kv_dir ? l->kv_dir : l->kv_root);
    free(l->kv_dir);
    l->kv_dir = NULL;
    l->kv_failed = 1;
  }
  return l->kv_dir;
}

static size_t common_prefix(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
  size_t i = 0;
  while (i < na && i < nb && a[i] == b[i]) i++;
  return i;
}

/* A fresh (or evicted) session: restore the saved history sharing the longest prefix
 * with the prompt, when that is long enough to be worth it. Returns tokens restored. */
static size_t kv_restore(local *l, agent__bind *x, const int32_t *ids, size_t n) {
  if (!l->kv_root || eng_session_n_past(x->s) != 0 || n < AGENT__KV_DISK_MIN_TOKENS) return 0;
  pthread_mutex_lock(&l->kv_mu);
  size_t nf = 0, got = 0, best = 0;
  kv_file *f = kv_folder(l) ? kv_scan(l, &nf) : NULL, *pick = NULL;
  for (size_t i = 0; i < nf; i++) {
    size_t c = common_prefix(f[i].ids, f[i].n, ids, n);
    if (c > best) {
      best = c;
      pick = &f[i];
    }
  }
  if (pick && best >= AGENT__KV_DISK_MIN_TOKENS) {
    eng_error ee = {0};
    uint64_t t0 = qc_now_ms();
    int rc = eng_session_restore(x->s, pick->path, ids, n, &got, &ee);
    if (rc == ENG_OK) {
      utimensat(AT_FDCWD, pick->path, NULL, 0); /* recently used */
      qc_info("restored %zu tokens of KV cache from %s in %llu ms", got, pick->path,
              (unsigned long long)(qc_now_ms() - t0));
    } else {
      qc_warn("cannot restore the KV cache from %s: %s", pick->path, ee.msg);
      if (rc == ENG_EFORMAT || rc == ENG_EUNSUPPORTED) unlink(pick->path);
      got = 0;
    }
  }
  kv_files_free(f, nf);
  pthread_mutex_unlock(&l->kv_mu);
  return got;
}

static int by_mtime(const void *a, const void *b) {
  const kv_file *x = a, *y = b;
  return x->mtime_ns < y->mtime_ns ? -1 : x->mtime_ns > y->mtime_ns;
}

/* The session ends: save its cache (unless a file already holds that history), delete
 * files whose history is a prefix of it, and keep the folder under its cap. */
static void kv_save(local *l, agent__bind *x) {
  const size_t n = eng_session_n_past(x->s);
  if (!l->kv_root || n < AGENT__KV_DISK_MIN_TOKENS) return;
  const int32_t *hist = eng_session_history(x->s);
  pthread_mutex_lock(&l->kv_mu);
  char hex[65];
  char *name = NULL, *path = NULL;
  if (!kv_folder(l)) goto out;
  qc_sha256_hex(hist, n * sizeof *hist, hex);
  hex[32] = 0;
  name = qc_asprintf("%s.qckv", hex);
  path = name ? qc_path_join(l->kv_dir, name) : NULL;
  struct stat st;
  if (!path) goto out;
  if (stat(path, &st) == 0) {
    utimensat(AT_FDCWD, path, NULL, 0);
  } else {
    eng_error ee = {0};
    uint64_t t0 = qc_now_ms();
    if (eng_session_save(x->s, path, &ee) != ENG_OK) {
      qc_warn("cannot save the KV cache to %s: %s", path, ee.msg);
      goto out;
    }
    qc_info("saved %zu tokens of KV cache to %s in %llu ms", n, path, (unsigned long long)(qc_now_ms() - t0));
  }
  size_t nf = 0;
  kv_file *f = kv_scan(l, &nf);
  uint64_t total = 0;
  for (size_t i = 0; i < nf; i++) {
    if (strcmp(f[i].path, path) && f[i].n < n && common_prefix(f[i].ids, f[i].n, hist, n) == f[i].n) {
      unlink(f[i].path); /* everything it could restore, the new file restores too */
      f[i].bytes = 0;
    }
    total += f[i].bytes;
  }
  qsort(f, nf, sizeof *f, by_mtime);
  for (size_t i = 0; i < nf && total > l->kv_max; i++) {
    if (!f[i].bytes) continue;
    qc_info("KV cache over %llu MB: deleting %s", (unsigned long long)(l->kv_max >> 20), f[i].path);
    unlink(f[i].path);
    total -= f[i].bytes;
  }
  kv_files_free(f, nf);
out:
  pthread_mutex_unlock(&l->kv_mu);
  free(path);
  free(name);
}

static int l_bind(agent_backend *b, agent__bind **out, char **errmsg) {
  local *l = b->impl;
  agent__bind *x = calloc(1, sizeof *x);
  if (!x) return AGENT_ENOMEM;
  x->b = b;
  pthread_mutex_init(&x->mu, NULL);
  eng_session_opts so = {.n_ctx = b->opts.n_ctx};
  eng_error ee = {0};
  if (eng_session_new(l->m, &so, &x->s, &ee) != ENG_OK) {
    if (errmsg) *errmsg = qc_asprintf("cannot create an engine session: %s", ee.msg[0] ? ee.msg : eng_strerror(ee.code));
    pthread_mutex_destroy(&x->mu);
    free(x);
    return AGENT_EBACKEND;
  }
  *out = x;
  return AGENT_OK;
}

static void l_unbind(agent__bind *x) {
  if (!x) return;
  kv_save(x->b->impl, x);
  eng_session_free(x->s);
  pthread_mutex_destroy(&x->mu);
  free(x);
}

typedef struct tok_ctx {
  const agent__gen_req *req;
} tok_ctx;

static int on_token(void *user, int32_t id, const char *text, size_t len) {
  (void)id;
  tok_ctx *t = user;
  if (t->req->cancel && atomic_load(t->req->cancel)) return 1;
  if (len) t->req->on_text(t->req->user, text, len);
  return 0;
}

static int l_generate(agent__bind *x, const agent__gen_req *req, agent__gen_res *res) {
  memset(res, 0, sizeof *res);
  local *l = x->b->impl;
  int32_t *ids = NULL;
  size_t n_ids = 0;
  eng_error ee = {0};
  if (eng_tokenize(l->m, req->prompt, req->prompt_len, 1, &ids, &n_ids, &ee) != ENG_OK) {
    res->finish = AGENT__FIN_ERROR;
    res->code = AGENT_EBACKEND;
    res->error = qc_asprintf("tokenizing the prompt failed: %s", ee.msg[0] ? ee.msg : eng_strerror(ee.code));
    return res->code;
  }
  res->n_prompt = (long)n_ids;
  if (n_ids >= eng_session_n_ctx(x->s)) {
    free(ids);
    res->finish = AGENT__FIN_CONTEXT;
    return AGENT_OK;
  }
  kv_restore(l, x, ids, n_ids);
  const agent_sampling *sp = req->sampling ? req->sampling : &x->b->opts.sampling;
  eng_sample_params p;
  eng_sample_params_default(&p);
  p.temperature = sp->temperature;
  p.top_p = sp->top_p;
  p.top_k = sp->top_k;
  p.min_p = sp->min_p;
  p.repeat_penalty = sp->repeat_penalty;
  if (sp->seed) p.seed = sp->seed;
  p.max_tokens = req->max_tokens;
  size_t n_stop = 0;
  if (req->stop)
    while (req->stop[n_stop]) n_stop++;
  p.stop = req->stop;
  p.n_stop = n_stop;
  tok_ctx t = {req};
  eng_gen_stats st = {0};
  pthread_mutex_lock(&x->mu);
  int already = req->cancel && atomic_load(req->cancel);
  x->generating = !already;
  pthread_mutex_unlock(&x->mu);
  int rc = already ? ENG_ECANCELLED : eng_generate(x->s, ids, n_ids, &p, on_token, &t, &st, &ee);
  if (rc == ENG_ECANCELLED && !already && !(req->cancel && atomic_load(req->cancel)) && st.n_generated == 0) {
    /* a cancel meant for the previous generation arrived as it ended and stayed pending in
     * the engine (it consumes the flag without touching the cache): run again */
    memset(&st, 0, sizeof st);
    rc = eng_generate(x->s, ids, n_ids, &p, on_token, &t, &st, &ee);
  }
  pthread_mutex_lock(&x->mu);
  x->generating = 0;
  pthread_mutex_unlock(&x->mu);
  free(ids);
  res->n_prompt = (long)(st.n_prompt ? st.n_prompt : n_ids);
  res->n_reused = (long)st.n_reused;
  res->n_generated = (long)st.n_generated;
  res->prefill_ms = st.prefill_ms;
  res->decode_ms = st.decode_ms;
  int user_cancel = req->cancel && atomic_load(req->cancel);
  if (rc == ENG_ECANCELLED || user_cancel) {
    res->finish = AGENT__FIN_CANCELLED;
    return AGENT_OK;
  }
  if (rc == ENG_ECONTEXT) {
    res->finish = AGENT__FIN_CONTEXT;
    return AGENT_OK;
  }
  if (rc != ENG_OK) {
    res->finish = AGENT__FIN_ERROR;
    res->code = AGENT_EBACKEND;
    res->error = qc_asprintf("the engine failed: %s", ee.msg[0] ? ee.msg : eng_strerror(rc));
    return res->code;
  }
  switch (st.stop) {
  case ENG_STOP_MAX_TOKENS: res->finish = AGENT__FIN_LENGTH; break;
  case ENG_STOP_CONTEXT: res->finish = AGENT__FIN_CONTEXT; break;
  case ENG_STOP_CANCELLED:
  case ENG_STOP_CALLBACK: res->finish = AGENT__FIN_CANCELLED; break;
  default: res->finish = AGENT__FIN_STOP; break;
  }
  return AGENT_OK;
}

static void l_cancel(agent__bind *x) {
  pthread_mutex_lock(&x->mu);
  if (x->generating) eng_session_cancel(x->s);
  pthread_mutex_unlock(&x->mu);
}

static long l_count(agent_backend *b, const char *text, size_t len) {
  local *l = b->impl;
  long n = eng_count_tokens(l->m, text, len);
  return n >= 0 ? n : agent__estimate_tokens(len);
}

static uint32_t l_n_ctx(agent__bind *x) { return eng_session_n_ctx(x->s); }

static void l_close(agent_backend *b) {
  local *l = b->impl;
  if (!l) return;
  eng_model_close(l->m);
  free(l->kv_dir);
  free(l->kv_root);
  pthread_mutex_destroy(&l->kv_mu);
  free(l);
}

static const agent__backend_ops k_local_ops = {
    .kind = "local", .bind = l_bind, .unbind = l_unbind, .generate = l_generate, .cancel = l_cancel,
    .count_tokens = l_count, .n_ctx = l_n_ctx, .close = l_close, .chat_api = 0,
};

int agent__local_open(agent_backend *b, char **errmsg) {
  local *l = calloc(1, sizeof *l);
  if (!l) return AGENT_ENOMEM;
  eng_model_opts mo = {.n_threads = b->opts.n_threads, .kernels = b->opts.kernels};
  eng_error ee = {0};
  if (eng_model_open(b->opts.spec, &mo, &l->m, &ee) != ENG_OK) {
    if (errmsg)
      *errmsg = qc_asprintf("cannot load the model %s: %s", b->opts.spec, ee.msg[0] ? ee.msg : eng_strerror(ee.code));
    free(l);
    return AGENT_EBACKEND;
  }
  pthread_mutex_init(&l->kv_mu, NULL);
  if (b->opts.kv_cache_dir && *b->opts.kv_cache_dir) {
    l->kv_root = strdup(b->opts.kv_cache_dir); /* NULL (no memory): no disk cache */
    l->kv_max = b->opts.kv_cache_max_bytes ? b->opts.kv_cache_max_bytes : AGENT_KV_CACHE_DEFAULT_BYTES;
  }
  b->impl = l;
  b->ops = &k_local_ops;
  return AGENT_OK;
}
