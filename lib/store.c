/*
 * The tick store.  Each symbol has up to two series, one per
 * representation: slotted records (the schema's fixed layout) and entries
 * for dynamic objects (ts, object pointer, symbol: 24 bytes; the object is
 * its own slab chunk).  A series is a doubly linked chain of blocks in time
 * order; a block is one slab chunk: a 32-byte header, then entries sorted
 * by ts.  Appending in order touches only the tail block; a late tick is
 * inserted by binary search into the block that covers its ts, splitting
 * the block when it is full.  Blocks grow from TKS_STORE_BLOCK_MIN to
 * TKS_STORE_BLOCK_MAX bytes.  Queries merge the two series of a symbol by ts.
 */
#include "store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "slab.h"
#include "stats.h"

struct block {
  struct block *prev, *next;
  uint32_t count; /* entries held */
  uint32_t cap;   /* entries that fit */
  uint32_t bytes; /* chunk size asked of the slab */
  uint32_t pad;
  /* entries follow */
};
_Static_assert(sizeof(struct block) == 32, "block header is 32 bytes");

struct series {
  struct block *head, *tail;
  uint64_t count;
  struct block **blocks; /* the chain as an array, for binary search */
  uint32_t nblocks, bcap;
};

/* The series of one representation, for every symbol. */
struct set {
  uint32_t esize, ts_off, sym_off;
  struct series *series; /* indexed by symbol id */
  uint32_t cap;
  uint32_t used; /* series with at least one entry */
  uint64_t entries, late, block_bytes;
  uint64_t blockidx_bytes; /* bytes of the series' block arrays */
};

/* A dynamic tick's entry in its series. */
struct dyn_entry {
  int64_t ts;
  struct tks_dynobj *obj;
  uint32_t symbol;
  uint32_t pad;
};

struct tks_store {
  const struct tks_schema *schema;
  struct tks_slab *slab;
  struct set slotted, dyn;
  uint64_t obj_bytes;     /* slab chunk bytes of dynamic objects */
  uint64_t obj_requested; /* bytes the objects asked for */
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
  st->slotted.esize = schema->record_size;
  st->slotted.ts_off = schema->fields[schema->ts_field].offset;
  st->slotted.sym_off = schema->fields[schema->symbol_field].offset;
  st->dyn.esize = sizeof(struct dyn_entry);
  st->dyn.ts_off = offsetof(struct dyn_entry, ts);
  st->dyn.sym_off = offsetof(struct dyn_entry, symbol);
  return st;
}

static void set_free(struct tks_store *st, struct set *s, bool objects) {
  for (uint32_t i = 0; i < s->cap; i++) {
    free(s->series[i].blocks);
    struct block *b = s->series[i].head;
    while (b) {
      struct block *next = b->next;
      if (objects)
        for (uint32_t k = 0; k < b->count; k++) {
          struct dyn_entry *e = (struct dyn_entry *)(b + 1) + k;
          tks_slab_free(st->slab, e->obj, e->obj->bytes);
        }
      tks_slab_free(st->slab, b, b->bytes);
      b = next;
    }
  }
  free(s->series);
}

void tks_store_destroy(struct tks_store *st) {
  if (!st) return;
  set_free(st, &st->slotted, false);
  set_free(st, &st->dyn, true);
  free(st);
}

static inline char *ent_at(const struct set *s, const struct block *b, uint32_t i) {
  return (char *)(b + 1) + (size_t)i * s->esize;
}

static inline int64_t ent_ts(const struct set *s, const void *e) {
  int64_t ts;
  memcpy(&ts, (const char *)e + s->ts_off, sizeof ts);
  return ts;
}

static struct block *block_new(struct tks_store *st, struct set *s, size_t want) {
  /* At least 8 entries, so that a split leaves both halves non-empty. */
  if (want < sizeof(struct block) + 8 * (size_t)s->esize)
    want = sizeof(struct block) + 8 * (size_t)s->esize;
  size_t bytes = tks_slab_chunk_size(st->slab, tks_slab_class_for(st->slab, want));
  struct block *b = tks_slab_alloc(st->slab, bytes);
  if (!b) return NULL;
  b->prev = b->next = NULL;
  b->count = 0;
  b->cap = (uint32_t)((bytes - sizeof *b) / s->esize);
  b->bytes = (uint32_t)bytes;
  s->block_bytes += bytes;
  return b;
}

/* Links nb after b, which is blocks[at - 1] (b NULL, at 0: nb becomes the
 * head).  Returns 0 or -ENOMEM (nothing changed). */
static int link_after(struct set *s, struct series *sr, struct block *b, uint32_t at,
                      struct block *nb) {
  if (sr->nblocks == sr->bcap) {
    uint32_t cap = sr->bcap ? sr->bcap * 2 : 4;
    struct block **nbk = realloc(sr->blocks, (size_t)cap * sizeof *nbk);
    if (!nbk) return -ENOMEM;
    s->blockidx_bytes += (uint64_t)(cap - sr->bcap) * sizeof *nbk;
    sr->blocks = nbk;
    sr->bcap = cap;
  }
  memmove(sr->blocks + at + 1, sr->blocks + at, (size_t)(sr->nblocks - at) * sizeof *sr->blocks);
  sr->blocks[at] = nb;
  sr->nblocks++;
  nb->prev = b;
  nb->next = b ? b->next : sr->head;
  if (nb->next)
    nb->next->prev = nb;
  else
    sr->tail = nb;
  if (b)
    b->next = nb;
  else
    sr->head = nb;
  return 0;
}

static int ensure_series(struct set *s, uint32_t sym) {
  if (sym < s->cap) return 0;
  uint32_t cap = s->cap ? s->cap : 64;
  while (cap <= sym) cap *= 2;
  struct series *ns = realloc(s->series, (size_t)cap * sizeof *ns);
  if (!ns) return -ENOMEM;
  memset(ns + s->cap, 0, (size_t)(cap - s->cap) * sizeof *ns);
  s->series = ns;
  s->cap = cap;
  return 0;
}

/* Index of the first entry in b with ts > t (ties keep arrival order). */
static uint32_t upper_bound(const struct set *s, const struct block *b, int64_t t) {
  uint32_t lo = 0, hi = b->count;
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (ent_ts(s, ent_at(s, b, mid)) <= t)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Index of the first entry in b with ts >= t. */
static uint32_t lower_bound(const struct set *s, const struct block *b, int64_t t) {
  uint32_t lo = 0, hi = b->count;
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (ent_ts(s, ent_at(s, b, mid)) < t)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static inline int64_t first_ts(const struct set *s, const struct block *b) {
  return ent_ts(s, ent_at(s, b, 0));
}

static inline int64_t last_ts(const struct set *s, const struct block *b) {
  return ent_ts(s, ent_at(s, b, b->count - 1));
}

static int insert_late(struct tks_store *st, struct set *s, struct series *sr, const void *e,
                       int64_t ts) {
  /* The last block starting at or before ts (or the first block). */
  uint32_t lo = 0, hi = sr->nblocks;
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (first_ts(s, sr->blocks[mid]) <= ts)
      lo = mid + 1;
    else
      hi = mid;
  }
  uint32_t at = lo ? lo - 1 : 0;
  struct block *b = sr->blocks[at];
  uint32_t pos = upper_bound(s, b, ts);
  if (b->count == b->cap) {
    struct block *nb = block_new(st, s, b->bytes);
    if (!nb) return -ENOMEM;
    if (link_after(s, sr, b, at + 1, nb)) {
      s->block_bytes -= nb->bytes;
      tks_slab_free(st->slab, nb, nb->bytes);
      return -ENOMEM;
    }
    uint32_t half = b->count / 2;
    memcpy(ent_at(s, nb, 0), ent_at(s, b, half), (size_t)(b->count - half) * s->esize);
    nb->count = b->count - half;
    b->count = half;
    if (pos > half) {
      b = nb;
      pos -= half;
    }
  }
  memmove(ent_at(s, b, pos + 1), ent_at(s, b, pos), (size_t)(b->count - pos) * s->esize);
  memcpy(ent_at(s, b, pos), e, s->esize);
  b->count++;
  s->late++;
  return 0;
}

static int set_append(struct tks_store *st, struct set *s, const void *e) {
  uint32_t sym;
  memcpy(&sym, (const char *)e + s->sym_off, sizeof sym);
  if (ensure_series(s, sym)) return -ENOMEM;
  struct series *sr = &s->series[sym];
  struct block *b = sr->tail;
  int64_t ts = ent_ts(s, e);
  if (b && ts < last_ts(s, b)) {
    if (insert_late(st, s, sr, e, ts)) return -ENOMEM;
  } else {
    if (!b || b->count == b->cap) {
      size_t want = b ? (size_t)b->bytes * 2 : TKS_STORE_BLOCK_MIN;
      if (want > TKS_STORE_BLOCK_MAX) want = TKS_STORE_BLOCK_MAX;
      struct block *nb = block_new(st, s, want);
      if (!nb) return -ENOMEM;
      if (link_after(s, sr, b, sr->nblocks, nb)) {
        s->block_bytes -= nb->bytes;
        tks_slab_free(st->slab, nb, nb->bytes);
        return -ENOMEM;
      }
      b = nb;
    }
    memcpy(ent_at(s, b, b->count), e, s->esize);
    b->count++;
  }
  if (sr->count++ == 0) s->used++;
  s->entries++;
  return 0;
}

int tks_store_append(struct tks_store *st, const void *record) {
  return set_append(st, &st->slotted, record);
}

struct tks_dynobj *tks_store_new_dynobj(struct tks_store *st, unsigned nfields,
                                        size_t string_bytes) {
  size_t size = tks_dynobj_size(nfields, string_bytes);
  void *mem = tks_slab_alloc(st->slab, size);
  return mem ? tks_dynobj_init(mem, nfields, string_bytes) : NULL;
}

void tks_store_drop_dynobj(struct tks_store *st, struct tks_dynobj *obj) {
  if (obj) tks_slab_free(st->slab, obj, obj->bytes);
}

int tks_store_append_dynamic(struct tks_store *st, uint32_t symbol, int64_t ts,
                             struct tks_dynobj *obj) {
  struct dyn_entry e = {.ts = ts, .obj = obj, .symbol = symbol};
  if (set_append(st, &st->dyn, &e)) return -ENOMEM;
  st->obj_bytes += tks_slab_chunk_size(st->slab, tks_slab_class_for(st->slab, obj->bytes));
  st->obj_requested += obj->bytes;
  return 0;
}

uint64_t tks_store_ticks(const struct tks_store *st) {
  return st->slotted.entries + st->dyn.entries;
}
uint64_t tks_store_late_ticks(const struct tks_store *st) { return st->slotted.late + st->dyn.late; }

uint32_t tks_store_series_count(const struct tks_store *st) {
  uint32_t n = 0, cap = st->slotted.cap > st->dyn.cap ? st->slotted.cap : st->dyn.cap;
  for (uint32_t i = 0; i < cap; i++)
    if ((i < st->slotted.cap && st->slotted.series[i].count) ||
        (i < st->dyn.cap && st->dyn.series[i].count))
      n++;
  return n;
}

uint64_t tks_store_block_bytes(const struct tks_store *st) {
  return st->slotted.block_bytes + st->dyn.block_bytes;
}

uint64_t tks_store_index_bytes(const struct tks_store *st) {
  return sizeof *st + ((uint64_t)st->slotted.cap + st->dyn.cap) * sizeof(struct series) +
         st->slotted.blockidx_bytes + st->dyn.blockidx_bytes;
}

void tks_store_repr(const struct tks_store *st, struct tks_store_repr *out) {
  out->slotted_ticks = st->slotted.entries;
  out->slotted_bytes = st->slotted.block_bytes;
  out->dynamic_ticks = st->dyn.entries;
  out->dynamic_entry_bytes = st->dyn.block_bytes;
  out->dynamic_object_bytes = st->obj_bytes;
  out->dynamic_object_requested = st->obj_requested;
}

/* A position in one set's series. */
struct cur {
  const struct set *s;
  const struct block *b; /* NULL: past either end */
  uint32_t i;
};

static inline int64_t cur_ts(const struct cur *c) { return ent_ts(c->s, ent_at(c->s, c->b, c->i)); }

static inline void cur_next(struct cur *c) {
  if (++c->i >= c->b->count) {
    c->b = c->b->next;
    c->i = 0;
  }
}

static inline void cur_prev(struct cur *c) {
  if (c->i > 0) {
    c->i--;
  } else {
    c->b = c->b->prev;
    if (c->b) c->i = c->b->count - 1;
  }
}

static const struct series *get_series(const struct set *s, uint32_t sym) {
  if (sym >= s->cap || s->series[sym].count == 0) return NULL;
  return &s->series[sym];
}

/* Merges two forward cursors, visiting at most n entries with ts < to. */
static uint64_t merge_forward(const struct tks_store *st, struct cur *a, struct cur *d, int64_t to,
                              uint64_t n, tks_tick_fn fn, void *ctx) {
  uint64_t done = 0;
  while (done < n) {
    bool ha = a->b && cur_ts(a) < to, hd = d->b && cur_ts(d) < to;
    if (!ha && !hd) break;
    int stop;
    if (ha && (!hd || cur_ts(a) <= cur_ts(d))) {
      stop = fn(ctx, ent_at(a->s, a->b, a->i), NULL);
      cur_next(a);
    } else {
      const struct dyn_entry *e = (const struct dyn_entry *)ent_at(d->s, d->b, d->i);
      stop = fn(ctx, NULL, e->obj);
      cur_next(d);
    }
    done++;
    if (stop) break;
  }
  (void)st;
  return done;
}

/* The first entry of a series with ts >= from. */
static struct cur seek(const struct set *s, const struct series *sr, int64_t from) {
  struct cur c = {s, NULL, 0};
  if (!sr) return c;
  uint32_t lo = 0, hi = sr->nblocks; /* the first block ending at or after from */
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (last_ts(s, sr->blocks[mid]) < from)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < sr->nblocks) {
    c.b = sr->blocks[lo];
    c.i = lower_bound(s, c.b, from);
  }
  return c;
}

uint64_t tks_store_range(const struct tks_store *st, uint32_t symbol, int64_t from, int64_t to,
                         uint64_t limit, tks_tick_fn fn, void *ctx) {
  if (from >= to) return 0;
  struct cur a = seek(&st->slotted, get_series(&st->slotted, symbol), from);
  struct cur d = seek(&st->dyn, get_series(&st->dyn, symbol), from);
  return merge_forward(st, &a, &d, to, limit ? limit : UINT64_MAX, fn, ctx);
}

uint64_t tks_store_last(const struct tks_store *st, uint32_t symbol, uint64_t want, tks_tick_fn fn,
                        void *ctx) {
  const struct series *sa = get_series(&st->slotted, symbol), *sd = get_series(&st->dyn, symbol);
  struct cur a = {&st->slotted, sa ? sa->tail : NULL, sa ? sa->tail->count - 1 : 0};
  struct cur d = {&st->dyn, sd ? sd->tail : NULL, sd ? sd->tail->count - 1 : 0};
  /* Walk back over the newest `want`, newest first; on equal ts the dynamic
   * entry is taken first, as the forward merge visits it second. */
  uint64_t n = 0;
  for (; n < want && (a.b || d.b); n++) {
    if (d.b && (!a.b || cur_ts(&d) >= cur_ts(&a)))
      cur_prev(&d);
    else
      cur_prev(&a);
  }
  /* Each cursor now sits just before its first entry in the window. */
  if (a.b) cur_next(&a); else if (sa) a.b = sa->head, a.i = 0;
  if (d.b) cur_next(&d); else if (sd) d.b = sd->head, d.i = 0;
  return merge_forward(st, &a, &d, INT64_MAX, n, fn, ctx);
}

int tks_store_series(const struct tks_store *st, uint32_t symbol, struct tks_series_info *out) {
  const struct series *sa = get_series(&st->slotted, symbol), *sd = get_series(&st->dyn, symbol);
  if (!sa && !sd) return -ENOENT;
  out->symbol = symbol;
  out->count = (sa ? sa->count : 0) + (sd ? sd->count : 0);
  int64_t first = INT64_MAX, last = INT64_MIN;
  if (sa) {
    first = ent_ts(&st->slotted, ent_at(&st->slotted, sa->head, 0));
    last = ent_ts(&st->slotted, ent_at(&st->slotted, sa->tail, sa->tail->count - 1));
  }
  if (sd) {
    int64_t f = ent_ts(&st->dyn, ent_at(&st->dyn, sd->head, 0));
    int64_t l = ent_ts(&st->dyn, ent_at(&st->dyn, sd->tail, sd->tail->count - 1));
    if (f < first) first = f;
    if (l > last) last = l;
  }
  out->first_ts = first;
  out->last_ts = last;
  return 0;
}

uint32_t tks_store_symbol_limit(const struct tks_store *st) {
  return st->slotted.cap > st->dyn.cap ? st->slotted.cap : st->dyn.cap;
}

void tks_store_stats(const struct tks_store *st, struct tks_stats *s) {
  uint64_t ticks = tks_store_ticks(st);
  tks_stats_u64(s, "store.ticks", ticks, TKS_STAT_GAUGE, "Ticks held in the store", NULL, NULL);
  tks_stats_u64(s, "store.series", tks_store_series_count(st), TKS_STAT_GAUGE,
                "Symbols with at least one tick", NULL, NULL);
  tks_stats_u64(s, "store.late_ticks", tks_store_late_ticks(st), TKS_STAT_COUNTER,
                "Ticks inserted before the newest tick of their symbol", NULL, NULL);
  tks_stats_u64(s, "store.block_bytes", tks_store_block_bytes(st), TKS_STAT_GAUGE,
                "Bytes of slab chunks holding series blocks", NULL, NULL);
  tks_stats_u64(s, "store.record_bytes", st->slotted.entries * st->slotted.esize, TKS_STAT_GAUGE,
                "Bytes of the slotted records themselves (ticks times record size)", NULL, NULL);
  tks_stats_u64(s, "store.index_bytes", tks_store_index_bytes(st), TKS_STAT_GAUGE,
                "Bytes of the per-symbol series table", NULL, NULL);
}
