/*
 * Unit tests of lib/checkpoint.c: a store written and loaded back is the
 * same store (all three representations, overflow maps and dynamic objects,
 * the three tables id for id); a load under another schema or mode equals
 * feeding the same ticks under it; a change that cannot be converted is
 * refused naming the field with nothing loaded; and a file cut, bit-flipped,
 * oversized or random is refused with a message naming the file and an
 * offset, never trusted, never a crash.  Ticks go in through the real
 * decoder and tks_tick_store, as the daemon stores them.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "decode.h"
#include "encode.h"
#include "harness.h"
#include "journal.h"
#include "slab.h"
#include "store.h"
#include "symtab.h"
#include "test.h"
#include "tick.h"
#include "util.h"

/* ---- a store as the daemon builds one ---- */

struct env {
  struct tks_schema schema;
  enum tks_mode mode;
  struct tks_slab *slab;
  struct tks_symtab *symbols, *strings, *names;
  struct tks_store *store;
  struct tks_usage usage;
  struct tks_decoder dec;
  struct tks_tick_sink sink;
};

static struct env *env_new(const struct tks_schema *schema, enum tks_mode mode) {
  struct env *e = calloc(1, sizeof *e);
  ASSERT(e);
  e->schema = *schema;
  e->mode = mode;
  e->slab = tks_slab_create(1 << 20, 1.25, 32);
  e->symbols = tks_symtab_create(100000);
  e->strings = tks_symtab_create(100000);
  e->names = tks_symtab_create(4096);
  ASSERT(e->slab && e->symbols && e->strings && e->names);
  e->store = tks_store_create(&e->schema, e->slab);
  ASSERT(e->store);
  tks_usage_init(&e->usage);
  e->dec = (struct tks_decoder){.schema = &e->schema,
                                .symbols = e->symbols,
                                .strings = e->strings,
                                .max_message_bytes = 65536,
                                .mode = mode,
                                .names = e->names,
                                .max_object_bytes = 1 << 20};
  e->sink = (struct tks_tick_sink){.store = e->store, .usage = &e->usage, .mode = mode};
  return e;
}

static void env_free(struct env *e) {
  if (!e) return;
  tks_store_destroy(e->store);
  tks_symtab_destroy(e->symbols);
  tks_symtab_destroy(e->strings);
  tks_symtab_destroy(e->names);
  tks_slab_destroy(e->slab);
  free(e);
}

static struct tks_checkpoint_target target_of(struct env *e) {
  return (struct tks_checkpoint_target){&e->schema, e->mode,  e->store, e->symbols,
                                        e->strings, e->names, &e->usage};
}

/* Decodes and stores every message of buf; returns how many were stored. */
static uint64_t feed(struct env *e, const struct tks_buf *buf) {
  size_t off = 0;
  uint64_t stored = 0;
  _Alignas(8) char rec[TKS_RECORD_MAX];
  static struct tks_dyn_tick dyn;
  while (off < buf->len) {
    struct tks_decode_result res = {.dyn = &dyn};
    enum tks_decode_status st = tks_decode(&e->dec, (const uint8_t *)buf->data + off,
                                           buf->len - off, 1, rec, &res);
    ASSERT(st != TKS_DECODE_NEED_MORE && st != TKS_DECODE_ERROR);
    off += res.consumed;
    if (st == TKS_DECODE_REJECT) continue;
    ASSERT_EQ(tks_tick_store(&e->sink, st, rec, &dyn), 0);
    stored++;
  }
  return stored;
}

/* ---- ticks ---- */

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* What the ticks carry beyond MarketEvent's fields. */
enum {
  WITH_EXCHANGE = 1,
  WITH_VENUE = 2,
  WITH_FLAGS = 4,
  ALWAYS_EXCHANGE = 8,
  LATE = 16,
  TIES = 32
};

/* n ticks over nsym symbols: ts unique, some late; flags on some (never
 * ""), `exchange` (a string) and `venue` (an int) on some by `what`. */
static void make_ticks(struct tks_buf *b, unsigned n, unsigned nsym, unsigned what) {
  static const char *const ex[] = {"XNAS", "XNYS", "BATS", "IEXG"};
  rng = 88172645463325252ull;
  for (unsigned i = 0; i < n; i++) {
    char ticker[16];
    unsigned s = (unsigned)(next_rand() % nsym);
    snprintf(ticker, sizeof ticker, "S%02u", s);
    int64_t ts = 1700000000000000000 + (int64_t)(what & TIES ? i / 8 : i) * 1000;
    if ((what & LATE) && i > 100 && next_rand() % 10 == 0) ts -= 50 * 1000 + 500; /* late, unique */
    struct tks_kv kv[8];
    unsigned k = 0;
    kv[k++] = (struct tks_kv){"ts", {.type = TKS_V_INT, .v.i = ts}};
    kv[k++] = (struct tks_kv){"ticker",
                              {.type = TKS_V_STR, .v.s = {ticker, (uint32_t)strlen(ticker)}}};
    kv[k++] = (struct tks_kv){"price",
                              {.type = TKS_V_F64, .v.f = 100 + (double)(next_rand() % 1000) / 8}};
    kv[k++] = (struct tks_kv){"volume", {.type = TKS_V_INT, .v.i = (int64_t)(next_rand() % 5000)}};
    if ((what & WITH_FLAGS) && next_rand() % 2)
      kv[k++] = (struct tks_kv){"flags", {.type = TKS_V_STR, .v.s = {"R", 1}}};
    if ((what & ALWAYS_EXCHANGE) || ((what & WITH_EXCHANGE) && next_rand() % 3 != 0)) {
      const char *x = ex[next_rand() % 4];
      kv[k++] = (struct tks_kv){"exchange", {.type = TKS_V_STR, .v.s = {x, 4}}};
    }
    if ((what & WITH_VENUE) && next_rand() % 4 == 0)
      kv[k++] = (struct tks_kv){"venue", {.type = TKS_V_INT, .v.i = (int64_t)(next_rand() % 90)}};
    ASSERT_EQ(tks_encode_map(b, kv, k), 0);
  }
}

/* MarketEvent, plus (when not NULL) a field `extra` of type t. */
static void schema_with(struct tks_schema *s, const char *extra, enum tks_type t, bool required) {
  tks_schema_default(s);
  if (extra) {
    struct tks_field *f = &s->fields[s->nfields++];
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", extra);
    f->type = t;
    f->required = required;
  }
  char err[128];
  ASSERT_EQ(tks_schema_layout(s, err, sizeof err), 0);
}

/* MarketEvent without the field `drop`. */
static void schema_without(struct tks_schema *s, const char *drop) {
  tks_schema_default(s);
  for (unsigned i = 0; i < s->nfields; i++)
    if (strcmp(s->fields[i].name, drop) == 0) {
      memmove(&s->fields[i], &s->fields[i + 1], (s->nfields - i - 1) * sizeof s->fields[0]);
      s->nfields--;
      break;
    }
  char err[128];
  ASSERT_EQ(tks_schema_layout(s, err, sizeof err), 0);
}

/* ---- comparing stores: every tick, field by field, by name ---- */

struct dump {
  const struct env *e;
  struct tks_buf out;
};

static void put_value(struct dump *d, const struct tks_value *v) {
  struct tks_buf *o = &d->out;
  size_t len = 0;
  const char *s;
  switch (v->type) {
  case TKS_V_NIL: tks_buf_puts(o, "n"); break;
  case TKS_V_BOOL: tks_buf_printf(o, "b%d", v->v.b); break;
  case TKS_V_INT: tks_buf_printf(o, "i%lld", (long long)v->v.i); break;
  case TKS_V_UINT: tks_buf_printf(o, "u%llu", (unsigned long long)v->v.u); break;
  case TKS_V_F64: tks_buf_printf(o, "f%.17g", v->v.f); break;
  case TKS_V_STR: tks_buf_puts(o, "s"), tks_buf_append(o, v->v.s.p, v->v.s.len); break;
  case TKS_V_SYM:
  case TKS_V_ISTR:
    s = tks_symtab_name(v->type == TKS_V_SYM ? d->e->symbols : d->e->strings, v->v.id, &len);
    ASSERT(s != NULL);
    tks_buf_puts(o, v->type == TKS_V_SYM ? "S" : "I");
    tks_buf_append(o, s, len);
    break;
  }
}

/* One tick as "<R|M|D> name=value ..." with the names sorted. */
static int dump_tick(void *ctx, const void *record, const struct tks_dynobj *obj) {
  struct dump *d = ctx;
  const struct tks_schema *s = &d->e->schema;
  const char *names[TKS_SCHEMA_MAX_FIELDS + TKS_DYNOBJ_MAX_FIELDS];
  struct tks_value vals[TKS_SCHEMA_MAX_FIELDS + TKS_DYNOBJ_MAX_FIELDS];
  unsigned n = 0;
  for (unsigned i = 0; record && i < s->nfields; i++) {
    names[n] = s->fields[i].name;
    vals[n++] = tks_field_value(&s->fields[i], record);
  }
  if (obj) {
    const struct tks_dyn_slot *e = tks_dynobj_entries(obj);
    for (unsigned i = 0; i < obj->count; i++) {
      names[n] = tks_symtab_name(d->e->names, e[i].key, NULL);
      ASSERT(names[n] != NULL);
      vals[n++] = tks_dynobj_value(obj, &e[i]);
    }
  }
  for (unsigned i = 1; i < n; i++) /* insertion sort by name */
    for (unsigned j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
      const char *tn = names[j];
      names[j] = names[j - 1], names[j - 1] = tn;
      struct tks_value tv = vals[j];
      vals[j] = vals[j - 1], vals[j - 1] = tv;
    }
  tks_buf_puts(&d->out, !record ? "D" : obj ? "M" : "R");
  for (unsigned i = 0; i < n; i++) {
    tks_buf_printf(&d->out, " %s=", names[i]);
    put_value(d, &vals[i]);
  }
  tks_buf_putc(&d->out, '\n');
  return 0;
}

static const struct tks_symtab *sort_table;
static int by_name(const void *a, const void *b) {
  return strcmp(tks_symtab_name(sort_table, *(const uint32_t *)a, NULL),
                tks_symtab_name(sort_table, *(const uint32_t *)b, NULL));
}

/* Every tick of every symbol, symbols by name (ids differ when a
 * conversion interns more symbols than replay did, in another order). */
static char *dump_store(const struct env *e) {
  struct dump d = {.e = e};
  tks_buf_init(&d.out);
  uint32_t n = tks_symtab_count(e->symbols);
  uint32_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
  ASSERT(ids);
  for (uint32_t id = 0; id <= n; id++) ids[id] = id;
  sort_table = e->symbols;
  qsort(ids, (size_t)n + 1, sizeof *ids, by_name);
  for (uint32_t i = 0; i <= n; i++) {
    struct tks_series_info info;
    if (tks_store_series(e->store, ids[i], &info) != 0) continue; /* a symbol with no ticks */
    tks_buf_printf(&d.out, "# %s\n", tks_symtab_name(e->symbols, ids[i], NULL));
    tks_store_range(e->store, ids[i], INT64_MIN, INT64_MAX, 0, dump_tick, &d);
  }
  free(ids);
  tks_buf_putc(&d.out, 0);
  return d.out.data;
}

static void assert_same_ticks(const struct env *got, const struct env *want) {
  ASSERT_U64_EQ(tks_store_ticks(got->store), tks_store_ticks(want->store));
  ASSERT_EQ(tks_store_series_count(got->store), tks_store_series_count(want->store));
  struct tks_store_repr a, b;
  tks_store_repr(got->store, &a);
  tks_store_repr(want->store, &b);
  ASSERT_U64_EQ(a.slotted_ticks, b.slotted_ticks);
  ASSERT_U64_EQ(a.overflow_ticks, b.overflow_ticks);
  ASSERT_U64_EQ(a.dynamic_ticks, b.dynamic_ticks);
  char *x = dump_store(got), *y = dump_store(want);
  if (strcmp(x, y) != 0) {
    size_t i = 0;
    while (x[i] == y[i]) i++;
    size_t from = i > 200 ? i - 200 : 0;
    TEST_FAIL("stores differ at byte %zu:\n got: ...%.300s\nwant: ...%.300s", i, x + from,
              y + from);
  }
  free(x);
  free(y);
}

/* The undeclared fields' figures, name by name (the advice reads them). */
static void assert_same_usage(const struct env *got, const struct env *want) {
  ASSERT_EQ(got->usage.count, want->usage.count);
  ASSERT_U64_EQ(got->usage.overflow, want->usage.overflow);
  for (unsigned i = 0; i < want->usage.count; i++) {
    const struct tks_usage_field *w = &want->usage.fields[i];
    const struct tks_usage_field *g = tks_usage_find(&got->usage, w->name);
    if (!g) TEST_FAIL("usage: no %s", w->name);
    ASSERT_U64_EQ(g->ticks, w->ticks);
    ASSERT_U64_EQ(g->kept, w->kept);
    ASSERT_U64_EQ(g->string_bytes, w->string_bytes);
    ASSERT_U64_EQ(g->cost_bytes, w->cost_bytes);
    ASSERT_EQ(g->types, w->types);
  }
}

static void assert_same_table(const struct tks_symtab *a, const struct tks_symtab *b) {
  ASSERT_EQ(tks_symtab_count(a), tks_symtab_count(b));
  for (uint32_t id = 1; id <= tks_symtab_count(a); id++)
    ASSERT_STR_EQ(tks_symtab_name(a, id, NULL), tks_symtab_name(b, id, NULL));
}

/* ---- files in memory ---- */

struct image {
  uint8_t *p;
  size_t n;
};

static int memfd_of(const void *p, size_t n) {
  int fd = memfd_create("ckpt", MFD_CLOEXEC);
  ASSERT(fd >= 0);
  ASSERT_EQ(write(fd, p, n), (ssize_t)n);
  return fd;
}

static struct image write_image(const struct env *e, uint64_t next_segment) {
  int fd = memfd_create("ckpt", MFD_CLOEXEC);
  ASSERT(fd >= 0);
  struct tks_checkpoint_src src = {&e->schema, e->mode,  e->store,     e->symbols,
                                   e->strings, e->names, next_segment, 42};
  struct tks_checkpoint_info info;
  ASSERT_EQ(tks_checkpoint_write(fd, &src, &info), 0);
  struct stat sb;
  ASSERT_EQ(fstat(fd, &sb), 0);
  ASSERT_U64_EQ(info.bytes, (uint64_t)sb.st_size);
  ASSERT_U64_EQ(info.ticks, tks_store_ticks(e->store));
  struct image im = {malloc((size_t)sb.st_size), (size_t)sb.st_size};
  ASSERT(im.p);
  ASSERT_EQ(pread(fd, im.p, im.n, 0), (ssize_t)im.n);
  close(fd);
  return im;
}

/* Loads bytes into e (fresh) in steps of budget.  Returns 0 or the error,
 * with the message in err. */
static int load_bytes(struct env *e, const void *p, size_t n, uint64_t budget, char *err,
                      size_t errlen) {
  struct tks_checkpoint_target t = target_of(e);
  struct tks_checkpoint_load *l = tks_checkpoint_open_fd(memfd_of(p, n), "test.tkc", &t, err,
                                                         errlen);
  if (!l) return -1;
  int r;
  uint64_t last_done = 0, done, total;
  while ((r = tks_checkpoint_next(l, budget, err, errlen)) == 1) {
    tks_checkpoint_progress(l, &done, &total);
    ASSERT(done >= last_done && done <= total);
    last_done = done;
  }
  if (r == 0) {
    tks_checkpoint_progress(l, &done, &total);
    ASSERT_U64_EQ(done, total);
  }
  tks_checkpoint_close(l);
  return r;
}

/* A bad image: refused with a message naming the file and an offset. */
static void assert_refused(const struct tks_schema *s, enum tks_mode mode, const void *p, size_t n,
                           const char *what) {
  struct env *e = env_new(s, mode);
  char err[1200] = "";
  int r = load_bytes(e, p, n, 1 << 20, err, sizeof err);
  if (r == 0) TEST_FAIL("%s: loaded (%zu bytes)", what, n);
  ASSERT_CONTAINS(err, "test.tkc");
  ASSERT_CONTAINS(err, "offset");
  env_free(e);
}

/* The offsets of the chunks of an image. */
static size_t chunk_offsets(const struct image *im, size_t *offs, size_t cap) {
  size_t n = 0;
  for (size_t off = 16; off + 12 <= im->n && n < cap;) {
    offs[n++] = off;
    uint32_t len;
    memcpy(&len, im->p + off + 4, 4);
    off += 12 + len;
  }
  return n;
}

/* Recomputes the CRC of the chunk at off (after a deliberate change). */
static void fix_crc(uint8_t *p, size_t off) {
  uint32_t len, crc;
  memcpy(&len, p + off + 4, 4);
  crc = tks_crc32c(tks_crc32c(0, p + off, 8), p + off + 12, len);
  memcpy(p + off + 8, &crc, 4);
}

/* The common source: fallback ticks, some with `exchange` and `venue`, a
 * few late, 16 symbols, plus slotted ones. */
static struct env *fallback_store(unsigned n) {
  struct tks_schema s;
  schema_with(&s, NULL, 0, false);
  struct env *e = env_new(&s, TKS_MODE_FALLBACK);
  struct tks_buf b;
  tks_buf_init(&b);
  make_ticks(&b, n, 16, WITH_EXCHANGE | WITH_VENUE | WITH_FLAGS | LATE);
  ASSERT_U64_EQ(feed(e, &b), n);
  tks_buf_finish(&b);
  struct tks_store_repr r;
  tks_store_repr(e->store, &r);
  ASSERT(r.slotted_ticks > 0 && r.overflow_ticks > 0);
  return e;
}

static struct env *dynamic_store(unsigned n) {
  struct tks_schema s;
  schema_with(&s, NULL, 0, false);
  struct env *e = env_new(&s, TKS_MODE_DYNAMIC);
  struct tks_buf b;
  tks_buf_init(&b);
  make_ticks(&b, n, 16, WITH_EXCHANGE | WITH_VENUE | WITH_FLAGS | LATE);
  ASSERT_U64_EQ(feed(e, &b), n);
  tks_buf_finish(&b);
  return e;
}

/* ---- round trips ---- */

static void round_trip(struct env *a) {
  struct image im = write_image(a, 7);
  struct env *b = env_new(&a->schema, a->mode);
  char err[1200] = "";
  if (load_bytes(b, im.p, im.n, 1 << 20, err, sizeof err) != 0) TEST_FAIL("load: %s", err);
  assert_same_table(b->symbols, a->symbols);
  assert_same_table(b->strings, a->strings);
  assert_same_table(b->names, a->names);
  assert_same_ticks(b, a);
  assert_same_usage(b, a);
  struct tks_store_repr x, y;
  tks_store_repr(a->store, &x);
  tks_store_repr(b->store, &y);
  ASSERT_U64_EQ(y.overflow_map_bytes, x.overflow_map_bytes);
  ASSERT_U64_EQ(y.dynamic_object_bytes, x.dynamic_object_bytes);
  ASSERT_U64_EQ(y.dynamic_object_requested, x.dynamic_object_requested);
  /* Loaded in order: no split blocks, so never more block memory. */
  ASSERT(tks_store_block_bytes(b->store) <= tks_store_block_bytes(a->store));
  env_free(b);
  free(im.p);
}

TEST(slotted_store_round_trips_tick_for_tick_with_identical_tables) {
  struct tks_schema s;
  schema_with(&s, NULL, 0, false);
  struct env *a = env_new(&s, TKS_MODE_SLOTTED);
  struct tks_buf b;
  tks_buf_init(&b);
  make_ticks(&b, 20000, 50, WITH_FLAGS | LATE);
  ASSERT_U64_EQ(feed(a, &b), 20000);
  round_trip(a);
  tks_buf_finish(&b);
  env_free(a);
}

TEST(fallback_store_round_trips_with_its_overflow_maps) {
  struct env *a = fallback_store(20000);
  round_trip(a);
  env_free(a);
}

/* Equal ts of one symbol, some slotted, some with an overflow map: they
 * come back in arrival order, before and after the round trip. */
TEST(fallback_ticks_with_equal_ts_round_trip_in_arrival_order) {
  struct tks_schema s;
  schema_with(&s, NULL, 0, false);
  struct env *a = env_new(&s, TKS_MODE_FALLBACK);
  struct tks_buf b;
  tks_buf_init(&b);
  make_ticks(&b, 6000, 3, WITH_EXCHANGE | WITH_FLAGS | TIES);
  ASSERT_U64_EQ(feed(a, &b), 6000);
  struct tks_store_repr r;
  tks_store_repr(a->store, &r);
  ASSERT(r.slotted_ticks > 0 && r.overflow_ticks > 0);
  round_trip(a);
  tks_buf_finish(&b);
  env_free(a);
}

TEST(dynamic_store_round_trips_with_its_objects) {
  struct env *a = dynamic_store(20000);
  round_trip(a);
  env_free(a);
}

TEST(empty_store_round_trips) {
  struct tks_schema s;
  schema_with(&s, NULL, 0, false);
  struct env *a = env_new(&s, TKS_MODE_FALLBACK);
  round_trip(a);
  env_free(a);
}

TEST(large_slotted_store_goes_in_chunks_of_a_few_mib) {
  struct tks_schema s;
  schema_with(&s, NULL, 0, false);
  struct env *a = env_new(&s, TKS_MODE_SLOTTED);
  _Alignas(8) char rec[64] = {0};
  const struct tks_field *ts = &s.fields[s.ts_field], *sym = &s.fields[s.symbol_field];
  uint32_t id;
  ASSERT_EQ(tks_symtab_intern(a->symbols, "ONE", 3, &id), 0);
  for (int64_t i = 0; i < 400000; i++) { /* 12.8 MB of records */
    memcpy(rec + ts->offset, &i, 8);
    memcpy(rec + sym->offset, &id, 4);
    ASSERT_EQ(tks_store_append(a->store, rec), 0);
  }
  struct image im = write_image(a, 1);
  size_t offs[64];
  size_t n = chunk_offsets(&im, offs, 64);
  /* HEADER, SYMBOLS, 4 TICKS of at most 4 MiB, END. */
  ASSERT(n >= 6 && n <= 8);
  for (size_t i = 0; i < n; i++) {
    uint32_t len;
    memcpy(&len, im.p + offs[i] + 4, 4);
    ASSERT(len <= TKS_CHECKPOINT_CHUNK);
  }
  free(im.p);
  round_trip(a);
  env_free(a);
}

TEST(load_goes_chunk_by_chunk_with_progress) {
  struct env *a = fallback_store(30000);
  struct image im = write_image(a, 3);
  struct env *b = env_new(&a->schema, a->mode);
  struct tks_checkpoint_target t = target_of(b);
  char err[1200];
  struct tks_checkpoint_load *l = tks_checkpoint_open_fd(memfd_of(im.p, im.n), "test.tkc", &t, err,
                                                         sizeof err);
  ASSERT(l != NULL);
  ASSERT_U64_EQ(tks_checkpoint_header(l)->next_segment, 3);
  ASSERT_U64_EQ(tks_checkpoint_header(l)->ticks, 30000);
  unsigned steps = 0;
  int r;
  uint64_t done, total, last = 0;
  while ((r = tks_checkpoint_next(l, 1, err, sizeof err)) == 1) {
    tks_checkpoint_progress(l, &done, &total);
    ASSERT(done > last);
    ASSERT_U64_EQ(total, im.n);
    last = done;
    steps++;
  }
  ASSERT_EQ(r, 0);
  ASSERT(steps >= 3); /* a chunk a call */
  struct tks_checkpoint_load_info li;
  tks_checkpoint_load_info(l, &li);
  ASSERT(!li.converted);
  ASSERT_U64_EQ(li.ticks, 30000);
  tks_checkpoint_close(l);
  assert_same_ticks(b, a);
  env_free(b);
  env_free(a);
  free(im.p);
}

TEST(a_store_with_ticks_is_not_loaded_into) {
  struct env *a = fallback_store(1000);
  struct image im = write_image(a, 3);
  struct tks_checkpoint_target t = target_of(a);
  char err[1200];
  ASSERT(tks_checkpoint_open_fd(memfd_of(im.p, im.n), "test.tkc", &t, err, sizeof err) == NULL);
  ASSERT_CONTAINS(err, "not empty");
  env_free(a);
  free(im.p);
}

/* ---- conversions: the same as feeding the ticks under the new schema ---- */

/* Builds a store under (sa, ma) from the ticks, checkpoints it, loads it
 * under (sb, mb), and compares with the ticks fed under (sb, mb). */
static void assert_converts_as_replay(const struct tks_schema *sa, enum tks_mode ma,
                                      const struct tks_schema *sb, enum tks_mode mb, unsigned what,
                                      unsigned n, struct tks_checkpoint_load_info *li) {
  struct tks_buf b;
  tks_buf_init(&b);
  make_ticks(&b, n, 12, what);
  struct env *a = env_new(sa, ma);
  uint64_t kept_a = feed(a, &b);
  struct image im = write_image(a, 9);
  struct env *want = env_new(sb, mb);
  uint64_t kept_b = feed(want, &b);
  ASSERT_U64_EQ(kept_a, kept_b); /* the test's ticks are kept under both */
  struct env *got = env_new(sb, mb);
  struct tks_checkpoint_target t = target_of(got);
  char err[1200];
  struct tks_checkpoint_load *l = tks_checkpoint_open_fd(memfd_of(im.p, im.n), "test.tkc", &t, err,
                                                         sizeof err);
  if (!l) TEST_FAIL("open: %s", err);
  int r;
  while ((r = tks_checkpoint_next(l, 1 << 16, err, sizeof err)) == 1) {
  }
  if (r) TEST_FAIL("load: %s", err);
  tks_checkpoint_load_info(l, li);
  ASSERT(li->converted);
  ASSERT(li->conversion[0] != '\0');
  tks_checkpoint_close(l);
  assert_same_ticks(got, want);
  assert_same_usage(got, want);
  /* Loaded in time order: about replay's block memory or less (a block's
   * packed layout depends on the order its ticks came in: within 2%). */
  uint64_t got_bytes = tks_store_block_bytes(got->store),
           want_bytes = tks_store_block_bytes(want->store);
  if (got_bytes > want_bytes + want_bytes / 50)
    TEST_FAIL("loaded blocks take %llu bytes, replay's %llu", (unsigned long long)got_bytes,
              (unsigned long long)want_bytes);
  env_free(a);
  env_free(want);
  env_free(got);
  tks_buf_finish(&b);
  free(im.p);
}

TEST(declaring_a_field_fallback_ticks_carry_equals_replaying_under_the_new_schema) {
  struct tks_schema sa, sb;
  schema_with(&sa, NULL, 0, false);
  schema_with(&sb, "exchange", TKS_TYPE_STRING, false);
  struct tks_checkpoint_load_info li;
  assert_converts_as_replay(&sa, TKS_MODE_FALLBACK, &sb, TKS_MODE_FALLBACK,
                            WITH_EXCHANGE | WITH_FLAGS | LATE, 20000, &li);
  ASSERT_CONTAINS(li.conversion, "exchange");
  ASSERT_U64_EQ(li.dropped_ticks, 0);
}

TEST(declaring_it_a_symbol_as_advice_suggests_equals_replay_too) {
  struct tks_schema sa, sb;
  schema_with(&sa, NULL, 0, false);
  schema_with(&sb, "exchange", TKS_TYPE_SYMBOL, false);
  struct tks_checkpoint_load_info li;
  assert_converts_as_replay(&sa, TKS_MODE_FALLBACK, &sb, TKS_MODE_FALLBACK,
                            WITH_EXCHANGE | WITH_VENUE | LATE, 8000, &li);
}

TEST(declaring_the_only_undeclared_field_leaves_no_overflow_ticks) {
  struct tks_schema sa, sb;
  schema_with(&sa, NULL, 0, false);
  schema_with(&sb, "exchange", TKS_TYPE_STRING, false);
  struct tks_buf b;
  tks_buf_init(&b);
  make_ticks(&b, 10000, 8, ALWAYS_EXCHANGE | WITH_FLAGS);
  struct env *a = env_new(&sa, TKS_MODE_FALLBACK);
  ASSERT_U64_EQ(feed(a, &b), 10000);
  struct tks_store_repr r;
  tks_store_repr(a->store, &r);
  ASSERT_U64_EQ(r.overflow_ticks, 10000);
  struct image im = write_image(a, 2);
  struct env *got = env_new(&sb, TKS_MODE_FALLBACK);
  char err[1200];
  if (load_bytes(got, im.p, im.n, 1 << 20, err, sizeof err)) TEST_FAIL("load: %s", err);
  tks_store_repr(got->store, &r);
  ASSERT_U64_EQ(r.overflow_ticks, 0);
  ASSERT_U64_EQ(r.overflow_map_bytes, 0);
  ASSERT_U64_EQ(r.slotted_ticks, 10000);
  /* Memory per tick is the slotted figure: records and their blocks. */
  ASSERT(tks_store_block_bytes(got->store) < 10000ull * (sb.record_size + 4));
  struct env *want = env_new(&sb, TKS_MODE_FALLBACK);
  feed(want, &b);
  assert_same_ticks(got, want);
  env_free(a);
  env_free(got);
  env_free(want);
  tks_buf_finish(&b);
  free(im.p);
}

TEST(an_int_field_fallback_ticks_carry_is_declared_too) {
  struct tks_schema sa, sb;
  schema_with(&sa, NULL, 0, false);
  schema_with(&sb, "venue", TKS_TYPE_I64, false);
  struct tks_checkpoint_load_info li;
  assert_converts_as_replay(&sa, TKS_MODE_FALLBACK, &sb, TKS_MODE_FALLBACK,
                            WITH_EXCHANGE | WITH_VENUE | LATE, 8000, &li);
}

TEST(a_new_optional_field_no_tick_carries_takes_its_default) {
  struct tks_schema sa, sb;
  schema_with(&sa, NULL, 0, false);
  schema_with(&sb, "bid", TKS_TYPE_F64, false);
  sb.fields[sb.nfields - 1].dflt.f64 = -1.5;
  struct tks_checkpoint_load_info li;
  assert_converts_as_replay(&sa, TKS_MODE_SLOTTED, &sb, TKS_MODE_SLOTTED, WITH_FLAGS | LATE, 8000,
                            &li);
  assert_converts_as_replay(&sa, TKS_MODE_FALLBACK, &sb, TKS_MODE_FALLBACK,
                            WITH_EXCHANGE | WITH_FLAGS, 8000, &li);
}

TEST(a_dropped_field_goes_into_overflow_maps_in_fallback_mode) {
  struct tks_schema sa, sb;
  schema_with(&sa, NULL, 0, false);
  schema_without(&sb, "flags");
  struct tks_checkpoint_load_info li;
  assert_converts_as_replay(&sa, TKS_MODE_FALLBACK, &sb, TKS_MODE_FALLBACK,
                            WITH_EXCHANGE | WITH_FLAGS | LATE, 8000, &li);
  ASSERT_CONTAINS(li.conversion, "flags dropped");
}

TEST(a_dropped_field_is_counted_in_slotted_mode) {
  struct tks_schema sa, sb;
  schema_with(&sa, NULL, 0, false);
  schema_without(&sb, "flags");
  struct tks_buf b;
  tks_buf_init(&b);
  make_ticks(&b, 4000, 4, WITH_FLAGS);
  struct env *a = env_new(&sa, TKS_MODE_SLOTTED);
  ASSERT_U64_EQ(feed(a, &b), 4000);
  struct image im = write_image(a, 2);
  struct env *got = env_new(&sb, TKS_MODE_SLOTTED);
  struct tks_checkpoint_target t = target_of(got);
  char err[1200];
  struct tks_checkpoint_load *l = tks_checkpoint_open_fd(memfd_of(im.p, im.n), "test.tkc", &t, err,
                                                         sizeof err);
  ASSERT(l != NULL);
  int r;
  while ((r = tks_checkpoint_next(l, 1 << 20, err, sizeof err)) == 1) {
  }
  ASSERT_EQ(r, 0);
  struct tks_checkpoint_load_info li;
  tks_checkpoint_load_info(l, &li);
  tks_checkpoint_close(l);
  ASSERT_U64_EQ(tks_store_ticks(got->store), 4000);
  ASSERT(li.dropped_ticks > 1000 && li.dropped_ticks < 3000); /* the half with flags */
  ASSERT_U64_EQ(li.dropped_fields, li.dropped_ticks);
  env_free(a);
  env_free(got);
  tks_buf_finish(&b);
  free(im.p);
}

TEST(a_mode_switch_converts_representations_as_replay_would) {
  struct tks_schema s;
  schema_with(&s, NULL, 0, false);
  struct tks_checkpoint_load_info li;
  unsigned what = WITH_EXCHANGE | WITH_VENUE | WITH_FLAGS | LATE;
  assert_converts_as_replay(&s, TKS_MODE_FALLBACK, &s, TKS_MODE_DYNAMIC, what, 6000, &li);
  ASSERT_CONTAINS(li.conversion, "mode fallback -> dynamic");
  assert_converts_as_replay(&s, TKS_MODE_DYNAMIC, &s, TKS_MODE_FALLBACK, what, 6000, &li);
  assert_converts_as_replay(&s, TKS_MODE_SLOTTED, &s, TKS_MODE_DYNAMIC, WITH_FLAGS | LATE, 6000,
                            &li);
  assert_converts_as_replay(&s, TKS_MODE_DYNAMIC, &s, TKS_MODE_SLOTTED, WITH_FLAGS | LATE, 6000,
                            &li);
  /* A field declared while switching mode. */
  struct tks_schema sb;
  schema_with(&sb, "exchange", TKS_TYPE_STRING, false);
  assert_converts_as_replay(&s, TKS_MODE_DYNAMIC, &sb, TKS_MODE_DYNAMIC, what, 6000, &li);
  assert_converts_as_replay(&s, TKS_MODE_DYNAMIC, &sb, TKS_MODE_FALLBACK, what, 6000, &li);
}

TEST(slotted_to_fallback_keeps_the_records_raw) {
  struct tks_schema s;
  schema_with(&s, NULL, 0, false);
  struct tks_buf b;
  tks_buf_init(&b);
  make_ticks(&b, 3000, 4, WITH_FLAGS);
  struct env *a = env_new(&s, TKS_MODE_SLOTTED);
  feed(a, &b);
  struct image im = write_image(a, 2);
  struct env *got = env_new(&s, TKS_MODE_FALLBACK);
  char err[1200];
  ASSERT_EQ(load_bytes(got, im.p, im.n, 1 << 20, err, sizeof err), 0);
  assert_same_ticks(got, a);
  env_free(a);
  env_free(got);
  tks_buf_finish(&b);
  free(im.p);
}

/* The refusals: nothing is loaded, the message names the field. */
static void assert_refused_conversion(const struct tks_schema *sb, enum tks_mode mb,
                                      const char *needle1, const char *needle2) {
  struct env *a = fallback_store(6000);
  struct image im = write_image(a, 4);
  struct env *got = env_new(sb, mb);
  struct tks_checkpoint_target t = target_of(got);
  char err[1200] = "";
  struct tks_checkpoint_load *l = tks_checkpoint_open_fd(memfd_of(im.p, im.n), "test.tkc", &t, err,
                                                         sizeof err);
  ASSERT(l != NULL);
  int r;
  while ((r = tks_checkpoint_next(l, 1 << 12, err, sizeof err)) == 1) {
    /* Nothing is stored before the whole file was checked. */
    ASSERT_U64_EQ(tks_store_ticks(got->store), 0);
    ASSERT_EQ(tks_symtab_count(got->symbols), 0);
  }
  ASSERT(r < 0);
  ASSERT_CONTAINS(err, needle1);
  ASSERT_CONTAINS(err, needle2);
  ASSERT_CONTAINS(err, "test.tkc");
  /* Every later call says the same. */
  char err2[1200];
  ASSERT_EQ(tks_checkpoint_next(l, 1 << 12, err2, sizeof err2), r);
  ASSERT_STR_EQ(err2, err);
  tks_checkpoint_close(l);
  ASSERT_U64_EQ(tks_store_ticks(got->store), 0);
  ASSERT_EQ(tks_symtab_count(got->symbols), 0);
  ASSERT_EQ(tks_symtab_count(got->strings), 0);
  ASSERT_EQ(tks_symtab_count(got->names), 0);
  env_free(a);
  env_free(got);
  free(im.p);
}

TEST(a_new_required_field_old_ticks_lack_is_refused_by_name_with_nothing_loaded) {
  struct tks_schema sb;
  schema_with(&sb, "exchange", TKS_TYPE_STRING, true);
  assert_refused_conversion(&sb, TKS_MODE_FALLBACK, "field exchange is required",
                            "ticks in the checkpoint lack it");
}

TEST(a_field_declared_with_a_type_old_values_do_not_have_is_refused) {
  struct tks_schema sb;
  schema_with(&sb, "exchange", TKS_TYPE_F64, false);
  assert_refused_conversion(&sb, TKS_MODE_FALLBACK, "field exchange (f64)", "a string");
  schema_with(&sb, "venue", TKS_TYPE_BOOL, false);
  assert_refused_conversion(&sb, TKS_MODE_DYNAMIC, "field venue (bool)", "an int");
}

TEST(a_required_field_every_tick_carries_is_fine) {
  struct tks_schema sa, sb;
  schema_with(&sa, NULL, 0, false);
  schema_with(&sb, "exchange", TKS_TYPE_STRING, true);
  struct tks_checkpoint_load_info li;
  assert_converts_as_replay(&sa, TKS_MODE_FALLBACK, &sb, TKS_MODE_FALLBACK,
                            ALWAYS_EXCHANGE | WITH_VENUE, 5000, &li);
}

/* ---- bad files ---- */

static struct image small_image(struct tks_schema *s) {
  struct env *a = fallback_store(3000);
  *s = a->schema;
  struct image im = write_image(a, 5);
  env_free(a);
  return im;
}

TEST(a_file_cut_at_every_chunk_boundary_is_refused) {
  struct tks_schema s;
  struct image im = small_image(&s);
  size_t offs[256];
  size_t n = chunk_offsets(&im, offs, 256);
  ASSERT(n >= 5);
  static const long deltas[] = {-1, 0, 1, 4, 11, 12, 13};
  for (size_t i = 0; i < n; i++)
    for (size_t k = 0; k < TKS_ARRAY_SIZE(deltas); k++) {
      long cut = (long)offs[i] + deltas[k];
      if (cut < 0 || (size_t)cut >= im.n) continue;
      assert_refused(&s, TKS_MODE_FALLBACK, im.p, (size_t)cut, "cut at a boundary");
    }
  for (size_t cut = 0; cut <= 16; cut++)
    assert_refused(&s, TKS_MODE_FALLBACK, im.p, cut, "cut in the magic");
  free(im.p);
}

TEST(a_file_cut_at_random_offsets_is_refused) {
  struct tks_schema s;
  struct image im = small_image(&s);
  for (int i = 0; i < 300; i++) {
    size_t cut = (size_t)(next_rand() % im.n);
    assert_refused(&s, TKS_MODE_FALLBACK, im.p, cut, "cut");
  }
  free(im.p);
}

TEST(every_flipped_bit_is_refused) {
  struct tks_schema s;
  struct image im = small_image(&s);
  uint8_t *copy = malloc(im.n);
  /* Every bit of the header area and the first chunks, then random ones. */
  for (size_t bit = 0; bit < 8 * 400 && bit < 8 * im.n; bit++) {
    memcpy(copy, im.p, im.n);
    copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    assert_refused(&s, TKS_MODE_FALLBACK, copy, im.n, "flipped bit");
  }
  for (int i = 0; i < 400; i++) {
    memcpy(copy, im.p, im.n);
    size_t bit = (size_t)(next_rand() % (8 * im.n));
    copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    assert_refused(&s, TKS_MODE_FALLBACK, copy, im.n, "flipped bit");
  }
  free(copy);
  free(im.p);
}

TEST(random_bytes_are_refused) {
  struct tks_schema s;
  schema_with(&s, NULL, 0, false);
  uint8_t buf[4096];
  for (int i = 0; i < 300; i++) {
    size_t n = (size_t)(next_rand() % sizeof buf);
    for (size_t k = 0; k < n; k++) buf[k] = (uint8_t)next_rand();
    if (i % 2 && n >= 16) { /* past the magic, into the chunks */
      memcpy(buf, "TKSCKPT1\1\0\0\0\0\0\0\0", 16);
    }
    assert_refused(&s, TKS_MODE_FALLBACK, buf, n, "random bytes");
  }
}

TEST(oversized_and_impossible_lengths_are_refused) {
  struct tks_schema s;
  struct image im = small_image(&s);
  size_t offs[256];
  size_t n = chunk_offsets(&im, offs, 256);
  uint8_t *copy = malloc(im.n);
  static const uint32_t lens[] = {0xffffffffu, TKS_CHECKPOINT_MAX_CHUNK + 1, 0x7fffffff, 1u << 30};
  for (size_t i = 0; i < n; i++)
    for (size_t k = 0; k < TKS_ARRAY_SIZE(lens); k++) {
      memcpy(copy, im.p, im.n);
      memcpy(copy + offs[i] + 4, &lens[k], 4);
      assert_refused(&s, TKS_MODE_FALLBACK, copy, im.n, "oversized length");
      struct env *e = env_new(&s, TKS_MODE_FALLBACK);
      char err[1200] = "";
      ASSERT(load_bytes(e, copy, im.n, 1 << 20, err, sizeof err) < 0);
      if (lens[k] > TKS_CHECKPOINT_MAX_CHUNK) ASSERT_CONTAINS(err, "over the most");
      env_free(e);
    }
  free(copy);
  free(im.p);
}

/* Changes the checkpoint passes its CRCs with: counts, ids, orders. */
TEST(bad_contents_under_good_crcs_are_refused) {
  struct tks_schema s;
  struct image im = small_image(&s);
  size_t offs[256];
  size_t n = chunk_offsets(&im, offs, 256);
  uint8_t *copy = malloc(im.n);
  char err[1200];
  struct env *e;
#define TRY(off, value, expect)                                      \
  do {                                                               \
    memcpy(copy, im.p, im.n);                                        \
    uint32_t v_ = (value);                                           \
    memcpy(copy + (off), &v_, 4);                                    \
    fix_crc(copy, chunk);                                            \
    e = env_new(&s, TKS_MODE_FALLBACK);                              \
    err[0] = 0;                                                      \
    ASSERT(load_bytes(e, copy, im.n, 1 << 20, err, sizeof err) < 0); \
    ASSERT_CONTAINS(err, expect);                                    \
    env_free(e);                                                     \
  } while (0)
  size_t chunk = offs[0], p = chunk + 12;                 /* HEADER */
  TRY(p + 40, 0x7fffffff, "counts the file cannot hold"); /* ticks (low word) */
  TRY(p + 44, 0x7fffffff, "counts the file cannot hold"); /* ticks (high word) */
  TRY(p + 80, 0x7fffffff, "counts the file cannot hold"); /* symbols */
  TRY(p + 0, 9, "unknown mode");
  TRY(p + 4, 40, "fields in the schema");
  TRY(p + 128 + 40, 3, "offset or size disagrees"); /* field 1's offset */
  TRY(p + 20, 0x04030201, "byte order");
  /* An unknown chunk type, with its CRC fixed. */
  chunk = offs[1];
  TRY(chunk, 77, "unknown chunk type");
  /* A symbol table chunk that starts at the wrong id. */
  TRY(chunk + 12, 2, "expected 1");
  /* The first TICKS run: a symbol id past the table, a huge count, an
   * unknown representation. */
  size_t t = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t type;
    memcpy(&type, im.p + offs[i], 4);
    if (type == 5) {
      t = offs[i];
      break;
    }
  }
  ASSERT(t != 0);
  chunk = t;
  TRY(t + 12, 100000, "out of range");
  TRY(t + 12 + 8, 0x10000000, "than the header says");
  TRY(t + 12 + 4, 3, "bad run header");
  TRY(t + 12 + 12, 1, "bad run header");
  /* The first record's symbol field disagrees with its run. */
  TRY(t + 12 + 16 + s.fields[s.symbol_field].offset, 0xffff, "in a run of symbol");
  /* Its string id past the table. */
  TRY(t + 12 + 16 + s.fields[4].offset, 99999, "out of range");
  /* END's totals. */
  chunk = offs[n - 1];
  TRY(chunk + 12, 1, "ticks read");
  TRY(chunk + 12 + 40, 1, "chunk count");
#undef TRY
  /* Bytes after END. */
  uint8_t *longer = malloc(im.n + 8);
  memcpy(longer, im.p, im.n);
  memset(longer + im.n, 0, 8);
  e = env_new(&s, TKS_MODE_FALLBACK);
  ASSERT(load_bytes(e, longer, im.n + 8, 1 << 20, err, sizeof err) < 0);
  env_free(e);
  free(longer);
  free(copy);
  free(im.p);
}

/* Random changes inside chunks with their CRCs fixed: whatever the loader
 * makes of them, it must not crash, and what it accepts must be whole. */
TEST(random_changes_under_good_crcs_never_crash) {
  struct tks_schema s;
  struct image im = small_image(&s);
  size_t offs[256];
  size_t n = chunk_offsets(&im, offs, 256);
  uint8_t *copy = malloc(im.n);
  unsigned accepted = 0;
  for (int i = 0; i < 1500; i++) {
    memcpy(copy, im.p, im.n);
    size_t c = 1 + (size_t)(next_rand() % (n - 1));
    uint32_t len;
    memcpy(&len, copy + offs[c] + 4, 4);
    if (!len) continue;
    unsigned changes = 1 + (unsigned)(next_rand() % 4);
    for (unsigned k = 0; k < changes; k++) {
      size_t at = offs[c] + 12 + (size_t)(next_rand() % len);
      copy[at] = (uint8_t)(next_rand() % 4 == 0 ? copy[at] ^ (1u << (next_rand() % 8))
                                                : next_rand());
    }
    fix_crc(copy, offs[c]);
    struct env *e = env_new(&s, TKS_MODE_FALLBACK);
    char err[1200] = "";
    int r = load_bytes(e, copy, im.n, 1 << 20, err, sizeof err);
    if (r == 0) {
      accepted++;
      ASSERT_U64_EQ(tks_store_ticks(e->store), 3000);
      char *d = dump_store(e); /* every tick readable */
      free(d);
    } else {
      ASSERT_CONTAINS(err, "offset");
    }
    env_free(e);
  }
  ASSERT(accepted < 1500);
  free(copy);
  free(im.p);
}

/* ---- files in a directory ---- */

TEST(names_parse_and_save_publishes_atomically) {
  char name[TKS_CHECKPOINT_NAME_MAX];
  tks_checkpoint_name(name, 42);
  ASSERT_STR_EQ(name, "checkpoint-00000000000000000042.tkc");
  uint64_t seq;
  ASSERT(tks_checkpoint_parse_name(name, &seq));
  ASSERT_U64_EQ(seq, 42);
  ASSERT(!tks_checkpoint_parse_name("checkpoint-00000000000000000042.tkc.tmp", &seq));
  ASSERT(!tks_checkpoint_parse_name("checkpoint-0000000000000000004.tkc", &seq));
  ASSERT(!tks_checkpoint_parse_name("journal-00000000000000000042.tkj", &seq));

  char dir[] = "/tmp/tks-ckpt-XXXXXX";
  ASSERT(mkdtemp(dir) != NULL);
  struct env *a = fallback_store(2000);
  struct tks_checkpoint_src src = {&a->schema, a->mode,  a->store, a->symbols,
                                   a->strings, a->names, 3,        1};
  char err[1200], path[256];
  /* A temp file a crash left is replaced. */
  snprintf(path, sizeof path, "%s/checkpoint-00000000000000000003.tkc.tmp", dir);
  write_file(path, "junk");
  struct tks_checkpoint_info info;
  ASSERT_EQ(tks_checkpoint_save(dir, &src, &info, err, sizeof err), 0);
  ASSERT(access(path, F_OK) != 0);
  for (uint64_t n = 5; n <= 11; n += 2) {
    src.next_segment = n;
    ASSERT_EQ(tks_checkpoint_save(dir, &src, &info, err, sizeof err), 0);
  }
  snprintf(path, sizeof path, "%s/checkpoint-00000000000000000099.tkc.tmp", dir);
  write_file(path, "left by a crash");
  uint64_t seqs[8];
  size_t n;
  ASSERT_EQ(tks_checkpoint_list(dir, seqs, 8, &n), 0);
  ASSERT_EQ(n, 5);
  ASSERT_U64_EQ(seqs[0], 11);
  ASSERT_U64_EQ(seqs[4], 3);
  ASSERT_EQ(tks_checkpoint_list(dir, seqs, 2, &n), 0);
  ASSERT_EQ(n, 5);
  ASSERT_U64_EQ(seqs[0], 11);
  ASSERT_U64_EQ(seqs[1], 9);
  uint64_t oldest;
  ASSERT_EQ(tks_checkpoint_prune(dir, 2, &oldest), 0);
  ASSERT_U64_EQ(oldest, 9);
  ASSERT_EQ(tks_checkpoint_list(dir, seqs, 8, &n), 0);
  ASSERT_EQ(n, 2);
  ASSERT(access(path, F_OK) != 0); /* the crash's temp file went too */
  /* The kept one loads. */
  snprintf(path, sizeof path, "%s/checkpoint-00000000000000000011.tkc", dir);
  struct env *b = env_new(&a->schema, a->mode);
  struct tks_checkpoint_target t = target_of(b);
  struct tks_checkpoint_load *l = tks_checkpoint_open(path, &t, err, sizeof err);
  ASSERT(l != NULL);
  int r;
  while ((r = tks_checkpoint_next(l, 1 << 20, err, sizeof err)) == 1) {
  }
  ASSERT_EQ(r, 0);
  ASSERT_U64_EQ(tks_checkpoint_header(l)->next_segment, 11);
  tks_checkpoint_close(l);
  assert_same_ticks(b, a);
  /* A missing dir has none; a failed save leaves no temp file. */
  ASSERT_EQ(tks_checkpoint_list("/nonexistent/dir", seqs, 8, &n), 0);
  ASSERT_EQ(n, 0);
  ASSERT(tks_checkpoint_save("/nonexistent/dir", &src, &info, err, sizeof err) < 0);
  ASSERT_CONTAINS(err, "/nonexistent/dir");
  ASSERT_EQ(tks_checkpoint_prune(dir, 0, &oldest), 0);
  ASSERT_U64_EQ(oldest, 0);
  ASSERT_EQ(tks_checkpoint_list(dir, seqs, 8, &n), 0);
  ASSERT_EQ(n, 0);
  rmdir(dir);
  env_free(a);
  env_free(b);
}

TEST_MAIN()
