/* chat_format.c — Qwen3-Coder's chat template, rendered in C, byte for byte.
 *
 * The reference is llama.cpp's models/templates/Qwen3-Coder.jinja (the newer official
 * template), rendered by Hugging Face's apply_chat_template: jinja2 with trim_blocks and
 * lstrip_blocks, `tojson` = json.dumps(ensure_ascii=False) with Python's default
 * separators ", " and ": ", and `| string` = Python's str(). The fixtures in
 * tests/data/agent/chat/ are that rendering; this file reproduces it:
 *
 *   [<|im_start|>system\n SYSTEM | default line if tools]          system block, when a
 *   [\n\n# Tools\n\nYou have access to the following tools:\n\n     system message or tools
 *    <tools> (<function>…</function>)* \n</tools> INSTRUCTIONS]
 *   [<|im_end|>\n]
 *   per message:
 *     assistant with tool_calls: <|im_start|>assistant[\nTRIMMED_CONTENT\n]
 *         (\n<tool_call>\n<function=NAME>\n(<parameter=K>\nVALUE\n</parameter>\n)*</function>\n</tool_call>)*
 *         <|im_end|>\n
 *     tool: [<|im_start|>user\n if the previous message is not a tool]
 *         <tool_response>\nCONTENT\n</tool_response>\n [<|im_end|>\n after the last of a run]
 *     anything else: <|im_start|>ROLE\nCONTENT<|im_end|>\n
 *   [<|im_start|>assistant\n]                                       add_generation_prompt
 *
 * Details that matter for exactness: tool/parameter descriptions and assistant content are
 * stripped with Python's str.strip() (Unicode whitespace); every schema key the template
 * does not name is written as <key>VALUE</key> in the schema's own key order, mappings and
 * lists as JSON, scalars with str() (False, None, 0.25); argument values likewise (objects
 * and arrays as JSON, strings raw, others str()). A tool message that opens the
 * conversation gets no <|im_start|>user (the template only looks at a previous item).
 *
 * Two tolerances beyond the template: `arguments` given as a JSON string (the OpenAI wire
 * form) is parsed first, and null content renders as empty text instead of failing.
 */
#include "agent/chat_format.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "agent/agent.h"

/* ---- UTF-8 helpers ----------------------------------------------------------------- */

/* Decode one code point at s[0..n); returns its length (>= 1); invalid bytes decode as
 * themselves with length 1 (cp = -1). */
static size_t utf8_next(const char *s, size_t n, int32_t *cp) {
  utf8proc_int32_t c;
  utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &c);
  if (k <= 0) {
    *cp = -1;
    return 1;
  }
  *cp = c;
  return (size_t)k;
}

static int py_isspace(int32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

size_t agent__py_strip(const char *s, size_t n, size_t *start) {
  size_t a = 0;
  while (a < n) {
    int32_t c;
    size_t k = utf8_next(s + a, n - a, &c);
    if (!py_isspace(c)) break;
    a += k;
  }
  size_t end = a;
  for (size_t i = a; i < n;) {
    int32_t c;
    size_t k = utf8_next(s + i, n - i, &c);
    i += k;
    if (!py_isspace(c)) end = i;
  }
  *start = a;
  return end - a;
}

/* ---- Python value printing ----------------------------------------------------------- */

void agent__py_float_repr(double x, char *out, size_t n) {
  if (isnan(x)) {
    snprintf(out, n, "nan");
    return;
  }
  if (isinf(x)) {
    snprintf(out, n, x < 0 ? "-inf" : "inf");
    return;
  }
  if (x == 0) {
    snprintf(out, n, signbit(x) ? "-0.0" : "0.0");
    return;
  }
  /* Shortest digits that read back as x (what Python's repr uses), then Python's layout:
   * positional when -4 < decpt <= 16, else d.ddde±XX. */
  char buf[48];
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, sizeof buf, "%.*e", prec - 1, x);
    if (strtod(buf, NULL) == x) break;
  }
  const char *p = buf;
  int neg = 0;
  if (*p == '-') {
    neg = 1;
    p++;
  }
  char digits[24];
  int nd = 0;
  while (*p && *p != 'e') {
    if (*p >= '0' && *p <= '9' && nd < 20) digits[nd++] = *p;
    p++;
  }
  int exp10 = *p == 'e' ? atoi(p + 1) : 0;
  while (nd > 1 && digits[nd - 1] == '0') nd--;
  digits[nd] = '\0';
  int decpt = exp10 + 1;
  char res[64];
  size_t r = 0;
  if (neg) res[r++] = '-';
  if (decpt <= -4 || decpt > 16) {
    res[r++] = digits[0];
    if (nd > 1) {
      res[r++] = '.';
      for (int i = 1; i < nd; i++) res[r++] = digits[i];
    }
    int e = decpt - 1;
    r += (size_t)snprintf(res + r, sizeof res - r, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
  } else if (decpt <= 0) {
    res[r++] = '0';
    res[r++] = '.';
    for (int i = 0; i < -decpt; i++) res[r++] = '0';
    for (int i = 0; i < nd; i++) res[r++] = digits[i];
  } else if (decpt >= nd) {
    for (int i = 0; i < nd; i++) res[r++] = digits[i];
    for (int i = nd; i < decpt; i++) res[r++] = '0';
    res[r++] = '.';
    res[r++] = '0';
  } else {
    for (int i = 0; i < decpt; i++) res[r++] = digits[i];
    res[r++] = '.';
    for (int i = decpt; i < nd; i++) res[r++] = digits[i];
  }
  res[r] = '\0';
  snprintf(out, n, "%s", res);
}

static int py_isprintable(int32_t c) {
  if (c == ' ') return 1;
  if (c < 0) return 0;
  switch (utf8proc_category(c)) {
  case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS:
  case UTF8PROC_CATEGORY_CO: case UTF8PROC_CATEGORY_CN: case UTF8PROC_CATEGORY_ZL:
  case UTF8PROC_CATEGORY_ZP: case UTF8PROC_CATEGORY_ZS:
    return 0;
  default:
    return 1;
  }
}

/* repr() of a str: single quotes unless the text has ' and no ". */
static int py_repr_string(qc_buf *b, const char *s, size_t n) {
  int has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
  char q = has_sq && !has_dq ? '"' : '\'';
  int rc = qc_buf_putc(b, q);
  for (size_t i = 0; i < n && rc == QC_OK;) {
    int32_t c;
    size_t k = utf8_next(s + i, n - i, &c);
    if (c < 0) { /* not UTF-8: Python would never hold such a str; show the byte */
      rc = qc_buf_printf(b, "\\x%02x", (unsigned char)s[i]);
    } else if (c == q || c == '\\') {
      rc = qc_buf_putc(b, '\\');
      if (!rc) rc = qc_buf_putc(b, (char)c);
    } else if (c == '\t') {
      rc = qc_buf_puts(b, "\\t");
    } else if (c == '\n') {
      rc = qc_buf_puts(b, "\\n");
    } else if (c == '\r') {
      rc = qc_buf_puts(b, "\\r");
    } else if (c < 0x20 || c == 0x7F) {
      rc = qc_buf_printf(b, "\\x%02x", (unsigned)c);
    } else if (c < 0x7F || py_isprintable(c)) {
      rc = qc_buf_append(b, s + i, k);
    } else if (c <= 0xFF) {
      rc = qc_buf_printf(b, "\\x%02x", (unsigned)c);
    } else if (c <= 0xFFFF) {
      rc = qc_buf_printf(b, "\\u%04x", (unsigned)c);
    } else {
      rc = qc_buf_printf(b, "\\U%08x", (unsigned)c);
    }
    i += k;
  }
  if (!rc) rc = qc_buf_putc(b, q);
  return rc;
}

static int py_number(qc_buf *b, const json_t *v) {
  if (json_is_integer(v)) return qc_buf_printf(b, "%lld", (long long)json_integer_value(v));
  char f[40];
  agent__py_float_repr(json_real_value(v), f, sizeof f);
  return qc_buf_puts(b, f);
}

/* json.dumps string: escapes ", \, and control characters below 0x20 only
 * (ensure_ascii=False keeps everything else as is). */
static int py_json_string(qc_buf *b, const char *s, size_t n) {
  int rc = qc_buf_putc(b, '"');
  size_t run = 0;
  for (size_t i = 0; i < n && rc == QC_OK; i++) {
    unsigned char c = (unsigned char)s[i];
    const char *esc = NULL;
    char tmp[8];
    switch (c) {
    case '"': esc = "\\\""; break;
    case '\\': esc = "\\\\"; break;
    case '\n': esc = "\\n"; break;
    case '\r': esc = "\\r"; break;
    case '\t': esc = "\\t"; break;
    case '\b': esc = "\\b"; break;
    case '\f': esc = "\\f"; break;
    default:
      if (c < 0x20) {
        snprintf(tmp, sizeof tmp, "\\u%04x", c);
        esc = tmp;
      }
    }
    if (esc) {
      rc = qc_buf_append(b, s + run, i - run);
      if (!rc) rc = qc_buf_puts(b, esc);
      run = i + 1;
    }
  }
  if (!rc) rc = qc_buf_append(b, s + run, n - run);
  if (!rc) rc = qc_buf_putc(b, '"');
  return rc;
}

/* Python's repr() and json.dumps() walk values the same way and differ only in how they
 * spell strings and the three literals; one walker serves both. */
typedef struct py_style {
  int (*string)(qc_buf *b, const char *s, size_t n);
  const char *true_lit, *false_lit, *null_lit;
} py_style;

static const py_style py_repr_style = {py_repr_string, "True", "False", "None"};
static const py_style py_json_style = {py_json_string, "true", "false", "null"};

static int py_serialize(qc_buf *b, const json_t *v, const py_style *st) {
  int rc = QC_OK;
  switch (json_typeof(v)) {
  case JSON_STRING:
    return st->string(b, json_string_value(v), json_string_length(v));
  case JSON_INTEGER:
  case JSON_REAL:
    return py_number(b, v);
  case JSON_TRUE:
    return qc_buf_puts(b, st->true_lit);
  case JSON_FALSE:
    return qc_buf_puts(b, st->false_lit);
  case JSON_NULL:
    return qc_buf_puts(b, st->null_lit);
  case JSON_ARRAY: {
    rc = qc_buf_putc(b, '[');
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
      if (!rc && i) rc = qc_buf_puts(b, ", ");
      if (!rc) rc = py_serialize(b, e, st);
    }
    if (!rc) rc = qc_buf_putc(b, ']');
    return rc;
  }
  case JSON_OBJECT: {
    rc = qc_buf_putc(b, '{');
    const char *k;
    json_t *e;
    int first = 1;
    json_object_foreach((json_t *)v, k, e) {
      if (!rc && !first) rc = qc_buf_puts(b, ", ");
      first = 0;
      if (!rc) rc = st->string(b, k, strlen(k));
      if (!rc) rc = qc_buf_puts(b, ": ");
      if (!rc) rc = py_serialize(b, e, st);
    }
    if (!rc) rc = qc_buf_putc(b, '}');
    return rc;
  }
  }
  return QC_EINVAL;
}

int agent__py_repr(qc_buf *b, const json_t *v) { return py_serialize(b, v, &py_repr_style); }

int agent__py_json(qc_buf *b, const json_t *v) { return py_serialize(b, v, &py_json_style); }

int agent__py_str(qc_buf *b, const json_t *v) {
  if (json_is_string(v)) return qc_buf_append(b, json_string_value(v), json_string_length(v));
  return agent__py_repr(b, v);
}

int agent__content_text(qc_buf *b, const json_t *content) {
  if (!content || json_is_null(content)) return QC_OK;
  if (json_is_string(content))
    return qc_buf_append(b, json_string_value(content), json_string_length(content));
  if (json_is_array(content)) {
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part) {
      json_t *t = json_object_get(part, "text");
      if (json_is_string(t)) {
        int rc = qc_buf_append(b, json_string_value(t), json_string_length(t));
        if (rc) return rc;
      }
    }
    return QC_OK;
  }
  return agent__py_str(b, content);
}

/* ---- the template ------------------------------------------------------------------- */

static const char k_default_system[] =
    "You are Qwen, a helpful AI assistant that can interact with a computer to solve tasks.";

static const char k_tools_heading[] = "\n\n# Tools\n\nYou have access to the following tools:\n\n";

static const char k_instructions[] =
    "\n\nIf you choose to call a tool ONLY reply in the following format with NO suffix:\n\n"
    "<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>\nvalue_1\n"
    "</parameter>\n<parameter=example_parameter_2>\nvalue_2\n</parameter>\n</function>\n"
    "</tool_call>\n\n<IMPORTANT>\nReminder:\n- Function calls MUST follow the specified format: "
    "the tool calling block MUST begin with an opening <tool_call> tag and end with a closing "
    "</tool_call> tag.\n- Required parameters MUST be specified\n- You may provide optional "
    "reasoning for your function call in natural language BEFORE the function call, but NOT "
    "after\n- If there is no function call available, answer the question like normal with your "
    "current knowledge and do not tell the user about function calls\n</IMPORTANT>";

typedef struct render_ctx {
  qc_buf *out;
  qc_buf tmp;
  char **errmsg;
} render_ctx;

/* Record the first error: `what`, followed by `detail` when given. */
static int fail(render_ctx *c, const char *what, const char *detail) {
  if (c->errmsg && !*c->errmsg) *c->errmsg = qc_asprintf("%s%s", what, detail ? detail : "");
  return AGENT_EFORMAT;
}

static int map_qc(int rc) { return rc == QC_OK ? AGENT_OK : rc == QC_ENOMEM ? AGENT_ENOMEM : AGENT_EFORMAT; }

/* str(v) stripped, appended. */
static int put_trimmed_str(render_ctx *c, const json_t *v) {
  qc_buf_reset(&c->tmp);
  int rc = agent__py_str(&c->tmp, v);
  if (rc) return map_qc(rc);
  size_t a, n = agent__py_strip(c->tmp.data, c->tmp.len, &a);
  return map_qc(qc_buf_append(c->out, c->tmp.data + a, n));
}

/* JSON for mappings and lists, str() for the rest — the template's value rule. */
static int put_value(render_ctx *c, const json_t *v) {
  if (json_is_object(v) || json_is_array(v)) return map_qc(agent__py_json(c->out, v));
  return map_qc(agent__py_str(c->out, v));
}

static int is_handled(const char *key, const char *const *handled) {
  for (; *handled; handled++)
    if (strcmp(key, *handled) == 0) return 1;
  return 0;
}

static int render_extra_keys(render_ctx *c, const json_t *dict, const char *const *handled) {
  if (!json_is_object(dict)) return AGENT_OK;
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)dict, k, v) {
    if (is_handled(k, handled)) continue;
    int rc = map_qc(qc_buf_printf(c->out, "\n<%s>", k));
    if (!rc) rc = put_value(c, v);
    if (!rc) rc = map_qc(qc_buf_printf(c->out, "</%s>", k));
    if (rc) return rc;
  }
  return AGENT_OK;
}

static int render_tool(render_ctx *c, const json_t *tool) {
  static const char *const param_handled[] = {"name", "type", "description", NULL};
  static const char *const params_handled[] = {"type", "properties", NULL};
  static const char *const tool_handled[] = {"type", "name", "description", "parameters", NULL};
  json_t *fn = json_object_get(tool, "function");
  if (fn) tool = fn;
  int rc = map_qc(qc_buf_puts(c->out, "\n<function>\n<name>"));
  json_t *name = json_object_get(tool, "name");
  if (!rc && name) rc = map_qc(agent__py_str(c->out, name));
  if (!rc) rc = map_qc(qc_buf_puts(c->out, "</name>"));
  json_t *desc = json_object_get(tool, "description");
  if (!rc && desc) {
    rc = map_qc(qc_buf_puts(c->out, "\n<description>"));
    if (!rc) rc = put_trimmed_str(c, desc);
    if (!rc) rc = map_qc(qc_buf_puts(c->out, "</description>"));
  }
  if (!rc) rc = map_qc(qc_buf_puts(c->out, "\n<parameters>"));
  json_t *params = json_object_get(tool, "parameters");
  json_t *props = json_is_object(params) ? json_object_get(params, "properties") : NULL;
  if (!rc && json_is_object(props)) {
    const char *pname;
    json_t *pf;
    json_object_foreach(props, pname, pf) {
      rc = map_qc(qc_buf_printf(c->out, "\n<parameter>\n<name>%s</name>", pname));
      if (rc) break;
      json_t *type = json_object_get(pf, "type"), *pdesc = json_object_get(pf, "description");
      if (type) {
        rc = map_qc(qc_buf_puts(c->out, "\n<type>"));
        if (!rc) rc = map_qc(agent__py_str(c->out, type));
        if (!rc) rc = map_qc(qc_buf_puts(c->out, "</type>"));
      }
      if (!rc && pdesc) {
        rc = map_qc(qc_buf_puts(c->out, "\n<description>"));
        if (!rc) rc = put_trimmed_str(c, pdesc);
        if (!rc) rc = map_qc(qc_buf_puts(c->out, "</description>"));
      }
      if (!rc) rc = render_extra_keys(c, pf, param_handled);
      if (!rc) rc = map_qc(qc_buf_puts(c->out, "\n</parameter>"));
      if (rc) break;
    }
  }
  if (!rc) rc = render_extra_keys(c, params, params_handled);
  if (!rc) rc = map_qc(qc_buf_puts(c->out, "\n</parameters>"));
  if (!rc) rc = render_extra_keys(c, tool, tool_handled);
  if (!rc) rc = map_qc(qc_buf_puts(c->out, "\n</function>"));
  return rc;
}

static const char *role_of(const json_t *m) {
  const char *r = json_string_value(json_object_get(m, "role"));
  return r ? r : "";
}

static int render_tool_calls(render_ctx *c, const json_t *msg, const json_t *calls) {
  int rc = map_qc(qc_buf_puts(c->out, "<|im_start|>assistant"));
  json_t *content = json_object_get(msg, "content");
  if (!rc && json_is_string(content)) {
    size_t a, n = agent__py_strip(json_string_value(content), json_string_length(content), &a);
    if (n > 0) {
      rc = map_qc(qc_buf_putc(c->out, '\n'));
      if (!rc) rc = map_qc(qc_buf_append(c->out, json_string_value(content) + a, n));
      if (!rc) rc = map_qc(qc_buf_putc(c->out, '\n'));
    }
  }
  size_t i;
  json_t *call;
  json_array_foreach(calls, i, call) {
    if (rc) break;
    json_t *fn = json_object_get(call, "function");
    if (fn) call = fn;
    json_t *name = json_object_get(call, "name");
    rc = map_qc(qc_buf_puts(c->out, "\n<tool_call>\n<function="));
    if (!rc && name) rc = map_qc(agent__py_str(c->out, name));
    if (!rc) rc = map_qc(qc_buf_puts(c->out, ">\n"));
    json_t *args = json_object_get(call, "arguments");
    json_t *parsed = NULL;
    if (!rc && json_is_string(args)) {
      parsed = json_loadb(json_string_value(args), json_string_length(args), 0, NULL);
      if (!json_is_object(parsed)) {
        json_decref(parsed);
        return fail(c, "tool call arguments are not a JSON object: ", json_string_value(args));
      }
      args = parsed;
    }
    if (!rc && args && !json_is_null(args)) {
      if (!json_is_object(args)) {
        json_decref(parsed);
        return fail(c, "tool call arguments must be an object", NULL);
      }
      const char *k;
      json_t *v;
      json_object_foreach(args, k, v) {
        rc = map_qc(qc_buf_printf(c->out, "<parameter=%s>\n", k));
        if (!rc) rc = put_value(c, v);
        if (!rc) rc = map_qc(qc_buf_puts(c->out, "\n</parameter>\n"));
        if (rc) break;
      }
    }
    json_decref(parsed);
    if (!rc) rc = map_qc(qc_buf_puts(c->out, "</function>\n</tool_call>"));
  }
  if (!rc) rc = map_qc(qc_buf_puts(c->out, "<|im_end|>\n"));
  return rc;
}

static int put_content(render_ctx *c, const json_t *msg) {
  return map_qc(agent__content_text(c->out, json_object_get(msg, "content")));
}

int agent__render(qc_buf *out, const json_t *messages, const json_t *tools, int add_generation_prompt,
                  char **errmsg) {
  render_ctx c = {.out = out, .errmsg = errmsg};
  qc_buf_init(&c.tmp, 0);
  int rc = AGENT_OK;
  if (!json_is_array(messages)) {
    rc = fail(&c, "\"messages\" must be an array", NULL);
    goto out;
  }
  size_t n = json_array_size(messages), first = 0;
  for (size_t i = 0; i < n; i++)
    if (!json_is_object(json_array_get(messages, i))) {
      rc = fail(&c, "every message must be an object", NULL);
      goto out;
    }
  int has_tools = json_is_array(tools) && json_array_size(tools) > 0;
  const json_t *sys = NULL;
  if (n > 0 && strcmp(role_of(json_array_get(messages, 0)), "system") == 0) {
    sys = json_array_get(messages, 0);
    first = 1;
  }
  if (sys) {
    rc = map_qc(qc_buf_puts(out, "<|im_start|>system\n"));
    if (!rc) rc = put_content(&c, sys);
  } else if (has_tools) {
    rc = map_qc(qc_buf_printf(out, "<|im_start|>system\n%s", k_default_system));
  }
  if (!rc && has_tools) {
    rc = map_qc(qc_buf_puts(out, k_tools_heading));
    if (!rc) rc = map_qc(qc_buf_puts(out, "<tools>"));
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
      if (rc) break;
      if (!json_is_object(t)) {
        rc = fail(&c, "every tool must be an object", NULL);
        break;
      }
      rc = render_tool(&c, t);
    }
    if (!rc) rc = map_qc(qc_buf_puts(out, "\n</tools>"));
    if (!rc) rc = map_qc(qc_buf_puts(out, k_instructions));
  }
  if (!rc && (sys || has_tools)) rc = map_qc(qc_buf_puts(out, "<|im_end|>\n"));

  for (size_t i = first; i < n && !rc; i++) {
    const json_t *m = json_array_get(messages, i);
    const char *role = role_of(m);
    json_t *calls = json_object_get(m, "tool_calls");
    if (strcmp(role, "assistant") == 0 && json_is_array(calls) && json_array_size(calls) > 0) {
      rc = render_tool_calls(&c, m, calls);
    } else if (strcmp(role, "tool") == 0) {
      int has_prev = i > first, has_next = i + 1 < n;
      if (has_prev && strcmp(role_of(json_array_get(messages, i - 1)), "tool") != 0)
        rc = map_qc(qc_buf_puts(out, "<|im_start|>user\n"));
      if (!rc) rc = map_qc(qc_buf_puts(out, "<tool_response>\n"));
      if (!rc) rc = put_content(&c, m);
      if (!rc) rc = map_qc(qc_buf_puts(out, "\n</tool_response>\n"));
      if (!rc && (!has_next || strcmp(role_of(json_array_get(messages, i + 1)), "tool") != 0))
        rc = map_qc(qc_buf_puts(out, "<|im_end|>\n"));
    } else {
      rc = map_qc(qc_buf_printf(out, "<|im_start|>%s\n", role));
      if (!rc) rc = put_content(&c, m);
      if (!rc) rc = map_qc(qc_buf_puts(out, "<|im_end|>\n"));
    }
  }
  if (!rc && add_generation_prompt) rc = map_qc(qc_buf_puts(out, "<|im_start|>assistant\n"));
out:
  qc_buf_release(&c.tmp);
  return rc;
}

int agent_render_conversation(const json_t *conversation, char **out, size_t *len, char **errmsg) {
  *out = NULL;
  if (len) *len = 0;
  if (errmsg) *errmsg = NULL;
  if (!json_is_object(conversation)) {
    if (errmsg) *errmsg = strdup("the conversation must be a JSON object with \"messages\"");
    return AGENT_EFORMAT;
  }
  json_t *tools = json_object_get(conversation, "tools");
  if (tools && !json_is_null(tools) && !json_is_array(tools)) {
    if (errmsg) *errmsg = strdup("\"tools\" must be an array");
    return AGENT_EFORMAT;
  }
  qc_buf b;
  qc_buf_init(&b, 0);
  int rc = agent__render(&b, json_object_get(conversation, "messages"), tools,
                         json_is_true(json_object_get(conversation, "add_generation_prompt")), errmsg);
  if (rc) {
    qc_buf_release(&b);
    return rc;
  }
  size_t n;
  *out = qc_buf_detach(&b, &n);
  if (!*out) return AGENT_ENOMEM;
  if (len) *len = n;
  return AGENT_OK;
}

/* ---- fill in the middle ------------------------------------------------------------ */

char *agent_fim_prompt(const char *prefix, const char *suffix) {
  return qc_asprintf("<|fim_prefix|>%s<|fim_suffix|>%s<|fim_middle|>", prefix ? prefix : "",
                     suffix ? suffix : "");
}

char *agent_fim_repo_prompt(const char *repo_name, const agent_fim_file *files, size_t n_files,
                            const char *path, const char *prefix, const char *suffix) {
  qc_buf b;
  qc_buf_init(&b, 0);
  int rc = qc_buf_printf(&b, "<|repo_name|>%s\n", repo_name ? repo_name : "");
  for (size_t i = 0; i < n_files && !rc; i++) {
    const char *content = files[i].content ? files[i].content : "";
    size_t cl = strlen(content);
    rc = qc_buf_printf(&b, "<|file_sep|>%s\n", files[i].path ? files[i].path : "");
    if (!rc) rc = qc_buf_append(&b, content, cl);
    if (!rc && (cl == 0 || content[cl - 1] != '\n')) rc = qc_buf_putc(&b, '\n');
  }
  if (!rc)
    rc = qc_buf_printf(&b, "<|file_sep|>%s\n<|fim_prefix|>%s<|fim_suffix|>%s<|fim_middle|>",
                       path ? path : "", prefix ? prefix : "", suffix ? suffix : "");
  if (rc) {
    qc_buf_release(&b);
    return NULL;
  }
  return qc_buf_detach(&b, NULL);
}

const char *const *agent_fim_stops(void) {
  static const char *const stops[] = {"<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>",
                                      "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>",
                                      "<|file_sep|>", "<|im_start|>", "<|im_end|>", NULL};
  return stops;
}
