/* cmd_acp.c — `qcoder acp`: the Agent Client Protocol on stdin/stdout, relayed to the
 * daemon.
 *
 * An editor (Zed, any ACP client) spawns `qcoder acp` and speaks ACP on its stdio. The
 * relay connects to the daemon's socket — starting the daemon, with the given model,
 * when none answers — and forwards every message both ways unchanged. It reads just
 * enough of each message to keep three promises:
 *
 *  - the model: right after connecting it sends `_qcoder/configure {"model": SPEC}` (its
 *    own id; the answer is not forwarded), so sessions of this editor use --model
 *    whatever model the daemon was started with;
 *  - the daemon dying: every request the editor is still waiting on gets an error
 *    answer, answers the editor sends for the dead daemon's requests are dropped, and
 *    the next message starts a new daemon (replaying `initialize` first, so the new
 *    daemon knows the editor's capabilities; sessions come back with session/load);
 *  - the editor closing stdin: a last line without its '\n' is still a message (as the
 *    daemon treats its own peers); requests still open get their answers before we exit;
 *  - stdout carries ACP messages only (our own messages go to stderr).
 *
 * Plain poll() on two descriptors: nothing here needs the daemon's event loop.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/client.h"
#include "daemon/commands.h"
#include "daemon/workflow.h"

const char cmd_acp_usage[] =
    "usage: qcoder acp [--model SPEC | --remote URL] [--socket PATH]\n"
    "\n"
    "Speak the Agent Client Protocol (ACP v1) on stdin/stdout for an editor such as Zed:\n"
    "messages are relayed to the qcoder daemon, which is started in the background when\n"
    "none is running. Sessions start in ask mode: edits and commands wait for approval.\n"
    "\n"
    "  --model SPEC    the model for this editor's sessions: a name in the model cache\n"
    "                  (see `qcoder models`), PATH.gguf, http(s)://HOST/v1 or script:FILE\n"
    "                  (test double); default: the daemon's --model\n"
    "  --remote URL    the same as --model URL (an OpenAI-compatible server)\n"
    "  --socket PATH   the daemon's socket (default: see `qcoder help serve`)\n"
    "\n"
    "Zed: add to settings.json\n"
    "  \"agent_servers\": {\"qcoder\": {\"type\": \"custom\", \"command\": \"qcoder\",\n"
    "                    \"args\": [\"acp\", \"--model\", \"/path/model.gguf\"]}}\n";

#define RELAY_ID_PREFIX "qcoder-relay-"
/* After the editor closes stdin, how long the relay waits for the answers to its open
 * requests: the daemon cancels their work and answers at once (an agent turn stops
 * within a token), so this only bounds a stuck daemon. */
#define ACP_RELAY_EOF_DRAIN_MS 5000

typedef struct relay {
  const char *sock;
  const char *model;
  int dfd;                 /* daemon socket, -1 when not connected */
  rpc_framer from_editor, from_daemon;
  json_t *pending;         /* editor requests awaiting the daemon: id text -> true */
  json_t *daemon_reqs;     /* daemon requests awaiting the editor (this connection only) */
  json_t *init_params;     /* the editor's initialize params, for a new daemon */
  int seq;
} relay;

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

static int write_line(int fd, const char *p, size_t n) {
  if (write_all(fd, p, n)) return -1;
  return write_all(fd, "\n", 1);
}

static int write_json(int fd, json_t *msg_steal) {
  char *t = msg_steal ? json_dumps(msg_steal, JSON_COMPACT) : NULL;
  json_decref(msg_steal);
  if (!t) return -1;
  int rc = write_line(fd, t, strlen(t));
  free(t);
  return rc;
}

static char *id_key(const json_t *id) { return json_dumps(id, JSON_COMPACT | JSON_ENCODE_ANY); }

static void disconnect(relay *r, const char *why) {
  if (r->dfd < 0) return;
  close(r->dfd);
  r->dfd = -1;
  rpc_framer_release(&r->from_daemon);
  rpc_framer_init(&r->from_daemon, RPC_FRAMING_NDJSON, 0);
  const char *key;
  json_t *v;
  json_object_foreach(r->pending, key, v) {
    json_error_t je;
    json_t *id = json_loads(key, JSON_DECODE_ANY, &je);
    char *msg = qc_asprintf("the qcoder daemon went away (%s); the next request starts a new one (sessions can be "
                            "reopened with session/load)", why);
    write_json(1, rpc_make_error(id, RPC_INTERNAL_ERROR, msg ? msg : "the qcoder daemon went away", NULL));
    free(msg);
    json_decref(id);
  }
  json_object_clear(r->pending);
  json_object_clear(r->daemon_reqs);
  fprintf(stderr, "qcoder acp: %s\n", why);
}

static int send_own(relay *r, const char *what, const char *method, json_t *params_steal) {
  char id[64];
  snprintf(id, sizeof id, RELAY_ID_PREFIX "%s-%d", what, ++r->seq);
  json_t *m = json_pack("{s:s, s:s, s:s, s:o}", "jsonrpc", "2.0", "id", id, "method", method, "params",
                        params_steal ? params_steal : json_object());
  char *t = m ? json_dumps(m, JSON_COMPACT) : NULL;
  json_decref(m);
  if (!t) return -1;
  int rc = write_line(r->dfd, t, strlen(t));
  free(t);
  return rc;
}

/* Connect (starting a daemon if needed) and bring it up to date with this editor. */
static int ensure_daemon(relay *r, char *why, size_t why_len) {
  if (r->dfd >= 0) return 0;
  const char *args[3] = {r->model ? "--model" : NULL, r->model, NULL};
  rpc_autostart as = {.serve_args = args};
  int started = 0;
  if (rpc_client_connect_auto(r->sock, &as, &r->dfd, &started, why, why_len) != QC_OK) {
    r->dfd = -1;
    return -1;
  }
  if (started) fprintf(stderr, "qcoder acp: started a qcoder daemon on %s\n", r->sock);
  int rc = 0;
  if (r->model) rc |= send_own(r, "configure", "_qcoder/configure", json_pack("{s:s}", "model", r->model));
  if (r->init_params) rc |= send_own(r, "initialize", "initialize", json_incref(r->init_params));
  if (rc) {
    snprintf(why, why_len, "cannot write to the daemon");
    close(r->dfd);
    r->dfd = -1;
    return -1;
  }
  return 0;
}

static void from_editor(relay *r, const char *text, size_t len) {
  rpc_msg msg;
  rpc_decode_error de;
  int ok = rpc_decode(text, len, &msg, &de) == 0;
  if (!ok) json_decref(de.id);
  if (ok && msg.kind == RPC_MSG_RESPONSE) {
    /* an answer to a daemon request: only if that daemon is still the one we talk to */
    char *k = id_key(msg.id);
    int ours = k && r->dfd >= 0 && json_object_get(r->daemon_reqs, k);
    if (ours) json_object_del(r->daemon_reqs, k);
    free(k);
    rpc_msg_release(&msg);
    if (ours && write_line(r->dfd, text, len)) disconnect(r, "writing to the daemon failed");
    return;
  }
  char why[1024] = "";
  if (ensure_daemon(r, why, sizeof why)) {
    if (ok && msg.kind == RPC_MSG_REQUEST) {
      char *m = qc_asprintf("cannot reach the qcoder daemon: %s", why);
      write_json(1, rpc_make_error(msg.id, RPC_INTERNAL_ERROR, m ? m : why, NULL));
      free(m);
    }
    fprintf(stderr, "qcoder acp: cannot reach the qcoder daemon: %s\n", why);
    if (ok) rpc_msg_release(&msg);
    return;
  }
  if (ok && msg.kind == RPC_MSG_REQUEST) {
    char *k = id_key(msg.id);
    if (k) json_object_set_new(r->pending, k, json_true());
    free(k);
    if (!strcmp(msg.method, "initialize") && json_is_object(msg.params)) {
      json_decref(r->init_params);
      r->init_params = json_deep_copy(msg.params);
    }
  }
  if (ok) rpc_msg_release(&msg);
  if (write_line(r->dfd, text, len)) disconnect(r, "writing to the daemon failed");
}

static void from_daemon(relay *r, const char *text, size_t len) {
  rpc_msg msg;
  rpc_decode_error de;
  if (rpc_decode(text, len, &msg, &de) != 0) {
    json_decref(de.id);
    write_line(1, text, len);
    return;
  }
  if (msg.kind == RPC_MSG_RESPONSE) {
    if (json_is_string(msg.id) && qc_str_has_prefix(json_string_value(msg.id), RELAY_ID_PREFIX)) {
      if (msg.error) {
        const char *em = json_string_value(json_object_get(msg.error, "message"));
        fprintf(stderr, "qcoder acp: the daemon refused %s: %s\n", json_string_value(msg.id), em ? em : "?");
      }
      rpc_msg_release(&msg);
      return; /* our own configure / initialize */
    }
    char *k = id_key(msg.id);
    if (k) json_object_del(r->pending, k);
    free(k);
  } else if (msg.kind == RPC_MSG_REQUEST) {
    char *k = id_key(msg.id);
    if (k) json_object_set_new(r->daemon_reqs, k, json_true());
    free(k);
  }
  rpc_msg_release(&msg);
  write_line(1, text, len);
}

/* Bytes from the daemon: relay every complete message. */
static void daemon_bytes(relay *r, const char *data, size_t n) {
  const char *m;
  size_t ml;
  int k = 0;
  if (rpc_framer_feed(&r->from_daemon, data, n)) {
    disconnect(r, "out of memory");
    return;
  }
  while (r->dfd >= 0 && (k = rpc_framer_next(&r->from_daemon, &m, &ml)) == 1) from_daemon(r, m, ml);
  if (r->dfd >= 0 && k < 0) disconnect(r, "the daemon broke the framing");
}

/* Bytes from the editor: relay every complete message. Nonzero when the editor broke
 * the framing (it was told; nothing more is read from it). */
static int editor_bytes(relay *r, const char *data, size_t n) {
  const char *m;
  size_t ml;
  int k;
  if (rpc_framer_feed(&r->from_editor, data, n)) return -1;
  while ((k = rpc_framer_next(&r->from_editor, &m, &ml)) == 1) from_editor(r, m, ml);
  if (k < 0) {
    write_json(1, rpc_make_error(NULL, RPC_INVALID_REQUEST, r->from_editor.error, NULL));
    return -1;
  }
  return 0;
}

/* The editor closed stdin. Its requests still open get their answers, as the daemon
 * itself does for a peer that finishes sending: we half-close our side (the daemon then
 * cancels their work and answers), relay what comes back until nothing is pending or the
 * daemon closes, bounded by ACP_RELAY_EOF_DRAIN_MS so a stuck daemon cannot keep an
 * editor's child process alive. */
static void drain_answers(relay *r, char *buf, size_t cap) {
  if (r->dfd < 0 || json_object_size(r->pending) == 0) return;
  shutdown(r->dfd, SHUT_WR);
  uint64_t end = qc_now_ms() + ACP_RELAY_EOF_DRAIN_MS;
  while (r->dfd >= 0 && json_object_size(r->pending) > 0) {
    uint64_t now = qc_now_ms();
    if (now >= end) {
      fprintf(stderr, "qcoder acp: %zu request(s) still unanswered %d ms after stdin closed; exiting\n",
              json_object_size(r->pending), ACP_RELAY_EOF_DRAIN_MS);
      return;
    }
    struct pollfd pf = {r->dfd, POLLIN, 0};
    int n = poll(&pf, 1, (int)(end - now));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    ssize_t got = read(r->dfd, buf, cap);
    if (got > 0) {
      daemon_bytes(r, buf, (size_t)got);
    } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
      /* answers every request still open with "went away" */
      disconnect(r, "the qcoder daemon closed the connection");
    }
  }
}

int cmd_acp(int argc, char **argv) {
  const char *socket_opt = NULL, *model_flag = NULL, *remote_flag = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = NULL;
    const char *names[] = {"--model", "--remote", "--socket"};
    int which = -1;
    for (int k = 0; k < 3; k++) {
      size_t n = strlen(names[k]);
      if (!strncmp(a, names[k], n) && (a[n] == '=' || a[n] == '\0')) {
        which = k;
        v = a[n] == '=' ? a + n + 1 : (i + 1 < argc ? argv[++i] : "");
      }
    }
    if (which < 0) return qc_cmd_usage_error("acp", "unknown option '%s'", a);
    if (!*v) return qc_cmd_usage_error("acp", "%s needs a value", names[which]);
    if (which == 2) socket_opt = v;
    else if (model_flag || remote_flag) return qc_cmd_usage_error("acp", "give one of --model and --remote");
    else if (which == 0) model_flag = v;
    else remote_flag = v;
  }
  /* the names `qcoder run` understands (a cached model, a file, a URL, script:FILE),
   * made into the absolute spec the daemon needs (it has its own working directory);
   * with neither flag the daemon's default model applies */
  wf_model_choice choice = {0};
  if (model_flag || remote_flag) {
    char *err = NULL;
    if (wf_model_resolve(model_flag, remote_flag, &choice, &err) != 0) {
      fprintf(stderr, "qcoder acp: %s\n", err ? err : "cannot use the model");
      free(err);
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  relay r = {.model = choice.spec, .dfd = -1};
  char *sock = rpc_socket_path(socket_opt);
  if (!sock) {
    fprintf(stderr, "qcoder acp: cannot work out the socket path\n");
    wf_model_choice_release(&choice);
    return 2;
  }
  r.sock = sock;
  rpc_framer_init(&r.from_editor, RPC_FRAMING_NDJSON, 0);
  rpc_framer_init(&r.from_daemon, RPC_FRAMING_NDJSON, 0);
  r.pending = json_object();
  r.daemon_reqs = json_object();
  char buf[65536];
  int stdin_open = 1, rc = 0;
  while (stdin_open) {
    struct pollfd pf[2] = {{0, POLLIN, 0}, {r.dfd, POLLIN, 0}};
    int n = poll(pf, r.dfd >= 0 ? 2 : 1, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      rc = 1;
      break;
    }
    if (r.dfd >= 0 && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t got = read(r.dfd, buf, sizeof buf);
      if (got > 0) {
        daemon_bytes(&r, buf, (size_t)got);
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        disconnect(&r, "the qcoder daemon closed the connection");
      }
    }
    if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t got = read(0, buf, sizeof buf);
      if (got > 0) {
        if (editor_bytes(&r, buf, (size_t)got)) stdin_open = 0;
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        /* the editor is done sending: a last line without its '\n' is still a message */
        if (got == 0) editor_bytes(&r, "\n", 1);
        stdin_open = 0;
      }
    }
  }
  drain_answers(&r, buf, sizeof buf);
  if (r.dfd >= 0) close(r.dfd);
  rpc_framer_release(&r.from_editor);
  rpc_framer_release(&r.from_daemon);
  json_decref(r.pending);
  json_decref(r.daemon_reqs);
  json_decref(r.init_params);
  wf_model_choice_release(&choice);
  free(sock);
  return rc;
}
