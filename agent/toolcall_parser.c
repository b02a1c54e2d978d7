/* toolcall_parser.c — reading Qwen3-Coder tool calls out of a token stream.
 *
 * THE GRAMMAR. Qwen3-Coder writes tool calls as XML-like text after optional prose:
 *
 *     prose <tool_call>\n<function=NAME>\n<parameter=P>\nVALUE\n</parameter>\n…</function>\n</tool_call>
 *
 * `<tool_call>` and `</tool_call>` are single tokens; `<function=` and `<parameter=` are
 * ordinary text. VALUE is raw text — code, JSON, anything — with exactly one leading and
 * one trailing newline that belong to the markup. Several calls are consecutive blocks.
 *
 * WHAT GOES WRONG IN PRACTICE, and what this parser does about it:
 *  - The closing tags go missing at the end of a reply (</parameter>, </function>,
 *    </tool_call>): the end of the stream closes whatever is open, unless the stream was
 *    cut by a token limit — then the call is reported as cut off, never run half-written.
 *  - The model drops `<tool_call>` and writes a bare `<function=NAME>` (vLLM falls back to
 *    the same): accepted when NAME is a plausible identifier followed by a line end.
 *  - Values contain markup-like text: a file that itself holds `</parameter>` or a whole
 *    example tool call. A closing tag is STRUCTURAL only when what follows it (after
 *    whitespace) is a plausible continuation: `</parameter>` must be followed by
 *    `<parameter=KNOWN_NAME>`, `</function>`, `</tool_call>` or `<tool_call>` (or the end
 *    of the stream);
 *    anything else keeps it as value text. `<parameter=` at the start of a line inside a
 *    value opens a nested literal whose `</parameter>` is balanced, as in vLLM's newer
 *    structural scan. At the end of the stream, a value that never found its structural
 *    end falls back, in order, to: the next line-start `<parameter=NAME>` with NAME a
 *    known, not yet given parameter (a forgotten `</parameter>`); a `</function>` followed
 *    by `</tool_call>` or the end; the end of the stream.
 *  - `<tool_call>` blocks holding JSON (`{"name": …, "arguments": …}`, the Qwen3/Hermes
 *    style) are read as calls too.
 *  - Wrong calls — unknown tool, unknown or repeated parameter, missing required one, a
 *    value that does not convert to its schema type, a malformed block — become calls with
 *    `error` set: the model reads the error instead of the tool's result. Nothing that looks
 *    like a call is dropped silently and nothing crashes.
 *
 * STREAMING. Text is passed on as it arrives except for a held-back tail that could still
 * become `<tool_call>` or `<function=` (at most 10 bytes), so a call is never shown to the
 * user as prose. Calls are emitted complete, when their `</function>` (or the block end)
 * is seen. Inside a call the scanner keeps its position and nesting depth, so each byte is
 * examined a bounded number of times: feeding a reply byte by byte costs the same as
 * feeding it whole, and gives the same result (the tests feed every split point).
 *
 * TYPES. Values are converted by the tool's JSON schema the way vLLM's qwen3_coder parser
 * does: string types raw; integer/number parsed (integral numbers become integers);
 * boolean true/false; object/array as JSON, else as a Python literal (the July 2025
 * template taught the model Python reprs); "null"/"None" become null for non-string
 * types or when the schema allows null. Where vLLM silently degrades (a non-number for an
 * integer, "yes" for a boolean) this parser reports an error the model can fix.
 *
 * BOUNDS. AGENT__TCP_MAX_* in limits.h: a call larger than 1 MiB is reported as an
 * error and skipped to its `</tool_call>`; names and parameter counts are capped.
 */
#include "agent/toolcall_parser.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/chat_format.h"
#include "common/common.h"

static const char T_CALL[] = "<tool_call>";
static const char T_CALL_END[] = "</tool_call>";
static const char T_FUNC[] = "<function=";
static const char T_FUNC_END[] = "</function>";
static const char T_PARAM[] = "<parameter=";
static const char T_PARAM_END[] = "</parameter>";
#define LEN(lit) (sizeof(lit) - 1)

typedef enum {
  S_TEXT,       /* prose */
  S_BLOCK,      /* inside <tool_call>, before a function (or between two) */
  S_JUNK,       /* inside <tool_call>, unexpected text */
  S_JSON,       /* inside <tool_call>, a JSON call */
  S_FNAME,      /* after <function= */
  S_FBODY,      /* between parameters */
  S_PVALUE,     /* inside a parameter value */
  S_AFTER_FUNC, /* after </function> */
  S_SKIP,       /* an oversized call: skipping to </tool_call> */
} pstate;

typedef struct param_span {
  size_t name_off, name_len, val_off, val_len;
} param_span;

struct agent__tcp {
  const json_t *tools;
  agent__tcp_cbs cbs;
  qc_buf buf;       /* unconsumed input; in call states buf[0] is where the call began */
  qc_buf held_ws;   /* whitespace after a call, shown only if prose follows */
  pstate st;
  int eos, truncated;
  size_t pos;       /* scan position in buf */
  int wrapped;      /* the current block opened with <tool_call> */
  int funcs_in_block;
  int n_calls;
  int after_call;   /* no prose since the last call */
  /* current function */
  size_t func_start, name_off, name_len;
  int name_bad;
  param_span params[AGENT__TCP_MAX_PARAMS];
  int n_params, too_many_params, bad_param;
  /* current value */
  size_t val_start, scan, pname_off, pname_len;
  int depth;
  int oom;
};

/* ---- calls ----------------------------------------------------------------------------- */

void agent__call_free(agent__call *c) {
  if (!c) return;
  free(c->id);
  free(c->name);
  json_decref(c->args);
  free(c->error);
  free(c->raw);
  free(c);
}

static const json_t *find_tool(const json_t *tools, const char *name) {
  size_t i;
  json_t *t;
  json_array_foreach(tools, i, t) {
    json_t *fn = json_object_get(t, "function");
    const json_t *def = fn ? fn : t;
    const char *n = json_string_value(json_object_get(def, "name"));
    if (n && strcmp(n, name) == 0) return def;
  }
  return NULL;
}

static void add_error(qc_buf *errs, const char *msg) {
  if (errs->len) qc_buf_puts(errs, "; ");
  qc_buf_puts(errs, msg);
}

static void list_names(qc_buf *b, const json_t *obj_or_tools, int tools) {
  int first = 1;
  if (tools) {
    size_t i;
    json_t *t;
    json_array_foreach(obj_or_tools, i, t) {
      json_t *fn = json_object_get(t, "function");
      const char *n = json_string_value(json_object_get(fn ? fn : t, "name"));
      if (!n) continue;
      qc_buf_printf(b, "%s%s", first ? "" : ", ", n);
      first = 0;
    }
  } else {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj_or_tools, k, v) {
      qc_buf_printf(b, "%s%s", first ? "" : ", ", k);
      first = 0;
    }
  }
  if (first) qc_buf_puts(b, "(none)");
}

/* Check a call's arguments against its tool: known tool, known parameters, required ones
 * present. Errors are appended to `errs`. Returns the tool's definition or NULL. */
static const json_t *check_call(const json_t *tools, const char *name, const json_t *args, qc_buf *errs) {
  const json_t *def = tools ? find_tool(tools, name) : NULL;
  if (!def) {
    qc_buf b;
    qc_buf_init(&b, 0);
    qc_buf_printf(&b, "unknown tool '%s'; the available tools are: ", name);
    list_names(&b, tools, 1);
    add_error(errs, b.data);
    qc_buf_release(&b);
    return NULL;
  }
  json_t *params = json_object_get(def, "parameters");
  json_t *props = json_object_get(params, "properties");
  json_t *req = json_object_get(params, "required");
  if (json_is_object(props)) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)args, k, v) {
      if (json_object_get(props, k)) continue;
      qc_buf b;
      qc_buf_init(&b, 0);
      qc_buf_printf(&b, "unknown parameter '%s' for %s (its parameters are: ", k, name);
      list_names(&b, props, 0);
      qc_buf_putc(&b, ')');
      add_error(errs, b.data);
      qc_buf_release(&b);
    }
  }
  size_t i;
  json_t *r;
  json_array_foreach(req, i, r) {
    const char *rn = json_string_value(r);
    if (rn && !json_object_get(args, rn)) {
      char *m = qc_asprintf("missing required parameter '%s' for %s", rn, name);
      add_error(errs, m ? m : "missing required parameter");
      free(m);
    }
  }
  return def;
}

static char *excerpt(const char *s, size_t n) {
  if (n <= AGENT__TCP_RAW_EXCERPT) return qc_utf8_sanitize(s, n, NULL);
  size_t keep = qc_utf8_complete_len(s, AGENT__TCP_RAW_EXCERPT);
  char *head = qc_utf8_sanitize(s, keep, NULL);
  char *r = qc_asprintf("%s… [%zu more bytes]", head ? head : "", n - keep);
  free(head);
  return r;
}

static agent__call *call_new(const char *name, size_t name_len) {
  agent__call *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->name = qc_utf8_sanitize(name, name_len, NULL);
  c->args = json_object();
  if (!c->name || !c->args) {
    agent__call_free(c);
    return NULL;
  }
  return c;
}

static void call_set_error(agent__call *c, const char *msg) {
  if (c->error) {
    char *m = qc_asprintf("%s; %s", c->error, msg);
    if (m) {
      free(c->error);
      c->error = m;
    }
  } else {
    c->error = strdup(msg);
  }
}

/* ---- value conversion ---------------------------------------------------------------- */

static int ieq(const char *s, size_t n, const char *lit) {
  return strlen(lit) == n && strncasecmp(s, lit, n) == 0;
}

static void trim_span(const char **s, size_t *n) {
  while (*n && isspace((unsigned char)**s)) (*s)++, (*n)--;
  while (*n && isspace((unsigned char)(*s)[*n - 1])) (*n)--;
}

static int starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

/* The value as quoted in an error: at most 80 bytes of it. */
static char *quote_short(const char *s) {
  size_t n = strlen(s);
  if (n <= 80) return qc_asprintf("'%s'", s);
  size_t k = qc_utf8_complete_len(s, 80);
  return qc_asprintf("'%.*s…' (%zu bytes)", (int)k, s, n);
}

static char *got_msg(const char *what, const char *value) {
  char *q = quote_short(value);
  char *m = qc_asprintf("%s, got %s", what, q ? q : "?");
  free(q);
  return m;
}

json_t *agent__convert_value(const char *raw, size_t n, const json_t *prop, char **err) {
  *err = NULL;
  /* The type: a string, a list (first non-null), or anyOf's first non-null type. */
  char tname[32] = "string";
  int allows_null = 0, typed = 0;
  json_t *type = json_object_get(prop, "type");
  if (json_is_string(type)) {
    snprintf(tname, sizeof tname, "%s", json_string_value(type));
    typed = 1;
  } else if (json_is_array(type)) {
    size_t i;
    json_t *t;
    json_array_foreach(type, i, t) {
      const char *ts = json_string_value(t);
      if (!ts) continue;
      if (strcasecmp(ts, "null") == 0) allows_null = 1;
      else if (!typed) {
        snprintf(tname, sizeof tname, "%s", ts);
        typed = 1;
      }
    }
  } else if (json_is_array(json_object_get(prop, "anyOf"))) {
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(prop, "anyOf"), i, o) {
      const char *ts = json_string_value(json_object_get(o, "type"));
      if (!ts) continue;
      if (strcasecmp(ts, "null") == 0) allows_null = 1;
      else if (!typed) {
        snprintf(tname, sizeof tname, "%s", ts);
        typed = 1;
      }
    }
  }
  for (char *p = tname; *p; p++) *p = (char)tolower((unsigned char)*p);
  if (strcmp(tname, "null") == 0) allows_null = 1;

  const char *t = raw;
  size_t tn = n;
  trim_span(&t, &tn);
  int is_null_word = ieq(t, tn, "null") || ieq(t, tn, "none");
  if (allows_null && is_null_word) return json_null();
  if (!strcmp(tname, "string") || !strcmp(tname, "str") || !strcmp(tname, "text") ||
      !strcmp(tname, "varchar") || !strcmp(tname, "char") || !strcmp(tname, "enum"))
    return json_stringn(raw, n);
  if (is_null_word) return json_null();

  char *tmp = qc_strndup(t, tn);
  if (!tmp) return NULL;
  json_t *res = NULL;
  if (starts(tname, "int") || starts(tname, "uint") || starts(tname, "long") || starts(tname, "short") ||
      starts(tname, "unsigned")) {
    char *end;
    errno = 0;
    long long v = strtoll(tmp, &end, 10);
    if (tn && *end == '\0' && errno == 0) {
      res = json_integer(v);
    } else {
      double d = strtod(tmp, &end);
      if (tn && *end == '\0' && isfinite(d) && d == floor(d) && fabs(d) < 9.2e18)
        res = json_integer((json_int_t)d);
      else
        *err = got_msg("must be an integer", tmp);
    }
  } else if (starts(tname, "num") || starts(tname, "float") || starts(tname, "double")) {
    char *end;
    double d = strtod(tmp, &end);
    if (tn && *end == '\0' && isfinite(d))
      res = (d == floor(d) && fabs(d) < 9.2e18) ? json_integer((json_int_t)d) : json_real(d);
    else
      *err = got_msg("must be a number", tmp);
  } else if (!strcmp(tname, "boolean") || !strcmp(tname, "bool") || !strcmp(tname, "binary")) {
    if (ieq(t, tn, "true")) res = json_true();
    else if (ieq(t, tn, "false")) res = json_false();
    else *err = got_msg("must be true or false", tmp);
  } else {
    int want_obj = !strcmp(tname, "object") || starts(tname, "dict");
    int want_arr = !strcmp(tname, "array") || !strcmp(tname, "arr") || starts(tname, "list");
    res = json_loadb(t, tn, JSON_DECODE_ANY, NULL);
    if (json_is_string(res) && (want_obj || want_arr)) {
      /* a JSON string holding the value (double-encoded) */
      const char *inner = json_string_value(res);
      json_t *again = json_loads(inner, JSON_DECODE_ANY, NULL);
      if (!again) again = agent__py_literal(inner, strlen(inner));
      if (again) {
        json_decref(res);
        res = again;
      }
    }
    if (!res) res = agent__py_literal(t, tn);
    if (want_obj || want_arr) {
      if (!res || (want_obj && !json_is_object(res)) || (want_arr && !json_is_array(res))) {
        json_decref(res);
        res = NULL;
        *err = qc_asprintf("must be a JSON %s", want_obj ? "object" : "array");
      }
    } else if (!res) {
      res = json_stringn(raw, n); /* unknown type: keep the text */
    }
  }
  free(tmp);
  if (!res && !*err) *err = strdup("out of memory");
  return res;
}

/* ---- Python literals ------------------------------------------------------------------- */

typedef struct lit {
  const char *s;
  size_t n, i;
  int depth;
} lit;

static void lit_ws(lit *L) {
  while (L->i < L->n && isspace((unsigned char)L->s[L->i])) L->i++;
}

static json_t *lit_value(lit *L);

static json_t *lit_string(lit *L) {
  char q = L->s[L->i++];
  qc_buf b;
  qc_buf_init(&b, L->n + 1);
  while (L->i < L->n && L->s[L->i] != q) {
    char c = L->s[L->i++];
    if (c == '\n') goto bad;
    if (c != '\\') {
      qc_buf_putc(&b, c);
      continue;
    }
    if (L->i >= L->n) goto bad;
    c = L->s[L->i++];
    unsigned long cp = 0;
    int digits = 0;
    switch (c) {
    case 'n': qc_buf_putc(&b, '\n'); break;
    case 't': qc_buf_putc(&b, '\t'); break;
    case 'r': qc_buf_putc(&b, '\r'); break;
    case '0': qc_buf_putc(&b, '\0'); break;
    case '\\': case '\'': case '"': qc_buf_putc(&b, c); break;
    case '\n': break;
    case 'x': digits = 2; break;
    case 'u': digits = 4; break;
    case 'U': digits = 8; break;
    default: qc_buf_putc(&b, '\\'); qc_buf_putc(&b, c);
    }
    if (digits) {
      for (int k = 0; k < digits; k++) {
        if (L->i >= L->n || !isxdigit((unsigned char)L->s[L->i])) goto bad;
        char h = L->s[L->i++];
        cp = cp * 16 + (unsigned long)(isdigit((unsigned char)h) ? h - '0' : (tolower((unsigned char)h) - 'a' + 10));
      }
      if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) goto bad;
      char u[4];
      int k = 0;
      if (cp < 0x80) u[k++] = (char)cp;
      else if (cp < 0x800) { u[k++] = (char)(0xC0 | (cp >> 6)); u[k++] = (char)(0x80 | (cp & 0x3F)); }
      else if (cp < 0x10000) { u[k++] = (char)(0xE0 | (cp >> 12)); u[k++] = (char)(0x80 | ((cp >> 6) & 0x3F)); u[k++] = (char)(0x80 | (cp & 0x3F)); }
      else { u[k++] = (char)(0xF0 | (cp >> 18)); u[k++] = (char)(0x80 | ((cp >> 12) & 0x3F)); u[k++] = (char)(0x80 | ((cp >> 6) & 0x3F)); u[k++] = (char)(0x80 | (cp & 0x3F)); }
      qc_buf_append(&b, u, (size_t)k);
    }
  }
  if (L->i >= L->n) goto bad;
  L->i++;
  json_t *r = json_stringn_nocheck(b.data, b.len);
  if (r && !qc_utf8_valid(b.data, b.len)) {
    json_decref(r);
    r = NULL;
  }
  qc_buf_release(&b);
  return r;
bad:
  qc_buf_release(&b);
  return NULL;
}

static json_t *lit_seq(lit *L, char close, int dict) {
  L->i++;
  json_t *r = dict ? json_object() : json_array();
  if (!r) return NULL;
  for (;;) {
    lit_ws(L);
    if (L->i < L->n && L->s[L->i] == close) {
      L->i++;
      return r;
    }
    json_t *k = lit_value(L);
    if (!k) goto bad;
    if (dict) {
      lit_ws(L);
      if (L->i >= L->n || L->s[L->i] != ':') { json_decref(k); goto bad; }
      L->i++;
      json_t *v = lit_value(L);
      if (!v) { json_decref(k); goto bad; }
      qc_buf kb;
      qc_buf_init(&kb, 0);
      agent__py_str(&kb, k);  /* JSON keys are strings: str() of the Python key */
      json_object_set_new(r, kb.data, v);
      qc_buf_release(&kb);
      json_decref(k);
    } else {
      json_array_append_new(r, k);
    }
    lit_ws(L);
    if (L->i < L->n && L->s[L->i] == ',') {
      L->i++;
      continue;
    }
    if (L->i < L->n && L->s[L->i] == close) {
      L->i++;
      return r;
    }
    goto bad;
  }
bad:
  json_decref(r);
  return NULL;
}

static json_t *lit_value(lit *L) {
  lit_ws(L);
  if (L->i >= L->n || ++L->depth > AGENT__TCP_MAX_DEPTH) return NULL;
  json_t *r = NULL;
  char c = L->s[L->i];
  if (c == '\'' || c == '"') r = lit_string(L);
  else if (c == '[') r = lit_seq(L, ']', 0);
  else if (c == '(') r = lit_seq(L, ')', 0);
  else if (c == '{') r = lit_seq(L, '}', 1);
  else if (L->n - L->i >= 4 && !strncmp(L->s + L->i, "True", 4)) { L->i += 4; r = json_true(); }
  else if (L->n - L->i >= 5 && !strncmp(L->s + L->i, "False", 5)) { L->i += 5; r = json_false(); }
  else if (L->n - L->i >= 4 && !strncmp(L->s + L->i, "None", 4)) { L->i += 4; r = json_null(); }
  else if (c == '-' || c == '+' || c == '.' || isdigit((unsigned char)c)) {
    size_t j = L->i;
    while (j < L->n && (isalnum((unsigned char)L->s[j]) || strchr("+-._", L->s[j]))) j++;
    char num[64];
    size_t len = j - L->i;
    if (len == 0 || len >= sizeof num) return NULL;
    size_t k = 0;
    for (size_t x = L->i; x < j; x++)
      if (L->s[x] != '_') num[k++] = L->s[x];
    num[k] = '\0';
    char *end;
    errno = 0;
    long long v = strtoll(num, &end, 10);
    if (*end == '\0' && errno == 0) r = json_integer(v);
    else {
      double d = strtod(num, &end);
      if (*end == '\0' && isfinite(d)) r = json_real(d);
    }
    if (r) L->i = j;
  }
  L->depth--;
  return r;
}

json_t *agent__py_literal(const char *s, size_t n) {
  lit L = {s, n, 0, 0};
  json_t *r = lit_value(&L);
  if (!r) return NULL;
  lit_ws(&L);
  if (L.i != L.n) {
    json_decref(r);
    return NULL;
  }
  return r;
}

/* ---- building calls --------------------------------------------------------------------- */

/* What the model reads for a call its reply was cut inside of (token limit, context full,
 * cancelled): not its fault as written, so not "malformed" — just too long. */
static const char CUT_MSG[] = "your reply was cut off (token limit) inside this tool call, so it was not run; "
                              "make the call again, smaller if needed (for a big file, write it in parts)";

/* The block or call running to `end` was still open when a cut stream ended. */
static int cut_inside(const agent__tcp *p, size_t end) { return p->eos && p->truncated && end >= p->buf.len; }

/* Finish the current function: convert and check its parameters, emit the call. */
static void emit_call(agent__tcp *p, size_t end, unsigned flags) {
  const char *b = p->buf.data;
  agent__call *c = call_new(b + p->name_off, p->name_len);
  if (!c) {
    p->oom = 1;
    goto out;
  }
  c->flags = flags;
  c->raw = excerpt(b + p->func_start, end > p->func_start ? end - p->func_start : 0);
  qc_buf errs;
  qc_buf_init(&errs, 64 * 1024);
  if (p->n_calls >= AGENT__TCP_MAX_CALLS) {
    add_error(&errs, "too many tool calls in one reply; make at most a few calls at a time");
  } else if (p->name_bad) {
    add_error(&errs, "malformed function name in <function=NAME>");
  } else {
    const json_t *def = p->tools ? find_tool(p->tools, c->name) : NULL;
    json_t *props = json_object_get(json_object_get(def, "parameters"), "properties");
    for (int i = 0; i < p->n_params; i++) {
      param_span *ps = &p->params[i];
      char *pname = qc_strndup(b + ps->name_off, ps->name_len);
      if (!pname) {
        p->oom = 1;
        break;
      }
      const char *v = b + ps->val_off;
      size_t vn = ps->val_len;
      if (vn && v[0] == '\n') v++, vn--;
      if (vn && v[vn - 1] == '\n') vn--;
      json_t *val = NULL;
      if (json_object_get(c->args, pname)) {
        char *m = qc_asprintf("parameter '%s' is given twice", pname);
        add_error(&errs, m ? m : "a parameter is given twice");
        free(m);
      } else if (!qc_utf8_valid(v, vn)) {
        char *m = qc_asprintf("parameter '%s' is not valid UTF-8", pname);
        add_error(&errs, m ? m : "invalid UTF-8");
        free(m);
      } else {
        json_t *schema = json_object_get(props, pname);
        char *err = NULL;
        val = schema ? agent__convert_value(v, vn, schema, &err) : json_stringn(v, vn);
        if (!val) {
          char *m = qc_asprintf("parameter '%s' of %s %s", pname, c->name, err ? err : "could not be read");
          add_error(&errs, m ? m : "a parameter could not be read");
          free(m);
          val = json_stringn(v, vn); /* shown to the user as written */
        }
        free(err);
      }
      if (val) json_object_set_new(c->args, pname, val);
      free(pname);
    }
    if (p->too_many_params) add_error(&errs, "too many parameters");
    if (p->bad_param) add_error(&errs, "a <parameter=NAME> tag has a malformed name");
    check_call(p->tools, c->name, c->args, &errs);
  }
  if (p->truncated && (flags & AGENT__CALL_UNCLOSED)) add_error(&errs, CUT_MSG);
  if (errs.len) call_set_error(c, errs.data);
  qc_buf_release(&errs);
  p->n_calls++;
  p->after_call = 1;
  qc_buf_reset(&p->held_ws);
  p->cbs.on_call(p->cbs.user, c);
out:
  p->n_params = 0;
  p->too_many_params = 0;
  p->bad_param = 0;
  p->name_bad = 0;
  p->funcs_in_block++;
}

/* A call that could not be read as a function at all. */
static void emit_bad_block(agent__tcp *p, size_t start, size_t end, const char *why) {
  agent__call *c = call_new("", 0);
  if (!c) {
    p->oom = 1;
    return;
  }
  c->raw = excerpt(p->buf.data + start, end > start ? end - start : 0);
  c->flags = AGENT__CALL_UNCLOSED;
  call_set_error(c, cut_inside(p, end) ? CUT_MSG : why);
  p->n_calls++;
  p->after_call = 1;
  qc_buf_reset(&p->held_ws);
  p->funcs_in_block++;
  p->cbs.on_call(p->cbs.user, c);
}

/* A JSON call inside <tool_call> (Qwen3 / Hermes style). */
static void emit_json_block(agent__tcp *p, size_t start, size_t end) {
  const char *s = p->buf.data + start;
  size_t n = end - start;
  trim_span(&s, &n);
  json_t *o = json_loadb(s, n, 0, NULL);
  const char *name = json_string_value(json_object_get(o, "name"));
  if (!name) {
    json_decref(o);
    emit_bad_block(p, start, end, "malformed tool call: expected <function=NAME> inside <tool_call> "
                                  "(see the format in the system prompt)");
    return;
  }
  json_t *args = json_object_get(o, "arguments");
  if (!args) args = json_object_get(o, "parameters");
  char *args_s = json_is_string(args) ? strdup(json_string_value(args))
               : args                  ? json_dumps(args, JSON_COMPACT | JSON_PRESERVE_ORDER)
                                       : strdup("{}");
  agent__call *c = agent__call_from_native(p->tools, NULL, name, args_s ? args_s : "{}");
  free(args_s);
  json_decref(o);
  if (!c) {
    p->oom = 1;
    return;
  }
  c->flags &= ~(unsigned)AGENT__CALL_NATIVE;
  if (cut_inside(p, end)) agent__call_mark_cut(c); /* the JSON may look whole, but the block never closed */
  free(c->raw);
  c->raw = excerpt(p->buf.data + start, end - start);
  p->n_calls++;
  p->after_call = 1;
  qc_buf_reset(&p->held_ws);
  p->funcs_in_block++;
  p->cbs.on_call(p->cbs.user, c);
}

void agent__call_mark_cut(agent__call *c) {
  free(c->error);
  c->error = NULL;
  call_set_error(c, CUT_MSG);
  c->flags |= AGENT__CALL_UNCLOSED;
}

agent__call *agent__call_from_native(const json_t *tools, const char *id, const char *name,
                                     const char *args_json) {
  agent__call *c = call_new(name ? name : "", name ? strlen(name) : 0);
  if (!c) return NULL;
  c->flags = AGENT__CALL_NATIVE;
  if (id) c->id = strdup(id);
  c->raw = qc_asprintf("%s(%s)", c->name, args_json ? args_json : "");
  qc_buf errs;
  qc_buf_init(&errs, 64 * 1024);
  const char *a = args_json ? args_json : "";
  size_t an = strlen(a);
  trim_span(&a, &an);
  json_t *args = an ? json_loadb(a, an, 0, NULL) : json_object();
  if (!json_is_object(args)) {
    json_decref(args);
    add_error(&errs, "the arguments are not a JSON object");
  } else {
    json_decref(c->args);
    c->args = args;
    const json_t *def = tools ? find_tool(tools, c->name) : NULL;
    json_t *props = json_object_get(json_object_get(def, "parameters"), "properties");
    const char *k;
    json_t *v;
    /* strings where the schema wants another type: convert as if written in XML */
    json_object_foreach(c->args, k, v) {
      json_t *schema = json_object_get(props, k);
      json_t *type = json_object_get(schema, "type");
      if (!json_is_string(v) || !schema || !type || (json_is_string(type) && !strcmp(json_string_value(type), "string")))
        continue;
      char *err = NULL;
      json_t *conv = agent__convert_value(json_string_value(v), json_string_length(v), schema, &err);
      if (conv && !json_is_string(conv)) json_object_set_new(c->args, k, conv);
      else json_decref(conv);
      free(err);
    }
  }
  check_call(tools, c->name, c->args, &errs);
  if (errs.len) call_set_error(c, errs.data);
  qc_buf_release(&errs);
  return c;
}

/* ---- the scanner --------------------------------------------------------------------------- */

enum { NO = 0, YES = 1, MORE = -1 };

/* Does buf[pos..] start with `tag`? MORE when the buffer ends inside a possible match and
 * the stream has not ended. */
static int at(const agent__tcp *p, size_t pos, const char *tag, size_t n) {
  size_t have = p->buf.len - pos;
  if (have >= n) return memcmp(p->buf.data + pos, tag, n) == 0 ? YES : NO;
  if (memcmp(p->buf.data + pos, tag, have) != 0) return NO;
  return p->eos ? NO : MORE;
}
#define AT(pos, tag) at(p, (pos), (tag), LEN(tag))

static int name_char_ok(char c) { return !strchr("{}<>\"' \t\n\r", c); }

/* Read NAME> at pos. YES: *len set (pos + *len is the '>'); NO: not a valid name; MORE. */
static int read_name(const agent__tcp *p, size_t pos, size_t *len) {
  const char *b = p->buf.data;
  size_t i = pos;
  while (i < p->buf.len && i - pos <= AGENT__TCP_MAX_NAME) {
    if (b[i] == '>') {
      *len = i - pos;
      return i > pos ? YES : NO;
    }
    if (!name_char_ok(b[i])) return NO;
    i++;
  }
  if (i - pos > AGENT__TCP_MAX_NAME) return NO;
  return p->eos ? NO : MORE;
}

static size_t skip_ws(const agent__tcp *p, size_t pos) {
  while (pos < p->buf.len && isspace((unsigned char)p->buf.data[pos])) pos++;
  return pos;
}

/* Prose out. The whitespace run right after a call is held back: it is shown only if prose
 * follows (a new call or the end drops it), so the gaps between calls never reach the user.
 * The rule depends on the bytes only, not on how they were split into chunks. */
static void text_out(agent__tcp *p, const char *s, size_t n) {
  if (!n) return;
  if (p->after_call) {
    size_t k = 0;
    while (k < n && isspace((unsigned char)s[k])) k++;
    if (qc_buf_append(&p->held_ws, s, k) != QC_OK) k = 0; /* too much: show it */
    s += k;
    n -= k;
    if (!n) return;
    p->after_call = 0;
    if (p->held_ws.len) p->cbs.on_text(p->cbs.user, p->held_ws.data, p->held_ws.len);
    qc_buf_reset(&p->held_ws);
  }
  p->cbs.on_text(p->cbs.user, s, n);
}

/* Drop buf[0..n) (the scanner is at a point with no live offsets before n). */
static void consume(agent__tcp *p, size_t n) {
  qc_buf_consume(&p->buf, n);
  p->pos -= n;
}

/* Is NAME a parameter of the current function's tool? Any name is, when there is no
 * schema to check against. */
static int known_param(const agent__tcp *p, const char *name, size_t n) {
  char nm[AGENT__TCP_MAX_NAME + 1], fn[AGENT__TCP_MAX_NAME + 1];
  if (n > AGENT__TCP_MAX_NAME) return 0;
  memcpy(nm, name, n);
  nm[n] = '\0';
  size_t fl = p->name_len > AGENT__TCP_MAX_NAME ? AGENT__TCP_MAX_NAME : p->name_len;
  memcpy(fn, p->buf.data + p->name_off, fl);
  fn[fl] = '\0';
  const json_t *tool = p->tools ? find_tool(p->tools, fn) : NULL;
  json_t *props = json_object_get(json_object_get(tool, "parameters"), "properties");
  if (!json_is_object(props)) return 1;
  return json_object_get(props, nm) != NULL;
}

static int seen_param(const agent__tcp *p, const char *name, size_t n) {
  for (int i = 0; i < p->n_params; i++)
    if (p->params[i].name_len == n && memcmp(p->buf.data + p->params[i].name_off, name, n) == 0) return 1;
  return 0;
}

/* Is `</parameter>` at c structural? YES / NO / MORE. */
static int param_close_structural(agent__tcp *p, size_t c) {
  size_t q = c + LEN(T_PARAM_END), lim = q + AGENT__TCP_MAX_WS_LOOKAHEAD;
  while (q < p->buf.len && q < lim && isspace((unsigned char)p->buf.data[q])) q++;
  if (q >= lim) return NO;
  if (q >= p->buf.len) return p->eos ? YES : MORE;
  int r = AT(q, T_PARAM);
  if (r == YES) {
    size_t nl;
    int k = read_name(p, q + LEN(T_PARAM), &nl);
    if (k == MORE) return MORE;
    if (k == YES && known_param(p, p->buf.data + q + LEN(T_PARAM), nl)) return YES;
    return NO;
  }
  if (r == MORE) return MORE;
  int f = AT(q, T_FUNC_END), t = AT(q, T_CALL_END), o = AT(q, T_CALL);
  if (f == YES || t == YES || o == YES) return YES;
  if (f == MORE || t == MORE || o == MORE) return MORE;
  return NO;
}

static void end_value(agent__tcp *p, size_t end) {
  if (p->n_params < AGENT__TCP_MAX_PARAMS) {
    param_span *ps = &p->params[p->n_params++];
    ps->name_off = p->pname_off;
    ps->name_len = p->pname_len;
    ps->val_off = p->val_start;
    ps->val_len = end - p->val_start;
  } else {
    p->too_many_params = 1;
  }
}

/* At the end of the stream, a value without a structural end: the fallbacks described at
 * the top. Returns the value's end. */
static size_t value_fallback_end(agent__tcp *p) {
  const char *b = p->buf.data;
  for (size_t i = p->val_start; i < p->buf.len; i++) {
    if (b[i] != '<' || !(i == p->val_start || b[i - 1] == '\n')) continue;
    if (p->buf.len - i < LEN(T_PARAM) || memcmp(b + i, T_PARAM, LEN(T_PARAM)) != 0) continue;
    size_t nl;
    if (read_name(p, i + LEN(T_PARAM), &nl) != YES) continue;
    const char *nm = b + i + LEN(T_PARAM);
    if (nl == p->pname_len && memcmp(nm, b + p->pname_off, nl) == 0) continue;
    if (seen_param(p, nm, nl)) continue;
    if (known_param(p, nm, nl)) return i;
  }
  for (size_t i = p->val_start; i + LEN(T_FUNC_END) <= p->buf.len; i++) {
    if (memcmp(b + i, T_FUNC_END, LEN(T_FUNC_END)) != 0) continue;
    size_t q = skip_ws(p, i + LEN(T_FUNC_END));
    if (q >= p->buf.len || AT(q, T_CALL_END) == YES) return i;
  }
  return p->buf.len;
}

/* Run the state machine as far as the buffered input allows. */
static void step(agent__tcp *p) {
  for (;;) {
    if (p->oom) return;
    const char *b = p->buf.data;
    size_t len = p->buf.len;
    if (p->st != S_TEXT && p->st != S_SKIP && len > AGENT__TCP_MAX_CALL_BYTES) {
      char *m = qc_asprintf("this tool call is larger than %d bytes and was not run; split the work "
                            "into smaller calls (for a big file, write it in parts)",
                            AGENT__TCP_MAX_CALL_BYTES);
      emit_bad_block(p, 0, 256, m ? m : "tool call too large");
      free(m);
      consume(p, p->buf.len > 64 ? p->buf.len - 64 : 0);
      p->pos = 0;
      p->st = S_SKIP;
      continue;
    }
    switch (p->st) {
    case S_TEXT: {
      const char *lt = memchr(b, '<', len);
      if (!lt) {
        text_out(p, b, len);
        p->pos = len;
        consume(p, len);
        return;
      }
      size_t i = (size_t)(lt - b);
      if (i) {
        text_out(p, b, i);
        p->pos = i;
        consume(p, i);
        continue;
      }
      int tc = AT(0, T_CALL), fc = AT(0, T_FUNC);
      if (tc == YES) {
        qc_buf_reset(&p->held_ws);
        p->st = S_BLOCK;
        p->wrapped = 1;
        p->funcs_in_block = 0;
        p->func_start = 0;
        p->pos = LEN(T_CALL);
        continue;
      }
      if (fc == YES) {
        /* bare <function=NAME> followed by a line end */
        size_t nl;
        int k = read_name(p, LEN(T_FUNC), &nl);
        int ok = NO;
        if (k == YES) {
          size_t after = LEN(T_FUNC) + nl + 1;
          if (after < len) ok = (b[after] == '\n' || b[after] == '\r') ? YES : NO;
          else ok = p->eos ? YES : MORE;
        } else {
          ok = k;
        }
        if (ok == MORE) return;
        if (ok == YES) {
          qc_buf_reset(&p->held_ws);
          p->wrapped = 0;
          p->funcs_in_block = 0;
          p->func_start = 0;
          p->pos = LEN(T_FUNC);
          p->st = S_FNAME;
          continue;
        }
      }
      if (tc == MORE || fc == MORE) return;
      text_out(p, "<", 1);
      p->pos = 1;
      consume(p, 1);
      continue;
    }
    case S_BLOCK: {
      size_t q = skip_ws(p, p->pos);
      if (q >= len) {
        p->pos = q;
        if (!p->eos) return;
        if (p->funcs_in_block == 0)
          emit_bad_block(p, 0, len, "the reply ended inside <tool_call> before any <function=NAME>");
        consume(p, len);
        p->st = S_TEXT;
        return;
      }
      int r;
      if ((r = AT(q, T_FUNC)) == YES) {
        p->func_start = q;
        p->pos = q + LEN(T_FUNC);
        p->st = S_FNAME;
        continue;
      }
      if (r == MORE) return;
      if ((r = AT(q, T_CALL_END)) == YES) {
        if (p->funcs_in_block == 0)
          emit_bad_block(p, 0, q + LEN(T_CALL_END), "empty <tool_call> block: expected <function=NAME> inside it");
        p->pos = q + LEN(T_CALL_END);
        consume(p, p->pos);
        p->st = S_TEXT;
        continue;
      }
      if (r == MORE) return;
      if ((r = AT(q, T_CALL)) == YES) { /* a repeated opening tag */
        p->pos = q + LEN(T_CALL);
        continue;
      }
      if (r == MORE) return;
      p->pos = q;
      p->func_start = q;
      p->st = (b[q] == '{' && p->funcs_in_block == 0) ? S_JSON : S_JUNK;
      continue;
    }
    case S_JUNK:
    case S_JSON: {
      /* look for the block's end (or, in junk, a function) */
      size_t i = p->pos;
      for (; i < len; i++) {
        if (b[i] != '<') continue;
        int e = AT(i, T_CALL_END);
        if (e == MORE) break;
        if (e == YES) {
          if (p->st == S_JSON) emit_json_block(p, p->func_start, i);
          else if (p->funcs_in_block == 0)
            emit_bad_block(p, 0, i + LEN(T_CALL_END), "malformed tool call: expected <function=NAME> "
                                                     "inside <tool_call> (see the format in the system prompt)");
          p->pos = i + LEN(T_CALL_END);
          consume(p, p->pos);
          p->st = S_TEXT;
          goto next;
        }
        if (p->st == S_JUNK) {
          int f = AT(i, T_FUNC);
          if (f == MORE) break;
          if (f == YES) {
            p->func_start = i;
            p->pos = i + LEN(T_FUNC);
            p->st = S_FNAME;
            goto next;
          }
        }
      }
      p->pos = i;
      if (!p->eos) return;
      if (p->st == S_JSON) emit_json_block(p, p->func_start, len);
      else if (p->funcs_in_block == 0)
        emit_bad_block(p, 0, len, "malformed tool call: expected <function=NAME> inside <tool_call>");
      consume(p, len);
      p->st = S_TEXT;
      return;
    }
    case S_FNAME: {
      size_t nl;
      int k = read_name(p, p->pos, &nl);
      if (k == MORE) return;
      p->n_params = 0;
      if (k == YES) {
        p->name_off = p->pos;
        p->name_len = nl;
        p->name_bad = 0;
        p->pos += nl + 1;
      } else {
        /* unreadable name: report the call, and carry on at the next line */
        p->name_off = p->pos;
        const char *nlp = memchr(b + p->pos, '\n', len - p->pos);
        p->name_len = nlp ? (size_t)(nlp - (b + p->pos)) : len - p->pos;
        if (p->name_len > AGENT__TCP_MAX_NAME) p->name_len = AGENT__TCP_MAX_NAME;
        p->name_bad = 1;
        if (!nlp && !p->eos) return;
        p->pos = nlp ? (size_t)(nlp - b) : len;
      }
      p->st = S_FBODY;
      continue;
    }
    case S_FBODY: {
      size_t q = skip_ws(p, p->pos);
      if (q >= len) {
        p->pos = q;
        if (!p->eos) return;
        emit_call(p, len, AGENT__CALL_UNCLOSED);
        consume(p, len);
        p->st = S_TEXT;
        return;
      }
      int r;
      if ((r = AT(q, T_PARAM)) == YES) {
        size_t nl;
        int k = read_name(p, q + LEN(T_PARAM), &nl);
        if (k == MORE) return;
        if (k == YES) {
          p->pname_off = q + LEN(T_PARAM);
          p->pname_len = nl;
          p->val_start = p->scan = p->pname_off + nl + 1;
          p->depth = 0;
          p->st = S_PVALUE;
          continue;
        }
        p->bad_param = 1; /* reported with the call, never dropped silently */
        p->pos = q + 1;
        continue;
      }
      if (r == MORE) return;
      if ((r = AT(q, T_FUNC_END)) == YES) {
        p->pos = q + LEN(T_FUNC_END);
        emit_call(p, p->pos, 0);
        consume(p, p->pos);
        p->st = S_AFTER_FUNC;
        continue;
      }
      if (r == MORE) return;
      if ((r = AT(q, T_CALL_END)) == YES) {
        p->pos = q + LEN(T_CALL_END);
        emit_call(p, p->pos, 0);
        consume(p, p->pos);
        p->st = S_TEXT;
        continue;
      }
      if (r == MORE) return;
      if ((r = AT(q, T_CALL)) == YES) { /* the next call began: this one lacked its closing tags */
        emit_call(p, q, 0);
        p->pos = q;
        consume(p, q);
        p->st = S_TEXT;
        continue;
      }
      if (r == MORE) return;
      /* stray text between parameters: skip to the next tag */
      const char *lt = memchr(b + q + 1, '<', len - q - 1);
      p->pos = lt ? (size_t)(lt - b) : len;
      continue;
    }
    case S_PVALUE: {
      int need_more = 0;
      while (p->scan < len) {
        const char *lt = memchr(b + p->scan, '<', len - p->scan);
        if (!lt) {
          p->scan = len;
          break;
        }
        size_t c = (size_t)(lt - b);
        int r = AT(c, T_PARAM_END);
        if (r == MORE) {
          p->scan = c;
          need_more = 1;
          break;
        }
        if (r == YES) {
          if (p->depth > 0) {
            p->depth--;
            p->scan = c + LEN(T_PARAM_END);
            continue;
          }
          int s = param_close_structural(p, c);
          if (s == MORE) {
            p->scan = c;
            need_more = 1;
            break;
          }
          if (s == YES) {
            end_value(p, c);
            p->pos = c + LEN(T_PARAM_END);
            p->st = S_FBODY;
            goto next;
          }
          p->scan = c + LEN(T_PARAM_END);
          continue;
        }
        if (c == p->val_start || b[c - 1] == '\n') {
          int o = AT(c, T_PARAM);
          if (o == MORE) {
            p->scan = c;
            need_more = 1;
            break;
          }
          if (o == YES) {
            p->depth++;
            p->scan = c + LEN(T_PARAM);
            continue;
          }
        }
        p->scan = c + 1;
      }
      (void)need_more;
      if (!p->eos) return;
      size_t end = value_fallback_end(p);
      end_value(p, end);
      p->pos = end;
      if (end >= len) {
        emit_call(p, len, AGENT__CALL_UNCLOSED);
        consume(p, len);
        p->st = S_TEXT;
        return;
      }
      p->st = S_FBODY;
      continue;
    }
    case S_AFTER_FUNC: {
      size_t q = skip_ws(p, p->pos);
      if (q >= len) {
        if (!p->eos) return; /* keep the whitespace: it may precede </tool_call> */
        consume(p, len);
        p->st = S_TEXT;
        return;
      }
      if (p->eos && p->truncated && len - q < LEN(T_CALL_END) && !memcmp(b + q, T_CALL_END, len - q)) {
        consume(p, len); /* the closing tag the cut left half-written: markup, not prose */
        p->st = S_TEXT;
        return;
      }
      int r;
      if ((r = AT(q, T_CALL_END)) == YES) {
        p->pos = q + LEN(T_CALL_END);
        consume(p, p->pos);
        p->st = S_TEXT;
        continue;
      }
      if (r == MORE) return;
      if (p->wrapped && (r = AT(q, T_FUNC)) == YES) { /* another function in the same block */
        p->func_start = q;
        p->pos = q + LEN(T_FUNC);
        p->st = S_FNAME;
        continue;
      }
      if (r == MORE) return;
      /* the block ends here without </tool_call>: back to prose */
      p->pos = q;
      consume(p, q);
      p->st = S_TEXT;
      continue;
    }
    case S_SKIP: {
      const char *hit = NULL;
      for (size_t i = 0; i + LEN(T_CALL_END) <= len; i++)
        if (b[i] == '<' && memcmp(b + i, T_CALL_END, LEN(T_CALL_END)) == 0) {
          hit = b + i;
          break;
        }
      if (hit) {
        p->pos = (size_t)(hit - b) + LEN(T_CALL_END);
        consume(p, p->pos);
        p->st = S_TEXT;
        continue;
      }
      size_t keep = len > LEN(T_CALL_END) ? LEN(T_CALL_END) : len;
      p->pos = len;
      consume(p, len - keep);
      if (p->eos) {
        consume(p, p->buf.len);
        p->st = S_TEXT;
      }
      return;
    }
    }
  next:;
  }
}

/* ---- public ------------------------------------------------------------------------------ */

agent__tcp *agent__tcp_new(const json_t *tools, const agent__tcp_cbs *cbs) {
  agent__tcp *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->tools = tools;
  p->cbs = *cbs;
  qc_buf_init(&p->buf, (size_t)AGENT__TCP_MAX_CALL_BYTES + AGENT__TCP_FEED_SLICE + 64);
  qc_buf_init(&p->held_ws, 4096);
  p->st = S_TEXT;
  return p;
}

void agent__tcp_free(agent__tcp *p) {
  if (!p) return;
  qc_buf_release(&p->buf);
  qc_buf_release(&p->held_ws);
  free(p);
}

int agent__tcp_feed(agent__tcp *p, const char *s, size_t n) {
  while (n && !p->oom) {
    size_t k = n > AGENT__TCP_FEED_SLICE ? AGENT__TCP_FEED_SLICE : n;
    if (qc_buf_append(&p->buf, s, k) != QC_OK) {
      p->oom = 1;
      break;
    }
    s += k;
    n -= k;
    step(p);
  }
  return p->oom ? AGENT_ENOMEM : AGENT_OK;
}

int agent__tcp_finish(agent__tcp *p, int truncated) {
  p->eos = 1;
  p->truncated = truncated;
  for (int guard = 0; guard < 1000 && !p->oom; guard++) {
    step(p);
    if (p->st == S_TEXT && p->buf.len == 0) break;
  }
  qc_buf_reset(&p->held_ws);
  return p->oom ? AGENT_ENOMEM : AGENT_OK;
}

int agent__tcp_n_calls(const agent__tcp *p) { return p->n_calls; }
