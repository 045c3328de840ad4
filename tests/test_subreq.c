/* Unit tests of lib/subreq.c: the subscribe request as the subscription
 * port reads it, whole, split at every byte, and hostile. */
#include <errno.h>
#include <msgpack.h>

#include "subreq.h"
#include "test.h"

static msgpack_sbuffer sb;
static msgpack_packer pk;
static void start(void) {
  msgpack_sbuffer_destroy(&sb);
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
}
static void str(const char *s) { msgpack_pack_str_with_body(&pk, s, strlen(s)); }

static long parse(struct tks_subreq *r, char *why) {
  return tks_subreq_parse((const uint8_t *)sb.data, sb.size, r, why, 256);
}

TEST(a_list_from_a_time_is_read_and_split_at_every_byte_needs_more) {
  start();
  msgpack_pack_map(&pk, 2);
  str("from");
  str("2026-12-02T09:30:00.5Z");
  str("subscribe");
  msgpack_pack_array(&pk, 3);
  str("AAPL");
  str("MSFT");
  str("AAPL");
  char why[256];
  struct tks_subreq r;
  for (size_t cut = 0; cut < sb.size; cut++)
    ASSERT_EQ(tks_subreq_parse((const uint8_t *)sb.data, cut, &r, why, sizeof why), 0);
  ASSERT_EQ(parse(&r, why), (long)sb.size);
  ASSERT(!r.all && !r.from_now);
  ASSERT_EQ(r.nsymbols, 2); /* the repeat is kept once */
  ASSERT_STR_EQ(r.symbols[0], "AAPL");
  ASSERT_STR_EQ(r.symbols[1], "MSFT");
  ASSERT_EQ(r.from, 1796203800500000000LL);
  tks_subreq_finish(&r);
}

TEST(star_without_from_is_live_only_and_ns_from_is_taken_as_is) {
  start();
  msgpack_pack_map(&pk, 1);
  str("subscribe");
  str("*");
  char why[256];
  struct tks_subreq r;
  ASSERT_EQ(parse(&r, why), (long)sb.size);
  ASSERT(r.all && r.from_now);
  tks_subreq_finish(&r);
  start();
  msgpack_pack_map(&pk, 2);
  str("subscribe");
  str("*");
  str("from");
  msgpack_pack_int64(&pk, -7);
  ASSERT_EQ(parse(&r, why), (long)sb.size);
  ASSERT(!r.from_now);
  ASSERT_EQ(r.from, -7);
  tks_subreq_finish(&r);
}

#define B(lit) lit, sizeof lit - 1

TEST(hostile_requests_are_refused_with_a_reason) {
  static const struct {
    const char *bytes;
    size_t len;
    const char *why;
  } cases[] = {
      {B("\xc1"), "not msgpack"},
      {B("\x01"), "not a map"},
      {B("\x81\xa9subscribe\xa1?"), "not \"*\""},
      {B("\x82\xa9subscribe\xa1*\xa9subscribe\xa1*"), "given twice"},
      {B("\x82\xa9subscribe\xa1*\xa4"
         "from\xcf\xff\xff\xff\xff\xff\xff\xff\xff"),
       "int64"},
      {B("\x82\xa9subscribe\xa1*\xa4"
         "from\xc3"),
       "want ns"},
      {B("\x81\xa9subscribe\x91\xa0"), "empty"},
      {B("\x81\xc4\x01x\x01"), "unknown key '(not a string)'"},
      {B("\x81\xa3\xff\x01\x02\x01"), "unknown key '?"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char why[256] = "";
    struct tks_subreq r;
    long n = tks_subreq_parse((const uint8_t *)cases[i].bytes, cases[i].len, &r, why, sizeof why);
    if (n >= 0) TEST_FAIL("case %zu taken (%ld)", i, n);
    ASSERT_CONTAINS(why, cases[i].why);
  }
  /* Too large: a symbol of 300 bytes, and a request over 64 KiB. */
  start();
  msgpack_pack_map(&pk, 1);
  str("subscribe");
  msgpack_pack_array(&pk, 1);
  char big[301];
  memset(big, 'A', 300);
  big[300] = '\0';
  str(big);
  char why[256];
  struct tks_subreq r;
  ASSERT_EQ(parse(&r, why), -EINVAL);
  ASSERT_CONTAINS(why, "over 255 bytes");
  uint8_t *huge = calloc(1, TKS_SUBREQ_MAX_BYTES + 16);
  memcpy(huge, "\x81\xa9subscribe\xdb\x00\x01\x00\x00", 16);
  ASSERT_EQ(tks_subreq_parse(huge, TKS_SUBREQ_MAX_BYTES + 16, &r, why, sizeof why), -E2BIG);
  ASSERT_EQ(tks_subreq_parse(huge, 1000, &r, why, sizeof why), -E2BIG); /* the prefix says so */
  free(huge);
}

TEST_MAIN()
