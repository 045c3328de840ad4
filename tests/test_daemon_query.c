/*
 * Black-box tests of reading ticks back through the real daemon: the
 * control requests `last`, `range` (ns and ISO-8601 bounds, paging with
 * next_from, ties kept on one page), `symbols` and `advice`, the
 * query.max_rows bound, every bad request's error (the connection goes on),
 * the CLI commands over them, and the same reads in the fallback and
 * dynamic store modes, where every field a tick was sent with comes back.
 */
#include <errno.h>
#include <stdarg.h>
#include <sys/socket.h>

#include "encode.h"
#include "harness.h"
#include "test.h"

#define TS0 INT64_C(1700000000000000000)
#define ISO_TS INT64_C(1795617000000000000) /* 2026-11-25T14:30:00Z */
#define QUERY_MS 30000

/* One tick to send, and what its row must read back as. */
struct tk {
  const char *ticker;
  int64_t ts;
  const char *price; /* as sent, and as it must come back */
  int64_t volume;
  const char *flags;    /* NULL: absent */
  const char *exchange; /* undeclared; NULL: absent */
  int64_t seq;          /* undeclared; < 0: absent */
  bool seq_first;       /* send seq before exchange */
};

/* Appends t as a msgpack map: declared fields, then the undeclared ones. */
static void encode_tk(struct tks_buf *b, const struct tk *t) {
  struct tks_kv kv[8];
  size_t n = 0;
  kv[n++] = (struct tks_kv){"ticker", {.type = TKS_V_STR, .v.s = {t->ticker, strlen(t->ticker)}}};
  kv[n++] = (struct tks_kv){"ts", {.type = TKS_V_INT, .v.i = t->ts}};
  kv[n++] = (struct tks_kv){"price", {.type = TKS_V_F64, .v.f = strtod(t->price, NULL)}};
  kv[n++] = (struct tks_kv){"volume", {.type = TKS_V_INT, .v.i = t->volume}};
  if (t->flags)
    kv[n++] = (struct tks_kv){"flags", {.type = TKS_V_STR, .v.s = {t->flags, strlen(t->flags)}}};
  struct tks_kv ex = {"exchange", {.type = TKS_V_STR}}, sq = {"seq", {.type = TKS_V_INT}};
  if (t->exchange) ex.v.v.s.p = t->exchange, ex.v.v.s.len = strlen(t->exchange);
  sq.v.v.i = t->seq;
  if (t->seq_first && t->seq >= 0) kv[n++] = sq;
  if (t->exchange) kv[n++] = ex;
  if (!t->seq_first && t->seq >= 0) kv[n++] = sq;
  ASSERT_EQ(tks_encode_map(b, kv, n), 0);
}

/* Sends the ticks on one connection and waits until `accepted` more are
 * counted (all of them, unless some are meant to be refused). */
static void send_tks(const struct tks_daemon *d, const struct tk *t, size_t n, uint64_t accepted) {
  uint64_t before = daemon_stat(d, "ticks.accepted");
  struct tks_buf b;
  tks_buf_init(&b);
  for (size_t i = 0; i < n; i++) encode_tk(&b, &t[i]);
  int fd = daemon_connect_ingest(d);
  ASSERT_EQ(send_all(fd, b.data, b.len), 0);
  daemon_expect_stat(d, "ticks.accepted", before + accepted, 60000);
  close(fd);
  tks_buf_finish(&b);
}

/* The row t must come back as.  flags absent: "" from a slotted record,
 * no key at all from a dynamic object. */
static char *row(const struct tk *t, bool dynamic_obj) {
  struct tks_buf b;
  tks_buf_init(&b);
  tks_buf_printf(&b, "{\"ts\":%lld,\"ticker\":\"%s\",\"price\":%s,\"volume\":%lld",
                 (long long)t->ts, t->ticker, t->price, (long long)t->volume);
  if (t->flags || !dynamic_obj) tks_buf_printf(&b, ",\"flags\":\"%s\"", t->flags ? t->flags : "");
  /* Undeclared fields: in the order the daemon first saw their names, which
   * in these tests is exchange, then seq. */
  if (t->exchange) tks_buf_printf(&b, ",\"exchange\":\"%s\"", t->exchange);
  if (t->seq >= 0) tks_buf_printf(&b, ",\"seq\":%lld", (long long)t->seq);
  tks_buf_puts(&b, "}\n");
  return b.data;
}

/* ---- the control socket ---- */

/* A control connection kept open across requests. */
static int ctl_open(const struct tks_daemon *d) {
  int fd = control_connect(d->sock);
  if (fd < 0) TEST_FAIL("connect %s: %s", d->sock, strerror(errno));
  return fd;
}

/* Sends req and then "ping", reads up to the ping's answer, and returns
 * req's answer without its closing empty line: "" for no lines at all.
 * (The ping marks the end even of an empty answer.) */
static char *ask(int fd, const char *req) {
  static const char pong[] = "\n{\"ok\":true}\n\n";
  struct tks_buf b;
  tks_buf_init(&b);
  tks_buf_puts(&b, req);
  tks_buf_puts(&b, "\nping\n");
  ASSERT_EQ(send_all(fd, b.data, b.len), 0);
  tks_buf_finish(&b);
  bool eof = false;
  char *r = read_until(fd, pong, 1, QUERY_MS, &eof);
  char *end = strstr(r, pong);
  if (!end)
    TEST_FAIL("no complete answer to '%.80s' (%s): \"%.300s\"", req, eof ? "closed" : "timeout", r);
  end[0] = '\0'; /* cut the empty line that ends req's answer, and the pong */
  if (strstr(r, "\n\n")) TEST_FAIL("answer to '%.80s' has an empty line inside: \"%s\"", req, r);
  return r;
}

static char *query(const struct tks_daemon *d, const char *req) {
  int fd = ctl_open(d);
  char *r = ask(fd, req);
  close(fd);
  return r;
}

static char *queryf(const struct tks_daemon *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static char *queryf(const struct tks_daemon *d, const char *fmt, ...) {
  char req[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(req, sizeof req, fmt, ap);
  va_end(ap);
  return query(d, req);
}

static int count_lines(const char *s) {
  int n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

/* The concatenated rows of ticks t[i] for each index in idx (-1 ends). */
static char *rows_of(const struct tk *t, const int *idx, bool dynamic_obj) {
  struct tks_buf b;
  tks_buf_init(&b);
  tks_buf_puts(&b, "");
  for (; *idx >= 0; idx++) {
    char *r = row(&t[*idx], dynamic_obj);
    tks_buf_puts(&b, r);
    free(r);
  }
  return b.data;
}

/* A number after "key": in a JSON line, or fails. */
static long long json_int(const char *line, const char *key) {
  char k[64];
  snprintf(k, sizeof k, "\"%s\":", key);
  const char *p = strstr(line, k);
  if (!p) TEST_FAIL("no %s in \"%s\"", k, line);
  return strtoll(p + strlen(k), NULL, 10);
}

/* The answer is exactly one error line mentioning `want`. */
static void expect_error(const char *resp, const char *want) {
  if (strncmp(resp, "{\"error\":\"", 10) != 0 || count_lines(resp) != 1)
    TEST_FAIL("want one error line, got \"%s\"", resp);
  ASSERT_CONTAINS(resp, want);
}

static void stop_cleanly(struct tks_daemon *d) {
  int code = daemon_stop(d, SIGTERM);
  daemon_cleanup(d);
  ASSERT_EQ(code, 0);
}

/* AAPL at TS0+10..+70 (several late), MSFT twice, IBM once. */
static const struct tk market[] = {
    {"AAPL", TS0 + 10, "150.05", 100, "R", NULL, -1, false},
    {"MSFT", TS0 + 15, "410.5", 7, NULL, NULL, -1, false},
    {"AAPL", TS0 + 30, "150.25", 300, "X", NULL, -1, false},
    {"AAPL", TS0 + 70, "151.125", 700, "R", NULL, -1, false},
    {"AAPL", TS0 + 20, "149.99", 200, NULL, NULL, -1, false}, /* late */
    {"IBM", TS0 + 5, "99.5", 1, "Q", NULL, -1, false},
    {"AAPL", TS0 + 50, "0.0001", 500, "R", NULL, -1, false}, /* late */
    {"AAPL", TS0 + 60, "1e+20", 600, "RR", NULL, -1, false}, /* late */
    {"MSFT", TS0 + 16, "410.75", 8, "Z", NULL, -1, false},
    {"AAPL", TS0 + 40, "-3.5", 400, "R", NULL, -1, false}, /* late */
};

/* ---- last ---- */

TEST(last_returns_the_newest_n_in_ts_order_with_every_field_exact) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  send_tks(&d, market, TKS_ARRAY_SIZE(market), TKS_ARRAY_SIZE(market));
  char *r = query(&d, "last AAPL 3");
  char *want = rows_of(market, (const int[]){6, 7, 3, -1}, false); /* +50, +60, +70 */
  ASSERT_STR_EQ(r, want);
  free(r);
  free(want);
  /* Every AAPL tick, the late ones in their place. */
  r = query(&d, "last AAPL 7");
  want = rows_of(market, (const int[]){0, 4, 2, 9, 6, 7, 3, -1}, false);
  ASSERT_STR_EQ(r, want);
  free(r);
  free(want);
  stop_cleanly(&d);
}

/* ts=iso and ts=string write the timestamp field as a string that
 * JavaScript and jq keep exact; the rest of each row is as with ts=ns. */
TEST(the_ts_word_writes_timestamps_as_ns_iso_or_string) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  send_tks(&d, market, TKS_ARRAY_SIZE(market), TKS_ARRAY_SIZE(market));
  char *ns = query(&d, "last AAPL 2");
  char *ns2 = query(&d, "last AAPL 2 ts=ns");
  ASSERT_STR_EQ(ns2, ns);
  char want_iso[TKS_ISO8601_LEN + 16], want_str[40], ns_num[40], iso[TKS_ISO8601_LEN + 1];
  tks_format_iso8601(TS0 + 70, iso);
  snprintf(want_iso, sizeof want_iso, "\"ts\":\"%s\"", iso);
  snprintf(want_str, sizeof want_str, "\"ts\":\"%lld\"", (long long)(TS0 + 70));
  snprintf(ns_num, sizeof ns_num, "\"ts\":%lld", (long long)(TS0 + 70));
  const char *reqs[] = {"last AAPL 2 ts=iso", "last ts=iso AAPL 2"};
  for (size_t i = 0; i < TKS_ARRAY_SIZE(reqs); i++) {
    char *r = query(&d, reqs[i]);
    ASSERT_CONTAINS(r, want_iso);
    ASSERT_EQ(count_lines(r), 2);
    /* Only the ts differs. */
    char *at = strstr(ns, ns_num), *at2 = strstr(r, want_iso);
    ASSERT(at && at2);
    ASSERT_STR_EQ(at + strlen(ns_num), at2 + strlen(want_iso));
    free(r);
  }
  char *r = queryf(&d, "range AAPL %lld %lld ts=string", (long long)TS0, (long long)(TS0 + 71));
  ASSERT_CONTAINS(r, want_str);
  ASSERT_EQ(count_lines(r), 7);
  ASSERT_NOT_CONTAINS(r, "\"ts\":1");
  free(r);
  r = query(&d, "symbols ts=iso");
  ASSERT_CONTAINS(r, "\"last_ts\":\"");
  ASSERT_CONTAINS(r, iso);
  free(r);
  free(ns);
  free(ns2);
  stop_cleanly(&d);
}

TEST(last_of_a_symbol_with_fewer_ticks_returns_them_all) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  send_tks(&d, market, TKS_ARRAY_SIZE(market), TKS_ARRAY_SIZE(market));
  char *want = rows_of(market, (const int[]){1, 8, -1}, false);
  char *r = query(&d, "last MSFT 100");
  ASSERT_STR_EQ(r, want);
  free(r);
  r = query(&d, "last MSFT"); /* default 10 */
  ASSERT_STR_EQ(r, want);
  free(r);
  free(want);
  r = query(&d, "last  \t IBM   1  ");
  want = rows_of(market, (const int[]){5, -1}, false);
  ASSERT_STR_EQ(r, want);
  free(r);
  free(want);
  stop_cleanly(&d);
}

TEST(last_without_n_returns_the_newest_ten) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  struct tk t[25];
  for (int i = 0; i < 25; i++)
    t[i] = (struct tk){"SPY", TS0 + i, "450.5", i + 1, "R", NULL, -1, false};
  send_tks(&d, t, 25, 25);
  char *r = query(&d, "last SPY");
  ASSERT_EQ(count_lines(r), 10);
  ASSERT_EQ(json_int(r, "volume"), 16); /* the 16th to the 25th */
  ASSERT_EQ(json_int(strrchr(r, '{'), "volume"), 25);
  free(r);
  stop_cleanly(&d);
}

/* ---- range ---- */

TEST(range_is_inclusive_exclusive_at_exact_boundaries) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  send_tks(&d, market, TKS_ARRAY_SIZE(market), TKS_ARRAY_SIZE(market));
  char *r = queryf(&d, "range AAPL %lld %lld", (long long)(TS0 + 20), (long long)(TS0 + 50));
  char *want = rows_of(market, (const int[]){4, 2, 9, -1}, false); /* +20, +30, +40 */
  ASSERT_STR_EQ(r, want);
  free(r);
  free(want);
  r = queryf(&d, "range AAPL %lld %lld", (long long)(TS0 + 70), (long long)(TS0 + 71));
  want = rows_of(market, (const int[]){3, -1}, false);
  ASSERT_STR_EQ(r, want);
  free(r);
  free(want);
  r = queryf(&d, "range AAPL %lld %lld", (long long)(TS0 + 21), (long long)(TS0 + 30));
  ASSERT_STR_EQ(r, ""); /* nothing in between: no lines at all */
  free(r);
  r = queryf(&d, "range AAPL %lld %lld", (long long)(TS0 + 71), (long long)INT64_MAX);
  ASSERT_STR_EQ(r, "");
  free(r);
  r = queryf(&d, "range AAPL 0 %lld", (long long)(TS0 + 11));
  want = rows_of(market, (const int[]){0, -1}, false);
  ASSERT_STR_EQ(r, want);
  free(r);
  free(want);
  stop_cleanly(&d);
}

TEST(range_iso8601_bounds_equal_ns_bounds) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  /* One tick a second around 2026-11-25T14:30:00Z, and one at midnight. */
  struct tk t[12];
  for (int i = 0; i < 10; i++)
    t[i] = (struct tk){"AAPL", ISO_TS + (i - 5) * INT64_C(1000000000), "150.5", i, "R", NULL, -1,
                       false};
  t[10] = (struct tk){"AAPL", INT64_C(1795564800000000000), "1.5", 10, "M", NULL, -1, false};
  t[11] = (struct tk){"AAPL", ISO_TS + 500000000, "2.5", 11, "H", NULL, -1, false};
  send_tks(&d, t, 12, 12);
  static const struct {
    const char *iso_from, *iso_to;
    int64_t from, to;
  } cases[] = {
      {"2026-11-25T14:30:00Z", "2026-11-25T14:30:03Z", ISO_TS, ISO_TS + 3000000000},
      {"2026-11-25T14:29:58.5Z", "2026-11-25T14:30:00.500000000Z", ISO_TS - 1500000000,
       ISO_TS + 500000000},
      {"2026-11-25T15:30:00+01:00", "2026-11-25T09:30:02-05:00", ISO_TS, ISO_TS + 2000000000},
      {"2026-11-25", "2026-11-26", INT64_C(1795564800000000000), INT64_C(1795651200000000000)},
      {"2026-11-25T00:00:00Z", "2026-11-25T00:00:00.000000001Z", INT64_C(1795564800000000000),
       INT64_C(1795564800000000001)},
  };
  for (size_t i = 0; i < TKS_ARRAY_SIZE(cases); i++) {
    char *a = queryf(&d, "range AAPL %s %s", cases[i].iso_from, cases[i].iso_to);
    char *b = queryf(&d, "range AAPL %lld %lld", (long long)cases[i].from, (long long)cases[i].to);
    if (strcmp(a, b) != 0) TEST_FAIL("case %zu: ISO answer \"%s\" != ns answer \"%s\"", i, a, b);
    if (!*a) TEST_FAIL("case %zu: no ticks in the range", i);
    free(a);
    free(b);
  }
  /* Mixed: ISO FROM, ns TO. */
  char *r = queryf(&d, "range AAPL 2026-11-25T14:30:00Z %lld", (long long)(ISO_TS + 1));
  char *want = rows_of(t, (const int[]){5, -1}, false);
  ASSERT_STR_EQ(r, want);
  free(r);
  free(want);
  stop_cleanly(&d);
}

/* Follows `range SYM from to LIMIT` pages to the end; checks each page's
 * more line and that no run of equal ts straddles two pages.  Returns the
 * rows, concatenated, and the number of pages. */
static char *follow_pages(const struct tks_daemon *d, const char *sym, int64_t from, int64_t to,
                          int limit, int *pages) {
  struct tks_buf all;
  tks_buf_init(&all);
  tks_buf_puts(&all, "");
  int fd = ctl_open(d);
  long long prev_last_ts = 0;
  bool have_prev = false; /* any ts, INT64_MIN too, can be a page's first */
  *pages = 0;
  for (int guard = 0; guard < 10000; guard++) {
    char req[256];
    snprintf(req, sizeof req, "range %s %lld %lld %d", sym, (long long)from, (long long)to, limit);
    char *r = ask(fd, req);
    (*pages)++;
    char *more = strstr(r, "{\"more\":");
    int rows = count_lines(r) - (more ? 1 : 0);
    if (rows < (more ? limit : 0)) TEST_FAIL("page of %d rows, LIMIT %d: \"%s\"", rows, limit, r);
    if (rows > 0 && have_prev && json_int(r, "ts") == prev_last_ts)
      TEST_FAIL("ts %lld straddles two pages: \"%s\"", prev_last_ts, r);
    tks_buf_append(&all, r, more ? (size_t)(more - r) : strlen(r));
    if (!more) {
      free(r);
      break;
    }
    if (more[strlen(more) - 1] != '\n' || strchr(more, '\n') != more + strlen(more) - 1)
      TEST_FAIL("the more line is not the last line: \"%s\"", r);
    ASSERT_EQ(json_int(more, "returned"), rows);
    ASSERT(strncmp(more, "{\"more\":true,\"next_from\":", 25) == 0);
    long long next = json_int(more, "next_from");
    *more = '\0';
    const char *last_row = r;
    for (char *p = r; (p = strstr(p, "\n{")); p++) last_row = p + 1;
    prev_last_ts = json_int(last_row, "ts");
    have_prev = true;
    if (next <= prev_last_ts)
      TEST_FAIL("next_from %lld is not after the last row's ts %lld", next, prev_last_ts);
    from = next;
    free(r);
  }
  close(fd);
  return all.data;
}

TEST(range_paging_via_next_from_reaches_every_tick_once_with_ties_on_one_page) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  /* Runs of equal ts, sizes 1, 3, 1, 4, 2, 1, 5, 1, 2, 3, 1, 6: 30 ticks,
   * volume = 1..30 in ts order; sent in a shuffled order. */
  static const int runs[] = {1, 3, 1, 4, 2, 1, 5, 1, 2, 3, 1, 6};
  struct tk sorted[30], sent[30];
  int n = 0;
  for (size_t k = 0; k < TKS_ARRAY_SIZE(runs); k++)
    for (int j = 0; j < runs[k]; j++, n++)
      sorted[n] = (struct tk){"AAPL", TS0 + (int64_t)k * 100, "10.5", n + 1, "R", NULL, -1, false};
  ASSERT_EQ(n, 30);
  for (int i = 0; i < 30; i++) sent[i] = sorted[(i * 7) % 30]; /* 7 is prime to 30 */
  send_tks(&d, sent, 30, 30);
  for (int limit = 1; limit <= 7; limit++) {
    int pages;
    char *all = follow_pages(&d, "AAPL", TS0, TS0 + 10000, limit, &pages);
    ASSERT_EQ(count_lines(all), 30);
    bool seen[31] = {false};
    long long prev_ts = INT64_MIN;
    for (char *p = all; *p; p = strchr(p, '\n') + 1) {
      long long v = json_int(p, "volume"), ts = json_int(p, "ts");
      if (v < 1 || v > 30 || seen[v]) TEST_FAIL("LIMIT %d: volume %lld twice or unknown", limit, v);
      seen[v] = true;
      if (ts < prev_ts) TEST_FAIL("LIMIT %d: ts went back from %lld to %lld", limit, prev_ts, ts);
      /* The run a volume belongs to fixes its ts. */
      if (ts != sorted[v - 1].ts) TEST_FAIL("LIMIT %d: volume %lld with ts %lld", limit, v, ts);
      prev_ts = ts;
    }
    free(all);
  }
  /* A page with LIMIT 2 that ends inside a run of 3 keeps the whole run. */
  char *r = queryf(&d, "range AAPL %lld %lld 2", (long long)TS0, (long long)(TS0 + 10000));
  ASSERT_EQ(count_lines(r), 5); /* 1 + 3, then the more line */
  ASSERT_CONTAINS(r, "{\"more\":true,\"next_from\":1700000000000000200,\"returned\":4}\n");
  free(r);
  stop_cleanly(&d);
}

/* ---- symbols ---- */

TEST(symbols_lists_each_with_its_count_and_first_and_last_ts) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  send_tks(&d, market, TKS_ARRAY_SIZE(market), TKS_ARRAY_SIZE(market));
  char *r = query(&d, "symbols");
  char want[512];
  snprintf(want, sizeof want,
           "{\"symbol\":\"AAPL\",\"ticks\":7,\"first_ts\":%lld,\"last_ts\":%lld}\n"
           "{\"symbol\":\"MSFT\",\"ticks\":2,\"first_ts\":%lld,\"last_ts\":%lld}\n"
           "{\"symbol\":\"IBM\",\"ticks\":1,\"first_ts\":%lld,\"last_ts\":%lld}\n",
           (long long)(TS0 + 10), (long long)(TS0 + 70), (long long)(TS0 + 15),
           (long long)(TS0 + 16), (long long)(TS0 + 5), (long long)(TS0 + 5));
  ASSERT_STR_EQ(r, want);
  free(r);
  r = query(&d, "symbols 2");
  ASSERT_EQ(count_lines(r), 3);
  ASSERT(strncmp(r, "{\"symbol\":\"AAPL\"", 16) == 0);
  ASSERT_CONTAINS(r, "\n{\"symbol\":\"MSFT\"");
  ASSERT_CONTAINS(r, "}\n{\"truncated\":true,\"symbols\":3}\n");
  free(r);
  stop_cleanly(&d);
}

TEST(symbols_of_an_empty_store_is_an_empty_answer) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  char *r = query(&d, "symbols");
  ASSERT_STR_EQ(r, "");
  free(r);
  stop_cleanly(&d);
}

/* ---- bounds ---- */

TEST(max_rows_clamps_last_range_and_symbols) {
  struct tks_daemon d;
  daemon_start(&d, "query:\n  max_rows: 5\n");
  struct tk t[20];
  char names[20][8];
  for (int i = 0; i < 20; i++) {
    snprintf(names[i], sizeof names[i], "S%d", i % 7);
    t[i] = (struct tk){i < 12 ? "AAPL" : names[i], TS0 + i, "1.25", i, "R", NULL, -1, false};
  }
  send_tks(&d, t, 20, 20);
  char *r = query(&d, "last AAPL 100");
  ASSERT_EQ(count_lines(r), 6);
  ASSERT_EQ(json_int(r, "volume"), 7); /* the newest 5: 7..11 */
  ASSERT_CONTAINS(r, "\"volume\":11,");
  ASSERT_CONTAINS(r, "}\n{\"truncated\":true,\"max_rows\":5}\n");
  free(r);
  r = query(&d, "last AAPL 5"); /* not over the bound: nothing held back, no note */
  ASSERT_EQ(count_lines(r), 5);
  ASSERT_NOT_CONTAINS(r, "truncated");
  free(r);
  r = query(&d, "last AAPL"); /* the default 10 is over the bound too */
  ASSERT_EQ(count_lines(r), 6);
  ASSERT_CONTAINS(r, "{\"truncated\":true,\"max_rows\":5}\n");
  free(r);
  r = queryf(&d, "range AAPL 0 %lld 50", (long long)INT64_MAX);
  ASSERT_EQ(count_lines(r), 6);
  ASSERT_CONTAINS(r, "{\"more\":true,\"next_from\":1700000000000000005,\"returned\":5}\n");
  free(r);
  r = query(&d, "symbols 100");
  ASSERT_EQ(count_lines(r), 6);
  ASSERT_CONTAINS(r, "{\"truncated\":true,\"symbols\":8}\n");
  free(r);
  stop_cleanly(&d);
}

TEST_TIMEOUT(range_over_100k_ticks_answers_max_rows_and_a_more_line, 240) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  enum { N = 100000 };
  struct tks_buf b;
  tks_buf_init(&b);
  for (int i = 0; i < N; i++) {
    struct tk t = {"BIG", TS0 + i, "5.5", i, "R", NULL, -1, false};
    encode_tk(&b, &t);
  }
  int fd = daemon_connect_ingest(&d);
  ASSERT_EQ(send_all(fd, b.data, b.len), 0);
  daemon_expect_stat(&d, "ticks.accepted", N, 120000);
  close(fd);
  tks_buf_finish(&b);
  uint64_t t0 = now_ms();
  char *r = queryf(&d, "range BIG 0 %lld", (long long)INT64_MAX);
  uint64_t took = now_ms() - t0;
  ASSERT_EQ(count_lines(r), 10001);
  ASSERT(strncmp(r, "{\"ts\":1700000000000000000,", 26) == 0);
  ASSERT_CONTAINS(r, "\"volume\":9999,");
  ASSERT_NOT_CONTAINS(r, "\"volume\":10000,");
  ASSERT_CONTAINS(r, "}\n{\"more\":true,\"next_from\":1700000000000010000,\"returned\":10000}\n");
  free(r);
  r = query(&d, "last BIG 1000000");
  ASSERT_EQ(count_lines(r), 10001);
  ASSERT_CONTAINS(r, "\"volume\":99999,");
  ASSERT_CONTAINS(r, "{\"truncated\":true,\"max_rows\":10000}\n");
  free(r);
  r = query(&d, "symbols");
  ASSERT_STR_EQ(r, "{\"symbol\":\"BIG\",\"ticks\":100000,\"first_ts\":1700000000000000000,"
                   "\"last_ts\":1700000000000099999}\n");
  free(r);
  if (took > 10000) TEST_FAIL("a page of 10000 rows took %llu ms", (unsigned long long)took);
  stop_cleanly(&d);
}

/* ---- bad requests ---- */

TEST(every_bad_request_gets_an_error_and_the_connection_keeps_working) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  send_tks(&d, market, TKS_ARRAY_SIZE(market), TKS_ARRAY_SIZE(market));
  char longsym[301];
  memset(longsym, 'A', 300);
  longsym[300] = '\0';
  char long_last[400], long_range[400];
  snprintf(long_last, sizeof long_last, "last %s", longsym);
  snprintf(long_range, sizeof long_range, "range %s 0 10", longsym);
  static const struct {
    const char *req, *want;
  } cases[] = {
      {"last", "missing symbol (usage: last SYMBOL [N])"},
      {"last XYZ", "unknown symbol 'XYZ'"},
      {"last XYZ 3", "unknown symbol 'XYZ'"},
      {"last AAPL -3", "bad count '-3'"},
      {"last AAPL 0", "bad count '0'"},
      {"last AAPL ten", "bad count 'ten'"},
      {"last AAPL 99999999999999999999999", "bad count"},
      {"last AAPL 3 4", "too many arguments"},
      {"range", "missing symbol (usage: range SYMBOL FROM TO [LIMIT])"},
      {"range AAPL", "missing FROM"},
      {"range AAPL 0", "missing TO"},
      {"range XYZ 0 10", "unknown symbol 'XYZ'"},
      {"range AAPL abc 10",
       "bad time 'abc' (want ns since the epoch or ISO-8601 like 2026-11-25T14:30:00Z)"},
      {"range AAPL 0 abc", "bad time 'abc'"},
      {"range AAPL --5 10", "bad time '--5'"},
      {"range AAPL - 10", "bad time '-'"},
      {"range AAPL -9223372036854775809 1", "bad time '-9223372036854775809': out of range"},
      {"range AAPL 2026-11-25T14:30:00 10", "bad time '2026-11-25T14:30:00': no time zone"},
      {"range AAPL 2026-02-30 2026-03-01", "bad time '2026-02-30'"},
      {"range AAPL 99999999999999999999 1", "bad time"},
      {"range AAPL 10 10", "FROM must be before TO"},
      {"range AAPL 20 10", "FROM must be before TO"},
      {"range AAPL 2026-11-26 2026-11-25", "FROM must be before TO"},
      {"range AAPL 0 10 0", "bad count '0'"},
      {"range AAPL 0 10 -1", "bad count '-1'"},
      {"range AAPL 0 10 5 6", "too many arguments"},
      {"symbols x", "bad count 'x'"},
      {"symbols 1 2", "too many arguments"},
      {"advice now", "too many arguments"},
      {"last AAPL ts=xml", "bad ts format 'ts=xml' (want ts=ns, ts=iso or ts=string)"},
      {"last AAPL ts=", "bad ts format 'ts='"},
      {"range AAPL ts=iso 0 10 ts=ns", "ts= given twice"},
      {"last AAPL 3 4 ts=iso", "too many arguments"},
      {"advice ts=iso", "too many arguments"},
  };
  int fd = ctl_open(&d);
  for (size_t i = 0; i < TKS_ARRAY_SIZE(cases); i++) {
    char *r = ask(fd, cases[i].req);
    if (strncmp(r, "{\"error\":", 9) != 0 || count_lines(r) != 1 || !strstr(r, cases[i].want))
      TEST_FAIL("'%s': want one error line with \"%s\", got \"%s\"", cases[i].req, cases[i].want,
                r);
    free(r);
  }
  char *r = ask(fd, long_last);
  expect_error(r, "longer than 255 bytes");
  free(r);
  r = ask(fd, long_range);
  expect_error(r, "longer than 255 bytes");
  free(r);
  /* Names are whole words: these are not queries at all. */
  static const char *const unknown[] = {"lastX AAPL", "ranges AAPL 0 1", "symbolsx", "advice2",
                                        "LAST AAPL"};
  for (size_t i = 0; i < TKS_ARRAY_SIZE(unknown); i++) {
    r = ask(fd, unknown[i]);
    expect_error(r, "unknown request");
    free(r);
  }
  /* And the same connection still answers a good query. */
  r = ask(fd, "last AAPL 1");
  char *want = rows_of(market, (const int[]){3, -1}, false);
  ASSERT_STR_EQ(r, want);
  free(want);
  free(r);
  close(fd);
  stop_cleanly(&d);
}

TEST(a_query_never_adds_a_symbol) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  send_tks(&d, market, 2, 2);
  uint64_t before = daemon_stat(&d, "symbols.count");
  char *r = query(&d, "last NEVERSEEN");
  expect_error(r, "unknown symbol 'NEVERSEEN'");
  free(r);
  r = query(&d, "range NEVERSEEN 0 10");
  expect_error(r, "unknown symbol");
  free(r);
  ASSERT_U64_EQ(daemon_stat(&d, "symbols.count"), before);
  stop_cleanly(&d);
}

/* ---- advice ---- */

TEST(advice_answers_json_lines_with_advice_and_text) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  send_tks(&d, market, TKS_ARRAY_SIZE(market), TKS_ARRAY_SIZE(market));
  char *r = query(&d, "advice");
  if (count_lines(r) < 1) TEST_FAIL("no advice lines: \"%s\"", r);
  for (char *p = r; *p; p = strchr(p, '\n') + 1) {
    char *nl = strchr(p, '\n');
    *nl = '\0';
    char *flat = json_flatten(p);
    if (!flat) TEST_FAIL("advice line is not JSON: \"%s\"", p);
    char v[512];
    if (stats_text_lookup(flat, "advice", v, sizeof v) ||
        stats_text_lookup(flat, "text", v, sizeof v))
      TEST_FAIL("advice line without advice and text: \"%s\"", p);
    free(flat);
    *nl = '\n';
  }
  free(r);
  stop_cleanly(&d);
}

/* ---- the CLI ---- */

/* tickslab --socket SOCK ARGS... (NULL-ended) */
static void cli(const struct tks_daemon *d, struct cmd_result *r, ...) {
  char *argv[32];
  int n = 0;
  argv[n++] = (char *)harness_tickslab();
  argv[n++] = "--socket";
  argv[n++] = (char *)d->sock;
  va_list ap;
  va_start(ap, r);
  const char *a;
  while ((a = va_arg(ap, const char *)) && n < 31) argv[n++] = (char *)a;
  va_end(ap);
  argv[n] = NULL;
  if (access(argv[0], X_OK) != 0) TEST_FAIL("tickslab not found at %s (set TICKSLAB)", argv[0]);
  run_cmd(argv, NULL, NULL, 60000, r);
}

static void expect_exit(const struct cmd_result *r, int code, const char *what) {
  if (r->code != code)
    TEST_FAIL("%s: exit %d, want %d\n  stdout: %s\n  stderr: %s", what, r->code, code, r->out,
              r->err);
}

TEST(cli_last_prints_the_rows) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  send_tks(&d, market, TKS_ARRAY_SIZE(market), TKS_ARRAY_SIZE(market));
  struct cmd_result r;
  cli(&d, &r, "last", "AAPL", "2", NULL);
  expect_exit(&r, 0, "last AAPL 2");
  char *want = rows_of(market, (const int[]){7, 3, -1}, false);
  ASSERT_STR_EQ(r.out, want);
  ASSERT_STR_EQ(r.err, "");
  cmd_result_finish(&r);
  cli(&d, &r, "last", "--json", "MSFT", NULL);
  expect_exit(&r, 0, "last --json MSFT");
  free(want);
  want = rows_of(market, (const int[]){1, 8, -1}, false);
  ASSERT_STR_EQ(r.out, want);
  free(want);
  cmd_result_finish(&r);
  /* --ts: the request word ts=; a bad format is a usage error. */
  char iso[TKS_ISO8601_LEN + 1];
  tks_format_iso8601(TS0 + 70, iso);
  cli(&d, &r, "last", "AAPL", "1", "--ts", "iso", NULL);
  expect_exit(&r, 0, "last AAPL 1 --ts iso");
  ASSERT_CONTAINS(r.out, iso);
  cmd_result_finish(&r);
  cli(&d, &r, "range", "--ts=string", "AAPL", "0", "9223372036854775807", "--all", NULL);
  expect_exit(&r, 0, "range --ts=string --all");
  ASSERT_EQ(count_lines(r.out), 7);
  ASSERT_NOT_CONTAINS(r.out, "\"ts\":1");
  cmd_result_finish(&r);
  cli(&d, &r, "last", "AAPL", "--ts", "rfc", NULL);
  expect_exit(&r, 2, "last --ts rfc");
  ASSERT_CONTAINS(r.err, "--ts takes ns, iso or string");
  cmd_result_finish(&r);
  stop_cleanly(&d);
}

TEST(cli_range_all_follows_every_page) {
  struct tks_daemon d;
  daemon_start(&d, "query:\n  max_rows: 3\n");
  static const int offsets[11] = {0, 10, 10, 20, 20, 20, 20, 30, 40, 40, 50};
  struct tk t[11];
  for (int i = 0; i < 11; i++)
    t[i] = (struct tk){"AAPL", TS0 + offsets[i], "2.5", i, "R", NULL, -1, false};
  send_tks(&d, t, 11, 11);
  char from[32], to[32];
  snprintf(from, sizeof from, "%lld", (long long)TS0);
  snprintf(to, sizeof to, "%lld", (long long)(TS0 + 100));
  struct cmd_result r;
  cli(&d, &r, "range", "AAPL", from, to, "--all", NULL);
  expect_exit(&r, 0, "range --all");
  char *want = rows_of(t, (const int[]){0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, -1}, false);
  ASSERT_STR_EQ(r.out, want);
  free(want);
  cmd_result_finish(&r);
  /* Without --all: one page and its more line, as the daemon wrote them. */
  cli(&d, &r, "range", "AAPL", from, to, NULL);
  expect_exit(&r, 0, "range");
  ASSERT_EQ(count_lines(r.out), 4);
  ASSERT_CONTAINS(r.out, "{\"more\":true,\"next_from\":1700000000000000020,\"returned\":3}\n");
  cmd_result_finish(&r);
  /* ISO bounds and a LIMIT. */
  cli(&d, &r, "range", "AAPL", "2023-11-14T22:13:20Z", "2023-11-14T22:13:20.000000011Z", "1",
      "--all", NULL);
  expect_exit(&r, 0, "range ISO --all");
  want = rows_of(t, (const int[]){0, 1, 2, -1}, false);
  ASSERT_STR_EQ(r.out, want);
  free(want);
  cmd_result_finish(&r);
  stop_cleanly(&d);
}

/* rows holds every tick of sorted[0..n) with from <= ts < to exactly once
 * (told apart by volume = index + 1), in ts order. */
static void expect_each_once(const char *what, const char *rows, const struct tk *sorted, int n,
                             int64_t from, int64_t to) {
  bool seen[64] = {false};
  ASSERT(n <= 64);
  int want = 0, got = 0;
  for (int i = 0; i < n; i++) want += sorted[i].ts >= from && sorted[i].ts < to;
  long long prev = INT64_MIN;
  for (const char *p = rows; *p; p = strchr(p, '\n') + 1, got++) {
    long long v = json_int(p, "volume"), ts = json_int(p, "ts");
    if (v < 1 || v > n || seen[v - 1]) TEST_FAIL("%s: volume %lld twice or unknown", what, v);
    seen[v - 1] = true;
    if (ts != sorted[v - 1].ts) TEST_FAIL("%s: volume %lld with ts %lld", what, v, ts);
    if (ts < from || ts >= to) TEST_FAIL("%s: ts %lld outside the range", what, ts);
    if (ts < prev) TEST_FAIL("%s: ts went back from %lld to %lld", what, prev, ts);
    prev = ts;
  }
  if (got != want) TEST_FAIL("%s: %d rows, want %d: \"%s\"", what, got, want, rows);
}

TEST(range_pages_across_negative_timestamps_with_every_tick_once_in_order) {
  struct tks_daemon d;
  daemon_start(&d, "query:\n  max_rows: 3\n");
  /* 40 ticks from before the epoch (INT64_MIN included) to after it, runs
   * of equal ts among them, volume = 1..40 in ts order, sent shuffled. */
  static const int64_t ts[] = {INT64_MIN,   INT64_MIN + 1,
                               -TS0,        -TS0,
                               -TS0,        -1000000001,
                               -1000000000, -1000000000,
                               -2,          -1,
                               -1,          -1,
                               -1,          0,
                               0,           1,
                               2,           3,
                               999,         TS0};
  enum { N = 2 * TKS_ARRAY_SIZE(ts) };
  struct tk sorted[N], sent[N];
  for (int i = 0; i < N; i++)
    sorted[i] = (struct tk){"NEG", ts[i / 2], "1.5", i + 1, "R", NULL, -1, false};
  for (int i = 0; i < N; i++) sent[i] = sorted[(i * 7) % N]; /* 7 is prime to 40 */
  send_tks(&d, sent, N, N);
  /* From INT64_MIN itself (the lowest FROM there is) and through the CLI. */
  int pages;
  char *all = follow_pages(&d, "NEG", INT64_MIN, INT64_MAX, 3, &pages);
  expect_each_once("pages from INT64_MIN", all, sorted, N, INT64_MIN, INT64_MAX);
  ASSERT(pages > N / 9); /* it did page (runs of up to 8 make a page longer than 3) */
  free(all);
  /* Pages that start on a negative next_from, and an ISO bound before 1970. */
  char *r = queryf(&d, "range NEG %lld 0 2", (long long)-TS0);
  ASSERT_CONTAINS(r, "{\"more\":true,\"next_from\":-1000000001,\"returned\":6}\n");
  free(r);
  r = query(&d, "range NEG 1969-12-31T23:59:59Z -999999999");
  ASSERT_EQ(count_lines(r), 4); /* -1000000000 twice, -1000000000 twice */
  ASSERT_CONTAINS(r, "\"ts\":-1000000000,");
  ASSERT_NOT_CONTAINS(r, "\"ts\":-1000000001,");
  free(r);
  struct cmd_result cr;
  cli(&d, &cr, "range", "NEG", "-9223372036854775808", "9223372036854775807", "--all", NULL);
  expect_exit(&cr, 0, "range --all over negative ts");
  expect_each_once("range --all", cr.out, sorted, N, INT64_MIN, INT64_MAX);
  cmd_result_finish(&cr);
  cli(&d, &cr, "range", "NEG", "-1000000000", "1", "2", "--all", NULL);
  expect_exit(&cr, 0, "range --all from a negative FROM");
  expect_each_once("range --all from -1000000000", cr.out, sorted, N, -1000000000, 1);
  cmd_result_finish(&cr);
  stop_cleanly(&d);
}

TEST(cli_symbols_prints_each_symbol) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  send_tks(&d, market, TKS_ARRAY_SIZE(market), TKS_ARRAY_SIZE(market));
  struct cmd_result r;
  cli(&d, &r, "symbols", NULL);
  expect_exit(&r, 0, "symbols");
  ASSERT_EQ(count_lines(r.out), 3);
  ASSERT(strncmp(r.out, "{\"symbol\":\"AAPL\",\"ticks\":7,", 27) == 0);
  ASSERT_CONTAINS(r.out, "{\"symbol\":\"IBM\",\"ticks\":1,");
  cmd_result_finish(&r);
  cli(&d, &r, "symbols", "1", NULL);
  expect_exit(&r, 0, "symbols 1");
  ASSERT_CONTAINS(r.out, "{\"truncated\":true,\"symbols\":3}\n");
  cmd_result_finish(&r);
  stop_cleanly(&d);
}

TEST(cli_error_answers_exit_1_and_usage_errors_exit_2) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  send_tks(&d, market, 1, 1);
  struct cmd_result r;
  cli(&d, &r, "last", "NOPE", NULL);
  expect_exit(&r, 1, "last NOPE");
  ASSERT_STR_EQ(r.out, "");
  ASSERT_CONTAINS(r.err, "tickslab: unknown symbol 'NOPE'");
  cmd_result_finish(&r);
  cli(&d, &r, "range", "AAPL", "yesterday", "now", NULL);
  expect_exit(&r, 1, "range with bad times");
  ASSERT_CONTAINS(r.err, "bad time 'yesterday'");
  cmd_result_finish(&r);
  cli(&d, &r, "range", "AAPL", "5", "1", "--all", NULL);
  expect_exit(&r, 1, "range --all FROM > TO");
  ASSERT_CONTAINS(r.err, "FROM must be before TO");
  cmd_result_finish(&r);
  cli(&d, &r, "last", "AAPL", "-3", NULL);
  expect_exit(&r, 1, "last AAPL -3");
  ASSERT_CONTAINS(r.err, "bad count '-3'");
  cmd_result_finish(&r);
  static const char *const usage[][6] = {
      {"last", NULL},
      {"last", "A", "1", "2", NULL},
      {"range", "AAPL", "0", NULL},
      {"symbols", "1", "2", NULL},
      {"advice", "x", NULL},
      {"last", "AAPL", "--bogus", NULL},
      {"last", "A B", NULL},
  };
  for (size_t i = 0; i < TKS_ARRAY_SIZE(usage); i++) {
    cli(&d, &r, usage[i][0], usage[i][1], usage[i][2], usage[i][3], usage[i][4], NULL);
    expect_exit(&r, 2, usage[i][0]);
    ASSERT_CONTAINS(r.err, "tickslab: ");
    cmd_result_finish(&r);
  }
  static const char *const helps[] = {"last", "range", "symbols", "advice"};
  for (size_t i = 0; i < TKS_ARRAY_SIZE(helps); i++) {
    cli(&d, &r, helps[i], "--help", NULL);
    expect_exit(&r, 0, "--help");
    char want[64];
    snprintf(want, sizeof want, "Usage: tickslab %s", helps[i]);
    ASSERT_CONTAINS(r.out, want);
    cmd_result_finish(&r);
  }
  cli(&d, &r, "--help", NULL);
  expect_exit(&r, 0, "--help");
  ASSERT_CONTAINS(r.out, "  last SYMBOL [N]");
  ASSERT_CONTAINS(r.out, "  range SYMBOL FROM TO [LIMIT]");
  ASSERT_CONTAINS(r.out, "  symbols");
  ASSERT_CONTAINS(r.out, "  advice");
  cmd_result_finish(&r);
  stop_cleanly(&d);
}

TEST(cli_advice_prints_the_text_and_json_with_json) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  send_tks(&d, market, TKS_ARRAY_SIZE(market), TKS_ARRAY_SIZE(market));
  struct cmd_result r;
  cli(&d, &r, "advice", "--json", NULL);
  expect_exit(&r, 0, "advice --json");
  ASSERT(strncmp(r.out, "{", 1) == 0);
  ASSERT_CONTAINS(r.out, "\"text\":\"");
  int lines = count_lines(r.out);
  cmd_result_finish(&r);
  cli(&d, &r, "advice", NULL);
  expect_exit(&r, 0, "advice");
  ASSERT(r.out[0] && r.out[0] != '{');
  ASSERT_NOT_CONTAINS(r.out, "\"text\"");
  ASSERT(count_lines(r.out) >= lines); /* a text may hold a line break */
  cmd_result_finish(&r);
  stop_cleanly(&d);
}

/* ---- fallback and dynamic modes ---- */

TEST(fallback_extra_fields_come_back_from_last_with_every_declared_field) {
  struct tks_daemon d;
  daemon_start(&d, "store:\n  mode: fallback\n");
  static const struct tk t[] = {
      {"AAPL", TS0 + 1, "150.05", 100, "R", "XNAS", 7, false},
      {"AAPL", TS0 + 2, "150.1", 200, "R", NULL, -1, false},
  };
  send_tks(&d, t, 2, 2);
  char *r = query(&d, "last AAPL 2");
  char *want = rows_of(t, (const int[]){0, 1, -1}, false);
  ASSERT_STR_EQ(r, want);
  ASSERT_CONTAINS(r, "\"exchange\":\"XNAS\"");
  ASSERT_CONTAINS(r, "\"seq\":7");
  free(want);
  free(r);
  stop_cleanly(&d);
}

TEST(fallback_last_and_range_merge_slotted_and_dynamic_ticks_in_ts_order) {
  struct tks_daemon d;
  daemon_start(&d, "store:\n  mode: fallback\n");
  /* Alternating plain and extra-field ticks, sent out of order. */
  struct tk t[12];
  for (int i = 0; i < 12; i++) {
    t[i] = (struct tk){"AAPL", TS0 + i * 10, "12.5", i, "R", NULL, -1, false};
    if (i % 2 == 1) t[i].exchange = "XNAS", t[i].seq = i;
  }
  static const int order[] = {0, 1, 3, 2, 5, 4, 6, 9, 7, 8, 11, 10};
  struct tk sent[12];
  for (int i = 0; i < 12; i++) sent[i] = t[order[i]];
  send_tks(&d, sent, 12, 12);
  char *r = query(&d, "last AAPL 5");
  char *want = rows_of(t, (const int[]){7, 8, 9, 10, 11, -1}, false);
  ASSERT_STR_EQ(r, want);
  free(r);
  free(want);
  r = queryf(&d, "range AAPL %lld %lld", (long long)(TS0 + 15), (long long)(TS0 + 75));
  want = rows_of(t, (const int[]){2, 3, 4, 5, 6, 7, -1}, false);
  ASSERT_STR_EQ(r, want);
  free(r);
  free(want);
  /* Paging across both representations. */
  int pages;
  char *all = follow_pages(&d, "AAPL", TS0, TS0 + 1000, 4, &pages);
  want = rows_of(t, (const int[]){0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, -1}, false);
  ASSERT_STR_EQ(all, want);
  ASSERT_EQ(pages, 3);
  free(all);
  free(want);
  r = query(&d, "symbols");
  char line[160];
  snprintf(line, sizeof line,
           "{\"symbol\":\"AAPL\",\"ticks\":12,\"first_ts\":%lld,\"last_ts\":%lld}\n",
           (long long)TS0, (long long)(TS0 + 110));
  ASSERT_STR_EQ(r, line);
  free(r);
  stop_cleanly(&d);
}

TEST(undeclared_fields_come_back_in_the_order_the_daemon_first_saw_them) {
  struct tks_daemon d;
  daemon_start(&d, "store:\n  mode: fallback\n");
  static const struct tk t[] = {
      {"AAPL", TS0 + 1, "1.5", 1, "R", "XNAS", 1, false}, /* exchange seen first */
      {"AAPL", TS0 + 2, "2.5", 2, "R", "ARCX", 2, true},  /* sent seq first */
  };
  send_tks(&d, t, 2, 2);
  char *r = query(&d, "last AAPL 2");
  char *want = rows_of(t, (const int[]){0, 1, -1}, false); /* exchange before seq in both */
  ASSERT_STR_EQ(r, want);
  free(r);
  free(want);
  stop_cleanly(&d);
}

TEST(dynamic_ticks_come_back_with_exactly_the_fields_they_were_sent_with) {
  struct tks_daemon d;
  daemon_start(&d, "store:\n  mode: dynamic\n");
  static const struct tk t[] = {
      {"AAPL", TS0 + 1, "150.05", 100, "R", NULL, -1, false},
      {"AAPL", TS0 + 2, "150.1", 200, NULL, NULL, -1, false}, /* no flags: none back */
      {"AAPL", TS0 + 3, "150.15", 300, "X", "XNAS", 7, false},
      {"MSFT", TS0 + 4, "410.5", 1, NULL, "XNYS", -1, false},
  };
  send_tks(&d, t, 4, 4);
  char *r = query(&d, "last AAPL 3");
  char *want = rows_of(t, (const int[]){0, 1, 2, -1}, true);
  ASSERT_STR_EQ(r, want);
  ASSERT_NOT_CONTAINS(r, "\"volume\":200,\"flags\"");
  free(r);
  free(want);
  r = queryf(&d, "range MSFT %lld %lld", (long long)TS0, (long long)(TS0 + 10));
  want = rows_of(t, (const int[]){3, -1}, true);
  ASSERT_STR_EQ(r, want);
  free(r);
  free(want);
  r = query(&d, "symbols");
  ASSERT_EQ(count_lines(r), 2);
  ASSERT(strncmp(r, "{\"symbol\":\"AAPL\",\"ticks\":3,", 27) == 0);
  free(r);
  stop_cleanly(&d);
}

TEST(dynamic_range_pages_with_ties_reach_every_tick_once) {
  struct tks_daemon d;
  daemon_start(&d, "store:\n  mode: dynamic\n");
  struct tk t[20];
  for (int i = 0; i < 20; i++) /* runs of 4 equal ts, sent newest first */
    t[i] = (struct tk){"AAPL", TS0 + (19 - i) / 4 * 10, "3.5", 19 - i, "R", NULL, -1, false};
  send_tks(&d, t, 20, 20);
  int pages;
  char *all = follow_pages(&d, "AAPL", 0, INT64_MAX, 3, &pages);
  ASSERT_EQ(count_lines(all), 20);
  ASSERT_EQ(pages, 5);
  bool seen[20] = {false};
  for (char *p = all; *p; p = strchr(p, '\n') + 1) {
    long long v = json_int(p, "volume");
    ASSERT(v >= 0 && v < 20 && !seen[v]);
    seen[v] = true;
    ASSERT_EQ(json_int(p, "ts"), TS0 + v / 4 * 10);
  }
  free(all);
  stop_cleanly(&d);
}

TEST_MAIN()
