/*
 * Kafka's part of the library (kafka.h): librdkafka client configs from the
 * config's keys, the producers' partitioners, and the fleet directory's
 * records, written with msgpack-c's packer and read back as the other
 * readers of outside msgpack do: bounded by tks_msgpack_skip first, every
 * key checked by type, length, UTF-8 and range.
 */
#include "kafka.h"

#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "mpreq.h"
#include "utf8.h"
#include "util.h"

int tks_kafka_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err,
                  size_t errlen) {
  char why[512];
  if (rd_kafka_conf_set(conf, name, value, why, sizeof why) == RD_KAFKA_CONF_OK) return 0;
  snprintf(err, errlen, "%s", why);
  return -EINVAL;
}

rd_kafka_conf_t *tks_kafka_conf(const char *brokers, const char *props, const char *key, char *err,
                                size_t errlen) {
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  char why[512];
  if (!conf) {
    snprintf(err, errlen, "out of memory for a Kafka client config");
    return NULL;
  }
  if (tks_kafka_set(conf, "bootstrap.servers", brokers, why, sizeof why)) {
    snprintf(err, errlen, "brokers '%s': %s", brokers, why);
    rd_kafka_conf_destroy(conf);
    return NULL;
  }
  if (tks_kafka_apply(conf, props, key, err, errlen)) {
    rd_kafka_conf_destroy(conf);
    return NULL;
  }
  return conf;
}

int tks_kafka_check(const struct tks_config *cfg, char *err, size_t errlen) {
  const char *brokers[2] = {cfg->kafka.source.brokers, cfg->kafka.sink.brokers};
  const char *props[2] = {cfg->kafka.source.properties, cfg->kafka.sink.properties};
  const char *keys[2] = {"kafka.source.properties", "kafka.sink.properties"};
  for (int i = 0; i < 2; i++) {
    if (!brokers[i][0]) continue;
    rd_kafka_conf_t *conf = tks_kafka_conf(brokers[i], props[i], keys[i], err, errlen);
    if (!conf) return -EINVAL;
    rd_kafka_conf_destroy(conf);
  }
  if (cfg->kafka.sink.brokers[0] && !cfg->journal.enabled) {
    snprintf(err, errlen, "kafka.sink needs the journal (journal.enabled: true)");
    return -EINVAL;
  }
  if (cfg->kafka.sink.brokers[0] && cfg->kafka.source.brokers[0] &&
      strcmp(cfg->kafka.source.brokers, cfg->kafka.sink.brokers) == 0 &&
      strcmp(cfg->kafka.source.topic, cfg->kafka.sink.topic) == 0) {
    snprintf(err, errlen, "kafka.sink and kafka.source are the same topic %s on the same brokers",
             cfg->kafka.sink.topic);
    return -EINVAL;
  }
  return 0;
}

int tks_kafka_apply(rd_kafka_conf_t *conf, const char *props, const char *key, char *err,
                    size_t errlen) {
  char why[512];
  size_t pos = 0;
  const char *name, *value;
  while (props && tks_config_props_next(props, &pos, &name, &value)) {
    if (tks_kafka_set(conf, name, value, why, sizeof why)) {
      snprintf(err, errlen, "%s: %s", key, why);
      return -EINVAL;
    }
  }
  return 0;
}

int32_t tks_kafka_partition(enum tks_partitioner p, const char *key, size_t len,
                            int32_t partitions) {
  /* The non-random partitioners use neither the topic nor the opaques. */
  if (p == TKS_PARTITIONER_CRC32)
    return rd_kafka_msg_partitioner_consistent(NULL, key, len, partitions, NULL, NULL);
  return rd_kafka_msg_partitioner_murmur2(NULL, key, len, partitions, NULL, NULL);
}

/* ---- the fleet's directory records ---- */

static int buf_write(void *data, const char *p, size_t n) {
  return tks_buf_append(data, p, n) ? -1 : 0;
}

static int pack_str(msgpack_packer *pk, const char *s) {
  size_t n = strlen(s);
  return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n) ? -1 : 0;
}

static int pack_key_str(msgpack_packer *pk, const char *key, const char *s) {
  return pack_str(pk, key) || pack_str(pk, s) ? -1 : 0;
}

int tks_kafka_node_encode(const struct tks_kafka_node *n, struct tks_buf *out) {
  size_t mark = out->len;
  msgpack_packer pk;
  msgpack_packer_init(&pk, out, buf_write);
  uint32_t np = n->npartitions;
  if (np > TKS_KAFKA_NODE_MAX_PARTITIONS) return -EINVAL;
  int r = msgpack_pack_map(&pk, 12);
  r = r || pack_key_str(&pk, "node", n->node);
  r = r || pack_key_str(&pk, "group", n->group);
  r = r || pack_key_str(&pk, "topic", n->topic);
  r = r || pack_str(&pk, "partitions") || msgpack_pack_array(&pk, np);
  for (uint32_t i = 0; i < np && !r; i++) r = msgpack_pack_int32(&pk, n->partitions[i]);
  r = r || pack_str(&pk, "partition_count") || msgpack_pack_int32(&pk, n->partition_count);
  r = r || pack_key_str(&pk, "partitioner", n->partitioner[0] ? n->partitioner : "murmur2");
  r = r || pack_key_str(&pk, "control", n->control);
  r = r || pack_key_str(&pk, "subscribe", n->subscribe);
  r = r || pack_key_str(&pk, "ingest", n->ingest);
  r = r || pack_key_str(&pk, "host", n->host);
  r = r || pack_str(&pk, "pid") || msgpack_pack_int64(&pk, n->pid);
  r = r || pack_str(&pk, "ts") || msgpack_pack_int64(&pk, n->ts);
  if (r) {
    out->len = mark;
    return -ENOMEM;
  }
  return 0;
}

bool tks_kafka_node_owns(const struct tks_kafka_node *n, int32_t p) {
  for (uint32_t i = 0; i < n->npartitions && i < TKS_KAFKA_NODE_MAX_PARTITIONS; i++)
    if (n->partitions[i] == p) return true;
  return false;
}

/* The string keys of a record: where each goes and how long it may be. */
enum { F_NODE, F_GROUP, F_TOPIC, F_PARTITIONER, F_CONTROL, F_SUBSCRIBE, F_INGEST, F_HOST, NSTR };
static const char *const str_keys[NSTR] = {"node",    "group",     "topic",  "partitioner",
                                           "control", "subscribe", "ingest", "host"};

static char *str_field(struct tks_kafka_node *n, int f, size_t *cap) {
  switch (f) {
  case F_NODE: *cap = sizeof n->node; return n->node;
  case F_GROUP: *cap = sizeof n->group; return n->group;
  case F_TOPIC: *cap = sizeof n->topic; return n->topic;
  case F_PARTITIONER: *cap = sizeof n->partitioner; return n->partitioner;
  case F_CONTROL: *cap = sizeof n->control; return n->control;
  case F_SUBSCRIBE: *cap = sizeof n->subscribe; return n->subscribe;
  case F_INGEST: *cap = sizeof n->ingest; return n->ingest;
  default: *cap = sizeof n->host; return n->host;
  }
}

/* An int of the int64 range from o: 0, or -1 when o is not one. */
static int get_int(const msgpack_object *o, int64_t *v) {
  if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
    *v = (int64_t)o->via.u64;
    return 0;
  }
  if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
    *v = o->via.i64;
    return 0;
  }
  return -1;
}

static int cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

/* The keys of one record, read into n: 0 or -EINVAL with why. */
static int read_map(const msgpack_object *o, struct tks_kafka_node *n, char *why, size_t wl) {
  enum { K_PARTITIONS = NSTR, K_COUNT, K_PID, K_TS, NKEYS };
  bool seen[NKEYS] = {false};
  const msgpack_object *parts = NULL;
  char b[40];
  if (o->type != MSGPACK_OBJECT_MAP)
    return (int)tks_mpreq_fail(why, wl, -EINVAL, "not a msgpack map");
  for (uint32_t i = 0; i < o->via.map.size; i++) {
    const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
    if (k->type != MSGPACK_OBJECT_STR)
      return (int)tks_mpreq_fail(why, wl, -EINVAL, "a key that is not a string");
    int key = -1;
    for (int f = 0; f < NSTR && key < 0; f++)
      if (tks_mpreq_key_is(k, str_keys[f])) key = f;
    if (key < 0) {
      if (tks_mpreq_key_is(k, "partitions"))
        key = K_PARTITIONS;
      else if (tks_mpreq_key_is(k, "partition_count"))
        key = K_COUNT;
      else if (tks_mpreq_key_is(k, "pid"))
        key = K_PID;
      else if (tks_mpreq_key_is(k, "ts"))
        key = K_TS;
      else
        continue; /* a newer node's key */
    }
    if (seen[key])
      return (int)tks_mpreq_fail(why, wl, -EINVAL, "%s given twice",
                                 tks_mpreq_shown(k, b, sizeof b));
    seen[key] = true;
    if (key < NSTR) {
      size_t cap;
      char *dst = str_field(n, key, &cap);
      if (v->type != MSGPACK_OBJECT_STR)
        return (int)tks_mpreq_fail(why, wl, -EINVAL, "%s: expected a string", str_keys[key]);
      if (v->via.str.size >= cap)
        return (int)tks_mpreq_fail(why, wl, -EINVAL, "%s: over %zu bytes", str_keys[key], cap - 1);
      if (tks_utf8_scan(v->via.str.ptr, v->via.str.size) & (TKS_UTF8_INVALID | TKS_UTF8_CONTROL))
        return (int)tks_mpreq_fail(
            why, wl, -EINVAL, "%s: not valid UTF-8 or holds a control character", str_keys[key]);
      memcpy(dst, v->via.str.ptr, v->via.str.size);
      dst[v->via.str.size] = '\0';
      continue;
    }
    int64_t x = 0;
    switch (key) {
    case K_PARTITIONS:
      if (v->type != MSGPACK_OBJECT_ARRAY)
        return (int)tks_mpreq_fail(why, wl, -EINVAL, "partitions: expected an array of ints");
      parts = v;
      break;
    case K_COUNT:
      if (get_int(v, &x) || x < 1 || x > INT32_MAX)
        return (int)tks_mpreq_fail(why, wl, -EINVAL, "partition_count: expected an int of 1..%d",
                                   INT32_MAX);
      n->partition_count = (int32_t)x;
      break;
    case K_PID:
      if (get_int(v, &x) || x < 0)
        return (int)tks_mpreq_fail(why, wl, -EINVAL, "pid: expected an int >= 0");
      n->pid = x;
      break;
    case K_TS:
      if (get_int(v, &x)) return (int)tks_mpreq_fail(why, wl, -EINVAL, "ts: expected an int (ns)");
      n->ts = x;
      break;
    }
  }
  static const int required[] = {F_NODE, F_TOPIC, K_PARTITIONS, K_COUNT, K_TS};
  static const char *const required_names[] = {"node", "topic", "partitions", "partition_count",
                                               "ts"};
  for (unsigned i = 0; i < sizeof required / sizeof required[0]; i++)
    if (!seen[required[i]])
      return (int)tks_mpreq_fail(why, wl, -EINVAL, "%s missing", required_names[i]);
  if (!n->node[0]) return (int)tks_mpreq_fail(why, wl, -EINVAL, "node: empty");
  if (!n->topic[0]) return (int)tks_mpreq_fail(why, wl, -EINVAL, "topic: empty");
  if (!n->partitioner[0]) snprintf(n->partitioner, sizeof n->partitioner, "murmur2");
  bool known = false;
  for (int p = 0; p < TKS_PARTITIONER_COUNT; p++)
    known |= strcmp(n->partitioner, tks_partitioner_names[p]) == 0;
  if (!known)
    return (int)tks_mpreq_fail(why, wl, -EINVAL, "partitioner: '%s' is not murmur2 or crc32",
                               n->partitioner);
  if (parts->via.array.size > TKS_KAFKA_NODE_MAX_PARTITIONS)
    return (int)tks_mpreq_fail(why, wl, -EINVAL, "partitions: over %d",
                               TKS_KAFKA_NODE_MAX_PARTITIONS);
  for (uint32_t i = 0; i < parts->via.array.size; i++) {
    int64_t p;
    if (get_int(&parts->via.array.ptr[i], &p))
      return (int)tks_mpreq_fail(why, wl, -EINVAL, "partitions: expected an array of ints");
    if (p < 0 || p >= n->partition_count)
      return (int)tks_mpreq_fail(why, wl, -EINVAL,
                                 "partitions: %lld is not in 0..%d (partition_count %d)",
                                 (long long)p, n->partition_count - 1, n->partition_count);
    n->partitions[i] = (int32_t)p;
  }
  n->npartitions = parts->via.array.size;
  qsort(n->partitions, n->npartitions, sizeof n->partitions[0], cmp_i32);
  for (uint32_t i = 1; i < n->npartitions; i++)
    if (n->partitions[i] == n->partitions[i - 1])
      return (int)tks_mpreq_fail(why, wl, -EINVAL, "partitions: %d given twice",
                                 (int)n->partitions[i]);
  return 0;
}

int tks_kafka_node_parse(const void *data, size_t len, struct tks_kafka_node *n, char *why,
                         size_t whylen) {
  memset(n, 0, sizeof *n);
  if (len > TKS_KAFKA_NODE_MAX_BYTES)
    return (int)tks_mpreq_fail(why, whylen, -EINVAL, "a record of %zu bytes (over %u)", len,
                               TKS_KAFKA_NODE_MAX_BYTES);
  if (len == 0) return (int)tks_mpreq_fail(why, whylen, -EINVAL, "an empty record");
  /* The structure first: msgpack-c then reads only bytes that are there,
   * nested no deeper than the decoder's bound. */
  long size = tks_msgpack_skip(data, len, TKS_KAFKA_NODE_MAX_BYTES);
  if (size == 0) return (int)tks_mpreq_fail(why, whylen, -EINVAL, "truncated msgpack");
  if (size < 0)
    return (int)tks_mpreq_fail(why, whylen, -EINVAL, "not msgpack (%s)",
                               tks_reason_name((enum tks_reason)(-size - 1)));
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  int r;
  if (msgpack_unpack_next(&u, data, (size_t)size, &off) != MSGPACK_UNPACK_SUCCESS)
    r = (int)tks_mpreq_fail(why, whylen, -EINVAL, "not msgpack");
  else if (u.data.type != MSGPACK_OBJECT_MAP)
    r = (int)tks_mpreq_fail(why, whylen, -EINVAL, "not a msgpack map");
  else if ((size_t)size != len)
    r = (int)tks_mpreq_fail(why, whylen, -EINVAL, "%zu bytes after the map", len - (size_t)size);
  else
    r = read_map(&u.data, n, why, whylen);
  msgpack_unpacked_destroy(&u);
  if (r) memset(n, 0, sizeof *n);
  return r;
}
