/* Unit tests of lib/store.c: per-symbol time order, late inserts, block
 * growth and splits, range and last queries, memory counting. */
#include <errno.h>

#include "schema.h"
#include "slab.h"
#include "store.h"
#include "test.h"

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

TEST(memory_per_tick_approaches_the_record_size) {
  struct fixture f;
  setup(&f);
  for (int i = 0; i < 400000; i++) put(&f, 1 + (uint32_t)(i % 100), i, i);
  /* Chunk bytes per tick: records, block headers, the unfilled tail of each
   * symbol's newest block.  (Whole pages are the benchmark's business: at
   * 400k ticks a page per class is still a visible share.) */
  double per_tick = (double)tks_store_block_bytes(f.st) / 400000.0;
  ASSERT(per_tick >= 32.0);
  if (per_tick > 34.5) TEST_FAIL("block bytes per tick %.2f, want <= 34.5", per_tick);
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
  struct tks_dyn_value v = {.type = TKS_DYN_INT, .i = ts};
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

TEST(modes_parse_and_name) {
  enum tks_mode m;
  ASSERT_EQ(tks_mode_parse("fallback", &m), 0);
  ASSERT_EQ(m, TKS_MODE_FALLBACK);
  ASSERT_STR_EQ(tks_mode_name(TKS_MODE_SLOTTED), "slotted");
  ASSERT(tks_mode_parse("Slotted", &m) < 0);
}

TEST_MAIN()
