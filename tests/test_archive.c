/* Unit tests of lib/archive.c: days; every representation (slotted, record
 * with overflow map, dynamic object) written from a real store and read
 * back exactly, through fresh tables; order by ts then arrival within a
 * part and across parts; range, last and the cursor reading only the
 * blocks they need; conversion through a changed schema; symbols and days;
 * retention; leftovers of a crash; and hostile files: truncated at every
 * length, every bit flipped, oversized counts and lengths, zstd frames
 * that lie about their size, random bytes, missing files.  Every test works
 * in its own directory under /tmp and removes it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <zstd.h>

#include "archive-internal.h"
#include "archive.h"
#include "decode.h"
#include "encode.h"
#include "journal.h"
#include "render.h"
#include "schema.h"
#include "slab.h"
#include "store.h"
#include "symtab.h"
#include "test.h"
#include "tick.h"
#include "usage.h"
#include "util.h"

/* ---- helpers ------------------------------------------------------------- */

static uint64_t rng_state = 12345;
static uint64_t rnd(void) {
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static char *make_dir(void) {
  char *d = strdup("/tmp/tka-test-XXXXXX");
  ASSERT(d && mkdtemp(d));
  return d;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

static void rm_rf(char *dir) {
  nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  free(dir);
}

static int32_t day_of(const char *s) {
  int32_t d;
  ASSERT_EQ(tks_archive_day_parse(s, strlen(s), &d), 0);
  return d;
}

#define DAY "2026-11-25"
static int64_t day0(void) { return tks_archive_day_start(day_of(DAY)); }

struct rec { /* MarketEvent's layout */
  int64_t ts;
  double price;
  int64_t volume;
  uint32_t ticker;
  uint32_t flags;
};

/* A store and the tables its ids point into. */
struct world {
  struct tks_schema schema;
  enum tks_mode mode;
  struct tks_slab *slab;
  struct tks_store *st;
  struct tks_symtab *symbols, *strings, *names;
};

static void world_init(struct world *w, const struct tks_schema *schema, enum tks_mode mode) {
  if (schema)
    w->schema = *schema;
  else
    tks_schema_default(&w->schema);
  w->mode = mode;
  w->slab = tks_slab_create(1 << 20, 1.25, 32);
  w->st = tks_store_create(&w->schema, w->slab);
  w->symbols = tks_symtab_create(0);
  w->strings = tks_symtab_create(0);
  w->names = tks_symtab_create(0);
  ASSERT(w->slab && w->st && w->symbols && w->strings && w->names);
}

static void world_finish(struct world *w) {
  tks_store_destroy(w->st);
  tks_slab_destroy(w->slab);
  tks_symtab_destroy(w->symbols);
  tks_symtab_destroy(w->strings);
  tks_symtab_destroy(w->names);
}

static uint32_t intern(struct tks_symtab *t, const char *s) {
  uint32_t id;
  ASSERT_EQ(tks_symtab_intern(t, s, strlen(s), &id), 0);
  return id;
}

static void put_rec(struct world *w, const char *sym, int64_t ts, double price, int64_t vol,
                    const char *flags) {
  struct rec r = {.ts = ts,
                  .price = price,
                  .volume = vol,
                  .ticker = intern(w->symbols, sym),
                  .flags = intern(w->strings, flags)};
  ASSERT_EQ(tks_store_append(w->st, &r), 0);
}

/* A field of an object: name, then a value. */
struct kv {
  const char *name;
  struct tks_value v;
};

static struct tks_dynobj *make_obj(struct world *w, const struct kv *kv, unsigned n) {
  size_t sb = 0;
  for (unsigned i = 0; i < n; i++)
    if (kv[i].v.type == TKS_V_STR) sb += kv[i].v.v.s.len;
  struct tks_dynobj *o = tks_store_new_dynobj(w->st, n, sb);
  ASSERT(o);
  for (unsigned i = 0; i < n; i++)
    ASSERT_EQ(tks_dynobj_put(o, intern(w->names, kv[i].name), &kv[i].v), 0);
  return o;
}

static struct tks_value vint(int64_t i) { return (struct tks_value){.type = TKS_V_INT, .v.i = i}; }
static struct tks_value vf(double f) { return (struct tks_value){.type = TKS_V_F64, .v.f = f}; }
static struct tks_value vstr(const char *s) {
  return (struct tks_value){.type = TKS_V_STR, .v.s = {s, (uint32_t)strlen(s)}};
}

static void put_overflow(struct world *w, const char *sym, int64_t ts, double price, int64_t vol,
                         const struct kv *kv, unsigned n) {
  struct rec r = {.ts = ts,
                  .price = price,
                  .volume = vol,
                  .ticker = intern(w->symbols, sym),
                  .flags = intern(w->strings, "")};
  ASSERT_EQ(tks_store_append_overflow(w->st, &r, make_obj(w, kv, n)), 0);
}

/* A dynamic tick: ts and ticker first, then kv. */
static void put_dyn(struct world *w, const char *sym, int64_t ts, const struct kv *kv, unsigned n) {
  struct kv all[16] = {{"ts", vint(ts)},
                       {"ticker", {.type = TKS_V_SYM, .v.id = intern(w->symbols, sym)}}};
  for (unsigned i = 0; i < n; i++) all[2 + i] = kv[i];
  ASSERT_EQ(tks_store_append_dynamic(w->st, intern(w->symbols, sym), ts, make_obj(w, all, n + 2)),
            0);
}

/* A tick in words, exactly: every field with its value type and, for
 * doubles, its bits. */
struct dumper {
  const struct tks_schema *schema;
  const struct tks_symtab *symbols, *strings, *names;
  struct tks_buf out;
  uint64_t n;
};

static void dump_value(struct dumper *d, const struct tks_value *v) {
  const char *s;
  size_t len;
  switch (v->type) {
  case TKS_V_NIL: tks_buf_puts(&d->out, "nil"); break;
  case TKS_V_BOOL: tks_buf_printf(&d->out, "b%d", v->v.b); break;
  case TKS_V_INT: tks_buf_printf(&d->out, "i%lld", (long long)v->v.i); break;
  case TKS_V_UINT: tks_buf_printf(&d->out, "u%llu", (unsigned long long)v->v.u); break;
  case TKS_V_F64: {
    uint64_t b;
    memcpy(&b, &v->v.f, 8);
    tks_buf_printf(&d->out, "f%016llx", (unsigned long long)b);
    break;
  }
  case TKS_V_STR: tks_buf_printf(&d->out, "s'%.*s'", (int)v->v.s.len, v->v.s.p); break;
  case TKS_V_SYM:
  case TKS_V_ISTR:
    s = tks_symtab_name(v->type == TKS_V_SYM ? d->symbols : d->strings, v->v.id, &len);
    ASSERT(s);
    tks_buf_printf(&d->out, "%c'%.*s'", v->type == TKS_V_SYM ? 'S' : 'I', (int)len, s);
    break;
  }
}

static int dump_fn(void *ctx, const void *record, const struct tks_dynobj *obj) {
  struct dumper *d = ctx;
  tks_buf_puts(&d->out, record ? (obj ? "R+O{" : "R{") : "O{");
  if (record)
    for (unsigned i = 0; i < d->schema->nfields; i++) {
      const struct tks_field *f = &d->schema->fields[i];
      struct tks_value v = tks_field_value(f, record);
      tks_buf_printf(&d->out, "%s=", f->name);
      dump_value(d, &v);
      tks_buf_putc(&d->out, ' ');
    }
  if (obj) {
    tks_buf_puts(&d->out, "| ");
    const struct tks_dyn_slot *e = tks_dynobj_entries(obj);
    for (unsigned i = 0; i < obj->count; i++) {
      size_t len;
      const char *name = tks_symtab_name(d->names, e[i].key, &len);
      ASSERT(name);
      tks_buf_printf(&d->out, "%.*s=", (int)len, name);
      struct tks_value v = tks_dynobj_value(obj, &e[i]);
      dump_value(d, &v);
      tks_buf_putc(&d->out, ' ');
    }
  }
  tks_buf_puts(&d->out, "}\n");
  d->n++;
  return 0;
}

static void dumper_init(struct dumper *d, const struct tks_schema *schema,
                        const struct tks_symtab *symbols, const struct tks_symtab *strings,
                        const struct tks_symtab *names) {
  memset(d, 0, sizeof *d);
  d->schema = schema;
  d->symbols = symbols;
  d->strings = strings;
  d->names = names;
  tks_buf_puts(&d->out, "");
}

/* What the store holds of every symbol, dumped in symbol-name order. */
static char *dump_store(struct world *w, uint64_t *n) {
  struct dumper d;
  dumper_init(&d, &w->schema, w->symbols, w->strings, w->names);
  for (uint32_t id = 1; id <= tks_symtab_count(w->symbols); id++) {
    size_t len;
    const char *name = tks_symtab_name(w->symbols, id, &len);
    tks_buf_printf(&d.out, "== %.*s\n", (int)len, name);
    tks_store_range(w->st, id, INT64_MIN, INT64_MAX, 0, dump_fn, &d);
  }
  if (n) *n = d.n;
  return d.out.data;
}

/* Writes every tick of the store as one part of DAY.  Returns the part's info. */
static struct tks_archive_part_info archive_store(struct world *w, const char *dir,
                                                  const struct tks_archive_writer_opts *opts) {
  char err[256];
  struct tks_archive_tables t = {w->symbols, w->strings, w->names};
  struct tks_archive_writer *wr = tks_archive_writer_create(dir, day_of(DAY), &w->schema, w->mode,
                                                            &t, opts, err, sizeof err);
  if (!wr) TEST_FAIL("writer_create: %s", err);
  for (uint32_t id = 1; id <= tks_symtab_count(w->symbols); id++)
    tks_store_range(w->st, id, INT64_MIN, INT64_MAX, 0, tks_archive_writer_visit, wr);
  struct tks_archive_part_info pi;
  int rc = tks_archive_writer_seal(wr, &pi, err, sizeof err);
  if (rc) TEST_FAIL("seal: %s", err);
  return pi;
}

/* Reading tables, fresh, so that nothing depends on the writer's ids. */
struct reader {
  struct tks_schema schema;
  struct tks_symtab *symbols, *strings, *names;
  struct tks_archive_view v;
  struct tks_archive *a;
};

static void reader_open(struct reader *r, const char *dir, const struct tks_schema *schema) {
  if (schema)
    r->schema = *schema;
  else
    tks_schema_default(&r->schema);
  r->symbols = tks_symtab_create(0);
  r->strings = tks_symtab_create(0);
  r->names = tks_symtab_create(0);
  /* Ids of their own: the archive's ids would coincide otherwise. */
  intern(r->symbols, "zzz-unrelated");
  intern(r->strings, "zzz-unrelated");
  intern(r->names, "zzz-unrelated");
  r->v = (struct tks_archive_view){&r->schema, r->symbols, r->strings, r->names};
  char err[256];
  r->a = tks_archive_open(dir, err, sizeof err);
  if (!r->a) TEST_FAIL("open: %s", err);
}

static void reader_close(struct reader *r) {
  tks_archive_close(r->a);
  tks_symtab_destroy(r->symbols);
  tks_symtab_destroy(r->strings);
  tks_symtab_destroy(r->names);
}

/* Every symbol's ticks read back, in the form dump_store() gives. */
static char *dump_archive(struct reader *r, const struct tks_symtab *names_of, uint64_t *n) {
  struct dumper d;
  dumper_init(&d, &r->schema, r->symbols, r->strings, r->names);
  for (uint32_t id = 1; id <= tks_symtab_count(names_of); id++) {
    size_t len;
    const char *name = tks_symtab_name(names_of, id, &len);
    tks_buf_printf(&d.out, "== %.*s\n", (int)len, name);
    uint64_t got;
    int rc = tks_archive_range(r->a, &r->v, name, len, INT64_MIN, INT64_MAX, 0, dump_fn, &d, &got);
    if (rc) TEST_FAIL("range %.*s: %d %s", (int)len, name, rc, tks_archive_error(r->a));
  }
  if (n) *n = d.n;
  return d.out.data;
}

static void assert_same_text(const char *got, const char *want) {
  if (strcmp(got, want) == 0) return;
  size_t i = 0;
  while (got[i] && got[i] == want[i]) i++;
  size_t from = i > 200 ? i - 200 : 0;
  TEST_FAIL("the archive differs at byte %zu:\n  got  ...%.300s\n  want ...%.300s", i, got + from,
            want + from);
}

/* ---- days ------------------------------------------------------------------ */

TEST(day_names_parse_and_bounds_agree) {
  char buf[11];
  ASSERT_EQ(day_of("1970-01-01"), 0);
  ASSERT_EQ(day_of("1970-01-02"), 1);
  ASSERT_EQ(day_of("1969-12-31"), -1);
  ASSERT_EQ(tks_archive_day_of(0), 0);
  ASSERT_EQ(tks_archive_day_of(-1), -1);
  ASSERT_EQ(tks_archive_day_of(86400000000000ll - 1), 0);
  ASSERT_EQ(tks_archive_day_of(86400000000000ll), 1);
  ASSERT_EQ(tks_archive_day_start(1), 86400000000000ll);
  ASSERT_EQ(tks_archive_day_end(0), 86400000000000ll - 1);
  int64_t lo = tks_archive_day_of(INT64_MIN), hi = tks_archive_day_of(INT64_MAX);
  tks_archive_day_name((int32_t)lo, buf);
  ASSERT_STR_EQ(buf, "1677-09-21");
  tks_archive_day_name((int32_t)hi, buf);
  ASSERT_STR_EQ(buf, "2262-04-11");
  ASSERT_EQ(tks_archive_day_start((int32_t)lo), INT64_MIN);
  ASSERT_EQ(tks_archive_day_end((int32_t)hi), INT64_MAX);
  for (int32_t d = (int32_t)lo; d <= hi; d += 7) {
    tks_archive_day_name(d, buf);
    int32_t back;
    ASSERT_EQ(tks_archive_day_parse(buf, 10, &back), 0);
    ASSERT_EQ(back, d);
    if (d > lo && d < hi) {
      ASSERT_EQ(tks_archive_day_of(tks_archive_day_start(d)), d);
      ASSERT_EQ(tks_archive_day_of(tks_archive_day_end(d)), d);
    }
  }
  int32_t d;
  ASSERT_EQ(tks_archive_day_parse("2024-02-29", 10, &d), 0);
  const char *bad[] = {"2023-02-29", "2026-13-01", "2026-00-10",  "2026-04-31", "2026-1-01",
                       "1677-09-20", "2262-04-12", "2026-11-25x", "20261125xx", "2026/11/25"};
  for (unsigned i = 0; i < TKS_ARRAY_SIZE(bad); i++)
    ASSERT_EQ(tks_archive_day_parse(bad[i], strlen(bad[i]), &d), -EINVAL);
}

/* ---- round trips --------------------------------------------------------------- */

/* Random-walk slotted ticks over nsym symbols. */
static void fill_slotted(struct world *w, unsigned nsym, unsigned n) {
  int64_t t0 = day0() + 9 * 3600000000000ll;
  double px[64];
  for (unsigned s = 0; s < nsym; s++) px[s] = 10 + (double)(rnd() % 5000) / 100;
  for (unsigned i = 0; i < n; i++) {
    unsigned s = (unsigned)(rnd() % nsym);
    char sym[16];
    snprintf(sym, sizeof sym, "S%02u", s);
    px[s] += ((double)(rnd() % 11) - 5) / 100;
    t0 += (int64_t)(rnd() % 2000000);
    put_rec(w, sym, t0, round(px[s] * 100) / 100, 100 * (int64_t)(1 + rnd() % 50),
            rnd() % 8 == 0 ? "R" : "");
  }
}

TEST(slotted_ticks_come_back_exactly_through_fresh_tables) {
  char *dir = make_dir();
  struct world w;
  world_init(&w, NULL, TKS_MODE_SLOTTED);
  fill_slotted(&w, 20, 50000);
  uint64_t n;
  char *want = dump_store(&w, &n);
  ASSERT_EQ(n, 50000);
  struct tks_archive_writer_opts o = {.block_ticks = 1000};
  struct tks_archive_part_info pi = archive_store(&w, dir, &o);
  ASSERT_EQ(pi.ticks, 50000);
  ASSERT_EQ(pi.part, 1);
  ASSERT_EQ(pi.symbols, 20);
  ASSERT(pi.blocks >= 50);
  struct reader r;
  reader_open(&r, dir, NULL);
  uint64_t got_n;
  char *got = dump_archive(&r, w.symbols, &got_n);
  ASSERT_EQ(got_n, n);
  assert_same_text(got, want);
  uint64_t checked;
  ASSERT_EQ(tks_archive_verify(r.a, INT32_MIN, &checked), 0);
  ASSERT_EQ(checked, 50000);
  free(got);
  free(want);
  reader_close(&r);
  world_finish(&w);
  rm_rf(dir);
}

TEST(overflow_maps_come_back_exactly) {
  char *dir = make_dir();
  struct world w;
  world_init(&w, NULL, TKS_MODE_FALLBACK);
  int64_t t = day0() + 1000;
  for (int i = 0; i < 3000; i++) {
    t += 1 + (int64_t)(rnd() % 1000);
    const char *sym = i % 3 ? "AAPL" : "MSFT";
    if (i % 4) {
      put_rec(&w, sym, t, 100.25 + i, i, i % 2 ? "X" : "");
      continue;
    }
    char venue[32];
    snprintf(venue, sizeof venue, "venue-%d", i % 7);
    struct kv kv[] = {{"exchange", vstr(venue)},
                      {"seq", vint(-(int64_t)i * 1000003)},
                      {"mid", vf(i * 0.1)},
                      {"odd", {.type = TKS_V_BOOL, .v.b = i % 8 == 0}},
                      {"none", {.type = TKS_V_NIL}},
                      {"big", {.type = TKS_V_UINT, .v.u = UINT64_MAX - (uint64_t)i}}};
    put_overflow(&w, sym, t, 99.5, i, kv, 1 + (unsigned)(i % 6));
  }
  uint64_t n;
  char *want = dump_store(&w, &n);
  archive_store(&w, dir, NULL);
  struct reader r;
  reader_open(&r, dir, NULL);
  uint64_t got_n;
  char *got = dump_archive(&r, w.symbols, &got_n);
  ASSERT_EQ(got_n, n);
  assert_same_text(got, want);
  ASSERT_CONTAINS(got, "R+O{");
  free(got);
  free(want);
  reader_close(&r);
  world_finish(&w);
  rm_rf(dir);
}

TEST(dynamic_objects_come_back_exactly_in_their_field_order) {
  char *dir = make_dir();
  struct world w;
  world_init(&w, NULL, TKS_MODE_DYNAMIC);
  int64_t t = day0() + 5;
  char big[3000];
  memset(big, 'q', sizeof big - 1);
  big[sizeof big - 1] = 0;
  for (int i = 0; i < 2000; i++) {
    t += (int64_t)(rnd() % 3);
    struct kv kv[] = {{"price", vf(10 + i * 0.01)},
                      {"volume", vint(i)},
                      {"flags", {.type = TKS_V_ISTR, .v.id = intern(w.strings, i % 2 ? "R" : "")}},
                      {"note", vstr(i % 100 ? "x" : big)},
                      {"ref", {.type = TKS_V_SYM, .v.id = intern(w.symbols, "REF")}}};
    put_dyn(&w, i % 5 ? "IBM" : "HPQ", t, kv, 2 + (unsigned)(i % 4));
  }
  uint64_t n;
  char *want = dump_store(&w, &n);
  /* REF is a symbol of the table but has no series: the writer sees none. */
  archive_store(&w, dir, NULL);
  struct reader r;
  reader_open(&r, dir, NULL);
  uint64_t got_n;
  char *got = dump_archive(&r, w.symbols, &got_n);
  ASSERT_EQ(got_n, n);
  assert_same_text(got, want);
  ASSERT_NOT_CONTAINS(got, "R{");
  free(got);
  free(want);
  reader_close(&r);
  world_finish(&w);
  rm_rf(dir);
}

/* Every tick as the daemon's queries print it (tks_tick_json), a line each. */
struct jsoner {
  const struct tks_schema *schema;
  const struct tks_symtab *symbols, *strings, *names;
  struct tks_buf out;
};

static int json_fn(void *ctx, const void *record, const struct tks_dynobj *obj) {
  struct jsoner *j = ctx;
  ASSERT_EQ(tks_tick_json(j->schema, j->names, j->symbols, j->strings, record, obj, &j->out), 0);
  tks_buf_putc(&j->out, '\n');
  return 0;
}

TEST(ticks_decoded_in_every_mode_come_back_as_the_queries_print_them) {
  for (int m = 0; m < TKS_MODE_COUNT; m++) {
    char *dir = make_dir();
    struct world w;
    world_init(&w, NULL, (enum tks_mode)m);
    /* As ingest does: msgpack maps through the decoder into the store. */
    static struct tks_usage usage;
    tks_usage_init(&usage);
    struct tks_decoder dec = {.schema = &w.schema,
                              .symbols = w.symbols,
                              .strings = w.strings,
                              .max_message_bytes = 1 << 20,
                              .mode = w.mode,
                              .names = w.names};
    struct tks_tick_sink sink = {w.st, &usage, w.mode};
    struct tks_buf msg = {0};
    int64_t t = day0() + 3600000000000ll;
    unsigned stored = 0;
    for (int i = 0; i < 5000; i++) {
      t += (int64_t)(rnd() % 100000);
      char sym[8];
      snprintf(sym, sizeof sym, "T%d", i % 7);
      struct tks_kv kv[8] = {{"ticker", vstr(sym)},
                             {"ts", vint(t)},
                             {"price", vf(100 + (double)(i % 300) / 4)},
                             {"volume", vint(i % 1000)},
                             {"flags", vstr(i % 9 ? "" : "R")}};
      size_t n = 5;
      if (m != TKS_MODE_SLOTTED && i % 4 == 0) kv[n++] = (struct tks_kv){"venue", vstr("XNAS")};
      if (m != TKS_MODE_SLOTTED && i % 6 == 0) kv[n++] = (struct tks_kv){"seq", vint(-i)};
      msg.len = 0;
      ASSERT_EQ(tks_encode_map(&msg, kv, n), 0);
      _Alignas(8) char record[TKS_RECORD_MAX];
      static struct tks_dyn_tick dyn;
      struct tks_decode_result res = {.dyn = &dyn};
      enum tks_decode_status st = tks_decode(&dec, (const uint8_t *)msg.data, msg.len, t, record,
                                             &res);
      ASSERT(st == TKS_DECODE_OK || st == TKS_DECODE_DYNAMIC);
      ASSERT_EQ(tks_tick_store(&sink, st, record, &dyn), 0);
      stored++;
    }
    tks_buf_finish(&msg);
    ASSERT_EQ(tks_store_ticks(w.st), stored);
    /* What the store prints, and what the archive read into the same
     * tables prints: the same lines. */
    struct jsoner want = {&w.schema, w.symbols, w.strings, w.names, {0}};
    for (uint32_t id = 1; id <= tks_symtab_count(w.symbols); id++)
      tks_store_range(w.st, id, INT64_MIN, INT64_MAX, 0, json_fn, &want);
    char *dump_want = dump_store(&w, NULL);
    archive_store(&w, dir, NULL);
    char err[256];
    struct tks_archive *a = tks_archive_open(dir, err, sizeof err);
    ASSERT(a);
    struct tks_archive_view v = {&w.schema, w.symbols, w.strings, w.names};
    struct jsoner got = {&w.schema, w.symbols, w.strings, w.names, {0}};
    uint32_t nsym = tks_symtab_count(w.symbols);
    for (uint32_t id = 1; id <= nsym; id++) {
      size_t len;
      const char *name = tks_symtab_name(w.symbols, id, &len);
      ASSERT_EQ(tks_archive_range(a, &v, name, len, INT64_MIN, INT64_MAX, 0, json_fn, &got, NULL),
                0);
    }
    ASSERT_EQ(tks_symtab_count(w.symbols), nsym); /* every symbol was known */
    tks_buf_putc(&want.out, 0);
    tks_buf_putc(&got.out, 0);
    assert_same_text(got.out.data, want.out.data);
    ASSERT_CONTAINS(got.out.data, m == TKS_MODE_SLOTTED ? "\"flags\":\"R\"" : "\"venue\":\"XNAS\"");
    tks_archive_close(a);
    /* And through fresh tables, exactly. */
    struct reader r;
    reader_open(&r, dir, NULL);
    char *dump_got = dump_archive(&r, w.symbols, NULL);
    assert_same_text(dump_got, dump_want);
    reader_close(&r);
    free(dump_got);
    free(dump_want);
    tks_buf_finish(&want.out);
    tks_buf_finish(&got.out);
    world_finish(&w);
    rm_rf(dir);
  }
}

TEST(extreme_values_keep_their_bits) {
  char *dir = make_dir();
  struct world w;
  world_init(&w, NULL, TKS_MODE_FALLBACK);
  int64_t lo = day0(), hi = tks_archive_day_end(day_of(DAY));
  double nan;
  uint64_t nb = 0x7ff8dead0000beefull;
  memcpy(&nan, &nb, 8);
  double px[] = {0.0, -0.0, nan, INFINITY, -INFINITY, 5e-324, 1.7976931348623157e308, 0.1, 1e300};
  int64_t vol[] = {INT64_MIN, INT64_MAX, 0, -1, 1, INT64_MIN + 1, 42, 7, 1000000000000ll};
  for (unsigned i = 0; i < TKS_ARRAY_SIZE(px); i++)
    put_rec(&w, "X", i % 2 ? lo : hi - 1, px[i], vol[i], i % 3 ? "é€" : "");
  struct kv kv[] = {{"i", vint(INT64_MIN)},
                    {"j", vint(INT64_MAX)},
                    {"f", vf(nan)},
                    {"z", vf(-0.0)},
                    {"e", vstr("")}};
  put_overflow(&w, "X", hi - 1, -0.0, INT64_MIN, kv, 5);
  uint64_t n;
  char *want = dump_store(&w, &n);
  archive_store(&w, dir, NULL);
  struct reader r;
  reader_open(&r, dir, NULL);
  char *got = dump_archive(&r, w.symbols, NULL);
  assert_same_text(got, want);
  free(got);
  free(want);
  reader_close(&r);
  world_finish(&w);
  rm_rf(dir);
}

/* Records with every declared type, through a schema of its own. */
static void wide_schema(struct tks_schema *s) {
  memset(s, 0, sizeof *s);
  snprintf(s->name, sizeof s->name, "Wide");
  const struct {
    const char *n;
    enum tks_type t;
  } f[] = {{"ts", TKS_TYPE_TIMESTAMP}, {"sym", TKS_TYPE_SYMBOL}, {"venue", TKS_TYPE_STRING},
           {"bid", TKS_TYPE_F64},      {"qty", TKS_TYPE_U32},    {"live", TKS_TYPE_BOOL},
           {"seq", TKS_TYPE_I64},      {"alt", TKS_TYPE_SYMBOL}};
  for (unsigned i = 0; i < TKS_ARRAY_SIZE(f); i++) {
    snprintf(s->fields[i].name, sizeof s->fields[i].name, "%s", f[i].n);
    s->fields[i].type = f[i].t;
  }
  s->nfields = TKS_ARRAY_SIZE(f);
  char err[128];
  ASSERT_EQ(tks_schema_layout(s, err, sizeof err), 0);
}

static void put_wide(struct world *w, const char *sym, int64_t ts, const char *venue, double bid,
                     uint32_t qty, bool live, int64_t seq, const char *alt) {
  char rec[TKS_RECORD_MAX] = {0};
  const struct tks_schema *s = &w->schema;
  uint32_t id;
  memcpy(rec + s->fields[0].offset, &ts, 8);
  id = intern(w->symbols, sym);
  memcpy(rec + s->fields[1].offset, &id, 4);
  id = intern(w->strings, venue);
  memcpy(rec + s->fields[2].offset, &id, 4);
  memcpy(rec + s->fields[3].offset, &bid, 8);
  memcpy(rec + s->fields[4].offset, &qty, 4);
  rec[s->fields[5].offset] = live;
  memcpy(rec + s->fields[6].offset, &seq, 8);
  id = intern(w->symbols, alt);
  memcpy(rec + s->fields[7].offset, &id, 4);
  ASSERT_EQ(tks_store_append(w->st, rec), 0);
}

TEST(every_declared_type_comes_back_exactly) {
  char *dir = make_dir();
  struct tks_schema s;
  wide_schema(&s);
  struct world w;
  world_init(&w, &s, TKS_MODE_SLOTTED);
  int64_t t = day0();
  for (uint32_t i = 0; i < 20000; i++) {
    t += (int64_t)(rnd() % 5);
    put_wide(&w, i % 3 ? "A" : "B", t, i % 10 ? "NYSE" : "ARCA", 1.0 / (i + 1),
             i % 2 ? UINT32_MAX - i : i, i % 5 == 0, (int64_t)(rnd()), i % 7 ? "A" : "Q");
  }
  char *want = dump_store(&w, NULL);
  archive_store(&w, dir, NULL);
  struct reader r;
  reader_open(&r, dir, &s);
  char *got = dump_archive(&r, w.symbols, NULL);
  assert_same_text(got, want);
  free(got);
  free(want);
  reader_close(&r);
  world_finish(&w);
  rm_rf(dir);
}

/* ---- order ---------------------------------------------------------------------------- */

struct collect {
  int64_t ts[4096];
  int64_t vol[4096];
  unsigned n;
};

static int collect_fn(void *ctx, const void *record, const struct tks_dynobj *obj) {
  struct collect *c = ctx;
  ASSERT(record);
  (void)obj;
  const struct rec *r = record;
  if (c->n < 4096) {
    c->ts[c->n] = r->ts;
    c->vol[c->n] = r->volume;
  }
  c->n++;
  return 0;
}

static int any_fn(void *ctx, const void *record, const struct tks_dynobj *obj) {
  (void)ctx;
  ASSERT(record || obj);
  return 0;
}

static struct tks_archive_writer *writer(struct world *w, const char *dir, uint32_t block_ticks) {
  char err[256];
  struct tks_archive_tables t = {w->symbols, w->strings, w->names};
  struct tks_archive_writer_opts o = {.block_ticks = block_ticks};
  struct tks_archive_writer *wr = tks_archive_writer_create(dir, day_of(DAY), &w->schema, w->mode,
                                                            &t, &o, err, sizeof err);
  if (!wr) TEST_FAIL("writer_create: %s", err);
  return wr;
}

static void add(struct tks_archive_writer *wr, struct world *w, const char *sym, int64_t ts,
                int64_t vol) {
  struct rec r = {.ts = ts, .price = 1.5, .volume = vol, .ticker = intern(w->symbols, sym)};
  ASSERT_EQ(tks_archive_writer_add(wr, &r, NULL), 0);
}

static void seal(struct tks_archive_writer *wr) {
  char err[256];
  if (tks_archive_writer_seal(wr, NULL, err, sizeof err)) TEST_FAIL("seal: %s", err);
}

TEST(ticks_given_out_of_order_come_back_by_ts_then_arrival) {
  char *dir = make_dir();
  struct world w;
  world_init(&w, NULL, TKS_MODE_SLOTTED);
  struct tks_archive_writer *wr = writer(&w, dir, 64);
  int64_t t0 = day0() + 100;
  /* 1000 ticks on 50 timestamps, in a shuffled order; volume = arrival. */
  int64_t ts[1000];
  for (int i = 0; i < 1000; i++) ts[i] = t0 + (int64_t)(rnd() % 50);
  for (int i = 0; i < 1000; i++) add(wr, &w, "A", ts[i], i);
  seal(wr);
  struct reader r;
  reader_open(&r, dir, NULL);
  static struct collect c;
  memset(&c, 0, sizeof c);
  uint64_t got;
  ASSERT_EQ(tks_archive_range(r.a, &r.v, "A", 1, INT64_MIN, INT64_MAX, 0, collect_fn, &c, &got), 0);
  ASSERT_EQ(got, 1000);
  for (unsigned i = 1; i < c.n; i++) {
    ASSERT(c.ts[i] >= c.ts[i - 1]);
    if (c.ts[i] == c.ts[i - 1]) ASSERT(c.vol[i] > c.vol[i - 1]);
  }
  reader_close(&r);
  world_finish(&w);
  rm_rf(dir);
}

TEST(parts_of_one_day_merge_by_ts_then_part) {
  char *dir = make_dir();
  struct world w;
  world_init(&w, NULL, TKS_MODE_SLOTTED);
  int64_t t0 = day0() + 1000;
  /* Part 1: even ts 0..1998; part 2: every ts 1000..1499 (late ticks and
   * ties); part 3: another symbol only. */
  struct tks_archive_writer *wr = writer(&w, dir, 100);
  for (int i = 0; i < 1000; i++) add(wr, &w, "A", t0 + 2 * i, 1);
  seal(wr);
  wr = writer(&w, dir, 100);
  for (int i = 1000; i < 1500; i++) add(wr, &w, "A", t0 + i, 2);
  seal(wr);
  wr = writer(&w, dir, 100);
  add(wr, &w, "B", t0, 3);
  seal(wr);
  struct reader r;
  reader_open(&r, dir, NULL);
  struct tks_archive_totals tot;
  tks_archive_totals(r.a, &tot);
  ASSERT_EQ(tot.days, 1);
  ASSERT_EQ(tot.parts, 3);
  ASSERT_EQ(tot.ticks, 1501);
  static struct collect c;
  memset(&c, 0, sizeof c);
  ASSERT_EQ(tks_archive_range(r.a, &r.v, "A", 1, INT64_MIN, INT64_MAX, 0, collect_fn, &c, NULL), 0);
  ASSERT_EQ(c.n, 1500);
  for (unsigned i = 1; i < c.n; i++) {
    ASSERT(c.ts[i] >= c.ts[i - 1]);
    if (c.ts[i] == c.ts[i - 1]) ASSERT(c.vol[i - 1] == 1 && c.vol[i] == 2); /* part order */
  }
  /* The window [t0 + 1200, t0 + 1210): 5 of part 1, 10 of part 2. */
  memset(&c, 0, sizeof c);
  ASSERT_EQ(tks_archive_range(r.a, &r.v, "A", 1, t0 + 1200, t0 + 1210, 0, collect_fn, &c, NULL), 0);
  ASSERT_EQ(c.n, 15);
  ASSERT_EQ(c.ts[0], t0 + 1200);
  ASSERT_EQ(c.ts[14], t0 + 1209);
  reader_close(&r);
  world_finish(&w);
  rm_rf(dir);
}

/* ---- reading only what is needed ------------------------------------------------------- */

static void three_days(const char *dir, struct world *w) {
  char err[256];
  struct tks_archive_tables t = {w->symbols, w->strings, w->names};
  struct tks_archive_writer_opts o = {.block_ticks = 100};
  for (int d = 0; d < 3; d++) {
    int32_t day = day_of(DAY) + d;
    struct tks_archive_writer *wr = tks_archive_writer_create(dir, day, &w->schema, w->mode, &t, &o,
                                                              err, sizeof err);
    ASSERT(wr);
    int64_t t0 = tks_archive_day_start(day);
    for (int i = 0; i < 1000; i++) {
      struct rec r = {
          .ts = t0 + i * 1000, .volume = d * 1000 + i, .ticker = intern(w->symbols, "A")};
      ASSERT_EQ(tks_archive_writer_add(wr, &r, NULL), 0);
      if (i % 10 == 0) {
        r.ticker = intern(w->symbols, "B");
        ASSERT_EQ(tks_archive_writer_add(wr, &r, NULL), 0);
      }
    }
    ASSERT_EQ(tks_archive_writer_seal(wr, NULL, err, sizeof err), 0);
  }
}

TEST(range_and_last_read_only_the_blocks_they_need) {
  char *dir = make_dir();
  struct world w;
  world_init(&w, NULL, TKS_MODE_SLOTTED);
  three_days(dir, &w);
  struct reader r;
  reader_open(&r, dir, NULL);
  ASSERT_EQ(tks_archive_index_loads(r.a), 0); /* open reads footers only */
  uint64_t mem0 = tks_archive_memory(r.a);
  ASSERT(mem0 > 0 && mem0 < 10000);
  static struct collect c;
  memset(&c, 0, sizeof c);
  int64_t d1 = tks_archive_day_start(day_of(DAY) + 1);
  ASSERT_EQ(tks_archive_range(r.a, &r.v, "A", 1, d1 + 5000, d1 + 7000, 0, collect_fn, &c, NULL), 0);
  ASSERT_EQ(c.n, 2);
  ASSERT_EQ(c.vol[0], 1005);
  ASSERT_EQ(tks_archive_blocks_read(r.a), 1);
  ASSERT_EQ(tks_archive_index_loads(r.a), 1);
  ASSERT(tks_archive_memory(r.a) > mem0 + 10 * 48); /* an index of 11 blocks, and a buffer */
  /* last 3: the newest block of the newest day only. */
  memset(&c, 0, sizeof c);
  uint64_t got;
  ASSERT_EQ(tks_archive_last(r.a, &r.v, "A", 1, 3, collect_fn, &c, &got), 0);
  ASSERT_EQ(got, 3);
  ASSERT_EQ(c.vol[0], 2997);
  ASSERT_EQ(c.vol[2], 2999);
  ASSERT_EQ(tks_archive_blocks_read(r.a), 2);
  ASSERT_EQ(tks_archive_index_loads(r.a), 2);
  /* last 1150 spans days 2 and 1: 150 of day 1. */
  memset(&c, 0, sizeof c);
  ASSERT_EQ(tks_archive_last(r.a, &r.v, "A", 1, 1150, collect_fn, &c, &got), 0);
  ASSERT_EQ(got, 1150);
  ASSERT_EQ(c.vol[0], 1850);
  ASSERT_EQ(c.vol[1149], 2999);
  /* More than there are: all 3000. */
  memset(&c, 0, sizeof c);
  ASSERT_EQ(tks_archive_last(r.a, &r.v, "A", 1, 100000, collect_fn, &c, &got), 0);
  ASSERT_EQ(got, 3000);
  ASSERT_EQ(c.vol[0], 0);
  /* A limit, and a window that ends at a tick (excluded). */
  memset(&c, 0, sizeof c);
  ASSERT_EQ(tks_archive_range(r.a, &r.v, "A", 1, INT64_MIN, INT64_MAX, 1500, collect_fn, &c, &got),
            0);
  ASSERT_EQ(got, 1500);
  ASSERT_EQ(c.vol[1499], 1499);
  memset(&c, 0, sizeof c);
  ASSERT_EQ(tks_archive_range(r.a, &r.v, "B", 1, d1, d1 + 20000, 0, collect_fn, &c, &got), 0);
  ASSERT_EQ(got, 2); /* ts d1 and d1 + 10000 */
  ASSERT_EQ(tks_archive_range(r.a, &r.v, "NOPE", 4, INT64_MIN, INT64_MAX, 0, collect_fn, &c, &got),
            0);
  ASSERT_EQ(got, 0);
  reader_close(&r);
  world_finish(&w);
  rm_rf(dir);
}

TEST(last_picks_the_newest_of_overlapping_parts) {
  char *dir = make_dir();
  struct world w;
  world_init(&w, NULL, TKS_MODE_SLOTTED);
  int64_t t0 = day0();
  /* Part 1 holds ts 0..999, part 2 late ticks 500..509 and the newest, 2000. */
  struct tks_archive_writer *wr = writer(&w, dir, 100);
  for (int i = 0; i < 1000; i++) add(wr, &w, "A", t0 + i, i);
  seal(wr);
  wr = writer(&w, dir, 100);
  for (int i = 500; i < 510; i++) add(wr, &w, "A", t0 + i, 10000 + i);
  add(wr, &w, "A", t0 + 2000, 99999);
  add(wr, &w, "A", t0 + 999, 55555); /* ties the newest tick of part 1, after it */
  seal(wr);
  struct reader r;
  reader_open(&r, dir, NULL);
  static struct collect c;
  for (uint64_t n = 1; n <= 1012; n += 37) {
    memset(&c, 0, sizeof c);
    uint64_t got;
    ASSERT_EQ(tks_archive_last(r.a, &r.v, "A", 1, n, collect_fn, &c, &got), 0);
    ASSERT_EQ(got, n);
    ASSERT_EQ(c.vol[n - 1], 99999);
    if (n >= 2) ASSERT_EQ(c.vol[n - 2], 55555);
    if (n >= 3) ASSERT_EQ(c.vol[n - 3], 999);
    /* The same as the tail of a full range. */
    static struct collect all;
    memset(&all, 0, sizeof all);
    ASSERT_EQ(tks_archive_range(r.a, &r.v, "A", 1, INT64_MIN, INT64_MAX, 0, collect_fn, &all, NULL),
              0);
    ASSERT_EQ(all.n, 1012);
    for (uint64_t i = 0; i < n; i++) ASSERT_EQ(c.vol[i], all.vol[all.n - n + i]);
  }
  reader_close(&r);
  world_finish(&w);
  rm_rf(dir);
}

TEST(cursor_peeks_takes_and_skips) {
  char *dir = make_dir();
  struct world w;
  world_init(&w, NULL, TKS_MODE_SLOTTED);
  three_days(dir, &w);
  struct reader r;
  reader_open(&r, dir, NULL);
  int64_t d0 = day0();
  struct tks_archive_cursor *c = tks_archive_cursor_create(r.a, &r.v, "B", 1, d0, INT64_MAX);
  ASSERT(c);
  int64_t ts;
  ASSERT_EQ(tks_archive_cursor_peek(c, &ts), 1);
  ASSERT_EQ(ts, d0);
  struct tks_archive_tick t;
  ASSERT_EQ(tks_archive_cursor_next(c, &t), 1);
  ASSERT_EQ(t.ts, d0);
  ASSERT(t.record && !t.obj);
  ASSERT_EQ(tks_archive_cursor_skip(c, 250), 250);
  ASSERT_EQ(tks_archive_cursor_next(c, &t), 1);
  ASSERT_EQ(((const struct rec *)t.record)->volume, 2510); /* the 252nd of 300 */
  ASSERT_EQ(tks_archive_cursor_skip(c, 1000), 48);
  ASSERT_EQ(tks_archive_cursor_peek(c, &ts), 0);
  ASSERT_EQ(tks_archive_cursor_next(c, &t), 0);
  tks_archive_cursor_destroy(c);
  reader_close(&r);
  world_finish(&w);
  rm_rf(dir);
}

/* ---- listings ---------------------------------------------------------------------------- */

struct seen {
  char names[8][16];
  uint64_t count[8];
  int64_t first[8], last[8];
  unsigned n;
};

static int seen_sym(void *ctx, const struct tks_archive_symbol_info *s) {
  struct seen *z = ctx;
  if (z->n < 8) {
    snprintf(z->names[z->n], 16, "%.*s", (int)s->len, s->name);
    z->count[z->n] = s->count;
    z->first[z->n] = s->first_ts;
    z->last[z->n] = s->last_ts;
  }
  z->n++;
  return 0;
}

static int seen_day(void *ctx, const struct tks_archive_day_info *d) {
  struct seen *z = ctx;
  if (z->n < 8) {
    snprintf(z->names[z->n], 16, "%s", d->name);
    z->count[z->n] = d->ticks;
    z->first[z->n] = d->first_ts;
    z->last[z->n] = d->bytes;
  }
  z->n++;
  return 0;
}

TEST(symbols_and_days_are_listed_with_counts_and_times) {
  char *dir = make_dir();
  struct world w;
  world_init(&w, NULL, TKS_MODE_SLOTTED);
  three_days(dir, &w);
  struct reader r;
  reader_open(&r, dir, NULL);
  struct seen z = {0};
  ASSERT_EQ(tks_archive_days(r.a, seen_day, &z), 3);
  ASSERT_STR_EQ(z.names[0], "2026-11-25");
  ASSERT_STR_EQ(z.names[2], "2026-11-27");
  ASSERT_EQ(z.count[1], 1100);
  ASSERT_EQ(z.first[1], tks_archive_day_start(day_of(DAY) + 1));
  ASSERT(z.last[1] > 0);
  memset(&z, 0, sizeof z);
  ASSERT_EQ(tks_archive_symbols(r.a, INT32_MIN, INT32_MAX, seen_sym, &z), 0);
  ASSERT_EQ(z.n, 2);
  ASSERT_STR_EQ(z.names[0], "A");
  ASSERT_STR_EQ(z.names[1], "B");
  ASSERT_EQ(z.count[0], 3000);
  ASSERT_EQ(z.count[1], 300);
  ASSERT_EQ(z.first[0], day0());
  ASSERT_EQ(z.last[0], tks_archive_day_start(day_of(DAY) + 2) + 999000);
  memset(&z, 0, sizeof z);
  ASSERT_EQ(tks_archive_symbols(r.a, day_of(DAY) + 1, day_of(DAY) + 1, seen_sym, &z), 0);
  ASSERT_EQ(z.count[0], 1000);
  struct tks_archive_symbol_info si;
  ASSERT_EQ(tks_archive_symbol(r.a, "B", 1, &si), 0);
  ASSERT_EQ(si.count, 300);
  ASSERT_EQ(tks_archive_symbol(r.a, "C", 1, &si), -ENOENT);
  reader_close(&r);
  world_finish(&w);
  rm_rf(dir);
}

/* ---- schema changes ------------------------------------------------------------------------ */

static void add_field(struct tks_schema *s, const char *name, enum tks_type t, bool required) {
  struct tks_field *f = &s->fields[s->nfields++];
  memset(f, 0, sizeof *f);
  snprintf(f->name, sizeof f->name, "%s", name);
  f->type = t;
  f->required = required;
}

static void layout(struct tks_schema *s) {
  char err[128];
  ASSERT_EQ(tks_schema_layout(s, err, sizeof err), 0);
}

static char *read_all(struct reader *r, const char *sym) {
  struct dumper d;
  dumper_init(&d, &r->schema, r->symbols, r->strings, r->names);
  int rc = tks_archive_range(r->a, &r->v, sym, strlen(sym), INT64_MIN, INT64_MAX, 0, dump_fn, &d,
                             NULL);
  if (rc) TEST_FAIL("range: %s", tks_archive_error(r->a));
  return d.out.data;
}

TEST(a_field_declared_since_is_filled_from_the_overflow_map) {
  /* The advice's change: fallback ticks carry `exchange`; the new schema
   * declares it.  Ticks that had it come back slotted; ticks without it
   * cannot fill the new slot and come back as objects without it. */
  char *dir = make_dir();
  struct world w;
  world_init(&w, NULL, TKS_MODE_FALLBACK);
  int64_t t = day0() + 1;
  struct kv ex[] = {{"exchange", vstr("XNYS")}, {"x1", vint(7)}};
  put_overflow(&w, "A", t, 10.5, 100, ex, 1);
  put_overflow(&w, "A", t + 1, 10.75, 200, ex, 2);
  put_rec(&w, "A", t + 2, 11, 300, "R");
  archive_store(&w, dir, NULL);
  struct tks_schema now;
  tks_schema_default(&now);
  add_field(&now, "exchange", TKS_TYPE_STRING, false);
  layout(&now);
  struct reader r;
  reader_open(&r, dir, &now);
  char *got = read_all(&r, "A");
  assert_same_text(got, "R{ts=i1795564800000000001 ticker=S'A' price=f4025000000000000 volume=i100 "
                        "flags=I'' exchange=I'XNYS' }\n"
                        "R+O{ts=i1795564800000000002 ticker=S'A' price=f4025800000000000 "
                        "volume=i200 flags=I'' exchange=I'XNYS' | x1=i7 }\n"
                        "O{| ts=i1795564800000000003 ticker=S'A' price=f4026000000000000 "
                        "volume=i300 flags=I'R' }\n");
  free(got);
  reader_close(&r);
  world_finish(&w);
  rm_rf(dir);
}

TEST(a_dropped_field_goes_to_the_overflow_map_and_types_convert) {
  char *dir = make_dir();
  struct world w;
  world_init(&w, NULL, TKS_MODE_SLOTTED);
  put_rec(&w, "A", day0() + 1, 2.5, 42, "R");
  put_rec(&w, "A", day0() + 2, 3.5, -1, "");
  archive_store(&w, dir, NULL);
  /* Now: no flags, volume an f64, and a u32 `lots` nobody had. */
  struct tks_schema now;
  memset(&now, 0, sizeof now);
  snprintf(now.name, sizeof now.name, "Now");
  add_field(&now, "ticker", TKS_TYPE_SYMBOL, true);
  add_field(&now, "ts", TKS_TYPE_TIMESTAMP, false);
  add_field(&now, "price", TKS_TYPE_F64, true);
  add_field(&now, "volume", TKS_TYPE_F64, true);
  layout(&now);
  struct reader r;
  reader_open(&r, dir, &now);
  char *got = read_all(&r, "A");
  assert_same_text(got, "R+O{ticker=S'A' ts=i1795564800000000001 price=f4004000000000000 "
                        "volume=f4045000000000000 | flags=I'R' }\n"
                        "R+O{ticker=S'A' ts=i1795564800000000002 price=f400c000000000000 "
                        "volume=fbff0000000000000 | flags=I'' }\n");
  free(got);
  reader_close(&r);
  /* volume as u32: -1 does not fit, that tick comes back as an object. */
  now.fields[3].type = TKS_TYPE_U32;
  layout(&now);
  reader_open(&r, dir, &now);
  got = read_all(&r, "A");
  assert_same_text(got, "R+O{ticker=S'A' ts=i1795564800000000001 price=f4004000000000000 "
                        "volume=i42 | flags=I'R' }\n"
                        "O{| ts=i1795564800000000002 ticker=S'A' price=f400c000000000000 "
                        "volume=i-1 flags=I'' }\n");
  free(got);
  reader_close(&r);
  world_finish(&w);
  rm_rf(dir);
}

TEST(a_renamed_ts_or_symbol_field_reads_as_objects) {
  char *dir = make_dir();
  struct world w;
  world_init(&w, NULL, TKS_MODE_SLOTTED);
  put_rec(&w, "A", day0() + 1, 2.5, 42, "R");
  archive_store(&w, dir, NULL);
  struct tks_schema now;
  memset(&now, 0, sizeof now);
  add_field(&now, "time", TKS_TYPE_TIMESTAMP, false);
  add_field(&now, "ticker", TKS_TYPE_SYMBOL, true);
  add_field(&now, "price", TKS_TYPE_F64, true);
  layout(&now);
  struct reader r;
  reader_open(&r, dir, &now);
  char *got = read_all(&r, "A");
  assert_same_text(got, "O{| ts=i1795564800000000001 ticker=S'A' price=f4004000000000000 "
                        "volume=i42 flags=I'R' }\n");
  free(got);
  reader_close(&r);
  world_finish(&w);
  rm_rf(dir);
}

TEST(full_tables_leave_strings_as_plain_strings) {
  char *dir = make_dir();
  struct world w;
  world_init(&w, NULL, TKS_MODE_SLOTTED);
  put_rec(&w, "A", day0() + 1, 2.5, 42, "Z");
  archive_store(&w, dir, NULL);
  struct reader r;
  reader_open(&r, dir, NULL);
  tks_symtab_destroy(r.strings);
  r.strings = tks_symtab_create(1); /* "zzz-unrelated" fills it */
  intern(r.strings, "zzz-unrelated");
  r.v.strings = r.strings;
  char *got = read_all(&r, "A");
  assert_same_text(got, "O{| ts=i1795564800000000001 ticker=S'A' price=f4004000000000000 "
                        "volume=i42 flags=s'Z' }\n");
  free(got);
  reader_close(&r);
  world_finish(&w);
  rm_rf(dir);
}

/* ---- writer ------------------------------------------------------------------------------ */

TEST(writer_refuses_ticks_of_another_day_and_unknown_ids) {
  char *dir = make_dir();
  struct world w;
  world_init(&w, NULL, TKS_MODE_SLOTTED);
  struct tks_archive_writer *wr = writer(&w, dir, 100);
  struct rec r = {.ts = day0() - 1, .ticker = intern(w.symbols, "A")};
  ASSERT_EQ(tks_archive_writer_add(wr, &r, NULL), -ERANGE);
  r.ts = tks_archive_day_end(day_of(DAY)) + 1;
  ASSERT_EQ(tks_archive_writer_add(wr, &r, NULL), -ERANGE);
  r.ts = day0();
  r.ticker = 999;
  ASSERT_EQ(tks_archive_writer_add(wr, &r, NULL), -EINVAL);
  r.ticker = 0;
  ASSERT_EQ(tks_archive_writer_add(wr, &r, NULL), -EINVAL);
  r.ticker = intern(w.symbols, "A");
  r.flags = 12345;
  ASSERT_EQ(tks_archive_writer_add(wr, &r, NULL), -EINVAL);
  r.flags = 0;
  ASSERT_EQ(tks_archive_writer_add(wr, &r, NULL), 0);
  ASSERT_EQ(tks_archive_writer_add(wr, NULL, NULL), -EINVAL);
  ASSERT_EQ(tks_archive_writer_ticks(wr), 1);
  struct tks_archive_part_info pi;
  char err[256];
  ASSERT_EQ(tks_archive_writer_seal(wr, &pi, err, sizeof err), 0);
  ASSERT_EQ(pi.ticks, 1);
  ASSERT_EQ(pi.symbols, 1);
  /* As a visitor, a refused tick stops the visit and fails the seal. */
  wr = writer(&w, dir, 100);
  r.ts = day0() - 1;
  ASSERT_EQ(tks_archive_writer_visit(wr, &r, NULL), 1);
  r.ts = day0();
  ASSERT(tks_archive_writer_add(wr, &r, NULL) != 0);
  ASSERT(tks_archive_writer_seal(wr, &pi, err, sizeof err) != 0);
  ASSERT_CONTAINS(err, "cannot take");
  struct reader rd;
  reader_open(&rd, dir, NULL);
  struct tks_archive_totals tot;
  tks_archive_totals(rd.a, &tot);
  ASSERT_EQ(tot.parts, 1);
  reader_close(&rd);
  world_finish(&w);
  rm_rf(dir);
}

static unsigned count_entries(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  unsigned n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

TEST(an_empty_or_aborted_writer_leaves_nothing) {
  char *dir = make_dir();
  struct world w;
  world_init(&w, NULL, TKS_MODE_SLOTTED);
  struct tks_archive_writer *wr = writer(&w, dir, 100);
  struct tks_archive_part_info pi;
  char err[256];
  ASSERT_EQ(tks_archive_writer_seal(wr, &pi, err, sizeof err), 0);
  ASSERT_EQ(pi.ticks, 0);
  ASSERT_EQ(pi.part, 0);
  ASSERT_EQ(count_entries(dir), 0);
  wr = writer(&w, dir, 100);
  for (int i = 0; i < 500; i++) add(wr, &w, "A", day0() + i, i);
  tks_archive_writer_abort(wr);
  ASSERT_EQ(count_entries(dir), 0);
  tks_archive_writer_abort(NULL);
  world_finish(&w);
  rm_rf(dir);
}

TEST(a_small_budget_cuts_blocks_early_and_loses_nothing) {
  char *dir = make_dir();
  struct world w;
  world_init(&w, NULL, TKS_MODE_SLOTTED);
  char err[256];
  struct tks_archive_tables t = {w.symbols, w.strings, w.names};
  struct tks_archive_writer_opts o = {.block_ticks = 65536, .buffer_bytes = 1};
  struct tks_archive_writer *wr = tks_archive_writer_create(dir, day_of(DAY), &w.schema, w.mode, &t,
                                                            &o, err, sizeof err);
  ASSERT(wr);
  /* 200 symbols interleaved, 300000 ticks: 1 MiB holds about 20000. */
  for (int i = 0; i < 300000; i++) {
    char sym[8];
    snprintf(sym, sizeof sym, "S%d", i % 200);
    add(wr, &w, sym, day0() + i / 200, i);
  }
  struct tks_archive_part_info pi;
  ASSERT_EQ(tks_archive_writer_seal(wr, &pi, err, sizeof err), 0);
  ASSERT_EQ(pi.ticks, 300000);
  ASSERT(pi.blocks > 200);
  struct reader r;
  reader_open(&r, dir, NULL);
  static struct collect c;
  memset(&c, 0, sizeof c);
  ASSERT_EQ(tks_archive_range(r.a, &r.v, "S7", 2, INT64_MIN, INT64_MAX, 0, collect_fn, &c, NULL),
            0);
  ASSERT_EQ(c.n, 1500);
  for (unsigned i = 0; i < 1500 && i < 4096; i++) ASSERT_EQ(c.vol[i], 7 + 200 * (int64_t)i);
  reader_close(&r);
  world_finish(&w);
  rm_rf(dir);
}

TEST(a_failing_write_leaves_the_day_as_it_was) {
  /* RLIMIT_FSIZE makes a write past it fail (EFBIG) without a full disk;
   * this test's process is its own, so the limit goes with it. */
  char *dir = make_dir();
  struct world w;
  world_init(&w, NULL, TKS_MODE_SLOTTED);
  struct tks_archive_writer *wr = writer(&w, dir, 100);
  for (int i = 0; i < 1000; i++) add(wr, &w, "A", day0() + i, i);
  seal(wr);
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit lim;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &lim), 0);
  lim.rlim_cur = 64 << 10;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
  /* Random volumes: 200,000 ticks make far more than 64 KiB. */
  wr = writer(&w, dir, 4096);
  int rc = 0;
  for (int i = 0; i < 200000 && !rc; i++) {
    struct rec r = {
        .ts = day0() + 5000 + i, .volume = (int64_t)rnd(), .ticker = intern(w.symbols, "A")};
    rc = tks_archive_writer_add(wr, &r, NULL);
  }
  char err[256];
  struct tks_archive_part_info pi;
  int sealed = tks_archive_writer_seal(wr, &pi, err, sizeof err);
  ASSERT(rc == -EFBIG || sealed == -EFBIG);
  ASSERT_EQ(sealed, -EFBIG);
  ASSERT_CONTAINS(err, "part.tka");
  /* The second part never appeared, its temporary directory is gone. */
  ASSERT_EQ(count_entries(dir), 1);
  char path[512];
  snprintf(path, sizeof path, "%s/" DAY, dir);
  ASSERT_EQ(count_entries(path), 1);
  struct reader r;
  reader_open(&r, dir, NULL);
  static struct collect c;
  memset(&c, 0, sizeof c);
  ASSERT_EQ(tks_archive_range(r.a, &r.v, "A", 1, INT64_MIN, INT64_MAX, 0, collect_fn, &c, NULL), 0);
  ASSERT_EQ(c.n, 1000);
  reader_close(&r);
  world_finish(&w);
  rm_rf(dir);
}

TEST(options_out_of_range_are_refused) {
  char *dir = make_dir();
  struct world w;
  world_init(&w, NULL, TKS_MODE_SLOTTED);
  char err[256];
  struct tks_archive_tables t = {w.symbols, w.strings, w.names};
  struct tks_archive_writer_opts o = {.level = 23};
  ASSERT(!tks_archive_writer_create(dir, 0, &w.schema, w.mode, &t, &o, err, sizeof err));
  ASSERT_CONTAINS(err, "level");
  o = (struct tks_archive_writer_opts){.block_ticks = 65537};
  ASSERT(!tks_archive_writer_create(dir, 0, &w.schema, w.mode, &t, &o, err, sizeof err));
  ASSERT_CONTAINS(err, "ticks a block");
  ASSERT(!tks_archive_writer_create("/proc/no/such/dir", 0, &w.schema, w.mode, &t, NULL, err,
                                    sizeof err));
  ASSERT_CONTAINS(err, "/proc/no/such/dir");
  world_finish(&w);
  rm_rf(dir);
}

/* ---- retention and leftovers -------------------------------------------------------------- */

TEST(retention_deletes_whole_old_days_and_says_what_it_freed) {
  char *dir = make_dir();
  struct world w;
  world_init(&w, NULL, TKS_MODE_SLOTTED);
  three_days(dir, &w);
  struct reader r;
  reader_open(&r, dir, NULL);
  struct tks_archive_totals before, after;
  tks_archive_totals(r.a, &before);
  struct tks_archive_freed f;
  ASSERT_EQ(tks_archive_retain(r.a, day_of(DAY), &f), 0);
  ASSERT_EQ(f.days, 0);
  ASSERT_EQ(tks_archive_retain(r.a, day_of(DAY) + 2, &f), 0);
  ASSERT_EQ(f.days, 2);
  ASSERT_EQ(f.parts, 2);
  ASSERT_EQ(f.ticks, 2200);
  tks_archive_totals(r.a, &after);
  ASSERT_EQ(after.days, 1);
  ASSERT_EQ(after.ticks, 1100);
  ASSERT_EQ(f.bytes, before.bytes - after.bytes);
  ASSERT_EQ(count_entries(dir), 1);
  static struct collect c;
  memset(&c, 0, sizeof c);
  ASSERT_EQ(tks_archive_range(r.a, &r.v, "A", 1, INT64_MIN, INT64_MAX, 0, collect_fn, &c, NULL), 0);
  ASSERT_EQ(c.n, 1000);
  ASSERT_EQ(c.vol[0], 2000);
  reader_close(&r);
  /* Reopened: the same. */
  reader_open(&r, dir, NULL);
  tks_archive_totals(r.a, &after);
  ASSERT_EQ(after.days, 1);
  reader_close(&r);
  world_finish(&w);
  rm_rf(dir);
}

TEST(leftovers_of_a_crash_are_ignored_and_removed) {
  char *dir = make_dir();
  struct world w;
  world_init(&w, NULL, TKS_MODE_SLOTTED);
  three_days(dir, &w);
  /* A dead writer's temporary dir (pid far above pid_max), a half deleted day,
   * a part file that never got its name, and unrelated entries. */
  char path[512];
  snprintf(path, sizeof path, "%s/2026-11-28.tmp-99999999", dir);
  ASSERT_EQ(mkdir(path, 0750), 0);
  snprintf(path, sizeof path, "%s/2026-11-28.tmp-99999999/part.tka", dir);
  FILE *f = fopen(path, "w");
  ASSERT(f);
  fputs("half a part", f);
  fclose(f);
  snprintf(path, sizeof path, "%s/2026-11-20.del-99999998", dir);
  ASSERT_EQ(mkdir(path, 0750), 0);
  snprintf(path, sizeof path, "%s/2026-11-25/part.tka", dir);
  f = fopen(path, "w");
  ASSERT(f);
  fclose(f);
  snprintf(path, sizeof path, "%s/lost+found", dir);
  ASSERT_EQ(mkdir(path, 0750), 0);
  /* A live process's temporary dir is left alone. */
  snprintf(path, sizeof path, "%s/2026-11-29.tmp-1", dir);
  ASSERT_EQ(mkdir(path, 0750), 0);
  struct reader r;
  reader_open(&r, dir, NULL);
  struct tks_archive_totals tot;
  tks_archive_totals(r.a, &tot);
  ASSERT_EQ(tot.days, 3);
  ASSERT_EQ(tot.parts, 3);
  ASSERT_EQ(tot.bad_parts, 0);
  snprintf(path, sizeof path, "%s/2026-11-28.tmp-99999999", dir);
  ASSERT(access(path, F_OK) != 0);
  snprintf(path, sizeof path, "%s/2026-11-20.del-99999998", dir);
  ASSERT(access(path, F_OK) != 0);
  snprintf(path, sizeof path, "%s/2026-11-29.tmp-1", dir);
  ASSERT(access(path, F_OK) == 0);
  reader_close(&r);
  world_finish(&w);
  rm_rf(dir);
}

TEST(a_part_sealed_after_open_is_seen_after_rescan) {
  char *dir = make_dir();
  struct world w;
  world_init(&w, NULL, TKS_MODE_SLOTTED);
  struct tks_archive_writer *wr = writer(&w, dir, 100);
  add(wr, &w, "A", day0() + 1, 1);
  seal(wr);
  struct reader r;
  reader_open(&r, dir, NULL);
  static struct collect c;
  memset(&c, 0, sizeof c);
  ASSERT_EQ(tks_archive_range(r.a, &r.v, "A", 1, INT64_MIN, INT64_MAX, 0, collect_fn, &c, NULL), 0);
  ASSERT_EQ(c.n, 1);
  wr = writer(&w, dir, 100);
  add(wr, &w, "A", day0() + 2, 2);
  seal(wr);
  ASSERT_EQ(tks_archive_rescan(r.a), 0);
  ASSERT_EQ(tks_archive_index_loads(r.a), 1); /* part 1 kept its index */
  memset(&c, 0, sizeof c);
  ASSERT_EQ(tks_archive_range(r.a, &r.v, "A", 1, INT64_MIN, INT64_MAX, 0, collect_fn, &c, NULL), 0);
  ASSERT_EQ(c.n, 2);
  ASSERT_EQ(tks_archive_index_loads(r.a), 2);
  reader_close(&r);
  world_finish(&w);
  rm_rf(dir);
}

TEST(a_missing_archive_dir_is_empty) {
  struct reader r;
  reader_open(&r, "/tmp/tka-test-does-not-exist-at-all", NULL);
  struct tks_archive_totals tot;
  tks_archive_totals(r.a, &tot);
  ASSERT_EQ(tot.days, 0);
  uint64_t got = 1;
  ASSERT_EQ(tks_archive_last(r.a, &r.v, "A", 1, 5, any_fn, NULL, &got), 0);
  ASSERT_EQ(got, 0);
  reader_close(&r);
}

/* ---- hostile files ---------------------------------------------------------------------------- */

static char *part_path(const char *dir, uint32_t part) {
  char *p;
  ASSERT(asprintf(&p, "%s/" DAY "/part-%06u.tka", dir, part) > 0);
  return p;
}

static uint8_t *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  ASSERT(f);
  fseek(f, 0, SEEK_END);
  *len = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = malloc(*len + 1);
  ASSERT(b && fread(b, 1, *len, f) == *len);
  fclose(f);
  return b;
}

static void spill(const char *path, const void *b, size_t len) {
  FILE *f = fopen(path, "wb");
  ASSERT(f && fwrite(b, 1, len, f) == len);
  fclose(f);
}

/* A small part with all three representations, and its expected dump. */
static void small_part(const char *dir, char **want) {
  struct world w;
  world_init(&w, NULL, TKS_MODE_FALLBACK);
  for (int i = 0; i < 60; i++) put_rec(&w, i % 2 ? "A" : "B", day0() + i, 1 + i * 0.25, i, "R");
  struct kv kv[] = {{"exchange", vstr("XNYS")}, {"n", vint(3)}};
  put_overflow(&w, "A", day0() + 100, 5.5, 1, kv, 2);
  struct kv dk[] = {{"price", vf(2.5)}, {"note", vstr("hi")}};
  put_dyn(&w, "B", day0() + 101, dk, 2);
  struct tks_archive_writer_opts o = {.block_ticks = 16};
  archive_store(&w, dir, &o);
  if (want) *want = dump_store(&w, NULL);
  world_finish(&w);
}

struct checker {
  struct tks_schema schema;
  struct tks_symtab *symbols, *strings, *names;
  struct tks_archive_view v;
};

static void checker_init(struct checker *c) {
  tks_schema_default(&c->schema);
  c->symbols = tks_symtab_create(0);
  c->strings = tks_symtab_create(0);
  c->names = tks_symtab_create(0);
  c->v = (struct tks_archive_view){&c->schema, c->symbols, c->strings, c->names};
}

static void checker_finish(struct checker *c) {
  tks_symtab_destroy(c->symbols);
  tks_symtab_destroy(c->strings);
  tks_symtab_destroy(c->names);
}

TEST(a_part_cut_at_any_length_is_refused) {
  char *dir = make_dir();
  small_part(dir, NULL);
  char *path = part_path(dir, 1);
  size_t len;
  uint8_t *file = slurp(path, &len);
  struct checker c;
  checker_init(&c);
  char err[256];
  uint64_t ticks;
  ASSERT_EQ(
      tks_archive_check_part(file, len, day_of(DAY), 1, &c.v, NULL, NULL, &ticks, err, sizeof err),
      0);
  ASSERT_EQ(ticks, 62);
  for (size_t cut = 0; cut < len; cut++) {
    int rc = tks_archive_check_part(file, cut, day_of(DAY), 1, &c.v, NULL, NULL, &ticks, err,
                                    sizeof err);
    if (rc != -EBADMSG) TEST_FAIL("cut at %zu of %zu: %d", cut, len, rc);
    ASSERT(err[0]);
  }
  /* Through the files too: a few cuts, each refused by the queries of its day. */
  size_t cuts[] = {0, 10, 32, len / 2, len - 1};
  for (unsigned k = 0; k < TKS_ARRAY_SIZE(cuts); k++) {
    ASSERT_EQ(truncate(path, (off_t)cuts[k]), 0);
    struct reader r;
    reader_open(&r, dir, NULL);
    struct tks_archive_totals tot;
    tks_archive_totals(r.a, &tot);
    ASSERT_EQ(tot.bad_parts, 1);
    uint64_t got = 7;
    ASSERT_EQ(tks_archive_range(r.a, &r.v, "A", 1, INT64_MIN, INT64_MAX, 0, any_fn, NULL, &got),
              -EBADMSG);
    ASSERT_EQ(got, 0);
    ASSERT_CONTAINS(tks_archive_error(r.a), "part-000001.tka");
    ASSERT_EQ(tks_archive_last(r.a, &r.v, "A", 1, 1, any_fn, NULL, &got), -EBADMSG);
    ASSERT(tks_archive_symbols(r.a, INT32_MIN, INT32_MAX, seen_sym, NULL) == -EBADMSG);
    reader_close(&r);
  }
  checker_finish(&c);
  free(file);
  free(path);
  rm_rf(dir);
}

TEST(every_flipped_bit_is_refused) {
  char *dir = make_dir();
  small_part(dir, NULL);
  char *path = part_path(dir, 1);
  size_t len;
  uint8_t *file = slurp(path, &len);
  struct checker c;
  checker_init(&c);
  char err[256];
  unsigned missed = 0;
  for (size_t i = 0; i < len; i++)
    for (int b = 0; b < 8; b++) {
      file[i] ^= (uint8_t)(1 << b);
      int rc = tks_archive_check_part(file, len, day_of(DAY), 1, &c.v, NULL, NULL, NULL, err,
                                      sizeof err);
      file[i] ^= (uint8_t)(1 << b);
      if (rc != -EBADMSG) {
        if (!missed) fprintf(stderr, "  byte %zu bit %d of %zu: %d\n", i, b, len, rc);
        missed++;
      }
    }
  ASSERT_EQ(missed, 0);
  checker_finish(&c);
  free(file);
  free(path);
  rm_rf(dir);
}

TEST(a_flipped_bit_in_a_block_fails_only_the_queries_that_read_it) {
  char *dir = make_dir();
  struct world w;
  world_init(&w, NULL, TKS_MODE_SLOTTED);
  three_days(dir, &w);
  world_finish(&w);
  /* Day 2's first block (symbol A or B) gets a flipped bit: day 2's footer
   * and index still verify. */
  char path[512];
  snprintf(path, sizeof path, "%s/2026-11-26/part-000001.tka", dir);
  size_t len;
  uint8_t *file = slurp(path, &len);
  file[40] ^= 0x10;
  spill(path, file, len);
  free(file);
  struct reader r;
  reader_open(&r, dir, NULL);
  struct tks_archive_totals tot;
  tks_archive_totals(r.a, &tot);
  ASSERT_EQ(tot.bad_parts, 0);
  static struct collect c;
  memset(&c, 0, sizeof c);
  uint64_t got;
  int64_t d0 = day0(), d2 = tks_archive_day_start(day_of(DAY) + 2);
  ASSERT_EQ(
      tks_archive_range(r.a, &r.v, "A", 1, d0, d0 + 86400000000000ll, 0, collect_fn, &c, &got), 0);
  ASSERT_EQ(got, 1000);
  ASSERT_EQ(tks_archive_range(r.a, &r.v, "A", 1, d2, INT64_MAX, 0, collect_fn, &c, &got), 0);
  ASSERT_EQ(got, 1000);
  int ra = tks_archive_range(r.a, &r.v, "A", 1, INT64_MIN, INT64_MAX, 0, collect_fn, &c, &got);
  int rb = tks_archive_range(r.a, &r.v, "B", 1, INT64_MIN, INT64_MAX, 0, collect_fn, &c, &got);
  ASSERT((ra == -EBADMSG) != (rb == -EBADMSG)); /* one of the two */
  ASSERT_CONTAINS(tks_archive_error(r.a), "CRC");
  ASSERT_CONTAINS(tks_archive_error(r.a), "2026-11-26/part-000001.tka");
  ASSERT_EQ(tks_archive_verify(r.a, day_of(DAY), NULL), 0);
  ASSERT_EQ(tks_archive_verify(r.a, INT32_MIN, NULL), -EBADMSG);
  reader_close(&r);
  rm_rf(dir);
}

TEST(a_part_deleted_under_an_open_archive_fails_cleanly) {
  char *dir = make_dir();
  small_part(dir, NULL);
  struct reader r;
  reader_open(&r, dir, NULL);
  char *path = part_path(dir, 1);
  ASSERT_EQ(unlink(path), 0);
  uint64_t got;
  ASSERT_EQ(tks_archive_range(r.a, &r.v, "A", 1, INT64_MIN, INT64_MAX, 0, any_fn, NULL, &got),
            -ENOENT);
  ASSERT_CONTAINS(tks_archive_error(r.a), "part-000001.tka");
  ASSERT_EQ(tks_archive_rescan(r.a), 0);
  ASSERT_EQ(tks_archive_range(r.a, &r.v, "A", 1, INT64_MIN, INT64_MAX, 0, any_fn, NULL, &got), 0);
  free(path);
  reader_close(&r);
  rm_rf(dir);
}

TEST(random_bytes_are_refused_at_every_layer) {
  struct checker c;
  checker_init(&c);
  char err[256];
  uint8_t buf[4096];
  for (int round = 0; round < 3000; round++) {
    size_t len = (size_t)(rnd() % sizeof buf);
    for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)rnd();
    if (round % 3 == 1 && len > 8) memcpy(buf, "TKSAIDX1", 8);
    ASSERT(tks_archive_check_index(buf, len, 0, 1, 1 << 20, NULL, err, sizeof err) < 0);
    ASSERT(tks_archive_check_part(buf, len, 0, 1, &c.v, NULL, NULL, NULL, err, sizeof err) < 0);
    /* A random block can be valid (a few bytes of one tick); it must not crash. */
    int rc = tks_archive_check_block(&c.schema, buf, len, 0, "A", 1, &c.v, NULL, NULL, NULL, err,
                                     sizeof err);
    ASSERT(rc == 0 || rc == -EBADMSG);
  }
  checker_finish(&c);
}

/* A part file's footer (lib/archive.c): 80 bytes, the seal id at 60, its
 * CRC32C (of the bytes before) last. */
#define FOOTER 80
#define FOOTER_SEAL 60
#define FOOTER_CRC (FOOTER - 4)

/* The decompressed index and the decompressed blocks of a part file. */
struct opened {
  uint8_t *file;
  size_t len;
  uint8_t *index;
  size_t index_len;
  uint64_t index_off;
};

static uint32_t rd32(const uint8_t *p) {
  return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void wr64(uint8_t *p, uint64_t v) {
  wr32(p, (uint32_t)v);
  wr32(p + 4, (uint32_t)(v >> 32));
}

static void open_part(const char *path, struct opened *o) {
  o->file = slurp(path, &o->len);
  const uint8_t *f = o->file + o->len - FOOTER;
  o->index_off = rd64(f);
  uint32_t clen = rd32(f + 8);
  o->index_len = rd32(f + 12);
  o->index = malloc(o->index_len);
  ASSERT_EQ(ZSTD_decompress(o->index, o->index_len, o->file + o->index_off, clen), o->index_len);
}

/* A part file made of o's blocks and the (patched) index: CRCs all good. */
static uint8_t *rebuild(const struct opened *o, size_t *len) {
  size_t bound = ZSTD_compressBound(o->index_len);
  uint8_t *out = malloc(o->index_off + bound + FOOTER);
  memcpy(out, o->file, o->index_off);
  size_t clen = ZSTD_compress(out + o->index_off, bound, o->index, o->index_len, 3);
  ASSERT(!ZSTD_isError(clen));
  uint8_t *f = out + o->index_off + clen;
  memcpy(f, o->file + o->len - FOOTER, FOOTER);
  wr64(f, o->index_off);
  wr32(f + 8, (uint32_t)clen);
  wr32(f + 12, (uint32_t)o->index_len);
  wr32(f + 16, tks_crc32c(0, out + o->index_off, clen));
  wr32(f + FOOTER_CRC, tks_crc32c(0, f, FOOTER_CRC));
  *len = o->index_off + clen + FOOTER;
  return out;
}

/* Offset of the first block entry in a decompressed index of MarketEvent. */
static size_t first_block_entry(const struct opened *o, uint32_t *nsym) {
  size_t at = 8 + 4 + 4 + 4 + 4 + 8 + 8 + 8; /* header */
  at += 1;                                   /* mode */
  at += 1 + o->index[at];                    /* schema name */
  unsigned nf = o->index[at];
  at += 1 + 4;
  for (unsigned i = 0; i < nf; i++) at += 1 + o->index[at] + 1 + 1 + 8 + 4 + 4;
  *nsym = rd32(o->index + at);
  at += 4;
  for (uint32_t i = 0; i < *nsym; i++) at += 1 + o->index[at] + 8 + 8 + 8 + 4 + 4;
  return at + 4; /* past the block count */
}

static int check_file(uint8_t *file, size_t len, char *err, size_t errlen) {
  struct checker c;
  checker_init(&c);
  int rc = tks_archive_check_part(file, len, day_of(DAY), 1, &c.v, NULL, NULL, NULL, err, errlen);
  checker_finish(&c);
  return rc;
}

TEST(an_index_with_good_crcs_that_lies_is_refused) {
  char *dir = make_dir();
  small_part(dir, NULL);
  char *path = part_path(dir, 1);
  struct opened o;
  open_part(path, &o);
  char err[256];
  size_t len;
  uint8_t *f = rebuild(&o, &len);
  ASSERT_EQ(check_file(f, len, err, sizeof err), 0); /* the rebuild itself is good */
  free(f);
  uint32_t nsym;
  size_t b0 = first_block_entry(&o, &nsym);
  ASSERT_EQ(nsym, 2);
  struct {
    size_t at;
    int width;
    uint64_t value;
    const char *says;
  } lies[] = {
      {b0 + 4, 4, 70000, "bad block"},              /* an oversized count */
      {b0 + 4, 4, 3, "do not add up"},              /* a count the symbol does not have */
      {b0 + 8, 8, 0, "do not add up"},              /* first ts outside the symbol */
      {b0 + 24, 8, 1u << 30, "bad block"},          /* an offset past the data */
      {b0 + 24, 8, 33, "CRC"},                      /* an offset into another block */
      {b0 + 32, 4, 0xffffffffu, "bad block"},       /* an oversized compressed length */
      {b0 + 36, 4, 64u << 20 | 1, "bad block"},     /* an oversized decompressed length */
      {b0 + 36, 4, 5, "zstd frame does not match"}, /* a decompressed length that lies */
      {b0 + 40, 4, 0, "CRC"},                       /* a CRC that does not match */
      {b0 - 4, 4, 0xfffffff, "do not add up"},      /* an oversized block count */
      {44, 4, 0x7fffffff, "bad symbol count"},      /* an oversized symbol count */
  };
  lies[7].value = rd32(o.index + b0 + 36) - 1; /* one byte short */
  /* The symbol count sits right after the schema: find it. */
  {
    size_t at = 8 + 4 + 4 + 4 + 4 + 8 + 8 + 8 + 1;
    at += 1 + o.index[at];
    unsigned nf = o.index[at];
    at += 1 + 4;
    for (unsigned i = 0; i < nf; i++) at += 1 + o.index[at] + 1 + 1 + 8 + 4 + 4;
    lies[TKS_ARRAY_SIZE(lies) - 1].at = at;
  }
  for (unsigned k = 0; k < TKS_ARRAY_SIZE(lies); k++) {
    uint8_t save[8];
    memcpy(save, o.index + lies[k].at, 8);
    if (lies[k].width == 4)
      wr32(o.index + lies[k].at, (uint32_t)lies[k].value);
    else
      wr64(o.index + lies[k].at, lies[k].value);
    f = rebuild(&o, &len);
    int rc = check_file(f, len, err, sizeof err);
    if (rc != -EBADMSG) TEST_FAIL("lie %u: %d", k, rc);
    if (!strstr(err, lies[k].says)) TEST_FAIL("lie %u: \"%s\" lacks \"%s\"", k, err, lies[k].says);
    /* And through the files. */
    char *p2 = part_path(dir, 1);
    spill(p2, f, len);
    struct reader r;
    reader_open(&r, dir, NULL);
    uint64_t got;
    int ra = tks_archive_range(r.a, &r.v, "A", 1, INT64_MIN, INT64_MAX, 0, any_fn, NULL, &got);
    int rb = tks_archive_range(r.a, &r.v, "B", 1, INT64_MIN, INT64_MAX, 0, any_fn, NULL, &got);
    ASSERT(ra == -EBADMSG || rb == -EBADMSG);
    reader_close(&r);
    free(p2);
    free(f);
    memcpy(o.index + lies[k].at, save, 8);
  }
  free(o.file);
  free(o.index);
  free(path);
  rm_rf(dir);
}

/* A block payload by hand: n slotted MarketEvent ticks, then what follows. */
static size_t block_bytes(uint8_t *b, uint32_t n, uint8_t flags) {
  size_t at = 0;
  uint32_t v = n;
  while (v >= 0x80) b[at++] = (uint8_t)(v | 0x80), v >>= 7;
  b[at++] = (uint8_t)v;
  b[at++] = flags;
  return at;
}

/* An integer column of n zeros (raw, min 0, gcd 1, 0 bits). */
static size_t zeros(uint8_t *b) {
  b[0] = 0, b[1] = 0, b[2] = 1, b[3] = 0;
  return 4;
}

TEST(oversized_counts_in_a_block_are_refused) {
  struct checker c;
  checker_init(&c);
  char err[256];
  uint8_t b[256];
  /* A good one first: 3 ticks, ts 0, price 0 (decimal, k 0), volume 0, flags "". */
  size_t at = block_bytes(b, 3, 0);
  at += zeros(b + at);                           /* ts */
  b[at++] = 1, b[at++] = 0, at += zeros(b + at); /* price */
  at += zeros(b + at);                           /* volume */
  b[at++] = 1, b[at++] = 0;                      /* flags: one string, "" */
  at += zeros(b + at);
  uint64_t ticks;
  ASSERT_EQ(tks_archive_check_block(&c.schema, b, at, 3, "A", 1, &c.v, NULL, NULL, &ticks, err,
                                    sizeof err),
            0);
  ASSERT_EQ(ticks, 3);
  ASSERT_EQ(
      tks_archive_check_block(&c.schema, b, at, 4, "A", 1, &c.v, NULL, NULL, NULL, err, sizeof err),
      -EBADMSG);
  ASSERT_EQ(tks_archive_check_block(&c.schema, b, at + 1, 3, "A", 1, &c.v, NULL, NULL, NULL, err,
                                    sizeof err),
            -EBADMSG);
  ASSERT_CONTAINS(err, "after the last column");
  /* 65537 ticks, and a dictionary of more strings than ticks. */
  size_t n = block_bytes(b, 65537, 0);
  ASSERT_EQ(
      tks_archive_check_block(&c.schema, b, n, 0, "A", 1, &c.v, NULL, NULL, NULL, err, sizeof err),
      -EBADMSG);
  b[at - 6] = 4; /* flags: 4 strings for 3 ticks */
  ASSERT_EQ(
      tks_archive_check_block(&c.schema, b, at, 3, "A", 1, &c.v, NULL, NULL, NULL, err, sizeof err),
      -EBADMSG);
  b[at - 6] = 1;
  /* 65 bits, and a varint of 11 bytes. */
  b[3 + 3] = 65;
  ASSERT_EQ(
      tks_archive_check_block(&c.schema, b, at, 3, "A", 1, &c.v, NULL, NULL, NULL, err, sizeof err),
      -EBADMSG);
  b[3 + 3] = 0;
  uint8_t v11[32] = {0x03, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff,
                     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
  ASSERT_EQ(tks_archive_check_block(&c.schema, v11, 14, 3, "A", 1, &c.v, NULL, NULL, NULL, err,
                                    sizeof err),
            -EBADMSG);
  /* A map of 86 fields, and a string of 65536 bytes. */
  uint8_t m[128];
  size_t k = block_bytes(m, 1, 1);
  m[k++] = 2;                           /* dynamic */
  k += zeros(m + k);                    /* ts */
  m[k++] = 0;                           /* price: no record, no value */
  k += zeros(m + k);                    /* volume */
  m[k++] = 0, k += zeros(m + k);        /* flags: no string */
  m[k++] = 1, m[k++] = 1, m[k++] = 'x'; /* names: "x" */
  m[k++] = 0;                           /* strings: none */
  size_t nf_at = k;
  m[k++] = 1, m[k++] = 0, m[k++] = TKS_V_NIL; /* one field: x = nil */
  ASSERT_EQ(tks_archive_check_block(&c.schema, m, k, 1, "A", 1, &c.v, NULL, NULL, &ticks, err,
                                    sizeof err),
            0);
  m[nf_at] = 86;
  ASSERT_EQ(
      tks_archive_check_block(&c.schema, m, k, 1, "A", 1, &c.v, NULL, NULL, NULL, err, sizeof err),
      -EBADMSG);
  m[nf_at] = 1;
  m[k - 1] = TKS_V_STR;
  m[k++] = 0x80, m[k++] = 0x80, m[k++] = 0x04; /* 65536 */
  ASSERT_EQ(
      tks_archive_check_block(&c.schema, m, k, 1, "A", 1, &c.v, NULL, NULL, NULL, err, sizeof err),
      -EBADMSG);
  /* A duplicate key. */
  k = nf_at;
  m[k++] = 2, m[k++] = 0, m[k++] = TKS_V_NIL, m[k++] = 0, m[k++] = TKS_V_NIL;
  ASSERT_EQ(
      tks_archive_check_block(&c.schema, m, k, 1, "A", 1, &c.v, NULL, NULL, NULL, err, sizeof err),
      -EBADMSG);
  checker_finish(&c);
}

TEST(a_zstd_frame_that_lies_about_its_size_is_refused) {
  char *dir = make_dir();
  small_part(dir, NULL);
  char *path = part_path(dir, 1);
  struct opened o;
  open_part(path, &o);
  uint32_t nsym;
  size_t b0 = first_block_entry(&o, &nsym);
  uint64_t off = rd64(o.index + b0 + 24);
  uint32_t clen = rd32(o.index + b0 + 32), raw_len = rd32(o.index + b0 + 36);
  /* Three frames with good CRCs: one whose content size is one byte short
   * of the index's; the same with the index agreeing (the frame holds more
   * than it says); one that does not say its size. */
  uint8_t *raw = malloc(raw_len);
  ASSERT_EQ(ZSTD_decompress(raw, raw_len, o.file + off, clen), raw_len);
  const char *says[3] = {"zstd frame does not match", "zstd: ", "zstd frame does not match"};
  for (int variant = 0; variant < 3; variant++) {
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, variant == 2 ? 0 : 1);
    uint8_t frame[4096];
    size_t fl = ZSTD_compress2(cc, frame, sizeof frame, raw, raw_len);
    ZSTD_freeCCtx(cc);
    ASSERT(!ZSTD_isError(fl));
    uint32_t claimed = raw_len;
    if (variant < 2) {
      /* Frame header: magic (4), descriptor (1), then, single segment, the
       * content size: 1 byte (code 0) or 2 bytes less 256 (code 1). */
      uint8_t fhd = frame[4];
      ASSERT(fhd & 0x20);
      ASSERT_EQ(fhd & 3, 0);
      claimed = raw_len - 1;
      if (fhd >> 6 == 0) {
        ASSERT(claimed < 256);
        frame[5] = (uint8_t)claimed;
      } else {
        ASSERT_EQ(fhd >> 6, 1);
        frame[5] = (uint8_t)(claimed - 256), frame[6] = (uint8_t)((claimed - 256) >> 8);
      }
      ASSERT_EQ(ZSTD_getFrameContentSize(frame, fl), claimed);
    }
    /* The frame goes at the end of the data (just before the index). */
    struct opened o2 = o;
    o2.file = malloc(o.len + fl);
    memcpy(o2.file, o.file, o.index_off);
    memcpy(o2.file + o.index_off, frame, fl);
    o2.index_off = o.index_off + fl;
    memcpy(o2.file + o2.index_off, o.file + o.index_off, o.len - o.index_off);
    o2.len = o.len + fl;
    o2.index = malloc(o.index_len);
    memcpy(o2.index, o.index, o.index_len);
    wr64(o2.index + b0 + 24, o.index_off);
    wr32(o2.index + b0 + 32, (uint32_t)fl);
    if (variant == 1) wr32(o2.index + b0 + 36, claimed);
    wr32(o2.index + b0 + 40, tks_crc32c(0, frame, fl));
    size_t len;
    uint8_t *f = rebuild(&o2, &len);
    char err[256];
    ASSERT_EQ(check_file(f, len, err, sizeof err), -EBADMSG);
    if (!strstr(err, says[variant])) TEST_FAIL("variant %d: \"%s\"", variant, err);
    free(f);
    free(o2.file);
    free(o2.index);
  }
  free(raw);
  free(o.file);
  free(o.index);
  free(path);
  rm_rf(dir);
}

/* ---- seals ------------------------------------------------------------------------------------ */

/* Seals one part of day DAY + dday: n ticks of sym from ts t0 on, of the
 * given volume, stamped with seal. */
static struct tks_archive_part_info sealed_part(struct world *w, const char *dir, int dday,
                                                uint64_t seal, const char *sym, int64_t t0, int n,
                                                int64_t vol) {
  char err[256];
  struct tks_archive_tables t = {w->symbols, w->strings, w->names};
  struct tks_archive_writer_opts o = {.block_ticks = 16, .seal = seal};
  struct tks_archive_writer *wr = tks_archive_writer_create(dir, day_of(DAY) + dday, &w->schema,
                                                            w->mode, &t, &o, err, sizeof err);
  if (!wr) TEST_FAIL("writer_create: %s", err);
  for (int i = 0; i < n; i++) {
    struct rec r = {.ts = t0 + i, .price = 1.5, .volume = vol, .ticker = intern(w->symbols, sym)};
    ASSERT_EQ(tks_archive_writer_add(wr, &r, NULL), 0);
  }
  struct tks_archive_part_info pi;
  if (tks_archive_writer_seal(wr, &pi, err, sizeof err)) TEST_FAIL("seal: %s", err);
  return pi;
}

/* Day DAY: part 1 of seal 1 (100 ticks of A), part 2 of seal 3 (10 of A,
 * 1 of B); DAY + 1: part 1 of no seal (20 of A); DAY + 2: part 1 of seal 3
 * (5 of C).  pi[4] gets their infos. */
static void four_seals(const char *dir, struct tks_archive_part_info pi[4]) {
  struct world w;
  world_init(&w, NULL, TKS_MODE_SLOTTED);
  int64_t d0 = day0(), d1 = tks_archive_day_start(day_of(DAY) + 1),
          d2 = tks_archive_day_start(day_of(DAY) + 2);
  pi[0] = sealed_part(&w, dir, 0, 1, "A", d0, 100, 1);
  struct tks_archive_tables t = {w.symbols, w.strings, w.names};
  struct tks_archive_writer_opts o = {.seal = 3};
  char err[256];
  struct tks_archive_writer *wr = tks_archive_writer_create(dir, day_of(DAY), &w.schema, w.mode, &t,
                                                            &o, err, sizeof err);
  ASSERT(wr);
  for (int i = 0; i < 10; i++) add(wr, &w, "A", d0 + 50 + i, 3);
  add(wr, &w, "B", d0 + 7, 3);
  ASSERT_EQ(tks_archive_writer_seal(wr, &pi[1], err, sizeof err), 0);
  pi[2] = sealed_part(&w, dir, 1, 0, "A", d1 + 1000, 20, 0);
  pi[3] = sealed_part(&w, dir, 2, 3, "C", d2, 5, 3);
  world_finish(&w);
}

struct part_seen {
  struct tks_archive_part_info p[8];
  bool bad[8];
  unsigned n, stop_at; /* stop_at: return 1 at the stop_at-th part (0: never) */
};

static int seen_part(void *ctx, const struct tks_archive_part_info *p, bool bad) {
  struct part_seen *z = ctx;
  if (z->n < 8) {
    z->p[z->n] = *p;
    z->bad[z->n] = bad;
  }
  z->n++;
  return z->stop_at && z->n == z->stop_at;
}

TEST(seal_ids_go_from_the_writer_to_the_part_info_and_the_part_list) {
  char *dir = make_dir();
  struct tks_archive_part_info pi[4];
  four_seals(dir, pi);
  ASSERT_EQ(pi[0].seal, 1);
  ASSERT_EQ(pi[0].part, 1);
  ASSERT_EQ(pi[1].seal, 3);
  ASSERT_EQ(pi[1].part, 2);
  ASSERT_EQ(pi[1].ticks, 11);
  ASSERT_EQ(pi[2].seal, 0);
  ASSERT_EQ(pi[3].seal, 3);
  struct reader r;
  reader_open(&r, dir, NULL);
  struct part_seen z = {0};
  ASSERT_EQ(tks_archive_parts(r.a, seen_part, &z), 4);
  ASSERT_EQ(z.n, 4);
  for (unsigned i = 0; i < 4; i++) {
    ASSERT(!z.bad[i]);
    ASSERT_EQ(z.p[i].day, pi[i].day);
    ASSERT_EQ(z.p[i].part, pi[i].part);
    ASSERT_EQ(z.p[i].seal, pi[i].seal);
    ASSERT_EQ(z.p[i].ticks, pi[i].ticks);
    ASSERT_EQ(z.p[i].bytes, pi[i].bytes);
    ASSERT_EQ(z.p[i].symbols, pi[i].symbols);
    ASSERT_EQ(z.p[i].blocks, pi[i].blocks);
    ASSERT_EQ(z.p[i].first_ts, pi[i].first_ts);
    ASSERT_EQ(z.p[i].last_ts, pi[i].last_ts);
  }
  ASSERT_EQ(z.p[1].symbols, 2);
  ASSERT_EQ(tks_archive_index_loads(r.a), 0); /* from the footers */
  ASSERT_EQ(tks_archive_max_seal(r.a), 3);
  memset(&z, 0, sizeof z);
  z.stop_at = 2;
  ASSERT_EQ(tks_archive_parts(r.a, seen_part, &z), 2);
  reader_close(&r);
  /* The largest id there is, and an empty archive. */
  char *dir2 = make_dir();
  struct world w;
  world_init(&w, NULL, TKS_MODE_SLOTTED);
  reader_open(&r, dir2, NULL);
  ASSERT_EQ(tks_archive_max_seal(r.a), 0);
  ASSERT_EQ(tks_archive_parts(r.a, seen_part, &z), 0);
  reader_close(&r);
  sealed_part(&w, dir2, 0, UINT64_MAX, "A", day0(), 3, 0);
  reader_open(&r, dir2, NULL);
  ASSERT_EQ(tks_archive_max_seal(r.a), UINT64_MAX);
  reader_close(&r);
  world_finish(&w);
  rm_rf(dir2);
  rm_rf(dir);
}

static uint64_t count_range(struct reader *r, const char *sym) {
  uint64_t got;
  int rc = tks_archive_range(r->a, &r->v, sym, strlen(sym), INT64_MIN, INT64_MAX, 0, any_fn, NULL,
                             &got);
  if (rc) TEST_FAIL("range %s: %d %s", sym, rc, tks_archive_error(r->a));
  return got;
}

static uint64_t count_last(struct reader *r, const char *sym, uint64_t n) {
  uint64_t got;
  int rc = tks_archive_last(r->a, &r->v, sym, strlen(sym), n, any_fn, NULL, &got);
  if (rc) TEST_FAIL("last %s: %d %s", sym, rc, tks_archive_error(r->a));
  return got;
}

TEST(the_seal_limit_hides_parts_from_every_query_until_it_is_raised) {
  char *dir = make_dir();
  struct tks_archive_part_info pi[4];
  four_seals(dir, pi);
  struct reader r;
  reader_open(&r, dir, NULL);
  struct tks_archive_totals tot;
  tks_archive_totals(r.a, &tot);
  ASSERT_EQ(tot.parts, 4); /* nothing hidden by default */
  ASSERT_EQ(tot.ticks, 136);
  tks_archive_set_seal_limit(r.a, 2);
  ASSERT_EQ(count_range(&r, "A"), 120);
  ASSERT_EQ(count_range(&r, "B"), 0);
  ASSERT_EQ(count_range(&r, "C"), 0);
  ASSERT_EQ(count_last(&r, "A", 1000), 120);
  ASSERT_EQ(count_last(&r, "C", 10), 0);
  /* The newest 115 of A: the next day's 20 and part 1's ts 5..99, none
   * of part 2's (volume 3). */
  static struct collect c;
  memset(&c, 0, sizeof c);
  ASSERT_EQ(tks_archive_last(r.a, &r.v, "A", 1, 115, collect_fn, &c, NULL), 0);
  ASSERT_EQ(c.n, 115);
  ASSERT_EQ(c.ts[0], day0() + 5);
  for (unsigned i = 0; i < c.n; i++) ASSERT(c.vol[i] != 3);
  struct tks_archive_cursor *cur = tks_archive_cursor_create(r.a, &r.v, "A", 1, day0() + 50,
                                                             day0() + 59);
  ASSERT(cur);
  ASSERT_EQ(tks_archive_cursor_skip(cur, 1000), 10); /* part 1's, not also part 2's */
  tks_archive_cursor_destroy(cur);
  struct seen z = {0};
  ASSERT_EQ(tks_archive_symbols(r.a, INT32_MIN, INT32_MAX, seen_sym, &z), 0);
  ASSERT_EQ(z.n, 1);
  ASSERT_STR_EQ(z.names[0], "A");
  ASSERT_EQ(z.count[0], 120);
  struct tks_archive_symbol_info si;
  ASSERT_EQ(tks_archive_symbol(r.a, "B", 1, &si), -ENOENT);
  memset(&z, 0, sizeof z);
  ASSERT_EQ(tks_archive_days(r.a, seen_day, &z), 2); /* DAY + 2 holds only seal 3 */
  ASSERT_EQ(z.count[0], 100);
  ASSERT_EQ(z.last[0], pi[0].bytes);
  ASSERT_EQ(z.count[1], 20);
  tks_archive_totals(r.a, &tot);
  ASSERT_EQ(tot.days, 2);
  ASSERT_EQ(tot.parts, 2);
  ASSERT_EQ(tot.ticks, 120);
  ASSERT_EQ(tot.bytes, pi[0].bytes + pi[2].bytes);
  uint64_t ticks;
  ASSERT_EQ(tks_archive_verify(r.a, INT32_MIN, &ticks), 0);
  ASSERT_EQ(ticks, 120);
  ASSERT_EQ(tks_archive_index_loads(r.a), 2); /* the hidden parts were never read */
  /* Still listed, and still counted for the next id. */
  struct part_seen ps = {0};
  ASSERT_EQ(tks_archive_parts(r.a, seen_part, &ps), 4);
  ASSERT_EQ(tks_archive_max_seal(r.a), 3);
  /* Kept across a rescan; 0 leaves only the unstamped part. */
  ASSERT_EQ(tks_archive_rescan(r.a), 0);
  ASSERT_EQ(count_range(&r, "A"), 120);
  tks_archive_set_seal_limit(r.a, 0);
  ASSERT_EQ(count_range(&r, "A"), 20);
  ASSERT_EQ(tks_archive_days(r.a, seen_day, &z), 1);
  /* Raised: everything is back. */
  tks_archive_set_seal_limit(r.a, UINT64_MAX);
  ASSERT_EQ(count_range(&r, "A"), 130);
  ASSERT_EQ(count_range(&r, "B"), 1);
  ASSERT_EQ(count_last(&r, "C", 10), 5);
  ASSERT_EQ(tks_archive_symbol(r.a, "B", 1, &si), 0);
  tks_archive_totals(r.a, &tot);
  ASSERT_EQ(tot.days, 3);
  ASSERT_EQ(tot.parts, 4);
  ASSERT_EQ(tot.ticks, 136);
  ASSERT_EQ(tks_archive_verify(r.a, INT32_MIN, &ticks), 0);
  ASSERT_EQ(ticks, 136);
  reader_close(&r);
  rm_rf(dir);
}

/* The names in dir, sorted, each followed by a space. */
static char *listing(const char *dir) {
  struct dirent **e;
  int n = scandir(dir, &e, NULL, alphasort);
  struct tks_buf b = {0};
  tks_buf_puts(&b, "");
  for (int i = 0; i < n; i++) {
    if (strcmp(e[i]->d_name, ".") && strcmp(e[i]->d_name, ".."))
      tks_buf_printf(&b, "%s ", e[i]->d_name);
    free(e[i]);
  }
  if (n >= 0) free(e);
  return b.data;
}

static void assert_listing(const char *dir, const char *sub, const char *want) {
  char path[512];
  snprintf(path, sizeof path, "%s%s%s", dir, sub ? "/" : "", sub ? sub : "");
  char *got = listing(path);
  ASSERT_STR_EQ(got, want);
  free(got);
}

TEST(removing_seals_above_deletes_their_files_and_a_day_they_empty) {
  char *dir = make_dir();
  struct tks_archive_part_info pi[4];
  four_seals(dir, pi);
  assert_listing(dir, NULL, "2026-11-25 2026-11-26 2026-11-27 ");
  assert_listing(dir, "2026-11-25", "part-000001.tka part-000002.tka ");
  struct reader r;
  reader_open(&r, dir, NULL);
  ASSERT_EQ(count_range(&r, "A"), 130); /* part 2's index is loaded, and goes */
  struct tks_archive_freed f;
  ASSERT_EQ(tks_archive_remove_seals_above(r.a, 3, &f), 0);
  ASSERT_EQ(f.parts, 0);
  ASSERT_EQ(f.days, 0);
  ASSERT_EQ(tks_archive_remove_seals_above(r.a, 1, &f), 0);
  ASSERT_EQ(f.parts, 2);
  ASSERT_EQ(f.days, 1);
  ASSERT_EQ(f.ticks, 16);
  ASSERT_EQ(f.bytes, pi[1].bytes + pi[3].bytes);
  assert_listing(dir, NULL, "2026-11-25 2026-11-26 ");
  assert_listing(dir, "2026-11-25", "part-000001.tka ");
  assert_listing(dir, "2026-11-26", "part-000001.tka ");
  /* The handle's lists follow. */
  struct part_seen z = {0};
  ASSERT_EQ(tks_archive_parts(r.a, seen_part, &z), 2);
  ASSERT_EQ(z.p[0].seal, 1);
  ASSERT_EQ(z.p[1].seal, 0);
  ASSERT_EQ(tks_archive_max_seal(r.a), 1);
  struct tks_archive_totals tot;
  tks_archive_totals(r.a, &tot);
  ASSERT_EQ(tot.days, 2);
  ASSERT_EQ(tot.parts, 2);
  ASSERT_EQ(count_range(&r, "A"), 120);
  ASSERT_EQ(count_range(&r, "B"), 0);
  ASSERT_EQ(count_range(&r, "C"), 0);
  ASSERT_EQ(tks_archive_remove_seals_above(r.a, 1, NULL), 0); /* nothing left to do */
  /* 0 takes the rest of the stamped parts; the unstamped one stays. */
  ASSERT_EQ(tks_archive_remove_seals_above(r.a, 0, &f), 0);
  ASSERT_EQ(f.parts, 1);
  ASSERT_EQ(f.days, 1);
  ASSERT_EQ(f.ticks, 100);
  assert_listing(dir, NULL, "2026-11-26 ");
  reader_close(&r);
  /* Reopened: the same. */
  reader_open(&r, dir, NULL);
  tks_archive_totals(r.a, &tot);
  ASSERT_EQ(tot.days, 1);
  ASSERT_EQ(tot.parts, 1);
  ASSERT_EQ(tot.ticks, 20);
  ASSERT_EQ(tks_archive_max_seal(r.a), 0);
  reader_close(&r);
  rm_rf(dir);
}

TEST(a_flipped_bit_in_the_seal_id_makes_the_part_bad) {
  char *dir = make_dir();
  struct world w;
  world_init(&w, NULL, TKS_MODE_SLOTTED);
  uint64_t id = 0x0102030405060708ull;
  sealed_part(&w, dir, 0, id, "A", day0(), 50, 0);
  world_finish(&w);
  char *path = part_path(dir, 1);
  size_t len;
  uint8_t *file = slurp(path, &len);
  uint8_t *seal = file + len - FOOTER + FOOTER_SEAL;
  ASSERT_EQ(rd64(seal), id); /* where the footer keeps it */
  struct checker c;
  checker_init(&c);
  char err[256];
  for (int bit = 0; bit < 64; bit++) {
    seal[bit / 8] ^= (uint8_t)(1 << bit % 8);
    ASSERT_EQ(
        tks_archive_check_part(file, len, day_of(DAY), 1, &c.v, NULL, NULL, NULL, err, sizeof err),
        -EBADMSG);
    ASSERT_CONTAINS(err, "bad footer");
    seal[bit / 8] ^= (uint8_t)(1 << bit % 8);
  }
  ASSERT_EQ(
      tks_archive_check_part(file, len, day_of(DAY), 1, &c.v, NULL, NULL, NULL, err, sizeof err),
      0);
  checker_finish(&c);
  seal[7] ^= 0x80; /* id 0x81...: would be hidden by any limit below it */
  spill(path, file, len);
  struct reader r;
  reader_open(&r, dir, NULL);
  struct part_seen z = {0};
  ASSERT_EQ(tks_archive_parts(r.a, seen_part, &z), 1);
  ASSERT(z.bad[0]);
  ASSERT_EQ(z.p[0].seal, 0);
  ASSERT_EQ(z.p[0].ticks, 0);
  ASSERT_EQ(z.p[0].bytes, len);
  ASSERT_EQ(z.p[0].first_ts, INT64_MAX);
  ASSERT_EQ(z.p[0].last_ts, INT64_MIN);
  ASSERT_EQ(tks_archive_max_seal(r.a), 0);
  tks_archive_set_seal_limit(r.a, id);
  struct tks_archive_totals tot;
  tks_archive_totals(r.a, &tot);
  ASSERT_EQ(tot.bad_parts, 1);
  uint64_t got;
  ASSERT_EQ(tks_archive_range(r.a, &r.v, "A", 1, INT64_MIN, INT64_MAX, 0, any_fn, NULL, &got),
            -EBADMSG);
  ASSERT_CONTAINS(tks_archive_error(r.a), "bad footer");
  /* Its seal unknown, it is not taken for an uncommitted one. */
  struct tks_archive_freed f;
  ASSERT_EQ(tks_archive_remove_seals_above(r.a, 0, &f), 0);
  ASSERT_EQ(f.parts, 0);
  ASSERT_EQ(access(path, F_OK), 0);
  reader_close(&r);
  free(file);
  free(path);
  rm_rf(dir);
}

TEST_MAIN()
