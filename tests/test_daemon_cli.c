/*
 * Black-box tests of the `tickslab` CLI against the real daemon: `send`
 * (CSV from a file or stdin, map or array form), `gen` (the load
 * generator), `stats` in each format and `ping`, and its exit codes:
 * 0 ok, 1 failure (with a clear message), 2 usage.
 */
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <sys/socket.h>

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
