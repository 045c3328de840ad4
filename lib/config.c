/*
 * Config loading.  keys[] below is the one list of keys: name, type,
 * default, range, field and reload group; the defaults, the reader and the
 * daemon's reload (through tks_config_keys) all walk it.  libyaml's event
 * API drives a small recursive-descent reader whose shape (top-level
 * sections of scalar keys, schema a list of field mappings) comes from the
 * table, so it never builds a tree and stops at the first thing that is
 * wrong.  Every error names "file:line:column" (1-based).  Anchors,
 * aliases, nesting deeper than CONFIG_MAX_DEPTH and files over
 * TKS_CONFIG_MAX_BYTES are refused.
 */
#include "config.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#define CONFIG_MAX_DEPTH 16
#define CONFIG_MAX_KEYS 16     /* per mapping; the largest section, journal, has 10 */
#define CONFIG_MAX_SECTIONS 24 /* mappings: the top level, its sections and theirs (14) */
#define SUN_PATH_MAX 107       /* sizeof(sun_path) - 1 */

/* ---- the config's enums ---------------------------------------------- */

const char *const tks_fsync_names[TKS_FSYNC_COUNT] = {"always", "interval", "never"};
const char *const tks_on_error_names[TKS_ON_ERROR_COUNT] = {"backpressure", "reject"};
const char *const tks_when_full_names[TKS_WHEN_FULL_COUNT] = {"evict_oldest", "reject",
                                                              "backpressure"};

const char *tks_fsync_name(enum tks_fsync f) {
  return (unsigned)f < TKS_FSYNC_COUNT ? tks_fsync_names[f] : "?";
}

const char *const tks_slow_policy_names[TKS_SLOW_COUNT] = {"disconnect", "drop"};
const char *const tks_send_thread_names[TKS_SEND_THREAD_COUNT] = {"auto", "on", "off"};
const char *tks_send_thread_name(enum tks_send_thread t) {
  return (unsigned)t < TKS_SEND_THREAD_COUNT ? tks_send_thread_names[t] : "?";
}
const char *const tks_partitioner_names[TKS_PARTITIONER_COUNT] = {"murmur2", "crc32"};
const char *const tks_sink_full_names[TKS_SINK_FULL_COUNT] = {"backpressure", "reject"};
const char *tks_slow_policy_name(enum tks_slow_policy p) {
  return (unsigned)p < TKS_SLOW_COUNT ? tks_slow_policy_names[p] : "?";
}

const char *tks_on_error_name(enum tks_on_error e) {
  return (unsigned)e < TKS_ON_ERROR_COUNT ? tks_on_error_names[e] : "?";
}

const char *tks_when_full_name(enum tks_when_full w) {
  return (unsigned)w < TKS_WHEN_FULL_COUNT ? tks_when_full_names[w] : "?";
}

/* ---- the rules of single keys ------------------------------------------ */

static void set_str(char *dst, size_t size, const char *src) {
  /* Zero the whole buffer so that configs compare equal with memcmp. */
  memset(dst, 0, size);
  snprintf(dst, size, "%s", src);
}

/* A short, printable rendition of user text for messages. */
static const char *show(const char *s, char *buf, size_t size) {
  size_t i = 0, max = size - 4;
  for (; *s && i < max; s++) buf[i++] = isprint((unsigned char)*s) ? *s : '?';
  if (*s) {
    memcpy(buf + i, "...", 3);
    i += 3;
  }
  buf[i] = '\0';
  return buf;
}

static int check_socket(const char *text, uint64_t len, char *why, size_t n) {
  (void)text;
  if (len <= SUN_PATH_MAX) return 0;
  snprintf(why, n, "the path is %llu bytes, a Unix socket path can have at most %d",
           (unsigned long long)len, SUN_PATH_MAX);
  return -EINVAL;
}

/* control.socket_mode: three or four octal digits, the owner's rw kept. */
static int check_socket_mode(const char *text, uint64_t len, char *why, size_t n) {
  char b[40];
  bool ok = len >= 3 && len <= 4;
  for (uint64_t i = 0; ok && i < len; i++) ok = text[i] >= '0' && text[i] <= '7';
  if (!ok) {
    snprintf(why, n, "'%s' is not an octal mode (three or four digits 0-7, as in \"0660\")",
             show(text, b, sizeof b));
    return -EINVAL;
  }
  unsigned long m = strtoul(text, NULL, 8);
  if (m & ~0777ul) {
    snprintf(why, n, "'%s': only permission bits (0777) may be set", text);
    return -EINVAL;
  }
  if ((m & 0600) != 0600) {
    snprintf(why, n, "'%s' takes read and write from the owner (the daemon itself)", text);
    return -EINVAL;
  }
  return 0;
}

/* control.socket_group: a group this system knows, or "" (none). */
static int check_socket_group(const char *text, uint64_t len, char *why, size_t n) {
  char b[80];
  if (len == 0) return 0;
  if (len > 63) {
    snprintf(why, n, "the group name is %llu bytes, at most 63", (unsigned long long)len);
    return -EINVAL;
  }
  errno = 0;
  if (!getgrnam(text)) {
    snprintf(why, n, "unknown group '%s'%s%s", show(text, b, sizeof b), errno ? ": " : "",
             errno ? strerror(errno) : "");
    return -EINVAL;
  }
  return 0;
}

static int check_journal_dir(const char *text, uint64_t len, char *why, size_t n) {
  (void)text;
  if (len) return 0;
  snprintf(why, n, "the path is empty (to run without a journal: enabled: false)");
  return -EINVAL;
}

static int check_page_size(const char *text, uint64_t v, char *why, size_t n) {
  char b[80];
  if (v % 4096 == 0) return 0;
  snprintf(why, n, "%s is not a multiple of 4096", show(text, b, sizeof b));
  return -EINVAL;
}

#define MIN_MAX_MEMORY (8u << 20)

static int check_max_memory(const char *text, uint64_t v, char *why, size_t n) {
  char b[32];
  (void)text;
  if (v == 0 || v >= MIN_MAX_MEMORY) return 0;
  tks_format_size(MIN_MAX_MEMORY, b, sizeof b);
  snprintf(why, n, "at least %s, or 0 for no limit", b);
  return -EINVAL;
}

/* Kafka's rule for topic names: 1..249 of [a-zA-Z0-9._-]. */
static int check_topic(const char *text, uint64_t len, char *why, size_t n) {
  char b[80];
  if (len == 0 || len > 249) {
    snprintf(why, n, "a topic name has 1 to 249 characters");
    return -EINVAL;
  }
  for (const char *c = text; *c; c++)
    if (!(isalnum((unsigned char)*c) || *c == '.' || *c == '_' || *c == '-')) {
      snprintf(why, n, "'%s' is not a Kafka topic name (letters, digits, '.', '_', '-')",
               show(text, b, sizeof b));
      return -EINVAL;
    }
  return 0;
}

/* A bootstrap list "host:port,host:port": printable, no spaces. */
static int check_brokers(const char *text, uint64_t len, char *why, size_t n) {
  char b[80];
  for (const char *c = text; *c; c++)
    if (!isgraph((unsigned char)*c)) {
      snprintf(why, n, "'%s' is not a broker list (host:port,host:port, no spaces)",
               show(text, b, sizeof b));
      return -EINVAL;
    }
  return 0;
}

/* kafka.source.from: committed, start_of_day, or a time as the queries take it. */
static int check_kafka_from(const char *text, uint64_t len, char *why, size_t n) {
  char b[80];
  int64_t ns;
  if (strcmp(text, "committed") == 0 || strcmp(text, "start_of_day") == 0) return 0;
  if (tks_parse_time(text, &ns) == 0) return 0;
  snprintf(why, n,
           "'%s' is not committed, start_of_day or a time (ns since the epoch, "
           "2026-12-03T09:30:00Z, 2026-12-03)",
           show(text, b, sizeof b));
  return -EINVAL;
}

/* kafka.source.node: the node's name in the fleet's directory. */
static int check_node(const char *text, uint64_t len, char *why, size_t n) {
  char b[80];
  for (const char *c = text; *c; c++)
    if (!(isalnum((unsigned char)*c) || *c == '.' || *c == '_' || *c == '-')) {
      snprintf(why, n, "'%s' is not a node name (letters, digits, '.', '_', '-')",
               show(text, b, sizeof b));
      return -EINVAL;
    }
  return 0;
}

bool tks_config_props_next(const char *props, size_t *pos, const char **name, const char **value) {
  if (*pos >= TKS_CONFIG_PROPS_BYTES || !props[*pos]) return false;
  *name = props + *pos;
  *value = *name + strlen(*name) + 1;
  *pos = (size_t)(*value + strlen(*value) + 1 - props);
  return true;
}

/* ---- the key table ----------------------------------------------------- */

#define KEY(key, t, group, field)                                    \
  .name = key, .type = TKS_CONFIG_##t, .reload = TKS_RELOAD_##group, \
  .off = offsetof(struct tks_config, field), .size = sizeof(((struct tks_config *)0)->field)
#define NAMES(a) .names = a, .nnames = TKS_ARRAY_SIZE(a)
#define SECONDS 1000000000ull
#define DAYS (86400 * SECONDS)

/* In the order of config/tickslab.yaml; a section's keys are listed together. */
static const struct tks_config_key keys[] = {
    {KEY("ingest.listen", LISTEN, FIXED, ingest.listen), .dflt_str = "127.0.0.1:7070"},
    {KEY("ingest.max_connections", UINT, LIVE, ingest.max_connections), .dflt = 1024, .min = 1,
     .max = 1000000},
    {KEY("ingest.max_message_bytes", SIZE, FIXED, ingest.max_message_bytes), .dflt = 65536,
     .min = 64, .max = 64u << 20},
    {KEY("ingest.read_buffer", SIZE, FIXED, ingest.read_buffer_bytes), .dflt = 256u << 10,
     .min = 64, .max = 1u << 30},
    {KEY("ingest.idle_timeout", DURATION, IDLE, ingest.idle_timeout_ns), .dflt = 0, .min = 0,
     .max = 7 * DAYS},
    {KEY("ingest.message_timeout", DURATION, IDLE, ingest.message_timeout_ns), .dflt = 10 * SECONDS,
     .min = 0, .max = 3600 * SECONDS},
    {KEY("ingest.min_rate", SIZE, IDLE, ingest.min_rate), .dflt = 1024, .min = 0, .max = 1u << 30},
    {KEY("ingest.max_connections_per_ip", UINT, LIVE, ingest.max_connections_per_ip), .dflt = 0,
     .min = 0, .max = 1000000},
    {KEY("subscribe.listen", LISTEN, FIXED, subscribe.listen), .dflt_str = "127.0.0.1:7071",
     .may_be_off = true},
    {KEY("subscribe.max_connections", UINT, LIVE, subscribe.max_connections), .dflt = 64, .min = 1,
     .max = 100000},
    {KEY("subscribe.max_connections_per_ip", UINT, LIVE, subscribe.max_connections_per_ip),
     .dflt = 0, .min = 0, .max = 100000},
    {KEY("subscribe.max_queue_bytes", SIZE, LIVE, subscribe.max_queue_bytes), .dflt = 8u << 20,
     .min = 64u << 10, .max = 1ull << 32},
    {KEY("subscribe.slow_policy", ENUM, LIVE, subscribe.slow_policy), .dflt = TKS_SLOW_DISCONNECT,
     NAMES(tks_slow_policy_names), .noun = "policy"},
    {KEY("subscribe.send_thread", ENUM, FIXED, subscribe.send_thread), .dflt = TKS_SEND_THREAD_AUTO,
     NAMES(tks_send_thread_names), .noun = "value"},
    {KEY("control.socket", PATH, FIXED, control.socket), .dflt_str = TKS_DEFAULT_CONTROL_SOCKET,
     .check = check_socket},
    {KEY("control.socket_mode", PATH, FIXED, control.socket_mode), .dflt_str = "0600",
     .check = check_socket_mode},
    {KEY("control.socket_group", PATH, FIXED, control.socket_group), .dflt_str = "",
     .check = check_socket_group},
    {KEY("metrics.listen", LISTEN, FIXED, metrics.listen), .dflt_str = "off", .may_be_off = true},
    {KEY("store.mode", ENUM, FIXED, store.mode), .dflt = TKS_MODE_SLOTTED, NAMES(tks_mode_names),
     .noun = "mode"},
    {KEY("store.page_size", SIZE, FIXED, store.page_size), .dflt = 1u << 20, .min = 64u << 10,
     .max = 1u << 30, .check = check_page_size},
    {KEY("store.growth_factor", F64, FIXED, store.growth_factor), .dflt_f64 = 1.25, .min_f64 = 1.01,
     .max_f64 = 4},
    {KEY("store.huge_pages", ENUM, FIXED, store.huge_pages), .dflt = TKS_HUGE_PAGES_AUTO,
     NAMES(tks_huge_pages_names), .noun = "value"},
    {KEY("store.max_symbols", UINT, FIXED, store.max_symbols), .dflt = 1000000, .min = 1,
     .max = 1u << 31},
    {KEY("store.max_strings", UINT, FIXED, store.max_strings), .dflt = 65536, .min = 1,
     .max = 1u << 31},
    {KEY("schema", SCHEMA, FIXED, schema)},
    {KEY("journal.enabled", BOOL, FIXED, journal.enabled), .dflt = true},
    {KEY("journal.dir", PATH, FIXED, journal.dir), .dflt_str = TKS_DEFAULT_JOURNAL_DIR,
     .check = check_journal_dir},
    {KEY("journal.fsync", ENUM, JOURNAL, journal.fsync), .dflt = TKS_FSYNC_INTERVAL,
     NAMES(tks_fsync_names)},
    {KEY("journal.fsync_interval", DURATION, JOURNAL, journal.fsync_interval_ns), .dflt = SECONDS,
     .min = 1000000, .max = 3600 * SECONDS},
    {KEY("journal.on_corrupt", ENUM, FIXED, journal.on_corrupt), .dflt = TKS_CORRUPT_TRUNCATE,
     NAMES(tks_on_corrupt_names)},
    {KEY("journal.segment_size", SIZE, FIXED, journal.segment_bytes), .dflt = 256ull << 20,
     .min = 1u << 20, .max = 1ull << 40},
    {KEY("journal.max_bytes", SIZE, FIXED, journal.max_bytes), .dflt = 0, .min = 0,
     .max = 1ull << 50},
    {KEY("journal.on_error", ENUM, JOURNAL, journal.on_error), .dflt = TKS_ON_ERROR_BACKPRESSURE,
     NAMES(tks_on_error_names)},
    {KEY("journal.checkpoint_interval", DURATION, LIVE, journal.checkpoint_interval_ns),
     .dflt = 300 * SECONDS, .min = 0, .max = 7 * DAYS},
    {KEY("journal.checkpoint_bytes", SIZE, LIVE, journal.checkpoint_bytes), .dflt = 1ull << 30,
     .min = 0, .max = 1ull << 50},
    {KEY("archive.enabled", BOOL, FIXED, archive.enabled), .dflt = true},
    {KEY("archive.dir", PATH, FIXED, archive.dir), .dflt_str = ""},
    {KEY("archive.roll_at", TIME_OF_DAY, LIVE, archive.roll_at_ns), .dflt = 0, .min = 0,
     .max = DAYS - 1},
    {KEY("archive.retention", DURATION, LIVE, archive.retention_ns), .dflt = 0, .min = 0,
     .max = 36500 * DAYS},
    {KEY("archive.level", UINT, LIVE, archive.level), .dflt = 3, .min = 1, .max = 19},
    {KEY("limits.max_memory", SIZE, LIMITS, limits.max_memory), .dflt = 0, .min = 0,
     .max = 1ull << 50, .check = check_max_memory},
    {KEY("limits.when_full", ENUM, LIMITS, limits.when_full), .dflt = TKS_WHEN_FULL_EVICT_OLDEST,
     NAMES(tks_when_full_names)},
    {KEY("limits.retention", DURATION, LIMITS, limits.retention_ns), .dflt = 0, .min = 0,
     .max = 3650 * DAYS},
    {KEY("query.max_rows", UINT, LIVE, query.max_rows), .dflt = 10000, .min = 1, .max = 1000000},
    {KEY("log.level", ENUM, LOG, log.level), .dflt = TKS_LOG_INFO, NAMES(tks_log_level_names),
     .noun = "level"},
    {KEY("kafka.source.brokers", STRING, FIXED, kafka.source.brokers), .dflt_str = "",
     .check = check_brokers},
    {KEY("kafka.source.topic", STRING, FIXED, kafka.source.topic), .dflt_str = "ticks",
     .check = check_topic},
    {KEY("kafka.source.group", STRING, FIXED, kafka.source.group), .dflt_str = "tickslab",
     .check = check_node},
    {KEY("kafka.source.from", STRING, FIXED, kafka.source.from), .dflt_str = "start_of_day",
     .check = check_kafka_from},
    {KEY("kafka.source.partitioner", ENUM, FIXED, kafka.source.partitioner),
     .dflt = TKS_PARTITIONER_MURMUR2, NAMES(tks_partitioner_names), .noun = "partitioner"},
    {KEY("kafka.source.node", STRING, FIXED, kafka.source.node), .dflt_str = "",
     .check = check_node},
    {KEY("kafka.source.nodes_topic", STRING, FIXED, kafka.source.nodes_topic),
     .dflt_str = "tickslab.nodes", .check = check_topic},
    {KEY("kafka.source.properties", PROPS, FIXED, kafka.source.properties)},
    {KEY("kafka.sink.brokers", STRING, FIXED, kafka.sink.brokers), .dflt_str = "",
     .check = check_brokers},
    {KEY("kafka.sink.topic", STRING, FIXED, kafka.sink.topic), .dflt_str = "ticks",
     .check = check_topic},
    {KEY("kafka.sink.max_queue_bytes", SIZE, FIXED, kafka.sink.max_queue_bytes), .dflt = 1ull << 30,
     .min = 1u << 20, .max = 1ull << 50},
    {KEY("kafka.sink.on_full", ENUM, FIXED, kafka.sink.on_full), .dflt = TKS_SINK_FULL_BACKPRESSURE,
     NAMES(tks_sink_full_names), .noun = "policy"},
    {KEY("kafka.sink.properties", PROPS, FIXED, kafka.sink.properties)},
};
#define NKEYS TKS_ARRAY_SIZE(keys)

const struct tks_config_key *tks_config_keys(size_t *n) {
  *n = NKEYS;
  return keys;
}

const struct tks_config_key *tks_config_key_find(const char *name) {
  for (size_t i = 0; i < NKEYS; i++)
    if (strcmp(keys[i].name, name) == 0) return &keys[i];
  return NULL;
}

/* ---- values in struct tks_config --------------------------------------- */

static void *field_at(const struct tks_config_key *k, struct tks_config *c) {
  return (char *)c + k->off;
}

static const void *cfield_at(const struct tks_config_key *k, const struct tks_config *c) {
  return (const char *)c + k->off;
}

/* The unsigned number (UINT, SIZE, DURATION, BOOL, ENUM) in a field of that size. */
static uint64_t load_uint(const void *p, size_t size) {
  uint8_t u8;
  uint16_t u16;
  uint32_t u32;
  uint64_t u64;
  switch (size) {
  case 1: memcpy(&u8, p, 1); return u8;
  case 2: memcpy(&u16, p, 2); return u16;
  case 4: memcpy(&u32, p, 4); return u32;
  default: memcpy(&u64, p, 8); return u64;
  }
}

/* v fits: the parser checked it against the key's range. */
static void store_uint(void *p, size_t size, uint64_t v) {
  uint8_t u8 = (uint8_t)v;
  uint16_t u16 = (uint16_t)v;
  uint32_t u32 = (uint32_t)v;
  switch (size) {
  case 1: memcpy(p, &u8, 1); break;
  case 2: memcpy(p, &u16, 2); break;
  case 4: memcpy(p, &u32, 4); break;
  default: memcpy(p, &v, 8); break;
  }
}

/* Where a LISTEN key's parsed host and port go: its section's. */
static void listen_parts(const struct tks_config_key *k, const struct tks_config *c,
                         const char **host, size_t *host_size, const uint16_t **port) {
  if (k->off == offsetof(struct tks_config, subscribe.listen)) {
    *host = c->subscribe.host, *host_size = sizeof c->subscribe.host, *port = &c->subscribe.port;
  } else if (k->off == offsetof(struct tks_config, metrics.listen)) {
    *host = c->metrics.host, *host_size = sizeof c->metrics.host, *port = &c->metrics.port;
  } else {
    *host = c->ingest.host, *host_size = sizeof c->ingest.host, *port = &c->ingest.port;
  }
}

/* Parses a LISTEN key's text into its section's host and port ("off":
 * both empty, where the key may be off). */
static int parse_listen_key(const struct tks_config_key *k, struct tks_config *c, const char *s,
                            char *why, size_t n) {
  const char *h;
  size_t hs;
  const uint16_t *pp;
  listen_parts(k, c, &h, &hs, &pp);
  if (k->may_be_off && strcmp(s, "off") == 0) {
    *(char *)h = '\0';
    *(uint16_t *)pp = 0;
    return 0;
  }
  return tks_config_parse_listen(s, (char *)h, hs, (uint16_t *)pp, why, n);
}

void tks_config_key_format(const struct tks_config_key *k, const struct tks_config *c, char *buf,
                           size_t n) {
  const void *p = cfield_at(k, c);
  uint64_t v;
  double d;
  switch (k->type) {
  case TKS_CONFIG_LISTEN:
  case TKS_CONFIG_PATH:
  case TKS_CONFIG_STRING:
    /* A path whose default is empty (archive.dir: derived) is written "". */
    snprintf(buf, n, "%s", *(const char *)p ? (const char *)p : "\"\"");
    return;
  case TKS_CONFIG_PROPS: {
    /* {name: value, ...} */
    size_t pos = 0, used = 0;
    const char *pn, *pv, *sep = "";
    used += (size_t)snprintf(buf, n, "{");
    while (used < n && tks_config_props_next(p, &pos, &pn, &pv)) {
      used += (size_t)snprintf(buf + used, n - used, "%s%s: %s", sep, pn, pv);
      sep = ", ";
    }
    if (used < n) snprintf(buf + used, n - used, "}");
    return;
  }
  case TKS_CONFIG_SCHEMA:
    snprintf(buf, n, "%s, %u fields", c->schema.name, c->schema.nfields);
    return;
  case TKS_CONFIG_F64:
    memcpy(&d, p, sizeof d);
    snprintf(buf, n, "%g", d);
    return;
  default: break;
  }
  v = load_uint(p, k->size);
  switch (k->type) {
  case TKS_CONFIG_UINT: snprintf(buf, n, "%llu", (unsigned long long)v); break;
  case TKS_CONFIG_SIZE: tks_format_size(v, buf, n); break;
  case TKS_CONFIG_DURATION: tks_format_duration(v, buf, n); break;
  case TKS_CONFIG_TIME_OF_DAY:
    snprintf(buf, n, "%02u:%02u:%02u", (unsigned)(v / 3600000000000ull),
             (unsigned)(v / 60000000000ull % 60), (unsigned)(v / 1000000000ull % 60));
    break;
  case TKS_CONFIG_BOOL: snprintf(buf, n, "%s", v ? "true" : "false"); break;
  case TKS_CONFIG_ENUM: snprintf(buf, n, "%s", v < k->nnames ? k->names[v] : "?"); break;
  default: snprintf(buf, n, "?"); break;
  }
}

static bool same_default(const struct tks_field *a, const struct tks_field *b) {
  switch (a->type) {
  case TKS_TYPE_TIMESTAMP:
  case TKS_TYPE_I64: return a->dflt.i64 == b->dflt.i64;
  case TKS_TYPE_U32:
  case TKS_TYPE_SYMBOL:
  case TKS_TYPE_STRING: return a->dflt.u32 == b->dflt.u32;
  case TKS_TYPE_F64: return memcmp(&a->dflt.f64, &b->dflt.f64, sizeof a->dflt.f64) == 0;
  case TKS_TYPE_BOOL: return a->dflt.b == b->dflt.b;
  case TKS_TYPE__COUNT: break;
  }
  return true;
}

/* Describes the first difference between two schemas into buf ("" if none):
 * the declared fields, in order, with their types, required flags and defaults. */
static void schema_diff(const struct tks_schema *a, const struct tks_schema *b, char *buf,
                        size_t n) {
  buf[0] = '\0';
  unsigned common = a->nfields < b->nfields ? a->nfields : b->nfields;
  for (unsigned i = 0; i < common; i++) {
    const struct tks_field *x = &a->fields[i], *y = &b->fields[i];
    if (strcmp(x->name, y->name) != 0) {
      snprintf(buf, n, "field %u %s -> %s", i + 1, x->name, y->name);
      return;
    }
    if (x->type != y->type) {
      snprintf(buf, n, "field %s: %s -> %s", x->name, tks_type_name(x->type),
               tks_type_name(y->type));
      return;
    }
    if (x->required != y->required) {
      snprintf(buf, n, "field %s: %s -> %s", x->name, x->required ? "required" : "optional",
               y->required ? "required" : "optional");
      return;
    }
    if (!same_default(x, y)) {
      snprintf(buf, n, "field %s: another default", x->name);
      return;
    }
  }
  if (a->nfields != b->nfields) snprintf(buf, n, "%u fields -> %u fields", a->nfields, b->nfields);
}

bool tks_config_key_equal(const struct tks_config_key *k, const struct tks_config *a,
                          const struct tks_config *b) {
  const void *p = cfield_at(k, a), *q = cfield_at(k, b);
  switch (k->type) {
  case TKS_CONFIG_LISTEN: {
    const char *ha, *hb;
    size_t n;
    const uint16_t *pa, *pb;
    listen_parts(k, a, &ha, &n, &pa);
    listen_parts(k, b, &hb, &n, &pb);
    return strcmp(ha, hb) == 0 && *pa == *pb;
  }
  case TKS_CONFIG_PATH:
  case TKS_CONFIG_STRING: return strcmp(p, q) == 0;
  case TKS_CONFIG_SCHEMA: {
    char why[8];
    schema_diff(&a->schema, &b->schema, why, sizeof why);
    return why[0] == '\0';
  }
  default: return memcmp(p, q, k->size) == 0;
  }
}

void tks_config_key_diff(const struct tks_config_key *k, const struct tks_config *a,
                         const struct tks_config *b, char *buf, size_t n) {
  if (k->type == TKS_CONFIG_SCHEMA) {
    schema_diff(&a->schema, &b->schema, buf, n);
    return;
  }
  char was[TKS_CONFIG_VALUE_MAX], now[TKS_CONFIG_VALUE_MAX];
  tks_config_key_format(k, a, was, sizeof was);
  tks_config_key_format(k, b, now, sizeof now);
  snprintf(buf, n, "%s -> %s", was, now);
}

void tks_config_key_copy(const struct tks_config_key *k, struct tks_config *dst,
                         const struct tks_config *src) {
  memcpy(field_at(k, dst), cfield_at(k, src), k->size);
  if (k->type == TKS_CONFIG_LISTEN) {
    const char *hd, *hs;
    size_t n;
    const uint16_t *pd, *ps;
    listen_parts(k, dst, &hd, &n, &pd);
    listen_parts(k, src, &hs, &n, &ps);
    memcpy((char *)hd, hs, n);
    *(uint16_t *)pd = *ps;
  }
}

/* ---- defaults -------------------------------------------------------- */

void tks_config_defaults(struct tks_config *c) {
  memset(c, 0, sizeof *c);
  for (size_t i = 0; i < NKEYS; i++) {
    const struct tks_config_key *k = &keys[i];
    void *p = field_at(k, c);
    switch (k->type) {
    case TKS_CONFIG_LISTEN: {
      int e = parse_listen_key(k, c, k->dflt_str, NULL, 0);
      assert(e == 0);
      (void)e;
    }
      /* fall through */
    case TKS_CONFIG_PATH:
    case TKS_CONFIG_STRING: set_str(p, k->size, k->dflt_str); break;
    case TKS_CONFIG_PROPS: break; /* empty: zeroed */
    case TKS_CONFIG_F64: memcpy(p, &k->dflt_f64, sizeof k->dflt_f64); break;
    case TKS_CONFIG_SCHEMA: tks_schema_default(p); break;
    default: store_uint(p, k->size, k->dflt); break;
    }
  }
}

/* ---- listen addresses ------------------------------------------------ */

static int listen_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int listen_fail(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -EINVAL;
}

int tks_config_parse_listen(const char *s, char *host, size_t hostlen, uint16_t *port, char *err,
                            size_t errlen) {
  char h[INET6_ADDRSTRLEN + 1];
  const char *p; /* the port text */
  size_t n;
  int family;

  if (!s || !*s) return listen_fail(err, errlen, "empty address (expected host:port)");
  if (strlen(s) > 255) return listen_fail(err, errlen, "address is too long");
  if (s[0] == '[') {
    const char *close = strchr(s, ']');
    if (!close) return listen_fail(err, errlen, "missing ']' in '%s' (expected [v6]:port)", s);
    n = (size_t)(close - s - 1);
    if (close[1] != ':')
      return listen_fail(err, errlen, "missing port in '%s' (expected [v6]:port)", s);
    if (n == 0 || n >= sizeof h)
      return listen_fail(err, errlen, "'%s' is not a numeric IPv6 address", s);
    memcpy(h, s + 1, n);
    h[n] = '\0';
    p = close + 2;
    family = AF_INET6;
  } else {
    const char *colon = strrchr(s, ':');
    if (!colon) return listen_fail(err, errlen, "missing port in '%s' (expected host:port)", s);
    if (memchr(s, ':', (size_t)(colon - s)))
      return listen_fail(err, errlen, "an IPv6 address must be in brackets, as in [::1]:7070");
    n = (size_t)(colon - s);
    if (n == 0)
      return listen_fail(err, errlen,
                         "missing host in '%s' (use 0.0.0.0:port to listen on every interface)", s);
    if (n >= sizeof h)
      return listen_fail(err, errlen, "host in '%s' is not a numeric IPv4 address", s);
    memcpy(h, s, n);
    h[n] = '\0';
    if (strcmp(h, "localhost") == 0) strcpy(h, "127.0.0.1");
    p = colon + 1;
    family = AF_INET;
  }

  unsigned char addr[sizeof(struct in6_addr)];
  if (inet_pton(family, h, addr) != 1)
    return listen_fail(err, errlen,
                       family == AF_INET6
                           ? "'%s' is not a numeric IPv6 address"
                           : "host '%s' is not a numeric IPv4 address (names are not resolved; "
                             "'localhost' is accepted)",
                       h);
  if (!*p) return listen_fail(err, errlen, "missing port in '%s' (expected host:port)", s);
  uint64_t v;
  int r = tks_parse_u64(p, &v);
  if (r == -EINVAL) return listen_fail(err, errlen, "port '%s' is not a number (0..65535)", p);
  if (r == -ERANGE || v > 65535)
    return listen_fail(err, errlen, "port %s is out of range (0..65535)", p);
  if (strlen(h) >= hostlen) return listen_fail(err, errlen, "host '%s' is too long", h);
  strcpy(host, h);
  *port = (uint16_t)v;
  return 0;
}

/* ---- the reader ------------------------------------------------------ */

struct reader {
  yaml_parser_t yp;
  yaml_event_t ev;
  bool have_ev;
  int depth;
  const char *name; /* file name for messages */
  const char *text;
  size_t len;
  char *err;
  size_t errlen;
  struct tks_config *c; /* the copy being filled */
  /* Which keys were given, and where their values are, for the checks
   * that span keys (read_buffer >= max_message_bytes). */
  bool seen[NKEYS];
  yaml_mark_t mark[NKEYS];
};

static int fail(struct reader *r, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct reader *r, yaml_mark_t m, const char *fmt, ...) {
  if (r->err && r->errlen) {
    int n = snprintf(r->err, r->errlen, "%s:%zu:%zu: ", r->name, m.line + 1, m.column + 1);
    if (n >= 0 && (size_t)n < r->errlen) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
      va_end(ap);
    }
  }
  return -EINVAL;
}

static const char *event_kind(const yaml_event_t *ev) {
  switch (ev->type) {
  case YAML_MAPPING_START_EVENT: return "a mapping";
  case YAML_SEQUENCE_START_EVENT: return "a sequence";
  case YAML_SCALAR_EVENT: return "a scalar";
  default: return "nothing";
  }
}

/* Line and column of a byte offset, for reader errors that carry no mark. */
static yaml_mark_t mark_at(const struct reader *r, size_t offset) {
  yaml_mark_t m = {offset, 0, 0};
  if (offset > r->len) offset = r->len;
  for (size_t i = 0; i < offset; i++) {
    if (r->text[i] == '\n') {
      m.line++;
      m.column = 0;
    } else if (((unsigned char)r->text[i] & 0xc0) != 0x80) {
      m.column++;
    }
  }
  return m;
}

static int syntax_error(struct reader *r) {
  const yaml_parser_t *yp = &r->yp;
  if (yp->error == YAML_MEMORY_ERROR) {
    if (r->err && r->errlen) snprintf(r->err, r->errlen, "%s: out of memory", r->name);
    return -ENOMEM;
  }
  const char *problem = yp->problem ? yp->problem : "syntax error";
  if (yp->error == YAML_READER_ERROR) {
    if (yp->problem_value != -1)
      return fail(r, mark_at(r, yp->problem_offset), "%s (byte #x%02X)", problem,
                  (unsigned)yp->problem_value & 0xff);
    return fail(r, mark_at(r, yp->problem_offset), "%s", problem);
  }
  if (yp->context)
    return fail(r, yp->problem_mark, "%s (%s at line %zu, column %zu)", problem, yp->context,
                yp->context_mark.line + 1, yp->context_mark.column + 1);
  return fail(r, yp->problem_mark, "%s", problem);
}

/* Reads the next event into r->ev, refusing what the config never needs. */
static int next(struct reader *r) {
  if (r->have_ev) yaml_event_delete(&r->ev);
  r->have_ev = false;
  if (!yaml_parser_parse(&r->yp, &r->ev)) return syntax_error(r);
  r->have_ev = true;
  const yaml_event_t *ev = &r->ev;
  const yaml_char_t *anchor = NULL;
  switch (ev->type) {
  case YAML_ALIAS_EVENT:
    return fail(r, ev->start_mark, "aliases (*%s) are not allowed in the config",
                (const char *)ev->data.alias.anchor);
  case YAML_SCALAR_EVENT:
    anchor = ev->data.scalar.anchor;
    if (strlen((const char *)ev->data.scalar.value) != ev->data.scalar.length)
      return fail(r, ev->start_mark, "a value holds a NUL byte");
    break;
  case YAML_SEQUENCE_START_EVENT:
    anchor = ev->data.sequence_start.anchor;
    r->depth++;
    break;
  case YAML_MAPPING_START_EVENT:
    anchor = ev->data.mapping_start.anchor;
    r->depth++;
    break;
  case YAML_SEQUENCE_END_EVENT:
  case YAML_MAPPING_END_EVENT: r->depth--; break;
  default: break;
  }
  if (anchor)
    return fail(r, ev->start_mark, "anchors (&%.64s) and aliases are not allowed in the config",
                (const char *)anchor);
  if (r->depth > CONFIG_MAX_DEPTH)
    return fail(r, ev->start_mark, "nesting deeper than %d levels", CONFIG_MAX_DEPTH);
  return 0;
}

static const char *ev_str(const struct reader *r) { return (const char *)r->ev.data.scalar.value; }

/* An empty plain scalar, "~" or "null": a key given without a value. */
static bool ev_is_null(const struct reader *r) {
  if (r->ev.type != YAML_SCALAR_EVENT || r->ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
    return false;
  const char *s = ev_str(r);
  return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* Takes the event just read as the scalar value of path; a null value is
 * refused unless allow_null. */
static int this_scalar(struct reader *r, const char *path, bool allow_null, const char **out) {
  if (r->ev.type != YAML_SCALAR_EVENT)
    return fail(r, r->ev.start_mark, "%s: expected a scalar value, got %s", path,
                event_kind(&r->ev));
  if (!allow_null && ev_is_null(r)) return fail(r, r->ev.start_mark, "%s: expected a value", path);
  *out = ev_str(r);
  return 0;
}

/* Reads the next event as the scalar value of path. */
static int scalar(struct reader *r, const char *path, bool allow_null, const char **out) {
  int e = next(r);
  return e ? e : this_scalar(r, path, allow_null, out);
}

static int get_uint(struct reader *r, const char *path, uint64_t min, uint64_t max, uint64_t *out) {
  const char *s = NULL;
  char b[80];
  int e = scalar(r, path, false, &s);
  if (e) return e;
  uint64_t v;
  e = tks_parse_u64(s, &v);
  if (e == -EINVAL)
    return fail(r, r->ev.start_mark, "%s: '%s' is not a whole number", path, show(s, b, sizeof b));
  if (e == -ERANGE || v < min || v > max)
    return fail(r, r->ev.start_mark, "%s: %s is out of range (%llu..%llu)", path,
                show(s, b, sizeof b), (unsigned long long)min, (unsigned long long)max);
  *out = v;
  return 0;
}

static int get_size(struct reader *r, const char *path, uint64_t min, uint64_t max, uint64_t *out) {
  const char *s = NULL;
  char b[80], lo[32], hi[32];
  int e = scalar(r, path, false, &s);
  if (e) return e;
  uint64_t v;
  e = tks_parse_size(s, &v);
  if (e == -EINVAL)
    return fail(r, r->ev.start_mark, "%s: '%s' is not a size (e.g. 1MiB)", path,
                show(s, b, sizeof b));
  if (e == -ERANGE || v < min || v > max) {
    /* "0B", not tks_format_size's "0": the message has always said so. */
    if (min)
      tks_format_size(min, lo, sizeof lo);
    else
      snprintf(lo, sizeof lo, "0B");
    tks_format_size(max, hi, sizeof hi);
    return fail(r, r->ev.start_mark, "%s: %s is out of range (%s..%s)", path, show(s, b, sizeof b),
                lo, hi);
  }
  *out = v;
  return 0;
}

static int get_duration(struct reader *r, const char *path, uint64_t min_ns, uint64_t max_ns,
                        uint64_t *out) {
  const char *s = NULL;
  char b[80];
  int e = scalar(r, path, false, &s);
  if (e) return e;
  uint64_t v = 0;
  e = tks_parse_duration(s, &v);
  if (e == -EINVAL)
    return fail(r, r->ev.start_mark, "%s: '%s' is not a duration (e.g. 500ms, 1s, 5m, 24h, or 0)",
                path, show(s, b, sizeof b));
  if (e == -ERANGE || v < min_ns || v > max_ns)
    return fail(r, r->ev.start_mark, "%s: %s is out of range", path, show(s, b, sizeof b));
  *out = v;
  return 0;
}

/* "HH:MM" or "HH:MM:SS", a UTC time of day, into ns since 00:00. */
static int get_time_of_day(struct reader *r, const char *path, uint64_t *out) {
  const char *s = NULL;
  char b[80];
  int e = scalar(r, path, false, &s);
  if (e) return e;
  unsigned h = 0, m = 0, sec = 0;
  int used = 0;
  size_t len = strlen(s);
  bool ok = (len == 5 && sscanf(s, "%2u:%2u%n", &h, &m, &used) == 2 && used == 5) ||
            (len == 8 && sscanf(s, "%2u:%2u:%2u%n", &h, &m, &sec, &used) == 3 && used == 8);
  for (size_t i = 0; ok && i < len; i++)
    if (!(s[i] >= '0' && s[i] <= '9') && !(s[i] == ':' && (i == 2 || i == 5))) ok = false;
  if (!ok || h > 23 || m > 59 || sec > 59)
    return fail(r, r->ev.start_mark,
                "%s: '%s' is not a UTC time of day (HH:MM or HH:MM:SS, e.g. 00:00 or 21:30)", path,
                show(s, b, sizeof b));
  *out = ((uint64_t)h * 3600 + m * 60 + sec) * 1000000000ull;
  return 0;
}

/* One of names (n of them, listed in the message: "unknown <noun> 'x'"). */
static int get_enum(struct reader *r, const char *path, const char *noun, const char *const *names,
                    unsigned n, unsigned *out) {
  const char *s = NULL;
  char b[80], list[160] = "";
  int e = scalar(r, path, false, &s);
  if (e) return e;
  int found = tks_name_index(names, n, s);
  if (found >= 0) {
    *out = (unsigned)found;
    return 0;
  }
  for (unsigned i = 0; i < n; i++) {
    size_t l = strlen(list);
    snprintf(list + l, sizeof list - l, "%s%s", i ? (i + 1 == n ? " or " : ", ") : "", names[i]);
  }
  return fail(r, r->ev.start_mark, "%s: unknown %s '%s' (expected %s)", path, noun,
              show(s, b, sizeof b), list);
}

static int parse_bool(const char *s, bool *out) {
  if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) {
    *out = true;
    return 0;
  }
  if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) {
    *out = false;
    return 0;
  }
  return -EINVAL;
}

static int get_bool(struct reader *r, const char *path, bool *out) {
  const char *s = NULL;
  char b[80];
  int e = scalar(r, path, false, &s);
  if (e) return e;
  if (parse_bool(s, out))
    return fail(r, r->ev.start_mark, "%s: expected true or false, got '%s'", path,
                show(s, b, sizeof b));
  return 0;
}

/* A finite decimal number, the whole string. */
static int parse_f64(const char *s, double *out) {
  if (!(isdigit((unsigned char)*s) || *s == '-' || *s == '+' || *s == '.')) return -EINVAL;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end || !isfinite(v)) return -EINVAL;
  *out = v;
  return 0;
}

static int parse_i64(const char *s, int64_t *out) {
  const char *d = (*s == '-' || *s == '+') ? s + 1 : s;
  if (!isdigit((unsigned char)*d)) return -EINVAL;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (*end) return -EINVAL;
  if (errno == ERANGE) return -ERANGE;
  *out = v;
  return 0;
}

/*
 * Reads the entries of a mapping whose MAPPING_START was just read.  Keys
 * must be among names[] and appear once; for each, on_value reads the value.
 * where names the mapping in messages ("in 'ingest'", "at the top level").
 */
typedef int (*value_fn)(struct reader *r, void *ctx, unsigned key);

static int read_mapping(struct reader *r, const char *where, const char *const *names,
                        unsigned nkeys, value_fn on_value, void *ctx) {
  size_t first_line[CONFIG_MAX_KEYS] = {0};
  bool seen[CONFIG_MAX_KEYS] = {false};
  char b[80];
  for (;;) {
    int e = next(r);
    if (e) return e;
    if (r->ev.type == YAML_MAPPING_END_EVENT) return 0;
    if (r->ev.type != YAML_SCALAR_EVENT)
      return fail(r, r->ev.start_mark, "expected a key %s, got %s", where, event_kind(&r->ev));
    const char *k = ev_str(r);
    unsigned i = 0;
    while (i < nkeys && strcmp(k, names[i]) != 0) i++;
    if (i == nkeys) {
      char known[256] = "";
      size_t n = 0;
      for (unsigned j = 0; j < nkeys && n < sizeof known; j++)
        n += (size_t)snprintf(known + n, sizeof known - n, "%s%s", j ? ", " : "", names[j]);
      return fail(r, r->ev.start_mark, "unknown key '%s' %s (known: %s)", show(k, b, sizeof b),
                  where, known);
    }
    if (seen[i])
      return fail(r, r->ev.start_mark, "duplicate key '%s' %s (first at line %zu)", names[i], where,
                  first_line[i]);
    seen[i] = true;
    first_line[i] = r->ev.start_mark.line + 1;
    e = on_value(r, ctx, i);
    if (e) return e;
  }
}

/*
 * Reads the value of a section key: a mapping (read with read_mapping), or
 * a null value, which leaves the section at its defaults.
 */
static int read_section(struct reader *r, const char *section, const char *const *names,
                        unsigned nkeys, value_fn on_value, void *ctx) {
  int e = next(r);
  if (e) return e;
  if (ev_is_null(r)) return 0;
  if (r->ev.type != YAML_MAPPING_START_EVENT)
    return fail(r, r->ev.start_mark, "%s: expected a mapping, got %s", section, event_kind(&r->ev));
  char where[64];
  snprintf(where, sizeof where, "in '%s'", section);
  return read_mapping(r, where, names, nkeys, on_value, ctx);
}

/* ---- schema ---------------------------------------------------------- */

enum { FIELD_NAME, FIELD_TYPE, FIELD_REQUIRED, FIELD_DEFAULT };
static const char *const field_keys[] = {"name", "type", "required", "default"};

struct field_ctx {
  struct tks_field *f;
  unsigned number; /* 1-based, for messages */
  char path[48];   /* "schema field 3" */
  bool have_name, have_type, have_default;
  yaml_mark_t name_mark, default_mark;
  char dflt[80];
  bool dflt_too_long;
};

static bool valid_field_name(const char *s) {
  if (!(isalpha((unsigned char)*s) || *s == '_')) return false;
  for (s++; *s; s++)
    if (!(isalnum((unsigned char)*s) || *s == '_')) return false;
  return true;
}

static int field_value(struct reader *r, void *ctx, unsigned key) {
  struct field_ctx *fc = ctx;
  char path[64], b[80];
  const char *s = NULL;
  int e;
  snprintf(path, sizeof path, "%s: %s", fc->path, field_keys[key]);
  switch (key) {
  case FIELD_NAME:
    if ((e = scalar(r, path, false, &s))) return e;
    if (strlen(s) >= TKS_FIELD_NAME_MAX)
      return fail(r, r->ev.start_mark, "%s: '%s' is longer than %d bytes", path,
                  show(s, b, sizeof b), TKS_FIELD_NAME_MAX - 1);
    if (!valid_field_name(s))
      return fail(r, r->ev.start_mark,
                  "%s: '%s' is not a valid field name (letters, digits and _, not starting "
                  "with a digit)",
                  path, show(s, b, sizeof b));
    set_str(fc->f->name, sizeof fc->f->name, s);
    fc->have_name = true;
    fc->name_mark = r->ev.start_mark;
    return 0;
  case FIELD_TYPE:
    if ((e = scalar(r, path, false, &s))) return e;
    if (tks_type_parse(s, &fc->f->type))
      return fail(r, r->ev.start_mark,
                  "%s: unknown type '%s' (expected timestamp, symbol, string, i64, u32, f64 or "
                  "bool)",
                  path, show(s, b, sizeof b));
    fc->have_type = true;
    return 0;
  case FIELD_REQUIRED: return get_bool(r, path, &fc->f->required);
  case FIELD_DEFAULT:
    /* Checked against the type once the whole field is read: keys come in any order. */
    if ((e = scalar(r, path, true, &s))) return e;
    fc->have_default = true;
    fc->default_mark = r->ev.start_mark;
    fc->dflt_too_long = strlen(s) >= sizeof fc->dflt;
    snprintf(fc->dflt, sizeof fc->dflt, "%s", s);
    return 0;
  }
  return -EINVAL;
}

static int check_default(struct reader *r, struct field_ctx *fc) {
  struct tks_field *f = fc->f;
  yaml_mark_t m = fc->default_mark;
  const char *s = fc->dflt;
  char b[80];
  int e;
  if (f->required)
    return fail(r, m, "%s '%s': a required field cannot have a default", fc->path, f->name);
  if (fc->dflt_too_long)
    return fail(r, m, "%s '%s': default '%s' is not a valid %s", fc->path, f->name,
                show(s, b, sizeof b), tks_type_name(f->type));
  switch (f->type) {
  case TKS_TYPE_TIMESTAMP:
  case TKS_TYPE_I64:
    e = parse_i64(s, &f->dflt.i64);
    if (e == -ERANGE)
      return fail(r, m, "%s '%s': default %s is out of range for %s", fc->path, f->name,
                  show(s, b, sizeof b), tks_type_name(f->type));
    if (e)
      return fail(r, m, "%s '%s': default '%s' is not a whole number", fc->path, f->name,
                  show(s, b, sizeof b));
    return 0;
  case TKS_TYPE_U32: {
    uint64_t v;
    e = tks_parse_u64(s, &v);
    if (e == -EINVAL)
      return fail(r, m, "%s '%s': default '%s' is not a whole number", fc->path, f->name,
                  show(s, b, sizeof b));
    if (e || v > UINT32_MAX)
      return fail(r, m, "%s '%s': default %s is out of range (0..4294967295)", fc->path, f->name,
                  show(s, b, sizeof b));
    f->dflt.u32 = (uint32_t)v;
    return 0;
  }
  case TKS_TYPE_F64:
    if (parse_f64(s, &f->dflt.f64))
      return fail(r, m, "%s '%s': default '%s' is not a finite number", fc->path, f->name,
                  show(s, b, sizeof b));
    return 0;
  case TKS_TYPE_BOOL:
    if (parse_bool(s, &f->dflt.b))
      return fail(r, m, "%s '%s': default must be true or false, got '%s'", fc->path, f->name,
                  show(s, b, sizeof b));
    return 0;
  case TKS_TYPE_SYMBOL:
  case TKS_TYPE_STRING:
    if (*s)
      return fail(r, m,
                  "%s '%s': a %s field's default can only be \"\" (strings are interned as "
                  "ticks arrive)",
                  fc->path, f->name, tks_type_name(f->type));
    return 0;
  case TKS_TYPE__COUNT: break;
  }
  return -EINVAL;
}

/* A declared schema identical to MarketEvent keeps its name. */
static bool is_default_schema(const struct tks_schema *s) {
  struct tks_schema d;
  tks_schema_default(&d);
  if (s->nfields != d.nfields) return false;
  for (unsigned i = 0; i < s->nfields; i++)
    if (memcmp(&s->fields[i], &d.fields[i], sizeof d.fields[i]) != 0) return false;
  return true;
}

static int schema_value(struct reader *r) {
  struct tks_schema *sc = &r->c->schema;
  int e = next(r);
  if (e) return e;
  if (ev_is_null(r)) return 0;
  if (r->ev.type != YAML_SEQUENCE_START_EVENT)
    return fail(r, r->ev.start_mark, "schema: expected a list of fields, got %s",
                event_kind(&r->ev));
  yaml_mark_t schema_mark = r->ev.start_mark;
  memset(sc, 0, sizeof *sc);
  set_str(sc->name, sizeof sc->name, "custom");
  for (;;) {
    if ((e = next(r))) return e;
    if (r->ev.type == YAML_SEQUENCE_END_EVENT) break;
    if (sc->nfields == TKS_SCHEMA_MAX_FIELDS)
      return fail(r, r->ev.start_mark, "schema: more than %d fields (the most is %d)",
                  TKS_SCHEMA_MAX_FIELDS, TKS_SCHEMA_MAX_FIELDS);
    struct field_ctx fc = {.f = &sc->fields[sc->nfields], .number = sc->nfields + 1};
    snprintf(fc.path, sizeof fc.path, "schema field %u", fc.number);
    if (r->ev.type != YAML_MAPPING_START_EVENT)
      return fail(r, r->ev.start_mark, "%s: expected a mapping {name: ..., type: ...}, got %s",
                  fc.path, event_kind(&r->ev));
    yaml_mark_t field_mark = r->ev.start_mark;
    char where[64];
    snprintf(where, sizeof where, "in %s", fc.path);
    if ((e = read_mapping(r, where, field_keys, TKS_ARRAY_SIZE(field_keys), field_value, &fc)))
      return e;
    if (!fc.have_name) return fail(r, field_mark, "%s: 'name' is missing", fc.path);
    if (!fc.have_type)
      return fail(r, field_mark, "%s '%s': 'type' is missing", fc.path, fc.f->name);
    for (unsigned j = 0; j < sc->nfields; j++)
      if (strcmp(sc->fields[j].name, fc.f->name) == 0)
        return fail(r, fc.name_mark, "%s: name '%s' is already used by field %u", fc.path,
                    fc.f->name, j + 1);
    if (fc.have_default && (e = check_default(r, &fc))) return e;
    sc->nfields++;
  }
  char why[256];
  if (tks_schema_layout(sc, why, sizeof why)) return fail(r, schema_mark, "schema: %s", why);
  if (is_default_schema(sc)) set_str(sc->name, sizeof sc->name, "MarketEvent");
  return 0;
}

/* ---- the keys -------------------------------------------------------- */

/* The value of k (its key was just read), checked and stored in r->c. */
/* A PROPS value: a mapping of property names to scalars (or null: none),
 * packed as "name\0value\0...\0".  librdkafka checks names and values
 * when the daemon hands them over; here only their form. */
static int props_value(struct reader *r, const struct tks_config_key *k, char *out) {
  char b[80];
  int e = next(r);
  if (e) return e;
  memset(out, 0, k->size);
  if (ev_is_null(r)) return 0;
  if (r->ev.type != YAML_MAPPING_START_EVENT)
    return fail(r, r->ev.start_mark, "%s: expected a mapping of librdkafka properties, got %s",
                k->name, event_kind(&r->ev));
  size_t used = 0;
  unsigned pairs = 0;
  for (;;) {
    if ((e = next(r))) return e;
    if (r->ev.type == YAML_MAPPING_END_EVENT) return 0;
    if (r->ev.type != YAML_SCALAR_EVENT)
      return fail(r, r->ev.start_mark, "%s: expected a property name, got %s", k->name,
                  event_kind(&r->ev));
    char name[128];
    const char *s = ev_str(r);
    size_t nl = strlen(s);
    bool ok = nl > 0 && nl < sizeof name;
    for (const char *c = s; ok && *c; c++)
      ok = isalnum((unsigned char)*c) || *c == '.' || *c == '_' || *c == '-';
    if (!ok)
      return fail(r, r->ev.start_mark, "%s: '%s' is not a librdkafka property name", k->name,
                  show(s, b, sizeof b));
    memcpy(name, s, nl + 1);
    for (size_t at = 0; at < used;) { /* duplicates */
      if (strcmp(out + at, name) == 0)
        return fail(r, r->ev.start_mark, "%s: duplicate property '%s'", k->name, name);
      at += strlen(out + at) + 1;
      at += strlen(out + at) + 1;
    }
    if ((e = next(r))) return e;
    if (r->ev.type != YAML_SCALAR_EVENT)
      return fail(r, r->ev.start_mark, "%s.%s: expected a scalar value, got %s", k->name, name,
                  event_kind(&r->ev));
    s = ev_str(r);
    size_t vl = strlen(s);
    if (++pairs > TKS_CONFIG_PROPS_MAX || used + nl + vl + 3 > k->size)
      return fail(r, r->ev.start_mark, "%s: more properties than fit (%d pairs, %zu bytes)",
                  k->name, TKS_CONFIG_PROPS_MAX, k->size);
    memcpy(out + used, name, nl + 1);
    used += nl + 1;
    memcpy(out + used, s, vl + 1);
    used += vl + 1;
  }
}

static int read_key(struct reader *r, const struct tks_config_key *k) {
  void *p = field_at(k, r->c);
  const char *s = NULL;
  char why[256], b[300];
  uint64_t v = 0;
  unsigned u = 0;
  double d;
  bool flag;
  int e;
  switch (k->type) {
  case TKS_CONFIG_LISTEN:
    if ((e = next(r))) return e;
    /* Unquoted, [::1]:7070 is a YAML flow sequence. */
    if (r->ev.type == YAML_SEQUENCE_START_EVENT)
      return fail(r, r->ev.start_mark,
                  "%s: expected a scalar value, got a sequence (quote an IPv6 "
                  "address: listen: \"[::1]:7070\")",
                  k->name);
    if ((e = this_scalar(r, k->name, false, &s))) return e;
    if (strlen(s) >= k->size)
      return fail(r, r->ev.start_mark, "%s: the address is too long", k->name);
    if (parse_listen_key(k, r->c, s, why, sizeof why))
      return fail(r, r->ev.start_mark, "%s: %s", k->name, show(why, b, sizeof b));
    set_str(p, k->size, s);
    return 0;
  case TKS_CONFIG_PATH:
    if ((e = scalar(r, k->name, false, &s))) return e;
    v = strlen(s);
    if (k->check && k->check(s, v, why, sizeof why))
      return fail(r, r->ev.start_mark, "%s: %s", k->name, why);
    if (v == 0 && !(k->dflt_str && !*k->dflt_str)) /* "" is the derived default */
      return fail(r, r->ev.start_mark, "%s: the path is empty", k->name);
    if (v >= k->size) return fail(r, r->ev.start_mark, "%s: the path is too long", k->name);
    set_str(p, k->size, s);
    return 0;
  case TKS_CONFIG_UINT:
  case TKS_CONFIG_SIZE:
  case TKS_CONFIG_DURATION:
    e = k->type == TKS_CONFIG_UINT   ? get_uint(r, k->name, k->min, k->max, &v)
        : k->type == TKS_CONFIG_SIZE ? get_size(r, k->name, k->min, k->max, &v)
                                     : get_duration(r, k->name, k->min, k->max, &v);
    if (e) return e;
    if (k->check && k->check(ev_str(r), v, why, sizeof why))
      return fail(r, r->ev.start_mark, "%s: %s", k->name, why);
    store_uint(p, k->size, v);
    return 0;
  case TKS_CONFIG_TIME_OF_DAY:
    if ((e = get_time_of_day(r, k->name, &v))) return e;
    store_uint(p, k->size, v);
    return 0;
  case TKS_CONFIG_BOOL:
    if ((e = get_bool(r, k->name, &flag))) return e;
    memcpy(p, &flag, sizeof flag);
    return 0;
  case TKS_CONFIG_F64:
    if ((e = scalar(r, k->name, false, &s))) return e;
    if (parse_f64(s, &d))
      return fail(r, r->ev.start_mark, "%s: '%s' is not a number", k->name, show(s, b, sizeof b));
    if (d < k->min_f64 || d > k->max_f64)
      return fail(r, r->ev.start_mark, "%s: %s is out of range (%g..%g)", k->name,
                  show(s, b, sizeof b), k->min_f64, k->max_f64);
    memcpy(p, &d, sizeof d);
    return 0;
  case TKS_CONFIG_ENUM:
    if ((e = get_enum(r, k->name, k->noun ? k->noun : "value", k->names, k->nnames, &u))) return e;
    store_uint(p, k->size, u);
    return 0;
  case TKS_CONFIG_STRING:
    if ((e = scalar(r, k->name, true, &s))) return e;
    if (ev_is_null(r)) s = "";
    v = strlen(s);
    if (v >= k->size) return fail(r, r->ev.start_mark, "%s: the value is too long", k->name);
    if (v && k->check && k->check(s, v, why, sizeof why))
      return fail(r, r->ev.start_mark, "%s: %s", k->name, why);
    set_str(p, k->size, s);
    return 0;
  case TKS_CONFIG_PROPS: return props_value(r, k, p);
  case TKS_CONFIG_SCHEMA: return schema_value(r);
  }
  return -EINVAL;
}

/*
 * The shape of the file, from the key table: a tree of mappings whose
 * leaves are keys.  "schema" is a key of the top level, "ingest.listen" a
 * key of the section "ingest", "kafka.source.topic" a key of "kafka.source",
 * itself a name in "kafka".  s[0] is the top level.
 */
struct section {
  char path[48]; /* "kafka.source"; "" for the top level */
  unsigned nkeys;
  const char *names[CONFIG_MAX_KEYS]; /* the part after path's dot */
  char own[CONFIG_MAX_KEYS][32];      /* names of subsections */
  int index[CONFIG_MAX_KEYS];         /* into keys[], or -1 - the subsection */
};

struct layout {
  unsigned n;
  struct section s[CONFIG_MAX_SECTIONS];
};

/* The subsection `name` (len bytes) of section `at`, made if new. */
static unsigned layout_child(struct layout *l, unsigned at, const char *name, size_t len) {
  struct section *s = &l->s[at];
  for (unsigned i = 0; i < s->nkeys; i++)
    if (s->index[i] < 0 && strlen(s->names[i]) == len && !memcmp(s->names[i], name, len))
      return (unsigned)(-1 - s->index[i]);
  assert(l->n < CONFIG_MAX_SECTIONS && s->nkeys < CONFIG_MAX_KEYS && len < sizeof s->own[0]);
  unsigned c = l->n++;
  struct section *cs = &l->s[c];
  size_t pl = strlen(s->path);
  assert(pl + 1 + len < sizeof cs->path);
  memcpy(cs->path, s->path, pl);
  if (pl) cs->path[pl++] = '.';
  memcpy(cs->path + pl, name, len);
  cs->path[pl + len] = '\0';
  memcpy(s->own[s->nkeys], name, len);
  s->own[s->nkeys][len] = '\0';
  s->names[s->nkeys] = s->own[s->nkeys];
  s->index[s->nkeys++] = -1 - (int)c;
  return c;
}

static void layout_build(struct layout *l) {
  memset(l, 0, sizeof *l);
  l->n = 1;
  for (unsigned i = 0; i < NKEYS; i++) {
    const char *name = keys[i].name, *dot;
    unsigned at = 0;
    while ((dot = strchr(name, '.'))) {
      at = layout_child(l, at, name, (size_t)(dot - name));
      name = dot + 1;
    }
    struct section *s = &l->s[at];
    assert(s->nkeys < CONFIG_MAX_KEYS);
    s->names[s->nkeys] = name;
    s->index[s->nkeys++] = (int)i;
  }
}

struct section_ctx {
  struct layout *l;
  unsigned at;
};

/* A name of a section: a key's value (noting where it was) or a subsection. */
static int section_value(struct reader *r, void *ctx, unsigned key) {
  struct section_ctx *sc = ctx;
  int i = sc->l->s[sc->at].index[key];
  if (i < 0) {
    struct section_ctx child = {sc->l, (unsigned)(-1 - i)};
    const struct section *cs = &sc->l->s[child.at];
    return read_section(r, cs->path, cs->names, cs->nkeys, section_value, &child);
  }
  int e = read_key(r, &keys[i]);
  if (e) return e;
  r->seen[i] = true;
  r->mark[i] = r->ev.start_mark;
  return 0;
}

static unsigned key_index(const char *name) {
  const struct tks_config_key *k = tks_config_key_find(name);
  assert(k);
  return (unsigned)(k - keys);
}

/* The rules across keys, once the whole file is read. */
static int check_whole(struct reader *r) {
  struct tks_config *c = r->c;
  if (c->ingest.read_buffer_bytes < c->ingest.max_message_bytes) {
    unsigned rb_key = key_index("ingest.read_buffer");
    unsigned mm_key = key_index("ingest.max_message_bytes");
    char rb[32], mm[32];
    tks_format_size(c->ingest.read_buffer_bytes, rb, sizeof rb);
    tks_format_size(c->ingest.max_message_bytes, mm, sizeof mm);
    return fail(r, r->seen[rb_key] ? r->mark[rb_key] : r->mark[mm_key],
                "ingest.read_buffer (%s%s) must be at least ingest.max_message_bytes (%s)", rb,
                r->seen[rb_key] ? "" : ", the default", mm);
  }
  return 0;
}

/* ---- the file -------------------------------------------------------- */

static int read_stream(struct reader *r) {
  struct layout layout;
  layout_build(&layout);
  struct section_ctx top = {&layout, 0};
  int e;
  if ((e = next(r))) return e; /* STREAM_START */
  if ((e = next(r))) return e;
  if (r->ev.type == YAML_STREAM_END_EVENT) return 0; /* empty, or only comments */
  if ((e = next(r))) return e;                       /* past DOCUMENT_START */
  if (r->ev.type == YAML_MAPPING_START_EVENT) {
    if ((e = read_mapping(r, "at the top level", layout.s[0].names, layout.s[0].nkeys,
                          section_value, &top)))
      return e;
  } else if (!ev_is_null(r)) {
    return fail(r, r->ev.start_mark, "expected a mapping at the top level, got %s",
                event_kind(&r->ev));
  }
  if ((e = next(r))) return e; /* DOCUMENT_END */
  if ((e = next(r))) return e;
  if (r->ev.type != YAML_STREAM_END_EVENT)
    return fail(r, r->ev.start_mark, "expected one YAML document, found another");
  return check_whole(r);
}

int tks_config_parse(struct tks_config *c, const char *text, size_t len, const char *name,
                     char *err, size_t errlen) {
  char dummy[8];
  if (!err || !errlen) {
    err = dummy;
    errlen = sizeof dummy;
  }
  err[0] = '\0';
  if (!name) name = "<config>";
  if (len > TKS_CONFIG_MAX_BYTES) {
    snprintf(err, errlen, "%s: the file is %zu bytes, more than the %d a config may have", name,
             len, TKS_CONFIG_MAX_BYTES);
    tks_config_defaults(c);
    return -EFBIG;
  }
  struct tks_config *tmp = malloc(sizeof *tmp);
  if (!tmp) {
    snprintf(err, errlen, "%s: out of memory", name);
    tks_config_defaults(c);
    return -ENOMEM;
  }
  tks_config_defaults(tmp);
  struct reader r = {
      .name = name, .text = text, .len = len, .err = err, .errlen = errlen, .c = tmp};
  int e;
  if (!yaml_parser_initialize(&r.yp)) {
    snprintf(err, errlen, "%s: out of memory", name);
    e = -ENOMEM;
    goto out_free;
  }
  yaml_parser_set_input_string(&r.yp, (const unsigned char *)(text ? text : ""), text ? len : 0);
  e = read_stream(&r);
  if (r.have_ev) yaml_event_delete(&r.ev);
  yaml_parser_delete(&r.yp);
out_free:
  if (e)
    tks_config_defaults(c);
  else
    memcpy(c, tmp, sizeof *c);
  free(tmp);
  return e;
}

int tks_config_load(struct tks_config *c, const char *path, char *err, size_t errlen) {
  char dummy[8];
  if (!err || !errlen) {
    err = dummy;
    errlen = sizeof dummy;
  }
  int e = 0;
  char *buf = NULL;
  size_t len = 0;
  if (strlen(path) >= sizeof c->path) {
    e = -ENAMETOOLONG;
    snprintf(err, errlen, "%.64s...: %s", path, strerror(-e));
    goto fail;
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    e = -errno;
    snprintf(err, errlen, "%s: %s", path, strerror(-e));
    goto fail;
  }
  /* Read at most one byte past the limit: a FIFO or /dev/zero must not hang us. */
  buf = malloc(TKS_CONFIG_MAX_BYTES + 1);
  if (!buf) {
    close(fd);
    e = -ENOMEM;
    snprintf(err, errlen, "%s: %s", path, strerror(-e));
    goto fail;
  }
  while (len <= TKS_CONFIG_MAX_BYTES) {
    ssize_t n = read(fd, buf + len, TKS_CONFIG_MAX_BYTES + 1 - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      e = -errno;
      close(fd);
      snprintf(err, errlen, "%s: %s", path, strerror(-e));
      goto fail;
    }
    if (n == 0) break;
    len += (size_t)n;
  }
  close(fd);
  if (len > TKS_CONFIG_MAX_BYTES) {
    e = -EFBIG;
    snprintf(err, errlen, "%s: the file is larger than %d bytes (1 MiB), the most a config may be",
             path, TKS_CONFIG_MAX_BYTES);
    goto fail;
  }
  e = tks_config_parse(c, buf, len, path, err, errlen);
  free(buf);
  if (e == 0) set_str(c->path, sizeof c->path, path);
  return e;

fail:
  free(buf);
  tks_config_defaults(c);
  return e;
}
