/* Kafka's part of the library: see kafka.h. */
#include "kafka.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

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
