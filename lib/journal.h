/*
 * The journal: every accepted tick is appended to append-only segment
 * files in one directory, so that a restart (even after kill -9) rebuilds
 * the store by replaying them.  A segment is a 16-byte header ("TKSJRNL1",
 * segment sequence number) followed by frames; a frame is
 *   u32 payload length (little-endian) | u32 CRC32C of the payload | payload
 * and the payload is what the daemon journals (a receive timestamp and the
 * msgpack bytes of the accepted ticks of one read).  Segments are named
 * "journal-<20-digit sequence>.tkj" and rotate at a size.  The writer
 * buffers frames in memory; tks_journal_flush() writes them (and fsyncs on
 * request) and is the only call that does I/O, so the daemon runs it off the
 * event loop.  Not thread-safe: the caller serialises.
 */
#ifndef TKS_JOURNAL_H
#define TKS_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TKS_JOURNAL_FRAME_HEADER 8
#define TKS_JOURNAL_SEGMENT_HEADER 16
#define TKS_JOURNAL_MAX_PAYLOAD (64u << 20) /* a longer length field is corruption */

/* CRC32C (Castagnoli), hardware-assisted where the CPU has SSE4.2. */
uint32_t tks_crc32c(uint32_t crc, const void *data, size_t len);

enum tks_on_corrupt { TKS_CORRUPT_TRUNCATE, TKS_CORRUPT_REFUSE };

struct tks_journal;

/*
 * Opens dir (created, mode 0750, if missing) for appending: a new segment is
 * started after the newest existing one.  segment_bytes: rotate once a
 * segment reaches this size (at least 1 MiB).  max_bytes: if not 0, a flush
 * that would take the segments in dir over this total fails with -ENOSPC,
 * exactly as a full disk would (for operators with a quota, and for tests).
 * Returns NULL with err set ("dir: strerror").
 */
struct tks_journal *tks_journal_open(const char *dir, uint64_t segment_bytes, uint64_t max_bytes,
                                     char *err, size_t errlen);
/* Flushes nothing; closes the segment.  NULL is a no-op. */
void tks_journal_close(struct tks_journal *j);

/* Buffers one frame (copies payload).  0, -E2BIG (over TKS_JOURNAL_MAX_PAYLOAD)
 * or -ENOMEM. */
int tks_journal_append(struct tks_journal *j, const void *payload, size_t len);
/* Bytes buffered and not yet written. */
size_t tks_journal_pending(const struct tks_journal *j);

/*
 * Writes every buffered frame, rotating segments as needed, then fsyncs the
 * segment (and the directory after a rotation) when do_fsync.  Returns 0, or
 * -errno (-ENOSPC, -EIO, ...): frames not written stay buffered for the next
 * call, a frame half-written is cut off again (ftruncate) so the file never
 * holds a torn frame the writer knows of.
 */
int tks_journal_flush(struct tks_journal *j, bool do_fsync);

struct tks_journal_info {
  uint64_t bytes;         /* in all segments of dir, headers included */
  uint64_t segments;
  uint64_t frames_written;
  uint64_t fsyncs;
  uint64_t write_errors;
  int last_error;         /* -errno of the last failed flush, 0 after a good one */
};
void tks_journal_info(const struct tks_journal *j, struct tks_journal_info *out);

/* Replay. */
struct tks_replay_result {
  uint64_t segments;
  uint64_t frames;
  uint64_t bytes;
  uint64_t truncated_bytes;  /* cut off a torn or corrupt tail (policy truncate) */
  char truncated_file[512];  /* the segment that was cut, or "" */
  uint64_t truncated_at;     /* offset of the cut */
  char side_file[600];       /* where the cut bytes were kept, or "" */
};

/* Called for each good frame, in order.  Return 0 to go on, non-zero to stop
 * the replay with that value. */
typedef int (*tks_replay_fn)(void *ctx, const void *payload, size_t len);

/*
 * Reads every segment of dir in sequence order and calls fn for each frame.
 * A torn or corrupt tail of the newest segment (a partial frame, a bad
 * length, a bad CRC with no good frame after it) is handled by policy:
 * TRUNCATE cuts the segment at the last good frame, keeping the cut bytes in
 * "<segment>.corrupt-<offset>", and reports it in *res; REFUSE returns
 * -EBADMSG with err naming the file and offset.  Corruption that is not at
 * the tail (a good frame follows it, or an older segment) is never skipped:
 * -EBADMSG with the file and offset, whatever the policy.  A missing dir is
 * an empty journal.  Returns 0, fn's non-zero value, or -errno.
 */
int tks_journal_replay(const char *dir, enum tks_on_corrupt policy, tks_replay_fn fn, void *ctx,
                       struct tks_replay_result *res, char *err, size_t errlen);

#endif
