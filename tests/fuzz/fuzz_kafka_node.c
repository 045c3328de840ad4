/*
 * libFuzzer target: a record of the fleet's directory topic
 * (lib/kafka.c's tks_kafka_node_parse), bytes anyone may produce to
 * kafka.source.nodes_topic.  Checked: a refusal is -EINVAL with a reason
 * and a zeroed record; a record taken has node and topic non-empty, every
 * string UTF-8 without control characters and NUL-terminated inside its
 * field, a known partitioner, its partitions distinct, sorted and in
 * 0..partition_count-1, and encodes to bytes that parse back the same.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "kafka.h"
#include "utf8.h"
#include "util.h"

static void check_str(const char *s, size_t cap, const char *what) {
  size_t n = strnlen(s, cap);
  FUZZ_CHECK(n < cap, "%s not NUL-terminated in its field", what);
  FUZZ_CHECK(!(tks_utf8_scan(s, n) & (TKS_UTF8_INVALID | TKS_UTF8_CONTROL)),
             "%s not UTF-8 or with a control character", what);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct tks_kafka_node n, again;
  char why[256];
  why[0] = '\0';
  int r = tks_kafka_node_parse(data, size, &n, why, sizeof why);
  if (r) {
    FUZZ_CHECK(r == -EINVAL, "parse %d", r);
    FUZZ_CHECK(why[0] != '\0', "a refusal without a reason");
    static const struct tks_kafka_node zero;
    FUZZ_CHECK(memcmp(&n, &zero, sizeof n) == 0, "a refused record not zeroed");
    return 0;
  }
  FUZZ_CHECK(size <= TKS_KAFKA_NODE_MAX_BYTES, "a record of %zu bytes taken", size);
  check_str(n.node, sizeof n.node, "node");
  check_str(n.group, sizeof n.group, "group");
  check_str(n.topic, sizeof n.topic, "topic");
  check_str(n.partitioner, sizeof n.partitioner, "partitioner");
  check_str(n.control, sizeof n.control, "control");
  check_str(n.subscribe, sizeof n.subscribe, "subscribe");
  check_str(n.ingest, sizeof n.ingest, "ingest");
  check_str(n.host, sizeof n.host, "host");
  FUZZ_CHECK(n.node[0] && n.topic[0], "node or topic empty");
  FUZZ_CHECK(!strcmp(n.partitioner, "murmur2") || !strcmp(n.partitioner, "crc32"),
             "partitioner '%s'", n.partitioner);
  FUZZ_CHECK(n.partition_count >= 1, "partition_count %d", n.partition_count);
  FUZZ_CHECK(n.npartitions <= TKS_KAFKA_NODE_MAX_PARTITIONS, "%u partitions", n.npartitions);
  FUZZ_CHECK(n.pid >= 0, "pid %lld", (long long)n.pid);
  for (uint32_t i = 0; i < n.npartitions; i++) {
    FUZZ_CHECK(n.partitions[i] >= 0 && n.partitions[i] < n.partition_count, "partition %d of %d",
               n.partitions[i], n.partition_count);
    FUZZ_CHECK(i == 0 || n.partitions[i] > n.partitions[i - 1], "partitions not sorted, distinct");
    FUZZ_CHECK(tks_kafka_node_owns(&n, n.partitions[i]), "owns misses %d", n.partitions[i]);
  }
  struct tks_buf b = {0};
  FUZZ_CHECK(tks_kafka_node_encode(&n, &b) == 0, "encode");
  FUZZ_CHECK(tks_kafka_node_parse(b.data, b.len, &again, why, sizeof why) == 0,
             "the record encoded does not parse: %s", why);
  FUZZ_CHECK(memcmp(&n, &again, sizeof n) == 0, "the record encoded parses differently");
  tks_buf_finish(&b);
  return 0;
}
