/*
 * Tests of the config module: the defaults and the documented default file,
 * every key, every kind of error with its exact line:column, and hostile
 * input (random bytes, truncation, nesting and alias bombs, huge files).
 * After every refused config the struct must hold exactly the defaults.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "config.h"
#include "test.h"

static char err[TKS_CONFIG_ERR_MAX];

/* Parses yaml as "x.yaml" into *c, which starts as garbage. */
static int parse(struct tks_config *c, const char *yaml, size_t len) {
  memset(c, 0xab, sizeof *c);
  memset(err, 0, sizeof err);
  return tks_config_parse(c, yaml, len, "x.yaml", err, sizeof err);
}

static bool is_defaults(const struct tks_config *c) {
  struct tks_config d;
  tks_config_defaults(&d);
  return memcmp(c, &d, sizeof d) == 0;
}

/* The config is refused with exactly this message, and c is the defaults. */
#define EXPECT_ERROR(yaml, want)               \
  do {                                         \
    struct tks_config c_;                      \
    int r_ = parse(&c_, (yaml), strlen(yaml)); \
    ASSERT_EQ(r_, -EINVAL);                    \
    ASSERT_STR_EQ(err, (want));                \
    ASSERT(is_defaults(&c_));                  \
  } while (0)

/* Refused at "x.yaml:<at>: " with a message containing what. */
#define EXPECT_ERROR_AT(yaml, at, what)                                 \
  do {                                                                  \
    struct tks_config c_;                                               \
    int r_ = parse(&c_, (yaml), strlen(yaml));                          \
    ASSERT_EQ(r_, -EINVAL);                                             \
    char want_[64];                                                     \
    snprintf(want_, sizeof want_, "x.yaml:%s: ", (at));                 \
    if (strncmp(err, want_, strlen(want_)) != 0)                        \
      TEST_FAIL("error \"%s\" does not start with \"%s\"", err, want_); \
    ASSERT_CONTAINS(err, (what));                                       \
    ASSERT(is_defaults(&c_));                                           \
  } while (0)

#define EXPECT_OK(c, yaml)                                    \
  do {                                                        \
    int r_ = parse((c), (yaml), strlen(yaml));                \
    if (r_ != 0) TEST_FAIL("parse failed (%d): %s", r_, err); \
  } while (0)

static const struct tks_field *field(const struct tks_config *c, const char *name) {
  int i = tks_schema_find(&c->schema, name, strlen(name));
  if (i < 0) TEST_FAIL("no field '%s' in the schema", name);
  return &c->schema.fields[i];
}

/* A small deterministic generator, so that failures reproduce. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static void write_file(const char *path, const char *data, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) TEST_FAIL("open %s: %s", path, strerror(errno));
  while (len) {
    ssize_t n = write(fd, data, len);
    if (n <= 0) TEST_FAIL("write %s: %s", path, strerror(errno));
    data += n;
    len -= (size_t)n;
  }
  close(fd);
}

/* ---- defaults -------------------------------------------------------- */

TEST(defaults_are_the_documented_values) {
  struct tks_config c;
  tks_config_defaults(&c);
  ASSERT_STR_EQ(c.path, "");
  ASSERT_STR_EQ(c.ingest.listen, "127.0.0.1:7070");
  ASSERT_STR_EQ(c.ingest.host, "127.0.0.1");
  ASSERT_EQ(c.ingest.port, 7070);
  ASSERT_EQ(c.ingest.max_connections, 1024);
  ASSERT_EQ(c.ingest.max_message_bytes, 65536);
  ASSERT_EQ(c.ingest.read_buffer_bytes, 256 * 1024);
  ASSERT_STR_EQ(c.control.socket, "/run/tickslab/control.sock");
  ASSERT_EQ(c.store.mode, TKS_MODE_SLOTTED);
  ASSERT_U64_EQ(c.store.page_size, 1 << 20);
  ASSERT(c.store.growth_factor == 1.25);
  ASSERT_EQ(c.store.max_symbols, 1000000);
  ASSERT_EQ(c.store.max_strings, 65536);
  ASSERT_STR_EQ(c.schema.name, "MarketEvent");
  ASSERT_EQ(c.schema.nfields, 5);
  ASSERT_EQ(c.schema.record_size, 32);
  ASSERT_EQ(c.log.level, TKS_LOG_INFO);
}

TEST(default_file_parses_to_exactly_the_defaults) {
  const char *root = getenv("TKS_SOURCE_ROOT");
  if (!root) TEST_FAIL("TKS_SOURCE_ROOT is not set");
  char path[4096];
  snprintf(path, sizeof path, "%s/config/tickslab.yaml", root);
  struct tks_config c, d;
  memset(&c, 0xab, sizeof c);
  int r = tks_config_load(&c, path, err, sizeof err);
  if (r) TEST_FAIL("load failed (%d): %s", r, err);
  tks_config_defaults(&d);
  ASSERT_STR_EQ(c.path, path);
  ASSERT_STR_EQ(c.ingest.listen, d.ingest.listen);
  ASSERT_STR_EQ(c.control.socket, TKS_DEFAULT_CONTROL_SOCKET);
  ASSERT_STR_EQ(c.schema.name, "MarketEvent");
  ASSERT(memcmp(&c.ingest, &d.ingest, sizeof d.ingest) == 0);
  ASSERT(memcmp(&c.control, &d.control, sizeof d.control) == 0);
  ASSERT(memcmp(&c.store, &d.store, sizeof d.store) == 0);
  ASSERT(memcmp(&c.schema, &d.schema, sizeof d.schema) == 0);
  ASSERT(memcmp(&c.journal, &d.journal, sizeof d.journal) == 0);
  ASSERT(memcmp(&c.limits, &d.limits, sizeof d.limits) == 0);
  ASSERT(memcmp(&c.query, &d.query, sizeof d.query) == 0);
  ASSERT(memcmp(&c.log, &d.log, sizeof d.log) == 0);
  /* Everything but the path. */
  memset(c.path, 0, sizeof c.path);
  ASSERT(is_defaults(&c));
}

TEST(kafka_sections_nest_and_their_errors_name_the_whole_path) {
  struct tks_config c;
  EXPECT_OK(&c, "kafka:\n  source:\n    brokers: 127.0.0.1:1\n    from: 2026-12-03T00:00:00Z\n"
                "  sink:\n    topic: t2\n    properties:\n      acks: all\n      linger.ms: 0\n");
  ASSERT_STR_EQ(c.kafka.source.brokers, "127.0.0.1:1");
  ASSERT_STR_EQ(c.kafka.source.from, "2026-12-03T00:00:00Z");
  ASSERT_STR_EQ(c.kafka.sink.topic, "t2");
  size_t pos = 0;
  const char *n, *v;
  ASSERT(tks_config_props_next(c.kafka.sink.properties, &pos, &n, &v));
  ASSERT_STR_EQ(n, "acks");
  ASSERT_STR_EQ(v, "all");
  ASSERT(tks_config_props_next(c.kafka.sink.properties, &pos, &n, &v));
  ASSERT_STR_EQ(n, "linger.ms");
  ASSERT_STR_EQ(v, "0");
  ASSERT(!tks_config_props_next(c.kafka.sink.properties, &pos, &n, &v));
  pos = 0;
  ASSERT(!tks_config_props_next(c.kafka.source.properties, &pos, &n, &v));
  /* Empty sections and null values are the defaults. */
  EXPECT_OK(&c, "kafka:\n  source:\n  sink: {properties: ~, brokers: ~}\n");
  ASSERT(is_defaults(&c));

  EXPECT_ERROR("kafka: {source: {topics: a}}\n",
               "x.yaml:1:18: unknown key 'topics' in 'kafka.source' (known: brokers, topic, group, "
               "from, partitioner, node, nodes_topic, properties)");
  EXPECT_ERROR("kafka: {sources: {}}\n",
               "x.yaml:1:9: unknown key 'sources' in 'kafka' (known: source, sink)");
  EXPECT_ERROR("kafka: {source: {topic: \"a b\"}}\n",
               "x.yaml:1:25: kafka.source.topic: 'a b' is not a Kafka topic name (letters, digits, "
               "'.', '_', '-')");
  EXPECT_ERROR(
      "kafka: {source: {from: yesterday}}\n",
      "x.yaml:1:24: kafka.source.from: 'yesterday' is not committed, start_of_day or a time "
      "(ns since the epoch, 2026-12-03T09:30:00Z, 2026-12-03)");
  EXPECT_ERROR("kafka: {source: {brokers: [a, b]}}\n",
               "x.yaml:1:27: kafka.source.brokers: expected a scalar value, got a sequence");
  EXPECT_ERROR(
      "kafka: {sink: {properties: [a]}}\n",
      "x.yaml:1:28: kafka.sink.properties: expected a mapping of librdkafka properties, got "
      "a sequence");
  EXPECT_ERROR("kafka: {sink: {properties: {\"a b\": 1}}}\n",
               "x.yaml:1:29: kafka.sink.properties: 'a b' is not a librdkafka property name");
  EXPECT_ERROR("kafka: {sink: {properties: {a: 1, a: 2}}}\n",
               "x.yaml:1:35: kafka.sink.properties: duplicate property 'a'");
  EXPECT_ERROR("kafka: {sink: {properties: {a: {b: 1}}}}\n",
               "x.yaml:1:32: kafka.sink.properties.a: expected a scalar value, got a mapping");
  /* More pairs than fit. */
  char big[8192] = "kafka: {sink: {properties: {";
  for (int i = 0; i < 70; i++)
    snprintf(big + strlen(big), sizeof big - strlen(big), "p%d: %d, ", i, i);
  strcat(big, "}}}\n");
  struct tks_config d;
  ASSERT(tks_config_parse(&d, big, strlen(big), "x.yaml", err, sizeof err) == -EINVAL);
  ASSERT(strstr(err, "more properties than fit (64 pairs, 4096 bytes)"));
}

TEST(empty_file_comments_and_empty_sections_give_the_defaults) {
  static const char *const texts[] = {
      "",
      "\n",
      "# only a comment\n",
      "---\n",
      "---\n...\n",
      "~\n",
      "ingest:\ncontrol:\nstore:\nschema:\nlog:\n",
      "ingest: {}\nlog: ~\n",
  };
  for (unsigned i = 0; i < TKS_ARRAY_SIZE(texts); i++) {
    struct tks_config c;
    EXPECT_OK(&c, texts[i]);
    if (!is_defaults(&c)) TEST_FAIL("text %u is not the defaults", i);
  }
}

/* ---- the key table --------------------------------------------------- */

/* A file of the source tree (TKS_SOURCE_ROOT), NUL-terminated; free it. */
static char *read_source(const char *rel, size_t *len) {
  const char *root = getenv("TKS_SOURCE_ROOT");
  if (!root) TEST_FAIL("TKS_SOURCE_ROOT is not set");
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", root, rel);
  FILE *f = fopen(path, "rb");
  if (!f) TEST_FAIL("%s: %s", path, strerror(errno));
  enum { MAX = 1 << 20 };
  char *buf = malloc(MAX);
  ASSERT(buf);
  size_t n = fread(buf, 1, MAX - 1, f);
  fclose(f);
  ASSERT(n > 0 && n < MAX - 1);
  buf[n] = '\0';
  if (len) *len = n;
  return buf;
}

static const struct tks_config_key *key(const char *name) {
  const struct tks_config_key *k = tks_config_key_find(name);
  if (!k) TEST_FAIL("no key '%s' in the table", name);
  return k;
}

static const char *format(const char *name, const struct tks_config *c) {
  static char buf[TKS_CONFIG_VALUE_MAX];
  tks_config_key_format(key(name), c, buf, sizeof buf);
  return buf;
}

TEST(key_table_entries_are_well_formed) {
  size_t n;
  const struct tks_config_key *keys = tks_config_keys(&n);
  ASSERT(n >= 25);
  struct tks_config d;
  tks_config_defaults(&d);
  for (size_t i = 0; i < n; i++) {
    const struct tks_config_key *k = &keys[i];
    for (size_t j = 0; j < i; j++)
      if (strcmp(keys[j].name, k->name) == 0) TEST_FAIL("key %s is listed twice", k->name);
    ASSERT(tks_config_key_find(k->name) == k);
    if (k->off + k->size > sizeof(struct tks_config) || k->size == 0)
      TEST_FAIL("%s: field at %zu+%zu is outside struct tks_config", k->name, k->off, k->size);
    /* A section's keys are listed together: the file and the README read in that order. */
    const char *dot = strchr(k->name, '.');
    if (i > 0 && dot) {
      size_t len = (size_t)(dot - k->name);
      bool same = strncmp(keys[i - 1].name, k->name, len + 1) == 0;
      for (size_t j = 0; j + 1 < i && !same; j++)
        if (strncmp(keys[j].name, k->name, len + 1) == 0)
          TEST_FAIL("%s is not next to the other keys of its section", k->name);
    }
    switch (k->type) {
    case TKS_CONFIG_UINT:
    case TKS_CONFIG_SIZE:
    case TKS_CONFIG_DURATION:
    case TKS_CONFIG_TIME_OF_DAY:
      ASSERT(k->size == 4 || k->size == 8);
      if (k->size == 4) ASSERT(k->max <= UINT32_MAX);
      if (k->min > k->dflt || k->dflt > k->max)
        TEST_FAIL("%s: default %llu outside %llu..%llu", k->name, (unsigned long long)k->dflt,
                  (unsigned long long)k->min, (unsigned long long)k->max);
      break;
    case TKS_CONFIG_F64:
      ASSERT(k->size == sizeof(double));
      ASSERT(k->min_f64 <= k->dflt_f64 && k->dflt_f64 <= k->max_f64);
      break;
    case TKS_CONFIG_ENUM:
      ASSERT(k->size == sizeof(enum tks_fsync));
      ASSERT(k->nnames > 0 && k->dflt < k->nnames);
      for (unsigned v = 0; v < k->nnames; v++) ASSERT(k->names[v] && *k->names[v]);
      break;
    case TKS_CONFIG_BOOL: ASSERT(k->size == sizeof(bool)); break;
    case TKS_CONFIG_LISTEN:
    case TKS_CONFIG_PATH:
    case TKS_CONFIG_STRING: ASSERT(k->dflt_str && strlen(k->dflt_str) < k->size); break;
    case TKS_CONFIG_PROPS: ASSERT(k->size == TKS_CONFIG_PROPS_BYTES); break;
    case TKS_CONFIG_SCHEMA: ASSERT(k->size == sizeof(struct tks_schema)); break;
    }
    if (k->reload != TKS_RELOAD_FIXED)
      ASSERT(k->type != TKS_CONFIG_LISTEN && k->type != TKS_CONFIG_SCHEMA);
  }
}

TEST(enum_keys_use_the_name_table_of_the_module_owning_the_enum) {
  ASSERT(key("store.mode")->names == tks_mode_names);
  ASSERT(key("journal.fsync")->names == tks_fsync_names);
  ASSERT(key("store.huge_pages")->names == tks_huge_pages_names);
  ASSERT(key("journal.on_corrupt")->names == tks_on_corrupt_names);
  ASSERT(key("journal.on_error")->names == tks_on_error_names);
  ASSERT(key("limits.when_full")->names == tks_when_full_names);
  ASSERT(key("log.level")->names == tks_log_level_names);
  ASSERT(key("subscribe.send_thread")->names == tks_send_thread_names);
  ASSERT_STR_EQ(tks_send_thread_name(TKS_SEND_THREAD_OFF), "off");
  ASSERT_STR_EQ(tks_mode_name(TKS_MODE_FALLBACK), "fallback");
  ASSERT_STR_EQ(tks_fsync_name(TKS_FSYNC_NEVER), "never");
  ASSERT_STR_EQ(tks_on_corrupt_name(TKS_CORRUPT_REFUSE), "refuse");
  ASSERT_STR_EQ(tks_on_error_name(TKS_ON_ERROR_REJECT), "reject");
  ASSERT_STR_EQ(tks_when_full_name(TKS_WHEN_FULL_BACKPRESSURE), "backpressure");
  ASSERT_STR_EQ(tks_log_level_name(TKS_LOG_DEBUG), "debug");
  ASSERT_STR_EQ(tks_fsync_name((enum tks_fsync)TKS_FSYNC_COUNT), "?");
  ASSERT_STR_EQ(tks_when_full_name((enum tks_when_full) - 1), "?");
}

TEST(defaults_are_formatted_as_the_file_writes_them) {
  struct tks_config d;
  tks_config_defaults(&d);
  ASSERT_STR_EQ(format("ingest.listen", &d), "127.0.0.1:7070");
  ASSERT_STR_EQ(format("ingest.max_message_bytes", &d), "64KiB");
  ASSERT_STR_EQ(format("ingest.idle_timeout", &d), "0");
  ASSERT_STR_EQ(format("store.mode", &d), "slotted");
  ASSERT_STR_EQ(format("store.growth_factor", &d), "1.25");
  ASSERT_STR_EQ(format("schema", &d), "MarketEvent, 5 fields");
  ASSERT_STR_EQ(format("journal.enabled", &d), "true");
  ASSERT_STR_EQ(format("journal.fsync_interval", &d), "1s");
  ASSERT_STR_EQ(format("journal.segment_size", &d), "256MiB");
  ASSERT_STR_EQ(format("limits.max_memory", &d), "0");
  ASSERT_STR_EQ(format("log.level", &d), "info");
}

/*
 * Each key set alone to another value: the parser puts it where the table
 * says (the key differs from the defaults, every other key does not) and
 * formats it back as written.  Every key of the table must be here.
 */
TEST(each_key_set_alone_changes_only_its_own_field) {
  static const struct {
    const char *name, *yaml, *formatted;
  } cases[] = {
      {"ingest.listen", "ingest: {listen: \"localhost:7071\"}", "localhost:7071"},
      {"ingest.max_connections", "ingest: {max_connections: 7}", "7"},
      {"ingest.max_message_bytes", "ingest: {max_message_bytes: 1KiB}", "1KiB"},
      {"ingest.read_buffer", "ingest: {read_buffer: 1GiB}", "1GiB"},
      {"ingest.idle_timeout", "ingest: {idle_timeout: 90s}", "90s"},
      {"ingest.message_timeout", "ingest: {message_timeout: 2s}", "2s"},
      {"ingest.min_rate", "ingest: {min_rate: 64KiB}", "64KiB"},
      {"ingest.max_connections_per_ip", "ingest: {max_connections_per_ip: 8}", "8"},
      {"subscribe.listen", "subscribe: {listen: \"[::1]:7072\"}", "[::1]:7072"},
      {"subscribe.max_connections", "subscribe: {max_connections: 3}", "3"},
      {"subscribe.max_connections_per_ip", "subscribe: {max_connections_per_ip: 2}", "2"},
      {"subscribe.max_queue_bytes", "subscribe: {max_queue_bytes: 1MiB}", "1MiB"},
      {"subscribe.slow_policy", "subscribe: {slow_policy: drop}", "drop"},
      {"subscribe.send_thread", "subscribe: {send_thread: off}", "off"},
      {"control.socket", "control: {socket: /tmp/x.sock}", "/tmp/x.sock"},
      {"control.socket_mode", "control: {socket_mode: \"0660\"}", "0660"},
      {"control.socket_group", "control: {socket_group: root}", "root"},
      {"metrics.listen", "metrics: {listen: 127.0.0.1:9170}", "127.0.0.1:9170"},
      {"store.mode", "store: {mode: fallback}", "fallback"},
      {"store.page_size", "store: {page_size: 64KiB}", "64KiB"},
      {"store.growth_factor", "store: {growth_factor: 1.5}", "1.5"},
      {"store.huge_pages", "store: {huge_pages: on}", "on"},
      {"store.max_symbols", "store: {max_symbols: 10}", "10"},
      {"store.max_strings", "store: {max_strings: 10}", "10"},
      {"schema", "schema: [{name: t, type: timestamp}, {name: s, type: symbol}]",
       "custom, 2 fields"},
      {"journal.enabled", "journal: {enabled: false}", "false"},
      {"journal.dir", "journal: {dir: /tmp/j}", "/tmp/j"},
      {"journal.fsync", "journal: {fsync: always}", "always"},
      {"journal.fsync_interval", "journal: {fsync_interval: 250ms}", "250ms"},
      {"journal.on_corrupt", "journal: {on_corrupt: refuse}", "refuse"},
      {"journal.segment_size", "journal: {segment_size: 1GiB}", "1GiB"},
      {"journal.max_bytes", "journal: {max_bytes: 10GiB}", "10GiB"},
      {"journal.on_error", "journal: {on_error: reject}", "reject"},
      {"journal.checkpoint_interval", "journal: {checkpoint_interval: 0}", "0"},
      {"journal.checkpoint_bytes", "journal: {checkpoint_bytes: 64MiB}", "64MiB"},
      {"archive.enabled", "archive: {enabled: false}", "false"},
      {"archive.dir", "archive: {dir: /tmp/a}", "/tmp/a"},
      {"archive.roll_at", "archive: {roll_at: \"21:30\"}", "21:30:00"},
      {"archive.retention", "archive: {retention: 90d}", "2160h"},
      {"archive.level", "archive: {level: 9}", "9"},
      {"limits.max_memory", "limits: {max_memory: 64MiB}", "64MiB"},
      {"limits.when_full", "limits: {when_full: reject}", "reject"},
      {"limits.retention", "limits: {retention: 24h}", "24h"},
      {"query.max_rows", "query: {max_rows: 5}", "5"},
      {"log.level", "log: {level: warn}", "warn"},
      {"kafka.source.brokers", "kafka: {source: {brokers: \"127.0.0.1:9092,127.0.0.1:9093\"}}",
       "127.0.0.1:9092,127.0.0.1:9093"},
      {"kafka.source.topic", "kafka: {source: {topic: md.ticks}}", "md.ticks"},
      {"kafka.source.group", "kafka: {source: {group: fleet-a}}", "fleet-a"},
      {"kafka.source.from", "kafka: {source: {from: committed}}", "committed"},
      {"kafka.source.partitioner", "kafka: {source: {partitioner: crc32}}", "crc32"},
      {"kafka.source.node", "kafka: {source: {node: node-2}}", "node-2"},
      {"kafka.source.nodes_topic", "kafka: {source: {nodes_topic: fleet.nodes}}", "fleet.nodes"},
      {"kafka.source.properties",
       "kafka: {source: {properties: {fetch.wait.max.ms: 10, client.id: a}}}",
       "{fetch.wait.max.ms: 10, client.id: a}"},
      {"kafka.sink.brokers", "kafka: {sink: {brokers: \"[::1]:9092\"}}", "[::1]:9092"},
      {"kafka.sink.topic", "kafka: {sink: {topic: out}}", "out"},
      {"kafka.sink.max_queue_bytes", "kafka: {sink: {max_queue_bytes: 64MiB}}", "64MiB"},
      {"kafka.sink.on_full", "kafka: {sink: {on_full: reject}}", "reject"},
      {"kafka.sink.properties", "kafka: {sink: {properties: {linger.ms: 5}}}", "{linger.ms: 5}"},
  };
  size_t n;
  const struct tks_config_key *keys = tks_config_keys(&n);
  ASSERT_EQ(n, TKS_ARRAY_SIZE(cases));
  struct tks_config d;
  tks_config_defaults(&d);
  for (size_t i = 0; i < n; i++) {
    ASSERT_STR_EQ(cases[i].name, keys[i].name);
    struct tks_config c;
    EXPECT_OK(&c, cases[i].yaml);
    ASSERT_STR_EQ(format(keys[i].name, &c), cases[i].formatted);
    for (size_t j = 0; j < n; j++) {
      bool equal = tks_config_key_equal(&keys[j], &c, &d);
      if (equal == (i == j))
        TEST_FAIL("'%s': %s is %s the default", cases[i].yaml, keys[j].name,
                  equal ? "still" : "no longer");
    }
    /* Copying the key back gives the defaults again. */
    tks_config_key_copy(&keys[i], &c, &d);
    ASSERT(is_defaults(&c));
  }
}

TEST(listen_addresses_compare_by_host_and_port) {
  struct tks_config a, b;
  EXPECT_OK(&a, "ingest: {listen: \"localhost:7070\"}");
  tks_config_defaults(&b);
  ASSERT(tks_config_key_equal(key("ingest.listen"), &a, &b));
  EXPECT_OK(&b, "ingest: {listen: \"[::1]:7071\"}");
  ASSERT(!tks_config_key_equal(key("ingest.listen"), &a, &b));
  tks_config_key_copy(key("ingest.listen"), &a, &b);
  ASSERT_STR_EQ(a.ingest.listen, "[::1]:7071");
  ASSERT_STR_EQ(a.ingest.host, "::1");
  ASSERT_EQ(a.ingest.port, 7071);
}

TEST(key_diff_gives_both_values_or_the_first_schema_difference) {
  struct tks_config a, b;
  char buf[2 * TKS_CONFIG_VALUE_MAX];
  tks_config_defaults(&a);
  EXPECT_OK(&b, "ingest: {max_message_bytes: 4096}\nlimits: {retention: 1h}\n"
                "schema: [{name: ts, type: timestamp}, {name: sym, type: symbol}]\n");
  tks_config_key_diff(key("ingest.max_message_bytes"), &a, &b, buf, sizeof buf);
  ASSERT_STR_EQ(buf, "64KiB -> 4KiB");
  tks_config_key_diff(key("limits.retention"), &a, &b, buf, sizeof buf);
  ASSERT_STR_EQ(buf, "0 -> 1h");
  tks_config_key_diff(key("schema"), &a, &b, buf, sizeof buf);
  ASSERT_STR_EQ(buf, "field 2 ticker -> sym");
  tks_config_key_diff(key("schema"), &a, &a, buf, sizeof buf);
  ASSERT_STR_EQ(buf, "");
  /* The declared MarketEvent is the default one, whatever the file looked like. */
  EXPECT_OK(&b, "schema:\n  - {name: ts, type: timestamp}\n  - {name: ticker, type: symbol, "
                "required: true}\n  - {name: price, type: f64, required: true}\n"
                "  - {name: volume, type: i64, required: true}\n  - {name: flags, type: string}\n");
  ASSERT(tks_config_key_equal(key("schema"), &a, &b));
}

/* The keys of config/tickslab.yaml: "name:" lines, indented two spaces a
 * level ("kafka:", "  source:", "    brokers:"); a name with no deeper
 * name lines under it is a key, its path joined with dots. */
static unsigned yaml_keys(const char *text, char names[][64], unsigned max) {
  unsigned n = 0;
  char stack[4][32];
  char last[64] = "";
  int last_depth = -1;
  for (const char *p = text; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p)) {
    int indent = 0;
    while (p[indent] == ' ') indent++;
    char word[32];
    int used = 0;
    if (indent % 2 || indent / 2 >= 4 || sscanf(p + indent, "%31[a-z_]:%n", word, &used) != 1 ||
        used == 0)
      continue;
    int depth = indent / 2;
    ASSERT(depth <= last_depth + 1);
    if (last[0] && depth <= last_depth) snprintf(names[n++], 64, "%s", last);
    snprintf(stack[depth], sizeof stack[depth], "%s", word);
    last[0] = '\0';
    for (int d = 0; d <= depth; d++)
      snprintf(last + strlen(last), sizeof last - strlen(last), "%s%s", d ? "." : "", stack[d]);
    last_depth = depth;
    ASSERT(n < max);
  }
  if (last[0]) snprintf(names[n++], 64, "%s", last);
  return n;
}

TEST(default_file_has_every_key_of_the_table_and_no_other) {
  char *text = read_source("config/tickslab.yaml", NULL);
  static char names[128][64];
  unsigned m = yaml_keys(text, names, 128);
  size_t n;
  const struct tks_config_key *keys = tks_config_keys(&n);
  for (unsigned i = 0; i < m; i++)
    if (!tks_config_key_find(names[i]))
      TEST_FAIL("config/tickslab.yaml has '%s', which is not in the key table", names[i]);
  for (size_t i = 0; i < n; i++) {
    unsigned j = 0;
    while (j < m && strcmp(names[j], keys[i].name) != 0) j++;
    if (j == m) TEST_FAIL("config/tickslab.yaml does not document '%s'", keys[i].name);
    if (j != i)
      TEST_FAIL("config/tickslab.yaml has '%s' at place %u, the table at %zu", keys[i].name, j, i);
  }
  ASSERT_EQ(m, n);
  free(text);
}

/* The cells of the README's key table rows ("| `name` | ..."), in the
 * section "## Configuring". */
TEST(readme_key_table_has_every_key_of_the_table_and_no_other) {
  char *text = read_source("README.md", NULL);
  char *p = strstr(text, "\n## Configuring\n");
  if (!p) TEST_FAIL("README.md has no '## Configuring' section");
  char *end = strstr(p + 1, "\n## ");
  if (end) *end = '\0';
  size_t n;
  const struct tks_config_key *keys = tks_config_keys(&n);
  struct tks_config d;
  tks_config_defaults(&d);
  size_t row = 0;
  for (char *line = p, *next; line && *line; line = next) {
    char *eol = strchr(line, '\n');
    next = eol ? eol + 1 : NULL;
    if (strncmp(line, "| `", 3) != 0) continue;
    if (eol) *eol = '\0';
    char *cell[5] = {0};
    unsigned nc = 0;
    for (char *c = line + 1; nc < 5 && c && *c;) {
      char *bar = strstr(c, " |");
      if (bar) *bar = '\0';
      while (*c == ' ') c++;
      cell[nc++] = c;
      c = bar ? bar + 2 : NULL;
    }
    if (nc != 4) TEST_FAIL("README row '%s' has %u cells, not 4", cell[0], nc);
    char name[64];
    if (sscanf(cell[0], "`%63[^`]`", name) != 1) TEST_FAIL("README row '%s': no key", cell[0]);
    const struct tks_config_key *k = tks_config_key_find(name);
    if (!k) TEST_FAIL("README.md lists '%s', which is not in the key table", name);
    if (row >= n || k != &keys[row])
      TEST_FAIL("README.md lists '%s' at row %zu, the table has '%s'", name, row,
                row < n ? keys[row].name : "nothing");
    char want[TKS_CONFIG_VALUE_MAX + 2];
    tks_config_key_format(k, &d, want + 1, TKS_CONFIG_VALUE_MAX);
    want[0] = '`';
    strcat(want, "`");
    if (strcmp(cell[1], want) != 0)
      TEST_FAIL("README.md: %s defaults to %s, not %s", name, want, cell[1]);
    const char *reload = k->reload == TKS_RELOAD_FIXED ? "restart" : "live";
    if (strcmp(cell[3], reload) != 0)
      TEST_FAIL("README.md: %s is '%s' on SIGHUP, not '%s'", name, reload, cell[3]);
    if (k->type == TKS_CONFIG_ENUM) {
      char names[256] = "";
      for (unsigned v = 0; v < k->nnames; v++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s`%s`", v ? ", " : "",
                 k->names[v]);
      if (strcmp(cell[2], names) != 0)
        TEST_FAIL("README.md: %s takes %s, not %s", name, names, cell[2]);
    }
    if (k->type == TKS_CONFIG_UINT) {
      snprintf(want, sizeof want, "%llu..%llu", (unsigned long long)k->min,
               (unsigned long long)k->max);
      if (strncmp(cell[2], want, strlen(want)) != 0)
        TEST_FAIL("README.md: %s takes %s, not %s", name, want, cell[2]);
    }
    row++;
  }
  if (row != n) TEST_FAIL("README.md lists %zu keys, the table has %zu", row, n);
  free(text);
}

/* ---- every key ------------------------------------------------------- */

TEST(every_key_can_be_set) {
  struct tks_config c;
  EXPECT_OK(&c, "ingest:\n"
                "  listen: \"[::1]:0\"\n"
                "  max_connections: 10\n"
                "  max_message_bytes: 1KiB\n"
                "  read_buffer: 2KiB\n"
                "control:\n"
                "  socket: run/ctl.sock\n"
                "store:\n"
                "  mode: slotted\n"
                "  page_size: 64KiB\n"
                "  growth_factor: 2.5\n"
                "  max_symbols: 100\n"
                "  max_strings: 7\n"
                "schema:\n"
                "  - {name: ts, type: timestamp}\n"
                "  - {name: sym, type: symbol, required: true}\n"
                "  - {name: n, type: u32, default: 7}\n"
                "  - {name: ok, type: bool, default: true}\n"
                "  - {name: px, type: f64, default: -1.5}\n"
                "  - {name: q, type: i64, default: -3, required: false}\n"
                "  - {name: note, type: string, default: \"\"}\n"
                "log:\n"
                "  level: debug\n");
  ASSERT_STR_EQ(c.path, "");
  ASSERT_STR_EQ(c.ingest.listen, "[::1]:0");
  ASSERT_STR_EQ(c.ingest.host, "::1");
  ASSERT_EQ(c.ingest.port, 0);
  ASSERT_EQ(c.ingest.max_connections, 10);
  ASSERT_EQ(c.ingest.max_message_bytes, 1024);
  ASSERT_EQ(c.ingest.read_buffer_bytes, 2048);
  ASSERT_STR_EQ(c.control.socket, "run/ctl.sock");
  ASSERT_EQ(c.store.mode, TKS_MODE_SLOTTED);
  ASSERT_U64_EQ(c.store.page_size, 65536);
  ASSERT(c.store.growth_factor == 2.5);
  ASSERT_EQ(c.store.max_symbols, 100);
  ASSERT_EQ(c.store.max_strings, 7);
  ASSERT_EQ(c.log.level, TKS_LOG_DEBUG);

  ASSERT_STR_EQ(c.schema.name, "custom");
  ASSERT_EQ(c.schema.nfields, 7);
  ASSERT_STR_EQ(c.schema.fields[0].name, "ts");
  ASSERT_STR_EQ(c.schema.fields[6].name, "note");
  ASSERT_EQ(c.schema.ts_field, 0);
  ASSERT_EQ(c.schema.symbol_field, 1);
  ASSERT(field(&c, "sym")->required);
  ASSERT(!field(&c, "q")->required);
  ASSERT_EQ(field(&c, "n")->type, TKS_TYPE_U32);
  ASSERT_EQ(field(&c, "n")->dflt.u32, 7);
  ASSERT_EQ(field(&c, "ok")->type, TKS_TYPE_BOOL);
  ASSERT(field(&c, "ok")->dflt.b);
  ASSERT(field(&c, "px")->dflt.f64 == -1.5);
  ASSERT_EQ(field(&c, "q")->dflt.i64, -3);
  ASSERT_EQ(field(&c, "note")->type, TKS_TYPE_STRING);
  ASSERT_EQ(field(&c, "note")->dflt.u32, 0);
  /* 8-byte ts, px, q; 4-byte sym, n, note; 1-byte ok; padded to 8. */
  ASSERT_EQ(field(&c, "ts")->offset, 0);
  ASSERT_EQ(field(&c, "px")->offset, 8);
  ASSERT_EQ(field(&c, "q")->offset, 16);
  ASSERT_EQ(field(&c, "sym")->offset, 24);
  ASSERT_EQ(field(&c, "n")->offset, 28);
  ASSERT_EQ(field(&c, "note")->offset, 32);
  ASSERT_EQ(field(&c, "ok")->offset, 36);
  ASSERT_EQ(c.schema.record_size, 40);
}

TEST(block_and_flow_styles_read_the_same) {
  struct tks_config a, b;
  EXPECT_OK(&a, "store:\n  max_symbols: 5\nschema:\n  - name: t\n    type: timestamp\n"
                "  - name: s\n    type: symbol\n    required: true\n");
  EXPECT_OK(&b, "{store: {max_symbols: 5}, schema: [{name: t, type: timestamp}, "
                "{name: s, type: symbol, required: true}]}");
  ASSERT(memcmp(&a, &b, sizeof a) == 0);
  ASSERT_EQ(a.store.max_symbols, 5);
  ASSERT_EQ(a.schema.nfields, 2);
  ASSERT_EQ(a.schema.record_size, 16);
}

TEST(config_load_reads_a_file_and_records_its_path) {
  char path[] = "/tmp/tks_config_XXXXXX";
  int fd = mkstemp(path);
  ASSERT(fd >= 0);
  close(fd);
  const char *text = "log:\n  level: warn\n";
  write_file(path, text, strlen(text));
  struct tks_config c;
  int r = tks_config_load(&c, path, err, sizeof err);
  unlink(path);
  if (r) TEST_FAIL("load failed (%d): %s", r, err);
  ASSERT_STR_EQ(c.path, path);
  ASSERT_EQ(c.log.level, TKS_LOG_WARN);
}

/* ---- sizes and numbers ----------------------------------------------- */

TEST(sizes_accept_units_and_plain_numbers) {
  static const struct {
    const char *text;
    uint32_t want;
  } cases[] = {
      {"65536", 65536},  {"64KiB", 65536},      {"64KB", 65536}, {"64k", 65536},
      {"1MiB", 1 << 20}, {"\"2MiB\"", 2 << 20}, {"512B", 512},   {"64", 64},
      {"0.5KiB", 512},   {"64MiB", 64 << 20},
  };
  for (unsigned i = 0; i < TKS_ARRAY_SIZE(cases); i++) {
    char yaml[128];
    snprintf(yaml, sizeof yaml, "ingest:\n  max_message_bytes: %s\n  read_buffer: 1GiB\n",
             cases[i].text);
    struct tks_config c;
    EXPECT_OK(&c, yaml);
    ASSERT_EQ(c.ingest.max_message_bytes, cases[i].want);
    ASSERT_EQ(c.ingest.read_buffer_bytes, 1 << 30);
  }
  struct tks_config c;
  EXPECT_OK(&c, "store:\n  page_size: 1.5MiB\n");
  ASSERT_U64_EQ(c.store.page_size, 3 << 19);
  EXPECT_OK(&c, "store:\n  page_size: 1GiB\n");
  ASSERT_U64_EQ(c.store.page_size, 1 << 30);
}

TEST(a_value_that_is_not_a_size_is_refused_with_an_example) {
  EXPECT_ERROR("store:\n  page_size: 12XB\n",
               "x.yaml:2:14: store.page_size: '12XB' is not a size (e.g. 1MiB)");
  EXPECT_ERROR("ingest:\n  read_buffer: -1\n",
               "x.yaml:2:16: ingest.read_buffer: '-1' is not a size (e.g. 1MiB)");
}

TEST(sizes_out_of_range_name_the_range) {
  EXPECT_ERROR("store:\n  page_size: 2GiB\n",
               "x.yaml:2:14: store.page_size: 2GiB is out of range (64KiB..1GiB)");
  EXPECT_ERROR("store:\n  page_size: 4096\n",
               "x.yaml:2:14: store.page_size: 4096 is out of range (64KiB..1GiB)");
  EXPECT_ERROR("ingest:\n  max_message_bytes: 63\n",
               "x.yaml:2:22: ingest.max_message_bytes: 63 is out of range (64B..64MiB)");
  EXPECT_ERROR("ingest:\n  max_message_bytes: 99999999999999999999999\n",
               "x.yaml:2:22: ingest.max_message_bytes: 99999999999999999999999 is out of range "
               "(64B..64MiB)");
}

TEST(page_size_must_be_a_multiple_of_4096) {
  EXPECT_ERROR("store:\n  page_size: 100000\n",
               "x.yaml:2:14: store.page_size: 100000 is not a multiple of 4096");
}

TEST(numbers_out_of_range_name_the_range) {
  EXPECT_ERROR("ingest:\n  max_connections: 0\n",
               "x.yaml:2:20: ingest.max_connections: 0 is out of range (1..1000000)");
  EXPECT_ERROR("ingest:\n  max_connections: 1000001\n",
               "x.yaml:2:20: ingest.max_connections: 1000001 is out of range (1..1000000)");
  EXPECT_ERROR("store:\n  max_symbols: 2147483649\n",
               "x.yaml:2:16: store.max_symbols: 2147483649 is out of range (1..2147483648)");
  EXPECT_ERROR("store:\n  max_strings: 0\n",
               "x.yaml:2:16: store.max_strings: 0 is out of range (1..2147483648)");
  EXPECT_ERROR("store:\n  growth_factor: 4.5\n",
               "x.yaml:2:18: store.growth_factor: 4.5 is out of range (1.01..4)");
  EXPECT_ERROR("store:\n  growth_factor: 1\n",
               "x.yaml:2:18: store.growth_factor: 1 is out of range (1.01..4)");
  struct tks_config c;
  EXPECT_OK(&c, "store: {max_symbols: 2147483648, growth_factor: 1.01, max_strings: 1}\n"
                "ingest: {max_connections: 1000000}\n");
  ASSERT_EQ(c.store.max_symbols, 2147483648u);
  ASSERT(c.store.growth_factor == 1.01);
  EXPECT_OK(&c, "store: {growth_factor: 4}\n");
  ASSERT(c.store.growth_factor == 4.0);
}

TEST(values_that_are_not_numbers_are_refused) {
  EXPECT_ERROR("ingest:\n  max_connections: lots\n",
               "x.yaml:2:20: ingest.max_connections: 'lots' is not a whole number");
  EXPECT_ERROR("ingest:\n  max_connections: -5\n",
               "x.yaml:2:20: ingest.max_connections: '-5' is not a whole number");
  EXPECT_ERROR("ingest:\n  max_connections: 1.5\n",
               "x.yaml:2:20: ingest.max_connections: '1.5' is not a whole number");
  EXPECT_ERROR("store:\n  growth_factor: fast\n",
               "x.yaml:2:18: store.growth_factor: 'fast' is not a number");
  EXPECT_ERROR("store:\n  growth_factor: nan\n",
               "x.yaml:2:18: store.growth_factor: 'nan' is not a number");
}

TEST(read_buffer_smaller_than_max_message_bytes_is_refused) {
  EXPECT_ERROR("ingest:\n  read_buffer: 1KiB\n  max_message_bytes: 2KiB\n",
               "x.yaml:2:16: ingest.read_buffer (1KiB) must be at least "
               "ingest.max_message_bytes (2KiB)");
  EXPECT_ERROR("ingest:\n  max_message_bytes: 1MiB\n",
               "x.yaml:2:22: ingest.read_buffer (256KiB, the default) must be at least "
               "ingest.max_message_bytes (1MiB)");
  struct tks_config c;
  EXPECT_OK(&c, "ingest:\n  max_message_bytes: 4KiB\n  read_buffer: 4096\n");
  ASSERT_EQ(c.ingest.read_buffer_bytes, 4096);
}

/* ---- listen ---------------------------------------------------------- */

TEST(ipv6_listen_address_is_split_into_host_and_port) {
  struct tks_config c;
  EXPECT_OK(&c, "ingest:\n  listen: \"[::1]:7070\"\n");
  ASSERT_STR_EQ(c.ingest.listen, "[::1]:7070");
  ASSERT_STR_EQ(c.ingest.host, "::1");
  ASSERT_EQ(c.ingest.port, 7070);
  EXPECT_OK(&c, "ingest: {listen: '[2001:db8::17]:65535'}\n");
  ASSERT_STR_EQ(c.ingest.host, "2001:db8::17");
  ASSERT_EQ(c.ingest.port, 65535);
  EXPECT_OK(&c, "ingest: {listen: \"[::]:0\"}\n");
  ASSERT_STR_EQ(c.ingest.host, "::");
  ASSERT_EQ(c.ingest.port, 0);
}

TEST(ipv4_listen_address_and_localhost_and_port_zero_are_accepted) {
  struct tks_config c;
  EXPECT_OK(&c, "ingest:\n  listen: 0.0.0.0:9000\n");
  ASSERT_STR_EQ(c.ingest.host, "0.0.0.0");
  ASSERT_EQ(c.ingest.port, 9000);
  EXPECT_OK(&c, "ingest:\n  listen: localhost:0\n");
  ASSERT_STR_EQ(c.ingest.listen, "localhost:0");
  ASSERT_STR_EQ(c.ingest.host, "127.0.0.1");
  ASSERT_EQ(c.ingest.port, 0);
}

TEST(parse_listen_refuses_bad_addresses_with_a_reason) {
  static const struct {
    const char *s, *why;
  } bad[] = {
      {"", "empty address"},
      {"127.0.0.1", "missing port in '127.0.0.1'"},
      {"127.0.0.1:", "missing port"},
      {":7070", "missing host"},
      {"127.0.0.1:70000", "port 70000 is out of range (0..65535)"},
      {"127.0.0.1:99999999999999999999999", "out of range (0..65535)"},
      {"127.0.0.1:http", "port 'http' is not a number"},
      {"127.0.0.1:-1", "port '-1' is not a number"},
      {"127.0.0.1: 80", "not a number"},
      {"example.com:7070", "host 'example.com' is not a numeric IPv4 address"},
      {"256.1.1.1:7070", "is not a numeric IPv4 address"},
      {"::1:7070", "must be in brackets"},
      {"[::1]", "missing port"},
      {"[::1]:", "missing port"},
      {"[::1:7070", "missing ']'"},
      {"[]:7070", "not a numeric IPv6 address"},
      {"[127.0.0.1]:7070", "not a numeric IPv6 address"},
      {"[fe80::zz]:1", "not a numeric IPv6 address"},
  };
  for (unsigned i = 0; i < TKS_ARRAY_SIZE(bad); i++) {
    char host[256] = "unchanged", why[256] = "";
    uint16_t port = 42;
    int r = tks_config_parse_listen(bad[i].s, host, sizeof host, &port, why, sizeof why);
    if (r != -EINVAL) TEST_FAIL("'%s' was accepted", bad[i].s);
    if (!strstr(why, bad[i].why))
      TEST_FAIL("'%s': reason \"%s\" lacks \"%s\"", bad[i].s, why, bad[i].why);
    ASSERT_STR_EQ(host, "unchanged");
    ASSERT_EQ(port, 42);
  }
}

TEST(bad_listen_values_are_refused_at_their_position) {
  EXPECT_ERROR("ingest:\n  listen: 127.0.0.1\n",
               "x.yaml:2:11: ingest.listen: missing port in '127.0.0.1' (expected host:port)");
  EXPECT_ERROR("ingest:\n  listen: 127.0.0.1:70000\n",
               "x.yaml:2:11: ingest.listen: port 70000 is out of range (0..65535)");
  EXPECT_ERROR_AT("ingest:\n  listen: example.com:7070\n", "2:11",
                  "ingest.listen: host 'example.com' is not a numeric IPv4 address");
  EXPECT_ERROR("ingest:\n  listen: \"\"\n",
               "x.yaml:2:11: ingest.listen: empty address (expected host:port)");
  EXPECT_ERROR("ingest:\n  listen:\n", "x.yaml:2:10: ingest.listen: expected a value");
}

TEST(unquoted_ipv6_listen_is_refused_with_a_hint_to_quote_it) {
  EXPECT_ERROR_AT("ingest:\n  listen: [::1]:7070\n", "2:11",
                  "quote an IPv6 address: listen: \"[::1]:7070\"");
}

/* ---- control, store, log --------------------------------------------- */

TEST(control_socket_must_fit_sun_path) {
  char yaml[256], path[110];
  memset(path, 'a', 107);
  path[107] = '\0';
  snprintf(yaml, sizeof yaml, "control:\n  socket: %s\n", path);
  struct tks_config c;
  EXPECT_OK(&c, yaml);
  ASSERT_EQ(strlen(c.control.socket), 107);
  snprintf(yaml, sizeof yaml, "control:\n  socket: /%s\n", path);
  EXPECT_ERROR(yaml, "x.yaml:2:11: control.socket: the path is 108 bytes, a Unix socket path "
                     "can have at most 107");
  EXPECT_ERROR("control:\n  socket: ''\n", "x.yaml:2:11: control.socket: the path is empty");
}

TEST(unknown_mode_lists_the_known_modes) {
  EXPECT_ERROR("store:\n  mode: turbo\n",
               "x.yaml:2:9: store.mode: unknown mode 'turbo' (expected slotted, dynamic or "
               "fallback)");
  EXPECT_ERROR("store:\n  mode: Slotted\n",
               "x.yaml:2:9: store.mode: unknown mode 'Slotted' (expected slotted, dynamic or "
               "fallback)");
}

TEST(every_mode_is_accepted) {
  static const struct {
    const char *text;
    enum tks_mode mode;
  } cases[] = {{"store:\n  mode: slotted\n", TKS_MODE_SLOTTED},
               {"store:\n  mode: dynamic\n", TKS_MODE_DYNAMIC},
               {"store:\n  mode: fallback\n", TKS_MODE_FALLBACK}};
  for (unsigned i = 0; i < TKS_ARRAY_SIZE(cases); i++) {
    struct tks_config c;
    EXPECT_OK(&c, cases[i].text);
    ASSERT_EQ(c.store.mode, cases[i].mode);
  }
}

TEST(journal_and_limits_keys_are_read_and_checked) {
  struct tks_config c;
  EXPECT_OK(&c, "journal:\n  enabled: false\n  dir: /data/j\n  fsync: always\n"
                "  fsync_interval: 250ms\n  on_corrupt: refuse\n  segment_size: 64MiB\n"
                "  max_bytes: 1GiB\n  on_error: reject\n"
                "limits:\n  max_memory: 4GiB\n  when_full: backpressure\n  retention: 24h\n"
                "ingest:\n  idle_timeout: 5m\n");
  ASSERT(!c.journal.enabled);
  ASSERT_STR_EQ(c.journal.dir, "/data/j");
  ASSERT_EQ(c.journal.fsync, TKS_FSYNC_ALWAYS);
  ASSERT_U64_EQ(c.journal.fsync_interval_ns, 250000000ull);
  ASSERT_EQ(c.journal.on_corrupt, TKS_CORRUPT_REFUSE);
  ASSERT_U64_EQ(c.journal.segment_bytes, 64ull << 20);
  ASSERT_U64_EQ(c.journal.max_bytes, 1ull << 30);
  ASSERT_EQ(c.journal.on_error, TKS_ON_ERROR_REJECT);
  ASSERT_U64_EQ(c.limits.max_memory, 4ull << 30);
  ASSERT_EQ(c.limits.when_full, TKS_WHEN_FULL_BACKPRESSURE);
  ASSERT_U64_EQ(c.limits.retention_ns, 86400ull * 1000000000);
  ASSERT_U64_EQ(c.ingest.idle_timeout_ns, 300ull * 1000000000);
  EXPECT_ERROR(
      "journal:\n  fsync: sometimes\n",
      "x.yaml:2:10: journal.fsync: unknown value 'sometimes' (expected always, interval or "
      "never)");
  EXPECT_ERROR(
      "limits:\n  when_full: panic\n",
      "x.yaml:2:14: limits.when_full: unknown value 'panic' (expected evict_oldest, reject "
      "or backpressure)");
  EXPECT_ERROR("limits:\n  max_memory: 1MiB\n",
               "x.yaml:2:15: limits.max_memory: at least 8MiB, or 0 for no limit");
  EXPECT_ERROR(
      "journal:\n  fsync_interval: 5\n",
      "x.yaml:2:19: journal.fsync_interval: '5' is not a duration (e.g. 500ms, 1s, 5m, 24h, "
      "or 0)");
  EXPECT_ERROR(
      "journal:\n  dir: \"\"\n",
      "x.yaml:2:8: journal.dir: the path is empty (to run without a journal: enabled: false)");
}

TEST(query_max_rows_is_bounded) {
  struct tks_config c;
  EXPECT_OK(&c, "query:\n  max_rows: 500\n");
  ASSERT_EQ(c.query.max_rows, 500);
  EXPECT_ERROR("query:\n  max_rows: 0\n",
               "x.yaml:2:13: query.max_rows: 0 is out of range (1..1000000)");
  EXPECT_ERROR("query:\n  rows: 5\n",
               "x.yaml:2:3: unknown key 'rows' in 'query' (known: max_rows)");
}

TEST(log_level_is_one_of_four) {
  static const struct {
    const char *name;
    enum tks_log_level level;
  } ok[] = {{"error", TKS_LOG_ERROR},
            {"warn", TKS_LOG_WARN},
            {"info", TKS_LOG_INFO},
            {"debug", TKS_LOG_DEBUG}};
  for (unsigned i = 0; i < TKS_ARRAY_SIZE(ok); i++) {
    char yaml[64];
    snprintf(yaml, sizeof yaml, "log: {level: %s}", ok[i].name);
    struct tks_config c;
    EXPECT_OK(&c, yaml);
    ASSERT_EQ(c.log.level, ok[i].level);
  }
  EXPECT_ERROR("log:\n  level: verbose\n",
               "x.yaml:2:10: log.level: unknown level 'verbose' (expected error, warn, info or "
               "debug)");
}

/* ---- structure errors ------------------------------------------------ */

TEST(unknown_key_is_reported_with_line_and_column) {
  EXPECT_ERROR("ingest:\n  listen: 127.0.0.1:7070\n  max_conection: 5\n",
               "x.yaml:3:3: unknown key 'max_conection' in 'ingest' (known: listen, "
               "max_connections, max_message_bytes, read_buffer, idle_timeout, message_timeout, "
               "min_rate, max_connections_per_ip)");
  EXPECT_ERROR(
      "log: {level: info}\nreplication:\n  dir: /tmp\n",
      "x.yaml:2:1: unknown key 'replication' at the top level (known: ingest, subscribe, control, "
      "metrics, store, schema, journal, archive, limits, query, log, kafka)");
  EXPECT_ERROR("store:\n  # comment\n\n  pagesize: 1MiB\n",
               "x.yaml:4:3: unknown key 'pagesize' in 'store' (known: mode, page_size, "
               "growth_factor, huge_pages, max_symbols, max_strings)");
}

TEST(archive_roll_at_is_a_utc_time_of_day) {
  struct tks_config c;
  EXPECT_OK(&c, "archive: {roll_at: \"23:59:59\"}");
  ASSERT_EQ(c.archive.roll_at_ns, (23 * 3600 + 59 * 60 + 59) * 1000000000ull);
  EXPECT_OK(&c, "archive: {roll_at: \"00:00\"}");
  ASSERT_EQ(c.archive.roll_at_ns, 0);
  static const char *const bad[] = {"24:00", "12:60", "1:30",    "12:30:60", "12-30", "12:30:",
                                    "",      "x",     "12:30am", "+1:30",    " 1:30", "12:3a"};
  for (size_t i = 0; i < TKS_ARRAY_SIZE(bad); i++) {
    char yaml[96], want[200];
    snprintf(yaml, sizeof yaml, "archive: {roll_at: \"%s\"}", bad[i]);
    snprintf(want, sizeof want,
             "x.yaml:1:20: archive.roll_at: '%s' is not a UTC time of day (HH:MM or HH:MM:SS, "
             "e.g. 00:00 or 21:30)",
             bad[i]);
    EXPECT_ERROR(yaml, want);
  }
  EXPECT_OK(&c, "archive: {dir: \"\"}");
  ASSERT_STR_EQ(c.archive.dir, "");
  EXPECT_ERROR("journal: {dir: \"\"}",
               "x.yaml:1:16: journal.dir: the path is empty (to run without a journal: enabled: "
               "false)");
  EXPECT_ERROR("archive: {level: 20}", "x.yaml:1:18: archive.level: 20 is out of range (1..19)");
}

TEST(duplicate_key_is_reported_at_its_second_occurrence) {
  EXPECT_ERROR("log:\n  level: info\n  level: debug\n",
               "x.yaml:3:3: duplicate key 'level' in 'log' (first at line 2)");
  EXPECT_ERROR("log: {level: info}\nstore: {}\nlog: {}\n",
               "x.yaml:3:1: duplicate key 'log' at the top level (first at line 1)");
  EXPECT_ERROR("schema:\n  - {name: a, type: symbol, name: b}\n",
               "x.yaml:2:29: duplicate key 'name' in schema field 1 (first at line 2)");
}

TEST(top_level_must_be_a_mapping) {
  EXPECT_ERROR("# comment\n- a\n- b\n",
               "x.yaml:2:1: expected a mapping at the top level, got a sequence");
  EXPECT_ERROR("hello\n", "x.yaml:1:1: expected a mapping at the top level, got a scalar");
}

TEST(a_section_must_be_a_mapping) {
  EXPECT_ERROR("ingest: 5\n", "x.yaml:1:9: ingest: expected a mapping, got a scalar");
  EXPECT_ERROR("store:\n  - mode\n", "x.yaml:2:3: store: expected a mapping, got a sequence");
  EXPECT_ERROR("schema: {name: ts}\n",
               "x.yaml:1:9: schema: expected a list of fields, got a mapping");
}

TEST(sequence_or_mapping_where_a_scalar_is_expected_is_refused) {
  EXPECT_ERROR("log:\n  level: [info, debug]\n",
               "x.yaml:2:10: log.level: expected a scalar value, got a sequence");
  EXPECT_ERROR("ingest:\n  max_connections:\n    a: 1\n",
               "x.yaml:3:5: ingest.max_connections: expected a scalar value, got a mapping");
  EXPECT_ERROR("{[a]: b}\n", "x.yaml:1:2: expected a key at the top level, got a sequence");
}

TEST(bool_of_wrong_type_is_refused) {
  EXPECT_ERROR("schema:\n  - {name: ts, type: timestamp}\n"
               "  - {name: sym, type: symbol, required: yes}\n",
               "x.yaml:3:41: schema field 2: required: expected true or false, got 'yes'");
  EXPECT_ERROR("schema:\n  - {name: sym, type: symbol, required: 1}\n",
               "x.yaml:2:41: schema field 1: required: expected true or false, got '1'");
}

TEST(yaml_syntax_error_gives_the_problem_and_position) {
  EXPECT_ERROR("\tlog: 1\n", "x.yaml:1:1: found character that cannot start any token (while "
                             "scanning for the next token at line 1, column 1)");
  EXPECT_ERROR_AT("log:\n  level: info\n bad: [\n", "3:2", "");
  EXPECT_ERROR_AT("log: {level: info\n", "2:1", "did not find expected ',' or '}'");
}

TEST(truncated_yaml_is_refused_at_the_end) {
  EXPECT_ERROR("ingest:\n  listen: \"127.0",
               "x.yaml:2:17: found unexpected end of stream (while scanning a quoted scalar at "
               "line 2, column 11)");
}

TEST(invalid_utf8_is_refused_at_its_position) {
  EXPECT_ERROR("log:\n  level: \xff\n", "x.yaml:2:10: invalid leading UTF-8 octet (byte #xFF)");
}

TEST(nul_byte_in_a_value_is_refused) {
  EXPECT_ERROR("log:\n  level: \"in\\0fo\"\n", "x.yaml:2:10: a value holds a NUL byte");
  /* A raw NUL byte is a control character to libyaml. */
  struct tks_config c;
  ASSERT_EQ(parse(&c, "log: {level: in\0fo}", 19), -EINVAL);
  ASSERT_CONTAINS(err, "x.yaml:1:16: ");
  ASSERT(is_defaults(&c));
}

TEST(more_than_one_document_is_refused) {
  EXPECT_ERROR("log: {level: info}\n---\nlog: {level: debug}\n",
               "x.yaml:2:1: expected one YAML document, found another");
}

TEST(anchors_and_aliases_are_refused) {
  EXPECT_ERROR("store: &a {mode: slotted}\nlog: *a\n",
               "x.yaml:1:8: anchors (&a) and aliases are not allowed in the config");
  EXPECT_ERROR("log: {level: *x}\n", "x.yaml:1:14: aliases (*x) are not allowed in the config");
}

TEST(an_error_after_valid_keys_leaves_the_defaults) {
  EXPECT_ERROR_AT("log: {level: debug}\ningest: {max_connections: 7, listen: 1.2.3.4:1}\n"
                  "store: {mode: turbo}\n",
                  "3:15", "unknown mode 'turbo'");
  EXPECT_ERROR_AT("schema:\n  - {name: t, type: timestamp}\n  - {name: s, type: symbol}\n"
                  "log: {level: loud}\n",
                  "4:14", "unknown level 'loud'");
}

/* ---- schema ---------------------------------------------------------- */

TEST(custom_trade_schema_lays_out_to_32_bytes) {
  struct tks_config c;
  EXPECT_OK(&c, "schema:\n"
                "  - {name: symbol,    type: symbol, required: true}\n"
                "  - {name: timestamp, type: timestamp}\n"
                "  - {name: bid,       type: f64, required: true}\n"
                "  - {name: ask,       type: f64, required: true}\n");
  ASSERT_STR_EQ(c.schema.name, "custom");
  ASSERT_EQ(c.schema.nfields, 4);
  ASSERT_EQ(c.schema.record_size, 32);
  ASSERT_EQ(c.schema.symbol_field, 0);
  ASSERT_EQ(c.schema.ts_field, 1);
  ASSERT_STR_EQ(c.schema.fields[2].name, "bid");
  ASSERT_EQ(field(&c, "timestamp")->offset, 0);
  ASSERT_EQ(field(&c, "bid")->offset, 8);
  ASSERT_EQ(field(&c, "ask")->offset, 16);
  ASSERT_EQ(field(&c, "symbol")->offset, 24);
  ASSERT_EQ(field(&c, "symbol")->size, 4);
  ASSERT_EQ(field(&c, "bid")->size, 8);
  ASSERT(field(&c, "ask")->required);
  ASSERT(!field(&c, "timestamp")->required);
}

TEST(a_declared_marketevent_schema_keeps_its_name_and_any_change_makes_it_custom) {
  const char *me = "schema:\n"
                   "  - {name: ts,     type: timestamp}\n"
                   "  - {name: ticker, type: symbol,  required: true}\n"
                   "  - {name: price,  type: f64,     required: true}\n"
                   "  - {name: volume, type: i64,     required: true}\n"
                   "  - {name: flags,  type: string%s}\n";
  char yaml[512];
  struct tks_config c;
  snprintf(yaml, sizeof yaml, me, "");
  EXPECT_OK(&c, yaml);
  ASSERT(is_defaults(&c));
  snprintf(yaml, sizeof yaml, me, ", required: true");
  EXPECT_OK(&c, yaml);
  ASSERT_STR_EQ(c.schema.name, "custom");
  ASSERT_EQ(c.schema.record_size, 32);
}

TEST(duplicate_field_name_points_at_the_field) {
  EXPECT_ERROR("schema:\n"
               "  - {name: ts, type: timestamp}\n"
               "  - {name: s, type: symbol}\n"
               "  - {name: ts, type: i64}\n",
               "x.yaml:4:12: schema field 3: name 'ts' is already used by field 1");
}

TEST(unknown_field_type_points_at_the_type) {
  EXPECT_ERROR("schema:\n"
               "  - {name: ts, type: timestamp}\n"
               "  - {name: x, type: int}\n",
               "x.yaml:3:21: schema field 2: type: unknown type 'int' (expected timestamp, "
               "symbol, string, i64, u32, f64 or bool)");
}

TEST(field_without_name_or_type_is_refused_at_the_field) {
  EXPECT_ERROR("schema:\n  - {type: symbol}\n", "x.yaml:2:5: schema field 1: 'name' is missing");
  EXPECT_ERROR("schema:\n  - name: s\n    type: symbol\n  - name: t\n",
               "x.yaml:4:5: schema field 2 't': 'type' is missing");
  EXPECT_ERROR("schema:\n  - ts\n",
               "x.yaml:2:5: schema field 1: expected a mapping {name: ..., type: ...}, got a "
               "scalar");
  EXPECT_ERROR("schema:\n  - {name: s, type: symbol, size: 4}\n",
               "x.yaml:2:29: unknown key 'size' in schema field 1 (known: name, type, "
               "required, default)");
}

TEST(bad_field_names_are_refused) {
  EXPECT_ERROR("schema:\n  - {name: 1st, type: symbol}\n",
               "x.yaml:2:12: schema field 1: name: '1st' is not a valid field name (letters, "
               "digits and _, not starting with a digit)");
  EXPECT_ERROR_AT("schema:\n  - {name: 'a-b', type: symbol}\n", "2:12", "not a valid field name");
  EXPECT_ERROR_AT("schema:\n  - {name: '', type: symbol}\n", "2:12", "not a valid field name");
  EXPECT_ERROR_AT("schema:\n  - {name: abcdefghijabcdefghijabcdefghij12, type: symbol}\n", "2:12",
                  "is longer than 31 bytes");
  struct tks_config c;
  EXPECT_OK(&c, "schema:\n  - {name: _abcdefghijabcdefghijabcdefghij, type: symbol}\n"
                "  - {name: t, type: timestamp}\n");
  ASSERT_EQ(strlen(c.schema.fields[0].name), 31);
}

TEST(field_defaults_must_match_the_type) {
  EXPECT_ERROR("schema:\n  - {name: s, type: symbol, default: AAPL}\n",
               "x.yaml:2:38: schema field 1 's': a symbol field's default can only be \"\" "
               "(strings are interned as ticks arrive)");
  EXPECT_ERROR_AT("schema:\n  - {name: f, type: string, default: R}\n", "2:38",
                  "a string field's default can only be \"\"");
  EXPECT_ERROR_AT("schema:\n  - {name: n, type: i64, default: 1.5}\n", "2:35",
                  "default '1.5' is not a whole number");
  EXPECT_ERROR_AT("schema:\n  - {name: n, type: i64, default: 99999999999999999999}\n", "2:35",
                  "out of range for i64");
  EXPECT_ERROR_AT("schema:\n  - {name: n, type: u32, default: 4294967296}\n", "2:35",
                  "out of range (0..4294967295)");
  EXPECT_ERROR_AT("schema:\n  - {name: n, type: u32, default: -1}\n", "2:35", "not a whole number");
  EXPECT_ERROR_AT("schema:\n  - {name: n, type: f64, default: inf}\n", "2:35",
                  "not a finite number");
  EXPECT_ERROR_AT("schema:\n  - {name: n, type: bool, default: 1}\n", "2:36",
                  "default must be true or false, got '1'");
  EXPECT_ERROR_AT("schema:\n  - {name: n, type: f64, default: [1]}\n", "2:35",
                  "expected a scalar value, got a sequence");
  /* Keys in any order: the default is checked once the type is known. */
  EXPECT_ERROR_AT("schema:\n  - {default: x, name: n, type: u32}\n", "2:15", "not a whole number");
  EXPECT_ERROR_AT("schema:\n  - {name: n, type: i64, default: 5, required: true}\n", "2:35",
                  "a required field cannot have a default");
}

TEST(schema_without_symbol_field_is_refused_at_the_schema_node) {
  EXPECT_ERROR("schema:\n  - {name: ts, type: timestamp}\n  - {name: p, type: f64}\n",
               "x.yaml:2:3: schema: the schema has no field of type symbol to index ticks by");
  EXPECT_ERROR("schema: []\n", "x.yaml:1:9: schema: the schema declares no fields");
  EXPECT_ERROR_AT("schema:\n  - {name: a, type: timestamp}\n  - {name: s, type: symbol}\n"
                  "  - {name: b, type: timestamp}\n",
                  "2:3", "are both timestamps");
}

TEST(schema_of_33_fields_is_refused_at_the_33rd) {
  struct tks_buf b = {0};
  ASSERT_EQ(tks_buf_puts(&b, "schema:\n  - {name: t, type: timestamp}\n"
                             "  - {name: s, type: symbol}\n"),
            0);
  for (int i = 0; i < 31; i++) ASSERT_EQ(tks_buf_printf(&b, "  - {name: f%d, type: i64}\n", i), 0);
  ASSERT_EQ(tks_buf_append(&b, "", 1), 0);
  EXPECT_ERROR(b.data, "x.yaml:34:5: schema: more than 32 fields (the most is 32)");
  tks_buf_finish(&b);
}

TEST(schema_over_the_largest_record_is_refused_at_the_schema) {
  struct tks_buf b = {0};
  ASSERT_EQ(tks_buf_puts(&b, "schema:\n  - {name: t, type: timestamp}\n"
                             "  - {name: s, type: symbol}\n"),
            0);
  for (int i = 0; i < 30; i++) ASSERT_EQ(tks_buf_printf(&b, "  - {name: f%d, type: f64}\n", i), 0);
  ASSERT_EQ(tks_buf_append(&b, "", 1), 0);
  EXPECT_ERROR(b.data, "x.yaml:2:3: schema: the record would be 256 bytes, the most is 128");
  tks_buf_finish(&b);
}

TEST(schema_of_the_largest_record_is_accepted) {
  struct tks_buf b = {0};
  ASSERT_EQ(tks_buf_puts(&b, "schema:\n  - {name: t, type: timestamp}\n"
                             "  - {name: s, type: symbol}\n"),
            0);
  /* 8 + 14 * 8 + 4 = 124, rounded up to 128 */
  for (int i = 0; i < 14; i++) ASSERT_EQ(tks_buf_printf(&b, "  - {name: f%d, type: f64}\n", i), 0);
  ASSERT_EQ(tks_buf_append(&b, "", 1), 0);
  struct tks_config c;
  EXPECT_OK(&c, b.data);
  tks_buf_finish(&b);
  ASSERT_EQ(c.schema.nfields, 16);
  ASSERT_EQ(c.schema.record_size, TKS_RECORD_MAX);
  ASSERT_EQ(field(&c, "s")->offset, 120);
}

/* ---- files ----------------------------------------------------------- */

TEST(missing_file_is_reported_with_strerror) {
  struct tks_config c;
  memset(&c, 0xab, sizeof c);
  int r = tks_config_load(&c, "/nonexistent/tickslab.yaml", err, sizeof err);
  ASSERT_EQ(r, -ENOENT);
  ASSERT_STR_EQ(err, "/nonexistent/tickslab.yaml: No such file or directory");
  ASSERT(is_defaults(&c));
  memset(&c, 0xab, sizeof c);
  ASSERT_EQ(tks_config_load(&c, "/tmp", err, sizeof err), -EISDIR);
  ASSERT_STR_EQ(err, "/tmp: Is a directory");
  ASSERT(is_defaults(&c));
}

TEST(file_over_1mib_is_refused) {
  size_t len = 2u << 20;
  char *big = malloc(len);
  ASSERT(big);
  for (size_t i = 0; i < len; i++) big[i] = (i % 64 == 63) ? '\n' : (i % 64 == 0 ? '#' : 'x');
  char path[] = "/tmp/tks_config_XXXXXX";
  int fd = mkstemp(path);
  ASSERT(fd >= 0);
  close(fd);
  write_file(path, big, len);
  struct tks_config c;
  memset(&c, 0xab, sizeof c);
  int r = tks_config_load(&c, path, err, sizeof err);
  unlink(path);
  ASSERT_EQ(r, -EFBIG);
  ASSERT_CONTAINS(err, path);
  ASSERT_CONTAINS(err, "larger than 1048576 bytes");
  ASSERT(is_defaults(&c));
  /* The same from memory; one byte under the limit is read. */
  ASSERT_EQ(parse(&c, big, len), -EFBIG);
  ASSERT(is_defaults(&c));
  big[TKS_CONFIG_MAX_BYTES - 1] = '\n';
  ASSERT_EQ(parse(&c, big, TKS_CONFIG_MAX_BYTES), 0);
  free(big);
}

/* ---- hostile input --------------------------------------------------- */

TEST_TIMEOUT(deep_nesting_bomb_is_refused_quickly, 20) {
  size_t depth = 10000;
  char *s = malloc(2 * depth + 64);
  ASSERT(s);
  struct tks_config c;
  /* Unbalanced, balanced, at the top and under a key. */
  memset(s, '[', depth);
  ASSERT_EQ(parse(&c, s, depth), -EINVAL);
  ASSERT(is_defaults(&c));
  memset(s + depth, ']', depth);
  ASSERT_EQ(parse(&c, s, 2 * depth), -EINVAL);
  ASSERT_CONTAINS(err, "x.yaml:1:1: expected a mapping at the top level");
  ASSERT(is_defaults(&c));
  int n = sprintf(s, "ingest: {listen: ");
  memset(s + n, '[', depth);
  ASSERT_EQ(parse(&c, s, (size_t)n + depth), -EINVAL);
  ASSERT(is_defaults(&c));
  n = 0;
  for (size_t i = 0; i < depth / 4; i++) n += sprintf(s + n, "{a:");
  ASSERT_EQ(parse(&c, s, (size_t)n), -EINVAL);
  ASSERT(is_defaults(&c));
  free(s);
}

TEST_TIMEOUT(alias_bomb_is_refused_quickly, 20) {
  /* Billion laughs, under a key the config knows. */
  const char *bomb = "schema:\n"
                     "  - &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
                     "  - &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                     "  - &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                     "  - &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                     "  - &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                     "  - &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                     "  - &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
                     "  - &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
                     "  - &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]\n";
  EXPECT_ERROR(bomb, "x.yaml:2:5: anchors (&a) and aliases are not allowed in the config");
  /* The classic form, at the top level. */
  const char *classic = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
                        "b: &b [*a,*a,*a,*a,*a]\n"
                        "c: &c [*b,*b,*b,*b,*b]\n";
  struct tks_config c;
  ASSERT_EQ(parse(&c, classic, strlen(classic)), -EINVAL);
  ASSERT(is_defaults(&c));
}

/* Checks that text is either accepted or refused with a located message. */
static void parse_any(const char *text, size_t len) {
  struct tks_config c;
  int r = parse(&c, text, len);
  if (r == 0) return;
  if (r != -EINVAL) TEST_FAIL("parse returned %d: %s", r, err);
  if (strncmp(err, "x.yaml:", 7) != 0) TEST_FAIL("error without a position: %s", err);
  if (!is_defaults(&c)) TEST_FAIL("refused config is not the defaults: %s", err);
}

static char *read_default_file(size_t *len) {
  const char *root = getenv("TKS_SOURCE_ROOT");
  if (!root) TEST_FAIL("TKS_SOURCE_ROOT is not set");
  char path[4096];
  snprintf(path, sizeof path, "%s/config/tickslab.yaml", root);
  FILE *f = fopen(path, "rb");
  if (!f) TEST_FAIL("%s: %s", path, strerror(errno));
  char *buf = malloc(1 << 16);
  ASSERT(buf);
  *len = fread(buf, 1, 1 << 16, f);
  fclose(f);
  ASSERT(*len > 0 && *len < (1 << 16));
  return buf;
}

TEST_TIMEOUT(truncated_default_file_never_crashes, 120) {
  size_t len;
  char *text = read_default_file(&len);
  for (size_t n = 0; n <= len; n++) parse_any(text, n);
  free(text);
}

TEST_TIMEOUT(random_bytes_never_crash, 120) {
  static const char yamlish[] = "{}[]:,-&*!|>'\"#?%@`\n\n  \t abc_129.~";
  char buf[1024];
  for (int i = 0; i < 600; i++) {
    size_t len = rng() % sizeof buf;
    for (size_t j = 0; j < len; j++) {
      uint64_t v = rng();
      buf[j] = (i % 2) ? (char)v : yamlish[v % (sizeof yamlish - 1)];
    }
    parse_any(buf, len);
  }
}

TEST_TIMEOUT(mutated_default_file_never_crashes, 120) {
  size_t len;
  char *text = read_default_file(&len);
  char *copy = malloc(len);
  ASSERT(copy);
  for (int i = 0; i < 400; i++) {
    memcpy(copy, text, len);
    int edits = 1 + (int)(rng() % 8);
    for (int k = 0; k < edits; k++) copy[rng() % len] = (char)rng();
    parse_any(copy, len);
  }
  free(copy);
  free(text);
}

TEST(control_socket_mode_and_group_are_checked) {
  EXPECT_ERROR("control:\n  socket_mode: \"0x66\"\n",
               "x.yaml:2:16: control.socket_mode: '0x66' is not an octal mode (three or four "
               "digits 0-7, as in \"0660\")");
  EXPECT_ERROR("control:\n  socket_mode: 660\n  socket_mode: 1777\n",
               "x.yaml:3:3: duplicate key 'socket_mode' in 'control' (first at line 2)");
  EXPECT_ERROR("control: {socket_mode: \"1777\"}\n",
               "x.yaml:1:24: control.socket_mode: '1777': only permission bits (0777) may be set");
  EXPECT_ERROR("control: {socket_mode: \"0066\"}\n",
               "x.yaml:1:24: control.socket_mode: '0066' takes read and write from the owner (the "
               "daemon itself)");
  EXPECT_ERROR("control: {socket_group: no-such-group-here}\n",
               "x.yaml:1:25: control.socket_group: unknown group 'no-such-group-here'");
  struct tks_config c;
  const char *y = "control: {socket_mode: 660}\n";
  ASSERT_EQ(parse(&c, y, strlen(y)), 0);
  ASSERT_STR_EQ(c.control.socket_mode, "660");
  y = "metrics: {listen: off}\n";
  ASSERT_EQ(parse(&c, y, strlen(y)), 0);
  ASSERT_EQ(c.metrics.port, 0);
  ASSERT_STR_EQ(c.metrics.host, "");
  y = "metrics: {listen: localhost}\n";
  ASSERT_EQ(parse(&c, y, strlen(y)), -EINVAL);
}

TEST_MAIN()
