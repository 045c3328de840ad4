/* Unit tests of cli/csv.c: ISO-8601 and integer timestamps, CSV lines of
 * ticks, and their msgpack encoding as map and as schema-ordered array. */
#include <errno.h>

#include "encode.h"
#include "csv.h"
#include "test.h"

static int iso(const char *s, int64_t *ns) { return cli_parse_iso8601(s, strlen(s), ns); }

/* Parses a copy of line; returns the result, the tick in *t, the reason in err. */
static char line_copy[512];
static int parse(const char *line, struct cli_tick *t, char *err, size_t errlen) {
  snprintf(line_copy, sizeof line_copy, "%s", line);
  err[0] = '\0';
  return cli_csv_parse_tick(line_copy, strlen(line_copy), t, err, errlen);
}

static bool field_is(const char *p, size_t len, const char *want) {
  return len == strlen(want) && memcmp(p, want, len) == 0;
}

TEST(iso8601_utc_with_nanoseconds_converts_exactly) {
  int64_t ns;
  ASSERT_EQ(iso("2026-11-25T10:00:00.123456789Z", &ns), 0);
  ASSERT_EQ(ns, 1795600800123456789LL);
  ASSERT_EQ(iso("2026-11-25T10:00:00Z", &ns), 0);
  ASSERT_EQ(ns, 1795600800000000000LL);
  ASSERT_EQ(iso("1970-01-01T00:00:00Z", &ns), 0);
  ASSERT_EQ(ns, 0);
  ASSERT_EQ(iso("1969-12-31T23:59:59Z", &ns), 0);
  ASSERT_EQ(ns, -1000000000LL);
  ASSERT_EQ(iso("2000-03-01T00:00:00Z", &ns), 0);
  ASSERT_EQ(ns, 951868800000000000LL);
}

TEST(iso8601_short_fractions_are_scaled_to_nanoseconds) {
  int64_t ns;
  ASSERT_EQ(iso("1970-01-01T00:00:00.5Z", &ns), 0);
  ASSERT_EQ(ns, 500000000);
  ASSERT_EQ(iso("1970-01-01T00:00:00.000001Z", &ns), 0);
  ASSERT_EQ(ns, 1000);
  ASSERT_EQ(iso("1970-01-01T00:00:01.000000001z", &ns), 0);
  ASSERT_EQ(ns, 1000000001);
}

TEST(iso8601_accepts_offsets_space_and_missing_seconds) {
  int64_t ns;
  ASSERT_EQ(iso("2026-11-25T10:00:00+05:30", &ns), 0);
  ASSERT_EQ(ns, 1795581000000000000LL);
  ASSERT_EQ(iso("2026-11-25T10:00:00+0530", &ns), 0);
  ASSERT_EQ(ns, 1795581000000000000LL);
  ASSERT_EQ(iso("2026-11-25T05:00:00-05", &ns), 0);
  ASSERT_EQ(ns, 1795600800000000000LL);
  ASSERT_EQ(iso("2026-11-25 10:00:00Z", &ns), 0);
  ASSERT_EQ(ns, 1795600800000000000LL);
  ASSERT_EQ(iso("2026-11-25T10:00Z", &ns), 0);
  ASSERT_EQ(ns, 1795600800000000000LL);
}

TEST(iso8601_knows_leap_years) {
  int64_t ns;
  ASSERT_EQ(iso("2024-02-29T23:59:59Z", &ns), 0);
  ASSERT_EQ(ns, 1709251199000000000LL);
  ASSERT_EQ(iso("2000-02-29T00:00:00Z", &ns), 0);
  ASSERT_EQ(iso("2023-02-29T00:00:00Z", &ns), -ERANGE);
  ASSERT_EQ(iso("1900-02-29T00:00:00Z", &ns), -ERANGE);
  ASSERT_EQ(iso("2026-04-31T00:00:00Z", &ns), -ERANGE);
}

TEST(iso8601_refuses_bad_forms_and_missing_zone) {
  int64_t ns;
  ASSERT_EQ(iso("2026-11-25T10:00:00", &ns), -EINVAL); /* no zone */
  ASSERT_EQ(iso("2026-11-25", &ns), -EINVAL);
  ASSERT_EQ(iso("2026-11-25T10:00:00.Z", &ns), -EINVAL);
  ASSERT_EQ(iso("2026-11-25T10:00:00.1234567891Z", &ns), -EINVAL); /* below 1 ns */
  ASSERT_EQ(iso("2026-11-25T10:00:00ZZ", &ns), -EINVAL);
  ASSERT_EQ(iso("26-11-25T10:00:00Z", &ns), -EINVAL);
  ASSERT_EQ(iso("2026/11/25T10:00:00Z", &ns), -EINVAL);
  ASSERT_EQ(iso("2026-11-25T10:00:00+5", &ns), -EINVAL);
  ASSERT_EQ(iso("2026-13-01T00:00:00Z", &ns), -ERANGE);
  ASSERT_EQ(iso("2026-00-01T00:00:00Z", &ns), -ERANGE);
  ASSERT_EQ(iso("2026-11-25T24:00:00Z", &ns), -ERANGE);
  ASSERT_EQ(iso("2026-11-25T10:60:00Z", &ns), -ERANGE);
  ASSERT_EQ(iso("2026-11-25T10:00:60Z", &ns), -ERANGE);
}

TEST(iso8601_outside_int64_nanoseconds_is_out_of_range) {
  int64_t ns;
  ASSERT_EQ(iso("2262-04-11T23:47:16.854775807Z", &ns), 0);
  ASSERT_EQ(ns, INT64_MAX);
  ASSERT_EQ(iso("2262-04-11T23:47:16.854775808Z", &ns), -ERANGE);
  ASSERT_EQ(iso("1677-09-21T00:12:43.145224192Z", &ns), 0);
  ASSERT_EQ(ns, INT64_MIN);
  ASSERT_EQ(iso("1677-09-21T00:12:43.145224191Z", &ns), -ERANGE);
  ASSERT_EQ(iso("9999-12-31T23:59:59Z", &ns), -ERANGE);
}

TEST(ts_column_takes_integers_or_iso8601) {
  int64_t ns;
  ASSERT_EQ(cli_parse_ts("1700000000000000000", 19, &ns), 0);
  ASSERT_EQ(ns, 1700000000000000000LL);
  ASSERT_EQ(cli_parse_ts("-5", 2, &ns), 0);
  ASSERT_EQ(ns, -5);
  ASSERT_EQ(cli_parse_ts("0", 1, &ns), 0);
  ASSERT_EQ(ns, 0);
  ASSERT_EQ(cli_parse_ts("9223372036854775807", 19, &ns), 0);
  ASSERT_EQ(ns, INT64_MAX);
  ASSERT_EQ(cli_parse_ts("9223372036854775808", 19, &ns), -ERANGE);
  ASSERT_EQ(cli_parse_ts("1.5", 3, &ns), -EINVAL);
  ASSERT_EQ(cli_parse_ts("12abc", 5, &ns), -EINVAL);
  ASSERT_EQ(cli_parse_ts("-", 1, &ns), -EINVAL);
  const char *s = "2026-11-25T10:00:00.123456789Z";
  ASSERT_EQ(cli_parse_ts(s, strlen(s), &ns), 0);
  ASSERT_EQ(ns, 1795600800123456789LL);
}

TEST(csv_line_with_every_column_is_parsed) {
  struct cli_tick t;
  char err[256];
  ASSERT_EQ(parse("AAPL,2026-11-25T10:00:00.123456789Z,150.05,100,R", &t, err, sizeof err), 0);
  ASSERT(field_is(t.ticker, t.ticker_len, "AAPL"));
  ASSERT(t.has_ts);
  ASSERT_EQ(t.ts, 1795600800123456789LL);
  ASSERT(t.price == 150.05);
  ASSERT_EQ(t.volume, 100);
  ASSERT(t.has_flags);
  ASSERT(field_is(t.flags, t.flags_len, "R"));
}

TEST(csv_empty_ts_and_flags_are_absent) {
  struct cli_tick t;
  char err[256];
  ASSERT_EQ(parse("MSFT,,410.5,7,", &t, err, sizeof err), 0);
  ASSERT(!t.has_ts);
  ASSERT(!t.has_flags);
  ASSERT_EQ(parse("MSFT,,410.5,7", &t, err, sizeof err), 0); /* four columns */
  ASSERT(!t.has_flags);
  ASSERT_EQ(t.volume, 7);
}

TEST(csv_crlf_spaces_and_quotes_are_handled) {
  struct cli_tick t;
  char err[256];
  ASSERT_EQ(parse(" IBM , 5 ,  1e2 , 3 , X \r", &t, err, sizeof err), 0);
  ASSERT(field_is(t.ticker, t.ticker_len, "IBM"));
  ASSERT_EQ(t.ts, 5);
  ASSERT(t.price == 100.0);
  ASSERT(field_is(t.flags, t.flags_len, "X"));
  ASSERT_EQ(parse("\"GOO,G\",1,2.5,3,\"a\"\"b\"", &t, err, sizeof err), 0);
  ASSERT(field_is(t.ticker, t.ticker_len, "GOO,G"));
  ASSERT(field_is(t.flags, t.flags_len, "a\"b"));
}

TEST(csv_bad_lines_say_what_is_wrong) {
  struct cli_tick t;
  char err[256];
  ASSERT_EQ(parse("A,1,1,1,R,extra", &t, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "more than 5 columns");
  ASSERT_EQ(parse("A,1,1", &t, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "3 columns");
  ASSERT_EQ(parse(",1,1,1", &t, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "empty ticker");
  ASSERT_EQ(parse("A,yesterday,1,1", &t, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "bad ts 'yesterday'");
  ASSERT_EQ(parse("A,2026-11-25T10:00:00,1,1", &t, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "no time zone");
  ASSERT_EQ(parse("A,2026-02-30T10:00:00Z,1,1", &t, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "out of range");
  ASSERT_EQ(parse("A,1,abc,1", &t, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "bad price 'abc'");
  ASSERT_EQ(parse("A,1,inf,1", &t, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "not finite");
  ASSERT_EQ(parse("A,1,,1", &t, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "empty price");
  ASSERT_EQ(parse("A,1,1,1.5", &t, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "bad volume '1.5'");
  ASSERT_EQ(parse("A,1,1,", &t, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "empty volume");
  ASSERT_EQ(parse("\"A,1,1,1", &t, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "unterminated");
  ASSERT_EQ(parse("\"A\"x,1,1,1", &t, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "after a closing quote");
}

TEST(csv_header_and_blank_lines_are_recognised) {
  ASSERT(cli_csv_is_header("ticker,ts,price,volume,flags", 28));
  ASSERT(cli_csv_is_header("\xEF\xBB\xBFTicker,ts", 12));
  ASSERT(cli_csv_is_header("\"ticker\",\"ts\"", 13));
  ASSERT(!cli_csv_is_header("AAPL,1,1,1", 10));
  ASSERT(cli_csv_is_blank("", 0));
  ASSERT(cli_csv_is_blank(" \t\r", 3));
  ASSERT(!cli_csv_is_blank(" a", 2));
}

TEST(tick_encodes_as_map_without_absent_keys) {
  struct cli_tick t;
  char err[256];
  ASSERT_EQ(parse("AAPL,,150.05,100,", &t, err, sizeof err), 0);
  struct tks_buf got = {0}, want = {0};
  ASSERT_EQ(cli_tick_encode_map(&got, &t), 0);
  struct tks_kv kv[] = {
      {"ticker", {.type = TKS_V_STR, .v.s = {"AAPL", 4}}},
      {"price", {.type = TKS_V_F64, .v.f = 150.05}},
      {"volume", {.type = TKS_V_INT, .v.i = 100}},
  };
  ASSERT_EQ(tks_encode_map(&want, kv, 3), 0);
  ASSERT_EQ(got.len, want.len);
  ASSERT(memcmp(got.data, want.data, got.len) == 0);
  ASSERT_EQ((unsigned char)got.data[0], 0x83); /* fixmap of 3 */
  tks_buf_finish(&got);
  tks_buf_finish(&want);
}

TEST(tick_encodes_as_array_in_schema_slot_order_with_nil) {
  struct cli_tick t;
  char err[256];
  struct tks_schema s;
  tks_schema_default(&s);
  ASSERT_EQ(parse("AAPL,42,1.5,7,", &t, err, sizeof err), 0);
  struct tks_buf got = {0}, want = {0};
  ASSERT_EQ(cli_tick_encode_array(&got, &t, &s, err, sizeof err), 0);
  struct tks_value v[] = {
      {.type = TKS_V_INT, .v.i = 42},
      {.type = TKS_V_STR, .v.s = {"AAPL", 4}},
      {.type = TKS_V_F64, .v.f = 1.5},
      {.type = TKS_V_INT, .v.i = 7},
      {.type = TKS_V_NIL},
  };
  ASSERT_EQ(tks_encode_array(&want, v, 5), 0);
  ASSERT_EQ(got.len, want.len);
  ASSERT(memcmp(got.data, want.data, got.len) == 0);
  tks_buf_finish(&got);
  tks_buf_finish(&want);
}

TEST(array_form_refuses_a_value_the_schema_cannot_hold) {
  struct cli_tick t;
  char err[256];
  struct tks_schema s;
  tks_schema_default(&s);
  s.nfields = 4; /* ts, ticker, price, volume: no flags */
  ASSERT_EQ(tks_schema_layout(&s, err, sizeof err), 0);
  struct tks_buf out = {0};
  ASSERT_EQ(parse("AAPL,1,1,1", &t, err, sizeof err), 0);
  ASSERT_EQ(cli_tick_encode_array(&out, &t, &s, err, sizeof err), 0);
  ASSERT_EQ((unsigned char)out.data[0], 0x94); /* fixarray of 4 */
  out.len = 0;
  ASSERT_EQ(parse("AAPL,1,1,1,R", &t, err, sizeof err), 0);
  ASSERT_EQ(cli_tick_encode_array(&out, &t, &s, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "no field 'flags'");
  tks_buf_finish(&out);
}

TEST_MAIN()
