/*
 * sd_notify(3) without libsystemd, as systemd documents for standalone
 * implementations: one datagram to the AF_UNIX socket named by
 * $NOTIFY_SOCKET, a filesystem path or an abstract name starting with '@'.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon.h"

int tks_notify(const char *state) {
  const char *path = getenv("NOTIFY_SOCKET");
  if (!path || !*path) return 0;
  size_t len = strlen(path);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if ((path[0] != '/' && path[0] != '@') || len >= sizeof sa.sun_path) return -EINVAL;
  memcpy(sa.sun_path, path, len);
  if (path[0] == '@') sa.sun_path[0] = '\0';
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
  ssize_t n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
  int err = n < 0 ? -errno : 0;
  close(fd);
  return err;
}
