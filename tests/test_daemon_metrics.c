/*
 * Black-box tests of GET /metrics (metrics.listen): a plain HTTP/1.1
 * client written here scrapes the real daemon over loopback and parses
 * the exposition text (comments or `name{labels} value`, HELP and TYPE
 * before a family's samples, counters ending in _total); the figures move
 * with ticks sent; `stats prometheus` on the control socket is the same
 * text; promtool (where installed) finds nothing to say.  404 and 405,
 * HEAD, keep-alive and pipelining, the connection limit; slow, oversized,
 * malformed, random and truncated requests closed while ingest and other
 * scrapes go on.  An HTTP request on the ingest port: a hint in the log
 * and the answer, not a rejected tick.  control.socket_mode and
 * control.socket_group on the socket file.  Every metric name the Grafana
 * dashboard (contrib/grafana/tickslab.json) queries is one a scrape has
 * (tests/grafana_names.py).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "test.h"
#include "util.h"
#include "wire.h"

#define TS0 INT64_C(1700000000000000000)
#define METRICS_ON "metrics:\n  listen: \"127.0.0.1:0\"\n"
#define CLOSE_MS 20000 /* bound on the daemon closing a slow client (it waits 5 s) */

/* ---- a plain HTTP client ------------------------------------------------ */

struct hconn {
  int fd;
  char *buf; /* bytes read and not yet taken by a response */
  size_t len, cap;
  bool eof;
};

struct hresp {
  int status;
  char head[4096]; /* status line and headers, NUL-terminated */
  char *body;      /* malloc'd, NUL-terminated */
  size_t body_len;
};

static int tcp_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) TEST_FAIL("socket: %s", strerror(errno));
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    TEST_FAIL("connect 127.0.0.1:%d: %s", port, strerror(errno));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static void hconn_open(struct hconn *h, int port) {
  memset(h, 0, sizeof *h);
  h->fd = tcp_connect(port);
  h->cap = 1 << 16;
  h->buf = malloc(h->cap);
  ASSERT(h->buf);
}

static void hconn_close(struct hconn *h) {
  if (h->fd >= 0) close(h->fd);
  free(h->buf);
  h->fd = -1;
  h->buf = NULL;
}

static void hresp_finish(struct hresp *r) {
  free(r->body);
  r->body = NULL;
}

/* Reads more into h->buf, waiting up to the deadline.  false: EOF, reset or timeout. */
static bool fill(struct hconn *h, uint64_t deadline) {
  if (h->eof) return false;
  if (h->len == h->cap) {
    h->cap *= 2;
    h->buf = realloc(h->buf, h->cap);
    ASSERT(h->buf);
  }
  for (;;) {
    uint64_t now = now_ms();
    if (now >= deadline) return false;
    struct pollfd p = {.fd = h->fd, .events = POLLIN};
    int r = poll(&p, 1, (int)(deadline - now));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    ssize_t n = recv(h->fd, h->buf + h->len, h->cap - h->len, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      h->eof = true;
      return false;
    }
    h->len += (size_t)n;
    return true;
  }
}

static const char *header_value(const struct hresp *r, const char *name, char *out, size_t n) {
  size_t nl = strlen(name);
  for (const char *l = strstr(r->head, "\r\n"); l && l[2]; l = strstr(l + 2, "\r\n")) {
    const char *p = l + 2;
    if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
      p += nl + 1;
      while (*p == ' ') p++;
      const char *e = strstr(p, "\r\n");
      size_t k = e ? (size_t)(e - p) : strlen(p);
      snprintf(out, n, "%.*s", (int)k, p);
      return out;
    }
  }
  return NULL;
}

/* One response from h (of a HEAD when head: no body read).  0, or -1 when
 * the connection ended or timeout_ms passed first. */
static int read_response(struct hconn *h, bool head, int timeout_ms, struct hresp *r) {
  memset(r, 0, sizeof *r);
  uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
  char *end;
  for (;;) {
    end = h->len ? memmem(h->buf, h->len, "\r\n\r\n", 4) : NULL;
    if (end) break;
    if (!fill(h, deadline)) return -1;
  }
  size_t hl = (size_t)(end - h->buf) + 4;
  if (hl >= sizeof r->head) TEST_FAIL("response head of %zu bytes", hl);
  memcpy(r->head, h->buf, hl);
  r->head[hl] = '\0';
  if (sscanf(r->head, "HTTP/1.%*d %d ", &r->status) != 1)
    TEST_FAIL("not an HTTP response: \"%.80s\"", r->head);
  char v[64];
  if (!header_value(r, "Content-Length", v, sizeof v))
    TEST_FAIL("no Content-Length in \"%s\"", r->head);
  size_t body = head ? 0 : strtoul(v, NULL, 10);
  while (h->len < hl + body)
    if (!fill(h, deadline)) return -1;
  r->body = malloc(body + 1);
  ASSERT(r->body);
  memcpy(r->body, h->buf + hl, body);
  r->body[body] = '\0';
  r->body_len = body;
  memmove(h->buf, h->buf + hl + body, h->len - hl - body);
  h->len -= hl + body;
  return 0;
}

static void send_str(struct hconn *h, const char *s) {
  if (send_all(h->fd, s, strlen(s)) != 0) TEST_FAIL("send: %s", strerror(errno));
}

static int metrics_port(const struct tks_daemon *d) {
  int p = (int)daemon_stat(d, "metrics.port");
  if (p <= 0) TEST_FAIL("metrics.port is %d", p);
  return p;
}

#define GET_METRICS "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: test\r\n\r\n"

/* GET /metrics on a new connection: the body, malloc'd; fails the test
 * unless it is a 200 of the exposition format. */
static char *scrape(const struct tks_daemon *d) {
  struct hconn h;
  hconn_open(&h, metrics_port(d));
  send_str(&h, GET_METRICS);
  struct hresp r;
  if (read_response(&h, false, HARNESS_IO_MS, &r) != 0) TEST_FAIL("no answer to GET /metrics");
  if (r.status != 200) TEST_FAIL("GET /metrics: %d\n%s%s", r.status, r.head, r.body);
  char v[128];
  ASSERT(header_value(&r, "Content-Type", v, sizeof v));
  if (strncmp(v, "text/plain; version=0.0.4", 25) != 0) TEST_FAIL("Content-Type: %s", v);
  hconn_close(&h);
  return r.body;
}

/* ---- the exposition text ------------------------------------------------ */

/* Checks every line of text: "# HELP name text", "# TYPE name type" (once a
 * family, before its samples, and before any other family's), or a sample
 * "name{l="v",...} value" of a family typed before it; counters end in
 * _total and only they do; no _count/_sum/_bucket gauges.  Returns the
 * number of samples. */
static unsigned check_exposition(const char *text) {
  char typed[65536] = " ", cur[200] = "", cur_type[16] = "";
  unsigned samples = 0;
  for (const char *l = text; *l;) {
    const char *nl = strchr(l, '\n');
    if (!nl) TEST_FAIL("the text does not end with a newline: \"%.80s\"", l);
    int ll = (int)(nl - l);
    if (ll == 0) TEST_FAIL("an empty line in the text");
    char name[200], word[16];
    if (l[0] == '#') {
      if (sscanf(l, "# %15s %199s", word, name) != 2 ||
          (strcmp(word, "HELP") != 0 && strcmp(word, "TYPE") != 0))
        TEST_FAIL("a comment that is neither HELP nor TYPE: \"%.*s\"", ll, l);
      if (strcmp(word, "TYPE") == 0) {
        char type[16];
        if (sscanf(l, "# TYPE %*s %15s", type) != 1 ||
            (strcmp(type, "counter") != 0 && strcmp(type, "gauge") != 0))
          TEST_FAIL("bad TYPE: \"%.*s\"", ll, l);
        char key[210];
        snprintf(key, sizeof key, " %s ", name);
        if (strstr(typed, key)) TEST_FAIL("TYPE twice for %s", name);
        ASSERT(strlen(typed) + strlen(key) < sizeof typed);
        strcat(typed, key + 1);
        size_t n = strlen(name);
        bool total = n > 6 && strcmp(name + n - 6, "_total") == 0;
        if ((strcmp(type, "counter") == 0) != total)
          TEST_FAIL("%s %s: counters end in _total, and only they", type, name);
        static const char *const reserved[] = {"_count", "_sum", "_bucket"};
        for (int i = 0; i < 3; i++) {
          size_t k = strlen(reserved[i]);
          if (n > k && strcmp(name + n - k, reserved[i]) == 0)
            TEST_FAIL("%s ends in %s and is no histogram", name, reserved[i]);
        }
        snprintf(cur, sizeof cur, "%s", name);
        snprintf(cur_type, sizeof cur_type, "%s", type);
      } else if (strncmp(name, "tickslab_", 9) != 0 && strncmp(name, "process_", 8) != 0) {
        TEST_FAIL("a family outside tickslab_ and process_: %s", name);
      }
      l = nl + 1;
      continue;
    }
    const char *p = l;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
           *p == '_' || *p == ':')
      p++;
    if (p == l || (l[0] >= '0' && l[0] <= '9')) TEST_FAIL("bad sample name: \"%.*s\"", ll, l);
    if (strncmp(l, cur, (size_t)(p - l)) != 0 || cur[p - l] != '\0')
      TEST_FAIL("sample \"%.*s\" is not of the family typed last (%s)", ll, l, cur);
    if (*p == '{') {
      p++;
      for (;;) {
        const char *n0 = p;
        while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
               (p > n0 && *p >= '0' && *p <= '9'))
          p++;
        if (p == n0 || p[0] != '=' || p[1] != '"') TEST_FAIL("bad label: \"%.*s\"", ll, l);
        for (p += 2; *p != '"'; p++) {
          if (p >= nl) TEST_FAIL("unterminated label: \"%.*s\"", ll, l);
          if (*p == '\\') p++;
        }
        p++;
        if (*p == ',') {
          p++;
          continue;
        }
        if (*p != '}') TEST_FAIL("bad labels: \"%.*s\"", ll, l);
        p++;
        break;
      }
    }
    if (*p != ' ') TEST_FAIL("no value: \"%.*s\"", ll, l);
    char *e;
    double v = strtod(p + 1, &e);
    if (e == p + 1 || e != nl) TEST_FAIL("bad value: \"%.*s\"", ll, l);
    if (!strcmp(cur_type, "counter") && v < 0) TEST_FAIL("a negative counter: \"%.*s\"", ll, l);
    samples++;
    l = nl + 1;
  }
  return samples;
}

/* The value of the sample whose name and labels are exactly `series`, or fails. */
static double sample(const char *text, const char *series) {
  size_t n = strlen(series);
  for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
    if (strncmp(l, series, n) == 0 && l[n] == ' ') return strtod(l + n + 1, NULL);
  TEST_FAIL("no sample %s", series);
}

static bool has_sample(const char *text, const char *series) {
  size_t n = strlen(series);
  for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
    if (strncmp(l, series, n) == 0 && (l[n] == ' ' || l[n] == '{')) return true;
  return false;
}

/* The lines of text with their values cut off: the series it has. */
static char *series_of(const char *text) {
  size_t n = strlen(text);
  char *out = malloc(n + 1), *o = out;
  ASSERT(out);
  for (const char *l = text; *l;) {
    const char *nl = strchr(l, '\n');
    if (!nl) break;
    const char *sp = l[0] == '#' ? nl : memrchr(l, ' ', (size_t)(nl - l));
    if (!sp) sp = nl;
    memcpy(o, l, (size_t)(sp - l));
    o += sp - l;
    *o++ = '\n';
    l = nl + 1;
  }
  *o = '\0';
  return out;
}

/* ---- ticks ---------------------------------------------------------------- */

/* n MarketEvent map ticks (an extra field `venue` on each when venue) on
 * one connection, waited for until counted. */
static void send_ticks(const struct tks_daemon *d, int n, bool venue) {
  uint64_t before = daemon_stat(d, "ticks.accepted");
  struct wire w;
  wire_init(&w);
  for (int i = 0; i < n; i++) {
    msgpack_pack_map(&w.pk, venue ? 6 : 5);
    pk_str(&w.pk, "ticker");
    pk_str(&w.pk, i % 3 ? "AAPL" : "MSFT");
    pk_str(&w.pk, "ts");
    msgpack_pack_int64(&w.pk, TS0 + i);
    pk_str(&w.pk, "price");
    msgpack_pack_double(&w.pk, 100.25 + i);
    pk_str(&w.pk, "volume");
    msgpack_pack_int64(&w.pk, i + 1);
    pk_str(&w.pk, "flags");
    pk_str(&w.pk, "R");
    if (venue) {
      pk_str(&w.pk, "venue");
      pk_str(&w.pk, "XNAS");
    }
  }
  int fd = daemon_connect_ingest(d);
  wire_send(fd, &w);
  daemon_expect_stat(d, "ticks.accepted", before + (uint64_t)n, 10000);
  close(fd);
  wire_finish(&w);
}

/* ---- the tests ------------------------------------------------------------- */

TEST(a_scrape_is_well_formed_and_its_figures_move_with_ticks) {
  struct tks_daemon d;
  daemon_start(&d, METRICS_ON);
  char *a = scrape(&d);
  unsigned n = check_exposition(a);
  printf("  %u samples, %zu bytes\n", n, strlen(a));
  ASSERT(n > 100);
  static const char *const expected[] = {"tickslab_ticks_accepted_total",
                                         "tickslab_ticks_rejected_total",
                                         "tickslab_ticks_rejected_by_reason_total",
                                         "tickslab_ticks_durable_total",
                                         "tickslab_connections_total",
                                         "tickslab_connections_current",
                                         "tickslab_ingest_received_bytes_total",
                                         "tickslab_memory_total_bytes",
                                         "tickslab_memory_total_bytes_per_tick",
                                         "tickslab_journal_written_ticks_total",
                                         "tickslab_journal_replayed_ticks_total",
                                         "tickslab_journal_last_fsync_age_seconds",
                                         "tickslab_lifecycle_watchdog_seconds",
                                         "tickslab_limits_max_memory_bytes",
                                         "tickslab_symbols",
                                         "tickslab_checkpoints_total",
                                         "tickslab_metrics_scrapes_total",
                                         "process_cpu_seconds_total",
                                         "process_start_time_seconds",
                                         "process_resident_memory_bytes",
                                         "process_virtual_memory_bytes",
                                         "process_open_fds",
                                         "process_max_fds"};
  for (size_t i = 0; i < TKS_ARRAY_SIZE(expected); i++)
    if (!has_sample(a, expected[i])) TEST_FAIL("no %s in the scrape", expected[i]);
  static const char *const gone[] = {"_total_total", "_usec", "symbols_count ",
                                     "tickslab_ingest_bytes_received"};
  for (size_t i = 0; i < TKS_ARRAY_SIZE(gone); i++) ASSERT_NOT_CONTAINS(a, gone[i]);
  double start = sample(a, "process_start_time_seconds");
  ASSERT(start > 1.6e9 && start <= (double)time(NULL) + 1);
  ASSERT(sample(a, "process_resident_memory_bytes") > 1e6);
  ASSERT(sample(a, "process_open_fds") >= 5);
  double acc0 = sample(a, "tickslab_ticks_accepted_total");
  double bytes0 = sample(a, "tickslab_ingest_received_bytes_total");
  send_ticks(&d, 250, false);
  char *b = scrape(&d);
  check_exposition(b);
  ASSERT_EQ(sample(b, "tickslab_ticks_accepted_total") - acc0, 250);
  ASSERT(sample(b, "tickslab_ingest_received_bytes_total") > bytes0 + 250 * 30);
  ASSERT_EQ(sample(b, "tickslab_ticks_stored"), 250);
  ASSERT_EQ(sample(b, "tickslab_symbols"), 2);
  ASSERT(sample(b, "tickslab_metrics_scrapes_total") >= 1);
  ASSERT_EQ(sample(b, "tickslab_ticks_rejected_total"), 0);
  free(a);
  free(b);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
}

TEST(stats_prometheus_on_the_control_socket_is_the_same_text) {
  struct tks_daemon d;
  daemon_start(&d, METRICS_ON);
  send_ticks(&d, 20, false);
  char *h = scrape(&d);
  char *c = daemon_request(&d, "stats prometheus");
  ASSERT(c);
  size_t cl = strlen(c);
  ASSERT(cl > 2 && strcmp(c + cl - 2, "\n\n") == 0);
  c[cl - 1] = '\0'; /* the control socket's closing empty line */
  check_exposition(c);
  char *sh = series_of(h), *sc = series_of(c);
  ASSERT_STR_EQ(sc, sh);
  free(sh);
  free(sc);
  free(h);
  free(c);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
}

TEST(promtool_check_metrics_finds_nothing_to_say) {
  const char *promtool = getenv("PROMTOOL") ? getenv("PROMTOOL") : "/usr/bin/promtool";
  if (access(promtool, X_OK) != 0)
    TEST_SKIP("%s not installed (apt-get install prometheus): promtool check skipped", promtool);
  struct tks_daemon d;
  daemon_start(&d, METRICS_ON "store:\n  mode: fallback\n");
  /* Every kind of family: undeclared fields, slab classes, rejections. */
  send_ticks(&d, 100, true);
  send_ticks(&d, 100, false);
  char *text = scrape(&d);
  check_exposition(text);
  ASSERT(has_sample(text, "tickslab_undeclared_field_ticks"));
  ASSERT(has_sample(text, "tickslab_slab_class_chunk_size_bytes"));
  char path[160];
  snprintf(path, sizeof path, "%s/scrape.txt", d.dir);
  write_file(path, text);
  char *argv[] = {(char *)promtool, "check", "metrics", NULL};
  struct cmd_result r;
  run_cmd(argv, NULL, path, 30000, &r);
  if (r.code != 0 || r.out[0] || r.err[0])
    TEST_FAIL("promtool check metrics: exit %d\n%s%s", r.code, r.out, r.err);
  cmd_result_finish(&r);
  free(text);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
}

TEST(every_metric_the_grafana_dashboard_queries_is_served) {
  const char *root = getenv("TKS_SOURCE_ROOT");
  if (!root) TEST_FAIL("TKS_SOURCE_ROOT is not set");
  if (access("/usr/bin/python3", X_OK) != 0) TEST_SKIP("python3 is not installed");
  struct tks_daemon d;
  daemon_start(&d, METRICS_ON);
  send_ticks(&d, 30, false);
  char *text = scrape(&d);
  char path[160], script[512], dash[512];
  snprintf(path, sizeof path, "%s/scrape.txt", d.dir);
  write_file(path, text);
  snprintf(script, sizeof script, "%s/tests/grafana_names.py", root);
  snprintf(dash, sizeof dash, "%s/contrib/grafana/tickslab.json", root);
  char *argv[] = {"/usr/bin/python3", script, dash, path, NULL};
  struct cmd_result r;
  run_cmd(argv, NULL, NULL, 30000, &r);
  printf("  %s", r.out);
  if (r.code != 0) TEST_FAIL("grafana_names.py: exit %d\n%s%s", r.code, r.out, r.err);
  cmd_result_finish(&r);
  free(text);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
}

TEST(other_paths_are_404_other_methods_405_and_head_has_no_body) {
  struct tks_daemon d;
  daemon_start(&d, METRICS_ON);
  struct hconn h;
  hconn_open(&h, metrics_port(&d));
  struct hresp r;
  static const struct {
    const char *req;
    int status;
  } cases[] = {
      {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 404},
      {"GET /metricsx HTTP/1.1\r\nHost: x\r\n\r\n", 404},
      {"GET /metrics/ HTTP/1.1\r\nHost: x\r\n\r\n", 404},
      {"GET /favicon.ico HTTP/1.1\r\nHost: x\r\n\r\n", 404},
      {"PUT /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 405},
      {"DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 405},
      {"OPTIONS /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 405},
      {"GET /metrics?name[]=x HTTP/1.1\r\nHost: x\r\n\r\n", 200},
  };
  /* All on one connection: an error answer keeps it (keep-alive). */
  for (size_t i = 0; i < TKS_ARRAY_SIZE(cases); i++) {
    send_str(&h, cases[i].req);
    if (read_response(&h, false, HARNESS_IO_MS, &r) != 0)
      TEST_FAIL("no answer to %s", cases[i].req);
    if (r.status != cases[i].status)
      TEST_FAIL("%.30s...: %d, want %d", cases[i].req, r.status, cases[i].status);
    char v[64];
    if (r.status == 405) {
      ASSERT(header_value(&r, "Allow", v, sizeof v));
      ASSERT_STR_EQ(v, "GET, HEAD");
    }
    ASSERT(!header_value(&r, "Connection", v, sizeof v));
    hresp_finish(&r);
  }
  /* HEAD: the headers of a GET, no body; the next answer follows at once. */
  send_str(&h, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(read_response(&h, true, HARNESS_IO_MS, &r), 0);
  ASSERT_EQ(r.status, 200);
  char v[64];
  ASSERT(header_value(&r, "Content-Length", v, sizeof v));
  ASSERT(strtoul(v, NULL, 10) > 1000);
  hresp_finish(&r);
  send_str(&h, "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(read_response(&h, false, HARNESS_IO_MS, &r), 0);
  ASSERT_EQ(r.status, 404);
  ASSERT_CONTAINS(r.body, "/metrics");
  hresp_finish(&r);
  /* A POST with a body: answered 405, then closed (its body is not read). */
  send_str(&h, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
  ASSERT_EQ(read_response(&h, false, HARNESS_IO_MS, &r), 0);
  ASSERT_EQ(r.status, 405);
  ASSERT(header_value(&r, "Connection", v, sizeof v));
  ASSERT_STR_EQ(v, "close");
  hresp_finish(&r);
  ASSERT(wait_closed(h.fd, CLOSE_MS));
  hconn_close(&h);
  ASSERT(daemon_stat(&d, "metrics.errors") >= 9);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
}

TEST(keep_alive_serves_several_requests_and_close_is_honoured) {
  struct tks_daemon d;
  daemon_start(&d, METRICS_ON);
  int port = metrics_port(&d);
  struct hconn h;
  hconn_open(&h, port);
  struct hresp r;
  for (int i = 0; i < 5; i++) {
    send_str(&h, GET_METRICS);
    ASSERT_EQ(read_response(&h, false, HARNESS_IO_MS, &r), 0);
    ASSERT_EQ(r.status, 200);
    check_exposition(r.body);
    hresp_finish(&r);
  }
  /* Three pipelined in one write: three answers, in order. */
  send_str(&h, GET_METRICS "GET /x HTTP/1.1\r\nHost: x\r\n\r\n" GET_METRICS);
  int want[] = {200, 404, 200};
  for (int i = 0; i < 3; i++) {
    ASSERT_EQ(read_response(&h, false, HARNESS_IO_MS, &r), 0);
    ASSERT_EQ(r.status, want[i]);
    hresp_finish(&r);
  }
  ASSERT_EQ(daemon_stat(&d, "metrics.connections_total"), 1);
  /* Connection: close: answered so, then closed. */
  send_str(&h, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  ASSERT_EQ(read_response(&h, false, HARNESS_IO_MS, &r), 0);
  ASSERT_EQ(r.status, 200);
  char v[64];
  ASSERT(header_value(&r, "Connection", v, sizeof v));
  ASSERT_STR_EQ(v, "close");
  hresp_finish(&r);
  ASSERT(wait_closed(h.fd, CLOSE_MS));
  hconn_close(&h);
  /* HTTP/1.0: closed unless it asks for keep-alive. */
  hconn_open(&h, port);
  send_str(&h, "GET /metrics HTTP/1.0\r\n\r\n");
  ASSERT_EQ(read_response(&h, false, HARNESS_IO_MS, &r), 0);
  ASSERT_EQ(r.status, 200);
  hresp_finish(&r);
  ASSERT(wait_closed(h.fd, CLOSE_MS));
  hconn_close(&h);
  hconn_open(&h, port);
  for (int i = 0; i < 2; i++) {
    send_str(&h, "GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    ASSERT_EQ(read_response(&h, false, HARNESS_IO_MS, &r), 0);
    ASSERT_EQ(r.status, 200);
    ASSERT(header_value(&r, "Connection", v, sizeof v));
    ASSERT_STR_EQ(v, "keep-alive");
    hresp_finish(&r);
  }
  hconn_close(&h);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
}

/* Kept alive, a connection may be idle between scrapes longer than a
 * request may take (5 s): a scraper every 15 s keeps its connection.  A
 * request begun on it and not finished is closed as on a new one. */
TEST_TIMEOUT(an_idle_kept_alive_connection_outlives_the_request_timeout, 60) {
  struct tks_daemon d;
  daemon_start(&d, METRICS_ON);
  int port = metrics_port(&d);
  struct hconn h;
  hconn_open(&h, port);
  struct hresp r;
  send_str(&h, GET_METRICS);
  ASSERT_EQ(read_response(&h, false, HARNESS_IO_MS, &r), 0);
  ASSERT_EQ(r.status, 200);
  hresp_finish(&r);
  sleep(7); /* over METRICS_REQUEST_MS, under METRICS_IDLE_MS */
  send_str(&h, GET_METRICS);
  ASSERT_EQ(read_response(&h, false, HARNESS_IO_MS, &r), 0);
  ASSERT_EQ(r.status, 200);
  hresp_finish(&r);
  ASSERT_EQ(daemon_stat(&d, "metrics.connections_total"), 1);
  /* Half a request after the answer: closed once it is 5 s old. */
  send_str(&h, "GET /metrics HTTP/1.1\r\nHost:");
  ASSERT(wait_closed(h.fd, 15000));
  hconn_close(&h);
  ASSERT(daemon_stat(&d, "metrics.closed_timeout") >= 1);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
}

/* The request bytes, a status it must get (0: any error, or just a close). */
static void expect_refused(int port, const void *req, size_t n, int status, const char *what) {
  struct hconn h;
  hconn_open(&h, port);
  if (send_all(h.fd, req, n) != 0 && errno != ECONNRESET && errno != EPIPE)
    TEST_FAIL("%s: send: %s", what, strerror(errno));
  struct hresp r;
  if (read_response(&h, false, CLOSE_MS, &r) == 0) {
    if (status ? r.status != status : r.status < 400)
      TEST_FAIL("%s: %d, want %d\n%s", what, r.status, status, r.head);
    char v[32];
    if (!header_value(&r, "Connection", v, sizeof v) || strcmp(v, "close") != 0)
      TEST_FAIL("%s: no Connection: close", what);
    hresp_finish(&r);
  } else if (status) {
    TEST_FAIL("%s: no %d answer", what, status);
  }
  if (!wait_closed(h.fd, CLOSE_MS)) TEST_FAIL("%s: not closed", what);
  hconn_close(&h);
}

TEST_TIMEOUT(hostile_requests_are_closed_and_ingest_and_scrapes_go_on, 120) {
  struct tks_daemon d;
  daemon_start(&d, METRICS_ON);
  int port = metrics_port(&d);
  /* Oversized: a head over 8 KiB (431), or one line over it. */
  size_t big = 20000;
  char *b = malloc(big);
  ASSERT(b);
  memcpy(b, "GET /metrics HTTP/1.1\r\nHost: x\r\nCookie: ", 40);
  memset(b + 40, 'c', big - 40);
  expect_refused(port, b, big, 431, "a 20000-byte header");
  memcpy(b, "GET /", 5);
  memset(b + 5, 'a', big - 5);
  expect_refused(port, b, big, 431, "a 20000-byte target");
  /* Many small headers that add up past 8 KiB. */
  size_t n = (size_t)snprintf(b, big, "GET /metrics HTTP/1.1\r\nHost: x\r\n");
  for (int i = 0; n < 9000; i++) n += (size_t)snprintf(b + n, big - n, "X-H%d: v\r\n", i);
  n += (size_t)snprintf(b + n, big - n, "\r\n");
  expect_refused(port, b, n, 431, "headers past 8 KiB");
  /* Malformed. */
  static const char *const bad[] = {
      "GET /metrics HTTP/1.1\r\n\r\n", /* no Host */
      "GET /metrics HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
      "GET  /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
      "GET /m\xc3\x28trics HTTP/1.1\r\nHost: x\r\n\r\n", /* invalid UTF-8 in the target */
      "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",    /* a TLS client hello */
      "\x85\xa6ticker\244AAPL\242ts\001",                /* a msgpack tick */
  };
  for (size_t i = 0; i < TKS_ARRAY_SIZE(bad); i++) {
    char what[32];
    snprintf(what, sizeof what, "malformed request %zu", i);
    expect_refused(port, bad[i], strlen(bad[i]), 400, what);
  }
  expect_refused(port, "GET /metrics HTTP/2.0\r\n\r\n", 25, 505, "HTTP/2.0");
  /* Random bytes. */
  unsigned seed = 12;
  for (int i = 0; i < 20; i++) {
    size_t k = 1 + (size_t)(rand_r(&seed) % 3000);
    for (size_t j = 0; j < k; j++) b[j] = (char)rand_r(&seed);
    b[0] = (char)(0x80 | rand_r(&seed)); /* not a method's first byte */
    char what[32];
    snprintf(what, sizeof what, "random bytes %d", i);
    expect_refused(port, b, k, 0, what);
  }
  /* Truncated: the client gives up in the middle; nothing to answer. */
  const char *whole = GET_METRICS;
  for (size_t cut = 1; cut < strlen(whole); cut += 7) {
    int fd = tcp_connect(port);
    ASSERT_EQ(send_all(fd, whole, cut), 0);
    close(fd);
  }
  /* Slow: a partial request, and a trickle; both closed after about 5 s,
   * while ingest and other scrapes go on. */
  int slow = tcp_connect(port);
  ASSERT_EQ(send_all(slow, "GET /metr", 9), 0);
  int trickle = tcp_connect(port);
  send_ticks(&d, 50, false);
  char *t = scrape(&d);
  check_exposition(t);
  free(t);
  uint64_t start = now_ms();
  bool closed = false;
  for (size_t i = 0; i < strlen(whole) - 1 && !closed; i++) {
    if (send_all(trickle, whole + i, 1) != 0) break;
    struct pollfd p = {.fd = trickle, .events = POLLIN};
    closed = poll(&p, 1, 700) == 1;
  }
  ASSERT(wait_closed(trickle, CLOSE_MS));
  ASSERT(wait_closed(slow, CLOSE_MS));
  printf("  slow clients closed after %llu ms\n", (unsigned long long)(now_ms() - start));
  close(slow);
  close(trickle);
  ASSERT(daemon_stat(&d, "metrics.closed_timeout") >= 2);
  /* Still serving, and still taking ticks. */
  send_ticks(&d, 50, false);
  t = scrape(&d);
  ASSERT_EQ(sample(t, "tickslab_ticks_accepted_total"), 100);
  ASSERT_EQ(sample(t, "tickslab_ticks_rejected_total"), 0);
  free(t);
  free(b);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
}

TEST(connections_over_the_limit_get_503_and_the_rest_are_served) {
  struct tks_daemon d;
  daemon_start(&d, METRICS_ON);
  int port = metrics_port(&d);
  struct hconn open_ones[16];
  struct hresp r;
  /* 16 kept-alive connections, each having had its answer (so all are
   * accepted and counted before the 17th). */
  for (int i = 0; i < 16; i++) {
    hconn_open(&open_ones[i], port);
    send_str(&open_ones[i], GET_METRICS);
    ASSERT_EQ(read_response(&open_ones[i], false, HARNESS_IO_MS, &r), 0);
    ASSERT_EQ(r.status, 200);
    hresp_finish(&r);
  }
  struct hconn extra;
  hconn_open(&extra, port);
  ASSERT_EQ(read_response(&extra, false, HARNESS_IO_MS, &r), 0);
  ASSERT_EQ(r.status, 503);
  hresp_finish(&r);
  ASSERT(wait_closed(extra.fd, CLOSE_MS));
  hconn_close(&extra);
  ASSERT(daemon_stat(&d, "metrics.refused") >= 1);
  /* Their buffers are counted (memory.query_buffer_bytes, memory.total_bytes). */
  ASSERT(daemon_stat(&d, "memory.query_buffer_bytes") >= 16 * 8192);
  /* One of them goes: a new one is served. */
  hconn_close(&open_ones[0]);
  bool served = false;
  for (int attempt = 0; attempt < 50 && !served; attempt++) {
    hconn_open(&extra, port);
    send_str(&extra, GET_METRICS);
    if (read_response(&extra, false, HARNESS_IO_MS, &r) == 0) {
      served = r.status == 200;
      hresp_finish(&r);
    }
    hconn_close(&extra);
    if (!served) sleep_ms(20);
  }
  ASSERT(served);
  for (int i = 1; i < 16; i++) hconn_close(&open_ones[i]);
  /* ... and given back once they are closed. */
  uint64_t q = 0;
  for (int i = 0; i < 500 && (q = daemon_stat(&d, "memory.query_buffer_bytes")) >= 8192; i++)
    sleep_ms(20);
  if (q >= 8192) TEST_FAIL("memory.query_buffer_bytes still %llu", (unsigned long long)q);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
}

/* An HTTP request on the ingest port, sent in two writes split at cut. */
static char *http_on_ingest(const struct tks_daemon *d, size_t cut) {
  const char *req =
      "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Prometheus/2.42.0\r\n\r\n";
  if (cut > strlen(req)) cut = strlen(req);
  int fd = daemon_connect_ingest(d);
  ASSERT_EQ(send_all(fd, req, cut), 0);
  if (cut < strlen(req)) {
    sleep_ms(50);
    ASSERT_EQ(send_all(fd, req + cut, strlen(req) - cut), 0);
  }
  bool eof = false;
  char *got = read_until(fd, "", 0, CLOSE_MS, &eof);
  if (!eof) TEST_FAIL("the ingest port did not close an HTTP connection");
  close(fd);
  return got;
}

TEST(an_http_request_on_the_ingest_port_gets_a_hint_and_is_no_rejected_tick) {
  struct tks_daemon d;
  daemon_start(&d, METRICS_ON);
  char where[96];
  snprintf(where, sizeof where, "metrics are on http://127.0.0.1:%d/metrics", metrics_port(&d));
  char *got = http_on_ingest(&d, 1000); /* whole */
  ASSERT_CONTAINS(got, "HTTP/1.1 400 Bad Request\r\n");
  ASSERT_CONTAINS(got, where);
  free(got);
  got = http_on_ingest(&d, 2); /* "GE", then the rest */
  ASSERT_CONTAINS(got, where);
  free(got);
  daemon_expect_stat(&d, "ingest.http_requests", 2, 5000);
  ASSERT_EQ(daemon_stat(&d, "ticks.rejected"), 0);
  ASSERT_EQ(daemon_stat(&d, "ticks.rejected_by_reason.not_a_tick"), 0);
  ASSERT_EQ(daemon_stat(&d, "connections.closed_on_error"), 0);
  char *log = daemon_log(&d);
  char line[200];
  snprintf(line, sizeof line, "looks like HTTP; %s (metrics.listen)", where);
  ASSERT_CONTAINS(log, line);
  free(log);
  /* Ticks go on, and a scrape tells the same. */
  send_ticks(&d, 10, false);
  char *t = scrape(&d);
  ASSERT_EQ(sample(t, "tickslab_ingest_http_requests_total"), 2);
  ASSERT_EQ(sample(t, "tickslab_ticks_rejected_total"), 0);
  free(t);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
}

TEST(with_metrics_off_the_hint_says_so_and_nothing_listens) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  char *stats = daemon_request(&d, "stats text");
  ASSERT(stats);
  char v[64];
  ASSERT_EQ(stats_text_lookup(stats, "metrics.listen", v, sizeof v), 0);
  ASSERT_STR_EQ(v, "off");
  free(stats);
  ASSERT_EQ(daemon_stat(&d, "metrics.port"), 0);
  char *got = http_on_ingest(&d, 5);
  ASSERT_CONTAINS(got, "metrics are off (set metrics.listen");
  free(got);
  daemon_expect_stat(&d, "ingest.http_requests", 1, 5000);
  ASSERT_EQ(daemon_stat(&d, "ticks.rejected"), 0);
  char *log = daemon_log(&d);
  ASSERT_CONTAINS(log, "looks like HTTP; metrics are off");
  ASSERT_NOT_CONTAINS(log, "metrics on http://");
  free(log);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
}

/* d->config with extra keys of the control section after its socket line. */
static void add_control_keys(struct tks_daemon *d, const char *keys) {
  char *c = read_file(d->config);
  ASSERT(c);
  char *at = strstr(c, "  socket: ");
  ASSERT(at);
  at = strchr(at, '\n') + 1;
  size_t n = strlen(c) + strlen(keys) + 1;
  char *out = malloc(n);
  ASSERT(out);
  snprintf(out, n, "%.*s%s%s", (int)(at - c), c, keys, at);
  write_file(d->config, out);
  free(out);
  free(c);
}

TEST(control_socket_mode_and_group_are_applied_to_the_socket_file) {
  struct group *g = getgrgid(getgid());
  if (!g) TEST_SKIP("the test's group %u has no name", (unsigned)getgid());
  char group[64];
  snprintf(group, sizeof group, "%s", g->gr_name);
  struct tks_daemon d;
  daemon_prepare(&d, NULL, NULL);
  char keys[160];
  snprintf(keys, sizeof keys, "  socket_mode: \"0660\"\n  socket_group: \"%s\"\n", group);
  add_control_keys(&d, keys);
  daemon_spawn(&d, NULL);
  daemon_wait_ready(&d);
  struct stat st;
  ASSERT_EQ(stat(d.sock, &st), 0);
  ASSERT(S_ISSOCK(st.st_mode));
  ASSERT_EQ(st.st_mode & 07777, 0660);
  ASSERT_EQ(st.st_gid, getgid());
  char *log = daemon_log(&d);
  ASSERT_CONTAINS(log, "(mode 0660, group ");
  free(log);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  /* A mode with the owner's bits only is 0600 (the default). */
  struct tks_daemon e;
  daemon_prepare(&e, NULL, NULL);
  add_control_keys(&e, "  socket_mode: 640\n");
  daemon_spawn(&e, NULL);
  daemon_wait_ready(&e);
  ASSERT_EQ(stat(e.sock, &st), 0);
  ASSERT_EQ(st.st_mode & 07777, 0640);
  ASSERT_EQ(daemon_stop(&e, SIGTERM), 0);
}

TEST(an_unknown_group_or_a_bad_mode_refuses_the_start) {
  static const struct {
    const char *keys, *want;
  } cases[] = {
      {"  socket_group: no-such-group-tks\n",
       "control.socket_group: unknown group 'no-such-group-tks'"},
      {"  socket_mode: \"0900\"\n", "control.socket_mode: '0900' is not an octal mode"},
      {"  socket_mode: \"0060\"\n", "takes read and write from the owner"},
  };
  for (size_t i = 0; i < TKS_ARRAY_SIZE(cases); i++) {
    struct tks_daemon d;
    daemon_prepare(&d, NULL, NULL);
    add_control_keys(&d, cases[i].keys);
    daemon_spawn(&d, NULL);
    ASSERT_EQ(daemon_wait_exit(&d, HARNESS_READY_MS), 2);
    char *log = daemon_log(&d);
    ASSERT_CONTAINS(log, cases[i].want);
    ASSERT_CONTAINS(log, "tickslab.yaml:");
    free(log);
    ASSERT(access(d.sock, F_OK) != 0);
  }
}

TEST_MAIN()
