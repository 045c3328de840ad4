/*
 * `tickslab send`: streams ticks from a CSV file or stdin to the ingest
 * port, one msgpack map (or schema-ordered array) per line, written in
 * 64 KiB batches.  It streams: a bad line stops it there, after the ticks
 * before it have been sent and the connection closed cleanly.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "csv.h"

#define SEND_BATCH_BYTES (64 * 1024)

static const char send_help[] =
    "Usage: tickslab send [FILE | -] [--array]\n"
    "\n"
    "Streams ticks from FILE (default: standard input) to the ingest address\n"
    "(--connect, else the config's ingest.listen, else 127.0.0.1:7070).\n"
    "\n"
    "Each line: ticker,ts,price,volume,flags\n"
    "  ticker   required\n"
    "  ts       empty (the daemon stamps the receive time), integer ns since the\n"
    "           epoch, ISO-8601 with a zone: 2026-11-25T10:00:00.123456789Z,\n"
    "           or a date alone: 2026-11-25 (midnight UTC)\n"
    "  price    a number;  volume: an integer\n"
    "  flags    optional (empty or absent: not sent)\n"
    "A first line beginning with 'ticker' is a header and skipped; blank lines\n"
    "are skipped; CRLF line ends and \"quoted\" fields are fine.\n"
    "\n"
    "  --array  send the compact form: an array in the schema's slot order\n"
    "           (from --config or the default config; else ts,ticker,price,\n"
    "           volume,flags), nil for absent values\n"
    "\n"
    "Prints 'sent N ticks (B bytes) to HOST:PORT'.  A bad line stops the send:\n"
    "'tickslab: FILE:LINE: what is wrong' on stderr, the ticks before it are\n"
    "sent, the summary is printed, and the exit status is 1.\n";

struct sender {
  int fd;
  const char *dest;
  int timeout_ms;
  struct tks_buf buf;
  uint64_t buffered; /* ticks in buf */
  uint64_t ticks;    /* ticks written */
  uint64_t bytes;
};

static int flush(struct sender *s) {
  if (s->buf.len == 0) return 0;
  int r = cli_write_all(s->fd, s->buf.data, s->buf.len);
  if (r) {
    if (r == -EAGAIN)
      cli_err("write to %s: stalled for over %.1f s: the daemon is not reading (see --timeout)",
              s->dest, s->timeout_ms / 1000.0);
    else
      cli_err("write to %s: %s", s->dest, strerror(-r));
    return -1;
  }
  s->ticks += s->buffered;
  s->bytes += s->buf.len;
  s->buffered = 0;
  s->buf.len = 0;
  return 0;
}

int cli_cmd_send(struct cli *c, int argc, char **argv) {
  const char *file = NULL;
  bool array = false;
  for (int i = 1; i < argc;) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(send_help, stdout);
      return CLI_OK;
    }
    if (strcmp(a, "--array") == 0) {
      array = true;
      i++;
      continue;
    }
    int r = cli_global_opt(c, argc, argv, &i);
    if (r < 0) return CLI_USAGE;
    if (r > 0) continue;
    if (a[0] == '-' && a[1] != '\0') {
      cli_err("send: unknown option '%s' (see tickslab send --help)", a);
      return CLI_USAGE;
    }
    if (file) {
      cli_err("send: one input file at most (got '%s' and '%s')", file, a);
      return CLI_USAGE;
    }
    file = a;
    i++;
  }

  const struct tks_schema *schema = NULL;
  if (array && !(schema = cli_schema(c))) return CLI_FAIL;
  if (cli_ingest_address(c)) return CLI_FAIL;

  bool use_stdin = !file || strcmp(file, "-") == 0;
  const char *name = use_stdin ? "<stdin>" : file;
  FILE *in = use_stdin ? stdin : fopen(file, "r");
  if (!in) {
    cli_err("cannot open %s: %s", file, strerror(errno));
    return CLI_FAIL;
  }

  struct sender s = {.dest = c->ingest_name, .timeout_ms = c->timeout_ms};
  int rc = CLI_FAIL;
  char *line = NULL;
  size_t cap = 0;
  s.fd = cli_tcp_connect(c->ingest_host, c->ingest_port, c->ingest_name, c->timeout_ms);
  if (s.fd < 0) goto out;
  if (tks_buf_reserve(&s.buf, SEND_BATCH_BYTES + 4096)) {
    cli_err("out of memory");
    goto out;
  }

  unsigned long long lineno = 0;
  bool seen_line = false;
  ssize_t n;
  char err[256];
  bool failed = false;
  while ((n = getline(&line, &cap, in)) >= 0) {
    lineno++;
    size_t len = (size_t)n;
    if (len > 0 && line[len - 1] == '\n') line[--len] = '\0';
    if (cli_csv_is_blank(line, len)) continue;
    bool first = !seen_line;
    seen_line = true;
    if (first && cli_csv_is_header(line, len)) continue;
    struct cli_tick t;
    int r = cli_csv_parse_tick(line, len, &t, err, sizeof err);
    if (r == 0) {
      r = array ? cli_tick_encode_array(&s.buf, &t, schema, err, sizeof err)
                : cli_tick_encode_map(&s.buf, &t);
      if (r == -ENOMEM) snprintf(err, sizeof err, "out of memory");
    }
    if (r) {
      /* Send what came before, then stop at this line. */
      if (flush(&s) == 0) cli_err("%s:%llu: %s", name, lineno, err);
      failed = true;
      break;
    }
    s.buffered++;
    if (s.buf.len >= SEND_BATCH_BYTES && flush(&s)) {
      failed = true;
      break;
    }
  }
  if (!failed && ferror(in)) {
    cli_err("read %s: %s", name, strerror(errno));
    failed = true;
  }
  if (!failed && flush(&s)) failed = true;
  cli_finish_stream(s.fd, c->timeout_ms);
  s.fd = -1;
  printf("sent %llu ticks (%llu bytes) to %s\n", (unsigned long long)s.ticks,
         (unsigned long long)s.bytes, c->ingest_name);
  if (fflush(stdout) != 0) failed = true;
  rc = failed ? CLI_FAIL : CLI_OK;
out:
  if (s.fd >= 0) cli_finish_stream(s.fd, c->timeout_ms);
  free(line);
  tks_buf_finish(&s.buf);
  if (!use_stdin) fclose(in);
  return rc;
}
