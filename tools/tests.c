/* tests.c — run_tests: find and run a project's tests, and read per-test results.
 *
 * The test command comes from, in order: the caller (tool_tests_opts.command, what
 * `qcoder fix-tests -- CMD` passes), the workspace options, `.qcoder/config.json`
 * ("test_command"), or detection from the files present:
 *
 *   CMakeLists.txt + a build dir with CTestTestfile.cmake  ctest --test-dir DIR …
 *   Makefile with a `test:` (or `check:`) target           make test
 *   go.mod                                                 go test -json ./...
 *   Cargo.toml                                             cargo test --no-fail-fast
 *   pytest.ini, [tool.pytest…], [tool:pytest], tests/test_X.py  python3 -m pytest -rA …
 *   package.json with a test script                        npm test
 *
 * A configured command may contain `{filter}` (replaced by the shell-quoted filter, or
 * '' when there is none) and `{junit}` (a path where the runner may write JUnit XML).
 * When a filter cannot be passed to the runner it is applied to the results instead.
 *
 * Per-test results come from JUnit XML when the runner wrote it (we ask ctest and pytest
 * to), else from the runner's own output: ctest, pytest, `go test -json`, cargo's libtest,
 * node's test runner (spec reporter) and TAP (also node's TAP). For output of unknown
 * origin every parser is tried and the one that recognises the most tests wins. Parsers
 * are tolerant: unknown lines are skipped, a truncated stream yields what was complete.
 *
 * The result shape (data.tests, and tool_tests_run's *results):
 *   {"summary": {"runner", "command", "format", "total", "passed", "failed", "skipped",
 *                "errors", "exit_code", "signal", "timed_out", "sandboxed", "filter",
 *                "filtered_by"},
 *    "tests": [{"name", "status": "passed"|"failed"|"skipped"|"error",
 *               "suite"?, "file"?, "duration_s"?, "output"?}]}
 */
#include "tools/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Output kept per test in the results (head and tail). */
#define TOOL__TESTS_STORED_OUTPUT 4096

/* ---- results --------------------------------------------------------------------- */

static json_t *tt_new(const char *name, size_t n, const char *status) {
  json_t *t = json_object();
  if (!t) return NULL;
  json_object_set_new(t, "name", tool__json_text(name, n));
  json_object_set_new(t, "status", json_string(status));
  return t;
}

static void tt_set_str(json_t *t, const char *key, const char *s, size_t n) {
  if (s && n) json_object_set_new(t, key, tool__json_text(s, n));
}

/* Append to a test's output, keeping the head and tail within the stored limit. */
static void tt_add_output(json_t *t, const char *s, size_t n) {
  if (!t || !s || !n) return;
  const char *old = json_string_value(json_object_get(t, "output"));
  size_t ol = old ? json_string_length(json_object_get(t, "output")) : 0;
  qc_buf b;
  qc_buf_init(&b, 0);
  qc_buf_append(&b, old ? old : "", ol);
  qc_buf_append(&b, s, n);
  if (b.len > TOOL__TESTS_STORED_OUTPUT) {
    static const char mark[] = "\n[… output cut …]\n";
    size_t head = TOOL__TESTS_STORED_OUTPUT / 4;
    size_t tail = TOOL__TESTS_STORED_OUTPUT - head - (sizeof mark - 1);
    /* do not repeat the marker when cutting again */
    qc_buf c;
    qc_buf_init(&c, 0);
    qc_buf_append(&c, b.data, head);
    qc_buf_puts(&c, mark);
    qc_buf_append(&c, b.data + b.len - tail, tail);
    qc_buf_release(&b);
    b = c;
  }
  json_object_set_new(t, "output", tool__json_text(b.data, b.len));
  qc_buf_release(&b);
}

/* Trim blank lines at both ends. */
static void tt_trim_block(const char **s, size_t *n) {
  while (*n && ((*s)[0] == '\n' || (*s)[0] == '\r')) (*s)++, (*n)--;
  while (*n && ((*s)[*n - 1] == '\n' || (*s)[*n - 1] == '\r' || (*s)[*n - 1] == ' ')) (*n)--;
}

static json_t *tt_find(json_t *tests, const char *name, const char *suite) {
  size_t i;
  json_t *t;
  json_array_foreach(tests, i, t) {
    const char *n = json_string_value(json_object_get(t, "name"));
    const char *s = json_string_value(json_object_get(t, "suite"));
    if (n && strcmp(n, name) == 0 && (!suite || (s && strcmp(s, suite) == 0))) return t;
  }
  return NULL;
}

/* ---- lines and regexes ----------------------------------------------------------- */

typedef struct tt_lines {
  const char *p, *end;
} tt_lines;

static int tt_next(tt_lines *it, const char **line, size_t *n) {
  if (it->p >= it->end) return 0;
  const char *nl = memchr(it->p, '\n', (size_t)(it->end - it->p));
  const char *e = nl ? nl : it->end;
  *line = it->p;
  *n = (size_t)(e - it->p);
  if (*n && (*line)[*n - 1] == '\r') (*n)--;
  it->p = nl ? nl + 1 : it->end;
  return 1;
}

typedef struct tt_re {
  pcre2_code *c;
  pcre2_match_data *md;
  const char *subject;
} tt_re;

static int tt_re_init(tt_re *r, const char *pat) {
  int ec;
  PCRE2_SIZE eo;
  r->c = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &ec, &eo, NULL);
  r->md = r->c ? pcre2_match_data_create_from_pattern(r->c, NULL) : NULL;
  if (r->c) pcre2_jit_compile(r->c, PCRE2_JIT_COMPLETE);
  return r->c && r->md ? 0 : -1;
}

static void tt_re_free(tt_re *r) {
  pcre2_match_data_free(r->md);
  pcre2_code_free(r->c);
}

static int tt_re_match(tt_re *r, const char *s, size_t n) {
  r->subject = s;
  return r->c && pcre2_match(r->c, (PCRE2_SPTR)s, n, 0, 0, r->md, NULL) > 0;
}

/* Group g of the last match: pointer and length (NULL, 0 when unset). */
static const char *tt_re_group(tt_re *r, int g, size_t *n) {
  PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
  if ((uint32_t)g >= pcre2_get_ovector_count(r->md) || ov[2 * g] == PCRE2_UNSET) {
    *n = 0;
    return NULL;
  }
  *n = ov[2 * g + 1] - ov[2 * g];
  return r->subject + ov[2 * g];
}

static char *tt_dup_group(tt_re *r, int g) {
  size_t n;
  const char *s = tt_re_group(r, g, &n);
  return s ? qc_strndup(s, n) : NULL;
}

static size_t tt_indent(const char *s, size_t n) {
  size_t i = 0;
  while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
  return i;
}

/* ---- JUnit XML ------------------------------------------------------------------- */

/* A tolerant reader for the JUnit XML that ctest, pytest, gradle, jest-junit and others
 * write: testsuite/testcase elements, their attributes, failure/error/skipped children
 * and system-out/system-err text. Not a general XML parser: no namespaces, no DTDs; it
 * decodes the five predefined entities, numeric references and CDATA, and skips
 * comments and processing instructions. Malformed input ends the parse with what was
 * read so far. */

static void tt_xml_decode(qc_buf *b, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (s[i] != '&') {
      qc_buf_putc(b, s[i]);
      continue;
    }
    const char *semi = memchr(s + i, ';', n - i < 12 ? n - i : 12);
    if (!semi) {
      qc_buf_putc(b, '&');
      continue;
    }
    size_t len = (size_t)(semi - (s + i)) + 1;
    const char *e = s + i + 1;
    size_t en = len - 2;
    unsigned long cp = 0;
    int ok = 1;
    if (en == 2 && strncmp(e, "lt", 2) == 0) cp = '<';
    else if (en == 2 && strncmp(e, "gt", 2) == 0) cp = '>';
    else if (en == 3 && strncmp(e, "amp", 3) == 0) cp = '&';
    else if (en == 4 && strncmp(e, "quot", 4) == 0) cp = '"';
    else if (en == 4 && strncmp(e, "apos", 4) == 0) cp = '\'';
    else if (en > 1 && e[0] == '#') {
      char tmp[16];
      memcpy(tmp, e + 1, en - 1);
      tmp[en - 1] = '\0';
      char *endp;
      cp = (tmp[0] == 'x' || tmp[0] == 'X') ? strtoul(tmp + 1, &endp, 16) : strtoul(tmp, &endp, 10);
      if (*endp || cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) ok = 0;
    } else {
      ok = 0;
    }
    if (!ok) {
      qc_buf_putc(b, '&');
      continue;
    }
    char u[4];
    size_t un;
    if (cp < 0x80) u[0] = (char)cp, un = 1;
    else if (cp < 0x800) u[0] = (char)(0xC0 | (cp >> 6)), u[1] = (char)(0x80 | (cp & 0x3F)), un = 2;
    else if (cp < 0x10000)
      u[0] = (char)(0xE0 | (cp >> 12)), u[1] = (char)(0x80 | ((cp >> 6) & 0x3F)), u[2] = (char)(0x80 | (cp & 0x3F)), un = 3;
    else
      u[0] = (char)(0xF0 | (cp >> 18)), u[1] = (char)(0x80 | ((cp >> 12) & 0x3F)),
      u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), u[3] = (char)(0x80 | (cp & 0x3F)), un = 4;
    qc_buf_append(b, u, un);
    i += len - 1;
  }
}

/* Find attribute `name` in the tag text s[0..n); decoded into a malloc'd string. */
static char *tt_xml_attr(const char *s, size_t n, const char *name) {
  size_t nl = strlen(name);
  for (size_t i = 0; i + nl < n; i++) {
    if ((i == 0 || s[i - 1] == ' ' || s[i - 1] == '\t' || s[i - 1] == '\n' || s[i - 1] == '\r') &&
        strncmp(s + i, name, nl) == 0) {
      size_t j = i + nl;
      while (j < n && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r')) j++;
      if (j >= n || s[j] != '=') continue;
      j++;
      while (j < n && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r')) j++;
      if (j >= n || (s[j] != '"' && s[j] != '\'')) continue;
      char q = s[j++];
      const char *e = memchr(s + j, q, n - j);
      if (!e) return NULL;
      qc_buf b;
      qc_buf_init(&b, 0);
      tt_xml_decode(&b, s + j, (size_t)(e - (s + j)));
      return qc_buf_detach(&b, NULL);
    }
  }
  return NULL;
}

static json_t *tt_parse_junit(const char *x, size_t n) {
  json_t *tests = json_array();
  json_t *cur = NULL;          /* the open testcase */
  int capture = 0;             /* inside failure/error/skipped/system-out/system-err */
  char suite[512] = "";
  qc_buf text;
  qc_buf_init(&text, 0);
  size_t i = 0;
  while (i < n && tests) {
    const char *lt = memchr(x + i, '<', n - i);
    size_t stop = lt ? (size_t)(lt - x) : n;
    if (capture && stop > i) tt_xml_decode(&text, x + i, stop - i);
    if (!lt) break;
    i = stop;
    if (n - i >= 4 && strncmp(x + i, "<!--", 4) == 0) {
      const char *e = memmem(x + i, n - i, "-->", 3);
      i = e ? (size_t)(e - x) + 3 : n;
      continue;
    }
    if (n - i >= 9 && strncmp(x + i, "<![CDATA[", 9) == 0) {
      const char *e = memmem(x + i + 9, n - i - 9, "]]>", 3);
      size_t end = e ? (size_t)(e - x) : n;
      if (capture) qc_buf_append(&text, x + i + 9, end - i - 9);
      i = e ? end + 3 : n;
      continue;
    }
    if (n - i >= 2 && (x[i + 1] == '?' || x[i + 1] == '!')) {
      const char *e = memchr(x + i, '>', n - i);
      i = e ? (size_t)(e - x) + 1 : n;
      continue;
    }
    const char *gt = memchr(x + i, '>', n - i);
    if (!gt) break;
    const char *tag = x + i + 1;
    size_t tn = (size_t)(gt - tag);
    i = (size_t)(gt - x) + 1;
    int closing = tn && tag[0] == '/';
    int selfclose = tn && tag[tn - 1] == '/';
    if (closing) tag++, tn--;
    size_t nl = 0;
    while (nl < tn && tag[nl] != ' ' && tag[nl] != '\t' && tag[nl] != '\n' && tag[nl] != '\r' && tag[nl] != '/') nl++;
#define TT_IS(s) (nl == sizeof(s) - 1 && strncmp(tag, s, nl) == 0)
    if (TT_IS("testsuite")) {
      if (!closing) {
        char *nm = tt_xml_attr(tag, tn, "name");
        snprintf(suite, sizeof suite, "%s", nm ? nm : "");
        free(nm);
      }
    } else if (TT_IS("testcase")) {
      if (!closing) {
        char *nm = tt_xml_attr(tag, tn, "name");
        char *cls = tt_xml_attr(tag, tn, "classname");
        char *file = tt_xml_attr(tag, tn, "file");
        char *tm = tt_xml_attr(tag, tn, "time");
        qc_buf full;
        qc_buf_init(&full, 0);
        size_t fl = file ? strlen(file) : 0;
        if (nm && cls && fl > 3 && strcmp(file + fl - 3, ".py") == 0) {
          /* pytest: rebuild the node id (tests/a.py::Class::test) from file and classname */
          qc_buf mod;
          qc_buf_init(&mod, 0);
          for (size_t k = 0; k + 3 < fl; k++) qc_buf_putc(&mod, file[k] == '/' ? '.' : file[k]);
          qc_buf_puts(&full, file);
          if (strncmp(cls, mod.data, mod.len) == 0 && cls[mod.len] == '.') {
            for (const char *c = cls + mod.len + 1; *c; c++) {
              if (c == cls + mod.len + 1) qc_buf_puts(&full, "::");
              if (*c == '.') qc_buf_puts(&full, "::");
              else qc_buf_putc(&full, *c);
            }
          }
          qc_buf_printf(&full, "::%s", nm);
          qc_buf_release(&mod);
        } else if (cls && *cls && nm && strcmp(cls, nm) != 0) {
          qc_buf_printf(&full, "%s.%s", cls, nm);
        } else {
          qc_buf_puts(&full, nm ? nm : "(unnamed)");
        }
        json_decref(cur);
        cur = tt_new(full.data, full.len, "passed");
        qc_buf_release(&full);
        if (cur) {
          const char *su = cls && *cls ? cls : suite;
          tt_set_str(cur, "suite", su, strlen(su));
          if (file) tt_set_str(cur, "file", file, strlen(file));
          if (tm && *tm) json_object_set_new(cur, "duration_s", json_real(strtod(tm, NULL)));
          /* ctest marks tests that did not run */
          char *st = tt_xml_attr(tag, tn, "status");
          if (st && (strcmp(st, "notrun") == 0 || strcmp(st, "disabled") == 0))
            json_object_set_new(cur, "status", json_string("skipped"));
          free(st);
        }
        free(nm);
        free(cls);
        free(file);
        free(tm);
      }
      if ((closing || selfclose) && cur) {
        json_array_append_new(tests, cur);
        cur = NULL;
      }
    } else if (cur && (TT_IS("failure") || TT_IS("error") || TT_IS("skipped") || TT_IS("system-out") ||
                       TT_IS("system-err"))) {
      if (!closing) {
        if (TT_IS("failure")) json_object_set_new(cur, "status", json_string("failed"));
        else if (TT_IS("error")) json_object_set_new(cur, "status", json_string("error"));
        else if (TT_IS("skipped")) json_object_set_new(cur, "status", json_string("skipped"));
        if (TT_IS("failure") || TT_IS("error") || TT_IS("skipped")) {
          char *msg = tt_xml_attr(tag, tn, "message");
          if (msg && *msg) {
            tt_add_output(cur, msg, strlen(msg));
            tt_add_output(cur, "\n", 1);
          }
          free(msg);
        }
        if (!selfclose) {
          capture = 1;
          qc_buf_reset(&text);
        }
      } else if (capture) {
        const char *s = text.data;
        size_t sn = text.len;
        tt_trim_block(&s, &sn);
        if (sn) {
          tt_add_output(cur, s, sn);
          tt_add_output(cur, "\n", 1);
        }
        capture = 0;
        qc_buf_reset(&text);
      }
    }
#undef TT_IS
  }
  json_decref(cur);
  qc_buf_release(&text);
  return tests;
}

/* ---- ctest ----------------------------------------------------------------------- */

static json_t *tt_parse_ctest(const char *s, size_t n) {
  json_t *tests = json_array();
  tt_re res, start;
  if (tt_re_init(&res, "^\\s*(?:\\d+/\\d+\\s+)?Test\\s+#\\d+:\\s+(\\S+)\\s+\\.*\\s*(?:\\*\\*\\*)?"
                       "(Passed|Failed|Skipped|Not Run|Timeout|Exception|SegFault|Child aborted|Subprocess aborted|\\w[\\w ]*?)"
                       "\\b.*?\\s+([\\d.]+)\\s+sec") != 0 ||
      tt_re_init(&start, "^\\s*Start\\s+\\d+:|^\\d+% tests passed|^The following tests|^Total Test time") != 0) {
    tt_re_free(&res);
    return tests;
  }
  tt_lines it = {s, s + n};
  const char *line;
  size_t ln;
  json_t *cur = NULL; /* the failed test whose output follows */
  qc_buf out;
  qc_buf_init(&out, 0);
  for (;;) {
    int more = tt_next(&it, &line, &ln);
    int boundary = !more || tt_re_match(&start, line, ln) || tt_re_match(&res, line, ln);
    if (boundary && cur) {
      const char *o = out.data;
      size_t on = out.len;
      tt_trim_block(&o, &on);
      tt_add_output(cur, o, on);
      cur = NULL;
      qc_buf_reset(&out);
    }
    if (!more) break;
    if (tt_re_match(&res, line, ln)) {
      size_t nn, sn, dn;
      const char *name = tt_re_group(&res, 1, &nn);
      const char *st = tt_re_group(&res, 2, &sn);
      const char *dur = tt_re_group(&res, 3, &dn);
      const char *status = "failed";
      if (sn == 6 && strncmp(st, "Passed", 6) == 0) status = "passed";
      else if ((sn == 7 && strncmp(st, "Skipped", 7) == 0) || (sn == 7 && strncmp(st, "Not Run", 7) == 0) ||
               (sn >= 8 && strncmp(st, "Disabled", 8) == 0))
        status = "skipped";
      json_t *t = tt_new(name, nn, status);
      if (!t) continue;
      if (dur) json_object_set_new(t, "duration_s", json_real(strtod(dur, NULL)));
      if (strcmp(status, "failed") == 0 && !(sn == 6 && strncmp(st, "Failed", 6) == 0)) {
        tt_add_output(t, st, sn);
        tt_add_output(t, "\n", 1);
      }
      json_array_append_new(tests, t);
      if (strcmp(status, "passed") != 0) cur = t;
    } else if (cur) {
      qc_buf_append(&out, line, ln);
      qc_buf_putc(&out, '\n');
    }
  }
  qc_buf_release(&out);
  tt_re_free(&res);
  tt_re_free(&start);
  return tests;
}

/* ---- pytest ---------------------------------------------------------------------- */

/* "tests/a.py::TestX::test_y[1]" -> "TestX.test_y[1]" (what pytest's section headers say) */
static char *tt_pytest_head_key(const char *nodeid) {
  const char *c = strstr(nodeid, "::");
  qc_buf b;
  qc_buf_init(&b, 0);
  for (const char *s = c ? c + 2 : nodeid; *s; s++) {
    if (s[0] == ':' && s[1] == ':') {
      qc_buf_putc(&b, '.');
      s++;
    } else {
      qc_buf_putc(&b, *s);
    }
  }
  return qc_buf_detach(&b, NULL);
}

static json_t *tt_parse_pytest(const char *s, size_t n) {
  json_t *tests = json_array();
  tt_re sum, verb, head, rule;
  int bad = tt_re_init(&sum, "^(PASSED|FAILED|ERROR|XFAIL|XPASS|SKIPPED)\\s+(\\S.*?)(?: - (.*))?$") |
            tt_re_init(&verb, "^(\\S+::\\S+?)\\s+(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\\b") |
            tt_re_init(&head, "^_{3,} (.+?) _{3,}$") | tt_re_init(&rule, "^={3,}( .* )?={3,}$");
  if (bad) goto out;
  tt_lines it = {s, s + n};
  const char *line;
  size_t ln;
  /* pass 1: statuses */
  while (tt_next(&it, &line, &ln)) {
    const char *name = NULL, *st = NULL;
    size_t nn = 0, sn = 0;
    if (tt_re_match(&sum, line, ln)) {
      st = tt_re_group(&sum, 1, &sn);
      name = tt_re_group(&sum, 2, &nn);
      if (sn == 7 && strncmp(st, "SKIPPED", 7) == 0 && nn > 4 && name[0] == '[') {
        /* "SKIPPED [1] tests/a.py:20: reason" */
        const char *rb = memchr(name, ']', nn);
        if (rb) {
          const char *p = rb + 1;
          while (*p == ' ') p++;
          const char *colon2 = NULL;
          for (const char *q = p; q < name + nn; q++)
            if (*q == ':' && q + 1 < name + nn && q[1] == ' ') {
              colon2 = q;
              break;
            }
          size_t keep = colon2 ? (size_t)(colon2 - p) : (size_t)(name + nn - p);
          json_t *t = tt_new(p, keep, "skipped");
          if (t && colon2) tt_add_output(t, colon2 + 2, (size_t)(name + nn - colon2 - 2));
          if (t) json_array_append_new(tests, t);
          continue;
        }
      }
    } else if (tt_re_match(&verb, line, ln)) {
      name = tt_re_group(&verb, 1, &nn);
      st = tt_re_group(&verb, 2, &sn);
    } else {
      continue;
    }
    const char *status = "passed";
    if (strncmp(st, "FAILED", 6) == 0 || strncmp(st, "XPASS", 5) == 0) status = "failed";
    else if (strncmp(st, "ERROR", 5) == 0) status = "error";
    else if (strncmp(st, "SKIPPED", 7) == 0 || strncmp(st, "XFAIL", 5) == 0) status = "skipped";
    char *nm = qc_strndup(name, nn);
    if (!nm) continue;
    json_t *t = tt_find(tests, nm, NULL);
    if (!t) {
      t = tt_new(nm, nn, status);
      if (t) {
        const char *cc = strstr(nm, "::");
        if (cc) tt_set_str(t, "file", nm, (size_t)(cc - nm));
        json_array_append_new(tests, t);
      }
    } else if (strcmp(status, "passed") != 0) {
      /* an ERROR at teardown after PASSED: the worse one wins */
      json_object_set_new(t, "status", json_string(status));
    }
    free(nm);
  }
  /* pass 2: FAILURES / ERRORS sections, matched to tests by their header */
  it = (tt_lines){s, s + n};
  char *title = NULL;
  qc_buf body;
  qc_buf_init(&body, 0);
  int in_sections = 0;
  for (;;) {
    int more = tt_next(&it, &line, &ln);
    int is_head = more && in_sections && tt_re_match(&head, line, ln);
    int is_rule = more && tt_re_match(&rule, line, ln);
    if ((!more || is_head || is_rule) && title) {
      const char *key = title;
      if (strncmp(key, "ERROR at setup of ", 18) == 0) key += 18;
      else if (strncmp(key, "ERROR at teardown of ", 21) == 0) key += 21;
      json_t *hit = NULL;
      size_t i;
      json_t *t;
      json_array_foreach(tests, i, t) {
        const char *nm = json_string_value(json_object_get(t, "name"));
        const char *stt = json_string_value(json_object_get(t, "status"));
        if (!nm || strcmp(stt, "passed") == 0) continue;
        char *k = tt_pytest_head_key(nm);
        if (k && strcmp(k, key) == 0) hit = t;
        free(k);
        if (hit) break;
      }
      if (!hit && strncmp(title, "ERROR collecting ", 17) == 0) {
        hit = tt_new(title + 17, strlen(title + 17), "error");
        if (hit) json_array_append_new(tests, hit);
      }
      if (hit) {
        const char *b = body.data;
        size_t bn = body.len;
        tt_trim_block(&b, &bn);
        tt_add_output(hit, b, bn);
      }
      free(title);
      title = NULL;
      qc_buf_reset(&body);
    }
    if (!more) break;
    if (is_rule) {
      in_sections = memmem(line, ln, " FAILURES ", 10) || memmem(line, ln, " ERRORS ", 8);
      continue;
    }
    if (is_head) {
      title = tt_dup_group(&head, 1);
      continue;
    }
    if (title) {
      qc_buf_append(&body, line, ln);
      qc_buf_putc(&body, '\n');
    }
  }
  free(title);
  qc_buf_release(&body);
out:
  tt_re_free(&sum);
  tt_re_free(&verb);
  tt_re_free(&head);
  tt_re_free(&rule);
  return tests;
}

/* ---- go test -json --------------------------------------------------------------- */

static json_t *tt_parse_go(const char *s, size_t n) {
  json_t *tests = json_array();
  json_t *pkg_out = json_object(); /* package -> output without a test */
  json_t *pkg_fail = json_object(); /* package -> 1 when the package failed */
  tt_lines it = {s, s + n};
  const char *line;
  size_t ln;
  while (tt_next(&it, &line, &ln)) {
    if (ln < 2 || line[0] != '{') continue;
    json_t *ev = json_loadb(line, ln, 0, NULL);
    if (!json_is_object(ev)) {
      json_decref(ev);
      continue;
    }
    const char *action = json_string_value(json_object_get(ev, "Action"));
    const char *pkg = json_string_value(json_object_get(ev, "Package"));
    const char *test = json_string_value(json_object_get(ev, "Test"));
    const char *output = json_string_value(json_object_get(ev, "Output"));
    if (!action || !pkg) {
      json_decref(ev);
      continue;
    }
    if (test) {
      json_t *t = tt_find(tests, test, pkg);
      if (!t) {
        t = tt_new(test, strlen(test), "passed");
        if (t) {
          json_object_set_new(t, "suite", json_string(pkg));
          json_object_set_new(t, "running", json_true());
          json_array_append_new(tests, t);
        }
      }
      if (t) {
        if (strcmp(action, "output") == 0 && output) {
          /* the === RUN / --- PASS framing is noise in an excerpt */
          if (strncmp(output, "=== ", 4) != 0 && strncmp(output, "--- PASS", 8) != 0)
            tt_add_output(t, output, strlen(output));
        } else if (strcmp(action, "pass") == 0 || strcmp(action, "fail") == 0 || strcmp(action, "skip") == 0) {
          json_object_set_new(t, "status", json_string(action[0] == 'p' ? "passed" : action[0] == 'f' ? "failed" : "skipped"));
          json_object_del(t, "running");
          json_t *el = json_object_get(ev, "Elapsed");
          if (json_is_number(el)) json_object_set_new(t, "duration_s", json_real(json_number_value(el)));
        }
      }
    } else if (strcmp(action, "output") == 0 && output) {
      json_t *o = json_object_get(pkg_out, pkg);
      char *cat = qc_asprintf("%s%s", o ? json_string_value(o) : "", output);
      if (cat && strlen(cat) < TOOL__TESTS_STORED_OUTPUT * 4) json_object_set_new(pkg_out, pkg, json_string(cat));
      free(cat);
    } else if (strcmp(action, "fail") == 0) {
      json_object_set_new(pkg_fail, pkg, json_true());
    }
    json_decref(ev);
  }
  /* tests still "running" when the stream ended: the package crashed or timed out */
  size_t i;
  json_t *t;
  json_array_foreach(tests, i, t) {
    if (json_object_get(t, "running")) {
      json_object_set_new(t, "status", json_string("failed"));
      json_object_del(t, "running");
      tt_add_output(t, "(no result: the test binary crashed or was killed)\n", 51);
    }
  }
  /* leaves only: a parent whose failure is explained by a failing subtest goes */
  json_t *keep = json_array();
  json_array_foreach(tests, i, t) {
    const char *nm = json_string_value(json_object_get(t, "name"));
    const char *su = json_string_value(json_object_get(t, "suite"));
    const char *st = json_string_value(json_object_get(t, "status"));
    size_t nl = strlen(nm);
    int has_sub = 0, sub_failed = 0;
    size_t j;
    json_t *u;
    json_array_foreach(tests, j, u) {
      const char *un = json_string_value(json_object_get(u, "name"));
      const char *us = json_string_value(json_object_get(u, "suite"));
      if (strcmp(us, su) == 0 && strncmp(un, nm, nl) == 0 && un[nl] == '/') {
        has_sub = 1;
        if (strcmp(json_string_value(json_object_get(u, "status")), "failed") == 0) sub_failed = 1;
      }
    }
    if (has_sub && (sub_failed || strcmp(st, "passed") == 0 || strcmp(st, "skipped") == 0)) continue;
    json_array_append(keep, t);
  }
  /* a failed package without a failed test: build failure or a crash in TestMain */
  const char *pk;
  json_t *pv;
  json_object_foreach(pkg_fail, pk, pv) {
    int any = 0;
    json_array_foreach(keep, i, t) {
      if (strcmp(json_string_value(json_object_get(t, "suite")), pk) == 0 &&
          strcmp(json_string_value(json_object_get(t, "status")), "failed") == 0)
        any = 1;
    }
    if (any) continue;
    json_t *e = tt_new(pk, strlen(pk), "error");
    if (!e) continue;
    json_object_set_new(e, "suite", json_string(pk));
    const char *o = json_string_value(json_object_get(pkg_out, pk));
    if (o) tt_add_output(e, o, strlen(o));
    json_array_append_new(keep, e);
  }
  json_decref(tests);
  json_decref(pkg_out);
  json_decref(pkg_fail);
  return keep;
}

/* ---- cargo test (libtest) -------------------------------------------------------- */

static json_t *tt_parse_cargo(const char *s, size_t n) {
  json_t *tests = json_array();
  tt_re res, run, sect;
  if ((tt_re_init(&res, "^test (.+?) \\.\\.\\. (ok|FAILED|ignored|bench)\\b(.*)$") |
       tt_re_init(&run, "^\\s*(?:Running (.+?)(?: \\(.*\\))?|Doc-tests (.+))$") |
       tt_re_init(&sect, "^---- (.+?) (?:stdout|stderr) ----$")) != 0)
    goto out;
  tt_lines it = {s, s + n};
  const char *line;
  size_t ln;
  char *suite = NULL;
  json_t *cur = NULL;
  qc_buf body;
  qc_buf_init(&body, 0);
  for (;;) {
    int more = tt_next(&it, &line, &ln);
    int is_sect = more && tt_re_match(&sect, line, ln);
    int ends = !more || is_sect || (ln == 9 && strncmp(line, "failures:", 9) == 0) ||
               (ln >= 12 && strncmp(line, "test result:", 12) == 0);
    if (ends && cur) {
      const char *b = body.data;
      size_t bn = body.len;
      tt_trim_block(&b, &bn);
      tt_add_output(cur, b, bn);
      cur = NULL;
      qc_buf_reset(&body);
    }
    if (!more) break;
    if (is_sect) {
      char *nm = tt_dup_group(&sect, 1);
      cur = nm ? tt_find(tests, nm, suite) : NULL;
      free(nm);
      continue;
    }
    if (tt_re_match(&run, line, ln)) {
      free(suite);
      size_t a, b;
      const char *g1 = tt_re_group(&run, 1, &a);
      const char *g2 = tt_re_group(&run, 2, &b);
      suite = g1 ? qc_strndup(g1, a) : g2 ? qc_asprintf("doc-tests %.*s", (int)b, g2) : NULL;
      continue;
    }
    if (tt_re_match(&res, line, ln)) {
      size_t nn, sn;
      const char *nm = tt_re_group(&res, 1, &nn);
      const char *st = tt_re_group(&res, 2, &sn);
      const char *status = st[0] == 'o' || st[0] == 'b' ? "passed" : st[0] == 'F' ? "failed" : "skipped";
      json_t *t = tt_new(nm, nn, status);
      if (!t) continue;
      if (suite) json_object_set_new(t, "suite", json_string(suite));
      json_array_append_new(tests, t);
      continue;
    }
    if (cur) {
      qc_buf_append(&body, line, ln);
      qc_buf_putc(&body, '\n');
    }
  }
  free(suite);
  qc_buf_release(&body);
out:
  tt_re_free(&res);
  tt_re_free(&run);
  tt_re_free(&sect);
  return tests;
}

/* ---- TAP (also node's TAP reporter) ---------------------------------------------- */

static json_t *tt_parse_tap(const char *s, size_t n) {
  json_t *tests = json_array();
  tt_re okre;
  if (tt_re_init(&okre, "^(\\s*)(not ok|ok)\\b(?:\\s+\\d+)?(?:\\s*-)?\\s*(.*?)\\s*$") != 0) return tests;
  tt_lines it = {s, s + n};
  const char *line;
  size_t ln;
  json_t *cur = NULL;           /* a failed test collecting its diagnostics */
  size_t cur_indent = 0;
  long prev_indent = -1;        /* indent of the previous test line */
  while (tt_next(&it, &line, &ln)) {
    if (tt_re_match(&okre, line, ln)) {
      cur = NULL;
      size_t ind, dn;
      tt_re_group(&okre, 1, &ind);
      const char *ok = tt_re_group(&okre, 2, &dn);
      int pass = dn == 2;
      (void)ok;
      size_t desc_n;
      const char *desc = tt_re_group(&okre, 3, &desc_n);
      /* a test line less indented than the one before closes a group of subtests: it is
       * the parent, reported by its children */
      int parent = prev_indent >= 0 && (long)ind < prev_indent;
      prev_indent = (long)ind;
      if (parent) continue;
      /* directive: "# SKIP …" / "# TODO …" (an unescaped '#') */
      const char *status = pass ? "passed" : "failed";
      size_t name_n = desc_n;
      for (size_t k = 0; k < desc_n; k++) {
        if (desc[k] == '#' && (k == 0 || desc[k - 1] != '\\')) {
          const char *d = desc + k + 1;
          while (d < desc + desc_n && *d == ' ') d++;
          size_t rest = (size_t)(desc + desc_n - d);
          if (rest >= 4 && strncasecmp(d, "skip", 4) == 0) status = "skipped";
          else if (rest >= 4 && strncasecmp(d, "todo", 4) == 0) status = pass ? "passed" : "skipped";
          else continue;
          name_n = k;
          while (name_n && desc[name_n - 1] == ' ') name_n--;
          break;
        }
      }
      json_t *t = tt_new(desc, name_n, status);
      if (!t) continue;
      json_array_append_new(tests, t);
      if (!pass && strcmp(status, "failed") == 0) {
        cur = t;
        cur_indent = ind;
      }
      continue;
    }
    if (!cur) continue;
    size_t ind = tt_indent(line, ln);
    /* diagnostics: the YAML block indented under the test, or '#' comment lines */
    if ((ln > ind && line[ind] == '#' && ind <= cur_indent) || (ln > 0 && ind > cur_indent) || ln == 0) {
      const char *l = line + (ind > cur_indent ? cur_indent : ind);
      size_t m = ln - (size_t)(l - line);
      if (m >= 9 && strncmp(l, "# Subtest", 9) == 0) {
        cur = NULL;
        continue;
      }
      tt_add_output(cur, l, m);
      tt_add_output(cur, "\n", 1);
    } else {
      cur = NULL;
    }
  }
  tt_re_free(&okre);
  return tests;
}

/* ---- node --test, spec reporter -------------------------------------------------- */

static json_t *tt_parse_node_spec(const char *s, size_t n) {
  json_t *tests = json_array();
  tt_re mk;
  /* ✔ U+2714, ✖ U+2716, ﹣ U+FE63 (skip/todo), ▶ U+25B6 (a suite starts) */
  if (tt_re_init(&mk, "^(\\s*)(\\x{2714}|\\x{2716}|\\x{FE63}|\\x{25B6})\\s+(.*?)(?:\\s+\\([\\d.]+m?s\\))?(\\s+#\\s*(SKIP|TODO).*)?\\s*$") != 0)
    return tests;
  tt_lines it = {s, s + n};
  const char *line;
  size_t ln;
  json_t *suites = json_array(); /* names announced with ▶ */
  json_t *cur = NULL;
  size_t cur_indent = 0;
  while (tt_next(&it, &line, &ln)) {
    /* the closing "✖ failing tests:" section repeats what was said */
    if (ln >= 18 && memmem(line, ln, "failing tests:", 14) && tt_indent(line, ln) == 0) break;
    if (tt_re_match(&mk, line, ln)) {
      cur = NULL;
      size_t ind, mn, nn, dn;
      tt_re_group(&mk, 1, &ind);
      const char *m = tt_re_group(&mk, 2, &mn);
      const char *nm = tt_re_group(&mk, 3, &nn);
      tt_re_group(&mk, 5, &dn);
      char *name = qc_strndup(nm, nn);
      if (!name) continue;
      if (strncmp(m, "\xE2\x96\xB6", 3) == 0) { /* ▶ */
        json_array_append_new(suites, json_string(name));
        free(name);
        continue;
      }
      int is_suite = 0;
      size_t i;
      json_t *sv;
      json_array_foreach(suites, i, sv) {
        if (strcmp(json_string_value(sv), name) == 0) {
          is_suite = 1;
          json_array_remove(suites, i);
          break;
        }
      }
      if (is_suite) {
        free(name);
        continue;
      }
      const char *status = strncmp(m, "\xE2\x9C\x94", 3) == 0 ? "passed"
                           : strncmp(m, "\xE2\x9C\x96", 3) == 0 ? "failed"
                                                                : "skipped";
      if (dn) status = strcmp(status, "passed") == 0 ? "passed" : "skipped";
      json_t *t = tt_new(name, nn, status);
      free(name);
      if (!t) continue;
      json_array_append_new(tests, t);
      if (strcmp(status, "failed") == 0) {
        cur = t;
        cur_indent = ind;
      }
      continue;
    }
    if (!cur) continue;
    size_t ind = tt_indent(line, ln);
    if (ln == 0 || ind > cur_indent) {
      const char *l = line + (ind > cur_indent + 2 ? cur_indent + 2 : ind);
      tt_add_output(cur, l, ln - (size_t)(l - line));
      tt_add_output(cur, "\n", 1);
    } else {
      cur = NULL;
    }
  }
  json_decref(suites);
  tt_re_free(&mk);
  /* trim the trailing blank line each excerpt collects */
  size_t i;
  json_t *t;
  json_array_foreach(tests, i, t) {
    json_t *o = json_object_get(t, "output");
    if (!o) continue;
    const char *b = json_string_value(o);
    size_t bn = json_string_length(o);
    tt_trim_block(&b, &bn);
    json_object_set_new(t, "output", tool__json_text(b, bn));
  }
  return tests;
}

/* ---- parse: public --------------------------------------------------------------- */

typedef json_t *(*tt_parser)(const char *, size_t);

static const struct {
  const char *name;
  tt_parser fn;
} tt_parsers[] = {
    {"go", tt_parse_go},     {"cargo", tt_parse_cargo}, {"pytest", tt_parse_pytest},
    {"ctest", tt_parse_ctest}, {"node", tt_parse_node_spec}, {"tap", tt_parse_tap},
    {"junit", tt_parse_junit},
};

json_t *tool_tests_parse(const char *format, const char *text, size_t len, const char **detected) {
  if (detected) *detected = NULL;
  if (!text) return json_array();
  /* colours would hide the markers */
  char *clean = malloc(len + 1);
  if (!clean) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < len; i++) {
    if (text[i] == 0x1B && i + 1 < len && text[i + 1] == '[') {
      i += 2;
      while (i < len && !((unsigned char)text[i] >= 0x40 && (unsigned char)text[i] <= 0x7E)) i++;
      continue;
    }
    clean[k++] = text[i];
  }
  clean[k] = '\0';
  json_t *best = NULL;
  const char *best_name = NULL;
  size_t nparsers = sizeof tt_parsers / sizeof tt_parsers[0];
  for (size_t i = 0; i < nparsers; i++) {
    /* detecting: JUnit only when the text looks like it */
    if (format ? strcmp(format, tt_parsers[i].name) != 0
               : strcmp(tt_parsers[i].name, "junit") == 0 && !memmem(clean, k, "<testcase", 9))
      continue;
    json_t *r = tt_parsers[i].fn(clean, k);
    if (!r) continue;
    if (!best || json_array_size(r) > json_array_size(best)) {
      json_decref(best);
      best = r;
      best_name = tt_parsers[i].name;
    } else {
      json_decref(r);
    }
  }
  free(clean);
  if (!best) best = json_array();
  /* output is kept for tests that did not pass: that is what anyone reads */
  size_t i;
  json_t *t;
  json_array_foreach(best, i, t) {
    if (strcmp(json_string_value(json_object_get(t, "status")), "passed") == 0) json_object_del(t, "output");
  }
  if (detected) *detected = json_array_size(best) ? best_name : NULL;
  return best;
}

/* ---- detection ------------------------------------------------------------------- */

static int tt_exists(tool_ws *ws, const char *rel, int dir) {
  int fd = tool__open_beneath(ws, rel, O_PATH, 0);
  if (fd < 0) return 0;
  struct stat st;
  int ok = fstat(fd, &st) == 0 && (dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode));
  close(fd);
  return ok;
}

static char *tt_read(tool_ws *ws, const char *rel) {
  char *data = NULL, *err = NULL;
  size_t len;
  if (tool__read_whole(ws, rel, TOOL__CONFIG_MAX, &data, &len, NULL, &err) != TOOL_OK) data = NULL;
  free(err);
  return data;
}

static int tt_has_target(const char *mk, const char *target) {
  size_t tl = strlen(target);
  for (const char *l = mk; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
    if (strncmp(l, target, tl) == 0) {
      const char *p = l + tl;
      while (*p == ' ' || *p == '\t') p++;
      if (*p == ':' && p[1] != '=') return 1;
    }
  }
  return 0;
}

/* A build directory that ctest can run in: build/, build/<x>/, cmake-build-*, out/build/<x>. */
static char *tt_ctest_dir(tool_ws *ws) {
  static const char *const direct[] = {"build", "_build", "cmake-build-debug", "cmake-build-release", NULL};
  for (int i = 0; direct[i]; i++) {
    char *f = qc_asprintf("%s/CTestTestfile.cmake", direct[i]);
    int ok = f && tt_exists(ws, f, 0);
    free(f);
    if (ok) return strdup(direct[i]);
  }
  static const char *const parents[] = {"build", "out/build", NULL};
  for (int i = 0; parents[i]; i++) {
    tool__path p;
    char *err = NULL;
    if (tool__resolve(ws, parents[i], TOOL__R_DIR, &p, &err) != TOOL_OK) {
      free(err);
      continue;
    }
    int fd = tool__open_beneath(ws, p.rel, O_RDONLY | O_DIRECTORY, 0);
    tool__path_release(&p);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
      if (fd >= 0) close(fd);
      continue;
    }
    char *found = NULL;
    struct dirent *de;
    char **names = NULL;
    size_t nn = 0;
    while ((de = readdir(d))) {
      if (de->d_name[0] == '.') continue;
      char **nv = realloc(names, (nn + 1) * sizeof *nv);
      if (!nv) break;
      names = nv;
      names[nn++] = strdup(de->d_name);
    }
    closedir(d);
    /* deterministic: the first in byte order */
    for (size_t a = 0; a < nn; a++)
      for (size_t b = a + 1; b < nn; b++)
        if (names[a] && names[b] && strcmp(names[a], names[b]) > 0) {
          char *t = names[a];
          names[a] = names[b];
          names[b] = t;
        }
    for (size_t a = 0; a < nn && !found; a++) {
      if (!names[a]) continue;
      char *f = qc_asprintf("%s/%s/CTestTestfile.cmake", parents[i], names[a]);
      if (f && tt_exists(ws, f, 0)) found = qc_asprintf("%s/%s", parents[i], names[a]);
      free(f);
    }
    for (size_t a = 0; a < nn; a++) free(names[a]);
    free(names);
    if (found) return found;
  }
  return NULL;
}

static int tt_pytest_project(tool_ws *ws) {
  if (tt_exists(ws, "pytest.ini", 0) || tt_exists(ws, "conftest.py", 0) || tt_exists(ws, "tests/conftest.py", 0))
    return 1;
  char *s = tt_read(ws, "pyproject.toml");
  int yes = s && strstr(s, "[tool.pytest");
  free(s);
  if (yes) return 1;
  s = tt_read(ws, "setup.cfg");
  yes = s && strstr(s, "[tool:pytest]");
  free(s);
  if (yes) return 1;
  s = tt_read(ws, "tox.ini");
  yes = s && strstr(s, "[pytest]");
  free(s);
  if (yes) return 1;
  /* tests/test_*.py or test_*.py at the root */
  static const char *const dirs[] = {"tests", "test", ".", NULL};
  for (int i = 0; dirs[i]; i++) {
    int fd = tool__open_beneath(ws, strcmp(dirs[i], ".") == 0 ? "" : dirs[i], O_RDONLY | O_DIRECTORY, 0);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
      if (fd >= 0) close(fd);
      continue;
    }
    struct dirent *de;
    int found = 0;
    while ((de = readdir(d)))
      if ((strncmp(de->d_name, "test_", 5) == 0 && qc_str_has_suffix(de->d_name, ".py")) ||
          qc_str_has_suffix(de->d_name, "_test.py"))
        found = 1;
    closedir(d);
    if (found) return 1;
  }
  return 0;
}

static char *tt_quote(const char *s) {
  qc_buf b;
  qc_buf_init(&b, 0);
  qc_buf_putc(&b, '\'');
  for (; *s; s++) {
    if (*s == '\'') qc_buf_puts(&b, "'\\''");
    else qc_buf_putc(&b, *s);
  }
  qc_buf_putc(&b, '\'');
  return qc_buf_detach(&b, NULL);
}

/* The configured command: opts, workspace, .qcoder/config.json. Malloc'd or NULL. */
static char *tt_configured(tool_ws *ws, const char *given, int *timeout_s) {
  if (given && *given) return strdup(given);
  if (ws->test_command) return strdup(ws->test_command);
  char *cfg = tt_read(ws, ".qcoder/config.json");
  if (!cfg) return NULL;
  json_t *j = json_loads(cfg, 0, NULL);
  free(cfg);
  char *cmd = NULL;
  const char *tc = json_string_value(json_object_get(j, "test_command"));
  if (tc && *tc && strlen(tc) < TOOL__COMMAND_MAX) cmd = strdup(tc);
  json_t *to = json_object_get(j, "test_timeout_s");
  if (json_is_integer(to) && json_integer_value(to) > 0 && json_integer_value(to) <= TOOL__EXEC_TIMEOUT_MAX && timeout_s)
    *timeout_s = (int)json_integer_value(to);
  json_decref(j);
  return cmd;
}

char *tool_tests_detect(tool_ws *ws, const char **runner) {
  *runner = NULL;
  char *dir = NULL, *s = NULL;
  if (tt_exists(ws, "CMakeLists.txt", 0) && (dir = tt_ctest_dir(ws))) {
    *runner = "ctest";
    char *q = tt_quote(dir);
    char *cmd = qc_asprintf("ctest --test-dir %s --output-on-failure", q);
    free(q);
    free(dir);
    return cmd;
  }
  static const char *const makefiles[] = {"GNUmakefile", "makefile", "Makefile", NULL};
  for (int i = 0; makefiles[i]; i++) {
    if (!(s = tt_read(ws, makefiles[i]))) continue;
    const char *target = tt_has_target(s, "test") ? "test" : tt_has_target(s, "check") ? "check" : NULL;
    free(s);
    if (target) {
      *runner = "make";
      return qc_asprintf("make %s", target);
    }
  }
  if (tt_exists(ws, "go.mod", 0)) {
    *runner = "go";
    return strdup("go test -json ./...");
  }
  if (tt_exists(ws, "Cargo.toml", 0)) {
    *runner = "cargo";
    return strdup("cargo test --no-fail-fast");
  }
  if (tt_pytest_project(ws)) {
    *runner = "pytest";
    return strdup("python3 -m pytest -rA");
  }
  if ((s = tt_read(ws, "package.json"))) {
    json_t *j = json_loads(s, 0, NULL);
    free(s);
    const char *t = json_string_value(json_object_get(json_object_get(j, "scripts"), "test"));
    int ok = t && *t && !strstr(t, "no test specified");
    json_decref(j);
    if (ok) {
      *runner = "npm";
      return strdup("npm test");
    }
  }
  return NULL;
}

/* ---- running --------------------------------------------------------------------- */

static int tt_rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f) {
  (void)st;
  (void)f;
  if (flag == FTW_DP) rmdir(p);
  else unlink(p);
  return 0;
}

static const char *tt_format_of(const char *runner) {
  if (!runner) return NULL;
  if (strcmp(runner, "ctest") == 0) return "ctest";
  if (strcmp(runner, "pytest") == 0) return "pytest";
  if (strcmp(runner, "go") == 0) return "go";
  if (strcmp(runner, "cargo") == 0) return "cargo";
  return NULL; /* make, npm, custom: whatever it prints */
}

/* Replace {filter} and {junit}. *used_filter is set when {filter} was present. */
static char *tt_expand(const char *tmpl, const char *filter, const char *junit, int *used_filter) {
  qc_buf b;
  qc_buf_init(&b, TOOL__COMMAND_MAX * 2);
  *used_filter = 0;
  for (const char *s = tmpl; *s;) {
    if (strncmp(s, "{filter}", 8) == 0) {
      char *q = tt_quote(filter ? filter : "");
      qc_buf_puts(&b, q);
      free(q);
      *used_filter = 1;
      s += 8;
    } else if (strncmp(s, "{junit}", 7) == 0) {
      char *q = tt_quote(junit);
      qc_buf_puts(&b, q);
      free(q);
      s += 7;
    } else {
      qc_buf_putc(&b, *s++);
    }
  }
  return qc_buf_detach(&b, NULL);
}

typedef struct tt_run {
  char *warning;
  int sandboxed;
  tool_exec_result exec;
} tt_run;

static int tt_run_tests(tool_ws *ws, const tool_tests_opts *opts, json_t **results, tt_run *run,
                        char **errmsg) {
  *results = NULL;
  *errmsg = NULL;
  memset(run, 0, sizeof *run);
  int timeout_s = opts && opts->timeout_s > 0 ? opts->timeout_s : TOOL__TESTS_TIMEOUT_DEFAULT;
  const char *filter = opts && opts->filter && *opts->filter ? opts->filter : NULL;
  const char *runner = "custom";
  char *tmpl = tt_configured(ws, opts ? opts->command : NULL, opts && opts->timeout_s > 0 ? NULL : &timeout_s);
  char *cmd = NULL;
  char dir[4096] = "";
  int rc = TOOL_OK;
  const char *filtered_by = NULL;
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/qcoder-tests-XXXXXX", tmp && *tmp == '/' ? tmp : "/tmp");
  if (!mkdtemp(dir)) {
    *errmsg = qc_asprintf("cannot create a scratch directory: %s", strerror(errno));
    dir[0] = '\0';
    rc = TOOL_EIO;
    goto out;
  }
  char *junit = qc_path_join(dir, "junit.xml");
  if (!junit) {
    rc = TOOL_ENOMEM;
    goto out;
  }
  if (tmpl) {
    int used = 0;
    cmd = tt_expand(tmpl, filter, junit, &used);
    if (used && filter) filtered_by = "runner";
  } else {
    char *det = tool_tests_detect(ws, &runner);
    if (!det) {
      free(junit);
      *errmsg = strdup("no test command found: none was configured (\"test_command\" in "
                       ".qcoder/config.json) and none could be detected (CMake build directory with "
                       "CTestTestfile.cmake, a Makefile with a test target, go.mod, Cargo.toml, pytest "
                       "configuration or tests, package.json with a test script)");
      rc = TOOL_ENOENT;
      goto out;
    }
    char *qj = tt_quote(junit);
    char *qf = filter ? tt_quote(filter) : NULL;
    if (strcmp(runner, "ctest") == 0)
      cmd = qc_asprintf("%s --output-junit %s%s%s", det, qj, qf ? " -R " : "", qf ? qf : "");
    else if (strcmp(runner, "pytest") == 0)
      cmd = qc_asprintf("%s --junitxml=%s%s%s", det, qj, qf ? " -k " : "", qf ? qf : "");
    else if (strcmp(runner, "go") == 0)
      cmd = qc_asprintf("%s%s%s", det, qf ? " -run " : "", qf ? qf : "");
    else if (strcmp(runner, "cargo") == 0)
      cmd = qc_asprintf("%s%s%s", det, qf ? " " : "", qf ? qf : "");
    else
      cmd = strdup(det);
    if (filter && strcmp(runner, "make") != 0 && strcmp(runner, "npm") != 0) filtered_by = "runner";
    free(qj);
    free(qf);
    free(det);
  }
  if (!cmd) {
    free(junit);
    rc = TOOL_ENOMEM;
    goto out;
  }
  const char *rw[] = {dir, NULL};
  tool__exec_opts eo = {cmd, ws->root, timeout_s, opts ? opts->cancel : NULL,
                        opts ? opts->on_output : NULL, opts ? opts->user : NULL, rw, TOOL__TESTS_OUTPUT_MAX};
  char *err = NULL;
  rc = tool__exec(ws, &eo, &run->exec, &run->sandboxed, &run->warning, &err);
  if (rc != TOOL_OK) {
    free(junit);
    *errmsg = err;
    goto out;
  }
  /* per-test results: JUnit first, then the output */
  json_t *tests = NULL;
  const char *format = NULL;
  char *xml = NULL;
  size_t xl = 0;
  if (qc_read_file(junit, TOOL__FILE_MAX, &xml, &xl) == QC_OK && xl > 0) {
    tests = tool_tests_parse("junit", xml, xl, &format);
    if (json_array_size(tests) == 0) {
      json_decref(tests);
      tests = NULL;
    }
  }
  free(xml);
  free(junit);
  if (!tests) tests = tool_tests_parse(tt_format_of(runner), run->exec.output, strlen(run->exec.output), &format);
  if (!tests) tests = json_array();
  if (filter && !filtered_by) {
    /* the runner could not take the filter: keep the results whose name contains it */
    json_t *keep = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(tests, i, t) {
      const char *nm = json_string_value(json_object_get(t, "name"));
      if (nm && strstr(nm, filter)) json_array_append(keep, t);
    }
    json_decref(tests);
    tests = keep;
    filtered_by = "results";
  }
  size_t passed = 0, failed = 0, skipped = 0, errors = 0, i;
  json_t *t;
  json_array_foreach(tests, i, t) {
    const char *st = json_string_value(json_object_get(t, "status"));
    if (strcmp(st, "passed") == 0) passed++;
    else if (strcmp(st, "failed") == 0) failed++;
    else if (strcmp(st, "skipped") == 0) skipped++;
    else errors++;
  }
  json_t *summary = json_pack("{s:s, s:s, s:o, s:I, s:I, s:I, s:I, s:I, s:i, s:i, s:b, s:b, s:o, s:o}",
                              "runner", runner, "command", cmd, "format", format ? json_string(format) : json_null(),
                              "total", (json_int_t)json_array_size(tests), "passed", (json_int_t)passed,
                              "failed", (json_int_t)failed, "skipped", (json_int_t)skipped, "errors",
                              (json_int_t)errors, "exit_code", run->exec.exit_code, "signal", run->exec.signal,
                              "timed_out", run->exec.timed_out, "sandboxed", run->sandboxed,
                              "filter", filter ? json_string(filter) : json_null(), "filtered_by",
                              filtered_by ? json_string(filtered_by) : json_null());
  *results = json_pack("{s:o, s:o}", "summary", summary, "tests", tests);
  if (!*results) rc = TOOL_ENOMEM;
out:
  if (dir[0]) nftw(dir, tt_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
  free(tmpl);
  free(cmd);
  if (rc != TOOL_OK) {
    tool__exec_result_release(&run->exec);
    free(run->warning);
    run->warning = NULL;
    if (!*errmsg) *errmsg = strdup(tool_strerror(rc));
  }
  return rc;
}

int tool_tests_run(tool_ws *ws, const tool_tests_opts *opts, json_t **results, char **errmsg) {
  tt_run run;
  int rc = tt_run_tests(ws, opts, results, &run, errmsg);
  if (rc == TOOL_OK) {
    json_t *sum = json_object_get(*results, "summary");
    json_object_set_new(sum, "output", tool__json_text(run.exec.output, strlen(run.exec.output)));
    if (run.warning) json_object_set_new(sum, "warning", json_string(run.warning));
  }
  tool__exec_result_release(&run.exec);
  free(run.warning);
  return rc;
}

/* ---- run_tests ------------------------------------------------------------------- */

static void tt_excerpt(qc_buf *b, const char *out, size_t n) {
  if (n > TOOL__TESTS_EXCERPT_MAX) {
    size_t cut = n - TOOL__TESTS_EXCERPT_MAX;
    while (cut < n && ((unsigned char)out[cut] & 0xC0) == 0x80) cut++;
    qc_buf_puts(b, "  […]\n");
    out += cut;
    n -= cut;
  }
  /* indent each line by two spaces */
  const char *s = out, *e = out + n;
  while (s < e) {
    const char *nl = memchr(s, '\n', (size_t)(e - s));
    size_t ln = nl ? (size_t)(nl - s) : (size_t)(e - s);
    qc_buf_puts(b, "  ");
    qc_buf_append(b, s, ln);
    qc_buf_putc(b, '\n');
    s += ln + 1;
  }
}

static int tool_run_tests(tool_call_ctx *ctx, const json_t *args, tool_result *res) {
  tool_ws *ws = ctx->ws;
  tool_tests_opts o = {NULL, tool__arg_str(args, "filter", NULL), (int)tool__arg_int(args, "timeout_s", 0),
                       ctx->opts->cancel, ctx->opts->on_output, ctx->opts->user};
  json_t *results = NULL;
  char *err = NULL;
  tt_run run;
  int rc = tt_run_tests(ws, &o, &results, &run, &err);
  if (rc != TOOL_OK) return tool__fail_take(res, rc, err);
  json_t *sum = json_object_get(results, "summary");
  json_t *tests = json_object_get(results, "tests");
#define TT_INT(k) ((long long)json_integer_value(json_object_get(sum, k)))
  long long failed = TT_INT("failed"), errors = TT_INT("errors");
  qc_buf b;
  qc_buf_init(&b, 0);
  if (run.warning) qc_buf_printf(&b, "%s\n", run.warning);
  qc_buf_printf(&b, "Ran: %s\n", json_string_value(json_object_get(sum, "command")));
  if (json_array_size(tests)) {
    qc_buf_printf(&b, "%lld tests: %lld passed, %lld failed, %lld skipped, %lld errors", TT_INT("total"),
                  TT_INT("passed"), failed, TT_INT("skipped"), errors);
    const char *fb = json_string_value(json_object_get(sum, "filtered_by"));
    if (fb && strcmp(fb, "results") == 0)
      qc_buf_printf(&b, " (the runner cannot filter: all tests ran, only those matching '%s' are shown)",
                    json_string_value(json_object_get(sum, "filter")));
    qc_buf_puts(&b, ".\n");
  }
  if (run.exec.timed_out) qc_buf_printf(&b, "The test run timed out and was killed.\n");
  else if (run.exec.signal) qc_buf_printf(&b, "The test command was killed by signal %d.\n", run.exec.signal);
  else qc_buf_printf(&b, "Exit code %d.\n", run.exec.exit_code);
  size_t i, shown = 0, hidden = 0;
  json_t *t;
  json_array_foreach(tests, i, t) {
    const char *st = json_string_value(json_object_get(t, "status"));
    if (strcmp(st, "failed") != 0 && strcmp(st, "error") != 0) continue;
    if (b.len > TOOL__TESTS_REPORT_MAX) {
      hidden++;
      continue;
    }
    shown++;
    const char *su = json_string_value(json_object_get(t, "suite"));
    qc_buf_printf(&b, "\n%s %s", strcmp(st, "failed") == 0 ? "FAILED" : "ERROR",
                  json_string_value(json_object_get(t, "name")));
    if (su && strcmp(ws->root, su) != 0 && !strstr(json_string_value(json_object_get(t, "name")), su))
      qc_buf_printf(&b, " (%s)", su);
    qc_buf_putc(&b, '\n');
    json_t *out = json_object_get(t, "output");
    if (out && json_string_length(out)) tt_excerpt(&b, json_string_value(out), json_string_length(out));
  }
  if (hidden) qc_buf_printf(&b, "\n[… %zu more failing tests not shown; see data.tests or run with a filter]\n", hidden);
  int bad = failed || errors || run.exec.timed_out || run.exec.signal || run.exec.exit_code != 0;
  if (json_array_size(tests) == 0 || (bad && shown == 0)) {
    /* nothing per test to show: the tail of the raw output says what happened */
    qc_buf_puts(&b, json_array_size(tests) == 0 ? "\nNo per-test results could be read from the output. Its end:\n"
                                                : "\nThe command failed, but no failing test was identified. The end of its output:\n");
    const char *raw = run.exec.output;
    size_t on = strlen(raw);
    size_t keep = 4000;
    if (on > keep) {
      raw += on - keep;
      while (((unsigned char)*raw & 0xC0) == 0x80) raw++;
      qc_buf_puts(&b, "[…]\n");
    }
    qc_buf_puts(&b, raw);
    if (b.len && b.data[b.len - 1] != '\n') qc_buf_putc(&b, '\n');
  }
#undef TT_INT
  json_object_set_new(tool__data(res), "tests", results);
  json_object_set_new(tool__data(res), "exit", tool__exit_json(&run.exec));
  if (run.exec.timed_out) rc = tool__fail_take(res, TOOL_ETIMEOUT, qc_buf_detach(&b, NULL));
  else if (bad) rc = tool__fail_take(res, TOOL_EFAILED, qc_buf_detach(&b, NULL));
  else rc = tool__ok_take(res, qc_buf_detach(&b, NULL));
  tool__exec_result_release(&run.exec);
  free(run.warning);
  return rc;
}

const tool_def tool__tests_defs[] = {
    {"run_tests",
     "Run the project's tests and report each failing test with its output. The test command "
     "is the one configured in .qcoder/config.json (\"test_command\") or detected from the "
     "project (ctest, make test, go test, cargo test, pytest, npm test). Use `filter` to run "
     "only tests whose name matches (a regex for ctest/go, a -k expression for pytest, a "
     "substring for cargo).",
     "{\"type\":\"object\",\"properties\":{"
     "\"filter\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":1000,\"description\":\"only the tests matching this\"},"
     "\"timeout_s\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":3600,\"description\":\"seconds before the run is killed (default 600)\"}"
     "},\"additionalProperties\":false}",
     TOOL_KIND_EXECUTE, TOOL_F_EXEC | TOOL_F_MUTATES, tool_run_tests},
    {NULL},
};
