/* kafka.sink: see daemon.h.  (Being written.) */
#include <errno.h>

#include "daemon.h"

static int refuse(const char *key) {
  tks_log(TKS_LOG_ERROR,
          "%s is set, but the Kafka sink is not written yet"
          "",
          key);
  return -ENOTSUP;
}

int tks_kafka_sink_start(struct tks_server *srv) {
  return srv->cfg.kafka.sink.brokers[0] ? refuse("kafka.sink.brokers") : 0;
}
void tks_kafka_sink_stop(struct tks_server *srv) { (void)srv; }
void tks_kafka_sink_stats(struct tks_server *srv, struct tks_stats *st) {
  (void)srv;
  (void)st;
}
