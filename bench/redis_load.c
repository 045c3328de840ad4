/*
 * redis_load: writes the benchmark's ticks as Redis commands in RESP on
 * stdout, for `redis-cli --pipe`:
 *   XADD ticks:<symbol> * ts <ns> price <p> volume <v> flags <f>
 * The ticks are those `tickslab gen` makes: symbols S0000.. in rounds, ts
 * strictly increasing per symbol from the wall clock, price a random walk
 * in cents, volume 1..1000, flags "R" one time in 8, else "".
 *
 *   redis_load --count N --symbols S [--seed X] | redis-cli -p PORT --pipe
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t rng_state;

static uint64_t rnd(void) {
  /* splitmix64 */
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static char out[1 << 20];
static size_t out_len;

static void flush_out(void) {
  size_t off = 0;
  while (off < out_len) {
    ssize_t w = write(STDOUT_FILENO, out + off, out_len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      fprintf(stderr, "redis_load: write: %s\n", strerror(errno));
      exit(1);
    }
    off += (size_t)w;
  }
  out_len = 0;
}

static void put(const char *p, size_t n) {
  memcpy(out + out_len, p, n);
  out_len += n;
}

/* Decimal digits of v into buf (no NUL); returns the length. */
static size_t fmt_u64(char *buf, uint64_t v) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
  return n;
}

/* One RESP bulk string. */
static void bulk(const char *p, size_t n) {
  char hdr[24];
  hdr[0] = '$';
  size_t h = 1 + fmt_u64(hdr + 1, n);
  hdr[h++] = '\r';
  hdr[h++] = '\n';
  put(hdr, h);
  put(p, n);
  put("\r\n", 2);
}

#define LIT(s) bulk(s, sizeof(s) - 1)

static int parse_u64(const char *s, uint64_t *v) {
  char *end;
  errno = 0;
  if (!s || *s < '0' || *s > '9') return -1;
  *v = strtoull(s, &end, 10);
  return errno || *end ? -1 : 0;
}

int main(int argc, char **argv) {
  uint64_t count = 1000000, symbols = 100, seed = 1;
  for (int i = 1; i < argc; i += 2) { /* an option and its value */
    uint64_t *dst = strcmp(argv[i], "--count") == 0     ? &count
                    : strcmp(argv[i], "--symbols") == 0 ? &symbols
                    : strcmp(argv[i], "--seed") == 0    ? &seed
                                                        : NULL;
    if (!dst || i + 1 >= argc || parse_u64(argv[i + 1], dst)) {
      fprintf(stderr, "usage: redis_load [--count N] [--symbols S] [--seed X]\n");
      return 2;
    }
  }
  if (symbols == 0 || symbols > 10000000) {
    fprintf(stderr, "redis_load: --symbols must be 1..10000000\n");
    return 2;
  }
  rng_state = seed;
  int64_t *last_ts = calloc(symbols, sizeof *last_ts);
  int64_t *cents = calloc(symbols, sizeof *cents);
  if (!last_ts || !cents) {
    fprintf(stderr, "redis_load: out of memory\n");
    return 1;
  }
  for (uint64_t s = 0; s < symbols; s++) cents[s] = 1000 + (int64_t)(rnd() % 49000);

  int64_t now = now_ns();
  for (uint64_t i = 0; i < count; i++) {
    if ((i & 1023) == 0) now = now_ns();
    uint64_t s = i % symbols;
    int64_t ts = last_ts[s] + 1;
    if (ts < now) ts = now;
    last_ts[s] = ts;
    int64_t c = cents[s] + (int64_t)(rnd() % 11) - 5;
    if (c < 1) c = 1;
    cents[s] = c;
    uint64_t r = rnd();
    uint64_t volume = 1 + r % 1000;
    int r_flag = (r >> 20) % 8 == 0;

    char key[32], tsb[24], price[32], vol[24];
    int kl = snprintf(key, sizeof key, "ticks:S%04llu", (unsigned long long)s);
    size_t tl = fmt_u64(tsb, (uint64_t)ts);
    size_t pl = fmt_u64(price, (uint64_t)(c / 100));
    price[pl++] = '.';
    price[pl++] = (char)('0' + (c % 100) / 10);
    price[pl++] = (char)('0' + c % 10);
    size_t vl = fmt_u64(vol, volume);

    put("*11\r\n", 5);
    LIT("XADD");
    bulk(key, (size_t)kl);
    LIT("*");
    LIT("ts");
    bulk(tsb, tl);
    LIT("price");
    bulk(price, pl);
    LIT("volume");
    bulk(vol, vl);
    LIT("flags");
    bulk(r_flag ? "R" : "", r_flag ? 1 : 0);
    if (out_len > sizeof out - 512) flush_out();
  }
  flush_out();
  free(last_ts);
  free(cents);
  return 0;
}
