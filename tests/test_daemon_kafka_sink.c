/*
 * kafka.sink against the real tickslabd, librdkafka's mock cluster
 * (tests/kafka_mock.c) and kcat reading the topic back: every tick
 * accepted over TCP is on the topic exactly once, keyed by its symbol,
 * its bytes those sent (map and array form, a named producer's too); a
 * broker set down and all of them down and up again lose nothing; the
 * queue limit holds ingest (backpressure) or rejects (sink_full) and lets
 * go once Kafka takes the backlog; kill -9 and a restart produce every
 * tick at least once, duplicates only of the ticks after the saved
 * position; a missing, truncated or garbage position file does what the
 * README says; configs the sink cannot run with are refused at start.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "decode.h"
#include "encode.h"
#include "harness.h"
#include "journal.h"
#include "oprec.h"
#include "sinkpos.h"
#include "test.h"
#include "util.h"

#define TS0 INT64_C(1700000000000000000)
#define NSYM 64
#define WAIT_MS 30000

/* ---- the ticks: tick i is of symbol S<i % NSYM>, ts TS0 + i ------------ */

struct ticks {
  size_t n;
  struct tks_buf all; /* every tick's bytes, in order */
  size_t *off, *len;  /* tick i is all.data[off[i], off[i] + len[i]) */
  uint32_t *seen;     /* times read back from the topic */
};

static void sym_of(char out[16], size_t i) { snprintf(out, 16, "S%03zu", i % NSYM); }

static void ticks_make(struct ticks *t, size_t n) {
  memset(t, 0, sizeof *t);
  t->n = n;
  tks_buf_init(&t->all);
  t->off = calloc(n, sizeof *t->off);
  t->len = calloc(n, sizeof *t->len);
  t->seen = calloc(n, sizeof *t->seen);
  ASSERT(t->off && t->len && t->seen);
  for (size_t i = 0; i < n; i++) {
    char s[16];
    sym_of(s, i);
    t->off[i] = t->all.len;
    int64_t ts = TS0 + (int64_t)i;
    if (i % 7 == 3) { /* array form: ts, ticker, price, volume, flags */
      struct tks_value v[5] = {{.type = TKS_V_INT, .v.i = ts},
                               {.type = TKS_V_STR, .v.s = {s, strlen(s)}},
                               {.type = TKS_V_F64, .v.f = 10.25},
                               {.type = TKS_V_INT, .v.i = (int64_t)i},
                               {.type = TKS_V_NIL}};
      ASSERT_EQ(tks_encode_array(&t->all, v, 5), 0);
    } else {
      struct tks_kv kv[4] = {{"ticker", {.type = TKS_V_STR, .v.s = {s, strlen(s)}}},
                             {"ts", {.type = TKS_V_INT, .v.i = ts}},
                             {"price", {.type = TKS_V_F64, .v.f = 100.5}},
                             {"volume", {.type = TKS_V_INT, .v.i = (int64_t)i}}};
      ASSERT_EQ(tks_encode_map(&t->all, kv, 4), 0);
    }
    t->len[i] = t->all.len - t->off[i];
  }
}

static void ticks_free(struct ticks *t) {
  tks_buf_finish(&t->all);
  free(t->off);
  free(t->len);
  free(t->seen);
}

/* Sends ticks [from, to) on fd. */
static void ticks_send(const struct ticks *t, int fd, size_t from, size_t to) {
  if (from >= to) return;
  size_t a = t->off[from], b = t->off[to - 1] + t->len[to - 1];
  ASSERT_EQ(send_all(fd, t->all.data + a, b - a), 0);
}

/* A named producer's connection: its ticks are journaled in producer records. */
static int connect_named(const struct tks_daemon *d, const char *name) {
  int fd = daemon_connect_ingest(d);
  struct tks_buf b;
  tks_buf_init(&b);
  struct tks_kv kv[3] = {{"$", {.type = TKS_V_STR, .v.s = {"hello", 5}}},
                         {"acks", {.type = TKS_V_BOOL, .v.b = true}},
                         {"producer", {.type = TKS_V_STR, .v.s = {name, strlen(name)}}}};
  ASSERT_EQ(tks_encode_map(&b, kv, 3), 0);
  ASSERT_EQ(send_all(fd, b.data, b.len), 0);
  tks_buf_finish(&b);
  return fd;
}

/* ---- the cluster, the config, the topic read back ---------------------- */

static const char *kcat_or_skip(void) {
  const char *k = harness_kcat();
  if (!k) TEST_SKIP("kcat is not installed (apt-get install kcat): the topic cannot be read back");
  return k;
}

/* The mock keeps at most 5 MiB (and 100000 message sets) a partition,
 * dropping the oldest past it (librdkafka's rdkafka_mock.c): the tests
 * stay well under that, with more partitions for more ticks. */
static void mock_start_with(struct kafka_mock *m, const char *topic) {
  const char *args[] = {"--brokers", "3", topic, NULL};
  kafka_mock_start(m, args);
}
static void mock_start(struct kafka_mock *m) { mock_start_with(m, "ticks:4"); }

static void mock_all(struct kafka_mock *m, const char *what) {
  for (int id = 1; id <= 3; id++) {
    char cmd[32];
    snprintf(cmd, sizeof cmd, "%s %d", what, id);
    kafka_mock_cmd(m, cmd);
  }
}

/* The sink's config section (and extra sections after it). */
static void sink_yaml(char *out, size_t n, const struct kafka_mock *m, const char *sink_extra,
                      const char *extra) {
  snprintf(out, n, "kafka:\n  sink:\n    brokers: \"%s\"\n    topic: ticks\n%s%s", m->bootstraps,
           sink_extra ? sink_extra : "", extra ? extra : "");
}

/* journal.dir of the harness's config. */
static void journal_dir(const struct tks_daemon *d, char *out, size_t n) {
  snprintf(out, n, "%s/journal", d->dir);
}

/* Reads the whole topic with kcat and counts each tick in t->seen, checking
 * that every message is one of t's ticks, byte for byte, keyed by its
 * symbol.  Returns how many messages were read. */
static size_t topic_read(const struct kafka_mock *m, struct ticks *t, const char *dir) {
  const char *kcat = kcat_or_skip();
  char path[200], cmd[1400];
  snprintf(path, sizeof path, "%s/topic.out", dir);
  /* Sizes first, then the raw key and value: binary-safe. */
  snprintf(cmd, sizeof cmd, "%s -b '%s' -t ticks -C -e -q -o beginning -f '%%K %%S %%k%%s' > '%s'",
           kcat, m->bootstraps, path);
  char *argv[] = {"/bin/sh", "-c", cmd, NULL};
  struct cmd_result r;
  run_cmd(argv, NULL, NULL, WAIT_MS, &r);
  if (r.code != 0) TEST_FAIL("kcat failed (%d): %s", r.code, r.err);
  cmd_result_finish(&r);
  FILE *f = fopen(path, "rb");
  ASSERT(f);
  memset(t->seen, 0, t->n * sizeof *t->seen);
  size_t msgs = 0;
  for (;;) {
    long klen, vlen;
    if (fscanf(f, "%ld %ld ", &klen, &vlen) != 2) break;
    ASSERT(klen > 0 && klen < 16 && vlen > 0 && vlen < 200);
    char key[16], val[200];
    ASSERT_EQ(fread(key, 1, (size_t)klen, f), (size_t)klen);
    ASSERT_EQ(fread(val, 1, (size_t)vlen, f), (size_t)vlen);
    /* Which tick: its volume field, then the bytes compared whole. */
    const char *sym;
    uint32_t sl;
    struct tks_schema schema;
    tks_schema_default(&schema);
    ASSERT_EQ(tks_decode_symbol(&schema, (const uint8_t *)val, (size_t)vlen, &sym, &sl), 0);
    ASSERT_EQ((long)sl, klen);
    ASSERT_EQ(memcmp(sym, key, sl), 0);
    size_t found = t->n;
    /* The symbol narrows it to every NSYM-th tick; the bytes decide. */
    unsigned s = (unsigned)atoi(key + 1);
    for (size_t i = s; i < t->n; i += NSYM)
      if (t->len[i] == (size_t)vlen && memcmp(t->all.data + t->off[i], val, (size_t)vlen) == 0) {
        found = i;
        break;
      }
    if (found == t->n)
      TEST_FAIL("a message on the topic (key %.*s) is none of the ticks sent", (int)klen, key);
    t->seen[found]++;
    msgs++;
  }
  fclose(f);
  return msgs;
}

/* Every tick of [from, to) read `want` times (0: at least once). */
static void expect_seen(const struct ticks *t, size_t from, size_t to, uint32_t want) {
  size_t missing = 0, first = 0, last = 0;
  for (size_t i = from; i < to; i++)
    if (t->seen[i] == 0) {
      if (!missing++) first = i;
      last = i;
    }
  if (missing)
    printf("  %zu ticks of [%zu, %zu) are not on the topic, the first %zu, the last %zu\n", missing,
           from, to, first, last),
        fflush(stdout);
  for (size_t i = from; i < to; i++) {
    if (want == 0 && t->seen[i] == 0) TEST_FAIL("tick %zu is not on the topic", i);
    if (want && t->seen[i] != want)
      TEST_FAIL("tick %zu is on the topic %u times, want %u", i, t->seen[i], want);
  }
}

static void wait_acked(const struct tks_daemon *d, uint64_t n) {
  uint64_t got = daemon_wait_stat(d, "kafka.sink.acknowledged", n, WAIT_MS);
  if (got < n) TEST_FAIL("kafka.sink.acknowledged is %" PRIu64 ", want %" PRIu64, got, n);
}

static void wait_caught_up(const struct tks_daemon *d) {
  uint64_t until = now_ms() + WAIT_MS;
  for (;;) {
    char *txt = daemon_request(d, "stats text");
    char st[64] = "", q[64] = "";
    ASSERT(txt);
    stats_text_lookup(txt, "kafka.sink.state", st, sizeof st);
    stats_text_lookup(txt, "kafka.sink.queued_bytes", q, sizeof q);
    free(txt);
    if (!strcmp(st, "caught_up") && !strcmp(q, "0")) return;
    if (now_ms() > until) TEST_FAIL("the sink is not caught up: state %s, queued_bytes %s", st, q);
    sleep_ms(50);
  }
}

static void expect_log(const struct tks_daemon *d, const char *needle) {
  char *log = daemon_log(d);
  if (!strstr(log, needle)) TEST_FAIL("the log has no '%s':\n%s", needle, log);
  free(log);
}

/* ---- (a) every tick, once, keyed, the bytes sent ------------------------ */

TEST_TIMEOUT(every_tcp_tick_is_on_the_topic_once_keyed_by_its_symbol_with_the_bytes_sent, 120) {
  kcat_or_skip();
  struct kafka_mock m;
  mock_start(&m);
  struct tks_daemon d;
  char yaml[2048];
  sink_yaml(yaml, sizeof yaml, &m, NULL, NULL);
  daemon_start(&d, yaml);
  struct ticks t;
  ticks_make(&t, 6000);
  /* Plain connections, a named producer (producer records), many writes. */
  int a = daemon_connect_ingest(&d), b = daemon_connect_ingest(&d), p = connect_named(&d, "feed-1");
  for (size_t i = 0; i < t.n; i += 500) {
    int fd = (i / 500) % 3 == 0 ? a : (i / 500) % 3 == 1 ? b : p;
    ticks_send(&t, fd, i, i + 500 < t.n ? i + 500 : t.n);
    daemon_wait_stat(&d, "ticks.accepted", i + 500 < t.n ? i + 500 : t.n, WAIT_MS);
  }
  daemon_expect_stat(&d, "ticks.accepted", t.n, WAIT_MS);
  wait_acked(&d, t.n);
  wait_caught_up(&d);
  ASSERT_U64_EQ(daemon_stat(&d, "kafka.sink.produced"), t.n);
  ASSERT_U64_EQ(daemon_stat(&d, "kafka.sink.acknowledged"), t.n);
  ASSERT_U64_EQ(daemon_stat(&d, "kafka.sink.failed"), 0);
  ASSERT_U64_EQ(daemon_stat(&d, "kafka.sink.in_flight"), 0);
  ASSERT_U64_EQ(topic_read(&m, &t, d.dir), t.n);
  expect_seen(&t, 0, t.n, 1);
  /* Every kafka.sink figure is in the README's table, and the reverse. */
  ASSERT_EQ(stats_match_readme(&d, "kafka.sink.", "Kafka sink stats", 10), 0);
  close(a), close(b), close(p);
  /* The clean stop saves the position at the journal's end. */
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  expect_log(&d, "kafka.sink: every journaled tick is acknowledged");
  char dir[200], path[300];
  journal_dir(&d, dir, sizeof dir);
  snprintf(path, sizeof path, "%s/" TKS_SINKPOS_FILE, dir);
  char *pos = read_file(path);
  ASSERT(pos);
  uint64_t seg, off;
  ASSERT_EQ(tks_sinkpos_parse(pos, strlen(pos), &seg, &off), 0);
  ASSERT(seg >= 1 && off > TKS_JOURNAL_SEGMENT_HEADER);
  free(pos);
  ticks_free(&t);
  kafka_mock_stop(&m);
}

/* ---- (b) brokers down and up ------------------------------------------- */

TEST_TIMEOUT(a_broker_down_then_all_down_and_up_again_loses_nothing_and_ingest_goes_on, 150) {
  kcat_or_skip();
  struct kafka_mock m;
  mock_start(&m);
  struct tks_daemon d;
  char yaml[2048];
  sink_yaml(yaml, sizeof yaml, &m, NULL, NULL);
  daemon_start(&d, yaml);
  struct ticks t;
  ticks_make(&t, 9000);
  int fd = daemon_connect_ingest(&d);
  ticks_send(&t, fd, 0, 3000);
  wait_acked(&d, 3000);
  /* One broker down (a leader of some partitions): on. */
  kafka_mock_cmd(&m, "down 1");
  ticks_send(&t, fd, 3000, 6000);
  daemon_expect_stat(&d, "ticks.accepted", 6000, WAIT_MS);
  kafka_mock_cmd(&m, "up 1");
  wait_acked(&d, 6000);
  /* All of them: ingest goes on (journaled), nothing is acknowledged. */
  mock_all(&m, "down");
  ticks_send(&t, fd, 6000, 9000);
  daemon_expect_stat(&d, "ticks.accepted", 9000, WAIT_MS);
  ASSERT_U64_EQ(daemon_stat(&d, "ingest.held"), 0);
  sleep_ms(1500);
  uint64_t acked = daemon_stat(&d, "kafka.sink.acknowledged");
  ASSERT(acked < 9000);
  ASSERT(daemon_stat(&d, "kafka.sink.queued_bytes") > 0);
  /* The oldest tick waiting was received 1.5 s ago at least. */
  char *txt = daemon_request(&d, "stats text");
  char lag[64] = "", state[64] = "";
  ASSERT(txt);
  ASSERT_EQ(stats_text_lookup(txt, "kafka.sink.lag_seconds", lag, sizeof lag), 0);
  ASSERT_EQ(stats_text_lookup(txt, "kafka.sink.state", state, sizeof state), 0);
  free(txt);
  if (strtod(lag, NULL) < 1.4)
    TEST_FAIL("kafka.sink.lag_seconds is %s with every broker down", lag);
  ASSERT_STR_EQ(state, "brokers_down");
  mock_all(&m, "up");
  wait_acked(&d, 9000);
  wait_caught_up(&d);
  ASSERT_U64_EQ(daemon_stat(&d, "kafka.sink.failed"), 0);
  ASSERT_U64_EQ(topic_read(&m, &t, d.dir), t.n);
  expect_seen(&t, 0, t.n, 1); /* the idempotent producer: no retry's duplicate */
  close(fd);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  ticks_free(&t);
  kafka_mock_stop(&m);
}

/* ---- checkpoints keep the sink's segments --------------------------------- */

TEST_TIMEOUT(checkpoints_keep_the_segments_the_sink_has_not_had_acknowledged, 150) {
  kcat_or_skip();
  struct kafka_mock m;
  mock_start(&m);
  struct tks_daemon d;
  char yaml[2048];
  sink_yaml(yaml, sizeof yaml, &m, NULL, NULL);
  daemon_start(&d, yaml);
  char dir[200], seg1[300];
  journal_dir(&d, dir, sizeof dir);
  snprintf(seg1, sizeof seg1, "%s/journal-%020d.tkj", dir, 1);
  struct ticks t;
  ticks_make(&t, 4000);
  mock_all(&m, "down");
  int fd = daemon_connect_ingest(&d);
  /* Each checkpoint begins a new segment; the third would delete those
   * below the second's, the sink's among them. */
  for (int k = 0; k < 4; k++) {
    ticks_send(&t, fd, (size_t)k * 1000, (size_t)k * 1000 + 1000);
    daemon_expect_stat(&d, "ticks.accepted", (uint64_t)k * 1000 + 1000, WAIT_MS);
    char *r = daemon_request(&d, "checkpoint");
    if (!r || !strstr(r, "\"ok\":true")) TEST_FAIL("checkpoint: %s", r ? r : "(none)");
    free(r);
  }
  ASSERT_U64_EQ(daemon_stat(&d, "kafka.sink.position.segment"), 1);
  ASSERT(access(seg1, F_OK) == 0);
  ASSERT(daemon_stat(&d, "journal.segments") >= 4);
  mock_all(&m, "up");
  wait_acked(&d, t.n);
  wait_caught_up(&d);
  ASSERT_U64_EQ(topic_read(&m, &t, d.dir), t.n);
  expect_seen(&t, 0, t.n, 1);
  /* Acknowledged: the next checkpoint may delete them. */
  char *r = daemon_request(&d, "checkpoint");
  ASSERT(r && strstr(r, "\"ok\":true"));
  free(r);
  r = daemon_request(&d, "checkpoint");
  ASSERT(r && strstr(r, "\"ok\":true"));
  free(r);
  uint64_t until = now_ms() + WAIT_MS;
  while (access(seg1, F_OK) == 0 && now_ms() < until) sleep_ms(20);
  ASSERT(access(seg1, F_OK) != 0);
  close(fd);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  ticks_free(&t);
  kafka_mock_stop(&m);
}

/* ---- (c) the queue limit ----------------------------------------------- */

struct sender {
  const struct ticks *t;
  int fd;
  size_t from, to;
  pthread_t th;
};

static void *sender_main(void *arg) {
  struct sender *s = arg;
  ticks_send(s->t, s->fd, s->from, s->to);
  return NULL;
}

TEST_TIMEOUT(backpressure_holds_ingest_over_max_queue_bytes_until_kafka_takes_the_backlog, 150) {
  kcat_or_skip();
  struct kafka_mock m;
  mock_start(&m);
  struct tks_daemon d;
  char yaml[2048];
  sink_yaml(yaml, sizeof yaml, &m, "    max_queue_bytes: 1MiB\n    on_full: backpressure\n", NULL);
  daemon_start(&d, yaml);
  struct ticks t;
  ticks_make(&t, 60000); /* about 3 MiB */
  mock_all(&m, "down");
  int fd = daemon_connect_ingest(&d);
  /* In steps (the limit is looked at every 50 ms), until ingest is held. */
  size_t sent = 0;
  while (sent < 40000 && daemon_stat(&d, "ingest.held") == 0) {
    ticks_send(&t, fd, sent, sent + 1000);
    sent += 1000;
    uint64_t until = now_ms() + WAIT_MS;
    while (daemon_stat(&d, "ticks.accepted") < sent && !daemon_stat(&d, "ingest.held") &&
           now_ms() < until)
      sleep_ms(10);
    sleep_ms(60);
  }
  ASSERT_U64_EQ(daemon_stat(&d, "ingest.held"), 1);
  ASSERT_U64_EQ(daemon_stat(&d, "kafka.sink.holding"), 1);
  /* The rest from a thread: held, it waits in the socket. */
  struct sender s = {&t, fd, sent, t.n, 0};
  ASSERT_EQ(pthread_create(&s.th, NULL, sender_main, &s), 0);
  uint64_t held_at = daemon_stat(&d, "ticks.accepted");
  ASSERT(held_at < t.n);
  sleep_ms(500);
  ASSERT_U64_EQ(daemon_stat(&d, "ingest.held"), 1);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.accepted"), held_at); /* held: nothing more */
  ASSERT(daemon_stat(&d, "kafka.sink.queued_bytes") > (1u << 20));
  ASSERT(daemon_stat(&d, "ingest.holds") >= 1);
  mock_all(&m, "up");
  daemon_expect_stat(&d, "ticks.accepted", t.n, 60000);
  pthread_join(s.th, NULL);
  wait_acked(&d, t.n);
  wait_caught_up(&d);
  /* The rest may have held ingest again on its way; the hold is looked at
   * every 50 ms, so it ends within that of the queue's end. */
  daemon_expect_stat(&d, "ingest.held", 0, 5000);
  daemon_expect_stat(&d, "kafka.sink.holding", 0, 5000);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.rejected_by_reason.sink_full"), 0);
  ASSERT_U64_EQ(topic_read(&m, &t, d.dir), t.n);
  expect_seen(&t, 0, t.n, 1);
  close(fd);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  ticks_free(&t);
  kafka_mock_stop(&m);
}

TEST_TIMEOUT(reject_refuses_tcp_ticks_as_sink_full_over_max_queue_bytes_and_accepts_again_after,
             150) {
  kcat_or_skip();
  struct kafka_mock m;
  mock_start(&m);
  struct tks_daemon d;
  char yaml[2048];
  sink_yaml(yaml, sizeof yaml, &m, "    max_queue_bytes: 1MiB\n    on_full: reject\n", NULL);
  daemon_start(&d, yaml);
  struct ticks t;
  ticks_make(&t, 50000);
  mock_all(&m, "down");
  int fd = daemon_connect_ingest(&d);
  /* In steps, until the sink's queue is over 1 MiB and ticks are refused. */
  size_t sent = 0;
  while (sent < 45000 && daemon_stat(&d, "ticks.rejected_by_reason.sink_full") == 0) {
    ticks_send(&t, fd, sent, sent + 1000);
    sent += 1000;
    uint64_t until = now_ms() + WAIT_MS;
    while (daemon_stat(&d, "ticks.accepted") +
                   daemon_stat(&d, "ticks.rejected_by_reason.sink_full") <
               sent &&
           now_ms() < until)
      sleep_ms(10);
    sleep_ms(60); /* the loop's look at the queue */
  }
  uint64_t rejected = daemon_stat(&d, "ticks.rejected_by_reason.sink_full");
  ASSERT(rejected > 0);
  ASSERT_U64_EQ(daemon_stat(&d, "ingest.held"), 0); /* reject does not hold */
  uint64_t accepted = daemon_stat(&d, "ticks.accepted");
  ASSERT_U64_EQ(accepted + rejected, sent);
  mock_all(&m, "up");
  uint64_t until = now_ms() + WAIT_MS;
  while (daemon_stat(&d, "kafka.sink.holding") && now_ms() < until) sleep_ms(20);
  ASSERT_U64_EQ(daemon_stat(&d, "kafka.sink.holding"), 0);
  /* Accepted again. */
  ticks_send(&t, fd, sent, sent + 1000);
  daemon_expect_stat(&d, "ticks.accepted", accepted + 1000, WAIT_MS);
  wait_acked(&d, accepted + 1000);
  wait_caught_up(&d);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.rejected_by_reason.sink_full"), rejected);
  /* On the topic: exactly the accepted ones. */
  ASSERT_U64_EQ(topic_read(&m, &t, d.dir), accepted + 1000);
  size_t on = 0;
  for (size_t i = 0; i < sent + 1000; i++) {
    ASSERT(t.seen[i] <= 1);
    on += t.seen[i];
  }
  ASSERT_U64_EQ(on, accepted + 1000);
  expect_seen(&t, sent, sent + 1000, 1);
  close(fd);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  ticks_free(&t);
  kafka_mock_stop(&m);
}

/* ---- (d) kill -9 ---------------------------------------------------------- */

/* Ticks in the journal after (seg, off): the duplicates' bound. */
static uint64_t ticks_after(const char *dir, uint64_t seg, uint64_t off) {
  char err[400];
  struct tks_journal_tail *tail;
  ASSERT_EQ(tks_journal_tail_open(&tail, dir, seg, off, err, sizeof err), 0);
  const void *p;
  size_t len;
  uint64_t n = 0;
  while (tks_journal_tail_next(tail, UINT64_MAX, UINT64_MAX, &p, &len) == 1) {
    const uint8_t *b = p;
    size_t tl = 0;
    if (tks_oprec_is(p, len)) {
      struct tks_oprec r;
      if (tks_oprec_parse(p, len, &r) == 0 && r.kind == TKS_OPREC_PRODUCER && r.has_ticks)
        b = r.data, tl = r.data_len;
    } else {
      b += 8, tl = len - 8;
    }
    for (size_t at = 0; at < tl;) {
      long k = tks_msgpack_skip(b + at, tl - at, tl - at);
      ASSERT(k > 0);
      at += (size_t)k;
      n++;
    }
  }
  tks_journal_tail_close(tail);
  return n;
}

TEST_TIMEOUT(kill_9_and_a_restart_produce_every_tick_duplicates_only_after_the_saved_position,
             180) {
  kcat_or_skip();
  struct kafka_mock m;
  mock_start_with(&m, "ticks:16");
  struct tks_daemon d;
  char yaml[2048];
  sink_yaml(yaml, sizeof yaml, &m, NULL, NULL);
  daemon_start(&d, yaml);
  struct ticks t;
  ticks_make(&t, 200000);
  char dir[200], path[300];
  journal_dir(&d, dir, sizeof dir);
  snprintf(path, sizeof path, "%s/" TKS_SINKPOS_FILE, dir);
  int fd = daemon_connect_ingest(&d);
  /* A backlog: the brokers down while the ticks come, then up, and the
   * kill while the sink works through it. */
  mock_all(&m, "down");
  ticks_send(&t, fd, 0, t.n);
  daemon_expect_stat(&d, "ticks.accepted", t.n, WAIT_MS);
  char *r = daemon_request(&d, "sync");
  ASSERT(r && strstr(r, "\"ok\":true"));
  free(r);
  mock_all(&m, "up");
  /* The kill once a position past the start is saved (while the sink is
   * still at work, most runs). */
  char *pos = NULL;
  uint64_t seg = 0, off = 0, until = now_ms() + WAIT_MS;
  for (;;) {
    free(pos);
    pos = read_file(path);
    if (pos && tks_sinkpos_parse(pos, strlen(pos), &seg, &off) == 0 &&
        (seg > 1 || off > TKS_JOURNAL_SEGMENT_HEADER))
      break;
    if (now_ms() > until) TEST_FAIL("the sink saved no position past the start");
    sleep_ms(2);
  }
  uint64_t acked_at_kill = daemon_stat(&d, "kafka.sink.acknowledged");
  ASSERT(kill(d.pid, SIGKILL) == 0);
  ASSERT_EQ(daemon_wait_exit(&d, 10000), 128 + SIGKILL);
  close(fd);
  free(pos);
  printf("  %" PRIu64 " of %zu ticks acknowledged shortly before the kill\n", acked_at_kill, t.n);
  /* Every duplicate is one of the ticks after the position saved last. */
  uint64_t bound = ticks_after(dir, seg, off);
  printf("  position at the kill: segment %" PRIu64 ", offset %" PRIu64 ", %" PRIu64
         " ticks after it\n",
         seg, off, bound);
  daemon_spawn(&d, NULL);
  daemon_wait_ready(&d);
  until = now_ms() + 60000;
  for (;;) {
    char *txt = daemon_request(&d, "stats text");
    char st[64] = "";
    ASSERT(txt);
    stats_text_lookup(txt, "kafka.sink.state", st, sizeof st);
    free(txt);
    if (!strcmp(st, "caught_up")) break;
    if (now_ms() > until) TEST_FAIL("the sink did not catch up after the restart");
    sleep_ms(50);
  }
  /* After the restart the sink produced again exactly what was after the
   * saved position (it may have saved a later one than the one read). */
  ASSERT(daemon_stat(&d, "kafka.sink.produced") <= bound);
  size_t msgs = topic_read(&m, &t, d.dir);
  expect_seen(&t, 0, t.n, 0);
  uint64_t dups = msgs - t.n;
  printf("  %zu messages for %zu ticks: %" PRIu64 " duplicates (bound %" PRIu64 ")\n", msgs, t.n,
         dups, bound);
  ASSERT(dups <= bound);
  for (size_t i = 0; i < t.n; i++) ASSERT(t.seen[i] <= 2);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  ticks_free(&t);
  kafka_mock_stop(&m);
}

/* ---- failed deliveries ------------------------------------------------------ */

TEST_TIMEOUT(deliveries_that_time_out_are_counted_failed_and_produced_again_from_the_position,
             150) {
  kcat_or_skip();
  struct kafka_mock m;
  mock_start(&m);
  struct tks_daemon d;
  char yaml[2048];
  sink_yaml(yaml, sizeof yaml, &m, "    properties:\n      message.timeout.ms: \"1500\"\n", NULL);
  daemon_start(&d, yaml);
  struct ticks t;
  ticks_make(&t, 5000);
  int fd = daemon_connect_ingest(&d);
  ticks_send(&t, fd, 0, 1000);
  wait_acked(&d, 1000);
  mock_all(&m, "down");
  ticks_send(&t, fd, 1000, t.n);
  daemon_expect_stat(&d, "ticks.accepted", t.n, WAIT_MS);
  /* Past message.timeout.ms with no broker: the deliveries fail. */
  uint64_t failed = daemon_wait_stat(&d, "kafka.sink.failed", 1, WAIT_MS);
  ASSERT(failed >= 1);
  /* The report counts the failure; the sink's thread rewinds on its next
   * turn, so the rewind is waited for, not read at once. */
  ASSERT(daemon_wait_stat(&d, "kafka.sink.rewinds", 1, WAIT_MS) >= 1);
  sleep_ms(1000);
  mock_all(&m, "up");
  wait_caught_up(&d);
  ASSERT(daemon_stat(&d, "kafka.sink.acknowledged") >= t.n);
  size_t msgs = topic_read(&m, &t, d.dir);
  expect_seen(&t, 0, t.n, 0); /* every one, at least once */
  ASSERT(msgs >= t.n);
  expect_log(&d, "a delivery failed");
  close(fd);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  ticks_free(&t);
  kafka_mock_stop(&m);
}

/* ---- (e) the position file ----------------------------------------------- */

TEST_TIMEOUT(a_new_sink_starts_at_the_journals_end_and_a_corrupt_position_replays_it_all, 150) {
  kcat_or_skip();
  struct kafka_mock m;
  mock_start(&m);
  struct ticks t;
  ticks_make(&t, 400);
  /* Ticks journaled before there was a sink: not produced by a new one. */
  struct tks_daemon d;
  daemon_start(&d, NULL);
  char dir[200], path[300], yaml[2048];
  journal_dir(&d, dir, sizeof dir);
  snprintf(path, sizeof path, "%s/" TKS_SINKPOS_FILE, dir);
  int fd = daemon_connect_ingest(&d);
  ticks_send(&t, fd, 0, 100);
  daemon_expect_stat(&d, "ticks.accepted", 100, WAIT_MS);
  close(fd);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  sink_yaml(yaml, sizeof yaml, &m, NULL, NULL);
  daemon_write_config(&d, NULL, yaml);
  daemon_spawn(&d, NULL);
  daemon_wait_ready(&d);
  expect_log(&d, "a new sink, producing from the journal's end");
  struct stat st;
  ASSERT_EQ(stat(path, &st), 0); /* written at once */
  fd = daemon_connect_ingest(&d);
  ticks_send(&t, fd, 100, 200);
  wait_acked(&d, 100);
  wait_caught_up(&d);
  ASSERT_U64_EQ(daemon_stat(&d, "kafka.sink.produced"), 100);
  close(fd);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  ASSERT_U64_EQ(topic_read(&m, &t, d.dir), 100);
  for (size_t i = 0; i < 100; i++) ASSERT_EQ(t.seen[i], 0);
  expect_seen(&t, 100, 200, 1);
  /* Garbage, then a truncated file: the oldest segment on, everything again. */
  const char *hostile[] = {"\x01\x02garbage\xff not a position", "tickslab-sink-position 1 2 "};
  for (int k = 0; k < 2; k++) {
    write_file(path, hostile[k]);
    daemon_spawn(&d, NULL);
    daemon_wait_ready(&d);
    expect_log(&d, "is unreadable or corrupt: producing from the oldest journal segment");
    wait_caught_up(&d);
    /* The 100 ticks from before the sink are in the checkpoint, their
     * segment deleted: the oldest present holds the sink's 100. */
    ASSERT_U64_EQ(daemon_stat(&d, "kafka.sink.produced"), 100);
    ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  }
  ASSERT_U64_EQ(topic_read(&m, &t, d.dir), 3 * 100);
  for (size_t i = 0; i < 100; i++) ASSERT_EQ(t.seen[i], 0);
  expect_seen(&t, 100, 200, 3);
  /* A position inside a frame (a right CRC, a wrong offset): the segment's start. */
  char line[TKS_SINKPOS_MAX];
  uint64_t oldest;
  ASSERT_EQ(tks_journal_oldest(dir, &oldest), 0);
  size_t n = tks_sinkpos_format(line, oldest, TKS_JOURNAL_SEGMENT_HEADER + 3);
  line[n] = '\0';
  write_file(path, line);
  daemon_spawn(&d, NULL);
  daemon_wait_ready(&d);
  expect_log(&d, "is not where a frame ends");
  wait_caught_up(&d);
  ASSERT(daemon_stat(&d, "kafka.sink.produced") > 0);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  ticks_free(&t);
  kafka_mock_stop(&m);
}

/* ---- (f) refusals ----------------------------------------------------------- */

/* yaml: the config's sections; journal_off: with journal.enabled false
 * (its dir still the temp dir's). */
static void expect_refused(const char *yaml, bool journal_off, const char *needle) {
  struct tks_daemon d;
  daemon_prepare(&d, NULL, yaml);
  if (journal_off) {
    char y[4000];
    snprintf(y, sizeof y, "journal:\n  enabled: false\n  dir: \"%s/journal\"\n%s", d.dir, yaml);
    daemon_write_config(&d, NULL, y);
  }
  daemon_spawn(&d, NULL);
  int code = daemon_wait_exit(&d, HARNESS_READY_MS);
  if (code != 1) TEST_FAIL("exit %d, want 1 (refused): %s", code, yaml);
  expect_log(&d, needle);
}

TEST(configs_the_sink_cannot_run_with_are_refused_at_start_with_the_reason) {
  struct kafka_mock m;
  mock_start(&m);
  char yaml[3000];
  snprintf(yaml, sizeof yaml, "kafka:\n  sink:\n    brokers: \"%s\"\n", m.bootstraps);
  expect_refused(yaml, true, "kafka.sink needs the journal (journal.enabled: true)");
  sink_yaml(yaml, sizeof yaml, &m, "    properties:\n      no.such.property: \"1\"\n", NULL);
  expect_refused(yaml, false, "kafka.sink: kafka.sink.properties: No such configuration property");
  sink_yaml(yaml, sizeof yaml, &m, "    properties:\n      enable.idempotence: \"false\"\n", NULL);
  expect_refused(yaml, false, "enable.idempotence must be true");
  sink_yaml(yaml, sizeof yaml, &m, "    properties:\n      acks: \"1\"\n", NULL);
  expect_refused(yaml, false, "acks must be all");
  snprintf(
      yaml, sizeof yaml,
      "kafka:\n  sink:\n    brokers: \"%s\"\n    topic: ticks\n  source:\n    brokers: \"%s\"\n"
      "    topic: ticks\n",
      m.bootstraps, m.bootstraps);
  expect_refused(yaml, false, "a loop");
  kafka_mock_stop(&m);
}

TEST_MAIN()
