/*
 * Black-box tests of the CLI's fleet queries (cli/fleet.c): a mock Kafka
 * cluster (tests/kafka_mock) with a 6-partition "ticks" topic and the
 * directory topic, two real tickslabd nodes given ticks over TCP, and
 * directory records published here with librdkafka (encoded by
 * tks_kafka_node_encode, as the nodes' sources publish theirs).  Checked:
 * `tickslab last/range SYM --brokers B` answers from the node whose
 * partitions hold SYM (both nodes hold every symbol, with different
 * prices, so the answer tells who was asked), the error for an unowned
 * partition, tombstones, stale and replaced records, `tickslab nodes` in
 * text and JSON, and hostile records on the directory skipped with a
 * warning while the rest works.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "encode.h"
#include "harness.h"
#include "kafka.h"
#include "test.h"

#define TS0 INT64_C(1700000000000000000)
#define NPART 6
#define CLI_MS 30000

struct fleet {
  struct kafka_mock kafka;
  struct tks_daemon a, b;
  char sym[NPART][16]; /* a symbol of each partition of ticks (murmur2) */
};

/* ---- producing to the mock cluster ---- */

static void produce(const struct fleet *f, const char *topic, const void *key, size_t klen,
                    const void *value, size_t vlen) {
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", f->kafka.bootstraps, err, sizeof err) ||
      rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err))
    TEST_FAIL("producer config: %s", err);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk) TEST_FAIL("producer: %s", err);
  rd_kafka_resp_err_t e = rd_kafka_producev(
      rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY((void *)key, klen),
      RD_KAFKA_V_VALUE((void *)value, vlen), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
      RD_KAFKA_V_END);
  if (e) TEST_FAIL("produce to %s: %s", topic, rd_kafka_err2str(e));
  if ((e = rd_kafka_flush(rk, 10000))) TEST_FAIL("flush to %s: %s", topic, rd_kafka_err2str(e));
  rd_kafka_destroy(rk);
}

/* A directory record of node `name` (d's control socket, or none) for
 * `topic`, whose producers use `partitioner`, owning the partitions listed
 * (-1 ends the list), published age_s seconds ago. */
static void vpublish(const struct fleet *f, const char *name, const struct tks_daemon *d, int age_s,
                     const char *topic, const char *partitioner, va_list ap) {
  struct tks_kafka_node *n = calloc(1, sizeof *n);
  ASSERT(n);
  snprintf(n->node, sizeof n->node, "%s", name);
  snprintf(n->group, sizeof n->group, "tickslab");
  snprintf(n->topic, sizeof n->topic, "%s", topic);
  snprintf(n->partitioner, sizeof n->partitioner, "%s", partitioner);
  if (d) {
    snprintf(n->control, sizeof n->control, "%s", d->sock);
    snprintf(n->ingest, sizeof n->ingest, "127.0.0.1:%d", d->port);
    n->pid = d->pid;
  }
  snprintf(n->subscribe, sizeof n->subscribe, "127.0.0.1:7%s", name);
  snprintf(n->host, sizeof n->host, "host-%s", name);
  n->ts = tks_now_ns() - (int64_t)age_s * 1000000000;
  n->partition_count = NPART;
  int p;
  while ((p = va_arg(ap, int)) >= 0) n->partitions[n->npartitions++] = p;
  struct tks_buf b = {0};
  ASSERT_EQ(tks_kafka_node_encode(n, &b), 0);
  produce(f, "tickslab.nodes", name, strlen(name), b.data, b.len);
  tks_buf_finish(&b);
  free(n);
}

/* Of "ticks", murmur2. */
static void publish(const struct fleet *f, const char *name, const struct tks_daemon *d, int age_s,
                    ...) {
  va_list ap;
  va_start(ap, age_s);
  vpublish(f, name, d, age_s, "ticks", "murmur2", ap);
  va_end(ap);
}

static void publish_on(const struct fleet *f, const char *name, const struct tks_daemon *d,
                       const char *topic, const char *partitioner, ...) {
  va_list ap;
  va_start(ap, partitioner);
  vpublish(f, name, d, 0, topic, partitioner, ap);
  va_end(ap);
}

static void tombstone(const struct fleet *f, const char *name) {
  produce(f, "tickslab.nodes", name, strlen(name), NULL, 0);
}

/* ---- the fleet ---- */

/* n ticks of sym with prices base+i, ts TS0+i, over one connection. */
static void give(const struct tks_daemon *d, const char *sym, double base, int n) {
  uint64_t before = daemon_stat(d, "ticks.accepted");
  struct tks_buf b = {0};
  for (int i = 0; i < n; i++) {
    struct tks_kv kv[4] = {
        {"ticker", {.type = TKS_V_STR, .v.s = {sym, strlen(sym)}}},
        {"ts", {.type = TKS_V_INT, .v.i = TS0 + i}},
        {"price", {.type = TKS_V_F64, .v.f = base + i}},
        {"volume", {.type = TKS_V_INT, .v.i = 1 + i}},
    };
    ASSERT_EQ(tks_encode_map(&b, kv, 4), 0);
  }
  int fd = daemon_connect_ingest(d);
  ASSERT_EQ(send_all(fd, b.data, b.len), 0);
  daemon_expect_stat(d, "ticks.accepted", before + (uint64_t)n, 30000);
  close(fd);
  tks_buf_finish(&b);
}

/* The mock cluster, two nodes holding a symbol of every partition (node
 * a's prices from 100, b's from 200), and the directory: a owns 0,1,2,
 * b owns 4,5; partition 3 is nobody's. */
static void fleet_start(struct fleet *f, bool records) {
  memset(f, 0, sizeof *f);
  static const char *const args[] = {"--brokers", "1", "ticks:6", "tickslab.nodes:1", NULL};
  kafka_mock_start(&f->kafka, args);
  int found = 0;
  for (int k = 0; found < NPART && k < 10000; k++) {
    char s[16];
    snprintf(s, sizeof s, "SYM%d", k);
    int32_t p = tks_kafka_partition(TKS_PARTITIONER_MURMUR2, s, strlen(s), NPART);
    if (!f->sym[p][0]) {
      memcpy(f->sym[p], s, sizeof s);
      found++;
    }
  }
  ASSERT_EQ(found, NPART);
  daemon_start(&f->a, NULL);
  daemon_start(&f->b, NULL);
  for (int p = 0; p < NPART; p++) {
    give(&f->a, f->sym[p], 100, 5);
    give(&f->b, f->sym[p], 200, 5);
  }
  if (records) {
    publish(f, "a", &f->a, 0, 0, 1, 2, -1);
    publish(f, "b", &f->b, 0, 4, 5, -1);
  }
}

static void fleet_stop(struct fleet *f) {
  ASSERT_EQ(daemon_stop(&f->a, SIGTERM), 0);
  ASSERT_EQ(daemon_stop(&f->b, SIGTERM), 0);
  daemon_cleanup(&f->a);
  daemon_cleanup(&f->b);
  kafka_mock_stop(&f->kafka);
}

/* tickslab ARGS... --brokers BOOT (NULL-ended); no local daemon named:
 * --socket points at nothing, so a local query would fail. */
static void cli(const struct fleet *f, struct cmd_result *r, ...) {
  char *argv[32];
  int n = 0;
  argv[n++] = (char *)harness_tickslab();
  argv[n++] = "--socket";
  argv[n++] = "/nonexistent/tickslab.sock";
  va_list ap;
  va_start(ap, r);
  const char *a;
  while ((a = va_arg(ap, const char *)) && n < 28) argv[n++] = (char *)a;
  va_end(ap);
  argv[n++] = "--brokers";
  argv[n++] = (char *)f->kafka.bootstraps;
  argv[n] = NULL;
  if (access(argv[0], X_OK) != 0) TEST_FAIL("tickslab not found at %s (set TICKSLAB)", argv[0]);
  run_cmd(argv, NULL, NULL, CLI_MS, r);
}

static void expect_ok(const struct cmd_result *r, const char *what) {
  if (r->code != 0)
    TEST_FAIL("%s: exit %d\n  stdout: %s\n  stderr: %s", what, r->code, r->out, r->err);
}

/* The lines of out holding "price": each must be of the series from base. */
static void expect_prices(const char *out, const char *sym, double base, int lines) {
  int n = 0;
  char want[64];
  for (const char *p = out; (p = strstr(p, "\"price\":")); p += 8) {
    double got = strtod(p + 8, NULL);
    if (got < base || got >= base + 5)
      TEST_FAIL("%s: price %g is not from the node of prices %g..: %s", sym, got, base, out);
    n++;
  }
  ASSERT_EQ(n, lines);
  snprintf(want, sizeof want, "\"ticker\":\"%s\"", sym);
  ASSERT_CONTAINS(out, want);
}

TEST_TIMEOUT(last_and_range_with_brokers_ask_the_node_that_owns_the_symbol, 120) {
  struct fleet f;
  fleet_start(&f, true);
  struct cmd_result r;
  for (int p = 0; p < NPART; p++) {
    if (p == 3) continue;
    double base = p < 3 ? 100 : 200;
    cli(&f, &r, "last", f.sym[p], "3", NULL);
    expect_ok(&r, "last");
    expect_prices(r.out, f.sym[p], base, 3);
    ASSERT_EQ(strstr(r.err, "warning") == NULL, 1);
    cmd_result_finish(&r);
    char from[32], to[32];
    snprintf(from, sizeof from, "%lld", (long long)TS0);
    snprintf(to, sizeof to, "%lld", (long long)TS0 + 100);
    cli(&f, &r, "range", f.sym[p], from, to, "--all", NULL);
    expect_ok(&r, "range --all");
    expect_prices(r.out, f.sym[p], base, 5);
    cmd_result_finish(&r);
    cli(&f, &r, "range", f.sym[p], from, to, "2", NULL);
    expect_ok(&r, "range, a page");
    expect_prices(r.out, f.sym[p], base, 2);
    ASSERT_CONTAINS(r.out, "\"more\":true");
    cmd_result_finish(&r);
  }
  /* Another topic has no node. */
  cli(&f, &r, "last", f.sym[0], "--topic", "quotes", NULL);
  ASSERT_EQ(r.code, 1);
  ASSERT_CONTAINS(r.err, "no node of the fleet serves the topic quotes");
  cmd_result_finish(&r);
  fleet_stop(&f);
}

TEST_TIMEOUT(a_symbol_of_an_unowned_partition_is_an_error_naming_it_and_the_nodes, 120) {
  struct fleet f;
  fleet_start(&f, true);
  struct cmd_result r;
  cli(&f, &r, "last", f.sym[3], NULL);
  ASSERT_EQ(r.code, 1);
  ASSERT_STR_EQ(r.out, "");
  char want[200];
  snprintf(want, sizeof want,
           "tickslab: %s is in partition 3 of ticks: no node of the fleet owns it (2 nodes "
           "known: a [0,1,2], b [4,5])\n",
           f.sym[3]);
  ASSERT_STR_EQ(r.err, want);
  cmd_result_finish(&r);
  /* Node a's newer record takes partition 3 too: it answers now. */
  publish(&f, "a", &f.a, 0, 0, 1, 2, 3, -1);
  cli(&f, &r, "last", f.sym[3], NULL);
  expect_ok(&r, "last after a took partition 3");
  expect_prices(r.out, f.sym[3], 100, 5);
  cmd_result_finish(&r);
  fleet_stop(&f);
}

TEST_TIMEOUT(another_topic_is_looked_up_with_its_nodes_partitioner, 120) {
  struct fleet f;
  fleet_start(&f, true);
  /* On "quotes" the producers use crc32: node q (b's socket) owns the
   * crc32 partition of a symbol of node a's on ticks, one that murmur2
   * puts elsewhere, and nothing else. */
  const char *sym = NULL;
  int32_t q = -1;
  for (int p = 0; p < 3 && !sym; p++) {
    q = tks_kafka_partition(TKS_PARTITIONER_CRC32, f.sym[p], strlen(f.sym[p]), NPART);
    if (q != p) sym = f.sym[p];
  }
  ASSERT(sym);
  publish_on(&f, "q", &f.b, "quotes", "crc32", (int)q, -1);
  struct cmd_result r;
  cli(&f, &r, "last", sym, "2", "--topic", "quotes", NULL);
  expect_ok(&r, "last --topic quotes");
  expect_prices(r.out, sym, 200, 2);
  cmd_result_finish(&r);
  /* ticks is still a's. */
  cli(&f, &r, "last", sym, "2", NULL);
  expect_ok(&r, "last on ticks");
  expect_prices(r.out, sym, 100, 2);
  cmd_result_finish(&r);
  /* A symbol of another crc32 partition: the error names that one. */
  const char *other = NULL;
  int32_t op = -1;
  for (int p = 0; p < NPART && !other; p++) {
    op = tks_kafka_partition(TKS_PARTITIONER_CRC32, f.sym[p], strlen(f.sym[p]), NPART);
    if (op != q) other = f.sym[p];
  }
  ASSERT(other);
  cli(&f, &r, "last", other, "--topic", "quotes", NULL);
  ASSERT_EQ(r.code, 1);
  char want[200];
  snprintf(want, sizeof want,
           "%s is in partition %d of quotes: no node of the fleet owns it (1 node known: q [%d])",
           other, (int)op, (int)q);
  ASSERT_CONTAINS(r.err, want);
  cmd_result_finish(&r);
  fleet_stop(&f);
}

TEST_TIMEOUT(a_tombstone_removes_a_node_and_a_stale_record_is_a_node_gone, 120) {
  struct fleet f;
  fleet_start(&f, true);
  struct cmd_result r;
  tombstone(&f, "b");
  cli(&f, &r, "last", f.sym[4], NULL);
  ASSERT_EQ(r.code, 1);
  ASSERT_CONTAINS(r.err, "is in partition 4 of ticks: no node of the fleet owns it (1 node "
                         "known: a [0,1,2])");
  cmd_result_finish(&r);
  /* A record of c, owning 3 and 4, published 2 minutes ago: gone. */
  publish(&f, "c", &f.b, 2 * TKS_KAFKA_NODE_STALE_MS / 1000, 3, 4, -1);
  cli(&f, &r, "last", f.sym[4], NULL);
  ASSERT_EQ(r.code, 1);
  ASSERT_CONTAINS(r.err, "(1 node known: a [0,1,2])");
  cmd_result_finish(&r);
  cli(&f, &r, "nodes", NULL);
  expect_ok(&r, "nodes");
  ASSERT_CONTAINS(r.out, "\na ");
  ASSERT_NOT_CONTAINS(r.out, "\nb ");
  ASSERT_NOT_CONTAINS(r.out, "\nc ");
  ASSERT_CONTAINS(r.err, "node 'c' is gone: its record is 12"); /* 120 s and a little */
  cmd_result_finish(&r);
  /* b back (a record after its tombstone): it answers again. */
  publish(&f, "b", &f.b, 0, 4, 5, -1);
  cli(&f, &r, "last", f.sym[4], "2", NULL);
  expect_ok(&r, "last after b came back");
  expect_prices(r.out, f.sym[4], 200, 2);
  cmd_result_finish(&r);
  fleet_stop(&f);
}

TEST_TIMEOUT(a_node_gone_without_its_tombstone_is_named_when_its_socket_does_not_answer, 120) {
  struct fleet f;
  fleet_start(&f, true);
  ASSERT_EQ(daemon_stop(&f.b, SIGTERM), 0); /* its record stays, fresh */
  struct cmd_result r;
  cli(&f, &r, "last", f.sym[4], NULL);
  ASSERT_EQ(r.code, 1);
  char want[300];
  snprintf(want, sizeof want,
           "tickslab: %s is in partition 4 of ticks, owned by node 'b' (its record ", f.sym[4]);
  ASSERT_CONTAINS(r.err, want);
  snprintf(want, sizeof want, "cannot connect to its control socket %s: ", f.b.sock);
  ASSERT_CONTAINS(r.err, want);
  cmd_result_finish(&r);
  /* a still answers for its own. */
  cli(&f, &r, "last", f.sym[1], "1", NULL);
  expect_ok(&r, "last of a's");
  expect_prices(r.out, f.sym[1], 100, 1);
  cmd_result_finish(&r);
  ASSERT_EQ(daemon_stop(&f.a, SIGTERM), 0);
  daemon_cleanup(&f.a);
  daemon_cleanup(&f.b);
  kafka_mock_stop(&f.kafka);
}

TEST_TIMEOUT(nodes_lists_the_fleet_one_line_each_in_text_and_json, 120) {
  struct fleet f;
  fleet_start(&f, false);
  struct cmd_result r;
  cli(&f, &r, "nodes", NULL);
  expect_ok(&r, "nodes of an empty directory");
  ASSERT_STR_EQ(r.out, "");
  ASSERT_CONTAINS(r.err, "no live node in the directory topic tickslab.nodes");
  cmd_result_finish(&r);
  publish(&f, "b", &f.b, 0, 4, 5, -1);
  publish(&f, "a", &f.a, 3, 0, 1, 2, -1);
  cli(&f, &r, "nodes", NULL);
  expect_ok(&r, "nodes");
  /* A header, then a and b by name, each with its partitions and socket. */
  char *l1 = strchr(r.out, '\n');
  ASSERT(l1);
  ASSERT(strncmp(r.out, "NODE", 4) == 0);
  char *l2 = strchr(l1 + 1, '\n');
  ASSERT(l2);
  char *l3 = strchr(l2 + 1, '\n');
  ASSERT(l3 && l3[1] == '\0');
  *l2 = '\0';
  ASSERT(strncmp(l1 + 1, "a ", 2) == 0);
  ASSERT_CONTAINS(l1 + 1, "host-a");
  ASSERT_CONTAINS(l1 + 1, " 0,1,2 ");
  ASSERT_CONTAINS(l1 + 1, f.a.sock);
  ASSERT_CONTAINS(l1 + 1, "127.0.0.1:7a");
  /* Its age, the last column: published 3 s ago, so at least that. */
  const char *age = strrchr(l1 + 1, ' ');
  ASSERT(age && age[strlen(age) - 1] == 's');
  double age_s = strtod(age + 1, NULL);
  if (!(age_s >= 3.0 && age_s < TKS_KAFKA_NODE_STALE_MS / 1000))
    TEST_FAIL("node a's age %g s, published 3 s ago: %s", age_s, l1 + 1);
  ASSERT(strncmp(l2 + 1, "b ", 2) == 0);
  ASSERT_CONTAINS(l2 + 1, " 4,5 ");
  ASSERT_CONTAINS(l2 + 1, f.b.sock);
  cmd_result_finish(&r);

  cli(&f, &r, "nodes", "--json", NULL);
  expect_ok(&r, "nodes --json");
  char *line2 = strchr(r.out, '\n');
  ASSERT(line2 && strchr(line2 + 1, '\n') && strchr(line2 + 1, '\n')[1] == '\0');
  *line2 = '\0';
  char *a = json_flatten(r.out), *b = json_flatten(line2 + 1);
  ASSERT(a && b);
  char v[160];
  ASSERT_EQ(stats_text_lookup(a, "node", v, sizeof v), 0);
  ASSERT_STR_EQ(v, "a");
  ASSERT_EQ(stats_text_lookup(a, "control", v, sizeof v), 0);
  ASSERT_STR_EQ(v, f.a.sock);
  ASSERT_EQ(stats_text_lookup(a, "partitions.2", v, sizeof v), 0);
  ASSERT_STR_EQ(v, "2");
  ASSERT_EQ(stats_text_lookup(a, "partition_count", v, sizeof v), 0);
  ASSERT_STR_EQ(v, "6");
  ASSERT_EQ(stats_text_lookup(a, "pid", v, sizeof v), 0);
  ASSERT_EQ(atoll(v), f.a.pid);
  ASSERT_EQ(stats_text_lookup(a, "age_ms", v, sizeof v), 0);
  ASSERT(atoll(v) >= 3000);
  ASSERT_EQ(stats_text_lookup(b, "node", v, sizeof v), 0);
  ASSERT_STR_EQ(v, "b");
  ASSERT_EQ(stats_text_lookup(b, "partitions.1", v, sizeof v), 0);
  ASSERT_STR_EQ(v, "5");
  ASSERT_EQ(stats_text_lookup(b, "partitions.2", v, sizeof v), -1);
  free(a);
  free(b);
  cmd_result_finish(&r);
  fleet_stop(&f);
}

TEST_TIMEOUT(hostile_records_on_the_directory_are_skipped_with_a_warning_and_the_rest_works, 120) {
  struct fleet f;
  fleet_start(&f, true);
  /* Garbage, a record cut short, one over 64 KiB, one whose node is not
   * its key, one with a bad UTF-8 key, one without a key, and one of
   * out-of-range partitions claiming partition 3. */
  static const char garbage[] = "\xde\xad\xbe\xef garbage";
  produce(&f, "tickslab.nodes", "evil", 4, garbage, sizeof garbage - 1);
  struct tks_kafka_node *n = calloc(1, sizeof *n);
  ASSERT(n);
  snprintf(n->node, sizeof n->node, "cut");
  snprintf(n->topic, sizeof n->topic, "ticks");
  n->ts = tks_now_ns();
  n->partition_count = NPART;
  n->npartitions = 1;
  n->partitions[0] = 3;
  struct tks_buf b = {0};
  ASSERT_EQ(tks_kafka_node_encode(n, &b), 0);
  produce(&f, "tickslab.nodes", "cut", 3, b.data, b.len - 3);
  produce(&f, "tickslab.nodes", "liar", 4, b.data, b.len); /* its node is "cut" */
  produce(&f, "tickslab.nodes", "\xff\xfe", 2, b.data, b.len);
  produce(&f, "tickslab.nodes", NULL, 0, b.data, b.len);
  size_t big = TKS_KAFKA_NODE_MAX_BYTES + 10;
  char *huge = malloc(big);
  ASSERT(huge);
  memset(huge, 0xc0, big);
  produce(&f, "tickslab.nodes", "huge", 4, huge, big);
  free(huge);
  b.len = 0;
  snprintf(n->node, sizeof n->node, "range");
  n->partition_count = 2; /* and partition 3 */
  ASSERT_EQ(tks_kafka_node_encode(n, &b), 0);
  produce(&f, "tickslab.nodes", "range", 5, b.data, b.len);
  tks_buf_finish(&b);
  free(n);
  /* Then a flood: told only up to 10 in all, then counted. */
  for (int k = 0; k < 12; k++) produce(&f, "tickslab.nodes", "flood", 5, "x", 1);

  struct cmd_result r;
  cli(&f, &r, "last", f.sym[5], "1", NULL);
  expect_ok(&r, "last with hostile records in the directory");
  expect_prices(r.out, f.sym[5], 200, 1);
  ASSERT_CONTAINS(r.err, "warning: skipped a record of tickslab.nodes [partition 0, offset 2] "
                         "(key 'evil'): not msgpack");
  ASSERT_CONTAINS(r.err, "(key 'cut'): truncated msgpack");
  ASSERT_CONTAINS(r.err, "(key 'liar'): its node 'cut' is not its key");
  ASSERT_CONTAINS(r.err, "its key '\\xff\\xfe' is not a node name");
  ASSERT_CONTAINS(r.err, "its key '' is not a node name");
  ASSERT_CONTAINS(r.err, "(key 'huge'): a record of 65546 bytes (over 65536)");
  ASSERT_CONTAINS(r.err, "(key 'range'): partitions: 3 is not in 0..1");
  ASSERT_CONTAINS(r.err, "(key 'flood'): not a msgpack map"); /* the 8th..10th */
  ASSERT_CONTAINS(r.err, "tickslab: warning: 9 more records of tickslab.nodes skipped\n");
  int warnings = 0;
  for (const char *p = r.err; (p = strstr(p, "warning: skipped")); p++) warnings++;
  ASSERT_EQ(warnings, 10);
  cmd_result_finish(&r);
  /* None of them took partition 3. */
  cli(&f, &r, "last", f.sym[3], NULL);
  ASSERT_EQ(r.code, 1);
  ASSERT_CONTAINS(r.err, "(2 nodes known: a [0,1,2], b [4,5])");
  cmd_result_finish(&r);
  cli(&f, &r, "nodes", "--json", NULL);
  expect_ok(&r, "nodes --json");
  ASSERT_CONTAINS(r.out, "\"node\":\"a\"");
  ASSERT_CONTAINS(r.out, "\"node\":\"b\"");
  ASSERT_NOT_CONTAINS(r.out, "\"node\":\"cut\"");
  cmd_result_finish(&r);
  fleet_stop(&f);
}

TEST_TIMEOUT(unreachable_brokers_and_bad_options_fail_with_a_message, 60) {
  /* A port nothing listens on: bound, then closed. */
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ASSERT_EQ(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
  char boot[64];
  snprintf(boot, sizeof boot, "127.0.0.1:%d", local_port(s));
  close(s);
  struct fleet f;
  memset(&f, 0, sizeof f);
  snprintf(f.kafka.bootstraps, sizeof f.kafka.bootstraps, "%s", boot);
  struct cmd_result r;
  cli(&f, &r, "last", "AAPL", "--timeout", "1", NULL);
  ASSERT_EQ(r.code, 1);
  ASSERT_CONTAINS(r.err, "tickslab: cannot read the fleet's directory from");
  ASSERT_CONTAINS(r.err, "within 1.0 s");
  cmd_result_finish(&r);
  cli(&f, &r, "nodes", "--timeout", "1", NULL);
  ASSERT_EQ(r.code, 1);
  ASSERT_CONTAINS(r.err, "cannot read the fleet's directory");
  cmd_result_finish(&r);

  /* Usage errors: --topic without --brokers, nodes without --brokers. */
  char *argv[8] = {(char *)harness_tickslab(), "last", "AAPL", "--topic", "ticks", NULL};
  run_cmd(argv, NULL, NULL, CLI_MS, &r);
  ASSERT_EQ(r.code, 2);
  ASSERT_CONTAINS(r.err, "--topic is for a fleet on Kafka: give --brokers too");
  cmd_result_finish(&r);
  char *argv2[4] = {(char *)harness_tickslab(), "nodes", NULL};
  run_cmd(argv2, NULL, NULL, CLI_MS, &r);
  ASSERT_EQ(r.code, 2);
  ASSERT_CONTAINS(r.err, "nodes: --brokers is needed");
  cmd_result_finish(&r);
  char *argv3[6] = {(char *)harness_tickslab(), "last", "AAPL", "--brokers=", NULL};
  run_cmd(argv3, NULL, NULL, CLI_MS, &r);
  ASSERT_EQ(r.code, 2);
  ASSERT_CONTAINS(r.err, "option --brokers needs a value");
  cmd_result_finish(&r);
}

TEST_MAIN()
