/*
 * The configuration: one YAML file read with libyaml.  Every key has a
 * default (tks_config_defaults); an unknown key, a value of the wrong type
 * or out of range is refused with "file:line:column: what is wrong", and
 * the caller does not start half-configured.  config/tickslab.yaml is the
 * commented default and must parse to exactly the defaults.
 */
#ifndef TKS_CONFIG_H
#define TKS_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "journal.h"
#include "schema.h"
#include "store.h"
#include "util.h"

#define TKS_DEFAULT_CONFIG_PATH "/etc/tickslab/tickslab.yaml"
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

enum tks_when_full { TKS_WHEN_FULL_EVICT_OLDEST, TKS_WHEN_FULL_REJECT, TKS_WHEN_FULL_BACKPRESSURE };
#define TKS_WHEN_FULL_COUNT (TKS_WHEN_FULL_BACKPRESSURE + 1)
extern const char *const tks_when_full_names[TKS_WHEN_FULL_COUNT];
const char *tks_when_full_name(enum tks_when_full w);

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
  } ingest;

  struct {
    char socket[108]; /* sun_path */
  } control;

  struct {
    enum tks_mode mode;       /* default slotted */
    uint64_t page_size;       /* default 1 MiB; 64 KiB..1 GiB, multiple of 4096 */
    double growth_factor;     /* default 1.25; 1.01..4 */
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
  } journal;

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
};

/* The defaults, as documented in config/tickslab.yaml. */
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
