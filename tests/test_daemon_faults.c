/*
 * Black-box tests of a failing disk under the journal, through the fault
 * seam tests/faultfs.c ($FAULTFS_LIB, LD_PRELOADed into the real tickslabd):
 * write and fsync failing with EIO or ENOSPC on the journal's files.  The
 * claim under test: no tick is ever reported durable (a `sync` answer,
 * ticks.durable) after a failure that was not followed by a good fsync,
 * and a failed fsync is sticky: the kernel may have dropped the pages, so
 * a later fsync that succeeds proves nothing about them.  Faults are armed
 * at run time by creating a file (FAULTFS_ARM).  Bounded in count and time.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>

#include "encode.h"
#include "harness.h"
#include "test.h"

#define TS0 INT64_C(1700000000000000000)
#define FIRST 1000 /* ticks made durable before the fault */
#define MORE 100   /* ticks sent while it is armed */

struct faulty {
  struct tks_daemon d;
  char arm[160];
  char env[8][4200];
  char *envp[9];
};

static void send_ticks(const struct tks_daemon *d, int64_t i0, int64_t i1) {
  struct tks_buf b;
  tks_buf_init(&b);
  for (int64_t i = i0; i < i1; i++) {
    struct tks_kv kv[] = {
        {"ticker", {.type = TKS_V_STR, .v.s = {"FLT", 3}}},
        {"ts", {.type = TKS_V_INT, .v.i = TS0 + i}},
        {"price", {.type = TKS_V_F64, .v.f = 1.5}},
        {"volume", {.type = TKS_V_INT, .v.i = i}},
    };
    ASSERT_EQ(tks_encode_map(&b, kv, TKS_ARRAY_SIZE(kv)), 0);
  }
  int fd = daemon_connect_ingest(d);
  ASSERT_EQ(send_all(fd, b.data, b.len), 0);
  daemon_expect_stat(d, "ticks.accepted", (uint64_t)i1, 10000);
  close(fd);
  tks_buf_finish(&b);
}

/* `sync` on fd: the durable count, or -1 if no answer came in timeout_ms. */
static long long sync_answer(int fd, int timeout_ms) {
  char *r = read_until(fd, "\n\n", 1, timeout_ms, NULL);
  long long n = -1;
  const char *p = strstr(r, "\"durable\":");
  if (p)
    n = strtoll(p + 10, NULL, 10);
  else if (strstr(r, "\n\n"))
    TEST_FAIL("sync answered \"%s\"", r);
  free(r);
  return n;
}

static long long sync_now(const struct tks_daemon *d, int timeout_ms) {
  int fd = control_connect(d->sock);
  ASSERT(fd >= 0);
  ASSERT_EQ(send_all(fd, "sync\n", 5), 0);
  long long n = sync_answer(fd, timeout_ms);
  close(fd);
  return n;
}

/* Starts a daemon (fsync: always) with faultfs failing `ops` with `err`
 * on its journal directory, `times` times (0: for as long as armed), once
 * armed, each call slowed by delay_ms ("none" for err: slowed only).
 * Skips where the seam cannot be loaded. */
static void start_faulty(struct faulty *f, const char *ops, const char *err, int times,
                         int delay_ms) {
  /* $FAULTFS_LIB (meson sets it), else next to this executable. */
  const char *lib = getenv("FAULTFS_LIB");
  static char here[4000];
  if (!lib) {
    ssize_t n = readlink("/proc/self/exe", here, sizeof here - 32);
    char *slash = n > 0 ? memrchr(here, '/', (size_t)n) : NULL;
    if (slash) strcpy(slash + 1, "libfaultfs.so");
    lib = slash ? here : NULL;
  }
  if (!lib || access(lib, R_OK) != 0)
    TEST_SKIP("no fault seam: FAULTFS_LIB (tests/faultfs.c built as a shared library) not set "
              "or not readable");
  struct tks_daemon *d = &f->d;
  daemon_prepare(d, NULL, NULL);
  char yaml[512];
  /* Checkpoints off: the restarts here replay the journal. */
  snprintf(yaml, sizeof yaml,
           "journal:\n  dir: \"%s/journal\"\n  fsync: always\n  checkpoint_interval: 0\n"
           "  checkpoint_bytes: 0\n",
           d->dir);
  daemon_write_config(d, NULL, yaml);
  snprintf(f->arm, sizeof f->arm, "%s/faultfs.arm", d->dir);
  int n = 0;
  snprintf(f->env[n++], sizeof f->env[0], "LD_PRELOAD=%s", lib);
  snprintf(f->env[n++], sizeof f->env[0], "FAULTFS_DIR=%s/journal", d->dir);
  snprintf(f->env[n++], sizeof f->env[0], "FAULTFS_OPS=%s", ops);
  snprintf(f->env[n++], sizeof f->env[0], "FAULTFS_ERRNO=%s", err);
  snprintf(f->env[n++], sizeof f->env[0], "FAULTFS_TIMES=%d", times);
  snprintf(f->env[n++], sizeof f->env[0], "FAULTFS_ARM=%s", f->arm);
  snprintf(f->env[n++], sizeof f->env[0], "FAULTFS_DELAY_MS=%d", delay_ms);
  if (UNDER_ASAN) {
    /* The seam comes before the ASan runtime in the library list. */
    const char *o = getenv("ASAN_OPTIONS");
    snprintf(f->env[n++], sizeof f->env[0], "ASAN_OPTIONS=%s%sverify_asan_link_order=0", o ? o : "",
             o && *o ? ":" : "");
  }
  for (int i = 0; i < n; i++) f->envp[i] = f->env[i];
  f->envp[n] = NULL;
  daemon_spawn(d, f->envp);
  /* Under ASan the preload may still be refused: say so rather than fail. */
  for (uint64_t until = now_ms() + HARNESS_READY_MS; now_ms() < until; sleep_ms(20)) {
    if (daemon_wait_exit(d, 0) >= 0) {
      char *log = daemon_log(d);
      if (UNDER_ASAN && strstr(log, "ASan"))
        TEST_SKIP("the daemon does not start with the LD_PRELOAD seam under ASan: %.200s", log);
      TEST_FAIL("the daemon exited at start with the fault seam; log:\n%s", log);
    }
    char *r = daemon_request(d, "ping");
    bool up = r && strstr(r, "\"ok\":true");
    free(r);
    if (up) break;
  }
  daemon_wait_ready(d);
}

static void arm(struct faulty *f) { write_file(f->arm, "1"); }
static void disarm(struct faulty *f) { ASSERT_EQ(unlink(f->arm), 0); }

static void wait_failing(const struct faulty *f) {
  uint64_t errors = daemon_wait_stat(&f->d, "journal.write_errors", 1, 10000);
  if (errors < 1) {
    char *log = daemon_log(&f->d);
    TEST_FAIL("no journal.write_errors 10 s after arming the fault; log:\n%s", log);
  }
}

/* ticks.durable over a second: never above `most`. */
static void durable_stays_at_most(const struct faulty *f, uint64_t most, const char *what) {
  for (int k = 0; k < 20; k++, sleep_ms(50)) {
    uint64_t v = daemon_stat(&f->d, "ticks.durable");
    if (v > most)
      TEST_FAIL("%s: ticks.durable %llu, but only %llu were fsynced before the failure", what,
                (unsigned long long)v, (unsigned long long)most);
  }
}

/* An fsync fails once; every later fsync would succeed.  Sticky: nothing
 * written since the last good fsync is ever counted durable, until restart. */
static void fsync_failure_is_sticky(const char *err) {
  struct faulty f;
  start_faulty(&f, "fsync,fdatasync", err, 1, 0);
  send_ticks(&f.d, 0, FIRST);
  ASSERT_EQ(sync_now(&f.d, 10000), FIRST);
  arm(&f);
  int sfd = control_connect(f.d.sock); /* a sync asked while it fails */
  ASSERT(sfd >= 0);
  send_ticks(&f.d, FIRST, FIRST + MORE);
  ASSERT_EQ(send_all(sfd, "sync\n", 5), 0);
  wait_failing(&f);
  long long said = sync_answer(sfd, 1500);
  if (said > FIRST) TEST_FAIL("%s fsync failure: sync said %lld durable", err, said);
  durable_stays_at_most(&f, FIRST, err);
  /* The writer retries every 100 ms, and an fsync would succeed now (ingest
   * is held: on_error backpressure): still nothing more is durable. */
  sleep_ms(300);
  long long again = sync_now(&f.d, 1000);
  if (again > FIRST) TEST_FAIL("%s fsync failure: a later sync said %lld durable", err, again);
  durable_stays_at_most(&f, FIRST, err);
  char *state = daemon_request(&f.d, "stats text");
  ASSERT_CONTAINS(state, "journal.state failing");
  free(state);
  /* At the stop a waiting sync may be answered, with what is true. */
  daemon_stop(&f.d, SIGTERM);
  if (said < 0) {
    said = sync_answer(sfd, 2000);
    if (said > FIRST) TEST_FAIL("%s fsync failure: sync answered %lld at the stop", err, said);
  }
  close(sfd);
  char *log = daemon_log(&f.d);
  ASSERT_CONTAINS(log, strcmp(err, "EIO") == 0 ? "Input/output error" : "No space left on device");
  free(log);
  daemon_cleanup(&f.d);
}

TEST_TIMEOUT(an_fsync_eio_is_sticky_and_nothing_after_it_is_ever_durable, 60) {
  fsync_failure_is_sticky("EIO");
}

TEST_TIMEOUT(an_fsync_enospc_is_sticky_and_nothing_after_it_is_ever_durable, 60) {
  fsync_failure_is_sticky("ENOSPC");
}

/* Writes fail for as long as armed: nothing new is durable meanwhile; once
 * they succeed again (and are fsynced) the held ticks are, exactly once. */
static void write_failure_holds_durability(const char *ops, const char *err) {
  struct faulty f;
  start_faulty(&f, ops, err, 0, 0);
  send_ticks(&f.d, 0, FIRST);
  ASSERT_EQ(sync_now(&f.d, 10000), FIRST);
  arm(&f);
  int sfd = control_connect(f.d.sock);
  ASSERT(sfd >= 0);
  send_ticks(&f.d, FIRST, FIRST + MORE);
  ASSERT_EQ(send_all(sfd, "sync\n", 5), 0);
  wait_failing(&f);
  long long said = sync_answer(sfd, 1000);
  if (said >= 0) TEST_FAIL("%s %s failing: sync answered %lld", ops, err, said);
  durable_stays_at_most(&f, FIRST, err);
  disarm(&f);
  said = sync_answer(sfd, 10000);
  close(sfd);
  ASSERT_EQ(said, FIRST + MORE);
  ASSERT_U64_EQ(daemon_stat(&f.d, "ticks.durable"), FIRST + MORE);
  ASSERT_EQ(daemon_stop(&f.d, SIGTERM), 0);
  /* What the journal holds: every tick once. */
  daemon_spawn(&f.d, NULL);
  daemon_wait_ready(&f.d);
  ASSERT_U64_EQ(daemon_stat(&f.d, "journal.replayed_ticks"), FIRST + MORE);
  ASSERT_EQ(daemon_stop(&f.d, SIGTERM), 0);
  daemon_cleanup(&f.d);
}

TEST_TIMEOUT(a_write_eio_holds_durability_until_writes_and_an_fsync_succeed, 60) {
  write_failure_holds_durability("write,pwrite", "EIO");
}

TEST_TIMEOUT(a_write_enospc_holds_durability_until_writes_and_an_fsync_succeed, 60) {
  write_failure_holds_durability("write,pwrite", "ENOSPC");
}

/* stats text's value of path in text, as a number. */
static uint64_t stat_in(const char *text, const char *path) {
  char v[64];
  if (stats_text_lookup(text, path, v, sizeof v) != 0) TEST_FAIL("no %s in stats", path);
  return strtoull(v, NULL, 10);
}

/* A slow disk (each journal write 150 ms while armed): the ticks the writer
 * is behind on wait in the journal's buffers, counted in
 * memory.journal_buffer_bytes and memory.total_bytes; once it caught up
 * and a second passed with nothing to write, the buffers are given back. */
TEST_TIMEOUT(journal_buffers_are_counted_while_ticks_wait_and_given_back_after, 60) {
  struct faulty f;
  start_faulty(&f, "write,pwrite", "none", 0, 150);
  send_ticks(&f.d, 0, FIRST);
  ASSERT_EQ(sync_now(&f.d, 10000), FIRST);
  arm(&f);
  const int64_t n = 200000; /* about 8 MB of ticks */
  send_ticks(&f.d, FIRST, FIRST + n);
  char *st = daemon_request(&f.d, "stats text");
  ASSERT(st);
  uint64_t waiting = stat_in(st, "memory.journal_buffer_bytes");
  if (waiting < (4u << 20))
    TEST_FAIL("memory.journal_buffer_bytes %llu with ~8 MB of ticks behind a slow disk\n%s",
              (unsigned long long)waiting, st);
  ASSERT_U64_EQ(stat_in(st, "memory.total_bytes"),
                stat_in(st, "memory.slab_bytes") - stat_in(st, "memory.slab_untouched_bytes") +
                    stat_in(st, "memory.symbol_bytes") + stat_in(st, "memory.index_bytes") +
                    waiting + stat_in(st, "memory.read_buffer_bytes") +
                    stat_in(st, "memory.query_buffer_bytes"));
  free(st);
  disarm(&f);
  ASSERT_EQ(sync_now(&f.d, 20000), FIRST + n);
  /* Given back: at most 1 MiB each of batch, queue, work and journal buffer. */
  uint64_t left = waiting;
  for (uint64_t until = now_ms() + 10000; now_ms() < until && left > (4u << 20); sleep_ms(100))
    left = daemon_stat(&f.d, "memory.journal_buffer_bytes");
  if (left > (4u << 20))
    TEST_FAIL("memory.journal_buffer_bytes still %llu (was %llu) 10 s after the journal caught up",
              (unsigned long long)left, (unsigned long long)waiting);
  ASSERT_EQ(daemon_stop(&f.d, SIGTERM), 0);
  daemon_cleanup(&f.d);
}

TEST_MAIN()
