/*
 * `tickslab tail`: follows the daemon's live ticks, like tail -f.  It
 * connects to the subscription port (subscribe.listen), writes the
 * subscribe request and prints each tick it gets, as a JSON line or a CSV
 * row, until interrupted (or --count ticks).  Control messages go to
 * stderr: {"$":"dropped"} as a warning, {"$":"error"} as the error it
 * ends with.
 */
#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cli.h"
#include "csv.h"
#include "mpreq.h"
#include "render.h"

static const char tail_help[] =
    "Usage: tickslab tail [SYMBOL...] [--from TIME] [--ts ns|iso|string] [--csv]\n"
    "                     [--count N] [--subscribe HOST:PORT]\n"
    "\n"
    "Follows the daemon's ticks, like tail -f: every tick of the SYMBOLs (all\n"
    "symbols when none is named) as it is stored, one JSON object a line, until\n"
    "interrupted.  With --from, first every stored tick with ts >= TIME (from\n"
    "memory and the day archive, in ts order a symbol at a time), then the live\n"
    "ones, each exactly once.\n"
    "\n"
    "  --from TIME    ns since the epoch, ISO-8601 (2026-11-25T14:30:00Z), a date,\n"
    "                 or now (the default: live ticks only)\n"
    "  --ts F         the timestamp field as ns (a JSON number, the default), iso\n"
    "                 or string (JSON.parse and jq round numbers past 2^53)\n"
    "  --csv          CSV rows with a header of the schema's fields (from --config,\n"
    "                 else the default schema); fields the schema does not declare\n"
    "                 are left out\n"
    "  --count N      exit after N ticks\n"
    "  --subscribe HOST:PORT\n"
    "                 the subscription address (default: with --socket and no\n"
    "                 --config the one the daemon there listens on, else the\n"
    "                 config's subscribe.listen, else 127.0.0.1:7071)\n"
    "\n"
    "Exit status: 0 after --count ticks or when the daemon closes the stream\n"
    "cleanly, 1 on an error (the daemon's reason is printed), 2 usage error.\n";

#define MAX_SYMBOLS 4096

struct tail {
  enum tks_ts_format tf;
  bool csv;
  const struct tks_schema *schema;
  struct tks_buf line;
};

/* One value as JSON (ts: the timestamp field, written in format tf). */
static int value_json(struct tks_buf *b, const msgpack_object *v, bool ts, enum tks_ts_format tf) {
  switch (v->type) {
  case MSGPACK_OBJECT_NIL: return tks_buf_puts(b, "null");
  case MSGPACK_OBJECT_BOOLEAN: return tks_buf_puts(b, v->via.boolean ? "true" : "false");
  case MSGPACK_OBJECT_POSITIVE_INTEGER:
    if (ts && v->via.u64 <= INT64_MAX) return tks_ts_json((int64_t)v->via.u64, tf, b);
    return tks_buf_printf(b, "%llu", (unsigned long long)v->via.u64);
  case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    if (ts) return tks_ts_json(v->via.i64, tf, b);
    return tks_buf_printf(b, "%lld", (long long)v->via.i64);
  case MSGPACK_OBJECT_FLOAT32:
  case MSGPACK_OBJECT_FLOAT64: return tks_json_double(b, v->via.f64);
  case MSGPACK_OBJECT_STR: return tks_buf_json_string(b, v->via.str.ptr, v->via.str.size);
  default: return tks_buf_puts(b, "null"); /* the daemon sends no other type */
  }
}

/* A CSV field: quoted when it holds a comma, a quote or a line break. */
static int csv_field(struct tks_buf *b, const msgpack_object *v, bool ts, enum tks_ts_format tf) {
  if (!v || v->type == MSGPACK_OBJECT_NIL) return 0;
  if (v->type != MSGPACK_OBJECT_STR) {
    size_t at = b->len;
    int r = value_json(b, v, ts, tf);
    /* ts=iso and ts=string come as JSON strings: unquote them. */
    if (r == 0 && b->len > at + 1 && b->data[at] == '"') {
      memmove(b->data + at, b->data + at + 1, b->len - at - 2);
      b->len -= 2;
    }
    return r;
  }
  return tks_csv_text(b, v->via.str.ptr, v->via.str.size);
}

/* "key":value, after a comma unless it is the first. */
static int put_pair(struct tks_buf *b, bool *first, const char *key, size_t len,
                    const msgpack_object *v, bool ts, enum tks_ts_format tf) {
  int r = *first ? 0 : tks_buf_putc(b, ',');
  *first = false;
  r |= tks_buf_json_string(b, key, len);
  r |= tks_buf_putc(b, ':');
  return r | value_json(b, v, ts, tf);
}

static int print_tick(struct tail *t, const msgpack_object *m) {
  struct tks_buf *b = &t->line;
  b->len = 0;
  int r = 0;
  if (t->csv) {
    for (unsigned i = 0; i < t->schema->nfields && r == 0; i++) {
      if (i) r = tks_buf_putc(b, ',');
      const char *name = t->schema->fields[i].name;
      r |= csv_field(b, tks_mpreq_get(m, name), (int)i == t->schema->ts_field, t->tf);
    }
  } else {
    /* The schema's fields in slot order, then the others as they came, as
     * `last` prints a tick: a live tick may come in its producer's key
     * order (the daemon sends its bytes as they were). */
    r = tks_buf_putc(b, '{');
    bool first = true;
    for (unsigned f = 0; f < t->schema->nfields && r == 0; f++) {
      const char *name = t->schema->fields[f].name;
      const msgpack_object *v = tks_mpreq_get(m, name);
      if (v) r = put_pair(b, &first, name, strlen(name), v, (int)f == t->schema->ts_field, t->tf);
    }
    for (uint32_t i = 0; i < m->via.map.size && r == 0; i++) {
      const msgpack_object *k = &m->via.map.ptr[i].key;
      if (k->type != MSGPACK_OBJECT_STR ||
          tks_schema_find(t->schema, k->via.str.ptr, k->via.str.size) >= 0)
        continue;
      r = put_pair(b, &first, k->via.str.ptr, k->via.str.size, &m->via.map.ptr[i].val, false,
                   t->tf);
    }
    r |= tks_buf_putc(b, '}');
  }
  r |= tks_buf_putc(b, '\n');
  if (r) {
    cli_err("out of memory");
    return -1;
  }
  if (fwrite(b->data, 1, b->len, stdout) != b->len) {
    cli_err("writing the output: %s", strerror(errno));
    return -1;
  }
  return 0;
}

/* A control message ({"$": what, ...}).  Returns 0 to go on, 1 on an
 * error message (printed). */
static int control(const msgpack_object *m, const msgpack_object *what) {
  if (tks_mpreq_key_is(what, "live")) return 0;
  if (tks_mpreq_key_is(what, "dropped")) {
    const msgpack_object *n = tks_mpreq_get(m, "count"), *total = tks_mpreq_get(m, "total");
    cli_err("the daemon dropped %llu ticks for this subscriber (%llu in all): it read too slowly",
            n && n->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (unsigned long long)n->via.u64 : 0,
            total && total->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                ? (unsigned long long)total->via.u64
                : 0);
    return 0;
  }
  if (tks_mpreq_key_is(what, "error")) {
    const msgpack_object *why = tks_mpreq_get(m, "reason");
    if (why && why->type == MSGPACK_OBJECT_STR)
      cli_err("the daemon ended the subscription: %.*s", (int)why->via.str.size, why->via.str.ptr);
    else
      cli_err("the daemon ended the subscription");
    return 1;
  }
  return 0; /* a control message this version does not know: ignored */
}

static int parse_args(int argc, char **argv, struct cli *c, const char **symbols, unsigned *nsym,
                      const char **from, const char **ts, bool *csv, uint64_t *count,
                      const char **sub) {
  for (int i = 1; i < argc;) {
    int g = cli_global_opt(c, argc, argv, &i);
    if (g < 0) return -1;
    if (g) continue;
    const char *v;
    int o;
    if ((o = cli_opt_value(argc, argv, &i, "--from", from)) != 0) {
      if (o < 0) return -1;
      continue;
    }
    if ((o = cli_opt_value(argc, argv, &i, "--ts", ts)) != 0) {
      if (o < 0) return -1;
      continue;
    }
    if ((o = cli_opt_value(argc, argv, &i, "--subscribe", sub)) != 0) {
      if (o < 0) return -1;
      continue;
    }
    if ((o = cli_opt_value(argc, argv, &i, "--count", &v)) != 0) {
      if (o < 0) return -1;
      if (cli_parse_count(v, count) || *count == 0) {
        cli_err("bad --count '%s' (want a whole number, 1 or more)", v);
        return -1;
      }
      continue;
    }
    if (strcmp(argv[i], "--csv") == 0) {
      *csv = true;
      i++;
      continue;
    }
    if (argv[i][0] == '-' && argv[i][1]) {
      cli_err("tail: unknown option '%s' (see tickslab tail --help)", argv[i]);
      return -1;
    }
    if (*nsym == MAX_SYMBOLS) {
      cli_err("tail: at most %d symbols", MAX_SYMBOLS);
      return -1;
    }
    symbols[(*nsym)++] = argv[i++];
  }
  return 0;
}

int cli_cmd_tail(struct cli *c, int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(tail_help, stdout);
      return CLI_OK;
    }
  static const char *symbols[MAX_SYMBOLS];
  unsigned nsym = 0;
  const char *from = NULL, *ts = NULL, *sub = NULL;
  bool csv = false;
  uint64_t count = 0;
  if (parse_args(argc, argv, c, symbols, &nsym, &from, &ts, &csv, &count, &sub)) return CLI_USAGE;
  struct tail t = {.csv = csv};
  if (ts && tks_ts_format_parse(ts, strlen(ts), &t.tf)) {
    cli_err("bad --ts '%s' (want ns, iso or string)", ts);
    return CLI_USAGE;
  }
  int64_t from_ns = 0;
  bool from_now = !from || strcmp(from, "now") == 0;
  if (!from_now && cli_parse_ts(from, strlen(from), &from_ns)) {
    cli_err("bad --from '%s' (want ns since the epoch, ISO-8601 such as 2026-11-25T14:30:00Z, a "
            "date, or now)",
            from);
    return CLI_USAGE;
  }
  t.schema = cli_schema(c);
  if (!t.schema) return CLI_FAIL;
  char host[256], port[8], name[300];
  if (cli_subscribe_address(c, sub, host, sizeof host, port, sizeof port, name, sizeof name))
    return CLI_FAIL;
  int fd = cli_tcp_connect(host, port, name, c->timeout_ms);
  if (fd < 0) return CLI_FAIL;

  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 2);
  msgpack_pack_str_with_body(&pk, "subscribe", 9);
  if (nsym == 0) {
    msgpack_pack_str_with_body(&pk, "*", 1);
  } else {
    msgpack_pack_array(&pk, nsym);
    for (unsigned i = 0; i < nsym; i++)
      msgpack_pack_str_with_body(&pk, symbols[i], strlen(symbols[i]));
  }
  msgpack_pack_str_with_body(&pk, "from", 4);
  if (from_now)
    msgpack_pack_str_with_body(&pk, "now", 3);
  else
    msgpack_pack_int64(&pk, from_ns);
  int w = cli_write_all(fd, sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
  if (w) {
    cli_err("writing to %s: %s", name, strerror(-w));
    close(fd);
    return CLI_FAIL;
  }
  /* No timeout from here on: a quiet market is not an error. */
  struct timeval none = {0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
  if (csv) {
    for (unsigned i = 0; i < t.schema->nfields; i++)
      printf("%s%s", i ? "," : "", t.schema->fields[i].name);
    putchar('\n');
  }
  if (isatty(STDOUT_FILENO)) setvbuf(stdout, NULL, _IOLBF, 0);

  msgpack_unpacker up;
  msgpack_unpacked u;
  if (!msgpack_unpacker_init(&up, 1 << 16)) {
    cli_err("out of memory");
    close(fd);
    return CLI_FAIL;
  }
  msgpack_unpacked_init(&u);
  int rc = CLI_OK;
  uint64_t printed = 0;
  for (bool done = false; !done;) {
    msgpack_unpack_return ret;
    while ((ret = msgpack_unpacker_next(&up, &u)) == MSGPACK_UNPACK_SUCCESS) {
      const msgpack_object *m = &u.data;
      if (m->type != MSGPACK_OBJECT_MAP) continue;
      const msgpack_object *first = m->via.map.size ? &m->via.map.ptr[0].key : NULL;
      if (first && tks_mpreq_key_is(first, "$")) {
        if (control(m, &m->via.map.ptr[0].val)) {
          rc = CLI_FAIL;
          done = true;
          break;
        }
        continue;
      }
      if (print_tick(&t, m)) {
        rc = CLI_FAIL;
        done = true;
        break;
      }
      if (count && ++printed == count) {
        done = true;
        break;
      }
    }
    if (done) break;
    if (ret == MSGPACK_UNPACK_PARSE_ERROR || ret == MSGPACK_UNPACK_NOMEM_ERROR) {
      cli_err("the stream from %s is not msgpack", name);
      rc = CLI_FAIL;
      break;
    }
    fflush(stdout);
    if (!msgpack_unpacker_reserve_buffer(&up, 1 << 16)) {
      cli_err("out of memory");
      rc = CLI_FAIL;
      break;
    }
    ssize_t n = read(fd, msgpack_unpacker_buffer(&up), 1 << 16);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      cli_err("reading from %s: %s", name, strerror(errno));
      rc = CLI_FAIL;
      break;
    }
    if (n == 0) break; /* the daemon closed the stream (a stop) */
    msgpack_unpacker_buffer_consumed(&up, (size_t)n);
  }
  fflush(stdout);
  msgpack_unpacked_destroy(&u);
  msgpack_unpacker_destroy(&up);
  tks_buf_finish(&t.line);
  close(fd);
  return rc;
}
