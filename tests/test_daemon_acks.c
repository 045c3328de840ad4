/*
 * Producer acknowledgements against the real tickslabd (issue 11, item 2):
 * a client whose first message is {"$":"hello","acks":true} gets a welcome,
 * then acks whose counts match what the daemon stored, and each rejected
 * tick's seq, reason and field; durable follows the fsyncs (`sync`); a
 * named producer reconnecting after kill -9 (and a cut of what was never
 * fsynced, as a power loss leaves it) is told exactly where it stands, so
 * that it resends the tail and the store ends with every tick once, also
 * across a checkpoint that deleted the segments its positions were in.
 * Hostile hellos each get an error naming what is wrong and a close; a
 * client that says no hello gets nothing back.
 */
#include <dirent.h>
#include <errno.h>
#include <msgpack.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "test.h"
#include "util.h"
#include "wire.h"

#define TS0 INT64_C(1700000000000000000)
#define WAIT_MS 10000

/* ---- a producer client ---- */

struct msg {
  char kind[16]; /* the "$" value */
  uint64_t accepted, rejected, durable, seq, position, rejects;
  bool has_seq, has_field, has_producer;
  char reason[32], field[80], error[300], journal[8], fsync[16], producer[80];
};

struct client {
  int fd;
  msgpack_unpacker up;
  bool eof;
  /* What the acks said so far, and the rejects and omissions told. */
  struct msg last_ack;
  bool have_ack;
  struct msg rejects[4096];
  unsigned nrejects;
  uint64_t omitted;
};

static void copy_str(char *out, size_t n, const msgpack_object *v) {
  if (v->type != MSGPACK_OBJECT_STR) TEST_FAIL("a string value expected");
  size_t len = v->via.str.size < n - 1 ? v->via.str.size : n - 1;
  memcpy(out, v->via.str.ptr, len);
  out[len] = '\0';
}

static uint64_t as_u64(const msgpack_object *v) {
  if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER) TEST_FAIL("a count expected");
  return v->via.u64;
}

/* A message the daemon wrote: a map whose first key is "$". */
static void to_msg(const msgpack_object *o, struct msg *m) {
  memset(m, 0, sizeof *m);
  if (o->type != MSGPACK_OBJECT_MAP || o->via.map.size == 0)
    TEST_FAIL("the daemon wrote a message that is not a map");
  const msgpack_object_kv *kv = o->via.map.ptr;
  if (kv[0].key.type != MSGPACK_OBJECT_STR || kv[0].key.via.str.size != 1 ||
      kv[0].key.via.str.ptr[0] != '$')
    TEST_FAIL("the first key of a message is not \"$\"");
  copy_str(m->kind, sizeof m->kind, &kv[0].val);
  for (uint32_t i = 1; i < o->via.map.size; i++) {
    char k[32];
    copy_str(k, sizeof k, &kv[i].key);
    const msgpack_object *v = &kv[i].val;
    if (!strcmp(k, "accepted"))
      m->accepted = as_u64(v);
    else if (!strcmp(k, "rejected"))
      m->rejected = as_u64(v);
    else if (!strcmp(k, "durable"))
      m->durable = as_u64(v);
    else if (!strcmp(k, "seq"))
      m->seq = as_u64(v), m->has_seq = true;
    else if (!strcmp(k, "position"))
      m->position = as_u64(v);
    else if (!strcmp(k, "rejects"))
      m->rejects = as_u64(v);
    else if (!strcmp(k, "reason"))
      copy_str(m->reason, sizeof m->reason, v);
    else if (!strcmp(k, "field"))
      copy_str(m->field, sizeof m->field, v), m->has_field = true;
    else if (!strcmp(k, "error"))
      copy_str(m->error, sizeof m->error, v);
    else if (!strcmp(k, "journal"))
      copy_str(m->journal, sizeof m->journal, v);
    else if (!strcmp(k, "fsync"))
      copy_str(m->fsync, sizeof m->fsync, v);
    else if (!strcmp(k, "producer"))
      copy_str(m->producer, sizeof m->producer, v), m->has_producer = true;
    else
      TEST_FAIL("unexpected key '%s' in a %s message", k, m->kind);
  }
  if (!strcmp(m->kind, "ack") && o->via.map.size != 4)
    TEST_FAIL("an ack of %u keys, want $, accepted, rejected, durable", o->via.map.size);
}

static void client_open_fd(struct client *cl, int fd) {
  memset(cl, 0, sizeof *cl);
  cl->fd = fd;
  if (!msgpack_unpacker_init(&cl->up, 1 << 16)) TEST_FAIL("msgpack_unpacker_init");
}

static void client_close(struct client *cl) {
  if (cl->fd >= 0) close(cl->fd);
  cl->fd = -1;
  msgpack_unpacker_destroy(&cl->up);
}

/* The next message, within ms: 1, 0 (none in time) or -1 (EOF first). */
static int next_msg(struct client *cl, struct msg *m, int ms) {
  uint64_t deadline = now_ms() + (uint64_t)ms;
  for (;;) {
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    msgpack_unpack_return r = msgpack_unpacker_next(&cl->up, &u);
    if (r == MSGPACK_UNPACK_SUCCESS) {
      to_msg(&u.data, m);
      msgpack_unpacked_destroy(&u);
      if (!strcmp(m->kind, "ack")) cl->last_ack = *m, cl->have_ack = true;
      if (!strcmp(m->kind, "reject") && cl->nrejects < TKS_ARRAY_SIZE(cl->rejects))
        cl->rejects[cl->nrejects++] = *m;
      if (!strcmp(m->kind, "omitted")) cl->omitted += m->rejects;
      return 1;
    }
    msgpack_unpacked_destroy(&u);
    if (r != MSGPACK_UNPACK_CONTINUE) TEST_FAIL("the daemon wrote bytes that are not msgpack");
    if (cl->eof) return -1;
    uint64_t now = now_ms();
    if (now >= deadline) return 0;
    struct pollfd p = {.fd = cl->fd, .events = POLLIN};
    if (poll(&p, 1, (int)(deadline - now)) <= 0) continue;
    if (!msgpack_unpacker_reserve_buffer(&cl->up, 1 << 16)) TEST_FAIL("reserve");
    ssize_t n = recv(cl->fd, msgpack_unpacker_buffer(&cl->up), 1 << 16, 0);
    if (n <= 0) {
      cl->eof = true;
      continue;
    }
    msgpack_unpacker_buffer_consumed(&cl->up, (size_t)n);
  }
}

/* Reads until an ack says at least accepted, rejected and durable. */
static void wait_ack(struct client *cl, uint64_t accepted, uint64_t rejected, uint64_t durable) {
  uint64_t deadline = now_ms() + WAIT_MS;
  while (!(cl->have_ack && cl->last_ack.accepted >= accepted && cl->last_ack.rejected >= rejected &&
           cl->last_ack.durable >= durable)) {
    struct msg m;
    int r = next_msg(cl, &m, (int)(deadline > now_ms() ? deadline - now_ms() : 0));
    if (r <= 0)
      TEST_FAIL("no ack of accepted %llu rejected %llu durable %llu (last: %llu %llu %llu)%s",
                (unsigned long long)accepted, (unsigned long long)rejected,
                (unsigned long long)durable, (unsigned long long)cl->last_ack.accepted,
                (unsigned long long)cl->last_ack.rejected, (unsigned long long)cl->last_ack.durable,
                r < 0 ? ": the connection ended" : "");
    if (!strcmp(m.kind, "error")) TEST_FAIL("error from the daemon: %s", m.error);
  }
  ASSERT_U64_EQ(cl->last_ack.accepted, accepted);
  ASSERT_U64_EQ(cl->last_ack.rejected, rejected);
}

static void send_hello(int fd, const char *producer) {
  struct wire w;
  wire_init(&w);
  msgpack_pack_map(&w.pk, producer ? 3 : 2);
  pk_str(&w.pk, "$");
  pk_str(&w.pk, "hello");
  pk_str(&w.pk, "acks");
  msgpack_pack_true(&w.pk);
  if (producer) {
    pk_str(&w.pk, "producer");
    pk_str(&w.pk, producer);
  }
  wire_send(fd, &w);
  wire_finish(&w);
}

/* Connects, says hello and reads the welcome. */
static void client_hello(struct client *cl, const struct tks_daemon *d, const char *producer,
                         struct msg *welcome) {
  client_open_fd(cl, daemon_connect_ingest(d));
  send_hello(cl->fd, producer);
  if (next_msg(cl, welcome, WAIT_MS) != 1) TEST_FAIL("no welcome");
  ASSERT_STR_EQ(welcome->kind, "welcome");
  ASSERT_EQ(welcome->has_producer, producer != NULL);
  if (producer) ASSERT_STR_EQ(welcome->producer, producer);
}

static void pack_tick(msgpack_packer *pk, const char *ticker, int64_t ts) {
  msgpack_pack_map(pk, 4);
  pk_str(pk, "ticker");
  pk_str(pk, ticker);
  pk_str(pk, "ts");
  msgpack_pack_int64(pk, ts);
  pk_str(pk, "price");
  msgpack_pack_double(pk, 10.5);
  pk_str(pk, "volume");
  msgpack_pack_int64(pk, 1);
}

/* Ticks k in [from, to) of ticker: ts TS0 + k, in one write. */
static void send_ticks(int fd, const char *ticker, uint64_t from, uint64_t to) {
  struct wire w;
  wire_init(&w);
  for (uint64_t k = from; k < to; k++) pack_tick(&w.pk, ticker, TS0 + (int64_t)k);
  wire_send(fd, &w);
  wire_finish(&w);
}

static void request_ok(const struct tks_daemon *d, const char *req) {
  char *r = daemon_request(d, req);
  if (!r || !strstr(r, "\"ok\":true")) TEST_FAIL("%s: %s", req, r ? r : "(no answer)");
  free(r);
}

/* Rows of `range SYMBOL` over all time, and whether any ts came twice
 * (ts are TS0 + k, k < 100000). */
static uint64_t range_rows(const struct tks_daemon *d, const char *sym, bool *dup) {
  char req[128];
  snprintf(req, sizeof req, "range %s 0 %lld", sym, (long long)INT64_MAX);
  char *r = daemon_request_big(d, req, WAIT_MS);
  if (!r) TEST_FAIL("%s: no answer", req);
  static unsigned char seen[100000];
  memset(seen, 0, sizeof seen);
  *dup = false;
  uint64_t rows = 0;
  for (const char *p = r; (p = strstr(p, "\"ts\":")); p += 5) {
    long long ts = strtoll(p + 5, NULL, 10);
    long long k = ts - (long long)TS0;
    if (k < 0 || k >= (long long)sizeof seen) TEST_FAIL("a ts out of the test's range: %lld", ts);
    if (seen[k]++) *dup = true;
    rows++;
  }
  free(r);
  return rows;
}

/* ---- counts, rejects, durable ---- */

TEST(acks_count_what_the_daemon_stored_and_tell_each_reject_with_seq_reason_and_field) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  struct client cl;
  struct msg w;
  client_hello(&cl, &d, NULL, &w);
  ASSERT_U64_EQ(w.position, 0);
  ASSERT_STR_EQ(w.journal, "on");
  ASSERT_STR_EQ(w.fsync, "interval");

  /* seq 0..99 good but for 10 (ts a string), 50 (an unknown field),
   * 99 (no price): 97 accepted, 3 rejected. */
  struct wire b;
  wire_init(&b);
  for (int k = 0; k < 100; k++) {
    if (k == 10) {
      msgpack_pack_map(&b.pk, 4);
      pk_str(&b.pk, "ticker"), pk_str(&b.pk, "AAPL");
      pk_str(&b.pk, "ts"), pk_str(&b.pk, "yesterday");
      pk_str(&b.pk, "price"), msgpack_pack_double(&b.pk, 1.0);
      pk_str(&b.pk, "volume"), msgpack_pack_int64(&b.pk, 1);
    } else if (k == 50) {
      msgpack_pack_map(&b.pk, 5);
      pk_str(&b.pk, "ticker"), pk_str(&b.pk, "AAPL");
      pk_str(&b.pk, "bogus"), msgpack_pack_int64(&b.pk, 1);
      pk_str(&b.pk, "ts"), msgpack_pack_int64(&b.pk, TS0 + k);
      pk_str(&b.pk, "price"), msgpack_pack_double(&b.pk, 1.0);
      pk_str(&b.pk, "volume"), msgpack_pack_int64(&b.pk, 1);
    } else if (k == 99) {
      msgpack_pack_map(&b.pk, 3);
      pk_str(&b.pk, "ticker"), pk_str(&b.pk, "AAPL");
      pk_str(&b.pk, "ts"), msgpack_pack_int64(&b.pk, TS0 + k);
      pk_str(&b.pk, "volume"), msgpack_pack_int64(&b.pk, 1);
    } else {
      pack_tick(&b.pk, "AAPL", TS0 + k);
    }
  }
  wire_send(cl.fd, &b);
  wire_finish(&b);
  wait_ack(&cl, 97, 3, 0);
  ASSERT_EQ(cl.nrejects, 3);
  ASSERT_U64_EQ(cl.rejects[0].seq, 10);
  ASSERT_STR_EQ(cl.rejects[0].reason, "bad_type");
  ASSERT_STR_EQ(cl.rejects[0].field, "ts");
  ASSERT_U64_EQ(cl.rejects[1].seq, 50);
  ASSERT_STR_EQ(cl.rejects[1].reason, "unknown_field");
  ASSERT_STR_EQ(cl.rejects[1].field, "bogus");
  ASSERT_U64_EQ(cl.rejects[2].seq, 99);
  ASSERT_STR_EQ(cl.rejects[2].reason, "missing_field");
  ASSERT_STR_EQ(cl.rejects[2].field, "price");
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.accepted"), 97);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), 97);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.rejected"), 3);
  ASSERT_U64_EQ(daemon_stat(&d, "acks.connections"), 1);
  ASSERT_U64_EQ(daemon_stat(&d, "acks.rejects_reported"), 3);

  /* durable: what `sync` made durable is told at once after the fsync. */
  request_ok(&d, "sync");
  wait_ack(&cl, 97, 3, 97);
  ASSERT_U64_EQ(cl.last_ack.durable, 97);

  /* The stream's end: the last counts, then the daemon closes. */
  send_ticks(cl.fd, "AAPL", 100, 110);
  shutdown(cl.fd, SHUT_WR);
  struct msg m;
  int r;
  while ((r = next_msg(&cl, &m, WAIT_MS)) == 1) continue;
  ASSERT_EQ(r, -1);
  ASSERT_U64_EQ(cl.last_ack.accepted, 107);
  ASSERT(daemon_stat(&d, "acks.sent") >= 3);
  client_close(&cl);
  daemon_expect_stat(&d, "acks.connections", 0, WAIT_MS);
  daemon_cleanup(&d);
}

TEST(with_fsync_always_every_accepted_tick_becomes_durable_without_a_sync) {
  struct tks_daemon d;
  daemon_prepare(&d, NULL, NULL);
  char yaml[512];
  snprintf(yaml, sizeof yaml, "journal:\n  dir: \"%s/journal\"\n  fsync: always\n", d.dir);
  daemon_write_config(&d, NULL, yaml);
  daemon_spawn(&d, NULL);
  daemon_wait_ready(&d);
  struct client cl;
  struct msg w;
  client_hello(&cl, &d, "always", &w);
  ASSERT_STR_EQ(w.fsync, "always");
  for (int round = 0; round < 5; round++) {
    send_ticks(cl.fd, "MSFT", (uint64_t)round * 100, (uint64_t)round * 100 + 100);
    wait_ack(&cl, (uint64_t)round * 100 + 100, 0, (uint64_t)round * 100 + 100);
  }
  client_close(&cl);
  daemon_cleanup(&d);
}

TEST(a_client_without_hello_gets_nothing_back) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  int fd = daemon_connect_ingest(&d);
  send_ticks(fd, "AAPL", 0, 50);
  struct wire b; /* a reject too: still nothing written back */
  wire_init(&b);
  msgpack_pack_map(&b.pk, 1);
  pk_str(&b.pk, "bogus");
  msgpack_pack_int64(&b.pk, 1);
  wire_send(fd, &b);
  wire_finish(&b);
  daemon_expect_stat(&d, "ticks.accepted", 50, WAIT_MS);
  daemon_expect_stat(&d, "ticks.rejected", 1, WAIT_MS);
  shutdown(fd, SHUT_WR);
  char *got = read_until(fd, "", 0, WAIT_MS, NULL);
  ASSERT_EQ(strlen(got), 0);
  free(got);
  close(fd);
  ASSERT_U64_EQ(daemon_stat(&d, "acks.welcomes"), 0);
  daemon_cleanup(&d);
}

TEST(a_hello_with_acks_false_is_taken_and_nothing_comes_back) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  int fd = daemon_connect_ingest(&d);
  struct wire w;
  wire_init(&w);
  msgpack_pack_map(&w.pk, 2);
  pk_str(&w.pk, "$"), pk_str(&w.pk, "hello");
  pk_str(&w.pk, "acks"), msgpack_pack_false(&w.pk);
  wire_send(fd, &w);
  wire_finish(&w);
  send_ticks(fd, "AAPL", 0, 20);
  daemon_expect_stat(&d, "ticks.accepted", 20, WAIT_MS);
  shutdown(fd, SHUT_WR);
  char *got = read_until(fd, "", 0, WAIT_MS, NULL);
  ASSERT_EQ(strlen(got), 0);
  free(got);
  close(fd);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.rejected"), 0);
  daemon_cleanup(&d);
}

TEST(a_hello_after_the_first_message_is_rejected_as_bad_key_with_its_seq) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  struct client cl;
  struct msg w;
  client_hello(&cl, &d, NULL, &w);
  send_ticks(cl.fd, "AAPL", 0, 2);
  send_hello(cl.fd, NULL); /* seq 2 */
  send_ticks(cl.fd, "AAPL", 2, 3);
  wait_ack(&cl, 3, 1, 0);
  ASSERT_EQ(cl.nrejects, 1);
  ASSERT_U64_EQ(cl.rejects[0].seq, 2);
  ASSERT_STR_EQ(cl.rejects[0].reason, "bad_key");
  ASSERT_STR_EQ(cl.rejects[0].field, "$");
  client_close(&cl);
  /* Without acks: after a tick, a hello is a tick with the key "$". */
  int fd = daemon_connect_ingest(&d);
  send_ticks(fd, "AAPL", 3, 4);
  send_hello(fd, NULL);
  send_ticks(fd, "AAPL", 4, 5);
  daemon_expect_stat(&d, "ticks.accepted", 5, WAIT_MS);
  daemon_expect_stat(&d, "ticks.rejected_by_reason.bad_key", 2, WAIT_MS);
  close(fd);
  daemon_cleanup(&d);
}

/* ---- hostile hellos ---- */

/* The bytes of a hello-like first message, and the error's words. */
struct bad_hello {
  const char *name;
  void (*pack)(msgpack_packer *pk);
  const char *error;
};

static void h_acks_string(msgpack_packer *pk) {
  msgpack_pack_map(pk, 2);
  pk_str(pk, "$"), pk_str(pk, "hello");
  pk_str(pk, "acks"), pk_str(pk, "yes");
}
static void h_acks_missing(msgpack_packer *pk) {
  msgpack_pack_map(pk, 1);
  pk_str(pk, "$"), pk_str(pk, "hello");
}
static void h_long_name(msgpack_packer *pk) {
  char name[66];
  memset(name, 'x', 65);
  name[65] = '\0';
  msgpack_pack_map(pk, 3);
  pk_str(pk, "$"), pk_str(pk, "hello");
  pk_str(pk, "acks"), msgpack_pack_true(pk);
  pk_str(pk, "producer"), pk_str(pk, name);
}
static void h_bad_utf8(msgpack_packer *pk) {
  msgpack_pack_map(pk, 3);
  pk_str(pk, "$"), pk_str(pk, "hello");
  pk_str(pk, "acks"), msgpack_pack_true(pk);
  pk_str(pk, "producer"), pk_strn(pk, "ab\xc3\x28", 4);
}
static void h_control(msgpack_packer *pk) {
  msgpack_pack_map(pk, 3);
  pk_str(pk, "$"), pk_str(pk, "hello");
  pk_str(pk, "acks"), msgpack_pack_true(pk);
  pk_str(pk, "producer"), pk_str(pk, "a\nb");
}
static void h_empty_name(msgpack_packer *pk) {
  msgpack_pack_map(pk, 3);
  pk_str(pk, "$"), pk_str(pk, "hello");
  pk_str(pk, "acks"), msgpack_pack_true(pk);
  pk_str(pk, "producer"), pk_str(pk, "");
}
static void h_name_int(msgpack_packer *pk) {
  msgpack_pack_map(pk, 3);
  pk_str(pk, "$"), pk_str(pk, "hello");
  pk_str(pk, "acks"), msgpack_pack_true(pk);
  pk_str(pk, "producer"), msgpack_pack_int64(pk, 7);
}
static void h_nested(msgpack_packer *pk) {
  msgpack_pack_map(pk, 2);
  pk_str(pk, "$"), pk_str(pk, "hello");
  pk_str(pk, "acks");
  msgpack_pack_map(pk, 1);
  pk_str(pk, "acks"), msgpack_pack_true(pk);
}
static void h_unknown_key(msgpack_packer *pk) {
  msgpack_pack_map(pk, 3);
  pk_str(pk, "$"), pk_str(pk, "hello");
  pk_str(pk, "acks"), msgpack_pack_true(pk);
  pk_str(pk, "window"), msgpack_pack_int64(pk, 5);
}
static void h_not_hello(msgpack_packer *pk) {
  msgpack_pack_map(pk, 2);
  pk_str(pk, "$"), pk_str(pk, "ack");
  pk_str(pk, "acks"), msgpack_pack_true(pk);
}
static void h_twice(msgpack_packer *pk) {
  msgpack_pack_map(pk, 3);
  pk_str(pk, "$"), pk_str(pk, "hello");
  pk_str(pk, "acks"), msgpack_pack_true(pk);
  pk_str(pk, "acks"), msgpack_pack_true(pk);
}
static void h_name_without_acks(msgpack_packer *pk) {
  msgpack_pack_map(pk, 3);
  pk_str(pk, "$"), pk_str(pk, "hello");
  pk_str(pk, "acks"), msgpack_pack_false(pk);
  pk_str(pk, "producer"), pk_str(pk, "p");
}
static void h_oversized(msgpack_packer *pk) {
  static char big[2000];
  memset(big, 'y', sizeof big - 1);
  msgpack_pack_map(pk, 3);
  pk_str(pk, "$"), pk_str(pk, "hello");
  pk_str(pk, "acks"), msgpack_pack_true(pk);
  pk_str(pk, "producer"), pk_str(pk, big);
}
static void h_deep(msgpack_packer *pk) {
  msgpack_pack_map(pk, 2);
  pk_str(pk, "$"), pk_str(pk, "hello");
  pk_str(pk, "acks");
  for (int i = 0; i < 40; i++) msgpack_pack_array(pk, 1);
  msgpack_pack_true(pk);
}

static const struct bad_hello bad_hellos[] = {
    {"acks a string", h_acks_string, "acks is not true or false"},
    {"acks missing", h_acks_missing, "acks missing"},
    {"a 65-byte producer", h_long_name, "producer is over 64 bytes"},
    {"a producer not UTF-8", h_bad_utf8, "not valid UTF-8"},
    {"a producer with a newline", h_control, "control character"},
    {"an empty producer", h_empty_name, "producer is empty"},
    {"a producer that is a number", h_name_int, "producer is not a string"},
    {"a map as acks", h_nested, "acks is not true or false"},
    {"an unknown key", h_unknown_key, "unknown key 'window'"},
    {"another control message first", h_not_hello, "other than hello"},
    {"acks twice", h_twice, "acks given twice"},
    {"a producer without acks", h_name_without_acks, "needs \"acks\":true"},
    {"a 2 KB hello", h_oversized, "over 1024 bytes"},
    {"nesting 40 deep", h_deep, "not msgpack (too_deep)"},
};

TEST(each_hostile_hello_gets_an_error_naming_it_and_a_close) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  unsigned n = TKS_ARRAY_SIZE(bad_hellos);
  for (unsigned i = 0; i < n; i++) {
    struct client cl;
    client_open_fd(&cl, daemon_connect_ingest(&d));
    struct wire w;
    wire_init(&w);
    bad_hellos[i].pack(&w.pk);
    wire_send(cl.fd, &w);
    wire_finish(&w);
    send_ticks(cl.fd, "AAPL", i, i + 1); /* not read: the connection ends at the hello */
    struct msg m;
    if (next_msg(&cl, &m, WAIT_MS) != 1) TEST_FAIL("%s: no answer", bad_hellos[i].name);
    if (strcmp(m.kind, "error") != 0 || !strstr(m.error, bad_hellos[i].error))
      TEST_FAIL("%s: got %s '%s', want an error with '%s'", bad_hellos[i].name, m.kind, m.error,
                bad_hellos[i].error);
    int r = next_msg(&cl, &m, WAIT_MS);
    if (r != -1) TEST_FAIL("%s: the connection stayed open (%d)", bad_hellos[i].name, r);
    client_close(&cl);
  }
  daemon_expect_stat(&d, "acks.hellos_refused", n, WAIT_MS);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.accepted"), 0);
  ASSERT_U64_EQ(daemon_stat(&d, "acks.producers"), 0);
  /* A hello cut short is waited for, then taken whole. */
  int fd = daemon_connect_ingest(&d);
  struct wire w;
  wire_init(&w);
  msgpack_pack_map(&w.pk, 2);
  pk_str(&w.pk, "$"), pk_str(&w.pk, "hello");
  pk_str(&w.pk, "acks"), msgpack_pack_true(&w.pk);
  for (size_t k = 0; k < w.sb.size; k++) {
    if (send_all(fd, w.sb.data + k, 1) != 0) TEST_FAIL("send");
    sleep_ms(2);
  }
  wire_finish(&w);
  struct client cl;
  client_open_fd(&cl, fd);
  struct msg m;
  if (next_msg(&cl, &m, WAIT_MS) != 1) TEST_FAIL("no welcome for a hello sent a byte at a time");
  ASSERT_STR_EQ(m.kind, "welcome");
  send_ticks(fd, "AAPL", 0, 5);
  wait_ack(&cl, 5, 0, 0);
  client_close(&cl);
  daemon_cleanup(&d);
}

TEST(a_protocol_error_on_a_connection_with_acks_is_told_with_its_seq_then_closed) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  struct client cl;
  struct msg w;
  client_hello(&cl, &d, NULL, &w);
  send_ticks(cl.fd, "AAPL", 0, 4);
  if (send_all(cl.fd, "\xc1", 1) != 0) TEST_FAIL("send");
  struct msg m;
  bool error = false;
  int r;
  while ((r = next_msg(&cl, &m, WAIT_MS)) == 1) {
    if (strcmp(m.kind, "error") == 0) {
      ASSERT_CONTAINS(m.error, "malformed");
      ASSERT(m.has_seq);
      ASSERT_U64_EQ(m.seq, 4);
      error = true;
    }
  }
  ASSERT_EQ(r, -1);
  ASSERT(error);
  ASSERT_U64_EQ(cl.last_ack.accepted, 4);
  client_close(&cl);
  daemon_cleanup(&d);
}

/* ---- bounded reject details ---- */

TEST(reject_details_past_the_bound_are_counted_and_said_to_be_omitted) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  struct client cl;
  struct msg w;
  client_hello(&cl, &d, NULL, &w);
  /* 5000 bad ticks in one write, not read for now: over 1000 a second
   * and over the bytes a producer may leave unread. */
  struct wire b;
  wire_init(&b);
  for (int k = 0; k < 5000; k++) {
    msgpack_pack_map(&b.pk, 1);
    pk_str(&b.pk, "ticker");
    pk_str(&b.pk, "AAPL");
  }
  wire_send(cl.fd, &b);
  wire_finish(&b);
  daemon_expect_stat(&d, "ticks.rejected", 5000, WAIT_MS);
  wait_ack(&cl, 0, 5000, 0);
  struct msg m;
  while (next_msg(&cl, &m, 200) == 1) continue; /* what is still in flight */
  ASSERT(cl.nrejects <= 1000 * 2); /* at most one second's more, if the reads spanned two */
  ASSERT(cl.omitted > 0);
  ASSERT_U64_EQ(cl.nrejects + cl.omitted, 5000);
  for (unsigned i = 1; i < cl.nrejects; i++) ASSERT(cl.rejects[i].seq > cl.rejects[i - 1].seq);
  ASSERT_U64_EQ(daemon_stat(&d, "acks.rejects_reported") + daemon_stat(&d, "acks.rejects_omitted"),
                5000);
  client_close(&cl);
  daemon_cleanup(&d);
}

/* ---- named producers: where they stand ---- */

/* 1024 names are kept (daemon.h TKS_MAX_PRODUCERS); a new one past them is
 * refused with the reason, a known one still comes back, an unnamed hello
 * and plain ticks go on. */
TEST_TIMEOUT(past_1024_named_producers_a_new_name_is_refused_and_the_rest_go_on, 120) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  char name[32];
  struct client cl;
  struct msg w;
  for (int k = 0; k < 1024; k++) {
    snprintf(name, sizeof name, "feed-%04d", k);
    client_hello(&cl, &d, name, &w);
    client_close(&cl);
  }
  /* The 1025th: an error naming the limit, then the close. */
  client_open_fd(&cl, daemon_connect_ingest(&d));
  send_hello(cl.fd, "feed-1024");
  struct msg m;
  ASSERT_EQ(next_msg(&cl, &m, WAIT_MS), 1);
  ASSERT_STR_EQ(m.kind, "error");
  ASSERT(strstr(m.error, "1024 producers"));
  while (next_msg(&cl, &m, WAIT_MS) == 1) continue;
  ASSERT(cl.eof);
  client_close(&cl);
  /* A known name, an unnamed hello and a plain connection still work. */
  client_hello(&cl, &d, "feed-0007", &w);
  send_ticks(cl.fd, "AAPL", 0, 10);
  wait_ack(&cl, 10, 0, 0);
  client_close(&cl);
  client_hello(&cl, &d, NULL, &w);
  send_ticks(cl.fd, "AAPL", 10, 20);
  wait_ack(&cl, 10, 0, 0);
  client_close(&cl);
  int fd = daemon_connect_ingest(&d);
  send_ticks(fd, "AAPL", 20, 30);
  close(fd);
  daemon_expect_stat(&d, "ticks.accepted", 30, WAIT_MS);
  daemon_cleanup(&d);
}

/* The newest journal segment of dir/journal and its size. */
static void newest_segment(const struct tks_daemon *d, char *path, size_t n, off_t *size) {
  char dir[256];
  snprintf(dir, sizeof dir, "%s/journal", d->dir);
  DIR *dp = opendir(dir);
  if (!dp) TEST_FAIL("opendir %s", dir);
  char best[256] = "";
  struct dirent *e;
  while ((e = readdir(dp))) {
    size_t l = strlen(e->d_name);
    if (strncmp(e->d_name, "journal-", 8) == 0 && l > 4 && !strcmp(e->d_name + l - 4, ".tkj") &&
        strcmp(e->d_name, best) > 0)
      snprintf(best, sizeof best, "%s", e->d_name);
  }
  closedir(dp);
  if (!best[0]) TEST_FAIL("no journal segment in %s", dir);
  snprintf(path, n, "%s/%s", dir, best);
  struct stat st;
  if (stat(path, &st) != 0) TEST_FAIL("stat %s", path);
  *size = st.st_size;
}

static const char *interval_1h(struct tks_daemon *d, char *yaml, size_t n) {
  snprintf(yaml, n,
           "journal:\n  dir: \"%s/journal\"\n  fsync: interval\n  fsync_interval: 1h\n"
           "  checkpoint_interval: 0s\n  checkpoint_bytes: 0\nquery:\n  max_rows: 100000\n",
           d->dir);
  return yaml;
}

TEST_TIMEOUT(after_kill_9_a_named_producer_resends_exactly_the_non_durable_tail, 120) {
  struct tks_daemon d;
  char yaml[1024];
  daemon_prepare(&d, NULL, NULL);
  daemon_write_config(&d, NULL, interval_1h(&d, yaml, sizeof yaml));
  daemon_spawn(&d, NULL);
  daemon_wait_ready(&d);

  /* 500 ticks made durable by `sync`, then 300 more accepted, written to
   * the file but never fsynced. */
  struct client cl;
  struct msg w;
  client_hello(&cl, &d, "feed-A", &w);
  ASSERT_U64_EQ(w.position, 0);
  send_ticks(cl.fd, "FEED", 0, 500);
  wait_ack(&cl, 500, 0, 0);
  request_ok(&d, "sync");
  wait_ack(&cl, 500, 0, 500);
  char seg[512];
  off_t durable_size, size;
  newest_segment(&d, seg, sizeof seg, &durable_size);
  send_ticks(cl.fd, "FEED", 500, 800);
  wait_ack(&cl, 800, 0, 500);
  ASSERT_U64_EQ(cl.last_ack.durable, 500);
  daemon_expect_stat(&d, "journal.written_ticks", 800, WAIT_MS);
  ASSERT_EQ(daemon_stop(&d, SIGKILL), 128 + SIGKILL);
  client_close(&cl);

  /* What was not fsynced is lost, as after a power cut: the segment cut
   * back to its size at the fsync. */
  char seg2[512];
  newest_segment(&d, seg2, sizeof seg2, &size);
  ASSERT_STR_EQ(seg2, seg);
  ASSERT(size > durable_size);
  ASSERT_EQ(truncate(seg, durable_size), 0);

  daemon_spawn(&d, NULL);
  daemon_wait_ready(&d);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), 500);
  ASSERT_U64_EQ(daemon_stat(&d, "acks.producers"), 1);
  client_hello(&cl, &d, "feed-A", &w);
  ASSERT_U64_EQ(w.position, 500); /* resend from message 500 */
  send_ticks(cl.fd, "FEED", w.position, 800);
  wait_ack(&cl, 800 - w.position, 0, 0);
  bool dup;
  ASSERT_U64_EQ(range_rows(&d, "FEED", &dup), 800);
  ASSERT(!dup);

  /* kill -9 again, nothing cut: every tick written is back, and the
   * producer is told it has nothing to resend. */
  daemon_expect_stat(&d, "journal.written_ticks", 800, WAIT_MS);
  ASSERT_EQ(daemon_stop(&d, SIGKILL), 128 + SIGKILL);
  client_close(&cl);
  daemon_spawn(&d, NULL);
  daemon_wait_ready(&d);
  client_hello(&cl, &d, "feed-A", &w);
  ASSERT_U64_EQ(w.position, 800);
  /* Another producer starts at 0; seq goes on from the position. */
  struct client other;
  struct msg ow;
  client_hello(&other, &d, "feed-B", &ow);
  ASSERT_U64_EQ(ow.position, 0);
  client_close(&other);
  struct wire b;
  wire_init(&b);
  msgpack_pack_map(&b.pk, 1);
  pk_str(&b.pk, "ticker"), pk_str(&b.pk, "FEED");
  wire_send(cl.fd, &b);
  wire_finish(&b);
  wait_ack(&cl, 0, 1, 0);
  ASSERT_EQ(cl.nrejects, 1);
  ASSERT_U64_EQ(cl.rejects[0].seq, 800);
  ASSERT_U64_EQ(range_rows(&d, "FEED", &dup), 800);
  ASSERT(!dup);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), 800);
  client_close(&cl);
  daemon_cleanup(&d);
}

TEST_TIMEOUT(a_producer_position_outlives_a_checkpoint_that_deleted_its_segments, 120) {
  struct tks_daemon d;
  char yaml[1024];
  daemon_prepare(&d, NULL, NULL);
  daemon_write_config(&d, NULL, interval_1h(&d, yaml, sizeof yaml));
  daemon_spawn(&d, NULL);
  daemon_wait_ready(&d);
  struct client cl;
  struct msg w;
  client_hello(&cl, &d, "feed-C", &w);
  send_ticks(cl.fd, "CKPT", 0, 300);
  wait_ack(&cl, 300, 0, 0);
  client_close(&cl);
  request_ok(&d, "checkpoint");
  request_ok(&d, "checkpoint"); /* the second deletes the segments before the first */
  ASSERT_EQ(daemon_stop(&d, SIGKILL), 128 + SIGKILL);
  daemon_spawn(&d, NULL);
  daemon_wait_ready(&d);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), 300);
  client_hello(&cl, &d, "feed-C", &w);
  ASSERT_U64_EQ(w.position, 300);
  send_ticks(cl.fd, "CKPT", 300, 400);
  wait_ack(&cl, 100, 0, 0);
  client_close(&cl);
  /* A clean stop (its last checkpoint) and a start: the same. */
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  daemon_spawn(&d, NULL);
  daemon_wait_ready(&d);
  client_hello(&cl, &d, "feed-C", &w);
  ASSERT_U64_EQ(w.position, 400);
  bool dup;
  ASSERT_U64_EQ(range_rows(&d, "CKPT", &dup), 400);
  ASSERT(!dup);
  client_close(&cl);
  daemon_cleanup(&d);
}

TEST(a_producer_saying_hello_again_takes_over_its_older_connection) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  struct client a, b;
  struct msg w;
  client_hello(&a, &d, "twice", &w);
  send_ticks(a.fd, "TWO", 0, 10);
  wait_ack(&a, 10, 0, 0);
  client_hello(&b, &d, "twice", &w);
  ASSERT_U64_EQ(w.position, 10);
  struct msg m;
  int r;
  while ((r = next_msg(&a, &m, WAIT_MS)) == 1) continue;
  ASSERT_EQ(r, -1); /* the old one was closed */
  ASSERT_U64_EQ(daemon_stat(&d, "acks.takeovers"), 1);
  send_ticks(b.fd, "TWO", 10, 15);
  wait_ack(&b, 5, 0, 0);
  client_close(&a);
  client_close(&b);
  daemon_cleanup(&d);
}

TEST(with_the_journal_off_the_welcome_says_so_and_durable_stays_0) {
  struct tks_daemon d;
  daemon_start(&d, "journal:\n  enabled: false\n");
  struct client cl;
  struct msg w;
  client_hello(&cl, &d, "memory", &w);
  ASSERT_STR_EQ(w.journal, "off");
  ASSERT_STR_EQ(w.fsync, "off");
  send_ticks(cl.fd, "MEM", 0, 40);
  wait_ack(&cl, 40, 0, 0);
  struct msg m;
  while (next_msg(&cl, &m, 200) == 1) continue;
  ASSERT_U64_EQ(cl.last_ack.durable, 0);
  client_close(&cl);
  /* The position lasts while the daemon runs. */
  daemon_expect_stat(&d, "acks.connections", 0, WAIT_MS);
  client_hello(&cl, &d, "memory", &w);
  ASSERT_U64_EQ(w.position, 40);
  client_close(&cl);
  daemon_cleanup(&d);
}

TEST_MAIN()
