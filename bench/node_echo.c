/*
 * node_echo.c -- the floor under bench/node_goc.js: what one awaited
 * socket round trip costs Node itself, with no database and no nodup.
 *
 *   node_echo serve SOCKET        echo every byte back, a process per client
 *   node_echo ping SOCKET SECONDS send 4 bytes, wait in poll(2), read them
 *                                 back, for SECONDS after a 0.3 s warm-up;
 *                                 prints round trips per second
 *
 * node_goc.js runs the same ping-pong from Node (net.Socket, each round
 * trip awaited) against the same server: the two rates' ratio is the
 * best a binding's awaited call can reach against C where a call is one
 * round trip, whatever the binding does.
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int address(struct sockaddr_un *a, const char *path) {
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  if (strlen(path) >= sizeof a->sun_path) return -1;
  strcpy(a->sun_path, path);
  return 0;
}

static int serve(const char *path) {
  struct sockaddr_un a;
  int l = socket(AF_UNIX, SOCK_STREAM, 0);
  if (l < 0 || address(&a, path) != 0) return 1;
  unlink(path);
  if (bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 4) != 0) {
    perror("node_echo: bind");
    return 1;
  }
  signal(SIGCHLD, SIG_IGN);   /* children reap themselves */
  for (;;) {
    char b[4096];
    ssize_t n;
    int c = accept(l, NULL, NULL);
    if (c < 0) continue;
    if (fork() == 0) {
      /* A client of its own: one that has not closed yet (Node closes
       * its socket from its event loop, later) never holds up the next. */
      close(l);
      while ((n = recv(c, b, sizeof b, 0)) > 0)
        if (send(c, b, (size_t)n, 0) != n) break;
      _exit(0);
    }
    close(c);
  }
}

static int ping(const char *path, double seconds) {
  struct sockaddr_un a;
  char b[64] = "ping";
  long n = 0;
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  if (s < 0 || address(&a, path) != 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
    perror("node_echo: connect");
    return 1;
  }
  double start = now_seconds(), from = start + 0.3, until = from + seconds, t;
  while ((t = now_seconds()) < until) {
    struct pollfd p = {s, POLLIN, 0};
    if (send(s, b, 4, 0) != 4 || poll(&p, 1, -1) != 1 || recv(s, b, sizeof b, 0) != 4) {
      perror("node_echo: ping");
      return 1;
    }
    if (t >= from) n++;
  }
  printf("%.0f\n", (double)n / seconds);
  close(s);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "serve")) return serve(argv[2]);
  if (argc == 4 && !strcmp(argv[1], "ping")) return ping(argv[2], atof(argv[3]));
  fprintf(stderr, "usage: node_echo serve SOCKET | node_echo ping SOCKET SECONDS\n");
  return 2;
}
