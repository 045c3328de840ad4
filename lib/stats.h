/*
 * Statistics collection and formatting.  Modules report their figures as
 * (path, value) pairs into a tks_stats collector, as memcached's
 * add_stats callback does; the control socket then renders the collection
 * as one JSON object (paths "a.b.c" become nested objects) or as
 * Prometheus text exposition.  Each module declares its figures once, as
 * struct tks_stat descriptors (path, kind, unit, help), and emits values
 * against them.  Every name is documented in README.md's stats table; the
 * daemon suite compares what a running daemon emits with that table both
 * ways (tests/test_daemon_control.c).
 */
#ifndef TKS_STATS_H
#define TKS_STATS_H

#include <stdint.h>

#include "util.h"

enum tks_stat_kind { TKS_STAT_COUNTER, TKS_STAT_GAUGE };

struct tks_stats;

/* What a figure counts or measures. */
enum tks_stat_unit {
  TKS_UNIT_NONE, /* a count of things, an id, a flag, a string */
  TKS_UNIT_BYTES,
  TKS_UNIT_SECONDS,
  TKS_UNIT_USEC, /* microseconds (systemd's WATCHDOG_USEC) */
  TKS_UNIT_TICKS,
  TKS_UNIT_TICKS_PER_SECOND,
  TKS_UNIT_BYTES_PER_TICK,
};

/*
 * One figure, declared once by the module that reports it.  path: the JSON
 * path ("ticks.accepted"); a "*" part stands for a name given at emission
 * ("ticks.rejected_by_reason.*").  help: one line, or NULL to keep the
 * figure out of Prometheus.  prom: the Prometheus family name without
 * "tickslab_", or NULL to derive it from the path.  label: for a string,
 * the label that carries its value in Prometheus; for a path with "*",
 * the label the filled-in part becomes (reason="bad_type"), or NULL.
 */
struct tks_stat {
  const char *path;
  enum tks_stat_kind kind;
  enum tks_stat_unit unit;
  const char *help;
  const char *prom;
  const char *label;
};

/* Descriptors, written as TKS_STAT("ticks.accepted", COUNTER, TICKS, "help")
 * or, with a Prometheus family name and a label, TKS_STAT_NAMED(...). */
#define TKS_STAT(path, kind, unit, help) \
  { path, TKS_STAT_##kind, TKS_UNIT_##unit, help, NULL, NULL }
#define TKS_STAT_NAMED(path, kind, unit, help, prom, label) \
  { path, TKS_STAT_##kind, TKS_UNIT_##unit, help, prom, label }

/* Emit a value against its descriptor. */
void tks_stat_u64(struct tks_stats *s, const struct tks_stat *d, uint64_t v);
void tks_stat_f64(struct tks_stats *s, const struct tks_stat *d, double v);
void tks_stat_str(struct tks_stats *s, const struct tks_stat *d, const char *v);
/* The same for a path with a "*": part fills it in (and labels the
 * Prometheus sample when d->label is set). */
void tks_stat_u64_of(struct tks_stats *s, const struct tks_stat *d, const char *part, uint64_t v);
void tks_stat_str_of(struct tks_stats *s, const struct tks_stat *d, const char *part,
                     const char *v);

/* Returns NULL on allocation failure. */
struct tks_stats *tks_stats_create(void);
void tks_stats_destroy(struct tks_stats *s);

/*
 * The primitives the descriptors are emitted through (modules use the
 * descriptors above; these remain for the formats' own tests).
 * Adds one figure.  path: the JSON path ("ticks.accepted"); entries sharing
 * a prefix must be added consecutively.  prom: the Prometheus family name
 * without the "tickslab_" prefix, or NULL to derive it from the path (dots
 * become underscores).  labels: NULL or Prometheus label text without
 * braces ("class=\"3\"").  help: one line, or NULL to omit the family from
 * Prometheus.  Strings are copied.  An allocation failure is remembered and
 * reported by the formatters.
 */
void tks_stats_u64(struct tks_stats *s, const char *path, uint64_t v, enum tks_stat_kind kind,
                   const char *help, const char *prom, const char *labels);
void tks_stats_i64(struct tks_stats *s, const char *path, int64_t v, enum tks_stat_kind kind,
                   const char *help, const char *prom, const char *labels);
void tks_stats_f64(struct tks_stats *s, const char *path, double v, enum tks_stat_kind kind,
                   const char *help, const char *prom, const char *labels);
/* A string: a JSON string; in Prometheus (when help is given) a gauge of 1
 * with the value as label `label_name`. */
void tks_stats_str(struct tks_stats *s, const char *path, const char *v, const char *help,
                   const char *prom, const char *label_name);

/* Number of entries added so far. */
unsigned tks_stats_count(const struct tks_stats *s);

/* Keeps only the entries of one top-level group ("memory" keeps
 * "memory.*"; a path without a dot belongs to no group), freeing the rest,
 * for `stats SECTION`.  Returns how many are kept (0: no such section). */
unsigned tks_stats_keep_section(struct tks_stats *s, const char *section);
/* Appends the top-level groups, in the order first added, as
 * "store, schema, ingest, ..." (what tks_stats_keep_section takes).
 * Returns 0 or -ENOMEM. */
int tks_stats_sections(const struct tks_stats *s, struct tks_buf *out);

/* Render.  JSON is one line, no trailing newline.  Return 0, -ENOMEM, or
 * (JSON) -EINVAL when entries sharing a top-level prefix were not added
 * consecutively, which would repeat a key. */
int tks_stats_json(const struct tks_stats *s, struct tks_buf *out);
int tks_stats_prometheus(const struct tks_stats *s, struct tks_buf *out);
/*
 * The Prometheus family name of a figure: "tickslab_" + prom, with its unit
 * in the name (microseconds become _seconds, as the value does; a figure in
 * bytes or seconds ends in _bytes or _seconds) and a counter ending in one
 * _total.  Cut to size bytes.
 */
void tks_stats_prom_name(const char *prom, enum tks_stat_kind kind, enum tks_stat_unit unit,
                         char *out, size_t size);
/* Appends the process_* families client libraries export, from /proc and
 * getrlimit: process_cpu_seconds_total, process_start_time_seconds,
 * process_virtual_memory_bytes, process_resident_memory_bytes,
 * process_open_fds, process_max_fds (one missing where /proc is not).
 * The start time is the boot time of /proc/stat plus the process's start,
 * else (/proc/stat hidden, as under the unit's ProcSubset=pid)
 * started_unix, the caller's own clock reading of its start (0: none).
 * Returns 0 or -ENOMEM. */
int tks_stats_process(struct tks_buf *out, double started_unix);
/* "path value" lines, each ending in a newline. */
int tks_stats_text(const struct tks_stats *s, struct tks_buf *out);

#endif
