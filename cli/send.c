/*
 * `tickslab send`: streams ticks from a CSV file or stdin to the ingest
 * port, one msgpack map (or schema-ordered array) per line, written in
 * 64 KiB batches.  The header's columns are mapped to the schema's fields
 * (csv.c); the schema is --config's or the running daemon's (resolve.c).  It streams: a bad line stops it there, after the ticks
 * before it have been sent and the connection closed cleanly.  With
 * --acks (or --sync, --producer) it says hello first and reads the
 * daemon's acknowledgements between batches: rejected lines are reported
 * by their line number (seq mapped back through runs of lines), and --sync
 * waits until every accepted tick is durable.
 */
#include <errno.h>
#include <msgpack.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "csv.h"
#include "mpreq.h"

#define SEND_BATCH_BYTES (64 * 1024)

static const char send_help[] =
    "Usage: tickslab send [FILE | -] [--extra] [--array] [--acks] [--sync]\n"
    "                     [--producer NAME]\n"
    "\n"
    "Streams ticks from CSV in FILE (default: standard input) to the ingest address\n"
    "(--connect; else, with --socket and no --config, the one the daemon there\n"
    "listens on; else the config's ingest.listen, else 127.0.0.1:7070).\n"
    "\n"
    "The first line is a header naming the columns: the schema's field names,\n"
    "in any order (e.g. for MarketEvent ticker,ts,price,volume,flags; for the\n"
    "README's Trade bid,ask,symbol,timestamp).  The schema is --config FILE's,\n"
    "else the running daemon's (from its stats on the control socket), else\n"
    "the default config's or MarketEvent.  A line is a header when one of its\n"
    "cells names a field (ignoring case) and none is a number; a name the\n"
    "schema does not declare is an error naming it (names are case-sensitive),\n"
    "as is an empty or repeated name, or a required field without a column.\n"
    "Each cell by its field's type:\n"
    "  timestamp  empty (the daemon stamps the receive time), integer ns since\n"
    "             the epoch, ISO-8601 with a zone: 2026-11-25T10:00:00.123456789Z,\n"
    "             or a date alone: 2026-11-25 (midnight UTC)\n"
    "  i64, u32   an integer;  f64: a number;  bool: true, false, 1 or 0\n"
    "  symbol, string  the text\n"
    "An empty cell is not sent (the field's default applies; an error for a\n"
    "required field); a line may stop before the last columns.  Without a\n"
    "header the columns are ticker,ts,price,volume[,flags], and only for a\n"
    "schema with those fields (MarketEvent).  Blank lines are skipped; CRLF\n"
    "line ends, a UTF-8 BOM and \"quoted\" cells are fine; a line is at most 1 MiB.\n"
    "\n"
    "  --extra  send columns the schema does not declare as extra fields (an\n"
    "           integer, a float, true/false or else a string; fallback and\n"
    "           dynamic mode keep them, slotted rejects them as unknown_field)\n"
    "  --array  send the compact form: an array in the schema's slot order,\n"
    "           nil for absent values (no extra fields)\n"
    "\n"
    "  --acks   ask the daemon for acknowledgements (a hello first): each line\n"
    "           it rejects is reported on stderr as 'tickslab: FILE:LINE:\n"
    "           rejected: REASON (field F)' (past 1000 a second only counted),\n"
    "           and the summary adds 'accepted A, rejected R'\n"
    "  --sync   --acks, and wait until every accepted tick is durable (fsynced\n"
    "           to the journal) before exiting; the summary adds 'durable D'.\n"
    "           With journal.fsync: never it asks the control socket for sync\n"
    "           (--socket).  Exit status 1 when the daemon's journal is off\n"
    "  --producer NAME\n"
    "           --acks as the named producer NAME: the daemon says how many\n"
    "           of NAME's ticks it already handled, and that many ticks of the\n"
    "           input are skipped first, so a rerun after a crash or a cut\n"
    "           connection sends only what was not stored ('skipped K ticks the\n"
    "           daemon had' on stderr)\n"
    "\n"
    "Prints 'sent N ticks (B bytes) to HOST:PORT'.  A bad line stops the send:\n"
    "'tickslab: FILE:LINE: what is wrong' on stderr, the ticks before it are\n"
    "sent, the summary is printed, and the exit status is 1.  With --acks the\n"
    "exit status is also 1 when the daemon rejected any line, or the\n"
    "connection ended before every tick was acknowledged (or, --sync,\n"
    "durable within --timeout of the last progress).\n";

/* Reads one line (without its '\n') into b, at most max bytes.  1: a
 * line; 0: end of input; -E2BIG: longer than max (the rest of it is
 * skipped); -EIO: a read error. */
static int read_line(FILE *in, struct tks_buf *b, size_t max) {
  b->len = 0;
  int ch;
  bool any = false, big = false;
  while ((ch = getc_unlocked(in)) != EOF) {
    any = true;
    if (ch == '\n') break;
    if (b->len >= max) {
      big = true;
      continue;
    }
    if (b->len + 1 >= b->cap && tks_buf_reserve(b, b->cap ? b->cap : 4096)) return -ENOMEM;
    b->data[b->len++] = (char)ch;
  }
  if (b->data) b->data[b->len] = '\0';
  if (ferror(in)) return -EIO;
  if (big) return -E2BIG;
  return any ? 1 : 0;
}

/* Where tick seq s came from: runs of consecutive lines. */
struct line_run {
  uint64_t seq, line;
};

struct acks {
  msgpack_unpacker up;
  bool on, eof;
  uint64_t position; /* the welcome's: seq of the first tick sent */
  bool journal;
  bool fsync_never; /* journal.fsync: never: only a `sync` makes ticks durable */
  uint64_t accepted, rejected, durable, omitted, reported;
  bool error;
  struct line_run *runs;
  size_t nruns, cap;
  uint64_t next_seq, last_line; /* of the tick to be sent next, and the line before */
};

struct sender {
  struct cli *cli;
  int fd;
  const char *dest;
  const char *name; /* of the input, for messages */
  int timeout_ms;
  struct tks_buf buf;
  uint64_t buffered; /* ticks in buf */
  uint64_t ticks;    /* ticks written */
  uint64_t bytes;
  struct acks a;
};

static uint64_t u64_of(const msgpack_object *v) {
  return v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? v->via.u64 : 0;
}

static int str_of(const msgpack_object *v, char *out, size_t n) {
  if (!v || v->type != MSGPACK_OBJECT_STR) return 0;
  size_t len = v->via.str.size < n - 1 ? v->via.str.size : n - 1;
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)v->via.str.ptr[i];
    out[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
  }
  out[len] = '\0';
  return 1;
}

/* The input line of seq, from the runs (0 when unknown). */
static uint64_t line_of(const struct acks *a, uint64_t seq) {
  size_t lo = 0, hi = a->nruns;
  while (hi - lo > 1) {
    size_t mid = (lo + hi) / 2;
    if (a->runs[mid].seq <= seq)
      lo = mid;
    else
      hi = mid;
  }
  if (a->nruns == 0 || a->runs[lo].seq > seq) return 0;
  return a->runs[lo].line + (seq - a->runs[lo].seq);
}

/* The next tick to be sent comes from line: a new run unless it follows. */
static int note_line(struct acks *a, uint64_t line) {
  if (!a->on) return 0;
  if (!(a->nruns && line == a->last_line + 1)) {
    if (a->nruns == a->cap) {
      size_t cap = a->cap ? 2 * a->cap : 64;
      struct line_run *r = realloc(a->runs, cap * sizeof *r);
      if (!r) return -ENOMEM;
      a->runs = r;
      a->cap = cap;
    }
    a->runs[a->nruns++] = (struct line_run){a->next_seq, line};
  }
  a->last_line = line;
  a->next_seq++;
  return 0;
}

/* One message from the daemon. */
static void on_message(struct sender *s, const msgpack_object *m) {
  struct acks *a = &s->a;
  char what[16], reason[40], field[80], text[300];
  if (m->type != MSGPACK_OBJECT_MAP || !str_of(tks_mpreq_get(m, "$"), what, sizeof what)) return;
  if (!strcmp(what, "ack")) {
    a->accepted = u64_of(tks_mpreq_get(m, "accepted"));
    a->rejected = u64_of(tks_mpreq_get(m, "rejected"));
    a->durable = u64_of(tks_mpreq_get(m, "durable"));
  } else if (!strcmp(what, "reject")) {
    uint64_t seq = u64_of(tks_mpreq_get(m, "seq"));
    if (!str_of(tks_mpreq_get(m, "reason"), reason, sizeof reason)) strcpy(reason, "?");
    bool f = str_of(tks_mpreq_get(m, "field"), field, sizeof field);
    cli_err("%s:%llu: rejected: %s%s%s%s", s->name, (unsigned long long)line_of(a, seq), reason,
            f ? " (field " : "", f ? field : "", f ? ")" : "");
    a->reported++;
  } else if (!strcmp(what, "omitted")) {
    a->omitted += u64_of(tks_mpreq_get(m, "rejects"));
  } else if (!strcmp(what, "error")) {
    if (!str_of(tks_mpreq_get(m, "error"), text, sizeof text)) strcpy(text, "?");
    cli_err("%s: the daemon closed the stream: %s", s->dest, text);
    a->error = true;
  }
}

/* Reads what the daemon wrote, waiting up to ms for the first byte (0:
 * what is there).  0, or -1 once the connection ended. */
static int read_acks(struct sender *s, int ms) {
  struct acks *a = &s->a;
  if (a->eof) return -1;
  struct pollfd p = {.fd = s->fd, .events = POLLIN};
  int pr = poll(&p, 1, ms);
  if (pr <= 0) return 0;
  for (;;) {
    if (!msgpack_unpacker_reserve_buffer(&a->up, 1 << 16)) return -1;
    ssize_t n = recv(s->fd, msgpack_unpacker_buffer(&a->up), 1 << 16, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n <= 0) {
      a->eof = true;
      break;
    }
    msgpack_unpacker_buffer_consumed(&a->up, (size_t)n);
  }
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  msgpack_unpack_return r;
  while ((r = msgpack_unpacker_next(&a->up, &u)) == MSGPACK_UNPACK_SUCCESS) on_message(s, &u.data);
  msgpack_unpacked_destroy(&u);
  if (r == MSGPACK_UNPACK_PARSE_ERROR) {
    cli_err("%s: the daemon wrote bytes that are not msgpack", s->dest);
    a->eof = a->error = true;
  }
  return a->eof ? -1 : 0;
}

/* Says hello and reads the welcome. */
static int hello(struct sender *s, const char *producer) {
  struct acks *a = &s->a;
  if (!msgpack_unpacker_init(&a->up, 1 << 16)) return -1;
  a->on = true;
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, producer ? 3 : 2);
  msgpack_pack_str_with_body(&pk, "$", 1);
  msgpack_pack_str_with_body(&pk, "hello", 5);
  msgpack_pack_str_with_body(&pk, "acks", 4);
  msgpack_pack_true(&pk);
  if (producer) {
    msgpack_pack_str_with_body(&pk, "producer", 8);
    msgpack_pack_str_with_body(&pk, producer, strlen(producer));
  }
  int r = cli_write_all(s->fd, sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
  if (r) {
    cli_err("write to %s: %s", s->dest, strerror(-r));
    return -1;
  }
  uint64_t deadline = tks_mono_ns() + (uint64_t)s->timeout_ms * 1000000u;
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  int rc = -1;
  while (!a->eof && tks_mono_ns() < deadline) {
    struct pollfd p = {.fd = s->fd, .events = POLLIN};
    if (poll(&p, 1, 100) <= 0) continue;
    if (!msgpack_unpacker_reserve_buffer(&a->up, 4096)) break;
    ssize_t n = recv(s->fd, msgpack_unpacker_buffer(&a->up), 4096, 0);
    if (n <= 0) {
      a->eof = true;
      break;
    }
    msgpack_unpacker_buffer_consumed(&a->up, (size_t)n);
    if (msgpack_unpacker_next(&a->up, &u) != MSGPACK_UNPACK_SUCCESS) continue;
    char what[16], journal[8] = "", fsync[16] = "";
    if (u.data.type == MSGPACK_OBJECT_MAP &&
        str_of(tks_mpreq_get(&u.data, "$"), what, sizeof what) && !strcmp(what, "welcome")) {
      a->position = u64_of(tks_mpreq_get(&u.data, "position"));
      str_of(tks_mpreq_get(&u.data, "journal"), journal, sizeof journal);
      a->journal = strcmp(journal, "on") == 0;
      str_of(tks_mpreq_get(&u.data, "fsync"), fsync, sizeof fsync);
      a->fsync_never = strcmp(fsync, "never") == 0;
      a->next_seq = a->position;
      rc = 0;
    } else {
      on_message(s, &u.data); /* an error says why */
      if (!a->error) cli_err("%s: no welcome after the hello", s->dest);
    }
    break;
  }
  msgpack_unpacked_destroy(&u);
  if (rc && !a->error && !a->eof)
    cli_err("%s: no welcome within %.1f s", s->dest, s->timeout_ms / 1000.0);
  if (rc && a->eof && !a->error) cli_err("%s: the connection ended after the hello", s->dest);
  return rc;
}

/* After the last tick: waits until the daemon acknowledged every tick
 * sent (and, sync, made them durable), giving up after timeout_ms without
 * progress.  0 or -1 (printed). */
/* `sync` on the control socket: with journal.fsync never nothing else
 * makes the ticks durable.  0 or -1 (printed). */
static int ask_sync(struct sender *s) {
  const char *path;
  struct cli_ctl ctl = {.fd = -1};
  struct tks_buf resp = {0};
  int rc = -1;
  if (cli_control_socket(s->cli, &path) == 0 && cli_ctl_open(&ctl, path, s->timeout_ms) == 0 &&
      cli_ctl_request(&ctl, "sync", &resp) == 0) {
    char msg[256];
    if (cli_response_error(resp.data, msg, sizeof msg))
      cli_err("sync: %s", msg);
    else
      rc = 0;
  }
  cli_ctl_close(&ctl);
  tks_buf_finish(&resp);
  if (rc) cli_err("send --sync: journal.fsync is never and the control socket's sync failed");
  return rc;
}

static int wait_acks(struct sender *s, bool sync) {
  struct acks *a = &s->a;
  uint64_t last = 0, t0 = tks_mono_ns();
  bool asked = false;
  for (;;) {
    bool all = a->accepted + a->rejected >= s->ticks;
    if (all && (!sync || a->durable >= a->accepted)) return 0;
    if (all && sync && a->fsync_never && !asked) {
      asked = true;
      if (ask_sync(s)) return -1;
    }
    if (a->error || a->eof) {
      cli_err("%s: the connection ended with %llu of %llu ticks acknowledged", s->dest,
              (unsigned long long)(a->accepted + a->rejected), (unsigned long long)s->ticks);
      return -1;
    }
    uint64_t progress = a->accepted + a->rejected + a->durable;
    if (progress != last) last = progress, t0 = tks_mono_ns();
    if (tks_mono_ns() - t0 > (uint64_t)s->timeout_ms * 1000000u) {
      if (all)
        cli_err("%s: %llu of %llu accepted ticks durable after %.1f s without progress", s->dest,
                (unsigned long long)a->durable, (unsigned long long)a->accepted,
                s->timeout_ms / 1000.0);
      else
        cli_err("%s: %llu of %llu ticks acknowledged after %.1f s without progress", s->dest,
                (unsigned long long)(a->accepted + a->rejected), (unsigned long long)s->ticks,
                s->timeout_ms / 1000.0);
      return -1;
    }
    read_acks(s, 100);
  }
}

static int flush(struct sender *s) {
  if (s->buf.len == 0) return 0;
  if (s->a.on) read_acks(s, 0); /* what came back meanwhile, so no detail waits */
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
  const char *file = NULL, *producer = NULL;
  bool array = false, acks = false, sync = false, extra = false;
  for (int i = 1; i < argc;) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(send_help, stdout);
      return CLI_OK;
    }
    if (strcmp(a, "--array") == 0 || strcmp(a, "--extra") == 0) {
      array |= a[2] == 'a';
      extra |= a[2] == 'e';
      i++;
      continue;
    }
    if (strcmp(a, "--acks") == 0 || strcmp(a, "--sync") == 0) {
      acks = true;
      sync |= a[2] == 's';
      i++;
      continue;
    }
    int r = cli_opt_value(argc, argv, &i, "--producer", &producer);
    if (r < 0) return CLI_USAGE;
    if (r > 0) {
      size_t pl = strlen(producer);
      if (pl == 0 || pl > 64) {
        cli_err("send: --producer takes a name of 1 to 64 bytes");
        return CLI_USAGE;
      }
      acks = true;
      continue;
    }
    r = cli_global_opt(c, argc, argv, &i);
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

  if (array && extra) {
    cli_err("send: --array has no place for extra fields: use one of --array, --extra");
    return CLI_USAGE;
  }
  char schema_src[400];
  const struct tks_schema *schema = cli_send_schema(c, schema_src, sizeof schema_src);
  if (!schema) return CLI_FAIL;
  if (cli_ingest_address(c)) return CLI_FAIL;

  bool use_stdin = !file || strcmp(file, "-") == 0;
  const char *name = use_stdin ? "<stdin>" : file;
  FILE *in = use_stdin ? stdin : fopen(file, "r");
  if (!in) {
    cli_err("cannot open %s: %s", file, strerror(errno));
    return CLI_FAIL;
  }

  struct sender s = {.cli = c, .dest = c->ingest_name, .name = name, .timeout_ms = c->timeout_ms};
  int rc = CLI_FAIL;
  struct tks_buf lb = {0};
  struct cli_csv_map *map = calloc(1, sizeof *map);
  if (!map) {
    cli_err("out of memory");
    if (!use_stdin) fclose(in);
    return CLI_FAIL;
  }
  s.fd = cli_tcp_connect(c->ingest_host, c->ingest_port, c->ingest_name, c->timeout_ms);
  if (s.fd < 0) goto out;
  if (tks_buf_reserve(&s.buf, SEND_BATCH_BYTES + 4096)) {
    cli_err("out of memory");
    goto out;
  }
  if (acks && hello(&s, producer)) goto out;
  if (sync && !s.a.journal) {
    cli_err("send --sync: the daemon's journal is off: nothing it stores becomes durable");
    goto out;
  }
  uint64_t skip = s.a.position, skipped = 0; /* ticks the daemon has of this producer */

  unsigned long long lineno = 0;
  bool seen_line = false;
  int n;
  char err[1024];
  bool failed = false;
  while ((n = read_line(in, &lb, CLI_CSV_LINE_MAX)) != 0) {
    lineno++;
    if (n < 0) {
      if (n == -E2BIG && flush(&s) == 0)
        cli_err("%s:%llu: a line over %u bytes", name, lineno, CLI_CSV_LINE_MAX);
      else if (n == -ENOMEM)
        cli_err("out of memory");
      failed = true;
      break;
    }
    char *line = lb.data;
    size_t len = lb.len;
    if (cli_csv_is_blank(line, len)) continue;
    bool first = !seen_line;
    seen_line = true;
    int r = 0;
    if (first) {
      /* The header, else the legacy columns (the line then is a tick).
       * The header is parsed from a copy: a data line is parsed again. */
      char *copy = malloc(len + 1);
      if (!copy) {
        cli_err("out of memory");
        failed = true;
        break;
      }
      memcpy(copy, line, len + 1);
      r = cli_csv_header(map, schema, extra, copy, len, err, sizeof err);
      free(copy);
      if (r == 0) r = cli_csv_legacy(map, schema, extra, err, sizeof err);
      if (r < 0) {
        cli_err("%s:%llu: %s (the schema: %s)", name, lineno, err, schema_src);
        failed = true;
        break;
      }
      if (r == 1) continue;
    }
    size_t at = s.buf.len;
    r = cli_csv_encode(map, line, len, array, &s.buf, err, sizeof err);
    if (r == 0 && skipped < skip) {
      s.buf.len = at; /* the daemon has it from an earlier run */
      skipped++;
      continue;
    }
    if (r) {
      /* Send what came before, then stop at this line. */
      if (flush(&s) == 0) cli_err("%s:%llu: %s", name, lineno, err);
      failed = true;
      break;
    }
    if (note_line(&s.a, lineno)) {
      cli_err("out of memory");
      failed = true;
      break;
    }
    s.buffered++;
    if (s.buf.len >= SEND_BATCH_BYTES && flush(&s)) {
      failed = true;
      break;
    }
  }
  if (n == -EIO) cli_err("read %s: %s", name, strerror(errno));
  if (!failed && flush(&s)) failed = true;
  if (skipped)
    cli_err("%s: skipped %llu ticks the daemon had of producer %s", name,
            (unsigned long long)skipped, producer);
  if (skipped < skip) {
    cli_err("%s: the daemon has %llu ticks of producer %s, the input only %llu", name,
            (unsigned long long)skip, producer, (unsigned long long)skipped);
    failed = true;
  }
  if (acks && !s.a.error && wait_acks(&s, sync)) failed = true;
  if (acks) {
    /* The daemon's last answer comes before its close. */
    if (shutdown(s.fd, SHUT_WR) == 0) {
      uint64_t deadline = tks_mono_ns() + (uint64_t)c->timeout_ms * 1000000u;
      while (read_acks(&s, 100) == 0 && tks_mono_ns() < deadline) continue;
    }
    close(s.fd);
  } else {
    cli_finish_stream(s.fd, c->timeout_ms);
  }
  s.fd = -1;
  if (acks) {
    printf("sent %llu ticks (%llu bytes) to %s; accepted %llu, rejected %llu",
           (unsigned long long)s.ticks, (unsigned long long)s.bytes, c->ingest_name,
           (unsigned long long)s.a.accepted, (unsigned long long)s.a.rejected);
    if (sync) printf(", durable %llu", (unsigned long long)s.a.durable);
    printf("\n");
    if (s.a.rejected > s.a.reported)
      cli_err("%llu more rejected lines were not detailed (over the daemon's rate)",
              (unsigned long long)(s.a.rejected - s.a.reported));
    if (s.a.rejected || s.a.error) failed = true;
  } else {
    printf("sent %llu ticks (%llu bytes) to %s\n", (unsigned long long)s.ticks,
           (unsigned long long)s.bytes, c->ingest_name);
  }
  if (fflush(stdout) != 0) failed = true;
  rc = failed ? CLI_FAIL : CLI_OK;
out:
  if (s.fd >= 0) cli_finish_stream(s.fd, c->timeout_ms);
  tks_buf_finish(&lb);
  free(map);
  tks_buf_finish(&s.buf);
  if (s.a.on) msgpack_unpacker_destroy(&s.a.up);
  free(s.a.runs);
  if (!use_stdin) fclose(in);
  return rc;
}
