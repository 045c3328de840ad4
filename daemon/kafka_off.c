/*
 * The Kafka source and sink in a tickslabd built without librdkafka
 * (meson -Dkafka=disabled, or librdkafka-dev not installed): a config
 * that asks for either is refused at start with the reason, and the rest
 * is as if both were off.
 */
#include <errno.h>

#include "daemon.h"

static int refuse(const char *key) {
  tks_log(TKS_LOG_ERROR,
          "%s is set, but this tickslabd was built without Kafka (install librdkafka-dev and "
          "build with meson -Dkafka=enabled)",
          key);
  return -ENOTSUP;
}

int tks_kafka_source_start(struct tks_server *srv) {
  return srv->cfg.kafka.source.brokers[0] ? refuse("kafka.source.brokers") : 0;
}
void tks_kafka_source_stop(struct tks_server *srv) { (void)srv; }
void tks_kafka_source_stats(struct tks_server *srv, struct tks_stats *st) {
  (void)srv;
  (void)st;
}
int tks_kafka_source_check(struct tks_server *srv, const char *name, size_t len, char *why,
                           size_t n) {
  (void)srv, (void)name, (void)len, (void)why, (void)n;
  return 0;
}
int32_t tks_kafka_source_partition(struct tks_server *srv, const char *name, size_t len,
                                   bool *owned) {
  (void)srv, (void)name, (void)len;
  *owned = true;
  return -1;
}

int tks_kafka_sink_start(struct tks_server *srv) {
  return srv->cfg.kafka.sink.brokers[0] ? refuse("kafka.sink.brokers") : 0;
}
void tks_kafka_sink_stop(struct tks_server *srv) { (void)srv; }
void tks_kafka_sink_stats(struct tks_server *srv, struct tks_stats *st) {
  (void)srv;
  (void)st;
}
