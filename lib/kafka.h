/*
 * Kafka's part of the library, built where librdkafka is found (meson
 * -Dkafka): client configs from the config's keys, the partition a symbol
 * goes to, and the records of the fleet's directory (kafka.source.nodes_topic).
 * The daemon's source and sink (daemon/kafka_*.c) and the CLI's --brokers use it.
 */
#ifndef TKS_KAFKA_H
#define TKS_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "config.h"

/* A librdkafka config: bootstrap.servers = brokers, then the PROPS buffer
 * `props` (kafka.*.properties; may be NULL), each set in order, so that
 * the properties may override what the caller set before.  NULL with err
 * set ("kafka.source.properties: No such configuration property:
 * \"x\"") when librdkafka refuses one; `key` names the properties key. */
rd_kafka_conf_t *tks_kafka_conf(const char *brokers, const char *props, const char *key, char *err,
                                size_t errlen);
/* Sets each property of the PROPS buffer props on conf, in order.  0, or
 * -EINVAL with err set as above. */
int tks_kafka_apply(rd_kafka_conf_t *conf, const char *props, const char *key, char *err,
                    size_t errlen);
/* What --check-config can tell of the kafka keys without a broker: the
 * properties librdkafka refuses (either map), the sink without the
 * journal, a sink on the source's brokers and topic.  0, or -EINVAL with
 * err set ("kafka.sink.properties: No such configuration property: ..."). */
int tks_kafka_check(const struct tks_config *cfg, char *err, size_t errlen);
/* Sets name = value on conf, err as above.  0 or -EINVAL. */
int tks_kafka_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err,
                  size_t errlen);

/* The partition of a key (a symbol) among `partitions`, as the producers'
 * partitioner chose it (murmur2 as the Java client and librdkafka's
 * murmur2_random; crc32 as librdkafka's consistent_random).  partitions > 0. */
int32_t tks_kafka_partition(enum tks_partitioner p, const char *key, size_t len,
                            int32_t partitions);

/*
 * The fleet's directory: each node with a source publishes one record to
 * kafka.source.nodes_topic (compacted), keyed by its node name, when its
 * assignment changes and every TKS_KAFKA_NODE_HEARTBEAT_MS, and an empty
 * value (a tombstone) when it stops cleanly.  The value is a msgpack map:
 *
 *   {"node": "node-a", "group": "tickslab", "topic": "ticks",
 *    "partitions": [0, 2, 4], "partition_count": 6, "partitioner": "murmur2",
 *    "control": "/run/tickslab/control.sock", "subscribe": "127.0.0.1:7071",
 *    "ingest": "127.0.0.1:7070", "host": "md-1", "pid": 4242,
 *    "ts": <ns since the epoch, when it was published>}
 *
 * Unknown keys are skipped (newer nodes may add some); "node", "topic",
 * "partitions", "partition_count" and "ts" are required; "partitioner"
 * is "murmur2" when absent.  The record's key is its node's name.
 */
#define TKS_KAFKA_NODE_HEARTBEAT_MS 10000
#define TKS_KAFKA_NODE_STALE_MS 60000 /* a record older than this is a node gone */
#define TKS_KAFKA_NODE_MAX_PARTITIONS 4096
#define TKS_KAFKA_NODE_MAX_BYTES (64u << 10) /* a longer value is refused */

struct tks_kafka_node {
  char node[64];
  char group[256];
  char topic[250];
  char partitioner[16]; /* "murmur2", "crc32" */
  char control[108];
  char subscribe[320];
  char ingest[320];
  char host[256];
  int64_t pid;
  int64_t ts;
  int32_t partition_count;
  uint32_t npartitions;
  int32_t partitions[TKS_KAFKA_NODE_MAX_PARTITIONS];
};

/* The record's value, appended to out (lib/util.h's tks_buf): every key
 * above, strings as they are (empty ones too), "partitioner" "murmur2"
 * when n's is empty.  0, or -ENOMEM (-EINVAL: npartitions over
 * TKS_KAFKA_NODE_MAX_PARTITIONS) with out as it was. */
struct tks_buf;
int tks_kafka_node_encode(const struct tks_kafka_node *n, struct tks_buf *out);
/* Parses a value (len <= TKS_KAFKA_NODE_MAX_BYTES) into *n, its partitions
 * sorted.  0, or -EINVAL with why set ("partitions: expected an array of
 * ints") and *n zeroed: not one whole msgpack map (truncated, bytes after
 * it, nested deeper than TKS_DECODE_MAX_DEPTH), a key not a string, a
 * known key twice, a required key missing, a value of the wrong type, a
 * string too long for its field, not UTF-8 or with a control character,
 * node or topic empty, a partitioner other than murmur2 and crc32, a
 * partition out of 0..partition_count-1 or given twice, more than
 * TKS_KAFKA_NODE_MAX_PARTITIONS of them. */
int tks_kafka_node_parse(const void *data, size_t len, struct tks_kafka_node *n, char *why,
                         size_t whylen);
/* True when partition p is in n's list. */
bool tks_kafka_node_owns(const struct tks_kafka_node *n, int32_t p);

#endif
