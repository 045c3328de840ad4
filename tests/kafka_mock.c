/*
 * kafka_mock: a Kafka cluster for the tests, librdkafka's mock cluster
 * (rdkafka_mock.h), which speaks the Kafka protocol on loopback sockets.
 *
 *   kafka_mock [--brokers N] [TOPIC:PARTITIONS ...]
 *
 * Starts N brokers (default 3) on 127.0.0.1, creates each topic with its
 * partitions (replication factor min(N, 3)), prints one line
 * "bootstraps HOST:PORT,HOST:PORT,..." on stdout and then reads commands,
 * one a line, from stdin, answering each with "ok" or "error WHY":
 *
 *   down ID        the broker with that id (1..N) stops answering
 *   up ID          it answers again
 *   topic NAME P   creates a topic of P partitions
 *   quit           (or end of input) stops the cluster and exits 0
 *
 * Nothing else: the tests produce and consume with kcat and tickslabd.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

static int create_topic(rd_kafka_mock_cluster_t *mc, const char *spec, int brokers) {
  char name[256];
  const char *colon = strrchr(spec, ':');
  size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
  int parts = colon ? atoi(colon + 1) : 1;
  if (len == 0 || len >= sizeof name || parts < 1 || parts > 1000) {
    fprintf(stderr, "kafka_mock: bad topic '%s' (expected NAME:PARTITIONS)\n", spec);
    return -1;
  }
  memcpy(name, spec, len);
  name[len] = '\0';
  rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mc, name, parts, brokers < 3 ? brokers : 3);
  if (err) {
    fprintf(stderr, "kafka_mock: topic %s: %s\n", name, rd_kafka_err2str(err));
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  int brokers = 3, first = 1;
  if (argc > 2 && strcmp(argv[1], "--brokers") == 0) {
    brokers = atoi(argv[2]);
    first = 3;
  }
  if (brokers < 1 || brokers > 16) {
    fprintf(stderr, "kafka_mock: --brokers takes 1..16\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  /* The handle only hosts the cluster: no bootstraps of its own. */
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk) {
    fprintf(stderr, "kafka_mock: %s\n", err);
    return 1;
  }
  rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
  if (!mc) {
    fprintf(stderr, "kafka_mock: the mock cluster did not start\n");
    return 1;
  }
  for (int i = first; i < argc; i++)
    if (create_topic(mc, argv[i], brokers)) return 1;
  printf("bootstraps %s\n", rd_kafka_mock_cluster_bootstraps(mc));
  fflush(stdout);

  char line[512];
  while (fgets(line, sizeof line, stdin)) {
    char cmd[32], arg[256];
    int n = 0, got = sscanf(line, "%31s %255s %d", cmd, arg, &n);
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (got >= 1 && strcmp(cmd, "quit") == 0) break;
    if (got == 2 && strcmp(cmd, "down") == 0) {
      e = rd_kafka_mock_broker_set_down(mc, atoi(arg));
    } else if (got == 2 && strcmp(cmd, "up") == 0) {
      e = rd_kafka_mock_broker_set_up(mc, atoi(arg));
    } else if (got == 3 && strcmp(cmd, "topic") == 0) {
      e = rd_kafka_mock_topic_create(mc, arg, n, brokers < 3 ? brokers : 3);
    } else if (got >= 1) {
      printf("error unknown command '%s' (down ID, up ID, topic NAME P, quit)\n", cmd);
      fflush(stdout);
      continue;
    } else {
      continue;
    }
    if (e)
      printf("error %s\n", rd_kafka_err2str(e));
    else
      printf("ok\n");
    fflush(stdout);
  }
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(rk);
  return 0;
}
