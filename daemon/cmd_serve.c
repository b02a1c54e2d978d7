/* cmd_serve.c — `qcoder serve`: the daemon, and the methods every daemon has.
 *
 * The command parses options, opens the log, asks every module in `serve_modules` to
 * register its methods, then listens (socket) or serves stdin/stdout (`--stdio`) until
 * shutdown. A later protocol layer joins by adding its `xxx_register` function to
 * `serve_modules` — one line — and registering its methods there.
 *
 * The first methods: `initialize` (ACP shape, only capabilities that exist),
 * `_qcoder/status`, `_qcoder/ping`, `_qcoder/shutdown`.
 */
#include "daemon/client.h"
#include "daemon/commands.h"
#include "daemon/server.h"
#include "daemon/sessions.h"
#include "daemon/workflow.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char cmd_serve_usage[] =
    "usage: qcoder serve [--socket PATH | --stdio] [--model SPEC] [--idle-timeout SECONDS]\n"
    "                    [--log-level LEVEL] [--log-file PATH] [--max-write-queue BYTES]\n"
    "\n"
    "Run the qcoder daemon: JSON-RPC 2.0 (Agent Client Protocol methods and _qcoder/*) on a\n"
    "Unix socket, or on stdin/stdout with --stdio. Each connection may use newline-delimited\n"
    "JSON (ACP) or Content-Length framing (LSP); the first bytes decide.\n"
    "\n"
    "  --socket PATH          socket to listen on (default $XDG_RUNTIME_DIR/qcoder/qcoder.sock,\n"
    "                         else /tmp/qcoder-$UID/qcoder.sock; $QCODER_RUNTIME_DIR overrides\n"
    "                         the directory). One daemon per socket: a second one exits 1.\n"
    "  --stdio                serve stdin/stdout as one connection (stdout: protocol only;\n"
    "                         logs go to stderr unless --log-file); exit when stdin closes\n"
    "  --model SPEC           default model of sessions that name none: a name in the model\n"
    "                         cache (see `qcoder models`), PATH.gguf, http(s)://HOST:PORT/v1\n"
    "                         (a remote OpenAI-compatible server) or script:FILE (the\n"
    "                         scripted test double); loaded on first use\n"
    "  --idle-timeout SECONDS exit after this long with no connection (default 0 = never;\n"
    "                         daemons started automatically by clients use 1800)\n"
    "  --log-level LEVEL      error, warn, info (default: $QCODER_LOG_LEVEL, else info), debug\n"
    "                         or trace\n"
    "  --log-file PATH        log here (default: daemon.log in the state directory,\n"
    "                         $XDG_STATE_HOME/qcoder or ~/.local/state/qcoder)\n"
    "  --max-write-queue BYTES  drop a client that leaves this much unread (default 65 MiB)\n"
    "\n"
    "SIGINT/SIGTERM shut down gracefully: open requests are cancelled and answered,\n"
    "connections flushed, socket and lock file removed, exit status 0.\n";

/* ---- the first methods ------------------------------------------------------------- */

/* ACP protocol version this daemon speaks. */
#define SERVE_ACP_VERSION 1

static void m_initialize(rpc_req *req, const json_t *params, void *user) {
  rpc_server *srv = user;
  const json_t *pv = json_object_get(params, "protocolVersion");
  if (!json_is_object(params) || !json_is_integer(pv) || json_integer_value(pv) < 0) {
    rpc_req_error(req, RPC_INVALID_PARAMS,
                  "initialize needs params.protocolVersion, a non-negative integer (qcoder speaks ACP version 1)",
                  NULL);
    return;
  }
  rpc_conn_set_init_params(rpc_req_conn(req), params);
  /* ACP: answer the client's version if we support it, else our latest. */
  rpc_req_reply(req, json_pack("{s:i, s:O, s:{s:s, s:s, s:s}, s:[]}", "protocolVersion", SERVE_ACP_VERSION,
                               "agentCapabilities", rpc_server_agent_capabilities(srv), "agentInfo", "name",
                               "qcoder", "title", "qcoder", "version", QCODER_VERSION, "authMethods"));
}

static void m_status(rpc_req *req, const json_t *params, void *user) {
  (void)params;
  rpc_server *srv = user;
  json_t *model = rpc_server_model_info(srv);
  const char *sock = rpc_server_socket_path(srv);
  rpc_req_reply(req, json_pack("{s:i, s:s, s:I, s:i, s:o, s:o}", "pid", (int)getpid(), "version", QCODER_VERSION,
                               "uptime_s", (json_int_t)(rpc_server_uptime_ms(srv) / 1000), "connections",
                               rpc_server_connection_count(srv), "socket", sock ? json_string(sock) : json_null(),
                               "model", model ? model : json_null()));
}

static void m_ping(rpc_req *req, const json_t *params, void *user) {
  (void)params;
  (void)user;
  rpc_req_reply(req, json_pack("{s:b}", "pong", 1));
}

static void m_shutdown(rpc_req *req, const json_t *params, void *user) {
  (void)params;
  rpc_server *srv = user;
  rpc_req_reply(req, json_pack("{s:i}", "pid", (int)getpid()));
  /* the answer is queued first; shutdown flushes it before closing */
  rpc_server_stop(srv, "shutdown requested by a client");
}

static int serve_register_builtin(rpc_server *srv) {
  json_t *caps = rpc_server_agent_capabilities(srv);
  /* Only what exists today; each layer switches on its own capabilities. */
  json_object_set_new(caps, "loadSession", json_false());
  json_object_set_new(caps, "promptCapabilities",
                      json_pack("{s:b, s:b, s:b}", "image", 0, "audio", 0, "embeddedContext", 0));
  json_object_set_new(caps, "mcpCapabilities", json_pack("{s:b, s:b}", "http", 0, "sse", 0));
  int rc = 0;
  rc |= rpc_register(srv, "initialize", m_initialize, srv);
  rc |= rpc_register(srv, "_qcoder/status", m_status, srv);
  rc |= rpc_register(srv, "_qcoder/ping", m_ping, srv);
  rc |= rpc_register(srv, "_qcoder/shutdown", m_shutdown, srv);
  return rc ? QC_EINVAL : QC_OK;
}

/* Every module that serves methods over the daemon's connections, in order. */
typedef int (*serve_module_fn)(rpc_server *srv);
static const serve_module_fn serve_modules[] = {
    serve_register_builtin,
    acp_register,
    acp_complete_register, /* _qcoder/complete (complete.c) */
    NULL,
};

/* ---- the command ------------------------------------------------------------------- */

/* `--name value` or `--name=value`; advances *i past what it used. */
static const char *opt_value(int argc, char **argv, int *i, const char *name) {
  size_t n = strlen(name);
  if (strncmp(argv[*i], name, n) != 0) return NULL;
  if (argv[*i][n] == '=') return argv[*i] + n + 1;
  if (argv[*i][n] != '\0') return NULL;
  if (*i + 1 >= argc) return "";
  return argv[++*i];
}

static int parse_size(const char *s, unsigned long long max, unsigned long long *out) {
  char *end;
  errno = 0;
  if (!*s || *s == '-') return -1;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || v > max) return -1;
  *out = v;
  return 0;
}

int cmd_serve(int argc, char **argv) {
  const char *socket_opt = NULL, *log_file = NULL, *level_name = "info", *model = NULL;
  /* daemons started by clients take their log level from the environment */
  if (getenv("QCODER_LOG_LEVEL") && *getenv("QCODER_LOG_LEVEL")) level_name = getenv("QCODER_LOG_LEVEL");
  int use_stdio = 0;
  unsigned long long idle = 0, max_wq = 0;
  for (int i = 1; i < argc; i++) {
    const char *v;
    if (strcmp(argv[i], "--stdio") == 0) {
      use_stdio = 1;
    } else if ((v = opt_value(argc, argv, &i, "--socket"))) {
      if (!*v) return qc_cmd_usage_error("serve", "--socket needs a path");
      socket_opt = v;
    } else if ((v = opt_value(argc, argv, &i, "--model"))) {
      if (!*v) return qc_cmd_usage_error("serve", "--model needs a model spec (PATH.gguf, http(s)://URL or script:FILE)");
      model = v;
    } else if ((v = opt_value(argc, argv, &i, "--log-file"))) {
      if (!*v) return qc_cmd_usage_error("serve", "--log-file needs a path");
      log_file = v;
    } else if ((v = opt_value(argc, argv, &i, "--log-level"))) {
      level_name = v;
    } else if ((v = opt_value(argc, argv, &i, "--idle-timeout"))) {
      if (parse_size(v, 365ull * 24 * 3600, &idle))
        return qc_cmd_usage_error("serve", "--idle-timeout needs a number of seconds (0 = never), not '%s'", v);
    } else if ((v = opt_value(argc, argv, &i, "--max-write-queue"))) {
      if (parse_size(v, 1ull << 40, &max_wq) || max_wq < 65536)
        return qc_cmd_usage_error("serve", "--max-write-queue needs a byte count of at least 65536, not '%s'", v);
    } else {
      return qc_cmd_usage_error("serve", "unknown option '%s'", argv[i]);
    }
  }
  if (use_stdio && socket_opt) return qc_cmd_usage_error("serve", "--stdio and --socket exclude each other");
  /* the first-message limit, overridable for tests (0 = never) */
  int first_msg_ms = 0;
  const char *fm = getenv("QCODER_FIRST_MESSAGE_TIMEOUT_MS");
  if (fm && *fm) {
    unsigned long long v;
    if (parse_size(fm, 24ull * 3600 * 1000, &v))
      return qc_cmd_usage_error("serve", "$QCODER_FIRST_MESSAGE_TIMEOUT_MS must be a number of milliseconds "
                                         "(0 = never), not '%s'", fm);
    first_msg_ms = v ? (int)v : -1;
  }
  qc_log_level level;
  if (qc_log_level_parse(level_name, &level))
    return qc_cmd_usage_error("serve", "--log-level must be error, warn, info, debug or trace, not '%s'", level_name);

  int rc = 2, lock_fd = -1;
  char *lock_path = NULL;
  char *default_log = NULL, *sock = NULL;
  rpc_server *srv = NULL;
  /* the names `qcoder run` understands (a cached model, a file, a URL, script:FILE),
   * made absolute: sessions open the model later, whatever the working directory */
  wf_model_choice choice = {0};
  if (model) {
    char *err = NULL;
    if (wf_model_resolve(model, NULL, &choice, &err) != 0) {
      fprintf(stderr, "qcoder serve: %s\n", err ? err : "cannot use the model");
      free(err);
      return 2;
    }
    model = choice.spec;
  }

  /* Logs: a file for the socket daemon (it outlives terminals); stderr for --stdio,
   * whose stdout belongs to the protocol. */
  if (!log_file && !use_stdio) {
    char *state = qc_state_dir();
    if (state && qc_mkdir_p(state, 0700) == QC_OK) default_log = qc_path_join(state, "daemon.log");
    free(state);
    log_file = default_log;
  }
  if (qc_log_open(log_file, level) != QC_OK) {
    fprintf(stderr, "qcoder serve: cannot open log file %s: %s\n", log_file, strerror(errno));
    goto out;
  }

  acp_sessions_set_default_model(model);
  rpc_server_opts opts = {.idle_timeout_s = (unsigned)idle,
                          .max_write_queue = (size_t)max_wq,
                          .handle_signals = 1,
                          .first_message_timeout_ms = first_msg_ms};
  srv = rpc_server_new(&opts);
  if (!srv) {
    fprintf(stderr, "qcoder serve: out of memory\n");
    goto out;
  }
  for (const serve_module_fn *m = serve_modules; *m; m++) {
    if ((*m)(srv) != QC_OK) {
      fprintf(stderr, "qcoder serve: a module failed to register its methods (see the log)\n");
      goto out;
    }
  }

  if (use_stdio) {
    if (rpc_server_add_stdio(srv) != QC_OK) {
      fprintf(stderr, "qcoder serve: --stdio needs stdin and stdout to be pipes, sockets or a terminal\n");
      goto out;
    }
    qc_info("serving JSON-RPC on stdin/stdout (pid %d)", (int)getpid());
  } else {
    sock = rpc_socket_path(socket_opt);
    if (!sock) {
      fprintf(stderr, "qcoder serve: cannot work out the socket path\n");
      goto out;
    }
    if (!socket_opt) {
      /* our own runtime directory: make sure nobody else can look inside */
      char *dir = qc_runtime_dir();
      struct stat st;
      if (dir && qc_mkdir_p(dir, 0700) == QC_OK && stat(dir, &st) == 0 && (st.st_mode & 077)) chmod(dir, 0700);
      free(dir);
    }
    long holder = 0;
    char why[512] = "";
    int lr = rpc_server_listen(srv, sock, &holder, why, sizeof why);
    if (lr == RPC_ERUNNING) {
      fprintf(stderr, "qcoder serve: a qcoder daemon is already running on %s (pid %ld)\n", sock, holder);
      rc = 1;
      goto out;
    }
    if (lr != QC_OK) {
      fprintf(stderr, "qcoder serve: %s\n", why[0] ? why : rpc_strerror(lr));
      qc_error("%s", why[0] ? why : rpc_strerror(lr));
      goto out;
    }
    qc_info("qcoder %s listening on %s (pid %d, idle timeout %llu s)", QCODER_VERSION, sock, (int)getpid(), idle);
    fprintf(stderr, "qcoder serve: listening on %s (pid %d)%s%s\n", sock, (int)getpid(),
            log_file ? "; log: " : "", log_file ? log_file : "");
  }
  rc = rpc_server_run(srv);
  /* the lock is held until the sessions are gone (their KV caches saved), so a client
   * waiting for this daemon to stop, or a new daemon, never sees it half gone */
  lock_fd = rpc_server_take_lock(srv, &lock_path);
  acp_sessions_shutdown(); /* join the agent's workers before the server goes */
out:
  rpc_server_free(srv);
  acp_sessions_free();
  if (lock_fd >= 0) {
    unlink(lock_path);
    close(lock_fd);
  }
  free(lock_path);
  qc_log_close();
  free(sock);
  free(default_log);
  wf_model_choice_release(&choice);
  return rc;
}
