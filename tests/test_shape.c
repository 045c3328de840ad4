/* Unit tests of lib/shape.c: the fast path gives what tks_decode() gives
 * (tests/shape_diff.h compares the two byte for byte) on the ticks it takes,
 * on every near miss of a learned shape, after ids are given back, and over
 * random and mutated streams checked against msgpack-c too. */
#include <math.h>
#include <msgpack.h>
#include <time.h>

#include "config.h"
#include "test.h"

#define DIFF_FAIL(...) TEST_FAIL(__VA_ARGS__)
#include "shape_diff.h"

#define NOW 1700000000000000000LL

/* ---- a msgpack writer that picks each encoding ---- */

struct mp {
  uint8_t b[8192];
  size_t n;
};
static void put(struct mp *m, const void *p, size_t n) {
  if (m->n + n > sizeof m->b) TEST_FAIL("mp buffer full");
  memcpy(m->b + m->n, p, n);
  m->n += n;
}
static void put1(struct mp *m, uint8_t x) { put(m, &x, 1); }
static void put_be(struct mp *m, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; i--) put1(m, (uint8_t)(v >> (8 * i)));
}
static void mp_map(struct mp *m, unsigned n) {
  if (n < 16)
    put1(m, (uint8_t)(0x80 | n));
  else
    put1(m, 0xde), put_be(m, n, 2);
}
static void mp_array(struct mp *m, unsigned n) {
  if (n < 16)
    put1(m, (uint8_t)(0x90 | n));
  else
    put1(m, 0xdc), put_be(m, n, 2);
}
/* form: 0 the shortest, 1 str8, 2 str16, 3 str32 */
static void mp_strn(struct mp *m, const char *s, size_t n, int form) {
  if (form == 0 && n < 32)
    put1(m, (uint8_t)(0xa0 | n));
  else if (form <= 1 && n < 256)
    put1(m, 0xd9), put1(m, (uint8_t)n);
  else if (form <= 2)
    put1(m, 0xda), put_be(m, n, 2);
  else
    put1(m, 0xdb), put_be(m, n, 4);
  put(m, s, n);
}
static void mp_str(struct mp *m, const char *s) { mp_strn(m, s, strlen(s), 0); }
static void mp_i64(struct mp *m, int64_t v) { put1(m, 0xd3), put_be(m, (uint64_t)v, 8); }
static void mp_f64(struct mp *m, double x) {
  uint64_t u;
  memcpy(&u, &x, 8);
  put1(m, 0xcb), put_be(m, u, 8);
}

static struct tks_schema market, wide;
static void schemas(void) {
  tks_schema_default(&market);
  static const char yaml[] = "schema:\n"
                             "  - {name: ts, type: timestamp}\n"
                             "  - {name: sym, type: symbol, required: true}\n"
                             "  - {name: venue, type: string}\n"
                             "  - {name: bid, type: f64}\n"
                             "  - {name: qty, type: u32}\n"
                             "  - {name: live, type: bool}\n"
                             "  - {name: a_rather_long_field_name, type: i64, default: 7}\n";
  static struct tks_config c;
  char err[256];
  if (tks_config_parse(&c, yaml, sizeof yaml - 1, "wide", err, sizeof err) != 0)
    TEST_FAIL("wide schema: %s", err);
  wide = c.schema;
}

/* A MarketEvent tick in the gen's shape: ticker, ts, price, volume, flags. */
static void market_tick(struct mp *m, const char *ticker, int64_t ts, double price, int64_t vol,
                        const char *flags) {
  mp_map(m, 5);
  mp_str(m, "ticker"), mp_str(m, ticker);
  mp_str(m, "ts"), mp_i64(m, ts);
  mp_str(m, "price"), mp_f64(m, price);
  mp_str(m, "volume"), put1(m, (uint8_t)vol);
  mp_str(m, "flags"), mp_str(m, flags);
}

static struct diff x;

static enum tks_decode_status one(const struct mp *m) {
  return diff_decode(&x, m->b, m->n, NOW, false);
}

/* Teaches the cache the MarketEvent shape; returns its hits so far. */
static uint64_t prime(void) {
  struct mp m = {0};
  market_tick(&m, "AAPL", 1, 150.5, 100, "");
  ASSERT_EQ(one(&m), TKS_DECODE_OK);
  m.n = 0;
  market_tick(&m, "MSFT", 2, 300.25, 7, "R");
  ASSERT_EQ(one(&m), TKS_DECODE_OK);
  return x.cache->hits;
}

TEST(a_repeated_shape_takes_the_fast_path_with_the_same_records) {
  schemas();
  diff_init(&x, &market, TKS_MODE_SLOTTED, 65536, 0);
  struct mp m = {0};
  for (int i = 0; i < 50; i++) market_tick(&m, i % 2 ? "AAPL" : "S0001_LONGER", i, i + 0.5, i, "R");
  size_t off = 0;
  for (int i = 0; i < 50; i++) {
    ASSERT_EQ(diff_decode(&x, m.b + off, m.n - off, NOW, false), TKS_DECODE_OK);
    off += x.b.res.consumed;
  }
  ASSERT_EQ(off, m.n);
  ASSERT_U64_EQ(x.cache->hits, 49); /* all but the first, which taught it */
  ASSERT_EQ(tks_symtab_count(x.b.d.symbols), 2);
  diff_finish(&x);
}

/* What a subscriber may be sent as the producer's bytes: a tick of the
 * learned map shape naming every field, floats as float64, no nil. */
/* Decodes m with the shape path asked for res.verbatim; returns it. */
static bool verbatim(const struct mp *m, enum tks_decode_status want) {
  x.calls = 0; /* (diff_decode asks every other call) */
  enum tks_decode_status st = one(m);
  ASSERT_EQ(st, want);
  return x.b.res.verbatim;
}

TEST(a_tick_is_verbatim_only_where_its_bytes_say_what_the_record_holds) {
  schemas();
  diff_init(&x, &market, TKS_MODE_SLOTTED, 65536, 0);
  prime();
  struct mp m = {0};
  market_tick(&m, "AAPL", 3, -0.0, 5, "R");
  ASSERT(verbatim(&m, TKS_DECODE_OK)); /* (and diff_decode rendered it to compare) */
  /* price as an integer or a float32: stored as a float64, not verbatim */
  static const uint8_t forms[][5] = {{0x02}, {0xca, 0x3f, 0xc0, 0, 0}, {0xc0}};
  static const size_t lens[] = {1, 5, 1};
  for (int f = 0; f < 3; f++) {
    m.n = 0;
    mp_map(&m, 5);
    mp_str(&m, "ticker"), mp_str(&m, "AAPL");
    mp_str(&m, "ts"), mp_i64(&m, 4);
    mp_str(&m, "price"), put(&m, forms[f], lens[f]);
    mp_str(&m, "volume"), put1(&m, 1);
    mp_str(&m, "flags"), mp_str(&m, "R");
    /* (price is required: a nil is refused) */
    ASSERT(!verbatim(&m, f < 2 ? TKS_DECODE_OK : TKS_DECODE_REJECT));
  }
  /* flags nil (absent) or left out: rendered from the record */
  m.n = 0;
  market_tick(&m, "AAPL", 5, 1.0, 1, "R");
  m.b[m.n - 2] = 0xc0, m.n--; /* "R" -> nil */
  ASSERT(!verbatim(&m, TKS_DECODE_OK));
  m.n = 0;
  mp_map(&m, 4);
  mp_str(&m, "ticker"), mp_str(&m, "AAPL");
  mp_str(&m, "ts"), mp_i64(&m, 6);
  mp_str(&m, "price"), mp_f64(&m, 1.0);
  mp_str(&m, "volume"), put1(&m, 1);
  ASSERT(!verbatim(&m, TKS_DECODE_OK));
  /* The array form is never a subscriber's map. */
  diff_finish(&x);
  diff_init(&x, &market, TKS_MODE_SLOTTED, 65536, 0);
  for (int i = 0; i < 3; i++) {
    m.n = 0;
    mp_array(&m, 5);
    mp_i64(&m, 7 + i), mp_str(&m, "AAPL"), mp_f64(&m, 1.0), put1(&m, 1), mp_str(&m, "R");
    ASSERT(!verbatim(&m, TKS_DECODE_OK));
  }
  diff_finish(&x);
}

TEST(every_near_miss_of_a_learned_shape_decodes_as_tks_decode) {
  schemas();
  diff_init(&x, &market, TKS_MODE_SLOTTED, 65536, 0);
  prime();
  struct mp m;
  struct variant {
    const char *what;
    enum tks_decode_status want;
  } variants[] = {
      {"keys in another order", TKS_DECODE_OK},
      {"a key missing (flags)", TKS_DECODE_OK},
      {"the required key missing (ticker)", TKS_DECODE_REJECT},
      {"an extra key", TKS_DECODE_REJECT},
      {"a key of the same length, other bytes", TKS_DECODE_REJECT},
      {"a key as str8", TKS_DECODE_OK},
      {"price as a string", TKS_DECODE_REJECT},
      {"ticker as an int", TKS_DECODE_REJECT},
      {"ticker not UTF-8", TKS_DECODE_REJECT},
      {"ticker with a space", TKS_DECODE_REJECT},
      {"ticker empty", TKS_DECODE_REJECT},
      {"flags not UTF-8", TKS_DECODE_REJECT},
      {"flags with a space (a string may)", TKS_DECODE_OK},
      {"flags nil", TKS_DECODE_OK},
      {"ts nil (receive time)", TKS_DECODE_OK},
      {"ticker nil", TKS_DECODE_REJECT},
      {"price NaN", TKS_DECODE_REJECT},
      {"price float32", TKS_DECODE_OK},
      {"price an int", TKS_DECODE_OK},
      {"volume uint64 over INT64_MAX", TKS_DECODE_REJECT},
      {"volume negative fixint", TKS_DECODE_OK},
      {"ts a timestamp extension", TKS_DECODE_OK},
      {"ticker str16", TKS_DECODE_OK},
      {"a never-used byte as a value", TKS_DECODE_ERROR},
      {"a nested map as a value", TKS_DECODE_REJECT},
  };
  const unsigned nv = sizeof variants / sizeof variants[0];
  for (unsigned v = 0; v < nv; v++) {
    m.n = 0;
    bool map5 = v != 1 && v != 2 && v != 3;
    if (map5) mp_map(&m, 5);
    switch (v) {
    case 0:
      mp_str(&m, "ts"), mp_i64(&m, 5), mp_str(&m, "ticker"), mp_str(&m, "IBM");
      mp_str(&m, "price"), mp_f64(&m, 1), mp_str(&m, "volume"), put1(&m, 1);
      mp_str(&m, "flags"), mp_str(&m, "");
      break;
    case 1:
    case 2:
      mp_map(&m, 4);
      if (v == 1) mp_str(&m, "ticker"), mp_str(&m, "IBM");
      mp_str(&m, "ts"), mp_i64(&m, 5), mp_str(&m, "price"), mp_f64(&m, 1);
      mp_str(&m, "volume"), put1(&m, 1);
      if (v == 2) mp_str(&m, "flags"), mp_str(&m, "");
      break;
    case 3:
      mp_map(&m, 6);
      mp_str(&m, "ticker"), mp_str(&m, "IBM"), mp_str(&m, "ts"), mp_i64(&m, 5);
      mp_str(&m, "price"), mp_f64(&m, 1), mp_str(&m, "volume"), put1(&m, 1);
      mp_str(&m, "flags"), mp_str(&m, ""), mp_str(&m, "venue"), mp_str(&m, "X");
      break;
    default: {
      /* The learned keys, one value (or key) changed. */
      if (v == 5)
        mp_strn(&m, "ticker", 6, 1); /* the key as d9 06 "ticker" */
      else
        mp_str(&m, v == 4 ? "tickex" : "ticker");
      if (v == 7)
        put1(&m, 42);
      else if (v == 8)
        mp_strn(&m, "AB\xff", 3, 0);
      else if (v == 9)
        mp_str(&m, "A B");
      else if (v == 10)
        mp_str(&m, "");
      else if (v == 15)
        put1(&m, 0xc0);
      else if (v == 22)
        mp_strn(&m, "IBM", 3, 2);
      else
        mp_str(&m, "IBM");
      mp_str(&m, "ts");
      if (v == 14)
        put1(&m, 0xc0);
      else if (v == 21)
        put1(&m, 0xd6), put1(&m, 0xff), put_be(&m, 1700000000, 4);
      else
        mp_i64(&m, 5);
      mp_str(&m, "price");
      if (v == 6)
        mp_str(&m, "1.5");
      else if (v == 16)
        mp_f64(&m, NAN);
      else if (v == 17)
        put1(&m, 0xca), put_be(&m, 0x3fc00000, 4); /* 1.5f */
      else if (v == 18)
        put1(&m, 0xcd), put_be(&m, 1000, 2);
      else if (v == 23)
        put1(&m, 0xc1);
      else if (v == 24)
        mp_map(&m, 1), mp_str(&m, "a"), put1(&m, 1);
      else
        mp_f64(&m, 1.25);
      mp_str(&m, "volume");
      if (v == 19)
        put1(&m, 0xcf), put_be(&m, UINT64_MAX, 8);
      else if (v == 20)
        put1(&m, 0xff);
      else
        put1(&m, 9);
      mp_str(&m, "flags");
      if (v == 11)
        mp_strn(&m, "\xc3(", 2, 0);
      else if (v == 12)
        mp_str(&m, "R S");
      else if (v == 13)
        put1(&m, 0xc0);
      else
        mp_str(&m, "R");
      break;
    }
    }
    enum tks_decode_status st = one(&m);
    if (st != variants[v].want)
      TEST_FAIL("%s: status %d, want %d (%s)", variants[v].what, st, variants[v].want,
                tks_reason_name(x.a.res.reason));
    /* The same bytes with more after them: read in place, not from a copy
     * (fewer bytes than the shape's room are copied first). */
    static struct mp padded;
    padded = m;
    while (padded.n < m.n + 1024) market_tick(&padded, "AAPL", 3, 1.0, 1, "");
    if (diff_decode(&x, padded.b, padded.n, NOW, false) != st)
      TEST_FAIL("%s: another status with bytes after it", variants[v].what);
    /* And the learned shape again: still decoded, on the fast path. */
    uint64_t hits = x.cache->hits;
    m.n = 0;
    market_tick(&m, "AAPL", 3, 1.0, 1, "");
    ASSERT_EQ(one(&m), TKS_DECODE_OK);
    if (x.cache->hits != hits + 1) TEST_FAIL("after '%s' the shape missed", variants[v].what);
  }
  diff_finish(&x);
}

TEST(a_tick_cut_at_every_byte_needs_more_then_decodes_once) {
  schemas();
  diff_init(&x, &market, TKS_MODE_SLOTTED, 65536, 0);
  prime();
  struct mp m = {0};
  market_tick(&m, "A_SYMBOL_OVER_8", 3, 2.5, 4, "R");
  for (size_t cut = 1; cut < m.n; cut++)
    ASSERT_EQ(diff_decode(&x, m.b, cut, NOW, false), TKS_DECODE_NEED_MORE);
  ASSERT_EQ(one(&m), TKS_DECODE_OK);
  diff_finish(&x);
}

TEST(a_tick_over_max_message_bytes_is_too_large_on_the_fast_path_too) {
  schemas();
  struct mp m = {0};
  market_tick(&m, "AAPL", 3, 2.5, 4, "");
  size_t small = m.n;
  diff_init(&x, &market, TKS_MODE_SLOTTED, small, 0);
  ASSERT_EQ(one(&m), TKS_DECODE_OK); /* exactly the limit: taught */
  m.n = 0;
  market_tick(&m, "AAPLX", 3, 2.5, 4, ""); /* one byte over */
  ASSERT_EQ(one(&m), TKS_DECODE_ERROR);
  ASSERT_EQ(x.b.res.reason, TKS_REASON_TOO_LARGE);
  ASSERT_EQ(diff_decode(&x, m.b, small, NOW, false), TKS_DECODE_ERROR); /* the limit in hand */
  ASSERT_EQ(diff_decode(&x, m.b, small - 1, NOW, false), TKS_DECODE_NEED_MORE);
  diff_finish(&x);
}

TEST(the_array_form_has_a_shape_of_its_own) {
  schemas();
  diff_init(&x, &market, TKS_MODE_SLOTTED, 65536, 0);
  struct mp m = {0};
  /* Slot order: ts, ticker, price, volume, flags. */
  for (int i = 0; i < 4; i++) {
    m.n = 0;
    mp_array(&m, 5), mp_i64(&m, i), mp_str(&m, "AAPL"), mp_f64(&m, 1.5), put1(&m, 3);
    if (i == 2)
      put1(&m, 0xc0);
    else
      mp_str(&m, "R");
    ASSERT_EQ(one(&m), TKS_DECODE_OK);
  }
  ASSERT_U64_EQ(x.cache->hits, 3);
  m.n = 0;
  mp_array(&m, 4), mp_i64(&m, 1), mp_str(&m, "AAPL"), mp_f64(&m, 1.5), put1(&m, 3);
  ASSERT_EQ(one(&m), TKS_DECODE_REJECT); /* too short: missing_field */
  ASSERT_EQ(x.b.res.reason, TKS_REASON_MISSING_FIELD);
  diff_finish(&x);
}

TEST(an_id_given_again_after_a_truncate_is_never_taken_from_the_cache) {
  schemas();
  diff_init(&x, &market, TKS_MODE_SLOTTED, 65536, 0);
  prime(); /* AAPL 1, MSFT 2 */
  struct diff_mark mark = diff_mark(&x);
  struct mp m = {0};
  market_tick(&m, "NEW1", 3, 1, 1, "");
  ASSERT_EQ(one(&m), TKS_DECODE_OK); /* NEW1 is id 3, and cached */
  diff_unintern(&x, mark);           /* the daemon refused it */
  m.n = 0;
  market_tick(&m, "NEW2", 4, 1, 1, "");
  ASSERT_EQ(one(&m), TKS_DECODE_OK); /* id 3 is NEW2's now */
  uint32_t id;
  memcpy(&id, x.b.rec + market.fields[market.symbol_field].offset, 4);
  ASSERT_EQ(id, 3);
  m.n = 0;
  market_tick(&m, "NEW1", 5, 1, 1, "");
  ASSERT_EQ(one(&m), TKS_DECODE_OK);
  memcpy(&id, x.b.rec + market.fields[market.symbol_field].offset, 4);
  ASSERT_EQ(id, 4); /* interned again, not the stale 3 */
  ASSERT_STR_EQ(tks_symtab_name(x.b.d.symbols, 4, NULL), "NEW1");
  diff_finish(&x);
}

/* A wide tick: every type, a key over 8 bytes; qty as given (raw bytes). */
static void wide_tick(struct mp *m, const uint8_t *qty, size_t qn, uint8_t live) {
  mp_map(m, 7);
  mp_str(m, "ts"), mp_i64(m, 9), mp_str(m, "sym"), mp_str(m, "AAPL");
  mp_str(m, "venue"), mp_str(m, "XNAS"), mp_str(m, "bid"), mp_f64(m, 2.5);
  mp_str(m, "qty"), put(m, qty, qn), mp_str(m, "live"), put1(m, live);
  mp_str(m, "a_rather_long_field_name"), put1(m, 0xd0), put1(m, 0x80);
}

TEST(values_at_the_edges_of_their_types_decode_as_tks_decode) {
  schemas();
  diff_init(&x, &wide, TKS_MODE_SLOTTED, 65536, 0);
  static const struct {
    uint8_t b[9];
    size_t n;
    enum tks_decode_status want;
  } qty[] = {
      {{0x00}, 1, TKS_DECODE_OK},
      {{0xce, 0xff, 0xff, 0xff, 0xff}, 5, TKS_DECODE_OK}, /* UINT32_MAX */
      {{0xcf, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, 9, TKS_DECODE_OK},
      {{0xcf, 0, 0, 0, 1, 0, 0, 0, 0}, 9, TKS_DECODE_REJECT}, /* UINT32_MAX + 1 */
      {{0xd3, 0, 0, 0, 1, 0, 0, 0, 0}, 9, TKS_DECODE_REJECT},
      {{0xff}, 1, TKS_DECODE_REJECT}, /* -1 */
      {{0xd0, 0x80}, 2, TKS_DECODE_REJECT},
      {{0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0}, 9, TKS_DECODE_REJECT}, /* 1.0 */
      {{0xc0}, 1, TKS_DECODE_OK},
  };
  static struct mp m, padded;
  for (int live = 0; live < 3; live++)
    for (unsigned i = 0; i < sizeof qty / sizeof qty[0]; i++) {
      enum tks_decode_status want = live == 2 ? TKS_DECODE_REJECT : qty[i].want;
      m.n = 0;
      wide_tick(&m, qty[0].b, qty[0].n, 0xc2); /* teaches the shape */
      ASSERT_EQ(one(&m), TKS_DECODE_OK);
      m.n = 0;
      wide_tick(&m, qty[i].b, qty[i].n, live == 2 ? 0x01 : (uint8_t)(0xc2 + live));
      uint64_t hits = x.cache->hits;
      enum tks_decode_status st = one(&m);
      if (st != want) TEST_FAIL("qty %u, live %d: status %d, want %d", i, live, st, want);
      if (want == TKS_DECODE_OK) ASSERT_U64_EQ(x.cache->hits, hits + 1);
      padded = m;
      while (padded.n < m.n + 1024) wide_tick(&padded, qty[0].b, qty[0].n, 0xc3);
      if (diff_decode(&x, padded.b, padded.n, NOW, false) != want)
        TEST_FAIL("qty %u, live %d: another status with bytes after it", i, live);
    }
  diff_finish(&x);
}

TEST(check_only_interns_nothing_on_the_fast_path) {
  schemas();
  diff_init(&x, &market, TKS_MODE_SLOTTED, 65536, 0);
  uint64_t hits = prime();
  struct mp m = {0};
  market_tick(&m, "ZZZZ", 3, 1, 1, "R");
  ASSERT_EQ(diff_decode(&x, m.b, m.n, NOW, true), TKS_DECODE_OK);
  ASSERT_U64_EQ(x.cache->hits, hits + 1);
  ASSERT_EQ(tks_symtab_count(x.b.d.symbols), 2);
  diff_finish(&x);
}

TEST(a_full_symbol_table_is_refused_as_tks_decode_refuses_it) {
  schemas();
  diff_init(&x, &market, TKS_MODE_SLOTTED, 65536, 2);
  prime(); /* AAPL, MSFT: full */
  struct mp m = {0};
  market_tick(&m, "IBM", 3, 1, 1, "");
  ASSERT_EQ(one(&m), TKS_DECODE_REJECT);
  ASSERT_EQ(x.b.res.reason, TKS_REASON_TOO_MANY_SYMBOLS);
  m.n = 0;
  market_tick(&m, "AAPL", 3, 1, 1, "");
  ASSERT_EQ(one(&m), TKS_DECODE_OK);
  diff_finish(&x);
}

TEST(fallback_mode_keeps_plain_ticks_fast_and_extra_fields_dynamic) {
  schemas();
  diff_init(&x, &market, TKS_MODE_FALLBACK, 65536, 0);
  uint64_t hits = prime();
  ASSERT_U64_EQ(hits, 1);
  struct mp m = {0};
  mp_map(&m, 6);
  mp_str(&m, "ticker"), mp_str(&m, "IBM"), mp_str(&m, "ts"), mp_i64(&m, 5);
  mp_str(&m, "price"), mp_f64(&m, 1), mp_str(&m, "volume"), put1(&m, 1);
  mp_str(&m, "flags"), mp_str(&m, ""), mp_str(&m, "x1"), put1(&m, 9);
  ASSERT_EQ(one(&m), TKS_DECODE_DYNAMIC);
  m.n = 0;
  market_tick(&m, "IBM", 6, 1, 1, "");
  ASSERT_EQ(one(&m), TKS_DECODE_OK);
  ASSERT_U64_EQ(x.cache->hits, 2);
  diff_finish(&x);
}

/* ---- random and mutated streams ---- */

static uint64_t rng;
static uint64_t rnd(void) { /* splitmix64 */
  uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static unsigned below(unsigned n) { return (unsigned)(rnd() % n); }

static const char *const pool[] = {
    "AAPL",
    "MSFT",
    "S0001",
    "S0002",
    "S0003",
    "A_SYMBOL_OVER_8",
    "ANOTHER_LONG_ONE",
    "R",
    "",
    "A B",
    "\xff",
    "\xc3\xa9t\xc3\xa9",
    "\x01x",
    "\xed\xa0\x80",
};

static void random_int(struct mp *m) {
  switch (below(9)) {
  case 0: put1(m, (uint8_t)below(128)); break;
  case 1: put1(m, (uint8_t)(0xe0 | below(32))); break;
  case 2: put1(m, 0xcc), put1(m, (uint8_t)rnd()); break;
  case 3: put1(m, 0xcd), put_be(m, rnd(), 2); break;
  case 4: put1(m, 0xce), put_be(m, rnd(), 4); break;
  case 5: put1(m, 0xcf), put_be(m, below(2) ? rnd() : rnd() >> 1, 8); break;
  case 6: {
    unsigned k = below(3); /* int8, int16, int32 */
    put1(m, (uint8_t)(0xd0 + k)), put_be(m, rnd(), 1 << k);
    break;
  }
  case 7: mp_i64(m, (int64_t)rnd()); break;
  default: put1(m, 0xd2), put_be(m, rnd(), 4); break;
  }
}

/* A value for field f: mostly of its type, in the encodings senders use. */
static void random_value(struct mp *m, const struct tks_field *f) {
  unsigned r = below(100);
  if (r < 2) {
    put1(m, 0xc0);
    return;
  }
  if (r < 4) { /* anything */
    static const uint8_t odd[][3] = {{0xc2}, {0xc3}, {0xc1}, {0x90}, {0x80}, {0xa1, 'x'}};
    unsigned k = below(6);
    put(m, odd[k], k == 5 ? 2 : 1);
    return;
  }
  switch (f->type) {
  case TKS_TYPE_TIMESTAMP:
    if (below(8) == 0)
      put1(m, 0xd6), put1(m, 0xff), put_be(m, rnd(), 4);
    else if (below(8) == 0)
      put1(m, 0xd7), put1(m, below(2) ? 0xff : 1), put_be(m, rnd(), 8);
    else
      mp_i64(m, (int64_t)(rnd() >> 2));
    break;
  case TKS_TYPE_I64: random_int(m); break;
  case TKS_TYPE_U32: /* mostly in range */
    if (below(4))
      put1(m, 0xce), put_be(m, rnd(), 4);
    else
      random_int(m);
    break;
  case TKS_TYPE_F64:
    if (below(10) == 0)
      random_int(m);
    else if (below(10) == 0)
      put1(m, 0xca), put_be(m, rnd(), 4);
    else if (below(20) == 0)
      mp_f64(m, below(2) ? NAN : INFINITY);
    else
      mp_f64(m, (double)below(100000) / 100);
    break;
  case TKS_TYPE_SYMBOL:
  case TKS_TYPE_STRING: {
    const char *s = pool[below(below(4) ? 8 : sizeof pool / sizeof pool[0])];
    mp_strn(m, s, strlen(s), below(6) == 0 ? (int)below(4) : 0);
    break;
  }
  case TKS_TYPE_BOOL: put1(m, below(2) ? 0xc3 : 0xc2); break;
  case TKS_TYPE__COUNT: break;
  }
}

/* A stream of ticks mostly of one shape (fields in one order, one form),
 * some of another, then mutated. */
static size_t random_stream(struct mp *m, const struct tks_schema *s) {
  int order[TKS_SCHEMA_MAX_FIELDS], n = (int)s->nfields;
  for (int i = 0; i < n; i++) order[i] = i;
  for (int i = n - 1; i > 0; i--) {
    int j = (int)below((unsigned)i + 1), t = order[i];
    order[i] = order[j], order[j] = t;
  }
  int keys = n - (int)below(2); /* sometimes one key left out throughout */
  bool array = below(8) == 0;
  unsigned ticks = 1 + below(24);
  for (unsigned t = 0; t < ticks; t++) {
    int k = keys;
    bool other = below(10) == 0;
    if (array) {
      mp_array(m, other ? (unsigned)n - 1 + below(3) : (unsigned)n);
      for (int i = 0; i < n; i++) random_value(m, &s->fields[i]);
      continue;
    }
    if (other) k = (int)below((unsigned)n + 2);
    mp_map(m, (unsigned)k);
    for (int i = 0; i < k; i++) {
      int fi = order[i % n];
      if (other && below(4) == 0) fi = (int)below((unsigned)n);
      if (i >= n || (other && below(6) == 0)) {
        mp_str(m, below(2) ? "undeclared" : "x1");
      } else {
        const char *name = s->fields[fi].name;
        mp_strn(m, name, strlen(name), other && below(3) == 0 ? 1 : 0);
      }
      random_value(m, &s->fields[fi]);
    }
  }
  /* Mutations: a byte changed, cut, added or removed. */
  for (unsigned k = below(3) == 0 ? below(4) : 0; k > 0 && m->n > 1; k--) {
    size_t at = below((unsigned)m->n);
    switch (below(4)) {
    case 0: m->b[at] = (uint8_t)rnd(); break;
    case 1: m->b[at] ^= (uint8_t)(1u << below(8)); break;
    case 2: m->n = at + 1; break;
    default: memmove(m->b + at, m->b + at + 1, m->n - at - 1), m->n--; break;
    }
  }
  return m->n;
}

/* An accepted slotted tick against msgpack-c: one object of the length
 * consumed, a map or array, each string value the one its id names. */
static void check_with_msgpack_c(const struct tks_schema *s, const uint8_t *buf, size_t len) {
  msgpack_zone zone;
  msgpack_zone_init(&zone, 2048);
  msgpack_object o;
  size_t off = 0;
  msgpack_unpack_return ur = msgpack_unpack((const char *)buf, len, &off, &zone, &o);
  if (ur != MSGPACK_UNPACK_SUCCESS && ur != MSGPACK_UNPACK_EXTRA_BYTES)
    TEST_FAIL("an accepted tick msgpack-c cannot read: %d", ur);
  ASSERT_EQ(off, x.b.res.consumed);
  ASSERT(o.type == MSGPACK_OBJECT_MAP || o.type == MSGPACK_OBJECT_ARRAY);
  uint32_t n = o.type == MSGPACK_OBJECT_MAP ? o.via.map.size : o.via.array.size;
  for (uint32_t i = 0; i < n; i++) {
    int fi = (int)i;
    const msgpack_object *v = &o.via.array.ptr[i];
    if (o.type == MSGPACK_OBJECT_MAP) {
      const msgpack_object *k = &o.via.map.ptr[i].key;
      fi = tks_schema_find(s, k->via.str.ptr, k->via.str.size);
      ASSERT(fi >= 0);
      v = &o.via.map.ptr[i].val;
    }
    const struct tks_field *f = &s->fields[fi];
    if (v->type != MSGPACK_OBJECT_STR) continue;
    ASSERT(f->type == TKS_TYPE_SYMBOL || f->type == TKS_TYPE_STRING);
    uint32_t id;
    memcpy(&id, x.b.rec + f->offset, 4);
    size_t sl;
    const char *name = tks_symtab_name(f->type == TKS_TYPE_SYMBOL ? x.b.d.symbols : x.b.d.strings,
                                       id, &sl);
    ASSERT(name && sl == v->via.str.size && memcmp(name, v->via.str.ptr, sl) == 0);
  }
  msgpack_zone_destroy(&zone);
}

TEST_TIMEOUT(random_and_mutated_streams_decode_as_tks_decode_and_msgpack_c_reads, 120) {
  schemas();
  rng = 20240611;
  uint64_t streams = 0, ticks = 0, hits = 0, ok = 0;
  time_t end = time(NULL) + 8;
  static struct mp m;
  while (streams < 4000 || (streams < 200000 && time(NULL) < end)) {
    const struct tks_schema *s = below(2) ? &market : &wide;
    static const enum tks_mode modes[] = {TKS_MODE_SLOTTED, TKS_MODE_SLOTTED, TKS_MODE_FALLBACK,
                                          TKS_MODE_DYNAMIC};
    enum tks_mode mode = modes[below(4)];
    size_t max = below(8) == 0 ? 20 + below(60) : 65536;
    diff_init(&x, s, mode, max, below(4) == 0 ? 3 : 0);
    for (int round = 0; round < 3; round++) { /* one connection, streams in turn */
      m.n = 0;
      size_t len = random_stream(&m, s);
      bool check_only = below(10) == 0;
      unsigned unintern = below(3) == 0 ? 1 + below(4) : 0;
      size_t off = 0;
      unsigned accepted = 0;
      while (off < len) {
        struct diff_mark mark = diff_mark(&x);
        enum tks_decode_status st = diff_decode(&x, m.b + off, len - off, NOW, check_only);
        if (st == TKS_DECODE_NEED_MORE || st == TKS_DECODE_ERROR) break;
        ticks++;
        if (st == TKS_DECODE_OK && mode == TKS_MODE_SLOTTED && !check_only) {
          check_with_msgpack_c(s, m.b + off, len - off);
          ok++;
        }
        if (st == TKS_DECODE_REJECT ||
            (unintern && (st == TKS_DECODE_OK || st == TKS_DECODE_DYNAMIC) &&
             ++accepted % unintern == 0))
          diff_unintern(&x, mark);
        off += x.a.res.consumed;
      }
    }
    hits += x.cache->hits;
    diff_finish(&x);
    streams++;
  }
  printf(
      "# %llu streams, %llu messages, %llu accepted slotted ticks read by msgpack-c, %llu on the "
      "fast path\n",
      (unsigned long long)streams, (unsigned long long)ticks, (unsigned long long)ok,
      (unsigned long long)hits);
  fflush(stdout);
  /* The loop must reach the fast path, or it proves nothing. */
  ASSERT(hits > ticks / 10);
}

TEST_MAIN()
