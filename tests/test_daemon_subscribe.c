/* Subscriptions, black-box: a real tickslabd, subscribers on its
 * subscribe.listen port over loopback, ticks sent to its ingest port, the
 * stream read back with msgpack-c.  Every tick carries its sequence number
 * (volume, per symbol), so "exactly once, in order" is checked tick by
 * tick across replay and live. */
#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "decode.h"
#include "encode.h"
#include "harness.h"
#include "test.h"

#define T0 1700000000000000000LL

static int sub_port(const struct tks_daemon *d) { return (int)daemon_stat(d, "subscribe.port"); }

static int connect_sub(const struct tks_daemon *d, int rcvbuf) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)sub_port(d))};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT(fd >= 0);
  if (rcvbuf) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    TEST_FAIL("connect to the subscription port: %s", strerror(errno));
  return fd;
}

/* {"subscribe": symbols (NULL: "*"), "from": from (INT64_MIN: "now")} */
static void subscribe(int fd, const char *const *symbols, int64_t from) {
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 2);
  msgpack_pack_str_with_body(&pk, "subscribe", 9);
  if (!symbols) {
    msgpack_pack_str_with_body(&pk, "*", 1);
  } else {
    size_t n = 0;
    while (symbols[n]) n++;
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++) msgpack_pack_str_with_body(&pk, symbols[i], strlen(symbols[i]));
  }
  msgpack_pack_str_with_body(&pk, "from", 4);
  if (from == INT64_MIN)
    msgpack_pack_str_with_body(&pk, "now", 3);
  else
    msgpack_pack_int64(&pk, from);
  ASSERT_EQ(send_all(fd, sb.data, sb.size), 0);
  msgpack_sbuffer_destroy(&sb);
}

/* A stream reader: the maps one after another. */
struct reader {
  int fd;
  msgpack_unpacker up;
  msgpack_unpacked u;
  bool eof;
};

static void reader_init(struct reader *r, int fd) {
  r->fd = fd;
  r->eof = false;
  ASSERT(msgpack_unpacker_init(&r->up, 1 << 16));
  msgpack_unpacked_init(&r->u);
}

static void reader_finish(struct reader *r) {
  msgpack_unpacked_destroy(&r->u);
  msgpack_unpacker_destroy(&r->up);
}

/* The next map, or NULL at EOF / timeout. */
static const msgpack_object *next_map(struct reader *r, int timeout_ms) {
  uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    msgpack_unpack_return ret = msgpack_unpacker_next(&r->up, &r->u);
    if (ret == MSGPACK_UNPACK_SUCCESS) {
      ASSERT_EQ(r->u.data.type, MSGPACK_OBJECT_MAP);
      return &r->u.data;
    }
    if (ret != MSGPACK_UNPACK_CONTINUE) TEST_FAIL("the stream is not msgpack (%d)", (int)ret);
    if (r->eof || now_ms() > deadline) return NULL;
    struct pollfd p = {.fd = r->fd, .events = POLLIN};
    if (poll(&p, 1, 100) <= 0) continue;
    if (!msgpack_unpacker_reserve_buffer(&r->up, 1 << 16)) TEST_FAIL("out of memory");
    ssize_t n = recv(r->fd, msgpack_unpacker_buffer(&r->up), 1 << 16, 0);
    if (n <= 0) {
      r->eof = true;
      continue;
    }
    msgpack_unpacker_buffer_consumed(&r->up, (size_t)n);
  }
}

static const msgpack_object *get(const msgpack_object *m, const char *key) {
  for (uint32_t i = 0; i < m->via.map.size; i++) {
    const msgpack_object *k = &m->via.map.ptr[i].key;
    if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(key) &&
        memcmp(k->via.str.ptr, key, k->via.str.size) == 0)
      return &m->via.map.ptr[i].val;
  }
  return NULL;
}

static bool str_is(const msgpack_object *o, const char *s) {
  return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
         memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

/* "$" of a control message, or NULL for a tick (a control message has it first). */
static const msgpack_object *control_of(const msgpack_object *m) {
  const msgpack_object *k = m->via.map.size ? &m->via.map.ptr[0].key : NULL;
  return k && str_is(k, "$") ? &m->via.map.ptr[0].val : NULL;
}

static int64_t int_of(const msgpack_object *o) {
  ASSERT(o);
  ASSERT(o->type == MSGPACK_OBJECT_POSITIVE_INTEGER || o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER);
  return o->via.i64;
}

/* Reads control messages until {"$":"live"}; fails on a tick or anything else. */
static void expect_live(struct reader *r) {
  const msgpack_object *m = next_map(r, 10000);
  if (!m) TEST_FAIL("no {\"$\":\"live\"} (eof %d)", r->eof);
  if (!str_is(control_of(m), "live")) TEST_FAIL("the first message is not {\"$\":\"live\"}");
}

/* Ticks for symbols S0..S<nsym-1>: tick i goes to symbol i % nsym with
 * volume = its number within that symbol, ts = T0 + i. */
/* A subscriber to "*" from now, past its {"$":"live"}: its socket. */
static int live_star(const struct tks_daemon *d, struct reader *r) {
  int fd = connect_sub(d, 0);
  subscribe(fd, NULL, INT64_MIN);
  reader_init(r, fd);
  expect_live(r);
  return fd;
}

/* Tick i of a feed: S<i % nsym>, volume i / nsym.  Most name every field
 * (sent on as the producer's bytes, in runs); every seventh leaves flags
 * out (rendered from the record), so a stream mixes the two. */
static void encode_ticks(struct tks_buf *b, uint64_t first, uint64_t count, unsigned nsym) {
  for (uint64_t i = first; i < first + count; i++) {
    char name[16];
    snprintf(name, sizeof name, "S%u", (unsigned)(i % nsym));
    struct tks_kv kv[] = {
        {"ticker", {.type = TKS_V_STR, .v.s = {name, strlen(name)}}},
        {"ts", {.type = TKS_V_INT, .v.i = T0 + (int64_t)i}},
        {"price", {.type = TKS_V_F64, .v.f = 1.5}},
        {"volume", {.type = TKS_V_INT, .v.i = (int64_t)(i / nsym)}},
        {"flags", {.type = TKS_V_STR, .v.s = {"x", 1}}},
    };
    ASSERT_EQ(tks_encode_map(b, kv, i % 7 == 3 ? 4 : 5), 0);
  }
}

static void send_ticks(const struct tks_daemon *d, uint64_t first, uint64_t count, unsigned nsym) {
  struct tks_buf b = {0};
  encode_ticks(&b, first, count, nsym);
  int fd = daemon_connect_ingest(d);
  ASSERT_EQ(send_all(fd, b.data, b.len), 0);
  close(fd);
  tks_buf_finish(&b);
}

/* Reads `want` ticks, checking each symbol's volumes go on from next[s]
 * (once each, in order); *live: {"$":"live"} was seen (once). */
static void read_sequences(struct reader *r, unsigned nsym, uint64_t *next, uint64_t want,
                           bool *live_seen) {
  uint64_t got = 0;
  bool live = *live_seen;
  while (got < want) {
    const msgpack_object *m = next_map(r, 20000);
    if (!m)
      TEST_FAIL("stream ended after %llu of %llu ticks (eof %d)", (unsigned long long)got,
                (unsigned long long)want, r->eof);
    const msgpack_object *c = control_of(m);
    if (c) {
      if (str_is(c, "live") && !live) {
        live = true;
        continue;
      }
      const msgpack_object *why = get(m, "reason");
      TEST_FAIL("unexpected control message \"%.*s\" after %llu ticks: %.*s", (int)c->via.str.size,
                c->via.str.ptr, (unsigned long long)got,
                why && why->type == MSGPACK_OBJECT_STR ? (int)why->via.str.size : 0,
                why && why->type == MSGPACK_OBJECT_STR ? why->via.str.ptr : "");
    }
    const msgpack_object *t = get(m, "ticker");
    ASSERT(t && t->type == MSGPACK_OBJECT_STR);
    unsigned s = 0; /* "S<n>": the str is not NUL-terminated */
    for (uint32_t k = 1; k < t->via.str.size; k++) s = s * 10 + (unsigned)(t->via.str.ptr[k] - '0');
    if (s >= nsym) TEST_FAIL("a tick of %.*s", (int)t->via.str.size, t->via.str.ptr);
    int64_t v = int_of(get(m, "volume"));
    if ((uint64_t)v != next[s])
      TEST_FAIL("S%u: volume %lld where %llu was due (a tick lost or sent twice)", s, (long long)v,
                (unsigned long long)next[s]);
    uint64_t i = next[s] * nsym + s;
    ASSERT_EQ(int_of(get(m, "ts")), T0 + (int64_t)i);
    /* Every field, as `last` has it, whichever way the tick came. */
    const msgpack_object *price = get(m, "price"), *flags = get(m, "flags");
    ASSERT(price && price->type == MSGPACK_OBJECT_FLOAT64 && price->via.f64 == 1.5);
    ASSERT(flags && flags->type == MSGPACK_OBJECT_STR);
    ASSERT_EQ(flags->via.str.size, i % 7 == 3 ? 0 : 1);
    ASSERT_EQ(m->via.map.size, 5);
    next[s]++;
    got++;
  }
  *live_seen = live;
}

/* Reads ticks until every symbol has `per_sym` of them, from 0. */
static void expect_sequences(struct reader *r, unsigned nsym, uint64_t per_sym, bool live_seen) {
  uint64_t *next = calloc(nsym, sizeof *next);
  read_sequences(r, nsym, next, per_sym * nsym, &live_seen);
  /* The replay may have sent every tick before it caught up. */
  if (!live_seen) expect_live(r);
  free(next);
}

/* TKS_TEST_SEND_THREAD (meson's daemon_subscribe_loop_writes: off) sets
 * subscribe.send_thread where a test does not; unset, it is the default
 * (auto: on with 2 CPUs or more). */
static void start_sub_daemon(struct tks_daemon *d, const char *subscribe_yaml, const char *more) {
  char yaml[1024], mode[64] = "";
  const char *env = getenv("TKS_TEST_SEND_THREAD");
  if (env && (!subscribe_yaml || !strstr(subscribe_yaml, "send_thread:")))
    snprintf(mode, sizeof mode, "  send_thread: %s\n", env);
  snprintf(yaml, sizeof yaml,
           "subscribe:\n  listen: \"127.0.0.1:0\"\n%s%sjournal:\n  enabled: false\n%s",
           subscribe_yaml ? subscribe_yaml : "", mode, more ? more : "");
  daemon_start(d, yaml);
}

TEST(a_live_subscriber_gets_every_tick_once_in_ingest_order) {
  struct tks_daemon d;
  start_sub_daemon(&d, NULL, NULL);
  struct reader r;
  int fd = live_star(&d, &r);
  send_ticks(&d, 0, 30000, 7);
  expect_sequences(&r, 7, 30000 / 7, true);
  daemon_expect_stat(&d, "subscribe.subscribers", 1, 5000);
  char *list = daemon_request(&d, "subscribers");
  ASSERT(list);
  ASSERT_CONTAINS(list, "\"state\":\"live\",\"symbols\":\"*\"");
  free(list);
  reader_finish(&r);
  close(fd);
  daemon_expect_stat(&d, "subscribe.subscribers", 0, 5000);
  daemon_cleanup(&d);
}

TEST(a_list_subscriber_gets_only_its_symbols_also_those_not_yet_seen) {
  struct tks_daemon d;
  start_sub_daemon(&d, NULL, NULL);
  int fd = connect_sub(&d, 0);
  subscribe(fd, (const char *const[]){"S1", "S3", "S3", NULL}, INT64_MIN);
  struct reader r;
  reader_init(&r, fd);
  expect_live(&r);
  send_ticks(&d, 0, 4000, 4); /* S0..S3, 1000 each */
  unsigned got[4] = {0};
  for (int i = 0; i < 2000; i++) {
    const msgpack_object *m = next_map(&r, 10000);
    ASSERT(m && !control_of(m));
    const msgpack_object *t = get(m, "ticker");
    unsigned s = (unsigned)(t->via.str.ptr[1] - '0');
    ASSERT(s == 1 || s == 3);
    ASSERT_EQ(int_of(get(m, "volume")), got[s]++);
  }
  reader_finish(&r);
  close(fd);
  daemon_cleanup(&d);
}

/* The sender thread: ticks [first, first+count) at full speed. */
struct feed {
  const struct tks_daemon *d;
  uint64_t first, count;
  unsigned nsym;
};

static void *feed_main(void *arg) {
  struct feed *f = arg;
  send_ticks(f->d, f->first, f->count, f->nsym);
  return NULL;
}

TEST(a_past_from_replays_then_goes_live_exactly_once_across_the_seam) {
  struct tks_daemon d;
  /* Room for every live tick: this reader may fall behind a full-speed
   * feed on a shared machine, and is not what is tested here. */
  start_sub_daemon(&d, "  max_queue_bytes: 256MiB\n", NULL);
  const unsigned nsym = 5;
  const uint64_t before = 200000, during = 300000;
  send_ticks(&d, 0, before, nsym);
  daemon_wait_stat(&d, "ticks.accepted", before, 20000);
  /* A second feed runs while the replay does: the seam is crossed with
   * ingest at full speed. */
  int fd = connect_sub(&d, 0);
  struct feed f = {&d, before, during, nsym};
  pthread_t th;
  subscribe(fd, NULL, T0);
  ASSERT_EQ(pthread_create(&th, NULL, feed_main, &f), 0);
  struct reader r;
  reader_init(&r, fd);
  expect_sequences(&r, nsym, (before + during) / nsym, false);
  pthread_join(th, NULL);
  ASSERT(daemon_stat(&d, "subscribe.replayed_ticks") >= before);
  /* Nothing more: no tick was queued twice. */
  ASSERT(next_map(&r, 300) == NULL);
  reader_finish(&r);
  close(fd);
  daemon_cleanup(&d);
}

TEST(from_skips_older_ticks_in_the_replay_and_live) {
  struct tks_daemon d;
  start_sub_daemon(&d, NULL, NULL);
  send_ticks(&d, 0, 1000, 1);
  daemon_wait_stat(&d, "ticks.accepted", 1000, 10000);
  int fd = connect_sub(&d, 0);
  subscribe(fd, (const char *const[]){"S0", NULL}, T0 + 900);
  struct reader r;
  reader_init(&r, fd);
  for (int i = 900; i < 1000; i++) {
    const msgpack_object *m = next_map(&r, 10000);
    ASSERT(m && !control_of(m));
    ASSERT_EQ(int_of(get(m, "ts")), T0 + i);
  }
  expect_live(&r);
  /* A late tick older than from is not sent; a newer one is. */
  struct tks_buf b = {0};
  struct tks_kv late[] = {{"ticker", {.type = TKS_V_STR, .v.s = {"S0", 2}}},
                          {"ts", {.type = TKS_V_INT, .v.i = T0 + 5}},
                          {"price", {.type = TKS_V_F64, .v.f = 2.0}},
                          {"volume", {.type = TKS_V_INT, .v.i = 5}}};
  ASSERT_EQ(tks_encode_map(&b, late, 4), 0);
  late[1].v.v.i = T0 + 950; /* late, but not older than from */
  late[3].v.v.i = 950;
  ASSERT_EQ(tks_encode_map(&b, late, 4), 0);
  int in = daemon_connect_ingest(&d);
  ASSERT_EQ(send_all(in, b.data, b.len), 0);
  close(in);
  const msgpack_object *m = next_map(&r, 10000);
  ASSERT(m && !control_of(m));
  ASSERT_EQ(int_of(get(m, "ts")), T0 + 950);
  ASSERT(get(m, "price")->type == MSGPACK_OBJECT_FLOAT64);
  ASSERT(next_map(&r, 300) == NULL);
  tks_buf_finish(&b);
  reader_finish(&r);
  close(fd);
  daemon_cleanup(&d);
}

/* Reads a closed slow subscriber to its end: whether the "too slow" error came. */
static bool read_slow_end(struct reader *rs) {
  const msgpack_object *m;
  bool told = false;
  while ((m = next_map(rs, 10000)) != NULL) {
    const msgpack_object *c = control_of(m);
    if (c && str_is(c, "error")) {
      const msgpack_object *why = get(m, "reason");
      ASSERT(why && why->type == MSGPACK_OBJECT_STR);
      ASSERT(memmem(why->via.str.ptr, why->via.str.size, "too slow", 8));
      told = true;
    }
  }
  return told;
}

TEST(a_slow_subscriber_is_disconnected_with_a_reason_while_others_keep_up) {
  struct tks_daemon d;
  /* The slow one never reads: its socket buffers fill, then its queue. */
  start_sub_daemon(&d, "  max_queue_bytes: 4MiB\n", NULL);
  int slow = connect_sub(&d, 4096);
  subscribe(slow, NULL, INT64_MIN);
  int fast = connect_sub(&d, 0);
  subscribe(fast, NULL, INT64_MIN);
  struct reader rf;
  reader_init(&rf, fast);
  expect_live(&rf);
  daemon_wait_stat(&d, "subscribe.subscribers", 2, 5000);
  /* Chunks, each read by the fast one before the next is sent (so that it
   * never falls behind on this shared machine; the bench measures rates). */
  struct tks_buf b = {0};
  int in = daemon_connect_ingest(&d);
  uint64_t next[3] = {0};
  bool live = true, told = false, slow_read = false;
  struct reader rs;
  reader_init(&rs, slow);
  for (uint64_t first = 0; first < 600000; first += 30000) {
    b.len = 0;
    encode_ticks(&b, first, 30000, 3);
    ASSERT_EQ(send_all(in, b.data, b.len), 0);
    read_sequences(&rf, 3, next, 30000, &live);
    /* Once it is closed, the slow one reads what reached its socket, then
     * the reason, then EOF: at once, as the daemon gives a closed
     * subscriber 10 s to take its error (a test that waited for the whole
     * feed first would race that on a loaded machine). */
    if (!slow_read && daemon_stat(&d, "subscribe.closed_slow") == 1) {
      told = read_slow_end(&rs);
      slow_read = true;
    }
  }
  close(in);
  tks_buf_finish(&b);
  daemon_expect_stat(&d, "subscribe.closed_slow", 1, 10000);
  if (!slow_read) told = read_slow_end(&rs);
  ASSERT(told);
  ASSERT(rs.eof);
  ASSERT_EQ(daemon_stat(&d, "ticks.accepted"), 600000);
  reader_finish(&rs);
  reader_finish(&rf);
  close(slow);
  close(fast);
  daemon_cleanup(&d);
}

static void put_tick(struct tks_buf *b, int form, uint64_t v);

/* The sender thread: these bytes, in one send. */
struct raw_feed {
  const struct tks_daemon *d;
  struct tks_buf b;
};

static void *raw_feed_main(void *arg) {
  struct raw_feed *f = arg;
  int fd = daemon_connect_ingest(f->d);
  send_all(fd, f->b.data, f->b.len);
  close(fd);
  return NULL;
}

/* A reload that makes the queues smaller makes the runs handed at once
 * smaller too: a subscriber that keeps up is not taken for a slow one
 * (with the send thread, bytes being written are not counted unsent). */
TEST(a_smaller_max_queue_bytes_by_reload_still_lets_a_reader_that_keeps_up_keep_up) {
  struct tks_daemon d;
  start_sub_daemon(&d, NULL, NULL);
  struct reader r;
  int fd = live_star(&d, &r);
  daemon_write_config(&d, NULL,
                      "subscribe:\n  listen: \"127.0.0.1:0\"\n  max_queue_bytes: 64KiB\n"
                      "journal:\n  enabled: false\n");
  ASSERT_EQ(kill(d.pid, SIGHUP), 0);
  uint64_t deadline = now_ms() + 10000;
  for (;;) {
    char *log = daemon_log(&d);
    bool done = strstr(log, "reload: applied") != NULL;
    free(log);
    if (done) break;
    if (now_ms() > deadline) TEST_FAIL("no reload in the log");
    sleep_ms(50);
  }
  /* Every tick as its producer's bytes: runs as long as a read. */
  enum { N = 40000 };
  struct raw_feed f = {&d, {0}};
  for (unsigned i = 0; i < N; i++) put_tick(&f.b, 0, i);
  pthread_t th;
  ASSERT_EQ(pthread_create(&th, NULL, raw_feed_main, &f), 0);
  for (int64_t i = 0; i < N; i++) {
    const msgpack_object *m = next_map(&r, 20000);
    if (!m) TEST_FAIL("the stream ended after %lld of %d ticks", (long long)i, N);
    const msgpack_object *c = control_of(m);
    if (c) {
      const msgpack_object *why = get(m, "reason");
      TEST_FAIL("\"%.*s\" after %lld ticks: %.*s", (int)c->via.str.size, c->via.str.ptr,
                (long long)i, why && why->type == MSGPACK_OBJECT_STR ? (int)why->via.str.size : 0,
                why && why->type == MSGPACK_OBJECT_STR ? why->via.str.ptr : "");
    }
    ASSERT_EQ(int_of(get(m, "volume")), i);
  }
  pthread_join(th, NULL);
  tks_buf_finish(&f.b);
  ASSERT_U64_EQ(daemon_stat(&d, "subscribe.closed_slow"), 0);
  reader_finish(&r);
  close(fd);
  daemon_cleanup(&d);
}

TEST(the_drop_policy_counts_and_tells_what_it_dropped) {
  struct tks_daemon d;
  start_sub_daemon(&d, "  max_queue_bytes: 64KiB\n  slow_policy: drop\n", NULL);
  int slow = connect_sub(&d, 4096);
  subscribe(slow, NULL, INT64_MIN);
  struct reader rs;
  reader_init(&rs, slow);
  expect_live(&rs);
  send_ticks(&d, 0, 100000, 1);
  daemon_wait_stat(&d, "ticks.accepted", 100000, 20000);
  uint64_t dropped = daemon_wait_stat(&d, "subscribe.dropped_ticks", 1, 5000);
  ASSERT(dropped > 0);
  /* Read what was queued, then one more tick brings the drop count. */
  uint64_t ticks = 0, told = 0;
  const msgpack_object *m;
  bool sent_last = false;
  for (;;) {
    m = next_map(&rs, sent_last ? 5000 : 500);
    if (!m) {
      ASSERT(!sent_last);
      /* Everything queued is read: one more tick brings the last count. */
      send_ticks(&d, 100000, 1, 1);
      sent_last = true;
      continue;
    }
    const msgpack_object *c = control_of(m);
    if (c) {
      ASSERT(str_is(c, "dropped"));
      told += (uint64_t)int_of(get(m, "count"));
      ASSERT_EQ(int_of(get(m, "total")), (int64_t)told);
      continue;
    }
    ASSERT_EQ(int_of(get(m, "volume")), (int64_t)(ticks + told)); /* in order, gaps told */
    ticks++;
    if (int_of(get(m, "volume")) == 100000) break;
  }
  ASSERT_EQ(told, dropped);
  ASSERT_EQ(ticks + dropped, 100001);
  ASSERT_EQ(daemon_stat(&d, "subscribe.closed_slow"), 0);
  reader_finish(&rs);
  close(slow);
  daemon_cleanup(&d);
}

/* Writes raw bytes as a request; expects {"$":"error"} with want in the
 * reason, then EOF. */
static void expect_refused(const struct tks_daemon *d, const void *req, size_t len,
                           const char *want) {
  int fd = connect_sub(d, 0);
  ASSERT_EQ(send_all(fd, req, len), 0);
  struct reader r;
  reader_init(&r, fd);
  const msgpack_object *m = next_map(&r, 10000);
  if (!m) TEST_FAIL("no error for a request (want \"%s\")", want);
  ASSERT(str_is(control_of(m), "error"));
  const msgpack_object *why = get(m, "reason");
  ASSERT(why && why->type == MSGPACK_OBJECT_STR);
  if (!memmem(why->via.str.ptr, why->via.str.size, want, strlen(want)))
    TEST_FAIL("reason \"%.*s\" does not say \"%s\"", (int)why->via.str.size, why->via.str.ptr,
              want);
  ASSERT(next_map(&r, 5000) == NULL);
  ASSERT(r.eof);
  reader_finish(&r);
  close(fd);
}

TEST(a_subscriber_that_sends_garbage_is_closed_with_a_reason) {
  struct tks_daemon d;
  start_sub_daemon(&d, NULL, NULL);
  expect_refused(&d, "\xc1", 1, "not msgpack");
  expect_refused(&d, "\x93\x01\x02\x03", 4, "not a map");
  expect_refused(&d,
                 "\x81\xa3"
                 "foo"
                 "\x01",
                 6, "unknown key 'foo'");
  expect_refused(&d,
                 "\x81\xa4"
                 "from"
                 "\xa3"
                 "now",
                 10, "no subscribe key");
  expect_refused(&d,
                 "\x81\xa9"
                 "subscribe"
                 "\x90",
                 12, "empty");
  expect_refused(&d,
                 "\x81\xa9"
                 "subscribe"
                 "\x91\x05",
                 13, "not a string");
  expect_refused(&d,
                 "\x81\xa9"
                 "subscribe"
                 "\x91\xa2\xff\xfe",
                 15, "UTF-8");
  expect_refused(&d,
                 "\x82\xa9"
                 "subscribe"
                 "\xa1*"
                 "\xa4"
                 "from"
                 "\xa5"
                 "later",
                 24, "not a time");
  /* Deep nesting and a length prefix of 4 GiB: refused without reading it. */
  char deep[64];
  deep[0] = (char)0x81, deep[1] = (char)0xa9;
  memcpy(deep + 2, "subscribe", 9);
  memset(deep + 11, 0x91, 40);
  deep[51] = 0x01;
  expect_refused(&d, deep, 52, "not msgpack");
  expect_refused(&d,
                 "\x81\xa9"
                 "subscribe"
                 "\xdd\xff\xff\xff\xff",
                 16, "over");
  /* A request over 64 KiB. */
  size_t big = 70000;
  char *b = malloc(big);
  memset(b, 'x', big);
  memcpy(b,
         "\x81\xa9"
         "subscribe"
         "\xdb\x00\x01\x10\x70",
         16);
  expect_refused(&d, b, big, "over");
  free(b);
  /* A good request, then bytes after it. */
  expect_refused(&d,
                 "\x81\xa9"
                 "subscribe"
                 "\xa1*"
                 "\x01",
                 14, "after the subscribe request");
  /* Random bytes. */
  srand(7);
  for (int i = 0; i < 50; i++) {
    char junk[32];
    for (size_t k = 0; k < sizeof junk; k++) junk[k] = (char)(rand() & 0xff);
    junk[0] = (char)(0x80 | (rand() & 0x0f)); /* a fixmap: not a plain not-a-map case */
    int fd = connect_sub(&d, 0);
    send_all(fd, junk, sizeof junk);
    shutdown(fd, SHUT_WR);
    ASSERT(wait_closed(fd, 10000));
    close(fd);
  }
  ASSERT(daemon_stat(&d, "subscribe.closed_error") >= 14);
  /* The daemon goes on: a good subscriber still works. */
  struct reader r;
  int fd = live_star(&d, &r);
  reader_finish(&r);
  close(fd);
  daemon_cleanup(&d);
}

TEST(a_request_in_pieces_is_taken_and_one_never_finished_times_out) {
  struct tks_daemon d;
  daemon_start_with(&d, "  message_timeout: 1s\n",
                    "subscribe:\n  listen: \"127.0.0.1:0\"\njournal:\n  enabled: false\n");
  int fd = connect_sub(&d, 0);
  static const char req[] = "\x82\xa9subscribe\xa1*\xa4"
                            "from\xa3now";
  for (size_t i = 0; i < sizeof req - 1; i++) {
    ASSERT_EQ(send_all(fd, req + i, 1), 0);
    sleep_ms(5);
  }
  struct reader r;
  reader_init(&r, fd);
  expect_live(&r);
  reader_finish(&r);
  close(fd);
  /* Half a request, then nothing: an error after message_timeout. */
  fd = connect_sub(&d, 0);
  ASSERT_EQ(send_all(fd, req, 5), 0);
  reader_init(&r, fd);
  const msgpack_object *m = next_map(&r, 10000);
  ASSERT(m && str_is(control_of(m), "error"));
  const msgpack_object *why = get(m, "reason");
  ASSERT(why && memmem(why->via.str.ptr, why->via.str.size, "message_timeout", 15));
  ASSERT(next_map(&r, 5000) == NULL && r.eof);
  reader_finish(&r);
  close(fd);
  daemon_cleanup(&d);
}

/* A tick of ticker V, volume v, by form: 0 every field, ticker first, ts
 * as int64 (the producer's bytes go on as they are); 1 price as an
 * integer; 2 price as float32; 3 flags nil; 4 flags left out (1-4 are
 * rendered from the record: price a float64, flags ""); 5 price -0.0; 6
 * the schema's order, ts as uint64 (5 and 6 go on as they are). */
static void put_tick(struct tks_buf *b, int form, uint64_t v) {
  static const uint8_t ticker[] = {0xa6, 't', 'i', 'c', 'k', 'e', 'r', 0xa1, 'V'};
  uint8_t ts[1 + 2 + 9] = {0xa2, 't', 's', form == 6 ? 0xcf : 0xd3};
  for (int k = 0; k < 8; k++) ts[4 + k] = (uint8_t)((uint64_t)(T0 + (int64_t)v) >> (56 - 8 * k));
  uint8_t price[6 + 9] = {0xa5, 'p', 'r', 'i', 'c', 'e'};
  size_t np = 6;
  if (form == 1) {
    price[np++] = 0x02;
  } else if (form == 2) {
    memcpy(price + np, "\xca\x3f\xc0\x00\x00", 5), np += 5; /* 1.5f */
  } else {
    uint64_t bits;
    double f = form == 5 ? -0.0 : 1.5;
    memcpy(&bits, &f, 8);
    price[np++] = 0xcb;
    for (int k = 0; k < 8; k++) price[np++] = (uint8_t)(bits >> (56 - 8 * k));
  }
  uint8_t volume[7 + 9] = {0xa6, 'v', 'o', 'l', 'u', 'm', 'e', 0xcd, (uint8_t)(v >> 8), (uint8_t)v};
  static const uint8_t flags[] = {0xa5, 'f', 'l', 'a', 'g', 's', 0xa1, 'f'};
  ASSERT_EQ(tks_buf_putc(b, form == 4 ? 0x84 : 0x85), 0);
  if (form != 6) ASSERT_EQ(tks_buf_append(b, ticker, sizeof ticker), 0);
  ASSERT_EQ(tks_buf_append(b, ts, sizeof ts), 0);
  if (form == 6) ASSERT_EQ(tks_buf_append(b, ticker, sizeof ticker), 0);
  ASSERT_EQ(tks_buf_append(b, price, np), 0);
  ASSERT_EQ(tks_buf_append(b, volume, 10), 0);
  if (form == 3)
    ASSERT_EQ(tks_buf_append(b,
                             "\xa5"
                             "flags\xc0",
                             7),
              0);
  if (form != 3 && form != 4) ASSERT_EQ(tks_buf_append(b, flags, sizeof flags), 0);
}

TEST(a_tick_naming_every_field_goes_on_as_its_bytes_the_others_as_the_store_holds_them) {
  struct tks_daemon d;
  start_sub_daemon(&d, NULL, NULL);
  struct reader r;
  int fd = live_star(&d, &r);
  reader_finish(&r); /* nothing more was sent: the rest is read raw */
  /* Runs of the producer's bytes broken by rendered ticks, in one send.
   * The connection's first tick teaches its shape (lib/shape.h) and goes
   * rendered, as do ticks of another shape (4, 6 and what follows them):
   * those may come either way, as long as they say the same. */
  static const int forms[] = {0, 0, 1, 0, 0, 2, 3, 0, 5, 5, 0, 1, 0, 4, 6, 6, 0};
  enum { N = sizeof forms / sizeof forms[0], SHAPED = 13 };
  struct tks_buf in = {0};
  size_t at[N + 1];
  for (unsigned i = 0; i < N; i++) {
    at[i] = in.len;
    put_tick(&in, forms[i], 300 + i);
  }
  at[N] = in.len;
  int ing = daemon_connect_ingest(&d);
  ASSERT_EQ(send_all(ing, in.data, in.len), 0);
  close(ing);
  struct tks_buf out = {0};
  size_t off = 0;
  uint64_t deadline = now_ms() + 10000;
  for (unsigned i = 0; i < N; i++) {
    long n;
    while ((n = tks_msgpack_skip((const uint8_t *)out.data + off, out.len - off, 1 << 20)) == 0) {
      if (now_ms() > deadline) TEST_FAIL("%u of %u ticks came", i, (unsigned)N);
      char buf[4096];
      struct pollfd p = {.fd = fd, .events = POLLIN};
      if (poll(&p, 1, 100) <= 0) continue;
      ssize_t got = recv(fd, buf, sizeof buf, 0);
      ASSERT(got > 0);
      ASSERT_EQ(tks_buf_append(&out, buf, (size_t)got), 0);
    }
    ASSERT(n > 0);
    const char *m = out.data + off;
    const char *sent = in.data + at[i];
    size_t sent_len = at[i + 1] - at[i];
    int f = forms[i];
    bool same = (size_t)n == sent_len && memcmp(m, sent, sent_len) == 0;
    if ((f == 0 || f == 5) && i > 0 && i < SHAPED && !same)
      TEST_FAIL("tick %u (form %d) did not come as its producer's bytes", i, f);
    if (f >= 1 && f <= 4 && same)
      TEST_FAIL("tick %u (form %d) came as sent, not as the store holds it", i, f);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    ASSERT_EQ(msgpack_unpack_next(&u, m, (size_t)n, NULL), MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *t = &u.data;
    ASSERT(t->type == MSGPACK_OBJECT_MAP && t->via.map.size == 5);
    ASSERT_EQ(int_of(get(t, "ts")), T0 + 300 + (int64_t)i);
    ASSERT_EQ(int_of(get(t, "volume")), 300 + (int64_t)i);
    ASSERT(str_is(get(t, "ticker"), "V"));
    const msgpack_object *price = get(t, "price"), *flags = get(t, "flags");
    ASSERT(price && price->type == MSGPACK_OBJECT_FLOAT64);
    double want = f == 1 ? 2.0 : f == 5 ? -0.0 : 1.5;
    ASSERT(memcmp(&price->via.f64, &want, 8) == 0); /* -0.0 keeps its sign */
    ASSERT(str_is(flags, f == 3 || f == 4 ? "" : "f"));
    msgpack_unpacked_destroy(&u);
    off += (size_t)n;
  }
  ASSERT_EQ(daemon_stat(&d, "subscribe.sent_ticks"), N);
  tks_buf_finish(&in);
  tks_buf_finish(&out);
  close(fd);
  daemon_cleanup(&d);
}

TEST(fallback_ticks_reach_subscribers_with_their_undeclared_fields) {
  struct tks_daemon d;
  start_sub_daemon(&d, NULL, "store:\n  mode: fallback\n");
  struct reader r;
  int fd = live_star(&d, &r);
  struct tks_buf b = {0};
  struct tks_kv kv[] = {{"ticker", {.type = TKS_V_STR, .v.s = {"X", 1}}},
                        {"ts", {.type = TKS_V_INT, .v.i = T0}},
                        {"price", {.type = TKS_V_F64, .v.f = -0.0}},
                        {"volume", {.type = TKS_V_INT, .v.i = 3}},
                        {"venue", {.type = TKS_V_STR, .v.s = {"XNAS", 4}}}};
  ASSERT_EQ(tks_encode_map(&b, kv, 5), 0);
  int in = daemon_connect_ingest(&d);
  ASSERT_EQ(send_all(in, b.data, b.len), 0);
  close(in);
  const msgpack_object *m = next_map(&r, 10000);
  ASSERT(m && !control_of(m));
  ASSERT(str_is(get(m, "venue"), "XNAS"));
  ASSERT(str_is(get(m, "ticker"), "X"));
  const msgpack_object *p = get(m, "price");
  ASSERT(p->type == MSGPACK_OBJECT_FLOAT64 && p->via.f64 == 0.0 && signbit(p->via.f64));
  /* The replay renders it the same way. */
  int fd2 = connect_sub(&d, 0);
  subscribe(fd2, (const char *const[]){"X", NULL}, 0);
  struct reader r2;
  reader_init(&r2, fd2);
  m = next_map(&r2, 10000);
  ASSERT(m && !control_of(m));
  ASSERT(str_is(get(m, "venue"), "XNAS"));
  expect_live(&r2);
  tks_buf_finish(&b);
  reader_finish(&r);
  reader_finish(&r2);
  close(fd);
  close(fd2);
  daemon_cleanup(&d);
}

TEST(the_subscription_port_can_be_off) {
  struct tks_daemon d;
  daemon_start(&d, "subscribe:\n  listen: \"off\"\njournal:\n  enabled: false\n");
  char *text = daemon_request(&d, "stats text");
  char v[64];
  ASSERT_EQ(stats_text_lookup(text, "subscribe.listen", v, sizeof v), 0);
  ASSERT_STR_EQ(v, "off");
  free(text);
  daemon_cleanup(&d);
}

TEST(a_stop_closes_subscribers_cleanly) {
  struct tks_daemon d;
  start_sub_daemon(&d, NULL, NULL);
  int fd = connect_sub(&d, 4096);
  subscribe(fd, NULL, INT64_MIN);
  daemon_wait_stat(&d, "subscribe.subscribers", 1, 5000);
  send_ticks(&d, 0, 50000, 2);
  daemon_wait_stat(&d, "ticks.accepted", 50000, 20000);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  ASSERT(wait_closed(fd, 10000));
  close(fd);
  daemon_cleanup(&d);
}

/* subscribe.send_thread: on and off are what the stats say; with either,
 * readers that vanish mid-stream (a reset, with bytes still queued for
 * them) are closed while ingest runs, and the one left gets every tick. */
TEST(either_writer_closes_readers_gone_mid_stream_and_the_others_get_every_tick) {
  const char *const modes[] = {"on", "off"};
  for (int m = 0; m < 2; m++) {
    struct tks_daemon d;
    char yaml[64];
    /* (Room for every tick: the reader kept is not what is tested.) */
    snprintf(yaml, sizeof yaml, "  send_thread: %s\n  max_queue_bytes: 256MiB\n", modes[m]);
    start_sub_daemon(&d, yaml, NULL);
    char *txt = daemon_request(&d, "stats text");
    char mode[16] = "";
    ASSERT(txt && stats_text_lookup(txt, "subscribe.send_thread", mode, sizeof mode) == 0);
    free(txt);
    ASSERT_STR_EQ(mode, modes[m]);
    struct reader keep;
    int kfd = live_star(&d, &keep);
    enum { GONE = 4 };
    int gone[GONE];
    for (int i = 0; i < GONE; i++) {
      gone[i] = connect_sub(&d, 4096);
      subscribe(gone[i], NULL, INT64_MIN);
    }
    daemon_wait_stat(&d, "subscribe.subscribers", 1 + GONE, 5000);
    struct feed f = {&d, 0, 199998, 3};
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, feed_main, &f), 0);
    /* The readers reset their connections while the feed runs. */
    daemon_wait_stat(&d, "ticks.accepted", 20000, 20000);
    for (int i = 0; i < GONE; i++) {
      struct linger lg = {1, 0};
      setsockopt(gone[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      close(gone[i]);
    }
    expect_sequences(&keep, 3, 199998 / 3, true);
    pthread_join(th, NULL);
    daemon_expect_stat(&d, "subscribe.subscribers", 1, 10000);
    if (m == 0)
      ASSERT(daemon_stat(&d, "subscribe.send_thread_writes") > 0);
    else
      ASSERT_EQ(daemon_stat(&d, "subscribe.send_thread_writes"), 0);
    reader_finish(&keep);
    close(kfd);
    daemon_expect_stat(&d, "subscribe.subscribers", 0, 10000);
    daemon_cleanup(&d);
  }
}

/* Sends 4 ticks of form 0 (ticker first) once tail has subscribed. */
static void *tail_feed(void *arg) {
  const struct tks_daemon *d = arg;
  daemon_wait_stat(d, "subscribe.subscribers", 1, 10000);
  struct tks_buf b = {0};
  for (int i = 0; i < 4; i++) put_tick(&b, 0, 700 + (uint64_t)i);
  int fd = daemon_connect_ingest(d);
  send_all(fd, b.data, b.len);
  close(fd);
  tks_buf_finish(&b);
  return NULL;
}

TEST(tail_prints_live_ticks_in_the_schemas_order_whatever_the_producers) {
  struct tks_daemon d;
  start_sub_daemon(&d, NULL, NULL);
  pthread_t th;
  ASSERT_EQ(pthread_create(&th, NULL, tail_feed, &d), 0);
  struct cmd_result r;
  char *argv[] = {(char *)harness_tickslab(), "--config", d.config, "tail", "--count", "4", NULL};
  run_cmd(argv, NULL, NULL, 20000, &r);
  pthread_join(th, NULL);
  ASSERT_EQ(r.code, 0);
  /* The first came rendered, the others as their producer's bytes. */
  char want[600];
  int n = 0;
  for (int i = 0; i < 4; i++)
    n += snprintf(want + n, sizeof want - (size_t)n,
                  "{\"ts\":%lld,\"ticker\":\"V\",\"price\":1.5,\"volume\":%d,\"flags\":\"f\"}\n",
                  T0 + 700 + i, 700 + i);
  ASSERT_STR_EQ(r.out, want);
  cmd_result_finish(&r);
  daemon_cleanup(&d);
}

TEST(tickslab_tail_prints_replayed_and_live_ticks_as_json_or_csv) {
  struct tks_daemon d;
  start_sub_daemon(&d, NULL, NULL);
  send_ticks(&d, 0, 10, 2); /* S0: ts T0, T0+2, ...; S1: T0+1, ... */
  daemon_wait_stat(&d, "ticks.accepted", 10, 10000);
  struct cmd_result r;
  char *argv[] = {(char *)harness_tickslab(),
                  "--config",
                  d.config,
                  "tail",
                  "S1",
                  "--from",
                  "0",
                  "--count",
                  "3",
                  "--ts",
                  "string",
                  NULL};
  run_cmd(argv, NULL, NULL, 20000, &r);
  ASSERT_EQ(r.code, 0);
  char want[512];
  snprintf(want, sizeof want,
           "{\"ts\":\"%lld\",\"ticker\":\"S1\",\"price\":1.5,\"volume\":0,\"flags\":\"x\"}\n"
           "{\"ts\":\"%lld\",\"ticker\":\"S1\",\"price\":1.5,\"volume\":1,\"flags\":\"\"}\n"
           "{\"ts\":\"%lld\",\"ticker\":\"S1\",\"price\":1.5,\"volume\":2,\"flags\":\"x\"}\n",
           T0 + 1, T0 + 3, T0 + 5);
  ASSERT_STR_EQ(r.out, want);
  cmd_result_finish(&r);
  char *csv_argv[] = {(char *)harness_tickslab(),
                      "--config",
                      d.config,
                      "tail",
                      "--from",
                      "2023-11-14T22:13:20Z",
                      "--count",
                      "2",
                      "--csv",
                      "--ts",
                      "iso",
                      NULL};
  run_cmd(csv_argv, NULL, NULL, 20000, &r);
  ASSERT_EQ(r.code, 0);
  ASSERT_STR_EQ(r.out, "ts,ticker,price,volume,flags\n"
                       "2023-11-14T22:13:20.000000000Z,S0,1.5,0,x\n"
                       "2023-11-14T22:13:20.000000002Z,S0,1.5,1,x\n");
  cmd_result_finish(&r);
  /* A bad --from is a usage error; subscriptions off say so. */
  char *bad_argv[] = {
      (char *)harness_tickslab(), "--config", d.config, "tail", "--from", "soon", NULL};
  run_cmd(bad_argv, NULL, NULL, 20000, &r);
  ASSERT_EQ(r.code, 2);
  ASSERT_CONTAINS(r.err, "bad --from 'soon'");
  cmd_result_finish(&r);
  daemon_cleanup(&d);
}

TEST_MAIN()
