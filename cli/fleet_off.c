/*
 * The fleet's commands in a build without librdkafka (meson -Dkafka
 * disabled or not found): `tickslab nodes` and --brokers are refused with
 * one line and exit status 2, as an option this build does not have.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int no_kafka(void) {
  cli_err("this tickslab was built without Kafka (librdkafka): --brokers and nodes are not "
          "available");
  return CLI_USAGE;
}

int cli_cmd_nodes(struct cli *c, int argc, char **argv) {
  (void)c;
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      printf("Usage: tickslab nodes --brokers HOST:PORT[,...] [--nodes-topic T] [--json]\n"
             "\n"
             "Lists the nodes of a fleet on Kafka.  This tickslab was built without\n"
             "Kafka (librdkafka): install librdkafka-dev and build with meson\n"
             "-Dkafka=enabled to have it.\n");
      return 0;
    }
  return no_kafka();
}

int cli_fleet_control(struct cli *c, const struct cli_fleet_opts *f, const char *symbol,
                      struct cli_fleet_owner *owner) {
  (void)c, (void)f, (void)symbol, (void)owner;
  return no_kafka();
}
