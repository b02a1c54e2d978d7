/* repomap.c — a ranked map of a repository's definitions within a token budget.
 *
 * The idea is Aider's (aider/repomap.py): files are nodes; a file that refers to an
 * identifier defined in another file gets an edge to it, weighted by how often it refers
 * to it; PageRank over that graph, personalised toward the files in the conversation,
 * says which files matter; each file's rank flows along its edges to the definitions it
 * uses, which ranks the definitions. The map lists the best ones — file path, then the
 * signature lines — as many as fit the token budget (binary search on the count).
 *
 * Edge weight, as Aider: sqrt(references) × 10 if the identifier is long (≥ 8 chars) and
 * snake_case/camelCase/kebab-case, × 0.1 if it starts with '_', × 0.1 if more than five
 * files define it (a common name says little), × 50 when the referring file is a focus
 * file. A definition nobody refers to gets a small share of its file's rank (below).
 *
 * State: one entry per scanned file, keyed by path, holding (size, mtime, inode) and the
 * file's definitions and reference counts. update() rescans the tree (git's view of it
 * when the workspace is a repository) and parses only files whose stat changed, drops
 * files that disappeared, and leaves the rest. Ranking runs at render time: it is cheap
 * next to parsing and depends on the focus files.
 */
#include "tools/code_internal.h"
#include "tools/tools.h"
#include "common/common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct rm_def {
  uint32_t ident;
  uint32_t line, end_line;  /* 1-based */
  int parent;               /* index in the file's defs, -1 */
  int depth;
  char *sig;
} rm_def;

typedef struct rm_ref {
  uint32_t ident;
  uint32_t count;
} rm_ref;

typedef struct rm_file {
  char *rel;
  int64_t mtime_ns;
  int64_t size;
  uint64_t ino;
  int parsed;               /* has a grammar and was parsed */
  int seen;                 /* found by the current scan */
  rm_def *defs;
  size_t ndefs;
  rm_ref *refs;
  size_t nrefs;
} rm_file;

struct tool_repomap {
  char *root;
  rm_file *files;           /* kept sorted by rel after each update */
  size_t nfiles, capfiles;
  /* identifier interning: open addressing, power-of-two table of ids into names */
  char **names;
  size_t nnames, capnames;
  uint32_t *table;          /* 0 = empty, else id + 1 */
  size_t tabsize;
  size_t parsed_last, parsed_total;
  double last_ms;
};

/* ---- interning ------------------------------------------------------------------- */

static uint64_t fnv(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static int rm_grow_table(tool_repomap *m) {
  size_t ns = m->tabsize ? m->tabsize * 2 : 4096;
  uint32_t *nt = calloc(ns, sizeof *nt);
  if (!nt) return -1;
  for (size_t i = 0; i < m->nnames; i++) {
    size_t h = (size_t)fnv(m->names[i]) & (ns - 1);
    while (nt[h]) h = (h + 1) & (ns - 1);
    nt[h] = (uint32_t)i + 1;
  }
  free(m->table);
  m->table = nt;
  m->tabsize = ns;
  return 0;
}

/* The id of a name, added when new. -1 out of memory. */
static int64_t rm_intern(tool_repomap *m, const char *name) {
  if ((m->nnames + 1) * 2 > m->tabsize && rm_grow_table(m) != 0) return -1;
  size_t h = (size_t)fnv(name) & (m->tabsize - 1);
  while (m->table[h]) {
    uint32_t id = m->table[h] - 1;
    if (strcmp(m->names[id], name) == 0) return id;
    h = (h + 1) & (m->tabsize - 1);
  }
  if (m->nnames == m->capnames) {
    size_t nc = m->capnames ? m->capnames * 2 : 4096;
    char **nv = realloc(m->names, nc * sizeof *nv);
    if (!nv) return -1;
    m->names = nv;
    m->capnames = nc;
  }
  m->names[m->nnames] = qc_strndup(name, strlen(name));
  if (!m->names[m->nnames]) return -1;
  m->table[h] = (uint32_t)m->nnames + 1;
  return (int64_t)m->nnames++;
}

/* ---- files ----------------------------------------------------------------------- */

static void rm_file_clear_tags(rm_file *f) {
  for (size_t i = 0; i < f->ndefs; i++) free(f->defs[i].sig);
  free(f->defs);
  free(f->refs);
  f->defs = NULL;
  f->refs = NULL;
  f->ndefs = f->nrefs = 0;
  f->parsed = 0;
}

static int rel_cmp(const void *a, const void *b) {
  return strcmp(((const rm_file *)a)->rel, ((const rm_file *)b)->rel);
}

static rm_file *rm_find(tool_repomap *m, const char *rel) {
  rm_file key = {0};
  key.rel = (char *)rel;
  return m->nfiles ? bsearch(&key, m->files, m->nfiles, sizeof *m->files, rel_cmp) : NULL;
}

static int ref_id_cmp(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* Parse one file into its entry. Files that cannot be read or have no grammar simply
 * have no tags. */
static int rm_parse(tool_repomap *m, rm_file *f) {
  rm_file_clear_tags(f);
  const tool__lang *l = tool__lang_detect(f->rel, NULL, 0);
  const char *base = strrchr(f->rel, '/');
  base = base ? base + 1 : f->rel;
  if (!l && strchr(base, '.')) return 0;
  char *src;
  size_t len;
  if (tool__read_source(m->root, f->rel, TOOL__CODE_SCAN_FILE_MAX, &src, &len, NULL) != 0) return 0;
  if (!l) l = tool__lang_detect(f->rel, src, len < 4096 ? len : 4096);
  if (!l) {
    free(src);
    return 0;
  }
  tool__tags t;
  char *err = NULL;
  int rc = 0;
  m->parsed_last++;
  m->parsed_total++;
  if (tool__tags_extract(l, src, len, 0, &t, &err) == TOOL_OK) {
    f->parsed = 1;
    f->defs = t.ndefs ? calloc(t.ndefs, sizeof *f->defs) : NULL;
    uint32_t *rids = t.n > t.ndefs ? malloc((t.n - t.ndefs) * sizeof *rids) : NULL;
    if ((t.ndefs && !f->defs) || (t.n > t.ndefs && !rids)) {
      free(rids);
      rc = -1;
      goto out;
    }
    int *map = malloc((t.ndefs ? t.ndefs : 1) * sizeof *map);
    if (!map) {
      free(rids);
      rc = -1;
      goto out;
    }
    for (size_t i = 0; i < t.ndefs; i++) {
      int par = t.v[i].parent;
      map[i] = -1;
      /* `typedef struct x {...} x;`: the struct inside its own typedef adds nothing */
      if (par >= 0 && strcmp(t.v[par].name, t.v[i].name) == 0 && t.v[par].start_line == t.v[i].start_line) {
        map[i] = map[par];
        continue;
      }
      int64_t id = rm_intern(m, t.v[i].name);
      if (id < 0) goto oom_map;
      map[i] = (int)f->ndefs;
      rm_def *d = &f->defs[f->ndefs++];
      d->ident = (uint32_t)id;
      d->line = t.v[i].start_line + 1;
      d->end_line = t.v[i].end_line + 1;
      d->parent = par >= 0 ? map[par] : -1;
      d->depth = d->parent >= 0 ? f->defs[d->parent].depth + 1 : 0;
      size_t sl = strlen(t.v[i].signature);
      if (sl > TOOL__RM_LINE_MAX) sl = qc_utf8_complete_len(t.v[i].signature, TOOL__RM_LINE_MAX);
      d->sig = qc_strndup(t.v[i].signature, sl);
      if (!d->sig) goto oom_map;
    }
    free(map);
    if (0) {
    oom_map:
      free(map);
      free(rids);
      rc = -1;
      goto out;
    }
    size_t nr = 0;
    for (size_t i = t.ndefs; i < t.n; i++) {
      int64_t id = rm_intern(m, t.v[i].name);
      if (id < 0) {
        free(rids);
        rc = -1;
        goto out;
      }
      rids[nr++] = (uint32_t)id;
    }
    /* aggregate to (ident, count) */
    if (nr) {
      qsort(rids, nr, sizeof *rids, ref_id_cmp);
      f->refs = malloc(nr * sizeof *f->refs);
      if (!f->refs) {
        free(rids);
        rc = -1;
        goto out;
      }
      for (size_t i = 0; i < nr; i++) {
        if (f->nrefs && f->refs[f->nrefs - 1].ident == rids[i]) f->refs[f->nrefs - 1].count++;
        else f->refs[f->nrefs++] = (rm_ref){rids[i], 1};
      }
    }
    free(rids);
  }
out:
  free(err);
  tool__tags_release(&t);
  free(src);
  return rc;
}

typedef struct scan_ctx {
  tool_repomap *m;
  rm_file *added;
  size_t nadded, capadded;
  int oom;
} scan_ctx;

static int rm_scan_cb(void *user, const char *rel) {
  scan_ctx *s = user;
  tool_repomap *m = s->m;
  char *abs = qc_path_join(m->root, rel);
  struct stat st;
  int ok = abs && lstat(abs, &st) == 0 && S_ISREG(st.st_mode);
  free(abs);
  if (!ok) return 0;
  int64_t mt = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
  rm_file *f = rm_find(m, rel);
  if (f) {
    f->seen = 1;
    if (f->mtime_ns == mt && f->size == (int64_t)st.st_size && f->ino == (uint64_t)st.st_ino) return 0;
    f->mtime_ns = mt;
    f->size = st.st_size;
    f->ino = st.st_ino;
    if (rm_parse(m, f) != 0) return s->oom = 1, 1;
    return 0;
  }
  if (s->nadded == s->capadded) {
    size_t nc = s->capadded ? s->capadded * 2 : 256;
    rm_file *nv = realloc(s->added, nc * sizeof *nv);
    if (!nv) return s->oom = 1, 1;
    s->added = nv;
    s->capadded = nc;
  }
  rm_file *nf = &s->added[s->nadded];
  memset(nf, 0, sizeof *nf);
  nf->rel = qc_strndup(rel, strlen(rel));
  if (!nf->rel) return s->oom = 1, 1;
  nf->seen = 1;
  nf->mtime_ns = mt;
  nf->size = st.st_size;
  nf->ino = st.st_ino;
  s->nadded++;
  if (rm_parse(m, nf) != 0) return s->oom = 1, 1;
  return 0;
}

int tool_repomap_update(tool_repomap *m, char **errmsg) {
  *errmsg = NULL;
  uint64_t t0 = qc_now_ns();
  m->parsed_last = 0;
  for (size_t i = 0; i < m->nfiles; i++) m->files[i].seen = 0;
  scan_ctx s = {m, NULL, 0, 0, 0};
  int truncated = 0;
  int rc = tool__source_files(m->root, rm_scan_cb, &s, &truncated, errmsg);
  if (rc == TOOL_OK && s.oom) rc = TOOL_ENOMEM;
  /* drop vanished files, append new ones, re-sort */
  size_t w = 0;
  for (size_t i = 0; i < m->nfiles; i++) {
    if (m->files[i].seen || rc != TOOL_OK) {
      m->files[w++] = m->files[i];
    } else {
      rm_file_clear_tags(&m->files[i]);
      free(m->files[i].rel);
    }
  }
  m->nfiles = w;
  if (m->nfiles + s.nadded > m->capfiles) {
    size_t nc = m->nfiles + s.nadded + 64;
    rm_file *nv = realloc(m->files, nc * sizeof *nv);
    if (!nv) {
      rc = TOOL_ENOMEM;
    } else {
      m->files = nv;
      m->capfiles = nc;
    }
  }
  for (size_t i = 0; i < s.nadded; i++) {
    if (m->nfiles < m->capfiles) {
      m->files[m->nfiles++] = s.added[i];
    } else {
      rm_file_clear_tags(&s.added[i]);
      free(s.added[i].rel);
    }
  }
  free(s.added);
  if (m->nfiles) qsort(m->files, m->nfiles, sizeof *m->files, rel_cmp);
  m->last_ms = (double)(qc_now_ns() - t0) / 1e6;
  if (rc == TOOL_ENOMEM && !*errmsg) *errmsg = qc_asprintf("out of memory");
  return rc;
}

int tool_repomap_create(const char *root, tool_repomap **out, char **errmsg) {
  *out = NULL;
  *errmsg = NULL;
  struct stat st;
  if (!root || stat(root, &st) != 0 || !S_ISDIR(st.st_mode)) {
    *errmsg = qc_asprintf("%s is not a directory", root ? root : "(null)");
    return TOOL_ENOENT;
  }
  tool_repomap *m = calloc(1, sizeof *m);
  if (!m || !(m->root = qc_strndup(root, strlen(root)))) {
    free(m);
    return TOOL_ENOMEM;
  }
  int rc = tool_repomap_update(m, errmsg);
  if (rc != TOOL_OK) {
    tool_repomap_free(m);
    return rc;
  }
  *out = m;
  return TOOL_OK;
}

void tool_repomap_free(tool_repomap *m) {
  if (!m) return;
  for (size_t i = 0; i < m->nfiles; i++) {
    rm_file_clear_tags(&m->files[i]);
    free(m->files[i].rel);
  }
  free(m->files);
  for (size_t i = 0; i < m->nnames; i++) free(m->names[i]);
  free(m->names);
  free(m->table);
  free(m->root);
  free(m);
}

void tool_repomap_get_stats(const tool_repomap *m, tool_repomap_stats *st) {
  memset(st, 0, sizeof *st);
  for (size_t i = 0; i < m->nfiles; i++) {
    if (!m->files[i].parsed) continue;
    st->files++;
    st->definitions += m->files[i].ndefs;
    for (size_t k = 0; k < m->files[i].nrefs; k++) st->references += m->files[i].refs[k].count;
  }
  st->parsed_last = m->parsed_last;
  st->parsed_total = m->parsed_total;
  st->last_update_ms = m->last_ms;
}

/* ---- ranking --------------------------------------------------------------------- */

typedef struct edge {
  uint32_t from, to;   /* file indices */
  uint32_t ident;
  double w;
} edge;

typedef struct ranked {
  uint32_t file, def;  /* file index, def index within it */
  double rank;
} ranked;

static int ranked_cmp(const void *a, const void *b) {
  const ranked *x = a, *y = b;
  if (x->rank != y->rank) return x->rank > y->rank ? -1 : 1;
  if (x->file != y->file) return x->file < y->file ? -1 : 1;
  return x->def < y->def ? -1 : x->def > y->def;
}

static int is_structured_name(const char *s) {
  size_t n = strlen(s);
  if (n < 8) return 0;
  int lower = 0, upper = 0, sep = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '_' || s[i] == '-') sep = 1;
    else if (s[i] >= 'a' && s[i] <= 'z') lower = 1;
    else if (s[i] >= 'A' && s[i] <= 'Z') upper = 1;
  }
  return sep || (lower && upper);
}

/* Rearrange a[0..n) so that a[0..k) holds the k best entries (in no order): quickselect
 * with a three-way partition. Invariant: everything before lo is better than everything
 * in [lo, hi), which is better than everything from hi on. */
static void select_top(ranked *a, size_t n, size_t k) {
  if (k == 0 || k >= n) return;
  size_t lo = 0, hi = n;
  while (hi - lo > 1) {
    ranked pv = a[lo + (hi - lo) / 2], t;
    size_t lt = lo, i = lo, gt = hi;
    while (i < gt) {
      int c = ranked_cmp(&a[i], &pv);
      if (c < 0) {
        t = a[lt], a[lt] = a[i], a[i] = t;
        lt++, i++;
      } else if (c > 0) {
        gt--;
        t = a[i], a[i] = a[gt], a[gt] = t;
      } else {
        i++;
      }
    }
    if (k < lt) hi = lt;          /* the boundary is among the better ones */
    else if (k > gt) lo = gt;     /* ... or among the worse ones */
    else return;                  /* it falls on the pivot block: done */
  }
}

/* Rank every definition; *out holds the best `limit` sorted best first (malloc'd). */
static int rm_rank(tool_repomap *m, const char *const *focus, size_t nfocus, size_t limit, ranked **out,
                   size_t *nout) {
  *out = NULL;
  *nout = 0;
  size_t nf = m->nfiles, nid = m->nnames;
  int rc = -1;
  /* who defines what, as compressed rows: definers of id are
   * dfile[dstart[id] .. dstart[id + 1]) (each file once) */
  uint32_t *dstart = calloc(nid + 1, sizeof *dstart);
  uint32_t *dfile = NULL, *dfill = NULL;
  float *idmul = malloc((nid ? nid : 1) * sizeof *idmul);
  int *referenced = calloc(nid ? nid : 1, sizeof *referenced);
  char *isfocus = calloc(nf ? nf : 1, 1);
  double *rank = calloc(nf ? nf : 1, sizeof *rank), *next = calloc(nf ? nf : 1, sizeof *next);
  double *pers = calloc(nf ? nf : 1, sizeof *pers), *outw = calloc(nf ? nf : 1, sizeof *outw);
  edge *edges = NULL;
  size_t ne = 0, ce = 0;
  ranked *rk = NULL;
  if (!dstart || !idmul || !referenced || !isfocus || !rank || !next || !pers || !outw) goto out;

  for (size_t i = 0; i < nfocus; i++) {
    rm_file *f = focus[i] ? rm_find(m, focus[i]) : NULL;
    if (f) isfocus[f - m->files] = 1;
  }
  /* a file defining a name twice counts once: defs are checked against the file's
   * earlier defs through `referenced` used as a scratch "last file" marker */
  for (size_t i = 0; i < nid; i++) referenced[i] = -1;
  for (size_t fi = 0; fi < nf; fi++)
    for (size_t k = 0; k < m->files[fi].ndefs; k++) {
      uint32_t id = m->files[fi].defs[k].ident;
      if (referenced[id] == (int)fi) continue;
      referenced[id] = (int)fi;
      dstart[id + 1]++;
    }
  for (size_t i = 0; i < nid; i++) dstart[i + 1] += dstart[i];
  dfile = malloc((dstart[nid] ? dstart[nid] : 1) * sizeof *dfile);
  dfill = malloc((nid ? nid : 1) * sizeof *dfill);
  if (!dfile || !dfill) goto out;
  memcpy(dfill, dstart, (nid ? nid : 1) * sizeof *dfill);
  for (size_t i = 0; i < nid; i++) referenced[i] = -1;
  for (size_t fi = 0; fi < nf; fi++)
    for (size_t k = 0; k < m->files[fi].ndefs; k++) {
      uint32_t id = m->files[fi].defs[k].ident;
      if (referenced[id] == (int)fi) continue;
      referenced[id] = (int)fi;
      dfile[dfill[id]++] = (uint32_t)fi;
    }
  /* the per-name part of the edge weight, once per name */
  for (size_t i = 0; i < nid; i++) {
    uint32_t nd = dstart[i + 1] - dstart[i];
    float mul = 1.0f;
    if (nd) {
      const char *name = m->names[i];
      if (is_structured_name(name)) mul *= 10;
      if (name[0] == '_') mul *= 0.1f;
      if (nd > 5) mul *= 0.1f;
    }
    idmul[i] = mul;
    referenced[i] = 0;
  }
  /* edges: referencing file -> defining file, per identifier */
  for (size_t fi = 0; fi < nf; fi++) {
    rm_file *f = &m->files[fi];
    for (size_t k = 0; k < f->nrefs; k++) {
      uint32_t id = f->refs[k].ident;
      if (dstart[id + 1] == dstart[id]) continue;
      referenced[id] = 1;
      double w = (double)idmul[id] * (isfocus[fi] ? 50.0 : 1.0) * sqrt((double)f->refs[k].count);
      for (uint32_t d = dstart[id]; d < dstart[id + 1]; d++) {
        if (ne == ce) {
          size_t nc = ce ? ce * 2 : 4096;
          edge *nv = realloc(edges, nc * sizeof *nv);
          if (!nv) goto out;
          edges = nv;
          ce = nc;
        }
        edges[ne++] = (edge){(uint32_t)fi, dfile[d], id, w};
      }
    }
  }
  /* personalised PageRank (power iteration; dangling mass follows the personalisation) */
  /* focus files share TOOL__RM_FOCUS_SHARE of the teleport mass, the others the rest (so the
   * rest of the map is still ordered by the repository's own structure) */
  size_t nfound = 0;
  for (size_t i = 0; i < nf; i++) nfound += isfocus[i] != 0;
  for (size_t i = 0; i < nf; i++) {
    if (nfound == 0 || nfound == nf) pers[i] = 1.0 / (double)nf;
    else pers[i] = isfocus[i] ? TOOL__RM_FOCUS_SHARE / (double)nfound : (1 - TOOL__RM_FOCUS_SHARE) / (double)(nf - nfound);
    rank[i] = pers[i];
  }
  for (size_t e = 0; e < ne; e++) outw[edges[e].from] += edges[e].w;
  for (int it = 0; it < TOOL__RM_PAGERANK_ITERS && nf; it++) {
    double dangling = 0;
    for (size_t i = 0; i < nf; i++) {
      next[i] = 0;
      if (outw[i] == 0) dangling += rank[i];
    }
    for (size_t e = 0; e < ne; e++)
      next[edges[e].to] += TOOL__RM_DAMPING * rank[edges[e].from] * edges[e].w / outw[edges[e].from];
    double diff = 0;
    for (size_t i = 0; i < nf; i++) {
      next[i] += (TOOL__RM_DAMPING * dangling + (1 - TOOL__RM_DAMPING)) * pers[i];
      diff += fabs(next[i] - rank[i]);
    }
    double *t = rank;
    rank = next;
    next = t;
    if (diff < TOOL__RM_PAGERANK_EPS) break;
  }
  /* each file's rank flows along its edges to (defining file, identifier) */
  size_t ndefs_all = 0;
  for (size_t fi = 0; fi < nf; fi++) ndefs_all += m->files[fi].ndefs;
  rk = calloc(ndefs_all ? ndefs_all : 1, sizeof *rk);
  if (!rk) goto out;
  /* a definition's rank: the flow into (file, ident), shared by that file's defs of it */
  size_t nr = 0;
  for (size_t fi = 0; fi < nf; fi++)
    for (size_t k = 0; k < m->files[fi].ndefs; k++) rk[nr++] = (ranked){(uint32_t)fi, (uint32_t)k, 0};
  /* index: first ranked slot of each file */
  size_t *first = calloc(nf + 1, sizeof *first);
  if (!first) goto out;
  for (size_t fi = 0, acc = 0; fi <= nf; fi++) {
    first[fi] = acc;
    if (fi < nf) acc += m->files[fi].ndefs;
  }
  for (size_t e = 0; e < ne; e++) {
    double flow = rank[edges[e].from] * edges[e].w / outw[edges[e].from];
    rm_file *to = &m->files[edges[e].to];
    for (size_t k = 0; k < to->ndefs; k++)
      if (to->defs[k].ident == edges[e].ident) rk[first[edges[e].to] + k].rank += flow;
  }
  /* definitions nobody refers to still rank, far below referenced ones but ordered by
   * their file's rank (Aider gives them a 0.1 self-edge instead, which hands a whole
   * file's rank to its unreferenced definitions when nothing else leaves that file) */
  for (size_t fi = 0; fi < nf; fi++)
    for (size_t k = 0; k < m->files[fi].ndefs; k++)
      if (!referenced[m->files[fi].defs[k].ident])
        rk[first[fi] + k].rank = TOOL__RM_UNREFERENCED * rank[fi] / (double)m->files[fi].ndefs;
  free(first);
  /* focus files are in the conversation already: leave them out of the map */
  size_t w = 0;
  for (size_t i = 0; i < nr; i++)
    if (!isfocus[rk[i].file]) rk[w++] = rk[i];
  if (w > limit) { /* only the best `limit` are ever rendered */
    select_top(rk, w, limit);
    w = limit;
  }
  qsort(rk, w, sizeof *rk, ranked_cmp);
  *out = rk;
  *nout = w;
  rk = NULL;
  rc = 0;
out:
  free(rk);
  free(dstart);
  free(dfile);
  free(dfill);
  free(idmul);
  free(referenced);
  free(isfocus);
  free(rank);
  free(next);
  free(pers);
  free(outw);
  free(edges);
  return rc;
}

/* ---- rendering ------------------------------------------------------------------- */

typedef struct pick {
  uint32_t file, def;
  size_t order;        /* best rank position of the file (files are listed in this order) */
} pick;

static int pick_cmp(const void *a, const void *b) {
  const pick *x = a, *y = b;
  if (x->order != y->order) return x->order < y->order ? -1 : 1;
  if (x->file != y->file) return x->file < y->file ? -1 : 1;
  return x->def < y->def ? -1 : x->def > y->def;  /* defs are in source order */
}

/* The text for the best `k` definitions: files in order of their best definition, each
 * followed by its chosen definitions in source order, with enclosing definitions (a
 * method's class) shown for context. */
static char *render_top(tool_repomap *m, const ranked *rk, size_t k) {
  pick *p = calloc(k ? k * 2 : 1, sizeof *p);
  size_t *file_order = calloc(m->nfiles ? m->nfiles : 1, sizeof *file_order);
  char *res = NULL;
  if (!p || !file_order) goto out;
  for (size_t i = 0; i < m->nfiles; i++) file_order[i] = (size_t)-1;
  size_t np = 0;
  for (size_t i = 0; i < k; i++) {
    if (file_order[rk[i].file] == (size_t)-1) file_order[rk[i].file] = i;
    p[np++] = (pick){rk[i].file, rk[i].def, 0};
    int par = m->files[rk[i].file].defs[rk[i].def].parent; /* context: the direct parent */
    if (par >= 0) p[np++] = (pick){rk[i].file, (uint32_t)par, 0};
  }
  for (size_t i = 0; i < np; i++) p[i].order = file_order[p[i].file];
  qsort(p, np, sizeof *p, pick_cmp);
  qc_buf b;
  qc_buf_init(&b, (size_t)64 << 20);
  for (size_t i = 0; i < np; i++) {
    if (i > 0 && p[i].file == p[i - 1].file && p[i].def == p[i - 1].def) continue;
    rm_file *f = &m->files[p[i].file];
    if (i == 0 || p[i].file != p[i - 1].file) qc_buf_printf(&b, "%s:\n", f->rel);
    rm_def *d = &f->defs[p[i].def];
    qc_buf_printf(&b, "%*s%u: %s\n", 2 + 2 * d->depth, "", d->line, d->sig);
  }
  res = qc_buf_detach(&b, NULL);
out:
  free(p);
  free(file_order);
  return res;
}

static size_t count_default(const char *text, size_t len) { return (len + 3) / 4; }

char *tool_repomap_render(tool_repomap *m, const char *const *focus, size_t nfocus,
                          size_t budget, tool_token_count_fn count, void *user) {
  if (budget == 0) budget = TOOL__RM_DEFAULT_BUDGET;
  ranked *rk = NULL;
  size_t n = 0;
  /* every definition line costs at least one token, so no more than `budget`
   * definitions can ever fit */
  if (rm_rank(m, focus, nfocus, budget, &rk, &n) != 0) return NULL;
  /* largest k whose rendering fits: binary search (the text grows with k) */
  size_t lo = 0, hi = n;
  char *best = qc_strndup("", 0);
  while (lo < hi && best) {
    size_t mid = lo + (hi - lo + 1) / 2;
    char *t = render_top(m, rk, mid);
    if (!t) break;
    size_t len = strlen(t);
    size_t tokens = count ? count(user, t, len) : count_default(t, len);
    if (tokens <= budget) {
      free(best);
      best = t;
      lo = mid;
    } else {
      free(t);
      hi = mid - 1;
    }
  }
  free(rk);
  return best;
}
