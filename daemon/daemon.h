/*
 * tickslabd's modules, from the top down.  A file calls only files below
 * it; a module reaches one above it only through a callback it was handed
 * (tks_server_on_hold, tks_server_add_stats, tks_server_set_durable,
 * tks_durability_on_synced),
 * never by name.  tests/layering.py checks this on the built objects.
 *
 *   main.c         options, wiring, signals, the start and stop order
 *   control.c      the control socket: ping, stats, sync, then query.c;
 *                  while loading only ping and stats
 *   lifecycle.c    SIGHUP reload, watchdog, STATUS= (loading progress and
 *                  EXTEND_TIMEOUT_USEC= while loading), the sweep of idle
 *                  and slow clients (ingest.c's, subscribe.c's, control.c's)
 *   metrics.c      GET /metrics over HTTP; the Prometheus text control.c
 *                  answers `stats prometheus` with
 *   query.c        last, range, symbols, advice
 *   subscribe.c    the subscription port: a replay of the stored ticks
 *                  (memory and archive), then the live ones ingest hands
 *                  over through the server's tap; bounded queues
 *   ingest.c       the TCP listener: decode, admit, hand bytes to the journal;
 *                  producer acknowledgements (hello, acks, rejects)
 *   kafka_source.c kafka.source: ticks consumed from Kafka, admitted as ingest
 *                  admits them, each partition's offset journaled with them
 *   kafka_sink.c   kafka.sink: the journal's TCP ticks produced to Kafka
 *   (kafka_off.c   both, in a build without librdkafka: refused if configured)
 *   sender.c       the send thread: subscribe.c's socket writes, off the loop
 *   intake.c       one tick from outside (ingest's, the source's) into the
 *                  store: refusals, counters, subscribers, journal
 *   load.c         the loading phase at start: its steps (the journal
 *                  replay) in slices of the event loop, progress
 *   archiver.c     the day archive: seals past days (and a cut) out of
 *                  memory from a forked child, commits, retention; the
 *                  reader queries merge with the store
 *   checkpoint.c   checkpoints: a forked child writes the store, the journal
 *                  is cut at the fork, covered segments are deleted
 *   durability.c   the journal: writer thread, sync, checkpoint load and
 *                  replay through admit; named producers' positions
 *   admit.c        one decoded tick into the store, when_full applied
 *   limits.c       max_memory and the when_full policy, eviction, retention
 *   server.c       the one owner of shared state: store and tables,
 *   notify.c       counters, holds, stats composition, STATUS summary;
 *                  sd_notify
 *   lib/           store, slab, symtab, codec, tick, journal, stats, ...
 *
 * Each module's own state is file-static (one server a process); what
 * several modules share, the store and the counters, is the server's.
 */
#ifndef TKS_DAEMON_H
#define TKS_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <uv.h>

#include "config.h"
#include "decode.h"
#include "hello.h"
#include "render.h"
#include "slab.h"
#include "stats.h"
#include "store.h"
#include "symtab.h"
#include "tick.h"
#include "usage.h"

/* ==== server.c: the one owner of shared state ========================== */

#define TKS_RATE_WINDOW 11       /* seconds of per-second accepted counts kept */
#define TKS_MAX_FIELD_NAMES 4096 /* distinct field names of dynamic ticks */
#define TKS_MAX_STATS_SECTIONS 12

/* Reasons ingest is held (not reading clients), bits of tks_server.held. */
#define TKS_HOLD_LIMITS 1u  /* limits.when_full: backpressure */
#define TKS_HOLD_JOURNAL 2u /* journal writes failing or behind (on_error: backpressure) */
#define TKS_HOLD_SINK 4u    /* kafka.sink.max_queue_bytes wait for Kafka (on_full: backpressure) */

struct tks_server;
typedef void (*tks_hold_fn)(struct tks_server *srv, bool held);
typedef void (*tks_stats_fn)(struct tks_server *srv, struct tks_stats *st);
typedef uint64_t (*tks_count_fn)(struct tks_server *srv);
/* A run of ticks an eviction is about to free (lib/store.h's hook). */
/* A tick ingest just stored, as tks_admit was given it (subscribe.c's);
 * wire: its bytes as the producer sent them when they say exactly what the
 * store holds (res->verbatim, lib/decode.h), else NULL.  Wire bytes stay
 * valid until the batch ends (tks_intake_end, the tap's end). */
typedef void (*tks_tap_fn)(struct tks_server *srv, enum tks_decode_status st, const void *record,
                           const struct tks_dyn_tick *dyn, const void *wire, size_t wire_len);
typedef void (*tks_tap_end_fn)(struct tks_server *srv);
typedef void (*tks_evict_fn)(struct tks_server *srv, enum tks_store_rep rep, uint32_t symbol,
                             const void *entries, uint32_t count);
#define TKS_MAX_EVICT_LISTENERS 2
/* The store is full under evict_oldest and `slice` bytes of the oldest
 * blocks are to go: the archive begins sealing the oldest `bytes`, so that
 * those evicted are in it first (archiver.c).  True: wait (hold ingest)
 * for the seal running, the oldest blocks are not below its cut yet. */
typedef bool (*tks_pressure_fn)(struct tks_server *srv, uint64_t bytes, uint64_t slice);
/* limits.retention wants the ticks before cutoff out of memory: true when
 * the archive takes them (seals, then trims), false for a plain eviction. */
typedef bool (*tks_retain_fn)(struct tks_server *srv, int64_t cutoff);

struct tks_server {
  uv_loop_t *loop;
  struct tks_config cfg;
  uint64_t start_mono_ns;
  bool stopping;  /* a stop has begun */
  bool loading;   /* the loading phase (load.c) runs: only ping and stats are answered */
  bool ingesting; /* the ingest listener is served (not while loading, nor in the stop) */

  /* The store and its tables (built by tks_server_init). */
  struct tks_slab *slab;
  struct tks_symtab *symbols;
  struct tks_symtab *strings;
  struct tks_symtab *names; /* field names of dynamic objects */
  struct tks_store *store;
  struct tks_usage usage; /* undeclared fields seen */
  struct tks_decoder decoder;
  struct tks_tick_sink sink; /* store + usage + mode, for tks_tick_store */

  /* The day archive's seals (archiver.c).  seal_cut: while a seal runs,
   * the ts below which ticks go to the archive (late ticks under it are
   * refused, reason sealing); INT64_MIN otherwise.  seal_committed: the
   * newest seal whose parts are committed (archive.dir/SEALED), read
   * before loading: replay trims what committed seals took. */
  int64_t seal_cut;
  uint64_t seal_committed;
  bool evict_quiet; /* evictions are not told to the listeners */

  /* The bound ingest address, for stats. */
  char listen_addr[320]; /* "127.0.0.1:40123", "[::1]:7070" */
  uint16_t port;
  char metrics_addr[320]; /* metrics.c's bound address, "" while metrics.listen is off */
  char subscribe_addr[320]; /* subscribe.c's, "" while subscribe.listen is off */

  /* Counters. */
  uint64_t ticks_accepted;
  uint64_t rejected[TKS_REASON__COUNT];
  uint64_t bytes_received;
  uint64_t conns_current, conns_total, conns_closed_on_error, conns_refused;
  uint64_t conns_refused_per_ip; /* over ingest.max_connections_per_ip */
  uint64_t conns_closed_for_new; /* slow or idle, closed at max_connections for a new one */
  uint64_t conns_closed_timeout; /* a message unfinished for ingest.message_timeout */
  uint64_t conns_closed_slow;    /* a message unfinished, under ingest.min_rate */
  uint64_t http_on_ingest;       /* connections that began with an HTTP request (closed) */

  /* The Kafka sink (kafka_sink.c): sink_refusing, while its queue is full
   * under on_full: reject, makes ingest refuse ticks (sink_full);
   * journal_keep_from, the oldest journal segment it still reads, is one
   * the checkpoints' prune keeps (UINT64_MAX: no sink). */
  bool sink_refusing;
  uint64_t journal_keep_from;

  /* Buffers outside the store, as tks_buf_bytes counts them (memory.*). */
  uint64_t read_buffer_bytes;  /* ingest.c: the connections' read buffers */
  uint64_t query_buffer_bytes; /* control.c: requests read, answers not yet written */

  /* Holds: read with tks_server_held, changed with tks_server_hold. */
  unsigned held;
  uint64_t holds;

  /* server.c's own. */
  uint64_t rate_ring[TKS_RATE_WINDOW]; /* ticks_accepted at each of the last seconds */
  unsigned rate_pos;
  uv_timer_t rate_timer;
  bool rate_timer_open;
  struct tks_ratelimit log_limit; /* tks_server_log_limited's: 10 lines a second */
  tks_hold_fn on_hold;
  tks_count_fn durable;
  tks_count_fn journal_buffers; /* memory.journal_buffer_bytes */
  tks_count_fn subscriber_buffers; /* memory.subscriber_buffer_bytes */
  /* Set while subscribers follow the live ticks: ingest hands it each
   * tick it stored (one predictable branch a tick when NULL). */
  tks_tap_fn tap;
  tks_tap_end_fn tap_end; /* with tap: a batch of ticks ended */
  /* subscribe.c's: while every live subscriber takes every tick from
   * `from` on, the ticks of a batch sent as their producer's bytes
   * (wire, the tap's) one after another make one run, at p: a tick that
   * follows joins it here, with no call (tks_intake_stored); the tap
   * hands the run to each subscriber when a tick does not, tap_end when
   * the batch ends.  len 0: no run. */
  struct tks_wire_run {
    const char *p;
    size_t len, max; /* max: a run this long is handed on at once */
    uint64_t ticks;
    int64_t from;
    uint32_t ts_off; /* the ts field's offset in a record */
  } wire;
  tks_evict_fn on_evict[TKS_MAX_EVICT_LISTENERS];
  unsigned nevict;
  tks_pressure_fn on_pressure;
  tks_retain_fn on_retain;
  tks_stats_fn sections[TKS_MAX_STATS_SECTIONS];
  unsigned nsections;
};

/* What systemd's STATUS= line says. */
struct tks_server_summary {
  uint64_t rate_1s; /* ticks accepted in the last whole second */
  uint64_t ticks_stored;
  uint64_t memory_bytes; /* memory.total_bytes */
  uint64_t connections;
};

/* Builds the store and its tables from srv->cfg (srv zeroed, cfg loaded).
 * Returns 0 or -ENOMEM; tks_server_finish undoes it either way. */
int tks_server_init(struct tks_server *srv, uv_loop_t *loop);
void tks_server_finish(struct tks_server *srv);
/* The once-a-second rate sampling; stop closes the timer. */
void tks_server_start(struct tks_server *srv);
void tks_server_stop(struct tks_server *srv);

/* Wiring (main.c): who hears about holds, who counts durable ticks, and
 * the stats sections that follow the server's own, in order. */
void tks_server_on_hold(struct tks_server *srv, tks_hold_fn fn);
void tks_server_set_durable(struct tks_server *srv, tks_count_fn fn);
/* Who counts the journal's buffers (memory.journal_buffer_bytes). */
void tks_server_set_journal_buffers(struct tks_server *srv, tks_count_fn fn);
/* Who counts the subscribers' buffers (memory.subscriber_buffer_bytes). */
void tks_server_set_subscriber_buffers(struct tks_server *srv, tks_count_fn fn);
/* Who hears of every eviction from the store (the journal records them). */
void tks_server_on_evict(struct tks_server *srv, tks_evict_fn fn);
/* Who seals ahead of evict_oldest and takes over limits.retention (the
 * archive), if anyone. */
void tks_server_on_pressure(struct tks_server *srv, tks_pressure_fn fn);
void tks_server_on_retain(struct tks_server *srv, tks_retain_fn fn);
void tks_server_add_stats(struct tks_server *srv, tks_stats_fn fn);

/* Holds or releases ingest for one reason (TKS_HOLD_*).  On the first hold
 * and on the last release it logs and calls the on_hold listener (ingest
 * stops reading clients / processes what it kept and reads on). */
void tks_server_hold(struct tks_server *srv, unsigned reason, bool on);
/* Drops a reason without telling the listener (the stop reads on anyway). */
void tks_server_unhold_quietly(struct tks_server *srv, unsigned reason);
static inline bool tks_server_held(const struct tks_server *srv, unsigned reason) {
  return (srv->held & reason) != 0;
}

/* The sizes of the three tables a tick interns into (symbols, strings,
 * field names), taken before tks_decode.  A decoded tick that is then not
 * stored is undone with tks_server_unintern: a rejected tick adds nothing
 * to any table (ids are sequential and only the loop thread interns). */
struct tks_intern_mark {
  uint32_t symbols, strings, names;
};
static inline struct tks_intern_mark tks_server_intern_mark(const struct tks_server *srv) {
  return (struct tks_intern_mark){tks_symtab_count(srv->symbols), tks_symtab_count(srv->strings),
                                  tks_symtab_count(srv->names)};
}
/* Removes every id added since m. */
void tks_server_unintern(struct tks_server *srv, struct tks_intern_mark m);

/* Throws away every tick and every id of the three tables, usage too: the
 * store as tks_server_init made it (after a checkpoint failed part way
 * through loading).  Returns 0 or -ENOMEM. */
int tks_server_reset_store(struct tks_server *srv);

/* The ingest listener is bound to addr (port), for stats. */
void tks_server_set_listen_addr(struct tks_server *srv, const char *addr, uint16_t port);
/* Ingest is served (accepting and reading), or not (loading, stopping). */
void tks_server_set_ingesting(struct tks_server *srv, bool on);

/* Logs a per-tick problem at warn level, at most 10 lines a second. */
void tks_server_log_limited(struct tks_server *srv, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Fills st with every figure ("stats"), or only the slab ones. */
void tks_server_stats(struct tks_server *srv, struct tks_stats *st, bool slabs_only);
/* The figures that hold while loading: state, version, pid, uptime, config
 * path, the bound ingest address (load.c's "loading.*" go with them). */
void tks_server_stats_loading(struct tks_server *srv, struct tks_stats *st);
void tks_server_summary(struct tks_server *srv, struct tks_server_summary *out);

/* A listening TCP socket on host:port (as_written: the key's text, key its
 * name, for the log), made as libuv's uv_tcp_bind + uv_listen make one
 * (SO_REUSEADDR; IPv6 sockets take IPv4 too) but not watched: the caller
 * uv_listen()s when it serves.  h is initialised (*open set: the caller
 * closes it) once the socket is made.  Fills addr ("127.0.0.1:40123",
 * "[::1]:7070") and *bound.  0, or a negative errno logged. */
int tks_tcp_listen(uv_loop_t *loop, const char *key, const char *as_written, const char *host,
                   uint16_t port, uv_tcp_t *h, bool *open, char *addr, size_t addrlen,
                   uint16_t *bound);
/* The peer as text ("1.2.3.4:5678", "[::1]:5678") and its address as 16
 * bytes (IPv4 as ::ffff:a.b.c.d; all zeros when unknown). */
void tks_tcp_peer(uv_tcp_t *tcp, char *out, size_t outlen, uint8_t ip[16]);

/* Intrusive list of open connections, so shutdown can reach them all. */
struct conn_link {
  struct conn_link *prev, *next;
};
static inline void conn_list_init(struct conn_link *head) { head->prev = head->next = head; }
static inline void conn_list_add(struct conn_link *head, struct conn_link *l) {
  l->next = head->next;
  l->prev = head;
  head->next->prev = l;
  head->next = l;
}
static inline void conn_list_del(struct conn_link *l) {
  l->prev->next = l->next;
  l->next->prev = l->prev;
  l->prev = l->next = l;
}

/* ==== notify.c ========================================================== */

/* sd_notify(3) without libsystemd.  Returns 0, or -errno; a missing
 * NOTIFY_SOCKET is not an error (returns 0, sends nothing). */
int tks_notify(const char *state);

/* ==== limits.c: memory limits (limits.max_memory, when_full, retention) == */

/* What the when_full policy makes of a tick the store has no room for:
 * RETRY (room was made: evicted; store the tick again), REJECT (count it
 * store_full) or PAUSE (backpressure: ingest is held (TKS_HOLD_LIMITS)
 * until a timer finds room; the tick's bytes stay unread). */
enum tks_full_action { TKS_FULL_RETRY, TKS_FULL_REJECT, TKS_FULL_PAUSE };
/* Applies max_memory to the slab and starts the retention timer.  Until
 * tks_limits_loaded (the load is done) the slab may take a quarter more
 * and retention waits: the replay repeats the journaled evictions. */
int tks_limits_start(struct tks_server *srv);
void tks_limits_loaded(struct tks_server *srv);
void tks_limits_stop(struct tks_server *srv);
enum tks_full_action tks_limits_on_full(struct tks_server *srv);
void tks_limits_stats(struct tks_server *srv, struct tks_stats *st);
/* Applies a reloaded limits section (SIGHUP). */
void tks_limits_reload(struct tks_server *srv);
/* An archive seal ended: ingest held for it (evict_oldest) reads on. */
void tks_limits_recheck(struct tks_server *srv);

/* ==== admit.c: a decoded tick into the store ============================ */

enum tks_admit {
  TKS_ADMIT_STORED,  /* in the store */
  TKS_ADMIT_FULL,    /* rejected: store_full (no room, by when_full) */
  TKS_ADMIT_PAUSE,   /* backpressure: ingest is held, keep the tick's bytes */
  TKS_ADMIT_TOO_BIG, /* rejected: bad_value (an object over a slab page) */
};
/* What tks_admit does once the first attempt failed with error (from
 * tks_tick_store): the when_full policy, and attempts after room was made. */
enum tks_admit tks_admit_failed(struct tks_server *srv, enum tks_decode_status st,
                                const void *record, const struct tks_dyn_tick *dyn, int error);
/* Stores one tick tks_decode gave (OK or DYNAMIC), applying the when_full
 * policy while the store has no room.  Ingest and replay both call it; the
 * first attempt is inline (the common case costs no call of its own). */
static inline enum tks_admit tks_admit(struct tks_server *srv, enum tks_decode_status st,
                                       const void *record, const struct tks_dyn_tick *dyn) {
  int r = tks_tick_store(&srv->sink, st, record, dyn);
  return r == 0 ? TKS_ADMIT_STORED : tks_admit_failed(srv, st, record, dyn, r);
}

/* ==== durability.c: the journal ======================================== */
/* A writer thread owns the journal files; the loop thread hands it, per
 * read, the bytes of the accepted ticks and their receive time, and learns
 * through a uv_async when they are written and fsynced.  Replay rebuilds
 * the store (through tks_admit) before the daemon is ready, in slices that
 * load.c runs on the loop. */

#define TKS_JOURNAL_BATCH_MAX (16u << 20) /* bytes of ticks in one journal frame */

/* Locks journal.dir (lib/dirlock.h; -EBUSY: another daemon has it, logged
 * with its pid), before the sockets are bound and anything in it is read;
 * held until the process ends.  0 with the journal off. */
int tks_durability_lock(struct tks_server *srv);
/* How far a loading step is (load.c shows it; a step fills what it knows). */
struct tks_load_progress {
  const char *phase;   /* "journal" */
  uint64_t ticks;      /* stored so far */
  uint64_t rejected;   /* read but not stored (journal.replay_rejected) */
  uint64_t bytes_done; /* of the files the step reads */
  uint64_t bytes_total;
  uint64_t segment;       /* the journal segment being read, 0 between them */
  uint64_t segments_done; /* journal segments read to their end */
  uint64_t segments;      /* journal segments to read */
  double seconds;         /* since loading began */
};

/* The checkpoint step, before the replay: begins loading the newest
 * checkpoint of journal.dir (none: nothing to do), and loads it chunk by
 * chunk until deadline_ns, as tks_durability_replay_slice does.  A bad one
 * resets the store and falls back to the previous one (or refuses, by
 * journal.on_corrupt, or when the schema cannot convert).  The replay's
 * begin then starts after the segments the loaded one covers. */
int tks_durability_checkpoint_begin(struct tks_server *srv, struct tks_load_progress *p);
int tks_durability_checkpoint_slice(struct tks_server *srv, uint64_t deadline_ns,
                                    struct tks_load_progress *p);
/* After begin: false when there is no checkpoint to load. */
bool tks_durability_checkpoint_pending(void);
/* Begins the replay at journal segment `from` (0: the oldest there is; a
 * step before it, such as a checkpoint load, gives the one after what it
 * covered) and fills p's totals.  Nothing to do with the journal off (a
 * warning is logged).  Returns 0, or -errno with the reason logged (a gap
 * in the segments). */
int tks_durability_replay_begin(struct tks_server *srv, uint64_t from, struct tks_load_progress *p);
/* Replays frames until deadline_ns (tks_mono_ns) has passed, then fills p.
 * Returns 1 while there is more, 0 once the journal is replayed and open
 * for appending (the writer thread runs), or -errno with the reason logged
 * (a journal refused by on_corrupt, the writer not started). */
int tks_durability_replay_slice(struct tks_server *srv, uint64_t deadline_ns,
                                struct tks_load_progress *p);
/* Flush, fsync, join; during the replay: abandons it, writing nothing. */
void tks_durability_stop(struct tks_server *srv);
/* The journal frame of the ticks of one read: begun with their receive
 * time (false when the journal is off), then ingest names each accepted
 * message with accept, in stream order, then calls submit.  Consecutive
 * messages (each starting where the one before ended) are copied as one
 * run, when the run ends, at a record (an eviction) or at submit: the
 * bytes must stay in place until submit.  A batch that reaches
 * TKS_JOURNAL_BATCH_MAX is submitted at once and a new one begun. */
bool tks_durability_batch(struct tks_server *srv, int64_t recv_ns);
void tks_durability_accept(struct tks_server *srv, const void *msg, size_t len);
void tks_durability_submit(struct tks_server *srv);

/* Named producers (ingest acks, README "Producer acknowledgements"): the
 * table of every producer a hello named, kept with the journal off too.
 * position: the messages of its stream handled (accepted or rejected);
 * with the journal on it is journaled in the frame of the ticks of each
 * read (a producer record, lib/oprec.h), replay rebuilds it, and every
 * rotation restates it at the start of the new segment.  During a read
 * (ingest.c's process) the position is tks_producer_position: accepted0
 * is srv->ticks_accepted when the read began, rejected the messages of
 * the read rejected so far; the journal reads it when it cuts a frame. */
#define TKS_MAX_PRODUCERS 1024
struct tks_producer {
  char name[TKS_PRODUCER_NAME_MAX + 1];
  uint8_t len;
  uint64_t position;  /* after the last read */
  uint64_t journaled; /* the position last journaled */
  uint64_t accepted0, rejected;
  void *conn; /* ingest.c's connection that has it, or NULL */
};
static inline uint64_t tks_producer_position(const struct tks_server *srv,
                                             const struct tks_producer *p) {
  return p->position + (srv->ticks_accepted - p->accepted0) + p->rejected;
}
/* The producer of that name, added (position 0) if add and it is not
 * known; NULL when it is not (or TKS_MAX_PRODUCERS are known). */
struct tks_producer *tks_durability_producer(struct tks_server *srv, const char *name, size_t len,
                                             bool add);
uint32_t tks_durability_producer_count(struct tks_server *srv);
/* After tks_durability_batch: this read's frames carry p's position. */
void tks_durability_batch_producer(struct tks_server *srv, struct tks_producer *p);
/* Ticks accepted since start that are fsynced (in srv->ticks_accepted's
 * count; 0 with the journal off), and who hears, on the loop, each time
 * that count grows. */
uint64_t tks_durability_synced(struct tks_server *srv);
void tks_durability_on_synced(struct tks_server *srv,
                              void (*fn)(struct tks_server *srv, uint64_t synced));
/* Bytes of memory the journal's buffers hold (the batch, the queue, the
 * writer's and the journal's own), for memory.journal_buffer_bytes. */
uint64_t tks_durability_buffer_bytes(struct tks_server *srv);
/* True while journal writes fail (journal.on_error says what ingest does). */
bool tks_durability_failing(const struct tks_server *srv);
/* `sync`: calls done(ctx, durable) once every tick accepted so far is
 * fsynced (at once if it already is).  Returns 0, or -ENOTSUP (journal off). */
int tks_durability_sync(struct tks_server *srv, void (*done)(void *ctx, uint64_t durable),
                        void *ctx);
/* Forgets the waiters with this ctx (a closing control connection). */
void tks_durability_cancel(struct tks_server *srv, void *ctx);
void tks_durability_stats(struct tks_server *srv, struct tks_stats *st);
/* Ticks fsynced to the journal: replayed at start plus accepted and fsynced since. */
uint64_t tks_durability_durable(struct tks_server *srv);
void tks_durability_reload(struct tks_server *srv); /* journal.fsync, interval, on_error */
/* The evict listener (tks_server_on_evict): journals which ticks an
 * eviction took (per series, a count) where it happened among the ticks,
 * so that a replay takes the same ones, whatever blocks it built. */
void tks_durability_on_evict(struct tks_server *srv, enum tks_store_rep rep, uint32_t symbol,
                             const void *entries, uint32_t count);
/* Archive seals (archiver.c), journaled where they happen: begin (the
 * ticks before cut are being sealed), commit (they are in the archive and
 * left memory: replay takes them out again when the seal is committed in
 * archive.dir), abort. */
void tks_durability_seal_begin(struct tks_server *srv, uint64_t seal, int64_t cut);
void tks_durability_seal_commit(struct tks_server *srv, uint64_t seal);
void tks_durability_seal_abort(struct tks_server *srv, uint64_t seal);

/* ==== intake.c: one tick from outside (ingest.c, kafka_source.c) ======= */

/* How a caller takes the ticks of one read (or one Kafka batch). */
struct tks_intake_ctx {
  bool refusing;          /* refuse every tick, for reason `refuse` */
  enum tks_reason refuse; /* journal_error (journal.on_error: reject) or sink_full */
  bool journal;           /* tks_durability_batch began a frame: journal the stored */
  const char *from;       /* who sent it, for the log ("127.0.0.1:5000", "kafka ticks/3") */
};
enum tks_intake {
  TKS_INTAKE_STORED,   /* in the store: counted, given to the subscribers, journaled */
  TKS_INTAKE_REJECTED, /* counted in srv->rejected and logged (rate-limited), *why says why */
  TKS_INTAKE_PAUSE,    /* ingest is held (backpressure): keep the message for the resume */
};
/* Once a read (or a Kafka batch), not a tick: true when journal writes
 * fail under journal.on_error: reject (refuse the ticks, journal_error);
 * under backpressure ingest is held at once, not only when the writer's
 * wake-up reaches the loop. */
bool tks_intake_journal_refusing(struct tks_server *srv);
/* The rest of tks_intake: a stored tick's bookkeeping, what an admission
 * that failed means, and the slow path (refusing, a seal running). */
static inline void tks_intake_stored(struct tks_server *srv, enum tks_decode_status st,
                                     const void *record, const struct tks_dyn_tick *dyn,
                                     const void *msg, size_t len, bool verbatim,
                                     const struct tks_intake_ctx *ic) {
  srv->ticks_accepted++;
  if (srv->tap) { /* subscribers follow */
    struct tks_wire_run *w = &srv->wire;
    int64_t ts;
    if (verbatim && w->len && w->p + w->len == (const char *)msg && w->len < w->max &&
        (memcpy(&ts, (const char *)record + w->ts_off, sizeof ts), ts >= w->from)) {
      w->len += len;
      w->ticks++;
    } else {
      srv->tap(srv, st, record, dyn, verbatim ? msg : NULL, len);
    }
  }
  /* A run of accepted ticks is copied at once, when it ends. */
  if (ic->journal) tks_durability_accept(srv, msg, len);
}
enum tks_intake tks_intake_failed(struct tks_server *srv, enum tks_admit a,
                                  struct tks_intern_mark mark, const struct tks_intake_ctx *ic,
                                  enum tks_reason *why);
enum tks_intake tks_intake_slow(struct tks_server *srv, enum tks_decode_status st,
                                const void *record, const struct tks_dyn_tick *dyn,
                                struct tks_intern_mark mark, const void *msg, size_t len,
                                bool verbatim, const struct tks_intake_ctx *ic,
                                enum tks_reason *why);
/* A tick tks_decode gave (OK or DYNAMIC; mark taken before it), whose
 * message is msg[0..len) (verbatim: the decoder's res->verbatim):
 * refused while ic->refusing, refused (sealing) below the cut of a seal
 * running, else admitted by the when_full policy.  A tick not stored
 * leaves nothing in the tables (mark undone).  msg stays valid until
 * tks_intake_end. */
static inline enum tks_intake tks_intake(struct tks_server *srv, enum tks_decode_status st,
                                         const void *record, const struct tks_dyn_tick *dyn,
                                         struct tks_intern_mark mark, const void *msg, size_t len,
                                         bool verbatim, const struct tks_intake_ctx *ic,
                                         enum tks_reason *why) {
  if (__builtin_expect(ic->refusing || srv->seal_cut != INT64_MIN, 0))
    return tks_intake_slow(srv, st, record, dyn, mark, msg, len, verbatim, ic, why);
  enum tks_admit a = tks_admit(srv, st, record, dyn);
  if (__builtin_expect(a != TKS_ADMIT_STORED, 0)) return tks_intake_failed(srv, a, mark, ic, why);
  tks_intake_stored(srv, st, record, dyn, msg, len, verbatim, ic);
  return TKS_INTAKE_STORED;
}
/* The batch's end (a read, a run of Kafka messages), before its bytes go:
 * the subscribers take what they were handed, the journal its frame. */
void tks_intake_end(struct tks_server *srv);

/* ==== load.c: the loading phase ======================================= */
/* At start, after the sockets are bound: the steps that rebuild the store
 * (today the journal replay; loading a checkpoint goes before it and tells
 * the replay where to begin), run from a uv_idle handle in slices of about
 * TKS_LOAD_SLICE_NS, so that the loop answers the control socket between
 * them.  srv->loading is true until they are done; done(srv, 0) is called
 * then, or done(srv, -errno) when a step failed (its reason logged). */

#define TKS_LOAD_SLICE_NS 10000000u /* 10 ms of loading a loop turn */

typedef void (*tks_load_done_fn)(struct tks_server *srv, int status);
/* Returns 0, or -errno when the first step cannot begin (logged). */
int tks_load_start(struct tks_server *srv, tks_load_done_fn done);
/* A stop while loading (SIGTERM): abandons the step, writes nothing; done
 * is not called.  A no-op once loaded. */
void tks_load_stop(struct tks_server *srv);
void tks_load_progress(struct tks_server *srv, struct tks_load_progress *out);
/* "loading.*" (while loading only). */
void tks_load_stats(struct tks_server *srv, struct tks_stats *st);
/* "B of T bytes (P%), PHASE, N ticks": for STATUS=loading: and the control
 * socket's loading error. */
void tks_load_describe(struct tks_server *srv, char *out, size_t n);

/* Checkpoints.  Cuts the journal here: a rotate marker after every tick
 * accepted so far; once the writer thread wrote what is before it and began
 * a new segment, done(ctx, next) is called on the loop with that segment's
 * number (every tick before the marker is in the segments below it).
 * Returns 0, -ENOTSUP (journal off), -EBUSY (one is waited for) or -ENOMEM. */
int tks_durability_rotate(struct tks_server *srv, void (*done)(void *ctx, uint64_t next),
                          void *ctx);
/* Forgets the rotation waited for (its marker still cuts the journal). */
void tks_durability_rotate_cancel(struct tks_server *srv);
/* The same, blocking (the stop): waits up to timeout_ns for the rotation
 * waited for, or a new one.  Returns 0 with *next set, -ETIMEDOUT (the
 * journal is failing or behind) or -ENOTSUP. */
int tks_durability_rotate_wait(struct tks_server *srv, uint64_t timeout_ns, uint64_t *next);
/* Has the writer thread delete the segments numbered below `below` (a
 * checkpoint covers them), but none from srv->journal_keep_from on (the
 * Kafka sink reads them still); journal.bytes and .segments follow. */
void tks_durability_prune(struct tks_server *srv, uint64_t below);
/* The journal's written end (lib/journal.h tks_journal_written) after the
 * writer's last flush: every frame before it is whole in the files.  Any
 * thread (the Kafka sink's reads it), also after tks_durability_stop (the
 * final end).  False before the writer opened the journal. */
bool tks_durability_written(uint64_t *seq, uint64_t *off);
/* Bytes of the journal's segment files (0 with the journal off). */
uint64_t tks_durability_journal_bytes(struct tks_server *srv);
/* Journal frame bytes submitted since start (journal.checkpoint_bytes). */
uint64_t tks_durability_submitted_bytes(struct tks_server *srv);
/* The checkpoint loaded at start (all zero when none was). */
struct tks_durability_load {
  char file[4200];
  uint64_t ticks, bytes, next_segment;
  int64_t created_ns;
  double seconds;
  bool converted;
};
void tks_durability_load_info(struct tks_server *srv, struct tks_durability_load *out);

/* ==== checkpoint.c: checkpoints ======================================== */
/* The store written to journal.dir/checkpoint-<N>.tkc by a forked child
 * (the loop keeps serving), with the journal cut at the fork so that replay
 * resumes at segment N; the newest two are kept and the segments below the
 * older one's N deleted.  Taken every journal.checkpoint_interval, after
 * journal.checkpoint_bytes of journal, on `checkpoint`, and at a clean stop. */

struct tks_checkpoint_result {
  int error;           /* 0, or -errno */
  const char *message; /* why it failed ("" when it did not), valid during the call */
  uint64_t ticks, bytes;
  double seconds;
};
/* The triggers' timer.  0 (also with the journal off: then it does nothing). */
int tks_checkpoint_start(struct tks_server *srv);
/* The clean stop, after ingest stopped and before the journal closes: waits
 * for one in progress, then takes one more in this process (the store no
 * longer changes) when checkpoints are on and the store changed since. */
void tks_checkpoint_stop(struct tks_server *srv);
/* `checkpoint`: done(ctx, result) once it is durable (requests share the one
 * in progress).  Returns 0, or -ENOTSUP (journal off) or -ENOMEM. */
int tks_checkpoint_request(struct tks_server *srv,
                           void (*done)(void *ctx, const struct tks_checkpoint_result *r),
                           void *ctx);
/* Forgets the requests with this ctx (a closing control connection). */
void tks_checkpoint_cancel(struct tks_server *srv, void *ctx);
/* One is being written or asked for.  Checkpoints and archive seals take
 * turns: neither begins while the other runs (srv->seal_cut says a seal
 * does); a `checkpoint` asked during a seal begins after it. */
bool tks_checkpoint_busy(const struct tks_server *srv);
void tks_checkpoint_stats(struct tks_server *srv, struct tks_stats *st);

/* ==== archiver.c: the day archive ====================================== */
/* Seals ticks older than a cut out of memory into archive.dir (a rollover:
 * the days before today, at archive.roll_at and on `rollover`) from a
 * forked child, commits them (archive.dir/SEALED) and trims memory; holds
 * the reader queries merge with the store; archive.retention.  See the top
 * of archiver.c for how a seal stays exactly once across crashes. */

struct tks_rollover_result {
  int error;           /* 0, or -errno */
  const char *message; /* why it failed ("" when it did not), valid during the call */
  uint64_t ticks, bytes;
  uint32_t parts;
  double seconds;
};
struct tks_archive;
struct tks_archive_view;
/* At start, before loading: locks archive.dir, reads which seal is
 * committed (srv->seal_committed, for the replay), deletes the parts of a
 * seal that was not, opens the reader.  0 (also with the archive off), or
 * -errno logged (in use by another daemon, SEALED unreadable). */
int tks_archiver_open(struct tks_server *srv);
/* Once loaded: the roll_at and retention timer. */
int tks_archiver_start(struct tks_server *srv);
/* `rollover`: done(ctx, result) once the days before today are sealed and
 * out of memory (at once when there is nothing to seal).  0, -ENOTSUP (the
 * archive is off) or -ENOMEM. */
int tks_archiver_rollover(struct tks_server *srv,
                          void (*done)(void *ctx, const struct tks_rollover_result *r), void *ctx);
void tks_archiver_cancel(struct tks_server *srv, void *ctx);
/* The stop, before the last checkpoint: waits for a seal in progress. */
void tks_archiver_stop(struct tks_server *srv);
void tks_archiver_close(void);                    /* the reader, after the loop */
void tks_archiver_reload(struct tks_server *srv); /* archive.roll_at, retention */
/* The reader and the view that converts into the live tables, or NULL with
 * the archive off.  Queries (the loop thread) only. */
struct tks_archive *tks_archiver_reader(struct tks_server *srv, struct tks_archive_view *view);
void tks_archiver_stats(struct tks_server *srv, struct tks_stats *st);
/* The server's pressure, retain and evict listeners (wired in main.c):
 * under evict_oldest a full store begins a seal of the oldest quarter of
 * max_memory, so the slices evicted meanwhile are below its cut and in the
 * archive once it commits; limits.retention becomes a seal at its cutoff;
 * evictions are counted as sealed or lost to the archive. */
bool tks_archiver_on_pressure(struct tks_server *srv, uint64_t bytes, uint64_t slice);
bool tks_archiver_on_retain(struct tks_server *srv, int64_t cutoff);
void tks_archiver_on_evict(struct tks_server *srv, enum tks_store_rep rep, uint32_t symbol,
                           const void *entries, uint32_t count);

/* ==== ingest.c: the TCP listener and its connections =================== */

/* Binds and listens (the kernel queues connections from here on) without
 * accepting any: a port in use is found before loading.  0 or -errno (logged). */
int tks_ingest_bind(struct tks_server *srv);
/* Accepts and reads from here on (once loaded). */
int tks_ingest_serve(struct tks_server *srv);
void tks_ingest_stop(struct tks_server *srv); /* closes the listener and drains connections */
/* The on_hold listener: stops reading every client, or processes what was
 * kept and reads on. */
void tks_ingest_on_hold(struct tks_server *srv, bool held);
/* The once-a-second sweep (lifecycle.c's timer; now_ms on the uv_now
 * clock), by srv->cfg.ingest: closes a client holding an unfinished message
 * for message_timeout (counted connections.closed_timeout) or under
 * min_rate over a TKS_INGEST_RATE_WINDOW_MS window (closed_slow), and one
 * silent for idle_timeout.  Nothing while ingest is held (the clients wait
 * for us).  Returns how many were closed for idle_timeout. */
#define TKS_INGEST_RATE_WINDOW_MS 5000
unsigned tks_ingest_sweep(struct tks_server *srv, uint64_t now_ms);
/* "acks.*": connections with acknowledgements, producers, messages. */
void tks_ingest_stats(struct tks_server *srv, struct tks_stats *st);

/* ==== sender.c: the send thread (subscribe.send_thread) ================ */

/* subscribe.c's writes on a thread of their own: the loop hands whole
 * buffers to a socket's channel, the thread writes them in order.  The
 * events a channel tells the loop (through a uv_async, on the loop). */
enum { TKS_SEND_LOW = 1, TKS_SEND_ERROR = 2, TKS_SEND_DETACHED = 4 };
typedef void (*tks_sender_event_fn)(void *owner, unsigned events);
struct tks_sender_chan;
/* Starts the thread (its events to fn, on loop's thread).  0 or -errno. */
int tks_sender_start(uv_loop_t *loop, tks_sender_event_fn fn);
/* Stops it, at once: what is queued is not written; every channel is let
 * go of (tks_sender_close says so from then on). */
void tks_sender_stop(void);
bool tks_sender_running(void);
/* A channel for the socket fd (the loop's, closed by it only once let go
 * of); owner goes to the events.  NULL: not running, or out of memory. */
struct tks_sender_chan *tks_sender_open(int fd, void *owner);
/* Queues b's bytes (since_ns: when the first was queued): b is swapped with
 * an empty buffer of the channel's, no byte copied.  0 or -ENOMEM (b kept). */
int tks_sender_hand(struct tks_sender_chan *c, struct tks_buf *b, uint64_t since_ns);
/* Drops what is queued and not begun (a buffer begun is written whole). */
void tks_sender_discard(struct tks_sender_chan *c);
/* Bytes handed and neither written nor dropped. */
uint64_t tks_sender_queued(const struct tks_sender_chan *c);
/* Of those, the ones the thread has taken and the socket did not (yet):
 * the rest are on their way to the thread. */
uint64_t tks_sender_unsent(const struct tks_sender_chan *c);
/* TKS_SEND_LOW once fewer than bytes are queued (at once if so now). */
void tks_sender_notify_below(struct tks_sender_chan *c, uint64_t bytes);
/* When the oldest byte being written was queued, 0 when none is. */
uint64_t tks_sender_oldest_ns(const struct tks_sender_chan *c);
uint64_t tks_sender_buffer_bytes(const struct tks_sender_chan *c);
/* Lets go of the socket: true when done now (the thread is not running),
 * else TKS_SEND_DETACHED follows; then tks_sender_free. */
bool tks_sender_close(struct tks_sender_chan *c);
void tks_sender_free(struct tks_sender_chan *c);
/* sendmsg calls, and those the socket was full for (EAGAIN). */
void tks_sender_counts(uint64_t *writes, uint64_t *blocked);

/* ==== subscribe.c: subscriptions (subscribe.listen) ==================== */

/* Binds subscribe.listen (nothing when it is off) before loading; serves
 * it once loaded.  0 or -errno (logged). */
int tks_subscribe_bind(struct tks_server *srv);
int tks_subscribe_serve(struct tks_server *srv);
/* Closes the listener and every subscriber (after ingest stopped). */
void tks_subscribe_stop(struct tks_server *srv);
void tks_subscribe_stats(struct tks_server *srv, struct tks_stats *st);
/* lifecycle.c's sweep, once a second: closes a subscriber that has not
 * taken its ending error within TKS_SUBSCRIBE_END_MS of it, and one still
 * without a whole request after ingest.message_timeout. */
#define TKS_SUBSCRIBE_END_MS 10000
void tks_subscribe_sweep(struct tks_server *srv, uint64_t now_ms);
uint64_t tks_subscribe_buffer_bytes(struct tks_server *srv);
/* `subscribers`: one JSON line a subscriber (peer, state, symbols, sent,
 * replayed, dropped, queue_bytes, lag_seconds, connected_seconds).  0 or
 * -ENOMEM. */
int tks_subscribe_list(struct tks_server *srv, struct tks_buf *out);

/* ==== query.c: last, range, symbols, advice ============================ */

/* Returns 1 when line is one of them (the response lines, without the
 * final empty line, are appended to out), 0 when it is not (out untouched). */
int tks_query_handle(struct tks_server *srv, const char *line, struct tks_buf *out);

/* One page of a symbol's ticks with *from <= ts < to: memory (id, 0 for
 * an archive-only name) merged with the day archive (name), the archive's
 * first among equal ts, given to fn in ts order until `limit` were given
 * and the ts changes (no run of equal ts is split).  *rows: how many.
 * Returns 1 with *from set to where the next page starts, 0 at the end,
 * or -errno (an archive error; -ENOMEM also when fn stopped). */
int tks_query_page(struct tks_server *srv, uint32_t id, const char *name, size_t len, int64_t *from,
                   int64_t to, uint64_t limit, tks_tick_fn fn, void *ctx, uint64_t *rows);

/* `export SYMBOL|* FROM TO [format=msgpack|csv|jsonl] [ts=...]`: returns 0
 * when line is not an export (out untouched), 1 when it is: then either *x
 * is set and out has the answer's first line ({"ok":true,"export":FMT,
 * "framing":"chunks"}), or *x is NULL and out has the error line.  Then
 * tks_query_export_next appends one chunk (a 4-byte big-endian length and
 * that many bytes, about `budget`) and returns 1 while there is more, or 0
 * with the zero-length chunk and the trailer line {"ok":true,"rows":N,
 * "bytes":B} appended, or -errno. */
struct tks_export;
int tks_query_export_begin(struct tks_server *srv, const char *line, struct tks_buf *out,
                           struct tks_export **x);
int tks_query_export_next(struct tks_export *x, struct tks_buf *out, size_t budget);
void tks_query_export_end(struct tks_export *x);

/* ==== kafka_source.c: kafka.source, a node of a fleet on Kafka ========== */
/* A consumer in kafka.source.group of kafka.source.topic, on librdkafka's
 * threads, whose messages the loop takes through the consumer queue's
 * wake-up: each message value is one tick, admitted as ingest admits a
 * TCP one (intake.h), journaled with its partition's next offset (a named
 * producer "kafka:<topic>/<partition>", so the position is durable with
 * the ticks and survives checkpoints); a restart resumes each partition
 * where the journal ends.  Built without librdkafka (kafka_off.c) a
 * config with kafka.source.brokers set is refused at start. */

/* "librdkafka 2.0.2", or NULL in a build without Kafka (--version). */
const char *tks_kafka_build(void);
/* Once loaded: joins the group.  0 (also with the source off) or -errno
 * (logged: a property librdkafka refuses). */
int tks_kafka_source_start(struct tks_server *srv);
/* The stop, before the journal's: takes no more messages, commits the
 * offsets, leaves the group. */
void tks_kafka_source_stop(struct tks_server *srv);
void tks_kafka_source_stats(struct tks_server *srv, struct tks_stats *st); /* "kafka.source.*" */
/* For the queries: 0 when this node serves the symbol (or there is no
 * source), 1 when its partition is not assigned here, with why set to
 * the error ("AAPL is in partition 3 of ticks, owned by node-b"). */
int tks_kafka_source_check(struct tks_server *srv, const char *name, size_t len, char *why,
                           size_t n);
/* The symbol's partition (-1: no source, or the partition count is not
 * known yet), and whether it is assigned to this node. */
int32_t tks_kafka_source_partition(struct tks_server *srv, const char *name, size_t len,
                                   bool *owned);

/* ==== kafka_sink.c: kafka.sink, every TCP tick produced to Kafka ======== */
/* Reads the journal's segments behind the writer (the journal is the
 * outbox) and produces each tick accepted over TCP to kafka.sink.topic,
 * keyed by its symbol, idempotent, acks=all; its position (the journal
 * offset up to which Kafka acknowledged everything) is saved beside the
 * journal, so a restart produces again what was not acknowledged. */

/* Once loaded (the journal is open).  0 (also with the sink off) or
 * -errno (logged). */
int tks_kafka_sink_start(struct tks_server *srv);
/* After the journal's stop: produces what is left for a few seconds,
 * saves the position. */
void tks_kafka_sink_stop(struct tks_server *srv);
void tks_kafka_sink_stats(struct tks_server *srv, struct tks_stats *st); /* "kafka.sink.*" */

/* ==== metrics.c: GET /metrics over HTTP (metrics.listen) =============== */

/* Binds and serves metrics.listen (nothing when it is off) from the start,
 * loading included; srv->metrics_addr is the bound address then.  0 or
 * -errno (logged). */
int tks_metrics_start(struct tks_server *srv);
void tks_metrics_stop(struct tks_server *srv); /* the listener and every connection */
/* The Prometheus text of `stats prometheus` and GET /metrics: every
 * figure (the loading ones while loading) and the process_* families.
 * 0 or -ENOMEM. */
int tks_metrics_render(struct tks_server *srv, struct tks_buf *out);
void tks_metrics_stats(struct tks_server *srv, struct tks_stats *st); /* "metrics.*" */

/* ==== control.c: the control socket ==================================== */

int tks_control_start(struct tks_server *srv);
/* Closes control clients holding an unfinished request line for
 * ingest.message_timeout (lifecycle.c's sweep).  Returns how many. */
unsigned tks_control_sweep(struct tks_server *srv, uint64_t now_ms);
void tks_control_stop(struct tks_server *srv); /* closes it and removes the socket file */

/* ==== lifecycle.c: SIGHUP reload, the systemd watchdog and status ====== */

/* After the sockets are bound, before loading: the watchdog, idle
 * clients, and while srv->loading a STATUS=loading: line at once, 0.1 s
 * in and then each second, with EXTEND_TIMEOUT_USEC= when loading made
 * progress since the last one. */
int tks_lifecycle_start(struct tks_server *srv);
/* Once loaded and ingest is served: READY=1, STATUS= every 10 s, and a
 * SIGHUP that came while loading. */
void tks_lifecycle_ready(struct tks_server *srv);
void tks_lifecycle_stop(struct tks_server *srv);
/* SIGHUP: re-reads srv->cfg.path, applies the live keys, refuses the rest. */
void tks_lifecycle_reload(struct tks_server *srv);
/* "lifecycle.*": reloads, reload errors, idle closes, watchdog. */
void tks_lifecycle_stats(struct tks_server *srv, struct tks_stats *st);

#endif
