/*
 * The daemon's shared state: one server object owned by the libuv loop
 * thread, holding the configuration, the store and its allocators, the
 * listening handles and every counter the control socket reports.
 */
#ifndef TKS_DAEMON_H
#define TKS_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "decode.h"
#include "render.h"
#include "slab.h"
#include "stats.h"
#include "store.h"
#include "symtab.h"
#include "usage.h"

#define RATE_WINDOW 11
#define TKS_MAX_FIELD_NAMES 4096 /* distinct field names of dynamic ticks */ /* seconds of per-second accepted counts kept */

/* Intrusive list of open connections, so shutdown can reach them all. */
struct conn_link {
  struct conn_link *prev, *next;
};

struct tks_server {
  uv_loop_t *loop;
  struct tks_config cfg;

  struct tks_slab *slab;
  struct tks_symtab *symbols;
  struct tks_symtab *strings;
  struct tks_symtab *names;   /* field names of dynamic objects */
  struct tks_store *store;
  struct tks_usage usage;     /* undeclared fields seen */
  struct tks_decoder decoder;

  uv_tcp_t listener;
  bool listener_open;
  uv_idle_t yield_idle; /* restarts connections that yielded the loop (ingest.c) */
  bool yield_started;
  char listen_addr[320]; /* as bound: "127.0.0.1:40123", "[::1]:7070" */
  uint16_t port;
  uv_pipe_t control;
  bool control_open;
  uv_signal_t sig_term, sig_int, sig_hup;
  uv_timer_t tick_timer;

  struct conn_link ingest_conns; /* list heads */
  struct conn_link control_conns;

  uint64_t start_mono_ns;
  bool stopping;

  /* counters */
  uint64_t ticks_accepted;
  uint64_t rejected[TKS_REASON__COUNT];
  uint64_t bytes_received;
  uint64_t conns_current, conns_total, conns_closed_on_error, conns_refused;
  uint64_t rate_ring[RATE_WINDOW]; /* ticks_accepted at each of the last seconds */
  unsigned rate_pos;
  uint64_t log_window_start, log_lines_in_window, log_suppressed;

  unsigned ingest_held;   /* TKS_HOLD_* reasons for not reading clients */
  uint64_t ingest_holds;  /* times ingest was held */
  struct tks_durability *dur; /* NULL: journal disabled */
};

#define TKS_JOURNAL_BATCH_MAX (16u << 20) /* bytes of ticks in one journal frame */
#define TKS_HOLD_LIMITS 1u  /* limits.when_full: backpressure */
#define TKS_HOLD_JOURNAL 2u /* journal writes failing or behind (on_error: backpressure) */

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

/* ingest.c */
int tks_ingest_start(struct tks_server *srv);
void tks_ingest_stop(struct tks_server *srv); /* closes the listener and drains connections */
/* Logs a per-tick problem at warn level, at most 10 lines a second. */
void tks_server_log_limited(struct tks_server *srv, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* control.c */
int tks_control_start(struct tks_server *srv);
void tks_control_stop(struct tks_server *srv); /* closes it and removes the socket file */
/* Fills st with every figure ("stats"), or only the slab ones. */
void tks_server_stats(struct tks_server *srv, struct tks_stats *st, bool slabs_only);

/* limits.c: memory limits (limits.max_memory, when_full, retention).
 * tks_limits_start applies max_memory to the slab and starts the retention
 * timer.  When the store refuses a tick for lack of memory, ingest calls
 * tks_limits_on_full(): it returns TKS_FULL_RETRY (room was made: evicted;
 * store the tick again), TKS_FULL_REJECT (count it store_full) or
 * TKS_FULL_PAUSE (backpressure: keep the tick's bytes, stop reading; ingest
 * resumes when tks_limits_room() says so). */
enum tks_full_action { TKS_FULL_RETRY, TKS_FULL_REJECT, TKS_FULL_PAUSE };
int tks_limits_start(struct tks_server *srv);
void tks_limits_stop(struct tks_server *srv);
enum tks_full_action tks_limits_on_full(struct tks_server *srv);
bool tks_limits_room(struct tks_server *srv);
void tks_limits_stats(struct tks_server *srv, struct tks_stats *st);
/* Applies a reloaded limits section (SIGHUP). */
void tks_limits_reload(struct tks_server *srv);

/* lifecycle.c: SIGHUP reload, the systemd watchdog and status, idle clients.
 * tks_lifecycle_start after the sockets listen; tks_lifecycle_stop at stop. */
int tks_lifecycle_start(struct tks_server *srv);
void tks_lifecycle_stop(struct tks_server *srv);
/* SIGHUP: re-reads srv->cfg.path, applies the live keys, refuses the rest. */
void tks_lifecycle_reload(struct tks_server *srv);
/* "lifecycle.*": reloads, reload errors, idle closes, watchdog. */
void tks_lifecycle_stats(struct tks_server *srv, struct tks_stats *st);

/* ingest.c, for lifecycle and limits: closes ingest clients idle since
 * before now_ms - timeout_ms (uv_now clock); pauses and resumes reading
 * (for the memory limit; tks_ingest_hold with a TKS_HOLD_* reason in general). */
unsigned tks_ingest_close_idle(struct tks_server *srv, uint64_t now_ms, uint64_t timeout_ms);
void tks_ingest_pause(struct tks_server *srv);
void tks_ingest_resume(struct tks_server *srv);
void tks_ingest_hold(struct tks_server *srv, unsigned reason, bool on);

/* durability.c: the journal.  A writer thread owns the journal files; the
 * loop thread hands it, per read, the bytes of the accepted ticks and their
 * receive time, and learns through a uv_async when they are written and
 * fsynced.  Replay rebuilds the store before the daemon is ready. */
int tks_durability_start(struct tks_server *srv);  /* replay, then open; 0 or -errno */
void tks_durability_stop(struct tks_server *srv);  /* flush, fsync, join */
/* The batch buffer for the ticks of one read (NULL when the journal is
 * off): process() appends the accepted messages, then calls submit. */
struct tks_buf *tks_durability_batch(struct tks_server *srv, int64_t recv_ns);
void tks_durability_submit(struct tks_server *srv);
/* True while journal writes fail (journal.on_error says what ingest does). */
bool tks_durability_failing(const struct tks_server *srv);
/* `sync`: calls done(ctx, durable) once every tick accepted so far is
 * fsynced (at once if it already is).  Returns 0, or -ENOTSUP (journal off). */
int tks_durability_sync(struct tks_server *srv, void (*done)(void *ctx, uint64_t durable), void *ctx);
/* Forgets the waiters with this ctx (a closing control connection). */
void tks_durability_cancel(struct tks_server *srv, void *ctx);
void tks_durability_stats(struct tks_server *srv, struct tks_stats *st);
/* Ticks fsynced to the journal: replayed at start plus accepted and fsynced since. */
uint64_t tks_durability_durable(struct tks_server *srv);
/* ingest.c: stores a tick read back from the journal (no journaling, the
 * when_full policy applies).  0, or -ENOMEM when it could not be stored. */
int tks_server_store_replayed(struct tks_server *srv, enum tks_decode_status st, const void *record,
                              const struct tks_dyn_tick *dyn);
void tks_durability_reload(struct tks_server *srv); /* journal.fsync, interval, on_error */

/* query.c: the requests that read ticks back and give advice: last,
 * range, symbols, advice.  Returns 1 when line is one of them (the response
 * lines, without the final empty line, are appended to out), 0 when it is
 * not (out untouched). */
int tks_query_handle(struct tks_server *srv, const char *line, struct tks_buf *out);

/* notify.c: sd_notify(3) without libsystemd.  Returns 0, or -errno; a
 * missing NOTIFY_SOCKET is not an error (returns 0, sends nothing). */
int tks_notify(const char *state);

#endif
