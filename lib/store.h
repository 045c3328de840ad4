/*
 * The tick store: ticks kept per symbol in time order, in two
 * representations: slotted records of the schema's fixed layout, and
 * dynamic objects (dynobj.h) for ticks that do not fit it.  Each symbol's
 * series is a doubly linked chain of blocks; a block is one slab chunk
 * holding a small header and up to N entries, so a record costs its
 * record_size plus 1/N of a header.  In-order ticks are appended to the
 * newest block; a late tick is inserted at its place (the block is split
 * when full).  Blocks start small and double up to TKS_STORE_BLOCK_MAX, so
 * a symbol with few ticks wastes little.  Queries merge both by ts.
 */
#ifndef TKS_STORE_H
#define TKS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dynobj.h"
#include "schema.h"

#define TKS_STORE_BLOCK_MIN 512
#define TKS_STORE_BLOCK_MAX 4096

struct tks_slab;
struct tks_stats;

/* The bytes of an overflow entry (fallback mode): the slotted record
 * rounded up to 8 bytes, then the pointer to its overflow map.  The one
 * place this layout is spelled out. */
static inline uint32_t tks_store_overflow_entry_size(uint32_t record_size) {
  return ((record_size + 7) & ~7u) + (uint32_t)sizeof(void *);
}
struct tks_store;

struct tks_series_info {
  uint32_t symbol;
  uint64_t count;
  int64_t first_ts;
  int64_t last_ts;
};

/* The store keeps pointers to schema and slab; both must outlive it.
 * Returns NULL on ENOMEM. */
struct tks_store *tks_store_create(const struct tks_schema *schema, struct tks_slab *slab);
/* Returns every block to the slab.  NULL is a no-op. */
void tks_store_destroy(struct tks_store *st);

/*
 * Copies one record (schema->record_size bytes; the series key is the
 * symbol field, the order key the ts field) into the store.  Returns 0 or
 * -ENOMEM (slab full or limit reached: nothing was stored).
 */
int tks_store_append(struct tks_store *st, const void *record);

/*
 * Dynamic ticks: make an object sized for nfields and string_bytes from the
 * store's slab (NULL when out of memory), fill it with tks_dynobj_put(), then
 * hand it to tks_store_append_dynamic(), which takes it over; on failure
 * (-ENOMEM) the caller gives it back with tks_store_drop_dynobj().
 */
struct tks_dynobj *tks_store_new_dynobj(struct tks_store *st, unsigned nfields,
                                        size_t string_bytes);
int tks_store_append_dynamic(struct tks_store *st, uint32_t symbol, int64_t ts,
                             struct tks_dynobj *obj);
void tks_store_drop_dynobj(struct tks_store *st, struct tks_dynobj *obj);
/* True when an object of nfields and string_bytes fits one slab chunk at
 * all (no larger than a slab page): one that does not can never be stored,
 * however much memory is freed. */
bool tks_store_dynobj_fits(const struct tks_store *st, unsigned nfields, size_t string_bytes);
/* Fallback ticks: the slotted record plus an overflow map (a dynamic object
 * holding the fields the schema does not declare), taken over on success. */
int tks_store_append_overflow(struct tks_store *st, const void *record,
                              struct tks_dynobj *overflow);

/* What an overflow map costs beyond the tick's slotted record: the map's
 * slab chunk plus the entry's pointer to it.  The store alone knows the
 * overflow entry's layout and the slab's chunk sizes. */
uint64_t tks_store_overflow_cost(const struct tks_store *st, const struct tks_dynobj *map);

/* True when the store can take another full-size block without memory
 * being freed first: its slab class has a chunk to give, or a new slab page
 * fits under the slab's limit.  (A tick that needs another class may still
 * find none.) */
bool tks_store_has_room(const struct tks_store *st);

/* Memory per representation. */
struct tks_store_repr {
  uint64_t slotted_ticks;
  uint64_t slotted_bytes;            /* block chunks of slotted series */
  uint64_t overflow_ticks;           /* slotted record + overflow map (fallback) */
  uint64_t overflow_entry_bytes;     /* block chunks of overflow series */
  uint64_t overflow_map_bytes;       /* slab chunks of the overflow maps */
  uint64_t dynamic_ticks;
  uint64_t dynamic_entry_bytes;      /* block chunks of dynamic series */
  uint64_t dynamic_object_bytes;     /* slab chunks of the objects */
  uint64_t dynamic_object_requested; /* bytes the objects asked for */
};
void tks_store_repr(const struct tks_store *st, struct tks_store_repr *out);

/* One more than the largest symbol id that may have ticks. */
uint32_t tks_store_symbol_limit(const struct tks_store *st);

uint64_t tks_store_ticks(const struct tks_store *st);
uint64_t tks_store_late_ticks(const struct tks_store *st); /* inserted out of order */
uint32_t tks_store_series_count(const struct tks_store *st);
uint64_t tks_store_block_bytes(const struct tks_store *st); /* slab chunk bytes of blocks */
uint64_t tks_store_index_bytes(const struct tks_store *st); /* the per-symbol table */

/* Returns 0 and fills *out, or -ENOENT if symbol has no ticks. */
int tks_store_series(const struct tks_store *st, uint32_t symbol, struct tks_series_info *out);

/* Visitor: given a slotted record (obj NULL), a dynamic object holding
 * every field (record NULL), or, for a fallback tick, both: the record and
 * its overflow map of undeclared fields.  Return 0 to go on, non-zero to
 * stop. */
typedef int (*tks_tick_fn)(void *ctx, const void *record, const struct tks_dynobj *obj);

/* Visits the records of symbol with from <= ts < to, oldest first, at most
 * limit (0 = no limit).  Returns the number visited. */
uint64_t tks_store_range(const struct tks_store *st, uint32_t symbol, int64_t from, int64_t to,
                         uint64_t limit, tks_tick_fn fn, void *ctx);
/* Visits the newest n records of symbol, oldest first.  Returns the number visited. */
uint64_t tks_store_last(const struct tks_store *st, uint32_t symbol, uint64_t n, tks_tick_fn fn,
                        void *ctx);

/*
 * Eviction, for memory limits and retention.  Both free whole blocks, the
 * oldest of a series first (its head), with every object an overflow or
 * dynamic entry of the block points to, and give the chunks back to the
 * slab's free lists, where the next appends of the same size classes find
 * them (the slab keeps its pages: RSS does not shrink, it stops growing).
 * Every counter follows: ticks, series, block, index and object bytes.
 */

/*
 * Frees oldest blocks until at least `bytes` of block and object chunks went
 * back to the slab, or the store is empty.  "Oldest" is across every symbol
 * and representation: the head block whose newest tick is the oldest goes
 * first, so the newest ticks of every symbol are the last to go and what
 * stays of a series is still in time order.  Returns the bytes freed (0 if
 * the store was empty or bytes is 0).
 *
 * Cost: one pass over the series table to build a min-heap of head blocks
 * (O(S) for S series with ticks, a malloc of 16 bytes per series), then
 * O(log S) per block freed, then one memmove per series touched to fix
 * its block array.  At 10,000 symbols, evicting 1 MiB (about 256 blocks of
 * 4 KiB) is one scan, not one per block.  If the heap cannot be allocated
 * it falls back to a scan per block: slower, same result.
 */
uint64_t tks_store_evict_oldest(struct tks_store *st, uint64_t bytes);

/*
 * Retention: frees every block whose newest tick is older than before_ts
 * (ts < before_ts).  Block-granular: a block that holds any tick at or
 * after before_ts stays whole, so ticks older than before_ts can remain
 * (at most one block's worth per series and representation, TKS_STORE_BLOCK_MAX
 * bytes).  Cost: one pass over the series table plus O(1) per block freed.
 * Returns the ticks evicted.
 */
uint64_t tks_store_evict_before(struct tks_store *st, int64_t before_ts);

/* Ticks evicted so far (both calls), and the chunk bytes they gave back. */
uint64_t tks_store_evicted_ticks(const struct tks_store *st);
uint64_t tks_store_evicted_bytes(const struct tks_store *st);

/*
 * Checkpoints (lib/checkpoint.c): a walk over the blocks of every series for
 * the writer, and a bulk append for the loader.  The entry layouts stay
 * here; the checkpoint reads and builds entries through these calls.
 */

/* The three representations, in the order queries merge equal ts. */
enum tks_store_rep { TKS_STORE_SLOTTED, TKS_STORE_OVERFLOW, TKS_STORE_DYNAMIC, TKS_STORE_REPS };

/* Bytes of one entry of rep: the record (slotted), the record rounded up
 * plus the map pointer (overflow, tks_store_overflow_entry_size), or ts,
 * object pointer and symbol (dynamic). */
uint32_t tks_store_entry_size(const struct tks_store *st, enum tks_store_rep rep);
/* An entry's ts, and the object it points to (NULL for a slotted entry).
 * A slotted or overflow entry begins with its record. */
int64_t tks_store_entry_ts(const struct tks_store *st, enum tks_store_rep rep, const void *entry);
const struct tks_dynobj *tks_store_entry_obj(const struct tks_store *st, enum tks_store_rep rep,
                                             const void *entry);
/* Writes one entry of rep into entry (tks_store_entry_size bytes): from the
 * record (slotted, overflow), the object (overflow map, dynamic object), and
 * for a dynamic entry symbol and ts. */
void tks_store_entry_make(const struct tks_store *st, enum tks_store_rep rep, void *entry,
                          const void *record, uint32_t symbol, int64_t ts, struct tks_dynobj *obj);

/* A walk over the blocks of one series, oldest first. */
struct tks_store_walk {
  const void *next; /* the next block, or NULL */
};
void tks_store_walk_begin(const struct tks_store *st, enum tks_store_rep rep, uint32_t symbol,
                          struct tks_store_walk *w);
/* The next block's entries, *count of them in ts order (tks_store_entry_size
 * bytes each, valid until the store changes).  False at the end. */
bool tks_store_walk_next(struct tks_store_walk *w, const void **entries, uint32_t *count);

/*
 * Appends n entries of rep (built as tks_store_entry_make does) to the end
 * of symbol's series, copied a block at a time: the tail block is filled,
 * then new blocks are made with the sizes in-order appends give them.  The
 * entries must carry symbol, be in ts order and none be older than the
 * series' newest tick: otherwise -EINVAL and nothing is appended.  Returns 0
 * or -EINVAL or -ENOMEM; *done is how many were appended (on -ENOMEM the
 * first *done stay), and the store owns the objects of those, the caller the
 * rest's.
 */
int tks_store_append_many(struct tks_store *st, enum tks_store_rep rep, uint32_t symbol,
                          const void *entries, uint32_t n, uint32_t *done);

/* An object copied from src (len bytes, an object's whole size as
 * tks_dynobj_check() accepts it) into a chunk of the store's slab, for
 * tks_store_entry_make; NULL when out of memory or larger than a slab
 * page.  Given back with tks_store_drop_dynobj unless an append takes it. */
struct tks_dynobj *tks_store_copy_dynobj(struct tks_store *st, const void *src, size_t len);

/* Adds "store.*" figures. */
void tks_store_stats(const struct tks_store *st, struct tks_stats *s);

#endif
