/*
 * Black-box tests of the day archive in the daemon (issue 8): `rollover`
 * seals the ticks of the days before today into archive.dir and takes them
 * out of memory; `last`, `range` and `symbols` read memory and the archive
 * as one (in order, exactly once, paged across the seam); a late tick of a
 * sealed day is stored and sealed by the next rollover as another part;
 * restarts (SIGTERM and kill -9, also in the middle of a rollover) keep
 * every tick exactly once; archive.retention deletes old days; archive.dir
 * is locked; a bad SEALED file refuses the start; a damaged part fails the
 * queries that read it, naming the file.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "encode.h"
#include "harness.h"
#include "test.h"
#include "util.h"

#define DAY_NS INT64_C(86400000000000)
#define SEAL_MS 120000 /* bound on one rollover */

#define FMT(buf, ...)                                                         \
  do {                                                                        \
    int n_ = snprintf((buf), sizeof(buf), __VA_ARGS__);                       \
    if (n_ < 0 || (size_t)n_ >= sizeof(buf)) TEST_FAIL("%s: too long", #buf); \
  } while (0)

/* ---- the days: ticks from three days before today to the end of today ---- */

static int64_t today; /* 00:00 UTC of the day the test runs in */

/* Not within two minutes of midnight UTC, so that "today" does not turn
 * under the test (a rollover's cut is the start of the current day). */
static void fix_today(void) {
  int64_t now = tks_now_ns();
  int64_t into = now % DAY_NS;
  if (into > DAY_NS - 120 * INT64_C(1000000000)) {
    sleep_ms((int)((DAY_NS - into) / 1000000) + 2000);
    now = tks_now_ns();
  }
  today = now - now % DAY_NS;
}

/* Tick i of n: symbol C<i % nsym>, ts spread evenly over four days (three
 * before today and today), volume i. */
static int64_t tick_ts(int64_t i, int64_t n) {
  return today - 3 * DAY_NS + (int64_t)((double)i * (4.0 * (double)DAY_NS / (double)n));
}

static void encode_tick(struct tks_buf *b, const char *ticker, int64_t ts, int64_t volume) {
  struct tks_kv kv[4] = {
      {"ticker", {.type = TKS_V_STR, .v.s = {ticker, (uint32_t)strlen(ticker)}}},
      {"ts", {.type = TKS_V_INT, .v.i = ts}},
      {"price", {.type = TKS_V_F64, .v.f = 100.0 + (double)(volume % 97) * 0.25}},
      {"volume", {.type = TKS_V_INT, .v.i = volume}},
  };
  if (tks_encode_map(b, kv, 4) != 0) TEST_FAIL("out of memory");
}

static void send_buf(const struct tks_daemon *d, const struct tks_buf *b, uint64_t accepted_after) {
  int fd = daemon_connect_ingest(d);
  if (send_all(fd, b->data, b->len) != 0) TEST_FAIL("send: %s", strerror(errno));
  daemon_expect_stat(d, "ticks.accepted", accepted_after, 60000);
  close(fd);
}

/* Sends ticks [0, n) of nsym symbols C<base>.. after `before` accepted;
 * returns how many are before today. */
static int64_t send_days_as(const struct tks_daemon *d, int base, int nsym, int64_t n,
                            uint64_t before) {
  struct tks_buf b;
  tks_buf_init(&b);
  int64_t past = 0;
  for (int64_t i = 0; i < n; i++) {
    char ticker[16];
    FMT(ticker, "C%02d", base + (int)(i % nsym));
    encode_tick(&b, ticker, tick_ts(i, n), i);
    past += tick_ts(i, n) < today;
  }
  send_buf(d, &b, before + (uint64_t)n);
  tks_buf_finish(&b);
  return past;
}

static int64_t send_days(const struct tks_daemon *d, int nsym, int64_t n) {
  return send_days_as(d, 0, nsym, n, 0);
}

/* ---- the daemon ---- */

static void fail_with_log(const struct tks_daemon *d, const char *what) {
  char *log = daemon_log(d);
  size_t len = strlen(log);
  TEST_FAIL("%s; log tail:\n%s", what, len > 4000 ? log + len - 4000 : log);
}

static void configure(struct tks_daemon *d, const char *extra) {
  daemon_prepare(d, NULL, NULL);
  char yaml[2048];
  FMT(yaml,
      "journal:\n  dir: \"%s/journal\"\n  checkpoint_interval: 0\n  checkpoint_bytes: 0\n"
      "query:\n  max_rows: 1000000\n%s",
      d->dir, extra ? extra : "");
  daemon_write_config(d, NULL, yaml);
}

static void start(struct tks_daemon *d) {
  daemon_spawn(d, NULL);
  daemon_wait_ready(d);
}

static void stop_expect_0(struct tks_daemon *d) {
  if (daemon_stop(d, SIGTERM) != 0) fail_with_log(d, "SIGTERM did not exit 0");
}

static void kill_9(struct tks_daemon *d) {
  kill(d->pid, SIGKILL);
  if (daemon_wait_exit(d, HARNESS_STOP_MS) != 128 + SIGKILL) TEST_FAIL("kill -9 did not end it");
}

/* A request whose answer may be large: reads until its empty line. */
static char *ask(const struct tks_daemon *d, const char *req) {
  char *r = daemon_request_big(d, req, SEAL_MS);
  if (!r) fail_with_log(d, req);
  return r;
}

struct rollover {
  unsigned long long ticks, bytes;
  unsigned parts;
};

static struct rollover rollover(const struct tks_daemon *d) {
  char *r = ask(d, "rollover");
  struct rollover a;
  double secs;
  if (sscanf(r, "{\"ok\":true,\"ticks\":%llu,\"bytes\":%llu,\"parts\":%u,\"seconds\":%lf}",
             &a.ticks, &a.bytes, &a.parts, &secs) != 4)
    TEST_FAIL("rollover answered \"%s\"", r);
  free(r);
  return a;
}

/* ---- reading back ---- */

struct row {
  long long ts, volume;
};

/* needle in [line, nl), or NULL. */
static const char *in_line(const char *line, const char *nl, const char *needle) {
  size_t n = strlen(needle);
  for (const char *p = line; p + n <= nl; p++)
    if (memcmp(p, needle, n) == 0) return p;
  return NULL;
}

/* The rows of an answer (lines with a ts); *more and *next_from from a
 * paging line. */
static size_t parse_rows(const char *r, struct row *out, size_t max, bool *more,
                         long long *next_from) {
  size_t n = 0;
  if (more) *more = false;
  for (const char *line = r, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
    if (!strncmp(line, "{\"error\"", 8)) TEST_FAIL("error answer: %.300s", line);
    const char *m = in_line(line, nl, "\"next_from\":");
    if (m) {
      if (more) *more = true;
      if (next_from) *next_from = strtoll(m + 12, NULL, 10);
      continue;
    }
    const char *p = in_line(line, nl, "\"ts\":");
    if (!p) continue;
    const char *v = in_line(line, nl, "\"volume\":");
    if (!v) TEST_FAIL("no volume in %.200s", line);
    if (n == max) TEST_FAIL("more rows than the %zu expected", max);
    out[n++] = (struct row){strtoll(p + 5, NULL, 10), strtoll(v + 9, NULL, 10)};
  }
  return n;
}

/* Every tick of symbol C<base + s> of n (nsym symbols), as sent: in order, once. */
static void check_symbol_as(const struct tks_daemon *d, int base, int nsym, int64_t n, int s) {
  size_t want = 0;
  for (int64_t i = s; i < n; i += nsym) want++;
  struct row *rows = malloc((want + 1) * sizeof *rows);
  ASSERT(rows);
  char req[96];
  FMT(req, "range C%02d 0 9223372036854775807", base + s);
  char *r = ask(d, req);
  size_t got = parse_rows(r, rows, want + 1, NULL, NULL);
  free(r);
  if (got != want) TEST_FAIL("%s: %zu rows, want %zu", req, got, want);
  for (size_t k = 0; k < got; k++) {
    int64_t i = s + (int64_t)k * nsym;
    if (rows[k].volume != i || rows[k].ts != tick_ts(i, n))
      TEST_FAIL("%s: row %zu is ts %lld volume %lld, want ts %lld volume %lld", req, k, rows[k].ts,
                rows[k].volume, (long long)tick_ts(i, n), (long long)i);
  }
  free(rows);
}

static void check_symbol(const struct tks_daemon *d, int nsym, int64_t n, int s) {
  check_symbol_as(d, 0, nsym, n, s);
}

static void check_all(const struct tks_daemon *d, int nsym, int64_t n) {
  for (int s = 0; s < nsym; s++) check_symbol(d, nsym, n, s);
}

/* Memory and archive together hold exactly n ticks. */
static void check_counts(const struct tks_daemon *d, uint64_t n) {
  uint64_t mem = daemon_stat(d, "ticks.stored"), arch = daemon_stat(d, "archive.ticks");
  if (mem + arch != n)
    TEST_FAIL("%llu ticks in memory and %llu in the archive, want %llu in all",
              (unsigned long long)mem, (unsigned long long)arch, (unsigned long long)n);
}

static unsigned count_entries(const char *dir, const char *prefix) {
  DIR *dd = opendir(dir);
  if (!dd) return 0;
  unsigned n = 0;
  struct dirent *de;
  while ((de = readdir(dd)))
    if (!strncmp(de->d_name, prefix, strlen(prefix))) n++;
  closedir(dd);
  return n;
}

/* ---- tests ---- */

TEST_TIMEOUT(rollover_seals_the_days_before_today_and_queries_read_archive_and_memory_as_one, 240) {
  fix_today();
  struct tks_daemon d;
  configure(&d, NULL);
  start(&d);
  enum { NSYM = 4, N = 40000 };
  int64_t past = send_days(&d, NSYM, N);
  ASSERT(past > N / 2 && past < N);
  /* An old symbol with ticks only in the past days. */
  struct tks_buf b;
  tks_buf_init(&b);
  for (int k = 0; k < 6; k++) encode_tick(&b, "OLD", today - 1 - k * (DAY_NS / 3), 900000 + k);
  send_buf(&d, &b, N + 6);
  tks_buf_finish(&b);

  struct rollover r = rollover(&d);
  ASSERT_U64_EQ(r.ticks, (uint64_t)past + 6);
  ASSERT_EQ(r.parts, 3); /* one a day */
  ASSERT(r.bytes > 0);
  ASSERT_U64_EQ(daemon_stat(&d, "archive.days"), 3);
  ASSERT_U64_EQ(daemon_stat(&d, "archive.parts"), 3);
  ASSERT_U64_EQ(daemon_stat(&d, "archive.ticks"), r.ticks);
  ASSERT_U64_EQ(daemon_stat(&d, "archive.bytes"), r.bytes);
  ASSERT_U64_EQ(daemon_stat(&d, "archive.seals"), 1);
  ASSERT_U64_EQ(daemon_stat(&d, "archive.in_progress"), 0);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), (uint64_t)(N - past));
  check_counts(&d, N + 6);
  char dir[256];
  FMT(dir, "%s/journal/archive", d.dir);
  ASSERT_EQ(count_entries(dir, "20"), 3); /* YYYY-MM-DD */

  /* Each symbol back whole, in order, across archive and memory. */
  check_all(&d, NSYM, N);

  /* Paged: pages of 1000 rows meet the seam without a gap or a repeat. */
  {
    size_t want = N / NSYM, got = 0;
    struct row *rows = malloc((want + 1001) * sizeof *rows);
    ASSERT(rows);
    long long from = 0;
    bool more = true;
    unsigned pages = 0;
    while (more) {
      char req[96];
      FMT(req, "range C01 %lld 9223372036854775807 1000", from);
      char *a = ask(&d, req);
      got += parse_rows(a, rows + got, want + 1001 - got, &more, &from);
      free(a);
      ASSERT(++pages < 100);
    }
    ASSERT_U64_EQ(got, want);
    for (size_t k = 0; k < got; k++) ASSERT_EQ(rows[k].volume, 1 + (long long)k * NSYM);
    free(rows);
  }

  /* last: the newest N of both, in order; an archive-only symbol too. */
  {
    struct row rows[16];
    char *a = ask(&d, "last OLD 3");
    size_t n = parse_rows(a, rows, 16, NULL, NULL);
    free(a);
    ASSERT_EQ(n, 3);
    /* OLD's ticks in ts order are k = 5, 4, ..., 0: the newest three are 2, 1, 0. */
    ASSERT_EQ(rows[0].volume, 900002);
    ASSERT_EQ(rows[1].volume, 900001);
    ASSERT_EQ(rows[2].volume, 900000);
    size_t per = N / NSYM;
    struct row *all = malloc((per + 1) * sizeof *all);
    char req[64];
    FMT(req, "last C02 %zu", per);
    a = ask(&d, req);
    n = parse_rows(a, all, per + 1, NULL, NULL);
    free(a);
    ASSERT_U64_EQ(n, per);
    for (size_t k = 0; k < n; k++) ASSERT_EQ(all[k].volume, 2 + (long long)k * NSYM);
    free(all);
  }

  /* symbols: counts over both. */
  {
    char *a = ask(&d, "symbols");
    char want[160];
    FMT(want, "{\"symbol\":\"C00\",\"ticks\":%d,", N / NSYM);
    ASSERT_CONTAINS(a, want);
    ASSERT_CONTAINS(a, "{\"symbol\":\"OLD\",\"ticks\":6,");
    free(a);
  }

  /* Nothing more to seal; then a late tick of a sealed day: stored, read
   * in its place, and sealed by the next rollover as the day's second part. */
  ASSERT_U64_EQ(rollover(&d).ticks, 0);
  tks_buf_init(&b);
  encode_tick(&b, "C00", tick_ts(4, N) + 1, 999999);
  send_buf(&d, &b, N + 7);
  tks_buf_finish(&b);
  {
    struct row rows[8];
    char req[128];
    FMT(req, "range C00 %lld %lld", (long long)tick_ts(0, N), (long long)tick_ts(12, N) + 1);
    char *a = ask(&d, req);
    size_t n = parse_rows(a, rows, 8, NULL, NULL);
    free(a);
    ASSERT_EQ(n, 5); /* ticks 0, 4, the late one, 8, 12 */
    ASSERT_EQ(rows[2].volume, 999999);
    ASSERT_EQ(rows[3].volume, 8);
  }
  r = rollover(&d);
  ASSERT_U64_EQ(r.ticks, 1);
  ASSERT_U64_EQ(daemon_stat(&d, "archive.parts"), 4);

  /* A clean restart, then kill -9: the same ticks, once each. */
  stop_expect_0(&d);
  start(&d);
  check_counts(&d, N + 7);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), (uint64_t)(N - past));
  check_symbol(&d, NSYM, N, 1);
  kill_9(&d);
  start(&d);
  check_counts(&d, N + 7);
  ASSERT_U64_EQ(daemon_stat(&d, "journal.replay_rejected"), 0);
  check_symbol(&d, NSYM, N, 3);
  stop_expect_0(&d);
  daemon_cleanup(&d);
}

TEST_TIMEOUT(kill_9_at_random_moments_of_rollovers_keeps_every_tick_exactly_once, 600) {
  fix_today();
  struct tks_daemon d;
  configure(&d, NULL);
  start(&d);
  enum { NSYM = 4 };
  const int64_t n = UNDER_ASAN ? 50000 : 200000;
  int rounds = UNDER_ASAN ? 4 : 10;
  /* How long one takes here, to kill in the middle of the next ones. */
  int64_t past = send_days_as(&d, 0, NSYM, n, 0);
  uint64_t t0 = now_ms();
  ASSERT_U64_EQ(rollover(&d).ticks, (uint64_t)past);
  int took = (int)(now_ms() - t0) + 1;
  uint64_t total = (uint64_t)n, in_memory = (uint64_t)(n - past);
  srand(20261202);
  unsigned before_answer = 0, stopped = 0;
  for (int round = 1; round <= rounds; round++) {
    /* Fresh ticks of past days (and today) under symbols of their own,
     * then a rollover, killed at a random moment up to 3x its time. */
    past = send_days_as(&d, round * NSYM, NSYM, n, daemon_stat(&d, "ticks.accepted"));
    total += (uint64_t)n;
    in_memory += (uint64_t)(n - past);
    free(ask(&d, "sync")); /* durable: a kill -9 from here on loses none of them */
    int fd = control_connect(d.sock);
    if (fd < 0) TEST_FAIL("connect: %s", strerror(errno));
    if (send_all(fd, "rollover\n", 9) != 0) TEST_FAIL("send: %s", strerror(errno));
    bool answered;
    pid_t child = 0;
    if (round % 2) {
      /* Inside the seal by construction: its child stopped (SIGSTOP), then
       * the daemon killed; the child dies with it (SIGKILL reaches a
       * stopped process). */
      child = harness_child_of(d.pid, 10000);
      if (!child) fail_with_log(&d, "no seal child");
      kill(child, SIGSTOP);
      stopped++;
      answered = false;
    } else {
      /* At a random moment up to 3x a seal's time. */
      int wait = rand() % (3 * took + 1);
      bool eof;
      char *a = read_until(fd, "\n\n", 1, wait, &eof);
      answered = strstr(a, "\n\n") != NULL;
      free(a);
    }
    close(fd);
    before_answer += !answered;
    kill_9(&d);
    /* A child stopped before it asked to die with its parent (the prctl
     * right after the fork) would stay: it goes as it would have. */
    if (child) kill(child, SIGKILL);
    start(&d);
    check_counts(&d, total);
    ASSERT_U64_EQ(daemon_stat(&d, "journal.replay_rejected"), 0);
    check_symbol_as(&d, round * NSYM, NSYM, n, round % NSYM);
    check_symbol_as(&d, 0, NSYM, n, round % NSYM);
  }
  printf("  %d rounds (a rollover took %d ms), %u killed before the answer, %u of them with the "
         "seal's child stopped\n",
         rounds, took, before_answer, stopped);
  ASSERT(stopped > 0);
  rollover(&d);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), in_memory);
  for (int round = 0; round <= rounds; round++)
    for (int s = 0; s < NSYM; s++) check_symbol_as(&d, round * NSYM, NSYM, n, s);
  stop_expect_0(&d);
  daemon_cleanup(&d);
}

TEST_TIMEOUT(archive_retention_deletes_the_days_older_than_it, 120) {
  fix_today();
  struct tks_daemon d;
  configure(&d, NULL);
  start(&d);
  struct tks_buf b;
  tks_buf_init(&b);
  static const int ago[] = {10, 5, 1};
  for (int k = 0; k < 3; k++)
    for (int j = 0; j < 10; j++)
      encode_tick(&b, "R", today - ago[k] * DAY_NS + j * INT64_C(1000000000), k * 100 + j);
  send_buf(&d, &b, 30);
  tks_buf_finish(&b);
  ASSERT_U64_EQ(rollover(&d).ticks, 30);
  ASSERT_U64_EQ(daemon_stat(&d, "archive.days"), 3);
  char yaml[512];
  FMT(yaml,
      "journal:\n  dir: \"%s/journal\"\n  checkpoint_interval: 0\n  checkpoint_bytes: 0\n"
      "archive:\n  retention: 3d\n",
      d.dir);
  daemon_write_config(&d, NULL, yaml);
  ASSERT_EQ(kill(d.pid, SIGHUP), 0);
  uint64_t deadline = now_ms() + 10000;
  while (daemon_stat(&d, "archive.days") != 1 && now_ms() < deadline) sleep_ms(100);
  ASSERT_U64_EQ(daemon_stat(&d, "archive.days"), 1);
  ASSERT_U64_EQ(daemon_stat(&d, "archive.retention_deleted_days"), 2);
  char *a = ask(&d, "range R 0 9223372036854775807");
  struct row rows[40];
  size_t n = parse_rows(a, rows, 40, NULL, NULL);
  free(a);
  ASSERT_EQ(n, 10);
  ASSERT_EQ(rows[0].volume, 200);
  char dir[256];
  FMT(dir, "%s/journal/archive", d.dir);
  ASSERT_EQ(count_entries(dir, "20"), 1);
  char *log = daemon_log(&d);
  ASSERT_CONTAINS(log, "archive: retention deleted 2 days");
  free(log);
  stop_expect_0(&d);
  daemon_cleanup(&d);
}

TEST_TIMEOUT(a_second_daemon_on_the_same_archive_dir_is_refused, 60) {
  struct tks_daemon a, b;
  char shared[96];
  harness_mkdtemp(shared, sizeof shared);
  char extra[256];
  FMT(extra, "archive:\n  dir: \"%s\"\n", shared);
  configure(&a, extra);
  start(&a);
  configure(&b, extra);
  daemon_spawn(&b, NULL);
  ASSERT_EQ(daemon_wait_exit(&b, HARNESS_READY_MS), 1);
  char *log = daemon_log(&b);
  char want[200];
  FMT(want, "archive.dir %s is in use by pid %d", shared, (int)a.pid);
  ASSERT_CONTAINS(log, want);
  free(log);
  stop_expect_0(&a);
  daemon_cleanup(&a);
  daemon_cleanup(&b);
}

TEST_TIMEOUT(a_sealed_file_that_does_not_hold_a_seal_id_refuses_the_start_naming_it, 60) {
  static const char *const bad[] = {"", "x\n", "12 13\n", "-1\n", "99999999999999999999999\n"};
  for (size_t k = 0; k < TKS_ARRAY_SIZE(bad); k++) {
    struct tks_daemon d;
    configure(&d, NULL);
    char dir[256], path[300];
    FMT(dir, "%s/journal/archive", d.dir);
    ASSERT_EQ(tks_mkdir_p(dir), 0);
    FMT(path, "%s/SEALED", dir);
    write_file(path, bad[k]);
    daemon_spawn(&d, NULL);
    ASSERT_EQ(daemon_wait_exit(&d, HARNESS_READY_MS), 1);
    char *log = daemon_log(&d);
    char want[400];
    FMT(want, "archive: %s does not hold a seal id", path);
    ASSERT_CONTAINS(log, want);
    free(log);
    daemon_cleanup(&d);
  }
}

TEST(rollover_is_refused_with_the_archive_off) {
  struct tks_daemon d;
  configure(&d, "archive:\n  enabled: false\n");
  start(&d);
  char *a = ask(&d, "rollover");
  ASSERT_CONTAINS(a, "{\"error\":\"rollover: the archive is disabled (archive.enabled: false)\"}");
  free(a);
  ASSERT_U64_EQ(daemon_stat(&d, "archive.enabled"), 0);
  stop_expect_0(&d);
  daemon_cleanup(&d);
}

TEST_TIMEOUT(a_damaged_part_fails_the_queries_that_read_it_naming_the_file, 120) {
  fix_today();
  struct tks_daemon d;
  configure(&d, NULL);
  start(&d);
  enum { NSYM = 2, N = 8000 };
  send_days(&d, NSYM, N);
  rollover(&d);
  stop_expect_0(&d);
  /* A flipped byte in the oldest day's part, in its first block (C00's:
   * the blocks follow the 32-byte header, symbol by symbol). */
  char day[16], path[300];
  time_t t = (time_t)((today - 3 * DAY_NS) / INT64_C(1000000000));
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(day, sizeof day, "%Y-%m-%d", &tm);
  FMT(path, "%s/journal/archive/%s/part-000001.tka", d.dir, day);
  struct stat sb;
  ASSERT_EQ(stat(path, &sb), 0);
  FILE *f = fopen(path, "r+b");
  ASSERT(f);
  ASSERT(sb.st_size > 200);
  ASSERT_EQ(fseek(f, 40, SEEK_SET), 0);
  int c = fgetc(f);
  ASSERT_EQ(fseek(f, 40, SEEK_SET), 0);
  fputc(c ^ 0x20, f);
  fclose(f);
  start(&d);
  char *a = ask(&d, "range C00 0 9223372036854775807");
  ASSERT_CONTAINS(a, "{\"error\":\"archive: ");
  ASSERT_CONTAINS(a, path);
  free(a);
  /* Today's ticks, in memory, still answer. */
  char req[96];
  FMT(req, "range C00 %lld 9223372036854775807", (long long)today);
  a = ask(&d, req);
  ASSERT(!strstr(a, "\"error\""));
  ASSERT(strstr(a, "\"volume\":"));
  free(a);
  stop_expect_0(&d);
  daemon_cleanup(&d);
}

/* ---- a schema change over the archive ---- */

TEST_TIMEOUT(the_archive_is_read_through_the_layout_it_was_written_with_after_a_schema_change,
             120) {
  fix_today();
  struct tks_daemon d;
  configure(&d, "store:\n  mode: fallback\n");
  start(&d);
  /* Yesterday's ticks, every other one with an undeclared exchange (kept in
   * an overflow map in fallback mode); sealed with that layout. */
  struct tks_buf b;
  tks_buf_init(&b);
  enum { N = 200 };
  for (int i = 0; i < N; i++) {
    struct tks_kv kv[5] = {
        {"ticker", {.type = TKS_V_STR, .v.s = {"X", 1}}},
        {"ts", {.type = TKS_V_INT, .v.i = today - DAY_NS / 2 + i}},
        {"price", {.type = TKS_V_F64, .v.f = 10.5}},
        {"volume", {.type = TKS_V_INT, .v.i = i}},
        {"exchange", {.type = TKS_V_STR, .v.s = {i % 2 ? "XNYS" : "XNAS", 4}}},
    };
    if (tks_encode_map(&b, kv, i % 4 == 3 ? 4 : 5) != 0) TEST_FAIL("out of memory");
  }
  send_buf(&d, &b, N);
  tks_buf_finish(&b);
  ASSERT(daemon_stat(&d, "store.overflow.ticks") > 0);
  ASSERT_U64_EQ(rollover(&d).ticks, N);
  stop_expect_0(&d);
  /* exchange declared now: the archived ticks that carried it come back
   * with it as a declared field, in slot order; those without it have no
   * exchange (the day's layout lacks the field: absent, not defaulted). */
  char yaml[2048];
  FMT(yaml,
      "journal:\n  dir: \"%s/journal\"\n  checkpoint_interval: 0\n  checkpoint_bytes: 0\n"
      "query:\n  max_rows: 1000000\nstore:\n  mode: fallback\n"
      "schema:\n"
      "  - {name: ts, type: timestamp}\n"
      "  - {name: ticker, type: symbol, required: true}\n"
      "  - {name: price, type: f64, required: true}\n"
      "  - {name: volume, type: i64, required: true}\n"
      "  - {name: flags, type: string}\n"
      "  - {name: exchange, type: string}\n",
      d.dir);
  daemon_write_config(&d, NULL, yaml);
  start(&d);
  char *a = ask(&d, "range X 0 9223372036854775807");
  struct row rows[N + 1];
  ASSERT_EQ(parse_rows(a, rows, N + 1, NULL, NULL), N);
  ASSERT_CONTAINS(a, "\"volume\":1,\"flags\":\"\",\"exchange\":\"XNYS\"}");
  ASSERT_CONTAINS(a, "\"volume\":2,\"flags\":\"\",\"exchange\":\"XNAS\"}");
  ASSERT_NOT_CONTAINS(a, "\"volume\":3,\"flags\":\"\",\"exchange\"");
  ASSERT_CONTAINS(a, "\"volume\":3");
  for (int i = 0; i < N; i++) ASSERT_EQ(rows[i].volume, i);
  free(a);
  stop_expect_0(&d);
  daemon_cleanup(&d);
}

/* ---- eviction and retention into the archive ---- */

/* Ticks i of n: C<i % nsym>, ts base + i * step, volume i. */
static void send_spaced(const struct tks_daemon *d, int nsym, int64_t n, int64_t base,
                        int64_t step) {
  struct tks_buf b;
  tks_buf_init(&b);
  for (int64_t i = 0; i < n; i++) {
    char ticker[16];
    FMT(ticker, "C%02d", (int)(i % nsym));
    encode_tick(&b, ticker, base + i * step, i);
  }
  send_buf(d, &b, (uint64_t)n);
  tks_buf_finish(&b);
}

static void check_spaced(const struct tks_daemon *d, int nsym, int64_t n, int64_t base,
                         int64_t step) {
  size_t want = (size_t)(n / nsym) + 1;
  struct row *rows = malloc((want + 1) * sizeof *rows);
  ASSERT(rows);
  for (int s = 0; s < nsym; s++) {
    char req[96];
    FMT(req, "range C%02d 0 9223372036854775807", s);
    char *r = ask(d, req);
    size_t got = parse_rows(r, rows, want + 1, NULL, NULL), k = 0;
    free(r);
    for (int64_t i = s; i < n; i += nsym, k++) {
      if (k >= got)
        TEST_FAIL("%s: %zu rows, want more (tick %lld missing)", req, got, (long long)i);
      if (rows[k].volume != i || rows[k].ts != base + i * step)
        TEST_FAIL("%s: row %zu is volume %lld, want %lld", req, k, rows[k].volume, (long long)i);
    }
    if (k != got) TEST_FAIL("%s: %zu rows, want %zu", req, got, k);
  }
  free(rows);
}

TEST_TIMEOUT(evict_oldest_seals_the_oldest_ticks_into_the_archive_before_they_leave_memory, 300) {
  struct tks_daemon d;
  configure(&d, "store:\n  page_size: 64KiB\n"
                "limits:\n  max_memory: 8MiB\n  when_full: evict_oldest\n");
  start(&d);
  enum { NSYM = 10 };
  const int64_t n = UNDER_ASAN ? 1200000 : 2000000; /* 8 MiB hold about 600000, packed */
  const int64_t base = INT64_C(1700000000000000000), step = 1000;
  send_spaced(&d, NSYM, n, base, step);
  free(ask(&d, "sync"));
  /* Settled: seals ahead of the limit (from 3/4 of it, once a second) are
   * done, none begun for 1.5 s. */
  uint64_t deadline = now_ms() + 60000, seals = UINT64_MAX, since = now_ms();
  while (now_ms() < deadline) {
    uint64_t now_seals = daemon_stat(&d, "archive.seals");
    if (now_seals != seals || daemon_stat(&d, "archive.in_progress")) {
      seals = now_seals;
      since = now_ms();
    } else if (now_ms() - since > 1500) {
      break;
    }
    sleep_ms(50);
  }
  free(ask(&d, "sync"));
  uint64_t stored = daemon_stat(&d, "ticks.stored"), arch = daemon_stat(&d, "archive.ticks");
  printf("  %lld ticks: %llu in memory, %llu in the archive, %llu seals for memory, %llu pauses, "
         "%llu evicted below a seal's cut\n",
         (long long)n, (unsigned long long)stored, (unsigned long long)arch,
         (unsigned long long)daemon_stat(&d, "archive.pressure_seals"),
         (unsigned long long)daemon_stat(&d, "limits.pauses"),
         (unsigned long long)daemon_stat(&d, "archive.evicted_sealed_ticks"));
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.rejected"), 0);
  ASSERT_U64_EQ(daemon_stat(&d, "archive.evicted_unarchived_ticks"), 0);
  ASSERT(daemon_stat(&d, "archive.pressure_seals") >= 1);
  ASSERT(stored < (uint64_t)n);
  check_counts(&d, (uint64_t)n);
  check_spaced(&d, NSYM, n, base, step);
  /* kill -9 and a restart: the same, from the journal's records. */
  kill_9(&d);
  start(&d);
  check_counts(&d, (uint64_t)n);
  ASSERT_U64_EQ(daemon_stat(&d, "journal.replay_rejected"), 0);
  printf("  after kill -9: %llu in memory (%llu replayed, %llu sealed at replay, %llu evicted at "
         "replay), %llu seals since\n",
         (unsigned long long)daemon_stat(&d, "ticks.stored"),
         (unsigned long long)daemon_stat(&d, "journal.replayed_ticks"),
         (unsigned long long)daemon_stat(&d, "journal.replay_sealed_ticks"),
         (unsigned long long)daemon_stat(&d, "journal.replay_evicted_ticks"),
         (unsigned long long)daemon_stat(&d, "archive.seals"));
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), stored);
  check_spaced(&d, NSYM, n, base, step);
  stop_expect_0(&d);
  daemon_cleanup(&d);
}

TEST_TIMEOUT(limits_retention_seals_expired_ticks_into_the_archive, 120) {
  struct tks_daemon d;
  configure(&d, "limits:\n  retention: 3s\n");
  start(&d);
  enum { NSYM = 3, N = 3000 };
  /* From 20 s ago to 10 s ahead: two thirds expired already. */
  const int64_t step = INT64_C(10000000), base = tks_now_ns() - 20 * INT64_C(1000000000);
  send_spaced(&d, NSYM, N, base, step);
  uint64_t deadline = now_ms() + 30000;
  while (
      (daemon_stat(&d, "archive.retention_seals") == 0 || daemon_stat(&d, "archive.in_progress")) &&
      now_ms() < deadline)
    sleep_ms(50);
  ASSERT(daemon_stat(&d, "archive.retention_seals") >= 1);
  ASSERT(daemon_stat(&d, "archive.ticks") >= N / 2);
  ASSERT_U64_EQ(daemon_stat(&d, "limits.retention_evicted_ticks"), 0);
  ASSERT_U64_EQ(daemon_stat(&d, "archive.evicted_unarchived_ticks"), 0);
  check_counts(&d, N);
  check_spaced(&d, NSYM, N, base, step);
  stop_expect_0(&d);
  daemon_cleanup(&d);
}

TEST_MAIN()
