/*
 * The crash campaign (issue 8) against the real tickslabd: rounds of
 * ticks streamed in, checkpoints and archive rollovers asked for at random
 * moments, `sync`, and `kill -9` at a random moment after it (inside a
 * checkpoint's write, the deletion of the segments it covers, a segment
 * rotation, a rollover's seal, or none), then a restart on the same
 * directories, as systemd's Restart=on-failure does.  The ticks are of
 * 2023, so a rollover seals all of memory into the archive, and the ticks
 * streamed while its seal runs are refused (sealing).  After every
 * restart, reading archive and memory as one: every tick `sync` counted
 * durable is back, none is there twice, ticks.stored + archive.ticks is
 * what the ranges give, journal.replay_rejected is 0, and what each round
 * kept is a prefix of what it sent, but for the one run of ticks its
 * rollover refused (no other hole).  The campaign ends with a rollover of
 * everything and the same check.  CRASH_SEED=N replays a campaign's draws;
 * CRASH_ROUNDS=N changes its length (100 by default, 30 under ASan).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dirlock.h"
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

/* Fails the test, showing the tail of the daemon's log. */
static __attribute__((noreturn)) void fail_with_log(const struct tks_daemon *d, const char *what,
                                                    int timeout_ms) {
  char *log = daemon_log(d);
  size_t len = strlen(log);
  TEST_FAIL("no answer to '%s' within %d ms; log tail:\n%s", what, timeout_ms,
            len > 3000 ? log + len - 3000 : log);
}

static char *ask(const struct tks_daemon *d, const char *req, int timeout_ms) {
  char *r = try_ask(d, req, timeout_ms);
  if (!r) fail_with_log(d, req, timeout_ms);
  return r;
}

/* `sync` in round r: what it counts durable (the ticks in the checkpoint
 * loaded, replayed and fsynced since: not those the archive took before
 * that checkpoint), with the `archived` ticks at the start, covers all
 * that the sync of the round before counted. */
static uint64_t sync_checked(const struct tks_daemon *d, int r, uint64_t before,
                             uint64_t archived) {
  char *a = ask(d, "sync", SYNC_MS);
  unsigned long long durable;
  if (sscanf(a, "{\"ok\":true,\"durable\":%llu}", &durable) != 1)
    TEST_FAIL("sync answered \"%s\"", a);
  free(a);
  if (durable + archived < before)
    TEST_FAIL("round %d: sync says %llu durable (and %llu were archived at the start), below the "
              "%llu of the round before",
              r, durable, (unsigned long long)archived, (unsigned long long)before);
  return durable;
}

/* What each round sent and what its rollover refused.  The ticks of a
 * round are numbered in the order they were sent: tick i is k = i / NSYM
 * of C<i % NSYM>. */
static struct {
  uint64_t sent;  /* ticks handed to send() */
  bool rolled;    /* a rollover was asked for */
  bool gap_exact; /* gap is the count its seal refused, not a bound below it */
  uint64_t gap;
} R[MAX_ROUNDS];

static bool bit_get(const uint8_t *bits, uint64_t i) { return bits[i / 8] >> (i % 8) & 1; }

/* `range C<sym>` over all time (archive and memory): strictly increasing
 * ts (none twice), each a tick this test sent with its fields.  Sets each
 * one's bit in bits[round]; returns how many. */
static uint64_t check_symbol(const struct tks_daemon *d, int sym, uint8_t **bits) {
  char req[96];
  FMT(req, "range C%d 0 9223372036854775807", sym);
  char *r = ask(d, req, QUERY_MS);
  if (strstr(r, "\"error\"") || strstr(r, "\"more\"")) TEST_FAIL("%s: \"%.300s\"", req, r);
  uint64_t total = 0;
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
    uint64_t i = (uint64_t)k * NSYM + (uint64_t)sym;
    if (i >= R[round].sent)
      TEST_FAIL("%s: tick %llu of round %d is back, only %llu were sent", req,
                (unsigned long long)i, round, (unsigned long long)R[round].sent);
    bits[round][i / 8] |= (uint8_t)(1u << (i % 8));
    total++;
  }
  free(r);
  return total;
}

/* What round r kept is a prefix of what it sent, but for one run of
 * ticks its rollover's seal refused (sealing), seen when a tick after it
 * is back: exactly R[r].gap ticks long, or at least that. */
static void check_round(int r, const uint8_t *bits) {
  uint64_t n = R[r].sent, i = 0;
  while (i < n && bit_get(bits, i)) i++;
  uint64_t a = i;
  while (i < n && !bit_get(bits, i)) i++;
  uint64_t b = i;
  if (b == n) return; /* a prefix */
  if (!R[r].rolled)
    TEST_FAIL("round %d: ticks [%llu, %llu) are missing, tick %llu is back: a hole", r,
              (unsigned long long)a, (unsigned long long)b, (unsigned long long)b);
  if (R[r].gap_exact ? b - a != R[r].gap : b - a < R[r].gap)
    TEST_FAIL("round %d: ticks [%llu, %llu) are missing, tick %llu is back, but its seal refused "
              "%s%llu",
              r, (unsigned long long)a, (unsigned long long)b, (unsigned long long)b,
              R[r].gap_exact ? "" : "at least ", (unsigned long long)R[r].gap);
  while (i < n && bit_get(bits, i)) i++;
  uint64_t c = i;
  while (i < n && !bit_get(bits, i)) i++;
  if (i < n)
    TEST_FAIL("round %d: ticks [%llu, %llu) and [%llu, %llu) are missing: a hole besides the "
              "run its seal refused",
              r, (unsigned long long)a, (unsigned long long)b, (unsigned long long)c,
              (unsigned long long)i);
}

/* Every symbol read back and every round before `rounds` checked; returns
 * the ticks the ranges gave. */
static uint64_t check_all(const struct tks_daemon *d, int rounds) {
  uint8_t *bits[MAX_ROUNDS] = {0};
  for (int i = 0; i < MAX_ROUNDS; i++)
    if (!(bits[i] = calloc(R[i].sent / 8 + 1, 1))) TEST_FAIL("out of memory");
  uint64_t total = 0;
  for (int s = 0; s < NSYM; s++) total += check_symbol(d, s, bits);
  for (int i = 0; i < rounds; i++) check_round(i, bits[i]);
  for (int i = 0; i < MAX_ROUNDS; i++) free(bits[i]);
  return total;
}

/* One `stats text`, and figures out of it. */
static char *stats_text(const struct tks_daemon *d) { return ask(d, "stats text", QUERY_MS); }

static uint64_t stat_of(const char *text, const char *path) {
  char v[64];
  uint64_t n;
  if (stats_text_lookup(text, path, v, sizeof v) != 0 || tks_parse_u64(v, &n) != 0)
    TEST_FAIL("stats text has no number %s", path);
  return n;
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

/* Waits until no process holds the lock of dir (lib/dirlock.c): a worker
 * child the killed daemon had just forked holds it until it runs, sees
 * its parent gone and exits.  Returns whether it had to wait. */
static bool wait_unlocked(const char *dir) {
  char path[200];
  FMT(path, "%s/" TKS_DIRLOCK_NAME, dir);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false; /* not made yet */
  bool waited = false;
  for (uint64_t t0 = now_ms(); flock(fd, LOCK_EX | LOCK_NB) < 0; waited = true) {
    if (errno != EWOULDBLOCK && errno != EINTR) TEST_FAIL("flock %s: %s", path, strerror(errno));
    if (now_ms() - t0 > HARNESS_STOP_MS) TEST_FAIL("%s is still locked after the kill", path);
    sleep_ms(1);
  }
  close(fd);
  return waited;
}

static void restart(struct tks_daemon *d) {
  daemon_spawn(d, NULL);
  daemon_wait_ready(d);
}

/* `rollover` on a connection of its own, not waited on: the fd, or -1. */
static int ask_rollover(const struct tks_daemon *d) {
  int fd = control_connect(d->sock);
  if (fd >= 0 && send_all(fd, "rollover\n", 9) != 0) {
    close(fd);
    fd = -1;
  }
  return fd;
}

/* The answer of the rollover asked on fd, if one comes within timeout_ms
 * (or came before the daemon died): true with its ticks and seconds.  An
 * error answer fails the test. */
static bool rollover_answer(int fd, int timeout_ms, uint64_t *ticks, double *seconds) {
  bool eof;
  char *a = read_until(fd, "\n\n", 1, timeout_ms, &eof);
  bool answered = strstr(a, "\n\n") != NULL;
  unsigned long long t, b;
  unsigned parts;
  if (answered &&
      sscanf(a, "{\"ok\":true,\"ticks\":%llu,\"bytes\":%llu,\"parts\":%u,\"seconds\":%lf}", &t, &b,
             &parts, seconds) != 4)
    TEST_FAIL("rollover answered \"%s\"", a);
  free(a);
  if (answered) *ticks = t;
  return answered;
}

/* A time of day 12 hours from now, "HH:MM:SS" UTC: archive.roll_at then
 * begins no seal of its own during the campaign (one run of refused ticks
 * a round, the one its rollover made). */
static void far_roll_at(char *out, size_t n) {
  int64_t s = (tks_now_ns() / 1000000000 + 43200) % 86400;
  snprintf(out, n, "%02d:%02d:%02d", (int)(s / 3600), (int)(s / 60 % 60), (int)(s % 60));
}

TEST_TIMEOUT(kill_9_at_random_moments_with_checkpoints_and_rollovers_keeps_every_durable_tick_once,
             1200) {
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
  char yaml[1024], roll_at[16];
  far_roll_at(roll_at, sizeof roll_at);
  FMT(yaml,
      "journal:\n"
      "  dir: \"%s/journal\"\n"
      "  fsync: interval\n"
      "  fsync_interval: 20ms\n"
      "  segment_size: 1MiB\n"
      "  checkpoint_interval: 0\n"
      "  checkpoint_bytes: 4MiB\n"
      "archive:\n"
      "  roll_at: \"%s\"\n"
      "query:\n"
      "  max_rows: 1000000\n",
      d.dir, roll_at);
  daemon_write_config(&d, NULL, yaml);

  char jdir[160];
  FMT(jdir, "%s/journal", d.dir);
  uint64_t durable = 0, sent_total = 0, checkpoints_asked = 0, sealed_again = 0, held = 0;
  int mid_write = 0, tmps, checkpoints = 0;
  int locked = 0, rollovers = 0, waited = 0, before_answer = 0, in_seal = 0;
  /* How long a seal takes here, from the answers (mostly its fsyncs, not
   * its ticks): to draw kills inside one. */
  double seal_ms_sum = 30;
  int seal_ms_n = 1;
  memset(R, 0, sizeof R);
  for (int r = 0; r <= rounds; r++) {
    scan_dir(jdir, &tmps, &checkpoints);
    mid_write += tmps > 0;
    char adir[200];
    FMT(adir, "%s/archive", jdir);
    /* Both waited for, as systemd's RestartSec. */
    locked += (int)wait_unlocked(jdir) | (int)wait_unlocked(adir);
    restart(&d);
    /* What the last round's sync counted durable is all back, in memory
     * or in the archive. */
    char *st = stats_text(&d);
    uint64_t stored = stat_of(st, "ticks.stored"), archived = stat_of(st, "archive.ticks");
    uint64_t rejected = stat_of(st, "journal.replay_rejected");
    sealed_again += stat_of(st, "journal.replay_sealed_ticks");
    free(st);
    if (rejected)
      TEST_FAIL("round %d: journal.replay_rejected is %llu", r, (unsigned long long)rejected);
    if (stored + archived < durable)
      TEST_FAIL("round %d: %llu ticks stored and %llu archived after the restart, but sync counted "
                "%llu durable",
                r, (unsigned long long)stored, (unsigned long long)archived,
                (unsigned long long)durable);
    if (stored + archived > sent_total)
      TEST_FAIL("round %d: %llu ticks stored and %llu archived, only %llu ever sent", r,
                (unsigned long long)stored, (unsigned long long)archived,
                (unsigned long long)sent_total);
    if (r > 0 && (r % 10 == 0 || r == rounds)) {
      uint64_t total = held = check_all(&d, r);
      if (total != stored + archived)
        TEST_FAIL("round %d: ranges give %llu ticks, ticks.stored + archive.ticks say %llu + %llu",
                  r, (unsigned long long)total, (unsigned long long)stored,
                  (unsigned long long)archived);
      fprintf(stderr,
              "  round %3d: %llu ticks held (%llu archived), all checked; %d checkpoint files\n", r,
              (unsigned long long)total, (unsigned long long)archived, checkpoints);
    }
    if (r == rounds) break;

    struct stream s = {.fd = daemon_connect_ingest(&d), .round = r};
    atomic_init(&s.stop, false);
    atomic_init(&s.sent, 0);
    pthread_create(&s.thread, NULL, stream_main, &s);
    sleep_ms(20 + (int)(rng() % 200));
    /* A rollover in a third of the rounds, asked after the sync, before
     * the checkpoint (which then waits for its seal) or after it (then the
     * seal may wait for the checkpoint); waited on in a quarter of them,
     * else the kill is drawn within 1.5 times a seal's mean time from the
     * ask, so that most such kills land inside the seal. */
    bool roll = rng() % 3 == 0;
    bool roll_wait = roll && rng() % 4 == 0, roll_first = roll && rng() % 2 == 0;
    double kill_frac = roll ? (double)(rng() % 1000) / 1000.0 : 0;
    int rfd = -1;
    uint64_t roll_ms = 0;
    if (roll_first) {
      durable = sync_checked(&d, r, durable, archived);
      rfd = ask_rollover(&d), roll_ms = now_ms();
    }
    /* A checkpoint asked for (not waited on) in most rounds, so that the
     * kill lands before, during or after its write and its deletions. */
    int cfd = -1;
    if (rng() % 4 != 0) {
      cfd = control_connect(d.sock);
      if (cfd >= 0 && send_all(cfd, "checkpoint\n", 11) == 0) checkpoints_asked++;
      int ms = (int)(rng() % 60);
      if (!roll_first) sleep_ms(ms); /* else the kill's draw says when */
    }
    if (!roll_first) durable = sync_checked(&d, r, durable, archived);
    if (roll && !roll_first) rfd = ask_rollover(&d), roll_ms = now_ms();
    R[r].rolled = rfd >= 0;
    rollovers += rfd >= 0;
    bool answered = false;
    uint64_t sealed = 0;
    double seconds = 0;
    if (rfd >= 0 && roll_wait) {
      if (!rollover_answer(rfd, QUERY_MS, &sealed, &seconds))
        fail_with_log(&d, "rollover", QUERY_MS);
      answered = true;
      waited++;
      /* Answered: its seal is over, so what it refused is known. */
      st = stats_text(&d);
      R[r].gap = stat_of(st, "ticks.rejected_by_reason.sealing");
      R[r].gap_exact = true;
      free(st);
      sleep_ms((int)(rng() % 120));
    } else if (rfd >= 0) {
      uint64_t at = roll_ms + (uint64_t)(kill_frac * 1.5 * seal_ms_sum / seal_ms_n);
      uint64_t now = now_ms();
      if (at > now) sleep_ms((int)(at - now));
      st = stats_text(&d);
      bool running = stat_of(st, "archive.in_progress") == 1;
      R[r].gap = stat_of(st, "ticks.rejected_by_reason.sealing");
      R[r].gap_exact = !running && stat_of(st, "archive.seals") + stat_of(st, "archive.failed") > 0;
      free(st);
      in_seal += running;
    } else {
      sleep_ms((int)(rng() % 120));
    }
    int code = daemon_stop(&d, SIGKILL);
    if (code != 128 + SIGKILL) TEST_FAIL("round %d: kill -9 gave exit %d", r, code);
    if (rfd >= 0 && !answered) answered = rollover_answer(rfd, HARNESS_IO_MS, &sealed, &seconds);
    before_answer += rfd >= 0 && !answered;
    if (answered && sealed) seal_ms_sum += seconds * 1e3, seal_ms_n++;
    atomic_store(&s.stop, true);
    pthread_join(s.thread, NULL);
    close(s.fd);
    if (cfd >= 0) close(cfd);
    if (rfd >= 0) close(rfd);
    R[r].sent = atomic_load(&s.sent);
    sent_total += R[r].sent;
  }
  fprintf(
      stderr,
      "  %d kill -9 rounds, %llu ticks sent, %llu checkpoints asked for, %d kills inside a "
      "checkpoint's write, %d restarts waited for a killed daemon's child to let go of a lock\n",
      rounds, (unsigned long long)sent_total, (unsigned long long)checkpoints_asked, mid_write,
      locked);
  fprintf(stderr,
          "  %d rollovers asked for (%d waited on), %d kills before the answer, %d while "
          "archive.in_progress was 1; %llu ticks sealed again at replays (a seal took %.0f ms)\n",
          rollovers, waited, before_answer, in_seal, (unsigned long long)sealed_again,
          seal_ms_sum / seal_ms_n);

  /* The last rollover takes everything left in memory (all of it is of
   * 2023): every tick is then in the archive, once. */
  char *a = ask(&d, "rollover", QUERY_MS);
  if (strncmp(a, "{\"ok\":true,", 11) != 0) TEST_FAIL("rollover answered \"%s\"", a);
  free(a);
  char *st = stats_text(&d);
  ASSERT_U64_EQ(stat_of(st, "ticks.stored"), 0);
  ASSERT_U64_EQ(stat_of(st, "archive.ticks"), held);
  ASSERT_U64_EQ(stat_of(st, "archive.failed"), 0);
  free(st);
  ASSERT_U64_EQ(check_all(&d, rounds), held);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  daemon_cleanup(&d);
}

TEST_MAIN()
