/*
 * The day archive (see archive.h for the layout on disk and the rules).
 * Writing: ticks are copied per symbol into pending columns with their ids
 * turned into the writer's own string table; a full pending block is
 * sorted by ts (stably), encoded column by column and compressed as one
 * zstd frame, flushed after each column so that every column gets zstd
 * blocks (and Huffman tables) of its own: 3-6% smaller than one call, at
 * the same speed (bench/archive_bench.c).  Reading: footers at open, an
 * index when a query first needs its part, blocks when a cursor reaches
 * them; a cursor merges the blocks of one symbol (of every part of a day)
 * by ts, then part, then block.  A part of a seal above the handle's limit
 * is skipped wherever parts are walked for a query.  libzstd is used here
 * only.
 *
 * A part file, every integer little-endian:
 *   header  32 B   "TKSARCH1", u32 version, i32 day, u32 part, u32 0, u32 0,
 *                  u32 CRC32C of the 28 bytes before
 *   blocks         one zstd frame each, at the offsets the index gives
 *   index          one zstd frame: the decompressed index (index_encode())
 *   footer  80 B   u64 index offset, u32 index length, u32 decompressed
 *                  length, u32 CRC32C of the index frame, u32 symbols,
 *                  u64 ticks, i64 first ts, i64 last ts, u32 blocks,
 *                  i32 day, u32 part, u64 seal id (0: none), "TKSAEND1",
 *                  u32 CRC32C of the 76 bytes before
 * Version 2 (header and index); version 1 had no seal id and a 72-byte
 * footer, and is not read (its parts are bad).
 * A block's CRC32C covers its zstd frame; its payload is block_encode()'s.
 */
#include "archive.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "archive-internal.h"
#include "journal.h"
#include "symtab.h"
#include "utf8.h"
#include "util.h"

#define FILE_MAGIC "TKSARCH1"
#define INDEX_MAGIC "TKSAIDX1"
#define FOOTER_MAGIC "TKSAEND1"
#define VERSION 2 /* 2: the footer holds the seal id (80 bytes, was 72) */
#define HEADER_SIZE 32
#define FOOTER_SIZE 80
#define FOOTER_MAGIC_AT (FOOTER_SIZE - 12)
#define FOOTER_CRC_AT (FOOTER_SIZE - 4) /* the CRC covers the bytes before */
#define PART_NAME_MAX 32
#define WRITE_CHUNK (1u << 20) /* file bytes buffered before a write(2) */
#define MAX_MAP_STRING 65535   /* a dynobj string's length is 16 bits */
#define NS_PER_DAY 86400000000000ll

/* Kinds of a tick in a block. */
enum { K_SLOTTED, K_OVERFLOW, K_DYNAMIC };
/* Value types of a map beyond enum tks_vtype's: the tick's own ts (INT),
 * the block's symbol (SYM), and a double that is m / 10^k exactly. */
enum { M_TICK_TS = 0x80, M_TICK_SYMBOL = 0x81, M_DECIMAL = 0x82 };

static int column_flush = 1; /* see tks_archive_set_column_flush() */
void tks_archive_set_column_flush(int on) { column_flush = on; }

/* ---- bytes out and in ------------------------------------------------------- */

/* An output buffer whose first failed append is remembered. */
struct ob {
  struct tks_buf *b;
  int err;
};

static void put(struct ob *o, const void *p, size_t n) {
  if (!o->err && n && tks_buf_append(o->b, p, n)) o->err = -ENOMEM;
}
static void put_u8(struct ob *o, uint8_t v) { put(o, &v, 1); }
static void put_u32(struct ob *o, uint32_t v) {
  uint8_t t[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
  put(o, t, 4);
}
static void put_u64(struct ob *o, uint64_t v) {
  put_u32(o, (uint32_t)v);
  put_u32(o, (uint32_t)(v >> 32));
}
static void put_var(struct ob *o, uint64_t v) {
  uint8_t t[10];
  unsigned n = 0;
  while (v >= 0x80) {
    t[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  t[n++] = (uint8_t)v;
  put(o, t, n);
}
static inline uint64_t zz(int64_t v) {
  uint64_t u = (uint64_t)v;
  return (u << 1) ^ (0 - (u >> 63));
}
static inline int64_t unzz(uint64_t u) { return (int64_t)((u >> 1) ^ (0 - (u & 1))); }

static void le32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}
static void le64(uint8_t *p, uint64_t v) {
  le32(p, (uint32_t)v);
  le32(p + 4, (uint32_t)(v >> 32));
}
static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }

/* A reader over bytes that checks every length: once bad, it stays bad
 * and yields zeros. */
struct rd {
  const uint8_t *p, *end;
  bool bad;
};

static const uint8_t *rd_take(struct rd *r, size_t n) {
  if (r->bad || (size_t)(r->end - r->p) < n) {
    r->bad = true;
    return NULL;
  }
  const uint8_t *p = r->p;
  r->p += n;
  return p;
}
static uint8_t rd_u8(struct rd *r) {
  const uint8_t *p = rd_take(r, 1);
  return p ? *p : 0;
}
static uint32_t rd_u32(struct rd *r) {
  const uint8_t *p = rd_take(r, 4);
  return p ? get32(p) : 0;
}
static uint64_t rd_u64(struct rd *r) {
  const uint8_t *p = rd_take(r, 8);
  return p ? get64(p) : 0;
}
static uint64_t rd_var(struct rd *r) {
  uint64_t v = 0;
  for (unsigned shift = 0; shift < 64; shift += 7) {
    uint8_t b = rd_u8(r);
    if (r->bad) return 0;
    if (shift == 63 && b > 1) break; /* more than 64 bits */
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
  r->bad = true;
  return 0;
}
static size_t rd_left(const struct rd *r) { return r->bad ? 0 : (size_t)(r->end - r->p); }

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* ---- days ------------------------------------------------------------------- */

int32_t tks_archive_day_of(int64_t ts) {
  int64_t d = ts / NS_PER_DAY;
  if (ts % NS_PER_DAY < 0) d--;
  return (int32_t)d;
}

int64_t tks_archive_day_start(int32_t day) {
  if (day <= tks_archive_day_of(INT64_MIN)) return INT64_MIN;
  if (day > tks_archive_day_of(INT64_MAX)) return INT64_MAX;
  return (int64_t)day * NS_PER_DAY;
}

int64_t tks_archive_day_end(int32_t day) {
  if (day >= tks_archive_day_of(INT64_MAX)) return INT64_MAX;
  if (day < tks_archive_day_of(INT64_MIN)) return INT64_MIN;
  return (int64_t)(day + 1) * NS_PER_DAY - 1;
}

/* Howard Hinnant's days_from_civil (civil_from_days: tks_civil_from_days). */
static int64_t days_from_civil(int y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned)(y - era * 400);
  unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

void tks_archive_day_name(int32_t day, char buf[static 11]) {
  int y;
  unsigned m, d;
  tks_civil_from_days(day, &y, &m, &d);
  unsigned yy = (unsigned)(y < 0 ? 0 : y) % 10000;
  unsigned v[8] = {yy / 1000, yy / 100 % 10, yy / 10 % 10, yy % 10, m / 10, m % 10, d / 10, d % 10};
  static const unsigned at[8] = {0, 1, 2, 3, 5, 6, 8, 9};
  for (int k = 0; k < 8; k++) buf[at[k]] = (char)('0' + v[k]);
  buf[4] = buf[7] = '-';
  buf[10] = '\0';
}

int tks_archive_day_parse(const char *s, size_t len, int32_t *day) {
  if (len != 10 || s[4] != '-' || s[7] != '-') return -EINVAL;
  unsigned v[3] = {0, 0, 0};
  static const unsigned at[3] = {0, 5, 8}, n[3] = {4, 2, 2};
  for (int k = 0; k < 3; k++)
    for (unsigned i = 0; i < n[k]; i++) {
      char c = s[at[k] + i];
      if (c < '0' || c > '9') return -EINVAL;
      v[k] = v[k] * 10 + (unsigned)(c - '0');
    }
  static const unsigned mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > mdays[v[1] - 1]) return -EINVAL;
  bool leap = (v[0] % 4 == 0 && v[0] % 100 != 0) || v[0] % 400 == 0;
  if (v[1] == 2 && v[2] == 29 && !leap) return -EINVAL;
  int64_t dd = days_from_civil((int)v[0], v[1], v[2]);
  if (dd < tks_archive_day_of(INT64_MIN) || dd > tks_archive_day_of(INT64_MAX)) return -EINVAL;
  *day = (int32_t)dd;
  return 0;
}

/* ---- columns ------------------------------------------------------------------
 *
 * An integer column of n values:
 *   u8 tag (bit 0: delta), [zigzag varint first value, if delta],
 *   zigzag varint min, varint gcd (>= 1), u8 bits,
 *   then the m quotients q = (s - min) / gcd, where s is the value (raw) or
 *   its difference to the one before (delta, m = n - 1), all arithmetic
 *   modulo 2^64: none when bits is 0; packed 1, 2 or 4 bits a value when
 *   bits <= 4; else as ceil(bits / 8) byte planes, the lowest byte of every
 *   value first (so that zstd sees like bytes together).
 * A float column: u8 tag 1 and u8 k, then an integer column of m with
 * value = m / 10^k exactly (prices with k decimals), or tag 0 and 8 byte
 * planes of each value's bits XOR the previous value's.
 * A bool column: n bits, packed.  A string column: varint count, that many
 * strings (varint length <= 255, bytes), then an integer column of indexes
 * into them.
 */

/* Scratch arrays of one block's encoding or decoding, grown as needed. */
struct scratch {
  int64_t *a, *b;
  uint64_t *q;
  uint32_t cap;
};

static int scratch_reserve(struct scratch *s, uint32_t n) {
  if (n <= s->cap) return 0;
  uint32_t cap = s->cap ? s->cap : 1024;
  while (cap < n) cap *= 2;
  int64_t *a = realloc(s->a, (size_t)cap * sizeof *a);
  if (a) s->a = a;
  int64_t *b = realloc(s->b, (size_t)cap * sizeof *b);
  if (b) s->b = b;
  uint64_t *q = realloc(s->q, (size_t)cap * sizeof *q);
  if (q) s->q = q;
  if (!a || !b || !q) return -ENOMEM;
  s->cap = cap;
  return 0;
}

static void scratch_free(struct scratch *s) {
  free(s->a);
  free(s->b);
  free(s->q);
  memset(s, 0, sizeof *s);
}

static unsigned bitlen(uint64_t x) { return x ? 64 - (unsigned)__builtin_clzll(x) : 0; }

static uint64_t gcd64(uint64_t a, uint64_t b) {
  while (b) {
    uint64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/* One way of coding a column: its min, gcd and bits, the quotients in q,
 * and what it costs (the quotients' bit lengths summed, as an estimate). */
struct ivar {
  int64_t min;
  uint64_t g;
  unsigned bits;
  uint64_t cost;
};

static void ivar_of(const int64_t *s, uint32_t m, uint64_t *q, struct ivar *iv) {
  *iv = (struct ivar){.g = 1};
  if (m == 0) return;
  int64_t mn = s[0];
  for (uint32_t i = 1; i < m; i++)
    if (s[i] < mn) mn = s[i];
  uint64_t g = 0;
  for (uint32_t i = 0; i < m; i++) {
    q[i] = (uint64_t)s[i] - (uint64_t)mn;
    if (g != 1) g = gcd64(q[i], g);
  }
  if (g == 0) g = 1;
  uint64_t mx = 0, cost = 0;
  for (uint32_t i = 0; i < m; i++) {
    if (g != 1) q[i] /= g;
    if (q[i] > mx) mx = q[i];
    cost += bitlen(q[i]);
  }
  *iv = (struct ivar){.min = mn, .g = g, .bits = bitlen(mx), .cost = cost};
}

static void pack(struct ob *o, const uint64_t *q, uint32_t m, unsigned bits) {
  if (bits == 0 || m == 0 || o->err) return;
  if (bits <= 4) {
    unsigned w = bits == 3 ? 4 : bits;
    size_t bytes = ((size_t)m * w + 7) / 8;
    if (tks_buf_reserve(o->b, bytes)) {
      o->err = -ENOMEM;
      return;
    }
    uint8_t *out = (uint8_t *)o->b->data + o->b->len;
    memset(out, 0, bytes);
    for (uint32_t i = 0; i < m; i++) {
      size_t bit = (size_t)i * w;
      out[bit / 8] |= (uint8_t)(q[i] << (bit % 8));
    }
    o->b->len += bytes;
    return;
  }
  unsigned nb = (bits + 7) / 8;
  if (tks_buf_reserve(o->b, (size_t)m * nb)) {
    o->err = -ENOMEM;
    return;
  }
  uint8_t *out = (uint8_t *)o->b->data + o->b->len;
  for (unsigned k = 0; k < nb; k++)
    for (uint32_t i = 0; i < m; i++) *out++ = (uint8_t)(q[i] >> (8 * k));
  o->b->len += (size_t)m * nb;
}

/* v[0..n): scratch b and q are used (sc reserved for n). */
static void enc_ints(struct ob *o, const int64_t *v, uint32_t n, struct scratch *sc) {
  struct ivar raw, del;
  bool delta = false;
  if (n >= 2) {
    for (uint32_t i = 1; i < n; i++) sc->b[i - 1] = (int64_t)((uint64_t)v[i] - (uint64_t)v[i - 1]);
    ivar_of(sc->b, n - 1, sc->q, &del);
    ivar_of(v, n, sc->q, &raw);
    delta = del.cost + 64 < raw.cost;
    if (delta) ivar_of(sc->b, n - 1, sc->q, &del); /* q holds the raw figures now */
  } else {
    ivar_of(v, n, sc->q, &raw);
  }
  const struct ivar *iv = delta ? &del : &raw;
  put_u8(o, delta);
  if (delta) put_var(o, zz(v[0]));
  put_var(o, zz(iv->min));
  put_var(o, iv->g);
  put_u8(o, (uint8_t)iv->bits);
  pack(o, sc->q, delta ? n - 1 : n, iv->bits);
}

static void dec_ints(struct rd *r, uint32_t n, int64_t *out) {
  uint8_t tag = rd_u8(r);
  bool delta = tag & 1;
  uint64_t first = delta ? (uint64_t)unzz(rd_var(r)) : 0;
  uint64_t mn = (uint64_t)unzz(rd_var(r)), g = rd_var(r);
  unsigned bits = rd_u8(r);
  if (r->bad || tag > 1 || g == 0 || bits > 64 || (delta && n == 0)) {
    r->bad = true;
    return;
  }
  uint32_t m = delta ? n - 1 : n;
  uint64_t *q = (uint64_t *)(void *)out; /* quotients in place, then values */
  if (bits == 0) {
    for (uint32_t i = 0; i < m; i++) q[i] = 0;
  } else if (bits <= 4) {
    unsigned w = bits == 3 ? 4 : bits;
    size_t bytes = ((size_t)m * w + 7) / 8;
    const uint8_t *p = rd_take(r, bytes);
    if (!p) return;
    for (uint32_t i = 0; i < m; i++) {
      size_t bit = (size_t)i * w;
      q[i] = (uint64_t)(p[bit / 8] >> (bit % 8)) & ((1u << w) - 1);
      if (q[i] >> bits) r->bad = true;
    }
    size_t used = (size_t)m * w;
    if (used % 8 && p[bytes - 1] >> (used % 8)) r->bad = true; /* padding bits set */
  } else {
    unsigned nb = (bits + 7) / 8;
    const uint8_t *p = rd_take(r, (size_t)m * nb);
    if (!p) return;
    for (uint32_t i = 0; i < m; i++) q[i] = 0;
    for (unsigned k = 0; k < nb; k++)
      for (uint32_t i = 0; i < m; i++) q[i] |= (uint64_t)*p++ << (8 * k);
    if (bits < 64)
      for (uint32_t i = 0; i < m; i++)
        if (q[i] >> bits) r->bad = true;
  }
  if (r->bad) return;
  if (!delta) {
    for (uint32_t i = 0; i < m; i++) out[i] = (int64_t)(mn + q[i] * g);
    return;
  }
  /* Back to front, so that q[i - 1] is read before out[i] overwrites q[i]. */
  uint64_t *u = (uint64_t *)(void *)out;
  for (uint32_t i = m; i > 0; i--) u[i] = mn + q[i - 1] * g;
  u[0] = first;
  for (uint32_t i = 1; i < n; i++) u[i] += u[i - 1];
}

static const double p10[16] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                               1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
#define DECIMALS_MAX 9 /* tried when encoding; up to 15 read */

static uint64_t dbits(double d) {
  uint64_t u;
  memcpy(&u, &d, 8);
  return u;
}
static double bitsd(uint64_t u) {
  double d;
  memcpy(&d, &u, 8);
  return d;
}

/* True when v is exactly m / 10^k for an integer m of at most 53 bits. */
static bool decimal_exact(double v, int k, int64_t *m) {
  if (!isfinite(v)) return false;
  double x = v * p10[k];
  if (!(fabs(x) < 9007199254740992.0)) return false;
  int64_t mi = llrint(x);
  if (dbits((double)mi / p10[k]) != dbits(v)) return false;
  *m = mi;
  return true;
}

/* v: the doubles' bits.  Scratch a, b and q are used. */
static void enc_floats(struct ob *o, const int64_t *v, uint32_t n, struct scratch *sc) {
  int k = 0;
  for (uint32_t i = 0; i < n && k <= DECIMALS_MAX; i++)
    while (k <= DECIMALS_MAX && !decimal_exact(bitsd((uint64_t)v[i]), k, &sc->a[i])) k++;
  bool ok = k <= DECIMALS_MAX;
  for (uint32_t i = 0; ok && i < n; i++) ok = decimal_exact(bitsd((uint64_t)v[i]), k, &sc->a[i]);
  if (ok) {
    put_u8(o, 1);
    put_u8(o, (uint8_t)k);
    enc_ints(o, sc->a, n, sc);
    return;
  }
  put_u8(o, 0);
  uint64_t prev = 0;
  for (uint32_t i = 0; i < n; i++) {
    sc->q[i] = (uint64_t)v[i] ^ prev;
    prev = (uint64_t)v[i];
  }
  pack(o, sc->q, n, 64);
}

static void dec_floats(struct rd *r, uint32_t n, int64_t *out) {
  uint8_t tag = rd_u8(r);
  if (tag == 1) {
    uint8_t k = rd_u8(r);
    if (k >= TKS_ARRAY_SIZE(p10)) r->bad = true;
    dec_ints(r, n, out);
    if (r->bad) return;
    for (uint32_t i = 0; i < n; i++) out[i] = (int64_t)dbits((double)out[i] / p10[k]);
    return;
  }
  if (tag != 0) {
    r->bad = true;
    return;
  }
  const uint8_t *p = rd_take(r, (size_t)n * 8);
  if (!p) return;
  uint64_t *u = (uint64_t *)(void *)out;
  for (uint32_t i = 0; i < n; i++) u[i] = 0;
  for (unsigned k = 0; k < 8; k++)
    for (uint32_t i = 0; i < n; i++) u[i] |= (uint64_t)*p++ << (8 * k);
  for (uint32_t i = 1; i < n; i++) u[i] ^= u[i - 1];
}

static void enc_bools(struct ob *o, const int64_t *v, uint32_t n, struct scratch *sc) {
  for (uint32_t i = 0; i < n; i++) sc->q[i] = v[i] != 0;
  pack(o, sc->q, n, 1);
}

static void dec_bools(struct rd *r, uint32_t n, int64_t *out) {
  size_t bytes = ((size_t)n + 7) / 8;
  const uint8_t *p = rd_take(r, bytes);
  if (!p) return;
  for (uint32_t i = 0; i < n; i++) out[i] = (p[i / 8] >> (i % 8)) & 1;
  if (n % 8 && p[bytes - 1] >> (n % 8)) r->bad = true;
}

/* A string dictionary read from a block: entries point into the payload. */
struct dict {
  uint32_t n;
  const uint8_t **s;
  uint8_t *len;
  uint32_t *live; /* id + 1 in the table of the column's type, 0: not yet interned */
};

static void dict_free(struct dict *d) {
  free(d->s);
  free(d->len);
  free(d->live);
  memset(d, 0, sizeof *d);
}

/* Reads a dictionary of at most max entries. */
static int dec_dict(struct rd *r, uint32_t max, struct dict *d) {
  uint64_t n = rd_var(r);
  if (r->bad || n > max || n > rd_left(r)) {
    r->bad = true;
    return 0;
  }
  d->n = (uint32_t)n;
  if (n == 0) return 0;
  d->s = malloc(n * sizeof *d->s);
  d->len = malloc(n);
  d->live = calloc(n, sizeof *d->live);
  if (!d->s || !d->len || !d->live) return -ENOMEM;
  for (uint32_t i = 0; i < n; i++) {
    uint64_t len = rd_var(r);
    if (len > TKS_SYMBOL_MAX_LEN) r->bad = true;
    d->s[i] = rd_take(r, (size_t)len);
    d->len[i] = (uint8_t)len;
    if (r->bad) return 0;
  }
  return 0;
}

/* ---- the index ---------------------------------------------------------------
 *
 * Decompressed: "TKSAIDX1", u32 version, i32 day, u32 part, u32 0, u64 ticks,
 * i64 first ts, i64 last ts; the schema (u8 mode, u8 length + name, u8
 * fields, u32 record size, then per field u8 length + name, u8 type, u8
 * required, u64 default, u32 offset, u32 size); u32 symbols, each u8
 * length + name, u64 count, i64 first ts, i64 last ts, u32 first block,
 * u32 blocks, sorted by name; u32 blocks, each u32 symbol, u32 count, i64
 * first ts, i64 last ts, u64 offset, u32 compressed length, u32 length,
 * u32 CRC32C, a symbol's blocks together and in the order they were cut.
 */

struct iblk {
  uint32_t sym, count;
  int64_t first, last;
  uint64_t off;
  uint32_t clen, raw_len, crc;
};

struct isym {
  const char *name; /* into the index's bytes (not NUL-terminated) */
  uint32_t len;
  uint64_t count;
  int64_t first, last;
  uint32_t first_block, nblocks;
};

struct index {
  int32_t day;
  uint32_t part;
  uint64_t ticks;
  int64_t first, last;
  struct tks_schema schema; /* the layout the part was written with */
  enum tks_mode mode;
  uint32_t nsym, nblk;
  struct isym *sym;
  struct iblk *blk;
  uint8_t *raw; /* the decompressed index, which the names point into */
};

static void index_free(struct index *ix) {
  if (!ix) return;
  free(ix->sym);
  free(ix->blk);
  free(ix->raw);
  free(ix);
}

#define SYM_ENTRY_MIN (1 + 1 + 8 + 8 + 8 + 4 + 4)
#define BLK_ENTRY (4 + 4 + 8 + 8 + 8 + 4 + 4 + 4)

static uint64_t dflt_bits(const struct tks_field *f) {
  switch (f->type) {
  case TKS_TYPE_TIMESTAMP:
  case TKS_TYPE_I64: return (uint64_t)f->dflt.i64;
  case TKS_TYPE_U32: return f->dflt.u32;
  case TKS_TYPE_F64: return dbits(f->dflt.f64);
  case TKS_TYPE_BOOL: return f->dflt.b;
  default: return 0; /* a string default is an id of the live tables: meaningless here */
  }
}

static void schema_encode(struct ob *o, const struct tks_schema *s, enum tks_mode mode) {
  size_t nl = strnlen(s->name, TKS_FIELD_NAME_MAX - 1);
  put_u8(o, (uint8_t)mode);
  put_u8(o, (uint8_t)nl);
  put(o, s->name, nl);
  put_u8(o, (uint8_t)s->nfields);
  put_u32(o, s->record_size);
  for (unsigned i = 0; i < s->nfields; i++) {
    const struct tks_field *f = &s->fields[i];
    size_t fl = strnlen(f->name, TKS_FIELD_NAME_MAX - 1);
    put_u8(o, (uint8_t)fl);
    put(o, f->name, fl);
    put_u8(o, (uint8_t)f->type);
    put_u8(o, f->required);
    put_u64(o, dflt_bits(f));
    put_u32(o, f->offset);
    put_u32(o, f->size);
  }
}

static int schema_decode(struct rd *r, struct tks_schema *s, enum tks_mode *mode, char *err,
                         size_t errlen) {
  memset(s, 0, sizeof *s);
  uint8_t m = rd_u8(r);
  uint8_t nl = rd_u8(r);
  const uint8_t *name = rd_take(r, nl);
  uint8_t nf = rd_u8(r);
  uint32_t rsize = rd_u32(r);
  if (r->bad || m >= TKS_MODE_COUNT || nl >= TKS_FIELD_NAME_MAX || nf == 0 ||
      nf > TKS_SCHEMA_MAX_FIELDS || rsize > TKS_RECORD_MAX) {
    errf(err, errlen, "bad schema header");
    return -EBADMSG;
  }
  *mode = (enum tks_mode)m;
  memcpy(s->name, name, nl);
  s->nfields = nf;
  uint32_t off[TKS_SCHEMA_MAX_FIELDS], size[TKS_SCHEMA_MAX_FIELDS];
  for (unsigned i = 0; i < nf; i++) {
    struct tks_field *f = &s->fields[i];
    uint8_t fl = rd_u8(r);
    const uint8_t *fn = rd_take(r, fl);
    uint8_t type = rd_u8(r), req = rd_u8(r);
    uint64_t d = rd_u64(r);
    off[i] = rd_u32(r);
    size[i] = rd_u32(r);
    if (r->bad || fl == 0 || fl >= TKS_FIELD_NAME_MAX || memchr(fn, 0, fl) ||
        type >= TKS_TYPE__COUNT || req > 1) {
      errf(err, errlen, "bad schema field %u", i + 1);
      return -EBADMSG;
    }
    memcpy(f->name, fn, fl);
    f->type = (enum tks_type)type;
    f->required = req;
    switch (f->type) {
    case TKS_TYPE_TIMESTAMP:
    case TKS_TYPE_I64: f->dflt.i64 = (int64_t)d; break;
    case TKS_TYPE_U32: f->dflt.u32 = (uint32_t)d; break;
    case TKS_TYPE_F64: f->dflt.f64 = bitsd(d); break;
    case TKS_TYPE_BOOL: f->dflt.b = d != 0; break;
    default: break;
    }
  }
  char why[160];
  if (tks_schema_layout(s, why, sizeof why)) {
    errf(err, errlen, "bad schema: %s", why);
    return -EBADMSG;
  }
  /* The layout it was written with: sizes as the types say, each slot
   * aligned, inside the record, no two overlapping. */
  for (unsigned i = 0; i < nf; i++) {
    if (size[i] != s->fields[i].size || off[i] % size[i] || off[i] + size[i] > rsize) {
      errf(err, errlen, "bad layout of schema field '%s'", s->fields[i].name);
      return -EBADMSG;
    }
    for (unsigned j = 0; j < i; j++)
      if (off[j] < off[i] + size[i] && off[i] < off[j] + size[j]) {
        errf(err, errlen, "schema fields '%s' and '%s' overlap", s->fields[j].name,
             s->fields[i].name);
        return -EBADMSG;
      }
  }
  for (unsigned i = 0; i < nf; i++) s->fields[i].offset = off[i];
  s->record_size = rsize;
  return 0;
}

/* Parses a decompressed index (the caller keeps raw alive as long as ix). */
static int index_parse(const uint8_t *raw, size_t len, int32_t day, uint32_t part,
                       uint64_t data_end, struct index *ix, char *err, size_t errlen) {
  struct rd r = {raw, raw + len, false};
  const uint8_t *magic = rd_take(&r, 8);
  uint32_t version = rd_u32(&r);
  ix->day = (int32_t)rd_u32(&r);
  ix->part = rd_u32(&r);
  uint32_t flags = rd_u32(&r);
  ix->ticks = rd_u64(&r);
  ix->first = (int64_t)rd_u64(&r);
  ix->last = (int64_t)rd_u64(&r);
  if (r.bad || memcmp(magic, INDEX_MAGIC, 8) || version != VERSION || flags) {
    errf(err, errlen, "index: bad header");
    return -EBADMSG;
  }
  if (ix->day != day || ix->part != part) {
    errf(err, errlen,
         "index: of day %" PRId32 " part %" PRIu32 ", found in day %" PRId32 " part %" PRIu32,
         ix->day, ix->part, day, part);
    return -EBADMSG;
  }
  int rc = schema_decode(&r, &ix->schema, &ix->mode, err, errlen);
  if (rc) return rc;
  int64_t lo = tks_archive_day_start(day), hi = tks_archive_day_end(day);
  if (ix->ticks == 0 || ix->first > ix->last || ix->first < lo || ix->last > hi) {
    errf(err, errlen, "index: bad totals");
    return -EBADMSG;
  }
  ix->nsym = rd_u32(&r);
  if (r.bad || ix->nsym == 0 || ix->nsym > rd_left(&r) / SYM_ENTRY_MIN) {
    errf(err, errlen, "index: bad symbol count %" PRIu32, ix->nsym);
    return -EBADMSG;
  }
  ix->sym = calloc(ix->nsym, sizeof *ix->sym);
  if (!ix->sym) return -ENOMEM;
  uint64_t ticks = 0, blocks = 0;
  int64_t first = INT64_MAX, last = INT64_MIN;
  for (uint32_t i = 0; i < ix->nsym; i++) {
    struct isym *s = &ix->sym[i];
    s->len = rd_u8(&r);
    s->name = (const char *)rd_take(&r, s->len);
    s->count = rd_u64(&r);
    s->first = (int64_t)rd_u64(&r);
    s->last = (int64_t)rd_u64(&r);
    s->first_block = rd_u32(&r);
    s->nblocks = rd_u32(&r);
    if (r.bad || s->len == 0 || s->count == 0 || s->first > s->last || s->first < ix->first ||
        s->last > ix->last || s->first_block != blocks || s->nblocks == 0 ||
        s->nblocks > s->count) {
      errf(err, errlen, "index: bad symbol %" PRIu32, i);
      return -EBADMSG;
    }
    if (i > 0) {
      const struct isym *p = &ix->sym[i - 1];
      int c = memcmp(p->name, s->name, p->len < s->len ? p->len : s->len);
      if (c > 0 || (c == 0 && p->len >= s->len)) {
        errf(err, errlen, "index: symbols out of order at %" PRIu32, i);
        return -EBADMSG;
      }
    }
    ticks += s->count;
    blocks += s->nblocks;
    if (s->first < first) first = s->first;
    if (s->last > last) last = s->last;
  }
  ix->nblk = rd_u32(&r);
  if (r.bad || ix->nblk != blocks || ticks != ix->ticks || first != ix->first || last != ix->last ||
      (uint64_t)ix->nblk * BLK_ENTRY != rd_left(&r)) {
    errf(err, errlen, "index: the symbols do not add up to the totals");
    return -EBADMSG;
  }
  ix->blk = calloc(ix->nblk, sizeof *ix->blk);
  if (!ix->blk) return -ENOMEM;
  for (uint32_t si = 0; si < ix->nsym; si++) {
    const struct isym *s = &ix->sym[si];
    uint64_t count = 0;
    int64_t bf = INT64_MAX, bl = INT64_MIN;
    for (uint32_t k = 0; k < s->nblocks; k++) {
      struct iblk *b = &ix->blk[s->first_block + k];
      b->sym = rd_u32(&r);
      b->count = rd_u32(&r);
      b->first = (int64_t)rd_u64(&r);
      b->last = (int64_t)rd_u64(&r);
      b->off = rd_u64(&r);
      b->clen = rd_u32(&r);
      b->raw_len = rd_u32(&r);
      b->crc = rd_u32(&r);
      if (r.bad || b->sym != si || b->count == 0 || b->count > TKS_ARCHIVE_MAX_BLOCK_TICKS ||
          b->first > b->last || b->off < HEADER_SIZE || b->clen == 0 || b->off > data_end ||
          b->clen > data_end - b->off || b->raw_len == 0 ||
          b->raw_len > TKS_ARCHIVE_MAX_BLOCK_RAW || b->clen > ZSTD_compressBound(b->raw_len)) {
        errf(err, errlen, "index: bad block %" PRIu32 " of symbol '%.*s'", k, (int)s->len, s->name);
        return -EBADMSG;
      }
      count += b->count;
      if (b->first < bf) bf = b->first;
      if (b->last > bl) bl = b->last;
    }
    if (count != s->count || bf != s->first || bl != s->last) {
      errf(err, errlen, "index: the blocks of symbol '%.*s' do not add up", (int)s->len, s->name);
      return -EBADMSG;
    }
  }
  return 0;
}

/* The first symbol of ix named name, or NULL. */
static const struct isym *index_find(const struct index *ix, const char *name, size_t len) {
  uint32_t lo = 0, hi = ix->nsym;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    const struct isym *s = &ix->sym[mid];
    int c = memcmp(s->name, name, s->len < len ? s->len : len);
    if (c == 0) c = s->len < len ? -1 : s->len > len;
    if (c == 0) return s;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

/* ---- blocks ------------------------------------------------------------------
 *
 * Decompressed: varint ticks (1..65536), u8 flags (bit 0: some ticks are not
 * slotted), [a kind byte a tick, if bit 0: 0 slotted, 1 record + overflow
 * map, 2 dynamic object], the ts column (every tick, sorted), then one
 * column per field of the schema in slot order but the ts and symbol fields
 * (the block's symbol), over the ticks with a record; then, if bit 0, the
 * maps: a dictionary of field names, one of strings (SYM and ISTR values),
 * and per tick that is not slotted, in order, varint fields, each varint
 * name, u8 value type (enum tks_vtype, or M_*), the value (BOOL u8, INT
 * zigzag varint, UINT varint, F64 8 bytes, STR varint length + bytes, SYM
 * and ISTR varint string, M_DECIMAL u8 k + zigzag varint m for m / 10^k,
 * NIL, M_TICK_TS and M_TICK_SYMBOL nothing).  An overflow map holds the
 * undeclared fields; a dynamic object all of them, in its order, its ts
 * and symbol as M_TICK_TS and M_TICK_SYMBOL when they are the tick's.
 */

struct blk {
  const struct tks_schema *schema; /* the part's */
  uint32_t n, r;                   /* ticks, of which with a record */
  int64_t *ts;
  uint8_t *kind;                       /* NULL: all slotted */
  uint32_t *row;                       /* tick -> its record row, or map number for a dynamic one */
  uint32_t *mapi;                      /* tick -> map number (kinds 1 and 2) */
  int64_t *col[TKS_SCHEMA_MAX_FIELDS]; /* r values (float bits, bools 0/1, dictionary indexes) */
  struct dict sdict[TKS_SCHEMA_MAX_FIELDS];
  struct dict names, strs;
  uint32_t nmaps;
  uint32_t *moff; /* offset of each map in raw */
  uint8_t *raw;   /* the payload (owned) */
  size_t raw_len;
};

static void blk_free(struct blk *b) {
  if (!b) return;
  free(b->ts);
  free(b->kind);
  free(b->row);
  free(b->mapi);
  for (unsigned i = 0; i < TKS_SCHEMA_MAX_FIELDS; i++) {
    free(b->col[i]);
    dict_free(&b->sdict[i]);
  }
  dict_free(&b->names);
  dict_free(&b->strs);
  free(b->moff);
  free(b->raw);
  free(b);
}

/* Checks one map at r: field count, names (each once), types and values. */
static void check_map(struct rd *r, const struct blk *b, uint32_t *seen, uint32_t stamp) {
  uint64_t nf = rd_var(r);
  if (nf == 0 || nf > TKS_ARCHIVE_MAX_OBJECT_FIELDS) r->bad = true;
  for (uint64_t k = 0; k < nf && !r->bad; k++) {
    uint64_t name = rd_var(r);
    uint8_t type = rd_u8(r);
    if (r->bad || name >= b->names.n || seen[name] == stamp ||
        (type > TKS_V__LAST && type != M_TICK_TS && type != M_TICK_SYMBOL && type != M_DECIMAL)) {
      r->bad = true;
      return;
    }
    seen[name] = stamp;
    switch (type) {
    case M_TICK_TS:
    case M_TICK_SYMBOL:
    case TKS_V_NIL: break;
    case M_DECIMAL:
      if (rd_u8(r) >= TKS_ARRAY_SIZE(p10)) r->bad = true;
      rd_var(r);
      break;
    case TKS_V_BOOL:
      if (rd_u8(r) > 1) r->bad = true;
      break;
    case TKS_V_INT:
    case TKS_V_UINT: rd_var(r); break;
    case TKS_V_F64: rd_take(r, 8); break;
    case TKS_V_STR: {
      uint64_t len = rd_var(r);
      if (len > MAX_MAP_STRING) r->bad = true;
      rd_take(r, (size_t)len);
      break;
    }
    case TKS_V_SYM:
    case TKS_V_ISTR:
      if (rd_var(r) >= b->strs.n) r->bad = true;
      break;
    }
  }
}

/* Decodes a payload (taken over: freed with the block, or here on error). */
static int blk_decode(const struct tks_schema *ds, uint8_t *raw, size_t len, uint32_t want,
                      struct blk **out, char *err, size_t errlen) {
  struct blk *b = calloc(1, sizeof *b);
  if (!b) {
    free(raw);
    return -ENOMEM;
  }
  b->schema = ds;
  b->raw = raw;
  b->raw_len = len;
  struct rd r = {raw, raw + len, false};
  int rc = -ENOMEM;
  uint64_t n = rd_var(&r);
  uint8_t flags = rd_u8(&r);
  if (r.bad || n == 0 || n > TKS_ARCHIVE_MAX_BLOCK_TICKS || (want && n != want) || flags > 1) {
    errf(err, errlen, "block: bad header");
    goto bad;
  }
  b->n = (uint32_t)n;
  b->row = malloc(n * sizeof *b->row);
  b->mapi = malloc(n * sizeof *b->mapi);
  b->ts = malloc(n * sizeof *b->ts);
  if (!b->row || !b->mapi || !b->ts) goto fail;
  if (flags & 1) {
    const uint8_t *k = rd_take(&r, b->n);
    if (!k) {
      errf(err, errlen, "block: kinds cut short");
      goto bad;
    }
    b->kind = malloc(n);
    if (!b->kind) goto fail;
    memcpy(b->kind, k, n);
  }
  for (uint32_t i = 0; i < b->n; i++) {
    uint8_t k = b->kind ? b->kind[i] : K_SLOTTED;
    if (k > K_DYNAMIC) {
      errf(err, errlen, "block: tick %" PRIu32 " of unknown kind %u", i, k);
      goto bad;
    }
    b->row[i] = k == K_DYNAMIC ? 0 : b->r++;
    b->mapi[i] = k == K_SLOTTED ? 0 : b->nmaps++;
  }
  if (b->kind && b->nmaps == 0) {
    errf(err, errlen, "block: kinds given but every tick slotted");
    goto bad;
  }
  dec_ints(&r, b->n, b->ts);
  for (uint32_t i = 1; i < b->n && !r.bad; i++)
    if (b->ts[i] < b->ts[i - 1]) {
      errf(err, errlen, "block: ts out of order at tick %" PRIu32, i);
      goto bad;
    }
  if (r.bad) {
    errf(err, errlen, "block: bad ts column");
    goto bad;
  }
  for (unsigned fi = 0; fi < ds->nfields; fi++) {
    if ((int)fi == ds->ts_field || (int)fi == ds->symbol_field) continue;
    const struct tks_field *f = &ds->fields[fi];
    int64_t *v = b->col[fi] = malloc(((size_t)b->r + 1) * sizeof *v);
    if (!v) goto fail;
    switch (f->type) {
    case TKS_TYPE_TIMESTAMP:
    case TKS_TYPE_I64: dec_ints(&r, b->r, v); break;
    case TKS_TYPE_U32:
      dec_ints(&r, b->r, v);
      for (uint32_t i = 0; i < b->r && !r.bad; i++)
        if (v[i] < 0 || v[i] > UINT32_MAX) r.bad = true;
      break;
    case TKS_TYPE_F64: dec_floats(&r, b->r, v); break;
    case TKS_TYPE_BOOL: dec_bools(&r, b->r, v); break;
    case TKS_TYPE_SYMBOL:
    case TKS_TYPE_STRING: {
      struct dict *d = &b->sdict[fi];
      if (dec_dict(&r, b->r, d)) goto fail;
      if (d->n == 0 && b->r) r.bad = true;
      dec_ints(&r, b->r, v);
      for (uint32_t i = 0; i < b->r && !r.bad; i++)
        if (v[i] < 0 || v[i] >= d->n) r.bad = true;
      break;
    }
    case TKS_TYPE__COUNT: r.bad = true; break;
    }
    if (r.bad) {
      errf(err, errlen, "block: bad column '%s'", f->name);
      goto bad;
    }
  }
  if (b->nmaps) {
    if (dec_dict(&r, UINT32_MAX, &b->names) || dec_dict(&r, UINT32_MAX, &b->strs)) goto fail;
    for (uint32_t i = 0; i < b->names.n && !r.bad; i++)
      if (b->names.len[i] == 0) r.bad = true; /* no object has a key "" */
    if (r.bad) {
      errf(err, errlen, "block: bad dictionaries");
      goto bad;
    }
    b->moff = malloc(b->nmaps * sizeof *b->moff);
    uint32_t *seen = calloc(b->names.n + 1, sizeof *seen);
    if (!b->moff || !seen) {
      free(seen);
      goto fail;
    }
    for (uint32_t m = 0; m < b->nmaps && !r.bad; m++) {
      b->moff[m] = (uint32_t)(r.p - raw);
      check_map(&r, b, seen, m + 1);
    }
    free(seen);
    if (r.bad) {
      errf(err, errlen, "block: bad map");
      goto bad;
    }
  }
  if (r.p != r.end) {
    errf(err, errlen, "block: %zu bytes after the last column", (size_t)(r.end - r.p));
    goto bad;
  }
  *out = b;
  return 0;
bad:
  rc = -EBADMSG;
fail:
  if (rc == -ENOMEM) errf(err, errlen, "block: out of memory");
  blk_free(b);
  return rc;
}

/* ---- files and directories ----------------------------------------------------- */

static int write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t w = write(fd, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

static int pread_all(int fd, void *p, size_t n, uint64_t off) {
  char *c = p;
  while (n) {
    ssize_t r = pread(fd, c, n, (off_t)off);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (r == 0) return -EBADMSG; /* the file is shorter than its index says */
    c += r;
    n -= (size_t)r;
    off += (uint64_t)r;
  }
  return 0;
}

/* The directory a path is in ("." for a bare name). */
static void parent_of(const char *path, char *out, size_t n) {
  const char *slash = strrchr(path, '/');
  if (!slash)
    snprintf(out, n, ".");
  else if (slash == path)
    snprintf(out, n, "/");
  else
    snprintf(out, n, "%.*s", (int)(slash - path), path);
}

/* Removes dir and the files in it (no subdirectories are expected). */
static int remove_dir(const char *dir, uint64_t *bytes) {
  DIR *d = opendir(dir);
  if (!d) return errno == ENOENT ? 0 : -errno;
  int rc = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    struct stat st;
    if (bytes && lstat(path, &st) == 0) *bytes += (uint64_t)st.st_size;
    if (unlink(path) < 0 && errno != ENOENT && !rc) rc = -errno;
  }
  closedir(d);
  if (rmdir(dir) < 0 && errno != ENOENT && !rc) rc = -errno;
  return rc;
}

/* "YYYY-MM-DD.tmp-<pid>" or ".del-<pid>": the pid, or 0 if name is not one. */
static long stale_pid(const char *name) {
  size_t n = strlen(name);
  if (n < 16 || name[10] != '.' || (strncmp(name + 11, "tmp-", 4) && strncmp(name + 11, "del-", 4)))
    return 0;
  int32_t day;
  if (tks_archive_day_parse(name, 10, &day)) return 0;
  long pid = 0;
  for (const char *p = name + 15; *p; p++) {
    if (*p < '0' || *p > '9' || pid > 99999999) return 0;
    pid = pid * 10 + (*p - '0');
  }
  return pid;
}

/* Removes the temporary and half-deleted directories of processes that
 * are gone. */
static void sweep_stale(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    long pid = stale_pid(e->d_name);
    if (pid <= 0 || pid == (long)getpid()) continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to tell */
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    remove_dir(path, NULL);
  }
  closedir(d);
}

/* "part-000012.tka": 12, or 0 if name is not a part's. */
static uint32_t part_number(const char *name) {
  if (strncmp(name, "part-", 5)) return 0;
  uint64_t v = 0;
  const char *p = name + 5;
  if (*p < '0' || *p > '9') return 0;
  for (; *p >= '0' && *p <= '9'; p++) {
    v = v * 10 + (uint64_t)(*p - '0');
    if (v > UINT32_MAX) return 0;
  }
  return strcmp(p, ".tka") == 0 ? (uint32_t)v : 0;
}

static void part_name(uint32_t part, char buf[PART_NAME_MAX]) {
  snprintf(buf, PART_NAME_MAX, "part-%06" PRIu32 ".tka", part);
}

/* The highest part number in dir (0 when none or no dir). */
static uint32_t max_part(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  uint32_t mx = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    uint32_t p = part_number(e->d_name);
    if (p > mx) mx = p;
  }
  closedir(d);
  return mx;
}

static void header_encode(uint8_t h[HEADER_SIZE], int32_t day, uint32_t part) {
  memset(h, 0, HEADER_SIZE);
  memcpy(h, FILE_MAGIC, 8);
  le32(h + 8, VERSION);
  le32(h + 12, (uint32_t)day);
  le32(h + 16, part);
  le32(h + 28, tks_crc32c(0, h, 28));
}

struct footer {
  uint64_t index_off;
  uint32_t index_clen, index_raw, index_crc, nsym;
  uint64_t ticks;
  int64_t first, last;
  uint32_t nblk;
  int32_t day;
  uint32_t part;
  uint64_t seal;
};

static void footer_encode(uint8_t f[FOOTER_SIZE], const struct footer *ft) {
  memset(f, 0, FOOTER_SIZE);
  le64(f, ft->index_off);
  le32(f + 8, ft->index_clen);
  le32(f + 12, ft->index_raw);
  le32(f + 16, ft->index_crc);
  le32(f + 20, ft->nsym);
  le64(f + 24, ft->ticks);
  le64(f + 32, (uint64_t)ft->first);
  le64(f + 40, (uint64_t)ft->last);
  le32(f + 48, ft->nblk);
  le32(f + 52, (uint32_t)ft->day);
  le32(f + 56, ft->part);
  le64(f + 60, ft->seal);
  memcpy(f + FOOTER_MAGIC_AT, FOOTER_MAGIC, 8);
  le32(f + FOOTER_CRC_AT, tks_crc32c(0, f, FOOTER_CRC_AT));
}

/* Checks a part's header and footer against its place (day, part) and size. */
static int ends_check(const uint8_t h[HEADER_SIZE], const uint8_t f[FOOTER_SIZE], int32_t day,
                      uint32_t part, uint64_t size, struct footer *ft, char *err, size_t errlen) {
  if (memcmp(h, FILE_MAGIC, 8) || get32(h + 28) != tks_crc32c(0, h, 28) ||
      get32(h + 8) != VERSION) {
    errf(err, errlen, "bad file header");
    return -EBADMSG;
  }
  if ((int32_t)get32(h + 12) != day || get32(h + 16) != part) {
    errf(err, errlen, "the header names day %" PRId32 " part %" PRIu32, (int32_t)get32(h + 12),
         get32(h + 16));
    return -EBADMSG;
  }
  if (memcmp(f + FOOTER_MAGIC_AT, FOOTER_MAGIC, 8) ||
      get32(f + FOOTER_CRC_AT) != tks_crc32c(0, f, FOOTER_CRC_AT)) {
    errf(err, errlen, "bad footer");
    return -EBADMSG;
  }
  *ft = (struct footer){.index_off = get64(f),
                        .index_clen = get32(f + 8),
                        .index_raw = get32(f + 12),
                        .index_crc = get32(f + 16),
                        .nsym = get32(f + 20),
                        .ticks = get64(f + 24),
                        .first = (int64_t)get64(f + 32),
                        .last = (int64_t)get64(f + 40),
                        .nblk = get32(f + 48),
                        .day = (int32_t)get32(f + 52),
                        .part = get32(f + 56),
                        .seal = get64(f + 60)};
  if (ft->day != day || ft->part != part || ft->index_off < HEADER_SIZE || ft->index_off > size ||
      size - ft->index_off != (uint64_t)ft->index_clen + FOOTER_SIZE || ft->index_clen == 0 ||
      ft->index_raw == 0 || ft->index_raw > TKS_ARCHIVE_MAX_INDEX_RAW ||
      ft->index_clen > ZSTD_compressBound(ft->index_raw) || ft->ticks == 0 || ft->nsym == 0 ||
      ft->nblk == 0 || ft->first > ft->last || ft->first < tks_archive_day_start(day) ||
      ft->last > tks_archive_day_end(day)) {
    errf(err, errlen, "the footer does not fit the file");
    return -EBADMSG;
  }
  return 0;
}

/* Decompresses one frame src[0..clen) of exactly raw_len bytes (checked
 * against the CRC first) into a new buffer.  0, -EBADMSG or -ENOMEM. */
static int unzstd(ZSTD_DCtx *dctx, const void *src, size_t clen, uint32_t crc, size_t raw_len,
                  uint8_t **out, char *err, size_t errlen) {
  if (tks_crc32c(0, src, clen) != crc) {
    errf(err, errlen, "CRC mismatch");
    return -EBADMSG;
  }
  unsigned long long cs = ZSTD_getFrameContentSize(src, clen);
  if (cs != raw_len || ZSTD_findFrameCompressedSize(src, clen) != clen) {
    errf(err, errlen, "zstd frame does not match its index entry");
    return -EBADMSG;
  }
  uint8_t *dst = malloc(raw_len);
  if (!dst) return -ENOMEM;
  size_t got = ZSTD_decompressDCtx(dctx, dst, raw_len, src, clen);
  if (ZSTD_isError(got) || got != raw_len) {
    errf(err, errlen, "zstd: %s", ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short frame");
    free(dst);
    return -EBADMSG;
  }
  *out = dst;
  return 0;
}

/* ---- the writer ----------------------------------------------------------------- */

/* A symbol's ticks not yet in a block. */
struct pend {
  uint32_t n, cap;
  int64_t *ts;
  uint8_t *kind;
  char *recs;     /* n records of the writer's schema, ids the writer's own */
  uint32_t *xoff; /* cap + 1: tick i's map is x[xoff[i], xoff[i + 1]) */
  struct tks_buf x;
  uint32_t maps;  /* ticks with a map (not slotted) */
  uint64_t bytes; /* what it holds, as counted in the writer's held */
};

struct wsym {
  uint32_t id; /* the symbol's name in the writer's table */
  uint32_t nblocks;
  uint64_t count;
  int64_t first, last;
  struct pend p;
};

enum { T_SYMBOLS, T_STRINGS, T_NAMES, T__COUNT };

struct tks_archive_writer {
  char dir[PATH_MAX], tmp[PATH_MAX], file[PATH_MAX + PART_NAME_MAX];
  char day_name[11];
  int32_t day;
  int64_t lo, hi;
  struct tks_schema schema;
  enum tks_mode mode;
  struct tks_archive_tables t;
  int level;
  uint32_t block_ticks;
  uint64_t budget;
  uint64_t seal; /* into the footer */
  int fd;
  uint64_t off;       /* file offset of the next byte written */
  struct tks_buf out; /* file bytes not yet written */
  ZSTD_CCtx *cctx;
  struct tks_symtab *own;  /* every string the ticks use, by the writer's ids */
  uint32_t *map[T__COUNT]; /* live id -> own id + 1 */
  uint32_t map_cap[T__COUNT];
  uint32_t *sym_of; /* live symbol id -> wsym + 1 */
  uint32_t sym_of_cap;
  struct wsym *syms;
  uint32_t nsyms, syms_cap;
  struct iblk *blk;
  uint32_t nblk, blk_cap;
  uint64_t held, ticks;
  int64_t first, last;
  uint32_t ts_name, sym_name; /* ids in t.names of the ts and symbol fields; 0 not looked up */
  int err;                    /* sticky */
  char errmsg[256];
  /* Encoding scratch. */
  struct tks_buf raw, comp;
  struct scratch sc;
  int64_t *vals;
  uint32_t *perm, *perm2, vcap;
  uint32_t *stamp[2], *slot[2], stamp_cap, gen[2];
  uint32_t *dlist[2], dlist_cap[2];
  size_t segs[TKS_SCHEMA_MAX_FIELDS + 4];
  unsigned nsegs;
};

static int werr(struct tks_archive_writer *w, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int werr(struct tks_archive_writer *w, int rc, const char *fmt, ...) {
  if (!w->err) {
    w->err = rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->errmsg, sizeof w->errmsg, fmt, ap);
    va_end(ap);
  }
  return rc;
}

static int grow(void **p, uint32_t *cap, uint32_t want, size_t size) {
  if (want <= *cap) return 0;
  uint64_t c = *cap ? *cap : 16;
  while (c < want) c *= 2;
  if (c > UINT32_MAX) c = UINT32_MAX;
  void *np = realloc(*p, (size_t)c * size);
  if (!np) return -ENOMEM;
  memset((char *)np + (size_t)*cap * size, 0, (size_t)(c - *cap) * size);
  *p = np;
  *cap = (uint32_t)c;
  return 0;
}

/* The writer's id of live id `id` of table k. */
static int own_id(struct tks_archive_writer *w, int k, uint32_t id, uint32_t *out) {
  if (id < w->map_cap[k] && w->map[k][id]) {
    *out = w->map[k][id] - 1;
    return 0;
  }
  const struct tks_symtab *t = k == T_SYMBOLS   ? w->t.symbols
                               : k == T_STRINGS ? w->t.strings
                                                : w->t.names;
  size_t len;
  const char *s = t ? tks_symtab_name(t, id, &len) : NULL;
  if (!s) return -EINVAL;
  int rc = tks_symtab_intern(w->own, s, len, out);
  if (rc) return rc == -ENOMEM ? rc : -EINVAL;
  if (id == UINT32_MAX || grow((void **)&w->map[k], &w->map_cap[k], id + 1, sizeof(uint32_t)))
    return -ENOMEM;
  w->map[k][id] = *out + 1;
  return 0;
}

static int wsym_of(struct tks_archive_writer *w, uint32_t live, uint32_t *si) {
  if (live < w->sym_of_cap && w->sym_of[live]) {
    *si = w->sym_of[live] - 1;
    return 0;
  }
  uint32_t id;
  int rc = own_id(w, T_SYMBOLS, live, &id);
  if (rc) return rc;
  if (id == 0) return -EINVAL; /* no series has the empty symbol */
  if (live == UINT32_MAX || grow((void **)&w->sym_of, &w->sym_of_cap, live + 1, sizeof(uint32_t)) ||
      grow((void **)&w->syms, &w->syms_cap, w->nsyms + 1, sizeof *w->syms))
    return -ENOMEM;
  /* Two live ids of one name cannot happen (one table); one wsym a name. */
  *si = w->nsyms++;
  w->syms[*si] = (struct wsym){.id = id, .first = INT64_MAX, .last = INT64_MIN};
  w->sym_of[live] = *si + 1;
  return 0;
}

#define PEND_TICK_BYTES(w) (8 + 1 + 4 + (uint64_t)(w)->schema.record_size)

static int pend_reserve(struct tks_archive_writer *w, struct pend *p) {
  if (p->n < p->cap) return 0;
  uint32_t cap = p->cap ? p->cap * 2 : 64;
  int64_t *ts = realloc(p->ts, (size_t)cap * sizeof *ts);
  if (ts) p->ts = ts;
  uint8_t *kind = realloc(p->kind, cap);
  if (kind) p->kind = kind;
  char *recs = realloc(p->recs, (size_t)cap * w->schema.record_size);
  if (recs) p->recs = recs;
  uint32_t *xoff = realloc(p->xoff, ((size_t)cap + 1) * sizeof *xoff);
  if (xoff) p->xoff = xoff;
  if (!ts || !kind || !recs || !xoff) return -ENOMEM;
  if (p->cap == 0) p->xoff[0] = 0;
  p->cap = cap;
  return 0;
}

static void pend_clear(struct pend *p) {
  free(p->ts);
  free(p->kind);
  free(p->recs);
  free(p->xoff);
  tks_buf_finish(&p->x);
  memset(p, 0, sizeof *p);
}

/* An object's entries in the writer's form: varint count, then each
 * varint name (own id), u8 type, value (SYM, ISTR as own ids). */
static int obj_encode(struct tks_archive_writer *w, const struct tks_dynobj *o, bool dynamic,
                      int64_t ts, uint32_t sym, struct tks_buf *x) {
  struct ob ob = {x, 0};
  const struct tks_dyn_slot *e = tks_dynobj_entries(o);
  put_var(&ob, o->count);
  for (unsigned i = 0; i < o->count; i++) {
    uint32_t name, id;
    int rc = own_id(w, T_NAMES, e[i].key, &name);
    if (rc) return rc;
    if (name == 0) return -EINVAL;
    put_var(&ob, name);
    /* A dynamic object's own ts and symbol are the block's columns. */
    if (dynamic && e[i].key == w->ts_name && e[i].type == TKS_V_INT && e[i].v.i == ts) {
      put_u8(&ob, M_TICK_TS);
      continue;
    }
    if (dynamic && e[i].key == w->sym_name && e[i].type == TKS_V_SYM && e[i].v.id == sym) {
      put_u8(&ob, M_TICK_SYMBOL);
      continue;
    }
    int64_t m;
    int k = 0;
    if (e[i].type == TKS_V_F64) {
      while (k <= DECIMALS_MAX && !decimal_exact(e[i].v.f, k, &m)) k++;
      if (k <= DECIMALS_MAX) {
        put_u8(&ob, M_DECIMAL);
        put_u8(&ob, (uint8_t)k);
        put_var(&ob, zz(m));
        continue;
      }
    }
    put_u8(&ob, e[i].type);
    switch ((enum tks_vtype)e[i].type) {
    case TKS_V_NIL: break;
    case TKS_V_BOOL: put_u8(&ob, e[i].v.b); break;
    case TKS_V_INT: put_var(&ob, zz(e[i].v.i)); break;
    case TKS_V_UINT: put_var(&ob, e[i].v.u); break;
    case TKS_V_F64: put_u64(&ob, dbits(e[i].v.f)); break;
    case TKS_V_STR:
      put_var(&ob, e[i].len);
      put(&ob, tks_dynobj_str(o, &e[i]), e[i].len);
      break;
    case TKS_V_SYM:
    case TKS_V_ISTR:
      rc = own_id(w, e[i].type == TKS_V_SYM ? T_SYMBOLS : T_STRINGS, e[i].v.id, &id);
      if (rc) return rc;
      put_var(&ob, id);
      break;
    default: return -EINVAL;
    }
  }
  return ob.err;
}

static int next_gen(struct tks_archive_writer *w, int k) {
  if (++w->gen[k] == 0) {
    memset(w->stamp[k], 0, (size_t)w->stamp_cap * sizeof(uint32_t));
    w->gen[k] = 1;
  }
  return (int)w->gen[k];
}

/* Adds own id to dictionary k of the current generation; its index. */
static int dict_add(struct tks_archive_writer *w, int k, uint32_t id, uint32_t *nd, uint32_t *idx) {
  if (w->stamp[k][id] == w->gen[k]) {
    *idx = w->slot[k][id];
    return 0;
  }
  if (grow((void **)&w->dlist[k], &w->dlist_cap[k], *nd + 1, sizeof(uint32_t))) return -ENOMEM;
  w->stamp[k][id] = w->gen[k];
  w->slot[k][id] = *nd;
  w->dlist[k][*nd] = id;
  *idx = (*nd)++;
  return 0;
}

static void put_dict(struct tks_archive_writer *w, struct ob *o, int k, uint32_t nd) {
  put_var(o, nd);
  for (uint32_t i = 0; i < nd; i++) {
    size_t len;
    const char *s = tks_symtab_name(w->own, w->dlist[k][i], &len);
    put_var(o, len);
    put(o, s, len);
  }
}

static void mark(struct tks_archive_writer *w) {
  if (w->nsegs < TKS_ARRAY_SIZE(w->segs)) w->segs[w->nsegs++] = w->raw.len;
}

/* The maps of the ticks perm[0..n) that have one, as the block holds them. */
static int enc_maps(struct tks_archive_writer *w, struct ob *o, const struct pend *p) {
  uint32_t nn = 0, ns = 0, idx;
  next_gen(w, 0);
  next_gen(w, 1);
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1) {
      put_dict(w, o, 0, nn);
      put_dict(w, o, 1, ns);
    }
    for (uint32_t i = 0; i < p->n; i++) {
      uint32_t t = w->perm[i];
      if (p->kind[t] == K_SLOTTED) continue;
      struct rd r = {(const uint8_t *)p->x.data + p->xoff[t],
                     (const uint8_t *)p->x.data + p->xoff[t + 1], false};
      uint64_t nf = rd_var(&r);
      if (pass) put_var(o, nf);
      for (uint64_t k = 0; k < nf; k++) {
        uint32_t name = (uint32_t)rd_var(&r);
        uint8_t type = rd_u8(&r);
        if (dict_add(w, 0, name, &nn, &idx)) return -ENOMEM;
        if (pass) {
          put_var(o, idx);
          put_u8(o, type);
        }
        const uint8_t *v = r.p;
        switch (type) {
        case M_TICK_TS:
        case M_TICK_SYMBOL:
        case TKS_V_NIL: break;
        case M_DECIMAL:
          rd_u8(&r);
          rd_var(&r);
          break;
        case TKS_V_BOOL: rd_u8(&r); break;
        case TKS_V_INT:
        case TKS_V_UINT: rd_var(&r); break;
        case TKS_V_F64: rd_take(&r, 8); break;
        case TKS_V_STR: rd_take(&r, (size_t)rd_var(&r)); break;
        case TKS_V_SYM:
        case TKS_V_ISTR:
          if (dict_add(w, 1, (uint32_t)rd_var(&r), &ns, &idx)) return -ENOMEM;
          if (pass) put_var(o, idx);
          v = r.p; /* written as its index, not copied */
          break;
        }
        if (pass) put(o, v, (size_t)(r.p - v));
      }
      if (r.bad) return -EINVAL; /* cannot happen: the writer's own bytes */
    }
  }
  return o->err;
}

static int scratch_for(struct tks_archive_writer *w, uint32_t n) {
  uint32_t count = tks_symtab_count(w->own) + 1;
  if (count > w->stamp_cap) {
    uint32_t cap = w->stamp_cap;
    for (int k = 0; k < 2; k++) {
      uint32_t c = cap;
      if (grow((void **)&w->stamp[k], &c, count, sizeof(uint32_t))) return -ENOMEM;
      c = cap;
      if (grow((void **)&w->slot[k], &c, count, sizeof(uint32_t))) return -ENOMEM;
      if (k == 1) w->stamp_cap = c;
    }
  }
  if (scratch_reserve(&w->sc, n)) return -ENOMEM;
  if (n > w->vcap) {
    uint32_t c = w->vcap;
    if (grow((void **)&w->vals, &c, n, sizeof *w->vals)) return -ENOMEM;
    c = w->vcap;
    if (grow((void **)&w->perm, &c, n, sizeof *w->perm)) return -ENOMEM;
    c = w->vcap;
    if (grow((void **)&w->perm2, &c, n, sizeof *w->perm2)) return -ENOMEM;
    w->vcap = c;
  }
  return 0;
}

/* perm[0..n) in order of ts, stably (bottom-up merge sort). */
static void sort_by_ts(uint32_t *perm, uint32_t *tmp, uint32_t n, const int64_t *ts) {
  for (uint32_t i = 0; i < n; i++) perm[i] = i;
  bool sorted = true;
  for (uint32_t i = 1; i < n && sorted; i++) sorted = ts[i] >= ts[i - 1];
  if (sorted) return;
  uint32_t *a = perm, *b = tmp;
  for (uint32_t width = 1; width < n; width *= 2) {
    for (uint32_t lo = 0; lo < n; lo += 2 * width) {
      uint32_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
      uint32_t i = lo, j = mid, k = lo;
      while (i < mid && j < hi) b[k++] = ts[a[j]] < ts[a[i]] ? a[j++] : a[i++];
      while (i < mid) b[k++] = a[i++];
      while (j < hi) b[k++] = a[j++];
    }
    uint32_t *t = a;
    a = b;
    b = t;
  }
  if (a != perm) memcpy(perm, a, (size_t)n * sizeof *perm);
}

/* The block payload of p's ticks, in w->raw. */
static int block_encode(struct tks_archive_writer *w, const struct pend *p) {
  uint32_t n = p->n;
  const struct tks_schema *s = &w->schema;
  if (scratch_for(w, n)) return -ENOMEM;
  sort_by_ts(w->perm, w->perm2, n, p->ts);
  w->raw.len = 0;
  w->nsegs = 0;
  struct ob o = {&w->raw, 0};
  put_var(&o, n);
  put_u8(&o, p->maps ? 1 : 0);
  if (p->maps)
    for (uint32_t i = 0; i < n; i++) put_u8(&o, p->kind[w->perm[i]]);
  for (uint32_t i = 0; i < n; i++) w->vals[i] = p->ts[w->perm[i]];
  enc_ints(&o, w->vals, n, &w->sc);
  mark(w);
  uint32_t *rows = w->perm2, r = 0; /* perm2 is free once sorted */
  for (uint32_t i = 0; i < n; i++)
    if (p->kind[w->perm[i]] != K_DYNAMIC) rows[r++] = w->perm[i];
  for (unsigned fi = 0; fi < s->nfields; fi++) {
    if ((int)fi == s->ts_field || (int)fi == s->symbol_field) continue;
    const struct tks_field *f = &s->fields[fi];
    for (uint32_t j = 0; j < r; j++) {
      const char *at = p->recs + (size_t)rows[j] * s->record_size + f->offset;
      uint32_t u;
      switch (f->type) {
      case TKS_TYPE_TIMESTAMP:
      case TKS_TYPE_I64:
      case TKS_TYPE_F64: memcpy(&w->vals[j], at, 8); break;
      case TKS_TYPE_BOOL: w->vals[j] = *(const uint8_t *)at != 0; break;
      default:
        memcpy(&u, at, 4);
        w->vals[j] = u;
        break;
      }
    }
    switch (f->type) {
    case TKS_TYPE_F64: enc_floats(&o, w->vals, r, &w->sc); break;
    case TKS_TYPE_BOOL: enc_bools(&o, w->vals, r, &w->sc); break;
    case TKS_TYPE_SYMBOL:
    case TKS_TYPE_STRING: {
      uint32_t nd = 0, idx;
      next_gen(w, 0);
      for (uint32_t j = 0; j < r; j++) {
        if (dict_add(w, 0, (uint32_t)w->vals[j], &nd, &idx)) return -ENOMEM;
        w->sc.a[j] = idx;
      }
      put_dict(w, &o, 0, nd);
      enc_ints(&o, w->sc.a, r, &w->sc);
      break;
    }
    default: enc_ints(&o, w->vals, r, &w->sc); break;
    }
    mark(w);
  }
  if (p->maps) {
    int rc = enc_maps(w, &o, p);
    if (rc) return rc;
  }
  return o.err;
}

static int out_flush(struct tks_archive_writer *w) {
  if (!w->out.len) return 0;
  int rc = write_all(w->fd, w->out.data, w->out.len);
  if (rc) return werr(w, rc, "%s: %s", w->file, strerror(-rc));
  w->out.len = 0;
  return 0;
}

/* Compresses w->raw into w->comp; its length, or 0 on error. */
static size_t compress_raw(struct tks_archive_writer *w, bool by_column) {
  size_t bound = ZSTD_compressBound(w->raw.len);
  w->comp.len = 0;
  if (tks_buf_reserve(&w->comp, bound)) return 0;
  if (!by_column) {
    size_t c = ZSTD_compress2(w->cctx, w->comp.data, bound, w->raw.data, w->raw.len);
    return ZSTD_isError(c) ? 0 : c;
  }
  ZSTD_CCtx_reset(w->cctx, ZSTD_reset_session_only);
  if (ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(w->cctx, w->raw.len))) return 0;
  ZSTD_outBuffer out = {w->comp.data, bound, 0};
  size_t start = 0;
  for (unsigned k = 0; k <= w->nsegs; k++) {
    bool last = k == w->nsegs;
    size_t end = last ? w->raw.len : w->segs[k];
    ZSTD_inBuffer in = {w->raw.data + start, end - start, 0};
    for (;;) {
      size_t rem = ZSTD_compressStream2(w->cctx, &out, &in, last ? ZSTD_e_end : ZSTD_e_flush);
      if (ZSTD_isError(rem)) return 0;
      if (rem == 0 && in.pos == in.size) break;
      if (out.pos == out.size) return 0;
    }
    start = end;
  }
  return out.pos;
}

/* Cuts symbol si's pending ticks into a block, written to the file. */
static int flush_sym(struct tks_archive_writer *w, uint32_t si) {
  struct wsym *ws = &w->syms[si];
  struct pend *p = &ws->p;
  if (p->n == 0) return 0;
  int rc = block_encode(w, p);
  if (rc) return werr(w, rc, "encoding a block: %s", strerror(-rc));
  int64_t first = p->ts[w->perm[0]], last = p->ts[w->perm[p->n - 1]];
  if (w->raw.len > TKS_ARCHIVE_MAX_BLOCK_RAW)
    return werr(w, -E2BIG, "a block of %zu bytes (the most is %u)", w->raw.len,
                TKS_ARCHIVE_MAX_BLOCK_RAW);
  size_t clen = compress_raw(w, column_flush != 0);
  if (clen == 0 || clen > UINT32_MAX) return werr(w, -ENOMEM, "zstd could not compress a block");
  if (grow((void **)&w->blk, &w->blk_cap, w->nblk + 1, sizeof *w->blk))
    return werr(w, -ENOMEM, "out of memory");
  w->blk[w->nblk++] = (struct iblk){.sym = si,
                                    .count = p->n,
                                    .first = first,
                                    .last = last,
                                    .off = w->off,
                                    .clen = (uint32_t)clen,
                                    .raw_len = (uint32_t)w->raw.len,
                                    .crc = tks_crc32c(0, w->comp.data, clen)};
  ws->nblocks++;
  if (tks_buf_append(&w->out, w->comp.data, clen)) return werr(w, -ENOMEM, "out of memory");
  w->off += clen;
  w->held -= p->bytes;
  pend_clear(p);
  return w->out.len >= WRITE_CHUNK ? out_flush(w) : 0;
}

/* Cuts the largest pending blocks until the writer holds 3/4 of its budget. */
static int shed(struct tks_archive_writer *w) {
  while (w->held > w->budget / 4 * 3) {
    uint32_t best = 0;
    uint64_t most = 0;
    for (uint32_t i = 0; i < w->nsyms; i++)
      if (w->syms[i].p.bytes > most) most = w->syms[i].p.bytes, best = i;
    if (most == 0) break;
    int rc = flush_sym(w, best);
    if (rc) return rc;
  }
  return 0;
}

int tks_archive_writer_add(struct tks_archive_writer *w, const void *record,
                           const struct tks_dynobj *obj) {
  if (w->err) return w->err;
  const struct tks_schema *s = &w->schema;
  int64_t ts;
  uint32_t live;
  uint8_t kind;
  if (record) {
    memcpy(&ts, (const char *)record + s->fields[s->ts_field].offset, 8);
    memcpy(&live, (const char *)record + s->fields[s->symbol_field].offset, 4);
    kind = obj ? K_OVERFLOW : K_SLOTTED;
  } else if (obj) {
    if (!w->t.names) return -EINVAL;
    const struct tks_field *tf = &s->fields[s->ts_field], *sf = &s->fields[s->symbol_field];
    if (!w->ts_name && tks_symtab_lookup(w->t.names, tf->name, tf->name_len, &w->ts_name))
      return -EINVAL;
    if (!w->sym_name && tks_symtab_lookup(w->t.names, sf->name, sf->name_len, &w->sym_name))
      return -EINVAL;
    const struct tks_dyn_slot *a = tks_dynobj_get(obj, w->ts_name);
    const struct tks_dyn_slot *b = tks_dynobj_get(obj, w->sym_name);
    if (!a || a->type != TKS_V_INT || !b || b->type != TKS_V_SYM) return -EINVAL;
    ts = a->v.i;
    live = b->v.id;
    kind = K_DYNAMIC;
  } else {
    return -EINVAL;
  }
  if (ts < w->lo || ts > w->hi) return -ERANGE;
  uint32_t si;
  int rc = wsym_of(w, live, &si);
  if (rc) return rc == -ENOMEM ? werr(w, rc, "out of memory") : rc;
  struct wsym *ws = &w->syms[si];
  struct pend *p = &ws->p;
  if (pend_reserve(w, p)) return werr(w, -ENOMEM, "out of memory");
  char *rec = p->recs + (size_t)p->n * s->record_size;
  if (record) {
    memcpy(rec, record, s->record_size);
    for (unsigned fi = 0; fi < s->nfields; fi++) {
      const struct tks_field *f = &s->fields[fi];
      if (f->type != TKS_TYPE_SYMBOL && f->type != TKS_TYPE_STRING) continue;
      uint32_t id, own;
      memcpy(&id, rec + f->offset, 4);
      rc = own_id(w, f->type == TKS_TYPE_SYMBOL ? T_SYMBOLS : T_STRINGS, id, &own);
      if (rc) return rc == -ENOMEM ? werr(w, rc, "out of memory") : rc;
      memcpy(rec + f->offset, &own, 4);
    }
  } else {
    memset(rec, 0, s->record_size);
  }
  size_t xlen = p->x.len;
  if (obj) {
    rc = obj_encode(w, obj, kind == K_DYNAMIC, ts, live, &p->x);
    if (rc) {
      p->x.len = xlen;
      return rc == -ENOMEM ? werr(w, rc, "out of memory") : rc;
    }
    p->maps++;
  }
  p->ts[p->n] = ts;
  p->kind[p->n] = kind;
  p->xoff[p->n + 1] = (uint32_t)p->x.len;
  p->n++;
  uint64_t add = PEND_TICK_BYTES(w) + (p->x.len - xlen);
  p->bytes += add;
  w->held += add;
  ws->count++;
  if (ts < ws->first) ws->first = ts;
  if (ts > ws->last) ws->last = ts;
  w->ticks++;
  if (ts < w->first) w->first = ts;
  if (ts > w->last) w->last = ts;
  if (p->n >= w->block_ticks || p->x.len >= TKS_ARCHIVE_MAX_BLOCK_RAW / 4)
    if ((rc = flush_sym(w, si))) return rc;
  return w->held > w->budget ? shed(w) : 0;
}

int tks_archive_writer_visit(void *w, const void *record, const struct tks_dynobj *obj) {
  struct tks_archive_writer *wr = w;
  int rc = tks_archive_writer_add(wr, record, obj);
  if (rc && !wr->err) werr(wr, rc, "a tick the archive cannot take: %s", strerror(-rc));
  return rc != 0;
}

uint64_t tks_archive_writer_ticks(const struct tks_archive_writer *w) { return w->ticks; }

static void writer_free(struct tks_archive_writer *w) {
  if (w->fd >= 0) close(w->fd);
  for (uint32_t i = 0; i < w->nsyms; i++) pend_clear(&w->syms[i].p);
  free(w->syms);
  free(w->blk);
  free(w->sym_of);
  for (int k = 0; k < T__COUNT; k++) free(w->map[k]);
  for (int k = 0; k < 2; k++) {
    free(w->stamp[k]);
    free(w->slot[k]);
    free(w->dlist[k]);
  }
  free(w->vals);
  free(w->perm);
  free(w->perm2);
  scratch_free(&w->sc);
  tks_buf_finish(&w->raw);
  tks_buf_finish(&w->comp);
  tks_buf_finish(&w->out);
  tks_symtab_destroy(w->own);
  ZSTD_freeCCtx(w->cctx);
  free(w);
}

void tks_archive_writer_abort(struct tks_archive_writer *w) {
  if (!w) return;
  if (w->fd >= 0) close(w->fd);
  w->fd = -1;
  remove_dir(w->tmp, NULL);
  writer_free(w);
}

/* mkdir dir (and fsync its parent) unless it exists. */
static int make_dir(const char *dir) {
  if (mkdir(dir, 0750) == 0) {
    char parent[PATH_MAX];
    parent_of(dir, parent, sizeof parent);
    return tks_fsync_dir(parent);
  }
  if (errno != EEXIST) return -errno;
  struct stat st;
  if (stat(dir, &st) < 0) return -errno;
  return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

struct tks_archive_writer *
tks_archive_writer_create(const char *dir, int32_t day, const struct tks_schema *schema,
                          enum tks_mode mode, const struct tks_archive_tables *tables,
                          const struct tks_archive_writer_opts *opts, char *err, size_t errlen) {
  struct tks_archive_writer_opts o = opts ? *opts : (struct tks_archive_writer_opts){0};
  if (!o.level) o.level = TKS_ARCHIVE_DEFAULT_LEVEL;
  if (!o.block_ticks) o.block_ticks = TKS_ARCHIVE_DEFAULT_BLOCK_TICKS;
  if (!o.buffer_bytes) o.buffer_bytes = TKS_ARCHIVE_DEFAULT_BUFFER;
  if (o.buffer_bytes < (1u << 20)) o.buffer_bytes = 1u << 20;
  if (o.level < 1 || o.level > 19) {
    errf(err, errlen, "archive: zstd level %d out of range (1 to 19)", o.level);
    return NULL;
  }
  if (o.block_ticks < TKS_ARCHIVE_MIN_BLOCK_TICKS || o.block_ticks > TKS_ARCHIVE_MAX_BLOCK_TICKS) {
    errf(err, errlen, "archive: %" PRIu32 " ticks a block out of range (%d to %d)", o.block_ticks,
         TKS_ARCHIVE_MIN_BLOCK_TICKS, TKS_ARCHIVE_MAX_BLOCK_TICKS);
    return NULL;
  }
  if (schema->ts_field < 0 || schema->symbol_field < 0 || (unsigned)mode >= TKS_MODE_COUNT ||
      !tables || !tables->symbols) {
    errf(err, errlen, "archive: a schema without ts or symbol field, or no symbol table");
    return NULL;
  }
  if (strlen(dir) + 40 >= PATH_MAX) {
    errf(err, errlen, "archive: directory name too long");
    return NULL;
  }
  struct tks_archive_writer *w = calloc(1, sizeof *w);
  if (!w) {
    errf(err, errlen, "archive: out of memory");
    return NULL;
  }
  w->fd = -1;
  snprintf(w->dir, sizeof w->dir, "%s", dir);
  w->day = day;
  tks_archive_day_name(day, w->day_name);
  w->lo = tks_archive_day_start(day);
  w->hi = tks_archive_day_end(day);
  w->schema = *schema;
  w->mode = mode;
  w->t = *tables;
  w->level = o.level;
  w->block_ticks = o.block_ticks;
  w->budget = o.buffer_bytes;
  w->seal = o.seal;
  w->first = INT64_MAX;
  w->last = INT64_MIN;
  snprintf(w->tmp, sizeof w->tmp, "%s/%s.tmp-%ld", dir, w->day_name, (long)getpid());
  snprintf(w->file, sizeof w->file, "%s/part.tka", w->tmp);
  w->own = tks_symtab_create(0);
  w->cctx = ZSTD_createCCtx();
  if (!w->own || !w->cctx ||
      ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, w->level))) {
    errf(err, errlen, "archive: out of memory");
    writer_free(w);
    return NULL;
  }
  int rc = make_dir(dir);
  if (rc) {
    errf(err, errlen, "%s: %s", dir, strerror(-rc));
    writer_free(w);
    return NULL;
  }
  sweep_stale(dir);
  if (mkdir(w->tmp, 0750) < 0) {
    errf(err, errlen, "%s: %s", w->tmp,
         errno == EEXIST ? "a writer of this day is open in this process" : strerror(errno));
    writer_free(w);
    return NULL;
  }
  w->fd = open(w->file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  static const uint8_t zero[HEADER_SIZE];
  if (w->fd < 0 || tks_buf_append(&w->out, zero, sizeof zero)) {
    errf(err, errlen, "%s: %s", w->file, w->fd < 0 ? strerror(errno) : "out of memory");
    tks_archive_writer_abort(w);
    return NULL;
  }
  w->off = HEADER_SIZE;
  return w;
}

static int cmp_sym(const void *a, const void *b, void *ctx) {
  const struct tks_archive_writer *w = ctx;
  size_t la, lb;
  const char *sa = tks_symtab_name(w->own, w->syms[*(const uint32_t *)a].id, &la);
  const char *sb = tks_symtab_name(w->own, w->syms[*(const uint32_t *)b].id, &lb);
  int c = memcmp(sa, sb, la < lb ? la : lb);
  return c ? c : (la > lb) - (la < lb);
}

/* The decompressed index of what w wrote, as part `part`, into w->raw.
 * Symbols without a tick (one whose tick was refused) are left out. */
static int index_encode(struct tks_archive_writer *w, uint32_t part, uint32_t *nsym) {
  uint32_t *order = malloc(((size_t)w->nsyms + 1) * sizeof *order);
  uint32_t *rank = malloc(((size_t)w->nsyms + 1) * sizeof *rank);
  uint32_t *at = malloc(((size_t)w->nsyms + 1) * sizeof *at);
  uint32_t *place = malloc(((size_t)w->nblk + 1) * sizeof *place);
  int rc = -ENOMEM;
  if (!order || !rank || !at || !place) goto out;
  uint32_t ns = 0;
  for (uint32_t i = 0; i < w->nsyms; i++)
    if (w->syms[i].count) order[ns++] = i;
  qsort_r(order, ns, sizeof *order, cmp_sym, w);
  uint32_t nb = 0;
  for (uint32_t k = 0; k < ns; k++) {
    rank[order[k]] = k;
    at[order[k]] = nb;
    nb += w->syms[order[k]].nblocks;
  }
  for (uint32_t b = 0; b < w->nblk; b++) place[at[w->blk[b].sym]++] = b;
  w->raw.len = 0;
  struct ob o = {&w->raw, 0};
  put(&o, INDEX_MAGIC, 8);
  put_u32(&o, VERSION);
  put_u32(&o, (uint32_t)w->day);
  put_u32(&o, part);
  put_u32(&o, 0);
  put_u64(&o, w->ticks);
  put_u64(&o, (uint64_t)w->first);
  put_u64(&o, (uint64_t)w->last);
  schema_encode(&o, &w->schema, w->mode);
  put_u32(&o, ns);
  nb = 0;
  for (uint32_t k = 0; k < ns; k++) {
    const struct wsym *ws = &w->syms[order[k]];
    size_t len;
    const char *name = tks_symtab_name(w->own, ws->id, &len);
    put_u8(&o, (uint8_t)len);
    put(&o, name, len);
    put_u64(&o, ws->count);
    put_u64(&o, (uint64_t)ws->first);
    put_u64(&o, (uint64_t)ws->last);
    put_u32(&o, nb);
    put_u32(&o, ws->nblocks);
    nb += ws->nblocks;
  }
  put_u32(&o, w->nblk);
  for (uint32_t k = 0; k < w->nblk; k++) {
    const struct iblk *b = &w->blk[place[k]];
    put_u32(&o, rank[b->sym]);
    put_u32(&o, b->count);
    put_u64(&o, (uint64_t)b->first);
    put_u64(&o, (uint64_t)b->last);
    put_u64(&o, b->off);
    put_u32(&o, b->clen);
    put_u32(&o, b->raw_len);
    put_u32(&o, b->crc);
  }
  *nsym = ns;
  rc = o.err;
out:
  free(order);
  free(rank);
  free(at);
  free(place);
  return rc;
}

/* rename(2) that never replaces an existing file. */
static int rename_noreplace(const char *from, const char *to) {
  if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS) return -errno;
  if (link(from, to) < 0) return -errno; /* a file system without RENAME_NOREPLACE */
  unlink(from);
  return 0;
}

/* Writes the index, footer and header, and fsyncs the file. */
static int write_tail(struct tks_archive_writer *w, uint32_t part, uint32_t *nsym) {
  int rc = index_encode(w, part, nsym);
  if (rc) return werr(w, rc, "out of memory");
  size_t clen = compress_raw(w, false);
  if (clen == 0 || clen > UINT32_MAX) return werr(w, -ENOMEM, "zstd could not compress the index");
  struct footer ft = {.index_off = w->off,
                      .index_clen = (uint32_t)clen,
                      .index_raw = (uint32_t)w->raw.len,
                      .index_crc = tks_crc32c(0, w->comp.data, clen),
                      .nsym = *nsym,
                      .ticks = w->ticks,
                      .first = w->first,
                      .last = w->last,
                      .nblk = w->nblk,
                      .day = w->day,
                      .part = part,
                      .seal = w->seal};
  uint8_t f[FOOTER_SIZE], h[HEADER_SIZE];
  footer_encode(f, &ft);
  header_encode(h, w->day, part);
  if (tks_buf_append(&w->out, w->comp.data, clen) || tks_buf_append(&w->out, f, sizeof f))
    return werr(w, -ENOMEM, "out of memory");
  if ((rc = out_flush(w))) return rc;
  w->off += clen + FOOTER_SIZE;
  ssize_t n = pwrite(w->fd, h, sizeof h, 0);
  rc = n < 0 ? -errno : n != (ssize_t)sizeof h ? -EIO : fsync(w->fd) < 0 ? -errno : 0;
  if (rc) return werr(w, rc, "%s: %s", w->file, strerror(-rc));
  rc = close(w->fd) < 0 ? -errno : 0;
  w->fd = -1;
  return rc ? werr(w, rc, "%s: %s", w->file, strerror(-rc)) : 0;
}

/* Makes the sealed file visible as part `part` of the day. */
static int publish(struct tks_archive_writer *w, const char *daydir, bool day_exists,
                   const char *pname) {
  char final[PATH_MAX + 48];
  int rc;
  if (!day_exists) {
    /* The day's first part: the whole directory appears at once. */
    snprintf(final, sizeof final, "%s/%s", w->tmp, pname);
    if (rename(w->file, final) < 0) return werr(w, -errno, "%s: %s", final, strerror(errno));
    if ((rc = tks_fsync_dir(w->tmp))) return werr(w, rc, "%s: %s", w->tmp, strerror(-rc));
    if (rename(w->tmp, daydir) < 0) return werr(w, -errno, "%s: %s", daydir, strerror(errno));
    if ((rc = tks_fsync_dir(w->dir))) return werr(w, rc, "%s: %s", w->dir, strerror(-rc));
    return 0;
  }
  snprintf(final, sizeof final, "%s/%s", daydir, pname);
  if ((rc = rename_noreplace(w->file, final))) return werr(w, rc, "%s: %s", final, strerror(-rc));
  rc = tks_fsync_dir(daydir);
  rmdir(w->tmp);
  return rc ? werr(w, rc, "%s: %s", daydir, strerror(-rc)) : 0;
}

int tks_archive_writer_seal(struct tks_archive_writer *w, struct tks_archive_part_info *out,
                            char *err, size_t errlen) {
  if (out)
    *out = (struct tks_archive_part_info){
        .day = w->day, .first_ts = INT64_MAX, .last_ts = INT64_MIN, .seal = w->seal};
  for (uint32_t i = 0; i < w->nsyms && !w->err; i++) flush_sym(w, i);
  if (!w->err && w->ticks == 0) {
    tks_archive_writer_abort(w);
    return 0;
  }
  char daydir[PATH_MAX + 16], pname[PART_NAME_MAX];
  snprintf(daydir, sizeof daydir, "%s/%s", w->dir, w->day_name);
  struct stat st;
  bool day_exists = stat(daydir, &st) == 0;
  uint32_t part = day_exists ? max_part(daydir) + 1 : 1, nsym = 0;
  part_name(part, pname);
  if (!w->err && !write_tail(w, part, &nsym)) publish(w, daydir, day_exists, pname);
  int rc = w->err;
  if (rc) {
    errf(err, errlen, "%s", w->errmsg);
    tks_archive_writer_abort(w);
    return rc;
  }
  if (out)
    *out = (struct tks_archive_part_info){.day = w->day,
                                          .part = part,
                                          .ticks = w->ticks,
                                          .bytes = w->off,
                                          .symbols = nsym,
                                          .blocks = w->nblk,
                                          .first_ts = w->first,
                                          .last_ts = w->last,
                                          .seal = w->seal};
  writer_free(w);
  return 0;
}

/* ---- conversion to the current schema ----------------------------------------- */

/* How a part's layout maps to the current one, by field name. */
struct conv {
  bool rec_ok;                         /* ts and symbol fields have the same names */
  int from_day[TKS_SCHEMA_MAX_FIELDS]; /* current field -> day field, or -1 */
};

static void conv_init(struct conv *c, const struct tks_schema *day, const struct tks_schema *cur) {
  for (unsigned i = 0; i < cur->nfields; i++) {
    const struct tks_field *f = &cur->fields[i];
    c->from_day[i] = tks_schema_find(day, f->name, strlen(f->name));
  }
  c->rec_ok = c->from_day[cur->ts_field] == day->ts_field &&
              c->from_day[cur->symbol_field] == day->symbol_field;
}

/* One field of a tick as read from a block: strings point into it. */
struct gf {
  const char *name;
  uint32_t nlen;
  struct tks_value v; /* a string as STR */
  uint8_t stype;      /* a string's kind: TKS_V_SYM, TKS_V_ISTR or TKS_V_STR */
  struct dict *d;     /* the dictionary a string is entry di of (interning cache), or NULL */
  uint32_t di;
  bool is_key;    /* the block's symbol */
  bool from_slot; /* a field of the record (not of a map) */
  bool used;
};

#define GF_MAX (TKS_SCHEMA_MAX_FIELDS + TKS_ARCHIVE_MAX_OBJECT_FIELDS)

/* What converting needs: the view, scratch for the record and object. */
struct cv {
  struct tks_archive_view v;
  const char *sym; /* the symbol's name */
  uint32_t sym_len;
  uint32_t sym_live; /* its id + 1 in v.symbols, 0 not yet */
  _Alignas(8) char rec[TKS_RECORD_MAX];
  void *obj;
  size_t obj_cap;
  struct gf g[GF_MAX];
  unsigned ng;
};

static int table_of(const struct cv *x, uint8_t stype, struct tks_symtab **t) {
  *t = stype == TKS_V_SYM ? x->v.symbols : x->v.strings;
  return *t ? 0 : -ENOSPC;
}

/* The id string g was given in the table of stype before, if it was: a
 * column's dictionary caches ids of the table of its own kind, and the
 * block's symbol is interned once. */
static bool cached(const struct cv *x, const struct gf *g, uint8_t stype, uint32_t *id) {
  if (g->is_key && stype == TKS_V_SYM && x->sym_live) {
    *id = x->sym_live - 1;
    return true;
  }
  if (g->d && stype == g->stype && g->d->live[g->di]) {
    *id = g->d->live[g->di] - 1;
    return true;
  }
  return false;
}

/* The live id of string g in the table of stype (SYM or ISTR).  remember:
 * cache it (only for a string checked as the slot it goes to requires). */
static int intern_g(struct cv *x, struct gf *g, uint8_t stype, uint32_t *id, bool remember) {
  struct tks_symtab *t;
  int rc = table_of(x, stype, &t);
  if (rc) return rc;
  if (cached(x, g, stype, id)) return 0;
  rc = tks_symtab_intern(t, g->v.v.s.p, g->v.v.s.len, id);
  if (rc || !remember) return rc;
  if (g->d && stype == g->stype) g->d->live[g->di] = *id + 1;
  if (g->is_key && stype == TKS_V_SYM) x->sym_live = *id + 1;
  return 0;
}

/* Writes g into current field f of x->rec by the decoder's rules.  False
 * when it does not convert (or its string finds no room). */
static bool put_slot(struct cv *x, const struct tks_field *f, bool is_symbol_field, struct gf *g) {
  char *at = x->rec + f->offset;
  const struct tks_value *v = &g->v;
  switch (f->type) {
  case TKS_TYPE_TIMESTAMP:
  case TKS_TYPE_I64:
    if (v->type != TKS_V_INT) return false;
    memcpy(at, &v->v.i, 8);
    return true;
  case TKS_TYPE_U32: {
    if (v->type != TKS_V_INT || v->v.i < 0 || v->v.i > UINT32_MAX) return false;
    uint32_t u = (uint32_t)v->v.i;
    memcpy(at, &u, 4);
    return true;
  }
  case TKS_TYPE_F64: {
    double d;
    if (v->type == TKS_V_F64)
      d = v->v.f;
    else if (v->type == TKS_V_INT)
      d = (double)v->v.i;
    else if (v->type == TKS_V_UINT)
      d = (double)v->v.u;
    else
      return false;
    /* The decoder keeps no NaN or Inf in a slot; one a slot held anyway is
     * copied as it is. */
    if (!isfinite(d) && !(g->from_slot && v->type == TKS_V_F64)) return false;
    memcpy(at, &d, 8);
    return true;
  }
  case TKS_TYPE_BOOL:
    if (v->type != TKS_V_BOOL) return false;
    *(bool *)at = v->v.b;
    return true;
  case TKS_TYPE_SYMBOL:
  case TKS_TYPE_STRING: {
    if (v->type != TKS_V_STR) return false;
    uint8_t want = f->type == TKS_TYPE_SYMBOL ? TKS_V_SYM : TKS_V_ISTR;
    uint32_t id;
    if (cached(x, g, want, &id)) { /* checked when it was interned */
      memcpy(at, &id, 4);
      return true;
    }
    if (v->v.s.len > TKS_SYMBOL_MAX_LEN || (is_symbol_field && v->v.s.len == 0)) return false;
    unsigned scan = tks_utf8_scan(v->v.s.p, v->v.s.len);
    if (scan & (f->type == TKS_TYPE_SYMBOL ? ~0u : (unsigned)TKS_UTF8_INVALID)) return false;
    if (intern_g(x, g, want, &id, true)) return false;
    memcpy(at, &id, 4);
    return true;
  }
  case TKS_TYPE__COUNT: break;
  }
  return false;
}

/* Reads tick i of b into x->g: the record's fields in slot order (kinds 0
 * and 1), then its map's. */
static void gather(struct cv *x, struct blk *b, uint32_t i) {
  const struct tks_schema *ds = b->schema;
  uint8_t kind = b->kind ? b->kind[i] : K_SLOTTED;
  unsigned n = 0;
  if (kind != K_DYNAMIC) {
    uint32_t row = b->row[i];
    for (unsigned fi = 0; fi < ds->nfields; fi++) {
      const struct tks_field *f = &ds->fields[fi];
      struct gf *g = &x->g[n++];
      *g = (struct gf){.name = f->name, .nlen = f->name_len, .from_slot = true};
      if ((int)fi == ds->ts_field) {
        g->v = (struct tks_value){.type = TKS_V_INT, .v.i = b->ts[i]};
        continue;
      }
      if ((int)fi == ds->symbol_field) {
        g->v = (struct tks_value){.type = TKS_V_STR, .v.s = {x->sym, x->sym_len}};
        g->stype = TKS_V_SYM;
        g->is_key = true;
        continue;
      }
      int64_t raw = b->col[fi][row];
      switch (f->type) {
      case TKS_TYPE_TIMESTAMP:
      case TKS_TYPE_I64:
      case TKS_TYPE_U32: g->v = (struct tks_value){.type = TKS_V_INT, .v.i = raw}; break;
      case TKS_TYPE_F64:
        g->v = (struct tks_value){.type = TKS_V_F64, .v.f = bitsd((uint64_t)raw)};
        break;
      case TKS_TYPE_BOOL: g->v = (struct tks_value){.type = TKS_V_BOOL, .v.b = raw != 0}; break;
      default: {
        struct dict *d = &b->sdict[fi];
        g->v = (struct tks_value){.type = TKS_V_STR, .v.s = {(const char *)d->s[raw], d->len[raw]}};
        g->stype = f->type == TKS_TYPE_SYMBOL ? TKS_V_SYM : TKS_V_ISTR;
        g->d = d;
        g->di = (uint32_t)raw;
        break;
      }
      }
    }
  }
  if (kind != K_SLOTTED) {
    const uint8_t *p = b->raw + b->moff[b->mapi[i]];
    struct rd r = {p, b->raw + b->raw_len, false}; /* checked at decode */
    uint64_t nf = rd_var(&r);
    for (uint64_t k = 0; k < nf && n < GF_MAX; k++) {
      uint32_t name = (uint32_t)rd_var(&r);
      uint8_t type = rd_u8(&r);
      struct gf *g = &x->g[n++];
      *g = (struct gf){.name = (const char *)b->names.s[name], .nlen = b->names.len[name]};
      g->v.type = (enum tks_vtype)type;
      switch (type) {
      case M_TICK_TS: g->v = (struct tks_value){.type = TKS_V_INT, .v.i = b->ts[i]}; break;
      case M_TICK_SYMBOL:
        g->v = (struct tks_value){.type = TKS_V_STR, .v.s = {x->sym, x->sym_len}};
        g->stype = TKS_V_SYM;
        g->is_key = true;
        break;
      case M_DECIMAL: {
        uint8_t dk = rd_u8(&r);
        int64_t m = unzz(rd_var(&r));
        g->v = (struct tks_value){.type = TKS_V_F64, .v.f = (double)m / p10[dk]};
        break;
      }
      case TKS_V_NIL: break;
      case TKS_V_BOOL: g->v.v.b = rd_u8(&r) != 0; break;
      case TKS_V_INT: g->v.v.i = unzz(rd_var(&r)); break;
      case TKS_V_UINT: g->v.v.u = rd_var(&r); break;
      case TKS_V_F64: g->v.v.f = bitsd(rd_u64(&r)); break;
      case TKS_V_STR: {
        uint32_t len = (uint32_t)rd_var(&r);
        g->v.v.s.p = (const char *)rd_take(&r, len);
        g->v.v.s.len = len;
        g->stype = TKS_V_STR;
        break;
      }
      case TKS_V_SYM:
      case TKS_V_ISTR: {
        uint32_t di = (uint32_t)rd_var(&r);
        g->stype = (uint8_t)type;
        g->v = (struct tks_value){.type = TKS_V_STR,
                                  .v.s = {(const char *)b->strs.s[di], b->strs.len[di]}};
        break; /* no cache: one entry may be a SYM here and an ISTR there */
      }
      }
    }
  }
  x->ng = n;
}

/* An object of the fields of x->g that are not used, in x->obj. */
static int make_obj(struct cv *x, const struct tks_dynobj **out) {
  struct tks_value vals[GF_MAX];
  uint32_t keys[GF_MAX];
  unsigned n = 0;
  size_t sbytes = 0;
  for (unsigned k = 0; k < x->ng; k++) {
    struct gf *g = &x->g[k];
    if (g->used) continue;
    if (!x->v.names) return -ENOSPC;
    int rc = tks_symtab_intern(x->v.names, g->name, g->nlen, &keys[n]);
    if (rc) return rc == -ENOMEM ? rc : -ENOSPC;
    if (keys[n] == 0) return -EBADMSG; /* an empty key: refused at decode */
    vals[n] = g->v;
    uint32_t id;
    if (g->v.type == TKS_V_STR && g->stype != TKS_V_STR &&
        intern_g(x, g, g->stype, &id, false) == 0)
      vals[n] = (struct tks_value){.type = (enum tks_vtype)g->stype, .v.id = id};
    if (vals[n].type == TKS_V_STR) sbytes += vals[n].v.s.len;
    n++;
  }
  if (n > TKS_ARCHIVE_MAX_OBJECT_FIELDS) return -E2BIG;
  size_t size = tks_dynobj_size(n, sbytes);
  if (size > UINT32_MAX) return -E2BIG;
  if (size > x->obj_cap) {
    void *o = realloc(x->obj, size);
    if (!o) return -ENOMEM;
    x->obj = o;
    x->obj_cap = size;
  }
  struct tks_dynobj *o = tks_dynobj_init(x->obj, n, sbytes);
  for (unsigned k = 0; k < n; k++)
    if (tks_dynobj_put(o, keys[k], &vals[k])) return -EBADMSG;
  *out = o;
  return 0;
}

/* Tick i of b in the current form (see tks_archive_view). */
static int convert(struct cv *x, struct blk *b, const struct conv *cv, uint32_t i,
                   struct tks_archive_tick *t) {
  const struct tks_schema *cs = x->v.schema;
  uint8_t kind = b->kind ? b->kind[i] : K_SLOTTED;
  gather(x, b, i);
  t->ts = b->ts[i];
  t->record = NULL;
  t->obj = NULL;
  bool rec = kind != K_DYNAMIC && cv->rec_ok;
  if (rec) {
    memset(x->rec, 0, cs->record_size);
    unsigned nday = b->schema->nfields;
    for (unsigned cf = 0; cf < cs->nfields && rec; cf++) {
      const struct tks_field *f = &cs->fields[cf];
      struct gf *g = NULL;
      if (cv->from_day[cf] >= 0) {
        g = &x->g[cv->from_day[cf]];
      } else {
        for (unsigned k = nday; k < x->ng && !g; k++)
          if (x->g[k].nlen == f->name_len && !memcmp(x->g[k].name, f->name, f->name_len))
            g = &x->g[k];
      }
      rec = g && put_slot(x, f, (int)cf == cs->symbol_field, g);
      if (g) g->used = true;
    }
    if (!rec)
      for (unsigned k = 0; k < x->ng; k++) x->g[k].used = false;
  }
  if (rec) {
    t->record = x->rec;
    bool extra = false;
    for (unsigned k = 0; k < x->ng; k++) extra |= !x->g[k].used;
    return extra ? make_obj(x, &t->obj) : 0;
  }
  return make_obj(x, &t->obj);
}

/* ---- the archive ---------------------------------------------------------------- */

struct part {
  uint32_t no;
  char *path;
  uint64_t size;
  ino_t ino;
  struct footer ft; /* all 0 (first, last INT64_MAX, INT64_MIN) if header or footer is bad */
  bool bad;
  char why[240];
  struct index *ix; /* loaded, or NULL */
  int fd;           /* open while ix is loaded */
};

struct day {
  int32_t day;
  char name[11];
  struct part *parts;
  uint32_t nparts;
};

struct tks_archive {
  char dir[PATH_MAX];
  struct day *days; /* oldest first */
  uint32_t ndays;
  ZSTD_DCtx *dctx;
  struct tks_buf cbuf; /* a compressed block being read */
  uint64_t blocks_read, index_loads;
  uint64_t max_seal; /* parts of a seal above it are hidden */
  char err[512];
};

static int aerr(struct tks_archive *a, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int aerr(struct tks_archive *a, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(a->err, sizeof a->err, fmt, ap);
  va_end(ap);
  return rc;
}

const char *tks_archive_error(const struct tks_archive *a) { return a->err; }

/* A part the seal limit hides from the queries. */
static bool hidden(const struct tks_archive *a, const struct part *p) {
  return p->ft.seal > a->max_seal;
}

static void part_unload(struct part *p) {
  index_free(p->ix);
  p->ix = NULL;
  if (p->fd >= 0) close(p->fd);
  p->fd = -1;
}

static void day_free(struct day *d) {
  for (uint32_t i = 0; i < d->nparts; i++) {
    part_unload(&d->parts[i]);
    free(d->parts[i].path);
  }
  free(d->parts);
  d->parts = NULL;
  d->nparts = 0;
}

/* Reads a part's header and footer. */
static void part_probe(struct part *p, int32_t day) {
  int fd = open(p->path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  uint8_t h[HEADER_SIZE], f[FOOTER_SIZE];
  int rc = fd < 0 ? -errno : fstat(fd, &st) < 0 ? -errno : 0;
  if (!rc) {
    p->size = (uint64_t)st.st_size;
    p->ino = st.st_ino;
    if (p->size < HEADER_SIZE + FOOTER_SIZE)
      rc = -EBADMSG, snprintf(p->why, sizeof p->why, "%" PRIu64 " bytes: cut short", p->size);
    else if (!(rc = pread_all(fd, h, sizeof h, 0)))
      rc = pread_all(fd, f, sizeof f, p->size - FOOTER_SIZE);
    if (!rc) rc = ends_check(h, f, day, p->no, p->size, &p->ft, p->why, sizeof p->why);
  } else {
    snprintf(p->why, sizeof p->why, "%s", strerror(-rc));
  }
  if (fd >= 0) close(fd);
  p->bad = rc != 0;
  if (p->bad) p->ft = (struct footer){.first = INT64_MAX, .last = INT64_MIN};
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

static int cmp_day(const void *a, const void *b) {
  int32_t x = ((const struct day *)a)->day, y = ((const struct day *)b)->day;
  return (x > y) - (x < y);
}

/* Lists day d's parts; those in old (same number, size and inode) are
 * taken over with their loaded index. */
static int day_scan(struct tks_archive *a, struct day *d, struct day *old) {
  char path[PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/%s", a->dir, d->name);
  DIR *dir = opendir(path);
  if (!dir) return errno == ENOENT ? 0 : aerr(a, -errno, "%s: %s", path, strerror(errno));
  uint32_t *nos = NULL, n = 0, cap = 0;
  struct dirent *e;
  int rc = 0;
  while ((e = readdir(dir))) {
    uint32_t no = part_number(e->d_name);
    if (!no) continue;
    if (grow((void **)&nos, &cap, n + 1, sizeof *nos)) {
      rc = -ENOMEM;
      break;
    }
    nos[n++] = no;
  }
  closedir(dir);
  if (!rc && n) qsort(nos, n, sizeof *nos, cmp_u32);
  if (!rc && n && !(d->parts = calloc(n, sizeof *d->parts))) rc = -ENOMEM;
  for (uint32_t i = 0; i < n && !rc; i++) {
    struct part *p = &d->parts[d->nparts];
    char name[PART_NAME_MAX];
    part_name(nos[i], name);
    p->no = nos[i];
    p->fd = -1;
    if (asprintf(&p->path, "%s/%s", path, name) < 0) {
      p->path = NULL;
      rc = -ENOMEM;
      break;
    }
    d->nparts++;
    part_probe(p, d->day);
    for (uint32_t k = 0; old && k < old->nparts; k++) {
      struct part *q = &old->parts[k];
      if (q->no == p->no && q->size == p->size && q->ino == p->ino && !q->bad && q->ix) {
        p->ix = q->ix, p->fd = q->fd;
        q->ix = NULL, q->fd = -1;
      }
    }
  }
  free(nos);
  return rc == -ENOMEM ? aerr(a, rc, "out of memory") : rc;
}

/* Lists the archive directory: the days, and each day's parts. */
static int scan(struct tks_archive *a, struct day *old, uint32_t nold) {
  DIR *dir = opendir(a->dir);
  if (!dir) return errno == ENOENT ? 0 : aerr(a, -errno, "%s: %s", a->dir, strerror(errno));
  uint32_t cap = 0;
  int rc = 0;
  struct dirent *e;
  while ((e = readdir(dir))) {
    int32_t day;
    if (tks_archive_day_parse(e->d_name, strlen(e->d_name), &day)) continue;
    if (grow((void **)&a->days, &cap, a->ndays + 1, sizeof *a->days)) {
      rc = aerr(a, -ENOMEM, "out of memory");
      break;
    }
    struct day *d = &a->days[a->ndays++];
    memset(d, 0, sizeof *d);
    d->day = day;
    memcpy(d->name, e->d_name, 11);
  }
  closedir(dir);
  if (a->ndays) qsort(a->days, a->ndays, sizeof *a->days, cmp_day);
  for (uint32_t i = 0; i < a->ndays && !rc; i++) {
    struct day *o = NULL;
    for (uint32_t k = 0; k < nold && !o; k++)
      if (old[k].day == a->days[i].day) o = &old[k];
    rc = day_scan(a, &a->days[i], o);
  }
  return rc;
}

static void days_free(struct day *days, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) day_free(&days[i]);
  free(days);
}

struct tks_archive *tks_archive_open(const char *dir, char *err, size_t errlen) {
  if (strlen(dir) + 40 >= PATH_MAX) {
    errf(err, errlen, "archive: directory name too long");
    return NULL;
  }
  struct tks_archive *a = calloc(1, sizeof *a);
  if (!a || !(a->dctx = ZSTD_createDCtx())) {
    free(a);
    errf(err, errlen, "archive: out of memory");
    return NULL;
  }
  snprintf(a->dir, sizeof a->dir, "%s", dir);
  a->max_seal = UINT64_MAX;
  sweep_stale(dir);
  if (scan(a, NULL, 0)) {
    errf(err, errlen, "%s", a->err);
    tks_archive_close(a);
    return NULL;
  }
  return a;
}

void tks_archive_close(struct tks_archive *a) {
  if (!a) return;
  days_free(a->days, a->ndays);
  ZSTD_freeDCtx(a->dctx);
  tks_buf_finish(&a->cbuf);
  free(a);
}

int tks_archive_rescan(struct tks_archive *a) {
  struct day *old = a->days;
  uint32_t nold = a->ndays;
  a->days = NULL;
  a->ndays = 0;
  int rc = scan(a, old, nold);
  days_free(old, nold);
  return rc;
}

/* What day d holds in its parts of a seal up to max_seal. */
static void day_info(const struct day *d, uint64_t max_seal, struct tks_archive_day_info *out) {
  *out = (struct tks_archive_day_info){.day = d->day, .first_ts = INT64_MAX, .last_ts = INT64_MIN};
  memcpy(out->name, d->name, sizeof out->name);
  for (uint32_t i = 0; i < d->nparts; i++) {
    const struct part *p = &d->parts[i];
    if (p->ft.seal > max_seal) continue;
    out->parts++;
    out->bytes += p->size;
    if (p->bad) {
      out->bad_parts++;
      continue;
    }
    out->ticks += p->ft.ticks;
    if (p->ft.first < out->first_ts) out->first_ts = p->ft.first;
    if (p->ft.last > out->last_ts) out->last_ts = p->ft.last;
  }
}

uint32_t tks_archive_days(const struct tks_archive *a, tks_archive_day_fn fn, void *ctx) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < a->ndays; i++) {
    struct tks_archive_day_info di;
    day_info(&a->days[i], a->max_seal, &di);
    if (di.parts == 0) continue; /* an empty directory is no day */
    n++;
    if (fn(ctx, &di)) break;
  }
  return n;
}

void tks_archive_totals(const struct tks_archive *a, struct tks_archive_totals *out) {
  memset(out, 0, sizeof *out);
  for (uint32_t i = 0; i < a->ndays; i++) {
    struct tks_archive_day_info di;
    day_info(&a->days[i], a->max_seal, &di);
    if (di.parts == 0) continue;
    out->days++;
    out->parts += di.parts;
    out->bad_parts += di.bad_parts;
    out->ticks += di.ticks;
    out->bytes += di.bytes;
  }
}

/* Loads p's index (once).  0, or -EBADMSG / -errno with a->err set. */
static int part_load(struct tks_archive *a, struct part *p, int32_t day) {
  if (p->ix) return 0;
  if (p->bad) return aerr(a, -EBADMSG, "%s: %s", p->path, p->why);
  int fd = open(p->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return aerr(a, -errno, "%s: %s", p->path, strerror(errno));
  uint8_t *c = malloc(p->ft.index_clen), *raw = NULL;
  struct index *ix = calloc(1, sizeof *ix);
  int rc = c && ix ? pread_all(fd, c, p->ft.index_clen, p->ft.index_off) : -ENOMEM;
  if (rc == -EBADMSG) snprintf(p->why, sizeof p->why, "index cut short");
  if (!rc)
    rc = unzstd(a->dctx, c, p->ft.index_clen, p->ft.index_crc, p->ft.index_raw, &raw, p->why,
                sizeof p->why);
  free(c);
  if (!rc) {
    ix->raw = raw;
    rc = index_parse(raw, p->ft.index_raw, day, p->no, p->ft.index_off, ix, p->why, sizeof p->why);
  }
  if (!rc && (ix->ticks != p->ft.ticks || ix->nsym != p->ft.nsym || ix->nblk != p->ft.nblk ||
              ix->first != p->ft.first || ix->last != p->ft.last)) {
    snprintf(p->why, sizeof p->why, "the index does not match the footer");
    rc = -EBADMSG;
  }
  if (rc) {
    index_free(ix);
    close(fd);
    if (rc == -EBADMSG) p->bad = true;
    return aerr(a, rc, "%s: %s", p->path, rc == -EBADMSG ? p->why : strerror(-rc));
  }
  p->ix = ix;
  p->fd = fd;
  a->index_loads++;
  return 0;
}

uint64_t tks_archive_blocks_read(const struct tks_archive *a) { return a->blocks_read; }

uint64_t tks_archive_memory(const struct tks_archive *a) {
  uint64_t n = sizeof *a + a->cbuf.cap + (uint64_t)a->ndays * sizeof *a->days;
  for (uint32_t i = 0; i < a->ndays; i++)
    for (uint32_t k = 0; k < a->days[i].nparts; k++) {
      const struct part *p = &a->days[i].parts[k];
      n += sizeof *p + strlen(p->path) + 1;
      if (p->ix)
        n += sizeof *p->ix + p->ft.index_raw + (uint64_t)p->ix->nsym * sizeof *p->ix->sym +
             (uint64_t)p->ix->nblk * sizeof *p->ix->blk;
    }
  return n;
}
uint64_t tks_archive_index_loads(const struct tks_archive *a) { return a->index_loads; }

/* Reads, checks and decodes block bi of p's index. */
static int block_read(struct tks_archive *a, struct part *p, uint32_t bi, struct blk **out) {
  const struct iblk *e = &p->ix->blk[bi];
  const struct isym *s = &p->ix->sym[e->sym];
  a->blocks_read++;
  a->cbuf.len = 0;
  if (tks_buf_reserve(&a->cbuf, e->clen)) return aerr(a, -ENOMEM, "out of memory");
  char why[200] = "";
  uint8_t *raw = NULL;
  int rc = pread_all(p->fd, a->cbuf.data, e->clen, e->off);
  if (rc == -EBADMSG) snprintf(why, sizeof why, "cut short");
  if (!rc) rc = unzstd(a->dctx, a->cbuf.data, e->clen, e->crc, e->raw_len, &raw, why, sizeof why);
  if (!rc) rc = blk_decode(&p->ix->schema, raw, e->raw_len, e->count, out, why, sizeof why);
  if (!rc && ((*out)->ts[0] != e->first || (*out)->ts[e->count - 1] != e->last)) {
    blk_free(*out);
    snprintf(why, sizeof why, "ts range differs from the index");
    rc = -EBADMSG;
  }
  if (rc)
    return aerr(a, rc, "%s: block at offset %" PRIu64 " (symbol '%.*s'): %s", p->path, e->off,
                (int)s->len, s->name, rc == -EBADMSG || rc == -ENOMEM ? why : strerror(-rc));
  return 0;
}

/* ---- cursors ------------------------------------------------------------------------ */

/* A block of the symbol that may hold ticks of the window. */
struct cand {
  struct part *p;
  uint32_t bi, seq; /* index in the part, place among the symbol's blocks */
  int64_t first, last;
};

struct open_blk {
  struct blk *b;
  const struct part *p;
  uint32_t seq, pos;
  struct conv conv;
};

struct tks_archive_cursor {
  struct tks_archive *a;
  struct cv x;
  char sym[TKS_SYMBOL_MAX_LEN + 1];
  int64_t from, to; /* to inclusive */
  uint32_t day_i;   /* the next day to look at */
  struct cand *cand;
  uint32_t ncand, cand_i, cand_cap;
  struct open_blk *open;
  uint32_t nopen, open_cap;
  int err; /* sticky */
};

static int cmp_cand(const void *a, const void *b) {
  const struct cand *x = a, *y = b;
  if (x->first != y->first) return x->first < y->first ? -1 : 1;
  if (x->p->no != y->p->no) return x->p->no < y->p->no ? -1 : 1;
  return (x->seq > y->seq) - (x->seq < y->seq);
}

struct tks_archive_cursor *tks_archive_cursor_create(struct tks_archive *a,
                                                     const struct tks_archive_view *v,
                                                     const char *symbol, size_t len, int64_t from,
                                                     int64_t to) {
  struct tks_archive_cursor *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->a = a;
  c->x.v = *v;
  if (len > TKS_SYMBOL_MAX_LEN) len = 0; /* no such symbol: an empty cursor */
  memcpy(c->sym, symbol, len);
  c->x.sym = c->sym;
  c->x.sym_len = (uint32_t)len;
  c->from = from;
  c->to = to;
  if (len == 0 || from > to) c->day_i = a->ndays;
  while (c->day_i < a->ndays && tks_archive_day_end(a->days[c->day_i].day) < from) c->day_i++;
  return c;
}

void tks_archive_cursor_destroy(struct tks_archive_cursor *c) {
  if (!c) return;
  for (uint32_t i = 0; i < c->nopen; i++) blk_free(c->open[i].b);
  free(c->open);
  free(c->cand);
  free(c->x.obj);
  free(c);
}

/* The candidates of the next day that overlaps the window.  1, 0 when
 * there is none, or -errno. */
static int next_day(struct tks_archive_cursor *c) {
  struct tks_archive *a = c->a;
  c->ncand = c->cand_i = 0;
  while (c->day_i < a->ndays) {
    struct day *d = &a->days[c->day_i++];
    if (tks_archive_day_start(d->day) > c->to) {
      c->day_i = a->ndays;
      return 0;
    }
    for (uint32_t k = 0; k < d->nparts; k++) {
      struct part *p = &d->parts[k];
      if (hidden(a, p)) continue;
      int rc = part_load(a, p, d->day);
      if (rc) return rc;
      const struct isym *s = index_find(p->ix, c->sym, c->x.sym_len);
      if (!s) continue;
      for (uint32_t j = 0; j < s->nblocks; j++) {
        const struct iblk *b = &p->ix->blk[s->first_block + j];
        if (b->last < c->from || b->first > c->to) continue;
        if (grow((void **)&c->cand, &c->cand_cap, c->ncand + 1, sizeof *c->cand))
          return aerr(a, -ENOMEM, "out of memory");
        c->cand[c->ncand++] = (struct cand){
            .p = p, .bi = s->first_block + j, .seq = j, .first = b->first, .last = b->last};
      }
    }
    if (c->ncand) {
      qsort(c->cand, c->ncand, sizeof *c->cand, cmp_cand);
      return 1;
    }
  }
  return 0;
}

/* Reads a candidate; kept open if it holds a tick of the window. */
static int open_cand(struct tks_archive_cursor *c, const struct cand *k) {
  struct blk *b;
  int rc = block_read(c->a, k->p, k->bi, &b);
  if (rc) return rc;
  uint32_t lo = 0, hi = b->n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (b->ts[mid] < c->from)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == b->n || b->ts[lo] > c->to) {
    blk_free(b);
    return 0;
  }
  if (grow((void **)&c->open, &c->open_cap, c->nopen + 1, sizeof *c->open)) {
    blk_free(b);
    return aerr(c->a, -ENOMEM, "out of memory");
  }
  struct open_blk *o = &c->open[c->nopen++];
  *o = (struct open_blk){.b = b, .p = k->p, .seq = k->seq, .pos = lo};
  conv_init(&o->conv, &k->p->ix->schema, c->x.v.schema);
  return 0;
}

/* The open block holding the next tick (by ts, part, block), or NULL. */
static struct open_blk *best(struct tks_archive_cursor *c) {
  struct open_blk *m = NULL;
  for (uint32_t i = 0; i < c->nopen; i++) {
    struct open_blk *o = &c->open[i];
    if (!m) {
      m = o;
      continue;
    }
    int64_t t = o->b->ts[o->pos], mt = m->b->ts[m->pos];
    if (t < mt || (t == mt && (o->p->no < m->p->no || (o->p->no == m->p->no && o->seq < m->seq))))
      m = o;
  }
  return m;
}

/* Makes the open blocks hold the next tick.  1, 0 at the end, or -errno. */
static int fill(struct tks_archive_cursor *c) {
  if (c->err) return c->err;
  for (;;) {
    while (c->cand_i < c->ncand) {
      const struct cand *k = &c->cand[c->cand_i];
      struct open_blk *m = best(c);
      if (m && k->first > m->b->ts[m->pos]) break;
      c->cand_i++;
      int rc = open_cand(c, k);
      if (rc) return c->err = rc;
    }
    if (c->nopen) return 1;
    int rc = next_day(c);
    if (rc < 0) return c->err = rc;
    if (rc == 0) return 0;
  }
}

/* Steps past the tick at m; closes m when it holds no more of the window. */
static void step(struct tks_archive_cursor *c, struct open_blk *m) {
  if (++m->pos < m->b->n && m->b->ts[m->pos] <= c->to) return;
  blk_free(m->b);
  *m = c->open[--c->nopen];
}

int tks_archive_cursor_peek(struct tks_archive_cursor *c, int64_t *ts) {
  int rc = fill(c);
  if (rc <= 0) return rc;
  struct open_blk *m = best(c);
  *ts = m->b->ts[m->pos];
  return 1;
}

int tks_archive_cursor_next(struct tks_archive_cursor *c, struct tks_archive_tick *t) {
  int rc = fill(c);
  if (rc <= 0) return rc;
  struct open_blk *m = best(c);
  rc = convert(&c->x, m->b, &m->conv, m->pos, t);
  if (rc) {
    if (rc == -EBADMSG) aerr(c->a, rc, "%s: a tick of '%s' does not convert", m->p->path, c->sym);
    if (rc == -ENOSPC) aerr(c->a, rc, "no room for a field name of '%s'", c->sym);
    return c->err = rc;
  }
  step(c, m);
  return 1;
}

int64_t tks_archive_cursor_skip(struct tks_archive_cursor *c, uint64_t n) {
  uint64_t done = 0;
  while (done < n) {
    int rc = fill(c);
    if (rc < 0) return rc;
    if (rc == 0) break;
    step(c, best(c));
    done++;
  }
  return (int64_t)done;
}

static int visit_all(struct tks_archive_cursor *c, uint64_t limit, tks_tick_fn fn, void *ctx,
                     uint64_t *visited) {
  uint64_t n = 0;
  int rc = 0;
  struct tks_archive_tick t;
  while (!limit || n < limit) {
    rc = tks_archive_cursor_next(c, &t);
    if (rc <= 0) break;
    n++;
    if (fn(ctx, t.record, t.obj)) {
      rc = 0;
      break;
    }
  }
  if (visited) *visited = n;
  return rc < 0 ? rc : 0;
}

int tks_archive_range(struct tks_archive *a, const struct tks_archive_view *v, const char *symbol,
                      size_t len, int64_t from, int64_t to, uint64_t limit, tks_tick_fn fn,
                      void *ctx, uint64_t *visited) {
  if (visited) *visited = 0;
  if (from >= to) return 0;
  struct tks_archive_cursor *c = tks_archive_cursor_create(a, v, symbol, len, from, to - 1);
  if (!c) return aerr(a, -ENOMEM, "out of memory");
  int rc = visit_all(c, limit, fn, ctx, visited);
  tks_archive_cursor_destroy(c);
  return rc;
}

/* A block for last(): where it is and what it covers. */
struct lblk {
  int64_t first, last;
  uint32_t count;
};

static int cmp_lblk(const void *a, const void *b) {
  const struct lblk *x = a, *y = b;
  return (x->last < y->last) - (x->last > y->last); /* newest first */
}

int tks_archive_last(struct tks_archive *a, const struct tks_archive_view *v, const char *symbol,
                     size_t len, uint64_t n, tks_tick_fn fn, void *ctx, uint64_t *visited) {
  if (visited) *visited = 0;
  if (n == 0 || len == 0 || len > TKS_SYMBOL_MAX_LEN) return 0;
  /* The newest days until they hold n ticks of the symbol. */
  uint64_t total = 0;
  uint32_t oldest = a->ndays;
  while (oldest > 0 && total < n) {
    struct day *d = &a->days[--oldest];
    for (uint32_t k = 0; k < d->nparts; k++) {
      if (hidden(a, &d->parts[k])) continue;
      int rc = part_load(a, &d->parts[k], d->day);
      if (rc) return rc;
      const struct isym *s = index_find(d->parts[k].ix, symbol, len);
      if (s) total += s->count;
    }
  }
  /* Their blocks, newest first: take blocks until they hold n ticks and no
   * block left can hold a tick newer than the oldest taken (L).  Then the
   * ticks at or after L are exactly those of the blocks taken. */
  struct lblk *bl = NULL;
  uint32_t nb = 0, cap = 0;
  for (uint32_t i = oldest; i < a->ndays; i++) {
    struct day *d = &a->days[i];
    for (uint32_t k = 0; k < d->nparts; k++) {
      if (hidden(a, &d->parts[k])) continue;
      const struct index *ix = d->parts[k].ix;
      const struct isym *s = index_find(ix, symbol, len);
      for (uint32_t j = 0; s && j < s->nblocks; j++) {
        if (grow((void **)&bl, &cap, nb + 1, sizeof *bl)) {
          free(bl);
          return aerr(a, -ENOMEM, "out of memory");
        }
        const struct iblk *b = &ix->blk[s->first_block + j];
        bl[nb++] = (struct lblk){b->first, b->last, b->count};
      }
    }
  }
  if (nb == 0) return 0;
  qsort(bl, nb, sizeof *bl, cmp_lblk);
  uint64_t taken = 0;
  int64_t lo = INT64_MAX;
  for (uint32_t i = 0; i < nb; i++) {
    if (taken >= n && bl[i].last < lo) break;
    taken += bl[i].count;
    if (bl[i].first < lo) lo = bl[i].first;
  }
  free(bl);
  struct tks_archive_cursor *c = tks_archive_cursor_create(a, v, symbol, len, lo, INT64_MAX);
  if (!c) return aerr(a, -ENOMEM, "out of memory");
  int64_t skipped = taken > n ? tks_archive_cursor_skip(c, taken - n) : 0;
  int rc = skipped < 0 ? (int)skipped : visit_all(c, 0, fn, ctx, visited);
  tks_archive_cursor_destroy(c);
  return rc;
}

/* ---- symbols, verification, retention -------------------------------------------- */

struct agg {
  struct tks_symtab *names;
  struct tks_archive_symbol_info *info; /* by id */
  uint32_t cap;
};

static int cmp_agg(const void *a, const void *b, void *ctx) {
  const struct agg *g = ctx;
  size_t la, lb;
  const char *x = tks_symtab_name(g->names, *(const uint32_t *)a, &la);
  const char *y = tks_symtab_name(g->names, *(const uint32_t *)b, &lb);
  int c = memcmp(x, y, la < lb ? la : lb);
  return c ? c : (la > lb) - (la < lb);
}

int tks_archive_symbols(struct tks_archive *a, int32_t first_day, int32_t last_day,
                        tks_archive_symbol_fn fn, void *ctx) {
  struct agg g = {.names = tks_symtab_create(0)};
  uint32_t *order = NULL;
  int rc = g.names ? 0 : -ENOMEM;
  for (uint32_t i = 0; i < a->ndays && !rc; i++) {
    struct day *d = &a->days[i];
    if (d->day < first_day || d->day > last_day) continue;
    for (uint32_t k = 0; k < d->nparts && !rc; k++) {
      if (hidden(a, &d->parts[k])) continue;
      if ((rc = part_load(a, &d->parts[k], d->day))) break;
      const struct index *ix = d->parts[k].ix;
      for (uint32_t j = 0; j < ix->nsym && !rc; j++) {
        const struct isym *s = &ix->sym[j];
        uint32_t id;
        if ((rc = tks_symtab_intern(g.names, s->name, s->len, &id))) break;
        if ((rc = grow((void **)&g.info, &g.cap, id + 1, sizeof *g.info))) break;
        struct tks_archive_symbol_info *in = &g.info[id];
        if (in->count == 0)
          *in = (struct tks_archive_symbol_info){.first_ts = INT64_MAX, .last_ts = INT64_MIN};
        in->count += s->count;
        if (s->first < in->first_ts) in->first_ts = s->first;
        if (s->last > in->last_ts) in->last_ts = s->last;
      }
    }
  }
  uint32_t n = g.names ? tks_symtab_count(g.names) : 0;
  if (!rc && n && !(order = malloc((size_t)n * sizeof *order))) rc = -ENOMEM;
  if (!rc && n) {
    for (uint32_t i = 0; i < n; i++) order[i] = i + 1;
    qsort_r(order, n, sizeof *order, cmp_agg, &g);
    for (uint32_t i = 0; i < n; i++) {
      struct tks_archive_symbol_info in = g.info[order[i]];
      size_t len;
      in.name = tks_symtab_name(g.names, order[i], &len);
      in.len = (uint32_t)len;
      if (fn(ctx, &in)) break;
    }
  }
  if (rc == -ENOMEM) aerr(a, rc, "out of memory");
  free(order);
  free(g.info);
  tks_symtab_destroy(g.names);
  return rc;
}

struct one_sym {
  const char *name;
  size_t len;
  struct tks_archive_symbol_info *out;
  bool found;
};

static int find_one(void *ctx, const struct tks_archive_symbol_info *s) {
  struct one_sym *o = ctx;
  if (s->len != o->len || memcmp(s->name, o->name, o->len)) return 0;
  *o->out = *s;
  o->out->name = o->name;
  o->found = true;
  return 1;
}

int tks_archive_symbol(struct tks_archive *a, const char *name, size_t len,
                       struct tks_archive_symbol_info *out) {
  struct one_sym o = {name, len, out, false};
  int rc = tks_archive_symbols(a, INT32_MIN, INT32_MAX, find_one, &o);
  if (rc) return rc;
  return o.found ? 0 : -ENOENT;
}

int tks_archive_verify(struct tks_archive *a, int32_t day, uint64_t *ticks) {
  uint64_t n = 0;
  int rc = 0;
  for (uint32_t i = 0; i < a->ndays && !rc; i++) {
    struct day *d = &a->days[i];
    if (day != INT32_MIN && d->day != day) continue;
    for (uint32_t k = 0; k < d->nparts && !rc; k++) {
      struct part *p = &d->parts[k];
      if (hidden(a, p)) continue;
      if ((rc = part_load(a, p, d->day))) break;
      for (uint32_t b = 0; b < p->ix->nblk && !rc; b++) {
        struct blk *bk;
        if ((rc = block_read(a, p, b, &bk))) break;
        n += bk->n;
        blk_free(bk);
      }
    }
  }
  if (ticks) *ticks = n;
  return rc;
}

int tks_archive_retain(struct tks_archive *a, int32_t first_kept_day,
                       struct tks_archive_freed *out) {
  struct tks_archive_freed f = {0};
  int rc = 0;
  uint32_t gone = 0;
  while (gone < a->ndays && a->days[gone].day < first_kept_day) {
    struct day *d = &a->days[gone];
    char path[PATH_MAX + 16], del[PATH_MAX + 40];
    snprintf(path, sizeof path, "%s/%s", a->dir, d->name);
    snprintf(del, sizeof del, "%s/%s.del-%ld", a->dir, d->name, (long)getpid());
    if (rename(path, del) < 0 && errno != ENOENT) {
      rc = aerr(a, -errno, "%s: %s", path, strerror(errno));
      break;
    }
    struct tks_archive_day_info di;
    day_info(d, UINT64_MAX, &di); /* hidden parts go too */
    /* Gone once the rename is durable; the files go after. */
    if ((rc = tks_fsync_dir(a->dir))) {
      aerr(a, rc, "%s: %s", a->dir, strerror(-rc));
      break;
    }
    day_free(d);
    uint64_t bytes = 0;
    remove_dir(del, &bytes);
    f.days++;
    f.parts += di.parts;
    f.ticks += di.ticks;
    f.bytes += bytes;
    gone++;
  }
  memmove(a->days, a->days + gone, (size_t)(a->ndays - gone) * sizeof *a->days);
  a->ndays -= gone;
  if (out) *out = f;
  return rc;
}

/* ---- seals ----------------------------------------------------------------------- */

uint32_t tks_archive_parts(const struct tks_archive *a, tks_archive_part_fn fn, void *ctx) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < a->ndays; i++) {
    const struct day *d = &a->days[i];
    for (uint32_t k = 0; k < d->nparts; k++) {
      const struct part *p = &d->parts[k];
      struct tks_archive_part_info pi = {.day = d->day,
                                         .part = p->no,
                                         .ticks = p->ft.ticks,
                                         .bytes = p->size,
                                         .symbols = p->ft.nsym,
                                         .blocks = p->ft.nblk,
                                         .first_ts = p->ft.first,
                                         .last_ts = p->ft.last,
                                         .seal = p->ft.seal};
      n++;
      if (fn(ctx, &pi, p->bad)) return n;
    }
  }
  return n;
}

void tks_archive_set_seal_limit(struct tks_archive *a, uint64_t max_seal) {
  a->max_seal = max_seal;
}

uint64_t tks_archive_max_seal(const struct tks_archive *a) {
  uint64_t mx = 0;
  for (uint32_t i = 0; i < a->ndays; i++)
    for (uint32_t k = 0; k < a->days[i].nparts; k++)
      if (a->days[i].parts[k].ft.seal > mx) mx = a->days[i].parts[k].ft.seal;
  return mx;
}

/* Unlinks day d's parts of a seal above max_seal (and fsyncs its
 * directory), dropping them from d->parts.  0 or the first -errno (the
 * parts before it are gone). */
static int day_remove_seals(struct tks_archive *a, struct day *d, uint64_t max_seal,
                            struct tks_archive_freed *f) {
  uint32_t kept = 0, gone = 0;
  int rc = 0;
  for (uint32_t k = 0; k < d->nparts; k++) {
    struct part *p = &d->parts[k];
    if (rc || p->ft.seal <= max_seal) {
      d->parts[kept++] = *p;
      continue;
    }
    if (unlink(p->path) < 0 && errno != ENOENT) {
      rc = aerr(a, -errno, "%s: %s", p->path, strerror(errno));
      d->parts[kept++] = *p;
      continue;
    }
    f->parts++;
    f->ticks += p->ft.ticks;
    f->bytes += p->size;
    part_unload(p);
    free(p->path);
    gone++;
  }
  d->nparts = kept;
  if (!gone) return rc;
  char path[PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/%s", a->dir, d->name);
  int frc = tks_fsync_dir(path);
  if (frc && !rc) rc = aerr(a, frc, "%s: %s", path, strerror(-frc));
  return rc;
}

int tks_archive_remove_seals_above(struct tks_archive *a, uint64_t max_seal,
                                   struct tks_archive_freed *out) {
  struct tks_archive_freed f = {0};
  int rc = 0;
  uint32_t kept = 0;
  for (uint32_t i = 0; i < a->ndays; i++) {
    struct day *d = &a->days[i];
    uint32_t before = d->nparts;
    if (!rc) rc = day_remove_seals(a, d, max_seal, &f);
    if (!rc && before && !d->nparts) {
      /* Emptied: the directory goes (unless something else is in it). */
      char path[PATH_MAX + 16];
      snprintf(path, sizeof path, "%s/%s", a->dir, d->name);
      if (rmdir(path) == 0 || errno == ENOENT) {
        if ((rc = tks_fsync_dir(a->dir))) aerr(a, rc, "%s: %s", a->dir, strerror(-rc));
        day_free(d);
        f.days++;
        continue;
      }
      if (errno != ENOTEMPTY && errno != EEXIST)
        rc = aerr(a, -errno, "%s: %s", path, strerror(errno));
    }
    a->days[kept++] = *d;
  }
  a->ndays = kept;
  if (out) *out = f;
  return rc;
}

/* ---- the layers one by one (archive-internal.h) ----------------------------------- */

int tks_archive_fix_crcs(const void *file, size_t len, uint8_t **out, size_t *out_len) {
  const uint8_t *f = file;
  if (len < HEADER_SIZE + FOOTER_SIZE) return -EINVAL;
  const uint8_t *ft = f + len - FOOTER_SIZE;
  uint64_t off = get64(ft);
  uint32_t clen = get32(ft + 8), raw_len = get32(ft + 12);
  if (off < HEADER_SIZE || off > len - FOOTER_SIZE || clen != len - FOOTER_SIZE - off ||
      raw_len == 0 || raw_len > (1u << 24))
    return -EINVAL;
  uint8_t *raw = malloc(raw_len);
  if (!raw) return -ENOMEM;
  size_t got = ZSTD_decompress(raw, raw_len, f + off, clen);
  if (ZSTD_isError(got) || got != raw_len) {
    free(raw);
    return -EINVAL;
  }
  /* The block entries are the index's last bytes, a CRC the last field of each. */
  if (raw_len >= 4) {
    uint32_t nblk = 0;
    for (uint32_t k = 1; (uint64_t)k * BLK_ENTRY + 4 <= raw_len; k++)
      if (get32(raw + raw_len - (size_t)k * BLK_ENTRY - 4) == k) nblk = k;
    for (uint32_t k = 0; k < nblk; k++) {
      uint8_t *e = raw + raw_len - (size_t)(nblk - k) * BLK_ENTRY;
      uint64_t boff = get64(e + 24);
      uint32_t bclen = get32(e + 32);
      if (boff <= off && bclen <= off - boff) le32(e + 40, tks_crc32c(0, f + boff, bclen));
    }
  }
  size_t bound = ZSTD_compressBound(raw_len);
  uint8_t *o = malloc(off + bound + FOOTER_SIZE);
  if (!o) {
    free(raw);
    return -ENOMEM;
  }
  memcpy(o, f, off);
  le32(o + 28, tks_crc32c(0, o, 28));
  size_t c = ZSTD_compress(o + off, bound, raw, raw_len, 1);
  free(raw);
  if (ZSTD_isError(c)) {
    free(o);
    return -EINVAL;
  }
  uint8_t *nf = o + off + c;
  memcpy(nf, ft, FOOTER_SIZE);
  le32(nf + 8, (uint32_t)c);
  le32(nf + 16, tks_crc32c(0, o + off, c));
  le32(nf + FOOTER_CRC_AT, tks_crc32c(0, nf, FOOTER_CRC_AT));
  *out = o;
  *out_len = off + c + FOOTER_SIZE;
  return 0;
}

int tks_archive_check_index(const void *raw, size_t len, int32_t day, uint32_t part,
                            uint64_t data_end, uint64_t *ticks, char *err, size_t errlen) {
  struct index ix = {0};
  int rc = index_parse(raw, len, day, part, data_end, &ix, err, errlen);
  if (ticks) *ticks = rc ? 0 : ix.ticks;
  free(ix.sym);
  free(ix.blk);
  return rc;
}

/* Converts every tick of b through x, visiting each. */
static int convert_all(struct cv *x, struct blk *b, tks_tick_fn fn, void *ctx) {
  struct conv cv;
  conv_init(&cv, b->schema, x->v.schema);
  for (uint32_t i = 0; i < b->n; i++) {
    struct tks_archive_tick t;
    int rc = convert(x, b, &cv, i, &t);
    if (rc) return rc;
    if (fn && fn(ctx, t.record, t.obj)) break;
  }
  return 0;
}

int tks_archive_check_block(const struct tks_schema *day_schema, const void *raw, size_t len,
                            uint32_t count, const char *symbol, size_t symbol_len,
                            const struct tks_archive_view *v, tks_tick_fn fn, void *ctx,
                            uint64_t *ticks, char *err, size_t errlen) {
  if (ticks) *ticks = 0;
  uint8_t *copy = malloc(len ? len : 1);
  if (!copy) return -ENOMEM;
  memcpy(copy, raw, len);
  struct blk *b;
  int rc = blk_decode(day_schema, copy, len, count, &b, err, errlen);
  if (rc) return rc;
  struct cv *x = calloc(1, sizeof *x);
  if (!x) {
    blk_free(b);
    return -ENOMEM;
  }
  x->v = *v;
  x->sym = symbol;
  x->sym_len = (uint32_t)symbol_len;
  rc = convert_all(x, b, fn, ctx);
  if (rc) errf(err, errlen, "block: a tick does not convert (%s)", strerror(-rc));
  if (!rc && ticks) *ticks = b->n;
  free(x->obj);
  free(x);
  blk_free(b);
  return rc;
}

int tks_archive_check_part(const void *file, size_t len, int32_t day, uint32_t part,
                           const struct tks_archive_view *v, tks_tick_fn fn, void *ctx,
                           uint64_t *ticks, char *err, size_t errlen) {
  const uint8_t *f = file;
  if (ticks) *ticks = 0;
  if (len < HEADER_SIZE + FOOTER_SIZE) {
    errf(err, errlen, "%zu bytes: cut short", len);
    return -EBADMSG;
  }
  struct footer ft;
  int rc = ends_check(f, f + len - FOOTER_SIZE, day, part, len, &ft, err, errlen);
  if (rc) return rc;
  ZSTD_DCtx *dctx = ZSTD_createDCtx();
  struct index *ix = calloc(1, sizeof *ix);
  struct cv *x = calloc(1, sizeof *x);
  uint8_t *raw = NULL;
  uint64_t n = 0;
  if (!dctx || !ix || !x) {
    rc = -ENOMEM;
    goto out;
  }
  rc = unzstd(dctx, f + ft.index_off, ft.index_clen, ft.index_crc, ft.index_raw, &ix->raw, err,
              errlen);
  if (!rc) rc = index_parse(ix->raw, ft.index_raw, day, part, ft.index_off, ix, err, errlen);
  if (!rc && (ix->ticks != ft.ticks || ix->nsym != ft.nsym || ix->nblk != ft.nblk ||
              ix->first != ft.first || ix->last != ft.last)) {
    errf(err, errlen, "the index does not match the footer");
    rc = -EBADMSG;
  }
  x->v = *v;
  for (uint32_t si = 0; si < (rc ? 0 : ix->nsym); si++) {
    const struct isym *s = &ix->sym[si];
    x->sym = s->name;
    x->sym_len = s->len;
    x->sym_live = 0;
    for (uint32_t k = 0; k < s->nblocks && !rc; k++) {
      const struct iblk *e = &ix->blk[s->first_block + k];
      struct blk *b;
      rc = unzstd(dctx, f + e->off, e->clen, e->crc, e->raw_len, &raw, err, errlen);
      if (!rc) rc = blk_decode(&ix->schema, raw, e->raw_len, e->count, &b, err, errlen);
      raw = NULL;
      if (rc) break;
      if (b->ts[0] != e->first || b->ts[b->n - 1] != e->last) {
        errf(err, errlen, "block: ts range differs from the index");
        rc = -EBADMSG;
      }
      if (!rc && (rc = convert_all(x, b, fn, ctx)))
        errf(err, errlen, "block: a tick does not convert (%s)", strerror(-rc));
      n += b->n;
      blk_free(b);
    }
    if (rc) break;
  }
out:
  if (rc == -ENOMEM) errf(err, errlen, "out of memory");
  if (ticks) *ticks = rc ? 0 : n;
  ZSTD_freeDCtx(dctx);
  index_free(ix);
  if (x) free(x->obj);
  free(x);
  return rc;
}
