/*
 * `tickslab gen`: a load generator fast enough to saturate the daemon.
 * Each connection (one thread, blocking socket) owns a disjoint set of
 * symbols and a pool of pre-encoded ticks; ts (always 9 bytes, 0xd3 + int64)
 * and price (0xcb + float64) sit at known offsets, so sending a batch is:
 * patch those 16 bytes per tick in place, then one write of up to 256 KiB
 * straight from the pool.  ts is strictly increasing per symbol and follows
 * the wall clock; prices are a random walk in cents.  With --extra-fields
 * and --extra-share P, a fraction P of the pool's entries carry the extra
 * fields: one at a seeded place in each window of 1/P entries, so the share
 * is exact per pool and spread evenly without landing on the same symbols
 * round after round.  With --wait it then polls `stats text` until the
 * daemon has taken every tick, for the daemon-side rate the benchmark
 * reports.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "encode.h"

#define GEN_BATCH_BYTES (256 * 1024)
#define GEN_POOL_TICKS 16384     /* per connection, at least (rounded to whole rounds of symbols) */
#define GEN_MAX_SYMBOLS 1000000
#define GEN_MAX_CONNECTIONS 1024
#define GEN_MAX_EXTRA 16
#define GEN_EXTRA_MIN 128          /* pool entries with extras we aim for, at least */
#define GEN_POOL_MAX_TICKS 262144  /* to get them with a small --extra-share: all pools */

static const char gen_help[] =
    "Usage: tickslab gen [OPTIONS]\n"
    "\n"
    "Generates ticks and streams them to the ingest address as fast as\n"
    "possible, or at --rate.\n"
    "\n"
    "  --count N          ticks in all, exactly (default 1000000; k/M/G suffixes ok;\n"
    "                     with --duration and no --count: no limit)\n"
    "  --rate R           ticks per second in all (default 0: as fast as possible)\n"
    "  --symbols S        symbols S0000, S0001, ... (default 100)\n"
    "  --connections C    TCP connections, one thread each (default 1, at most S);\n"
    "                     each connection sends its own share of the symbols\n"
    "  --seed X           random seed for prices, volumes, flags and the places of\n"
    "                     the extra fields (default 1)\n"
    "  --array            compact form: arrays in the schema's slot order\n"
    "  --extra-fields K   add K fields x1..xK (0 to 16) the default schema does not\n"
    "                     declare, integers 0..9999\n"
    "  --extra-share P    only this fraction of the ticks carries them: 0 to 1, or a\n"
    "                     percentage such as 10%; spread evenly, at places set by\n"
    "                     --seed (default 1: every tick; needs --extra-fields)\n"
    "  --duration SECONDS stop after this long even if --count is not reached\n"
    "  --wait             then wait until the daemon's ticks.accepted +\n"
    "                     ticks.rejected have grown by the ticks sent, and print\n"
    "                     the daemon-side rate\n"
    "  --wait-timeout S   give up waiting after S seconds (default 60)\n"
    "\n"
    "Ticks: ts strictly increasing per symbol from the current wall clock, price\n"
    "a random walk in cents, volume 1..1000, flags \"R\" one time in 8, else \"\".\n"
    "\n"
    "Prints 'sent N ticks in T s: R ticks/s (B bytes, C connections)', with\n"
    "--extra-fields 'E ticks carried K extra fields (share S)', and with --wait\n"
    "'stored N ticks in T s: R ticks/s' (and 'rejected M ticks' if any).\n";

struct gen_opts {
  uint64_t count;
  uint64_t rate;
  uint32_t symbols;
  uint32_t connections;
  uint64_t seed;
  bool array;
  uint32_t extra;
  double extra_share; /* of the ticks that carry the extra fields, 0..1 */
  double duration;
  bool wait;
  double wait_timeout;
};

struct gen_msg {
  uint32_t start;    /* offset of the message in the pool */
  uint32_t ts_at;    /* offset of the 8 ts bytes */
  uint32_t price_at; /* offset of the 8 price bytes */
  uint32_t sym;      /* local symbol index */
  uint32_t extra;    /* 1 if it carries the extra fields */
};

struct gen_conn {
  unsigned index;
  const struct gen_opts *o;
  int fd;
  const char *dest;
  int timeout_ms;
  uint64_t share; /* ticks to send */
  uint32_t nsym;
  struct tks_buf pool;
  struct gen_msg *msgs; /* nmsgs + 1: the last one's start is the pool's end */
  uint32_t nmsgs;
  int64_t *last_ts;
  int64_t *cents;
  uint64_t rng[4];
  /* Results. */
  uint64_t sent;
  uint64_t extra_sent; /* of those, ticks with the extra fields */
  uint64_t bytes;
  uint64_t end_ns; /* monotonic, after the last write */
  bool failed;
  pthread_t thread;
};

/* xoshiro256**, seeded with splitmix64. */
static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rnd(uint64_t s[4]) {
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

static uint64_t rnd_below(uint64_t s[4], uint64_t n) { return (rnd(s) >> 11) % n; }

static void put_be64(char *p, uint64_t v) {
  v = htobe64(v);
  memcpy(p, &v, 8);
}

static uint64_t double_bits(double d) {
  uint64_t u;
  memcpy(&u, &d, 8);
  return u;
}

/* Offset just past the unique 9-byte encoding (marker + big-endian v) in
 * msg, or -1. */
static long find_fixed(const char *msg, size_t len, unsigned char marker, uint64_t v) {
  char pat[9];
  pat[0] = (char)marker;
  put_be64(pat + 1, v);
  const char *p = memmem(msg, len, pat, sizeof pat);
  if (!p) return -1;
  size_t off = (size_t)(p - msg);
  if (memmem(p + 1, len - off - 1, pat, sizeof pat)) return -1; /* ambiguous */
  return (long)off + 1;
}

struct slots {
  int ts, ticker, price, volume, flags; /* slot of each in the array form, or -1 */
  unsigned n;
};

static int array_slots(const struct tks_schema *s, struct slots *sl) {
  sl->ts = tks_schema_find(s, "ts", 2);
  sl->ticker = tks_schema_find(s, "ticker", 6);
  sl->price = tks_schema_find(s, "price", 5);
  sl->volume = tks_schema_find(s, "volume", 6);
  sl->flags = tks_schema_find(s, "flags", 5);
  sl->n = s->nfields;
  const char *missing = sl->ts < 0       ? "ts"
                        : sl->ticker < 0 ? "ticker"
                        : sl->price < 0  ? "price"
                        : sl->volume < 0 ? "volume"
                                         : NULL;
  if (missing) {
    cli_err("gen --array: the schema %s has no field '%s'", s->name, missing);
    return -1;
  }
  return 0;
}

/* Marks which of the n pool entries carry the extra fields: round(n * P)
 * of them, the k-th at a seeded place in the k-th of as many equal windows.
 * The places come from their own generator, so prices and volumes are the
 * same whatever the share. */
static void mark_extras(struct gen_conn *c, uint64_t n) {
  const struct gen_opts *o = c->o;
  if (!o->extra || o->extra_share <= 0) return;
  uint64_t e = (uint64_t)llround((double)n * o->extra_share);
  if (e >= n) {
    for (uint64_t j = 0; j < n; j++) c->msgs[j].extra = 1;
    return;
  }
  uint64_t x = o->seed ^ (0x6a09e667f3bcc909ull * (c->index + 1)), rng[4];
  for (int k = 0; k < 4; k++) rng[k] = splitmix64(&x);
  for (uint64_t k = 0; k < e; k++) {
    uint64_t lo = k * n / e, hi = (k + 1) * n / e; /* the window [lo, hi), never empty */
    c->msgs[lo + rnd_below(rng, hi - lo)].extra = 1;
  }
}

/* Builds c's pool: nmsgs ticks over its symbols in rounds. */
static int build_pool(struct gen_conn *c, const struct slots *sl) {
  const struct gen_opts *o = c->o;
  uint64_t want = GEN_POOL_TICKS;
  /* Enough entries for the share to be near exact when the pool repeats,
   * within GEN_POOL_MAX_TICKS for all the connections together. */
  if (o->extra && o->extra_share > 0 && o->extra_share < 1) {
    double need = ceil(GEN_EXTRA_MIN / o->extra_share);
    double cap = fmax(GEN_POOL_TICKS, (double)GEN_POOL_MAX_TICKS / o->connections);
    want = (uint64_t)fmax(GEN_POOL_TICKS, fmin(need, cap));
  }
  uint64_t n = c->nsym >= want ? c->nsym : (uint64_t)c->nsym * ((want + c->nsym - 1) / c->nsym);
  if (n > c->share) n = c->share;
  if (n == 0) n = 1;
  c->nmsgs = (uint32_t)n;
  c->msgs = calloc(n + 1, sizeof *c->msgs);
  c->last_ts = calloc(c->nsym, sizeof *c->last_ts);
  c->cents = calloc(c->nsym, sizeof *c->cents);
  if (!c->msgs || !c->last_ts || !c->cents) return -ENOMEM;
  mark_extras(c, n);
  for (uint32_t s = 0; s < c->nsym; s++) c->cents[s] = 1000 + (int64_t)rnd_below(c->rng, 49000);

  static char xnames[GEN_MAX_EXTRA][8];
  for (unsigned k = 0; k < GEN_MAX_EXTRA; k++) snprintf(xnames[k], sizeof xnames[k], "x%u", k + 1);

  for (uint32_t j = 0; j < c->nmsgs; j++) {
    uint32_t sym = j % c->nsym;
    unsigned global = c->index + sym * o->connections;
    char ticker[16];
    int tl = snprintf(ticker, sizeof ticker, "S%04u", global);
    /* Placeholders the patcher overwrites; unique so they can be found. */
    int64_t ts = (int64_t)(0x5eed000000000000ull | j);
    double price = (double)c->cents[sym] / 100.0;
    int64_t volume = 1 + (int64_t)rnd_below(c->rng, 1000);
    bool r_flag = rnd_below(c->rng, 8) == 0;
    struct tks_value vts = {.type = TKS_V_INT, .flags = TKS_VF_FIXED, .v.i = ts};
    struct tks_value vticker = {.type = TKS_V_STR, .v.s = {ticker, (size_t)tl}};
    struct tks_value vprice = {.type = TKS_V_F64, .v.f = price};
    struct tks_value vvolume = {.type = TKS_V_INT, .v.i = volume};
    struct tks_value vflags = {.type = TKS_V_STR, .v.s = {r_flag ? "R" : "", r_flag ? 1u : 0u}};
    struct tks_value vextra[GEN_MAX_EXTRA];
    /* Drawn for every entry, so the other values do not depend on the share. */
    for (unsigned k = 0; k < o->extra; k++)
      vextra[k] = (struct tks_value){.type = TKS_V_INT, .v.i = (int64_t)rnd_below(c->rng, 10000)};
    unsigned nextra = c->msgs[j].extra ? o->extra : 0;

    size_t start = c->pool.len;
    int r;
    if (!o->array) {
      struct tks_kv kv[5 + GEN_MAX_EXTRA] = {
          {"ticker", vticker}, {"ts", vts}, {"price", vprice}, {"volume", vvolume}, {"flags", vflags},
      };
      for (unsigned k = 0; k < nextra; k++) kv[5 + k] = (struct tks_kv){xnames[k], vextra[k]};
      r = tks_encode_map(&c->pool, kv, 5 + nextra);
    } else {
      struct tks_value v[TKS_SCHEMA_MAX_FIELDS + GEN_MAX_EXTRA];
      for (unsigned k = 0; k < sl->n; k++) v[k] = (struct tks_value){.type = TKS_V_NIL};
      v[sl->ts] = vts;
      v[sl->ticker] = vticker;
      v[sl->price] = vprice;
      v[sl->volume] = vvolume;
      if (sl->flags >= 0) v[sl->flags] = vflags;
      for (unsigned k = 0; k < nextra; k++) v[sl->n + k] = vextra[k];
      r = tks_encode_array(&c->pool, v, sl->n + nextra);
    }
    if (r) return r;
    if (c->pool.len > UINT32_MAX - 4096) return -ENOMEM;
    size_t len = c->pool.len - start;
    long ts_at = find_fixed(c->pool.data + start, len, 0xd3, (uint64_t)ts);
    long price_at = find_fixed(c->pool.data + start, len, 0xcb, double_bits(price));
    if (ts_at < 0 || price_at < 0) return -EPROTO; /* the encoder changed */
    c->msgs[j] = (struct gen_msg){(uint32_t)start, (uint32_t)(start + (size_t)ts_at),
                                  (uint32_t)(start + (size_t)price_at), sym, c->msgs[j].extra};
  }
  c->msgs[c->nmsgs].start = (uint32_t)c->pool.len;
  return 0;
}

static void sleep_until(uint64_t mono_ns) {
  struct timespec ts = {.tv_sec = (time_t)(mono_ns / 1000000000u),
                        .tv_nsec = (long)(mono_ns % 1000000000u)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

static uint64_t start_ns; /* monotonic, set before the threads start */

static void *conn_main(void *arg) {
  struct gen_conn *c = arg;
  const struct gen_opts *o = c->o;
  uint64_t deadline = o->duration > 0 ? start_ns + (uint64_t)(o->duration * 1e9) : 0;
  /* With a rate, batches of about a millisecond's worth, sent on time. */
  double rate = o->rate ? (double)o->rate / o->connections : 0;
  uint64_t max_batch = rate > 0 ? (uint64_t)fmax(1, rate / 1000) : UINT64_MAX;
  uint32_t j = 0;
  c->end_ns = start_ns;
  while (c->sent < c->share) {
    if (rate > 0) sleep_until(start_ns + (uint64_t)((double)c->sent * 1e9 / rate));
    if (deadline && tks_mono_ns() >= deadline) break;
    uint64_t left = c->share - c->sent;
    if (left > max_batch) left = max_batch;
    uint32_t k = j;
    uint32_t base = c->msgs[j].start;
    while (k < c->nmsgs && k - j < left && c->msgs[k + 1].start - base <= GEN_BATCH_BYTES) k++;
    if (k == j) k = j + 1; /* a message bigger than a batch */
    int64_t now = tks_now_ns();
    char *pool = c->pool.data;
    uint64_t extra = 0;
    for (uint32_t m = j; m < k; m++) {
      const struct gen_msg *g = &c->msgs[m];
      extra += g->extra;
      int64_t ts = c->last_ts[g->sym] + 1;
      if (ts < now) ts = now;
      c->last_ts[g->sym] = ts;
      put_be64(pool + g->ts_at, (uint64_t)ts);
      int64_t cents = c->cents[g->sym] + (int64_t)rnd_below(c->rng, 11) - 5;
      if (cents < 1) cents = 1;
      c->cents[g->sym] = cents;
      put_be64(pool + g->price_at, double_bits((double)cents / 100.0));
    }
    size_t len = c->msgs[k].start - base;
    int r = cli_write_all(c->fd, pool + base, len);
    if (r) {
      if (r == -EAGAIN)
        cli_err("connection %u: write to %s: stalled for over %.1f s: the daemon is not reading "
                "(see --timeout)",
                c->index + 1, c->dest, c->timeout_ms / 1000.0);
      else
        cli_err("connection %u: write to %s: %s (after %" PRIu64 " ticks)", c->index + 1, c->dest,
                strerror(-r), c->sent);
      c->failed = true;
      break;
    }
    c->sent += k - j;
    c->extra_sent += extra;
    c->bytes += len;
    j = k == c->nmsgs ? 0 : k;
  }
  c->end_ns = tks_mono_ns();
  cli_finish_stream(c->fd, c->timeout_ms);
  c->fd = -1;
  return NULL;
}

/* A share: 0..1, or a percentage "10%".  0 or -EINVAL. */
static int parse_share(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || isnan(v)) return -EINVAL;
  if (*end == '%') {
    v /= 100;
    end++;
  }
  if (*end || v < 0 || v > 1) return -EINVAL;
  *out = v;
  return 0;
}

/* ticks.accepted and ticks.rejected from `stats text`. */
static int read_counts(struct cli_ctl *ctl, struct tks_buf *resp, uint64_t *accepted,
                       uint64_t *rejected) {
  if (cli_ctl_request(ctl, "stats text", resp)) return -1;
  const char *t = resp->data ? resp->data : "";
  char msg[512];
  if (cli_response_error(t, msg, sizeof msg)) {
    cli_err("stats text: %s", msg);
    return -1;
  }
  if (cli_stats_u64(t, "ticks.accepted", accepted)) {
    cli_err("the daemon's stats text has no ticks.accepted line");
    return -1;
  }
  if (cli_stats_u64(t, "ticks.rejected", rejected)) *rejected = 0;
  return 0;
}

static int parse_opts(struct cli *c, int argc, char **argv, struct gen_opts *o) {
  *o = (struct gen_opts){
      .count = 1000000, .symbols = 100, .connections = 1, .seed = 1, .wait_timeout = 60,
      .extra_share = 1};
  bool count_set = false, share_set = false;
  for (int i = 1; i < argc;) {
    const char *a = argv[i], *v = NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(gen_help, stdout);
      return 1;
    }
    if (strcmp(a, "--array") == 0) {
      o->array = true;
      i++;
      continue;
    }
    if (strcmp(a, "--wait") == 0) {
      o->wait = true;
      i++;
      continue;
    }
    int r = cli_global_opt(c, argc, argv, &i);
    if (r < 0) return -1;
    if (r > 0) continue;
    if ((r = cli_opt_value(argc, argv, &i, "--extra-share", &v)) != 0) {
      if (r < 0) return -1;
      if (parse_share(v, &o->extra_share)) {
        cli_err("gen: bad --extra-share '%s': want 0 to 1, e.g. 0.1, or a percentage, e.g. 10%%",
                v);
        return -1;
      }
      share_set = true;
      continue;
    }
    static const char *const names[] = {"--count", "--rate", "--symbols", "--connections",
                                        "--seed", "--extra-fields", "--duration", "--wait-timeout"};
    unsigned k = 0;
    for (; k < TKS_ARRAY_SIZE(names); k++)
      if ((r = cli_opt_value(argc, argv, &i, names[k], &v)) != 0) break;
    if (r < 0) return -1;
    if (k == TKS_ARRAY_SIZE(names)) {
      cli_err("gen: unknown argument '%s' (see tickslab gen --help)", a);
      return -1;
    }
    uint64_t u = 0;
    double d = 0;
    bool ok;
    if (k >= 6) {
      ok = cli_parse_seconds(v, &d) == 0 && d > 0 && d <= 1e6;
    } else {
      ok = cli_parse_count(v, &u) == 0;
    }
    switch (k) {
    case 0: o->count = u; count_set = true; break;
    case 1: o->rate = u; break;
    case 2: ok = ok && u >= 1 && u <= GEN_MAX_SYMBOLS; o->symbols = (uint32_t)u; break;
    case 3: ok = ok && u >= 1 && u <= GEN_MAX_CONNECTIONS; o->connections = (uint32_t)u; break;
    case 4: o->seed = u; break;
    case 5: ok = ok && u <= GEN_MAX_EXTRA; o->extra = (uint32_t)u; break;
    case 6: o->duration = d; break;
    case 7: o->wait_timeout = d; break;
    }
    if (!ok) {
      static const char *const want[] = {
          "a count, e.g. 1000000 or 10M",   "ticks per second, e.g. 500000 or 3M",
          "1 to 1000000",                   "1 to 1024",
          "an integer",                     "0 to 16",
          "seconds, more than 0",           "seconds, more than 0"};
      cli_err("gen: bad %s '%s': want %s", names[k], v, want[k]);
      return -1;
    }
  }
  if (o->connections > o->symbols) {
    cli_err("gen: --connections %u exceeds --symbols %u: each connection needs its own symbols",
            o->connections, o->symbols);
    return -1;
  }
  if (share_set && o->extra == 0) {
    cli_err("gen: --extra-share needs --extra-fields K (the fields to share out)");
    return -1;
  }
  if (o->duration > 0 && !count_set) o->count = UINT64_MAX;
  return 0;
}

int cli_cmd_gen(struct cli *c, int argc, char **argv) {
  struct gen_opts o;
  int pr = parse_opts(c, argc, argv, &o);
  if (pr) return pr > 0 ? CLI_OK : CLI_USAGE;

  struct slots sl = {0};
  if (o.array) {
    const struct tks_schema *schema = cli_schema(c);
    if (!schema || array_slots(schema, &sl)) return CLI_FAIL;
  }
  if (cli_ingest_address(c)) return CLI_FAIL;

  int rc = CLI_FAIL;
  struct cli_ctl ctl = {.fd = -1};
  struct tks_buf resp = {0};
  uint64_t acc0 = 0, rej0 = 0;
  if (o.wait) {
    const char *path;
    if (cli_control_socket(c, &path) || cli_ctl_open(&ctl, path, c->timeout_ms)) return CLI_FAIL;
    if (read_counts(&ctl, &resp, &acc0, &rej0)) goto out_ctl;
  }

  struct gen_conn *conns = calloc(o.connections, sizeof *conns);
  if (!conns) {
    cli_err("out of memory");
    goto out_ctl;
  }
  unsigned started = 0, nconn = 0;
  uint64_t seed = o.seed;
  for (unsigned i = 0; i < o.connections; i++) {
    struct gen_conn *g = &conns[i];
    g->index = i;
    g->o = &o;
    g->fd = -1;
    g->dest = c->ingest_name;
    g->timeout_ms = c->timeout_ms;
    g->share = o.count == UINT64_MAX ? UINT64_MAX
                                     : o.count / o.connections + (i < o.count % o.connections);
    g->nsym = o.symbols / o.connections + (i < o.symbols % o.connections);
    for (int k = 0; k < 4; k++) g->rng[k] = splitmix64(&seed);
    int r = build_pool(g, &sl);
    if (r) {
      cli_err("gen: cannot build the tick pool: %s",
              r == -EPROTO ? "encoded ts or price not found" : strerror(-r));
      goto out;
    }
  }
  for (; nconn < o.connections; nconn++) {
    conns[nconn].fd = cli_tcp_connect(c->ingest_host, c->ingest_port, c->ingest_name,
                                      c->timeout_ms);
    if (conns[nconn].fd < 0) goto out;
  }

  start_ns = tks_mono_ns();
  for (; started < o.connections; started++) {
    int r = pthread_create(&conns[started].thread, NULL, conn_main, &conns[started]);
    if (r) {
      cli_err("gen: cannot start a thread: %s", strerror(r));
      break;
    }
  }
  uint64_t sent = 0, extra_sent = 0, bytes = 0, end = start_ns;
  bool failed = started < o.connections;
  for (unsigned i = 0; i < started; i++) {
    pthread_join(conns[i].thread, NULL);
    sent += conns[i].sent;
    extra_sent += conns[i].extra_sent;
    bytes += conns[i].bytes;
    if (conns[i].end_ns > end) end = conns[i].end_ns;
    failed |= conns[i].failed;
  }
  double secs = (double)(end - start_ns) / 1e9;
  printf("sent %" PRIu64 " ticks in %.3f s: %.0f ticks/s (%" PRIu64 " bytes, %u connection%s)\n",
         sent, secs, secs > 0 ? (double)sent / secs : 0.0, bytes, o.connections,
         o.connections == 1 ? "" : "s");
  if (o.extra)
    printf("%" PRIu64 " ticks carried %u extra field%s (share %.4g)\n", extra_sent, o.extra,
           o.extra == 1 ? "" : "s", sent ? (double)extra_sent / (double)sent : 0.0);
  fflush(stdout);
  if (failed) goto out;

  if (o.wait) {
    uint64_t acc = acc0, rej = rej0, done_ns;
    uint64_t wait_end = tks_mono_ns() + (uint64_t)(o.wait_timeout * 1e9);
    for (;;) {
      if (read_counts(&ctl, &resp, &acc, &rej)) goto out;
      done_ns = tks_mono_ns();
      uint64_t taken = (acc - acc0) + (rej - rej0);
      if (taken >= sent) break;
      if (done_ns >= wait_end) {
        cli_err("gave up waiting after %.1f s: the daemon has taken %" PRIu64 " of %" PRIu64
                " ticks (accepted %" PRIu64 ", rejected %" PRIu64 ")",
                o.wait_timeout, taken, sent, acc - acc0, rej - rej0);
        goto out;
      }
      /* Poll rarely while much is left, often near the end, so the poll
       * neither loads the daemon nor blurs the time much. */
      double el = (double)(done_ns - start_ns) / 1e9;
      double r = taken > 0 && el > 0 ? (double)taken / el : 1e6;
      double left_s = (double)(sent - taken) / r;
      double nap = fmin(0.1, fmax(0.001, left_s / 2));
      sleep_until(done_ns + (uint64_t)(nap * 1e9));
    }
    double ws = (double)(done_ns - start_ns) / 1e9;
    printf("stored %" PRIu64 " ticks in %.3f s: %.0f ticks/s\n", acc - acc0, ws,
           ws > 0 ? (double)(acc - acc0) / ws : 0.0);
    if (rej > rej0) printf("rejected %" PRIu64 " ticks (see tickslab stats)\n", rej - rej0);
    fflush(stdout);
  }
  rc = CLI_OK;
out:
  for (unsigned i = 0; i < o.connections; i++) {
    if (i >= started && conns[i].fd >= 0) cli_finish_stream(conns[i].fd, 0);
    tks_buf_finish(&conns[i].pool);
    free(conns[i].msgs);
    free(conns[i].last_ts);
    free(conns[i].cents);
  }
  free(conns);
out_ctl:
  tks_buf_finish(&resp);
  cli_ctl_close(&ctl);
  return rc;
}
