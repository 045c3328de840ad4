/*
 * Black-box tests of checkpoints (issue 8) against the real tickslabd: the
 * control request `checkpoint` answers once the file is durable, with the
 * right figures; the file appears whole (no temp file left); a restart
 * loads it and replays only the journal after it, every tick back exactly
 * once; the segments it covers are deleted, so the journal stops growing
 * under steady ingest; SIGTERM writes a last one; a bad newest checkpoint
 * falls back to the previous one and the longer journal (or is refused by
 * journal.on_corrupt); a failed checkpoint deletes nothing; and a schema
 * change between runs converts the checkpoint (a field fallback ticks
 * carried becomes a declared one) or is refused by name.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "encode.h"
#include "harness.h"
#include "test.h"
#include "util.h"

#define TS0 INT64_C(1700000000000000000)
#define CKPT_MS 60000 /* bound on one checkpoint */

#define FMT(buf, ...)                                                         \
  do {                                                                        \
    int n_ = snprintf((buf), sizeof(buf), __VA_ARGS__);                       \
    if (n_ < 0 || (size_t)n_ >= sizeof(buf)) TEST_FAIL("%s: too long", #buf); \
  } while (0)

/* ---- ticks: tick i is the (i / nsym)-th of symbol i % nsym ---- */

static int64_t tick_ts(int64_t i) { return TS0 + i * 1000; }

static void encode_tick(struct tks_buf *b, int nsym, int64_t i, bool exchange) {
  char ticker[16];
  FMT(ticker, "C%02d", (int)(i % nsym));
  static const char *const ex[] = {"XNAS", "XNYS", "BATS"};
  struct tks_kv kv[6] = {
      {"ticker", {.type = TKS_V_STR, .v.s = {ticker, (uint32_t)strlen(ticker)}}},
      {"ts", {.type = TKS_V_INT, .v.i = tick_ts(i)}},
      {"price", {.type = TKS_V_F64, .v.f = 100.0 + (double)(i % 97) * 0.25}},
      {"volume", {.type = TKS_V_INT, .v.i = i}},
      {"flags", {.type = TKS_V_STR, .v.s = {"R", 1}}},
      {"exchange", {.type = TKS_V_STR, .v.s = {ex[i % 3], 4}}},
  };
  /* Every third tick without exchange (when asked for), every other without flags. */
  size_t n = exchange && i % 3 ? 6 : 5;
  if (i % 2 && n == 5) n = 4;
  if (tks_encode_map(b, kv, n) != 0) TEST_FAIL("out of memory");
}

/* Sends ticks [i0, i1) and waits until ticks.accepted is accepted_after. */
static void send_ticks(const struct tks_daemon *d, int nsym, int64_t i0, int64_t i1,
                       uint64_t accepted_after, bool exchange) {
  struct tks_buf b;
  tks_buf_init(&b);
  for (int64_t i = i0; i < i1; i++) encode_tick(&b, nsym, i, exchange);
  int fd = daemon_connect_ingest(d);
  if (send_all(fd, b.data, b.len) != 0) TEST_FAIL("send: %s", strerror(errno));
  daemon_expect_stat(d, "ticks.accepted", accepted_after, 60000);
  close(fd);
  tks_buf_finish(&b);
}

/* ---- the daemon ---- */

static void fail_with_log(const struct tks_daemon *d, const char *what) {
  char *log = daemon_log(d);
  size_t len = strlen(log);
  TEST_FAIL("%s; log tail:\n%s", what, len > 4000 ? log + len - 4000 : log);
}

/* Config with the journal in <d->dir>/journal plus journal keys `keys`
 * (indented by two spaces) and top-level `extra`. */
static void configure(struct tks_daemon *d, char *jdir, size_t n, const char *keys,
                      const char *extra) {
  daemon_prepare(d, NULL, NULL);
  int len = snprintf(jdir, n, "%s/journal", d->dir);
  if (len < 0 || (size_t)len >= n) TEST_FAIL("path too long");
  char yaml[2048];
  FMT(yaml, "journal:\n  dir: \"%s\"\n%squery:\n  max_rows: 1000000\n%s", jdir, keys ? keys : "",
      extra ? extra : "");
  daemon_write_config(d, NULL, yaml);
}

static void start(struct tks_daemon *d) {
  daemon_spawn(d, NULL);
  daemon_wait_ready(d);
}

static void stop_expect_0(struct tks_daemon *d) {
  int code = daemon_stop(d, SIGTERM);
  if (code != 0) fail_with_log(d, "SIGTERM did not exit 0");
}

static char *ask(const struct tks_daemon *d, const char *req) {
  char *r = daemon_request(d, req);
  if (!r) fail_with_log(d, req);
  return r;
}

/* The same for a large answer: reads until its empty line, scanning only
 * what is new. */
static char *ask_big(const struct tks_daemon *d, const char *req) {
  char *r = daemon_request_big(d, req, 60000);
  if (!r) fail_with_log(d, req);
  return r;
}

/* `checkpoint`: the answer's figures, or fails. */
struct answer {
  unsigned long long ticks, bytes;
  double seconds;
};

static struct answer parse_checkpoint(const char *r) {
  struct answer a;
  int end = 0;
  if (sscanf(r, "{\"ok\":true,\"ticks\":%llu,\"bytes\":%llu,\"seconds\":%lf}\n\n%n", &a.ticks,
             &a.bytes, &a.seconds, &end) != 3 ||
      end == 0 || r[end] != '\0')
    TEST_FAIL(
        "checkpoint answered \"%s\", want {\"ok\":true,\"ticks\":N,\"bytes\":B,\"seconds\":S}", r);
  return a;
}

static struct answer checkpoint(const struct tks_daemon *d) {
  int fd = control_connect(d->sock);
  if (fd < 0) TEST_FAIL("connect: %s", strerror(errno));
  if (send_all(fd, "checkpoint\n", 11) != 0) TEST_FAIL("send: %s", strerror(errno));
  bool eof;
  char *r = read_until(fd, "\n\n", 1, CKPT_MS, &eof);
  close(fd);
  if (!strstr(r, "\n\n")) fail_with_log(d, "no answer to checkpoint");
  struct answer a = parse_checkpoint(r);
  free(r);
  return a;
}

/* ---- the directory ---- */

/* Files of dir whose name starts with prefix and ends with suffix. */
static unsigned count_files(const char *dir, const char *prefix, const char *suffix,
                            uint64_t *bytes) {
  DIR *dd = opendir(dir);
  if (!dd) TEST_FAIL("opendir %s: %s", dir, strerror(errno));
  unsigned n = 0;
  if (bytes) *bytes = 0;
  struct dirent *de;
  while ((de = readdir(dd))) {
    size_t l = strlen(de->d_name), pl = strlen(prefix), sl = strlen(suffix);
    if (l < pl + sl || strncmp(de->d_name, prefix, pl) || strcmp(de->d_name + l - sl, suffix))
      continue;
    n++;
    if (bytes) {
      char p[512];
      FMT(p, "%s/%s", dir, de->d_name);
      struct stat sb;
      if (stat(p, &sb) == 0) *bytes += (uint64_t)sb.st_size;
    }
  }
  closedir(dd);
  return n;
}

static void checkpoint_path(char *out, size_t n, const char *jdir, uint64_t seq) {
  int len = snprintf(out, n, "%s/checkpoint-%020llu.tkc", jdir, (unsigned long long)seq);
  if (len < 0 || (size_t)len >= n) TEST_FAIL("path too long");
}

static bool exists(const char *p) { return access(p, F_OK) == 0; }

/* The smallest sequence number of dir's files "<prefix><20 digits>.*", or
 * UINT64_MAX. */
static uint64_t oldest_seq(const char *dir, const char *prefix) {
  DIR *dd = opendir(dir);
  if (!dd) TEST_FAIL("opendir %s: %s", dir, strerror(errno));
  uint64_t min = UINT64_MAX;
  struct dirent *de;
  size_t pl = strlen(prefix);
  while ((de = readdir(dd))) {
    if (strncmp(de->d_name, prefix, pl) || strstr(de->d_name, ".tmp")) continue;
    uint64_t v = strtoull(de->d_name + pl, NULL, 10);
    if (v < min) min = v;
  }
  closedir(dd);
  return min;
}

/* ---- reading ticks back: every tick once, in order ---- */

/* Checks `range` of the first `nread` of nsym symbols: ticks in strictly
 * increasing ts, each the one its ts names (volume = i); returns how many. */
static uint64_t check_some(const struct tks_daemon *d, int nsym, int nread) {
  uint64_t total = 0;
  for (int s = 0; s < nread; s++) {
    char req[96];
    FMT(req, "range C%02d 0 9223372036854775807", s);
    char *r = ask_big(d, req);
    if (strstr(r, "\"error\"")) TEST_FAIL("%s: %.300s", req, r);
    long long prev = -1;
    /* Row by row, each searched within its own bounds (a search of the
     * whole answer per row is quadratic, under ASan's interceptors too). */
    for (const char *line = r, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
      const char *p = memmem(line, (size_t)(nl - line), "\"ts\":", 5);
      if (!p) continue;
      long long ts = strtoll(p + 5, NULL, 10);
      const char *v = memmem(p, (size_t)(nl - p), "\"volume\":", 9);
      if (!v) TEST_FAIL("no volume in %.200s", p);
      long long i = strtoll(v + 9, NULL, 10);
      if (ts != tick_ts(i) || i % nsym != s) TEST_FAIL("%s: row ts %lld volume %lld", req, ts, i);
      if (ts <= prev)
        TEST_FAIL("%s: ts %lld after %lld (a tick twice or out of order)", req, ts, prev);
      prev = ts;
      total++;
    }
    free(r);
  }
  return total;
}

static uint64_t check_all(const struct tks_daemon *d, int nsym) {
  return check_some(d, nsym, nsym);
}

/* ---- tests ---- */

TEST_TIMEOUT(checkpoint_answers_once_the_file_is_durable_with_its_ticks_and_bytes, 120) {
  struct tks_daemon d;
  char jdir[256];
  configure(&d, jdir, sizeof jdir, "  checkpoint_interval: 0\n  checkpoint_bytes: 0\n", NULL);
  start(&d);
  send_ticks(&d, 8, 0, 20000, 20000, false);
  struct answer a = checkpoint(&d);
  ASSERT_U64_EQ(a.ticks, 20000);
  /* The journal was cut at the fork: segment 1 holds the ticks, 2 is next. */
  char path[512];
  checkpoint_path(path, sizeof path, jdir, 2);
  struct stat sb;
  if (stat(path, &sb) != 0) fail_with_log(&d, "no checkpoint-...02.tkc");
  ASSERT_U64_EQ(a.bytes, (uint64_t)sb.st_size);
  ASSERT_EQ(count_files(jdir, "checkpoint-", ".tmp", NULL), 0);
  ASSERT_U64_EQ(daemon_stat(&d, "checkpoint.count"), 1);
  ASSERT_U64_EQ(daemon_stat(&d, "checkpoint.failed"), 0);
  ASSERT_U64_EQ(daemon_stat(&d, "checkpoint.ticks"), 20000);
  ASSERT_U64_EQ(daemon_stat(&d, "checkpoint.bytes"), a.bytes);
  ASSERT_U64_EQ(daemon_stat(&d, "checkpoint.next_segment"), 2);
  ASSERT_U64_EQ(daemon_stat(&d, "checkpoint.in_progress"), 0);
  /* A record costs 32 bytes in the file (the journal took about 60). */
  ASSERT(a.bytes < 20000ull * 40);
  /* With nothing new, another one holds the same ticks, cut at segment 2
   * again (nothing was written to it). */
  struct answer b = checkpoint(&d);
  ASSERT_U64_EQ(b.ticks, 20000);
  ASSERT_U64_EQ(daemon_stat(&d, "checkpoint.count"), 2);
  send_ticks(&d, 8, 20000, 21000, 21000, false);
  struct answer c = checkpoint(&d);
  ASSERT_U64_EQ(c.ticks, 21000);
  checkpoint_path(path, sizeof path, jdir, 3);
  if (!exists(path)) fail_with_log(&d, "no checkpoint-...03.tkc");
  /* Two are kept. */
  ASSERT_EQ(count_files(jdir, "checkpoint-", ".tkc", NULL), 2);
  stop_expect_0(&d);
  daemon_cleanup(&d);
}

TEST_TIMEOUT(concurrent_requests_share_the_checkpoint_in_progress, 120) {
  struct tks_daemon d;
  char jdir[256];
  configure(&d, jdir, sizeof jdir, "  checkpoint_interval: 0\n  checkpoint_bytes: 0\n", NULL);
  start(&d);
  send_ticks(&d, 4, 0, 50000, 50000, false);
  int fds[4];
  for (int i = 0; i < 4; i++) {
    fds[i] = control_connect(d.sock);
    ASSERT(fds[i] >= 0);
  }
  for (int i = 0; i < 4; i++) ASSERT_EQ(send_all(fds[i], "checkpoint\n", 11), 0);
  for (int i = 0; i < 4; i++) {
    bool eof;
    char *r = read_until(fds[i], "\n\n", 1, CKPT_MS, &eof);
    struct answer a = parse_checkpoint(r);
    ASSERT_U64_EQ(a.ticks, 50000);
    free(r);
    close(fds[i]);
  }
  /* Four requests, at most as many checkpoints (fewer when they shared). */
  uint64_t n = daemon_stat(&d, "checkpoint.count");
  ASSERT(n >= 1 && n <= 4);
  ASSERT_U64_EQ(daemon_stat(&d, "checkpoint.failed"), 0);
  /* A connection closed while it waits is no trouble. */
  int fd = control_connect(d.sock);
  ASSERT_EQ(send_all(fd, "checkpoint\nping\n", 16), 0);
  close(fd);
  char *r = ask(&d, "ping");
  ASSERT_CONTAINS(r, "\"ok\":true");
  free(r);
  stop_expect_0(&d);
  daemon_cleanup(&d);
}

TEST_TIMEOUT(a_restart_loads_the_checkpoint_and_replays_only_the_journal_after_it, 180) {
  struct tks_daemon d;
  char jdir[256];
  configure(&d, jdir, sizeof jdir, "  checkpoint_interval: 0\n  checkpoint_bytes: 0\n", NULL);
  start(&d);
  send_ticks(&d, 6, 0, 30000, 30000, false);
  struct answer a = checkpoint(&d);
  ASSERT_U64_EQ(a.ticks, 30000);
  send_ticks(&d, 6, 30000, 36000, 36000, false);
  char *r = ask(&d, "sync");
  free(r);
  /* kill -9: no checkpoint at the stop, the last 6000 are in the journal only. */
  ASSERT_EQ(daemon_stop(&d, SIGKILL), 128 + SIGKILL);
  start(&d);
  ASSERT_U64_EQ(daemon_stat(&d, "checkpoint.loaded_ticks"), 30000);
  ASSERT_U64_EQ(daemon_stat(&d, "journal.replayed_ticks"), 6000);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), 36000);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.durable"), 36000);
  ASSERT_U64_EQ(check_all(&d, 6), 36000);
  char *log = daemon_log(&d);
  ASSERT_CONTAINS(log, "checkpoint-00000000000000000002.tkc: 30000 ticks");
  free(log);
  /* Ticks accepted now come after all of them, and a restart has them. */
  send_ticks(&d, 6, 36000, 37000, 1000, false);
  stop_expect_0(&d);
  start(&d);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), 37000);
  /* With both triggers off the stop writes none: the journal has the rest. */
  ASSERT_U64_EQ(daemon_stat(&d, "journal.replayed_ticks"), 7000);
  ASSERT_U64_EQ(check_all(&d, 6), 37000);
  stop_expect_0(&d);
  daemon_cleanup(&d);
}

TEST_TIMEOUT(sigterm_writes_a_last_checkpoint_and_the_restart_replays_nothing, 120) {
  struct tks_daemon d;
  char jdir[256];
  configure(&d, jdir, sizeof jdir, NULL, NULL); /* the defaults: 5m and 1GiB */
  start(&d);
  send_ticks(&d, 5, 0, 12000, 12000, false);
  ASSERT_U64_EQ(daemon_stat(&d, "checkpoint.count"), 0);
  stop_expect_0(&d);
  char *log = daemon_log(&d);
  ASSERT_CONTAINS(log, "(at the stop): 12000 ticks");
  free(log);
  ASSERT_EQ(count_files(jdir, "checkpoint-", ".tkc", NULL), 1);
  ASSERT_EQ(count_files(jdir, "checkpoint-", ".tmp", NULL), 0);
  start(&d);
  ASSERT_U64_EQ(daemon_stat(&d, "checkpoint.loaded_ticks"), 12000);
  ASSERT_U64_EQ(daemon_stat(&d, "journal.replayed_ticks"), 0);
  ASSERT_U64_EQ(check_all(&d, 5), 12000);
  /* Nothing new: the next stop writes none. */
  stop_expect_0(&d);
  log = daemon_log(&d);
  const char *second = strstr(strstr(log, "(at the stop)") + 1, "(at the stop)");
  ASSERT(second == NULL);
  free(log);
  daemon_cleanup(&d);
}

TEST_TIMEOUT(covered_segments_are_deleted_and_the_journal_stops_growing_under_steady_ingest, 300) {
  struct tks_daemon d;
  char jdir[256];
  configure(&d, jdir, sizeof jdir,
            "  segment_size: 1MiB\n  checkpoint_interval: 0\n  checkpoint_bytes: 1MiB\n", NULL);
  start(&d);
  /* 16 rounds of about 1.2 MiB of journal each; each round waits for the
   * checkpoint it triggers, so the figures do not depend on timing. */
  const int64_t per_round = 20000;
  uint64_t peak = 0;
  for (int round = 0; round < 16; round++) {
    uint64_t before = daemon_stat(&d, "checkpoint.count");
    send_ticks(&d, 10, round * per_round, (round + 1) * per_round,
               (uint64_t)(round + 1) * per_round, false);
    if (daemon_wait_stat(&d, "checkpoint.count", before + 1, CKPT_MS) < before + 1)
      fail_with_log(&d, "journal.checkpoint_bytes did not trigger a checkpoint");
    /* The deletion follows the checkpoint on the writer thread. */
    uint64_t deadline = now_ms() + 10000, bytes;
    while ((bytes = daemon_stat(&d, "journal.bytes")) > 5u << 20 && now_ms() < deadline)
      sleep_ms(20);
    if (bytes > peak) peak = bytes;
  }
  uint64_t written = daemon_stat(&d, "journal.frames_written");
  ASSERT(written > 0);
  /* More than 19 MiB of journal went through; at most the segments since
   * the older of the two checkpoints kept are left. */
  ASSERT(peak <= 5u << 20);
  /* The last deletion (the writer thread's, after the last checkpoint) is
   * done once the oldest segment left is the older checkpoint's N; then the
   * figures follow the files. */
  if (daemon_wait_stat(&d, "checkpoint.in_progress", 0, CKPT_MS) != 0) TEST_FAIL("still writing");
  uint64_t oldest_ckpt = oldest_seq(jdir, "checkpoint-"), deadline = now_ms() + 20000;
  while (oldest_seq(jdir, "journal-") < oldest_ckpt && now_ms() < deadline) sleep_ms(20);
  ASSERT_U64_EQ(oldest_seq(jdir, "journal-"), oldest_ckpt);
  uint64_t on_disk;
  unsigned segs = count_files(jdir, "journal-", ".tkj", &on_disk);
  while ((daemon_stat(&d, "journal.segments") != segs ||
          daemon_stat(&d, "journal.bytes") != on_disk) &&
         now_ms() < deadline)
    sleep_ms(20);
  ASSERT(segs <= 5);
  ASSERT_U64_EQ(daemon_stat(&d, "journal.segments"), segs);
  ASSERT_U64_EQ(daemon_stat(&d, "journal.bytes"), on_disk);
  ASSERT_EQ(count_files(jdir, "checkpoint-", ".tkc", NULL), 2);
  ASSERT_U64_EQ(daemon_stat(&d, "checkpoint.failed"), 0);
  /* kill -9, then every tick is back: the newest checkpoint plus the rest. */
  ASSERT_EQ(daemon_stop(&d, SIGKILL), 128 + SIGKILL);
  start(&d);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), 16 * per_round);
  ASSERT_U64_EQ(check_some(&d, 10, 2), 16 * per_round / 5); /* two symbols in full */
  stop_expect_0(&d);
  daemon_cleanup(&d);
}

/* Flips a byte in the middle of a file. */
static void damage(const char *path) {
  int fd = open(path, O_RDWR);
  ASSERT(fd >= 0);
  struct stat sb;
  ASSERT_EQ(fstat(fd, &sb), 0);
  off_t at = sb.st_size / 2;
  uint8_t b;
  ASSERT_EQ(pread(fd, &b, 1, at), 1);
  b ^= 0x10;
  ASSERT_EQ(pwrite(fd, &b, 1, at), 1);
  close(fd);
}

TEST_TIMEOUT(a_bad_newest_checkpoint_falls_back_to_the_previous_one_and_the_longer_journal, 180) {
  struct tks_daemon d;
  char jdir[256];
  configure(&d, jdir, sizeof jdir, "  checkpoint_interval: 0\n  checkpoint_bytes: 0\n", NULL);
  start(&d);
  send_ticks(&d, 4, 0, 10000, 10000, false);
  ASSERT_U64_EQ(checkpoint(&d).ticks, 10000); /* checkpoint 2 */
  send_ticks(&d, 4, 10000, 20000, 20000, false);
  ASSERT_U64_EQ(checkpoint(&d).ticks, 20000); /* checkpoint 3: segment 1 deleted */
  send_ticks(&d, 4, 20000, 25000, 25000, false);
  free(ask(&d, "sync"));
  ASSERT_EQ(daemon_stop(&d, SIGKILL), 128 + SIGKILL);
  char path[512];
  checkpoint_path(path, sizeof path, jdir, 3);
  damage(path);
  start(&d);
  ASSERT_U64_EQ(daemon_stat(&d, "checkpoint.loaded_ticks"), 10000);
  ASSERT_U64_EQ(daemon_stat(&d, "journal.replayed_ticks"), 15000);
  ASSERT_U64_EQ(check_all(&d, 4), 25000);
  char *log = daemon_log(&d);
  ASSERT_CONTAINS(log, path);
  ASSERT_CONTAINS(log, "falling back to the previous checkpoint");
  free(log);
  /* It was set aside: the two kept are good ones (2 and the next). */
  char bad[600];
  FMT(bad, "%s.bad", path);
  ASSERT(exists(bad));
  ASSERT(!exists(path));
  ASSERT_U64_EQ(checkpoint(&d).ticks, 25000);
  ASSERT_EQ(count_files(jdir, "checkpoint-", ".tkc", NULL), 2);
  checkpoint_path(path, sizeof path, jdir, 2);
  ASSERT(exists(path));
  stop_expect_0(&d);
  daemon_cleanup(&d);
}

TEST_TIMEOUT(a_bad_checkpoint_is_refused_under_on_corrupt_refuse, 120) {
  struct tks_daemon d;
  char jdir[256];
  configure(&d, jdir, sizeof jdir,
            "  checkpoint_interval: 0\n  checkpoint_bytes: 0\n  on_corrupt: refuse\n", NULL);
  start(&d);
  send_ticks(&d, 4, 0, 8000, 8000, false);
  ASSERT_U64_EQ(checkpoint(&d).ticks, 8000);
  ASSERT_EQ(daemon_stop(&d, SIGKILL), 128 + SIGKILL);
  char path[512];
  checkpoint_path(path, sizeof path, jdir, 2);
  damage(path);
  daemon_spawn(&d, NULL);
  int code = daemon_wait_exit(&d, 20000);
  if (code != 1) fail_with_log(&d, "a damaged checkpoint under refuse did not exit 1");
  char *log = daemon_log(&d);
  ASSERT_CONTAINS(log, path);
  ASSERT_CONTAINS(log, "offset");
  ASSERT_CONTAINS(log, "on_corrupt is refuse");
  free(log);
  daemon_cleanup(&d);
}

TEST_TIMEOUT(a_failed_checkpoint_is_counted_and_deletes_nothing, 120) {
  struct tks_daemon d;
  char jdir[256];
  configure(&d, jdir, sizeof jdir, "  checkpoint_interval: 0\n  checkpoint_bytes: 0\n", NULL);
  start(&d);
  send_ticks(&d, 4, 0, 6000, 6000, false);
  ASSERT_U64_EQ(checkpoint(&d).ticks, 6000); /* checkpoint 2 */
  send_ticks(&d, 4, 6000, 9000, 9000, false);
  /* The next one is checkpoint 3: a directory in the way of its temp file. */
  char tmp[512], path[512];
  checkpoint_path(path, sizeof path, jdir, 3);
  FMT(tmp, "%s.tmp", path);
  ASSERT_EQ(mkdir(tmp, 0700), 0);
  char *r = ask(&d, "checkpoint");
  ASSERT_CONTAINS(r, "\"error\"");
  ASSERT_CONTAINS(r, "checkpoint failed");
  free(r);
  ASSERT_U64_EQ(daemon_stat(&d, "checkpoint.failed"), 1);
  ASSERT_U64_EQ(daemon_stat(&d, "checkpoint.count"), 1);
  ASSERT(!exists(path));
  /* Nothing of the journal went: segment 1 is still there. */
  char seg1[512];
  FMT(seg1, "%s/journal-%020d.tkj", jdir, 1);
  ASSERT(exists(seg1));
  char *log = daemon_log(&d);
  ASSERT_CONTAINS(log, "checkpoint failed");
  free(log);
  rmdir(tmp);
  /* The next one goes through (at segment 3 again: nothing was written since). */
  ASSERT_U64_EQ(checkpoint(&d).ticks, 9000);
  ASSERT_U64_EQ(daemon_stat(&d, "checkpoint.count"), 2);
  stop_expect_0(&d);
  start(&d);
  ASSERT_U64_EQ(check_all(&d, 4), 9000);
  stop_expect_0(&d);
  daemon_cleanup(&d);
}

/* The pid of a child of parent (the checkpoint's), or 0 after timeout_ms. */

TEST_TIMEOUT(a_checkpoint_that_cannot_be_written_or_whose_child_dies_deletes_nothing, 120) {
  struct tks_daemon d;
  char jdir[256];
  configure(&d, jdir, sizeof jdir, "  checkpoint_interval: 0\n  checkpoint_bytes: 0\n", NULL);
  start(&d);
  send_ticks(&d, 4, 0, 6000, 6000, false);
  ASSERT_U64_EQ(checkpoint(&d).ticks, 6000); /* checkpoint 2 */
  send_ticks(&d, 4, 6000, 12000, 12000, false);
  free(ask(&d, "sync"));
  char seg1[512];
  FMT(seg1, "%s/journal-%020d.tkj", jdir, 1);

  /* A file-size limit under the checkpoint's size (set from outside; the
   * child inherits it): the journal is all written, so it is cut, and the
   * child's write fails as on a full disk. */
  struct rlimit old, lim;
  if (prlimit(d.pid, RLIMIT_FSIZE, NULL, &old) != 0) {
    stop_expect_0(&d);
    daemon_cleanup(&d);
    TEST_SKIP("reading the daemon's RLIMIT_FSIZE: %s", strerror(errno));
  }
  lim = (struct rlimit){.rlim_cur = 4096, .rlim_max = old.rlim_max};
  ASSERT_EQ(prlimit(d.pid, RLIMIT_FSIZE, &lim, NULL), 0);
  char *r = ask(&d, "checkpoint");
  ASSERT_CONTAINS(r, "checkpoint failed");
  ASSERT_CONTAINS(r, "File too large");
  free(r);
  ASSERT_U64_EQ(daemon_stat(&d, "checkpoint.failed"), 1);
  ASSERT_EQ(count_files(jdir, "checkpoint-", ".tmp", NULL), 0);
  ASSERT_EQ(count_files(jdir, "checkpoint-", ".tkc", NULL), 1);
  ASSERT(exists(seg1));

  /* Ticks the journal cannot write now: the journal cannot be cut behind
   * them, so the child waits for it, and is killed meanwhile. */
  send_ticks(&d, 4, 12000, 12100, 12100, false);
  int fd = control_connect(d.sock);
  ASSERT(fd >= 0);
  ASSERT_EQ(send_all(fd, "checkpoint\n", 11), 0);
  pid_t child = harness_child_of(d.pid, 10000);
  if (!child) fail_with_log(&d, "no checkpoint child");
  ASSERT_EQ(kill(child, SIGKILL), 0);
  bool eof;
  r = read_until(fd, "\n\n", 1, CKPT_MS, &eof);
  close(fd);
  ASSERT_CONTAINS(r, "checkpoint failed");
  ASSERT_CONTAINS(r, "killed by signal 9");
  free(r);
  ASSERT_U64_EQ(daemon_stat(&d, "checkpoint.failed"), 2);
  ASSERT_U64_EQ(daemon_stat(&d, "checkpoint.count"), 1);
  ASSERT_EQ(count_files(jdir, "checkpoint-", ".tmp", NULL), 0);
  ASSERT(exists(seg1));
  char *log = daemon_log(&d);
  ASSERT_CONTAINS(log, "checkpoint failed: the child writing it was killed by signal 9");
  free(log);

  /* Room again: the journal catches up and the next checkpoint holds it all. */
  ASSERT_EQ(prlimit(d.pid, RLIMIT_FSIZE, &old, NULL), 0);
  free(ask(&d, "sync"));
  ASSERT_U64_EQ(checkpoint(&d).ticks, 12100);
  ASSERT_U64_EQ(daemon_stat(&d, "checkpoint.count"), 2);
  ASSERT_EQ(daemon_stop(&d, SIGKILL), 128 + SIGKILL);
  start(&d);
  ASSERT_U64_EQ(check_all(&d, 4), 12100);
  stop_expect_0(&d);
  daemon_cleanup(&d);
}

TEST(checkpoint_is_refused_with_the_journal_off) {
  struct tks_daemon d;
  daemon_start(&d, "journal:\n  enabled: false\n");
  char *r = ask(&d, "checkpoint");
  ASSERT_CONTAINS(r, "journal is disabled");
  free(r);
  stop_expect_0(&d);
  daemon_cleanup(&d);
}

/* ---- schema changes between runs ---- */

static const char *const declared_exchange = "schema:\n"
                                             "  - {name: ts, type: timestamp}\n"
                                             "  - {name: ticker, type: symbol, required: true}\n"
                                             "  - {name: price, type: f64, required: true}\n"
                                             "  - {name: volume, type: i64, required: true}\n"
                                             "  - {name: flags, type: string}\n"
                                             "  - {name: exchange, type: string%s}\n";

TEST_TIMEOUT(declaring_a_field_fallback_ticks_carry_converts_the_checkpoint_at_restart, 180) {
  struct tks_daemon d;
  char jdir[256];
  configure(&d, jdir, sizeof jdir, NULL, "store:\n  mode: fallback\n");
  start(&d);
  send_ticks(&d, 3, 0, 9000, 9000, true);
  ASSERT(daemon_stat(&d, "store.overflow.ticks") >= 5000);
  stop_expect_0(&d); /* the checkpoint at the stop */
  double before_per_tick;
  {
    /* The figure a slotted store of these ticks has: what it should drop to. */
    struct tks_daemon s;
    daemon_start(&s, "journal:\n  enabled: false\n");
    send_ticks(&s, 3, 0, 9000, 9000, false);
    before_per_tick = (double)daemon_stat(&s, "store.slotted.bytes") / 9000;
    stop_expect_0(&s);
    daemon_cleanup(&s);
  }
  char yaml[2048], schema[1024];
  FMT(schema, declared_exchange, "");
  FMT(yaml, "journal:\n  dir: \"%s\"\nstore:\n  mode: fallback\nquery:\n  max_rows: 1000000\n%s",
      jdir, schema);
  daemon_write_config(&d, NULL, yaml);
  start(&d);
  ASSERT_U64_EQ(daemon_stat(&d, "checkpoint.loaded_ticks"), 9000);
  ASSERT_U64_EQ(daemon_stat(&d, "store.overflow.ticks"), 0);
  ASSERT_U64_EQ(daemon_stat(&d, "store.slotted.ticks"), 9000);
  /* Memory per tick is the slotted figure (a wider record: 40 bytes, not 32). */
  double per_tick = (double)daemon_stat(&d, "store.slotted.bytes") / 9000;
  ASSERT(per_tick <= before_per_tick * 40 / 32 + 1);
  /* exchange is a declared field now, in slot order; where ticks had none, "". */
  char *r = ask(&d, "last C01 3");
  ASSERT_CONTAINS(r, "\"flags\":");
  ASSERT_CONTAINS(r, "\"exchange\":\"");
  ASSERT_NOT_CONTAINS(r, "\"exchange\":\"\",\"exchange\"");
  free(r);
  /* C00's ticks (i % 3 == 0) carried no exchange: the default, "". */
  r = ask_big(&d, "range C00 0 9223372036854775807");
  ASSERT_CONTAINS(r, "\"volume\":0,\"flags\":\"R\",\"exchange\":\"\"}");
  ASSERT_CONTAINS(r, "\"volume\":3,\"flags\":\"\",\"exchange\":\"\"}");
  free(r);
  /* C01's did: it is in the record now. */
  r = ask_big(&d, "range C01 0 9223372036854775807");
  ASSERT_CONTAINS(r, "\"volume\":1,\"flags\":\"R\",\"exchange\":\"XNYS\"}");
  ASSERT_CONTAINS(r, "\"volume\":4,\"flags\":\"R\",\"exchange\":\"XNYS\"}");
  free(r);
  ASSERT_U64_EQ(check_all(&d, 3), 9000);
  char *log = daemon_log(&d);
  ASSERT_CONTAINS(log, "converted to the current schema");
  ASSERT_CONTAINS(log, "exchange");
  free(log);
  ASSERT_EQ(daemon_stop(&d, SIGKILL), 128 + SIGKILL);

  /* exchange required: the ticks without it cannot take it.  Refused by name. */
  FMT(schema, declared_exchange, ", required: true");
  FMT(yaml, "journal:\n  dir: \"%s\"\nstore:\n  mode: fallback\n%s", jdir, schema);
  daemon_write_config(&d, NULL, yaml);
  daemon_spawn(&d, NULL);
  int code = daemon_wait_exit(&d, 20000);
  if (code != 1) fail_with_log(&d, "an impossible schema change did not exit 1");
  log = daemon_log(&d);
  ASSERT_CONTAINS(log, "field exchange is required");
  ASSERT_CONTAINS(log, "3000 ticks in the checkpoint lack it");
  free(log);
  daemon_cleanup(&d);
}

TEST_MAIN()
