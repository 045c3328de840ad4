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

#include "codec.h"
#include "config.h"
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

/* query.c: the requests that read ticks back and give advice: last,
 * range, symbols, advice.  Returns 1 when line is one of them (the response
 * lines, without the final empty line, are appended to out), 0 when it is
 * not (out untouched). */
int tks_query_handle(struct tks_server *srv, const char *line, struct tks_buf *out);

/* notify.c: sd_notify(3) without libsystemd.  Returns 0, or -errno; a
 * missing NOTIFY_SOCKET is not an error (returns 0, sends nothing). */
int tks_notify(const char *state);

#endif
