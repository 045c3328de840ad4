/*
 * The configuration: one YAML file read with libyaml.  One table
 * (tks_config_keys) lists every key with its type, default, range, place in
 * struct tks_config and what a reload may do with it; the parser, the
 * defaults and the daemon's reload all work from it.  An unknown key, a
 * value of the wrong type or out of range is refused with
 * "file:line:column: what is wrong", and the caller does not start
 * half-configured.  config/tickslab.yaml is the commented default and must
 * parse to exactly the defaults.
 */
#ifndef TKS_CONFIG_H
#define TKS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "journal.h"
#include "schema.h"
#include "slab.h"
#include "store.h"
#include "util.h"

/* The config read without --config: SYSCONFDIR/tickslab/tickslab.yaml,
 * meson's sysconfdir (/etc with --prefix=/usr, the .deb; /usr/local/etc
 * with the default prefix), set by meson.build. */
#ifndef TKS_SYSCONFDIR
#define TKS_SYSCONFDIR "/etc"
#endif
#define TKS_DEFAULT_CONFIG_PATH TKS_SYSCONFDIR "/tickslab/tickslab.yaml"
#define TKS_DEFAULT_CONTROL_SOCKET "/run/tickslab/control.sock"
#define TKS_DEFAULT_JOURNAL_DIR "/var/lib/tickslab"
#define TKS_CONFIG_ERR_MAX 512

/* The config's own enums.  Each has its names, as the file writes them, in
 * the enum's order, and a _name() that gives "?" for a value outside it. */
enum tks_fsync { TKS_FSYNC_ALWAYS, TKS_FSYNC_INTERVAL, TKS_FSYNC_NEVER };
#define TKS_FSYNC_COUNT (TKS_FSYNC_NEVER + 1)
extern const char *const tks_fsync_names[TKS_FSYNC_COUNT];
const char *tks_fsync_name(enum tks_fsync f);

enum tks_on_error { TKS_ON_ERROR_BACKPRESSURE, TKS_ON_ERROR_REJECT };
#define TKS_ON_ERROR_COUNT (TKS_ON_ERROR_REJECT + 1)
extern const char *const tks_on_error_names[TKS_ON_ERROR_COUNT];
const char *tks_on_error_name(enum tks_on_error e);

enum tks_slow_policy { TKS_SLOW_DISCONNECT, TKS_SLOW_DROP };
#define TKS_SLOW_COUNT (TKS_SLOW_DROP + 1)
extern const char *const tks_slow_policy_names[TKS_SLOW_COUNT];
const char *tks_slow_policy_name(enum tks_slow_policy p);

/* subscribe.send_thread: auto is on where the daemon may run on 2 CPUs or more. */
enum tks_send_thread { TKS_SEND_THREAD_AUTO, TKS_SEND_THREAD_ON, TKS_SEND_THREAD_OFF };
#define TKS_SEND_THREAD_COUNT (TKS_SEND_THREAD_OFF + 1)
extern const char *const tks_send_thread_names[TKS_SEND_THREAD_COUNT];
const char *tks_send_thread_name(enum tks_send_thread t);

enum tks_when_full { TKS_WHEN_FULL_EVICT_OLDEST, TKS_WHEN_FULL_REJECT, TKS_WHEN_FULL_BACKPRESSURE };
#define TKS_WHEN_FULL_COUNT (TKS_WHEN_FULL_BACKPRESSURE + 1)
extern const char *const tks_when_full_names[TKS_WHEN_FULL_COUNT];
const char *tks_when_full_name(enum tks_when_full w);

/* How the Kafka producers chose a symbol's partition (kafka.source.partitioner):
 * murmur2 as the Java client (and librdkafka's murmur2_random), crc32 as
 * librdkafka's default consistent_random. */
enum tks_partitioner { TKS_PARTITIONER_MURMUR2, TKS_PARTITIONER_CRC32 };
#define TKS_PARTITIONER_COUNT (TKS_PARTITIONER_CRC32 + 1)
extern const char *const tks_partitioner_names[TKS_PARTITIONER_COUNT];

/* What the Kafka sink does to TCP ingest once kafka.sink.max_queue_bytes
 * of the journal wait for Kafka. */
enum tks_sink_full { TKS_SINK_FULL_BACKPRESSURE, TKS_SINK_FULL_REJECT };
#define TKS_SINK_FULL_COUNT (TKS_SINK_FULL_REJECT + 1)
extern const char *const tks_sink_full_names[TKS_SINK_FULL_COUNT];

/* A PROPS key: librdkafka properties, "name\0value\0" pairs, then "\0". */
#define TKS_CONFIG_PROPS_BYTES 4096
#define TKS_CONFIG_PROPS_MAX 64 /* pairs */
/* The next pair of a PROPS buffer from *pos (0 first): true with *name and
 * *value set, false at the end. */
bool tks_config_props_next(const char *props, size_t *pos, const char **name, const char **value);

#define TKS_CONFIG_MAX_BYTES (1 << 20) /* a larger file is refused */

struct tks_config {
  char path[4096]; /* the file read, or "" for defaults */

  struct {
    char listen[300];        /* as written: "127.0.0.1:7070", "[::1]:7070" */
    char host[256];          /* numeric address, no brackets */
    uint16_t port;
    uint32_t max_connections;    /* default 1024, 1..1000000 */
    uint32_t max_message_bytes;  /* default 65536, 64..64 MiB */
    uint32_t read_buffer_bytes;  /* default 256 KiB: per-connection read buffer */
    uint64_t idle_timeout_ns;    /* default 0: none; close a client silent this long */
    uint64_t message_timeout_ns; /* default 10 s; 0: none; a message whole within it */
    uint32_t min_rate;           /* default 1 KiB: bytes/s while a message is unfinished */
    uint32_t max_connections_per_ip; /* default 0: no limit */
  } ingest;

  struct {
    char listen[300]; /* as ingest.listen, or "off" (host "" and port 0) */
    char host[256];
    uint16_t port;
    uint32_t max_connections;         /* default 64 */
    uint32_t max_connections_per_ip;  /* default 0: no limit */
    uint64_t max_queue_bytes;         /* default 8 MiB: a subscriber's unsent bytes */
    enum tks_slow_policy slow_policy; /* default disconnect */
    enum tks_send_thread send_thread; /* default auto */
  } subscribe;

  struct {
    char socket[108]; /* sun_path */
    char socket_mode[8];   /* default "0600": octal, applied after bind */
    char socket_group[64]; /* default "": none; else the socket's group */
  } control;

  struct {
    char listen[300]; /* as ingest.listen, or "off" (the default: host "" and port 0) */
    char host[256];
    uint16_t port;
  } metrics;

  struct {
    enum tks_mode mode;       /* default slotted */
    uint64_t page_size;       /* default 1 MiB; 64 KiB..1 GiB, multiple of 4096 */
    double growth_factor;     /* default 1.25; 1.01..4 */
    enum tks_huge_pages huge_pages; /* default auto: for the load at start only (bench/README.md) */
    uint32_t max_symbols;     /* default 1000000 */
    uint32_t max_strings;     /* default 65536: distinct values of string fields */
  } store;

  struct tks_schema schema; /* default MarketEvent */

  struct {
    bool enabled;                /* default true */
    char dir[4096];              /* default /var/lib/tickslab */
    enum tks_fsync fsync;        /* default interval */
    uint64_t fsync_interval_ns;  /* default 1 s; 1 ms..1 h */
    enum tks_on_corrupt on_corrupt; /* default truncate */
    uint64_t segment_bytes;      /* default 256 MiB; rotate at this size */
    uint64_t max_bytes;          /* default 0: no cap; else writes past it fail as ENOSPC */
    enum tks_on_error on_error;  /* default backpressure: what a failing write does to ingest */
    uint64_t checkpoint_interval_ns; /* default 5 min; 0: off; a checkpoint this often */
    uint64_t checkpoint_bytes; /* default 1 GiB; 0: off; a checkpoint after this much journal */
  } journal;

  struct {
    bool enabled;            /* default true */
    char dir[4096];          /* default "": <journal.dir>/archive */
    uint64_t roll_at_ns;     /* default 00:00: UTC time of day of the rollover */
    uint64_t retention_ns;   /* default 0: keep every day; else days older are deleted */
    uint32_t level;          /* default 3: zstd level, 1..19 */
  } archive;

  struct {
    uint64_t max_memory;         /* default 0: no limit; else at least 8 MiB */
    enum tks_when_full when_full; /* default evict_oldest */
    uint64_t retention_ns;       /* default 0: keep; else drop ticks older than this */
  } limits;

  struct {
    uint32_t max_rows; /* default 10000, 1..1000000: rows one query answers */
  } query;

  struct {
    enum tks_log_level level; /* default info */
  } log;

  struct {
    struct {
      char brokers[1024];               /* default "": the source is off */
      char topic[250];                  /* default "ticks" */
      char group[256];                  /* default "tickslab" */
      char from[64];                    /* default start_of_day; committed, or a time */
      enum tks_partitioner partitioner; /* default murmur2 */
      char node[64];                    /* default "": the host name */
      char nodes_topic[250];            /* default "tickslab.nodes": the fleet's directory */
      char properties[TKS_CONFIG_PROPS_BYTES];
    } source;
    struct {
      char brokers[1024];         /* default "": the sink is off */
      char topic[250];            /* default "ticks" */
      uint64_t max_queue_bytes;   /* default 1 GiB of journal not yet acknowledged */
      enum tks_sink_full on_full; /* default backpressure */
      char properties[TKS_CONFIG_PROPS_BYTES];
    } sink;
  } kafka;
};

/* ---- the key table ---------------------------------------------------- */

/* How a key's value is written and stored. */
enum tks_config_type {
  TKS_CONFIG_LISTEN,      /* "host:port" text in char[]; the parsed host and port go to
                        * the section's host and port (ingest, subscribe, metrics) */
  TKS_CONFIG_PATH,        /* char[], not empty, NUL-terminated */
  TKS_CONFIG_UINT,        /* a whole number in a uint32_t or uint64_t */
  TKS_CONFIG_SIZE,        /* bytes, written "64KiB", in a uint32_t or uint64_t */
  TKS_CONFIG_DURATION,    /* ns in a uint64_t, written "500ms", "1s", "0" */
  TKS_CONFIG_BOOL,        /* bool */
  TKS_CONFIG_F64,         /* double */
  TKS_CONFIG_ENUM,        /* an enum, written as one of names[] */
  TKS_CONFIG_TIME_OF_DAY, /* ns since 00:00 UTC in a uint64_t, written "00:00" or "23:59:30" */
  TKS_CONFIG_SCHEMA,      /* struct tks_schema, written as the list of fields */
  TKS_CONFIG_STRING,      /* char[], NUL-terminated, may be empty (dflt_str) */
  TKS_CONFIG_PROPS,       /* a mapping of names to scalars, in a PROPS buffer */
};

/* What a reload (SIGHUP) may do with a key that changed.  lib/ applies
 * nothing: the daemon maps each group to what it calls once the new value
 * is in its running config. */
enum tks_reload {
  TKS_RELOAD_FIXED,   /* needs a restart: the change is logged and refused */
  TKS_RELOAD_LIVE,    /* copied; read from the running config where it is used */
  TKS_RELOAD_LOG,     /* copied, then the log threshold is set */
  TKS_RELOAD_JOURNAL, /* copied, then the journal writer takes the section */
  TKS_RELOAD_LIMITS,  /* copied, then the memory limits take the section */
  TKS_RELOAD_IDLE,    /* copied, then the client sweep (idle, slow) is started or stopped */
};

struct tks_config_key {
  const char *name; /* as written in the file: "ingest.max_connections", "schema" */
  enum tks_config_type type;
  enum tks_reload reload;
  size_t off, size; /* the field in struct tks_config */
  /* The default, by type (the schema's is tks_schema_default()). */
  uint64_t dflt;        /* UINT, SIZE, DURATION, BOOL, ENUM */
  double dflt_f64;      /* F64 */
  const char *dflt_str; /* LISTEN, PATH */
  /* The values accepted, inclusive. */
  uint64_t min, max;        /* UINT, SIZE, DURATION (ns) */
  double min_f64, max_f64;  /* F64 */
  const char *const *names; /* ENUM: the value names, in the enum's order */
  unsigned nnames;
  const char *noun; /* ENUM: the word of "unknown <noun> 'x'"; NULL: "value" */
  /*
   * A rule of the key's own beyond its type and range (NULL: none), for the
   * parser: text is the value as written, v the number read (a path's
   * length).  Returns 0, or -EINVAL with why, the message after "key: ".
   * It runs after the range check, and for a path before the not-empty and
   * fits-the-field checks.
   */
  int (*check)(const char *text, uint64_t v, char *why, size_t n);
  bool may_be_off; /* LISTEN: "off" turns the listener off */
};

/* A value formatted by tks_config_key_format() is cut to this (NUL included). */
#define TKS_CONFIG_VALUE_MAX 160

/* Every key, *n of them, in the order the default file lists them.  The
 * table is static: never freed, never changed. */
const struct tks_config_key *tks_config_keys(size_t *n);

/* The key of that name ("log.level"), or NULL. */
const struct tks_config_key *tks_config_key_find(const char *name);

/* k's value in c as the file would write it ("64KiB", "1s", "interval";
 * the schema as "MarketEvent, 5 fields"), cut to buf's n bytes. */
void tks_config_key_format(const struct tks_config_key *k, const struct tks_config *c, char *buf,
                           size_t n);

/* True if k has the same value in a and b: a listen address by its host and
 * port ("localhost:7070" is "127.0.0.1:7070"), the schema by its fields'
 * names, types, required flags and defaults, the rest by their bytes. */
bool tks_config_key_equal(const struct tks_config_key *k, const struct tks_config *a,
                          const struct tks_config *b);

/* How k changed from a to b, for a log line: "<a> -> <b>" as formatted by
 * tks_config_key_format (each side cut to TKS_CONFIG_VALUE_MAX - 1 bytes),
 * or for the schema its first difference ("field 2 ticker -> sym",
 * "5 fields -> 6 fields"); "" for the schema when equal.  Cut to buf's n
 * bytes; 2 * TKS_CONFIG_VALUE_MAX always holds it. */
void tks_config_key_diff(const struct tks_config_key *k, const struct tks_config *a,
                         const struct tks_config *b, char *buf, size_t n);

/* Copies k's value from src into dst, with what is derived from it (a
 * listen address's host and port). */
void tks_config_key_copy(const struct tks_config_key *k, struct tks_config *dst,
                         const struct tks_config *src);

/* ---- reading ----------------------------------------------------------- */

/* The defaults, from the key table, as documented in config/tickslab.yaml. */
void tks_config_defaults(struct tks_config *c);

/*
 * Reads path over the defaults.  Returns 0, or -errno with err set to
 * "path:line:column: message" (or "path: strerror" when the file cannot be
 * read).  On error *c is left with the defaults.
 */
int tks_config_load(struct tks_config *c, const char *path, char *err, size_t errlen);

/* The same from a string; name is used in messages. */
int tks_config_parse(struct tks_config *c, const char *text, size_t len, const char *name,
                     char *err, size_t errlen);

/*
 * Splits "host:port", "[v6]:port" into numeric host and port.  Returns 0 or
 * -EINVAL (with the reason in err).
 */
int tks_config_parse_listen(const char *s, char *host, size_t hostlen, uint16_t *port, char *err,
                            size_t errlen);

#endif
