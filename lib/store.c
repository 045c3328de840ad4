/*
 * The tick store.  Each symbol has up to three series, one per
 * representation: slotted records (the schema's fixed layout); overflow
 * entries, a slotted record followed by a pointer to an overflow map (a
 * dynamic object of the fields the schema does not declare: fallback
 * mode); and dynamic entries (ts, object pointer, symbol: 24 bytes; the
 * object holds every field: dynamic mode).  Objects are slab chunks.  A series is a doubly linked chain of blocks in time
 * order; a block is one slab chunk: a 32-byte header, then entries sorted
 * by ts.  Appending in order touches only the tail block; a late tick is
 * inserted by binary search into the block that covers its ts, splitting
 * the block when it is full.  Blocks grow from TKS_STORE_BLOCK_MIN to
 * TKS_STORE_BLOCK_MAX bytes.  Queries merge the series of a symbol by ts.
 * Eviction (memory limits, retention) frees whole head blocks: the oldest
 * across all series through a heap of head blocks, or every block older
 * than a cutoff; the exact calls then cut the first entries off a head
 * block.  An observer sees every run of entries removed, before it goes.
 */
#include "store.h"

#include <assert.h>
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

enum { SET_SLOTTED, SET_OVERFLOW, SET_DYNAMIC, NSETS }; /* also the order of ties */
_Static_assert(SET_SLOTTED == (int)TKS_STORE_SLOTTED && SET_OVERFLOW == (int)TKS_STORE_OVERFLOW &&
                   SET_DYNAMIC == (int)TKS_STORE_DYNAMIC && NSETS == (int)TKS_STORE_REPS,
               "the public representations are the sets");

struct tks_store {
  const struct tks_schema *schema;
  struct tks_slab *slab;
  struct set sets[NSETS];
  uint32_t ovf_off;                /* offset of the overflow pointer in an overflow entry */
  uint64_t obj_bytes[NSETS];       /* slab chunk bytes of objects (overflow maps, dynamic) */
  uint64_t obj_requested[NSETS];   /* bytes the objects asked for */
  uint64_t evicted_ticks, evicted_bytes;
  /* The eviction observer (tks_store_set_evict_hook), or NULL. */
  tks_store_evict_fn evict_fn;
  void *evict_ctx;
};

struct tks_store *tks_store_create(const struct tks_schema *schema, struct tks_slab *slab) {
  struct tks_store *st = calloc(1, sizeof *st);
  if (!st) return NULL;
  st->schema = schema;
  st->slab = slab;
  uint32_t ts_off = schema->fields[schema->ts_field].offset;
  uint32_t sym_off = schema->fields[schema->symbol_field].offset;
  st->sets[SET_SLOTTED] = (struct set){.esize = schema->record_size, .ts_off = ts_off, .sym_off = sym_off};
  uint32_t ovf_size = tks_store_overflow_entry_size(schema->record_size);
  st->ovf_off = ovf_size - (uint32_t)sizeof(struct tks_dynobj *);
  st->sets[SET_OVERFLOW] = (struct set){.esize = ovf_size, .ts_off = ts_off, .sym_off = sym_off};
  st->sets[SET_DYNAMIC] = (struct set){.esize = sizeof(struct dyn_entry),
                                       .ts_off = offsetof(struct dyn_entry, ts),
                                       .sym_off = offsetof(struct dyn_entry, symbol)};
  return st;
}

/* The object an entry of set k points to, or NULL. */
static struct tks_dynobj *entry_obj(const struct tks_store *st, int k, const char *e) {
  struct tks_dynobj *o = NULL;
  if (k == SET_OVERFLOW) memcpy(&o, e + st->ovf_off, sizeof o);
  if (k == SET_DYNAMIC) o = ((const struct dyn_entry *)e)->obj;
  return o;
}

static void set_free(struct tks_store *st, int k) {
  struct set *s = &st->sets[k];
  for (uint32_t i = 0; i < s->cap; i++) {
    free(s->series[i].blocks);
    struct block *b = s->series[i].head;
    while (b) {
      struct block *next = b->next;
      for (uint32_t j = 0; k != SET_SLOTTED && j < b->count; j++) {
        struct tks_dynobj *o = entry_obj(st, k, (char *)(b + 1) + (size_t)j * s->esize);
        tks_slab_free(st->slab, o, o->bytes);
      }
      tks_slab_free(st->slab, b, b->bytes);
      b = next;
    }
  }
  free(s->series);
}

void tks_store_destroy(struct tks_store *st) {
  if (!st) return;
  for (int k = 0; k < NSETS; k++) set_free(st, k);
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
  uint64_t want = s->cap ? s->cap : 64; /* 64-bit: doubling past 2^31 must not wrap */
  while (want <= sym) want *= 2;
  uint32_t cap = want > UINT32_MAX ? UINT32_MAX : (uint32_t)want;
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
  return set_append(st, &st->sets[SET_SLOTTED], record);
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

bool tks_store_dynobj_fits(const struct tks_store *st, unsigned nfields, size_t string_bytes) {
  return tks_dynobj_size(nfields, string_bytes) <= tks_slab_page_size(st->slab);
}

uint64_t tks_store_overflow_cost(const struct tks_store *st, const struct tks_dynobj *map) {
  return tks_slab_chunk_size(st->slab, tks_slab_class_for(st->slab, map->bytes)) + sizeof map;
}

bool tks_store_has_room(const struct tks_store *st) {
  /* The steady state allocates blocks of the largest size (block_new). */
  size_t want = sizeof(struct block) + 8 * (size_t)st->sets[SET_OVERFLOW].esize;
  if (want < TKS_STORE_BLOCK_MAX) want = TKS_STORE_BLOCK_MAX;
  return tks_slab_can_alloc(st->slab, want);
}

static void count_obj(struct tks_store *st, int k, const struct tks_dynobj *obj) {
  st->obj_bytes[k] += tks_slab_chunk_size(st->slab, tks_slab_class_for(st->slab, obj->bytes));
  st->obj_requested[k] += obj->bytes;
}

int tks_store_append_dynamic(struct tks_store *st, uint32_t symbol, int64_t ts,
                             struct tks_dynobj *obj) {
  struct dyn_entry e = {.ts = ts, .obj = obj, .symbol = symbol};
  if (set_append(st, &st->sets[SET_DYNAMIC], &e)) return -ENOMEM;
  count_obj(st, SET_DYNAMIC, obj);
  return 0;
}

int tks_store_append_overflow(struct tks_store *st, const void *record, struct tks_dynobj *overflow) {
  _Alignas(8) char e[TKS_RECORD_MAX + 16];
  memcpy(e, record, st->schema->record_size);
  memset(e + st->schema->record_size, 0, st->ovf_off - st->schema->record_size);
  memcpy(e + st->ovf_off, &overflow, sizeof overflow);
  if (set_append(st, &st->sets[SET_OVERFLOW], e)) return -ENOMEM;
  count_obj(st, SET_OVERFLOW, overflow);
  return 0;
}

uint64_t tks_store_ticks(const struct tks_store *st) {
  uint64_t n = 0;
  for (int k = 0; k < NSETS; k++) n += st->sets[k].entries;
  return n;
}

uint64_t tks_store_late_ticks(const struct tks_store *st) {
  uint64_t n = 0;
  for (int k = 0; k < NSETS; k++) n += st->sets[k].late;
  return n;
}

static const struct series *get_series(const struct set *s, uint32_t sym) {
  if (sym >= s->cap || s->series[sym].count == 0) return NULL;
  return &s->series[sym];
}

uint32_t tks_store_symbol_limit(const struct tks_store *st) {
  uint32_t cap = 0;
  for (int k = 0; k < NSETS; k++)
    if (st->sets[k].cap > cap) cap = st->sets[k].cap;
  return cap;
}

uint32_t tks_store_series_count(const struct tks_store *st) {
  uint32_t n = 0, cap = tks_store_symbol_limit(st);
  for (uint32_t i = 0; i < cap; i++) {
    bool any = false;
    for (int k = 0; k < NSETS; k++) any |= get_series(&st->sets[k], i) != NULL;
    n += any;
  }
  return n;
}

uint64_t tks_store_block_bytes(const struct tks_store *st) {
  uint64_t n = 0;
  for (int k = 0; k < NSETS; k++) n += st->sets[k].block_bytes;
  return n;
}

uint64_t tks_store_index_bytes(const struct tks_store *st) {
  uint64_t n = sizeof *st;
  for (int k = 0; k < NSETS; k++)
    n += (uint64_t)st->sets[k].cap * sizeof(struct series) + st->sets[k].blockidx_bytes;
  return n;
}

void tks_store_repr(const struct tks_store *st, struct tks_store_repr *out) {
  const struct set *sl = &st->sets[SET_SLOTTED], *ov = &st->sets[SET_OVERFLOW],
                   *dy = &st->sets[SET_DYNAMIC];
  out->slotted_ticks = sl->entries;
  out->slotted_bytes = sl->block_bytes;
  out->overflow_ticks = ov->entries;
  out->overflow_entry_bytes = ov->block_bytes;
  out->overflow_map_bytes = st->obj_bytes[SET_OVERFLOW];
  out->dynamic_ticks = dy->entries;
  out->dynamic_entry_bytes = dy->block_bytes;
  out->dynamic_object_bytes = st->obj_bytes[SET_DYNAMIC];
  out->dynamic_object_requested = st->obj_requested[SET_DYNAMIC];
}

/* A position in one set's series. */
struct cur {
  const struct set *s;
  int k;                 /* which set */
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

/* Merges forward cursors (one per set), visiting at most n entries with
 * ts < to, oldest first; ties in set order. */
static uint64_t merge_forward(const struct tks_store *st, struct cur *c, int64_t to, bool bounded,
                              uint64_t n, tks_tick_fn fn, void *ctx) {
  uint64_t done = 0;
  while (done < n) {
    struct cur *best = NULL;
    int64_t best_ts = 0;
    for (int k = 0; k < NSETS; k++) {
      if (!c[k].b) continue;
      int64_t t = cur_ts(&c[k]);
      if ((!bounded || t < to) && (!best || t < best_ts)) best = &c[k], best_ts = t;
    }
    if (!best) break;
    const char *e = ent_at(best->s, best->b, best->i);
    const struct tks_dynobj *o = entry_obj(st, best->k, e);
    int stop = fn(ctx, best->k == SET_DYNAMIC ? NULL : e, o);
    cur_next(best);
    done++;
    if (stop) break;
  }
  return done;
}

/* The first entry of a series with ts >= from. */
static struct cur seek(const struct tks_store *st, int k, uint32_t symbol, int64_t from) {
  const struct set *s = &st->sets[k];
  const struct series *sr = get_series(s, symbol);
  struct cur c = {s, k, NULL, 0};
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
  struct cur c[NSETS];
  for (int k = 0; k < NSETS; k++) c[k] = seek(st, k, symbol, from);
  return merge_forward(st, c, to, true, limit ? limit : UINT64_MAX, fn, ctx);
}

uint64_t tks_store_last(const struct tks_store *st, uint32_t symbol, uint64_t want, tks_tick_fn fn,
                        void *ctx) {
  struct cur c[NSETS];
  const struct series *sr[NSETS];
  for (int k = 0; k < NSETS; k++) {
    sr[k] = get_series(&st->sets[k], symbol);
    c[k] = (struct cur){&st->sets[k], k, sr[k] ? sr[k]->tail : NULL, sr[k] ? sr[k]->tail->count - 1 : 0};
  }
  /* Walk back over the newest `want`, newest first; on equal ts the set
   * that the forward merge visits last is taken first. */
  uint64_t n = 0;
  for (; n < want; n++) {
    struct cur *best = NULL;
    int64_t best_ts = 0;
    for (int k = NSETS - 1; k >= 0; k--) {
      if (!c[k].b) continue;
      int64_t t = cur_ts(&c[k]);
      if (!best || t > best_ts) best = &c[k], best_ts = t;
    }
    if (!best) break;
    cur_prev(best);
  }
  /* Each cursor now sits just before its first entry in the window. */
  for (int k = 0; k < NSETS; k++) {
    if (c[k].b)
      cur_next(&c[k]);
    else if (sr[k])
      c[k].b = sr[k]->head, c[k].i = 0;
  }
  return merge_forward(st, c, INT64_MAX, false, n, fn, ctx); /* a tick at INT64_MAX counts too */
}

int tks_store_series(const struct tks_store *st, uint32_t symbol, struct tks_series_info *out) {
  out->symbol = symbol;
  out->count = 0;
  out->first_ts = INT64_MAX;
  out->last_ts = INT64_MIN;
  for (int k = 0; k < NSETS; k++) {
    const struct set *s = &st->sets[k];
    const struct series *sr = get_series(s, symbol);
    if (!sr) continue;
    out->count += sr->count;
    int64_t f = first_ts(s, sr->head), l = last_ts(s, sr->tail);
    if (f < out->first_ts) out->first_ts = f;
    if (l > out->last_ts) out->last_ts = l;
  }
  return out->count ? 0 : -ENOENT;
}

/* ---- checkpoints ---- */

uint32_t tks_store_entry_size(const struct tks_store *st, enum tks_store_rep rep) {
  return st->sets[rep].esize;
}

int64_t tks_store_entry_ts(const struct tks_store *st, enum tks_store_rep rep, const void *entry) {
  return ent_ts(&st->sets[rep], entry);
}

const struct tks_dynobj *tks_store_entry_obj(const struct tks_store *st, enum tks_store_rep rep,
                                             const void *entry) {
  return entry_obj(st, (int)rep, entry);
}

void tks_store_entry_make(const struct tks_store *st, enum tks_store_rep rep, void *entry,
                          const void *record, uint32_t symbol, int64_t ts, struct tks_dynobj *obj) {
  char *e = entry;
  uint32_t rs = st->schema->record_size;
  switch (rep) {
  case TKS_STORE_SLOTTED: memcpy(e, record, rs); break;
  case TKS_STORE_OVERFLOW:
    memcpy(e, record, rs);
    memset(e + rs, 0, st->ovf_off - rs);
    memcpy(e + st->ovf_off, &obj, sizeof obj);
    break;
  case TKS_STORE_DYNAMIC: {
    struct dyn_entry d = {.ts = ts, .obj = obj, .symbol = symbol};
    memcpy(e, &d, sizeof d);
    break;
  }
  case TKS_STORE_REPS: break;
  }
}

void tks_store_walk_begin(const struct tks_store *st, enum tks_store_rep rep, uint32_t symbol,
                          struct tks_store_walk *w) {
  const struct series *sr = get_series(&st->sets[rep], symbol);
  w->next = sr ? sr->head : NULL;
}

bool tks_store_walk_next(struct tks_store_walk *w, const void **entries, uint32_t *count) {
  const struct block *b = w->next;
  if (!b) return false;
  *entries = b + 1;
  *count = b->count;
  w->next = b->next;
  return true;
}

int tks_store_append_many(struct tks_store *st, enum tks_store_rep rep, uint32_t symbol,
                          const void *entries, uint32_t n, uint32_t *done) {
  struct set *s = &st->sets[rep];
  *done = 0;
  if (n == 0) return 0;
  /* The series' invariants are checked before anything is copied. */
  const struct series *old = symbol < s->cap ? &s->series[symbol] : NULL;
  int64_t prev = old && old->tail ? last_ts(s, old->tail) : INT64_MIN;
  const char *src = entries;
  for (uint32_t i = 0; i < n; i++) {
    const char *e = src + (size_t)i * s->esize;
    uint32_t sym;
    memcpy(&sym, e + s->sym_off, sizeof sym);
    int64_t ts = ent_ts(s, e);
    if (sym != symbol || ts < prev) return -EINVAL;
    prev = ts;
  }
  if (ensure_series(s, symbol)) return -ENOMEM;
  struct series *sr = &s->series[symbol];
  while (*done < n) {
    struct block *b = sr->tail;
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
    uint32_t k = b->cap - b->count;
    if (k > n - *done) k = n - *done;
    char *dst = ent_at(s, b, b->count);
    memcpy(dst, src + (size_t)*done * s->esize, (size_t)k * s->esize);
    for (uint32_t j = 0; rep != TKS_STORE_SLOTTED && j < k; j++)
      count_obj(st, (int)rep, entry_obj(st, (int)rep, dst + (size_t)j * s->esize));
    b->count += k;
    if (sr->count == 0) s->used++;
    sr->count += k;
    s->entries += k;
    *done += k;
  }
  return 0;
}

struct tks_dynobj *tks_store_copy_dynobj(struct tks_store *st, const void *src, size_t len) {
  if (len > tks_slab_page_size(st->slab)) return NULL;
  void *mem = tks_slab_alloc(st->slab, len);
  if (mem) memcpy(mem, src, len);
  return mem;
}

/* ---- eviction ---- */

void tks_store_set_evict_hook(struct tks_store *st, tks_store_evict_fn fn, void *ctx) {
  st->evict_fn = fn;
  st->evict_ctx = ctx;
}

/* Shows the observer the first n entries of block b of series sr of set k,
 * about to be removed. */
static void observe(const struct tks_store *st, int k, const struct series *sr,
                    const struct block *b, uint32_t n) {
  if (!st->evict_fn || n == 0) return;
  uint32_t sym = (uint32_t)(sr - st->sets[k].series);
  st->evict_fn(st->evict_ctx, (enum tks_store_rep)k, sym, ent_at(&st->sets[k], b, 0), n);
}

/* Frees the objects of the first n entries of b (set k), uncounting them.
 * Returns their chunk bytes. */
static uint64_t free_objs(struct tks_store *st, int k, const struct block *b, uint32_t n) {
  uint64_t freed = 0;
  for (uint32_t j = 0; k != SET_SLOTTED && j < n; j++) {
    struct tks_dynobj *o = entry_obj(st, k, ent_at(&st->sets[k], b, j));
    uint64_t chunk = tks_slab_chunk_size(st->slab, tks_slab_class_for(st->slab, o->bytes));
    st->obj_bytes[k] -= chunk;
    st->obj_requested[k] -= o->bytes;
    freed += chunk;
    tks_slab_free(st->slab, o, o->bytes);
  }
  return freed;
}

/* Frees the head block of series sr of set k and the objects its entries
 * point to.  sr->blocks still lists it: fix_blocks() drops the freed blocks
 * from the array afterwards, once per series.  Returns the chunk bytes
 * given back to the slab; adds the block's ticks to *ticks. */
static uint64_t free_head(struct tks_store *st, int k, struct series *sr, uint64_t *ticks) {
  struct set *s = &st->sets[k];
  struct block *b = sr->head;
  observe(st, k, sr, b, b->count);
  uint64_t freed = b->bytes + free_objs(st, k, b, b->count);
  sr->head = b->next;
  if (sr->head)
    sr->head->prev = NULL;
  else
    sr->tail = NULL;
  sr->count -= b->count;
  s->entries -= b->count;
  if (sr->count == 0) s->used--;
  s->block_bytes -= b->bytes;
  st->evicted_ticks += b->count;
  st->evicted_bytes += freed;
  *ticks += b->count;
  tks_slab_free(st->slab, b, b->bytes);
  return freed;
}

/* Removes the first n entries of the head block of series sr of set k,
 * fewer than it holds: the block stays (so the series and its block array
 * do too), its other entries move down.  Returns the object chunk bytes
 * given back. */
static uint64_t cut_head(struct tks_store *st, int k, struct series *sr, uint32_t n) {
  struct set *s = &st->sets[k];
  struct block *b = sr->head;
  assert(n < b->count);
  if (n == 0) return 0;
  observe(st, k, sr, b, n);
  uint64_t freed = free_objs(st, k, b, n);
  memmove(ent_at(s, b, 0), ent_at(s, b, n), (size_t)(b->count - n) * s->esize);
  b->count -= n;
  sr->count -= n;
  s->entries -= n;
  st->evicted_ticks += n;
  st->evicted_bytes += freed;
  return freed;
}

/* Drops from sr->blocks the leading blocks free_head() freed: those before
 * the current head (all of them when the series is empty; its array is
 * then released).  Compares pointers only: the freed blocks are not read. */
static void fix_blocks(struct set *s, struct series *sr) {
  if (sr->nblocks == 0 || sr->blocks[0] == sr->head) return;
  if (!sr->head) {
    s->blockidx_bytes -= (uint64_t)sr->bcap * sizeof *sr->blocks;
    free(sr->blocks);
    sr->blocks = NULL;
    sr->nblocks = sr->bcap = 0;
    return;
  }
  uint32_t n = 1;
  while (sr->blocks[n] != sr->head) n++;
  sr->nblocks -= n;
  memmove(sr->blocks, sr->blocks + n, (size_t)sr->nblocks * sizeof *sr->blocks);
}

/* A series in the eviction heap, keyed by the newest ts of its head block. */
struct cand {
  int64_t key;
  uint32_t sym, k;
};

static inline bool cand_less(const struct cand *a, const struct cand *b) {
  if (a->key != b->key) return a->key < b->key;
  return a->k != b->k ? a->k < b->k : a->sym < b->sym;
}

static void sift_down(struct cand *h, size_t n, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, m = i;
    if (l < n && cand_less(&h[l], &h[m])) m = l;
    if (l + 1 < n && cand_less(&h[l + 1], &h[m])) m = l + 1;
    if (m == i) return;
    struct cand t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
}

/* Without memory for the heap: one scan of every series per block. */
static uint64_t evict_oldest_scan(struct tks_store *st, uint64_t bytes) {
  uint64_t freed = 0, ticks = 0;
  while (freed < bytes) {
    struct cand best = {0};
    bool found = false;
    for (uint32_t k = 0; k < NSETS; k++) {
      const struct set *s = &st->sets[k];
      for (uint32_t i = 0; i < s->cap; i++) {
        if (!s->series[i].count) continue;
        struct cand c = {last_ts(s, s->series[i].head), i, k};
        if (!found || cand_less(&c, &best)) best = c, found = true;
      }
    }
    if (!found) break;
    struct set *s = &st->sets[best.k];
    freed += free_head(st, (int)best.k, &s->series[best.sym], &ticks);
    fix_blocks(s, &s->series[best.sym]);
  }
  return freed;
}

uint64_t tks_store_evict_oldest(struct tks_store *st, uint64_t bytes) {
  if (bytes == 0) return 0;
  size_t n = 0;
  for (int k = 0; k < NSETS; k++) n += st->sets[k].used;
  if (n == 0) return 0;
  struct cand *h = malloc(n * sizeof *h);
  if (!h) return evict_oldest_scan(st, bytes);
  size_t total = 0;
  for (uint32_t k = 0; k < NSETS; k++) {
    const struct set *s = &st->sets[k];
    for (uint32_t i = 0; i < s->cap && total < n; i++)
      if (s->series[i].count) h[total++] = (struct cand){last_ts(s, s->series[i].head), i, k};
  }
  assert(total == n);
  for (size_t i = n / 2; i-- > 0;) sift_down(h, n, i);
  /* The heap is h[0, n); a series emptied by eviction leaves it by swapping
   * with the last, so h[0, total) keeps every series touched, for the
   * block arrays to be fixed once each at the end. */
  uint64_t freed = 0, ticks = 0;
  while (freed < bytes && n > 0) {
    struct set *s = &st->sets[h[0].k];
    struct series *sr = &s->series[h[0].sym];
    freed += free_head(st, (int)h[0].k, sr, &ticks);
    if (sr->head) {
      h[0].key = last_ts(s, sr->head);
    } else {
      struct cand t = h[0];
      h[0] = h[--n];
      h[n] = t;
    }
    sift_down(h, n, 0);
  }
  for (size_t i = 0; i < total; i++) {
    struct set *s = &st->sets[h[i].k];
    fix_blocks(s, &s->series[h[i].sym]);
  }
  free(h);
  return freed;
}

uint64_t tks_store_evict_before(struct tks_store *st, int64_t before_ts) {
  uint64_t ticks = 0;
  for (int k = 0; k < NSETS; k++) {
    struct set *s = &st->sets[k];
    for (uint32_t i = 0; i < s->cap && s->used; i++) {
      struct series *sr = &s->series[i];
      if (!sr->count || last_ts(s, sr->head) >= before_ts) continue;
      /* Blocks are in time order, so their newest ticks are too. */
      while (sr->head && last_ts(s, sr->head) < before_ts) free_head(st, k, sr, &ticks);
      fix_blocks(s, sr);
    }
  }
  return ticks;
}

uint64_t tks_store_evict_head(struct tks_store *st, enum tks_store_rep rep, uint32_t symbol,
                              uint64_t n) {
  if ((unsigned)rep >= NSETS || symbol >= st->sets[rep].cap) return 0;
  struct set *s = &st->sets[rep];
  struct series *sr = &s->series[symbol];
  uint64_t done = 0;
  while (sr->head && sr->head->count <= n - done) free_head(st, (int)rep, sr, &done);
  fix_blocks(s, sr);
  if (sr->head && done < n) {
    cut_head(st, (int)rep, sr, (uint32_t)(n - done)); /* less than the block holds */
    done = n;
  }
  return done;
}

uint64_t tks_store_trim_before(struct tks_store *st, int64_t before_ts) {
  uint64_t ticks = 0;
  for (int k = 0; k < NSETS; k++) {
    struct set *s = &st->sets[k];
    for (uint32_t i = 0; i < s->cap && s->used; i++) {
      struct series *sr = &s->series[i];
      if (!sr->count || first_ts(s, sr->head) >= before_ts) continue;
      while (sr->head && last_ts(s, sr->head) < before_ts) free_head(st, k, sr, &ticks);
      fix_blocks(s, sr);
      if (sr->head) {
        uint32_t n = lower_bound(s, sr->head, before_ts);
        cut_head(st, k, sr, n);
        ticks += n;
      }
    }
  }
  return ticks;
}

uint64_t tks_store_count_before(const struct tks_store *st, int64_t before_ts) {
  uint64_t n = 0;
  for (int k = 0; k < NSETS; k++) {
    const struct set *s = &st->sets[k];
    for (uint32_t i = 0; i < s->cap; i++) {
      const struct series *sr = &s->series[i];
      if (!sr->count || first_ts(s, sr->head) >= before_ts) continue;
      uint32_t lo = 0, hi = sr->nblocks; /* the first block ending at or after before_ts */
      while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (last_ts(s, sr->blocks[mid]) < before_ts)
          lo = mid + 1;
        else
          hi = mid;
      }
      /* Count whichever side of that block is shorter. */
      uint64_t below = 0;
      if (lo <= sr->nblocks / 2) {
        for (uint32_t j = 0; j < lo; j++) below += sr->blocks[j]->count;
      } else {
        below = sr->count;
        for (uint32_t j = lo; j < sr->nblocks; j++) below -= sr->blocks[j]->count;
      }
      if (lo < sr->nblocks) below += lower_bound(s, sr->blocks[lo], before_ts);
      n += below;
    }
  }
  return n;
}

/* The chunk bytes free_head() would give back for b of set k. */
static uint64_t block_cost(const struct tks_store *st, int k, const struct block *b) {
  uint64_t n = b->bytes;
  for (uint32_t j = 0; k != SET_SLOTTED && j < b->count; j++) {
    const struct tks_dynobj *o = entry_obj(st, k, ent_at(&st->sets[k], b, j));
    n += tks_slab_chunk_size(st->slab, tks_slab_class_for(st->slab, o->bytes));
  }
  return n;
}

/* cut_for_bytes' heap: the next block evict_oldest would take of a series. */
struct peek {
  int64_t key; /* its newest ts */
  const struct block *b;
  uint32_t k;
};

static void peek_sift_down(struct peek *h, size_t n, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, m = i;
    if (l < n && h[l].key < h[m].key) m = l;
    if (l + 1 < n && h[l + 1].key < h[m].key) m = l + 1;
    if (m == i) return;
    struct peek t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
}

static inline int64_t cut_after(int64_t x) { return x == INT64_MAX ? INT64_MAX : x + 1; }

/* The first block of sr whose newest ts is above x (any block: above
 * nothing), or sr->nblocks. */
static uint32_t first_block_above(const struct set *s, const struct series *sr, bool any,
                                  int64_t x) {
  uint32_t lo = 0, hi = sr->nblocks;
  while (!any && lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (last_ts(s, sr->blocks[mid]) <= x)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/*
 * Without memory for the heap.  evict_oldest takes blocks in the order of
 * their newest ts (each series' chain is in that order), so the cut is
 * after the smallest newest ts X at which the blocks ending at or before X
 * reach bytes: two scans (a binary search per series) per distinct X.
 */
static int64_t cut_scan(const struct tks_store *st, uint64_t bytes, uint64_t *ticks_below) {
  uint64_t acc = 0, ticks = 0;
  int64_t x = INT64_MIN;
  for (bool any = true; acc < bytes; any = false) {
    bool found = false;
    int64_t next = 0;
    for (int k = 0; k < NSETS; k++) {
      const struct set *s = &st->sets[k];
      for (uint32_t i = 0; i < s->cap; i++) {
        const struct series *sr = &s->series[i];
        uint32_t j = sr->count ? first_block_above(s, sr, any, x) : sr->nblocks;
        if (j == sr->nblocks) continue;
        int64_t t = last_ts(s, sr->blocks[j]);
        if (!found || t < next) next = t, found = true;
      }
    }
    if (!found) break;
    for (int k = 0; k < NSETS; k++) {
      const struct set *s = &st->sets[k];
      for (uint32_t i = 0; i < s->cap; i++) {
        const struct series *sr = &s->series[i];
        uint32_t j = sr->count ? first_block_above(s, sr, any, x) : sr->nblocks;
        for (; j < sr->nblocks && last_ts(s, sr->blocks[j]) == next; j++) {
          acc += block_cost(st, k, sr->blocks[j]);
          ticks += sr->blocks[j]->count;
        }
      }
    }
    x = next;
  }
  if (ticks_below) *ticks_below = ticks;
  return cut_after(x);
}

int64_t tks_store_cut_for_bytes(const struct tks_store *st, uint64_t bytes, uint64_t *ticks_below) {
  if (ticks_below) *ticks_below = 0;
  size_t n = 0;
  for (int k = 0; k < NSETS; k++) n += st->sets[k].used;
  if (bytes == 0 || n == 0) return INT64_MIN;
  struct peek *h = malloc(n * sizeof *h);
  if (!h) return cut_scan(st, bytes, ticks_below);
  size_t total = 0;
  for (uint32_t k = 0; k < NSETS; k++) {
    const struct set *s = &st->sets[k];
    for (uint32_t i = 0; i < s->cap && total < n; i++) {
      const struct block *b = s->series[i].count ? s->series[i].head : NULL;
      if (b) h[total++] = (struct peek){last_ts(s, b), b, k};
    }
  }
  assert(total == n);
  for (size_t i = n / 2; i-- > 0;) peek_sift_down(h, n, i);
  /* Blocks in evict_oldest's order until bytes is reached, then the rest
   * of the blocks ending at the same ts, which the cut takes too. */
  uint64_t acc = 0, ticks = 0;
  int64_t x = INT64_MIN;
  while (n > 0 && (acc < bytes || h[0].key == x)) {
    const struct block *b = h[0].b;
    x = h[0].key;
    acc += block_cost(st, (int)h[0].k, b);
    ticks += b->count;
    if (b->next)
      h[0] = (struct peek){last_ts(&st->sets[h[0].k], b->next), b->next, h[0].k};
    else
      h[0] = h[--n];
    peek_sift_down(h, n, 0);
  }
  free(h);
  if (ticks_below) *ticks_below = ticks;
  return cut_after(x);
}

uint64_t tks_store_evicted_ticks(const struct tks_store *st) { return st->evicted_ticks; }
uint64_t tks_store_evicted_bytes(const struct tks_store *st) { return st->evicted_bytes; }

static const struct tks_stat ST_STORE_TICKS = TKS_STAT("store.ticks", GAUGE, TICKS,
                                                       "Ticks held in the store");
static const struct tks_stat ST_STORE_SERIES = TKS_STAT("store.series", GAUGE, NONE,
                                                        "Symbols with at least one tick");
static const struct tks_stat ST_STORE_LATE_TICKS = TKS_STAT(
    "store.late_ticks", COUNTER, TICKS, "Ticks inserted before the newest tick of their symbol");
static const struct tks_stat ST_STORE_BLOCK_BYTES = TKS_STAT(
    "store.block_bytes", GAUGE, BYTES, "Bytes of slab chunks holding series blocks");
static const struct tks_stat ST_STORE_RECORD_BYTES = TKS_STAT(
    "store.record_bytes", GAUGE, BYTES,
    "Bytes of the slotted records themselves (ticks times record size)");
static const struct tks_stat ST_STORE_INDEX_BYTES = TKS_STAT(
    "store.index_bytes", GAUGE, BYTES, "Bytes of the per-symbol series tables and block arrays");
static const struct tks_stat ST_STORE_SLOTTED_TICKS = TKS_STAT("store.slotted.ticks", GAUGE, TICKS,
                                                               "Ticks held as slotted records");
static const struct tks_stat ST_STORE_SLOTTED_BYTES = TKS_STAT(
    "store.slotted.bytes", GAUGE, BYTES, "Bytes of the blocks holding slotted records");
static const struct tks_stat ST_STORE_SLOTTED_BYTES_PER_TICK = TKS_STAT(
    "store.slotted.bytes_per_tick", GAUGE, BYTES_PER_TICK,
    "Bytes per slotted tick (records and their blocks)");
static const struct tks_stat ST_STORE_OVERFLOW_TICKS = TKS_STAT(
    "store.overflow.ticks", GAUGE, TICKS,
    "Ticks held as a slotted record plus an overflow map (fallback mode)");
static const struct tks_stat ST_STORE_OVERFLOW_BYTES = TKS_STAT(
    "store.overflow.bytes", GAUGE, BYTES, "Bytes of overflow entries and their maps");
static const struct tks_stat ST_STORE_OVERFLOW_BYTES_PER_TICK = TKS_STAT(
    "store.overflow.bytes_per_tick", GAUGE, BYTES_PER_TICK,
    "Bytes per overflow tick (record, map pointer, map)");
static const struct tks_stat ST_STORE_OVERFLOW_MAP_BYTES = TKS_STAT(
    "store.overflow.map_bytes", GAUGE, BYTES, "Slab chunk bytes of the overflow maps");
static const struct tks_stat ST_STORE_OVERFLOW_ENTRY_BYTES = TKS_STAT(
    "store.overflow.entry_bytes", GAUGE, BYTES, "Bytes of the blocks holding overflow entries");
static const struct tks_stat ST_STORE_DYNAMIC_TICKS = TKS_STAT("store.dynamic.ticks", GAUGE, TICKS,
                                                               "Ticks held as dynamic objects");
static const struct tks_stat ST_STORE_DYNAMIC_BYTES = TKS_STAT(
    "store.dynamic.bytes", GAUGE, BYTES, "Bytes of dynamic objects and their series entries");
static const struct tks_stat ST_STORE_DYNAMIC_BYTES_PER_TICK = TKS_STAT(
    "store.dynamic.bytes_per_tick", GAUGE, BYTES_PER_TICK,
    "Bytes per dynamic tick (object chunk and series entry)");
static const struct tks_stat ST_STORE_DYNAMIC_OBJECT_BYTES = TKS_STAT(
    "store.dynamic.object_bytes", GAUGE, BYTES, "Slab chunk bytes of dynamic objects");
static const struct tks_stat ST_STORE_DYNAMIC_OBJECT_REQUESTED_BYTES = TKS_STAT(
    "store.dynamic.object_requested_bytes", GAUGE, BYTES,
    "Bytes the dynamic objects asked for (the rest is chunk waste)");
static const struct tks_stat ST_STORE_DYNAMIC_ENTRY_BYTES = TKS_STAT(
    "store.dynamic.entry_bytes", GAUGE, BYTES,
    "Bytes of the blocks holding dynamic series entries");

void tks_store_stats(const struct tks_store *st, struct tks_stats *s) {
  uint64_t ticks = tks_store_ticks(st);
  tks_stat_u64(s, &ST_STORE_TICKS, ticks);
  tks_stat_u64(s, &ST_STORE_SERIES, tks_store_series_count(st));
  tks_stat_u64(s, &ST_STORE_LATE_TICKS, tks_store_late_ticks(st));
  tks_stat_u64(s, &ST_STORE_BLOCK_BYTES, tks_store_block_bytes(st));
  tks_stat_u64(s, &ST_STORE_RECORD_BYTES,
               (st->sets[SET_SLOTTED].entries + st->sets[SET_OVERFLOW].entries) *
                   st->schema->record_size);
  tks_stat_u64(s, &ST_STORE_INDEX_BYTES, tks_store_index_bytes(st));

  struct tks_store_repr r;
  tks_store_repr(st, &r);
  uint64_t obytes = r.overflow_entry_bytes + r.overflow_map_bytes;
  uint64_t dbytes = r.dynamic_object_bytes + r.dynamic_entry_bytes;
#define PER(b, n) ((n) ? (double)(b) / (double)(n) : 0.0)
  tks_stat_u64(s, &ST_STORE_SLOTTED_TICKS, r.slotted_ticks);
  tks_stat_u64(s, &ST_STORE_SLOTTED_BYTES, r.slotted_bytes);
  tks_stat_f64(s, &ST_STORE_SLOTTED_BYTES_PER_TICK, PER(r.slotted_bytes, r.slotted_ticks));
  tks_stat_u64(s, &ST_STORE_OVERFLOW_TICKS, r.overflow_ticks);
  tks_stat_u64(s, &ST_STORE_OVERFLOW_BYTES, obytes);
  tks_stat_f64(s, &ST_STORE_OVERFLOW_BYTES_PER_TICK, PER(obytes, r.overflow_ticks));
  tks_stat_u64(s, &ST_STORE_OVERFLOW_MAP_BYTES, r.overflow_map_bytes);
  tks_stat_u64(s, &ST_STORE_OVERFLOW_ENTRY_BYTES, r.overflow_entry_bytes);
  tks_stat_u64(s, &ST_STORE_DYNAMIC_TICKS, r.dynamic_ticks);
  tks_stat_u64(s, &ST_STORE_DYNAMIC_BYTES, dbytes);
  tks_stat_f64(s, &ST_STORE_DYNAMIC_BYTES_PER_TICK, PER(dbytes, r.dynamic_ticks));
  tks_stat_u64(s, &ST_STORE_DYNAMIC_OBJECT_BYTES, r.dynamic_object_bytes);
  tks_stat_u64(s, &ST_STORE_DYNAMIC_OBJECT_REQUESTED_BYTES, r.dynamic_object_requested);
  tks_stat_u64(s, &ST_STORE_DYNAMIC_ENTRY_BYTES, r.dynamic_entry_bytes);
#undef PER
}
