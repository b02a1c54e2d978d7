/* workflow_ui.c — the live view of an agent turn for `qcoder run` and `fix-tests`.
 *
 * The ACP session/update stream carries everything a user wants to watch: the
 * assistant's text, tool calls as they start and finish, and usage after each model call.
 * On a terminal the view keeps one status line at the bottom ("| step 3 · edit_file
 * src/a.c · 41.7 tok/s · 12.4s") and prints everything else above it, whole lines at a
 * time, so text and status never interleave mid-line; a ticker thread redraws the status
 * line so the elapsed time moves while the model thinks. Off a terminal it prints plain
 * lines only, suitable for logs and pipes.
 */
#include "daemon/workflow.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"

struct wf_view {
  FILE *out;
  int live, show_text, show_tools;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t ticker;
  int ticker_on, quit, in_turn, status_drawn, held;
  char label[128];
  char tool[160];           /* the running tool's title */
  uint64_t turn_t0, call_t0;
  qc_buf partial;           /* text after the last newline (live mode) */
  qc_buf turn_text;         /* the assistant's text of this turn (tail kept) */
  int at_line_start;        /* plain mode: the last text written ended a line */
  wf_view_stats st;
  int spin;
};

/* ---- drawing (under mu) -------------------------------------------------------------------- */

static void erase_status(wf_view *v) {
  if (v->live && v->status_drawn) {
    fputs("\r\033[K", v->out);
    v->status_drawn = 0;
  }
}

static void draw_status(wf_view *v) {
  if (!v->live || !v->in_turn || v->held) return;
  static const char spinner[] = "|/-\\";
  char line[512], el[32];
  wf_fmt_duration((double)(qc_now_ms() - v->turn_t0) / 1000.0, el, sizeof el);
  int n = snprintf(line, sizeof line, "%c %s%sstep %d", spinner[v->spin++ & 3], v->label, *v->label ? " · " : "",
                   v->st.steps + 1);
  if (*v->tool && n < (int)sizeof line) n += snprintf(line + n, sizeof line - (size_t)n, " · %s", v->tool);
  if (v->st.last_rate > 0 && n < (int)sizeof line)
    n += snprintf(line + n, sizeof line - (size_t)n, " · %.1f tok/s", v->st.last_rate);
  if (n < (int)sizeof line) snprintf(line + n, sizeof line - (size_t)n, " · %s", el);
  int w = wf_term_width(fileno(v->out)) - 1;
  fprintf(v->out, "\r\033[K%.*s", w, line);
  fflush(v->out);
  v->status_drawn = 1;
}

/* Write text above the status line: complete lines now, the rest when its line ends. */
static void put_text(wf_view *v, const char *s, size_t n) {
  if (!v->live) {
    fwrite(s, 1, n, v->out);
    if (n) v->at_line_start = s[n - 1] == '\n';
    fflush(v->out);
    return;
  }
  qc_buf_append(&v->partial, s, n);
  const char *nl = NULL;
  for (size_t i = v->partial.len; i > 0; i--)
    if (v->partial.data[i - 1] == '\n') {
      nl = v->partial.data + i - 1;
      break;
    }
  if (!nl) return;
  size_t k = (size_t)(nl - v->partial.data) + 1;
  erase_status(v);
  fwrite(v->partial.data, 1, k, v->out);
  qc_buf_consume(&v->partial, k);
  draw_status(v);
}

static void flush_partial(wf_view *v) {
  if (v->live && v->partial.len) {
    erase_status(v);
    fwrite(v->partial.data, 1, v->partial.len, v->out);
    fputc('\n', v->out);
    qc_buf_reset(&v->partial);
  } else if (!v->live && !v->at_line_start) {
    fputc('\n', v->out);
    v->at_line_start = 1;
  }
}

static void put_line(wf_view *v, const char *line) {
  flush_partial(v);
  erase_status(v);
  fputs(line, v->out);
  fputc('\n', v->out);
  draw_status(v);
  fflush(v->out);
}

static void *tick(void *arg) {
  wf_view *v = arg;
  pthread_mutex_lock(&v->mu);
  while (!v->quit) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)WF_STATUS_REDRAW_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&v->cv, &v->mu, &ts);
    if (!v->quit && v->in_turn) draw_status(v);
  }
  pthread_mutex_unlock(&v->mu);
  return NULL;
}

/* ---- API ------------------------------------------------------------------------------------- */

wf_view *wf_view_new(FILE *out, int live, int show_text, int show_tools) {
  wf_view *v = calloc(1, sizeof *v);
  if (!v) return NULL;
  v->out = out;
  v->live = live;
  v->show_text = show_text;
  v->show_tools = show_tools;
  v->at_line_start = 1;
  pthread_mutex_init(&v->mu, NULL);
  pthread_cond_init(&v->cv, NULL);
  qc_buf_init(&v->partial, 1u << 20);
  qc_buf_init(&v->turn_text, 2 * WF_VIEW_TEXT_MAX);
  if (live && pthread_create(&v->ticker, NULL, tick, v) == 0) v->ticker_on = 1;
  return v;
}

void wf_view_free(wf_view *v) {
  if (!v) return;
  pthread_mutex_lock(&v->mu);
  v->quit = 1;
  pthread_cond_signal(&v->cv);
  pthread_mutex_unlock(&v->mu);
  if (v->ticker_on) pthread_join(v->ticker, NULL);
  pthread_mutex_lock(&v->mu);
  flush_partial(v);
  erase_status(v);
  fflush(v->out);
  pthread_mutex_unlock(&v->mu);
  qc_buf_release(&v->partial);
  qc_buf_release(&v->turn_text);
  pthread_cond_destroy(&v->cv);
  pthread_mutex_destroy(&v->mu);
  free(v);
}

void wf_view_begin(wf_view *v, const char *label) {
  pthread_mutex_lock(&v->mu);
  snprintf(v->label, sizeof v->label, "%s", label ? label : "");
  v->tool[0] = '\0';
  v->turn_t0 = v->call_t0 = qc_now_ms();
  v->in_turn = 1;
  v->st.steps = 0;
  v->st.last_rate = 0;
  qc_buf_reset(&v->turn_text);
  draw_status(v);
  pthread_mutex_unlock(&v->mu);
}

void wf_view_end(wf_view *v) {
  pthread_mutex_lock(&v->mu);
  flush_partial(v);
  erase_status(v);
  v->in_turn = 0;
  fflush(v->out);
  pthread_mutex_unlock(&v->mu);
}

void wf_view_hold(wf_view *v, int hold) {
  if (!v) return;
  pthread_mutex_lock(&v->mu);
  if (hold) {
    flush_partial(v);
    erase_status(v);
    fflush(v->out);
  }
  v->held = hold;
  if (!hold) draw_status(v);
  pthread_mutex_unlock(&v->mu);
}

void wf_view_printf(wf_view *v, const char *fmt, ...) {
  char *line = NULL;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&line, fmt, ap) < 0) line = NULL;
  va_end(ap);
  if (!line) return;
  pthread_mutex_lock(&v->mu);
  put_line(v, line);
  pthread_mutex_unlock(&v->mu);
  free(line);
}

static const char *str(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static long meta_long(const json_t *u, const char *k) {
  return (long)json_integer_value(json_object_get(json_object_get(json_object_get(u, "_meta"), "qcoder"), k));
}

void wf_view_update(wf_view *v, const json_t *u) {
  const char *kind = str(u, "sessionUpdate");
  if (!kind) return;
  pthread_mutex_lock(&v->mu);
  if (!strcmp(kind, "agent_message_chunk")) {
    const json_t *c = json_object_get(u, "content");
    const char *t = str(c, "text");
    if (t) {
      size_t n = json_string_length(json_object_get(c, "text"));
      qc_buf_append(&v->turn_text, t, n);
      if (v->turn_text.len > WF_VIEW_TEXT_MAX) {
        size_t cut = v->turn_text.len - WF_VIEW_TEXT_MAX;
        while (cut < v->turn_text.len && ((unsigned char)v->turn_text.data[cut] & 0xC0) == 0x80) cut++;
        qc_buf_consume(&v->turn_text, cut);
      }
      if (v->show_text) put_text(v, t, n);
    }
  } else if (!strcmp(kind, "tool_call") || !strcmp(kind, "tool_call_update")) {
    const char *title = str(u, "title");
    const char *status = str(u, "status");
    if (!strcmp(kind, "tool_call")) v->st.tool_calls++;
    if (title) snprintf(v->tool, sizeof v->tool, "%s", title);
    if (status && (!strcmp(status, "completed") || !strcmp(status, "failed"))) {
      if (v->show_tools) {
        char line[256];
        if (v->live)
          snprintf(line, sizeof line, "  %s %s", !strcmp(status, "completed") ? "✓" : "✗", *v->tool ? v->tool : "tool");
        else
          snprintf(line, sizeof line, "[tool] %s: %s", *v->tool ? v->tool : "tool", status);
        put_line(v, line);
      }
      v->tool[0] = '\0';
      v->call_t0 = qc_now_ms(); /* the next model call starts when the tools are done */
    } else if (v->live) {
      draw_status(v);
    }
  } else if (!strcmp(kind, "usage_update")) {
    uint64_t now = qc_now_ms();
    long gen = meta_long(u, "generatedTokens");
    v->st.steps++;
    v->st.prompt_tokens += meta_long(u, "promptTokens");
    v->st.reused_tokens += meta_long(u, "reusedTokens");
    v->st.generated_tokens += gen;
    v->st.context_used = (long)json_integer_value(json_object_get(u, "used"));
    v->st.context_size = (long)json_integer_value(json_object_get(u, "size"));
    double secs = (double)(now - v->call_t0) / 1000.0;
    if (gen > 0 && secs > 0.001) v->st.last_rate = (double)gen / secs;
    v->call_t0 = now;
    draw_status(v);
  }
  pthread_mutex_unlock(&v->mu);
}

char *wf_view_turn_text(wf_view *v) {
  pthread_mutex_lock(&v->mu);
  char *s = qc_strndup(v->turn_text.data, v->turn_text.len);
  pthread_mutex_unlock(&v->mu);
  return s;
}

void wf_view_get_stats(wf_view *v, wf_view_stats *st) {
  pthread_mutex_lock(&v->mu);
  *st = v->st;
  pthread_mutex_unlock(&v->mu);
}
