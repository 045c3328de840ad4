/*
 * kafka_feed: N ticks of S symbols produced to a Kafka topic, each message
 * one msgpack map {"ts", "ticker", "price", "volume"} keyed by its symbol
 * (murmur2, as kafka.source.partitioner's default), for bench/kafka.sh.
 *
 *   kafka_feed BOOTSTRAPS TOPIC COUNT [SYMBOLS]
 *
 * Prints "produced N in S s" once every message is acknowledged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* msgpack: fixmap 4, "ts" i64, "ticker" str, "price" f64, "volume" i64. */
static size_t tick(unsigned char *b, const char *sym, size_t sl, long long ts, double price,
                   long long vol) {
  size_t n = 0;
  b[n++] = 0x84;
  b[n++] = 0xa2, memcpy(b + n, "ts", 2), n += 2;
  b[n++] = 0xd3;
  for (int i = 7; i >= 0; i--) b[n++] = (unsigned char)((unsigned long long)ts >> (i * 8));
  b[n++] = 0xa6, memcpy(b + n, "ticker", 6), n += 6;
  b[n++] = (unsigned char)(0xa0 | sl), memcpy(b + n, sym, sl), n += sl;
  b[n++] = 0xa5, memcpy(b + n, "price", 5), n += 5;
  unsigned long long u;
  memcpy(&u, &price, 8);
  b[n++] = 0xcb;
  for (int i = 7; i >= 0; i--) b[n++] = (unsigned char)(u >> (i * 8));
  b[n++] = 0xa6, memcpy(b + n, "volume", 6), n += 6;
  b[n++] = 0xd3;
  for (int i = 7; i >= 0; i--) b[n++] = (unsigned char)((unsigned long long)vol >> (i * 8));
  return n;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: kafka_feed BOOTSTRAPS TOPIC COUNT [SYMBOLS]\n");
    return 2;
  }
  long long count = atoll(argv[3]);
  int nsym = argc > 4 ? atoi(argv[4]) : 100;
  if (count <= 0 || nsym <= 0 || nsym > 100000) {
    fprintf(stderr, "kafka_feed: COUNT > 0, SYMBOLS 1..100000\n");
    return 2;
  }
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], err, sizeof err) ||
      rd_kafka_conf_set(conf, "partitioner", "murmur2_random", err, sizeof err) ||
      rd_kafka_conf_set(conf, "linger.ms", "20", err, sizeof err) ||
      rd_kafka_conf_set(conf, "batch.num.messages", "10000", err, sizeof err) ||
      rd_kafka_conf_set(conf, "queue.buffering.max.messages", "1000000", err, sizeof err)) {
    fprintf(stderr, "kafka_feed: %s\n", err);
    return 1;
  }
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk) {
    fprintf(stderr, "kafka_feed: %s\n", err);
    return 1;
  }
  double t0 = now_s();
  long long ts0 = (long long)time(NULL) * 1000000000LL;
  unsigned char buf[128];
  char sym[16];
  for (long long i = 0; i < count; i++) {
    int s = (int)(i % nsym);
    size_t sl = (size_t)snprintf(sym, sizeof sym, "SYM%05d", s);
    size_t n = tick(buf, sym, sl, ts0 + i, 100.0 + (double)(i % 1000) / 100, i / nsym);
    for (;;) {
      rd_kafka_resp_err_t e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(argv[2]), RD_KAFKA_V_KEY(sym, sl),
                                                RD_KAFKA_V_VALUE(buf, n),
                                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
      if (!e) break;
      if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        fprintf(stderr, "kafka_feed: %s\n", rd_kafka_err2str(e));
        return 1;
      }
      rd_kafka_poll(rk, 5);
    }
    if ((i & 1023) == 0) rd_kafka_poll(rk, 0);
  }
  if (rd_kafka_flush(rk, 120000)) {
    fprintf(stderr, "kafka_feed: %d messages not delivered\n", rd_kafka_outq_len(rk));
    return 1;
  }
  printf("produced %lld in %.2f s\n", count, now_s() - t0);
  rd_kafka_destroy(rk);
  return 0;
}
