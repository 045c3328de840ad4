/*
 * Small shared helpers: logging with a level, parsing and formatting of
 * sizes ("1MiB") and durations ("500ms"), parsing of times (ns or
 * ISO-8601), clocks, and a growable byte buffer used to build responses
 * and encoded messages.  Nothing here allocates behind the caller's back
 * except tks_buf, whose owner frees it with tks_buf_finish().
 */
#ifndef TKS_UTIL_H
#define TKS_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#define TKS_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

enum tks_log_level { TKS_LOG_ERROR = 0, TKS_LOG_WARN, TKS_LOG_INFO, TKS_LOG_DEBUG };
#define TKS_LOG_LEVEL_COUNT (TKS_LOG_DEBUG + 1)
/* "error", "warn", "info", "debug": the level names, in the enum's order. */
extern const char *const tks_log_level_names[TKS_LOG_LEVEL_COUNT];

/* Index of s in names[0..n), or -1: the parsers of enumerated words. */
int tks_name_index(const char *const *names, unsigned n, const char *s);

/* Messages at a level above the threshold are dropped.  Default: info. */
void tks_log_set_level(enum tks_log_level level);
enum tks_log_level tks_log_get_level(void);
/* Writes one line to stderr (one write(2)): where stderr is the journal's
 * stream ($JOURNAL_STREAM matches fd 2's device and inode) "<N>level:
 * message", N the sd-daemon(3) priority (3 error, 4 warn, 6 info, 7 debug)
 * and no name or pid (journald adds them); otherwise
 * "2026-12-03T06:10:01.123Z tickslabd[pid]: level: message", UTC with ms. */
void tks_log(enum tks_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* tks_log's prefix for a line at level, as above, cut to fit buf (n bytes). */
void tks_log_prefix(enum tks_log_level level, char *buf, size_t n);
/* Whether tks_log writes for the journal (decided at the first call). */
bool tks_log_is_journal(void);
/* The level's name, or "?" for a value outside the enum. */
const char *tks_log_level_name(enum tks_log_level level);
/* Writes prefix, the formatted message and a newline to stderr in one
 * write(2), cut to max bytes (at most 2048): tks_log's lines (1 KiB) and
 * the CLI's error lines (2 KiB).  In the message, control bytes (a newline
 * too) and bytes not UTF-8 are written \xHH (tks_utf8_escape), so one
 * call is one line of valid UTF-8. */
void tks_vwrite_line(size_t max, const char *prefix, const char *fmt, va_list ap);
/* Parses "error" | "warn" | "info" | "debug".  Returns 0 or -EINVAL. */
int tks_log_level_parse(const char *s, enum tks_log_level *out);

/* "4096", "4096B", "64KiB", "1MiB", "4GiB" (also KB/MB/GB, taken as powers
 * of 1024, and lower case).  Returns 0, -EINVAL (not a size) or -ERANGE. */
int tks_parse_size(const char *s, uint64_t *out);
/* "250ms", "1s", "5m", "24h", "0".  Result in nanoseconds.  Returns 0,
 * -EINVAL or -ERANGE. */
int tks_parse_duration(const char *s, uint64_t *out_ns);
/* Parses a whole decimal unsigned integer, no sign, no trailing bytes. */
int tks_parse_u64(const char *s, uint64_t *out);

/*
 * The inverses, exact and in the form the config takes: a size in the
 * largest of GiB, MiB, KiB that divides it ("64KiB", "3GiB"), else in
 * bytes ("1000B"); a duration (ns) in the largest of h, m, s, ms, us, ns
 * that divides it ("90s", "250ms").  0 is "0" for both.  The text is cut
 * to fit buf (n bytes with the NUL).
 */
void tks_format_size(uint64_t bytes, char *buf, size_t n);
void tks_format_duration(uint64_t ns, char *buf, size_t n);

/*
 * ISO-8601 date-time, s[0..len), in UTC or with an offset:
 * YYYY-MM-DD(T|t| )HH:MM[:SS[.f{1,9}]](Z|z|+HH:MM|-HH:MM|+HHMM|+HH).
 * The zone is required: a local time would mean whatever TZ the sender had.
 * Returns 0 and the time in ns since the epoch, -EINVAL (not that form), or
 * -ERANGE (a field out of range, e.g. 2026-02-30, or outside int64 ns, i.e.
 * before 1677-09-21T00:12:43.145224192Z or after 2262-04-11T23:47:16.854775807Z).
 * The result does not depend on TZ or the C library's timegm.
 */
int tks_parse_iso8601(const char *s, size_t len, int64_t *out_ns);

/* ns since the epoch as ISO-8601 in UTC with every ns digit,
 * "2026-11-25T14:30:00.123456789Z" (30 bytes and a NUL), which
 * tks_parse_iso8601() reads back to ns; every int64 has one (years 1677 to
 * 2262). */
#define TKS_ISO8601_LEN 30
void tks_format_iso8601(int64_t ns, char out[static TKS_ISO8601_LEN + 1]);

/* The civil date (proleptic Gregorian) of a day since 1970-01-01. */
void tks_civil_from_days(int64_t day, int *y, unsigned *m, unsigned *d);

/*
 * A point in time as the queries and the CLI take it (NUL-terminated):
 * digits, the ns since the epoch, with an optional leading '-' for times
 * before 1970 (-9223372036854775808 to 9223372036854775807; "-0" is 0; no
 * '+', no white space);
 * an ISO-8601 date-time as tks_parse_iso8601(); or a bare date YYYY-MM-DD,
 * midnight UTC.  Returns 0, -EINVAL (not a time) or -ERANGE.
 */
int tks_parse_time(const char *s, int64_t *out_ns);

/* CLOCK_REALTIME and CLOCK_MONOTONIC in nanoseconds. */
int64_t tks_now_ns(void);
uint64_t tks_mono_ns(void);

/* A growable buffer.  Zero-initialise or tks_buf_init(); free with
 * tks_buf_finish().  On allocation failure the append functions return
 * -ENOMEM and leave the buffer as it was. */
struct tks_buf {
  char *data;
  size_t len;
  size_t cap;
  size_t peak; /* the most bytes written since data was allocated (room reserved counts) */
};

void tks_buf_init(struct tks_buf *b);
void tks_buf_finish(struct tks_buf *b);
int tks_buf_reserve(struct tks_buf *b, size_t extra);
int tks_buf_append(struct tks_buf *b, const void *p, size_t n);
int tks_buf_puts(struct tks_buf *b, const char *s);
int tks_buf_putc(struct tks_buf *b, char c);
int tks_buf_printf(struct tks_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal, quotes included. */
int tks_buf_json_string(struct tks_buf *b, const char *s, size_t n);
/* Drops the first n bytes, keeping the rest. */
void tks_buf_consume(struct tks_buf *b, size_t n);
/* The bytes of memory b holds: what it ever held since data was allocated,
 * not the capacity past it, which was never touched (a large allocation
 * takes no memory until written).  0 once finished. */
size_t tks_buf_bytes(const struct tks_buf *b);

/* fsync(2) of a directory, so that entries created, renamed or removed in it
 * are durable (a rename is not, until its directory is synced).  Returns 0
 * or -errno. */
int tks_fsync_dir(const char *dir);

/*
 * A 64-bit key that, together with n, identifies the first min(n, 8) bytes
 * of s: with the length it tells short names apart without a memcmp.
 * Reads only s[0..n), with fixed-size loads (overlapping ones for 1..7
 * bytes), so it compiles to a few instructions and no call.
 */
/* FNV-1a of n bytes: the hash of the daemon's small tables (producer
 * names, peers' addresses). */
static inline uint32_t tks_fnv1a(const void *p, size_t n) {
  const uint8_t *b = p;
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 16777619u;
  return h;
}

/* A rate limit for log lines: at most `burst` lines in a window of
 * period_ns from the first of them, the rest held back and counted.  One
 * thread's (no lock).  Zero but period_ns and burst is a fresh one. */
struct tks_ratelimit {
  uint64_t period_ns;
  uint32_t burst;
  uint32_t lines;      /* written in the window */
  uint64_t window_ns;  /* its start (tks_mono_ns); 0: none yet */
  uint64_t suppressed; /* held back since the last line that went */
};
/* Whether a line may go at now_ns; when it may, *held is how many were held
 * back before it (the count starts again). */
static inline bool tks_ratelimit_pass(struct tks_ratelimit *r, uint64_t now_ns, uint64_t *held) {
  if (!r->window_ns || now_ns - r->window_ns >= r->period_ns) {
    r->window_ns = now_ns ? now_ns : 1;
    r->lines = 0;
  }
  if (r->lines >= r->burst) {
    r->suppressed++;
    return false;
  }
  r->lines++;
  *held = r->suppressed;
  r->suppressed = 0;
  return true;
}

static inline uint64_t tks_head8(const char *s, size_t n) {
  if (n >= 8) {
    uint64_t a;
    memcpy(&a, s, 8);
    return a;
  }
  if (n >= 4) {
    uint32_t x, y;
    memcpy(&x, s, 4);
    memcpy(&y, s + n - 4, 4);
    return (uint64_t)y << 32 | x;
  }
  if (n > 0)
    return (uint64_t)(unsigned char)s[0] << 16 | (uint64_t)(unsigned char)s[n >> 1] << 8 |
           (unsigned char)s[n - 1];
  return 0;
}

/* mkdir -p: creates dir and its missing parents, mode 0750, each new entry
 * made durable by an fsync of its parent.  An existing directory is fine.
 * Returns 0 or -errno (-ENOENT for "", -ENAMETOOLONG, -ENOTDIR, ...). */
int tks_mkdir_p(const char *dir);

/* Replaces dir/name with len bytes of data, atomically and durably: written
 * to dir/name.tmp, fsynced, renamed over name, dir fsynced.  A crash leaves
 * the old file or the new one, never a mix.  Returns 0 or -errno (the temp
 * file removed). */
int tks_write_file_atomic(const char *dir, const char *name, const void *data, size_t len);

/*
 * The first call of a forked worker child (a checkpoint or an archive seal
 * writer): it dies with its parent (PR_SET_PDEATHSIG; files published after
 * another daemon took over the directory would be wrong), returns -1 when
 * the parent is already gone, resets the signals the daemon handles and
 * the mask, and closes every fd from 3 up but keep_a and keep_b (client
 * sockets and listeners go, so the parent's closes are seen at once).
 */
int tks_child_init(pid_t parent, int keep_a, int keep_b);

/* Bytes of this process's memory backed by transparent huge pages
 * (AnonHugePages of /proc/self/smaps_rollup), or 0. */
uint64_t tks_anon_huge_bytes(void);

/* Resident set size of this process from /proc/self/statm, in bytes, or 0. */
uint64_t tks_rss_bytes(void);

#endif
