/* kafka.source, black-box: real tickslabd nodes consuming a topic of
 * librdkafka's mock cluster (tests/kafka_mock.c: the Kafka protocol on
 * loopback), fed by a librdkafka producer in the test.  Every tick carries
 * its symbol's sequence number (volume), so what a node holds is checked
 * tick by tick: none lost, none twice. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "decode.h"
#include "harness.h"
#include "kafka.h"
#include "test.h"
#include "wire.h"

#define TOPIC "ticks"
#define PARTS 6
#define T0 1700000000000000000LL

/* ---- the producers' side ---- */

static rd_kafka_t *producer_new(const char *boot) {
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", boot, err, sizeof err) ||
      rd_kafka_conf_set(conf, "partitioner", "murmur2_random", err, sizeof err) ||
      rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof err) ||
      rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err))
    TEST_FAIL("producer config: %s", err);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk) TEST_FAIL("producer: %s", err);
  return rk;
}

static void produce_raw(rd_kafka_t *rk, const char *key, const void *val, size_t len) {
  for (int tries = 0;; tries++) {
    rd_kafka_resp_err_t e = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
        RD_KAFKA_V_VALUE((void *)val, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_END);
    if (!e) return;
    if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || tries > 1000)
      TEST_FAIL("produce: %s", rd_kafka_err2str(e));
    rd_kafka_poll(rk, 10);
  }
}

/* {"ts", "ticker", "price", "volume": seq, and "flags" with every_field
 * (then subscribers get its bytes as sent)}, keyed by `key`, which need
 * not be its ticker. */
static void produce_as(rd_kafka_t *rk, const char *key, const char *sym, int64_t seq,
                       bool every_field) {
  struct wire w;
  wire_init(&w);
  msgpack_pack_map(&w.pk, every_field ? 5 : 4);
  pk_str(&w.pk, "ts");
  msgpack_pack_int64(&w.pk, T0 + seq * 1000);
  pk_str(&w.pk, "ticker");
  pk_str(&w.pk, sym);
  pk_str(&w.pk, "price");
  msgpack_pack_double(&w.pk, (double)seq + 0.5);
  pk_str(&w.pk, "volume");
  msgpack_pack_int64(&w.pk, seq);
  if (every_field) pk_str(&w.pk, "flags"), pk_str(&w.pk, "F");
  produce_raw(rk, key, w.sb.data, w.sb.size);
  wire_finish(&w);
}

static void produce_tick(rd_kafka_t *rk, const char *sym, int64_t seq) {
  produce_as(rk, sym, sym, seq, false);
}

static void producer_done(rd_kafka_t *rk) {
  if (rd_kafka_flush(rk, 20000) != RD_KAFKA_RESP_ERR_NO_ERROR)
    TEST_FAIL("producer: %d messages not delivered", rd_kafka_outq_len(rk));
  rd_kafka_destroy(rk);
}

#define NSYM 36
static void sym_name(int i, char *out) { snprintf(out, 8, "S%02d", i); }

/* Ticks seq0..seq1-1 of every symbol, interleaved. */
static void produce_range(const char *boot, int64_t seq0, int64_t seq1) {
  rd_kafka_t *rk = producer_new(boot);
  for (int64_t k = seq0; k < seq1; k++)
    for (int i = 0; i < NSYM; i++) {
      char s[8];
      sym_name(i, s);
      produce_tick(rk, s, k);
    }
  producer_done(rk);
}

static int32_t partition_of(const char *sym) {
  return tks_kafka_partition(TKS_PARTITIONER_MURMUR2, sym, strlen(sym), PARTS);
}

/* ---- the nodes ---- */

static void node_config(char *buf, size_t n, const char *boot, const char *group,
                        const char *extra) {
  snprintf(buf, n,
           "query:\n  max_rows: 1000000\n"
           "kafka:\n  source:\n    brokers: \"%s\"\n    group: %s\n%s"
           "    properties:\n      session.timeout.ms: 6000\n      heartbeat.interval.ms: 300\n"
           "      topic.metadata.refresh.interval.ms: 1000\n      fetch.wait.max.ms: 20\n",
           boot, group, extra ? extra : "");
}

static void node_start(struct tks_daemon *d, const char *boot, const char *group,
                       const char *extra) {
  char y[2048];
  node_config(y, sizeof y, boot, group, extra);
  daemon_start(d, y);
}

static uint64_t stat_or0(const struct tks_daemon *d, const char *path) {
  uint64_t v = 0;
  return d->pid && daemon_stat_get(d, path, &v) == 0 ? v : 0;
}

/* Waits until the nodes' kafka.source.stored add up to want (and their
 * assignments to `assigned`, if not 0). */
static void wait_stored(struct tks_daemon *const *nodes, unsigned n, uint64_t want,
                        uint64_t assigned, int timeout_ms) {
  uint64_t end = now_ms() + (uint64_t)timeout_ms, got = 0, as = 0;
  while (now_ms() < end) {
    got = as = 0;
    for (unsigned i = 0; i < n; i++) {
      got += stat_or0(nodes[i], "kafka.source.stored");
      as += stat_or0(nodes[i], "kafka.source.assigned");
    }
    if (got >= want && (!assigned || as == assigned)) return;
    sleep_ms(100);
  }
  TEST_FAIL("the nodes stored %" PRIu64 " ticks (want %" PRIu64 "), %" PRIu64
            " partitions assigned (want %" PRIu64 ")",
            got, want, as, assigned);
}

/* The sequence numbers a node holds of sym, checked 0..want-1 each once
 * in order; returns how many it holds. */
static void expect_series(const struct tks_daemon *d, const char *sym, int64_t want) {
  char req[128];
  snprintf(req, sizeof req, "range %s 0 9000000000000000000 1000000", sym);
  char *r = daemon_request_big(d, req, 20000);
  ASSERT(r);
  int64_t next = 0;
  for (const char *p = r; (p = strstr(p, "\"volume\":")); p += 9) {
    int64_t v = strtoll(p + 9, NULL, 10);
    if (v != next)
      TEST_FAIL("%s on node %s: seq %" PRId64 " where %" PRId64 " was due (lost or twice)", sym,
                d->dir, v, next);
    next++;
  }
  if (next != want)
    TEST_FAIL("%s on node %s: %" PRId64 " ticks, want %" PRId64 " (%.200s)", sym, d->dir, next,
              want, r);
  free(r);
}

/* Whether a node's `symbols` says it owns sym (1), holds it not owned (0)
 * or does not list it (-1). */
static int owns(const struct tks_daemon *d, const char *sym) {
  char *r = daemon_request(d, "symbols");
  ASSERT(r);
  char key[32];
  snprintf(key, sizeof key, "{\"symbol\":\"%s\"", sym);
  const char *p = strstr(r, key);
  int v = -1;
  if (p) {
    const char *o = strstr(p, "\"owned\":");
    const char *nl = strchr(p, '\n');
    if (!o || (nl && o > nl)) TEST_FAIL("symbols line of %s has no owned: %.200s", sym, p);
    v = strncmp(o + 8, "true", 4) == 0;
    char want[32];
    snprintf(want, sizeof want, "\"partition\":%d", partition_of(sym));
    if (!strstr(p, want) || strstr(p, want) > nl)
      TEST_FAIL("symbols line of %s does not say %s: %.200s", sym, want, p);
  }
  free(r);
  return v;
}

static const char *const MOCK6[] = {TOPIC ":6", "tickslab.nodes:1", NULL};

/* ---- tests ---- */

TEST_TIMEOUT(two_nodes_in_one_group_hold_disjoint_symbols_whose_union_is_what_was_produced, 180) {
  struct kafka_mock m;
  kafka_mock_start(&m, MOCK6);
  struct tks_daemon a, b;
  node_start(&a, m.bootstraps, "g1", "    node: node-a\n");
  node_start(&b, m.bootstraps, "g1", "    node: node-b\n");
  struct tks_daemon *nodes[] = {&a, &b};
  /* Both in the group before the ticks come, so neither loads it all. */
  wait_stored(nodes, 2, 0, PARTS, 30000);
  produce_range(m.bootstraps, 0, 50);
  wait_stored(nodes, 2, NSYM * 50, PARTS, 60000);
  ASSERT_EQ(stat_or0(&a, "kafka.source.stored") + stat_or0(&b, "kafka.source.stored"), NSYM * 50);
  ASSERT(stat_or0(&a, "kafka.source.assigned") > 0 && stat_or0(&b, "kafka.source.assigned") > 0);
  ASSERT_EQ(stat_or0(&a, "kafka.source.partitions"), PARTS);
  ASSERT_EQ(stat_or0(&a, "kafka.source.misrouted") + stat_or0(&b, "kafka.source.misrouted"), 0);
  /* Each reads the other's record in the directory. */
  uint64_t end = now_ms() + 30000;
  while ((stat_or0(&a, "kafka.source.directory_nodes") < 2 ||
          stat_or0(&b, "kafka.source.directory_nodes") < 2) &&
         now_ms() < end)
    sleep_ms(100);
  ASSERT_EQ(stat_or0(&a, "kafka.source.directory_nodes"), 2);
  ASSERT_EQ(stat_or0(&b, "kafka.source.directory_nodes"), 2);
  for (int i = 0; i < NSYM; i++) {
    char s[8];
    sym_name(i, s);
    int oa = owns(&a, s), ob = owns(&b, s);
    /* Exactly one node holds each symbol, and it is its owner. */
    if (!((oa == 1 && ob == -1) || (oa == -1 && ob == 1)))
      TEST_FAIL("%s (partition %d): node a %d, node b %d", s, partition_of(s), oa, ob);
    struct tks_daemon *owner = oa == 1 ? &a : &b, *other = oa == 1 ? &b : &a;
    expect_series(owner, s, 50);
    /* The other node names the partition. */
    char req[64];
    snprintf(req, sizeof req, "last %s", s);
    char *r = daemon_request(other, req);
    char want[96];
    snprintf(want, sizeof want, "%s is in partition %d of ticks, not assigned to this node", s,
             partition_of(s));
    if (!r || !strstr(r, want)) TEST_FAIL("last %s on the other node: %s", s, r ? r : "(none)");
    char owner_is[160];
    snprintf(owner_is, sizeof owner_is, "its owner is %s (host ",
             owner == &a ? "node-a" : "node-b");
    if (!strstr(r, owner_is) || !strstr(r, owner->sock))
      TEST_FAIL("last %s on the other node does not name its owner: %s", s, r);
    free(r);
    /* And the CLI finds the owner from the directory. */
    if (i % 6 == 0) {
      struct cmd_result cr;
      run_cmd(
          (char *[]){(char *)harness_tickslab(), "last", s, "1", "--brokers", m.bootstraps, NULL},
          NULL, NULL, 30000, &cr);
      if (cr.code != 0 || !strstr(cr.out, "\"volume\":49"))
        TEST_FAIL("tickslab last %s --brokers: exit %d, out %s, err %s", s, cr.code, cr.out,
                  cr.err);
      cmd_result_finish(&cr);
    }
  }
  ASSERT(stat_or0(&a, "kafka.source.queries_not_owned") +
             stat_or0(&b, "kafka.source.queries_not_owned") ==
         NSYM);
  /* The partitions' offsets in stats: each assigned one's, summing to all. */
  uint64_t sum = 0;
  for (int p = 0; p < PARTS; p++) {
    char path[64];
    snprintf(path, sizeof path, "kafka.source.offset.%d", p);
    sum += stat_or0(&a, path) + stat_or0(&b, path);
  }
  ASSERT_EQ(sum, NSYM * 50);
  /* Every kafka.source figure is in the README's table, and the reverse. */
  ASSERT_EQ(stats_match_readme(&a, "kafka.source.", "Kafka source stats", 15), 0);
  daemon_stop(&a, SIGTERM);
  daemon_stop(&b, SIGTERM);
  kafka_mock_stop(&m);
}

TEST_TIMEOUT(a_restart_resumes_each_partition_where_the_journal_ends_across_a_checkpoint, 180) {
  struct kafka_mock m;
  kafka_mock_start(&m, MOCK6);
  struct tks_daemon a;
  node_start(&a, m.bootstraps, "g2", NULL);
  struct tks_daemon *nodes[] = {&a};
  produce_range(m.bootstraps, 0, 20);
  wait_stored(nodes, 1, NSYM * 20, PARTS, 60000);
  /* A checkpoint: the positions must survive the segments it deletes. */
  char *r = daemon_request_big(&a, "checkpoint", 30000);
  ASSERT(r && strstr(r, "\"ok\":true"));
  free(r);
  produce_range(m.bootstraps, 20, 30);
  wait_stored(nodes, 1, NSYM * 30, PARTS, 60000);
  daemon_stop(&a, SIGKILL);
  produce_range(m.bootstraps, 30, 45);
  daemon_spawn(&a, NULL);
  daemon_wait_ready(&a);
  wait_stored(nodes, 1, NSYM * 15, PARTS, 60000); /* only what came after */
  sleep_ms(1500);                                 /* anything read twice would be here by now */
  ASSERT_EQ(stat_or0(&a, "kafka.source.stored"), NSYM * 15);
  for (int i = 0; i < NSYM; i++) {
    char s[8];
    sym_name(i, s);
    expect_series(&a, s, 45);
  }
  daemon_stop(&a, SIGTERM);
  kafka_mock_stop(&m);
}

TEST_TIMEOUT(a_node_killed_its_partitions_go_to_the_other_and_the_restarted_one_resumes, 180) {
  struct kafka_mock m;
  kafka_mock_start(&m, MOCK6);
  struct tks_daemon a, b;
  node_start(&a, m.bootstraps, "g3", NULL);
  node_start(&b, m.bootstraps, "g3", NULL);
  struct tks_daemon *nodes[] = {&a, &b};
  wait_stored(nodes, 2, 0, PARTS, 30000);
  produce_range(m.bootstraps, 0, 20);
  wait_stored(nodes, 2, NSYM * 20, PARTS, 60000);
  bool a_had[NSYM];
  for (int i = 0; i < NSYM; i++) {
    char s[8];
    sym_name(i, s);
    a_had[i] = owns(&a, s) == 1;
  }
  daemon_stop(&a, SIGKILL);
  /* b takes every partition after the session timeout, a's from
   * start_of_day: it holds every tick of them. */
  struct tks_daemon *bonly[] = {&b};
  wait_stored(bonly, 1, NSYM * 20, PARTS, 60000);
  produce_range(m.bootstraps, 20, 30);
  wait_stored(bonly, 1, NSYM * 20 + NSYM * 10, PARTS, 60000);
  for (int i = 0; i < NSYM; i++) {
    char s[8];
    sym_name(i, s);
    ASSERT_EQ(owns(&b, s), 1);
    expect_series(&b, s, 30);
  }
  /* a comes back: the group shares the partitions again; each node holds
   * every tick of what it owns, nothing twice, whether it resumed from
   * its own journal or loaded the partition from start_of_day. */
  daemon_spawn(&a, NULL);
  daemon_wait_ready(&a);
  uint64_t end = now_ms() + 60000;
  while (now_ms() < end &&
         !(stat_or0(&a, "kafka.source.assigned") > 0 && stat_or0(&b, "kafka.source.assigned") > 0 &&
           stat_or0(&a, "kafka.source.assigned") + stat_or0(&b, "kafka.source.assigned") == PARTS))
    sleep_ms(100);
  produce_range(m.bootstraps, 30, 40);
  end = now_ms() + 60000;
  for (int i = 0; i < NSYM; i++) {
    char s[8];
    sym_name(i, s);
    int oa = owns(&a, s), ob = owns(&b, s);
    while ((oa == 1) == (ob == 1) && now_ms() < end) {
      sleep_ms(100);
      oa = owns(&a, s), ob = owns(&b, s);
    }
    if ((oa == 1) == (ob == 1)) TEST_FAIL("%s: owned by a %d, by b %d", s, oa, ob);
    struct tks_daemon *owner = oa == 1 ? &a : &b;
    /* The last tick of the symbol is there once the owner caught up. */
    char req[64];
    snprintf(req, sizeof req, "last %s 1", s);
    for (;;) {
      char *r = daemon_request(owner, req);
      bool done = r && strstr(r, "\"volume\":39");
      free(r);
      if (done) break;
      if (now_ms() > end) TEST_FAIL("%s: the owner did not catch up", s);
      sleep_ms(100);
    }
    expect_series(owner, s, 40);
    (void)a_had;
  }
  daemon_stop(&a, SIGTERM);
  daemon_stop(&b, SIGTERM);
  kafka_mock_stop(&m);
}

TEST(messages_that_are_not_ticks_are_counted_by_reason_and_skipped) {
  struct kafka_mock m;
  const char *const one[] = {TOPIC ":1", NULL};
  kafka_mock_start(&m, one);
  struct tks_daemon a;
  char y[2048];
  node_config(y, sizeof y, m.bootstraps, "g4", NULL);
  daemon_start_with(&a, "  max_message_bytes: 4KiB\n  read_buffer: 64KiB\n", y);
  rd_kafka_t *rk = producer_new(m.bootstraps);
  produce_tick(rk, "GOOD", 0);
  produce_raw(rk, "X", "\xc1", 1); /* not msgpack: malformed */
  produce_raw(rk, "X", "", 0);     /* empty: not_a_tick */
  produce_raw(rk, "X",
              "\xa3"
              "abc",
              4);                        /* a string: not_a_tick */
  produce_raw(rk, "X", "\x84\xa2ts", 4); /* cut short: malformed */
  char deep[200];
  memset(deep, 0x91, sizeof deep); /* nested arrays: too_deep */
  produce_raw(rk, "X", deep, sizeof deep);
  char big[5000];
  memset(big, 0, sizeof big);
  big[0] = (char)0xc5, big[1] = 0x13, big[2] = (char)0x85; /* a 4997-byte bin: too_large */
  produce_raw(rk, "X", big, sizeof big);
  struct wire w;
  wire_init(&w);
  msgpack_pack_map(&w.pk, 4); /* an unknown field */
  pk_str(&w.pk, "ts"), msgpack_pack_int64(&w.pk, T0);
  pk_str(&w.pk, "ticker"), pk_str(&w.pk, "BAD");
  pk_str(&w.pk, "price"), msgpack_pack_double(&w.pk, 1);
  pk_str(&w.pk, "nope"), msgpack_pack_int64(&w.pk, 1);
  produce_raw(rk, "BAD", w.sb.data, w.sb.size);
  wire_clear(&w);
  msgpack_pack_map(&w.pk, 4); /* a symbol not UTF-8: bad_value */
  pk_str(&w.pk, "ts"), msgpack_pack_int64(&w.pk, T0);
  pk_str(&w.pk, "ticker"), pk_strn(&w.pk, "\xff\xfe", 2);
  pk_str(&w.pk, "price"), msgpack_pack_double(&w.pk, 1);
  pk_str(&w.pk, "volume"), msgpack_pack_int64(&w.pk, 1);
  produce_raw(rk, "BAD", w.sb.data, w.sb.size);
  wire_finish(&w);
  /* Two ticks in one message: malformed (a message is one tick). */
  struct wire two;
  wire_init(&two);
  for (int k = 0; k < 2; k++) {
    msgpack_pack_map(&two.pk, 4);
    pk_str(&two.pk, "ts"), msgpack_pack_int64(&two.pk, T0 + k);
    pk_str(&two.pk, "ticker"), pk_str(&two.pk, "TWO");
    pk_str(&two.pk, "price"), msgpack_pack_double(&two.pk, 1);
    pk_str(&two.pk, "volume"), msgpack_pack_int64(&two.pk, k);
  }
  produce_raw(rk, "TWO", two.sb.data, two.sb.size);
  wire_finish(&two);
  /* Random bytes, then a good tick: the partition goes on. */
  srand(7);
  for (int i = 0; i < 50; i++) {
    char junk[64];
    size_t n = 1 + (size_t)rand() % sizeof junk;
    for (size_t j = 0; j < n; j++) junk[j] = (char)rand();
    produce_raw(rk, "J", junk, n);
  }
  produce_tick(rk, "GOOD", 1);
  producer_done(rk);
  struct tks_daemon *nodes[] = {&a};
  wait_stored(nodes, 1, 2, 1, 60000);
  uint64_t msgs = 0, end = now_ms() + 20000;
  while ((msgs = stat_or0(&a, "kafka.source.messages")) < 61 && now_ms() < end) sleep_ms(100);
  ASSERT_EQ(msgs, 61);
  expect_series(&a, "GOOD", 2);
  ASSERT(stat_or0(&a, "ticks.rejected_by_reason.malformed") >= 3);
  ASSERT(stat_or0(&a, "ticks.rejected_by_reason.not_a_tick") >= 2);
  ASSERT_EQ(stat_or0(&a, "ticks.rejected_by_reason.too_deep") >= 1, 1);
  ASSERT(stat_or0(&a, "ticks.rejected_by_reason.too_large") >=
         1); /* random bytes may claim huge lengths */
  ASSERT_EQ(stat_or0(&a, "ticks.rejected_by_reason.unknown_field"), 1);
  ASSERT(stat_or0(&a, "ticks.rejected_by_reason.bad_value") >= 1);
  ASSERT_EQ(stat_or0(&a, "kafka.source.rejected") + stat_or0(&a, "kafka.source.stored"), 61);
  ASSERT_EQ(stat_or0(&a, "ticks.rejected"), stat_or0(&a, "kafka.source.rejected"));
  char *r = daemon_request(&a, "last TWO");
  ASSERT(r && strstr(r, "unknown symbol"));
  free(r);
  daemon_stop(&a, SIGTERM);
  kafka_mock_stop(&m);
}

TEST(a_misrouted_tick_is_stored_and_counted_and_subscribers_get_the_sourced_ticks) {
  struct kafka_mock m;
  kafka_mock_start(&m, MOCK6);
  struct tks_daemon a;
  node_start(&a, m.bootstraps, "g7", NULL);
  /* A subscriber to "*" from now, past its {"$":"live"}. */
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)daemon_stat(&a, "subscribe.port"))};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
  static const char req[] = "\x82\xa9subscribe\xa1*\xa4"
                            "from\xa3now";
  ASSERT_EQ(send_all(fd, req, sizeof req - 1), 0);
  daemon_wait_stat(&a, "subscribe.subscribers", 1, 10000);
  /* A key whose partition is not S01's. */
  char key[16];
  for (int k = 0;; k++) {
    snprintf(key, sizeof key, "K%d", k);
    if (tks_kafka_partition(TKS_PARTITIONER_MURMUR2, key, strlen(key), PARTS) !=
        partition_of("S01"))
      break;
  }
  rd_kafka_t *rk = producer_new(m.bootstraps);
  for (int64_t k = 0; k < 3; k++) produce_as(rk, "S01", "S01", k, true);
  produce_as(rk, key, "S01", 3, true);
  producer_done(rk);
  struct tks_daemon *nodes[] = {&a};
  wait_stored(nodes, 1, 4, PARTS, 60000);
  ASSERT_EQ(stat_or0(&a, "kafka.source.misrouted"), 1);
  expect_series(&a, "S01", 4);
  /* The live marker, then the four ticks, each once, with every field. */
  struct tks_buf in = {0};
  size_t off = 0;
  unsigned ticks = 0, seen = 0;
  uint64_t end = now_ms() + 20000;
  while (ticks < 4) {
    long n = tks_msgpack_skip((const uint8_t *)in.data + off, in.len - off, 1 << 20);
    if (n == 0) {
      if (now_ms() > end) TEST_FAIL("the subscriber got %u of 4 ticks", ticks);
      struct pollfd p = {.fd = fd, .events = POLLIN};
      if (poll(&p, 1, 100) <= 0) continue;
      char buf[4096];
      ssize_t got = recv(fd, buf, sizeof buf, 0);
      ASSERT(got > 0);
      ASSERT_EQ(tks_buf_append(&in, buf, (size_t)got), 0);
      continue;
    }
    ASSERT(n > 0);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    ASSERT_EQ(msgpack_unpack_next(&u, in.data + off, (size_t)n, NULL), MSGPACK_UNPACK_SUCCESS);
    off += (size_t)n;
    const msgpack_object *o = &u.data;
    ASSERT_EQ(o->type, MSGPACK_OBJECT_MAP);
    const msgpack_object_kv *kv = o->via.map.ptr;
    bool control = o->via.map.size && kv[0].key.type == MSGPACK_OBJECT_STR &&
                   kv[0].key.via.str.size == 1 && kv[0].key.via.str.ptr[0] == '$';
    if (!control) {
      ASSERT_EQ(o->via.map.size, 5);
      for (uint32_t i = 0; i < o->via.map.size; i++)
        if (kv[i].key.via.str.size == 6 && memcmp(kv[i].key.via.str.ptr, "volume", 6) == 0) {
          ASSERT_EQ(kv[i].val.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
          ASSERT(kv[i].val.via.u64 < 4 && !(seen & 1u << kv[i].val.via.u64));
          seen |= 1u << kv[i].val.via.u64;
        }
      ticks++;
    }
    msgpack_unpacked_destroy(&u);
  }
  ASSERT_EQ(seen, 0xf);
  tks_buf_finish(&in);
  close(fd);
  daemon_stop(&a, SIGTERM);
  kafka_mock_stop(&m);
}

TEST(from_a_time_skips_the_older_messages_and_committed_takes_the_groups_offset) {
  struct kafka_mock m;
  const char *const one[] = {TOPIC ":1", NULL};
  kafka_mock_start(&m, one);
  produce_range(m.bootstraps, 0, 5);
  sleep_ms(1200);
  char from[96];
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  int64_t cut = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
  snprintf(from, sizeof from, "    from: %" PRId64 "\n", cut);
  sleep_ms(200);
  produce_range(m.bootstraps, 5, 8);
  struct tks_daemon a;
  node_start(&a, m.bootstraps, "g5", from);
  struct tks_daemon *nodes[] = {&a};
  wait_stored(nodes, 1, NSYM * 3, 1, 60000);
  sleep_ms(500);
  ASSERT_EQ(stat_or0(&a, "kafka.source.stored"), NSYM * 3);
  ASSERT_EQ(stat_or0(&a, "kafka.source.skipped"), NSYM * 5);
  /* Its durable offset reaches the group. */
  uint64_t end = now_ms() + 20000;
  while (stat_or0(&a, "kafka.source.committed.0") != NSYM * 8 && now_ms() < end) sleep_ms(100);
  ASSERT_EQ(stat_or0(&a, "kafka.source.committed.0"), NSYM * 8);
  daemon_stop(&a, SIGTERM);
  /* A new node of the same group, from committed, with no journal of its
   * own: it starts where the group's offset is. */
  produce_range(m.bootstraps, 8, 10);
  struct tks_daemon b;
  node_start(&b, m.bootstraps, "g5", "    from: committed\n");
  struct tks_daemon *bn[] = {&b};
  wait_stored(bn, 1, NSYM * 2, 1, 60000);
  sleep_ms(500);
  ASSERT_EQ(stat_or0(&b, "kafka.source.stored"), NSYM * 2);
  daemon_stop(&b, SIGTERM);
  kafka_mock_stop(&m);
}

TEST(a_hello_may_not_take_a_kafka_partitions_name_and_bad_properties_refuse_the_start) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  int fd = daemon_connect_ingest(&d);
  struct wire w;
  wire_init(&w);
  msgpack_pack_map(&w.pk, 3);
  pk_str(&w.pk, "$"), pk_str(&w.pk, "hello");
  pk_str(&w.pk, "acks"), msgpack_pack_true(&w.pk);
  pk_str(&w.pk, "producer"), pk_str(&w.pk, "kafka:ticks/0");
  wire_send(fd, &w);
  wire_finish(&w);
  bool eof;
  char *got = read_until(fd, "kafka: are the Kafka source's", 1, 5000, &eof);
  ASSERT(strstr(got, "kafka: are the Kafka source's"));
  free(got);
  close(fd);
  daemon_stop(&d, SIGTERM);

  struct tks_daemon b;
  daemon_prepare(&b, NULL,
                 "kafka:\n  source:\n    brokers: \"127.0.0.1:1\"\n    properties:\n"
                 "      no.such.property: 1\n");
  /* --check-config (ExecStartPre=) tells it before the start. */
  struct cmd_result cr;
  run_cmd((char *[]){(char *)harness_tickslabd(), "--config", b.config, "--check-config", NULL},
          NULL, NULL, 10000, &cr);
  ASSERT_EQ(cr.code, 2);
  ASSERT_CONTAINS(cr.err, "kafka.source.properties: No such configuration property: "
                          "\"no.such.property\"");
  cmd_result_finish(&cr);
  daemon_spawn(&b, NULL);
  ASSERT(daemon_wait_exit(&b, 20000) != 0);
  char *log = daemon_log(&b);
  ASSERT(strstr(log, "cannot start the Kafka source: kafka.source.properties: No such "
                     "configuration property: \"no.such.property\""));
  free(log);
}

TEST_MAIN()
