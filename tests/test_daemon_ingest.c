/*
 * Black-box tests of the ingest port: a client written directly against
 * msgpack-c (msgpack_sbuffer + msgpack_packer, not our codec) streams ticks
 * to the real tickslabd over loopback, and the counters in `stats text`
 * must match exactly what was sent: accepted, rejected by reason, closed
 * connections.  Hostile input (garbage, huge length prefixes, deep nesting,
 * random bytes) must be refused, counted, and never take the daemon down.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "harness.h"
#include "util.h"
#include "test.h"
#include "wire.h"

#define TS0 INT64_C(1700000000000000000) /* 2023-11-14, in ns */

/* ---- a raw msgpack-c client: tests/wire.h ---- */

/* {"ticker":..,"ts":..,"price":..,"volume":..[,"flags":..]} */
static void pack_map_tick(msgpack_packer *pk, const char *ticker, int64_t ts, double price,
                          int64_t volume, const char *flags) {
  msgpack_pack_map(pk, flags ? 5 : 4);
  pk_str(pk, "ticker");
  pk_str(pk, ticker);
  pk_str(pk, "ts");
  msgpack_pack_int64(pk, ts);
  pk_str(pk, "price");
  msgpack_pack_double(pk, price);
  pk_str(pk, "volume");
  msgpack_pack_int64(pk, volume);
  if (flags) {
    pk_str(pk, "flags");
    pk_str(pk, flags);
  }
}

/* [ts, ticker, price, volume, flags]; ts < 0 or flags NULL: nil */
static void pack_array_tick(msgpack_packer *pk, int64_t ts, const char *ticker, double price,
                            int64_t volume, const char *flags) {
  msgpack_pack_array(pk, 5);
  if (ts < 0)
    msgpack_pack_nil(pk);
  else
    msgpack_pack_int64(pk, ts);
  pk_str(pk, ticker);
  msgpack_pack_double(pk, price);
  msgpack_pack_int64(pk, volume);
  if (flags)
    pk_str(pk, flags);
  else
    msgpack_pack_nil(pk);
}

static void send_good_tick(int fd, const char *ticker, int64_t ts) {
  struct wire w;
  wire_init(&w);
  pack_map_tick(&w.pk, ticker, ts, 101.25, 7, "R");
  wire_send(fd, &w);
  wire_finish(&w);
}

static uint64_t rng_state;
static uint64_t rng(void) { /* xorshift64*: seeded, so a failure replays */
  uint64_t x = rng_state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  rng_state = x;
  return x * UINT64_C(0x2545F4914F6CDD1D);
}

static void wait_stat_at_most(const struct tks_daemon *d, const char *path, uint64_t want,
                              int timeout_ms) {
  uint64_t deadline = now_ms() + (uint64_t)timeout_ms, v;
  while ((v = daemon_stat(d, path)) > want) {
    if (now_ms() > deadline)
      TEST_FAIL("stat %s: still %llu after %d ms, want <= %llu", path, (unsigned long long)v,
                timeout_ms, (unsigned long long)want);
    sleep_ms(5);
  }
}

/* ticks.rejected is the sum of its reasons; every protocol error closed
 * one connection. */
static void expect_counters_consistent(const struct tks_daemon *d) {
  static const char *const reasons[] = {"unknown_field", "missing_field", "bad_type", "bad_value",
                                        "duplicate_field", "too_many_fields", "too_many_symbols",
                                        "store_full", "journal_error", "bad_key", "sealing",
                                        "sink_full",
                                        /* the protocol errors, from index 12 */
                                        "too_large", "too_deep", "malformed", "not_a_tick"};
  char *text = daemon_request(d, "stats text");
  ASSERT(text);
  uint64_t sum = 0, fatal = 0;
  for (size_t i = 0; i < TKS_ARRAY_SIZE(reasons); i++) {
    char path[64], v[32];
    snprintf(path, sizeof path, "ticks.rejected_by_reason.%s", reasons[i]);
    if (stats_text_lookup(text, path, v, sizeof v) < 0) TEST_FAIL("no %s in stats text", path);
    uint64_t n = strtoull(v, NULL, 10);
    sum += n;
    if (i >= 12) fatal += n;
  }
  char v[32];
  ASSERT_EQ(stats_text_lookup(text, "ticks.rejected", v, sizeof v), 0);
  ASSERT_U64_EQ(strtoull(v, NULL, 10), sum);
  ASSERT_EQ(stats_text_lookup(text, "connections.closed_on_error", v, sizeof v), 0);
  ASSERT_U64_EQ(strtoull(v, NULL, 10), fatal);
  free(text);
}

static void stop_cleanly(struct tks_daemon *d) {
  int code = daemon_stop(d, SIGTERM);
  daemon_cleanup(d);
  ASSERT_EQ(code, 0);
}

/* ---- well-formed ticks ---- */

TEST(map_ticks_are_accepted_and_stored_exactly) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  int fd = daemon_connect_ingest(&d);
  struct wire w;
  wire_init(&w);
  for (int i = 0; i < 1000; i++) {
    char sym[16];
    snprintf(sym, sizeof sym, "SYM%d", i % 10);
    pack_map_tick(&w.pk, sym, TS0 + i, 100.0 + i * 0.01, 100 + i, i % 2 ? "R" : NULL);
  }
  wire_send(fd, &w);
  daemon_expect_stat(&d, "ticks.accepted", 1000, 10000);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), 1000);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.rejected"), 0);
  ASSERT_U64_EQ(daemon_stat(&d, "symbols.count"), 10);
  ASSERT_U64_EQ(daemon_stat(&d, "ingest.bytes_received"), w.sb.size);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.current"), 1);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.total"), 1);
  close(fd);
  wait_stat_at_most(&d, "connections.current", 0, 5000);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.closed_on_error"), 0);
  wire_finish(&w);
  stop_cleanly(&d);
}

TEST(array_ticks_in_slot_order_are_accepted) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  int fd = daemon_connect_ingest(&d);
  struct wire w;
  wire_init(&w);
  for (int i = 0; i < 500; i++) /* every other tick: nil ts and nil flags */
    pack_array_tick(&w.pk, i % 2 ? TS0 + i : -1, i % 3 ? "AAPL" : "MSFT", 150.05, i,
                    i % 2 ? "R" : NULL);
  /* an integer price is a price */
  msgpack_pack_array(&w.pk, 5);
  msgpack_pack_int64(&w.pk, TS0 + 1000);
  pk_str(&w.pk, "AAPL");
  msgpack_pack_int64(&w.pk, 150);
  msgpack_pack_int64(&w.pk, 1);
  pk_str(&w.pk, "R");
  wire_send(fd, &w);
  daemon_expect_stat(&d, "ticks.accepted", 501, 10000);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), 501);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.rejected"), 0);
  ASSERT_U64_EQ(daemon_stat(&d, "symbols.count"), 2);
  close(fd);
  wire_finish(&w);
  stop_cleanly(&d);
}

TEST(ticks_sent_just_before_close_are_all_accepted) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  struct wire w;
  wire_init(&w);
  for (int i = 0; i < 1000; i++) pack_map_tick(&w.pk, "AAPL", TS0 + i, 1.0, 1, "R");
  for (int round = 1; round <= 5; round++) {
    int fd = daemon_connect_ingest(&d);
    wire_send(fd, &w);
    close(fd);
  }
  daemon_expect_stat(&d, "ticks.accepted", 5000, 10000);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.total"), 5);
  wire_finish(&w);
  stop_cleanly(&d);
}

TEST_TIMEOUT(split_message_at_every_byte_is_decoded_once, 120) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  int fd = daemon_connect_ingest(&d);
  struct wire m, a;
  wire_init(&m);
  wire_init(&a);
  pack_map_tick(&m.pk, "AAPL", TS0, 150.05, 100, "R");
  pack_array_tick(&a.pk, TS0, "MSFT", 410.5, 200, "X");
  const struct wire *msgs[] = {&m, &a};
  uint64_t received = 0, splits = 0;
  for (int i = 0; i < 2; i++) {
    const char *p = msgs[i]->sb.data;
    size_t len = msgs[i]->sb.size;
    for (size_t k = 1; k < len; k++) {
      if (send_all(fd, p, k) < 0) TEST_FAIL("send: %s", strerror(errno));
      /* make sure the daemon has read the first part on its own */
      uint64_t got = daemon_wait_stat(&d, "ingest.bytes_received", received + k, 2000);
      if (got != received + k)
        TEST_FAIL("split at %zu of %zu: bytes_received %llu, want %llu", k, len,
                  (unsigned long long)got, (unsigned long long)(received + k));
      if (send_all(fd, p + k, len - k) < 0) TEST_FAIL("send: %s", strerror(errno));
      received += len;
      splits++;
    }
  }
  daemon_expect_stat(&d, "ticks.accepted", splits, 10000);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.rejected"), 0);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.closed_on_error"), 0);
  close(fd);
  wire_finish(&m);
  wire_finish(&a);
  stop_cleanly(&d);
}

TEST_TIMEOUT(ticks_sent_one_byte_per_write_are_all_accepted, 60) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  int fd = daemon_connect_ingest(&d);
  struct wire w;
  wire_init(&w);
  for (int i = 0; i < 200; i++) {
    if (i % 2)
      pack_map_tick(&w.pk, "AAPL", TS0 + i, 150.0 + i, i, "R");
    else
      pack_array_tick(&w.pk, TS0 + i, "MSFT", 410.0 + i, i, NULL);
  }
  for (size_t i = 0; i < w.sb.size; i++)
    if (send_all(fd, w.sb.data + i, 1) < 0) TEST_FAIL("send byte %zu: %s", i, strerror(errno));
  daemon_expect_stat(&d, "ticks.accepted", 200, 10000);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.rejected"), 0);
  close(fd);
  wire_finish(&w);
  stop_cleanly(&d);
}

/* ---- per-tick rejections: counted, and the stream goes on ---- */

/* Sends good tick, the `count` bad ticks in bad, good tick on one
 * connection; checks the counters, then that the connection still works. */
static void expect_rejections(const struct wire *bad, const char *reason, uint64_t count) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  int fd = daemon_connect_ingest(&d);
  struct wire w;
  wire_init(&w);
  pack_map_tick(&w.pk, "GOOD", TS0, 1.5, 10, "R");
  wire_raw(&w, bad->sb.data, bad->sb.size);
  pack_map_tick(&w.pk, "GOOD", TS0 + 1, 1.5, 10, "R");
  wire_send(fd, &w);
  daemon_expect_stat(&d, "ticks.accepted", 2, 10000);
  char path[96];
  snprintf(path, sizeof path, "ticks.rejected_by_reason.%s", reason);
  daemon_expect_stat(&d, path, count, 5000);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.rejected"), count);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), 2);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.closed_on_error"), 0);
  ASSERT_U64_EQ(daemon_stat(&d, "symbols.count"), 1); /* a rejected tick interns nothing */
  send_good_tick(fd, "GOOD", TS0 + 2);
  daemon_expect_stat(&d, "ticks.accepted", 3, 10000);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.current"), 1);
  close(fd);
  wire_finish(&w);
  stop_cleanly(&d);
}

TEST(unknown_field_is_rejected_and_the_stream_goes_on) {
  struct wire b;
  wire_init(&b);
  msgpack_pack_map(&b.pk, 4);
  pk_str(&b.pk, "ticker");
  pk_str(&b.pk, "BAD1");
  pk_str(&b.pk, "price");
  msgpack_pack_double(&b.pk, 1.0);
  pk_str(&b.pk, "volume");
  msgpack_pack_int64(&b.pk, 1);
  pk_str(&b.pk, "venue");
  pk_str(&b.pk, "XNAS");
  expect_rejections(&b, "unknown_field", 1);
  wire_finish(&b);
}

TEST(missing_field_is_rejected_and_the_stream_goes_on) {
  struct wire b;
  wire_init(&b);
  const char *fields[] = {"ticker", "price", "volume"};
  for (int skip = 0; skip < 3; skip++) { /* each required field missing once */
    msgpack_pack_map(&b.pk, 3);
    pk_str(&b.pk, "ts");
    msgpack_pack_int64(&b.pk, TS0);
    for (int f = 0; f < 3; f++) {
      if (f == skip) continue;
      pk_str(&b.pk, fields[f]);
      if (f == 0)
        pk_str(&b.pk, "BAD1");
      else
        msgpack_pack_int64(&b.pk, 5);
    }
  }
  msgpack_pack_array(&b.pk, 3); /* array form without volume and flags */
  msgpack_pack_int64(&b.pk, TS0);
  pk_str(&b.pk, "BAD2");
  msgpack_pack_double(&b.pk, 1.0);
  msgpack_pack_array(&b.pk, 4); /* the array form has exactly 5 slots */
  msgpack_pack_int64(&b.pk, TS0);
  pk_str(&b.pk, "BAD3");
  msgpack_pack_double(&b.pk, 1.0);
  msgpack_pack_int64(&b.pk, 1);
  expect_rejections(&b, "missing_field", 5);
  wire_finish(&b);
}

TEST(bad_type_is_rejected_and_the_stream_goes_on) {
  struct wire b;
  wire_init(&b);
  for (int which = 0; which < 6; which++) {
    msgpack_pack_map(&b.pk, 4);
    pk_str(&b.pk, "ticker");
    if (which == 0)
      msgpack_pack_int64(&b.pk, 42); /* ticker an int */
    else
      pk_str(&b.pk, "BAD1");
    pk_str(&b.pk, "price");
    if (which == 1)
      pk_str(&b.pk, "150.05"); /* price a string */
    else
      msgpack_pack_double(&b.pk, 1.0);
    pk_str(&b.pk, "volume");
    if (which == 2)
      msgpack_pack_double(&b.pk, 1.5); /* volume a float */
    else
      msgpack_pack_int64(&b.pk, 1);
    switch (which) {
    case 3: /* ts a string */
      pk_str(&b.pk, "ts");
      pk_str(&b.pk, "yesterday");
      break;
    case 4: /* flags an int */
      pk_str(&b.pk, "flags");
      msgpack_pack_int64(&b.pk, 3);
      break;
    default: /* a key that is not a string */
      msgpack_pack_int64(&b.pk, 7);
      pk_str(&b.pk, "x");
      break;
    }
  }
  expect_rejections(&b, "bad_type", 6);
  wire_finish(&b);
}

TEST(bad_value_is_rejected_and_the_stream_goes_on) {
  struct wire b;
  wire_init(&b);
  pack_map_tick(&b.pk, "", TS0, 1.0, 1, "R"); /* empty ticker */
  pack_map_tick(&b.pk, "BAD1", TS0, NAN, 1, "R");
  pack_array_tick(&b.pk, TS0, "BAD2", NAN, 1, NULL);
  msgpack_pack_map(&b.pk, 3); /* a volume no int64 can hold */
  pk_str(&b.pk, "ticker");
  pk_str(&b.pk, "BAD3");
  pk_str(&b.pk, "price");
  msgpack_pack_double(&b.pk, 1.0);
  pk_str(&b.pk, "volume");
  msgpack_pack_uint64(&b.pk, UINT64_MAX);
  expect_rejections(&b, "bad_value", 4);
  wire_finish(&b);
}

TEST(duplicate_field_is_rejected_and_the_stream_goes_on) {
  struct wire b;
  wire_init(&b);
  msgpack_pack_map(&b.pk, 4);
  pk_str(&b.pk, "ticker");
  pk_str(&b.pk, "BAD1");
  pk_str(&b.pk, "price");
  msgpack_pack_double(&b.pk, 1.0);
  pk_str(&b.pk, "price");
  msgpack_pack_double(&b.pk, 2.0);
  pk_str(&b.pk, "volume");
  msgpack_pack_int64(&b.pk, 1);
  expect_rejections(&b, "duplicate_field", 1);
  wire_finish(&b);
}

TEST(nested_map_or_array_value_is_rejected_as_bad_type) {
  struct wire b;
  wire_init(&b);
  msgpack_pack_map(&b.pk, 3);
  pk_str(&b.pk, "ticker");
  pk_str(&b.pk, "BAD1");
  pk_str(&b.pk, "price");
  msgpack_pack_map(&b.pk, 1); /* {"a": 1} */
  pk_str(&b.pk, "a");
  msgpack_pack_int64(&b.pk, 1);
  pk_str(&b.pk, "volume");
  msgpack_pack_int64(&b.pk, 1);
  msgpack_pack_map(&b.pk, 4);
  pk_str(&b.pk, "ticker");
  pk_str(&b.pk, "BAD2");
  pk_str(&b.pk, "price");
  msgpack_pack_double(&b.pk, 1.0);
  pk_str(&b.pk, "volume");
  msgpack_pack_int64(&b.pk, 1);
  pk_str(&b.pk, "flags");
  msgpack_pack_array(&b.pk, 2); /* [1, 2] */
  msgpack_pack_int64(&b.pk, 1);
  msgpack_pack_int64(&b.pk, 2);
  expect_rejections(&b, "bad_type", 2);
  wire_finish(&b);
}

TEST(hundreds_of_fields_in_one_map_are_too_many_fields) {
  struct wire b;
  wire_init(&b);
  msgpack_pack_map(&b.pk, 300);
  pk_str(&b.pk, "ticker");
  pk_str(&b.pk, "BAD1");
  pk_str(&b.pk, "price");
  msgpack_pack_double(&b.pk, 1.0);
  pk_str(&b.pk, "volume");
  msgpack_pack_int64(&b.pk, 1);
  for (int i = 0; i < 297; i++) {
    char key[16];
    snprintf(key, sizeof key, "x%03d", i);
    pk_str(&b.pk, key);
    msgpack_pack_int64(&b.pk, i);
  }
  msgpack_pack_array(&b.pk, 6); /* six slots of five */
  msgpack_pack_int64(&b.pk, TS0);
  pk_str(&b.pk, "BAD2");
  msgpack_pack_double(&b.pk, 1.0);
  msgpack_pack_int64(&b.pk, 1);
  pk_str(&b.pk, "R");
  msgpack_pack_int64(&b.pk, 6);
  expect_rejections(&b, "too_many_fields", 2);
  wire_finish(&b);
}

/* ---- protocol errors: only the offending connection is closed ---- */

TEST(garbage_bytes_close_only_the_offending_connection) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  int good = daemon_connect_ingest(&d);
  int bad = daemon_connect_ingest(&d);
  send_good_tick(good, "GOOD", TS0);
  daemon_expect_stat(&d, "ticks.accepted", 1, 10000);
  struct wire w; /* three ticks, then a byte that is never msgpack */
  wire_init(&w);
  for (int i = 0; i < 3; i++) pack_map_tick(&w.pk, "EARLY", TS0 + i, 2.0, 1, NULL);
  wire_raw(&w, "\xc1\xc1garbage", 9);
  wire_send(bad, &w);
  ASSERT(wait_closed(bad, 5000));
  daemon_expect_stat(&d, "ticks.accepted", 4, 10000);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.rejected_by_reason.malformed"), 1);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.closed_on_error"), 1);
  send_good_tick(good, "GOOD", TS0 + 1); /* the other connection goes on */
  daemon_expect_stat(&d, "ticks.accepted", 5, 10000);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.current"), 1);
  char *log = daemon_log(&d);
  char peer[32];
  snprintf(peer, sizeof peer, "%d", local_port(bad));
  ASSERT_CONTAINS(log, "malformed");
  ASSERT_CONTAINS(log, peer);
  free(log);
  close(bad);
  close(good);
  wire_finish(&w);
  stop_cleanly(&d);
}

TEST(plain_text_is_not_a_tick_and_closes_the_connection) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  int fd = daemon_connect_ingest(&d);
  const char *text = "hello, is this the tick port?\n";
  ASSERT_EQ(send_all(fd, text, strlen(text)), 0);
  ASSERT(wait_closed(fd, 5000));
  daemon_expect_stat(&d, "ticks.rejected_by_reason.not_a_tick", 1, 5000);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.rejected"), 1);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.closed_on_error"), 1);
  close(fd);
  stop_cleanly(&d);
}

TEST(message_over_max_message_bytes_closes_with_too_large) {
  struct tks_daemon d;
  daemon_start_with(&d, "  max_message_bytes: 1024\n", NULL);
  int fd = daemon_connect_ingest(&d);
  char flags[2001];
  memset(flags, 'F', 2000);
  flags[2000] = '\0';
  struct wire w;
  wire_init(&w);
  pack_map_tick(&w.pk, "OK", TS0, 1.0, 1, "R");
  pack_map_tick(&w.pk, "BIG", TS0 + 1, 1.0, 1, flags);
  wire_send(fd, &w);
  ASSERT(wait_closed(fd, 5000));
  daemon_expect_stat(&d, "ticks.rejected_by_reason.too_large", 1, 5000);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.accepted"), 1);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.closed_on_error"), 1);
  close(fd);
  fd = daemon_connect_ingest(&d); /* the daemon goes on */
  send_good_tick(fd, "OK", TS0 + 2);
  daemon_expect_stat(&d, "ticks.accepted", 2, 10000);
  close(fd);
  wire_finish(&w);
  stop_cleanly(&d);
}

TEST(huge_length_prefixes_are_refused_before_allocating) {
  static const struct {
    const char *what;
    const char *bytes;
    size_t len;
  } cases[] = {
#define BYTES(s) s, sizeof(s) - 1
      {"array32 of 2^32-1", BYTES("\xdd\xff\xff\xff\xff")},
      {"map32 of 2^32-1", BYTES("\xdf\xff\xff\xff\xff")},
      {"str32 ticker of 2 GiB", BYTES("\x81\xa6ticker\xdb\x7f\xff\xff\xff")},
      {"str32 key of 2 GiB", BYTES("\x81\xdb\x7f\xff\xff\xff")},
      {"bin32 price of 4 GiB", BYTES("\x81\xa5price\xc6\xff\xff\xff\xff")},
      {"ext32 flags of 4 GiB", BYTES("\x81\xa5" "flags\xc9\xff\xff\xff\xff\x01")},
      {"array16 holding an array32", BYTES("\xdc\x00\x05\xdd\xff\xff\xff\xff")},
#undef BYTES
  };
  struct tks_daemon d;
  daemon_start(&d, NULL);
  uint64_t rss0 = daemon_stat(&d, "memory.rss_bytes");
  for (size_t i = 0; i < TKS_ARRAY_SIZE(cases); i++) {
    int fd = daemon_connect_ingest(&d);
    ASSERT_EQ(send_all(fd, cases[i].bytes, cases[i].len), 0);
    if (!wait_closed(fd, 3000))
      TEST_FAIL("%s: connection still open after 3 s (waiting for the body?)", cases[i].what);
    uint64_t n = daemon_wait_stat(&d, "ticks.rejected_by_reason.too_large", i + 1, 5000);
    if (n != i + 1)
      TEST_FAIL("%s: too_large is %llu, want %zu", cases[i].what, (unsigned long long)n, i + 1);
    close(fd);
  }
  ASSERT_U64_EQ(daemon_stat(&d, "connections.closed_on_error"), TKS_ARRAY_SIZE(cases));
  uint64_t rss1 = daemon_stat(&d, "memory.rss_bytes");
  if (rss1 > rss0 + 8 * 1024 * 1024)
    TEST_FAIL("rss grew from %llu to %llu bytes", (unsigned long long)rss0,
              (unsigned long long)rss1);
  int fd = daemon_connect_ingest(&d);
  send_good_tick(fd, "OK", TS0);
  daemon_expect_stat(&d, "ticks.accepted", 1, 10000);
  close(fd);
  stop_cleanly(&d);
}

TEST(deep_nesting_is_refused_without_a_crash) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  for (int form = 0; form < 2; form++) {
    struct wire w;
    wire_init(&w);
    if (form == 0) { /* {"ticker":..,"price":..,"volume":..,"flags":[[[...1]]]} */
      msgpack_pack_map(&w.pk, 4);
      pk_str(&w.pk, "ticker");
      pk_str(&w.pk, "DEEP");
      pk_str(&w.pk, "price");
      msgpack_pack_double(&w.pk, 1.0);
      pk_str(&w.pk, "volume");
      msgpack_pack_int64(&w.pk, 1);
      pk_str(&w.pk, "flags");
    } else { /* [ts, ticker, price, volume, [[[...1]]]] */
      msgpack_pack_array(&w.pk, 5);
      msgpack_pack_int64(&w.pk, TS0);
      pk_str(&w.pk, "DEEP");
      msgpack_pack_double(&w.pk, 1.0);
      msgpack_pack_int64(&w.pk, 1);
    }
    for (int i = 0; i < 100; i++) msgpack_pack_array(&w.pk, 1);
    msgpack_pack_int64(&w.pk, 1);
    int fd = daemon_connect_ingest(&d);
    wire_send(fd, &w);
    uint64_t want = (uint64_t)form + 1, deadline = now_ms() + 5000, got;
    while ((got = daemon_stat(&d, "ticks.rejected_by_reason.too_deep") +
                  daemon_stat(&d, "ticks.rejected_by_reason.bad_type")) < want &&
           now_ms() < deadline)
      sleep_ms(5);
    ASSERT_U64_EQ(got, want);
    ASSERT_U64_EQ(daemon_stat(&d, "ticks.rejected"), want);
    ASSERT_U64_EQ(daemon_stat(&d, "ticks.accepted"), 0);
    close(fd);
    wire_finish(&w);
  }
  int fd = daemon_connect_ingest(&d);
  send_good_tick(fd, "OK", TS0);
  daemon_expect_stat(&d, "ticks.accepted", 1, 10000);
  close(fd);
  stop_cleanly(&d);
}

TEST_TIMEOUT(random_bytes_on_200_connections_leave_the_daemon_serving, 120) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  rng_state = UINT64_C(0x71c5ab) | 1;
  uint8_t junk[4096];
  for (int c = 0; c < 200; c++) {
    for (size_t i = 0; i < sizeof junk; i += 8) {
      uint64_t r = rng();
      memcpy(junk + i, &r, 8);
    }
    int fd = daemon_connect_ingest(&d);
    (void)send_all(fd, junk, sizeof junk); /* the daemon may hang up early */
    close(fd);
  }
  daemon_wait_stat(&d, "connections.total", 200, 20000);
  wait_stat_at_most(&d, "connections.current", 0, 20000);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.total"), 200);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.accepted"), 0);
  ASSERT(daemon_stat(&d, "connections.closed_on_error") > 100); /* random bytes are rarely a tick */
  expect_counters_consistent(&d);
  int fd = daemon_connect_ingest(&d);
  for (int i = 0; i < 10; i++) send_good_tick(fd, "OK", TS0 + i);
  daemon_expect_stat(&d, "ticks.accepted", 10, 10000);
  close(fd);
  stop_cleanly(&d);
}

TEST_TIMEOUT(mutated_ticks_on_200_connections_leave_the_daemon_serving, 120) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  rng_state = UINT64_C(0x5eed0f7e11) | 1;
  struct wire w;
  wire_init(&w);
  for (int i = 0; i < 50; i++) {
    if (i % 2)
      pack_map_tick(&w.pk, "MUT", TS0 + i, 1.0 + i, i, "R");
    else
      pack_array_tick(&w.pk, TS0 + i, "MUT", 1.0 + i, i, "R");
  }
  uint8_t *buf = malloc(w.sb.size);
  ASSERT(buf);
  for (int c = 0; c < 200; c++) {
    memcpy(buf, w.sb.data, w.sb.size);
    for (int flips = 0; flips < 8; flips++) buf[rng() % w.sb.size] = (uint8_t)rng();
    int fd = daemon_connect_ingest(&d);
    (void)send_all(fd, buf, w.sb.size);
    close(fd);
  }
  daemon_wait_stat(&d, "connections.total", 200, 20000);
  wait_stat_at_most(&d, "connections.current", 0, 20000);
  uint64_t accepted = daemon_stat(&d, "ticks.accepted");
  ASSERT(accepted <= 200 * 50);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), accepted);
  expect_counters_consistent(&d);
  int fd = daemon_connect_ingest(&d);
  for (int i = 0; i < 10; i++) send_good_tick(fd, "OK", TS0 + 100 + i);
  daemon_expect_stat(&d, "ticks.accepted", accepted + 10, 10000);
  close(fd);
  free(buf);
  wire_finish(&w);
  stop_cleanly(&d);
}

TEST(tick_without_ts_is_stamped_with_the_receive_time) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  int fd = daemon_connect_ingest(&d);
  struct wire w;
  wire_init(&w);
  const int64_t y2100 = INT64_C(4102444800000000000), y2000 = INT64_C(946684800000000000);
  /* After a tick from 2100, one stamped now is late; after 2000, it is not. */
  pack_map_tick(&w.pk, "FUT", y2100, 1.0, 1, NULL);
  msgpack_pack_map(&w.pk, 3);
  pk_str(&w.pk, "ticker");
  pk_str(&w.pk, "FUT");
  pk_str(&w.pk, "price");
  msgpack_pack_double(&w.pk, 1.0);
  pk_str(&w.pk, "volume");
  msgpack_pack_int64(&w.pk, 1);
  pack_map_tick(&w.pk, "PAST", y2000, 1.0, 1, NULL);
  pack_array_tick(&w.pk, -1, "PAST", 1.0, 1, NULL);
  pack_array_tick(&w.pk, y2100, "ARR", 1.0, 1, NULL);
  pack_array_tick(&w.pk, -1, "ARR", 1.0, 1, NULL);
  wire_send(fd, &w);
  daemon_expect_stat(&d, "ticks.accepted", 6, 10000);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.late"), 2);
  close(fd);
  wire_finish(&w);
  stop_cleanly(&d);
}

/* ---- many clients, limits, ordering ---- */

#define NCLIENTS 50
#define PER_CLIENT 2000

TEST_TIMEOUT(fifty_concurrent_clients_of_2000_ticks_are_all_accepted, 180) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  struct wire *w = calloc(NCLIENTS, sizeof *w);
  int fds[NCLIENTS];
  size_t off[NCLIENTS] = {0};
  ASSERT(w);
  for (int c = 0; c < NCLIENTS; c++) {
    char sym[16];
    snprintf(sym, sizeof sym, "C%02d", c);
    wire_init(&w[c]);
    for (int i = 0; i < PER_CLIENT; i++)
      pack_map_tick(&w[c].pk, sym, TS0 + i, 10.0 + i * 0.5, i + 1, i % 2 ? "R" : NULL);
    fds[c] = daemon_connect_ingest(&d);
    fcntl(fds[c], F_SETFL, fcntl(fds[c], F_GETFL) | O_NONBLOCK);
  }
  /* All clients write at once, as fast as the daemon reads. */
  uint64_t deadline = now_ms() + 60000;
  for (int left = NCLIENTS; left > 0;) {
    struct pollfd pfd[NCLIENTS];
    int idx[NCLIENTS], n = 0;
    for (int c = 0; c < NCLIENTS; c++)
      if (off[c] < w[c].sb.size) {
        pfd[n] = (struct pollfd){.fd = fds[c], .events = POLLOUT};
        idx[n++] = c;
      }
    if (now_ms() > deadline) TEST_FAIL("%d clients still sending after 60 s", left);
    if (poll(pfd, (nfds_t)n, 1000) < 0 && errno != EINTR) TEST_FAIL("poll: %s", strerror(errno));
    for (int k = 0; k < n; k++) {
      if (!pfd[k].revents) continue;
      int c = idx[k];
      ssize_t r = send(fds[c], w[c].sb.data + off[c], w[c].sb.size - off[c], MSG_NOSIGNAL);
      if (r < 0 && errno != EAGAIN && errno != EINTR)
        TEST_FAIL("client %d: send: %s", c, strerror(errno));
      if (r > 0 && (off[c] += (size_t)r) == w[c].sb.size) left--;
    }
  }
  daemon_expect_stat(&d, "ticks.accepted", NCLIENTS * PER_CLIENT, 60000);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), NCLIENTS * PER_CLIENT);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.rejected"), 0);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.late"), 0);
  ASSERT_U64_EQ(daemon_stat(&d, "symbols.count"), NCLIENTS);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.total"), NCLIENTS);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.current"), NCLIENTS);
  for (int c = 0; c < NCLIENTS; c++) {
    close(fds[c]);
    wire_finish(&w[c]);
  }
  free(w);
  wait_stat_at_most(&d, "connections.current", 0, 10000);
  stop_cleanly(&d);
}

TEST(connection_over_max_connections_is_closed_and_counted) {
  struct tks_daemon d;
  daemon_start_with(&d, "  max_connections: 4\n", NULL);
  int fds[4];
  for (int i = 0; i < 4; i++) {
    fds[i] = daemon_connect_ingest(&d);
    send_good_tick(fds[i], "OK", TS0 + i);
  }
  daemon_expect_stat(&d, "ticks.accepted", 4, 10000);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.current"), 4);
  int fifth = daemon_connect_ingest(&d);
  ASSERT(wait_closed(fifth, 5000));
  close(fifth);
  daemon_expect_stat(&d, "connections.refused", 1, 5000);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.current"), 4);
  for (int i = 0; i < 4; i++) send_good_tick(fds[i], "OK", TS0 + 10 + i);
  daemon_expect_stat(&d, "ticks.accepted", 8, 10000);
  close(fds[0]); /* a freed place can be taken again */
  wait_stat_at_most(&d, "connections.current", 3, 5000);
  fds[0] = daemon_connect_ingest(&d);
  send_good_tick(fds[0], "OK", TS0 + 20);
  daemon_expect_stat(&d, "ticks.accepted", 9, 10000);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.refused"), 1);
  for (int i = 0; i < 4; i++) close(fds[i]);
  stop_cleanly(&d);
}

TEST(tick_older_than_the_last_of_its_symbol_counts_as_late) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  int fd = daemon_connect_ingest(&d);
  struct wire w;
  wire_init(&w);
  pack_map_tick(&w.pk, "AAPL", TS0 + 2000, 1.0, 1, NULL);
  pack_map_tick(&w.pk, "AAPL", TS0 + 1000, 1.0, 1, NULL); /* late */
  pack_map_tick(&w.pk, "MSFT", TS0 + 500, 1.0, 1, NULL);  /* another symbol: not late */
  pack_map_tick(&w.pk, "AAPL", TS0 + 3000, 1.0, 1, NULL);
  pack_map_tick(&w.pk, "MSFT", TS0 + 500, 1.0, 1, NULL); /* equal: not older */
  wire_send(fd, &w);
  daemon_expect_stat(&d, "ticks.accepted", 5, 10000);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.late"), 1);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.rejected"), 0);
  close(fd);
  wire_finish(&w);
  stop_cleanly(&d);
}

TEST(ingest_listens_on_ipv6_loopback) {
  int probe = socket(AF_INET6, SOCK_STREAM, 0);
  struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  if (probe < 0 || bind(probe, (struct sockaddr *)&sa, sizeof sa) < 0)
    TEST_SKIP("no IPv6 loopback here (binding [::1]: %s)", strerror(errno));
  close(probe);
  struct tks_daemon d;
  daemon_prepare(&d, NULL, NULL);
  char yaml[1024];
  /* Its own journal dir, as the harness's configs have: never the default. */
  snprintf(yaml, sizeof yaml,
           "ingest:\n  listen: \"[::1]:0\"\nsubscribe:\n  listen: \"127.0.0.1:0\"\ncontrol:\n  "
           "socket: \"%s\"\n"
           "journal:\n  dir: \"%s/journal\"\n",
           d.sock, d.dir);
  write_file(d.config, yaml);
  daemon_spawn(&d, NULL);
  daemon_wait_ready(&d);
  char *text = daemon_request(&d, "stats text");
  char listen[64];
  ASSERT_EQ(stats_text_lookup(text, "ingest.listen", listen, sizeof listen), 0);
  ASSERT_CONTAINS(listen, "::1");
  free(text);
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  sa.sin6_port = htons((uint16_t)d.port);
  ASSERT_EQ(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  send_good_tick(fd, "V6", TS0);
  daemon_expect_stat(&d, "ticks.accepted", 1, 10000);
  close(fd);
  stop_cleanly(&d);
}

/* ---- slow and idle clients ---- */

/* The first bytes of one tick whose flags run to 300 bytes: a trickler
 * never finishes it. */
static void pack_long_tick(struct wire *w) {
  char flags[301];
  memset(flags, 'F', 300);
  flags[300] = '\0';
  pack_map_tick(&w->pk, "SLOW", TS0, 1.0, 1, flags);
}

/* Closed by the daemon?  Reads (and drops) what is there without waiting. */
static bool peer_closed(int fd) {
  char buf[256];
  ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
  return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* A child process sends one byte of msg to each of the n fds every
 * every_ms, until the daemon closes them or bound_ms pass.  Its exit
 * status is the number still open at the end (0: all closed in time). */
static pid_t trickle(const int *fds, int n, const struct wire *msg, int every_ms, int bound_ms) {
  pid_t pid = fork();
  ASSERT(pid >= 0);
  if (pid > 0) return pid;
  bool *open = calloc((size_t)n, sizeof *open);
  int left = n;
  for (int i = 0; i < n; i++) open[i] = true;
  uint64_t end = now_ms() + (uint64_t)bound_ms;
  for (size_t off = 0; left > 0 && now_ms() < end; off++) {
    for (int i = 0; i < n; i++) {
      if (!open[i]) continue;
      if (peer_closed(fds[i]) || off >= msg->sb.size ||
          send(fds[i], msg->sb.data + off, 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1) {
        open[i] = false;
        left--;
      }
    }
    sleep_ms(every_ms);
  }
  _exit(left > 255 ? 255 : left); /* _exit: the test's cleanup belongs to the parent */
}

/* The trickler's exit status, waiting at most timeout_ms; -1 if it did not end. */
static int wait_child(pid_t pid, int timeout_ms) {
  uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
  int status;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (now_ms() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    sleep_ms(50);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

#define TRICKLERS 100

TEST_TIMEOUT(tricklers_holding_every_connection_let_a_good_client_in_and_are_closed, 120) {
  struct tks_daemon d;
  daemon_start_with(&d, "  max_connections: 100\n  message_timeout: 2s\n", NULL);
  int fds[TRICKLERS];
  for (int i = 0; i < TRICKLERS; i++) fds[i] = daemon_connect_ingest(&d);
  daemon_expect_stat(&d, "connections.current", TRICKLERS, 10000);
  struct wire slow;
  wire_init(&slow);
  pack_long_tick(&slow);
  uint64_t start = now_ms();
  pid_t child = trickle(fds, TRICKLERS, &slow, 200, 20000);
  for (int i = 0; i < TRICKLERS; i++) close(fds[i]); /* the child holds them */
  sleep_ms(1000); /* every trickler holds an unfinished message, none is whole */

  int good = daemon_connect_ingest(&d);
  struct wire w;
  wire_init(&w);
  for (int i = 0; i < 1000; i++) pack_map_tick(&w.pk, "GOOD", TS0 + i, 1.0 + i, i, "R");
  wire_send(good, &w);
  daemon_expect_stat(&d, "ticks.accepted", 1000, 10000);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.rejected"), 0);

  int open = wait_child(child, 30000);
  uint64_t took = now_ms() - start;
  if (open != 0)
    TEST_FAIL("%d of %d tricklers still open after 20 s (message_timeout 2s)", open, TRICKLERS);
  uint64_t timeout = daemon_stat(&d, "connections.closed_timeout");
  uint64_t slow_n = daemon_stat(&d, "connections.closed_slow");
  uint64_t for_new = daemon_stat(&d, "connections.closed_for_new");
  printf("  100 tricklers closed within %llu ms: %llu message_timeout, %llu min_rate, %llu for the "
         "good client\n",
         (unsigned long long)took, (unsigned long long)timeout, (unsigned long long)slow_n,
         (unsigned long long)for_new);
  ASSERT_U64_EQ(timeout + slow_n + for_new, TRICKLERS);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.refused"), 0);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.current"), 1);
  send_good_tick(good, "GOOD", TS0 + 5000); /* the good client was left alone */
  daemon_expect_stat(&d, "ticks.accepted", 1001, 10000);
  char *log = daemon_log(&d);
  ASSERT_CONTAINS(log, "a message unfinished after");
  ASSERT_CONTAINS(log, "ingest connections holding an unfinished message ("); /* the summary */
  free(log);
  close(good);
  wire_finish(&w);
  wire_finish(&slow);
  stop_cleanly(&d);
}

TEST(full_server_closes_the_longest_unfinished_message_for_a_new_client) {
  struct tks_daemon d;
  /* No timeout closes the trickler: only the room a new client needs. */
  daemon_start_with(&d, "  max_connections: 3\n  message_timeout: 0\n  min_rate: 0\n", NULL);
  int busy[2];
  for (int i = 0; i < 2; i++) {
    busy[i] = daemon_connect_ingest(&d);
    send_good_tick(busy[i], "BUSY", TS0 + i);
  }
  daemon_expect_stat(&d, "ticks.accepted", 2, 10000);
  uint64_t received = daemon_stat(&d, "ingest.bytes_received");
  int half = daemon_connect_ingest(&d);
  struct wire slow;
  wire_init(&slow);
  pack_long_tick(&slow);
  ASSERT_EQ(send_all(half, slow.sb.data, 20), 0);
  daemon_expect_stat(&d, "ingest.bytes_received", received + 20, 5000);
  /* Past a quarter of the yardstick (message_timeout, 10 s when off). */
  sleep_ms(2700);
  for (int i = 0; i < 2; i++) send_good_tick(busy[i], "BUSY", TS0 + 10 + i); /* not idle */
  daemon_expect_stat(&d, "ticks.accepted", 4, 10000);
  int fresh = daemon_connect_ingest(&d);
  ASSERT(wait_closed(half, 5000));
  send_good_tick(fresh, "NEW", TS0);
  daemon_expect_stat(&d, "ticks.accepted", 5, 10000);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.closed_for_new"), 1);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.refused"), 0);
  char *log = daemon_log(&d);
  ASSERT_CONTAINS(log, "bytes unfinished for");
  free(log);
  /* Now every one is busy and healthy: the next is refused. */
  int over = daemon_connect_ingest(&d);
  ASSERT(wait_closed(over, 5000));
  daemon_expect_stat(&d, "connections.refused", 1, 5000);
  close(over);
  close(half);
  close(fresh);
  for (int i = 0; i < 2; i++) close(busy[i]);
  wire_finish(&slow);
  stop_cleanly(&d);
}

TEST(full_server_closes_the_longest_silent_client_for_a_new_one) {
  struct tks_daemon d;
  daemon_start_with(&d, "  max_connections: 2\n  message_timeout: 1s\n", NULL);
  int quiet = daemon_connect_ingest(&d);
  send_good_tick(quiet, "QUIET", TS0);
  daemon_expect_stat(&d, "ticks.accepted", 1, 10000);
  int other = daemon_connect_ingest(&d);
  sleep_ms(600);
  send_good_tick(other, "OTHER", TS0);
  daemon_expect_stat(&d, "ticks.accepted", 2, 10000);
  sleep_ms(700); /* quiet: silent for over message_timeout; other: not yet */
  int fresh = daemon_connect_ingest(&d);
  ASSERT(wait_closed(quiet, 5000));
  send_good_tick(fresh, "NEW", TS0);
  daemon_expect_stat(&d, "ticks.accepted", 3, 10000);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.closed_for_new"), 1);
  char *log = daemon_log(&d);
  ASSERT_CONTAINS(log, "silent for");
  free(log);
  close(quiet);
  close(other);
  close(fresh);
  stop_cleanly(&d);
}

TEST(connection_over_max_connections_per_ip_is_refused_and_counted) {
  struct tks_daemon d;
  daemon_start_with(&d, "  max_connections_per_ip: 3\n", NULL);
  int fds[3];
  for (int i = 0; i < 3; i++) {
    fds[i] = daemon_connect_ingest(&d);
    send_good_tick(fds[i], "IP", TS0 + i);
  }
  daemon_expect_stat(&d, "ticks.accepted", 3, 10000);
  int fourth = daemon_connect_ingest(&d); /* 127.0.0.1 like the others */
  ASSERT(wait_closed(fourth, 5000));
  close(fourth);
  daemon_expect_stat(&d, "connections.refused_per_ip", 1, 5000);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.refused"), 0);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.current"), 3);
  char *log = daemon_log(&d);
  ASSERT_CONTAINS(log, "connections from that address open (max_connections_per_ip)");
  free(log);
  close(fds[0]);
  wait_stat_at_most(&d, "connections.current", 2, 5000);
  fds[0] = daemon_connect_ingest(&d);
  send_good_tick(fds[0], "IP", TS0 + 10);
  daemon_expect_stat(&d, "ticks.accepted", 4, 10000);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.refused_per_ip"), 1);
  for (int i = 0; i < 3; i++) close(fds[i]);
  stop_cleanly(&d);
}

TEST(half_sent_message_is_closed_after_message_timeout) {
  struct tks_daemon d;
  daemon_start_with(&d, "  message_timeout: 1s\n  min_rate: 0\n", NULL);
  int whole = daemon_connect_ingest(&d);
  send_good_tick(whole, "WHOLE", TS0);
  struct wire w;
  wire_init(&w);
  pack_map_tick(&w.pk, "HALF", TS0, 1.0, 1, "R");
  int half = daemon_connect_ingest(&d);
  ASSERT_EQ(send_all(half, w.sb.data, w.sb.size / 2), 0);
  uint64_t start = now_ms();
  if (!wait_closed(half, 8000)) TEST_FAIL("the half-sent message was not closed within 8 s");
  printf("  closed after %llu ms (message_timeout 1s)\n", (unsigned long long)(now_ms() - start));
  close(half);
  daemon_expect_stat(&d, "connections.closed_timeout", 1, 5000);
  char want[64];
  snprintf(want, sizeof want, "(%zu bytes of it; message_timeout)", w.sb.size / 2);
  char *log = daemon_log(&d);
  ASSERT_CONTAINS(log, want);
  free(log);
  send_good_tick(whole, "WHOLE", TS0 + 1); /* the other client goes on */
  daemon_expect_stat(&d, "ticks.accepted", 2, 10000);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.current"), 1);
  close(whole);
  wire_finish(&w);
  stop_cleanly(&d);
}

TEST(quiet_client_between_whole_messages_is_not_closed_for_slowness) {
  struct tks_daemon d;
  /* Timeouts that would close any unfinished message at once. */
  daemon_start_with(&d, "  message_timeout: 1s\n  min_rate: 64KiB\n", NULL);
  int fd = daemon_connect_ingest(&d);
  send_good_tick(fd, "QUIET", TS0);
  daemon_expect_stat(&d, "ticks.accepted", 1, 10000);
  struct pollfd pfd = {.fd = fd, .events = POLLIN};
  /* Longer than message_timeout and than min_rate's 5 s window. */
  ASSERT_EQ(poll(&pfd, 1, 6500), 0);
  send_good_tick(fd, "QUIET", TS0 + 1);
  daemon_expect_stat(&d, "ticks.accepted", 2, 10000);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.closed_timeout"), 0);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.closed_slow"), 0);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.current"), 1);
  close(fd);
  stop_cleanly(&d);
}

TEST_TIMEOUT(trickler_under_min_rate_is_closed_with_message_timeout_off, 60) {
  struct tks_daemon d;
  daemon_start_with(&d, "  message_timeout: 0\n  min_rate: 1KiB\n", NULL);
  int fd = daemon_connect_ingest(&d);
  struct wire slow;
  wire_init(&slow);
  pack_long_tick(&slow);
  pid_t child = trickle(&fd, 1, &slow, 200, 20000);
  close(fd);
  uint64_t start = now_ms();
  int open = wait_child(child, 30000);
  if (open != 0) TEST_FAIL("the trickler was not closed within 20 s (min_rate 1KiB, 5 s window)");
  printf("  closed after %llu ms\n", (unsigned long long)(now_ms() - start));
  ASSERT_U64_EQ(daemon_stat(&d, "connections.closed_slow"), 1);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.closed_timeout"), 0);
  char *log = daemon_log(&d);
  ASSERT_CONTAINS(log, "under min_rate 1024 B/s");
  free(log);
  wire_finish(&slow);
  stop_cleanly(&d);
}

TEST_MAIN()
