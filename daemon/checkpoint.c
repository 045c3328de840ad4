/*
 * Checkpoints, taken while the event loop keeps serving.  The store belongs
 * to the loop thread and every read changes it, so a consistent image needs
 * it frozen: fork(), as Redis's BGSAVE does.  The child holds a
 * copy-on-write image of the store as it was at the fork, writes it
 * (lib/checkpoint.c: an mmap'd buffer, no stdio, no lock another thread
 * could hold), fsyncs, renames, removes all but the newest two checkpoints,
 * and _exits with its result on a pipe the loop watches (uv_poll), then
 * waitpid.  A thread would need the loop to stop changing the store for
 * the whole write, or the store to keep versions of its blocks; fork costs
 * the copy of the page tables (the pause, checkpoint.fork_seconds) and of
 * the pages ingest writes meanwhile.
 *
 * The journal is cut at the same instant: just before the fork a rotate
 * marker is queued behind every tick accepted so far (durability.c); the
 * writer thread writes them, begins segment N and says N, which the loop
 * hands the child on a second pipe (the file's name and header carry it).
 * Once the checkpoint is durable the writer thread deletes the segments
 * below the older of the two kept, so a bad newest one falls back to the
 * previous one and a longer journal.  A failed checkpoint (ENOSPC, the
 * child killed) is logged and counted, its temp file removed, and nothing
 * of the journal deleted.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint.h"
#include "daemon.h"
#include "journal.h"

#define POLL_MS 250                             /* the triggers are checked this often */
#define ROTATE_TIMEOUT_NS (30ull * 1000000000u) /* the journal must be cut within this */
#define STOP_ROTATE_NS (10ull * 1000000000u)    /* ... at the stop */
#define STOP_CHILD_MS (600 * 1000)              /* a child in progress at the stop */
#define KEEP 2                                  /* checkpoints kept */

/* What the child says, in one write (under PIPE_BUF). */
struct child_result {
  int32_t rc;
  uint32_t pad;
  uint64_t ticks, bytes, prune_below;
  char err[1024];
};
_Static_assert(sizeof(struct child_result) < 4096, "one atomic pipe write");

struct waiter {
  void (*done)(void *ctx, const struct tks_checkpoint_result *r);
  void *ctx;
};

enum state { IDLE, ROTATING, WRITING };

/* One server a process. */
static struct {
  bool started;
  uv_timer_t timer;
  bool timer_open;
  uv_poll_t *poll;
  enum state state;
  pid_t child;
  int result_fd, seq_fd; /* the child's result, and where it reads N */
  uint64_t next;         /* N of the one in progress */
  uint64_t t0;           /* mono ns at its fork */
  bool killed;           /* the rotation took too long: the child was killed */
  struct waiter *waiters;
  size_t nwaiters, cap;
  /* What the last one began with: a checkpoint is taken when this changed. */
  uint64_t accepted_mark, ticks_mark, bytes_mark, begun_ns;
  /* Figures. */
  uint64_t count, failed, last_ticks, last_bytes, last_next, last_done_ns;
  double last_seconds, fork_seconds;
  char last_error[1100];
} K = {.result_fd = -1, .seq_fd = -1};

static const char *dir_of(const struct tks_server *srv) { return srv->cfg.journal.dir; }

static bool enabled(const struct tks_server *srv) {
  return srv->cfg.journal.checkpoint_interval_ns || srv->cfg.journal.checkpoint_bytes;
}

/* Ticks accepted or gone since the last one began. */
static bool changed(const struct tks_server *srv) {
  return srv->ticks_accepted != K.accepted_mark || tks_store_ticks(srv->store) != K.ticks_mark;
}

static void mark(struct tks_server *srv) {
  K.accepted_mark = srv->ticks_accepted;
  K.ticks_mark = tks_store_ticks(srv->store);
  K.bytes_mark = tks_durability_submitted_bytes(srv);
  K.begun_ns = tks_mono_ns();
}

static void answer(const struct tks_checkpoint_result *r) {
  /* Take them out first: a callback may add or cancel. */
  struct waiter *w = K.waiters;
  size_t n = K.nwaiters;
  K.waiters = NULL;
  K.nwaiters = K.cap = 0;
  for (size_t i = 0; i < n; i++) w[i].done(w[i].ctx, r);
  free(w);
}

static struct tks_checkpoint_src src_of(struct tks_server *srv, uint64_t next, int64_t created) {
  return (struct tks_checkpoint_src){
      &srv->cfg.schema, srv->cfg.store.mode, srv->store, srv->symbols,
      srv->strings,     srv->names,          next,       created};
}

/* After a good one: all but the newest KEEP go, and the journal segments
 * below the older one kept (none while only one is kept).  Returns that
 * segment, or 0. */
static uint64_t prune_checkpoints(const char *dir) {
  uint64_t seqs[KEEP];
  size_t n;
  if (tks_checkpoint_prune(dir, KEEP, NULL) != 0) return 0;
  if (tks_checkpoint_list(dir, seqs, KEEP, &n) != 0 || n < KEEP) return 0;
  return seqs[KEEP - 1];
}

/* ---- the child ------------------------------------------------------------ */

static __attribute__((noreturn)) void child_main(struct tks_server *srv, int seq_fd, int res_fd,
                                                 pid_t parent, int64_t created) {
  if (tks_child_init(parent, seq_fd, res_fd)) _exit(1);
  struct child_result res = {0};
  uint64_t next;
  size_t got = 0;
  while (got < sizeof next) {
    ssize_t r = read(seq_fd, (char *)&next + got, sizeof next - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) _exit(1); /* the parent gave up */
    got += (size_t)r;
  }
  struct tks_checkpoint_src src = src_of(srv, next, created);
  struct tks_checkpoint_info info;
  res.rc = tks_checkpoint_save(dir_of(srv), &src, &info, res.err, sizeof res.err);
  if (res.rc == 0) {
    res.ticks = info.ticks;
    res.bytes = info.bytes;
    res.prune_below = prune_checkpoints(dir_of(srv));
  }
  ssize_t w;
  do w = write(res_fd, &res, sizeof res);
  while (w < 0 && errno == EINTR);
  _exit(res.rc ? 1 : 0);
}

/* ---- the loop side ---------------------------------------------------------- */

static void on_poll_closed(uv_handle_t *h) { free(h); }

static void record_success(struct tks_server *srv, uint64_t ticks, uint64_t bytes, uint64_t next,
                           double seconds, uint64_t prune_below, const char *how) {
  K.count++;
  K.last_ticks = ticks;
  K.last_bytes = bytes;
  K.last_next = next;
  K.last_seconds = seconds;
  K.last_done_ns = tks_mono_ns();
  snprintf(K.last_error, sizeof K.last_error, "none");
  char size[32];
  tks_format_size(bytes, size, sizeof size);
  tks_log(TKS_LOG_INFO,
          "checkpoint %s/checkpoint-%020" PRIu64 ".tkc%s: %" PRIu64 " ticks, %" PRIu64
          " bytes in %.2f s (%.0f MB/s); replay resumes at segment %" PRIu64,
          dir_of(srv), next, how, ticks, bytes, seconds,
          seconds > 0 ? (double)bytes / seconds / 1e6 : 0.0, next);
  if (prune_below) tks_durability_prune(srv, prune_below);
}

static void record_failure(const char *why) {
  K.failed++;
  snprintf(K.last_error, sizeof K.last_error, "%s", why);
  tks_log(TKS_LOG_ERROR, "checkpoint failed: %s (the journal is kept whole)", why);
}

/* The child is done (res NULL: it said nothing). */
static void finish(struct tks_server *srv, const struct child_result *res) {
  int status = 0;
  while (waitpid(K.child, &status, 0) < 0 && errno == EINTR) {
  }
  if (K.poll) {
    uv_close((uv_handle_t *)K.poll, on_poll_closed);
    K.poll = NULL;
  }
  close(K.result_fd);
  K.result_fd = -1;
  if (K.seq_fd >= 0) close(K.seq_fd);
  K.seq_fd = -1;
  if (K.state == ROTATING) tks_durability_rotate_cancel(srv);
  double seconds = (double)(tks_mono_ns() - K.t0) / 1e9;
  bool ok = res && res->rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  struct tks_checkpoint_result r = {.seconds = seconds, .message = ""};
  char why[1100];
  if (ok) {
    record_success(srv, res->ticks, res->bytes, K.next, seconds, res->prune_below, "");
    r.ticks = res->ticks;
    r.bytes = res->bytes;
  } else {
    if (res && res->rc)
      snprintf(why, sizeof why, "%s", res->err);
    else if (K.killed)
      snprintf(why, sizeof why, "the journal was not cut within %llu s (journal writes failing?)",
               (unsigned long long)(ROTATE_TIMEOUT_NS / 1000000000u));
    else if (WIFSIGNALED(status))
      snprintf(why, sizeof why, "the child writing it was killed by signal %d", WTERMSIG(status));
    else
      snprintf(why, sizeof why, "the child writing it exited %d without a result",
               WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    if (K.state == WRITING) { /* it may have left its temp file */
      char name[TKS_CHECKPOINT_NAME_MAX], tmp[4200];
      tks_checkpoint_name(name, K.next);
      snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir_of(srv), name);
      unlink(tmp);
    }
    record_failure(why);
    r.error = res && res->rc ? res->rc : -EIO;
    r.message = why;
  }
  K.state = IDLE;
  K.killed = false;
  answer(&r);
}

static void on_result(uv_poll_t *h, int status, int events) {
  struct tks_server *srv = h->data;
  (void)events;
  struct child_result res;
  ssize_t n = status < 0 ? 0 : read(K.result_fd, &res, sizeof res);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  finish(srv, n == (ssize_t)sizeof res ? &res : NULL);
}

/* The journal is cut at N: the child may write. */
static void on_rotated(void *ctx, uint64_t next) {
  (void)ctx;
  if (K.state != ROTATING) return;
  K.next = next;
  K.state = WRITING;
  ssize_t w;
  do w = write(K.seq_fd, &next, sizeof next);
  while (w < 0 && errno == EINTR);
  close(K.seq_fd); /* a short write is the child's EOF: it exits, finish() says so */
  K.seq_fd = -1;
}

/* Cuts the journal and forks the child.  Returns 0 or -errno. */
static int begin(struct tks_server *srv) {
  int seqp[2], resp[2];
  if (pipe2(seqp, O_CLOEXEC) < 0) return -errno;
  if (pipe2(resp, O_CLOEXEC) < 0) {
    int e = -errno;
    close(seqp[0]);
    close(seqp[1]);
    return e;
  }
  uv_poll_t *poll = malloc(sizeof *poll);
  int r = poll ? tks_durability_rotate(srv, on_rotated, NULL) : -ENOMEM;
  if (r) {
    free(poll);
    close(seqp[0]), close(seqp[1]), close(resp[0]), close(resp[1]);
    return r;
  }
  (void)tks_crc32c_hw_available(); /* the CRC tables are made here, not in the child */
  int64_t created = tks_now_ns();
  pid_t parent = getpid();
  uint64_t t0 = tks_mono_ns();
  /* Nothing runs on the loop between the marker and the fork: the child's
   * image holds exactly the ticks before the marker. */
  pid_t pid = fork();
  if (pid == 0) child_main(srv, seqp[0], resp[1], parent, created);
  uint64_t t1 = tks_mono_ns();
  int e = pid < 0 ? -errno : 0;
  close(seqp[0]);
  close(resp[1]);
  if (pid < 0) {
    tks_durability_rotate_cancel(srv);
    close(seqp[1]);
    close(resp[0]);
    free(poll);
    return e;
  }
  K.fork_seconds = (double)(t1 - t0) / 1e9;
  K.child = pid;
  K.seq_fd = seqp[1];
  K.result_fd = resp[0];
  K.state = ROTATING;
  K.t0 = t0;
  K.killed = false;
  fcntl(K.result_fd, F_SETFL, O_NONBLOCK);
  uv_poll_init(srv->loop, poll, K.result_fd);
  poll->data = srv;
  uv_poll_start(poll, UV_READABLE | UV_DISCONNECT, on_result);
  K.poll = poll;
  mark(srv);
  tks_log(TKS_LOG_DEBUG, "checkpoint: child %d forked (the loop paused %.2f ms)", (int)pid,
          K.fork_seconds * 1e3);
  return 0;
}

static void begin_or_count(struct tks_server *srv, const char *trigger) {
  int r = begin(srv);
  if (r) {
    char why[160];
    snprintf(why, sizeof why, "cannot begin one (%s): %s", trigger, strerror(-r));
    record_failure(why);
    mark(srv); /* not again at once */
  }
}

static void on_timer(uv_timer_t *t) {
  struct tks_server *srv = t->data;
  uint64_t now = tks_mono_ns();
  if (K.state == ROTATING && !K.killed && now - K.t0 > ROTATE_TIMEOUT_NS) {
    K.killed = true;
    kill(K.child, SIGKILL); /* finish() comes with the pipe's EOF */
  }
  if (K.state != IDLE || srv->stopping || srv->seal_cut != INT64_MIN) return;
  if (K.nwaiters) { /* requested while an archive seal ran */
    int r = begin(srv);
    if (r) {
      char why[160];
      snprintf(why, sizeof why, "cannot begin one: %s", strerror(-r));
      record_failure(why);
      struct tks_checkpoint_result res = {.error = r, .message = why};
      answer(&res);
    }
    return;
  }
  if (tks_durability_failing(srv) || !changed(srv)) return;
  uint64_t iv = srv->cfg.journal.checkpoint_interval_ns, cb = srv->cfg.journal.checkpoint_bytes;
  if (iv && now - K.begun_ns >= iv)
    begin_or_count(srv, "journal.checkpoint_interval");
  else if (cb && tks_durability_submitted_bytes(srv) - K.bytes_mark >= cb)
    begin_or_count(srv, "journal.checkpoint_bytes");
}

int tks_checkpoint_start(struct tks_server *srv) {
  if (!srv->cfg.journal.enabled) return 0;
  K.started = true;
  mark(srv);
  /* What was loaded at start is a checkpoint already: only what the journal
   * replay added on top of it is new. */
  struct tks_durability_load ld;
  tks_durability_load_info(srv, &ld);
  K.ticks_mark = ld.ticks;
  uv_timer_init(srv->loop, &K.timer);
  K.timer.data = srv;
  K.timer_open = true;
  uv_timer_start(&K.timer, on_timer, POLL_MS, POLL_MS);
  return 0;
}

int tks_checkpoint_request(struct tks_server *srv,
                           void (*done)(void *ctx, const struct tks_checkpoint_result *r),
                           void *ctx) {
  if (!K.started) return -ENOTSUP;
  if (K.nwaiters == K.cap) {
    size_t cap = K.cap ? K.cap * 2 : 8;
    struct waiter *w = realloc(K.waiters, cap * sizeof *w);
    if (!w) return -ENOMEM;
    K.waiters = w;
    K.cap = cap;
  }
  /* Not while an archive seal runs (its trim must not fall inside a
   * checkpoint's image): the timer begins it after the seal. */
  if (K.state == IDLE && srv->seal_cut == INT64_MIN) {
    int r = begin(srv);
    if (r) return r;
  }
  K.waiters[K.nwaiters++] = (struct waiter){done, ctx};
  return 0;
}

bool tks_checkpoint_busy(const struct tks_server *srv) {
  (void)srv;
  return K.state != IDLE || K.nwaiters;
}

void tks_checkpoint_cancel(struct tks_server *srv, void *ctx) {
  (void)srv;
  size_t keep = 0;
  for (size_t i = 0; i < K.nwaiters; i++)
    if (K.waiters[i].ctx != ctx) K.waiters[keep++] = K.waiters[i];
  K.nwaiters = keep;
}

/* The stop: the child in progress, waited for in this call. */
static void wait_child(struct tks_server *srv) {
  if (K.state == ROTATING) {
    uint64_t next;
    if (tks_durability_rotate_wait(srv, STOP_ROTATE_NS, &next) == 0) {
      on_rotated(NULL, next);
    } else {
      K.killed = true;
      kill(K.child, SIGKILL);
    }
  }
  struct pollfd p = {.fd = K.result_fd, .events = POLLIN};
  int n;
  while ((n = poll(&p, 1, STOP_CHILD_MS)) < 0 && errno == EINTR) {
  }
  struct child_result res;
  ssize_t got = 0;
  if (n > 0) {
    while ((got = read(K.result_fd, &res, sizeof res)) < 0 && errno == EINTR) {
    }
  } else {
    kill(K.child, SIGKILL);
  }
  finish(srv, got == (ssize_t)sizeof res ? &res : NULL);
}

/* The last one, in this process: ingest has stopped, the store is still. */
static void final_checkpoint(struct tks_server *srv) {
  uint64_t t0 = tks_mono_ns(), next;
  int r = tks_durability_rotate_wait(srv, STOP_ROTATE_NS, &next);
  if (r) {
    record_failure("at the stop: the journal could not be cut (journal writes failing?)");
    return;
  }
  struct tks_checkpoint_src src = src_of(srv, next, tks_now_ns());
  struct tks_checkpoint_info info;
  char err[1100];
  K.t0 = t0;
  K.fork_seconds = 0;
  r = tks_checkpoint_save(dir_of(srv), &src, &info, err, sizeof err);
  if (r) {
    record_failure(err);
    return;
  }
  double seconds = (double)(tks_mono_ns() - t0) / 1e9;
  record_success(srv, info.ticks, info.bytes, next, seconds, prune_checkpoints(dir_of(srv)),
                 " (at the stop)");
}

void tks_checkpoint_stop(struct tks_server *srv) {
  if (!K.started) return;
  K.started = false;
  if (K.timer_open) {
    K.timer_open = false;
    uv_timer_stop(&K.timer);
    uv_close((uv_handle_t *)&K.timer, NULL);
  }
  if (K.state != IDLE) wait_child(srv);
  if (enabled(srv) && changed(srv)) {
    if (tks_durability_failing(srv))
      record_failure("none at the stop: journal writes are failing (the journal is "
                     "replayed at the next start)");
    else
      final_checkpoint(srv);
  }
  /* Requests never answered (none are left unless the stop raced one). */
  struct tks_checkpoint_result r = {.error = -ESHUTDOWN, .message = "the daemon is stopping"};
  answer(&r);
}

static const struct tks_stat ST_CKPT_COUNT = TKS_STAT_NAMED(
    "checkpoint.count", COUNTER, NONE, "Checkpoints written since start", "checkpoints", NULL);
static const struct tks_stat ST_CKPT_FAILED = TKS_STAT("checkpoint.failed", COUNTER, NONE,
                                                       "Checkpoints that failed since start");
static const struct tks_stat ST_CKPT_IN_PROGRESS = TKS_STAT(
    "checkpoint.in_progress", GAUGE, NONE, "1 while a checkpoint is being written");
static const struct tks_stat ST_CKPT_LAST_AGE = TKS_STAT(
    "checkpoint.last_age_seconds", GAUGE, SECONDS,
    "Seconds since the newest checkpoint was written (-1: there is none)");
static const struct tks_stat ST_CKPT_TICKS = TKS_STAT("checkpoint.ticks", GAUGE, TICKS,
                                                      "Ticks in the last checkpoint written");
static const struct tks_stat ST_CKPT_BYTES = TKS_STAT("checkpoint.bytes", GAUGE, BYTES,
                                                      "Bytes of the last checkpoint written");
static const struct tks_stat ST_CKPT_SECONDS = TKS_STAT(
    "checkpoint.seconds", GAUGE, SECONDS, "Seconds the last checkpoint took, fork to durable");
static const struct tks_stat ST_CKPT_FORK_SECONDS = TKS_STAT(
    "checkpoint.fork_seconds", GAUGE, SECONDS, "The event loop's pause in the last fork");
static const struct tks_stat ST_CKPT_NEXT_SEGMENT = TKS_STAT(
    "checkpoint.next_segment", GAUGE, NONE,
    "Journal segment a start replays from after the newest checkpoint");
static const struct tks_stat ST_CKPT_LOADED_TICKS = TKS_STAT(
    "checkpoint.loaded_ticks", GAUGE, TICKS, "Ticks loaded from a checkpoint at start");
static const struct tks_stat ST_CKPT_LOAD_SECONDS = TKS_STAT(
    "checkpoint.load_seconds", GAUGE, SECONDS, "Seconds loading the checkpoint at start took");
static const struct tks_stat ST_CKPT_LAST_ERROR = TKS_STAT("checkpoint.last_error", GAUGE, NONE,
                                                           NULL);

void tks_checkpoint_stats(struct tks_server *srv, struct tks_stats *st) {
  struct tks_durability_load ld;
  tks_durability_load_info(srv, &ld);
  double age = -1;
  if (K.last_done_ns)
    age = (double)(tks_mono_ns() - K.last_done_ns) / 1e9;
  else if (ld.created_ns)
    age = (double)(tks_now_ns() - ld.created_ns) / 1e9;
  tks_stat_u64(st, &ST_CKPT_COUNT, K.count);
  tks_stat_u64(st, &ST_CKPT_FAILED, K.failed);
  tks_stat_u64(st, &ST_CKPT_IN_PROGRESS, K.state != IDLE);
  tks_stat_f64(st, &ST_CKPT_LAST_AGE, age);
  tks_stat_u64(st, &ST_CKPT_TICKS, K.last_ticks);
  tks_stat_u64(st, &ST_CKPT_BYTES, K.last_bytes);
  tks_stat_f64(st, &ST_CKPT_SECONDS, K.last_seconds);
  tks_stat_f64(st, &ST_CKPT_FORK_SECONDS, K.fork_seconds);
  tks_stat_u64(st, &ST_CKPT_NEXT_SEGMENT, K.last_next ? K.last_next : ld.next_segment);
  tks_stat_u64(st, &ST_CKPT_LOADED_TICKS, ld.ticks);
  tks_stat_f64(st, &ST_CKPT_LOAD_SECONDS, ld.seconds);
  tks_stat_str(st, &ST_CKPT_LAST_ERROR, K.last_error[0] ? K.last_error : "none");
}
