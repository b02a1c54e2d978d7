/* registry.c — the table of tools, argument validation and tool_call().
 *
 * The registry is assembled from one array per source file (fs.c, edit.c, …), listed in
 * `tool__lists` below: adding a tools file means one line there and one extern in
 * internal.h. The order of the lists is the order the model sees the tools in.
 *
 * Arguments come from the model and are untrusted. Before a handler runs, tool_call()
 * checks them against the tool's JSON schema with a small validator for the subset our
 * schemas use: `type` (a name or an array of names), `properties`, `required`,
 * `additionalProperties` (false, true or a schema), `enum`, `minimum`/`maximum`,
 * `minLength`/`maxLength` (in code points), `items`, `minItems`/`maxItems`, and one
 * extension, `"format": "path"`, for file paths: no NUL byte and at most TOOL__PATH_MAX
 * bytes, refused with TOOL_EESCAPE like any other path that cannot name a place inside
 * the workspace. Strings never contain NUL bytes. Errors name the field
 * (`args.timeout_s: …`) so the model can fix its call.
 */
#include "tools/internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each list ends with an entry whose name is NULL. Tools from other files of this folder
 * are added here (one line each). */
static const tool_def *const tool__lists[] = {
    tool__fs_defs,
    tool__edit_defs,
    tool__grep_defs,
    tool__exec_defs,
    tool__tests_defs,
    tool__code_defs,
    tool__git_defs,
    NULL,
};

/* ---- errors and kinds ------------------------------------------------------------ */

const char *tool_strerror(int code) {
  switch (code) {
  case TOOL_OK: return "ok";
#define TOOL__ERR_CASE(name, msg) case TOOL_E##name: return msg;
    TOOL_ERR_MAP(TOOL__ERR_CASE)
#undef TOOL__ERR_CASE
  default: return "unknown error";
  }
}

const char *tool_kind_name(tool_kind k) {
  switch (k) {
  case TOOL_KIND_READ: return "read";
  case TOOL_KIND_EDIT: return "edit";
  case TOOL_KIND_DELETE: return "delete";
  case TOOL_KIND_MOVE: return "move";
  case TOOL_KIND_SEARCH: return "search";
  case TOOL_KIND_EXECUTE: return "execute";
  case TOOL_KIND_THINK: return "think";
  case TOOL_KIND_FETCH: return "fetch";
  case TOOL_KIND_OTHER: return "other";
  }
  return "other";
}

/* ---- the table ------------------------------------------------------------------- */

static pthread_once_t tool__once = PTHREAD_ONCE_INIT;
static const tool_def **tool__table;
static json_t **tool__schemas;
static size_t tool__n;

static void tool__build(void) {
  size_t n = 0;
  for (size_t l = 0; tool__lists[l]; l++)
    for (const tool_def *d = tool__lists[l]; d->name; d++) n++;
  tool__table = calloc(n ? n : 1, sizeof *tool__table);
  tool__schemas = calloc(n ? n : 1, sizeof *tool__schemas);
  if (!tool__table || !tool__schemas) return; /* tool_count() then reports 0 */
  size_t i = 0;
  for (size_t l = 0; tool__lists[l]; l++) {
    for (const tool_def *d = tool__lists[l]; d->name; d++) {
      json_error_t jerr;
      tool__table[i] = d;
      tool__schemas[i] = json_loads(d->schema, 0, &jerr);
      if (!tool__schemas[i] || !json_is_object(tool__schemas[i]))
        qc_error("tool %s: bad schema: %s (line %d)", d->name, jerr.text, jerr.line);
      i++;
    }
  }
  tool__n = i;
}

size_t tool_count(void) {
  pthread_once(&tool__once, tool__build);
  return tool__n;
}

const tool_def *tool_at(size_t i) {
  pthread_once(&tool__once, tool__build);
  return i < tool__n ? tool__table[i] : NULL;
}

const tool_def *tool_find(const char *name) {
  pthread_once(&tool__once, tool__build);
  if (!name) return NULL;
  for (size_t i = 0; i < tool__n; i++)
    if (strcmp(tool__table[i]->name, name) == 0) return tool__table[i];
  return NULL;
}

const json_t *tool_schema(const tool_def *t) {
  pthread_once(&tool__once, tool__build);
  for (size_t i = 0; i < tool__n; i++)
    if (tool__table[i] == t) return tool__schemas[i];
  return NULL;
}

json_t *tool_openai_schemas(void) {
  json_t *arr = json_array();
  if (!arr) return NULL;
  for (size_t i = 0; i < tool_count(); i++) {
    const tool_def *t = tool_at(i);
    if (t->flags & TOOL_F_INTERNAL) continue;
    const json_t *s = tool_schema(t);
    json_t *fn = json_pack("{s:s, s:{s:s, s:s, s:O}}", "type", "function", "function", "name",
                           t->name, "description", t->description, "parameters",
                           s ? (json_t *)s : json_object());
    if (!fn || json_array_append_new(arr, fn) != 0) {
      json_decref(arr);
      return NULL;
    }
  }
  return arr;
}

/* ---- validation ------------------------------------------------------------------ */

typedef struct tool__verr {
  int code;
  char *msg;
} tool__verr;

static int tool__vfail(tool__verr *e, int code, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int tool__vfail(tool__verr *e, int code, const char *where, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *what = NULL;
  if (vasprintf(&what, fmt, ap) < 0) what = NULL;
  va_end(ap);
  free(e->msg);
  e->msg = qc_asprintf("%s: %s", where, what ? what : "invalid");
  free(what);
  e->code = code;
  return -1;
}

static const char *tool__json_type_name(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT: return "object";
  case JSON_ARRAY: return "array";
  case JSON_STRING: return "string";
  case JSON_INTEGER: return "integer";
  case JSON_REAL: return "number";
  case JSON_TRUE:
  case JSON_FALSE: return "boolean";
  case JSON_NULL: return "null";
  }
  return "value";
}

static int tool__type_matches(const char *type, const json_t *v) {
  if (strcmp(type, "object") == 0) return json_is_object(v);
  if (strcmp(type, "array") == 0) return json_is_array(v);
  if (strcmp(type, "string") == 0) return json_is_string(v);
  if (strcmp(type, "integer") == 0) return json_is_integer(v);
  if (strcmp(type, "number") == 0) return json_is_number(v);
  if (strcmp(type, "boolean") == 0) return json_is_boolean(v);
  if (strcmp(type, "null") == 0) return json_is_null(v);
  return 0;
}

/* Code points in a UTF-8 string (bytes that do not start a sequence are not counted). */
static size_t tool__utf8_count(const char *s, size_t n) {
  size_t c = 0;
  for (size_t i = 0; i < n; i++)
    if (((unsigned char)s[i] & 0xC0) != 0x80) c++;
  return c;
}

static int tool__validate(const json_t *schema, const json_t *v, const char *where, tool__verr *e);

static int tool__validate_object(const json_t *schema, const json_t *v, const char *where,
                                 tool__verr *e) {
  const json_t *props = json_object_get(schema, "properties");
  const json_t *req = json_object_get(schema, "required");
  const json_t *addl = json_object_get(schema, "additionalProperties");
  const char *key;
  const json_t *val;
  json_object_foreach((json_t *)v, key, val) {
    char *sub = qc_asprintf("%s.%s", where, key);
    if (!sub) return tool__vfail(e, TOOL_ENOMEM, where, "out of memory");
    const json_t *ps = json_object_get(props, key);
    int rc = 0;
    if (ps) {
      rc = tool__validate(ps, val, sub, e);
    } else if (json_is_false(addl)) {
      /* list the known fields: the usual cause is a misspelt name */
      qc_buf known;
      qc_buf_init(&known, 4096);
      const char *pk;
      const json_t *pv;
      json_object_foreach((json_t *)props, pk, pv) {
        qc_buf_printf(&known, "%s%s", known.len ? ", " : "", pk);
      }
      rc = tool__vfail(e, TOOL_EARGS, where, "unknown field '%.100s' (allowed: %s)", key,
                       known.len ? known.data : "none");
      qc_buf_release(&known);
    } else if (json_is_object(addl)) {
      rc = tool__validate(addl, val, sub, e);
    }
    free(sub);
    if (rc) return rc;
  }
  /* unknown and mistyped fields first: a misspelt name explains a missing one */
  size_t i;
  const json_t *r;
  json_array_foreach(req, i, r) {
    if (json_is_string(r) && !json_object_get(v, json_string_value(r))) {
      /* say what the field is for, from its description, so the model can supply it */
      const json_t *ps = json_object_get(props, json_string_value(r));
      const char *desc = json_string_value(json_object_get(ps, "description"));
      return tool__vfail(e, TOOL_EARGS, where, "missing required field '%s'%s%s",
                         json_string_value(r), desc ? " — " : "", desc ? desc : "");
    }
  }
  return 0;
}

static int tool__validate(const json_t *schema, const json_t *v, const char *where, tool__verr *e) {
  if (!json_is_object(schema)) return 0;
  const json_t *type = json_object_get(schema, "type");
  if (json_is_string(type)) {
    if (!tool__type_matches(json_string_value(type), v))
      return tool__vfail(e, TOOL_EARGS, where, "expected %s, got %s", json_string_value(type),
                         tool__json_type_name(v));
  } else if (json_is_array(type)) {
    size_t i;
    const json_t *t;
    int ok = 0;
    json_array_foreach(type, i, t) {
      if (json_is_string(t) && tool__type_matches(json_string_value(t), v)) ok = 1;
    }
    if (!ok) {
      qc_buf names;
      qc_buf_init(&names, 256);
      json_array_foreach(type, i, t) {
        if (json_is_string(t))
          qc_buf_printf(&names, "%s%s", names.len ? " or " : "", json_string_value(t));
      }
      int rc = tool__vfail(e, TOOL_EARGS, where, "expected %s, got %s", names.data,
                           tool__json_type_name(v));
      qc_buf_release(&names);
      return rc;
    }
  }

  const json_t *en = json_object_get(schema, "enum");
  if (json_is_array(en)) {
    size_t i;
    const json_t *x;
    int ok = 0;
    json_array_foreach(en, i, x) {
      if (json_equal((json_t *)x, (json_t *)v)) ok = 1;
    }
    if (!ok) {
      char *allowed = json_dumps(en, JSON_COMPACT);
      int rc = tool__vfail(e, TOOL_EARGS, where, "must be one of %s", allowed ? allowed : "the enum");
      free(allowed);
      return rc;
    }
  }

  if (json_is_number(v)) {
    double x = json_number_value(v);
    const json_t *mn = json_object_get(schema, "minimum");
    const json_t *mx = json_object_get(schema, "maximum");
    if (json_is_number(mn) && x < json_number_value(mn))
      return tool__vfail(e, TOOL_EARGS, where, "must be at least %g (got %g)", json_number_value(mn), x);
    if (json_is_number(mx) && x > json_number_value(mx))
      return tool__vfail(e, TOOL_EARGS, where, "must be at most %g (got %g)", json_number_value(mx), x);
  }

  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    const char *fmt = json_string_value(json_object_get(schema, "format"));
    int is_path = fmt && strcmp(fmt, "path") == 0;
    if (strlen(s) != n)
      return tool__vfail(e, is_path ? TOOL_EESCAPE : TOOL_EARGS, where,
                         "contains a NUL byte%s", is_path ? "; such a path cannot name a file in the workspace" : "");
    if (is_path && n > TOOL__PATH_MAX)
      return tool__vfail(e, TOOL_EESCAPE, where, "path is %zu bytes long; paths are at most %d bytes",
                         n, TOOL__PATH_MAX);
    const json_t *mn = json_object_get(schema, "minLength");
    const json_t *mx = json_object_get(schema, "maxLength");
    if (json_is_integer(mn) || json_is_integer(mx)) {
      size_t cps = tool__utf8_count(s, n);
      if (json_is_integer(mn) && (json_int_t)cps < json_integer_value(mn))
        return tool__vfail(e, TOOL_EARGS, where, "must be at least %lld characters long",
                           (long long)json_integer_value(mn));
      if (json_is_integer(mx) && (json_int_t)cps > json_integer_value(mx))
        return tool__vfail(e, TOOL_EARGS, where, "is %zu characters long; the limit is %lld", cps,
                           (long long)json_integer_value(mx));
    }
  }

  if (json_is_array(v)) {
    const json_t *mn = json_object_get(schema, "minItems");
    const json_t *mx = json_object_get(schema, "maxItems");
    size_t n = json_array_size(v);
    if (json_is_integer(mn) && (json_int_t)n < json_integer_value(mn))
      return tool__vfail(e, TOOL_EARGS, where, "needs at least %lld items", (long long)json_integer_value(mn));
    if (json_is_integer(mx) && (json_int_t)n > json_integer_value(mx))
      return tool__vfail(e, TOOL_EARGS, where, "has %zu items; the limit is %lld", n,
                         (long long)json_integer_value(mx));
    const json_t *items = json_object_get(schema, "items");
    if (json_is_object(items)) {
      size_t i;
      const json_t *x;
      json_array_foreach(v, i, x) {
        char *sub = qc_asprintf("%s[%zu]", where, i);
        if (!sub) return tool__vfail(e, TOOL_ENOMEM, where, "out of memory");
        int rc = tool__validate(items, x, sub, e);
        free(sub);
        if (rc) return rc;
      }
    }
  }

  if (json_is_object(v)) return tool__validate_object(schema, v, where, e);
  return 0;
}

int tool__validate_json(const json_t *schema, const json_t *args, char **errmsg) {
  *errmsg = NULL;
  if (!args || !json_is_object(args)) {
    *errmsg = qc_asprintf("args: expected an object of named arguments, got %s",
                          args ? tool__json_type_name(args) : "nothing");
    return TOOL_EARGS;
  }
  tool__verr e = {TOOL_OK, NULL};
  if (tool__validate(schema, args, "args", &e) != 0) {
    *errmsg = e.msg;
    return e.code;
  }
  return TOOL_OK;
}

int tool_validate_args(const tool_def *t, const json_t *args, char **errmsg) {
  const json_t *schema = tool_schema(t);
  if (!schema) {
    *errmsg = qc_asprintf("tool %s has no valid schema", t ? t->name : "(null)");
    return TOOL_EUNKNOWN;
  }
  return tool__validate_json(schema, args, errmsg);
}

/* ---- results --------------------------------------------------------------------- */

void tool_result_release(tool_result *r) {
  if (!r) return;
  free(r->output);
  free(r->error);
  json_decref(r->data);
  memset(r, 0, sizeof *r);
}

json_t *tool_result_to_json(const tool_result *r) {
  json_t *o = json_object();
  if (!o) return NULL;
  json_object_set_new(o, "ok", json_boolean(r->ok));
  json_object_set_new(o, "output", json_string(r->output ? r->output : ""));
  json_object_set_new(o, "error", json_string(r->error ? r->error : ""));
  json_object_set_new(o, "data", r->data ? json_incref(r->data) : json_object());
  return o;
}

int tool__ok_take(tool_result *res, char *output) {
  free(res->output);
  res->output = output ? output : strdup("");
  return TOOL_OK;
}

int tool__ok(tool_result *res, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0) s = NULL;
  va_end(ap);
  return tool__ok_take(res, s);
}

int tool__fail_take(tool_result *res, int code, char *error) {
  free(res->error);
  res->error = error ? error : strdup(tool_strerror(code));
  return code;
}

int tool__fail(tool_result *res, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0) s = NULL;
  va_end(ap);
  return tool__fail_take(res, code, s);
}

json_t *tool__data(tool_result *res) {
  if (!res->data) res->data = json_object();
  return res->data;
}

void tool__add_location(tool_result *res, const char *abs, long line) {
  json_t *d = tool__data(res);
  if (!d) return;
  json_t *locs = json_object_get(d, "locations");
  if (!locs) {
    locs = json_array();
    if (!locs || json_object_set_new(d, "locations", locs) != 0) return;
  }
  json_t *l = line > 0 ? json_pack("{s:s, s:I}", "path", abs, "line", (json_int_t)line)
                       : json_pack("{s:s}", "path", abs);
  if (l) json_array_append_new(locs, l);
}

/* ---- arguments ------------------------------------------------------------------- */

const char *tool__arg_str(const json_t *args, const char *key, const char *dflt) {
  const json_t *v = json_object_get(args, key);
  return json_is_string(v) ? json_string_value(v) : dflt;
}

const char *tool__arg_strn(const json_t *args, const char *key, size_t *len) {
  const json_t *v = json_object_get(args, key);
  if (!json_is_string(v)) {
    *len = 0;
    return NULL;
  }
  *len = json_string_length(v);
  return json_string_value(v);
}

long long tool__arg_int(const json_t *args, const char *key, long long dflt) {
  const json_t *v = json_object_get(args, key);
  return json_is_integer(v) ? (long long)json_integer_value(v) : dflt;
}

int tool__arg_bool(const json_t *args, const char *key, int dflt) {
  const json_t *v = json_object_get(args, key);
  return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* ---- calling --------------------------------------------------------------------- */

tool_ws *tool_ctx_ws(tool_call_ctx *ctx) { return ctx->ws; }

int tool_ctx_cancelled(const tool_call_ctx *ctx) {
  return ctx->opts && ctx->opts->cancel && atomic_load(ctx->opts->cancel) != 0;
}

int tool_call(tool_ws *ws, const char *name, const json_t *args, const tool_call_opts *opts,
              tool_result *res) {
  memset(res, 0, sizeof *res);
  int rc;
  const tool_def *t = tool_find(name);
  if (!t) {
    qc_buf names;
    qc_buf_init(&names, 4096);
    for (size_t i = 0; i < tool_count(); i++)
      if (!(tool_at(i)->flags & TOOL_F_INTERNAL))
        qc_buf_printf(&names, "%s%s", names.len ? ", " : "", tool_at(i)->name);
    rc = tool__fail(res, TOOL_EUNKNOWN, "there is no tool named '%.100s'; the tools are: %s",
                    name ? name : "(null)", names.data);
    qc_buf_release(&names);
    goto out;
  }
  json_t *empty = NULL;
  if (!args) args = empty = json_object();
  char *msg = NULL;
  rc = tool_validate_args(t, args, &msg);
  if (rc != TOOL_OK) {
    json_decref(empty);
    tool__fail_take(res, rc, qc_asprintf("%s: %s. Fix the arguments and call it again.", t->name,
                                         msg ? msg : "invalid arguments"));
    free(msg);
    goto out;
  }
  if ((t->flags & TOOL_F_GIT) && !ws->repo) {
    json_decref(empty);
    rc = tool__fail(res, TOOL_ENOTREPO, "%s needs a git repository; %s is not inside one", t->name,
                    ws->root);
    goto out;
  }
  static const tool_call_opts no_opts;
  tool_call_ctx ctx = {ws, t, opts ? opts : &no_opts};
  if (tool_ctx_cancelled(&ctx)) {
    rc = tool__fail(res, TOOL_ECANCELLED, "cancelled before %s started", t->name);
  } else {
    rc = t->handler(&ctx, args, res);
  }
  json_decref(empty);
out:
  if (rc == TOOL_OK) {
    res->ok = 1;
    if (!res->output) res->output = strdup("");
    free(res->error);
    res->error = NULL;
  } else {
    res->ok = 0;
    if (!res->error) res->error = strdup(tool_strerror(rc));
  }
  return rc;
}
