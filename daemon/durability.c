/*
 * Durability: the journal of accepted ticks, written by a thread of its own
 * so that a slow disk never stalls the event loop.  The loop thread appends
 * one payload per read (the receive time, then the msgpack bytes of the
 * ticks it accepted) to a queue under a mutex, with the count of ticks
 * accepted so far; the writer takes the whole queue, hands it to the
 * journal, flushes, and fsyncs by policy (always: every batch; interval:
 * every fsync_interval; never: only for `sync` and at stop).  It publishes
 * the counts written and fsynced, and wakes the loop with a uv_async so
 * `sync` waiters can be answered.  A failing write (ENOSPC, EIO) leaves the
 * frames queued, marks the journal failing, and is retried every 100 ms;
 * nothing is counted durable that is not fsynced.  For checkpoints the
 * loop puts a rotate marker in the queue (an entry of length 0): the writer
 * writes every frame before it, starts a new segment, and says its number,
 * so the ticks before the marker are in the segments below it; later it
 * deletes the segments a checkpoint covers.  A named producer's stream
 * position (ingest acks) rides in the frame of its read's ticks (a
 * producer record, lib/oprec.h), so it is durable exactly with them;
 * replay rebuilds the producer table from those, and every rotation
 * restates each known position at the start of the new segment, so a
 * replay from a checkpoint knows them all.  At start journal.dir is locked
 * (one daemon a directory) before the sockets are bound; then the newest
 * good checkpoint is loaded and the journal after it replayed into the
 * store before the daemon reports ready, both a slice at a time from
 * load.c's idle handle (the checkpoint loader of lib/checkpoint.c and a
 * journal reader of lib/journal.c); the writer opens once replay is done.
 */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checkpoint.h"
#include "daemon.h"
#include "dirlock.h"
#include "journal.h"
#include "oprec.h"
#include "shape.h"

#define QUEUE_HOLD_BYTES (64u << 20) /* hold ingest when this much waits for the disk */
#define RETRY_NS 100000000u          /* retry a failing write after 100 ms */
#define BATCH_NS 2000000u            /* interval/never: gather writes for up to 2 ms */
#define WRITE_CHUNK (1u << 20)       /* the writer hands the journal this much at a time */
#define BUF_KEEP (1u << 20)          /* an empty buffer keeps this much, or twice the recent need */
#define IDLE_NS 1000000000u          /* "recent", and the rest after which all goes back */
#define BATCH_HEADER (4 + sizeof(int64_t)) /* [u32 len][i64 recv] before the ticks of a batch */

struct waiter {
  void (*done)(void *ctx, uint64_t durable);
  void *ctx;
  uint64_t target;
};

struct tks_durability {
  struct tks_server *srv;
  struct tks_journal *j; /* the writer thread's */
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;

  /* Under mu. */
  struct tks_buf queue;    /* [u32 len][payload] ... */
  uint64_t queued_ticks;   /* ticks accepted up to the end of the queue */
  uint64_t written_ticks;  /* in the journal files */
  uint64_t synced_ticks;   /* fsynced */
  uint64_t sync_wanted;    /* a `sync` wants synced_ticks >= this */
  bool stopping;
  int last_error;          /* of the last flush, 0 when good */
  uint64_t last_fsync_mono_ns;
  struct tks_journal_info info;
  enum tks_fsync fsync;
  uint64_t fsync_interval_ns;
  uint64_t rotations_asked, rotations_done; /* rotate markers queued, and handled */
  uint64_t rotated_next;                    /* the segment the last one began */
  pthread_cond_t rotated_cv;                /* signalled when a marker is handled */
  uint64_t prune_below, pruned_below;       /* segments a checkpoint covers; removed below */
  size_t keep_bytes;   /* what an empty buffer may keep now (the writer decides) */
  size_t writer_bytes; /* held by the writer's work buffer and the journal's */

  /* Loop thread only. */
  struct tks_buf batch; /* [u32 len][i64 recv][ticks]: the frame being built by process() */
  size_t bheader;       /* bytes of batch before its ticks (BATCH_HEADER, or a producer's) */
  struct tks_producer *bprod; /* the batch carries this producer's position, or NULL */
  uint64_t notified_synced;   /* synced_ticks last told to the synced listener */
  const char *run;      /* accepted ticks not yet copied into batch: [run, run + run_len) */
  size_t run_len;
  uv_async_t wake;
  struct waiter *waiters;
  size_t nwaiters, waiters_cap;
  bool failing_logged;
  uint64_t batch_start_accepted;
  uint64_t submitted_bytes;                  /* journal frame bytes queued since start */
  uint64_t records;                          /* record frames queued since start */
  void (*rotated)(void *ctx, uint64_t next); /* the rotation the loop waits for */
  void *rotated_ctx;
  uint64_t rotated_ticket;

  /* Load and replay figures. */
  struct tks_durability_load load; /* the checkpoint loaded at start */
  uint64_t replayed_ticks, replay_rejected, replay_frames;
  uint64_t replay_records, replay_evicted, replay_sealed; /* records applied, ticks they took */
  double replay_seconds;
  struct tks_replay_result replay;
};

/* One server a process: NULL while the journal is off. */
static struct tks_durability *D;
/* The lock on journal.dir (lib/dirlock.h): taken by the first start, held
 * until the process ends, so no other daemon opens the directory while
 * this one may still write to it (the stop included). */
static int lock_fd = -1;

static uint64_t mono_ns(void) { return tks_mono_ns(); }

/* The named producers (ingest acks), kept with the journal off too (then
 * their positions last as long as the process).  Loop thread only. */
_Static_assert(TKS_PRODUCER_NAME_MAX == TKS_OPREC_PRODUCER_MAX, "a producer name fits a record");
#define PRODUCER_SLOTS (2 * TKS_MAX_PRODUCERS) /* open addressing, at most half full */
static struct {
  struct tks_producer *list; /* TKS_MAX_PRODUCERS, allocated with the first */
  uint32_t n;
  uint32_t slot[PRODUCER_SLOTS]; /* index + 1 into list, 0: empty */
} P;
static void (*synced_fn)(struct tks_server *srv, uint64_t synced);

/* The writer's end (tks_journal_written) after its last flush, for the
 * Kafka sink's tail reader on its own thread; outlives D (the sink reads
 * it once more after the journal's stop). */
static pthread_mutex_t written_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
  uint64_t seq, off;
  bool known;
} W;

static void publish_written(struct tks_journal *j) {
  uint64_t seq, off;
  tks_journal_written(j, &seq, &off);
  pthread_mutex_lock(&written_mu);
  W.seq = seq, W.off = off, W.known = true;
  pthread_mutex_unlock(&written_mu);
}

bool tks_durability_written(uint64_t *seq, uint64_t *off) {
  pthread_mutex_lock(&written_mu);
  bool known = W.known;
  *seq = W.seq, *off = W.off;
  pthread_mutex_unlock(&written_mu);
  return known;
}

/* ---- the writer thread ---------------------------------------------- */

/*
 * The buffers between the loop and the disk (the batch, the queue, the
 * writer's work buffer and the journal's own) grow to what a burst needs
 * and are given back once empty: an empty buffer keeps at most keep_bytes,
 * BUF_KEEP or twice the most the writer took in a round over the last
 * IDLE_NS or the span before it, and after IDLE_NS with nothing to write
 * at most BUF_KEEP.  A backlog that lasts keeps its buffers; one that
 * ended does not stay resident.
 */
static size_t keep_for(size_t recent) { return recent > BUF_KEEP / 2 ? 2 * recent : BUF_KEEP; }

static void buf_give_back(struct tks_buf *b, size_t keep) {
  if (b->len == 0 && b->cap > keep) tks_buf_finish(b);
}

/* Under mu: the queue given back if it is empty and larger than keep, and
 * the writer's figures published (memory.journal_buffer_bytes). */
static void queue_give_back(struct tks_durability *d, const struct tks_buf *work, size_t keep) {
  buf_give_back(&d->queue, keep);
  d->keep_bytes = keep;
  d->writer_bytes = tks_buf_bytes(work) + tks_journal_buffer_bytes(d->j);
}

static bool writer_holds_more_than(const struct tks_durability *d, const struct tks_buf *work,
                                   size_t keep) {
  return d->queue.cap > keep || work->cap > keep || tks_journal_buffer_bytes(d->j) > keep;
}

static struct timespec deadline_in(uint64_t ns) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ns += (uint64_t)ts.tv_nsec;
  ts.tv_sec += (time_t)(ns / 1000000000u);
  ts.tv_nsec = (long)(ns % 1000000000u);
  return ts;
}

static void *writer_main(void *arg) {
  struct tks_durability *d = arg;
  struct tks_buf work = {0};
  uint64_t work_ticks = 0, pending_ticks = 0; /* in j's buffer, not yet written */
  bool pending = false;
  /* The most taken in a round in this IDLE_NS span and in the one before. */
  size_t need_now = 0, need_before = 0;
  uint64_t span_start = mono_ns();
  pthread_setname_np(pthread_self(), "tks-journal"); /* bench/cpu.sh finds it by name */
  pthread_mutex_lock(&d->mu);
  for (;;) {
    /* Wait for work: queued frames, a sync, stop, a retry or an fsync due. */
    while (!d->stopping && d->queue.len == 0 && !pending && d->sync_wanted <= d->synced_ticks &&
           !(d->fsync != TKS_FSYNC_NEVER && d->written_ticks > d->synced_ticks) &&
           d->prune_below <= d->pruned_below) {
      if (!writer_holds_more_than(d, &work, BUF_KEEP)) {
        pthread_cond_wait(&d->cv, &d->mu);
        continue;
      }
      /* Buffers a burst left: back to BUF_KEEP after IDLE_NS of nothing. */
      struct timespec ts = deadline_in(IDLE_NS);
      if (pthread_cond_timedwait(&d->cv, &d->mu, &ts) != ETIMEDOUT || d->queue.len) continue;
      need_now = need_before = 0;
      struct tks_buf queue = {0};
      if (d->queue.len == 0) {
        queue = d->queue;
        d->queue = (struct tks_buf){0};
      }
      pthread_mutex_unlock(&d->mu); /* the loop may queue meanwhile */
      buf_give_back(&queue, BUF_KEEP);
      buf_give_back(&work, BUF_KEEP);
      tks_journal_trim(d->j, BUF_KEEP);
      /* free() keeps what lies below the top of a heap, and glibc serves
       * buffers of a few MiB from the heap once one was freed: hand the
       * free pages back to the OS. */
      malloc_trim(0);
      pthread_mutex_lock(&d->mu);
      if (queue.cap && d->queue.cap == 0)
        d->queue = queue; /* small enough to keep, and the loop queued nothing meanwhile */
      else
        tks_buf_finish(&queue);
      queue_give_back(d, &work, BUF_KEEP);
      uv_async_send(&d->wake); /* the loop gives back its batch */
    }
    bool stopping = d->stopping;
    if (d->fsync != TKS_FSYNC_ALWAYS && !stopping && d->sync_wanted <= d->synced_ticks &&
        d->queue.len < (1u << 20)) {
      /* Gather a little more before writing. */
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_nsec += BATCH_NS;
      if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
      pthread_cond_timedwait(&d->cv, &d->mu, &ts);
    }
    /* Take the queue (after what an earlier round could not hand over). */
    if (work.len == 0) {
      struct tks_buf tmp = d->queue;
      d->queue = work;
      work = tmp;
    } else if (d->queue.len) {
      if (tks_buf_append(&work, d->queue.data, d->queue.len) == 0) d->queue.len = 0;
    }
    work_ticks = d->queue.len ? work_ticks : d->queued_ticks;
    d->writer_bytes = tks_buf_bytes(&work) + tks_journal_buffer_bytes(d->j); /* meanwhile */
    uint64_t now = mono_ns();
    if (now - span_start >= IDLE_NS) {
      need_before = need_now;
      need_now = 0;
      span_start = now;
    }
    if (work.len > need_now) need_now = work.len;
    size_t keep = keep_for(need_now > need_before ? need_now : need_before);
    enum tks_fsync policy = d->fsync;
    uint64_t interval = d->fsync_interval_ns;
    bool want_sync = d->sync_wanted > d->synced_ticks || stopping;
    uint64_t since_fsync = mono_ns() - d->last_fsync_mono_ns;
    uint64_t prune = d->prune_below > d->pruned_below ? d->prune_below : 0;
    pthread_mutex_unlock(&d->mu);

    int err = 0;
    size_t off = 0;
    uint64_t rotated = 0, rotated_next = 0;
    while (off + 4 <= work.len) {
      uint32_t len;
      memcpy(&len, work.data + off, 4);
      if (len == 0) {
        /* A rotate marker: what came before is written first, so that the
         * new segment holds exactly what comes after.  Failing, the marker
         * stays for the retry. */
        if ((err = tks_journal_flush(d->j, false))) break;
        if ((err = tks_journal_rotate(d->j, &rotated_next))) break;
        rotated++;
        off += 4;
        continue;
      }
      err = tks_journal_append(d->j, work.data + off + 4, len);
      if (err) break;
      off += 4 + len;
      /* A chunk at a time: the journal's buffer stays small however far
       * behind the writer is (a failed write keeps the frames there). */
      if (tks_journal_pending(d->j) >= WRITE_CHUNK && (err = tks_journal_flush(d->j, false))) break;
    }
    if (prune) {
      int r = tks_journal_remove_below(d->j, prune);
      if (r < 0)
        tks_log(TKS_LOG_WARN, "journal: removing segments below %" PRIu64 ": %s", prune,
                strerror(-r));
    }
    if (off) pending = true;
    /* Ticks count as written only once every frame up to them is handed over. */
    if (!err && off == work.len && off) pending_ticks = work_ticks;
    tks_buf_consume(&work, off);
    buf_give_back(&work, keep);
    bool do_fsync = policy == TKS_FSYNC_ALWAYS || want_sync ||
                    (policy == TKS_FSYNC_INTERVAL && since_fsync >= interval);
    if (!err && (pending || do_fsync)) err = tks_journal_flush(d->j, do_fsync);
    tks_journal_trim(d->j, keep);
    publish_written(d->j);
    struct tks_journal_info info;
    tks_journal_info(d->j, &info);

    pthread_mutex_lock(&d->mu);
    queue_give_back(d, &work, keep);
    d->info = info;
    d->last_error = err;
    if (prune) d->pruned_below = prune;
    if (rotated) {
      d->rotations_done += rotated;
      d->rotated_next = rotated_next;
      pthread_cond_broadcast(&d->rotated_cv);
    }
    if (!err) {
      if (pending) d->written_ticks = pending_ticks;
      pending = false;
      if (do_fsync) {
        d->synced_ticks = d->written_ticks;
        d->last_fsync_mono_ns = mono_ns();
      }
    }
    uv_async_send(&d->wake);
    if (stopping && (err == 0 || d->queue.len == 0)) {
      if (err == 0 && d->queue.len) continue; /* one more round for what came in */
      break;
    }
    if (err) {
      /* Retry later; the frames stay buffered in the journal. */
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_nsec += RETRY_NS;
      if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
      pthread_cond_timedwait(&d->cv, &d->mu, &ts);
    } else if (policy == TKS_FSYNC_INTERVAL && d->written_ticks > d->synced_ticks &&
               d->queue.len == 0 && d->sync_wanted <= d->synced_ticks && !d->stopping) {
      /* Sleep until the fsync is due (or work arrives). */
      uint64_t due = d->last_fsync_mono_ns + interval, at = mono_ns();
      if (due > at) {
        struct timespec ts = deadline_in(due - at);
        pthread_cond_timedwait(&d->cv, &d->mu, &ts);
      }
    }
  }
  pthread_mutex_unlock(&d->mu);
  tks_buf_finish(&work);
  return NULL;
}

/* ---- the loop side --------------------------------------------------- */

static void answer_waiters(struct tks_durability *d, uint64_t synced) {
  /* Take the due waiters out first: a callback may cancel or add waiters. */
  size_t keep = 0, ndue = 0;
  struct waiter due[64];
  for (size_t i = 0; i < d->nwaiters; i++) {
    if (d->waiters[i].target <= synced && ndue < TKS_ARRAY_SIZE(due))
      due[ndue++] = d->waiters[i];
    else
      d->waiters[keep++] = d->waiters[i];
  }
  d->nwaiters = keep;
  for (size_t i = 0; i < ndue; i++)
    due[i].done(due[i].ctx, synced + d->replayed_ticks + d->load.ticks);
  if (keep && d->waiters[0].target <= synced) answer_waiters(d, synced); /* more than 64 due */
}

static void on_wake(uv_async_t *h) {
  struct tks_durability *d = h->data;
  struct tks_server *srv = d->srv;
  pthread_mutex_lock(&d->mu);
  uint64_t synced = d->synced_ticks;
  int err = d->last_error;
  size_t queued = d->queue.len, keep = d->keep_bytes;
  uint64_t rotations = d->rotations_done, next = d->rotated_next;
  pthread_mutex_unlock(&d->mu);
  buf_give_back(&d->batch, keep > BUF_KEEP ? keep : BUF_KEEP); /* empty between reads */
  answer_waiters(d, synced);
  if (synced_fn && synced != d->notified_synced) {
    d->notified_synced = synced;
    synced_fn(srv, synced);
  }
  if (d->rotated && rotations >= d->rotated_ticket) {
    void (*fn)(void *, uint64_t) = d->rotated;
    d->rotated = NULL;
    fn(d->rotated_ctx, next);
  }
  if (err && !d->failing_logged) {
    tks_log(TKS_LOG_ERROR, "journal writes failing in %s: %s; %s until they succeed again",
            srv->cfg.journal.dir, strerror(-err),
            srv->cfg.journal.on_error == TKS_ON_ERROR_REJECT ? "rejecting new ticks (journal_error)"
                                                              : "holding ingest (backpressure)");
    d->failing_logged = true;
  } else if (!err && d->failing_logged) {
    tks_log(TKS_LOG_INFO, "journal writes succeed again in %s", srv->cfg.journal.dir);
    d->failing_logged = false;
  }
  bool hold = (err && srv->cfg.journal.on_error == TKS_ON_ERROR_BACKPRESSURE) ||
              queued > QUEUE_HOLD_BYTES;
  if (hold != tks_server_held(srv, TKS_HOLD_JOURNAL)) tks_server_hold(srv, TKS_HOLD_JOURNAL, hold);
}

/* The batch begun: its frame length to come, then the receive time. */
static void batch_begin(struct tks_durability *d, int64_t recv_ns) {
  d->batch.len = 0;
  d->run_len = 0;
  d->bheader = BATCH_HEADER;
  d->bprod = NULL;
  uint32_t len = 0;
  if (tks_buf_append(&d->batch, &len, 4) || tks_buf_append(&d->batch, &recv_ns, sizeof recv_ns))
    tks_log(TKS_LOG_ERROR, "out of memory for the journal batch");
}

/* The batch begun as a producer record: its header (the position is
 * written at submit), then the receive time; the ticks follow. */
static void batch_begin_producer(struct tks_durability *d, int64_t recv_ns,
                                 struct tks_producer *p) {
  uint8_t head[TKS_OPREC_MAX];
  size_t n = tks_oprec_encode(
      &(struct tks_oprec){.kind = TKS_OPREC_PRODUCER, .producer = p->name, .producer_len = p->len},
      head);
  d->batch.len = 0;
  d->run_len = 0;
  uint32_t len = 0;
  if (!n || tks_buf_append(&d->batch, &len, 4) || tks_buf_append(&d->batch, head, n) ||
      tks_buf_append(&d->batch, &recv_ns, sizeof recv_ns)) {
    tks_log(TKS_LOG_ERROR, "out of memory for the journal batch");
    batch_begin(d, recv_ns);
    return;
  }
  d->bheader = d->batch.len;
  d->bprod = p;
}

void tks_durability_batch_producer(struct tks_server *srv, struct tks_producer *p) {
  (void)srv;
  struct tks_durability *d = D;
  if (!d || d->batch.len < BATCH_HEADER) return;
  int64_t recv;
  memcpy(&recv, d->batch.data + d->bheader - 8, sizeof recv);
  batch_begin_producer(d, recv, p);
}

static void batch_cut(struct tks_server *srv, struct tks_durability *d);

bool tks_durability_batch(struct tks_server *srv, int64_t recv_ns) {
  (void)srv;
  struct tks_durability *d = D;
  if (!d) return false;
  batch_begin(d, recv_ns);
  return true;
}

/* The run of accepted ticks copied into the batch. */
static void run_flush(struct tks_durability *d) {
  if (!d->run_len) return;
  if (tks_buf_append(&d->batch, d->run, d->run_len))
    tks_log(TKS_LOG_ERROR, "out of memory for the journal batch");
  d->run_len = 0;
}

/* A run begun or ended, or the batch full: tks_durability_accept's rest. */
static __attribute__((noinline)) void accept_slow(struct tks_server *srv, struct tks_durability *d,
                                                  const char *msg, size_t len) {
  if (d->run_len && d->run + d->run_len == msg) {
    d->run_len += len;
  } else {
    run_flush(d);
    d->run = msg;
    d->run_len = len;
  }
  if (d->batch.len + d->run_len >= TKS_JOURNAL_BATCH_MAX) /* frames well under the frame limit */
    batch_cut(srv, d);
}

void tks_durability_accept(struct tks_server *srv, const void *msg, size_t len) {
  struct tks_durability *d = D;
  if (!d) return;
  /* The common case, a tick right after the one before: a leaf, no call. */
  if (d->run_len && d->run + d->run_len == (const char *)msg &&
      d->batch.len + d->run_len + len < TKS_JOURNAL_BATCH_MAX) {
    d->run_len += len;
    return;
  }
  accept_slow(srv, d, msg, len);
}

/* Queues one frame for the writer thread: the batch (BATCH_HEADER, then
 * its payload) or, with batch NULL, len bytes at data.  The batch buffer is
 * handed over whole when the queue is empty (the writer took the rest):
 * no copy, unless the writer is behind. */
static void queue_frame(struct tks_server *srv, struct tks_durability *d, struct tks_buf *batch,
                        const void *data, uint32_t len) {
  if (batch) {
    len = (uint32_t)(batch->len - 4);
    memcpy(batch->data, &len, 4);
  }
  d->submitted_bytes += TKS_JOURNAL_FRAME_HEADER + len;
  pthread_mutex_lock(&d->mu);
  int r = 0;
  if (batch && d->queue.len == 0) {
    struct tks_buf tmp = d->queue;
    d->queue = *batch;
    *batch = tmp;
  } else if (batch) {
    r = tks_buf_append(&d->queue, batch->data, batch->len);
  } else {
    r = tks_buf_append(&d->queue, &len, 4);
    if (r == 0) r = tks_buf_append(&d->queue, data, len);
  }
  d->queued_ticks = srv->ticks_accepted;
  size_t queued = d->queue.len, keep = d->keep_bytes;
  pthread_cond_signal(&d->cv);
  pthread_mutex_unlock(&d->mu);
  if (batch) {
    batch->len = 0;
    if (batch->cap > (keep > BUF_KEEP ? keep : BUF_KEEP)) tks_buf_finish(batch);
  }
  if (r) tks_log(TKS_LOG_ERROR, "out of memory queueing %u journal bytes", len);
  if (queued > QUEUE_HOLD_BYTES && !tks_server_held(srv, TKS_HOLD_JOURNAL))
    tks_server_hold(srv, TKS_HOLD_JOURNAL, true); /* the disk is behind */
}

void tks_durability_submit(struct tks_server *srv) {
  struct tks_durability *d = D;
  if (!d) return;
  run_flush(d);
  struct tks_producer *p = d->bprod;
  if (p) {
    /* The position after this frame's messages: journaled with its ticks,
     * or alone when they were all rejected. */
    uint64_t pos = tks_producer_position(srv, p);
    if (d->batch.len > d->bheader || pos != p->journaled) {
      memcpy(d->batch.data + d->bheader - 16, &pos, 8);
      p->journaled = pos;
      queue_frame(srv, d, &d->batch, NULL, 0);
    }
  } else if (d->batch.len > BATCH_HEADER) {
    queue_frame(srv, d, &d->batch, NULL, 0);
  }
  d->batch.len = 0;
  d->bheader = BATCH_HEADER;
  d->bprod = NULL;
}

/* The batch so far goes as a frame of its own, and the rest of the read
 * begins another with the same receive time (and producer). */
static void batch_cut(struct tks_server *srv, struct tks_durability *d) {
  int64_t recv;
  memcpy(&recv, d->batch.data + d->bheader - 8, sizeof recv);
  struct tks_producer *p = d->bprod;
  tks_durability_submit(srv);
  if (p)
    batch_begin_producer(d, recv, p);
  else
    batch_begin(d, recv);
}

uint64_t tks_durability_buffer_bytes(struct tks_server *srv) {
  (void)srv;
  struct tks_durability *d = D;
  if (!d) return 0;
  pthread_mutex_lock(&d->mu);
  uint64_t n = tks_buf_bytes(&d->queue) + d->writer_bytes;
  pthread_mutex_unlock(&d->mu);
  return n + tks_buf_bytes(&d->batch);
}

/* ---- records: operations on the store, journaled among the ticks ------ */

/*
 * A record (lib/oprec.h) is journaled where it happens among the ticks, so
 * that a replay repeats it there: evictions (never the replay's own policy:
 * blocks a checkpoint loaded are cut differently) and archive seals (their
 * trim applied when the seal is committed in archive.dir, srv->seal_committed,
 * at its commit record or, when the crash came before that record reached
 * the disk, at the end of the replay, which then journals the commit).
 */
static void queue_record(struct tks_server *srv, const struct tks_oprec *rec) {
  struct tks_durability *d = D;
  if (!d) return;
  uint8_t frame[TKS_OPREC_MAX];
  size_t len = tks_oprec_encode(rec, frame);
  if (!len) return;
  /* The ticks of this read before it go first: their frame ends here and
   * the rest of the read begins a new one with the same receive time. */
  run_flush(d);
  if (d->batch.len > d->bheader) batch_cut(srv, d);
  queue_frame(srv, d, NULL, frame, (uint32_t)len);
  d->records++;
}

void tks_durability_on_evict(struct tks_server *srv, enum tks_store_rep rep, uint32_t symbol,
                             const void *entries, uint32_t count) {
  (void)entries;
  size_t len;
  const char *name = tks_symtab_name(srv->symbols, symbol, &len);
  if (!D || !name || !count) return;
  queue_record(srv, &(struct tks_oprec){.kind = TKS_OPREC_EVICT,
                                        .rep = (uint8_t)rep,
                                        .symbol = name,
                                        .symbol_len = (uint8_t)len,
                                        .ticks = count});
}

void tks_durability_seal_begin(struct tks_server *srv, uint64_t seal, int64_t cut) {
  queue_record(srv, &(struct tks_oprec){.kind = TKS_OPREC_SEAL_BEGIN, .seal = seal, .cut = cut});
}
void tks_durability_seal_commit(struct tks_server *srv, uint64_t seal) {
  queue_record(srv, &(struct tks_oprec){.kind = TKS_OPREC_SEAL_COMMIT, .seal = seal});
}
void tks_durability_seal_abort(struct tks_server *srv, uint64_t seal) {
  queue_record(srv, &(struct tks_oprec){.kind = TKS_OPREC_SEAL_ABORT, .seal = seal});
}

bool tks_durability_failing(const struct tks_server *srv) {
  struct tks_durability *d = D;
  if (!d) return false;
  pthread_mutex_lock(&d->mu);
  bool failing = d->last_error != 0;
  pthread_mutex_unlock(&d->mu);
  return failing;
}

int tks_durability_sync(struct tks_server *srv, void (*done)(void *ctx, uint64_t durable), void *ctx) {
  struct tks_durability *d = D;
  if (!d) return -ENOTSUP;
  uint64_t target = srv->ticks_accepted;
  pthread_mutex_lock(&d->mu);
  uint64_t synced = d->synced_ticks;
  if (synced < target) {
    if (d->sync_wanted < target) d->sync_wanted = target;
    pthread_cond_signal(&d->cv);
  }
  pthread_mutex_unlock(&d->mu);
  if (synced >= target) {
    done(ctx, synced + d->replayed_ticks + d->load.ticks);
    return 0;
  }
  if (d->nwaiters == d->waiters_cap) {
    size_t cap = d->waiters_cap ? d->waiters_cap * 2 : 16;
    struct waiter *w = realloc(d->waiters, cap * sizeof *w);
    if (!w) return -ENOMEM;
    d->waiters = w;
    d->waiters_cap = cap;
  }
  d->waiters[d->nwaiters++] = (struct waiter){done, ctx, target};
  return 0;
}

void tks_durability_cancel(struct tks_server *srv, void *ctx) {
  struct tks_durability *d = D;
  if (!d) return;
  size_t keep = 0;
  for (size_t i = 0; i < d->nwaiters; i++)
    if (d->waiters[i].ctx != ctx) d->waiters[keep++] = d->waiters[i];
  d->nwaiters = keep;
}

/* ---- checkpoints' side: rotation, pruning -------------------------- */

/* Queues a rotate marker; returns its ticket (the rotations it completes). */
static int queue_marker(struct tks_durability *d, uint64_t *ticket) {
  uint32_t zero = 0;
  pthread_mutex_lock(&d->mu);
  int r = tks_buf_append(&d->queue, &zero, 4);
  if (r == 0) *ticket = ++d->rotations_asked;
  /* Every producer's position restated first thing in the new segment: a
   * replay that begins there (after a checkpoint) knows them all. */
  for (uint32_t i = 0; i < P.n && r == 0; i++) {
    const struct tks_producer *p = &P.list[i];
    uint8_t rec[TKS_OPREC_MAX];
    uint32_t len = (uint32_t)tks_oprec_encode(&(struct tks_oprec){.kind = TKS_OPREC_PRODUCER,
                                                                  .producer = p->name,
                                                                  .producer_len = p->len,
                                                                  .position = p->journaled},
                                              rec);
    if (!len) continue;
    r = tks_buf_append(&d->queue, &len, 4);
    if (r == 0) r = tks_buf_append(&d->queue, rec, len);
    d->submitted_bytes += TKS_JOURNAL_FRAME_HEADER + len;
  }
  pthread_cond_signal(&d->cv);
  pthread_mutex_unlock(&d->mu);
  return r;
}

int tks_durability_rotate(struct tks_server *srv, void (*done)(void *ctx, uint64_t next),
                          void *ctx) {
  struct tks_durability *d = D;
  if (!d) return -ENOTSUP;
  if (d->rotated) return -EBUSY;
  uint64_t ticket;
  int r = queue_marker(d, &ticket);
  if (r) return r;
  d->rotated = done;
  d->rotated_ctx = ctx;
  d->rotated_ticket = ticket;
  return 0;
}

void tks_durability_rotate_cancel(struct tks_server *srv) {
  if (D) D->rotated = NULL;
}

int tks_durability_rotate_wait(struct tks_server *srv, uint64_t timeout_ns, uint64_t *next) {
  struct tks_durability *d = D;
  if (!d) return -ENOTSUP;
  uint64_t ticket = d->rotated ? d->rotated_ticket : 0;
  if (!ticket) {
    int r = queue_marker(d, &ticket);
    if (r) return r;
  }
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  uint64_t ns = (uint64_t)until.tv_nsec + timeout_ns;
  until.tv_sec += (time_t)(ns / 1000000000u);
  until.tv_nsec = (long)(ns % 1000000000u);
  int r = 0;
  pthread_mutex_lock(&d->mu);
  while (d->rotations_done < ticket && r == 0)
    r = pthread_cond_timedwait(&d->rotated_cv, &d->mu, &until);
  bool done = d->rotations_done >= ticket;
  *next = d->rotated_next;
  pthread_mutex_unlock(&d->mu);
  d->rotated = NULL;
  return done ? 0 : -ETIMEDOUT;
}

void tks_durability_prune(struct tks_server *srv, uint64_t below) {
  struct tks_durability *d = D;
  /* The Kafka sink still reads from journal_keep_from on: kept. */
  if (below > srv->journal_keep_from) below = srv->journal_keep_from;
  if (!d || !below) return;
  pthread_mutex_lock(&d->mu);
  if (below > d->prune_below) d->prune_below = below;
  pthread_cond_signal(&d->cv);
  pthread_mutex_unlock(&d->mu);
}

uint64_t tks_durability_journal_bytes(struct tks_server *srv) {
  struct tks_durability *d = D;
  if (!d) return 0;
  pthread_mutex_lock(&d->mu);
  uint64_t b = d->info.bytes;
  pthread_mutex_unlock(&d->mu);
  return b;
}

uint64_t tks_durability_submitted_bytes(struct tks_server *srv) {
  return D ? D->submitted_bytes : 0;
}

void tks_durability_load_info(struct tks_server *srv, struct tks_durability_load *out) {
  if (D)
    *out = D->load;
  else
    memset(out, 0, sizeof *out);
}

/* ---- replay ---------------------------------------------------------- */

#define REPLAY_LOG_NS 2000000000u /* a progress line every 2 s */
#define CLOCK_EVERY (256u << 10)  /* look at the clock after this many bytes of frames */
#define FRAME_COST 256u           /* a frame's own cost, in bytes of payload */

#define MAX_PENDING_SEALS 64 /* seals begun and not yet ended in a replay */

struct replay_ctx {
  struct tks_server *srv;
  uint64_t ticks, rejected, frames;
  uint64_t records, evicted, sealed, bad_records;
  uint64_t lost_producers;      /* positions of producers past TKS_MAX_PRODUCERS */
  struct tks_shape_cache shape; /* the replay's, as a connection's */
  struct {
    uint64_t seal;
    int64_t cut;
  } pending[MAX_PENDING_SEALS]; /* seal begun, no commit or abort yet */
  unsigned npending;
  uint64_t next_log_ns;
  uint64_t start_ns;
};

/* The replay while it runs: the reader, and the journal's state that goes
 * live (D) once it is done. */
static struct {
  bool active;
  struct tks_durability *d;
  struct tks_journal_reader *r;
  struct replay_ctx rc;
} RP;

/* A committed seal's ticks leave memory, as they did when it committed. */
static void replay_trim(struct replay_ctx *rc, uint64_t seal, int64_t cut) {
  struct tks_server *srv = rc->srv;
  srv->evict_quiet = true;
  uint64_t n = tks_store_trim_before(srv->store, cut);
  srv->evict_quiet = false;
  rc->sealed += n;
  tks_log(TKS_LOG_DEBUG,
          "replay: seal %" PRIu64 " is committed: %" PRIu64 " ticks before %" PRId64
          " are in the archive",
          seal, n, cut);
}

static void pending_drop(struct replay_ctx *rc, unsigned i) {
  rc->pending[i] = rc->pending[--rc->npending];
}

/* A record (lib/oprec.h).  One that does not parse is counted
 * (a warning at the end) and skipped: it passed its CRC, so it was written
 * so, by a version that knows more kinds. */
static void replay_ticks(struct replay_ctx *rc, int64_t recv_ns, const uint8_t *p, size_t n);

static void replay_record(struct replay_ctx *rc, const void *payload, size_t len) {
  struct tks_server *srv = rc->srv;
  struct tks_oprec r;
  if (tks_oprec_parse(payload, len, &r) != 0) {
    rc->records++;
    rc->bad_records++;
    return;
  }
  if (r.kind != TKS_OPREC_PRODUCER) rc->records++; /* store operations */
  switch (r.kind) {
  case TKS_OPREC_PRODUCER: {
    /* Its position, then the ticks it came with (none: restated). */
    struct tks_producer *p = tks_durability_producer(srv, r.producer, r.producer_len, true);
    if (p) {
      p->position = p->journaled = r.position;
    } else {
      rc->lost_producers++;
    }
    if (r.has_ticks) replay_ticks(rc, r.recv_ns, r.data, r.data_len);
    return;
  }
  case TKS_OPREC_EVICT: {
    uint32_t id;
    if (tks_symtab_lookup(srv->symbols, r.symbol, r.symbol_len, &id) == 0) {
      srv->evict_quiet = true;
      rc->evicted += tks_store_evict_head(srv->store, (enum tks_store_rep)r.rep, id, r.ticks);
      srv->evict_quiet = false;
    }
    return;
  }
  case TKS_OPREC_SEAL_BEGIN:
    if (rc->npending < MAX_PENDING_SEALS) {
      rc->pending[rc->npending].seal = r.seal;
      rc->pending[rc->npending++].cut = r.cut;
    }
    return;
  case TKS_OPREC_SEAL_COMMIT:
  case TKS_OPREC_SEAL_ABORT:
    for (unsigned i = 0; i < rc->npending; i++) {
      if (rc->pending[i].seal != r.seal) continue;
      if (r.kind == TKS_OPREC_SEAL_COMMIT && r.seal <= srv->seal_committed)
        replay_trim(rc, r.seal, rc->pending[i].cut);
      pending_drop(rc, i);
      return;
    }
    return; /* its begin is before the checkpoint: what it did is in there */
  }
}

static void replay_frame(struct replay_ctx *rc, const void *payload, size_t len) {
  if (len < sizeof(int64_t)) {
    rc->rejected++;
    return;
  }
  int64_t recv_ns;
  memcpy(&recv_ns, payload, sizeof recv_ns);
  if (recv_ns == TKS_OPREC_MARK) {
    replay_record(rc, payload, len);
    return;
  }
  replay_ticks(rc, recv_ns, (const uint8_t *)payload + sizeof recv_ns, len - sizeof recv_ns);
}

/* The ticks of a frame, as ingest stored them. */
static void replay_ticks(struct replay_ctx *rc, int64_t recv_ns, const uint8_t *p, size_t n) {
  struct tks_server *srv = rc->srv;
  size_t off = 0;
  _Alignas(8) char record[TKS_RECORD_MAX];
  struct tks_dyn_tick dyn;
  struct tks_decode_result res = {.dyn = &dyn};
  while (off < n) {
    struct tks_intern_mark mark = tks_server_intern_mark(srv);
    /* Through a shape cache, as ingest decodes: the journal holds the
     * ticks as the clients sent them, the same shapes over and over. */
    enum tks_decode_status st =
        tks_shape_decode(&rc->shape, &srv->decoder, p + off, n - off, recv_ns, record, &res);
    if (st != TKS_DECODE_OK && st != TKS_DECODE_DYNAMIC)
      tks_server_unintern(srv, mark); /* a table filled part-way (too_many_symbols) */
    if (st == TKS_DECODE_NEED_MORE || st == TKS_DECODE_ERROR) {
      rc->rejected++; /* a frame that passed its CRC but does not decode: count, go on */
      break;
    }
    off += res.consumed;
    if (st == TKS_DECODE_REJECT) {
      rc->rejected++;
      continue;
    }
    /* Backpressure cannot wait here (nothing is read during replay): the
     * policy refuses instead, and the tick is counted not stored. */
    if (tks_admit(srv, st, record, &dyn) == TKS_ADMIT_STORED) {
      rc->ticks++;
    } else {
      tks_server_unintern(srv, mark); /* a refused tick adds no symbol */
      rc->rejected++;
    }
  }
  rc->frames++;
}

/* The checkpoint step's state: the candidates newest first, the one being
 * loaded, and what the load gave (copied into D by the replay's begin). */
#define CKPT_SLICE_BYTES (16u << 20) /* chunk bytes one call loads at most */
static struct {
  uint64_t seqs[16];
  size_t n, i;
  struct tks_checkpoint_load *l;
  char path[4200];
  uint64_t t0, next_log;
  uint64_t from; /* the journal segment after what was loaded, 0: all */
  struct tks_durability_load load;
} CK;

static void ckpt_progress(struct tks_load_progress *p) {
  uint64_t done = 0, total = 0;
  if (CK.l) tks_checkpoint_progress(CK.l, &done, &total);
  p->bytes_done = done;
  p->bytes_total = total;
}

static int ckpt_bad(struct tks_server *srv, int rc);

/* Opens candidate CK.i onwards; CK.l NULL when none is left. */
static int ckpt_open(struct tks_server *srv) {
  const char *dir = srv->cfg.journal.dir;
  char name[TKS_CHECKPOINT_NAME_MAX], err[1200];
  while (CK.i < CK.n) {
    tks_checkpoint_name(name, CK.seqs[CK.i]);
    snprintf(CK.path, sizeof CK.path, "%s/%s", dir, name);
    struct tks_checkpoint_target t = {&srv->cfg.schema, srv->cfg.store.mode, srv->store,
                                      srv->symbols,     srv->strings,        srv->names,
                                      &srv->usage};
    CK.t0 = mono_ns();
    CK.next_log = CK.t0 + 2000000000u;
    tks_log(TKS_LOG_INFO, "loading checkpoint %s", CK.path);
    CK.l = tks_checkpoint_open(CK.path, &t, err, sizeof err);
    if (CK.l) return 0;
    tks_log(TKS_LOG_ERROR, "%s", err);
    int r = ckpt_bad(srv, -EBADMSG);
    if (r) return r;
  }
  return 0;
}

/* The candidate being loaded failed with rc (its reason logged): the store
 * is reset, then refuse (a schema that cannot convert, on_corrupt: refuse)
 * or set it aside and go on with the next one.  0 or -errno. */
static int ckpt_bad(struct tks_server *srv, int rc) {
  const char *dir = srv->cfg.journal.dir;
  bool more = CK.i + 1 < CK.n;
  tks_checkpoint_close(CK.l);
  CK.l = NULL;
  int r = tks_server_reset_store(srv);
  if (r) return r;
  if (rc == -ENOTSUP) {
    tks_log(TKS_LOG_ERROR,
            "refusing to start: %s cannot be converted to the schema in %s "
            "(declare the field optional, or start with the old schema)",
            CK.path, srv->cfg.path[0] ? srv->cfg.path : "the config");
    return rc;
  }
  if (srv->cfg.journal.on_corrupt == TKS_CORRUPT_REFUSE) {
    tks_log(TKS_LOG_ERROR,
            "refusing to start: journal.on_corrupt is refuse (move %s aside to "
            "start from %s)",
            CK.path, more ? "the previous checkpoint" : "the journal");
    return -EBADMSG;
  }
  /* Set aside, so that the newest two kept are good ones: a bad one left
   * in place would count as one of them and let the good one go. */
  char aside[4210];
  snprintf(aside, sizeof aside, "%s.bad", CK.path);
  bool moved = rename(CK.path, aside) == 0 && tks_fsync_dir(dir) == 0;
  tks_log(TKS_LOG_WARN, "checkpoint %s is bad%s%s: falling back to %s", CK.path,
          moved ? ", kept as " : "", moved ? aside : "",
          more ? "the previous checkpoint and the journal after it" : "the whole journal");
  CK.i++;
  return 0;
}

/* No candidate loaded: the journal must still hold everything. */
static int ckpt_none_loaded(struct tks_server *srv) {
  if (CK.n == 0) return 0;
  const char *dir = srv->cfg.journal.dir;
  char first[4200];
  snprintf(first, sizeof first, "%s/journal-%020d.tkj", dir, 1);
  if (access(first, F_OK) != 0) {
    tks_log(TKS_LOG_ERROR,
            "refusing to start: no checkpoint in %s loads, and the journal no "
            "longer holds what they covered (%s is gone)",
            dir, first);
    return -EBADMSG;
  }
  return 0;
}

int tks_durability_checkpoint_begin(struct tks_server *srv, struct tks_load_progress *p) {
  memset(&CK, 0, sizeof CK);
  if (!srv->cfg.journal.enabled) return 0;
  const char *dir = srv->cfg.journal.dir;
  int r = tks_checkpoint_list(dir, CK.seqs, TKS_ARRAY_SIZE(CK.seqs), &CK.n);
  if (r) {
    tks_log(TKS_LOG_ERROR, "%s: listing checkpoints: %s", dir, strerror(-r));
    return r;
  }
  if (CK.n > TKS_ARRAY_SIZE(CK.seqs)) CK.n = TKS_ARRAY_SIZE(CK.seqs);
  if ((r = ckpt_open(srv))) return r;
  ckpt_progress(p);
  return 0;
}

int tks_durability_checkpoint_slice(struct tks_server *srv, uint64_t deadline_ns,
                                    struct tks_load_progress *p) {
  char err[1200];
  while (CK.l) {
    int rc = tks_checkpoint_next(CK.l, CKPT_SLICE_BYTES, err, sizeof err);
    if (rc == 1) {
      ckpt_progress(p);
      uint64_t now = mono_ns();
      if (now >= CK.next_log) {
        tks_log(TKS_LOG_INFO, "checkpoint: %.0f%% loaded (%.1f s)",
                p->bytes_total ? 100.0 * (double)p->bytes_done / (double)p->bytes_total : 100.0,
                (double)(now - CK.t0) / 1e9);
        CK.next_log = now + 2000000000u;
      }
      if (now >= deadline_ns) return 1;
      continue;
    }
    if (rc == 0) {
      struct tks_checkpoint_load_info li;
      tks_checkpoint_load_info(CK.l, &li);
      const struct tks_checkpoint_info *h = tks_checkpoint_header(CK.l);
      double secs = (double)(mono_ns() - CK.t0) / 1e9;
      CK.load = (struct tks_durability_load){.ticks = li.ticks,
                                             .bytes = h->bytes,
                                             .next_segment = h->next_segment,
                                             .created_ns = h->created_ns,
                                             .seconds = secs,
                                             .converted = li.converted};
      snprintf(CK.load.file, sizeof CK.load.file, "%s", CK.path);
      tks_log(TKS_LOG_INFO,
              "checkpoint %s: %" PRIu64 " ticks in %.2f s (%.0f ticks/s, %.0f MB/s); replay "
              "resumes at segment %" PRIu64,
              CK.path, li.ticks, secs, secs > 0 ? (double)li.ticks / secs : 0.0,
              secs > 0 ? (double)h->bytes / secs / 1e6 : 0.0, h->next_segment);
      if (li.converted)
        tks_log(TKS_LOG_INFO, "checkpoint converted to the current schema and mode: %s",
                li.conversion);
      if (li.dropped_ticks)
        tks_log(TKS_LOG_WARN,
                "checkpoint: %" PRIu64 " fields of %" PRIu64 " ticks dropped: the schema no "
                "longer declares them and store.mode is slotted",
                li.dropped_fields, li.dropped_ticks);
      p->ticks = li.ticks;
      CK.from = h->next_segment;
      tks_checkpoint_close(CK.l); /* h with it */
      CK.l = NULL;
      return 0;
    }
    tks_log(TKS_LOG_ERROR, "%s", err);
    int r = ckpt_bad(srv, rc);
    if (r) return r;
    if ((r = ckpt_open(srv))) return r;
    if (mono_ns() >= deadline_ns) return CK.l ? 1 : ckpt_none_loaded(srv);
  }
  return CK.from ? 0 : ckpt_none_loaded(srv);
}

bool tks_durability_checkpoint_pending(void) { return CK.l != NULL; }

/* A stop while the checkpoint loads: the loader closed, nothing written. */
static void ckpt_abandon(void) {
  if (!CK.l) return;
  tks_checkpoint_close(CK.l);
  CK.l = NULL;
  tks_log(TKS_LOG_INFO, "checkpoint load abandoned (%s)", CK.path);
}

static void on_wake_closed(uv_handle_t *h) {
  struct tks_durability *d = h->data;
  tks_buf_finish(&d->queue);
  tks_buf_finish(&d->batch);
  free(d->waiters);
  free(d);
}

int tks_durability_lock(struct tks_server *srv) {
  const struct tks_config *cfg = &srv->cfg;
  if (!cfg->journal.enabled || lock_fd >= 0) return 0;
  char err[600];
  int r = tks_dirlock_take_waiting(cfg->journal.dir, "journal.dir", TKS_DIRLOCK_DEAD_WAIT_MS,
                                   &lock_fd, err, sizeof err);
  if (r) tks_log(TKS_LOG_ERROR, "%s", err);
  return r;
}

static void replay_progress(struct tks_load_progress *p) {
  struct tks_journal_progress pr;
  tks_journal_reader_progress(RP.r, &pr);
  p->ticks = RP.rc.ticks;
  p->rejected = RP.rc.rejected;
  p->bytes_done = pr.bytes_done;
  p->bytes_total = pr.bytes_total;
  p->segment = pr.segment;
  p->segments_done = pr.segments_done;
  p->segments = pr.segments;
}

int tks_durability_replay_begin(struct tks_server *srv, uint64_t from,
                                struct tks_load_progress *p) {
  const struct tks_config *cfg = &srv->cfg;
  if (!cfg->journal.enabled) {
    tks_log(TKS_LOG_WARN, "journal disabled (journal.enabled: false): ticks live in memory only");
    return 0;
  }
  char err[1024];
  struct tks_durability *d = calloc(1, sizeof *d);
  if (!d) return -ENOMEM;
  d->srv = srv;
  d->fsync = cfg->journal.fsync;
  d->fsync_interval_ns = cfg->journal.fsync_interval_ns;
  /* After the checkpoint step (load.c runs it first): the journal from
   * the segment after what it loaded. */
  d->load = CK.load;
  if (CK.from > from) from = CK.from;
  int r = tks_journal_reader_open(&RP.r, cfg->journal.dir, from, cfg->journal.on_corrupt, err,
                                  sizeof err);
  if (r) {
    tks_log(TKS_LOG_ERROR, "%s", err[0] ? err : strerror(-r));
    free(d);
    return r;
  }
  struct tks_journal_progress pr;
  tks_journal_reader_progress(RP.r, &pr);
  char from_text[48] = "";
  if (from) snprintf(from_text, sizeof from_text, " from segment %" PRIu64, from);
  tks_log(TKS_LOG_INFO, "replaying the journal in %s%s: %" PRIu64 " bytes in %" PRIu64 " segments",
          cfg->journal.dir, from_text, pr.bytes_total, pr.segments);
  RP.d = d;
  RP.rc = (struct replay_ctx){.srv = srv, .start_ns = mono_ns()};
  RP.rc.next_log_ns = RP.rc.start_ns + REPLAY_LOG_NS;
  RP.active = true;
  replay_progress(p);
  return 0;
}

static void replay_end(void) {
  tks_journal_reader_close(RP.r);
  RP.r = NULL;
  RP.d = NULL;
  RP.active = false;
}

/* The replay is done: its figures logged, the journal opened for appending
 * and its writer started.  Returns 0 or -errno (logged; d freed). */
static int replay_done(struct tks_server *srv, struct tks_durability *d) {
  const struct tks_config *cfg = &srv->cfg;
  struct replay_ctx *rc = &RP.rc;
  char err[600];
  d->replay = *tks_journal_reader_result(RP.r);
  d->replay_seconds = (double)(mono_ns() - rc->start_ns) / 1e9;
  d->replayed_ticks = rc->ticks;
  d->replay_rejected = rc->rejected;
  d->replay_frames = rc->frames;
  /* Seals begun and committed in archive.dir whose commit record did not
   * reach the disk: their ticks are in the archive, so they leave memory
   * now (nothing after the missing record was journaled either). */
  uint64_t ended[MAX_PENDING_SEALS];
  unsigned nended = rc->npending;
  for (unsigned i = 0; i < rc->npending; i++) {
    ended[i] = rc->pending[i].seal;
    if (rc->pending[i].seal <= srv->seal_committed)
      replay_trim(rc, rc->pending[i].seal, rc->pending[i].cut);
  }
  rc->npending = 0;
  d->replay_records = rc->records;
  d->replay_evicted = rc->evicted;
  d->replay_sealed = rc->sealed;
  if (rc->bad_records)
    tks_log(TKS_LOG_WARN, "replay: %" PRIu64 " journal records of an unknown kind were skipped",
            rc->bad_records);
  if (rc->lost_producers)
    tks_log(TKS_LOG_WARN,
            "replay: %" PRIu64 " producer positions skipped: over %u producers are known",
            rc->lost_producers, TKS_MAX_PRODUCERS);
  if (P.n)
    tks_log(TKS_LOG_INFO, "replay: %" PRIu32 " named producers and their positions known", P.n);
  replay_end();
  if (d->replay.truncated_bytes)
    tks_log(TKS_LOG_WARN,
            "journal: cut a torn or corrupt tail of %" PRIu64 " bytes from %s at offset %" PRIu64
            " (kept in %s)",
            d->replay.truncated_bytes, d->replay.truncated_file, d->replay.truncated_at,
            d->replay.side_file);
  tks_log(TKS_LOG_INFO,
          "replay: %" PRIu64 " ticks from %" PRIu64 " frames in %" PRIu64
          " segments in %.2f s (%.0f ticks/s)%s",
          rc->ticks, rc->frames, d->replay.segments, d->replay_seconds,
          d->replay_seconds > 0 ? (double)rc->ticks / d->replay_seconds : 0.0,
          rc->rejected ? " (some could not be stored: see journal.replay_rejected)" : "");
  if (rc->rejected)
    tks_log(TKS_LOG_WARN,
            "replay: %" PRIu64
            " ticks in the journal were not stored (store full or refused by the current config)",
            rc->rejected);

  d->j = tks_journal_open(cfg->journal.dir, cfg->journal.segment_bytes, cfg->journal.max_bytes, err,
                          sizeof err);
  if (!d->j) {
    tks_log(TKS_LOG_ERROR, "cannot open the journal: %s", err);
    free(d);
    return -EIO;
  }
  tks_journal_info(d->j, &d->info);
  publish_written(d->j);
  d->last_fsync_mono_ns = mono_ns();
  pthread_mutex_init(&d->mu, NULL);
  pthread_cond_init(&d->cv, NULL);
  pthread_cond_init(&d->rotated_cv, NULL);
  uv_async_init(srv->loop, &d->wake, on_wake);
  d->wake.data = d;
  if (pthread_create(&d->thread, NULL, writer_main, d) != 0) {
    tks_log(TKS_LOG_ERROR, "cannot start the journal writer thread");
    tks_journal_close(d->j);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    pthread_cond_destroy(&d->rotated_cv);
    uv_close((uv_handle_t *)&d->wake, on_wake_closed); /* frees d once libuv is done with it */
    return -EAGAIN;
  }
  D = d;
  /* The seals the replay ended get their record now, before any new tick:
   * a later replay must end them here too, not after ticks to come. */
  for (unsigned i = 0; i < nended; i++) {
    if (ended[i] <= srv->seal_committed)
      tks_durability_seal_commit(srv, ended[i]);
    else
      tks_durability_seal_abort(srv, ended[i]);
  }
  tks_log(TKS_LOG_INFO, "journal in %s (fsync %s)", cfg->journal.dir,
          tks_fsync_name(cfg->journal.fsync));
  return 0;
}

int tks_durability_replay_slice(struct tks_server *srv, uint64_t deadline_ns,
                                struct tks_load_progress *p) {
  if (!RP.active) return 0; /* the journal is off */
  struct replay_ctx *rc = &RP.rc;
  const void *payload;
  size_t len;
  int r;
  uint64_t since = 0;
  while ((r = tks_journal_reader_next(RP.r, &payload, &len)) == 1) {
    replay_frame(rc, payload, len);
    /* The clock is read every CLOCK_EVERY bytes, not every frame: a frame
     * can be one small tick. */
    since += len + FRAME_COST;
    if (since < CLOCK_EVERY) continue;
    since = 0;
    uint64_t now = mono_ns();
    if (now >= rc->next_log_ns) {
      struct tks_load_progress lp;
      replay_progress(&lp);
      tks_log(TKS_LOG_INFO,
              "replay: %" PRIu64 " ticks so far, %" PRIu64 " of %" PRIu64
              " bytes (%.0f%%) (%.1f s)",
              rc->ticks, lp.bytes_done, lp.bytes_total,
              lp.bytes_total ? 100.0 * (double)lp.bytes_done / (double)lp.bytes_total : 100.0,
              (double)(now - rc->start_ns) / 1e9);
      rc->next_log_ns = now + REPLAY_LOG_NS;
    }
    if (now >= deadline_ns) break;
  }
  replay_progress(p);
  if (r == 1) return 1;
  if (r < 0) {
    const char *why = tks_journal_reader_error(RP.r);
    tks_log(TKS_LOG_ERROR, "%s", why[0] ? why : strerror(-r));
    free(RP.d);
    replay_end();
    return r;
  }
  return replay_done(srv, RP.d);
}

void tks_durability_stop(struct tks_server *srv) {
  ckpt_abandon();
  if (RP.active) {
    /* Stopped while replaying: nothing was written, nothing is. */
    tks_log(TKS_LOG_INFO,
            "journal: replay abandoned after %" PRIu64 " ticks; the journal is as it was",
            RP.rc.ticks);
    free(RP.d);
    replay_end();
    return;
  }
  struct tks_durability *d = D;
  if (!d) return;
  pthread_mutex_lock(&d->mu);
  d->stopping = true;
  pthread_cond_signal(&d->cv);
  pthread_mutex_unlock(&d->mu);
  pthread_join(d->thread, NULL);
  struct tks_journal_info info;
  tks_journal_info(d->j, &info);
  size_t left = tks_journal_pending(d->j) + d->queue.len;
  if (d->last_error || left)
    tks_log(TKS_LOG_ERROR, "journal: stopping with %zu bytes not written (%s): %" PRIu64
            " of %" PRIu64 " ticks accepted are durable",
            left, d->last_error ? strerror(-d->last_error) : "behind",
            d->synced_ticks, srv->ticks_accepted);
  else
    tks_log(TKS_LOG_INFO, "journal flushed and fsynced: %" PRIu64 " ticks accepted since start, %" PRIu64 " replayed",
            d->synced_ticks, d->replayed_ticks);
  answer_waiters(d, d->synced_ticks);
  tks_journal_close(d->j);
  pthread_mutex_destroy(&d->mu);
  pthread_cond_destroy(&d->cv);
  pthread_cond_destroy(&d->rotated_cv);
  D = NULL;
  uv_close((uv_handle_t *)&d->wake, on_wake_closed);
}

void tks_durability_reload(struct tks_server *srv) {
  struct tks_durability *d = D;
  if (!d) return;
  pthread_mutex_lock(&d->mu);
  d->fsync = srv->cfg.journal.fsync;
  d->fsync_interval_ns = srv->cfg.journal.fsync_interval_ns;
  pthread_cond_signal(&d->cv);
  pthread_mutex_unlock(&d->mu);
}

static const struct tks_stat ST_JOURNAL_ENABLED = TKS_STAT("journal.enabled", GAUGE, NONE,
                                                           "1 when the journal is on");
static const struct tks_stat ST_JOURNAL_DIR = TKS_STAT("journal.dir", GAUGE, NONE, NULL);
static const struct tks_stat ST_JOURNAL_STATE = TKS_STAT_NAMED(
    "journal.state", GAUGE, NONE, "Journal state", "journal_state", "state");
static const struct tks_stat ST_JOURNAL_LAST_ERROR = TKS_STAT("journal.last_error", GAUGE, NONE,
                                                              NULL);
static const struct tks_stat ST_JOURNAL_BYTES = TKS_STAT("journal.bytes", GAUGE, BYTES,
                                                         "Bytes of journal segments");
static const struct tks_stat ST_JOURNAL_SEGMENTS = TKS_STAT("journal.segments", GAUGE, NONE,
                                                            "Journal segment files");
static const struct tks_stat ST_JOURNAL_FRAMES_WRITTEN = TKS_STAT(
    "journal.frames_written", COUNTER, NONE, "Journal frames written since start");
static const struct tks_stat ST_JOURNAL_FSYNCS = TKS_STAT("journal.fsyncs", COUNTER, NONE,
                                                          "Journal fsyncs since start");
static const struct tks_stat ST_JOURNAL_WRITE_ERRORS = TKS_STAT("journal.write_errors", COUNTER,
                                                                NONE, "Failed journal writes");
static const struct tks_stat ST_JOURNAL_QUEUED_BYTES = TKS_STAT(
    "journal.queued_bytes", GAUGE, BYTES, "Journal bytes waiting for the writer thread");
static const struct tks_stat ST_JOURNAL_LAST_FSYNC_AGE_SECONDS = TKS_STAT(
    "journal.last_fsync_age_seconds", GAUGE, SECONDS, "Seconds since the last journal fsync");
static const struct tks_stat ST_JOURNAL_WRITTEN_TICKS = TKS_STAT(
    "journal.written_ticks", COUNTER, TICKS, "Ticks in the journal files (replayed ones included)");
static const struct tks_stat ST_JOURNAL_REPLAYED_TICKS = TKS_STAT(
    "journal.replayed_ticks", COUNTER, TICKS, "Ticks rebuilt from the journal at start");
static const struct tks_stat ST_JOURNAL_REPLAY_REJECTED = TKS_STAT(
    "journal.replay_rejected", COUNTER, NONE, "Journal ticks not stored at replay");
static const struct tks_stat ST_JOURNAL_RECORDS = TKS_STAT(
    "journal.records", COUNTER, NONE,
    "Store operations journaled since start (evictions, archive seals), for replay to repeat");
static const struct tks_stat ST_JOURNAL_REPLAY_RECORDS = TKS_STAT(
    "journal.replay_records", COUNTER, NONE, "Store operations repeated at replay");
static const struct tks_stat ST_JOURNAL_REPLAY_EVICTED_TICKS = TKS_STAT(
    "journal.replay_evicted_ticks", COUNTER, TICKS,
    "Ticks journaled evictions took out of memory again at replay");
static const struct tks_stat ST_JOURNAL_REPLAY_SEALED_TICKS = TKS_STAT(
    "journal.replay_sealed_ticks", COUNTER, TICKS,
    "Ticks committed archive seals took out of memory again at replay");
static const struct tks_stat ST_JOURNAL_REPLAY_SECONDS = TKS_STAT(
    "journal.replay_seconds", GAUGE, SECONDS, "Seconds the replay took");
static const struct tks_stat ST_JOURNAL_TRUNCATED_BYTES = TKS_STAT(
    "journal.truncated_bytes", GAUGE, BYTES, "Bytes of a torn or corrupt tail cut at start");

void tks_durability_stats(struct tks_server *srv, struct tks_stats *st) {
  struct tks_durability *d = D;
  tks_stat_u64(st, &ST_JOURNAL_ENABLED, d != NULL);
  if (!d) return;
  pthread_mutex_lock(&d->mu);
  struct tks_journal_info info = d->info;
  uint64_t written = d->written_ticks, synced = d->synced_ticks, last = d->last_fsync_mono_ns;
  int err = d->last_error;
  size_t queued = d->queue.len;
  pthread_mutex_unlock(&d->mu);
  tks_stat_str(st, &ST_JOURNAL_DIR, srv->cfg.journal.dir);
  tks_stat_str(st, &ST_JOURNAL_STATE, err ? "failing" : "ok");
  tks_stat_str(st, &ST_JOURNAL_LAST_ERROR, err ? strerror(-err) : "none");
  tks_stat_u64(st, &ST_JOURNAL_BYTES, info.bytes);
  tks_stat_u64(st, &ST_JOURNAL_SEGMENTS, info.segments);
  tks_stat_u64(st, &ST_JOURNAL_FRAMES_WRITTEN, info.frames_written);
  tks_stat_u64(st, &ST_JOURNAL_FSYNCS, info.fsyncs);
  tks_stat_u64(st, &ST_JOURNAL_WRITE_ERRORS, info.write_errors);
  tks_stat_u64(st, &ST_JOURNAL_QUEUED_BYTES, queued);
  tks_stat_f64(st, &ST_JOURNAL_LAST_FSYNC_AGE_SECONDS, (double)(mono_ns() - last) / 1e9);
  tks_stat_u64(st, &ST_JOURNAL_WRITTEN_TICKS, written + d->replayed_ticks);
  tks_stat_u64(st, &ST_JOURNAL_REPLAYED_TICKS, d->replayed_ticks);
  tks_stat_u64(st, &ST_JOURNAL_REPLAY_REJECTED, d->replay_rejected);
  tks_stat_u64(st, &ST_JOURNAL_RECORDS, d->records);
  tks_stat_u64(st, &ST_JOURNAL_REPLAY_RECORDS, d->replay_records);
  tks_stat_u64(st, &ST_JOURNAL_REPLAY_EVICTED_TICKS, d->replay_evicted);
  tks_stat_u64(st, &ST_JOURNAL_REPLAY_SEALED_TICKS, d->replay_sealed);
  tks_stat_f64(st, &ST_JOURNAL_REPLAY_SECONDS, d->replay_seconds);
  tks_stat_u64(st, &ST_JOURNAL_TRUNCATED_BYTES, d->replay.truncated_bytes);
  (void)synced;
}

uint64_t tks_durability_durable(struct tks_server *srv) {
  struct tks_durability *d = D;
  if (!d) return 0;
  pthread_mutex_lock(&d->mu);
  uint64_t n = d->synced_ticks + d->replayed_ticks + d->load.ticks;
  pthread_mutex_unlock(&d->mu);
  return n;
}

uint64_t tks_durability_synced(struct tks_server *srv) {
  (void)srv;
  struct tks_durability *d = D;
  if (!d) return 0;
  pthread_mutex_lock(&d->mu);
  uint64_t n = d->synced_ticks;
  pthread_mutex_unlock(&d->mu);
  return n;
}

void tks_durability_on_synced(struct tks_server *srv,
                              void (*fn)(struct tks_server *srv, uint64_t synced)) {
  (void)srv;
  synced_fn = fn;
}

/* ---- named producers ------------------------------------------------- */

static uint32_t producer_hash(const char *name, size_t len) { return tks_fnv1a(name, len); }

struct tks_producer *tks_durability_producer(struct tks_server *srv, const char *name, size_t len,
                                             bool add) {
  (void)srv;
  if (len == 0 || len > TKS_PRODUCER_NAME_MAX) return NULL;
  uint32_t i = producer_hash(name, len) & (PRODUCER_SLOTS - 1);
  for (; P.slot[i]; i = (i + 1) & (PRODUCER_SLOTS - 1)) {
    struct tks_producer *p = &P.list[P.slot[i] - 1];
    if (p->len == len && memcmp(p->name, name, len) == 0) return p;
  }
  if (!add || P.n >= TKS_MAX_PRODUCERS) return NULL;
  if (!P.list && !(P.list = calloc(TKS_MAX_PRODUCERS, sizeof *P.list))) return NULL;
  struct tks_producer *p = &P.list[P.n];
  memset(p, 0, sizeof *p);
  memcpy(p->name, name, len);
  p->name[len] = '\0';
  p->len = (uint8_t)len;
  P.slot[i] = ++P.n;
  return p;
}

uint32_t tks_durability_producer_count(struct tks_server *srv) {
  (void)srv;
  return P.n;
}
