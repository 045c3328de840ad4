/* Bulk export, black-box: `tickslab export` against a real tickslabd, the
 * msgpack output re-ingested into a second daemon and compared range by
 * range; CSV read by Python's csv module; the request's errors; a client
 * that stops reading holds no more than a bounded buffer. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "encode.h"
#include "harness.h"
#include "test.h"

#define T0 1700000000000000000LL

static void send_ticks(const struct tks_daemon *d, uint64_t count, unsigned nsym, bool extra) {
  struct tks_buf b = {0};
  for (uint64_t i = 0; i < count; i++) {
    char name[16];
    snprintf(name, sizeof name, "S%u", (unsigned)(i % nsym));
    struct tks_kv kv[] = {
        {"ticker", {.type = TKS_V_STR, .v.s = {name, strlen(name)}}},
        {"ts", {.type = TKS_V_INT, .v.i = T0 + (int64_t)(i / 3)}}, /* runs of equal ts */
        {"price", {.type = TKS_V_F64, .v.f = i % 7 == 0 ? -0.0 : 100.0 + (double)i / 8}},
        {"volume", {.type = TKS_V_INT, .v.i = (int64_t)i - 500}},
        {"flags", {.type = TKS_V_STR, .v.s = {i % 5 ? "R" : "a,\"b\"", i % 5 ? 1 : 5}}},
        {"venue", {.type = TKS_V_STR, .v.s = {"XNAS", 4}}},
    };
    ASSERT_EQ(tks_encode_map(&b, kv, extra && i % 4 == 0 ? 6 : 5), 0);
  }
  int fd = daemon_connect_ingest(d);
  ASSERT_EQ(send_all(fd, b.data, b.len), 0);
  close(fd);
  tks_buf_finish(&b);
}

static void run_cli(const struct tks_daemon *d, char **args, struct cmd_result *r) {
  char *argv[16] = {(char *)harness_tickslab(), "--socket", (char *)d->sock};
  int n = 3;
  while (*args && n < 15) argv[n++] = *args++;
  argv[n] = NULL;
  run_cmd(argv, NULL, NULL, 60000, r);
}

static char *range_all(const struct tks_daemon *d, const char *sym) {
  struct cmd_result r;
  run_cli(d, (char *[]){"range", (char *)sym, "0", "9000000000000000000", "--all", NULL}, &r);
  ASSERT_EQ(r.code, 0);
  free(r.err);
  return r.out;
}

static void round_trip(const char *mode) {
  char yaml[256];
  snprintf(yaml, sizeof yaml, "journal:\n  enabled: false\nstore:\n  mode: %s\n", mode);
  struct tks_daemon a, b;
  daemon_start(&a, yaml);
  daemon_start(&b, yaml);
  const uint64_t n = 30000;
  send_ticks(&a, n, 3, strcmp(mode, "slotted") != 0);
  daemon_wait_stat(&a, "ticks.accepted", n, 20000);
  char file[300];
  snprintf(file, sizeof file, "%s/export.msgpack", a.dir);
  struct cmd_result r;
  run_cli(&a, (char *[]){"export", "*", "0", "2030-01-01", "-o", file, NULL}, &r);
  ASSERT_EQ(r.code, 0);
  char want[64];
  snprintf(want, sizeof want, "exported %llu ticks", (unsigned long long)n);
  ASSERT_CONTAINS(r.err, want);
  cmd_result_finish(&r);
  char *bytes = read_file(file);
  ASSERT(bytes);
  /* read_file stops at no NUL: take the size from the file. */
  FILE *f = fopen(file, "rb");
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fclose(f);
  int fd = daemon_connect_ingest(&b);
  ASSERT_EQ(send_all(fd, bytes, (size_t)size), 0);
  close(fd);
  free(bytes);
  daemon_wait_stat(&b, "ticks.accepted", n, 20000);
  ASSERT_EQ(daemon_stat(&b, "ticks.rejected"), 0);
  for (int s = 0; s < 3; s++) {
    char sym[8];
    snprintf(sym, sizeof sym, "S%d", s);
    char *ra = range_all(&a, sym), *rb = range_all(&b, sym);
    ASSERT(strlen(ra) > 1000);
    ASSERT_STR_EQ(rb, ra);
    free(ra);
    free(rb);
  }
  daemon_cleanup(&a);
  daemon_cleanup(&b);
}

TEST(msgpack_export_re_ingested_gives_the_same_ticks) { round_trip("slotted"); }

TEST(fallback_export_keeps_the_undeclared_fields_through_a_round_trip) { round_trip("fallback"); }

TEST(csv_export_opens_in_pythons_csv_module_with_the_schemas_header) {
  if (access("/usr/bin/python3", X_OK) != 0) {
    printf("  skipped: no /usr/bin/python3\n");
    return;
  }
  struct tks_daemon d;
  daemon_start(&d, "journal:\n  enabled: false\n");
  send_ticks(&d, 3000, 2, false);
  daemon_wait_stat(&d, "ticks.accepted", 3000, 20000);
  char file[300];
  snprintf(file, sizeof file, "%s/export.csv", d.dir);
  struct cmd_result r;
  run_cli(&d,
          (char *[]){"export", "S1", "0", "2030-01-01", "--format", "csv", "--ts", "iso", "-o",
                     file, NULL},
          &r);
  ASSERT_EQ(r.code, 0);
  cmd_result_finish(&r);
  char script[1024];
  snprintf(script, sizeof script,
           "import csv\n"
           "rows = list(csv.reader(open('%s', newline='')))\n"
           "assert rows[0] == ['ts', 'ticker', 'price', 'volume', 'flags'], rows[0]\n"
           "assert len(rows) == 1501, len(rows)\n"
           "assert rows[1] == ['2023-11-14T22:13:20.000000000Z', 'S1', '100.125', '-499', 'R'], "
           "rows[1]\n"
           "assert rows[3][4] == 'a,\"b\"', rows[3]\n"
           "assert rows[4][2] == '-0.0', rows[4]\n"
           "print('ok')\n",
           file);
  char *py[] = {"/usr/bin/python3", "-c", script, NULL};
  run_cmd(py, NULL, NULL, 30000, &r);
  if (r.code != 0) TEST_FAIL("python: %s%s", r.out, r.err);
  cmd_result_finish(&r);
  /* jsonl: one object a line, as range prints them. */
  run_cli(&d, (char *[]){"export", "S1", "0", "2030-01-01", "--format", "jsonl", NULL}, &r);
  ASSERT_EQ(r.code, 0);
  char *ra = range_all(&d, "S1");
  ASSERT_STR_EQ(r.out, ra);
  free(ra);
  cmd_result_finish(&r);
  daemon_cleanup(&d);
}

TEST(bad_export_requests_get_an_error_and_the_connection_goes_on) {
  struct tks_daemon d;
  daemon_start(&d, "journal:\n  enabled: false\n");
  send_ticks(&d, 10, 1, false);
  daemon_wait_stat(&d, "ticks.accepted", 10, 10000);
  static const struct {
    const char *req, *want;
  } cases[] = {
      {"export", "missing symbol"},
      {"export S0", "missing FROM"},
      {"export S0 0", "missing TO"},
      {"export S0 5 1", "FROM must be before TO"},
      {"export S0 0 1 2", "too many arguments"},
      {"export S0 0 1 format=xml", "bad format 'format=xml'"},
      {"export S0 0 1 format=csv format=csv", "format= given twice"},
      {"export S0 abc 1", "bad time 'abc'"},
      {"export S0 0 99999999999999999999", "bad time"},
      {"export NOPE 0 1", "unknown symbol 'NOPE'"},
      {"export S0 0 1 ts=when", "bad ts format"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *resp = daemon_request(&d, cases[i].req);
    ASSERT(resp);
    if (!strstr(resp, "{\"error\":") || !strstr(resp, cases[i].want))
      TEST_FAIL("'%s' answered %s", cases[i].req, resp);
    free(resp);
  }
  struct cmd_result r;
  run_cli(&d, (char *[]){"export", "S0", "0", "1", "--format", "xml", NULL}, &r);
  ASSERT_EQ(r.code, 2);
  cmd_result_finish(&r);
  /* An empty range: no chunk, the trailer says 0. */
  run_cli(&d, (char *[]){"export", "S0", "0", "1", NULL}, &r);
  ASSERT_EQ(r.code, 0);
  ASSERT_STR_EQ(r.out, "");
  ASSERT_CONTAINS(r.err, "exported 0 ticks");
  cmd_result_finish(&r);
  daemon_cleanup(&d);
}

TEST(a_client_that_stops_reading_an_export_holds_a_bounded_buffer) {
  struct tks_daemon d;
  daemon_start(&d, "journal:\n  enabled: false\n");
  send_ticks(&d, 400000, 4, false);
  daemon_wait_stat(&d, "ticks.accepted", 400000, 60000);
  int fd = control_connect(d.sock);
  ASSERT(fd >= 0);
  int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  const char req[] = "export * 0 2030-01-01 format=jsonl\n";
  ASSERT_EQ(send_all(fd, req, sizeof req - 1), 0);
  sleep_ms(500);
  uint64_t held = daemon_stat(&d, "memory.query_buffer_bytes");
  if (held > (4u << 20))
    TEST_FAIL("%llu bytes held for a client that does not read", (unsigned long long)held);
  /* Other clients are answered meanwhile; closing frees it all. */
  char *p = daemon_request(&d, "ping");
  ASSERT(p);
  free(p);
  close(fd);
  /* (The stats request itself holds a few bytes while it is answered.) */
  for (int i = 0; i < 100 && daemon_stat(&d, "memory.query_buffer_bytes") > 64; i++) sleep_ms(20);
  ASSERT(daemon_stat(&d, "memory.query_buffer_bytes") <= 64);
  daemon_cleanup(&d);
}

TEST_MAIN()
