/*
 * The loading phase: what rebuilds the store at start, run on the event
 * loop so that the daemon answers its control socket meanwhile (ping and
 * stats say "loading", as Redis answers LOADING).  A uv_idle handle runs
 * the current step for about TKS_LOAD_SLICE_NS a loop turn; the loop then
 * polls its sockets without waiting and comes back.  The steps run in
 * order, each resumable (begin, then slices until it says done): the
 * newest checkpoint's load, then the journal replay after the segments it
 * covers (both durability.c's).  Nothing here writes to disk but the
 * renaming of a bad checkpoint, and only the loop thread touches the store.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "daemon.h"

struct step {
  const char *phase; /* loading.phase while it runs */
  int (*begin)(struct tks_server *srv, struct tks_load_progress *p); /* 0 or -errno (logged) */
  /* 1: more to do (the slice's time is up), 0: done, -errno: failed (logged). */
  int (*slice)(struct tks_server *srv, uint64_t deadline_ns, struct tks_load_progress *p);
  /* NULL, or false when begin found nothing to do (the step is skipped,
   * so that no status names a phase that loads nothing). */
  bool (*pending)(void);
};

static int journal_begin(struct tks_server *srv, struct tks_load_progress *p);

static const struct step steps[] = {
    /* The newest good checkpoint, then the journal after what it covers. */
    {"checkpoint", tks_durability_checkpoint_begin, tks_durability_checkpoint_slice,
     tks_durability_checkpoint_pending},
    {"journal", journal_begin, tks_durability_replay_slice, NULL},
};
#define NSTEPS (sizeof steps / sizeof steps[0])

/* One server a process. */
static struct {
  bool running;
  uv_idle_t idle;
  tks_load_done_fn done;
  unsigned step;         /* the step running (NSTEPS: all done) */
  uint64_t start_ns;     /* tks_mono_ns at tks_load_start */
  uint64_t journal_from; /* the first journal segment to replay, 0: all */
  struct tks_load_progress p;
  uint64_t slices;
} L;

static int journal_begin(struct tks_server *srv, struct tks_load_progress *p) {
  /* store.huge_pages auto: none for the replay, which fills the store a
   * tick at a time as ingest does; on this VM their zeroing took 40% of a
   * 10 M-tick replay's time, and the replay ran 20-60% faster without. */
  if (srv->cfg.store.huge_pages == TKS_HUGE_PAGES_AUTO)
    tks_slab_set_huge_pages(srv->slab, TKS_HUGE_PAGES_OFF);
  return tks_durability_replay_begin(srv, L.journal_from, p);
}

/* Begins step i (its progress zeroed, its phase named). */
static int begin_step(struct tks_server *srv, unsigned i) {
  for (;; i++) {
    L.step = i;
    L.p = (struct tks_load_progress){.phase = i < NSTEPS ? steps[i].phase : "done"};
    if (i >= NSTEPS) return 0;
    int r = steps[i].begin(srv, &L.p);
    if (r || !steps[i].pending || steps[i].pending()) return r;
  }
}

static void finish(struct tks_server *srv, int status) {
  L.running = false;
  uv_idle_stop(&L.idle);
  uv_close((uv_handle_t *)&L.idle, NULL);
  L.p.seconds = (double)(tks_mono_ns() - L.start_ns) / 1e9;
  /* store.huge_pages auto: none for ingest either (they cost it a quarter
   * to a third more CPU a tick): bench/README.md. */
  if (srv->cfg.store.huge_pages == TKS_HUGE_PAGES_AUTO)
    tks_slab_set_huge_pages(srv->slab, TKS_HUGE_PAGES_OFF);
  if (status == 0) {
    srv->loading = false;
    tks_log(TKS_LOG_INFO, "loaded in %.2f s (%" PRIu64 " slices of the event loop)", L.p.seconds,
            L.slices);
  }
  L.done(srv, status);
}

static void on_idle(uv_idle_t *h) {
  struct tks_server *srv = h->data;
  uint64_t deadline = tks_mono_ns() + TKS_LOAD_SLICE_NS;
  int r = 0;
  L.slices++;
  while (L.step < NSTEPS) {
    r = steps[L.step].slice(srv, deadline, &L.p);
    if (r != 0) break;
    if ((r = begin_step(srv, L.step + 1)) != 0) break;
    /* All done: finish now, so that no status shows a phase "done" while
     * the state still says loading. */
    if (L.step < NSTEPS && tks_mono_ns() >= deadline) {
      r = 1; /* the next step in the next slice */
      break;
    }
  }
  if (r == 1) return;
  finish(srv, r);
}

int tks_load_start(struct tks_server *srv, tks_load_done_fn done) {
  L = (__typeof__(L)){.done = done, .start_ns = tks_mono_ns()};
  srv->loading = true;
  /* store.huge_pages auto: huge pages for the checkpoint's bulk fill (it
   * loads about twice as fast); journal_begin turns them off. */
  if (srv->cfg.store.huge_pages == TKS_HUGE_PAGES_AUTO)
    tks_slab_set_huge_pages(srv->slab, TKS_HUGE_PAGES_ON);
  int r = begin_step(srv, 0);
  if (r) return r;
  uv_idle_init(srv->loop, &L.idle);
  L.idle.data = srv;
  L.running = true;
  uv_idle_start(&L.idle, on_idle);
  return 0;
}

void tks_load_stop(struct tks_server *srv) {
  (void)srv;
  if (!L.running) return;
  /* The step's own state goes with its module's stop (a replay in progress
   * with tks_durability_stop): nothing was written, nothing is. */
  L.running = false;
  uv_idle_stop(&L.idle);
  uv_close((uv_handle_t *)&L.idle, NULL);
  tks_log(TKS_LOG_INFO, "loading stopped after %.2f s (%s: %" PRIu64 " of %" PRIu64 " bytes)",
          (double)(tks_mono_ns() - L.start_ns) / 1e9, L.p.phase, L.p.bytes_done, L.p.bytes_total);
}

void tks_load_progress(struct tks_server *srv, struct tks_load_progress *out) {
  *out = L.p;
  if (srv->loading) out->seconds = (double)(tks_mono_ns() - L.start_ns) / 1e9;
}

/* Whole percents, rounded down: 100 only once every byte is read. */
static unsigned percent(const struct tks_load_progress *p) {
  if (!p->bytes_total || p->bytes_done >= p->bytes_total) return p->bytes_total ? 100 : 0;
  if (p->bytes_done <= UINT64_MAX / 100) return (unsigned)(p->bytes_done * 100 / p->bytes_total);
  return (unsigned)(p->bytes_done / (p->bytes_total / 100 + 1));
}

void tks_load_describe(struct tks_server *srv, char *out, size_t n) {
  struct tks_load_progress p;
  tks_load_progress(srv, &p);
  snprintf(out, n, "%" PRIu64 " of %" PRIu64 " bytes (%u%%), %s, %" PRIu64 " ticks", p.bytes_done,
           p.bytes_total, percent(&p), p.phase ? p.phase : "starting", p.ticks);
}

static const struct tks_stat ST_LOADING_PHASE = TKS_STAT_NAMED(
    "loading.phase", GAUGE, NONE, "What the start is loading (checkpoint, journal)",
    "loading_phase", "phase");
static const struct tks_stat ST_LOADING_TICKS = TKS_STAT("loading.ticks", GAUGE, TICKS,
                                                         "Ticks stored by the phase so far");
static const struct tks_stat ST_LOADING_REJECTED = TKS_STAT(
    "loading.rejected", GAUGE, NONE, "Ticks the phase read but could not store");
static const struct tks_stat ST_LOADING_BYTES_DONE = TKS_STAT_NAMED(
    "loading.bytes_done", GAUGE, BYTES, "Bytes of the phase's files read so far",
    "loading_read_bytes", NULL);
static const struct tks_stat ST_LOADING_BYTES_TOTAL = TKS_STAT_NAMED(
    "loading.bytes_total", GAUGE, BYTES, "Bytes of the phase's files in all", "loading_file_bytes",
    NULL);
static const struct tks_stat ST_LOADING_PERCENT = TKS_STAT(
    "loading.percent", GAUGE, NONE, "bytes_done of bytes_total, in whole percents");
static const struct tks_stat ST_LOADING_SEGMENT = TKS_STAT(
    "loading.segment", GAUGE, NONE, "The journal segment being read (0 between segments)");
static const struct tks_stat ST_LOADING_SEGMENTS_DONE = TKS_STAT(
    "loading.segments_done", GAUGE, NONE, "Journal segments read to their end");
static const struct tks_stat ST_LOADING_SEGMENTS = TKS_STAT("loading.segments", GAUGE, NONE,
                                                            "Journal segments to read");
static const struct tks_stat ST_LOADING_SECONDS = TKS_STAT("loading.seconds", GAUGE, SECONDS,
                                                           "Seconds since loading began");

void tks_load_stats(struct tks_server *srv, struct tks_stats *st) {
  struct tks_load_progress p;
  tks_load_progress(srv, &p);
  tks_stat_str(st, &ST_LOADING_PHASE, p.phase ? p.phase : "starting");
  tks_stat_u64(st, &ST_LOADING_TICKS, p.ticks);
  tks_stat_u64(st, &ST_LOADING_REJECTED, p.rejected);
  tks_stat_u64(st, &ST_LOADING_BYTES_DONE, p.bytes_done);
  tks_stat_u64(st, &ST_LOADING_BYTES_TOTAL, p.bytes_total);
  tks_stat_u64(st, &ST_LOADING_PERCENT, percent(&p));
  tks_stat_u64(st, &ST_LOADING_SEGMENT, p.segment);
  tks_stat_u64(st, &ST_LOADING_SEGMENTS_DONE, p.segments_done);
  tks_stat_u64(st, &ST_LOADING_SEGMENTS, p.segments);
  tks_stat_f64(st, &ST_LOADING_SECONDS, p.seconds);
}
