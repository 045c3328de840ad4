/*
 * The fleet's commands in a build without librdkafka (meson -Dkafka
 * disabled or not found): `tickslab nodes` and --brokers are refused with
 * one line and exit status 2, as an option this build does not have.
 */
#include "cli.h"

static int no_kafka(void) {
  cli_err("this tickslab was built without Kafka (librdkafka): --brokers and nodes are not "
          "available");
  return CLI_USAGE;
}

int cli_cmd_nodes(struct cli *c, int argc, char **argv) {
  (void)c, (void)argc, (void)argv;
  return no_kafka();
}

int cli_fleet_control(struct cli *c, const struct cli_fleet_opts *f, const char *symbol,
                      struct cli_fleet_owner *owner) {
  (void)c, (void)f, (void)symbol, (void)owner;
  return no_kafka();
}
