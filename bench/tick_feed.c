/*
 * tick_feed: writes msgpack ticks (map form, the MarketEvent fields) of
 * past UTC days on stdout, for bench/restart.sh to stream into tickslabd
 * (`tick_feed ... > /dev/tcp/127.0.0.1/PORT`): `tickslab gen` stamps its
 * ticks with the wall clock, so it cannot make ticks a rollover seals.
 *
 *   tick_feed [--kind bench|real] [--count N] [--symbols S] [--seed X]
 *             [--days-ago K] [--days D]
 *
 * The ticks are spread evenly over D days, the newest K days before today
 * (default 1: yesterday), written oldest day first.  The kinds are
 * archive_bench's (bench/archive_bench.c), so that their bytes a tick
 * compare:
 *   bench  `tickslab gen`'s: S0000.. in rounds, ts = max(last + 1, now)
 *          with a 3 M ticks/s sender's clock from 09:30 (one reading per
 *          6,500 ticks), prices a random walk in cents (+-5), volumes
 *          1..1000, flags "R" one time in 8;
 *   real   real-looking: Zipf(1) symbol frequencies, ns timestamps of a
 *          Poisson stream over a 6.5 h session (from 13:30 UTC), prices a
 *          random walk in ticks of 0.01, 0.001 or 0.0001, round lots of
 *          100 (odd lots 15%), six flags of skewed frequency.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_DAY 86400000000000ll

static uint64_t rng = 1;
static uint64_t rnd(void) { /* splitmix64 */
  uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static double unit(void) { return (double)(rnd() >> 11) / 9007199254740992.0; }

static unsigned char out[1 << 20];
static size_t out_len;

static void flush_out(void) {
  size_t off = 0;
  while (off < out_len) {
    ssize_t w = write(STDOUT_FILENO, out + off, out_len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      fprintf(stderr, "tick_feed: write: %s\n", w < 0 ? strerror(errno) : "short write");
      exit(1);
    }
    off += (size_t)w;
  }
  out_len = 0;
}

static void put_be64(uint64_t v) {
  for (int i = 7; i >= 0; i--) out[out_len++] = (unsigned char)(v >> (i * 8));
}

static void put_str(const char *s, size_t n) { /* a fixstr: every string here is < 32 bytes */
  out[out_len++] = (unsigned char)(0xa0 | n);
  memcpy(out + out_len, s, n);
  out_len += n;
}

#define KEY(s) put_str(s, sizeof(s) - 1)

/* One tick as a map of five, the integers as a sender packs them (volume
 * as small as it fits, ts as int64). */
static void tick(int64_t ts, const char *ticker, size_t ticker_len, double price, uint64_t volume,
                 const char *flags) {
  out[out_len++] = 0x85;
  KEY("ts");
  out[out_len++] = 0xd3;
  put_be64((uint64_t)ts);
  KEY("ticker");
  put_str(ticker, ticker_len);
  KEY("price");
  out[out_len++] = 0xcb;
  uint64_t bits;
  memcpy(&bits, &price, sizeof bits);
  put_be64(bits);
  KEY("volume");
  if (volume < 128) {
    out[out_len++] = (unsigned char)volume;
  } else if (volume < 65536) {
    out[out_len++] = 0xcd;
    out[out_len++] = (unsigned char)(volume >> 8);
    out[out_len++] = (unsigned char)volume;
  } else {
    out[out_len++] = 0xce;
    for (int i = 3; i >= 0; i--) out[out_len++] = (unsigned char)(volume >> (i * 8));
  }
  KEY("flags");
  put_str(flags, strlen(flags));
  if (out_len > sizeof out - 256) flush_out();
}

struct sym {
  char name[16];
  size_t len;
  int64_t last;  /* bench: the last ts */
  int64_t price; /* in cents (bench) or in ticks of 10^-dec (real) */
  int dec;       /* real: decimals of the price */
  double cdf;    /* real: Zipf(1) cumulative frequency */
};

static void day_bench(struct sym *sy, unsigned nsym, uint64_t count, int64_t day) {
  const uint64_t batch = 6500;
  int64_t now = day + 9 * 3600000000000ll + 30 * 60000000000ll;
  for (uint64_t i = 0; i < count; i++) {
    if (i % batch == 0) now += (int64_t)((double)batch * 1e9 / 3e6);
    struct sym *s = &sy[i % nsym];
    int64_t ts = s->last + 1;
    if (ts < now) ts = now;
    s->last = ts;
    s->price += (int64_t)(rnd() % 11) - 5;
    if (s->price < 1) s->price = 1;
    uint64_t volume = 1 + rnd() % 1000;
    tick(ts, s->name, s->len, (double)s->price / 100.0, volume, rnd() % 8 == 0 ? "R" : "");
  }
}

static void day_real(struct sym *sy, unsigned nsym, uint64_t count, int64_t day) {
  static const char *const fl[] = {"", "R", "F", "X", "@", "T"};
  static const double fp[] = {0.85, 0.90, 0.94, 0.97, 0.99, 1.0};
  static const double pow10[] = {1, 10, 100, 1000, 10000};
  int64_t t = day + (int64_t)(13.5 * 3600e9); /* 09:30 New York */
  double gap = 6.5 * 3600e9 / (double)count;  /* mean ns between ticks */
  for (uint64_t i = 0; i < count; i++) {
    t += (int64_t)(-log(1 - unit()) * gap) + 1;
    double u = unit();
    unsigned lo = 0, hi = nsym - 1;
    while (lo < hi) {
      unsigned mid = (lo + hi) / 2;
      if (sy[mid].cdf < u)
        lo = mid + 1;
      else
        hi = mid;
    }
    struct sym *s = &sy[lo];
    double m = unit();
    int64_t step = m < 0.6 ? 0 : m < 0.9 ? 1 : 2 + (int64_t)(rnd() % 4);
    if (rnd() & 1) step = -step;
    if (s->price + step > 0) s->price += step;
    double f = unit();
    int k = 0;
    while (f > fp[k]) k++;
    uint64_t vol = unit() < 0.15 ? 1 + rnd() % 99
                                 : 100 * (1 + (uint64_t)floor(log(1 - unit()) / log(0.7)));
    /* The decimal of dec places as a sender prints it: the division rounds
     * to the double nearest it, as strtod would. */
    tick(t, s->name, s->len, (double)s->price / pow10[s->dec], vol, fl[k]);
  }
}

static int parse_u64(const char *s, uint64_t *v) {
  char *end;
  errno = 0;
  if (!s || *s < '0' || *s > '9') return -1;
  *v = strtoull(s, &end, 10);
  if (errno || end == s) return -1;
  uint64_t mul = *end == 'k' ? 1000 : *end == 'M' ? 1000000 : 1;
  if (mul > 1) end++;
  if (*end) return -1;
  *v *= mul;
  return 0;
}

static const char usage[] =
    "usage: tick_feed [--kind bench|real] [--count N] [--symbols S] [--seed X] [--days-ago K] "
    "[--days D]\n";

int main(int argc, char **argv) {
  uint64_t count = 1000000, symbols = 0, seed = 1, ago = 1, days = 1;
  const char *kind = "bench";
  for (int i = 1; i < argc; i += 2) { /* an option and its value */
    if (strcmp(argv[i], "--kind") == 0 && i + 1 < argc) {
      kind = argv[i + 1];
      continue;
    }
    uint64_t *dst = strcmp(argv[i], "--count") == 0      ? &count
                    : strcmp(argv[i], "--symbols") == 0  ? &symbols
                    : strcmp(argv[i], "--seed") == 0     ? &seed
                    : strcmp(argv[i], "--days-ago") == 0 ? &ago
                    : strcmp(argv[i], "--days") == 0     ? &days
                                                         : NULL;
    if (!dst || i + 1 >= argc || parse_u64(argv[i + 1], dst)) {
      fputs(usage, stderr);
      return 2;
    }
  }
  bool real = strcmp(kind, "real") == 0;
  if (!real && strcmp(kind, "bench") != 0) {
    fputs(usage, stderr);
    return 2;
  }
  if (!symbols) symbols = real ? 2000 : 100;
  if (symbols > 1000000 || ago < 1 || ago > 10000 || days < 1 || days > 10000 || count < days) {
    fprintf(stderr,
            "tick_feed: want 1..1000000 symbols, --days-ago >= 1, 1 <= --days <= --count\n");
    return 2;
  }
  rng = seed;
  unsigned nsym = (unsigned)symbols;
  struct sym *sy = calloc(nsym, sizeof *sy);
  if (!sy) {
    fprintf(stderr, "tick_feed: out of memory\n");
    return 1;
  }
  double sum = 0, acc = 0;
  for (unsigned s = 0; s < nsym; s++) sum += 1.0 / (s + 1);
  for (unsigned s = 0; s < nsym; s++) {
    struct sym *y = &sy[s];
    if (!real) {
      y->len = (size_t)snprintf(y->name, sizeof y->name, "S%04u", s);
      y->price = 1000 + (int64_t)(rnd() % 49000);
      continue;
    }
    acc += 1.0 / (s + 1) / sum;
    y->cdf = acc;
    /* Tickers of 1 to 5 letters, as listings have, made unique by s. */
    unsigned len = 1 + (unsigned)(rnd() % 5), k = s;
    for (unsigned c = 0; c < len; c++, k /= 26) y->name[c] = (char)('A' + (k + rnd()) % 26);
    y->len = len + (size_t)snprintf(y->name + len, sizeof y->name - len, "%u", s);
    double u = unit();
    y->dec = u < 0.7 ? 2 : u < 0.9 ? 3 : 4;
    double px = exp(log(5) + unit() * (log(500) - log(5)));
    y->price = llround(px * pow(10, y->dec));
  }
  sy[nsym - 1].cdf = 1.0;

  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  int64_t today = (int64_t)now.tv_sec / 86400 * NS_PER_DAY;
  for (uint64_t d = days; d-- > 0;) { /* oldest day first */
    uint64_t n = count / days + (d == 0 ? count % days : 0);
    int64_t day = today - (int64_t)(ago + d) * NS_PER_DAY;
    if (real)
      day_real(sy, nsym, n, day);
    else
      day_bench(sy, nsym, n, day);
  }
  flush_out();
  free(sy);
  return 0;
}
