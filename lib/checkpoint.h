/*
 * Checkpoints: the store written to one file as a snapshot of its series
 * (what Redis's RDB is to its AOF), so that a start loads it and replays
 * only the journal segments written after it.  A file is 16 bytes
 * ("TKSCKPT1", u32 format version, u32 0), then chunks
 *   u32 type | u32 payload length | u32 CRC32C of type, length, payload | payload
 * (little-endian), in this order: HEADER (the schema as it was, every
 * field's name, type, required flag, default, offset and size; the mode;
 * the counts; the journal segment replay resumes at), the symbol, string
 * and field-name tables (ids 1, 2, ... in order, so they come back
 * identical), TICKS, and END with the totals, so that a file cut anywhere
 * is refused.  TICKS holds each symbol's ticks in time order across its
 * three representations (ties in the store's order), as runs
 *   u32 symbol | u32 representation | u32 count | u32 0 | count entries
 * of records copied raw (slotted), a record then u32 size, u32 0 and its
 * overflow map inline (overflow), or i64 ts, u32 size, u32 0 and the object
 * inline (dynamic): maps and objects are pointer-free (dynobj.h), and every
 * size is a multiple of 8, so each lies 8-aligned in a chunk.  Records are
 * in the writer's byte order, which the header names.
 *
 * A file is named "checkpoint-<20-digit N>.tkc": every tick in it is in
 * the journal segments before N, every later one in N and after, so a
 * start loads it and replays from segment N.
 */
#ifndef TKS_CHECKPOINT_H
#define TKS_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "schema.h"
#include "store.h"

#define TKS_CHECKPOINT_VERSION 1
#define TKS_CHECKPOINT_CHUNK (4u << 20)      /* payload bytes the writer puts in a chunk */
#define TKS_CHECKPOINT_MAX_CHUNK (64u << 20) /* a longer length field is corruption */
#define TKS_CHECKPOINT_NAME_MAX 48           /* "checkpoint-<20 digits>.tkc.tmp" and its NUL */

struct tks_symtab;
struct tks_usage;

/* What a file holds, as its header says (and its END confirms). */
struct tks_checkpoint_info {
  uint64_t next_segment; /* N: replay resumes at journal segment N */
  int64_t created_ns;    /* wall clock when it was written */
  enum tks_mode mode;
  char schema_name[TKS_FIELD_NAME_MAX];
  unsigned nfields;
  uint64_t ticks, series;
  uint64_t rep_ticks[TKS_STORE_REPS]; /* slotted, overflow, dynamic */
  uint32_t symbols, strings, names;   /* ids in the three tables */
  uint64_t bytes;                     /* of the file */
  uint64_t chunks;                    /* END included */
};

/* ---- writing ------------------------------------------------------------ */

/* What a checkpoint is written from: the daemon's store and tables, as
 * they are (the caller keeps them unchanged while it writes). */
struct tks_checkpoint_src {
  const struct tks_schema *schema;
  enum tks_mode mode;
  const struct tks_store *store;
  const struct tks_symtab *symbols, *strings, *names;
  uint64_t next_segment;
  int64_t created_ns;
};

/*
 * Writes the whole checkpoint to fd from its current offset, in chunks of
 * about TKS_CHECKPOINT_CHUNK bytes, each one write(2).  The caller fsyncs
 * and renames (or uses tks_checkpoint_save).  Fills *out when not NULL.
 * Returns 0 or -errno (-ENOSPC, -EIO, -ENOMEM for the buffer).
 *
 * Safe in a child forked from a threaded process (the daemon writes from a
 * fork): the buffer comes from mmap, nothing takes a lock or uses stdio.
 */
int tks_checkpoint_write(int fd, const struct tks_checkpoint_src *src,
                         struct tks_checkpoint_info *out);

/* "checkpoint-<20-digit seq>.tkc" into out. */
void tks_checkpoint_name(char out[TKS_CHECKPOINT_NAME_MAX], uint64_t seq);
/* True for such a name (nothing else), with its sequence in *seq. */
bool tks_checkpoint_parse_name(const char *name, uint64_t *seq);

/*
 * Writes src into "<dir>/checkpoint-<N>.tkc.tmp" (N = src->next_segment; a
 * stale file of that name is replaced), fsyncs it, renames it to
 * "checkpoint-<N>.tkc" and fsyncs dir, so the file appears whole or not at
 * all.  On failure the temp file is removed and err says why ("path:
 * what").  Returns 0 or -errno.  Fork-safe as tks_checkpoint_write is.
 */
int tks_checkpoint_save(const char *dir, const struct tks_checkpoint_src *src,
                        struct tks_checkpoint_info *out, char *err, size_t errlen);

/*
 * The sequence numbers of the checkpoints in dir, newest (largest) first:
 * up to cap of them in seqs, *n set to how many there are.  A missing dir
 * has none.  Returns 0 or -errno.  (opendir's malloc is the one allocation;
 * glibc's malloc is usable after fork.)
 */
int tks_checkpoint_list(const char *dir, uint64_t *seqs, size_t cap, size_t *n);

/*
 * Removes every checkpoint of dir but the newest `keep`, and every
 * "*.tkc.tmp" a crash left, then fsyncs dir.  *oldest_kept (when not NULL)
 * is the N of the oldest checkpoint kept, 0 when none is left: the journal
 * segments before it are covered and may go.  Returns 0 or -errno (what
 * could be removed is removed).
 */
int tks_checkpoint_prune(const char *dir, unsigned keep, uint64_t *oldest_kept);

/* ---- loading ------------------------------------------------------------- */

/* Where a checkpoint is loaded: a fresh store (no ticks) and empty tables,
 * and the schema and mode they run under now.  usage (NULL: none) counts
 * the undeclared fields of the maps and objects loaded, as storing their
 * ticks did (tks_tick_note_stored), so `advice` knows them after a start. */
struct tks_checkpoint_target {
  const struct tks_schema *schema;
  enum tks_mode mode;
  struct tks_store *store;
  struct tks_symtab *symbols, *strings, *names;
  struct tks_usage *usage;
};

struct tks_checkpoint_load;

/*
 * Opens a checkpoint and checks its header: magic, version, byte order, a
 * schema that lays out as it says, counts the file's size can hold.  When
 * the header's schema and mode are the target's, ticks are loaded raw
 * (records copied a run at a time).  When they differ the load converts,
 * by field name, to what replaying the whole journal under the target's
 * schema and mode gives:
 *   - a field the target declares is filled from the record, or from the
 *     overflow map or dynamic object of a tick that carried it (and leaves
 *     the map: a map left empty is not kept, the tick becomes slotted);
 *     absent, it takes its default (in a record an optional field holding
 *     its default counts as absent);
 *   - a field the target does not declare goes into an overflow map
 *     (fallback), stays in the object (dynamic), or is dropped and counted
 *     (slotted: tks_checkpoint_load_info's dropped_*; replay would refuse
 *     those ticks whole, unknown_field, the load keeps their declared part);
 *   - values are taken by the decoder's rules (an int into an f64 field, a
 *     string into a symbol or string field, interned); a symbol or string
 *     id leaving a declared field becomes its text.
 * A change some tick cannot take (a new required field it lacks, a value of
 * another type) is found by a first pass over the whole file that stores
 * nothing, and refused naming the field and how many ticks: nothing is
 * loaded then.  A converting load where some tick could fail thus reads
 * the file twice; one where none can (slotted records of fields of the
 * same types, new ones optional) converts each record by a fixed plan of
 * copies and defaults, in one pass.
 *
 * Returns NULL with err set ("path: offset N: what") on any error.  On
 * success the target must stay untouched by others until
 * tks_checkpoint_close.
 */
struct tks_checkpoint_load *tks_checkpoint_open(const char *path,
                                                const struct tks_checkpoint_target *t, char *err,
                                                size_t errlen);
/* The same on an open fd (taken over: closed by close, or on failure), read
 * with pread from offset 0; name is used in messages. */
struct tks_checkpoint_load *tks_checkpoint_open_fd(int fd, const char *name,
                                                   const struct tks_checkpoint_target *t, char *err,
                                                   size_t errlen);

/* The header's figures (valid once open succeeded). */
const struct tks_checkpoint_info *tks_checkpoint_header(const struct tks_checkpoint_load *l);

/*
 * Loads chunks until about budget bytes of the file were read (at least
 * one chunk), each checked against its CRC before anything of it is used.
 * Returns 1 while there is more, 0 once the file was loaded whole and its
 * END agreed with what was loaded, or -errno with err set ("path: offset N:
 * what": truncation, a bad CRC or length, an id out of range, ticks out of
 * order, counts that disagree, an unknown chunk: -EBADMSG mostly), and
 * -ENOTSUP for a change that cannot be converted (the file is good, the
 * config asks what its ticks cannot give).  An error is final (every later
 * call returns it).
 *
 * After an error the target holds part of the checkpoint: the caller must
 * throw the store and the three tables away (or empty them) before using
 * them, and fall back to another checkpoint or to the journal.  Nothing is
 * ever half-trusted: every id, length, count and order is checked before
 * it is stored.
 */
int tks_checkpoint_next(struct tks_checkpoint_load *l, uint64_t budget, char *err, size_t errlen);

/* Bytes read of the bytes to read (total is twice the file's size when a
 * first pass checks a conversion). */
void tks_checkpoint_progress(const struct tks_checkpoint_load *l, uint64_t *done, uint64_t *total);

struct tks_checkpoint_load_info {
  bool converted;          /* schema or mode differed: converted by name */
  char conversion[256];    /* what changed, for a log line ("" when raw) */
  uint64_t ticks;          /* loaded */
  uint64_t dropped_ticks;  /* slotted target: ticks that lost undeclared fields */
  uint64_t dropped_fields; /* ... and how many fields in all */
};
void tks_checkpoint_load_info(const struct tks_checkpoint_load *l,
                              struct tks_checkpoint_load_info *out);

/* Closes the file and frees l.  What was loaded stays in the target.  NULL
 * is a no-op. */
void tks_checkpoint_close(struct tks_checkpoint_load *l);

#endif
