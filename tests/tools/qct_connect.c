/* qct_connect.c — a probe for the sandbox tests: exits 0 only when it reached its target.
 *
 *   qct_connect tcp HOST PORT    connect a TCP socket
 *   qct_connect unix PATH        connect a unix socket
 *   qct_connect dns NAME         resolve a host name
 *
 * "If and only if the command exits 0 we consider the sandbox breached" (Codex's rule).
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc >= 4 && strcmp(argv[1], "tcp") == 0) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)atoi(argv[3]));
    if (fd < 0 || inet_pton(AF_INET, argv[2], &a.sin_addr) != 1) return 2;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { perror("connect"); return 1; }
    puts("CONNECTED");
    return 0;
  }
  if (argc >= 3 && strcmp(argv[1], "unix") == 0) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof a.sun_path, "%s", argv[2]);
    if (fd < 0) return 2;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { perror("connect"); return 1; }
    puts("CONNECTED");
    return 0;
  }
  if (argc >= 3 && strcmp(argv[1], "dns") == 0) {
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(argv[2], "80", NULL, &res);
    if (rc != 0) { fprintf(stderr, "getaddrinfo: %s\n", gai_strerror(rc)); return 1; }
    freeaddrinfo(res);
    puts("RESOLVED");
    return 0;
  }
  return 2;
}
