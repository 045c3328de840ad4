/*
 * The crash campaign (issue 8) against the real tickslabd: rounds of
 * ticks streamed in, checkpoints asked for at random moments, `sync`, and
 * `kill -9` at a random moment after it (inside a checkpoint's write, the
 * deletion of the segments it covers, a segment rotation, or none), then a
 * restart on the same directories, as systemd's Restart=on-failure does.
 * After every restart: every tick `sync` counted durable is back, none is
 * there twice, and what each round kept is a prefix of what it sent (no
 * hole).  CRASH_SEED=N replays a campaign; CRASH_ROUNDS=N changes its
 * length (100 by default, 30 under ASan).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "encode.h"
#include "harness.h"
#include "test.h"
#include "util.h"

#define TS0 INT64_C(1700000000000000000)
#define ROUND_NS INT64_C(1000000000000) /* the ts space of one round */
#define MAX_ROUNDS 200
#define NSYM 6
#define SYNC_MS 10000
#define QUERY_MS 60000

#define FMT(buf, ...)                                                         \
  do {                                                                        \
    int n_ = snprintf((buf), sizeof(buf), __VA_ARGS__);                       \
    if (n_ < 0 || (size_t)n_ >= sizeof(buf)) TEST_FAIL("%s: too long", #buf); \
  } while (0)

static uint64_t rng_state;
static uint64_t rng(void) { /* xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * UINT64_C(2685821657736338717);
}

/* The k-th tick of symbol sym in round r: ts says (r, k, sym), volume k. */
static void encode_tick(struct tks_buf *b, int sym, int round, int64_t k) {
  char ticker[8];
  FMT(ticker, "C%d", sym);
  struct tks_kv kv[4] = {
      {"ticker", {.type = TKS_V_STR, .v.s = {ticker, strlen(ticker)}}},
      {"ts", {.type = TKS_V_INT, .v.i = TS0 + round * ROUND_NS + k * 1000 + sym}},
      {"price", {.type = TKS_V_F64, .v.f = 100.0 + (double)(k % 64) * 0.25}},
      {"volume", {.type = TKS_V_INT, .v.i = k}},
  };
  if (tks_encode_map(b, kv, 4) != 0) TEST_FAIL("out of memory");
}

struct stream {
  int fd, round;
  atomic_bool stop;
  atomic_uint_fast64_t sent; /* ticks handed to send() */
  pthread_t thread;
};

/* Ticks of every symbol in turn, 60 a write, at most ~60k a second. */
static void *stream_main(void *arg) {
  struct stream *s = arg;
  struct tks_buf b;
  tks_buf_init(&b);
  uint64_t i = 0;
  while (!atomic_load(&s->stop)) {
    b.len = 0;
    for (int j = 0; j < 60; j++, i++)
      encode_tick(&b, (int)(i % NSYM), s->round, (int64_t)(i / NSYM));
    if (send_all(s->fd, b.data, b.len) != 0) break; /* killed */
    atomic_store(&s->sent, i);
    sleep_ms(1);
  }
  tks_buf_finish(&b);
  return NULL;
}

/* One request on a new connection; NULL if there is no complete answer
 * within timeout_ms (the daemon may be on its way out). */
static char *try_ask(const struct tks_daemon *d, const char *req, int timeout_ms) {
  int fd = control_connect(d->sock);
  if (fd < 0) return NULL;
  char line[256];
  FMT(line, "%s\n", req);
  if (send_all(fd, line, strlen(line)) != 0) {
    close(fd);
    return NULL;
  }
  bool eof = false;
  char *r = read_until(fd, "\n\n", 1, timeout_ms, &eof);
  close(fd);
  if (!strstr(r, "\n\n")) {
    free(r);
    return NULL;
  }
  return r;
}

static char *ask(const struct tks_daemon *d, const char *req, int timeout_ms) {
  char *r = try_ask(d, req, timeout_ms);
  if (!r) {
    char *log = daemon_log(d);
    size_t len = strlen(log);
    TEST_FAIL("no answer to '%s' within %d ms; log tail:\n%s", req, timeout_ms,
              len > 3000 ? log + len - 3000 : log);
  }
  return r;
}

static uint64_t sync_durable(const struct tks_daemon *d) {
  char *r = ask(d, "sync", SYNC_MS);
  unsigned long long n;
  if (sscanf(r, "{\"ok\":true,\"durable\":%llu}", &n) != 1) TEST_FAIL("sync answered \"%s\"", r);
  free(r);
  return n;
}

/* `range C<sym>` over all time: strictly increasing ts (none twice), each
 * a tick this test sent with its fields, and per round the ticks k = 0, 1,
 * 2, ... with no hole.  Adds each round's count to per_round; returns the
 * total. */
static uint64_t check_symbol(const struct tks_daemon *d, int sym, uint64_t *per_round) {
  char req[96];
  FMT(req, "range C%d 0 9223372036854775807", sym);
  char *r = ask(d, req, QUERY_MS);
  if (strstr(r, "\"error\"") || strstr(r, "\"more\"")) TEST_FAIL("%s: \"%.300s\"", req, r);
  uint64_t seen[MAX_ROUNDS] = {0}, total = 0;
  int64_t prev = INT64_MIN;
  for (char *line = r, *nl; *line && *line != '\n'; line = nl + 1) {
    nl = strchr(line, '\n');
    if (!nl) TEST_FAIL("%s: unterminated line", req);
    *nl = '\0';
    const char *p = strstr(line, "\"ts\":"), *v = strstr(line, "\"volume\":");
    long long ts, vol;
    if (!p || !v || sscanf(p, "\"ts\":%lld", &ts) != 1 || sscanf(v, "\"volume\":%lld", &vol) != 1)
      TEST_FAIL("%s: a row that does not parse: %s", req, line);
    if (ts <= prev)
      TEST_FAIL("%s: ts %lld after %lld: a tick twice or out of order", req, ts, (long long)prev);
    prev = ts;
    int64_t rel = ts - TS0;
    int round = (int)(rel / ROUND_NS);
    int64_t k = (rel % ROUND_NS) / 1000;
    if (rel < 0 || round >= MAX_ROUNDS || (rel % ROUND_NS) % 1000 != sym || vol != k)
      TEST_FAIL("%s: a tick this test never sent: %s", req, line);
    if ((uint64_t)k != seen[round])
      TEST_FAIL("%s: round %d has k=%lld after %llu ticks: a hole", req, round, (long long)k,
                (unsigned long long)seen[round]);
    seen[round]++;
    total++;
  }
  free(r);
  for (int i = 0; i < MAX_ROUNDS; i++) per_round[i] += seen[i];
  return total;
}

static uint64_t check_all(const struct tks_daemon *d, uint64_t *per_round) {
  uint64_t total = 0;
  for (int s = 0; s < NSYM; s++) total += check_symbol(d, s, per_round);
  return total;
}

/* What a kill -9 left in the journal dir: checkpoint temp files (it
 * landed inside a checkpoint's write) and checkpoints. */
static void scan_dir(const char *dir, int *tmps, int *checkpoints) {
  *tmps = *checkpoints = 0;
  DIR *dp = opendir(dir);
  if (!dp) return;
  for (struct dirent *e; (e = readdir(dp));) {
    size_t n = strlen(e->d_name);
    if (n > 8 && strcmp(e->d_name + n - 8, ".tkc.tmp") == 0) (*tmps)++;
    if (n > 4 && strcmp(e->d_name + n - 4, ".tkc") == 0) (*checkpoints)++;
  }
  closedir(dp);
}

static void restart(struct tks_daemon *d) {
  daemon_spawn(d, NULL);
  daemon_wait_ready(d);
}

TEST_TIMEOUT(kill_9_at_random_moments_with_checkpoints_keeps_every_durable_tick_once, 1200) {
  const char *seed = getenv("CRASH_SEED");
  rng_state = seed ? strtoull(seed, NULL, 0) : 20261202;
  if (!rng_state) rng_state = 1;
  const char *rounds_env = getenv("CRASH_ROUNDS");
  int rounds = rounds_env ? atoi(rounds_env) : UNDER_ASAN ? 30 : 100;
  if (rounds < 1 || rounds >= MAX_ROUNDS) TEST_FAIL("CRASH_ROUNDS out of 1..%d", MAX_ROUNDS - 1);
  fprintf(stderr, "  seed %llu (CRASH_SEED=N to replay), %d rounds\n",
          (unsigned long long)rng_state, rounds);

  struct tks_daemon d;
  daemon_prepare(&d, NULL, NULL);
  char yaml[1024];
  FMT(yaml,
      "journal:\n"
      "  dir: \"%s/journal\"\n"
      "  fsync: interval\n"
      "  fsync_interval: 20ms\n"
      "  segment_size: 1MiB\n"
      "  checkpoint_interval: 0\n"
      "  checkpoint_bytes: 4MiB\n"
      "query:\n"
      "  max_rows: 1000000\n",
      d.dir);
  daemon_write_config(&d, NULL, yaml);

  char jdir[160];
  FMT(jdir, "%s/journal", d.dir);
  uint64_t durable = 0, sent_total = 0, checkpoints_asked = 0;
  int mid_write = 0, tmps, checkpoints = 0;
  uint64_t sent[MAX_ROUNDS] = {0};
  for (int r = 0; r <= rounds; r++) {
    scan_dir(jdir, &tmps, &checkpoints);
    mid_write += tmps > 0;
    restart(&d);
    /* What the last round's sync counted durable is all back. */
    uint64_t stored = daemon_stat(&d, "ticks.stored");
    if (stored < durable)
      TEST_FAIL("round %d: %llu ticks stored after the restart, but sync counted %llu durable", r,
                (unsigned long long)stored, (unsigned long long)durable);
    if (stored > sent_total)
      TEST_FAIL("round %d: %llu ticks stored, only %llu ever sent", r, (unsigned long long)stored,
                (unsigned long long)sent_total);
    if (r > 0 && (r % 10 == 0 || r == rounds)) {
      uint64_t per_round[MAX_ROUNDS] = {0};
      uint64_t total = check_all(&d, per_round);
      if (total != stored)
        TEST_FAIL("round %d: ranges give %llu ticks, ticks.stored says %llu", r,
                  (unsigned long long)total, (unsigned long long)stored);
      for (int i = 0; i < r; i++)
        if (per_round[i] > sent[i])
          TEST_FAIL("round %d: %llu ticks of round %d back, %llu sent", r,
                    (unsigned long long)per_round[i], i, (unsigned long long)sent[i]);
      fprintf(stderr, "  round %3d: %llu ticks held, all checked; %d checkpoint files\n", r,
              (unsigned long long)total, checkpoints);
    }
    if (r == rounds) break;

    struct stream s = {.fd = daemon_connect_ingest(&d), .round = r};
    atomic_init(&s.stop, false);
    atomic_init(&s.sent, 0);
    pthread_create(&s.thread, NULL, stream_main, &s);
    sleep_ms(20 + (int)(rng() % 200));
    /* A checkpoint asked for (not waited on) in most rounds, so that the
     * kill lands before, during or after its write and its deletions. */
    int cfd = -1;
    if (rng() % 4 != 0) {
      cfd = control_connect(d.sock);
      if (cfd >= 0 && send_all(cfd, "checkpoint\n", 11) == 0) checkpoints_asked++;
      sleep_ms((int)(rng() % 60));
    }
    uint64_t before = durable;
    durable = sync_durable(&d);
    if (durable < before)
      TEST_FAIL("round %d: sync says %llu durable, below the %llu of the round before", r,
                (unsigned long long)durable, (unsigned long long)before);
    sleep_ms((int)(rng() % 120));
    int code = daemon_stop(&d, SIGKILL);
    if (code != 128 + SIGKILL) TEST_FAIL("round %d: kill -9 gave exit %d", r, code);
    atomic_store(&s.stop, true);
    pthread_join(s.thread, NULL);
    close(s.fd);
    if (cfd >= 0) close(cfd);
    sent[r] = atomic_load(&s.sent);
    sent_total += sent[r];
  }
  fprintf(stderr,
          "  %d kill -9 rounds, %llu ticks sent, %llu checkpoints asked for, %d kills inside a "
          "checkpoint's write\n",
          rounds, (unsigned long long)sent_total, (unsigned long long)checkpoints_asked, mid_write);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  daemon_cleanup(&d);
}

TEST_MAIN()
