/*
 * The day archive: ticks of past UTC days, sealed on disk once and read
 * back as the store hands them out.  One directory per day, holding one or
 * more sealed parts (a part is one file, written once):
 *
 *   <dir>/2026-11-25/part-000001.tka      the day's first batch
 *   <dir>/2026-11-25/part-000002.tka      ticks of that day sealed later
 *                                         (late ticks, later evictions)
 *
 * A part holds, per symbol, blocks of up to block_ticks ticks sorted by ts,
 * each block columnar (ts deltas, each field of the records as a column of
 * its own, integers delta- and frame-of-reference coded, prices as decimal
 * integers where they are, strings as a per-block dictionary, the overflow
 * maps and dynamic objects as compact maps) and then one zstd frame; after
 * the blocks an index (zstd too): the schema the part was written with
 * (field names, types, record layout, mode), the symbols (name, count,
 * first and last ts) and per block its symbol, first and last ts, count,
 * offset, compressed and decompressed length and CRC32C; then a fixed-size
 * footer locating the index, with the part's totals and the id of the
 * seal that wrote it.  Symbols are kept as their text, never as live ids.
 *
 * Sealing is atomic: a part is written in <dir>/YYYY-MM-DD.tmp-<pid>/, its
 * file and that directory fsynced; the day's first part then renames the
 * whole directory to YYYY-MM-DD (and fsyncs <dir>), a later part renames
 * its file into the day's directory (and fsyncs that).  A *.tmp-<pid> or
 * *.del-<pid> directory whose process is gone (a crash) is ignored and
 * removed by the next writer or tks_archive_open().  One writer at a time
 * per archive directory (the daemon's lock file): part numbers are taken
 * as one more than the highest in the day.
 *
 * Seals: a writer may stamp its part with a seal id (opts.seal), so that a
 * part sealed by a process that crashed before it committed the seal
 * elsewhere (the daemon seals in a forked child and commits afterwards)
 * can be told apart: a handle's seal limit hides parts of higher seals
 * from every query, and tks_archive_remove_seals_above() deletes them.
 *
 * Reading goes through the layout the part was written with, into the
 * CURRENT schema's form: conversion is by field name (see tks_archive_view).
 * Order within a symbol is by ts, then arrival: within a part the order the
 * writer was given the ticks, then part by part.  Every length, count and
 * offset read from a file is checked before it is used, every block's CRC
 * before it is decompressed (to exactly the length the index gives), and a
 * part that does not verify fails the query that needs it (-EBADMSG, the
 * file named by tks_archive_error()): never a half-read answer.
 *
 * Not thread-safe: one thread uses an archive handle (and its cursors) at
 * a time; a writer is independent of any handle and may run on another
 * thread (it reads the tables it is given only inside writer_add()).
 */
#ifndef TKS_ARCHIVE_H
#define TKS_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dynobj.h"
#include "schema.h"
#include "store.h"

#define TKS_ARCHIVE_DEFAULT_LEVEL 3           /* zstd level: see bench/archive_bench.c */
#define TKS_ARCHIVE_DEFAULT_BLOCK_TICKS 16384 /* ticks a block, at most */
#define TKS_ARCHIVE_MIN_BLOCK_TICKS 16
#define TKS_ARCHIVE_MAX_BLOCK_TICKS 65536      /* a block with more is corrupt */
#define TKS_ARCHIVE_DEFAULT_BUFFER (64u << 20) /* writer memory before blocks are cut early */
#define TKS_ARCHIVE_MAX_BLOCK_RAW (64u << 20)  /* a block decompressed: larger is corrupt */
#define TKS_ARCHIVE_MAX_INDEX_RAW (256u << 20) /* an index decompressed: larger is corrupt */
#define TKS_ARCHIVE_MAX_OBJECT_FIELDS 85       /* what a dynobj index of bytes can hold */

struct tks_symtab;

/* ---- days ----------------------------------------------------------------- */

/* The UTC day of ts: days since 1970-01-01, rounded down (negative before). */
int32_t tks_archive_day_of(int64_t ts);
/* The first ns of day, clamped to INT64_MIN (the day of INT64_MIN starts
 * before it). */
int64_t tks_archive_day_start(int32_t day);
/* The last ns of day, clamped to INT64_MAX. */
int64_t tks_archive_day_end(int32_t day);
/* "YYYY-MM-DD" (proleptic Gregorian, UTC) into buf, NUL-terminated. */
void tks_archive_day_name(int32_t day, char buf[static 11]);
/* Parses exactly "YYYY-MM-DD" (s[0..len)), a real date whose ticks fit
 * int64 ns (1677-09-21 to 2262-04-11).  Returns 0 or -EINVAL. */
int tks_archive_day_parse(const char *s, size_t len, int32_t *day);

/* ---- writing a part ------------------------------------------------------- */

struct tks_archive_writer_opts {
  int level;             /* zstd level 1..19; 0: TKS_ARCHIVE_DEFAULT_LEVEL */
  uint32_t block_ticks;  /* MIN..MAX_BLOCK_TICKS; 0: TKS_ARCHIVE_DEFAULT_BLOCK_TICKS */
  uint64_t buffer_bytes; /* 0: TKS_ARCHIVE_DEFAULT_BUFFER (at least 1 MiB is used) */
  uint64_t seal;         /* the id of the seal writing the part, into its footer; 0: none */
};

/* The live tables the store's ids point into.  The writer reads them only
 * inside tks_archive_writer_add(), and resolves each id once: an id must
 * name the same string while the writer lives (tks_symtab_truncate() only
 * takes back ids that no stored tick holds, so the store's ids do). */
struct tks_archive_tables {
  const struct tks_symtab *symbols; /* symbol fields, SYM values */
  const struct tks_symtab *strings; /* string fields, ISTR values */
  const struct tks_symtab *names;   /* field names of dynamic objects and overflow maps */
};

struct tks_archive_writer;

/*
 * Starts a part of day in dir (created, mode 0750, if missing; stale
 * temporary directories are removed) for ticks of schema (copied) kept in
 * mode.  tables: copied, see above.  opts may be NULL.  Returns NULL with
 * err set ("dir: strerror", or the option that is out of range).
 */
struct tks_archive_writer *
tks_archive_writer_create(const char *dir, int32_t day, const struct tks_schema *schema,
                          enum tks_mode mode, const struct tks_archive_tables *tables,
                          const struct tks_archive_writer_opts *opts, char *err, size_t errlen);

/*
 * Adds one tick in the form a store visitor is given it (tks_tick_fn): a
 * slotted record (obj NULL), a record and its overflow map, or a dynamic
 * object (record NULL) holding the schema's ts and symbol fields.  Every
 * id is resolved to its text now.  Ticks may come in any order and any mix
 * of symbols; full blocks are compressed and written as they fill, and the
 * memory held stays near opts.buffer_bytes.  Returns 0; -ERANGE (ts not in
 * the writer's day) or -EINVAL (an id not in its table, a dynamic object
 * without a ts or symbol field): the tick is refused, the writer goes on;
 * -ENOMEM or -errno of a write: sticky, every later add and the seal fail
 * with it.
 */
int tks_archive_writer_add(struct tks_archive_writer *w, const void *record,
                           const struct tks_dynobj *obj);
/* tks_archive_writer_add() as a tks_tick_fn (ctx is the writer): 0, or 1
 * to stop the visit on an error (kept for the seal). */
int tks_archive_writer_visit(void *w, const void *record, const struct tks_dynobj *obj);
uint64_t tks_archive_writer_ticks(const struct tks_archive_writer *w);

/* What one sealed part holds (also what tks_archive_parts() tells). */
struct tks_archive_part_info {
  int32_t day;
  uint32_t part; /* its number in the day, from 1 */
  uint64_t ticks;
  uint64_t bytes; /* the file's size */
  uint32_t symbols;
  uint32_t blocks;
  int64_t first_ts, last_ts; /* INT64_MAX, INT64_MIN when empty */
  uint64_t seal;             /* opts.seal of its writer */
};

/*
 * Writes what is buffered, the index and the footer, makes the part
 * durable and visible (see the top of this file) and frees the writer.  A
 * writer that was given no tick writes nothing (out->ticks 0, out->part 0).
 * Returns 0, or the sticky error or -errno of the sealing, with err set;
 * the temporary directory is then removed and the day is as it was.  out
 * may be NULL.  The writer is freed in every case.
 */
int tks_archive_writer_seal(struct tks_archive_writer *w, struct tks_archive_part_info *out,
                            char *err, size_t errlen);
/* Discards the part (its temporary directory is removed).  NULL is a no-op. */
void tks_archive_writer_abort(struct tks_archive_writer *w);

/* ---- reading -------------------------------------------------------------- */

struct tks_archive;

/*
 * Opens the archive in dir for reading: lists its days and parts and reads
 * each part's footer (one pread a part: no index is read yet, so this does
 * not grow with the ticks held).  A missing dir is an empty archive.  Stale
 * temporary directories are removed.  A part whose footer does not verify
 * is listed as bad (tks_archive_day_info.bad_parts); queries over its day
 * then fail.  Returns NULL with err set when dir cannot be read.
 */
struct tks_archive *tks_archive_open(const char *dir, char *err, size_t errlen);
/* NULL is a no-op.  No cursor may outlive its archive. */
void tks_archive_close(struct tks_archive *a);
/* Lists dir again: parts sealed (or days deleted) since open are seen.
 * Parts already known keep their loaded index.  0 or -errno.  No cursor
 * may be open. */
int tks_archive_rescan(struct tks_archive *a);
/* The last error in words: the file, offset and what was wrong ("" if none). */
const char *tks_archive_error(const struct tks_archive *a);
/* What the queries have cost since open: blocks read (and decompressed),
 * indexes loaded. */
uint64_t tks_archive_blocks_read(const struct tks_archive *a);
uint64_t tks_archive_index_loads(const struct tks_archive *a);
/* Bytes the handle holds: its lists of days and parts, the indexes loaded
 * (kept until close or rescan; about 50 bytes a block and 40 a symbol of
 * each part read), the read buffer.  Not counting libzstd's context. */
uint64_t tks_archive_memory(const struct tks_archive *a);

struct tks_archive_day_info {
  int32_t day;
  char name[11]; /* "YYYY-MM-DD" */
  uint32_t parts;
  uint32_t bad_parts; /* parts whose header or footer does not verify */
  uint64_t ticks, bytes;
  int64_t first_ts, last_ts;
};
typedef int (*tks_archive_day_fn)(void *ctx, const struct tks_archive_day_info *d);
/* Visits the days, oldest first, from the footers.  Returns the days
 * visited (stops when fn returns non-zero). */
uint32_t tks_archive_days(const struct tks_archive *a, tks_archive_day_fn fn, void *ctx);

struct tks_archive_totals {
  uint32_t days, parts, bad_parts;
  uint64_t ticks, bytes; /* bytes: the part files */
};
void tks_archive_totals(const struct tks_archive *a, struct tks_archive_totals *out);

/* A symbol in the archive (name not NUL-terminated; valid during the call). */
struct tks_archive_symbol_info {
  const char *name;
  uint32_t len;
  uint64_t count;
  int64_t first_ts, last_ts;
};
typedef int (*tks_archive_symbol_fn)(void *ctx, const struct tks_archive_symbol_info *s);
/*
 * Visits every symbol of the days from first_day to last_day (inclusive;
 * INT32_MIN, INT32_MAX for all) once, in byte order of the names, with its
 * count and first and last ts over those days.  Loads the indexes of those
 * days.  Returns 0, or -EBADMSG (a part did not verify), -ENOMEM, -errno.
 */
int tks_archive_symbols(struct tks_archive *a, int32_t first_day, int32_t last_day,
                        tks_archive_symbol_fn fn, void *ctx);
/* One symbol over every day: 0 and *out (out->name is the argument), or
 * -ENOENT, or the errors of tks_archive_symbols(). */
int tks_archive_symbol(struct tks_archive *a, const char *name, size_t len,
                       struct tks_archive_symbol_info *out);

/*
 * How ticks are handed back: in the form of the CURRENT schema, ids in the
 * live tables given here.  By field name, from the layout a part was
 * written with:
 *  - a record (slotted or with an overflow map) whose fields all have
 *    current fields and convert to their types, by the decoder's rules
 *    (INT into timestamp, i64 and u32 in range, INT or F64 into a finite
 *    f64, strings into symbol and string, BOOL into bool), comes back as a
 *    record of the current layout; a current field the day lacks is taken
 *    from the overflow map if the map has it (a field declared since);
 *  - its fields the current schema does not declare go into an overflow
 *    map (obj beside the record);
 *  - a tick a current field cannot be filled for (a field the day lacks
 *    and the map does not have, a value that does not convert, a ts or
 *    symbol field of another name) comes back as a dynamic object of the
 *    fields it has (record NULL): the field is absent, not defaulted;
 *  - a dynamic object comes back as a dynamic object, its fields in their
 *    order.
 * Strings are interned into symbols (symbol fields, SYM values), strings
 * (string fields, ISTR values) and names (object keys); where a table is
 * full the value stays a plain string (STR) in a dynamic object.  A
 * record and object handed to a visitor are valid during the call only.
 */
struct tks_archive_view {
  const struct tks_schema *schema;
  struct tks_symtab *symbols;
  struct tks_symtab *strings;
  struct tks_symtab *names;
};

/*
 * Visits the ticks of symbol with from <= ts < to, oldest first (by ts,
 * then arrival), at most limit (0: no limit), as tks_store_range() does.
 * Reads only the blocks that hold such ticks.  Returns 0 and the ticks
 * visited in *visited (may be NULL), or -EBADMSG (a part or block that
 * does not verify: nothing wrong was visited, though ticks before it may
 * have been), -ENOSPC (no room for a field name in view->names), -E2BIG (a
 * tick that must come back as an object of more than
 * TKS_ARCHIVE_MAX_OBJECT_FIELDS fields), -ENOMEM, -errno.  An unknown
 * symbol visits nothing.
 */
int tks_archive_range(struct tks_archive *a, const struct tks_archive_view *v, const char *symbol,
                      size_t len, int64_t from, int64_t to, uint64_t limit, tks_tick_fn fn,
                      void *ctx, uint64_t *visited);
/* The newest n ticks of symbol, oldest first; reads only the newest blocks
 * (those that can hold one of the n).  Returns as tks_archive_range(). */
int tks_archive_last(struct tks_archive *a, const struct tks_archive_view *v, const char *symbol,
                     size_t len, uint64_t n, tks_tick_fn fn, void *ctx, uint64_t *visited);

/* A pull interface over the same ticks, for merging with the store: peek
 * at the next tick's ts, then take it. */
struct tks_archive_cursor;
struct tks_archive_tick {
  int64_t ts;
  const void *record;           /* current layout, or NULL */
  const struct tks_dynobj *obj; /* overflow map or dynamic object, or NULL */
};
/* A cursor over symbol's ticks with from <= ts <= to (to inclusive, so
 * INT64_MAX takes every tick).  NULL on ENOMEM.  *v is copied. */
struct tks_archive_cursor *tks_archive_cursor_create(struct tks_archive *a,
                                                     const struct tks_archive_view *v,
                                                     const char *symbol, size_t len, int64_t from,
                                                     int64_t to);
/* 1 and the next tick's ts, 0 at the end, or -errno as the range's. */
int tks_archive_cursor_peek(struct tks_archive_cursor *c, int64_t *ts);
/* 1 and the next tick (valid until the next call on c), 0 at the end, or -errno. */
int tks_archive_cursor_next(struct tks_archive_cursor *c, struct tks_archive_tick *t);
/* Passes over n ticks without converting them.  Returns how many it
 * passed over (fewer at the end), or -errno. */
int64_t tks_archive_cursor_skip(struct tks_archive_cursor *c, uint64_t n);
void tks_archive_cursor_destroy(struct tks_archive_cursor *c);

/*
 * Reads and checks every block of every part of day (all days with
 * INT32_MIN): CRCs, lengths, decoding, the counts and ts ranges the index
 * gives.  Returns 0, -EBADMSG (tks_archive_error() names the file) or
 * -errno.  *ticks (may be NULL) gets the ticks checked.
 */
int tks_archive_verify(struct tks_archive *a, int32_t day, uint64_t *ticks);

/* ---- retention ------------------------------------------------------------ */

/* What a deletion freed (tks_archive_retain(), _remove_seals_above()). */
struct tks_archive_freed {
  uint32_t days;
  uint32_t parts;
  uint64_t ticks, bytes;
};
/*
 * Deletes every day before first_kept_day (whole directories: renamed to
 * *.del-<pid> first, so a crash leaves nothing half-deleted visible), and
 * says what it freed in *out (parts hidden by the seal limit included).
 * Returns 0 or the first -errno (the days before it are gone).  No cursor
 * may be open.
 */
int tks_archive_retain(struct tks_archive *a, int32_t first_kept_day,
                       struct tks_archive_freed *out);

/* ---- seals ---------------------------------------------------------------- */

/* A part as its footer tells it; bad: its header or footer (or, once
 * loaded, its index) does not verify.  Of a part whose footer does not
 * verify only day, part and bytes are known (the rest 0, first_ts and
 * last_ts INT64_MAX and INT64_MIN, seal 0). */
typedef int (*tks_archive_part_fn)(void *ctx, const struct tks_archive_part_info *p, bool bad);
/* Visits every part, oldest day first and in part order within a day, bad
 * ones and those the seal limit hides too, from the footers (no index is
 * read).  Returns the parts visited (stops when fn returns non-zero). */
uint32_t tks_archive_parts(const struct tks_archive *a, tks_archive_part_fn fn, void *ctx);

/*
 * Hides the parts of a seal above max_seal from every query of a:
 * tks_archive_days(), _totals(), _symbols(), _symbol(), _range(), _last(),
 * cursors and _verify() act as if they were absent (tks_archive_parts()
 * and _max_seal() still see them).  UINT64_MAX (the default) hides
 * nothing; raising the limit again shows them (their indexes are loaded
 * when a query first needs them).  Kept across tks_archive_rescan().  A
 * cursor already open sees the new limit for the days it has yet to reach.
 */
void tks_archive_set_seal_limit(struct tks_archive *a, uint64_t max_seal);
/* The highest seal id of any part, hidden or not (0 when none): a new seal
 * takes an id above it. */
uint64_t tks_archive_max_seal(const struct tks_archive *a);
/*
 * Deletes every part of a seal above max_seal: unlinks its file and fsyncs
 * its day's directory; a day directory left empty is removed (and the
 * archive directory fsynced).  A crash midway leaves some of them, which a
 * second call removes.  Bad parts whose footer does not verify (seal 0)
 * are never removed.  *out (may be NULL) gets what went (days: the
 * directories removed).  Returns 0 or the first -errno (the parts before
 * it are gone, the rest stay).  No cursor may be open, and no writer may
 * be sealing into the archive meanwhile.
 */
int tks_archive_remove_seals_above(struct tks_archive *a, uint64_t max_seal,
                                   struct tks_archive_freed *out);

#endif
