/*
 * Black-box tests of the control socket: the framing (one request per
 * line, answers in order, each ending with an empty line, answers still
 * given after the client shuts down its write side), every stats format
 * (JSON, text, slabs, Prometheus) and the socket file's life: mode 0600,
 * a stale file replaced, a live daemon's socket never stolen.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "encode.h"
#include "harness.h"
#include "test.h"

#define TS0 INT64_C(1700000000000000000)

/* Every stats path the contract names, but for slabs.classes.<id>.*. */
static const char *const documented_paths[] = {
    "version", "pid", "uptime_seconds", "store.mode", "schema.name", "schema.record_size",
    "ingest.listen", "ingest.port", "ingest.bytes_received", "ingest.rate_1s", "ingest.rate_10s",
    "ticks.accepted", "ticks.stored", "ticks.rejected", "ticks.late",
    "ticks.rejected_by_reason.unknown_field", "ticks.rejected_by_reason.missing_field",
    "ticks.rejected_by_reason.bad_type", "ticks.rejected_by_reason.bad_value",
    "ticks.rejected_by_reason.duplicate_field", "ticks.rejected_by_reason.too_many_fields",
    "ticks.rejected_by_reason.too_many_symbols", "ticks.rejected_by_reason.store_full",
    "ticks.rejected_by_reason.too_large", "ticks.rejected_by_reason.too_deep",
    "ticks.rejected_by_reason.malformed", "ticks.rejected_by_reason.not_a_tick",
    "connections.current", "connections.total", "connections.closed_on_error",
    "connections.refused", "memory.rss_bytes", "memory.slab_bytes", "memory.slab_used_bytes",
    "memory.symbol_bytes", "memory.index_bytes", "memory.total_bytes", "memory.bytes_per_tick",
    "symbols.count", "symbols.bytes", "strings.count", "strings.bytes", "slabs.page_size",
    "slabs.total_pages", "slabs.total_malloced"};
static const char *const schema_fields[] = {"ts", "ticker", "price", "volume", "flags"};
static const char *const field_props[] = {"type", "offset", "size", "required"};
static const char *const class_props[] = {"chunk_size",  "chunks_per_page", "total_pages",
                                          "total_chunks", "used_chunks",     "free_chunks",
                                          "free_chunks_end", "mem_requested"};

/* Sends n map ticks (through our codec) and waits until they are counted. */
static void send_ticks(const struct tks_daemon *d, int n) {
  uint64_t before = daemon_stat(d, "ticks.accepted");
  struct tks_buf b;
  tks_buf_init(&b);
  for (int i = 0; i < n; i++) {
    struct tks_kv kv[] = {
        {"ticker", {.type = TKS_V_STR, .v.s = {i % 2 ? "AAPL" : "MSFT", 4}}},
        {"ts", {.type = TKS_V_INT, .v.i = TS0 + i}},
        {"price", {.type = TKS_V_F64, .v.f = 100.5 + i}},
        {"volume", {.type = TKS_V_INT, .v.i = i + 1}},
        {"flags", {.type = TKS_V_STR, .v.s = {"R", 1}}},
    };
    ASSERT_EQ(tks_encode_map(&b, kv, TKS_ARRAY_SIZE(kv)), 0);
  }
  int fd = daemon_connect_ingest(d);
  ASSERT_EQ(send_all(fd, b.data, b.len), 0);
  daemon_expect_stat(d, "ticks.accepted", before + (uint64_t)n, 10000);
  close(fd);
  tks_buf_finish(&b);
}

/* A response is one line of valid JSON followed by the empty line. */
static char *expect_json_line(const char *resp) {
  ASSERT(resp);
  size_t len = strlen(resp);
  if (len < 3 || strcmp(resp + len - 2, "\n\n") != 0)
    TEST_FAIL("response does not end with an empty line: \"%s\"", resp);
  if (strchr(resp, '\n') != resp + len - 2) TEST_FAIL("response is not one line: \"%s\"", resp);
  if (resp[0] != '{') TEST_FAIL("response is not a JSON object: \"%s\"", resp);
  char *flat = json_flatten(resp);
  if (!flat) TEST_FAIL("response is not valid JSON: \"%s\"", resp);
  return flat;
}

/* Splits a run of responses at their empty lines; returns the count. */
static int split_responses(char *all, char **out, int max) {
  int n = 0;
  char *p = all, *end;
  while (n < max && (end = strstr(p, "\n\n"))) {
    end[1] = '\0';
    out[n++] = p;
    p = end + 2;
  }
  return n;
}

static void stop_cleanly(struct tks_daemon *d) {
  int code = daemon_stop(d, SIGTERM);
  daemon_cleanup(d);
  ASSERT_EQ(code, 0);
}

TEST(ping_answers_ok) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  char *r = daemon_request(&d, "ping");
  ASSERT_STR_EQ(r, "{\"ok\":true}\n\n");
  free(r);
  stop_cleanly(&d);
}

TEST(stats_is_one_json_line_with_the_required_keys) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  send_ticks(&d, 3);
  char *r = daemon_request(&d, "stats");
  char *flat = expect_json_line(r);
  ASSERT_CONTAINS(r, "\"ticks\":{\"accepted\":3");
  ASSERT_CONTAINS(r, "\"connections\":{");
  ASSERT_CONTAINS(r, "\"memory\":{");
  ASSERT_CONTAINS(r, "\"rejected_by_reason\":{");
  char v[64];
  ASSERT_EQ(stats_text_lookup(flat, "ticks.accepted", v, sizeof v), 0);
  ASSERT_STR_EQ(v, "3");
  ASSERT_EQ(stats_text_lookup(flat, "ticks.stored", v, sizeof v), 0);
  ASSERT_STR_EQ(v, "3");
  ASSERT_EQ(stats_text_lookup(flat, "store.mode", v, sizeof v), 0);
  ASSERT_STR_EQ(v, "slotted");
  ASSERT_EQ(stats_text_lookup(flat, "schema.record_size", v, sizeof v), 0);
  ASSERT_STR_EQ(v, "32");
  for (size_t i = 0; i < TKS_ARRAY_SIZE(documented_paths); i++)
    if (stats_text_lookup(flat, documented_paths[i], v, sizeof v) < 0)
      TEST_FAIL("stats JSON has no %s: %s", documented_paths[i], r);
  free(flat);
  free(r);
  stop_cleanly(&d);
}

TEST(stats_is_valid_json_before_any_tick) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  static const char *const reqs[] = {"stats", "stats slabs"};
  for (size_t i = 0; i < TKS_ARRAY_SIZE(reqs); i++) { /* e.g. no NaN for 0 bytes / 0 ticks */
    char *r = daemon_request(&d, reqs[i]);
    free(expect_json_line(r));
    free(r);
  }
  char *r = daemon_request(&d, "stats");
  ASSERT_CONTAINS(r, "\"ticks\":{\"accepted\":0");
  free(r);
  stop_cleanly(&d);
}

TEST(stats_text_has_every_documented_path) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  send_ticks(&d, 2);
  char *r = daemon_request(&d, "stats text");
  ASSERT(r);
  size_t len = strlen(r);
  ASSERT(len > 2 && !strcmp(r + len - 2, "\n\n"));
  char v[128], path[128];
  for (size_t i = 0; i < TKS_ARRAY_SIZE(documented_paths); i++)
    if (stats_text_lookup(r, documented_paths[i], v, sizeof v) < 0)
      TEST_FAIL("stats text has no %s:\n%s", documented_paths[i], r);
  for (size_t f = 0; f < TKS_ARRAY_SIZE(schema_fields); f++)
    for (size_t p = 0; p < TKS_ARRAY_SIZE(field_props); p++) {
      snprintf(path, sizeof path, "schema.fields.%s.%s", schema_fields[f], field_props[p]);
      if (stats_text_lookup(r, path, v, sizeof v) < 0) TEST_FAIL("stats text has no %s", path);
    }
  /* A stored tick lives in some slab class: find it by its chunk_size line. */
  const char *cls = strstr(r, "\nslabs.classes.");
  if (!cls) TEST_FAIL("stats text has no slabs.classes.<id> after 2 ticks:\n%s", r);
  char id[16];
  if (sscanf(cls + 1, "slabs.classes.%15[^.]", id) != 1) TEST_FAIL("cannot read a class id");
  for (size_t p = 0; p < TKS_ARRAY_SIZE(class_props); p++) {
    snprintf(path, sizeof path, "slabs.classes.%s.%s", id, class_props[p]);
    if (stats_text_lookup(r, path, v, sizeof v) < 0) TEST_FAIL("stats text has no %s", path);
  }
  /* Every line is "dotted.path value". */
  for (char *line = r, *nl; (nl = strchr(line, '\n')) && nl != line; line = nl + 1) {
    size_t sp = strspn(line, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.");
    if (sp == 0 || line[sp] != ' ' || line + sp + 1 >= nl)
      TEST_FAIL("not a \"path value\" line: \"%.*s\"", (int)(nl - line), line);
  }
  ASSERT_U64_EQ(daemon_stat(&d, "pid"), d.pid);
  ASSERT_U64_EQ(daemon_stat(&d, "ingest.port"), d.port);
  ASSERT_U64_EQ(daemon_stat(&d, "schema.record_size"), 32);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.accepted"), 2);
  ASSERT_U64_EQ(daemon_stat(&d, "symbols.count"), 2);
  ASSERT_EQ(stats_text_lookup(r, "store.mode", v, sizeof v), 0);
  ASSERT_STR_EQ(v, "slotted");
  ASSERT_EQ(stats_text_lookup(r, "version", v, sizeof v), 0);
  ASSERT_CONTAINS(v, "0.1.0");
  ASSERT(daemon_stat(&d, "memory.rss_bytes") > 0);
  free(r);
  stop_cleanly(&d);
}

TEST(stats_json_and_stats_text_name_the_same_figures) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  send_ticks(&d, 5);
  char *text = daemon_request(&d, "stats text");
  char *json = daemon_request(&d, "stats");
  char *flat = expect_json_line(json);
  ASSERT(text);
  char tv[128], jv[128];
  for (char *line = text, *nl; (nl = strchr(line, '\n')) && nl != line; line = nl + 1) {
    char path[160];
    size_t sp = strcspn(line, " ");
    if (sp >= sizeof path) continue;
    memcpy(path, line, sp);
    path[sp] = '\0';
    if (stats_text_lookup(flat, path, jv, sizeof jv) < 0)
      TEST_FAIL("%s is in stats text but not in stats JSON", path);
    /* figures that do not move between the two requests must agree */
    if (!strncmp(path, "ticks.", 6) || !strncmp(path, "schema.", 7) ||
        !strncmp(path, "symbols.", 8) || !strcmp(path, "store.mode")) {
      stats_text_lookup(text, path, tv, sizeof tv);
      if (strcmp(tv, jv) != 0) TEST_FAIL("%s: text says \"%s\", JSON \"%s\"", path, tv, jv);
    }
  }
  free(flat);
  free(json);
  free(text);
  stop_cleanly(&d);
}

TEST(stats_slabs_is_one_json_line_with_the_slab_figures) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  send_ticks(&d, 10);
  char *r = daemon_request(&d, "stats slabs");
  free(expect_json_line(r));
  for (size_t p = 0; p < TKS_ARRAY_SIZE(class_props); p++) {
    char key[64];
    snprintf(key, sizeof key, "\"%s\":", class_props[p]);
    ASSERT_CONTAINS(r, key);
  }
  ASSERT_CONTAINS(r, "\"total_malloced\":");
  ASSERT_CONTAINS(r, "\"page_size\":");
  free(r);
  stop_cleanly(&d);
}

/* "name{labels} value" -> name; 0 if the line is not a sample. */
static size_t sample_name(const char *line, size_t len) {
  static const char first[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_:";
  size_t n = 0;
  while (n < len && line[n] && (strchr(first, line[n]) || (n > 0 && strchr("0123456789", line[n]))))
    n++;
  return n;
}

TEST(stats_prometheus_has_help_type_and_samples) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  send_ticks(&d, 3);
  char *r = daemon_request(&d, "stats prometheus");
  ASSERT(r);
  size_t len = strlen(r);
  ASSERT(len > 2 && !strcmp(r + len - 2, "\n\n"));
  ASSERT_CONTAINS(r, "# HELP tickslab_");
  ASSERT_CONTAINS(r, "# TYPE tickslab_");
  char v[64];
  ASSERT_EQ(stats_text_lookup(r, "tickslab_ticks_accepted_total", v, sizeof v), 0);
  ASSERT_EQ(strtod(v, NULL), 3);
  /* Each line: HELP, TYPE (once per metric, before its samples), or a sample. */
  char typed[8192] = " ";
  int samples = 0;
  for (char *line = r, *nl; (nl = strchr(line, '\n')) && nl != line; line = nl + 1) {
    size_t ll = (size_t)(nl - line);
    char name[160];
    if (!strncmp(line, "# HELP ", 7)) continue;
    if (!strncmp(line, "# TYPE ", 7)) {
      char type[32];
      if (sscanf(line, "# TYPE %159s %31s", name, type) != 2)
        TEST_FAIL("bad TYPE line: \"%.*s\"", (int)ll, line);
      if (strcmp(type, "counter") && strcmp(type, "gauge") && strcmp(type, "histogram") &&
          strcmp(type, "summary") && strcmp(type, "untyped"))
        TEST_FAIL("bad metric type: \"%.*s\"", (int)ll, line);
      char key[170];
      snprintf(key, sizeof key, " %s ", name);
      if (strstr(typed, key)) TEST_FAIL("TYPE given twice for %s", name);
      if (strlen(typed) + strlen(key) < sizeof typed) strcat(typed, key + 1);
      continue;
    }
    if (line[0] == '#') continue;
    size_t n = sample_name(line, ll);
    if (n == 0 || n >= sizeof name) TEST_FAIL("bad sample line: \"%.*s\"", (int)ll, line);
    memcpy(name, line, n);
    name[n] = '\0';
    if (strncmp(name, "tickslab_", 9) && strncmp(name, "process_", 8))
      TEST_FAIL("metric without the tickslab_ (or process_) prefix: %s", name);
    const char *val = line + n;
    if (*val == '{') {
      val = memchr(val, '}', ll - n);
      if (!val) TEST_FAIL("unclosed labels: \"%.*s\"", (int)ll, line);
      val++;
    }
    if (*val != ' ') TEST_FAIL("bad sample line: \"%.*s\"", (int)ll, line);
    char *end;
    strtod(val + 1, &end);
    if (end == val + 1 || (end != nl && *end != ' '))
      TEST_FAIL("bad sample value: \"%.*s\"", (int)ll, line);
    char key[170];
    snprintf(key, sizeof key, " %s ", name);
    int has_type = strstr(typed, key) != NULL;
    static const char *const suffixes[] = {"_total", "_bucket", "_sum", "_count"};
    for (size_t s = 0; s < TKS_ARRAY_SIZE(suffixes) && !has_type; s++) {
      size_t sl = strlen(suffixes[s]);
      if (n > sl && !strcmp(name + n - sl, suffixes[s])) {
        snprintf(key, sizeof key, " %.*s ", (int)(n - sl), name);
        has_type = strstr(typed, key) != NULL;
      }
    }
    if (!has_type) TEST_FAIL("sample %s has no TYPE line before it", name);
    samples++;
  }
  ASSERT(samples >= 10);
  free(r);
  stop_cleanly(&d);
}

TEST(unknown_request_gets_an_error_and_the_connection_goes_on) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  int fd = control_connect(d.sock);
  ASSERT(fd >= 0);
  const char *req = "frobnicate the widgets\nping\n";
  ASSERT_EQ(send_all(fd, req, strlen(req)), 0);
  char *all = read_until(fd, "\n\n", 2, HARNESS_IO_MS, NULL);
  char *resp[2];
  if (split_responses(all, resp, 2) != 2) TEST_FAIL("want 2 responses, got \"%s\"", all);
  char *flat = json_flatten(resp[0]);
  if (!flat || !strstr(resp[0], "{\"error\":")) TEST_FAIL("not an error: \"%s\"", resp[0]);
  ASSERT_STR_EQ(resp[1], "{\"ok\":true}\n");
  free(flat);
  free(all);
  close(fd);
  stop_cleanly(&d);
}

TEST(empty_request_line_gets_an_error) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  int fd = control_connect(d.sock);
  ASSERT(fd >= 0);
  ASSERT_EQ(send_all(fd, "\nping\n", 6), 0);
  char *all = read_until(fd, "\n\n", 2, HARNESS_IO_MS, NULL);
  char *resp[2];
  if (split_responses(all, resp, 2) != 2) TEST_FAIL("want 2 responses, got \"%s\"", all);
  ASSERT_CONTAINS(resp[0], "{\"error\":");
  ASSERT_STR_EQ(resp[1], "{\"ok\":true}\n");
  free(all);
  close(fd);
  stop_cleanly(&d);
}

TEST(requests_in_one_write_are_answered_in_order) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  int fd = control_connect(d.sock);
  ASSERT(fd >= 0);
  const char *req = "ping\nstats text\nbogus\nstats\nping\n";
  ASSERT_EQ(send_all(fd, req, strlen(req)), 0);
  char *all = read_until(fd, "\n\n", 5, HARNESS_IO_MS, NULL);
  char *resp[5];
  if (split_responses(all, resp, 5) != 5) TEST_FAIL("want 5 responses, got \"%s\"", all);
  ASSERT_STR_EQ(resp[0], "{\"ok\":true}\n");
  ASSERT_CONTAINS(resp[1], "ticks.accepted ");
  ASSERT_CONTAINS(resp[2], "{\"error\":");
  ASSERT_CONTAINS(resp[3], "\"ticks\":{");
  ASSERT_STR_EQ(resp[4], "{\"ok\":true}\n");
  free(all);
  close(fd);
  stop_cleanly(&d);
}

TEST(every_request_read_is_answered_after_the_client_shuts_down_writing) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  int fd = control_connect(d.sock);
  ASSERT(fd >= 0);
  const char *req = "ping\nstats\nstats prometheus\nping\n";
  ASSERT_EQ(send_all(fd, req, strlen(req)), 0);
  ASSERT_EQ(shutdown(fd, SHUT_WR), 0);
  bool eof = false;
  char *all = read_until(fd, "", 0, HARNESS_IO_MS, &eof);
  if (!eof) TEST_FAIL("the daemon did not close after answering: \"%s\"", all);
  char *resp[4];
  if (split_responses(all, resp, 4) != 4) TEST_FAIL("want 4 responses, got \"%s\"", all);
  ASSERT_STR_EQ(resp[0], "{\"ok\":true}\n");
  ASSERT_CONTAINS(resp[1], "\"ticks\":{");
  ASSERT_CONTAINS(resp[2], "# TYPE tickslab_");
  ASSERT_STR_EQ(resp[3], "{\"ok\":true}\n");
  free(all);
  close(fd);
  stop_cleanly(&d);
}

TEST(a_last_request_without_its_newline_is_answered_after_the_client_shuts_down_writing) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  static const char *const reqs[] = {"ping", "ping\nstats text\nping", "stats text\r"};
  static const int answers[] = {1, 3, 1};
  for (int k = 0; k < 3; k++) {
    int fd = control_connect(d.sock);
    ASSERT(fd >= 0);
    ASSERT_EQ(send_all(fd, reqs[k], strlen(reqs[k])), 0);
    sleep_ms(50); /* read by the daemon before the EOF, most of the time */
    ASSERT_EQ(shutdown(fd, SHUT_WR), 0);
    bool eof = false;
    char *all = read_until(fd, "", 0, HARNESS_IO_MS, &eof);
    if (!eof) TEST_FAIL("request %d: the daemon did not close after answering: \"%s\"", k, all);
    char *resp[4];
    int n = split_responses(all, resp, 4);
    if (n != answers[k]) TEST_FAIL("request %d: want %d answers, got \"%s\"", k, answers[k], all);
    ASSERT_NOT_CONTAINS(resp[n - 1], "{\"error\":");
    if (k == 1) ASSERT_STR_EQ(resp[2], "{\"ok\":true}\n");
    free(all);
    close(fd);
  }
  stop_cleanly(&d);
}

/* A request line of exactly len bytes: "ping" padded with spaces (the
 * daemon trims them), sent without its newline.  With `newline`, the
 * newline (and a ping) follow in a later write, after a pause in which the
 * daemon reads what it has; without, nothing more is sent.  Returns what the
 * daemon said. */
static char *padded_ping(const struct tks_daemon *d, size_t len, bool newline, bool *eof) {
  char *line = malloc(len);
  ASSERT(line);
  memcpy(line, "ping", 4);
  memset(line + 4, ' ', len - 4);
  int fd = control_connect(d->sock);
  ASSERT(fd >= 0);
  ASSERT_EQ(send_all(fd, line, len), 0);
  char *all;
  if (newline) {
    sleep_ms(100); /* only makes the test sharper: it passes either way */
    ASSERT_EQ(send_all(fd, "\nping\n", 6), 0);
    all = read_until(fd, "\n\n", 2, HARNESS_IO_MS, eof);
  } else {
    all = read_until(fd, "", 0, HARNESS_IO_MS, eof); /* the refusal, then EOF */
  }
  close(fd);
  free(line);
  return all;
}

TEST(a_4096_byte_request_whose_newline_comes_later_is_answered_and_4097_is_refused) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  bool eof = false;
  char *all = padded_ping(&d, 4096, true, &eof);
  char *resp[2];
  if (split_responses(all, resp, 2) != 2) TEST_FAIL("4096 bytes: want 2 answers, got \"%s\"", all);
  ASSERT_STR_EQ(resp[0], "{\"ok\":true}\n");
  ASSERT_STR_EQ(resp[1], "{\"ok\":true}\n");
  free(all);
  all = padded_ping(&d, 4097, false, &eof);
  ASSERT_CONTAINS(all, "request line too long (the most is 4096 bytes)");
  ASSERT_NOT_CONTAINS(all, "{\"ok\":true}");
  if (!eof) TEST_FAIL("connection still open after a 4097-byte line: \"%s\"", all);
  free(all);
  char *r = daemon_request(&d, "ping");
  ASSERT_STR_EQ(r, "{\"ok\":true}\n\n");
  free(r);
  stop_cleanly(&d);
}

TEST(request_line_over_4096_bytes_gets_an_error_and_a_close) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  char *line = malloc(10 * 1024 + 1);
  ASSERT(line);
  /* 4000 bytes: an unknown request like any other */
  int fd = control_connect(d.sock);
  ASSERT(fd >= 0);
  memset(line, 'a', 4000);
  line[4000] = '\n';
  ASSERT_EQ(send_all(fd, line, 4001), 0);
  ASSERT_EQ(send_all(fd, "ping\n", 5), 0);
  char *all = read_until(fd, "\n\n", 2, HARNESS_IO_MS, NULL);
  char *resp[2];
  if (split_responses(all, resp, 2) != 2) TEST_FAIL("want 2 responses, got \"%s\"", all);
  ASSERT_CONTAINS(resp[0], "{\"error\":");
  ASSERT_STR_EQ(resp[1], "{\"ok\":true}\n");
  free(all);
  close(fd);
  /* 10 KiB: refused, then closed */
  fd = control_connect(d.sock);
  ASSERT(fd >= 0);
  memset(line, 'a', 10 * 1024);
  line[10 * 1024] = '\n';
  (void)send_all(fd, line, 10 * 1024 + 1); /* the daemon may close before reading it all */
  bool eof = false;
  all = read_until(fd, "", 0, HARNESS_IO_MS, &eof);
  ASSERT_CONTAINS(all, "{\"error\":");
  if (!eof) TEST_FAIL("connection still open after an over-long line");
  free(all);
  close(fd);
  char *r = daemon_request(&d, "ping");
  ASSERT_STR_EQ(r, "{\"ok\":true}\n\n");
  free(r);
  free(line);
  stop_cleanly(&d);
}

TEST(idle_and_half_written_clients_do_not_block_others) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  int fds[100];
  for (int i = 0; i < 100; i++) {
    fds[i] = control_connect(d.sock);
    ASSERT(fds[i] >= 0);
    if (i % 2) ASSERT_EQ(send_all(fds[i], "sta", 3), 0); /* a line never finished */
  }
  for (int i = 0; i < 5; i++) {
    char *r = daemon_request(&d, "ping");
    ASSERT_STR_EQ(r, "{\"ok\":true}\n\n");
    free(r);
  }
  ASSERT_EQ(send_all(fds[1], "ts text\n", 8), 0); /* finished late: answered */
  char *r = read_until(fds[1], "\n\n", 1, HARNESS_IO_MS, NULL);
  ASSERT_CONTAINS(r, "ticks.accepted ");
  free(r);
  for (int i = 0; i < 100; i++) close(fds[i]);
  stop_cleanly(&d);
}

TEST(control_socket_takes_200_simultaneous_connects) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  /* Stopped, the daemon accepts none: all 200 wait in the listen backlog
   * (non-blocking connects fail with EAGAIN once it is full). */
  ASSERT_EQ(kill(d.pid, SIGSTOP), 0);
  int fds[200], refused = 0, err = 0;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  strcpy(sa.sun_path, d.sock);
  for (int i = 0; i < 200; i++) {
    fds[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ASSERT(fds[i] >= 0);
    if (connect(fds[i], (struct sockaddr *)&sa, sizeof sa) < 0) {
      refused++;
      err = errno;
      close(fds[i]);
      fds[i] = -1;
    }
  }
  ASSERT_EQ(kill(d.pid, SIGCONT), 0);
  if (refused) TEST_FAIL("%d of 200 connects refused (%s)", refused, strerror(err));
  for (int i = 0; i < 200; i++) {
    fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) & ~O_NONBLOCK);
    ASSERT_EQ(send_all(fds[i], "ping\n", 5), 0);
  }
  for (int i = 0; i < 200; i++) {
    char *r = read_until(fds[i], "\n\n", 1, HARNESS_IO_MS, NULL);
    ASSERT_STR_EQ(r, "{\"ok\":true}\n\n");
    free(r);
    close(fds[i]);
  }
  stop_cleanly(&d);
}

TEST(control_client_holding_half_a_request_line_is_closed_after_message_timeout) {
  struct tks_daemon d;
  daemon_start_with(&d, "  message_timeout: 1s\n", NULL);
  int half = control_connect(d.sock);
  int quiet = control_connect(d.sock); /* between requests: left alone */
  ASSERT(half >= 0 && quiet >= 0);
  ASSERT_EQ(send_all(half, "sta", 3), 0);
  ASSERT_EQ(send_all(quiet, "ping\n", 5), 0);
  char *r = read_until(quiet, "\n\n", 1, HARNESS_IO_MS, NULL);
  ASSERT_STR_EQ(r, "{\"ok\":true}\n\n");
  free(r);
  bool eof = false;
  r = read_until(half, "\n\n", 1, 8000, &eof);
  if (!eof) TEST_FAIL("the half-written request was not closed within 8 s; got '%s'", r);
  ASSERT_STR_EQ(r, "");
  free(r);
  ASSERT_EQ(send_all(quiet, "ping\n", 5), 0);
  r = read_until(quiet, "\n\n", 1, HARNESS_IO_MS, NULL);
  ASSERT_STR_EQ(r, "{\"ok\":true}\n\n");
  free(r);
  char *log = daemon_log(&d);
  ASSERT_CONTAINS(log, "closing control connection: a request line unfinished after");
  free(log);
  close(half);
  close(quiet);
  stop_cleanly(&d);
}

TEST(control_socket_file_has_mode_0600) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  struct stat st;
  ASSERT_EQ(stat(d.sock, &st), 0);
  ASSERT(S_ISSOCK(st.st_mode));
  ASSERT_EQ(st.st_mode & 07777, 0600);
  stop_cleanly(&d);
}

TEST(stale_socket_file_is_replaced_at_start) {
  struct tks_daemon d;
  daemon_prepare(&d, NULL, NULL);
  /* What a killed daemon leaves: a socket file nobody listens on. */
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  strcpy(sa.sun_path, d.sock);
  ASSERT_EQ(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
  close(s);
  struct stat st;
  ASSERT_EQ(stat(d.sock, &st), 0);
  ASSERT_EQ(control_connect(d.sock), -1);
  daemon_spawn(&d, NULL);
  daemon_wait_ready(&d);
  char *r = daemon_request(&d, "ping");
  ASSERT_STR_EQ(r, "{\"ok\":true}\n\n");
  free(r);
  stop_cleanly(&d);
}

TEST(second_daemon_on_the_same_socket_exits_1_and_the_first_keeps_answering) {
  struct tks_daemon first, second;
  daemon_start(&first, NULL);
  daemon_prepare(&second, NULL, NULL);
  snprintf(second.sock, sizeof second.sock, "%s", first.sock);
  daemon_write_config(&second, NULL, NULL);
  daemon_spawn(&second, NULL);
  int code = daemon_wait_exit(&second, HARNESS_STOP_MS);
  char *log = daemon_log(&second);
  if (code != 1) TEST_FAIL("second daemon: exit %d, want 1; its log:\n%s", code, log);
  if (!strstr(log, first.sock))
    TEST_FAIL("second daemon's message does not name the socket %s:\n%s", first.sock, log);
  free(log);
  struct stat st;
  ASSERT_EQ(stat(first.sock, &st), 0);
  char *r = daemon_request(&first, "ping");
  ASSERT_STR_EQ(r, "{\"ok\":true}\n\n");
  free(r);
  daemon_cleanup(&second);
  stop_cleanly(&first);
}


/* Ticks for symbol AAPL, ts TS0.. (map form, our encoder). */
static void send_aapl_ticks(const struct tks_daemon *d, int n) {
  struct tks_buf b = {0};
  for (int i = 0; i < n; i++) {
    struct tks_kv kv[] = {
        {"ticker", {.type = TKS_V_STR, .v.s = {"AAPL", 4}}},
        {"ts", {.type = TKS_V_INT, .v.i = INT64_C(1700000000000000000) + i}},
        {"price", {.type = TKS_V_F64, .v.f = 100.25}},
        {"volume", {.type = TKS_V_INT, .v.i = i}},
    };
    ASSERT_EQ(tks_encode_map(&b, kv, 4), 0);
  }
  int fd = daemon_connect_ingest(d);
  ASSERT_EQ(send_all(fd, b.data, b.len), 0);
  close(fd);
  tks_buf_finish(&b);
  daemon_wait_stat(d, "ticks.accepted", (uint64_t)n, 10000);
}

TEST(thousands_of_requests_pipelined_behind_sync_are_all_answered) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  send_aapl_ticks(&d, 1000);
  int fd = control_connect(d.sock);
  struct tks_buf req = {0};
  tks_buf_puts(&req, "sync\n");
  for (int i = 0; i < 2000; i++) tks_buf_puts(&req, "ping\n");
  ASSERT_EQ(send_all(fd, req.data, req.len), 0);
  shutdown(fd, SHUT_WR);
  bool eof = false;
  char *all = read_until(fd, "\n\n", 2001, 20000, &eof);
  const char *want = "{\"ok\":true,\"durable\":1000}\n\n";
  ASSERT_EQ(strncmp(all, want, strlen(want)), 0);
  size_t pongs = 0;
  for (const char *p = all; (p = strstr(p, "{\"ok\":true}\n\n")) != NULL; p++) pongs++;
  ASSERT_EQ(pongs, 2000);
  ASSERT_NOT_CONTAINS(all, "error");
  free(all);
  close(fd);
  tks_buf_finish(&req);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  daemon_cleanup(&d);
}

TEST_TIMEOUT(a_client_that_never_reads_its_answers_cannot_grow_the_daemon, 120) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  send_aapl_ticks(&d, 10000);
  uint64_t rss0 = daemon_stat(&d, "memory.rss_bytes");
  int fd = control_connect(d.sock);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  /* 600 requests of ~1 MB of answer each; we never read. */
  const char *q = "last AAPL 10000\n";
  size_t sent = 0;
  for (int i = 0; i < 600; i++) {
    ssize_t w = send(fd, q, strlen(q), MSG_NOSIGNAL);
    if (w > 0) sent++;
    else usleep(1000);
  }
  usleep(500000);
  /* Another client is answered meanwhile, and memory stayed bounded. */
  uint64_t rss1 = daemon_stat(&d, "memory.rss_bytes");
  if (rss1 > rss0 + (64u << 20))
    TEST_FAIL("RSS grew from %llu to %llu bytes with %zu unread requests",
              (unsigned long long)rss0, (unsigned long long)rss1, sent);
  close(fd);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  daemon_cleanup(&d);
}

/* Polls until the stat is at most `most` or timeout_ms pass; returns the
 * last value seen. */
static uint64_t wait_stat_at_most(const struct tks_daemon *d, const char *path, uint64_t most,
                                  int timeout_ms) {
  uint64_t v = daemon_stat(d, path);
  for (uint64_t until = now_ms() + (uint64_t)timeout_ms; v > most && now_ms() < until; sleep_ms(50))
    v = daemon_stat(d, path);
  return v;
}

/* A read buffer is counted while its connection is open, and answers a
 * client leaves unread while they wait; both leave the count when the
 * connection closes. */
TEST_TIMEOUT(read_and_query_buffers_are_counted_while_held, 120) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  send_aapl_ticks(&d, 10000);
  ASSERT_U64_EQ(wait_stat_at_most(&d, "memory.read_buffer_bytes", 0, 5000), 0);
  uint64_t query0 = daemon_stat(&d, "memory.query_buffer_bytes");
  int in = daemon_connect_ingest(&d);
  ASSERT_U64_EQ(daemon_wait_stat(&d, "memory.read_buffer_bytes", 256u << 10, 5000), 256u << 10);
  int fd = control_connect(d.sock);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  const char *q = "last AAPL 10000\n"; /* ~1 MB of answer each; never read */
  for (int i = 0; i < 8; i++) ASSERT_EQ(send(fd, q, strlen(q), MSG_NOSIGNAL), (ssize_t)strlen(q));
  uint64_t held = daemon_wait_stat(&d, "memory.query_buffer_bytes", query0 + (1u << 20), 5000);
  if (held < query0 + (1u << 20))
    TEST_FAIL("memory.query_buffer_bytes %llu with unread answers (%llu before)",
              (unsigned long long)held, (unsigned long long)query0);
  close(fd);
  close(in);
  ASSERT_U64_EQ(wait_stat_at_most(&d, "memory.read_buffer_bytes", 0, 5000), 0);
  uint64_t after = wait_stat_at_most(&d, "memory.query_buffer_bytes", query0 + 4096, 5000);
  if (after > query0 + 4096)
    TEST_FAIL("memory.query_buffer_bytes %llu after the client left (%llu before, %llu held)",
              (unsigned long long)after, (unsigned long long)query0, (unsigned long long)held);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  daemon_cleanup(&d);
}

/* ---- the stats names against README.md's table, both ways ---- */

#define MAX_NAMES 1024

/* Every path of `stats text` in a daemon that emits all of them: fallback
 * mode (an undeclared field), the journal on, ticks in slab classes. */
static unsigned emitted_stat_names(char **names) {
  struct tks_daemon d;
  daemon_start(&d, "store:\n  mode: fallback\nlimits:\n  max_memory: 64MiB\n");
  struct tks_buf b;
  tks_buf_init(&b);
  for (int i = 0; i < 10; i++) {
    struct tks_kv kv[] = {
        {"ticker", {.type = TKS_V_STR, .v.s = {"AAPL", 4}}},
        {"ts", {.type = TKS_V_INT, .v.i = TS0 + i}},
        {"price", {.type = TKS_V_F64, .v.f = 100.5}},
        {"volume", {.type = TKS_V_INT, .v.i = 1}},
        {"venue", {.type = TKS_V_STR, .v.s = {"XNAS", 4}}},
    };
    ASSERT_EQ(tks_encode_map(&b, kv, TKS_ARRAY_SIZE(kv) - (i % 2)), 0);
  }
  int fd = daemon_connect_ingest(&d);
  ASSERT_EQ(send_all(fd, b.data, b.len), 0);
  daemon_expect_stat(&d, "ticks.accepted", 10, 10000);
  close(fd);
  tks_buf_finish(&b);
  char *r = daemon_request(&d, "stats text");
  ASSERT(r);
  unsigned n = 0;
  for (char *line = r, *nl; (nl = strchr(line, '\n')) && nl != line; line = nl + 1)
    if (n < MAX_NAMES) names[n++] = strndup(line, strcspn(line, " "));
  free(r);
  stop_cleanly(&d);
  return n;
}

TEST(every_emitted_stat_is_in_the_readme_table_and_every_documented_one_is_emitted) {
  static char *doc[MAX_NAMES], *got[MAX_NAMES];
  unsigned ndoc = readme_stat_names("Stats, all in one table", doc, MAX_NAMES),
           ngot = emitted_stat_names(got);
  ASSERT(ndoc > 50);
  ASSERT(ngot > 100);
  unsigned missing = stat_names_compare(doc, ndoc, got, ngot);
  printf("  %u names emitted, %u documented\n", ngot, ndoc);
  for (unsigned i = 0; i < ngot; i++) free(got[i]);
  for (unsigned j = 0; j < ndoc; j++) free(doc[j]);
  fflush(stdout);
  ASSERT_U64_EQ(missing, 0);
}

TEST_MAIN()
