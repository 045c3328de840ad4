/*
 * The day archive in the daemon: sealing, reading, retention.
 *
 * A seal takes every tick older than a cut out of memory into archive.dir
 * (lib/archive.h: one directory a UTC day, parts written once).  A
 * rollover is a seal whose cut is the start of the current UTC day, at
 * archive.roll_at and on the control request `rollover`.  Like a
 * checkpoint it is written by a forked child from a copy-on-write image of
 * the store (the loop keeps serving); the ticks stay in memory, and in
 * queries, until the parts are durable, then leave it in one loop callback.
 *
 * Exactly once, across crashes.  Every seal has an id (above every id
 * before it) written into its parts.  In order:
 *   1. the journal gets a "seal begin" record (id, cut) among the ticks, and
 *      srv->seal_cut = cut: from here a late tick older than the cut is
 *      refused (reason sealing), so the ticks below the cut are exactly the
 *      ones the child sees;
 *   2. the child writes the parts of every day below the cut, each durable
 *      and renamed into its day (visible on disk, not yet to queries);
 *   3. the loop writes archive.dir/SEALED = id (atomic, fsynced): the
 *      commit.  Parts of a seal above SEALED are never read and are deleted
 *      at the next start;
 *   4. the journal gets a "seal commit" record, the ticks below the cut
 *      leave memory (tks_store_trim_before), and queries read the new parts.
 * A failed seal (the child's error, or killed) deletes its parts and
 * journals "seal abort".  A replay (durability.c) takes the ticks of a
 * committed seal out again at its commit record, or at the end when the
 * crash came between 3 and the record reaching the disk.  Checkpoints and
 * seals take turns, so a checkpoint's image never holds a seal half done.
 *
 * archive.dir is locked like journal.dir (one daemon a directory).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "archive.h"
#include "checkpoint.h"
#include "daemon.h"
#include "dirlock.h"

#define POLL_MS 1000               /* roll_at and retention are looked at this often */
#define STOP_CHILD_MS (600 * 1000) /* a seal in progress at the stop */
#define SEALED_FILE "SEALED"       /* the newest committed seal's id */
#define SEALED_MAX 64              /* bytes of it read */
#define WRITER_BUFFER (16u << 20)  /* a part writer's memory in the child */
#define NS_PER_DAY 86400000000000ll
#define FAILED_BACKOFF_NS 10000000000ull /* after a failed seal, evict_oldest evicts without one */

/* What the child says, in one write (under PIPE_BUF). */
struct child_result {
  int32_t rc;
  uint32_t parts, days;
  uint32_t pad;
  uint64_t ticks, bytes;
  char err[1024];
};
_Static_assert(sizeof(struct child_result) < 4096, "one atomic pipe write");

struct waiter {
  void (*done)(void *ctx, const struct tks_rollover_result *r);
  void *ctx;
};

static struct {
  bool enabled, started;
  char dir[4200];
  int lock_fd;
  struct tks_archive *reader; /* parts up to the committed seal */
  uint64_t next_seal;
  uv_timer_t timer;
  bool timer_open;
  int64_t next_roll_ns; /* wall clock of the next roll_at */
  int32_t retained_day; /* the first day kept when retention last ran */

  /* the seal in progress */
  bool sealing;
  enum { SEAL_ROLL, SEAL_PRESSURE, SEAL_RETAIN } kind;
  uint64_t evicted_below;  /* ticks below its cut evicted meanwhile (in its parts) */
  uint64_t last_retain_ns; /* mono ns a retention seal last began */
  uint64_t failed_ns;      /* mono ns the last seal failed */
  pid_t child;
  int result_fd;
  uv_poll_t *poll;
  uint64_t seal;
  int64_t cut;
  uint64_t t0;
  bool want_roll; /* a rollover is due or asked, and waits for a checkpoint */
  struct waiter *waiters;
  size_t nwaiters, cap;

  /* figures */
  uint64_t seals, failed, sealed_ticks, sealed_bytes, refused_since;
  uint64_t last_ticks, last_bytes;
  double last_seconds;
  int64_t last_roll_ns; /* wall clock of the last good seal, 0: none this run */
  uint64_t retention_days, retention_bytes, retention_ticks;
  uint64_t evicted_sealed, evicted_lost; /* evictions below a running seal's cut, and not */
  uint64_t pressure_seals, retain_seals;
  char last_error[4700];
} A = {.lock_fd = -1, .result_fd = -1};

/* ---- the directory: its lock and the commit file ------------------------ */

static void dir_of(const struct tks_config *cfg, char *out, size_t n) {
  if (cfg->archive.dir[0])
    snprintf(out, n, "%s", cfg->archive.dir);
  else
    snprintf(out, n, "%s/archive", cfg->journal.dir);
}

/* SEALED: the id as decimal text and a newline; missing is 0. */
static int read_sealed(const char *dir, uint64_t *out, char *err, size_t errlen) {
  char path[4300], buf[SEALED_MAX + 1];
  snprintf(path, sizeof path, "%s/%s", dir, SEALED_FILE);
  *out = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return 0;
    snprintf(err, errlen, "archive: %s: %s", path, strerror(errno));
    return -errno;
  }
  ssize_t n = read(fd, buf, SEALED_MAX);
  close(fd);
  if (n < 0) {
    snprintf(err, errlen, "archive: %s: %s", path, strerror(errno));
    return -EIO;
  }
  buf[n] = '\0';
  if (n > 1 && buf[n - 1] == '\n') buf[n - 1] = '\0';
  if (tks_parse_u64(buf, out) != 0) {
    snprintf(err, errlen,
             "archive: %s does not hold a seal id (a decimal number and a newline): which parts "
             "are committed is unknown; refusing to start (restore it, or remove the file and "
             "the parts it does not cover)",
             path);
    return -EBADMSG;
  }
  return 0;
}

int tks_archiver_open(struct tks_server *srv) {
  const struct tks_config *cfg = &srv->cfg;
  /* Without a journal nothing else is kept on disk: the archive too only
   * where archive.dir names a directory. */
  A.enabled = cfg->archive.enabled && (cfg->journal.enabled || cfg->archive.dir[0]);
  if (!A.enabled) {
    if (cfg->archive.enabled)
      tks_log(TKS_LOG_INFO, "archive off: the journal is off and archive.dir is not set");
    return 0;
  }
  dir_of(cfg, A.dir, sizeof A.dir);
  char err[5000];
  int r = tks_dirlock_take_waiting(A.dir, "archive.dir", TKS_DIRLOCK_DEAD_WAIT_MS, &A.lock_fd, err,
                                   sizeof err);
  if (r) {
    tks_log(TKS_LOG_ERROR, "%s", err);
    return r;
  }
  uint64_t committed;
  if ((r = read_sealed(A.dir, &committed, err, sizeof err))) {
    tks_log(TKS_LOG_ERROR, "%s", err);
    return r;
  }
  A.reader = tks_archive_open(A.dir, err, sizeof err);
  if (!A.reader) {
    tks_log(TKS_LOG_ERROR, "archive: %s", err);
    return -EIO;
  }
  /* Parts of a seal never committed (a crash between the child's rename
   * and the commit): their ticks are still in the journal and come back
   * with the replay. */
  uint64_t top = tks_archive_max_seal(A.reader);
  if (top > committed) {
    struct tks_archive_freed fr = {0};
    r = tks_archive_remove_seals_above(A.reader, committed, &fr);
    tks_log(r ? TKS_LOG_ERROR : TKS_LOG_WARN,
            "archive: removed %" PRIu32 " parts (%" PRIu64 " ticks) of a seal that was not "
            "committed (a crash during a seal; the journal holds those ticks)%s%s",
            fr.parts, fr.ticks, r ? ": " : "", r ? strerror(-r) : "");
    if (r) return r;
  }
  tks_archive_set_seal_limit(A.reader, committed);
  srv->seal_committed = committed;
  /* Ids above every one ever written: the wall clock, or one more. */
  uint64_t now = (uint64_t)tks_now_ns();
  A.next_seal = top > committed ? top + 1 : committed + 1;
  if (now > A.next_seal) A.next_seal = now;
  struct tks_archive_totals t;
  tks_archive_totals(A.reader, &t);
  tks_log(TKS_LOG_INFO, "archive in %s: %" PRIu32 " days, %" PRIu64 " ticks, %" PRIu64 " bytes",
          A.dir, t.days, t.ticks, t.bytes);
  return 0;
}

/* ---- the child ------------------------------------------------------------ */

struct first_ctx {
  int64_t ts;
  uint32_t ts_off;  /* the ts field's offset in a record */
  uint32_t ts_name; /* its id in the field names, 0 if none */
  bool found;
};

/* The first tick's ts: the record's, or a dynamic object's ts field (the
 * decoder always fills it). */
static int take_first(void *ctx, const void *record, const struct tks_dynobj *obj) {
  struct first_ctx *f = ctx;
  f->found = true;
  if (record) {
    memcpy(&f->ts, (const char *)record + f->ts_off, sizeof f->ts);
  } else {
    const struct tks_dyn_slot *s = f->ts_name ? tks_dynobj_get(obj, f->ts_name) : NULL;
    if (s && s->type == TKS_V_INT) f->ts = s->v.i;
  }
  return 1;
}

/* Adds day to the sorted set days[0, *n). */
static int add_day(int32_t **days, size_t *n, size_t *cap, int32_t day) {
  size_t lo = 0, hi = *n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if ((*days)[mid] < day)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < *n && (*days)[lo] == day) return 0;
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 16;
    int32_t *d = realloc(*days, c * sizeof *d);
    if (!d) return -ENOMEM;
    *days = d;
    *cap = c;
  }
  memmove(*days + lo + 1, *days + lo, (*n - lo) * sizeof **days);
  (*days)[lo] = day;
  (*n)++;
  return 0;
}

/* The days that hold ticks before cut: per symbol, the first tick at or
 * after the start of each day found, so the cost is the days, not the
 * ticks. */
static int days_below(struct tks_server *srv, int64_t cut, int32_t **days, size_t *n) {
  const struct tks_schema *sc = &srv->cfg.schema;
  const char *ts_field = sc->fields[sc->ts_field].name;
  uint32_t ts_name = 0;
  if (tks_symtab_lookup(srv->names, ts_field, strlen(ts_field), &ts_name) != 0) ts_name = 0;
  size_t cap = 0;
  *days = NULL;
  *n = 0;
  uint32_t limit = tks_store_symbol_limit(srv->store);
  for (uint32_t sym = 1; sym < limit; sym++) {
    struct tks_series_info info;
    if (tks_store_series(srv->store, sym, &info) != 0 || info.first_ts >= cut) continue;
    int64_t from = info.first_ts;
    for (;;) {
      struct first_ctx f = {
          .ts = from, .ts_off = sc->fields[sc->ts_field].offset, .ts_name = ts_name};
      tks_store_range(srv->store, sym, from, cut, 1, take_first, &f);
      if (!f.found) break;
      if (f.ts < from) f.ts = from; /* (an object without one: the day is tried) */
      int32_t d = tks_archive_day_of(f.ts);
      if (add_day(days, n, &cap, d)) return -ENOMEM;
      int64_t next = tks_archive_day_end(d);
      if (next >= cut - 1 || next == INT64_MAX) break;
      from = next + 1;
    }
  }
  return 0;
}

static int seal_days(struct tks_server *srv, uint64_t seal, int64_t cut, int level,
                     struct child_result *res) {
  int32_t *days;
  size_t nd;
  if (days_below(srv, cut, &days, &nd)) {
    snprintf(res->err, sizeof res->err, "out of memory listing the days to seal");
    return -ENOMEM;
  }
  const struct tks_archive_tables tables = {srv->symbols, srv->strings, srv->names};
  const struct tks_archive_writer_opts opts = {
      .level = level, .buffer_bytes = WRITER_BUFFER, .seal = seal};
  uint32_t limit = tks_store_symbol_limit(srv->store);
  int rc = 0;
  for (size_t i = 0; i < nd && rc == 0; i++) {
    struct tks_archive_writer *w = tks_archive_writer_create(A.dir, days[i], &srv->cfg.schema,
                                                             srv->cfg.store.mode, &tables, &opts,
                                                             res->err, sizeof res->err);
    if (!w) {
      rc = -EIO;
      break;
    }
    int64_t from = tks_archive_day_start(days[i]), end = tks_archive_day_end(days[i]);
    int64_t to = end >= cut - 1 ? cut : end + 1;
    for (uint32_t sym = 1; sym < limit; sym++)
      tks_store_range(srv->store, sym, from, to, 0, tks_archive_writer_visit, w);
    struct tks_archive_part_info info;
    rc = tks_archive_writer_seal(w, &info, res->err, sizeof res->err);
    if (rc == 0 && info.ticks) {
      res->parts++;
      res->ticks += info.ticks;
      res->bytes += info.bytes;
    }
  }
  res->days = (uint32_t)nd;
  free(days);
  return rc;
}

static __attribute__((noreturn)) void child_main(struct tks_server *srv, int res_fd, pid_t parent,
                                                 uint64_t seal, int64_t cut, int level) {
  /* The child keeps archive.dir's lock: a daemon started after a kill -9
   * of this one waits for it to be gone (tks_dirlock_take_waiting) before
   * it rolls back parts no seal committed, so no part lands after that. */
  if (tks_child_init(parent, res_fd, A.lock_fd)) _exit(1);
  struct child_result res = {0};
  res.rc = seal_days(srv, seal, cut, level, &res);
  ssize_t w;
  do w = write(res_fd, &res, sizeof res);
  while (w < 0 && errno == EINTR);
  _exit(res.rc ? 1 : 0);
}

/* ---- the loop side ---------------------------------------------------------- */

static void answer(const struct tks_rollover_result *r) {
  struct waiter *w = A.waiters;
  size_t n = A.nwaiters;
  A.waiters = NULL;
  A.nwaiters = A.cap = 0;
  for (size_t i = 0; i < n; i++) w[i].done(w[i].ctx, r);
  free(w);
}

static void on_poll_closed(uv_handle_t *h) { free(h); }

/* The seal's parts are durable: commit, then memory gives the ticks up. */
static int commit(struct tks_server *srv, const struct child_result *res) {
  char text[32];
  int n = snprintf(text, sizeof text, "%" PRIu64 "\n", A.seal);
  int r = tks_write_file_atomic(A.dir, SEALED_FILE, text, (size_t)n);
  if (r) {
    snprintf(A.last_error, sizeof A.last_error, "%s/%s: %s", A.dir, SEALED_FILE, strerror(-r));
    return r;
  }
  srv->seal_committed = A.seal;
  tks_durability_seal_commit(srv, A.seal);
  srv->evict_quiet = true; /* the commit record says it */
  uint64_t gone = tks_store_trim_before(srv->store, A.cut);
  srv->evict_quiet = false;
  tks_archive_set_seal_limit(A.reader, A.seal);
  if ((r = tks_archive_rescan(A.reader)))
    tks_log(TKS_LOG_WARN, "archive: listing %s again: %s", A.dir, strerror(-r));
  if (gone + A.evicted_below != res->ticks)
    tks_log(TKS_LOG_WARN,
            "archive: seal %" PRIu64 " wrote %" PRIu64 " ticks and memory gave up %" PRIu64
            " (%" PRIu64 " evicted before the commit)",
            A.seal, res->ticks, gone, A.evicted_below);
  return 0;
}

static void try_roll(struct tks_server *srv);

static void finish(struct tks_server *srv, const struct child_result *res) {
  int status = 0;
  while (waitpid(A.child, &status, 0) < 0 && errno == EINTR) {
  }
  if (A.poll) {
    uv_close((uv_handle_t *)A.poll, on_poll_closed);
    A.poll = NULL;
  }
  close(A.result_fd);
  A.result_fd = -1;
  double seconds = (double)(tks_mono_ns() - A.t0) / 1e9;
  bool ok = res && res->rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  struct tks_rollover_result r = {.seconds = seconds, .message = ""};
  if (ok && commit(srv, res) == 0) {
    A.seals++;
    A.last_ticks = res->ticks;
    A.last_bytes = res->bytes;
    A.last_seconds = seconds;
    A.sealed_ticks += res->ticks;
    A.sealed_bytes += res->bytes;
    A.last_roll_ns = tks_now_ns();
    snprintf(A.last_error, sizeof A.last_error, "none");
    char day[11];
    tks_archive_day_name(tks_archive_day_of(A.cut), day);
    tks_log(TKS_LOG_INFO,
            "archive: sealed %" PRIu64 " ticks before %s into %" PRIu32 " parts (%" PRIu64
            " bytes, %.2f B/tick) in %.2f s; %" PRIu64 " late ticks refused meanwhile",
            res->ticks, day, res->parts, res->bytes,
            res->ticks ? (double)res->bytes / (double)res->ticks : 0.0, seconds,
            srv->rejected[TKS_REASON_SEALING] - A.refused_since);
    r.ticks = res->ticks;
    r.bytes = res->bytes;
    r.parts = res->parts;
  } else {
    if (ok) {
      /* the commit failed: A.last_error says why */
    } else if (res && res->rc) {
      snprintf(A.last_error, sizeof A.last_error, "%s", res->err);
    } else if (WIFSIGNALED(status)) {
      snprintf(A.last_error, sizeof A.last_error, "the child writing it was killed by signal %d",
               WTERMSIG(status));
    } else {
      snprintf(A.last_error, sizeof A.last_error, "the child writing it exited %d without a result",
               WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    struct tks_archive_freed fr = {0};
    int e = tks_archive_remove_seals_above(A.reader, srv->seal_committed, &fr);
    if (e)
      tks_log(TKS_LOG_ERROR,
              "archive: removing the parts of the failed seal: %s (they are "
              "removed at the next start)",
              strerror(-e));
    tks_durability_seal_abort(srv, A.seal);
    A.failed++;
    tks_log(TKS_LOG_ERROR, "archive: seal failed: %s (the ticks stay in memory and the journal)",
            A.last_error);
    r.error = res && res->rc ? res->rc : -EIO;
    r.message = A.last_error;
  }
  A.sealing = false;
  srv->seal_cut = INT64_MIN;
  if (!ok || r.error) A.failed_ns = tks_mono_ns();
  if (A.kind == SEAL_ROLL) answer(&r);
  tks_limits_recheck(srv); /* ingest held for this seal reads on */
  try_roll(srv);           /* one asked while another kind ran */
}

static void on_result(uv_poll_t *h, int status, int events) {
  struct tks_server *srv = h->data;
  (void)events;
  struct child_result res;
  ssize_t n = status < 0 ? 0 : read(A.result_fd, &res, sizeof res);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  finish(srv, n == (ssize_t)sizeof res ? &res : NULL);
}

/* Begins sealing every tick before cut.  Returns 0 (begun, or nothing to
 * seal: answered), or -errno. */
static int begin(struct tks_server *srv, int64_t cut, int kind) {
  uint64_t below = tks_store_count_before(srv->store, cut);
  if (below == 0) {
    if (kind == SEAL_ROLL) {
      struct tks_rollover_result r = {.message = ""};
      A.last_roll_ns = tks_now_ns();
      answer(&r);
    }
    return 0;
  }
  int resp[2];
  if (pipe2(resp, O_CLOEXEC) < 0) return -errno;
  uv_poll_t *poll = malloc(sizeof *poll);
  if (!poll) {
    close(resp[0]), close(resp[1]);
    return -ENOMEM;
  }
  uint64_t seal = A.next_seal++;
  (void)tks_crc32c_hw_available(); /* the CRC tables are made here, not in the child */
  /* The begin record goes after every tick accepted so far, and nothing
   * runs on the loop between it and the fork. */
  tks_durability_seal_begin(srv, seal, cut);
  srv->seal_cut = cut;
  A.refused_since = srv->rejected[TKS_REASON_SEALING];
  pid_t parent = getpid();
  uint64_t t0 = tks_mono_ns();
  pid_t pid = fork();
  if (pid == 0) child_main(srv, resp[1], parent, seal, cut, (int)srv->cfg.archive.level);
  int e = pid < 0 ? -errno : 0;
  close(resp[1]);
  if (pid < 0) {
    close(resp[0]);
    free(poll);
    tks_durability_seal_abort(srv, seal);
    srv->seal_cut = INT64_MIN;
    return e;
  }
  A.sealing = true;
  A.kind = kind;
  A.evicted_below = 0;
  A.child = pid;
  A.result_fd = resp[0];
  A.seal = seal;
  A.cut = cut;
  A.t0 = t0;
  fcntl(A.result_fd, F_SETFL, O_NONBLOCK);
  uv_poll_init(srv->loop, poll, A.result_fd);
  poll->data = srv;
  uv_poll_start(poll, UV_READABLE | UV_DISCONNECT, on_result);
  A.poll = poll;
  char day[11];
  tks_archive_day_name(tks_archive_day_of(cut), day);
  static const char *const why[] = {"rollover", "memory full (evict_oldest)", "limits.retention"};
  tks_log(kind == SEAL_ROLL ? TKS_LOG_INFO : TKS_LOG_DEBUG,
          "archive: sealing %" PRIu64 " ticks before %s (%s; seal %" PRIu64 ", child %d)", below,
          day, why[kind], seal, (int)pid);
  return 0;
}

/* A rollover's cut: the start of the current UTC day. */
static int64_t today_start(void) { return tks_archive_day_start(tks_archive_day_of(tks_now_ns())); }

/* The wall clock of the first roll_at after now. */
static int64_t next_roll(const struct tks_server *srv, int64_t now) {
  int64_t at = today_start() + (int64_t)srv->cfg.archive.roll_at_ns;
  return at > now ? at : at + NS_PER_DAY;
}

static void try_roll(struct tks_server *srv) {
  if (!A.want_roll || A.sealing || srv->stopping || tks_checkpoint_busy(srv)) return;
  A.want_roll = false;
  int r = begin(srv, today_start(), SEAL_ROLL);
  if (r) {
    snprintf(A.last_error, sizeof A.last_error, "cannot begin a seal: %s", strerror(-r));
    A.failed++;
    tks_log(TKS_LOG_ERROR, "archive: %s", A.last_error);
    struct tks_rollover_result res = {.error = r, .message = A.last_error};
    answer(&res);
  }
}

static void retention(struct tks_server *srv) {
  uint64_t keep = srv->cfg.archive.retention_ns;
  if (!keep || A.sealing) return;
  int64_t now = tks_now_ns();
  int32_t first_kept = tks_archive_day_of(now - (int64_t)keep);
  if (first_kept <= A.retained_day) return;
  struct tks_archive_freed fr = {0};
  int r = tks_archive_retain(A.reader, first_kept, &fr);
  A.retained_day = first_kept;
  if (fr.days) {
    A.retention_days += fr.days;
    A.retention_bytes += fr.bytes;
    A.retention_ticks += fr.ticks;
    char day[11];
    tks_archive_day_name(first_kept, day);
    tks_log(TKS_LOG_INFO,
            "archive: retention deleted %" PRIu32 " days before %s (%" PRIu64 " ticks, %" PRIu64
            " bytes)",
            fr.days, day, fr.ticks, fr.bytes);
  }
  if (r) {
    A.retained_day = INT32_MIN; /* try again next time */
    tks_log(TKS_LOG_ERROR, "archive: retention: %s", strerror(-r));
  }
}

static void on_timer(uv_timer_t *t) {
  struct tks_server *srv = t->data;
  if (srv->stopping) return;
  int64_t now = tks_now_ns();
  if (now >= A.next_roll_ns) {
    A.want_roll = true;
    A.next_roll_ns = next_roll(srv, now);
  }
  try_roll(srv);
  retention(srv);
  /* Ahead of evict_oldest: from three quarters of max_memory on, the
   * oldest quarter is sealed before the store is full. */
  const struct tks_config *c = &srv->cfg;
  if (c->limits.max_memory && c->limits.when_full == TKS_WHEN_FULL_EVICT_OLDEST &&
      tks_slab_bytes_used(srv->slab) >= c->limits.max_memory / 4 * 3)
    tks_archiver_on_pressure(srv, c->limits.max_memory / 4, 0);
}

int tks_archiver_start(struct tks_server *srv) {
  if (!A.enabled) return 0;
  A.started = true;
  A.retained_day = INT32_MIN;
  A.next_roll_ns = next_roll(srv, tks_now_ns());
  uv_timer_init(srv->loop, &A.timer);
  A.timer.data = srv;
  A.timer_open = true;
  uv_timer_start(&A.timer, on_timer, POLL_MS, POLL_MS);
  retention(srv);
  return 0;
}

void tks_archiver_reload(struct tks_server *srv) {
  if (!A.started) return;
  A.next_roll_ns = next_roll(srv, tks_now_ns());
  A.retained_day = INT32_MIN;
}

int tks_archiver_rollover(struct tks_server *srv,
                          void (*done)(void *ctx, const struct tks_rollover_result *r), void *ctx) {
  if (!A.started) return -ENOTSUP;
  if (A.nwaiters == A.cap) {
    size_t cap = A.cap ? A.cap * 2 : 8;
    struct waiter *w = realloc(A.waiters, cap * sizeof *w);
    if (!w) return -ENOMEM;
    A.waiters = w;
    A.cap = cap;
  }
  A.waiters[A.nwaiters++] = (struct waiter){done, ctx};
  /* One in progress answers them all (its cut is the same day, unless the
   * day turned meanwhile: then the next one takes the rest). */
  if (!A.sealing) {
    A.want_roll = true;
    try_roll(srv);
  }
  return 0;
}

void tks_archiver_cancel(struct tks_server *srv, void *ctx) {
  (void)srv;
  size_t keep = 0;
  for (size_t i = 0; i < A.nwaiters; i++)
    if (A.waiters[i].ctx != ctx) A.waiters[keep++] = A.waiters[i];
  A.nwaiters = keep;
}

void tks_archiver_stop(struct tks_server *srv) {
  if (A.timer_open) {
    A.timer_open = false;
    uv_timer_stop(&A.timer);
    uv_close((uv_handle_t *)&A.timer, NULL);
  }
  if (A.sealing) {
    tks_log(TKS_LOG_INFO, "archive: waiting for the seal in progress");
    struct pollfd p = {.fd = A.result_fd, .events = POLLIN};
    int n;
    while ((n = poll(&p, 1, STOP_CHILD_MS)) < 0 && errno == EINTR) {
    }
    struct child_result res;
    ssize_t got = 0;
    if (n > 0) {
      while ((got = read(A.result_fd, &res, sizeof res)) < 0 && errno == EINTR) {
      }
    } else {
      kill(A.child, SIGKILL);
    }
    finish(srv, got == (ssize_t)sizeof res ? &res : NULL);
  }
  A.started = false;
  struct tks_rollover_result r = {.error = -ESHUTDOWN, .message = "the daemon is stopping"};
  answer(&r);
}

void tks_archiver_close(void) {
  tks_archive_close(A.reader);
  A.reader = NULL;
}

/* ---- eviction and retention into the archive ------------------------------ */

static bool can_seal(const struct tks_server *srv) {
  return A.started && !A.sealing && !srv->stopping && !tks_checkpoint_busy(srv);
}

bool tks_archiver_on_pressure(struct tks_server *srv, uint64_t bytes, uint64_t slice) {
  if (!A.started || srv->stopping) return false;
  if (A.sealing) {
    /* The blocks the slice takes must all be below the running seal's cut. */
    int64_t cut = tks_store_cut_for_bytes(srv->store, slice, NULL);
    return cut > srv->seal_cut;
  }
  /* Seals failing (a full disk): evict without them for a while. */
  if (A.failed_ns && tks_mono_ns() - A.failed_ns < FAILED_BACKOFF_NS) return false;
  if (tks_checkpoint_busy(srv)) return true; /* it ends soon: then a seal */
  int64_t cut = tks_store_cut_for_bytes(srv->store, bytes, NULL);
  if (cut == INT64_MIN) return false;
  int r = begin(srv, cut, SEAL_PRESSURE);
  if (r == 0 && A.sealing) A.pressure_seals++;
  if (r) {
    A.failed++;
    A.failed_ns = tks_mono_ns();
    snprintf(A.last_error, sizeof A.last_error, "cannot begin a seal: %s", strerror(-r));
    tks_log(TKS_LOG_ERROR, "archive: %s (evicting without the archive for %u s)", A.last_error,
            (unsigned)(FAILED_BACKOFF_NS / 1000000000u));
  }
  return false;
}

bool tks_archiver_on_retain(struct tks_server *srv, int64_t cutoff) {
  if (!A.started) return false;
  /* Not a seal a second: at most every sixteenth of the retention, from 1 s to 1 min. */
  uint64_t gap = srv->cfg.limits.retention_ns / 16;
  if (gap < 1000000000u) gap = 1000000000u;
  if (gap > 60000000000u) gap = 60000000000u;
  if (!can_seal(srv) || (A.last_retain_ns && tks_mono_ns() - A.last_retain_ns < gap)) return true;
  A.last_retain_ns = tks_mono_ns();
  if (begin(srv, cutoff, SEAL_RETAIN) == 0 && A.sealing) A.retain_seals++;
  return true;
}

void tks_archiver_on_evict(struct tks_server *srv, enum tks_store_rep rep, uint32_t symbol,
                           const void *entries, uint32_t count) {
  (void)symbol;
  if (!A.started) return;
  uint64_t below = 0;
  if (A.sealing) {
    uint32_t size = tks_store_entry_size(srv->store, rep);
    for (uint32_t i = 0; i < count; i++)
      below += tks_store_entry_ts(srv->store, rep, (const char *)entries + (size_t)i * size) <
               srv->seal_cut;
  }
  A.evicted_below += below;
  A.evicted_sealed += below;
  if (count > below) {
    if (!A.evicted_lost)
      tks_log(TKS_LOG_WARN,
              "archive: evicted ticks that are not in the archive (no seal was running below "
              "them: the store filled faster than a seal of its oldest ticks, or seals fail); "
              "archive.evicted_unarchived_ticks counts them");
    A.evicted_lost += count - below;
  }
}

/* ---- reading --------------------------------------------------------------- */

struct tks_archive *tks_archiver_reader(struct tks_server *srv, struct tks_archive_view *view) {
  if (!A.reader) return NULL;
  *view = (struct tks_archive_view){&srv->cfg.schema, srv->symbols, srv->strings, srv->names};
  return A.reader;
}

/* ---- stats ------------------------------------------------------------------ */

static const struct tks_stat ST_ARCHIVE_ENABLED = TKS_STAT("archive.enabled", GAUGE, NONE,
                                                           "1 when the day archive is on");
static const struct tks_stat ST_ARCHIVE_DIR = TKS_STAT("archive.dir", GAUGE, NONE, NULL);
static const struct tks_stat ST_ARCHIVE_DAYS = TKS_STAT_NAMED(
    "archive.days", GAUGE, NONE, "UTC days (dates) in the archive", "archive_dates", NULL);
static const struct tks_stat ST_ARCHIVE_PARTS = TKS_STAT("archive.parts", GAUGE, NONE,
                                                         "Sealed part files in the archive");
static const struct tks_stat ST_ARCHIVE_BAD_PARTS = TKS_STAT(
    "archive.bad_parts", GAUGE, NONE, "Parts whose header or footer does not verify");
static const struct tks_stat ST_ARCHIVE_TICKS = TKS_STAT("archive.ticks", GAUGE, TICKS,
                                                         "Ticks in the archive");
static const struct tks_stat ST_ARCHIVE_BYTES = TKS_STAT("archive.bytes", GAUGE, BYTES,
                                                         "Bytes of the archive's part files");
static const struct tks_stat ST_ARCHIVE_BYTES_PER_TICK = TKS_STAT(
    "archive.bytes_per_tick", GAUGE, NONE, "Archive bytes on disk per archived tick");
static const struct tks_stat ST_ARCHIVE_LAST_ROLL_AGE = TKS_STAT(
    "archive.last_roll_age_seconds", GAUGE, SECONDS,
    "Seconds since the last rollover or seal this run (-1: none yet)");
static const struct tks_stat ST_ARCHIVE_NEXT_ROLL = TKS_STAT(
    "archive.next_roll_seconds", GAUGE, SECONDS, "Seconds until the next archive.roll_at");
static const struct tks_stat ST_ARCHIVE_SEALS = TKS_STAT("archive.seals", COUNTER, NONE,
                                                         "Seals committed since start");
static const struct tks_stat ST_ARCHIVE_FAILED = TKS_STAT("archive.failed", COUNTER, NONE,
                                                          "Seals that failed since start");
static const struct tks_stat ST_ARCHIVE_IN_PROGRESS = TKS_STAT("archive.in_progress", GAUGE, NONE,
                                                               "1 while a seal is being written");
static const struct tks_stat ST_ARCHIVE_SEALED_TICKS = TKS_STAT(
    "archive.sealed_ticks", COUNTER, TICKS, "Ticks sealed out of memory since start");
static const struct tks_stat ST_ARCHIVE_LAST_TICKS = TKS_STAT("archive.last_ticks", GAUGE, TICKS,
                                                              "Ticks the last seal took");
static const struct tks_stat ST_ARCHIVE_LAST_SECONDS = TKS_STAT(
    "archive.last_seconds", GAUGE, SECONDS, "Seconds the last seal took");
static const struct tks_stat ST_ARCHIVE_COMMITTED_SEAL = TKS_STAT(
    "archive.committed_seal", GAUGE, NONE, "Id of the newest committed seal (archive.dir/SEALED)");
static const struct tks_stat ST_ARCHIVE_RETENTION_DAYS = TKS_STAT_NAMED(
    "archive.retention_deleted_days", COUNTER, NONE,
    "Days (dates) archive.retention deleted since start", "archive_retention_deleted_dates", NULL);
static const struct tks_stat ST_ARCHIVE_PRESSURE_SEALS = TKS_STAT(
    "archive.pressure_seals", COUNTER, NONE,
    "Seals begun because the store was full under evict_oldest");
static const struct tks_stat ST_ARCHIVE_RETENTION_SEALS = TKS_STAT(
    "archive.retention_seals", COUNTER, NONE, "Seals begun for limits.retention");
static const struct tks_stat ST_ARCHIVE_EVICTED_SEALED = TKS_STAT(
    "archive.evicted_sealed_ticks", COUNTER, TICKS,
    "Ticks evicted from memory below a running seal's cut (in the archive once it commits)");
static const struct tks_stat ST_ARCHIVE_EVICTED_UNARCHIVED = TKS_STAT(
    "archive.evicted_unarchived_ticks", COUNTER, TICKS,
    "Ticks evicted from memory that no seal took into the archive");
static const struct tks_stat ST_ARCHIVE_LAST_ERROR = TKS_STAT("archive.last_error", GAUGE, NONE,
                                                              NULL);
static const struct tks_stat ST_DISK_BYTES = TKS_STAT(
    "disk.bytes", GAUGE, BYTES, "Bytes on disk: journal segments, checkpoints and archive");
static const struct tks_stat ST_DISK_BYTES_PER_TICK = TKS_STAT(
    "disk.bytes_per_tick", GAUGE, NONE, "disk.bytes per tick kept (in memory and in the archive)");

/* Bytes of the checkpoint files in journal.dir. */
static uint64_t checkpoint_bytes(const struct tks_server *srv) {
  uint64_t seqs[8], total = 0;
  size_t n = 0;
  if (!srv->cfg.journal.enabled || tks_checkpoint_list(srv->cfg.journal.dir, seqs, 8, &n) != 0)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char name[TKS_CHECKPOINT_NAME_MAX], path[4400];
    struct stat sb;
    tks_checkpoint_name(name, seqs[i]);
    snprintf(path, sizeof path, "%s/%s", srv->cfg.journal.dir, name);
    if (stat(path, &sb) == 0) total += (uint64_t)sb.st_size;
  }
  return total;
}

void tks_archiver_stats(struct tks_server *srv, struct tks_stats *st) {
  tks_stat_u64(st, &ST_ARCHIVE_ENABLED, A.enabled);
  struct tks_archive_totals t = {0};
  if (A.reader) {
    tks_archive_totals(A.reader, &t);
    tks_stat_str(st, &ST_ARCHIVE_DIR, A.dir);
    tks_stat_u64(st, &ST_ARCHIVE_DAYS, t.days);
    tks_stat_u64(st, &ST_ARCHIVE_PARTS, t.parts);
    tks_stat_u64(st, &ST_ARCHIVE_BAD_PARTS, t.bad_parts);
    tks_stat_u64(st, &ST_ARCHIVE_TICKS, t.ticks);
    tks_stat_u64(st, &ST_ARCHIVE_BYTES, t.bytes);
    tks_stat_f64(st, &ST_ARCHIVE_BYTES_PER_TICK, t.ticks ? (double)t.bytes / (double)t.ticks : 0.0);
    tks_stat_f64(st, &ST_ARCHIVE_LAST_ROLL_AGE,
                 A.last_roll_ns ? (double)(tks_now_ns() - A.last_roll_ns) / 1e9 : -1.0);
    tks_stat_f64(st, &ST_ARCHIVE_NEXT_ROLL,
                 A.started ? (double)(A.next_roll_ns - tks_now_ns()) / 1e9 : -1.0);
    tks_stat_u64(st, &ST_ARCHIVE_SEALS, A.seals);
    tks_stat_u64(st, &ST_ARCHIVE_FAILED, A.failed);
    tks_stat_u64(st, &ST_ARCHIVE_IN_PROGRESS, A.sealing);
    tks_stat_u64(st, &ST_ARCHIVE_SEALED_TICKS, A.sealed_ticks);
    tks_stat_u64(st, &ST_ARCHIVE_LAST_TICKS, A.last_ticks);
    tks_stat_f64(st, &ST_ARCHIVE_LAST_SECONDS, A.last_seconds);
    tks_stat_u64(st, &ST_ARCHIVE_COMMITTED_SEAL, srv->seal_committed);
    tks_stat_u64(st, &ST_ARCHIVE_RETENTION_DAYS, A.retention_days);
    tks_stat_u64(st, &ST_ARCHIVE_PRESSURE_SEALS, A.pressure_seals);
    tks_stat_u64(st, &ST_ARCHIVE_RETENTION_SEALS, A.retain_seals);
    tks_stat_u64(st, &ST_ARCHIVE_EVICTED_SEALED, A.evicted_sealed);
    tks_stat_u64(st, &ST_ARCHIVE_EVICTED_UNARCHIVED, A.evicted_lost);
    tks_stat_str(st, &ST_ARCHIVE_LAST_ERROR, A.last_error[0] ? A.last_error : "none");
  }
  uint64_t disk = tks_durability_journal_bytes(srv) + checkpoint_bytes(srv) + t.bytes;
  uint64_t kept = tks_store_ticks(srv->store) + t.ticks;
  tks_stat_u64(st, &ST_DISK_BYTES, disk);
  tks_stat_f64(st, &ST_DISK_BYTES_PER_TICK, kept ? (double)disk / (double)kept : 0.0);
}
