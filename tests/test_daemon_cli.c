/*
 * Black-box tests of the `tickslab` CLI against the real daemon: `send`
 * (CSV from a file or stdin, map or array form), `gen` (the load
 * generator), `stats` in each format and `ping`, and its exit codes:
 * 0 ok, 1 failure (with a clear message), 2 usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>

#include "harness.h"
#include "test.h"

#define TS0 1700000000000000000LL

/* tickslab --socket SOCK [--connect 127.0.0.1:PORT] ARGS... (NULL-ended) */
static void cli(const struct tks_daemon *d, bool connect, const char *stdin_path,
                struct cmd_result *r, ...) {
  char *argv[32];
  char addr[32];
  int n = 0;
  argv[n++] = (char *)harness_tickslab();
  argv[n++] = "--socket";
  argv[n++] = (char *)d->sock;
  if (connect) {
    snprintf(addr, sizeof addr, "127.0.0.1:%d", d->port);
    argv[n++] = "--connect";
    argv[n++] = addr;
  }
  va_list ap;
  va_start(ap, r);
  const char *a;
  while ((a = va_arg(ap, const char *)) && n < 31) argv[n++] = (char *)a;
  va_end(ap);
  argv[n] = NULL;
  if (access(argv[0], X_OK) != 0) TEST_FAIL("tickslab not found at %s (set TICKSLAB)", argv[0]);
  run_cmd(argv, NULL, stdin_path, 60000, r);
}

static void expect_ok(const struct cmd_result *r, const char *what) {
  if (r->code != 0)
    TEST_FAIL("%s: exit %d\n  stdout: %s\n  stderr: %s", what, r->code, r->out, r->err);
}

/* n rows "SYMk,ts,price,volume,R" over `symbols` symbols, into dir/name. */
static void write_csv(const char *path, int n, int symbols, const char *header) {
  FILE *f = fopen(path, "w");
  if (!f) TEST_FAIL("open %s: %s", path, strerror(errno));
  if (header) fputs(header, f);
  for (int i = 0; i < n; i++)
    fprintf(f, "SYM%d,%lld,%.2f,%d,R\n", i % symbols, TS0 + i, 100.0 + i * 0.25, i + 1);
  fclose(f);
}

static void stop_cleanly(struct tks_daemon *d) {
  int code = daemon_stop(d, SIGTERM);
  daemon_cleanup(d);
  ASSERT_EQ(code, 0);
}

TEST(send_csv_file_of_1000_rows_is_accepted) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  char path[160];
  snprintf(path, sizeof path, "%s/ticks.csv", d.dir);
  write_csv(path, 1000, 10, NULL);
  struct cmd_result r;
  cli(&d, true, NULL, &r, "send", path, NULL);
  expect_ok(&r, "send");
  ASSERT_CONTAINS(r.out, "sent 1000 ticks");
  daemon_expect_stat(&d, "ticks.accepted", 1000, 10000);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.rejected"), 0);
  ASSERT_U64_EQ(daemon_stat(&d, "symbols.count"), 10);
  cmd_result_finish(&r);
  stop_cleanly(&d);
}

TEST(send_reads_stdin_with_header_crlf_empty_ts_and_iso_timestamps) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  char path[160];
  snprintf(path, sizeof path, "%s/ticks.csv", d.dir);
  write_file(path, "ticker,ts,price,volume,flags\r\n"
                   "AAPL,,150.5,100,R\r\n"
                   "MSFT,1700000000000000000,410.25,5,\r\n"
                   "AAPL,2024-01-02T03:04:05Z,151,7,X\r\n"
                   "GOOG,2024-01-02T03:04:05.123456789Z,140.5,1,\r\n"
                   "AAPL,,152,8,R\r\n");
  struct cmd_result r;
  cli(&d, true, path, &r, "send", "-", NULL);
  expect_ok(&r, "send -");
  ASSERT_CONTAINS(r.out, "sent 5 ticks");
  daemon_expect_stat(&d, "ticks.accepted", 5, 10000);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.rejected"), 0);
  ASSERT_U64_EQ(daemon_stat(&d, "symbols.count"), 3);
  cmd_result_finish(&r);
  stop_cleanly(&d);
}

TEST(send_array_form_is_accepted_and_smaller) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  char path[160];
  snprintf(path, sizeof path, "%s/ticks.csv", d.dir);
  write_csv(path, 100, 4, "ticker,ts,price,volume,flags\n");
  struct cmd_result r;
  cli(&d, true, NULL, &r, "send", path, "--array", NULL);
  expect_ok(&r, "send --array");
  ASSERT_CONTAINS(r.out, "sent 100 ticks");
  daemon_expect_stat(&d, "ticks.accepted", 100, 10000);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.rejected"), 0);
  /* [ts, "SYMk", price, volume, "R"] is about 30 bytes; a map about 60 */
  uint64_t bytes = daemon_stat(&d, "ingest.bytes_received");
  if (bytes > 100 * 40)
    TEST_FAIL("%llu bytes for 100 ticks: not the array form", (unsigned long long)bytes);
  cmd_result_finish(&r);
  stop_cleanly(&d);
}

TEST(send_fails_on_a_bad_csv_line_naming_it) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  char path[160];
  snprintf(path, sizeof path, "%s/bad.csv", d.dir);
  write_file(path, "AAPL,1700000000000000000,150.5,100,R\n"
                   "AAPL,1700000000000000001,150.5,100,R\n"
                   "AAPL,1700000000000000002,not-a-price,100,R\n"
                   "AAPL,1700000000000000003,150.5,100,R\n");
  struct cmd_result r;
  cli(&d, true, NULL, &r, "send", path, NULL);
  if (r.code != 1) TEST_FAIL("exit %d, want 1; stderr: %s", r.code, r.err);
  if (!strstr(r.err, ":3:") && !strstr(r.err, "line 3"))
    TEST_FAIL("stderr does not name line 3: \"%s\"", r.err);
  cmd_result_finish(&r);
  stop_cleanly(&d);
}

/* ---- send with acknowledgements ---- */

TEST(send_with_acks_reports_each_rejected_line_by_its_number_and_exits_1) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  char path[160];
  snprintf(path, sizeof path, "%s/mixed.csv", d.dir);
  /* Line 4 and 8 the daemon refuses (a ticker with a space); the header,
   * the blank line 6 are no ticks: seq and line numbers part ways. */
  write_file(path, "ticker,ts,price,volume,flags\n"
                   "AAPL,1700000000000000000,150.5,100,R\n"
                   "AAPL,1700000000000000001,150.5,100,R\n"
                   "BAD SYM,1700000000000000002,150.5,100,R\n"
                   "AAPL,1700000000000000003,150.5,100,R\n"
                   "\n"
                   "AAPL,1700000000000000004,150.5,100,R\n"
                   "NO GOOD,1700000000000000005,150.5,100,R\n"
                   "AAPL,1700000000000000006,150.5,100,R\n");
  struct cmd_result r;
  cli(&d, true, NULL, &r, "send", "--acks", path, NULL);
  if (r.code != 1) TEST_FAIL("exit %d, want 1; stderr: %s", r.code, r.err);
  ASSERT_CONTAINS(r.err, "mixed.csv:4: rejected: bad_value (field ticker)");
  ASSERT_CONTAINS(r.err, "mixed.csv:8: rejected: bad_value (field ticker)");
  ASSERT_NOT_CONTAINS(r.err, ":9:");
  ASSERT_CONTAINS(r.out, "sent 7 ticks");
  ASSERT_CONTAINS(r.out, "accepted 5, rejected 2");
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.accepted"), 5); /* counted before it exited */
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.rejected"), 2);
  cmd_result_finish(&r);
  /* All good: exit 0. */
  write_csv(path, 300, 3, NULL);
  cli(&d, true, NULL, &r, "send", "--acks", path, NULL);
  expect_ok(&r, "send --acks");
  ASSERT_CONTAINS(r.out, "accepted 300, rejected 0");
  cmd_result_finish(&r);
  stop_cleanly(&d);
}

TEST(send_sync_exits_once_every_accepted_tick_is_durable) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  char path[160];
  snprintf(path, sizeof path, "%s/ticks.csv", d.dir);
  write_csv(path, 2000, 5, "ticker,ts,price,volume,flags\n");
  struct cmd_result r;
  cli(&d, true, NULL, &r, "send", "--sync", path, NULL);
  expect_ok(&r, "send --sync");
  ASSERT_CONTAINS(r.out, "accepted 2000, rejected 0, durable 2000");
  /* No wait: they were durable before it exited. */
  ASSERT(daemon_stat(&d, "ticks.durable") >= 2000);
  cmd_result_finish(&r);
  stop_cleanly(&d);
}

TEST(send_sync_with_fsync_never_asks_the_control_socket_for_sync) {
  struct tks_daemon d;
  daemon_prepare(&d, NULL, NULL);
  char yaml[512];
  snprintf(yaml, sizeof yaml, "journal:\n  dir: \"%s/journal\"\n  fsync: never\n", d.dir);
  daemon_write_config(&d, NULL, yaml);
  daemon_spawn(&d, NULL);
  daemon_wait_ready(&d);
  char path[160];
  snprintf(path, sizeof path, "%s/ticks.csv", d.dir);
  write_csv(path, 500, 2, NULL);
  struct cmd_result r;
  cli(&d, true, NULL, &r, "send", "--sync", path, NULL);
  expect_ok(&r, "send --sync (fsync never)");
  ASSERT_CONTAINS(r.out, "accepted 500, rejected 0, durable 500");
  ASSERT(daemon_stat(&d, "ticks.durable") >= 500);
  cmd_result_finish(&r);
  stop_cleanly(&d);
}

TEST(send_sync_with_the_journal_off_says_nothing_becomes_durable_and_exits_1) {
  struct tks_daemon d;
  daemon_start(&d, "journal:\n  enabled: false\n");
  char path[160];
  snprintf(path, sizeof path, "%s/ticks.csv", d.dir);
  write_csv(path, 10, 1, NULL);
  struct cmd_result r;
  cli(&d, true, NULL, &r, "send", "--sync", path, NULL);
  if (r.code != 1) TEST_FAIL("exit %d, want 1; stderr: %s", r.code, r.err);
  ASSERT_CONTAINS(r.err, "journal is off");
  cmd_result_finish(&r);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.accepted"), 0);
  stop_cleanly(&d);
}

TEST(send_as_a_named_producer_skips_the_ticks_the_daemon_already_has) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  char part[160], whole[160];
  snprintf(part, sizeof part, "%s/part.csv", d.dir);
  snprintf(whole, sizeof whole, "%s/whole.csv", d.dir);
  write_csv(part, 600, 4, NULL); /* the first 600 lines of whole: a cut run */
  write_csv(whole, 1000, 4, NULL);
  struct cmd_result r;
  cli(&d, true, NULL, &r, "send", "--producer", "loader", part, NULL);
  expect_ok(&r, "send --producer (part)");
  cmd_result_finish(&r);
  cli(&d, true, NULL, &r, "send", "--producer", "loader", whole, NULL);
  expect_ok(&r, "send --producer (whole)");
  ASSERT_CONTAINS(r.err, "skipped 600 ticks");
  ASSERT_CONTAINS(r.out, "sent 400 ticks");
  cmd_result_finish(&r);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.accepted"), 1000);
  /* A third run has nothing to send. */
  cli(&d, true, NULL, &r, "send", "--producer", "loader", whole, NULL);
  expect_ok(&r, "send --producer (again)");
  ASSERT_CONTAINS(r.out, "sent 0 ticks");
  cmd_result_finish(&r);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.accepted"), 1000);
  /* A shorter input than what the daemon has is an error. */
  cli(&d, true, NULL, &r, "send", "--producer", "loader", part, NULL);
  if (r.code != 1) TEST_FAIL("exit %d, want 1; stderr: %s", r.code, r.err);
  ASSERT_CONTAINS(r.err, "the input only 600");
  cmd_result_finish(&r);
  stop_cleanly(&d);
}

TEST_TIMEOUT(gen_sends_exactly_count_ticks_over_the_symbols, 120) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  struct cmd_result r;
  cli(&d, true, NULL, &r, "gen", "--count", "20000", "--symbols", "10", "--connections", "4", NULL);
  expect_ok(&r, "gen");
  ASSERT_CONTAINS(r.out, "sent 20000 ticks in ");
  ASSERT_CONTAINS(r.out, "ticks/s");
  daemon_expect_stat(&d, "ticks.accepted", 20000, 30000);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.rejected"), 0);
  ASSERT_U64_EQ(daemon_stat(&d, "symbols.count"), 10);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.total"), 4);
  cmd_result_finish(&r);
  stop_cleanly(&d);
}

TEST_TIMEOUT(gen_wait_returns_once_the_daemon_counted_every_tick, 120) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  struct cmd_result r;
  cli(&d, true, NULL, &r, "gen", "--count", "5000", "--symbols", "3", "--connections", "2",
      "--wait", NULL);
  expect_ok(&r, "gen --wait");
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.accepted"), 5000); /* no polling: --wait did it */
  ASSERT_U64_EQ(daemon_stat(&d, "symbols.count"), 3);
  cmd_result_finish(&r);
  stop_cleanly(&d);
}

TEST(stats_json_output_contains_the_ticks) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  struct cmd_result r;
  cli(&d, false, NULL, &r, "stats", "--json", NULL);
  expect_ok(&r, "stats --json");
  ASSERT_CONTAINS(r.out, "\"ticks\"");
  char *flat = json_flatten(r.out);
  if (!flat) TEST_FAIL("stats --json is not JSON: \"%s\"", r.out);
  char v[32];
  ASSERT_EQ(stats_text_lookup(flat, "ticks.accepted", v, sizeof v), 0);
  free(flat);
  cmd_result_finish(&r);
  stop_cleanly(&d);
}

TEST(stats_formats_match_the_control_socket) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  char path[160];
  snprintf(path, sizeof path, "%s/ticks.csv", d.dir);
  write_csv(path, 10, 2, NULL);
  struct cmd_result r;
  cli(&d, true, NULL, &r, "send", path, NULL);
  expect_ok(&r, "send");
  cmd_result_finish(&r);
  daemon_expect_stat(&d, "ticks.accepted", 10, 10000);
  cli(&d, false, NULL, &r, "stats", "--text", NULL);
  expect_ok(&r, "stats --text");
  char v[32];
  ASSERT_EQ(stats_text_lookup(r.out, "ticks.accepted", v, sizeof v), 0);
  ASSERT_STR_EQ(v, "10");
  cmd_result_finish(&r);
  cli(&d, false, NULL, &r, "stats", "--prometheus", NULL);
  expect_ok(&r, "stats --prometheus");
  ASSERT_CONTAINS(r.out, "# TYPE tickslab_");
  ASSERT_CONTAINS(r.out, "\ntickslab_ticks_accepted_total 10");
  cmd_result_finish(&r);
  cli(&d, false, NULL, &r, "stats", "--slabs", NULL);
  expect_ok(&r, "stats --slabs");
  ASSERT_CONTAINS(r.out, "chunk_size");
  cmd_result_finish(&r);
  cli(&d, false, NULL, &r, "stats", NULL);
  expect_ok(&r, "stats");
  ASSERT(r.out[0] != '\0');
  cmd_result_finish(&r);
  stop_cleanly(&d);
}

TEST(ping_exits_0_when_the_daemon_answers) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  struct cmd_result r;
  cli(&d, false, NULL, &r, "ping", NULL);
  expect_ok(&r, "ping");
  cmd_result_finish(&r);
  stop_cleanly(&d);
}

TEST(no_daemon_at_the_socket_exits_1_with_a_clear_message) {
  struct tks_daemon d = {0};
  harness_mkdtemp(d.dir, sizeof d.dir);
  snprintf(d.sock, sizeof d.sock, "%s/nobody.sock", d.dir);
  const char *cmds[] = {"ping", "stats"};
  for (int i = 0; i < 2; i++) {
    struct cmd_result r;
    cli(&d, false, NULL, &r, cmds[i], NULL);
    if (r.code != 1) TEST_FAIL("%s: exit %d, want 1; stderr: %s", cmds[i], r.code, r.err);
    if (!strstr(r.err, d.sock))
      TEST_FAIL("%s: message does not name the socket: \"%s\"", cmds[i], r.err);
    cmd_result_finish(&r);
  }
}

/* --socket alone (no --config, no --connect): send and tail go to the
 * ports the daemon at that socket listens on, as its stats say, not to
 * 7070 and 7071. */
TEST(socket_alone_reaches_that_daemons_ingest_and_subscription_ports) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  char path[160];
  snprintf(path, sizeof path, "%s/ticks.csv", d.dir);
  write_csv(path, 10, 2, NULL);
  struct cmd_result r;
  cli(&d, false, NULL, &r, "send", path, NULL);
  expect_ok(&r, "send --socket");
  char want[64];
  snprintf(want, sizeof want, "sent 10 ticks (%s", ""); /* then the bytes and the address */
  ASSERT_CONTAINS(r.out, want);
  snprintf(want, sizeof want, "to 127.0.0.1:%d", d.port);
  ASSERT_CONTAINS(r.out, want);
  cmd_result_finish(&r);
  daemon_expect_stat(&d, "ticks.accepted", 10, 10000);
  cli(&d, false, NULL, &r, "tail", "SYM1", "--from", "2000-01-01", "--count", "5", NULL);
  expect_ok(&r, "tail --socket");
  ASSERT_CONTAINS(r.out, "\"ticker\":\"SYM1\"");
  cmd_result_finish(&r);
  stop_cleanly(&d);
}

TEST(socket_alone_with_the_subscription_port_off_says_so) {
  struct tks_daemon d;
  daemon_start(&d, "subscribe:\n  listen: off\n");
  struct cmd_result r;
  cli(&d, false, NULL, &r, "tail", "--count", "1", NULL);
  ASSERT_EQ(r.code, 1);
  ASSERT_CONTAINS(r.err, "subscribe.listen off");
  cmd_result_finish(&r);
  stop_cleanly(&d);
}

TEST(send_to_a_closed_port_exits_1) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  char path[160];
  snprintf(path, sizeof path, "%s/ticks.csv", d.dir);
  write_csv(path, 10, 2, NULL);
  int port = d.port;
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0); /* nothing listens on the port now */
  d.port = port;
  struct cmd_result r;
  cli(&d, true, NULL, &r, "send", path, NULL);
  if (r.code != 1) TEST_FAIL("exit %d, want 1; stderr: %s", r.code, r.err);
  ASSERT(r.err[0] != '\0');
  cmd_result_finish(&r);
  daemon_cleanup(&d);
}

/* ---- send: the CSV header mapped to the schema ---- */

/* The seed article's Trade, as the README declares it. */
static const char trade_yaml[] = "schema:\n"
                                 "  - {name: symbol,    type: symbol, required: true}\n"
                                 "  - {name: timestamp, type: timestamp}\n"
                                 "  - {name: bid,       type: f64, required: true}\n"
                                 "  - {name: ask,       type: f64, required: true}\n";

/* How many lines of text hold needle. */
static int lines_with(const char *text, const char *needle) {
  int n = 0;
  for (const char *l = text; l && *l;) {
    const char *nl = strchr(l, '\n');
    size_t ll = nl ? (size_t)(nl - l) : strlen(l);
    if (memmem(l, ll, needle, strlen(needle))) n++;
    l = nl ? nl + 1 : NULL;
  }
  return n;
}

TEST(send_feeds_the_trade_schema_from_a_header_in_any_column_order) {
  struct tks_daemon d;
  daemon_start(&d, trade_yaml);
  /* Two files, the columns in two orders, quoted names, a BOM, CRLF; the
   * schema is the daemon's (from its stats), nothing but --socket given. */
  static const char *const files[2] = {
      "ask,timestamp,bid,symbol\n",
      "\xEF\xBB\xBF\"bid\",\"symbol\",\"ask\",\"timestamp\"\r\n",
  };
  const int rows = 200;
  for (int k = 0; k < 2; k++) {
    char path[200], line[160];
    snprintf(path, sizeof path, "%s/trade%d.csv", d.dir, k);
    FILE *f = fopen(path, "w");
    fputs(files[k], f);
    for (int i = 0; i < rows; i++) {
      int n = k * rows + i;
      long long ts = TS0 + n;
      double bid = 100 + n * 0.25, ask = bid + 0.5;
      if (k == 0)
        snprintf(line, sizeof line, "%.2f,%lld,%.2f,%s\n", ask, ts, bid, n % 2 ? "AAPL" : "MSFT");
      else
        snprintf(line, sizeof line, "%.2f,%s,%.2f,%lld\r\n", bid, n % 2 ? "AAPL" : "MSFT", ask, ts);
      fputs(line, f);
    }
    fclose(f);
    struct cmd_result r;
    cli(&d, true, NULL, &r, "send", path, NULL);
    expect_ok(&r, "send (Trade)");
    ASSERT_CONTAINS(r.out, "sent 200 ticks");
    cmd_result_finish(&r);
  }
  daemon_expect_stat(&d, "ticks.accepted", 2 * rows, 10000);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.rejected"), 0);
  /* Every row stored with its values: each one read back by range --all. */
  const char *syms[2] = {"MSFT", "AAPL"};
  for (int s = 0; s < 2; s++) {
    struct cmd_result r;
    cli(&d, false, NULL, &r, "range", syms[s], "0", "2100-01-01", "--all", NULL);
    expect_ok(&r, "range --all");
    ASSERT_EQ(lines_with(r.out, "\"symbol\":"), rows);
    for (int n = s; n < 2 * rows; n += 2) {
      char want[200];
      double bid = 100 + n * 0.25;
      snprintf(want, sizeof want, "{\"symbol\":\"%s\",\"timestamp\":%lld,\"bid\":%.2f", syms[s],
               (long long)(TS0 + n), bid);
      /* JSON writes 100.0, the CSV 100.00: compare the figures by value. */
      char *at = strstr(r.out, want);
      if (!at) {
        snprintf(want, sizeof want, "\"timestamp\":%lld,", (long long)(TS0 + n));
        at = strstr(r.out, want);
      }
      if (!at) TEST_FAIL("row %d (%s) not read back", n, syms[s]);
      double got_bid, got_ask;
      const char *b = strstr(at, "\"bid\":"), *a = strstr(at, "\"ask\":");
      if (!b || !a || sscanf(b, "\"bid\":%lf", &got_bid) != 1 ||
          sscanf(a, "\"ask\":%lf", &got_ask) != 1)
        TEST_FAIL("row %d: no bid and ask in '%.120s'", n, at);
      if (got_bid != bid || got_ask != bid + 0.5)
        TEST_FAIL("row %d: bid %g ask %g, want %g and %g", n, got_bid, got_ask, bid, bid + 0.5);
    }
    cmd_result_finish(&r);
  }
  stop_cleanly(&d);
}

TEST(send_refuses_unknown_columns_naming_them_and_extra_sends_them) {
  struct tks_daemon d;
  char yaml[1024];
  snprintf(yaml, sizeof yaml, "store:\n  mode: fallback\n%s", trade_yaml);
  daemon_start(&d, yaml);
  char path[200];
  snprintf(path, sizeof path, "%s/x.csv", d.dir);
  write_file(path, "symbol,venue,bid,ask,lot\nAAPL,XNAS,1.5,2.5,100\n");
  struct cmd_result r;
  cli(&d, true, NULL, &r, "send", path, NULL);
  if (r.code != 1) TEST_FAIL("exit %d, want 1; stderr: %s", r.code, r.err);
  ASSERT_CONTAINS(r.err, "x.csv:1: header: unknown columns 'venue', 'lot'");
  ASSERT_CONTAINS(r.err, "the daemon's at");
  cmd_result_finish(&r);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.total"), 1);
  cli(&d, true, NULL, &r, "send", "--extra", path, NULL);
  expect_ok(&r, "send --extra");
  cmd_result_finish(&r);
  daemon_expect_stat(&d, "ticks.accepted", 1, 10000);
  cli(&d, false, NULL, &r, "last", "AAPL", NULL);
  expect_ok(&r, "last");
  ASSERT_CONTAINS(r.out, "\"bid\":1.5,\"ask\":2.5,");
  ASSERT_CONTAINS(r.out, "\"venue\":\"XNAS\"");
  ASSERT_CONTAINS(r.out, "\"lot\":100");
  cmd_result_finish(&r);
  /* Without a header, the Trade schema has no columns to guess. */
  write_file(path, "AAPL,1,1.5,2.5\n");
  cli(&d, true, NULL, &r, "send", path, NULL);
  ASSERT_EQ(r.code, 1);
  ASSERT_CONTAINS(r.err, "no header line");
  cmd_result_finish(&r);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.accepted"), 1);
  stop_cleanly(&d);
}

TEST(send_refuses_hostile_headers_and_huge_lines_and_the_daemon_carries_on) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  static const struct {
    const char *csv, *want;
  } bad[] = {
      {"ticker,price,volume,price\nA,1,1,1\n", "column 'price' appears twice"},
      {"ticker,,price,volume\nA,,1,1\n", "column 2 has no name"},
      {"ticker,price,volume,fl\xe2\x82\n", "'fl\\xe2\\x82', is not UTF-8"},
      {"ticker,price,volume,$\n", "named '$'"},
      {"ticker,price\nA,1\n", "no column for the required field 'volume'"},
      {"ticker,price,volume\nA,1,1,1\n", "x.csv:2: more than 3 columns"},
  };
  char path[200];
  snprintf(path, sizeof path, "%s/x.csv", d.dir);
  for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    write_file(path, bad[i].csv);
    struct cmd_result r;
    cli(&d, true, NULL, &r, "send", path, NULL);
    if (r.code != 1 || !strstr(r.err, bad[i].want))
      TEST_FAIL("case %u: exit %d, stderr '%s', want 1 and '%s'", i, r.code, r.err, bad[i].want);
    cmd_result_finish(&r);
  }
  /* A header line of 2 MiB, and a data line of 2 MiB after a good one. */
  FILE *f = fopen(path, "w");
  fputs("ticker,price,volume,", f);
  for (int i = 0; i < (2 << 20); i++) fputc('x', f);
  fputs("\nA,1,1\n", f);
  fclose(f);
  struct cmd_result r;
  cli(&d, true, NULL, &r, "send", path, NULL);
  ASSERT_EQ(r.code, 1);
  ASSERT_CONTAINS(r.err, "x.csv:1: a line over 1048576 bytes");
  cmd_result_finish(&r);
  f = fopen(path, "w");
  fputs("ticker,price,volume\nGOOD,1,1\n", f);
  for (int i = 0; i < (2 << 20); i++) fputc('7', f);
  fputs("\nLATE,1,1\n", f);
  fclose(f);
  cli(&d, true, NULL, &r, "send", path, NULL);
  ASSERT_EQ(r.code, 1);
  ASSERT_CONTAINS(r.err, "x.csv:3: a line over 1048576 bytes");
  ASSERT_CONTAINS(r.out, "sent 1 ticks");
  cmd_result_finish(&r);
  daemon_expect_stat(&d, "ticks.accepted", 1, 10000);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.rejected"), 0);
  stop_cleanly(&d);
}

/* ---- stats sections, the slabs table, the permission message ---- */

TEST(stats_section_answers_that_part_only_and_an_unknown_one_lists_them) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  char *j = daemon_request(&d, "stats memory");
  ASSERT(strncmp(j, "{\"memory\":{\"rss_bytes\":", 23) == 0);
  ASSERT_CONTAINS(j, "\"total_bytes_per_tick\":");
  ASSERT(!strstr(j, "ticks") || !strstr(j, "\"accepted\""));
  ASSERT_EQ(lines_with(j, "{"), 1);
  free(j);
  char *t = daemon_request(&d, "stats text journal");
  int lines = lines_with(t, " "), journal = lines_with(t, "journal.");
  ASSERT(lines > 5);
  ASSERT_EQ(journal, lines);
  free(t);
  char *e = daemon_request(&d, "stats nosuch");
  ASSERT_CONTAINS(e, "{\"error\":\"unknown stats section 'nosuch' (sections: config, store, ");
  ASSERT_CONTAINS(e, "memory");
  ASSERT_CONTAINS(e, "subscribe");
  free(e);
  e = daemon_request(&d, "stats memory extra");
  ASSERT_CONTAINS(e, "unknown request");
  free(e);
  struct cmd_result r;
  cli(&d, false, NULL, &r, "stats", "ticks", NULL);
  expect_ok(&r, "stats ticks");
  ASSERT(strncmp(r.out, "ticks.accepted 0\n", 17) == 0);
  ASSERT_EQ(lines_with(r.out, "ticks."), lines_with(r.out, " "));
  cmd_result_finish(&r);
  cli(&d, false, NULL, &r, "stats", "ingest", "--json", NULL);
  expect_ok(&r, "stats ingest --json");
  ASSERT(strncmp(r.out, "{\"ingest\":{", 11) == 0);
  cmd_result_finish(&r);
  cli(&d, false, NULL, &r, "stats", "nosuch", NULL);
  ASSERT_EQ(r.code, 1);
  ASSERT_CONTAINS(r.err, "sections: ");
  cmd_result_finish(&r);
  stop_cleanly(&d);
}

TEST(stats_slabs_prints_a_table_and_json_with_json) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  char path[160];
  snprintf(path, sizeof path, "%s/ticks.csv", d.dir);
  write_csv(path, 1000, 10, NULL);
  struct cmd_result r;
  cli(&d, true, NULL, &r, "send", path, NULL);
  expect_ok(&r, "send");
  cmd_result_finish(&r);
  daemon_expect_stat(&d, "ticks.accepted", 1000, 10000);
  char *text = daemon_request(&d, "stats text slabs");
  uint64_t active = 0;
  char v[32];
  ASSERT_EQ(stats_text_lookup(text, "slabs.active_classes", v, sizeof v), 0);
  active = strtoull(v, NULL, 10);
  ASSERT(active > 0);
  cli(&d, false, NULL, &r, "stats", "slabs", NULL);
  expect_ok(&r, "stats slabs");
  static const char head[] = "class chunk_size chunks_per_page total_pages total_chunks "
                             "used_chunks free_chunks free_chunks_end mem_requested waste_bytes\n";
  ASSERT(strncmp(r.out, head, sizeof head - 1) == 0);
  /* A row a class: each begins with its id and chunk size, as the stats say. */
  int rows = 0;
  for (const char *l = strchr(r.out, '\n') + 1; *l && strncmp(l, "active_classes", 14) != 0;) {
    unsigned id;
    unsigned long long size;
    if (sscanf(l, "%u %llu", &id, &size) != 2) TEST_FAIL("not a row: '%.80s'", l);
    char key[64];
    snprintf(key, sizeof key, "slabs.classes.%u.chunk_size", id);
    ASSERT_EQ(stats_text_lookup(text, key, v, sizeof v), 0);
    ASSERT_U64_EQ(strtoull(v, NULL, 10), size);
    rows++;
    l = strchr(l, '\n') + 1;
  }
  ASSERT_U64_EQ((uint64_t)rows, active);
  char want[64];
  snprintf(want, sizeof want, "active_classes %llu,", (unsigned long long)active);
  ASSERT_CONTAINS(r.out, want);
  cmd_result_finish(&r);
  cli(&d, false, NULL, &r, "stats", "--slabs", "--json", NULL);
  expect_ok(&r, "stats --slabs --json");
  ASSERT(strncmp(r.out, "{\"slabs\":{\"page_size\":", 22) == 0);
  cmd_result_finish(&r);
  free(text);
  stop_cleanly(&d);
}

TEST(a_control_socket_the_user_may_not_open_is_called_permission_denied) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  struct cmd_result r;
  char *argv[12];
  int n = 0;
  if (geteuid() == 0) {
    /* Root opens any socket: ask as nobody (the socket is 0600, root's). */
    if (access("/usr/bin/setpriv", X_OK) != 0) {
      stop_cleanly(&d);
      TEST_SKIP("running as root and no /usr/bin/setpriv to drop to nobody");
    }
    argv[n++] = "/usr/bin/setpriv";
    argv[n++] = "--reuid=65534";
    argv[n++] = "--regid=65534";
    argv[n++] = "--clear-groups";
  } else {
    chmod(d.sock, 0);
  }
  char tickslab[PATH_MAX];
  if (!realpath(harness_tickslab(), tickslab)) TEST_FAIL("realpath %s", harness_tickslab());
  argv[n++] = tickslab;
  argv[n++] = "--socket";
  argv[n++] = d.sock;
  argv[n++] = "ping";
  argv[n] = NULL;
  /* nobody must reach the socket's directory to be refused by the socket. */
  chmod(d.dir, 0755);
  run_cmd(argv, NULL, NULL, 10000, &r);
  if (r.code == 1 && strstr(r.err, "execv")) {
    cmd_result_finish(&r);
    stop_cleanly(&d);
    TEST_SKIP("nobody cannot run %s", tickslab);
  }
  if (r.code != 1) TEST_FAIL("exit %d, want 1; stderr: %s", r.code, r.err);
  char want[300];
  snprintf(want, sizeof want,
           "permission denied on %s (run as the daemon's user or see control.socket_mode)", d.sock);
  ASSERT_CONTAINS(r.err, want);
  ASSERT(!strstr(r.err, "is tickslabd running"));
  cmd_result_finish(&r);
  stop_cleanly(&d);
}

/* ---- top ---- */

/* Starts `tickslab --socket SOCK top ARGS...` with stdout (and stderr) on
 * a pipe, or on a pseudo-terminal (stdin too) when pty; *fd reads it. */
static pid_t spawn_top(const struct tks_daemon *d, bool pty, int *fd, const char *interval) {
  char *argv[] = {(char *)harness_tickslab(), "--socket", (char *)d->sock, "top", "--interval",
                  (char *)interval,           NULL};
  pid_t pid;
  if (pty) {
    struct winsize ws = {.ws_row = 40, .ws_col = 160};
    pid = forkpty(fd, NULL, NULL, &ws);
    if (pid < 0) TEST_FAIL("forkpty: %s", strerror(errno));
  } else {
    int p[2];
    if (pipe(p)) TEST_FAIL("pipe: %s", strerror(errno));
    pid = fork();
    if (pid == 0) {
      dup2(p[1], 1);
      dup2(p[1], 2);
      close(p[0]);
      close(p[1]);
    } else {
      close(p[1]);
      *fd = p[0];
    }
  }
  if (pid == 0) {
    execv(argv[0], argv);
    _exit(127);
  }
  return pid;
}

/* What top wrote so far. */
struct acc {
  char *data;
  size_t len, cap;
};

static void acc_append(struct acc *a, const char *p, size_t n) {
  if (a->len + n + 1 > a->cap) {
    a->cap = (a->len + n + 1) * 2;
    a->data = realloc(a->data, a->cap);
    if (!a->data) TEST_FAIL("out of memory");
  }
  memcpy(a->data + a->len, p, n);
  a->len += n;
  a->data[a->len] = '\0';
}

/* Reads fd into *acc until needle appears after offset from (or EOF, or
 * timeout_ms): the offset just past it, or -1. */
static long read_for(int fd, struct acc *acc, size_t from, const char *needle, int timeout_ms) {
  uint64_t end = now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    if (acc->len > from) {
      const char *at = memmem(acc->data + from, acc->len - from, needle, strlen(needle));
      if (at) return (long)(at - acc->data) + (long)strlen(needle);
    }
    uint64_t now = now_ms();
    if (now >= end) return -1;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, (int)(end - now)) <= 0) continue;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1; /* EOF, or EIO once a pty's child is gone */
    acc_append(acc, buf, (size_t)n);
  }
}

static void send_rows(struct tks_daemon *d, int rows, uint64_t want_accepted) {
  char path[160];
  snprintf(path, sizeof path, "%s/top.csv", d->dir);
  write_csv(path, rows, 5, NULL);
  struct cmd_result r;
  cli(d, true, NULL, &r, "send", path, NULL);
  expect_ok(&r, "send");
  cmd_result_finish(&r);
  daemon_expect_stat(d, "ticks.accepted", want_accepted, 10000);
}

TEST(top_on_a_terminal_shows_changing_figures_and_q_restores_the_terminal) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  int fd;
  pid_t pid = spawn_top(&d, true, &fd, "0.2");
  struct acc out = {0};
  long at = read_for(fd, &out, 0, "accepted 0 ", 20000);
  if (at < 0) TEST_FAIL("no first screen; got: %.*s", (int)out.len, out.data ? out.data : "");
  at = read_for(fd, &out, (size_t)at, "\033[J", 20000); /* the end of that screen */
  ASSERT(at > 0);
  ASSERT(memmem(out.data, out.len, "\033[?1049h", 8) != NULL); /* the alternate screen */
  ASSERT(memmem(out.data, out.len, "\033[?25l", 6) != NULL);   /* the cursor hidden */
  ASSERT(memmem(out.data, out.len, "INGEST", 6) != NULL);
  ASSERT(memmem(out.data, out.len, "MEMORY", 6) != NULL);
  ASSERT(memmem(out.data, out.len, "JOURNAL", 7) != NULL);
  /* While it runs, the terminal reads keys at once, unechoed. */
  struct termios t;
  ASSERT_EQ(tcgetattr(fd, &t), 0);
  ASSERT_EQ(t.c_lflag & (ICANON | ECHO), 0);
  send_rows(&d, 100, 100);
  /* A later screen has the new figures. */
  if (read_for(fd, &out, (size_t)at, "accepted 100 ", 20000) < 0)
    TEST_FAIL("the figures did not change; got: %.*s", (int)out.len, out.data);
  ASSERT_EQ(write(fd, "q", 1), 1);
  size_t before = out.len;
  read_for(fd, &out, before, "\033[?1049l", 10000);
  int status;
  uint64_t end = now_ms() + 10000;
  pid_t w;
  while ((w = waitpid(pid, &status, WNOHANG)) == 0 && now_ms() < end) sleep_ms(20);
  if (w != pid) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    TEST_FAIL("top did not exit on q");
  }
  ASSERT(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  /* The cursor shown, the main screen back, the terminal as it was. */
  ASSERT(memmem(out.data + before, out.len - before, "\033[?25h\033[?1049l", 14) != NULL);
  ASSERT_EQ(tcgetattr(fd, &t), 0);
  ASSERT_EQ(t.c_lflag & (ICANON | ECHO), (tcflag_t)(ICANON | ECHO));
  close(fd);
  free(out.data);
  stop_cleanly(&d);
}

TEST(top_on_a_terminal_quits_on_ctrl_c_with_the_terminal_restored) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  int fd;
  pid_t pid = spawn_top(&d, true, &fd, "0.2");
  struct acc out = {0};
  if (read_for(fd, &out, 0, "accepted 0 ", 20000) < 0) TEST_FAIL("no first screen");
  ASSERT_EQ(write(fd, "\003", 1), 1); /* ^C: the terminal sends SIGINT */
  size_t before = out.len;
  read_for(fd, &out, before, "\033[?1049l", 10000);
  int status;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT(memmem(out.data + before, out.len - before, "\033[?25h\033[?1049l", 14) != NULL);
  struct termios t;
  ASSERT_EQ(tcgetattr(fd, &t), 0);
  ASSERT_EQ(t.c_lflag & (ICANON | ECHO), (tcflag_t)(ICANON | ECHO));
  close(fd);
  free(out.data);
  stop_cleanly(&d);
}

/* The third column of a `top` line (accepted), or -1 for a header. */
static long long accepted_of(const char *line) {
  char when[32];
  double rate;
  long long acc;
  if (sscanf(line, "%31s %lf %lld", when, &rate, &acc) != 3) return -1;
  return acc;
}

TEST(top_without_a_terminal_prints_a_line_each_interval_with_changing_figures) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  struct cmd_result r;
  cli(&d, false, NULL, &r, "top", "--count", "3", "--interval", "0.1", NULL);
  expect_ok(&r, "top --count 3");
  ASSERT(strncmp(r.out, "time ", 5) == 0);
  ASSERT_CONTAINS(r.out, "ticks/s");
  ASSERT_CONTAINS(r.out, "accepted");
  int nl = 0;
  for (const char *p = r.out; *p; p++) nl += *p == '\n';
  ASSERT_EQ(nl, 4); /* the header and 3 lines */
  ASSERT(!strchr(r.out, '\033'));
  cmd_result_finish(&r);

  int fd;
  pid_t pid = spawn_top(&d, false, &fd, "0.2");
  struct acc out = {0};
  long at = read_for(fd, &out, 0, "\n", 20000); /* the header */
  ASSERT(at > 0);
  long first = read_for(fd, &out, (size_t)at, "\n", 20000);
  ASSERT(first > 0);
  ASSERT_EQ(accepted_of(out.data + at), 0);
  send_rows(&d, 50, 50);
  bool changed = false;
  for (long from = first; !changed;) {
    long next = read_for(fd, &out, (size_t)from, "\n", 20000);
    if (next < 0) TEST_FAIL("no line with 50 accepted; got: %.*s", (int)out.len, out.data);
    changed = accepted_of(out.data + from) == 50;
    from = next;
  }
  kill(pid, SIGTERM);
  int status;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  close(fd);
  free(out.data);
  stop_cleanly(&d);
}

TEST(usage_errors_exit_2) {
  struct tks_daemon d = {0};
  harness_mkdtemp(d.dir, sizeof d.dir);
  snprintf(d.sock, sizeof d.sock, "%s/nobody.sock", d.dir);
  d.port = 1;
  struct cmd_result r;
  cli(&d, false, NULL, &r, "frobnicate", NULL);
  ASSERT_EQ(r.code, 2);
  cmd_result_finish(&r);
  cli(&d, true, NULL, &r, "gen", "--count", "lots", NULL);
  ASSERT_EQ(r.code, 2);
  cmd_result_finish(&r);
  cli(&d, false, NULL, &r, "stats", "--no-such-format", NULL);
  ASSERT_EQ(r.code, 2);
  cmd_result_finish(&r);
  char *argv[] = {(char *)harness_tickslab(), NULL};
  run_cmd(argv, NULL, NULL, 10000, &r);
  ASSERT_EQ(r.code, 2);
  ASSERT(r.err[0] != '\0' || r.out[0] != '\0');
  cmd_result_finish(&r);
}

TEST_MAIN()
