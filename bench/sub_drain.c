/*
 * N subscribers to "*" from now on a tickslabd subscription port (loopback):
 * connects them, writes the subscribe request, then reads and discards what
 * comes until SIGTERM/SIGINT or every connection closed, and prints the
 * bytes each got and whether the daemon ended one (EOF before the signal).
 * The daemon's own counts (subscribe.sent_ticks, closed_slow) say whether
 * they kept up; this only drains, as fast as recv goes.
 *
 *   sub_drain PORT N
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_signal(int s) {
  (void)s;
  stop = 1;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: sub_drain PORT N\n");
    return 2;
  }
  int port = atoi(argv[1]), n = atoi(argv[2]);
  if (port <= 0 || n <= 0 || n > 1000) return 2;
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  struct pollfd *p = calloc((size_t)n, sizeof *p);
  unsigned long long *bytes = calloc((size_t)n, sizeof *bytes);
  static const char req[] = "\x82\xa9subscribe\xa1*\xa4"
                            "from\xa3now";
  for (int i = 0; i < n; i++) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    p[i].fd = socket(AF_INET, SOCK_STREAM, 0);
    if (p[i].fd < 0 || connect(p[i].fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        send(p[i].fd, req, sizeof req - 1, 0) != (ssize_t)(sizeof req - 1)) {
      perror("sub_drain: connect");
      return 1;
    }
    p[i].events = POLLIN;
  }
  fprintf(stderr, "sub_drain: %d subscribers\n", n);
  static char buf[1 << 18];
  int open = n;
  while (!stop && open > 0) {
    if (poll(p, (nfds_t)n, 200) < 0 && errno != EINTR) break;
    for (int i = 0; i < n; i++) {
      if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t r = recv(p[i].fd, buf, sizeof buf, MSG_DONTWAIT);
      if (r > 0) {
        bytes[i] += (unsigned long long)r;
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        close(p[i].fd);
        p[i].fd = -1;
        open--;
      }
    }
  }
  unsigned long long min = ~0ull, max = 0;
  for (int i = 0; i < n; i++) {
    if (bytes[i] < min) min = bytes[i];
    if (bytes[i] > max) max = bytes[i];
  }
  printf("%d subscribers, %d closed by the daemon, bytes each %llu..%llu\n", n, n - open - 0, min,
         max);
  return 0;
}
