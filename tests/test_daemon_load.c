/*
 * Black-box tests of the start against the real tickslabd: the sockets are
 * bound before the journal is replayed (a port in use, or a control socket
 * path that cannot be made, exits 1 without replaying); while a long replay
 * runs, ping and stats answer "loading" with growing progress, every other
 * request gets the loading error, ingest connections wait unread and their
 * ticks are all taken once ready; sd_notify sees STATUS=loading:,
 * EXTEND_TIMEOUT_USEC= and WATCHDOG=1 before READY=1; SIGTERM while loading
 * exits 0 and leaves the journal as it was; a missing middle segment is
 * refused under both journal.on_corrupt policies, naming it.
 *
 * The journals are written here with the library's journal writer, in the
 * daemon's payload layout (a receive time, then msgpack ticks), so that a
 * long one takes a second to write instead of a minute to stream.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "dirlock.h"
#include "encode.h"
#include "harness.h"
#include "journal.h"
#include "test.h"
#include "util.h"

#define TS0 INT64_C(1700000000000000000)
#define NSYM 100
#define FRAME_TICKS 4000 /* ticks a journal frame, as one large read holds */
/* A journal whose replay takes about a second here (a few million ticks a
 * second), long enough to be watched; ASan's build replays it slower. */
#define LONG_TICKS (UNDER_ASAN ? 2000000u : 4000000u)
/* A checkpoint loads several times faster than its journal replays. */
#define CKPT_TICKS (2 * LONG_TICKS)
#define LOAD_MS 120000 /* bound on a long load, under ASan too */

#define FMT(buf, ...)                                                         \
  do {                                                                        \
    int n_ = snprintf((buf), sizeof(buf), __VA_ARGS__);                       \
    if (n_ < 0 || (size_t)n_ >= sizeof(buf)) TEST_FAIL("%s: too long", #buf); \
  } while (0)

/* ---- journals written here ---- */

/* Tick i of a stream over NSYM symbols ("L000".."L099"), round r: ts unique
 * per symbol and round. */
static void encode_tick(struct tks_buf *b, int round, uint64_t i) {
  char ticker[8];
  FMT(ticker, "L%03u", (unsigned)(i % NSYM));
  struct tks_kv kv[4] = {
      {"ticker", {.type = TKS_V_STR, .v.s = {ticker, 4}}},
      {"ts",
       {.type = TKS_V_INT,
        .v.i = TS0 + (int64_t)round * INT64_C(1000000000000) + (int64_t)i * 1000}},
      {"price", {.type = TKS_V_F64, .v.f = 100.0 + (double)(i % 400) * 0.25}},
      {"volume", {.type = TKS_V_INT, .v.i = (int64_t)(i % 1000) + 1}},
  };
  /* The keys in one of their 24 orders, turning over tick by tick: the
   * shape cache (lib/shape.c) never settles, so the replay decodes every
   * tick with the general decoder, and a journal of LONG_TICKS takes long
   * enough to load for the tests to watch it loading. */
  static const uint8_t perms[24][4] = {
      {0, 1, 2, 3}, {0, 1, 3, 2}, {0, 2, 1, 3}, {0, 2, 3, 1}, {0, 3, 1, 2}, {0, 3, 2, 1},
      {1, 0, 2, 3}, {1, 0, 3, 2}, {1, 2, 0, 3}, {1, 2, 3, 0}, {1, 3, 0, 2}, {1, 3, 2, 0},
      {2, 0, 1, 3}, {2, 0, 3, 1}, {2, 1, 0, 3}, {2, 1, 3, 0}, {2, 3, 0, 1}, {2, 3, 1, 0},
      {3, 0, 1, 2}, {3, 0, 2, 1}, {3, 1, 0, 2}, {3, 1, 2, 0}, {3, 2, 0, 1}, {3, 2, 1, 0}};
  struct tks_kv ordered[4];
  for (int k = 0; k < 4; k++) ordered[k] = kv[perms[i % 24][k]];
  if (tks_encode_map(b, ordered, 4) != 0) TEST_FAIL("out of memory");
}

/* Writes ticks [0, n) of round 0 into dir as the daemon journals them, in
 * segments of segment_bytes. */
static void write_journal(const char *dir, uint64_t n, uint64_t segment_bytes) {
  char err[600];
  struct tks_journal *j = tks_journal_open(dir, segment_bytes, 0, err, sizeof err);
  if (!j) TEST_FAIL("journal open: %s", err);
  struct tks_buf b;
  tks_buf_init(&b);
  for (uint64_t i = 0; i < n;) {
    b.len = 0;
    int64_t recv_ns = TS0;
    tks_buf_append(&b, &recv_ns, sizeof recv_ns);
    for (unsigned k = 0; k < FRAME_TICKS && i < n; k++, i++) encode_tick(&b, 0, i);
    if (tks_journal_append(j, b.data, b.len) != 0) TEST_FAIL("journal append");
    if (tks_journal_pending(j) >= (8u << 20) && tks_journal_flush(j, false) != 0)
      TEST_FAIL("journal flush");
  }
  if (tks_journal_flush(j, true) != 0) TEST_FAIL("journal flush");
  tks_journal_close(j);
  tks_buf_finish(&b);
}

static void seg_path(char *out, size_t n, const char *dir, unsigned seq) {
  snprintf(out, n, "%s/journal-%020u.tkj", dir, seq);
}

static long long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* Names and sizes of the entries of dir, "name size\n" sorted by name;
 * the lock file (tickslabd.lock, the pid of whoever started last) and the
 * day archive's directory (archive.dir's default) left out, as they are
 * the daemon's and not the journal's. */
static char *dir_listing(const char *dir) {
  struct dirent **list;
  int n = scandir(dir, &list, NULL, alphasort);
  if (n < 0) TEST_FAIL("scandir %s: %s", dir, strerror(errno));
  struct tks_buf b;
  tks_buf_init(&b);
  for (int i = 0; i < n; i++) {
    if (list[i]->d_name[0] != '.' && strcmp(list[i]->d_name, TKS_DIRLOCK_NAME) != 0 &&
        strcmp(list[i]->d_name, "archive") != 0) {
      char path[600];
      FMT(path, "%s/%s", dir, list[i]->d_name);
      tks_buf_printf(&b, "%s %lld\n", list[i]->d_name, file_size(path));
    }
    free(list[i]);
  }
  free(list);
  tks_buf_putc(&b, '\0');
  return b.data;
}

/* Bytes of the segment files of dir. */
static uint64_t journal_bytes(const char *dir) {
  uint64_t total = 0;
  for (unsigned seq = 1;; seq++) {
    char path[600];
    seg_path(path, sizeof path, dir, seq);
    long long size = file_size(path);
    if (size < 0) break;
    total += (uint64_t)size;
  }
  return total;
}

/* ---- the daemon ---- */

/* d's config (d prepared): its journal in jdir (plus journal keys `keys`,
 * indented by two spaces, or NULL), ingest on `listen`, control on d->sock. */
static void write_config(struct tks_daemon *d, const char *listen, const char *jdir,
                         const char *keys) {
  char yaml[2048];
  FMT(yaml,
      "ingest:\n"
      "  listen: \"%s\"\n"
      "subscribe:\n"
      "  listen: \"127.0.0.1:0\"\n"
      "control:\n"
      "  socket: \"%s\"\n"
      "journal:\n"
      "  dir: \"%s\"\n"
      "%s",
      listen, d->sock, jdir, keys ? keys : "");
  write_file(d->config, yaml);
}

static void fail_if_dead(struct tks_daemon *d) {
  int code = daemon_wait_exit(d, 0);
  if (code < 0) return;
  char *log = daemon_log(d);
  TEST_FAIL("tickslabd exited with %d; log:\n%s", code, log);
}

/* One request on a new connection, or NULL if the socket is not there yet. */
static char *request(struct tks_daemon *d, const char *req) {
  fail_if_dead(d);
  return daemon_request(d, req);
}

static bool is_loading_ping(const char *r) {
  return r && strcmp(r, "{\"ok\":true,\"state\":\"loading\"}\n\n") == 0;
}

/* Waits for the first ping answer; returns true if it says loading. */
static bool await_first_ping(struct tks_daemon *d) {
  uint64_t deadline = now_ms() + HARNESS_READY_MS;
  for (;;) {
    char *r = request(d, "ping");
    if (r) {
      bool loading = is_loading_ping(r);
      if (!loading && strcmp(r, "{\"ok\":true}\n\n") != 0) TEST_FAIL("ping answered \"%s\"", r);
      free(r);
      return loading;
    }
    if (now_ms() > deadline) TEST_FAIL("no ping answered within %d ms", HARNESS_READY_MS);
    sleep_ms(2);
  }
}

/* Waits until ping answers as ready (bounded by LOAD_MS). */
static void await_ready(struct tks_daemon *d) {
  uint64_t deadline = now_ms() + LOAD_MS;
  for (;;) {
    char *r = request(d, "ping");
    bool ready = r && strcmp(r, "{\"ok\":true}\n\n") == 0;
    free(r);
    if (ready) break;
    if (now_ms() > deadline) TEST_FAIL("not ready within %d ms", LOAD_MS);
    sleep_ms(10);
  }
  daemon_wait_ready(d); /* reads the port */
}

/* `stats` as flattened text, or NULL. */
static char *stats_flat(struct tks_daemon *d) {
  char *r = request(d, "stats");
  if (!r) return NULL;
  char *flat = json_flatten(r);
  if (!flat) TEST_FAIL("stats is not JSON: %s", r);
  free(r);
  return flat;
}

static uint64_t flat_u64(const char *flat, const char *path) {
  char v[64];
  if (stats_text_lookup(flat, path, v, sizeof v) != 0) TEST_FAIL("no %s in:\n%s", path, flat);
  return strtoull(v, NULL, 10);
}

static bool flat_is(const char *flat, const char *path, const char *want) {
  char v[128];
  return stats_text_lookup(flat, path, v, sizeof v) == 0 && strcmp(v, want) == 0;
}

/* A TCP connection to 127.0.0.1:port, not blocking. */
static int connect_nonblocking(int port) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) TEST_FAIL("socket: %s", strerror(errno));
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    TEST_FAIL("connect 127.0.0.1:%d: %s", port, strerror(errno));
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

/* Writes what the socket takes now; returns the bytes written. */
static size_t send_what_fits(int fd, const char *p, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t w = send(fd, p + done, n - done, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (w <= 0) TEST_FAIL("send: %s", strerror(errno));
    done += (size_t)w;
  }
  return done;
}

/* ---- the sockets come first ---- */

TEST_TIMEOUT(port_in_use_exits_1_at_once_without_replaying_the_journal, 120) {
  struct tks_daemon d;
  daemon_prepare(&d, NULL, NULL);
  char jdir[128];
  FMT(jdir, "%s/journal", d.dir);
  write_journal(jdir, LONG_TICKS, 256u << 20);
  char *before = dir_listing(jdir);
  /* Something else holds the port. */
  int holder = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(holder, (struct sockaddr *)&sa, sizeof sa), 0);
  ASSERT_EQ(listen(holder, 8), 0);
  int port = local_port(holder);
  char listen_at[64];
  FMT(listen_at, "127.0.0.1:%d", port);
  write_config(&d, listen_at, jdir, NULL);
  daemon_spawn(&d, NULL);
  int code = daemon_wait_exit(&d, LOAD_MS);
  char *log = daemon_log(&d);
  if (code != 1) TEST_FAIL("exit %d, want 1; log:\n%s", code, log);
  char want[128];
  FMT(want, "cannot listen on %s: Address already in use", listen_at);
  ASSERT_CONTAINS(log, want);
  /* Found before any loading: no replay began. */
  ASSERT_NOT_CONTAINS(log, "replaying the journal");
  ASSERT_NOT_CONTAINS(log, "replay:");
  ASSERT_EQ(access(d.sock, F_OK), -1);
  char *after = dir_listing(jdir);
  ASSERT_STR_EQ(after, before);
  free(log);
  free(before);
  free(after);
  close(holder);
  daemon_cleanup(&d);
}

TEST_TIMEOUT(control_socket_path_that_cannot_be_made_exits_1_without_replaying, 120) {
  struct tks_daemon d;
  daemon_prepare(&d, NULL, NULL);
  char jdir[128], file[128];
  FMT(jdir, "%s/journal", d.dir);
  write_journal(jdir, 100000, 256u << 20);
  /* The socket's directory is a regular file. */
  FMT(file, "%s/not-a-dir", d.dir);
  write_file(file, "x");
  FMT(d.sock, "%s/not-a-dir/control.sock", d.dir);
  write_config(&d, "127.0.0.1:0", jdir, NULL);
  daemon_spawn(&d, NULL);
  int code = daemon_wait_exit(&d, LOAD_MS);
  char *log = daemon_log(&d);
  if (code != 1) TEST_FAIL("exit %d, want 1; log:\n%s", code, log);
  ASSERT_CONTAINS(log, d.sock);
  ASSERT_NOT_CONTAINS(log, "replaying the journal");
  free(log);
  daemon_cleanup(&d);
}

/* ---- while loading ---- */

TEST_TIMEOUT(ping_and_stats_answer_while_loading_and_everything_else_gets_the_loading_error, 240) {
  struct tks_daemon d;
  daemon_prepare(&d, NULL, NULL);
  char jdir[128];
  FMT(jdir, "%s/journal", d.dir);
  write_journal(jdir, LONG_TICKS, 64u << 20);
  uint64_t total = journal_bytes(jdir);
  write_config(&d, "127.0.0.1:0", jdir, NULL);
  daemon_spawn(&d, NULL);
  ASSERT(await_first_ping(&d));

  /* Progress, sampled until the load ends: bytes_done grows to bytes_total
   * (the segment files' bytes), the phase is the journal. */
  unsigned samples = 0, growing = 0;
  uint64_t last_done = 0, last_ticks = 0;
  bool checked_others = false;
  for (uint64_t deadline = now_ms() + LOAD_MS;;) {
    char *flat = stats_flat(&d);
    ASSERT(flat);
    if (flat_is(flat, "state", "ready")) {
      free(flat);
      break;
    }
    if (!flat_is(flat, "state", "loading"))
      TEST_FAIL("state is neither loading nor ready:\n%s", flat);
    if (!flat_is(flat, "loading.phase", "journal"))
      TEST_FAIL("loading.phase is not journal (sample %u):\n%s", samples, flat);
    ASSERT_U64_EQ(flat_u64(flat, "loading.bytes_total"), total);
    ASSERT_U64_EQ(flat_u64(flat, "pid"), (uint64_t)d.pid);
    ASSERT(flat_u64(flat, "ingest.port") > 0);
    uint64_t done = flat_u64(flat, "loading.bytes_done"), ticks = flat_u64(flat, "loading.ticks");
    if (done < last_done || ticks < last_ticks)
      TEST_FAIL("progress went back: %llu bytes, %llu ticks after %llu, %llu",
                (unsigned long long)done, (unsigned long long)ticks, (unsigned long long)last_done,
                (unsigned long long)last_ticks);
    ASSERT(done <= total);
    /* Whole percents of the bytes read, rounded down. */
    ASSERT_U64_EQ(flat_u64(flat, "loading.percent"), done * 100 / total);
    if (done > last_done && last_done > 0) growing++;
    last_done = done;
    last_ticks = ticks;
    samples++;
    free(flat);

    if (!checked_others) {
      /* Every other request: the loading error, naming the progress
       * (unless the load ended in between). */
      static const char *const others[] = {"last L001 1", "range L001 0 1", "symbols",   "advice",
                                           "sync",        "stats slabs",    "frobnicate"};
      char *p;
      for (size_t i = 0; i < TKS_ARRAY_SIZE(others); i++) {
        char *r = request(&d, others[i]);
        ASSERT(r);
        p = request(&d, "ping");
        bool still = is_loading_ping(p);
        free(p);
        if (!still) {
          free(r);
          break;
        }
        if (strncmp(r, "{\"error\":\"loading\",\"detail\":\"the store is loading (", 48) != 0 ||
            !strstr(r, " bytes (") || !strstr(r, "only ping and stats are answered"))
          TEST_FAIL("`%s` while loading answered \"%s\"", others[i], r);
        free(r);
      }
      /* The CLI: ping says so, a refused request shows the detail. */
      struct cmd_result cr;
      char *ping_argv[] = {(char *)harness_tickslab(), "--socket", d.sock, "ping", NULL};
      run_cmd(ping_argv, NULL, NULL, 10000, &cr);
      ASSERT_EQ(cr.code, 0);
      bool cli_loading = strcmp(cr.out, "ok (loading)\n") == 0;
      if (!cli_loading) ASSERT_STR_EQ(cr.out, "ok\n");
      cmd_result_finish(&cr);
      char *last_argv[] = {(char *)harness_tickslab(), "--socket", d.sock, "last", "L001", NULL};
      run_cmd(last_argv, NULL, NULL, 10000, &cr);
      p = request(&d, "ping");
      if (cli_loading && is_loading_ping(p)) {
        ASSERT_EQ(cr.code, 1);
        ASSERT_CONTAINS(cr.err, "loading: the store is loading (");
      }
      free(p);
      cmd_result_finish(&cr);
      /* stats text and prometheus: the same loading figures. */
      char *t = request(&d, "stats text");
      char *pr = request(&d, "stats prometheus");
      ASSERT(t && pr);
      if (strstr(t, "state ready") == NULL) {
        ASSERT_CONTAINS(t, "state loading\n");
        ASSERT_CONTAINS(t, "loading.bytes_total ");
        ASSERT_CONTAINS(pr, "tickslab_loading_read_bytes ");
        ASSERT_CONTAINS(pr, "tickslab_state{state=\"loading\"} 1");
      }
      free(t);
      free(pr);
      checked_others = true;
    }
    if (now_ms() > deadline) TEST_FAIL("still loading after %d ms", LOAD_MS);
    sleep_ms(10);
  }
  printf("  %u loading samples, %u of them with more bytes than the one before\n", samples,
         growing);
  if (samples < 2 || growing < 1)
    TEST_FAIL("%u samples while loading, %u growing: the journal replayed too fast to watch "
              "(raise LONG_TICKS)",
              samples, growing);

  /* Ready: everything as before, the whole journal in. */
  await_ready(&d);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), LONG_TICKS);
  ASSERT_U64_EQ(daemon_stat(&d, "journal.replayed_ticks"), LONG_TICKS);
  char *r = request(&d, "last L001 1");
  ASSERT(r && strstr(r, "\"ticker\":\"L001\""));
  free(r);
  char *log = daemon_log(&d);
  ASSERT_CONTAINS(log, "loaded in ");
  free(log);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  daemon_cleanup(&d);
}

/* The checkpoint step: the clean stop writes one; the next start loads it
 * in slices too, ping and stats answering with phase "checkpoint" and
 * its bytes, then replays only the (empty) journal after it. */
TEST_TIMEOUT(a_checkpoint_loads_in_slices_while_ping_and_stats_answer, 240) {
  struct tks_daemon d;
  daemon_prepare(&d, NULL, NULL);
  char jdir[128];
  FMT(jdir, "%s/journal", d.dir);
  write_journal(jdir, CKPT_TICKS, 64u << 20);
  write_config(&d, "127.0.0.1:0", jdir, NULL);
  daemon_spawn(&d, NULL);
  await_ready(&d);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0); /* writes checkpoint-<N>.tkc */
  char *log = daemon_log(&d);
  size_t log_from = strlen(log);
  free(log);

  daemon_spawn(&d, NULL);
  ASSERT(await_first_ping(&d));
  unsigned samples = 0, growing = 0;
  uint64_t last_done = 0, total = 0;
  for (uint64_t deadline = now_ms() + LOAD_MS;;) {
    char *flat = stats_flat(&d);
    ASSERT(flat);
    if (flat_is(flat, "state", "ready")) {
      free(flat);
      break;
    }
    ASSERT(flat_is(flat, "state", "loading"));
    if (flat_is(flat, "loading.phase", "checkpoint")) {
      uint64_t done = flat_u64(flat, "loading.bytes_done");
      total = flat_u64(flat, "loading.bytes_total");
      ASSERT(total > 0 && done <= total && done >= last_done);
      if (done > last_done && last_done > 0) growing++;
      last_done = done;
      samples++;
    } else {
      ASSERT(flat_is(flat, "loading.phase", "journal"));
    }
    free(flat);
    char *r = request(&d, "ping");
    ASSERT(r && (is_loading_ping(r) || strcmp(r, "{\"ok\":true}\n\n") == 0));
    free(r);
    if (now_ms() > deadline) TEST_FAIL("still loading after %d ms", LOAD_MS);
    sleep_ms(5);
  }
  printf("  %u samples in the checkpoint phase (%llu bytes), %u growing\n", samples,
         (unsigned long long)total, growing);
  /* A request while loading takes a loop turn or two, each with a slice:
   * at least one answer must have come while the checkpoint loaded. */
  if (samples < 1)
    TEST_FAIL("no stats answer while the checkpoint loaded: it loaded too fast to watch "
              "(raise CKPT_TICKS)");
  await_ready(&d);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), CKPT_TICKS);
  ASSERT_U64_EQ(daemon_stat(&d, "checkpoint.loaded_ticks"), CKPT_TICKS);
  ASSERT_U64_EQ(daemon_stat(&d, "journal.replayed_ticks"), 0);
  log = daemon_log(&d);
  ASSERT_CONTAINS(log + log_from, "loading checkpoint ");
  ASSERT_CONTAINS(log + log_from, "replay resumes at segment ");
  const char *loaded = strstr(log + log_from, "loaded in ");
  double secs;
  unsigned slices;
  ASSERT(loaded && sscanf(loaded, "loaded in %lf s (%u slices", &secs, &slices) == 2);
  printf("  loaded in %.2f s, %u slices\n", secs, slices);
  ASSERT(slices >= 2);
  free(log);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  daemon_cleanup(&d);
}

TEST_TIMEOUT(stats_while_loading_are_the_readme_loading_table_both_ways, 240) {
  struct tks_daemon d;
  daemon_prepare(&d, NULL, NULL);
  char jdir[128];
  FMT(jdir, "%s/journal", d.dir);
  write_journal(jdir, LONG_TICKS, 64u << 20);
  write_config(&d, "127.0.0.1:0", jdir, NULL);
  daemon_spawn(&d, NULL);
  ASSERT(await_first_ping(&d));
  char *t = request(&d, "stats text");
  ASSERT(t);
  if (!strstr(t, "state loading\n")) TEST_FAIL("loaded before the first stats: raise LONG_TICKS");
  static char *doc[256], *got[256];
  unsigned ndoc = readme_stat_names("Stats while loading, in one table", doc, 256), ngot = 0;
  for (char *line = t, *nl; (nl = strchr(line, '\n')) && nl != line; line = nl + 1)
    if (ngot < 256) got[ngot++] = strndup(line, strcspn(line, " "));
  ASSERT(ndoc >= 10);
  ASSERT_U64_EQ(stat_names_compare(doc, ndoc, got, ngot), 0);
  for (unsigned i = 0; i < ndoc; i++) free(doc[i]);
  for (unsigned i = 0; i < ngot; i++) free(got[i]);
  free(t);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  daemon_cleanup(&d);
}

TEST_TIMEOUT(ingest_connections_wait_unread_while_loading_and_every_tick_is_taken_once_ready, 240) {
  struct tks_daemon d;
  daemon_prepare(&d, NULL, NULL);
  char jdir[128];
  FMT(jdir, "%s/journal", d.dir);
  write_journal(jdir, LONG_TICKS, 64u << 20);
  write_config(&d, "127.0.0.1:0", jdir, NULL);
  daemon_spawn(&d, NULL);
  ASSERT(await_first_ping(&d));
  char *flat = stats_flat(&d);
  ASSERT(flat && flat_is(flat, "state", "loading"));
  int port = (int)flat_u64(flat, "ingest.port");
  free(flat);

  /* Far more than the kernel buffers hold: round 1, ticks 0..m-1. */
  const uint64_t m = 300000;
  struct tks_buf b;
  tks_buf_init(&b);
  for (uint64_t i = 0; i < m; i++) encode_tick(&b, 1, i);
  int fd = connect_nonblocking(port);
  size_t sent = send_what_fits(fd, b.data, b.len);
  /* The connection is accepted by the kernel but not read: once its
   * buffers are full nothing moves, however long we wait. */
  struct pollfd pfd = {.fd = fd, .events = POLLOUT};
  int pr = poll(&pfd, 1, 300);
  char *p = request(&d, "ping");
  bool still = is_loading_ping(p);
  free(p);
  if (!still) TEST_FAIL("loaded before the check: raise LONG_TICKS");
  if (pr != 0) TEST_FAIL("the socket took more bytes while loading (poll %d)", pr);
  if (sent >= b.len) TEST_FAIL("all %zu bytes went into the kernel buffers", b.len);
  printf("  %zu of %zu bytes queued in the kernel while loading\n", sent, b.len);

  /* Once ready, the rest goes through and every tick is taken. */
  uint64_t deadline = now_ms() + LOAD_MS;
  while (sent < b.len) {
    pfd.revents = 0;
    if (poll(&pfd, 1, 100) < 0 && errno != EINTR) TEST_FAIL("poll: %s", strerror(errno));
    sent += send_what_fits(fd, b.data + sent, b.len - sent);
    fail_if_dead(&d);
    if (now_ms() > deadline) TEST_FAIL("%zu of %zu bytes sent after %d ms", sent, b.len, LOAD_MS);
  }
  await_ready(&d);
  daemon_expect_stat(&d, "ticks.accepted", m, LOAD_MS);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), LONG_TICKS + m);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.rejected"), 0);
  ASSERT_U64_EQ(daemon_stat(&d, "journal.replayed_ticks"), LONG_TICKS);
  close(fd);
  tks_buf_finish(&b);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  daemon_cleanup(&d);
}

/* ---- systemd, signals ---- */

/* A datagram socket at dir/notify.sock; env gets "NOTIFY_SOCKET=...". */
static int notify_listener(const struct tks_daemon *d, char *env, size_t n) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s/notify.sock", d->dir);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT(fd >= 0);
  ASSERT_EQ(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  snprintf(env, n, "NOTIFY_SOCKET=%s", sa.sun_path);
  return fd;
}

TEST_TIMEOUT(notify_sees_loading_status_and_extend_timeout_then_ready, 240) {
  struct tks_daemon d;
  daemon_prepare(&d, NULL, NULL);
  char jdir[128], env[160];
  FMT(jdir, "%s/journal", d.dir);
  write_journal(jdir, LONG_TICKS, 64u << 20);
  write_config(&d, "127.0.0.1:0", jdir, NULL);
  int fd = notify_listener(&d, env, sizeof env);
  daemon_spawn(&d, (char *[]){env, "WATCHDOG_USEC=200000", NULL});
  /* Every datagram until READY=1, in order, one a line. */
  struct tks_buf all;
  tks_buf_init(&all);
  bool ready = false;
  for (uint64_t deadline = now_ms() + LOAD_MS; !ready;) {
    if (now_ms() > deadline) TEST_FAIL("no READY=1 within %d ms; got:\n%s", LOAD_MS, all.data);
    fail_if_dead(&d);
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (poll(&pfd, 1, 100) <= 0) continue;
    char msg[1024];
    ssize_t r = recv(fd, msg, sizeof msg - 1, 0);
    if (r <= 0) continue;
    msg[r] = '\0';
    tks_buf_printf(&all, "%s\n", msg);
    for (char *line = strtok(msg, "\n"); line; line = strtok(NULL, "\n"))
      if (!strcmp(line, "READY=1")) ready = true;
  }
  const char *text = all.data;
  const char *first_status = strstr(text, "STATUS=loading: ");
  const char *extend = strstr(text, "EXTEND_TIMEOUT_USEC=10000000\n");
  const char *ready_at = strstr(text, "READY=1");
  const char *watchdog = strstr(text, "WATCHDOG=1");
  if (!first_status || !extend || !watchdog || first_status > ready_at || extend > ready_at ||
      watchdog > ready_at)
    TEST_FAIL("want STATUS=loading:, EXTEND_TIMEOUT_USEC= and WATCHDOG=1 before READY=1; got:\n%s",
              text);
  /* "STATUS=loading: B of T bytes (P%), journal, N ticks", B growing. */
  uint64_t total = journal_bytes(jdir), last = 0;
  unsigned n = 0;
  for (const char *s = first_status; s && s < ready_at; s = strstr(s + 1, "STATUS=loading: ")) {
    unsigned long long done, of;
    unsigned pct;
    if (sscanf(s, "STATUS=loading: %llu of %llu bytes (%u%%), journal, ", &done, &of, &pct) != 3)
      TEST_FAIL("a loading status line of another shape: %.120s", s);
    ASSERT_U64_EQ(of, total);
    ASSERT(done >= last && done <= total && pct <= 100);
    last = done;
    n++;
  }
  ASSERT(n >= 2);
  /* The ready status is the usual one. */
  ASSERT_CONTAINS(ready_at, " ticks held, ");
  tks_buf_finish(&all);
  close(fd);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  daemon_cleanup(&d);
}

TEST_TIMEOUT(sigterm_while_loading_exits_0_and_leaves_the_journal_as_it_was, 240) {
  struct tks_daemon d;
  daemon_prepare(&d, NULL, NULL);
  char jdir[128];
  FMT(jdir, "%s/journal", d.dir);
  write_journal(jdir, LONG_TICKS, 64u << 20);
  char *before = dir_listing(jdir);
  write_config(&d, "127.0.0.1:0", jdir, NULL);
  daemon_spawn(&d, NULL);
  ASSERT(await_first_ping(&d));
  /* Part way in: some bytes read, not all. */
  for (uint64_t deadline = now_ms() + LOAD_MS;;) {
    char *flat = stats_flat(&d);
    ASSERT(flat);
    if (!flat_is(flat, "state", "loading")) TEST_FAIL("loaded before SIGTERM: raise LONG_TICKS");
    bool begun = flat_u64(flat, "loading.bytes_done") > 0;
    free(flat);
    if (begun) break;
    if (now_ms() > deadline) TEST_FAIL("no progress in %d ms", LOAD_MS);
    sleep_ms(2);
  }
  int code = daemon_stop(&d, SIGTERM);
  char *log = daemon_log(&d);
  if (code != 0) TEST_FAIL("exit %d after SIGTERM while loading, want 0; log:\n%s", code, log);
  ASSERT_CONTAINS(log, "replay abandoned after ");
  ASSERT_NOT_CONTAINS(log, "ready: mode");
  ASSERT_NOT_CONTAINS(log, "ingest listening");
  ASSERT_EQ(access(d.sock, F_OK), -1);
  free(log);
  /* Nothing written: the same files, the same sizes. */
  char *after = dir_listing(jdir);
  ASSERT_STR_EQ(after, before);
  /* And the next start has every tick. */
  daemon_spawn(&d, NULL);
  await_ready(&d);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), LONG_TICKS);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  free(before);
  free(after);
  daemon_cleanup(&d);
}

TEST_TIMEOUT(sighup_while_loading_is_applied_once_loaded, 240) {
  struct tks_daemon d;
  daemon_prepare(&d, NULL, NULL);
  char jdir[128];
  FMT(jdir, "%s/journal", d.dir);
  write_journal(jdir, LONG_TICKS, 64u << 20);
  write_config(&d, "127.0.0.1:0", jdir, NULL);
  daemon_spawn(&d, NULL);
  ASSERT(await_first_ping(&d));
  /* A live key changed, then SIGHUP while the replay runs. */
  char yaml[2048];
  FMT(yaml,
      "ingest:\n  listen: \"127.0.0.1:0\"\nsubscribe:\n  listen: \"127.0.0.1:0\"\ncontrol:\n  "
      "socket: \"%s\"\njournal:\n  dir: \"%s\"\n"
      "query:\n  max_rows: 7\n",
      d.sock, jdir);
  write_file(d.config, yaml);
  ASSERT_EQ(kill(d.pid, SIGHUP), 0);
  char *p = request(&d, "ping");
  bool still = is_loading_ping(p);
  free(p);
  if (!still) TEST_FAIL("loaded before SIGHUP was handled: raise LONG_TICKS");
  await_ready(&d);
  /* Applied after the load, not during it. */
  char *log = NULL;
  for (uint64_t deadline = now_ms() + 10000;;) {
    free(log);
    log = daemon_log(&d);
    if (strstr(log, "reload: applied 1 change")) break;
    if (now_ms() > deadline) TEST_FAIL("the reload was not applied once loaded; log:\n%s", log);
    sleep_ms(20);
  }
  const char *deferred = strstr(log, "SIGHUP while loading: the config is reloaded once loaded");
  const char *loaded = strstr(log, "loaded in ");
  const char *applied = strstr(log, "reload: query.max_rows ");
  if (!deferred || !loaded || !applied || deferred > loaded || applied < loaded)
    TEST_FAIL("want the SIGHUP deferred, the load, then the reload; log:\n%s", log);
  free(log);
  ASSERT_U64_EQ(daemon_stat(&d, "lifecycle.reloads"), 1);
  char *r = request(&d, "last L001 100");
  ASSERT_CONTAINS(r, "\"max_rows\":7");
  free(r);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  daemon_cleanup(&d);
}

/* ---- segment gaps ---- */

TEST_TIMEOUT(missing_middle_segment_exits_1_under_both_policies_naming_it, 120) {
  struct tks_daemon d;
  daemon_prepare(&d, NULL, NULL);
  char jdir[128], p2[600];
  FMT(jdir, "%s/journal", d.dir);
  write_journal(jdir, 200000, 1u << 20); /* ~11 MB in 1 MiB segments */
  seg_path(p2, sizeof p2, jdir, 2);
  char p4[600];
  seg_path(p4, sizeof p4, jdir, 4);
  ASSERT(file_size(p4) > 0);
  ASSERT_EQ(unlink(p2), 0);
  char *before = dir_listing(jdir);
  static const char *const policies[] = {"truncate", "refuse"};
  for (int pol = 0; pol < 2; pol++) {
    char keys[64];
    FMT(keys, "  on_corrupt: %s\n", policies[pol]);
    write_config(&d, "127.0.0.1:0", jdir, keys);
    char *earlier = daemon_log(&d);
    size_t from = strlen(earlier);
    free(earlier);
    daemon_spawn(&d, NULL);
    int code = daemon_wait_exit(&d, LOAD_MS);
    char *log = daemon_log(&d);
    const char *mine = log + from;
    if (code != 1) TEST_FAIL("on_corrupt %s: exit %d, want 1; log:\n%s", policies[pol], code, mine);
    char want[800];
    FMT(want,
        "journal: segment %s is missing (between journal-00000000000000000001.tkj and "
        "journal-00000000000000000003.tkj): refusing to replay past a gap",
        p2);
    ASSERT_CONTAINS(mine, want);
    ASSERT_NOT_CONTAINS(mine, "replay: ");
    ASSERT_NOT_CONTAINS(mine, "ready: mode");
    char *after = dir_listing(jdir);
    ASSERT_STR_EQ(after, before);
    free(after);
    free(log);
  }
  free(before);
  daemon_cleanup(&d);
}

TEST_MAIN()
