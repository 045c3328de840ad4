/*
 * The tick store: ticks kept per symbol in time order, in two
 * representations: slotted records of the schema's fields, and dynamic
 * objects (dynobj.h) for ticks that do not fit it.  Each symbol's series is
 * a doubly linked chain of blocks; a block is one slab chunk holding a
 * small header and up to N entries of one fixed-width packed layout (the
 * series key left out, ts relative to the block's first, each integer in
 * the bytes its values need), so a record costs its packed size plus 1/N
 * of a header, and entry i is found by multiplication.  In-order ticks are
 * appended to the newest block; a late tick is inserted at its place (the
 * block is split when full).  Blocks start small and double up to
 * TKS_STORE_BLOCK_MAX, so a symbol with few ticks wastes little.  Queries
 * merge both by ts and see records unpacked to the schema's layout.
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

/* The bytes of an overflow entry (fallback mode) unpacked: the slotted
 * record rounded up to 8 bytes, the pointer to its overflow map, then its
 * ties (uint32: the slotted ticks of its symbol and ts that arrived before
 * it, so that equal ts come back in arrival order) and 4 bytes of padding.
 * The one place this layout is spelled out. */
static inline uint32_t tks_store_overflow_entry_size(uint32_t record_size) {
  return ((record_size + 7) & ~7u) + (uint32_t)sizeof(void *) + 8;
}
/* What an overflow entry takes in its block at most beside the record: the
 * map pointer (its ties take no bytes unless ticks tie). */
#define TKS_STORE_OVERFLOW_ENTRY_EXTRA ((uint32_t)sizeof(void *))
struct tks_store;

/* The three representations, in the order queries merge equal ts.  Each
 * symbol has one series per representation. */
enum tks_store_rep { TKS_STORE_SLOTTED, TKS_STORE_OVERFLOW, TKS_STORE_DYNAMIC, TKS_STORE_REPS };

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
/* Ticks that arrived older than their symbol's newest tick, in any
 * representation (inserted in place). */
uint64_t tks_store_late_ticks(const struct tks_store *st);
uint32_t tks_store_series_count(const struct tks_store *st);
uint64_t tks_store_block_bytes(const struct tks_store *st); /* slab chunk bytes of blocks */
uint64_t tks_store_index_bytes(const struct tks_store *st); /* the per-symbol table */

/* Returns 0 and fills *out, or -ENOENT if symbol has no ticks. */
int tks_store_series(const struct tks_store *st, uint32_t symbol, struct tks_series_info *out);

/* One block of a series as stored. */
struct tks_store_block_info {
  uint32_t count;       /* entries held */
  uint32_t cap;         /* entries that fit in its layout */
  uint32_t bytes;       /* its slab chunk */
  uint32_t entry_bytes; /* an entry packed */
};
/* Block i (0 the oldest) of symbol's series of rep.  Returns 0 and fills
 * *out, or -ENOENT past the last block. */
int tks_store_block_info(const struct tks_store *st, enum tks_store_rep rep, uint32_t symbol,
                         uint32_t i, struct tks_store_block_info *out);

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
 * Eviction, for memory limits and retention.  Every call removes a prefix
 * of series (the oldest entries first), with every object an overflow or
 * dynamic entry removed points to, and gives the chunks back to the slab's
 * free lists, where the next appends of the same size classes find them
 * (the slab keeps its pages: RSS does not shrink, it stops growing).
 * evict_oldest and evict_before free whole blocks; evict_head and
 * trim_before are exact, and may also remove the first entries of a head
 * block (its objects are freed, the block stays).  Every counter follows:
 * ticks, series, block, index and object bytes, evicted ticks and bytes.
 */

/*
 * The eviction observer: called with every run of entries an eviction call
 * (evict_oldest, evict_before, evict_head, trim_before) removes, before they
 * are freed: count entries of rep and symbol, tks_store_entry_size bytes
 * each, in the layout tks_store_entry_ts/tks_store_entry_obj read, valid
 * during the call only.  Runs of one series come oldest first, and a call
 * may report one series in several runs (one per block).  It lets a caller
 * journal what an eviction removed (per rep and symbol, a count) and repeat
 * it with tks_store_evict_head.  The observer must not change the store.
 * tks_store_destroy does not call it.
 */
typedef void (*tks_store_evict_fn)(void *ctx, enum tks_store_rep rep, uint32_t symbol,
                                   const void *entries, uint32_t count);
/* Sets the observer (fn NULL: none). */
void tks_store_set_evict_hook(struct tks_store *st, tks_store_evict_fn fn, void *ctx);

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

/*
 * Removes exactly the n oldest entries of one series (all of them if it
 * holds fewer): whole head blocks while they fit in what is left, then the
 * first entries of the next block (moved down in it; the block stays, so
 * only its objects' chunks are given back).  The series holds its entries
 * in ts order, ties in arrival order, whatever the cut of its blocks, so a
 * store loaded from a checkpoint (whose blocks are packed differently)
 * loses the same ticks.  Returns the entries removed (0 for a rep out of
 * range or a symbol without that series).
 */
uint64_t tks_store_evict_head(struct tks_store *st, enum tks_store_rep rep, uint32_t symbol,
                              uint64_t n);

/*
 * Retention, exact: removes every entry with ts < before_ts, in every
 * series and representation (a prefix of each: whole blocks, then part of
 * a head block).  Entries at before_ts stay.  Cost: one pass over the
 * series table, O(1) per block freed and a binary search per series cut.
 * Returns the entries removed.
 */
uint64_t tks_store_trim_before(struct tks_store *st, int64_t before_ts);

/* The entries with ts < before_ts, exactly (a binary search per series). */
uint64_t tks_store_count_before(const struct tks_store *st, int64_t before_ts);

/*
 * What tks_store_evict_oldest(st, bytes) would free, as a ts cut, without
 * changing the store: X + 1 for the newest tick X of the last block it
 * would free, so tks_store_trim_before(cut) removes at least those blocks
 * (and a little more: the other blocks whose newest tick is X, and the
 * entries older than the cut of the blocks kept).  When the whole store
 * holds less than bytes, the newest ts of all + 1.  Saturates at INT64_MAX
 * (a tick at INT64_MAX is then never below the cut).  INT64_MIN when the
 * store is empty or bytes is 0.  *ticks_below (may be NULL): the ticks of
 * the blocks whose newest tick is below the cut, which trim_before(cut)
 * frees whole (a lower bound of what it removes).  Cost: evict_oldest's
 * heap (malloc of 24 bytes per series, freed before it returns), or
 * without memory a scan per distinct newest ts of the blocks counted.
 */
int64_t tks_store_cut_for_bytes(const struct tks_store *st, uint64_t bytes, uint64_t *ticks_below);

/* Ticks evicted so far (every eviction call), and the chunk bytes they
 * gave back. */
uint64_t tks_store_evicted_ticks(const struct tks_store *st);
uint64_t tks_store_evicted_bytes(const struct tks_store *st);

/*
 * Checkpoints (lib/checkpoint.c): a walk over the blocks of every series for
 * the writer, and a bulk append for the loader.  The entry layouts stay
 * here; the checkpoint reads and builds entries through these calls.
 */

/* Bytes of one entry of rep: the record (slotted), the record rounded up
 * plus the map pointer (overflow, tks_store_overflow_entry_size), or ts,
 * object pointer and symbol (dynamic). */
uint32_t tks_store_entry_size(const struct tks_store *st, enum tks_store_rep rep);
/* An entry's ts, and the object it points to (NULL for a slotted entry).
 * A slotted or overflow entry begins with its record. */
int64_t tks_store_entry_ts(const struct tks_store *st, enum tks_store_rep rep, const void *entry);
const struct tks_dynobj *tks_store_entry_obj(const struct tks_store *st, enum tks_store_rep rep,
                                             const void *entry);
/* An overflow entry's ties: the slotted ticks of its symbol and ts that
 * arrived before it (0 for the other representations).  A merge of the
 * series puts it before the slotted entry of its ts that has that many
 * before it, and after the others: arrival order. */
uint32_t tks_store_entry_ties(const struct tks_store *st, enum tks_store_rep rep,
                              const void *entry);
/* Writes one entry of rep into entry (tks_store_entry_size bytes): from the
 * record (slotted, overflow), the object (overflow map, dynamic object), and
 * for a dynamic entry symbol and ts. */
void tks_store_entry_make(const struct tks_store *st, enum tks_store_rep rep, void *entry,
                          const void *record, uint32_t symbol, int64_t ts, struct tks_dynobj *obj);

/* The largest unpacked entry (an overflow entry of the largest record),
 * and how many entries a walk unpacks at a time. */
#define TKS_STORE_ENTRY_MAX (TKS_RECORD_MAX + 16)
#define TKS_STORE_WALK_CHUNK 64

/* A walk over the entries of one series, oldest first, unpacked a part of
 * a block at a time. */
struct tks_store_walk {
  const void *set;  /* the series' representation */
  const void *next; /* the block being read, or NULL */
  uint32_t at;      /* its next entry */
  uint32_t symbol;
  _Alignas(8) char buf[TKS_STORE_WALK_CHUNK * TKS_STORE_ENTRY_MAX];
};
void tks_store_walk_begin(const struct tks_store *st, enum tks_store_rep rep, uint32_t symbol,
                          struct tks_store_walk *w);
/* The next entries, *count of them (1 to TKS_STORE_WALK_CHUNK, from one
 * block) in ts order, unpacked: tks_store_entry_size bytes each, valid until
 * the next call or until the store changes.  False at the end. */
bool tks_store_walk_next(struct tks_store_walk *w, const void **entries, uint32_t *count);

/*
 * Appends n entries of rep (built as tks_store_entry_make does) to the end
 * of symbol's series, as in-order appends would: the tail block is filled,
 * then new blocks are made with the sizes and layouts appends give them.  The
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
