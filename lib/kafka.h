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
/* Sets name = value on conf, err as above.  0 or -EINVAL. */
int tks_kafka_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err,
                  size_t errlen);

/* The partition of a key (a symbol) among `partitions`, as the producers'
 * partitioner chose it (murmur2 as the Java client and librdkafka's
 * murmur2_random; crc32 as librdkafka's consistent_random).  partitions > 0. */
int32_t tks_kafka_partition(enum tks_partitioner p, const char *key, size_t len,
                            int32_t partitions);

#endif
