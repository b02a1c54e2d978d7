/* cmd_status.c — `qcoder status` and `qcoder stop`: look at, or stop, the daemon.
 *
 * Both only look: they never start a daemon. When nothing answers on the socket they say
 * so and exit 3, so scripts can tell "not running" from "failed" (1) and misuse (2).
 */
#include "daemon/client.h"
#include "daemon/commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char cmd_stop_usage[] =
    "usage: qcoder stop [--socket PATH]\n"
    "\n"
    "Ask the running daemon to shut down gracefully and wait until its socket is gone.\n"
    "Exit status 3 when no daemon answers on the socket.\n";

const char cmd_status_usage[] =
    "usage: qcoder status [--socket PATH] [--json]\n"
    "\n"
    "Show the running daemon: pid, version, uptime, connections, model. Exit status 3\n"
    "when no daemon answers on the socket. Never starts a daemon.\n";

static int parse_common(const char *cmd, int argc, char **argv, const char **socket_opt, int *json, int allow_json) {
  for (int i = 1; i < argc; i++) {
    if (allow_json && strcmp(argv[i], "--json") == 0) {
      *json = 1;
    } else if (strcmp(argv[i], "--socket") == 0) {
      if (i + 1 >= argc) return qc_cmd_usage_error(cmd, "--socket needs a path");
      *socket_opt = argv[++i];
    } else if (strncmp(argv[i], "--socket=", 9) == 0 && argv[i][9]) {
      *socket_opt = argv[i] + 9;
    } else {
      return qc_cmd_usage_error(cmd, "unknown option '%s'", argv[i]);
    }
  }
  return 0;
}

static void print_duration(long long s) {
  if (s >= 86400) printf("%lldd ", s / 86400);
  if (s >= 3600) printf("%lldh ", s / 3600 % 24);
  if (s >= 60) printf("%lldm ", s / 60 % 60);
  printf("%llds\n", s % 60);
}

int cmd_status(int argc, char **argv) {
  const char *socket_opt = NULL;
  int json = 0;
  int rc = parse_common("status", argc, argv, &socket_opt, &json, 1);
  if (rc) return rc;
  char *sock = rpc_socket_path(socket_opt);
  if (!sock) return 2;
  char why[512] = "";
  int fd = -1;
  json_t *st = NULL;
  int err_code = 0;
  rc = rpc_client_connect(sock, &fd, why, sizeof why);
  if (rc == RPC_ENOT_RUNNING) {
    if (json) {
      json_t *o = json_pack("{s:b, s:s}", "running", 0, "socket", sock);
      char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
      if (s) puts(s);
      free(s);
      json_decref(o);
    } else {
      printf("no qcoder daemon is running (socket %s)\n", sock);
    }
    rc = 3;
    goto out;
  }
  if (rc != QC_OK) {
    fprintf(stderr, "qcoder status: %s\n", why);
    rc = 1;
    goto out;
  }
  rc = rpc_client_call(fd, "_qcoder/status", NULL, RPC_CLIENT_CALL_TIMEOUT_MS, &st, &err_code, why, sizeof why);
  if (rc != QC_OK) {
    fprintf(stderr, "qcoder status: %s\n", why[0] ? why : rpc_strerror(rc));
    rc = 1;
    goto out;
  }
  if (json) {
    json_object_set_new(st, "running", json_true());
    char *s = json_dumps(st, JSON_COMPACT);
    if (s) puts(s);
    free(s);
  } else {
    const json_t *model = json_object_get(st, "model");
    printf("qcoder daemon is running\n");
    printf("  pid:         %lld\n", (long long)json_integer_value(json_object_get(st, "pid")));
    printf("  version:     %s\n", json_string_value(json_object_get(st, "version")) ? json_string_value(json_object_get(st, "version")) : "?");
    printf("  uptime:      ");
    print_duration((long long)json_integer_value(json_object_get(st, "uptime_s")));
    printf("  connections: %lld\n", (long long)json_integer_value(json_object_get(st, "connections")));
    printf("  socket:      %s\n", sock);
    if (!model || json_is_null(model)) {
      printf("  model:       none loaded\n");
    } else if (json_is_string(json_object_get(model, "name"))) {
      printf("  model:       %s\n", json_string_value(json_object_get(model, "name")));
    } else {
      char *s = json_dumps(model, JSON_COMPACT | JSON_ENCODE_ANY);
      printf("  model:       %s\n", s ? s : "?");
      free(s);
    }
  }
  rc = 0;
out:
  if (fd >= 0) close(fd);
  json_decref(st);
  free(sock);
  return rc;
}

int cmd_stop(int argc, char **argv) {
  const char *socket_opt = NULL;
  int json = 0;
  int rc = parse_common("stop", argc, argv, &socket_opt, &json, 0);
  if (rc) return rc;
  char *sock = rpc_socket_path(socket_opt);
  if (!sock) return 2;
  char why[512] = "";
  int fd = -1;
  json_t *res = NULL;
  int err_code = 0;
  rc = rpc_client_connect(sock, &fd, why, sizeof why);
  if (rc == RPC_ENOT_RUNNING) {
    printf("no qcoder daemon is running (socket %s)\n", sock);
    rc = 3;
    goto out;
  }
  if (rc != QC_OK) {
    fprintf(stderr, "qcoder stop: %s\n", why);
    rc = 1;
    goto out;
  }
  rc = rpc_client_call(fd, "_qcoder/shutdown", NULL, RPC_CLIENT_CALL_TIMEOUT_MS, &res, &err_code, why, sizeof why);
  if (rc != QC_OK) {
    fprintf(stderr, "qcoder stop: %s\n", why[0] ? why : rpc_strerror(rc));
    rc = 1;
    goto out;
  }
  long long pid = (long long)json_integer_value(json_object_get(res, "pid"));
  close(fd);
  fd = -1;
  if (!rpc_client_wait_gone(sock, RPC_STOP_WAIT_MS)) {
    fprintf(stderr, "qcoder stop: the daemon (pid %lld) is still shutting down after %d s\n", pid,
            RPC_STOP_WAIT_MS / 1000);
    rc = 1;
    goto out;
  }
  printf("stopped the qcoder daemon (pid %lld)\n", pid);
  rc = 0;
out:
  if (fd >= 0) close(fd);
  json_decref(res);
  free(sock);
  return rc;
}
