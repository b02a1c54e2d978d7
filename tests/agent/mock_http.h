/* mock_http.h — a tiny HTTP/1.1 server on a thread, on 127.0.0.1, serving canned
 * responses in order (tests of the remote backend). Each accepted request is recorded;
 * each response is sent as given (status line, headers, body pieces with delays), then the
 * connection is closed. Not a general server: one request per connection. */
#ifndef QC_TESTS_MOCK_HTTP_H
#define QC_TESTS_MOCK_HTTP_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

#include "tests/test.h"

enum { MOCK_MAX = 16, MOCK_PIECES = 16 };

typedef struct mock_resp {
  int status;                 /* 0: close the connection without answering */
  const char *content_type;   /* default text/event-stream */
  const char *extra_headers;  /* "Name: value\r\n..." */
  const char *pieces[MOCK_PIECES];
  int delay_ms;               /* before each piece */
  int hang_ms;                /* after the headers, before the body (read-timeout tests) */
} mock_resp;

typedef struct mock_req {
  char path[256];
  char method[8];
  char auth[256];
  char *body;
} mock_req;

typedef struct mock_server {
  int fd, port;
  pthread_t th;
  mock_resp resp[MOCK_MAX];
  int n_resp;
  mock_req req[MOCK_MAX];
  int n_req;
  volatile int stop;
} mock_server;

static void mock_sleep(int ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void mock_send(int c, const char *s) {
  size_t n = strlen(s);
  while (n) {
    ssize_t k = send(c, s, n, MSG_NOSIGNAL);
    if (k <= 0) return;
    s += k;
    n -= (size_t)k;
  }
}

static void *mock_main(void *arg) {
  mock_server *m = arg;
  while (!m->stop) {
    struct pollfd pf = {m->fd, POLLIN, 0};
    if (poll(&pf, 1, 50) <= 0) continue;
    int c = accept(m->fd, NULL, NULL);
    if (c < 0) continue;
    /* read headers and Content-Length body */
    char *buf = calloc(1, 1 << 20);
    size_t n = 0, need = 0;
    char *hdr_end = NULL;
    while (n < (1u << 20) - 1) {
      ssize_t k = recv(c, buf + n, (1u << 20) - 1 - n, 0);
      if (k <= 0) break;
      n += (size_t)k;
      buf[n] = '\0';
      if (!hdr_end && (hdr_end = strstr(buf, "\r\n\r\n"))) {
        char *cl = strcasestr(buf, "Content-Length:");
        need = (size_t)(hdr_end + 4 - buf) + (cl && cl < hdr_end ? (size_t)atol(cl + 15) : 0);
      }
      if (hdr_end && n >= need) break;
    }
    int idx = m->n_req;
    if (idx < MOCK_MAX && hdr_end) {
      mock_req *r = &m->req[idx];
      sscanf(buf, "%7s %255s", r->method, r->path);
      char *a = strcasestr(buf, "Authorization:");
      if (a && a < hdr_end) sscanf(a + 14, " %255[^\r\n]", r->auth);
      r->body = strdup(hdr_end + 4);
      m->n_req++;
    }
    free(buf);
    mock_resp *rs = idx < m->n_resp ? &m->resp[idx] : NULL;
    if (rs && rs->status) {
      char head[1024];
      snprintf(head, sizeof head, "HTTP/1.1 %d X\r\nContent-Type: %s\r\nConnection: close\r\n%s\r\n", rs->status,
               rs->content_type ? rs->content_type : "text/event-stream", rs->extra_headers ? rs->extra_headers : "");
      mock_send(c, head);
      if (rs->hang_ms) {
        for (int t = 0; t < rs->hang_ms && !m->stop; t += 10) mock_sleep(10);
      }
      for (int i = 0; i < MOCK_PIECES && rs->pieces[i] && !m->stop; i++) {
        if (rs->delay_ms) mock_sleep(rs->delay_ms);
        mock_send(c, rs->pieces[i]);
      }
    }
    close(c);
  }
  return NULL;
}

static void mock_start(mock_server *m) {
  m->fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(m->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(m->fd, (struct sockaddr *)&a, sizeof a) || listen(m->fd, 16)) QCT_FAIL("mock server: bind/listen");
  socklen_t al = sizeof a;
  getsockname(m->fd, (struct sockaddr *)&a, &al);
  m->port = ntohs(a.sin_port);
  pthread_create(&m->th, NULL, mock_main, m);
}

static void mock_stop(mock_server *m) {
  m->stop = 1;
  pthread_join(m->th, NULL);
  close(m->fd);
  for (int i = 0; i < m->n_req; i++) free(m->req[i].body);
}

/* A port nothing listens on. */
__attribute__((unused)) static int closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bind(fd, (struct sockaddr *)&a, sizeof a);
  socklen_t al = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &al);
  close(fd);
  return ntohs(a.sin_port);
}

#endif
