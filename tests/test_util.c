/* Unit tests of lib/util.c: sizes, durations, buffers, JSON strings. */
#include <errno.h>

#include "test.h"
#include "util.h"

TEST(sizes_accept_binary_units) {
  uint64_t v;
  ASSERT_EQ(tks_parse_size("4096", &v), 0);
  ASSERT_EQ(v, 4096);
  ASSERT_EQ(tks_parse_size("1MiB", &v), 0);
  ASSERT_EQ(v, 1048576);
  ASSERT_EQ(tks_parse_size("64 KiB", &v), 0);
  ASSERT_EQ(v, 65536);
  ASSERT_EQ(tks_parse_size("4GiB", &v), 0);
  ASSERT_U64_EQ(v, 4ull << 30);
  ASSERT_EQ(tks_parse_size("1.5KiB", &v), 0);
  ASSERT_EQ(v, 1536);
  ASSERT_EQ(tks_parse_size("12B", &v), 0);
  ASSERT_EQ(v, 12);
}

TEST(bad_sizes_are_refused) {
  uint64_t v;
  ASSERT_EQ(tks_parse_size("", &v), -EINVAL);
  ASSERT_EQ(tks_parse_size("MiB", &v), -EINVAL);
  ASSERT_EQ(tks_parse_size("-1", &v), -EINVAL);
  ASSERT_EQ(tks_parse_size("12XB", &v), -EINVAL);
  ASSERT_EQ(tks_parse_size("99999999999999999999", &v), -ERANGE);
  ASSERT_EQ(tks_parse_size("99999999999TiB", &v), -ERANGE);
}

TEST(durations_need_a_unit_unless_zero) {
  uint64_t v;
  ASSERT_EQ(tks_parse_duration("1s", &v), 0);
  ASSERT_U64_EQ(v, 1000000000ull);
  ASSERT_EQ(tks_parse_duration("250ms", &v), 0);
  ASSERT_U64_EQ(v, 250000000ull);
  ASSERT_EQ(tks_parse_duration("24h", &v), 0);
  ASSERT_U64_EQ(v, 86400000000000ull);
  ASSERT_EQ(tks_parse_duration("0", &v), 0);
  ASSERT_EQ(v, 0);
  ASSERT_EQ(tks_parse_duration("5", &v), -EINVAL);
  ASSERT_EQ(tks_parse_duration("5 weeks", &v), -EINVAL);
}

TEST(buffer_grows_and_consumes) {
  struct tks_buf b;
  tks_buf_init(&b);
  for (int i = 0; i < 1000; i++) ASSERT_EQ(tks_buf_printf(&b, "%d,", i), 0);
  ASSERT_EQ(strncmp(b.data, "0,1,2,", 6), 0);
  size_t len = b.len;
  tks_buf_consume(&b, 2);
  ASSERT_EQ(b.len, len - 2);
  ASSERT_EQ(strncmp(b.data, "1,2,", 4), 0);
  tks_buf_consume(&b, b.len + 5);
  ASSERT_EQ(b.len, 0);
  tks_buf_finish(&b);
  tks_buf_finish(&b);
}

TEST(json_strings_escape_quotes_and_control_bytes) {
  struct tks_buf b = {0};
  ASSERT_EQ(tks_buf_json_string(&b, "a\"b\\c\n\x01", 7), 0);
  ASSERT_STR_EQ(b.data, "\"a\\\"b\\\\c\\n\\u0001\"");
  tks_buf_finish(&b);
}

TEST(rss_is_read_from_proc) {
  uint64_t rss = tks_rss_bytes();
  ASSERT(rss > 100000);
  volatile char *p = malloc(64 << 20);
  ASSERT(p);
  for (size_t i = 0; i < (64 << 20); i += 4096) p[i] = 1;
  uint64_t rss2 = tks_rss_bytes();
  ASSERT(rss2 >= rss + (60 << 20));
  free((void *)p);
}

TEST_MAIN()
