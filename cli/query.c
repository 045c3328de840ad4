/*
 * The CLI's read-back commands: `tickslab last`, `range`, `symbols` and
 * `advice`.  Each sends the control request of the same name and prints
 * the answer: for the tick queries the daemon's JSON lines themselves (they
 * are the data; `range --all` follows the {"more":...} line page by page),
 * for `advice` the "text" of each line unless --json.  An error answer goes
 * to stderr with exit status 1.  With --brokers, `last` and `range` ask the
 * node of the fleet that owns the symbol (fleet.c), not the local daemon.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define MAX_POSITIONAL 4

/* The --brokers part of last's and range's help. */
#define BROKERS_HELP                                                            \
  "With --brokers the local daemon is not asked: the node of the fleet on\n"    \
  "Kafka that owns SYMBOL is (see tickslab nodes --help).  The directory\n"     \
  "topic names each node's partitions of the ticks' topic and its control\n"    \
  "socket; SYMBOL's partition, from the node's partitioner, tells the owner,\n" \
  "and the request goes to that node's control socket, a Unix socket at the\n"  \
  "path its record names: a node on this host, or one whose socket is\n"        \
  "forwarded here to that path (ssh -L PATH:PATH host).  No owner: an error\n"  \
  "naming the partition, exit 1.\n"                                             \
  "\n"                                                                          \
  "  --brokers B       the Kafka bootstrap list of the fleet\n"                 \
  "  --topic T         the ticks' topic (default ticks)\n"                      \
  "  --nodes-topic T   the directory topic (default tickslab.nodes)\n"

static const char last_help[] =
    "Usage: tickslab last SYMBOL [N] [--ts ns|iso|string] [--json] [--brokers B]\n"
    "\n"
    "Prints the newest N ticks of SYMBOL (default 10), oldest first, one JSON\n"
    "object a line with every field the tick has (request 'last SYMBOL N').\n"
    "N is capped by the daemon's query.max_rows; when ticks were held back\n"
    "the last line is {\"truncated\":true,\"max_rows\":M}.\n"
    "\n"
    "  --ts F   write the timestamp field as F: ns (a JSON number, the\n"
    "           default), iso (\"2026-11-25T14:30:00.123456789Z\", UTC, every\n"
    "           ns digit) or string (the ns as a string: JSON.parse and jq\n"
    "           round numbers past 2^53); request word ts=F\n"
    "  --json   print the answer's lines as they are (the default here too)\n"
    "\n" BROKERS_HELP;

static const char range_help[] =
    "Usage: tickslab range SYMBOL FROM TO [LIMIT] [--all] [--ts ns|iso|string] [--json]\n"
    "                      [--brokers B]\n"
    "\n"
    "Prints the ticks of SYMBOL with FROM <= ts < TO, oldest first, one JSON\n"
    "object a line (request 'range SYMBOL FROM TO LIMIT').  FROM and TO are\n"
    "ns since the epoch (negative before 1970) or ISO-8601 in UTC or with an\n"
    "offset: 1795617000000000000, -1000000000, 2026-11-25T14:30:00Z,\n"
    "2026-11-25T14:30:00.5+01:00,\n"
    "or a date alone, 2026-11-25 (midnight UTC).\n"
    "\n"
    "A page holds at most LIMIT rows (default and most: the daemon's\n"
    "query.max_rows), plus any rows with the same ts as its last one.  When\n"
    "more ticks remain, the last line is\n"
    "  {\"more\":true,\"next_from\":NS,\"returned\":ROWS}\n"
    "and 'tickslab range SYMBOL NS TO' gives the next page.\n"
    "\n"
    "  --all    follow the pages to the end: every tick of the range, once,\n"
    "           and no {\"more\":...} line\n"
    "  --ts F   write the timestamp field as F: ns (a JSON number, the\n"
    "           default), iso (\"2026-11-25T14:30:00.123456789Z\", UTC, every\n"
    "           ns digit) or string (the ns as a string: JSON.parse and jq\n"
    "           round numbers past 2^53); request word ts=F\n"
    "  --json   print the answer's lines as they are (the default here too)\n"
    "\n" BROKERS_HELP;

static const char symbols_help[] =
    "Usage: tickslab symbols [LIMIT] [--ts ns|iso|string] [--json]\n"
    "\n"
    "Prints each symbol that has ticks, first seen first, one JSON object a\n"
    "line (request 'symbols'):\n"
    "  {\"symbol\":\"AAPL\",\"ticks\":N,\"first_ts\":NS,\"last_ts\":NS}\n"
    "At most LIMIT (default and most: the daemon's query.max_rows); when\n"
    "there are more, the last line is {\"truncated\":true,\"symbols\":TOTAL}.\n"
    "\n"
    "  --ts F   write first_ts and last_ts as F: ns (default), iso or string\n"
    "  --json   print the answer's lines as they are (the default here too)\n";

static const char advice_help[] =
    "Usage: tickslab advice [--json]\n"
    "\n"
    "Asks the daemon what to change in the schema or the mode, from its live\n"
    "figures (request 'advice'): which undeclared fields are frequent and what\n"
    "they cost as dynamic objects against a declared slot, and so on.  Prints\n"
    "one sentence a line.\n"
    "\n"
    "  --json   print the answer's JSON lines, each with \"advice\" (the kind)\n"
    "           and \"text\" (the sentence)\n";

struct query_args {
  const char *pos[MAX_POSITIONAL];
  int npos;
  bool json;
  bool all;
  const char *ts;              /* --ts: ns, iso, string, or NULL */
  struct cli_fleet_opts fleet; /* last, range: --brokers and its options */
};

/* Parses a command's arguments: positionals (min..max), --json, --all
 * where allowed, and the global options.  Returns -1 to go on, else the
 * exit code (after --help, or a printed usage error). */
static int parse_args(struct cli *c, int argc, char **argv, const char *help, const char *usage,
                      int min, int max, bool allow_all, bool allow_ts, bool allow_fleet,
                      struct query_args *q) {
  memset(q, 0, sizeof *q);
  bool words_only = false;
  for (int i = 1; i < argc;) {
    const char *a = argv[i];
    /* A lone '-' followed by a digit is a (negative) positional, left to
     * the daemon to judge. */
    bool option = !words_only && a[0] == '-' && a[1] != '\0' && !(a[1] >= '0' && a[1] <= '9');
    if (option) {
      if (strcmp(a, "--") == 0) {
        words_only = true;
        i++;
        continue;
      }
      if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
        fputs(help, stdout);
        return CLI_OK;
      }
      if (strcmp(a, "--json") == 0) {
        q->json = true;
        i++;
        continue;
      }
      if (allow_all && strcmp(a, "--all") == 0) {
        q->all = true;
        i++;
        continue;
      }
      if (allow_ts && (strcmp(a, "--ts") == 0 || strncmp(a, "--ts=", 5) == 0)) {
        const char *f = a[4] == '=' ? a + 5 : i + 1 < argc ? argv[i + 1] : NULL;
        if (!f || (strcmp(f, "ns") && strcmp(f, "iso") && strcmp(f, "string"))) {
          cli_err("%s: --ts takes ns, iso or string", argv[0]);
          return CLI_USAGE;
        }
        q->ts = f;
        i += a[4] == '=' ? 1 : 2;
        continue;
      }
      int r = allow_fleet ? cli_fleet_opt(argc, argv, &i, &q->fleet) : 0;
      if (r == 0) r = cli_global_opt(c, argc, argv, &i);
      if (r < 0) return CLI_USAGE;
      if (r > 0) continue;
      cli_err("%s: unknown option '%s' (see tickslab %s --help)", argv[0], a, argv[0]);
      return CLI_USAGE;
    }
    if (a[0] == '\0' || strpbrk(a, " \t\r\n")) {
      cli_err("%s: '%s' is not one word: the daemon splits requests at white space", argv[0], a);
      return CLI_USAGE;
    }
    if (q->npos >= max) {
      cli_err("%s: unexpected argument '%s' (usage: tickslab %s)", argv[0], a, usage);
      return CLI_USAGE;
    }
    q->pos[q->npos++] = a;
    i++;
  }
  if (q->npos < min) {
    cli_err("%s: missing arguments (usage: tickslab %s)", argv[0], usage);
    return CLI_USAGE;
  }
  if (!q->fleet.brokers && (q->fleet.topic || q->fleet.nodes_topic)) {
    cli_err("%s: %s is for a fleet on Kafka: give --brokers too", argv[0],
            q->fleet.topic ? "--topic" : "--nodes-topic");
    return CLI_USAGE;
  }
  return -1;
}

/* "NAME pos..." as one request line. */
static int build_request(struct tks_buf *req, const char *name, const struct query_args *q) {
  req->len = 0;
  int r = tks_buf_puts(req, name);
  for (int k = 0; k < q->npos; k++) r |= tks_buf_putc(req, ' ') | tks_buf_puts(req, q->pos[k]);
  if (q->ts) r |= tks_buf_puts(req, " ts=") | tks_buf_puts(req, q->ts);
  if (r) cli_err("out of memory");
  return r ? -1 : 0;
}

static int write_out(const char *p, size_t n) {
  if (n && fwrite(p, 1, n, stdout) != n) {
    cli_err("write to stdout: %s", strerror(errno));
    return -1;
  }
  return 0;
}

/* The local daemon's control socket, or with --brokers that of the node
 * of the fleet that owns the symbol (q->pos[0]).  0, or an exit code. */
static int open_ctl(struct cli *c, const struct query_args *q, struct cli_ctl *ctl) {
  const char *path;
  if (q && q->fleet.brokers) {
    struct cli_fleet_owner o;
    int rc = cli_fleet_control(c, &q->fleet, q->pos[0], &o);
    if (rc) return rc;
    int r = cli_ctl_try_open(ctl, o.path, c->timeout_ms);
    if (r)
      cli_err("%s is in partition %d of %s, owned by node '%s' (its record %.1f s old): cannot "
              "connect to its control socket %s: %s (a node gone without its tombstone is "
              "listed until its record is %d s old)",
              q->pos[0], (int)o.partition, o.topic, o.node, o.age_s, o.path, strerror(-r),
              o.stale_s);
    return r ? CLI_FAIL : CLI_OK;
  }
  if (cli_control_socket(c, &path)) return CLI_FAIL;
  return cli_ctl_open(ctl, path, c->timeout_ms) ? CLI_FAIL : CLI_OK;
}

/* Sends one request and prints the lines of the answer. */
static int run_raw(struct cli *c, const struct query_args *q, const char *request) {
  struct cli_ctl ctl;
  int orc = open_ctl(c, q, &ctl);
  if (orc) return orc;
  struct tks_buf resp = {0};
  int rc = CLI_FAIL;
  if (cli_ctl_ask(&ctl, request, &resp) == 0 && write_out(resp.data, resp.len) == 0 &&
      fflush(stdout) == 0)
    rc = CLI_OK;
  tks_buf_finish(&resp);
  cli_ctl_close(&ctl);
  return rc;
}

int cli_cmd_last(struct cli *c, int argc, char **argv) {
  struct query_args q;
  int r = parse_args(c, argc, argv, last_help, "last SYMBOL [N]", 1, 2, false, true, true, &q);
  if (r >= 0) return r;
  struct tks_buf req = {0};
  int rc = build_request(&req, "last", &q) ? CLI_FAIL : run_raw(c, &q, req.data);
  tks_buf_finish(&req);
  return rc;
}

int cli_cmd_symbols(struct cli *c, int argc, char **argv) {
  struct query_args q;
  int r = parse_args(c, argc, argv, symbols_help, "symbols [LIMIT]", 0, 1, false, true, false, &q);
  if (r >= 0) return r;
  struct tks_buf req = {0};
  int rc = build_request(&req, "symbols", &q) ? CLI_FAIL : run_raw(c, NULL, req.data);
  tks_buf_finish(&req);
  return rc;
}

/* The start of the answer's last line, or NULL for an empty answer. */
static const char *last_line(const struct tks_buf *resp) {
  if (!resp->data || resp->len == 0) return NULL;
  size_t end = resp->len - 1; /* its '\n' */
  size_t k = end;
  while (k > 0 && resp->data[k - 1] != '\n') k--;
  return resp->data + k;
}

#define MORE_PREFIX "{\"more\":true,\"next_from\":"

int cli_cmd_range(struct cli *c, int argc, char **argv) {
  struct query_args q;
  int r = parse_args(c, argc, argv, range_help, "range SYMBOL FROM TO [LIMIT]", 3, 4, true, true,
                     true, &q);
  if (r >= 0) return r;
  struct tks_buf req = {0};
  if (build_request(&req, "range", &q)) return CLI_FAIL;
  if (!q.all) {
    int rc = run_raw(c, &q, req.data);
    tks_buf_finish(&req);
    return rc;
  }
  struct cli_ctl ctl;
  int orc = open_ctl(c, &q, &ctl);
  if (orc) {
    tks_buf_finish(&req);
    return orc;
  }
  struct tks_buf resp = {0};
  char from[32];
  int rc = CLI_FAIL;
  long long prev = 0;
  bool first = true;
  for (;;) {
    if (cli_ctl_ask(&ctl, req.data, &resp)) goto out;
    const char *ll = last_line(&resp);
    if (!ll || strncmp(ll, MORE_PREFIX, strlen(MORE_PREFIX)) != 0) {
      /* The last page. */
      if (write_out(resp.data, resp.len)) goto out;
      break;
    }
    char *end;
    errno = 0;
    long long next = strtoll(ll + strlen(MORE_PREFIX), &end, 10);
    if (errno || *end != ',' || (!first && next <= prev)) {
      cli_err("range: unexpected paging line from the daemon: %.*s", (int)strcspn(ll, "\n"), ll);
      goto out;
    }
    if (write_out(resp.data, (size_t)(ll - resp.data))) goto out;
    first = false;
    prev = next;
    /* The same request from next_from on. */
    snprintf(from, sizeof from, "%lld", next);
    struct query_args page = q;
    page.pos[1] = from;
    if (build_request(&req, "range", &page)) goto out;
  }
  rc = fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
  if (rc) cli_err("write to stdout: %s", strerror(errno));
out:
  fflush(stdout);
  tks_buf_finish(&resp);
  tks_buf_finish(&req);
  cli_ctl_close(&ctl);
  return rc;
}

/* Appends the UTF-8 of code point cp. */
static int put_utf8(struct tks_buf *o, unsigned cp) {
  char b[4];
  size_t n;
  if (cp < 0x80) {
    b[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    b[0] = (char)(0xc0 | cp >> 6);
    b[1] = (char)(0x80 | (cp & 0x3f));
    n = 2;
  } else if (cp < 0x10000) {
    b[0] = (char)(0xe0 | cp >> 12);
    b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    b[2] = (char)(0x80 | (cp & 0x3f));
    n = 3;
  } else {
    b[0] = (char)(0xf0 | cp >> 18);
    b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    b[3] = (char)(0x80 | (cp & 0x3f));
    n = 4;
  }
  return tks_buf_append(o, b, n);
}

static int hex4(const char *p, unsigned *out) {
  unsigned v = 0;
  for (int k = 0; k < 4; k++) {
    char h = p[k];
    unsigned d = h >= '0' && h <= '9'   ? (unsigned)(h - '0')
                 : h >= 'a' && h <= 'f' ? (unsigned)(h - 'a' + 10)
                 : h >= 'A' && h <= 'F' ? (unsigned)(h - 'A' + 10)
                                        : 16u;
    if (d == 16) return -1;
    v = v * 16 + d;
  }
  *out = v;
  return 0;
}

/* The unescaped value of the top-level string field "text" in one JSON
 * object line [p, end), appended to o.  Returns 0, 1 if the line has no
 * such string, -1 on ENOMEM.  Not a JSON parser: it relies on a raw
 * "text": in valid JSON being a key (a quote inside a string is escaped). */
static int extract_text(const char *p, const char *end, struct tks_buf *o) {
  static const char key[] = "\"text\"";
  const char *k = p;
  for (;;) {
    k = memmem(k, (size_t)(end - k), key, sizeof key - 1);
    if (!k) return 1;
    const char *b = k;
    while (b > p && (b[-1] == ' ' || b[-1] == '\t')) b--;
    const char *v = k + sizeof key - 1;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    if (b > p && (b[-1] == '{' || b[-1] == ',') && v < end && *v == ':') {
      v++;
      while (v < end && (*v == ' ' || *v == '\t')) v++;
      if (v >= end || *v != '"') return 1;
      p = v + 1;
      break;
    }
    k += sizeof key - 1;
  }
  while (p < end && *p != '"') {
    if (*p != '\\') {
      const char *q = p;
      while (q < end && *q != '"' && *q != '\\') q++;
      if (tks_buf_append(o, p, (size_t)(q - p))) return -1;
      p = q;
      continue;
    }
    if (++p >= end) break;
    char e = *p++;
    int r = 0;
    switch (e) {
    case 'n': r = tks_buf_putc(o, '\n'); break;
    case 't': r = tks_buf_putc(o, '\t'); break;
    case 'r':
    case 'b':
    case 'f': break;
    case 'u': {
      unsigned cp, lo;
      if (end - p < 4 || hex4(p, &cp)) {
        cp = '?';
      } else {
        p += 4;
        if (cp >= 0xd800 && cp < 0xdc00 && end - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
            hex4(p + 2, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          p += 6;
        } else if (cp >= 0xd800 && cp < 0xe000) {
          cp = 0xfffd; /* a lone surrogate */
        }
      }
      r = put_utf8(o, cp);
      break;
    }
    default: r = tks_buf_putc(o, e); break; /* \" \\ \/ */
    }
    if (r) return -1;
  }
  return 0;
}

int cli_cmd_advice(struct cli *c, int argc, char **argv) {
  struct query_args q;
  int r = parse_args(c, argc, argv, advice_help, "advice", 0, 0, false, false, false, &q);
  if (r >= 0) return r;
  if (q.json) return run_raw(c, NULL, "advice");
  struct cli_ctl ctl;
  if (open_ctl(c, NULL, &ctl)) return CLI_FAIL;
  struct tks_buf resp = {0}, text = {0};
  int rc = CLI_FAIL;
  if (cli_ctl_ask(&ctl, "advice", &resp)) goto out;
  for (const char *p = resp.data, *end = resp.data + resp.len; p && p < end;) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    text.len = 0;
    int x = extract_text(p, le, &text);
    if (x < 0) {
      cli_err("out of memory");
      goto out;
    }
    /* A line without "text" is shown as it is. */
    if ((x == 0 ? write_out(text.data, text.len) : write_out(p, (size_t)(le - p))) ||
        write_out("\n", 1))
      goto out;
    p = le + 1;
  }
  rc = fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
  if (rc) cli_err("write to stdout: %s", strerror(errno));
out:
  tks_buf_finish(&text);
  tks_buf_finish(&resp);
  cli_ctl_close(&ctl);
  return rc;
}
