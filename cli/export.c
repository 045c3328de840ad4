/*
 * `tickslab export SYMBOL|'*' FROM TO`: the ticks of a range in bulk, as
 * msgpack (the form the ingest port takes: the output can be fed back),
 * CSV or JSON lines, from the control request `export`.  Its answer is
 * framed (README "Bulk export"): a JSON line, then chunks of a 4-byte
 * big-endian length and that many bytes, a zero-length chunk, a JSON
 * trailer line and the empty line; the chunks' bytes go to the output as
 * they come.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char export_help[] =
    "Usage: tickslab export SYMBOL|'*' FROM TO [--format msgpack|csv|jsonl]\n"
    "                       [--ts ns|iso|string] [-o FILE]\n"
    "\n"
    "Writes every tick of SYMBOL ('*': every symbol, one after the other, in\n"
    "the order they were first seen, then those only the day archive has) with\n"
    "FROM <= ts < TO, each symbol in ts order, from memory and the archive, in\n"
    "bulk (request 'export').  FROM and TO as for range: ns since the epoch or\n"
    "ISO-8601 (2026-11-25T14:30:00Z), or a date.\n"
    "\n"
    "  --format F   msgpack (the default: one map a tick, as the ingest port\n"
    "               takes it, so the output can be sent to a daemon again), csv\n"
    "               (a header of the schema's fields; fields the schema does not\n"
    "               declare are left out) or jsonl (one JSON object a line, as\n"
    "               range prints)\n"
    "  --ts F       csv and jsonl: the timestamp as ns (the default), iso or string\n"
    "  -o FILE      write to FILE instead of stdout\n"
    "\n"
    "Prints 'exported N ticks (B bytes)' on stderr at the end.  Exit status 1\n"
    "on an error answer (printed), 2 on a usage error.\n";

struct reader {
  int fd;
  int timeout_ms;
  const char *path;
  char *buf;
  size_t len, cap, off;
};

/* More bytes into r->buf.  0, or -1 (printed). */
static int fill(struct reader *r) {
  if (r->off > 0 && r->off == r->len) r->off = r->len = 0;
  if (r->len == r->cap) {
    if (r->off > 0) {
      memmove(r->buf, r->buf + r->off, r->len - r->off);
      r->len -= r->off;
      r->off = 0;
    } else {
      size_t cap = r->cap ? r->cap * 2 : 1 << 20;
      char *b = realloc(r->buf, cap);
      if (!b) {
        cli_err("out of memory");
        return -1;
      }
      r->buf = b;
      r->cap = cap;
    }
  }
  for (;;) {
    struct pollfd p = {.fd = r->fd, .events = POLLIN};
    int pr = poll(&p, 1, r->timeout_ms);
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) {
      cli_err("no data from %s within %.1f s", r->path, r->timeout_ms / 1000.0);
      return -1;
    }
    ssize_t n = read(r->fd, r->buf + r->len, r->cap - r->len);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) {
      cli_err("read from %s: %s", r->path, strerror(errno));
      return -1;
    }
    if (n == 0) {
      cli_err("%s closed the connection in the middle of the export", r->path);
      return -1;
    }
    r->len += (size_t)n;
    return 0;
  }
}

/* The next line (NUL-terminated in place, without its '\n'). */
static char *next_line(struct reader *r) {
  for (;;) {
    char *nl = r->len > r->off ? memchr(r->buf + r->off, '\n', r->len - r->off) : NULL;
    if (nl) {
      *nl = '\0';
      char *line = r->buf + r->off;
      r->off = (size_t)(nl - r->buf) + 1;
      return line;
    }
    if (fill(r)) return NULL;
  }
}

static int write_all_fd(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -errno;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int cli_cmd_export(struct cli *c, int argc, char **argv) {
  const char *pos[3];
  unsigned npos = 0;
  const char *format = NULL, *ts = NULL, *file = NULL;
  for (int i = 1; i < argc;) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(export_help, stdout);
      return CLI_OK;
    }
    int g = cli_global_opt(c, argc, argv, &i);
    if (g < 0) return CLI_USAGE;
    if (g) continue;
    int o;
    if ((o = cli_opt_value(argc, argv, &i, "--format", &format)) ||
        (o = cli_opt_value(argc, argv, &i, "--ts", &ts)) ||
        (o = cli_opt_value(argc, argv, &i, "-o", &file))) {
      if (o < 0) return CLI_USAGE;
      continue;
    }
    if (argv[i][0] == '-' && argv[i][1] && !(argv[i][1] >= '0' && argv[i][1] <= '9')) {
      cli_err("export: unknown option '%s' (see tickslab export --help)", argv[i]);
      return CLI_USAGE;
    }
    if (npos == 3) {
      cli_err("export: too many arguments (usage: tickslab export SYMBOL|'*' FROM TO)");
      return CLI_USAGE;
    }
    pos[npos++] = argv[i++];
  }
  if (npos < 3) {
    cli_err("export: want SYMBOL|'*' FROM TO (see tickslab export --help)");
    return CLI_USAGE;
  }
  if (format && strcmp(format, "msgpack") && strcmp(format, "csv") && strcmp(format, "jsonl")) {
    cli_err("bad --format '%s' (want msgpack, csv or jsonl)", format);
    return CLI_USAGE;
  }
  if (ts && strcmp(ts, "ns") && strcmp(ts, "iso") && strcmp(ts, "string")) {
    cli_err("bad --ts '%s' (want ns, iso or string)", ts);
    return CLI_USAGE;
  }
  for (unsigned i = 0; i < 3; i++)
    if (strpbrk(pos[i], " \t\r\n")) {
      cli_err("export: '%s' holds white space", pos[i]);
      return CLI_USAGE;
    }
  const char *path;
  if (cli_control_socket(c, &path)) return CLI_FAIL;
  struct cli_ctl ctl;
  if (cli_ctl_open(&ctl, path, c->timeout_ms)) return CLI_FAIL;
  char req[1024];
  snprintf(req, sizeof req, "export %s %s %s format=%s%s%s\n", pos[0], pos[1], pos[2],
           format ? format : "msgpack", ts ? " ts=" : "", ts ? ts : "");
  int out = STDOUT_FILENO;
  if (file && (out = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
    cli_err("cannot write %s: %s", file, strerror(errno));
    cli_ctl_close(&ctl);
    return CLI_FAIL;
  }
  int rc = CLI_FAIL;
  struct reader r = {.fd = ctl.fd, .timeout_ms = c->timeout_ms, .path = path};
  int w = cli_write_all(ctl.fd, req, strlen(req));
  if (w) {
    cli_err("write to %s: %s", path, strerror(-w));
    goto done;
  }
  char *line = next_line(&r);
  if (!line) goto done;
  char msg[600];
  if (cli_response_error(line, msg, sizeof msg)) {
    cli_err("%s", msg);
    goto done;
  }
  if (!strstr(line, "\"framing\":\"chunks\"")) {
    cli_err("unexpected answer from %s: %.200s", path, line);
    goto done;
  }
  for (;;) {
    while (r.len - r.off < 4)
      if (fill(&r)) goto done;
    const unsigned char *h = (const unsigned char *)r.buf + r.off;
    size_t len = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
    r.off += 4;
    if (len == 0) break;
    while (len > 0) {
      if (r.off == r.len && fill(&r)) goto done;
      size_t take = r.len - r.off < len ? r.len - r.off : len;
      int e = write_all_fd(out, r.buf + r.off, take);
      if (e) {
        cli_err("writing the output: %s", strerror(-e));
        goto done;
      }
      r.off += take;
      len -= take;
    }
  }
  line = next_line(&r);
  if (!line) goto done;
  if (cli_response_error(line, msg, sizeof msg)) {
    cli_err("the export was cut short: %s", msg);
    goto done;
  }
  unsigned long long rows = 0, bytes = 0;
  const char *p = strstr(line, "\"rows\":"), *q = strstr(line, "\"bytes\":");
  if (p) rows = strtoull(p + 7, NULL, 10);
  if (q) bytes = strtoull(q + 8, NULL, 10);
  fprintf(stderr, "exported %llu ticks (%llu bytes)\n", rows, bytes);
  rc = CLI_OK;
done:
  free(r.buf);
  if (file && out >= 0) {
    if (close(out) != 0 && rc == CLI_OK) {
      cli_err("writing %s: %s", file, strerror(errno));
      rc = CLI_FAIL;
    }
  }
  cli_ctl_close(&ctl);
  return rc;
}
