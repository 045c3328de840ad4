/*
 * Black-box tests of the journal (issue 4) against the real tickslabd:
 * every accepted tick is written to segment files in journal.dir, `sync`
 * answers once they are fsynced, a restart replays them exactly once (after
 * SIGTERM, after kill -9), a torn or corrupt tail is cut or refused by
 * journal.on_corrupt while corruption before the tail is never skipped, and
 * a failing disk (RLIMIT_FSIZE set from outside with prlimit(2), or the
 * journal.max_bytes cap) holds or rejects ingest without counting anything
 * durable that is not.  Segment files are read with a parser and a CRC32C
 * of this file's own, not the library's.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "encode.h"
#include "harness.h"
#include "test.h"
#include "util.h"

#define TS0 INT64_C(1700000000000000000)
#define ROUND_NS INT64_C(1000000000000) /* the ts space of one crash-test round */
#define MAX_ROUNDS 8
#define SYNC_MS 10000  /* bound on one `sync` */
#define QUERY_MS 30000 /* bound on one large `range` answer */
#define SEGMENT_HEADER 16
#define FRAME_HEADER 8

/* snprintf into an array, failing the test rather than cutting it short. */
#define FMT(buf, ...)                                                                              \
  do {                                                                                             \
    int n_ = snprintf((buf), sizeof(buf), __VA_ARGS__);                                            \
    if (n_ < 0 || (size_t)n_ >= sizeof(buf)) TEST_FAIL("%s: too long", #buf);                      \
  } while (0)

/* ---- ticks: every field follows from (symbol, round, k) ---- */

/* The k-th tick of symbol sym in round `round`: ts unique and increasing
 * per symbol, so that a duplicate or a hole shows in a range answer. */
static int64_t tick_ts(int sym, int round, int64_t k) {
  return TS0 + round * ROUND_NS + k * 1000 + sym;
}
static double tick_price(int sym, int64_t k) { return 100.0 + sym + (double)(k % 400) * 0.25; }
static int64_t tick_volume(int sym, int64_t k) { return k * 3 + sym + 1; }
static const char *tick_flags(int64_t k) { return k % 3 == 0 ? "R" : k % 3 == 1 ? "XY" : NULL; }

static void encode_tick(struct tks_buf *b, int sym, int round, int64_t k) {
  char ticker[16];
  FMT(ticker, "J%02d", sym);
  const char *flags = tick_flags(k);
  struct tks_kv kv[5] = {
      {"ticker", {.type = TKS_V_STR, .v.s = {ticker, strlen(ticker)}}},
      {"ts", {.type = TKS_V_INT, .v.i = tick_ts(sym, round, k)}},
      {"price", {.type = TKS_V_F64, .v.f = tick_price(sym, k)}},
      {"volume", {.type = TKS_V_INT, .v.i = tick_volume(sym, k)}},
      {"flags", {.type = TKS_V_STR, .v.s = {flags ? flags : "", flags ? strlen(flags) : 0}}},
  };
  if (tks_encode_map(b, kv, flags ? 5 : 4) != 0) TEST_FAIL("out of memory");
}

/* Ticks i0..i1-1 of a stream over nsym symbols: tick i is the (i / nsym)-th
 * of symbol i % nsym, so the symbols interleave. */
static void encode_ticks(struct tks_buf *b, int nsym, int round, uint64_t i0, uint64_t i1) {
  for (uint64_t i = i0; i < i1; i++)
    encode_tick(b, (int)(i % (uint64_t)nsym), round, (int64_t)(i / (uint64_t)nsym));
}

/* Sends ticks i0..i1-1 on a new connection and waits until ticks.accepted
 * reaches accepted_after. */
static void send_ticks(const struct tks_daemon *d, int nsym, int round, uint64_t i0, uint64_t i1,
                       uint64_t accepted_after) {
  struct tks_buf b;
  tks_buf_init(&b);
  encode_ticks(&b, nsym, round, i0, i1);
  int fd = daemon_connect_ingest(d);
  if (send_all(fd, b.data, b.len) != 0) TEST_FAIL("send: %s", strerror(errno));
  daemon_expect_stat(d, "ticks.accepted", accepted_after, 60000);
  close(fd);
  tks_buf_finish(&b);
}

/* ---- config ---- */

/* A journal section for dir plus `extra` (journal keys, indented by two
 * spaces), then a query section that lets one range answer a whole symbol.
 * Checkpoints are off: this suite is about the journal and its replay (a
 * stop would otherwise write one, and a restart replay nothing);
 * test_daemon_checkpoint.c has them. */
static void journal_yaml(char *out, size_t n, const char *dir, const char *extra) {
  int len = snprintf(out, n,
                     "journal:\n"
                     "  dir: \"%s\"\n"
                     "  checkpoint_interval: 0\n"
                     "  checkpoint_bytes: 0\n"
                     "%s"
                     "query:\n"
                     "  max_rows: 1000000\n",
                     dir, extra ? extra : "");
  if (len < 0 || (size_t)len >= n) TEST_FAIL("journal yaml too long");
}

/* daemon_prepare with a journal in dir, then spawn and wait for ping. */
static void start_on(struct tks_daemon *d, const char *dir, const char *extra) {
  char yaml[1024];
  journal_yaml(yaml, sizeof yaml, dir, extra);
  daemon_prepare(d, NULL, yaml);
  daemon_spawn(d, NULL);
  daemon_wait_ready(d);
}

/* prepare + spawn + wait, with the journal in <d->dir>/journal and the
 * journal keys `keys` (indented by two spaces, or NULL). */
static void start_with(struct tks_daemon *d, const char *keys) {
  daemon_prepare(d, NULL, NULL);
  char dir[128], yaml[1024];
  FMT(dir, "%s/journal", d->dir);
  journal_yaml(yaml, sizeof yaml, dir, keys);
  daemon_write_config(d, NULL, yaml);
  daemon_spawn(d, NULL);
  daemon_wait_ready(d);
}

/* Starts d again, as configured (same journal dir). */
static void restart(struct tks_daemon *d) {
  daemon_spawn(d, NULL);
  daemon_wait_ready(d);
}

static void stop_expect_0(struct tks_daemon *d) {
  int code = daemon_stop(d, SIGTERM);
  if (code != 0) {
    char *log = daemon_log(d);
    size_t len = strlen(log);
    TEST_FAIL("exit %d after SIGTERM, want 0; log tail:\n%s", code,
              len > 3000 ? log + len - 3000 : log);
  }
}

/* Fails the test, with the log, if the daemon has exited (while starting). */
static void fail_if_dead_early(struct tks_daemon *d) {
  int code = daemon_wait_exit(d, 0);
  if (code < 0) return;
  char *log = daemon_log(d);
  size_t len = strlen(log);
  TEST_FAIL("tickslabd exited with %d while starting; log tail:\n%s", code,
            len > 3000 ? log + len - 3000 : log);
}

/* ---- the control socket ---- */

/* Reads one response (up to its empty line) from fd, scanning only what is
 * new, so that a large range answer is not scanned over and over.  Returns
 * what was read (never NULL); *complete tells whether "\n\n" was seen. */
static char *read_response(int fd, int timeout_ms, bool *complete) {
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  if (!buf) TEST_FAIL("out of memory");
  uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
  *complete = false;
  for (;;) {
    uint64_t now = now_ms();
    if (now >= deadline) break;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int pr = poll(&pfd, 1, (int)(deadline - now));
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) break;
    if (cap - len < (1 << 15)) {
      buf = realloc(buf, cap *= 2);
      if (!buf) TEST_FAIL("out of memory");
    }
    ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (r <= 0) break;
    size_t from = len ? len - 1 : 0;
    len += (size_t)r;
    buf[len] = '\0';
    if (memmem(buf + from, len - from, "\n\n", 2)) {
      *complete = true;
      break;
    }
  }
  buf[len] = '\0';
  return buf;
}

/* One request on a new connection, with a bound of our own; fails the
 * test (with the daemon's log) when there is no complete answer. */
static char *ask(const struct tks_daemon *d, const char *req, int timeout_ms) {
  int fd = control_connect(d->sock);
  if (fd < 0) TEST_FAIL("connect %s: %s", d->sock, strerror(errno));
  char line[256];
  FMT(line, "%s\n", req);
  if (send_all(fd, line, strlen(line)) != 0) TEST_FAIL("send '%s': %s", req, strerror(errno));
  bool complete;
  char *r = read_response(fd, timeout_ms, &complete);
  close(fd);
  if (!complete) {
    char *log = daemon_log(d);
    size_t len = strlen(log);
    TEST_FAIL("no complete answer to '%s' within %d ms (got %zu bytes: \"%.200s\"); log tail:\n%s",
              req, timeout_ms, strlen(r), r, len > 3000 ? log + len - 3000 : log);
  }
  return r;
}

/* The durable count of a `{"ok":true,"durable":N}` answer, or fails. */
static uint64_t parse_sync(const char *r) {
  unsigned long long n;
  int end = 0;
  if (sscanf(r, "{\"ok\":true,\"durable\":%llu}\n\n%n", &n, &end) != 1 || end == 0 ||
      r[end] != '\0')
    TEST_FAIL("sync answered \"%s\", want {\"ok\":true,\"durable\":N} and an empty line", r);
  return n;
}

static uint64_t sync_durable(const struct tks_daemon *d) {
  char *r = ask(d, "sync", SYNC_MS);
  uint64_t n = parse_sync(r);
  free(r);
  return n;
}

/* A string stat from `stats text` (absent: fails). */
static void stat_str(const struct tks_daemon *d, const char *path, char *out, size_t n) {
  char *text = ask(d, "stats text", 10000);
  if (stats_text_lookup(text, path, out, n) < 0) TEST_FAIL("no %s in `stats text`", path);
  free(text);
}

/* journal.last_error when there is none: "" or "none". */
static bool no_error(const char *v) { return v[0] == '\0' || strcmp(v, "none") == 0; }

/* Polls a string stat until it equals want; returns whether it did. */
static bool wait_stat_str(const struct tks_daemon *d, const char *path, const char *want,
                          int timeout_ms) {
  uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
  char v[256];
  for (;;) {
    stat_str(d, path, v, sizeof v);
    if (strcmp(v, want) == 0) return true;
    if (now_ms() >= deadline) return false;
    sleep_ms(10);
  }
}

/* ---- reading ticks back ---- */

/* The rows of `range J<sym> 0 <max>`, checked field by field against the
 * tick each ts names.  Per symbol, rows must come in strictly increasing ts
 * (no tick twice), and within each round the ticks k = 0, 1, 2, ... with
 * no hole (what a journal keeps is a prefix of what was sent).  Fills
 * per_round[round] with the count; returns the total. */
static uint64_t check_symbol(const struct tks_daemon *d, int sym, uint64_t per_round[MAX_ROUNDS]) {
  char req[96];
  FMT(req, "range J%02d 0 9223372036854775807", sym);
  char *r = ask(d, req, QUERY_MS);
  if (strstr(r, "\"error\"") || strstr(r, "\"more\"")) TEST_FAIL("%s: \"%.300s\"", req, r);
  for (int i = 0; i < MAX_ROUNDS; i++) per_round[i] = 0;
  uint64_t total = 0;
  int64_t prev_ts = INT64_MIN;
  char want_ticker[16];
  FMT(want_ticker, "\"ticker\":\"J%02d\"", sym);
  for (char *line = r, *nl; *line && *line != '\n'; line = nl + 1) {
    nl = strchr(line, '\n');
    if (!nl) TEST_FAIL("%s: unterminated line", req);
    *nl = '\0';
    const char *p;
    long long ts, vol;
    double price;
    char flags[16] = "";
    if (!(p = strstr(line, "\"ts\":")) || sscanf(p, "\"ts\":%lld", &ts) != 1 ||
        !(p = strstr(line, "\"price\":")) || sscanf(p, "\"price\":%lf", &price) != 1 ||
        !(p = strstr(line, "\"volume\":")) || sscanf(p, "\"volume\":%lld", &vol) != 1 ||
        !(p = strstr(line, "\"flags\":\"")) || sscanf(p, "\"flags\":\"%15[^\"]\"", flags) > 1 ||
        !strstr(line, want_ticker))
      TEST_FAIL("%s: a row that does not parse: %s", req, line);
    if (ts <= prev_ts)
      TEST_FAIL("%s: ts %lld after %lld: a tick twice, or out of order (row %s)", req, ts,
                (long long)prev_ts, line);
    prev_ts = ts;
    int64_t rel = ts - TS0;
    int round = (int)(rel / ROUND_NS);
    int64_t k = (rel % ROUND_NS) / 1000;
    if (rel < 0 || round >= MAX_ROUNDS || (rel % ROUND_NS) % 1000 != sym)
      TEST_FAIL("%s: a ts this test never sent: %s", req, line);
    if ((uint64_t)k != per_round[round])
      TEST_FAIL("%s: round %d has tick k=%lld after %llu ticks: a hole (%s)", req, round,
                (long long)k, (unsigned long long)per_round[round], line);
    const char *wf = tick_flags(k);
    if (price != tick_price(sym, k) || vol != tick_volume(sym, k) ||
        strcmp(flags, wf ? wf : "") != 0)
      TEST_FAIL("%s: fields differ from what was sent (price %.17g volume %lld flags \"%s\"): %s",
                req, tick_price(sym, k), (long long)tick_volume(sym, k), wf ? wf : "", line);
    per_round[round]++;
    total++;
  }
  free(r);
  return total;
}

/* ---- journal files ---- */

static bool is_segment_name(const char *name) {
  if (strncmp(name, "journal-", 8) != 0) return false;
  for (int i = 8; i < 28; i++)
    if (name[i] < '0' || name[i] > '9') return false;
  return strcmp(name + 28, ".tkj") == 0;
}

/* Segment names in dir, sorted; returns the count (at most max). */
static int list_segments(const char *dir, char names[][64], int max) {
  DIR *dp = opendir(dir);
  if (!dp) TEST_FAIL("opendir %s: %s", dir, strerror(errno));
  int n = 0;
  struct dirent *e;
  while ((e = readdir(dp))) {
    if (!is_segment_name(e->d_name)) continue;
    if (n == max) TEST_FAIL("more than %d segments in %s", max, dir);
    memcpy(names[n++], e->d_name, 33); /* a segment name is 32 bytes */
  }
  closedir(dp);
  qsort(names, (size_t)n, 64, (int (*)(const void *, const void *))strcmp);
  return n;
}

/* Whether a file whose name contains `part` is in dir. */
static bool dir_has(const char *dir, const char *part) {
  DIR *dp = opendir(dir);
  if (!dp) return false;
  bool found = false;
  struct dirent *e;
  while ((e = readdir(dp)))
    if (strstr(e->d_name, part)) found = true;
  closedir(dp);
  return found;
}

/* Empties dir, its subdirectories (the day archive in journal.dir) too. */
static void clear_dir(const char *dir) {
  DIR *dp = opendir(dir);
  if (!dp) TEST_FAIL("opendir %s: %s", dir, strerror(errno));
  struct dirent *e;
  char path[512];
  while ((e = readdir(dp))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    FMT(path, "%s/%s", dir, e->d_name);
    struct stat sb;
    if (lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
      clear_dir(path);
      if (rmdir(path) != 0) TEST_FAIL("rmdir %s: %s", path, strerror(errno));
      continue;
    }
    if (unlink(path) != 0) TEST_FAIL("unlink %s: %s", path, strerror(errno));
  }
  closedir(dp);
}

static uint8_t *read_bin(const char *path, size_t *size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  struct stat st;
  if (fstat(fd, &st) != 0) TEST_FAIL("fstat %s: %s", path, strerror(errno));
  uint8_t *p = malloc((size_t)st.st_size + 1);
  if (!p) TEST_FAIL("out of memory");
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t r = read(fd, p + got, (size_t)st.st_size - got);
    if (r <= 0) TEST_FAIL("read %s: %s", path, r < 0 ? strerror(errno) : "short");
    got += (size_t)r;
  }
  close(fd);
  *size = got;
  return p;
}

static void write_bin(const char *path, const void *p, size_t n) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) TEST_FAIL("open %s: %s", path, strerror(errno));
  if (n && write(fd, p, n) != (ssize_t)n) TEST_FAIL("write %s: %s", path, strerror(errno));
  close(fd);
}

static off_t file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? st.st_size : -1;
}

/* CRC32C (Castagnoli, reflected 0x82F63B78), bit by bit: independent of
 * the daemon's table or SSE4.2 code. */
static uint32_t crc32c_ref(const uint8_t *p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int b = 0; b < 8; b++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
  }
  return ~c;
}

static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Ticks in a frame's payload: an int64 receive time, then msgpack objects. */
static uint64_t payload_ticks(const uint8_t *p, size_t n) {
  if (n < 8) TEST_FAIL("a frame payload of %zu bytes, want at least the 8 of the receive time", n);
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  uint64_t k = 0;
  while (off < n - 8 &&
         msgpack_unpack_next(&u, (const char *)p + 8, n - 8, &off) == MSGPACK_UNPACK_SUCCESS)
    k++;
  msgpack_unpacked_destroy(&u);
  if (off != n - 8) TEST_FAIL("a frame payload with %zu bytes that are not msgpack", n - 8 - off);
  return k;
}

struct frame {
  size_t off, len; /* len: payload bytes */
  uint64_t ticks;
};

struct segment {
  char path[512];
  uint8_t *data;
  size_t size;
  struct frame *f;
  size_t n;
  uint64_t ticks;
};

/* Reads a segment and checks its format strictly: the header, then whole
 * frames whose CRC32C matches, to the last byte. */
static void parse_segment(const char *path, struct segment *s) {
  memset(s, 0, sizeof *s);
  FMT(s->path, "%s", path);
  s->data = read_bin(path, &s->size);
  if (!s->data) TEST_FAIL("open %s: %s", path, strerror(errno));
  if (s->size < SEGMENT_HEADER || memcmp(s->data, "TKSJRNL1", 8) != 0)
    TEST_FAIL("%s: no \"TKSJRNL1\" header (%zu bytes)", path, s->size);
  size_t cap = 0;
  for (size_t off = SEGMENT_HEADER; off < s->size;) {
    if (s->size - off < FRAME_HEADER)
      TEST_FAIL("%s: %zu stray bytes at %zu", path, s->size - off, off);
    uint32_t len = le32(s->data + off), crc = le32(s->data + off + 4);
    if (len > s->size - off - FRAME_HEADER)
      TEST_FAIL("%s: frame at %zu: length %u runs past the end (%zu)", path, off, len, s->size);
    uint32_t want = crc32c_ref(s->data + off + FRAME_HEADER, len);
    if (crc != want)
      TEST_FAIL("%s: frame at %zu: CRC %08x, the CRC32C of its payload is %08x", path, off, crc,
                want);
    if (s->n == cap) {
      s->f = realloc(s->f, (cap = cap ? cap * 2 : 64) * sizeof *s->f);
      if (!s->f) TEST_FAIL("out of memory");
    }
    s->f[s->n] = (struct frame){off, len, payload_ticks(s->data + off + FRAME_HEADER, len)};
    s->ticks += s->f[s->n].ticks;
    s->n++;
    off += FRAME_HEADER + len;
  }
}

static void segment_finish(struct segment *s) {
  free(s->data);
  free(s->f);
}

/* Ticks in the frames that start before offset `end`. */
static uint64_t ticks_before(const struct segment *s, size_t end) {
  uint64_t n = 0;
  for (size_t i = 0; i < s->n && s->f[i].off + FRAME_HEADER + s->f[i].len <= end; i++)
    n += s->f[i].ticks;
  return n;
}

/* True if one line of text contains both words (w2 may be NULL), each as
 * a whole word where it is a number (not part of a longer number). */
static bool line_with(const char *text, const char *w1, const char *w2) {
  for (const char *line = text; line && *line;) {
    const char *nl = strchr(line, '\n');
    size_t ll = nl ? (size_t)(nl - line) : strlen(line);
    const char *words[2] = {w1, w2};
    bool all = true;
    for (int i = 0; i < 2 && all; i++) {
      if (!words[i]) continue;
      size_t wl = strlen(words[i]);
      bool found = false;
      for (const char *p = line; (p = memmem(p, ll - (size_t)(p - line), words[i], wl)); p++) {
        bool digit = words[i][0] >= '0' && words[i][0] <= '9';
        if (!digit || ((p == line || p[-1] < '0' || p[-1] > '9') &&
                       (p + wl == line + ll || p[wl] < '0' || p[wl] > '9'))) {
          found = true;
          break;
        }
      }
      all = found;
    }
    if (all) return true;
    line = nl ? nl + 1 : NULL;
  }
  return false;
}

/* A journal of one segment in dir: 60 ticks in one write, then four writes
 * of one tick each, each waited for so that it is a frame of its own. */
#define MADE_TICKS 64
static void make_journal(const char *dir, struct segment *s) {
  struct tks_daemon g;
  start_on(&g, dir, "  fsync: always\n");
  send_ticks(&g, 4, 0, 0, 60, 60);
  for (uint64_t i = 60; i < MADE_TICKS; i++) send_ticks(&g, 4, 0, i, i + 1, i + 1);
  ASSERT_U64_EQ(sync_durable(&g), MADE_TICKS);
  stop_expect_0(&g);
  daemon_cleanup(&g);
  char names[4][64], path[512];
  ASSERT_EQ(list_segments(dir, names, 4), 1);
  FMT(path, "%s/%s", dir, names[0]);
  parse_segment(path, s);
  ASSERT_U64_EQ(s->ticks, MADE_TICKS);
  if (s->n < 5) TEST_FAIL("%s: %zu frames, want at least 5 (one per write)", path, s->n);
  for (size_t i = s->n - 4; i < s->n; i++) ASSERT_U64_EQ(s->f[i].ticks, 1);
}

/* Puts bytes into dir/name (dir cleared first). */
static void place_segment(const char *dir, const char *name, const void *p, size_t n) {
  clear_dir(dir);
  char path[512];
  FMT(path, "%s/%s", dir, name);
  write_bin(path, p, n);
}

static const char *base_name(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

/* The daemon's log from byte `from` on. */
static char *log_since(const struct tks_daemon *d, size_t from) {
  char *log = daemon_log(d);
  size_t len = strlen(log);
  char *part = strdup(log + (from < len ? from : len));
  free(log);
  if (!part) TEST_FAIL("out of memory");
  return part;
}

static size_t log_len(const struct tks_daemon *d) {
  off_t n = file_size(d->log);
  return n < 0 ? 0 : (size_t)n;
}

/* Starts d on a journal dir that must be refused: exit 1, nothing listening,
 * a log line naming the file and the offset, and the segment as it was. */
static void expect_refused(struct tks_daemon *d, const char *dir, const char *name,
                           const uint8_t *bytes, size_t n, size_t offset, const char *what) {
  size_t from = log_len(d);
  daemon_spawn(d, NULL);
  int code = daemon_wait_exit(d, HARNESS_READY_MS);
  char *log = log_since(d, from);
  if (code != 1)
    TEST_FAIL("%s: exit %d, want 1 (-1: still running after %d ms); log:\n%s", what, code,
              HARNESS_READY_MS, log);
  char off[32];
  FMT(off, "%zu", offset);
  if (!line_with(log, name, off))
    TEST_FAIL("%s: no log line names both %s and offset %s; log:\n%s", what, name, off, log);
  free(log);
  ASSERT_EQ(access(d->sock, F_OK), -1);
  char path[512];
  FMT(path, "%s/%s", dir, name);
  size_t size;
  uint8_t *now = read_bin(path, &size);
  if (!now || size != n || memcmp(now, bytes, n) != 0)
    TEST_FAIL("%s: the refused segment was changed (%zu bytes, were %zu)", what, now ? size : 0, n);
  free(now);
  if (dir_has(dir, ".corrupt-"))
    TEST_FAIL("%s: a side file was written though the start was refused", what);
}

/* ==================================================================== */
/* sync */

TEST(crc32c_of_the_test_matches_the_standard_check_value) {
  ASSERT_EQ(crc32c_ref((const uint8_t *)"123456789", 9), 0xE3069283u);
}

static void sync_after_n(const char *keys, bool durable_alone) {
  struct tks_daemon d;
  start_with(&d, keys);
  ASSERT_U64_EQ(sync_durable(&d), 0); /* nothing yet: answered at once */
  const uint64_t n = 5000;
  send_ticks(&d, 4, 0, 0, n, n);
  if (!durable_alone) ASSERT_U64_EQ(daemon_stat(&d, "ticks.durable"), 0); /* fsync never */
  ASSERT_U64_EQ(sync_durable(&d), n);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.durable"), n);
  ASSERT_U64_EQ(daemon_stat(&d, "journal.written_ticks"), n);
  ASSERT(daemon_stat(&d, "journal.fsyncs") >= 1);
  ASSERT(daemon_stat(&d, "journal.frames_written") >= 1);
  ASSERT_U64_EQ(daemon_stat(&d, "journal.write_errors"), 0);
  char v[64];
  stat_str(&d, "journal.state", v, sizeof v);
  ASSERT_STR_EQ(v, "ok");
  /* A second batch: always and interval make it durable without a sync. */
  send_ticks(&d, 4, 0, n, 2 * n, 2 * n);
  if (durable_alone) {
    uint64_t got = daemon_wait_stat(&d, "ticks.durable", 2 * n, 5000);
    if (got != 2 * n)
      TEST_FAIL("ticks.durable %llu, want %llu without a sync", (unsigned long long)got,
                (unsigned long long)(2 * n));
  } else {
    sleep_ms(300);
    ASSERT_U64_EQ(daemon_stat(&d, "ticks.durable"), n); /* never: only a sync fsyncs */
  }
  ASSERT_U64_EQ(sync_durable(&d), 2 * n);
  stop_expect_0(&d);
  daemon_cleanup(&d);
}

TEST(sync_answers_once_every_accepted_tick_is_durable_under_fsync_always) {
  sync_after_n("  fsync: always\n", true);
}

TEST(sync_answers_once_every_accepted_tick_is_durable_under_fsync_interval) {
  sync_after_n("  fsync: interval\n  fsync_interval: 200ms\n", true);
}

TEST(sync_answers_once_every_accepted_tick_is_durable_under_fsync_never) {
  sync_after_n("  fsync: never\n", false);
}

TEST(sync_without_a_journal_is_an_error) {
  struct tks_daemon d;
  daemon_start(&d, "journal:\n  enabled: false\n");
  send_ticks(&d, 2, 0, 0, 100, 100);
  int fd = control_connect(d.sock);
  ASSERT(fd >= 0);
  ASSERT_EQ(send_all(fd, "sync\nping\n", 10), 0);
  char *r = read_until(fd, "\n\n", 2, 5000, NULL);
  close(fd);
  /* One {"error":...} line, then the ping's answer: the connection goes on. */
  char *end = strstr(r, "\n\n");
  if (strncmp(r, "{\"error\":\"", 10) != 0 || !end || memchr(r, '\n', (size_t)(end - r)) ||
      strcmp(end + 2, "{\"ok\":true}\n\n") != 0)
    TEST_FAIL(
        "sync then ping without a journal answered \"%s\", want one {\"error\":...} line, then "
        "{\"ok\":true}",
        r);
  free(r);
  ASSERT_U64_EQ(daemon_stat(&d, "journal.enabled"), 0);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.durable"), 0);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), 100);
  stop_expect_0(&d);
  daemon_cleanup(&d);
}

/* Sends "sync, stats text, ping, sync, ping" on one connection, shuts the
 * sending side, and checks every answer comes once, in order, before the
 * daemon closes; n is the durable count every sync must report. */
static void expect_answers_in_order(struct tks_daemon *d, uint64_t n, const char *when) {
  int fd = control_connect(d->sock);
  ASSERT(fd >= 0);
  const char req[] = "sync\nstats text\nping\nsync\nping\n";
  ASSERT_EQ(send_all(fd, req, sizeof req - 1), 0);
  shutdown(fd, SHUT_WR); /* every request read is still answered */
  bool eof = false;
  char *all = read_until(fd, "", 0, SYNC_MS, &eof);
  close(fd);
  int code = daemon_wait_exit(d, 200);
  if (code >= 0) {
    char *log = daemon_log(d);
    TEST_FAIL(
        "%s: the daemon died (exit %d) answering \"sync\\nstats text\\nping\\nsync\\nping\\n\" "
        "on one connection; answers: \"%.200s\"; log tail:\n%s",
        when, code, all, strlen(log) > 1500 ? log + strlen(log) - 1500 : log);
  }
  if (!eof) TEST_FAIL("%s: the connection was not closed after the answers: \"%.300s\"", when, all);
  char want_sync[64];
  FMT(want_sync, "{\"ok\":true,\"durable\":%llu}\n\n", (unsigned long long)n);
  size_t sl = strlen(want_sync);
  if (strncmp(all, want_sync, sl) != 0)
    TEST_FAIL("%s: first answer is not the sync's: \"%.300s\"", when, all);
  char *stats = all + sl;
  char *end = strstr(stats, "\n\n");
  if (!end) TEST_FAIL("%s: no stats answer after the sync: \"%.300s\"", when, stats);
  end[1] = '\0';
  char v[64];
  if (stats_text_lookup(stats, "ticks.durable", v, sizeof v) < 0)
    TEST_FAIL("%s: second answer is not `stats text`: \"%.300s\"", when, stats);
  ASSERT_U64_EQ(strtoull(v, NULL, 10), n); /* answered after the sync, so it sees it */
  char want_rest[160];
  FMT(want_rest, "{\"ok\":true}\n\n%s{\"ok\":true}\n\n", want_sync);
  if (strcmp(end + 2, want_rest) != 0)
    TEST_FAIL("%s: after sync and stats, got \"%.400s\", want \"%s\" (ping, sync, ping once each)",
              when, end + 2, want_rest);
  free(all);
}

TEST(requests_after_sync_on_one_connection_are_answered_in_order) {
  struct tks_daemon d;
  start_with(&d, "  fsync: never\n");
  /* A sync answered at once (nothing to wait for) ... */
  expect_answers_in_order(&d, 0, "nothing pending");
  /* ... and one that waits for the writer (fsync never: nothing is fsynced yet). */
  const uint64_t n = 20000;
  send_ticks(&d, 4, 0, 0, n, n);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.durable"), 0);
  expect_answers_in_order(&d, n, "sync waiting for an fsync");
  stop_expect_0(&d);
  daemon_cleanup(&d);
}

TEST(stats_name_every_journal_figure) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  send_ticks(&d, 2, 0, 0, 10, 10);
  char *json = ask(&d, "stats", 5000);
  char *flat = json_flatten(json);
  if (!flat) TEST_FAIL("stats is not JSON: \"%.300s\"", json);
  static const char *const names[] = {"ticks.durable",
                                      "journal.enabled",
                                      "journal.state",
                                      "journal.last_error",
                                      "journal.bytes",
                                      "journal.segments",
                                      "journal.frames_written",
                                      "journal.fsyncs",
                                      "journal.write_errors",
                                      "journal.queued_bytes",
                                      "journal.last_fsync_age_seconds",
                                      "journal.written_ticks",
                                      "journal.replayed_ticks",
                                      "journal.replay_rejected",
                                      "journal.replay_seconds",
                                      "journal.truncated_bytes",
                                      "ingest.held",
                                      "ingest.holds",
                                      "ticks.rejected_by_reason.journal_error"};
  char v[256];
  for (size_t i = 0; i < TKS_ARRAY_SIZE(names); i++)
    if (stats_text_lookup(flat, names[i], v, sizeof v) < 0) TEST_FAIL("no %s in `stats`", names[i]);
  ASSERT_EQ(stats_text_lookup(flat, "journal.enabled", v, sizeof v), 0);
  ASSERT_STR_EQ(v, "1");
  ASSERT_EQ(stats_text_lookup(flat, "journal.state", v, sizeof v), 0);
  ASSERT_STR_EQ(v, "ok");
  ASSERT_EQ(stats_text_lookup(flat, "journal.last_error", v, sizeof v), 0);
  if (!no_error(v)) TEST_FAIL("journal.last_error \"%s\" with nothing failing", v);
  ASSERT_EQ(stats_text_lookup(flat, "ingest.held", v, sizeof v), 0);
  ASSERT_STR_EQ(v, "0");
  free(flat);
  free(json);
  /* journal.bytes is what the segment files hold. */
  sync_durable(&d);
  char jdir[128], names2[8][64], path[512];
  FMT(jdir, "%s/journal", d.dir);
  int n = list_segments(jdir, names2, 8);
  ASSERT(n >= 1);
  uint64_t sum = 0;
  for (int i = 0; i < n; i++) {
    FMT(path, "%s/%s", jdir, names2[i]);
    sum += (uint64_t)file_size(path);
  }
  ASSERT_U64_EQ(daemon_stat(&d, "journal.bytes"), sum);
  ASSERT_U64_EQ(daemon_stat(&d, "journal.segments"), (uint64_t)n);
  stop_expect_0(&d);
  daemon_cleanup(&d);
}

/* ==================================================================== */
/* restart */

TEST_TIMEOUT(restart_replays_every_tick_exactly_once, 120) {
  char tmp[64], jdir[128];
  harness_mkdtemp(tmp, sizeof tmp);
  FMT(jdir, "%s/journal", tmp);
  const int nsym = 8;
  const uint64_t n = 24000;
  struct tks_daemon a, b;
  start_on(&a, jdir, NULL);
  send_ticks(&a, nsym, 0, 0, n / 2, n / 2);
  send_ticks(&a, nsym, 0, n / 2, n, n);
  ASSERT_U64_EQ(sync_durable(&a), n);
  stop_expect_0(&a);
  daemon_cleanup(&a);

  /* Another daemon, its own temp dir, the same journal. */
  start_on(&b, jdir, NULL);
  ASSERT_U64_EQ(daemon_stat(&b, "ticks.stored"), n);
  ASSERT_U64_EQ(daemon_stat(&b, "journal.replayed_ticks"), n);
  ASSERT_U64_EQ(daemon_stat(&b, "journal.replay_rejected"), 0);
  ASSERT_U64_EQ(daemon_stat(&b, "ticks.durable"), n);
  ASSERT_U64_EQ(daemon_stat(&b, "journal.truncated_bytes"), 0);
  ASSERT_U64_EQ(daemon_stat(&b, "symbols.count"), (uint64_t)nsym);
  ASSERT_U64_EQ(sync_durable(&b), n);
  for (int s = 0; s < nsym; s++) {
    uint64_t per[MAX_ROUNDS];
    ASSERT_U64_EQ(check_symbol(&b, s, per), n / nsym);
  }
  /* The progress line: "replay: N ticks from F frames in S segments in T s (R ticks/s)". */
  char *log = daemon_log(&b);
  char key[64];
  FMT(key, "replay: %llu ticks from ", (unsigned long long)n);
  const char *p = strstr(log, key);
  unsigned long long frames, segs;
  double secs, rate;
  if (!p || sscanf(p + strlen(key), "%llu frames in %llu segments in %lf s (%lf ticks/s)", &frames,
                   &segs, &secs, &rate) != 4)
    TEST_FAIL("no \"%sF frames in S segments in T s (R ticks/s)\" line; log:\n%s", key, log);
  ASSERT(frames >= 2 && segs >= 1);
  free(log);

  /* More ticks on top, then a third start: the old ones still once. */
  send_ticks(&b, nsym, 1, 0, 800, 800);
  ASSERT_U64_EQ(sync_durable(&b), n + 800);
  stop_expect_0(&b);
  restart(&b);
  ASSERT_U64_EQ(daemon_stat(&b, "ticks.stored"), n + 800);
  ASSERT_U64_EQ(daemon_stat(&b, "journal.replayed_ticks"), n + 800);
  for (int s = 0; s < nsym; s++) {
    uint64_t per[MAX_ROUNDS];
    ASSERT_U64_EQ(check_symbol(&b, s, per), n / nsym + 100);
    ASSERT_U64_EQ(per[0], n / nsym);
    ASSERT_U64_EQ(per[1], 100);
  }
  stop_expect_0(&b);
  daemon_cleanup(&b);
}

TEST_TIMEOUT(nothing_is_served_before_the_replay_is_done, 120) {
  struct tks_daemon d;
  start_with(&d, NULL);
  const uint64_t n = 400000; /* ~23 MB of journal: a replay that takes a while */
  send_ticks(&d, 4, 0, 0, n, n);
  ASSERT_U64_EQ(sync_durable(&d), n);
  stop_expect_0(&d);
  size_t from = log_len(&d);
  daemon_spawn(&d, NULL);
  /* Until ping answers as ready, every answer is a loading one; the first
   * ready ping: the store must already be whole. */
  uint64_t deadline = now_ms() + HARNESS_READY_MS;
  for (;;) {
    fail_if_dead_early(&d);
    int fd = control_connect(d.sock);
    if (fd >= 0) {
      bool complete = false;
      char *r = NULL;
      if (send_all(fd, "ping\n", 5) == 0) r = read_response(fd, 2000, &complete);
      if (r && complete && strcmp(r, "{\"ok\":true,\"state\":\"loading\"}\n\n") == 0) {
        free(r);
        r = NULL;
        if (send_all(fd, "last J00 1\n", 11) == 0) r = read_response(fd, 2000, &complete);
        if (!r || !complete) TEST_FAIL("`last` unanswered");
        /* Refused as loading, or loading has ended since the ping: then the
         * store is whole. */
        if (!strstr(r, "{\"error\":\"loading\",\"detail\":"))
          ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), n);
        free(r);
        r = NULL;
      }
      close(fd);
      bool ok = r && strcmp(r, "{\"ok\":true}\n\n") == 0;
      free(r);
      if (ok) break;
    }
    if (now_ms() > deadline)
      TEST_FAIL("no ready ping answered within %d ms of the start", HARNESS_READY_MS);
    sleep_ms(1);
  }
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), n);
  ASSERT_U64_EQ(daemon_stat(&d, "journal.replayed_ticks"), n);
  /* And in the log: both sockets bound before the replay, ingest served
   * after it. */
  char *log = log_since(&d, from);
  const char *bound = strstr(log, "ingest bound to ");
  const char *control = strstr(log, "control socket");
  const char *replay = strstr(log, "replay: 400000 ticks from ");
  const char *ingest = strstr(log, "ingest listening");
  if (!bound || !control || !replay || !ingest || bound > replay || control > replay ||
      ingest < replay)
    TEST_FAIL("want the sockets bound before the replay line, ingest served after; log:\n%s", log);
  free(log);
  stop_expect_0(&d);
  daemon_cleanup(&d);
}

/* A tick with an undeclared field, the k-th of symbol sym. */
static void encode_tick_with_venue(struct tks_buf *b, int sym, int64_t k) {
  char ticker[16];
  FMT(ticker, "J%02d", sym);
  struct tks_kv kv[5] = {
      {"ticker", {.type = TKS_V_STR, .v.s = {ticker, strlen(ticker)}}},
      {"ts", {.type = TKS_V_INT, .v.i = tick_ts(sym, 0, k)}},
      {"price", {.type = TKS_V_F64, .v.f = tick_price(sym, k)}},
      {"volume", {.type = TKS_V_INT, .v.i = tick_volume(sym, k)}},
      {"venue", {.type = TKS_V_STR, .v.s = {"XNAS", 4}}},
  };
  if (tks_encode_map(b, kv, 5) != 0) TEST_FAIL("out of memory");
}

TEST_TIMEOUT(ticks_the_config_now_refuses_are_counted_at_replay_and_kept_in_the_journal, 60) {
  char tmp[64], jdir[128];
  harness_mkdtemp(tmp, sizeof tmp);
  FMT(jdir, "%s/journal", tmp);
  struct tks_daemon d;
  char yaml[1024], fallback[1024];
  journal_yaml(yaml, sizeof yaml, jdir, NULL);
  FMT(fallback, "%sstore:\n  mode: fallback\n", yaml);
  daemon_prepare(&d, NULL, fallback);
  daemon_spawn(&d, NULL);
  daemon_wait_ready(&d);
  /* 70 plain ticks and 30 with an undeclared field, kept by fallback mode. */
  struct tks_buf b;
  tks_buf_init(&b);
  for (int64_t k = 0; k < 100; k++) {
    if (k % 10 < 3)
      encode_tick_with_venue(&b, 0, k);
    else
      encode_tick(&b, 0, 0, k);
  }
  int fd = daemon_connect_ingest(&d);
  ASSERT_EQ(send_all(fd, b.data, b.len), 0);
  daemon_expect_stat(&d, "ticks.accepted", 100, 10000);
  close(fd);
  tks_buf_finish(&b);
  ASSERT_U64_EQ(sync_durable(&d), 100);
  stop_expect_0(&d);
  /* Slotted now: the 30 are refused at replay, counted, and the daemon starts. */
  daemon_write_config(&d, NULL, yaml);
  restart(&d);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), 70);
  ASSERT_U64_EQ(daemon_stat(&d, "journal.replayed_ticks"), 70);
  ASSERT_U64_EQ(daemon_stat(&d, "journal.replay_rejected"), 30);
  stop_expect_0(&d);
  /* Fallback again: the journal still has them all. */
  daemon_write_config(&d, NULL, fallback);
  restart(&d);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), 100);
  ASSERT_U64_EQ(daemon_stat(&d, "journal.replay_rejected"), 0);
  stop_expect_0(&d);
  daemon_cleanup(&d);
}

/* Streams on nconn non-blocking connections, each its own symbol with
 * increasing ts, until told to stop; what was handed to send() is counted. */
struct streamer {
  int fd;
  int sym, round;
  int64_t next_k;   /* next tick to encode */
  struct tks_buf b; /* encoded, not all sent */
  size_t off;
  bool dead;
};

static void streamer_pump(struct streamer *s) {
  if (s->dead) return;
  if (s->off == s->b.len) {
    s->b.len = 0;
    s->off = 0;
    for (int i = 0; i < 500; i++) encode_tick(&s->b, s->sym, s->round, s->next_k++);
  }
  ssize_t w = send(s->fd, s->b.data + s->off, s->b.len - s->off, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (w > 0)
    s->off += (size_t)w;
  else if (w < 0 && errno != EAGAIN && errno != EINTR)
    s->dead = true; /* the daemon hung up on its way out */
}

TEST_TIMEOUT(sigterm_while_streaming_loses_nothing_that_was_read, 120) {
  struct tks_daemon d;
  start_with(&d, "  fsync: interval\n  fsync_interval: 50ms\n");
  enum { NCONN = 4 };
  struct streamer st[NCONN];
  for (int c = 0; c < NCONN; c++) {
    st[c] = (struct streamer){.fd = daemon_connect_ingest(&d), .sym = c};
    tks_buf_init(&st[c].b);
  }
  /* SIGTERM once 60000 ticks are in, or after 10 s in any case. */
  uint64_t start = now_ms(), last_check = 0, lower = 0, signalled_at = 0;
  bool signalled = false;
  while (daemon_wait_exit(&d, 0) < 0) {
    uint64_t now = now_ms();
    if (!signalled && now - last_check > 20) {
      uint64_t v;
      if (daemon_stat_get(&d, "ticks.accepted", &v) == 0) lower = v;
      last_check = now_ms();
      if (lower >= 60000 || last_check - start > 10000) {
        kill(d.pid, SIGTERM);
        signalled = true;
        signalled_at = now_ms();
      }
    }
    if (signalled && now_ms() - signalled_at > HARNESS_STOP_MS) {
      daemon_stop(&d, SIGKILL);
      TEST_FAIL("still running %d ms after SIGTERM with clients streaming", HARNESS_STOP_MS);
    }
    for (int c = 0; c < NCONN; c++) streamer_pump(&st[c]);
  }
  ASSERT_EQ(daemon_wait_exit(&d, 0), 0);
  for (int c = 0; c < NCONN; c++) {
    close(st[c].fd);
    tks_buf_finish(&st[c].b);
  }
  /* The truth: what the daemon says it accepted in its last line. */
  char *log = daemon_log(&d);
  const char *p = strstr(log, "stopped: ");
  unsigned long long accepted = 0;
  bool have_accepted = p && sscanf(p, "stopped: %llu ticks accepted", &accepted) == 1;
  free(log);

  restart(&d);
  uint64_t stored = daemon_stat(&d, "ticks.stored");
  uint64_t sum = 0;
  for (int c = 0; c < NCONN; c++) {
    uint64_t per[MAX_ROUNDS];
    sum += check_symbol(&d, c, per); /* a prefix of each stream, none twice */
  }
  fprintf(
      stderr,
      "  accepted before SIGTERM >= %llu (last stats), %s %llu (log); after restart %llu stored\n",
      (unsigned long long)lower, have_accepted ? "=" : "?", accepted, (unsigned long long)stored);
  ASSERT_U64_EQ(sum, stored);
  if (stored < lower)
    TEST_FAIL("%llu ticks after the restart, but %llu were accepted before SIGTERM",
              (unsigned long long)stored, (unsigned long long)lower);
  if (have_accepted) ASSERT_U64_EQ(stored, accepted);
  ASSERT_U64_EQ(daemon_stat(&d, "journal.truncated_bytes"),
                0); /* a clean stop leaves no torn tail */
  stop_expect_0(&d);
  daemon_cleanup(&d);
}

/* ---- the crash test ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void) { /* xorshift64*: seeded, so a failure replays */
  uint64_t x = rng_state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  rng_state = x;
  return x * UINT64_C(0x2545F4914F6CDD1D);
}

struct crash_stream {
  int fd, nsym, round;
  atomic_bool stop;
  uint64_t sent; /* ticks handed to send() (a bound on what may come back) */
  pthread_t thread;
};

static void *crash_stream_main(void *arg) {
  struct crash_stream *cs = arg;
  struct tks_buf b;
  tks_buf_init(&b);
  uint64_t i = 0;
  while (!atomic_load(&cs->stop)) {
    b.len = 0;
    encode_ticks(&b, cs->nsym, cs->round, i, i + 100);
    i += 100;
    cs->sent = i;
    if (send_all(cs->fd, b.data, b.len) != 0) break; /* killed */
    sleep_ms(1);                                     /* at most ~100k ticks/s */
  }
  tks_buf_finish(&b);
  return NULL;
}

/* Two figures from one `stats text`. ticks.durable is emitted before the
 * journal section, so within one answer durable <= written_ticks holds
 * even though ticks keep coming between the two reads. */
static void durable_and_written(const struct tks_daemon *d, uint64_t *durable, uint64_t *written) {
  char *text = ask(d, "stats text", 10000);
  char v[64];
  if (stats_text_lookup(text, "ticks.durable", v, sizeof v) < 0) TEST_FAIL("no ticks.durable");
  *durable = strtoull(v, NULL, 10);
  if (stats_text_lookup(text, "journal.written_ticks", v, sizeof v) < 0)
    TEST_FAIL("no journal.written_ticks");
  *written = strtoull(v, NULL, 10);
  free(text);
}

TEST_TIMEOUT(ticks_arriving_during_a_sync_are_not_durable_before_they_are_written, 120) {
  static const char *const policies[] = {"  fsync: always\n", "  fsync: never\n"};
  for (int p = 0; p < 2; p++) {
    struct tks_daemon d;
    start_with(&d, policies[p]);
    struct crash_stream cs = {.fd = daemon_connect_ingest(&d), .nsym = 4, .round = 0};
    atomic_init(&cs.stop, false);
    pthread_create(&cs.thread, NULL, crash_stream_main, &cs);
    daemon_wait_stat(&d, "ticks.accepted", 1000, 10000);
    /* Rounds of: a sync asked (not waited for), stats sampled while it is
     * in flight and ticks stream in, then its answer. */
    unsigned samples = 0, syncs = 0;
    uint64_t until = now_ms() + 3000;
    for (int round = 0; round < 100 && now_ms() < until; round++) {
      int sfd = control_connect(d.sock);
      ASSERT(sfd >= 0);
      ASSERT_EQ(send_all(sfd, "sync\n", 5), 0);
      for (int k = 0; k < 5; k++, samples++) {
        uint64_t durable, written;
        durable_and_written(&d, &durable, &written);
        if (durable > written)
          TEST_FAIL("fsync %s: ticks.durable %llu over journal.written_ticks %llu (sample %u)",
                    p ? "never" : "always", (unsigned long long)durable,
                    (unsigned long long)written, samples);
      }
      bool complete;
      char *r = read_response(sfd, SYNC_MS, &complete);
      close(sfd);
      if (!complete) TEST_FAIL("no answer to sync: \"%s\"", r);
      uint64_t said = parse_sync(r);
      free(r);
      uint64_t durable, written;
      durable_and_written(&d, &durable, &written);
      if (said > written || said > durable)
        TEST_FAIL("fsync %s: sync said %llu durable; afterwards written_ticks %llu, durable %llu",
                  p ? "never" : "always", (unsigned long long)said, (unsigned long long)written,
                  (unsigned long long)durable);
      syncs++;
    }
    atomic_store(&cs.stop, true);
    pthread_join(cs.thread, NULL);
    close(cs.fd);
    printf("  fsync %s: %u syncs, %u samples while %llu ticks streamed\n", p ? "never" : "always",
           syncs, samples, (unsigned long long)cs.sent);
    ASSERT(syncs > 0);
    stop_expect_0(&d);
    daemon_cleanup(&d);
  }
}

TEST_TIMEOUT(kill_9_after_sync_keeps_every_durable_tick_none_twice, 240) {
  const char *seed = getenv("JOURNAL_SEED");
  rng_state = seed ? strtoull(seed, NULL, 0) : 20240601;
  if (!rng_state) rng_state = 1;
  fprintf(stderr, "  seed %llu (JOURNAL_SEED=N to replay)\n", (unsigned long long)rng_state);
  /* Segments of 1 MiB: the kills also land around rotations. */
  static const char *const policies[] = {
      "  fsync: always\n  segment_size: 1MiB\n",
      "  fsync: interval\n  fsync_interval: 50ms\n  segment_size: 1MiB\n",
      "  fsync: never\n  segment_size: 1MiB\n", "  fsync: interval\n  segment_size: 1MiB\n",
      "  fsync: always\n  segment_size: 1MiB\n"};
  static const char *const labels[] = {"always", "interval 50ms", "never", "interval 1s", "always"};
  enum { ROUNDS = 5, NSYM = 4 };
  char tmp[64], jdir[128], yaml[1024];
  harness_mkdtemp(tmp, sizeof tmp);
  FMT(jdir, "%s/journal", tmp);
  struct tks_daemon d;
  journal_yaml(yaml, sizeof yaml, jdir, policies[0]);
  daemon_prepare(&d, NULL, yaml);
  uint64_t durable[ROUNDS], replayed[ROUNDS + 1], sent[ROUNDS], truncated[ROUNDS + 1];
  for (int r = 0; r <= ROUNDS; r++) {
    journal_yaml(yaml, sizeof yaml, jdir, policies[r % ROUNDS]);
    daemon_write_config(&d, NULL, yaml);
    restart(&d);
    replayed[r] = daemon_stat(&d, "journal.replayed_ticks");
    truncated[r] = daemon_stat(&d, "journal.truncated_bytes");
    ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), replayed[r]);
    if (r > 0 && replayed[r] < durable[r - 1])
      TEST_FAIL("round %d: %llu ticks replayed, but sync counted %llu durable before the kill -9",
                r, (unsigned long long)replayed[r], (unsigned long long)durable[r - 1]);
    if (r == ROUNDS) break;
    struct crash_stream cs = {.fd = daemon_connect_ingest(&d), .nsym = NSYM, .round = r};
    atomic_init(&cs.stop, false);
    pthread_create(&cs.thread, NULL, crash_stream_main, &cs);
    sleep_ms(50 + (int)(rng() % 600));
    durable[r] = sync_durable(&d);
    if (durable[r] < replayed[r])
      TEST_FAIL("round %d: sync says %llu durable, below the %llu replayed", r,
                (unsigned long long)durable[r], (unsigned long long)replayed[r]);
    sleep_ms(50 + (int)(rng() % 600));
    int code = daemon_stop(&d, SIGKILL);
    ASSERT_EQ(code, 128 + SIGKILL);
    atomic_store(&cs.stop, true);
    pthread_join(cs.thread, NULL);
    close(cs.fd);
    sent[r] = cs.sent;
  }
  /* Every tick counted durable is back, none twice, no holes. */
  uint64_t per_round[ROUNDS] = {0}, total = 0;
  for (int s = 0; s < NSYM; s++) {
    uint64_t per[MAX_ROUNDS];
    total += check_symbol(&d, s, per);
    for (int r = 0; r < ROUNDS; r++) per_round[r] += per[r];
  }
  uint64_t stored = daemon_stat(&d, "ticks.stored");
  fprintf(stderr,
          "  round  fsync               sent     durable(sync)  replayed next  kept of round  cut "
          "bytes\n");
  for (int r = 0; r < ROUNDS; r++) {
    fprintf(stderr, "  %5d  %-18s %8llu  %13llu  %13llu  %13llu  %9llu\n", r, labels[r],
            (unsigned long long)sent[r], (unsigned long long)durable[r],
            (unsigned long long)replayed[r + 1], (unsigned long long)per_round[r],
            (unsigned long long)truncated[r + 1]);
    if (per_round[r] > sent[r])
      TEST_FAIL("round %d: %llu ticks back, only %llu sent", r, (unsigned long long)per_round[r],
                (unsigned long long)sent[r]);
  }
  fprintf(stderr,
          "  after the last start: %llu stored, %llu read back, last sync said %llu durable, "
          "%llu segments\n",
          (unsigned long long)stored, (unsigned long long)total,
          (unsigned long long)durable[ROUNDS - 1],
          (unsigned long long)daemon_stat(&d, "journal.segments"));
  ASSERT_U64_EQ(total, stored);
  ASSERT(stored >= durable[ROUNDS - 1]);
  stop_expect_0(&d);
  daemon_cleanup(&d);
}

/* ==================================================================== */
/* torn and corrupt tails */

/* Starts d (configured on dir) on dir/name holding bytes[0..cut); checks
 * that whole frames are kept and a partial one cut, into its side file. */
static void expect_cut(struct tks_daemon *d, const char *dir, const struct segment *s, size_t cut,
                       const uint8_t *bytes) {
  const char *name = base_name(s->path);
  place_segment(dir, name, bytes, cut);
  /* The last frame boundary at or before cut. */
  size_t good = SEGMENT_HEADER;
  for (size_t i = 0; i < s->n && s->f[i].off + FRAME_HEADER + s->f[i].len <= cut; i++)
    good = s->f[i].off + FRAME_HEADER + s->f[i].len;
  uint64_t want_ticks = ticks_before(s, cut);
  size_t from = log_len(d);
  daemon_spawn(d, NULL);
  daemon_wait_ready(d);
  uint64_t stored = daemon_stat(d, "ticks.stored");
  uint64_t cut_bytes = daemon_stat(d, "journal.truncated_bytes");
  stop_expect_0(d);
  char *log = log_since(d, from);
  if (stored != want_ticks || cut_bytes != cut - good)
    TEST_FAIL(
        "cut at %zu (frames end at %zu): %llu ticks and %llu bytes truncated, want %llu and %zu; "
        "log:\n%s",
        cut, good, (unsigned long long)stored, (unsigned long long)cut_bytes,
        (unsigned long long)want_ticks, cut - good, log);
  char path[512], side[600];
  FMT(path, "%s/%s", dir, name);
  FMT(side, "%s.corrupt-%zu", path, good);
  if (file_size(path) != (off_t)good)
    TEST_FAIL("cut at %zu: the segment is %lld bytes after the start, want %zu", cut,
              (long long)file_size(path), good);
  if (cut > good) {
    size_t n;
    uint8_t *kept = read_bin(side, &n);
    if (!kept) TEST_FAIL("cut at %zu: no side file %s; log:\n%s", cut, side, log);
    if (n != cut - good || memcmp(kept, bytes + good, n) != 0)
      TEST_FAIL("cut at %zu: %s holds %zu bytes, want the %zu cut", cut, side, n, cut - good);
    free(kept);
    char off[32];
    FMT(off, "%zu", good);
    if (!line_with(log, name, off) || !strstr(log, "warn"))
      TEST_FAIL("cut at %zu: no warn line naming %s and offset %s; log:\n%s", cut, name, off, log);
  } else if (dir_has(dir, ".corrupt-")) {
    TEST_FAIL("cut at %zu, a frame boundary: a side file was written", cut);
  }
  free(log);
}

TEST_TIMEOUT(torn_tail_at_every_byte_of_the_last_frame_is_cut_under_truncate, 300) {
  char tmp[64], gen[128], work[128];
  harness_mkdtemp(tmp, sizeof tmp);
  FMT(gen, "%s/gen", tmp);
  FMT(work, "%s/work", tmp);
  struct segment s;
  make_journal(gen, &s);
  ASSERT_EQ(mkdir(work, 0750), 0);
  struct tks_daemon d;
  char yaml[1024];
  journal_yaml(yaml, sizeof yaml, work, NULL); /* on_corrupt: truncate, the default */
  daemon_prepare(&d, NULL, yaml);
  size_t last = s.f[s.n - 1].off, prev = s.f[s.n - 2].off;
  fprintf(stderr, "  last frame %zu..%zu, the one before from %zu\n", last, s.size, prev);
  /* A sample of the frame before the last ... */
  size_t sample[] = {prev + 1, prev + 4, prev + 8, prev + 9, (prev + last) / 2, last - 1};
  for (size_t i = 0; i < TKS_ARRAY_SIZE(sample); i++) expect_cut(&d, work, &s, sample[i], s.data);
  /* ... and every byte offset of the last: its start (a clean end), inside
   * its header, inside its payload, and the whole file. */
  unsigned starts = TKS_ARRAY_SIZE(sample);
  for (size_t cut = last; cut <= s.size; cut++, starts++) expect_cut(&d, work, &s, cut, s.data);
  fprintf(stderr, "  %u starts\n", starts);
  /* A side file left in the dir is not a segment: the next start replays
   * the same ticks and cuts nothing. */
  size_t mid = last + (s.size - last) / 2;
  expect_cut(&d, work, &s, mid, s.data);
  restart(&d);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), MADE_TICKS - 1);
  ASSERT_U64_EQ(daemon_stat(&d, "journal.truncated_bytes"), 0);
  stop_expect_0(&d);
  char side[600];
  FMT(side, "%s/%s.corrupt-%zu", work, base_name(s.path), last);
  ASSERT_EQ((long long)file_size(side), (long long)(mid - last));
  daemon_cleanup(&d);
  segment_finish(&s);
}

TEST_TIMEOUT(torn_tail_under_refuse_exits_1_naming_the_file_and_offset, 120) {
  char tmp[64], gen[128], work[128];
  harness_mkdtemp(tmp, sizeof tmp);
  FMT(gen, "%s/gen", tmp);
  FMT(work, "%s/work", tmp);
  struct segment s;
  make_journal(gen, &s);
  ASSERT_EQ(mkdir(work, 0750), 0);
  struct tks_daemon d;
  char yaml[1024];
  journal_yaml(yaml, sizeof yaml, work, "  on_corrupt: refuse\n");
  daemon_prepare(&d, NULL, yaml);
  size_t last = s.f[s.n - 1].off;
  const char *name = base_name(s.path);
  size_t cuts[] = {last + 1, last + 4, last + 8, last + 9, s.size - 1};
  for (size_t i = 0; i < TKS_ARRAY_SIZE(cuts); i++) {
    char what[64];
    FMT(what, "cut at %zu", cuts[i]);
    place_segment(work, name, s.data, cuts[i]);
    expect_refused(&d, work, name, s.data, cuts[i], last, what);
  }
  /* A cut at a frame boundary is no corruption: refuse starts. */
  place_segment(work, name, s.data, last);
  restart(&d);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), MADE_TICKS - 1);
  stop_expect_0(&d);
  daemon_cleanup(&d);
  segment_finish(&s);
}

/* A copy of the segment with bit `bit` of byte `at` flipped. */
static uint8_t *flipped(const struct segment *s, size_t at, int bit) {
  uint8_t *p = malloc(s->size);
  if (!p) TEST_FAIL("out of memory");
  memcpy(p, s->data, s->size);
  p[at] ^= (uint8_t)(1u << bit);
  return p;
}

TEST_TIMEOUT(flipped_bit_in_the_last_frame_is_cut_or_refused_by_policy, 120) {
  char tmp[64], gen[128], work[128];
  harness_mkdtemp(tmp, sizeof tmp);
  FMT(gen, "%s/gen", tmp);
  FMT(work, "%s/work", tmp);
  struct segment s;
  make_journal(gen, &s);
  ASSERT_EQ(mkdir(work, 0750), 0);
  size_t last = s.f[s.n - 1].off;
  const char *name = base_name(s.path);
  const struct {
    size_t at;
    int bit;
    const char *what;
  } flips[] = {
      {last + FRAME_HEADER + 12, 3, "a payload bit"},
      {s.size - 1, 0, "the last payload bit"},
      {last + FRAME_HEADER, 7, "a bit of the receive time"},
      {last + 4, 0, "a CRC bit"},
      {last + 0, 2, "a low length bit"},
      {last + 3, 6, "a high length bit (length over the maximum)"},
  };
  struct tks_daemon t, r;
  char yaml[1024];
  journal_yaml(yaml, sizeof yaml, work, NULL);
  daemon_prepare(&t, NULL, yaml);
  journal_yaml(yaml, sizeof yaml, work, "  on_corrupt: refuse\n");
  daemon_prepare(&r, NULL, yaml);
  for (size_t i = 0; i < TKS_ARRAY_SIZE(flips); i++) {
    uint8_t *bytes = flipped(&s, flips[i].at, flips[i].bit);
    /* truncate: the whole last frame is cut, and kept. */
    place_segment(work, name, bytes, s.size);
    size_t from = log_len(&t);
    daemon_spawn(&t, NULL);
    daemon_wait_ready(&t);
    uint64_t stored = daemon_stat(&t, "ticks.stored"),
             cut = daemon_stat(&t, "journal.truncated_bytes");
    stop_expect_0(&t);
    char *log = log_since(&t, from);
    if (stored != MADE_TICKS - 1 || cut != s.size - last)
      TEST_FAIL("%s flipped, truncate: %llu ticks, %llu bytes cut; want %d and %zu; log:\n%s",
                flips[i].what, (unsigned long long)stored, (unsigned long long)cut, MADE_TICKS - 1,
                s.size - last, log);
    char side[600];
    FMT(side, "%s/%s.corrupt-%zu", work, name, last);
    size_t n;
    uint8_t *kept = read_bin(side, &n);
    if (!kept || n != s.size - last || memcmp(kept, bytes + last, n) != 0)
      TEST_FAIL("%s flipped: %s missing or not the cut bytes", flips[i].what, side);
    free(kept);
    free(log);
    /* refuse: exit 1, the file and the offset named, nothing touched. */
    place_segment(work, name, bytes, s.size);
    expect_refused(&r, work, name, bytes, s.size, last, flips[i].what);
    free(bytes);
  }
  daemon_cleanup(&t);
  daemon_cleanup(&r);
  segment_finish(&s);
}

TEST_TIMEOUT(flipped_bit_in_a_middle_frame_is_never_skipped, 120) {
  char tmp[64], gen[128], work[128];
  harness_mkdtemp(tmp, sizeof tmp);
  FMT(gen, "%s/gen", tmp);
  FMT(work, "%s/work", tmp);
  struct segment s;
  make_journal(gen, &s);
  ASSERT_EQ(mkdir(work, 0750), 0);
  const char *name = base_name(s.path);
  size_t mid = s.f[s.n - 3].off, first = s.f[0].off;
  const struct {
    size_t frame_off, at;
    int bit;
    const char *what;
  } flips[] = {
      {mid, mid + FRAME_HEADER + 12, 3, "a payload bit of a middle frame"},
      {mid, mid + 5, 1, "a CRC bit of a middle frame"},
      {mid, mid + 0, 4, "a length bit of a middle frame"},
      {mid, mid + 3, 6, "a high length bit of a middle frame"},
      {first, first + FRAME_HEADER + 20, 0, "a payload bit of the first frame"},
  };
  struct tks_daemon pol[2];
  const char *policy[2] = {"  on_corrupt: truncate\n", "  on_corrupt: refuse\n"};
  for (int p = 0; p < 2; p++) {
    char yaml[1024];
    journal_yaml(yaml, sizeof yaml, work, policy[p]);
    daemon_prepare(&pol[p], NULL, yaml);
  }
  for (size_t i = 0; i < TKS_ARRAY_SIZE(flips); i++) {
    uint8_t *bytes = flipped(&s, flips[i].at, flips[i].bit);
    for (int p = 0; p < 2; p++) {
      char what[160];
      FMT(what, "%s, %.*s", flips[i].what, (int)strlen(policy[p]) - 3, policy[p] + 2);
      place_segment(work, name, bytes, s.size);
      expect_refused(&pol[p], work, name, bytes, s.size, flips[i].frame_off, what);
    }
    free(bytes);
  }
  daemon_cleanup(&pol[0]);
  daemon_cleanup(&pol[1]);
  segment_finish(&s);
}

TEST_TIMEOUT(torn_tail_of_an_older_segment_is_never_cut, 120) {
  char tmp[64], gen[128], work[128];
  harness_mkdtemp(tmp, sizeof tmp);
  FMT(gen, "%s/gen", tmp);
  FMT(work, "%s/work", tmp);
  struct segment s;
  make_journal(gen, &s); /* segment 1 */
  struct tks_daemon g;
  start_on(&g, gen, NULL);         /* segment 2, with ticks of its own */
  send_ticks(&g, 4, 1, 0, 40, 40); /* accepted counts new ticks, not replayed ones */
  stop_expect_0(&g);
  daemon_cleanup(&g);
  char names[4][64];
  ASSERT_EQ(list_segments(gen, names, 4), 2);
  ASSERT_STR_EQ(names[0], base_name(s.path));
  char path[512];
  FMT(path, "%s/%s", gen, names[1]);
  size_t n2;
  uint8_t *seg2 = read_bin(path, &n2);
  ASSERT(seg2 && n2 > SEGMENT_HEADER);
  ASSERT_EQ(mkdir(work, 0750), 0);
  size_t last = s.f[s.n - 1].off, cut = last + (s.size - last) / 2;
  for (int p = 0; p < 2; p++) {
    struct tks_daemon d;
    char yaml[1024];
    journal_yaml(yaml, sizeof yaml, work,
                 p ? "  on_corrupt: refuse\n" : "  on_corrupt: truncate\n");
    daemon_prepare(&d, NULL, yaml);
    place_segment(work, names[0], s.data, cut);
    FMT(path, "%s/%s", work, names[1]);
    write_bin(path, seg2, n2);
    expect_refused(&d, work, names[0], s.data, cut, last,
                   p ? "older segment, refuse" : "older segment, truncate");
    daemon_cleanup(&d);
  }
  free(seg2);
  segment_finish(&s);
}

TEST_TIMEOUT(newest_segment_torn_inside_its_header_is_cut_under_truncate, 60) {
  char tmp[64], gen[128];
  harness_mkdtemp(tmp, sizeof tmp);
  FMT(gen, "%s/gen", tmp);
  struct segment s;
  make_journal(gen, &s);
  unsigned long long seq;
  ASSERT_EQ(sscanf(base_name(s.path), "journal-%20llu.tkj", &seq), 1);
  char newest[512];
  FMT(newest, "%s/journal-%020llu.tkj", gen, seq + 1);
  struct tks_daemon d;
  char yaml[1024];
  journal_yaml(yaml, sizeof yaml, gen, NULL);
  daemon_prepare(&d, NULL, yaml);
  /* A crash right after the file was created, and one inside its header. */
  const size_t lens[] = {0, 9};
  for (size_t i = 0; i < TKS_ARRAY_SIZE(lens); i++) {
    write_bin(newest, "TKSJRNL1\1\0\0\0\0\0\0\0", lens[i]);
    daemon_spawn(&d, NULL);
    daemon_wait_ready(&d);
    ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), MADE_TICKS);
    stop_expect_0(&d);
    restart(&d); /* and the next start is clean */
    ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), MADE_TICKS);
    stop_expect_0(&d);
    char names[16][64];
    int n = list_segments(gen, names, 16);
    for (int k = 0; k < n; k++) { /* keep only segment 1 for the next case */
      char path[512];
      FMT(path, "%s/%s", gen, names[k]);
      if (strcmp(names[k], base_name(s.path)) != 0) unlink(path);
    }
  }
  daemon_cleanup(&d);
  segment_finish(&s);
}

/* ==================================================================== */
/* disk full */

struct sender {
  int fd;
  struct tks_buf b;
  int result;
  atomic_bool done;
  pthread_t thread;
};

static void *sender_main(void *arg) {
  struct sender *s = arg;
  s->result = send_all(s->fd, s->b.data, s->b.len);
  atomic_store(&s->done, true);
  return NULL;
}

/* The newest segment of dir and its size. */
static off_t newest_segment_size(const char *dir, char *path, size_t n) {
  char names[256][64];
  int k = list_segments(dir, names, 256);
  if (k == 0) TEST_FAIL("no segment in %s", dir);
  int len = snprintf(path, n, "%s/%s", dir, names[k - 1]);
  if (len < 0 || (size_t)len >= n) TEST_FAIL("path too long");
  return file_size(path);
}

/* Sets RLIMIT_FSIZE of the daemon to its newest segment's size + slack;
 * where prlimit(2) is not allowed, stops the daemon and skips the test. */
static void limit_file_size(struct tks_daemon *d, off_t slack, struct rlimit *old) {
  char jdir[128], seg[512];
  FMT(jdir, "%s/journal", d->dir);
  off_t size = newest_segment_size(jdir, seg, sizeof seg);
  const char *what = NULL;
  if (prlimit(d->pid, RLIMIT_FSIZE, NULL, old) != 0) {
    what = "reading";
  } else {
    struct rlimit lim = {.rlim_cur = (rlim_t)(size + slack), .rlim_max = old->rlim_max};
    if (prlimit(d->pid, RLIMIT_FSIZE, &lim, NULL) != 0) what = "setting";
  }
  if (!what) return;
  int e = errno;
  stop_expect_0(d);
  daemon_cleanup(d);
  TEST_SKIP("%s the daemon's RLIMIT_FSIZE with prlimit(2): %s", what, strerror(e));
}

static void fail_if_dead(struct tks_daemon *d, const char *when) {
  int code = daemon_wait_exit(d, 0);
  if (code < 0) return;
  char *log = daemon_log(d);
  if (code == 128 + SIGXFSZ)
    TEST_FAIL(
        "daemon bug: killed by SIGXFSZ %s (it must ignore the signal and see EFBIG); log:\n%s",
        when, log);
  TEST_FAIL("the daemon exited with %d %s; log:\n%s", code, when, log);
}

TEST_TIMEOUT(disk_full_holds_ingest_and_recovers, 180) {
  struct tks_daemon d;
  start_with(&d, "  fsync: always\n  on_error: backpressure\n");
  const int nsym = 4;
  const uint64_t first = 1000, trigger = 1100, total = 101100;
  send_ticks(&d, nsym, 0, 0, first, first);
  ASSERT_U64_EQ(sync_durable(&d), first);
  struct rlimit old;
  limit_file_size(&d, 64, &old);

  /* A few ticks whose write fails: failing, counted, ingest held. */
  int tfd = daemon_connect_ingest(&d);
  struct tks_buf tb;
  tks_buf_init(&tb);
  encode_ticks(&tb, nsym, 0, first, trigger);
  ASSERT_EQ(send_all(tfd, tb.data, tb.len), 0);
  tks_buf_finish(&tb);
  bool failing = false;
  for (uint64_t until = now_ms() + 10000; !failing && now_ms() < until; sleep_ms(10)) {
    fail_if_dead(&d, "with writes failing");
    char v[64];
    stat_str(&d, "journal.state", v, sizeof v);
    failing = strcmp(v, "failing") == 0;
  }
  fail_if_dead(&d, "with writes failing");
  if (!failing) TEST_FAIL("journal.state is not failing 10 s after RLIMIT_FSIZE was reached");
  ASSERT(daemon_stat(&d, "journal.write_errors") > 0);
  char err[256];
  stat_str(&d, "journal.last_error", err, sizeof err);
  if (no_error(err)) TEST_FAIL("journal.last_error \"%s\" while failing", err);
  ASSERT_U64_EQ(daemon_wait_stat(&d, "ingest.held", 1, 5000), 1);
  ASSERT(daemon_stat(&d, "ingest.holds") >= 1);
  uint64_t acc1 = daemon_stat(&d, "ticks.accepted"), dur1 = daemon_stat(&d, "ticks.durable");
  fprintf(stderr, "  failing (%s): %llu accepted, %llu durable\n", err, (unsigned long long)acc1,
          (unsigned long long)dur1);
  ASSERT_U64_EQ(acc1, trigger);
  ASSERT_U64_EQ(dur1, first); /* durable stops below accepted */

  /* While held, no client is read: a sender of ~5 MB gets stuck. */
  uint64_t read1 = daemon_stat(&d, "ingest.bytes_received");
  struct sender snd = {.fd = daemon_connect_ingest(&d)};
  atomic_init(&snd.done, false);
  tks_buf_init(&snd.b);
  encode_ticks(&snd.b, nsym, 0, trigger, total);
  pthread_create(&snd.thread, NULL, sender_main, &snd);
  sleep_ms(300);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.accepted"), acc1);
  ASSERT_U64_EQ(daemon_stat(&d, "ingest.bytes_received"), read1);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.durable"), dur1);
  if (atomic_load(&snd.done))
    TEST_FAIL("the sender wrote all %zu bytes while ingest was held", snd.b.len);
  /* A sync does not answer while writes fail, nor what is behind it. */
  int cfd = control_connect(d.sock);
  ASSERT(cfd >= 0);
  ASSERT_EQ(send_all(cfd, "sync\nping\n", 10), 0);
  bool complete;
  char *r = read_response(cfd, 1000, &complete);
  if (r[0]) TEST_FAIL("answered while the journal fails: \"%s\"", r);
  free(r);
  fail_if_dead(&d, "with writes failing");

  /* Room again: it recovers by itself, and the waiting sync answers. */
  ASSERT_EQ(prlimit(d.pid, RLIMIT_FSIZE, &old, NULL), 0);
  r = read_until(cfd, "\n\n", 2, SYNC_MS, NULL);
  unsigned long long x;
  int end = 0;
  if (sscanf(r, "{\"ok\":true,\"durable\":%llu}\n\n{\"ok\":true}\n\n%n", &x, &end) != 1 ||
      end == 0 || r[end] != '\0')
    TEST_FAIL(
        "want the sync's answer then the ping's within %d ms of raising the limit, got \"%s\"",
        SYNC_MS, r);
  if (x < acc1)
    TEST_FAIL("sync answered %llu durable, want at least the %llu accepted before it", x,
              (unsigned long long)acc1);
  free(r);
  close(cfd);
  if (!wait_stat_str(&d, "journal.state", "ok", 5000))
    TEST_FAIL("journal.state not ok after recovery");
  pthread_join(snd.thread, NULL);
  ASSERT_EQ(snd.result, 0);
  daemon_expect_stat(&d, "ticks.accepted", total, 30000);
  ASSERT_U64_EQ(sync_durable(&d), total);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.durable"), total);
  ASSERT_U64_EQ(daemon_stat(&d, "ingest.held"), 0);
  stat_str(&d, "journal.last_error", err, sizeof err);
  if (!no_error(err)) TEST_FAIL("journal.last_error \"%s\" after the recovery", err);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.rejected"), 0);
  close(snd.fd);
  close(tfd);
  tks_buf_finish(&snd.b);
  stop_expect_0(&d);
  /* Nothing lost: every tick back, none twice. */
  restart(&d);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), total);
  ASSERT_U64_EQ(daemon_stat(&d, "journal.replayed_ticks"), total);
  for (int s = 0; s < nsym; s++) {
    uint64_t per[MAX_ROUNDS];
    ASSERT_U64_EQ(check_symbol(&d, s, per), total / (uint64_t)nsym);
  }
  stop_expect_0(&d);
  daemon_cleanup(&d);
}

TEST_TIMEOUT(sigterm_while_writes_fail_and_syncs_wait_exits_promptly_claiming_nothing, 120) {
  struct tks_daemon d;
  start_with(&d, "  fsync: always\n");
  send_ticks(&d, 4, 0, 0, 1000, 1000);
  ASSERT_U64_EQ(sync_durable(&d), 1000);
  struct rlimit old;
  limit_file_size(&d, 64, &old);
  int tfd = daemon_connect_ingest(&d);
  struct tks_buf tb;
  tks_buf_init(&tb);
  encode_ticks(&tb, 4, 0, 1000, 1100);
  ASSERT_EQ(send_all(tfd, tb.data, tb.len), 0);
  tks_buf_finish(&tb);
  if (!wait_stat_str(&d, "journal.state", "failing", 10000)) TEST_FAIL("journal.state not failing");
  /* One client asks for a sync and goes away; another waits. */
  int gone = control_connect(d.sock), waits = control_connect(d.sock);
  ASSERT(gone >= 0 && waits >= 0);
  ASSERT_EQ(send_all(gone, "sync\n", 5), 0);
  ASSERT_EQ(send_all(waits, "sync\n", 5), 0);
  sleep_ms(100);
  close(gone);
  sleep_ms(300); /* several retries with the first waiter gone */
  fail_if_dead(&d, "after a client waiting on sync went away");
  char *r = ask(&d, "ping", 5000);
  ASSERT_STR_EQ(r, "{\"ok\":true}\n\n");
  free(r);
  uint64_t durable = daemon_stat(&d, "ticks.durable");
  ASSERT_U64_EQ(durable, 1000);
  uint64_t t0 = now_ms();
  kill(d.pid, SIGTERM);
  int code = daemon_wait_exit(&d, HARNESS_STOP_MS);
  if (code < 0) {
    daemon_stop(&d, SIGKILL);
    TEST_FAIL("still running %d ms after SIGTERM with the journal failing", HARNESS_STOP_MS);
  }
  if (code != 0 && code != 1) {
    char *log = daemon_log(&d);
    TEST_FAIL("exit %d after SIGTERM with the journal failing; log:\n%s", code, log);
  }
  fprintf(stderr, "  exit %d, %llu ms after SIGTERM\n", code, (unsigned long long)(now_ms() - t0));
  /* The waiting sync must not have been told the unwritten ticks are durable. */
  bool eof = false;
  r = read_until(waits, "\n\n", 1, 2000, &eof);
  unsigned long long claimed;
  if (sscanf(r, "{\"ok\":true,\"durable\":%llu}", &claimed) == 1 && claimed > durable)
    TEST_FAIL("at stop, a waiting sync was answered durable %llu, but only %llu were", claimed,
              (unsigned long long)durable);
  fprintf(stderr, "  the waiting sync got \"%.*s\"%s\n", (int)strcspn(r, "\n"), r,
          eof ? " then EOF" : "");
  free(r);
  close(waits);
  close(tfd);
  restart(&d);
  uint64_t replayed = daemon_stat(&d, "journal.replayed_ticks");
  if (replayed < durable || replayed > 1100)
    TEST_FAIL("%llu ticks replayed; want between %llu (durable) and 1100 (accepted)",
              (unsigned long long)replayed, (unsigned long long)durable);
  stop_expect_0(&d);
  daemon_cleanup(&d);
}

TEST_TIMEOUT(disk_full_with_on_error_reject_rejects_new_ticks, 120) {
  struct tks_daemon d;
  start_with(&d, "  fsync: always\n  max_bytes: 64KiB\n  on_error: reject\n");
  const int nsym = 4, batch = 200;
  uint64_t sent = 0;
  bool failing = false;
  /* ~10 KB a batch: the cap is reached within a few. */
  for (int b = 0; b < 60 && !failing; b++) {
    struct tks_buf buf;
    tks_buf_init(&buf);
    encode_ticks(&buf, nsym, 0, sent, sent + (uint64_t)batch);
    sent += (uint64_t)batch;
    int fd = daemon_connect_ingest(&d);
    ASSERT_EQ(send_all(fd, buf.data, buf.len), 0);
    uint64_t until = now_ms() + 10000;
    while (daemon_stat(&d, "ticks.accepted") + daemon_stat(&d, "ticks.rejected") < sent &&
           now_ms() < until)
      sleep_ms(5);
    close(fd);
    tks_buf_finish(&buf);
    sleep_ms(20); /* let the writer try */
    char v[64];
    stat_str(&d, "journal.state", v, sizeof v);
    failing = strcmp(v, "failing") == 0;
  }
  fail_if_dead(&d, "at the journal cap");
  if (!failing)
    TEST_FAIL("journal.state not failing after %llu ticks with max_bytes 64KiB",
              (unsigned long long)sent);
  ASSERT(daemon_stat(&d, "journal.write_errors") > 0);
  ASSERT(daemon_stat(&d, "journal.bytes") <= 64 * 1024);
  /* New ticks now: every one rejected as journal_error; ingest not held. */
  uint64_t acc = daemon_stat(&d, "ticks.accepted"),
           jerr = daemon_stat(&d, "ticks.rejected_by_reason.journal_error");
  ASSERT_U64_EQ(acc + daemon_stat(&d, "ticks.rejected"), sent);
  send_ticks(&d, nsym, 0, sent, sent + 600, acc);
  uint64_t until = now_ms() + 10000;
  while (daemon_stat(&d, "ticks.rejected_by_reason.journal_error") < jerr + 600 && now_ms() < until)
    sleep_ms(5);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.rejected_by_reason.journal_error"), jerr + 600);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.accepted"), acc);
  sent += 600;
  ASSERT_U64_EQ(daemon_stat(&d, "ingest.held"), 0);
  uint64_t durable = daemon_stat(&d, "ticks.durable");
  fprintf(stderr, "  %llu sent, %llu accepted, %llu durable, %llu journal_error\n",
          (unsigned long long)sent, (unsigned long long)acc, (unsigned long long)durable,
          (unsigned long long)(jerr + 600));
  ASSERT(durable < acc);
  char *r = ask(&d, "ping", 5000);
  ASSERT_STR_EQ(r, "{\"ok\":true}\n\n");
  free(r);
  int code = daemon_stop(&d, SIGTERM);
  if (code != 0 && code != 1) TEST_FAIL("exit %d after SIGTERM with the journal failing", code);
  fprintf(stderr, "  exit %d after SIGTERM with the journal failing\n", code);
  /* Without the cap: what comes back is at least what was durable. */
  char jdir[128], yaml[1024];
  FMT(jdir, "%s/journal", d.dir);
  journal_yaml(yaml, sizeof yaml, jdir, "  max_bytes: 0\n");
  daemon_write_config(&d, NULL, yaml);
  restart(&d);
  uint64_t replayed = daemon_stat(&d, "journal.replayed_ticks");
  fprintf(stderr, "  %llu replayed after the restart\n", (unsigned long long)replayed);
  if (replayed < durable || replayed > acc)
    TEST_FAIL("%llu ticks replayed; want between the %llu durable and the %llu accepted",
              (unsigned long long)replayed, (unsigned long long)durable, (unsigned long long)acc);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), replayed);
  stop_expect_0(&d);
  daemon_cleanup(&d);
}

/* ==================================================================== */
/* segments */

TEST_TIMEOUT(journal_rotates_segments_at_segment_size, 180) {
  struct tks_daemon d;
  start_with(&d, "  segment_size: 1MiB\n");
  const int nsym = 10;
  const uint64_t n = 120000; /* ~5.5 MB of msgpack */
  send_ticks(&d, nsym, 0, 0, n, n);
  ASSERT_U64_EQ(sync_durable(&d), n);
  uint64_t segs = daemon_stat(&d, "journal.segments"),
           frames = daemon_stat(&d, "journal.frames_written");
  char jdir[128], names[256][64], path[512];
  FMT(jdir, "%s/journal", d.dir);
  int k = list_segments(jdir, names, 256);
  fprintf(stderr, "  %d segments, %llu frames\n", k, (unsigned long long)frames);
  if (segs < 5)
    TEST_FAIL("journal.segments %llu for ~5.5 MB with segment_size 1MiB, want at least 5",
              (unsigned long long)segs);
  ASSERT_U64_EQ((uint64_t)k, segs);
  /* Every segment: a header, whole frames with good CRCs, about 1 MiB at most. */
  uint64_t file_ticks = 0, file_frames = 0, bytes = 0;
  for (int i = 0; i < k; i++) {
    FMT(path, "%s/%s", jdir, names[i]);
    struct segment s;
    parse_segment(path, &s);
    if (i < k - 1 && s.size > (1u << 20) + (1u << 19))
      TEST_FAIL("%s is %zu bytes, with segment_size 1MiB", names[i], s.size);
    file_ticks += s.ticks;
    file_frames += s.n;
    bytes += s.size;
    segment_finish(&s);
  }
  ASSERT_U64_EQ(file_ticks, n);
  ASSERT_U64_EQ(file_frames, frames);
  ASSERT_U64_EQ(daemon_stat(&d, "journal.bytes"), bytes);
  stop_expect_0(&d);
  restart(&d);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), n);
  ASSERT_U64_EQ(daemon_stat(&d, "journal.replayed_ticks"), n);
  ASSERT(daemon_stat(&d, "journal.segments") >= segs);
  for (int s = 0; s < nsym; s++) {
    uint64_t per[MAX_ROUNDS];
    ASSERT_U64_EQ(check_symbol(&d, s, per), n / (uint64_t)nsym);
  }
  stop_expect_0(&d);
  daemon_cleanup(&d);
}

/* ==================================================================== */
/* one daemon a journal dir (issue 8) */

/* The lock file names pid ("1234\n"). */
static void expect_lock_pid(const char *jdir, pid_t pid) {
  char path[256], want[32];
  FMT(path, "%s/tickslabd.lock", jdir);
  FMT(want, "%ld\n", (long)pid);
  char *text = read_file(path);
  if (!text) TEST_FAIL("no lock file %s", path);
  ASSERT_STR_EQ(text, want);
  free(text);
}

/* d2 is started on a journal dir d holds: it must exit 1 at once, saying
 * who holds the dir, before it reads anything there or binds anything. */
static void expect_dir_in_use(struct tks_daemon *d2, const char *jdir, pid_t holder) {
  daemon_spawn(d2, NULL);
  int code = daemon_wait_exit(d2, HARNESS_READY_MS);
  char *log = daemon_log(d2);
  if (code != 1) TEST_FAIL("a second daemon on %s exited %d, want 1; log:\n%s", jdir, code, log);
  char want[256];
  FMT(want, "error: journal.dir %s is in use by pid %ld\n", jdir, (long)holder);
  ASSERT_CONTAINS(log, want);
  ASSERT_NOT_CONTAINS(log, "replaying");
  ASSERT_NOT_CONTAINS(log, "ready");
  free(log);
}

TEST_TIMEOUT(a_second_daemon_on_the_same_journal_dir_exits_1_and_the_first_serves_on, 120) {
  struct tks_daemon d;
  start_with(&d, NULL);
  char jdir[128];
  FMT(jdir, "%s/journal", d.dir);
  expect_lock_pid(jdir, d.pid);
  send_ticks(&d, 2, 0, 0, 1000, 1000);
  ASSERT_U64_EQ(sync_durable(&d), 1000);

  /* The very same config (control socket and all), its own log: it must
   * not take the socket over either. */
  struct tks_daemon same = d;
  same.pid = 0;
  FMT(same.log, "%s/second.log", d.dir);
  expect_dir_in_use(&same, jdir, d.pid);
  /* Another config, only the journal dir shared. */
  struct tks_daemon other;
  char yaml[1024];
  journal_yaml(yaml, sizeof yaml, jdir, NULL);
  daemon_prepare(&other, NULL, yaml);
  expect_dir_in_use(&other, jdir, d.pid);
  daemon_cleanup(&other);

  /* The first serves on: its socket, its lock, ingest and sync. */
  expect_lock_pid(jdir, d.pid);
  char *r = ask(&d, "ping", 5000);
  ASSERT_CONTAINS(r, "\"ok\":true");
  free(r);
  send_ticks(&d, 2, 1, 0, 1000, 2000);
  ASSERT_U64_EQ(sync_durable(&d), 2000);
  for (int s = 0; s < 2; s++) {
    uint64_t per[MAX_ROUNDS];
    ASSERT_U64_EQ(check_symbol(&d, s, per), 1000);
  }
  /* Stopped cleanly, the dir is free: the next start replays it all. */
  stop_expect_0(&d);
  restart(&d);
  expect_lock_pid(jdir, d.pid);
  ASSERT_U64_EQ(daemon_stat(&d, "journal.replayed_ticks"), 2000);
  stop_expect_0(&d);
  daemon_cleanup(&d);
}

TEST_TIMEOUT(a_daemon_killed_with_kill_9_leaves_a_lock_file_that_blocks_no_one, 120) {
  struct tks_daemon d;
  start_with(&d, "  segment_size: 1MiB\n");
  char jdir[128];
  FMT(jdir, "%s/journal", d.dir);
  const uint64_t n = 40000; /* a few MB: more than one segment */
  send_ticks(&d, 4, 0, 0, n, n);
  ASSERT_U64_EQ(sync_durable(&d), n);
  pid_t dead = d.pid;
  ASSERT_EQ(daemon_stop(&d, SIGKILL), 128 + SIGKILL);
  expect_lock_pid(jdir, dead); /* left behind, naming the dead */

  restart(&d);
  ASSERT(d.pid != dead);
  expect_lock_pid(jdir, d.pid);
  ASSERT_U64_EQ(daemon_stat(&d, "journal.replayed_ticks"), n);
  ASSERT_U64_EQ(daemon_stat(&d, "journal.replay_rejected"), 0);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), n);
  /* The lock file is no segment: journal.segments and journal.bytes count
   * the segment files alone. */
  char names[64][64], path[512];
  int nseg = list_segments(jdir, names, 64);
  ASSERT(nseg >= 2);
  uint64_t sum = 0;
  for (int i = 0; i < nseg; i++) {
    FMT(path, "%s/%s", jdir, names[i]);
    sum += (uint64_t)file_size(path);
  }
  ASSERT_U64_EQ(daemon_stat(&d, "journal.segments"), (uint64_t)nseg);
  ASSERT_U64_EQ(daemon_stat(&d, "journal.bytes"), sum);
  ASSERT(dir_has(jdir, "tickslabd.lock"));
  stop_expect_0(&d);
  daemon_cleanup(&d);
}

TEST(without_a_journal_no_directory_is_locked) {
  char tmp[64], jdir[128], yaml[512];
  harness_mkdtemp(tmp, sizeof tmp);
  FMT(jdir, "%s/journal", tmp);
  FMT(yaml, "journal:\n  enabled: false\n  dir: \"%s\"\n", jdir);
  struct tks_daemon a, b;
  daemon_start(&a, yaml);
  daemon_start(&b, yaml); /* the same (unused) dir: no lock, both run */
  ASSERT_EQ(access(jdir, F_OK), -1);
  ASSERT_EQ(errno, ENOENT);
  stop_expect_0(&a);
  stop_expect_0(&b);
  daemon_cleanup(&a);
  daemon_cleanup(&b);
}

TEST_MAIN()
