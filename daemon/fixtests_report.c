/* fixtests_report.c — what `qcoder fix-tests` leaves behind for people and for CI:
 * report.md (rendered from report.json's object, so the two never disagree), junit.xml of
 * the final run (what CI systems display), and atomic file writes.
 *
 * Everything in a report comes from outside — test names, test output, the model's
 * explanation — so it is sanitised for its format: XML 1.0 characters only and escaped
 * attributes in JUnit; Markdown table cells without pipes or newlines, code spans that
 * cannot be closed early, quoted explanations line by line.
 */
#include "daemon/fixtests.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"

/* ---- files ------------------------------------------------------------------------------ */

int ft_write_file(const char *path, const char *data, size_t len) {
  char *tmp = qc_asprintf("%s.tmp.%ld", path, (long)getpid());
  if (!tmp) return -1;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    free(tmp);
    return -1;
  }
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(fd, data + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    off += (size_t)w;
  }
  int ok = off == len && fsync(fd) == 0;
  if (close(fd) != 0) ok = 0;
  if (ok && rename(tmp, path) != 0) ok = 0;
  if (!ok) {
    int e = errno;
    unlink(tmp);
    errno = e;
  }
  free(tmp);
  return ok ? 0 : -1;
}

/* ---- JUnit XML ----------------------------------------------------------------------------- */

/* XML-escaped, valid UTF-8, XML 1.0 characters only (other control characters dropped). */
static void xml_text(qc_buf *b, const char *s) {
  if (!s) return;
  size_t n = 0;
  char *clean = qc_utf8_sanitize(s, strlen(s), &n);
  if (!clean) return;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)clean[i];
    switch (c) {
    case '&': qc_buf_puts(b, "&amp;"); break;
    case '<': qc_buf_puts(b, "&lt;"); break;
    case '>': qc_buf_puts(b, "&gt;"); break;
    case '"': qc_buf_puts(b, "&quot;"); break;
    case '\'': qc_buf_puts(b, "&apos;"); break;
    default:
      if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') break;
      /* U+FFFE / U+FFFF are not XML characters (EF BF BE / EF BF BF) */
      if (c == 0xEF && i + 2 < n && (unsigned char)clean[i + 1] == 0xBF && ((unsigned char)clean[i + 2] & 0xFE) == 0xBE) {
        i += 2;
        break;
      }
      qc_buf_putc(b, (char)c);
    }
  }
  free(clean);
}

static char *first_line(const char *s) {
  if (!s) return strdup("");
  while (*s == '\n' || *s == ' ' || *s == '#') s++;
  size_t n = strcspn(s, "\n");
  if (n > 200) n = 200;
  return qc_strndup(s, n);
}

static const char *suite_of(const ft_result *t) {
  if (t->suite) return t->suite;
  if (t->file) return t->file;
  return "tests";
}

char *ft_junit_xml(const ft_run *run, const char *name) {
  qc_buf b;
  qc_buf_init(&b, 0);
  size_t fail = 0, err = 0, skip = 0;
  double total_time = 0;
  for (size_t i = 0; i < run->n; i++) {
    ft_status s = run->r[i].status;
    fail += s == FT_FAILED;
    err += s == FT_ERROR || s == FT_MISSING;
    skip += s == FT_SKIPPED;
    total_time += run->r[i].duration_s;
  }
  qc_buf_puts(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"");
  xml_text(&b, name);
  qc_buf_printf(&b, "\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\" time=\"%.3f\">\n", run->n, fail,
                err, skip, run->elapsed_s > total_time ? run->elapsed_s : total_time);
  /* one <testsuite> per suite, in order of first appearance */
  char *done = calloc(run->n ? run->n : 1, 1);
  for (size_t i = 0; done && i < run->n; i++) {
    if (done[i]) continue;
    const char *sname = suite_of(&run->r[i]);
    size_t sf = 0, se = 0, ss = 0, st = 0;
    double stime = 0;
    for (size_t j = i; j < run->n; j++)
      if (!strcmp(suite_of(&run->r[j]), sname)) {
        st++;
        sf += run->r[j].status == FT_FAILED;
        se += run->r[j].status == FT_ERROR || run->r[j].status == FT_MISSING;
        ss += run->r[j].status == FT_SKIPPED;
        stime += run->r[j].duration_s;
      }
    qc_buf_puts(&b, "  <testsuite name=\"");
    xml_text(&b, sname);
    qc_buf_printf(&b, "\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\" time=\"%.3f\">\n", st, sf, se,
                  ss, stime);
    for (size_t j = i; j < run->n; j++) {
      const ft_result *t = &run->r[j];
      if (strcmp(suite_of(t), sname)) continue;
      done[j] = 1;
      qc_buf_puts(&b, "    <testcase name=\"");
      xml_text(&b, t->name);
      qc_buf_puts(&b, "\" classname=\"");
      xml_text(&b, sname);
      if (t->file) {
        qc_buf_puts(&b, "\" file=\"");
        xml_text(&b, t->file);
      }
      qc_buf_printf(&b, "\" time=\"%.3f\"", t->duration_s);
      if (t->status == FT_PASSED) {
        qc_buf_puts(&b, "/>\n");
        continue;
      }
      qc_buf_puts(&b, ">\n");
      if (t->status == FT_SKIPPED) {
        qc_buf_puts(&b, "      <skipped/>\n");
      } else {
        const char *tag = t->status == FT_FAILED ? "failure" : "error";
        char *msg = t->status == FT_MISSING ? strdup("the test did not run") : first_line(t->output);
        qc_buf_printf(&b, "      <%s message=\"", tag);
        xml_text(&b, msg);
        qc_buf_puts(&b, "\">");
        xml_text(&b, t->output);
        qc_buf_printf(&b, "</%s>\n", tag);
        free(msg);
      }
      qc_buf_puts(&b, "    </testcase>\n");
    }
    qc_buf_puts(&b, "  </testsuite>\n");
  }
  free(done);
  qc_buf_puts(&b, "</testsuites>\n");
  return qc_buf_detach(&b, NULL);
}

/* ---- Markdown ------------------------------------------------------------------------------ */

static const char *s_of(const json_t *o, const char *k) {
  const char *s = json_string_value(json_object_get(o, k));
  return s ? s : "";
}
static long long i_of(const json_t *o, const char *k) { return (long long)json_integer_value(json_object_get(o, k)); }
static double d_of(const json_t *o, const char *k) { return json_number_value(json_object_get(o, k)); }

/* Inside a table cell: no newlines, pipes escaped, length capped. */
static void md_cell(qc_buf *b, const char *s, size_t max) {
  size_t n = 0;
  for (const char *p = s; *p && n < max; p++, n++) {
    if (*p == '\n' || *p == '\r' || *p == '\t') qc_buf_putc(b, ' ');
    else if (*p == '|') qc_buf_puts(b, "\\|");
    else if (*p == '<') qc_buf_puts(b, "&lt;");
    else qc_buf_putc(b, *p);
  }
  if (*s && strlen(s) > max) qc_buf_puts(b, "…");
}

/* A code span that the text cannot close: fenced with one more backtick than the longest
 * run inside it, single-line. */
static void md_code(qc_buf *b, const char *s, size_t max) {
  int run = 0, longest = 0;
  for (const char *p = s; *p; p++) {
    run = *p == '`' ? run + 1 : 0;
    if (run > longest) longest = run;
  }
  /* a space pads the span only when the text starts or ends with a backtick */
  size_t len = strlen(s);
  int pad = len && (s[0] == '`' || s[len - 1] == '`');
  for (int i = 0; i <= longest; i++) qc_buf_putc(b, '`');
  if (pad) qc_buf_putc(b, ' ');
  size_t n = 0;
  for (const char *p = s; *p && n < max; p++, n++) {
    if (*p == '\n' || *p == '\r') qc_buf_putc(b, ' ');
    else if (*p == '|') qc_buf_puts(b, "\\|");
    else qc_buf_putc(b, *p);
  }
  if (len > max) qc_buf_puts(b, "…");
  if (pad) qc_buf_putc(b, ' ');
  for (int i = 0; i <= longest; i++) qc_buf_putc(b, '`');
}

/* A block quote, line by line (GitHub sanitises any HTML in it). */
static void md_quote(qc_buf *b, const char *s) {
  const char *p = s;
  while (*p == '\n') p++;
  size_t n = strlen(p);
  while (n && (p[n - 1] == '\n' || p[n - 1] == ' ')) n--;
  if (!n) return;
  qc_buf_puts(b, "  > ");
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '\n') qc_buf_puts(b, "\n  > ");
    else qc_buf_putc(b, p[i]);
  }
  qc_buf_puts(b, "\n");
}

static void join_names(qc_buf *b, const json_t *arr, size_t max) {
  size_t i;
  json_t *x;
  json_array_foreach(arr, i, x) {
    if (i == max) {
      qc_buf_printf(b, " and %zu more", json_array_size(arr) - max);
      break;
    }
    if (i) qc_buf_puts(b, ", ");
    md_code(b, json_string_value(x) ? json_string_value(x) : "", 120);
  }
}

char *ft_report_markdown(const json_t *r) {
  qc_buf b;
  qc_buf_init(&b, 0);
  const json_t *tot = json_object_get(r, "totals");
  const char *status = s_of(r, "status");
  qc_buf_puts(&b, "# qcoder fix-tests report\n\n");
  long long f2p = i_of(tot, "failing_before"), fixed = i_of(tot, "fixed"), broken = i_of(tot, "broken");
  qc_buf_printf(&b, "**Resolution: %s** — %lld of %lld failing test%s fixed, %lld passing test%s broken.\n\n",
                s_of(r, "resolution"), fixed, f2p, f2p == 1 ? "" : "s", broken, broken == 1 ? "" : "s");
  if (!strcmp(status, "interrupted"))
    qc_buf_puts(&b, "> **Interrupted.** This is a partial report: the workspace was left at the last kept "
                    "checkpoint and the attempt in progress was undone.\n\n");
  else if (!strcmp(status, "error"))
    qc_buf_printf(&b, "> **Stopped by an error:** %s\n\n", s_of(r, "error"));
  if (json_is_string(json_object_get(r, "stopped_by")) && !strcmp(s_of(r, "stopped_by"), "time_budget"))
    qc_buf_puts(&b, "> **The time budget ran out** before every group was tried.\n\n");
  if (json_is_string(json_object_get(r, "note"))) {
    qc_buf_puts(&b, "> **Note:** ");
    md_cell(&b, s_of(r, "note"), 2000);
    qc_buf_puts(&b, "\n\n");
  }

  qc_buf_puts(&b, "| | |\n|---|---|\n| Command | ");
  md_code(&b, s_of(r, "command"), 200);
  qc_buf_puts(&b, " |\n| Model | ");
  md_code(&b, s_of(r, "model"), 200);
  qc_buf_printf(&b, " |\n| Tests | %lld: %lld failing before, %lld failing after |\n", i_of(tot, "tests"), f2p,
                i_of(tot, "failing_after"));
  qc_buf_printf(&b, "| Attempts | %lld in %lld group%s: %lld kept, %lld reverted, %lld without a change |\n",
                i_of(tot, "attempts"), i_of(tot, "groups"), i_of(tot, "groups") == 1 ? "" : "s", i_of(tot, "kept"),
                i_of(tot, "reverted"), i_of(tot, "no_change"));
  qc_buf_printf(&b, "| Tokens | %lld prompt, %lld generated |\n", i_of(tot, "prompt_tokens"),
                i_of(tot, "generated_tokens"));
  qc_buf_printf(&b, "| Time | %.1f s (agent %.1f s, tests %.1f s) |\n", d_of(r, "elapsed_s"), d_of(tot, "agent_time_s"),
                d_of(tot, "test_time_s"));
  const json_t *patch = json_object_get(r, "patch");
  if (patch)
    qc_buf_printf(&b, "| Patch | `fix.patch`: %lld file%s, +%lld −%lld |\n", i_of(patch, "files_changed"),
                  i_of(patch, "files_changed") == 1 ? "" : "s", i_of(patch, "insertions"), i_of(patch, "deletions"));
  const json_t *commit = json_object_get(r, "commit");
  if (json_is_object(commit)) {
    qc_buf_puts(&b, "| Branch | ");
    md_code(&b, s_of(commit, "branch"), 120);
    qc_buf_printf(&b, " (commit %.12s) |\n", s_of(commit, "commit"));
  }
  qc_buf_puts(&b, "\n## Tests\n\n");
  const json_t *tests = json_object_get(r, "tests");
  size_t i, steady = 0;
  json_t *t;
  int header = 0;
  json_array_foreach(tests, i, t) {
    if (!strcmp(s_of(t, "result"), "passing")) {
      steady++;
      continue;
    }
    if (!header) {
      qc_buf_puts(&b, "| Test | Before | After | Attempts | Result |\n|---|---|---|---|---|\n");
      header = 1;
    }
    qc_buf_puts(&b, "| ");
    md_code(&b, s_of(t, "name"), 120);
    qc_buf_printf(&b, " | %s | %s | %lld | ", s_of(t, "before"), s_of(t, "after"), i_of(t, "attempts"));
    md_cell(&b, s_of(t, "result"), 40);
    if (*s_of(t, "why")) {
      qc_buf_puts(&b, ": ");
      md_cell(&b, s_of(t, "why"), 200);
    }
    qc_buf_puts(&b, " |\n");
  }
  if (steady) qc_buf_printf(&b, "%s%zu other test%s passed before and after.\n", header ? "\n" : "", steady,
                            steady == 1 ? "" : "s");
  const json_t *groups = json_object_get(r, "groups");
  if (json_array_size(groups)) qc_buf_puts(&b, "\n## What was tried\n");
  json_t *g;
  json_array_foreach(groups, i, g) {
    qc_buf_printf(&b, "\n### Group %lld: ", i_of(g, "id"));
    if (*s_of(g, "file")) md_code(&b, s_of(g, "file"), 120);
    else qc_buf_puts(&b, "(no file)");
    qc_buf_printf(&b, " — %s\n\n", s_of(g, "status"));
    qc_buf_puts(&b, "Tests: ");
    join_names(&b, json_object_get(g, "tests"), 20);
    qc_buf_puts(&b, "  \nError: ");
    md_code(&b, s_of(g, "signature"), 200);
    qc_buf_puts(&b, "\n\n");
    const json_t *atts = json_object_get(g, "attempts");
    if (!json_array_size(atts)) {
      qc_buf_puts(&b, "Not attempted");
      if (*s_of(g, "why")) {
        qc_buf_puts(&b, ": ");
        md_cell(&b, s_of(g, "why"), 300);
      }
      qc_buf_puts(&b, ".\n");
    }
    size_t k;
    json_t *a;
    json_array_foreach(atts, k, a) {
      qc_buf_printf(&b, "- **Attempt %lld: %s** — ", i_of(a, "n"), s_of(a, "outcome"));
      md_cell(&b, s_of(a, "why"), 400);
      qc_buf_printf(&b, " (%.1f s, %lld tokens generated, stop: %s)\n", d_of(a, "time_s"), i_of(a, "generated_tokens"),
                    *s_of(a, "stop_reason") ? s_of(a, "stop_reason") : "-");
      const json_t *cf = json_object_get(a, "changed_files");
      if (json_array_size(cf)) {
        qc_buf_puts(&b, "  Files changed: ");
        join_names(&b, cf, 20);
        qc_buf_puts(&b, "\n");
      }
      const json_t *ct = json_object_get(a, "changed_test_files");
      if (json_array_size(ct)) {
        qc_buf_puts(&b, "  **The agent changed test files:** ");
        join_names(&b, ct, 20);
        qc_buf_puts(&b, "\n");
      }
      if (*s_of(a, "explanation")) {
        qc_buf_puts(&b, "\n  The model's explanation:\n\n");
        md_quote(&b, s_of(a, "explanation"));
        qc_buf_puts(&b, "\n");
      }
    }
  }
  qc_buf_puts(&b, "\n---\nFiles: `report.json` (everything above, machine-readable), `fix.patch` (the kept "
                  "changes), `junit.xml` (the final test run).\n");
  return qc_buf_detach(&b, NULL);
}
