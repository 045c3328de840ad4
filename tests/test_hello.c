/*
 * Unit tests of lib/hello.c, the producer hello and the messages written
 * back: a hello is recognised within its first bytes, waited for while it
 * is cut at any byte, taken whole; each bad one is refused with a reason
 * naming what is wrong; random bytes never crash it, and what it takes is
 * well-formed; the answers are msgpack maps that begin with "$".
 */
#include <errno.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "hello.h"
#include "test.h"
#include "util.h"

/* A hello of n keys packed by msgpack-c: "$":"hello", then the rest. */
struct packed {
  msgpack_sbuffer sb;
  msgpack_packer pk;
};

static void begin(struct packed *p, uint32_t keys) {
  msgpack_sbuffer_init(&p->sb);
  msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
  msgpack_pack_map(&p->pk, keys);
  msgpack_pack_str_with_body(&p->pk, "$", 1);
  msgpack_pack_str_with_body(&p->pk, "hello", 5);
}

static void str(struct packed *p, const char *s) {
  msgpack_pack_str_with_body(&p->pk, s, strlen(s));
}

/* Parses from an exact-size heap copy (a read past the end is an ASan error). */
static long parse(const struct packed *p, size_t n, struct tks_hello *h, char *why) {
  uint8_t *b = malloc(n ? n : 1);
  ASSERT(b);
  memcpy(b, p->sb.data, n);
  why[0] = '\0';
  long r = tks_hello_parse(b, n, h, why, 200);
  free(b);
  return r;
}

TEST(a_named_hello_is_taken_whole_and_waited_for_at_every_cut) {
  struct packed p;
  begin(&p, 3);
  str(&p, "acks"), msgpack_pack_true(&p.pk);
  str(&p, "producer"), str(&p, "feed-7");
  msgpack_sbuffer_write(&p.sb, "\x81", 1); /* a tick begins after it */
  size_t whole = p.sb.size - 1;
  struct tks_hello h;
  char why[200];
  ASSERT_EQ(parse(&p, p.sb.size, &h, why), (long)whole);
  ASSERT(h.acks);
  ASSERT_EQ(h.producer_len, 6);
  ASSERT_STR_EQ(h.producer, "feed-7");
  for (size_t cut = 0; cut < whole; cut++) {
    if (cut >= 3) ASSERT_EQ(tks_hello_is((const uint8_t *)p.sb.data, cut), 1);
    ASSERT_EQ(parse(&p, cut, &h, why), 0);
  }
  msgpack_sbuffer_destroy(&p.sb);
}

TEST(hello_is_decides_from_the_map_header_and_the_first_key) {
  static const struct {
    const char *bytes;
    size_t n;
    int want;
  } cases[] = {
      {"", 0, -1},
      {"\x81", 1, -1},
      {"\x81\xa1", 2, -1},
      {"\x81\xa1$", 3, 1},
      {"\x81\xa1x", 3, 0},
      {"\x81\xa2$$", 4, 0},
      {"\x80", 1, 0}, /* no entries, no first key */
      {"\x95", 1, 0}, /* an array: a tick */
      {"\xde\x00", 2, -1},
      {"\xde\x00\x00", 3, 0},
      {"\xde\x00\x01\xa1$", 5, 1},
      {"\xdf\x00\x00\x00\x01\xa1", 6, -1},
      {"\xdf\x00\x00\x00\x01\xa1$", 7, 1},
      {"\xc1", 1, 0},
      {"hello", 5, 0},
  };
  for (unsigned i = 0; i < TKS_ARRAY_SIZE(cases); i++)
    if (tks_hello_is((const uint8_t *)cases[i].bytes, cases[i].n) != cases[i].want)
      TEST_FAIL("case %u: got %d, want %d", i,
                tks_hello_is((const uint8_t *)cases[i].bytes, cases[i].n), cases[i].want);
}

TEST(each_bad_hello_is_refused_with_what_is_wrong) {
  struct tks_hello h;
  char why[200];
  struct packed p;
  char name[70];
  memset(name, 'n', sizeof name);

  begin(&p, 1); /* no acks */
  ASSERT_EQ(parse(&p, p.sb.size, &h, why), -EINVAL);
  ASSERT_CONTAINS(why, "acks missing");
  msgpack_sbuffer_destroy(&p.sb);

  begin(&p, 2);
  str(&p, "acks"), msgpack_pack_int(&p.pk, 1);
  ASSERT_EQ(parse(&p, p.sb.size, &h, why), -EINVAL);
  ASSERT_CONTAINS(why, "acks is not true or false");
  msgpack_sbuffer_destroy(&p.sb);

  for (size_t len = 64; len <= 65; len++) {
    begin(&p, 3);
    str(&p, "acks"), msgpack_pack_true(&p.pk);
    str(&p, "producer"), msgpack_pack_str_with_body(&p.pk, name, len);
    long r = parse(&p, p.sb.size, &h, why);
    if (len == 64) {
      ASSERT(r > 0);
      ASSERT_EQ(h.producer_len, 64);
    } else {
      ASSERT_EQ(r, -EINVAL);
      ASSERT_CONTAINS(why, "over 64 bytes");
    }
    msgpack_sbuffer_destroy(&p.sb);
  }

  static const char *const bad_names[] = {"a\xff", "\xed\xa0\x80", "tab\there", "\x7f"};
  for (unsigned i = 0; i < TKS_ARRAY_SIZE(bad_names); i++) {
    begin(&p, 3);
    str(&p, "acks"), msgpack_pack_true(&p.pk);
    str(&p, "producer"), str(&p, bad_names[i]);
    ASSERT_EQ(parse(&p, p.sb.size, &h, why), -EINVAL);
    ASSERT_CONTAINS(why, "not valid UTF-8 or holds a control character");
    msgpack_sbuffer_destroy(&p.sb);
  }

  begin(&p, 2);
  str(&p, "acks"), msgpack_pack_array(&p.pk, 1), msgpack_pack_true(&p.pk);
  ASSERT_EQ(parse(&p, p.sb.size, &h, why), -EINVAL);
  ASSERT_CONTAINS(why, "acks is not true or false");
  msgpack_sbuffer_destroy(&p.sb);

  begin(&p, 3);
  str(&p, "acks"), msgpack_pack_true(&p.pk);
  msgpack_pack_int(&p.pk, 5), msgpack_pack_true(&p.pk); /* a key that is no string */
  ASSERT_EQ(parse(&p, p.sb.size, &h, why), -EINVAL);
  ASSERT_CONTAINS(why, "unknown key '(not a string)'");
  msgpack_sbuffer_destroy(&p.sb);

  begin(&p, 3);
  str(&p, "acks"), msgpack_pack_true(&p.pk);
  str(&p, "$"), str(&p, "hello");
  ASSERT_EQ(parse(&p, p.sb.size, &h, why), -EINVAL);
  ASSERT_CONTAINS(why, "\"$\" given twice");
  msgpack_sbuffer_destroy(&p.sb);

  /* "$" not first, or not a hello. */
  msgpack_sbuffer_init(&p.sb);
  msgpack_packer_init(&p.pk, &p.sb, msgpack_sbuffer_write);
  msgpack_pack_map(&p.pk, 2);
  str(&p, "$"), msgpack_pack_int(&p.pk, 1);
  str(&p, "acks"), msgpack_pack_true(&p.pk);
  ASSERT_EQ(parse(&p, p.sb.size, &h, why), -EINVAL);
  ASSERT_CONTAINS(why, "other than hello");
  msgpack_sbuffer_destroy(&p.sb);

  /* Over the size limit: refused once that many bytes are in, not waited for. */
  char big[TKS_HELLO_MAX_BYTES];
  memset(big, 'b', sizeof big);
  begin(&p, 3);
  str(&p, "acks"), msgpack_pack_true(&p.pk);
  str(&p, "producer"), msgpack_pack_str_with_body(&p.pk, big, sizeof big);
  ASSERT_EQ(parse(&p, p.sb.size, &h, why), -E2BIG);
  ASSERT_CONTAINS(why, "over 1024 bytes");
  ASSERT_EQ(parse(&p, 100, &h, why), -E2BIG); /* the length prefix says so already */
  msgpack_sbuffer_destroy(&p.sb);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

TEST(random_bytes_after_a_hello_header_are_taken_well_formed_or_refused_with_a_reason) {
  uint8_t buf[256];
  unsigned taken = 0;
  for (unsigned iter = 0; iter < 200000; iter++) {
    size_t n = 3 + (size_t)(next_rand() % (sizeof buf - 3));
    buf[0] = (uint8_t)(0x81 + next_rand() % 4);
    buf[1] = 0xa1;
    buf[2] = '$';
    for (size_t i = 3; i < n; i++) buf[i] = (uint8_t)next_rand();
    if (next_rand() & 1 && n > 9)
      memcpy(buf + 3,
             "\xa5hello\xa4"
             "acks\xc3",
             n - 3 < 12 ? n - 3 : 12);
    uint8_t *b = malloc(n);
    ASSERT(b);
    memcpy(b, buf, n);
    struct tks_hello h;
    char why[200] = "";
    long r = tks_hello_parse(b, n, &h, why, sizeof why);
    free(b);
    if (r < 0) {
      ASSERT(why[0] != '\0');
      ASSERT(r == -EINVAL || r == -E2BIG);
      continue;
    }
    if (r == 0) continue;
    taken++;
    ASSERT((size_t)r <= n);
    ASSERT_EQ(strlen(h.producer), h.producer_len);
    ASSERT(!h.producer_len || h.acks);
  }
  ASSERT(taken > 100);
}

TEST(the_answers_are_msgpack_maps_beginning_with_the_dollar_key) {
  struct tks_buf b = {0};
  ASSERT_EQ(tks_hello_welcome(&b, "feed", 4, 77, true, "interval"), 0);
  ASSERT_EQ(tks_hello_ack(&b, 1, 2, UINT64_MAX), 0);
  ASSERT_EQ(tks_hello_reject(&b, 9, "bad_type", "ts"), 0);
  ASSERT_EQ(tks_hello_reject(&b, 10, "store_full", NULL), 0);
  ASSERT_EQ(tks_hello_omitted(&b, 5), 0);
  ASSERT_EQ(tks_hello_error(&b, "hello: acks missing", true, 3), 0);
  static const char *const kinds[] = {"welcome", "ack", "reject", "reject", "omitted", "error"};
  static const uint32_t sizes[] = {5, 4, 4, 3, 2, 3};
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  for (unsigned i = 0; i < 6; i++) {
    ASSERT_EQ(msgpack_unpack_next(&u, b.data, b.len, &off), MSGPACK_UNPACK_SUCCESS);
    ASSERT_EQ(u.data.type, MSGPACK_OBJECT_MAP);
    ASSERT_EQ(u.data.via.map.size, sizes[i]);
    const msgpack_object_kv *kv = u.data.via.map.ptr;
    ASSERT(kv[0].key.via.str.size == 1 && kv[0].key.via.str.ptr[0] == '$');
    ASSERT(kv[0].val.via.str.size == strlen(kinds[i]) &&
           memcmp(kv[0].val.via.str.ptr, kinds[i], strlen(kinds[i])) == 0);
    if (i == 1) ASSERT_U64_EQ(kv[3].val.via.u64, UINT64_MAX);
  }
  ASSERT_EQ(off, b.len);
  msgpack_unpacked_destroy(&u);
  tks_buf_finish(&b);
}

TEST_MAIN()
