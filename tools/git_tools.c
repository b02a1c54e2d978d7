/* git_tools.c — the read-only git tools: status, diff, log, blame, show (libgit2).
 *
 * Each produces text shaped like git's own porcelain output (what the model has seen
 * most) cut at TOOL__GIT_MAX_OUTPUT, plus structured data for editors. Paths in the text
 * are relative to the workspace; a workspace below the top of the working tree sees only
 * its own part (status, diff and log are limited to it).
 */
#include "tools/git_internal.h"
#include "tools/tools.h"

#include <stdlib.h>
#include <string.h>

static void iso_date(git_time_t t, char *out, size_t n) { qc_iso8601((int64_t)t * 1000, out, n); }

static const char *strip_prefix(const tool__repo *r, const char *path) {
  size_t pl = strlen(r->prefix);
  return strncmp(path, r->prefix, pl) == 0 ? path + pl : path;
}

/* The pathspec for a workspace-relative path (or the whole workspace). Malloc'd. */
static char *pathspec_for(const tool__repo *r, const char *path) {
  if (path && *path && strcmp(path, ".") != 0) {
    size_t l = strlen(path);
    while (l > 1 && path[l - 1] == '/') l--;
    return qc_asprintf("%s%.*s", r->prefix, (int)l, path);
  }
  if (*r->prefix) return qc_strndup(r->prefix, strlen(r->prefix) - 1);
  return NULL;
}

/* ---- status ---------------------------------------------------------------------- */

static void head_line(tool__repo *r, qc_buf *out, json_t *data) {
  git_reference *head = NULL;
  int e = git_repository_head(&head, r->repo);
  if (e == GIT_EUNBORNBRANCH) {
    git_reference *sym = NULL;
    const char *target = NULL;
    if (git_reference_lookup(&sym, r->repo, "HEAD") == 0) target = git_reference_symbolic_target(sym);
    const char *b = target && strncmp(target, "refs/heads/", 11) == 0 ? target + 11 : "?";
    tool__out_printf(out, "## No commits yet on %s\n", b);
    json_object_set_new(data, "branch", json_string(b));
    git_reference_free(sym);
  } else if (e == 0 && git_reference_is_branch(head)) {
    const char *b = git_reference_shorthand(head);
    tool__out_printf(out, "## %s\n", b);
    json_object_set_new(data, "branch", json_string(b));
  } else if (e == 0) {
    char hex[8];
    git_oid_tostr(hex, sizeof hex, git_reference_target(head));
    tool__out_printf(out, "## HEAD (detached at %s)\n", hex);
    json_object_set_new(data, "branch", json_null());
  }
  git_error_clear();
  git_reference_free(head);
}

int tool__git_status(tool__repo *r, qc_buf *out, json_t **data, char **errmsg) {
  *data = NULL;
  *errmsg = NULL;
  json_t *d = json_object(), *files = json_array();
  git_status_list *sl = NULL;
  char *spec = pathspec_for(r, NULL);
  int rc = TOOL_OK;
  if (!d || !files) {
    rc = TOOL_ENOMEM;
    goto out;
  }
  head_line(r, out, d);
  git_status_options o = GIT_STATUS_OPTIONS_INIT;
  o.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
  o.flags = GIT_STATUS_OPT_INCLUDE_UNTRACKED | GIT_STATUS_OPT_RECURSE_UNTRACKED_DIRS |
            GIT_STATUS_OPT_RENAMES_HEAD_TO_INDEX | GIT_STATUS_OPT_SORT_CASE_SENSITIVELY;
  if (spec) {
    o.pathspec.strings = &spec;
    o.pathspec.count = 1;
  }
  if (git_status_list_new(&sl, r->repo, &o) < 0) {
    *errmsg = tool__git_errmsg("cannot read the status");
    rc = TOOL_EFAILED;
    goto out;
  }
  size_t n = git_status_list_entrycount(sl), shown = 0;
  for (size_t i = 0; i < n; i++) {
    const git_status_entry *e = git_status_byindex(sl, i);
    unsigned s = e->status;
    if (s == GIT_STATUS_CURRENT || (s & GIT_STATUS_IGNORED)) continue;
    char x = ' ', y = ' ';
    if (s & GIT_STATUS_INDEX_NEW) x = 'A';
    else if (s & GIT_STATUS_INDEX_MODIFIED) x = 'M';
    else if (s & GIT_STATUS_INDEX_DELETED) x = 'D';
    else if (s & GIT_STATUS_INDEX_RENAMED) x = 'R';
    else if (s & GIT_STATUS_INDEX_TYPECHANGE) x = 'T';
    if (s & GIT_STATUS_WT_NEW) x = y = '?';
    else if (s & GIT_STATUS_WT_MODIFIED) y = 'M';
    else if (s & GIT_STATUS_WT_DELETED) y = 'D';
    else if (s & GIT_STATUS_WT_TYPECHANGE) y = 'T';
    if (s & GIT_STATUS_CONFLICTED) x = y = 'U';
    const git_diff_delta *dd = e->index_to_workdir ? e->index_to_workdir : e->head_to_index;
    const char *path = strip_prefix(r, dd->new_file.path);
    const char *old = (s & GIT_STATUS_INDEX_RENAMED) && e->head_to_index
                          ? strip_prefix(r, e->head_to_index->old_file.path) : NULL;
    if (++shown > TOOL__GIT_MAX_STATUS) continue;
    if (old) tool__out_printf(out, "%c%c %s -> %s\n", x, y, old, path);
    else tool__out_printf(out, "%c%c %s\n", x, y, path);
    char xy[3] = {x, y, 0};
    json_t *f = json_pack("{s:s, s:s}", "status", xy, "path", path);
    if (f && old) json_object_set_new(f, "from", json_string(old));
    if (f) json_array_append_new(files, f);
  }
  if (shown > TOOL__GIT_MAX_STATUS)
    tool__out_printf(out, "[%zu more entries not shown]\n", shown - TOOL__GIT_MAX_STATUS);
  if (shown == 0) tool__out_printf(out, "nothing to commit, working tree clean\n");
  json_object_set_new(d, "files", files);
  files = NULL;
  *data = d;
  d = NULL;
out:
  git_status_list_free(sl);
  free(spec);
  json_decref(files);
  json_decref(d);
  return rc;
}

/* ---- diff ------------------------------------------------------------------------ */

static int diff_print_cb(const git_diff_delta *d, const git_diff_hunk *h, const git_diff_line *l,
                         void *payload) {
  qc_buf *out = payload;
  if (out->len > TOOL__GIT_MAX_OUTPUT) return 0;
  if (l->origin == GIT_DIFF_LINE_CONTEXT || l->origin == GIT_DIFF_LINE_ADDITION ||
      l->origin == GIT_DIFF_LINE_DELETION) {
    char o = l->origin;
    tool__out_append(out, &o, 1);
  }
  tool__out_append(out, l->content, l->content_len);
  return 0;
}

static json_t *diff_files(git_diff *diff, const tool__repo *r) {
  json_t *arr = json_array();
  size_t n = git_diff_num_deltas(diff);
  for (size_t i = 0; arr && i < n; i++) {
    git_patch *p = NULL;
    size_t ctx = 0, add = 0, del = 0;
    if (git_patch_from_diff(&p, diff, i) == 0 && p) git_patch_line_stats(&ctx, &add, &del, p);
    const git_diff_delta *d = git_diff_get_delta(diff, i);
    char st[2] = {git_diff_status_char(d->status), 0};
    json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:I}", "path", strip_prefix(r, d->new_file.path),
                                         "status", st, "additions", (json_int_t)add, "deletions",
                                         (json_int_t)del));
    git_patch_free(p);
  }
  return arr;
}

int tool__git_diff(tool__repo *r, const char *path, int staged, const char *against,
                   qc_buf *out, json_t **data, char **errmsg) {
  *data = NULL;
  *errmsg = NULL;
  git_diff *diff = NULL;
  git_object *obj = NULL;
  git_tree *tree = NULL;
  git_index *idx = NULL;
  char *spec = pathspec_for(r, path);
  int rc = TOOL_OK;
  git_diff_options o = GIT_DIFF_OPTIONS_INIT;
  if (spec) {
    o.pathspec.strings = &spec;
    o.pathspec.count = 1;
  }
  int e;
  if (against && *against) {
    if (git_revparse_single(&obj, r->repo, against) < 0 ||
        git_object_peel((git_object **)&tree, obj, GIT_OBJECT_TREE) < 0) {
      *errmsg = tool__git_errmsg("unknown revision");
      rc = TOOL_EARGS;
      goto out;
    }
    e = staged ? (git_repository_index(&idx, r->repo) < 0 ? -1
                                                          : git_diff_tree_to_index(&diff, r->repo, tree, idx, &o))
               : git_diff_tree_to_workdir_with_index(&diff, r->repo, tree, &o);
  } else if (staged) {
    if (git_revparse_single(&obj, r->repo, "HEAD^{tree}") == 0) tree = (git_tree *)obj, obj = NULL;
    git_error_clear();
    e = git_repository_index(&idx, r->repo) < 0 ? -1
                                                 : git_diff_tree_to_index(&diff, r->repo, tree, idx, &o);
  } else {
    e = git_diff_index_to_workdir(&diff, r->repo, NULL, &o);
  }
  if (e < 0) {
    *errmsg = tool__git_errmsg("cannot compute the diff");
    rc = TOOL_EFAILED;
    goto out;
  }
  if (git_diff_num_deltas(diff) == 0) tool__out_printf(out, "no differences\n");
  else git_diff_print(diff, GIT_DIFF_FORMAT_PATCH, diff_print_cb, out);
  *data = json_pack("{s:o}", "files", diff_files(diff, r));
out:
  git_diff_free(diff);
  git_index_free(idx);
  git_tree_free(tree);
  git_object_free(obj);
  free(spec);
  return rc;
}

/* ---- log ------------------------------------------------------------------------- */

/* Does `c` change `spec` compared with its first parent (or add it, for a root)? */
static int touches(git_commit *c, const char *spec) {
  git_tree *t = NULL, *pt = NULL;
  git_commit *p = NULL;
  git_tree_entry *a = NULL, *b = NULL;
  int res = 0;
  if (git_commit_tree(&t, c) < 0) goto out;
  int ha = git_tree_entry_bypath(&a, t, spec) == 0;
  if (git_commit_parentcount(c) > 0 && git_commit_parent(&p, c, 0) == 0 && git_commit_tree(&pt, p) == 0) {
    int hb = git_tree_entry_bypath(&b, pt, spec) == 0;
    if (ha != hb) res = 1;
    else if (ha) res = !git_oid_equal(git_tree_entry_id(a), git_tree_entry_id(b)) ||
                       git_tree_entry_filemode(a) != git_tree_entry_filemode(b);
  } else {
    res = ha;
  }
out:
  git_error_clear();
  git_tree_entry_free(a);
  git_tree_entry_free(b);
  git_tree_free(t);
  git_tree_free(pt);
  git_commit_free(p);
  return res;
}

int tool__git_log(tool__repo *r, const char *path, unsigned n, qc_buf *out, json_t **data,
                  char **errmsg) {
  *data = NULL;
  *errmsg = NULL;
  if (n == 0) n = TOOL__GIT_LOG_DEFAULT;
  if (n > TOOL__GIT_LOG_MAX) n = TOOL__GIT_LOG_MAX;
  git_revwalk *w = NULL;
  char *spec = pathspec_for(r, path);
  json_t *arr = json_array();
  int rc = TOOL_OK;
  if (!arr) {
    rc = TOOL_ENOMEM;
    goto out;
  }
  if (git_revwalk_new(&w, r->repo) < 0) {
    *errmsg = tool__git_errmsg("cannot walk the history");
    rc = TOOL_EFAILED;
    goto out;
  }
  git_revwalk_sorting(w, GIT_SORT_TIME);
  if (git_revwalk_push_head(w) < 0) {
    git_error_clear();
    tool__out_printf(out, "no commits yet\n");
    goto done;
  }
  git_oid id;
  unsigned shown = 0, walked = 0;
  while (shown < n && walked < TOOL__GIT_LOG_WALK_MAX && git_revwalk_next(&id, w) == 0) {
    walked++;
    git_commit *c = NULL;
    if (git_commit_lookup(&c, r->repo, &id) < 0) break;
    if (spec && !touches(c, spec)) {
      git_commit_free(c);
      continue;
    }
    const git_signature *a = git_commit_author(c);
    char hex[GIT_OID_HEXSZ + 1], date[32];
    git_oid_tostr(hex, sizeof hex, &id);
    iso_date(a->when.time, date, sizeof date);
    const char *subj = git_commit_summary(c);
    tool__out_printf(out, "%.10s %.10s %s: %s\n", hex, date, a->name, subj ? subj : "");
    json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:s}", "commit", hex, "author", a->name,
                                         "email", a->email, "time", date, "subject", subj ? subj : ""));
    shown++;
    git_commit_free(c);
  }
  if (shown == 0) tool__out_printf(out, "no commits%s\n", spec ? " touch that path" : "");
done:
  *data = json_pack("{s:O}", "commits", arr);
out:
  json_decref(arr);
  git_revwalk_free(w);
  free(spec);
  return rc;
}

/* ---- blame ----------------------------------------------------------------------- */

int tool__git_blame(tool__repo *r, const char *path, unsigned start, unsigned end, qc_buf *out,
                    json_t **data, char **errmsg) {
  *data = NULL;
  *errmsg = NULL;
  git_blame *base = NULL, *blame = NULL;
  char *rel = pathspec_for(r, path), *abs = NULL, *text = NULL;
  size_t len = 0;
  json_t *hunks = json_array();
  int rc = TOOL_OK;
  if (!rel || !hunks) {
    rc = rel ? TOOL_ENOMEM : TOOL_EARGS;
    if (!rel) *errmsg = qc_asprintf("a file path is required");
    goto out;
  }
  abs = qc_asprintf("%s%s", r->workdir, rel);
  if (!abs) {
    rc = TOOL_ENOMEM;
    goto out;
  }
  int qe = qc_read_file(abs, TOOL__GIT_BLAME_MAX_FILE, &text, &len);
  if (qe != QC_OK) {
    *errmsg = qc_asprintf("cannot read %s: %s", path, qc_strerror(qe));
    rc = qe == QC_ENOENT ? TOOL_ENOENT : qe == QC_ETOOBIG ? TOOL_ETOOBIG : TOOL_EIO;
    goto out;
  }
  /* only files in HEAD can be blamed; checked first because libgit2 1.5's
   * git_blame_file leaks when the path is not in HEAD */
  int e = GIT_ENOTFOUND;
  {
    git_object *head_tree = NULL;
    git_tree_entry *te = NULL;
    if (git_revparse_single(&head_tree, r->repo, "HEAD^{tree}") == 0 &&
        git_tree_entry_bypath(&te, (git_tree *)head_tree, rel) == 0 &&
        git_tree_entry_type(te) == GIT_OBJECT_BLOB)
      e = 0;
    git_tree_entry_free(te);
    git_object_free(head_tree);
  }
  git_blame_options o = GIT_BLAME_OPTIONS_INIT;
  if (e == 0) e = git_blame_file(&base, r->repo, rel, &o);
  if (e == GIT_ENOTFOUND) {
    git_error_clear();
    *errmsg = qc_asprintf("%s is not in HEAD (untracked or not committed yet)", path);
    rc = TOOL_ENOENT;
    goto out;
  }
  if (e < 0 || git_blame_buffer(&blame, base, text, len) < 0) {
    *errmsg = tool__git_errmsg("cannot blame the file");
    rc = TOOL_EFAILED;
    goto out;
  }
  /* lines of the working file */
  unsigned nlines = 0;
  for (size_t i = 0; i < len; i++) nlines += text[i] == '\n';
  if (len && text[len - 1] != '\n') nlines++;
  if (start == 0) start = 1;
  if (end == 0 || end > nlines) end = nlines;
  if (end >= start && end - start + 1 > TOOL__GIT_BLAME_MAX_LINES) end = start + TOOL__GIT_BLAME_MAX_LINES - 1;
  if (start > end) {
    tool__out_printf(out, "no lines in that range (the file has %u)\n", nlines);
    goto done;
  }
  const char *p = text;
  unsigned line = 1;
  while (line < start && p < text + len) {
    const char *nl = memchr(p, '\n', (size_t)(text + len - p));
    p = nl ? nl + 1 : text + len;
    line++;
  }
  const git_blame_hunk *prev = NULL;
  for (; line <= end && p < text + len; line++) {
    const char *nl = memchr(p, '\n', (size_t)(text + len - p));
    size_t ll = nl ? (size_t)(nl - p) : (size_t)(text + len - p);
    const git_blame_hunk *h = git_blame_get_hunk_byline(blame, line);
    char hex[GIT_OID_HEXSZ + 1] = "0000000000", date[32] = "";
    const char *who = "Not Committed Yet";
    if (h && !git_oid_is_zero(&h->final_commit_id)) {
      git_oid_tostr(hex, sizeof hex, &h->final_commit_id);
      if (h->final_signature) {
        who = h->final_signature->name;
        iso_date(h->final_signature->when.time, date, sizeof date);
      }
    }
    tool__out_printf(out, "%.8s (%s %.10s %4u) %.*s\n", hex, who, date, line, (int)ll, p);
    if (h && h != prev) {
      json_array_append_new(hunks, json_pack("{s:s, s:s, s:s, s:I, s:I}", "commit", hex, "author", who,
                                             "time", date, "start", (json_int_t)h->final_start_line_number,
                                             "lines", (json_int_t)h->lines_in_hunk));
      prev = h;
    }
    p = nl ? nl + 1 : text + len;
  }
done:
  *data = json_pack("{s:O}", "hunks", hunks);
out:
  json_decref(hunks);
  git_blame_free(blame);
  git_blame_free(base);
  free(text);
  free(abs);
  free(rel);
  return rc;
}

/* ---- show ------------------------------------------------------------------------ */

int tool__git_show(tool__repo *r, const char *rev, qc_buf *out, json_t **data, char **errmsg) {
  *data = NULL;
  *errmsg = NULL;
  git_object *obj = NULL;
  git_commit *parent = NULL;
  git_tree *t = NULL, *pt = NULL;
  git_diff *diff = NULL;
  int rc = TOOL_OK;
  if (!rev || !*rev) rev = "HEAD";
  if (git_revparse_single(&obj, r->repo, rev) < 0) {
    *errmsg = tool__git_errmsg("unknown revision");
    rc = TOOL_EARGS;
    goto out;
  }
  char hex[GIT_OID_HEXSZ + 1];
  git_oid_tostr(hex, sizeof hex, git_object_id(obj));
  switch (git_object_type(obj)) {
    case GIT_OBJECT_TAG: {
      git_tag *tag = (git_tag *)obj;
      const git_signature *s = git_tag_tagger(tag);
      tool__out_printf(out, "tag %s\n", git_tag_name(tag));
      if (s) tool__out_printf(out, "Tagger: %s <%s>\n", s->name, s->email);
      tool__out_printf(out, "\n%s\n", git_tag_message(tag) ? git_tag_message(tag) : "");
      git_object *target = NULL;
      if (git_tag_peel(&target, tag) == 0) {
        char th[GIT_OID_HEXSZ + 1];
        git_oid_tostr(th, sizeof th, git_object_id(target));
        tool__out_printf(out, "target %s %s\n", git_object_type2string(git_object_type(target)), th);
        git_object_free(target);
      }
      *data = json_pack("{s:s, s:s}", "type", "tag", "object", hex);
      break;
    }
    case GIT_OBJECT_COMMIT: {
      git_commit *c = (git_commit *)obj;
      const git_signature *a = git_commit_author(c);
      char date[32];
      iso_date(a->when.time, date, sizeof date);
      tool__out_printf(out, "commit %s\nAuthor: %s <%s>\nDate:   %s\n\n", hex, a->name, a->email, date);
      const char *msg = git_commit_message(c);
      for (const char *p = msg ? msg : ""; *p;) {
        const char *nl = strchr(p, '\n');
        size_t ll = nl ? (size_t)(nl - p) : strlen(p);
        tool__out_printf(out, "    %.*s\n", (int)ll, p);
        p += ll + (nl ? 1 : 0);
      }
      tool__out_append(out, "\n", 1);
      if (git_commit_tree(&t, c) < 0 ||
          (git_commit_parentcount(c) > 0 && (git_commit_parent(&parent, c, 0) < 0 || git_commit_tree(&pt, parent) < 0)) ||
          git_diff_tree_to_tree(&diff, r->repo, pt, t, NULL) < 0) {
        *errmsg = tool__git_errmsg("cannot diff the commit");
        rc = TOOL_EFAILED;
        goto out;
      }
      git_diff_print(diff, GIT_DIFF_FORMAT_PATCH, diff_print_cb, out);
      *data = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "type", "commit", "commit", hex, "author", a->name,
                        "email", a->email, "time", date, "files", diff_files(diff, r));
      break;
    }
    case GIT_OBJECT_TREE: {
      git_tree *tr = (git_tree *)obj;
      size_t n = git_tree_entrycount(tr);
      for (size_t i = 0; i < n; i++) {
        const git_tree_entry *e = git_tree_entry_byindex(tr, i);
        int dir = git_tree_entry_type(e) == GIT_OBJECT_TREE;
        tool__out_printf(out, "%s%s\n", git_tree_entry_name(e), dir ? "/" : "");
      }
      *data = json_pack("{s:s, s:s}", "type", "tree", "object", hex);
      break;
    }
    case GIT_OBJECT_BLOB: {
      git_blob *b = (git_blob *)obj;
      size_t n = (size_t)git_blob_rawsize(b);
      if (git_blob_is_binary(b)) tool__out_printf(out, "[binary blob, %zu bytes]\n", n);
      else tool__out_append(out, git_blob_rawcontent(b), n);
      *data = json_pack("{s:s, s:s, s:I}", "type", "blob", "object", hex, "size", (json_int_t)n);
      break;
    }
    default:
      *errmsg = qc_asprintf("'%s' names an object qcoder cannot show", rev);
      rc = TOOL_EARGS;
  }
out:
  git_diff_free(diff);
  git_tree_free(t);
  git_tree_free(pt);
  git_commit_free(parent);
  git_object_free(obj);
  return rc;
}
