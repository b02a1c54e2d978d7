/* mcp.c — MCP stdio client (mcp.h): spawn, legacy handshake, tools/list, tools/call.
 *
 * One exchange at a time: write a request line, then read lines until its answer,
 * answering the server's own requests and dropping its notifications on the way. Reads
 * poll stdout and stderr together in short slices, so a chatty stderr never fills its
 * pipe and blocks the server, and a cancel flag is seen within ACP_MCP_POLL_MS.
 */
#include "daemon/mcp.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/common.h"
#include "daemon/jsonrpc.h"

extern char **environ;

#define ACP_MCP_POLL_MS 100
#define ACP_MCP_PROTOCOL "2025-06-18"

struct acp_mcp {
  char *name;
  char *cwd;
  pid_t pid;
  int in_fd, out_fd, err_fd; /* our ends: server stdin, stdout, stderr */
  rpc_framer framer;
  char errtail[ACP_MCP_STDERR_KEEP];
  size_t errlen;
  int64_t next_id;
  int dead;
  pthread_mutex_t mu;
};

const char *acp_mcp_name(const acp_mcp *m) { return m->name; }

static void keep_stderr(acp_mcp *m, const char *p, size_t n) {
  if (n >= sizeof m->errtail) {
    p += n - (sizeof m->errtail - 1);
    n = sizeof m->errtail - 1;
  }
  if (m->errlen + n >= sizeof m->errtail) {
    size_t drop = m->errlen + n - (sizeof m->errtail - 1);
    memmove(m->errtail, m->errtail + drop, m->errlen - drop);
    m->errlen -= drop;
  }
  memcpy(m->errtail + m->errlen, p, n);
  m->errlen += n;
  m->errtail[m->errlen] = '\0';
}

/* The last line or two the server wrote on stderr, for messages. */
static const char *stderr_hint(acp_mcp *m) {
  while (m->errlen && (m->errtail[m->errlen - 1] == '\n' || m->errtail[m->errlen - 1] == ' '))
    m->errtail[--m->errlen] = '\0';
  const char *p = m->errtail + m->errlen;
  int lines = 0;
  while (p > m->errtail && lines < 3) {
    p--;
    if (*p == '\n') lines++;
  }
  if (*p == '\n') p++;
  return p;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int send_json(acp_mcp *m, json_t *msg_steal) {
  char *text = msg_steal ? json_dumps(msg_steal, JSON_COMPACT) : NULL;
  json_decref(msg_steal);
  if (!text) return QC_ENOMEM;
  size_t n = strlen(text);
  text[n] = '\n'; /* json_dumps leaves room for its NUL */
  int rc = write_all(m->in_fd, text, n + 1) ? QC_EIO : QC_OK;
  free(text);
  if (rc) m->dead = 1;
  return rc;
}

/* A request from the server: answer what we can. */
static void answer_server(acp_mcp *m, const rpc_msg *msg) {
  json_t *reply;
  if (!strcmp(msg->method, "ping")) {
    reply = rpc_make_result(msg->id, json_object());
  } else if (!strcmp(msg->method, "roots/list")) {
    char *uri = qc_asprintf("file://%s", m->cwd);
    reply = rpc_make_result(msg->id, json_pack("{s:[{s:s, s:s}]}", "roots", "uri", uri ? uri : "file:///", "name",
                                               "workspace"));
    free(uri);
  } else {
    reply = rpc_make_error(msg->id, RPC_METHOD_NOT_FOUND, "method not supported by this client", NULL);
  }
  send_json(m, reply);
}

/* Wait for the answer to request `id`. QC_OK and *result (new reference), or an error
 * with *errmsg. */
static int wait_answer(acp_mcp *m, int64_t id, int timeout_ms, atomic_int *cancel, json_t **result, char **errmsg) {
  *result = NULL;
  uint64_t deadline = qc_now_ms() + (uint64_t)timeout_ms;
  char buf[65536];
  for (;;) {
    const char *text;
    size_t len;
    int got;
    while ((got = rpc_framer_next(&m->framer, &text, &len)) == 1) {
      rpc_msg msg;
      rpc_decode_error de;
      if (rpc_decode(text, len, &msg, &de) != 0) {
        json_decref(de.id);
        continue; /* garbage on stdout: a server that logs there; skip it */
      }
      if (msg.kind == RPC_MSG_REQUEST) {
        answer_server(m, &msg);
      } else if (msg.kind == RPC_MSG_RESPONSE && json_is_integer(msg.id) && json_integer_value(msg.id) == id) {
        int rc = QC_OK;
        if (msg.result) {
          *result = json_incref((json_t *)msg.result);
        } else {
          const char *em = json_string_value(json_object_get(msg.error, "message"));
          *errmsg = qc_asprintf("MCP server '%s' answered with an error: %s", m->name, em ? em : "?");
          rc = QC_EINVAL;
        }
        rpc_msg_release(&msg);
        return rc;
      }
      rpc_msg_release(&msg);
    }
    if (got < 0) {
      *errmsg = qc_asprintf("MCP server '%s' broke the message framing: %s", m->name, m->framer.error);
      m->dead = 1;
      return QC_EIO;
    }
    if (m->dead) {
      *errmsg = qc_asprintf("MCP server '%s' exited%s%s", m->name, m->errlen ? ": " : "", stderr_hint(m));
      return QC_EIO;
    }
    if (cancel && atomic_load(cancel)) {
      send_json(m, rpc_make_notification("notifications/cancelled",
                                         json_pack("{s:I, s:s}", "requestId", (json_int_t)id, "reason", "cancelled")));
      *errmsg = strdup("cancelled");
      return QC_EINVAL;
    }
    uint64_t now = qc_now_ms();
    if (now >= deadline) {
      *errmsg = qc_asprintf("MCP server '%s' did not answer within %d s%s%s", m->name, timeout_ms / 1000,
                            m->errlen ? "; it said: " : "", stderr_hint(m));
      return QC_EIO;
    }
    struct pollfd pf[2] = {{m->out_fd, POLLIN, 0}, {m->err_fd, POLLIN, 0}};
    int nf = m->err_fd >= 0 ? 2 : 1;
    int wait = (int)(deadline - now) < ACP_MCP_POLL_MS ? (int)(deadline - now) : ACP_MCP_POLL_MS;
    if (poll(pf, (nfds_t)nf, wait) < 0 && errno != EINTR) {
      m->dead = 1;
      continue;
    }
    if (nf == 2 && (pf[1].revents & (POLLIN | POLLHUP))) {
      ssize_t n = read(m->err_fd, buf, sizeof buf);
      if (n > 0) keep_stderr(m, buf, (size_t)n);
      else if (n == 0) {
        close(m->err_fd);
        m->err_fd = -1;
      }
    }
    if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = read(m->out_fd, buf, sizeof buf);
      if (n > 0) {
        if (rpc_framer_feed(&m->framer, buf, (size_t)n) != 0) m->dead = 1;
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        m->dead = 1;
      }
    }
  }
}

static int request(acp_mcp *m, const char *method, json_t *params_steal, int timeout_ms, atomic_int *cancel,
                   json_t **result, char **errmsg) {
  if (m->dead) {
    json_decref(params_steal);
    *errmsg = qc_asprintf("MCP server '%s' is not running%s%s", m->name, m->errlen ? ": " : "", stderr_hint(m));
    return QC_EIO;
  }
  int64_t id = ++m->next_id;
  if (send_json(m, rpc_make_request((json_int_t)id, method, params_steal)) != QC_OK) {
    *errmsg = qc_asprintf("cannot write to MCP server '%s'%s%s", m->name, m->errlen ? ": " : "", stderr_hint(m));
    return QC_EIO;
  }
  return wait_answer(m, id, timeout_ms, cancel, result, errmsg);
}

/* ---- start and stop --------------------------------------------------------------------- */

static char **build_env(const json_t *extra) {
  size_t n = 0, k = 0;
  while (environ[n]) n++;
  char **env = calloc(n + json_array_size(extra) + 1, sizeof *env);
  if (!env) return NULL;
  for (size_t i = 0; i < n; i++) {
    int overridden = 0;
    size_t j;
    json_t *e;
    json_array_foreach(extra, j, e) {
      const char *name = json_string_value(json_object_get(e, "name"));
      size_t nl = name ? strlen(name) : 0;
      if (nl && !strncmp(environ[i], name, nl) && environ[i][nl] == '=') overridden = 1;
    }
    if (!overridden) env[k++] = strdup(environ[i]);
  }
  size_t j;
  json_t *e;
  json_array_foreach(extra, j, e) {
    env[k++] = qc_asprintf("%s=%s", json_string_value(json_object_get(e, "name")) ?: "",
                           json_string_value(json_object_get(e, "value")) ?: "");
  }
  return env;
}

static void strv_free(char **v) {
  for (size_t i = 0; v && v[i]; i++) free(v[i]);
  free(v);
}

int acp_mcp_start(const acp_mcp_spec *spec, acp_mcp **out, char **errmsg) {
  *out = NULL;
  *errmsg = NULL;
  const char *name = spec->name ? spec->name : "?";
  if (!spec->command || !*spec->command) {
    *errmsg = qc_asprintf("MCP server '%s' has no command", name);
    return QC_EINVAL;
  }
  acp_mcp *m = calloc(1, sizeof *m);
  if (!m) return QC_ENOMEM;
  m->name = strdup(name);
  m->cwd = strdup(spec->cwd ? spec->cwd : "/");
  m->in_fd = m->out_fd = m->err_fd = -1;
  m->pid = -1;
  pthread_mutex_init(&m->mu, NULL);
  rpc_framer_init(&m->framer, RPC_FRAMING_NDJSON, ACP_MCP_MAX_MESSAGE);
  int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
  size_t na = json_array_size(spec->args);
  char **argv = calloc(na + 2, sizeof *argv);
  char **env = build_env(spec->env);
  int rc = QC_ENOMEM;
  if (!m->name || !m->cwd || !argv || !env) goto fail;
  argv[0] = strdup(spec->command);
  for (size_t i = 0; i < na; i++) argv[i + 1] = strdup(json_string_value(json_array_get(spec->args, i)) ?: "");
  if (pipe2(pin, O_CLOEXEC) || pipe2(pout, O_CLOEXEC) || pipe2(perr, O_CLOEXEC)) {
    rc = QC_EIO;
    *errmsg = qc_asprintf("cannot start MCP server '%s': pipe: %s", name, strerror(errno));
    goto fail;
  }
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&at);
  posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
  posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
  posix_spawn_file_actions_adddup2(&fa, perr[1], 2);
  posix_spawn_file_actions_addchdir_np(&fa, m->cwd);
  posix_spawnattr_setpgroup(&at, 0); /* its own group: stop kills helpers it started too */
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&at, &none);
  sigset_t dfl;
  sigemptyset(&dfl);
  sigaddset(&dfl, SIGPIPE);
  posix_spawnattr_setsigdefault(&at, &dfl);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  int e = posix_spawnp(&m->pid, argv[0], &fa, &at, argv, env);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  close(pin[0]);
  close(pout[1]);
  close(perr[1]);
  m->in_fd = pin[1];
  m->out_fd = pout[0];
  m->err_fd = perr[0];
  pin[0] = pin[1] = pout[0] = pout[1] = perr[0] = perr[1] = -1;
  if (e != 0) {
    m->pid = -1;
    rc = QC_EIO;
    *errmsg = qc_asprintf("cannot start MCP server '%s' (%s): %s", name, spec->command, strerror(e));
    goto fail;
  }
  strv_free(argv);
  strv_free(env);
  argv = env = NULL;

  json_t *res = NULL;
  char *err = NULL;
  rc = request(m, "initialize",
               json_pack("{s:s, s:{s:{s:b}}, s:{s:s, s:s}}", "protocolVersion", ACP_MCP_PROTOCOL, "capabilities",
                         "roots", "listChanged", 0, "clientInfo", "name", "qcoder", "version", QCODER_VERSION),
               ACP_MCP_START_TIMEOUT_MS, NULL, &res, &err);
  if (rc != QC_OK) {
    *errmsg = err;
    goto fail;
  }
  json_decref(res);
  send_json(m, rpc_make_notification("notifications/initialized", NULL));
  qc_info("MCP server '%s' started (pid %d)", name, (int)m->pid);
  *out = m;
  return QC_OK;
fail:
  for (int i = 0; i < 2; i++) {
    if (pin[i] >= 0) close(pin[i]);
    if (pout[i] >= 0) close(pout[i]);
    if (perr[i] >= 0) close(perr[i]);
  }
  strv_free(argv);
  strv_free(env);
  if (!*errmsg) *errmsg = qc_asprintf("cannot start MCP server '%s': %s", name, qc_strerror(rc));
  acp_mcp_stop(m);
  return rc ? rc : QC_EIO;
}

void acp_mcp_stop(acp_mcp *m) {
  if (!m) return;
  if (m->in_fd >= 0) close(m->in_fd); /* stdio servers exit when their input ends */
  if (m->pid > 0) {
    int st;
    int gone = 0;
    for (int step = 0; step < 3 && !gone; step++) {
      if (step == 1) kill(-m->pid, SIGTERM);
      if (step == 2) kill(-m->pid, SIGKILL);
      uint64_t until = qc_now_ms() + (step == 2 ? 5000 : ACP_MCP_STOP_GRACE_MS);
      while (qc_now_ms() < until) {
        pid_t r = waitpid(m->pid, &st, WNOHANG);
        if (r == m->pid || (r < 0 && errno == ECHILD)) {
          gone = 1;
          break;
        }
        usleep(10000);
      }
    }
    kill(-m->pid, SIGKILL); /* whatever it started and left behind */
  }
  if (m->out_fd >= 0) close(m->out_fd);
  if (m->err_fd >= 0) close(m->err_fd);
  rpc_framer_release(&m->framer);
  pthread_mutex_destroy(&m->mu);
  free(m->name);
  free(m->cwd);
  free(m);
}

/* ---- tools ---------------------------------------------------------------------------------- */

int acp_mcp_list_tools(acp_mcp *m, json_t **tools, char **errmsg) {
  *tools = NULL;
  *errmsg = NULL;
  json_t *all = json_array();
  char *cursor = NULL;
  int rc = QC_OK;
  pthread_mutex_lock(&m->mu);
  for (int page = 0; page < ACP_MCP_MAX_PAGES; page++) {
    json_t *res = NULL;
    json_t *params = cursor ? json_pack("{s:s}", "cursor", cursor) : json_object();
    rc = request(m, "tools/list", params, ACP_MCP_REQUEST_TIMEOUT_MS, NULL, &res, errmsg);
    free(cursor);
    cursor = NULL;
    if (rc != QC_OK) break;
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(res, "tools"), i, t) {
      if (json_array_size(all) >= ACP_MCP_MAX_TOOLS) break;
      if (json_is_object(t) && json_is_string(json_object_get(t, "name"))) json_array_append(all, t);
    }
    const char *next = json_string_value(json_object_get(res, "nextCursor"));
    if (next && *next && json_array_size(all) < ACP_MCP_MAX_TOOLS) cursor = strdup(next);
    json_decref(res);
    if (!cursor) break;
  }
  free(cursor);
  pthread_mutex_unlock(&m->mu);
  if (rc != QC_OK) {
    json_decref(all);
    return rc;
  }
  *tools = all;
  return QC_OK;
}

int acp_mcp_call_tool(acp_mcp *m, const char *tool, const json_t *args, atomic_int *cancel, int *is_error,
                      char **text, char **errmsg) {
  *is_error = 0;
  *text = NULL;
  *errmsg = NULL;
  json_t *res = NULL;
  pthread_mutex_lock(&m->mu);
  int rc = request(m, "tools/call",
                   json_pack("{s:s, s:O}", "name", tool, "arguments", json_is_object(args) ? args : json_object()),
                   ACP_MCP_CALL_TIMEOUT_MS, cancel, &res, errmsg);
  pthread_mutex_unlock(&m->mu);
  if (rc != QC_OK) return rc;
  qc_buf out;
  qc_buf_init(&out, 0);
  size_t i;
  json_t *b;
  json_array_foreach(json_object_get(res, "content"), i, b) {
    const char *type = json_string_value(json_object_get(b, "type"));
    if (out.len) qc_buf_putc(&out, '\n');
    if (type && !strcmp(type, "text")) {
      qc_buf_puts(&out, json_string_value(json_object_get(b, "text")) ?: "");
    } else if (type && !strcmp(type, "resource")) {
      json_t *r = json_object_get(b, "resource");
      const char *t = json_string_value(json_object_get(r, "text"));
      if (t) qc_buf_puts(&out, t);
      else qc_buf_printf(&out, "[resource %s]", json_string_value(json_object_get(r, "uri")) ?: "?");
    } else if (type && !strcmp(type, "resource_link")) {
      qc_buf_printf(&out, "[link: %s <%s>]", json_string_value(json_object_get(b, "name")) ?: "",
                    json_string_value(json_object_get(b, "uri")) ?: "?");
    } else {
      qc_buf_printf(&out, "[%s content (%s) not shown]", type ? type : "unknown",
                    json_string_value(json_object_get(b, "mimeType")) ?: "no type");
    }
  }
  json_t *sc = json_object_get(res, "structuredContent");
  if (!out.len && sc) {
    char *d = json_dumps(sc, JSON_COMPACT | JSON_ENCODE_ANY);
    if (d) qc_buf_puts(&out, d);
    free(d);
  }
  *is_error = json_is_true(json_object_get(res, "isError"));
  json_decref(res);
  *text = qc_buf_detach(&out, NULL);
  return *text ? QC_OK : QC_ENOMEM;
}
