/*
 * The CLI's sockets: a client for the control socket (one request line out,
 * lines up to an empty line back, with a deadline) and the ingest TCP
 * connection (connect with a timeout, blocking writes that give up when the
 * daemon stops reading, and a clean close that waits for the daemon to have
 * read everything).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"

static int remaining_ms(uint64_t deadline) {
  uint64_t now = tks_mono_ns();
  if (now >= deadline) return 0;
  uint64_t ms = (deadline - now + 999999) / 1000000;
  return ms > 0x7fffffff ? 0x7fffffff : (int)ms;
}

int cli_ctl_try_open(struct cli_ctl *ctl, const char *path, int timeout_ms) {
  memset(ctl, 0, sizeof *ctl);
  ctl->fd = -1;
  ctl->timeout_ms = timeout_ms;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path || sizeof sa.sun_path > sizeof ctl->path)
    return -ENAMETOOLONG;
  size_t pl = strlen(path) + 1;
  memcpy(ctl->path, path, pl);
  memcpy(sa.sun_path, path, pl);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  /* A Unix socket connect does not wait for the accept, unless the
   * backlog is full: bound that with the send timeout. */
  struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  ctl->fd = fd;
  return 0;
}

int cli_ctl_open(struct cli_ctl *ctl, const char *path, int timeout_ms) {
  int r = cli_ctl_try_open(ctl, path, timeout_ms);
  if (r == 0) return 0;
  /* Only a missing or dead socket means the daemon is not running. */
  if (r == -ENAMETOOLONG)
    cli_err("control socket path too long (%zu bytes, at most %zu): %s", strlen(path),
            sizeof((struct sockaddr_un *)0)->sun_path - 1, path);
  else if (r == -EACCES || r == -EPERM)
    cli_err("permission denied on %s (run as the daemon's user or see control.socket_mode)", path);
  else if (r == -ENOENT || r == -ECONNREFUSED)
    cli_err("cannot connect to %s: %s (is tickslabd running? use --socket)", path, strerror(-r));
  else
    cli_err("cannot connect to %s: %s", path, strerror(-r));
  return -1;
}

int cli_ctl_ask(struct cli_ctl *ctl, const char *request, struct tks_buf *resp) {
  if (cli_ctl_request(ctl, request, resp)) return -1;
  char msg[1024];
  if (cli_response_error(resp->data ? resp->data : "", msg, sizeof msg)) {
    cli_err("%s", msg);
    return -1;
  }
  return 0;
}

void cli_ctl_close(struct cli_ctl *ctl) {
  if (!ctl) return;
  if (ctl->fd >= 0) close(ctl->fd);
  ctl->fd = -1;
  tks_buf_finish(&ctl->in);
}

/* Offset of the end of the first complete response in b, or -1. */
static long response_end(const struct tks_buf *b) {
  if (b->len > 0 && b->data[0] == '\n') return 0; /* no lines at all */
  const char *p = b->len >= 2 ? memmem(b->data, b->len, "\n\n", 2) : NULL;
  return p ? (long)(p - b->data) + 1 : -1;
}

int cli_ctl_request(struct cli_ctl *ctl, const char *request, struct tks_buf *resp) {
  resp->len = 0;
  if (resp->data) resp->data[0] = '\0';
  size_t rl = strlen(request);
  char *line = malloc(rl + 1);
  if (!line) {
    cli_err("out of memory");
    return -1;
  }
  memcpy(line, request, rl);
  line[rl] = '\n';
  int r = cli_write_all(ctl->fd, line, rl + 1);
  free(line);
  if (r) {
    cli_err("write to %s: %s", ctl->path, r == -EAGAIN ? "timed out" : strerror(-r));
    return -1;
  }
  uint64_t deadline = tks_mono_ns() + (uint64_t)ctl->timeout_ms * 1000000u;
  long end;
  while ((end = response_end(&ctl->in)) < 0) {
    struct pollfd pfd = {.fd = ctl->fd, .events = POLLIN};
    int ms = remaining_ms(deadline);
    int pr = ms > 0 ? poll(&pfd, 1, ms) : 0;
    if (pr < 0 && errno == EINTR) continue;
    if (pr < 0) {
      cli_err("poll: %s", strerror(errno));
      return -1;
    }
    if (pr == 0) {
      cli_err("no complete answer from %s to '%s' within %.1f s", ctl->path, request,
              ctl->timeout_ms / 1000.0);
      return -1;
    }
    if (tks_buf_reserve(&ctl->in, 65536)) {
      cli_err("out of memory");
      return -1;
    }
    ssize_t n = read(ctl->fd, ctl->in.data + ctl->in.len, ctl->in.cap - ctl->in.len - 1);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) {
      cli_err("read from %s: %s", ctl->path, strerror(errno));
      return -1;
    }
    if (n == 0) {
      cli_err("%s closed the connection before the end of the answer to '%s'", ctl->path,
              request);
      return -1;
    }
    ctl->in.len += (size_t)n;
    ctl->in.data[ctl->in.len] = '\0';
  }
  if (tks_buf_append(resp, ctl->in.data, (size_t)end)) {
    cli_err("out of memory");
    return -1;
  }
  tks_buf_consume(&ctl->in, (size_t)end + 1);
  return 0;
}

static size_t put_utf8(char *o, unsigned cp) {
  if (cp < 0x80) {
    o[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (char)(0xc0 | cp >> 6);
    o[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
  }
  o[0] = (char)(0xe0 | cp >> 12);
  o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
  o[2] = (char)(0x80 | (cp & 0x3f));
  return 3;
}

/* Unescapes the JSON string at p (just after its opening quote) into
 * msg[o..msglen), on one line.  Returns the new o; *end is where it stopped
 * (at the closing quote when the string fitted). */
static size_t json_string_into(const char *p, char *msg, size_t o, size_t msglen,
                               const char **end) {
  while (*p && *p != '"' && *p != '\n' && o + 4 < msglen) {
    if (*p != '\\') {
      msg[o++] = *p++;
      continue;
    }
    p++;
    char e = *p ? *p++ : '\0';
    switch (e) {
    case 'n': msg[o++] = ' '; break; /* keep the message on one line */
    case 't': msg[o++] = ' '; break;
    case 'r': break;
    case 'b': case 'f': break;
    case 'u': {
      unsigned cp = 0;
      int k = 0;
      for (; k < 4 && p[k]; k++) {
        char h = p[k];
        unsigned d = h >= '0' && h <= '9' ? (unsigned)(h - '0')
                     : h >= 'a' && h <= 'f' ? (unsigned)(h - 'a' + 10)
                     : h >= 'A' && h <= 'F' ? (unsigned)(h - 'A' + 10)
                                            : 16u;
        if (d == 16) break;
        cp = cp * 16 + d;
      }
      p += k;
      if (cp < 0x20 || (cp >= 0xd800 && cp < 0xe000)) cp = '?';
      o += put_utf8(msg + o, cp);
      break;
    }
    case '\0': break;
    default: msg[o++] = e; break; /* \" \\ \/ */
    }
  }
  *end = p;
  return o;
}

bool cli_response_error(const char *resp, char *msg, size_t msglen) {
  const char *p = resp;
  while (*p == ' ' || *p == '\t') p++;
  if (*p++ != '{') return false;
  while (*p == ' ' || *p == '\t') p++;
  if (strncmp(p, "\"error\"", 7) != 0) return false;
  p += 7;
  while (*p == ' ' || *p == '\t') p++;
  if (*p++ != ':') return false;
  while (*p == ' ' || *p == '\t') p++;
  if (msglen == 0) return true;
  size_t o = 0;
  if (*p != '"') {
    /* Not a string: show the raw value. */
    while (*p && *p != '\n' && *p != '}' && o + 1 < msglen) msg[o++] = *p++;
    msg[o] = '\0';
    return true;
  }
  o = json_string_into(p + 1, msg, o, msglen, &p);
  /* {"error":"loading","detail":"..."}: the detail follows the word. */
  if (*p == '"' && strncmp(p + 1, ",\"detail\":\"", 11) == 0 && o + 6 < msglen) {
    msg[o++] = ':';
    msg[o++] = ' ';
    o = json_string_into(p + 12, msg, o, msglen, &p);
  }
  msg[o] = '\0';
  return true;
}

/* The value text of key in `stats text` output, or NULL. */
static const char *stats_find(const char *text, const char *key, size_t *vlen) {
  size_t kl = strlen(key);
  const char *line = text;
  while (line && *line) {
    const char *nl = strchr(line, '\n');
    size_t ll = nl ? (size_t)(nl - line) : strlen(line);
    if (ll > kl && memcmp(line, key, kl) == 0 && (line[kl] == ' ' || line[kl] == '\t')) {
      const char *v = line + kl;
      while (*v == ' ' || *v == '\t') v++;
      *vlen = (size_t)(line + ll - v);
      return v;
    }
    line = nl ? nl + 1 : NULL;
  }
  return NULL;
}

int cli_stats_str(const char *text, const char *key, char *out, size_t n) {
  size_t vl;
  const char *v = stats_find(text, key, &vl);
  if (!v) return -ENOENT;
  while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\r')) vl--;
  if (vl == 0 || vl >= n) return -EINVAL;
  memcpy(out, v, vl);
  out[vl] = '\0';
  return 0;
}

int cli_stats_value(const char *text, const char *key, double *out) {
  size_t vl;
  const char *v = stats_find(text, key, &vl);
  if (!v) return -ENOENT;
  char num[64];
  if (vl == 0 || vl >= sizeof num) return -EINVAL;
  memcpy(num, v, vl);
  num[vl] = '\0';
  char *end;
  double d = strtod(num, &end);
  while (*end == ' ' || *end == '\r') end++;
  if (end == num || *end) return -EINVAL;
  *out = d;
  return 0;
}

int cli_stats_u64(const char *text, const char *key, uint64_t *out) {
  size_t vl;
  const char *v = stats_find(text, key, &vl);
  if (!v) return -ENOENT;
  char num[32];
  while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\r')) vl--;
  if (vl == 0 || vl >= sizeof num) return -EINVAL;
  memcpy(num, v, vl);
  num[vl] = '\0';
  return tks_parse_u64(num, out);
}

int cli_tcp_connect(const char *host, const char *port, const char *name, int timeout_ms) {
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
  struct addrinfo *res = NULL;
  int gr = getaddrinfo(host, port, &hints, &res);
  if (gr) {
    cli_err("cannot resolve %s: %s", name, gai_strerror(gr));
    return -1;
  }
  int err = 0, fd = -1;
  for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
    int s = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (s < 0) {
      err = errno;
      continue;
    }
    if (connect(s, ai->ai_addr, ai->ai_addrlen) < 0) {
      if (errno != EINPROGRESS) {
        err = errno;
        close(s);
        continue;
      }
      struct pollfd pfd = {.fd = s, .events = POLLOUT};
      int pr;
      while ((pr = poll(&pfd, 1, timeout_ms)) < 0 && errno == EINTR) {
      }
      socklen_t sl = sizeof err;
      if (pr == 0) {
        err = ETIMEDOUT;
      } else if (pr < 0 || getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &sl) < 0) {
        err = errno;
      }
      if (err) {
        close(s);
        continue;
      }
    }
    fd = s;
  }
  freeaddrinfo(res);
  if (fd < 0) {
    cli_err("cannot connect to %s: %s (is tickslabd running? use --connect)", name,
            strerror(err));
    return -1;
  }
  int fl = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

int cli_write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  uint64_t start = 0;
  while (n > 0) {
    ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
    c += w;
    n -= (size_t)w;
    if (n == 0) break;
    /* A partial write means send waited out the socket's send timeout (or
     * a signal came).  A peer that takes a trickle each time is stalled
     * too: give up once the whole write has taken longer than the timeout. */
    struct timeval tv;
    socklen_t tl = sizeof tv;
    if (!start) {
      start = tks_mono_ns();
    } else if (getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &tl) == 0 &&
               (tv.tv_sec || tv.tv_usec) &&
               tks_mono_ns() - start > (uint64_t)tv.tv_sec * 1000000000u +
                                           (uint64_t)tv.tv_usec * 1000u) {
      return -EAGAIN;
    }
  }
  return 0;
}

void cli_finish_stream(int fd, int timeout_ms) {
  if (fd < 0) return;
  if (shutdown(fd, SHUT_WR) == 0) {
    /* The daemon closes its side once it has read our EOF: after that,
     * every byte we wrote has been read. */
    uint64_t deadline = tks_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    char buf[4096];
    for (;;) {
      struct pollfd pfd = {.fd = fd, .events = POLLIN};
      int ms = remaining_ms(deadline);
      if (ms == 0) break;
      int pr = poll(&pfd, 1, ms);
      if (pr < 0 && errno == EINTR) continue;
      if (pr <= 0) break;
      ssize_t r = read(fd, buf, sizeof buf);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
    }
  }
  close(fd);
}
