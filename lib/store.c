/*
 * The tick store.  Each symbol has a series: a doubly linked chain of
 * blocks in time order.  A block is one slab chunk: a 32-byte header, then
 * records sorted by ts.  Appending in order touches only the tail block; a
 * late tick is inserted by binary search into the block that covers its
 * ts, splitting the block in two when it is full.  Blocks grow from
 * TKS_STORE_BLOCK_MIN to TKS_STORE_BLOCK_MAX bytes as a series grows.
 */
#include "store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "slab.h"
#include "stats.h"

struct block {
  struct block *prev, *next;
  uint32_t count; /* records held */
  uint32_t cap;   /* records that fit */
  uint32_t bytes; /* chunk size asked of the slab */
  uint32_t pad;
  /* records follow */
};
_Static_assert(sizeof(struct block) == 32, "block header is 32 bytes");

struct series {
  struct block *head, *tail;
  uint64_t count;
};

struct tks_store {
  const struct tks_schema *schema;
  struct tks_slab *slab;
  uint32_t rsize;
  uint32_t ts_off, sym_off;
  struct series *series; /* indexed by symbol id */
  uint32_t series_cap;
  uint32_t series_used; /* series with at least one tick */
  uint64_t ticks, late, block_bytes;
};

static const char *const mode_names[] = {"slotted", "dynamic", "fallback"};

const char *tks_mode_name(enum tks_mode m) {
  return (unsigned)m < TKS_ARRAY_SIZE(mode_names) ? mode_names[m] : "?";
}

int tks_mode_parse(const char *s, enum tks_mode *out) {
  for (unsigned i = 0; i < TKS_ARRAY_SIZE(mode_names); i++)
    if (strcmp(s, mode_names[i]) == 0) {
      *out = (enum tks_mode)i;
      return 0;
    }
  return -EINVAL;
}

struct tks_store *tks_store_create(const struct tks_schema *schema, struct tks_slab *slab) {
  struct tks_store *st = calloc(1, sizeof *st);
  if (!st) return NULL;
  st->schema = schema;
  st->slab = slab;
  st->rsize = schema->record_size;
  st->ts_off = schema->fields[schema->ts_field].offset;
  st->sym_off = schema->fields[schema->symbol_field].offset;
  return st;
}

void tks_store_destroy(struct tks_store *st) {
  if (!st) return;
  for (uint32_t i = 0; i < st->series_cap; i++) {
    struct block *b = st->series[i].head;
    while (b) {
      struct block *next = b->next;
      tks_slab_free(st->slab, b, b->bytes);
      b = next;
    }
  }
  free(st->series);
  free(st);
}

static inline char *rec_at(const struct tks_store *st, const struct block *b, uint32_t i) {
  return (char *)(b + 1) + (size_t)i * st->rsize;
}

static inline int64_t rec_ts(const struct tks_store *st, const void *rec) {
  int64_t ts;
  memcpy(&ts, (const char *)rec + st->ts_off, sizeof ts);
  return ts;
}

static struct block *block_new(struct tks_store *st, size_t want) {
  /* At least 8 records, so that a split leaves both halves non-empty. */
  if (want < sizeof(struct block) + 8 * (size_t)st->rsize) want = sizeof(struct block) + 8 * (size_t)st->rsize;
  size_t bytes = tks_slab_chunk_size(st->slab, tks_slab_class_for(st->slab, want));
  struct block *b = tks_slab_alloc(st->slab, bytes);
  if (!b) return NULL;
  b->prev = b->next = NULL;
  b->count = 0;
  b->cap = (uint32_t)((bytes - sizeof *b) / st->rsize);
  b->bytes = (uint32_t)bytes;
  st->block_bytes += bytes;
  return b;
}

/* Links nb after b (b may be NULL: nb becomes the head). */
static void link_after(struct series *s, struct block *b, struct block *nb) {
  nb->prev = b;
  nb->next = b ? b->next : s->head;
  if (nb->next)
    nb->next->prev = nb;
  else
    s->tail = nb;
  if (b)
    b->next = nb;
  else
    s->head = nb;
}

static int ensure_series(struct tks_store *st, uint32_t sym) {
  if (sym < st->series_cap) return 0;
  uint32_t cap = st->series_cap ? st->series_cap : 64;
  while (cap <= sym) cap *= 2;
  struct series *ns = realloc(st->series, (size_t)cap * sizeof *ns);
  if (!ns) return -ENOMEM;
  memset(ns + st->series_cap, 0, (size_t)(cap - st->series_cap) * sizeof *ns);
  st->series = ns;
  st->series_cap = cap;
  return 0;
}

/* Index of the first record in b with ts > t (records after equal ts keep
 * their arrival order). */
static uint32_t upper_bound(const struct tks_store *st, const struct block *b, int64_t t) {
  uint32_t lo = 0, hi = b->count;
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (rec_ts(st, rec_at(st, b, mid)) <= t)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static int insert_late(struct tks_store *st, struct series *s, const void *rec, int64_t ts) {
  struct block *b = s->tail;
  while (b->prev && rec_ts(st, rec_at(st, b, 0)) > ts) b = b->prev;
  uint32_t pos = upper_bound(st, b, ts);
  if (b->count == b->cap) {
    struct block *nb = block_new(st, b->bytes);
    if (!nb) return -ENOMEM;
    uint32_t half = b->count / 2;
    memcpy(rec_at(st, nb, 0), rec_at(st, b, half), (size_t)(b->count - half) * st->rsize);
    nb->count = b->count - half;
    b->count = half;
    link_after(s, b, nb);
    if (pos > half) {
      b = nb;
      pos -= half;
    }
  }
  memmove(rec_at(st, b, pos + 1), rec_at(st, b, pos), (size_t)(b->count - pos) * st->rsize);
  memcpy(rec_at(st, b, pos), rec, st->rsize);
  b->count++;
  st->late++;
  return 0;
}

int tks_store_append(struct tks_store *st, const void *rec) {
  uint32_t sym;
  memcpy(&sym, (const char *)rec + st->sym_off, sizeof sym);
  if (ensure_series(st, sym)) return -ENOMEM;
  struct series *s = &st->series[sym];
  struct block *b = s->tail;
  int64_t ts = rec_ts(st, rec);
  if (b && ts < rec_ts(st, rec_at(st, b, b->count - 1))) {
    if (insert_late(st, s, rec, ts)) return -ENOMEM;
  } else {
    if (!b || b->count == b->cap) {
      size_t want = b ? (size_t)b->bytes * 2 : TKS_STORE_BLOCK_MIN;
      if (want > TKS_STORE_BLOCK_MAX) want = TKS_STORE_BLOCK_MAX;
      struct block *nb = block_new(st, want);
      if (!nb) return -ENOMEM;
      link_after(s, b, nb);
      b = nb;
    }
    memcpy(rec_at(st, b, b->count), rec, st->rsize);
    b->count++;
  }
  if (s->count++ == 0) st->series_used++;
  st->ticks++;
  return 0;
}

uint64_t tks_store_ticks(const struct tks_store *st) { return st->ticks; }
uint64_t tks_store_late_ticks(const struct tks_store *st) { return st->late; }
uint32_t tks_store_series_count(const struct tks_store *st) { return st->series_used; }
uint64_t tks_store_block_bytes(const struct tks_store *st) { return st->block_bytes; }

uint64_t tks_store_index_bytes(const struct tks_store *st) {
  return sizeof *st + (uint64_t)st->series_cap * sizeof(struct series);
}

static const struct series *get_series(const struct tks_store *st, uint32_t sym) {
  if (sym >= st->series_cap || st->series[sym].count == 0) return NULL;
  return &st->series[sym];
}

int tks_store_series(const struct tks_store *st, uint32_t symbol, struct tks_series_info *out) {
  const struct series *s = get_series(st, symbol);
  if (!s) return -ENOENT;
  out->symbol = symbol;
  out->count = s->count;
  out->first_ts = rec_ts(st, rec_at(st, s->head, 0));
  out->last_ts = rec_ts(st, rec_at(st, s->tail, s->tail->count - 1));
  return 0;
}

uint64_t tks_store_range(const struct tks_store *st, uint32_t symbol, int64_t from, int64_t to,
                         uint64_t limit, tks_record_fn fn, void *ctx) {
  const struct series *s = get_series(st, symbol);
  uint64_t n = 0;
  if (!s || from >= to) return 0;
  const struct block *b = s->head;
  while (b && rec_ts(st, rec_at(st, b, b->count - 1)) < from) b = b->next;
  for (; b; b = b->next) {
    for (uint32_t i = 0; i < b->count; i++) {
      const char *r = rec_at(st, b, i);
      int64_t t = rec_ts(st, r);
      if (t < from) continue;
      if (t >= to) return n;
      n++;
      if (fn(ctx, r) || (limit && n == limit)) return n;
    }
  }
  return n;
}

uint64_t tks_store_last(const struct tks_store *st, uint32_t symbol, uint64_t want, tks_record_fn fn,
                        void *ctx) {
  const struct series *s = get_series(st, symbol);
  if (!s || want == 0) return 0;
  if (want > s->count) want = s->count;
  /* Find the block and index where the newest `want` records begin. */
  const struct block *b = s->tail;
  uint64_t skip = want;
  while (skip > b->count) {
    skip -= b->count;
    b = b->prev;
  }
  uint32_t i = b->count - (uint32_t)skip;
  uint64_t n = 0;
  for (; b; b = b->next, i = 0)
    for (; i < b->count; i++) {
      n++;
      if (fn(ctx, rec_at(st, b, i))) return n;
    }
  return n;
}

void tks_store_stats(const struct tks_store *st, struct tks_stats *s) {
  tks_stats_u64(s, "store.ticks", st->ticks, TKS_STAT_GAUGE, "Ticks held in the store", NULL, NULL);
  tks_stats_u64(s, "store.series", st->series_used, TKS_STAT_GAUGE, "Symbols with at least one tick",
                NULL, NULL);
  tks_stats_u64(s, "store.late_ticks", st->late, TKS_STAT_COUNTER,
                "Ticks inserted before the newest tick of their symbol", NULL, NULL);
  tks_stats_u64(s, "store.block_bytes", st->block_bytes, TKS_STAT_GAUGE,
                "Bytes of slab chunks holding tick blocks", NULL, NULL);
  tks_stats_u64(s, "store.record_bytes", st->ticks * st->rsize, TKS_STAT_GAUGE,
                "Bytes of the records themselves (ticks times record size)", NULL, NULL);
  tks_stats_u64(s, "store.index_bytes", tks_store_index_bytes(st), TKS_STAT_GAUGE,
                "Bytes of the per-symbol series table", NULL, NULL);
}
