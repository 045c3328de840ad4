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
#define TKS_JOURNAL_SCAN_BUDGET (4ull << 30) /* see tks_journal_replay() */

/* CRC32C (Castagnoli), hardware-assisted where the CPU has SSE4.2.  crc is
 * the CRC of what came before (0 to start), so tks_crc32c(tks_crc32c(0, a),
 * b) is the CRC of a then b; tks_crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t tks_crc32c(uint32_t crc, const void *data, size_t len);
/* The two paths tks_crc32c() chooses between, for tests and benchmarks:
 * the table-driven one (slicing-by-8), and the SSE4.2 one, which is the
 * software one where the CPU lacks SSE4.2 (tks_crc32c_hw_available()). */
uint32_t tks_crc32c_sw(uint32_t crc, const void *data, size_t len);
uint32_t tks_crc32c_hw(uint32_t crc, const void *data, size_t len);
bool tks_crc32c_hw_available(void);

/* What replay does with a torn or corrupt tail (journal.on_corrupt). */
enum tks_on_corrupt { TKS_CORRUPT_TRUNCATE, TKS_CORRUPT_REFUSE };
#define TKS_ON_CORRUPT_COUNT (TKS_CORRUPT_REFUSE + 1)
/* "truncate", "refuse": the policy names, in the enum's order. */
extern const char *const tks_on_corrupt_names[TKS_ON_CORRUPT_COUNT];
/* The policy's name, or "?" for a value outside the enum. */
const char *tks_on_corrupt_name(enum tks_on_corrupt p);

struct tks_journal;

/*
 * Opens dir (created, mode 0750, if missing) for appending: a new segment is
 * started after the newest existing one.  segment_bytes: rotate once a
 * segment reaches this size (at least 1 MiB).  max_bytes: if not 0, a flush
 * that would take the segments in dir over this total fails with -ENOSPC,
 * exactly as a full disk would (for operators with a quota, and for tests).
 * Returns NULL with err set ("dir: strerror").
 *
 * The new segment file is created by the first flush that has frames to
 * write, so an idle open + close leaves no empty file behind.  A frame that
 * would take a non-empty segment past segment_bytes goes to a new segment, so
 * a segment exceeds segment_bytes only when it holds one frame larger than
 * that; a frame is never split.  segment_bytes under 1 MiB is taken as 1 MiB.
 */
struct tks_journal *tks_journal_open(const char *dir, uint64_t segment_bytes, uint64_t max_bytes,
                                     char *err, size_t errlen);
/* Flushes nothing; closes the segment.  NULL is a no-op. */
void tks_journal_close(struct tks_journal *j);

/* Buffers one frame (copies payload).  0, -E2BIG (over TKS_JOURNAL_MAX_PAYLOAD)
 * or -ENOMEM; -EINVAL for an empty payload (a zero length field is taken as
 * corruption by replay, so that a zero-filled tail left by a crash is found). */
int tks_journal_append(struct tks_journal *j, const void *payload, size_t len);
/* Bytes buffered and not yet written. */
size_t tks_journal_pending(const struct tks_journal *j);
/* Bytes of memory the write buffer holds (its capacity, written or not). */
size_t tks_journal_buffer_bytes(const struct tks_journal *j);
/* Frees the write buffer if it holds no frame and more than keep bytes.
 * (A flush that empties it frees it anyway when it is over 8 MiB.) */
void tks_journal_trim(struct tks_journal *j, size_t keep);

/*
 * A failed fsync is sticky: every later flush that asks for an fsync fails
 * with the same error, so nothing written since the last good fsync is ever
 * reported durable (the kernel may have dropped those pages); the daemon
 * keeps counting the journal as failing until it is restarted.
 *
 * Writes every buffered frame, rotating segments as needed, then fsyncs the
 * segment (and the directory after a rotation) when do_fsync.  Returns 0, or
 * -errno (-ENOSPC, -EIO, ...): frames not written stay buffered for the next
 * call, a frame half-written is cut off again (ftruncate) so the file never
 * holds a torn frame the writer knows of.
 */
int tks_journal_flush(struct tks_journal *j, bool do_fsync);
/* Changes the cap (0: none) from the next flush on, e.g. after an operator
 * made room: frames held back by -ENOSPC are written by the next flush. */
void tks_journal_set_max_bytes(struct tks_journal *j, uint64_t max_bytes);

/*
 * Ends the current segment for checkpoints: the frames appended after this
 * call go to a new segment, whose number is put in *next, so every frame
 * written before the call is in a segment numbered below it.  -EBUSY while
 * frames are buffered (flush them first: the cut falls between frames
 * written and frames not yet appended).  A current segment that holds no
 * frame is kept: it is the next one.  Nothing is written until the next
 * flush with frames creates the segment.
 */
int tks_journal_rotate(struct tks_journal *j, uint64_t *next);

/*
 * Removes the segment files numbered below seq (never the current one) and
 * fsyncs the directory; info's bytes and segments follow.  For the
 * segments a checkpoint covers.  Returns how many were removed, or -errno
 * (those removed before the error stay removed).
 */
int tks_journal_remove_below(struct tks_journal *j, uint64_t seq);

struct tks_journal_info {
  uint64_t bytes;         /* in all segments of dir, headers included */
  uint64_t segments;
  uint64_t frames_written; /* since open, in append order */
  uint64_t fsyncs;         /* flushes that made data durable (one per flush,
                            * whatever the files synced; a flush(true) with
                            * nothing unsynced does no fsync and counts none) */
  uint64_t write_errors;   /* failed flushes */
  int last_error;         /* -errno of the last failed flush, 0 after a good one */
  uint64_t frames_synced;  /* the first frames_synced of frames_written are known fsynced */
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

/* Called for each good frame, in order.  payload is valid during the call
 * only.  Return 0 to go on, non-zero to stop the replay with that value. */
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
 *
 * A segment header cut short in the newest segment (a crash between creating
 * the file and writing its header) is a torn tail at offset 0: TRUNCATE
 * removes the file, keeping its bytes (if any) in the side file.  A bad
 * header anywhere else is -EBADMSG.  A zero length field is corruption.  On
 * an error, fn has already seen the good frames before the bad one.  Whether
 * good frames follow a bad one is decided by scanning the rest of the segment
 * for a frame with a valid CRC at every byte offset; that scan is bounded
 * (TKS_JOURNAL_SCAN_BUDGET bytes checksummed) and, past its bound, takes the
 * safe side: the corruption is reported, not cut.
 */
int tks_journal_replay(const char *dir, enum tks_on_corrupt policy, tks_replay_fn fn, void *ctx,
                       struct tks_replay_result *res, char *err, size_t errlen);
/* The same from segment `from` on (0: all), as tks_journal_reader_open()
 * takes it: the segments below it (a checkpoint covers them) are skipped. */
int tks_journal_replay_from(const char *dir, uint64_t from, enum tks_on_corrupt policy,
                            tks_replay_fn fn, void *ctx, struct tks_replay_result *res, char *err,
                            size_t errlen);

/*
 * The same replay as a reader the caller pulls frames from, so that it can
 * stop between any two frames and go on later (the daemon replays in slices
 * of its event loop); tks_journal_replay() is a loop over it.  One reader
 * is used by one thread at a time.  While it reads a segment of 256 KiB or
 * more it runs a thread of its own that checks CRCs ahead of it (joined by
 * the time the segment is done, and by tks_journal_reader_close()).
 *
 * Segment numbers must run without a gap: from `from` on when it is given
 * (not 0: segments before it are covered by what was loaded before, e.g. a
 * checkpoint, and are skipped; the first one read must then be `from`
 * itself, or there must be none from `from` on), else from the oldest one
 * present.  A missing segment is refused at open, whatever the policy:
 * -EBADMSG with err naming it ("journal: segment DIR/journal-...02.tkj is
 * missing (between ... and ...)").  A missing dir is an empty journal.
 * Returns 0 with *out set (freed with tks_journal_reader_close), or -errno
 * with err set and *out NULL.
 */
struct tks_journal_reader;
int tks_journal_reader_open(struct tks_journal_reader **out, const char *dir, uint64_t from,
                            enum tks_on_corrupt policy, char *err, size_t errlen);
/*
 * The next good frame: returns 1 with *payload and *len set (valid until the
 * next call or the close), 0 once every segment is read (a torn tail of the
 * newest one handled by the policy, as tks_journal_replay() does), or
 * -errno: the replay cannot go on (tks_journal_reader_error() says why, in
 * the words of tks_journal_replay()).  After 0 or an error every later call
 * returns the same.
 */
int tks_journal_reader_next(struct tks_journal_reader *r, const void **payload, size_t *len);
/* Why the last call failed, or "". */
const char *tks_journal_reader_error(const struct tks_journal_reader *r);
/* What was read so far, as tks_journal_replay() reports it at the end. */
const struct tks_replay_result *tks_journal_reader_result(const struct tks_journal_reader *r);

struct tks_journal_progress {
  uint64_t bytes_done;  /* of the segment files, headers and frames, read so far */
  uint64_t bytes_total; /* of the segments to read, as they were at open */
  uint64_t segment;     /* the number of the one being read, or 0 between segments */
  uint64_t segments_done, segments;
};
void tks_journal_reader_progress(const struct tks_journal_reader *r,
                                 struct tks_journal_progress *out);
/* Closes the segment being read and frees r; writes nothing.  NULL is a no-op. */
void tks_journal_reader_close(struct tks_journal_reader *r);

/*
 * The writer's end: every frame before (segment *seq, byte *off) is written
 * whole (pwrite returned; fsynced or not).  Before the first flush that
 * wrote a frame: (the newest existing segment + 1, 0), every existing
 * segment being whole.  The daemon publishes it after each flush for the
 * tail reader below.
 */
void tks_journal_written(const struct tks_journal *j, uint64_t *seq, uint64_t *off);
/* The oldest segment number in dir: 0, -ENOENT (none) or -errno. */
int tks_journal_oldest(const char *dir, uint64_t *seq);

/*
 * A tail reader: follows the journal's segments behind a writer (the Kafka
 * sink), reading only whole frames before the end the caller gives (the
 * writer's, tks_journal_written), never the bytes past it, so a frame being
 * written is never seen.  A position is (segment, offset after a frame);
 * offset 0 is the segment's start (before its header).  One thread.
 */
struct tks_journal_tail;
/* Opens dir at (seq, off), as tks_journal_tail_seek.  0 with *out, or
 * -errno with err set ("offset 100 of segment 3 is not where a frame
 * ends", -EINVAL; "segment 3 is missing", -ENOENT) and *out NULL. */
int tks_journal_tail_open(struct tks_journal_tail **out, const char *dir, uint64_t seq,
                          uint64_t off, char *err, size_t errlen);
/* Moves to (seq, off): off 0 (or under the header) is the segment's start;
 * otherwise the segment must exist and off must be where one of its frames
 * ends (walked from the start, lengths only): -ENOENT or -EINVAL if not. */
int tks_journal_tail_seek(struct tks_journal_tail *t, uint64_t seq, uint64_t off);
/*
 * The next frame before the end (end_seq, end_off): 1 with *payload, *len
 * (valid until the next call), 0 when there is none yet (at the end, or
 * the next segment not made yet), or -EBADMSG: the bytes at the position
 * are not a good frame (a bad header, a length out of range or past the
 * end, a CRC mismatch; tks_journal_tail_error says where); the position
 * stays, tks_journal_tail_skip goes on at the next segment.  A segment
 * missing below end_seq is stepped over (tks_journal_tail_gaps counts it).
 */
int tks_journal_tail_next(struct tks_journal_tail *t, uint64_t end_seq, uint64_t end_off,
                          const void **payload, size_t *len);
/* Gives up the rest of the segment being read: on at the next one's start. */
int tks_journal_tail_skip(struct tks_journal_tail *t);
/* Where it is: after the last frame returned (offset 0: a segment not begun). */
void tks_journal_tail_where(const struct tks_journal_tail *t, uint64_t *seq, uint64_t *off);
uint64_t tks_journal_tail_gaps(const struct tks_journal_tail *t);
const char *tks_journal_tail_error(const struct tks_journal_tail *t);
/* Bytes of frames in the segment files between (seq, off) and (end_seq,
 * end_off): the backlog behind the writer.  0 when the first is not before. */
uint64_t tks_journal_tail_bytes(const struct tks_journal_tail *t, uint64_t seq, uint64_t off,
                                uint64_t end_seq, uint64_t end_off);
/* Closes it.  NULL is a no-op. */
void tks_journal_tail_close(struct tks_journal_tail *t);

#endif
