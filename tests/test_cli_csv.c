/* Unit tests of cli/csv.c: ISO-8601 and integer timestamps, the header
 * mapped to a schema's fields (hostile headers too), CSV lines of ticks and
 * their msgpack encoding as map and as schema-ordered array. */
#include <errno.h>

#include "encode.h"
#include "csv.h"
#include "test.h"

static int iso(const char *s, int64_t *ns) { return cli_parse_iso8601(s, strlen(s), ns); }

static char line_copy[CLI_CSV_LINE_MAX + 16];

/* The map of schema s from a copy of the header line h (1, 0 or -EINVAL). */
static int header(struct cli_csv_map *m, const struct tks_schema *s, bool extra, const char *h,
                  char *err, size_t errlen) {
  snprintf(line_copy, sizeof line_copy, "%s", h);
  err[0] = '\0';
  return cli_csv_header(m, s, extra, line_copy, strlen(line_copy), err, errlen);
}

/* Encodes a copy of line through m into out (cleared first). */
static int enc(const struct cli_csv_map *m, const char *line, bool array, struct tks_buf *out,
               char *err, size_t errlen) {
  snprintf(line_copy, sizeof line_copy, "%s", line);
  err[0] = '\0';
  out->len = 0;
  return cli_csv_encode(m, line_copy, strlen(line_copy), array, out, err, errlen);
}

/* MarketEvent's legacy columns ticker,ts,price,volume,flags. */
static struct cli_csv_map legacy;
static struct tks_schema market;
static void setup_legacy(void) {
  char err[256];
  tks_schema_default(&market);
  if (cli_csv_legacy(&legacy, &market, false, err, sizeof err)) TEST_FAIL("legacy: %s", err);
}

/* got holds exactly the map kv[0..n). */
static void expect_map(const struct tks_buf *got, const struct tks_kv *kv, size_t n) {
  struct tks_buf want = {0};
  ASSERT_EQ(tks_encode_map(&want, kv, n), 0);
  ASSERT_EQ(got->len, want.len);
  ASSERT(memcmp(got->data, want.data, got->len) == 0);
  tks_buf_finish(&want);
}

#define STR(x)                                    \
  {                                               \
    .type = TKS_V_STR, .v.s = { x, sizeof x - 1 } \
  }
#define INT(x) \
  { .type = TKS_V_INT, .v.i = x }
#define F64(x) \
  { .type = TKS_V_F64, .v.f = x }
#define BOOL(x) \
  { .type = TKS_V_BOOL, .v.b = x }

/* The README's Trade: symbol (required), timestamp, bid, ask (required). */
static struct tks_schema trade;
static void setup_trade(void) {
  char err[256];
  memset(&trade, 0, sizeof trade);
  snprintf(trade.name, sizeof trade.name, "Trade");
  static const struct {
    const char *name;
    enum tks_type type;
    bool required;
  } f[] = {{"symbol", TKS_TYPE_SYMBOL, true},
           {"timestamp", TKS_TYPE_TIMESTAMP, false},
           {"bid", TKS_TYPE_F64, true},
           {"ask", TKS_TYPE_F64, true}};
  for (unsigned i = 0; i < 4; i++) {
    snprintf(trade.fields[i].name, sizeof trade.fields[i].name, "%s", f[i].name);
    trade.fields[i].type = f[i].type;
    trade.fields[i].required = f[i].required;
  }
  trade.nfields = 4;
  if (tks_schema_layout(&trade, err, sizeof err)) TEST_FAIL("layout: %s", err);
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

TEST(csv_line_with_every_column_is_encoded) {
  setup_legacy();
  char err[256];
  struct tks_buf got = {0};
  ASSERT_EQ(enc(&legacy, "AAPL,2026-11-25T10:00:00.123456789Z,150.05,100,R", false, &got, err,
                sizeof err),
            0);
  struct tks_kv kv[] = {{"ticker", STR("AAPL")},
                        {"ts", INT(1795600800123456789LL)},
                        {"price", F64(150.05)},
                        {"volume", INT(100)},
                        {"flags", STR("R")}};
  expect_map(&got, kv, 5);
  tks_buf_finish(&got);
}

TEST(csv_empty_ts_and_flags_are_absent) {
  setup_legacy();
  char err[256];
  struct tks_buf got = {0};
  struct tks_kv kv[] = {{"ticker", STR("MSFT")}, {"price", F64(410.5)}, {"volume", INT(7)}};
  ASSERT_EQ(enc(&legacy, "MSFT,,410.5,7,", false, &got, err, sizeof err), 0);
  expect_map(&got, kv, 3);
  ASSERT_EQ(enc(&legacy, "MSFT,,410.5,7", false, &got, err, sizeof err), 0); /* four columns */
  expect_map(&got, kv, 3);
  ASSERT_EQ((unsigned char)got.data[0], 0x83); /* fixmap of 3 */
  tks_buf_finish(&got);
}

TEST(csv_crlf_spaces_and_quotes_are_handled) {
  setup_legacy();
  char err[256];
  struct tks_buf got = {0};
  ASSERT_EQ(enc(&legacy, " IBM , 5 ,  1e2 , 3 , X \r", false, &got, err, sizeof err), 0);
  struct tks_kv a[] = {{"ticker", STR("IBM")},
                       {"ts", INT(5)},
                       {"price", F64(100.0)},
                       {"volume", INT(3)},
                       {"flags", STR("X")}};
  expect_map(&got, a, 5);
  ASSERT_EQ(enc(&legacy, "\"GOO,G\",1,2.5,3,\"a\"\"b\"", false, &got, err, sizeof err), 0);
  struct tks_kv b[] = {{"ticker", STR("GOO,G")},
                       {"ts", INT(1)},
                       {"price", F64(2.5)},
                       {"volume", INT(3)},
                       {"flags", STR("a\"b")}};
  expect_map(&got, b, 5);
  tks_buf_finish(&got);
}

TEST(csv_bad_lines_say_what_is_wrong) {
  setup_legacy();
  static const struct {
    const char *line, *want;
  } bad[] = {
      {"A,1,1,1,R,extra", "more than 5 columns"},
      {",1,1,1", "empty ticker"},
      {"A,1,1", "empty volume"},
      {"A,yesterday,1,1", "bad ts 'yesterday'"},
      {"A,2026-11-25T10:00:00,1,1", "no time zone"},
      {"A,2026-02-30T10:00:00Z,1,1", "out of range"},
      {"A,1,abc,1", "bad price 'abc'"},
      {"A,1,inf,1", "not finite"},
      {"A,1,,1", "empty price"},
      {"A,1,1,1.5", "bad volume '1.5'"},
      {"A,1,1,", "empty volume"},
      {"A,1,1,99999999999999999999", "volume '99999999999999999999' out of range"},
      {"\"A,1,1,1", "unterminated"},
      {"\"A\"x,1,1,1", "after a closing quote"},
      {"A,1,1,\xff", "bad volume '\\xff'"},
  };
  char err[256];
  struct tks_buf out = {0};
  for (unsigned i = 0; i < TKS_ARRAY_SIZE(bad); i++) {
    int r = enc(&legacy, bad[i].line, false, &out, err, sizeof err);
    if (r != -EINVAL || !strstr(err, bad[i].want))
      TEST_FAIL("'%s': %d '%s', want -EINVAL and '%s'", bad[i].line, r, err, bad[i].want);
    ASSERT_EQ(out.len, 0);
  }
  tks_buf_finish(&out);
}

TEST(blank_lines_are_recognised) {
  ASSERT(cli_csv_is_blank("", 0));
  ASSERT(cli_csv_is_blank(" \t\r", 3));
  ASSERT(!cli_csv_is_blank(" a", 2));
}

TEST(a_first_line_naming_a_field_is_the_header_any_case_any_bom) {
  setup_legacy();
  struct cli_csv_map m;
  char err[512];
  ASSERT_EQ(header(&m, &market, false, "ticker,ts,price,volume,flags", err, sizeof err), 1);
  ASSERT_EQ(m.ncols, 5);
  ASSERT_EQ(header(&m, &market, false, "\xEF\xBB\xBF\"ticker\",\"price\",volume", err, sizeof err),
            1);
  ASSERT_EQ(m.ncols, 3);
  ASSERT_EQ(m.cols[0].field, tks_schema_find(&market, "ticker", 6));
  /* A data line is not a header, whatever it holds. */
  ASSERT_EQ(header(&m, &market, false, "AAPL,1,1,1", err, sizeof err), 0);
  ASSERT_EQ(header(&m, &market, false, "AAPL,,150.05,100,R", err, sizeof err), 0);
  ASSERT_EQ(header(&m, &market, false, "TS,1,2,3", err, sizeof err), 0); /* a ticker TS */
  ASSERT_EQ(header(&m, &market, false, "PRICE,,inf,3", err, sizeof err), 0);
  /* Another case names a field, but names are exact: say so. */
  ASSERT_EQ(header(&m, &market, false, "Ticker,ts,price,volume", err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "'Ticker' (did you mean 'ticker'?");
}

TEST(header_columns_in_any_order_map_to_trade_fields_by_type) {
  setup_trade();
  struct cli_csv_map m;
  char err[512];
  ASSERT_EQ(header(&m, &trade, false, "ask,timestamp,bid,symbol", err, sizeof err), 1);
  struct tks_buf got = {0};
  ASSERT_EQ(enc(&m, "101.5,2026-12-01T09:30:00Z,101,AAPL", false, &got, err, sizeof err), 0);
  struct tks_kv kv[] = {{"ask", F64(101.5)},
                        {"timestamp", INT(1796117400000000000LL)},
                        {"bid", F64(101.0)},
                        {"symbol", STR("AAPL")}};
  expect_map(&got, kv, 4);
  /* The array form is in slot order, whatever the columns'. */
  ASSERT_EQ(enc(&m, "101.5,,101,AAPL", true, &got, err, sizeof err), 0);
  struct tks_value v[TKS_SCHEMA_MAX_FIELDS];
  for (unsigned i = 0; i < trade.nfields; i++) v[i] = (struct tks_value){.type = TKS_V_NIL};
  v[tks_schema_find(&trade, "symbol", 6)] = (struct tks_value)STR("AAPL");
  v[tks_schema_find(&trade, "bid", 3)] = (struct tks_value)F64(101.0);
  v[tks_schema_find(&trade, "ask", 3)] = (struct tks_value)F64(101.5);
  struct tks_buf want = {0};
  ASSERT_EQ(tks_encode_array(&want, v, trade.nfields), 0);
  ASSERT_EQ(got.len, want.len);
  ASSERT(memcmp(got.data, want.data, got.len) == 0);
  /* A required field left empty, a bad number. */
  ASSERT_EQ(enc(&m, ",1,101,AAPL", false, &got, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "empty ask (a required field)");
  ASSERT_EQ(enc(&m, "x,1,101,AAPL", false, &got, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "bad ask 'x'");
  tks_buf_finish(&got);
  tks_buf_finish(&want);
}

TEST(every_declared_type_is_converted_and_checked) {
  struct tks_schema s;
  memset(&s, 0, sizeof s);
  snprintf(s.name, sizeof s.name, "Wide");
  static const struct {
    const char *name;
    enum tks_type type;
  } f[] = {{"ts", TKS_TYPE_TIMESTAMP}, {"sym", TKS_TYPE_SYMBOL}, {"venue", TKS_TYPE_STRING},
           {"bid", TKS_TYPE_F64},      {"qty", TKS_TYPE_U32},    {"live", TKS_TYPE_BOOL},
           {"seq", TKS_TYPE_I64}};
  for (unsigned i = 0; i < TKS_ARRAY_SIZE(f); i++) {
    snprintf(s.fields[i].name, sizeof s.fields[i].name, "%s", f[i].name);
    s.fields[i].type = f[i].type;
  }
  s.nfields = TKS_ARRAY_SIZE(f);
  char err[512];
  ASSERT_EQ(tks_schema_layout(&s, err, sizeof err), 0);
  struct cli_csv_map m;
  ASSERT_EQ(header(&m, &s, false, "seq,live,qty,bid,venue,sym,ts", err, sizeof err), 1);
  struct tks_buf got = {0};
  ASSERT_EQ(enc(&m, "-9,TRUE,4294967295,2,XNAS,A,2026-11-25", false, &got, err, sizeof err), 0);
  struct tks_kv kv[] = {{"seq", INT(-9)},
                        {"live", BOOL(true)},
                        {"qty", INT(4294967295)},
                        {"bid", F64(2.0)},
                        {"venue", STR("XNAS")},
                        {"sym", STR("A")},
                        {"ts", INT(1795564800000000000LL)}};
  expect_map(&got, kv, 7);
  ASSERT_EQ(enc(&m, ",0,,,,A,", false, &got, err, sizeof err), 0);
  struct tks_kv kv2[] = {{"live", BOOL(false)}, {"sym", STR("A")}};
  expect_map(&got, kv2, 2);
  static const struct {
    const char *line, *want;
  } bad[] = {
      {",,4294967296,,,A,", "qty '4294967296' out of range"},
      {",,-1,,,A,", "qty '-1' out of range"},
      {",yes,,,,A,", "bad live 'yes': want true or false"},
      {"1.5,,,,,A,", "bad seq '1.5': want an integer"},
      {",,,nan,,A,", "bad bid 'nan': not finite"},
  };
  for (unsigned i = 0; i < TKS_ARRAY_SIZE(bad); i++) {
    int r = enc(&m, bad[i].line, false, &got, err, sizeof err);
    if (r != -EINVAL || !strstr(err, bad[i].want))
      TEST_FAIL("'%s': %d '%s', want '%s'", bad[i].line, r, err, bad[i].want);
  }
  tks_buf_finish(&got);
}

TEST(hostile_headers_are_refused_naming_the_column) {
  setup_trade();
  static const struct {
    const char *line, *want;
  } bad[] = {
      {"symbol,bid,ask,bid", "column 'bid' appears twice (columns 2 and 4)"},
      {"symbol,,bid,ask", "column 2 has no name"},
      {"symbol,bid,ask,\"\"", "column 4 has no name"},
      {"symbol,bid,ask,caf\xc3", "column 4, 'caf\\xc3', is not UTF-8"},
      {"symbol,bid,ask,\xed\xa0\x80", "is not UTF-8"}, /* a surrogate */
      {"symbol,bid,ask,a\x01", "holding a control character"},
      {"symbol,bid,ask,$", "named '$'"},
      {"symbol,bid,ask,venue,exchange", "unknown columns 'venue', 'exchange': the schema Trade "
                                        "has symbol, timestamp, bid, ask"},
      {"symbol,bid", "no column for the required field 'ask'"},
      {"\"symbol,bid,ask", "unterminated"},
  };
  struct cli_csv_map m;
  char err[1024];
  for (unsigned i = 0; i < TKS_ARRAY_SIZE(bad); i++) {
    int r = header(&m, &trade, false, bad[i].line, err, sizeof err);
    if (r != -EINVAL || !strstr(err, bad[i].want))
      TEST_FAIL("'%s': %d '%s', want -EINVAL and '%s'", bad[i].line, r, err, bad[i].want);
  }
  /* A name over 255 bytes, and more than 64 columns. */
  char big[2048];
  int n = snprintf(big, sizeof big, "symbol,bid,ask,");
  memset(big + n, 'x', 300);
  big[n + 300] = '\0';
  ASSERT_EQ(header(&m, &trade, true, big, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "over 255 bytes");
  n = snprintf(big, sizeof big, "symbol,bid,ask");
  for (int i = 0; i < 70; i++) n += snprintf(big + n, sizeof big - (size_t)n, ",x%d", i);
  ASSERT_EQ(header(&m, &trade, true, big, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "more than 64 columns");
}

TEST(extra_columns_are_sent_with_their_inferred_types) {
  setup_trade();
  struct cli_csv_map m;
  char err[512];
  ASSERT_EQ(header(&m, &trade, true, "symbol,venue,bid,ask,lot,odd,live", err, sizeof err), 1);
  ASSERT_EQ(m.cols[1].field, -1);
  struct tks_buf got = {0};
  ASSERT_EQ(enc(&m, "A,XNAS,1,2,100,0.5,true", false, &got, err, sizeof err), 0);
  struct tks_kv kv[] = {{"symbol", STR("A")}, {"venue", STR("XNAS")}, {"bid", F64(1)},
                        {"ask", F64(2)},      {"lot", INT(100)},      {"odd", F64(0.5)},
                        {"live", BOOL(true)}};
  expect_map(&got, kv, 7);
  /* The array form has no place for them. */
  ASSERT_EQ(enc(&m, "A,XNAS,1,2,,,", true, &got, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "no field 'venue' for the array form");
  tks_buf_finish(&got);
}

TEST(no_header_is_read_as_the_legacy_columns_only_where_the_schema_has_them) {
  setup_trade();
  struct cli_csv_map m;
  char err[512];
  ASSERT_EQ(header(&m, &trade, false, "AAPL,1,100.5,101", err, sizeof err), 0);
  ASSERT_EQ(cli_csv_legacy(&m, &trade, false, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "no header line");
  ASSERT_CONTAINS(err, "Trade (symbol, timestamp, bid, ask)");
  /* MarketEvent without flags: the fifth column must stay empty. */
  struct tks_schema s;
  tks_schema_default(&s);
  s.nfields = 4;
  ASSERT_EQ(tks_schema_layout(&s, err, sizeof err), 0);
  ASSERT_EQ(cli_csv_legacy(&m, &s, false, err, sizeof err), 0);
  struct tks_buf out = {0};
  ASSERT_EQ(enc(&m, "AAPL,1,1,1", true, &out, err, sizeof err), 0);
  ASSERT_EQ((unsigned char)out.data[0], 0x94); /* fixarray of 4 */
  ASSERT_EQ(enc(&m, "AAPL,1,1,1,R", false, &out, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "no field 'flags'");
  tks_buf_finish(&out);
}

TEST(random_lines_never_break_the_parser) {
  setup_trade();
  setup_legacy();
  uint64_t x = 88172645463325252ull;
  char line[600], err[256];
  struct tks_buf out = {0};
  static const char alphabet[] = "ab,\"\r \t1.-e:TZ$\xc3\xa9\xff\x01";
  for (int round = 0; round < 20000; round++) {
    size_t len = (size_t)(x % sizeof line);
    for (size_t i = 0; i < len; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      line[i] = alphabet[x % (sizeof alphabet - 1)];
    }
    struct cli_csv_map m;
    char copy[600];
    memcpy(copy, line, len);
    int r = cli_csv_header(&m, &trade, round & 1, copy, len, err, sizeof err);
    ASSERT(r >= -EINVAL && r <= 1);
    if (r < 0) ASSERT(err[0] != '\0');
    memcpy(copy, line, len);
    out.len = 0;
    r = cli_csv_encode(r == 1 ? &m : &legacy, copy, len, round & 2, &out, err, sizeof err);
    ASSERT(r == 0 || r == -EINVAL);
    if (r) ASSERT_EQ(out.len, 0);
    if (r) ASSERT(err[0] != '\0');
  }
  tks_buf_finish(&out);
}

TEST_MAIN()
