/* kafka.source: see daemon.h.  (Being written.) */
#include <errno.h>

#include "daemon.h"

static int refuse(const char *key) {
  tks_log(TKS_LOG_ERROR,
          "%s is set, but the Kafka source is not written yet"
          "",
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
int32_t tks_kafka_source_partition(struct tks_server *srv, const char *name, size_t len) {
  (void)srv, (void)name, (void)len;
  return -1;
}
