/* server.c — libuv transport for the JSON-RPC core: listening socket and lock, accepted
 * and adopted connections, stdio, bounded writes, the post queue, phased shutdown.
 *
 * Each connection is an `srv_io`: one or two libuv stream handles (stdio has a reading
 * and a writing one) plus the rpc_conn they feed. The core decides *when* to close (a
 * framing error, a handler, EOF with nothing left to answer); this file decides *how*:
 * stop reading, optionally uv_shutdown() so queued answers reach the peer, uv_close the
 * handles, and only in the last close callback tell the core the transport is gone.
 * That single exit (io_gone) is where connection counts, the idle timer and shutdown
 * progress are updated, so no path can forget them.
 */
#include "daemon/server.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum { SRV_RUNNING = 0, SRV_STOPPING, SRV_CLOSING, SRV_DONE };

typedef struct srv_io {
  rpc_server *srv;
  rpc_conn *conn;                 /* NULL for a connection refused at accept */
  union {
    uv_handle_t h;
    uv_stream_t s;
    uv_pipe_t pipe;
    uv_tty_t tty;
  } in, out;
  int split;                      /* `out` is a handle of its own (stdio) */
  int is_stdio;
  int closing;                    /* io_close ran */
  int handles_closing;            /* uv_close called on the handles */
  int open_handles;
  uv_shutdown_t shutdown_req;
  uv_timer_t flush_timer;         /* bounds a flushing close (RPC_SHUTDOWN_FLUSH_MS) */
  int flush_timer_live;
  uv_timer_t hello_timer;         /* accepted connections: the first-message limit */
  int hello_timer_live;           /* initialised (needs closing) */
  int spoke;                      /* a complete message came: the limit is off */
  struct srv_io *prev, *next;
} srv_io;

typedef struct srv_write {
  uv_write_t req;
  srv_io *io;
  char data[];
} srv_write;

typedef struct srv_post {
  rpc_post_fn fn;
  void *user;
  struct srv_post *next;
} srv_post;

struct rpc_server {
  uv_loop_t *loop;
  uv_loop_t own_loop;
  int owns_loop;
  rpc_server_opts opts;
  rpc_methods *methods;
  int state;
  uint64_t started_ms;
  pthread_t loop_thread;          /* set by rpc_server_run */
  int running;

  uv_pipe_t listener;
  int listening;                  /* listener initialised (needs closing) */
  char *socket_path;
  char *lock_path;
  int lock_fd;

  uv_signal_t sigint, sigterm;
  uv_timer_t idle_timer, grace_timer, flush_timer;
  uv_async_t async;
  int handles_open;               /* server-level handles not yet closed */
  int handles_closed;             /* close_server_handles ran */

  pthread_mutex_t post_mu;
  srv_post *post_head, *post_tail;
  int async_live;                 /* uv_async_send allowed (under post_mu) */

  srv_io *ios;
  int nconns;
  srv_io *stdio;

  json_t *agent_caps;
  rpc_model_info_fn model_fn;
  void *model_user;
  char readbuf[RPC_READ_CHUNK_BYTES];
};

static void srv_progress(rpc_server *srv);
static void io_close(void *p, int flush);

/* ---- connections ------------------------------------------------------------------- */

static uv_stream_t *io_out(srv_io *io) { return io->split ? &io->out.s : &io->in.s; }

static void io_gone(srv_io *io) {
  rpc_server *srv = io->srv;
  if (io->prev) io->prev->next = io->next;
  else srv->ios = io->next;
  if (io->next) io->next->prev = io->prev;
  srv->nconns--;
  int was_stdio = io->is_stdio;
  if (was_stdio) srv->stdio = NULL;
  if (io->conn) {
    qc_debug("conn %llu closed (%d open)", (unsigned long long)rpc_conn_id(io->conn), srv->nconns);
    rpc_conn_set_idle_hook(io->conn, NULL, NULL);
    rpc_conn_io_closed(io->conn);
  }
  free(io);
  if (was_stdio && srv->state == SRV_RUNNING) rpc_server_stop(srv, "stdio closed");
  srv_progress(srv);
}

static void on_io_handle_closed(uv_handle_t *h) {
  srv_io *io = h->data;
  if (--io->open_handles == 0) io_gone(io);
}

static void io_close_handles(srv_io *io) {
  if (io->handles_closing) return;
  io->handles_closing = 1;
  io->open_handles = (io->split ? 2 : 1) + (io->flush_timer_live ? 1 : 0) + (io->hello_timer_live ? 1 : 0);
  uv_close(&io->in.h, on_io_handle_closed);
  if (io->split) uv_close(&io->out.h, on_io_handle_closed);
  if (io->flush_timer_live) uv_close((uv_handle_t *)&io->flush_timer, on_io_handle_closed);
  if (io->hello_timer_live) uv_close((uv_handle_t *)&io->hello_timer, on_io_handle_closed);
}

static void on_io_flush_timeout(uv_timer_t *t) {
  srv_io *io = t->data;
  qc_info("conn %llu: the peer did not take its last bytes within %d ms; closing",
          io->conn ? (unsigned long long)rpc_conn_id(io->conn) : 0ull, RPC_SHUTDOWN_FLUSH_MS);
  io_close_handles(io);
}

static void on_io_shutdown(uv_shutdown_t *req, int status) {
  (void)status; /* ENOTSOCK on a plain pipe, ECANCELED when forced: close either way */
  io_close_handles(req->data);
}

/* rpc_conn_ops.close */
static void io_close(void *p, int flush) {
  srv_io *io = p;
  if (io->handles_closing) return;
  if (io->closing) {
    if (!flush) io_close_handles(io); /* upgrade a flushing close to an immediate one */
    return;
  }
  io->closing = 1;
  uv_read_stop(&io->in.s);
  uv_stream_t *out = io_out(io);
  if (flush && uv_is_writable(out)) {
    io->shutdown_req.data = io;
    if (uv_shutdown(&io->shutdown_req, out, on_io_shutdown) == 0) {
      /* a peer that never reads must not keep the connection half-open forever */
      if (uv_timer_init(io->srv->loop, &io->flush_timer) == 0) {
        io->flush_timer_live = 1;
        io->flush_timer.data = io;
        uv_timer_start(&io->flush_timer, on_io_flush_timeout, RPC_SHUTDOWN_FLUSH_MS, 0);
      }
      return;
    }
  }
  io_close_handles(io);
}

static void on_io_write(uv_write_t *req, int status) {
  srv_write *w = (srv_write *)req;
  srv_io *io = w->io;
  if (status < 0 && status != UV_ECANCELED && io->conn && rpc_conn_is_open(io->conn)) {
    qc_info("conn %llu: write failed (%s); closing", (unsigned long long)rpc_conn_id(io->conn),
            uv_strerror(status));
    rpc_conn_close(io->conn, 0);
  }
  free(w);
}

/* rpc_conn_ops.write */
static int io_write(void *p, const char *data, size_t len) {
  srv_io *io = p;
  if (io->closing) return -1;
  uv_stream_t *out = io_out(io);
  srv_write *w = malloc(sizeof *w + len);
  if (!w) return -1;
  w->io = io;
  memcpy(w->data, data, len);
  uv_buf_t buf = uv_buf_init(w->data, (unsigned)len);
  int rc = uv_write(&w->req, out, &buf, 1, on_io_write);
  if (rc < 0) {
    free(w);
    return -1;
  }
  size_t queued = uv_stream_get_write_queue_size(out);
  if (queued > io->srv->opts.max_write_queue) {
    qc_warn("conn %llu: dropping a peer that does not read: %zu bytes queued (limit %zu)",
            (unsigned long long)rpc_conn_id(io->conn), queued, io->srv->opts.max_write_queue);
    return -1; /* the core closes the connection without flushing */
  }
  return 0;
}

static const rpc_conn_ops srv_conn_ops = {io_write, io_close};

static void on_io_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  srv_io *io = h->data;
  buf->base = io->srv->readbuf;
  buf->len = sizeof io->srv->readbuf;
}

static void on_io_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  srv_io *io = s->data;
  if (!io->conn) return;
  if (nread > 0) {
    rpc_conn_input(io->conn, buf->base, (size_t)nread);
    if (!io->spoke && rpc_conn_messages_received(io->conn) > 0) {
      io->spoke = 1;
      if (io->hello_timer_live) uv_timer_stop(&io->hello_timer);
    }
  } else if (nread == UV_EOF) {
    uv_read_stop(s);
    qc_debug("conn %llu: peer finished sending", (unsigned long long)rpc_conn_id(io->conn));
    rpc_conn_input_eof(io->conn);
  } else if (nread < 0) {
    qc_info("conn %llu: read failed (%s); closing", (unsigned long long)rpc_conn_id(io->conn),
            uv_strerror((int)nread));
    rpc_conn_close(io->conn, 0);
  }
}

static void on_conn_idle(rpc_conn *c, void *user) {
  (void)c;
  rpc_server *srv = user;
  if (srv->state == SRV_STOPPING) srv_progress(srv);
}

static srv_io *io_new(rpc_server *srv) {
  srv_io *io = calloc(1, sizeof *io);
  if (!io) return NULL;
  io->srv = srv;
  io->in.h.data = io;
  io->out.h.data = io;
  return io;
}

/* Link an io with initialised handles into the server and start it as a connection. */
static rpc_conn *io_start(srv_io *io, rpc_framing framing) {
  rpc_server *srv = io->srv;
  io->next = srv->ios;
  if (srv->ios) srv->ios->prev = io;
  srv->ios = io;
  srv->nconns++;
  uv_timer_stop(&srv->idle_timer);
  rpc_conn_config cfg = {srv->methods, &srv_conn_ops, io, srv, framing, 0};
  io->conn = rpc_conn_new(&cfg);
  if (!io->conn) {
    qc_error("out of memory accepting a connection");
    io_close(io, 0);
    return NULL;
  }
  rpc_conn_set_idle_hook(io->conn, on_conn_idle, srv);
  int rc = uv_read_start(&io->in.s, on_io_alloc, on_io_read);
  if (rc < 0) {
    qc_warn("conn %llu: cannot read (%s)", (unsigned long long)rpc_conn_id(io->conn), uv_strerror(rc));
    rpc_conn_close(io->conn, 0);
    return NULL;
  }
  return io->conn;
}

static void on_refused_closed(uv_handle_t *h) { free(h->data); }

static void on_hello_timeout(uv_timer_t *t) {
  srv_io *io = t->data;
  if (io->spoke || !io->conn || !rpc_conn_is_open(io->conn)) return;
  qc_info("conn %llu: no complete message within %d ms of connecting; closing it (clients speak first)",
          (unsigned long long)rpc_conn_id(io->conn), io->srv->opts.first_message_timeout_ms);
  rpc_conn_close(io->conn, 0);
}

static void on_connection(uv_stream_t *listener, int status) {
  rpc_server *srv = listener->data;
  if (status < 0) {
    qc_warn("accept failed: %s", uv_strerror(status));
    return;
  }
  srv_io *io = io_new(srv);
  if (!io) return;
  uv_pipe_init(srv->loop, &io->in.pipe, 0);
  io->in.h.data = io;
  if (uv_accept(listener, &io->in.s) < 0) {
    uv_close(&io->in.h, on_refused_closed);
    return;
  }
  if (srv->state != SRV_RUNNING || srv->nconns >= RPC_MAX_CONNECTIONS) {
    qc_warn("refusing a connection: %s", srv->state != SRV_RUNNING ? "shutting down" : "too many connections");
    uv_close(&io->in.h, on_refused_closed);
    return;
  }
  if (srv->opts.first_message_timeout_ms > 0 && uv_timer_init(srv->loop, &io->hello_timer) == 0) {
    io->hello_timer.data = io;
    io->hello_timer_live = 1;
  }
  rpc_conn *c = io_start(io, RPC_FRAMING_DETECT);
  if (!c) return;
  qc_debug("conn %llu accepted (%d open)", (unsigned long long)rpc_conn_id(c), srv->nconns);
  if (io->hello_timer_live && !io->spoke)
    uv_timer_start(&io->hello_timer, on_hello_timeout, (uint64_t)srv->opts.first_message_timeout_ms, 0);
}

/* ---- shutdown ---------------------------------------------------------------------- */

static void on_server_handle_closed(uv_handle_t *h) {
  rpc_server *srv = h->data;
  srv->handles_open--;
}

static void close_server_handle(rpc_server *srv, uv_handle_t *h) {
  if (uv_is_closing(h)) return;
  h->data = srv;
  uv_close(h, on_server_handle_closed);
}

static void close_listener(rpc_server *srv) {
  if (!srv->listening) return;
  srv->listening = 0;
  close_server_handle(srv, (uv_handle_t *)&srv->listener);
}

static void close_server_handles(rpc_server *srv) {
  if (srv->handles_closed) return;
  srv->handles_closed = 1;
  close_listener(srv);
  pthread_mutex_lock(&srv->post_mu);
  srv->async_live = 0;
  pthread_mutex_unlock(&srv->post_mu);
  uv_handle_t *hs[] = {(uv_handle_t *)&srv->sigint, (uv_handle_t *)&srv->sigterm,
                       (uv_handle_t *)&srv->idle_timer, (uv_handle_t *)&srv->grace_timer,
                       (uv_handle_t *)&srv->flush_timer, (uv_handle_t *)&srv->async};
  for (size_t i = 0; i < sizeof hs / sizeof *hs; i++) close_server_handle(srv, hs[i]);
}

static void force_close_all(rpc_server *srv) {
  for (srv_io *io = srv->ios; io; io = io->next) {
    if (io->conn && rpc_conn_is_open(io->conn)) rpc_conn_close(io->conn, 0);
    else io_close(io, 0);
  }
}

static void on_flush_timeout(uv_timer_t *t) {
  rpc_server *srv = t->data;
  qc_warn("shutdown: %d connection(s) did not take their last bytes in time; closing them", srv->nconns);
  force_close_all(srv);
}

/* Phase 2: answer what is still open, then flush and close every connection. */
static void begin_closing(rpc_server *srv) {
  if (srv->state >= SRV_CLOSING) return;
  srv->state = SRV_CLOSING;
  uv_timer_stop(&srv->grace_timer);
  for (srv_io *io = srv->ios; io; io = io->next) {
    if (!io->conn) continue;
    if (rpc_conn_inflight(io->conn) > 0) {
      qc_info("shutdown: answering %d open request(s) on conn %llu with an error",
              rpc_conn_inflight(io->conn), (unsigned long long)rpc_conn_id(io->conn));
      rpc_conn_fail_inflight(io->conn, RPC_REQUEST_CANCELLED, "request cancelled: the qcoder daemon is shutting down");
    }
  }
  for (srv_io *io = srv->ios; io; io = io->next) {
    if (io->conn && rpc_conn_is_open(io->conn)) rpc_conn_close(io->conn, 1);
    else io_close(io, 1);
  }
  if (srv->ios) uv_timer_start(&srv->flush_timer, on_flush_timeout, RPC_SHUTDOWN_FLUSH_MS, 0);
  srv_progress(srv);
}

static void on_grace_timeout(uv_timer_t *t) {
  rpc_server *srv = t->data;
  qc_warn("shutdown: handlers did not answer within %d ms", RPC_SHUTDOWN_GRACE_MS);
  begin_closing(srv);
}

static int total_inflight(rpc_server *srv) {
  int n = 0;
  for (srv_io *io = srv->ios; io; io = io->next)
    if (io->conn) n += rpc_conn_inflight(io->conn);
  return n;
}

static void on_idle_timeout(uv_timer_t *t) {
  rpc_server *srv = t->data;
  char why[64];
  snprintf(why, sizeof why, "no connections for %u s (idle timeout)", srv->opts.idle_timeout_s);
  rpc_server_stop(srv, why);
}

/* Called whenever a connection closes or a request is answered. */
static void srv_progress(rpc_server *srv) {
  switch (srv->state) {
  case SRV_RUNNING:
    if (srv->nconns == 0 && srv->opts.idle_timeout_s && !srv->handles_closed && srv->listening)
      uv_timer_start(&srv->idle_timer, on_idle_timeout, (uint64_t)srv->opts.idle_timeout_s * 1000u, 0);
    break;
  case SRV_STOPPING:
    if (total_inflight(srv) == 0) begin_closing(srv);
    break;
  case SRV_CLOSING:
    if (srv->nconns == 0) {
      srv->state = SRV_DONE;
      close_server_handles(srv);
    }
    break;
  default: break;
  }
}

void rpc_server_stop(rpc_server *srv, const char *reason) {
  if (srv->state != SRV_RUNNING) return;
  qc_info("shutting down: %s", reason ? reason : "requested");
  srv->state = SRV_STOPPING;
  uv_timer_stop(&srv->idle_timer);
  close_listener(srv);
  /* cancel hooks may answer (and close) synchronously: rescan after each connection */
  for (srv_io *io = srv->ios; io; io = io->next)
    if (io->conn) rpc_conn_cancel_all(io->conn);
  if (total_inflight(srv) > 0) uv_timer_start(&srv->grace_timer, on_grace_timeout, RPC_SHUTDOWN_GRACE_MS, 0);
  srv_progress(srv);
}

int rpc_server_stopping(const rpc_server *srv) { return srv->state != SRV_RUNNING; }

static void on_signal(uv_signal_t *h, int signum) {
  rpc_server *srv = h->data;
  const char *name = signum == SIGINT ? "SIGINT" : "SIGTERM";
  switch (srv->state) {
  case SRV_RUNNING: rpc_server_stop(srv, name); break;
  case SRV_STOPPING:
    qc_info("%s again: not waiting for handlers", name);
    begin_closing(srv);
    break;
  default:
    qc_info("%s again: closing connections now", name);
    force_close_all(srv);
    break;
  }
}

/* ---- posting from other threads ---------------------------------------------------- */

static void run_posts(rpc_server *srv) {
  pthread_mutex_lock(&srv->post_mu);
  srv_post *p = srv->post_head;
  srv->post_head = srv->post_tail = NULL;
  pthread_mutex_unlock(&srv->post_mu);
  while (p) {
    srv_post *next = p->next;
    p->fn(srv, p->user);
    free(p);
    p = next;
  }
}

static void on_async(uv_async_t *a) { run_posts(a->data); }

int rpc_server_post(rpc_server *srv, rpc_post_fn fn, void *user) {
  srv_post *p = malloc(sizeof *p);
  if (!p) return QC_ENOMEM;
  p->fn = fn;
  p->user = user;
  p->next = NULL;
  pthread_mutex_lock(&srv->post_mu);
  if (srv->post_tail) srv->post_tail->next = p;
  else srv->post_head = p;
  srv->post_tail = p;
  if (srv->async_live) uv_async_send(&srv->async);
  pthread_mutex_unlock(&srv->post_mu);
  return QC_OK;
}

typedef struct srv_post_note {
  uint64_t conn_id;
  json_t *params;
  char method[];
} srv_post_note;

static void post_note_run(rpc_server *srv, void *user) {
  srv_post_note *n = user;
  rpc_conn *c = rpc_server_find_conn(srv, n->conn_id);
  if (c && rpc_conn_is_open(c)) rpc_conn_notify(c, n->method, n->params);
  else json_decref(n->params);
  free(n);
}

int rpc_server_post_notify(rpc_server *srv, uint64_t conn_id, const char *method, json_t *params_steal) {
  size_t ml = strlen(method);
  srv_post_note *n = malloc(sizeof *n + ml + 1);
  if (!n) {
    json_decref(params_steal);
    return QC_ENOMEM;
  }
  n->conn_id = conn_id;
  n->params = params_steal;
  memcpy(n->method, method, ml + 1);
  int rc = rpc_server_post(srv, post_note_run, n);
  if (rc) {
    json_decref(params_steal);
    free(n);
  }
  return rc;
}

typedef struct srv_post_answer {
  rpc_req *req;
  json_t *result; /* answer with this result, or with the error below */
  int code;
  char message[];
} srv_post_answer;

static void post_answer_run(rpc_server *srv, void *user) {
  (void)srv;
  srv_post_answer *a = user;
  if (a->code) rpc_req_error(a->req, a->code, a->message, NULL);
  else rpc_req_reply(a->req, a->result);
  free(a);
}

static int post_answer(rpc_server *srv, rpc_req *req, json_t *result_steal, int code, const char *message) {
  size_t ml = message ? strlen(message) : 0;
  srv_post_answer *a = malloc(sizeof *a + ml + 1);
  if (!a) {
    json_decref(result_steal);
    return QC_ENOMEM;
  }
  a->req = req;
  a->result = result_steal;
  a->code = code;
  memcpy(a->message, message ? message : "", ml + 1);
  int rc = rpc_server_post(srv, post_answer_run, a);
  if (rc) {
    json_decref(result_steal);
    free(a);
  }
  return rc;
}

int rpc_server_post_reply(rpc_server *srv, rpc_req *req, json_t *result_steal) {
  return post_answer(srv, req, result_steal, 0, NULL);
}

int rpc_server_post_error(rpc_server *srv, rpc_req *req, int code, const char *message) {
  return post_answer(srv, req, NULL, code ? code : RPC_INTERNAL_ERROR, message);
}

/* A blocking call from a worker: shared between the worker and the loop, freed by
 * whichever lets go last (the worker may time out before the answer comes). */
typedef struct srv_sync_call {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int refs;
  int done;
  int rc;
  json_t *result;
  int code;
  char message[256];
  uint64_t conn_id;
  int64_t out_id;   /* the request's id on the connection (loop thread only) */
  json_t *params;
  char method[];
} srv_sync_call;

static void sync_call_unref(srv_sync_call *sc) {
  pthread_mutex_lock(&sc->mu);
  int last = --sc->refs == 0;
  pthread_mutex_unlock(&sc->mu);
  if (!last) return;
  json_decref(sc->result);
  json_decref(sc->params);
  pthread_mutex_destroy(&sc->mu);
  pthread_cond_destroy(&sc->cv);
  free(sc);
}

static void sync_call_complete(srv_sync_call *sc, int rc, const json_t *result, int code, const char *message) {
  pthread_mutex_lock(&sc->mu);
  sc->done = 1;
  sc->rc = rc;
  sc->result = result ? json_incref((json_t *)result) : NULL;
  sc->code = code;
  snprintf(sc->message, sizeof sc->message, "%s", message ? message : "");
  pthread_cond_signal(&sc->cv);
  pthread_mutex_unlock(&sc->mu);
  sync_call_unref(sc);
}

static void sync_call_answered(rpc_conn *c, const json_t *result, const rpc_error *err, void *user) {
  (void)c;
  if (result) sync_call_complete(user, QC_OK, result, 0, NULL);
  else if (err->code == RPC_CONNECTION_CLOSED) sync_call_complete(user, RPC_ECLOSED, NULL, err->code, err->message);
  else sync_call_complete(user, RPC_EREMOTE, NULL, err->code, err->message);
}

static void sync_call_send(rpc_server *srv, void *user) {
  srv_sync_call *sc = user;
  rpc_conn *c = rpc_server_find_conn(srv, sc->conn_id);
  if (!c || !rpc_conn_is_open(c)) {
    sync_call_complete(sc, RPC_ECLOSED, NULL, 0, "the connection is closed");
    return;
  }
  json_t *params = sc->params;
  sc->params = NULL;
  int64_t id = rpc_conn_request(c, sc->method, params, sync_call_answered, sc);
  if (id < 0) sync_call_complete(sc, (int)id, NULL, 0, rpc_strerror((int)id));
  else sc->out_id = id;
}

/* The worker stopped waiting (timeout): free the request's pending slot, so it neither
 * holds memory nor counts against RPC_MAX_PENDING_OUTGOING; a late answer is dropped by
 * the core. Runs after sync_call_send (posts run in order). */
static void sync_call_abandon(rpc_server *srv, void *user) {
  srv_sync_call *sc = user;
  pthread_mutex_lock(&sc->mu);
  int done = sc->done;
  pthread_mutex_unlock(&sc->mu);
  if (!done && sc->out_id > 0) {
    rpc_conn *c = rpc_server_find_conn(srv, sc->conn_id);
    if (c && rpc_conn_forget_request(c, sc->out_id) == QC_OK) {
      qc_debug("conn %llu: gave up waiting for the answer to %s (request %lld)", (unsigned long long)sc->conn_id,
               sc->method, (long long)sc->out_id);
      sync_call_complete(sc, RPC_ETIMEOUT, NULL, 0, "timed out"); /* the loop side's reference */
    }
  }
  sync_call_unref(sc); /* this post's reference */
}

int rpc_server_call(rpc_server *srv, uint64_t conn_id, const char *method, json_t *params_steal, int timeout_ms,
                    json_t **result, int *err_code, char *why, size_t why_len) {
  *result = NULL;
  if (err_code) *err_code = 0;
  if (srv->running && pthread_equal(pthread_self(), srv->loop_thread)) {
    json_decref(params_steal);
    return QC_EINVAL; /* would wait for ourselves forever */
  }
  size_t ml = strlen(method);
  srv_sync_call *sc = calloc(1, sizeof *sc + ml + 1);
  if (!sc) {
    json_decref(params_steal);
    return QC_ENOMEM;
  }
  pthread_mutex_init(&sc->mu, NULL);
  pthread_cond_init(&sc->cv, NULL);
  sc->refs = 2; /* ours, and the loop side's until it completes */
  sc->conn_id = conn_id;
  sc->params = params_steal;
  memcpy(sc->method, method, ml + 1);
  if (rpc_server_post(srv, sync_call_send, sc) != QC_OK) {
    sc->refs = 1;
    sync_call_unref(sc);
    return QC_ENOMEM;
  }
  struct timespec until;
  if (timeout_ms >= 0) {
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
  }
  int rc;
  pthread_mutex_lock(&sc->mu);
  while (!sc->done) {
    if (timeout_ms < 0) pthread_cond_wait(&sc->cv, &sc->mu);
    else if (pthread_cond_timedwait(&sc->cv, &sc->mu, &until) == ETIMEDOUT) break;
  }
  int abandon = 0;
  if (!sc->done) {
    rc = RPC_ETIMEOUT;
    if (why && why_len) snprintf(why, why_len, "%s: no answer within %d ms", method, timeout_ms);
    sc->refs++; /* for sync_call_abandon */
    abandon = 1;
  } else {
    rc = sc->rc;
    if (rc == QC_OK) *result = json_incref(sc->result);
    if (err_code) *err_code = sc->code;
    if (rc != QC_OK && why && why_len) snprintf(why, why_len, "%s", sc->message);
  }
  pthread_mutex_unlock(&sc->mu);
  if (abandon && rpc_server_post(srv, sync_call_abandon, sc) != QC_OK) sync_call_unref(sc);
  sync_call_unref(sc);
  return rc;
}

/* ---- lifecycle --------------------------------------------------------------------- */

rpc_server *rpc_server_new(const rpc_server_opts *opts) {
  rpc_server *srv = calloc(1, sizeof *srv);
  if (!srv) return NULL;
  if (opts) srv->opts = *opts;
  if (!srv->opts.max_write_queue) srv->opts.max_write_queue = RPC_MAX_WRITE_QUEUE_BYTES;
  if (!srv->opts.first_message_timeout_ms) srv->opts.first_message_timeout_ms = RPC_FIRST_MESSAGE_TIMEOUT_MS;
  srv->lock_fd = -1;
  srv->methods = rpc_methods_new();
  srv->agent_caps = json_object();
  if (!srv->methods || !srv->agent_caps) goto fail;
  if (srv->opts.loop) {
    srv->loop = srv->opts.loop;
  } else {
    if (uv_loop_init(&srv->own_loop) != 0) goto fail;
    srv->loop = &srv->own_loop;
    srv->owns_loop = 1;
  }
  pthread_mutex_init(&srv->post_mu, NULL);
  signal(SIGPIPE, SIG_IGN);
  uv_timer_init(srv->loop, &srv->idle_timer);
  uv_timer_init(srv->loop, &srv->grace_timer);
  uv_timer_init(srv->loop, &srv->flush_timer);
  uv_signal_init(srv->loop, &srv->sigint);
  uv_signal_init(srv->loop, &srv->sigterm);
  uv_async_init(srv->loop, &srv->async, on_async);
  srv->handles_open = 6;
  srv->idle_timer.data = srv->grace_timer.data = srv->flush_timer.data = srv;
  srv->sigint.data = srv->sigterm.data = srv->async.data = srv;
  srv->async_live = 1;
  if (srv->opts.handle_signals) {
    uv_signal_start(&srv->sigint, on_signal, SIGINT);
    uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
  }
  srv->started_ms = qc_now_ms();
  return srv;
fail:
  rpc_methods_free(srv->methods);
  json_decref(srv->agent_caps);
  free(srv);
  return NULL;
}

static void remove_socket(rpc_server *srv) {
  if (srv->socket_path) {
    if (unlink(srv->socket_path) != 0 && errno != ENOENT)
      qc_warn("cannot remove %s: %s", srv->socket_path, strerror(errno));
  }
}

static void release_lock(rpc_server *srv) {
  if (srv->lock_fd >= 0) {
    unlink(srv->lock_path);
    close(srv->lock_fd); /* releases the flock */
    srv->lock_fd = -1;
  }
}

int rpc_server_take_lock(rpc_server *srv, char **lock_path) {
  *lock_path = NULL;
  if (srv->lock_fd < 0) return -1;
  *lock_path = strdup(srv->lock_path);
  if (!*lock_path) return -1;
  int fd = srv->lock_fd;
  srv->lock_fd = -1;
  return fd;
}

int rpc_server_run(rpc_server *srv) {
  if (srv->state == SRV_RUNNING && srv->nconns == 0 && !srv->listening) {
    qc_error("nothing to serve: no socket and no connection");
    return 2;
  }
  srv->loop_thread = pthread_self();
  srv->running = 1;
  srv_progress(srv); /* arms the idle timer when nobody is connected yet */
  uv_run(srv->loop, UV_RUN_DEFAULT);
  srv->running = 0;
  remove_socket(srv); /* no new clients; the lock stays until the server is freed */
  qc_info("daemon stopped");
  return 0;
}

void rpc_server_free(rpc_server *srv) {
  if (!srv) return;
  if (srv->state < SRV_CLOSING) {
    srv->state = SRV_CLOSING;
    close_listener(srv);
    force_close_all(srv);
  }
  if (!srv->ios) srv->state = SRV_DONE;
  close_server_handles(srv);
  while (srv->handles_open > 0 || srv->ios) uv_run(srv->loop, UV_RUN_ONCE);
  remove_socket(srv);
  release_lock(srv);
  run_posts(srv);
  if (srv->owns_loop) {
    uv_run(srv->loop, UV_RUN_NOWAIT);
    if (uv_loop_close(srv->loop) != 0) qc_warn("event loop closed with handles still open");
  }
  pthread_mutex_destroy(&srv->post_mu);
  rpc_methods_free(srv->methods);
  json_decref(srv->agent_caps);
  free(srv->socket_path);
  free(srv->lock_path);
  free(srv);
}

/* ---- listening --------------------------------------------------------------------- */

static int why_fail(char *why, size_t n, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int why_fail(char *why, size_t n, int code, const char *fmt, ...) {
  if (why && n) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
  }
  return code;
}

/* Read the pid in a lock file held by someone else; it may be written a moment late. */
static long read_lock_pid(int fd) {
  for (int tries = 0; tries < 50; tries++) {
    char buf[32] = {0};
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n > 0) {
      long pid = strtol(buf, NULL, 10);
      if (pid > 0) return pid;
    }
    usleep(20000);
  }
  return 0;
}

/* Take PATH.lock: RPC_ERUNNING when held. The flock must be on the file that is at the
 * path now: a daemon exiting unlinks its lock file, so a lock taken on an unlinked file
 * would protect nothing — retry then. */
static int take_lock(rpc_server *srv, long *holder_pid, char *why, size_t why_len) {
  for (int attempt = 0; attempt < RPC_LOCK_RETRIES; attempt++) {
    int fd = open(srv->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
      return why_fail(why, why_len, RPC_ESOCKET, "cannot open lock file %s: %s", srv->lock_path, strerror(errno));
    struct stat st, st2;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != getuid()) {
      close(fd);
      return why_fail(why, why_len, RPC_ESOCKET, "lock file %s is not a regular file owned by you", srv->lock_path);
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int e = errno;
      if (e == EWOULDBLOCK) {
        if (holder_pid) *holder_pid = read_lock_pid(fd);
        close(fd);
        return RPC_ERUNNING;
      }
      close(fd);
      return why_fail(why, why_len, RPC_ESOCKET, "cannot lock %s: %s", srv->lock_path, strerror(e));
    }
    if (stat(srv->lock_path, &st2) != 0 || st2.st_ino != st.st_ino || st2.st_dev != st.st_dev) {
      close(fd);
      continue;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
      close(fd);
      return why_fail(why, why_len, RPC_ESOCKET, "cannot write lock file %s: %s", srv->lock_path, strerror(errno));
    }
    srv->lock_fd = fd;
    return QC_OK;
  }
  return why_fail(why, why_len, RPC_ESOCKET, "lock file %s keeps being replaced", srv->lock_path);
}

int rpc_server_listen(rpc_server *srv, const char *socket_path, long *holder_pid, char *why, size_t why_len) {
  int rc;
  char *dircopy = NULL;
  if (holder_pid) *holder_pid = 0;
  if (srv->listening || srv->socket_path)
    return why_fail(why, why_len, QC_EINVAL, "already listening");
  if (strlen(socket_path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
    return why_fail(why, why_len, RPC_ESOCKET, "socket path is longer than %zu bytes: %s",
                    sizeof(((struct sockaddr_un *)0)->sun_path) - 1, socket_path);
  dircopy = strdup(socket_path);
  if (!dircopy) return QC_ENOMEM;
  const char *dir = dirname(dircopy);
  rc = qc_mkdir_p(dir, 0700);
  if (rc == QC_EINVAL) {
    rc = why_fail(why, why_len, RPC_ESOCKET, "directory %s is not a directory owned by you", dir);
    goto out;
  }
  if (rc) {
    rc = why_fail(why, why_len, RPC_ESOCKET, "cannot create directory %s: %s", dir, qc_strerror(rc));
    goto out;
  }
  srv->lock_path = qc_asprintf("%s.lock", socket_path);
  if (!srv->lock_path) {
    rc = QC_ENOMEM;
    goto out;
  }
  if ((rc = take_lock(srv, holder_pid, why, why_len))) goto out;

  /* We hold the lock, so any socket at the path is a dead daemon's. */
  struct stat st;
  if (lstat(socket_path, &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      rc = why_fail(why, why_len, RPC_ESOCKET, "%s exists and is not a socket; not replacing it", socket_path);
      goto unlock;
    }
    qc_info("replacing stale socket %s", socket_path);
    if (unlink(socket_path) != 0) {
      rc = why_fail(why, why_len, RPC_ESOCKET, "cannot remove stale socket %s: %s", socket_path, strerror(errno));
      goto unlock;
    }
  }
  uv_pipe_init(srv->loop, &srv->listener, 0);
  srv->listener.data = srv;
  srv->listening = 1;
  srv->handles_open++;
  mode_t old = umask(0177); /* the socket is born 0600: no window where others may connect */
  int e = uv_pipe_bind(&srv->listener, socket_path);
  umask(old);
  if (e == 0) e = uv_listen((uv_stream_t *)&srv->listener, RPC_LISTEN_BACKLOG, on_connection);
  if (e != 0) {
    close_listener(srv);
    unlink(socket_path);
    rc = why_fail(why, why_len, RPC_ESOCKET, "cannot listen on %s: %s", socket_path, uv_strerror(e));
    goto unlock;
  }
  chmod(socket_path, 0600);
  srv->listener.data = srv;
  srv->socket_path = strdup(socket_path);
  rc = srv->socket_path ? QC_OK : QC_ENOMEM;
  goto out;
unlock:
  unlink(srv->lock_path);
  close(srv->lock_fd);
  srv->lock_fd = -1;
out:
  free(dircopy);
  return rc;
}

/* ---- stdio and adopted fds --------------------------------------------------------- */

static int init_stream(rpc_server *srv, uv_handle_t *h, int fd, int readable, srv_io *io) {
  uv_handle_type t = uv_guess_handle(fd);
  int rc;
  if (t == UV_TTY) {
    rc = uv_tty_init(srv->loop, (uv_tty_t *)h, fd, readable);
  } else if (t == UV_NAMED_PIPE || t == UV_TCP || t == UV_UNKNOWN_HANDLE) {
    rc = uv_pipe_init(srv->loop, (uv_pipe_t *)h, 0);
    if (rc == 0) {
      rc = uv_pipe_open((uv_pipe_t *)h, fd);
      if (rc != 0) uv_close(h, NULL);
    }
  } else {
    return RPC_ESOCKET; /* regular files cannot be polled */
  }
  h->data = io;
  return rc == 0 ? QC_OK : RPC_ESOCKET;
}

static void on_stdio_abort_closed(uv_handle_t *h) { (void)h; }

int rpc_server_add_stdio(rpc_server *srv) {
  if (srv->stdio) return QC_EINVAL;
  srv_io *io = io_new(srv);
  if (!io) return QC_ENOMEM;
  io->split = 1;
  io->is_stdio = 1;
  int rc = init_stream(srv, &io->in.h, 0, 1, io);
  if (rc) {
    qc_error("--stdio: stdin must be a pipe, socket or terminal");
    free(io);
    return rc;
  }
  rc = init_stream(srv, &io->out.h, 1, 0, io);
  if (rc) {
    qc_error("--stdio: stdout must be a pipe, socket or terminal");
    uv_close(&io->in.h, on_stdio_abort_closed);
    uv_run(srv->loop, UV_RUN_NOWAIT);
    free(io);
    return rc;
  }
  srv->stdio = io;
  return io_start(io, RPC_FRAMING_DETECT) ? QC_OK : QC_ENOMEM;
}

rpc_conn *rpc_server_adopt_fd(rpc_server *srv, int fd, rpc_framing framing) {
  srv_io *io = io_new(srv);
  if (!io) return NULL;
  if (uv_pipe_init(srv->loop, &io->in.pipe, 0) != 0) {
    free(io);
    return NULL;
  }
  io->in.h.data = io;
  if (uv_pipe_open(&io->in.pipe, fd) != 0) {
    uv_close(&io->in.h, on_refused_closed);
    return NULL;
  }
  return io_start(io, framing);
}

/* ---- accessors --------------------------------------------------------------------- */

int rpc_register(rpc_server *srv, const char *method, rpc_request_fn fn, void *user) {
  int rc = rpc_methods_add_request(srv->methods, method, fn, user);
  if (rc) qc_error("cannot register method %s: %s", method, rpc_strerror(rc));
  return rc;
}

int rpc_register_notification(rpc_server *srv, const char *method, rpc_notify_fn fn, void *user) {
  int rc = rpc_methods_add_notification(srv->methods, method, fn, user);
  if (rc) qc_error("cannot register notification %s: %s", method, rpc_strerror(rc));
  return rc;
}

rpc_methods *rpc_server_methods(rpc_server *srv) { return srv->methods; }
uv_loop_t *rpc_server_loop(rpc_server *srv) { return srv->loop; }
int rpc_server_connection_count(const rpc_server *srv) { return srv->nconns; }
uint64_t rpc_server_uptime_ms(const rpc_server *srv) { return qc_now_ms() - srv->started_ms; }
const char *rpc_server_socket_path(const rpc_server *srv) { return srv->socket_path; }
rpc_server *rpc_conn_server(const rpc_conn *c) { return rpc_conn_owner(c); }
json_t *rpc_server_agent_capabilities(rpc_server *srv) { return srv->agent_caps; }

rpc_conn *rpc_server_find_conn(rpc_server *srv, uint64_t conn_id) {
  for (srv_io *io = srv->ios; io; io = io->next)
    if (io->conn && rpc_conn_id(io->conn) == conn_id) return io->conn;
  return NULL;
}

void rpc_server_set_model_hook(rpc_server *srv, rpc_model_info_fn fn, void *user) {
  srv->model_fn = fn;
  srv->model_user = user;
}

json_t *rpc_server_model_info(rpc_server *srv) {
  return srv->model_fn ? srv->model_fn(srv, srv->model_user) : NULL;
}
