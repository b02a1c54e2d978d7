/* workflow_models.c — which model a command uses, and the model cache.
 *
 * A user names a model in one of four places, and the first that says something wins:
 * the command line (--model SPEC or --remote URL), $QCODER_MODEL, the config file
 * ($XDG_CONFIG_HOME/qcoder/config.json: {"model": …, "remote": …}), and finally the cache
 * itself (qc_cache_dir()/models, where `qcoder pull` puts files): the newest qwen3/qwen3moe
 * model there. A SPEC is a GGUF path, an http(s) URL of an OpenAI-compatible server,
 * `script:FILE` (the scripted test double), or a bare NAME looked up in the cache — so
 * `qcoder pull qwen3-coder-30b-a3b:q4_k_m` followed by `--model qwen3-coder-30b-a3b:q4_k_m`
 * just works. The daemon runs elsewhere (its own working directory), so every path sent
 * to it is absolute.
 */
#include "daemon/workflow.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"

char *wf_models_dir(void) {
  char *c = qc_cache_dir();
  if (!c) return NULL;
  char *d = qc_path_join(c, "models");
  free(c);
  return d;
}

char *wf_config_path(void) {
  char *c = qc_config_dir();
  if (!c) return NULL;
  char *p = qc_path_join(c, "config.json");
  free(c);
  return p;
}

int wf_split_parse(const char *filename, size_t *stem_len, int *part, int *count) {
  /* …-00001-of-00006.gguf */
  size_t n = strlen(filename);
  if (n < 5 || strcmp(filename + n - 5, ".gguf") != 0) return 0;
  const char *end = filename + n - 5;
  const char *of = NULL;
  for (const char *p = end; p > filename + 3; p--)
    if (!strncmp(p - 4, "-of-", 4)) {
      of = p - 4;
      break;
    }
  if (!of) return 0;
  const char *c = of + 4, *d = of;
  while (d > filename && d[-1] >= '0' && d[-1] <= '9') d--;
  if (d == of || d - 1 <= filename || d[-1] != '-' || c == end) return 0;
  for (const char *p = c; p < end; p++)
    if (*p < '0' || *p > '9') return 0;
  if (of - d > 5 || end - c > 5) return 0;
  int a = atoi(d), b = atoi(c);
  if (a < 1 || b < 1 || a > b || b > WF_SPLIT_MAX_PARTS) return 0;
  if (stem_len) *stem_len = (size_t)(d - 1 - filename);
  if (part) *part = a;
  if (count) *count = b;
  return 1;
}

/* ---- aliases ------------------------------------------------------------------------ */

/* unsloth's GGUF conversions of Qwen3-Coder, the files people actually download. The
 * 480B quantisations are split by llama.cpp's gguf-split into a folder per quantisation;
 * sizes are the downloads, rounded. */
static const wf_alias k_aliases[] = {
    {"qwen3-coder-30b-a3b:q4_k_m", "unsloth/Qwen3-Coder-30B-A3B-Instruct-GGUF",
     "Qwen3-Coder-30B-A3B-Instruct-Q4_K_M.gguf", 1, "18.6 GB"},
    {"qwen3-coder-30b-a3b:q6_k", "unsloth/Qwen3-Coder-30B-A3B-Instruct-GGUF",
     "Qwen3-Coder-30B-A3B-Instruct-Q6_K.gguf", 1, "25.1 GB"},
    {"qwen3-coder-30b-a3b:q8_0", "unsloth/Qwen3-Coder-30B-A3B-Instruct-GGUF",
     "Qwen3-Coder-30B-A3B-Instruct-Q8_0.gguf", 1, "32.5 GB"},
    {"qwen3-coder-480b-a35b:q2_k", "unsloth/Qwen3-Coder-480B-A35B-Instruct-GGUF",
     "Q2_K/Qwen3-Coder-480B-A35B-Instruct-Q2_K-00001-of-00004.gguf", 4, "176 GB"},
    {"qwen3-coder-480b-a35b:q3_k_m", "unsloth/Qwen3-Coder-480B-A35B-Instruct-GGUF",
     "Q3_K_M/Qwen3-Coder-480B-A35B-Instruct-Q3_K_M-00001-of-00005.gguf", 5, "233 GB"},
    {"qwen3-coder-480b-a35b:q4_k_m", "unsloth/Qwen3-Coder-480B-A35B-Instruct-GGUF",
     "Q4_K_M/Qwen3-Coder-480B-A35B-Instruct-Q4_K_M-00001-of-00006.gguf", 6, "290 GB"},
};

/* Short names: the quantisation most people want. */
static const struct { const char *name, *target; } k_short[] = {
    {"qwen3-coder-30b-a3b", "qwen3-coder-30b-a3b:q4_k_m"},
    {"qwen3-coder-30b", "qwen3-coder-30b-a3b:q4_k_m"},
    {"qwen3-coder-480b-a35b", "qwen3-coder-480b-a35b:q4_k_m"},
    {"qwen3-coder-480b", "qwen3-coder-480b-a35b:q4_k_m"},
};

const wf_alias *wf_alias_at(size_t i) { return i < sizeof k_aliases / sizeof k_aliases[0] ? &k_aliases[i] : NULL; }

const wf_alias *wf_alias_find(const char *name) {
  for (size_t i = 0; i < sizeof k_short / sizeof k_short[0]; i++)
    if (!strcasecmp(name, k_short[i].name)) name = k_short[i].target;
  for (size_t i = 0; i < sizeof k_aliases / sizeof k_aliases[0]; i++)
    if (!strcasecmp(name, k_aliases[i].name)) return &k_aliases[i];
  return NULL;
}

char *wf_alias_url(const wf_alias *a) {
  const char *ep = getenv("HF_ENDPOINT");
  if (!ep || !*ep) ep = "https://huggingface.co";
  size_t n = strlen(ep);
  while (n && ep[n - 1] == '/') n--;
  return qc_asprintf("%.*s/%s/resolve/main/%s", (int)n, ep, a->repo, a->file);
}

static const char *base_name(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

/* ---- resolving a spec ---------------------------------------------------------------- */

static int is_file(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static char *abs_path(const char *p) {
  char *r = realpath(p, NULL);
  return r;
}

/* NAME in the cache directory: the exact file, NAME.gguf, the first part of a split
 * NAME, an alias's file; case-insensitive on the file name. */
static char *cache_lookup(const char *dir, const char *name) {
  const wf_alias *al = wf_alias_find(name);
  const char *alias_file = al ? base_name(al->file) : NULL;
  DIR *d = opendir(dir);
  if (!d) return NULL;
  char *found = NULL;
  struct dirent *e;
  size_t nl = strlen(name);
  while ((e = readdir(d)) && !found) {
    const char *f = e->d_name;
    size_t fl = strlen(f);
    size_t stem;
    int part, count;
    int hit = !strcasecmp(f, name) && fl > 5 && !strcmp(f + fl - 5, ".gguf");
    if (!hit && fl == nl + 5 && !strncasecmp(f, name, nl) && !strcmp(f + nl, ".gguf")) hit = 1;
    if (!hit && wf_split_parse(f, &stem, &part, &count) && part == 1 && stem == nl && !strncasecmp(f, name, nl))
      hit = 1;
    if (!hit && alias_file && !strcasecmp(f, alias_file)) hit = 1;
    if (hit) {
      char *p = qc_path_join(dir, f);
      if (p && is_file(p)) found = p;
      else free(p);
    }
  }
  closedir(d);
  return found;
}

int wf_model_spec(const char *given, char **out, char **err) {
  *out = NULL;
  *err = NULL;
  if (!given || !*given) {
    *err = strdup("an empty model name");
    return -1;
  }
  if (!strncmp(given, "script:", 7)) {
    char *p = abs_path(given + 7);
    if (!p) {
      *err = qc_asprintf("the script %s: %s", given + 7, strerror(errno));
      return -1;
    }
    *out = qc_asprintf("script:%s", p);
    free(p);
    return 0;
  }
  if (!strncmp(given, "http://", 7) || !strncmp(given, "https://", 8)) {
    *out = strdup(given);
    return 0;
  }
  if (strchr(given, '/')) {
    if (!is_file(given)) {
      *err = qc_asprintf("the model file %s does not exist", given);
      return -1;
    }
    *out = abs_path(given);
    return *out ? 0 : -1;
  }
  char *dir = wf_models_dir();
  char *hit = dir ? cache_lookup(dir, given) : NULL;
  if (hit) {
    *out = hit;
    free(dir);
    return 0;
  }
  if (is_file(given)) {
    *out = abs_path(given);
    free(dir);
    return *out ? 0 : -1;
  }
  const wf_alias *a = wf_alias_find(given);
  if (a)
    *err = qc_asprintf("the model %s is not in the cache (%s); download it with: qcoder pull %s", given,
                       dir ? dir : "?", a->name);
  else
    *err = qc_asprintf("no model named %s in the cache (%s) and no such file; 'qcoder models' lists the cache, "
                       "'qcoder pull NAME|URL' fills it",
                       given, dir ? dir : "?");
  free(dir);
  return -1;
}

/* ---- resolution order ---------------------------------------------------------------- */

void wf_model_choice_release(wf_model_choice *c) {
  if (!c) return;
  free(c->spec);
  free(c->source);
  c->spec = c->source = NULL;
}

static int choose(const char *given, const char *source, wf_model_choice *out, char **err) {
  char *e = NULL;
  if (wf_model_spec(given, &out->spec, &e) != 0) {
    *err = qc_asprintf("%s (from %s)", e ? e : "cannot use the model", source);
    free(e);
    return -1;
  }
  out->source = strdup(source);
  return 0;
}

/* The newest complete qwen3/qwen3moe model in the cache (a split model counts by its
 * first part), or NULL. */
static char *cache_default(void) {
  char *dir = wf_models_dir();
  if (!dir) return NULL;
  json_t *list = wf_models_list(dir);
  free(dir);
  char *best = NULL;
  size_t i;
  json_t *m;
  json_array_foreach(list, i, m) {
    if (json_is_true(json_object_get(m, "default"))) {
      best = strdup(json_string_value(json_object_get(m, "path")));
      break;
    }
  }
  json_decref(list);
  return best;
}

int wf_model_resolve(const char *model_flag, const char *remote_flag, wf_model_choice *out, char **err) {
  memset(out, 0, sizeof *out);
  *err = NULL;
  if (model_flag) return choose(model_flag, "--model", out, err);
  if (remote_flag) {
    if (strncmp(remote_flag, "http://", 7) && strncmp(remote_flag, "https://", 8)) {
      *err = qc_asprintf("--remote %s: expected an http(s):// URL of an OpenAI-compatible server", remote_flag);
      return -1;
    }
    return choose(remote_flag, "--remote", out, err);
  }
  const char *env = getenv("QCODER_MODEL");
  if (env && *env) return choose(env, "QCODER_MODEL", out, err);
  char *cfg = wf_config_path();
  if (cfg && is_file(cfg)) {
    char *text = NULL;
    size_t len = 0;
    int rc = qc_read_file(cfg, WF_CONFIG_MAX_BYTES, &text, &len);
    if (rc != QC_OK) {
      *err = qc_asprintf("cannot read the config file %s: %s", cfg, qc_strerror(rc));
      free(cfg);
      return -1;
    }
    json_error_t je;
    json_t *j = json_loadb(text, len, 0, &je);
    free(text);
    if (!json_is_object(j)) {
      *err = j ? qc_asprintf("the config file %s must hold a JSON object", cfg)
               : qc_asprintf("the config file %s is not valid JSON: %s (line %d)", cfg, je.text, je.line);
      json_decref(j);
      free(cfg);
      return -1;
    }
    const char *keys[] = {"model", "remote"};
    for (int k = 0; k < 2; k++) {
      json_t *v = json_object_get(j, keys[k]);
      if (!v || json_is_null(v)) continue;
      if (!json_is_string(v) || !*json_string_value(v)) {
        *err = qc_asprintf("the config file %s: \"%s\" must be a non-empty string", cfg, keys[k]);
        json_decref(j);
        free(cfg);
        return -1;
      }
      char *src = qc_asprintf("config %s (%s)", cfg, keys[k]);
      rc = choose(json_string_value(v), src, out, err);
      free(src);
      json_decref(j);
      free(cfg);
      return rc;
    }
    json_decref(j);
  }
  free(cfg);
  char *def = cache_default();
  if (def) {
    out->spec = def;
    out->source = strdup("cache (newest model)");
  }
  return 0;
}

/* ---- listing the cache ---------------------------------------------------------------- */

static int cmp_name(const void *a, const void *b) {
  const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
  return strcmp(json_string_value(json_object_get(x, "name")), json_string_value(json_object_get(y, "name")));
}

static json_t *find_by_name(json_t *arr, const char *name) {
  size_t i;
  json_t *o;
  json_array_foreach(arr, i, o) if (!strcmp(json_string_value(json_object_get(o, "name")), name)) return o;
  return NULL;
}

static void describe(json_t *o, const char *path) {
  wf_gguf_head h;
  char why[256];
  if (wf_gguf_peek(path, &h, why, sizeof why) != 0) {
    json_object_set_new(o, "error", json_string(why));
    return;
  }
  json_object_set_new(o, "architecture", json_string(h.arch));
  const char *q = wf_ftype_name(h.file_type);
  json_object_set_new(o, "quantization", q ? json_string(q) : json_null());
  json_object_set_new(o, "file_type", h.file_type == UINT32_MAX ? json_null() : json_integer(h.file_type));
  json_object_set_new(o, "tensors", json_integer((json_int_t)h.n_tensors));
  if (*h.name) json_object_set_new(o, "model_name", json_string(h.name));
}

json_t *wf_models_list(const char *dir) {
  json_t *arr = json_array();
  DIR *d = dir ? opendir(dir) : NULL;
  if (!d) return arr;
  struct dirent *e;
  while ((e = readdir(d))) {
    const char *f = e->d_name;
    size_t fl = strlen(f);
    if (f[0] == '.') continue;
    int partial = fl > 10 && !strcmp(f + fl - 10, ".gguf.part");
    if (!partial && !(fl > 5 && !strcmp(f + fl - 5, ".gguf"))) continue;
    char *path = qc_path_join(dir, f);
    struct stat st;
    if (!path || stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
      free(path);
      continue;
    }
    char *gguf_name = partial ? qc_strndup(f, fl - 5) : strdup(f);
    size_t stem;
    int part = 0, count = 0;
    int split = wf_split_parse(gguf_name, &stem, &part, &count);
    char *name = split ? qc_strndup(gguf_name, stem) : qc_strndup(gguf_name, strlen(gguf_name) - 5);
    json_t *o = find_by_name(arr, name);
    if (!o) {
      o = json_pack("{s:s, s:[], s:i, s:i, s:I, s:b, s:n, s:n, s:n, s:b, s:I}", "name", name, "files", "parts",
                    split ? count : 1, "parts_present", 0, "size", (json_int_t)0, "complete", 0, "architecture",
                    "quantization", "file_type", "default", 0, "mtime", (json_int_t)0);
      json_array_append_new(arr, o);
    }
    json_array_append_new(json_object_get(o, "files"), json_string(f));
    json_object_set_new(o, "size", json_integer(json_integer_value(json_object_get(o, "size")) + (json_int_t)st.st_size));
    if ((json_int_t)st.st_mtime > json_integer_value(json_object_get(o, "mtime")))
      json_object_set_new(o, "mtime", json_integer((json_int_t)st.st_mtime));
    if (partial) {
      json_object_set_new(o, "downloading", json_true());
    } else {
      json_object_set_new(o, "parts_present",
                          json_integer(json_integer_value(json_object_get(o, "parts_present")) + 1));
      if (!split || part == 1) {
        json_object_set_new(o, "path", json_string(path));
        describe(o, path);
      }
    }
    free(name);
    free(gguf_name);
    free(path);
  }
  closedir(d);
  /* complete: every part present and nothing still downloading */
  size_t i;
  json_t *o;
  json_int_t best_mtime = -1;
  json_t *best = NULL;
  json_array_foreach(arr, i, o) {
    int complete = json_integer_value(json_object_get(o, "parts_present")) ==
                       json_integer_value(json_object_get(o, "parts")) &&
                   !json_is_true(json_object_get(o, "downloading")) && json_object_get(o, "path") &&
                   !json_object_get(o, "error");
    json_object_set_new(o, "complete", json_boolean(complete));
    const char *arch = json_string_value(json_object_get(o, "architecture"));
    json_int_t mt = json_integer_value(json_object_get(o, "mtime"));
    if (complete && arch && (!strcmp(arch, "qwen3moe") || !strcmp(arch, "qwen3")) &&
        json_integer_value(json_object_get(o, "tensors")) > 0 &&
        (mt > best_mtime || (mt == best_mtime && best && cmp_name(&o, &best) < 0))) {
      best_mtime = json_integer_value(json_object_get(o, "mtime"));
      best = o;
    }
  }
  if (best) json_object_set_new(best, "default", json_true());
  /* sort by name */
  size_t n = json_array_size(arr);
  json_t **v = calloc(n ? n : 1, sizeof *v);
  if (v) {
    for (i = 0; i < n; i++) v[i] = json_incref(json_array_get(arr, i));
    qsort(v, n, sizeof *v, cmp_name);
    json_array_clear(arr);
    for (i = 0; i < n; i++) json_array_append_new(arr, v[i]);
    free(v);
  }
  return arr;
}
