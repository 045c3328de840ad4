/* Unit tests of lib/store.c: per-symbol time order, late inserts, block
 * growth and splits, range and last queries, memory counting, eviction
 * (whole blocks and exact), its observer and the cut for bytes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "schema.h"
#include "slab.h"
#include "stats.h"
#include "store.h"
#include "test.h"
#include "util.h"

struct rec { /* MarketEvent's layout */
  int64_t ts;
  double price;
  int64_t volume;
  uint32_t ticker;
  uint32_t flags;
};

struct fixture {
  struct tks_schema schema;
  struct tks_slab *slab;
  struct tks_store *st;
};

static void setup(struct fixture *f) {
  tks_schema_default(&f->schema);
  ASSERT_EQ(f->schema.record_size, sizeof(struct rec));
  f->slab = tks_slab_create(1 << 20, 1.25, 32);
  f->st = tks_store_create(&f->schema, f->slab);
  ASSERT(f->slab && f->st);
}

static void teardown(struct fixture *f) {
  tks_store_destroy(f->st);
  tks_slab_destroy(f->slab);
}

static void put(struct fixture *f, uint32_t sym, int64_t ts, int64_t vol) {
  struct rec r = {.ts = ts, .price = 1.5, .volume = vol, .ticker = sym};
  ASSERT_EQ(tks_store_append(f->st, &r), 0);
}

struct collect {
  int64_t ts[100000];
  int64_t vol[100000];
  unsigned n;
  unsigned stop_after;
};

static int collect_fn(void *ctx, const void *record, const struct tks_dynobj *obj) {
  struct collect *c = ctx;
  ASSERT(record && !obj);
  const struct rec *r = record;
  c->ts[c->n] = r->ts;
  c->vol[c->n] = r->volume;
  c->n++;
  return c->stop_after && c->n >= c->stop_after;
}

static struct collect coll;

TEST(in_order_ticks_come_back_in_order_per_symbol) {
  struct fixture f;
  setup(&f);
  for (int i = 0; i < 10000; i++) {
    put(&f, 1, 1000 + i, i);
    put(&f, 2, 5000 + i, -i);
  }
  ASSERT_EQ(tks_store_ticks(f.st), 20000);
  ASSERT_EQ(tks_store_series_count(f.st), 2);
  ASSERT_EQ(tks_store_late_ticks(f.st), 0);
  struct tks_series_info si;
  ASSERT_EQ(tks_store_series(f.st, 1, &si), 0);
  ASSERT_EQ(si.count, 10000);
  ASSERT_EQ(si.first_ts, 1000);
  ASSERT_EQ(si.last_ts, 10999);
  memset(&coll, 0, sizeof coll);
  ASSERT_EQ(tks_store_range(f.st, 2, INT64_MIN, INT64_MAX, 0, collect_fn, &coll), 10000);
  for (unsigned i = 0; i < coll.n; i++) ASSERT_EQ(coll.vol[i], -(int64_t)i);
  ASSERT_EQ(tks_store_series(f.st, 3, &si), -ENOENT);
  teardown(&f);
}

TEST(late_ticks_are_inserted_in_time_order) {
  struct fixture f;
  setup(&f);
  /* A shuffled sequence, enough to split blocks many times. */
  enum { N = 20000 };
  static int64_t ts[N];
  for (int i = 0; i < N; i++) ts[i] = i * 10;
  srand(42);
  for (int i = N - 1; i > 0; i--) {
    int j = rand() % (i + 1);
    int64_t t = ts[i];
    ts[i] = ts[j];
    ts[j] = t;
  }
  for (int i = 0; i < N; i++) put(&f, 7, ts[i], ts[i]);
  ASSERT_EQ(tks_store_ticks(f.st), N);
  ASSERT(tks_store_late_ticks(f.st) > N / 2);
  memset(&coll, 0, sizeof coll);
  ASSERT_EQ(tks_store_range(f.st, 7, INT64_MIN, INT64_MAX, 0, collect_fn, &coll), N);
  for (unsigned i = 0; i < N; i++) ASSERT_EQ(coll.ts[i], (int64_t)i * 10);
  teardown(&f);
}

TEST(equal_timestamps_keep_arrival_order) {
  struct fixture f;
  setup(&f);
  put(&f, 1, 100, 1);
  put(&f, 1, 200, 2);
  put(&f, 1, 100, 3); /* late, equal to the first: goes after it */
  put(&f, 1, 200, 4);
  memset(&coll, 0, sizeof coll);
  tks_store_range(f.st, 1, INT64_MIN, INT64_MAX, 0, collect_fn, &coll);
  ASSERT_EQ(coll.n, 4);
  ASSERT_EQ(coll.vol[0], 1);
  ASSERT_EQ(coll.vol[1], 3);
  ASSERT_EQ(coll.vol[2], 2);
  ASSERT_EQ(coll.vol[3], 4);
  teardown(&f);
}

TEST(range_is_inclusive_exclusive_and_limited) {
  struct fixture f;
  setup(&f);
  for (int i = 0; i < 5000; i++) put(&f, 1, i, i);
  memset(&coll, 0, sizeof coll);
  ASSERT_EQ(tks_store_range(f.st, 1, 1000, 2000, 0, collect_fn, &coll), 1000);
  ASSERT_EQ(coll.ts[0], 1000);
  ASSERT_EQ(coll.ts[999], 1999);
  memset(&coll, 0, sizeof coll);
  ASSERT_EQ(tks_store_range(f.st, 1, 1000, 2000, 10, collect_fn, &coll), 10);
  ASSERT_EQ(tks_store_range(f.st, 1, 2000, 1000, 0, collect_fn, &coll), 0);
  ASSERT_EQ(tks_store_range(f.st, 9, 0, 10, 0, collect_fn, &coll), 0);
  teardown(&f);
}

/* The walk of one representation tests each ts only in the block where `to`
 * falls: every bound, inside a block and at its edges, with equal ts and
 * late ticks among them, a limit, and a callback that stops. */
TEST(range_ends_exactly_at_to_in_every_block) {
  struct fixture f;
  setup(&f);
  enum { N = 20000 };
  static int64_t want[N];
  /* ts 0, 0, 2, 2, 4, ... with every 97th tick late (0.5 behind, as ts - 1). */
  for (int i = 0; i < N; i++) {
    int64_t ts = (int64_t)(i / 2) * 2;
    if (i % 97 == 96) ts -= 1;
    put(&f, 1, ts, i);
  }
  for (int i = 0; i < N; i++) want[i] = (int64_t)(i / 2) * 2 - (i % 97 == 96);
  /* Sorted, as the store keeps them (late ones slot in before their ts). */
  for (int i = 1; i < N; i++)
    for (int j = i; j > 0 && want[j - 1] > want[j]; j--) {
      int64_t t = want[j];
      want[j] = want[j - 1];
      want[j - 1] = t;
    }
  for (int64_t to = -1; to <= (int64_t)N + 2; to += 7) {
    uint64_t expect = 0;
    while (expect < N && want[expect] < to) expect++;
    memset(&coll, 0, sizeof coll);
    ASSERT_EQ(tks_store_range(f.st, 1, INT64_MIN, to, 0, collect_fn, &coll), expect);
    ASSERT_EQ(coll.n, (unsigned)expect);
    for (unsigned k = 0; k < coll.n; k++) ASSERT_EQ(coll.ts[k], want[k]);
    memset(&coll, 0, sizeof coll);
    uint64_t lim = expect > 3 ? expect - 3 : expect;
    ASSERT_EQ(tks_store_range(f.st, 1, INT64_MIN, to, lim ? lim : 0, collect_fn, &coll),
              lim ? lim : expect);
    memset(&coll, 0, sizeof coll);
    coll.stop_after = 5;
    ASSERT_EQ(tks_store_range(f.st, 1, INT64_MIN, to, 0, collect_fn, &coll),
              expect < 5 ? expect : 5);
  }
  teardown(&f);
}

TEST(last_returns_the_newest_oldest_first) {
  struct fixture f;
  setup(&f);
  for (int i = 0; i < 3000; i++) put(&f, 4, i, i);
  memset(&coll, 0, sizeof coll);
  ASSERT_EQ(tks_store_last(f.st, 4, 500, collect_fn, &coll), 500);
  ASSERT_EQ(coll.ts[0], 2500);
  ASSERT_EQ(coll.ts[499], 2999);
  memset(&coll, 0, sizeof coll);
  ASSERT_EQ(tks_store_last(f.st, 4, 10000, collect_fn, &coll), 3000);
  ASSERT_EQ(coll.ts[0], 0);
  memset(&coll, 0, sizeof coll);
  coll.stop_after = 3;
  ASSERT_EQ(tks_store_last(f.st, 4, 100, collect_fn, &coll), 3);
  teardown(&f);
}

TEST(memory_per_tick_approaches_the_packed_record_size) {
  struct fixture f;
  setup(&f);
  for (int i = 0; i < 400000; i++) put(&f, 1 + (uint32_t)(i % 100), i, i);
  /* Packed, a record of 32 bytes takes 14: ts 3 bytes from its block's
   * first (a block spans under 2^23), ticker 0 (the series'), price 8,
   * volume 3 (under 2^23), flags 0 (always 0). */
  struct tks_store_block_info bi;
  ASSERT_EQ(tks_store_block_info(f.st, TKS_STORE_SLOTTED, 7, 5, &bi), 0);
  ASSERT_EQ(bi.entry_bytes, 14);
  ASSERT_EQ(bi.count, bi.cap);
  ASSERT_EQ(bi.cap, (bi.bytes - 48) / 14);
  struct tks_stats *stats = tks_stats_create();
  struct tks_buf text = {0};
  tks_store_stats(f.st, stats);
  ASSERT_EQ(tks_stats_text(stats, &text), 0);
  ASSERT_CONTAINS(text.data, "store.layout ts:+3 ticker:- price:8 volume:3 flags:0\n");
  ASSERT_CONTAINS(text.data, "store.slotted.record_bytes 13.");
  tks_buf_finish(&text);
  tks_stats_destroy(stats);
  /* Chunk bytes per tick: records, block headers, the unfilled tail of each
   * symbol's newest block.  (Whole pages are the benchmark's business: at
   * 400k ticks a page per class is still a visible share.) */
  double per_tick = (double)tks_store_block_bytes(f.st) / 400000.0;
  ASSERT(per_tick >= 14.0);
  if (per_tick > 15.0) TEST_FAIL("block bytes per tick %.2f, want <= 15", per_tick);
  /* Block bytes are what the slab handed out. */
  ASSERT_U64_EQ(tks_store_block_bytes(f.st), tks_slab_bytes_used(f.slab));
  teardown(&f);
}

TEST(a_symbol_with_one_tick_costs_one_small_block) {
  struct fixture f;
  setup(&f);
  put(&f, 1, 1, 1);
  size_t chunk = tks_slab_chunk_size(f.slab, tks_slab_class_for(f.slab, TKS_STORE_BLOCK_MIN));
  ASSERT_EQ(tks_store_block_bytes(f.st), chunk);
  ASSERT(chunk < 2 * TKS_STORE_BLOCK_MIN);
  teardown(&f);
}

TEST(store_full_is_reported_and_nothing_is_stored) {
  struct fixture f;
  tks_schema_default(&f.schema);
  f.slab = tks_slab_create(65536, 1.25, 32);
  tks_slab_set_limit(f.slab, 65536);
  f.st = tks_store_create(&f.schema, f.slab);
  struct rec r = {.ts = 1, .ticker = 1};
  int ok = 0, full = 0;
  for (int i = 0; i < 5000; i++) {
    r.ts = i;
    r.ticker = 1 + (uint32_t)(i % 3);
    if (tks_store_append(f.st, &r) == 0)
      ok++;
    else
      full++;
  }
  ASSERT(full > 0);
  ASSERT_EQ(tks_store_ticks(f.st), ok);
  teardown(&f);
}

/* Which representation each visited tick came from, in order. */
static char kinds[64];
static unsigned nkinds;
static int64_t kind_ts[64];

static int kind_fn(void *ctx, const void *record, const struct tks_dynobj *obj) {
  (void)ctx;
  char k = record && obj ? 'o' : record ? 's' : 'd';
  int64_t ts;
  if (record) {
    memcpy(&ts, record, 8);
  } else {
    const struct tks_dyn_slot *sl = tks_dynobj_get(obj, 1); /* key 1 holds ts */
    ts = sl ? sl->v.i : -1;
  }
  kinds[nkinds] = k;
  kind_ts[nkinds++] = ts;
  return 0;
}

static struct tks_dynobj *obj_with_ts(struct fixture *f, int64_t ts) {
  struct tks_dynobj *o = tks_store_new_dynobj(f->st, 1, 0);
  ASSERT(o);
  struct tks_value v = {.type = TKS_V_INT, .v.i = ts};
  ASSERT_EQ(tks_dynobj_put(o, 1, &v), 0);
  return o;
}

TEST(queries_merge_the_three_representations_in_time_order) {
  struct fixture f;
  setup(&f);
  /* ts 0..8: slotted at 0,3,6; overflow at 1,4,7; dynamic at 2,5,8, sent
   * out of order to exercise late inserts in every series. */
  int64_t order[] = {6, 0, 3, 7, 1, 4, 8, 2, 5};
  for (unsigned i = 0; i < 9; i++) {
    int64_t t = order[i];
    struct rec r = {.ts = t, .price = 1, .volume = t, .ticker = 3};
    if (t % 3 == 0) {
      ASSERT_EQ(tks_store_append(f.st, &r), 0);
    } else if (t % 3 == 1) {
      ASSERT_EQ(tks_store_append_overflow(f.st, &r, obj_with_ts(&f, t)), 0);
    } else {
      ASSERT_EQ(tks_store_append_dynamic(f.st, 3, t, obj_with_ts(&f, t)), 0);
    }
  }
  ASSERT_EQ(tks_store_ticks(f.st), 9);
  /* Late against the symbol's newest at arrival, whatever the series:
   * 0, 3, 1, 4, 2 and 5; and an overflow tick older than the symbol's
   * newest slotted one is late though it is the first of its series. */
  ASSERT_U64_EQ(tks_store_late_ticks(f.st), 6);
  struct rec r9 = {.ts = 10, .price = 1, .volume = 1, .ticker = 9};
  ASSERT_EQ(tks_store_append(f.st, &r9), 0);
  r9.ts = 5;
  ASSERT_EQ(tks_store_append_overflow(f.st, &r9, obj_with_ts(&f, 5)), 0);
  ASSERT_U64_EQ(tks_store_late_ticks(f.st), 7);
  /* Symbol 9 goes again, so that what follows holds. */
  ASSERT_U64_EQ(tks_store_evict_head(f.st, TKS_STORE_SLOTTED, 9, 1), 1);
  ASSERT_U64_EQ(tks_store_evict_head(f.st, TKS_STORE_OVERFLOW, 9, 1), 1);
  struct tks_series_info si;
  ASSERT_EQ(tks_store_series(f.st, 3, &si), 0);
  ASSERT_EQ(si.count, 9);
  ASSERT_EQ(si.first_ts, 0);
  ASSERT_EQ(si.last_ts, 8);
  nkinds = 0;
  ASSERT_EQ(tks_store_range(f.st, 3, 0, 100, 0, kind_fn, NULL), 9);
  kinds[nkinds] = 0;
  ASSERT_STR_EQ(kinds, "sodsodsod");
  for (unsigned i = 0; i < 9; i++) ASSERT_EQ(kind_ts[i], i);
  nkinds = 0;
  ASSERT_EQ(tks_store_last(f.st, 3, 4, kind_fn, NULL), 4);
  kinds[nkinds] = 0;
  ASSERT_STR_EQ(kinds, "dsod");
  ASSERT_EQ(kind_ts[0], 5);
  ASSERT_EQ(kind_ts[3], 8);
  nkinds = 0;
  ASSERT_EQ(tks_store_range(f.st, 3, 2, 5, 0, kind_fn, NULL), 3);
  ASSERT_EQ(kind_ts[0], 2);
  struct tks_store_repr rp;
  tks_store_repr(f.st, &rp);
  ASSERT_EQ(rp.slotted_ticks, 3);
  ASSERT_EQ(rp.overflow_ticks, 3);
  ASSERT_EQ(rp.dynamic_ticks, 3);
  ASSERT(rp.overflow_map_bytes >= 3 * tks_dynobj_size(1, 0));
  teardown(&f); /* frees the objects too: LeakSanitizer would say */
}

/* ---- eviction ---- */

/* Block and object chunk bytes the store holds, from its own counters. */
static uint64_t held_bytes(const struct tks_store *st) {
  struct tks_store_repr r;
  tks_store_repr(st, &r);
  return tks_store_block_bytes(st) + r.overflow_map_bytes + r.dynamic_object_bytes;
}

/* Every tick of symbol sym, in time order, and the store's count agree. */
static void expect_series_ordered(struct fixture *f, uint32_t sym) {
  memset(&coll, 0, sizeof coll);
  uint64_t n = tks_store_range(f->st, sym, INT64_MIN, INT64_MAX, 0, collect_fn, &coll);
  struct tks_series_info si;
  if (n == 0) {
    ASSERT_EQ(tks_store_series(f->st, sym, &si), -ENOENT);
    return;
  }
  ASSERT_EQ(tks_store_series(f->st, sym, &si), 0);
  ASSERT_U64_EQ(si.count, n);
  ASSERT_EQ(si.first_ts, coll.ts[0]);
  ASSERT_EQ(si.last_ts, coll.ts[n - 1]);
  for (unsigned i = 1; i < coll.n; i++)
    if (coll.ts[i] < coll.ts[i - 1])
      TEST_FAIL("symbol %u: ts %lld after %lld", sym, (long long)coll.ts[i],
                (long long)coll.ts[i - 1]);
}

TEST(evict_oldest_keeps_the_newest_ticks_of_every_symbol_in_time_order) {
  struct fixture f;
  setup(&f);
  /* 100 symbols, ts interleaved across them; every 7th tick is late, so
   * that blocks are split and the block arrays are not trivial. */
  enum { NSYM = 100, PER = 2000 };
  uint64_t appended = 0;
  for (int i = 0; i < PER; i++)
    for (uint32_t s = 1; s <= NSYM; s++) {
      int64_t ts = (int64_t)i * 1000 + s;
      put(&f, s, i % 7 == 6 ? ts - 5000 : ts, i);
      appended++;
    }
  uint64_t used0 = tks_slab_bytes_used(f.slab), held0 = held_bytes(f.st);
  ASSERT_U64_EQ(held0, used0);
  uint64_t freed = tks_store_evict_oldest(f.st, 1 << 20);
  ASSERT(freed >= 1 << 20);
  ASSERT(freed < (1 << 20) + TKS_STORE_BLOCK_MAX * 2); /* whole blocks: stops just past it */
  ASSERT_U64_EQ(held0 - held_bytes(f.st), freed);
  ASSERT_U64_EQ(used0 - tks_slab_bytes_used(f.slab), freed);
  ASSERT_U64_EQ(tks_store_evicted_bytes(f.st), freed);
  uint64_t ticks = tks_store_ticks(f.st), evicted = tks_store_evicted_ticks(f.st);
  ASSERT(evicted > 0);
  ASSERT_U64_EQ(ticks + evicted, appended);
  ASSERT_EQ(tks_store_series_count(f.st), NSYM);
  /* The oldest went: every symbol lost a prefix of about the same span of
   * time, and kept its newest tick. */
  int64_t newest_first = INT64_MIN, oldest_first = INT64_MAX;
  uint64_t sum = 0;
  for (uint32_t s = 1; s <= NSYM; s++) {
    expect_series_ordered(&f, s);
    sum += coll.n;
    ASSERT(coll.n < PER);
    ASSERT_EQ(coll.ts[coll.n - 1], (int64_t)(PER - 1) * 1000 + s);
    if (coll.ts[0] > newest_first) newest_first = coll.ts[0];
    if (coll.ts[0] < oldest_first) oldest_first = coll.ts[0];
  }
  ASSERT_U64_EQ(sum, ticks);
  /* A block holds cap ticks, one per 1000 ts units per symbol. */
  struct tks_store_block_info bi;
  ASSERT_EQ(tks_store_block_info(f.st, TKS_STORE_SLOTTED, 1, 0, &bi), 0);
  if (newest_first - oldest_first > 2 * (int64_t)bi.cap * 1000)
    TEST_FAIL("first kept ts ranges from %lld to %lld", (long long)oldest_first,
              (long long)newest_first);
  /* last still works, and so do late inserts into what is left. */
  memset(&coll, 0, sizeof coll);
  ASSERT_EQ(tks_store_last(f.st, 5, 3, collect_fn, &coll), 3);
  ASSERT_EQ(coll.ts[2], (int64_t)(PER - 1) * 1000 + 5);
  put(&f, 5, INT64_MIN + 1, -1); /* older than anything kept */
  put(&f, 5, oldest_first + 1, -2);
  expect_series_ordered(&f, 5);
  ASSERT_EQ(coll.ts[0], INT64_MIN + 1);
  teardown(&f);
}

/* An object with 1 + extra fields: ts as key 1, then keys 2.. . */
static struct tks_dynobj *obj_sized(struct fixture *f, int64_t ts, unsigned extra) {
  struct tks_dynobj *o = tks_store_new_dynobj(f->st, 1 + extra, 0);
  ASSERT(o);
  struct tks_value v = {.type = TKS_V_INT, .v.i = ts};
  for (unsigned k = 0; k <= extra; k++) ASSERT_EQ(tks_dynobj_put(o, 1 + k, &v), 0);
  return o;
}

TEST(eviction_reports_the_bytes_the_slab_got_back) {
  struct fixture f;
  setup(&f);
  /* Slotted, overflow and dynamic ticks, objects of several sizes (and so
   * of several slab classes, whose chunks are larger than the objects). */
  for (int i = 0; i < 6000; i++) {
    uint32_t sym = 1 + (uint32_t)(i % 7);
    struct rec r = {.ts = i, .price = 1, .volume = i, .ticker = sym};
    if (i % 3 == 0)
      ASSERT_EQ(tks_store_append(f.st, &r), 0);
    else if (i % 3 == 1)
      ASSERT_EQ(tks_store_append_overflow(f.st, &r, obj_sized(&f, i, (unsigned)i % 5)), 0);
    else
      ASSERT_EQ(tks_store_append_dynamic(f.st, sym, i, obj_sized(&f, i, (unsigned)i % 9)), 0);
  }
  /* evict_oldest's answer, and the evicted-bytes counter, against the slab
   * bytes in use before and after, slice after slice. */
  static const uint64_t slices[] = {1, 5000, 30000, 100000};
  for (size_t k = 0; k < TKS_ARRAY_SIZE(slices); k++) {
    uint64_t used0 = tks_slab_bytes_used(f.slab), ev0 = tks_store_evicted_bytes(f.st);
    uint64_t freed = tks_store_evict_oldest(f.st, slices[k]);
    ASSERT(freed >= slices[k]);
    ASSERT_U64_EQ(used0 - tks_slab_bytes_used(f.slab), freed);
    ASSERT_U64_EQ(tks_store_evicted_bytes(f.st) - ev0, freed);
  }
  /* The retention path: evict_before counts into the same figure. */
  uint64_t used0 = tks_slab_bytes_used(f.slab), ev0 = tks_store_evicted_bytes(f.st);
  ASSERT(tks_store_evict_before(f.st, 4000) > 0);
  ASSERT(tks_store_evicted_bytes(f.st) > ev0);
  ASSERT_U64_EQ(used0 - tks_slab_bytes_used(f.slab), tks_store_evicted_bytes(f.st) - ev0);
  /* And the rest. */
  used0 = tks_slab_bytes_used(f.slab);
  uint64_t freed = tks_store_evict_oldest(f.st, UINT64_MAX);
  ASSERT_U64_EQ(used0 - tks_slab_bytes_used(f.slab), freed);
  ASSERT_U64_EQ(tks_slab_bytes_used(f.slab), 0);
  ASSERT_EQ(tks_store_ticks(f.st), 0);
  teardown(&f);
}

TEST(evicting_everything_returns_every_chunk_and_object) {
  struct fixture f;
  setup(&f);
  uint64_t appended = 0;
  for (int i = 0; i < 3000; i++) {
    uint32_t sym = 1 + (uint32_t)(i % 5);
    struct rec r = {.ts = i, .price = 1, .volume = i, .ticker = sym};
    if (i % 3 == 0) {
      ASSERT_EQ(tks_store_append(f.st, &r), 0);
    } else if (i % 3 == 1) {
      ASSERT_EQ(tks_store_append_overflow(f.st, &r, obj_with_ts(&f, i)), 0);
    } else {
      ASSERT_EQ(tks_store_append_dynamic(f.st, sym, i, obj_with_ts(&f, i)), 0);
    }
    appended++;
  }
  uint64_t index0 = tks_store_index_bytes(f.st);
  ASSERT_U64_EQ(held_bytes(f.st), tks_slab_bytes_used(f.slab));
  /* A small slice first: objects go with their entries. */
  uint64_t freed = tks_store_evict_oldest(f.st, 10000);
  ASSERT(freed >= 10000);
  ASSERT_U64_EQ(held_bytes(f.st), tks_slab_bytes_used(f.slab));
  ASSERT_U64_EQ(tks_store_ticks(f.st) + tks_store_evicted_ticks(f.st), appended);
  struct tks_store_repr rp;
  tks_store_repr(f.st, &rp);
  ASSERT_U64_EQ(rp.slotted_ticks + rp.overflow_ticks + rp.dynamic_ticks, tks_store_ticks(f.st));
  ASSERT(rp.dynamic_object_requested >= rp.dynamic_ticks * tks_dynobj_size(1, 0));
  ASSERT(rp.dynamic_object_requested < (rp.dynamic_ticks + 1) * tks_dynobj_size(1, 0) + 1);
  /* What is left is the newest: every symbol still has its last tick. */
  for (uint32_t s = 1; s <= 5; s++) {
    struct tks_series_info si;
    ASSERT_EQ(tks_store_series(f.st, s, &si), 0);
    ASSERT_EQ(si.last_ts, 2995 + (int64_t)s - 1);
  }
  /* Then the rest. */
  freed += tks_store_evict_oldest(f.st, UINT64_MAX);
  ASSERT_U64_EQ(tks_store_evicted_bytes(f.st), freed);
  ASSERT_EQ(tks_store_ticks(f.st), 0);
  ASSERT_U64_EQ(tks_store_evicted_ticks(f.st), appended);
  ASSERT_EQ(tks_store_series_count(f.st), 0);
  ASSERT_EQ(tks_store_block_bytes(f.st), 0);
  tks_store_repr(f.st, &rp);
  ASSERT_EQ(rp.overflow_map_bytes, 0);
  ASSERT_EQ(rp.dynamic_object_bytes, 0);
  ASSERT_EQ(rp.dynamic_object_requested, 0);
  ASSERT_EQ(tks_slab_bytes_used(f.slab), 0);
  ASSERT_EQ(tks_slab_bytes_requested(f.slab), 0);
  ASSERT(tks_store_index_bytes(f.st) < index0); /* the block arrays were released */
  struct tks_series_info si;
  ASSERT_EQ(tks_store_series(f.st, 1, &si), -ENOENT);
  memset(&coll, 0, sizeof coll);
  ASSERT_EQ(tks_store_last(f.st, 1, 10, collect_fn, &coll), 0);
  ASSERT_EQ(tks_store_evict_oldest(f.st, 1), 0);
  /* The store takes ticks again after being emptied. */
  put(&f, 1, 5, 5);
  put(&f, 1, 4, 4);
  expect_series_ordered(&f, 1);
  ASSERT_EQ(coll.n, 2);
  teardown(&f); /* LeakSanitizer checks the block arrays */
}

TEST(freed_chunks_are_reused_and_the_slab_does_not_grow) {
  struct fixture f;
  tks_schema_default(&f.schema);
  f.slab = tks_slab_create(65536, 1.25, 32);
  tks_slab_set_limit(f.slab, 4 << 20);
  f.st = tks_store_create(&f.schema, f.slab);
  ASSERT(f.slab && f.st);
  int64_t ts = 0;
  uint64_t appended = 0;
  struct rec r = {.price = 1};
  for (;; appended++) { /* fill to the limit */
    r.ts = ts++;
    r.ticker = 1 + (uint32_t)(appended % 50);
    if (tks_store_append(f.st, &r) != 0) break;
    ASSERT(appended < 10000000);
  }
  uint64_t pages = tks_slab_pages(f.slab);
  ASSERT_U64_EQ(pages * 65536, 4 << 20);
  /* Evict and refill, several rounds: no new page, and the rounds store
   * about as many ticks as they freed room for.  (The first round frees
   * each symbol's first small blocks, which the 4 KiB blocks of the refill
   * cannot use, and a round stops at the first refusal, so the rounds
   * differ: the sum is what counts.) */
  uint64_t freed_sum = 0, again_sum = 0;
  for (int round = 0; round < 5; round++) {
    uint64_t freed = tks_store_evict_oldest(f.st, 512 * 1024);
    ASSERT(freed >= 512 * 1024);
    uint64_t again = 0;
    for (;; again++) {
      r.ts = ts++;
      r.ticker = 1 + (uint32_t)((appended + again) % 50);
      if (tks_store_append(f.st, &r) != 0) break;
      ASSERT(again < 10000000);
    }
    appended += again;
    freed_sum += freed;
    again_sum += again;
    ASSERT_U64_EQ(tks_slab_pages(f.slab), pages);
    ASSERT_U64_EQ(tks_store_ticks(f.st) + tks_store_evicted_ticks(f.st), appended);
  }
  /* 4 KiB blocks hold 127 records of 32 bytes unpacked: packed, a tick
   * takes less than 33 bytes. */
  if (again_sum < freed_sum / 33 * 8 / 10)
    TEST_FAIL("%llu bytes freed but only %llu ticks stored again", (unsigned long long)freed_sum,
              (unsigned long long)again_sum);
  for (uint32_t s = 1; s <= 50; s++) expect_series_ordered(&f, s);
  teardown(&f);
}

TEST(evict_before_frees_only_whole_blocks_older_than_the_cutoff) {
  struct fixture f;
  setup(&f);
  for (int i = 0; i < 5000; i++) put(&f, 1, i, i);
  for (int i = 0; i < 100; i++) put(&f, 2, 1000000 + i, i); /* all newer */
  uint64_t used0 = tks_slab_bytes_used(f.slab);
  /* The first block of symbol 1 holds ts 0..cap-1; a cutoff inside it or
   * at its newest tick evicts nothing (retention is block-granular). */
  struct tks_store_block_info bi;
  ASSERT_EQ(tks_store_block_info(f.st, TKS_STORE_SLOTTED, 1, 0, &bi), 0);
  size_t chunk = bi.bytes;
  int64_t cap = bi.count;
  ASSERT(cap > 1);
  ASSERT_EQ(tks_store_evict_before(f.st, INT64_MIN), 0);
  ASSERT_EQ(tks_store_evict_before(f.st, 0), 0);
  ASSERT_EQ(tks_store_evict_before(f.st, 1), 0);
  ASSERT_EQ(tks_store_evict_before(f.st, cap - 1), 0);
  ASSERT_EQ(tks_slab_bytes_used(f.slab), used0);
  /* One past its newest tick: exactly that block goes. */
  ASSERT_EQ(tks_store_evict_before(f.st, cap), cap);
  ASSERT_U64_EQ(used0 - tks_slab_bytes_used(f.slab), chunk);
  ASSERT_EQ(tks_store_evicted_ticks(f.st), cap);
  expect_series_ordered(&f, 1);
  ASSERT_EQ(coll.ts[0], cap);
  ASSERT_EQ(coll.n, 5000 - cap);
  /* A cutoff in the middle: what is left starts at or before it, and
   * within one block of it. */
  uint64_t ev = tks_store_evict_before(f.st, 3000);
  expect_series_ordered(&f, 1);
  ASSERT(coll.ts[0] <= 3000);
  ASSERT_EQ(tks_store_block_info(f.st, TKS_STORE_SLOTTED, 1, 0, &bi), 0);
  ASSERT(3000 - coll.ts[0] < (int64_t)bi.count);
  ASSERT_U64_EQ(ev, (uint64_t)(coll.ts[0] - cap));
  ASSERT_EQ(coll.ts[coll.n - 1], 4999);
  int64_t kept_from = coll.ts[0];
  /* Symbol 2 is untouched. */
  expect_series_ordered(&f, 2);
  ASSERT_EQ(coll.n, 100);
  /* Past everything of symbol 1: it is gone, symbol 2 stays. */
  ev = tks_store_evict_before(f.st, 1000000);
  ASSERT_U64_EQ(ev, (uint64_t)(5000 - kept_from));
  ASSERT_EQ(tks_store_ticks(f.st), 100);
  ASSERT_U64_EQ(tks_store_evicted_ticks(f.st), 5000);
  struct tks_series_info si;
  ASSERT_EQ(tks_store_series(f.st, 1, &si), -ENOENT);
  ASSERT_EQ(tks_store_series_count(f.st), 1);
  ASSERT_EQ(tks_store_evict_before(f.st, INT64_MAX), 100);
  ASSERT_EQ(tks_store_ticks(f.st), 0);
  ASSERT_EQ(tks_slab_bytes_used(f.slab), 0);
  teardown(&f);
}

TEST(evicting_an_empty_store_frees_nothing) {
  struct fixture f;
  setup(&f);
  ASSERT_EQ(tks_store_evict_oldest(f.st, 1 << 20), 0);
  ASSERT_EQ(tks_store_evict_before(f.st, INT64_MAX), 0);
  ASSERT_EQ(tks_store_evicted_ticks(f.st), 0);
  ASSERT_EQ(tks_store_evicted_bytes(f.st), 0);
  put(&f, 1, 1, 1);
  ASSERT_EQ(tks_store_evict_oldest(f.st, 0), 0); /* nothing asked */
  ASSERT_EQ(tks_store_ticks(f.st), 1);
  size_t chunk = tks_slab_chunk_size(f.slab, tks_slab_class_for(f.slab, TKS_STORE_BLOCK_MIN));
  ASSERT_EQ(tks_store_evict_oldest(f.st, 1), chunk); /* one whole block */
  ASSERT_EQ(tks_store_ticks(f.st), 0);
  ASSERT_EQ(tks_store_evict_oldest(f.st, 1), 0);
  teardown(&f);
}

TEST_TIMEOUT(ten_thousand_symbols_evict_oldest_a_slice_at_a_time, 120) {
  struct fixture f;
  setup(&f);
  enum { NSYM = 10000, PER = 300 };
  for (int i = 0; i < PER; i++)
    for (uint32_t s = 0; s < NSYM; s++) put(&f, s, (int64_t)i * NSYM + s, i);
  uint64_t appended = (uint64_t)NSYM * PER;
  /* Slices of 1 MiB until a third is gone: each one scan of the table. */
  uint64_t t0 = tks_mono_ns();
  int rounds = 0;
  while (tks_store_ticks(f.st) > appended * 2 / 3) {
    uint64_t used = tks_slab_bytes_used(f.slab);
    uint64_t freed = tks_store_evict_oldest(f.st, 1 << 20);
    ASSERT(freed >= 1 << 20);
    ASSERT_U64_EQ(used - tks_slab_bytes_used(f.slab), freed);
    rounds++;
  }
  double ms = (double)(tks_mono_ns() - t0) / 1e6;
  printf("  %d rounds of 1 MiB over %d symbols: %.2f ms each\n", rounds, NSYM, ms / rounds);
  ASSERT_U64_EQ(tks_store_ticks(f.st) + tks_store_evicted_ticks(f.st), appended);
  ASSERT_EQ(tks_store_series_count(f.st), NSYM);
  ASSERT_U64_EQ(held_bytes(f.st), tks_slab_bytes_used(f.slab));
  /* Each symbol kept its newest tick and its order. */
  for (uint32_t s = 0; s < NSYM; s += 97) {
    expect_series_ordered(&f, s);
    ASSERT_EQ(coll.ts[coll.n - 1], (int64_t)(PER - 1) * NSYM + s);
  }
  /* Retention over the same table. */
  int64_t cut = (int64_t)(PER - 10) * NSYM;
  uint64_t before = tks_store_ticks(f.st);
  uint64_t ev = tks_store_evict_before(f.st, cut);
  ASSERT_U64_EQ(tks_store_ticks(f.st), before - ev);
  for (uint32_t s = 0; s < NSYM; s += 101) {
    expect_series_ordered(&f, s);
    ASSERT(coll.ts[0] < cut);
    ASSERT(coll.n >= 10);
  }
  teardown(&f);
}

TEST(last_includes_a_tick_at_the_largest_timestamp) {
  struct fixture f;
  setup(&f);
  put(&f, 1, 100, 1);
  put(&f, 1, INT64_MAX, 2);
  memset(&coll, 0, sizeof coll);
  ASSERT_EQ(tks_store_last(f.st, 1, 1, collect_fn, &coll), 1);
  ASSERT_EQ(coll.ts[0], INT64_MAX);
  memset(&coll, 0, sizeof coll);
  ASSERT_EQ(tks_store_last(f.st, 1, 2, collect_fn, &coll), 2);
  ASSERT_EQ(coll.vol[1], 2);
  teardown(&f);
}

TEST(modes_parse_and_name) {
  enum tks_mode m;
  ASSERT_EQ(tks_mode_parse("fallback", &m), 0);
  ASSERT_EQ(m, TKS_MODE_FALLBACK);
  ASSERT_STR_EQ(tks_mode_name(TKS_MODE_SLOTTED), "slotted");
  ASSERT(tks_mode_parse("Slotted", &m) < 0);
}

static uint64_t block_chain_bytes(struct fixture *f, uint32_t sym, unsigned *nblocks, uint64_t *n) {
  struct tks_store_walk w;
  tks_store_walk_begin(f->st, TKS_STORE_SLOTTED, sym, &w);
  const void *e;
  uint32_t c;
  int64_t prev = INT64_MIN;
  *nblocks = 0;
  *n = 0;
  while (tks_store_walk_next(&w, &e, &c)) {
    for (uint32_t i = 0; i < c; i++) {
      const struct rec *r = (const struct rec *)e + i;
      ASSERT(r->ts >= prev);
      ASSERT_EQ(r->ticker, sym);
      prev = r->ts;
    }
    (*nblocks)++;
    *n += c;
  }
  return tks_store_block_bytes(f->st);
}

TEST(append_many_lays_out_blocks_as_in_order_appends_do) {
  struct fixture a, b;
  setup(&a);
  setup(&b);
  static struct rec recs[5000];
  for (int i = 0; i < 5000; i++) recs[i] = (struct rec){.ts = i, .ticker = 7, .volume = i};
  for (int i = 0; i < 5000; i++) put(&a, 7, i, i);
  uint32_t done;
  ASSERT_EQ(tks_store_append_many(b.st, TKS_STORE_SLOTTED, 7, recs, 1000, &done), 0);
  ASSERT_EQ(done, 1000);
  ASSERT_EQ(tks_store_append_many(b.st, TKS_STORE_SLOTTED, 7, recs + 1000, 4000, &done), 0);
  unsigned na, nb;
  uint64_t ta, tb;
  ASSERT_U64_EQ(block_chain_bytes(&b, 7, &nb, &tb), block_chain_bytes(&a, 7, &na, &ta));
  ASSERT_EQ(nb, na);
  ASSERT_U64_EQ(tb, 5000);
  ASSERT_U64_EQ(tks_store_ticks(b.st), 5000);
  coll.n = 0;
  ASSERT_U64_EQ(tks_store_range(b.st, 7, 100, 200, 0, collect_fn, &coll), 100);
  ASSERT_EQ(coll.ts[0], 100);
  /* Out of order, another symbol, older than the series: refused whole. */
  struct rec bad[2] = {{.ts = 9000, .ticker = 7}, {.ts = 8999, .ticker = 7}};
  ASSERT_EQ(tks_store_append_many(b.st, TKS_STORE_SLOTTED, 7, bad, 2, &done), -EINVAL);
  bad[1].ts = 9001, bad[1].ticker = 8;
  ASSERT_EQ(tks_store_append_many(b.st, TKS_STORE_SLOTTED, 7, bad, 2, &done), -EINVAL);
  bad[0].ts = 10, bad[1].ticker = 7;
  ASSERT_EQ(tks_store_append_many(b.st, TKS_STORE_SLOTTED, 7, bad, 2, &done), -EINVAL);
  ASSERT_EQ(done, 0);
  ASSERT_U64_EQ(tks_store_ticks(b.st), 5000);
  teardown(&a);
  teardown(&b);
}

TEST(append_many_stops_at_a_full_slab_and_says_how_far_it_got) {
  struct fixture f;
  setup(&f);
  tks_slab_set_limit(f.slab, 1 << 20);
  static struct rec recs[60000];
  for (int i = 0; i < 60000; i++) recs[i] = (struct rec){.ts = i, .ticker = 1};
  uint32_t done;
  ASSERT_EQ(tks_store_append_many(f.st, TKS_STORE_SLOTTED, 1, recs, 60000, &done), -ENOMEM);
  ASSERT(done > 0 && done < 60000);
  ASSERT_U64_EQ(tks_store_ticks(f.st), done);
  teardown(&f);
}

/* ---- exact eviction, the eviction observer, the cut for bytes ---- */

/* A tick as every representation can give it back: ts and an id (the
 * record's volume, or key 2 of a dynamic object), for ties to be told
 * apart. */
struct tk {
  int64_t ts, id;
};

enum { TKN = 20000 };

static const enum tks_store_rep all_reps[] = {TKS_STORE_SLOTTED, TKS_STORE_OVERFLOW,
                                              TKS_STORE_DYNAMIC};

/* An object of 2 + extra fields: key 1 ts, key 2 id, then filler (objects
 * of several sizes, so of several slab classes). */
static struct tks_dynobj *obj_tick(struct tks_store *st, int64_t ts, int64_t id, unsigned extra) {
  struct tks_dynobj *o = tks_store_new_dynobj(st, 2 + extra, 0);
  ASSERT(o);
  struct tks_value v = {.type = TKS_V_INT, .v.i = ts};
  ASSERT_EQ(tks_dynobj_put(o, 1, &v), 0);
  v.v.i = id;
  for (unsigned k = 0; k <= extra; k++) ASSERT_EQ(tks_dynobj_put(o, 2 + k, &v), 0);
  return o;
}

/* Appends one tick of rep (slotted record, overflow record with a map, or
 * dynamic object). */
static void add(struct tks_store *st, enum tks_store_rep rep, uint32_t sym, int64_t ts,
                int64_t id) {
  struct rec r = {.ts = ts, .price = 1, .volume = id, .ticker = sym};
  unsigned extra = (unsigned)(id % 5);
  if (rep == TKS_STORE_SLOTTED)
    ASSERT_EQ(tks_store_append(st, &r), 0);
  else if (rep == TKS_STORE_OVERFLOW)
    ASSERT_EQ(tks_store_append_overflow(st, &r, obj_tick(st, ts, id, extra)), 0);
  else
    ASSERT_EQ(tks_store_append_dynamic(st, sym, ts, obj_tick(st, ts, id, extra)), 0);
}

static int64_t obj_id(const struct tks_dynobj *o) {
  const struct tks_dyn_slot *sl = tks_dynobj_get(o, 2);
  ASSERT(sl);
  return sl->v.i;
}

static struct tk entry_tick(const struct tks_store *st, enum tks_store_rep rep, const void *e) {
  struct tk t = {.ts = tks_store_entry_ts(st, rep, e)};
  if (rep == TKS_STORE_DYNAMIC) {
    t.id = obj_id(tks_store_entry_obj(st, rep, e));
  } else {
    struct rec r;
    memcpy(&r, e, sizeof r);
    t.id = r.volume;
  }
  return t;
}

/* The ticks of one series (rep, sym) in store order, through the walk. */
static unsigned rep_ticks(const struct tks_store *st, enum tks_store_rep rep, uint32_t sym,
                          struct tk *out, unsigned *nblocks) {
  struct tks_store_walk w;
  tks_store_walk_begin(st, rep, sym, &w);
  const void *e;
  uint32_t c;
  unsigned n = 0, nb = 0;
  uint32_t esize = tks_store_entry_size(st, rep);
  while (tks_store_walk_next(&w, &e, &c)) {
    for (uint32_t i = 0; i < c; i++) {
      ASSERT(n < TKN);
      out[n++] = entry_tick(st, rep, (const char *)e + (size_t)i * esize);
    }
    nb++;
  }
  if (nblocks) *nblocks = nb;
  return n;
}

static void expect_ticks_eq(const struct tk *got, unsigned ngot, const struct tk *want,
                            unsigned nwant, const char *what) {
  if (ngot != nwant) TEST_FAIL("%s: %u ticks, want %u", what, ngot, nwant);
  for (unsigned i = 0; i < ngot; i++)
    if (got[i].ts != want[i].ts || got[i].id != want[i].id)
      TEST_FAIL("%s: tick %u is (%lld, %lld), want (%lld, %lld)", what, i, (long long)got[i].ts,
                (long long)got[i].id, (long long)want[i].ts, (long long)want[i].id);
}

/* What the observer saw: every entry, and the runs as (rep, sym, count). */
struct hooklog {
  unsigned n, nruns;
  struct tk t[TKN];
  uint8_t rep[TKN];
  uint32_t sym[TKN];
  struct {
    enum tks_store_rep rep;
    uint32_t sym, count;
  } runs[TKN];
  const struct tks_store *st;
};

static struct hooklog hlog;

static void hook_fn(void *ctx, enum tks_store_rep rep, uint32_t symbol, const void *entries,
                    uint32_t count) {
  struct hooklog *h = ctx;
  ASSERT(count > 0);
  ASSERT(h->nruns < TKN);
  h->runs[h->nruns].rep = rep;
  h->runs[h->nruns].sym = symbol;
  h->runs[h->nruns++].count = count;
  uint32_t esize = tks_store_entry_size(h->st, rep);
  for (uint32_t i = 0; i < count; i++) {
    ASSERT(h->n < TKN);
    const char *e = (const char *)entries + (size_t)i * esize;
    uint32_t sym = symbol;
    if (rep != TKS_STORE_DYNAMIC) memcpy(&sym, e + offsetof(struct rec, ticker), sizeof sym);
    ASSERT_EQ(sym, symbol);
    h->t[h->n] = entry_tick(h->st, rep, e); /* objects still readable: not freed yet */
    h->rep[h->n] = (uint8_t)rep;
    h->sym[h->n++] = symbol;
  }
}

static void hook_on(struct tks_store *st) {
  memset(&hlog, 0, sizeof hlog);
  hlog.st = st;
  tks_store_set_evict_hook(st, hook_fn, &hlog);
}

/* The observed entries of one series, in the order seen. */
static unsigned hooked(enum tks_store_rep rep, uint32_t sym, struct tk *out) {
  unsigned n = 0;
  for (unsigned i = 0; i < hlog.n; i++)
    if (hlog.rep[i] == rep && hlog.sym[i] == sym) out[n++] = hlog.t[i];
  return n;
}

/* The counters of st against those of a fresh store holding the same
 * ticks, appended in order (blocks may be cut differently, objects not). */
static void expect_counters_of_fresh_store(struct fixture *f, uint32_t nsym) {
  struct fixture g;
  setup(&g);
  static struct tk t[TKN];
  for (size_t r = 0; r < TKS_ARRAY_SIZE(all_reps); r++)
    for (uint32_t s = 0; s < nsym; s++) {
      unsigned n = rep_ticks(f->st, all_reps[r], s, t, NULL);
      for (unsigned i = 0; i < n; i++) add(g.st, all_reps[r], s, t[i].ts, t[i].id);
    }
  struct tks_store_repr a, b;
  tks_store_repr(f->st, &a);
  tks_store_repr(g.st, &b);
  ASSERT_U64_EQ(tks_store_ticks(f->st), tks_store_ticks(g.st));
  ASSERT_U64_EQ(a.slotted_ticks, b.slotted_ticks);
  ASSERT_U64_EQ(a.overflow_ticks, b.overflow_ticks);
  ASSERT_U64_EQ(a.dynamic_ticks, b.dynamic_ticks);
  ASSERT_U64_EQ(a.overflow_map_bytes, b.overflow_map_bytes);
  ASSERT_U64_EQ(a.dynamic_object_bytes, b.dynamic_object_bytes);
  ASSERT_U64_EQ(a.dynamic_object_requested, b.dynamic_object_requested);
  ASSERT_EQ(tks_store_series_count(f->st), tks_store_series_count(g.st));
  /* And against the slab: every chunk the store holds is counted. */
  ASSERT_U64_EQ(held_bytes(f->st), tks_slab_bytes_used(f->slab));
  teardown(&g);
}

static struct tk all0[TKN], all1[TKN], got[TKN], seen[TKN];

/* What a query visited: ticks and their representations ('s', 'o', 'd'). */
struct visited {
  unsigned n;
  struct tk t[TKN];
  char kind[TKN];
};

static int visit_fn(void *ctx, const void *record, const struct tks_dynobj *obj) {
  struct visited *v = ctx;
  ASSERT(v->n < TKN);
  if (record) {
    struct rec r;
    memcpy(&r, record, sizeof r);
    v->t[v->n] = (struct tk){r.ts, r.volume};
    ASSERT(!obj || obj_id(obj) == r.volume);
  } else {
    const struct tks_dyn_slot *sl = tks_dynobj_get(obj, 1);
    ASSERT(sl);
    v->t[v->n] = (struct tk){sl->v.i, obj_id(obj)};
  }
  v->kind[v->n++] = record && obj ? 'o' : record ? 's' : 'd';
  return 0;
}

/* Symbol 1: ts 0.. in order, then every 9th one again as a late tick (a
 * tie inserted after its twin; blocks split).  Symbol 2: a few newer
 * ticks, untouched by what the tests take from symbol 1. */
static void fill_with_late(struct tks_store *st, enum tks_store_rep rep, int n) {
  int64_t id = 0;
  for (int i = 0; i < n; i++) add(st, rep, 1, i, id++);
  for (int i = 0; i < n; i += 9) add(st, rep, 1, i, id++);
  for (int i = 0; i < 50; i++) add(st, rep, 2, 1000000 + i, id++);
}

TEST(evict_head_removes_exactly_the_oldest_n_of_a_series_in_every_representation) {
  for (size_t r = 0; r < TKS_ARRAY_SIZE(all_reps); r++) {
    enum tks_store_rep rep = all_reps[r];
    struct fixture f;
    setup(&f);
    fill_with_late(f.st, rep, 3000);
    unsigned n = rep_ticks(f.st, rep, 1, all0, NULL);
    ASSERT_EQ(n, 3000 + 334);
    ASSERT(tks_store_late_ticks(f.st) > 0);
    uint64_t late = tks_store_late_ticks(f.st);
    hook_on(f.st);
    /* Steps: part of the head block, several blocks and a part, nothing,
     * then more than is left. */
    static const uint64_t steps[] = {5, 1, 700, 0, 1500, 1000000};
    unsigned gone = 0;
    for (size_t k = 0; k < TKS_ARRAY_SIZE(steps); k++) {
      uint64_t used0 = tks_slab_bytes_used(f.slab), ev0 = tks_store_evicted_bytes(f.st);
      uint64_t ticks0 = tks_store_ticks(f.st);
      uint64_t want = steps[k] < n - gone ? steps[k] : n - gone;
      ASSERT_U64_EQ(tks_store_evict_head(f.st, rep, 1, steps[k]), want);
      gone += (unsigned)want;
      ASSERT_U64_EQ(tks_store_ticks(f.st), ticks0 - want);
      ASSERT_U64_EQ(tks_store_evicted_ticks(f.st), gone);
      ASSERT_U64_EQ(used0 - tks_slab_bytes_used(f.slab), tks_store_evicted_bytes(f.st) - ev0);
      ASSERT_EQ(tks_store_late_ticks(f.st), late);
      unsigned left = rep_ticks(f.st, rep, 1, got, NULL);
      expect_ticks_eq(got, left, all0 + gone, n - gone, "what stays");
      expect_ticks_eq(hlog.t, hlog.n, all0, gone, "what the observer saw");
      expect_counters_of_fresh_store(&f, 3);
      static struct visited v;
      v.n = 0;
      tks_store_range(f.st, 1, INT64_MIN, INT64_MAX, 0, visit_fn, &v);
      expect_ticks_eq(v.t, v.n, got, left, "what a range query finds");
    }
    ASSERT_EQ(gone, n);
    struct tks_series_info si;
    ASSERT_EQ(tks_store_series(f.st, 1, &si), -ENOENT);
    ASSERT_EQ(tks_store_series_count(f.st), 1);
    /* Symbol 2 and the other representations were not touched; a series
     * that is not there, a rep out of range: nothing. */
    ASSERT_EQ(rep_ticks(f.st, rep, 2, got, NULL), 50);
    ASSERT_EQ(tks_store_evict_head(f.st, rep, 1, 10), 0);
    ASSERT_EQ(tks_store_evict_head(f.st, rep, 99999, 10), 0);
    ASSERT_EQ(tks_store_evict_head(f.st, TKS_STORE_REPS, 2, 10), 0);
    ASSERT_EQ(tks_store_evict_head(
                  f.st, rep == TKS_STORE_SLOTTED ? TKS_STORE_DYNAMIC : TKS_STORE_SLOTTED, 2, 10),
              0);
    ASSERT_EQ(tks_store_ticks(f.st), 50);
    /* The emptied series takes ticks again. */
    add(f.st, rep, 1, 7, 7);
    add(f.st, rep, 1, 3, 3);
    ASSERT_EQ(rep_ticks(f.st, rep, 1, got, NULL), 2);
    ASSERT_EQ(got[0].ts, 3);
    unsigned calls = hlog.nruns;
    teardown(&f);
    ASSERT_EQ(hlog.nruns, calls); /* destroy is not an eviction */
  }
}

TEST(trim_before_removes_exactly_the_ticks_older_than_the_cutoff) {
  for (size_t r = 0; r < TKS_ARRAY_SIZE(all_reps); r++) {
    enum tks_store_rep rep = all_reps[r];
    struct fixture f;
    setup(&f);
    /* Symbol 1: three ticks per ts (ties), 0..999; then late ones at
     * every 13th ts (ties again, and splits).  Symbol 0: newer ticks. */
    int64_t id = 0;
    for (int i = 0; i < 3000; i++) add(f.st, rep, 1, i / 3, id++);
    for (int i = 0; i < 1000; i += 13) add(f.st, rep, 1, i, id++);
    for (int i = 0; i < 200; i++) add(f.st, rep, 0, 500 + i, id++);
    unsigned n1 = rep_ticks(f.st, rep, 1, all1, NULL);
    unsigned n0 = rep_ticks(f.st, rep, 0, all0, NULL);
    hook_on(f.st);
    ASSERT_EQ(tks_store_trim_before(f.st, INT64_MIN), 0);
    ASSERT_EQ(tks_store_trim_before(f.st, 0), 0); /* the ties at 0 stay */
    ASSERT_EQ(hlog.n, 0);
    static const int64_t cuts[] = {1, 2, 13, 14, 300, 501, 502, 999, 1000, INT64_MAX};
    unsigned g1 = 0, g0 = 0;
    for (size_t k = 0; k < TKS_ARRAY_SIZE(cuts); k++) {
      int64_t cut = cuts[k];
      unsigned w1 = g1, w0 = g0;
      while (w1 < n1 && all1[w1].ts < cut) w1++;
      while (w0 < n0 && all0[w0].ts < cut) w0++;
      ASSERT_U64_EQ(tks_store_count_before(f.st, cut), (w1 - g1) + (w0 - g0));
      uint64_t used0 = tks_slab_bytes_used(f.slab), ev0 = tks_store_evicted_bytes(f.st);
      ASSERT_U64_EQ(tks_store_trim_before(f.st, cut), (w1 - g1) + (w0 - g0));
      ASSERT_U64_EQ(used0 - tks_slab_bytes_used(f.slab), tks_store_evicted_bytes(f.st) - ev0);
      g1 = w1, g0 = w0;
      ASSERT_EQ(tks_store_count_before(f.st, cut), 0);
      unsigned left = rep_ticks(f.st, rep, 1, got, NULL);
      expect_ticks_eq(got, left, all1 + g1, n1 - g1, "what stays of symbol 1");
      if (left) ASSERT(got[0].ts >= cut);
      if (cut < 1000) ASSERT_EQ(got[0].ts, cut); /* its ties stay */
      left = rep_ticks(f.st, rep, 0, got, NULL);
      expect_ticks_eq(got, left, all0 + g0, n0 - g0, "what stays of symbol 0");
      expect_ticks_eq(seen, hooked(rep, 1, seen), all1, g1, "observed of symbol 1");
      expect_ticks_eq(seen, hooked(rep, 0, seen), all0, g0, "observed of symbol 0");
      ASSERT_U64_EQ(tks_store_evicted_ticks(f.st), g1 + g0);
      expect_counters_of_fresh_store(&f, 2);
    }
    ASSERT_EQ(tks_store_ticks(f.st), 0);
    ASSERT_EQ(tks_store_series_count(f.st), 0);
    ASSERT_EQ(tks_slab_bytes_used(f.slab), 0);
    teardown(&f);
  }
}

TEST(trim_before_and_count_before_cover_every_representation_at_once) {
  struct fixture f;
  setup(&f);
  int64_t id = 0;
  for (int i = 0; i < 4000; i++) add(f.st, all_reps[i % 3], 1 + (uint32_t)(i % 4), i, id++);
  for (int i = 0; i < 4000; i += 11) add(f.st, all_reps[i % 3], 1 + (uint32_t)(i % 4), i, id++);
  ASSERT_EQ(tks_store_count_before(f.st, INT64_MIN), 0);
  ASSERT_U64_EQ(tks_store_count_before(f.st, INT64_MAX), tks_store_ticks(f.st));
  ASSERT_U64_EQ(tks_store_count_before(f.st, 2000), 2000 + 182);
  ASSERT_U64_EQ(tks_store_count_before(f.st, 2001), 2001 + 182);
  hook_on(f.st);
  ASSERT_U64_EQ(tks_store_trim_before(f.st, 2001), 2001 + 182);
  ASSERT_EQ(hlog.n, 2001 + 182);
  for (unsigned i = 0; i < hlog.n; i++) ASSERT(hlog.t[i].ts < 2001);
  for (uint32_t s = 1; s <= 4; s++) {
    struct tks_series_info si;
    ASSERT_EQ(tks_store_series(f.st, s, &si), 0);
    ASSERT(si.first_ts >= 2001 && si.first_ts <= 2004);
  }
  expect_counters_of_fresh_store(&f, 5);
  teardown(&f);
}

/* A store of every representation, 6 symbols, late ticks, objects of
 * several sizes. */
static void fill_mixed(struct tks_store *st, int n) {
  int64_t id = 0;
  for (int i = 0; i < n; i++) {
    int64_t ts = i % 10 == 9 ? i - 300 : i;
    add(st, all_reps[(i / 7) % 3], (uint32_t)(i % 6), ts, id++);
  }
}

static struct tk mixed0[3][6][TKN / 4];
static unsigned nmixed0[3][6];

/* Every series before and after an eviction against what the observer
 * saw: the observed is a prefix of each series, what stays the rest. */
static void expect_observed_prefixes(struct fixture *f) {
  unsigned total = 0;
  for (unsigned r = 0; r < 3; r++)
    for (uint32_t s = 0; s < 6; s++) {
      unsigned h = hooked(all_reps[r], s, seen);
      ASSERT(h <= nmixed0[r][s]);
      expect_ticks_eq(seen, h, mixed0[r][s], h, "observed prefix");
      unsigned left = rep_ticks(f->st, all_reps[r], s, got, NULL);
      expect_ticks_eq(got, left, mixed0[r][s] + h, nmixed0[r][s] - h, "what stays");
      total += h;
    }
  ASSERT_EQ(total, hlog.n);
  ASSERT_U64_EQ(hlog.n, tks_store_evicted_ticks(f->st));
}

static void snapshot_mixed(struct fixture *f) {
  for (unsigned r = 0; r < 3; r++)
    for (uint32_t s = 0; s < 6; s++) {
      nmixed0[r][s] = rep_ticks(f->st, all_reps[r], s, got, NULL);
      memcpy(mixed0[r][s], got, nmixed0[r][s] * sizeof *got);
    }
}

TEST(the_observer_sees_exactly_what_evict_oldest_and_evict_before_remove) {
  struct fixture f;
  setup(&f);
  fill_mixed(f.st, 12000);
  snapshot_mixed(&f);
  hook_on(f.st);
  ASSERT(tks_store_evict_oldest(f.st, 60000) >= 60000);
  ASSERT(hlog.n > 0);
  expect_observed_prefixes(&f);
  unsigned after_oldest = hlog.n;
  ASSERT(tks_store_evict_before(f.st, 8000) > 0);
  ASSERT(hlog.n > after_oldest);
  expect_observed_prefixes(&f);
  /* Then the exact calls, into the same log. */
  ASSERT(tks_store_evict_head(f.st, TKS_STORE_DYNAMIC, 3, 10) == 10);
  ASSERT(tks_store_trim_before(f.st, 9000) > 0);
  expect_observed_prefixes(&f);
  expect_counters_of_fresh_store(&f, 6);
  /* No observer: evictions go on, nothing is reported. */
  unsigned n = hlog.n;
  tks_store_set_evict_hook(f.st, NULL, NULL);
  ASSERT(tks_store_evict_oldest(f.st, 10000) > 0);
  ASSERT_EQ(hlog.n, n);
  teardown(&f);
}

TEST(cut_for_bytes_is_after_the_newest_tick_evict_oldest_would_free) {
  struct fixture e;
  setup(&e);
  ASSERT_EQ(tks_store_cut_for_bytes(e.st, 1000, NULL), INT64_MIN); /* empty */
  teardown(&e);
  static const uint64_t asks[] = {1, 4000, 30000, 100000, 250000, 1 << 30};
  for (size_t k = 0; k < TKS_ARRAY_SIZE(asks); k++) {
    struct fixture a, b;
    setup(&a);
    setup(&b);
    fill_mixed(a.st, 12000);
    fill_mixed(b.st, 12000);
    uint64_t used = tks_slab_bytes_used(a.slab), ticks = tks_store_ticks(a.st);
    uint64_t below = 12345;
    ASSERT_EQ(tks_store_cut_for_bytes(a.st, 0, &below), INT64_MIN);
    ASSERT_EQ(below, 0);
    int64_t cut = tks_store_cut_for_bytes(a.st, asks[k], &below);
    ASSERT_EQ(tks_store_cut_for_bytes(a.st, asks[k], NULL), cut);
    ASSERT_U64_EQ(tks_slab_bytes_used(a.slab), used); /* nothing changed */
    ASSERT_U64_EQ(tks_store_ticks(a.st), ticks);
    /* evict_oldest's newest freed tick, through the observer. */
    hook_on(a.st);
    tks_store_evict_oldest(a.st, asks[k]);
    int64_t newest = INT64_MIN;
    for (unsigned i = 0; i < hlog.n; i++)
      if (hlog.t[i].ts > newest) newest = hlog.t[i].ts;
    ASSERT_EQ(cut, newest + 1);
    ASSERT(below >= hlog.n);
    /* trim_before(cut) takes at least as much, and what it keeps is a
     * suffix of what evict_oldest kept. */
    uint64_t trimmed = tks_store_trim_before(b.st, cut);
    ASSERT(trimmed >= below);
    ASSERT(trimmed >= hlog.n);
    for (unsigned r = 0; r < 3; r++)
      for (uint32_t s = 0; s < 6; s++) {
        unsigned na = rep_ticks(a.st, all_reps[r], s, all0, NULL);
        unsigned nb = rep_ticks(b.st, all_reps[r], s, all1, NULL);
        ASSERT(nb <= na);
        expect_ticks_eq(all1, nb, all0 + (na - nb), nb, "trimmed is a suffix of evicted");
      }
    if (asks[k] == 1 << 30) {    /* more than the store: everything */
      ASSERT_EQ(cut, 11998 + 1); /* the newest (11999 came 300 late) */
      ASSERT_EQ(below, 12000);
      ASSERT_EQ(tks_store_ticks(b.st), 0);
    }
    teardown(&a);
    teardown(&b);
  }
  /* A tick at the largest ts: the cut saturates. */
  struct fixture f;
  setup(&f);
  put(&f, 1, INT64_MAX, 1);
  uint64_t below;
  ASSERT_EQ(tks_store_cut_for_bytes(f.st, 1 << 30, &below), INT64_MAX);
  ASSERT_EQ(below, 1);
  teardown(&f);
}

TEST(the_same_evict_heads_on_differently_cut_blocks_keep_the_same_ticks) {
  /* a: appends with late ticks (split, half-full blocks); b: the same
   * series copied a walk at a time with append_many, as a checkpoint is
   * written and loaded (full blocks). */
  struct fixture a, b;
  setup(&a);
  setup(&b);
  fill_mixed(a.st, 15000);
  /* More ties: a burst of equal ts in every series. */
  for (int i = 0; i < 600; i++) add(a.st, all_reps[i % 3], (uint32_t)(i % 6), 7000, 100000 + i);
  unsigned blocks_a = 0, blocks_b = 0;
  static char buf[TKN * 64];
  for (unsigned r = 0; r < 3; r++)
    for (uint32_t s = 0; s < 6; s++) {
      enum tks_store_rep rep = all_reps[r];
      uint32_t esize = tks_store_entry_size(a.st, rep), n = 0;
      struct tks_store_walk w;
      tks_store_walk_begin(a.st, rep, s, &w);
      const void *e;
      uint32_t c;
      while (tks_store_walk_next(&w, &e, &c)) {
        blocks_a++;
        for (uint32_t i = 0; i < c; i++, n++) {
          const char *src = (const char *)e + (size_t)i * esize;
          const struct tks_dynobj *o = tks_store_entry_obj(a.st, rep, src);
          struct tks_dynobj *copy = o ? tks_store_copy_dynobj(b.st, o, o->bytes) : NULL;
          ASSERT(!o || copy);
          tks_store_entry_make(b.st, rep, buf + (size_t)n * esize, src, s,
                               tks_store_entry_ts(a.st, rep, src), copy);
        }
      }
      uint32_t done;
      ASSERT_EQ(tks_store_append_many(b.st, rep, s, buf, n, &done), 0);
      ASSERT_EQ(done, n);
      unsigned nb;
      rep_ticks(b.st, rep, s, got, &nb);
      blocks_b += nb;
    }
  ASSERT(blocks_b < blocks_a); /* the blocks are cut differently */
  ASSERT_U64_EQ(tks_store_ticks(b.st), tks_store_ticks(a.st));
  /* The same evict_head calls, and a replay of a's journaled evict_oldest. */
  srand(7);
  for (int step = 0; step < 200; step++) {
    enum tks_store_rep rep = all_reps[rand() % 3];
    uint32_t s = (uint32_t)(rand() % 6);
    uint64_t n = (uint64_t)(rand() % 60);
    ASSERT_U64_EQ(tks_store_evict_head(b.st, rep, s, n), tks_store_evict_head(a.st, rep, s, n));
    if (step % 50 == 49) {
      hook_on(a.st);
      tks_store_evict_oldest(a.st, 20000);
      for (unsigned i = 0; i < hlog.nruns; i++)
        ASSERT_U64_EQ(
            tks_store_evict_head(b.st, hlog.runs[i].rep, hlog.runs[i].sym, hlog.runs[i].count),
            hlog.runs[i].count);
      tks_store_set_evict_hook(a.st, NULL, NULL);
    }
    ASSERT_U64_EQ(tks_store_ticks(b.st), tks_store_ticks(a.st));
  }
  ASSERT(tks_store_ticks(a.st) > 0);
  /* The same ticks, through the queries. */
  for (uint32_t s = 0; s < 6; s++) {
    static struct visited va, vb;
    va.n = vb.n = 0;
    tks_store_range(a.st, s, INT64_MIN, INT64_MAX, 0, visit_fn, &va);
    tks_store_range(b.st, s, INT64_MIN, INT64_MAX, 0, visit_fn, &vb);
    expect_ticks_eq(vb.t, vb.n, va.t, va.n, "range of b against a");
    ASSERT(memcmp(vb.kind, va.kind, va.n) == 0);
  }
  expect_counters_of_fresh_store(&a, 6);
  expect_counters_of_fresh_store(&b, 6);
  teardown(&a);
  teardown(&b);
}

/* Fallback mode keeps a symbol's ticks in two series, slotted and
 * overflow; ticks with equal ts come back in the order they arrived, from
 * range and from last (issue 11: slotted first, then overflow, before). */
struct arrival {
  int64_t volume[4000];
  unsigned n;
};

static int collect_arrival(void *ctx, const void *record, const struct tks_dynobj *obj) {
  struct arrival *a = ctx;
  ASSERT(record);
  a->volume[a->n++] = ((const struct rec *)record)->volume;
  (void)obj;
  return 0;
}

TEST(equal_timestamps_across_slotted_and_overflow_keep_arrival_order) {
  struct fixture f;
  setup(&f);
  enum { N = 3000 };
  static struct rec sent[N];
  uint64_t x = 12345;
  for (unsigned i = 0; i < N; i++) {
    x = x * 6364136223846793005u + 1442695040888963407u;
    /* ts mostly stepping on, with many repeats and some late ones. */
    int64_t ts = (int64_t)(i / 4) - (int64_t)((x >> 60) == 0 ? (x >> 40) % 50 : 0);
    sent[i] = (struct rec){.ts = ts, .price = 1, .volume = i, .ticker = 4};
    if ((x >> 33) % 3 == 0)
      ASSERT_EQ(tks_store_append_overflow(f.st, &sent[i], obj_with_ts(&f, ts)), 0);
    else
      ASSERT_EQ(tks_store_append(f.st, &sent[i]), 0);
  }
  /* The arrival order, stably sorted by ts. */
  static struct rec want[N];
  for (unsigned i = 0; i < N; i++) {
    unsigned j = i;
    while (j > 0 && want[j - 1].ts > sent[i].ts) {
      want[j] = want[j - 1];
      j--;
    }
    want[j] = sent[i];
  }
  static struct arrival arr;
  arr.n = 0;
  ASSERT_U64_EQ(tks_store_range(f.st, 4, INT64_MIN, INT64_MAX, 0, collect_arrival, &arr), N);
  for (unsigned i = 0; i < N; i++)
    if (arr.volume[i] != want[i].volume)
      TEST_FAIL("range: tick %u is the %lld-th sent, want the %lld-th", i, (long long)arr.volume[i],
                (long long)want[i].volume);
  /* A range starting inside a run of equal ts, and last of every length. */
  arr.n = 0;
  tks_store_range(f.st, 4, want[1001].ts, INT64_MAX, 0, collect_arrival, &arr);
  unsigned first = 1001;
  while (first > 0 && want[first - 1].ts == want[1001].ts) first--;
  for (unsigned i = 0; i < arr.n; i++) ASSERT_EQ(arr.volume[i], want[first + i].volume);
  for (unsigned n = 1; n <= 40; n++) {
    arr.n = 0;
    ASSERT_U64_EQ(tks_store_last(f.st, 4, n, collect_arrival, &arr), n);
    for (unsigned i = 0; i < n; i++)
      if (arr.volume[i] != want[N - n + i].volume)
        TEST_FAIL("last %u: tick %u is the %lld-th sent, want the %lld-th", n, i,
                  (long long)arr.volume[i], (long long)want[N - n + i].volume);
  }
  /* The newest tick is the one that arrived last among the newest ts. */
  arr.n = 0;
  tks_store_last(f.st, 4, 1, collect_arrival, &arr);
  ASSERT_EQ(arr.volume[0], want[N - 1].volume);
  teardown(&f);
}

/* ---- packed layouts ---- */

static uint64_t rnd_state = 0x9e3779b97f4a7c15u;
static uint64_t rnd64(void) { /* xorshift64*: the same sequence on every run */
  rnd_state ^= rnd_state >> 12;
  rnd_state ^= rnd_state << 25;
  rnd_state ^= rnd_state >> 27;
  return rnd_state * 0x2545f4914f6cdd1du;
}

/* A value of about `bytes` bytes, of either sign, or an extreme. */
static int64_t rnd_int(void) {
  switch (rnd64() % 16) {
  case 0: return INT64_MIN;
  case 1: return INT64_MAX;
  case 2: return 0;
  case 3: return -1;
  default: {
    unsigned bits = (unsigned)(rnd64() % 64);
    int64_t v = (int64_t)(rnd64() >> (63 - bits) >> 1);
    return rnd64() & 1 ? -v : v;
  }
  }
}

struct model {
  struct rec r[20000];
  unsigned n;
};

static int collect_recs(void *ctx, const void *record, const struct tks_dynobj *obj) {
  struct model *m = ctx;
  ASSERT(record && !obj);
  memcpy(&m->r[m->n++], record, sizeof(struct rec));
  return 0;
}

/* Symbol sym's ticks of the model, stably sorted by ts (ties in arrival
 * order): what the store must give back. */
static unsigned model_series(const struct model *m, uint32_t sym, struct rec *out) {
  unsigned n = 0;
  for (unsigned i = 0; i < m->n; i++) {
    if (m->r[i].ticker != sym) continue;
    unsigned j = n++;
    while (j > 0 && out[j - 1].ts > m->r[i].ts) {
      out[j] = out[j - 1];
      j--;
    }
    out[j] = m->r[i];
  }
  return n;
}

static void expect_model(struct fixture *f, const struct model *m, uint32_t nsym) {
  static struct model back;
  static struct rec want[20000];
  for (uint32_t sym = 1; sym <= nsym; sym++) {
    unsigned n = model_series(m, sym, want), below_max = n;
    while (below_max > 0 && want[below_max - 1].ts == INT64_MAX) below_max--; /* to is exclusive */
    back.n = 0;
    ASSERT_U64_EQ(tks_store_range(f->st, sym, INT64_MIN, INT64_MAX, 0, collect_recs, &back),
                  below_max);
    for (unsigned i = 0; i < back.n; i++)
      if (memcmp(&back.r[i], &want[i], sizeof want[i]) != 0)
        TEST_FAIL("symbol %u tick %u: ts %lld volume %lld flags %u, want ts %lld volume %lld "
                  "flags %u",
                  sym, i, (long long)back.r[i].ts, (long long)back.r[i].volume, back.r[i].flags,
                  (long long)want[i].ts, (long long)want[i].volume, want[i].flags);
    /* A walk gives the same, unpacked. */
    struct tks_store_walk *w = malloc(sizeof *w);
    ASSERT(w);
    tks_store_walk_begin(f->st, TKS_STORE_SLOTTED, sym, w);
    const void *e;
    uint32_t c, at = 0;
    while (tks_store_walk_next(w, &e, &c)) {
      ASSERT(c >= 1 && c <= TKS_STORE_WALK_CHUNK);
      for (uint32_t i = 0; i < c; i++, at++)
        if (memcmp((const struct rec *)e + i, &want[at], sizeof want[at]) != 0)
          TEST_FAIL("symbol %u: walk entry %u differs", sym, at);
    }
    free(w);
    ASSERT_EQ(at, n);
  }
}

TEST(packed_records_come_back_exactly_whatever_their_values) {
  /* Values of every width and sign, the extremes of int64 and uint32, NaN
   * payloads and -0.0, ts jumping by up to 2^62 either way (late ticks
   * below a block's base, deltas that wrap), so that blocks widen, split
   * when they widen, and take every layout. */
  static struct model m;
  m.n = 0;
  struct fixture f;
  setup(&f);
  int64_t ts[6] = {0, INT64_MIN, INT64_MAX - 100000, -5, 1000, 1};
  for (unsigned i = 0; i < 20000; i++) {
    uint32_t sym = 1 + (uint32_t)(rnd64() % 5);
    int64_t *t = &ts[sym];
    uint64_t r = rnd64() % 100;
    if (r < 70) /* (unsigned: a step past INT64_MAX wraps, as a sender's may) */
      *t = (int64_t)((uint64_t)*t + rnd64() % 1000);
    else if (r < 85)
      *t = (int64_t)((uint64_t)*t - rnd64() % 100000); /* late */
    else if (r < 95)
      *t = (int64_t)((uint64_t)*t + (rnd64() >> (rnd64() % 64))); /* may wrap */
    else
      *t = rnd_int();
    uint64_t bits = rnd64() % 4 == 0 ? 0x7ff8000000000001u + (rnd64() & 0xffff) : rnd64();
    if (rnd64() % 10 == 0) bits = 0x8000000000000000u; /* -0.0 */
    struct rec rec = {.ts = *t, .volume = rnd_int(), .ticker = sym};
    memcpy(&rec.price, &bits, sizeof bits);
    rec.flags = rnd64() % 3 == 0 ? 0 : (uint32_t)(rnd64() >> (rnd64() % 64));
    ASSERT_EQ(tks_store_append(f.st, &rec), 0);
    m.r[m.n++] = rec;
  }
  expect_model(&f, &m, 5);
  ASSERT_U64_EQ(tks_store_block_bytes(f.st), tks_slab_bytes_used(f.slab));
  /* Trimming keeps the rest exact. */
  int64_t cut = 0;
  uint64_t below = tks_store_count_before(f.st, cut);
  ASSERT_U64_EQ(tks_store_trim_before(f.st, cut), below);
  unsigned kept = 0;
  for (unsigned i = 0; i < m.n; i++)
    if (m.r[i].ts >= cut) m.r[kept++] = m.r[i];
  m.n = kept;
  expect_model(&f, &m, 5);
  ASSERT_U64_EQ(tks_store_ticks(f.st), kept);
  teardown(&f);
}

TEST(a_block_that_cannot_widen_for_want_of_memory_refuses_the_tick_and_keeps_its_own) {
  struct fixture f;
  tks_schema_default(&f.schema);
  f.slab = tks_slab_create(65536, 1.25, 32);
  tks_slab_set_limit(f.slab,
                     65536 * 6); /* a page for each class of the first blocks, 2 of 4 KiB ones */
  f.st = tks_store_create(&f.schema, f.slab);
  ASSERT(f.slab && f.st);
  static struct model m;
  m.n = 0;
  /* Small values: narrow blocks, filled until the slab is full. */
  int64_t ts = 0;
  for (;;) {
    struct rec r = {.ts = ts++, .price = 1, .volume = 1, .ticker = 1};
    if (tks_store_append(f.st, &r) != 0) break;
    m.r[m.n++] = r;
    ASSERT(m.n < 20000);
  }
  /* An in-order tick with a wide volume needs a new block (the newest is
   * full); a late one into a full 4 KiB block needs its entries rewritten
   * wider, more than the block holds: a second 4 KiB block, of a class
   * without a free chunk.  Both are refused. */
  struct rec wide = {.ts = ts, .price = 1, .volume = INT64_MIN, .ticker = 1};
  ASSERT_EQ(tks_store_append(f.st, &wide), -ENOMEM);
  struct tks_store_block_info bi;
  int64_t first = 0;
  for (uint32_t i = 0; i < 5; i++) {
    ASSERT_EQ(tks_store_block_info(f.st, TKS_STORE_SLOTTED, 1, i, &bi), 0);
    first += bi.count;
  }
  ASSERT_EQ(tks_store_block_info(f.st, TKS_STORE_SLOTTED, 1, 5, &bi), 0);
  ASSERT(bi.bytes >= TKS_STORE_BLOCK_MAX);
  ASSERT_EQ(bi.count, bi.cap);
  wide.ts = first + bi.count / 2;
  ASSERT_EQ(tks_store_append(f.st, &wide), -ENOMEM);
  ASSERT_U64_EQ(tks_store_ticks(f.st), m.n);
  expect_model(&f, &m, 1);
  ASSERT_U64_EQ(tks_store_block_bytes(f.st), tks_slab_bytes_used(f.slab));
  /* With room again, the wide tick goes in and the block widens. */
  tks_slab_set_limit(f.slab, 0);
  ASSERT_EQ(tks_store_append(f.st, &wide), 0);
  m.r[m.n++] = wide;
  expect_model(&f, &m, 1);
  teardown(&f);
}

TEST_MAIN()
